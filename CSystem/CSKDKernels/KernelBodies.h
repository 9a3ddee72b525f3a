// The kernel bodies, each written once as an always-inline function. CSKDKernels.c instantiates every body in
// three functions with different target attributes (portable, AVX2 + FMA, AVX-512); inlined there, each body is
// compiled for its caller's instruction set.
//
// Element-wise loops are plain loops that the vectoriser widens (marked SKD_ELEMENTWISE: every iteration reads and
// writes the same index only, so in-place calls are safe). Reductions keep 16-lane vector accumulators (GCC/clang
// vector extensions: one zmm with AVX-512, two ymm with AVX2, four xmm portable) combined in a fixed order, so
// that every variant sums in the same order.
#ifndef SKD_KERNEL_BODIES_H
#define SKD_KERNEL_BODIES_H

#include "CSKDKernels.h"
#include <math.h>
#include <stdlib.h>
#include <string.h>

#define SKD_INLINE static inline __attribute__((always_inline))
// The 16-lane helpers pass vectors by value; they are always inlined, so no call ever uses that ABI.
#if defined(__clang__)
#pragma clang diagnostic ignored "-Wpsabi"
#elif defined(__GNUC__)
#pragma GCC diagnostic ignored "-Wpsabi"
#endif
#if defined(__clang__)
#define SKD_ELEMENTWISE _Pragma("clang loop vectorize(assume_safety) interleave(enable)")
#define SKD_SQRT(x) __builtin_elementwise_sqrt(x)
#else
#define SKD_ELEMENTWISE _Pragma("GCC ivdep")
#define SKD_SQRT(x) __builtin_sqrtf(x)
#endif

// MARK: - 16-lane vectors and row reductions

#define SKD_LANES 16
typedef float skd_v16 __attribute__((vector_size(64), aligned(4), may_alias));
typedef int32_t skd_v16i __attribute__((vector_size(64), aligned(4), may_alias));

SKD_INLINE skd_v16 v_load(const float *p) { return *(const skd_v16 *)p; }
SKD_INLINE skd_v16 v_splat(float x) { return (skd_v16){0} + x; }
SKD_INLINE void v_store(float *p, skd_v16 v) { *(skd_v16 *)p = v; }

/// The first n (< 16) values of p, the other lanes `fill`.
SKD_INLINE skd_v16 v_load_tail(const float *p, ptrdiff_t n, float fill) {
    float t[SKD_LANES];
    for (int k = 0; k < SKD_LANES; k++) t[k] = k < n ? p[k] : fill;
    return v_load(t);
}

/// Lanes folded pairwise (k + 8, then k + 4, …): the same order in every variant.
SKD_INLINE float v_hsum(skd_v16 a) {
    float t[SKD_LANES];
    memcpy(t, &a, sizeof t);
    for (int w = SKD_LANES / 2; w > 0; w /= 2)
        for (int k = 0; k < w; k++) t[k] += t[k + w];
    return t[0];
}

SKD_INLINE skd_v16 v_max(skd_v16 a, skd_v16 b) {
    skd_v16i m = a > b;
    return (skd_v16)(((skd_v16i)a & m) | ((skd_v16i)b & ~m));
}

SKD_INLINE float v_hmax(skd_v16 a) {
    float t[SKD_LANES];
    memcpy(t, &a, sizeof t);
    for (int w = SKD_LANES / 2; w > 0; w /= 2)
        for (int k = 0; k < w; k++) t[k] = t[k + w] > t[k] ? t[k + w] : t[k];
    return t[0];
}

/// Σ p[0..<n].
SKD_INLINE float row_sum(const float *p, ptrdiff_t n) {
    skd_v16 a0 = {0}, a1 = {0}, a2 = {0}, a3 = {0};
    ptrdiff_t i = 0;
    for (; i + 4 * SKD_LANES <= n; i += 4 * SKD_LANES) {
        a0 += v_load(p + i);
        a1 += v_load(p + i + SKD_LANES);
        a2 += v_load(p + i + 2 * SKD_LANES);
        a3 += v_load(p + i + 3 * SKD_LANES);
    }
    for (; i + SKD_LANES <= n; i += SKD_LANES) a0 += v_load(p + i);
    if (i < n) a1 += v_load_tail(p + i, n - i, 0.0f);
    return v_hsum((a0 + a1) + (a2 + a3));
}

