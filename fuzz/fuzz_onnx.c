/* libFuzzer target for the ONNX importer (io/onnx_import.c). Build and run with fuzz/run.sh.
 *
 * Every input goes through sg_onnx_parse; a file that parses is imported into three fixed
 * models (an Embedding, a two-layer bidirectional LSTM and a Dense; a two-layer GRU; a
 * bidirectional SimpleRNN and two Dense layers, float32), each from the same initial values.
 * Promises checked (a broken one traps, so libFuzzer reports the input):
 *   - a parse that fails records an error "sg_onnx_parse: ..."; one that succeeds none;
 *   - a failed import records an error "sg_onnx_import: buffer: ..." and changes no
 *     parameter (every one compared bitwise with the snapshot);
 *   - a successful import records none and leaves only finite-or-not values the file held
 *     (nothing read out of bounds: ASan watches the copies).
 *
 * Seeds: `fuzz_onnx -write_seeds=DIR` exports the three models (and variants: the gates
 * LSTM, inputs lengths / h0 / c0, the final-state head) into DIR and exits; fuzz/corpus_onnx
 * holds its output. */
#define _POSIX_C_SOURCE 200809L
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "io/io.h"
#include "layers/layers.h"

#define PROMISE(cond)                                                                              \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            fprintf(stderr, "\nfuzz_onnx: PROMISE BROKEN: %s (line %d)\n", #cond, __LINE__);       \
            __builtin_trap();                                                                      \
        }                                                                                          \
    } while (0)

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

enum { NMODELS = 3 };

typedef struct {
    sg_store *store;
    sg_embedding *emb;
    sg_rnn *rnn;
    sg_dense *dense[2];
    sg_onnx_model m;
    sg_param_list params;
    unsigned char *snapshot; /* every parameter's bytes, in list order */
    size_t bytes;
} model;

static sg_ctx *g_ctx; /* owns the models' parameters' errors (stores have their own) */
static model g_models[NMODELS];

/* The three models, with fixed values. */
static void make_model(model *md, int k, sg_lstm_impl impl) {
    sg_ctx *ctx = g_ctx;
    memset(md, 0, sizeof *md);
    md->store = sg_store_new();
    sg_rng rng;
    sg_rng_seed(&rng, 1234 + (uint64_t)k);
    static const sg_cell_kind cells[NMODELS] = {SG_CELL_LSTM, SG_CELL_GRU, SG_CELL_RNN};
    int64_t I = 3, H = 2;
    if (k == 0)
        md->emb = sg_embedding_new(ctx, md->store, SG_F32, 5, I, NULL, NULL, &rng);
    sg_rnn_options o = sg_rnn_defaults(cells[k], I, H);
    o.impl = impl;
    o.num_layers = k == 2 ? 1 : 2;
    o.bidirectional = k != 1;
    o.reset_after = true;
    md->rnn = sg_rnn_new(ctx, md->store, &o, NULL, &rng);
    int nd = k == 0 ? 1 : k == 2 ? 2 : 0;
    int64_t width = (o.bidirectional ? 2 : 1) * H;
    for (int i = 0; i < nd; i++) {
        md->dense[i] =
            sg_dense_new(ctx, md->store, SG_F32, width, 2, true, SG_ACT_LINEAR, NULL, &rng);
        width = 2;
    }
    if (!md->rnn || (k == 0 && !md->emb) || (nd && !md->dense[nd - 1])) {
        fprintf(stderr, "fuzz_onnx: cannot make model %d: %s\n", k, sg_ctx_error(ctx));
        exit(2);
    }
    md->m = (sg_onnx_model){.embedding = md->emb,
                            .rnn = md->rnn,
                            .dense = md->dense,
                            .n_dense = nd,
                            .head = k == 2 ? SG_ONNX_FINAL_STATE : SG_ONNX_EVERY_STEP,
                            .h_n = true,
                            .c_n = true};
    md->params.ctx = ctx;
    sg_params_from_store(&md->params, md->store);
    for (int i = 0; i < md->params.n; i++)
        md->bytes += (size_t)sg_numel(md->params.items[i].tensor) * 4;
    md->snapshot = malloc(md->bytes);
    size_t at = 0;
    for (int i = 0; i < md->params.n; i++) {
        const sg_tensor *t = md->params.items[i].tensor;
        memcpy(md->snapshot + at, sg_data(t), (size_t)sg_numel(t) * 4);
        at += (size_t)sg_numel(t) * 4;
    }
}

