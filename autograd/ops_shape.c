/* Backward of the view ops (reshape, permute, slice, expand; forward in tensor/tensor.c),
 * of contiguous, and the joining ops: concat (forward and backward) and stack (reshape +
 * concat, no backward of its own).
 *
 * A view's gradient flows back through the same index map the view applies: each backward
 * is one strided accumulate between the two index spaces (addressing the input's gradient
 * through its strides). A slice's gradient is usually not a buffer of its own but a view
 * into its input's gradient (sg__grad, autograd/tape.c); then sg__bw_slice does not run. */
#include <string.h>

#include "ops.h"

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

/* out = x[..., start:start+len, ...] along axis (iparam[0], iparam[1]): add out->grad into
 * the same slice of x's gradient. */
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
    if (out->iparam[2]) { /* sg_select: the axis was dropped, so drop its stride too */
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
    if (!sg__check_inputs(ctx, "sg_concat", n, xs))
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
        shape[a] += x->shape[a];
    }
    sg_tensor *out = sg__new(ctx, x0->dtype, nd, shape, false);
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
    if (sg__any_requires_grad(ctx, n, xs) || ctx->anomaly) {
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
    if (!sg__check_inputs(ctx, "sg_stack", n, xs))
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
    int64_t shape[SG_MAX_DIMS];
    for (int d = 0, k = 0; d <= nd; d++)
        shape[d] = d == a ? 1 : x0->shape[k++];
    sg_tensor *local[16], **parts = local;
    if (n > 16 && !(parts = sg_arena_alloc(ctx, (size_t)n * sizeof *parts)))
        return NULL;
    for (int i = 0; i < n; i++)
        if (!(parts[i] = sg_reshape(ctx, xs[i], nd + 1, shape)))
            return NULL;
    return sg_concat(ctx, n, parts, a);
}
