/* Reductions and normalisations along an axis: sum (everything / along an axis), mean
 * (derived), softmax, log_softmax. Each op's forward and backward sit side by side. The
 * losses are in ops_loss.c.
 *
 * Layout: along `axis`, a tensor of shape (..., L, ...) is seen as (outer, L, inner) with
 * outer = prod(shape[:axis]), inner = prod(shape[axis+1:]); in contiguous memory element
 * (o, k, j) is at (o * L + k) * inner + j. Outputs and gradients are always contiguous, so
 * every backward works on that layout directly. Forwards accept any strided view
 * (transposed, sliced, expanded with stride 0) with a fast path for contiguous data.
 *
 * Precision: every sum of float32 data is accumulated in double (sum, the softmax
 * normaliser, the dot products of the softmax backwards). It costs one
 * conversion per element, which is cheap next to the memory traffic, and removes the
 * O(n eps) drift of long float sums (2^20 copies of 0.1f sum to the float nearest the exact
 * value, 104857.6; a float accumulator gives 105891.8, 1% off).
 *
 * Empty inputs: sum is 0; mean is NaN, like NumPy's 0/0. */
#include <math.h>
#include <string.h>

#include "ops.h"

/* ---- helpers ------------------------------------------------------------------------- */

/* (outer, L, inner) split of x's shape around `axis`. */
static void split_axis(const sg_tensor *x, int axis, int64_t *outer, int64_t *len, int64_t *inner) {
    int64_t o = 1, i = 1;
    for (int d = 0; d < axis; d++)
        o *= x->shape[d];
    for (int d = axis + 1; d < x->ndim; d++)
        i *= x->shape[d];
    *outer = o;
    *len = x->shape[axis];
    *inner = i;
}

/* An iterator over the rows of x along one axis: every combination of the other indices,
 * in row-major order, with i0 the storage offset of the row's first element in x and i1 in
 * a second tensor of x's shape with strides sb (NULL: none). */
static void rows_iter(sg_iter *it, const sg_tensor *x, const int64_t *sb, int axis) {
    int64_t shape[SG_MAX_DIMS];
    for (int d = 0; d < x->ndim; d++)
        shape[d] = d == axis ? 1 : x->shape[d];
    sg__iter_init(it, x->ndim, shape, sb ? 2 : 1, (const int64_t *const[]){x->stride, sb});
}

/* The last axis as rows for an elementwise walk: its length and x's stride along it
 * (a 0-d tensor is one row of one element). */
static inline void last_row(const sg_tensor *x, int64_t *len, int64_t *stride) {
    *len = x->ndim ? x->shape[x->ndim - 1] : 1;
    *stride = x->ndim ? x->stride[x->ndim - 1] : 0;
}

/* Sum of p[0], p[st], ..., p[(n-1) st] in double. On contiguous data four accumulators
 * break the add-latency chain (with one, every add waits for the previous one to finish)
 * and also shorten each chain's rounding. bench/README.md has the measurement. */
#define DEF_RSUM(T, S)                                                                             \
    static inline double rsum_##S(const T *p, int64_t n, int64_t st) {                             \
        double s0 = 0, s1 = 0, s2 = 0, s3 = 0;                                                     \
        int64_t k = 0;                                                                             \
        if (st == 1)                                                                               \
            for (; k + 4 <= n; k += 4) {                                                           \
                s0 += p[k];                                                                        \
                s1 += p[k + 1];                                                                    \
                s2 += p[k + 2];                                                                    \
                s3 += p[k + 3];                                                                    \
            }                                                                                      \
        for (; k < n; k++)                                                                         \
            s0 += p[k * st];                                                                       \
        return (s0 + s1) + (s2 + s3);                                                              \
    }
DEF_RSUM(float, f32)
DEF_RSUM(double, f64)

/* ---- sum ----------------------------------------------------------------------------- */

/* x (any strides) summed along `axis` into y, contiguous (outer, inner); axis < 0 sums
 * everything into y[0]. acc: `inner` doubles of scratch for the contiguous path. */
