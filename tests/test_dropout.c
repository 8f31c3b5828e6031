/* Check tests for autograd/ops_random.c (sg_dropout, sg_dropout_mask, sg_zoneout), the
 * training/evaluation mode (sg_ctx_set_training) and sg_detach.
 *
 * Masks are random, so values are checked against the documented draw rule (one
 * sg_rng_uniform per element, row-major, kept when u >= p, replayed from a generator with the
 * same seed) and statistics within 4 sigma; gradients by sg_gradcheck with the generator
 * reseeded inside the checked function, so every evaluation sees the same mask. Tests that
 * loop over dtypes run as _i = 0 (float32) and _i = 1 (float64).
 */
#include <check.h>
#include <math.h>
#include <string.h>

#include "autograd/autograd.h"
#include "cksuite.h"
#include "ctxtest.h"
#include "optest.h"

static const sg_dtype dts[2] = {SG_F32, SG_F64};

/* A contiguous (r, c) tensor of dtype dt with distinct values 0.5 + 0.25 * i. */
static sg_tensor *ramp(sg_dtype dt, int64_t r, int64_t c) {
    sg_tensor *t = sg_tensor_new(ctx, dt, SG_SHAPE(r, c));
    ck_assert_ptr_nonnull(t);
    for (int64_t i = 0; i < r * c; i++)
        sg_set_flat(t, i, 0.5 + 0.25 * (double)i);
    return t;
}

/* The scale of a kept element as the op computes it in dtype dt. */
static double kept_scale(sg_dtype dt, double p) {
    return dt == SG_F32 ? (double)(float)(1 / (1 - p)) : 1 / (1 - p);
}

/* ---- the draw rule, values ------------------------------------------------------------- */

/* out[i] == x[i] * scale where the i-th uniform of a generator with the same seed is >= p,
 * else 0; on a transposed (strided) view, i runs row-major over the view. */
START_TEST(test_dropout_rule) {
    sg_dtype dt = dts[_i];
    const double p = 0.4;
    sg_tensor *x = sg_transpose(ctx, ramp(dt, 5, 7), 0, 1); /* (7, 5), strided */
    sg_rng rng, replay;
    sg_rng_seed(&rng, 11);
    sg_rng_seed(&replay, 11);
    sg_tensor *y = sg_dropout(ctx, x, p, &rng);
    ck_no_error();
    ck_assert_ptr_ne(y, x);
    ck_assert_int_eq(y->op, SG_OP_NONE); /* x needs no grad: nothing recorded */
    int kept = 0;
    for (int64_t i = 0; i < 35; i++) {
        double want = sg_rng_uniform(&replay) >= p ? sg_get_flat(x, i) * kept_scale(dt, p) : 0;
        if (dt == SG_F32)
            want = (float)want;
        ck_assert_msg(sg_get_flat(y, i) == want, "element %lld: %g vs %g", (long long)i,
                      sg_get_flat(y, i), want);
        kept += want != 0;
    }
    ck_assert_int_gt(kept, 0);
    ck_assert_int_lt(kept, 35);
    /* the generator advanced by exactly one draw per element */
    ck_assert_int_eq(memcmp(rng.s, replay.s, sizeof rng.s), 0);
}
END_TEST

/* NULL rng: the context's generator, by the same rule. */
START_TEST(test_dropout_ctx_rng) {
    sg_rng_seed(sg_ctx_rng(ctx), 5);
    sg_tensor *x = sg_ones(ctx, SG_F64, SG_SHAPE(4, 6));
    sg_tensor *y = sg_dropout(ctx, x, 0.5, NULL);
    sg_rng replay;
    sg_rng_seed(&replay, 5);
    for (int64_t i = 0; i < 24; i++)
        ck_assert_double_eq(sg_get_flat(y, i), sg_rng_uniform(&replay) >= 0.5 ? 2.0 : 0.0);
}
END_TEST

