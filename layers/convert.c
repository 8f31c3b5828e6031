/* Moving LSTM weights between layouts: Keras (kernel, recurrent_kernel, bias), the gates
 * layout (W_g = [rows acting on h; rows acting on x], b_g), and PyTorch's nn.LSTM
 * (weight_ih = kernel^T, weight_hh = recurrent_kernel^T, bias_ih + bias_hh = bias). The
 * mapping is the table in docs/lstm.md: block g of the Keras matrices is gate g's matrix. */
#include "internal.h"

/* dst = src element by element in row-major order (same element count; any dtypes and
 * strides; checked by the callers). Views made here are taken with grad mode off, so
 * nothing lands on the tape. */
static int copy_flat(sg_tensor *dst, const sg_tensor *src) { return sg_copy_values(dst, src); }

static bool check_shape(sg_ctx *ctx, const char *fn, const char *layer, const char *what,
                        const sg_tensor *t, int ndim, int64_t d0, int64_t d1) {
    if (!t || !sg_check(ctx, t, fn))
        return false;
    int64_t want[2] = {d0, d1};
    bool ok = t->ndim == ndim;
    for (int i = 0; ok && i < ndim; i++)
        ok = t->shape[i] == want[i];
    if (!ok) {
        char a[96], b[96];
        sg_error(ctx, "%s (%s): %s has shape %s, expected %s", fn, layer, what,
                 sg_shape_str(t->ndim, t->shape, a, sizeof a),
                 sg_shape_str(ndim, want, b, sizeof b));
    }
    return ok;
}

/* Move values between an LSTM cell's parameters (or their grads) and Keras-layout tensors.
 * to_layer: Keras -> cell; else cell -> Keras. */
int sg__lstm_transfer(sg_ctx *ctx, const char *fn, const sg__cell *c, bool grads, bool to_layer,
                      sg_tensor *k, sg_tensor *rk, sg_tensor *b) {
    int64_t I = c->in, H = c->units;
    if (!check_shape(ctx, fn, c->name, "kernel", k, 2, I, 4 * H) ||
        !check_shape(ctx, fn, c->name, "recurrent_kernel", rk, 2, H, 4 * H) ||
        (b && !check_shape(ctx, fn, c->name, "bias", b, 1, 4 * H, 0)))
        return -1;
    if (b && !c->opt->use_bias && to_layer) {
        sg_error(ctx, "%s (%s): a bias was given but the layer has use_bias = false", fn, c->name);
        return -1;
    }
    /* A failure of the copies below (some report to a parameter's store rather than ctx)
     * fails the call; an error recorded in ctx before the call does not. */
    const bool had_err = sg_ctx_error(ctx) != NULL;
    int rc = 0;
    bool was = sg_ctx_set_grad_enabled(ctx, false);
#define SRC(p) (grads ? (p)->grad : (p))
    if (c->kernel) {
        sg_tensor *pairs[3][2] = {{c->kernel, k}, {c->recurrent_kernel, rk}, {c->bias, b}};
        for (int i = 0; i < 3; i++) {
            sg_tensor *p = pairs[i][0], *ext = pairs[i][1];
            if (!p && ext && !to_layer)
                rc |= sg_fill(ext, 0.0); /* no bias: it is zero */
            if (!p || !ext)
                continue;
            if (to_layer)
                rc |= copy_flat(p, ext);
            else
                rc |= copy_flat(ext, SRC(p));
        }
        if (to_layer && c->bias && !b)
            rc |= sg_fill(c->bias, 0.0);
    } else {
        for (int g = 0; g < 4 && !rc; g++) {
            sg_tensor *W = to_layer ? c->W[g] : SRC(c->W[g]);
            sg_tensor *Wh = sg_slice(ctx, W, 0, 0, H), *Wx = sg_slice(ctx, W, 0, H, I);
            sg_tensor *kg = sg_slice(ctx, k, 1, g * H, H), *rkg = sg_slice(ctx, rk, 1, g * H, H);
            if (!Wh || !Wx || !kg || !rkg) {
                rc = -1;
                break;
            }
            if (to_layer) {
                rc |= copy_flat(Wh, rkg);
                rc |= copy_flat(Wx, kg);
            } else {
                rc |= copy_flat(rkg, Wh);
                rc |= copy_flat(kg, Wx);
            }
            sg_tensor *bg = b ? sg_slice(ctx, b, 0, g * H, H) : NULL;
            if (b && !bg)
                rc = -1;
            else if (to_layer && c->b[g])
                rc |= bg ? copy_flat(c->b[g], bg) : sg_fill(c->b[g], 0.0);
            else if (!to_layer && bg)
                rc |= c->b[g] ? copy_flat(bg, SRC(c->b[g])) : sg_fill(bg, 0.0);
        }
    }
#undef SRC
    sg_ctx_set_grad_enabled(ctx, was);
    return rc || (!had_err && sg_ctx_error(ctx)) ? -1 : 0;
}

