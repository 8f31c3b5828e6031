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

/* The whole main() of a suite whose tests (NULL-terminated) share one TCase with this
 * fixture and a 120 s timeout: runs them and returns the exit status (1 if any failed). */
static inline int ck_run_tests(const char *name, const TTest *const *tests) {
    Suite *s = suite_create(name);
    TCase *tc = tcase_create(name);
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 120);
    for (int i = 0; tests[i]; i++)
        tcase_add_test(tc, tests[i]);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? 1 : 0;
}

#endif
