/* The per-test context fixture shared by the Check suites that check error messages:
 * `ctx`, made fresh for every test by setup() and freed by teardown() (register them with
 * tcase_add_checked_fixture), ck_error(msg) and ck_no_error(). Header-only: each test is
 * one translation unit. Needs <check.h> and tensor/tensor.h before it. */
#ifndef SG_TESTS_CTXTEST_H
#define SG_TESTS_CTXTEST_H

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

#endif
