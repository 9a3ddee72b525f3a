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

static inline __attribute__((always_inline))
void window_attention_body(const float *restrict q, const float *restrict k, const float *restrict v, ptrdiff_t ld,
                           float *restrict out, ptrdiff_t ldo, const float *restrict bias,
                           const unsigned char *restrict labels, int n, int heads, int d, float *restrict scratch) {
    float *restrict kt = scratch;            // [d, n]: this head's keys, transposed
    float *restrict row = scratch + (ptrdiff_t)n * d;  // [n]: one query's logits, then its weights
    for (int h = 0; h < heads; h++) {
        const float *qh = q + (ptrdiff_t)h * d, *kh = k + (ptrdiff_t)h * d, *vh = v + (ptrdiff_t)h * d;
        for (int j = 0; j < n; j++)
            for (int p = 0; p < d; p++) kt[(ptrdiff_t)p * n + j] = kh[(ptrdiff_t)j * ld + p];
        const float *bh = bias + (ptrdiff_t)h * n * n;
        for (int i = 0; i < n; i++) {
            const float *qi = qh + (ptrdiff_t)i * ld, *bi = bh + (ptrdiff_t)i * n;
            for (int j = 0; j < n; j++) row[j] = 0.0f;
            for (int p = 0; p < d; p++) {
                const float a = qi[p], *kp = kt + (ptrdiff_t)p * n;
                for (int j = 0; j < n; j++) row[j] += a * kp[j];
            }
            if (labels) {
                const unsigned char li = labels[i];
                for (int j = 0; j < n; j++) row[j] = (row[j] + bi[j]) + (labels[j] == li ? 0.0f : -100.0f);
            } else {
                for (int j = 0; j < n; j++) row[j] += bi[j];
            }
            // Softmax over the row: max, exp, sum, each split over LANES partial results.
            float lane[LANES];
            for (int l = 0; l < LANES; l++) lane[l] = row[0];
            int body = n / LANES * LANES;
            for (int j0 = 0; j0 < body; j0 += LANES)
                for (int l = 0; l < LANES; l++) lane[l] = lane[l] > row[j0 + l] ? lane[l] : row[j0 + l];
            float m = row[0];
            for (int l = 0; l < LANES; l++) m = m > lane[l] ? m : lane[l];
            for (int j = body; j < n; j++) m = m > row[j] ? m : row[j];
            for (int j = 0; j < n; j++) row[j] = exp_body(row[j] - m);
            for (int l = 0; l < LANES; l++) lane[l] = 0.0f;
            for (int j0 = 0; j0 < body; j0 += LANES)
                for (int l = 0; l < LANES; l++) lane[l] += row[j0 + l];
            float s = 0.0f;
            for (int l = 0; l < LANES; l++) s += lane[l];
            for (int j = body; j < n; j++) s += row[j];
            const float inv = 1.0f / s;
            // out_i = (Σ_j e_j v_j) / s.
            float *restrict oi = out + (ptrdiff_t)i * ldo + (ptrdiff_t)h * d;
            for (int p = 0; p < d; p++) oi[p] = 0.0f;
            for (int j = 0; j < n; j++) {
                const float w = row[j], *vj = vh + (ptrdiff_t)j * ld;
                for (int p = 0; p < d; p++) oi[p] += w * vj[p];
            }
            for (int p = 0; p < d; p++) oi[p] *= inv;
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
