/* Indexing ops, each forward next to its backward: gather (torch.gather) and index_select
 * (torch.index_select), which share one kernel; where (three-way broadcasting selection).
 * Derived from them, with no backward of their own: take_along_axis (broadcast, then
 * gather), masked_fill (where), max/min along an axis (the positions, then gather) and
 * argmax/argmin (not recorded).
 *
 * Indices are int64 or int32 tensors of any strides, read exactly (sg__ldi); every index is
 * checked against the size of its axis before anything is written, and the first bad one
 * is the error ("sg_gather: index 7 out of range for axis 0 of size 5"). Negative indices
 * are errors, as in torch.gather and torch.index_select. Values may be float32 or float64
 * views of any strides; outputs and their gradients are contiguous.
 *
 * The one gather kernel: out[p] = x[p with p[axis] replaced by idx[p]] for every position p
 * of idx's shape (idx.shape[d] <= x.shape[d] off the axis). Walked with the strided
 * iterator over three operands, out, idx and x with x's stride along the axis set to 0 (so
 * operand 2 is the start of p's row), the index then adding idx[p] * x.stride[axis].
 * index_select is the same kernel on a view of its 1-D index spread over x's shape (stride 0
 * off the axis), and the backward of both is the same walk adding into x's gradient, so
 * repeated indices accumulate. */
#include <string.h>

#include "ops.h"

/* ---- shared checks ------------------------------------------------------------------- */

/* x a live float tensor, idx a live int64/int32 tensor; returns the normalised axis, or -1
 * (with an error naming fn; silently for a NULL input). */
static int index_args(sg_ctx *ctx, const char *fn, sg_tensor *x, int axis, sg_tensor *idx) {
    if (!sg__check_inputs(ctx, fn, 1, &x) || !sg__check_any(ctx, fn, 1, &idx) ||
        !sg__index_dtype(ctx, fn, "index", idx))
        return -1;
    return sg__axis(ctx, fn, axis, x->ndim);
}

/* Every element of idx (any strides) in [0, size)? Else false with an error naming the
 * first bad one (in idx's row-major order). */
static bool index_in_range(sg_ctx *ctx, const char *fn, const sg_tensor *idx, int axis,
                           int64_t size) {
    sg_iter it;
    sg__iter_of(&it, 1, &idx);
    bool ok = true;
    int64_t bad = 0;
    SG_ITER_LOOP(
        &it, int64_t v = sg__ldi(idx, i0); if (ok && (v < 0 || v >= size)) {
            ok = false;
            bad = v;
        });
    if (!ok)
        sg_error(ctx, "%s: index %lld out of range for axis %d of size %lld", fn, (long long)bad,
                 axis, (long long)size);
    return ok;
}

int sg__bcast_n(int n, sg_tensor *const *ts, int skip, int64_t *shape) {
    int nd = 0;
    for (int k = 0; k < n; k++)
        nd = ts[k]->ndim > nd ? ts[k]->ndim : nd;
    for (int d = 0; d < nd; d++) {
        shape[d] = 1;
        for (int k = 0; k < n && d != skip; k++) {
            int dk = d - (nd - ts[k]->ndim);
            int64_t s = dk >= 0 ? ts[k]->shape[dk] : 1;
            if (s != 1 && shape[d] != 1 && s != shape[d])
                return -1;
            if (s != 1)
                shape[d] = s;
        }
    }
    return nd;
}

sg_tensor *sg__bcast3(sg_ctx *ctx, const char *fn, const char *const names[3], sg_tensor *in[3],
                      sg_dtype dt) {
    int64_t shape[SG_MAX_DIMS];
    int nd = sg__bcast_n(3, in, -1, shape);
    if (nd < 0) {
        char s[3][96];
        for (int k = 0; k < 3; k++)
            sg_shape_str(in[k]->ndim, in[k]->shape, s[k], sizeof s[k]);
        return sg_error(ctx, "%s: shapes %s (%s), %s (%s) and %s (%s) do not broadcast", fn, s[0],
                        names[0], s[1], names[1], s[2], names[2]);
    }
    for (int k = 0; k < 3; k++)
        if (!(in[k] = sg__expand_to(ctx, in[k], nd, shape)))
            return NULL;
    return sg__new(ctx, fn, dt, nd, shape, false);
}

