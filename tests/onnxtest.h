/* Shared by the ONNX tests (test_onnx.c: export, import, converters, errors; test_onnx_ort.c:
 * the exported models run in onnxruntime): a table of model configurations, building one
 * (random weights and biases so that every block and bias is visible), its inputs and its
 * seqgrad forward pass. Header-only. Needs <check.h> and seqgrad's headers before it. */
#ifndef SG_TESTS_ONNXTEST_H
#define SG_TESTS_ONNXTEST_H

#include <string.h>

typedef struct {
    const char *name;
    sg_cell_kind cell;
    sg_lstm_impl impl;
    sg_activation act, ract; /* ract 0 (tanh) means sigmoid: the default */
    bool no_reset_after;     /* GRU */
    int L;
    bool bidir;
    sg_dtype dt;
    bool lengths, states; /* inputs lengths, h0 (and c0) */
    bool emb;             /* an Embedding in front (input ids) */
    int ndense;           /* Dense layers after the stack (0..2) */
    sg_onnx_head head;
    bool lstm_layer; /* an sg_lstm instead of an sg_rnn */
    bool no_bias;
} mcfg;

static const mcfg mcfgs[] = {
    {.name = "lstm_fused", .cell = SG_CELL_LSTM, .act = SG_ACT_TANH, .L = 1, .dt = SG_F32},
    {.name = "lstm_gates",
     .cell = SG_CELL_LSTM,
     .impl = SG_LSTM_GATES,
     .act = SG_ACT_TANH,
     .L = 1,
     .dt = SG_F32},
    {.name = "gru_reset_after", .cell = SG_CELL_GRU, .act = SG_ACT_TANH, .L = 1, .dt = SG_F32},
    {.name = "gru_reset_before",
     .cell = SG_CELL_GRU,
     .act = SG_ACT_TANH,
     .no_reset_after = true,
     .L = 1,
     .dt = SG_F32},
    {.name = "rnn_tanh", .cell = SG_CELL_RNN, .act = SG_ACT_TANH, .L = 1, .dt = SG_F32},
    {.name = "rnn_relu", .cell = SG_CELL_RNN, .act = SG_ACT_RELU, .L = 1, .dt = SG_F32},
    {.name = "lstm_hard_sigmoid",
     .cell = SG_CELL_LSTM,
     .act = SG_ACT_TANH,
     .ract = SG_ACT_HARD_SIGMOID,
     .L = 1,
     .dt = SG_F32},
    {.name = "lstm_no_bias",
     .cell = SG_CELL_LSTM,
     .act = SG_ACT_TANH,
     .L = 1,
     .dt = SG_F32,
     .no_bias = true},
    {.name = "lstm_stacked", .cell = SG_CELL_LSTM, .act = SG_ACT_TANH, .L = 2, .dt = SG_F32},
    {.name = "lstm_bidir",
     .cell = SG_CELL_LSTM,
     .impl = SG_LSTM_GATES,
     .act = SG_ACT_TANH,
     .L = 1,
     .bidir = true,
     .dt = SG_F32},
    {.name = "lstm_full",
     .cell = SG_CELL_LSTM,
     .act = SG_ACT_TANH,
     .L = 2,
     .bidir = true,
     .dt = SG_F32,
     .lengths = true,
     .states = true},
    {.name = "gru_full",
     .cell = SG_CELL_GRU,
     .act = SG_ACT_TANH,
     .L = 2,
     .bidir = true,
     .dt = SG_F32,
     .lengths = true,
     .states = true},
    {.name = "gru_reset_before_full",
     .cell = SG_CELL_GRU,
     .act = SG_ACT_TANH,
     .no_reset_after = true,
     .L = 2,
     .bidir = true,
     .dt = SG_F32,
     .lengths = true,
     .states = true},
    {.name = "rnn_full",
     .cell = SG_CELL_RNN,
     .act = SG_ACT_TANH,
     .L = 2,
     .bidir = true,
     .dt = SG_F32,
     .lengths = true,
     .states = true},
    {.name = "lstm_lengths",
     .cell = SG_CELL_LSTM,
     .act = SG_ACT_TANH,
     .L = 1,
     .dt = SG_F32,
     .lengths = true},
    {.name = "lstm_f64",
     .cell = SG_CELL_LSTM,
     .act = SG_ACT_TANH,
     .L = 2,
     .bidir = true,
     .dt = SG_F64,
     .lengths = true,
     .states = true},
    {.name = "gru_f64",
     .cell = SG_CELL_GRU,
     .act = SG_ACT_TANH,
     .L = 2,
     .bidir = true,
     .dt = SG_F64,
     .lengths = true,
     .states = true},
    {.name = "rnn_f64",
     .cell = SG_CELL_RNN,
     .act = SG_ACT_TANH,
     .L = 1,
     .bidir = true,
     .dt = SG_F64,
     .lengths = true,
     .states = true},
    {.name = "text_model",
     .cell = SG_CELL_GRU,
     .act = SG_ACT_TANH,
     .L = 2,
     .dt = SG_F32,
     .emb = true,
     .ndense = 1},
    {.name = "text_model_lstm",
     .cell = SG_CELL_LSTM,
     .act = SG_ACT_TANH,
     .L = 2,
     .dt = SG_F32,
     .states = true,
     .emb = true,
     .ndense = 2},
    {.name = "classify_model",
     .cell = SG_CELL_LSTM,
     .act = SG_ACT_TANH,
     .L = 1,
     .bidir = true,
     .dt = SG_F32,
     .lengths = true,
     .emb = true,
     .ndense = 1,
     .head = SG_ONNX_FINAL_STATE},
    {.name = "toy_model",
     .cell = SG_CELL_LSTM,
     .act = SG_ACT_TANH,
     .L = 1,
     .dt = SG_F32,
     .ndense = 1,
     .head = SG_ONNX_FINAL_STATE,
     .lstm_layer = true},
    {.name = "classify_f64",
     .cell = SG_CELL_GRU,
     .act = SG_ACT_TANH,
     .L = 2,
     .bidir = true,
     .dt = SG_F64,
     .lengths = true,
     .states = true,
     .ndense = 2,
     .head = SG_ONNX_FINAL_STATE},
};
#define NMCFGS ((int)(sizeof mcfgs / sizeof mcfgs[0]))