/* The cell view of an sg_lstm for the transfers (no ctx: NULL; no layer: an error). */
static int transfer(sg_ctx *ctx, const char *fn, const sg_lstm *l, bool grads, bool to_layer,
                    sg_tensor *k, sg_tensor *rk, sg_tensor *b) {
    if (!ctx)
        return -1;
    if (!l) {
        sg_error(ctx, "%s: layer is NULL", fn);
        return -1;
    }
    sg_rnn_options ro;
    sg__cell c;
    sg__lstm_cell(l, &ro, &c);
    return sg__lstm_transfer(ctx, fn, &c, grads, to_layer, k, rk, b);
}

int sg_lstm_set_keras(sg_ctx *ctx, sg_lstm *l, const sg_tensor *kernel,
                      const sg_tensor *recurrent_kernel, const sg_tensor *bias) {
    return transfer(ctx, "sg_lstm_set_keras", l, false, true, (sg_tensor *)kernel,
                    (sg_tensor *)recurrent_kernel, (sg_tensor *)bias);
}

int sg_lstm_get_keras(sg_ctx *ctx, const sg_lstm *l, bool grads, sg_tensor *kernel,
                      sg_tensor *recurrent_kernel, sg_tensor *bias) {
    return transfer(ctx, "sg_lstm_get_keras", (sg_lstm *)l, grads, false, kernel, recurrent_kernel,
                    bias);
}

static int lstm_torch(sg_ctx *ctx, const char *fn, const sg__cell *c, bool to_cell, bool grads,
                      sg_tensor *w_ih, sg_tensor *w_hh, sg_tensor *b_ih, sg_tensor *b_hh);

int sg_lstm_set_torch(sg_ctx *ctx, sg_lstm *l, const sg_tensor *weight_ih,
                      const sg_tensor *weight_hh, const sg_tensor *bias_ih,
                      const sg_tensor *bias_hh) {
    if (!ctx)
        return -1;
    if (!l) {
        sg_error(ctx, "sg_lstm_set_torch: layer is NULL");
        return -1;
    }
    sg_rnn_options ro;
    sg__cell c;
    sg__lstm_cell(l, &ro, &c);
    return lstm_torch(ctx, "sg_lstm_set_torch", &c, true, false, (sg_tensor *)weight_ih,
                      (sg_tensor *)weight_hh, (sg_tensor *)bias_ih, (sg_tensor *)bias_hh);
}

/* An LSTM cell and PyTorch's layout (sg__cell_fns.torch): weight_ih = kernel^T,
 * weight_hh = recurrent_kernel^T, bias_ih + bias_hh = bias (same gate order i, f, g, o).
 * Out of the cell, bias_ih gets the bias and bias_hh zeros (with grads: both get the bias'
 * gradient, the derivative of a sum). */
static int lstm_torch(sg_ctx *ctx, const char *fn, const sg__cell *c, bool to_cell, bool grads,
                      sg_tensor *w_ih, sg_tensor *w_hh, sg_tensor *b_ih, sg_tensor *b_hh) {
    int64_t I = c->in, H = c->units;
    if (!check_shape(ctx, fn, c->name, "weight_ih", w_ih, 2, 4 * H, I) ||
        !check_shape(ctx, fn, c->name, "weight_hh", w_hh, 2, 4 * H, H) ||
        (b_ih && !check_shape(ctx, fn, c->name, "bias_ih", b_ih, 1, 4 * H, 0)) ||
        (b_hh && !check_shape(ctx, fn, c->name, "bias_hh", b_hh, 1, 4 * H, 0)))
        return -1;
    bool was = sg_ctx_set_grad_enabled(ctx, false);
    /* Transposes are views; the summed bias (or, out of the cell, the bias' buffer) is a
     * small temporary. */
    sg_tensor *k = sg_transpose(ctx, w_ih, 0, 1);
    sg_tensor *rk = sg_transpose(ctx, w_hh, 0, 1);
    sg_tensor *b = !b_ih && !b_hh ? NULL
                   : to_cell      ? sg__torch_bias_sum(ctx, b_ih, b_hh, 4 * H)
                                  : sg_zeros(ctx, SG_F64, SG_SHAPE(4 * H));
    sg_ctx_set_grad_enabled(ctx, was);
    if (!k || !rk || ((b_ih || b_hh) && !b))
        return -1;
    int rc = sg__lstm_transfer(ctx, fn, c, grads, to_cell, k, rk, b);
    if (!rc && !to_cell) {
        if (b_ih)
            rc = copy_flat(b_ih, b);
        if (!rc && b_hh)
            rc = grads ? copy_flat(b_hh, b) : sg_fill(b_hh, 0.0);
    }
    return rc;
}

