/* The recurrent driver (docs/rnn.md): the time loop over a cell (layers/cell_*.c), the
 * direction, per-sequence lengths, initial and final states, stacking, merging the two
 * directions, the dropout kinds and zoneout. Everything is autograd ops; the tape derives
 * the backward.
 *
 * Lengths (right-padded batches): a padded step leaves the state as it was
 * (state = where(valid_t, new, old), valid_t (B, 1)) and outputs zero (h * valid_t), so each
 * final state is the sequence's at its own last step. The reverse direction gathers each
 * sequence's valid prefix reversed (t -> len - 1 - t, padding left in place), runs forward
 * and gathers the outputs back with the same index (the permutation is its own inverse). */
#include <string.h>

#include "internal.h"

struct sg_rnn {
    sg_rnn_options opt;
    char name[SG_LAYER_NAME_MAX + 1];
    int L, D;
    sg__cell *cells;                 /* L * D, index 2 * l + d for two directions */
    char (*prefix)[SG_NAME_MAX + 1]; /* each cell's parameter prefix */
    sg_tensor *h0, *c0;              /* learned initial states (L*D, H), or NULL */
};

sg_rnn_options sg_rnn_defaults(sg_cell_kind cell, int64_t input_size, int64_t units) {
    return (sg_rnn_options){
        .cell = cell,
        .impl = SG_LSTM_FUSED,
        .input_size = input_size,
        .units = units,
        .num_layers = 1,
        .merge = SG_MERGE_CONCAT,
        .dtype = SG_F32,
        .activation = SG_ACT_TANH,
        .recurrent_activation = SG_ACT_SIGMOID,
        .use_bias = true,
        .reset_after = true,
        .kernel_initializer = sg_init_default(SG_INIT_GLOROT_UNIFORM),
        .recurrent_initializer = sg_init_default(SG_INIT_ORTHOGONAL),
        .bias_initializer = sg_init_default(SG_INIT_ZEROS),
        .unit_forget_bias = cell == SG_CELL_LSTM,
        .return_sequences = true,
        .initial_state = SG_STATE_ZEROS,
        .in_place = SG_IN_PLACE_AUTO,
    };
}

/* tanh and sigmoid need only their output in backward, so they may overwrite the
 * pre-activations; the others read them. */
bool sg__rnn_in_place(const sg_rnn_options *o, int64_t B) {
    bool a = o->activation == SG_ACT_TANH || o->activation == SG_ACT_SIGMOID;
    bool r = o->recurrent_activation == SG_ACT_TANH || o->recurrent_activation == SG_ACT_SIGMOID;
    if (!a || !r || o->in_place == SG_IN_PLACE_NEVER)
        return false;
    int64_t G = o->cell == SG_CELL_LSTM ? 4 : o->cell == SG_CELL_GRU ? 3 : 1;
    int64_t n; /* B * G*H; a product too large for int64 is certainly large enough */
    return o->in_place == SG_IN_PLACE_ALWAYS || __builtin_mul_overflow(B, G * o->units, &n) ||
           n >= SG_LSTM_IN_PLACE_MIN;
}

/* ---- one layer and direction ----------------------------------------------------------- */

