#include "CSKDGemm.h"
#include "CSKDKernels.h"
#include "KernelBodies.h"

// The two bodies are written once and instantiated per instruction set with a register tile that fits it:
// AVX-512 4 rows × 64 columns (16 zmm accumulators), AVX2 6 rows × 16 columns (12 ymm), portable 2 rows × 16
// columns (8 xmm). A tile's B rows are loaded once per inner index and reused by every row of the tile; the tile's
// accumulators never leave registers until its last inner index.

// MARK: - C = A · B

/// Rows i..i+R, columns j..j+16·NV of C; NV ≤ 4 and R ≤ 8 are compile-time constants after inlining.
SKD_INLINE void gemm_tile(ptrdiff_t i, ptrdiff_t j, ptrdiff_t k, const float *restrict a, ptrdiff_t lda,
                          const float *restrict b, ptrdiff_t ldb, float *restrict c, ptrdiff_t ldc, int accumulate,
                          const int R, const int NV) {
    skd_v16 acc[8][4];
    for (int r = 0; r < R; r++)
        for (int v = 0; v < NV; v++)
            acc[r][v] = accumulate ? v_load(c + (i + r) * ldc + j + SKD_LANES * v) : v_splat(0.0f);
    for (ptrdiff_t p = 0; p < k; p++) {
        skd_v16 bv[4];
        for (int v = 0; v < NV; v++) bv[v] = v_load(b + p * ldb + j + SKD_LANES * v);
        for (int r = 0; r < R; r++) {
            const skd_v16 av = v_splat(a[(i + r) * lda + p]);
            for (int v = 0; v < NV; v++) acc[r][v] += av * bv[v];
        }
    }
    for (int r = 0; r < R; r++)
        for (int v = 0; v < NV; v++) v_store(c + (i + r) * ldc + j + SKD_LANES * v, acc[r][v]);
}

/// Every row of the column strip at j (16·NV columns): tiles of R rows, then single rows.
SKD_INLINE void gemm_strip(ptrdiff_t m, ptrdiff_t j, ptrdiff_t k, const float *restrict a, ptrdiff_t lda,
                           const float *restrict b, ptrdiff_t ldb, float *restrict c, ptrdiff_t ldc, int accumulate,
                           const int R, const int NV) {
    ptrdiff_t i = 0;
    for (; i + R <= m; i += R) gemm_tile(i, j, k, a, lda, b, ldb, c, ldc, accumulate, R, NV);
    for (; i < m; i++) gemm_tile(i, j, k, a, lda, b, ldb, c, ldc, accumulate, 1, NV);
}

SKD_INLINE void small_gemm_body(ptrdiff_t m, ptrdiff_t n, ptrdiff_t k, const float *restrict a, ptrdiff_t lda,
                                const float *restrict b, ptrdiff_t ldb, float *restrict c, ptrdiff_t ldc,
                                int accumulate, const int R, const int NV) {
    ptrdiff_t j = 0;
    for (; j + SKD_LANES * NV <= n; j += SKD_LANES * NV) gemm_strip(m, j, k, a, lda, b, ldb, c, ldc, accumulate, R, NV);
    for (; j + SKD_LANES <= n; j += SKD_LANES) gemm_strip(m, j, k, a, lda, b, ldb, c, ldc, accumulate, R, 1);
    // The last n mod 16 columns, one at a time, summing in the same order as the tiles.
    for (; j < n; j++)
        for (ptrdiff_t i = 0; i < m; i++) {
            float s = accumulate ? c[i * ldc + j] : 0.0f;
            for (ptrdiff_t p = 0; p < k; p++) s += a[i * lda + p] * b[p * ldb + j];
            c[i * ldc + j] = s;
        }
}

// MARK: - C = A · Bᵀ