sg_tensor *sg__expand_to(sg_ctx *ctx, sg_tensor *t, int nd, const int64_t *shape) {
    if (t->ndim == nd && !memcmp(t->shape, shape, (size_t)nd * sizeof *shape))
        return t;
    return sg_expand(ctx, t, nd, shape);
}

/* ---- gather and index_select --------------------------------------------------------- */

/* x (any strides), idx (idx's shape, any strides), out (idx's shape, contiguous):
 * out[p] = x[p | axis <- idx[p]]. Backward: G (x's shape, any strides) [p | axis <- idx[p]]
 * += g[p] (g of idx's shape, any strides). The indices were checked by the forward. */
#define DEF_GATHER(T, S)                                                                           \
    static void gather_walk_##S(bool bw, sg_tensor *x, int axis, const sg_tensor *idx,             \
                                sg_tensor *o) {                                                    \
        int64_t xs[SG_MAX_DIMS];                                                                   \
        memcpy(xs, x->stride, sizeof xs);                                                          \
        xs[axis] = 0;                                                                              \
        sg_iter it;                                                                                \
        sg__iter_init(&it, idx->ndim, idx->shape, 3,                                               \
                      (const int64_t *const[]){o->stride, idx->stride, xs});                       \
        T *xp = sg_data(x), *op = sg_data(o);                                                      \
        const int64_t sa = x->stride[axis];                                                        \
        if (bw)                                                                                    \
            SG_ITER_LOOP(&it, xp[i2 + sg__ldi(idx, i1) * sa] += op[i0]);                           \
        else                                                                                       \
            SG_ITER_LOOP(&it, op[i0] = xp[i2 + sg__ldi(idx, i1) * sa]);                            \
    }
DEF_GATHER(float, f32)
DEF_GATHER(double, f64)

static void gather_walk(bool bw, sg_tensor *x, int axis, const sg_tensor *idx, sg_tensor *o) {
    if (x->dtype == SG_F32)
        gather_walk_f32(bw, x, axis, idx, o);
    else
        gather_walk_f64(bw, x, axis, idx, o);
}

/* The forward of every gather-like op: checked inputs (idx's indices in range, its shape
 * within x's off the axis); records `op` (gather or index_select) with inputs (x, idx). */
static sg_tensor *gather_run(sg_ctx *ctx, const char *fn, sg_op op, sg_tensor *x, int axis,
                             sg_tensor *idx) {
    sg_tensor *out = sg__new(ctx, fn, x->dtype, idx->ndim, idx->shape, false);
    if (!out)
        return NULL;
    gather_walk(false, x, axis, idx, out);
    out->iparam[0] = axis;
    return sg__finish(ctx, out, op, 2, (sg_tensor *const[]){x, idx});
}

/* Gather and index_select: dL/dx[p | axis <- idx[p]] += dL/dout[p]. */
void sg__bw_gather(sg_ctx *ctx, sg_tensor *out) {
    if (!sg__needs(out, 0))
        return;
    sg_tensor *G = sg__grad(ctx, out->src[0]);
    if (G)
        gather_walk(true, G, (int)out->iparam[0], out->src[1], out->grad);
}

