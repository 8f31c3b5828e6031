/* Tests of optim/: SGD (plain, momentum, Nesterov, weight decay, dampening), Adam, Adam with
 * L2, AdamW and amsgrad against PyTorch's five-step trajectories (tests/fixtures/optim.h,
 * from gen_optim.py: torch 1.13 in float64), gradient clipping against torch.nn.utils, state
 * save/restore, the per-parameter step count, learning-rate schedules, and every error. */
#define _GNU_SOURCE /* M_PI */
#include <check.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fixtures/optim.h"
#include "layers/layers.h"
#include "optim/optim.h"
#include "tensor/tensor.h"

#include "cksuite.h"
#include "ctxtest.h"

static const sg_dtype DTYPES[2] = {SG_F64, SG_F32};

/* ---- fixtures ---------------------------------------------------------------------------- */

static const double *const GRADS[2][OPTIM_STEPS] = {
    {optim_p0_grad0, optim_p0_grad1, optim_p0_grad2, optim_p0_grad3, optim_p0_grad4},
    {optim_p1_grad0, optim_p1_grad1, optim_p1_grad2, optim_p1_grad3, optim_p1_grad4},
};
static const double *const INIT[2] = {optim_p0_init, optim_p1_init};
static const int64_t NUMEL[2] = {OPTIM_P0_NUMEL, OPTIM_P1_NUMEL};
static const char *const NAMES[2] = {"lstm.kernel", "dense.bias"};

/* Write doubles into a contiguous tensor of either dtype. */
static void put(sg_tensor *t, const double *v) {
    for (int64_t i = 0; i < sg_numel(t); i++)
        ck_assert_int_eq(sg_set_flat(t, i, v[i]), 0);
}

/* The two fixture parameters p0 (3, 4) "lstm.kernel" and p1 (5) "dense.bias" at their
 * initial values, appended to `list`. */
typedef struct two_params {
    sg_tensor *p[2];
    sg_param_list list;
} two_params;

static void make_params(two_params *tp, sg_dtype dt0, sg_dtype dt1) {
    memset(tp, 0, sizeof *tp);
    tp->p[0] = sg_param_new(ctx, dt0, SG_SHAPE(OPTIM_P0_ROWS, OPTIM_P0_COLS), NAMES[0]);
    tp->p[1] = sg_param_new(ctx, dt1, SG_SHAPE(OPTIM_P1_NUMEL), NAMES[1]);
    for (int k = 0; k < 2; k++) {
        ck_assert_ptr_nonnull(tp->p[k]);
        put(tp->p[k], INIT[k]);
        ck_assert_int_eq(sg_params_add(&tp->list, NAMES[k], tp->p[k]), 0);
    }
}

static void set_grads(two_params *tp, int step) {
    for (int k = 0; k < 2; k++)
        put(tp->p[k]->grad, GRADS[k][step]);
}

static void free_params(two_params *tp) {
    sg_params_clear(&tp->list);
    for (int k = 0; k < 2; k++)
        sg_tensor_free(tp->p[k]);
}

/* Max over t's elements of |t - ref| / (|ref| + floor); fails when any element is beyond
 * |t - ref| <= rtol * |ref| + atol. */
static double check_close(const sg_tensor *t, const double *ref, double rtol, double atol,
                          const char *what) {
    double worst = 0.0;
    for (int64_t i = 0; i < sg_numel(t); i++) {
        double a = sg_get_flat(t, i), b = ref[i], d = fabs(a - b);
        ck_assert_msg(d <= rtol * fabs(b) + atol, "%s[%lld]: %.17g vs torch %.17g (diff %.3g)",
                      what, (long long)i, a, b, d);
        double r = d / (fabs(b) + 1e-300);
        if (r > worst)
            worst = r;
    }
    return worst;
}

/* Tolerances against the float64 torch reference: float64 to 1e-12 relative (floor 1e-15
 * for exact zeros; the observed difference is 0: the updates do torch's operations in
 * torch's order), float32 to float32 rounding accumulated over five steps. */
static double rtol_of(sg_dtype dt) { return dt == SG_F64 ? 1e-12 : 1e-5; }
static double atol_of(sg_dtype dt) { return dt == SG_F64 ? 1e-15 : 1e-6; }

/* ---- trajectories against torch ------------------------------------------------------------ */

