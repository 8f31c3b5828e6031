/* Tests of layers/embedding.c: Keras names, the uniform +-0.05 initializer, lookups of ids of
 * any shape, strides and integer dtype, loading a (vocab, dim) table (Keras' embeddings and
 * PyTorch's weight share the layout), PyTorch's padding_idx (zeroed at creation, no
 * gradient, value still looked up) against tests/fixtures/index.h, Keras' mask_zero as
 * lengths with its refusal of padding in the middle, and every error message. */
#include <check.h>
#include <math.h>
#include <string.h>

#include "layers/layers.h"

#include "cksuite.h"
#include "ctxtest.h"
#include "fixtures/index.h"
#include "tensortest.h"

static sg_store *store;

static void setup_all(void) {
    setup();
    store = sg_store_new();
}
static void teardown_all(void) {
    sg_store_free(store);
    store = NULL;
    teardown();
}

/* A table whose row r is (10 r, 10 r + 1, ...). */
static void set_rows(sg_embedding *e) {
    sg_tensor *w = sg_tensor_new(ctx, SG_F64, SG_SHAPE(e->vocab, e->dim));
    for (int64_t i = 0; i < sg_numel(w); i++)
        sg_set_flat(w, i, (double)(10 * (i / e->dim) + i % e->dim));
    ck_assert_int_eq(sg_embedding_set(ctx, e, w), 0);
}

START_TEST(test_names_and_init) {
    sg_embedding *a = sg_embedding_new(ctx, store, SG_F32, 50, 8, NULL, NULL, NULL);
    sg_embedding *b = sg_embedding_new(ctx, store, SG_F32, 5, 2, NULL, NULL, NULL);
    sg_embedding *c = sg_embedding_new(ctx, store, SG_F32, 5, 2, NULL, "tokens", NULL);
    ck_assert_ptr_nonnull(a);
    ck_assert_ptr_nonnull(b);
    ck_assert_ptr_nonnull(c);
    ck_assert_str_eq(a->name, "embedding");
    ck_assert_str_eq(b->name, "embedding_1");
    ck_assert_ptr_eq(sg_store_find(store, "embedding.embeddings"), a->embeddings);
    ck_assert_ptr_eq(sg_store_find(store, "embedding_1.embeddings"), b->embeddings);
    ck_assert_ptr_eq(sg_store_find(store, "tokens.embeddings"), c->embeddings);
    ck_assert_int_eq(a->embeddings->shape[0], 50);
    ck_assert_int_eq(a->embeddings->shape[1], 8);
    /* Keras' uniform in [-0.05, 0.05): in range, spread over it */
    double lo = 1, hi = -1;
    for (int64_t i = 0; i < 400; i++) {
        double v = sg_get_flat(a->embeddings, i);
        ck_assert(v >= -0.05 && v < 0.05);
        lo = fmin(lo, v), hi = fmax(hi, v);
    }
    ck_assert(lo < -0.04 && hi > 0.04);
    sg_param_list list = {0};
    ck_assert_int_eq(sg_embedding_params(c, &list), 0);
    ck_assert_int_eq(list.n, 1);
    ck_assert_str_eq(list.items[0].name, "tokens.embeddings");
    sg_params_clear(&list);
    /* another initializer */
    sg_embedding_options o = sg_embedding_defaults();
    o.initializer = sg_init_default(SG_INIT_ONES);
    sg_embedding *d = sg_embedding_new(ctx, store, SG_F32, 3, 2, &o, NULL, NULL);
    expect_vals(d->embeddings, (const double[]){1, 1, 1, 1, 1, 1}, 0);
    ck_assert_str_eq(d->name, "embedding_2");
    /* padding rows zeroed at creation, negative padding_idx from the end */
    o.padding_idx = -1;
    sg_embedding *p = sg_embedding_new(ctx, store, SG_F32, 3, 2, &o, NULL, NULL);
    ck_assert_int_eq(p->padding_idx, 2);
    expect_vals(p->embeddings, (const double[]){1, 1, 1, 1, 0, 0}, 0);
    o.padding_idx = 0;
    sg_embedding *q = sg_embedding_new(ctx, store, SG_F32, 3, 2, &o, NULL, NULL);
    expect_vals(q->embeddings, (const double[]){0, 0, 1, 1, 1, 1}, 0);
    ck_no_error();
    sg_embedding_free(a), sg_embedding_free(b), sg_embedding_free(c), sg_embedding_free(d);
    sg_embedding_free(p), sg_embedding_free(q);
}
END_TEST

