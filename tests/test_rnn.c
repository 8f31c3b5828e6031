/* Tests of the recurrent driver (layers/rnn.c) with the LSTM cells: float64 gradchecks through
 * the driver (directions, merge modes, stacking, lengths, given and learned initial states,
 * in place and not); the padding property (a padded batch with lengths gives, for y, h_n, c_n
 * and every gradient, what each sequence gives alone); the dropout kinds (masks fixed over
 * time, reproducible for a seed; zoneout in evaluation is its expectation); the errors. */
#include <check.h>
#include <math.h>
#include <string.h>

#include "cksuite.h"
#include "errtest.h"
#include "layers.h"

static const sg_lstm_impl k_impls[2] = {SG_LSTM_FUSED, SG_LSTM_GATES};

/* An LSTM sg_rnn of float64 with random (nonzero) biases from seed. */
static sg_rnn *new_rnn(sg_ctx *ctx, sg_store *store, sg_rnn_options o, uint64_t seed) {
    sg_rng rng;
    sg_rng_seed(&rng, seed);
    o.bias_initializer = sg_init_default(SG_INIT_GLOROT_UNIFORM);
    sg_rnn *r = sg_rnn_new(ctx, store, &o, NULL, &rng);
    ck_assert_msg(r != NULL, "sg_rnn_new: %s", sg_ctx_error(ctx));
    return r;
}

static sg_tensor *randn(sg_ctx *ctx, int ndim, const int64_t *shape, double sd) {
    return sg_rand_normal(ctx, SG_F64, ndim, shape, 0, sd);
}

/* y, h_n and c_n flattened into one vector. */
static sg_tensor *flat_all(sg_ctx *ctx, const sg_rnn_output *out) {
    sg_tensor *parts[3] = {sg_reshape(ctx, out->y, SG_SHAPE(-1)),
                           sg_reshape(ctx, out->h_n, SG_SHAPE(-1)),
                           out->c_n ? sg_reshape(ctx, out->c_n, SG_SHAPE(-1)) : NULL};
    return sg_concat(ctx, out->c_n ? 3 : 2, parts, 0);
}

/* ---- gradcheck ---------------------------------------------------------------------------- */

typedef struct {
    int layers;
    bool bidir;
    sg_merge_mode merge;
    bool lengths, given, learned, sequences;
} gc_case;

static const gc_case k_cases[] = {
    {1, false, SG_MERGE_CONCAT, false, false, false, true},
    {1, false, SG_MERGE_CONCAT, true, true, false, true},
    {1, true, SG_MERGE_CONCAT, true, false, false, true},
    {1, true, SG_MERGE_SUM, false, true, false, true},
    {1, true, SG_MERGE_MUL, true, false, false, true},
    {1, true, SG_MERGE_AVE, true, false, false, true},
    {2, true, SG_MERGE_CONCAT, true, true, false, true},
    {2, false, SG_MERGE_CONCAT, true, false, true, true},
    {1, true, SG_MERGE_CONCAT, true, false, true, false},
};
#define N_CASES ((int)(sizeof k_cases / sizeof k_cases[0]))

typedef struct {
    sg_rnn *r;
    sg_tensor *lengths;
    int h0, c0; /* input index of h0 and c0, or -1 */
} gc_user;

static sg_tensor *gc_fn(sg_ctx *ctx, sg_tensor *const *in, void *user) {
    gc_user *u = user;
    sg_rnn_output out;
    if (sg_rnn_forward(ctx, u->r, in[0], u->lengths, u->h0 >= 0 ? in[u->h0] : NULL,
                       u->c0 >= 0 ? in[u->c0] : NULL, &out))
        return NULL;
    return flat_all(ctx, &out);
}

/* Gradcheck gc_fn over the n inputs (made to require grad; every one must pass), then free
 * the layer, its parameter list, store and context. */