#define DEF_SUM_FW(T, S)                                                                           \
    static void sum_fw_##S(const sg_tensor *x, int axis, T *y, double *acc) {                      \
        const T *xp = sg_data(x);                                                                  \
        int64_t n = sg_numel(x);                                                                   \
        if (axis < 0 && sg_is_contiguous(x)) {                                                     \
            y[0] = (T)rsum_##S(xp, n, 1);                                                          \
            return;                                                                                \
        }                                                                                          \
        if (axis < 0) { /* strided (so n > 0, ndim > 0): rows along the last axis */               \
            int64_t L, st;                                                                         \
            last_row(x, &L, &st);                                                                  \
            sg_iter it;                                                                            \
            rows_iter(&it, x, NULL, x->ndim - 1);                                                  \
            double s = 0;                                                                          \
            SG_ITER_LOOP(&it, s += rsum_##S(xp + i0, L, st));                                      \
            y[0] = (T)s;                                                                           \
            return;                                                                                \
        }                                                                                          \
        int64_t outer, L, inner;                                                                   \
        split_axis(x, axis, &outer, &L, &inner);                                                   \
        if (sg_is_contiguous(x) && inner > 1) {                                                    \
            /* Walk memory in order, carrying `inner` sums at once (vectorises), rather than       \
             * striding down each column. */                                                       \
            for (int64_t o = 0; o < outer; o++) {                                                  \
                const T *xo = xp + o * L * inner;                                                  \
                for (int64_t j = 0; j < inner; j++)                                                \
                    acc[j] = 0;                                                                    \
                for (int64_t k = 0; k < L; k++)                                                    \
                    for (int64_t j = 0; j < inner; j++)                                            \
                        acc[j] += xo[k * inner + j];                                               \
                for (int64_t j = 0; j < inner; j++)                                                \
                    y[o * inner + j] = (T)acc[j];                                                  \
            }                                                                                      \
            return;                                                                                \
        }                                                                                          \
        /* Contiguous with inner == 1 (rows are contiguous), or any strided view. */               \
        sg_iter it;                                                                                \
        rows_iter(&it, x, NULL, axis);                                                             \
        int64_t st = x->stride[axis], r = 0;                                                       \
        SG_ITER_LOOP(&it, y[r++] = (T)rsum_##S(xp + i0, L, st));                                   \
    }
DEF_SUM_FW(float, f32)
DEF_SUM_FW(double, f64)

/* Shared by sg_sum and sg_sum_axis; axis is normalised, or -1 for everything. */
static sg_tensor *sum_impl(sg_ctx *ctx, const char *fn, sg_tensor *x, int axis, bool keepdims) {
    int64_t shape[SG_MAX_DIMS] = {0}, inner = 1; /* zeroed for -Wmaybe-uninitialized */
    int nd = 0;
    if (axis >= 0) {
        for (int d = 0; d < x->ndim; d++) {
            if (d != axis)
                shape[nd++] = x->shape[d];
            else if (keepdims)
                shape[nd++] = 1;
            if (d > axis)
                inner *= x->shape[d];
        }
    }
    sg_tensor *y = sg__new(ctx, fn, x->dtype, nd, shape, false);
    /* scratch only for the contiguous inner > 1 path of the kernel */
    double *acc = inner > 1 ? sg_arena_alloc(ctx, (size_t)inner * sizeof(double)) : NULL;
    if (!y || (inner > 1 && !acc))
        return NULL;
    if (x->dtype == SG_F32)
        sum_fw_f32(x, axis, sg_data(y), acc);
    else
        sum_fw_f64(x, axis, sg_data(y), acc);
    y->iparam[0] = axis;
    y->iparam[1] = keepdims;
    return sg__finish(ctx, y, SG_OP_SUM, 1, &x);
}

sg_tensor *sg_sum(sg_ctx *ctx, sg_tensor *x) {
    if (!sg__check_inputs(ctx, "sg_sum", 1, &x))
        return NULL;
    return sum_impl(ctx, "sg_sum", x, -1, false);
}

sg_tensor *sg_sum_axis(sg_ctx *ctx, sg_tensor *x, int axis, bool keepdims) {
    if (!sg__check_inputs(ctx, "sg_sum_axis", 1, &x))
        return NULL;
    int a = sg__axis(ctx, "sg_sum_axis", axis, x->ndim);
    if (a < 0)
        return NULL;
    return sum_impl(ctx, "sg_sum_axis", x, a, keepdims);
}

/* g is (outer, inner), dx is (outer, L, inner), both contiguous: dx[o, k, j] += g[o, j]
 * (the gradient broadcast back along the summed axis). */
#define DEF_SUM_BW(T, S)                                                                           \
    static void sum_bw_##S(const T *g, T *dx, int64_t outer, int64_t L, int64_t inner) {           \
        if (inner == 1) {                                                                          \
            for (int64_t o = 0; o < outer; o++) {                                                  \
                T go = g[o], *d = dx + o * L;                                                      \
                for (int64_t k = 0; k < L; k++)                                                    \
                    d[k] += go;                                                                    \
            }                                                                                      \
            return;                                                                                \
        }                                                                                          \
        for (int64_t o = 0; o < outer; o++)                                                        \
            for (int64_t k = 0; k < L; k++) {                                                      \
                T *d = dx + (o * L + k) * inner;                                                   \
                const T *go = g + o * inner;                                                       \
                for (int64_t j = 0; j < inner; j++)                                                \
                    d[j] += go[j];                                                                 \
            }                                                                                      \
    }
