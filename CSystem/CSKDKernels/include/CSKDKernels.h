// Row kernels of SwiftSKD's fused inference paths, in C so that they can be compiled a second time for
// AVX2 + FMA and picked at run time (Swift library targets build for baseline x86-64: SSE2, no FMA).
// Every function has the semantics of its portable Swift counterpart; results differ only by rounding
// (FMA contraction and lane order).
#ifndef CSKDKERNELS_H
#define CSKDKERNELS_H

#include <stddef.h>

#include "CSKDCPU.h"
#include "CSKDWindowAttention.h"

/// 1 when the AVX2 + FMA variants are in use on this CPU, 0 when the portable ones are.
int skd_kernels_vectorized(void);

/// row[i] += w0·line[i−1] + w1·line[i] + w2·line[i+1] for i in [0, n), with line[−1] = line[n] = 0: one kernel row
/// of a 3×3 depthwise convolution (stride 1, padding 1) added into one output row.
void skd_depthwise3_row_accumulate(float *row, const float *line, float w0, float w1, float w2, ptrdiff_t n);

/// out[i] = gelu(a[i]) · b[i] with the exact (erf) GELU, erf by the rational approximation of FastMath.erf.
void skd_gelu_gate(float *out, const float *a, const float *b, ptrdiff_t n);

/// out[i] = gelu(a[i]) with the exact (erf) GELU; `out` may equal `a`.
void skd_gelu(float *out, const float *a, ptrdiff_t n);

#endif