static void gradcheck_free(sg_ctx *ctx, sg_store *store, sg_rnn *r, sg_param_list *pl, gc_user *u,
                           int n, sg_tensor **in, int case_i) {
    for (int i = 0; i < n; i++)
        sg_set_requires_grad(in[i], true);
    sg_gradcheck_opts opts = {.eps = 1e-6, .atol = 1e-8, .rtol = 1e-6, .seed = 3};
    sg_gradcheck_report rep[48];
    ck_assert_int_le(n, 48);
    int rc = sg_gradcheck(ctx, gc_fn, u, n, in, &opts, rep);
    ck_assert_msg(rc >= 0, "sg_gradcheck: %s", sg_ctx_error(ctx));
    for (int i = 0; i < n; i++)
        ck_assert_msg(rep[i].ok, "case %d input %d: element %lld analytic %.10g numeric %.10g",
                      case_i, i, (long long)rep[i].worst_flat, rep[i].analytic, rep[i].numeric);
    sg_params_clear(pl);
    sg_rnn_free(r);
    sg_store_free(store);
    sg_ctx_free(ctx);
}

START_TEST(test_gradcheck) {
    const gc_case *k = &k_cases[_i % N_CASES];
    sg_lstm_impl impl = k_impls[(_i / N_CASES) % 2];
    bool ip = _i >= 2 * N_CASES;
    int64_t B = 3, T = 4, I = 2, H = 3;
    sg_ctx *ctx = sg_ctx_new(0);
    sg_store *store = sg_store_new();
    sg_rng_seed(sg_ctx_rng(ctx), 77 + (uint64_t)_i);
    sg_rnn_options o = sg_rnn_defaults(SG_CELL_LSTM, I, H);
    o.impl = impl;
    o.dtype = SG_F64;
    o.num_layers = k->layers;
    o.bidirectional = k->bidir;
    o.merge = k->merge;
    o.return_sequences = k->sequences;
    o.initial_state = k->learned ? SG_STATE_LEARNED : SG_STATE_ZEROS;
    o.in_place = ip ? SG_IN_PLACE_ALWAYS : SG_IN_PLACE_NEVER;
    sg_rnn *r = new_rnn(ctx, store, o, 5 + (uint64_t)_i);
    int D = k->bidir ? 2 : 1;
    sg_tensor *in[48] = {randn(ctx, SG_SHAPE(B, T, I), 1.0)};
    int n = 1;
    gc_user u = {r, NULL, -1, -1};
    if (k->lengths)
        u.lengths = sg_from_data(ctx, SG_I64, SG_SHAPE(B), (int64_t[]){4, 2, 3});
    if (k->given) {
        u.h0 = n;
        in[n++] = randn(ctx, SG_SHAPE(k->layers * D, B, H), 0.5);
        u.c0 = n;
        in[n++] = randn(ctx, SG_SHAPE(k->layers * D, B, H), 0.5);
    }
    sg_param_list pl = {0};
    ck_assert_int_eq(sg_rnn_params(r, &pl), 0);
    for (int i = 0; i < pl.n; i++) {
        if (strstr(pl.items[i].name, ".h0") || strstr(pl.items[i].name, ".c0"))
            ck_assert_int_eq(
                sg_copy_values(pl.items[i].tensor, randn(ctx, 2, pl.items[i].tensor->shape, 0.5)),
                0);
        in[n++] = pl.items[i].tensor;
    }
    ck_assert_int_eq(pl.n, (impl == SG_LSTM_FUSED ? 3 : 8) * k->layers * D + (k->learned ? 2 : 0));
    gradcheck_free(ctx, store, r, &pl, &u, n, in, _i);
}
END_TEST

/* The GRU (reset_after true and false) and SimpleRNN (tanh, relu) cells through the driver:
 * stacked, bidirectional, with lengths and a given h0, in place or not. _i: bits 0-1 the
 * cell, bit 2 in place. */
START_TEST(test_gradcheck_gru_rnn) {
    int cell = _i & 3;
    int64_t B = 3, T = 4, I = 2, H = 3;
    sg_ctx *ctx = sg_ctx_new(0);
    sg_store *store = sg_store_new();
    sg_rng_seed(sg_ctx_rng(ctx), 91 + (uint64_t)_i);
    sg_rnn_options o = sg_rnn_defaults(cell < 2 ? SG_CELL_GRU : SG_CELL_RNN, I, H);
    o.dtype = SG_F64;
    o.reset_after = cell == 0;
    o.activation = cell == 3 ? SG_ACT_RELU : SG_ACT_TANH;
    o.num_layers = 2;
    o.bidirectional = true;
    o.in_place = _i & 4 ? SG_IN_PLACE_ALWAYS : SG_IN_PLACE_NEVER;
    sg_rnn *r = new_rnn(ctx, store, o, 13 + (uint64_t)_i);
    sg_tensor *in[16] = {randn(ctx, SG_SHAPE(B, T, I), 1.0), randn(ctx, SG_SHAPE(4, B, H), 0.5)};
    int n = 2;
    gc_user u = {r, sg_from_data(ctx, SG_I64, SG_SHAPE(B), (int64_t[]){4, 2, 3}), 1, -1};
    sg_param_list pl = {0};
    ck_assert_int_eq(sg_rnn_params(r, &pl), 0);
    ck_assert_int_eq(pl.n, 3 * 2 * 2);
    for (int i = 0; i < pl.n; i++)
        in[n++] = pl.items[i].tensor;
    gradcheck_free(ctx, store, r, &pl, &u, n, in, _i);
}
END_TEST

