/* Check tests for the view ops (tensor/tensor.c: reshape, permute, transpose, slice,
 * select, split, expand, contiguous) and autograd/ops_shape.c (their backward, concat,
 * stack).
 *
 * Views: exact shapes, strides and offsets, shared storage (a write through the view is
 * seen in the base), the refusals with their exact messages. Concat/stack: hand-computed
 * values on every axis, with strided inputs and more inputs than a node's src[] holds.
 * Gradients: hand-computed for slice, central differences (sg_gradcheck) for every op, in
 * both dtypes. Tests that loop over dtypes run as _i = 0 (float32) and _i = 1 (float64).
 */
#include <check.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "autograd/autograd.h"
#include "cksuite.h"
#include "optest.h"

#define DT(i) ((i) ? SG_F64 : SG_F32)

/* ---- helpers ---------------------------------------------------------------------------- */

/* start, start + 1, ... in a contiguous tensor of the shape. */
static sg_tensor *seq(sg_ctx *ctx, sg_dtype dt, int nd, const int64_t *shape, double start) {
    sg_tensor *t = sg_tensor_new(ctx, dt, nd, shape);
    ck_assert_ptr_nonnull(t);
    for (int64_t i = 0; i < sg_numel(t); i++)
        sg_set_flat(t, i, start + (double)i);
    return t;
}
#define iota(ctx, dt, ...) seq(ctx, dt, __VA_ARGS__, 0.0)

static sg_tensor *rnd(sg_ctx *ctx, sg_dtype dt, int nd, const int64_t *shape) {
    sg_tensor *t = sg_rand_uniform(ctx, dt, nd, shape, -1.0, 1.0);
    ck_assert_ptr_nonnull(t);
    return t;
}

static void expect_view(const sg_tensor *t, int nd, const int64_t *shape, const int64_t *stride,
                        int64_t offset) {
    ck_assert_ptr_nonnull(t);
    ck_assert_int_eq(t->ndim, nd);
    for (int d = 0; d < nd; d++) {
        ck_assert_int_eq(t->shape[d], shape[d]);
        ck_assert_int_eq(t->stride[d], stride[d]);
    }
    ck_assert_int_eq(t->offset, offset);
}
#define ARR(...)                                                                                   \
    (const int64_t[]) { __VA_ARGS__ }

/* Values of t in row-major order equal want[0..n). Exact: these are small integers. */
static void expect_vals(const sg_tensor *t, int64_t n, const double *want) {
    ck_assert_ptr_nonnull(t);
    ck_assert_int_eq(sg_numel(t), n);
    for (int64_t i = 0; i < n; i++)
        ck_assert_msg(sg_get_flat(t, i) == want[i], "element %lld: got %g, want %g", (long long)i,
                      sg_get_flat(t, i), want[i]);
}
#define VALS(t, ...)                                                                               \
    expect_vals(t, (int64_t)(sizeof((double[]){__VA_ARGS__}) / sizeof(double)),                    \
                (double[]){__VA_ARGS__})

static double at(const sg_tensor *t, const int64_t *idx) { return sg_get(t, idx); }

/* ---- views: layout and shared storage -------------------------------------------------- */

START_TEST(test_view_layouts) {
    sg_ctx *ctx = sg_ctx_new(0);
    sg_dtype dt = DT(_i);
    sg_tensor *x = iota(ctx, dt, SG_SHAPE(2, 3, 4)); /* strides (12, 4, 1) */
    void *base = x->storage->data;

    sg_tensor *s = sg_slice(ctx, x, 2, 1, 2);
    expect_view(s, 3, ARR(2, 3, 2), ARR(12, 4, 1), 1);
    VALS(s, 1, 2, 5, 6, 9, 10, 13, 14, 17, 18, 21, 22);
    sg_tensor *s1 = sg_slice(ctx, x, -2, 2, 1);
    expect_view(s1, 3, ARR(2, 1, 4), ARR(12, 4, 1), 8);

    sg_tensor *t = sg_transpose(ctx, x, 0, 2);
    expect_view(t, 3, ARR(4, 3, 2), ARR(1, 4, 12), 0);
    ck_assert(!sg_is_contiguous(t));
    ck_assert_double_eq(at(t, ARR(3, 1, 1)), 12 + 4 + 3);

    sg_tensor *p = sg_permute(ctx, x, (int[]){2, 0, 1});
    expect_view(p, 3, ARR(4, 2, 3), ARR(1, 12, 4), 0);
    ck_assert_double_eq(at(p, ARR(2, 1, 0)), 14);

    sg_tensor *sel = sg_select(ctx, x, 1, 2);
    expect_view(sel, 2, ARR(2, 4), ARR(12, 1), 8);
    VALS(sel, 8, 9, 10, 11, 20, 21, 22, 23);
    sg_tensor *sel0 = sg_select(ctx, x, 0, 1);
    expect_view(sel0, 2, ARR(3, 4), ARR(4, 1), 12);
    sg_tensor *sel2 = sg_select(ctx, x, -1, 3);
    expect_view(sel2, 2, ARR(2, 3), ARR(12, 4), 3);
    VALS(sel2, 3, 7, 11, 15, 19, 23);

    sg_tensor *r = sg_reshape(ctx, x, SG_SHAPE(6, 4));
    expect_view(r, 2, ARR(6, 4), ARR(4, 1), 0);
    sg_tensor *r2 = sg_reshape(ctx, x, SG_SHAPE(4, -1));
    expect_view(r2, 2, ARR(4, 6), ARR(6, 1), 0);
    /* a reshape of a non-contiguous view that the strides allow: (2, 3, 2) slice merged
     * over its first two dims (rows 4 apart, blocks 12 = 3 * 4 apart) */
    sg_tensor *rs = sg_reshape(ctx, s, SG_SHAPE(6, 2));
    expect_view(rs, 2, ARR(6, 2), ARR(4, 1), 1);
    VALS(rs, 1, 2, 5, 6, 9, 10, 13, 14, 17, 18, 21, 22);

    sg_tensor *y = iota(ctx, dt, SG_SHAPE(3, 1));
    sg_tensor *e = sg_expand(ctx, y, SG_SHAPE(2, 3, 4));
    expect_view(e, 3, ARR(2, 3, 4), ARR(0, 1, 0), 0);
    ck_assert_double_eq(at(e, ARR(1, 2, 3)), 2);
    ck_assert_double_eq(at(e, ARR(0, 1, 0)), 1);

    sg_tensor *parts[3];
    ck_assert_int_eq(sg_split(ctx, x, 2, 2, parts), 0);
    expect_view(parts[0], 3, ARR(2, 3, 2), ARR(12, 4, 1), 0);
    expect_view(parts[1], 3, ARR(2, 3, 2), ARR(12, 4, 1), 2);
    ck_assert_int_eq(sg_split_sizes(ctx, x, 1, 2, ARR(1, 2), parts), 0);
    expect_view(parts[0], 3, ARR(2, 1, 4), ARR(12, 4, 1), 0);
    expect_view(parts[1], 3, ARR(2, 2, 4), ARR(12, 4, 1), 4);
    ck_assert_int_eq(sg_split(ctx, x, 0, 2, parts), 0);
    expect_view(parts[1], 3, ARR(1, 3, 4), ARR(12, 4, 1), 12);

    /* every view shares x's storage */
    sg_tensor *views[] = {s, s1, t, p, sel, sel0, sel2, r, r2, rs, parts[0], parts[1]};
    for (size_t i = 0; i < sizeof views / sizeof views[0]; i++)
        ck_assert_ptr_eq(views[i]->storage->data, base);
    ck_assert_ptr_eq(e->storage->data, y->storage->data);
    ck_assert_ptr_null(sg_ctx_error(ctx));
    sg_ctx_free(ctx);
}
END_TEST

