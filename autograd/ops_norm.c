/* Normalisation ops, forward and backward side by side: layer normalisation over the last
 * axis (torch.nn.functional.layer_norm), one fused node.
 *
 * Layout: x (..., D) is R = numel / D rows of D elements; the rows are every index of the
 * leading dimensions in row-major order, walked with the strided iterator (operands' strides
 * on the leading dimensions) and each row with its own stride along the last axis, so any
 * view (transposed, permuted, sliced) is read where it lies. The output is contiguous.
 *
 * Precision: the statistics are computed in double also for float32 (mean and variance in
 * two passes over the row, the mean shifted by the row's first element, so that a row of
 * equal values has exactly that mean and a variance of exactly 0). The forward saves the
 * mean and 1/sqrt(var + eps) of every row (2R doubles, out->aux); backward recomputes
 * xhat = (x - mean) * rstd from x rather than keeping a normalised copy of x.
 */
#include <math.h>

#include "ops.h"

/* An iterator over the rows of x (..., D): operands st[0..nops) are strides of tensors of
 * x's shape (NULL: inactive); offsets i0.. are those of each row's first element. */
static inline __attribute__((always_inline)) void rows_iter(sg_iter *it, const sg_tensor *x,
                                                            int nops, const int64_t *const *st) {
    int64_t shape[SG_MAX_DIMS];
    for (int d = 0; d < x->ndim; d++)
        shape[d] = d == x->ndim - 1 ? 1 : x->shape[d];
    sg__iter_init(it, x->ndim, shape, nops, st);
}

/* Which optional inputs a node has (out->iparam[0]); they follow x in src[] in this order. */
enum { LN_GAIN = 1, LN_BIAS = 2 };

/* Forward of one row: a (D, stride sa), o (D, contiguous), gain/bias (D, strides sg, sb;
 * NULL: none). Writes mean and rstd to st[0], st[1]. rstd is 0 when var + eps is 0 (a row of
 * equal values with eps = 0), so that such a row normalises to 0 instead of 0 * inf = NaN. */