/* ---- the padding property ------------------------------------------------------------------- */

/* |a - b| <= 1e-12 (1 + |b|) for every element of a (B-strided views allowed). */
static void expect_close(const sg_tensor *a, const sg_tensor *b, const char *what) {
    ck_assert_ptr_nonnull(a);
    ck_assert_ptr_nonnull(b);
    ck_assert_int_eq(sg_numel(a), sg_numel(b));
    for (int64_t i = 0; i < sg_numel(a); i++) {
        double x = sg_get_flat(a, i), y = sg_get_flat(b, i);
        ck_assert_msg(fabs(x - y) <= 1e-12 * (1 + fabs(y)), "%s[%lld]: %.17g vs %.17g", what,
                      (long long)i, x, y);
    }
}

static void expect_zero(const sg_tensor *a, const char *what) {
    for (int64_t i = 0; i < sg_numel(a); i++)
        ck_assert_msg(sg_get_flat(a, i) == 0.0, "%s[%lld] = %g, not 0", what, (long long)i,
                      sg_get_flat(a, i));
}

/* L = sum(y * wy) + sum(h_n * wh) + sum(c_n * wc) for the layer on x with lengths, h0, c0. */
static void run_loss(sg_ctx *ctx, sg_rnn *r, sg_tensor *x, sg_tensor *len, sg_tensor *h0,
                     sg_tensor *c0, sg_tensor *wy, sg_tensor *wh, sg_tensor *wc,
                     sg_rnn_output *out) {
    ck_assert_msg(sg_rnn_forward(ctx, r, x, len, h0, c0, out) == 0, "%s", sg_ctx_error(ctx));
    sg_tensor *l = sg_add(ctx, sg_sum(ctx, sg_mul(ctx, out->y, wy)),
                          sg_add(ctx, sg_sum(ctx, sg_mul(ctx, out->h_n, wh)),
                                 sg_sum(ctx, sg_mul(ctx, out->c_n, wc))));
    ck_assert_int_eq(sg_backward(ctx, l, NULL), 0);
}

