// Direct matrix products for narrow layers: the 1×1 convolutions, im2col products and channel attention of small
// students (8–32 channels) are GEMMs with few rows or a short inner dimension over many pixels, where OpenBLAS's
// packing costs more than the product. Compiled portable, AVX2 + FMA and AVX-512; the variant is the kernel level
// of CSKDKernels.h (skd_kernels_level / skd_kernels_set_level), like every other row kernel.
#ifndef CSKDGEMM_H
#define CSKDGEMM_H

#include <stddef.h>

/// Row-major C = A · B, or C += A · B when `accumulate` is non-zero, on one thread.
///
/// - a: [m, k] with leading dimension lda ≥ k.
/// - b: [k, n] with leading dimension ldb ≥ n.
/// - c: [m, n] with leading dimension ldc ≥ n; must not overlap a or b.
/// Each C element sums its k products in order p = 0, 1, …, k − 1 (with AVX-512 and AVX2 each product is fused
/// into the running sum), so results do not depend on how a caller splits the columns.
void skd_small_sgemm(ptrdiff_t m, ptrdiff_t n, ptrdiff_t k, const float *a, ptrdiff_t lda, const float *b,
                     ptrdiff_t ldb, float *c, ptrdiff_t ldc, int accumulate);

/// Row-major C = A · Bᵀ, or C += A · Bᵀ when `accumulate` is non-zero, on one thread: few rows and columns, a long
/// inner dimension (channel attention's q·kᵀ over all pixels).
///
/// - a: [m, k] with leading dimension lda ≥ k.
/// - b: [n, k] with leading dimension ldb ≥ k.
/// - c: [m, n] with leading dimension ldc ≥ n; must not overlap a or b.
void skd_small_sgemm_nt(ptrdiff_t m, ptrdiff_t n, ptrdiff_t k, const float *a, ptrdiff_t lda, const float *b,
                        ptrdiff_t ldb, float *c, ptrdiff_t ldc, int accumulate);

/// Whether the kernel level in use computes an `[m, k] · [k, n]` product faster with skd_small_sgemm than OpenBLAS
/// does on one thread (measured per level on the shapes of narrow students; 0 at the portable level).
int skd_small_sgemm_preferred(ptrdiff_t m, ptrdiff_t n, ptrdiff_t k);

/// Whether the kernel level in use computes an `[m, k] · [n, k]ᵀ` product faster with skd_small_sgemm_nt.
int skd_small_sgemm_nt_preferred(ptrdiff_t m, ptrdiff_t n, ptrdiff_t k);

#endif
