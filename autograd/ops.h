/* Internal to autograd: the op table, recording, the in-place marks, and the helpers the
 * backward functions share. Not installed.
 *
 * Contract of every backward function bw(ctx, out): out->grad holds dL/d(out) (out's shape);
 * ACCUMULATE (+=) dL/d(src[i]) into the gradient of every input that requires grad,
 * obtained with sg__grad(ctx, src[i]) (or sg__acc_grad for a whole-tensor add). */
#ifndef SG_AUTOGRAD_OPS_H
#define SG_AUTOGRAD_OPS_H

#include "../tensor/internal.h"
#include "autograd.h"

/* ---- the op table ---------------------------------------------------------------------
 * One entry per op (autograd/optable.c, guarded by a static_assert against SG_OP_COUNT);
 * custom ops get entries of the same kind at run time. The engine reads only this. */
enum {
    SG_READS_IN0 = 1u << 0, /* backward reads input k's values: bit k (k < SG_MAX_SRC) */
    SG_READS_IN1 = 1u << 1,
    SG_READS_IN2 = 1u << 2,
    SG_READS_OUT = 1u << 4, /* backward reads the op's own output */
};
enum {
    SG_OPF_VIEW = 1u << 0,         /* output shares input 0's storage (in-place checks look
                                      through views to the leaf below) */
    SG_OPF_GRAD_VIEW = 1u << 1,    /* output's gradient may be a view into input 0's (slices) */
    SG_OPF_GRAD_DENSE = 1u << 2,   /* backward wants its inputs' gradients contiguous */
    SG_OPF_AUX_INPUTS = 1u << 3,   /* any number of inputs: the full list is in aux (concat) */
    SG_OPF_GRAD_LAZY = 1u << 4,    /* output's gradient is zeroed block by block along axis 0,
                                      as steps reach it, and may have padded rows (grad.c) */
    SG_OPF_GRAD_STRIDED = 1u << 5, /* backward reads the output's gradient through its
                                      strides: it may be handed one with padded rows */
};
typedef struct sg_op_info {
    const char *name;
    unsigned reads; /* SG_READS_*: a 1 too many only makes an in-place op refuse; a 1 too
                       few would let one corrupt a gradient */
    unsigned flags; /* SG_OPF_* */
    void (*backward)(sg_ctx *ctx, sg_tensor *out);
} sg_op_info;

extern const sg_op_info sg__op_table[SG_OP_COUNT];
/* The entry of a custom op id (>= SG_OP_COUNT); for an id never registered, an entry with
 * no name and no backward. */
const sg_op_info *sg__custom_info(int op);
static inline const sg_op_info *sg__op(int op) {
    return op >= 0 && op < SG_OP_COUNT ? &sg__op_table[op] : sg__custom_info(op);
}

/* ---- recording ------------------------------------------------------------------------ */

/* The workspace's tape state, cleared on first use after a reset. */
static inline void sg__tape_fresh(sg_ctx *ctx) {
    if (ctx->tape.tape_gen != ctx->gen) {
        ctx->tape.tape_gen = ctx->gen;
        ctx->tape.tail = NULL;
        ctx->tape.npool = 0;
        ctx->tape.ntcache = 0;
    }
}

/* Does any of the inputs require grad, with grad mode on? */
static inline bool sg__any_requires_grad(const sg_ctx *ctx, int n, sg_tensor *const *src) {
    if (ctx->tape.grad_disabled || ctx->tape.quiet)
        return false;
    for (int i = 0; i < n; i++)
        if (src[i] && (src[i]->flags & SG_FLAG_REQUIRES_GRAD))
            return true;
    return false;
}

/* In-place safety (autograd/inplace.c). An in-place op (sg_sigmoid_, sg_add_, sg_addmm_)
 * overwrites a buffer: only safe when no recorded backward still reads the values it
 * overwrites. So recording a node marks what its backward reads (the table's reads): a plain
 * view that is read marks its whole buffer (the storage root's marks become SG__WHOLE, which
 * makes finer marks moot); an in-place result that is read gets a finer mark of the region it
 * covers, so that later in-place ops on *other* parts of the buffer (the four gate slices of
 * one LSTM pre-activation) stay allowed. Parameters are never marked: in-place ops refuse them
 * anyway, and a workspace never writes to a parameter. Marks carry the arena generation
 * (mark_gen): a reset forgets them. */
