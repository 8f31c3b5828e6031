/* The SimpleRNN cell (Keras' SimpleRNN, PyTorch's nn.RNN), built only from autograd ops
 * (docs/lstm.md, "GRU and SimpleRNN"): kernel (I, H), recurrent_kernel (H, H), bias (H),
 *     xp = x @ kernel + bias   (B, T, H), all steps at once (project)
 *     h' = act(xp_t + h @ recurrent_kernel),   act tanh or relu (PyTorch's nonlinearity).
 * PyTorch's layout: weight_ih = kernel^T, weight_hh = recurrent_kernel^T, and two biases
 * whose sum is Keras' one. */
#include "internal.h"

static int rnn_create(sg_ctx *ctx, sg_store *store, sg__cell *c, const char *prefix, sg_rng *rng) {
    sg_activation a = c->opt->activation;
    if (a != SG_ACT_TANH && a != SG_ACT_RELU) {
        bool known = a >= SG_ACT_TANH && a <= SG_ACT_LINEAR;
        sg_error(ctx, "sg_rnn_new (%s): simple_rnn activation must be tanh or relu, got %s", prefix,
                 known ? sg_activation_name(a) : "an unknown one");
        return -1;
    }
    return sg__cell_create_keras(ctx, store, c, prefix, rng, 1);
}

static int rnn_step(sg_ctx *ctx, const sg__cell *c, sg_tensor *xp, sg_tensor **state, bool ip) {
    sg_tensor *h = state[0];
    /* in place (ip): h @ U is added into xp's slice and activated there; not with relu,
     * whose backward reads its input (a plain view of xp when h = 0 would mark all of xp) */
    ip = ip && c->opt->activation == SG_ACT_TANH;
    /* with recurrent dropout, h enters the product times the driver's mask */
    sg_tensor *hr = h && c->rec_mask ? sg_mul(ctx, h, c->rec_mask) : h;
    sg_tensor *pre = !h   ? xp
                     : ip ? sg_addmm_(ctx, xp, hr, c->recurrent_kernel)
                          : sg_addmm(ctx, xp, hr, c->recurrent_kernel);
    pre = sg_gate_probe(ctx, pre, "h"); /* sg_gradcheck_rnn's dL/dz_t */
    state[0] = sg_label(ctx,
                        ip ? sg_activate_(ctx, pre, c->opt->activation)
                           : sg_activate(ctx, pre, c->opt->activation),
                        "h_t");
    return state[0] ? 0 : -1;
}

static int rnn_torch(sg_ctx *ctx, const sg__cell *c, bool to_cell, bool grads, sg_tensor *w_ih,
                     sg_tensor *w_hh, sg_tensor *b_ih, sg_tensor *b_hh) {
    if (sg__cell_torch_weights(ctx, c, to_cell, grads, w_ih, w_hh, b_ih, b_hh, NULL))
        return -1;
    const bool had_err = sg_ctx_error(ctx) != NULL;
    int rc = 0;
    if (to_cell) {
        /* bias = b_ih + b_hh; zero when neither is given */
        sg_tensor *sum = sg__torch_bias_sum(ctx, b_ih, b_hh, c->units);
        if (c->bias)
            rc = sum ? sg_copy_values(c->bias, sum) : sg_fill(c->bias, 0.0);
    } else {
        /* values: b_ih = bias, b_hh = 0 (one of the splits with that sum); gradients: each
         * is the bias's, as both enter the sum with weight 1 */
        sg_tensor *src = c->bias && grads ? c->bias->grad : c->bias;
        if (b_ih)
            rc |= src ? sg_copy_values(b_ih, src) : sg_fill(b_ih, 0.0);
        if (b_hh)
            rc |= src && grads ? sg_copy_values(b_hh, src) : sg_fill(b_hh, 0.0);
    }
    return rc || (!had_err && sg_ctx_error(ctx)) ? -1 : 0;
}

const sg__cell_fns sg__rnn_fns = {
    .name = "simple_rnn",
    .gates = 1,
    .nstate = 1,
    .project = sg__cell_project_keras,
    .step = rnn_step,
    .create = rnn_create,
    .torch = rnn_torch,
};