START_TEST(test_padding_property) {
    sg_lstm_impl impl = k_impls[_i % 2];
    bool bidir = (_i / 2) % 2, stacked = (_i / 4) % 2, ip = _i >= 8;
    const int64_t B = 3, T = 5, I = 2, H = 3, len[3] = {5, 2, 4};
    int L = stacked ? 2 : 1, D = bidir ? 2 : 1;
    sg_ctx *ctx = sg_ctx_new(0);
    sg_store *store = sg_store_new();
    sg_rng_seed(sg_ctx_rng(ctx), 300 + (uint64_t)_i);
    sg_rnn_options o = sg_rnn_defaults(SG_CELL_LSTM, I, H);
    o.impl = impl;
    o.dtype = SG_F64;
    o.num_layers = L;
    o.bidirectional = bidir;
    o.in_place = ip ? SG_IN_PLACE_ALWAYS : SG_IN_PLACE_NEVER;
    sg_rnn *r = new_rnn(ctx, store, o, 9);
    int64_t Y = D * H;
    sg_tensor *x = sg_set_requires_grad(randn(ctx, SG_SHAPE(B, T, I), 1.0), true);
    /* garbage in the padding: it must not matter */
    sg_tensor *h0 = sg_set_requires_grad(randn(ctx, SG_SHAPE(L * D, B, H), 0.5), true);
    sg_tensor *c0 = sg_set_requires_grad(randn(ctx, SG_SHAPE(L * D, B, H), 0.5), true);
    sg_tensor *wy = randn(ctx, SG_SHAPE(B, T, Y), 1.0);
    sg_tensor *wh = randn(ctx, SG_SHAPE(L * D, B, H), 1.0);
    sg_tensor *wc = randn(ctx, SG_SHAPE(L * D, B, H), 1.0);
    sg_tensor *lengths = sg_from_data(ctx, SG_I64, SG_SHAPE(B), len);
    sg_rnn_output out;
    run_loss(ctx, r, x, lengths, h0, c0, wy, wh, wc, &out);
    sg_param_list pl = {0};
    ck_assert_int_eq(sg_rnn_params(r, &pl), 0);
    /* the batch's parameter gradients, then each sequence's summed */
    sg_tensor *gsum[40], *gbatch[40];
    for (int i = 0; i < pl.n; i++) {
        sg_tensor *p = pl.items[i].tensor;
        gbatch[i] = sg_zeros(ctx, SG_F64, p->ndim, p->shape);
        ck_assert_int_eq(sg_copy_values(gbatch[i], p->grad), 0);
        gsum[i] = sg_zeros(ctx, SG_F64, p->ndim, p->shape);
    }
    bool was = sg_ctx_set_grad_enabled(ctx, false);
    for (int64_t b = 0; b < B; b++) {
        int64_t n = len[b];
        sg_store_zero_grad(store);
        sg_tensor *xb = sg_set_requires_grad(
            sg_contiguous(ctx, sg_slice(ctx, sg_slice(ctx, x, 0, b, 1), 1, 0, n)), true);
        sg_tensor *h0b = sg_set_requires_grad(sg_contiguous(ctx, sg_slice(ctx, h0, 1, b, 1)), true);
        sg_tensor *c0b = sg_set_requires_grad(sg_contiguous(ctx, sg_slice(ctx, c0, 1, b, 1)), true);
        sg_tensor *wyb = sg_contiguous(ctx, sg_slice(ctx, sg_slice(ctx, wy, 0, b, 1), 1, 0, n));
        sg_tensor *whb = sg_contiguous(ctx, sg_slice(ctx, wh, 1, b, 1));
        sg_tensor *wcb = sg_contiguous(ctx, sg_slice(ctx, wc, 1, b, 1));
        sg_ctx_set_grad_enabled(ctx, true);
        sg_rnn_output ob;
        run_loss(ctx, r, xb, NULL, h0b, c0b, wyb, whb, wcb, &ob);
        sg_ctx_set_grad_enabled(ctx, false);
        sg_tensor *yb = sg_slice(ctx, out.y, 0, b, 1);
        expect_close(sg_slice(ctx, yb, 1, 0, n), ob.y, "y");
        if (n < T)
            expect_zero(sg_slice(ctx, yb, 1, n, T - n), "y padding");
        expect_close(sg_slice(ctx, out.h_n, 1, b, 1), ob.h_n, "h_n");
        expect_close(sg_slice(ctx, out.c_n, 1, b, 1), ob.c_n, "c_n");
        sg_tensor *gx = sg_slice(ctx, x->grad, 0, b, 1);
        expect_close(sg_slice(ctx, gx, 1, 0, n), xb->grad, "dx");
        if (n < T)
            expect_zero(sg_slice(ctx, gx, 1, n, T - n), "dx padding");
        expect_close(sg_slice(ctx, h0->grad, 1, b, 1), h0b->grad, "dh0");
        expect_close(sg_slice(ctx, c0->grad, 1, b, 1), c0b->grad, "dc0");
        for (int i = 0; i < pl.n; i++)
            gsum[i] = sg_add(ctx, gsum[i], pl.items[i].tensor->grad);
    }
    for (int i = 0; i < pl.n; i++)
        expect_close(gbatch[i], gsum[i], pl.items[i].name);
    sg_ctx_set_grad_enabled(ctx, was);
    sg_params_clear(&pl);
    sg_rnn_free(r);
    sg_store_free(store);
    sg_ctx_free(ctx);
}
END_TEST

/* ---- dropout kinds ---------------------------------------------------------------------- */

/* With one sequence, a feature dropped by the input mask (or a unit by the recurrent mask)
 * at every step gives an all-zero row of kernel's (recurrent_kernel's) gradient; a mask
 * drawn afresh per step would not. Some rows are zero, some not; the same seed gives the same
 * output bit for bit. */