/* Same seed, same mask; another seed, another mask. */
START_TEST(test_dropout_seeds) {
    sg_dtype dt = dts[_i];
    sg_tensor *x = sg_ones(ctx, dt, SG_SHAPE(64, 32));
    sg_rng a, b, c;
    sg_rng_seed(&a, 3);
    sg_rng_seed(&b, 3);
    sg_rng_seed(&c, 4);
    sg_tensor *ya = sg_dropout(ctx, x, 0.3, &a), *yb = sg_dropout(ctx, x, 0.3, &b),
              *yc = sg_dropout(ctx, x, 0.3, &c);
    ck_assert_int_eq(sg_compare(ctx, ya, yb, 0, 0, NULL), 0);
    sg_compare_result r;
    ck_assert_int_eq(sg_compare(ctx, ya, yc, 0, 0, &r), 1);
    ck_assert_int_gt(r.n_mismatch, 100);
}
END_TEST

/* 1e6 elements, p = 0.3: kept fraction and mean within 4 sigma. */
START_TEST(test_dropout_statistics) {
    sg_dtype dt = dts[_i];
    const int64_t n = 1000000;
    const double p = 0.3;
    sg_rng rng;
    sg_rng_seed(&rng, 2024);
    sg_tensor *x = sg_ones(ctx, dt, SG_SHAPE(1000, 1000));
    sg_tensor *y = sg_dropout(ctx, x, p, &rng);
    ck_assert_ptr_nonnull(y);
    double *v = sg_arena_alloc(ctx, (size_t)n * sizeof(double));
    ck_assert_int_eq(sg_copy_to_f64(y, v), 0);
    int64_t kept = 0, other = 0;
    double sum = 0, scale = kept_scale(dt, p);
    for (int64_t i = 0; i < n; i++) {
        kept += v[i] != 0;
        other += v[i] != 0 && v[i] != scale;
        sum += v[i];
    }
    ck_assert_int_eq(other, 0); /* every element is 0 or the scale */
    double sd_kept = sqrt((double)n * p * (1 - p));
    ck_assert_msg(fabs((double)kept - (1 - p) * (double)n) <= 4 * sd_kept, "kept %lld",
                  (long long)kept);
    /* each element is 0 or 1/(1-p): variance p / (1 - p) around the mean 1 */
    double sd_mean = sqrt(p / (1 - p) / (double)n);
    ck_assert_msg(fabs(sum / (double)n - 1) <= 4 * sd_mean, "mean %.6f", sum / (double)n);
}
END_TEST

/* Evaluation mode, no-grad mode and p == 0: x itself, nothing drawn. */
START_TEST(test_dropout_identity) {
    sg_dtype dt = dts[_i];
    sg_tensor *x = ramp(dt, 3, 4);
    sg_set_requires_grad(x, true);
    sg_rng rng, before;
    sg_rng_seed(&rng, 9);
    before = rng;
    ck_assert_int_eq(sg_ctx_set_training(ctx, false), true);
    ck_assert_ptr_eq(sg_dropout(ctx, x, 0.5, &rng), x);
    ck_assert_int_eq(sg_ctx_set_training(ctx, true), false);
    ck_assert_int_eq(sg_ctx_set_grad_enabled(ctx, false), true);
    ck_assert_ptr_eq(sg_dropout(ctx, x, 0.5, &rng), x);
    sg_ctx_set_grad_enabled(ctx, true);
    ck_assert_ptr_eq(sg_dropout(ctx, x, 0.0, &rng), x);
    ck_assert_int_eq(memcmp(&rng, &before, sizeof rng), 0);
    ck_assert_int_eq(sg_tape_size(ctx), 0);
    ck_no_error();
    /* and in training mode with grad on it does draw and record */
    sg_tensor *y = sg_dropout(ctx, x, 0.5, &rng);
    ck_assert_ptr_ne(y, x);
    ck_assert_int_eq(y->op, SG_OP_DROPOUT);
    ck_assert_str_eq(sg_op_name(y->op), "dropout");
}
END_TEST

