/* ONNX export and import without a runtime (test_onnx_ort.c runs the files in onnxruntime):
 * every configuration of onnxtest.h exported, loaded and imported into fresh layers gives
 * bit-identical parameters (float32 and float64); the layout converters' round trips
 * Keras -> ONNX -> PyTorch -> Keras are exact and agree with sg_rnn_set_torch; import and
 * export errors each give a message naming the problem; a failed import changes nothing. */
#define _GNU_SOURCE /* mkdtemp */
#include <check.h>
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cksuite.h"
#include "errtest.h"
#include "io.h"
#include "onnxtest.h"
#include "tmptest.h"

static sg_ctx *ctx;

static void setup(void) {
    ctx = sg_ctx_new(0);
    make_tmpdir("sg_onnx");
}

static void teardown(void) {
    remove_tmpdir();
    sg_ctx_free(ctx);
    ctx = NULL;
}

/* Every parameter of a and b (stores built alike) equal bitwise. */
static void expect_same_params(sg_store *a, sg_store *b, const char *cfg) {
    sg_param_list pa = {.ctx = ctx}, pb = {.ctx = ctx};
    ck_assert_int_eq(sg_params_from_store(&pa, a), 0);
    ck_assert_int_eq(sg_params_from_store(&pb, b), 0);
    ck_assert_int_eq(pa.n, pb.n);
    for (int i = 0; i < pa.n; i++) {
        const sg_tensor *x = pa.items[i].tensor, *y = pb.items[i].tensor;
        ck_assert_str_eq(pa.items[i].name, pb.items[i].name);
        ck_assert_int_eq(sg_numel(x), sg_numel(y));
        ck_assert_int_eq(x->dtype, y->dtype);
        size_t n = (size_t)sg_numel(x) * sg_dtype_size(x->dtype);
        ck_assert_msg(!memcmp(sg_data(x), sg_data(y), n), "%s: %s differs", cfg, pa.items[i].name);
    }
    sg_params_clear(&pa);
    sg_params_clear(&pb);
}

/* The whole file into memory. */
static unsigned char *slurp_file(const char *path, size_t *n) {
    FILE *f = fopen(path, "rb");
    ck_assert_ptr_nonnull(f);
    fseek(f, 0, SEEK_END);
    *n = (size_t)ftell(f);
    fseek(f, 0, SEEK_SET);
    unsigned char *b = malloc(*n + 1);
    ck_assert_int_eq(fread(b, 1, *n, f), *n);
    fclose(f);
    return b;
}

/* ---- export, then import into fresh layers ------------------------------------------- */

START_TEST(test_roundtrip) {
    const mcfg *c = &mcfgs[_i];
    tmodel a, b;
    tmodel_make(ctx, &a, c, 10 + (uint64_t)_i);
    tmodel_make(ctx, &b, c, 20 + (uint64_t)_i); /* other values */
    const char *path = tmp_path("m.onnx");
    ck_assert_msg(sg_onnx_export(ctx, path, &a.m) == 0, "%s", sg_ctx_error(ctx));
    sg_onnx_file *f = sg_onnx_load(ctx, path);
    ck_assert_msg(f != NULL, "%s", sg_ctx_error(ctx));
    ck_assert_msg(sg_onnx_import(ctx, f, &b.m) == 0, "%s", sg_ctx_error(ctx));
    expect_same_params(a.store, b.store, c->name);
    /* and so the same function: the float64 files, which onnxruntime cannot run, included */
    tinputs in = tinputs_make(ctx, &a, 5);
    toutputs ya = tmodel_forward(ctx, &a, &in), yb = tmodel_forward(ctx, &b, &in);
    ck_assert_int_eq(sg_numel(ya.y), sg_numel(yb.y));
    for (int64_t k = 0; k < sg_numel(ya.y); k++)
        ck_assert(sg_get_flat(ya.y, k) == sg_get_flat(yb.y, k));
    sg_onnx_free(f);
    ck_assert_ptr_null(sg_ctx_error(ctx));
    tmodel_free(&a);
    tmodel_free(&b);
}
END_TEST

