/* seqgrad autograd: differentiable ops, the define-by-run tape, backward, gradient
 * checking, graph export and anomaly mode.
 *
 * Every op below takes the context first, returns a new arena tensor (or a view), and
 * when any input requires grad (and grad mode is on) records itself on the context's tape.
 * sg_backward walks the tape in reverse from a tensor and ACCUMULATES (+=) gradients into
 * `grad` of every leaf that requires grad (parameters, inputs) and of intermediates marked
 * with sg_retain_grad. Errors: NULL inputs give NULL; problems (shape mismatch, mixed
 * dtypes, stale tensors) give NULL and a message in sg_ctx_error naming the op and shapes.
 *
 * Broadcasting (binary ops) follows NumPy: shapes align at the trailing dimension, a size-1
 * or missing dimension stretches; backward sums the gradient over stretched dimensions.
 */
#ifndef SG_AUTOGRAD_H
#define SG_AUTOGRAD_H

#include "../tensor/tensor.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ---- ops and flags ---------------------------------------------------------------------
 * The op that produced a tensor (its `op` field). SG_OP_NONE marks a leaf (created, not
 * computed, or computed while gradients were off). Each op is one entry of one table
 * (autograd/optable.c): its name, what its backward reads, and its backward function. Ids
 * from SG_OP_COUNT up are custom ops (sg_op_register). */
typedef enum {
    SG_OP_NONE = 0,
    /* views (no copy) */
    SG_OP_RESHAPE,
    SG_OP_PERMUTE,
    SG_OP_SLICE,
    SG_OP_SELECT,
    SG_OP_EXPAND,
    /* copies */
    SG_OP_CONTIGUOUS,
    SG_OP_CONCAT,
    /* indexing (issue 13) */
    SG_OP_INDEX_SELECT,
    SG_OP_GATHER,
    SG_OP_WHERE,
    /* elementwise binary (broadcasting) */
    SG_OP_ADD,
    SG_OP_SUB,
    SG_OP_MUL,
    SG_OP_DIV,
    SG_OP_LERP,
    /* elementwise unary */
    SG_OP_NEG,
    SG_OP_SCALE,
    SG_OP_ADD_SCALAR,
    SG_OP_SIGMOID,
    SG_OP_TANH,
    SG_OP_HARD_SIGMOID,
    SG_OP_RELU,
    SG_OP_EXP,
    SG_OP_LOG,
    SG_OP_SQUARE,
    /* elementwise unary (issue 13) */
    SG_OP_ABS,
    SG_OP_SQRT,
    SG_OP_RSQRT,
    SG_OP_POW,
    SG_OP_CLAMP,
    SG_OP_SOFTPLUS,
    SG_OP_LOG_SIGMOID,
    /* linear algebra */
    SG_OP_MATMUL,
    SG_OP_ADDMM,
    SG_OP_SEQMM,
    SG_OP_SEQMM_STEP,
    SG_OP_SEQMM_X,
    /* along an axis */
    SG_OP_SOFTMAX,
    SG_OP_LOG_SOFTMAX,
    SG_OP_SUM,
    /* normalisation */
    SG_OP_LAYER_NORM,
    /* random (issue 13) */
    SG_OP_DROPOUT,
    /* recurrent cells' fused gate arithmetic */
    SG_OP_GRU_GATES,
    SG_OP_LSTM_GATES,
    /* losses (stable fused forms) */
    SG_OP_CROSS_ENTROPY,
    SG_OP_BCE_LOGITS,
    SG_OP_MSE,
    SG_OP_COUNT
} sg_op;

/* Name of an op ("add", "matmul", a custom op's name); "unknown-op" for an id that is none. */
const char *sg_op_name(int op);

/* Autograd's tensor flags (bits 8 and up of sg_tensor.flags; tensor/ owns the low byte). */
enum {
    SG_FLAG_REQUIRES_GRAD = 1u << 8, /* gradients flow to / through this tensor */
    SG_FLAG_PARAM = 1u << 9,         /* a parameter: persistent, has a persistent grad */
    SG_FLAG_RETAIN_GRAD = 1u << 10,  /* keep grad of an intermediate after backward */
    SG_FLAG_ON_TAPE = 1u << 11,      /* recorded as a node on the tape */
    SG_FLAG_INPLACE = 1u << 12,      /* made by an in-place op (sg_sigmoid_, sg_add_, ...) */
    SG_FLAG_SAVED = 1u << 13,        /* an in-place result some backward reads (internal) */
    SG_FLAG_GRAD_DENSE = 1u << 14,  /* a consumer's backward wants its grad contiguous (internal) */
    SG_FLAG_GRAD_ALIAS = 1u << 15,  /* a slice's grad: a view into its input's grad (internal) */
    SG_FLAG_STORED = 1u << 16,      /* a parameter of a store (sg_store_param) */
    SG_FLAG_NO_WRITE = 1u << 17,    /* a detached view of a parameter: in-place ops refuse it */
    SG_FLAG_GRAD_LAZY = 1u << 18,   /* a gradient whose blocks are zeroed when first reached
                                       (autograd/grad.c; internal) */
    SG_FLAG_GRAD_PADDED = 1u << 19, /* a gradient with padded rows: not contiguous (internal) */
};

/* Mark a leaf as requiring grad (grad allocated lazily at backward). Returns t, or NULL with
 * an error (stale tensor; turning it off for a tensor that is not a leaf). */
sg_tensor *sg_set_requires_grad(sg_tensor *t, bool on);
/* Keep the gradient of an intermediate tensor after backward (t->grad). */
sg_tensor *sg_retain_grad(sg_tensor *t);
/* A parameter: a persistent tensor (see sg_persistent_new) that requires grad and owns a
 * persistent zeroed grad, freed with it. `name` may be NULL. */
sg_tensor *sg_param_new(sg_ctx *ctx, sg_dtype dt, int ndim, const int64_t *shape, const char *name);

/* ---- views (no copy), recorded on the tape like any op -------------------------------- */
/* Reshape; one dimension may be -1. A view when the strides allow it (always for a
 * contiguous tensor), otherwise an error naming both shapes; use sg_contiguous first. */
sg_tensor *sg_reshape(sg_ctx *ctx, sg_tensor *x, int ndim, const int64_t *shape);
/* Permute dimensions: out.shape[i] = x.shape[perm[i]]. */
sg_tensor *sg_permute(sg_ctx *ctx, sg_tensor *x, const int *perm);
/* Swap two axes (negative axes count from the end). */
sg_tensor *sg_transpose(sg_ctx *ctx, sg_tensor *x, int axis0, int axis1);
/* x[..., start:start+len, ...] along `axis`, keeping the axis. */
sg_tensor *sg_slice(sg_ctx *ctx, sg_tensor *x, int axis, int64_t start, int64_t len);
/* x[..., index, ...]: drops `axis` (e.g. x[:, t, :] of (B, T, I) is (B, I)). */
sg_tensor *sg_select(sg_ctx *ctx, sg_tensor *x, int axis, int64_t index);
/* Split into n equal parts along axis (size must divide), or into given sizes (must sum to
 * the size). Writes n views into out[]. Return 0, or -1 with an error. */
int sg_split(sg_ctx *ctx, sg_tensor *x, int axis, int n, sg_tensor **out);
int sg_split_sizes(sg_ctx *ctx, sg_tensor *x, int axis, int n, const int64_t *sizes,
                   sg_tensor **out);