/* The mode: training by default, kept across sg_ctx_reset, NULL-safe. */
START_TEST(test_training_mode) {
    ck_assert(sg_ctx_training(ctx));
    ck_assert(sg_ctx_set_training(ctx, false));
    ck_assert(!sg_ctx_training(ctx));
    sg_ctx_reset(ctx);
    ck_assert(!sg_ctx_training(ctx));
    sg_tensor *x = sg_ones(ctx, SG_F32, SG_SHAPE(2, 2));
    ck_assert_ptr_eq(sg_dropout(ctx, x, 0.9, NULL), x); /* still evaluation after the reset */
    ck_assert(!sg_ctx_set_training(ctx, true));
    ck_assert(sg_ctx_training(ctx));
    ck_assert(!sg_ctx_training(NULL));
    ck_assert(!sg_ctx_set_training(NULL, true));
    sg_ctx *fresh = sg_ctx_new(0);
    ck_assert(sg_ctx_training(fresh));
    sg_ctx_free(fresh);
}
END_TEST

/* ---- gradients -------------------------------------------------------------------------- */

/* Backward multiplies by the mask: d sum(dropout(x)) / dx = the mask. */
START_TEST(test_dropout_backward_values) {
    sg_dtype dt = dts[_i];
    sg_tensor *x = ramp(dt, 4, 5);
    sg_set_requires_grad(x, true);
    sg_rng rng;
    sg_rng_seed(&rng, 1);
    sg_tensor *y = sg_dropout(ctx, x, 0.25, &rng);
    ck_assert_int_eq(sg_backward(ctx, sg_sum(ctx, y), NULL), 0);
    for (int64_t i = 0; i < 20; i++) {
        double keep = sg_get_flat(y, i) != 0;
        ck_assert_double_eq(sg_get_flat(x->grad, i), keep * kept_scale(dt, 0.25));
    }
}
END_TEST

/* Dropout's backward reads only its mask: x may be overwritten in place afterwards. */
START_TEST(test_dropout_then_in_place) {
    sg_tensor *x = ramp(SG_F64, 2, 3);
    sg_set_requires_grad(x, true);
    sg_tensor *z = sg_add_scalar(ctx, x, 0.0);
    sg_rng rng;
    sg_rng_seed(&rng, 4);
    sg_tensor *y = sg_dropout(ctx, z, 0.5, &rng);
    sg_tensor *s = sg_sigmoid_(ctx, z);
    ck_assert_ptr_nonnull(s);
    ck_no_error();
    ck_assert_int_eq(sg_backward(ctx, sg_sum(ctx, sg_add(ctx, y, s)), NULL), 0);
    for (int64_t i = 0; i < 6; i++) {
        double sg = sg_get_flat(s, i);
        double want = (sg_get_flat(y, i) != 0 ? 2.0 : 0.0) + sg * (1 - sg);
        ck_assert_double_eq_tol(sg_get_flat(x->grad, i), want, 1e-15);
    }
}
END_TEST

typedef struct {
    uint64_t seed;
    double p;
} gc_user;

/* dropout of a transposed view; the generator reseeded so that every evaluation draws the
 * same mask */
static sg_tensor *gc_dropout(sg_ctx *c, sg_tensor *const *in, void *user) {
    const gc_user *u = user;
    sg_rng rng;
    sg_rng_seed(&rng, u->seed);
    return sg_dropout(c, sg_transpose(c, in[0], 0, 1), u->p, &rng);
}

/* zoneout with h_prev a transposed view and h_new a slice, reseeded likewise */
static sg_tensor *gc_zoneout(sg_ctx *c, sg_tensor *const *in, void *user) {
    const gc_user *u = user;
    sg_rng rng;
    sg_rng_seed(&rng, u->seed);
    return sg_zoneout(c, sg_transpose(c, in[0], 0, 1), sg_slice(c, in[1], 1, 1, 3), u->p, &rng);
}

