/* The engine: finishing an op (recording, anomaly check), the backward walk with its one
 * dispatch through the op table, grad mode and leaves. The gradient buffers are grad.c's,
 * the in-place policy inplace.c's, the table optable.c's, the Graphviz export dot.c's.
 *
 * Nodes are the op outputs themselves (ggml style): each records its op, inputs and a
 * link to the node recorded before it. Execution order is a topological order, so walking
 * the links backwards from the loss visits every node after all of its consumers. */
#include <math.h>
#include <string.h>

#include "ops.h"

/* ---- anomaly mode -------------------------------------------------------------------- */

void sg_ctx_set_anomaly(sg_ctx *ctx, bool on) {
    if (ctx)
        ctx->tape.anomaly = on;
}

/* "nan", "inf" or NULL for a tensor with only finite values. */
static const char *nonfinite(const sg_tensor *t) {
    bool nan = false, inf = false;
    sg_iter it;
    sg__iter_of(&it, 1, &t);
    SG_ITER_LOOP(&it, double v = sg__ld(t, i0); nan |= isnan(v); inf |= isinf(v));
    return nan ? "NaN" : inf ? "Inf" : NULL;
}

static void anomaly_report(sg_ctx *ctx, const sg_tensor *node, const char *what,
                           const char *phase) {
    char ins[256] = "", o[96];
    size_t k = 0;
    sg_tensor *const *in;
    int n = sg__node_inputs(node, &in);
    for (int i = 0; i < n && k < sizeof ins; i++) {
        char s[96];
        k += (size_t)snprintf(ins + k, sizeof ins - k, "%s%s", i ? ", " : "",
                              sg_shape_str(in[i]->ndim, in[i]->shape, s, sizeof s));
    }
    sg_error(ctx, "anomaly: %s produced %s in %s; inputs %s -> output %s", sg_op_name(node->op),
             what, phase, ins, sg_shape_str(node->ndim, node->shape, o, sizeof o));
}

/* In anomaly mode: does out hold a NaN or Inf? Then the first one is reported (unless an
 * error is recorded already: only the first is kept) and the answer is true. */
static bool anomalous_forward(sg_ctx *ctx, sg_tensor *out) {
    const char *w = nonfinite(out);
    if (w)
        anomaly_report(ctx, out, w, "forward");
    return w != NULL;
}

void sg_anomaly_check_forward(sg_ctx *ctx, sg_tensor *out) {
    if (!ctx || !ctx->tape.anomaly || !sg_check(ctx, out, "sg_anomaly_check_forward"))
        return;
    anomalous_forward(ctx, out);
}

sg_tensor *sg__finish(sg_ctx *ctx, sg_tensor *out, int op, int n, sg_tensor *const *src) {
    if (!out)
        return NULL;
    bool rec = sg__record(ctx, out, op, n, src);
    if (ctx->tape.anomaly) {
        if (!rec) { /* still name the op in the report */
            out->op = op;
            out->nsrc = n < SG_MAX_SRC ? n : SG_MAX_SRC;
            for (int i = 0; i < out->nsrc; i++)
                out->src[i] = src[i];
        }
        bool bad = anomalous_forward(ctx, out);
        if (!rec) {
            out->op = SG_OP_NONE;
            out->nsrc = 0;
        }
        /* A NaN or Inf is an error in anomaly mode: the op fails like any other, so that
         * what follows propagates NULL (and layers return -1) instead of computing on. */
        if (bad)
            return NULL;
    }
    return out;
}

/* ---- backward ------------------------------------------------------------------------ */

/* The one place that runs an op's backward: its table entry's, with a loud default. */
static bool dispatch(sg_ctx *ctx, sg_tensor *t) {
    const sg_op_info *info = sg__op(t->op);
    if (!info->backward) {
        sg_error(ctx, "sg_backward: op '%s' (%d) has no backward", sg_op_name(t->op), t->op);
        return false;
    }
    info->backward(ctx, t);
    return true;
}

