/* Lesson 2 (docs/tutorial.md): backpropagation through time by hand.
 *
 * A three-step RNN, one sequence, I = 2 inputs, H = 3 units, float64:
 *
 *     a_t = x_t W + h_{t-1} U + b        (row vectors; W (I, H), U (H, H), b (H))
 *     h_t = tanh(a_t)                    t = 1, 2, 3, h_0 given
 *     L   = sum_t 1/2 |h_t - y_t|^2
 *
 * Its gradients written out by hand in plain C loops (the chain rule, step by step,
 * from t = 3 back to t = 1), beside what the tape computes for the same function. The two
 * must agree to 1e-12 (the program exits 1 if not). Writes the graph the tape recorded
 * (lesson2_graph.dot; SVG and PNG when Graphviz is installed).
 *
 * Run:  build/examples/lessons/lesson2_bptt_by_hand [--out DIR]
 */
#include <math.h>

#include "lesson.h"

enum { T = 3, I = 2, H = 3 };

static const double X[T][I] = {{0.5, -1.0}, {1.5, 0.25}, {-0.75, 2.0}};
static const double Y[T][H] = {{0.1, -0.2, 0.3}, {0.0, 0.4, -0.1}, {-0.3, 0.2, 0.5}};

/* ---- by hand -------------------------------------------------------------------------- */

typedef struct {
    double W[I][H], U[H][H], b[H], h0[H];
} params;

typedef struct {
    double dW[I][H], dU[H][H], db[H], dh0[H];
    double dh[T][H]; /* dL/dh_t: from the loss at t and from step t+1 */
    double L;
} grads;

static void by_hand(const params *p, grads *g) {
    double h[T + 1][H]; /* h[0] = h_0, h[t] = h_t */
    memset(g, 0, sizeof *g);
    memcpy(h[0], p->h0, sizeof h[0]);
    /* forward: keep every h_t, backward needs them */
    for (int t = 1; t <= T; t++)
        for (int j = 0; j < H; j++) {
            double a = p->b[j];
            for (int k = 0; k < I; k++)
                a += X[t - 1][k] * p->W[k][j];
            for (int k = 0; k < H; k++)
                a += h[t - 1][k] * p->U[k][j];
            h[t][j] = tanh(a);
            g->L += 0.5 * (h[t][j] - Y[t - 1][j]) * (h[t][j] - Y[t - 1][j]);
        }
    /* backward through time: t = T, T-1, ..., 1.
     *   dL/dh_t = (h_t - y_t)                  the loss at step t
     *           + dL/da_{t+1} U^T              h_t entered a_{t+1} through U
     *   dL/da_t = dL/dh_t * (1 - h_t^2)        tanh' = 1 - tanh^2
     *   W, U, b are used at every step: their gradients are sums over t
     *   dL/dh_0 = dL/da_1 U^T                  where the chain ends */
    double da_next[H] = {0};
    for (int t = T; t >= 1; t--) {
        double da[H];
        for (int j = 0; j < H; j++) {
            double dh = h[t][j] - Y[t - 1][j];
            for (int k = 0; k < H; k++)
                dh += da_next[k] * p->U[j][k];
            g->dh[t - 1][j] = dh;
            da[j] = dh * (1 - h[t][j] * h[t][j]);
        }
        for (int j = 0; j < H; j++) {
            for (int k = 0; k < I; k++)
                g->dW[k][j] += X[t - 1][k] * da[j];
            for (int k = 0; k < H; k++)
                g->dU[k][j] += h[t - 1][k] * da[j];
            g->db[j] += da[j];
        }
        memcpy(da_next, da, sizeof da);
    }
    for (int j = 0; j < H; j++)
        for (int k = 0; k < H; k++)
            g->dh0[j] += da_next[k] * p->U[j][k];
}

/* ---- on the tape ---------------------------------------------------------------------- */

static sg_tensor *leaf(sg_ctx *ctx, const double *v, int rows, int cols, const char *name) {
    sg_tensor *t = rows ? sg_from_data(ctx, SG_F64, SG_SHAPE(rows, cols), v)
                        : sg_from_data(ctx, SG_F64, SG_SHAPE(cols), v);
    sg_tensor_set_name(t, name);
    return sg_set_requires_grad(t, true);
}

/* max |tape - hand| over n values */
static double diff(const sg_tensor *t, const double *v, int n) {
    double d = 0;
    for (int i = 0; i < n; i++)
        d = fmax(d, fabs(sg_get_flat(t, i) - v[i]));
    return t ? d : INFINITY;
}

