#include "CSKDKernels.h"

// Each kernel body is written once (a static inline function) and instantiated twice: portable and AVX2 + FMA.
// The loops are branch-free so that the compiler vectorises both instantiations.

static inline __attribute__((always_inline))
void depthwise3_body(float *restrict row, const float *restrict line, float w0, float w1, float w2, ptrdiff_t n) {
    if (n <= 0) return;
    if (n == 1) { row[0] += w1 * line[0]; return; }
    row[0] += w1 * line[0] + w2 * line[1];
    for (ptrdiff_t i = 1; i < n - 1; i++) row[i] += w0 * line[i - 1] + w1 * line[i] + w2 * line[i + 1];
    row[n - 1] += w0 * line[n - 2] + w1 * line[n - 1];
}

static inline __attribute__((always_inline)) float erf_rational(float a) {
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

static inline __attribute__((always_inline))
void gelu_gate_body(float *restrict out, const float *restrict a, const float *restrict b, ptrdiff_t n) {
    for (ptrdiff_t i = 0; i < n; i++) {
        float x = a[i];
        out[i] = 0.5f * x * (1.0f + erf_rational(x * 0.70710678118654752f)) * b[i];
    }
}

static inline __attribute__((always_inline)) void gelu_body(float *out, const float *a, ptrdiff_t n) {
    for (ptrdiff_t i = 0; i < n; i++) {
        float x = a[i];
        out[i] = 0.5f * x * (1.0f + erf_rational(x * 0.70710678118654752f));
    }
}

static void depthwise3_portable(float *row, const float *line, float w0, float w1, float w2, ptrdiff_t n) {
    depthwise3_body(row, line, w0, w1, w2, n);
}
static void gelu_gate_portable(float *out, const float *a, const float *b, ptrdiff_t n) { gelu_gate_body(out, a, b, n); }
static void gelu_portable(float *out, const float *a, ptrdiff_t n) { gelu_body(out, a, n); }

#if defined(__x86_64__) && (defined(__clang__) || defined(__GNUC__))
#define SKD_HAVE_X86_VARIANTS 1
__attribute__((target("avx2,fma")))
static void depthwise3_avx2(float *row, const float *line, float w0, float w1, float w2, ptrdiff_t n) {
    depthwise3_body(row, line, w0, w1, w2, n);
}
__attribute__((target("avx2,fma")))
static void gelu_gate_avx2(float *out, const float *a, const float *b, ptrdiff_t n) { gelu_gate_body(out, a, b, n); }
__attribute__((target("avx2,fma")))
static void gelu_avx2(float *out, const float *a, ptrdiff_t n) { gelu_body(out, a, n); }
#endif

typedef void (*depthwise3_fn)(float *, const float *, float, float, float, ptrdiff_t);
typedef void (*gelu_gate_fn)(float *, const float *, const float *, ptrdiff_t);
typedef void (*gelu_fn)(float *, const float *, ptrdiff_t);

static int selected = -1;   // -1: not chosen yet; 0: portable; 1: AVX2 + FMA
static depthwise3_fn depthwise3_impl = depthwise3_portable;
static gelu_gate_fn gelu_gate_impl = gelu_gate_portable;
static gelu_fn gelu_impl = gelu_portable;

// Idempotent: concurrent first calls all store the same values.
static void choose(void) {
    int vectorized = 0;
#ifdef SKD_HAVE_X86_VARIANTS
    __builtin_cpu_init();
    vectorized = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
    if (vectorized) {
        __atomic_store_n(&depthwise3_impl, depthwise3_avx2, __ATOMIC_RELAXED);
        __atomic_store_n(&gelu_gate_impl, gelu_gate_avx2, __ATOMIC_RELAXED);
        __atomic_store_n(&gelu_impl, gelu_avx2, __ATOMIC_RELAXED);
    }
#endif
    __atomic_store_n(&selected, vectorized, __ATOMIC_RELEASE);
}

int skd_kernels_vectorized(void) {
    if (__atomic_load_n(&selected, __ATOMIC_ACQUIRE) < 0) choose();
    return selected;
}

void skd_depthwise3_row_accumulate(float *row, const float *line, float w0, float w1, float w2, ptrdiff_t n) {
    if (__atomic_load_n(&selected, __ATOMIC_ACQUIRE) < 0) choose();
    __atomic_load_n(&depthwise3_impl, __ATOMIC_RELAXED)(row, line, w0, w1, w2, n);
}

void skd_gelu_gate(float *out, const float *a, const float *b, ptrdiff_t n) {
    if (__atomic_load_n(&selected, __ATOMIC_ACQUIRE) < 0) choose();
    __atomic_load_n(&gelu_gate_impl, __ATOMIC_RELAXED)(out, a, b, n);
}

void skd_gelu(float *out, const float *a, ptrdiff_t n) {
    if (__atomic_load_n(&selected, __ATOMIC_ACQUIRE) < 0) choose();
    __atomic_load_n(&gelu_impl, __ATOMIC_RELAXED)(out, a, n);
}
