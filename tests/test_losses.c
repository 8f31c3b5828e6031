/* Tests of autograd/ops_loss.c with options: cross-entropy over (B, T, V) with int64 and
 * int32 label tensors, reductions mean / sum / none, ignore_index, masks and label
 * smoothing; MSE and BCE-with-logits with masks (full and broadcast) and reductions.
 * Values and gradients against PyTorch (tests/fixtures/losses.h: float64 within 1e-12
 * relative; the float32 path loosely), on contiguous and strided logits (PyTorch's own
 * (B, V, T) layout permuted to (B, T, V)); float64 gradchecks on transposed and sliced
 * inputs; hand-computed edge cases; every error message. */
#include <check.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "autograd.h"

#include "cksuite.h"
#include "ctxtest.h"
#include "fixtures/losses.h"
#include "optest.h"

#define N_ELEMS(a) ((int64_t)(sizeof(a) / sizeof((a)[0])))

/* A tensor of dtype dt holding v[] (row-major, as many as the shape has). */
static sg_tensor *tens(sg_dtype dt, int nd, const int64_t *shape, const double *v) {
    return sg_cast(ctx, sg_from_data(ctx, SG_F64, nd, shape, v), dt);
}

/* Every element of t within rtol of ref (relative to max(|ref|, floor)); NaN matches NaN. */
static void expect_close(const char *what, const sg_tensor *t, const double *ref, int64_t n,
                         double rtol, double floor) {
    ck_assert_msg(t != NULL, "%s: NULL (%s)", what, sg_ctx_error(ctx) ? sg_ctx_error(ctx) : "");
    ck_assert_int_eq(sg_numel(t), n);
    for (int64_t i = 0; i < n; i++) {
        double a = sg_get_flat(t, i);
        if (isnan(ref[i])) {
            ck_assert_msg(isnan(a), "%s[%lld]: got %.17g, want NaN", what, (long long)i, a);
            continue;
        }
        ck_assert_msg(fabs(a - ref[i]) <= rtol * fmax(fabs(ref[i]), floor),
                      "%s[%lld]: got %.17g, want %.17g", what, (long long)i, a, ref[i]);
    }
}

static double scalar(const sg_tensor *t) {
    ck_assert_ptr_nonnull(t);
    ck_assert_int_eq(t->ndim, 0);
    return sg_get_flat(t, 0);
}

/* ---- cross-entropy against PyTorch ------------------------------------------------------ */

typedef struct {
    const char *name;
    sg_reduction red;
    double eps;
    bool mask;
    int64_t ignore;
    const int64_t *labels;
    const double *loss, *dx;
    int64_t nloss;
} ce_case;

