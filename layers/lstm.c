/* The LSTM, in two implementations, built only from autograd ops (docs/lstm.md).
 *
 *   fused (Keras layout):                      gates (one matrix per gate):
 *     xk  = bias + x @ kernel   (B, T, 4H)       v_t = concat([h_{t-1}, x_t], 1)  (B, H+I)
 *     z_t = xk[:, t] + h_{t-1} @ rk (B, 4H)      f_t = sigmoid(v_t @ W_f + b_f)   (B, H)
 *     i, f, c~, o = split(z_t, 4)                i_t, o_t likewise, g_t = tanh(v_t @ W_c + b_c)
 *     c_t = f * c_{t-1} + i * g(c~)              c_t = f_t * c_{t-1} + i_t * g_t
 *     h_t = o * g(c_t)                           h_t = o_t * tanh(c_t)
 *
 * x @ kernel does not depend on the recurrence, so the fused layer computes it for every
 * time step in one matmul; the loop then does one (B, H) @ (H, 4H) product per step.
 * There is no hand-written backward: the tape differentiates these ops. */
#include <string.h>

#include "internal.h"

sg_lstm_options sg_lstm_defaults(int64_t input_size, int64_t units) {
    return (sg_lstm_options){
        .input_size = input_size,
        .units = units,
        .dtype = SG_F32,
        .activation = SG_ACT_TANH,
        .recurrent_activation = SG_ACT_SIGMOID,
        .use_bias = true,
        .kernel_initializer = sg_init_default(SG_INIT_GLOROT_UNIFORM),
        .recurrent_initializer = sg_init_default(SG_INIT_ORTHOGONAL),
        .bias_initializer = sg_init_default(SG_INIT_ZEROS),
        .unit_forget_bias = true,
        .return_sequences = false,
        .return_state = false,
        .in_place = SG_IN_PLACE_AUTO,
    };
}

static const char *const gate_names = "ifco";

void sg_lstm_free(sg_lstm *l) {
    if (!l)
        return;
    sg_free(l); /* the parameters are the store's */
}

static bool valid_act(sg_activation a) { return a >= SG_ACT_TANH && a <= SG_ACT_LINEAR; }

/* Do the sizes of an LSTM's parameters, in either layout, overflow: 4H, H + I, and the
 * element counts of (I, 4H), (H, 4H) and (H + I, H), each at most 2^60 - 1 (the most any
 * tensor may hold)? I and H are positive. */
static bool lstm_sizes_overflow(int64_t I, int64_t H) {
    const int64_t max = INT64_MAX / 8;
    int64_t H4, HI, n;
    return __builtin_mul_overflow(H, 4, &H4) || __builtin_add_overflow(H, I, &HI) ||
           __builtin_mul_overflow(I, H4, &n) || n > max || __builtin_mul_overflow(H, H4, &n) ||
           n > max || __builtin_mul_overflow(HI, H, &n) || n > max;
}