int sg__rnn_direction(sg_ctx *ctx, const sg__cell *c, sg_tensor *x, const sg__seqs *s, bool reverse,
                      const sg__drops *d, sg_tensor **state, sg_tensor **y) {
    const sg_rnn_options *o = c->opt;
    int64_t B = s->B, T = s->T;
    sg__cell cc = *c; /* this run's copy, which carries the recurrent dropout mask */
    sg_rng *rng = d ? d->rng : NULL;
    /* masks are drawn only where they do something (sg_dropout_mask: training, grad mode) */
    bool drawn = d && sg_ctx_training(ctx) && sg_ctx_grad_enabled(ctx);
    if (drawn && d->input > 0) /* one mask per sequence over the features, the same each step */
        x = sg_mul(ctx, x, sg_dropout_mask(ctx, o->dtype, SG_SHAPE(B, 1, c->in), d->input, rng));
    if (drawn && d->recurrent > 0)
        cc.rec_mask = sg_dropout_mask(ctx, o->dtype, SG_SHAPE(B, c->units), d->recurrent, rng);
    if (reverse)
        x = sg_take_along_axis(ctx, x, 1, s->rev);
    /* In place: each step's pre-activations are computed into, and activated over, memory
     * nobody else reads (the tape's in-place checks guard that); time-major so that a step's
     * slice is one contiguous block. */
    bool ip = sg__rnn_in_place(o, B), tm = ip && !c->fns->x_direct;
    sg_tensor *xp = cc.xp = x ? c->fns->project(ctx, &cc, x, tm) : NULL;
    sg_tensor **hs = y ? sg_arena_alloc(ctx, (size_t)T * sizeof *hs) : NULL;
    if (!xp || (y && !hs))
        return -1;
    const int ns = c->fns->nstate;
    const double zo[2] = {d ? d->zoneout_h : 0, d ? d->zoneout_c : 0};
    /* each step's nodes are tagged with t (DOT clusters, sg_gradcheck_rnn's rows) */
    int64_t outer = sg_ctx_set_step(ctx, -1);
    const char *xname = c->fns->x_direct ? "x_t" : "x_t W + b";
    for (int64_t t = 0; t < T; t++) {
        sg_tensor *old[2] = {state[0], ns > 1 ? state[1] : NULL};
        sg_ctx_set_step(ctx, t);
        cc.t = t;
        if (c->fns->step(ctx, &cc, sg_label(ctx, sg_select(ctx, xp, tm ? 0 : 1, t), xname), state,
                         ip)) {
            sg_ctx_set_step(ctx, outer);
            return -1;
        }
        /* every sequence is valid at steps before minlen (>= 1), so old is not NULL where a
         * padded step keeps it */
        sg_tensor *v = t >= s->minlen ? sg_select(ctx, s->valid, 0, t) : NULL; /* (B, 1) */
        for (int k = 0; k < ns; k++) {
            if (zo[k] > 0)
                state[k] = sg_zoneout(
                    ctx, old[k] ? old[k] : sg_zeros(ctx, o->dtype, SG_SHAPE(B, c->units)), state[k],
                    zo[k], rng);
            if (v)
                state[k] = sg_where(ctx, v, state[k], old[k]);
        }
        if (hs)
            hs[t] = v ? sg_mul(ctx, state[0], v) : state[0];
    }
    sg_ctx_set_step(ctx, outer);
    if (y) {
        *y = sg_stack(ctx, (int)T, hs, 1);
        if (reverse)
            *y = sg_take_along_axis(ctx, *y, 1, s->rev);
        if (!*y)
            return -1;
    }
    return state[0] && (ns < 2 || state[1]) ? 0 : -1;
}

/* ---- creation ---------------------------------------------------------------------------- */

static const sg__cell_fns *cell_fns(const sg_rnn_options *o) {
    if (o->cell == SG_CELL_LSTM)
        return o->layer_norm              ? &sg__lstm_ln_fns
               : o->impl == SG_LSTM_GATES ? &sg__lstm_gates_fns
                                          : &sg__lstm_fused_fns;
    return o->cell == SG_CELL_GRU ? &sg__gru_fns : &sg__rnn_fns;
}

static bool valid_act(sg_activation a) { return a >= SG_ACT_TANH && a <= SG_ACT_LINEAR; }
static bool valid_p(double p, bool one) { return p >= 0 && (one ? p <= 1 : p < 1); }

