#include "KernelBodies.h"

// The body is written once and instantiated per instruction set (the kernel levels of CSKDKernels.h). The logits
// and the weighted sum of values accumulate in register blocks; the softmax is the shared row kernel body
// (KernelBodies.h), so this file defines no softmax or exp of its own.

// acc[0..W) += a · src[0..W) for a block width W known at compile time: the block lives in registers (W/16 zmm,
// W/8 ymm) and its W/lanes accumulators are independent chains.
#define AXPY_BLOCK(W, acc, a, src) do { for (int l_ = 0; l_ < (W); l_++) (acc)[l_] += (a) * (src)[l_]; } while (0)

static inline __attribute__((always_inline))
void window_attention_body(const float *restrict q, const float *restrict k, const float *restrict v, ptrdiff_t ld,
                           float *restrict out, ptrdiff_t ldo, const float *restrict bias,
                           const unsigned char *restrict labels, int n, int heads, int d, float *restrict scratch) {
    float *restrict s = scratch;                          // [n, n]: logits, then attention weights
    float *restrict kt = scratch + (ptrdiff_t)n * n;     // [d, n]: this head's keys, transposed
    for (int h = 0; h < heads; h++) {
        const float *qh = q + (ptrdiff_t)h * d, *kh = k + (ptrdiff_t)h * d, *vh = v + (ptrdiff_t)h * d;
        for (int j = 0; j < n; j++)
            for (int p = 0; p < d; p++) kt[(ptrdiff_t)p * n + j] = kh[(ptrdiff_t)j * ld + p];
        const float *bh = bias + (ptrdiff_t)h * n * n;
        for (int i = 0; i < n; i++) {
            const float *qi = qh + (ptrdiff_t)i * ld, *bi = bh + (ptrdiff_t)i * n;
            float *restrict row = s + (ptrdiff_t)i * n;
            // Logits q_i · k_j, 64 then 16 keys at a time in registers, then one by one.
            int j0 = 0;
            for (; j0 + 64 <= n; j0 += 64) {
                float acc[64] = {0};
                for (int p = 0; p < d; p++) AXPY_BLOCK(64, acc, qi[p], kt + (ptrdiff_t)p * n + j0);
                for (int l = 0; l < 64; l++) row[j0 + l] = acc[l];
            }
            for (; j0 + 16 <= n; j0 += 16) {
                float acc[16] = {0};
                for (int p = 0; p < d; p++) AXPY_BLOCK(16, acc, qi[p], kt + (ptrdiff_t)p * n + j0);
                for (int l = 0; l < 16; l++) row[j0 + l] = acc[l];
            }
            for (; j0 < n; j0++) {
                float acc = 0.0f;
                for (int p = 0; p < d; p++) acc += qi[p] * kt[(ptrdiff_t)p * n + j0];
                row[j0] = acc;
            }
            if (labels) {
                const unsigned char li = labels[i];
                for (int j = 0; j < n; j++) row[j] = (row[j] + bi[j]) + (labels[j] == li ? 0.0f : -100.0f);
            } else {
                for (int j = 0; j < n; j++) row[j] += bi[j];
            }
            softmax_row_body(row, row, n);
        }
        // out_i = Σ_j a_ij v_j: four queries and 16 value columns at a time in registers.
        int i0 = 0;
        for (; i0 + 4 <= n; i0 += 4) {
            const float *e0 = s + (ptrdiff_t)i0 * n, *e1 = e0 + n, *e2 = e1 + n, *e3 = e2 + n;
            int p0 = 0;
            for (; p0 + 16 <= d; p0 += 16) {
                float a0[16] = {0}, a1[16] = {0}, a2[16] = {0}, a3[16] = {0};
                for (int j = 0; j < n; j++) {
                    const float *vj = vh + (ptrdiff_t)j * ld + p0;
                    AXPY_BLOCK(16, a0, e0[j], vj);
                    AXPY_BLOCK(16, a1, e1[j], vj);
                    AXPY_BLOCK(16, a2, e2[j], vj);
                    AXPY_BLOCK(16, a3, e3[j], vj);
                }
                float *o = out + (ptrdiff_t)i0 * ldo + (ptrdiff_t)h * d + p0;
                for (int l = 0; l < 16; l++) {
                    o[l] = a0[l];
                    o[ldo + l] = a1[l];
                    o[2 * ldo + l] = a2[l];
                    o[3 * ldo + l] = a3[l];
                }
            }
            for (; p0 < d; p0++)
                for (int r = 0; r < 4; r++) {
                    const float *e = s + (ptrdiff_t)(i0 + r) * n;
                    float acc = 0.0f;
                    for (int j = 0; j < n; j++) acc += e[j] * vh[(ptrdiff_t)j * ld + p0];
                    out[(ptrdiff_t)(i0 + r) * ldo + (ptrdiff_t)h * d + p0] = acc;
                }
        }
        for (; i0 < n; i0++) {
            const float *e = s + (ptrdiff_t)i0 * n;
            for (int p = 0; p < d; p++) {
                float acc = 0.0f;
                for (int j = 0; j < n; j++) acc += e[j] * vh[(ptrdiff_t)j * ld + p];
                out[(ptrdiff_t)i0 * ldo + (ptrdiff_t)h * d + p] = acc;
            }
        }
    }
}

typedef void (*window_attention_fn)(const float *, const float *, const float *, ptrdiff_t, float *, ptrdiff_t,
                                    const float *, const unsigned char *, int, int, int, float *);

static void window_attention_portable(const float *q, const float *k, const float *v, ptrdiff_t ld, float *out,
                                      ptrdiff_t ldo, const float *bias, const unsigned char *labels, int n, int heads,
                                      int d, float *scratch) {
    window_attention_body(q, k, v, ld, out, ldo, bias, labels, n, heads, d, scratch);
}

#if defined(__x86_64__) && (defined(__clang__) || defined(__GNUC__))
#define SKD_WA_X86 1
__attribute__((target("avx2,fma")))
static void window_attention_avx2(const float *q, const float *k, const float *v, ptrdiff_t ld, float *out,
                                  ptrdiff_t ldo, const float *bias, const unsigned char *labels, int n, int heads,
                                  int d, float *scratch) {
    window_attention_body(q, k, v, ld, out, ldo, bias, labels, n, heads, d, scratch);
}
__attribute__((target("avx512f,avx512bw,avx512dq,avx512vl,avx2,fma")))
static void window_attention_avx512(const float *q, const float *k, const float *v, ptrdiff_t ld, float *out,
                                    ptrdiff_t ldo, const float *bias, const unsigned char *labels, int n, int heads,
                                    int d, float *scratch) {
    window_attention_body(q, k, v, ld, out, ldo, bias, labels, n, heads, d, scratch);
}
#endif

void skd_window_attention(const float *q, const float *k, const float *v, ptrdiff_t ld, float *out, ptrdiff_t ldo,
                          const float *bias, const unsigned char *labels, int n, int heads, int d, float *scratch) {
    window_attention_fn f = window_attention_portable;
#ifdef SKD_WA_X86
    int level = skd_kernels_level();
    if (level >= 2) f = window_attention_avx512;
    else if (level == 1) f = window_attention_avx2;
#endif
    f(q, k, v, ld, out, ldo, bias, labels, n, heads, d, scratch);
}
