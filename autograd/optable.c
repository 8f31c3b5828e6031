/* The op table: one entry per op, its forward's counterpart in the file named beside it,
 * and the run-time part of the table for custom ops (sg_op_register, sg_custom).
 *
 * Adding an op: its forward and its backward (side by side in one ops_*.c file), one entry
 * here, one declaration in autograd.h, one gradcheck test. */
#include <assert.h>
#include <pthread.h>
#include <string.h>

#include "ops.h"

#define R0 SG_READS_IN0
#define R1 SG_READS_IN1
#define R2 SG_READS_IN2
#define RO SG_READS_OUT
#define VIEW SG_OPF_VIEW
#define GVIEW SG_OPF_GRAD_VIEW
#define GD SG_OPF_GRAD_DENSE

const sg_op_info sg__op_table[] = {
    /*                       name        reads         flags        backward */
    [SG_OP_NONE] = {"leaf", 0, 0, NULL},
    /* ops_shape.c */
    [SG_OP_RESHAPE] = {"reshape", 0, VIEW | GD, sg__bw_reshape},
    [SG_OP_PERMUTE] = {"permute", 0, VIEW, sg__bw_permute},
    [SG_OP_SLICE] = {"slice", 0, VIEW | GVIEW, sg__bw_slice},
    [SG_OP_SELECT] = {"select", 0, VIEW | GVIEW, sg__bw_slice},
    [SG_OP_EXPAND] = {"expand", 0, VIEW, sg__bw_expand},
    [SG_OP_CONTIGUOUS] = {"contiguous", 0, 0, sg__bw_contiguous},
    [SG_OP_CONCAT] = {"concat", 0, SG_OPF_AUX_INPUTS, sg__bw_concat},
    /* ops_index.c: (x, index) read the index; where's inputs (cond, a, b) read cond */
    [SG_OP_INDEX_SELECT] = {"index_select", R1, 0, sg__bw_gather},
    [SG_OP_GATHER] = {"gather", R1, 0, sg__bw_gather},
    [SG_OP_WHERE] = {"where", R0, 0, sg__bw_where},
    /* ops_elementwise.c */
    [SG_OP_ADD] = {"add", 0, 0, sg__bw_add},
    [SG_OP_SUB] = {"sub", 0, 0, sg__bw_sub},
    [SG_OP_MUL] = {"mul", R0 | R1, 0, sg__bw_mul},
    [SG_OP_DIV] = {"div", R0 | R1, 0, sg__bw_div},
    [SG_OP_LERP] = {"lerp", R0 | R1 | SG_READS_IN2, 0, sg__bw_lerp},
    [SG_OP_NEG] = {"neg", 0, 0, sg__bw_neg},
    [SG_OP_SCALE] = {"scale", 0, 0, sg__bw_scale},
    [SG_OP_ADD_SCALAR] = {"add_scalar", 0, 0, sg__bw_add_scalar},
    [SG_OP_SIGMOID] = {"sigmoid", RO, 0, sg__bw_sigmoid},
    [SG_OP_TANH] = {"tanh", RO, 0, sg__bw_tanh},
    [SG_OP_HARD_SIGMOID] = {"hard_sigmoid", R0, 0, sg__bw_hard_sigmoid},
    [SG_OP_RELU] = {"relu", R0, 0, sg__bw_relu},
    [SG_OP_EXP] = {"exp", RO, 0, sg__bw_exp},
    [SG_OP_LOG] = {"log", R0, 0, sg__bw_log},
    [SG_OP_SQUARE] = {"square", R0, 0, sg__bw_square},
    /* ops_elementwise.c: elementwise unary (issue 13) */
    [SG_OP_ABS] = {"abs", R0, 0, sg__bw_abs},
    [SG_OP_SQRT] = {"sqrt", RO, 0, sg__bw_sqrt},
    [SG_OP_RSQRT] = {"rsqrt", RO, 0, sg__bw_rsqrt},
    [SG_OP_POW] = {"pow", R0, 0, sg__bw_pow},
    [SG_OP_CLAMP] = {"clamp", R0, 0, sg__bw_clamp},
    [SG_OP_SOFTPLUS] = {"softplus", R0, 0, sg__bw_softplus},
    [SG_OP_LOG_SIGMOID] = {"log_sigmoid", R0, 0, sg__bw_log_sigmoid},
    /* ops_matmul.c; addmm's inputs are (a, b, c): it reads a and b, not the addend c */
    [SG_OP_MATMUL] = {"matmul", R0 | R1, SG_OPF_GRAD_STRIDED, sg__bw_matmul},
    [SG_OP_ADDMM] = {"addmm", R0 | R1, SG_OPF_GRAD_STRIDED, sg__bw_addmm},
    /* seqmm's inputs are (c, w): its steps' backward reads w (seqmm's own reads its copies
     * of the steps' a_t); a step's inputs are (s, a_t) and its gradient is a slice of s's */
    [SG_OP_SEQMM] = {"seqmm", R1, SG_OPF_GRAD_LAZY, sg__bw_seqmm},
    [SG_OP_SEQMM_STEP] = {"seqmm_step", 0, GVIEW, sg__bw_seqmm_step},
    /* seqmm_x's inputs are (x, kernel, w): matmul's backward reads x and kernel, the steps' w */
    [SG_OP_SEQMM_X] = {"seqmm_x", R0 | R1 | R2, SG_OPF_GRAD_LAZY, sg__bw_seqmm},
    /* ops_reduce.c */
    [SG_OP_SOFTMAX] = {"softmax", R0 | RO, GD, sg__bw_softmax},
    [SG_OP_LOG_SOFTMAX] = {"log_softmax", R0 | RO, GD, sg__bw_log_softmax},
    [SG_OP_SUM] = {"sum", 0, GD, sg__bw_sum},
    /* ops_norm.c: reads x and gain (input 1; when there is no gain, input 1 is the bias,
     * read for nothing: that only refuses in-place ops on it) */
    [SG_OP_LAYER_NORM] = {"layer_norm", R0 | R1, 0, sg__bw_layer_norm},
    /* ops_random.c; dropout's backward reads only its saved mask, not x */
    [SG_OP_DROPOUT] = {"dropout", 0, 0, sg__bw_dropout},
    /* ops_gru.c: the backward reads its saved gates and the incoming h (input 2) */
    [SG_OP_GRU_GATES] = {"gru_gates", SG_READS_IN2, 0, sg__bw_gru_gates},
    /* ops_lstm.c: (z[, c][, bias]) reads c; sg_lstm_gates_ marks the block of z where it keeps the
     * activations itself (z may be a plain view of a buffer later steps write) */
    [SG_OP_LSTM_GATES] = {"lstm_gates", R1, 0, sg__bw_lstm_gates},
    /* ops_loss.c; cross-entropy's backward reads the softmax and labels it saved, not its
     * input; the pair losses read both inputs */
    [SG_OP_CROSS_ENTROPY] = {"cross_entropy", 0, GD, sg__bw_cross_entropy},
    [SG_OP_BCE_LOGITS] = {"bce_with_logits", R0 | R1, GD, sg__bw_bce_logits},
    [SG_OP_MSE] = {"mse_loss", R0 | R1, GD, sg__bw_mse},
};
/* An op added to the enum without its entry here (or the reverse) fails the build. An entry
 * left out in the middle has a NULL name: tests/test_autograd.c walks the table for those. */
