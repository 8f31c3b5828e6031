/* Moving LSTM weights between layouts: Keras (kernel, recurrent_kernel, bias), the gates
 * layout (W_g = [rows acting on h; rows acting on x], b_g), and PyTorch's nn.LSTM
 * (weight_ih = kernel^T, weight_hh = recurrent_kernel^T, bias_ih + bias_hh = bias). The
 * mapping is the table in docs/lstm.md: block g of the Keras matrices is gate g's matrix. */
#include "internal.h"

/* dst = src element by element in row-major order (same element count; any dtypes and
 * strides; checked by the callers). Views made here are taken with grad mode off, so
 * nothing lands on the tape. */
static int copy_flat(sg_tensor *dst, const sg_tensor *src) { return sg_copy_values(dst, src); }

static bool check_shape(sg_ctx *ctx, const char *fn, const sg_lstm *l, const char *what,
                        const sg_tensor *t, int ndim, int64_t d0, int64_t d1) {
    if (!t || !sg_check(ctx, t, fn))
        return false;
    int64_t want[2] = {d0, d1};
    bool ok = t->ndim == ndim;
    for (int i = 0; ok && i < ndim; i++)
        ok = t->shape[i] == want[i];
    if (!ok) {
        char a[96], b[96];
        sg_error(ctx, "%s (%s): %s has shape %s, expected %s", fn, l->name, what,
                 sg_shape_str(t->ndim, t->shape, a, sizeof a),
                 sg_shape_str(ndim, want, b, sizeof b));
    }
    return ok;
}

/* Move values between the layer's parameters (or their grads) and Keras-layout tensors.
 * to_layer: Keras -> layer; else layer -> Keras. */
static int transfer(sg_ctx *ctx, const char *fn, sg_lstm *l, bool grads, bool to_layer,
                    sg_tensor *k, sg_tensor *rk, sg_tensor *b) {
    if (!ctx)
        return -1;
    if (!l) {
        sg_error(ctx, "%s: layer is NULL", fn);
        return -1;
    }
    int64_t I = l->opt.input_size, H = l->opt.units;
    if (!check_shape(ctx, fn, l, "kernel", k, 2, I, 4 * H) ||
        !check_shape(ctx, fn, l, "recurrent_kernel", rk, 2, H, 4 * H) ||
        (b && !check_shape(ctx, fn, l, "bias", b, 1, 4 * H, 0)))
        return -1;
    if (b && !l->opt.use_bias && to_layer) {
        sg_error(ctx, "%s (%s): a bias was given but the layer has use_bias = false", fn, l->name);
        return -1;
    }
    /* A failure of the copies below (some report to a parameter's store rather than ctx)
     * fails the call; an error recorded in ctx before the call does not. */
    const bool had_err = sg_ctx_error(ctx) != NULL;
    int rc = 0;
    bool was = sg_ctx_set_grad_enabled(ctx, false);
#define SRC(p) (grads ? (p)->grad : (p))
    if (l->impl == SG_LSTM_FUSED) {
        sg_tensor *pairs[3][2] = {{l->kernel, k}, {l->recurrent_kernel, rk}, {l->bias, b}};
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
        if (to_layer && l->bias && !b)
            rc |= sg_fill(l->bias, 0.0);
    } else {
        for (int g = 0; g < 4 && !rc; g++) {
            sg_tensor *W = to_layer ? l->W[g] : SRC(l->W[g]);
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
            else if (to_layer && l->b[g])
                rc |= bg ? copy_flat(l->b[g], bg) : sg_fill(l->b[g], 0.0);
            else if (!to_layer && bg)
                rc |= l->b[g] ? copy_flat(bg, SRC(l->b[g])) : sg_fill(bg, 0.0);
        }
    }
#undef SRC
    sg_ctx_set_grad_enabled(ctx, was);
    return rc || (!had_err && sg_ctx_error(ctx)) ? -1 : 0;
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

int sg_lstm_set_torch(sg_ctx *ctx, sg_lstm *l, const sg_tensor *weight_ih,
                      const sg_tensor *weight_hh, const sg_tensor *bias_ih,
                      const sg_tensor *bias_hh) {
    if (!ctx)
        return -1;
    if (!l) {
        sg_error(ctx, "sg_lstm_set_torch: layer is NULL");
        return -1;
    }
    const char *fn = "sg_lstm_set_torch";
    int64_t I = l->opt.input_size, H = l->opt.units;
    if (!check_shape(ctx, fn, l, "weight_ih", weight_ih, 2, 4 * H, I) ||
        !check_shape(ctx, fn, l, "weight_hh", weight_hh, 2, 4 * H, H) ||
        (bias_ih && !check_shape(ctx, fn, l, "bias_ih", bias_ih, 1, 4 * H, 0)) ||
        (bias_hh && !check_shape(ctx, fn, l, "bias_hh", bias_hh, 1, 4 * H, 0)))
        return -1;
    bool was = sg_ctx_set_grad_enabled(ctx, false);
    /* Transposes are views; the summed bias is a small temporary in the layer's dtype. */
    sg_tensor *k = sg_transpose(ctx, (sg_tensor *)weight_ih, 0, 1);
    sg_tensor *rk = sg_transpose(ctx, (sg_tensor *)weight_hh, 0, 1);
    sg_tensor *b = sg__torch_bias_sum(ctx, bias_ih, bias_hh, 4 * H);
    sg_ctx_set_grad_enabled(ctx, was);
    if (!k || !rk || ((bias_ih || bias_hh) && !b))
        return -1;
    return transfer(ctx, fn, l, false, true, k, rk, b);
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