/* Broadcast to a larger shape as a view with stride 0 (NumPy broadcast_to). */
sg_tensor *sg_expand(sg_ctx *ctx, sg_tensor *x, int ndim, const int64_t *shape);
/* x itself when contiguous, else a contiguous copy (recorded, differentiable). */
sg_tensor *sg_contiguous(sg_ctx *ctx, sg_tensor *x);
/* A view of x's elements with no history (torch.Tensor.detach): it shares x's storage (so
 * later writes to x show through it), is a leaf (op SG_OP_NONE) and does not require grad;
 * nothing is recorded, so a backward through ops on it never reaches x or x's history. An
 * arena tensor (dies at sg_ctx_reset): to keep the values, copy them (sg_copy into a
 * persistent tensor). A detached view of a parameter (or of a view of one) is read-only
 * while grad mode is on: in-place ops refuse it rather than change the parameter. NULL x
 * gives NULL; a stale x, an error. */
sg_tensor *sg_detach(sg_ctx *ctx, sg_tensor *x);

/* ---- elementwise, broadcasting ------------------------------------------------------- */
sg_tensor *sg_add(sg_ctx *ctx, sg_tensor *a, sg_tensor *b);
sg_tensor *sg_sub(sg_ctx *ctx, sg_tensor *a, sg_tensor *b);
sg_tensor *sg_mul(sg_ctx *ctx, sg_tensor *a, sg_tensor *b);
sg_tensor *sg_div(sg_ctx *ctx, sg_tensor *a, sg_tensor *b);
/* torch.lerp with a tensor weight: out = a + w * (b - a) elementwise, one op (a GRU's
 * h' = z * h + (1 - z) * h~ is sg_lerp(h~, h, z)). a, b and w are float tensors of one dtype,
 * any strides, broadcast against each other (NumPy rules) to out's shape, a new tensor.
 * Gradients: a gets (1 - w) g, b gets w g, w gets (b - a) g, each summed over the dimensions
 * it was broadcast in. NULL for any NULL input; errors (NULL returned): a stale or non-float
 * input, dtypes that differ ("sg_lerp: dtype mismatch: float32 and float64"), shapes that do
 * not broadcast ("sg_lerp: shapes (2, 3) (a), (4,) (b) and (2, 3) (w) do not broadcast"). */
sg_tensor *sg_lerp(sg_ctx *ctx, sg_tensor *a, sg_tensor *b, sg_tensor *w);
sg_tensor *sg_neg(sg_ctx *ctx, sg_tensor *x);
sg_tensor *sg_scale(sg_ctx *ctx, sg_tensor *x, double s);      /* s * x */
sg_tensor *sg_add_scalar(sg_ctx *ctx, sg_tensor *x, double s); /* x + s */
sg_tensor *sg_square(sg_ctx *ctx, sg_tensor *x);               /* x * x */
/* The unary maths below take x of any shape and strides, float32 or float64, and return a
 * new contiguous tensor of x's shape (torch's function named beside each). NaN in x gives
 * NaN out, and NULL x gives NULL. Gradients follow PyTorch at the points where the
 * derivative is undefined or infinite, as stated for each. */
/* |x| (torch.abs). Gradient sign(x): +1, -1, and 0 at x = 0 and at NaN (as PyTorch). */
sg_tensor *sg_abs(sg_ctx *ctx, sg_tensor *x);
/* sqrt(x) (torch.sqrt): NaN for x < 0. Gradient 1 / (2 sqrt(x)): +inf at x = 0, NaN below. */
sg_tensor *sg_sqrt(sg_ctx *ctx, sg_tensor *x);
/* 1 / sqrt(x) (torch.rsqrt): +inf at x = 0, NaN for x < 0. Gradient -x^(-3/2) / 2, computed
 * from the output as -y^3 / 2: -inf at x = 0, NaN below. */
sg_tensor *sg_rsqrt(sg_ctx *ctx, sg_tensor *x);
/* x^p for a scalar p (torch.pow(x, p)), C's pow (powf for float32, p rounded to float).
 * Gradient p * x^(p-1), with PyTorch's conventions: exactly 0 everywhere when p == 0; at
 * x = 0 it is 0 for p > 1, 1 for p == 1, +-inf for p < 1 (0.5 * 0^-0.5 = inf); negative x
 * with a non-integer p gives NaN value and gradient. Any p is accepted (NaN p: NaN out). */
sg_tensor *sg_pow(sg_ctx *ctx, sg_tensor *x, double p);
/* min(max(x, lo), hi) (torch.clamp). lo may be -INFINITY and hi INFINITY for a one-sided
 * clamp. Gradient 1 where lo <= x <= hi (both boundaries included, as PyTorch), 0 outside
 * and at NaN x (NaN x gives NaN out). The bounds are rounded to x's dtype. Errors: lo > hi,
 * or a NaN bound ("sg_clamp: lo = 2 > hi = 1"). */
sg_tensor *sg_clamp(sg_ctx *ctx, sg_tensor *x, double lo, double hi);
/* log(1 + exp(x)) (torch.nn.functional.softplus, beta 1), computed as
 * max(x, 0) + log1p(exp(-|x|)): no overflow for any x (softplus(1000) = 1000, softplus(-1000)
 * = 0). PyTorch returns x itself above its threshold 20; this differs from that by less than
 * 2.1e-9 absolute (1e-10 relative) there. Gradient sigmoid(x). */
sg_tensor *sg_softplus(sg_ctx *ctx, sg_tensor *x);
/* log(sigmoid(x)) (torch.nn.functional.logsigmoid), computed as -softplus(-x): no overflow
 * or log(0) for any x (log_sigmoid(-1000) = -1000). Gradient sigmoid(-x). */
sg_tensor *sg_log_sigmoid(sg_ctx *ctx, sg_tensor *x);

/* ---- activations --------------------------------------------------------------------- */
sg_tensor *sg_sigmoid(sg_ctx *ctx, sg_tensor *x);
sg_tensor *sg_tanh(sg_ctx *ctx, sg_tensor *x);
sg_tensor *sg_hard_sigmoid(sg_ctx *ctx, sg_tensor *x); /* Keras 2: clip(0.2x + 0.5, 0, 1) */
sg_tensor *sg_relu(sg_ctx *ctx, sg_tensor *x);
sg_tensor *sg_exp(sg_ctx *ctx, sg_tensor *x);
sg_tensor *sg_log(sg_ctx *ctx, sg_tensor *x);

/* Activations by Keras name, for layers. */
typedef enum {
    SG_ACT_TANH,
    SG_ACT_SIGMOID,
    SG_ACT_HARD_SIGMOID,
    SG_ACT_RELU,
    SG_ACT_LINEAR
} sg_activation;
sg_tensor *sg_activate(sg_ctx *ctx, sg_tensor *x, sg_activation act);
const char *sg_activation_name(sg_activation act);
int sg_activation_from_name(const char *name); /* -1 if unknown */

/* ---- linear algebra ------------------------------------------------------------------ */
/* (M, K) @ (K, N) -> (M, N); (B, M, K) @ (B, K, N) -> (B, M, N); (..., M, K) @ (K, N) ->
 * (..., M, N). Operands may be any strided views (transposes, slices): they are read in
 * place. Products go to BLIS, or below its break-even sizes to seqgrad's own kernels (a
 * direct one for tiny products, a register-blocked AVX-512 one up to an LSTM step's). */
sg_tensor *sg_matmul(sg_ctx *ctx, sg_tensor *a, sg_tensor *b);
/* c + a @ b, with c broadcast to the product's shape (torch.addmm, batched like
 * sg_matmul): a bias (N,) for a Dense layer, or a full (M, N) term. One node, one buffer. */
