// Uformer's LeFF depthwise 3×3 on the token grid (channels last, `[B, H·W, C]`), one output row at a time, for the
// training op and the inference path alike. Compiled portable, AVX2 + FMA and AVX-512; the variant is the kernel
// level of CSKDKernels.h (skd_kernels_level / skd_kernels_set_level), like every other row kernel.
#ifndef CSKDTOKENOPS_H
#define CSKDTOKENOPS_H

#include <stddef.h>

/// One row of `w` tokens of `c` channels:
///   out[x, ch] = bias[ch] + Σ_{ky, kx} taps[(ky·3 + kx)·c + ch] · rows[ky][x′, ch],
/// with x′ = x + kx − 1, or x′ = x − kx + 1 when `flipped` (the input gradient, whose caller passes the rows in
/// reverse order); taps outside the row or with a NULL row are skipped (zero padding). Each output sums the bias,
/// then the taps in (ky, kx) order.
///
/// - out: [w, c]; must not overlap the rows.
/// - rows: 3 pointers to input rows of [w, c], or NULL.
/// - taps: [9, c], tap-major (the `[C, 1, 3, 3]` weight transposed).
/// - bias: [c], or NULL for zero.
void skd_token_depthwise3x3_row(float *out, const float *const *rows, ptrdiff_t w, ptrdiff_t c, const float *taps,
                                const float *bias, int flipped);

#endif