extern sg_tensor sg__whole_mark;
#define SG__WHOLE (&sg__whole_mark)
void sg__save_inplace(sg_ctx *ctx, sg_tensor *t);
static inline void sg__save(sg_ctx *ctx, sg_tensor *t) {
    if (t->flags & SG_FLAG_PARAM)
        return;
    if (!(t->flags & SG_FLAG_INPLACE)) {
        sg_storage *r = t->storage->root;
        r->mark_gen = ctx->gen + 1;
        r->marks = SG__WHOLE;
    } else if (!(t->flags & SG_FLAG_SAVED)) {
        sg__save_inplace(ctx, t);
    }
}

/* Record `out` as a tape node of `op` with inputs src[0..n) when gradients are enabled
 * and any input requires grad, and mark what its backward will read. Returns true when
 * recorded. Inline: every op calls it. */
static inline bool sg__record(sg_ctx *ctx, sg_tensor *out, int op, int n, sg_tensor *const *src) {
    if (!out || !sg__any_requires_grad(ctx, n, src))
        return false;
    sg__tape_fresh(ctx);
    out->flags |= SG_FLAG_REQUIRES_GRAD | SG_FLAG_ON_TAPE;
    out->op = op;
    out->step = ctx->tape.step;
    out->nsrc = n < SG_MAX_SRC ? n : SG_MAX_SRC;
    for (int i = 0; i < out->nsrc; i++)
        out->src[i] = src[i];
    out->tape_prev = ctx->tape.tail;
    ctx->tape.tail = out;
    const sg_op_info *info = sg__op(op);
    unsigned reads = info->reads;
    if (reads | (info->flags & SG_OPF_GRAD_DENSE)) {
        for (int i = 0; i < out->nsrc; i++) {
            if (reads >> i & 1)
                sg__save(ctx, src[i]);
            if ((info->flags & SG_OPF_GRAD_DENSE) && !(src[i]->flags & SG_FLAG_PARAM))
                src[i]->flags |= SG_FLAG_GRAD_DENSE;
        }
        if (reads & SG_READS_OUT)
            sg__save(ctx, out);
    }
    return true;
}

/* The tensor below x's chain of recorded views (x itself when it is no recorded view). */
static inline const sg_tensor *sg__view_base(const sg_tensor *x) {
    while ((sg__op(x->op)->flags & SG_OPF_VIEW) && x->nsrc == 1)
        x = x->src[0];
    return x;
}

/* Is it safe to overwrite x in place, for the in-place op fn whose other inputs are
 * others[0..n)? False (with an error naming fn and the reason) when x is a leaf that
 * requires grad or a view of one, has an expanded (stride-0) dimension, overlaps one of the
 * other inputs (unless `same_ok` and it is the very same view), or holds values a recorded
 * backward still reads; or, with grad mode on, when x is (a view of) a detached view of a
 * parameter (SG_FLAG_NO_WRITE). */
bool sg__inplace_check(sg_ctx *ctx, const char *fn, sg_tensor *x, int n, sg_tensor *const *others,
                       bool same_ok);
/* The result node of an in-place op on x: a new header over x's elements, flagged
 * SG_FLAG_INPLACE (sg__finish then records it with x among its inputs). */
sg_tensor *sg__inplace_result(sg_ctx *ctx, sg_tensor *x);

/* ---- gradients (autograd/grad.c) ------------------------------------------------------ */

/* Gradient buffer of t: created zeroed (contiguous, t's shape, in the arena) on first use;
 * a parameter's is its view into the store's gradient slab (or into this workspace's private
 * one); a slice's is usually a view into its input's gradient (strided: see grad.c). NULL
 * (with an error) only when out of memory. Inline: backward asks for it per input. */
sg_tensor *sg__grad_new(sg_ctx *ctx, sg_tensor *t); /* the slow path: grad.c */
static inline sg_tensor *sg__grad(sg_ctx *ctx, sg_tensor *t) {
    return t->grad && !(t->flags & SG_FLAG_PARAM) && !(t->grad->flags & SG_FLAG_GRAD_LAZY)
               ? t->grad
               : sg__grad_new(ctx, t);
}
/* sg__grad for a backward that writes every element of t's gradient: *set is true when
 * that gradient's elements are not there yet (a block of a lazily zeroed one, see grad.c),
 * which the backward then stores (=) instead of adding (+=). */
