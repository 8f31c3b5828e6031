/* The LSTM cell in its two implementations, stepped by the recurrent driver (layers/rnn.c),
 * built only from autograd ops (docs/lstm.md).
 *
 *   fused (Keras layout):                      gates (one matrix per gate):
 *     xk  = bias + x @ kernel   (B, T, 4H)       v_t = concat([h_{t-1}, x_t], 1)  (B, H+I)
 *     z_t = xk[:, t] + h_{t-1} @ rk (B, 4H)      f_t = sigmoid(v_t @ W_f + b_f)   (B, H)
 *     i, f, c~, o = split(z_t, 4)                i_t, o_t likewise, g_t = tanh(v_t @ W_c + b_c)
 *     c_t = f * c_{t-1} + i * g(c~)              c_t = f_t * c_{t-1} + i_t * g_t
 *     h_t = o * g(c_t)                           h_t = o_t * tanh(c_t)
 *
 * x @ kernel does not depend on the recurrence, so the fused cell's project computes it for
 * every time step in one matmul; a step then does one (B, H) @ (H, 4H) product. With Keras'
 * default activations the fused cell's c_t and h_t are one op (sg_lstm_gates, its own
 * backward), which adds the bias too (xk is then x @ kernel); otherwise, and always in the
 * gates layout, the tape differentiates the ops above. */
#include "internal.h"

static const char *const gate_names = "ifco";
/* The gates' names in DOT graphs (sg_label): c~ is the candidate cell state. */
static const char *const gate_labels[4] = {"i_t", "f_t", "c~_t", "o_t"};

/* One step's cell update from the four activated gates (each (B, H)):
 * c = f * c + i * g;  h = o * act(c).
 * *c NULL is a zero cell state: then c = i * g, and the forget gate (which may be NULL) is
 * not read. With `ip`, f * c takes i * g in place. */
static void cell(sg_ctx *ctx, const sg_rnn_options *o, bool ip, sg_tensor *const gate[4],
                 sg_tensor **h, sg_tensor **c) {
    sg_tensor *ig = sg_mul(ctx, gate[SG_GATE_I], gate[SG_GATE_C]);
    if (*c) {
        sg_tensor *fc = sg_mul(ctx, gate[SG_GATE_F], *c);
        *c = sg_label(ctx, ip ? sg_add_(ctx, fc, ig) : sg_add(ctx, fc, ig), "c_t");
    } else { /* said in the graph, so that the missing forget gate is no surprise */
        *c = sg_label(ctx, ig, "c_t (f_t skipped: c_0 = 0)");
    }
    *h = sg_label(ctx, sg_mul(ctx, gate[SG_GATE_O], sg_activate(ctx, *c, o->activation)), "h_t");
}

/* Is gate g left out of a step whose incoming cell state is c? With no c0 the first step's
 * f * c_0 is zero (c NULL): the forget gate and its pre-activations are skipped rather than
 * computed to multiply zeros (cell() then does not read it). */
static bool skipped(int g, const sg_tensor *c) { return g == SG_GATE_F && !c; }

/* The gates from the four pre-activations z[0..4) (each (B, H)) of a step whose incoming
 * cell state is c: i, f, o = ract(z_i, z_f, z_o), g = act(z_c); NULL for a skipped gate
 * (whose z may be NULL). With `ip` each gate is activated over its pre-activations. */
static void gates_of(sg_ctx *ctx, const sg_rnn_options *o, bool ip, sg_tensor *const z[4],
                     const sg_tensor *c, sg_tensor *gate[4]) {
    sg_tensor *(*act)(sg_ctx *, sg_tensor *, sg_activation) = ip ? sg_activate_ : sg_activate;
    for (int g = 0; g < 4; g++)
        gate[g] =
            skipped(g, c)
                ? NULL
                : sg_label(ctx,
                           act(ctx, z[g], g == SG_GATE_C ? o->activation : o->recurrent_activation),
                           gate_labels[g]);
}

/* h as the recurrent product reads it: times recurrent dropout's mask when there is one. */
static sg_tensor *h_in(sg_ctx *ctx, const sg__cell *c, sg_tensor *h) {
    return h && c->rec_mask ? sg_mul(ctx, h, c->rec_mask) : h;
}

/* ---- fused --------------------------------------------------------------------------- */

/* Does a step run the gate arithmetic as one node (sg_lstm_gates)? With Keras' default
 * activations, unless labels are on, where the graph shows each gate (a lecture's picture).
 * That node adds the bias itself, so the projections are then x @ kernel alone. */
static bool gates_op(sg_ctx *ctx, const sg_rnn_options *o) {
    return o->activation == SG_ACT_TANH && o->recurrent_activation == SG_ACT_SIGMOID &&
           !sg_ctx_labels(ctx);
}

