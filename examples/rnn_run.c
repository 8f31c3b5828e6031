/* rnn_run: run a whole PyTorch nn.LSTM, nn.GRU or nn.RNN (any number of layers, one or two
 * directions, with or without bias) from its state_dict over tensors from safetensors
 * files, optionally with a backward pass, and write the results as safetensors: the bridge
 * for checking seqgrad's recurrent family (sg_rnn) against PyTorch. lstm_run is the
 * one-layer LSTM bridge that also takes Keras' names.
 *
 *   rnn_run --cell lstm|gru|rnn_tanh|rnn_relu [--impl fused|gates]
 *           --weights W.safetensors --input IN.safetensors [--output OUT.safetensors]
 *           [--export-onnx MODEL.onnx]
 *
 * W holds the state_dict of a batch_first module under PyTorch's names weight_ih_l<k>
 * (G*H, I or D*H), weight_hh_l<k> (G*H, H), optional bias_ih_l<k>, bias_hh_l<k> (G*H), and
 * the same with the suffix _reverse for the reverse direction (G = 4 LSTM, 3 GRU, 1 RNN);
 * the number of layers, the directions and the bias are read from the names. IN holds x
 * (B, T, I), whose dtype (float32 or float64) is the computation's, and optional lengths
 * (B,) int64 (right-padded sequences, each in 1..T), h0 (L*D, B, H), c0 (LSTM), dy
 * (B, T, D*H), dh_n (L*D, B, H), dc_n (LSTM). OUT gets y (B, T, D*H) (zeros at padded
 * steps), h_n (L*D, B, H), c_n (LSTM), and when dy, dh_n or dc_n is given the gradients of
 * loss = sum(y * dy) + sum(h_n * dh_n) + sum(c_n * dc_n) (absent terms left out): dx, dh0 and
 * dc0 (when h0 / c0 are given) and grad.<name> for every tensor of W, in PyTorch's layout.
 *
 * --export-onnx writes the layers it loaded as an ONNX model (docs/onnx.md: ONNX's LSTM, GRU
 * or RNN operators, opset 14, the dtype of x), with the graph inputs x (B, T, I) and, when
 * IN has them, lengths (B,) int32 (ONNX's sequence_lens; IN's lengths may be int64), h0 and
 * c0 (L*D, B, H), and the outputs y (B, T, D*H), h_n (L*D, B, H) and, for an LSTM, c_n: the
 * same names and meanings as OUT's (B and T dynamic). It turns any PyTorch state_dict into
 * ONNX. --output may then be left out.
 *
 * Exit status: 0 on success, 1 for missing, unexpected or ill-shaped tensors (weights that
 * do not fit the cell, a missing layer, lengths outside 1..T), NaN or Inf in a weight or an
 * input, unreadable files or paths that are not regular files (message on stderr), 2 for
 * bad options (with the usage). */
#define BRIDGE_PROG "rnn_run"

static const char usage_text[] =
    "usage: rnn_run --cell lstm|gru|rnn_tanh|rnn_relu [--impl fused|gates]\n"
    "               --weights W.safetensors --input IN.safetensors [--output OUT.safetensors]\n"
    "               [--export-onnx MODEL.onnx]\n"
    "\n"
    "Runs a PyTorch nn.LSTM, nn.GRU or nn.RNN (batch_first, any num_layers, bidirectional\n"
    "or not, with or without bias) given by its state_dict, and writes y (B, T, D*H), h_n\n"
    "(L*D, B, H) and c_n (LSTM). With dy, dh_n or dc_n in IN it also writes the gradients of\n"
    "loss = sum(y * dy) + sum(h_n * dh_n) + sum(c_n * dc_n): dx, dh0 and dc0 (when given)\n"
    "and grad.<name> for every tensor of W.\n"
    "\n"
    "  W:    weight_ih_l<k>, weight_hh_l<k>, optional bias_ih_l<k>, bias_hh_l<k>, and the\n"
    "        same with _reverse (PyTorch's state_dict names and layout)\n"
    "  IN:   x (B, T, I); optional lengths (B,) int64 in 1..T, h0 (L*D, B, H), c0 (LSTM),\n"
    "        dy (B, T, D*H), dh_n (L*D, B, H), dc_n (LSTM). The dtype of x (F32 or F64) is\n"
    "        the dtype of the computation; other tensors are converted to it.\n"
    "  --cell            lstm, gru (PyTorch's form: reset after), rnn_tanh or rnn_relu\n"
    "  --impl            LSTM only: fused (default) or gates\n"
    "  --export-onnx     also write the layers as an ONNX model: inputs x, lengths (int32),\n"
    "                    h0, c0 as IN has them; outputs y, h_n, c_n (--output then optional)\n"
    "\n"
    "Exit status: 0 success, 1 missing or bad data, 2 bad options.\n";