START_TEST(test_dropout_masks_fixed) {
    bool recurrent = _i % 2;
    int64_t T = 6, I = 8, H = 8;
    double y1 = 0;
    for (int rep = 0; rep < 2; rep++) {
        sg_ctx *ctx = sg_ctx_new(0);
        sg_store *store = sg_store_new();
        sg_rnn_options o = sg_rnn_defaults(SG_CELL_LSTM, I, H);
        o.dtype = SG_F64;
        o.impl = k_impls[_i / 2];
        if (recurrent)
            o.recurrent_dropout = 0.5;
        else
            o.dropout = 0.5;
        sg_rnn *r = new_rnn(ctx, store, o, 3);
        sg_rng_seed(sg_ctx_rng(ctx), 11);
        sg_tensor *x = sg_set_requires_grad(randn(ctx, SG_SHAPE(1, T, I), 1.0), true);
        sg_rnn_output out;
        ck_assert_int_eq(sg_rnn_forward(ctx, r, x, NULL, NULL, NULL, &out), 0);
        ck_assert_int_eq(sg_backward(ctx, sg_sum(ctx, out.y), NULL), 0);
        double y = sg_get_flat(sg_sum(ctx, out.y), 0);
        if (rep)
            ck_assert_msg(y == y1, "same seed, different outputs %.17g %.17g", y, y1);
        y1 = y;
        int zero = 0, rows = recurrent ? (int)H : (int)I;
        for (int j = 0; j < rows; j++) {
            double s = 0;
            if (o.impl == SG_LSTM_FUSED) {
                sg_tensor *g =
                    sg_store_find(store, recurrent ? "lstm.recurrent_kernel" : "lstm.kernel")->grad;
                for (int64_t c = 0; c < 4 * H; c++)
                    s += fabs(sg_get_flat(g, j * 4 * H + c));
            } else { /* W_g rows: h first, then x */
                const char *w[4] = {"lstm.W_i", "lstm.W_f", "lstm.W_c", "lstm.W_o"};
                for (int g = 0; g < 4; g++) {
                    sg_tensor *gr = sg_store_find(store, w[g])->grad;
                    int64_t row = recurrent ? j : H + j;
                    for (int64_t c = 0; c < H; c++)
                        s += fabs(sg_get_flat(gr, row * H + c));
                }
            }
            zero += s == 0;
        }
        ck_assert_msg(zero > 0 && zero < rows, "%d of %d rows zero", zero, rows);
        /* evaluation: no masks, the same output as without dropout */
        sg_ctx_set_training(ctx, false);
        sg_rnn_output oe;
        ck_assert_int_eq(sg_rnn_forward(ctx, r, x, NULL, NULL, NULL, &oe), 0);
        sg_rnn_options o0 = o;
        o0.dropout = o0.recurrent_dropout = 0;
        sg_store *s2 = sg_store_new();
        sg_rnn *r0 = new_rnn(ctx, s2, o0, 3);
        sg_rnn_output o2;
        ck_assert_int_eq(sg_rnn_forward(ctx, r0, x, NULL, NULL, NULL, &o2), 0);
        expect_close(oe.y, o2.y, "eval y");
        sg_rnn_free(r0);
        sg_store_free(s2);
        sg_rnn_free(r);
        sg_store_free(store);
        sg_ctx_free(ctx);
    }
}
END_TEST

/* In evaluation, zoneout is its expectation: h = p h_prev + (1 - p) h_new (and c), which a
 * step-by-step run of the same weights without zoneout reproduces. */