#define REFS(prefix)                                                                               \
    {                                                                                              \
        {prefix##_p0_step1, prefix##_p1_step1}, {prefix##_p0_step2, prefix##_p1_step2},            \
            {prefix##_p0_step3, prefix##_p1_step3}, {prefix##_p0_step4, prefix##_p1_step4},        \
            {prefix##_p0_step5, prefix##_p1_step5},                                                \
    }

typedef struct traj_case {
    const char *name;
    bool adam;
    sg_sgd_options sgd;
    sg_adam_options ao;
    const char *kind;
    const double *ref[OPTIM_STEPS][2];
} traj_case;

static const traj_case CASES[] = {
    {"sgd", false, {.lr = 0.1}, {.lr = 0}, "sgd", REFS(sgd)},
    {"sgd_momentum", false, {.lr = 0.1, .momentum = 0.9}, {.lr = 0}, "sgd", REFS(sgd_momentum)},
    {"sgd_nesterov",
     false,
     {.lr = 0.1, .momentum = 0.9, .nesterov = true},
     {.lr = 0},
     "sgd",
     REFS(sgd_nesterov)},
    {"sgd_momentum_wd",
     false,
     {.lr = 0.1, .momentum = 0.9, .weight_decay = 0.01},
     {.lr = 0},
     "sgd",
     REFS(sgd_momentum_wd)},
    {"sgd_dampening",
     false,
     {.lr = 0.05, .momentum = 0.5, .dampening = 0.1},
     {.lr = 0},
     "sgd",
     REFS(sgd_dampening)},
    {"adam", true, {.lr = 0}, {.lr = 1e-2}, "adam", REFS(adam)},
    {"adam_wd", true, {.lr = 0}, {.lr = 1e-2, .weight_decay = 0.1}, "adam", REFS(adam_wd)},
    {"adamw",
     true,
     {.lr = 0},
     {.lr = 1e-2, .weight_decay = 0.1, .decoupled = true},
     "adamw",
     REFS(adamw)},
    {"adam_amsgrad", true, {.lr = 0}, {.lr = 1e-2, .amsgrad = true}, "adam", REFS(adam_amsgrad)},
};
#define NCASES ((int)(sizeof CASES / sizeof CASES[0]))

static sg_optim *make_opt(const traj_case *c, const sg_param_list *list) {
    return c->adam ? sg_adam_new(ctx, list, c->ao) : sg_sgd_new(ctx, list, c->sgd);
}

/* _i = case * 2 + dtype index: all five steps of every optimizer in both dtypes. */
START_TEST(test_trajectory) {
    const traj_case *c = &CASES[_i / 2];
    sg_dtype dt = DTYPES[_i % 2];
    two_params tp;
    make_params(&tp, dt, dt);
    sg_optim *opt = make_opt(c, &tp.list);
    ck_assert_ptr_nonnull(opt);
    ck_assert_str_eq(sg_optim_kind(opt), c->kind);
    double worst = 0.0;
    for (int s = 0; s < OPTIM_STEPS; s++) {
        set_grads(&tp, s);
        ck_assert_int_eq(sg_optim_step(opt), 0);
        ck_assert_int_eq(sg_optim_steps(opt), s + 1);
        for (int k = 0; k < 2; k++) {
            char what[64];
            snprintf(what, sizeof what, "%s %s step %d p%d", c->name, sg_dtype_name(dt), s + 1, k);
            double w = check_close(tp.p[k], c->ref[s][k], rtol_of(dt), atol_of(dt), what);
            worst = fmax(worst, w);
        }
    }
    ck_no_error();
    printf("optim %-16s %s: max relative error vs torch %.3g\n", c->name, sg_dtype_name(dt), worst);
    sg_optim_free(opt);
    free_params(&tp);
}
END_TEST

/* One optimizer over a float64 and a float32 parameter: each follows its own dtype. */
START_TEST(test_mixed_dtypes) {
    const traj_case *c = &CASES[_i];
    two_params tp;
    make_params(&tp, SG_F64, SG_F32);
    sg_optim *opt = make_opt(c, &tp.list);
    ck_assert_ptr_nonnull(opt);
    for (int s = 0; s < OPTIM_STEPS; s++) {
        set_grads(&tp, s);
        ck_assert_int_eq(sg_optim_step(opt), 0);
        check_close(tp.p[0], c->ref[s][0], 1e-12, 1e-15, "mixed p0 (float64)");
        check_close(tp.p[1], c->ref[s][1], 1e-5, 1e-6, "mixed p1 (float32)");
    }
    sg_optim_free(opt);
    free_params(&tp);
}
END_TEST

/* ---- clipping ------------------------------------------------------------------------------ */

START_TEST(test_clip_grad_norm) {
    sg_dtype dt = DTYPES[_i];
    two_params tp;
    make_params(&tp, dt, dt);
    /* An entry without a gradient is skipped (torch skips .grad None). */
    sg_tensor *frozen = sg_persistent_new(ctx, dt, SG_SHAPE(2));
    sg_fill(frozen, 100.0);
    ck_assert_int_eq(sg_params_add(&tp.list, "frozen", frozen), 0);
    set_grads(&tp, 0);
    double total = sg_clip_grad_norm(&tp.list, CLIP_MAX_NORM);
    ck_assert_double_eq_tol(total, clip_norm_total[0],
                            dt == SG_F64 ? 1e-14 * clip_norm_total[0] : 1e-6);
    check_close(tp.p[0]->grad, clip_norm_p0, dt == SG_F64 ? 1e-13 : 1e-6, 1e-15, "clip p0");
    check_close(tp.p[1]->grad, clip_norm_p1, dt == SG_F64 ? 1e-13 : 1e-6, 1e-15, "clip p1");
    /* The clipped gradients have norm max_norm / (1 + 1e-6 / total). */
    double sq = 0.0;
    for (int k = 0; k < 2; k++)
        for (int64_t i = 0; i < NUMEL[k]; i++)
            sq += pow(sg_get_flat(tp.p[k]->grad, i), 2);
    ck_assert_double_eq_tol(sqrt(sq), CLIP_MAX_NORM * total / (total + 1e-6),
                            dt == SG_F64 ? 1e-14 : 1e-6);
    /* Below the limit nothing changes (bit for bit), and the norm is still returned. */
    set_grads(&tp, 0);
    double again = sg_clip_grad_norm(&tp.list, 1e3);
    ck_assert_double_eq_tol(again, clip_norm_total[0], dt == SG_F64 ? 1e-14 : 1e-6);
    for (int k = 0; k < 2; k++)
        for (int64_t i = 0; i < NUMEL[k]; i++)
            ck_assert(sg_get_flat(tp.p[k]->grad, i) ==
                      (dt == SG_F64 ? GRADS[k][0][i] : (double)(float)GRADS[k][0][i]));
    /* An empty list has norm 0. */
    sg_param_list empty = {0};
    ck_assert(sg_clip_grad_norm(&empty, 1.0) == 0.0);
    ck_assert_int_eq(sg_clip_grad_value(&empty, 1.0), 0);
    ck_no_error();
    sg_tensor_free(frozen);
    free_params(&tp);
}
END_TEST

START_TEST(test_clip_grad_value) {
    sg_dtype dt = DTYPES[_i];
    two_params tp;
    make_params(&tp, dt, dt);
    set_grads(&tp, 0);
    ck_assert_int_eq(sg_clip_grad_value(&tp.list, CLIP_VALUE), 0);
    /* Clamping is exact in both dtypes (float32: to the float nearest 0.01). */
    for (int k = 0; k < 2; k++) {
        const double *ref = k ? clip_value_p1 : clip_value_p0;
        for (int64_t i = 0; i < NUMEL[k]; i++) {
            double want = dt == SG_F64 ? ref[i] : (double)(float)ref[i];
            ck_assert_msg(sg_get_flat(tp.p[k]->grad, i) == want, "clip value p%d[%lld]", k,
                          (long long)i);
        }
    }
    /* NaN stays NaN (torch.clamp_), +-Inf are clamped. */
    sg_set_flat(tp.p[1]->grad, 0, NAN);
    sg_set_flat(tp.p[1]->grad, 1, INFINITY);
    sg_set_flat(tp.p[1]->grad, 2, -INFINITY);
    ck_assert_int_eq(sg_clip_grad_value(&tp.list, 0.5), 0);
    ck_assert(isnan(sg_get_flat(tp.p[1]->grad, 0)));
    ck_assert(sg_get_flat(tp.p[1]->grad, 1) == 0.5);
    ck_assert(sg_get_flat(tp.p[1]->grad, 2) == -0.5);
    ck_no_error();
    free_params(&tp);
}
END_TEST

/* ---- state, steps, restore ----------------------------------------------------------------- */

START_TEST(test_state_names) {
    two_params tp;
    make_params(&tp, SG_F64, SG_F64);
    struct {
        bool adam;
        sg_sgd_options so;
        sg_adam_options ao;
        int n;
        const char *names[6];
    } cases[] = {
        {false, {.lr = 0.1}, {.lr = 0}, 0, {NULL}},
        {false,
         {.lr = 0.1, .momentum = 0.9},
         {.lr = 0},
         2,
         {"optim.lstm.kernel.momentum_buffer", "optim.dense.bias.momentum_buffer"}},
        {true,
         {.lr = 0},
         {.lr = 0},
         4,
         {"optim.lstm.kernel.exp_avg", "optim.lstm.kernel.exp_avg_sq", "optim.dense.bias.exp_avg",
          "optim.dense.bias.exp_avg_sq"}},
        {true,
         {.lr = 0},
         {.amsgrad = true, .decoupled = true},
         6,
         {"optim.lstm.kernel.exp_avg", "optim.lstm.kernel.exp_avg_sq",
          "optim.lstm.kernel.max_exp_avg_sq", "optim.dense.bias.exp_avg",
          "optim.dense.bias.exp_avg_sq", "optim.dense.bias.max_exp_avg_sq"}},
    };
    for (int c = 0; c < 4; c++) {
        sg_optim *opt = cases[c].adam ? sg_adam_new(ctx, &tp.list, cases[c].ao)
                                      : sg_sgd_new(ctx, &tp.list, cases[c].so);
        ck_assert_ptr_nonnull(opt);
        sg_param_list st = {0};
        ck_assert_int_eq(sg_optim_state(opt, &st), 0);
        ck_assert_int_eq(st.n, cases[c].n);
        for (int i = 0; i < st.n; i++) {
            ck_assert_str_eq(st.items[i].name, cases[c].names[i]);
            sg_tensor *t = st.items[i].tensor, *p = tp.p[i < st.n / 2 ? 0 : 1];
            /* Persistent, the parameter's shape and dtype, zero before the first step. */
            ck_assert(t->flags & SG_FLAG_PERSISTENT);
            ck_assert_int_eq(t->dtype, p->dtype);
            ck_assert_int_eq(t->ndim, p->ndim);
            for (int d = 0; d < p->ndim; d++)
                ck_assert_int_eq(t->shape[d], p->shape[d]);
            for (int64_t j = 0; j < sg_numel(t); j++)
                ck_assert(sg_get_flat(t, j) == 0.0);
        }
        sg_params_clear(&st);
        sg_optim_free(opt);
    }
    /* After one SGD-momentum step the buffer is the gradient itself (no dampening at the
     * first step) and the state tensors are the optimizer's live buffers. */
    sg_optim *opt =
        sg_sgd_new(ctx, &tp.list, (sg_sgd_options){.lr = 0.1, .momentum = 0.9, .dampening = 0.5});
    sg_param_list st = {0};
    ck_assert_int_eq(sg_optim_state(opt, &st), 0);
    set_grads(&tp, 0);
    ck_assert_int_eq(sg_optim_step(opt), 0);
    for (int k = 0; k < 2; k++)
        for (int64_t i = 0; i < NUMEL[k]; i++)
            ck_assert(sg_get_flat(st.items[k].tensor, i) == GRADS[k][0][i]);
    sg_params_clear(&st);
    sg_optim_free(opt);
    ck_no_error();
    free_params(&tp);
}
END_TEST

/* Copy every state tensor of `from` into the same-named one of `to`. */
static void copy_state(const sg_optim *from, sg_optim *to) {
    sg_param_list a = {0}, b = {0};
    ck_assert_int_eq(sg_optim_state(from, &a), 0);
    ck_assert_int_eq(sg_optim_state(to, &b), 0);
    ck_assert_int_eq(a.n, b.n);
    for (int i = 0; i < a.n; i++) {
        sg_tensor *dst = sg_params_find(&b, a.items[i].name);
        ck_assert_ptr_nonnull(dst);
        ck_assert_int_eq(sg_copy(dst, a.items[i].tensor), 0);
    }
    sg_params_clear(&a);
    sg_params_clear(&b);
}

static bool same_bits(const sg_tensor *a, const sg_tensor *b) {
    return sg_numel(a) == sg_numel(b) && a->dtype == b->dtype &&
           !memcmp(sg_data(a), sg_data(b), (size_t)sg_numel(a) * sg_dtype_size(a->dtype));
}

/* Run 3 steps; copy parameters, state and step count into a fresh optimizer over fresh
 * parameters; run 2 more on both: bit-identical, and still torch's trajectory. Without the
 * step count the momentum buffer would be re-initialised (a different result). */
START_TEST(test_restore) {
    const traj_case *c = &CASES[_i / 2];
    sg_dtype dt = DTYPES[_i % 2];
    two_params a, b, n;
    make_params(&a, dt, dt);
    sg_optim *oa = make_opt(c, &a.list);
    for (int s = 0; s < 3; s++) {
        set_grads(&a, s);
        ck_assert_int_eq(sg_optim_step(oa), 0);
    }
    make_params(&b, dt, dt);
    make_params(&n, dt, dt);
    sg_optim *ob = make_opt(c, &b.list), *on = make_opt(c, &n.list);
    for (int k = 0; k < 2; k++) {
        ck_assert_int_eq(sg_copy(b.p[k], a.p[k]), 0);
        ck_assert_int_eq(sg_copy(n.p[k], a.p[k]), 0);
    }
    copy_state(oa, ob);
    copy_state(oa, on);
    sg_optim_set_steps(ob, sg_optim_steps(oa));
    ck_assert_int_eq(sg_optim_steps(ob), 3);
    for (int s = 3; s < OPTIM_STEPS; s++) {
        set_grads(&a, s);
        set_grads(&b, s);
        set_grads(&n, s);
        ck_assert_int_eq(sg_optim_step(oa), 0);
        ck_assert_int_eq(sg_optim_step(ob), 0);
        ck_assert_int_eq(sg_optim_step(on), 0);
    }
    bool differs = false;
    for (int k = 0; k < 2; k++) {
        ck_assert_msg(same_bits(a.p[k], b.p[k]), "%s p%d: restored run differs", c->name, k);
        check_close(b.p[k], c->ref[OPTIM_STEPS - 1][k], rtol_of(dt), atol_of(dt), "restored");
        differs |= !same_bits(a.p[k], n.p[k]);
    }
    /* Momentum and Adam depend on the step count; plain SGD has no state at all. */
    ck_assert(differs == (c->sgd.momentum > 0 || c->adam));
    sg_optim *all[3] = {oa, ob, on};
    for (int i = 0; i < 3; i++)
        sg_optim_free(all[i]);
    free_params(&a);
    free_params(&b);
    free_params(&n);
    ck_no_error();
}
END_TEST

/* A parameter whose grad is NULL is skipped and its own step count does not advance (torch's
 * per-parameter state['step']): Adam's bias correction for it starts at its first update. */
START_TEST(test_skip_no_grad) {
    int c = _i ? 5 /* adam */ : 1 /* sgd_momentum */;
    two_params tp;
    make_params(&tp, SG_F64, SG_F64);
    sg_optim *opt = make_opt(&CASES[c], &tp.list);
    sg_tensor *g1 = tp.p[1]->grad;
    set_grads(&tp, 0);
    tp.p[1]->grad = NULL;
    ck_assert_int_eq(sg_optim_step(opt), 0);
    tp.p[1]->grad = g1;
    check_close(tp.p[0], CASES[c].ref[0][0], 1e-12, 1e-15, "p0 after step 1");
    check_close(tp.p[1], INIT[1], 0, 0, "skipped p1");
    /* Next step: p0 sees its 2nd gradient, p1 its 1st. */
    put(tp.p[0]->grad, GRADS[0][1]);
    put(tp.p[1]->grad, GRADS[1][0]);
    ck_assert_int_eq(sg_optim_step(opt), 0);
    ck_assert_int_eq(sg_optim_steps(opt), 2);
    check_close(tp.p[0], CASES[c].ref[1][0], 1e-12, 1e-15, "p0 after step 2");
    check_close(tp.p[1], CASES[c].ref[0][1], 1e-12, 1e-15, "p1 after its first update");
    ck_no_error();
    sg_optim_free(opt);
    free_params(&tp);
}
END_TEST

/* ---- NaN / Inf gradients --------------------------------------------------------------------- */

START_TEST(test_nonfinite_grad) {
    sg_dtype dt = DTYPES[_i % 2];
    const traj_case *c = &CASES[_i / 2 ? 8 /* amsgrad */ : 1 /* momentum */];
    two_params tp;
    make_params(&tp, dt, dt);
    sg_optim *opt = make_opt(c, &tp.list);
    set_grads(&tp, 0);
    ck_assert_int_eq(sg_optim_step(opt), 0);
    /* Remember everything the step could touch. */
    sg_param_list st = {0};
    ck_assert_int_eq(sg_optim_state(opt, &st), 0);
    double before[256];
    int nb = 0;
    for (int k = 0; k < 2; k++)
        for (int64_t i = 0; i < NUMEL[k]; i++)
            before[nb++] = sg_get_flat(tp.p[k], i);
    for (int j = 0; j < st.n; j++)
        for (int64_t i = 0; i < sg_numel(st.items[j].tensor); i++) {
            ck_assert_int_lt(nb, 256);
            before[nb++] = sg_get_flat(st.items[j].tensor, i);
        }
    struct {
        int k;
        int64_t i;
        double v;
        const char *msg;
    } bad[] = {
        {0, 3, NAN, "sg_optim_step: gradient of lstm.kernel has NaN at index 3"},
        {1, 4, INFINITY, "sg_optim_step: gradient of dense.bias has Inf at index 4"},
        {1, 0, -INFINITY, "sg_optim_step: gradient of dense.bias has -Inf at index 0"},
        {0, 11, -NAN, "sg_optim_step: gradient of lstm.kernel has NaN at index 11"},
    };
    for (int b = 0; b < 4; b++) {
        set_grads(&tp, 1);
        sg_set_flat(tp.p[bad[b].k]->grad, bad[b].i, bad[b].v);
        ck_assert_int_eq(sg_optim_step(opt), -1);
        ck_error(bad[b].msg);
        ck_assert_int_eq(sg_optim_steps(opt), 1);
        int m = 0;
        for (int k = 0; k < 2; k++)
            for (int64_t i = 0; i < NUMEL[k]; i++)
                ck_assert_msg(sg_get_flat(tp.p[k], i) == before[m++], "parameter changed");
        for (int j = 0; j < st.n; j++)
            for (int64_t i = 0; i < sg_numel(st.items[j].tensor); i++)
                ck_assert_msg(sg_get_flat(st.items[j].tensor, i) == before[m++], "state changed");
    }
    /* With good gradients again the run continues as if nothing had happened. */
    set_grads(&tp, 1);
    ck_assert_int_eq(sg_optim_step(opt), 0);
    for (int k = 0; k < 2; k++)
        check_close(tp.p[k], c->ref[1][k], rtol_of(dt), atol_of(dt), "after rejected steps");
    ck_no_error();
    sg_params_clear(&st);
    sg_optim_free(opt);
    free_params(&tp);
}
END_TEST

/* ---- zero_grad, lr ------------------------------------------------------------------------- */

START_TEST(test_zero_grad) {
    two_params tp;
    make_params(&tp, SG_F32, SG_F64);
    sg_tensor *other = sg_param_new(ctx, SG_F64, SG_SHAPE(3), "other");
    sg_fill(other->grad, 7.0);
    sg_optim *opt = sg_sgd_new(ctx, &tp.list, (sg_sgd_options){.lr = 0.1});
    set_grads(&tp, 2);
    sg_optim_zero_grad(opt);
    for (int k = 0; k < 2; k++)
        for (int64_t i = 0; i < NUMEL[k]; i++)
            ck_assert(sg_get_flat(tp.p[k]->grad, i) == 0.0);
    /* Only the optimizer's own parameters. */
    for (int64_t i = 0; i < 3; i++)
        ck_assert(sg_get_flat(other->grad, i) == 7.0);
    /* A step on zero gradients leaves plain SGD's parameters exactly where they were. */
    ck_assert_int_eq(sg_optim_step(opt), 0);
    check_close(tp.p[1], INIT[1], 0, 0, "after zero-gradient step");
    ck_no_error();
    sg_optim_free(opt);
    sg_tensor_free(other);
    free_params(&tp);
}
END_TEST

START_TEST(test_lr) {
    two_params tp;
    make_params(&tp, SG_F64, SG_F64);
    sg_optim *opt = sg_sgd_new(ctx, &tp.list, (sg_sgd_options){.lr = 0.1});
    ck_assert(sg_optim_get_lr(opt) == 0.1);
    sg_optim_set_lr(opt, 0.05);
    ck_assert(sg_optim_get_lr(opt) == 0.05);
    set_grads(&tp, 0);
    ck_assert_int_eq(sg_optim_step(opt), 0);
    /* torch: p.add_(g, alpha=-lr), one fused multiply-add */
    for (int k = 0; k < 2; k++)
        for (int64_t i = 0; i < NUMEL[k]; i++)
            ck_assert(sg_get_flat(tp.p[k], i) == fma(GRADS[k][0][i], -0.05, INIT[k][i]));
    /* Rate 0 freezes the parameters. */
    sg_optim_set_lr(opt, 0.0);
    double p10 = sg_get_flat(tp.p[1], 0);
    ck_assert_int_eq(sg_optim_step(opt), 0);
    ck_assert(sg_get_flat(tp.p[1], 0) == p10);
    /* Invalid rates are refused and leave the rate alone. */
    sg_optim_set_lr(opt, 0.2);
    sg_optim_set_lr(opt, NAN);
    ck_error("sg_optim_set_lr: learning rate nan is not a finite number >= 0");
    sg_optim_set_lr(opt, -1.0);
    ck_error("sg_optim_set_lr: learning rate -1 is not a finite number >= 0");
    sg_optim_set_lr(opt, sg_lr_step_decay(0.1, 0, 0, 0.5)); /* a bad schedule: NaN */
    ck_error("sg_optim_set_lr: learning rate nan is not a finite number >= 0");
    ck_assert(sg_optim_get_lr(opt) == 0.2);
    /* Adam defaults. */
    sg_optim *adam = sg_adam_new(ctx, &tp.list, (sg_adam_options){0});
    ck_assert(sg_optim_get_lr(adam) == 1e-3);
    ck_assert_str_eq(sg_optim_kind(adam), "adam");
    sg_optim_free(adam);
    ck_no_error();
    sg_optim_free(opt);
    free_params(&tp);
}
END_TEST

/* Adam's zero options are torch's defaults: identical to spelling them out. */
START_TEST(test_adam_defaults) {
    two_params a, b;
    make_params(&a, SG_F64, SG_F64);
    make_params(&b, SG_F64, SG_F64);
    sg_optim *oa = sg_adam_new(ctx, &a.list, (sg_adam_options){0});
    sg_optim *ob = sg_adam_new(
        ctx, &b.list, (sg_adam_options){.lr = 1e-3, .beta1 = 0.9, .beta2 = 0.999, .eps = 1e-8});
    for (int s = 0; s < OPTIM_STEPS; s++) {
        set_grads(&a, s);
        set_grads(&b, s);
        ck_assert_int_eq(sg_optim_step(oa), 0);
        ck_assert_int_eq(sg_optim_step(ob), 0);
    }
    for (int k = 0; k < 2; k++) {
        ck_assert(same_bits(a.p[k], b.p[k]));
        /* and it moved: each Adam step moves an element by about lr = 1e-3 */
        double moved = 0.0;
        for (int64_t i = 0; i < NUMEL[k]; i++)
            moved = fmax(moved, fabs(sg_get_flat(a.p[k], i) - INIT[k][i]));
        ck_assert(moved > 1e-3 && moved < 5.1e-3);
    }
    sg_optim_free(oa);
    sg_optim_free(ob);
    free_params(&a);
    free_params(&b);
}
END_TEST

/* ---- schedules ----------------------------------------------------------------------------- */

START_TEST(test_schedules) {
    /* step decay: 0.1 * 0.5^(step // 10) */
    ck_assert_double_eq_tol(sg_lr_step_decay(0.1, 0, 10, 0.5), 0.1, 1e-17);
    ck_assert_double_eq_tol(sg_lr_step_decay(0.1, 9, 10, 0.5), 0.1, 1e-17);
    ck_assert_double_eq_tol(sg_lr_step_decay(0.1, 10, 10, 0.5), 0.05, 1e-17);
    ck_assert_double_eq_tol(sg_lr_step_decay(0.1, 25, 10, 0.5), 0.025, 1e-17);
    ck_assert_double_eq_tol(sg_lr_step_decay(1.0, 7, 3, 0.1), 0.01, 1e-17);
    ck_assert(isnan(sg_lr_step_decay(0.1, 5, 0, 0.5)));
    ck_assert(isnan(sg_lr_step_decay(0.1, 5, -2, 0.5)));
    ck_assert(isnan(sg_lr_step_decay(0.1, -1, 10, 0.5)));
    ck_assert(isnan(sg_lr_step_decay(-0.1, 1, 10, 0.5)));
    ck_assert(isnan(sg_lr_step_decay(0.1, 1, 10, -0.5)));
    ck_assert(isnan(sg_lr_step_decay(NAN, 1, 10, 0.5)));

    /* cosine without warmup: 1 -> 0 over 100 steps, then 0 */
    ck_assert_double_eq_tol(sg_lr_cosine(1.0, 0, 100, 0.0, 0), 1.0, 1e-16);
    ck_assert_double_eq_tol(sg_lr_cosine(1.0, 25, 100, 0.0, 0), (1.0 + sqrt(0.5)) / 2.0, 1e-16);
    ck_assert_double_eq_tol(sg_lr_cosine(1.0, 50, 100, 0.0, 0), 0.5, 1e-16);
    ck_assert_double_eq_tol(sg_lr_cosine(1.0, 75, 100, 0.0, 0), (1.0 - sqrt(0.5)) / 2.0, 1e-16);
    ck_assert(sg_lr_cosine(1.0, 100, 100, 0.0, 0) == 0.0);
    ck_assert(sg_lr_cosine(1.0, 1000, 100, 0.0, 0) == 0.0);
    /* with a floor */
    ck_assert_double_eq_tol(sg_lr_cosine(1.0, 50, 100, 0.1, 0), 0.55, 1e-16);
    ck_assert(sg_lr_cosine(1.0, 150, 100, 0.1, 0) == 0.1);
    ck_assert_double_eq_tol(sg_lr_cosine(0.3, 1, 3, 0.0, 0), 0.3 * 0.75, 1e-16);
    /* warmup 10 then cosine over steps 10..110 */
    ck_assert_double_eq_tol(sg_lr_cosine(1.0, 0, 110, 0.0, 10), 0.1, 1e-16);
    ck_assert_double_eq_tol(sg_lr_cosine(1.0, 4, 110, 0.0, 10), 0.5, 1e-16);
    ck_assert_double_eq_tol(sg_lr_cosine(1.0, 9, 110, 0.0, 10), 1.0, 1e-16);
    ck_assert_double_eq_tol(sg_lr_cosine(1.0, 10, 110, 0.0, 10), 1.0, 1e-16);
    ck_assert_double_eq_tol(sg_lr_cosine(1.0, 60, 110, 0.0, 10), 0.5, 1e-16);
    ck_assert_double_eq_tol(sg_lr_cosine(1.0, 35, 110, 0.0, 10), (1.0 + sqrt(0.5)) / 2.0, 1e-16);
    ck_assert(sg_lr_cosine(1.0, 110, 110, 0.0, 10) == 0.0);
    ck_assert_double_eq_tol(sg_lr_cosine(2.0, 1, 4, 0.5, 4), 1.0, 1e-16); /* all warmup */
    ck_assert(sg_lr_cosine(2.0, 4, 4, 0.5, 4) == 0.5);
    /* invalid arguments: NaN */
    ck_assert(isnan(sg_lr_cosine(1.0, -1, 100, 0.0, 0)));
    ck_assert(isnan(sg_lr_cosine(1.0, 0, 0, 0.0, 0)));
    ck_assert(isnan(sg_lr_cosine(1.0, 0, 100, 0.0, -1)));
    ck_assert(isnan(sg_lr_cosine(1.0, 0, 100, 0.0, 101)));
    ck_assert(isnan(sg_lr_cosine(1.0, 0, 100, -0.1, 0)));
    ck_assert(isnan(sg_lr_cosine(-1.0, 0, 100, 0.0, 0)));
    ck_assert(isnan(sg_lr_cosine(INFINITY, 0, 100, 0.0, 0)));

    /* Driving an optimizer: the rate used at step s is the schedule's value at s. */
    two_params tp;
    make_params(&tp, SG_F64, SG_F64);
    sg_optim *opt = sg_sgd_new(ctx, &tp.list, (sg_sgd_options){.lr = 0.1});
    double p = INIT[1][2];
    for (int s = 0; s < OPTIM_STEPS; s++) {
        double lr = sg_lr_cosine(0.1, s, 4, 0.01, 1);
        sg_optim_set_lr(opt, lr);
        set_grads(&tp, s);
        ck_assert_int_eq(sg_optim_step(opt), 0);
        p = fma(GRADS[1][s][2], -lr, p);
        ck_assert(sg_get_flat(tp.p[1], 2) == p);
    }
    ck_no_error();
    sg_optim_free(opt);
    free_params(&tp);
}
END_TEST

/* ---- errors -------------------------------------------------------------------------------- */

START_TEST(test_option_errors) {
    two_params tp;
    make_params(&tp, SG_F64, SG_F64);
    const sg_param_list *L = &tp.list;
    struct {
        sg_sgd_options o;
        const char *msg;
    } sgd[] = {
        {{.lr = 0.0}, "sg_sgd_new: learning rate 0 is not a finite number > 0"},
        {{.lr = -0.1}, "sg_sgd_new: learning rate -0.1 is not a finite number > 0"},
        {{.lr = NAN}, "sg_sgd_new: learning rate nan is not a finite number > 0"},
        {{.lr = INFINITY}, "sg_sgd_new: learning rate inf is not a finite number > 0"},
        {{.lr = 0.1, .momentum = 1.5}, "sg_sgd_new: momentum 1.5 outside [0, 1)"},
        {{.lr = 0.1, .momentum = 1.0}, "sg_sgd_new: momentum 1 outside [0, 1)"},
        {{.lr = 0.1, .momentum = -0.1}, "sg_sgd_new: momentum -0.1 outside [0, 1)"},
        {{.lr = 0.1, .momentum = NAN}, "sg_sgd_new: momentum nan outside [0, 1)"},
        {{.lr = 0.1, .momentum = 0.9, .dampening = 1.5},
         "sg_sgd_new: dampening 1.5 outside [0, 1]"},
        {{.lr = 0.1, .dampening = -1}, "sg_sgd_new: dampening -1 outside [0, 1]"},
        {{.lr = 0.1, .weight_decay = -1e-4},
         "sg_sgd_new: weight_decay -0.0001 is not a finite number >= 0"},
        {{.lr = 0.1, .weight_decay = INFINITY},
         "sg_sgd_new: weight_decay inf is not a finite number >= 0"},
        {{.lr = 0.1, .nesterov = true}, "sg_sgd_new: nesterov needs momentum > 0 and dampening 0"},
        {{.lr = 0.1, .momentum = 0.9, .dampening = 0.1, .nesterov = true},
         "sg_sgd_new: nesterov needs momentum > 0 and dampening 0"},
    };
    for (size_t i = 0; i < sizeof sgd / sizeof sgd[0]; i++) {
        ck_assert_ptr_null(sg_sgd_new(ctx, L, sgd[i].o));
        ck_error(sgd[i].msg);
    }
    struct {
        sg_adam_options o;
        const char *msg;
    } adam[] = {
        {{.lr = -1.0}, "sg_adam_new: learning rate -1 is not a finite number > 0"},
        {{.lr = NAN}, "sg_adam_new: learning rate nan is not a finite number > 0"},
        {{.beta1 = 1.0, .beta2 = 0.999}, "sg_adam_new: beta1 1 outside [0, 1)"},
        {{.beta1 = -0.9, .beta2 = 0.999}, "sg_adam_new: beta1 -0.9 outside [0, 1)"},
        {{.beta1 = 0.9, .beta2 = 1.5}, "sg_adam_new: beta2 1.5 outside [0, 1)"},
        {{.beta1 = 0.9, .beta2 = NAN}, "sg_adam_new: beta2 nan outside [0, 1)"},
        {{.eps = -1e-8}, "sg_adam_new: eps -1e-08 is not a finite number > 0"},
        {{.weight_decay = -0.1}, "sg_adam_new: weight_decay -0.1 is not a finite number >= 0"},
        {{.weight_decay = -0.1, .decoupled = true},
         "sg_adam_new: weight_decay -0.1 is not a finite number >= 0"},
    };
    for (size_t i = 0; i < sizeof adam / sizeof adam[0]; i++) {
        ck_assert_ptr_null(sg_adam_new(ctx, L, adam[i].o));
        ck_error(adam[i].msg);
    }
    /* beta1 0 with beta2 given is a valid choice (not the defaults) */
    sg_optim *ok = sg_adam_new(ctx, L, (sg_adam_options){.beta2 = 0.99});
    ck_assert_ptr_nonnull(ok);
    sg_optim_free(ok);
    /* NULL context: NULL, nothing to record to */
    ck_assert_ptr_null(sg_sgd_new(NULL, L, (sg_sgd_options){.lr = 0.1}));
    ck_assert_ptr_null(sg_adam_new(NULL, L, (sg_adam_options){0}));
    ck_no_error();
    free_params(&tp);
}
END_TEST

START_TEST(test_list_errors) {
    sg_sgd_options so = {.lr = 0.1};
    ck_assert_ptr_null(sg_sgd_new(ctx, NULL, so));
    ck_error("sg_sgd_new: NULL parameter list");
    sg_param_list empty = {0};
    ck_assert_ptr_null(sg_sgd_new(ctx, &empty, so));
    ck_error("sg_sgd_new: empty parameter list");
    ck_assert_ptr_null(sg_adam_new(ctx, &empty, (sg_adam_options){0}));
    ck_error("sg_adam_new: empty parameter list");

    sg_tensor *w = sg_param_new(ctx, SG_F64, SG_SHAPE(2), "w");
    sg_tensor *arena = sg_zeros(ctx, SG_F64, SG_SHAPE(2));
    sg_set_requires_grad(arena, true);
    sg_tensor *plain = sg_persistent_new(ctx, SG_F64, SG_SHAPE(2));
    sg_set_requires_grad(plain, true);
    sg_ctx *other_ctx = sg_ctx_new(0);
    sg_tensor *foreign = sg_param_new(other_ctx, SG_F64, SG_SHAPE(2), "foreign");

    struct {
        sg_tensor *t[2];
        const char *msg;
    } cases[] = {
        {{w, arena},
         "sg_sgd_new: 'b' is not a parameter (not persistent; make it with sg_param_new)"},
        {{w, plain},
         "sg_sgd_new: 'b' is not a parameter (no persistent gradient; make it with "
         "sg_param_new)"},
        {{w, w}, "sg_sgd_new: parameter 'b' appears twice (also as 'a')"},
        {{foreign, w}, "sg_sgd_new: parameter 'a' belongs to another context"},
        {{w, NULL}, "sg_sgd_new: parameter 'b' is NULL"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        /* Built by hand: sg_params_add would refuse some of these itself. */
        sg_param_entry items[2] = {{"a", cases[i].t[0]}, {"b", cases[i].t[1]}};
        sg_param_list l = {2, 2, items, NULL};
        ck_assert_ptr_null(sg_sgd_new(ctx, &l, so));
        ck_error(cases[i].msg);
    }
    /* Same checks for Adam, named as such. */
    sg_param_entry items[1] = {{"x", plain}};
    sg_param_list l = {1, 1, items, NULL};
    ck_assert_ptr_null(sg_adam_new(ctx, &l, (sg_adam_options){0}));
    ck_error("sg_adam_new: 'x' is not a parameter (no persistent gradient; make it with "
             "sg_param_new)");
    /* a list entry may hold a longer name than a parameter may have: refused, not cut */
    sg_param_entry longer[1] = {{"", w}};
    memset(longer[0].name, 'p', 64);
    sg_param_list ll = {1, 1, longer, NULL};
    ck_assert_ptr_null(sg_sgd_new(ctx, &ll, so));
    ck_error("sg_sgd_new: parameter name 'pppppppppppppppppppppppppppppppppppppppp...' is "
             "longer than 63 characters");
    sg_ctx_free(other_ctx);
    sg_tensor_free(plain);
    sg_tensor_free(w);
}
END_TEST

START_TEST(test_misc_errors) {
    /* NULL optimizer / lists */
    ck_assert_int_eq(sg_optim_step(NULL), -1);
    sg_optim_free(NULL);
    sg_optim_zero_grad(NULL);
    sg_optim_set_lr(NULL, 0.1);
    sg_optim_set_steps(NULL, 3);
    ck_assert(isnan(sg_optim_get_lr(NULL)));
    ck_assert_int_eq(sg_optim_steps(NULL), -1);
    ck_assert_ptr_null(sg_optim_kind(NULL));
    sg_param_list out = {0};
    ck_assert_int_eq(sg_optim_state(NULL, &out), -1);
    ck_assert(sg_clip_grad_norm(NULL, 1.0) == -1.0);
    ck_assert_int_eq(sg_clip_grad_value(NULL, 1.0), -1);

    two_params tp;
    make_params(&tp, SG_F64, SG_F64);
    set_grads(&tp, 0);
    ck_assert(sg_clip_grad_norm(&tp.list, -1.0) == -1.0);
    ck_error("sg_clip_grad_norm: max_norm -1 is negative or NaN");
    ck_assert(sg_clip_grad_norm(&tp.list, NAN) == -1.0);
    ck_error("sg_clip_grad_norm: max_norm nan is negative or NaN");
    ck_assert_int_eq(sg_clip_grad_value(&tp.list, -0.5), -1);
    ck_error("sg_clip_grad_value: clip_value -0.5 is negative or NaN");
    check_close(tp.p[0]->grad, GRADS[0][0], 0, 0, "untouched after errors");

    sg_optim *opt = sg_adam_new(ctx, &tp.list, (sg_adam_options){.amsgrad = true});
    ck_assert_int_eq(sg_optim_state(opt, NULL), -1);
    /* A gradient that is not the parameter's shape (swapped in by hand) is refused before
     * anything is updated. */
    sg_tensor *g1 = tp.p[1]->grad;
    tp.p[1]->grad = sg_zeros(ctx, SG_F64, SG_SHAPE(4));
    ck_assert_int_eq(sg_optim_step(opt), -1);
    ck_error("sg_optim_step: gradient of dense.bias is not a live contiguous float64 tensor of "
             "shape (5,)");
    tp.p[1]->grad = sg_zeros(ctx, SG_F32, SG_SHAPE(5));
    ck_assert_int_eq(sg_optim_step(opt), -1);
    ck_error("sg_optim_step: gradient of dense.bias is not a live contiguous float64 tensor of "
             "shape (5,)");
    tp.p[1]->grad = g1;
    ck_assert_int_eq(sg_optim_steps(opt), 0);
    check_close(tp.p[0], INIT[0], 0, 0, "p0 after refused steps");
    sg_optim_set_steps(opt, 7);
    sg_optim_set_steps(opt, -1);
    ck_error("sg_optim_set_steps: negative step count -1");
    ck_assert_int_eq(sg_optim_steps(opt), 7);
    /* A long parameter name gives a state name past 63 characters, which an entry holds
     * (sg_param_entry.name fits "optim." + SG_NAME_MAX + ".max_exp_avg_sq"). */
    sg_optim_free(opt);
    sg_params_clear(&tp.list);
    char longname[64];
    memset(longname, 'n', 60);
    longname[60] = '\0';
    ck_assert_int_eq(sg_params_add(&tp.list, longname, tp.p[0]), 0);
    opt = sg_sgd_new(ctx, &tp.list, (sg_sgd_options){.lr = 0.1, .momentum = 0.5});
    ck_assert_ptr_nonnull(opt);
    ck_assert_int_eq(sg_optim_state(opt, &out), 0);
    ck_assert_int_eq(out.n, 1);
    ck_assert_uint_eq(strlen(out.items[0].name), 6 + 60 + 16);
    ck_assert_ptr_nonnull(strstr(out.items[0].name, "optim.nnnn"));
    ck_assert_ptr_nonnull(strstr(out.items[0].name, "n.momentum_buffer"));
    ck_no_error();
    sg_params_clear(&out);
    sg_optim_free(opt);
    free_params(&tp);
}
END_TEST

int main(void) {
    const ck_tcase tcases[] = {
        {"optim",
         0,
         {{test_trajectory, 2 * NCASES},
          {test_mixed_dtypes, NCASES},
          {test_clip_grad_norm, 2},
          {test_clip_grad_value, 2},
          {test_state_names, 1},
          {test_restore, 2 * NCASES},
          {test_skip_no_grad, 2},
          {test_nonfinite_grad, 4},
          {test_zero_grad, 1},
          {test_lr, 1},
          {test_adam_defaults, 1},
          {test_schedules, 1},
          {test_option_errors, 1},
          {test_list_errors, 1},
          {test_misc_errors, 1}}},
    };
    return CK_RUN("optim", tcases, setup, teardown);
}