sg_tensor *sg_addmm(sg_ctx *ctx, sg_tensor *c, sg_tensor *a, sg_tensor *b);
/* Threads BLIS may use for large products (default 1). Returns the previous value. */
int sg_set_num_threads(int n);
/* The BLIS kernel configuration in use ("skx", "haswell", "zen3", "generic", ...). On CPUs
 * with AVX-512 seqgrad selects "skx" unless BLIS_ARCH_TYPE is set (BLIS 0.9 falls back to
 * "generic" on CPUs it does not know, such as AMD Zen 5). */
const char *sg_blas_config(void);

/* ---- joining ------------------------------------------------------------------------- */
/* Concatenate n tensors along axis (all other dimensions equal). */
sg_tensor *sg_concat(sg_ctx *ctx, int n, sg_tensor *const *xs, int axis);
/* Stack n same-shaped tensors along a new axis. */
sg_tensor *sg_stack(sg_ctx *ctx, int n, sg_tensor *const *xs, int axis);

/* ---- indexing, selection, max and min ------------------------------------------------
 * Indices are int64 or int32 tensors (any strides) holding values in [0, size of the axis):
 * a negative or too large index is an error naming it ("sg_index_select: index 7 out of
 * range for axis 0 of size 5"), a float index tensor is refused. Values are float32 or
 * float64 views of any strides; axes may be negative (counting from the end). The gradient
 * of a gather-like op is scattered back: an element picked k times gets the sum of k
 * gradients. */

/* torch.index_select: x with `axis`' size replaced by len(idx); out[.., i, ..] =
 * x[.., idx[i], ..]. idx is 1-D. */
sg_tensor *sg_index_select(sg_ctx *ctx, sg_tensor *x, int axis, sg_tensor *idx);
/* torch.gather: idx has x's number of dimensions and idx.shape[d] <= x.shape[d] for every
 * d other than axis; out has idx's shape, out[p] = x[p with p[axis] replaced by idx[p]]. */
sg_tensor *sg_gather(sg_ctx *ctx, sg_tensor *x, int axis, sg_tensor *idx);
/* numpy.take_along_axis: like sg_gather, but x and idx (same number of dimensions)
 * broadcast against each other in every dimension but `axis` (NumPy rules); out has the
 * broadcast shape with idx's size along the axis. Recorded as expand(s) then gather.
 * Each sequence's last valid step of h (B, T, H), from lengths (B,) int64 in [1, T]:
 *
 *     sg_tensor *last = sg_cast(ctx, sg_add_scalar(ctx, sg_cast(ctx, lengths, SG_F64), -1),
 *                               SG_I64);                           // lengths - 1
 *     sg_tensor *idx = sg_reshape(ctx, last, SG_SHAPE(B, 1, 1));
 *     sg_tensor *h_last = sg_take_along_axis(ctx, h, 1, idx);      // (B, 1, H)
 */
sg_tensor *sg_take_along_axis(sg_ctx *ctx, sg_tensor *x, int axis, sg_tensor *idx);
/* out = cond != 0 ? a : b elementwise, cond, a and b broadcast against each other (NumPy
 * rules) to out's shape. cond may have any dtype (int or float; a NaN is != 0, so it
 * selects a) and gets no gradient; a and b are float of one dtype. The gradient goes to a
 * where cond holds, to b elsewhere, summed over the dimensions each was broadcast in. */
sg_tensor *sg_where(sg_ctx *ctx, sg_tensor *cond, sg_tensor *a, sg_tensor *b);
/* torch.masked_fill: x where mask is zero, `value` where it is not (mask of any dtype,
 * broadcast to x's shape, which is the output's). sg_where(mask, value, x): positions
 * filled get no gradient. */
sg_tensor *sg_masked_fill(sg_ctx *ctx, sg_tensor *x, sg_tensor *mask, double value);
/* Largest / smallest element along `axis` (the axis kept with size 1 when keepdims): the
 * FIRST one on ties (lowest index, as torch.argmax), and NaN when the row holds a NaN (its
 * first NaN, as torch.max). The values are differentiable (the whole gradient goes to the
 * chosen element; recorded as gather, then reshape unless keepdims). When indices is not
 * NULL it receives the positions, an int64 tensor of the values' shape (NULL on error).
 * An axis of size 0 is an error. */
sg_tensor *sg_max_axis(sg_ctx *ctx, sg_tensor *x, int axis, bool keepdims, sg_tensor **indices);
sg_tensor *sg_min_axis(sg_ctx *ctx, sg_tensor *x, int axis, bool keepdims, sg_tensor **indices);
/* The positions alone (same rules), int64; not recorded. */
sg_tensor *sg_argmax(sg_ctx *ctx, sg_tensor *x, int axis, bool keepdims);
sg_tensor *sg_argmin(sg_ctx *ctx, sg_tensor *x, int axis, bool keepdims);

/* ---- in place ------------------------------------------------------------------------
 * Like PyTorch's trailing-underscore ops: they overwrite their first argument's elements and
 * return a new tensor (a view over those elements) that carries the op on the tape; the
 * gradient still flows to the argument as it was. Afterwards every view of the buffer,
 * the argument included, shows the new values. They save memory (no new buffer) and are
 * refused, NULL with a message naming the reason, where they would break a gradient:
 *   - on a leaf that requires grad (a parameter) or a view of one, while grad mode is on;
 *     likewise on a detached view of a parameter (sg_detach);
 *   - on an expanded view (stride 0: several elements share one location);
 *   - when another input overlaps the elements written (sg_add_(x, x) is fine);
 *   - when a backward recorded earlier reads those elements (x = sg_sigmoid(z) saved its
 *     output, so sg_tanh_(x) is refused; sg_mul(x, w) saved x, likewise). This is tracked
 *     per slice: in-place ops on the four gate slices of one pre-activation are all fine.
 * Marks are forgotten at sg_ctx_reset. */
sg_tensor *sg_sigmoid_(sg_ctx *ctx, sg_tensor *x); /* x = sigmoid(x) */
sg_tensor *sg_tanh_(sg_ctx *ctx, sg_tensor *x);    /* x = tanh(x) */
/* In place for tanh and sigmoid (their backward needs only the output); hard_sigmoid and
 * relu need the input in backward, so they return a new tensor exactly as sg_activate;
 * linear returns x. */
sg_tensor *sg_activate_(sg_ctx *ctx, sg_tensor *x, sg_activation act);
sg_tensor *sg_add_(sg_ctx *ctx, sg_tensor *a, sg_tensor *b); /* a += b, b broadcast to a */
/* c += a @ b, c of exactly the product's shape (torch.Tensor.addmm_). */
sg_tensor *sg_addmm_(sg_ctx *ctx, sg_tensor *c, sg_tensor *a, sg_tensor *b);
/* The sequence recurrent product: z_t = c_t + a_t @ w for t = 0 .. T-1, where a_t is known
 * only after step t - 1 (an RNN layer's h_{t-1} @ recurrent_kernel). s = sg_seqmm(c, w), with
 * c (T, B, N) time-major and w (K, N), is a new (T, B, N) tensor holding c; then
 * sg_seqmm_step(s, t, a_t), a_t (B, K), adds a_t @ w into s[t] in place and returns s[t], a
 * (B, N) view. Each step at most once, in any order; a step may be skipped (a_t = 0, as for
 * h_0 = 0: read s[t] as sg_select(s, 0, t), but an op whose backward reads such a plain view
 * of s blocks every later step, by the in-place rules; tanh and sigmoid read only their
 * output). The backward of each step gives a_t its gradient dz_t @ w^T; w's gradient,
 * sum_t a_t^T @ dz_t, is computed after every step's as ONE (K, T*B) @ (T*B, N) product over
 * the steps taken (s keeps a copy of each a_t for it), which is faster than T products of
 * (K, B) @ (B, N). sg_seqmm_ works in place on c (refused when a recorded backward reads c,
 * or c is a leaf that requires grad). float32 or float64, any strides for c, w and a_t. The
 * steps read w as it was when sg_seqmm was called (some shapes from a copy with padded rows,
 * made then; while recording, an in-place change of w is refused anyway).
 * Errors: "sg_seqmm: c has shape (..) and w (..); expected (T, B, N) and (K, N)"; a step on
 * a tensor not made by sg_seqmm ("sg_seqmm_step: s is not the result of sg_seqmm or
 * sg_seqmm_"), t outside 0..T-1 ("sg_seqmm_step: step 5 outside 0..4"), a step taken twice
 * ("sg_seqmm_step: step 2 taken already"), a_t of another shape
 * ("sg_seqmm_step: a has shape (3, 2), expected (2, 3)"), a_t overlapping s[t], or s[t]
 * read by a recorded backward (the in-place rules of sg_addmm_). */