START_TEST(test_gradcheck) {
    sg_tensor *x = ramp(SG_F64, 3, 4);
    gc_user u = {.seed = 17, .p = 0.5};
    expect_gradcheck(ctx, gc_dropout, &u, 1, &x, "dropout");
    sg_tensor *zin[2] = {ramp(SG_F64, 3, 4), sg_rand_normal(ctx, SG_F64, SG_SHAPE(4, 5), 0, 1)};
    u.p = 0.4;
    expect_gradcheck(ctx, gc_zoneout, &u, 2, zin, "zoneout, training");
    sg_ctx_set_training(ctx, false);
    expect_gradcheck(ctx, gc_zoneout, &u, 2, zin, "zoneout, evaluation");
    sg_ctx_set_training(ctx, true);
    /* float32, loose tolerances */
    sg_tensor *x32 = ramp(SG_F32, 3, 4);
    expect_gradcheck(ctx, gc_dropout, &u, 1, &x32, "dropout f32");
}
END_TEST

/* ---- recurrent dropout mask ------------------------------------------------------------ */

START_TEST(test_dropout_mask) {
    sg_dtype dt = dts[_i];
    const int64_t B = 3, T = 6, H = 8;
    const double p = 0.5;
    sg_rng rng, replay;
    sg_rng_seed(&rng, 21);
    sg_rng_seed(&replay, 21);
    sg_tensor *m = sg_dropout_mask(ctx, dt, SG_SHAPE(B, H), p, &rng);
    ck_assert_ptr_nonnull(m);
    ck_assert_int_eq(m->dtype, dt);
    for (int64_t i = 0; i < B * H; i++)
        ck_assert_double_eq(sg_get_flat(m, i), sg_rng_uniform(&replay) >= p ? 2.0 : 0.0);
    /* applied over T steps of an input that requires grad: the same mask at every step */
    sg_tensor *x = sg_rand_normal(ctx, dt, SG_SHAPE(B, T, H), 0, 1);
    sg_set_requires_grad(x, true);
    sg_tensor *y = sg_mul(ctx, x, sg_reshape(ctx, m, SG_SHAPE(B, 1, H)));
    ck_assert_ptr_nonnull(y);
    for (int64_t t = 0; t < T; t++) {
        sg_tensor *yt = sg_select(ctx, y, 1, t), *xt = sg_select(ctx, x, 1, t);
        for (int64_t b = 0; b < B; b++)
            for (int64_t h = 0; h < H; h++) {
                int64_t ix[2] = {b, h};
                ck_assert_double_eq(sg_get(yt, ix), sg_get(xt, ix) * sg_get(m, ix));
            }
    }
    ck_assert(!(m->flags & SG_FLAG_REQUIRES_GRAD));
    ck_assert_int_eq(sg_backward(ctx, sg_sum(ctx, y), NULL), 0);
    ck_assert_ptr_null(m->grad);
    /* evaluation mode and no-grad: all ones, nothing drawn */
    sg_rng before = rng;
    sg_ctx_set_training(ctx, false);
    sg_tensor *ones = sg_dropout_mask(ctx, dt, SG_SHAPE(B, H), p, &rng);
    sg_ctx_set_training(ctx, true);
    sg_ctx_set_grad_enabled(ctx, false);
    sg_tensor *ones2 = sg_dropout_mask(ctx, dt, SG_SHAPE(B, H), p, &rng);
    sg_ctx_set_grad_enabled(ctx, true);
    sg_tensor *ones3 = sg_dropout_mask(ctx, dt, SG_SHAPE(B, H), 0.0, &rng);
    ck_assert_int_eq(memcmp(&rng, &before, sizeof rng), 0);
    sg_tensor *want = sg_ones(ctx, dt, SG_SHAPE(B, H));
    ck_assert_int_eq(sg_compare(ctx, ones, want, 0, 0, NULL), 0);
    ck_assert_int_eq(sg_compare(ctx, ones2, want, 0, 0, NULL), 0);
    ck_assert_int_eq(sg_compare(ctx, ones3, want, 0, 0, NULL), 0);
    ck_no_error();
}
END_TEST