/* The options' problem as a message into buf, or NULL when they are fine. */
static const char *bad_options(const sg_rnn_options *o, char *buf, size_t n) {
    if (o->cell < SG_CELL_LSTM || o->cell > SG_CELL_RNN)
        snprintf(buf, n, "unknown cell %d", (int)o->cell);
    else if (o->impl != SG_LSTM_FUSED && o->impl != SG_LSTM_GATES)
        snprintf(buf, n, "unknown implementation %d", (int)o->impl);
    else if (o->input_size <= 0 || o->units <= 0 || o->input_size > (1 << 30) ||
             o->units > (1 << 28))
        snprintf(buf, n, "input_size %lld and units %lld must be positive (at most 2^30, 2^28)",
                 (long long)o->input_size, (long long)o->units);
    else if (o->num_layers < 1 || o->num_layers > 99)
        snprintf(buf, n, "num_layers = %d outside 1..99", o->num_layers);
    else if (o->merge < SG_MERGE_CONCAT || o->merge > SG_MERGE_AVE)
        snprintf(buf, n, "unknown merge mode %d", (int)o->merge);
    else if (o->dtype != SG_F32 && o->dtype != SG_F64)
        snprintf(buf, n, "unknown dtype %d", (int)o->dtype);
    else if (!valid_act(o->activation) || !valid_act(o->recurrent_activation))
        snprintf(buf, n, "unknown activation");
    else if (!valid_p(o->dropout, false) || !valid_p(o->recurrent_dropout, false) ||
             !valid_p(o->layer_dropout, false))
        snprintf(buf, n, "dropout %g, recurrent_dropout %g, layer_dropout %g: each in [0, 1)",
                 o->dropout, o->recurrent_dropout, o->layer_dropout);
    else if (!valid_p(o->zoneout_h, true) || !valid_p(o->zoneout_c, true))
        snprintf(buf, n, "zoneout_h %g, zoneout_c %g: each in [0, 1]", o->zoneout_h, o->zoneout_c);
    else if (o->zoneout_c > 0 && o->cell != SG_CELL_LSTM)
        snprintf(buf, n, "zoneout_c needs an LSTM (the cell has no c)");
    else if (o->layer_norm && (o->cell != SG_CELL_LSTM || o->impl != SG_LSTM_FUSED))
        snprintf(buf, n, "layer_norm needs an LSTM in the fused (Keras) layout");
    else if (o->initial_state != SG_STATE_ZEROS && o->initial_state != SG_STATE_LEARNED)
        snprintf(buf, n, "unknown initial_state %d", (int)o->initial_state);
    else if (o->in_place < SG_IN_PLACE_AUTO || o->in_place > SG_IN_PLACE_NEVER)
        snprintf(buf, n, "unknown in_place mode %d", (int)o->in_place);
    else
        return NULL;
    return buf;
}

void sg_rnn_free(sg_rnn *r) {
    if (!r)
        return;
    sg_free(r->cells);
    sg_free(r->prefix);
    sg_free(r); /* the parameters are the store's */
}

const sg_rnn_options *sg_rnn_opts(const sg_rnn *r) { return r ? &r->opt : NULL; }

/* The size of layer l's output: D*H when concatenated, else H. */
static int64_t out_size(const sg_rnn *r) {
    return r->opt.merge == SG_MERGE_CONCAT ? r->D * r->opt.units : r->opt.units;
}

