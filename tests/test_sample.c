/* Tests of sg_sample (autograd/sample.c): frequencies of 100,000 draws against the softmax
 * at temperatures 1 and 0.5 (within 4 sigma), top-k and top-p (the kept sets and their
 * renormalised frequencies), greedy ties, the draw rule replayed by hand from the
 * generator, determinism for a seed, independent rows of a batch, and every error. */
#include <check.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "autograd.h"

#include "cksuite.h"
#include "ctxtest.h"

#define V 6
#define NDRAW 100000
/* spread logits; sorted: 3 (2.0), 0 (1.0), 1 (0.5), 4 (0.0), 2 (-0.3), 5 (-1.2) */
static const double k_logits[V] = {1.0, 0.5, -0.3, 2.0, 0.0, -1.2};

/* softmax(logits / T) */
static void softmax_t(const double *x, double T, double *p) {
    double m = -INFINITY, s = 0;
    for (int v = 0; v < V; v++)
        m = fmax(m, x[v]);
    for (int v = 0; v < V; v++)
        s += p[v] = exp((x[v] - m) / T);
    for (int v = 0; v < V; v++)
        p[v] /= s;
}

/* NDRAW rows of the same logits: a (NDRAW, V) view with row stride 0. */
static sg_tensor *many_rows(sg_dtype dt, const double *x) {
    sg_tensor *row = sg_tensor_new(ctx, dt, SG_SHAPE(1, V));
    for (int v = 0; v < V; v++)
        sg_set_flat(row, v, x[v]);
    return sg_expand(ctx, row, SG_SHAPE(NDRAW, V));
}

/* Compare each token's count among the n draws in ids (n,) with n * want[v] (4 sigma of a
 * binomial); a token of probability 0 must never come. */
static void expect_freqs(const sg_tensor *ids, const double *want, const char *what) {
    ck_assert_msg(ids != NULL, "%s: %s", what, sg_ctx_error(ctx) ? sg_ctx_error(ctx) : "NULL");
    ck_assert_int_eq(ids->dtype, SG_I64);
    ck_assert_int_eq(ids->ndim, 1);
    int64_t n = ids->shape[0], count[V] = {0};
    const int64_t *d = sg_data(ids);
    for (int64_t i = 0; i < n; i++) {
        ck_assert_msg(d[i] >= 0 && d[i] < V, "%s: id %lld", what, (long long)d[i]);
        count[d[i]]++;
    }
    for (int v = 0; v < V; v++) {
        double mu = (double)n * want[v], sd = sqrt((double)n * want[v] * (1 - want[v]));
        if (want[v] == 0)
            ck_assert_msg(count[v] == 0, "%s: token %d drawn %lld times, probability 0", what, v,
                          (long long)count[v]);
        else
            ck_assert_msg(fabs((double)count[v] - mu) <= 4 * sd,
                          "%s: token %d drawn %lld times, want %.1f +- %.1f", what, v,
                          (long long)count[v], mu, 4 * sd);
    }
}

START_TEST(test_temperature_freqs) {
    sg_rng rng;
    sg_rng_seed(&rng, 7);
    for (int di = 0; di < 2; di++) {
        sg_dtype dt = di ? SG_F64 : SG_F32;
        double p[V];
        softmax_t(k_logits, 1, p);
        expect_freqs(sg_sample(ctx, many_rows(dt, k_logits), NULL, &rng), p, "T = 1");
        sg_sample_opts o = sg_sample_defaults();
        o.temperature = 0.5;
        softmax_t(k_logits, 0.5, p);
        expect_freqs(sg_sample(ctx, many_rows(dt, k_logits), &o, &rng), p, "T = 0.5");
        ck_no_error();
    }
}
END_TEST

START_TEST(test_top_k) {
    sg_sample_opts o = sg_sample_defaults();
    o.top_k = 3; /* tokens 3, 0, 1 */
    double p[V], want[V] = {0};
    softmax_t(k_logits, 1, p);
    double kept = p[3] + p[0] + p[1];
    want[3] = p[3] / kept;
    want[0] = p[0] / kept;
    want[1] = p[1] / kept;
    expect_freqs(sg_sample(ctx, many_rows(SG_F64, k_logits), &o, NULL), want, "top_k 3");
    o.top_k = 1; /* greedy by another road */
    const int64_t *d = sg_data(sg_sample(ctx, many_rows(SG_F64, k_logits), &o, NULL));
    for (int i = 0; i < NDRAW; i += 997)
        ck_assert_int_eq(d[i], 3);
    o.top_k = 100; /* more than V: off */
    expect_freqs(sg_sample(ctx, many_rows(SG_F64, k_logits), &o, NULL), p, "top_k 100");
    ck_no_error();
}
END_TEST