static_assert(sizeof sg__op_table / sizeof sg__op_table[0] == SG_OP_COUNT,
              "sg_op and sg__op_table disagree: one entry per op");

#undef R0
#undef R1
#undef RO
#undef VIEW
#undef GVIEW
#undef GD

/* ---- custom ops ------------------------------------------------------------------------
 * Registered entries are written once, under the lock, before their id is handed out; after
 * that they are only read, so applying and differentiating them needs no lock. */

typedef struct {
    sg_op_info info;
    sg_custom_op def;
    char name[32];
} custom_entry;

static custom_entry customs[SG_CUSTOM_OP_MAX];
static int ncustom;
static pthread_mutex_t custom_lock = PTHREAD_MUTEX_INITIALIZER;

static void bw_custom(sg_ctx *ctx, sg_tensor *out);

/* What an id that is no op maps to: no name, no backward (sg_backward says so). */
static const sg_op_info unknown_op = {NULL, 0, 0, NULL};

const sg_op_info *sg__custom_info(int op) {
    int k = op - SG_OP_COUNT;
    if (k < 0 || k >= SG_CUSTOM_OP_MAX)
        return &unknown_op;
    pthread_mutex_lock(&custom_lock);
    bool known = k < ncustom;
    pthread_mutex_unlock(&custom_lock);
    return known ? &customs[k].info : &unknown_op;
}

const char *sg_op_name(int op) {
    const sg_op_info *info = sg__op(op);
    return info && info->name ? info->name : "unknown-op";
}