sg_tensor *sg_seqmm(sg_ctx *ctx, sg_tensor *c, sg_tensor *w);
sg_tensor *sg_seqmm_(sg_ctx *ctx, sg_tensor *c, sg_tensor *w);
/* The same with c = x @ kernel computed by the steps: s = sg_seqmm_x(x, kernel, w), x (T, B, I),
 * kernel (I, N), w (K, N), is a new (T, B, N) tensor whose block t is x_t @ kernel + a_t @ w
 * once sg_seqmm_step(s, t, a_t) has run, and undefined before (zeros in anomaly mode, which
 * checks every op's output): every block a step, a_t NULL
 * where there is none (h_0 = 0), and s read only through the steps' results until all have
 * run. Each block is then written once, in cache, instead of the whole x @ kernel before the
 * steps and each block read back (an LSTM layer's input projection; bench/README.md has the
 * measurement). Backward as sg_matmul(x, kernel) and sg_seqmm; the steps read x and kernel
 * when they run (kernel, like w, from a copy made by sg_seqmm_x for some shapes).
 * Errors: "sg_seqmm_x: x has shape (..), kernel (..) and w (..); expected (T, B, I), (I, N)
 * and (K, N)"; those of sg_seqmm_step. */
sg_tensor *sg_seqmm_x(sg_ctx *ctx, sg_tensor *x, sg_tensor *kernel, sg_tensor *w);
/* a_t NULL: nothing added (sg_seqmm_x's x_t @ kernel alone); the result as with a step. */
sg_tensor *sg_seqmm_step(sg_ctx *ctx, sg_tensor *s, int64_t t, sg_tensor *a);

/* ---- reductions and normalisations --------------------------------------------------- */
sg_tensor *sg_sum(sg_ctx *ctx, sg_tensor *x);  /* all elements -> 0-d */
sg_tensor *sg_mean(sg_ctx *ctx, sg_tensor *x); /* all elements -> 0-d */
sg_tensor *sg_sum_axis(sg_ctx *ctx, sg_tensor *x, int axis, bool keepdims);
sg_tensor *sg_mean_axis(sg_ctx *ctx, sg_tensor *x, int axis, bool keepdims);
sg_tensor *sg_softmax(sg_ctx *ctx, sg_tensor *x, int axis);     /* max-subtracted */
sg_tensor *sg_log_softmax(sg_ctx *ctx, sg_tensor *x, int axis); /* x - max - log(sum) */
/* Layer normalisation over the LAST axis of x (..., D) (torch.nn.functional.layer_norm(x,
 * (D,), gain, bias, eps)): for every row, y = (x - mean) / sqrt(var + eps) * gain + bias with
 * the biased variance (divided by D). gain and bias are (D,) tensors of x's dtype, each may be
 * NULL (no scale / no shift); any of the three may be a strided view. Returns a new
 * contiguous tensor of x's shape, recorded as one node; statistics are computed in double
 * also for float32. A row of equal values normalises to exactly 0 (so y = bias), also with
 * eps = 0 (where PyTorch gives NaN). Errors: 0-d x; eps negative, NaN or infinite
 * ("sg_layer_norm: eps = -1 must be finite and >= 0"); gain or bias not (D,) ("sg_layer_norm:
 * gain has shape (4,), expected (5,) for x of shape (2, 3, 5)"); mixed dtypes. */
sg_tensor *sg_layer_norm(sg_ctx *ctx, sg_tensor *x, sg_tensor *gain, sg_tensor *bias, double eps);

/* ---- recurrent cells ----------------------------------------------------------------------
 * The GRU's gate arithmetic in one node (the form of PyTorch's nn.GRU and Keras'
 * reset_after = true), for the GRU cell's step, whose composed form records a dozen small ops:
 *     z = sigmoid(xp_z + hu_z),  r = sigmoid(xp_r + hu_r),  n = tanh(xp_h + r * hu_h),
 *     returns h' = n + z * (h - n)                                                  (B, H)
 * xp (B, 3H) = x_t @ kernel + input bias (blocks z, r, h; any 2-D strides: a step's slice of
 * the projection of all steps); hu (B, 3H) = h @ recurrent_kernel + recurrent bias, NULL for
 * none (zeros); h (B, H) the incoming state, NULL for zeros (then hu may still carry the
 * recurrent bias). Differentiable in all three; NULL with an error for shapes that do not fit
 * or h without hu. */
sg_tensor *sg_gru_gates(sg_ctx *ctx, sg_tensor *xp, sg_tensor *hu, sg_tensor *h);
/* The LSTM's gate arithmetic in one node (Keras' default activations), for the fused LSTM's
 * step, whose composed form records a dozen small ops:
 *     a = z + bias (each row),  i = sigmoid(a_i), f = sigmoid(a_f), g = tanh(a_c~),
 *     o = sigmoid(a_o),  c' = f * c + i * g,  h' = o * tanh(c'),  returns [h' | c'] (B, 2H)
 * z (B, 4H) the pre-activations (blocks i, f, c~, o; any 2-D strides); c (B, H) the incoming
 * cell state (any 2-D strides), NULL for zeros (then f is not used); bias (4H) (any stride),
 * NULL for none: the fused LSTM adds its bias here rather than to every row of x @ kernel.
 * h' and c' are the two slices of the result. Differentiable in all three; NULL with an
 * error for shapes that do not fit ("sg_lstm_gates: z has shape (2, 5), expected (B, 4H)",
 * "sg_lstm_gates: c has shape (2, 3), expected (2, 2)", "sg_lstm_gates: bias has shape (7,),
 * expected (8,)") or mixed dtypes. */
sg_tensor *sg_lstm_gates(sg_ctx *ctx, sg_tensor *z, sg_tensor *c, sg_tensor *bias);
/* The same, keeping i, f, g, o over z's own elements (when z's columns are unit-stride), so
 * that z is consumed: its values afterwards are the activations. The in-place rules of
 * sg_sigmoid_ apply to z ("sg_lstm_gates_: cannot work in place on a leaf tensor ..."). */
sg_tensor *sg_lstm_gates_(sg_ctx *ctx, sg_tensor *z, sg_tensor *c, sg_tensor *bias);

