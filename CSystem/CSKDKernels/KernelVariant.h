// One variant of every kernel: included by CSKDKernels.c once per instruction set, with SKD_VARIANT (a name
// suffix) and SKD_TARGET (a function attribute, or nothing) defined. Each function only inlines its body.
#define SKD_CAT2(a, b) a##_##b
#define SKD_CAT(a, b) SKD_CAT2(a, b)
#define SKD_V(name) SKD_CAT(name, SKD_VARIANT)

SKD_TARGET static void SKD_V(gelu_gate)(float *out, const float *a, const float *b, ptrdiff_t n) {
    gelu_gate_body(out, a, b, n);
}
SKD_TARGET static void SKD_V(gelu)(float *out, const float *a, ptrdiff_t n) { gelu_body(out, a, n); }
SKD_TARGET static void SKD_V(gelu_backward)(float *dx, const float *g, const float *x, ptrdiff_t n) {
    gelu_backward_body(dx, g, x, n);
}
SKD_TARGET static void SKD_V(gelu_gate_backward)(float *d1, float *d2, const float *g, const float *x1,
                                                 const float *x2, ptrdiff_t n) {
    gelu_gate_backward_body(d1, d2, g, x1, x2, n);
}
SKD_TARGET static void SKD_V(softmax_row)(float *y, const float *x, ptrdiff_t n) { softmax_row_body(y, x, n); }
SKD_TARGET static void SKD_V(softmax_backward_row)(float *dx, const float *g, const float *y, ptrdiff_t n, float scale) {
    softmax_backward_row_body(dx, g, y, n, scale);
}
SKD_TARGET static void SKD_V(layernorm_forward)(const float *x, ptrdiff_t xs, float *y, ptrdiff_t ys, const float *w,
                                                const float *b, ptrdiff_t c, ptrdiff_t len, float eps, float *mu,
                                                float *rs) {
    layernorm_forward_body(x, xs, y, ys, w, b, c, len, eps, mu, rs);
}
SKD_TARGET static void SKD_V(layernorm_backward)(const float *x, const float *g, ptrdiff_t stride, const float *w,
                                                 const float *mu, const float *rs, ptrdiff_t c, ptrdiff_t len,
                                                 int with_bias, float *dx, float *dw, float *db, float *scratch) {
    layernorm_backward_body(x, g, stride, w, mu, rs, c, len, with_bias, dx, dw, db, scratch);
}
SKD_TARGET static void SKD_V(depthwise_row)(float *out, ptrdiff_t wo, const float *src, ptrdiff_t wi, const float *w,
                                            ptrdiff_t k, ptrdiff_t pad) {
    depthwise_row_body(out, wo, src, wi, w, k, pad);
}
SKD_TARGET static void SKD_V(depthwise_output_row)(float *out, ptrdiff_t wo, const float *const *rows, ptrdiff_t kh,
                                                   ptrdiff_t wi, const float *w, ptrdiff_t kw, ptrdiff_t pad,
                                                   float bias) {
    depthwise_output_row_body(out, wo, rows, kh, wi, w, kw, pad, bias);
}
SKD_TARGET static void SKD_V(depthwise_plane_weight_grad)(double *gw, const float *g, ptrdiff_t ho, ptrdiff_t wo,
                                                          const float *x, ptrdiff_t h, ptrdiff_t w, ptrdiff_t kh,
                                                          ptrdiff_t kw, ptrdiff_t padh, ptrdiff_t padw) {
    depthwise_plane_weight_grad_body(gw, g, ho, wo, x, h, w, kh, kw, padh, padw);
}
SKD_TARGET static void SKD_V(adam)(float *p, const float *g, float *m, float *v, ptrdiff_t n, float decay, float omb1,
                                   float b2, float omb2, float step, float corr2, float eps) {
    adam_body(p, g, m, v, n, decay, omb1, b2, omb2, step, corr2, eps);
}

static const struct skd_kernel_table SKD_V(table) = {
    SKD_V(gelu_gate), SKD_V(gelu), SKD_V(gelu_backward), SKD_V(gelu_gate_backward),
    SKD_V(softmax_row), SKD_V(softmax_backward_row),
    SKD_V(layernorm_forward), SKD_V(layernorm_backward),
    SKD_V(depthwise_row), SKD_V(depthwise_output_row), SKD_V(depthwise_plane_weight_grad),
    SKD_V(adam),
};

#undef SKD_V
#undef SKD_CAT
#undef SKD_CAT2