/* ---- gradient-ready notification (sg_backward_ex) --------------------------------------
 * A parameter's gradient is complete once every node that reads it has run its backward.
 * The walk visits each node after all of its consumers, so counting the parameter's uses
 * on the tape first and counting them down as the walk passes each user finds the moment
 * exactly. The counts live in a small open-addressing table keyed by the tensor's address:
 * parameters are shared between workspaces and must not be written. */
typedef struct {
    sg_tensor *param;
    int64_t uses;
} use_slot;
typedef struct {
    use_slot *v;
    size_t mask; /* capacity - 1, capacity a power of two */
} use_table;

static bool is_param_input(const sg_tensor *t) {
    return t && (t->flags & SG_FLAG_PARAM) && (t->flags & SG_FLAG_REQUIRES_GRAD);
}

static use_slot *use_find(use_table *u, const sg_tensor *p) {
    size_t h = ((uintptr_t)p >> 4) * UINT64_C(0x9E3779B97F4A7C15);
    for (size_t i = h & u->mask;; i = (i + 1) & u->mask)
        if (u->v[i].param == p || !u->v[i].param)
            return &u->v[i];
}

/* Count every parameter input of every node from `out` back; -1 when out of memory. */
static int use_count(sg_ctx *ctx, use_table *u, sg_tensor *out) {
    size_t pairs = 0;
    for (sg_tensor *t = out; t; t = t->tape_prev) {
        sg_tensor *const *in;
        int n = sg__node_inputs(t, &in);
        for (int i = 0; i < n; i++)
            pairs += is_param_input(in[i]);
    }
    size_t cap = 16;
    while (cap < 2 * pairs)
        cap *= 2;
    u->v = sg_calloc(cap, sizeof *u->v);
    u->mask = cap - 1;
    if (!u->v) {
        sg_error(ctx, "sg_backward_ex: out of memory");
        return -1;
    }
    for (sg_tensor *t = out; t; t = t->tape_prev) {
        sg_tensor *const *in;
        int n = sg__node_inputs(t, &in);
        for (int i = 0; i < n; i++)
            if (is_param_input(in[i])) {
                use_slot *s = use_find(u, in[i]);
                s->param = in[i];
                s->uses++;
            }
    }
    return 0;
}

/* Node t's backward has run (or had nothing to do): count its parameter inputs down. */
static void use_done(use_table *u, sg_tensor *t, const sg_backward_options *o) {
    sg_tensor *const *in;
    int n = sg__node_inputs(t, &in);
    for (int i = 0; i < n; i++)
        if (is_param_input(in[i])) {
            use_slot *s = use_find(u, in[i]);
            if (--s->uses == 0)
                o->grad_ready(o->user, in[i]);
        }
}

static int backward(sg_ctx *ctx, sg_tensor *out, sg_tensor *grad, const sg_backward_options *o);

int sg_backward(sg_ctx *ctx, sg_tensor *out, sg_tensor *grad) {
    return backward(ctx, out, grad, NULL);
}

int sg_backward_ex(sg_ctx *ctx, sg_tensor *out, sg_tensor *grad, const sg_backward_options *o) {
    return backward(ctx, out, grad, o && o->grad_ready ? o : NULL);
}

