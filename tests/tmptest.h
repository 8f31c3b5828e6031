/* A scratch directory for the suites that write files (test_checkpoint.c,
 * test_safetensors.c): make_tmpdir(prefix) creates /tmp/<prefix>_XXXXXX (mkdtemp) in tmpdir,
 * tmp_path(name) names a file in it, remove_tmpdir() removes its files and itself, failing
 * the test if anything is left that it cannot remove. Header-only: each test is one
 * translation unit. Needs _GNU_SOURCE (mkdtemp), <check.h>, <dirent.h>, <stdio.h>,
 * <stdlib.h>, <string.h> and <unistd.h> before it. */
#ifndef SG_TESTS_TMPTEST_H
#define SG_TESTS_TMPTEST_H

static char tmpdir[64];

static void make_tmpdir(const char *prefix) {
    snprintf(tmpdir, sizeof tmpdir, "/tmp/%s_XXXXXX", prefix);
    ck_assert_ptr_nonnull(mkdtemp(tmpdir));
}

static void remove_tmpdir(void) {
    DIR *d = opendir(tmpdir);
    ck_assert_ptr_nonnull(d);
    for (struct dirent *e; (e = readdir(d));) {
        if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."))
            continue;
        char p[512];
        snprintf(p, sizeof p, "%s/%s", tmpdir, e->d_name);
        ck_assert_int_eq(unlink(p), 0);
    }
    closedir(d);
    ck_assert_int_eq(rmdir(tmpdir), 0);
}

/* tmpdir/name in one of two rotating buffers (two paths can be alive at once). */
static const char *tmp_path(const char *name) {
    static char p[2][512];
    static int k;
    k ^= 1;
    snprintf(p[k], sizeof p[k], "%s/%s", tmpdir, name);
    return p[k];
}

#endif