/* ---- files from PyTorch's exporter ------------------------------------------------------
 * tests/fixtures/onnx (gen_onnx.py: torch.onnx.export, opset 14): the importer reads the
 * LSTM / GRU / RNN nodes of PyTorch's files into layers equal, bit for bit, to those
 * sg_rnn_set_torch makes from the state_dict they came from. */

static const struct {
    const char *name;
    sg_cell_kind cell;
    sg_activation act;
    int L;
    bool bidir;
} torch_files[] = {{"lstm_l2_bi", SG_CELL_LSTM, SG_ACT_TANH, 2, true},
                   {"gru_l1_bi", SG_CELL_GRU, SG_ACT_TANH, 1, true},
                   {"rnn_relu_l2", SG_CELL_RNN, SG_ACT_RELU, 2, false}};

#ifndef SG_SOURCE_DIR
#define SG_SOURCE_DIR "."
#endif

START_TEST(test_torch_files) {
    const char *src = getenv("SG_SOURCE_DIR");
    char onnx[1024], w[1024];
    snprintf(onnx, sizeof onnx, "%s/tests/fixtures/onnx/torch_%s.onnx",
             src && *src ? src : SG_SOURCE_DIR, torch_files[_i].name);
    snprintf(w, sizeof w, "%s/tests/fixtures/onnx/torch_%s.W.safetensors",
             src && *src ? src : SG_SOURCE_DIR, torch_files[_i].name);
    sg_rnn_options o = sg_rnn_defaults(torch_files[_i].cell, 4, 3);
    o.activation = torch_files[_i].act;
    o.num_layers = torch_files[_i].L;
    o.bidirectional = torch_files[_i].bidir;
    sg_store *sa = sg_store_new(), *sb = sg_store_new();
    sg_rnn *a = sg_rnn_new(ctx, sa, &o, "m", NULL), *b = sg_rnn_new(ctx, sb, &o, "m", NULL);
    sg_onnx_file *f = sg_onnx_load(ctx, onnx);
    ck_assert_msg(f != NULL, "%s", sg_ctx_error(ctx));
    ck_assert_msg(sg_onnx_import(ctx, f, &(sg_onnx_model){.rnn = a}) == 0, "%s", sg_ctx_error(ctx));
    sg_st_file *W = sg_safetensors_load(ctx, w);
    ck_assert_ptr_nonnull(W);
    sg_param_list sd = {.ctx = ctx};
    for (int i = 0; i < sg_st_count(W); i++)
        sg_params_add(&sd, sg_st_name(W, i), sg_st_tensor(W, i));
    ck_assert_msg(sg_rnn_set_torch(ctx, b, &sd) == 0, "%s", sg_ctx_error(ctx));
    expect_same_params(sa, sb, torch_files[_i].name);
    sg_params_clear(&sd);
    sg_st_free(W);
    sg_onnx_free(f);
    sg_rnn_free(a);
    sg_rnn_free(b);
    sg_store_free(sa);
    sg_store_free(sb);
}
END_TEST

/* ---- the layout converters ---------------------------------------------------------- */

static sg_tensor *rand_t(sg_dtype dt, int nd, const int64_t *shape, sg_rng *r) {
    sg_tensor *t = sg_zeros(ctx, dt, nd, shape);
    for (int64_t k = 0; k < sg_numel(t); k++)
        sg_set_flat(t, k, sg_rng_uniform(r) - 0.5);
    return t;
}

static void expect_bits(const sg_tensor *a, const sg_tensor *b, const char *what) {
    ck_assert_msg(a && b, "%s missing", what);
    ck_assert_int_eq(a->ndim, b->ndim);
    for (int i = 0; i < a->ndim; i++)
        ck_assert_int_eq(a->shape[i], b->shape[i]);
    ck_assert_int_eq(a->dtype, b->dtype);
    for (int64_t k = 0; k < sg_numel(a); k++) {
        double x = sg_get_flat(a, k), y = sg_get_flat(b, k);
        ck_assert_msg(!memcmp(&x, &y, sizeof x), "%s[%lld]: %.17g != %.17g", what, (long long)k, x,
                      y);
    }
}

/* Keras -> ONNX -> PyTorch -> Keras: exact; and PyTorch's tensors loaded into a layer by
 * sg_rnn_set_torch give that layer exactly the Keras tensors (an independent converter). */
