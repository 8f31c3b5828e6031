/* Check tests for the tensor core: tensor/tensor.c (creation, inspection, views, in-place
 * helpers) and tensor/ctx.c (errors, the arena, persistent tensors, the allocator shim).
 *
 * Every expected value is written out by hand or follows from the row-major layout of
 * arange (element [i, j, k] of arange(24) viewed as (2, 3, 4) is 12 i + 4 j + k). Every
 * error path is checked with its exact message. Out-of-memory is injected through
 * sg_set_allocator with an allocator that can fail after N calls or above a size, and
 * counts live blocks so leaks on error paths show up as a nonzero balance.
 *
 * The arena tests look at the block list through tensor/internal.h (first->next), because
 * "one block after a reset" is the property being tested and the public API only exposes
 * byte counts.
 */
#include "seqgrad.h"
#include "tensor/internal.h"

#include <check.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- helpers ----------------------------------------------------------------------------- */

#include "cksuite.h"
#include "errtest.h"

/* The context's error must contain `part`. */
#define EXPECT_ERR_HAS(ctx, part)                                                                  \
    do {                                                                                           \
        const char *e_ = sg_ctx_error(ctx);                                                        \
        ck_assert_msg(e_ != NULL, "expected an error containing \"%s\", got none", (part));        \
        ck_assert_msg(strstr(e_, (part)) != NULL, "error \"%s\" lacks \"%s\"", e_, (part));        \
        sg_ctx_clear_error(ctx);                                                                   \
    } while (0)

#define EXPECT_NO_ERR(ctx)                                                                         \
    ck_assert_msg(sg_ctx_error(ctx) == NULL, "unexpected error: %s", sg_ctx_error(ctx))

#define I64(...) ((const int64_t[]){__VA_ARGS__})

static void expect_shape(const sg_tensor *t, int ndim, const int64_t *shape) {
    ck_assert_ptr_nonnull(t);
    ck_assert_int_eq(t->ndim, ndim);
    for (int i = 0; i < ndim; i++)
        ck_assert_int_eq(t->shape[i], shape[i]);
}

static void expect_strides(const sg_tensor *t, const int64_t *stride) {
    for (int i = 0; i < t->ndim; i++)
        ck_assert_int_eq(t->stride[i], stride[i]);
}

/* arange(n) reshaped to `shape`, as float64 (or float32 when dt says so). */
static sg_tensor *iota(sg_ctx *ctx, sg_dtype dt, int ndim, const int64_t *shape) {
    int64_t n = 1;
    for (int i = 0; i < ndim; i++)
        n *= shape[i];
    return sg_reshape(ctx, sg_arange(ctx, dt, 0, (double)n, 1), ndim, shape);
}

static double get3(const sg_tensor *t, int64_t i, int64_t j, int64_t k) {
    return sg_get(t, I64(i, j, k));
}
static double get2(const sg_tensor *t, int64_t i, int64_t j) { return sg_get(t, I64(i, j)); }

/* ---- an allocator that fails on demand and counts live blocks ----------------------------- */

static long g_calls;      /* malloc/realloc calls since install */
static long g_fail_after; /* fail once g_calls reaches this (-1: never) */
static size_t g_max_size; /* fail requests above this (0: no limit) */
static long g_live;       /* blocks handed out minus blocks freed */

static bool should_fail(size_t n) {
    bool fail = (g_fail_after >= 0 && g_calls >= g_fail_after) || (g_max_size && n > g_max_size);
    g_calls++;
    return fail;
}
/* Small requests get at least 64 bytes: if a size computation inside the library wraps
 * around (a bug this file tests for), the test then fails on its assertion instead of
 * corrupting the heap. */
static void *t_malloc(size_t n, void *user) {
    (void)user;
    if (should_fail(n))
        return NULL;
    void *p = malloc(n < 64 ? 64 : n);
    if (p)
        g_live++;
    return p;
}
static void *t_realloc(void *p, size_t n, void *user) {
    (void)user;
    if (should_fail(n))
        return NULL;
    void *q = realloc(p, n < 64 ? 64 : n);
    if (q && !p)
        g_live++;
    return q;
}
static void t_free(void *p, void *user) {
    (void)user;
    if (p) {
        g_live--;
        free(p);
    }
}
static void install_alloc(long fail_after, size_t max_size) {
    g_calls = 0;
    g_fail_after = fail_after;
    g_max_size = max_size;
    g_live = 0;
    static const sg_allocator a = {t_malloc, t_realloc, t_free, NULL};
    sg_set_allocator(&a);
}
static void restore_alloc(void) { sg_set_allocator(NULL); }

/* ========================================================================================= *
 * Views
 * ========================================================================================= */

START_TEST(test_reshape_view) {
    sg_dtype dt = (sg_dtype)_i;
    sg_ctx *ctx = sg_ctx_new(0);
    sg_tensor *flat = sg_arange(ctx, dt, 0, 24, 1);
    sg_tensor *x = sg_reshape(ctx, flat, SG_SHAPE(2, 3, 4));
    expect_shape(x, 3, I64(2, 3, 4));
    expect_strides(x, I64(12, 4, 1));
    ck_assert_int_eq(x->offset, 0);
    ck_assert_ptr_eq(x->storage->data, flat->storage->data);
    ck_assert_ptr_eq(sg_data(x), sg_data(flat));
    ck_assert(sg_is_contiguous(x));
    ck_assert_double_eq(get3(x, 1, 2, 3), 23);
    ck_assert_double_eq(get3(x, 1, 0, 2), 14);

    /* -1 is inferred. */
    sg_tensor *y = sg_reshape(ctx, x, SG_SHAPE(4, -1));
    expect_shape(y, 2, I64(4, 6));
    expect_strides(y, I64(6, 1));
    ck_assert_double_eq(get2(y, 2, 5), 17);

    /* A permuted view reshapes without a copy when the merged/split axes allow it:
     * (2, 3, 4) permuted (1, 0, 2) is (3, 2, 4) with strides (4, 12, 1); splitting the last
     * axis into (2, 2) keeps it a view with strides (4, 12, 2, 1). */
    sg_tensor *p = sg_permute(ctx, x, (const int[]){1, 0, 2});
    sg_tensor *q = sg_reshape(ctx, p, SG_SHAPE(3, 2, 2, 2));
    expect_shape(q, 4, I64(3, 2, 2, 2));
    expect_strides(q, I64(4, 12, 2, 1));
    ck_assert_ptr_eq(q->storage->data, flat->storage->data);
    /* q[j, i, a, b] = x[i, j, 2a + b] = 12 i + 4 j + 2 a + b */
    ck_assert_double_eq(sg_get(q, I64(2, 1, 1, 0)), 12 + 8 + 2);
    /* Merging two axes whose strides chain: (3, 2, 4) -> (3, 8) is impossible, but the
     * sliced-rows case (4, 6)[1:3] -> (12,) is possible since rows stay contiguous. */
    sg_tensor *rows = sg_slice(ctx, y, 0, 1, 2);
    sg_tensor *r = sg_reshape(ctx, rows, SG_SHAPE(12));
    expect_shape(r, 1, I64(12));
    ck_assert_int_eq(r->offset, 6);
    ck_assert_double_eq(sg_get_flat(r, 0), 6);
    ck_assert_double_eq(sg_get_flat(r, 11), 17);

    /* Size-1 axes come and go freely; a one-element tensor reshapes to a 0-d scalar. */
    sg_tensor *one = sg_slice(ctx, flat, 0, 7, 1);
    sg_tensor *s = sg_reshape(ctx, one, 0, NULL);
    ck_assert_int_eq(s->ndim, 0);
    ck_assert_int_eq(sg_numel(s), 1);
    ck_assert_double_eq(sg_get_flat(s, 0), 7);
    sg_tensor *u = sg_reshape(ctx, x, SG_SHAPE(1, 2, 1, 12, 1));
    expect_shape(u, 5, I64(1, 2, 1, 12, 1));
    ck_assert_double_eq(sg_get(u, I64(0, 1, 0, 5, 0)), 17);

    /* Empty tensors reshape to any shape with zero elements. */
    sg_tensor *e = sg_zeros(ctx, dt, SG_SHAPE(0, 3));
    sg_tensor *e2 = sg_reshape(ctx, e, SG_SHAPE(3, 0, 5));
    expect_shape(e2, 3, I64(3, 0, 5));
    EXPECT_NO_ERR(ctx);
    sg_ctx_free(ctx);
}
END_TEST

START_TEST(test_permute_transpose) {
    sg_dtype dt = (sg_dtype)_i;
    sg_ctx *ctx = sg_ctx_new(0);
    sg_tensor *x = iota(ctx, dt, SG_SHAPE(2, 3, 4));
    sg_tensor *p = sg_permute(ctx, x, (const int[]){2, 0, 1});
    expect_shape(p, 3, I64(4, 2, 3));
    expect_strides(p, I64(1, 12, 4));
    ck_assert_int_eq(p->offset, 0);
    ck_assert_ptr_eq(p->storage->data, x->storage->data);
    ck_assert(!sg_is_contiguous(p));
    for (int i = 0; i < 2; i++)
        for (int j = 0; j < 3; j++)
            for (int k = 0; k < 4; k++)
                ck_assert_double_eq(get3(p, k, i, j), 12 * i + 4 * j + k);
    /* Flat order of a permuted view is its own row-major order. */
    ck_assert_double_eq(sg_get_flat(p, 1), 4);  /* p[0, 0, 1] = x[0, 1, 0] */
    ck_assert_double_eq(sg_get_flat(p, 3), 12); /* p[0, 1, 0] = x[1, 0, 0] */

    /* transpose with negative axes is the permutation swapping them. */
    sg_tensor *t = sg_transpose(ctx, x, -1, 0);
    expect_shape(t, 3, I64(4, 3, 2));
    expect_strides(t, I64(1, 4, 12));
    ck_assert_double_eq(get3(t, 3, 1, 1), 12 + 4 + 3);
    /* Transposing twice gives the original layout back. */
    sg_tensor *tt = sg_transpose(ctx, t, 0, 2);
    expect_strides(tt, I64(12, 4, 1));
    ck_assert(sg_is_contiguous(tt));
    /* Identity permutation of a 2-D matrix, and transpose of an axis with itself. */
    sg_tensor *m = iota(ctx, dt, SG_SHAPE(2, 3));
    sg_tensor *mt = sg_transpose(ctx, m, 0, 1);
    expect_shape(mt, 2, I64(3, 2));
    expect_strides(mt, I64(1, 3));
    ck_assert_double_eq(get2(mt, 2, 1), 5);
    sg_tensor *same = sg_transpose(ctx, m, 1, -1);
    expect_strides(same, I64(3, 1));
    EXPECT_NO_ERR(ctx);
    sg_ctx_free(ctx);
}
END_TEST

START_TEST(test_slice) {
    sg_dtype dt = (sg_dtype)_i;
    sg_ctx *ctx = sg_ctx_new(0);
    sg_tensor *x = iota(ctx, dt, SG_SHAPE(4, 5));
    sg_tensor *c = sg_slice(ctx, x, 1, 1, 3); /* x[:, 1:4] */
    expect_shape(c, 2, I64(4, 3));
    expect_strides(c, I64(5, 1));
    ck_assert_int_eq(c->offset, 1);
    ck_assert_ptr_eq(c->storage->data, x->storage->data);
    ck_assert(!sg_is_contiguous(c));
    ck_assert_double_eq(get2(c, 3, 2), 18);
    sg_tensor *r = sg_slice(ctx, x, -2, 2, 2); /* x[2:4] */
    ck_assert_int_eq(r->offset, 10);
    ck_assert(sg_is_contiguous(r));
    /* Offsets of chained slices add up: x[2:4][:, 1:4][1:, 2:3] = x[3:4, 3:4]. */
    sg_tensor *rc = sg_slice(ctx, sg_slice(ctx, sg_slice(ctx, r, 1, 1, 3), 0, 1, 1), 1, 2, 1);
    expect_shape(rc, 2, I64(1, 1));
    ck_assert_int_eq(rc->offset, 18);
    ck_assert_double_eq(sg_get_flat(rc, 0), 18);
    /* A slice of a transposed view follows the view's strides. */
    sg_tensor *t = sg_slice(ctx, sg_transpose(ctx, x, 0, 1), 0, 4, 1); /* x.T[4:5] */
    expect_shape(t, 2, I64(1, 4));
    expect_strides(t, I64(1, 5));
    ck_assert_int_eq(t->offset, 4);
    ck_assert_double_eq(get2(t, 0, 3), 19);
    /* Empty slices are fine, also at the very end. */
    sg_tensor *e = sg_slice(ctx, x, 0, 4, 0);
    expect_shape(e, 2, I64(0, 5));
    ck_assert_int_eq(sg_numel(e), 0);
    EXPECT_NO_ERR(ctx);
    sg_ctx_free(ctx);
}
END_TEST

START_TEST(test_select) {
    sg_dtype dt = (sg_dtype)_i;
    sg_ctx *ctx = sg_ctx_new(0);
    /* x[:, t, :] of a (B, T, I) = (2, 3, 4) batch: the LSTM's per-step input. */
    sg_tensor *x = iota(ctx, dt, SG_SHAPE(2, 3, 4));
    for (int t = 0; t < 3; t++) {
        sg_tensor *xt = sg_select(ctx, x, 1, t);
        expect_shape(xt, 2, I64(2, 4));
        expect_strides(xt, I64(12, 1));
        ck_assert_int_eq(xt->offset, 4 * t);
        ck_assert_ptr_eq(xt->storage->data, x->storage->data);
        for (int b = 0; b < 2; b++)
            for (int i = 0; i < 4; i++)
                ck_assert_double_eq(get2(xt, b, i), 12 * b + 4 * t + i);
    }
    /* Last axis (negative), first axis, and a 1-D tensor down to 0-d. */
    sg_tensor *last = sg_select(ctx, x, -1, 3);
    expect_shape(last, 2, I64(2, 3));
    expect_strides(last, I64(12, 4));
    ck_assert_int_eq(last->offset, 3);
    ck_assert_double_eq(get2(last, 1, 2), 23);
    sg_tensor *first = sg_select(ctx, x, 0, 1);
    expect_shape(first, 2, I64(3, 4));
    ck_assert_int_eq(first->offset, 12);
    ck_assert(sg_is_contiguous(first));
    sg_tensor *v = sg_arange(ctx, dt, 10, 15, 1);
    sg_tensor *s = sg_select(ctx, v, 0, 4);
    ck_assert_int_eq(s->ndim, 0);
    ck_assert_double_eq(sg_get_flat(s, 0), 14);
    /* Selecting from a permuted view. */
    sg_tensor *p = sg_permute(ctx, x, (const int[]){1, 2, 0}); /* (3, 4, 2) */
    sg_tensor *ps = sg_select(ctx, p, 0, 2);                   /* x[:, 2, :].T */
    expect_shape(ps, 2, I64(4, 2));
    expect_strides(ps, I64(1, 12));
    ck_assert_double_eq(get2(ps, 1, 1), 12 + 8 + 1);
    EXPECT_NO_ERR(ctx);
    sg_ctx_free(ctx);
}
END_TEST

