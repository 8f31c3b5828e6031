/* The fused losses: softmax cross-entropy over a class axis with integer label tensors,
 * binary cross-entropy with logits and MSE, each with a reduction (mean, sum, none), a
 * mask of weights and (cross-entropy) ignore_index and label smoothing. Each loss is one
 * op-table entry, its forward and backward side by side.
 *
 * Every loss is a weighted reduction of per-element terms t[i] (one per label for
 * cross-entropy, one per element of the prediction for the pair losses) with weights w[i]
 * (the mask broadcast to the elements' shape, 0 where a label is ignore_index; all 1 with
 * neither). One helper serves all three: loss_out reduces the terms (none: w t; sum:
 * sum w t; mean: sum w t / sum w) and loss_coefs turns the upstream gradient into
 * dL/dt[i]. Elements of weight 0 are skipped outright, in the forward and the backward, so
 * a NaN or an out-of-domain value at an excluded position never reaches the loss.
 *
 * Precision: terms, weights and totals are doubles whatever the dtype (float32 data is
 * converted once per element). */
#include <math.h>
#include <string.h>

#include "ops.h"

sg_loss_opts sg_loss_defaults(void) {
    return (sg_loss_opts){
        .reduction = SG_REDUCE_MEAN, .ignore_index = -100, .mask = NULL, .label_smoothing = 0};
}

/* ---- the weighted reduction shared by the losses --------------------------------------- */

/* How a loss reduced its n terms; saved for backward (the arena). */
typedef struct {
    sg_reduction red;
    int64_t n;       /* terms */
    const double *w; /* weight of each term; NULL: all 1 */
    double denom;    /* mean: sum of the weights (n without them); sum and none: 1 */
} loss_red;

/* The result of a loss from its terms t[0..r->n): none, w t in the elements' shape
 * (nd, shape); sum, sum w t; mean, sum w t / sum w, NaN when nothing counts (0 / 0, as
 * PyTorch). Sets r->denom. */
static sg_tensor *loss_out(sg_ctx *ctx, const char *fn, sg_dtype dt, int nd, const int64_t *shape,
                           const double *t, loss_red *r) {
    const double *w = r->w;
    r->denom = 1;
    if (r->red == SG_REDUCE_NONE) {
        sg_tensor *out = sg__new(ctx, fn, dt, nd, shape, false);
        for (int64_t i = 0; out && i < r->n; i++)
            sg__st(out, i, !w ? t[i] : w[i] != 0 ? w[i] * t[i] : 0);
        return out;
    }
    double s = 0, W = w ? 0 : (double)r->n;
    for (int64_t i = 0; i < r->n; i++) {
        if (!w) {
            s += t[i];
        } else if (w[i] != 0) {
            s += w[i] * t[i];
            W += w[i];
        }
    }
    if (r->red == SG_REDUCE_MEAN)
        r->denom = W;
    sg_tensor *out = sg__new(ctx, fn, dt, 0, NULL, false);
    if (out)
        sg__st(out, 0, r->red == SG_REDUCE_SUM ? s : W != 0 ? s / W : NAN);
    return out;
}

/* dL/dt[i] for the terms of node `out` (n doubles in the arena; NULL when out of memory):
 * the upstream gradient (its element i for none) times w[i] / denom; exactly 0 for the
 * skipped terms of weight 0. */
static double *loss_coefs(sg_ctx *ctx, const sg_tensor *out, const loss_red *r) {
    double *c = sg_arena_alloc(ctx, (size_t)(r->n ? r->n : 1) * sizeof(double));
    if (!c)
        return NULL;
    bool each = r->red == SG_REDUCE_NONE;
    double g0 = each ? 0 : sg__ld(out->grad, 0);
    for (int64_t i = 0; i < r->n; i++) {
        double g = each ? sg__ld(out->grad, i) : g0;
        c[i] = !r->w ? g / r->denom : r->w[i] != 0 ? g * r->w[i] / r->denom : 0;
    }
    return c;
}

/* Check the options o (already defaulted) of loss fn, whose terms have shape (nd, shape)
 * and count n: a known reduction, label smoothing in [0, 1] (cross-entropy only, ce), and
 * the mask: a live float tensor that does not require grad and broadcasts to the terms'
 * shape. *w gets the mask's values broadcast to the terms (row-major, arena), or NULL
 * without a mask. false with an error naming fn. */
