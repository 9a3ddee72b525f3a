#include "CSKDWindowAttention.h"
#include "CSKDCPU.h"

#include <stdint.h>
#include <string.h>

// The body is written once and instantiated per instruction set. Every hot loop runs over a contiguous row with
// no cross-iteration dependence (reductions are split over 16 lanes), so each instantiation vectorises at its width
// without -ffast-math.

#define LANES 16

// eˣ as FastMath.exp (Cephes' range reduction and degree-6 polynomial); −∞ and x < −87.34 give exactly 0.
static inline __attribute__((always_inline)) float exp_body(float x) {
    const float lowest = -87.33654f, magic = 12582912.0f;
    float xc = x < lowest ? lowest : (x > 88.0f ? 88.0f : x);
    float t = xc * 1.44269504f + magic;
    float k = t - magic;
    int32_t tb, mb;
    memcpy(&tb, &t, 4);
    memcpy(&mb, &magic, 4);
    int32_t n = tb - mb;
    float r = xc - k * 0.693359375f + k * 2.12194440e-4f;
    float p = 1.9875691500e-4f;
    p = p * r + 1.3981999507e-3f;
    p = p * r + 8.3334519073e-3f;
    p = p * r + 4.1665795894e-2f;
    p = p * r + 1.6666665459e-1f;
    p = p * r + 5.0000001201e-1f;
    float e = p * r * r + r + 1.0f;
    int32_t sb = (n + 127) << 23;
    float scale;
    memcpy(&scale, &sb, 4);
    return x < lowest ? 0.0f : e * scale;
}

// acc[0..W) += a · src[0..W) for a block width W known at compile time: the block lives in registers (W/16 zmm,
// W/8 ymm) and its W/lanes accumulators are independent chains.
#define AXPY_BLOCK(W, acc, a, src) do { for (int l_ = 0; l_ < (W); l_++) (acc)[l_] += (a) * (src)[l_]; } while (0)

static inline __attribute__((always_inline))
void window_attention_body(const float *restrict q, const float *restrict k, const float *restrict v, ptrdiff_t ld,
                           float *restrict out, ptrdiff_t ldo, const float *restrict bias,
                           const unsigned char *restrict labels, int n, int heads, int d, float *restrict scratch) {
    float *restrict s = scratch;                          // [n, n]: logits, then softmax numerators
    float *restrict kt = scratch + (ptrdiff_t)n * n;     // [d, n]: this head's keys, transposed
    float *restrict inv = kt + (ptrdiff_t)n * d;         // [n]: 1 / softmax denominators
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
            // Softmax numerators and the reciprocal of their sum; max and sum split over LANES partial results.
            float lane[LANES];
            for (int l = 0; l < LANES; l++) lane[l] = row[0];
            int body = n / LANES * LANES;
            for (int b0 = 0; b0 < body; b0 += LANES)
                for (int l = 0; l < LANES; l++) lane[l] = lane[l] > row[b0 + l] ? lane[l] : row[b0 + l];
            float m = row[0];
            for (int l = 0; l < LANES; l++) m = m > lane[l] ? m : lane[l];
            for (int j = body; j < n; j++) m = m > row[j] ? m : row[j];
            for (int j = 0; j < n; j++) row[j] = exp_body(row[j] - m);
            for (int l = 0; l < LANES; l++) lane[l] = 0.0f;
            for (int b0 = 0; b0 < body; b0 += LANES)
                for (int l = 0; l < LANES; l++) lane[l] += row[b0 + l];
            float sum = 0.0f;
            for (int l = 0; l < LANES; l++) sum += lane[l];
            for (int j = body; j < n; j++) sum += row[j];
            inv[i] = 1.0f / sum;
        }
        // out_i = (Σ_j e_ij v_j) / s_i: four queries and 16 value columns at a time in registers.
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
                    o[l] = a0[l] * inv[i0];
                    o[ldo + l] = a1[l] * inv[i0 + 1];
                    o[2 * ldo + l] = a2[l] * inv[i0 + 2];
                    o[3 * ldo + l] = a3[l] * inv[i0 + 3];
                }
            }
            for (; p0 < d; p0++)
                for (int r = 0; r < 4; r++) {
                    const float *e = s + (ptrdiff_t)(i0 + r) * n;
                    float acc = 0.0f;
                    for (int j = 0; j < n; j++) acc += e[j] * vh[(ptrdiff_t)j * ld + p0];
                    out[(ptrdiff_t)(i0 + r) * ldo + (ptrdiff_t)h * d + p0] = acc * inv[i0 + r];
                }
        }
        for (; i0 < n; i0++) {
            const float *e = s + (ptrdiff_t)i0 * n;
            for (int p = 0; p < d; p++) {
                float acc = 0.0f;
                for (int j = 0; j < n; j++) acc += e[j] * vh[(ptrdiff_t)j * ld + p];
                out[(ptrdiff_t)i0 * ldo + (ptrdiff_t)h * d + p] = acc * inv[i0];
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

static int wa_level = -1;
static window_attention_fn wa_impl = window_attention_portable;

/// The widest variant the CPU can run: 2 AVX-512, 1 AVX2 + FMA, 0 portable.
static int supported_level(void) {
#ifdef SKD_WA_X86
    skd_cpu_info info;
    skd_cpu_query(&info);
    const unsigned int avx512 = SKD_CPU_AVX512F | SKD_CPU_AVX512BW | SKD_CPU_AVX512DQ | SKD_CPU_AVX512VL;
    if ((info.features & avx512) == avx512) return 2;
    if ((info.features & (SKD_CPU_AVX2 | SKD_CPU_FMA)) == (SKD_CPU_AVX2 | SKD_CPU_FMA)) return 1;
#endif
    return 0;
}

static void apply_level(int level) {
    window_attention_fn f = window_attention_portable;
#ifdef SKD_WA_X86
    if (level >= 2) f = window_attention_avx512;
    else if (level == 1) f = window_attention_avx2;
#endif
    __atomic_store_n(&wa_impl, f, __ATOMIC_RELAXED);
    __atomic_store_n(&wa_level, level, __ATOMIC_RELEASE);
}

int skd_window_attention_level(void) {
    int level = __atomic_load_n(&wa_level, __ATOMIC_ACQUIRE);
    if (level < 0) { level = supported_level(); apply_level(level); }
    return level;
}

void skd_window_attention_set_level(int level) {
    int best = supported_level();
    apply_level(level < 0 || level > best ? best : level);
}

void skd_window_attention(const float *q, const float *k, const float *v, ptrdiff_t ld, float *out, ptrdiff_t ldo,
                          const float *bias, const unsigned char *labels, int n, int heads, int d, float *scratch) {
    if (__atomic_load_n(&wa_level, __ATOMIC_ACQUIRE) < 0) (void)skd_window_attention_level();
    __atomic_load_n(&wa_impl, __ATOMIC_RELAXED)(q, k, v, ld, out, ldo, bias, labels, n, heads, d, scratch);
}