START_TEST(test_split) {
    sg_dtype dt = (sg_dtype)_i;
    sg_ctx *ctx = sg_ctx_new(0);
    /* The LSTM's (B, 4H) pre-activations split into four (B, H) gates. */
    sg_tensor *z = iota(ctx, dt, SG_SHAPE(2, 12));
    sg_tensor *g[4] = {0};
    ck_assert_int_eq(sg_split(ctx, z, -1, 4, g), 0);
    for (int k = 0; k < 4; k++) {
        expect_shape(g[k], 2, I64(2, 3));
        expect_strides(g[k], I64(12, 1));
        ck_assert_int_eq(g[k]->offset, 3 * k);
        ck_assert_ptr_eq(g[k]->storage->data, z->storage->data);
        ck_assert_double_eq(get2(g[k], 1, 2), 12 + 3 * k + 2);
    }
    sg_tensor *h[3] = {0};
    ck_assert_int_eq(sg_split_sizes(ctx, z, 1, 3, I64(3, 6, 3), h), 0);
    expect_shape(h[1], 2, I64(2, 6));
    ck_assert_int_eq(h[0]->offset, 0);
    ck_assert_int_eq(h[1]->offset, 3);
    ck_assert_int_eq(h[2]->offset, 9);
    ck_assert_double_eq(get2(h[2], 1, 0), 21);
    /* Along axis 0, and with an empty part. */
    sg_tensor *rows[2] = {0};
    ck_assert_int_eq(sg_split_sizes(ctx, z, 0, 2, I64(0, 2), rows), 0);
    expect_shape(rows[0], 2, I64(0, 12));
    expect_shape(rows[1], 2, I64(2, 12));
    ck_assert_int_eq(rows[1]->offset, 0);
    sg_tensor *one[1] = {0};
    ck_assert_int_eq(sg_split(ctx, z, 0, 1, one), 0);
    expect_shape(one[0], 2, I64(2, 12));
    EXPECT_NO_ERR(ctx);
    sg_ctx_free(ctx);
}
END_TEST

START_TEST(test_expand) {
    sg_dtype dt = (sg_dtype)_i;
    sg_ctx *ctx = sg_ctx_new(0);
    sg_tensor *v = sg_arange(ctx, dt, 1, 4, 1); /* (3,) = 1 2 3 */
    sg_tensor *e = sg_expand(ctx, v, SG_SHAPE(2, 3));
    expect_shape(e, 2, I64(2, 3));
    expect_strides(e, I64(0, 1));
    ck_assert_ptr_eq(e->storage->data, v->storage->data);
    ck_assert(!sg_is_contiguous(e));
    ck_assert_double_eq(get2(e, 1, 2), 3);
    ck_assert_double_eq(sg_get_flat(e, 4), 2);
    /* A column (3, 1) stretched along its size-1 axis. */
    sg_tensor *col = sg_reshape(ctx, v, SG_SHAPE(3, 1));
    sg_tensor *ec = sg_expand(ctx, col, SG_SHAPE(2, 3, 4));
    expect_shape(ec, 3, I64(2, 3, 4));
    expect_strides(ec, I64(0, 1, 0));
    ck_assert_double_eq(get3(ec, 1, 2, 3), 3);
    /* A 0-d scalar to any shape. */
    sg_tensor *s = sg_scalar(ctx, dt, 5);
    sg_tensor *es = sg_expand(ctx, s, SG_SHAPE(2, 2));
    expect_strides(es, I64(0, 0));
    ck_assert_double_eq(get2(es, 1, 1), 5);
    /* Same shape: strides kept (a plain view). */
    sg_tensor *m = iota(ctx, dt, SG_SHAPE(2, 3));
    sg_tensor *em = sg_expand(ctx, sg_transpose(ctx, m, 0, 1), SG_SHAPE(3, 2));
    expect_strides(em, I64(1, 3));
    /* A size-1 axis may also become 0. */
    sg_tensor *e0 = sg_expand(ctx, col, SG_SHAPE(3, 0));
    expect_shape(e0, 2, I64(3, 0));
    ck_assert_int_eq(sg_numel(e0), 0);
    EXPECT_NO_ERR(ctx);
    sg_ctx_free(ctx);
}
END_TEST

/* Writing through every kind of view lands in the base tensor, at the right place only. */
START_TEST(test_write_through_views) {
    sg_dtype dt = (sg_dtype)_i;
    sg_ctx *ctx = sg_ctx_new(0);
    sg_tensor *x = sg_zeros(ctx, dt, SG_SHAPE(2, 3, 4));
    double ref[24] = {0}, got[24];
#define IDX(i, j, k) ((i)*12 + (j)*4 + (k))

    /* reshape */
    sg_tensor *r = sg_reshape(ctx, x, SG_SHAPE(6, 4));
    ck_assert_int_eq(sg_set_flat(r, 9, 1.5), 0);
    ref[9] = 1.5;
    /* permute: p[k, i, j] = x[i, j, k] */
    sg_tensor *p = sg_permute(ctx, x, (const int[]){2, 0, 1});
    ck_assert_int_eq(sg_set_flat(p, 1 * 6 + 1 * 3 + 2, 2.5), 0); /* p[1, 1, 2] */
    ref[IDX(1, 2, 1)] = 2.5;
    /* slice */
    sg_tensor *sl = sg_slice(ctx, x, 2, 3, 1); /* x[:, :, 3:4] */
    ck_assert_int_eq(sg_fill(sl, -1), 0);
    for (int i = 0; i < 2; i++)
        for (int j = 0; j < 3; j++)
            ref[IDX(i, j, 3)] = -1;
    /* select x[:, 1, :] with a strided copy into it */
    sg_tensor *se = sg_select(ctx, x, 1, 1);
    sg_tensor *src = iota(ctx, dt, SG_SHAPE(4, 2));
    ck_assert_int_eq(sg_copy(se, sg_transpose(ctx, src, 0, 1)), 0); /* se[b, i] = src[i, b] */
    for (int b = 0; b < 2; b++)
        for (int i = 0; i < 4; i++)
            ref[IDX(b, 1, i)] = 2 * i + b;
    /* split part, axpy */
    sg_tensor *parts[2];
    ck_assert_int_eq(sg_split(ctx, x, 0, 2, parts), 0);
    sg_tensor *ones = sg_ones(ctx, dt, SG_SHAPE(1, 3, 4));
    ck_assert_int_eq(sg_axpy(parts[1], 10, ones), 0);
    for (int k = 12; k < 24; k++)
        ref[k] += 10;
    /* expand: every stretched element aliases one base element */
    sg_tensor *corner = sg_slice(ctx, sg_slice(ctx, x, 1, 0, 1), 2, 0, 1); /* x[:, 0:1, 0:1] */
    sg_tensor *ex = sg_expand(ctx, corner, SG_SHAPE(2, 5, 7));
    ck_assert_int_eq(sg_set_flat(ex, 1 * 35 + 4 * 7 + 6, 42), 0); /* ex[1, 4, 6] = x[1,0,0] */
    ref[IDX(1, 0, 0)] = 42;
    ck_assert_double_eq(get3(ex, 1, 0, 0), 42);

    ck_assert_int_eq(sg_copy_to_f64(x, got), 0);
    for (int k = 0; k < 24; k++)
        ck_assert_msg(got[k] == ref[k], "x flat %d: got %g, want %g", k, got[k], ref[k]);
    /* ... and the views see each other's writes. */
    ck_assert_double_eq(get2(r, 2, 1), ref[9]);
    ck_assert_double_eq(get2(se, 1, 3), ref[IDX(1, 1, 3)]);
#undef IDX
    EXPECT_NO_ERR(ctx);
    sg_ctx_free(ctx);
}
END_TEST

START_TEST(test_contiguous) {
    sg_dtype dt = (sg_dtype)_i;
    sg_ctx *ctx = sg_ctx_new(0);
    sg_tensor *x = iota(ctx, dt, SG_SHAPE(4, 5));
    sg_tensor *rows = sg_slice(ctx, x, 0, 1, 2); /* (2, 5) rows: contiguous */
    sg_tensor *sel = sg_select(ctx, x, 1, 2);    /* (4,) stride 5: not contiguous */
    sg_tensor *row = sg_select(ctx, x, 0, 2);    /* (5,) stride 1 */
    sg_tensor *col1 = sg_slice(ctx, x, 1, 2, 1); /* (4, 1): strides (5, 1) */
    sg_tensor *row1 = sg_slice(ctx, x, 0, 2, 1); /* (1, 5): size-1 axis, any stride */
    /* Already contiguous: the input itself, nothing allocated. */
    size_t used = sg_ctx_arena_used(ctx);
    ck_assert_ptr_eq(sg_contiguous(ctx, x), x);
    ck_assert_ptr_eq(sg_contiguous(ctx, rows), rows);
    ck_assert_ptr_eq(sg_contiguous(ctx, row), row);
    ck_assert_ptr_eq(sg_contiguous(ctx, row1), row1);
    ck_assert_int_eq(sg_ctx_arena_used(ctx), used);
    ck_assert(!sg_is_contiguous(col1));

    /* Not contiguous: a fresh contiguous copy with the same values. */
    sg_tensor *t = sg_transpose(ctx, x, 0, 1);
    sg_tensor *c = sg_contiguous(ctx, t);
    ck_assert_ptr_ne(c, t);
    ck_assert_ptr_ne(c->storage->data, x->storage->data);
    expect_shape(c, 2, I64(5, 4));
    expect_strides(c, I64(4, 1));
    ck_assert_int_eq(c->offset, 0);
    ck_assert(sg_is_contiguous(c));
    for (int i = 0; i < 5; i++)
        for (int j = 0; j < 4; j++)
            ck_assert_double_eq(get2(c, i, j), 5 * j + i);
    /* The copy is independent of its source. */
    ck_assert_int_eq(sg_set_flat(c, 0, 99), 0);
    ck_assert_double_eq(get2(x, 0, 0), 0);
    sg_tensor *cs = sg_contiguous(ctx, sel);
    ck_assert_ptr_ne(cs, sel);
    ck_assert_double_eq(sg_get_flat(cs, 3), 17);
    sg_tensor *ce = sg_contiguous(ctx, sg_expand(ctx, row, SG_SHAPE(2, 5)));
    expect_strides(ce, I64(5, 1));
    ck_assert_double_eq(get2(ce, 1, 4), 14);
    /* Empty tensors are contiguous whatever their strides. */
    sg_tensor *e = sg_slice(ctx, t, 1, 0, 0);
    ck_assert(sg_is_contiguous(e));
    ck_assert_ptr_eq(sg_contiguous(ctx, e), e);
    EXPECT_NO_ERR(ctx);
    sg_ctx_free(ctx);
}
END_TEST

/* Views of a tensor requiring grad are recorded on the tape (ctx.c's sg__record), and not
 * when grad mode is off. */
START_TEST(test_views_record) {
    sg_ctx *ctx = sg_ctx_new(0);
    sg_tensor *x = sg_set_requires_grad(iota(ctx, SG_F64, SG_SHAPE(2, 3)), true);
    ck_assert_ptr_nonnull(x);
    ck_assert_int_eq(sg_tape_size(ctx), 0);
    sg_tensor *r = sg_reshape(ctx, x, SG_SHAPE(3, 2));
    ck_assert_int_eq(r->op, SG_OP_RESHAPE);
    ck_assert_int_eq(r->nsrc, 1);
    ck_assert_ptr_eq(r->src[0], x);
    ck_assert(r->flags & SG_FLAG_REQUIRES_GRAD);
    ck_assert(r->flags & SG_FLAG_ON_TAPE);
    ck_assert_int_eq(sg_tape_size(ctx), 1);
    sg_tensor *p = sg_transpose(ctx, r, 0, 1);
    ck_assert_int_eq(p->op, SG_OP_PERMUTE);
    ck_assert_int_eq(p->iparam[0], 1);
    ck_assert_int_eq(p->iparam[1], 0);
    sg_tensor *s = sg_slice(ctx, p, 1, 1, 2);
    ck_assert_int_eq(s->op, SG_OP_SLICE);
    ck_assert_int_eq(s->iparam[0], 1);
    ck_assert_int_eq(s->iparam[1], 1);
    sg_tensor *e = sg_expand(ctx, s, SG_SHAPE(4, 2, 2));
    ck_assert_int_eq(e->op, SG_OP_EXPAND);
    ck_assert_int_eq(sg_tape_size(ctx), 4);
    /* A view of a plain tensor is a leaf. */
    sg_tensor *plain = iota(ctx, SG_F64, SG_SHAPE(2, 3));
    sg_tensor *pv = sg_transpose(ctx, plain, 0, 1);
    ck_assert_int_eq(pv->op, SG_OP_NONE);
    ck_assert(!(pv->flags & SG_FLAG_REQUIRES_GRAD));
    /* Grad mode off: nothing is recorded. */
    ck_assert(sg_ctx_grad_enabled(ctx));
    ck_assert(sg_ctx_set_grad_enabled(ctx, false) == true);
    ck_assert(!sg_ctx_grad_enabled(ctx));
    sg_tensor *r2 = sg_reshape(ctx, x, SG_SHAPE(6));
    ck_assert_int_eq(r2->op, SG_OP_NONE);
    ck_assert(!(r2->flags & SG_FLAG_REQUIRES_GRAD));
    ck_assert(sg_ctx_set_grad_enabled(ctx, true) == false);
    ck_assert_int_eq(sg_tape_size(ctx), 4);
    /* Reset empties the tape. */
    sg_ctx_reset(ctx);
    ck_assert_int_eq(sg_tape_size(ctx), 0);
    EXPECT_NO_ERR(ctx);
    sg_ctx_free(ctx);
}
END_TEST

/* ========================================================================================= *
 * Creation and inspection
 * ========================================================================================= */

START_TEST(test_create_fill) {
    sg_dtype dt = (sg_dtype)_i;
    sg_ctx *ctx = sg_ctx_new(0);
    sg_tensor *z = sg_zeros(ctx, dt, SG_SHAPE(2, 3));
    sg_tensor *o = sg_ones(ctx, dt, SG_SHAPE(3));
    sg_tensor *f = sg_full(ctx, dt, SG_SHAPE(2, 1, 2), -2.25);
    sg_tensor *n = sg_tensor_new(ctx, dt, SG_SHAPE(4));
    sg_tensor *s = sg_scalar(ctx, dt, 7.5);
    expect_shape(z, 2, I64(2, 3));
    expect_strides(z, I64(3, 1));
    expect_strides(f, I64(2, 2, 1));
    ck_assert_int_eq(z->dtype, dt);
    ck_assert_int_eq(z->offset, 0);
    ck_assert_int_eq(z->op, SG_OP_NONE);
    ck_assert_int_eq(z->flags, 0);
    ck_assert_ptr_null(z->grad);
    ck_assert_ptr_eq(z->ctx, ctx);
    ck_assert_uint_eq(z->magic, SG_TENSOR_MAGIC);
    for (int i = 0; i < 6; i++)
        ck_assert_double_eq(sg_get_flat(z, i), 0);
    for (int i = 0; i < 3; i++)
        ck_assert_double_eq(sg_get_flat(o, i), 1);
    for (int i = 0; i < 4; i++) {
        ck_assert_double_eq(sg_get_flat(f, i), -2.25);
        ck_assert_double_eq(sg_get_flat(n, i), 0);
    }
    ck_assert_int_eq(s->ndim, 0);
    ck_assert_int_eq(sg_numel(s), 1);
    ck_assert(sg_is_contiguous(s));
    ck_assert_double_eq(sg_get_flat(s, 0), 7.5);
    ck_assert_double_eq(sg_get(s, NULL), 7.5);
    /* float32 rounds like a float. */
    sg_tensor *third = sg_full(ctx, dt, SG_SHAPE(1), 1.0 / 3.0);
    ck_assert_double_eq(sg_get_flat(third, 0), dt == SG_F32 ? (double)(1.0f / 3.0f) : 1.0 / 3.0);
    /* Zero-size tensors. */
    sg_tensor *e = sg_zeros(ctx, dt, SG_SHAPE(2, 0, 3));
    expect_shape(e, 3, I64(2, 0, 3));
    ck_assert_int_eq(sg_numel(e), 0);
    ck_assert(sg_is_contiguous(e));
    ck_assert_int_eq(sg_fill(e, 1), 0);
    /* Data is 64-byte aligned for SIMD kernels. */
    ck_assert_uint_eq((uintptr_t)sg_data(z) % 64, 0);
    ck_assert_uint_eq((uintptr_t)sg_data(o) % 64, 0);
    ck_assert_uint_eq((uintptr_t)sg_arena_alloc(ctx, 3) % 64, 0);
    ck_assert_uint_eq((uintptr_t)sg_arena_alloc(ctx, 1) % 64, 0);
    /* sg_fill on a strided view writes only the view. */
    sg_tensor *m = sg_zeros(ctx, dt, SG_SHAPE(3, 3));
    ck_assert_int_eq(sg_fill(sg_transpose(ctx, sg_slice(ctx, m, 1, 1, 1), 0, 1), 4), 0);
    double got[9];
    ck_assert_int_eq(sg_copy_to_f64(m, got), 0);
    for (int i = 0; i < 9; i++)
        ck_assert_double_eq(got[i], i % 3 == 1 ? 4 : 0);
    EXPECT_NO_ERR(ctx);
    sg_ctx_free(ctx);
}
END_TEST

