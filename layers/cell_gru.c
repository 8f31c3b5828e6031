/* The GRU cell (Keras' GRU, PyTorch's nn.GRU), built only from autograd ops (docs/lstm.md,
 * "GRU and SimpleRNN"). Keras layout: kernel (I, 3H), recurrent_kernel (H, 3H) = U, blocks
 * z, r, h; ract = recurrent_activation (sigmoid), act = activation (tanh).
 *
 *   reset_after (Keras' default, PyTorch's form), bias (2, 3H) = [b_i; b_h]:
 *     xp  = x @ kernel + b_i                (B, T, 3H), all steps at once (project)
 *     hu  = h @ U + b_h                     (B, 3H)
 *     z, r = ract(xp[z, r] + hu[z, r])
 *     h~  = act(xp[h] + r * hu[h])
 *   reset_after = false, bias (3H):
 *     xp  = x @ kernel + bias
 *     z, r = ract(xp[z, r] + h @ U[:, z, r])
 *     h~  = act(xp[h] + (r * h) @ U[:, h])
 *   then h' = z * h + (1 - z) * h~, computed as lerp(h~, h, z) = h~ + z * (h - h~).
 *
 * Small steps (not in place) are dominated by the cost per recorded op, not by arithmetic:
 * there xp + hu is one add over all three blocks, and xp[h] + r * hu[h] one lerp of its h
 * block (see gru_step).
 *
 * With h = 0 (no initial state) the products with h are skipped: hu is b_h alone, and
 * h' = h~ - z * h~. */
#include "internal.h"

static int gru_create(sg_ctx *ctx, sg_store *store, sg__cell *c, const char *prefix, sg_rng *rng) {
    const sg_rnn_options *o = c->opt;
    if (o->activation < SG_ACT_TANH || o->activation > SG_ACT_LINEAR ||
        o->recurrent_activation < SG_ACT_TANH || o->recurrent_activation > SG_ACT_LINEAR) {
        sg_error(ctx, "sg_rnn_new (%s): unknown activation %d or recurrent_activation %d", prefix,
                 (int)o->activation, (int)o->recurrent_activation);
        return -1;
    }
    return sg__cell_create_keras(ctx, store, c, prefix, rng, o->reset_after ? 2 : 1);
}

/* May a step work in place? Only with tanh and sigmoid, whose backward reads their output:
 * the others read their input, and reading a plain view of xp would mark all of it. */
static bool act_in_place(sg_activation a) { return a == SG_ACT_TANH || a == SG_ACT_SIGMOID; }

