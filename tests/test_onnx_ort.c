/* The exported ONNX models run in a real runtime: onnxruntime (npm onnxruntime-node, installed
 * into tests/onnx/node_modules by scripts/setup_onnxruntime.sh) through tests/onnx/run_ort.js.
 * For every configuration of onnxtest.h (each cell, both LSTM implementations, GRU with and
 * without reset_after, SimpleRNN tanh and relu, stacked, bidirectional, lengths, h0 / c0,
 * float32 and float64, Embedding + stack + Dense models on every step and on the final
 * state) the model is exported, run in onnxruntime on the same inputs, and every output
 * (y, h_n, c_n) must equal seqgrad's within 1e-5 (float32) or 1e-12 (float64) relative to
 * 1 + |seqgrad's value|; the session's input and output names must be the documented ones.
 *
 * Node.js is $SG_NODE if set, else `node` on PATH. When node or onnxruntime-node is missing
 * the program prints why and exits with 77 (meson's "skipped"), and only then; with
 * SG_ONNX_ORT_REQUIRED=1 (CI) it fails instead. It also runs rnn_run --export-onnx
 * ($SG_RNN_RUN, else ../examples/rnn_run) on every PyTorch fixture of tests/fixtures/rnn. */
#define _GNU_SOURCE /* mkdtemp */
#include <cJSON.h>
#include <check.h>
#include <math.h>

#include "cksuite.h"
#include "io.h"
#include "onnxtest.h"
#include "progtest.h"

#ifndef SG_SOURCE_DIR
#define SG_SOURCE_DIR "."
#endif

static sg_ctx *ctx;
static char runner[PATH_MAX]; /* tests/onnx/run_ort.js */

static void setup(void) {
    ctx = sg_ctx_new(0);
    snprintf(tmpdir, sizeof tmpdir, "/tmp/sg_onnx_ort_XXXXXX");
    ck_assert_ptr_nonnull(mkdtemp(tmpdir));
}

static void teardown(void) {
    rm_tree(tmpdir);
    sg_ctx_free(ctx);
    ctx = NULL;
}

/* ---- the inputs file and the outputs file ----------------------------------------------- */

static const char *type_name(sg_dtype dt) {
    return dt == SG_F32 ? "float32" : dt == SG_F64 ? "float64" : dt == SG_I32 ? "int32" : "int64";
}

static void add_input(cJSON *root, const char *name, const sg_tensor *t) {
    if (!t)
        return;
    cJSON *o = cJSON_AddObjectToObject(root, name);
    cJSON_AddStringToObject(o, "type", type_name(t->dtype));
    cJSON *dims = cJSON_AddArrayToObject(o, "dims"), *data = cJSON_AddArrayToObject(o, "data");
    for (int i = 0; i < t->ndim; i++)
        cJSON_AddItemToArray(dims, cJSON_CreateNumber((double)t->shape[i]));
    /* cJSON prints doubles with 17 significant digits when 15 do not round trip: exact */
    for (int64_t i = 0; i < sg_numel(t); i++)
        cJSON_AddItemToArray(data, cJSON_CreateNumber(sg_get_flat(t, i)));
}

static void write_text(const char *path, const char *s) {
    FILE *f = fopen(path, "wb");
    ck_assert_ptr_nonnull(f);
    ck_assert_int_eq(fputs(s, f) >= 0, 1);
    ck_assert_int_eq(fclose(f), 0);
}

static char *read_text(const char *path) {
    FILE *f = fopen(path, "rb");
    ck_assert_msg(f != NULL, "no %s", path);
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *s = malloc((size_t)n + 1);
    ck_assert_int_eq(fread(s, 1, (size_t)n, f), (size_t)n);
    s[n] = 0;
    fclose(f);
    return s;
}

/* Compare ONNX output `name` of the results with seqgrad's tensor: same dims, every value
 * within tol relative to 1 + |want|. */