START_TEST(test_arange) {
    sg_dtype dt = (sg_dtype)_i;
    sg_ctx *ctx = sg_ctx_new(0);
    sg_tensor *a = sg_arange(ctx, dt, 0, 5, 1);
    expect_shape(a, 1, I64(5));
    for (int i = 0; i < 5; i++)
        ck_assert_double_eq(sg_get_flat(a, i), i);
    /* Negative step counts down, stopping above stop. */
    sg_tensor *d = sg_arange(ctx, dt, 5, 0, -2);
    expect_shape(d, 1, I64(3));
    ck_assert_double_eq(sg_get_flat(d, 0), 5);
    ck_assert_double_eq(sg_get_flat(d, 1), 3);
    ck_assert_double_eq(sg_get_flat(d, 2), 1);
    sg_tensor *d2 = sg_arange(ctx, dt, 1, -1, -0.5);
    expect_shape(d2, 1, I64(4));
    ck_assert_double_eq(sg_get_flat(d2, 3), -0.5);
    /* Fractional steps: ceil((stop - start) / step) elements. */
    sg_tensor *q = sg_arange(ctx, dt, 0, 1, 0.25);
    expect_shape(q, 1, I64(4));
    ck_assert_double_eq(sg_get_flat(q, 3), 0.75);
    sg_tensor *q2 = sg_arange(ctx, dt, 0, 1.1, 0.25);
    expect_shape(q2, 1, I64(5));
    /* Empty ranges: start == stop, or stepping away from stop. */
    sg_tensor *e1 = sg_arange(ctx, dt, 3, 3, 1);
    expect_shape(e1, 1, I64(0));
    sg_tensor *e2 = sg_arange(ctx, dt, 0, -1, 1);
    expect_shape(e2, 1, I64(0));
    sg_tensor *e3 = sg_arange(ctx, dt, 0, 4, -1);
    expect_shape(e3, 1, I64(0));
    ck_assert_int_eq(sg_numel(e3), 0);
    EXPECT_NO_ERR(ctx);
    sg_ctx_free(ctx);
}
END_TEST

START_TEST(test_from_data_wrap) {
    sg_ctx *ctx = sg_ctx_new(0);
    double d[6] = {1, 2, 3, 4, 5, 6};
    float f[4] = {0.5f, -1.5f, 2.5f, 8.0f};
    /* from_data copies: later changes to the buffer are not seen. */
    sg_tensor *a = sg_from_data(ctx, SG_F64, SG_SHAPE(2, 3), d);
    sg_tensor *b = sg_from_data(ctx, SG_F32, SG_SHAPE(2, 2), f);
    ck_assert_ptr_ne(sg_data(a), d);
    d[4] = -100;
    f[0] = -100;
    ck_assert_double_eq(get2(a, 1, 1), 5);
    ck_assert_double_eq(get2(b, 0, 0), 0.5);
    ck_assert_double_eq(get2(b, 1, 1), 8);
    /* wrap aliases: both directions are visible, nothing is copied. */
    sg_tensor *w = sg_wrap(ctx, SG_F64, SG_SHAPE(3, 2), d);
    ck_assert_ptr_eq(sg_data(w), d);
    ck_assert_double_eq(get2(w, 2, 0), -100);
    d[5] = 60;
    ck_assert_double_eq(get2(w, 2, 1), 60);
    ck_assert_int_eq(sg_set_flat(w, 0, -7), 0);
    ck_assert_double_eq(d[0], -7);
    sg_tensor *wf = sg_wrap(ctx, SG_F32, SG_SHAPE(4), f);
    ck_assert_int_eq(sg_fill(sg_slice(ctx, wf, 0, 2, 2), 3), 0);
    ck_assert(f[1] == -1.5f && f[2] == 3.0f && f[3] == 3.0f);
    /* A view of a wrapped buffer still points into it. */
    sg_tensor *wt = sg_transpose(ctx, w, 0, 1);
    ck_assert_ptr_eq(wt->storage->data, (void *)d);
    ck_assert_double_eq(get2(wt, 1, 2), 60);
    /* copy_to / copy_to_f64 produce row-major order of the view. */
    double out[6];
    ck_assert_int_eq(sg_copy_to(wt, out), 0);
    const double want[6] = {-7, 3, -100, 2, 4, 60};
    for (int i = 0; i < 6; i++)
        ck_assert_double_eq(out[i], want[i]);
    float outf[2];
    ck_assert_int_eq(sg_copy_to(sg_slice(ctx, b, 1, 1, 1), outf), 0);
    ck_assert(outf[0] == -1.5f && outf[1] == 8.0f);
    /* Wrapping empty data with an empty shape is fine too. */
    ck_assert_ptr_nonnull(sg_wrap(ctx, SG_F64, SG_SHAPE(0), d));
    EXPECT_NO_ERR(ctx);
    sg_ctx_free(ctx);
}
END_TEST

START_TEST(test_inspection) {
    sg_ctx *ctx = sg_ctx_new(0);
    ck_assert_uint_eq(sg_dtype_size(SG_F32), 4);
    ck_assert_uint_eq(sg_dtype_size(SG_F64), 8);
    ck_assert_str_eq(sg_dtype_name(SG_F32), "float32");
    ck_assert_str_eq(sg_dtype_name(SG_F64), "float64");
    char buf[64];
    ck_assert_str_eq(sg_shape_str(2, I64(2, 3), buf, sizeof buf), "(2, 3)");
    ck_assert_str_eq(sg_shape_str(1, I64(5), buf, sizeof buf), "(5,)");
    ck_assert_str_eq(sg_shape_str(0, NULL, buf, sizeof buf), "()");
    ck_assert_str_eq(sg_shape_str(3, I64(1, 0, 12), buf, sizeof buf), "(1, 0, 12)");
    /* A short buffer truncates, still terminated. */
    char small[5];
    ck_assert_str_eq(sg_shape_str(2, I64(123456, 7), small, sizeof small), "(123");
    /* sg_get with a multi-index and sg_get_flat agree on a strided view. */
    sg_tensor *x = iota(ctx, SG_F64, SG_SHAPE(3, 4));
    sg_tensor *v = sg_slice(ctx, sg_transpose(ctx, x, 0, 1), 0, 1, 3); /* x.T[1:4] (3, 3) */
    for (int i = 0; i < 3; i++)
        for (int j = 0; j < 3; j++) {
            ck_assert_double_eq(get2(v, i, j), 4 * j + i + 1);
            ck_assert_double_eq(sg_get_flat(v, 3 * i + j), 4 * j + i + 1);
        }
    /* Names: set, truncated to the field, NULL clears. */
    sg_tensor_set_name(x, "weights");
    ck_assert_str_eq(x->name, "weights");
    char longname[100];
    memset(longname, 'a', sizeof longname - 1);
    longname[99] = 0;
    sg_tensor_set_name(x, longname);
    ck_assert_uint_eq(strlen(x->name), sizeof x->name - 1);
    sg_tensor_set_name(x, NULL);
    ck_assert_str_eq(x->name, "");
    /* requires_grad / retain_grad flags on leaves. */
    ck_assert_ptr_eq(sg_set_requires_grad(x, true), x);
    ck_assert(x->flags & SG_FLAG_REQUIRES_GRAD);
    ck_assert_ptr_eq(sg_set_requires_grad(x, false), x);
    ck_assert(!(x->flags & SG_FLAG_REQUIRES_GRAD));
    ck_assert_ptr_eq(sg_retain_grad(x), x);
    ck_assert(x->flags & SG_FLAG_RETAIN_GRAD);
    /* 0 picks the default arena of 1 MiB. */
    ck_assert_uint_eq(sg_ctx_arena_capacity(ctx), (size_t)1 << 20);
    /* The context's generator is seeded with 0 and reproducible. */
    sg_rng r0;
    sg_rng_seed(&r0, 0);
    ck_assert_uint_eq(sg_rng_next(sg_ctx_rng(ctx)), sg_rng_next(&r0));
    EXPECT_NO_ERR(ctx);
    sg_ctx_free(ctx);
}
END_TEST

START_TEST(test_copy_axpy) {
    sg_dtype dt = (sg_dtype)_i;
    sg_ctx *ctx = sg_ctx_new(0);
    sg_tensor *a = iota(ctx, dt, SG_SHAPE(2, 3));
    sg_tensor *b = sg_zeros(ctx, dt, SG_SHAPE(3, 2));
    /* Strided destination, contiguous source: b.T = a. */
    ck_assert_int_eq(sg_copy(sg_transpose(ctx, b, 0, 1), a), 0);
    for (int i = 0; i < 3; i++)
        for (int j = 0; j < 2; j++)
            ck_assert_double_eq(get2(b, i, j), 3 * j + i);
    /* Contiguous both: plain copy. */
    sg_tensor *c = sg_zeros(ctx, dt, SG_SHAPE(2, 3));
    ck_assert_int_eq(sg_copy(c, a), 0);
    ck_assert_double_eq(get2(c, 1, 2), 5);
    /* axpy: c += 0.5 * a, then through views with a broadcast (stride-0) source. */
    ck_assert_int_eq(sg_axpy(c, 0.5, a), 0);
    ck_assert_double_eq(get2(c, 1, 2), 7.5);
    sg_tensor *row = sg_arange(ctx, dt, 1, 4, 1); /* 1 2 3 */
    ck_assert_int_eq(sg_axpy(c, -2, sg_expand(ctx, row, SG_SHAPE(2, 3))), 0);
    ck_assert_double_eq(get2(c, 0, 0), 0 - 2);
    ck_assert_double_eq(get2(c, 1, 2), 7.5 - 6);
    ck_assert_int_eq(sg_axpy(sg_transpose(ctx, b, 0, 1), 1, a), 0);
    ck_assert_double_eq(get2(b, 2, 1), 10);
    /* 0-d tensors. */
    sg_tensor *s = sg_scalar(ctx, dt, 1), *t = sg_scalar(ctx, dt, 4);
    ck_assert_int_eq(sg_axpy(s, 0.25, t), 0);
    ck_assert_double_eq(sg_get_flat(s, 0), 2);
    EXPECT_NO_ERR(ctx);
    sg_ctx_free(ctx);
}
END_TEST

/* ========================================================================================= *
 * The arena, resets, persistent tensors
 * ========================================================================================= */

/* One (2, 2) float32 tensor costs a header and a 64-byte-aligned data block; the first
 * one also pays for aligning the block's start, so measure the second. */
static size_t cost_of_small_tensor(void) {
    sg_ctx *ctx = sg_ctx_new(0);
    sg_zeros(ctx, SG_F32, SG_SHAPE(2, 2));
    size_t before = sg_ctx_arena_used(ctx);
    sg_zeros(ctx, SG_F32, SG_SHAPE(2, 2));
    size_t c = sg_ctx_arena_used(ctx) - before;
    sg_ctx_free(ctx);
    return c;
}

START_TEST(test_arena_5000_small) {
    size_t per = cost_of_small_tensor();
    ck_assert_uint_gt(per, 0);
    ck_assert_uint_le(per, 1024);
    size_t cap = 5000 * per + 128;
    sg_ctx *ctx = sg_ctx_new(cap);
    ck_assert_uint_eq(sg_ctx_arena_capacity(ctx), cap);
    static sg_tensor *ts[5000];
    size_t first = 0;
    for (int i = 0; i < 5000; i++) {
        ts[i] = sg_full(ctx, SG_F32, SG_SHAPE(2, 2), i);
        ck_assert_ptr_nonnull(ts[i]);
        if (i == 0)
            first = sg_ctx_arena_used(ctx);
    }
    /* No growth: still the first block, every tensor intact, no waste. */
    ck_assert_uint_eq(sg_ctx_arena_capacity(ctx), cap);
    ck_assert_ptr_null(ctx->first->next);
    ck_assert_uint_eq(sg_ctx_arena_used(ctx), first + 4999 * per);
    for (int i = 0; i < 5000; i++)
        ck_assert_double_eq(sg_get_flat(ts[i], 3), i);
    /* Reset is O(1): used drops to at most one alignment pad, memory is reused. */
    sg_ctx_reset(ctx);
    ck_assert_uint_le(sg_ctx_arena_used(ctx), 64);
    ck_assert_uint_eq(sg_ctx_arena_capacity(ctx), cap);
    ck_assert_uint_eq(sg_ctx_arena_peak(ctx), first + 4999 * per);
    sg_tensor *again = sg_zeros(ctx, SG_F32, SG_SHAPE(2, 2));
    ck_assert((unsigned char *)again >= ctx->first->data &&
              (unsigned char *)again < ctx->first->data + cap);
    EXPECT_NO_ERR(ctx);
    sg_ctx_free(ctx);
}
END_TEST

/* The same work every step gives the same high-water mark (the arena starts odd
 * generations one alignment step further in, hence the bound rather than equality with the
 * first step). */
START_TEST(test_arena_peak_stable) {
    sg_ctx *ctx = sg_ctx_new(1 << 16);
    size_t peaks[8], caps[8];
    for (int step = 0; step < 8; step++) {
        sg_ctx_reset(ctx);
        size_t start = sg_ctx_arena_used(ctx);
        sg_ctx_arena_reset_peak(ctx);
        ck_assert_uint_eq(sg_ctx_arena_peak(ctx), start);
        for (int i = 0; i < 20; i++)
            sg_ones(ctx, SG_F64, SG_SHAPE(i + 1));
        peaks[step] = sg_ctx_arena_peak(ctx) - start;
        caps[step] = sg_ctx_arena_capacity(ctx);
        ck_assert_uint_eq(sg_ctx_arena_peak(ctx), sg_ctx_arena_used(ctx));
    }
    for (int step = 1; step < 8; step++) {
        ck_assert_uint_eq(peaks[step], peaks[0]);
        ck_assert_uint_eq(caps[step], caps[0]);
    }
    /* The peak since creation is kept across resets until reset_peak. */
    sg_ctx_reset(ctx);
    ck_assert_uint_ge(sg_ctx_arena_peak(ctx), peaks[0]);
    sg_ctx_arena_reset_peak(ctx);
    ck_assert_uint_eq(sg_ctx_arena_peak(ctx), sg_ctx_arena_used(ctx));
    EXPECT_NO_ERR(ctx);
    sg_ctx_free(ctx);
}
END_TEST

START_TEST(test_arena_growth_coalesce) {
    sg_ctx *ctx = sg_ctx_new(4096);
    sg_tensor *ts[40];
    for (int step = 0; step < 3; step++) {
        for (int i = 0; i < 40; i++) {
            ts[i] = sg_full(ctx, SG_F64, SG_SHAPE(16), step * 100 + i);
            ck_assert_ptr_nonnull(ts[i]);
        }
        for (int i = 0; i < 40; i++)
            ck_assert_double_eq(sg_get_flat(ts[i], 15), step * 100 + i);
        size_t cap = sg_ctx_arena_capacity(ctx);
        if (step == 0) {
            /* Outgrew 4 KiB: more blocks. */
            ck_assert_uint_gt(cap, 4096);
            ck_assert_ptr_nonnull(ctx->first->next);
        } else {
            /* After coalescing the step fits in the single block. */
            ck_assert_ptr_null(ctx->first->next);
        }
        sg_ctx_reset(ctx);
        /* One block as large as all of them. */
        ck_assert_ptr_null(ctx->first->next);
        ck_assert_uint_eq(ctx->first->cap, cap);
        ck_assert_uint_eq(sg_ctx_arena_capacity(ctx), cap);
        ck_assert_uint_le(sg_ctx_arena_used(ctx), 64);
    }
    /* One allocation larger than the whole arena gets a block of its own. */
    sg_ctx *small = sg_ctx_new(1024);
    sg_tensor *big = sg_full(small, SG_F64, SG_SHAPE(10000), 2);
    ck_assert_ptr_nonnull(big);
    ck_assert_uint_ge(sg_ctx_arena_capacity(small), 80000);
    ck_assert_double_eq(sg_get_flat(big, 9999), 2);
    sg_ctx_reset(small);
    ck_assert_ptr_nonnull(sg_full(small, SG_F64, SG_SHAPE(10000), 3));
    ck_assert_ptr_null(small->first->next);
    EXPECT_NO_ERR(small);
    sg_ctx_free(small);
    EXPECT_NO_ERR(ctx);
    sg_ctx_free(ctx);
}
END_TEST