#include "bridge_common.h"

/* A layer count beyond any real state_dict: names past it are refused, not allocated for. */
#define MAX_LAYERS 64

typedef struct {
    bridge_files f;
    const char *cell_name; /* as given to --cell */
    sg_cell_kind cell;
    sg_activation act; /* tanh, or relu for rnn_relu */
    sg_lstm_impl impl;
    const char *onnx; /* --export-onnx */
} options;

/* One of rnn_run's own options (--cell, --impl): -1, or 2 after usage_error. */
static int rnn_option(int k, const char *val, void *data) {
    options *o = data;
    static const struct {
        const char *name;
        sg_cell_kind cell;
        sg_activation act;
    } cells[] = {{"lstm", SG_CELL_LSTM, SG_ACT_TANH},
                 {"gru", SG_CELL_GRU, SG_ACT_TANH},
                 {"rnn_tanh", SG_CELL_RNN, SG_ACT_TANH},
                 {"rnn_relu", SG_CELL_RNN, SG_ACT_RELU}};
    if (k == 1)
        return parse_impl(val, &o->impl);
    if (k == 2) {
        if (!*val)
            return usage_error("%s", "--export-onnx needs a path");
        o->onnx = val;
        return -1;
    }
    for (int c = 0; c < 4; c++)
        if (!strcmp(val, cells[c].name)) {
            o->cell_name = cells[c].name;
            o->cell = cells[c].cell;
            o->act = cells[c].act;
            return -1;
        }
    return usage_error("--cell must be lstm, gru, rnn_tanh or rnn_relu, not '%s'", val);
}

/* Parse argv; returns -1 to go on, or the exit status (0 for --help, 2 for an error). */
static int parse_args(int argc, char **argv, options *o) {
    *o = (options){.impl = SG_LSTM_FUSED, .act = SG_ACT_TANH};
    static const char *const names[] = {"--cell", "--impl", "--export-onnx"};
    int rc = parse_options(argc, argv, names, 3, &o->f, rnn_option, o);
    if (rc >= 0)
        return rc;
    if (!o->cell_name)
        return usage_error("%s", "missing --cell");
    return need_files(&o->f, !o->onnx);
}

/* ---- the state_dict's names ---------------------------------------------------------- */

static const char *const kinds[4] = {"weight_ih", "weight_hh", "bias_ih", "bias_hh"};

/* Parse "<kind>_l<k>[_reverse]" (k without leading zeros, below MAX_LAYERS): true with
 * *kind (index into kinds), *layer, *dir. */
static bool parse_name(const char *n, int *kind, int *layer, int *dir) {
    for (int k = 0; k < 4; k++) {
        size_t len = strlen(kinds[k]);
        if (strncmp(n, kinds[k], len) || strncmp(n + len, "_l", 2))
            continue;
        const char *p = n + len + 2;
        if (*p < '0' || *p > '9' || (p[0] == '0' && p[1] >= '0' && p[1] <= '9'))
            return false;
        int l = 0;
        for (; *p >= '0' && *p <= '9' && l < MAX_LAYERS; p++)
            l = 10 * l + (*p - '0');
        if (l >= MAX_LAYERS || (*p && strcmp(p, "_reverse")))
            return false;
        *kind = k;
        *layer = l;
        *dir = *p != 0;
        return true;
    }
    return false;
}

