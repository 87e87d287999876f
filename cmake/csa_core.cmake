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

add_library(csa_core STATIC ${CSA_CORE_SOURCES})
set_target_properties(csa_core PROPERTIES POSITION_INDEPENDENT_CODE ON)
target_include_directories(csa_core PUBLIC ${CSA_ROOT}/include PRIVATE ${CSA_ROOT}/csrc)
target_compile_options(csa_core PRIVATE $<$<COMPILE_LANGUAGE:C>:${CSA_WARNINGS}>)
find_package(Threads REQUIRED)
target_link_libraries(csa_core PUBLIC Threads::Threads ${CSA_CORE_LIBS})
if(NOT WIN32)
  target_link_libraries(csa_core PUBLIC m)
endif()
