/* lstm_run: run one LSTM layer over tensors from safetensors files, optionally with a
 * backward pass, and write the results as safetensors. A bridge for checking seqgrad
 * against other frameworks (Keras, PyTorch) from any language that can write the format.
 *
 *   lstm_run --weights W.safetensors --input IN.safetensors --output OUT.safetensors
 *            [--impl fused|gates] [--activation NAME] [--recurrent-activation NAME]
 *
 * W holds Keras-layout kernel (I, 4H), recurrent_kernel (H, 4H), optional bias (4H), or
 * PyTorch-layout weight_ih_l0 (4H, I), weight_hh_l0 (4H, H), optional bias_ih_l0 and
 * bias_hh_l0 (4H). IN holds x (B, T, I), optional h0 and c0 (B, H) and dy (B, T, H). The
 * dtype of x is the dtype of the computation (everything else is converted to it).
 * OUT gets y (B, T, H), h and c (B, H), and with dy the gradients of loss = sum(y * dy):
 * dx, dkernel, drecurrent_kernel, dbias (with a bias), dh0 / dc0 (when given), weight
 * gradients always in Keras layout.
 *
 * Exit status: 0 on success, 1 for missing/ill-shaped tensors, NaN or Inf in a weight or
 * an input, unreadable files or paths that are not regular files (message on stderr), 2 for
 * bad options (with the usage). */
#define BRIDGE_PROG "lstm_run"

static const char usage_text[] =
    "usage: lstm_run --weights W.safetensors --input IN.safetensors --output OUT.safetensors\n"
    "                [--impl fused|gates] [--activation NAME] [--recurrent-activation NAME]\n"
    "\n"
    "Runs one LSTM layer over x (all time steps returned) and writes y (B, T, H), h and c\n"
    "(B, H). With dy in IN it also writes the gradients of loss = sum(y * dy): dx,\n"
    "dkernel, drecurrent_kernel, dbias (with a bias), dh0 and dc0 (when given), in Keras\n"
    "layout.\n"
    "\n"
    "  W:    kernel (I, 4H), recurrent_kernel (H, 4H), optional bias (4H)        (Keras)\n"
    "        or weight_ih_l0 (4H, I), weight_hh_l0 (4H, H), optional bias_ih_l0,\n"
    "        bias_hh_l0 (4H)                                                     (PyTorch)\n"
    "  IN:   x (B, T, I); optional h0, c0 (B, H) and dy (B, T, H). The dtype of x (F32 or\n"
    "        F64) is the dtype of the computation; other tensors are converted to it.\n"
    "  --impl            fused (default) or gates\n"
    "  --activation      tanh (default), sigmoid, hard_sigmoid, relu, linear\n"
    "  --recurrent-activation   sigmoid (default), or any of the above\n"
    "\n"
    "Exit status: 0 success, 1 missing or bad data, 2 bad options.\n";

#include "bridge_common.h"

typedef struct {
    bridge_files f;
    sg_lstm_impl impl;
    sg_activation act, rec_act;
} options;

/* One of lstm_run's own options (--impl, --activation, --recurrent-activation): -1, or 2
 * after usage_error. */
static int lstm_option(int k, const char *val, void *data) {
    options *o = data;
    if (k == 0)
        return parse_impl(val, &o->impl);
    int act = sg_activation_from_name(val);
    if (act < 0)
        return usage_error("unknown activation '%s'", val);
    if (k == 1)
        o->act = (sg_activation)act;
    else
        o->rec_act = (sg_activation)act;
    return -1;
}

/* Parse argv; returns -1 to go on, or the exit status (0 for --help, 2 for an error). */
static int parse_args(int argc, char **argv, options *o) {
    *o = (options){.impl = SG_LSTM_FUSED, .act = SG_ACT_TANH, .rec_act = SG_ACT_SIGMOID};
    static const char *const names[] = {"--impl", "--activation", "--recurrent-activation"};
    int rc = parse_options(argc, argv, names, 3, &o->f, lstm_option, o);
    if (rc >= 0)
        return rc;
    return need_files(&o->f, true);
}

typedef struct {
    const char *name; /* a literal */
    sg_tensor *t;
} out_item;