static void tensor_name(char *buf, size_t n, int kind, int layer, int dir) {
    snprintf(buf, n, "%s_l%d%s", kinds[kind], layer, dir ? "_reverse" : "");
}

/* The gate blocks of each cell: G in (G*H, ...). */
static int gates_of(sg_cell_kind c) { return c == SG_CELL_LSTM ? 4 : c == SG_CELL_GRU ? 3 : 1; }

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
    sg_rnn *rnn = NULL;
    sg_param_list sd = {.ctx = ctx}, grads = {.ctx = ctx}, out = {.ctx = ctx};
    if (open_files(ctx, &o.f, &W, &IN))
        goto out;
    const bool lstm = o.cell == SG_CELL_LSTM;
    const int G = gates_of(o.cell);

    /* ---- the input: its x fixes B, T, I and the dtype ---- */
    for (int k = 0; k < 2 && !lstm; k++)
        if (sg_st_has(IN, k ? "dc_n" : "c0")) {
            fail("%s: %s is an LSTM's cell state, not for --cell %s", o.f.input, k ? "dc_n" : "c0",
                 o.cell_name);
            goto out;
        }
    static const char *const in_names[] = {"x", "lengths", "h0", "c0", "dy", "dh_n", "dc_n", NULL};
    if (only_names(o.f.input, IN, in_names))
        goto out;
    const sg_tensor *x = get_x(o.f.input, IN);
    if (!x)
        goto out;
    const sg_dtype dt = x->dtype;
    const int64_t B = x->shape[0], T = x->shape[1], I = x->shape[2];

    /* ---- the weights: layers, directions and bias from the names ---- */
    int L = 0, D = 1;
    bool bias = false;
    for (int i = 0; i < sg_st_count(W); i++) {
        const char *n = sg_st_name(W, i);
        int kind, layer, dir;
        if (!parse_name(n, &kind, &layer, &dir)) {
            fail("%s: unexpected tensor %s (expected PyTorch's weight_ih_l<k>, weight_hh_l<k>, "
                 "bias_ih_l<k>, bias_hh_l<k>[_reverse])",
                 o.f.weights, n);
            goto out;
        }
        if (!sg_dtype_is_float(sg_st_tensor(W, i)->dtype)) {
            fail("%s: %s has dtype %s, expected float32 or float64", o.f.weights, n,
                 sg_dtype_name(sg_st_tensor(W, i)->dtype));
            goto out;
        }
        L = layer + 1 > L ? layer + 1 : L;
        D = dir ? 2 : D;
        bias = bias || kind >= 2;
    }
    if (L == 0) {
        fail("%s: no weights (weight_ih_l0, weight_hh_l0, ...)", o.f.weights);
        goto out;
    }
    char name[64];
    for (int l = 0; l < L; l++)
        for (int d = 0; d < D; d++)
            for (int k = 0; k < (bias ? 4 : 2); k++) {
                tensor_name(name, sizeof name, k, l, d);
                if (!sg_st_has(W, name)) {
                    fail("%s: missing tensor %s (the names give %d layer%s, %s, %s bias)",
                         o.f.weights, name, L, L > 1 ? "s" : "",
                         D == 2 ? "bidirectional" : "one direction", bias ? "with" : "no");
                    goto out;
                }
            }
    /* H from weight_hh_l0 (G*H, H): a shape that fits another cell says so */
    const sg_tensor *whh = sg_st_get(W, "weight_hh_l0");
    const int64_t H = whh->ndim == 2 ? whh->shape[1] : 0;
    if (whh->ndim != 2 || H < 1 || whh->shape[0] != G * H) {
        char a[128], hint[64] = "";
        int64_t r = H >= 1 && whh->ndim == 2 && whh->shape[0] % H == 0 ? whh->shape[0] / H : 0;
        if (r == 4 || r == 3 || r == 1)
            snprintf(hint, sizeof hint, " (the shape of %s weights)",
                     r == 4   ? "lstm"
                     : r == 3 ? "gru"
                              : "rnn_tanh or rnn_relu");
        fail("%s: weight_hh_l0 has shape %s, expected (%dH, H) for --cell %s%s", o.f.weights,
             sg_shape_str(whh->ndim, whh->shape, a, sizeof a), G, o.cell_name, hint);
        goto out;
    }
    const sg_tensor *wih = sg_st_get(W, "weight_ih_l0");
    const int64_t I_w = wih->ndim == 2 ? wih->shape[1] : I;
    for (int l = 0; l < L; l++)
        for (int d = 0; d < D; d++)
            for (int k = 0; k < (bias ? 4 : 2); k++) {
                tensor_name(name, sizeof name, k, l, d);
                const int64_t in_l = l ? D * H : I_w;
                const int64_t shape[2] = {G * H, k == 0 ? in_l : H};
                if (want_shape(o.f.weights, name, sg_st_get(W, name), k < 2 ? 2 : 1, shape))
                    goto out;
            }
    if (I != I_w) {
        char a[128], b[128];
        fail("%s: x has shape %s, feature size %lld, but weight_ih_l0 %s takes %lld", o.f.input,
             sg_shape_str(x->ndim, x->shape, a, sizeof a), (long long)I,
             sg_shape_str(wih->ndim, wih->shape, b, sizeof b), (long long)I_w);
        goto out;
    }

    /* ---- the rest of the input ---- */
    sg_tensor *lengths = sg_st_has(IN, "lengths") ? sg_st_get(IN, "lengths") : NULL;
    if (lengths) {
        if (lengths->dtype != SG_I64 && lengths->dtype != SG_I32) {
            fail("%s: lengths has dtype %s, expected int64", o.f.input,
                 sg_dtype_name(lengths->dtype));
            goto out;
        }
        if (want_shape(o.f.input, "lengths", lengths, 1, (int64_t[]){B}))
            goto out;
        for (int64_t b = 0; b < B; b++) {
            int64_t v = sg_get_flat_i64(lengths, b);
            if (v < 1 || v > T) {
                fail("%s: lengths[%lld] = %lld outside 1..%lld (T)", o.f.input, (long long)b,
                     (long long)v, (long long)T);
                goto out;
            }
        }
    }
    const int64_t state[3] = {L * D, B, H}, ydims[3] = {B, T, D * H};
    const char *const inames[5] = {"h0", "c0", "dy", "dh_n", "dc_n"};
    const sg_tensor *in[5] = {NULL};
    for (int k = 0; k < 5; k++)
        if (sg_st_has(IN, inames[k])) {
            in[k] = sg_st_get(IN, inames[k]);
            if (!sg_dtype_is_float(in[k]->dtype)) {
                fail("%s: %s has dtype %s, expected float32 or float64", o.f.input, inames[k],
                     sg_dtype_name(in[k]->dtype));
                goto out;
            }
            if (want_shape(o.f.input, inames[k], in[k], 3, k == 2 ? ydims : state))
                goto out;
        }

    /* ---- values: finite everywhere (the weights first, then the input) ---- */
    for (int i = 0; i < sg_st_count(W); i++)
        if (all_finite(o.f.weights, sg_st_name(W, i), sg_st_tensor(W, i)))
            goto out;
    if (all_finite(o.f.input, "x", x))
        goto out;
    for (int k = 0; k < 5; k++)
        if (all_finite(o.f.input, inames[k], in[k]))
            goto out;

    /* ---- the layer, its weights from the state_dict ---- */
    sg_rnn_options ro = sg_rnn_defaults(o.cell, I, H);
    ro.impl = o.impl;
    ro.num_layers = L;
    ro.bidirectional = D == 2;
    ro.dtype = dt;
    ro.activation = o.act;
    ro.use_bias = bias;
    ro.reset_after = true; /* PyTorch's GRU */
    ro.return_sequences = true;
    rnn = sg_rnn_new(ctx, store, &ro, NULL, NULL);
    if (!rnn)
        goto report;
    for (int i = 0; i < sg_st_count(W); i++)
        if (sg_params_add(&sd, sg_st_name(W, i), sg_cast(ctx, sg_st_tensor(W, i), dt)) != 0)
            goto report;
    if (sg_rnn_set_torch(ctx, rnn, &sd) != 0)
        goto report;

    /* ---- forward, and backward with dy, dh_n or dc_n ---- */
    sg_tensor *xc = sg_cast(ctx, x, dt), *h0c = sg_cast(ctx, in[0], dt),
              *c0c = sg_cast(ctx, in[1], dt), *dyc = sg_cast(ctx, in[2], dt),
              *dhc = sg_cast(ctx, in[3], dt), *dcc = sg_cast(ctx, in[4], dt);
    if (sg_ctx_error(ctx))
        goto report;
    const bool backward = dyc || dhc || dcc;
    sg_tensor *leaves[3] = {xc, h0c, c0c};
    for (int k = 0; k < 3 && backward; k++)
        if (leaves[k])
            sg_set_requires_grad(leaves[k], true);
    sg_rnn_output res;
    if (sg_rnn_forward(ctx, rnn, xc, lengths, h0c, c0c, &res) != 0)
        goto report;
    sg_params_add(&out, "y", res.y);
    sg_params_add(&out, "h_n", res.h_n);
    if (lstm)
        sg_params_add(&out, "c_n", res.c_n);
    if (backward) {
        sg_tensor *loss = NULL;
        sg_tensor *const terms[3][2] = {{res.y, dyc}, {res.h_n, dhc}, {res.c_n, dcc}};
        for (int k = 0; k < 3; k++)
            if (terms[k][1]) {
                sg_tensor *s = sg_sum(ctx, sg_mul(ctx, terms[k][0], terms[k][1]));
                loss = loss ? sg_add(ctx, loss, s) : s;
            }
        if (sg_backward(ctx, loss, NULL) != 0)
            goto report;
        /* an input the loss does not depend on has no gradient: zeros */
        static const char *const gnames[3] = {"dx", "dh0", "dc0"};
        for (int k = 0; k < 3; k++)
            if (leaves[k])
                sg_params_add(&out, gnames[k],
                              leaves[k]->grad
                                  ? leaves[k]->grad
                                  : sg_zeros(ctx, dt, leaves[k]->ndim, leaves[k]->shape));
        if (sg_rnn_get_torch(ctx, rnn, true, &grads) != 0)
            goto report;
        for (int i = 0; i < grads.n; i++) {
            char gname[sizeof grads.items[i].name + 8];
            snprintf(gname, sizeof gname, "grad.%s", grads.items[i].name);
            sg_params_add(&out, gname, grads.items[i].tensor);
        }
    }
    if (sg_ctx_error(ctx))
        goto report;

    /* ---- write ---- */
    if (o.onnx) {
        const sg_onnx_model m = {.rnn = rnn,
                                 .lengths = lengths != NULL,
                                 .h0 = in[0] != NULL,
                                 .c0 = in[1] != NULL,
                                 .h_n = true,
                                 .c_n = lstm};
        if (sg_onnx_export(ctx, o.onnx, &m) != 0)
            goto report;
    }
    if (!o.f.output) {
        rc = 0;
        goto out;
    }
    char layers[24];
    snprintf(layers, sizeof layers, "%d", L);
    const char *meta[] = {"producer",
                          "seqgrad rnn_run",
                          "cell",
                          o.cell_name,
                          "impl",
                          o.impl == SG_LSTM_GATES ? "gates" : "fused",
                          "num_layers",
                          layers,
                          "bidirectional",
                          D == 2 ? "true" : "false",
                          "bias",
                          bias ? "true" : "false",
                          NULL};
    if (sg_safetensors_save(ctx, o.f.output, &out, meta) != 0)
        goto report;
    rc = 0;
    goto out;

report:
    report(ctx);
out:
    sg_params_clear(&out);
    sg_params_clear(&grads);
    sg_params_clear(&sd);
    sg_rnn_free(rnn);
    sg_store_free(store);
    sg_st_free(IN);
    sg_st_free(W);
    sg_ctx_free(ctx);
    return rc;
}
