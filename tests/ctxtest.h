/* The per-test context fixture shared by the Check suites that check error messages:
 * `ctx`, made fresh for every test by setup() and freed by teardown() (register them with
 * tcase_add_checked_fixture), ck_error(msg) and ck_no_error(); and expect_shape and
 * expect_vals on a result. Header-only: each test is one translation unit. Needs <check.h>
 * and tensor/tensor.h before it. */
#ifndef SG_TESTS_CTXTEST_H
#define SG_TESTS_CTXTEST_H

#include <math.h>

static sg_ctx *ctx;

static void setup(void) { ctx = sg_ctx_new(0); }
static void teardown(void) {
    sg_ctx_free(ctx);
    ctx = NULL;
}

#include "errtest.h"

/* The context must hold exactly this error; then clear it for the next check. */
#define ck_error(msg) EXPECT_ERR(ctx, msg)

#define ck_no_error()                                                                              \
    ck_assert_msg(sg_ctx_error(ctx) == NULL, "unexpected error: %s", sg_ctx_error(ctx))

/* t (not NULL: else the test fails with the context's error) has shape shape[nd]. */
static inline void expect_shape(const sg_tensor *t, int nd, const int64_t *shape) {
    ck_assert_msg(t != NULL, "NULL tensor: %s", sg_ctx_error(ctx) ? sg_ctx_error(ctx) : "");
    ck_assert_int_eq(t->ndim, nd);
    for (int d = 0; d < nd; d++)
        ck_assert_int_eq(t->shape[d], shape[d]);
}

/* t (not NULL, as for expect_shape) holds v[0 .. numel): each element equal to v[i] (so an
 * infinity matches itself), NaN where v[i] is NaN, else within tol * max(1, |v[i]|). */
static inline void expect_vals(const sg_tensor *t, const double *v, double tol) {
    ck_assert_msg(t != NULL, "NULL tensor: %s", sg_ctx_error(ctx) ? sg_ctx_error(ctx) : "");
    for (int64_t i = 0; i < sg_numel(t); i++) {
        double a = sg_get_flat(t, i);
        if (a == v[i]) /* infinities too */
            continue;
        if (isnan(v[i])) {
            ck_assert_msg(isnan(a), "element %lld: got %.17g, want NaN", (long long)i, a);
            continue;
        }
        ck_assert_msg(fabs(a - v[i]) <= tol * fmax(1.0, fabs(v[i])),
                      "element %lld: got %.17g, want %.17g", (long long)i, a, v[i]);
    }
}

#endif
