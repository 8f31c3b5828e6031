/* The view ops (reshape, permute, transpose, slice, select, split, expand), detach,
 * contiguous, and the joining ops: concat and stack (reshape + concat, no backward of its
 * own).
 *
 * A view's gradient flows back through the same index map the view applies: each backward
 * is one strided accumulate between the two index spaces (addressing the input's gradient
 * through its strides). A slice's gradient is usually not a buffer of its own but a view
 * into its input's gradient (sg__grad, autograd/tape.c); then sg__bw_slice does not run. */
#include <string.h>

#include "ops.h"

/* ---- views: forward ------------------------------------------------------------------- */

/* A new header over x's elements for a view op. A view of a detached view of a parameter is
 * one too (SG_FLAG_NO_WRITE): views of a tensor that needs no grad are not recorded, so the
 * in-place check could not find the way back to it. */
static sg_tensor *view_of(sg_ctx *ctx, const sg_tensor *x) {
    sg_tensor *t = sg__view_of(ctx, x);
    if (t)
        t->flags |= x->flags & SG_FLAG_NO_WRITE;
    return t;
}

/* NumPy's no-copy reshape (_attempt_nocopy_reshape): walk groups of old and new dims with
 * equal products; each old group must be contiguous within itself. */
static bool reshape_strides(const sg_tensor *x, int nnd, const int64_t *nshape, int64_t *nstride) {
    int64_t od[SG_MAX_DIMS], os[SG_MAX_DIMS];
    int ond = 0;
    for (int i = 0; i < x->ndim; i++) {
        if (x->shape[i] == 0) { /* empty: any strides will do */
            sg__contiguous_strides(nnd, nshape, nstride);
            return true;
        }
        if (x->shape[i] != 1) {
            od[ond] = x->shape[i];
            os[ond++] = x->stride[i];
        }
    }
    int oi = 0, oj = 1, ni = 0, nj = 1;
    while (ni < nnd && oi < ond) {
        int64_t np = nshape[ni], op = od[oi];
        while (np != op) {
            if (np < op)
                np *= nshape[nj++];
            else
                op *= od[oj++];
        }
        for (int k = oi; k < oj - 1; k++)
            if (os[k] != od[k + 1] * os[k + 1])
                return false;
        nstride[nj - 1] = os[oj - 1];
        for (int k = nj - 1; k > ni; k--)
            nstride[k - 1] = nstride[k] * nshape[k];
        ni = nj++;
        oi = oj++;
    }
    int64_t last = ni > 0 ? nstride[ni - 1] : 1;
    for (int k = ni; k < nnd; k++)
        nstride[k] = last;
    return true;
}

sg_tensor *sg_reshape(sg_ctx *ctx, sg_tensor *x, int ndim, const int64_t *shape) {
    if (!sg__check_any(ctx, "sg_reshape", 1, &x))
        return NULL;
    char a[96], b[96];
    if (ndim < 0 || ndim > SG_MAX_DIMS)
        return sg_error(ctx, "sg_reshape: %d dimensions (0 to %d supported)", ndim, SG_MAX_DIMS);
    if (ndim && !shape)
        return sg_error(ctx, "sg_reshape: shape is NULL for %d dimensions", ndim);
    int64_t ns[SG_MAX_DIMS], known = 1, n = sg_numel(x);
    int infer = -1;
    for (int i = 0; i < ndim; i++) {
        ns[i] = shape[i];
        if (shape[i] == -1 && infer < 0)
            infer = i;
        else if (shape[i] < 0)
            return sg_error(ctx, "sg_reshape: bad size %lld in %s", (long long)shape[i],
                            sg_shape_str(ndim, shape, b, sizeof b));
        else if (shape[i] && known > INT64_MAX / shape[i])
            return sg_error(ctx, "sg_reshape: cannot view %s as %s: too many elements",
                            sg_shape_str(x->ndim, x->shape, a, sizeof a),
                            sg_shape_str(ndim, shape, b, sizeof b));
        else
            known *= shape[i];
    }
    if (infer >= 0) {
        if (known == 0 || n % known)
            return sg_error(ctx, "sg_reshape: cannot view %s as %s",
                            sg_shape_str(x->ndim, x->shape, a, sizeof a),
                            sg_shape_str(ndim, shape, b, sizeof b));
        ns[infer] = n / known;
        known *= ns[infer];
    }
    if (known != n)
        return sg_error(ctx, "sg_reshape: cannot view %s as %s: %lld elements vs %lld",
                        sg_shape_str(x->ndim, x->shape, a, sizeof a),
                        sg_shape_str(ndim, ns, b, sizeof b), (long long)n, (long long)known);
    /* The same element count, but an empty tensor can take a shape such as (0, 2^40, 2^40)
     * whose strides do not fit. */
    int64_t numel;
    if (n == 0 && !sg__shape_ok(ctx, "sg_reshape", ndim, ns, &numel))
        return NULL;
    int64_t st[SG_MAX_DIMS];
    if (!reshape_strides(x, ndim, ns, st))
        return sg_error(ctx,
                        "sg_reshape: cannot view %s with these strides as %s without a copy "
                        "(call sg_contiguous first)",
                        sg_shape_str(x->ndim, x->shape, a, sizeof a),
                        sg_shape_str(ndim, ns, b, sizeof b));
    sg_tensor *t = view_of(ctx, x);
    if (!t)
        return NULL;
    t->ndim = ndim;
    for (int i = 0; i < ndim; i++) {
        t->shape[i] = ns[i];
        t->stride[i] = st[i];
    }
    sg__record(ctx, t, SG_OP_RESHAPE, 1, &x);
    return t;
}

