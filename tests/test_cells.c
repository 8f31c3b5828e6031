/* The GRU and SimpleRNN cells (layers/cell_gru.c, layers/cell_rnn.c) driven directly through
 * their sg__cell_fns: project x once, then step over the time steps here.
 *
 *  - sg_gradcheck (float64) of x, h0 and the three Keras-layout tensors over a few steps:
 *    GRU reset_after true and false, SimpleRNN tanh and relu; zero and given initial h;
 *    x strided (a transposed view) or not; batch-major or time-major projection; stepping
 *    in place or not;
 *  - Keras' GRU in both layouts against a numpy reference (tests/fixtures/cells.h);
 *  - PyTorch's nn.GRU and nn.RNN (tanh, relu): weights loaded through torch(), outputs and
 *    every gradient (x, h0, the state_dict's tensors through torch() with grads);
 *  - torch() round trips; creation (shapes, initializers); the error messages.
 *
 * Tolerances against the float64 fixtures: float64 1e-12 relative to max(1, |ref|);
 * float32 2e-5 (inputs rounded to float32 and every op rounding again over a few steps). */
#include <check.h>
#include <math.h>
#include <string.h>

#include "fixtures/cells.h"
#include "layers/internal.h"

#include "cksuite.h"
#include "ctxtest.h"
#include "optest.h"
#include "tensortest.h"

/* The options of a cell: Keras' defaults (sg_rnn_defaults), float64. */
static sg_rnn_options opts(sg_cell_kind k, int64_t I, int64_t H) {
    sg_rnn_options o = sg_rnn_defaults(k, I, H);
    o.dtype = SG_F64;
    return o;
}

/* A cell of fns with options o (kept in *o, which must outlive it), its parameters created
 * in store under "cell". */
static sg__cell make_cell(const sg__cell_fns *fns, const sg_rnn_options *o, sg_store *store) {
    sg__cell c = {.fns = fns, .opt = o, .in = o->input_size, .units = o->units};
    ck_assert_msg(fns->create(ctx, store, &c, "cell", sg_ctx_rng(ctx)) == 0, "create: %s",
                  sg_ctx_error(ctx) ? sg_ctx_error(ctx) : "?");
    return c;
}

/* Run the cell over x (B, T, I) from h0 (NULL: zeros): project, then one step per time step.
 * y (B, T, H) every step's h; *h_n the last. */
static sg_tensor *run(sg_ctx *cx, const sg__cell *c, sg_tensor *x, sg_tensor *h0, bool time_major,
                      bool ip, sg_tensor **h_n) {
    sg_tensor *xp = c->fns->project(cx, c, x, time_major);
    if (!xp)
        return NULL;
    int64_t T = x->shape[1];
    sg_tensor *hs[16], *h = h0;
    ck_assert_int_le(T, 16);
    for (int64_t t = 0; t < T; t++) {
        sg_tensor *state[1] = {h};
        if (c->fns->step(cx, c, sg_select(cx, xp, time_major ? 0 : 1, t), state, ip))
            return NULL;
        hs[t] = h = state[0];
    }
    if (h_n)
        *h_n = h;
    return sg_stack(cx, (int)T, hs, 1);
}

/* ---- gradcheck ------------------------------------------------------------------------ */

typedef struct {
    sg__cell c;
    bool strided, time_major, ip, has_h0, has_bias;
} gc_case;

/* inputs: x ((T, B, I) when strided, read through its transpose; else (B, T, I)), kernel,
 * recurrent_kernel, then bias when has_bias, then h0 when has_h0. Output y, and h_n added to its
 * last step so that h_n's path is checked as well. */
static sg_tensor *gc_fn(sg_ctx *cx, sg_tensor *const *in, void *user) {
    gc_case *g = user;
    sg__cell c = g->c;
    c.kernel = in[1];
    c.recurrent_kernel = in[2];
    c.bias = g->has_bias ? in[3] : NULL;
    sg_tensor *x = g->strided ? sg_transpose(cx, in[0], 0, 1) : in[0], *h_n;
    sg_tensor *y =
        run(cx, &c, x, g->has_h0 ? in[3 + g->has_bias] : NULL, g->time_major, g->ip, &h_n);
    int64_t B = h_n ? h_n->shape[0] : 0, H = h_n ? h_n->shape[1] : 0; /* y + h_n^2 / 2 */
    return sg_add(cx, y, sg_scale(cx, sg_square(cx, sg_reshape(cx, h_n, SG_SHAPE(B, 1, H))), 0.5));
}

/* the 4 cells of the gradcheck: GRU reset_after, GRU reset_before, SimpleRNN tanh, relu */
static sg_rnn_options gc_opts(int cell, int64_t I, int64_t H) {
    sg_rnn_options o = opts(cell < 2 ? SG_CELL_GRU : SG_CELL_RNN, I, H);
    o.reset_after = cell == 0;
    o.activation = cell == 3 ? SG_ACT_RELU : SG_ACT_TANH;
    return o;
}

/* _i: bits 0-1 the cell, bit 2 h0 given, bit 3 strided x, bit 4 time-major, bit 5 in place,
 * bit 6 no bias */
