/* Random ops: dropout (one op-table entry), the recurrent dropout mask, and zoneout
 * (composed of recorded ops). All three draw by one rule (draw_mask): one sg_rng_uniform per
 * element in row-major order, an element kept when u >= p; so the same seed gives the same
 * mask whatever the input's strides. They sample only in training mode with grad mode on
 * (sampling()); otherwise dropout is the identity and zoneout its expectation.
 *
 * Dropout is an op of its own rather than sg_mul(x, mask): the product is the same work,
 * but mul's backward reads both inputs, so recording it would mark x's buffer as saved and
 * refuse later in-place ops on it (an LSTM's in-place step over a dropped-out input), and the
 * mask would be a graph input of its own. Dropout's backward reads only the mask it keeps in
 * aux (the scale factors 0 and 1 / (1 - p), so backward is one multiply per element): the
 * table entry says it reads nothing of x or of its output. */
#include <math.h>

#include "ops.h"

/* Does this workspace draw masks now: training mode and grad mode on. */
static bool sampling(const sg_ctx *ctx) { return !ctx->tape.eval_mode && !ctx->tape.grad_disabled; }

/* Is p in [0, 1) (or [0, 1] when one_ok)? NaN is not; false with an error naming fn. */
static bool p_ok(sg_ctx *ctx, const char *fn, double p, bool one_ok) {
    if (p >= 0 && (p < 1 || (one_ok && p == 1)))
        return true;
    sg_error(ctx, "%s: p = %g outside [0, 1%c", fn, p, one_ok ? ']' : ')');
    return false;
}

// out is a new contiguous (ndim, shape) tensor of dtype dt: element i (row-major) is `keep`
// when u_i >= p and `drop` when u_i < p, u_i the i-th sg_rng_uniform of rng (the context's
// when NULL). p == 0 draws nothing: every element is `keep`.
static sg_tensor *draw_mask(sg_ctx *ctx, const char *fn, sg_dtype dt, int ndim,
                            const int64_t *shape, double p, double keep, double drop, sg_rng *rng) {
    sg_tensor *m = sg__new(ctx, fn, dt, ndim, shape, false);
    if (!m)
        return NULL;
    if (!rng)
        rng = sg_ctx_rng(ctx);
    int64_t n = sg_numel(m);
    if (dt == SG_F32) {
        float *d = sg_data(m), k = (float)keep, z = (float)drop;
        SG_FLAT_LOOP(n, d[i0] = p == 0 || sg_rng_uniform(rng) >= p ? k : z);
    } else {
        double *d = sg_data(m);
        SG_FLAT_LOOP(n, d[i0] = p == 0 || sg_rng_uniform(rng) >= p ? keep : drop);
    }
    return m;
}

/* ---- dropout -------------------------------------------------------------------------- */

sg_tensor *sg_dropout(sg_ctx *ctx, sg_tensor *x, double p, sg_rng *rng) {
    if (!sg__check_inputs(ctx, "sg_dropout", 1, &x) || !p_ok(ctx, "sg_dropout", p, false))
        return NULL;
    if (!sampling(ctx) || p == 0)
        return x;
    sg_tensor *m =
        draw_mask(ctx, "sg_dropout", x->dtype, x->ndim, x->shape, p, 1 / (1 - p), 0, rng);
    sg_tensor *out = m ? sg__new(ctx, "sg_dropout", x->dtype, x->ndim, x->shape, false) : NULL;
    if (!out)
        return NULL;
    // out, x, m: x's shape; out and m contiguous, x any view
    sg_iter it;
    sg__iter_of(&it, 3, (const sg_tensor *const[]){out, x, m});
    if (x->dtype == SG_F32) {
        float *o = sg_data(out);
        const float *a = sg_data(x), *k = sg_data(m);
        SG_ITER_LOOP(&it, o[i0] = a[i1] * k[i2]);
    } else {
        double *o = sg_data(out);
        const double *a = sg_data(x), *k = sg_data(m);
        SG_ITER_LOOP(&it, o[i0] = a[i1] * k[i2]);
    }
    out->aux = m;
    out->fparam[0] = p;
    return sg__finish(ctx, out, SG_OP_DROPOUT, 1, &x);
}

// dx += dout * m; dx (x's gradient: contiguous, or a view into its input's gradient), dout
// and m (contiguous) all of x's shape.
void sg__bw_dropout(sg_ctx *ctx, sg_tensor *out) {
    if (!sg__needs(out, 0))
        return;
    sg_tensor *G = sg__grad(ctx, out->src[0]), *g = out->grad, *m = out->aux;
    if (!G)
        return;
    sg_iter it;
    sg__iter_of(&it, 3, (const sg_tensor *const[]){G, g, m});
    if (out->dtype == SG_F32) {
        float *d = sg_data(G);
        const float *u = sg_data(g), *k = sg_data(m);
        SG_ITER_LOOP(&it, d[i0] += u[i1] * k[i2]);
    } else {
        double *d = sg_data(G);
        const double *u = sg_data(g), *k = sg_data(m);
        SG_ITER_LOOP(&it, d[i0] += u[i1] * k[i2]);
    }
}

/* ---- recurrent dropout mask ----------------------------------------------------------- */

sg_tensor *sg_dropout_mask(sg_ctx *ctx, sg_dtype dt, int ndim, const int64_t *shape, double p,
                           sg_rng *rng) {
    if (!ctx)
        return NULL;
    if (ndim > 0 && !shape)
        return sg_error(ctx, "sg_dropout_mask: shape is NULL for %d dimensions", ndim);
    if (!p_ok(ctx, "sg_dropout_mask", p, false))
        return NULL;
    double q = sampling(ctx) ? p : 0; /* q == 0: all ones, nothing drawn */
    return draw_mask(ctx, "sg_dropout_mask", dt, ndim, shape, q, 1 / (1 - q), 0, rng);
}

/* ---- zoneout --------------------------------------------------------------------------- */

/* Composed: m * h_prev + (1 - m) * h_new with the 0/1 masks m and 1 - m, so that a unit that
 * zones out keeps h_prev exactly (h_new + m * (h_prev - h_new) would round). */
sg_tensor *sg_zoneout(sg_ctx *ctx, sg_tensor *h_prev, sg_tensor *h_new, double p, sg_rng *rng) {
    sg_tensor *src[2] = {h_prev, h_new};
    if (!sg__check_inputs(ctx, "sg_zoneout", 2, src))
        return NULL;
    if (!sg__same_shape(h_prev, h_new)) {
        char a[96], b[96];
        return sg_error(ctx, "sg_zoneout: h_prev %s and h_new %s differ in shape",
                        sg_shape_str(h_prev->ndim, h_prev->shape, a, sizeof a),
                        sg_shape_str(h_new->ndim, h_new->shape, b, sizeof b));
    }
    if (!p_ok(ctx, "sg_zoneout", p, true))
        return NULL;
    if (p == 0)
        return h_new;
    if (!sampling(ctx))
        return sg_add(ctx, sg_scale(ctx, h_prev, p), sg_scale(ctx, h_new, 1 - p));
    /* m = 1 (zone out: keep h_prev) where u < p, the units dropout would drop */
    sg_tensor *m =
        draw_mask(ctx, "sg_zoneout", h_new->dtype, h_new->ndim, h_new->shape, p, 0, 1, rng);
    sg_tensor *keep = sg_add_scalar(ctx, sg_neg(ctx, m), 1.0);
    return sg_add(ctx, sg_mul(ctx, m, h_prev), sg_mul(ctx, keep, h_new));
}