START_TEST(test_persistent_survive_reset) {
    sg_ctx *ctx = sg_ctx_new(2048);
    sg_tensor *p = sg_persistent_new(ctx, SG_F32, SG_SHAPE(3));
    sg_tensor *w = sg_param_new(ctx, SG_F64, SG_SHAPE(2, 2), "w");
    ck_assert_ptr_nonnull(p);
    ck_assert_ptr_nonnull(w);
    ck_assert(p->flags & SG_FLAG_PERSISTENT);
    ck_assert(!(p->flags & SG_FLAG_PARAM));
    ck_assert(!(p->flags & SG_FLAG_REQUIRES_GRAD));
    ck_assert(w->flags & SG_FLAG_PERSISTENT);
    ck_assert(w->flags & SG_FLAG_PARAM);
    ck_assert(w->flags & SG_FLAG_REQUIRES_GRAD);
    ck_assert_str_eq(w->name, "w");
    ck_assert_ptr_nonnull(w->grad);
    ck_assert(w->grad->flags & SG_FLAG_PERSISTENT);
    expect_shape(w->grad, 2, I64(2, 2));
    expect_strides(w, I64(2, 1));
    for (int i = 0; i < 4; i++) { /* zeroed */
        ck_assert_double_eq(sg_get_flat(w, i), 0);
        ck_assert_double_eq(sg_get_flat(w->grad, i), 0);
    }
    for (int i = 0; i < 3; i++)
        sg_set_flat(p, i, i + 0.5);
    for (int i = 0; i < 4; i++) {
        sg_set_flat(w, i, 10 + i);
        sg_set_flat(w->grad, i, -i);
    }
    sg_tensor *q = sg_param_new(ctx, SG_F32, SG_SHAPE(5), NULL);
    ck_assert_str_eq(q->name, "");
    for (int step = 0; step < 4; step++) {
        /* Enough arena work to grow past the first block (coalesced at the reset). */
        for (int i = 0; i < 10; i++)
            sg_ones(ctx, SG_F64, SG_SHAPE(32));
        sg_tensor *v = sg_reshape(ctx, w, SG_SHAPE(4)); /* arena view of a param */
        ck_assert_double_eq(sg_get_flat(v, 3), 13);
        sg_ctx_reset(ctx);
        ck_assert(sg_check(ctx, p, "test"));
        ck_assert(sg_check(ctx, w, "test"));
        ck_assert(sg_check(ctx, w->grad, "test"));
        for (int i = 0; i < 3; i++)
            ck_assert_double_eq(sg_get_flat(p, i), i + 0.5);
        for (int i = 0; i < 4; i++) {
            ck_assert_double_eq(sg_get_flat(w, i), 10 + i);
            ck_assert_double_eq(sg_get_flat(w->grad, i), -i);
        }
    }
    /* sg_ctx_zero_grad zeroes parameters' grads only. */
    sg_ctx_zero_grad(ctx);
    for (int i = 0; i < 4; i++) {
        ck_assert_double_eq(sg_get_flat(w->grad, i), 0);
        ck_assert_double_eq(sg_get_flat(w, i), 10 + i);
    }
    ck_assert_double_eq(sg_get_flat(p, 2), 2.5);
    /* Free one early; the rest go with the context (LSan checks nothing leaks). */
    sg_tensor_free(q);
    EXPECT_NO_ERR(ctx);
    sg_ctx_free(ctx);
}
END_TEST

START_TEST(test_tensor_free) {
    install_alloc(-1, 0);
    sg_ctx *ctx = sg_ctx_new(0);
    long base = g_live;
    /* NULL and arena tensors: no-ops, the arena tensor stays usable. */
    sg_tensor_free(NULL);
    sg_tensor *a = sg_full(ctx, SG_F32, SG_SHAPE(3), 4);
    sg_tensor_free(a);
    ck_assert(sg_check(ctx, a, "test"));
    ck_assert_double_eq(sg_get_flat(a, 2), 4);
    ck_assert_int_eq(g_live, base);
    /* A persistent tensor: node + data. A parameter: also its grad's node + data. */
    sg_tensor *p = sg_persistent_new(ctx, SG_F64, SG_SHAPE(4));
    ck_assert_int_eq(g_live, base + 2);
    sg_tensor *w = sg_param_new(ctx, SG_F64, SG_SHAPE(2, 2), "w");
    sg_tensor *u = sg_param_new(ctx, SG_F64, SG_SHAPE(2), "u");
    ck_assert_int_eq(g_live, base + 10);
    sg_tensor_free(w); /* from the middle of the list */
    ck_assert_int_eq(g_live, base + 6);
    sg_tensor_free(p);
    ck_assert_int_eq(g_live, base + 4);
    sg_set_flat(u, 1, 3);
    sg_ctx_reset(ctx);
    ck_assert_double_eq(sg_get_flat(u, 1), 3);
    sg_ctx_free(ctx);
    ck_assert_int_eq(g_live, 0);
    restore_alloc();
}
END_TEST

/* An arena tensor kept across a reset is reported, not silently reused. */
START_TEST(test_stale_after_reset) {
    sg_ctx *ctx = sg_ctx_new(0);
    sg_zeros(ctx, SG_F32, SG_SHAPE(4));
    sg_ctx_reset(ctx);
    /* Nothing allocated since the reset: header intact, generation old. */
    sg_tensor *t = sg_zeros(ctx, SG_F32, SG_SHAPE(2, 3));
    sg_ctx_reset(ctx);
    ck_assert_ptr_null(sg_reshape(ctx, t, SG_SHAPE(6)));
    EXPECT_ERR(ctx, "sg_reshape: tensor used after sg_ctx_reset");
    ck_assert(isnan(sg_get_flat(t, 0)));
    EXPECT_ERR(ctx, "sg_get_flat: tensor used after sg_ctx_reset");
    ck_assert_int_eq(sg_fill(t, 1), -1);
    EXPECT_ERR(ctx, "sg_fill: tensor used after sg_ctx_reset");
    ck_assert(!sg_check(ctx, t, "mine"));
    EXPECT_ERR(ctx, "mine: tensor used after sg_ctx_reset");
    sg_ctx_free(ctx);
}
END_TEST

/* The same allocations again after a reset: the stale pointer must not pass for the new
 * tensor built where it was. The loop index is the number of warm-up steps before the one
 * that keeps the stale pointer: detection must not depend on how many resets came before
 * (the arena alternates start offsets between generations for exactly this). */
START_TEST(test_stale_after_reset_reused) {
    sg_ctx *ctx = sg_ctx_new(0);
    for (int k = 0; k < _i; k++) {
        sg_zeros(ctx, SG_F32, SG_SHAPE(2, 3));
        sg_ctx_reset(ctx);
    }
    sg_tensor *old = sg_zeros(ctx, SG_F32, SG_SHAPE(2, 3));
    sg_ctx_reset(ctx);
    sg_tensor *now = sg_zeros(ctx, SG_F32, SG_SHAPE(2, 3));
    ck_assert_ptr_nonnull(now);
    ck_assert_msg(!sg_check(ctx, old, "sg_slice"),
                  "stale tensor %p passes sg_check after %d warm-up resets (the new tensor is at "
                  "%p)",
                  (void *)old, _i, (void *)now);
    EXPECT_ERR_HAS(ctx, "used after sg_ctx_reset");
    ck_assert_ptr_null(sg_slice(ctx, old, 0, 0, 1));
    EXPECT_ERR_HAS(ctx, "used after sg_ctx_reset");
    ck_assert_int_eq(sg_copy(now, old), -1);
    EXPECT_ERR_HAS(ctx, "used after sg_ctx_reset");
    sg_ctx_free(ctx);
}
END_TEST

/* The generation is 64 bits: it cannot wrap. With 32 bits, 2^32 resets brought it back to
 * the value an old tensor recorded. The header stays 384 bytes (header + storage, one
 * 64-byte-rounded allocation: arena bytes per op unchanged). */
START_TEST(test_stale_generation_64bit) {
    _Static_assert(sizeof(sg_tensor) + sizeof(sg_storage) <= 384, "a header pair is 384 bytes");
    _Static_assert(sizeof(((sg_tensor *)0)->gen) == 8, "64-bit tensor generation");
    _Static_assert(sizeof(((sg_ctx *)0)->gen) == 8, "64-bit context generation");
    _Static_assert(sizeof(((sg_storage *)0)->mark_gen) == 8, "64-bit mark generation");
    sg_ctx *ctx = sg_ctx_new(0);
    sg_tensor *t = sg_full(ctx, SG_F32, SG_SHAPE(2), 5);
    ck_assert(sg_check(ctx, t, "x"));
    /* As if 2^32 resets had passed with nothing built since: the header is intact, only its
     * generation tells. */
    ctx->gen += (uint64_t)1 << 32;
    ck_assert(!sg_check(ctx, t, "sg_fn"));
    EXPECT_ERR(ctx, "sg_fn: tensor used after sg_ctx_reset");
    ck_assert(isnan(sg_get_flat(t, 0)));
    EXPECT_ERR(ctx, "sg_get_flat: tensor used after sg_ctx_reset");
    ck_assert_ptr_null(sg_add(ctx, t, t));
    EXPECT_ERR(ctx, "sg_add: tensor used after sg_ctx_reset");
    sg_tensor_set_name(t, "old");
    EXPECT_ERR(ctx, "sg_tensor_set_name: tensor used after sg_ctx_reset");
    sg_ctx_free(ctx);
}
END_TEST

/* One training-like step: every tensor it makes, the loss last. */
static int stale_step(sg_ctx *ctx, double v, sg_tensor **made) {
    int n = 0;
    sg_tensor *x = made[n++] = sg_full(ctx, SG_F32, SG_SHAPE(2, 3), v);
    sg_tensor *w = made[n++] = sg_full(ctx, SG_F32, SG_SHAPE(3, 2), 1);
    sg_tensor *y = made[n++] = sg_matmul(ctx, x, w);
    sg_tensor *r = made[n++] = sg_reshape(ctx, y, SG_SHAPE(4));
    sg_tensor *s = made[n++] = sg_slice(ctx, r, 0, 1, 2);
    sg_tensor *q = made[n++] = sg_mul(ctx, s, s);
    made[n++] = sg_sum(ctx, q);
    for (int i = 0; i < n; i++)
        ck_assert_ptr_nonnull(made[i]);
    return n;
}

/* Issue 20: "a loss kept from step 0, 30, reads 36 at step 2, no error". The same work one to
 * five resets later builds no tensor where a tensor of step 0 was (the arena staggers its
 * generations), so every use of the old loss is an error, two resets later included. */
START_TEST(test_stale_same_work_later) {
    sg_ctx *ctx = sg_ctx_new(0);
    sg_tensor *old[8], *now[8];
    int n = stale_step(ctx, 1, old);
    sg_tensor *loss0 = old[n - 1];
    ck_assert_double_eq(sg_get_flat(loss0, 0), 18);
    for (int k = 1; k <= 5; k++) {
        sg_ctx_reset(ctx);
        ck_assert_int_eq(stale_step(ctx, k + 1, now), n);
        for (int i = 0; i < n; i++)
            for (int j = 0; j < n; j++)
                ck_assert_msg(now[i] != old[j],
                              "%d resets later, tensor %d of the step is where tensor %d was", k, i,
                              j);
        ck_assert_msg(!sg_check(ctx, loss0, "sg_fn"), "the loss of step 0 passes at step %d", k);
        EXPECT_ERR_HAS(ctx, "used after sg_ctx_reset");
        ck_assert_ptr_null(sg_add(ctx, loss0, now[n - 1]));
        EXPECT_ERR_HAS(ctx, "sg_add: ");
        ck_assert_ptr_null(sg_mul(ctx, now[0], old[0]));
        EXPECT_ERR_HAS(ctx, "sg_mul: ");
        /* A call that names no context cannot report a pointer with no magic anywhere; it
         * still refuses it. */
        ck_assert(isnan(sg_get_flat(loss0, 0)));
        sg_ctx_clear_error(ctx);
        ck_assert_double_eq(sg_get_flat(now[n - 1], 0), 18.0 * (k + 1) * (k + 1));
    }
    EXPECT_NO_ERR(ctx);
    sg_ctx_free(ctx);
}
END_TEST

/* Keep a tensor, reset twice, then make tensors of the same kind until one reaches the kept
 * one's address: none lands exactly on it, and the old pointer is refused. */
START_TEST(test_stale_two_resets_same_address) {
    sg_ctx *ctx = sg_ctx_new(0);
    for (int k = 0; k < _i; k++) /* the generation the tensor is kept from */
        sg_ctx_reset(ctx);
    sg_zeros(ctx, SG_F32, SG_SHAPE(5));
    sg_tensor *kept = sg_full(ctx, SG_F32, SG_SHAPE(2, 3), 7);
    sg_ctx_reset(ctx);
    sg_ctx_reset(ctx);
    sg_tensor *t = NULL;
    int made = 0;
    while ((uintptr_t)(t = sg_full(ctx, SG_F32, SG_SHAPE(2, 3), 1)) < (uintptr_t)kept) {
        made++;
        ck_assert_int_lt(made, 100);
    }
    ck_assert_ptr_ne(t, kept);
    ck_assert(!sg_check(ctx, kept, "sg_fn"));
    EXPECT_ERR_HAS(ctx, "sg_fn: not a live tensor (used after sg_ctx_reset");
    ck_assert_ptr_null(sg_sum(ctx, kept));
    EXPECT_ERR_HAS(ctx, "used after sg_ctx_reset");
    sg_ctx_free(ctx);
}
END_TEST