START_TEST(test_gradcheck) {
    const int64_t B = 2, T = 3, I = 3, H = 2;
    int cell = _i & 3;
    sg_rnn_options o = gc_opts(cell, I, H);
    gc_case g = {
        .c = {.fns = cell < 2 ? &sg__gru_fns : &sg__rnn_fns, .opt = &o, .in = I, .units = H},
        .has_h0 = _i >> 2 & 1,
        .strided = _i >> 3 & 1,
        .time_major = _i >> 4 & 1,
        .ip = _i >> 5 & 1,
        .has_bias = !(_i >> 6 & 1)};
    int G = g.c.fns->gates;
    sg_rng rng;
    sg_rng_seed(&rng, 7 + (uint64_t)_i);
    sg_tensor *in[5] = {
        g.strided ? sg_tensor_new(ctx, SG_F64, SG_SHAPE(T, B, I))
                  : sg_tensor_new(ctx, SG_F64, SG_SHAPE(B, T, I)),
        sg_tensor_new(ctx, SG_F64, SG_SHAPE(I, G * H)),
        sg_tensor_new(ctx, SG_F64, SG_SHAPE(H, G * H)),
        cell == 0 ? sg_tensor_new(ctx, SG_F64, SG_SHAPE(2, G * H))
                  : sg_tensor_new(ctx, SG_F64, SG_SHAPE(G * H)),
        sg_tensor_new(ctx, SG_F64, SG_SHAPE(B, H)),
    };
    for (int k = 0; k < 5; k++)
        for (int64_t j = 0; j < sg_numel(in[k]); j++)
            sg_set_flat(in[k], j, 0.8 * sg_rng_normal(&rng));
    char what[96];
    snprintf(what, sizeof what, "%s reset_after=%d act=%s h0=%d strided=%d tm=%d ip=%d bias=%d",
             g.c.fns->name, o.reset_after, sg_activation_name(o.activation), g.has_h0, g.strided,
             g.time_major, g.ip, g.has_bias);
    if (!g.has_bias)
        in[3] = in[4];
    expect_gradcheck(ctx, gc_fn, &g, 3 + g.has_bias + g.has_h0, in, what);
}
END_TEST

/* ---- Keras' GRU: the numpy reference ------------------------------------------------- */

typedef struct {
    int B, T, I, H, reset_after, has_init;
    const double *x, *h0, *kernel, *rk, *bias, *y;
} keras_cfg;
#define KERAS_CFG(n)                                                                               \
    {                                                                                              \
        n##_B, n##_T, n##_I, n##_H, n##_reset_after, n##_has_init, n##_x, n##_h0, n##_kernel,      \
            n##_recurrent_kernel, n##_bias, n##_y                                                  \
    }
static const keras_cfg keras_cfgs[4] = {KERAS_CFG(keras_gru_a), KERAS_CFG(keras_gru_b),
                                        KERAS_CFG(keras_gru_c), KERAS_CFG(keras_gru_d)};

/* _i: bits 0-1 the config, bit 2 float32 */
START_TEST(test_keras_gru) {
    const keras_cfg *k = &keras_cfgs[_i & 3];
    sg_dtype dt = _i & 4 ? SG_F32 : SG_F64;
    double tol = dt == SG_F64 ? 1e-12 : 2e-5;
    int64_t B = k->B, T = k->T, I = k->I, H = k->H;
    sg_rnn_options o = opts(SG_CELL_GRU, I, H);
    o.reset_after = k->reset_after;
    o.dtype = dt;
    sg_store *store = sg_store_new();
    sg__cell c = make_cell(&sg__gru_fns, &o, store);
    if (k->reset_after)
        expect_shape(c.bias, SG_SHAPE(2, 3 * H));
    else
        expect_shape(c.bias, SG_SHAPE(3 * H));
    ck_assert_int_eq(sg_copy_values(c.kernel, mk(ctx, SG_F64, SG_SHAPE(I, 3 * H), k->kernel)), 0);
    ck_assert_int_eq(sg_copy_values(c.recurrent_kernel, mk(ctx, SG_F64, SG_SHAPE(H, 3 * H), k->rk)),
                     0);
    ck_assert_int_eq(sg_copy_values(c.bias, mk(ctx, SG_F64, SG_SHAPE(sg_numel(c.bias)), k->bias)),
                     0);
    sg_tensor *x = mk(ctx, dt, SG_SHAPE(B, T, I), k->x);
    sg_tensor *h0 = k->has_init ? mk(ctx, dt, SG_SHAPE(B, H), k->h0) : NULL;
    for (int tm = 0; tm < 2; tm++)
        for (int ip = 0; ip < 2; ip++) {
            sg_tensor *y = run(ctx, &c, x, h0, tm, ip, NULL);
            expect_shape(y, SG_SHAPE(B, T, H));
            expect_vals(y, k->y, tol);
        }
    sg_store_free(store);
}
END_TEST

/* ---- PyTorch's nn.GRU and nn.RNN ------------------------------------------------------ */

typedef struct {
    int B, T, I, H, G, has_bias, has_init, relu;
    const double *x, *h0, *w_ih, *w_hh, *b_ih, *b_hh, *dw_ih, *dw_hh, *db_ih, *db_hh, *dy, *dh, *y,
        *h_n, *dx, *dh0;
} torch_cfg;
#define TORCH_CFG(n, b_ih, b_hh, db_ih, db_hh)                                                     \
    {                                                                                              \
        n##_B, n##_T, n##_I, n##_H, n##_G, n##_has_bias, n##_has_init, n##_relu, n##_x, n##_h0,    \
            n##_weight_ih, n##_weight_hh, b_ih, b_hh, n##_dweight_ih, n##_dweight_hh, db_ih,       \
            db_hh, n##_dy, n##_dh, n##_y, n##_h_n, n##_dx, n##_dh0                                 \
    }
