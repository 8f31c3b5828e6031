/* Memory stays flat over a long training run: 10,000 forward / backward / SGD / reset
 * cycles of the two-layer MLP of tests/fixtures/composite.h (float32 parameters made with
 * sg_param_new, MSE loss, manual SGD with sg_axpy, sg_ctx_reset every cycle).
 *
 * Asserted:
 *  - the arena high-water mark after cycle 10 equals the one after cycle 10,000 (every
 *    cycle allocates the same bytes; reset really gives them back);
 *  - the arena capacity stops growing after the first cycles (the context starts with a
 *    deliberately small arena, so it must grow once and then be coalesced by the reset);
 *  - the tape holds the same number of nodes every cycle, and none after a reset;
 *  - no sg_malloc / sg_realloc at all in steady state (counted through sg_set_allocator
 *    hooks), and every allocation is freed by sg_ctx_free;
 *  - resident memory (VmRSS in /proc/self/status) grows by less than 256 KiB between
 *    cycle 1,000 and cycle 10,000 (catches leaks that bypass sg_malloc, e.g. in BLIS);
 *  - the loss falls below a thousandth of its start (the cycles do real learning: the
 *    MLP can fit these 4 points; PyTorch gets from 2.98 to 2e-8 in 1,000 such steps).
 */
#include <check.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "autograd/autograd.h"
#include "fixtures/composite.h"
#include "tensor/tensor.h"

#include "cksuite.h"

#define N_CYCLES 10000

/* ---- counting allocator ------------------------------------------------------------------ */

typedef struct alloc_count {
    long mallocs, reallocs, frees;
} alloc_count;

static void *count_malloc(size_t n, void *user) {
    ((alloc_count *)user)->mallocs++;
    return malloc(n);
}
static void *count_realloc(void *p, size_t n, void *user) {
    ((alloc_count *)user)->reallocs++;
    return realloc(p, n);
}
static void count_free(void *p, void *user) {
    ((alloc_count *)user)->frees++;
    free(p);
}

/* Resident set size in KiB, or -1 when /proc is unavailable. */
static long vm_rss_kib(void) {
    FILE *f = fopen("/proc/self/status", "r");
    if (!f)
        return -1;
    char line[256];
    long kib = -1;
    while (fgets(line, sizeof line, f))
        if (strncmp(line, "VmRSS:", 6) == 0) {
            kib = strtol(line + 6, NULL, 10);
            break;
        }
    fclose(f);
    return kib;
}

/* ---- the model ------------------------------------------------------------------------- */

typedef struct model {
    sg_tensor *W1, *b1, *W2, *b2;
} model;

static void fill_from(sg_tensor *t, const double *v) {
    for (int64_t i = 0; i < sg_numel(t); i++)
        ck_assert_int_eq(sg_set_flat(t, i, v[i]), 0);
}

static model model_new(sg_ctx *ctx) {
    model m = {
        sg_param_new(ctx, SG_F32, SG_SHAPE(MLP_I, MLP_H), "W1"),
        sg_param_new(ctx, SG_F32, SG_SHAPE(MLP_H), "b1"),
        sg_param_new(ctx, SG_F32, SG_SHAPE(MLP_H, MLP_O), "W2"),
        sg_param_new(ctx, SG_F32, SG_SHAPE(MLP_O), "b2"),
    };
    ck_assert_msg(m.W1 && m.b1 && m.W2 && m.b2, "sg_param_new: %s", sg_ctx_error(ctx));
    fill_from(m.W1, mlp_W1);
    fill_from(m.b1, mlp_b1);
    fill_from(m.W2, mlp_W2);
    fill_from(m.b2, mlp_b2);
    return m;
}

/* The data as float32, built into the arena every cycle as a real loop would. */
static float g_x[MLP_N * MLP_I], g_y[MLP_N * MLP_O];

/* One training cycle; returns the loss before the update (NaN on failure). */
static double cycle(sg_ctx *ctx, const model *m, double lr, int64_t *tape_nodes) {
    sg_ctx_zero_grad(ctx);
    sg_tensor *x = sg_from_data(ctx, SG_F32, SG_SHAPE(MLP_N, MLP_I), g_x);
    sg_tensor *y = sg_from_data(ctx, SG_F32, SG_SHAPE(MLP_N, MLP_O), g_y);
    sg_tensor *h = sg_tanh(ctx, sg_add(ctx, sg_matmul(ctx, x, m->W1), m->b1));
    sg_tensor *pred = sg_add(ctx, sg_matmul(ctx, h, m->W2), m->b2);
    sg_tensor *loss = sg_mse_loss(ctx, pred, y);
    if (!loss || sg_backward(ctx, loss, NULL) != 0)
        return NAN;
    *tape_nodes = sg_tape_size(ctx);
    double l = sg_get_flat(loss, 0);
    sg_tensor *ps[4] = {m->W1, m->b1, m->W2, m->b2};
    for (int i = 0; i < 4; i++)
        if (sg_axpy(ps[i], -lr, ps[i]->grad) != 0)
            return NAN;
    sg_ctx_reset(ctx);
    return l;
}