/// Σ a[i]·b[i] over 0..<n.
SKD_INLINE float row_dot(const float *a, const float *b, ptrdiff_t n) {
    skd_v16 a0 = {0}, a1 = {0}, a2 = {0}, a3 = {0};
    ptrdiff_t i = 0;
    for (; i + 4 * SKD_LANES <= n; i += 4 * SKD_LANES) {
        a0 += v_load(a + i) * v_load(b + i);
        a1 += v_load(a + i + SKD_LANES) * v_load(b + i + SKD_LANES);
        a2 += v_load(a + i + 2 * SKD_LANES) * v_load(b + i + 2 * SKD_LANES);
        a3 += v_load(a + i + 3 * SKD_LANES) * v_load(b + i + 3 * SKD_LANES);
    }
    for (; i + SKD_LANES <= n; i += SKD_LANES) a0 += v_load(a + i) * v_load(b + i);
    if (i < n) a1 += v_load_tail(a + i, n - i, 0.0f) * v_load_tail(b + i, n - i, 0.0f);
    return v_hsum((a0 + a1) + (a2 + a3));
}

/// max p[0..<n] (−∞ for an empty row; NaN values are skipped).
SKD_INLINE float row_max(const float *p, ptrdiff_t n) {
    skd_v16 a0 = v_splat(-INFINITY), a1 = a0;
    ptrdiff_t i = 0;
    for (; i + 2 * SKD_LANES <= n; i += 2 * SKD_LANES) {
        a0 = v_max(v_load(p + i), a0);
        a1 = v_max(v_load(p + i + SKD_LANES), a1);
    }
    for (; i + SKD_LANES <= n; i += SKD_LANES) a0 = v_max(v_load(p + i), a0);
    if (i < n) a1 = v_max(v_load_tail(p + i, n - i, -INFINITY), a1);
    return v_hmax(v_max(a0, a1));
}

// MARK: - GELU

#define SKD_SQRT1_2 0.70710678118654752f
#define SKD_INV_SQRT_2PI 0.39894228040143268f

SKD_INLINE float gelu1(float x) { return 0.5f * x * (1.0f + skd_erff(x * SKD_SQRT1_2)); }

SKD_INLINE void gelu_gate_body(float *out, const float *a, const float *b, ptrdiff_t n) {
    SKD_ELEMENTWISE
    for (ptrdiff_t i = 0; i < n; i++) out[i] = gelu1(a[i]) * b[i];
}

SKD_INLINE void gelu_body(float *out, const float *a, ptrdiff_t n) {
    SKD_ELEMENTWISE
    for (ptrdiff_t i = 0; i < n; i++) out[i] = gelu1(a[i]);
}

SKD_INLINE void gelu_backward_body(float *dx, const float *g, const float *x, ptrdiff_t n) {
    SKD_ELEMENTWISE
    for (ptrdiff_t i = 0; i < n; i++) {
        float v = x[i];
        float cdf = 0.5f * (1.0f + skd_erff(v * SKD_SQRT1_2));
        float pdf = SKD_INV_SQRT_2PI * skd_expf(-0.5f * v * v);
        dx[i] = g[i] * (cdf + v * pdf);
    }
}

SKD_INLINE void gelu_gate_backward_body(float *restrict d1, float *restrict d2, const float *restrict g,
                                        const float *restrict x1, const float *restrict x2, ptrdiff_t n) {
    for (ptrdiff_t i = 0; i < n; i++) {
        float v = x1[i];
        float cdf = 0.5f * (1.0f + skd_erff(v * SKD_SQRT1_2));
        float pdf = SKD_INV_SQRT_2PI * skd_expf(-0.5f * v * v);
        d1[i] = g[i] * x2[i] * (cdf + v * pdf);
        d2[i] = g[i] * (v * cdf);
    }
}

// MARK: - Softmax rows

SKD_INLINE void softmax_row_body(float *y, const float *x, ptrdiff_t n) {
    if (n <= 0) return;
    float m = row_max(x, n);
    SKD_ELEMENTWISE
    for (ptrdiff_t j = 0; j < n; j++) y[j] = skd_expf(x[j] - m);
    float inv = 1.0f / row_sum(y, n);
    SKD_ELEMENTWISE
    for (ptrdiff_t j = 0; j < n; j++) y[j] *= inv;
}