DEF_SUM_BW(float, f32)
DEF_SUM_BW(double, f64)

void sg__bw_sum(sg_ctx *ctx, sg_tensor *out) {
    sg_tensor *x = out->src[0];
    if (!sg__needs(out, 0))
        return;
    sg_tensor *G = sg__grad(ctx, x);
    if (!G)
        return;
    int axis = (int)out->iparam[0];
    int64_t outer = 1, L = sg_numel(x), inner = 1; /* axis -1: everything is one row */
    if (axis >= 0)
        split_axis(x, axis, &outer, &L, &inner);
    if (x->dtype == SG_F32)
        sum_bw_f32(sg_data(out->grad), sg_data(G), outer, L, inner);
    else
        sum_bw_f64(sg_data(out->grad), sg_data(G), outer, L, inner);
}

/* ---- mean (derived: sum, then scale by 1/n; no backward of its own) ------------------ */

sg_tensor *sg_mean(sg_ctx *ctx, sg_tensor *x) {
    if (!sg__check_inputs(ctx, "sg_mean", 1, &x))
        return NULL;
    int64_t n = sg_numel(x);
    /* Empty: 0 * NaN = NaN, as NumPy (written out: 1.0 / 0 would be inf, and 0 * inf NaN). */
    return sg_scale(ctx, sg_sum(ctx, x), n ? 1.0 / (double)n : NAN);
}

sg_tensor *sg_mean_axis(sg_ctx *ctx, sg_tensor *x, int axis, bool keepdims) {
    if (!sg__check_inputs(ctx, "sg_mean_axis", 1, &x))
        return NULL;
    int a = sg__axis(ctx, "sg_mean_axis", axis, x->ndim);
    if (a < 0)
        return NULL;
    int64_t n = x->shape[a];
    return sg_scale(ctx, sg_sum_axis(ctx, x, a, keepdims), n ? 1.0 / (double)n : NAN);
}

/* ---- softmax and log_softmax --------------------------------------------------------- */

/* src and y are contiguous (outer, L, inner), and may be the same buffer. Three passes so
 * that exp runs once, as one SLEEF call over the whole tensor: (A) y = src - max along the
 * axis (the max makes every exponent <= 0: no overflow, and the largest term is exactly 1,
 * so the normaliser is in [1, L]); (B) e = exp(y); (C) normalise: softmax y = e / sum(e),
 * log_softmax y = y - log(sum(e)). For softmax e is y (in place); for log_softmax e is
 * numel scratch. m: `inner` T, s: `inner` doubles of scratch, unused (NULL) when inner == 1:
 * then each row is contiguous and its max and sum live in registers. */