/* NULL arguments are refused with a message wherever a context can hear it. */
START_TEST(test_null_arguments) {
    sg_ctx *ctx = sg_ctx_new(0);
    sg_tensor *x = iota(ctx, SG_F64, SG_SHAPE(2, 3));
    ck_assert(isnan(sg_get(x, NULL))); /* crashed before */
    EXPECT_ERR(ctx, "sg_get: index is NULL for 2 dimensions");
    ck_assert_double_eq(sg_get(sg_scalar(ctx, SG_F64, 4), NULL), 4); /* 0-d: no index */
    ck_assert_ptr_null(sg_rand_uniform(ctx, SG_F32, 2, NULL, 0, 1));
    EXPECT_ERR(ctx, "sg_rand_uniform: shape is NULL for 2 dimensions");
    ck_assert_ptr_null(sg_rand_normal(ctx, SG_F32, 1, NULL, 0, 1));
    EXPECT_ERR(ctx, "sg_rand_normal: shape is NULL for 1 dimensions");
    ck_assert_ptr_null(sg_persistent_new(ctx, SG_F32, 2, NULL));
    EXPECT_ERR(ctx, "sg_persistent_new: shape is NULL for 2 dimensions");
    ck_assert_ptr_null(sg_param_new(ctx, SG_F32, 2, NULL, "p"));
    EXPECT_ERR(ctx, "sg_param_new: shape is NULL for 2 dimensions");
    ck_assert_ptr_null(sg_wrap(ctx, SG_F32, 2, NULL, (float[1]){0}));
    EXPECT_ERR(ctx, "sg_wrap: shape is NULL for 2 dimensions");
    ck_assert_ptr_null(sg_from_data(ctx, SG_F32, 2, NULL, (float[1]){0}));
    EXPECT_ERR(ctx, "sg_from_data: shape is NULL for 2 dimensions");
    ck_assert_ptr_null(sg_reshape(ctx, x, 2, NULL));
    EXPECT_ERR(ctx, "sg_reshape: shape is NULL for 2 dimensions");
    sg_store *st = sg_store_new();
    ck_assert_ptr_null(sg_store_param(ctx, st, "w", SG_F32, 2, NULL));
    EXPECT_ERR(ctx, "sg_store_param: \"w\": shape is NULL for 2 dimensions");
    ck_assert_ptr_null(sg_store_param(ctx, st, NULL, SG_F32, SG_SHAPE(2)));
    EXPECT_ERR(ctx, "sg_store_param: a parameter needs a name");
    ck_assert_ptr_null(sg_store_param(ctx, NULL, "w", SG_F32, SG_SHAPE(2)));
    EXPECT_ERR(ctx, "sg_store_param: store is NULL");
    sg_store_free(st);
    ck_assert(!sg_check(ctx, &(sg_tensor){0}, NULL));
    EXPECT_ERR(ctx, "sg_check: not a live tensor (used after sg_ctx_reset, or not a tensor)");
    sg_print(x, NULL);
    EXPECT_ERR(ctx, "sg_print: FILE is NULL");
    ck_assert_int_eq(sg_dot_write(ctx, x, NULL), -1);
    EXPECT_ERR(ctx, "sg_dot_write: FILE is NULL");
    ck_assert_int_eq(sg_dot_save(ctx, x, NULL), -1);
    EXPECT_ERR(ctx, "sg_dot_save: path is NULL");
    ck_assert_int_eq(sg_init_tensor(ctx, x, sg_init_default(SG_INIT_ZEROS), NULL), -1);
    EXPECT_ERR(ctx, "sg_init_tensor: rng is NULL");
    ck_assert_ptr_null(sg_concat(ctx, 2, NULL, 0));
    EXPECT_ERR(ctx, "sg_concat: xs is NULL");
    ck_assert_int_eq(sg_split(ctx, x, 1, 3, NULL), -1);
    EXPECT_ERR(ctx, "sg_split: need n > 0 parts, sizes and out (got n = 3)");
    ck_assert_int_eq(sg_lstm_forward(ctx, NULL, x, NULL, NULL, NULL), -1);
    EXPECT_ERR(ctx, "sg_lstm_forward: layer or output is NULL");
    ck_assert_ptr_null(sg_ctx_grad_of(ctx, NULL));
    ck_assert_int_eq(sg_op_register(ctx, NULL), -1);
    EXPECT_ERR(ctx, "sg_op_register: a custom op needs a name, a forward and a backward");
    ck_assert_ptr_null(sg_custom(ctx, SG_OP_COUNT + SG_CUSTOM_OP_MAX, 1, NULL));
    EXPECT_ERR_HAS(ctx, "sg_custom: ");
    /* shapes formatted from NULL, and a NULL buffer */
    char b[32];
    ck_assert_str_eq(sg_shape_str(2, NULL, b, sizeof b), "(NULL shape)");
    ck_assert_str_eq(sg_shape_str(0, NULL, b, sizeof b), "()");
    ck_assert_ptr_null(sg_shape_str(2, I64(1, 2), NULL, 8));
    /* an error with no message still records one */
    const char *volatile nofmt = NULL;
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wformat-security"
#pragma GCC diagnostic ignored "-Wformat-nonliteral"
    sg_error(ctx, nofmt);
#pragma GCC diagnostic pop
    EXPECT_ERR(ctx, "sg_error: NULL message");
    EXPECT_NO_ERR(ctx);
    sg_ctx_free(ctx);
}
END_TEST

/* ========================================================================================= *
 * Out of memory
 * ========================================================================================= */

START_TEST(test_oom_ctx_new) {
    /* Call 0 is the context, call 1 its first arena block. */
    for (long k = 0; k < 2; k++) {
        install_alloc(k, 0);
        ck_assert_ptr_null(sg_ctx_new(0));
        ck_assert_int_eq(g_live, 0);
        restore_alloc();
    }
    install_alloc(2, 0);
    sg_ctx *ctx = sg_ctx_new(0);
    ck_assert_ptr_nonnull(ctx);
    sg_ctx_free(ctx);
    ck_assert_int_eq(g_live, 0);
    restore_alloc();
    /* An arena too large for the allocator. */
    install_alloc(-1, (size_t)1 << 30);
    ck_assert_ptr_null(sg_ctx_new((size_t)1 << 31));
    ck_assert_int_eq(g_live, 0);
    restore_alloc();
}
END_TEST

/* sg_ctx_new(huge): the block size (header + arena bytes) must not wrap around. */
START_TEST(test_oom_ctx_new_size_overflow) {
    install_alloc(-1, (size_t)1 << 30);
    sg_ctx *ctx = sg_ctx_new(SIZE_MAX - 8);
    ck_assert_msg(ctx == NULL,
                  "sg_ctx_new(SIZE_MAX - 8) returned a context: the arena block size wrapped "
                  "around to a tiny allocation");
    restore_alloc();
}
END_TEST

START_TEST(test_oom_param) {
    install_alloc(-1, 0);
    sg_ctx *ctx = sg_ctx_new(0);
    sg_tensor *keep = sg_param_new(ctx, SG_F64, SG_SHAPE(2), "keep");
    ck_assert_ptr_nonnull(keep);
    long live = g_live;
    /* Allocations of a parameter: node, data, grad node, grad data. Fail each one. */
    for (long k = 0; k < 4; k++) {
        g_fail_after = g_calls + k;
        ck_assert_ptr_null(sg_param_new(ctx, SG_F64, SG_SHAPE(2, 3), "w"));
        EXPECT_ERR(ctx, "sg_param_new: out of memory for 6 elements");
        ck_assert_int_eq(g_live, live); /* nothing half-made is left behind */
    }
    g_fail_after = g_calls;
    ck_assert_ptr_null(sg_persistent_new(ctx, SG_F32, SG_SHAPE(7)));
    EXPECT_ERR(ctx, "sg_persistent_new: out of memory for 7 elements");
    g_fail_after = -1;
    sg_tensor *w = sg_param_new(ctx, SG_F64, SG_SHAPE(2, 3), "w");
    ck_assert_ptr_nonnull(w);
    ck_assert_int_eq(g_live, live + 4);
    /* The list of persistent tensors is intact: both survive and are freed at the end. */
    sg_ctx_reset(ctx);
    ck_assert(sg_check(ctx, keep, "test") && sg_check(ctx, w, "test"));
    sg_ctx_free(ctx);
    ck_assert_int_eq(g_live, 0);
    restore_alloc();
}
END_TEST

START_TEST(test_oom_arena) {
    install_alloc(-1, 0);
    sg_ctx *ctx = sg_ctx_new(4096);
    sg_tensor *a = sg_ones(ctx, SG_F32, SG_SHAPE(4));
    ck_assert_ptr_nonnull(a);
    /* The data does not fit the first block and a new block cannot be had. */
    g_fail_after = g_calls;
    ck_assert_ptr_null(sg_zeros(ctx, SG_F32, SG_SHAPE(10000)));
    EXPECT_ERR(ctx, "sg_arena_alloc: out of memory allocating 40000 bytes");
    ck_assert_ptr_null(sg_arena_alloc(ctx, 100000));
    EXPECT_ERR(ctx, "sg_arena_alloc: out of memory allocating 100000 bytes");
    /* Earlier tensors are fine; with memory back the context carries on. */
    ck_assert_double_eq(sg_get_flat(a, 3), 1);
    g_fail_after = -1;
    ck_assert_ptr_nonnull(sg_zeros(ctx, SG_F32, SG_SHAPE(10000)));
    sg_ctx_reset(ctx);
    ck_assert_ptr_nonnull(sg_zeros(ctx, SG_F32, SG_SHAPE(10000)));
    EXPECT_NO_ERR(ctx);
    sg_ctx_free(ctx);
    ck_assert_int_eq(g_live, 0);
    restore_alloc();
}
END_TEST

/* A request no block can hold fails at once, without growing the arena first. */
START_TEST(test_oom_arena_huge_request) {
    install_alloc(-1, (size_t)64 << 20);
    sg_ctx *ctx = sg_ctx_new(4096);
    size_t cap = sg_ctx_arena_capacity(ctx);
    ck_assert_ptr_null(sg_arena_alloc(ctx, SIZE_MAX));
    EXPECT_ERR_HAS(ctx, "sg_arena_alloc: ");
    ck_assert_msg(sg_ctx_arena_capacity(ctx) == cap,
                  "arena grew from %zu to %zu bytes serving an impossible request", cap,
                  sg_ctx_arena_capacity(ctx));
    sg_ctx_free(ctx);
    restore_alloc();
}
END_TEST

/* Coalescing at reset needs one big block; when that fails the context must stay usable:
 * the next allocation reports out-of-memory instead of crashing. */
START_TEST(test_oom_reset_coalesce) {
    install_alloc(-1, 0);
    sg_ctx *ctx = sg_ctx_new(1024);
    for (int i = 0; i < 10; i++)
        ck_assert_ptr_nonnull(sg_ones(ctx, SG_F64, SG_SHAPE(64)));
    ck_assert_ptr_nonnull(ctx->first->next);
    /* Only the big block fails: the context goes on (with a small block, or by keeping
     * the old ones). */
    g_max_size = 4096;
    sg_ctx_reset(ctx);
    sg_tensor *t = sg_full(ctx, SG_F64, SG_SHAPE(2), 6);
    ck_assert_ptr_nonnull(t);
    ck_assert_double_eq(sg_get_flat(t, 1), 6);
    EXPECT_NO_ERR(ctx);
    /* Grow again, then every allocation fails at the reset. */
    g_max_size = 0;
    for (int i = 0; i < 10; i++)
        ck_assert_ptr_nonnull(sg_ones(ctx, SG_F64, SG_SHAPE(64)));
    ck_assert_ptr_nonnull(ctx->first->next);
    g_fail_after = g_calls;
    sg_ctx_reset(ctx);
    /* Either the old blocks were kept (then this works) or it reports out-of-memory. */
    sg_tensor *u = sg_full(ctx, SG_F64, SG_SHAPE(2), 5);
    if (u)
        ck_assert_double_eq(sg_get_flat(u, 1), 5);
    else
        EXPECT_ERR_HAS(ctx, "out of memory");
    g_fail_after = -1;
    sg_ctx_reset(ctx);
    ck_assert_ptr_nonnull(sg_zeros(ctx, SG_F64, SG_SHAPE(2)));
    sg_ctx_free(ctx);
    ck_assert_int_eq(g_live, 0);
    restore_alloc();
}
END_TEST

START_TEST(test_allocator_shim) {
    install_alloc(-1, 0);
    void *p = sg_malloc(10);
    ck_assert_ptr_nonnull(p);
    ck_assert_int_eq(g_live, 1);
    p = sg_realloc(p, 100);
    ck_assert_ptr_nonnull(p);
    ck_assert_int_eq(g_live, 1);
    sg_free(p);
    sg_free(NULL);
    ck_assert_int_eq(g_live, 0);
    unsigned char *z = sg_calloc(5, 3);
    for (int i = 0; i < 15; i++)
        ck_assert_int_eq(z[i], 0);
    sg_free(z);
    ck_assert_ptr_null(sg_calloc(SIZE_MAX / 2, 4)); /* count * size overflows */
    g_fail_after = g_calls;
    ck_assert_ptr_null(sg_malloc(1));
    ck_assert_int_eq(g_live, 0);
    restore_alloc();
    /* Back on libc. */
    p = sg_malloc(0);
    ck_assert_ptr_nonnull(p);
    sg_free(p);
}
END_TEST

/* ========================================================================================= *
 * Error paths, with their exact messages
 * ========================================================================================= */

START_TEST(test_err_reshape) {
    sg_ctx *ctx = sg_ctx_new(0);
    sg_tensor *x = iota(ctx, SG_F32, SG_SHAPE(2, 3));
    ck_assert_ptr_null(sg_reshape(ctx, x, SG_SHAPE(4, 2)));
    EXPECT_ERR(ctx, "sg_reshape: cannot view (2, 3) as (4, 2): 6 elements vs 8");
    ck_assert_ptr_null(sg_reshape(ctx, x, SG_SHAPE(5)));
    EXPECT_ERR(ctx, "sg_reshape: cannot view (2, 3) as (5,): 6 elements vs 5");
    ck_assert_ptr_null(sg_reshape(ctx, x, 0, NULL));
    EXPECT_ERR(ctx, "sg_reshape: cannot view (2, 3) as (): 6 elements vs 1");
    ck_assert_ptr_null(sg_reshape(ctx, x, SG_SHAPE(4, -1)));
    EXPECT_ERR(ctx, "sg_reshape: cannot view (2, 3) as (4, -1)");
    ck_assert_ptr_null(sg_reshape(ctx, x, SG_SHAPE(0, -1)));
    EXPECT_ERR(ctx, "sg_reshape: cannot view (2, 3) as (0, -1)");
    ck_assert_ptr_null(sg_reshape(ctx, x, SG_SHAPE(-1, -1)));
    EXPECT_ERR(ctx, "sg_reshape: bad size -1 in (-1, -1)");
    ck_assert_ptr_null(sg_reshape(ctx, x, SG_SHAPE(2, -3)));
    EXPECT_ERR(ctx, "sg_reshape: bad size -3 in (2, -3)");
    ck_assert_ptr_null(sg_reshape(ctx, x, SG_SHAPE(1, 1, 1, 1, 2, 3, 1)));
    EXPECT_ERR(ctx, "sg_reshape: 7 dimensions (0 to 6 supported)");
    ck_assert_ptr_null(sg_reshape(ctx, x, -1, NULL));
    EXPECT_ERR(ctx, "sg_reshape: -1 dimensions (0 to 6 supported)");
    /* Needs a copy: a transposed matrix cannot be flattened in place. */
    sg_tensor *t = sg_transpose(ctx, x, 0, 1);
    ck_assert_ptr_null(sg_reshape(ctx, t, SG_SHAPE(6)));
    EXPECT_ERR(ctx, "sg_reshape: cannot view (3, 2) with these strides as (6,) without a copy "
                    "(call sg_contiguous first)");
    ck_assert_ptr_null(sg_reshape(ctx, sg_slice(ctx, x, 1, 0, 2), SG_SHAPE(4)));
    EXPECT_ERR(ctx, "sg_reshape: cannot view (2, 2) with these strides as (4,) without a copy "
                    "(call sg_contiguous first)");
    /* ... which sg_contiguous fixes. */
    sg_tensor *ok = sg_reshape(ctx, sg_contiguous(ctx, t), SG_SHAPE(6));
    ck_assert_ptr_nonnull(ok);
    ck_assert_double_eq(sg_get_flat(ok, 1), 3);
    EXPECT_NO_ERR(ctx);
    sg_ctx_free(ctx);
}
END_TEST

/* A target shape whose element count overflows int64 must be rejected, whatever the
 * wrapped product is. 2617318 * 7047956753329 = 2^64 + 6 wraps to exactly 6, the element
 * count of x. */
START_TEST(test_err_reshape_overflow) {
    sg_ctx *ctx = sg_ctx_new(0);
    sg_tensor *x = iota(ctx, SG_F32, SG_SHAPE(2, 3));
    sg_tensor *r = sg_reshape(ctx, x, SG_SHAPE(2617318, 7047956753329LL));
    ck_assert_msg(r == NULL, "sg_reshape accepted (2617318, 7047956753329) for 6 elements");
    ck_assert_ptr_nonnull(sg_ctx_error(ctx));
    ck_assert_ptr_nonnull(strstr(sg_ctx_error(ctx), "(2617318, 7047956753329)"));
    EXPECT_ERR_HAS(ctx, "sg_reshape: ");
    sg_ctx_free(ctx);
}
END_TEST