START_TEST(test_views_write_through) {
    sg_ctx *ctx = sg_ctx_new(0);
    sg_dtype dt = DT(_i);
    sg_tensor *x = iota(ctx, dt, SG_SHAPE(2, 3, 4));
    /* slice [.., 1:3]: its element 5 is s[0, 2, 1] = x[0, 2, 2] */
    sg_tensor *s = sg_slice(ctx, x, 2, 1, 2);
    ck_assert_int_eq(sg_set_flat(s, 5, 100), 0);
    ck_assert_double_eq(at(x, ARR(0, 2, 2)), 100);
    /* transpose (4, 3, 2): element 1 is t[0, 0, 1] = x[1, 0, 0] */
    sg_tensor *t = sg_transpose(ctx, x, 0, 2);
    ck_assert_int_eq(sg_set_flat(t, 1, -5), 0);
    ck_assert_double_eq(at(x, ARR(1, 0, 0)), -5);
    /* select x[:, 2, :]: element 5 is x[1, 2, 1] */
    sg_tensor *sel = sg_select(ctx, x, 1, 2);
    ck_assert_int_eq(sg_set_flat(sel, 5, 7.5), 0);
    ck_assert_double_eq(at(x, ARR(1, 2, 1)), 7.5);
    /* reshape (6, 4): element 23 is x[1, 2, 3] */
    sg_tensor *r = sg_reshape(ctx, x, SG_SHAPE(6, 4));
    ck_assert_int_eq(sg_set_flat(r, 23, 9), 0);
    ck_assert_double_eq(at(x, ARR(1, 2, 3)), 9);
    /* permute (4, 2, 3): element 7 is p[1, 0, 1] = x[0, 1, 1] */
    sg_tensor *p = sg_permute(ctx, x, (int[]){2, 0, 1});
    ck_assert_int_eq(sg_set_flat(p, 7, -1), 0);
    ck_assert_double_eq(at(x, ARR(0, 1, 1)), -1);
    /* a view of a view: slice of the transpose, t[1:3, 1, :] */
    sg_tensor *ts = sg_select(ctx, sg_slice(ctx, t, 0, 1, 2), 1, 1);
    expect_view(ts, 2, ARR(2, 2), ARR(1, 12), 5);
    ck_assert_int_eq(sg_set_flat(ts, 3, 42), 0); /* ts[1, 1] = t[2, 1, 1] = x[1, 1, 2] */
    ck_assert_double_eq(at(x, ARR(1, 1, 2)), 42);
    /* and the base's untouched elements are still 0..23 */
    ck_assert_double_eq(at(x, ARR(0, 0, 0)), 0);
    ck_assert_double_eq(at(x, ARR(1, 2, 2)), 22);
    ck_assert_ptr_null(sg_ctx_error(ctx));
    sg_ctx_free(ctx);
}
END_TEST

START_TEST(test_view_errors) {
    sg_ctx *ctx = sg_ctx_new(0);
    sg_tensor *x = iota(ctx, SG_F64, SG_SHAPE(2, 3, 4));
    sg_tensor *t = sg_transpose(ctx, x, 0, 2);
    ck_assert_ptr_null(sg_reshape(ctx, t, SG_SHAPE(24)));
    expect_err(ctx, "sg_reshape: cannot view (4, 3, 2) with these strides as (24,) without a "
                    "copy (call sg_contiguous first)");
    ck_assert_ptr_null(sg_reshape(ctx, x, SG_SHAPE(5, 5)));
    expect_err(ctx, "sg_reshape: cannot view (2, 3, 4) as (5, 5): 24 elements vs 25");
    /* the same reshape works after sg_contiguous */
    sg_tensor *c = sg_contiguous(ctx, t);
    sg_tensor *flat = sg_reshape(ctx, c, SG_SHAPE(24));
    ck_assert_ptr_nonnull(flat);
    ck_assert_double_eq(sg_get_flat(flat, 1), 12); /* t[0, 0, 1] = x[1, 0, 0] */

    sg_tensor *parts[4];
    ck_assert_int_eq(sg_split(ctx, x, 2, 3, parts), -1);
    expect_err(ctx, "sg_split: axis 2 of size 4 does not split into 3 equal parts");
    ck_assert_int_eq(sg_split_sizes(ctx, x, 2, 2, ARR(1, 4), parts), -1);
    expect_err(ctx, "sg_split: sizes sum to 5 but axis 2 has size 4");
    ck_assert_int_eq(sg_split_sizes(ctx, x, 2, 2, ARR(-1, 5), parts), -1);
    expect_err(ctx, "sg_split: negative size -1 for part 0");
    ck_assert_int_eq(sg_split(ctx, x, 3, 2, parts), -1);
    expect_err(ctx, "sg_split: axis 3 out of range for 3 dimensions");

    ck_assert_ptr_null(sg_slice(ctx, x, 1, 2, 2));
    expect_err(ctx, "sg_slice: [2, 4) out of range for axis 1 of size 3");
    ck_assert_ptr_null(sg_select(ctx, x, 0, 2));
    expect_err(ctx, "sg_select: index 2 out of range for axis 0 of size 2");
    ck_assert_ptr_null(sg_permute(ctx, x, (int[]){0, 0, 1}));
    expect_err(ctx, "sg_permute: not a permutation of 3 axes (entry 1 is 0)");
    ck_assert_ptr_null(sg_expand(ctx, x, SG_SHAPE(2, 3, 5)));
    expect_err(ctx, "sg_expand: cannot broadcast (2, 3, 4) to (2, 3, 5)");
    sg_ctx_free(ctx);
}
END_TEST