sg_lstm *sg_lstm_new(sg_ctx *ctx, sg_store *store, sg_lstm_impl impl, const sg_lstm_options *opt,
                     const char *name, sg_rng *rng) {
    if (!ctx)
        return NULL;
    if (!opt)
        return sg_error(ctx, "sg_lstm_new: options are NULL (start from sg_lstm_defaults)");
    char nm[SG_LAYER_NAME_MAX + 1];
    if (sg__layer_name(ctx, store, "sg_lstm_new", name, "lstm", nm))
        return NULL;
    if (impl != SG_LSTM_FUSED && impl != SG_LSTM_GATES)
        return sg_error(ctx, "sg_lstm_new (%s): unknown implementation %d", nm, (int)impl);
    if (opt->input_size <= 0 || opt->units <= 0)
        return sg_error(ctx,
                        "sg_lstm_new (%s): input_size and units must be positive, got %lld "
                        "and %lld",
                        nm, (long long)opt->input_size, (long long)opt->units);
    if (opt->dtype != SG_F32 && opt->dtype != SG_F64)
        return sg_error(ctx, "sg_lstm_new (%s): unknown dtype %d", nm, (int)opt->dtype);
    if (!valid_act(opt->activation) || !valid_act(opt->recurrent_activation))
        return sg_error(ctx, "sg_lstm_new (%s): unknown activation", nm);
    if (opt->in_place < SG_IN_PLACE_AUTO || opt->in_place > SG_IN_PLACE_NEVER)
        return sg_error(ctx, "sg_lstm_new (%s): unknown in_place mode %d", nm, (int)opt->in_place);
    if (lstm_sizes_overflow(opt->input_size, opt->units))
        return sg_error(ctx,
                        "sg_lstm_new (%s): input_size %lld and units %lld: the parameter sizes "
                        "overflow (4 * units, units + input_size, or a weight matrix of more than "
                        "2^60 - 1 elements)",
                        nm, (long long)opt->input_size, (long long)opt->units);
    if (!rng)
        rng = sg_ctx_rng(ctx);

    int n0 = sg_store_size(store);
    sg_lstm *l = sg_calloc(1, sizeof *l);
    if (!l)
        return sg_error(ctx, "sg_lstm_new (%s): out of memory", nm);
    l->impl = impl;
    l->opt = *opt;
    snprintf(l->name, sizeof l->name, "%s", nm);
    int64_t I = opt->input_size, H = opt->units;
    sg_dtype dt = opt->dtype;
    char pname[96];
    if (impl == SG_LSTM_FUSED) {
        snprintf(pname, sizeof pname, "%s.kernel", nm);
        l->kernel = sg_store_param(ctx, store, pname, dt, SG_SHAPE(I, 4 * H));
        snprintf(pname, sizeof pname, "%s.recurrent_kernel", nm);
        l->recurrent_kernel = sg_store_param(ctx, store, pname, dt, SG_SHAPE(H, 4 * H));
        if (opt->use_bias) {
            snprintf(pname, sizeof pname, "%s.bias", nm);
            l->bias = sg_store_param(ctx, store, pname, dt, SG_SHAPE(4 * H));
        }
    } else {
        for (int g = 0; g < 4; g++) {
            snprintf(pname, sizeof pname, "%s.W_%c", nm, gate_names[g]);
            l->W[g] = sg_store_param(ctx, store, pname, dt, SG_SHAPE(H + I, H));
            if (opt->use_bias) {
                snprintf(pname, sizeof pname, "%s.b_%c", nm, gate_names[g]);
                l->b[g] = sg_store_param(ctx, store, pname, dt, SG_SHAPE(1, H));
            }
        }
    }
    bool made = l->impl == SG_LSTM_FUSED
                    ? l->kernel && l->recurrent_kernel && (!opt->use_bias || l->bias)
                    : true;
    for (int g = 0; l->impl == SG_LSTM_GATES && g < 4; g++)
        made = made && l->W[g] && (!opt->use_bias || l->b[g]);
    if (!made) {
        sg_lstm_free(l);
        sg_store_truncate(store, n0);
        return NULL;
    }

    /* Draw the Keras-layout weights (exactly as Keras does: the kernel initializer over
     * (I, 4H), the recurrent one over (H, 4H), the bias with the forget block set to one)
     * and copy them in, so both implementations start as the same function. These
     * temporaries are persistent so that creating a layer leaves the arena as it was. */
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
        rc = sg_lstm_set_keras(ctx, l, k, rk, b);
    sg_tensor_free(k);
    sg_tensor_free(rk);
    sg_tensor_free(b);
    if (rc) {
        sg_lstm_free(l);
        sg_store_truncate(store, n0);
        return NULL;
    }
    return l;
}

int sg_lstm_params(const sg_lstm *l, sg_param_list *list) {
    if (!l || !list)
        return -1;
    sg_tensor *const all[] = {l->kernel, l->recurrent_kernel,
                              l->bias,   l->W[0],
                              l->b[0],   l->W[1],
                              l->b[1],   l->W[2],
                              l->b[2],   l->W[3],
                              l->b[3]};
    /* Names come from the layer's name, not the tensors' (shorter) name fields. */
    static const char *const suffix[] = {
        "kernel", "recurrent_kernel", "bias", "W_i", "b_i", "W_f", "b_f", "W_c", "b_c", "W_o",
        "b_o"};
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++) {
        char n[sizeof list->items[0].name];
        snprintf(n, sizeof n, "%s.%s", l->name, suffix[i]);
        if (all[i] && sg_params_add(list, n, all[i]))
            return -1;
    }
    return 0;
}

/* ---- forward ------------------------------------------------------------------------- */

static bool check_state(sg_ctx *ctx, const sg_lstm *l, const char *what, const sg_tensor *s,
                        int64_t B) {
    if (!s)
        return true;
    if (!sg_check(ctx, s, "sg_lstm_forward"))
        return false;
    char a[96];
    if (s->ndim != 2 || s->shape[0] != B || s->shape[1] != l->opt.units) {
        sg_error(ctx, "sg_lstm_forward (%s): %s has shape %s, expected (%lld, %lld)", l->name, what,
                 sg_shape_str(s->ndim, s->shape, a, sizeof a), (long long)B,
                 (long long)l->opt.units);
        return false;
    }
    if (s->dtype != l->opt.dtype) {
        sg_error(ctx, "sg_lstm_forward (%s): %s is %s, the layer is %s", l->name, what,
                 sg_dtype_name(s->dtype), sg_dtype_name(l->opt.dtype));
        return false;
    }
    return true;
}

