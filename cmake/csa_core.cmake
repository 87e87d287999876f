# Defines the static library csa_core from the per-area source fragments.
# Each area of csrc/ owns a sources.cmake that appends to the lists below and
# sets its own per-file flags (e.g. ISA flags for SIMD micro-kernels), so the
# areas can grow without touching this file.
#
# Used by the top-level build (the Python extension) and by tests/c (the C unit
# tests under AddressSanitizer + UndefinedBehaviorSanitizer).
set(CSA_ROOT ${CMAKE_CURRENT_LIST_DIR}/..)

if(MSVC)
  set(CSA_WARNINGS /W4)
else()
  set(CSA_WARNINGS -Wall -Wextra)
endif()

set(CSA_CORE_SOURCES "")
set(CSA_CORE_LIBS "")
set(CSA_HAVE_CUDA OFF)

include(${CSA_ROOT}/csrc/core/sources.cmake)
include(${CSA_ROOT}/csrc/cpu/sources.cmake)
include(${CSA_ROOT}/csrc/link/sources.cmake)
# CUDA: host code always (driver API, opened at run time); kernels embedded
# when prebuilt fatbins or nvcc are found (see csrc/cuda/sources.cmake).
include(${CSA_ROOT}/csrc/cuda/sources.cmake)

# A compiler that cannot build a part is named with what it lacks, at configure
# time, instead of failing halfway through the build: every C source that
# carries its own flags (the ISA-specific CPU kernels) is test-compiled with
# exactly those flags.
# Compile only, no link: a link with ISA flags would make zig cc rebuild its C
# runtime for that CPU.
include(CheckCSourceCompiles)
set(csa_saved_try_type "${CMAKE_TRY_COMPILE_TARGET_TYPE}")
set(CMAKE_TRY_COMPILE_TARGET_TYPE STATIC_LIBRARY)
foreach(src ${CSA_CORE_SOURCES})
  if(NOT src MATCHES "\\.c$")
    continue()
  endif()
  get_source_file_property(csa_opts ${src} COMPILE_OPTIONS)
  if(NOT csa_opts OR csa_opts MATCHES "\\$<")
    continue()
  endif()
  get_filename_component(csa_name ${src} NAME_WE)
  string(MAKE_C_IDENTIFIER "CSA_CC_BUILDS_${csa_name}" csa_var)
  string(REPLACE ";" " " csa_flags "${csa_opts}")
  set(CMAKE_REQUIRED_FLAGS "${csa_flags}")
  set(CMAKE_REQUIRED_QUIET ON)
  check_c_source_compiles("int main(void) { return 0; }" ${csa_var})
  unset(CMAKE_REQUIRED_FLAGS)
  unset(CMAKE_REQUIRED_QUIET)
  if(NOT ${csa_var})
    message(FATAL_ERROR "comfy-sparse-attn: the C compiler (${CMAKE_C_COMPILER_ID} "
      "${CMAKE_C_COMPILER_VERSION}, ${CMAKE_C_COMPILER}) cannot build ${csa_name}.c: it refuses "
      "the flags ${csa_flags}. Use a newer GCC/Clang (or zig cc), "
      "or another compiler for this target.")
  endif()
endforeach()
set(CMAKE_TRY_COMPILE_TARGET_TYPE "${csa_saved_try_type}")

add_library(csa_core STATIC ${CSA_CORE_SOURCES})
set_target_properties(csa_core PROPERTIES POSITION_INDEPENDENT_CODE ON)
target_include_directories(csa_core PUBLIC ${CSA_ROOT}/include PRIVATE ${CSA_ROOT}/csrc)
target_compile_options(csa_core PRIVATE $<$<COMPILE_LANGUAGE:C>:${CSA_WARNINGS}>)
find_package(Threads REQUIRED)
target_link_libraries(csa_core PUBLIC Threads::Threads ${CSA_CORE_LIBS})
if(NOT WIN32)
  target_link_libraries(csa_core PUBLIC m)
endif()