static bool loss_setup(sg_ctx *ctx, const char *fn, const sg_loss_opts *o, bool ce, int nd,
                       const int64_t *shape, int64_t n, double **w) {
    *w = NULL;
    if (o->reduction != SG_REDUCE_MEAN && o->reduction != SG_REDUCE_SUM &&
        o->reduction != SG_REDUCE_NONE) {
        sg_error(ctx, "%s: reduction %d is none of SG_REDUCE_MEAN, SG_REDUCE_SUM, SG_REDUCE_NONE",
                 fn, (int)o->reduction);
        return false;
    }
    if (ce && !(o->label_smoothing >= 0 && o->label_smoothing <= 1)) {
        sg_error(ctx, "%s: label_smoothing = %g outside [0, 1]", fn, o->label_smoothing);
        return false;
    }
    if (!ce && o->label_smoothing != 0) {
        sg_error(ctx, "%s: label_smoothing = %g: only cross-entropy smooths labels", fn,
                 o->label_smoothing);
        return false;
    }
    sg_tensor *m = o->mask;
    if (!m)
        return true;
    if (!sg__check_any(ctx, fn, 1, &m))
        return false;
    if (!sg_dtype_is_float(m->dtype)) {
        sg_error(ctx, "%s: mask must be float32 or float64, got %s", fn, sg_dtype_name(m->dtype));
        return false;
    }
    if (m->flags & SG_FLAG_REQUIRES_GRAD) {
        sg_error(ctx, "%s: mask requires grad; a loss takes its mask as constant weights", fn);
        return false;
    }
    bool fits = m->ndim <= nd;
    for (int d = 0; fits && d < m->ndim; d++) {
        int64_t s = m->shape[m->ndim - 1 - d];
        fits = s == 1 || s == shape[nd - 1 - d];
    }
    if (!fits) {
        char a[96], b[96];
        sg_error(ctx, "%s: mask %s does not broadcast to %s", fn,
                 sg_shape_str(m->ndim, m->shape, a, sizeof a),
                 sg_shape_str(nd, shape, b, sizeof b));
        return false;
    }
    sg_tensor *e = sg_expand(ctx, m, nd, shape); /* a view: stride 0 where m broadcasts */
    double *ww = sg_arena_alloc(ctx, (size_t)(n ? n : 1) * sizeof(double));
    if (!e || !ww)
        return false;
    sg_iter it;
    sg__iter_flat(&it, e);
    if (n)
        SG_ITER_LOOP(&it, ww[i1] = sg__ld(e, i0));
    *w = ww;
    return true;
}

/* "<fn>: shapes (4, 1) and (4,) differ" unless a and b have exactly the same shape. */
static bool check_same_shape(sg_ctx *ctx, const char *fn, const sg_tensor *a, const sg_tensor *b) {
    if (sg__same_shape(a, b))
        return true;
    char sa[96], sb[96];
    sg_error(ctx, "%s: shapes %s and %s differ", fn, sg_shape_str(a->ndim, a->shape, sa, sizeof sa),
             sg_shape_str(b->ndim, b->shape, sb, sizeof sb));
    return false;
}

/* ---- cross-entropy over the last axis (fused) ------------------------------------------ */

/* Saved for backward (arena, out->aux): the reduction, the softmax probabilities (N, V)
 * contiguous in the logits' dtype, the labels as int64 (a copy: the caller's tensor may
 * change) and the smoothing. Backward reads only these, never the logits. */
typedef struct {
    loss_red r;
    void *probs;
    const int64_t *lab;
    int64_t V;
    double eps;
} ce_saved;

/* logits x (..., V) any strides, N rows; p (N, V) contiguous receives softmax(x); t[n] the
 * term of row n: with z = x[n] - max(x[n]) and y = lab[n],
 *     log(sum_c exp z_c) - (1 - eps) z_y - eps / V * sum_c z_c,
 * which is -sum_c target_c log softmax(x[n])_c for the smoothed target (1 - eps) onehot(y)
 * + eps / V (as PyTorch's label_smoothing). Both parts are small whatever the scale of the
 * logits, so logits of +-1000 lose nothing. Rows of weight 0 get t = 0. */