START_TEST(test_contiguous) {
    sg_ctx *ctx = sg_ctx_new(0);
    sg_dtype dt = DT(_i);
    sg_tensor *x = iota(ctx, dt, SG_SHAPE(2, 3));
    ck_assert_ptr_eq(sg_contiguous(ctx, x), x);
    /* a slice of whole rows and a size-1 transpose are contiguous too: no copy */
    sg_tensor *rows = sg_slice(ctx, iota(ctx, dt, SG_SHAPE(4, 3)), 0, 1, 2);
    ck_assert_ptr_eq(sg_contiguous(ctx, rows), rows);
    sg_tensor *t1 = sg_transpose(ctx, iota(ctx, dt, SG_SHAPE(1, 3)), 0, 1);
    ck_assert_ptr_eq(sg_contiguous(ctx, t1), t1);
    /* a real transpose is copied into fresh storage, row-major */
    sg_tensor *t = sg_transpose(ctx, x, 0, 1);
    sg_tensor *c = sg_contiguous(ctx, t);
    ck_assert_ptr_ne(c, t);
    ck_assert_ptr_ne(c->storage->data, x->storage->data);
    expect_view(c, 2, ARR(3, 2), ARR(2, 1), 0);
    VALS(c, 0, 3, 1, 4, 2, 5);
    /* nothing required grad: not on the tape */
    ck_assert_int_eq(c->op, SG_OP_NONE);
    sg_set_requires_grad(x, true);
    sg_tensor *c2 = sg_contiguous(ctx, sg_transpose(ctx, x, 0, 1));
    ck_assert_int_eq(c2->op, SG_OP_CONTIGUOUS);
    ck_assert_ptr_null(sg_ctx_error(ctx));
    sg_ctx_free(ctx);
}
END_TEST

/* ---- concat and stack: forward --------------------------------------------------------- */

START_TEST(test_concat_axes) {
    sg_ctx *ctx = sg_ctx_new(0);
    sg_dtype dt = DT(_i);
    sg_tensor *a = seq(ctx, dt, SG_SHAPE(2, 3), 0);  /* [[0, 1, 2], [3, 4, 5]] */
    sg_tensor *b = seq(ctx, dt, SG_SHAPE(1, 3), 10); /* [[10, 11, 12]] */
    sg_tensor *c = seq(ctx, dt, SG_SHAPE(2, 2), 20); /* [[20, 21], [22, 23]] */

    sg_tensor *ab = sg_concat(ctx, 2, (sg_tensor *[]){a, b}, 0);
    expect_view(ab, 2, ARR(3, 3), ARR(3, 1), 0);
    VALS(ab, 0, 1, 2, 3, 4, 5, 10, 11, 12);
    sg_tensor *ac = sg_concat(ctx, 2, (sg_tensor *[]){a, c}, 1);
    expect_view(ac, 2, ARR(2, 5), ARR(5, 1), 0);
    VALS(ac, 0, 1, 2, 20, 21, 3, 4, 5, 22, 23);
    sg_tensor *ca = sg_concat(ctx, 2, (sg_tensor *[]){c, a}, -1);
    VALS(ca, 20, 21, 0, 1, 2, 22, 23, 3, 4, 5);
    sg_tensor *ba = sg_concat(ctx, 2, (sg_tensor *[]){b, a}, -2);
    VALS(ba, 10, 11, 12, 0, 1, 2, 3, 4, 5);

    /* 3-D on axes 2 (and -1), 1, 0 */
    sg_tensor *p = seq(ctx, dt, SG_SHAPE(2, 3, 1), 100), *q = seq(ctx, dt, SG_SHAPE(2, 3, 2), 200);
    sg_tensor *pq = sg_concat(ctx, 2, (sg_tensor *[]){p, q}, 2);
    expect_view(pq, 3, ARR(2, 3, 3), ARR(9, 3, 1), 0);
    VALS(pq, 100, 200, 201, 101, 202, 203, 102, 204, 205, 103, 206, 207, 104, 208, 209, 105, 210,
         211);
    VALS(sg_concat(ctx, 2, (sg_tensor *[]){p, q}, -1), 100, 200, 201, 101, 202, 203, 102, 204, 205,
         103, 206, 207, 104, 208, 209, 105, 210, 211);
    sg_tensor *u = seq(ctx, dt, SG_SHAPE(2, 1, 2), 0), *v = seq(ctx, dt, SG_SHAPE(2, 2, 2), 10);
    sg_tensor *uv = sg_concat(ctx, 2, (sg_tensor *[]){u, v}, 1);
    expect_view(uv, 3, ARR(2, 3, 2), ARR(6, 2, 1), 0);
    VALS(uv, 0, 1, 10, 11, 12, 13, 2, 3, 14, 15, 16, 17);
    sg_tensor *w = seq(ctx, dt, SG_SHAPE(1, 2, 2), 50);
    VALS(sg_concat(ctx, 3, (sg_tensor *[]){v, w, v}, 0), 10, 11, 12, 13, 14, 15, 16, 17, 50, 51, 52,
         53, 10, 11, 12, 13, 14, 15, 16, 17);

    /* an empty input contributes nothing */
    sg_tensor *z = sg_zeros(ctx, dt, SG_SHAPE(2, 0));
    VALS(sg_concat(ctx, 3, (sg_tensor *[]){z, a, z}, 1), 0, 1, 2, 3, 4, 5);
    ck_assert_ptr_null(sg_ctx_error(ctx));
    sg_ctx_free(ctx);
}
END_TEST

