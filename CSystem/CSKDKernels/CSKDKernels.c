#include "CSKDKernels.h"
#include "KernelBodies.h"
#include <stdlib.h>

// Every kernel body (KernelBodies.h) is instantiated three times by KernelVariant.h — portable, AVX2 + FMA and
// AVX-512 — into one table of function pointers per level; the public functions call through the table of the
// level in use.

struct skd_kernel_table {
    void (*gelu_gate)(float *, const float *, const float *, ptrdiff_t);
    void (*gelu)(float *, const float *, ptrdiff_t);
    void (*gelu_backward)(float *, const float *, const float *, ptrdiff_t);
    void (*gelu_gate_backward)(float *, float *, const float *, const float *, const float *, ptrdiff_t);
    void (*softmax_row)(float *, const float *, ptrdiff_t);
    void (*softmax_backward_row)(float *, const float *, const float *, ptrdiff_t, float);
    void (*layernorm_forward)(const float *, ptrdiff_t, float *, ptrdiff_t, const float *, const float *, ptrdiff_t,
                              ptrdiff_t, float, float *, float *);
    void (*layernorm_backward)(const float *, const float *, ptrdiff_t, const float *, const float *, const float *,
                               ptrdiff_t, ptrdiff_t, int, float *, float *, float *, float *);
    void (*depthwise_row)(float *, ptrdiff_t, const float *, ptrdiff_t, const float *, ptrdiff_t, ptrdiff_t);
    void (*depthwise_output_row)(float *, ptrdiff_t, const float *const *, ptrdiff_t, ptrdiff_t, const float *, ptrdiff_t,
                                 ptrdiff_t, float);
    void (*depthwise_plane_weight_grad)(double *, const float *, ptrdiff_t, ptrdiff_t, const float *, ptrdiff_t,
                                        ptrdiff_t, ptrdiff_t, ptrdiff_t, ptrdiff_t, ptrdiff_t);
    void (*adam)(float *, const float *, float *, float *, ptrdiff_t, float, float, float, float, float, float, float);
};

#define SKD_VARIANT portable
#define SKD_TARGET
#include "KernelVariant.h"
#undef SKD_VARIANT
#undef SKD_TARGET

#if defined(__x86_64__) && (defined(__clang__) || defined(__GNUC__))
#define SKD_HAVE_X86_VARIANTS 1
#define SKD_VARIANT avx2
#define SKD_TARGET __attribute__((target("avx2,fma")))
#include "KernelVariant.h"
#undef SKD_VARIANT
#undef SKD_TARGET

#define SKD_VARIANT avx512
#define SKD_TARGET __attribute__((target("avx512f,avx512bw,avx512dq,avx512vl,avx2,fma")))
#include "KernelVariant.h"
#undef SKD_VARIANT
#undef SKD_TARGET

static const struct skd_kernel_table *const tables[3] = { &table_portable, &table_avx2, &table_avx512 };
#else
static const struct skd_kernel_table *const tables[3] = { &table_portable, &table_portable, &table_portable };
#endif

static int max_level = -1;   // -1: not detected yet
static int level = -1;       // -1: not chosen yet

/// The widest level the CPU can run, from the one CPU query of the package (CSKDCPU.c: cpuid and the registers
/// the operating system saves).
static int detect_max_level(void) {
#ifdef SKD_HAVE_X86_VARIANTS
    skd_cpu_info info;
    skd_cpu_query(&info);
    const unsigned int avx2 = SKD_CPU_AVX2 | SKD_CPU_FMA;
    const unsigned int avx512 = SKD_CPU_AVX512F | SKD_CPU_AVX512BW | SKD_CPU_AVX512DQ | SKD_CPU_AVX512VL;
    if ((info.features & avx2) != avx2) return 0;
    return (info.features & avx512) == avx512 ? 2 : 1;
#else
    return 0;
#endif
}

static int clamp_level(int l) {
    if (l < 0) return 0;
    return l > max_level ? max_level : l;
}

// Idempotent: concurrent first calls all store the same values.
static void choose(void) {
    int top = detect_max_level();
    __atomic_store_n(&max_level, top, __ATOMIC_RELEASE);
    int chosen = top;
    const char *env = getenv("SKD_KERNELS_LEVEL");
    if (env && env[0] >= '0' && env[0] <= '9' && env[1] == 0) chosen = clamp_level(env[0] - '0');
    __atomic_store_n(&level, chosen, __ATOMIC_RELEASE);
}