/* ---- zoneout ----------------------------------------------------------------------------- */

START_TEST(test_zoneout_values) {
    sg_dtype dt = dts[_i];
    const double p = 0.3;
    sg_tensor *hp = sg_rand_normal(ctx, dt, SG_SHAPE(50, 40), 0, 1);
    sg_tensor *hn = sg_rand_normal(ctx, dt, SG_SHAPE(50, 40), 0, 1);
    sg_rng rng, replay;
    sg_rng_seed(&rng, 8);
    sg_rng_seed(&replay, 8);
    sg_tensor *h = sg_zoneout(ctx, hp, hn, p, &rng);
    ck_assert_ptr_nonnull(h);
    int zoned = 0;
    for (int64_t i = 0; i < 2000; i++) {
        bool z = sg_rng_uniform(&replay) < p; /* exactly h_prev, or exactly h_new */
        ck_assert_double_eq(sg_get_flat(h, i), sg_get_flat(z ? hp : hn, i));
        zoned += z;
    }
    ck_assert_msg(fabs(zoned - 2000 * p) <= 4 * sqrt(2000 * p * (1 - p)), "zoned %d", zoned);
    /* a fresh mask per call */
    sg_tensor *h2 = sg_zoneout(ctx, hp, hn, p, &rng);
    ck_assert_int_eq(sg_compare(ctx, h, h2, 0, 0, NULL), 1);
    /* evaluation and no-grad: the expectation; p == 0: h_new itself; p == 1: h_prev */
    sg_tensor *want = sg_add(ctx, sg_scale(ctx, hp, p), sg_scale(ctx, hn, 1 - p));
    sg_rng before = rng;
    sg_ctx_set_training(ctx, false);
    ck_assert_int_eq(sg_compare(ctx, sg_zoneout(ctx, hp, hn, p, &rng), want, 0, 0, NULL), 0);
    sg_ctx_set_training(ctx, true);
    sg_ctx_set_grad_enabled(ctx, false);
    ck_assert_int_eq(sg_compare(ctx, sg_zoneout(ctx, hp, hn, p, &rng), want, 0, 0, NULL), 0);
    sg_ctx_set_grad_enabled(ctx, true);
    ck_assert_ptr_eq(sg_zoneout(ctx, hp, hn, 0.0, &rng), hn);
    ck_assert_int_eq(memcmp(&rng, &before, sizeof rng), 0);
    ck_assert_int_eq(sg_compare(ctx, sg_zoneout(ctx, hp, hn, 1.0, &rng), hp, 0, 0, NULL), 0);
    ck_no_error();
}
END_TEST

/* ---- detach ------------------------------------------------------------------------------ */