START_TEST(test_forward_values) {
    static const sg_dtype fts[2] = {SG_F32, SG_F64}, its[2] = {SG_I64, SG_I32};
    for (int di = 0; di < 2; di++)
        for (int ii = 0; ii < 2; ii++) {
            sg_store *s = sg_store_new();
            sg_embedding *e = sg_embedding_new(ctx, s, fts[di], 4, 2, NULL, NULL, NULL);
            set_rows(e);
            sg_tensor *ids =
                mk_int(ctx, its[ii], SG_SHAPE(2, 3), (const int64_t[]){3, 0, 3, 1, 2, 0});
            sg_tensor *y = sg_embedding_forward(ctx, e, ids);
            ck_assert_ptr_nonnull(y);
            ck_assert_int_eq(y->ndim, 3);
            ck_assert_int_eq(y->shape[0], 2);
            ck_assert_int_eq(y->shape[1], 3);
            ck_assert_int_eq(y->shape[2], 2);
            expect_vals(y, (const double[]){30, 31, 0, 1, 30, 31, 10, 11, 20, 21, 0, 1}, 0);
            /* strided ids (transposed) and a 0-d id */
            y = sg_embedding_forward(ctx, e, sg_transpose(ctx, ids, 0, 1));
            ck_assert_int_eq(y->shape[0], 3);
            expect_vals(y, (const double[]){30, 31, 10, 11, 0, 1, 20, 21, 30, 31, 0, 1}, 0);
            y = sg_embedding_forward(ctx, e, sg_select(ctx, sg_select(ctx, ids, 0, 1), 0, 1));
            ck_assert_int_eq(y->ndim, 1);
            expect_vals(y, (const double[]){20, 21}, 0);
            /* repeated ids accumulate their gradients */
            sg_store_zero_grad(s);
            ck_assert_int_eq(sg_backward(ctx, sg_sum(ctx, sg_embedding_forward(ctx, e, ids)), NULL),
                             0);
            expect_vals(e->embeddings->grad, (const double[]){2, 2, 1, 1, 1, 1, 2, 2}, 0);
            ck_no_error();
            sg_embedding_free(e);
            sg_store_free(s);
            sg_ctx_reset(ctx);
        }
}
END_TEST

/* PyTorch's nn.Embedding(5, 3, padding_idx=1) with a weight whose padding row is not zero:
 * the lookup returns it, its gradient is 0; a (V, E) weight loads as it is. */
START_TEST(test_padding_idx_torch) {
    for (int di = 0; di < 2; di++) {
        sg_dtype dt = di ? SG_F64 : SG_F32;
        double tol = di ? 1e-15 : 1e-6;
        sg_store *s = sg_store_new();
        sg_embedding_options o = sg_embedding_defaults();
        o.padding_idx = EMB_PAD - EMB_V; /* -4: the same row, from the end */
        sg_embedding *e = sg_embedding_new(ctx, s, dt, EMB_V, EMB_E, &o, NULL, NULL);
        ck_assert_int_eq(e->padding_idx, EMB_PAD);
        sg_tensor *w = sg_from_data(ctx, SG_F64, SG_SHAPE(EMB_V, EMB_E), emb_weight);
        ck_assert_int_eq(sg_embedding_set(ctx, e, w), 0);
        expect_vals(e->embeddings, emb_weight, tol);
        sg_tensor *ids = sg_from_data(ctx, SG_I64, SG_SHAPE(2, 4), emb_ids);
        sg_tensor *y = sg_embedding_forward(ctx, e, ids);
        expect_vals(y, emb_out, tol);
        sg_tensor *up = sg_from_data(ctx, SG_F64, SG_SHAPE(2, 4, EMB_E), emb_w);
        ck_assert_int_eq(sg_backward(ctx, y, dt == SG_F64 ? up : sg_cast(ctx, up, SG_F32)), 0);
        expect_vals(e->embeddings->grad, emb_dweight, tol);
        for (int j = 0; j < EMB_E; j++)
            ck_assert(sg_get_flat(e->embeddings->grad, EMB_PAD * EMB_E + j) == 0.0);
        /* a transposed (strided) view of a (V, E) table loads too */
        sg_tensor *wt =
            sg_transpose(ctx, sg_from_data(ctx, SG_F64, SG_SHAPE(EMB_E, EMB_V), emb_weight), 0, 1);
        ck_assert_int_eq(sg_embedding_set(ctx, e, wt), 0);
        ck_assert(sg_get_flat(e->embeddings, 1) ==
                  (dt == SG_F64 ? emb_weight[EMB_V] : (float)emb_weight[EMB_V]));
        ck_no_error();
        sg_embedding_free(e);
        sg_store_free(s);
        sg_ctx_reset(ctx);
    }
}
END_TEST