SKD_INLINE void softmax_backward_row_body(float *dx, const float *g, const float *y, ptrdiff_t n, float scale) {
    float s = row_dot(g, y, n);
    SKD_ELEMENTWISE
    for (ptrdiff_t j = 0; j < n; j++) dx[j] = y[j] * (g[j] - s) * scale;
}

// MARK: - Channel LayerNorm

SKD_INLINE void layernorm_forward_body(const float *restrict x, ptrdiff_t xs, float *restrict y, ptrdiff_t ys,
                                       const float *restrict w, const float *restrict b, ptrdiff_t c, ptrdiff_t len,
                                       float eps, float *restrict mu, float *restrict rs) {
    const float invC = 1.0f / (float)c;
    // The mean as channel 0 plus the mean deviation from it (accumulated in rs, free until the variance pass).
    for (ptrdiff_t j = 0; j < len; j++) rs[j] = 0.0f;
    for (ptrdiff_t ch = 1; ch < c; ch++) {
        const float *xc = x + ch * xs;
        for (ptrdiff_t j = 0; j < len; j++) rs[j] += xc[j] - x[j];
    }
    for (ptrdiff_t j = 0; j < len; j++) mu[j] = x[j] + rs[j] * invC;
    for (ptrdiff_t j = 0; j < len; j++) rs[j] = 0.0f;
    for (ptrdiff_t ch = 0; ch < c; ch++) {
        const float *xc = x + ch * xs;
        for (ptrdiff_t j = 0; j < len; j++) { float d = xc[j] - mu[j]; rs[j] += d * d; }
    }
    for (ptrdiff_t j = 0; j < len; j++) rs[j] = 1.0f / SKD_SQRT(rs[j] * invC + eps);
    if (b) {
        for (ptrdiff_t ch = 0; ch < c; ch++) {
            const float *xc = x + ch * xs;
            float *yc = y + ch * ys;
            const float wc = w[ch], bc = b[ch];
            for (ptrdiff_t j = 0; j < len; j++) yc[j] = (xc[j] - mu[j]) * rs[j] * wc + bc;
        }
    } else {
        for (ptrdiff_t ch = 0; ch < c; ch++) {
            const float *xc = x + ch * xs;
            float *yc = y + ch * ys;
            const float wc = w[ch];
            for (ptrdiff_t j = 0; j < len; j++) yc[j] = xc[j] * (rs[j] * wc);
        }
    }
}

SKD_INLINE void layernorm_backward_body(const float *restrict x, const float *restrict g, ptrdiff_t stride,
                                        const float *restrict w, const float *restrict mu, const float *restrict rs,
                                        ptrdiff_t c, ptrdiff_t len, int with_bias, float *restrict dx,
                                        float *restrict dw, float *restrict db, float *restrict scratch) {
    const float invC = 1.0f / (float)c;
    float *restrict sum_a = scratch, *restrict sum_az = scratch + len, *restrict z = scratch + 2 * len;
    for (ptrdiff_t j = 0; j < len; j++) { sum_a[j] = 0.0f; sum_az[j] = 0.0f; }
    for (ptrdiff_t ch = 0; ch < c; ch++) {
        const float *xc = x + ch * stride, *gc = g + ch * stride;
        const float wc = w[ch];
        if (with_bias) {
            for (ptrdiff_t j = 0; j < len; j++) z[j] = (xc[j] - mu[j]) * rs[j];
        } else {
            for (ptrdiff_t j = 0; j < len; j++) z[j] = xc[j] * rs[j];
        }
        if (dx) {
            for (ptrdiff_t j = 0; j < len; j++) {
                float a = gc[j] * wc;
                sum_a[j] += a;
                sum_az[j] += a * z[j];
            }
        }
        if (dw) dw[ch] = row_dot(gc, z, len);
        if (db) db[ch] = row_sum(gc, len);
    }
    if (!dx) return;
    const float centred = with_bias ? invC : 0.0f;
    for (ptrdiff_t j = 0; j < len; j++) { sum_a[j] *= centred; sum_az[j] *= invC; }
    for (ptrdiff_t ch = 0; ch < c; ch++) {
        const float *xc = x + ch * stride, *gc = g + ch * stride;
        float *dc = dx + ch * stride;
        const float wc = w[ch];
        for (ptrdiff_t j = 0; j < len; j++) {
            float xhat = (xc[j] - mu[j]) * rs[j];
            dc[j] = rs[j] * (gc[j] * wc - sum_a[j] - xhat * sum_az[j]);
        }
    }
}