START_TEST(test_detach_cuts_history) {
    sg_dtype dt = dts[_i];
    sg_tensor *x = ramp(dt, 2, 3), *w = ramp(dt, 2, 3);
    sg_set_requires_grad(x, true);
    sg_set_requires_grad(w, true);
    sg_tensor *hx = sg_tanh(ctx, x);
    sg_tensor *d = sg_detach(ctx, hx);
    ck_assert_ptr_nonnull(d);
    ck_assert_int_eq(d->op, SG_OP_NONE);
    ck_assert_int_eq(d->nsrc, 0);
    ck_assert(!(d->flags & SG_FLAG_REQUIRES_GRAD));
    ck_assert_ptr_eq(sg_data(d), sg_data(hx)); /* shares the storage */
    int64_t tape = sg_tape_size(ctx);
    sg_tensor *loss = sg_sum(ctx, sg_mul(ctx, d, w));
    ck_assert_int_eq(sg_tape_size(ctx), tape + 2); /* detach itself recorded nothing */
    ck_assert_int_eq(sg_backward(ctx, loss, NULL), 0);
    ck_assert_ptr_null(x->grad); /* backward never reached x */
    ck_assert_ptr_null(hx->grad);
    for (int64_t i = 0; i < 6; i++)
        ck_assert_double_eq(sg_get_flat(w->grad, i), sg_get_flat(hx, i));
    /* a detached view alone: nothing to differentiate */
    ck_assert_int_eq(sg_backward(ctx, sg_sum(ctx, d), NULL), -1);
    sg_ctx_clear_error(ctx);
    /* writes to x show through the view (shared storage), in place on the view is allowed */
    sg_tensor *y = sg_add_scalar(ctx, x, 0.0);
    sg_tensor *dy = sg_detach(ctx, y);
    sg_set_flat(y, 0, 42.0);
    ck_assert_double_eq(sg_get_flat(dy, 0), 42.0);
    ck_assert_ptr_nonnull(sg_tanh_(ctx, dy));
    ck_assert_double_eq_tol(sg_get_flat(y, 0), tanh(42.0), 1e-6);
    /* NULL and stale inputs */
    ck_assert_ptr_null(sg_detach(ctx, NULL));
    ck_no_error();
    sg_ctx_reset(ctx);
    ck_assert_ptr_null(sg_detach(ctx, d));
    ck_error("sg_detach: tensor used after sg_ctx_reset");
}
END_TEST

START_TEST(test_detach_parameter) {
    sg_store *store = sg_store_new();
    sg_tensor *p = sg_store_param(ctx, store, "w", SG_F64, SG_SHAPE(2, 3));
    sg_fill(p, 1.5);
    sg_tensor *d = sg_detach(ctx, p);
    ck_assert_ptr_nonnull(d);
    ck_assert(!(d->flags & (SG_FLAG_REQUIRES_GRAD | SG_FLAG_PARAM)));
    ck_assert_int_eq(d->op, SG_OP_NONE);
    ck_assert_ptr_eq(sg_data(d), sg_data(p));
    ck_assert_double_eq(sg_get_flat(d, 4), 1.5);
    /* ops on it record nothing and never reach the parameter's gradient */
    sg_tensor *y = sg_mul(ctx, d, d);
    ck_assert(!(y->flags & SG_FLAG_REQUIRES_GRAD));
    /* in place on it (or on a view of it) would change the parameter: refused */
    ck_assert_ptr_null(sg_tanh_(ctx, d));
    ck_error("sg_tanh_: cannot work in place on a detached view of a parameter: it would change "
             "the parameter; use the out-of-place op");
    ck_assert_ptr_null(sg_sigmoid_(ctx, sg_slice(ctx, d, 1, 0, 2)));
    ck_error("sg_sigmoid_: cannot work in place on a detached view of a parameter: it would "
             "change the parameter; use the out-of-place op");
    /* a detached slice of the parameter, and a detached view of a detached view: read-only too */
    ck_assert_ptr_null(sg_tanh_(ctx, sg_detach(ctx, sg_slice(ctx, p, 0, 1, 1))));
    sg_ctx_clear_error(ctx);
    ck_assert_ptr_null(sg_tanh_(ctx, sg_detach(ctx, d)));
    sg_ctx_clear_error(ctx);
    ck_assert_double_eq(sg_get_flat(p, 0), 1.5);
    sg_store_free(store);
}
END_TEST

/* ---- errors ------------------------------------------------------------------------------ */