enum { TB = 3, TT = 5, TI = 4, TH = 3, TV = 7, TOUT = 2 };

typedef struct {
    const mcfg *c;
    sg_store *store;
    sg_rnn *rnn;
    sg_lstm *lstm;
    sg_embedding *emb;
    sg_dense *dense[2];
    sg_onnx_model m;
} tmodel;

/* Fill every parameter of the store with uniform values in [-0.6, 0.6) from seed. */
static void randomize(sg_ctx *ctx, sg_store *store, uint64_t seed) {
    sg_param_list ps = {.ctx = ctx};
    ck_assert_int_eq(sg_params_from_store(&ps, store), 0);
    sg_rng rng;
    sg_rng_seed(&rng, seed);
    for (int i = 0; i < ps.n; i++) {
        sg_tensor *t = ps.items[i].tensor;
        for (int64_t k = 0; k < sg_numel(t); k++)
            sg_set_flat(t, k, 1.2 * sg_rng_uniform(&rng) - 0.6);
    }
    sg_params_clear(&ps);
}

static void tmodel_make(sg_ctx *ctx, tmodel *t, const mcfg *c, uint64_t seed) {
    memset(t, 0, sizeof *t);
    t->c = c;
    t->store = sg_store_new();
    const int64_t I = c->emb ? 4 : TI;
    if (c->emb) {
        t->emb = sg_embedding_new(ctx, t->store, c->dt, TV, I, NULL, NULL, NULL);
        ck_assert_ptr_nonnull(t->emb);
    }
    if (c->lstm_layer) {
        sg_lstm_options o = sg_lstm_defaults(I, TH);
        o.dtype = c->dt;
        o.use_bias = !c->no_bias;
        t->lstm = sg_lstm_new(ctx, t->store, c->impl, &o, NULL, NULL);
        ck_assert_ptr_nonnull(t->lstm);
    } else {
        sg_rnn_options o = sg_rnn_defaults(c->cell, I, TH);
        o.impl = c->impl;
        o.activation = c->act;
        if (c->ract)
            o.recurrent_activation = c->ract;
        o.reset_after = !c->no_reset_after;
        o.num_layers = c->L;
        o.bidirectional = c->bidir;
        o.dtype = c->dt;
        o.use_bias = !c->no_bias;
        t->rnn = sg_rnn_new(ctx, t->store, &o, NULL, NULL);
        ck_assert_msg(t->rnn != NULL, "%s", sg_ctx_error(ctx));
    }
    int64_t width = (c->bidir ? 2 : 1) * TH;
    for (int i = 0; i < c->ndense; i++) {
        int64_t out = i == c->ndense - 1 ? (c->emb ? TV : TOUT) : 5;
        t->dense[i] = sg_dense_new(ctx, t->store, c->dt, width, out, true,
                                   i == c->ndense - 1 ? SG_ACT_LINEAR : SG_ACT_TANH, NULL, NULL);
        ck_assert_ptr_nonnull(t->dense[i]);
        width = out;
    }
    randomize(ctx, t->store, seed);
    t->m = (sg_onnx_model){.embedding = t->emb,
                           .rnn = t->rnn,
                           .lstm = t->lstm,
                           .dense = t->dense,
                           .n_dense = c->ndense,
                           .head = c->head,
                           .lengths = c->lengths,
                           .h0 = c->states,
                           .c0 = c->states,
                           .h_n = !c->lstm_layer,
                           .c_n = !c->lstm_layer};
}