START_TEST(test_memory_stable_over_10000_cycles) {
    for (int i = 0; i < MLP_N * MLP_I; i++)
        g_x[i] = (float)mlp_x[i];
    for (int i = 0; i < MLP_N * MLP_O; i++)
        g_y[i] = (float)mlp_mse_target[i];

    alloc_count cnt = {0, 0, 0};
    sg_allocator a = {count_malloc, count_realloc, count_free, &cnt};
    sg_set_allocator(&a);

    clock_t t0 = clock();
    /* 4 KiB: far less than one cycle needs, so the arena has to grow and be coalesced. */
    sg_ctx *ctx = sg_ctx_new(4096);
    ck_assert_ptr_nonnull(ctx);
    model m = model_new(ctx);

    const double lr = 0.1;
    double first_loss = NAN, loss = NAN;
    size_t peak10 = 0, cap3 = 0;
    int64_t tape10 = 0, tape = 0;
    long rss1000 = -1, mallocs10 = 0, reallocs10 = 0;
    /* No ck_assert inside the loop: Check logs every passing assertion (it writes a mark
     * point to its message file), which would itself allocate and grow the RSS. Record the
     * first problem instead and assert after the loop. */
    int bad_cycle = 0;
    char bad[512] = "";
    for (int c = 1; c <= N_CYCLES && !bad_cycle; c++) {
        loss = cycle(ctx, &m, lr, &tape);
        if (!isfinite(loss)) {
            bad_cycle = c;
            snprintf(bad, sizeof bad, "loss %g, error %s", loss,
                     sg_ctx_error(ctx) ? sg_ctx_error(ctx) : "-");
        } else if (sg_tape_size(ctx) != 0) { /* reset forgets the tape */
            bad_cycle = c;
            snprintf(bad, sizeof bad, "%lld tape nodes after sg_ctx_reset",
                     (long long)sg_tape_size(ctx));
        } else if (c > 10 && tape != tape10) {
            bad_cycle = c;
            snprintf(bad, sizeof bad, "%lld tape nodes recorded, cycle 10 recorded %lld",
                     (long long)tape, (long long)tape10);
        }
        if (c == 1)
            first_loss = loss;
        if (c == 3)
            cap3 = sg_ctx_arena_capacity(ctx);
        if (c == 10) {
            peak10 = sg_ctx_arena_peak(ctx);
            tape10 = tape;
            mallocs10 = cnt.mallocs;
            reallocs10 = cnt.reallocs;
        }
        if (c == 1000)
            rss1000 = vm_rss_kib();
    }
    ck_assert_msg(!bad_cycle, "cycle %d: %s", bad_cycle, bad);
    long rss_end = vm_rss_kib();
    size_t peak_end = sg_ctx_arena_peak(ctx), cap_end = sg_ctx_arena_capacity(ctx);
    ck_assert_ptr_null(sg_ctx_error(ctx));
    long steady_mallocs = cnt.mallocs - mallocs10, steady_reallocs = cnt.reallocs - reallocs10;
    sg_ctx_free(ctx);
    sg_set_allocator(NULL);
    double secs = (double)(clock() - t0) / CLOCKS_PER_SEC;
    fprintf(stderr,
            "memory: %d cycles in %.2f s; loss %.6g -> %.6g; arena peak %zu B, capacity %zu B; "
            "%lld tape nodes per cycle; VmRSS %ld -> %ld KiB; allocations %ld\n",
            N_CYCLES, secs, first_loss, loss, peak_end, cap_end, (long long)tape10, rss1000,
            rss_end, cnt.mallocs);

    ck_assert_msg(peak_end == peak10, "arena peak grew: %zu B after cycle 10, %zu B at the end",
                  peak10, peak_end);
    ck_assert_msg(cap_end == cap3, "arena capacity grew: %zu B after cycle 3, %zu B at the end",
                  cap3, cap_end);
    ck_assert_msg(cap_end > 4096, "the 4 KiB arena was expected to grow (capacity %zu)", cap_end);
    ck_assert_msg(cap_end < ((size_t)1 << 20),
                  "arena capacity %zu B is far more than a tiny MLP step needs", cap_end);
    ck_assert_msg(steady_mallocs == 0 && steady_reallocs == 0,
                  "%ld sg_malloc and %ld sg_realloc calls in cycles 11..%d (expected none)",
                  steady_mallocs, steady_reallocs, N_CYCLES);
    ck_assert_msg(cnt.frees == cnt.mallocs, "%ld allocations but %ld frees", cnt.mallocs,
                  cnt.frees);
    ck_assert_msg(rss1000 > 0 && rss_end > 0, "could not read VmRSS");
    ck_assert_msg(rss_end - rss1000 < 256, "VmRSS grew by %ld KiB from cycle 1000 to %d",
                  rss_end - rss1000, N_CYCLES);
    ck_assert_msg(loss < 1e-3 * first_loss, "loss did not fall: %g -> %g", first_loss, loss);
}
END_TEST

int main(void) {
    /* The 600 s timeout: the suite is fast (< 5 s); sanitizers slow it down. */
    const ck_tcase tcases[] = {
        {"cycles", 600, {{test_memory_stable_over_10000_cycles, 1}}},
    };
    return CK_RUN("memory", tcases, NULL, NULL);
}