#define DEF_SOFTMAX_FW(T, S)                                                                       \
    static void softmax_fw_##S(const T *src, T *y, T *e, T *m, double *s, int64_t outer,           \
                               int64_t L, int64_t inner, bool lg) {                                \
        int64_t blk = L * inner;                                                                   \
        if (outer * blk == 0)                                                                      \
            return;                                                                                \
        if (inner == 1) { /* contiguous rows: max and sum stay in registers */                     \
            for (int64_t o = 0; o < outer; o++) {                                                  \
                const T *xo = src + o * L;                                                         \
                T *yo = y + o * L, mx = xo[0];                                                     \
                for (int64_t k = 1; k < L; k++)                                                    \
                    mx = xo[k] > mx ? xo[k] : mx;                                                  \
                for (int64_t k = 0; k < L; k++)                                                    \
                    yo[k] = xo[k] - mx;                                                            \
            }                                                                                      \
            sg_vexp_##S((size_t)(outer * L), y, e);                                                \
            for (int64_t o = 0; o < outer; o++) {                                                  \
                const T *eo = e + o * L;                                                           \
                T *yo = y + o * L;                                                                 \
                double sum = rsum_##S(eo, L, 1);                                                   \
                if (lg) {                                                                          \
                    double ls = log(sum);                                                          \
                    for (int64_t k = 0; k < L; k++)                                                \
                        yo[k] = (T)(yo[k] - ls);                                                   \
                } else {                                                                           \
                    double inv = 1.0 / sum;                                                        \
                    for (int64_t k = 0; k < L; k++)                                                \
                        yo[k] = (T)(eo[k] * inv);                                                  \
                }                                                                                  \
            }                                                                                      \
            return;                                                                                \
        }                                                                                          \
        for (int64_t o = 0; o < outer; o++) {                                                      \
            const T *xo = src + o * blk;                                                           \
            T *yo = y + o * blk;                                                                   \
            for (int64_t j = 0; j < inner; j++)                                                    \
                m[j] = xo[j];                                                                      \
            for (int64_t k = 1; k < L; k++)                                                        \
                for (int64_t j = 0; j < inner; j++)                                                \
                    m[j] = xo[k * inner + j] > m[j] ? xo[k * inner + j] : m[j];                    \
            for (int64_t k = 0; k < L; k++)                                                        \
                for (int64_t j = 0; j < inner; j++)                                                \
                    yo[k * inner + j] = xo[k * inner + j] - m[j];                                  \
        }                                                                                          \
        sg_vexp_##S((size_t)(outer * blk), y, e);                                                  \
        for (int64_t o = 0; o < outer; o++) {                                                      \
            const T *eo = e + o * blk;                                                             \
            T *yo = y + o * blk;                                                                   \
            for (int64_t j = 0; j < inner; j++)                                                    \
                s[j] = 0;                                                                          \
            for (int64_t k = 0; k < L; k++)                                                        \
                for (int64_t j = 0; j < inner; j++)                                                \
                    s[j] += eo[k * inner + j];                                                     \
            if (lg) {                                                                              \
                for (int64_t j = 0; j < inner; j++)                                                \
                    s[j] = log(s[j]);                                                              \
                for (int64_t k = 0; k < L; k++)                                                    \
                    for (int64_t j = 0; j < inner; j++)                                            \
                        yo[k * inner + j] = (T)(yo[k * inner + j] - s[j]);                         \
            } else {                                                                               \
                for (int64_t j = 0; j < inner; j++)                                                \
                    s[j] = 1.0 / s[j];                                                             \
                for (int64_t k = 0; k < L; k++)                                                    \
                    for (int64_t j = 0; j < inner; j++)                                            \
                        yo[k * inner + j] = (T)(eo[k * inner + j] * s[j]);                         \
            }                                                                                      \
        }                                                                                          \
    }
DEF_SOFTMAX_FW(float, f32)
DEF_SOFTMAX_FW(double, f64)