static void tmodel_free(tmodel *t) {
    sg_rnn_free(t->rnn);
    sg_lstm_free(t->lstm);
    sg_embedding_free(t->emb);
    for (int i = 0; i < 2; i++)
        sg_dense_free(t->dense[i]);
    sg_store_free(t->store);
}

/* The model's inputs (values from seed): x (B, T, I) or ids (B, T) int64, lengths (B,)
 * int32, h0 and c0 (L*D, B, H) (NULL where the configuration has none). */
typedef struct {
    sg_tensor *x, *lengths, *h0, *c0;
} tinputs;

static tinputs tinputs_make(sg_ctx *ctx, const tmodel *t, uint64_t seed) {
    const mcfg *c = t->c;
    sg_rng rng;
    sg_rng_seed(&rng, seed);
    tinputs in = {0};
    if (c->emb) {
        in.x = sg_zeros(ctx, SG_I64, SG_SHAPE(TB, TT));
        for (int64_t k = 0; k < TB * TT; k++)
            sg_set_flat(in.x, k, (double)(int)(sg_rng_uniform(&rng) * TV));
    } else {
        in.x = sg_zeros(ctx, c->dt, SG_SHAPE(TB, TT, TI));
        for (int64_t k = 0; k < TB * TT * TI; k++)
            sg_set_flat(in.x, k, 2 * sg_rng_uniform(&rng) - 1);
    }
    if (c->lengths) {
        in.lengths = sg_zeros(ctx, SG_I32, SG_SHAPE(TB));
        const int len[TB] = {TT, 2, 4};
        for (int b = 0; b < TB; b++)
            sg_set_flat(in.lengths, b, len[b]);
    }
    if (c->states) {
        int64_t LD = c->L * (c->bidir ? 2 : 1);
        in.h0 = sg_zeros(ctx, c->dt, SG_SHAPE(LD, TB, TH));
        in.c0 = c->cell == SG_CELL_LSTM ? sg_zeros(ctx, c->dt, SG_SHAPE(LD, TB, TH)) : NULL;
        for (int k = 0; k < 2; k++)
            for (int64_t j = 0; (k ? in.c0 : in.h0) && j < LD * TB * TH; j++)
                sg_set_flat(k ? in.c0 : in.h0, j, sg_rng_uniform(&rng) - 0.5);
    }
    return in;
}

/* seqgrad's outputs: y as the export defines it, h_n and c_n (NULL for an sg_lstm or a cell
 * without c). */
typedef struct {
    sg_tensor *y, *h_n, *c_n;
} toutputs;

static toutputs tmodel_forward(sg_ctx *ctx, tmodel *t, const tinputs *in) {
    const mcfg *c = t->c;
    toutputs out = {0};
    sg_tensor *x = c->emb ? sg_embedding_forward(ctx, t->emb, in->x) : in->x, *cur;
    if (t->lstm) {
        sg_lstm_output o;
        ck_assert_int_eq(sg_lstm_forward(ctx, t->lstm, x, NULL, NULL, &o), 0);
        cur = o.h;
    } else {
        sg_rnn_output o;
        ck_assert_msg(sg_rnn_forward(ctx, t->rnn, x, in->lengths, in->h0, in->c0, &o) == 0, "%s",
                      sg_ctx_error(ctx));
        out.h_n = o.h_n;
        out.c_n = o.c_n;
        cur = o.y;
        if (c->head == SG_ONNX_FINAL_STATE) { /* the last layer's directions, forward first */
            int D = c->bidir ? 2 : 1;
            sg_tensor *parts[2];
            for (int d = 0; d < D; d++)
                parts[d] = sg_select(ctx, o.h_n, 0, (c->L - 1) * D + d);
            cur = D == 2 ? sg_concat(ctx, 2, parts, 1) : parts[0];
        }
    }
    for (int i = 0; i < c->ndense; i++)
        cur = sg_dense_forward(ctx, t->dense[i], cur);
    ck_assert_msg(cur != NULL, "%s", sg_ctx_error(ctx));
    out.y = cur;
    return out;
}

#endif