sg_rnn *sg_rnn_new(sg_ctx *ctx, sg_store *store, const sg_rnn_options *opt, const char *name,
                   sg_rng *rng) {
    if (!ctx)
        return NULL;
    if (!opt)
        return sg_error(ctx, "sg_rnn_new: options are NULL (start from sg_rnn_defaults)");
    char nm[SG_LAYER_NAME_MAX + 1], msg[160];
    const char *base = opt->cell == SG_CELL_GRU   ? "gru"
                       : opt->cell == SG_CELL_RNN ? "simple_rnn"
                                                  : "lstm";
    if (sg__layer_name(ctx, store, "sg_rnn_new", name, base, nm))
        return NULL;
    if (bad_options(opt, msg, sizeof msg))
        return sg_error(ctx, "sg_rnn_new (%s): %s", nm, msg);
    if (!rng)
        rng = sg_ctx_rng(ctx);
    int n0 = sg_store_size(store);
    sg_rnn *r = sg_calloc(1, sizeof *r);
    int L = opt->num_layers, D = opt->bidirectional ? 2 : 1;
    if (r) {
        r->cells = sg_calloc((size_t)(L * D), sizeof *r->cells);
        r->prefix = sg_calloc((size_t)(L * D), sizeof *r->prefix);
    }
    if (!r || !r->cells || !r->prefix) {
        sg_rnn_free(r);
        return sg_error(ctx, "sg_rnn_new (%s): out of memory", nm);
    }
    r->opt = *opt;
    r->L = L;
    r->D = D;
    snprintf(r->name, sizeof r->name, "%s", nm);
    int rc = 0;
    for (int k = 0; !rc && k < L * D; k++) {
        sg__cell *c = &r->cells[k];
        if (L * D == 1)
            snprintf(r->prefix[k], sizeof r->prefix[k], "%s", nm);
        else
            snprintf(r->prefix[k], sizeof r->prefix[k], "%s.l%d%s", nm, k / D,
                     k % D ? "_reverse" : "");
        *c = (sg__cell){.fns = cell_fns(opt),
                        .name = r->prefix[k],
                        .opt = &r->opt,
                        .in = k < D ? opt->input_size : out_size(r),
                        .units = opt->units};
        rc = c->fns->create(ctx, store, c, r->prefix[k], rng);
    }
    if (!rc && opt->initial_state == SG_STATE_LEARNED) {
        char pn[SG_NAME_MAX + 1];
        snprintf(pn, sizeof pn, "%s.h0", nm);
        r->h0 = sg_store_param(ctx, store, pn, opt->dtype, SG_SHAPE(L * D, opt->units));
        snprintf(pn, sizeof pn, "%s.c0", nm);
        if (opt->cell == SG_CELL_LSTM)
            r->c0 = sg_store_param(ctx, store, pn, opt->dtype, SG_SHAPE(L * D, opt->units));
        rc = !r->h0 || (opt->cell == SG_CELL_LSTM && !r->c0);
    }
    if (rc) {
        sg_rnn_free(r);
        sg_store_truncate(store, n0);
        return NULL;
    }
    return r;
}

const sg__cell *sg__rnn_cell(const sg_rnn *r, int l, int d) {
    return r && l >= 0 && l < r->L && d >= 0 && d < r->D ? &r->cells[l * r->D + d] : NULL;
}

/* A cell's parameters under "<prefix>.<field>", in the store's order. */
int sg__cell_params(const sg__cell *c, sg_param_list *list) {
    sg_tensor *const all[] = {c->kernel,     c->recurrent_kernel,
                              c->bias,       c->W[0],
                              c->b[0],       c->W[1],
                              c->b[1],       c->W[2],
                              c->b[2],       c->W[3],
                              c->b[3],       c->ln_gain[0],
                              c->ln_bias[0], c->ln_gain[1],
                              c->ln_bias[1], c->ln_gain[2],
                              c->ln_bias[2]};
    /* Names come from the prefix, not the tensors' (shorter) name fields. */
    static const char *const suffix[] = {"kernel",    "recurrent_kernel",
                                         "bias",      "W_i",
                                         "b_i",       "W_f",
                                         "b_f",       "W_c",
                                         "b_c",       "W_o",
                                         "b_o",       "ln_x.gain",
                                         "ln_x.bias", "ln_h.gain",
                                         "ln_h.bias", "ln_c.gain",
                                         "ln_c.bias"};
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++) {
        char n[sizeof list->items[0].name];
        snprintf(n, sizeof n, "%s.%s", c->name, suffix[i]);
        if (all[i] && sg_params_add(list, n, all[i]))
            return -1;
    }
    return 0;
}

int sg_rnn_params(const sg_rnn *r, sg_param_list *list) {
    if (!r || !list)
        return -1;
    for (int k = 0; k < r->L * r->D; k++)
        if (sg__cell_params(&r->cells[k], list))
            return -1;
    char n[sizeof list->items[0].name];
    snprintf(n, sizeof n, "%s.h0", r->name);
    if (r->h0 && sg_params_add(list, n, r->h0))
        return -1;
    snprintf(n, sizeof n, "%s.c0", r->name);
    return r->c0 && sg_params_add(list, n, r->c0) ? -1 : 0;
}

