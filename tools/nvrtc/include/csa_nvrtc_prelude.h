/*
 * Included before every kernel source compiled with NVRTC
 * (tools/build-fatbin --nvrtc, NVRTC's --pre-include).  nvcc includes
 * cuda_runtime.h, and through it math.h, into every .cu file; NVRTC
 * provides the device math functions but not the C macros, so the ones the
 * kernels use are defined here.
 */
#ifndef CSA_NVRTC_PRELUDE_H
#define CSA_NVRTC_PRELUDE_H

/* +inf as a float: the IEEE-754 bit pattern 0x7f800000 */
#ifndef INFINITY
#define INFINITY (__int_as_float(0x7f800000))
#endif

#endif