START_TEST(test_converters) {
    static const sg_cell_kind cells[3] = {SG_CELL_LSTM, SG_CELL_GRU, SG_CELL_RNN};
    const sg_cell_kind cell = cells[_i % 3];
    const sg_dtype dt = _i < 3 ? SG_F32 : SG_F64;
    const int G = cell == SG_CELL_LSTM ? 4 : cell == SG_CELL_GRU ? 3 : 1;
    const int64_t I = 5, H = 3;
    sg_rng r;
    sg_rng_seed(&r, 40 + (uint64_t)_i);
    sg_tensor *k = rand_t(dt, 2, (int64_t[]){I, G * H}, &r);
    sg_tensor *rk = rand_t(dt, 2, (int64_t[]){H, G * H}, &r);
    sg_tensor *b = cell == SG_CELL_GRU ? rand_t(dt, 2, (int64_t[]){2, G * H}, &r)
                                       : rand_t(dt, 1, (int64_t[]){G * H}, &r);
    sg_tensor *W, *R, *B, *wih, *whh, *bih, *bhh, *W2, *R2, *B2, *k2, *rk2, *b2;
    ck_assert_int_eq(sg_onnx_from_keras(ctx, cell, k, rk, b, &W, &R, &B), 0);
    ck_assert_int_eq(W->shape[0], G * H);
    ck_assert_int_eq(W->shape[1], I);
    ck_assert_int_eq(B->shape[0], 2 * G * H);
    ck_assert_int_eq(sg_onnx_to_torch(ctx, cell, W, R, B, &wih, &whh, &bih, &bhh), 0);
    ck_assert_int_eq(sg_onnx_from_torch(ctx, cell, wih, whh, bih, bhh, &W2, &R2, &B2), 0);
    expect_bits(W2, W, "W");
    expect_bits(R2, R, "R");
    expect_bits(B2, B, "B");
    ck_assert_int_eq(sg_onnx_to_keras(ctx, cell, true, W2, R2, B2, &k2, &rk2, &b2), 0);
    expect_bits(k2, k, "kernel");
    expect_bits(rk2, rk, "recurrent_kernel");
    expect_bits(b2, b, "bias");
    /* spot checks of the block orders: ONNX's LSTM block 1 is o (Keras block 3), GRU's
     * PyTorch block 0 is r (ONNX block 1); W is kernel transposed */
    if (cell == SG_CELL_LSTM)
        ck_assert(sg_get(W, (int64_t[]){1 * H + 2, 4}) == sg_get(k, (int64_t[]){4, 3 * H + 2}));
    if (cell == SG_CELL_GRU)
        ck_assert(sg_get(wih, (int64_t[]){0 * H + 1, 3}) == sg_get(W, (int64_t[]){1 * H + 1, 3}));
    /* sg_rnn_set_torch reads the same PyTorch tensors into the Keras layout */
    sg_store *store = sg_store_new();
    sg_rnn_options o = sg_rnn_defaults(cell, I, H);
    o.dtype = dt;
    sg_rnn *rnn = sg_rnn_new(ctx, store, &o, "m", NULL);
    ck_assert_ptr_nonnull(rnn);
    sg_param_list sd = {.ctx = ctx}, ps = {.ctx = ctx};
    sg_params_add(&sd, "weight_ih_l0", wih);
    sg_params_add(&sd, "weight_hh_l0", whh);
    sg_params_add(&sd, "bias_ih_l0", bih);
    sg_params_add(&sd, "bias_hh_l0", bhh);
    ck_assert_msg(sg_rnn_set_torch(ctx, rnn, &sd) == 0, "%s", sg_ctx_error(ctx));
    ck_assert_int_eq(sg_rnn_params(rnn, &ps), 0);
    expect_bits(sg_params_find(&ps, "m.kernel"), k, "layer kernel");
    expect_bits(sg_params_find(&ps, "m.recurrent_kernel"), rk, "layer recurrent_kernel");
    expect_bits(sg_params_find(&ps, "m.bias"), b, "layer bias");
    sg_params_clear(&sd);
    sg_params_clear(&ps);
    sg_rnn_free(rnn);
    sg_store_free(store);
    ck_assert_ptr_null(sg_ctx_error(ctx));
}
END_TEST