/* ---- forward ----------------------------------------------------------------------------- */

/* Check a given h0 / c0: (L*D, B, H) of the layer's dtype. */
static bool check_state(sg_ctx *ctx, const sg_rnn *r, const char *what, const sg_tensor *s,
                        int64_t B) {
    if (!sg_check(ctx, s, "sg_rnn_forward"))
        return false;
    int64_t want[3] = {r->L * r->D, B, r->opt.units};
    char a[96], b[96];
    if (s->ndim != 3 || memcmp(s->shape, want, sizeof want)) {
        sg_error(ctx, "sg_rnn_forward (%s): %s has shape %s, expected %s", r->name, what,
                 sg_shape_str(s->ndim, s->shape, a, sizeof a), sg_shape_str(3, want, b, sizeof b));
        return false;
    }
    if (s->dtype != r->opt.dtype) {
        sg_error(ctx, "sg_rnn_forward (%s): %s is %s, the layer is %s", r->name, what,
                 sg_dtype_name(s->dtype), sg_dtype_name(r->opt.dtype));
        return false;
    }
    return true;
}

/* The batch's sequences from lengths (NULL: all T): the minimum length, the validity mask
 * (only when some sequence is shorter than T) and, for a reverse direction, the reversal
 * index. 0, or -1 with an error naming the layer. */
static int make_seqs(sg_ctx *ctx, const sg_rnn *r, sg_tensor *lengths, int64_t B, int64_t T,
                     sg__seqs *s) {
    *s = (sg__seqs){.B = B, .T = T, .minlen = T};
    const char *nm = r->name;
    int64_t *len = sg_arena_alloc(ctx, (size_t)B * sizeof *len);
    if (!len)
        return -1;
    for (int64_t b = 0; b < B; b++)
        len[b] = T;
    if (lengths) {
        char a[96];
        if (!sg_check(ctx, lengths, "sg_rnn_forward"))
            return -1;
        if (lengths->dtype != SG_I64 && lengths->dtype != SG_I32) {
            sg_error(ctx, "sg_rnn_forward (%s): lengths is %s, expected int64 or int32", nm,
                     sg_dtype_name(lengths->dtype));
            return -1;
        }
        if (lengths->ndim != 1 || lengths->shape[0] != B) {
            sg_error(ctx, "sg_rnn_forward (%s): lengths has shape %s, expected (%lld,)", nm,
                     sg_shape_str(lengths->ndim, lengths->shape, a, sizeof a), (long long)B);
            return -1;
        }
        for (int64_t b = 0; b < B; b++) {
            len[b] = sg_get_flat_i64(lengths, b);
            if (len[b] < 1 || len[b] > T) {
                sg_error(ctx, "sg_rnn_forward (%s): lengths[%lld] = %lld outside 1..%lld", nm,
                         (long long)b, (long long)len[b], (long long)T);
                return -1;
            }
            s->minlen = len[b] < s->minlen ? len[b] : s->minlen;
        }
    }
    if (s->minlen < T) {
        s->valid = sg_zeros(ctx, r->opt.dtype, SG_SHAPE(T, B, 1));
        for (int64_t t = 0; s->valid && t < T; t++)
            for (int64_t b = 0; b < B; b++)
                sg_set_flat(s->valid, t * B + b, t < len[b] ? 1.0 : 0.0);
        if (!s->valid)
            return -1;
    }
    if (r->D == 2) {
        s->rev = sg_zeros(ctx, SG_I64, SG_SHAPE(B, T, 1));
        for (int64_t b = 0; s->rev && b < B; b++)
            for (int64_t t = 0; t < T; t++)
                sg_set_flat(s->rev, b * T + t, (double)(t < len[b] ? len[b] - 1 - t : t));
        if (!s->rev)
            return -1;
    }
    return 0;
}