#define TORCH_CFG_B(n) TORCH_CFG(n, n##_bias_ih, n##_bias_hh, n##_dbias_ih, n##_dbias_hh)
static const torch_cfg torch_cfgs[4] = {TORCH_CFG_B(torch_gru_a),
                                        TORCH_CFG(torch_gru_b, NULL, NULL, NULL, NULL),
                                        TORCH_CFG_B(torch_rnn_tanh), TORCH_CFG_B(torch_rnn_relu)};

/* The cell of config t, its weights loaded from PyTorch's layout through torch(). */
static sg__cell torch_cell(const torch_cfg *t, sg_rnn_options *o, sg_store *store, sg_dtype dt) {
    *o = opts(t->G == 3 ? SG_CELL_GRU : SG_CELL_RNN, t->I, t->H);
    o->use_bias = t->has_bias;
    o->activation = t->relu ? SG_ACT_RELU : SG_ACT_TANH;
    o->dtype = dt;
    sg__cell c = make_cell(t->G == 3 ? &sg__gru_fns : &sg__rnn_fns, o, store);
    int64_t GH = t->G * t->H;
    int rc = c.fns->torch(ctx, &c, true, false, mk(ctx, SG_F64, SG_SHAPE(GH, t->I), t->w_ih),
                          mk(ctx, SG_F64, SG_SHAPE(GH, t->H), t->w_hh),
                          t->b_ih ? mk(ctx, SG_F64, SG_SHAPE(GH), t->b_ih) : NULL,
                          t->b_hh ? mk(ctx, SG_F64, SG_SHAPE(GH), t->b_hh) : NULL);
    ck_assert_msg(rc == 0, "torch: %s", sg_ctx_error(ctx) ? sg_ctx_error(ctx) : "?");
    return c;
}

/* New zero tensors of PyTorch's layout for cell c: w[0..4) = w_ih, w_hh, b_ih, b_hh. */
static void torch_tensors(const sg__cell *c, sg_dtype dt, sg_tensor *w[4]) {
    int64_t GH = c->fns->gates * c->units;
    w[0] = sg_tensor_new(ctx, dt, SG_SHAPE(GH, c->in));
    w[1] = sg_tensor_new(ctx, dt, SG_SHAPE(GH, c->units));
    w[2] = sg_tensor_new(ctx, dt, SG_SHAPE(GH));
    w[3] = sg_tensor_new(ctx, dt, SG_SHAPE(GH));
}

/* _i: bits 0-1 the config, bit 2 float32, bit 3 time-major and in place */
START_TEST(test_torch) {
    const torch_cfg *t = &torch_cfgs[_i & 3];
    sg_dtype dt = _i & 4 ? SG_F32 : SG_F64;
    bool fast = _i >> 3 & 1;
    double tol = dt == SG_F64 ? 1e-12 : 2e-5;
    int64_t B = t->B, T = t->T, I = t->I, H = t->H;
    sg_rnn_options o;
    sg_store *store = sg_store_new();
    sg__cell c = torch_cell(t, &o, store, dt);
    sg_tensor *x = sg_set_requires_grad(mk(ctx, dt, SG_SHAPE(B, T, I), t->x), true);
    sg_tensor *h0 = t->has_init ? sg_set_requires_grad(mk(ctx, dt, SG_SHAPE(B, H), t->h0), true)
                                : NULL,
              *h_n;
    sg_tensor *y = run(ctx, &c, x, h0, fast, fast, &h_n);
    expect_vals(y, t->y, tol);
    expect_vals(h_n, t->h_n, tol);
    sg_tensor *loss =
        sg_add(ctx, sg_sum(ctx, sg_mul(ctx, y, mk(ctx, dt, SG_SHAPE(B, T, H), t->dy))),
               sg_sum(ctx, sg_mul(ctx, h_n, mk(ctx, dt, SG_SHAPE(B, H), t->dh))));
    ck_assert_int_eq(sg_backward(ctx, loss, NULL), 0);
    expect_vals(x->grad, t->dx, tol);
    if (h0)
        expect_vals(h0->grad, t->dh0, tol);
    sg_tensor *w[4];
    torch_tensors(&c, SG_F64, w);
    ck_assert_int_eq(c.fns->torch(ctx, &c, false, true, w[0], w[1], t->has_bias ? w[2] : NULL,
                                  t->has_bias ? w[3] : NULL),
                     0);
    expect_vals(w[0], t->dw_ih, tol);
    expect_vals(w[1], t->dw_hh, tol);
    if (t->has_bias) {
        expect_vals(w[2], t->db_ih, tol);
        expect_vals(w[3], t->db_hh, tol);
    }
    ck_no_error();
    sg_store_free(store);
}
END_TEST

/* torch() both ways: PyTorch -> cell -> PyTorch gives the weights back exactly (a GRU's
 * biases too; a SimpleRNN's as b_ih + b_hh in bias_ih, zero bias_hh), and cell -> PyTorch ->
 * cell gives every Keras-layout tensor back exactly. _i: the config. */