/* A GRU without reset_after (no PyTorch form): Keras -> ONNX -> Keras is exact, Rb is zero;
 * an ONNX Rb folds into the one Keras bias; no bias gives no bias. */
START_TEST(test_converters_gru_reset_before) {
    sg_rng r;
    sg_rng_seed(&r, 3);
    sg_tensor *k = rand_t(SG_F32, 2, (int64_t[]){2, 6}, &r);
    sg_tensor *rk = rand_t(SG_F32, 2, (int64_t[]){2, 6}, &r);
    sg_tensor *b = rand_t(SG_F32, 1, (int64_t[]){6}, &r);
    sg_tensor *W, *R, *B, *k2, *rk2, *b2;
    ck_assert_int_eq(sg_onnx_from_keras(ctx, SG_CELL_GRU, k, rk, b, &W, &R, &B), 0);
    for (int j = 6; j < 12; j++)
        ck_assert(sg_get_flat(B, j) == 0);
    ck_assert_int_eq(sg_onnx_to_keras(ctx, SG_CELL_GRU, false, W, R, B, &k2, &rk2, &b2), 0);
    expect_bits(k2, k, "kernel");
    expect_bits(rk2, rk, "recurrent_kernel");
    expect_bits(b2, b, "bias");
    sg_set_flat(B, 6 + 1, 0.25); /* Rb's z block, unit 1 */
    ck_assert_int_eq(sg_onnx_to_keras(ctx, SG_CELL_GRU, false, W, R, B, &k2, &rk2, &b2), 0);
    ck_assert(sg_get_flat(b2, 1) == (float)(sg_get_flat(b, 1) + 0.25));
    ck_assert_int_eq(sg_onnx_from_keras(ctx, SG_CELL_GRU, k, rk, NULL, &W, &R, &B), 0);
    ck_assert_ptr_null(B);
    ck_assert_int_eq(sg_onnx_to_keras(ctx, SG_CELL_GRU, false, W, R, NULL, &k2, &rk2, &b2), 0);
    ck_assert_ptr_null(b2);
}
END_TEST

START_TEST(test_converter_errors) {
    sg_tensor *W, *R, *B;
    sg_tensor *k = sg_zeros(ctx, SG_F32, SG_SHAPE(2, 12)),
              *rk = sg_zeros(ctx, SG_F32, SG_SHAPE(3, 12));
    ck_assert_int_eq(sg_onnx_from_keras(ctx, SG_CELL_GRU, k, rk, NULL, &W, &R, &B), -1);
    EXPECT_ERR(ctx, "sg_onnx_from_keras: recurrent_kernel has shape (3, 12), expected (H, G*H) for "
                    "a GRU (G = 3)");
    ck_assert_int_eq(sg_onnx_from_keras(ctx, SG_CELL_LSTM, sg_zeros(ctx, SG_F32, SG_SHAPE(2, 8)),
                                        rk, NULL, &W, &R, &B),
                     -1);
    EXPECT_ERR(ctx, "sg_onnx_from_keras: kernel has shape (2, 8), expected (2, 12)");
    ck_assert_int_eq(sg_onnx_from_keras(ctx, SG_CELL_LSTM, k, rk,
                                        sg_zeros(ctx, SG_F32, SG_SHAPE(4)), &W, &R, &B),
                     -1);
    EXPECT_ERR(ctx, "sg_onnx_from_keras: bias has shape (4,), expected (12,)");
    sg_tensor *a, *b2, *c, *d;
    ck_assert_int_eq(sg_onnx_to_torch(ctx, SG_CELL_RNN, sg_zeros(ctx, SG_F32, SG_SHAPE(3, 2)),
                                      sg_zeros(ctx, SG_F32, SG_SHAPE(3, 3)),
                                      sg_zeros(ctx, SG_F32, SG_SHAPE(5)), &a, &b2, &c, &d),
                     -1);
    EXPECT_ERR(ctx, "sg_onnx_to_torch: B has shape (5,), expected (6,)");
    ck_assert_int_eq(sg_onnx_to_keras(ctx, SG_CELL_RNN, false,
                                      sg_zeros(ctx, SG_I64, SG_SHAPE(3, 2)),
                                      sg_zeros(ctx, SG_F32, SG_SHAPE(3, 3)), NULL, &a, &b2, &c),
                     -1);
    EXPECT_ERR(ctx, "sg_onnx_to_keras: W has dtype int64, expected float32 or float64");
    ck_assert_int_eq(sg_onnx_from_torch(ctx, (sg_cell_kind)7, k, rk, NULL, NULL, &W, &R, &B), -1);
    EXPECT_ERR(ctx, "sg_onnx_from_torch: unknown cell 7");
}
END_TEST

