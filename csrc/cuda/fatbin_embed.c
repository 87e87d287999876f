/*
 * fatbin_embed.c — puts the fatbins of the build into read-only data with
 * the assembler's .incbin, and lists them for the loader (fatbin.h).
 *
 * Why .incbin: the images are megabytes; a generated C array of that size
 * is a source file several times larger that the compiler must parse
 * element by element, while .incbin copies the bytes as they are.  It works in every GNU-style toolchain the package is
 * built with (gcc, clang, zig cc, mingw-w64: ELF and PE/COFF).  MSVC has no
 * equivalent; CMake builds without kernels there (csrc/cuda/sources.cmake).
 *
 * The build defines CSA_FATBIN_DIR (a string: the folder with the fatbins
 * and csa_fatbins.inc) and puts that folder on the include path.  Without
 * it this file lists no module.
 */
#include "cuda/fatbin.h"

#ifdef CSA_FATBIN_DIR

#define CSA__STR2(x) #x
#define CSA__STR(x) CSA__STR2(x)
#define CSA__SYM(s) CSA__STR(__USER_LABEL_PREFIX__) s

#if defined(__ELF__)
#define CSA__SECTION ".pushsection .rodata.csa_fatbins,\"a\",@progbits\n"
#define CSA__SECTION_END ".popsection\n"
#define CSA__GLOBAL(s) ".globl " CSA__SYM(s) "\n.hidden " CSA__SYM(s) "\n"
#elif defined(_WIN32)
#define CSA__SECTION ".section .rdata,\"dr\"\n"
#define CSA__SECTION_END ".text\n"
#define CSA__GLOBAL(s) ".globl " CSA__SYM(s) "\n"
#elif defined(__APPLE__)
#define CSA__SECTION ".const_data\n"
#define CSA__SECTION_END ".text\n"
#define CSA__GLOBAL(s) ".private_extern " CSA__SYM(s) "\n"
#else
#error "embedding fatbins needs an ELF, PE/COFF or Mach-O GNU-style assembler"
#endif

/* One module: start and end labels around the file's bytes (64-byte
 * aligned: the driver reads the image in place). */
#define CSA__FATBIN(stem, file, sass, ptx, arch_only)                                   \
  __asm__(CSA__SECTION ".balign 64\n" CSA__GLOBAL("csa__fb_" #stem)                     \
          CSA__GLOBAL("csa__fb_" #stem "_end") CSA__SYM("csa__fb_" #stem) ":\n"         \
          ".incbin \"" CSA_FATBIN_DIR "/" file "\"\n" CSA__SYM("csa__fb_" #stem "_end") \
          ":\n.byte 0\n" CSA__SECTION_END);                                             \
  extern const unsigned char csa__fb_##stem[], csa__fb_##stem##_end[];
#include "csa_fatbins.inc"
#undef CSA__FATBIN

#define CSA__FATBIN(stem, file, sass, ptx, arch_only)                                    \
  {#stem, csa__fb_##stem, csa__fb_##stem##_end, sass, ptx, arch_only},
const csa__fatbin csa__fatbins[] = {
#include "csa_fatbins.inc"
    {0, 0, 0, 0, 0, 0}};
#undef CSA__FATBIN

const int csa__n_fatbins = (int)(sizeof csa__fatbins / sizeof csa__fatbins[0]) - 1;
const int csa__fatbin_cuda_version = CSA__FATBIN_CUDA_VERSION;

#else /* no kernels in this build */

const csa__fatbin csa__fatbins[1] = {{0, 0, 0, 0, 0, 0}};
const int csa__n_fatbins = 0;
const int csa__fatbin_cuda_version = 0;

#endif
