# CUDA path (included by cmake/csa_core.cmake).
#
# The host side is plain C over the CUDA driver API, opened at run time
# (csrc/cuda/driver.c): it is always compiled and needs no CUDA header or
# library.  The kernels are fatbins embedded as data (fatbin_embed.c), taken
# from, in this order:
#   1. CSA_CUDA_FATBIN_DIR (CMake -D or environment): a folder written by
#      tools/build-fatbin (*.fatbin + csa_fatbins.inc), embedded as is, no
#      nvcc needed (how wheels are built: one fatbin set for every platform,
#      compiled by `tools/build-fatbin --nvrtc`, CUDA 12.9 NVRTC from PyPI);
#   2. nvcc (CUDACXX, CUDA_PATH, /usr/local/cuda or PATH) when CSA_WITH_CUDA
#      is ON: tools/build-fatbin runs at build time (add_custom_command);
#      CSA_CUDA_ARCHS (e.g. "80" or "75;90") shortens it to those SASS;
#   3. otherwise no kernels: csa_have_cuda() = 0, the CUDA entry points
#      answer CSA_ENOTSUP.
# Embedding uses the assembler's .incbin (gcc, clang, zig cc, mingw-w64);
# MSVC builds without kernels.
#
# NVRTC (compile at first use where no nvcc existed at build time) is not
# implemented: the wheels carry prebuilt fatbins for every supported
# architecture, so only an sdist built without nvcc on a GPU machine would
# need it; it would mean shipping the .cu sources and CUDA headers in the
# package, locating a matching libnvrtc at run time, and a compile of
# minutes on first use.  Such builds run the CPU and torch paths instead.

list(APPEND CSA_CORE_SOURCES
  ${CSA_ROOT}/csrc/cuda/driver.c
  ${CSA_ROOT}/csrc/cuda/loader.c
  ${CSA_ROOT}/csrc/cuda/attn_plan.c
  ${CSA_ROOT}/csrc/cuda/attn_cuda.c
  ${CSA_ROOT}/csrc/cuda/sanitize.c
  ${CSA_ROOT}/csrc/cuda/fatbin_embed.c)
list(APPEND CSA_CORE_LIBS ${CMAKE_DL_LIBS})

if(NOT CSA_CUDA_FATBIN_DIR AND DEFINED ENV{CSA_CUDA_FATBIN_DIR})
  set(CSA_CUDA_FATBIN_DIR "$ENV{CSA_CUDA_FATBIN_DIR}")
endif()

set(_csa_fb_dir "")
set(_csa_fb_deps "")
if(MSVC AND (CSA_CUDA_FATBIN_DIR OR CSA_WITH_CUDA))
  message(WARNING "comfy-sparse-attn: MSVC cannot embed the CUDA fatbins (.incbin); "
                  "building without CUDA kernels (use clang-cl, zig cc or mingw-w64)")
elseif(CSA_CUDA_FATBIN_DIR)
  get_filename_component(_csa_fb_dir "${CSA_CUDA_FATBIN_DIR}" ABSOLUTE)
  if(NOT EXISTS "${_csa_fb_dir}/csa_fatbins.inc")
    message(FATAL_ERROR "CSA_CUDA_FATBIN_DIR=${_csa_fb_dir} has no csa_fatbins.inc "
                        "(write it with tools/build-fatbin -o DIR)")
  endif()
  file(GLOB _csa_fb_deps "${_csa_fb_dir}/*.fatbin")
  list(APPEND _csa_fb_deps "${_csa_fb_dir}/csa_fatbins.inc")
  message(STATUS "comfy-sparse-attn: embedding prebuilt CUDA fatbins from ${_csa_fb_dir}")
elseif(CSA_WITH_CUDA)
  find_program(CSA_NVCC nvcc
    HINTS ENV CUDACXX ENV CUDA_PATH ENV CUDA_HOME /usr/local/cuda
    PATH_SUFFIXES bin)
  if(EXISTS "$ENV{CUDACXX}")
    set(CSA_NVCC "$ENV{CUDACXX}")
  endif()
  find_package(Python3 COMPONENTS Interpreter)
  if(CSA_NVCC AND Python3_Interpreter_FOUND)
    set(_csa_fb_dir "${CMAKE_CURRENT_BINARY_DIR}/csa_fatbins")
    file(GLOB _csa_cu CONFIGURE_DEPENDS ${CSA_ROOT}/csrc/cuda/*.cu)
    file(GLOB _csa_cu_hdr CONFIGURE_DEPENDS ${CSA_ROOT}/csrc/cuda/*.cuh
                                            ${CSA_ROOT}/csrc/cuda/*.h)
    set(_csa_archs "")
    if(DEFINED ENV{CSA_CUDA_ARCHS} AND NOT "$ENV{CSA_CUDA_ARCHS}" STREQUAL "")
      string(REPLACE ";" "," _csa_a "$ENV{CSA_CUDA_ARCHS}")
      set(_csa_archs --archs "${_csa_a}")
    elseif(CSA_CUDA_ARCHS)
      string(REPLACE ";" "," _csa_a "${CSA_CUDA_ARCHS}")
      set(_csa_archs --archs "${_csa_a}")
    endif()
    # the module list: every .cu (a *_sm90.cu only when 90 is built)
    # (the .inc is the command's OUTPUT; listing it as a byproduct too makes
    # Ninja refuse the build)
    set(_csa_fb_mods "")
    foreach(_cu ${_csa_cu})
      get_filename_component(_stem "${_cu}" NAME_WE)
      list(APPEND _csa_fb_mods "${_csa_fb_dir}/${_stem}.fatbin")
    endforeach()
    add_custom_command(
      OUTPUT "${_csa_fb_dir}/csa_fatbins.inc"
      BYPRODUCTS ${_csa_fb_mods}
      COMMAND "${Python3_EXECUTABLE}" "${CSA_ROOT}/tools/build-fatbin" --nvcc "${CSA_NVCC}"
              ${_csa_archs} -o "${_csa_fb_dir}"
      DEPENDS ${_csa_cu} ${_csa_cu_hdr} "${CSA_ROOT}/tools/build-fatbin"
      COMMENT "Compiling the CUDA kernels into fatbins (nvcc; minutes)"
      VERBATIM)
    set(_csa_fb_deps "${_csa_fb_dir}/csa_fatbins.inc")
    list(APPEND CSA_CORE_SOURCES "${_csa_fb_dir}/csa_fatbins.inc")
    message(STATUS "comfy-sparse-attn: CUDA kernels via ${CSA_NVCC} at build time")
  else()
    message(STATUS "comfy-sparse-attn: no nvcc (or no Python to drive it) and no "
                   "CSA_CUDA_FATBIN_DIR; building without CUDA kernels")
  endif()
endif()

if(_csa_fb_dir)
  set_source_files_properties(${CSA_ROOT}/csrc/cuda/fatbin_embed.c PROPERTIES
    COMPILE_DEFINITIONS "CSA_FATBIN_DIR=\"${_csa_fb_dir}\""
    INCLUDE_DIRECTORIES "${_csa_fb_dir}"
    OBJECT_DEPENDS "${_csa_fb_deps}")
  set(CSA_HAVE_CUDA ON)
endif()