int sg_op_register(sg_ctx *ctx, const sg_custom_op *def) {
    if (!def || !def->forward || !def->backward || !def->name || !def->name[0]) {
        sg_error(ctx, "sg_op_register: a custom op needs a name, a forward and a backward");
        return -1;
    }
    if (strlen(def->name) >= sizeof customs[0].name) {
        sg_error(ctx, "sg_op_register: name \"%.40s...\" is longer than %zu characters", def->name,
                 sizeof customs[0].name - 1);
        return -1;
    }
    pthread_mutex_lock(&custom_lock);
    int k = ncustom;
    if (k < SG_CUSTOM_OP_MAX) {
        custom_entry *e = &customs[k];
        e->def = *def;
        snprintf(e->name, sizeof e->name, "%s", def->name);
        e->def.name = e->name;
        e->info = (sg_op_info){
            .name = e->name,
            .reads = (def->reads_inputs ? (1u << SG_MAX_SRC) - 1 : 0) |
                     (def->reads_output ? SG_READS_OUT : 0),
            .flags = SG_OPF_GRAD_DENSE, /* the callback is promised contiguous gradients */
            .backward = bw_custom,
        };
        ncustom++;
    }
    pthread_mutex_unlock(&custom_lock);
    if (k >= SG_CUSTOM_OP_MAX) {
        sg_error(ctx, "sg_op_register: all %d custom op slots are taken", SG_CUSTOM_OP_MAX);
        return -1;
    }
    return SG_OP_COUNT + k;
}

sg_tensor *sg_custom(sg_ctx *ctx, int op, int n, sg_tensor *const *in) {
    if (!ctx)
        return NULL;
    const sg_op_info *info = op >= SG_OP_COUNT ? sg__custom_info(op) : NULL;
    if (!info || !info->backward)
        return sg_error(ctx, "sg_custom: %d is not a registered custom op id", op);
    if (!in)
        return sg_error(ctx, "sg_custom: %s: inputs are NULL", info->name);
    if (n < 1 || n > SG_MAX_SRC)
        return sg_error(ctx, "sg_custom: %s takes 1 to %d inputs (got %d)", info->name, SG_MAX_SRC,
                        n);
    if (!sg__check_inputs(ctx, info->name, n, in))
        return NULL;
    const custom_entry *e = &customs[op - SG_OP_COUNT];
    bool was = !ctx->tape.grad_disabled;
    ctx->tape.grad_disabled = true;
    sg_tensor *y = e->def.forward(ctx, n, in, e->def.user);
    ctx->tape.grad_disabled = !was;
    if (!y) {
        if (!sg_ctx_error(ctx))
            sg_error(ctx, "sg_custom: the forward of %s returned NULL", info->name);
        return NULL;
    }
    if (!sg_check(ctx, y, info->name))
        return NULL;
    /* A header of its own, so that recording never marks an input (or a tensor the forward
     * keeps) as this node. */
    sg_tensor *out = sg__view_of(ctx, y);
    if (!out)
        return NULL;
    return sg__finish(ctx, out, op, n, in);
}

static void bw_custom(sg_ctx *ctx, sg_tensor *out) {
    const custom_entry *e = &customs[out->op - SG_OP_COUNT];
    sg_tensor *din[SG_MAX_SRC] = {0};
    for (int i = 0; i < out->nsrc; i++)
        if (sg__needs(out, i) && !(din[i] = sg__grad(ctx, out->src[i])))
            return;
    /* The forward's output may be any view; the callback is promised contiguous tensors. */
    sg_tensor *y = sg_is_contiguous(out)
                       ? out
                       : sg__new(ctx, "sg_backward", out->dtype, out->ndim, out->shape, false);
    sg_tensor *dy = sg_is_contiguous(out->grad)
                        ? out->grad
                        : sg__new(ctx, "sg_backward", out->dtype, out->ndim, out->shape, false);
    if (!y || !dy)
        return;
    if (y != out)
        sg_copy(y, out);
    if (dy != out->grad)
        sg_copy(dy, out->grad);
    bool was = !ctx->tape.grad_disabled;
    ctx->tape.grad_disabled = true;
    int rc = e->def.backward(ctx, out->nsrc, out->src, y, dy, din, e->def.user);
    ctx->tape.grad_disabled = !was;
    if (rc && !sg_ctx_error(ctx))
        sg_error(ctx, "sg_backward: the backward of %s failed", e->name);
}