START_TEST(test_zoneout_eval) {
    int64_t B = 2, T = 4, I = 3, H = 4;
    double ph = 0.3, pc = 0.2;
    sg_ctx *ctx = sg_ctx_new(0);
    sg_ctx_set_training(ctx, false);
    sg_store *store = sg_store_new();
    sg_rnn_options o = sg_rnn_defaults(SG_CELL_LSTM, I, H);
    o.dtype = SG_F64;
    o.impl = k_impls[_i];
    o.zoneout_h = ph;
    o.zoneout_c = pc;
    sg_rnn *r = new_rnn(ctx, store, o, 21);
    sg_rnn_options o0 = o;
    o0.zoneout_h = o0.zoneout_c = 0;
    sg_rnn *r0 = new_rnn(ctx, store, o0, 21);
    sg_tensor *x = randn(ctx, SG_SHAPE(B, T, I), 1.0);
    sg_rnn_output out;
    ck_assert_int_eq(sg_rnn_forward(ctx, r, x, NULL, NULL, NULL, &out), 0);
    sg_tensor *h = sg_zeros(ctx, SG_F64, SG_SHAPE(1, B, H)), *c = h, *hs[8];
    for (int64_t t = 0; t < T; t++) {
        sg_rnn_output s;
        ck_assert_int_eq(sg_rnn_forward(ctx, r0, sg_slice(ctx, x, 1, t, 1), NULL, h, c, &s), 0);
        h = sg_add(ctx, sg_scale(ctx, h, ph), sg_scale(ctx, s.h_n, 1 - ph));
        c = sg_add(ctx, sg_scale(ctx, c, pc), sg_scale(ctx, s.c_n, 1 - pc));
        hs[t] = sg_select(ctx, h, 0, 0);
    }
    expect_close(out.y, sg_stack(ctx, (int)T, hs, 1), "y");
    expect_close(out.c_n, c, "c_n");
    sg_rnn_free(r0);
    sg_rnn_free(r);
    sg_store_free(store);
    sg_ctx_free(ctx);
}
END_TEST

/* ---- names, shapes, errors ---------------------------------------------------------------- */

START_TEST(test_names_and_shapes) {
    sg_ctx *ctx = sg_ctx_new(0);
    sg_store *store = sg_store_new();
    sg_rnn_options o = sg_rnn_defaults(SG_CELL_LSTM, 2, 3);
    o.num_layers = 2;
    o.bidirectional = true;
    sg_rnn *a = sg_rnn_new(ctx, store, &o, NULL, NULL);
    sg_rnn *b = sg_rnn_new(ctx, store, &o, NULL, NULL);
    ck_assert_ptr_nonnull(a);
    ck_assert_ptr_nonnull(b);
    ck_assert_ptr_nonnull(sg_store_find(store, "lstm.l0.kernel"));
    ck_assert_ptr_nonnull(sg_store_find(store, "lstm.l1_reverse.recurrent_kernel"));
    ck_assert_ptr_nonnull(sg_store_find(store, "lstm_1.l1.bias"));
    /* layer 1 reads both directions of layer 0: (2H, 4H) */
    ck_assert_int_eq(sg_store_find(store, "lstm.l1.kernel")->shape[0], 6);
    sg_rnn_output out;
    sg_tensor *x = sg_ones(ctx, SG_F32, SG_SHAPE(4, 5, 2));
    ck_assert_int_eq(sg_rnn_forward(ctx, a, x, NULL, NULL, NULL, &out), 0);
    ck_assert_int_eq(out.y->shape[2], 6);
    ck_assert_int_eq(out.h_n->shape[0], 4);
    ck_assert_int_eq(out.c_n->shape[1], 4);
    /* PyTorch's state_dict round trip: names and values */
    sg_param_list sd = {0};
    ck_assert_int_eq(sg_rnn_get_torch(ctx, a, false, &sd), 0);
    ck_assert_int_eq(sd.n, 16);
    ck_assert_ptr_nonnull(sg_params_find(&sd, "weight_hh_l1_reverse"));
    ck_assert_int_eq(sg_rnn_set_torch(ctx, b, &sd), 0);
    sg_rnn_output ob;
    ck_assert_int_eq(sg_rnn_forward(ctx, b, x, NULL, NULL, NULL, &ob), 0);
    expect_close(ob.y, out.y, "y of the copy");
    sg_params_clear(&sd);
    sg_rnn_free(a);
    sg_rnn_free(b);
    sg_store_free(store);
    sg_ctx_free(ctx);
}
END_TEST