/* ---- losses ---------------------------------------------------------------------------
 * Each loss is one fused node: per-element terms, then a reduction with weights. The
 * options are shared (sg_loss_defaults()); NULL options mean the defaults, PyTorch's:
 *  - reduction: SG_REDUCE_MEAN (a 0-d result), SG_REDUCE_SUM (0-d) or SG_REDUCE_NONE (one
 *    value per element: labels' shape for cross-entropy, pred's for MSE and BCE).
 *  - mask: NULL, or a float tensor (float32 or float64, any strides) that broadcasts to
 *    the elements' shape (NumPy rules), one weight per element: 0 excludes, 1 includes
 *    (other values weight). mean = sum(mask * l) / sum(mask), the mean over the counted
 *    elements; sum = sum(mask * l); none = mask * l. The mask is a constant: one that
 *    requires grad is an error. An excluded element is skipped outright (a NaN there does
 *    not reach the loss or the gradients).
 *  - ignore_index (cross-entropy; default -100, as PyTorch): labels equal to it count for
 *    nothing: their term is 0 (none) and they leave the mean's denominator. With a mask,
 *    both apply: the weight is mask * (label != ignore_index).
 *  - label_smoothing (cross-entropy; default 0): eps in [0, 1]; the target is
 *    (1 - eps) * one_hot(label) + eps / V (PyTorch's definition); an error for MSE and BCE.
 * A mean over zero counted elements (empty input, everything masked or ignored) is NaN,
 * like PyTorch's 0 / 0. Errors name the function (sg_cross_entropy or sg_..._ex) and the
 * shapes or values. */
typedef enum { SG_REDUCE_MEAN = 0, SG_REDUCE_SUM = 1, SG_REDUCE_NONE = 2 } sg_reduction;
typedef struct sg_loss_opts {
    sg_reduction reduction;
    int64_t ignore_index;
    sg_tensor *mask;
    double label_smoothing;
} sg_loss_opts;
/* {SG_REDUCE_MEAN, ignore_index -100, mask NULL, label_smoothing 0} */
sg_loss_opts sg_loss_defaults(void);

/* Softmax cross-entropy, -sum_c target_c log softmax(logits)_c, the class axis LAST:
 * logits (..., V) float, labels int64 or int32 of the logits' shape without the class
 * axis: (B, V) with (B,), (B, T, V) with (B, T), (V) with (). PyTorch's F.cross_entropy
 * wants the classes on axis 1, (B, V, T): pass it logits.permute(0, 2, 1) (the same
 * numbers; here, sg_permute the other way is a free view if your logits are (B, V, T)).
 * Logits may be any strided view and are float32 or float64; labels any strides. The
 * gradient is the fused, stable (softmax - smoothed one_hot) * weight, one node; labels
 * never require grad (the op keeps its own copy for backward). Errors: labels of a float
 * dtype, a labels shape that is not the logits' without the last axis, 0-d logits, V = 0,
 * a label outside [0, V) that is not ignore_index (the message names its index and
 * value), and the option errors above. NULL logits or labels give NULL. */
sg_tensor *sg_cross_entropy(sg_ctx *ctx, sg_tensor *logits, sg_tensor *labels);
sg_tensor *sg_cross_entropy_ex(sg_ctx *ctx, sg_tensor *logits, sg_tensor *labels,
                               const sg_loss_opts *o);
/* (pred - target)^2 per element; pred and target of exactly one shape (no broadcasting:
 * (4, 1) against (4,) is an error, not a (4, 4) loss) and dtype. Both get gradients. */
sg_tensor *sg_mse_loss(sg_ctx *ctx, sg_tensor *pred, sg_tensor *target);
sg_tensor *sg_mse_loss_ex(sg_ctx *ctx, sg_tensor *pred, sg_tensor *target, const sg_loss_opts *o);
/* max(x, 0) - x * z + log(1 + exp(-|x|)) per element (binary cross-entropy of sigmoid(x)
 * against targets z in [0, 1], in its stable form); same shapes as for MSE. */
sg_tensor *sg_bce_with_logits(sg_ctx *ctx, sg_tensor *logits, sg_tensor *targets);
sg_tensor *sg_bce_with_logits_ex(sg_ctx *ctx, sg_tensor *logits, sg_tensor *targets,
                                 const sg_loss_opts *o);

/* ---- sampling (not differentiable) ------------------------------------------------------
 * Draw token ids from logits (V) or (B, V), float32 or float64, any strides. Returns an
 * int64 tensor, () or (B,), that is not on the tape. Options (sg_sample_defaults(); NULL
 * means them), applied in this order, as Hugging Face's generate does:
 *  - temperature (default 1): probabilities softmax(logits / temperature); 0 is greedy:
 *    the first largest logit (lowest index on ties), no random draw;
 *  - top_k (default 0: off): keep the k most probable tokens;
 *  - top_p (default 1: off): nucleus: keep the smallest set of the most probable (kept)
 *    tokens whose probabilities, renormalised over the kept ones, sum to at least top_p.
 * Draw rule, deterministic for a generator state: the tokens are sorted by probability,
 * descending, ties by lower index; tokens of probability 0 are never kept; each row takes
 * exactly one u = sg_rng_uniform(rng) and returns the first kept token whose cumulative
 * probability (in float64, in that order) exceeds u times the kept total. rng NULL: the
 * context's generator. +inf logits share the row equally among them. Errors (NULL, with a
 * message): temperature < 0, NaN or infinite; top_k < 0; top_p outside (0, 1]; logits not
 * (V) or (B, V), V = 0, a NaN logit or a row of only -inf (the message names the row). */
typedef struct sg_sample_opts {
    double temperature;
    int64_t top_k;
    double top_p;
} sg_sample_opts;
/* {temperature 1, top_k 0, top_p 1} */
sg_sample_opts sg_sample_defaults(void);
sg_tensor *sg_sample(sg_ctx *ctx, sg_tensor *logits, const sg_sample_opts *o, sg_rng *rng);

/* ---- randomness: dropout and zoneout (ops_random.c) -----------------------------------
 * Masks are drawn from `rng`, or from the context's generator (sg_ctx_rng) when rng is NULL:
 * one sg_rng_uniform per element, in row-major order of the shape, and an element is kept
 * when u >= p (so dropped with probability p). The same seed gives the same mask. Nothing
 * is drawn in evaluation mode (sg_ctx_set_training(ctx, false)), in no-grad mode, or for
 * p == 0: dropout is then the identity. Float32 and float64; x may be any strided view. */

/* Inverted dropout (torch.nn.functional.dropout in training mode): each element of x is
 * zeroed with probability p and the kept ones are scaled by 1 / (1 - p), so the expectation
 * is x. Returns a new tensor (recorded: backward multiplies by the same mask), or x itself
 * when nothing is drawn (see above). p outside [0, 1) or NaN is an error:
 * "sg_dropout: p = 1.5 outside [0, 1)". */
sg_tensor *sg_dropout(sg_ctx *ctx, sg_tensor *x, double p, sg_rng *rng);
/* A dropout mask of the given shape and dtype, drawn once by the same rule: 0 (dropped) or
 * 1 / (1 - p) (kept); all ones when nothing is drawn (see above). For recurrent (variational)
 * dropout (Gal & Ghahramani; Keras' recurrent_dropout): draw a (B, H) mask once per sequence
 * and multiply each step's input or state by it with sg_mul, the same mask at every step.
 * A new arena tensor that never requires grad. Errors: p as for sg_dropout ("sg_dropout_mask:
 * p = ..."), a bad dtype or shape. */
sg_tensor *sg_dropout_mask(sg_ctx *ctx, sg_dtype dt, int ndim, const int64_t *shape, double p,
                           sg_rng *rng);