START_TEST(test_err_permute_transpose) {
    sg_ctx *ctx = sg_ctx_new(0);
    sg_tensor *x = iota(ctx, SG_F64, SG_SHAPE(2, 3, 4));
    ck_assert_ptr_null(sg_permute(ctx, x, (const int[]){0, 0, 1}));
    EXPECT_ERR(ctx, "sg_permute: not a permutation of 3 axes (entry 1 is 0)");
    ck_assert_ptr_null(sg_permute(ctx, x, (const int[]){0, 1, 3}));
    EXPECT_ERR(ctx, "sg_permute: not a permutation of 3 axes (entry 2 is 3)");
    ck_assert_ptr_null(sg_permute(ctx, x, (const int[]){-1, 0, 1}));
    EXPECT_ERR(ctx, "sg_permute: not a permutation of 3 axes (entry 0 is -1)");
    ck_assert_ptr_null(sg_permute(ctx, x, NULL));
    EXPECT_ERR(ctx, "sg_permute: perm is NULL");
    ck_assert_ptr_null(sg_transpose(ctx, x, 0, 3));
    EXPECT_ERR(ctx, "sg_transpose: axis 3 out of range for 3 dimensions");
    ck_assert_ptr_null(sg_transpose(ctx, x, -4, 1));
    EXPECT_ERR(ctx, "sg_transpose: axis -4 out of range for 3 dimensions");
    sg_tensor *s = sg_scalar(ctx, SG_F64, 1);
    ck_assert_ptr_null(sg_transpose(ctx, s, 0, 0));
    EXPECT_ERR(ctx, "sg_transpose: axis 0 out of range for 0 dimensions");
    sg_ctx_free(ctx);
}
END_TEST

START_TEST(test_err_slice_select) {
    sg_ctx *ctx = sg_ctx_new(0);
    sg_tensor *x = iota(ctx, SG_F64, SG_SHAPE(3, 4));
    ck_assert_ptr_null(sg_slice(ctx, x, 1, 2, 3));
    EXPECT_ERR(ctx, "sg_slice: [2, 5) out of range for axis 1 of size 4");
    ck_assert_ptr_null(sg_slice(ctx, x, -1, 5, 0));
    EXPECT_ERR(ctx, "sg_slice: [5, 5) out of range for axis 1 of size 4");
    ck_assert_ptr_null(sg_slice(ctx, x, 0, -1, 2));
    EXPECT_ERR(ctx, "sg_slice: [-1, 1) out of range for axis 0 of size 3");
    ck_assert_ptr_null(sg_slice(ctx, x, 0, 1, -1));
    EXPECT_ERR(ctx, "sg_slice: [1, 0) out of range for axis 0 of size 3");
    ck_assert_ptr_null(sg_slice(ctx, x, 2, 0, 1));
    EXPECT_ERR(ctx, "sg_slice: axis 2 out of range for 2 dimensions");
    ck_assert_ptr_null(sg_slice(ctx, x, -3, 0, 1));
    EXPECT_ERR(ctx, "sg_slice: axis -3 out of range for 2 dimensions");
    ck_assert_ptr_null(sg_select(ctx, x, 1, 4));
    EXPECT_ERR(ctx, "sg_select: index 4 out of range for axis 1 of size 4");
    ck_assert_ptr_null(sg_select(ctx, x, -2, -1));
    EXPECT_ERR(ctx, "sg_select: index -1 out of range for axis 0 of size 3");
    ck_assert_ptr_null(sg_select(ctx, x, 2, 0));
    EXPECT_ERR(ctx, "sg_select: axis 2 out of range for 2 dimensions");
    sg_tensor *e = sg_zeros(ctx, SG_F64, SG_SHAPE(0, 2));
    ck_assert_ptr_null(sg_select(ctx, e, 0, 0));
    EXPECT_ERR(ctx, "sg_select: index 0 out of range for axis 0 of size 0");
    sg_ctx_free(ctx);
}
END_TEST

START_TEST(test_err_split) {
    sg_ctx *ctx = sg_ctx_new(0);
    sg_tensor *x = iota(ctx, SG_F64, SG_SHAPE(2, 5));
    sg_tensor *out[70];
    ck_assert_int_eq(sg_split(ctx, x, 1, 2, out), -1);
    EXPECT_ERR(ctx, "sg_split: axis 1 of size 5 does not split into 2 equal parts");
    ck_assert_int_eq(sg_split(ctx, x, 0, 0, out), -1);
    EXPECT_ERR(ctx, "sg_split: axis 0 of size 2 does not split into 0 equal parts");
    ck_assert_int_eq(sg_split(ctx, x, 0, -2, out), -1);
    EXPECT_ERR(ctx, "sg_split: axis 0 of size 2 does not split into -2 equal parts");
    ck_assert_int_eq(sg_split(ctx, x, 2, 1, out), -1);
    EXPECT_ERR(ctx, "sg_split: axis 2 out of range for 2 dimensions");
    sg_tensor *y = sg_zeros(ctx, SG_F64, SG_SHAPE(130));
    ck_assert_int_eq(sg_split(ctx, y, 0, 65, out), -1);
    EXPECT_ERR(ctx, "sg_split: at most 64 equal parts (asked for 65)");
    ck_assert_int_eq(sg_split(ctx, y, 0, 2, NULL), -1);
    EXPECT_ERR(ctx, "sg_split: need n > 0 parts, sizes and out (got n = 2)");
    ck_assert_int_eq(sg_split_sizes(ctx, x, 1, 2, I64(2, 2), out), -1);
    EXPECT_ERR(ctx, "sg_split: sizes sum to 4 but axis 1 has size 5");
    ck_assert_int_eq(sg_split_sizes(ctx, x, 1, 2, I64(6, -1), out), -1);
    EXPECT_ERR(ctx, "sg_split: negative size -1 for part 1");
    ck_assert_int_eq(sg_split_sizes(ctx, x, 1, 0, I64(5), out), -1);
    EXPECT_ERR(ctx, "sg_split: need n > 0 parts, sizes and out (got n = 0)");
    ck_assert_int_eq(sg_split_sizes(ctx, x, 1, 1, NULL, out), -1);
    EXPECT_ERR(ctx, "sg_split: need n > 0 parts, sizes and out (got n = 1)");
    ck_assert_int_eq(sg_split_sizes(ctx, x, -3, 1, I64(5), out), -1);
    EXPECT_ERR(ctx, "sg_split: axis -3 out of range for 2 dimensions");
    sg_ctx_free(ctx);
}
END_TEST

START_TEST(test_err_expand) {
    sg_ctx *ctx = sg_ctx_new(0);
    sg_tensor *x = iota(ctx, SG_F64, SG_SHAPE(2, 3));
    ck_assert_ptr_null(sg_expand(ctx, x, SG_SHAPE(2, 4)));
    EXPECT_ERR(ctx, "sg_expand: cannot broadcast (2, 3) to (2, 4)");
    ck_assert_ptr_null(sg_expand(ctx, x, SG_SHAPE(3, 3, 3)));
    EXPECT_ERR(ctx, "sg_expand: cannot broadcast (2, 3) to (3, 3, 3)");
    ck_assert_ptr_null(sg_expand(ctx, x, SG_SHAPE(6)));
    EXPECT_ERR(ctx, "sg_expand: cannot broadcast (2, 3) to 1 dimensions");
    ck_assert_ptr_null(sg_expand(ctx, x, SG_SHAPE(1, 1, 1, 1, 1, 2, 3)));
    EXPECT_ERR(ctx, "sg_expand: cannot broadcast (2, 3) to 7 dimensions");
    ck_assert_ptr_null(sg_expand(ctx, x, 2, NULL));
    EXPECT_ERR(ctx, "sg_expand: shape is NULL for 2 dimensions");
    sg_ctx_free(ctx);
}
END_TEST

/* Sizes near INT64_MAX: no signed overflow (UB, reported by UBSan) while checking ranges
 * or formatting the message, and a sum of split sizes that wraps around is rejected by
 * sg_split_sizes itself. */
START_TEST(test_err_index_overflow) {
    sg_ctx *ctx = sg_ctx_new(0);
    sg_tensor *x = iota(ctx, SG_F64, SG_SHAPE(2, 5));
    ck_assert_ptr_null(sg_slice(ctx, x, 0, 1, INT64_MAX));
    EXPECT_ERR_HAS(ctx, "sg_slice: ");
    /* INT64_MAX + INT64_MAX + 7 = 2^64 + 5 wraps to 5, the size of axis 1. */
    sg_tensor *out[3];
    ck_assert_int_eq(sg_split_sizes(ctx, x, 1, 3, I64(INT64_MAX, INT64_MAX, 7), out), -1);
    EXPECT_ERR_HAS(ctx, "sg_split: ");
    sg_ctx_free(ctx);
}
END_TEST

/* A negative target size is not a broadcast of a size-1 axis. */
START_TEST(test_err_expand_negative) {
    sg_ctx *ctx = sg_ctx_new(0);
    sg_tensor *v = sg_arange(ctx, SG_F64, 0, 3, 1);
    sg_tensor *e = sg_expand(ctx, v, SG_SHAPE(-2, 3));
    ck_assert_msg(e == NULL, "sg_expand made a view of shape (%lld, 3)",
                  e ? (long long)e->shape[0] : 0LL);
    EXPECT_ERR_HAS(ctx, "sg_expand: ");
    sg_tensor *c = sg_reshape(ctx, v, SG_SHAPE(3, 1));
    ck_assert_ptr_null(sg_expand(ctx, c, SG_SHAPE(3, -1)));
    EXPECT_ERR_HAS(ctx, "sg_expand: ");
    sg_ctx_free(ctx);
}
END_TEST

/* ---- size arithmetic (issue 20, item 7) ---------------------------------------------------
 * Every tensor's nonzero sizes multiply to at most 2^60 - 1 (SG_NUMEL_MAX): then its byte
 * size, strides and element count fit in int64 whatever the order of the products. These run
 * under UBSan in the sanitizer build, where any signed overflow on the way is a failure. */

#define P40 ((int64_t)1 << 40)
#define OVF " overflows: the product of its nonzero sizes exceeds 2^60 - 1"

/* An empty shape whose nonzero sizes overflow: its strides would not fit (this is the shape
 * of the 104-byte safetensors file of the issue, which reaches sg_persistent_new). */
START_TEST(test_overflow_creation) {
    sg_ctx *ctx = sg_ctx_new(0);
    const int64_t *e = I64(0, P40, P40), *e2 = I64(P40, P40, 0);
    ck_assert_ptr_null(sg_zeros(ctx, SG_F32, 3, e));
    EXPECT_ERR(ctx, "sg_zeros: shape (0, 1099511627776, 1099511627776)" OVF);
    ck_assert_ptr_null(sg_zeros(ctx, SG_F32, 3, e2));
    EXPECT_ERR(ctx, "sg_zeros: shape (1099511627776, 1099511627776, 0)" OVF);
    ck_assert_ptr_null(sg_tensor_new(ctx, SG_F64, 3, e));
    EXPECT_ERR(ctx, "sg_tensor_new: shape (0, 1099511627776, 1099511627776)" OVF);
    ck_assert_ptr_null(sg_full(ctx, SG_F64, 3, e, 1));
    EXPECT_ERR(ctx, "sg_full: shape (0, 1099511627776, 1099511627776)" OVF);
    ck_assert_ptr_null(sg_ones(ctx, SG_F64, 3, e2));
    EXPECT_ERR(ctx, "sg_full: shape (1099511627776, 1099511627776, 0)" OVF);
    ck_assert_ptr_null(sg_from_data(ctx, SG_F64, 3, e, (double[1]){0}));
    EXPECT_ERR(ctx, "sg_from_data: shape (0, 1099511627776, 1099511627776)" OVF);
    ck_assert_ptr_null(sg_wrap(ctx, SG_F64, 3, e, (double[1]){0}));
    EXPECT_ERR(ctx, "sg_wrap: shape (0, 1099511627776, 1099511627776)" OVF);
    ck_assert_ptr_null(sg_persistent_new(ctx, SG_F32, 3, e));
    EXPECT_ERR(ctx, "sg_persistent_new: shape (0, 1099511627776, 1099511627776)" OVF);
    ck_assert_ptr_null(sg_param_new(ctx, SG_F32, 3, e2, "p"));
    EXPECT_ERR(ctx, "sg_param_new: shape (1099511627776, 1099511627776, 0)" OVF);
    ck_assert_ptr_null(sg_rand_uniform(ctx, SG_F32, 3, e, 0, 1));
    EXPECT_ERR(ctx, "sg_rand_uniform: shape (0, 1099511627776, 1099511627776)" OVF);
    ck_assert_ptr_null(sg_rand_normal(ctx, SG_F32, 3, e, 0, 1));
    EXPECT_ERR(ctx, "sg_rand_normal: shape (0, 1099511627776, 1099511627776)" OVF);
    sg_store *st = sg_store_new();
    ck_assert_ptr_null(sg_store_param(ctx, st, "w", SG_F32, 3, e));
    EXPECT_ERR(ctx, "sg_store_param: \"w\": shape (0, 1099511627776, 1099511627776)" OVF);
    ck_assert_int_eq(sg_store_size(st), 0);
    sg_store_free(st);
    /* The boundary: 2^60 - 1 elements is a shape (a view of memory nobody reads here), 2^60
     * is not. */
    static float cell[1];
    sg_tensor *w = sg_wrap(ctx, SG_F32, SG_SHAPE((int64_t)1 << 30, ((int64_t)1 << 30) - 1), cell);
    ck_assert_ptr_nonnull(w);
    ck_assert_int_eq(sg_numel(w), ((int64_t)1 << 60) - ((int64_t)1 << 30));
    ck_assert_ptr_nonnull(sg_wrap(ctx, SG_F32, SG_SHAPE(((int64_t)1 << 60) - 1), cell));
    ck_assert_ptr_null(sg_wrap(ctx, SG_F32, SG_SHAPE((int64_t)1 << 30, (int64_t)1 << 30), cell));
    EXPECT_ERR(ctx, "sg_wrap: shape (1073741824, 1073741824)" OVF);
    ck_assert_ptr_null(sg_wrap(ctx, SG_F32, SG_SHAPE(INT64_MAX, 2), cell));
    EXPECT_ERR(ctx, "sg_wrap: shape (9223372036854775807, 2)" OVF);
    /* Empty shapes whose nonzero sizes fit are fine, strides as for size 1. */
    sg_tensor *z = sg_zeros(ctx, SG_F32, SG_SHAPE(0, P40, 3));
    ck_assert_ptr_nonnull(z);
    ck_assert_int_eq(sg_numel(z), 0);
    expect_strides(z, I64(3 * P40, 3, 1));
    /* The strides helper saturates rather than wrapping, should a shape that no check saw
     * reach it. */
    int64_t st3[3];
    sg__contiguous_strides(3, I64(0, P40, P40), st3);
    ck_assert_int_eq(st3[0], INT64_MAX);
    ck_assert_int_eq(st3[1], P40);
    ck_assert_int_eq(st3[2], 1);
    sg_ctx_free(ctx);
}
END_TEST