/* All time steps' input projections in one (B*T, I) @ (I, 4H) product. Time-major (for the
 * in-place step, which then writes one contiguous (B, 4H) block): x is copied time-major
 * first (I columns, against 4H in the result), and the projections become the sequence
 * whose steps the in-place step completes with h_{t-1} @ rk (sg_seqmm: rk's gradient is then
 * one product over all the steps, not one per step). With the gate op, which adds the bias,
 * the steps compute their x_t @ kernel themselves (sg_seqmm_x), each block then written once,
 * in cache. */
static sg_tensor *fused_project(sg_ctx *ctx, const sg__cell *c, sg_tensor *x, bool time_major) {
    sg_tensor *xt = time_major ? sg_contiguous(ctx, sg_transpose(ctx, x, 0, 1)) : x;
    bool bias_here = c->bias && !gates_op(ctx, c->opt);
    if (time_major && !bias_here)
        return sg_seqmm_x(ctx, xt, c->kernel, c->recurrent_kernel);
    sg_tensor *xk = bias_here ? sg_addmm(ctx, c->bias, xt, c->kernel) /* (T|B, B|T, 4H) */
                              : sg_matmul(ctx, xt, c->kernel);
    return time_major ? sg_seqmm_(ctx, xk, c->recurrent_kernel) : xk;
}

static int fused_step(sg_ctx *ctx, const sg__cell *cl, sg_tensor *z, sg_tensor **state, bool ip) {
    const sg_rnn_options *o = cl->opt;
    int64_t H = cl->units;
    sg_tensor *h = state[0], *c = state[1];
    /* z += h @ rk in one node, into xk's slice itself when in place (the step of the
     * sequence fused_project made, which computes x_t @ kernel too); h_0 = 0 contributes
     * nothing */
    if (ip)
        z = sg_seqmm_step(ctx, cl->xp, cl->t, h ? h_in(ctx, cl, h) : NULL);
    else if (h)
        z = sg_addmm(ctx, z, h_in(ctx, cl, h), cl->recurrent_kernel);
    z = sg_gate_probe(ctx, z, gate_names); /* sg_gradcheck_rnn's dL/dz_t by gate */
    if (gates_op(ctx, o)) {                /* the bias is added there */
        sg_tensor *hc =
            ip ? sg_lstm_gates_(ctx, z, c, cl->bias) : sg_lstm_gates(ctx, z, c, cl->bias);
        state[0] = h = sg_slice(ctx, hc, 1, 0, H);
        state[1] = c = sg_slice(ctx, hc, 1, H, H);
        return h && c ? 0 : -1;
    }
    /* split(z, 4) as its four (B, H) slices (not the forget gate's when c is zero, see
     * skipped) */
    sg_tensor *zs[4], *gate[4];
    if (ip) {
        for (int g = 0; g < 4; g++)
            zs[g] = skipped(g, c) ? NULL : sg_slice(ctx, z, 1, g * H, H);
        gates_of(ctx, o, true, zs, c, gate);
    } else {
        /* ract(z) as one op over all four gates, the gates slices of it: an elementwise
         * function commutes with slicing, and on small steps one contiguous op costs less
         * than three on strided slices, though it also activates z_c, which only act() reads
         * (bench/README.md has the measurement) */
        sg_tensor *a = sg_label(ctx, sg_activate(ctx, z, o->recurrent_activation), "i f . o_t");
        for (int g = 0; g < 4; g++)
            gate[g] = sg_label(ctx,
                               g == SG_GATE_C
                                   ? sg_activate(ctx, sg_slice(ctx, z, 1, g * H, H), o->activation)
                               : skipped(g, c) ? NULL
                                               : sg_slice(ctx, a, 1, g * H, H),
                               gate_labels[g]);
    }
    cell(ctx, o, ip, gate, &h, &c);
    state[0] = h;
    state[1] = c;
    return h && c ? 0 : -1;
}

/* ---- gates --------------------------------------------------------------------------- */

static sg_tensor *gates_project(sg_ctx *ctx, const sg__cell *c, sg_tensor *x, bool time_major) {
    (void)ctx, (void)c, (void)time_major;
    return x; /* each step reads x_t itself */
}