int main(int argc, char **argv) {
    double t_start = lesson_seconds();
    const char *dir = lesson_out_dir(argc, argv, "lesson2");
    if (!dir)
        return 1;
    params p;
    sg_rng rng;
    sg_rng_seed(&rng, 2);
    for (int k = 0; k < I * H; k++)
        (&p.W[0][0])[k] = 0.8 * sg_rng_normal(&rng);
    for (int k = 0; k < H * H; k++)
        (&p.U[0][0])[k] = 0.8 * sg_rng_normal(&rng);
    for (int j = 0; j < H; j++)
        p.b[j] = 0.1 * sg_rng_normal(&rng), p.h0[j] = 0.5 * sg_rng_normal(&rng);
    grads g;
    by_hand(&p, &g);

    sg_ctx *ctx = sg_ctx_new(0);
    sg_ctx_set_labels(ctx, true); /* the graph names h_t, a_t */
    sg_tensor *W = leaf(ctx, &p.W[0][0], I, H, "W"), *U = leaf(ctx, &p.U[0][0], H, H, "U");
    sg_tensor *b = leaf(ctx, p.b, 0, H, "b"), *h = leaf(ctx, p.h0, 1, H, "h_0");
    sg_tensor *h0 = h, *hs[T], *L = NULL;
    for (int t = 0; t < T; t++) {
        sg_ctx_set_step(ctx, t + 1); /* the graph's clusters, numbered as above */
        sg_tensor *x = sg_from_data(ctx, SG_F64, SG_SHAPE(1, I), X[t]);
        sg_tensor *y = sg_from_data(ctx, SG_F64, SG_SHAPE(1, H), Y[t]);
        sg_tensor_set_name(x, "x_t");
        sg_tensor_set_name(y, "y_t");
        sg_tensor *a = sg_add(ctx, sg_add(ctx, sg_matmul(ctx, x, W), sg_matmul(ctx, h, U)), b);
        h = sg_label(ctx, sg_tanh(ctx, sg_label(ctx, a, "a_t")), "h_t");
        hs[t] = sg_retain_grad(h); /* keep dL/dh_t to compare with the hand's */
        sg_tensor *l = sg_scale(ctx, sg_sum(ctx, sg_square(ctx, sg_sub(ctx, h, y))), 0.5);
        L = L ? sg_add(ctx, L, l) : l;
    }
    sg_ctx_set_step(ctx, -1);
    sg_label(ctx, L, "L");
    if (!L || sg_backward(ctx, L, NULL)) {
        fprintf(stderr, "lesson2: %s\n", sg_ctx_error(ctx));
        sg_ctx_free(ctx);
        return 1;
    }

    printf("L = %.15f (tape) %.15f (hand)\n", sg_get_flat(L, 0), g.L);
    printf("\nstep  dL/dh_t by hand                      max |tape - hand|\n");
    double worst = fabs(sg_get_flat(L, 0) - g.L);
    for (int t = 0; t < T; t++) {
        double d = diff(hs[t]->grad, g.dh[t], H);
        worst = fmax(worst, d);
        printf("%4d  [%9.6f %9.6f %9.6f]  %.3g\n", t + 1, g.dh[t][0], g.dh[t][1], g.dh[t][2], d);
    }
    struct {
        const char *name;
        const sg_tensor *tape;
        const double *hand;
        int n;
    } cmp[] = {{"dL/dW", W->grad, &g.dW[0][0], I * H},
               {"dL/dU", U->grad, &g.dU[0][0], H * H},
               {"dL/db", b->grad, g.db, H},
               {"dL/dh_0", h0->grad, g.dh0, H}};
    printf("\n");
    for (int k = 0; k < 4; k++) {
        double d = diff(cmp[k].tape, cmp[k].hand, cmp[k].n);
        worst = fmax(worst, d);
        printf("%-8s max |tape - hand| = %.3g   (hand: %.6f %.6f ...)\n", cmp[k].name, d,
               cmp[k].hand[0], cmp[k].hand[1]);
    }
    char path[4096];
    int rc = sg_dot_save(ctx, L, lesson_path(path, sizeof path, dir, "lesson2_graph.dot"));
    if (rc == 0) {
        printf("\nwrote %s\n", path);
        rc = lesson_render_dot(path);
    } else {
        fprintf(stderr, "lesson2: %s\n", sg_ctx_error(ctx));
    }
    sg_ctx_free(ctx);
    printf("\nlargest difference, tape against hand: %.3g (must be <= 1e-12)\n", worst);
    printf("lesson2: %.2f s\n", lesson_seconds() - t_start);
    if (!(worst <= 1e-12)) {
        fprintf(stderr, "lesson2: the tape and the hand disagree by %.3g\n", worst);
        return 1;
    }
    return rc ? 1 : 0;
}