sg_tensor *sg_permute(sg_ctx *ctx, sg_tensor *x, const int *perm) {
    if (!sg__check_any(ctx, "sg_permute", 1, &x))
        return NULL;
    if (!perm)
        return sg_error(ctx, "sg_permute: perm is NULL");
    bool seen[SG_MAX_DIMS] = {0};
    for (int i = 0; i < x->ndim; i++) {
        if (perm[i] < 0 || perm[i] >= x->ndim || seen[perm[i]])
            return sg_error(ctx, "sg_permute: not a permutation of %d axes (entry %d is %d)",
                            x->ndim, i, perm[i]);
        seen[perm[i]] = true;
    }
    sg_tensor *t = view_of(ctx, x);
    if (!t)
        return NULL;
    for (int i = 0; i < x->ndim; i++) {
        t->shape[i] = x->shape[perm[i]];
        t->stride[i] = x->stride[perm[i]];
        t->iparam[i] = perm[i];
    }
    sg__record(ctx, t, SG_OP_PERMUTE, 1, &x);
    return t;
}

sg_tensor *sg_transpose(sg_ctx *ctx, sg_tensor *x, int axis0, int axis1) {
    if (!sg__check_any(ctx, "sg_transpose", 1, &x))
        return NULL;
    int a = sg__axis(ctx, "sg_transpose", axis0, x->ndim);
    int b = sg__axis(ctx, "sg_transpose", axis1, x->ndim);
    if (a < 0 || b < 0)
        return NULL;
    int perm[SG_MAX_DIMS];
    for (int i = 0; i < x->ndim; i++)
        perm[i] = i;
    perm[a] = b;
    perm[b] = a;
    return sg_permute(ctx, x, perm);
}

sg_tensor *sg_slice(sg_ctx *ctx, sg_tensor *x, int axis, int64_t start, int64_t len) {
    if (!sg__check_any(ctx, "sg_slice", 1, &x))
        return NULL;
    int a = sg__axis(ctx, "sg_slice", axis, x->ndim);
    if (a < 0)
        return NULL;
    if (start < 0 || len < 0 || start > x->shape[a] || len > x->shape[a] - start)
        return sg_error(ctx, "sg_slice: [%lld, %lld) out of range for axis %d of size %lld",
                        (long long)start, (long long)((uint64_t)start + (uint64_t)len), a,
                        (long long)x->shape[a]);
    sg_tensor *t = view_of(ctx, x);
    if (!t)
        return NULL;
    t->shape[a] = len;
    t->offset += start * x->stride[a];
    t->iparam[0] = a;
    t->iparam[1] = start;
    sg__record(ctx, t, SG_OP_SLICE, 1, &x);
    return t;
}

