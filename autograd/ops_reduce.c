/* PLACEHOLDER: being written; replaced wholesale by its owner. */
#include "ops.h"
void sg__bw_sum(sg_ctx *ctx, sg_tensor *out) { sg_error(ctx, "sg_backward: %s backward missing", sg_op_name(out->op)); }
void sg__bw_softmax(sg_ctx *ctx, sg_tensor *out) { sg_error(ctx, "sg_backward: %s backward missing", sg_op_name(out->op)); }
void sg__bw_log_softmax(sg_ctx *ctx, sg_tensor *out) { sg_error(ctx, "sg_backward: %s backward missing", sg_op_name(out->op)); }
void sg__bw_cross_entropy(sg_ctx *ctx, sg_tensor *out) { sg_error(ctx, "sg_backward: %s backward missing", sg_op_name(out->op)); }
void sg__bw_bce_logits(sg_ctx *ctx, sg_tensor *out) { sg_error(ctx, "sg_backward: %s backward missing", sg_op_name(out->op)); }
