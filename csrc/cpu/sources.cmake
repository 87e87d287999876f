# CPU attention: the driver, the ISA choice, threads, and one kernel per ISA.
# Each kernel_<isa>.c is the same kernel (kernel.inc.h) over that ISA's SIMD
# vocabulary (simd_<isa>.h), compiled with that ISA's flags; only isa.c
# decides at run time, from CPUID, which one may run.
#
# The target architecture is read from the compiler's own predefined macros
# (not CMAKE_SYSTEM_PROCESSOR, which cross toolchain files often leave unset),
# so x86-64 builds (native, mingw-w64) get the AVX kernels and AArch64 builds
# the NEON one, matching the #if in cpu_attn.h.
include(CheckCSourceCompiles)
check_c_source_compiles("
#if !defined(__x86_64__) && !defined(_M_X64)
#error not x86-64
#endif
int main(void) { return 0; }" CSA_TARGET_X86_64)
check_c_source_compiles("
#if !defined(__aarch64__) && !defined(_M_ARM64)
#error not arm64
#endif
int main(void) { return 0; }" CSA_TARGET_ARM64)

set(CSA_CPU_DIR ${CSA_ROOT}/csrc/cpu)
list(APPEND CSA_CORE_SOURCES
  ${CSA_CPU_DIR}/attn_cpu.c
  ${CSA_CPU_DIR}/isa.c
  ${CSA_CPU_DIR}/threads.c
  ${CSA_CPU_DIR}/kernel_scalar.c)

if(CSA_TARGET_X86_64)
  list(APPEND CSA_CORE_SOURCES
    ${CSA_CPU_DIR}/kernel_avx2.c
    ${CSA_CPU_DIR}/kernel_avx512.c
    ${CSA_CPU_DIR}/kernel_avx512bf16.c
    ${CSA_CPU_DIR}/kernel_amx.c)
  if(MSVC)
    set(CSA_FLAGS_AVX2 /arch:AVX2)
    set(CSA_FLAGS_AVX512 /arch:AVX512)
    set(CSA_FLAGS_AVX512BF16 /arch:AVX512)
  else()
    set(CSA_FLAGS_AVX2 -mavx2 -mfma -mf16c)
    set(CSA_FLAGS_AVX512 -mavx512f -mavx512bw -mavx512vl -mavx512dq -mfma -mf16c)
    set(CSA_FLAGS_AVX512BF16 ${CSA_FLAGS_AVX512} -mavx512bf16 -mamx-tile -mamx-bf16)
    if(MINGW)
      # Windows x64 only aligns the stack to 16 bytes, but GCC spills 32- and
      # 64-byte vectors with aligned moves (GCC bug 54412): have the assembler
      # emit unaligned moves instead.
      include(CheckCCompilerFlag)
      check_c_compiler_flag("-Wa,-muse-unaligned-vector-move" CSA_HAVE_UNALIGNED_VMOVE)
      if(CSA_HAVE_UNALIGNED_VMOVE)
        list(APPEND CSA_FLAGS_AVX2 -Wa,-muse-unaligned-vector-move)
        list(APPEND CSA_FLAGS_AVX512 -Wa,-muse-unaligned-vector-move)
        list(APPEND CSA_FLAGS_AVX512BF16 -Wa,-muse-unaligned-vector-move)
      else()
        message(WARNING "comfy-sparse-attn: the assembler lacks -muse-unaligned-vector-move; "
                        "AVX kernels built by MinGW may fault on spilled vectors")
      endif()
    endif()
  endif()
  set_source_files_properties(${CSA_CPU_DIR}/kernel_avx2.c PROPERTIES
    COMPILE_OPTIONS "${CSA_FLAGS_AVX2}")
  set_source_files_properties(${CSA_CPU_DIR}/kernel_avx512.c PROPERTIES
    COMPILE_OPTIONS "${CSA_FLAGS_AVX512}")
  set_source_files_properties(${CSA_CPU_DIR}/kernel_avx512bf16.c ${CSA_CPU_DIR}/kernel_amx.c
    PROPERTIES COMPILE_OPTIONS "${CSA_FLAGS_AVX512BF16}")
endif()

if(CSA_TARGET_ARM64)
  list(APPEND CSA_CORE_SOURCES ${CSA_CPU_DIR}/kernel_neon.c)
endif()

# The kernels are the hot path: optimise them even in Debug / sanitizer
# builds (the C tests run thousands of cases under ASan).
if(NOT MSVC)
  set_property(SOURCE ${CSA_CPU_DIR}/kernel_scalar.c ${CSA_CPU_DIR}/kernel_avx2.c
    ${CSA_CPU_DIR}/kernel_avx512.c ${CSA_CPU_DIR}/kernel_avx512bf16.c ${CSA_CPU_DIR}/kernel_amx.c
    ${CSA_CPU_DIR}/kernel_neon.c
    APPEND PROPERTY COMPILE_OPTIONS -O2)
endif()