START_TEST(test_errors) {
    sg_ctx *ctx = sg_ctx_new(0);
    sg_store *store = sg_store_new();
    sg_rnn_options o = sg_rnn_defaults(SG_CELL_LSTM, 2, 3);
    o.bidirectional = true;
    sg_rnn *r = sg_rnn_new(ctx, store, &o, NULL, NULL);
    sg_rnn_output out;
    sg_tensor *x = sg_ones(ctx, SG_F32, SG_SHAPE(2, 4, 2));
    ck_assert_int_eq(sg_rnn_forward(ctx, r, x,
                                    sg_from_data(ctx, SG_I64, SG_SHAPE(2), (int64_t[]){4, 0}), NULL,
                                    NULL, &out),
                     -1);
    EXPECT_ERR(ctx, "sg_rnn_forward (lstm): lengths[1] = 0 outside 1..4");
    ck_assert_ptr_null(out.y);
    ck_assert_int_eq(sg_rnn_forward(ctx, r, x,
                                    sg_from_data(ctx, SG_I32, SG_SHAPE(2), (int32_t[]){5, 1}), NULL,
                                    NULL, &out),
                     -1);
    EXPECT_ERR(ctx, "sg_rnn_forward (lstm): lengths[0] = 5 outside 1..4");
    ck_assert_int_eq(sg_rnn_forward(ctx, r, x,
                                    sg_from_data(ctx, SG_I64, SG_SHAPE(3), (int64_t[]){1, 2, 3}),
                                    NULL, NULL, &out),
                     -1);
    EXPECT_ERR(ctx, "sg_rnn_forward (lstm): lengths has shape (3,), expected (2,)");
    ck_assert_int_eq(sg_rnn_forward(ctx, r, x, sg_ones(ctx, SG_F32, SG_SHAPE(2)), NULL, NULL, &out),
                     -1);
    EXPECT_ERR(ctx, "sg_rnn_forward (lstm): lengths is float32, expected int64 or int32");
    ck_assert_int_eq(
        sg_rnn_forward(ctx, r, x, NULL, sg_ones(ctx, SG_F32, SG_SHAPE(1, 2, 3)), NULL, &out), -1);
    EXPECT_ERR(ctx, "sg_rnn_forward (lstm): h0 has shape (1, 2, 3), expected (2, 2, 3)");
    ck_assert_int_eq(
        sg_rnn_forward(ctx, r, sg_ones(ctx, SG_F32, SG_SHAPE(2, 4, 3)), NULL, NULL, NULL, &out),
        -1);
    EXPECT_ERR(ctx, "sg_rnn_forward (lstm): x has shape (2, 4, 3), expected (B, T, 2), B, T > 0");
    ck_assert_int_eq(
        sg_rnn_forward(ctx, r, sg_ones(ctx, SG_F64, SG_SHAPE(2, 4, 2)), NULL, NULL, NULL, &out),
        -1);
    EXPECT_ERR(ctx, "sg_rnn_forward (lstm): x is float64, the layer is float32");
    sg_param_list sd = {0};
    ck_assert_int_eq(sg_rnn_set_torch(ctx, r, &sd), -1);
    EXPECT_ERR(ctx, "sg_rnn_set_torch (lstm): the state_dict has no weight_ih_l0");
    o.dropout = 1.5;
    ck_assert_ptr_null(sg_rnn_new(ctx, store, &o, "bad", NULL));
    EXPECT_ERR(ctx, "sg_rnn_new (bad): dropout 1.5, recurrent_dropout 0, layer_dropout 0: each "
                    "in [0, 1)");
    o.dropout = 0;
    o.num_layers = 0;
    ck_assert_ptr_null(sg_rnn_new(ctx, store, &o, "bad", NULL));
    EXPECT_ERR(ctx, "sg_rnn_new (bad): num_layers = 0 outside 1..99");
    ck_assert_int_eq(sg_store_size(store), 6);
    sg_rnn_free(r);
    sg_store_free(store);
    sg_ctx_free(ctx);
}
END_TEST

/* ---- the layer-normalised LSTM ----------------------------------------------------------------
 */

/* Gradcheck through the driver (one direction with lengths and a given state; two layers both
 * ways), the normalisations' parameters listed and drawn as documented, the refusals. */
