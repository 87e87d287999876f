/* stddef.h for NVRTC (see stdint.h here).  NVRTC predefines size_t and
 * ptrdiff_t; the rest is what the shared C headers use. */
#ifndef CSA_NVRTC_STDDEF_H
#define CSA_NVRTC_STDDEF_H

#ifndef NULL
#define NULL 0
#endif
#define offsetof(type, member) __builtin_offsetof(type, member)

#endif
