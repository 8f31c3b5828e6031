/* Graphviz export of the graph behind a tensor: one node per tensor, edges from inputs. */
#include <string.h>

#include "ops.h"

typedef struct {
    const sg_tensor **v;
    int n, cap;
} tset;

static int tset_index(const tset *s, const sg_tensor *t) {
    for (int i = 0; i < s->n; i++)
        if (s->v[i] == t)
            return i;
    return -1;
}

/* One node: a leaf as a box with its name, an op as an ellipse "<name> = <op>" (named ones
 * filled, so that the gates stand out), each with its shape. */
static void dot_node(FILE *f, const sg_tensor *t, int i, const char *indent) {
    char s[96];
    sg_shape_str(t->ndim, t->shape, s, sizeof s);
    int nl = (int)strlen(t->name); /* always terminated (sg_tensor_set_name) */
    if (t->op == SG_OP_NONE)
        fprintf(f, "%sn%d [shape=box, style=filled, fillcolor=\"%s\", label=\"%.*s\\n%s %s\"];\n",
                indent, i, (t->flags & SG_FLAG_PARAM) ? "lightblue" : "lightgrey", nl ? nl : 5,
                nl ? t->name : "input", s, sg_dtype_name(t->dtype));
    else
        fprintf(f, "%sn%d [shape=ellipse%s, label=\"%.*s%s%s\\n%s\"];\n", indent, i,
                nl ? ", style=filled, fillcolor=\"lightyellow\"" : "", nl, t->name, nl ? " = " : "",
                sg_op_name(t->op), s);
}

int sg_dot_write(sg_ctx *ctx, const sg_tensor *out, FILE *f) {
    if (!ctx || !out || !sg_check(ctx, out, "sg_dot_write"))
        return -1;
    if (!f) {
        sg_error(ctx, "sg_dot_write: FILE is NULL");
        return -1;
    }
    /* Depth-first collection of every tensor reachable through the inputs. */
    tset seen = {0}, stack = {0};
    int rc = 0;
#define PUSH(S, T)                                                                                 \
    do {                                                                                           \
        if ((S).n == (S).cap) {                                                                    \
            int nc = (S).cap ? 2 * (S).cap : 64;                                                   \
            const sg_tensor **nv = sg_realloc((S).v, (size_t)nc * sizeof *nv);                     \
            if (!nv) {                                                                             \
                rc = -1;                                                                           \
                goto done;                                                                         \
            }                                                                                      \
            (S).v = nv;                                                                            \
            (S).cap = nc;                                                                          \
        }                                                                                          \
        (S).v[(S).n++] = (T);                                                                      \
    } while (0)
    PUSH(stack, out);
    while (stack.n) {
        const sg_tensor *t = stack.v[--stack.n];
        if (tset_index(&seen, t) >= 0)
            continue;
        PUSH(seen, t);
        sg_tensor *const *in;
        int k = sg__node_inputs(t, &in);
        for (int i = 0; i < k; i++)
            if (in[i])
                PUSH(stack, in[i]);
    }
    fprintf(f, "digraph seqgrad {\n  rankdir=BT;\n  node [fontname=\"Helvetica\"];\n");
    /* Nodes without a step first, then one cluster per step in increasing order. */
    int64_t prev = -2;
    for (;;) {
        int64_t step = INT64_MAX;
        for (int i = 0; i < seen.n; i++) {
            int64_t st = sg_node_step(seen.v[i]);
            if (st > prev && st < step)
                step = st;
        }
        if (prev > -2 && step == INT64_MAX)
            break;
        if (prev == -2)
            step = -1;
        if (step >= 0)
            fprintf(f,
                    "  subgraph cluster_t%lld {\n    label=\"t = %lld\";\n    style=rounded;\n"
                    "    color=grey50;\n",
                    (long long)step, (long long)step);
        for (int i = 0; i < seen.n; i++)
            if (sg_node_step(seen.v[i]) == step)
                dot_node(f, seen.v[i], i, step >= 0 ? "    " : "  ");
        if (step >= 0)
            fprintf(f, "  }\n");
        prev = step;
    }
    for (int i = 0; i < seen.n; i++) {
        sg_tensor *const *in;
        int k = sg__node_inputs(seen.v[i], &in);
        for (int j = 0; j < k; j++)
            if (in[j])
                fprintf(f, "  n%d -> n%d;\n", tset_index(&seen, in[j]), i);
    }
    fprintf(f, "}\n");
    if (ferror(f)) {
        sg_error(ctx, "sg_dot_write: write error");
        rc = -1;
    }
done:
    if (rc && !ctx->has_err)
        sg_error(ctx, "sg_dot_write: out of memory");
    sg_free(seen.v);
    sg_free(stack.v);
    return rc;
#undef PUSH
}

int sg_dot_save(sg_ctx *ctx, const sg_tensor *out, const char *path) {
    if (!ctx || !out)
        return -1;
    if (!path) {
        sg_error(ctx, "sg_dot_save: path is NULL");
        return -1;
    }
    FILE *f = fopen(path, "w");
    if (!f) {
        sg_error(ctx, "sg_dot_save: cannot open %s for writing", path);
        return -1;
    }
    int rc = sg_dot_write(ctx, out, f);
    if (fclose(f) && rc == 0) {
        sg_error(ctx, "sg_dot_save: error closing %s", path);
        rc = -1;
    }
    return rc;
}