static sg_tensor *softmax_impl(sg_ctx *ctx, const char *fn, sg_tensor *x, int axis, bool lg) {
    if (!sg__check_inputs(ctx, fn, 1, &x))
        return NULL;
    int a = sg__axis(ctx, fn, axis, x->ndim);
    if (a < 0)
        return NULL;
    int64_t outer, L, inner, n = sg_numel(x);
    split_axis(x, a, &outer, &L, &inner);
    size_t es = sg_dtype_size(x->dtype);
    sg_tensor *y = sg__new(ctx, fn, x->dtype, x->ndim, x->shape, false);
    bool blk = inner > 1; /* the (L, inner) block path needs per-column scratch */
    void *m = blk ? sg_arena_alloc(ctx, (size_t)inner * es) : NULL;
    double *s = blk ? sg_arena_alloc(ctx, (size_t)inner * sizeof(double)) : NULL;
    void *e = lg ? sg_arena_alloc(ctx, (size_t)n * es) : (y ? sg_data(y) : NULL);
    if (!y || (blk && (!m || !s)) || !e)
        return NULL;
    /* A strided x is first gathered into y, then normalised in place. */
    const void *src = sg_data(x);
    if (!sg_is_contiguous(x)) {
        sg__strided(false, x->dtype, sg_data(y), y->stride, sg_data(x), x->stride, x->ndim,
                    x->shape);
        src = sg_data(y);
    }
    if (x->dtype == SG_F32)
        softmax_fw_f32(src, sg_data(y), e, m, s, outer, L, inner, lg);
    else
        softmax_fw_f64(src, sg_data(y), e, m, s, outer, L, inner, lg);
    y->iparam[0] = a;
    return sg__finish(ctx, y, lg ? SG_OP_LOG_SOFTMAX : SG_OP_SOFTMAX, 1, &x);
}

sg_tensor *sg_softmax(sg_ctx *ctx, sg_tensor *x, int axis) {
    return softmax_impl(ctx, "sg_softmax", x, axis, false);
}

sg_tensor *sg_log_softmax(sg_ctx *ctx, sg_tensor *x, int axis) {
    return softmax_impl(ctx, "sg_log_softmax", x, axis, true);
}

/* y = softmax(x), g = dL/dy, dx: all contiguous (outer, L, inner); d: `inner` doubles.
 * dx += y * (g - sum_k g y): the Jacobian diag(y) - y y^T applied to g. */
#define DEF_SOFTMAX_BW(T, S)                                                                       \
    static void softmax_bw_##S(const T *y, const T *g, T *dx, double *d, int64_t outer, int64_t L, \
                               int64_t inner) {                                                    \
        int64_t blk = L * inner;                                                                   \
        if (inner == 1) { /* contiguous rows: the dot product stays in a register */               \
            for (int64_t o = 0; o < outer; o++) {                                                  \
                const T *yo = y + o * L, *go = g + o * L;                                          \
                T *dxo = dx + o * L;                                                               \
                double dot = 0;                                                                    \
                for (int64_t k = 0; k < L; k++)                                                    \
                    dot += (double)go[k] * yo[k];                                                  \
                for (int64_t k = 0; k < L; k++)                                                    \
                    dxo[k] += (T)(yo[k] * (go[k] - dot));                                          \
            }                                                                                      \
            return;                                                                                \
        }                                                                                          \
        for (int64_t o = 0; o < outer; o++) {                                                      \
            const T *yo = y + o * blk, *go = g + o * blk;                                          \
            T *dxo = dx + o * blk;                                                                 \
            for (int64_t j = 0; j < inner; j++)                                                    \
                d[j] = 0;                                                                          \
            for (int64_t k = 0; k < L; k++)                                                        \
                for (int64_t j = 0; j < inner; j++)                                                \
                    d[j] += (double)go[k * inner + j] * yo[k * inner + j];                         \
            for (int64_t k = 0; k < L; k++)                                                        \
                for (int64_t j = 0; j < inner; j++) {                                              \
                    int64_t i = k * inner + j;                                                     \
                    dxo[i] += (T)(yo[i] * (go[i] - d[j]));                                         \
                }                                                                                  \
        }                                                                                          \
    }