sg_tensor *sg_gather(sg_ctx *ctx, sg_tensor *x, int axis, sg_tensor *idx) {
    const char *fn = "sg_gather";
    int a = index_args(ctx, fn, x, axis, idx);
    if (a < 0)
        return NULL;
    char sx[96], si[96];
    if (idx->ndim != x->ndim)
        return sg_error(ctx, "%s: index of shape %s has %d dimensions, x of shape %s has %d", fn,
                        sg_shape_str(idx->ndim, idx->shape, si, sizeof si), idx->ndim,
                        sg_shape_str(x->ndim, x->shape, sx, sizeof sx), x->ndim);
    for (int d = 0; d < x->ndim; d++)
        if (d != a && idx->shape[d] > x->shape[d])
            return sg_error(ctx,
                            "%s: index of shape %s is larger than x of shape %s in dimension %d",
                            fn, sg_shape_str(idx->ndim, idx->shape, si, sizeof si),
                            sg_shape_str(x->ndim, x->shape, sx, sizeof sx), d);
    if (!index_in_range(ctx, fn, idx, a, x->shape[a]))
        return NULL;
    return gather_run(ctx, fn, SG_OP_GATHER, x, a, idx);
}

sg_tensor *sg_index_select(sg_ctx *ctx, sg_tensor *x, int axis, sg_tensor *idx) {
    const char *fn = "sg_index_select";
    int a = index_args(ctx, fn, x, axis, idx);
    if (a < 0)
        return NULL;
    char si[96];
    if (idx->ndim != 1)
        return sg_error(ctx, "%s: index must be 1-D, got shape %s", fn,
                        sg_shape_str(idx->ndim, idx->shape, si, sizeof si));
    if (!index_in_range(ctx, fn, idx, a, x->shape[a]))
        return NULL;
    /* idx spread over x's shape with its length on the axis: stride 0 elsewhere. A plain
     * header, not a recorded view: an index never requires grad. */
    sg_tensor *spread = sg__view_of(ctx, idx);
    if (!spread)
        return NULL;
    spread->ndim = x->ndim;
    for (int d = 0; d < x->ndim; d++) {
        spread->shape[d] = d == a ? idx->shape[0] : x->shape[d];
        spread->stride[d] = d == a ? idx->stride[0] : 0;
    }
    return gather_run(ctx, fn, SG_OP_INDEX_SELECT, x, a, spread);
}

sg_tensor *sg_take_along_axis(sg_ctx *ctx, sg_tensor *x, int axis, sg_tensor *idx) {
    const char *fn = "sg_take_along_axis";
    int a = index_args(ctx, fn, x, axis, idx);
    if (a < 0)
        return NULL;
    char sx[96], si[96];
    int64_t shape[SG_MAX_DIMS];
    if (idx->ndim != x->ndim || sg__bcast_n(2, (sg_tensor *const[]){x, idx}, a, shape) < 0)
        return sg_error(ctx,
                        "%s: index of shape %s does not broadcast against x of shape %s "
                        "outside axis %d",
                        fn, sg_shape_str(idx->ndim, idx->shape, si, sizeof si),
                        sg_shape_str(x->ndim, x->shape, sx, sizeof sx), a);
    if (!index_in_range(ctx, fn, idx, a, x->shape[a]))
        return NULL;
    /* Both broadcast off the axis, each keeping its own size along it. */
    shape[a] = x->shape[a];
    sg_tensor *xe = sg__expand_to(ctx, x, x->ndim, shape);
    shape[a] = idx->shape[a];
    sg_tensor *ie = sg__expand_to(ctx, idx, x->ndim, shape);
    if (!xe || !ie)
        return NULL;
    return gather_run(ctx, fn, SG_OP_GATHER, xe, a, ie);
}

/* ---- where and masked_fill ----------------------------------------------------------- */

/* All four of one shape (the broadcast one), any strides, o contiguous:
 * o = cond != 0 ? a : b. Backward: ga += cond ? g : 0, gb += cond ? 0 : g (either NULL).
 * cond is read as double: any dtype, and NaN != 0 counts as true. */