/* ---- errors --------------------------------------------------------------------------- */

/* Export cfg i to path; its model in *t. */
static void export_cfg(tmodel *t, int i, const char *path) {
    tmodel_make(ctx, t, &mcfgs[i], 1);
    ck_assert_msg(sg_onnx_export(ctx, path, &t->m) == 0, "%s", sg_ctx_error(ctx));
}

static int cfg_index(const char *name) {
    for (int i = 0; i < NMCFGS; i++)
        if (!strcmp(mcfgs[i].name, name))
            return i;
    ck_abort_msg("no configuration %s", name);
    return -1;
}

/* Import the file at path into cfg `into`'s model: must fail with exactly msg (after
 * "sg_onnx_import: <path>: ") and leave the layers as they were. */
static void expect_import_error(const char *path, const char *into, const char *msg) {
    tmodel t, before;
    tmodel_make(ctx, &t, &mcfgs[cfg_index(into)], 77);
    tmodel_make(ctx, &before, &mcfgs[cfg_index(into)], 77);
    sg_onnx_file *f = sg_onnx_load(ctx, path);
    ck_assert_msg(f != NULL, "%s", sg_ctx_error(ctx));
    ck_assert_int_eq(sg_onnx_import(ctx, f, &t.m), -1);
    char want[1024];
    snprintf(want, sizeof want, "sg_onnx_import: %s: %s", path, msg);
    EXPECT_ERR(ctx, want);
    expect_same_params(t.store, before.store, into);
    sg_onnx_free(f);
    tmodel_free(&t);
    tmodel_free(&before);
}

/* Replace the last occurrence of `from` in the file by `to` (same length). */
static void patch_last(const char *path, const char *from, const char *to) {
    size_t n, k = strlen(from);
    unsigned char *b = slurp_file(path, &n);
    unsigned char *hit = NULL;
    for (size_t i = 0; i + k <= n; i++)
        if (!memcmp(b + i, from, k))
            hit = b + i;
    ck_assert_ptr_nonnull(hit);
    memcpy(hit, to, k);
    FILE *f = fopen(path, "wb");
    ck_assert_int_eq(fwrite(b, 1, n, f), n);
    fclose(f);
    free(b);
}