/// Rows i..i+R, columns j..j+S of C, each a dot product of length k: 16 lane-wise partial sums over blocks of
/// 1024 products, folded by v_hsum into a double per element after each block (two-level summation: the rounding
/// error grows with 1024/16 + k/1024 additions rather than k/16, as accurate as OpenBLAS's K-blocked kernels over
/// the 32–64 K-pixel inner dimensions of weight gradients); R, S ≤ 4.
#define SKD_NT_BLOCK 1024
SKD_INLINE void gemm_nt_tile(ptrdiff_t i, ptrdiff_t j, ptrdiff_t k, const float *restrict a, ptrdiff_t lda,
                             const float *restrict b, ptrdiff_t ldb, float *restrict c, ptrdiff_t ldc, int accumulate,
                             const int R, const int S) {
    double total[4][4] = {{0}};
    for (ptrdiff_t p0 = 0; p0 < k; p0 += SKD_NT_BLOCK) {
        const ptrdiff_t p1 = p0 + SKD_NT_BLOCK < k ? p0 + SKD_NT_BLOCK : k;
        skd_v16 acc[4][4];
        for (int r = 0; r < R; r++)
            for (int s = 0; s < S; s++) acc[r][s] = v_splat(0.0f);
        ptrdiff_t p = p0;
        for (; p + SKD_LANES <= p1; p += SKD_LANES) {
            skd_v16 bv[4];
            for (int s = 0; s < S; s++) bv[s] = v_load(b + (j + s) * ldb + p);
            for (int r = 0; r < R; r++) {
                const skd_v16 av = v_load(a + (i + r) * lda + p);
                for (int s = 0; s < S; s++) acc[r][s] += av * bv[s];
            }
        }
        if (p < p1) {
            skd_v16 bv[4];
            for (int s = 0; s < S; s++) bv[s] = v_load_tail(b + (j + s) * ldb + p, p1 - p, 0.0f);
            for (int r = 0; r < R; r++) {
                const skd_v16 av = v_load_tail(a + (i + r) * lda + p, p1 - p, 0.0f);
                for (int s = 0; s < S; s++) acc[r][s] += av * bv[s];
            }
        }
        for (int r = 0; r < R; r++)
            for (int s = 0; s < S; s++) total[r][s] += (double)v_hsum(acc[r][s]);
    }
    for (int r = 0; r < R; r++)
        for (int s = 0; s < S; s++) {
            float *o = c + (i + r) * ldc + j + s;
            *o = accumulate ? (float)((double)*o + total[r][s]) : (float)total[r][s];
        }
}

SKD_INLINE void small_gemm_nt_body(ptrdiff_t m, ptrdiff_t n, ptrdiff_t k, const float *restrict a, ptrdiff_t lda,
                                   const float *restrict b, ptrdiff_t ldb, float *restrict c, ptrdiff_t ldc,
                                   int accumulate, const int T) {
    ptrdiff_t i = 0;
    for (; i + T <= m; i += T) {
        ptrdiff_t j = 0;
        for (; j + T <= n; j += T) gemm_nt_tile(i, j, k, a, lda, b, ldb, c, ldc, accumulate, T, T);
        for (; j < n; j++) gemm_nt_tile(i, j, k, a, lda, b, ldb, c, ldc, accumulate, T, 1);
    }
    for (; i < m; i++)
        for (ptrdiff_t j = 0; j < n; j++) gemm_nt_tile(i, j, k, a, lda, b, ldb, c, ldc, accumulate, 1, 1);
}

// MARK: - Variants and dispatch

typedef void (*gemm_fn)(ptrdiff_t, ptrdiff_t, ptrdiff_t, const float *, ptrdiff_t, const float *, ptrdiff_t, float *,
                        ptrdiff_t, int);