#define DEF_CE_FW(T, S)                                                                            \
    static void ce_fw_##S(const sg_tensor *x, const int64_t *lab, const double *w, double eps,     \
                          int64_t N, T *p, double *t) {                                            \
        const T *xp = sg_data(x);                                                                  \
        int nd = x->ndim - 1;                                                                      \
        int64_t V = x->shape[nd], sv = x->stride[nd], n = 0;                                       \
        sg_iter it;                                                                                \
        sg__iter_init(&it, nd, x->shape, 1, (const int64_t *const[]){x->stride});                  \
        if (N)                                                                                     \
            SG_ITER_LOOP(&it, {                                                                    \
                const T *r = xp + i0;                                                              \
                T *pn = p + n * V;                                                                 \
                T m = r[0];                                                                        \
                for (int64_t c = 1; c < V; c++)                                                    \
                    m = r[c * sv] > m ? r[c * sv] : m;                                             \
                double zs = 0;                                                                     \
                for (int64_t c = 0; c < V; c++) {                                                  \
                    pn[c] = r[c * sv] - m;                                                         \
                    zs += pn[c];                                                                   \
                }                                                                                  \
                bool on = !w || w[n] != 0;                                                         \
                /* eps 0: no smoothing sum (a -inf logit would make it 0 * -inf) */                \
                t[n] = !on        ? 0                                                              \
                       : eps == 0 ? -(double)pn[lab[n]]                                            \
                                  : -(1 - eps) * pn[lab[n]] - eps / (double)V * zs;                \
                n++;                                                                               \
            });                                                                                    \
        sg_vexp_##S((size_t)(N * V), p, p);                                                        \
        for (n = 0; n < N; n++) {                                                                  \
            T *pn = p + n * V;                                                                     \
            double s = 0;                                                                          \
            for (int64_t c = 0; c < V; c++)                                                        \
                s += pn[c];                                                                        \
            if (!w || w[n] != 0)                                                                   \
                t[n] += log(s);                                                                    \
            double inv = 1.0 / s;                                                                  \
            for (int64_t c = 0; c < V; c++)                                                        \
                pn[c] = (T)(pn[c] * inv);                                                          \
        }                                                                                          \
    }
DEF_CE_FW(float, f32)
DEF_CE_FW(double, f64)

/* The labels (any strides) as int64 in row-major order into lab[]; an error naming the
 * first label outside [0, V) that is not ignore_index, with its position. Sets *ignored
 * when some label is ignore_index. */
static bool ce_labels(sg_ctx *ctx, const char *fn, const sg_tensor *labels, int64_t V,
                      int64_t ignore, int64_t *lab, bool *ignored) {
    sg_iter it;
    sg__iter_flat(&it, labels);
    int64_t bad = -1;
    *ignored = false;
    if (sg_numel(labels))
        SG_ITER_LOOP(&it, {
            int64_t v = sg__ldi(labels, i0);
            lab[i1] = v;
            *ignored |= v == ignore;
            if (v != ignore && (v < 0 || v >= V) && bad < 0)
                bad = i1;
        });
    if (bad < 0)
        return true;
    /* the multi-index of flat element `bad` */
    int64_t idx[SG_MAX_DIMS], rest = bad;
    for (int d = labels->ndim - 1; d >= 0; d--) {
        idx[d] = rest % labels->shape[d];
        rest /= labels->shape[d];
    }
    char pos[96];
    if (labels->ndim == 1)
        snprintf(pos, sizeof pos, "%lld", (long long)bad);
    else
        sg_shape_str(labels->ndim, idx, pos, sizeof pos);
    sg_error(ctx, "%s: label %lld at index %s out of range [0, %lld)", fn, (long long)lab[bad], pos,
             (long long)V);
    return false;
}

