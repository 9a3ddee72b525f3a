// SwiftSKD's hot row kernels, in C so that each is compiled three times — portable (baseline x86-64: SSE2, no
// FMA), AVX2 + FMA and AVX-512 (F/BW/DQ/VL) — and the widest variant the CPU supports is picked at run time
// (Swift library targets build for baseline x86-64 and may not carry unsafeFlags). Each kernel body is written
// once; the differentiable ops of SKDTensor and the fused inference paths of the models call the same function.
// Results of the variants differ only by rounding (FMA contraction); reductions use 16 lanes in a fixed order
// in every variant. The Adam update is compiled without contraction and is bit-identical in every variant.
#ifndef CSKDKERNELS_H
#define CSKDKERNELS_H

#include <stddef.h>
#include <stdint.h>

#include "CSKDCPU.h"
#include "CSKDGradMode.h"

// MARK: - Variant selection

/// The widest kernel level this CPU supports: 0 portable, 1 AVX2 + FMA, 2 AVX-512 (F/BW/DQ/VL).
int skd_kernels_max_level(void);

/// The kernel level in use (see skd_kernels_max_level). At the first call it is the widest the CPU supports, or
/// the value of the environment variable SKD_KERNELS_LEVEL (0, 1 or 2) when set, clamped to what the CPU supports.
int skd_kernels_level(void);

/// Selects the kernel level, clamped to [0, skd_kernels_max_level()], and returns the level now in use. For tests
/// and benchmarks; do not change it while kernels run on other threads.
int skd_kernels_set_level(int level);

/// 1 when a vectorised (AVX2 + FMA or AVX-512) level is in use, 0 for the portable one.
int skd_kernels_vectorized(void);

// MARK: - Elementary functions (the one definition; inline so that loops in C and in Swift vectorise them)

/// eˣ to ~1 ulp (Cephes' expf range reduction and degree-6 polynomial), branch-free. Arguments below −87.34
/// (−∞ included) give exactly 0; arguments above 88 saturate at e⁸⁸; NaN stays NaN.
static inline float skd_expf(float x) {
    const float lowest = -87.33654f;
    float xc = x < lowest ? lowest : x;
    xc = xc > 88.0f ? 88.0f : xc;
    // Round x·log₂e to the nearest integer with the 1.5·2²³ trick; the integer is read from the mantissa bits.
    const float magic = 12582912.0f;
    union { float f; uint32_t u; } t, m, s;
    t.f = xc * 1.44269504f + magic;
    m.f = magic;
    float k = t.f - magic;
    uint32_t n = t.u - m.u;
    // r = x − k·ln2 in two parts, so that r keeps full precision.
    float r = xc - k * 0.693359375f + k * 2.12194440e-4f;
    float p = 1.9875691500e-4f;
    p = p * r + 1.3981999507e-3f;
    p = p * r + 8.3334519073e-3f;
    p = p * r + 4.1665795894e-2f;
    p = p * r + 1.6666665459e-1f;
    p = p * r + 5.0000001201e-1f;
    float e = p * r * r + r + 1.0f;
    s.u = (n + 127u) << 23;
    return x < lowest ? 0.0f : e * s.f;
}

/// erf(x) within 4·10⁻⁷ absolute: the odd/even rational approximation on [−4, 4] that Eigen and XLA use for
/// float32 (beyond ±4, erf is ±1 in float32). NaN stays NaN.
static inline float skd_erff(float a) {
    float x = a < -4.0f ? -4.0f : (a > 4.0f ? 4.0f : a);
    float x2 = x * x;
    float p = -2.72614225801306e-10f;
    p = p * x2 + 2.77068142495902e-08f;
    p = p * x2 - 2.10102402082508e-06f;
    p = p * x2 - 5.69250639462346e-05f;
    p = p * x2 - 7.34990630326855e-04f;
    p = p * x2 - 2.95459980854025e-03f;
    p = p * x2 - 1.60960333262415e-02f;
    float q = -1.45660718464996e-05f;
    q = q * x2 - 2.13374055278905e-04f;
    q = q * x2 - 1.68282697438203e-03f;
    q = q * x2 - 7.37332916720468e-03f;
    q = q * x2 - 1.42647390514189e-02f;
    return x * p / q;
}

// MARK: - GELU and the GDFN gate (exact erf GELU, gelu(x) = ½x·(1 + erf(x/√2)))

/// out[i] = gelu(a[i]) · b[i]. `out` may equal `a` or `b`.
void skd_gelu_gate(float *out, const float *a, const float *b, ptrdiff_t n);

/// out[i] = gelu(a[i]); `out` may equal `a`.
void skd_gelu(float *out, const float *a, ptrdiff_t n);

/// dx[i] = g[i] · gelu′(x[i]) with gelu′(x) = Φ(x) + x·φ(x); `dx` may equal `g`.
void skd_gelu_backward(float *dx, const float *g, const float *x, ptrdiff_t n);

/// The backward of out = gelu(x1)·x2: d1[i] = g[i]·x2[i]·gelu′(x1[i]), d2[i] = g[i]·gelu(x1[i]).
/// `d1` and `d2` must not overlap the inputs or each other.
void skd_gelu_gate_backward(float *d1, float *d2, const float *g, const float *x1, const float *x2, ptrdiff_t n);

// MARK: - Softmax rows