/* The two directions' tensors joined by the merge mode (concat along the last axis). */
static sg_tensor *merge(sg_ctx *ctx, sg_merge_mode m, sg_tensor *a, sg_tensor *b) {
    if (!b)
        return a;
    switch (m) {
    case SG_MERGE_SUM: return sg_add(ctx, a, b);
    case SG_MERGE_MUL: return sg_mul(ctx, a, b);
    case SG_MERGE_AVE: return sg_scale(ctx, sg_add(ctx, a, b), 0.5);
    default: return sg_concat(ctx, 2, (sg_tensor *[]){a, b}, a ? a->ndim - 1 : 0);
    }
}

/* Initial state k (layer and direction) from a given (L*D, B, H), the learned (L*D, H)
 * broadcast over the batch, or NULL (zeros). */
static sg_tensor *initial(sg_ctx *ctx, sg_tensor *given, sg_tensor *learned, int k, int64_t B) {
    if (given)
        return sg_select(ctx, given, 0, k);
    if (!learned)
        return NULL;
    int64_t H = learned->shape[1];
    return sg_expand(ctx, sg_reshape(ctx, sg_select(ctx, learned, 0, k), SG_SHAPE(1, H)),
                     SG_SHAPE(B, H));
}

int sg_rnn_forward(sg_ctx *ctx, sg_rnn *r, sg_tensor *x, sg_tensor *lengths, sg_tensor *h0,
                   sg_tensor *c0, sg_rnn_output *out) {
    if (out)
        memset(out, 0, sizeof *out);
    if (!ctx)
        return -1;
    if (!r || !out) {
        sg_error(ctx, "sg_rnn_forward: layer or output is NULL");
        return -1;
    }
    if (!x || !sg_check(ctx, x, "sg_rnn_forward"))
        return -1;
    const sg_rnn_options *o = &r->opt;
    char a[96];
    if (x->ndim != 3 || x->shape[2] != o->input_size || x->shape[0] == 0 || x->shape[1] == 0) {
        sg_error(ctx, "sg_rnn_forward (%s): x has shape %s, expected (B, T, %lld), B, T > 0",
                 r->name, sg_shape_str(x->ndim, x->shape, a, sizeof a), (long long)o->input_size);
        return -1;
    }
    if (x->dtype != o->dtype) {
        sg_error(ctx, "sg_rnn_forward (%s): x is %s, the layer is %s", r->name,
                 sg_dtype_name(x->dtype), sg_dtype_name(o->dtype));
        return -1;
    }
    int64_t B = x->shape[0], T = x->shape[1];
    bool lstm = o->cell == SG_CELL_LSTM;
    if (c0 && !lstm) {
        sg_error(ctx, "sg_rnn_forward (%s): c0 given, but a %s has no cell state", r->name,
                 r->cells[0].fns->name);
        return -1;
    }
    if ((h0 && !check_state(ctx, r, "h0", h0, B)) || (c0 && !check_state(ctx, r, "c0", c0, B)))
        return -1;
    const bool had_err = sg_ctx_error(ctx) != NULL;
    sg__seqs s;
    if (make_seqs(ctx, r, lengths, B, T, &s))
        return -1;
    const int L = r->L, D = r->D;
    sg_tensor **hn = sg_arena_alloc(ctx, (size_t)(2 * L * D) * sizeof *hn), **cn = hn + L * D;
    if (!hn)
        return -1;
    const sg__drops drops = {o->dropout, o->recurrent_dropout, o->zoneout_h, o->zoneout_c, NULL};
    sg_tensor *in = x, *y = NULL;
    for (int l = 0; l < L; l++) {
        bool seq = l < L - 1 || o->return_sequences;
        sg_tensor *yd[2] = {NULL, NULL};
        for (int d = 0; d < D; d++) {
            int k = l * D + d;
            sg_tensor *st[2] = {initial(ctx, h0, r->h0, k, B), initial(ctx, c0, r->c0, k, B)};
            if (sg__rnn_direction(ctx, &r->cells[k], in, &s, d == 1, &drops, st,
                                  seq ? &yd[d] : NULL))
                return -1;
            hn[k] = st[0];
            cn[k] = st[1];
            if (!seq) /* the last valid step's output: the direction's final h */
                yd[d] = st[0];
        }
        y = merge(ctx, o->merge, yd[0], yd[1]);
        if (l < L - 1 && o->layer_dropout > 0)
            y = sg_dropout(ctx, y, o->layer_dropout, NULL);
        in = y;
    }
    out->y = y;
    out->h_n = sg_stack(ctx, L * D, hn, 0);
    out->c_n = lstm ? sg_stack(ctx, L * D, cn, 0) : NULL;
    if (!out->y || !out->h_n || (lstm && !out->c_n) || (!had_err && sg_ctx_error(ctx))) {
        memset(out, 0, sizeof *out);
        return -1;
    }
    return 0;
}

