/* limits.h for NVRTC (see stdint.h here): the CUDA targets' int widths. */
#ifndef CSA_NVRTC_LIMITS_H
#define CSA_NVRTC_LIMITS_H

#define CHAR_BIT 8
#define SCHAR_MAX 127
#define SCHAR_MIN (-SCHAR_MAX - 1)
#define SHRT_MAX 32767
#define SHRT_MIN (-SHRT_MAX - 1)
#define INT_MAX 2147483647
#define INT_MIN (-INT_MAX - 1)
#define UINT_MAX 4294967295U
#define LLONG_MAX 9223372036854775807LL
#define LLONG_MIN (-LLONG_MAX - 1)
#define ULLONG_MAX 18446744073709551615ULL

#endif