#define SKD_GEMM_VARIANT(suffix, target, R, NV, T)                                                                    \
    target static void small_gemm_##suffix(ptrdiff_t m, ptrdiff_t n, ptrdiff_t k, const float *a, ptrdiff_t lda,   \
                                           const float *b, ptrdiff_t ldb, float *c, ptrdiff_t ldc, int acc) {     \
        small_gemm_body(m, n, k, a, lda, b, ldb, c, ldc, acc, R, NV);                                              \
    }                                                                                                              \
    target static void small_gemm_nt_##suffix(ptrdiff_t m, ptrdiff_t n, ptrdiff_t k, const float *a, ptrdiff_t lda, \
                                              const float *b, ptrdiff_t ldb, float *c, ptrdiff_t ldc, int acc) {  \
        small_gemm_nt_body(m, n, k, a, lda, b, ldb, c, ldc, acc, T);                                               \
    }

SKD_GEMM_VARIANT(portable, , 2, 1, 2)
#if defined(__x86_64__) && (defined(__clang__) || defined(__GNUC__))
#define SKD_GEMM_X86 1
SKD_GEMM_VARIANT(avx2, __attribute__((target("avx2,fma"))), 6, 1, 2)
SKD_GEMM_VARIANT(avx512, __attribute__((target("avx512f,avx512bw,avx512dq,avx512vl,avx2,fma"))), 4, 4, 4)
#endif

#ifndef SKD_GEMM_X86
// One instruction set: every level runs the portable variants.
#define small_gemm_avx2 small_gemm_portable
#define small_gemm_avx512 small_gemm_portable
#define small_gemm_nt_avx2 small_gemm_nt_portable
#define small_gemm_nt_avx512 small_gemm_nt_portable
#endif

/// The variant of the kernel level in use (CSKDKernels.h).
static gemm_fn pick(gemm_fn portable, gemm_fn avx2, gemm_fn avx512) {
    const int level = skd_kernels_level();
    return level >= 2 ? avx512 : level == 1 ? avx2 : portable;
}

void skd_small_sgemm(ptrdiff_t m, ptrdiff_t n, ptrdiff_t k, const float *a, ptrdiff_t lda, const float *b,
                     ptrdiff_t ldb, float *c, ptrdiff_t ldc, int accumulate) {
    if (m <= 0 || n <= 0) return;
    pick(small_gemm_portable, small_gemm_avx2, small_gemm_avx512)(m, n, k, a, lda, b, ldb, c, ldc, accumulate);
}

void skd_small_sgemm_nt(ptrdiff_t m, ptrdiff_t n, ptrdiff_t k, const float *a, ptrdiff_t lda, const float *b,
                        ptrdiff_t ldb, float *c, ptrdiff_t ldc, int accumulate) {
    if (m <= 0 || n <= 0) return;
    pick(small_gemm_nt_portable, small_gemm_nt_avx2, small_gemm_nt_avx512)(m, n, k, a, lda, b, ldb, c, ldc, accumulate);
}

// Measured on an Intel Xeon (family 6 model 207) against OpenBLAS 0.3.21 on one thread (SkylakeX kernels for the
// AVX-512 level, Haswell for AVX2), thread CPU time (Docs/performance.md, "Narrow layers"). AVX-512: the direct
// product wins 1.15–1.9× with at most 32 rows and an inner dimension up to ~160, or an inner dimension of at most 8
// (to 64 rows); it loses from 64 rows with k ≥ 16 (0.88× at 84 × 16). A · Bᵀ (two-level sums) wins 3.2× at 8 × 8
// over 32 K pixels and ties at 16 × 16. AVX2 (6 × 16 tile) did not beat Haswell's kernels reliably on A · B, and
// A · Bᵀ only at 8 × 8 (1.3×): the portable and AVX2 levels keep OpenBLAS except there.
int skd_small_sgemm_preferred(ptrdiff_t m, ptrdiff_t n, ptrdiff_t k) {
    if (n < SKD_LANES || k <= 0) return 0;
    if (skd_kernels_level() < 2) return 0;
    return (m <= 32 && k <= 160) || (k <= 8 && m <= 64);
}

int skd_small_sgemm_nt_preferred(ptrdiff_t m, ptrdiff_t n, ptrdiff_t k) {
    const int level = skd_kernels_level();
    if (level < 1 || k < 256) return 0;
    return m <= 8 && n <= 8;
}