/* Views and ops that make a new shape from existing ones. */
START_TEST(test_overflow_views_ops) {
    sg_ctx *ctx = sg_ctx_new(0);
    sg_tensor *one = sg_ones(ctx, SG_F32, SG_SHAPE(1, 1));
    /* expand costs no memory, but its element count must fit: before, (2^40, 2^40) was
     * accepted and sg_sum of it returned 0 with no error */
    sg_tensor *big = sg_expand(ctx, one, SG_SHAPE(P40, P40));
    ck_assert_ptr_null(big);
    EXPECT_ERR(ctx, "sg_expand: shape (1099511627776, 1099511627776)" OVF);
    ck_assert_ptr_null(sg_sum(ctx, big));
    EXPECT_NO_ERR(ctx);
    ck_assert_ptr_null(sg_expand(ctx, one, SG_SHAPE(0, P40, P40)));
    EXPECT_ERR(ctx, "sg_expand: shape (0, 1099511627776, 1099511627776)" OVF);
    sg_tensor *tall = sg_expand(ctx, one, SG_SHAPE((int64_t)1 << 31, 1));
    sg_tensor *wide = sg_expand(ctx, one, SG_SHAPE(1, (int64_t)1 << 31));
    ck_assert_ptr_nonnull(tall);
    ck_assert_ptr_nonnull(wide);
    /* reshape of an empty tensor: the same 0 elements, strides that would not fit */
    sg_tensor *empty = sg_zeros(ctx, SG_F32, SG_SHAPE(0));
    ck_assert_ptr_null(sg_reshape(ctx, empty, SG_SHAPE(0, P40, P40)));
    EXPECT_ERR(ctx, "sg_reshape: shape (0, 1099511627776, 1099511627776)" OVF);
    ck_assert_ptr_nonnull(sg_reshape(ctx, empty, SG_SHAPE(P40, 0, 7)));
    /* broadcasting two shapes that fit into one that does not */
    ck_assert_ptr_null(sg_add(ctx, tall, wide));
    EXPECT_ERR(ctx, "sg_add: shape (2147483648, 2147483648)" OVF);
    sg_tensor *e1 = sg_zeros(ctx, SG_F32, SG_SHAPE(0, 1, P40));
    sg_tensor *e2 = sg_expand(ctx, one, SG_SHAPE(P40, 1));
    ck_assert_ptr_null(sg_mul(ctx, e1, e2));
    EXPECT_ERR(ctx, "sg_mul: shape (0, 1099511627776, 1099511627776)" OVF);
    /* a product of shapes that fit: (2^31, 1) @ (1, 2^31), and with an empty inner size */
    ck_assert_ptr_null(sg_matmul(ctx, tall, wide));
    EXPECT_ERR(ctx, "sg_matmul: shape (2147483648, 2147483648)" OVF);
    sg_tensor *a0 = sg_zeros(ctx, SG_F32, SG_SHAPE(P40, 0));
    sg_tensor *b0 = sg_zeros(ctx, SG_F32, SG_SHAPE(0, P40));
    ck_assert_ptr_null(sg_matmul(ctx, a0, b0));
    EXPECT_ERR(ctx, "sg_matmul: shape (1099511627776, 1099511627776)" OVF);
    ck_assert_ptr_null(sg_addmm(ctx, one, a0, b0));
    EXPECT_ERR(ctx, "sg_addmm: shape (1099511627776, 1099511627776)" OVF);
    /* concat: a sum of sizes above 2^60, and one above INT64_MAX */
    sg_tensor *h = sg_expand(ctx, one, SG_SHAPE((int64_t)1 << 59, 1));
    ck_assert_ptr_null(sg_concat(ctx, 3, (sg_tensor *[]){h, h, h}, 0));
    EXPECT_ERR(ctx, "sg_concat: shape (1729382256910270464, 1)" OVF);
    sg_tensor *m = sg_expand(ctx, one, SG_SHAPE(((int64_t)1 << 60) - 1, 1));
    ck_assert_ptr_nonnull(m);
    sg_tensor *nine[9] = {m, m, m, m, m, m, m, m, m};
    ck_assert_ptr_null(sg_concat(ctx, 9, nine, 0));
    EXPECT_ERR(ctx, "sg_concat: the sizes along axis 0 overflow (input 8)");
    /* stack: n copies of a shape that fits */
    ck_assert_ptr_null(sg_stack(ctx, 4, (sg_tensor *[]){h, h, h, h}, 0));
    EXPECT_ERR(ctx, "sg_stack: shape (4, 576460752303423488, 1)" OVF);
    ck_assert_ptr_null(sg_stack(ctx, 4, (sg_tensor *[]){h, h, h, h}, -1));
    EXPECT_ERR(ctx, "sg_stack: shape (576460752303423488, 1, 4)" OVF);
    sg_ctx_free(ctx);
}
END_TEST

START_TEST(test_err_creation) {
    sg_ctx *ctx = sg_ctx_new(0);
    ck_assert_ptr_null(sg_zeros(ctx, SG_F32, SG_SHAPE(2, -1)));
    EXPECT_ERR(ctx, "sg_zeros: negative size -1 in dimension 1");
    ck_assert_ptr_null(sg_tensor_new(ctx, SG_F32, SG_SHAPE(-5)));
    EXPECT_ERR(ctx, "sg_tensor_new: negative size -5 in dimension 0");
    ck_assert_ptr_null(sg_full(ctx, SG_F64, SG_SHAPE(3, -2), 1));
    EXPECT_ERR(ctx, "sg_full: negative size -2 in dimension 1");
    ck_assert_ptr_null(sg_from_data(ctx, SG_F64, SG_SHAPE(-1), (double[]){1}));
    EXPECT_ERR(ctx, "sg_from_data: negative size -1 in dimension 0");
    ck_assert_ptr_null(sg_wrap(ctx, SG_F64, SG_SHAPE(2, -1), (double[]){1}));
    EXPECT_ERR(ctx, "sg_wrap: negative size -1 in dimension 1");
    ck_assert_ptr_null(sg_zeros(ctx, SG_F32, SG_SHAPE(1, 1, 1, 1, 1, 1, 1)));
    EXPECT_ERR(ctx, "sg_zeros: 7 dimensions (0 to 6 supported)");
    ck_assert_ptr_null(sg_zeros(ctx, SG_F32, -1, NULL));
    EXPECT_ERR(ctx, "sg_zeros: -1 dimensions (0 to 6 supported)");
    ck_assert_ptr_null(sg_zeros(ctx, SG_F32, 2, NULL));
    EXPECT_ERR(ctx, "sg_zeros: shape is NULL for 2 dimensions");
    ck_assert_ptr_null(sg_zeros(ctx, SG_F32, SG_SHAPE((int64_t)1 << 40, (int64_t)1 << 40)));
    EXPECT_ERR(ctx, "sg_zeros: shape (1099511627776, 1099511627776) overflows: the product of "
                    "its nonzero sizes exceeds 2^60 - 1");
    ck_assert_ptr_null(sg_zeros(ctx, (sg_dtype)7, SG_SHAPE(2)));
    EXPECT_ERR(ctx, "sg_zeros: unknown dtype 7");
    ck_assert_ptr_null(sg_from_data(ctx, SG_F64, SG_SHAPE(2), NULL));
    EXPECT_ERR(ctx, "sg_from_data: data is NULL");
    ck_assert_ptr_null(sg_wrap(ctx, SG_F64, SG_SHAPE(2), NULL));
    EXPECT_ERR(ctx, "sg_wrap: data is NULL");
    ck_assert_ptr_null(sg_arange(ctx, SG_F64, 0, 1, 0));
    EXPECT_ERR(ctx, "sg_arange: need finite start, stop and a nonzero step, got 0, 1, 0");
    ck_assert_ptr_null(sg_arange(ctx, SG_F64, 0, INFINITY, 1));
    EXPECT_ERR(ctx, "sg_arange: need finite start, stop and a nonzero step, got 0, inf, 1");
    ck_assert_ptr_null(sg_arange(ctx, SG_F64, NAN, 1, 1));
    EXPECT_ERR(ctx, "sg_arange: need finite start, stop and a nonzero step, got nan, 1, 1");
    ck_assert_ptr_null(sg_arange(ctx, SG_F64, 0, 1e13, 1));
    EXPECT_ERR(ctx, "sg_arange: 1e+13 elements is too many");
    /* Persistent tensors and parameters check shapes the same way. */
    ck_assert_ptr_null(sg_persistent_new(ctx, SG_F32, SG_SHAPE(-2)));
    EXPECT_ERR(ctx, "sg_persistent_new: negative size -2 in dimension 0");
    ck_assert_ptr_null(sg_param_new(ctx, SG_F32, SG_SHAPE(1, 1, 1, 1, 1, 1, 1), "p"));
    EXPECT_ERR(ctx, "sg_param_new: 7 dimensions (at most 6)");
    ck_assert_ptr_null(
        sg_param_new(ctx, SG_F32, SG_SHAPE((int64_t)1 << 40, (int64_t)1 << 40), "p"));
    EXPECT_ERR(ctx, "sg_param_new: shape (1099511627776, 1099511627776) overflows: the product "
                    "of its nonzero sizes exceeds 2^60 - 1");
    ck_assert_ptr_null(sg_persistent_new(ctx, (sg_dtype)7, SG_SHAPE(2)));
    EXPECT_ERR(ctx, "sg_persistent_new: unknown dtype 7");
    sg_ctx_free(ctx);
}
END_TEST

START_TEST(test_err_access) {
    sg_ctx *ctx = sg_ctx_new(0);
    sg_tensor *x = iota(ctx, SG_F64, SG_SHAPE(2, 3));
    ck_assert(isnan(sg_get(x, I64(2, 0))));
    EXPECT_ERR(ctx, "sg_get: index 2 out of range for dimension 0 of size 2");
    ck_assert(isnan(sg_get(x, I64(0, -1))));
    EXPECT_ERR(ctx, "sg_get: index -1 out of range for dimension 1 of size 3");
    ck_assert(isnan(sg_get_flat(x, 6)));
    EXPECT_ERR(ctx, "sg_get_flat: index 6 out of range for 6 elements");
    ck_assert(isnan(sg_get_flat(x, -1)));
    EXPECT_ERR(ctx, "sg_get_flat: index -1 out of range for 6 elements");
    ck_assert_int_eq(sg_set_flat(x, 6, 1), -1);
    EXPECT_ERR(ctx, "sg_set_flat: index 6 out of range for 6 elements");
    ck_assert_int_eq(sg_set_flat(x, -1, 1), -1);
    EXPECT_ERR(ctx, "sg_set_flat: index -1 out of range for 6 elements");
    ck_assert_int_eq(sg_copy_to(x, NULL), -1);
    EXPECT_ERR(ctx, "sg_copy_to: out is NULL");
    ck_assert_int_eq(sg_copy_to_f64(x, NULL), -1);
    EXPECT_ERR(ctx, "sg_copy_to_f64: out is NULL");
    sg_tensor *e = sg_zeros(ctx, SG_F64, SG_SHAPE(0));
    ck_assert(isnan(sg_get_flat(e, 0)));
    EXPECT_ERR(ctx, "sg_get_flat: index 0 out of range for 0 elements");
    /* Nothing was written by the failed calls. */
    for (int i = 0; i < 6; i++)
        ck_assert_double_eq(sg_get_flat(x, i), i);
    /* Leaves only: a view recorded on the tape cannot stop requiring grad. */
    sg_tensor *p = sg_set_requires_grad(sg_zeros(ctx, SG_F64, SG_SHAPE(2, 3)), true);
    sg_tensor *v = sg_reshape(ctx, p, SG_SHAPE(6));
    ck_assert_ptr_null(sg_set_requires_grad(v, false));
    EXPECT_ERR(ctx, "sg_set_requires_grad: only a leaf can stop requiring grad (this tensor "
                    "is the output of reshape)");
    sg_ctx_free(ctx);
}
END_TEST

START_TEST(test_err_copy_axpy) {
    sg_ctx *ctx = sg_ctx_new(0);
    sg_tensor *a = sg_zeros(ctx, SG_F32, SG_SHAPE(2, 3));
    sg_tensor *b = sg_zeros(ctx, SG_F32, SG_SHAPE(3, 2));
    sg_tensor *c = sg_ones(ctx, SG_F64, SG_SHAPE(2, 3));
    sg_tensor *d = sg_ones(ctx, SG_F32, SG_SHAPE(6));
    ck_assert_int_eq(sg_copy(a, b), -1);
    EXPECT_ERR(ctx, "sg_copy: shapes (2, 3) and (3, 2) differ");
    ck_assert_int_eq(sg_copy(a, c), -1);
    EXPECT_ERR(ctx, "sg_copy: dtype mismatch: float32 and float64");
    ck_assert_int_eq(sg_axpy(a, 1, d), -1);
    EXPECT_ERR(ctx, "sg_axpy: shapes (2, 3) and (6,) differ");
    ck_assert_int_eq(sg_axpy(c, 1, a), -1);
    EXPECT_ERR(ctx, "sg_axpy: dtype mismatch: float64 and float32");
    /* Broadcasting is not implied. */
    ck_assert_int_eq(sg_axpy(a, 1, sg_ones(ctx, SG_F32, SG_SHAPE(3))), -1);
    EXPECT_ERR(ctx, "sg_axpy: shapes (2, 3) and (3,) differ");
    /* Nothing changed. */
    for (int i = 0; i < 6; i++)
        ck_assert_double_eq(sg_get_flat(a, i), 0);
    /* Tensors of two contexts do not mix. */
    sg_ctx *other = sg_ctx_new(0);
    sg_tensor *o = sg_zeros(other, SG_F32, SG_SHAPE(2, 3));
    ck_assert_int_eq(sg_copy(a, o), -1);
    EXPECT_ERR(ctx, "sg_copy: tensor belongs to another context");
    ck_assert_ptr_null(sg_reshape(ctx, o, SG_SHAPE(6)));
    EXPECT_ERR(ctx, "sg_reshape: tensor belongs to another context");
    EXPECT_NO_ERR(other);
    sg_ctx_free(other);
    sg_ctx_free(ctx);
}
END_TEST