#define DEF_WHERE(T, S)                                                                            \
    static void where_fw_##S(const sg_tensor *c, const sg_tensor *a, const sg_tensor *b,           \
                             sg_tensor *o) {                                                       \
        sg_iter it;                                                                                \
        sg__iter_of(&it, 4, (const sg_tensor *const[]){o, c, a, b});                               \
        const T *ap = sg_data(a), *bp = sg_data(b);                                                \
        T *op = sg_data(o);                                                                        \
        SG_ITER_LOOP(&it, op[i0] = sg__ld(c, i1) != 0 ? ap[i2] : bp[i3]);                          \
    }                                                                                              \
    static void where_bw_##S(const sg_tensor *c, const sg_tensor *g, sg_tensor *ga,                \
                             sg_tensor *gb) {                                                      \
        sg_iter it;                                                                                \
        sg__iter_init(&it, g->ndim, g->shape, 4,                                                   \
                      (const int64_t *const[]){g->stride, c->stride, ga ? ga->stride : NULL,       \
                                               gb ? gb->stride : NULL});                           \
        const T *gp = sg_data(g);                                                                  \
        T *pa = ga ? sg_data(ga) : NULL, *pb = gb ? sg_data(gb) : NULL;                            \
        SG_ITER_LOOP(&it, bool on = sg__ld(c, i1) != 0; if (on && pa) pa[i2] += gp[i0];            \
                     else if (!on && pb) pb[i3] += gp[i0]);                                        \
    }
DEF_WHERE(float, f32)
DEF_WHERE(double, f64)

sg_tensor *sg_where(sg_ctx *ctx, sg_tensor *cond, sg_tensor *a, sg_tensor *b) {
    const char *fn = "sg_where";
    sg_tensor *ab[2] = {a, b};
    if (!sg__check_any(ctx, fn, 1, &cond) || !sg__check_any(ctx, fn, 2, ab))
        return NULL;
    if (!sg_dtype_is_float(a->dtype))
        return sg_error(ctx, "%s: a and b are %s tensors; they must be float32 or float64", fn,
                        sg_dtype_name(a->dtype));
    sg_tensor *in[3] = {cond, a, b};
    sg_tensor *out = sg__bcast3(ctx, fn, (const char *const[]){"cond", "a", "b"}, in, a->dtype);
    if (!out)
        return NULL;
    if (a->dtype == SG_F32)
        where_fw_f32(in[0], in[1], in[2], out);
    else
        where_fw_f64(in[0], in[1], in[2], out);
    return sg__finish(ctx, out, SG_OP_WHERE, 3, in);
}

/* Inputs (cond, a, b), all of out's shape: the gradient goes to a where cond, to b
 * elsewhere; cond gets none. */
void sg__bw_where(sg_ctx *ctx, sg_tensor *out) {
    sg_tensor *ga = sg__needs(out, 1) ? sg__grad(ctx, out->src[1]) : NULL;
    sg_tensor *gb = sg__needs(out, 2) ? sg__grad(ctx, out->src[2]) : NULL;
    if ((!ga && sg__needs(out, 1)) || (!gb && sg__needs(out, 2)) || (!ga && !gb))
        return;
    if (out->dtype == SG_F32)
        where_bw_f32(out->src[0], out->grad, ga, gb);
    else
        where_bw_f64(out->src[0], out->grad, ga, gb);
}

sg_tensor *sg_masked_fill(sg_ctx *ctx, sg_tensor *x, sg_tensor *mask, double value) {
    const char *fn = "sg_masked_fill";
    if (!sg__check_inputs(ctx, fn, 1, &x) || !sg__check_any(ctx, fn, 1, &mask))
        return NULL;
    int64_t shape[SG_MAX_DIMS];
    int nd = sg__bcast_n(2, (sg_tensor *const[]){x, mask}, -1, shape);
    if (nd != x->ndim || memcmp(shape, x->shape, (size_t)nd * sizeof *shape)) {
        char sx[96], sm[96];
        return sg_error(ctx, "%s: mask of shape %s does not broadcast to x's shape %s", fn,
                        sg_shape_str(mask->ndim, mask->shape, sm, sizeof sm),
                        sg_shape_str(x->ndim, x->shape, sx, sizeof sx));
    }
    return sg_where(ctx, mask, sg_scalar(ctx, x->dtype, value), x);
}

/* ---- max, min, argmax, argmin -------------------------------------------------------- */