START_TEST(test_torch_round_trip) {
    const torch_cfg *t = &torch_cfgs[_i];
    int64_t GH = t->G * t->H;
    sg_rnn_options o;
    sg_store *store = sg_store_new();
    sg__cell c = torch_cell(t, &o, store, SG_F64);
    sg_tensor *w[4];
    torch_tensors(&c, SG_F64, w);
    ck_assert_int_eq(c.fns->torch(ctx, &c, false, false, w[0], w[1], w[2], w[3]), 0);
    expect_vals(w[0], t->w_ih, 0);
    expect_vals(w[1], t->w_hh, 0);
    double b_ih[16] = {0}, b_hh[16] = {0};
    for (int64_t j = 0; t->has_bias && j < GH; j++) {
        b_ih[j] = t->G == 3 ? t->b_ih[j] : t->b_ih[j] + t->b_hh[j];
        b_hh[j] = t->G == 3 ? t->b_hh[j] : 0.0;
    }
    expect_vals(w[2], b_ih, 0);
    expect_vals(w[3], b_hh, 0);
    /* cell -> PyTorch -> a second cell: the same Keras-layout tensors */
    sg_rnn_options o2 = o;
    sg_store *store2 = sg_store_new();
    sg__cell c2 = make_cell(c.fns, &o2, store2);
    ck_assert_int_eq(c2.fns->torch(ctx, &c2, true, false, w[0], w[1], t->has_bias ? w[2] : NULL,
                                   t->has_bias ? w[3] : NULL),
                     0);
    sg_tensor *const a[3] = {c.kernel, c.recurrent_kernel, c.bias},
                     *b[3] = {c2.kernel, c2.recurrent_kernel, c2.bias};
    for (int k = 0; k < 3; k++) {
        ck_assert_int_eq(!a[k], !b[k]);
        for (int64_t j = 0; a[k] && j < sg_numel(a[k]); j++)
            ck_assert_double_eq(sg_get_flat(b[k], j), sg_get_flat(a[k], j));
    }
    sg_store_free(store);
    sg_store_free(store2);
}
END_TEST

/* The block mapping by hand: a GRU's Keras kernel with block k filled with k + 1 (z 1, r 2,
 * h 3) gives PyTorch's rows r (2), z (1), n (3); the recurrent bias row likewise. */
START_TEST(test_gru_block_order) {
    const int64_t I = 2, H = 2;
    sg_rnn_options o = opts(SG_CELL_GRU, I, H);
    sg_store *store = sg_store_new();
    sg__cell c = make_cell(&sg__gru_fns, &o, store);
    for (int64_t j = 0; j < I * 3 * H; j++)
        sg_set_flat(c.kernel, j, (double)(j % (3 * H) / H + 1));
    for (int64_t j = 0; j < 2 * 3 * H; j++)
        sg_set_flat(c.bias, j, (double)(j % (3 * H) / H + 1) * (j < 3 * H ? 1 : 10));
    sg_tensor *w[4];
    torch_tensors(&c, SG_F64, w);
    ck_assert_int_eq(c.fns->torch(ctx, &c, false, false, w[0], w[1], w[2], w[3]), 0);
    expect_vals(w[0], (double[]){2, 2, 2, 2, 1, 1, 1, 1, 3, 3, 3, 3}, 0);
    expect_vals(w[2], (double[]){2, 2, 1, 1, 3, 3}, 0);
    expect_vals(w[3], (double[]){20, 20, 10, 10, 30, 30}, 0);
    sg_store_free(store);
}
END_TEST

/* A GRU step's recorded ops (reset_after, with a bias, given h, float64): not in place 11
 * (b_h's select, h @ U + b_h, xp + hu over all three blocks, the sigmoid over it, four
 * slices, lerp for xp[h] + r * hu[h], tanh, lerp for h'), where the step is the cost per op;
 * in place 15, the same values (within rounding: the lerp's (xp[h] + hu[h]) - xp[h]). */
/* sg_gru_gates alone: float64 gradcheck with a strided xp (a transposed view's rows), a
 * broadcast hu (b_h spread over the batch, h = 0) and no recurrent term at all; its errors. */
static sg_tensor *gates_fn(sg_ctx *c, sg_tensor *const *in, void *user) {
    int n = *(const int *)user;
    sg_tensor *xp = sg_transpose(c, in[0], 0, 1); /* (3H, B) stored: rows 3H apart */
    sg_tensor *hu = n >= 2 ? in[1] : NULL;
    if (n == 2) /* (3H) spread over the batch */
        hu = sg_expand(c, hu, 2, (int64_t[]){xp->shape[0], xp->shape[1]});
    return sg_gru_gates(c, xp, hu, n == 3 ? in[2] : NULL);
}