/* Does the step run in place (sg_in_place in layers.h)? tanh and sigmoid need only their
 * output in backward, so they may overwrite the pre-activations; the others read them. */
static bool in_place(const sg_lstm_options *o, int64_t B) {
    bool a = o->activation == SG_ACT_TANH || o->activation == SG_ACT_SIGMOID;
    bool r = o->recurrent_activation == SG_ACT_TANH || o->recurrent_activation == SG_ACT_SIGMOID;
    if (!a || !r || o->in_place == SG_IN_PLACE_NEVER)
        return false;
    int64_t n; /* B * 4H; a product too large for int64 is certainly large enough */
    return o->in_place == SG_IN_PLACE_ALWAYS || __builtin_mul_overflow(B, 4 * o->units, &n) ||
           n >= SG_LSTM_IN_PLACE_MIN;
}

/* One step's cell update from the four activated gates (each (B, H)):
 * c = f * c + i * g;  h = o * act(c).
 * *c NULL is a zero cell state: then c = i * g, and the forget gate (which may be NULL) is
 * not read. With `ip`, f * c takes i * g in place. */
static void cell(sg_ctx *ctx, const sg_lstm_options *o, bool ip, sg_tensor *const gate[4],
                 sg_tensor **h, sg_tensor **c) {
    sg_tensor *ig = sg_mul(ctx, gate[SG_GATE_I], gate[SG_GATE_C]);
    if (*c) {
        sg_tensor *fc = sg_mul(ctx, gate[SG_GATE_F], *c);
        *c = ip ? sg_add_(ctx, fc, ig) : sg_add(ctx, fc, ig);
    } else {
        *c = ig;
    }
    *h = sg_mul(ctx, gate[SG_GATE_O], sg_activate(ctx, *c, o->activation));
}

/* Is gate g left out of a step whose incoming cell state is c? With no c0 the first step's
 * f * c_0 is zero (c NULL): the forget gate and its pre-activations are skipped rather than
 * computed to multiply zeros (cell() then does not read it). */
static bool skipped(int g, const sg_tensor *c) { return g == SG_GATE_F && !c; }

/* The gates from the four pre-activations z[0..4) (each (B, H)) of a step whose incoming
 * cell state is c: i, f, o = ract(z_i, z_f, z_o), g = act(z_c); NULL for a skipped gate
 * (whose z may be NULL). With `ip` each gate is activated over its pre-activations. */
static void gates_of(sg_ctx *ctx, const sg_lstm_options *o, bool ip, sg_tensor *const z[4],
                     const sg_tensor *c, sg_tensor *gate[4]) {
    sg_tensor *(*act)(sg_ctx *, sg_tensor *, sg_activation) = ip ? sg_activate_ : sg_activate;
    for (int g = 0; g < 4; g++)
        gate[g] = skipped(g, c)
                      ? NULL
                      : act(ctx, z[g], g == SG_GATE_C ? o->activation : o->recurrent_activation);
}

