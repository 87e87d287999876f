# CUDA kernels (included by cmake/csa_core.cmake when a CUDA compiler exists).
#
# Architectures: SM 7.5, 8.0, 8.6, 8.9, 9.0 machine code plus compute_90 PTX
# (JIT for newer chips).  Override with the environment variable
# CSA_CUDA_ARCHS, a CMake list of numbers, e.g. "80" or "75;90" (machine code
# only for those), to shorten builds.
if(DEFINED ENV{CSA_CUDA_ARCHS} AND NOT "$ENV{CSA_CUDA_ARCHS}" STREQUAL "")
  set(CMAKE_CUDA_ARCHITECTURES "$ENV{CSA_CUDA_ARCHS}")
  string(REPLACE "," ";" CMAKE_CUDA_ARCHITECTURES "${CMAKE_CUDA_ARCHITECTURES}")
  list(TRANSFORM CMAKE_CUDA_ARCHITECTURES APPEND "-real")
elseif(NOT CMAKE_CUDA_ARCHITECTURES)
  set(CMAKE_CUDA_ARCHITECTURES 75-real 80-real 86-real 89-real 90-real 90-virtual)
endif()
enable_language(CUDA)
find_package(CUDAToolkit REQUIRED)

set(CMAKE_CUDA_STANDARD 17)
set(CMAKE_CUDA_STANDARD_REQUIRED ON)

list(APPEND CSA_CORE_SOURCES
  ${CSA_ROOT}/csrc/cuda/attn_cuda.c
  ${CSA_ROOT}/csrc/cuda/attn_fwd.cu)
# The C entry point includes cuda_runtime_api.h.
set_source_files_properties(${CSA_ROOT}/csrc/cuda/attn_cuda.c PROPERTIES
  INCLUDE_DIRECTORIES "${CUDAToolkit_INCLUDE_DIRS}")
# --threads 0: nvcc compiles the architectures in parallel (one .cu file, so
# the build tool cannot).
set_source_files_properties(${CSA_ROOT}/csrc/cuda/attn_fwd.cu PROPERTIES
  COMPILE_OPTIONS "$<$<COMPILE_LANGUAGE:CUDA>:-Xcompiler=-Wall;-Xcompiler=-Wextra;--threads=0>")
list(APPEND CSA_CORE_LIBS CUDA::cudart_static)
set(CSA_HAVE_CUDA ON)