START_TEST(test_gru_gates_op) {
    const int64_t B = 3, H = 2;
    for (int n = 1; n <= 3; n++) {
        sg_rng_seed(sg_ctx_rng(ctx), 40 + (uint64_t)n);
        sg_tensor *in[3] = {sg_rand_normal(ctx, SG_F64, SG_SHAPE(3 * H, B), 0, 1),
                            n == 2 ? sg_rand_normal(ctx, SG_F64, SG_SHAPE(3 * H), 0, 1)
                                   : sg_rand_normal(ctx, SG_F64, SG_SHAPE(B, 3 * H), 0, 1),
                            sg_rand_normal(ctx, SG_F64, SG_SHAPE(B, H), 0, 1)};
        char what[32];
        snprintf(what, sizeof what, "gru_gates n=%d", n);
        expect_gradcheck(ctx, gates_fn, &n, n, in, what);
    }
    sg_tensor *xp = sg_zeros(ctx, SG_F64, SG_SHAPE(2, 6)),
              *h = sg_zeros(ctx, SG_F64, SG_SHAPE(2, 2));
    ck_assert_ptr_null(sg_gru_gates(ctx, xp, NULL, h));
    expect_err(ctx, "sg_gru_gates: h given without hu (its recurrent term)");
    ck_assert_ptr_null(sg_gru_gates(ctx, sg_zeros(ctx, SG_F64, SG_SHAPE(2, 5)), NULL, NULL));
    expect_err(ctx, "sg_gru_gates: xp has shape (2, 5), expected (B, 3H)");
    ck_assert_ptr_null(sg_gru_gates(ctx, xp, sg_zeros(ctx, SG_F64, SG_SHAPE(2, 3)), NULL));
    expect_err(ctx, "sg_gru_gates: hu has shape (2, 3), expected (2, 6)");
    ck_assert_ptr_null(sg_gru_gates(ctx, xp, xp, sg_zeros(ctx, SG_F64, SG_SHAPE(3, 2))));
    expect_err(ctx, "sg_gru_gates: h has shape (3, 2), expected (2, 2)");
    ck_assert_ptr_null(sg_gru_gates(ctx, xp, sg_zeros(ctx, SG_F32, SG_SHAPE(2, 6)), NULL));
    expect_err(ctx, "sg_gru_gates: dtype mismatch: float64 and float32");
    ck_assert_ptr_null(sg_gru_gates(ctx, NULL, NULL, NULL));
    ck_assert_ptr_null(sg_ctx_error(ctx));
}
END_TEST

/* sg_lstm_gates and sg_lstm_gates_ alone: values against the equations composed of
 * primitives, float64 gradcheck with a strided z (a transposed view's rows), a strided c and
 * a strided bias (every other element), with c and without (zero cell state), with a bias
 * and without, in place and not; in place, z holds the activations afterwards; the errors.
 * _i: 0 not in place, 1 in place. */
typedef struct {
    bool ip, hasc, hasb;
} lstm_gates_case;

/* b[0], b[2], b[4], ...: a 1-D view of stride 2 */
static sg_tensor *every_other(sg_ctx *c, sg_tensor *b) {
    return sg_select(c, sg_reshape(c, b, SG_SHAPE(b->shape[0] / 2, 2)), 1, 0);
}

static sg_tensor *lstm_gates_fn(sg_ctx *c, sg_tensor *const *in, void *user) {
    const lstm_gates_case *k = user;
    sg_tensor *z = sg_transpose(c, in[0], 0, 1); /* (4H, B) stored: rows 4H apart */
    sg_tensor *cs = k->hasc ? sg_transpose(c, in[1], 0, 1) : NULL;
    sg_tensor *bs = k->hasb ? every_other(c, in[k->hasc ? 2 : 1]) : NULL;
    sg_tensor *out =
        k->ip ? sg_lstm_gates_(c, sg_scale(c, z, 1.0), cs, bs) : sg_lstm_gates(c, z, cs, bs);
    /* both halves in the loss, weighted differently */
    return sg_add(c, sg_sum(c, sg_slice(c, out, 1, 0, out ? out->shape[1] / 2 : 0)),
                  sg_sum(c, sg_square(c, out)));
}