START_TEST(test_concat_n) {
    sg_ctx *ctx = sg_ctx_new(0);
    sg_dtype dt = DT(_i);
    /* n = 1: a copy, not the input */
    sg_tensor *a = seq(ctx, dt, SG_SHAPE(2, 3), 0);
    sg_tensor *one = sg_concat(ctx, 1, &a, 1);
    ck_assert_ptr_ne(one, a);
    ck_assert_ptr_ne(one->storage->data, a->storage->data);
    VALS(one, 0, 1, 2, 3, 4, 5);

    /* n = 5 > SG_MAX_SRC, widths 1..5 on axis 1: input i holds 10 i + (i + 1) r + j at
     * row r, column j */
    sg_tensor *xs[5];
    for (int i = 0; i < 5; i++)
        xs[i] = seq(ctx, dt, SG_SHAPE(2, i + 1), 10.0 * i);
    sg_tensor *cat = sg_concat(ctx, 5, xs, 1);
    expect_view(cat, 2, ARR(2, 15), ARR(15, 1), 0);
    int64_t col = 0;
    for (int i = 0; i < 5; i++) {
        for (int j = 0; j <= i; j++, col++)
            for (int r = 0; r < 2; r++)
                ck_assert_double_eq(at(cat, ARR(r, col)), 10.0 * i + (i + 1) * r + j);
    }
    ck_assert_int_eq(cat->op, SG_OP_NONE); /* nothing requires grad */

    /* recorded with all five inputs when one requires grad (the last, beyond src[]) */
    sg_set_requires_grad(xs[4], true);
    cat = sg_concat(ctx, 5, xs, 1);
    ck_assert_int_eq(cat->op, SG_OP_CONCAT);
    ck_assert(cat->flags & SG_FLAG_REQUIRES_GRAD);
    ck_assert_int_eq(cat->iparam[0], 1);
    ck_assert_int_eq(cat->iparam[1], 5);
    ck_assert_ptr_nonnull(cat->aux);
    for (int i = 0; i < 5; i++)
        ck_assert_ptr_eq(((sg_tensor **)cat->aux)[i], xs[i]);
    /* backward reaches only the input that requires grad, with its slab: columns 10..14 */
    sg_tensor *g = seq(ctx, dt, SG_SHAPE(2, 15), 0);
    ck_assert_int_eq(sg_backward(ctx, cat, g), 0);
    for (int i = 0; i < 4; i++)
        ck_assert_ptr_null(xs[i]->grad);
    VALS(xs[4]->grad, 10, 11, 12, 13, 14, 25, 26, 27, 28, 29);
    /* the graph export sees all five inputs */
    FILE *f = tmpfile();
    ck_assert_ptr_nonnull(f);
    ck_assert_int_eq(sg_dot_write(ctx, cat, f), 0);
    rewind(f);
    char line[256];
    int edges = 0;
    while (fgets(line, sizeof line, f))
        edges += strstr(line, " -> ") != NULL;
    fclose(f);
    ck_assert_int_eq(edges, 5);
    ck_assert_ptr_null(sg_ctx_error(ctx));
    sg_ctx_free(ctx);
}
END_TEST

START_TEST(test_concat_strided) {
    sg_ctx *ctx = sg_ctx_new(0);
    sg_dtype dt = DT(_i);
    /* the LSTM's [h, x[:, t, :]]: x_t rows are contiguous but T*I apart */
    sg_tensor *x = seq(ctx, dt, SG_SHAPE(2, 3, 5), 0);
    sg_tensor *xt = sg_select(ctx, x, 1, 1); /* [[5..9], [20..24]] */
    ck_assert(!sg_is_contiguous(xt));
    sg_tensor *h = seq(ctx, dt, SG_SHAPE(2, 4), 100);
    sg_tensor *v = sg_concat(ctx, 2, (sg_tensor *[]){h, xt}, 1);
    VALS(v, 100, 101, 102, 103, 5, 6, 7, 8, 9, 104, 105, 106, 107, 20, 21, 22, 23, 24);
    /* a transposed input */
    sg_tensor *a = seq(ctx, dt, SG_SHAPE(2, 3), 0);
    sg_tensor *tt =
        sg_transpose(ctx, seq(ctx, dt, SG_SHAPE(3, 2), 0), 0, 1); /* [[0,2,4],[1,3,5]] */
    VALS(sg_concat(ctx, 2, (sg_tensor *[]){tt, a}, 0), 0, 2, 4, 1, 3, 5, 0, 1, 2, 3, 4, 5);
    VALS(sg_concat(ctx, 2, (sg_tensor *[]){a, tt}, 1), 0, 1, 2, 0, 2, 4, 3, 4, 5, 1, 3, 5);
    /* an expanded input (stride 0) */
    sg_tensor *e = sg_expand(ctx, seq(ctx, dt, SG_SHAPE(1, 3), 7), SG_SHAPE(2, 3));
    VALS(sg_concat(ctx, 2, (sg_tensor *[]){e, a}, 1), 7, 8, 9, 0, 1, 2, 7, 8, 9, 3, 4, 5);
    /* a column slice, concatenated on axis 0 */
    sg_tensor *cs =
        sg_slice(ctx, seq(ctx, dt, SG_SHAPE(2, 6), 0), 1, 2, 3); /* [[2,3,4],[8,9,10]] */
    VALS(sg_concat(ctx, 2, (sg_tensor *[]){cs, a}, 0), 2, 3, 4, 8, 9, 10, 0, 1, 2, 3, 4, 5);
    ck_assert_ptr_null(sg_ctx_error(ctx));
    sg_ctx_free(ctx);
}
END_TEST

