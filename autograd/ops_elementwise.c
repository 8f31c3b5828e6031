/* PLACEHOLDER: being written; replaced wholesale by its owner. */
#include "ops.h"
void sg__bw_add(sg_ctx *ctx, sg_tensor *out) { sg_error(ctx, "sg_backward: %s backward missing", sg_op_name(out->op)); }
void sg__bw_sub(sg_ctx *ctx, sg_tensor *out) { sg_error(ctx, "sg_backward: %s backward missing", sg_op_name(out->op)); }
void sg__bw_mul(sg_ctx *ctx, sg_tensor *out) { sg_error(ctx, "sg_backward: %s backward missing", sg_op_name(out->op)); }
void sg__bw_div(sg_ctx *ctx, sg_tensor *out) { sg_error(ctx, "sg_backward: %s backward missing", sg_op_name(out->op)); }
void sg__bw_neg(sg_ctx *ctx, sg_tensor *out) { sg_error(ctx, "sg_backward: %s backward missing", sg_op_name(out->op)); }
void sg__bw_scale(sg_ctx *ctx, sg_tensor *out) { sg_error(ctx, "sg_backward: %s backward missing", sg_op_name(out->op)); }
void sg__bw_add_scalar(sg_ctx *ctx, sg_tensor *out) { sg_error(ctx, "sg_backward: %s backward missing", sg_op_name(out->op)); }
void sg__bw_square(sg_ctx *ctx, sg_tensor *out) { sg_error(ctx, "sg_backward: %s backward missing", sg_op_name(out->op)); }
void sg__bw_sigmoid(sg_ctx *ctx, sg_tensor *out) { sg_error(ctx, "sg_backward: %s backward missing", sg_op_name(out->op)); }
void sg__bw_tanh(sg_ctx *ctx, sg_tensor *out) { sg_error(ctx, "sg_backward: %s backward missing", sg_op_name(out->op)); }
void sg__bw_hard_sigmoid(sg_ctx *ctx, sg_tensor *out) { sg_error(ctx, "sg_backward: %s backward missing", sg_op_name(out->op)); }
void sg__bw_relu(sg_ctx *ctx, sg_tensor *out) { sg_error(ctx, "sg_backward: %s backward missing", sg_op_name(out->op)); }
void sg__bw_exp(sg_ctx *ctx, sg_tensor *out) { sg_error(ctx, "sg_backward: %s backward missing", sg_op_name(out->op)); }
void sg__bw_log(sg_ctx *ctx, sg_tensor *out) { sg_error(ctx, "sg_backward: %s backward missing", sg_op_name(out->op)); }