/// y = softmax(x) over one row of n values (max-subtracted; −∞ entries give exactly 0; a row of −∞ gives NaN).
/// `y` may equal `x`.
void skd_softmax_row(float *y, const float *x, ptrdiff_t n);

/// dx[j] = scale · y[j] · (g[j] − Σₖ g[k]·y[k]): the softmax backward of one row (y the softmax output).
/// `dx` may equal `g`.
void skd_softmax_backward_row(float *dx, const float *g, const float *y, ptrdiff_t n, float scale);

// MARK: - Channel LayerNorm (over the C channel planes of an NCHW map, `len` consecutive pixels)

/// Restormer's LayerNorm over channels for `len` pixels: channel ch of pixel j is x[ch·x_stride + j].
/// WithBias (b non-null): y = (x − μ)·r·w + b; BiasFree (b null): y = x·(r·w), with μ the mean and
/// r = 1/√(σ² + eps) (σ² the population variance about μ). Writes μ and r of every pixel to mean[j] and rstd[j].
/// The mean accumulates deviations from channel 0, which keeps it accurate for values far from zero.
/// `y` must not overlap `x`, `mean` or `rstd`. c ≥ 1.
void skd_layernorm_channels_forward(const float *x, ptrdiff_t x_stride, float *y, ptrdiff_t y_stride,
                                    const float *w, const float *b, ptrdiff_t c, ptrdiff_t len, float eps,
                                    float *mean, float *rstd);

/// The backward of skd_layernorm_channels_forward for `len` pixels of x and g (channel planes `stride` apart),
/// given its mean and rstd. With a = g·w and z the value w multiplies (x̂ = (x − μ)·r WithBias, x·r BiasFree):
///   dx = r·(a − [mean_c a] − x̂·mean_c(a·z))   (the bracket only WithBias), written to dx (same layout) if non-null;
///   dw[ch] = Σ_j g·z and db[ch] = Σ_j g (over these pixels; written, not accumulated) if non-null.
/// `scratch` holds 3·len floats.
void skd_layernorm_channels_backward(const float *x, const float *g, ptrdiff_t stride, const float *w,
                                     const float *mean, const float *rstd, ptrdiff_t c, ptrdiff_t len, int with_bias,
                                     float *dx, float *dw, float *db, float *scratch);

// MARK: - Depthwise convolution rows (stride 1, dilation 1)

/// out[i] += Σ_kj w[kj] · src[i + kj − pad] for i in [0, wo), the terms with src index outside [0, wi) omitted
/// (zero padding; pad may be negative): one kernel row of a depthwise convolution added into one output row.
/// k ≥ 1 (3 and 5 have dedicated loops). `out` must not overlap `src`.
void skd_depthwise_row(float *out, ptrdiff_t wo, const float *src, ptrdiff_t wi, const float *w, ptrdiff_t k,
                       ptrdiff_t pad);

/// out[i] = bias + Σ_(ki: rows[ki] non-null) Σ_kj w[ki·kw + kj] · rows[ki][i + kj − pad] for i in [0, wo), terms
/// reading outside [0, wi) omitted: one whole output row of a stride-1, dilation-1 depthwise convolution, the kh
/// kernel rows (null for rows in the vertical padding) in one pass that writes `out` once. `out` must not overlap
/// the rows.
void skd_depthwise_output_row(float *out, ptrdiff_t wo, const float *const *rows, ptrdiff_t kh, ptrdiff_t wi,
                              const float *w, ptrdiff_t kw, ptrdiff_t pad, float bias);

/// gw[ki·kw + kj] += Σ_(oh, ow) g[oh·wo + ow] · x[(oh + ki − padh)·w + ow + kj − padw] over the terms inside the
/// h × w plane: the weight gradient of one plane of a stride-1, dilation-1 depthwise convolution (kh × kw kernel;
/// g is ho × wo). Sums are formed in 16 float lanes per tap over the plane and added to gw in double.
void skd_depthwise_plane_weight_grad(double *gw, const float *g, ptrdiff_t ho, ptrdiff_t wo, const float *x,
                                     ptrdiff_t h, ptrdiff_t w, ptrdiff_t kh, ptrdiff_t kw, ptrdiff_t padh,
                                     ptrdiff_t padw);

// MARK: - Adam

/// torch.optim.Adam's update of n parameters (amsgrad off), with PyTorch's float32 arithmetic:
///   gᵢ ← g + weight_decay·p;  m ← m + (1−β₁)(gᵢ − m);  v ← β₂·v + (1−β₂)·gᵢ·gᵢ;
///   p ← p − step_size·m / (√v / correction2 + eps)
/// with step_size = lr/(1−β₁ᵗ) and correction2 = √(1−β₂ᵗ). No FMA contraction: every level gives the same bits.
void skd_adam_update(float *p, const float *g, float *m, float *v, ptrdiff_t n, float weight_decay,
                     float one_minus_beta1, float beta2, float one_minus_beta2, float step_size, float correction2,
                     float eps);

// MARK: - Uformer window attention (CSKDWindowAttention.c)

#include "CSKDWindowAttention.h"

// MARK: - Direct products for narrow layers (CSKDGemm.c)

#include "CSKDGemm.h"

// MARK: - Uformer token-grid depthwise rows (CSKDTokenOps.c)

#include "CSKDTokenOps.h"

#endif