/* ---- PyTorch's state_dict ---------------------------------------------------------------- */

/* Move every layer and direction between the layer and a state_dict-like list (get: the
 * tensors are made here and appended). */
static int torch_all(sg_ctx *ctx, const char *fn, const sg_rnn *r, bool to_cell, bool grads,
                     const sg_param_list *in, sg_param_list *out) {
    if (!ctx)
        return -1;
    if (!r || (!in && !out)) {
        sg_error(ctx, "%s: layer or state_dict is NULL", fn);
        return -1;
    }
    const sg_rnn_options *o = &r->opt;
    static const char *const what[4] = {"weight_ih", "weight_hh", "bias_ih", "bias_hh"};
    for (int k = 0; k < r->L * r->D; k++) {
        const sg__cell *c = &r->cells[k];
        int64_t GH = c->fns->gates * o->units;
        int64_t shape[4][2] = {{GH, c->in}, {GH, o->units}, {GH, 0}, {GH, 0}};
        sg_tensor *t[4] = {NULL, NULL, NULL, NULL};
        for (int i = 0; i < (o->use_bias ? 4 : 2); i++) {
            char n[SG_NAME_MAX + 1];
            snprintf(n, sizeof n, "%s_l%d%s", what[i], k / r->D, k % r->D ? "_reverse" : "");
            int nd = i < 2 ? 2 : 1;
            if (!to_cell) {
                t[i] = sg_zeros(ctx, o->dtype, nd, shape[i]);
                if (!t[i] || sg_params_add(out, n, t[i])) {
                    if (t[i])
                        sg_error(ctx, "%s (%s): cannot add %s to the list", fn, r->name, n);
                    return -1;
                }
                continue;
            }
            t[i] = sg_params_find(in, n);
            char a[96], b[96];
            if (!t[i]) {
                sg_error(ctx, "%s (%s): the state_dict has no %s", fn, r->name, n);
                return -1;
            }
            if (!sg_check(ctx, t[i], fn))
                return -1;
            if (t[i]->ndim != nd || memcmp(t[i]->shape, shape[i], (size_t)nd * sizeof(int64_t))) {
                sg_error(ctx, "%s (%s): %s has shape %s, expected %s", fn, r->name, n,
                         sg_shape_str(t[i]->ndim, t[i]->shape, a, sizeof a),
                         sg_shape_str(nd, shape[i], b, sizeof b));
                return -1;
            }
        }
        if (c->fns->torch(ctx, c, to_cell, grads, t[0], t[1], t[2], t[3]))
            return -1;
    }
    return 0;
}

int sg_rnn_set_torch(sg_ctx *ctx, sg_rnn *r, const sg_param_list *state_dict) {
    return torch_all(ctx, "sg_rnn_set_torch", r, true, false, state_dict, NULL);
}

int sg_rnn_get_torch(sg_ctx *ctx, const sg_rnn *r, bool grads, sg_param_list *state_dict) {
    return torch_all(ctx, "sg_rnn_get_torch", r, false, grads, NULL, state_dict);
}