/* Do the parameters equal the snapshot (restore = copy it back instead)? */
static bool same_as_snapshot(model *md, bool restore) {
    size_t at = 0;
    bool same = true;
    for (int i = 0; i < md->params.n; i++) {
        sg_tensor *t = md->params.items[i].tensor;
        size_t n = (size_t)sg_numel(t) * 4;
        if (restore)
            memcpy(sg_data(t), md->snapshot + at, n);
        else
            same = same && !memcmp(sg_data(t), md->snapshot + at, n);
        at += n;
    }
    return same;
}

static void write_seed(const char *dir, const char *name, const sg_onnx_model *m) {
    char p[4096];
    snprintf(p, sizeof p, "%s/%s", dir, name);
    if (sg_onnx_export(g_ctx, p, m) != 0) {
        fprintf(stderr, "fuzz_onnx: %s\n", sg_ctx_error(g_ctx));
        exit(2);
    }
}

static void write_seeds(const char *dir) {
    if (mkdir(dir, 0777) && errno != EEXIST) {
        fprintf(stderr, "fuzz_onnx: mkdir %s: %s\n", dir, strerror(errno));
        exit(2);
    }
    static const char *const names[NMODELS] = {"emb_lstm2_bi_dense", "gru2", "rnn_bi_dense2_final"};
    for (int k = 0; k < NMODELS; k++) {
        write_seed(dir, names[k], &g_models[k].m);
        sg_onnx_model m = g_models[k].m;
        m.lengths = m.h0 = m.c0 = true;
        char n[96];
        snprintf(n, sizeof n, "%s_inputs", names[k]);
        write_seed(dir, n, &m);
    }
    model gates;
    make_model(&gates, 0, SG_LSTM_GATES);
    write_seed(dir, "emb_lstm2_bi_dense_gates", &gates.m);
    gates.m.head = SG_ONNX_FINAL_STATE;
    gates.m.dense = NULL;
    gates.m.n_dense = 0;
    write_seed(dir, "emb_lstm2_bi_final", &gates.m);
    printf("fuzz_onnx: seeds written to %s\n", dir);
    exit(0);
}

int LLVMFuzzerInitialize(int *argc, char ***argv) {
    g_ctx = sg_ctx_new(1 << 20);
    for (int k = 0; k < NMODELS; k++)
        make_model(&g_models[k], k, SG_LSTM_FUSED);
    for (int i = 1; i < *argc; i++)
        if (!strncmp((*argv)[i], "-write_seeds=", 13))
            write_seeds((*argv)[i] + 13);
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    sg_ctx *ctx = g_ctx;
    sg_ctx_reset(ctx);
    sg_ctx_clear_error(ctx);
    sg_onnx_file *f = sg_onnx_parse(ctx, data, size);
    if (!f) {
        const char *e = sg_ctx_error(ctx);
        PROMISE(e && !strncmp(e, "sg_onnx_parse: ", 15));
        return 0;
    }
    PROMISE(sg_ctx_error(ctx) == NULL);
    for (int k = 0; k < NMODELS; k++) {
        model *md = &g_models[k];
        sg_ctx_reset(ctx);
        int rc = sg_onnx_import(ctx, f, &md->m);
        const char *e = sg_ctx_error(ctx);
        if (rc != 0) {
            PROMISE(e && !strncmp(e, "sg_onnx_import: buffer: ", 24));
            PROMISE(same_as_snapshot(md, false));
        } else {
            PROMISE(e == NULL);
            same_as_snapshot(md, true); /* back to the baseline for the next input */
        }
        sg_ctx_clear_error(ctx);
    }
    sg_onnx_free(f);
    return 0;
}