START_TEST(test_stack) {
    sg_ctx *ctx = sg_ctx_new(0);
    sg_dtype dt = DT(_i);
    sg_tensor *xs[3] = {seq(ctx, dt, SG_SHAPE(2, 3), 0), seq(ctx, dt, SG_SHAPE(2, 3), 10),
                        seq(ctx, dt, SG_SHAPE(2, 3), 20)};
    sg_tensor *s0 = sg_stack(ctx, 3, xs, 0);
    expect_view(s0, 3, ARR(3, 2, 3), ARR(6, 3, 1), 0);
    VALS(s0, 0, 1, 2, 3, 4, 5, 10, 11, 12, 13, 14, 15, 20, 21, 22, 23, 24, 25);
    sg_tensor *s1 = sg_stack(ctx, 3, xs, 1);
    expect_view(s1, 3, ARR(2, 3, 3), ARR(9, 3, 1), 0);
    VALS(s1, 0, 1, 2, 10, 11, 12, 20, 21, 22, 3, 4, 5, 13, 14, 15, 23, 24, 25);
    sg_tensor *s2 = sg_stack(ctx, 3, xs, -1);
    expect_view(s2, 3, ARR(2, 3, 3), ARR(9, 3, 1), 0);
    VALS(s2, 0, 10, 20, 1, 11, 21, 2, 12, 22, 3, 13, 23, 4, 14, 24, 5, 15, 25);
    /* strided inputs: a transpose and a column slice, both (2, 2) */
    sg_tensor *t = sg_transpose(ctx, seq(ctx, dt, SG_SHAPE(2, 2), 0), 0, 1); /* [[0,2],[1,3]] */
    sg_tensor *c = sg_slice(ctx, seq(ctx, dt, SG_SHAPE(2, 4), 0), 1, 1, 2);  /* [[1,2],[5,6]] */
    VALS(sg_stack(ctx, 2, (sg_tensor *[]){t, c}, 0), 0, 2, 1, 3, 1, 2, 5, 6);
    /* 1-D inputs, one input */
    sg_tensor *v = seq(ctx, dt, SG_SHAPE(3), 1);
    sg_tensor *sv = sg_stack(ctx, 1, &v, 1);
    expect_view(sv, 2, ARR(3, 1), ARR(1, 1), 0);
    VALS(sv, 1, 2, 3);
    /* more than the 16 inputs stack keeps on its own stack */
    sg_tensor *many[20];
    for (int i = 0; i < 20; i++)
        many[i] = seq(ctx, dt, SG_SHAPE(2), 2.0 * i);
    sg_tensor *sm = sg_stack(ctx, 20, many, 1);
    expect_view(sm, 2, ARR(2, 20), ARR(20, 1), 0);
    for (int i = 0; i < 20; i++) {
        ck_assert_double_eq(at(sm, ARR(0, i)), 2.0 * i);
        ck_assert_double_eq(at(sm, ARR(1, i)), 2.0 * i + 1);
    }
    ck_assert_ptr_null(sg_ctx_error(ctx));
    sg_ctx_free(ctx);
}
END_TEST

START_TEST(test_concat_stack_errors) {
    sg_ctx *ctx = sg_ctx_new(0);
    sg_tensor *a = sg_zeros(ctx, SG_F64, SG_SHAPE(2, 3));
    ck_assert_ptr_null(
        sg_concat(ctx, 2, (sg_tensor *[]){a, sg_zeros(ctx, SG_F64, SG_SHAPE(3, 5))}, 1));
    expect_err(ctx, "sg_concat: input 1 has shape (3, 5), expected (2, *) to match input 0's "
                    "(2, 3) on every axis but 1");
    ck_assert_ptr_null(
        sg_concat(ctx, 3, (sg_tensor *[]){a, a, sg_zeros(ctx, SG_F64, SG_SHAPE(2, 4))}, 0));
    expect_err(ctx, "sg_concat: input 2 has shape (2, 4), expected (*, 3) to match input 0's "
                    "(2, 3) on every axis but 0");
    sg_tensor *a3 = sg_zeros(ctx, SG_F64, SG_SHAPE(2, 3, 4));
    ck_assert_ptr_null(
        sg_concat(ctx, 2, (sg_tensor *[]){a3, sg_zeros(ctx, SG_F64, SG_SHAPE(2, 5, 3))}, -1));
    expect_err(ctx, "sg_concat: input 1 has shape (2, 5, 3), expected (2, 3, *) to match input "
                    "0's (2, 3, 4) on every axis but 2");
    ck_assert_ptr_null(
        sg_concat(ctx, 2, (sg_tensor *[]){a, sg_zeros(ctx, SG_F64, SG_SHAPE(2, 3, 1))}, 1));
    expect_err(ctx, "sg_concat: input 1 has shape (2, 3, 1), expected 2 dimensions like input 0's "
                    "(2, 3)");
    ck_assert_ptr_null(sg_concat(ctx, 2, (sg_tensor *[]){a, a}, 2));
    expect_err(ctx, "sg_concat: axis 2 out of range for 2 dimensions");
    ck_assert_ptr_null(sg_concat(ctx, 2, (sg_tensor *[]){a, a}, -3));
    expect_err(ctx, "sg_concat: axis -3 out of range for 2 dimensions");
    sg_tensor *s = sg_scalar(ctx, SG_F64, 1);
    ck_assert_ptr_null(sg_concat(ctx, 2, (sg_tensor *[]){s, s}, 0));
    expect_err(ctx, "sg_concat: axis 0 out of range for 0 dimensions");
    ck_assert_ptr_null(sg_concat(ctx, 0, (sg_tensor *[]){a}, 0));
    expect_err(ctx, "sg_concat: need at least one input (got n = 0)");
    ck_assert_ptr_null(sg_concat(ctx, 2, NULL, 0));
    expect_err(ctx, "sg_concat: xs is NULL");
    ck_assert_ptr_null(
        sg_concat(ctx, 2, (sg_tensor *[]){sg_zeros(ctx, SG_F32, SG_SHAPE(2, 3)), a}, 0));
    expect_err(ctx, "sg_concat: dtype mismatch: float32 and float64");
    /* NULL inputs propagate silently */
    ck_assert_ptr_null(sg_concat(ctx, 2, (sg_tensor *[]){a, NULL}, 0));
    ck_assert_ptr_null(sg_concat(NULL, 1, &a, 0));
    ck_assert_ptr_null(sg_stack(ctx, 2, (sg_tensor *[]){NULL, a}, 0));
    ck_assert_ptr_null(sg_ctx_error(ctx));

    ck_assert_ptr_null(
        sg_stack(ctx, 2, (sg_tensor *[]){a, sg_zeros(ctx, SG_F64, SG_SHAPE(2, 4))}, 0));
    expect_err(ctx, "sg_stack: input 1 has shape (2, 4), expected (2, 3) like input 0");
    ck_assert_ptr_null(sg_stack(ctx, 2, (sg_tensor *[]){a, sg_zeros(ctx, SG_F64, SG_SHAPE(6))}, 0));
    expect_err(ctx, "sg_stack: input 1 has shape (6,), expected (2, 3) like input 0");
    ck_assert_ptr_null(sg_stack(ctx, 2, (sg_tensor *[]){a, a}, 3));
    expect_err(ctx, "sg_stack: axis 3 out of range for 3 dimensions");
    ck_assert_ptr_null(sg_stack(ctx, 2, (sg_tensor *[]){a, a}, -4));
    expect_err(ctx, "sg_stack: axis -4 out of range for 3 dimensions");
    sg_tensor *six = sg_zeros(ctx, SG_F64, SG_SHAPE(1, 1, 1, 1, 1, 2));
    ck_assert_ptr_null(sg_stack(ctx, 2, (sg_tensor *[]){six, six}, 0));
    expect_err(ctx, "sg_stack: inputs of shape (1, 1, 1, 1, 1, 2) already have the maximum 6 "
                    "dimensions");
    ck_assert_ptr_null(sg_stack(ctx, 0, &a, 0));
    expect_err(ctx, "sg_stack: need at least one input (got n = 0)");
    ck_assert_ptr_null(
        sg_stack(ctx, 2, (sg_tensor *[]){a, sg_zeros(ctx, SG_F32, SG_SHAPE(2, 3))}, 0));
    expect_err(ctx, "sg_stack: dtype mismatch: float64 and float32");
    sg_ctx_free(ctx);
}
END_TEST