/* Zoneout (Krueger et al. 2016) of a recurrent state: in training mode
 *     h = m * h_prev + (1 - m) * h_new,   m ~ Bernoulli(p) per element, drawn at every call
 * (m = 1, the unit keeps its previous value, where u < p); in evaluation or no-grad mode the
 * expectation p * h_prev + (1 - p) * h_new. h_new itself for p == 0 (nothing drawn).
 * Composed of recorded ops (sg_mul, sg_add, sg_scale): the gradient flows to both states.
 * h_prev and h_new must have the same shape and dtype; p outside [0, 1] or NaN is an error
 * ("sg_zoneout: p = 1.5 outside [0, 1]"). */
sg_tensor *sg_zoneout(sg_ctx *ctx, sg_tensor *h_prev, sg_tensor *h_new, double p, sg_rng *rng);

/* ---- the tape ------------------------------------------------------------------------ */
/* Backpropagate from `out`. grad == NULL seeds a one-element `out` with 1; otherwise grad
 * is the upstream gradient (same shape and dtype as out). Gradients accumulate into the
 * `grad` of leaves that require grad and of retained intermediates. Returns 0, or -1 with
 * an error (not a scalar without grad, out not requiring grad, stale tensors, OOM). */
int sg_backward(sg_ctx *ctx, sg_tensor *out, sg_tensor *grad);
/* sg_backward with a notification: grad_ready(user, p) is called once for each parameter p
 * (a tensor made by sg_param_new or a store) the moment its gradient is complete, i.e. when
 * the last node on the tape that reads p has run its backward, while the walk goes on with
 * the nodes before it. This is what lets data-parallel training start reducing the
 * gradients of the layers nearest the loss while the backward pass is still working on the
 * others (dist/). Parameters that no node between `out` and the start of the tape reads are
 * not reported. grad_ready must not record ops or touch the tape; it may read p's gradient
 * (p->grad, or sg_ctx_grad_of in a workspace with private gradients). o NULL or
 * o->grad_ready NULL: exactly sg_backward. Costs one extra walk over the tape and a table
 * of the parameters; -1 with an error as sg_backward, or when out of memory. */
typedef struct sg_backward_options {
    void (*grad_ready)(void *user, sg_tensor *param);
    void *user;
} sg_backward_options;
int sg_backward_ex(sg_ctx *ctx, sg_tensor *out, sg_tensor *grad, const sg_backward_options *o);
/* Zero the gradient of one tensor / of every parameter made with this context. */
void sg_zero_grad(sg_tensor *t);
void sg_ctx_zero_grad(sg_ctx *ctx);
/* Gradient recording on/off (no-grad mode for inference). Returns the previous value. */
bool sg_ctx_set_grad_enabled(sg_ctx *ctx, bool on);
bool sg_ctx_grad_enabled(const sg_ctx *ctx);
/* Training or evaluation mode (PyTorch's module.train() / module.eval()), a property of
 * the workspace: dropout (sg_dropout, sg_dropout_mask) and zoneout sample only in training
 * mode. A new context is in training mode; sg_ctx_reset keeps the mode. Returns the
 * previous value (false for a NULL ctx); sg_ctx_training of NULL is false. */
bool sg_ctx_set_training(sg_ctx *ctx, bool on);
bool sg_ctx_training(const sg_ctx *ctx);
/* Number of nodes on the tape right now. */
int64_t sg_tape_size(const sg_ctx *ctx);

/* Anomaly mode: when on, every op's forward output and every gradient backward produces
 * is checked for NaN/Inf. A NaN or Inf is an error: the op returns NULL (sg_backward -1), and
 * the first one records a message naming the op and its shapes, e.g. "anomaly: log produced
 * NaN in forward; inputs (2, 3) -> output (2, 3)" (views compute nothing and are not
 * checked). */
void sg_ctx_set_anomaly(sg_ctx *ctx, bool on);
/* Check one tensor as anomaly mode checks an op's output (recording the report; ops do this
 * themselves, extension code may call it). No-op when anomaly mode is off. */
void sg_anomaly_check_forward(sg_ctx *ctx, sg_tensor *out);

/* ---- time steps and labels: what DOT graphs and sg_gradcheck_rnn show ------------------
 * A recurrent layer's driver tags the nodes each step records with the step's index, and
 * its cells name the tensors a lecture names (z_t, i_t, f_t, g_t, o_t, c_t, h_t, x_t). A
 * step costs each node nothing (the index sits in a field the tensor has anyway). Names
 * cost a copy per tensor, so they are written only while labels are on:
 *
 *     sg_ctx_set_labels(ctx, true);        // before the forward
 *     sg_tensor *y = sg_rnn_forward(...);  // nodes in clusters t = 0, 1, ..., gates named
 *     sg_dot_save(ctx, loss, "graph.dot");
 */
/* Tag the nodes recorded from now on with time step t (>= 0; up to INT32_MAX - 1), or with
 * none (t < 0). Returns the previous step (-1: none). sg_ctx_reset keeps it. */
int64_t sg_ctx_set_step(sg_ctx *ctx, int64_t t);
/* The step node t was recorded at; -1 for a leaf, an untagged node or NULL. */
int64_t sg_node_step(const sg_tensor *t);
/* sg_label names tensors only while this is on (off in a new context; sg_ctx_reset keeps
 * it). Returns the previous value (false for a NULL ctx). */
bool sg_ctx_set_labels(sg_ctx *ctx, bool on);
/* Are labels on? (false for a NULL ctx) */
bool sg_ctx_labels(const sg_ctx *ctx);
/* While labels are on, name t (copied, at most 43 characters) as sg_tensor_set_name does;
 * otherwise nothing. Returns t (NULL for NULL t), so it can wrap an expression:
 * f = sg_label(ctx, sg_sigmoid(ctx, z_f), "f_t"). */
sg_tensor *sg_label(sg_ctx *ctx, sg_tensor *t, const char *name);

/* Write the graph behind `out` as Graphviz DOT: one node per tensor, edges from inputs.
 * Leaves are boxes labelled with their name (parameters blue, others grey and "input" when
 * unnamed); an op node reads "<name> = <op>" when it has a name (sg_label), else "<op>", and
 * its shape. Nodes recorded at a time step (sg_ctx_set_step) are drawn in one cluster per
 * step ("t = 3"). Returns 0 or -1 with an error. */
int sg_dot_write(sg_ctx *ctx, const sg_tensor *out, FILE *f);
int sg_dot_save(sg_ctx *ctx, const sg_tensor *out, const char *path);

/* ---- custom ops ------------------------------------------------------------------------
 * Your own op with its own forward and backward, recorded and differentiated like the
 * built-ins (torch.autograd.Function in C). Register it once, then apply it as often as
 * you like from any context or thread; sg_gradcheck checks it like any op. Example (a full
 * program: examples/custom_op.c):
 *
 *     static sg_tensor *cube_fw(sg_ctx *ctx, int n, sg_tensor *const *in, void *user) {
 *         return sg_mul(ctx, in[0], sg_square(ctx, in[0]));       // not recorded
 *     }
 *     static int cube_bw(sg_ctx *ctx, int n, sg_tensor *const *in, const sg_tensor *out,
 *                        const sg_tensor *dout, sg_tensor *const *din, void *user) {
 *         for (int64_t i = 0; i < sg_numel(din[0]); i++)           // din[0] += 3x^2 dout
 *             ...
 *         return 0;
 *     }
 *     int cube = sg_op_register(ctx, &(sg_custom_op){.name = "cube", .forward = cube_fw,
 *                                                     .backward = cube_bw, .reads_inputs = true});
 *     sg_tensor *y = sg_custom(ctx, cube, 1, &x);
 */