static void expect_output(const cJSON *res, const char *name, const sg_tensor *want, double tol,
                          const char *cfg) {
    const cJSON *o = cJSON_GetObjectItemCaseSensitive(res, name);
    ck_assert_msg(o != NULL, "%s: onnxruntime gave no output %s", cfg, name);
    const cJSON *dims = cJSON_GetObjectItemCaseSensitive(o, "dims");
    const cJSON *data = cJSON_GetObjectItemCaseSensitive(o, "data");
    ck_assert_int_eq(cJSON_GetArraySize(dims), want->ndim);
    for (int i = 0; i < want->ndim; i++)
        ck_assert_int_eq((int64_t)cJSON_GetArrayItem(dims, i)->valuedouble, want->shape[i]);
    ck_assert_int_eq(cJSON_GetArraySize(data), sg_numel(want));
    double worst = 0;
    int64_t k = 0;
    for (const cJSON *v = data->child; v; v = v->next, k++) {
        double w = sg_get_flat(want, k), err = fabs(v->valuedouble - w) / (1 + fabs(w));
        ck_assert_msg(err <= tol, "%s: %s[%lld] = %.17g in onnxruntime, %.17g in seqgrad", cfg,
                      name, (long long)k, v->valuedouble, w);
        worst = err > worst ? err : worst;
    }
    ck_assert(k > 0);
}

/* The session's names (inputs or outputs) must be exactly these, in this order. */
static void expect_names(const cJSON *res, const char *which, const char *const *names, int n,
                         const char *cfg) {
    const cJSON *a =
        cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(res, "__names__"), which);
    ck_assert_msg(cJSON_GetArraySize(a) == n, "%s: %d %s, expected %d", cfg, cJSON_GetArraySize(a),
                  which, n);
    for (int i = 0; i < n; i++)
        ck_assert_str_eq(cJSON_GetArrayItem(a, i)->valuestring, names[i]);
}

/* Run the model file in onnxruntime with these inputs; the parsed results (free with
 * cJSON_Delete), or NULL when onnxruntime refused and refused_ok (the message in err_text). */
static cJSON *run_ort(const char *model, const tinputs *in, const char *xname, bool refused_ok) {
    cJSON *root = cJSON_CreateObject();
    add_input(root, xname, in->x);
    add_input(root, "lengths", in->lengths);
    add_input(root, "h0", in->h0);
    add_input(root, "c0", in->c0);
    char *s = cJSON_PrintUnformatted(root);
    write_text(tp("in.json"), s);
    cJSON_free(s);
    cJSON_Delete(root);
    const char *args[] = {runner, model, tp("in.json"), tp("out.json"), NULL};
    int rc = run(args);
    if (rc != 0 && refused_ok)
        return NULL;
    ck_assert_msg(rc == 0, "run_ort.js failed (%d): %s", rc, err_text);
    char *text = read_text(tp("out.json"));
    cJSON *res = cJSON_Parse(text);
    free(text);
    ck_assert_ptr_nonnull(res);
    return res;
}