/* Position of the largest (want_max) or smallest element of the row of L elements at
 * storage offset off, stride st: the first one on ties (strict comparison), and the first
 * NaN when there is one (NaN wins, as torch.max propagates it). L > 0. */
static int64_t extreme_of_row(const sg_tensor *x, int64_t off, int64_t L, int64_t st,
                              bool want_max) {
    double best = sg__ld(x, off);
    int64_t at = 0;
    if (best != best)
        return 0;
    for (int64_t k = 1; k < L; k++) {
        double v = sg__ld(x, off + k * st);
        if (v != v)
            return k;
        if (want_max ? v > best : v < best)
            best = v, at = k;
    }
    return at;
}

/* The positions of the extremes of x along `axis`, an int64 tensor of x's shape with that
 * axis of size 1 (keepdims) or dropped; not recorded. */
static sg_tensor *arg_extreme(sg_ctx *ctx, const char *fn, sg_tensor *x, int axis, bool keepdims,
                              bool want_max) {
    if (!sg__check_inputs(ctx, fn, 1, &x))
        return NULL;
    int a = sg__axis(ctx, fn, axis, x->ndim);
    if (a < 0)
        return NULL;
    if (x->shape[a] == 0)
        return sg_error(ctx, "%s: axis %d has size 0: no %s", fn, a,
                        want_max ? "maximum" : "minimum");
    int64_t rows[SG_MAX_DIMS], shape[SG_MAX_DIMS];
    int nd = 0;
    for (int d = 0; d < x->ndim; d++) {
        rows[d] = d == a ? 1 : x->shape[d];
        if (d != a || keepdims)
            shape[nd++] = rows[d];
    }
    sg_tensor *out = sg__new(ctx, fn, SG_I64, nd, shape, false);
    if (!out)
        return NULL;
    int64_t *o = sg_data(out), r = 0, L = x->shape[a], st = x->stride[a];
    sg_iter it;
    sg__iter_init(&it, x->ndim, rows, 1, (const int64_t *const[]){x->stride});
    SG_ITER_LOOP(&it, o[r++] = extreme_of_row(x, i0, L, st, want_max));
    return out;
}

sg_tensor *sg_argmax(sg_ctx *ctx, sg_tensor *x, int axis, bool keepdims) {
    return arg_extreme(ctx, "sg_argmax", x, axis, keepdims, true);
}

sg_tensor *sg_argmin(sg_ctx *ctx, sg_tensor *x, int axis, bool keepdims) {
    return arg_extreme(ctx, "sg_argmin", x, axis, keepdims, false);
}

/* Values: the positions (keepdims), then gather, whose backward sends each gradient to
 * exactly the chosen element; then the axis dropped unless keepdims. */
static sg_tensor *max_min(sg_ctx *ctx, const char *fn, sg_tensor *x, int axis, bool keepdims,
                          sg_tensor **indices, bool want_max) {
    if (indices)
        *indices = NULL;
    sg_tensor *at = arg_extreme(ctx, fn, x, axis, true, want_max);
    if (!at)
        return NULL;
    int a = sg__axis(ctx, fn, axis, x->ndim);
    sg_tensor *v = gather_run(ctx, fn, SG_OP_GATHER, x, a, at);
    if (!keepdims) {
        int64_t shape[SG_MAX_DIMS];
        for (int d = 0, k = 0; d < x->ndim; d++)
            if (d != a)
                shape[k++] = x->shape[d];
        v = sg_reshape(ctx, v, x->ndim - 1, shape);
        at = sg_reshape(ctx, at, x->ndim - 1, shape);
    }
    if (v && indices)
        *indices = at;
    return v;
}

sg_tensor *sg_max_axis(sg_ctx *ctx, sg_tensor *x, int axis, bool keepdims, sg_tensor **indices) {
    return max_min(ctx, "sg_max_axis", x, axis, keepdims, indices, true);
}

sg_tensor *sg_min_axis(sg_ctx *ctx, sg_tensor *x, int axis, bool keepdims, sg_tensor **indices) {
    return max_min(ctx, "sg_min_axis", x, axis, keepdims, indices, false);
}