static sg_tensor *ce_impl(sg_ctx *ctx, const char *fn, sg_tensor *logits, sg_tensor *labels,
                          const sg_loss_opts *opts) {
    if (!sg__check_inputs(ctx, fn, 1, &logits) || !sg__check_any(ctx, fn, 1, &labels) ||
        !sg__index_dtype(ctx, fn, "labels", labels))
        return NULL;
    sg_loss_opts o = opts ? *opts : sg_loss_defaults();
    char a[96], b[96];
    int nd = logits->ndim - 1;
    if (nd < 0)
        return sg_error(ctx, "%s: logits must have a class axis, (..., V); got a 0-d tensor", fn);
    int64_t V = logits->shape[nd];
    if (V == 0)
        return sg_error(ctx, "%s: logits %s have no classes (V = 0)", fn,
                        sg_shape_str(logits->ndim, logits->shape, a, sizeof a));
    if (labels->ndim != nd || memcmp(labels->shape, logits->shape, (size_t)nd * sizeof(int64_t)))
        return sg_error(ctx,
                        "%s: labels %s do not match logits %s: want the logits' shape "
                        "without the class axis",
                        fn, sg_shape_str(labels->ndim, labels->shape, a, sizeof a),
                        sg_shape_str(logits->ndim, logits->shape, b, sizeof b));
    int64_t N = sg_numel(labels);
    double *w;
    if (!loss_setup(ctx, fn, &o, true, nd, labels->shape, N, &w))
        return NULL;
    sg_dtype dt = logits->dtype;
    int64_t *lab = sg_arena_alloc(ctx, (size_t)(N ? N : 1) * sizeof(int64_t));
    double *t = sg_arena_alloc(ctx, (size_t)(N ? N : 1) * sizeof(double));
    void *p = sg_arena_alloc(ctx, (size_t)(N ? N * V : 1) * sg_dtype_size(dt));
    bool ignored;
    if (!lab || !t || !p || !ce_labels(ctx, fn, labels, V, o.ignore_index, lab, &ignored))
        return NULL;
    if (ignored && !w) { /* weights: 1, and 0 where ignored */
        if (!(w = sg_arena_alloc(ctx, (size_t)N * sizeof(double))))
            return NULL;
        for (int64_t n = 0; n < N; n++)
            w[n] = 1;
    }
    for (int64_t n = 0; ignored && n < N; n++)
        if (lab[n] == o.ignore_index)
            w[n] = 0;
    double eps = o.label_smoothing;
    if (dt == SG_F32)
        ce_fw_f32(logits, lab, w, eps, N, p, t);
    else
        ce_fw_f64(logits, lab, w, eps, N, p, t);
    loss_red r = {.red = o.reduction, .n = N, .w = w};
    sg_tensor *out = loss_out(ctx, fn, dt, nd, labels->shape, t, &r);
    if (!out)
        return NULL;
    if (sg__any_requires_grad(ctx, 1, &logits)) {
        ce_saved *sv = sg_arena_alloc(ctx, sizeof *sv);
        if (!sv)
            return NULL;
        *sv = (ce_saved){.r = r, .probs = p, .lab = lab, .V = V, .eps = eps};
        out->aux = sv;
    }
    return sg__finish(ctx, out, SG_OP_CROSS_ENTROPY, 1, &logits);
}

sg_tensor *sg_cross_entropy(sg_ctx *ctx, sg_tensor *logits, sg_tensor *labels) {
    return ce_impl(ctx, "sg_cross_entropy", logits, labels, NULL);
}
sg_tensor *sg_cross_entropy_ex(sg_ctx *ctx, sg_tensor *logits, sg_tensor *labels,
                               const sg_loss_opts *o) {
    return ce_impl(ctx, "sg_cross_entropy_ex", logits, labels, o);
}

/* p = softmax(logits), dx: (N, V) contiguous; c[n] = dL/dt[n] (0: a skipped row).
 * dx[n] += c[n] * (p[n] - target[n]) with target (1 - eps) onehot(lab[n]) + eps / V: the
 * stable fused form, no division by a probability. */
#define DEF_CE_BW(T, S)                                                                            \
    static void ce_bw_##S(const T *p, const int64_t *lab, const double *c, T *dx, int64_t N,       \
                          int64_t V, double eps) {                                                 \
        double off = eps / (double)V, hit = 1 - eps;                                               \
        for (int64_t n = 0; n < N; n++) {                                                          \
            if (c[n] == 0)                                                                         \
                continue;                                                                          \
            const T *pn = p + n * V;                                                               \
            T *dn = dx + n * V;                                                                    \
            for (int64_t k = 0; k < V; k++)                                                        \
                dn[k] += (T)(c[n] * (pn[k] - off - (k == lab[n] ? hit : 0)));                      \
        }                                                                                          \
    }
