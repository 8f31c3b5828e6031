/* Sampling token ids from logits: greedy, temperature, top-k and top-p (nucleus), with a
 * draw rule fixed to the last bit so that a seed gives the same tokens on every machine
 * (autograd.h has the contract). Not differentiable: nothing is recorded. */
#include <math.h>
#include <stdlib.h>

#include "ops.h"

sg_sample_opts sg_sample_defaults(void) {
    return (sg_sample_opts){.temperature = 1, .top_k = 0, .top_p = 1};
}

/* A token and its unnormalised probability. */
typedef struct {
    double p;
    int64_t i;
} cand;

/* Probability descending, then index ascending: a total order (indices are distinct), so
 * the sorted order, and hence the draw, does not depend on qsort's algorithm. */
static int cand_cmp(const void *a, const void *b) {
    const cand *x = a, *y = b;
    if (x->p != y->p)
        return x->p > y->p ? -1 : 1;
    return x->i < y->i ? -1 : x->i > y->i;
}

/* One row r[0..V) (stride sv) with finite-or-infinite, non-NaN values, not all -inf.
 * Greedy when T == 0; else the draw rule of sg_sample. cs: V entries of scratch. */
static int64_t sample_row(const sg_tensor *x, int64_t row_off, int64_t V, int64_t sv,
                          const sg_sample_opts *o, sg_rng *rng, cand *cs) {
    double m = -INFINITY;
    int64_t arg = 0;
    for (int64_t v = 0; v < V; v++) {
        double xv = sg__ld(x, row_off + v * sv);
        if (xv > m) { /* strict: the first of equal maxima */
            m = xv;
            arg = v;
        }
    }
    if (o->temperature == 0)
        return arg;
    /* exp((x - max) / T): every exponent <= 0, the largest term exactly 1. With a +inf
     * logit, the +inf tokens share the row (the limit of the softmax). */
    for (int64_t v = 0; v < V; v++) {
        double xv = sg__ld(x, row_off + v * sv);
        cs[v].i = v;
        cs[v].p = m == INFINITY ? (double)(xv == INFINITY) : exp((xv - m) / o->temperature);
    }
    qsort(cs, (size_t)V, sizeof *cs, cand_cmp);
    int64_t k = o->top_k > 0 && o->top_k < V ? o->top_k : V;
    while (k > 1 && cs[k - 1].p == 0) /* impossible tokens are never kept; cs[0].p is 1 */
        k--;
    double tot = 0;
    for (int64_t j = 0; j < k; j++)
        tot += cs[j].p;
    if (o->top_p < 1) { /* the smallest prefix reaching top_p of the kept mass */
        double need = o->top_p * tot, cum = 0;
        int64_t j = 0;
        while (j < k) {
            cum += cs[j++].p;
            if (cum >= need)
                break;
        }
        k = j;
        tot = cum;
    }
    double u = sg_rng_uniform(rng) * tot, cum = 0;
    for (int64_t j = 0; j < k; j++) {
        cum += cs[j].p;
        if (u < cum)
            return cs[j].i;
    }
    return cs[k - 1].i; /* u * tot rounded up to tot */
}

sg_tensor *sg_sample(sg_ctx *ctx, sg_tensor *logits, const sg_sample_opts *opts, sg_rng *rng) {
    const char *fn = "sg_sample";
    if (!sg__check_inputs(ctx, fn, 1, &logits))
        return NULL;
    sg_sample_opts o = opts ? *opts : sg_sample_defaults();
    if (!(o.temperature >= 0 && o.temperature < INFINITY))
        return sg_error(ctx, "%s: temperature = %g must be finite and >= 0 (0: greedy)", fn,
                        o.temperature);
    if (o.top_k < 0)
        return sg_error(ctx, "%s: top_k = %lld must be >= 0 (0: off)", fn, (long long)o.top_k);
    if (!(o.top_p > 0 && o.top_p <= 1))
        return sg_error(ctx, "%s: top_p = %g outside (0, 1] (1: off)", fn, o.top_p);
    char b[96];
    int nd = logits->ndim;
    if (nd != 1 && nd != 2)
        return sg_error(ctx, "%s: logits must be (V) or (B, V), got %s", fn,
                        sg_shape_str(nd, logits->shape, b, sizeof b));
    int64_t B = nd == 2 ? logits->shape[0] : 1, V = logits->shape[nd - 1];
    int64_t sb = nd == 2 ? logits->stride[0] : 0, sv = logits->stride[nd - 1];
    if (V == 0 && B > 0)
        return sg_error(ctx, "%s: logits %s have no tokens (V = 0)", fn,
                        sg_shape_str(nd, logits->shape, b, sizeof b));
    /* Every row is checked before any is drawn: an error consumes no random numbers. */
    for (int64_t r = 0; r < B; r++) {
        bool finite = false;
        for (int64_t v = 0; v < V; v++) {
            double xv = sg__ld(logits, r * sb + v * sv);
            if (isnan(xv))
                return sg_error(ctx, "%s: row %lld has a NaN logit (index %lld)", fn, (long long)r,
                                (long long)v);
            finite |= xv > -INFINITY;
        }
        if (!finite)
            return sg_error(ctx, "%s: row %lld: every logit is -inf", fn, (long long)r);
    }
    sg_tensor *out = sg__new(ctx, fn, SG_I64, nd - 1, logits->shape, false);
    cand *cs = o.temperature > 0 ? sg_arena_alloc(ctx, (size_t)(V ? V : 1) * sizeof *cs) : NULL;
    if (!out || (o.temperature > 0 && !cs))
        return NULL;
    if (!rng)
        rng = sg_ctx_rng(ctx);
    int64_t *ids = sg_data(out);
    for (int64_t r = 0; r < B; r++)
        ids[r] = sample_row(logits, r * sb, V, sv, &o, rng, cs);
    return out;
}