START_TEST(test_ort) {
    const mcfg *c = &mcfgs[_i];
    tmodel t;
    tmodel_make(ctx, &t, c, 100 + (uint64_t)_i);
    tinputs in = tinputs_make(ctx, &t, 200 + (uint64_t)_i);
    toutputs want = tmodel_forward(ctx, &t, &in);
    const char *path = tp("model.onnx");
    ck_assert_msg(sg_onnx_export(ctx, path, &t.m) == 0, "%s", sg_ctx_error(ctx));
    const char *xname = c->emb ? "ids" : "x";
    cJSON *res = run_ort(path, &in, xname, c->dt == SG_F64);
    if (!res) {
        /* onnxruntime 1.30 has no float64 kernels for LSTM, GRU and RNN ("LSTM operator does
         * not support double yet"; no RNN(14) for double): the refusal must be that one, for
         * the recurrent node, and nothing else about the model. The float64 files are checked
         * structurally by test_onnx.c (they load back into layers that compute the same). */
        const char *op = c->cell == SG_CELL_LSTM ? "LSTM" : c->cell == SG_CELL_GRU ? "GRU" : "RNN";
        char a[64], b[64];
        snprintf(a, sizeof a, "%s operator does not support double", op);
        snprintf(b, sizeof b, "Could not find an implementation for %s(14)", op);
        ck_assert_msg(strstr(err_text, a) || strstr(err_text, b), "%s: %s", c->name, err_text);
        tmodel_free(&t);
        return;
    }
    const double tol = c->dt == SG_F64 ? 1e-12 : 1e-5;
    expect_output(res, "y", want.y, tol, c->name);
    const char *ins[4] = {xname}, *outs[3] = {"y"};
    int ni = 1, no = 1;
    if (in.lengths)
        ins[ni++] = "lengths";
    if (in.h0)
        ins[ni++] = "h0";
    if (in.c0)
        ins[ni++] = "c0";
    if (want.h_n) {
        expect_output(res, "h_n", want.h_n, tol, c->name);
        outs[no++] = "h_n";
    }
    if (want.c_n) {
        expect_output(res, "c_n", want.c_n, tol, c->name);
        outs[no++] = "c_n";
    }
    expect_names(res, "inputs", ins, ni, c->name);
    expect_names(res, "outputs", outs, no, c->name);
    cJSON_Delete(res);
    tmodel_free(&t);
}
END_TEST

/* An output name given by the caller, and the documented defaults otherwise. */
START_TEST(test_names) {
    tmodel t;
    tmodel_make(ctx, &t, &mcfgs[0], 7);
    t.m.input_name = "features";
    t.m.output_name = "hidden";
    t.m.h_n = t.m.c_n = false;
    tinputs in = tinputs_make(ctx, &t, 8);
    toutputs want = tmodel_forward(ctx, &t, &in);
    ck_assert_int_eq(sg_onnx_export(ctx, tp("named.onnx"), &t.m), 0);
    cJSON *res = run_ort(tp("named.onnx"), &in, "features", false);
    expect_output(res, "hidden", want.y, 1e-5, "named");
    expect_names(res, "inputs", (const char *[]){"features"}, 1, "named");
    expect_names(res, "outputs", (const char *[]){"hidden"}, 1, "named");
    cJSON_Delete(res);
    tmodel_free(&t);
}
END_TEST

/* ---- rnn_run --export-onnx on PyTorch's state_dicts ------------------------------------ */

static char node_exe[sizeof exe], rnn_run_exe[sizeof exe];
static char rnn_cfgs[32][2][64]; /* name, cell of tests/fixtures/rnn/configs.txt */
static int n_rnn_cfgs;

static const char *source_dir(void) {
    const char *src = getenv("SG_SOURCE_DIR");
    return src && *src ? src : SG_SOURCE_DIR;
}

static void read_rnn_configs(void) {
    char p[PATH_MAX];
    snprintf(p, sizeof p, "%s/tests/fixtures/rnn/configs.txt", source_dir());
    FILE *f = fopen(p, "r");
    char line[256];
    while (f && fgets(line, sizeof line, f) && n_rnn_cfgs < 32)
        if (line[0] != '#' &&
            sscanf(line, "%63s %63s", rnn_cfgs[n_rnn_cfgs][0], rnn_cfgs[n_rnn_cfgs][1]) == 2)
            n_rnn_cfgs++;
    if (f)
        fclose(f);
}

/* For each state_dict of the rnn_run fixtures (nn.LSTM, nn.GRU, nn.RNN; layers, directions,
 * bias, lengths, h0 / c0), in float32: rnn_run --export-onnx, then the model in onnxruntime
 * must give rnn_run's own y, h_n (and c_n) within 1e-5, with the same input and output names. */