START_TEST(test_import_errors) {
    tmodel t;
    char lstm[512], gru[512], stacked[512]; /* tmp_path's buffers rotate */
    snprintf(lstm, sizeof lstm, "%s", tmp_path("lstm.onnx"));
    snprintf(gru, sizeof gru, "%s", tmp_path("gru.onnx"));
    snprintf(stacked, sizeof stacked, "%s", tmp_path("stacked.onnx"));
    export_cfg(&t, cfg_index("lstm_fused"), lstm);
    tmodel_free(&t);
    expect_import_error(lstm, "gru_reset_after",
                        "node 'lstm.l0' is LSTM, layer 0 of the stack is GRU");
    expect_import_error(lstm, "lstm_stacked",
                        "the graph has 1 recurrent node (LSTM, GRU, RNN), the stack 2 layers");
    expect_import_error(lstm, "lstm_bidir",
                        "node 'lstm.l0' (LSTM): direction 'forward', the layer is bidirectional");
    { /* a layer of another input size */
        sg_store *st = sg_store_new();
        sg_rnn_options o = sg_rnn_defaults(SG_CELL_LSTM, 5, TH);
        sg_rnn *r5 = sg_rnn_new(ctx, st, &o, NULL, NULL);
        sg_onnx_file *f = sg_onnx_load(ctx, lstm);
        ck_assert_int_eq(sg_onnx_import(ctx, f, &(sg_onnx_model){.rnn = r5}), -1);
        char want[600];
        snprintf(want, sizeof want,
                 "sg_onnx_import: %s: node 'lstm.l0' (LSTM): W has shape (1, 12, 4), expected "
                 "(1, 12, 5)",
                 lstm);
        EXPECT_ERR(ctx, want);
        sg_onnx_free(f);
        sg_rnn_free(r5);
        sg_store_free(st);
    }
    export_cfg(&t, cfg_index("gru_reset_after"), gru);
    tmodel_free(&t);
    expect_import_error(
        gru, "gru_reset_before",
        "node 'gru.l0' (GRU): linear_before_reset = 1, the layer has reset_after = false");
    export_cfg(&t, cfg_index("lstm_stacked"), stacked);
    tmodel_free(&t);
    expect_import_error(stacked, "lstm_fused",
                        "node 'lstm.l1' (LSTM): more recurrent nodes than the stack's 1 layer");
    /* a missing initializer: rename the initializer W (the last occurrence of its name) */
    patch_last(lstm, "lstm.l0.W", "lstm.l0.Q");
    expect_import_error(lstm, "lstm_fused",
                        "node 'lstm.l0' (LSTM): W 'lstm.l0.W' is not an initializer");
    { /* Dense layers that do not fit the file's */
        char toy[512];
        snprintf(toy, sizeof toy, "%s", tmp_path("toy.onnx"));
        export_cfg(&t, cfg_index("toy_model"), toy);
        tmodel_free(&t);
        sg_store *st = sg_store_new();
        sg_lstm_options lo = sg_lstm_defaults(TI, TH);
        sg_lstm *l = sg_lstm_new(ctx, st, SG_LSTM_FUSED, &lo, NULL, NULL);
        sg_dense *d3 = sg_dense_new(ctx, st, SG_F32, TH, 3, true, SG_ACT_LINEAR, "d3", NULL);
        sg_dense *nb = sg_dense_new(ctx, st, SG_F32, TH, TOUT, false, SG_ACT_LINEAR, "nb", NULL);
        sg_dense *two[2] = {nb, d3};
        sg_onnx_file *f = sg_onnx_load(ctx, toy);
        char want[1200];
        ck_assert_int_eq(
            sg_onnx_import(ctx, f, &(sg_onnx_model){.lstm = l, .dense = &d3, .n_dense = 1}), -1);
        snprintf(want, sizeof want,
                 "sg_onnx_import: %s: node 'dense.MatMul' (MatMul): the weight has shape (3, 2), "
                 "expected (3, 3)",
                 toy);
        EXPECT_ERR(ctx, want);
        ck_assert_int_eq(
            sg_onnx_import(ctx, f, &(sg_onnx_model){.lstm = l, .dense = &nb, .n_dense = 1}), -1);
        snprintf(want, sizeof want,
                 "sg_onnx_import: %s: dense nb has no bias, node 'dense.Add' gives one", toy);
        EXPECT_ERR(ctx, want);
        ck_assert_int_eq(
            sg_onnx_import(ctx, f, &(sg_onnx_model){.lstm = l, .dense = two, .n_dense = 2}), -1);
        snprintf(want, sizeof want,
                 "sg_onnx_import: %s: dense nb has no bias, node 'dense.Add' gives one", toy);
        EXPECT_ERR(ctx, want);
        /* the stack alone: the Dense nodes are left alone */
        ck_assert_int_eq(sg_onnx_import(ctx, f, &(sg_onnx_model){.lstm = l}), 0);
        sg_onnx_free(f);
        sg_lstm_free(l);
        sg_dense_free(d3);
        sg_dense_free(nb);
        sg_store_free(st);
    }
    /* a file without the Dense layer the model has */
    expect_import_error(gru, "text_model",
                        "the graph has 1 recurrent node (LSTM, GRU, RNN), the stack 2 layers");
    const char *gru2 = tmp_path("gru2.onnx");
    export_cfg(&t, cfg_index("gru_full"), gru2);
    tmodel_free(&t);
    expect_import_error(gru2, "text_model",
                        "node 'gru.l0' (GRU): direction 'bidirectional', the layer is forward");
}
END_TEST

