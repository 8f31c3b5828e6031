/* The layer-normalised LSTM cell (Ba, Kiros & Hinton 2016; DyNet's and KANN's ln-LSTM): the
 * LSTM of cell_lstm.c with the input and recurrent projections normalised separately before
 * the bias is added, and the cell state normalised before its activation:
 *
 *     z_t = LN_x(x_t @ kernel) + LN_h(h_{t-1} @ recurrent_kernel) + bias     (B, 4H)
 *     i, f, o = ract(z_i, z_f, z_o),  g = act(z_c)
 *     c_t = f * c_{t-1} + i * g,      h_t = o * act(LN_c(c_t))
 *
 * LN over the last axis (all 4H pre-activations of a step at once, as DyNet does; H for the
 * cell) with eps 1e-5, each with its own gain (ones) and bias (zeros): parameters
 * "<prefix>.ln_x.gain" / ".ln_x.bias" (4H), ".ln_h.*" (4H), ".ln_c.*" (H) beside the LSTM's
 * kernel, recurrent_kernel and bias, which are drawn exactly as the plain LSTM draws them.
 * Composed of autograd ops (sg_layer_norm is one fused node), so the tape derives the
 * backward; no in-place step. PyTorch has no such layer: torch() refuses. */
#include "internal.h"

#define LN_EPS 1e-5

/* project: x @ kernel for all steps at once; the bias comes after the normalisation. */
static sg_tensor *ln_project(sg_ctx *ctx, const sg__cell *c, sg_tensor *x, bool time_major) {
    sg_tensor *xt = time_major ? sg_transpose(ctx, x, 0, 1) : x;
    return sg_matmul(ctx, xt, c->kernel);
}

static int ln_step(sg_ctx *ctx, const sg__cell *c, sg_tensor *xp_t, sg_tensor **state, bool ip) {
    (void)ip; /* layer norm reads its input in backward: never in place */
    const sg_rnn_options *o = c->opt;
    int64_t H = c->units, B = xp_t->shape[0];
    sg_tensor *h = state[0], *cs = state[1];
    /* h_0 = 0 still goes through LN_h: its normalisation is LN_h's bias, not zero; recurrent
     * dropout's mask, when the driver set one, where h enters the product */
    sg_tensor *hr =
        h ? sg_matmul(ctx, c->rec_mask ? sg_mul(ctx, h, c->rec_mask) : h, c->recurrent_kernel)
          : sg_zeros(ctx, xp_t->dtype, SG_SHAPE(B, 4 * H));
    sg_tensor *z = sg_add(ctx, sg_layer_norm(ctx, xp_t, c->ln_gain[0], c->ln_bias[0], LN_EPS),
                          sg_layer_norm(ctx, hr, c->ln_gain[1], c->ln_bias[1], LN_EPS));
    if (c->bias)
        z = sg_add(ctx, z, c->bias);
    sg_tensor *gate[4];
    for (int g = 0; g < 4; g++)
        gate[g] = sg_activate(ctx, sg_slice(ctx, z, 1, g * H, H),
                              g == SG_GATE_C ? o->activation : o->recurrent_activation);
    sg_tensor *ig = sg_mul(ctx, gate[SG_GATE_I], gate[SG_GATE_C]);
    cs = cs ? sg_add(ctx, sg_mul(ctx, gate[SG_GATE_F], cs), ig) : ig;
    sg_tensor *cn = sg_layer_norm(ctx, cs, c->ln_gain[2], c->ln_bias[2], LN_EPS);
    h = sg_mul(ctx, gate[SG_GATE_O], sg_activate(ctx, cn, o->activation));
    if (!h)
        return -1;
    state[0] = h;
    state[1] = cs;
    return 0;
}

/* The LSTM's parameters, drawn as the plain LSTM draws them, then the normalisations'. */
static int ln_create(sg_ctx *ctx, sg_store *store, sg__cell *c, const char *prefix, sg_rng *rng) {
    if (sg__lstm_fused_fns.create(ctx, store, c, prefix, rng))
        return -1;
    static const char *const which[3] = {"ln_x", "ln_h", "ln_c"};
    for (int k = 0; k < 3; k++) {
        int64_t n = k < 2 ? 4 * c->units : c->units;
        char name[96];
        snprintf(name, sizeof name, "%s.%s.gain", prefix, which[k]);
        c->ln_gain[k] = sg_store_param(ctx, store, name, c->opt->dtype, SG_SHAPE(n));
        snprintf(name, sizeof name, "%s.%s.bias", prefix, which[k]);
        c->ln_bias[k] = sg_store_param(ctx, store, name, c->opt->dtype, SG_SHAPE(n));
        if (!c->ln_gain[k] || !c->ln_bias[k] || sg_fill(c->ln_gain[k], 1.0))
            return -1;
    }
    return 0;
}

static int ln_torch(sg_ctx *ctx, const sg__cell *c, bool to_cell, bool grads, sg_tensor *w_ih,
                    sg_tensor *w_hh, sg_tensor *b_ih, sg_tensor *b_hh) {
    (void)c, (void)to_cell, (void)grads, (void)w_ih, (void)w_hh, (void)b_ih, (void)b_hh;
    sg_error(ctx, "layer_norm LSTM: PyTorch has no such layer, so there is no PyTorch layout");
    return -1;
}

const sg__cell_fns sg__lstm_ln_fns = {
    .name = "lstm",
    .gates = 4,
    .nstate = 2,
    .project = ln_project,
    .step = ln_step,
    .create = ln_create,
    .torch = ln_torch,
};