/* ---- backward: hand-computed ---------------------------------------------------------- */

START_TEST(test_backward_hand) {
    sg_ctx *ctx = sg_ctx_new(0);
    sg_dtype dt = DT(_i);
    /* slice: the upstream gradient lands in the sliced columns; a second, overlapping slice
     * accumulates */
    sg_tensor *x = sg_set_requires_grad(sg_zeros(ctx, dt, SG_SHAPE(3, 4)), true);
    sg_tensor *s = sg_slice(ctx, x, 1, 1, 2);
    ck_assert_int_eq(s->op, SG_OP_SLICE);
    ck_assert_int_eq(sg_backward(ctx, s, seq(ctx, dt, SG_SHAPE(3, 2), 1)), 0);
    VALS(x->grad, 0, 1, 2, 0, 0, 3, 4, 0, 0, 5, 6, 0);
    sg_tensor *s2 = sg_slice(ctx, x, 1, 2, 2);
    ck_assert_int_eq(sg_backward(ctx, s2, sg_ones(ctx, dt, SG_SHAPE(3, 2))), 0);
    VALS(x->grad, 0, 1, 3, 1, 0, 3, 5, 1, 0, 5, 7, 1);

    /* transpose: the gradient comes back transposed */
    sg_tensor *y = sg_set_requires_grad(sg_zeros(ctx, dt, SG_SHAPE(2, 3)), true);
    sg_tensor *t = sg_transpose(ctx, y, 0, 1);
    ck_assert_int_eq(sg_backward(ctx, t, seq(ctx, dt, SG_SHAPE(3, 2), 0)), 0);
    VALS(y->grad, 0, 2, 4, 1, 3, 5);

    /* select on axis 1 of (2, 3, 2): only x[:, 1, :] gets gradient */
    sg_tensor *z = sg_set_requires_grad(sg_zeros(ctx, dt, SG_SHAPE(2, 3, 2)), true);
    ck_assert_int_eq(sg_backward(ctx, sg_select(ctx, z, 1, 1), seq(ctx, dt, SG_SHAPE(2, 2), 1)), 0);
    VALS(z->grad, 0, 0, 1, 2, 0, 0, 0, 0, 3, 4, 0, 0);

    /* expand (3, 1) -> (2, 3, 4): each element receives the sum of its 8 copies */
    sg_tensor *w = sg_set_requires_grad(sg_zeros(ctx, dt, SG_SHAPE(3, 1)), true);
    sg_tensor *e = sg_expand(ctx, w, SG_SHAPE(2, 3, 4));
    ck_assert_int_eq(sg_backward(ctx, e, seq(ctx, dt, SG_SHAPE(2, 3, 4), 0)), 0);
    /* row r: sum over b, k of 12 b + 4 r + k = 2 * (4 * 4 r + 6) + 4 * 12 */
    VALS(w->grad, 60, 92, 124);

    /* reshape: the flat order is kept */
    sg_tensor *r0 = sg_set_requires_grad(sg_zeros(ctx, dt, SG_SHAPE(2, 3)), true);
    ck_assert_int_eq(
        sg_backward(ctx, sg_reshape(ctx, r0, SG_SHAPE(3, 2)), seq(ctx, dt, SG_SHAPE(3, 2), 1)), 0);
    VALS(r0->grad, 1, 2, 3, 4, 5, 6);

    /* concat [a, b, a] on axis 1: a gets two slabs */
    sg_tensor *a = sg_set_requires_grad(sg_zeros(ctx, dt, SG_SHAPE(2, 1)), true);
    sg_tensor *b = sg_set_requires_grad(sg_zeros(ctx, dt, SG_SHAPE(2, 2)), true);
    sg_tensor *cat = sg_concat(ctx, 3, (sg_tensor *[]){a, b, a}, 1);
    ck_assert_int_eq(sg_backward(ctx, cat, seq(ctx, dt, SG_SHAPE(2, 4), 1)), 0);
    VALS(a->grad, 5, 13);
    VALS(b->grad, 2, 3, 6, 7);

    /* contiguous of a transpose */
    sg_tensor *q = sg_set_requires_grad(sg_zeros(ctx, dt, SG_SHAPE(2, 3)), true);
    sg_tensor *qc = sg_contiguous(ctx, sg_transpose(ctx, q, 0, 1));
    ck_assert_int_eq(sg_backward(ctx, qc, seq(ctx, dt, SG_SHAPE(3, 2), 0)), 0);
    VALS(q->grad, 0, 2, 4, 1, 3, 5);
    ck_assert_ptr_null(sg_ctx_error(ctx));
    sg_ctx_free(ctx);
}
END_TEST

