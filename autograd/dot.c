/* Graphviz export of the graph behind a tensor: one node per tensor, edges from inputs. */
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
    for (int i = 0; i < seen.n; i++) {
        const sg_tensor *t = seen.v[i];
        char s[96];
        sg_shape_str(t->ndim, t->shape, s, sizeof s);
        if (t->op == SG_OP_NONE)
            fprintf(f, "  n%d [shape=box, style=filled, fillcolor=\"%s\", label=\"%s\\n%s %s\"];\n",
                    i, (t->flags & SG_FLAG_PARAM) ? "lightblue" : "lightgrey",
                    t->name[0] ? t->name : "input", s, sg_dtype_name(t->dtype));
        else
            fprintf(f, "  n%d [shape=ellipse, label=\"%s%s%s\\n%s\"];\n", i, sg_op_name(t->op),
                    t->name[0] ? " " : "", t->name, s);
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