START_TEST(test_lstm_gates_op) {
    const int64_t B = 3, H = 2;
    const bool ip = _i;
    for (int v = 0; v < 4; v++) {
        const bool hasc = v & 1, hasb = v & 2;
        sg_rng_seed(sg_ctx_rng(ctx), 60 + (uint64_t)v);
        sg_tensor *zin = sg_rand_normal(ctx, SG_F64, SG_SHAPE(4 * H, B), 0, 1);
        sg_tensor *cin = sg_rand_normal(ctx, SG_F64, SG_SHAPE(H, B), 0, 1);
        sg_tensor *bin = sg_rand_normal(ctx, SG_F64, SG_SHAPE(8 * H), 0, 1); /* every other */
        sg_tensor *in[3] = {zin, hasc ? cin : bin, bin};
        lstm_gates_case k = {ip, hasc, hasb};
        char what[48];
        snprintf(what, sizeof what, "lstm_gates ip=%d c=%d bias=%d", ip, hasc, hasb);
        expect_gradcheck(ctx, lstm_gates_fn, &k, 1 + hasc + hasb, in, what);
        /* the values, against the equations composed of primitives */
        sg_tensor *bias = hasb ? every_other(ctx, bin) : NULL;
        sg_tensor *z0 = sg_contiguous(ctx, sg_transpose(ctx, in[0], 0, 1));
        sg_tensor *z = bias ? sg_add(ctx, z0, bias) : z0;
        sg_tensor *c = hasc ? sg_transpose(ctx, cin, 0, 1) : NULL;
        sg_tensor *zc = sg_scale(ctx, z0, 1.0); /* what the in-place op consumes */
        sg_tensor *out = ip ? sg_lstm_gates_(ctx, zc, c, bias) : sg_lstm_gates(ctx, zc, c, bias);
        ck_assert_ptr_nonnull(out);
        sg_tensor *i = sg_sigmoid(ctx, sg_slice(ctx, z, 1, 0, H));
        sg_tensor *f = sg_sigmoid(ctx, sg_slice(ctx, z, 1, H, H));
        sg_tensor *g = sg_tanh(ctx, sg_slice(ctx, z, 1, 2 * H, H));
        sg_tensor *o = sg_sigmoid(ctx, sg_slice(ctx, z, 1, 3 * H, H));
        sg_tensor *cn = sg_mul(ctx, i, g);
        if (c)
            cn = sg_add(ctx, cn, sg_mul(ctx, f, c));
        sg_tensor *h = sg_mul(ctx, o, sg_tanh(ctx, cn));
        sg_tensor *acts[4] = {i, f, g, o};
        for (int64_t b = 0; b < B; b++)
            for (int64_t j = 0; j < H; j++) {
                int64_t at[2] = {b, j};
                ck_assert_double_eq_tol(sg_get(out, at), sg_get(h, at), 1e-14);
                ck_assert_double_eq_tol(sg_get(out, (int64_t[]){b, H + j}), sg_get(cn, at), 1e-14);
                for (int q = 0; ip && q < 4; q++) /* z consumed: the activations */
                    ck_assert_double_eq_tol(sg_get(zc, (int64_t[]){b, q * H + j}),
                                            sg_get(acts[q], at), 1e-15);
            }
        sg_ctx_reset(ctx);
    }
    if (ip) { /* the in-place rules: a leaf that requires grad; a block read by a backward */
        sg_tensor *leaf = sg_set_requires_grad(sg_zeros(ctx, SG_F64, SG_SHAPE(2, 8)), true);
        ck_assert_ptr_null(sg_lstm_gates_(ctx, leaf, NULL, NULL));
        expect_err(ctx, "sg_lstm_gates_: cannot work in place on a leaf tensor that requires "
                        "grad (a parameter?): use the out-of-place op");
        sg_tensor *z = sg_scale(ctx, leaf, 2.0);
        ck_assert_ptr_nonnull(sg_lstm_gates_(ctx, z, NULL, NULL));
        ck_assert_ptr_null(sg_sigmoid_(ctx, z)); /* the activations are kept there */
        ck_assert_ptr_nonnull(sg_ctx_error(ctx));
        sg_ctx_clear_error(ctx);
        return;
    }
    sg_tensor *z = sg_zeros(ctx, SG_F64, SG_SHAPE(2, 8));
    ck_assert_ptr_null(sg_lstm_gates(ctx, sg_zeros(ctx, SG_F64, SG_SHAPE(2, 5)), NULL, NULL));
    expect_err(ctx, "sg_lstm_gates: z has shape (2, 5), expected (B, 4H)");
    ck_assert_ptr_null(sg_lstm_gates(ctx, z, sg_zeros(ctx, SG_F64, SG_SHAPE(2, 3)), NULL));
    expect_err(ctx, "sg_lstm_gates: c has shape (2, 3), expected (2, 2)");
    ck_assert_ptr_null(sg_lstm_gates(ctx, z, NULL, sg_zeros(ctx, SG_F64, SG_SHAPE(7))));
    expect_err(ctx, "sg_lstm_gates: bias has shape (7,), expected (8,)");
    ck_assert_ptr_null(sg_lstm_gates(ctx, z, NULL, sg_zeros(ctx, SG_F64, SG_SHAPE(2, 4))));
    expect_err(ctx, "sg_lstm_gates: bias has shape (2, 4), expected (8,)");
    ck_assert_ptr_null(sg_lstm_gates(ctx, z, sg_zeros(ctx, SG_F32, SG_SHAPE(2, 2)), NULL));
    expect_err(ctx, "sg_lstm_gates: dtype mismatch: float64 and float32");
    ck_assert_ptr_null(sg_lstm_gates(ctx, z, NULL, sg_zeros(ctx, SG_F32, SG_SHAPE(8))));
    expect_err(ctx, "sg_lstm_gates: dtype mismatch: float64 and float32");
    ck_assert_ptr_null(sg_lstm_gates(ctx, NULL, NULL, NULL));
    ck_assert_ptr_null(sg_ctx_error(ctx));
}
END_TEST

START_TEST(test_gru_step_ops) {
    const int64_t B = 2, I = 3, H = 4;
    sg_rnn_options o = opts(SG_CELL_GRU, I, H);
    o.dtype = SG_F64;
    o.reset_after = _i == 0; /* 0: Keras' defaults (the gate op when not in place) */
    sg_store *store = sg_store_new();
    sg__cell c = make_cell(&sg__gru_fns, &o, store);
    sg_init_tensor(ctx, c.bias, (sg_init){SG_INIT_RANDOM_NORMAL, 0, 1}, NULL);
    sg_tensor *hs[2], *xp0 = NULL, *h0 = NULL;
    for (int ip = 0; ip < 2; ip++) {
        sg_rng_seed(sg_ctx_rng(ctx), 5); /* both passes draw the same xp and h */
        sg_tensor *xp = sg_rand_normal(ctx, SG_F64, SG_SHAPE(B, 3 * H), 0, 1);
        sg_tensor *h = sg_rand_normal(ctx, SG_F64, SG_SHAPE(B, H), 0, 1);
        ck_assert_ptr_nonnull(xp);
        ck_assert_ptr_nonnull(h);
        xp0 = xp;
        h0 = h;
        sg_set_requires_grad(xp, true);
        sg_set_requires_grad(h, true);
        xp = sg_scale(ctx, xp, 1.0); /* not a leaf, as the projection is */
        int64_t n0 = sg_tape_size(ctx);
        sg_tensor *state[1] = {h};
        ck_assert_int_eq(c.fns->step(ctx, &c, xp, state, ip), 0);
        /* reset_after, not in place: b_h's row, h @ U + b_h, the gate op; in place, and
         * reset_after = false: the composed small ops (so the two passes of _i = 0 also check
         * the gate op against the composed step) */
        ck_assert_int_eq(sg_tape_size(ctx) - n0, _i == 0 ? (ip ? 15 : 3) : ip ? 13 : 12);
        hs[ip] = state[0];
    }
    for (int64_t j = 0; j < B * H; j++)
        ck_assert_double_eq_tol(sg_get_flat(hs[0], j), sg_get_flat(hs[1], j), 1e-14);
    if (_i == 0) { /* the gate op's value against the equations composed by hand */
        sg_tensor *U = c.recurrent_kernel, *bh = sg_select(ctx, c.bias, 0, 1);
        sg_tensor *hu = sg_addmm(ctx, bh, h0, U);
        sg_tensor *zr = sg_sigmoid(
            ctx, sg_add(ctx, sg_slice(ctx, xp0, 1, 0, 2 * H), sg_slice(ctx, hu, 1, 0, 2 * H)));
        sg_tensor *z = sg_slice(ctx, zr, 1, 0, H), *r = sg_slice(ctx, zr, 1, H, H);
        sg_tensor *n = sg_tanh(ctx, sg_add(ctx, sg_slice(ctx, xp0, 1, 2 * H, H),
                                           sg_mul(ctx, r, sg_slice(ctx, hu, 1, 2 * H, H))));
        sg_tensor *want = sg_add(ctx, n, sg_mul(ctx, z, sg_sub(ctx, h0, n)));
        for (int64_t j = 0; j < B * H; j++)
            ck_assert_double_eq_tol(sg_get_flat(hs[0], j), sg_get_flat(want, j), 1e-14);
    }
    sg_store_free(store);
}
END_TEST