#define CE_CASE(NAME, RED, EPS, MASK, IGN, LAB)                                                    \
    { #NAME, RED, EPS, MASK, IGN, LAB, ce_##NAME##_loss, ce_##NAME##_dx, N_ELEMS(ce_##NAME##_loss) }
static const ce_case ce_cases[] = {
    CE_CASE(mean, SG_REDUCE_MEAN, 0, false, -100, ce_labels),
    CE_CASE(sum, SG_REDUCE_SUM, 0, false, -100, ce_labels),
    CE_CASE(none, SG_REDUCE_NONE, 0, false, -100, ce_labels),
    CE_CASE(smooth, SG_REDUCE_MEAN, 0.1, false, -100, ce_labels),
    CE_CASE(smooth_none, SG_REDUCE_NONE, 0.25, false, -100, ce_labels),
    CE_CASE(mask, SG_REDUCE_MEAN, 0, true, -100, ce_labels),
    CE_CASE(mask_sum, SG_REDUCE_SUM, 0, true, -100, ce_labels),
    CE_CASE(all, SG_REDUCE_MEAN, 0.1, true, -100, ce_labels),
    CE_CASE(ign2, SG_REDUCE_MEAN, 0, false, 2, ce_labels_ign2),
};
#define N_CE_CASES ((int)(sizeof ce_cases / sizeof ce_cases[0]))

/* The logits (B, T, V) of the fixture in dtype dt: contiguous (layout 0), or (layout 1)
 * stored as PyTorch's (B, V, T) and permuted to (B, T, V), a strided view. */
static sg_tensor *ce_logits_of(sg_dtype dt, int layout) {
    if (layout == 0)
        return tens(dt, SG_SHAPE(CE_B, CE_T, CE_V), ce_logits);
    double bvt[CE_B * CE_V * CE_T];
    for (int b = 0; b < CE_B; b++)
        for (int t = 0; t < CE_T; t++)
            for (int v = 0; v < CE_V; v++)
                bvt[(b * CE_V + v) * CE_T + t] = ce_logits[(b * CE_T + t) * CE_V + v];
    sg_tensor *x = tens(dt, SG_SHAPE(CE_B, CE_V, CE_T), bvt);
    return sg_permute(ctx, x, (const int[]){0, 2, 1});
}

/* One case in dtype dt with labels of dtype ldt: the loss, then the gradient of the logits
 * (upstream ce_gw for reduction none), against PyTorch within rtol. */
static void run_ce_case(const ce_case *c, sg_dtype dt, sg_dtype ldt, int layout, double rtol) {
    sg_tensor *x = sg_set_requires_grad(ce_logits_of(dt, layout), true);
    sg_tensor *lab = sg_from_data(ctx, SG_I64, SG_SHAPE(CE_B, CE_T), c->labels);
    if (ldt == SG_I32)
        lab = sg_cast(ctx, lab, SG_I32);
    sg_loss_opts o = sg_loss_defaults();
    o.reduction = c->red;
    o.label_smoothing = c->eps;
    o.ignore_index = c->ignore;
    if (c->mask)
        o.mask = tens(dt, SG_SHAPE(CE_B, CE_T), ce_mask);
    sg_tensor *l = sg_cross_entropy_ex(ctx, x, lab, &o);
    char what[96];
    snprintf(what, sizeof what, "ce %s %s layout %d loss", c->name, sg_dtype_name(dt), layout);
    expect_close(what, l, c->loss, c->nloss, rtol, 1e-300);
    ck_assert_int_eq(l->ndim, c->red == SG_REDUCE_NONE ? 2 : 0);
    ck_assert_int_eq(l->op, SG_OP_CROSS_ENTROPY);
    ck_assert_int_eq(sg_tape_size(ctx), 1); /* one node; labels and mask are not on the tape */
    sg_tensor *g = c->red == SG_REDUCE_NONE ? tens(dt, SG_SHAPE(CE_B, CE_T), ce_gw) : NULL;
    ck_assert_int_eq(sg_backward(ctx, l, g), 0);
    snprintf(what, sizeof what, "ce %s %s layout %d dx", c->name, sg_dtype_name(dt), layout);
    /* gradients of ignored rows are exactly 0 in both */
    expect_close(what, x->grad, c->dx, CE_B * CE_T * CE_V, rtol, dt == SG_F32 ? 1e-3 : 1e-300);
    ck_no_error();
    sg_ctx_reset(ctx);
}

START_TEST(test_ce_torch_f64) {
    for (int i = 0; i < N_CE_CASES; i++)
        for (int layout = 0; layout < 2; layout++)
            run_ce_case(&ce_cases[i], SG_F64, layout ? SG_I32 : SG_I64, layout, 1e-12);
}
END_TEST

START_TEST(test_ce_torch_f32) {
    for (int i = 0; i < N_CE_CASES; i++)
        for (int layout = 0; layout < 2; layout++)
            run_ce_case(&ce_cases[i], SG_F32, SG_I64, layout, 2e-5);
}
END_TEST

/* Labels given as a strided view (a transposed (T, B) tensor) read the same. */
START_TEST(test_ce_strided_labels) {
    int64_t tb[CE_T * CE_B];
    for (int b = 0; b < CE_B; b++)
        for (int t = 0; t < CE_T; t++)
            tb[t * CE_B + b] = ce_labels[b * CE_T + t];
    sg_tensor *lab = sg_transpose(ctx, sg_from_data(ctx, SG_I64, SG_SHAPE(CE_T, CE_B), tb), 0, 1);
    ck_assert(!sg_is_contiguous(lab));
    sg_tensor *x = tens(SG_F64, SG_SHAPE(CE_B, CE_T, CE_V), ce_logits);
    expect_close("strided labels", sg_cross_entropy(ctx, x, lab), ce_mean_loss, 1, 1e-12, 1e-300);
    ck_no_error();
}
END_TEST

/* ---- cross-entropy by hand -------------------------------------------------------------- */

START_TEST(test_ce_hand) {
    const double e = exp(1.0), lse = log(e + e * e + e * e * e); /* logits (1, 2, 3) */
    for (int di = 0; di < 2; di++) {
        sg_dtype dt = di ? SG_F64 : SG_F32;
        double tol = dt == SG_F32 ? 2e-6 : 1e-14;
        /* (V) logits with a 0-d label; smoothing 0.3: (1 - eps) (lse - 3) + eps/3 sum(lse - x) */
        sg_tensor *x = sg_set_requires_grad(tens(dt, SG_SHAPE(3), (const double[]){1, 2, 3}), true);
        sg_tensor *y = sg_full(ctx, SG_I64, 0, NULL, 2);
        sg_loss_opts o = sg_loss_defaults();
        o.label_smoothing = 0.3;
        sg_tensor *l = sg_cross_entropy_ex(ctx, x, y, &o);
        double want = 0.7 * (lse - 3) + 0.1 * (3 * lse - 6);
        ck_assert_double_eq_tol(scalar(l), want, tol);
        ck_assert_int_eq(sg_backward(ctx, l, NULL), 0);
        const double p[3] = {e / exp(lse), e * e / exp(lse), e * e * e / exp(lse)};
        const double dx[3] = {p[0] - 0.1, p[1] - 0.1, p[2] - 0.8};
        expect_close("smoothed grad", x->grad, dx, 3, tol, 1);
        /* Every label ignored: the mean of nothing is NaN (PyTorch too), the sum 0, and
         * nothing flows back. */
        sg_zero_grad(x);
        sg_tensor *xs = sg_reshape(ctx, x, SG_SHAPE(1, 3));
        sg_tensor *ign = sg_full(ctx, SG_I32, SG_SHAPE(1), -100);
        l = sg_cross_entropy(ctx, xs, ign);
        ck_assert(isnan(scalar(l)));
        ck_assert_int_eq(sg_backward(ctx, l, NULL), 0);
        expect_close("all ignored grad", x->grad, (const double[]){0, 0, 0}, 3, 0, 1);
        o = sg_loss_defaults();
        o.reduction = SG_REDUCE_SUM;
        ck_assert_double_eq(scalar(sg_cross_entropy_ex(ctx, xs, ign, &o)), 0);
        /* Everything masked out: NaN too. */
        o = sg_loss_defaults();
        o.mask = sg_zeros(ctx, dt, SG_SHAPE(1));
        ck_assert(
            isnan(scalar(sg_cross_entropy_ex(ctx, xs, sg_zeros(ctx, SG_I64, SG_SHAPE(1)), &o))));
        /* An excluded row is skipped outright: a NaN logit there reaches neither the loss
         * nor the gradient. Row 1 is ignored, row 2 masked out; row 0 counts (mean: it). */
        sg_tensor *z = sg_set_requires_grad(
            tens(dt, SG_SHAPE(3, 3), (const double[]){1, 2, 3, NAN, 0, 0, 0, NAN, INFINITY}), true);
        o.mask = tens(dt, SG_SHAPE(3), (const double[]){1, 1, 0});
        l = sg_cross_entropy_ex(
            ctx, z, sg_from_data(ctx, SG_I64, SG_SHAPE(3), (const int64_t[]){2, -100, 0}), &o);
        ck_assert_double_eq_tol(scalar(l), lse - 3, tol);
        ck_assert_int_eq(sg_backward(ctx, l, NULL), 0);
        expect_close("skipped rows grad", z->grad,
                     (const double[]){p[0], p[1], p[2] - 1, 0, 0, 0, 0, 0, 0}, 9, tol, 1);
        /* A fractional mask weights: mean = (0.5 l0 + 2 l1) / 2.5 over labels (2, 0) of
         * rows (1, 2, 3) and (1, 1, 1). */
        o.mask = tens(dt, SG_SHAPE(2), (const double[]){0.5, 2});
        l = sg_cross_entropy_ex(ctx, tens(dt, SG_SHAPE(2, 3), (const double[]){1, 2, 3, 1, 1, 1}),
                                sg_from_data(ctx, SG_I64, SG_SHAPE(2), (const int64_t[]){2, 0}),
                                &o);
        ck_assert_double_eq_tol(scalar(l), (0.5 * (lse - 3) + 2 * log(3.0)) / 2.5, tol);
        /* Empty: (0, V) logits with (0,) labels: mean NaN, none an empty (0,) tensor. */
        sg_tensor *ex = sg_zeros(ctx, dt, SG_SHAPE(0, 4)), *el = sg_zeros(ctx, SG_I64, SG_SHAPE(0));
        ck_assert(isnan(scalar(sg_cross_entropy(ctx, ex, el))));
        o = sg_loss_defaults();
        o.reduction = SG_REDUCE_NONE;
        sg_tensor *en = sg_cross_entropy_ex(ctx, ex, el, &o);
        ck_assert_ptr_nonnull(en);
        ck_assert_int_eq(en->ndim, 1);
        ck_assert_int_eq(en->shape[0], 0);
        ck_no_error();
    }
}
END_TEST

/* ---- MSE and BCE with masks against PyTorch --------------------------------------------- */

typedef struct {
    const char *name;
    sg_tensor *(*fn)(sg_ctx *, sg_tensor *, sg_tensor *, const sg_loss_opts *);
    const double *full_loss, *full_dx, *full_dz, *row_loss, *row_dx, *row_dz, *none, *sum;
} pm_case;
static const pm_case pm_cases[2] = {
    {"mse", sg_mse_loss_ex, mse_full_loss, mse_full_dx, mse_full_dz, mse_row_loss, mse_row_dx,
     mse_row_dz, mse_none, mse_sum},
    {"bce", sg_bce_with_logits_ex, bce_full_loss, bce_full_dx, bce_full_dz, bce_row_loss,
     bce_row_dx, bce_row_dz, bce_none, bce_sum},
};

START_TEST(test_pair_masks_torch) {
    for (int k = 0; k < 2; k++)
        for (int di = 0; di < 2; di++) {
            const pm_case *c = &pm_cases[k];
            sg_dtype dt = di ? SG_F64 : SG_F32;
            double rtol = dt == SG_F64 ? 1e-12 : 2e-5, fl = dt == SG_F64 ? 1e-300 : 1e-3;
            for (int m = 0; m < 2; m++) {
                /* x strided: the transpose of a (C, R) tensor */
                double xt[PM_R * PM_C];
                for (int r = 0; r < PM_R; r++)
                    for (int j = 0; j < PM_C; j++)
                        xt[j * PM_R + r] = pm_x[r * PM_C + j];
                sg_tensor *x = sg_transpose(ctx, tens(dt, SG_SHAPE(PM_C, PM_R), xt), 0, 1);
                sg_tensor *z = tens(dt, SG_SHAPE(PM_R, PM_C), pm_z);
                sg_set_requires_grad(x, true);
                sg_set_requires_grad(z, true);
                sg_loss_opts o = sg_loss_defaults();
                /* the row mask as (C,): broadcast over the rows */
                o.mask = m ? tens(SG_F64, SG_SHAPE(PM_C), pm_row)
                           : tens(dt, SG_SHAPE(PM_R, PM_C), pm_mask);
                sg_tensor *l = c->fn(ctx, x, z, &o);
                expect_close(c->name, l, m ? c->row_loss : c->full_loss, 1, rtol, fl);
                ck_assert_int_eq(sg_backward(ctx, l, NULL), 0);
                expect_close("dx", x->grad, m ? c->row_dx : c->full_dx, PM_R * PM_C, rtol, fl);
                expect_close("dz", z->grad, m ? c->row_dz : c->full_dz, PM_R * PM_C, rtol, fl);
            }
            sg_tensor *x = tens(dt, SG_SHAPE(PM_R, PM_C), pm_x);
            sg_tensor *z = tens(dt, SG_SHAPE(PM_R, PM_C), pm_z);
            sg_loss_opts o = sg_loss_defaults();
            o.reduction = SG_REDUCE_NONE;
            expect_close("none", c->fn(ctx, x, z, &o), c->none, PM_R * PM_C, rtol, fl);
            o.reduction = SG_REDUCE_SUM;
            expect_close("sum", c->fn(ctx, x, z, &o), c->sum, 1, rtol, fl);
            /* NULL options: the plain forms' mean */
            sg_tensor *plain = k ? sg_bce_with_logits(ctx, x, z) : sg_mse_loss(ctx, x, z);
            ck_assert_double_eq(scalar(c->fn(ctx, x, z, NULL)), scalar(plain));
            ck_no_error();
            sg_ctx_reset(ctx);
        }
}
END_TEST

/* Reduction none with a mask is mask * l, and its backward weighs the upstream gradient
 * by the mask. MSE of (1, 2, 3) against 0 with mask (1, 0, 0.5): (1, 0, 4.5); gradient
 * 2 x mask g. */
START_TEST(test_pair_none_mask) {
    sg_tensor *x = sg_set_requires_grad(tens(SG_F64, SG_SHAPE(3), (const double[]){1, 2, 3}), true);
    sg_loss_opts o = sg_loss_defaults();
    o.reduction = SG_REDUCE_NONE;
    o.mask = tens(SG_F64, SG_SHAPE(3), (const double[]){1, 0, 0.5});
    sg_tensor *l = sg_mse_loss_ex(ctx, x, sg_zeros(ctx, SG_F64, SG_SHAPE(3)), &o);
    expect_close("none", l, (const double[]){1, 0, 4.5}, 3, 1e-15, 1);
    ck_assert_int_eq(sg_backward(ctx, l, tens(SG_F64, SG_SHAPE(3), (const double[]){1, 1, 2})), 0);
    expect_close("grad", x->grad, (const double[]){2, 0, 6}, 3, 1e-15, 1);
    ck_no_error();
}
END_TEST

/* ---- gradcheck ------------------------------------------------------------------------- */

typedef struct {
    int loss; /* 0 cross-entropy, 1 MSE, 2 BCE */
    int view; /* 0: as is; 1: permuted (B, V, T) -> (B, T, V) / transposed; 2: sliced */
    sg_loss_opts o;
    const int64_t *labels;
} gspec;

static sg_tensor *gfn(sg_ctx *c, sg_tensor *const *in, void *user) {
    const gspec *s = user;
    sg_tensor *x = in[0];
    if (s->loss == 0) {
        if (s->view == 1)
            x = sg_permute(c, x, (const int[]){0, 2, 1});
        else if (s->view == 2)
            x = sg_slice(c, x, 1, 1, x->shape[1] - 1);
        sg_tensor *lab = sg_from_data(c, SG_I64, SG_SHAPE(x->shape[0], x->shape[1]), s->labels);
        return sg_cross_entropy_ex(c, x, lab, &s->o);
    }
    sg_tensor *z = in[1];
    if (s->view == 1) {
        x = sg_transpose(c, x, 0, 1);
        z = sg_transpose(c, z, 0, 1);
    } else if (s->view == 2) {
        x = sg_slice(c, x, 0, 1, x->shape[0] - 1);
        z = sg_slice(c, z, 0, 1, z->shape[0] - 1);
    }
    return s->loss == 1 ? sg_mse_loss_ex(c, x, z, &s->o) : sg_bce_with_logits_ex(c, x, z, &s->o);
}

START_TEST(test_gradcheck) {
    /* CE on (2, 3, 4) after the view: labels with an ignored one */
    static const int64_t lab[6] = {1, -100, 3, 0, 2, 3};
    for (int di = 0; di < 2; di++) {
        sg_dtype dt = di ? SG_F64 : SG_F32;
        for (int loss = 0; loss < 3; loss++)
            for (int view = 0; view < 3; view++)
                for (int red = 0; red < 3; red++)
                    for (int variant = 0; variant < 2; variant++) {
                        gspec s = {
                            .loss = loss, .view = view, .o = sg_loss_defaults(), .labels = lab};
                        s.o.reduction = (sg_reduction)red;
                        if (variant && loss == 0)
                            s.o.label_smoothing = 0.2;
                        if (variant) /* a mask broadcast along the last axis of the terms */
                            s.o.mask =
                                loss == 0
                                    ? tens(dt, SG_SHAPE(2, 3), (const double[]){1, 1, 0, 0.5, 1, 1})
                                    : tens(dt, SG_SHAPE(3, 1), (const double[]){1, 0, 2});
                        sg_tensor *in[2];
                        int n = loss == 0 ? 1 : 2;
                        if (loss == 0) {
                            int64_t sh[3] = {2, 3, 4};
                            if (view == 1)
                                sh[1] = 4, sh[2] = 3;
                            if (view == 2)
                                sh[1] = 4;
                            in[0] = sg_rand_normal(ctx, dt, 3, sh, 0, 1.5);
                        } else {
                            int64_t sh[2] = {view == 2 ? 4 : 3, 4};
                            if (view == 1)
                                sh[0] = 4, sh[1] = 3;
                            in[0] = sg_rand_normal(ctx, dt, 2, sh, 0, 1.5);
                            in[1] = sg_rand_uniform(ctx, dt, 2, sh, 0, 1);
                        }
                        char what[96];
                        snprintf(what, sizeof what, "loss %d view %d reduction %d variant %d", loss,
                                 view, red, variant);
                        expect_gradcheck(ctx, gfn, &s, n, in, what);
                        sg_ctx_reset(ctx);
                    }
    }
}
END_TEST

/* ---- errors ---------------------------------------------------------------------------- */

START_TEST(test_errors) {
    sg_tensor *x = sg_zeros(ctx, SG_F32, SG_SHAPE(3, 4, 5));
    sg_tensor *lab = sg_zeros(ctx, SG_I64, SG_SHAPE(3, 4));
    sg_loss_opts o = sg_loss_defaults();
    /* labels */
    ck_assert_ptr_null(sg_cross_entropy(ctx, x, sg_zeros(ctx, SG_I64, SG_SHAPE(3, 5))));
    ck_error("sg_cross_entropy: labels (3, 5) do not match logits (3, 4, 5): want the logits' "
             "shape without the class axis");
    ck_assert_ptr_null(sg_cross_entropy_ex(ctx, x, sg_zeros(ctx, SG_I64, SG_SHAPE(3, 4, 1)), &o));
    ck_error("sg_cross_entropy_ex: labels (3, 4, 1) do not match logits (3, 4, 5): want the "
             "logits' shape without the class axis");
    ck_assert_ptr_null(sg_cross_entropy(ctx, x, sg_zeros(ctx, SG_F32, SG_SHAPE(3, 4))));
    ck_error("sg_cross_entropy: labels must be int64 or int32, got float32");
    sg_tensor *bad = sg_zeros(ctx, SG_I32, SG_SHAPE(3, 4));
    sg_set_flat(bad, 6, 5);
    ck_assert_ptr_null(sg_cross_entropy(ctx, x, bad));
    ck_error("sg_cross_entropy: label 5 at index (1, 2) out of range [0, 5)");
    sg_set_flat(bad, 6, -100); /* ignored, but another negative label is an error */
    sg_set_flat(bad, 11, -1);
    ck_assert_ptr_null(sg_cross_entropy(ctx, x, bad));
    ck_error("sg_cross_entropy: label -1 at index (2, 3) out of range [0, 5)");
    o.ignore_index = -1; /* now -1 is the ignored one and -100 an error */
    ck_assert_ptr_null(sg_cross_entropy_ex(ctx, x, bad, &o));
    ck_error("sg_cross_entropy_ex: label -100 at index (1, 2) out of range [0, 5)");
    /* logits */
    ck_assert_ptr_null(
        sg_cross_entropy(ctx, sg_scalar(ctx, SG_F32, 1), sg_zeros(ctx, SG_I64, 0, NULL)));
    ck_error("sg_cross_entropy: logits must have a class axis, (..., V); got a 0-d tensor");
    ck_assert_ptr_null(sg_cross_entropy(ctx, sg_zeros(ctx, SG_F64, SG_SHAPE(2, 0)),
                                        sg_zeros(ctx, SG_I64, SG_SHAPE(2))));
    ck_error("sg_cross_entropy: logits (2, 0) have no classes (V = 0)");
    ck_assert_ptr_null(sg_cross_entropy(ctx, lab, lab));
    ck_error("sg_cross_entropy: input 0 is an int64 tensor; this op takes float32 or float64");
    /* options */
    o = sg_loss_defaults();
    o.label_smoothing = 1.5;
    ck_assert_ptr_null(sg_cross_entropy_ex(ctx, x, lab, &o));
    ck_error("sg_cross_entropy_ex: label_smoothing = 1.5 outside [0, 1]");
    o.label_smoothing = NAN;
    ck_assert_ptr_null(sg_cross_entropy_ex(ctx, x, lab, &o));
    ck_error("sg_cross_entropy_ex: label_smoothing = nan outside [0, 1]");
    o.label_smoothing = -0.1;
    ck_assert_ptr_null(sg_cross_entropy_ex(ctx, x, lab, &o));
    ck_error("sg_cross_entropy_ex: label_smoothing = -0.1 outside [0, 1]");
    o.label_smoothing = 0.1;
    ck_assert_ptr_null(sg_mse_loss_ex(ctx, x, x, &o));
    ck_error("sg_mse_loss_ex: label_smoothing = 0.1: only cross-entropy smooths labels");
    o = sg_loss_defaults();
    o.reduction = (sg_reduction)7;
    ck_assert_ptr_null(sg_bce_with_logits_ex(ctx, x, x, &o));
    ck_error("sg_bce_with_logits_ex: reduction 7 is none of SG_REDUCE_MEAN, SG_REDUCE_SUM, "
             "SG_REDUCE_NONE");
    o = sg_loss_defaults();
    o.mask = sg_ones(ctx, SG_F32, SG_SHAPE(2, 4));
    ck_assert_ptr_null(sg_cross_entropy_ex(ctx, x, lab, &o));
    ck_error("sg_cross_entropy_ex: mask (2, 4) does not broadcast to (3, 4)");
    o.mask = sg_ones(ctx, SG_F32, SG_SHAPE(1, 3, 4));
    ck_assert_ptr_null(sg_cross_entropy_ex(ctx, x, lab, &o));
    ck_error("sg_cross_entropy_ex: mask (1, 3, 4) does not broadcast to (3, 4)");
    o.mask = sg_ones(ctx, SG_F32, SG_SHAPE(3, 1)); /* broadcasts over T: fine */
    ck_assert_ptr_nonnull(sg_cross_entropy_ex(ctx, x, lab, &o));
    o.mask = sg_ones(ctx, SG_F32, SG_SHAPE(4, 4));
    ck_assert_ptr_null(sg_mse_loss_ex(ctx, x, x, &o));
    ck_error("sg_mse_loss_ex: mask (4, 4) does not broadcast to (3, 4, 5)");
    o.mask = sg_ones(ctx, SG_I64, SG_SHAPE(3, 4));
    ck_assert_ptr_null(sg_cross_entropy_ex(ctx, x, lab, &o));
    ck_error("sg_cross_entropy_ex: mask must be float32 or float64, got int64");
    o.mask = sg_set_requires_grad(sg_ones(ctx, SG_F32, SG_SHAPE(3, 4)), true);
    ck_assert_ptr_null(sg_cross_entropy_ex(ctx, x, lab, &o));
    ck_error("sg_cross_entropy_ex: mask requires grad; a loss takes its mask as constant weights");
    /* NULL inputs propagate silently; NULL options are the defaults */
    ck_assert_ptr_null(sg_cross_entropy(ctx, NULL, lab));
    ck_assert_ptr_null(sg_cross_entropy(ctx, x, NULL));
    ck_assert_ptr_null(sg_mse_loss_ex(ctx, x, NULL, NULL));
    ck_assert_ptr_null(sg_bce_with_logits_ex(ctx, NULL, x, NULL));
    ck_assert_ptr_nonnull(sg_cross_entropy_ex(ctx, x, lab, NULL));
    ck_no_error();
    /* stale tensors: labels and a mask from before a reset */
    sg_tensor *xp = sg_persistent_new(ctx, SG_F32, SG_SHAPE(3, 4, 5));
    o = sg_loss_defaults();
    o.mask = sg_ones(ctx, SG_F32, SG_SHAPE(3, 4));
    sg_ctx_reset(ctx);
    ck_assert_ptr_null(sg_cross_entropy(ctx, xp, lab));
    ck_error("sg_cross_entropy: tensor used after sg_ctx_reset");
    ck_assert_ptr_null(sg_mse_loss_ex(ctx, xp, xp, &o));
    ck_error("sg_mse_loss_ex: tensor used after sg_ctx_reset");
}
END_TEST

int main(void) {
    const ck_tcase tcases[] = {{"losses",
                                120,
                                {{test_ce_torch_f64, 1},
                                 {test_ce_torch_f32, 1},
                                 {test_ce_strided_labels, 1},
                                 {test_ce_hand, 1},
                                 {test_pair_masks_torch, 1},
                                 {test_pair_none_mask, 1},
                                 {test_gradcheck, 1},
                                 {test_errors, 1}}}};
    return CK_RUN("losses", tcases, setup, teardown);
}