// MARK: - Depthwise rows

/// One output column where some taps fall outside the input row.
SKD_INLINE void depthwise_edge(float *out, ptrdiff_t i, const float *src, ptrdiff_t wi, const float *w, ptrdiff_t k,
                               ptrdiff_t pad) {
    float acc = 0.0f;
    for (ptrdiff_t kj = 0; kj < k; kj++) {
        ptrdiff_t j = i + kj - pad;
        if (j >= 0 && j < wi) acc += w[kj] * src[j];
    }
    out[i] += acc;
}

/// o[i] += w0·s[i] + w1·s[i+1] + w2·s[i+2] for i in [0, m), 16 lanes at a time. The last < 16 columns are covered
/// by one more vector ending at m, computed from the original values of o saved before the loop (the overlapping
/// columns are rewritten with the same result): no scalar epilogue, which at W ≈ 128 cost as much as the row.
/// Rows shorter than 16 take the scalar loop.
SKD_INLINE void depthwise_interior3(float *restrict o, const float *restrict s, ptrdiff_t m, const float *restrict w) {
    if (m < SKD_LANES) {
        for (ptrdiff_t i = 0; i < m; i++) o[i] += w[0] * s[i] + w[1] * s[i + 1] + w[2] * s[i + 2];
        return;
    }
    const skd_v16 w0 = v_splat(w[0]), w1 = v_splat(w[1]), w2 = v_splat(w[2]);
    const ptrdiff_t last = m - SKD_LANES;
    const skd_v16 o_last = v_load(o + last);
    for (ptrdiff_t i = 0; i < last; i += SKD_LANES)
        v_store(o + i, v_load(o + i) + (w0 * v_load(s + i) + w1 * v_load(s + i + 1) + w2 * v_load(s + i + 2)));
    v_store(o + last, o_last + (w0 * v_load(s + last) + w1 * v_load(s + last + 1) + w2 * v_load(s + last + 2)));
}

/// The 5-tap form of depthwise_interior3.
SKD_INLINE void depthwise_interior5(float *restrict o, const float *restrict s, ptrdiff_t m, const float *restrict w) {
    if (m < SKD_LANES) {
        for (ptrdiff_t i = 0; i < m; i++)
            o[i] += w[0] * s[i] + w[1] * s[i + 1] + w[2] * s[i + 2] + w[3] * s[i + 3] + w[4] * s[i + 4];
        return;
    }
    const skd_v16 w0 = v_splat(w[0]), w1 = v_splat(w[1]), w2 = v_splat(w[2]), w3 = v_splat(w[3]), w4 = v_splat(w[4]);
    const ptrdiff_t last = m - SKD_LANES;
    const skd_v16 o_last = v_load(o + last);
    for (ptrdiff_t i = 0; i < last; i += SKD_LANES)
        v_store(o + i, v_load(o + i) + (w0 * v_load(s + i) + w1 * v_load(s + i + 1) + w2 * v_load(s + i + 2)
                                        + w3 * v_load(s + i + 3) + w4 * v_load(s + i + 4)));
    v_store(o + last, o_last + (w0 * v_load(s + last) + w1 * v_load(s + last + 1) + w2 * v_load(s + last + 2)
                                + w3 * v_load(s + last + 3) + w4 * v_load(s + last + 4)));
}

SKD_INLINE void depthwise_row_body(float *restrict out, ptrdiff_t wo, const float *restrict src, ptrdiff_t wi,
                                   const float *restrict w, ptrdiff_t k, ptrdiff_t pad) {
    // Interior [lo, hi): every tap reads inside the row.
    ptrdiff_t lo = pad > 0 ? pad : 0, hi = wi + pad - k + 1;
    if (lo > wo) lo = wo;
    if (hi > wo) hi = wo;
    if (hi < lo) hi = lo;
    for (ptrdiff_t i = 0; i < lo; i++) depthwise_edge(out, i, src, wi, w, k, pad);
    for (ptrdiff_t i = hi; i < wo; i++) depthwise_edge(out, i, src, wi, w, k, pad);
    if (hi <= lo) return;
    const float *s = src + (lo - pad);   // s[i − lo + kj] = src[i + kj − pad]
    float *o = out + lo;
    const ptrdiff_t m = hi - lo;
    if (k == 3) depthwise_interior3(o, s, m, w);
    else if (k == 5) depthwise_interior5(o, s, m, w);
    else {
        ptrdiff_t kj = 0;
        for (; kj + 4 <= k; kj += 4) {
            const float w0 = w[kj], w1 = w[kj + 1], w2 = w[kj + 2], w3 = w[kj + 3];
            const float *t = s + kj;
            for (ptrdiff_t i = 0; i < m; i++) o[i] += w0 * t[i] + w1 * t[i + 1] + w2 * t[i + 2] + w3 * t[i + 3];
        }
        for (; kj < k; kj++) {
            const float w0 = w[kj];
            const float *t = s + kj;
            for (ptrdiff_t i = 0; i < m; i++) o[i] += w0 * t[i];
        }
    }
}