static int backward(sg_ctx *ctx, sg_tensor *out, sg_tensor *grad, const sg_backward_options *o) {

    if (!ctx || !out)
        return -1;
    if (!sg_check(ctx, out, "sg_backward") || (grad && !sg_check(ctx, grad, "sg_backward")))
        return -1;
    char a[96], b[96];
    if (!(out->flags & SG_FLAG_REQUIRES_GRAD)) {
        sg_error(ctx, "sg_backward: the tensor does not require grad (no input required grad, "
                      "or it was computed with grad mode off)");
        return -1;
    }
    if (!grad && sg_numel(out) != 1) {
        sg_error(ctx,
                 "sg_backward: output of shape %s is not a scalar; pass an upstream "
                 "gradient",
                 sg_shape_str(out->ndim, out->shape, a, sizeof a));
        return -1;
    }
    if (grad && (!sg__same_shape(grad, out) || grad->dtype != out->dtype)) {
        sg_error(ctx, "sg_backward: upstream gradient %s %s does not match output %s %s",
                 sg_shape_str(grad->ndim, grad->shape, a, sizeof a), sg_dtype_name(grad->dtype),
                 sg_shape_str(out->ndim, out->shape, b, sizeof b), sg_dtype_name(out->dtype));
        return -1;
    }
    if (out->op != SG_OP_NONE && !(out->flags & SG_FLAG_ON_TAPE)) {
        sg_error(ctx, "sg_backward: the tensor is not on the tape");
        return -1;
    }
    sg__tape_fresh(ctx);
    ctx->tape.ntcache = 0; /* parameters may have changed since the last backward */
    /* Seed dL/d(out). */
    sg_tensor *G = sg__grad(ctx, out);
    if (!G)
        return -1;
    if (grad)
        sg__acc_grad(ctx, out, grad);
    else if (out->dtype == SG_F32)
        *(float *)sg_data(G) += 1.0f;
    else
        *(double *)sg_data(G) += 1.0;

    use_table uses = {0};
    if (o && use_count(ctx, &uses, out))
        return -1;
    int rc = -1;
    for (sg_tensor *t = out; t; t = t->tape_prev) {
        if (t->op == SG_OP_NONE)
            continue;
        if (!t->grad) { /* nothing flowed here: its inputs get nothing from it */
            if (o)
                use_done(&uses, t, o);
            continue;
        }
        if (t->magic != SG_TENSOR_MAGIC) { /* arena memory overwritten by someone */
            sg_error(ctx, "sg_backward: a node on the tape is not a live tensor");
            return -1;
        }
        if (t->grad->flags & SG_FLAG_GRAD_LAZY) /* its backward reads all of it */
            sg__grad_settle(t->grad);
        if (!dispatch(ctx, t))
            goto done;
        if (ctx->tape.anomaly && !ctx->has_err) {
            sg_tensor *const *in;
            int n = sg__node_inputs(t, &in);
            for (int i = 0; i < n; i++) {
                const sg_tensor *g = in[i]->grad;
                /* a lazily zeroed one holds no values yet where no step reached it */
                const char *w = g && !(g->flags & SG_FLAG_GRAD_LAZY) ? nonfinite(g) : NULL;
                if (w) {
                    anomaly_report(ctx, t, w, "backward");
                    break;
                }
            }
        }
        if (ctx->has_err)
            goto done;
        /* An intermediate's gradient is consumed: recycle it, so that a second backward
         * through the same graph starts from zero and memory stays at a frontier. */
        if (!(t->flags & SG_FLAG_RETAIN_GRAD)) {
            sg__grad_release(ctx, t->grad);
            t->grad = NULL;
        }
        if (o)
            use_done(&uses, t, o);
    }
    rc = 0;
done:
    sg_free(uses.v);
    return rc;
}

int64_t sg_tape_size(const sg_ctx *ctx) {
    int64_t n = 0;
    if (!ctx || ctx->tape.tape_gen != ctx->gen) /* nothing recorded since the last reset */
        return 0;
    for (const sg_tensor *t = ctx->tape.tail; t; t = t->tape_prev)
        n++;
    return n;
}

/* ---- grad mode, leaves ----------------------------------------------------------------- */

bool sg_ctx_set_grad_enabled(sg_ctx *ctx, bool on) {
    if (!ctx)
        return false;
    bool old = !ctx->tape.grad_disabled;
    ctx->tape.grad_disabled = !on;
    return old;
}
bool sg_ctx_grad_enabled(const sg_ctx *ctx) { return ctx && !ctx->tape.grad_disabled; }