START_TEST(test_layer_norm_lstm) {
    int64_t B = 3, T = 4, I = 2, H = 3;
    sg_ctx *ctx = sg_ctx_new(0);
    sg_store *store = sg_store_new();
    sg_rng_seed(sg_ctx_rng(ctx), 91 + (uint64_t)_i);
    sg_rnn_options o = sg_rnn_defaults(SG_CELL_LSTM, I, H);
    o.dtype = SG_F64;
    o.layer_norm = true;
    o.num_layers = _i == 0 ? 1 : 2;
    o.bidirectional = _i == 1;
    o.in_place = _i == 1 ? SG_IN_PLACE_ALWAYS : SG_IN_PLACE_AUTO; /* asks for time-major */
    sg_rnn *r = new_rnn(ctx, store, o, 17 + (uint64_t)_i);
    int D = o.bidirectional ? 2 : 1;
    sg_tensor *in[64] = {randn(ctx, SG_SHAPE(B, T, I), 1.0)};
    int n = 1;
    gc_user u = {r, sg_from_data(ctx, SG_I64, SG_SHAPE(B), (int64_t[]){4, 2, 3}), -1, -1};
    if (_i == 0) {
        u.h0 = n;
        in[n++] = randn(ctx, SG_SHAPE(o.num_layers * D, B, H), 0.5);
        u.c0 = n;
        in[n++] = randn(ctx, SG_SHAPE(o.num_layers * D, B, H), 0.5);
    }
    sg_param_list pl = {0};
    ck_assert_int_eq(sg_rnn_params(r, &pl), 0);
    /* kernel, recurrent_kernel, bias and three gains and biases per layer and direction */
    ck_assert_int_eq(pl.n, 9 * o.num_layers * D);
    const char *want = _i == 0 ? "lstm.ln_c.bias" : "lstm.l0_reverse.ln_x.gain";
    bool found = false;
    for (int i = 0; i < pl.n; i++) {
        found |= !strcmp(pl.items[i].name, want);
        if (strstr(pl.items[i].name, ".ln_")) { /* gains start at 1, biases at 0 */
            ck_assert_double_eq(sg_get_flat(pl.items[i].tensor, 0),
                                strstr(pl.items[i].name, "gain") ? 1.0 : 0.0);
            /* perturb them so that the check sees every path */
            ck_assert_int_eq(
                sg_copy_values(pl.items[i].tensor, randn(ctx, 1, pl.items[i].tensor->shape, 0.5)),
                0);
            ck_assert_int_eq(sg_axpy(pl.items[i].tensor, 1.0,
                                     sg_ones(ctx, SG_F64, 1, pl.items[i].tensor->shape)),
                             0);
        }
        in[n++] = pl.items[i].tensor;
    }
    ck_assert_msg(found, "no parameter %s", want);
    for (int i = 0; i < n; i++)
        sg_set_requires_grad(in[i], true);
    sg_gradcheck_opts opts = {.eps = 1e-6, .atol = 1e-8, .rtol = 1e-6, .seed = 5};
    sg_gradcheck_report rep[64];
    int rc = sg_gradcheck(ctx, gc_fn, &u, n, in, &opts, rep);
    ck_assert_msg(rc >= 0, "sg_gradcheck: %s", sg_ctx_error(ctx));
    for (int i = 0; i < n; i++)
        ck_assert_msg(rep[i].ok, "case %d input %d: element %lld analytic %.10g numeric %.10g", _i,
                      i, (long long)rep[i].worst_flat, rep[i].analytic, rep[i].numeric);
    sg_params_clear(&pl);
    /* no PyTorch layout; only the fused LSTM */
    sg_param_list sd = {0};
    ck_assert_int_eq(sg_rnn_get_torch(ctx, r, false, &sd), -1);
    ck_assert_ptr_nonnull(strstr(sg_ctx_error(ctx), "PyTorch has no such layer"));
    sg_ctx_clear_error(ctx);
    sg_params_clear(&sd);
    o.impl = SG_LSTM_GATES;
    ck_assert_ptr_null(sg_rnn_new(ctx, store, &o, "g", NULL));
    ck_assert_ptr_nonnull(strstr(sg_ctx_error(ctx), "layer_norm needs an LSTM in the fused"));
    sg_rnn_free(r);
    sg_store_free(store);
    sg_ctx_free(ctx);
}
END_TEST

int main(void) {
    const ck_tcase tcases[] = {
        {"rnn",
         600,
         {{test_gradcheck, 4 * N_CASES},
          {test_gradcheck_gru_rnn, 8},
          {test_padding_property, 16},
          {test_dropout_masks_fixed, 4},
          {test_zoneout_eval, 2},
          {test_names_and_shapes, 1},
          {test_errors, 1},
          {test_layer_norm_lstm, 2}}},
    };
    return CK_RUN("rnn", tcases, NULL, NULL);
}