DEF_CE_BW(float, f32)
DEF_CE_BW(double, f64)

void sg__bw_cross_entropy(sg_ctx *ctx, sg_tensor *out) {
    sg_tensor *x = out->src[0];
    const ce_saved *sv = out->aux;
    if (!sg__needs(out, 0) || !sv || sv->r.n == 0)
        return;
    sg_tensor *G = sg__grad(ctx, x);
    double *c = G ? loss_coefs(ctx, out, &sv->r) : NULL;
    if (!c)
        return;
    if (x->dtype == SG_F32)
        ce_bw_f32(sv->probs, sv->lab, c, sg_data(G), sv->r.n, sv->V, sv->eps);
    else
        ce_bw_f64(sv->probs, sv->lab, c, sg_data(G), sv->r.n, sv->V, sv->eps);
}

/* ---- elementwise losses of two tensors: BCE with logits and MSE (fused) ---------------- */

/* sigmoid in double without overflow: exp only ever sees a non-positive argument. */
static inline double sigm(double v) {
    if (v >= 0)
        return 1.0 / (1.0 + exp(-v));
    double e = exp(v);
    return e / (1.0 + e);
}

/* A loss whose terms are term(v, t), v from x (predictions or logits), t from z (targets),
 * same shape, any strides. NAME_fw writes the terms in row-major order; NAME_bw adds
 * c[i] * DX(v, t) to dx and c[i] * DZ(v, t) to dz (contiguous; either may be NULL),
 * skipping the terms with c[i] == 0. One fused node per loss: a loss ends every training
 * step, and on tiny models the node count is the time. */
#define DEF_PAIR_LOSS_T(NAME, T, S, TERM, DX, DZ)                                                  \
    static void NAME##_fw_##S(const sg_tensor *x, const sg_tensor *z, double *out) {               \
        const T *xp = sg_data(x), *zp = sg_data(z);                                                \
        int64_t i = 0;                                                                             \
        sg_iter it;                                                                                \
        sg__iter_of(&it, 2, (const sg_tensor *const[]){x, z});                                     \
        if (sg_numel(x))                                                                           \
            SG_ITER_LOOP(&it, {                                                                    \
                double v = xp[i0], t = zp[i1];                                                     \
                out[i++] = (TERM);                                                                 \
            });                                                                                    \
    }                                                                                              \
    static void NAME##_bw_##S(const sg_tensor *x, const sg_tensor *z, const double *c, T *dx,      \
                              T *dz) {                                                             \
        const T *xp = sg_data(x), *zp = sg_data(z);                                                \
        int64_t i = 0;                                                                             \
        sg_iter it;                                                                                \
        sg__iter_of(&it, 2, (const sg_tensor *const[]){x, z});                                     \
        SG_ITER_LOOP(&it, {                                                                        \
            double v = xp[i0], t = zp[i1], ci = c[i];                                              \
            (void)t;                                                                               \
            if (ci != 0 && dx)                                                                     \
                dx[i] += (T)(ci * (DX));                                                           \
            if (ci != 0 && dz)                                                                     \
                dz[i] += (T)(ci * (DZ));                                                           \
            i++;                                                                                   \
        });                                                                                        \
    }
#define DEF_PAIR_LOSS(NAME, TERM, DX, DZ)                                                          \
    DEF_PAIR_LOSS_T(NAME, float, f32, TERM, DX, DZ)                                                \
    DEF_PAIR_LOSS_T(NAME, double, f64, TERM, DX, DZ)

/* BCE with logits: max(v, 0) - v t + log1p(exp(-|v|)), the stable form of
 * -(t log sigmoid(v) + (1 - t) log(1 - sigmoid(v))): exp never overflows and log1p keeps
 * the tiny tail (v = 100, t = 1 gives e^-100, not 0). d/dv = sigmoid(v) - t, d/dt = -v. */
DEF_PAIR_LOSS(bce, fmax(v, 0.0) - v * t + log1p(exp(-fabs(v))), sigm(v) - t, -v)
/* MSE: (v - t)^2. */
DEF_PAIR_LOSS(mse, (v - t) * (v - t), 2 * (v - t), 2 * (t - v))

typedef void (*pair_fw_fn)(const sg_tensor *, const sg_tensor *, double *);