bool sg_ctx_set_training(sg_ctx *ctx, bool on) {
    if (!ctx)
        return false;
    bool old = !ctx->tape.eval_mode;
    ctx->tape.eval_mode = !on;
    return old;
}
bool sg_ctx_training(const sg_ctx *ctx) { return ctx && !ctx->tape.eval_mode; }

sg_tensor *sg_set_requires_grad(sg_tensor *t, bool on) {
    if (!sg_check(sg__ctx_of(t), t, "sg_set_requires_grad"))
        return NULL;
    if (on && !sg_dtype_is_float(t->dtype))
        return sg_error(t->ctx, "sg_set_requires_grad: an %s tensor never requires grad",
                        sg_dtype_name(t->dtype));
    if (on)
        t->flags |= SG_FLAG_REQUIRES_GRAD;
    else if (t->op == SG_OP_NONE)
        t->flags &= ~(uint32_t)SG_FLAG_REQUIRES_GRAD;
    else
        return sg_error(t->ctx,
                        "sg_set_requires_grad: only a leaf can stop requiring grad "
                        "(this tensor is the output of %s)",
                        sg_op_name(t->op));
    return t;
}

sg_tensor *sg_retain_grad(sg_tensor *t) {
    if (!sg_check(sg__ctx_of(t), t, "sg_retain_grad"))
        return NULL;
    t->flags |= SG_FLAG_RETAIN_GRAD;
    return t;
}

/* A parameter's gradient goes with it. */
static void param_dtor(sg_tensor *t) {
    sg_tensor_free(t->grad);
    t->grad = NULL;
}

sg_tensor *sg_param_new(sg_ctx *ctx, sg_dtype dt, int ndim, const int64_t *shape,
                        const char *name) {
    /* The gradient first: sg_ctx_free frees the newest first, so the parameter's dtor
     * always finds its gradient alive. */
    if (ctx && (dt == SG_I64 || dt == SG_I32))
        return sg_error(ctx, "sg_param_new: a parameter is float32 or float64, not %s",
                        sg_dtype_name(dt));
    sg_tensor *g = sg__persistent_new(ctx, "sg_param_new", dt, ndim, shape, NULL);
    sg_tensor *t = g ? sg__persistent_new(ctx, "sg_param_new", dt, ndim, shape, param_dtor) : NULL;
    if (!t) {
        sg_tensor_free(g);
        return NULL;
    }
    t->grad = g;
    t->flags |= SG_FLAG_PARAM | SG_FLAG_REQUIRES_GRAD;
    sg_tensor_set_name(t, name);
    return t;
}

void sg_ctx_zero_grad(sg_ctx *ctx) {
    for (sg_tensor *t = sg__persist_next(ctx, NULL); t; t = sg__persist_next(ctx, t))
        if ((t->flags & SG_FLAG_PARAM) && t->grad)
            sg_fill(t->grad, 0.0);
}

/* ---- time steps and labels ------------------------------------------------------------- */

int64_t sg_ctx_set_step(sg_ctx *ctx, int64_t t) {
    if (!ctx)
        return -1;
    int64_t old = (int64_t)ctx->tape.step - 1;
    ctx->tape.step = t < 0 ? 0 : t >= INT32_MAX - 1 ? INT32_MAX : (int32_t)(t + 1);
    return old;
}

int64_t sg_node_step(const sg_tensor *t) {
    return t && t->magic == SG_TENSOR_MAGIC && t->op != SG_OP_NONE ? (int64_t)t->step - 1 : -1;
}

bool sg_ctx_set_labels(sg_ctx *ctx, bool on) {
    if (!ctx)
        return false;
    bool old = ctx->tape.labels;
    ctx->tape.labels = on;
    return old;
}

bool sg_ctx_labels(const sg_ctx *ctx) { return ctx && ctx->tape.labels; }

sg_tensor *sg_label(sg_ctx *ctx, sg_tensor *t, const char *name) {
    if (t && ctx && ctx->tape.labels)
        sg_tensor_set_name(t, name);
    return t;
}