static int gru_step(sg_ctx *ctx, const sg__cell *c, sg_tensor *xp, sg_tensor **state, bool ip) {
    const sg_rnn_options *o = c->opt;
    const int64_t H = c->units;
    sg_tensor *h = state[0], *U = c->recurrent_kernel;
    /* the input side of the pre-activations: dL/dxp_t is dL/dz_t (sg_gradcheck_rnn) */
    xp = sg_gate_probe(ctx, xp, "zrh");
    /* h where it enters a recurrent product: with recurrent dropout, times the driver's mask
     * (z * h below keeps h itself, as Keras does) */
    sg_tensor *hr = h && c->rec_mask ? sg_mul(ctx, h, c->rec_mask) : h;
    /* In place: sums and activations overwrite xp's slices or this step's own fresh results,
     * which no recorded backward reads at that point (docs/engine.md) */
    ip = ip && act_in_place(o->activation) && act_in_place(o->recurrent_activation);
    sg_tensor *(*add)(sg_ctx *, sg_tensor *, sg_tensor *) = ip ? sg_add_ : sg_add;
    sg_tensor *(*act)(sg_ctx *, sg_tensor *, sg_activation) = ip ? sg_activate_ : sg_activate;
    sg_tensor *(*addmm)(sg_ctx *, sg_tensor *, sg_tensor *, sg_tensor *) =
        ip ? sg_addmm_ : sg_addmm;
    /* the recurrent terms of all three blocks (reset_after), (B, 3H); b_h (3H) alone when
     * h = 0; NULL when there are none */
    sg_tensor *bh = o->reset_after && c->bias ? sg_select(ctx, c->bias, 0, 1) : NULL;
    sg_tensor *hu = !o->reset_after || !h ? bh
                    : bh                  ? sg_addmm(ctx, bh, hr, U)
                                          : sg_matmul(ctx, hr, U);
    /* Small steps (those the driver does not run in place) with Keras' defaults (sigmoid
     * gates, tanh candidate) and reset_after: the gate arithmetic as one op (sg_gru_gates),
     * the step's dozen small composed ops down to the recurrent product and it, since at these
     * sizes the time goes to recording ops; larger steps run the composed ops in place, whose
     * vector kernels and memory pay there (bench/README.md). hu is b_h spread over the batch
     * when h = 0. */
    if (!ip && o->reset_after && o->recurrent_activation == SG_ACT_SIGMOID &&
        o->activation == SG_ACT_TANH) {
        if (hu && !h)
            hu = sg_expand(ctx, hu, 2, (int64_t[]){xp->shape[0], 3 * H});
        state[0] = sg_label(ctx, sg_gru_gates(ctx, xp, hu, h), "h_t");
        return state[0] ? 0 : -1;
    }
    int ax = hu ? hu->ndim - 1 : 0;
    /* the z, r pre-activations (the first 2H columns of zr). Not in place, with hu: xp + hu
     * over all three blocks in one op, whose h block is not used: on steps this small (in
     * place is for the larger ones) two slices to leave it out cost more than adding it */
    sg_tensor *zr =
        hu && !ip ? sg_add(ctx, xp, hu)
        : hu      ? sg_add_(ctx, sg_slice(ctx, xp, 1, 0, 2 * H), sg_slice(ctx, hu, ax, 0, 2 * H))
        : h       ? addmm(ctx, sg_slice(ctx, xp, 1, 0, 2 * H), hr, sg_slice(ctx, U, 1, 0, 2 * H))
                  : sg_slice(ctx, xp, 1, 0, 2 * H);
    /* z, r: in place each over its own slice (a backward reading an in-place result marks
     * only its region; a slice of one would mark the whole buffer); else one activation over
     * zr, then its slices */
    sg_tensor *z, *r, *pre = zr;
    if (ip) {
        z = act(ctx, sg_slice(ctx, zr, 1, 0, H), o->recurrent_activation);
        r = act(ctx, sg_slice(ctx, zr, 1, H, H), o->recurrent_activation);
    } else {
        zr = act(ctx, zr, o->recurrent_activation);
        z = sg_slice(ctx, zr, 1, 0, H);
        r = sg_slice(ctx, zr, 1, H, H);
    }
    sg_label(ctx, z, "z_t");
    sg_label(ctx, r, "r_t");
    sg_tensor *xh = sg_slice(ctx, xp, 1, 2 * H, H);
    /* xp[h] + r * hu[h]; not in place, as lerp(xp[h], xp[h] + hu[h], r) from the unused h
     * block of the sum above: one op for two (its rounding, of (xp[h] + hu[h]) - xp[h]
     * instead of hu[h], is that of the sum: absolute, at most that of its larger term) */
    sg_tensor *hpre = hu && !ip ? sg_lerp(ctx, xh, sg_slice(ctx, pre, 1, 2 * H, H), r)
                      : hu      ? add(ctx, xh, sg_mul(ctx, r, sg_slice(ctx, hu, ax, 2 * H, H)))
                      : h       ? addmm(ctx, xh, sg_mul(ctx, r, hr), sg_slice(ctx, U, 1, 2 * H, H))
                                : xh;
    sg_tensor *hh = sg_label(ctx, act(ctx, hpre, o->activation), "h~_t");
    /* h' = h~ + z * (h - h~) as one op (sg_lerp) */
    state[0] =
        sg_label(ctx, h ? sg_lerp(ctx, hh, h, z) : sg_sub(ctx, hh, sg_mul(ctx, z, hh)), "h_t");
    return state[0] ? 0 : -1;
}

/* PyTorch's r, z, n from Keras' z, r, h: PyTorch's block p is Keras' block perm[p]. */
static const int torch_perm[3] = {1, 0, 2};

static int gru_torch(sg_ctx *ctx, const sg__cell *c, bool to_cell, bool grads, sg_tensor *w_ih,
                     sg_tensor *w_hh, sg_tensor *b_ih, sg_tensor *b_hh) {
    const char *fn = to_cell ? "sg_rnn_set_torch" : "sg_rnn_get_torch";
    if (!c->opt->reset_after) {
        sg_error(ctx,
                 "%s (%s): PyTorch's GRU is Keras' reset_after = true; this layer has "
                 "reset_after = false",
                 fn, sg__cell_label(c));
        return -1;
    }
    if (sg__cell_torch_weights(ctx, c, to_cell, grads, w_ih, w_hh, b_ih, b_hh, torch_perm))
        return -1;
    /* bias row 0 is b_ih, row 1 b_hh, each block-permuted like the weights */
    const bool had_err = sg_ctx_error(ctx) != NULL;
    bool was = sg_ctx_set_grad_enabled(ctx, false);
    sg_tensor *bias = c->bias && grads && !to_cell ? c->bias->grad : c->bias;
    int rc = 0;
    for (int row = 0; row < 2 && !rc; row++) {
        sg_tensor *bt = row ? b_hh : b_ih;
        sg_tensor *bk = bias ? sg_select(ctx, bias, 0, row) : NULL;
        if (bias && !bk)
            rc = -1;
        else if (bk && bt)
            rc = sg__torch_blocks(ctx, !to_cell, bk, bt, 3, c->units, torch_perm);
        else if (to_cell ? bk != NULL : bt != NULL) /* the missing side's bias is zero */
            rc = sg_fill(to_cell ? bk : bt, 0.0);
    }
    sg_ctx_set_grad_enabled(ctx, was);
    return rc || (!had_err && sg_ctx_error(ctx)) ? -1 : 0;
}

const sg__cell_fns sg__gru_fns = {
    .name = "gru",
    .gates = 3,
    .nstate = 1,
    .project = sg__cell_project_keras,
    .step = gru_step,
    .create = gru_create,
    .torch = gru_torch,
};