START_TEST(test_top_p) {
    double p[V];
    softmax_t(k_logits, 1, p);
    /* The nucleus by hand: sorted probabilities p3, p0, p1, p4, p2, p5; keep the shortest
     * prefix whose sum reaches top_p. top_p = 0.8: p3 + p0 = 0.73 < 0.8 <= + p1 = 0.84. */
    ck_assert(p[3] + p[0] < 0.8 && p[3] + p[0] + p[1] >= 0.8);
    sg_sample_opts o = sg_sample_defaults();
    o.top_p = 0.8;
    double kept = p[3] + p[0] + p[1], want[V] = {0};
    want[3] = p[3] / kept;
    want[0] = p[0] / kept;
    want[1] = p[1] / kept;
    expect_freqs(sg_sample(ctx, many_rows(SG_F64, k_logits), &o, NULL), want, "top_p 0.8");
    /* top_p below the largest probability: only the first token. */
    o.top_p = 0.1;
    double one[V] = {0, 0, 0, 1, 0, 0};
    expect_freqs(sg_sample(ctx, many_rows(SG_F64, k_logits), &o, NULL), one, "top_p 0.1");
    /* top_k then top_p over the renormalised top 2: p3 / (p3 + p0) = 0.73 < 0.9: both. */
    o.top_k = 2;
    o.top_p = 0.9;
    memset(want, 0, sizeof want);
    want[3] = p[3] / (p[3] + p[0]);
    want[0] = p[0] / (p[3] + p[0]);
    expect_freqs(sg_sample(ctx, many_rows(SG_F64, k_logits), &o, NULL), want, "top_k 2 top_p .9");
    ck_no_error();
}
END_TEST

/* -inf logits are never drawn; +inf logits share the row. */
START_TEST(test_infinities) {
    const double a[V] = {0, -INFINITY, 1, -INFINITY, -INFINITY, 2};
    double p[V];
    softmax_t(a, 1, p);
    expect_freqs(sg_sample(ctx, many_rows(SG_F64, a), NULL, NULL), p, "-inf");
    const double b[V] = {0, INFINITY, 1, INFINITY, -INFINITY, 2};
    const double half[V] = {0, 0.5, 0, 0.5, 0, 0};
    expect_freqs(sg_sample(ctx, many_rows(SG_F64, b), NULL, NULL), half, "+inf");
    ck_no_error();
}
END_TEST

START_TEST(test_greedy) {
    sg_sample_opts o = sg_sample_defaults();
    o.temperature = 0;
    const double x[8] = {1, 3, 2, 3, -INFINITY, 0, 5, 5};
    sg_tensor *t = sg_from_data(ctx, SG_F64, SG_SHAPE(2, 4), x);
    sg_rng rng, before;
    sg_rng_seed(&rng, 3);
    before = rng;
    sg_tensor *ids = sg_sample(ctx, t, &o, &rng);
    ck_assert_ptr_nonnull(ids);
    ck_assert_int_eq(sg_get_flat_i64(ids, 0), 1); /* the first of the tied maxima */
    ck_assert_int_eq(sg_get_flat_i64(ids, 1), 2);
    ck_assert_mem_eq(&rng, &before, sizeof rng); /* greedy draws nothing */
    /* 1-D logits give a 0-d id; a strided (transposed) view reads the same */
    ids = sg_sample(
        ctx, sg_select(ctx, sg_transpose(ctx, sg_reshape(ctx, t, SG_SHAPE(4, 2)), 0, 1), 0, 1), &o,
        NULL); /* column 1 of (4, 2) = {3, 3, 0, 5} */
    ck_assert_ptr_nonnull(ids);
    ck_assert_int_eq(ids->ndim, 0);
    ck_assert_int_eq(sg_get_flat_i64(ids, 0), 3);
    ck_no_error();
}
END_TEST

/* The draw rule replayed by hand: one uniform u per row, the first token in (probability
 * descending, index ascending) order whose cumulative probability exceeds u * total. */