/* create: the parameters' names, shapes and initial values (glorot_uniform kernel within
 * its limit, orthogonal recurrent_kernel (H, G*H) has orthonormal rows, zero bias), drawn in
 * Keras' order from the generator given. _i: 0 GRU reset_after, 1 GRU reset_before, 2 RNN. */
START_TEST(test_create) {
    const int64_t I = 3, H = 4;
    sg_rnn_options o = opts(_i < 2 ? SG_CELL_GRU : SG_CELL_RNN, I, H);
    o.reset_after = _i == 0;
    o.bias_initializer = sg_init_default(SG_INIT_ONES);
    sg_store *store = sg_store_new();
    const sg__cell_fns *fns = _i < 2 ? &sg__gru_fns : &sg__rnn_fns;
    sg__cell c = {.fns = fns, .opt = &o, .in = I, .units = H};
    sg_rng rng;
    sg_rng_seed(&rng, 3);
    ck_assert_int_eq(fns->create(ctx, store, &c, "gru_1.l0", &rng), 0);
    int64_t GH = fns->gates * H;
    ck_assert_int_eq(sg_store_size(store), 3);
    ck_assert_str_eq(sg_store_name_at(store, 0), "gru_1.l0.kernel");
    ck_assert_str_eq(sg_store_name_at(store, 1), "gru_1.l0.recurrent_kernel");
    ck_assert_str_eq(sg_store_name_at(store, 2), "gru_1.l0.bias");
    expect_shape(c.kernel, SG_SHAPE(I, GH));
    expect_shape(c.recurrent_kernel, SG_SHAPE(H, GH));
    if (_i == 0)
        expect_shape(c.bias, SG_SHAPE(2, GH));
    else
        expect_shape(c.bias, SG_SHAPE(GH));
    /* the same draws as the initializers called in Keras' order on one generator */
    sg_rng_seed(&rng, 3);
    sg_tensor *k = sg_tensor_new(ctx, SG_F64, SG_SHAPE(I, GH));
    sg_tensor *rk = sg_tensor_new(ctx, SG_F64, SG_SHAPE(H, GH));
    ck_assert_int_eq(sg_init_tensor(ctx, k, o.kernel_initializer, &rng), 0);
    ck_assert_int_eq(sg_init_tensor(ctx, rk, o.recurrent_initializer, &rng), 0);
    for (int64_t j = 0; j < I * GH; j++)
        ck_assert_double_eq(sg_get_flat(c.kernel, j), sg_get_flat(k, j));
    for (int64_t j = 0; j < H * GH; j++)
        ck_assert_double_eq(sg_get_flat(c.recurrent_kernel, j), sg_get_flat(rk, j));
    for (int64_t j = 0; j < sg_numel(c.bias); j++)
        ck_assert_double_eq(sg_get_flat(c.bias, j), 1.0);
    /* no bias: two parameters */
    o.use_bias = false;
    sg__cell c2 = {.fns = fns, .opt = &o, .in = I, .units = H};
    ck_assert_int_eq(fns->create(ctx, store, &c2, "nb", &rng), 0);
    ck_assert_int_eq(sg_store_size(store), 5);
    ck_assert_ptr_null(c2.bias);
    sg_store_free(store);
}
END_TEST

/* ---- errors --------------------------------------------------------------------------- */