static int gates_step(sg_ctx *ctx, const sg__cell *cl, sg_tensor *x_t, sg_tensor **state, bool ip) {
    const sg_rnn_options *o = cl->opt;
    sg_tensor *h = state[0], *c = state[1];
    if (!h) /* h enters through concat, so a zero h is a zeros tensor */
        h = sg_zeros(ctx, o->dtype, SG_SHAPE(x_t ? x_t->shape[0] : 1, cl->units));
    sg_tensor *v =
        sg_label(ctx, sg_concat(ctx, 2, (sg_tensor *[]){h_in(ctx, cl, h), x_t}, 1), "[h_t-1, x_t]");
    sg_tensor *zs[4], *gate[4];
    for (int g = 0; g < 4; g++) /* (B, H+I) @ (H+I, H) */
        zs[g] = skipped(g, c) ? NULL
                              : sg_gate_probe(ctx,
                                              cl->b[g] ? sg_addmm(ctx, cl->b[g], v, cl->W[g])
                                                       : sg_matmul(ctx, v, cl->W[g]),
                                              (const char[]){gate_names[g], 0});
    gates_of(ctx, o, ip, zs, c, gate);
    cell(ctx, o, ip, gate, &h, &c);
    state[0] = h;
    state[1] = c;
    return h && c ? 0 : -1;
}

/* ---- parameters ---------------------------------------------------------------------- */

/* Register the parameters: fused kernel (I, 4H), recurrent_kernel (H, 4H), bias (4H); gates
 * W_g (H + I, H) and b_g (1, H), in the order W_i, b_i, W_f, ... Then draw the Keras-layout
 * weights (exactly as Keras does: the kernel initializer over (I, 4H), the recurrent one over
 * (H, 4H), the bias with the forget block set to one) and copy them in, so both
 * implementations start as the same function. The temporaries are persistent so that
 * creating a layer leaves the arena as it was. */
static int lstm_create(sg_ctx *ctx, sg_store *store, sg__cell *c, const char *prefix, sg_rng *rng) {
    const sg_rnn_options *opt = c->opt;
    int64_t I = c->in, H = c->units;
    sg_dtype dt = opt->dtype;
    char pname[96];
    bool made = true;
    if (c->fns != &sg__lstm_gates_fns) { /* the Keras layout: fused, and the layer_norm cell */
        snprintf(pname, sizeof pname, "%s.kernel", prefix);
        made = (c->kernel = sg_store_param(ctx, store, pname, dt, SG_SHAPE(I, 4 * H)));
        snprintf(pname, sizeof pname, "%s.recurrent_kernel", prefix);
        made = made &&
               (c->recurrent_kernel = sg_store_param(ctx, store, pname, dt, SG_SHAPE(H, 4 * H)));
        snprintf(pname, sizeof pname, "%s.bias", prefix);
        made = made && (!opt->use_bias ||
                        (c->bias = sg_store_param(ctx, store, pname, dt, SG_SHAPE(4 * H))));
    } else {
        for (int g = 0; made && g < 4; g++) {
            snprintf(pname, sizeof pname, "%s.W_%c", prefix, gate_names[g]);
            made = (c->W[g] = sg_store_param(ctx, store, pname, dt, SG_SHAPE(H + I, H)));
            snprintf(pname, sizeof pname, "%s.b_%c", prefix, gate_names[g]);
            made = made && (!opt->use_bias ||
                            (c->b[g] = sg_store_param(ctx, store, pname, dt, SG_SHAPE(1, H))));
        }
    }
    if (!made)
        return -1;
    sg_tensor *k = sg_persistent_new(ctx, dt, SG_SHAPE(I, 4 * H));
    sg_tensor *rk = sg_persistent_new(ctx, dt, SG_SHAPE(H, 4 * H));
    sg_tensor *b = opt->use_bias ? sg_persistent_new(ctx, dt, SG_SHAPE(4 * H)) : NULL;
    int rc = (!k || !rk || (opt->use_bias && !b)) ? -1 : 0;
    if (!rc)
        rc = sg_init_tensor(ctx, k, opt->kernel_initializer, rng);
    if (!rc)
        rc = sg_init_tensor(ctx, rk, opt->recurrent_initializer, rng);
    if (!rc && b) {
        rc = sg_init_tensor(ctx, b, opt->bias_initializer, rng);
        for (int64_t j = H; !rc && opt->unit_forget_bias && j < 2 * H; j++)
            rc = sg_set_flat(b, j, 1.0);
    }
    if (!rc)
        rc = sg__lstm_transfer(ctx, "sg_lstm_set_keras", c, false, true, k, rk, b);
    sg_tensor_free(k);
    sg_tensor_free(rk);
    sg_tensor_free(b);
    return rc;
}

const sg__cell_fns sg__lstm_fused_fns = {
    .name = "lstm",
    .gates = 4,
    .nstate = 2,
    .project = fused_project,
    .step = fused_step,
    .create = lstm_create,
    .torch = sg__lstm_torch,
};

const sg__cell_fns sg__lstm_gates_fns = {
    .name = "lstm",
    .gates = 4,
    .nstate = 2,
    .x_direct = true,
    .project = gates_project,
    .step = gates_step,
    .create = lstm_create,
    .torch = sg__lstm_torch,
};