int main(int argc, char **argv) {
    options o;
    int rc = parse_args(argc, argv, &o);
    if (rc >= 0)
        return rc;

    sg_ctx *ctx;
    sg_store *store; /* the layer's parameters */
    if (new_ctx_store(&ctx, &store))
        return 1;
    rc = 1;
    sg_st_file *W = NULL, *IN = NULL;
    sg_lstm *lstm = NULL;
    if (open_files(ctx, &o.f, &W, &IN))
        goto out;

    /* ---- the input: its x fixes B, T, I and the dtype ---- */
    static const char *const in_names[] = {"x", "h0", "c0", "dy", NULL};
    if (only_names(o.f.input, IN, in_names))
        goto out;
    const sg_tensor *x = get_x(o.f.input, IN);
    if (!x)
        goto out;
    const sg_dtype dt = x->dtype;
    const int64_t B = x->shape[0], T = x->shape[1], I = x->shape[2];

    /* ---- the weights, in either layout; H from the recurrent matrix ---- */
    static const char *const w_names[] = {
        "kernel",       "recurrent_kernel", "bias",       "weight_ih_l0",
        "weight_hh_l0", "bias_ih_l0",       "bias_hh_l0", NULL};
    if (only_names(o.f.weights, W, w_names))
        goto out;
    const bool keras =
        sg_st_has(W, "kernel") || sg_st_has(W, "recurrent_kernel") || sg_st_has(W, "bias");
    const bool torch = sg_st_has(W, "weight_ih_l0") || sg_st_has(W, "weight_hh_l0") ||
                       sg_st_has(W, "bias_ih_l0") || sg_st_has(W, "bias_hh_l0");
    if (keras && torch) {
        fail("%s: holds both Keras (kernel, ...) and PyTorch (weight_ih_l0, ...) names",
             o.f.weights);
        goto out;
    }
    const char *wi_name = torch ? "weight_ih_l0" : "kernel";
    const char *wh_name = torch ? "weight_hh_l0" : "recurrent_kernel";
    for (int k = 0; k < 2; k++)
        if (!sg_st_has(W, k ? wh_name : wi_name)) {
            fail("%s: missing tensor %s", o.f.weights, k ? wh_name : wi_name);
            goto out;
        }
    const sg_tensor *wi = sg_st_get(W, wi_name), *wh = sg_st_get(W, wh_name);
    /* recurrent_kernel is (H, 4H), weight_hh_l0 (4H, H) */
    const int64_t H = wh->ndim == 2 ? wh->shape[torch ? 1 : 0] : 0;
    if (wh->ndim != 2 || H < 1 || wh->shape[torch ? 0 : 1] != 4 * H) {
        char a[128];
        fail("%s: %s has shape %s, expected %s", o.f.weights, wh_name,
             sg_shape_str(wh->ndim, wh->shape, a, sizeof a), torch ? "(4H, H)" : "(H, 4H)");
        goto out;
    }
    if (want_shape(o.f.weights, wi_name, wi, 2,
                   torch ? (int64_t[]){4 * H, I} : (int64_t[]){I, 4 * H}))
        goto out;
    const sg_tensor *bias = NULL, *bias_ih = NULL, *bias_hh = NULL;
    const char *const bnames[3] = {"bias", "bias_ih_l0", "bias_hh_l0"};
    const sg_tensor **bslot[3] = {&bias, &bias_ih, &bias_hh};
    for (int k = 0; k < 3; k++)
        if (sg_st_has(W, bnames[k])) {
            *bslot[k] = sg_st_get(W, bnames[k]);
            if (want_shape(o.f.weights, bnames[k], *bslot[k], 1, (int64_t[]){4 * H}))
                goto out;
        }
    const bool use_bias = bias || bias_ih || bias_hh;

    /* ---- the rest of the input ---- */
    const int64_t bh[2] = {B, H}, bth[3] = {B, T, H};
    const sg_tensor *h0 = NULL, *c0 = NULL, *dy = NULL;
    const char *const inames[3] = {"h0", "c0", "dy"};
    const sg_tensor **islot[3] = {&h0, &c0, &dy};
    for (int k = 0; k < 3; k++)
        if (sg_st_has(IN, inames[k])) {
            *islot[k] = sg_st_get(IN, inames[k]);
            if (want_shape(o.f.input, inames[k], *islot[k], k == 2 ? 3 : 2, k == 2 ? bth : bh))
                goto out;
        }

    /* ---- values: finite everywhere (the weights first, then the input) ---- */
    const sg_tensor *const wt[5] = {wi, wh, bias, bias_ih, bias_hh}, *const it[4] = {x, h0, c0, dy};
    const char *const wtn[5] = {wi_name, wh_name, bnames[0], bnames[1], bnames[2]};
    const char *const itn[4] = {"x", "h0", "c0", "dy"};
    for (int k = 0; k < 5; k++)
        if (all_finite(o.f.weights, wtn[k], wt[k]))
            goto out;
    for (int k = 0; k < 4; k++)
        if (all_finite(o.f.input, itn[k], it[k]))
            goto out;

    /* ---- the layer ---- */
    sg_lstm_options lo = sg_lstm_defaults(I, H);
    lo.dtype = dt;
    lo.activation = o.act;
    lo.recurrent_activation = o.rec_act;
    lo.use_bias = use_bias;
    lo.return_sequences = true;
    lstm = sg_lstm_new(ctx, store, o.impl, &lo, "lstm", NULL);
    if (!lstm)
        goto report;
    int set = torch ? sg_lstm_set_torch(ctx, lstm, wi, wh, bias_ih, bias_hh)
                    : sg_lstm_set_keras(ctx, lstm, wi, wh, bias);
    if (set != 0)
        goto report;

    /* ---- forward, and backward with dy ---- */
    sg_tensor *xc = sg_cast(ctx, x, dt), *h0c = sg_cast(ctx, h0, dt), *c0c = sg_cast(ctx, c0, dt),
              *dyc = sg_cast(ctx, dy, dt);
    if (sg_ctx_error(ctx))
        goto report;
    if (dy) {
        sg_set_requires_grad(xc, true);
        if (h0c)
            sg_set_requires_grad(h0c, true);
        if (c0c)
            sg_set_requires_grad(c0c, true);
    }
    sg_lstm_output res;
    if (sg_lstm_forward(ctx, lstm, xc, h0c, c0c, &res) != 0)
        goto report;
    out_item items[12];
    int n = 0;
    items[n++] = (out_item){"y", res.y};
    items[n++] = (out_item){"h", res.h};
    items[n++] = (out_item){"c", res.c};
    if (dy) {
        sg_tensor *loss = sg_sum(ctx, sg_mul(ctx, res.y, dyc));
        if (sg_backward(ctx, loss, NULL) != 0)
            goto report;
        sg_tensor *dk = sg_zeros(ctx, dt, SG_SHAPE(I, 4 * H));
        sg_tensor *drk = sg_zeros(ctx, dt, SG_SHAPE(H, 4 * H));
        sg_tensor *db = use_bias ? sg_zeros(ctx, dt, SG_SHAPE(4 * H)) : NULL;
        if (!dk || !drk || (use_bias && !db) ||
            sg_lstm_get_keras(ctx, lstm, true, dk, drk, db) != 0)
            goto report;
        /* an input the output does not depend on has no gradient: zeros */
        sg_tensor *dx = xc->grad ? xc->grad : sg_zeros(ctx, dt, 3, x->shape);
        items[n++] = (out_item){"dx", dx};
        items[n++] = (out_item){"dkernel", dk};
        items[n++] = (out_item){"drecurrent_kernel", drk};
        if (db)
            items[n++] = (out_item){"dbias", db};
        if (h0c)
            items[n++] = (out_item){"dh0", h0c->grad ? h0c->grad : sg_zeros(ctx, dt, 2, bh)};
        if (c0c)
            items[n++] = (out_item){"dc0", c0c->grad ? c0c->grad : sg_zeros(ctx, dt, 2, bh)};
    }
    if (sg_ctx_error(ctx))
        goto report;

    /* ---- write ---- */
    sg_param_entry entries[12];
    for (int i = 0; i < n; i++) {
        snprintf(entries[i].name, sizeof entries[i].name, "%s", items[i].name);
        entries[i].tensor = items[i].t;
    }
    sg_param_list list = {.n = n, .cap = n, .items = entries};
    const char *meta[] = {"producer",
                          "seqgrad lstm_run",
                          "impl",
                          o.impl == SG_LSTM_GATES ? "gates" : "fused",
                          "weights_layout",
                          torch ? "pytorch" : "keras",
                          "activation",
                          sg_activation_name(o.act),
                          "recurrent_activation",
                          sg_activation_name(o.rec_act),
                          NULL};
    if (sg_safetensors_save(ctx, o.f.output, &list, meta) != 0)
        goto report;
    rc = 0;
    goto out;

report:
    report(ctx);
out:
    sg_lstm_free(lstm);
    sg_store_free(store);
    sg_st_free(IN);
    sg_st_free(W);
    sg_ctx_free(ctx);
    return rc;
}