typedef struct sg_custom_op {
    const char *name; /* copied (at most 31 characters): DOT graphs, anomaly reports */
    /* y = f(in[0..n)). Runs with gradient recording off: seqgrad ops inside it are not
     * recorded. Returns a tensor of ctx (NULL after recording an error with sg_error). */
    sg_tensor *(*forward)(sg_ctx *ctx, int n, sg_tensor *const *in, void *user);
    /* ACCUMULATE (+=) dL/d in[i] into din[i] for each i whose din[i] is not NULL (NULL: that
     * input needs no gradient), given the forward's output `out` and dL/d out `dout`. din[i]
     * is contiguous with in[i]'s shape; out and dout are contiguous. Runs with recording off.
     * Returns 0, or -1 after recording an error with sg_error. */
    int (*backward)(sg_ctx *ctx, int n, sg_tensor *const *in, const sg_tensor *out,
                    const sg_tensor *dout, sg_tensor *const *din, void *user);
    void *user;        /* handed to both callbacks */
    bool reads_inputs; /* backward reads in[]'s values: in-place ops on them are refused */
    bool reads_output; /* backward reads out's values: likewise */
} sg_custom_op;

/* Most custom ops a process can register. */
#define SG_CUSTOM_OP_MAX 64

/* Register an op (the struct is copied). Returns its id (>= SG_OP_COUNT), or -1 with an
 * error in ctx (ctx may be NULL: no message) when a callback or the name is missing or the
 * table is full. Thread-safe. Ids are never reused. */
int sg_op_register(sg_ctx *ctx, const sg_custom_op *def);
/* Apply custom op `op` to n inputs (1 <= n <= SG_MAX_SRC, same dtype). Returns the forward's
 * output, recorded on the tape when an input requires grad; NULL with an error naming the op
 * on bad input or when its forward fails. */
sg_tensor *sg_custom(sg_ctx *ctx, int op, int n, sg_tensor *const *in);

/* ---- the parameter store ---------------------------------------------------------------
 * A model's parameters under unique names, their values in one contiguous slab and their
 * gradients in another; each parameter is a view into both (its `grad` is its view into the
 * gradient slab). Zeroing every gradient is one memset, and threads or processes reduce one
 * buffer. Layers register their parameters here when they are created ("lstm.kernel", ...).
 * Parameters belong to no workspace (they are SG_FLAG_SHARED): any context may read them,
 * none writes them; only the optimizer changes their values. Adding a parameter may move the slabs:
 * add them all before the first step (views of parameters made earlier would point at the old
 * slab). The store owns its parameters: sg_tensor_free on one is a no-op; sg_store_free frees all.
 *
 *     sg_store *model = sg_store_new();
 *     sg_lstm *lstm = sg_lstm_new(ctx, model, SG_LSTM_FUSED, &o, NULL, NULL); // "lstm"
 *     sg_dense *head = sg_dense_new(ctx, model, SG_F32, 32, 1, true, SG_ACT_LINEAR, NULL, NULL);
 *     ... forward, sg_backward; every parameter's gradient is in the store's gradient slab
 *     sg_store_zero_grad(model);
 */
#define SG_NAME_MAX 63 /* longest parameter name, as in checkpoints */
typedef struct sg_store sg_store;

/* A new empty store; NULL when out of memory. Free with sg_store_free (NULL is fine), after
 * every layer and optimizer that uses it; using one of its parameters afterwards is undefined,
 * as with free(). */
sg_store *sg_store_new(void);
void sg_store_free(sg_store *s);
/* A new zeroed parameter named `name` (unique in the store, at most SG_NAME_MAX characters).
 * Every parameter of a store has the store's dtype (the first one's). NULL with an error in
 * ctx naming the parameter (a duplicate name, another dtype, a bad shape, out of memory). */
sg_tensor *sg_store_param(sg_ctx *ctx, sg_store *s, const char *name, sg_dtype dt, int ndim,
                          const int64_t *shape);
/* Keras' default layer names: `base` if no parameter of the store is named "<base>" or
 * "<base>.*", else "<base>_1", "<base>_2", ... Writes it to buf (n bytes). 0, or -1 with an
 * error. */
int sg_store_unique_name(sg_ctx *ctx, const sg_store *s, const char *base, char *buf, size_t n);
/* Remove the parameters added after the first n (a layer that failed half-way rolls back
 * with it). Pointers to them become invalid. */
void sg_store_truncate(sg_store *s, int n);
/* Parameters in the order they were added: count, i-th, its name; NULL out of range. */
int sg_store_size(const sg_store *s);
sg_tensor *sg_store_at(const sg_store *s, int i);
const char *sg_store_name_at(const sg_store *s, int i);
sg_tensor *sg_store_find(const sg_store *s, const char *name); /* NULL if absent */
int64_t sg_store_count(const sg_store *s);                     /* scalar parameters */
sg_dtype sg_store_dtype(const sg_store *s);
/* The slabs: sg_store_slab_len elements of the store's dtype each (parameters start on
 * 64-byte boundaries; the gaps are zero). Valid until the next sg_store_param. */
int64_t sg_store_slab_len(const sg_store *s);
void *sg_store_values(const sg_store *s);
void *sg_store_grads(const sg_store *s);
/* Calls on a parameter that name no context (sg_fill, sg_get_flat, sg_copy, ...) record
 * their errors in the store: the first one, or NULL; and clear it. */
const char *sg_store_error(const sg_store *s);
void sg_store_clear_error(sg_store *s);
/* Zero every parameter's gradient: one memset of the gradient slab. */
void sg_store_zero_grad(sg_store *s);
/* The store a parameter belongs to; NULL for any other tensor. */
sg_store *sg_param_store(const sg_tensor *t);

/* Workspaces that share a store. By default backward accumulates a parameter's gradient into
 * the store's gradient slab. A workspace given private gradients accumulates into a slab of
 * its own instead (laid out as the store's, zeroed, freed with the workspace), so that
 * several workspaces, one per thread, can run forward and backward on one store at once.
 * sg_store_reduce then adds their slabs into the store's, in the order given (the same sums
 * every run). 0, or -1 with an error. */
int sg_ctx_private_grads(sg_ctx *ctx, const sg_store *s);
void sg_ctx_zero_private_grads(sg_ctx *ctx);
/* The gradient of parameter p that this workspace accumulates into (its private slab's view,
 * or p->grad); NULL for a tensor that is no parameter. */
sg_tensor *sg_ctx_grad_of(sg_ctx *ctx, const sg_tensor *p);
int sg_store_reduce(sg_ctx *ctx, sg_store *s, int n, sg_ctx *const *workspaces);
/* The same sums over part `part` of the slab cut into `parts` ranges (whole 64-byte lines):
 * threads that reduce different parts at once write no common memory (parallel/ does this). */
int sg_store_reduce_part(sg_ctx *ctx, sg_store *s, int n, sg_ctx *const *workspaces, int part,
                         int parts);

/* ---- named tensor lists: what optimizers and checkpoints walk ---------------------------
 * A list of (name, tensor): a store's parameters (sg_params_from_store), a layer's
 * (sg_lstm_params), an optimizer's state, the tensors of a safetensors file. */
typedef struct sg_param_entry {
    /* stable name, e.g. "lstm.kernel", "dense.bias": up to 95 characters, so that the longest
     * optimizer state name, "optim." + SG_NAME_MAX characters + ".max_exp_avg_sq" (84), fits */
    char name[96];
    sg_tensor *tensor; /* the parameter; its gradient is tensor->grad */
} sg_param_entry;

typedef struct sg_param_list {
    int n, cap;
    sg_param_entry *items;
    sg_ctx *ctx; /* where sg_params_add and the clipping functions record errors; NULL: each
                    tensor's own context (for a store's parameters, the store's) */
} sg_param_list;