/// out[i] = bias + Σ_(ki: rows[ki] non-null) Σ_kj w[ki·kw + kj] · rows[ki][i + kj − pad] (terms outside [0, wi)
/// omitted): one whole output row of a depthwise convolution, every kernel row in one pass over the output (written
/// once, never read). 3- and 5-wide kernels vectorise the interior 16 columns at a time, the last columns as one
/// overlapping vector; other widths and narrow rows accumulate row by row.
#define SKD_MAX_KERNEL_ROWS 16
SKD_INLINE void depthwise_output_row_body(float *restrict out, ptrdiff_t wo, const float *const *rows, ptrdiff_t kh,
                                          ptrdiff_t wi, const float *restrict w, ptrdiff_t kw, ptrdiff_t pad,
                                          float bias) {
    const float *r[SKD_MAX_KERNEL_ROWS];
    const float *wr[SKD_MAX_KERNEL_ROWS];
    ptrdiff_t n = 0;
    for (ptrdiff_t ki = 0; ki < kh && ki < SKD_MAX_KERNEL_ROWS; ki++)
        if (rows[ki]) { r[n] = rows[ki]; wr[n] = w + ki * kw; n++; }
    ptrdiff_t lo = pad > 0 ? pad : 0, hi = wi + pad - kw + 1;
    if (lo > wo) lo = wo;
    if (hi > wo) hi = wo;
    if (hi < lo) hi = lo;
    const ptrdiff_t m = hi - lo;
    if (kh > SKD_MAX_KERNEL_ROWS || (kw != 3 && kw != 5) || m < SKD_LANES) {
        for (ptrdiff_t i = 0; i < wo; i++) out[i] = bias;
        for (ptrdiff_t ki = 0; ki < kh; ki++)
            if (rows[ki]) depthwise_row_body(out, wo, rows[ki], wi, w + ki * kw, kw, pad);
        return;
    }
    for (ptrdiff_t i = 0; i < wo; i++) {
        if (i == lo) i = hi;
        if (i >= wo) break;
        float acc = bias;
        for (ptrdiff_t t = 0; t < n; t++) {
            float part = 0.0f;
            for (ptrdiff_t kj = 0; kj < kw; kj++) {
                ptrdiff_t j = i + kj - pad;
                if (j >= 0 && j < wi) part += wr[t][kj] * r[t][j];
            }
            acc += part;
        }
        out[i] = acc;
    }
    float *o = out + lo;
    const ptrdiff_t off = lo - pad;   // r[t][i + off + kj] = rows[ki][(lo + i) + kj − pad]
    const skd_v16 b = v_splat(bias);
    for (ptrdiff_t i = 0;; i += SKD_LANES) {
        if (i > m - SKD_LANES) i = m - SKD_LANES;
        skd_v16 acc = b;
        if (kw == 3) {
            for (ptrdiff_t t = 0; t < n; t++) {
                const float *s = r[t] + off + i;
                acc += v_splat(wr[t][0]) * v_load(s) + v_splat(wr[t][1]) * v_load(s + 1) + v_splat(wr[t][2]) * v_load(s + 2);
            }
        } else {
            for (ptrdiff_t t = 0; t < n; t++) {
                const float *s = r[t] + off + i;
                acc += v_splat(wr[t][0]) * v_load(s) + v_splat(wr[t][1]) * v_load(s + 1) + v_splat(wr[t][2]) * v_load(s + 2)
                       + v_splat(wr[t][3]) * v_load(s + 3) + v_splat(wr[t][4]) * v_load(s + 4);
            }
        }
        v_store(o + i, acc);
        if (i == m - SKD_LANES) break;
    }
}