START_TEST(test_draw_rule) {
    const double x[3] = {0.0, 1.0, 0.0}; /* order: 1, then 0 and 2 tied (0 first) */
    double p[3];
    double e = exp(-1.0);
    p[1] = 1;
    p[0] = p[2] = e;
    sg_tensor *t = sg_expand(ctx, sg_from_data(ctx, SG_F64, SG_SHAPE(1, 3), x), SG_SHAPE(200, 3));
    sg_rng rng, mirror;
    sg_rng_seed(&rng, 42);
    mirror = rng;
    sg_tensor *ids = sg_sample(ctx, t, NULL, &rng);
    ck_assert_ptr_nonnull(ids);
    double tot = p[1] + p[0] + p[2];
    for (int i = 0; i < 200; i++) {
        double u = sg_rng_uniform(&mirror) * tot;
        int64_t want = u < p[1] ? 1 : u < p[1] + p[0] ? 0 : 2;
        ck_assert_int_eq(sg_get_flat_i64(ids, i), want);
    }
    ck_assert_mem_eq(&rng, &mirror, sizeof rng); /* exactly one uniform per row */
    ck_no_error();
}
END_TEST

START_TEST(test_seed_determinism) {
    sg_tensor *t = sg_rand_normal(ctx, SG_F32, SG_SHAPE(64, 10), 0, 2);
    sg_sample_opts o = sg_sample_defaults();
    o.temperature = 0.8;
    o.top_k = 7;
    o.top_p = 0.95;
    sg_rng a, b, c;
    sg_rng_seed(&a, 11);
    sg_rng_seed(&b, 11);
    sg_rng_seed(&c, 12);
    sg_tensor *ia = sg_sample(ctx, t, &o, &a), *ib = sg_sample(ctx, t, &o, &b);
    sg_tensor *ic = sg_sample(ctx, t, &o, &c);
    ck_assert_mem_eq(sg_data(ia), sg_data(ib), 64 * sizeof(int64_t));
    ck_assert(memcmp(sg_data(ia), sg_data(ic), 64 * sizeof(int64_t)) != 0);
    /* NULL rng: the context's generator */
    sg_rng_seed(sg_ctx_rng(ctx), 11);
    sg_tensor *id = sg_sample(ctx, t, &o, NULL);
    ck_assert_mem_eq(sg_data(ia), sg_data(id), 64 * sizeof(int64_t));
    ck_no_error();
}
END_TEST

/* (B, V): each row draws from its own distribution. Rows alternate between two logit
 * vectors; the frequencies of the even and the odd rows match their own softmax. */
START_TEST(test_batch_rows) {
    double y[V];
    for (int v = 0; v < V; v++)
        y[v] = k_logits[V - 1 - v];
    sg_tensor *two = sg_from_data(ctx, SG_F64, SG_SHAPE(2, 1, V), (const double[2 * V]){0});
    for (int v = 0; v < V; v++) {
        sg_set_flat(two, v, k_logits[v]);
        sg_set_flat(two, V + v, y[v]);
    }
    /* (NDRAW / 2, 2, V) -> (NDRAW, V): rows alternate x, y */
    sg_tensor *t =
        sg_contiguous(ctx, sg_permute(ctx, sg_expand(ctx, two, SG_SHAPE(2, NDRAW / 2, V)),
                                      (const int[]){1, 0, 2}));
    t = sg_reshape(ctx, t, SG_SHAPE(NDRAW, V));
    sg_tensor *ids = sg_sample(ctx, t, NULL, NULL);
    ck_assert_ptr_nonnull(ids);
    ck_assert_int_eq(ids->shape[0], NDRAW);
    sg_tensor *even = sg_tensor_new(ctx, SG_I64, SG_SHAPE(NDRAW / 2));
    sg_tensor *odd = sg_tensor_new(ctx, SG_I64, SG_SHAPE(NDRAW / 2));
    const int64_t *d = sg_data(ids);
    for (int64_t i = 0; i < NDRAW / 2; i++) {
        ((int64_t *)sg_data(even))[i] = d[2 * i];
        ((int64_t *)sg_data(odd))[i] = d[2 * i + 1];
    }
    double p[V], q[V];
    softmax_t(k_logits, 1, p);
    softmax_t(y, 1, q);
    expect_freqs(even, p, "even rows");
    expect_freqs(odd, q, "odd rows");
    ck_no_error();
}
END_TEST

