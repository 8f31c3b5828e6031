/* PLACEHOLDER: being written; replaced wholesale by its owner. */
#include "ops.h"
void sg__bw_reshape(sg_ctx *ctx, sg_tensor *out) { sg_error(ctx, "sg_backward: %s backward missing", sg_op_name(out->op)); }
void sg__bw_permute(sg_ctx *ctx, sg_tensor *out) { sg_error(ctx, "sg_backward: %s backward missing", sg_op_name(out->op)); }
void sg__bw_slice(sg_ctx *ctx, sg_tensor *out) { sg_error(ctx, "sg_backward: %s backward missing", sg_op_name(out->op)); }
void sg__bw_expand(sg_ctx *ctx, sg_tensor *out) { sg_error(ctx, "sg_backward: %s backward missing", sg_op_name(out->op)); }
void sg__bw_contiguous(sg_ctx *ctx, sg_tensor *out) { sg_error(ctx, "sg_backward: %s backward missing", sg_op_name(out->op)); }
void sg__bw_concat(sg_ctx *ctx, sg_tensor *out) { sg_error(ctx, "sg_backward: %s backward missing", sg_op_name(out->op)); }