START_TEST(test_mask_zero_lengths) {
    sg_embedding_options o = sg_embedding_defaults();
    o.mask_zero = true;
    sg_embedding *e = sg_embedding_new(ctx, store, SG_F64, 6, 2, &o, NULL, NULL);
    set_rows(e);
    sg_tensor *ids =
        mk_int(ctx, SG_I32, SG_SHAPE(3, 4), (const int64_t[]){3, 1, 0, 0, 2, 0, 0, 0, 4, 4, 4, 5});
    sg_tensor *len = NULL;
    ck_assert_int_eq(sg_embedding_lengths(ctx, e, ids, &len), 0);
    ck_assert_ptr_nonnull(len);
    ck_assert_int_eq(len->dtype, SG_I64);
    ck_assert_int_eq(len->ndim, 1);
    ck_assert_int_eq(len->shape[0], 3);
    static const int64_t want[3] = {2, 1, 4}, want2[3] = {2, 1, 2};
    for (int b = 0; b < 3; b++)
        ck_assert_int_eq(sg_get_flat_i64(len, b), want[b]);
    /* row 0 is still an ordinary row (Keras) */
    expect_vals(sg_embedding_forward(ctx, e, ids),
                (const double[]){30, 31, 10, 11, 0,  1,  0,  1,  20, 21, 0,  1,
                                 0,  1,  0,  1,  40, 41, 40, 41, 40, 41, 50, 51},
                0);
    /* strided ids: the first two columns, {3, 1}, {2, 0}, {4, 4} */
    ck_assert_int_eq(sg_embedding_lengths(ctx, e, sg_slice(ctx, ids, 1, 0, 2), &len), 0);
    for (int b = 0; b < 3; b++)
        ck_assert_int_eq(sg_get_flat_i64(len, b), want2[b]);
    sg_tensor *bad = mk_int(ctx, SG_I64, SG_SHAPE(2, 4), (const int64_t[]){1, 2, 3, 4, 1, 0, 0, 5});
    len = ids;
    ck_assert_int_eq(sg_embedding_lengths(ctx, e, bad, &len), -1);
    ck_assert_ptr_null(len);
    ck_error("sg_embedding_lengths: sequence 1 has padding (0) at step 1 followed by id 5 at step "
             "3; padding must be at the end");
    sg_embedding_free(e);
}
END_TEST