START_TEST(test_errors) {
    sg_tensor *x = sg_zeros(ctx, SG_F32, SG_SHAPE(2, 4));
    sg_sample_opts o = sg_sample_defaults();
    o.temperature = -1;
    ck_assert_ptr_null(sg_sample(ctx, x, &o, NULL));
    ck_error("sg_sample: temperature = -1 must be finite and >= 0 (0: greedy)");
    o.temperature = NAN;
    ck_assert_ptr_null(sg_sample(ctx, x, &o, NULL));
    ck_error("sg_sample: temperature = nan must be finite and >= 0 (0: greedy)");
    o.temperature = INFINITY;
    ck_assert_ptr_null(sg_sample(ctx, x, &o, NULL));
    ck_error("sg_sample: temperature = inf must be finite and >= 0 (0: greedy)");
    o = sg_sample_defaults();
    o.top_k = -2;
    ck_assert_ptr_null(sg_sample(ctx, x, &o, NULL));
    ck_error("sg_sample: top_k = -2 must be >= 0 (0: off)");
    o = sg_sample_defaults();
    o.top_p = 0;
    ck_assert_ptr_null(sg_sample(ctx, x, &o, NULL));
    ck_error("sg_sample: top_p = 0 outside (0, 1] (1: off)");
    o.top_p = 1.5;
    ck_assert_ptr_null(sg_sample(ctx, x, &o, NULL));
    ck_error("sg_sample: top_p = 1.5 outside (0, 1] (1: off)");
    o.top_p = NAN;
    ck_assert_ptr_null(sg_sample(ctx, x, &o, NULL));
    ck_error("sg_sample: top_p = nan outside (0, 1] (1: off)");
    ck_assert_ptr_null(sg_sample(ctx, sg_zeros(ctx, SG_F32, SG_SHAPE(2, 3, 4)), NULL, NULL));
    ck_error("sg_sample: logits must be (V) or (B, V), got (2, 3, 4)");
    ck_assert_ptr_null(sg_sample(ctx, sg_scalar(ctx, SG_F64, 1), NULL, NULL));
    ck_error("sg_sample: logits must be (V) or (B, V), got ()");
    ck_assert_ptr_null(sg_sample(ctx, sg_zeros(ctx, SG_F32, SG_SHAPE(2, 0)), NULL, NULL));
    ck_error("sg_sample: logits (2, 0) have no tokens (V = 0)");
    ck_assert_ptr_null(sg_sample(ctx, sg_zeros(ctx, SG_I64, SG_SHAPE(4)), NULL, NULL));
    ck_error("sg_sample: input 0 is an int64 tensor; this op takes float32 or float64");
    sg_set_flat(x, 6, NAN);
    sg_rng rng, before;
    sg_rng_seed(&rng, 5);
    before = rng;
    o = sg_sample_defaults();
    o.temperature = 0; /* greedy checks too */
    ck_assert_ptr_null(sg_sample(ctx, x, &o, &rng));
    ck_error("sg_sample: row 1 has a NaN logit (index 2)");
    ck_assert_ptr_null(sg_sample(ctx, x, NULL, &rng));
    ck_error("sg_sample: row 1 has a NaN logit (index 2)");
    ck_assert_mem_eq(&rng, &before, sizeof rng); /* an error draws nothing */
    sg_tensor *ninf = sg_full(ctx, SG_F64, SG_SHAPE(3), -INFINITY);
    ck_assert_ptr_null(sg_sample(ctx, ninf, NULL, NULL));
    ck_error("sg_sample: row 0: every logit is -inf");
    /* NULL propagates; an empty batch gives an empty result */
    ck_assert_ptr_null(sg_sample(ctx, NULL, NULL, NULL));
    ck_no_error();
    sg_tensor *ids = sg_sample(ctx, sg_zeros(ctx, SG_F32, SG_SHAPE(0, 3)), NULL, NULL);
    ck_assert_ptr_nonnull(ids);
    ck_assert_int_eq(ids->shape[0], 0);
    ck_no_error();
}
END_TEST

int main(void) {
    const ck_tcase tcases[] = {{"sample",
                                120,
                                {{test_temperature_freqs, 1},
                                 {test_top_k, 1},
                                 {test_top_p, 1},
                                 {test_infinities, 1},
                                 {test_greedy, 1},
                                 {test_draw_rule, 1},
                                 {test_seed_determinism, 1},
                                 {test_batch_rows, 1},
                                 {test_errors, 1}}}};
    return CK_RUN("sample", tcases, setup, teardown);
}