START_TEST(test_errors) {
    sg_tensor *x = sg_ones(ctx, SG_F64, SG_SHAPE(2, 3));
    ck_assert_ptr_null(sg_dropout(ctx, x, 1.0, NULL));
    ck_error("sg_dropout: p = 1 outside [0, 1)");
    ck_assert_ptr_null(sg_dropout(ctx, x, -0.1, NULL));
    ck_error("sg_dropout: p = -0.1 outside [0, 1)");
    ck_assert_ptr_null(sg_dropout(ctx, x, NAN, NULL));
    ck_error("sg_dropout: p = nan outside [0, 1)");
    ck_assert_ptr_null(sg_dropout(ctx, x, 1.5, NULL));
    ck_error("sg_dropout: p = 1.5 outside [0, 1)");
    /* p is checked in evaluation mode too */
    sg_ctx_set_training(ctx, false);
    ck_assert_ptr_null(sg_dropout(ctx, x, 1.0, NULL));
    ck_error("sg_dropout: p = 1 outside [0, 1)");
    sg_ctx_set_training(ctx, true);
    ck_assert_ptr_null(sg_dropout(ctx, NULL, 0.5, NULL));
    ck_no_error();

    ck_assert_ptr_null(sg_dropout_mask(ctx, SG_F32, SG_SHAPE(2, 3), 1.0, NULL));
    ck_error("sg_dropout_mask: p = 1 outside [0, 1)");
    ck_assert_ptr_null(sg_dropout_mask(ctx, SG_F32, SG_SHAPE(2, 3), NAN, NULL));
    ck_error("sg_dropout_mask: p = nan outside [0, 1)");
    ck_assert_ptr_null(sg_dropout_mask(ctx, SG_F32, 2, NULL, 0.5, NULL));
    ck_error("sg_dropout_mask: shape is NULL for 2 dimensions");
    ck_assert_ptr_null(sg_dropout_mask(ctx, SG_F32, SG_SHAPE(2, -3), 0.5, NULL));
    ck_error("sg_dropout_mask: negative size -3 in dimension 1");
    ck_assert_ptr_null(sg_dropout_mask(ctx, (sg_dtype)7, SG_SHAPE(2, 3), 0.5, NULL));
    ck_error("sg_dropout_mask: unknown dtype 7");
    ck_assert_ptr_null(sg_dropout_mask(NULL, SG_F32, SG_SHAPE(2, 3), 0.5, NULL));

    sg_tensor *h = sg_ones(ctx, SG_F64, SG_SHAPE(2, 4));
    ck_assert_ptr_null(sg_zoneout(ctx, x, h, 0.5, NULL));
    ck_error("sg_zoneout: h_prev (2, 3) and h_new (2, 4) differ in shape");
    ck_assert_ptr_null(sg_zoneout(ctx, x, x, 1.5, NULL));
    ck_error("sg_zoneout: p = 1.5 outside [0, 1]");
    ck_assert_ptr_null(sg_zoneout(ctx, x, x, -0.1, NULL));
    ck_error("sg_zoneout: p = -0.1 outside [0, 1]");
    ck_assert_ptr_null(sg_zoneout(ctx, x, x, NAN, NULL));
    ck_error("sg_zoneout: p = nan outside [0, 1]");
    ck_assert_ptr_null(sg_zoneout(ctx, x, sg_ones(ctx, SG_F32, SG_SHAPE(2, 3)), 0.5, NULL));
    ck_error("sg_zoneout: dtype mismatch: float64 and float32");
    ck_assert_ptr_null(sg_zoneout(ctx, NULL, x, 0.5, NULL));
    ck_no_error();

    sg_ctx_reset(ctx);
    ck_assert_ptr_null(sg_dropout(ctx, x, 0.5, NULL));
    ck_error("sg_dropout: tensor used after sg_ctx_reset");
}
END_TEST

int main(void) {
    const ck_tcase tcases[] = {
        {"dropout",
         120,
         {{test_dropout_rule, 2},
          {test_dropout_ctx_rng, 1},
          {test_dropout_seeds, 2},
          {test_dropout_statistics, 2},
          {test_dropout_identity, 2},
          {test_training_mode, 1},
          {test_dropout_backward_values, 2},
          {test_dropout_then_in_place, 1},
          {test_gradcheck, 1},
          {test_dropout_mask, 2},
          {test_zoneout_values, 2},
          {test_detach_cuts_history, 2},
          {test_detach_parameter, 1},
          {test_errors, 1}}},
    };
    return CK_RUN("dropout", tcases, setup, teardown);
}