START_TEST(test_errors) {
    sg_store *store = sg_store_new();
    sg_rnn_options o = opts(SG_CELL_RNN, 3, 2);
    o.activation = SG_ACT_SIGMOID;
    sg__cell c = {.fns = &sg__rnn_fns, .opt = &o, .in = 3, .units = 2};
    ck_assert_int_eq(sg__rnn_fns.create(ctx, store, &c, "rnn", NULL), -1);
    ck_error("sg_rnn_new (rnn): simple_rnn activation must be tanh or relu, got sigmoid");
    ck_assert_int_eq(sg_store_size(store), 0);
    o.activation = (sg_activation)42;
    ck_assert_int_eq(sg__rnn_fns.create(ctx, store, &c, "rnn", NULL), -1);
    ck_error("sg_rnn_new (rnn): simple_rnn activation must be tanh or relu, got an unknown one");

    sg_rnn_options g = opts(SG_CELL_GRU, 3, 2);
    g.recurrent_activation = (sg_activation)-1;
    sg__cell cg = {.fns = &sg__gru_fns, .opt = &g, .in = 3, .units = 2};
    ck_assert_int_eq(sg__gru_fns.create(ctx, store, &cg, "gru", NULL), -1);
    ck_error("sg_rnn_new (gru): unknown activation 0 or recurrent_activation -1");
    g = opts(SG_CELL_GRU, 3, 0);
    cg.units = 0;
    ck_assert_int_eq(sg__gru_fns.create(ctx, store, &cg, "gru", NULL), -1);
    ck_error("sg_rnn_new (gru): sizes must be positive, got input_size=3 units=0");
    g = opts(SG_CELL_GRU, 3, (int64_t)1 << 40);
    cg.units = (int64_t)1 << 40;
    ck_assert_int_eq(sg__gru_fns.create(ctx, store, &cg, "gru", NULL), -1);
    ck_error("sg_rnn_new (gru): units=1099511627776 gates*units=3298534883328: the "
             "recurrent_kernel's size overflows (more than 2^60 - 1 elements)");
    ck_assert_int_eq(sg_store_size(store), 0);

    /* reset_after = false has no PyTorch form */
    g = opts(SG_CELL_GRU, 3, 2);
    g.reset_after = false;
    cg.units = 2;
    cg = make_cell(&sg__gru_fns, &g, store);
    sg_tensor *w[4];
    torch_tensors(&cg, SG_F64, w);
    ck_assert_int_eq(sg__gru_fns.torch(ctx, &cg, true, false, w[0], w[1], w[2], w[3]), -1);
    ck_error("sg_rnn_set_torch (gru): PyTorch's GRU is Keras' reset_after = true; this layer "
             "has reset_after = false");
    ck_assert_int_eq(sg__gru_fns.torch(ctx, &cg, false, true, w[0], w[1], w[2], w[3]), -1);
    ck_error("sg_rnn_get_torch (gru): PyTorch's GRU is Keras' reset_after = true; this layer "
             "has reset_after = false");

    /* shapes */
    g.reset_after = true;
    sg_store *store2 = sg_store_new();
    cg = make_cell(&sg__gru_fns, &g, store2);
    sg_tensor *bad = sg_tensor_new(ctx, SG_F64, SG_SHAPE(8, 3)); /* an LSTM's (4H, I) */
    ck_assert_int_eq(sg__gru_fns.torch(ctx, &cg, true, false, bad, w[1], w[2], w[3]), -1);
    ck_error("sg_rnn_set_torch (gru): weight_ih has shape (8, 3), expected (6, 3)");
    ck_assert_int_eq(sg__gru_fns.torch(ctx, &cg, false, false, w[0], w[0], w[2], w[3]), -1);
    ck_error("sg_rnn_get_torch (gru): weight_hh has shape (6, 3), expected (6, 2)");
    ck_assert_int_eq(sg__gru_fns.torch(ctx, &cg, true, false, w[0], w[1], w[2], w[1]), -1);
    ck_error("sg_rnn_set_torch (gru): bias_hh has shape (6, 2), expected (6,)");
    ck_assert_int_eq(sg__gru_fns.torch(ctx, &cg, true, false, NULL, w[1], w[2], w[3]), -1);
    ck_error("sg_rnn_set_torch (gru): weight_ih or weight_hh is NULL");

    /* biases for a cell without */
    o = opts(SG_CELL_RNN, 3, 2);
    o.use_bias = false;
    sg_store_free(store2);
    store2 = sg_store_new();
    c = make_cell(&sg__rnn_fns, &o, store2);
    sg_tensor *r[4];
    torch_tensors(&c, SG_F64, r);
    ck_assert_int_eq(sg__rnn_fns.torch(ctx, &c, true, false, r[0], r[1], r[2], NULL), -1);
    ck_error("sg_rnn_set_torch (simple_rnn): biases were given but the layer has use_bias = false");
    /* ... but asked for, they are zeros */
    sg_fill(r[2], 5.0);
    sg_fill(r[3], 5.0);
    ck_assert_int_eq(sg__rnn_fns.torch(ctx, &c, false, true, r[0], r[1], r[2], r[3]), 0);
    expect_vals(r[2], (double[]){0, 0}, 0);
    expect_vals(r[3], (double[]){0, 0}, 0);
    sg_store_free(store);
    sg_store_free(store2);
}
END_TEST

int main(void) {
    const ck_tcase tcases[] = {
        {"gradcheck", 120, {{test_gradcheck, 128}}},
        {"keras",
         60,
         {{test_keras_gru, 8},
          {test_gru_block_order, 1},
          {test_gru_step_ops, 2},
          {test_gru_gates_op, 1},
          {test_lstm_gates_op, 2},
          {test_create, 3}}},
        {"torch", 60, {{test_torch, 16}, {test_torch_round_trip, 4}}},
        {"errors", 0, {{test_errors, 1}}},
    };
    return CK_RUN("cells", tcases, setup, teardown);
}