/* ---- backward: gradcheck ------------------------------------------------------------- */

enum {
    F_RESHAPE,
    F_RESHAPE_VIEW,
    F_PERMUTE,
    F_TRANSPOSE,
    F_SLICE,
    F_SLICE_T,
    F_SELECT,
    F_SPLIT,
    F_SPLIT_SIZES,
    F_EXPAND,
    F_EXPAND_SLICE,
    F_CONTIGUOUS,
    F_CONCAT2,
    F_CONCAT_T,
    F_CONCAT5,
    F_CONCAT_LSTM,
    F_STACK,
    F_STACK_T,
    F_COUNT
};

static sg_tensor *f_view(sg_ctx *ctx, sg_tensor *const *in, void *user) {
    sg_tensor *p[3];
    switch (*(const int *)user) {
    case F_RESHAPE: return sg_reshape(ctx, in[0], SG_SHAPE(3, 4));
    case F_RESHAPE_VIEW: return sg_reshape(ctx, sg_slice(ctx, in[0], 0, 1, 2), SG_SHAPE(3, 4));
    case F_PERMUTE: return sg_permute(ctx, in[0], (int[]){2, 0, 1});
    case F_TRANSPOSE: return sg_transpose(ctx, in[0], 0, 1);
    case F_SLICE: return sg_slice(ctx, in[0], 1, 1, 3);
    case F_SLICE_T: return sg_slice(ctx, sg_transpose(ctx, in[0], 0, 1), 0, 1, 2);
    case F_SELECT: return sg_select(ctx, in[0], 1, 2);
    case F_SPLIT: /* two of the parts in one expression */
        if (sg_split(ctx, in[0], 1, 3, p))
            return NULL;
        return sg_concat(ctx, 2, (sg_tensor *[]){p[2], p[0]}, 1);
    case F_SPLIT_SIZES: /* a part used twice */
        if (sg_split_sizes(ctx, in[0], 1, 2, ARR(2, 4), p))
            return NULL;
        return sg_concat(ctx, 3, (sg_tensor *[]){p[1], p[0], p[0]}, 1);
    case F_EXPAND: return sg_expand(ctx, in[0], SG_SHAPE(2, 3, 4));
    case F_EXPAND_SLICE: return sg_expand(ctx, sg_slice(ctx, in[0], 1, 1, 1), SG_SHAPE(2, 3, 5));
    case F_CONTIGUOUS: return sg_contiguous(ctx, sg_transpose(ctx, in[0], 0, 1));
    case F_CONCAT2: return sg_concat(ctx, 2, (sg_tensor *[]){in[0], in[1]}, 1);
    case F_CONCAT_T:
        return sg_concat(ctx, 2, (sg_tensor *[]){sg_transpose(ctx, in[0], 0, 1), in[1]}, 0);
    case F_CONCAT5: return sg_concat(ctx, 5, (sg_tensor *[]){in[0], in[1], in[0], in[2], in[1]}, 1);
    case F_CONCAT_LSTM:
        return sg_concat(ctx, 2, (sg_tensor *[]){in[0], sg_select(ctx, in[1], 1, 2)}, 1);
    case F_STACK: return sg_stack(ctx, 3, (sg_tensor *[]){in[0], in[1], in[0]}, 1);
    case F_STACK_T:
        return sg_stack(ctx, 2, (sg_tensor *[]){sg_transpose(ctx, in[0], 0, 1), in[1]}, -1);
    }
    return NULL;
}

START_TEST(test_gradcheck_views) {
    sg_ctx *ctx = sg_ctx_new(0);
    sg_dtype dt = DT(_i);
    static const struct {
        int f, n;
        const char *name;
        int nd[3];
        int64_t shape[3][3];
    } cases[] = {
        {F_RESHAPE, 1, "reshape", {2}, {{2, 6}}},
        {F_RESHAPE_VIEW, 1, "reshape of a slice", {2}, {{4, 6}}},
        {F_PERMUTE, 1, "permute", {3}, {{2, 3, 4}}},
        {F_TRANSPOSE, 1, "transpose", {2}, {{3, 5}}},
        {F_SLICE, 1, "slice", {2}, {{4, 5}}},
        {F_SLICE_T, 1, "slice of a transpose", {2}, {{4, 5}}},
        {F_SELECT, 1, "select", {3}, {{2, 3, 4}}},
        {F_SPLIT, 1, "split", {2}, {{2, 6}}},
        {F_SPLIT_SIZES, 1, "split_sizes, part used twice", {2}, {{2, 6}}},
        {F_EXPAND, 1, "expand", {2}, {{3, 1}}},
        {F_EXPAND_SLICE, 1, "expand of a slice", {2}, {{3, 4}}},
        {F_CONTIGUOUS, 1, "contiguous", {2}, {{3, 4}}},
        {F_CONCAT2, 2, "concat", {2, 2}, {{2, 3}, {2, 2}}},
        {F_CONCAT_T, 2, "concat, transposed input", {2, 2}, {{3, 2}, {1, 3}}},
        {F_CONCAT5, 3, "concat of 5, inputs repeated", {2, 2, 2}, {{2, 1}, {2, 3}, {2, 2}}},
        {F_CONCAT_LSTM, 2, "concat [h, x[:, t, :]]", {2, 3}, {{2, 4}, {2, 3, 5}}},
        {F_STACK, 2, "stack, input repeated", {2, 2}, {{2, 3}, {2, 3}}},
        {F_STACK_T, 2, "stack, transposed input", {2, 2}, {{3, 2}, {2, 3}}},
    };
    ck_assert_int_eq((int)(sizeof cases / sizeof cases[0]), F_COUNT);
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        sg_tensor *in[3];
        for (int i = 0; i < cases[c].n; i++)
            in[i] = rnd(ctx, dt, cases[c].nd[i], cases[c].shape[i]);
        int f = cases[c].f;
        expect_gradcheck(ctx, f_view, &f, cases[c].n, in, cases[c].name);
    }
    sg_ctx_free(ctx);
}
END_TEST