DEF_SOFTMAX_BW(float, f32)
DEF_SOFTMAX_BW(double, f64)

void sg__bw_softmax(sg_ctx *ctx, sg_tensor *out) {
    sg_tensor *x = out->src[0];
    if (!sg__needs(out, 0))
        return;
    int64_t outer, L, inner;
    split_axis(x, (int)out->iparam[0], &outer, &L, &inner);
    sg_tensor *G = sg__grad(ctx, x);
    double *d = inner > 1 ? sg_arena_alloc(ctx, (size_t)inner * sizeof(double)) : NULL;
    if (!G || (inner > 1 && !d))
        return;
    if (x->dtype == SG_F32)
        softmax_bw_f32(sg_data(out), sg_data(out->grad), sg_data(G), d, outer, L, inner);
    else
        softmax_bw_f64(sg_data(out), sg_data(out->grad), sg_data(G), d, outer, L, inner);
}

/* y = log_softmax(x), e = exp(y) = softmax(x), g = dL/dy, dx: contiguous (outer, L, inner);
 * d: `inner` doubles. dx += g - softmax * sum_k g. */
#define DEF_LOG_SOFTMAX_BW(T, S)                                                                   \
    static void log_softmax_bw_##S(const T *e, const T *g, T *dx, double *d, int64_t outer,        \
                                   int64_t L, int64_t inner) {                                     \
        int64_t blk = L * inner;                                                                   \
        if (inner == 1) {                                                                          \
            for (int64_t o = 0; o < outer; o++) {                                                  \
                const T *eo = e + o * L, *go = g + o * L;                                          \
                T *dxo = dx + o * L;                                                               \
                double gs = rsum_##S(go, L, 1);                                                    \
                for (int64_t k = 0; k < L; k++)                                                    \
                    dxo[k] += (T)(go[k] - eo[k] * gs);                                             \
            }                                                                                      \
            return;                                                                                \
        }                                                                                          \
        for (int64_t o = 0; o < outer; o++) {                                                      \
            const T *eo = e + o * blk, *go = g + o * blk;                                          \
            T *dxo = dx + o * blk;                                                                 \
            for (int64_t j = 0; j < inner; j++)                                                    \
                d[j] = 0;                                                                          \
            for (int64_t k = 0; k < L; k++)                                                        \
                for (int64_t j = 0; j < inner; j++)                                                \
                    d[j] += go[k * inner + j];                                                     \
            for (int64_t k = 0; k < L; k++)                                                        \
                for (int64_t j = 0; j < inner; j++) {                                              \
                    int64_t i = k * inner + j;                                                     \
                    dxo[i] += (T)(go[i] - eo[i] * d[j]);                                           \
                }                                                                                  \
        }                                                                                          \
    }
DEF_LOG_SOFTMAX_BW(float, f32)
DEF_LOG_SOFTMAX_BW(double, f64)

void sg__bw_log_softmax(sg_ctx *ctx, sg_tensor *out) {
    sg_tensor *x = out->src[0];
    if (!sg__needs(out, 0))
        return;
    int64_t outer, L, inner, n = sg_numel(out);
    split_axis(x, (int)out->iparam[0], &outer, &L, &inner);
    sg_tensor *G = sg__grad(ctx, x);
    double *d = inner > 1 ? sg_arena_alloc(ctx, (size_t)inner * sizeof(double)) : NULL;
    void *e = sg_arena_alloc(ctx, (size_t)n * sg_dtype_size(x->dtype));
    if (!G || (inner > 1 && !d) || !e)
        return;
    /* softmax = exp(log_softmax): one SLEEF call over the whole output. */
    if (x->dtype == SG_F32) {
        sg_vexp_f32((size_t)n, sg_data(out), e);
        log_softmax_bw_f32(e, sg_data(out->grad), sg_data(G), d, outer, L, inner);
    } else {
        sg_vexp_f64((size_t)n, sg_data(out), e);
        log_softmax_bw_f64(e, sg_data(out->grad), sg_data(G), d, outer, L, inner);
    }
}