START_TEST(test_rnn_run_export) {
    const char *name = rnn_cfgs[_i][0], *cell = rnn_cfgs[_i][1];
    char w[PATH_MAX + 128], in[PATH_MAX + 128];
    snprintf(w, sizeof w, "%s/tests/fixtures/rnn/%s.W.safetensors", source_dir(), name);
    snprintf(in, sizeof in, "%s/tests/fixtures/rnn/%s.in.safetensors", source_dir(), name);
    sg_st_file *IN = sg_safetensors_load(ctx, in);
    ck_assert_msg(IN != NULL, "%s", sg_ctx_error(ctx));
    /* the forward inputs, float32 (lengths as they are: rnn_run reads int64) */
    sg_param_list l = {.ctx = ctx};
    tinputs ti = {0};
    static const char *const names[4] = {"x", "lengths", "h0", "c0"};
    sg_tensor **slot[4] = {&ti.x, &ti.lengths, &ti.h0, &ti.c0};
    for (int k = 0; k < 4; k++)
        if (sg_st_has(IN, names[k])) {
            sg_tensor *t = sg_st_get(IN, names[k]);
            sg_tensor *c = sg_cast(ctx, t, k == 1 ? t->dtype : SG_F32);
            sg_params_add(&l, names[k], c);
            *slot[k] = k == 1 ? sg_cast(ctx, t, SG_I32) : c;
        }
    ck_assert_int_eq(sg_safetensors_save(ctx, tp("in32.safetensors"), &l, NULL), 0);
    sg_params_clear(&l);
    sg_st_free(IN);
    const char *args[] = {"--cell",
                          cell,
                          "--weights",
                          w,
                          "--input",
                          tp("in32.safetensors"),
                          "--output",
                          tp("out.safetensors"),
                          "--export-onnx",
                          tp("m.onnx"),
                          NULL};
    memcpy(exe, rnn_run_exe, sizeof exe);
    int rc = run(args);
    memcpy(exe, node_exe, sizeof exe);
    ck_assert_msg(rc == 0, "%s: rnn_run failed: %s", name, err_text);
    sg_st_file *OUT = sg_safetensors_load(ctx, tp("out.safetensors"));
    ck_assert_ptr_nonnull(OUT);
    cJSON *res = run_ort(tp("m.onnx"), &ti, "x", false);
    const char *outs[3] = {"y", "h_n", "c_n"};
    const bool lstm = !strcmp(cell, "lstm");
    for (int k = 0; k < (lstm ? 3 : 2); k++)
        expect_output(res, outs[k], sg_st_get(OUT, outs[k]), 1e-5, name);
    const char *ins[4] = {"x"};
    int ni = 1;
    for (int k = 1; k < 4; k++)
        if (*slot[k])
            ins[ni++] = names[k];
    expect_names(res, "inputs", ins, ni, name);
    expect_names(res, "outputs", outs, lstm ? 3 : 2, name);
    cJSON_Delete(res);
    sg_st_free(OUT);
}
END_TEST

/* train --export-onnx: a model trained by `train` (text: Embedding, 2 x LSTM, Dense at every
 * step, the state in and out; classify: lengths, the final state; sine: sg_lstm) gives in
 * onnxruntime the logits (y) that seqgrad computes from the same trained weights, read back
 * from the checkpoint train saved, within 1e-5. */
