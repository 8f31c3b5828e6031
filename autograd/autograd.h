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

/* ---- elementwise, broadcasting ------------------------------------------------------- */
sg_tensor *sg_add(sg_ctx *ctx, sg_tensor *a, sg_tensor *b);
sg_tensor *sg_sub(sg_ctx *ctx, sg_tensor *a, sg_tensor *b);
sg_tensor *sg_mul(sg_ctx *ctx, sg_tensor *a, sg_tensor *b);
sg_tensor *sg_div(sg_ctx *ctx, sg_tensor *a, sg_tensor *b);
sg_tensor *sg_neg(sg_ctx *ctx, sg_tensor *x);
sg_tensor *sg_scale(sg_ctx *ctx, sg_tensor *x, double s);      /* s * x */
sg_tensor *sg_add_scalar(sg_ctx *ctx, sg_tensor *x, double s); /* x + s */
sg_tensor *sg_square(sg_ctx *ctx, sg_tensor *x);               /* x * x */

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

/* ---- in place ------------------------------------------------------------------------
 * Like PyTorch's trailing-underscore ops: they overwrite their first argument's elements and
 * return a new tensor (a view over those elements) that carries the op on the tape; the
 * gradient still flows to the argument as it was. Afterwards every view of the buffer,
 * the argument included, shows the new values. They save memory (no new buffer) and are
 * refused, NULL with a message naming the reason, where they would break a gradient:
 *   - on a leaf that requires grad (a parameter) or a view of one, while grad mode is on;
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

/* ---- reductions and normalisations --------------------------------------------------- */
sg_tensor *sg_sum(sg_ctx *ctx, sg_tensor *x);  /* all elements -> 0-d */
sg_tensor *sg_mean(sg_ctx *ctx, sg_tensor *x); /* all elements -> 0-d */
sg_tensor *sg_sum_axis(sg_ctx *ctx, sg_tensor *x, int axis, bool keepdims);
sg_tensor *sg_mean_axis(sg_ctx *ctx, sg_tensor *x, int axis, bool keepdims);
sg_tensor *sg_softmax(sg_ctx *ctx, sg_tensor *x, int axis);     /* max-subtracted */
sg_tensor *sg_log_softmax(sg_ctx *ctx, sg_tensor *x, int axis); /* x - max - log(sum) */

/* ---- losses (mean over the batch, 0-d results) --------------------------------------- */
/* mean((pred - target)^2); shapes must match. */
sg_tensor *sg_mse_loss(sg_ctx *ctx, sg_tensor *pred, sg_tensor *target);
/* logits (N, C), labels[N] in [0, C): mean of -log_softmax(logits)[n, labels[n]]. */
sg_tensor *sg_cross_entropy(sg_ctx *ctx, sg_tensor *logits, const int32_t *labels);
/* mean of max(x, 0) - x * z + log(1 + exp(-|x|)), targets z in [0, 1]; same shapes. */
sg_tensor *sg_bce_with_logits(sg_ctx *ctx, sg_tensor *logits, sg_tensor *targets);

/* ---- the tape ------------------------------------------------------------------------ */
/* Backpropagate from `out`. grad == NULL seeds a one-element `out` with 1; otherwise grad
 * is the upstream gradient (same shape and dtype as out). Gradients accumulate into the
 * `grad` of leaves that require grad and of retained intermediates. Returns 0, or -1 with
 * an error (not a scalar without grad, out not requiring grad, stale tensors, OOM). */
int sg_backward(sg_ctx *ctx, sg_tensor *out, sg_tensor *grad);
/* Zero the gradient of one tensor / of every parameter made with this context. */
void sg_zero_grad(sg_tensor *t);
void sg_ctx_zero_grad(sg_ctx *ctx);
/* Number of nodes on the tape right now. */
int64_t sg_tape_size(const sg_ctx *ctx);

/* Anomaly mode: when on, every op's forward output and every gradient backward produces
 * is checked for NaN/Inf; the first one records an error naming the op and its shapes,
 * e.g. "anomaly: log produced NaN in forward; inputs (2, 3) -> output (2, 3)". */
void sg_ctx_set_anomaly(sg_ctx *ctx, bool on);
/* Called by ops after a forward (internal, public so extension ops can use it). */
void sg_anomaly_check_forward(sg_ctx *ctx, sg_tensor *out);

/* Write the graph behind `out` as Graphviz DOT (one node per tensor: op name, shape,
 * dtype; leaves labelled with their name). Returns 0 or -1 with an error. */
int sg_dot_write(sg_ctx *ctx, const sg_tensor *out, FILE *f);
int sg_dot_save(sg_ctx *ctx, const sg_tensor *out, const char *path);

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

/* Defaults for the options above (eps 1e-6, atol 1e-7, rtol 1e-5, seed 1). */
sg_gradcheck_opts sg_gradcheck_defaults(void);

/* Compare backward's gradients with central differences of fn for every input that
 * requires grad (inputs not requiring grad are held fixed; their report is ok with zeros).
 * For a non-scalar output, checks L = sum(out * w) with a fixed random w. Differences
 * are computed and accumulated in float64 (inputs should be float64 for tight checks).
 * Writes n reports (may be NULL). Returns 1 if all inputs pass, 0 if one fails, -1 on
 * error. Inputs must be contiguous; the inputs' grads are overwritten. */
int sg_gradcheck(sg_ctx *ctx, sg_gradcheck_fn fn, void *user, int n, sg_tensor *const *inputs,
                 const sg_gradcheck_opts *opts, sg_gradcheck_report *reports);

#ifdef __cplusplus
}
#endif
#endif