static inline const struct skd_kernel_table *table(void) {
    int l = __atomic_load_n(&level, __ATOMIC_ACQUIRE);
    if (l < 0) { choose(); l = __atomic_load_n(&level, __ATOMIC_ACQUIRE); }
    return tables[l];
}

int skd_kernels_max_level(void) {
    if (__atomic_load_n(&level, __ATOMIC_ACQUIRE) < 0) choose();
    return __atomic_load_n(&max_level, __ATOMIC_ACQUIRE);
}

int skd_kernels_level(void) {
    if (__atomic_load_n(&level, __ATOMIC_ACQUIRE) < 0) choose();
    return __atomic_load_n(&level, __ATOMIC_ACQUIRE);
}

int skd_kernels_set_level(int l) {
    if (__atomic_load_n(&level, __ATOMIC_ACQUIRE) < 0) choose();
    int chosen = clamp_level(l);
    __atomic_store_n(&level, chosen, __ATOMIC_RELEASE);
    return chosen;
}

int skd_kernels_vectorized(void) { return skd_kernels_level() > 0; }

void skd_gelu_gate(float *out, const float *a, const float *b, ptrdiff_t n) { table()->gelu_gate(out, a, b, n); }

void skd_gelu(float *out, const float *a, ptrdiff_t n) { table()->gelu(out, a, n); }

void skd_gelu_backward(float *dx, const float *g, const float *x, ptrdiff_t n) { table()->gelu_backward(dx, g, x, n); }

void skd_gelu_gate_backward(float *d1, float *d2, const float *g, const float *x1, const float *x2, ptrdiff_t n) {
    table()->gelu_gate_backward(d1, d2, g, x1, x2, n);
}

void skd_softmax_row(float *y, const float *x, ptrdiff_t n) { table()->softmax_row(y, x, n); }

void skd_softmax_backward_row(float *dx, const float *g, const float *y, ptrdiff_t n, float scale) {
    table()->softmax_backward_row(dx, g, y, n, scale);
}

void skd_layernorm_channels_forward(const float *x, ptrdiff_t x_stride, float *y, ptrdiff_t y_stride, const float *w,
                                    const float *b, ptrdiff_t c, ptrdiff_t len, float eps, float *mean, float *rstd) {
    table()->layernorm_forward(x, x_stride, y, y_stride, w, b, c, len, eps, mean, rstd);
}

void skd_layernorm_channels_backward(const float *x, const float *g, ptrdiff_t stride, const float *w,
                                     const float *mean, const float *rstd, ptrdiff_t c, ptrdiff_t len, int with_bias,
                                     float *dx, float *dw, float *db, float *scratch) {
    table()->layernorm_backward(x, g, stride, w, mean, rstd, c, len, with_bias, dx, dw, db, scratch);
}

void skd_depthwise_row(float *out, ptrdiff_t wo, const float *src, ptrdiff_t wi, const float *w, ptrdiff_t k,
                       ptrdiff_t pad) {
    table()->depthwise_row(out, wo, src, wi, w, k, pad);
}

void skd_depthwise_output_row(float *out, ptrdiff_t wo, const float *const *rows, ptrdiff_t kh, ptrdiff_t wi,
                              const float *w, ptrdiff_t kw, ptrdiff_t pad, float bias) {
    table()->depthwise_output_row(out, wo, rows, kh, wi, w, kw, pad, bias);
}

void skd_depthwise_plane_weight_grad(double *gw, const float *g, ptrdiff_t ho, ptrdiff_t wo, const float *x,
                                     ptrdiff_t h, ptrdiff_t w, ptrdiff_t kh, ptrdiff_t kw, ptrdiff_t padh, ptrdiff_t padw) {
    table()->depthwise_plane_weight_grad(gw, g, ho, wo, x, h, w, kh, kw, padh, padw);
}

void skd_adam_update(float *p, const float *g, float *m, float *v, ptrdiff_t n, float weight_decay,
                     float one_minus_beta1, float beta2, float one_minus_beta2, float step_size, float correction2,
                     float eps) {
    table()->adam(p, g, m, v, n, weight_decay, one_minus_beta1, beta2, one_minus_beta2, step_size, correction2, eps);
}