static char train_exe[sizeof exe];
START_TEST(test_train_export) {
    static const char *const tasks[3] = {"text", "classify", "sine"};
    const char *task = tasks[_i];
    const bool text = _i == 0, seq = _i < 2;
    char txt[PATH_MAX + 16];
    snprintf(txt, sizeof txt, "%s", tp("text.txt"));
    FILE *f = fopen(txt, "w");
    for (int k = 0; f && k < 40; k++)
        fputs("the quick brown fox jumps over the lazy dog; 0123456789.\n", f);
    ck_assert_int_eq(f && fclose(f) == 0, 1);
    const char *args[32] = {"--task", task,   "--steps", "25",     "--hidden",      "12",
                            "--out",  tmpdir, "--save",  tp("ck"), "--export-onnx", tp("m.onnx")};
    int na = 12;
    if (seq) {
        const char *more[] = {"--embed", "6", "--layers", "2", "--batch", "4", "--seq-len", "12"};
        memcpy(args + na, more, sizeof more);
        na += 8;
    }
    if (text) {
        args[na++] = "--text";
        args[na++] = txt;
    }
    args[na] = NULL;
    memcpy(exe, train_exe, sizeof exe);
    int rc = run(args);
    memcpy(exe, node_exe, sizeof exe);
    ck_assert_msg(rc == 0, "train --task %s failed: %s", task, err_text);

    /* the trained weights, from the checkpoint, into layers of the same shapes and names */
    sg_st_file *ck = sg_safetensors_load(ctx, tp("ck"));
    ck_assert_msg(ck != NULL, "%s", sg_ctx_error(ctx));
    sg_store *st = sg_store_new();
    sg_embedding *emb = NULL;
    sg_rnn *rnn = NULL;
    sg_lstm *lstm = NULL;
    int64_t V = 0, H = 12;
    if (seq) {
        V = sg_st_get(ck, "embedding.embeddings")->shape[0];
        emb = sg_embedding_new(ctx, st, SG_F32, V, 6, NULL, "embedding", NULL);
        sg_rnn_options o = sg_rnn_defaults(SG_CELL_LSTM, 6, H);
        o.num_layers = 2;
        rnn = sg_rnn_new(ctx, st, &o, "rnn", NULL);
    } else {
        sg_lstm_options o = sg_lstm_defaults(1, H);
        lstm = sg_lstm_new(ctx, st, SG_LSTM_FUSED, &o, "lstm", NULL);
    }
    const int64_t O = text ? V : seq ? 2 : 1;
    sg_dense *head = sg_dense_new(ctx, st, SG_F32, H, O, true, SG_ACT_LINEAR, "dense", NULL);
    ck_assert_msg(head != NULL, "%s", sg_ctx_error(ctx));
    for (int i = 0; i < sg_store_size(st); i++) {
        const char *name = sg_store_name_at(st, i);
        ck_assert_msg(sg_st_has(ck, name), "checkpoint has no %s", name);
        ck_assert_int_eq(sg_copy_values(sg_store_at(st, i), sg_st_get(ck, name)), 0);
    }
    sg_st_free(ck);

    /* inputs: ids (or x), lengths for classify, a random state for text */
    enum { B = 3, T = 9 };
    sg_rng rng;
    sg_rng_seed(&rng, 17);
    tinputs in = {0};
    if (seq) {
        in.x = sg_zeros(ctx, SG_I64, SG_SHAPE(B, T));
        for (int64_t k = 0; k < B * T; k++)
            sg_set_flat(in.x, k, (double)sg_rng_below(&rng, (uint64_t)V));
    } else {
        in.x = sg_rand_uniform(ctx, SG_F32, SG_SHAPE(B, T, 1), -1, 1);
    }
    if (_i == 1) {
        in.lengths = sg_zeros(ctx, SG_I32, SG_SHAPE(B));
        for (int b = 0; b < B; b++)
            sg_set_flat(in.lengths, b, T - 3 * b);
    }
    if (text) {
        in.h0 = sg_rand_uniform(ctx, SG_F32, SG_SHAPE(2, B, H), -0.5, 0.5);
        in.c0 = sg_rand_uniform(ctx, SG_F32, SG_SHAPE(2, B, H), -0.5, 0.5);
    }
    /* seqgrad's logits, as train computes them */
    sg_ctx_set_training(ctx, false);
    sg_tensor *want, *hn = NULL, *cn = NULL;
    if (seq) {
        sg_rnn_output o;
        sg_tensor *lengths = in.lengths ? sg_cast(ctx, in.lengths, SG_I64) : NULL;
        ck_assert_int_eq(sg_rnn_forward(ctx, rnn, sg_embedding_forward(ctx, emb, in.x), lengths,
                                        in.h0, in.c0, &o),
                         0);
        want = sg_dense_forward(ctx, head, text ? o.y : sg_select(ctx, o.h_n, 0, 1));
        hn = o.h_n;
        cn = o.c_n;
    } else {
        sg_lstm_output o;
        ck_assert_int_eq(sg_lstm_forward(ctx, lstm, in.x, NULL, NULL, &o), 0);
        want = sg_dense_forward(ctx, head, o.h);
    }
    ck_assert_msg(want != NULL, "%s", sg_ctx_error(ctx));
    cJSON *res = run_ort(tp("m.onnx"), &in, seq ? "ids" : "x", false);
    expect_output(res, seq ? "logits" : "y", want, 1e-5, task);
    if (text) {
        expect_output(res, "h_n", hn, 1e-5, task);
        expect_output(res, "c_n", cn, 1e-5, task);
        const char *ins[] = {"ids", "h0", "c0"}, *outs[] = {"logits", "h_n", "c_n"};
        expect_names(res, "inputs", ins, 3, task);
        expect_names(res, "outputs", outs, 3, task);
    }
    cJSON_Delete(res);
    sg_embedding_free(emb);
    sg_rnn_free(rnn);
    sg_lstm_free(lstm);
    sg_dense_free(head);
    sg_store_free(st);
}
END_TEST

