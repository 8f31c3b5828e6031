/* EXPECT_ERR(ctx, msg): the context must hold exactly this error; then it is cleared for the
 * next check. A macro, so that a failure names the test's own line. Shared by every Check
 * suite that checks error messages (ctxtest.h and optest.h build on it). Header-only. Needs
 * <check.h> and tensor/tensor.h before it. */
#ifndef SG_TESTS_ERRTEST_H
#define SG_TESTS_ERRTEST_H

#define EXPECT_ERR(ctx, msg)                                                                       \
    do {                                                                                           \
        const char *e_ = sg_ctx_error(ctx);                                                        \
        ck_assert_msg(e_ != NULL, "expected error \"%s\", got none", (msg));                       \
        ck_assert_str_eq(e_, (msg));                                                               \
        sg_ctx_clear_error(ctx);                                                                   \
    } while (0)

#endif