sg_tensor *sg_select(sg_ctx *ctx, sg_tensor *x, int axis, int64_t index) {
    if (!sg__check_any(ctx, "sg_select", 1, &x))
        return NULL;
    int a = sg__axis(ctx, "sg_select", axis, x->ndim);
    if (a < 0)
        return NULL;
    if (index < 0 || index >= x->shape[a])
        return sg_error(ctx, "sg_select: index %lld out of range for axis %d of size %lld",
                        (long long)index, a, (long long)x->shape[a]);
    /* One view node, not slice + reshape: the LSTM selects x[:, t, :] every step, so the
     * node count matters. */
    sg_tensor *t = view_of(ctx, x);
    if (!t)
        return NULL;
    t->offset += index * x->stride[a];
    t->ndim = x->ndim - 1;
    for (int i = a; i < t->ndim; i++) {
        t->shape[i] = x->shape[i + 1];
        t->stride[i] = x->stride[i + 1];
    }
    t->shape[t->ndim] = t->stride[t->ndim] = 0;
    t->iparam[0] = a;
    t->iparam[1] = index;
    sg__record(ctx, t, SG_OP_SELECT, 1, &x);
    return t;
}

int sg_split_sizes(sg_ctx *ctx, sg_tensor *x, int axis, int n, const int64_t *sizes,
                   sg_tensor **out) {
    if (!sg__check_any(ctx, "sg_split", 1, &x))
        return -1;
    int a = sg__axis(ctx, "sg_split", axis, x->ndim);
    if (a < 0)
        return -1;
    if (n <= 0 || !sizes || !out) {
        sg_error(ctx, "sg_split: need n > 0 parts, sizes and out (got n = %d)", n);
        return -1;
    }
    int64_t total = 0;
    for (int i = 0; i < n; i++) {
        if (sizes[i] < 0) {
            sg_error(ctx, "sg_split: negative size %lld for part %d", (long long)sizes[i], i);
            return -1;
        }
        if (sizes[i] > INT64_MAX - total) {
            sg_error(ctx, "sg_split: sizes overflow");
            return -1;
        }
        total += sizes[i];
    }
    if (total != x->shape[a]) {
        sg_error(ctx, "sg_split: sizes sum to %lld but axis %d has size %lld", (long long)total, a,
                 (long long)x->shape[a]);
        return -1;
    }
    int64_t start = 0;
    for (int i = 0; i < n; i++) {
        out[i] = sg_slice(ctx, x, a, start, sizes[i]);
        if (!out[i])
            return -1;
        start += sizes[i];
    }
    return 0;
}

int sg_split(sg_ctx *ctx, sg_tensor *x, int axis, int n, sg_tensor **out) {
    if (!sg__check_any(ctx, "sg_split", 1, &x))
        return -1;
    int a = sg__axis(ctx, "sg_split", axis, x->ndim);
    if (a < 0)
        return -1;
    if (n <= 0 || x->shape[a] % n) {
        sg_error(ctx, "sg_split: axis %d of size %lld does not split into %d equal parts", a,
                 (long long)x->shape[a], n);
        return -1;
    }
    int64_t sizes[64];
    if (n > 64) {
        sg_error(ctx, "sg_split: at most 64 equal parts (asked for %d)", n);
        return -1;
    }
    for (int i = 0; i < n; i++)
        sizes[i] = x->shape[a] / n;
    return sg_split_sizes(ctx, x, a, n, sizes, out);
}

sg_tensor *sg_expand(sg_ctx *ctx, sg_tensor *x, int ndim, const int64_t *shape) {
    if (!sg__check_any(ctx, "sg_expand", 1, &x))
        return NULL;
    char a[96], b[96];
    if (ndim < x->ndim || ndim > SG_MAX_DIMS)
        return sg_error(ctx, "sg_expand: cannot broadcast %s to %d dimensions",
                        sg_shape_str(x->ndim, x->shape, a, sizeof a), ndim);
    if (ndim && !shape)
        return sg_error(ctx, "sg_expand: shape is NULL for %d dimensions", ndim);
    int lead = ndim - x->ndim;
    for (int i = 0; i < ndim; i++) {
        int64_t xs = i < lead ? 1 : x->shape[i - lead];
        if (shape[i] < 0 || (xs != shape[i] && xs != 1))
            return sg_error(ctx, "sg_expand: cannot broadcast %s to %s",
                            sg_shape_str(x->ndim, x->shape, a, sizeof a),
                            sg_shape_str(ndim, shape, b, sizeof b));
    }
    /* A view costs no memory, but every walk over it counts its elements in int64. */
    int64_t n;
    if (!sg__shape_ok(ctx, "sg_expand", ndim, shape, &n))
        return NULL;
    sg_tensor *t = view_of(ctx, x);
    if (!t)
        return NULL;
    t->ndim = ndim;
    for (int i = 0; i < ndim; i++) {
        int64_t xs = i < lead ? 1 : x->shape[i - lead];
        t->shape[i] = shape[i];
        t->stride[i] = (i < lead || xs != shape[i]) ? 0 : x->stride[i - lead];
    }
    sg__record(ctx, t, SG_OP_EXPAND, 1, &x);
    return t;
}