/* Truncated and corrupt files: a message, never a crash. */
START_TEST(test_parse_errors) {
    tmodel t;
    const char *path = tmp_path("m.onnx");
    export_cfg(&t, cfg_index("lstm_full"), path);
    tmodel_free(&t);
    size_t n;
    unsigned char *b = slurp_file(path, &n);
    sg_onnx_file *f = sg_onnx_parse(ctx, b, n);
    ck_assert_ptr_nonnull(f);
    sg_onnx_free(f);
    for (size_t cut = 1; cut < n; cut += 1 + cut / 3) {
        f = sg_onnx_parse(ctx, b, cut);
        ck_assert_msg(f == NULL, "a file cut at %zu of %zu bytes parsed", cut, n);
        ck_assert_ptr_nonnull(sg_ctx_error(ctx));
        sg_ctx_clear_error(ctx);
    }
    f = sg_onnx_parse(ctx, b, n / 2);
    ck_assert_ptr_null(f);
    EXPECT_ERR(ctx,
               "sg_onnx_parse: not an ONNX model: protobuf decoding failed (truncated or corrupt "
               "file)");
    f = sg_onnx_parse(ctx, "", 0);
    ck_assert_ptr_null(f);
    EXPECT_ERR(ctx, "sg_onnx_parse: the model has no graph");
    f = sg_onnx_parse(ctx, NULL, 3);
    ck_assert_ptr_null(f);
    EXPECT_ERR(ctx, "sg_onnx_parse: buffer is NULL");
    FILE *w = fopen(tmp_path("cut.onnx"), "wb");
    ck_assert_int_eq(fwrite(b, 1, n - 7, w), n - 7);
    fclose(w);
    ck_assert_ptr_null(sg_onnx_load(ctx, tmp_path("cut.onnx")));
    char want[600];
    snprintf(want, sizeof want,
             "sg_onnx_load: %s: not an ONNX model: protobuf decoding failed (truncated or corrupt "
             "file)",
             tmp_path("cut.onnx"));
    EXPECT_ERR(ctx, want);
    ck_assert_ptr_null(sg_onnx_load(ctx, tmp_path("none.onnx")));
    snprintf(want, sizeof want, "sg_onnx_load: %s: cannot open: No such file or directory",
             tmp_path("none.onnx"));
    EXPECT_ERR(ctx, want);
    free(b);
}
END_TEST