#define DEF_LN(T, S)                                                                               \
    static inline void ln_row_fw_##S(const T *a, int64_t sa, int64_t D, const T *gp, int64_t sg,   \
                                     const T *bp, int64_t sb, double eps, T *o, double *st) {      \
        const double k = a[0];                                                                     \
        double s = 0, v = 0;                                                                       \
        for (int64_t j = 0; j < D; j++)                                                            \
            s += a[j * sa] - k;                                                                    \
        const double mean = k + s / (double)D;                                                     \
        for (int64_t j = 0; j < D; j++) {                                                          \
            const double c = a[j * sa] - mean;                                                     \
            v += c * c;                                                                            \
        }                                                                                          \
        v = v / (double)D + eps;                                                                   \
        const double rstd = v > 0 ? 1 / sqrt(v) : 0;                                               \
        for (int64_t j = 0; j < D; j++) {                                                          \
            double h = (a[j * sa] - mean) * rstd;                                                  \
            if (gp)                                                                                \
                h *= gp[j * sg];                                                                   \
            if (bp)                                                                                \
                h += bp[j * sb];                                                                   \
            o[j] = (T)h;                                                                           \
        }                                                                                          \
        st[0] = mean;                                                                              \
        st[1] = rstd;                                                                              \
    }                                                                                              \
    /* x (R, D) any strides, out contiguous; stat: 2R doubles. */                                  \
    static void ln_fw_##S(const sg_tensor *x, const sg_tensor *gain, const sg_tensor *bias,        \
                          double eps, sg_tensor *out, double *stat) {                              \
        const int64_t D = x->shape[x->ndim - 1], sa = x->stride[x->ndim - 1];                      \
        const T *xp = sg_data(x), *gp = gain ? sg_data(gain) : NULL;                               \
        const T *bp = bias ? sg_data(bias) : NULL;                                                 \
        const int64_t sg = gain ? gain->stride[0] : 0, sb = bias ? bias->stride[0] : 0;            \
        T *op = sg_data(out);                                                                      \
        sg_iter it;                                                                                \
        rows_iter(&it, x, 2, (const int64_t *const[]){x->stride, out->stride});                    \
        double *st = stat;                                                                         \
        SG_ITER_LOOP(&it, ln_row_fw_##S(xp + i0, sa, D, gp, sg, bp, sb, eps, op + i1, st);         \
                     st += 2);                                                                     \
    }                                                                                              \
    /* One row of backward: dx += rstd * (dyg - mean(dyg) - xhat * mean(dyg * xhat)) with          \
     * dyg = dy * gain, into o (stride so; NULL: not wanted); acc[0..D) += dy * xhat and           \
     * acc[D..2D) += dy (dgain, dbias; acc NULL: neither wanted). */                               \
    static inline void ln_row_bw_##S(const T *a, int64_t sa, const T *d, int64_t sd, int64_t D,    \
                                     const T *gp, int64_t sg, const double *st, T *o, int64_t so,  \
                                     double *acc) {                                                \
        const double mean = st[0], rstd = st[1];                                                   \
        double m1 = 0, m2 = 0;                                                                     \
        for (int64_t j = 0; j < D; j++) {                                                          \
            const double h = (a[j * sa] - mean) * rstd, g = d[j * sd];                             \
            const double dg = gp ? g * gp[j * sg] : g;                                             \
            m1 += dg;                                                                              \
            m2 += dg * h;                                                                          \
            if (acc) {                                                                             \
                acc[j] += g * h;                                                                   \
                acc[D + j] += g;                                                                   \
            }                                                                                      \
        }                                                                                          \
        if (!o)                                                                                    \
            return;                                                                                \
        m1 /= (double)D;                                                                           \
        m2 /= (double)D;                                                                           \
        for (int64_t j = 0; j < D; j++) {                                                          \
            const double h = (a[j * sa] - mean) * rstd, g = d[j * sd];                             \
            const double dg = gp ? g * gp[j * sg] : g;                                             \
            o[j * so] += (T)(rstd * (dg - m1 - h * m2));                                           \
        }                                                                                          \
    }                                                                                              \
    /* x, dy (out's gradient) and Gx (x's gradient; NULL: not wanted) (R, D), any strides. */      \
    static void ln_bw_##S(const sg_tensor *x, const sg_tensor *gain, const sg_tensor *dy,          \
                          const sg_tensor *Gx, const double *stat, double *acc) {                  \
        const int last = x->ndim - 1;                                                              \
        const int64_t D = x->shape[last], sa = x->stride[last], sd = dy->stride[last];             \
        const int64_t so = Gx ? Gx->stride[last] : 0, sg = gain ? gain->stride[0] : 0;             \
        const T *xp = sg_data(x), *gp = gain ? sg_data(gain) : NULL, *dp = sg_data(dy);            \
        T *gx = Gx ? sg_data(Gx) : NULL;                                                           \
        sg_iter it;                                                                                \
        rows_iter(&it, x, 3,                                                                       \
                  (const int64_t *const[]){x->stride, dy->stride, Gx ? Gx->stride : NULL});        \
        const double *st = stat;                                                                   \
        SG_ITER_LOOP(&it, ln_row_bw_##S(xp + i0, sa, dp + i1, sd, D, gp, sg, st,                   \
                                        gx ? gx + i2 : NULL, so, acc);                             \
                     st += 2);                                                                     \
    }
DEF_LN(float, f32)
DEF_LN(double, f64)

/* "gain has shape (4,), expected (5,) for x of shape (2, 3, 5)" unless p is (D,). */
static bool ln_param_ok(sg_ctx *ctx, const char *what, const sg_tensor *p, const sg_tensor *x) {
    int64_t D = x->shape[x->ndim - 1];
    if (!p || (p->ndim == 1 && p->shape[0] == D))
        return true;
    char sp[96], sx[96];
    sg_error(ctx, "sg_layer_norm: %s has shape %s, expected (%lld,) for x of shape %s", what,
             sg_shape_str(p->ndim, p->shape, sp, sizeof sp), (long long)D,
             sg_shape_str(x->ndim, x->shape, sx, sizeof sx));
    return false;
}