sg_tensor *sg_contiguous(sg_ctx *ctx, sg_tensor *x) {
    if (!sg__check_any(ctx, "sg_contiguous", 1, &x))
        return NULL;
    if (sg_is_contiguous(x))
        return x;
    sg_tensor *t = sg__new(ctx, "sg_contiguous", x->dtype, x->ndim, x->shape, false);
    if (!t)
        return NULL;
    sg__strided(false, x->dtype, sg_data(t), t->stride, sg_data(x), x->stride, x->ndim, x->shape);
    sg__record(ctx, t, SG_OP_CONTIGUOUS, 1, &x);
    return t;
}

/* A new leaf header over x's elements: sg__view_of gives a header with fresh flags (no
 * requires-grad), op NONE and no inputs, which is all that detaching is. Not recorded. A
 * parameter is never marked by recording (ops.h, sg__save), so nothing would stop an
 * in-place op from writing it through this view: the view says so itself (and view_of passes
 * that on to views of it). */
sg_tensor *sg_detach(sg_ctx *ctx, sg_tensor *x) {
    if (!sg__check_any(ctx, "sg_detach", 1, &x))
        return NULL;
    sg_tensor *t = view_of(ctx, x);
    if (t && (sg__view_base(x)->flags & (SG_FLAG_PARAM | SG_FLAG_NO_WRITE)))
        t->flags |= SG_FLAG_NO_WRITE;
    return t;
}

/* ---- view backwards ------------------------------------------------------------------ */

/* out is x reshaped: the same elements in the same row-major order, so the gradient is a
 * flat add of out->grad into x's (both contiguous). */
void sg__bw_reshape(sg_ctx *ctx, sg_tensor *out) {
    sg_tensor *x = out->src[0];
    if (!sg__needs(out, 0))
        return;
    sg_tensor *G = sg__grad(ctx, x);
    if (!G)
        return;
    int64_t n = sg_numel(x);
    sg__strided(true, x->dtype, sg_data(G), (const int64_t[]){1}, sg_data(out->grad),
                (const int64_t[]){1}, 1, &n);
}

/* out.shape[i] = x.shape[perm[i]] (perm in iparam): walk out->grad in out's order and
 * address x's gradient with its strides permuted the same way. */
void sg__bw_permute(sg_ctx *ctx, sg_tensor *out) {
    sg_tensor *x = out->src[0];
    if (!sg__needs(out, 0))
        return;
    sg_tensor *G = sg__grad(ctx, x);
    if (!G)
        return;
    int64_t st[SG_MAX_DIMS];
    for (int i = 0; i < out->ndim; i++)
        st[i] = G->stride[out->iparam[i]];
    sg__strided(true, x->dtype, sg_data(G), st, sg_data(out->grad), out->grad->stride, out->ndim,
                out->shape);
}

/* out = x[..., start:start+len, ...] along axis (iparam[0], iparam[1]), or x[..., index, ...]
 * (sg_select, which drops the axis): add out->grad into the same part of x's gradient. */
void sg__bw_slice(sg_ctx *ctx, sg_tensor *out) {
    sg_tensor *x = out->src[0];
    if (!sg__needs(out, 0) || (out->grad->flags & SG_FLAG_GRAD_ALIAS)) /* already in x's */
        return;
    sg_tensor *G = sg__grad(ctx, x);
    if (!G)
        return;
    int axis = (int)out->iparam[0];
    char *base =
        (char *)sg_data(G) + out->iparam[1] * G->stride[axis] * (int64_t)sg_dtype_size(x->dtype);
    int64_t st[SG_MAX_DIMS];
    const int64_t *gst = G->stride;
    if (out->ndim < x->ndim) { /* select: the axis was dropped, so drop its stride too */
        for (int i = 0, k = 0; i < x->ndim; i++)
            if (i != axis)
                st[k++] = G->stride[i];
        gst = st;
    }
    sg__strided(true, x->dtype, base, gst, sg_data(out->grad), out->grad->stride, out->ndim,
                out->shape);
}

