/* What the Keras-layout cells share: their parameters' registration and drawing, the input
 * projection of all time steps at once, and the checks and weight copies of the PyTorch
 * conversion (layers/internal.h). */
#include <stdio.h>

#include "internal.h"

int sg__cell_create_keras(sg_ctx *ctx, sg_store *store, sg__cell *c, const char *prefix,
                          sg_rng *rng, int bias_rows) {
    const sg_rnn_options *o = c->opt;
    int64_t I = c->in, H = c->units, GH;
    if (__builtin_mul_overflow(H, (int64_t)c->fns->gates, &GH))
        GH = INT64_MAX; /* reported as an overflow below */
    if (sg__layer_sizes(ctx, "sg_rnn_new", prefix, "input_size", I, "units", H, "kernel") ||
        sg__layer_sizes(ctx, "sg_rnn_new", prefix, "input_size", I, "gates*units", GH, "kernel") ||
        sg__layer_sizes(ctx, "sg_rnn_new", prefix, "units", H, "gates*units", GH,
                        "recurrent_kernel"))
        return -1;
    if (o->dtype != SG_F32 && o->dtype != SG_F64) {
        sg_error(ctx, "sg_rnn_new (%s): dtype %s, expected float32 or float64", prefix,
                 sg_dtype_name(o->dtype));
        return -1;
    }
    if (!rng)
        rng = sg_ctx_rng(ctx);
    int n0 = sg_store_size(store);
    char pname[SG_NAME_MAX + 32];
    snprintf(pname, sizeof pname, "%s.kernel", prefix);
    c->kernel = sg_store_param(ctx, store, pname, o->dtype, SG_SHAPE(I, GH));
    snprintf(pname, sizeof pname, "%s.recurrent_kernel", prefix);
    c->recurrent_kernel =
        c->kernel ? sg_store_param(ctx, store, pname, o->dtype, SG_SHAPE(H, GH)) : NULL;
    c->bias = NULL;
    snprintf(pname, sizeof pname, "%s.bias", prefix);
    if (c->recurrent_kernel && o->use_bias)
        c->bias = bias_rows == 1 ? sg_store_param(ctx, store, pname, o->dtype, SG_SHAPE(GH))
                                 : sg_store_param(ctx, store, pname, o->dtype,
                                                  SG_SHAPE((int64_t)bias_rows, GH));
    /* drawn only once all are registered: registering may move the slab */
    int rc = !c->recurrent_kernel || (o->use_bias && !c->bias) ? -1 : 0;
    if (!rc)
        rc = sg_init_tensor(ctx, c->kernel, o->kernel_initializer, rng);
    if (!rc)
        rc = sg_init_tensor(ctx, c->recurrent_kernel, o->recurrent_initializer, rng);
    if (!rc && c->bias)
        rc = sg_init_tensor(ctx, c->bias, o->bias_initializer, rng);
    if (rc) {
        sg_store_truncate(store, n0);
        c->kernel = c->recurrent_kernel = c->bias = NULL;
    }
    return rc;
}

sg_tensor *sg__cell_project_keras(sg_ctx *ctx, const sg__cell *c, sg_tensor *x, bool time_major) {
    /* time-major as a contiguous copy of x (in columns, fewer than the G*H of the result), so
     * that each step's slice of the result is one contiguous (B, G*H) block */
    sg_tensor *xt = time_major ? sg_contiguous(ctx, sg_transpose(ctx, x, 0, 1)) : x;
    sg_tensor *b = c->bias && c->bias->ndim == 2 ? sg_select(ctx, c->bias, 0, 0) : c->bias;
    return b ? sg_addmm(ctx, b, xt, c->kernel) : sg_matmul(ctx, xt, c->kernel);
}

/* How messages name a cell: its parameters' prefix, else its kind ("gru"). */
const char *sg__cell_label(const sg__cell *c) { return c->name ? c->name : c->fns->name; }

/* Has t (not NULL) the shape (d0) (ndim 1) or (d0, d1)? Else an error naming fn, the cell,
 * the tensor and both shapes. */
static bool torch_shape(sg_ctx *ctx, const char *fn, const sg__cell *c, const char *what,
                        const sg_tensor *t, int ndim, int64_t d0, int64_t d1) {
    if (!sg_check(ctx, t, fn))
        return false;
    int64_t want[2] = {d0, d1};
    bool ok = t->ndim == ndim && t->shape[0] == d0 && (ndim == 1 || t->shape[1] == d1);
    if (!ok) {
        char a[96], b[96];
        sg_error(ctx, "%s (%s): %s has shape %s, expected %s", fn, sg__cell_label(c), what,
                 sg_shape_str(t->ndim, t->shape, a, sizeof a),
                 sg_shape_str(ndim, want, b, sizeof b));
    }
    return ok;
}

int sg__cell_torch_weights(sg_ctx *ctx, const sg__cell *c, bool to_cell, bool grads,
                           sg_tensor *w_ih, sg_tensor *w_hh, sg_tensor *b_ih, sg_tensor *b_hh,
                           const int *perm) {
    const char *fn = to_cell ? "sg_rnn_set_torch" : "sg_rnn_get_torch";
    int G = c->fns->gates;
    int64_t H = c->units, GH = G * H;
    if (!w_ih || !w_hh) {
        sg_error(ctx, "%s (%s): weight_ih or weight_hh is NULL", fn, sg__cell_label(c));
        return -1;
    }
    if (!torch_shape(ctx, fn, c, "weight_ih", w_ih, 2, GH, c->in) ||
        !torch_shape(ctx, fn, c, "weight_hh", w_hh, 2, GH, H) ||
        (b_ih && !torch_shape(ctx, fn, c, "bias_ih", b_ih, 1, GH, 0)) ||
        (b_hh && !torch_shape(ctx, fn, c, "bias_hh", b_hh, 1, GH, 0)))
        return -1;
    if (to_cell && !c->bias && (b_ih || b_hh)) {
        sg_error(ctx, "%s (%s): biases were given but the layer has use_bias = false", fn,
                 sg__cell_label(c));
        return -1;
    }
    bool g = grads && !to_cell;
    if (sg__torch_blocks(ctx, !to_cell, g ? c->kernel->grad : c->kernel, w_ih, G, H, perm) ||
        sg__torch_blocks(ctx, !to_cell, g ? c->recurrent_kernel->grad : c->recurrent_kernel, w_hh,
                         G, H, perm))
        return -1;
    return 0;
}
