/* The one-layer, one-direction LSTM (sg_lstm): options, creation and the forward, a thin
 * layer over the LSTM cells (layers/cell_lstm.c) and the recurrent driver (layers/rnn.c).
 * The equations are in docs/lstm.md. */
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
    sg_rnn_options ro;
    sg__cell c;
    sg__lstm_cell(l, &ro, &c);
    if (c.fns->create(ctx, store, &c, nm, rng)) {
        sg_lstm_free(l);
        sg_store_truncate(store, n0);
        return NULL;
    }
    l->kernel = c.kernel;
    l->recurrent_kernel = c.recurrent_kernel;
    l->bias = c.bias;
    memcpy(l->W, c.W, sizeof l->W);
    memcpy(l->b, c.b, sizeof l->b);
    return l;
}

void sg__lstm_cell(const sg_lstm *l, sg_rnn_options *ro, sg__cell *c) {
    const sg_lstm_options *o = &l->opt;
    *ro = sg_rnn_defaults(SG_CELL_LSTM, o->input_size, o->units);
    ro->impl = l->impl;
    ro->dtype = o->dtype;
    ro->activation = o->activation;
    ro->recurrent_activation = o->recurrent_activation;
    ro->use_bias = o->use_bias;
    ro->kernel_initializer = o->kernel_initializer;
    ro->recurrent_initializer = o->recurrent_initializer;
    ro->bias_initializer = o->bias_initializer;
    ro->unit_forget_bias = o->unit_forget_bias;
    ro->return_sequences = o->return_sequences;
    ro->in_place = o->in_place;
    *c = (sg__cell){
        .fns = l->impl == SG_LSTM_GATES ? &sg__lstm_gates_fns : &sg__lstm_fused_fns,
        .name = l->name,
        .opt = ro,
        .in = o->input_size,
        .units = o->units,
        .kernel = l->kernel,
        .recurrent_kernel = l->recurrent_kernel,
        .bias = l->bias,
    };
    memcpy(c->W, l->W, sizeof c->W);
    memcpy(c->b, l->b, sizeof c->b);
}

int sg_lstm_params(const sg_lstm *l, sg_param_list *list) {
    if (!l || !list)
        return -1;
    sg_rnn_options ro;
    sg__cell c;
    sg__lstm_cell(l, &ro, &c);
    return sg__cell_params(&c, list);
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
    int64_t I = o->input_size;
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

    sg_rnn_options ro;
    sg__cell cl;
    sg__lstm_cell(l, &ro, &cl);
    sg__seqs seqs = {.B = B, .T = T, .minlen = T};
    sg_tensor *state[2] = {h0, c0}, *ys = NULL;
    if (sg__rnn_direction(ctx, &cl, x, &seqs, false, NULL, state, o->return_sequences ? &ys : NULL))
        return -1;
    sg_tensor *h = state[0], *c = state[1];
    sg_tensor *y = o->return_sequences ? ys : h;
    if (!h || !c || !y || (!had_err && sg_ctx_error(ctx)))
        return -1;
    out->h = h;
    out->c = c;
    out->y = y;
    return 0;
}