START_TEST(test_errors) {
    ck_assert_ptr_null(sg_embedding_new(ctx, store, SG_F32, 0, 3, NULL, NULL, NULL));
    ck_error("sg_embedding_new (embedding): sizes must be positive, got vocab=0 dim=3");
    ck_assert_ptr_null(
        sg_embedding_new(ctx, store, SG_F32, 1ll << 40, 1ll << 30, NULL, NULL, NULL));
    ck_error("sg_embedding_new (embedding): vocab=1099511627776 dim=1073741824: the table's size "
             "overflows (more than 2^60 - 1 elements)");
    ck_assert_ptr_null(sg_embedding_new(ctx, store, SG_I64, 4, 3, NULL, NULL, NULL));
    ck_error("sg_embedding_new (embedding): dtype int64; the table is float32 or float64");
    sg_embedding_options o = sg_embedding_defaults();
    o.padding_idx = 4;
    ck_assert_ptr_null(sg_embedding_new(ctx, store, SG_F32, 4, 3, &o, NULL, NULL));
    ck_error("sg_embedding_new (embedding): padding_idx 4 outside [-4, 4)");
    o.padding_idx = -5;
    ck_assert_ptr_null(sg_embedding_new(ctx, store, SG_F32, 4, 3, &o, NULL, NULL));
    ck_error("sg_embedding_new (embedding): padding_idx -5 outside [-4, 4)");
    ck_assert_ptr_null(sg_embedding_new(ctx, NULL, SG_F32, 4, 3, NULL, NULL, NULL));
    ck_error("sg_embedding_new: store is NULL (layers register their parameters in a store)");
    ck_assert_int_eq(sg_store_size(store), 0);

    sg_embedding *e = sg_embedding_new(ctx, store, SG_F32, 4, 3, NULL, "emb", NULL);
    ck_assert_ptr_null(sg_embedding_new(ctx, store, SG_F32, 4, 3, NULL, "emb", NULL));
    ck_error("sg_embedding_new: the store already has a layer named \"emb\"");
    ck_assert_ptr_null(sg_embedding_forward(
        ctx, e, mk_int(ctx, SG_I64, SG_SHAPE(2, 2), (const int64_t[]){0, 1, 4, 2})));
    ck_error("sg_embedding_forward (emb): id 4 at position 2 is outside the vocabulary of 4");
    ck_assert_ptr_null(
        sg_embedding_forward(ctx, e, mk_int(ctx, SG_I32, SG_SHAPE(2), (const int64_t[]){-1, 1})));
    ck_error("sg_embedding_forward (emb): id -1 at position 0 is outside the vocabulary of 4");
    ck_assert_ptr_null(sg_embedding_forward(ctx, e, sg_zeros(ctx, SG_F32, SG_SHAPE(2))));
    ck_error("sg_embedding_forward (emb): ids must be int64 or int32, got float32");
    ck_assert_ptr_null(
        sg_embedding_forward(ctx, e, sg_zeros(ctx, SG_I32, SG_SHAPE(1, 1, 1, 1, 1, 1))));
    ck_error("sg_embedding_forward (emb): ids of shape (1, 1, 1, 1, 1, 1): the output would have "
             "more than 6 dimensions");
    ck_assert_ptr_null(sg_embedding_forward(ctx, NULL, sg_zeros(ctx, SG_I32, SG_SHAPE(1))));
    ck_error("sg_embedding_forward: layer is NULL");
    ck_assert_ptr_null(sg_embedding_forward(ctx, e, NULL));
    ck_no_error();

    sg_tensor *len = NULL;
    ck_assert_int_eq(sg_embedding_lengths(ctx, e, sg_zeros(ctx, SG_I32, SG_SHAPE(1, 1)), &len), -1);
    ck_error("sg_embedding_lengths (emb): the layer was made without mask_zero");
    o = sg_embedding_defaults();
    o.mask_zero = true;
    sg_embedding *m = sg_embedding_new(ctx, store, SG_F32, 4, 3, &o, NULL, NULL);
    ck_assert_int_eq(sg_embedding_lengths(ctx, m, sg_zeros(ctx, SG_I32, SG_SHAPE(3)), &len), -1);
    ck_error("sg_embedding_lengths (embedding): ids have shape (3,), expected (B, T)");
    ck_assert_int_eq(sg_embedding_lengths(ctx, m, sg_zeros(ctx, SG_F64, SG_SHAPE(3, 1)), &len), -1);
    ck_error("sg_embedding_lengths (embedding): ids must be int64 or int32, got float64");
    ck_assert_int_eq(sg_embedding_lengths(ctx, m, sg_zeros(ctx, SG_I32, SG_SHAPE(3, 1)), NULL), -1);
    ck_error("sg_embedding_lengths: lengths is NULL");

    ck_assert_int_eq(sg_embedding_set(ctx, e, sg_zeros(ctx, SG_F32, SG_SHAPE(3, 4))), -1);
    ck_error("sg_embedding_set (emb): weight is float32 of shape (3, 4), expected a float (vocab, "
             "dim) = (4, 3)");
    ck_assert_int_eq(sg_embedding_set(ctx, e, sg_zeros(ctx, SG_I64, SG_SHAPE(4, 3))), -1);
    ck_error("sg_embedding_set (emb): weight is int64 of shape (4, 3), expected a float (vocab, "
             "dim) = (4, 3)");
    ck_assert_int_eq(sg_embedding_set(ctx, e, NULL), -1);
    ck_no_error();
    sg_embedding_free(e);
    sg_embedding_free(m);
}
END_TEST

int main(void) {
    const ck_tcase tcases[] = {
        {"embedding",
         0,
         {{test_names_and_init, 1},
          {test_forward_values, 1},
          {test_padding_idx_torch, 1},
          {test_mask_zero_lengths, 1},
          {test_errors, 1}}},
    };
    return CK_RUN("embedding", tcases, setup_all, teardown_all);
}