int sg__lstm_torch(sg_ctx *ctx, const sg__cell *c, bool to_cell, bool grads, sg_tensor *w_ih,
                   sg_tensor *w_hh, sg_tensor *b_ih, sg_tensor *b_hh) {
    return lstm_torch(ctx, to_cell ? "sg_rnn_set_torch" : "sg_rnn_get_torch", c, to_cell, grads,
                      w_ih, w_hh, b_ih, b_hh);
}

int sg_lstm_copy(sg_ctx *ctx, sg_lstm *dst, const sg_lstm *src) {
    if (!ctx)
        return -1;
    if (!dst || !src) {
        sg_error(ctx, "sg_lstm_copy: layer is NULL");
        return -1;
    }
    int64_t I = src->opt.input_size, H = src->opt.units;
    if (dst->opt.input_size != I || dst->opt.units != H) {
        sg_error(ctx, "sg_lstm_copy: sizes differ: (%s) has I=%lld H=%lld, (%s) has I=%lld H=%lld",
                 src->name, (long long)I, (long long)H, dst->name, (long long)dst->opt.input_size,
                 (long long)dst->opt.units);
        return -1;
    }
    if (dst->opt.activation != src->opt.activation ||
        dst->opt.recurrent_activation != src->opt.recurrent_activation) {
        sg_error(ctx, "sg_lstm_copy: activations differ: (%s) uses %s/%s, (%s) uses %s/%s",
                 src->name, sg_activation_name(src->opt.activation),
                 sg_activation_name(src->opt.recurrent_activation), dst->name,
                 sg_activation_name(dst->opt.activation),
                 sg_activation_name(dst->opt.recurrent_activation));
        return -1;
    }
    sg_tensor *k = sg_zeros(ctx, SG_F64, SG_SHAPE(I, 4 * H));
    sg_tensor *rk = sg_zeros(ctx, SG_F64, SG_SHAPE(H, 4 * H));
    sg_tensor *b = src->opt.use_bias ? sg_zeros(ctx, SG_F64, SG_SHAPE(4 * H)) : NULL;
    if (!k || !rk || (src->opt.use_bias && !b))
        return -1;
    if (sg_lstm_get_keras(ctx, src, false, k, rk, b))
        return -1;
    return sg_lstm_set_keras(ctx, dst, k, rk, b);
}

/* ---- PyTorch's recurrent layouts, for the cells (layers/internal.h) ------------------- */

int sg__torch_blocks(sg_ctx *ctx, bool to_torch, sg_tensor *k, sg_tensor *t, int G, int64_t H,
                     const int *perm) {
    const bool had_err = sg_ctx_error(ctx) != NULL;
    bool was = sg_ctx_set_grad_enabled(ctx, false);
    int rc = 0;
    for (int p = 0; p < G && !rc; p++) {
        int kb = perm ? perm[p] : p;
        /* Keras' block is columns kb*H .. of its last axis; a matrix's is transposed to
         * PyTorch's (H, n) rows */
        sg_tensor *kv = sg_slice(ctx, k, k->ndim - 1, kb * H, H);
        if (kv && k->ndim == 2)
            kv = sg_transpose(ctx, kv, 0, 1);
        sg_tensor *tv = sg_slice(ctx, t, 0, p * H, H);
        rc = !kv || !tv ? -1 : to_torch ? sg_copy_values(tv, kv) : sg_copy_values(kv, tv);
    }
    sg_ctx_set_grad_enabled(ctx, was);
    return rc || (!had_err && sg_ctx_error(ctx)) ? -1 : 0;
}

sg_tensor *sg__torch_bias_sum(sg_ctx *ctx, const sg_tensor *b_ih, const sg_tensor *b_hh,
                              int64_t n) {
    if (!b_ih && !b_hh)
        return NULL;
    sg_tensor *b = sg_zeros(ctx, SG_F64, SG_SHAPE(n));
    for (int64_t j = 0; b && j < n; j++)
        sg_set_flat(b, j,
                    (b_ih ? sg_get_flat(b_ih, j) : 0.0) + (b_hh ? sg_get_flat(b_hh, j) : 0.0));
    return b;
}