/* Forward of a pair loss: checks (exact shapes: broadcasting (4, 1) against (4,) would
 * silently give a (4, 4) loss, a classic pitfall; the mask alone broadcasts), the terms,
 * then the reduction. aux: the loss_red, for backward. */
static sg_tensor *pair_loss(sg_ctx *ctx, const char *fn, sg_op op, sg_tensor *x, sg_tensor *z,
                            const sg_loss_opts *opts, pair_fw_fn f32, pair_fw_fn f64) {
    sg_tensor *src[2] = {x, z};
    if (!sg__check_inputs(ctx, fn, 2, src) || !check_same_shape(ctx, fn, x, z))
        return NULL;
    sg_loss_opts o = opts ? *opts : sg_loss_defaults();
    int64_t n = sg_numel(x);
    double *w, *t = sg_arena_alloc(ctx, (size_t)(n ? n : 1) * sizeof(double));
    loss_red *r = sg_arena_alloc(ctx, sizeof *r);
    if (!loss_setup(ctx, fn, &o, false, x->ndim, x->shape, n, &w) || !t || !r)
        return NULL;
    (x->dtype == SG_F32 ? f32 : f64)(x, z, t);
    *r = (loss_red){.red = o.reduction, .n = n, .w = w};
    sg_tensor *out = loss_out(ctx, fn, x->dtype, x->ndim, x->shape, t, r);
    if (!out)
        return NULL;
    out->aux = r;
    return sg__finish(ctx, out, op, 2, src);
}

/* Backward of a pair loss: c = dL/dterm into whichever inputs need it. */
#define PAIR_LOSS_BW(NAME, ctx, out)                                                               \
    do {                                                                                           \
        sg_tensor *x = (out)->src[0], *z = (out)->src[1];                                          \
        const loss_red *r = (out)->aux;                                                            \
        if (!r || r->n == 0)                                                                       \
            return;                                                                                \
        sg_tensor *Gx = sg__needs(out, 0) ? sg__grad(ctx, x) : NULL;                               \
        sg_tensor *Gz = sg__needs(out, 1) ? sg__grad(ctx, z) : NULL;                               \
        if ((sg__needs(out, 0) && !Gx) || (sg__needs(out, 1) && !Gz))                              \
            return;                                                                                \
        double *c = loss_coefs(ctx, out, r);                                                       \
        if (!c)                                                                                    \
            return;                                                                                \
        if (x->dtype == SG_F32)                                                                    \
            NAME##_bw_f32(x, z, c, Gx ? sg_data(Gx) : NULL, Gz ? sg_data(Gz) : NULL);              \
        else                                                                                       \
            NAME##_bw_f64(x, z, c, Gx ? sg_data(Gx) : NULL, Gz ? sg_data(Gz) : NULL);              \
    } while (0)

sg_tensor *sg_bce_with_logits_ex(sg_ctx *ctx, sg_tensor *logits, sg_tensor *targets,
                                 const sg_loss_opts *o) {
    return pair_loss(ctx, "sg_bce_with_logits_ex", SG_OP_BCE_LOGITS, logits, targets, o, bce_fw_f32,
                     bce_fw_f64);
}
sg_tensor *sg_bce_with_logits(sg_ctx *ctx, sg_tensor *logits, sg_tensor *targets) {
    return pair_loss(ctx, "sg_bce_with_logits", SG_OP_BCE_LOGITS, logits, targets, NULL, bce_fw_f32,
                     bce_fw_f64);
}
void sg__bw_bce_logits(sg_ctx *ctx, sg_tensor *out) { PAIR_LOSS_BW(bce, ctx, out); }

sg_tensor *sg_mse_loss_ex(sg_ctx *ctx, sg_tensor *pred, sg_tensor *target, const sg_loss_opts *o) {
    return pair_loss(ctx, "sg_mse_loss_ex", SG_OP_MSE, pred, target, o, mse_fw_f32, mse_fw_f64);
}
sg_tensor *sg_mse_loss(sg_ctx *ctx, sg_tensor *pred, sg_tensor *target) {
    return pair_loss(ctx, "sg_mse_loss", SG_OP_MSE, pred, target, NULL, mse_fw_f32, mse_fw_f64);
}
void sg__bw_mse(sg_ctx *ctx, sg_tensor *out) { PAIR_LOSS_BW(mse, ctx, out); }