/// The weight gradient of one plane (stride 1, dilation 1). Both planes are first copied with zero-padded rows
/// (x: pad_w zeros on the left, the row length rounded up to 16 lanes plus k_w − 1; g: rounded up to 16 lanes), so
/// that every tap is a run of whole 16-lane multiply-adds into one vector accumulator per tap, summed across lanes
/// once per plane. Negative padding (never produced by conv2d's weight gradient) takes per-row dot products.
SKD_INLINE void depthwise_plane_weight_grad_body(double *gw, const float *g, ptrdiff_t ho, ptrdiff_t wo,
                                                 const float *x, ptrdiff_t h, ptrdiff_t w, ptrdiff_t kh, ptrdiff_t kw,
                                                 ptrdiff_t padh, ptrdiff_t padw) {
    enum { max_taps = 64 };
    const ptrdiff_t taps = kh * kw;
    const ptrdiff_t rounded = (wo + SKD_LANES - 1) / SKD_LANES * SKD_LANES, stride = rounded + kw - 1;
    float *buffer = NULL;
    if (padw >= 0 && taps <= max_taps && ho > 0 && wo > 0)
        buffer = (float *)calloc((size_t)(h * stride + ho * rounded), sizeof(float));
    if (!buffer) {
        for (ptrdiff_t oh = 0; oh < ho; oh++)
            for (ptrdiff_t ki = 0; ki < kh; ki++) {
                ptrdiff_t ih = oh + ki - padh;
                if (ih < 0 || ih >= h) continue;
                for (ptrdiff_t kj = 0; kj < kw; kj++) {
                    ptrdiff_t lo = padw - kj, hi = w + padw - kj;
                    if (lo < 0) lo = 0;
                    if (hi > wo) hi = wo;
                    if (hi > lo) gw[ki * kw + kj] += (double)row_dot(g + oh * wo + lo, x + ih * w + lo + kj - padw, hi - lo);
                }
            }
        return;
    }
    float *xpad = buffer, *gpad = buffer + h * stride;
    for (ptrdiff_t r = 0; r < h; r++) {
        ptrdiff_t n = w < stride - padw ? w : stride - padw;
        if (n > 0) memcpy(xpad + r * stride + padw, x + r * w, (size_t)n * sizeof(float));
    }
    for (ptrdiff_t r = 0; r < ho; r++) memcpy(gpad + r * rounded, g + r * wo, (size_t)wo * sizeof(float));
    skd_v16 acc[max_taps];
    for (ptrdiff_t t = 0; t < taps; t++) acc[t] = (skd_v16){0};
    for (ptrdiff_t oh = 0; oh < ho; oh++) {
        const float *gr = gpad + oh * rounded;
        for (ptrdiff_t ki = 0; ki < kh; ki++) {
            ptrdiff_t ih = oh + ki - padh;
            if (ih < 0 || ih >= h) continue;
            const float *xr = xpad + ih * stride;
            for (ptrdiff_t kj = 0; kj < kw; kj++) {
                skd_v16 a = acc[ki * kw + kj];
                for (ptrdiff_t i = 0; i < rounded; i += SKD_LANES) a += v_load(gr + i) * v_load(xr + i + kj);
                acc[ki * kw + kj] = a;
            }
        }
    }
    for (ptrdiff_t t = 0; t < taps; t++) gw[t] += (double)v_hsum(acc[t]);
    free(buffer);
}

// MARK: - Adam

SKD_INLINE void adam_body(float *restrict p, const float *restrict g, float *restrict m, float *restrict v,
                          ptrdiff_t n, float decay, float omb1, float b2, float omb2, float step, float corr2,
                          float eps) {
#if defined(__clang__)
#pragma clang fp contract(off)
#else
#pragma STDC FP_CONTRACT OFF
#endif
    for (ptrdiff_t i = 0; i < n; i++) {
        float gi = g[i] + decay * p[i];
        float mi = m[i] + omb1 * (gi - m[i]);
        float vi = b2 * v[i] + omb2 * gi * gi;
        m[i] = mi;
        v[i] = vi;
        p[i] -= step * mi / (SKD_SQRT(vi) / corr2 + eps);
    }
}

#endif