sg_tensor *sg__grad_set(sg_ctx *ctx, sg_tensor *t, bool *set);
/* Zero a lazily zeroed gradient's blocks not reached yet: it is then an ordinary one. */
void sg__grad_settle(sg_tensor *g);
/* A new tensor of `shape` (not zeroed) whose last dimension's rows are 64 bytes longer when
 * their bytes are a multiple of `align`, where they would crowd into a few cache sets
 * (ops_matmul.c has the reasons); NULL with an error when out of memory. */
sg_tensor *sg__new_padded(sg_ctx *ctx, const char *fn, sg_dtype dt, int ndim, const int64_t *shape,
                          int64_t align);
/* A parameter's gradient in this workspace: its view into the workspace's private slab
 * (sg_ctx_private_grads), else p->grad. NULL with an error for a parameter of another store. */
sg_tensor *sg__param_grad(sg_ctx *ctx, sg_tensor *p);
/* Give a gradient buffer that backward has consumed back to the pool (not a parameter's,
 * nor a view into another gradient). Inline: backward runs it for every node. */
static inline void sg__grad_release(sg_ctx *ctx, sg_tensor *g) {
    if (!g || (g->flags & (SG_FLAG_PERSISTENT | SG_FLAG_GRAD_ALIAS)) ||
        ctx->tape.npool == SG_GRAD_POOL) /* full: this one stays in the arena unused */
        return;
    ctx->tape.pool[ctx->tape.npool++] = g; /* backward made the tape fresh */
}
/* t->grad += out->grad for an op whose output's gradient is its input t's, element for
 * element (same shape): when t has no gradient yet (and is not a parameter, and out's
 * gradient is its own buffer that nobody keeps), the buffer is handed over instead of being
 * added into a new zeroed one; out->grad is then NULL. */
void sg__pass_grad(sg_ctx *ctx, sg_tensor *out, sg_tensor *t);
/* t->grad += g, where g has t's shape or a shape t broadcasts to (then g is summed over
 * the broadcast dimensions first, NumPy rules). No-op when t does not require grad. */
void sg__acc_grad(sg_ctx *ctx, sg_tensor *t, const sg_tensor *g);
/* C (m, n) = A (m, k) @ B (k, n), or C += A @ B when acc: the product every matmul node
 * runs (BLIS, or seqgrad's own kernels where they are faster; ops_matmul.c). Each operand
 * is a pointer to element (0, 0) with row and column strides in elements, as in BLIS's
 * typed API. Exposed for bench/bench_probe, which times a step's products through it. */
/* Products with m * n * k below this never go to BLIS (the register-blocked kernel where
 * it applies, else the direct kernel), and backward makes no row-major copy of B^T for
 * them (bench/README.md has the measurements). */
#define SG_MATMUL_SMALL (48 * 48 * 48)
void sg__gemm(sg_dtype dt, int64_t m, int64_t n, int64_t k, const void *a, int64_t rsa, int64_t csa,
              const void *b, int64_t rsb, int64_t csb, void *c, int64_t rsc, int64_t csc, bool acc);

/* Does input i of node `out` need a gradient? */
static inline bool sg__needs(const sg_tensor *out, int i) {
    return out->src[i] && (out->src[i]->flags & SG_FLAG_REQUIRES_GRAD);
}

/* The inputs of a node: src[] for most ops, the aux array for concat (any count). */
static inline int sg__node_inputs(const sg_tensor *t, sg_tensor *const **in) {
    if ((sg__op(t->op)->flags & SG_OPF_AUX_INPUTS) && t->aux) {
        *in = (sg_tensor *const *)t->aux;
        return (int)t->iparam[1];
    }
    *in = t->src;
    return t->nsrc;
}

/* Finish an op's forward: record it on the tape, and in anomaly mode check its output. */
sg_tensor *sg__finish(sg_ctx *ctx, sg_tensor *out, int op, int n, sg_tensor *const *src);

