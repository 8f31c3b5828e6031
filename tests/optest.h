/* Helpers of the op suites whose tests each make their own context (test_ops_shape.c,
 * test_ops_matmul.c): expect_err (EXPECT_ERR) and expect_gradcheck. Header-only: each test is one
 * translation unit. Needs <check.h> and autograd/autograd.h before it. */
#ifndef SG_TESTS_OPTEST_H
#define SG_TESTS_OPTEST_H

#include "errtest.h"

#define expect_err EXPECT_ERR

/* sg_gradcheck on fn over the n (<= 8) inputs, made to require grad: every input's
 * analytic gradient must match central differences; float64 with the default (tight)
 * options, float32 with a big step and loose tolerances. `what` names the case. */
static void expect_gradcheck(sg_ctx *ctx, sg_gradcheck_fn fn, void *user, int n, sg_tensor **in,
                             const char *what) {
    sg_gradcheck_opts o = sg_gradcheck_defaults();
    if (in[0]->dtype == SG_F32) {
        o.eps = 1e-2;
        o.atol = 1e-3;
        o.rtol = 1e-2;
    }
    sg_gradcheck_report rep[8];
    ck_assert_int_le(n, 8);
    for (int i = 0; i < n; i++)
        sg_set_requires_grad(in[i], true);
    int rc = sg_gradcheck(ctx, fn, user, n, in, &o, rep);
    ck_assert_msg(rc >= 0, "%s: gradcheck error: %s", what,
                  sg_ctx_error(ctx) ? sg_ctx_error(ctx) : "?");
    for (int i = 0; i < n; i++)
        ck_assert_msg(rep[i].ok, "%s (%s) input %d: element %lld analytic %.10g numeric %.10g",
                      what, sg_dtype_name(in[0]->dtype), i, (long long)rep[i].worst_flat,
                      rep[i].analytic, rep[i].numeric);
    ck_assert_int_eq(rc, 1);
}

#endif
