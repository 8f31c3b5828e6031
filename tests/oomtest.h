/* Out of memory at one chosen allocation, for the suites that walk every allocation of a call
 * (test_checkpoint.c, test_safetensors.c): oom_arm(k) installs an allocator under which the
 * k-th sg_malloc / sg_realloc from now (0-based) fails, oom_disarm() restores malloc.
 * Header-only: each test is one translation unit. Needs <stdlib.h> and tensor.h before it. */
#ifndef SG_TESTS_OOMTEST_H
#define SG_TESTS_OOMTEST_H

static int oom_fail_at, oom_count;
static void *oom_malloc(size_t n, void *u) {
    (void)u;
    return oom_count++ == oom_fail_at ? NULL : malloc(n);
}
static void *oom_realloc(void *p, size_t n, void *u) {
    (void)u;
    return oom_count++ == oom_fail_at ? NULL : realloc(p, n);
}
static void oom_free(void *p, void *u) {
    (void)u;
    free(p);
}

static void oom_arm(int k) {
    static const sg_allocator a = {oom_malloc, oom_realloc, oom_free, NULL};
    oom_fail_at = k;
    oom_count = 0;
    sg_set_allocator(&a);
}
static void oom_disarm(void) { sg_set_allocator(NULL); }

#endif