/* NULL in, NULL out, and the first error is the one kept. */
START_TEST(test_null_propagation) {
    sg_ctx *ctx = sg_ctx_new(0);
    sg_tensor *x = iota(ctx, SG_F64, SG_SHAPE(2, 3));
    sg_tensor *parts[2] = {x, x};
    /* NULL inputs give NULL and record nothing. */
    ck_assert_ptr_null(sg_reshape(ctx, NULL, SG_SHAPE(6)));
    ck_assert_ptr_null(sg_permute(ctx, NULL, (const int[]){1, 0}));
    ck_assert_ptr_null(sg_transpose(ctx, NULL, 0, 1));
    ck_assert_ptr_null(sg_slice(ctx, NULL, 0, 0, 1));
    ck_assert_ptr_null(sg_select(ctx, NULL, 0, 0));
    ck_assert_int_eq(sg_split(ctx, NULL, 0, 2, parts), -1);
    ck_assert_int_eq(sg_split_sizes(ctx, NULL, 0, 2, I64(1, 1), parts), -1);
    ck_assert_ptr_null(sg_expand(ctx, NULL, SG_SHAPE(2, 3)));
    ck_assert_ptr_null(sg_contiguous(ctx, NULL));
    ck_assert_int_eq(sg_fill(NULL, 1), -1);
    ck_assert_int_eq(sg_copy(NULL, x), -1);
    ck_assert_int_eq(sg_copy(x, NULL), -1);
    ck_assert_int_eq(sg_axpy(NULL, 1, x), -1);
    ck_assert_int_eq(sg_axpy(x, 1, NULL), -1);
    ck_assert(isnan(sg_get(NULL, I64(0))));
    ck_assert(isnan(sg_get_flat(NULL, 0)));
    ck_assert_int_eq(sg_set_flat(NULL, 0, 1), -1);
    ck_assert_int_eq(sg_copy_to(NULL, (double[1]){0}), -1);
    ck_assert_int_eq(sg_copy_to_f64(NULL, (double[1]){0}), -1);
    ck_assert_ptr_null(sg_set_requires_grad(NULL, true));
    ck_assert_ptr_null(sg_retain_grad(NULL));
    ck_assert(!sg_check(ctx, NULL, "test"));
    ck_assert_int_eq(sg_numel(NULL), 0);
    ck_assert_ptr_null(sg_data(NULL));
    ck_assert(!sg_is_contiguous(NULL));
    sg_tensor_set_name(NULL, "x");
    EXPECT_NO_ERR(ctx);
    /* Something that is not a live tensor (no magic). */
    sg_tensor fake;
    memset(&fake, 0, sizeof fake);
    ck_assert(!sg_check(ctx, &fake, "sg_fn"));
    EXPECT_ERR(ctx, "sg_fn: not a live tensor (used after sg_ctx_reset, or not a tensor)");
    ck_assert_ptr_null(sg_transpose(ctx, &fake, 0, 1));
    EXPECT_ERR(ctx, "sg_transpose: not a live tensor (used after sg_ctx_reset, or not a tensor)");
    /* The common input check of ops: mixed dtypes, and NULL silently. */
    sg_tensor *f32 = sg_zeros(ctx, SG_F32, SG_SHAPE(2)), *f64 = sg_zeros(ctx, SG_F64, SG_SHAPE(2));
    ck_assert(!sg__check_inputs(ctx, "sg_add", 2, (sg_tensor *const[]){f32, f64}));
    EXPECT_ERR(ctx, "sg_add: dtype mismatch: float32 and float64");
    ck_assert(!sg__check_inputs(ctx, "sg_add", 3, (sg_tensor *const[]){f64, f64, f32}));
    EXPECT_ERR(ctx, "sg_add: dtype mismatch: float64 and float32");
    ck_assert(!sg__check_inputs(ctx, "sg_add", 2, (sg_tensor *const[]){f64, NULL}));
    EXPECT_NO_ERR(ctx);
    ck_assert(sg__check_inputs(ctx, "sg_add", 2, (sg_tensor *const[]){f64, f64}));
    /* A chain: the bad reshape's error survives everything after it. */
    sg_tensor *bad = sg_reshape(ctx, x, SG_SHAPE(4, 2));
    sg_tensor *t = sg_transpose(ctx, sg_slice(ctx, bad, 0, 0, 1), 0, 1);
    ck_assert_ptr_null(t);
    ck_assert_ptr_null(sg_slice(ctx, x, 0, 5, 1)); /* a second, different error */
    ck_assert_ptr_null(sg_zeros(ctx, SG_F32, SG_SHAPE(-1)));
    EXPECT_ERR(ctx, "sg_reshape: cannot view (2, 3) as (4, 2): 6 elements vs 8");
    EXPECT_NO_ERR(ctx);
    /* After clearing, the next error is recorded. */
    ck_assert_ptr_null(sg_slice(ctx, x, 0, 5, 1));
    EXPECT_ERR(ctx, "sg_slice: [5, 6) out of range for axis 0 of size 2");
    /* sg_error itself: printf-style, returns NULL, keeps the first. */
    ck_assert_ptr_null(sg_error(ctx, "custom: %d and %s", 42, "more"));
    ck_assert_ptr_null(sg_error(ctx, "second"));
    EXPECT_ERR(ctx, "custom: 42 and more");
    /* A very long message is truncated, not overflowed. */
    char longs[3000];
    memset(longs, 'x', sizeof longs - 1);
    longs[sizeof longs - 1] = 0;
    sg_error(ctx, "%s", longs);
    ck_assert_uint_eq(strlen(sg_ctx_error(ctx)), sizeof ctx->err - 1);
    sg_ctx_clear_error(ctx);
    /* A NULL context is tolerated everywhere. */
    ck_assert_ptr_null(sg_zeros(NULL, SG_F32, SG_SHAPE(2)));
    ck_assert_ptr_null(sg_arange(NULL, SG_F32, 0, 1, 1));
    ck_assert_ptr_null(sg_from_data(NULL, SG_F32, SG_SHAPE(1), (float[]){1}));
    ck_assert_ptr_null(sg_wrap(NULL, SG_F32, SG_SHAPE(1), (float[]){1}));
    ck_assert_ptr_null(sg_persistent_new(NULL, SG_F32, SG_SHAPE(1)));
    ck_assert_ptr_null(sg_param_new(NULL, SG_F32, SG_SHAPE(1), "p"));
    ck_assert_ptr_null(sg_reshape(NULL, x, SG_SHAPE(6)));
    ck_assert_ptr_null(sg_arena_alloc(NULL, 8));
    ck_assert_ptr_null(sg_error(NULL, "nothing"));
    ck_assert_ptr_null(sg_ctx_error(NULL));
    ck_assert_ptr_null(sg_ctx_rng(NULL));
    ck_assert_uint_eq(sg_ctx_arena_used(NULL), 0);
    ck_assert_uint_eq(sg_ctx_arena_peak(NULL), 0);
    ck_assert_uint_eq(sg_ctx_arena_capacity(NULL), 0);
    ck_assert(!sg_ctx_grad_enabled(NULL));
    sg_ctx_clear_error(NULL);
    sg_ctx_arena_reset_peak(NULL);
    sg_ctx_reset(NULL);
    sg_ctx_free(NULL);
    EXPECT_NO_ERR(ctx);
    sg_ctx_free(ctx);
}
END_TEST

/* ---- the suite --------------------------------------------------------------------------- */

/* ---- integer tensors --------------------------------------------------------------------- */

START_TEST(test_int_create_views_print) {
    sg_ctx *ctx = sg_ctx_new(0);
    ck_assert_str_eq(sg_dtype_name(SG_I64), "int64");
    ck_assert_str_eq(sg_dtype_name(SG_I32), "int32");
    ck_assert_int_eq(sg_dtype_size(SG_I64), 8);
    ck_assert_int_eq(sg_dtype_size(SG_I32), 4);
    ck_assert(!sg_dtype_is_float(SG_I64) && sg_dtype_is_float(SG_F32));
    /* values beyond 2^53 survive exactly: from_data, views, copies, sg_get_flat_i64 */
    const int64_t big[6] = {1, -20, 300, INT64_MAX, INT64_MIN, ((int64_t)1 << 53) + 1};
    sg_tensor *a = sg_from_data(ctx, SG_I64, SG_SHAPE(2, 3), big);
    ck_assert_int_eq(sg_get_flat_i64(a, 3), INT64_MAX);
    ck_assert_int_eq(sg_get_flat_i64(a, 4), INT64_MIN);
    sg_tensor *at = sg_contiguous(ctx, sg_transpose(ctx, a, 0, 1)); /* (3, 2) */
    expect_shape(at, 2, I64(3, 2));
    const int64_t want_t[6] = {1, INT64_MAX, -20, INT64_MIN, 300, ((int64_t)1 << 53) + 1};
    int64_t got[6];
    ck_assert_int_eq(sg_copy_to(at, got), 0);
    for (int i = 0; i < 6; i++)
        ck_assert_int_eq(got[i], want_t[i]);
    sg_tensor *row = sg_select(ctx, a, 0, 1);
    ck_assert_int_eq(sg_get_flat_i64(row, 2), ((int64_t)1 << 53) + 1);
    sg_tensor *cat = sg_concat(ctx, 2, (sg_tensor *[]){a, a}, 0);
    expect_shape(cat, 2, I64(4, 3));
    ck_assert_int_eq(sg_get_flat_i64(cat, 9), INT64_MAX);
    sg_tensor *r = sg_reshape(ctx, sg_slice(ctx, a, 1, 0, 2), SG_SHAPE(4)); /* not a view */
    ck_assert_ptr_null(r);
    sg_ctx_clear_error(ctx);
    /* creation and printing as NumPy prints integers: right-aligned to the widest */
    sg_tensor *x = sg_from_data(ctx, SG_I64, SG_SHAPE(3), ((const int64_t[]){1, -20, 300}));
    char *s = sg_print_str(x);
    ck_assert_str_eq(s, "shape=(3,) dtype=int64\n[  1 -20 300]\n");
    sg_free(s);
    sg_tensor *ar = sg_arange(ctx, SG_I32, 5, -1, -2); /* 5 3 1 */
    s = sg_print_str(sg_reshape(ctx, ar, SG_SHAPE(1, 3)));
    ck_assert_str_eq(s, "shape=(1, 3) dtype=int32\n[[5 3 1]]\n");
    sg_free(s);
    sg_tensor *f = sg_full(ctx, SG_I32, SG_SHAPE(2), -7.9); /* truncated toward zero, as C */
    ck_assert_int_eq(sg_get_flat_i64(f, 1), -7);
    ck_assert_int_eq(sg_set_flat(f, 0, 2147483647.0), 0);
    ck_assert_int_eq(sg_get_flat_i64(f, 0), INT32_MAX);
    ck_assert_double_eq(sg_get_flat(f, 0), 2147483647.0);
    /* comparisons work across integer tensors */
    sg_tensor *y = sg_from_data(ctx, SG_I64, SG_SHAPE(3), ((const int64_t[]){1, -20, 301}));
    sg_compare_result cr;
    ck_assert_int_eq(sg_compare(ctx, x, y, 0, 0, &cr), 1);
    ck_assert_int_eq(cr.worst_flat, 2);
    EXPECT_NO_ERR(ctx);
    sg_ctx_free(ctx);
}
END_TEST

START_TEST(test_int_cast) {
    sg_ctx *ctx = sg_ctx_new(0);
    sg_tensor *x = sg_from_data(ctx, SG_F64, SG_SHAPE(4), ((const double[]){-2.7, 2.7, 0.5, 1e15}));
    sg_tensor *i = sg_cast(ctx, x, SG_I64); /* toward zero, like torch's .to(torch.int64) */
    ck_assert_int_eq(i->dtype, SG_I64);
    const int64_t want[4] = {-2, 2, 0, 1000000000000000};
    for (int k = 0; k < 4; k++)
        ck_assert_int_eq(sg_get_flat_i64(i, k), want[k]);
    ck_assert(!(i->flags & SG_FLAG_REQUIRES_GRAD));
    sg_tensor *back = sg_cast(ctx, i, SG_F32);
    ck_assert_float_eq(sg_get_flat(back, 0), -2.0f);
    /* int64 -> int32 checks the range; int32 -> int64 is exact */
    sg_tensor *big = sg_from_data(ctx, SG_I64, SG_SHAPE(2), ((const int64_t[]){5, 3000000000}));
    ck_assert_ptr_null(sg_cast(ctx, big, SG_I32));
    EXPECT_ERR(ctx, "sg_cast: element 1 is 3e+09, not an int32");
    sg_tensor *small = sg_cast(ctx, sg_slice(ctx, big, 0, 0, 1), SG_I32);
    ck_assert_int_eq(sg_get_flat_i64(sg_cast(ctx, small, SG_I64), 0), 5);
    /* NaN, infinities and out-of-range floats are refused, naming the element */
    sg_tensor *bad = sg_from_data(ctx, SG_F32, SG_SHAPE(3), ((const float[]){1, NAN, 2}));
    ck_assert_ptr_null(sg_cast(ctx, bad, SG_I64));
    EXPECT_ERR(ctx, "sg_cast: element 1 is nan, not an int64");
    sg_tensor *huge = sg_from_data(ctx, SG_F64, SG_SHAPE(1), ((const double[]){1e19}));
    ck_assert_ptr_null(sg_cast(ctx, huge, SG_I64));
    EXPECT_ERR(ctx, "sg_cast: element 0 is 1e+19, not an int64");
    /* a refused sg_copy_values leaves dst as it was */
    sg_tensor *dst = sg_full(ctx, SG_I64, SG_SHAPE(3), 9);
    ck_assert_int_eq(sg_copy_values(dst, bad), -1);
    EXPECT_ERR(ctx, "sg_copy_values: element 1 is nan, not an int64");
    ck_assert_int_eq(sg_get_flat_i64(dst, 0), 9);
    ck_assert_ptr_null(sg_cast(ctx, NULL, SG_I64));
    EXPECT_NO_ERR(ctx);
    sg_ctx_free(ctx);
}
END_TEST

START_TEST(test_int_refused_by_float_ops) {
    sg_ctx *ctx = sg_ctx_new(0);
    sg_tensor *a = sg_arange(ctx, SG_I64, 0, 4, 1);
    sg_tensor *f = sg_arange(ctx, SG_F32, 0, 4, 1);
    ck_assert_ptr_null(sg_add(ctx, a, a));
    EXPECT_ERR(ctx, "sg_add: input 0 is an int64 tensor; this op takes float32 or float64");
    ck_assert_ptr_null(sg_mul(ctx, f, a));
    EXPECT_ERR(ctx, "sg_mul: input 1 is an int64 tensor; this op takes float32 or float64");
    ck_assert_ptr_null(sg_tanh(ctx, sg_cast(ctx, a, SG_I32)));
    EXPECT_ERR(ctx, "sg_tanh: input 0 is an int32 tensor; this op takes float32 or float64");
    ck_assert_ptr_null(sg_set_requires_grad(a, true));
    EXPECT_ERR(ctx, "sg_set_requires_grad: an int64 tensor never requires grad");
    ck_assert_ptr_null(sg_param_new(ctx, SG_I64, SG_SHAPE(2), "p"));
    EXPECT_ERR(ctx, "sg_param_new: a parameter is float32 or float64, not int64");
    ck_assert_ptr_null(sg_rand_uniform(ctx, SG_I32, SG_SHAPE(2), 0, 1));
    EXPECT_ERR(ctx, "sg_rand_uniform: draws float32 or float64, not int32");
    ck_assert_int_eq(
        sg_init_tensor(ctx, a, sg_init_default(SG_INIT_GLOROT_UNIFORM), sg_ctx_rng(ctx)), -1);
    EXPECT_ERR(ctx, "sg_init_tensor: glorot_uniform fills float32 or float64 tensors, not int64");
    ck_assert_int_eq(sg_axpy(a, 1.0, a), -1);
    EXPECT_ERR(ctx, "sg_axpy: int64 tensors; float32 or float64 only");
    ck_assert_ptr_null(sg_full(ctx, SG_I32, SG_SHAPE(2), 3e9));
    EXPECT_ERR(ctx, "sg_full: value 3e+09 is not an int32");
    ck_assert_int_eq(sg_fill(a, NAN), -1);
    EXPECT_ERR(ctx, "sg_fill: value nan is not an int64");
    ck_assert_int_eq(sg_set_flat(a, 0, INFINITY), -1);
    EXPECT_ERR(ctx, "sg_set_flat: value inf is not an int64");
    ck_assert_ptr_null(sg_arange(ctx, SG_I32, 0, 5e9, 3e9));
    EXPECT_ERR(ctx, "sg_arange: values from 0 to 3e+09 do not fit in int32");
    ck_assert_ptr_null(sg_concat(ctx, 2, (sg_tensor *[]){a, f}, 0));
    EXPECT_ERR(ctx, "sg_concat: dtype mismatch: int64 and float32");
    sg_ctx_free(ctx);
}
END_TEST

int main(void) {
    /* SG_F64 + 1 runs: _i is the dtype, SG_F32 (0) then SG_F64 */
    const ck_tcase tcases[] = {
        {"views",
         0,
         {{test_reshape_view, SG_F64 + 1},
          {test_permute_transpose, SG_F64 + 1},
          {test_slice, SG_F64 + 1},
          {test_select, SG_F64 + 1},
          {test_split, SG_F64 + 1},
          {test_expand, SG_F64 + 1},
          {test_write_through_views, SG_F64 + 1},
          {test_contiguous, SG_F64 + 1},
          {test_views_record, 1}}},
        {"creation",
         0,
         {{test_create_fill, SG_F64 + 1},
          {test_arange, SG_F64 + 1},
          {test_from_data_wrap, 1},
          {test_inspection, 1},
          {test_copy_axpy, SG_F64 + 1}}},
        {"arena",
         60,
         {{test_arena_5000_small, 1},
          {test_arena_peak_stable, 1},
          {test_arena_growth_coalesce, 1},
          {test_persistent_survive_reset, 1},
          {test_tensor_free, 1},
          {test_stale_after_reset, 1},
          {test_stale_after_reset_reused, 4},
          {test_stale_generation_64bit, 1},
          {test_stale_same_work_later, 1},
          {test_stale_two_resets_same_address, 6}}},
        {"oom",
         60,
         {{test_oom_ctx_new, 1},
          {test_oom_ctx_new_size_overflow, 1},
          {test_oom_param, 1},
          {test_oom_arena, 1},
          {test_oom_arena_huge_request, 1},
          {test_oom_reset_coalesce, 1},
          {test_allocator_shim, 1}}},
        {"errors",
         60,
         {{test_err_reshape, 1},
          {test_err_reshape_overflow, 1},
          {test_err_permute_transpose, 1},
          {test_err_slice_select, 1},
          {test_err_split, 1},
          {test_err_expand, 1},
          {test_err_expand_negative, 1},
          {test_err_index_overflow, 1},
          {test_err_creation, 1},
          {test_overflow_creation, 1},
          {test_overflow_views_ops, 1},
          {test_err_access, 1},
          {test_err_copy_axpy, 1},
          {test_null_propagation, 1},
          {test_null_arguments, 1},
          {test_int_create_views_print, 1},
          {test_int_cast, 1},
          {test_int_refused_by_float_ops, 1}}},
    };
    return CK_RUN("tensor", tcases, NULL, NULL);
}