/* Node.js: $SG_NODE, else the first `node` on PATH; into exe. */
static bool find_node(void) {
    const char *env = getenv("SG_NODE");
    if (env && *env) {
        snprintf(exe, sizeof exe, "%s", env);
        return access(exe, X_OK) == 0;
    }
    const char *path = getenv("PATH");
    char buf[4096];
    snprintf(buf, sizeof buf, "%s", path ? path : "/usr/bin:/bin");
    for (char *save = NULL, *d = strtok_r(buf, ":", &save); d; d = strtok_r(NULL, ":", &save)) {
        snprintf(exe, sizeof exe, "%s/node", *d ? d : ".");
        if (access(exe, X_OK) == 0)
            return true;
    }
    return false;
}

int main(void) {
    const char *src = source_dir();
    snprintf(runner, sizeof runner, "%s/tests/onnx/run_ort.js", src);
    char module[PATH_MAX + 64];
    snprintf(module, sizeof module, "%s/tests/onnx/node_modules/onnxruntime-node/package.json",
             src);
    /* CI sets SG_ONNX_ORT_REQUIRED=1: there a missing runtime is a failure, not a skip */
    const char *req = getenv("SG_ONNX_ORT_REQUIRED");
    const int skip = req && *req && strcmp(req, "0") ? EXIT_FAILURE : 77;
    const char *tag = skip == 77 ? "SKIP" : "FAIL (SG_ONNX_ORT_REQUIRED)";
    if (!find_node()) {
        printf("%s test_onnx_ort: Node.js not found (install nodejs, or set SG_NODE)\n", tag);
        return skip;
    }
    if (access(module, R_OK) != 0) {
        printf("%s test_onnx_ort: onnxruntime-node is not installed in %s/tests/onnx "
               "(run scripts/setup_onnxruntime.sh)\n",
               tag, src);
        return skip;
    }
    memcpy(node_exe, exe, sizeof exe);
    find_program("SG_RNN_RUN", "rnn_run");
    memcpy(rnn_run_exe, exe, sizeof exe);
    memcpy(exe, node_exe, sizeof exe);
    if (access(rnn_run_exe, X_OK) != 0) {
        fprintf(stderr, "test_onnx_ort: %s is not an executable (build examples/rnn_run)\n",
                rnn_run_exe);
        return EXIT_FAILURE;
    }
    find_program("SG_TRAIN", "train");
    memcpy(train_exe, exe, sizeof exe);
    memcpy(exe, node_exe, sizeof exe);
    read_rnn_configs();
    if (n_rnn_cfgs < 18) {
        fprintf(stderr, "test_onnx_ort: tests/fixtures/rnn/configs.txt: %d configurations\n",
                n_rnn_cfgs);
        return EXIT_FAILURE;
    }
    const ck_tcase tcases[] = {
        {"onnxruntime", 300, {{test_ort, NMCFGS}, {test_names, 1}}},
        {"rnn_run", 300, {{test_rnn_run_export, n_rnn_cfgs}}},
        {"train", 300, {{test_train_export, 3}}},
    };
    return CK_RUN("onnx_ort", tcases, setup, teardown);
}
