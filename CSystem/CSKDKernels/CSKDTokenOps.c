#include "CSKDTokenOps.h"
#include "CSKDKernels.h"
#include "KernelBodies.h"

// The body is written once and instantiated per instruction set; channels are the vector lanes (16 at a time,
// the last ones in one partial vector), so every variant sums each output in the same order.

/// Channels ch..ch+n of the token at x, n = 16 (full vectors) or the last n < 16 channels (loaded with their
/// other lanes zero, stored lane by lane).
SKD_INLINE void token_depthwise_lanes(float *restrict dst, const float *const *rows, ptrdiff_t x, ptrdiff_t w,
                                      ptrdiff_t c, ptrdiff_t ch, ptrdiff_t n, const float *restrict taps,
                                      const float *restrict bias, int flipped) {
#define SKD_TOKEN_LOAD(p) (n == SKD_LANES ? v_load(p) : v_load_tail((p), n, 0.0f))
    skd_v16 acc = bias ? SKD_TOKEN_LOAD(bias + ch) : v_splat(0.0f);
    for (int ky = 0; ky < 3; ky++) {
        const float *r = rows[ky];
        if (!r) continue;
        for (int kx = 0; kx < 3; kx++) {
            const ptrdiff_t xx = flipped ? x - kx + 1 : x + kx - 1;
            if (xx < 0 || xx >= w) continue;
            acc += SKD_TOKEN_LOAD(taps + (ky * 3 + kx) * c + ch) * SKD_TOKEN_LOAD(r + xx * c + ch);
        }
    }
#undef SKD_TOKEN_LOAD
    if (n == SKD_LANES) {
        v_store(dst + ch, acc);
    } else {
        float t[SKD_LANES];
        memcpy(t, &acc, sizeof t);
        for (ptrdiff_t k = 0; k < n; k++) dst[ch + k] = t[k];
    }
}

SKD_INLINE void token_depthwise_row_body(float *restrict out, const float *const *rows, ptrdiff_t w, ptrdiff_t c,
                                         const float *restrict taps, const float *restrict bias, int flipped) {
    for (ptrdiff_t x = 0; x < w; x++) {
        ptrdiff_t ch = 0;
        for (; ch + SKD_LANES <= c; ch += SKD_LANES)
            token_depthwise_lanes(out + x * c, rows, x, w, c, ch, SKD_LANES, taps, bias, flipped);
        if (ch < c) token_depthwise_lanes(out + x * c, rows, x, w, c, ch, c - ch, taps, bias, flipped);
    }
}

typedef void (*token_row_fn)(float *, const float *const *, ptrdiff_t, ptrdiff_t, const float *, const float *, int);

static void token_row_portable(float *out, const float *const *rows, ptrdiff_t w, ptrdiff_t c, const float *taps,
                               const float *bias, int flipped) {
    token_depthwise_row_body(out, rows, w, c, taps, bias, flipped);
}
#if defined(__x86_64__) && (defined(__clang__) || defined(__GNUC__))
#define SKD_TOKEN_X86 1
__attribute__((target("avx2,fma")))
static void token_row_avx2(float *out, const float *const *rows, ptrdiff_t w, ptrdiff_t c, const float *taps,
                           const float *bias, int flipped) {
    token_depthwise_row_body(out, rows, w, c, taps, bias, flipped);
}
__attribute__((target("avx512f,avx512bw,avx512dq,avx512vl,avx2,fma")))
static void token_row_avx512(float *out, const float *const *rows, ptrdiff_t w, ptrdiff_t c, const float *taps,
                             const float *bias, int flipped) {
    token_depthwise_row_body(out, rows, w, c, taps, bias, flipped);
}
#endif

void skd_token_depthwise3x3_row(float *out, const float *const *rows, ptrdiff_t w, ptrdiff_t c, const float *taps,
                                const float *bias, int flipped) {
    token_row_fn f = token_row_portable;
#ifdef SKD_TOKEN_X86
    const int level = skd_kernels_level();
    if (level >= 2) f = token_row_avx512;
    else if (level == 1) f = token_row_avx2;
#endif
    f(out, rows, w, c, taps, bias, flipped);
}