/* Append a parameter under `name` (copied). Returns 0, or -1 (NULL list/tensor, duplicate
 * name, out of memory). */
int sg_params_add(sg_param_list *list, const char *name, sg_tensor *t);
/* Find by name; NULL if absent. */
sg_tensor *sg_params_find(const sg_param_list *list, const char *name);
/* Zero every gradient in the list. */
void sg_params_zero_grad(sg_param_list *list);
/* Total number of scalar parameters. */
int64_t sg_params_count(const sg_param_list *list);
/* Free the list's array (not the tensors). NULL is fine. The list may be reused. */
void sg_params_clear(sg_param_list *list);

/* Append every parameter of the store, in its order. 0, or -1 (see sg_params_add). */
int sg_params_from_store(sg_param_list *list, const sg_store *s);

/* ---- gradient checking --------------------------------------------------------------- */
/* A function of the inputs to check; must build its result from `inputs` with ctx. */
typedef sg_tensor *(*sg_gradcheck_fn)(sg_ctx *ctx, sg_tensor *const *inputs, void *user);

typedef struct sg_gradcheck_opts {
    double eps;  /* central-difference step (default 1e-6) */
    double atol; /* |analytic - numeric| <= atol + rtol * |numeric| (defaults 1e-7, 1e-5) */
    double rtol;
    uint64_t seed; /* seeds the random upstream gradient used for non-scalar outputs */
} sg_gradcheck_opts;

typedef struct sg_gradcheck_report {
    double max_abs;     /* max |analytic - numeric| over the input's elements */
    double max_rel;     /* max |analytic - numeric| / max(|numeric|, 1e-12) */
    int64_t worst_flat; /* flat index of the element with the largest abs error */
    double analytic;    /* the two derivatives at worst_flat */
    double numeric;
    bool ok; /* every element within tolerance */
} sg_gradcheck_report;

/* Defaults for the options above (eps 1e-6, atol 1e-7, rtol 1e-5, seed 1): float64's. */
sg_gradcheck_opts sg_gradcheck_defaults(void);
/* Defaults for inputs of dtype dt: float64's above, and for float32 eps 1e-3, atol 1e-3,
 * rtol 1e-2 (a float32 central difference cannot meet float64's tolerances: it catches
 * a wrong formula, not a small error; use float64 inputs for a tight check). */
sg_gradcheck_opts sg_gradcheck_defaults_for(sg_dtype dt);

/* Compare backward's gradients with central differences of fn for every input that
 * requires grad (inputs not requiring grad are held fixed; their report is ok with zeros).
 * For a non-scalar output, checks L = sum(out * w) with a fixed random w. Differences
 * are computed and accumulated in float64 (inputs should be float64 for tight checks).
 * opts NULL: the defaults for the first input's dtype (sg_gradcheck_defaults_for).
 * Writes n reports (may be NULL). Returns 1 if all inputs pass, 0 if one fails, -1 on
 * error. Inputs must be contiguous; the inputs' grads are overwritten. Errors: fn returning
 * NULL ("sg_gradcheck: the function returned NULL (the analytic pass)", unless fn recorded
 * its own message first), eps not positive and finite ("sg_gradcheck: eps = 0 must be
 * positive and finite"), a negative or NaN atol or rtol, a non-contiguous input. */
int sg_gradcheck(sg_ctx *ctx, sg_gradcheck_fn fn, void *user, int n, sg_tensor *const *inputs,
                 const sg_gradcheck_opts *opts, sg_gradcheck_report *reports);

/* ---- gradient checking by time step and gate ------------------------------------------
 * Which step's and which gate's gradient is wrong? For a recurrent layer, "the gradient of
 * step t's gate g" is dL/dz_{t,g}: the derivative of the loss by the pre-activations of
 * gate g at step t (z_t = x_t W + h_{t-1} U + b, split into gate blocks). Every other
 * gradient is built from these: dL/dW is the sum over t of x_t^T dL/dz_t, dL/dh_{t-1} is
 * dL/dz_t U^T, so a wrong term anywhere in backpropagation through time shows up first in
 * the dL/dz of the steps and gates it feeds.
 *
 * The cells mark their pre-activations with sg_gate_probe. sg_gradcheck_rnn runs the
 * function once to find the probes, then adds a zero leaf d_k to each (z + d_k, the same
 * function) and checks dL/dd_k = dL/dz: analytic from one backward, numeric by central
 * differences of d_k's elements. The result is a table, one row per time step, one column
 * per gate letter, of max |analytic - numeric| over the batch and units of that block (the
 * worst over layers and directions when several run at one step). The cells probe:
 * LSTM "ifco" (both implementations; the layer-norm cell is not probed), GRU "zrh" (the
 * input side, whose derivative equals the pre-activation's), SimpleRNN "h". Each element of
 * every probe costs two forwards: keep T * B * units small (a lesson's T = 5, B = 2, H = 3
 * is a few thousand forwards). */
#define SG_GATES_MAX 8

/* Mark z (B, G*H) as the pre-activations of the gates named by the letters of `gates` (G
 * letters, one column block of H each, in order) at the context's current time step. Returns
 * z itself, except while sg_gradcheck_rnn runs, when it returns z + d (d a zero leaf of z's
 * shape). While labels are on, names z "z_t[<gates>]". NULL z gives NULL; during a check,
 * gates that do not divide z's last dimension are an error. */
sg_tensor *sg_gate_probe(sg_ctx *ctx, sg_tensor *z, const char *gates);

typedef struct sg_gradcheck_rnn_report {
    int rows;                          /* distinct time steps probed, in the order run */
    int gates;                         /* columns: distinct gate letters */
    char gate_names[SG_GATES_MAX + 1]; /* the columns' letters, e.g. "ifco" */
    int64_t *step;                     /* rows: each row's step (-1: probed outside a loop) */
    /* rows * gates cells, row-major; a cell no probe covered has visited false */
    double *max_abs;  /* max |analytic - numeric| over the block's elements */
    double *max_rel;  /* max |analytic - numeric| / max(|numeric|, 1e-12) */
    double *analytic; /* the two derivatives at the element of max_abs */
    double *numeric;
    bool *visited;
    int worst_row, worst_gate; /* the cell with the largest max_abs */
    bool ok;                   /* every element within atol + rtol * |numeric| */
} sg_gradcheck_rnn_report;

/* Check dL/dz by step and gate for the recurrent layers fn runs (see above): fn and inputs
 * as for sg_gradcheck (the inputs are held fixed and not checked; check them with
 * sg_gradcheck). Fills *report (free with sg_gradcheck_rnn_report_free). Returns 1 if every
 * element passes, 0 if one fails, -1 on error (report then empty): those of sg_gradcheck,
 * report NULL, a function that passes no probe ("sg_gradcheck_rnn: the function passed no
 * sg_gate_probe ..."), or other probes in a later forward than in the first. */
int sg_gradcheck_rnn(sg_ctx *ctx, sg_gradcheck_fn fn, void *user, int n, sg_tensor *const *inputs,
                     const sg_gradcheck_opts *opts, sg_gradcheck_rnn_report *report);
void sg_gradcheck_rnn_report_free(sg_gradcheck_rnn_report *r);
/* Print the table and the worst cell ("MISMATCH: worst at step 2, gate f: analytic ...,
 * numeric ..."). 0, or -1 on a write error or NULL arguments. */
int sg_gradcheck_rnn_print(FILE *f, const sg_gradcheck_rnn_report *r);

#ifdef __cplusplus
}
#endif
#endif