/* What ONNX's operators cannot hold is refused by name, and nothing is written. */
START_TEST(test_export_errors) {
    const char *path = tmp_path("x.onnx");
    char want[600];
#define EXPECT_EXPORT_ERR(m, msg)                                                                  \
    do {                                                                                           \
        ck_assert_int_eq(sg_onnx_export(ctx, path, (m)), -1);                                      \
        snprintf(want, sizeof want, "sg_onnx_export: %s: %s", path, (msg));                        \
        EXPECT_ERR(ctx, want);                                                                     \
        ck_assert_int_ne(access(path, F_OK), 0);                                                   \
    } while (0)
    sg_store *store = sg_store_new();
    sg_rnn_options o = sg_rnn_defaults(SG_CELL_LSTM, 3, 2);
    o.layer_norm = true;
    sg_rnn *ln = sg_rnn_new(ctx, store, &o, "ln", NULL);
    EXPECT_EXPORT_ERR((&(sg_onnx_model){.rnn = ln}), "ln: layer_norm has no ONNX operator");
    o = sg_rnn_defaults(SG_CELL_GRU, 3, 2);
    o.initial_state = SG_STATE_LEARNED;
    sg_rnn *learned = sg_rnn_new(ctx, store, &o, "learned", NULL);
    EXPECT_EXPORT_ERR((&(sg_onnx_model){.rnn = learned}),
                      "learned: a learned initial state is not exported (give h0/c0 as inputs)");
    o = sg_rnn_defaults(SG_CELL_LSTM, 3, 2);
    o.zoneout_h = 0.1;
    sg_rnn *zo = sg_rnn_new(ctx, store, &o, "zo", NULL);
    EXPECT_EXPORT_ERR((&(sg_onnx_model){.rnn = zo}),
                      "zo: zoneout (its evaluation form mixes old and new states)");
    o = sg_rnn_defaults(SG_CELL_RNN, 3, 2);
    o.bidirectional = true;
    o.merge = SG_MERGE_SUM;
    o.num_layers = 2;
    sg_rnn *sum = sg_rnn_new(ctx, store, &o, "sum", NULL);
    EXPECT_EXPORT_ERR((&(sg_onnx_model){.rnn = sum}),
                      "sum: merge mode 1 (only concat is exported)");
    o = sg_rnn_defaults(SG_CELL_LSTM, 3, 2);
    o.activation = SG_ACT_LINEAR;
    sg_rnn *lin = sg_rnn_new(ctx, store, &o, "lin", NULL);
    EXPECT_EXPORT_ERR((&(sg_onnx_model){.rnn = lin}),
                      "lin: activation linear / sigmoid has no ONNX recurrent form");
    o = sg_rnn_defaults(SG_CELL_LSTM, 3, 2);
    sg_rnn *ok = sg_rnn_new(ctx, store, &o, "ok", NULL);
    sg_dense *d = sg_dense_new(ctx, store, SG_F32, 3, 1, true, SG_ACT_LINEAR, "head", NULL);
    sg_store *store64 = sg_store_new();
    sg_dense *d64 = sg_dense_new(ctx, store64, SG_F64, 2, 1, true, SG_ACT_LINEAR, "head64", NULL);
    EXPECT_EXPORT_ERR((&(sg_onnx_model){.rnn = ok, .dense = &d, .n_dense = 1}),
                      "dense head takes 3 inputs, it receives 2");
    EXPECT_EXPORT_ERR((&(sg_onnx_model){.rnn = ok, .dense = &d64, .n_dense = 1}),
                      "dense head64 is float64, the stack float32");
    EXPECT_EXPORT_ERR((&(sg_onnx_model){.rnn = ok, .lstm = (sg_lstm *)1}),
                      "give exactly one recurrent stack (rnn or lstm)");
    EXPECT_EXPORT_ERR((&(sg_onnx_model){0}), "give exactly one recurrent stack (rnn or lstm)");
    EXPECT_EXPORT_ERR(NULL, "model is NULL");
    ck_assert_int_eq(sg_onnx_export(ctx, tmpdir, &(sg_onnx_model){.rnn = ok}), -1);
    snprintf(want, sizeof want, "sg_onnx_export: %s: is a directory", tmpdir);
    EXPECT_ERR(ctx, want);
    ck_assert_int_eq(sg_onnx_export(ctx, NULL, &(sg_onnx_model){.rnn = ok}), -1);
    EXPECT_ERR(ctx, "sg_onnx_export: NULL path");
    ck_assert_int_eq(sg_onnx_export(NULL, path, NULL), -1);
    /* evaluation behaviour: dropout does not stop an export */
    o = sg_rnn_defaults(SG_CELL_LSTM, 3, 2);
    o.dropout = o.recurrent_dropout = 0.3;
    sg_rnn *drop = sg_rnn_new(ctx, store, &o, "drop", NULL);
    ck_assert_int_eq(sg_onnx_export(ctx, path, &(sg_onnx_model){.rnn = drop}), 0);
    unlink(path);
    sg_rnn *all[] = {ln, learned, zo, sum, lin, ok, drop};
    for (size_t i = 0; i < sizeof all / sizeof *all; i++)
        sg_rnn_free(all[i]);
    sg_dense_free(d);
    sg_dense_free(d64);
    sg_store_free(store);
    sg_store_free(store64);
#undef EXPECT_EXPORT_ERR
}
END_TEST

int main(void) {
    const ck_tcase tcases[] = {
        {"roundtrip", 120, {{test_roundtrip, NMCFGS}, {test_torch_files, 3}}},
        {"converters",
         60,
         {{test_converters, 6}, {test_converters_gru_reset_before, 1}, {test_converter_errors, 1}}},
        {"errors", 60, {{test_import_errors, 1}, {test_parse_errors, 1}, {test_export_errors, 1}}},
    };
    return CK_RUN("onnx", tcases, setup, teardown);
}