int sg_lstm_forward(sg_ctx *ctx, sg_lstm *l, sg_tensor *x, sg_tensor *h0, sg_tensor *c0,
                    sg_lstm_output *out) {
    if (out)
        memset(out, 0, sizeof *out);
    if (!ctx)
        return -1;
    if (!l || !out) {
        sg_error(ctx, "sg_lstm_forward: layer or output is NULL");
        return -1;
    }
    if (!x || !sg_check(ctx, x, "sg_lstm_forward"))
        return -1;
    const sg_lstm_options *o = &l->opt;
    int64_t I = o->input_size, H = o->units;
    char a[96];
    if (x->ndim != 3 || x->shape[2] != I) {
        sg_error(ctx, "sg_lstm_forward (%s): x has shape %s, expected (B, T, %lld)", l->name,
                 sg_shape_str(x->ndim, x->shape, a, sizeof a), (long long)I);
        return -1;
    }
    if (x->dtype != o->dtype) {
        sg_error(ctx, "sg_lstm_forward (%s): x is %s, the layer is %s", l->name,
                 sg_dtype_name(x->dtype), sg_dtype_name(o->dtype));
        return -1;
    }
    int64_t B = x->shape[0], T = x->shape[1];
    if (T == 0 || B == 0) {
        sg_error(ctx,
                 "sg_lstm_forward (%s): x has shape %s: a sequence of length 0 (or an "
                 "empty batch) has no output",
                 l->name, sg_shape_str(x->ndim, x->shape, a, sizeof a));
        return -1;
    }
    if (!check_state(ctx, l, "h0", h0, B) || !check_state(ctx, l, "c0", c0, B))
        return -1;
    /* An error recorded by this call's own ops (anomaly mode's NaN, out of memory) fails the
     * call even where an op went on; one recorded before the call does not. */
    const bool had_err = sg_ctx_error(ctx) != NULL;

    sg_tensor **hs = o->return_sequences ? sg_arena_alloc(ctx, (size_t)T * sizeof *hs) : NULL;
    sg_tensor *h = h0, *c = c0; /* NULL: zero state, whose products are skipped */
    if (o->return_sequences && !hs)
        return -1;

    /* In place (tanh/sigmoid activations): each step's pre-activations are computed into,
     * and activated over, memory nobody else reads; the tape's in-place checks
     * (autograd.h) guard that. Backward then keeps about 7 (B, H) buffers per step. */
    bool ip = in_place(o, B);
    if (l->impl == SG_LSTM_FUSED) {
        /* All time steps' input projections in one (B*T, I) @ (I, 4H) product. In place,
         * time-major, so that the step writing into its slice writes one contiguous
         * (B, 4H) block (x is copied time-major first: I columns, against 4H in xk). */
        sg_tensor *xt = ip ? sg_contiguous(ctx, sg_transpose(ctx, x, 0, 1)) : x;
        sg_tensor *xk = l->bias ? sg_addmm(ctx, l->bias, xt, l->kernel) /* (T|B, B|T, 4H) */
                                : sg_matmul(ctx, xt, l->kernel);
        for (int64_t t = 0; t < T; t++) {
            sg_tensor *z = sg_select(ctx, xk, ip ? 0 : 1, t); /* (B, 4H) view */
            /* z += h @ rk in one node, into xk's slice itself when in place; h_0 = 0
             * contributes nothing: skip it */
            if (h)
                z = ip ? sg_addmm_(ctx, z, h, l->recurrent_kernel)
                       : sg_addmm(ctx, z, h, l->recurrent_kernel);
            /* split(z, 4) as its four (B, H) slices (not the forget gate's when c is
             * zero, see skipped) */
            sg_tensor *zs[4], *gate[4];
            if (ip) {
                for (int g = 0; g < 4; g++)
                    zs[g] = skipped(g, c) ? NULL : sg_slice(ctx, z, 1, g * H, H);
                gates_of(ctx, o, true, zs, c, gate);
            } else {
                /* ract(z) as one op over all four gates, the gates slices of it: an
                 * elementwise function commutes with slicing, and on small steps one
                 * contiguous op costs less than three on strided slices, though it also
                 * activates z_c, which only act() reads (bench/README.md has the
                 * measurement) */
                sg_tensor *a = sg_activate(ctx, z, o->recurrent_activation);
                for (int g = 0; g < 4; g++)
                    gate[g] = g == SG_GATE_C
                                  ? sg_activate(ctx, sg_slice(ctx, z, 1, g * H, H), o->activation)
                              : skipped(g, c) ? NULL
                                              : sg_slice(ctx, a, 1, g * H, H);
            }
            cell(ctx, o, ip, gate, &h, &c);
            if (hs)
                hs[t] = h;
        }
    } else {
        if (!h)
            h = sg_zeros(ctx, o->dtype, SG_SHAPE(B, H));
        for (int64_t t = 0; t < T; t++) {
            sg_tensor *v = sg_concat(ctx, 2, (sg_tensor *[]){h, sg_select(ctx, x, 1, t)}, 1);
            sg_tensor *zs[4], *gate[4];
            for (int g = 0; g < 4; g++) /* (B, H+I) @ (H+I, H) */
                zs[g] = skipped(g, c) ? NULL
                        : l->b[g]     ? sg_addmm(ctx, l->b[g], v, l->W[g])
                                      : sg_matmul(ctx, v, l->W[g]);
            gates_of(ctx, o, ip, zs, c, gate);
            cell(ctx, o, ip, gate, &h, &c);
            if (hs)
                hs[t] = h;
        }
    }
    sg_tensor *y = h && c && hs ? sg_stack(ctx, (int)T, hs, 1) : h;
    if (!h || !c || !y || (!had_err && sg_ctx_error(ctx)))
        return -1;
    out->h = h;
    out->c = c;
    out->y = y;
    return 0;
}
