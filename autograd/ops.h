/* Internal to autograd: the backward half of every op, dispatched from tape.c, and the
 * gradient helpers the backward functions share. Not installed.
 *
 * Contract of every sg__bw_<op>(ctx, out): out->grad holds dL/d(out) (contiguous, out's
 * shape); ACCUMULATE (+=) dL/d(src[i]) into the gradient of every input that requires
 * grad, obtained with sg__grad(ctx, src[i]) (or sg__acc_grad for a whole-tensor add). */
#ifndef SG_AUTOGRAD_OPS_H
#define SG_AUTOGRAD_OPS_H

#include "../tensor/internal.h"
#include "autograd.h"

/* Gradient buffer of t: created zeroed (contiguous, t's shape, in the arena) on first use;
 * a parameter's is its persistent grad; a slice's is usually a view into its input's
 * gradient (strided: see tape.c). NULL (with an error) only when out of memory. */
sg_tensor *sg__grad(sg_ctx *ctx, sg_tensor *t);
/* t->grad += g, where g has t's shape or a shape t broadcasts to (then g is summed over
 * the broadcast dimensions first, NumPy rules). No-op when t does not require grad. */
void sg__acc_grad(sg_ctx *ctx, sg_tensor *t, const sg_tensor *g);
/* C (m, n) = A (m, k) @ B (k, n), or C += A @ B when acc: the product every matmul node
 * runs (BLIS, or seqgrad's own kernels where they are faster; ops_matmul.c). Each operand
 * is a pointer to element (0, 0) with row and column strides in elements, as in BLIS's
 * typed API. Exposed for bench/bench_probe, which times a step's products through it. */
/* Products with m * n * k below this never go to BLIS (the register-blocked kernel where
 * it applies, else the direct kernel), and backward makes no row-major copy of B^T for
 * them (the measurements are in ops_matmul.c). */
#define SG_MATMUL_SMALL (48 * 48 * 48)
void sg__gemm(sg_dtype dt, int64_t m, int64_t n, int64_t k, const void *a, int64_t rsa, int64_t csa,
              const void *b, int64_t rsb, int64_t csb, void *c, int64_t rsc, int64_t csc, bool acc);

/* Does input i of node `out` need a gradient? */
static inline bool sg__needs(const sg_tensor *out, int i) {
    return out->src[i] && (out->src[i]->flags & SG_FLAG_REQUIRES_GRAD);
}

/* The inputs of a node: src[] for most ops, the aux array for concat (any count). */
static inline int sg__node_inputs(const sg_tensor *t, sg_tensor *const **in) {
    if (t->op == SG_OP_CONCAT && t->aux) {
        *in = (sg_tensor *const *)t->aux;
        return (int)t->iparam[1];
    }
    *in = t->src;
    return t->nsrc;
}

/* Forward helpers for ops: finish an op (record on tape, anomaly check). */
sg_tensor *sg__finish(sg_ctx *ctx, sg_tensor *out, sg_op op, int n, sg_tensor *const *src);

/* ops_shape.c */
void sg__bw_reshape(sg_ctx *ctx, sg_tensor *out);
void sg__bw_permute(sg_ctx *ctx, sg_tensor *out);
void sg__bw_slice(sg_ctx *ctx, sg_tensor *out);
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
/* ops_matmul.c */
void sg__bw_matmul(sg_ctx *ctx, sg_tensor *out);
void sg__bw_addmm(sg_ctx *ctx, sg_tensor *out);
/* ops_reduce.c */
void sg__bw_sum(sg_ctx *ctx, sg_tensor *out);
void sg__bw_softmax(sg_ctx *ctx, sg_tensor *out);
void sg__bw_log_softmax(sg_ctx *ctx, sg_tensor *out);
void sg__bw_cross_entropy(sg_ctx *ctx, sg_tensor *out);
void sg__bw_bce_logits(sg_ctx *ctx, sg_tensor *out);
void sg__bw_mse(sg_ctx *ctx, sg_tensor *out);

#endif
