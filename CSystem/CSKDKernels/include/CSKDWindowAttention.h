// Uformer's window attention for one window and all its heads, for the inference path: the logits, bias, mask,
// softmax and the product with the values stay in a scratch buffer of one window (no [windows, heads, N, N]
// tensor). Compiled portable, AVX2 + FMA and AVX-512; the variant is the kernel level of CSKDKernels.h
// (skd_kernels_level / skd_kernels_set_level), like every other row kernel.
#ifndef CSKDWINDOWATTENTION_H
#define CSKDWINDOWATTENTION_H

#include <stddef.h>

/// For every head h and query i of one window of n tokens:
///   out[i, h·d + p] = Σ_j softmax_j(q[i, h·d : h·d+d] · k[j, h·d : h·d+d] + bias[h, i, j] + mask(i, j)) · v[j, h·d + p]
/// with mask(i, j) = −100 where labels[i] ≠ labels[j] (the official shifted-window mask) and 0 without labels.
///
/// - q, k, v: rows of `ld` floats, row j of a window token; the heads' columns are at h·d (the query scale is
///   expected folded into q).
/// - bias: [heads, n, n], the relative-position bias.
/// - labels: [n] region labels, or NULL for an unshifted window.
/// - out: rows of `ldo` floats; columns [0, heads·d) are written.
/// - scratch: at least n·n + n·d floats.
void skd_window_attention(const float *q, const float *k, const float *v, ptrdiff_t ld,
                          float *out, ptrdiff_t ldo, const float *bias, const unsigned char *labels,
                          int n, int heads, int d, float *scratch);

#endif
