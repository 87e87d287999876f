/*
 * stdint.h for NVRTC (tools/build-fatbin --nvrtc).  NVRTC compiles device
 * code without a host C library, so the few C headers the kernels include
 * are stood in for by this folder.  Widths are those of every CUDA target
 * (char 8, short 16, int 32, long long 64 bits, 64-bit pointers); the 64-bit
 * types are long long so the layout of a kernel argument struct is the same
 * as the host's whatever its data model (LP64 or LLP64).
 */
#ifndef CSA_NVRTC_STDINT_H
#define CSA_NVRTC_STDINT_H

typedef signed char int8_t;
typedef short int16_t;
typedef int int32_t;
typedef long long int64_t;
typedef unsigned char uint8_t;
typedef unsigned short uint16_t;
typedef unsigned int uint32_t;
typedef unsigned long long uint64_t;
typedef long long intptr_t;
typedef unsigned long long uintptr_t;

#define INT8_MAX 127
#define INT16_MAX 32767
#define INT32_MAX 2147483647
#define INT64_MAX 9223372036854775807LL
#define INT8_MIN (-INT8_MAX - 1)
#define INT16_MIN (-INT16_MAX - 1)
#define INT32_MIN (-INT32_MAX - 1)
#define INT64_MIN (-INT64_MAX - 1)
#define UINT8_MAX 255
#define UINT16_MAX 65535
#define UINT32_MAX 4294967295U
#define UINT64_MAX 18446744073709551615ULL

#endif