/* ---- slice gradients as views ----------------------------------------------------------
 * A slice of at least 256 elements usually gets no gradient buffer of its own: its
 * gradient is the same slice of its input's (autograd/tape.c, grad_alias). Slices that
 * overlap, a slice of a slice, a slice with several consumers, select, and slices whose
 * consumers want a contiguous gradient (theirs stay buffers) must all still add up. x is
 * (4, 300). */
static sg_tensor *f_big_slices(sg_ctx *ctx, sg_tensor *const *in, void *user) {
    (void)user;
    sg_tensor *x = in[0];
    sg_tensor *a = sg_slice(ctx, x, 0, 0, 2);    /* rows 0-1 */
    sg_tensor *b = sg_slice(ctx, x, 0, 1, 2);    /* rows 1-2: overlaps a */
    sg_tensor *c = sg_slice(ctx, a, 1, 10, 280); /* a slice of a slice */
    sg_tensor *s = sg_select(ctx, x, 0, 3);      /* (300,) */
    sg_tensor *r = sg_reshape(ctx, sg_slice(ctx, x, 0, 2, 2), SG_SHAPE(600)); /* stays a buffer */
    /* column slices, (4, 100): strided, and consumed by ops whose backward wants a
     * contiguous gradient (sum, log_softmax) */
    sg_tensor *l = sg_log_softmax(ctx, sg_slice(ctx, x, 1, 20, 100), 1);
    sg_tensor *terms[7] = {
        sg_sum(ctx, sg_slice(ctx, x, 1, 100, 100)),
        sg_sum(ctx, sg_mul(ctx, l, sg_slice(ctx, x, 1, 50, 100))),
        sg_sum(ctx, sg_mul(ctx, sg_sigmoid(ctx, a), b)),
        sg_sum(ctx, sg_tanh(ctx, c)),
        sg_sum(ctx, sg_mul(ctx, s, s)),
        sg_sum(ctx, sg_scale(ctx, sg_exp(ctx, sg_scale(ctx, r, 0.3)), 0.5)),
        sg_sum(ctx,
               sg_matmul(ctx, sg_reshape(ctx, s, SG_SHAPE(1, 300)), sg_transpose(ctx, a, 0, 1))),
    };
    sg_tensor *out = terms[0];
    for (int i = 1; i < 7; i++)
        out = sg_add(ctx, out, terms[i]);
    return out;
}

START_TEST(test_gradcheck_big_slices) {
    sg_ctx *ctx = sg_ctx_new(0);
    /* float64 only: in float32 the loss, a sum of ~1500 terms, is too coarse for a
     * central difference on 1200 inputs */
    sg_tensor *x = rnd(ctx, SG_F64, 2, (const int64_t[]){4, 300});
    expect_gradcheck(ctx, f_big_slices, NULL, 1, &x, "slices of >= 256 elements");
    sg_ctx_free(ctx);
}
END_TEST

/* A retained slice gradient holds that slice's part alone, while the input's gets the sum
 * over two overlapping slices. */
START_TEST(test_big_slice_retained) {
    sg_ctx *ctx = sg_ctx_new(0);
    sg_dtype dt = DT(_i);
    sg_tensor *x = sg_set_requires_grad(rnd(ctx, dt, 2, (const int64_t[]){4, 300}), true);
    sg_tensor *w = rnd(ctx, dt, 2, (const int64_t[]){2, 300});
    sg_tensor *a = sg_retain_grad(sg_slice(ctx, x, 0, 0, 2));
    sg_tensor *b = sg_slice(ctx, x, 0, 1, 2);
    sg_tensor *loss = sg_add(ctx, sg_sum(ctx, sg_mul(ctx, a, w)), sg_sum(ctx, sg_mul(ctx, b, w)));
    ck_assert_int_eq(sg_backward(ctx, loss, NULL), 0);
    ck_assert_ptr_nonnull(a->grad);
    for (int64_t i = 0; i < 2; i++)
        for (int64_t j = 0; j < 300; j++) {
            double wij = at(w, (int64_t[]){i, j});
            ck_assert_double_eq(at(a->grad, (int64_t[]){i, j}), wij);
        }
    for (int64_t j = 0; j < 300; j++) {
        double w0 = at(w, (int64_t[]){0, j}), w1 = at(w, (int64_t[]){1, j});
        double want[4] = {w0, dt == SG_F32 ? (double)((float)w1 + (float)w0) : w1 + w0, w1, 0};
        for (int64_t i = 0; i < 4; i++)
            ck_assert_double_eq(at(x->grad, (int64_t[]){i, j}), want[i]);
    }
    sg_ctx_free(ctx);
}
END_TEST

int main(void) {
    const ck_tcase tcases[] = {
        {"views",
         0,
         {{test_view_layouts, 2},
          {test_views_write_through, 2},
          {test_view_errors, 1},
          {test_contiguous, 2}}},
        {"concat",
         0,
         {{test_concat_axes, 2},
          {test_concat_n, 2},
          {test_concat_strided, 2},
          {test_stack, 2},
          {test_concat_stack_errors, 1},
          {test_gradcheck_big_slices, 1},
          {test_big_slice_retained, 2}}},
        {"backward", 600, {{test_backward_hand, 2}, {test_gradcheck_views, 2}}},
    };
    return CK_RUN("ops_shape", tcases, NULL, NULL);
}
