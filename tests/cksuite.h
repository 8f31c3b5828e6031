/* The main() of a Check test program as a table: a suite is a list of TCases, each a name,
 * a timeout and its tests; CK_RUN builds the suite from the table, runs it and gives the
 * exit status. Header-only: each test is one translation unit. Needs <check.h> before it. */
#ifndef SG_TESTS_CKSUITE_H
#define SG_TESTS_CKSUITE_H

#include <stddef.h>
#include <stdlib.h>

/* One test of a TCase, run `runs` times with _i = 0 .. runs - 1 (tcase_add_loop_test;
 * runs = 1 is tcase_add_test: one run with _i = 0). */
typedef struct {
    const TTest *test;
    int runs;
} ck_test;

/* One TCase: its name, its timeout in seconds (0: Check's default, CK_DEFAULT_TIMEOUT or
 * 4 s) and its tests in the order they run, ended by the first empty entry (the array's
 * unwritten rest is zero). */
typedef struct {
    const char *name;
    double timeout;
    ck_test tests[24];
} ck_tcase;

/* Builds the suite `name` from its n TCases in order, each with setup and teardown as its
 * checked fixture (both NULL: no fixture), runs it with CK_NORMAL output and returns the
 * exit status for main(): EXIT_FAILURE if any test failed, else EXIT_SUCCESS. */
static inline int ck_run(const char *name, const ck_tcase *tcases, size_t n, void (*setup)(void),
                         void (*teardown)(void)) {
    Suite *s = suite_create(name);
    for (size_t g = 0; g < n; g++) {
        TCase *tc = tcase_create(tcases[g].name);
        if (setup || teardown)
            tcase_add_checked_fixture(tc, setup, teardown);
        if (tcases[g].timeout > 0)
            tcase_set_timeout(tc, tcases[g].timeout);
        const ck_test *t = tcases[g].tests;
        for (size_t i = 0; i < sizeof tcases[g].tests / sizeof *t && t[i].test; i++)
            tcase_add_loop_test(tc, t[i].test, 0, t[i].runs);
        suite_add_tcase(s, tc);
    }
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}

/* ck_run over a whole array of TCases. */
#define CK_RUN(name, tcases, setup, teardown)                                                      \
    ck_run(name, tcases, sizeof(tcases) / sizeof(tcases)[0], setup, teardown)

#endif