/* ops_shape.c */
void sg__bw_reshape(sg_ctx *ctx, sg_tensor *out);
void sg__bw_permute(sg_ctx *ctx, sg_tensor *out);
void sg__bw_slice(sg_ctx *ctx, sg_tensor *out); /* slice and select */
void sg__bw_expand(sg_ctx *ctx, sg_tensor *out);
void sg__bw_contiguous(sg_ctx *ctx, sg_tensor *out);
void sg__bw_concat(sg_ctx *ctx, sg_tensor *out);
/* ops_elementwise.c */
void sg__bw_add(sg_ctx *ctx, sg_tensor *out);
void sg__bw_sub(sg_ctx *ctx, sg_tensor *out);
void sg__bw_mul(sg_ctx *ctx, sg_tensor *out);
void sg__bw_div(sg_ctx *ctx, sg_tensor *out);
void sg__bw_neg(sg_ctx *ctx, sg_tensor *out);
void sg__bw_scale(sg_ctx *ctx, sg_tensor *out);
void sg__bw_add_scalar(sg_ctx *ctx, sg_tensor *out);
void sg__bw_square(sg_ctx *ctx, sg_tensor *out);
void sg__bw_sigmoid(sg_ctx *ctx, sg_tensor *out);
void sg__bw_tanh(sg_ctx *ctx, sg_tensor *out);
void sg__bw_hard_sigmoid(sg_ctx *ctx, sg_tensor *out);
void sg__bw_relu(sg_ctx *ctx, sg_tensor *out);
void sg__bw_exp(sg_ctx *ctx, sg_tensor *out);
void sg__bw_log(sg_ctx *ctx, sg_tensor *out);
/* elementwise unary (issue 13) */
void sg__bw_abs(sg_ctx *ctx, sg_tensor *out);
void sg__bw_sqrt(sg_ctx *ctx, sg_tensor *out);
void sg__bw_rsqrt(sg_ctx *ctx, sg_tensor *out);
void sg__bw_pow(sg_ctx *ctx, sg_tensor *out);
void sg__bw_clamp(sg_ctx *ctx, sg_tensor *out);
void sg__bw_softplus(sg_ctx *ctx, sg_tensor *out);
void sg__bw_log_sigmoid(sg_ctx *ctx, sg_tensor *out);
/* ops_matmul.c */
void sg__bw_matmul(sg_ctx *ctx, sg_tensor *out);
void sg__bw_addmm(sg_ctx *ctx, sg_tensor *out);
void sg__bw_seqmm(sg_ctx *ctx, sg_tensor *out);
void sg__bw_seqmm_step(sg_ctx *ctx, sg_tensor *out);
/* ops_reduce.c */
void sg__bw_sum(sg_ctx *ctx, sg_tensor *out);
void sg__bw_softmax(sg_ctx *ctx, sg_tensor *out);
void sg__bw_log_softmax(sg_ctx *ctx, sg_tensor *out);
/* ops_loss.c */
void sg__bw_cross_entropy(sg_ctx *ctx, sg_tensor *out);
void sg__bw_bce_logits(sg_ctx *ctx, sg_tensor *out);
void sg__bw_mse(sg_ctx *ctx, sg_tensor *out);
/* ops_norm.c */
void sg__bw_layer_norm(sg_ctx *ctx, sg_tensor *out);
/* ops_random.c */
void sg__bw_dropout(sg_ctx *ctx, sg_tensor *out);
/* ops_index.c */
void sg__bw_gather(sg_ctx *ctx, sg_tensor *out); /* gather and index_select */
void sg__bw_where(sg_ctx *ctx, sg_tensor *out);
void sg__bw_lerp(sg_ctx *ctx, sg_tensor *out);

/* ---- broadcasting several inputs (ops_index.c; where and lerp) -------------------------- */
/* The broadcast shape of n shapes (NumPy: aligned at the trailing dimension) into shape[],
 * skipping dimension `skip` of the result (-1: none; there shape[skip] is left 1). Its
 * ndim, or -1 when they do not broadcast. */
int sg__bcast_n(int n, sg_tensor *const *ts, int skip, int64_t *shape);
/* t as a view of the (bigger) broadcast shape when it differs from t's own, else t. The
 * view is recorded (sg_expand) when t requires grad, so that its backward sums the gradient
 * over the broadcast dimensions. */
sg_tensor *sg__expand_to(sg_ctx *ctx, sg_tensor *t, int nd, const int64_t *shape);
/* The three inputs of a broadcasting ternary op (where, lerp) replaced by views of their
 * broadcast shape (sg__expand_to: recorded expands sum the gradients back over the broadcast
 * dimensions, so the op's kernels never reduce), and a new uninitialised output of that shape
 * and dtype dt. NULL with an error naming fn and the three shapes (each followed by its name
 * from names[]) when they do not broadcast. */
sg_tensor *sg__bcast3(sg_ctx *ctx, const char *fn, const char *const names[3], sg_tensor *in[3],
                      sg_dtype dt);
/* ops_gru.c */
void sg__bw_gru_gates(sg_ctx *ctx, sg_tensor *out);
/* ops_lstm.c */
void sg__bw_lstm_gates(sg_ctx *ctx, sg_tensor *out);

#endif