sg_tensor *sg_layer_norm(sg_ctx *ctx, sg_tensor *x, sg_tensor *gain, sg_tensor *bias, double eps) {
    const char *fn = "sg_layer_norm";
    sg_tensor *src[3] = {x};
    int n = 1;
    if (gain)
        src[n++] = gain;
    if (bias)
        src[n++] = bias;
    if (!sg__check_inputs(ctx, fn, n, src))
        return NULL;
    if (x->ndim == 0)
        return sg_error(ctx, "sg_layer_norm: x is 0-d; it needs a last axis to normalise over");
    if (!(eps >= 0) || !isfinite(eps))
        return sg_error(ctx, "sg_layer_norm: eps = %g must be finite and >= 0", eps);
    if (!ln_param_ok(ctx, "gain", gain, x) || !ln_param_ok(ctx, "bias", bias, x))
        return NULL;
    int64_t R = 1, D = x->shape[x->ndim - 1];
    for (int d = 0; d < x->ndim - 1; d++)
        R *= x->shape[d];
    sg_tensor *out = sg__new(ctx, fn, x->dtype, x->ndim, x->shape, false);
    double *stat = out ? sg_arena_alloc(ctx, (size_t)(2 * R) * sizeof(double)) : NULL;
    if (!stat)
        return NULL;
    if (D > 0 && R > 0) { /* an empty last axis has no statistics (and no output) */
        if (x->dtype == SG_F32)
            ln_fw_f32(x, gain, bias, eps, out, stat);
        else
            ln_fw_f64(x, gain, bias, eps, out, stat);
    }
    out->aux = stat;
    out->iparam[0] = (gain ? LN_GAIN : 0) | (bias ? LN_BIAS : 0);
    return sg__finish(ctx, out, SG_OP_LAYER_NORM, n, src);
}

void sg__bw_layer_norm(sg_ctx *ctx, sg_tensor *out) {
    sg_tensor *x = out->src[0];
    int ig = out->iparam[0] & LN_GAIN ? 1 : 0;             /* gain's index in src, 0: none */
    int ib = out->iparam[0] & LN_BIAS ? 1 + (ig != 0) : 0; /* bias's */
    sg_tensor *Gx = sg__needs(out, 0) ? sg__grad(ctx, x) : NULL;
    sg_tensor *Gg = ig && sg__needs(out, ig) ? sg__grad(ctx, out->src[ig]) : NULL;
    sg_tensor *Gb = ib && sg__needs(out, ib) ? sg__grad(ctx, out->src[ib]) : NULL;
    if ((sg__needs(out, 0) && !Gx) || (ig && sg__needs(out, ig) && !Gg) ||
        (ib && sg__needs(out, ib) && !Gb))
        return; /* out of memory, recorded */
    int64_t D = x->shape[x->ndim - 1];
    if (D == 0 || sg_numel(x) == 0)
        return;
    double *acc = NULL;
    if (Gg || Gb) {
        acc = sg_arena_alloc(ctx, (size_t)(2 * D) * sizeof(double));
        if (!acc)
            return;
        for (int64_t j = 0; j < 2 * D; j++)
            acc[j] = 0;
    }
    const sg_tensor *gain = ig ? out->src[ig] : NULL;
    if (x->dtype == SG_F32)
        ln_bw_f32(x, gain, out->grad, Gx, out->aux, acc);
    else
        ln_bw_f64(x, gain, out->grad, Gx, out->aux, acc);
    for (int k = 0; k < 2; k++) {
        sg_tensor *G = k ? Gb : Gg;
        if (!G)
            continue;
        for (int64_t j = 0; j < D; j++) {
            int64_t off = j * G->stride[0];
            sg__st(G, off, sg__ld(G, off) + acc[k * D + j]);
        }
    }
}