/* out = x broadcast to a bigger shape: sum out->grad over the broadcast dims. */
void sg__bw_expand(sg_ctx *ctx, sg_tensor *out) { sg__acc_grad(ctx, out->src[0], out->grad); }

/* out = a contiguous copy of x: same shape, the gradient passes through. */
void sg__bw_contiguous(sg_ctx *ctx, sg_tensor *out) { sg__acc_grad(ctx, out->src[0], out->grad); }

/* ---- concat -------------------------------------------------------------------------- */

/* "(2, *)": a shape with the entry at `axis` shown as "*". */
static const char *shape_star(int ndim, const int64_t *shape, int axis, char *buf, size_t n) {
    size_t k = (size_t)snprintf(buf, n, "(");
    for (int i = 0; i < ndim && k < n; i++) {
        if (i == axis)
            k += (size_t)snprintf(buf + k, n - k, "%s*", i ? ", " : "");
        else
            k += (size_t)snprintf(buf + k, n - k, "%s%lld", i ? ", " : "", (long long)shape[i]);
    }
    if (k < n)
        snprintf(buf + k, n - k, ndim == 1 ? ",)" : ")");
    return buf;
}

/* xs[i] is (..., n_i, ...) with n_i on `axis`, all other dims equal; out is
 * (..., sum n_i, ...). Each input is copied into its slab of out with one strided copy:
 * contiguous inputs coalesce to one memcpy-like row per outer index, and a strided view
 * such as x_t = x[:, t, :] of (B, T, I) (rows contiguous, T*I apart) copies row by row
 * without any per-element index arithmetic. */
sg_tensor *sg_concat(sg_ctx *ctx, int n, sg_tensor *const *xs, int axis) {
    if (!ctx)
        return NULL;
    if (n < 1)
        return sg_error(ctx, "sg_concat: need at least one input (got n = %d)", n);
    if (!xs)
        return sg_error(ctx, "sg_concat: xs is NULL");
    if (!sg__check_any(ctx, "sg_concat", n, xs))
        return NULL;
    const sg_tensor *x0 = xs[0];
    int nd = x0->ndim;
    int a = sg__axis(ctx, "sg_concat", axis, nd);
    if (a < 0)
        return NULL;
    int64_t shape[SG_MAX_DIMS];
    memcpy(shape, x0->shape, sizeof shape);
    shape[a] = 0;
    for (int i = 0; i < n; i++) {
        const sg_tensor *x = xs[i];
        char s[96], e[96], s0[96];
        bool ok = x->ndim == nd;
        for (int d = 0; ok && d < nd; d++)
            ok = d == a || x->shape[d] == x0->shape[d];
        if (!ok && x->ndim != nd)
            return sg_error(ctx,
                            "sg_concat: input %d has shape %s, expected %d dimensions like "
                            "input 0's %s",
                            i, sg_shape_str(x->ndim, x->shape, s, sizeof s), nd,
                            sg_shape_str(nd, x0->shape, s0, sizeof s0));
        if (!ok)
            return sg_error(ctx,
                            "sg_concat: input %d has shape %s, expected %s to match input "
                            "0's %s on every axis but %d",
                            i, sg_shape_str(x->ndim, x->shape, s, sizeof s),
                            shape_star(nd, x0->shape, a, e, sizeof e),
                            sg_shape_str(nd, x0->shape, s0, sizeof s0), a);
        if (__builtin_add_overflow(shape[a], x->shape[a], &shape[a]))
            return sg_error(ctx, "sg_concat: the sizes along axis %d overflow (input %d)", a, i);
    }
    sg_tensor *out = sg__new(ctx, "sg_concat", x0->dtype, nd, shape, false);
    if (!out)
        return NULL;
    size_t es = sg_dtype_size(x0->dtype);
    int64_t off = 0;
    for (int i = 0; i < n; i++) {
        const sg_tensor *x = xs[i];
        char *dst = (char *)sg_data(out) + off * out->stride[a] * (int64_t)es;
        sg__strided(false, x->dtype, dst, out->stride, sg_data(x), x->stride, nd, x->shape);
        off += x->shape[a];
    }
    /* sg__record keeps only SG_MAX_SRC inputs in src[]: the node's full input list lives in
     * aux (see sg__node_inputs), for backward, DOT and anomaly reports. */
    if (sg__any_requires_grad(ctx, n, xs) || ctx->tape.anomaly) {
        sg_tensor **in = sg_arena_alloc(ctx, (size_t)n * sizeof *in);
        if (!in)
            return NULL;
        memcpy(in, xs, (size_t)n * sizeof *in);
        out->aux = in;
    }
    out->iparam[0] = a;
    out->iparam[1] = n;
    return sg__finish(ctx, out, SG_OP_CONCAT, n, xs);
}

/* Each input's gradient is its slab of out->grad, added with one strided loop. An input
 * given twice gets both slabs. */
void sg__bw_concat(sg_ctx *ctx, sg_tensor *out) {
    sg_tensor *const *in;
    int n = sg__node_inputs(out, &in), a = (int)out->iparam[0];
    const sg_tensor *g = out->grad;
    size_t es = sg_dtype_size(out->dtype);
    int64_t off = 0;
    for (int i = 0; i < n; i++) {
        sg_tensor *x = in[i];
        if (x->flags & SG_FLAG_REQUIRES_GRAD) {
            sg_tensor *G = sg__grad(ctx, x);
            if (!G)
                return;
            const char *src = (const char *)sg_data(g) + off * g->stride[a] * (int64_t)es;
            sg__strided(true, x->dtype, sg_data(G), G->stride, src, g->stride, x->ndim, x->shape);
        }
        off += x->shape[a];
    }
}

/* ---- stack --------------------------------------------------------------------------- */

/* n tensors of one shape S -> S with a new dim of size n at `axis`: each input reshaped to
 * have a size-1 dim there (a view), then concatenated. Differentiable through those two. */
sg_tensor *sg_stack(sg_ctx *ctx, int n, sg_tensor *const *xs, int axis) {
    if (!ctx)
        return NULL;
    if (n < 1)
        return sg_error(ctx, "sg_stack: need at least one input (got n = %d)", n);
    if (!xs)
        return sg_error(ctx, "sg_stack: xs is NULL");
    if (!sg__check_any(ctx, "sg_stack", n, xs))
        return NULL;
    const sg_tensor *x0 = xs[0];
    int nd = x0->ndim;
    char s[96], s0[96];
    if (nd + 1 > SG_MAX_DIMS)
        return sg_error(ctx,
                        "sg_stack: inputs of shape %s already have the maximum %d "
                        "dimensions",
                        sg_shape_str(nd, x0->shape, s0, sizeof s0), SG_MAX_DIMS);
    int a = sg__axis(ctx, "sg_stack", axis, nd + 1);
    if (a < 0)
        return NULL;
    for (int i = 1; i < n; i++) {
        const sg_tensor *x = xs[i];
        bool ok = x->ndim == nd;
        for (int d = 0; ok && d < nd; d++)
            ok = x->shape[d] == x0->shape[d];
        if (!ok)
            return sg_error(ctx, "sg_stack: input %d has shape %s, expected %s like input 0", i,
                            sg_shape_str(x->ndim, x->shape, s, sizeof s),
                            sg_shape_str(nd, x0->shape, s0, sizeof s0));
    }
    int64_t shape[SG_MAX_DIMS], n_out;
    for (int d = 0, k = 0; d <= nd; d++)
        shape[d] = d == a ? n : x0->shape[k++];
    if (!sg__shape_ok(ctx, "sg_stack", nd + 1, shape, &n_out))
        return NULL;
    shape[a] = 1;
    sg_tensor *local[16], **parts = local;
    if (n > 16 && !(parts = sg_arena_alloc(ctx, (size_t)n * sizeof *parts)))
        return NULL;
    for (int i = 0; i < n; i++)
        if (!(parts[i] = sg_reshape(ctx, xs[i], nd + 1, shape)))
            return NULL;
    return sg_concat(ctx, n, parts, a);
}
