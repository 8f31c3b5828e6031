/* The two LSTM layers (layers/lstm.c, layers/convert.c) against docs/lstm.md, PyTorch and Keras.
 *
 *  - equivalence: "gates" and "fused" compute the same function under the mapping table of
 *    docs/lstm.md, in both directions (fused -> gates and gates -> fused with sg_lstm_copy, and
 *    sg_lstm_set_keras into gates checked element by element), for outputs and for every
 *    gradient (x, h0, c0 and the weights in Keras layout), float32 and float64, several
 *    shapes, with and without bias / initial state / return_sequences;
 *  - PyTorch: both layers against tests/fixtures/lstm.h (torch.nn.LSTM, float64, see
 *    tests/fixtures/README.md) for y, h_T, c_T and the gradients of sum(y * dy), with the
 *    weights loaded in Keras layout and in PyTorch layout;
 *  - Keras' own golden numbers (hard_sigmoid, every weight 1);
 *  - sg_gradcheck of both layers end to end (x, h0, c0 and every parameter);
 *  - the recurrence carries h (docs/lstm.md's "h_prev = h_prev" defect, rebuilt from ops, must
 *    differ), state carried across two chunks equals one long sequence;
 *  - initializers and unit_forget_bias, output shapes, strided input, no-grad mode;
 *  - bad input and the exact error messages.
 *
 * Tolerances. Against the float64 PyTorch fixtures: float64 |d| <= 1e-12 + 1e-10 |ref|;
 * float32 |d| <= 2e-6 + 1e-5 |ref| (the inputs are rounded to float32, relative 6e-8, and
 * every op rounds again; the absolute floor covers gradient entries that are sums of O(1)
 * terms of both signs). Gates vs fused: the same function with different summation orders
 * (one (B, H+I) @ (H+I, H) product per gate vs x @ kernel + h @ recurrent_kernel), so
 * float64 agrees to 1e-12 and float32 to 1e-5 relative with the same floor.
 */
#include <check.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fixtures/lstm.h"
#include "layers/layers.h"

#include "cksuite.h"

#define N_ELEMS(a) ((int64_t)(sizeof(a) / sizeof((a)[0])))

static const sg_dtype k_dtypes[2] = {SG_F64, SG_F32};
static const sg_lstm_impl k_impls[2] = {SG_LSTM_FUSED, SG_LSTM_GATES};
static const char *const k_impl_names[2] = {"fused", "gates"};

static double rtol_of(sg_dtype dt) { return dt == SG_F64 ? 1e-10 : 1e-5; }
static double atol_of(sg_dtype dt) { return dt == SG_F64 ? 1e-12 : 2e-6; }

/* ---- helpers ------------------------------------------------------------------------- */

/* A tensor of dtype dt holding `data` (float64, row-major; rounded for float32). */
static sg_tensor *leaf(sg_ctx *ctx, sg_dtype dt, int ndim, const int64_t *shape, const double *data,
                       bool requires_grad) {
    sg_tensor *t = sg_tensor_new(ctx, dt, ndim, shape);
    ck_assert_msg(t != NULL, "sg_tensor_new: %s", sg_ctx_error(ctx));
    for (int64_t i = 0; i < sg_numel(t); i++)
        ck_assert_int_eq(sg_set_flat(t, i, data[i]), 0);
    if (requires_grad)
        sg_set_requires_grad(t, true);
    return t;
}

/* n doubles in the arena: standard normal times `scale`. */
static double *normals(sg_ctx *ctx, sg_rng *rng, int64_t n, double scale) {
    double *v = sg_arena_alloc(ctx, (size_t)(n ? n : 1) * sizeof *v);
    ck_assert_ptr_nonnull(v);
    for (int64_t i = 0; i < n; i++)
        v[i] = scale * sg_rng_normal(rng);
    return v;
}

/* |got - ref| <= atol + rtol |ref| everywhere; on failure name the worst element. */
static void expect_close(sg_ctx *ctx, const char *what, const sg_tensor *got, const sg_tensor *ref,
                         double rtol, double atol) {
    ck_assert_msg(got != NULL, "%s: tensor is NULL (%s)", what,
                  sg_ctx_error(ctx) ? sg_ctx_error(ctx) : "no error recorded");
    ck_assert_msg(ref != NULL, "%s: reference is NULL", what);
    char gs[96], rs[96];
    sg_shape_str(got->ndim, got->shape, gs, sizeof gs);
    sg_shape_str(ref->ndim, ref->shape, rs, sizeof rs);
    ck_assert_msg(!strcmp(gs, rs), "%s: shape %s, expected %s", what, gs, rs);
    sg_compare_result res;
    int rc = sg_compare(ctx, got, ref, rtol, atol, &res);
    ck_assert_msg(rc >= 0, "%s: sg_compare: %s", what, sg_ctx_error(ctx));
    if (rc != 0) {
        char idx[96];
        sg_shape_str(got->ndim, res.worst_index, idx, sizeof idx);
        ck_abort_msg("%s (%s, %s): %lld elements off; worst at %s: got %.17g, expected %.17g "
                     "(abs %.3g, max rel %.3g)",
                     what, sg_dtype_name(got->dtype), gs, (long long)res.n_mismatch, idx,
                     sg_get_flat(got, res.worst_flat), sg_get_flat(ref, res.worst_flat),
                     res.max_abs, res.max_rel);
    }
}

/* Compare with a float64 array laid out in got's shape. */
static void expect_data(sg_ctx *ctx, const char *what, const sg_tensor *got, const double *ref,
                        double rtol, double atol) {
    ck_assert_msg(got != NULL, "%s: tensor is NULL (%s)", what,
                  sg_ctx_error(ctx) ? sg_ctx_error(ctx) : "no error recorded");
    sg_tensor *r = sg_from_data(ctx, SG_F64, got->ndim, got->shape, ref);
    expect_close(ctx, what, got, r, rtol, atol);
}

/* Largest |element|: to make sure an agreement is not between two all-zero tensors. */
static double max_abs(const sg_tensor *t) {
    double m = 0;
    for (int64_t i = 0; i < sg_numel(t); i++)
        m = fmax(m, fabs(sg_get_flat(t, i)));
    return m;
}

static sg_lstm_options options(sg_dtype dt, int64_t I, int64_t H, bool bias, bool seqs) {
    sg_lstm_options o = sg_lstm_defaults(I, H);
    o.dtype = dt;
    o.use_bias = bias;
    o.return_sequences = seqs;
    return o;
}

static sg_lstm *new_lstm(sg_ctx *ctx, sg_store *store, sg_lstm_impl impl, const sg_lstm_options *o,
                         sg_rng *rng) {
    sg_lstm *l = sg_lstm_new(ctx, store, impl, o, NULL, rng);
    ck_assert_msg(l != NULL, "sg_lstm_new: %s", sg_ctx_error(ctx));
    return l;
}

/* Every parameter of the layer uniform in [-a, a): wider than the defaults, so the gates
 * leave their linear region and the bias is not the unit_forget_bias pattern. */
static void randomize(sg_ctx *ctx, sg_lstm *l, sg_rng *rng, double a) {
    sg_param_list pl = {0};
    ck_assert_int_eq(sg_lstm_params(l, &pl), 0);
    for (int i = 0; i < pl.n; i++)
        ck_assert_int_eq(
            sg_init_tensor(ctx, pl.items[i].tensor, (sg_init){SG_INIT_RANDOM_UNIFORM, -a, a}, rng),
            0);
    sg_params_clear(&pl);
}

/* The store that holds the layer's parameters. */
static sg_store *store_of(const sg_lstm *l) {
    sg_store *s = sg_param_store(l->impl == SG_LSTM_FUSED ? l->kernel : l->W[0]);
    ck_assert_ptr_nonnull(s);
    return s;
}

/* The layer's weights (or their gradients) in Keras layout, as float64 arena tensors. */
typedef struct keras_w {
    sg_tensor *k, *rk, *b; /* (I, 4H), (H, 4H), (4H) or NULL without bias */
} keras_w;

static keras_w get_keras(sg_ctx *ctx, const sg_lstm *l, bool grads) {
    int64_t I = l->opt.input_size, H = l->opt.units;
    keras_w w = {sg_zeros(ctx, SG_F64, SG_SHAPE(I, 4 * H)),
                 sg_zeros(ctx, SG_F64, SG_SHAPE(H, 4 * H)),
                 l->opt.use_bias ? sg_zeros(ctx, SG_F64, SG_SHAPE(4 * H)) : NULL};
    ck_assert_msg(sg_lstm_get_keras(ctx, l, grads, w.k, w.rk, w.b) == 0, "sg_lstm_get_keras: %s",
                  sg_ctx_error(ctx));
    return w;
}

/* The docs/lstm.md table, element by element: for every gate g, row r, column j
 *   W_g[H + r, j] == kernel[r, gH + j],  W_g[r, j] == recurrent_kernel[r, gH + j],
 *   b_g[0, j] == bias[gH + j]  (0 without a bias).
 * The Keras tensors have the gates layer's dtype, so the copies are exact. */
static void check_mapping(const sg_lstm *gates, const sg_tensor *k, const sg_tensor *rk,
                          const sg_tensor *b) {
    ck_assert_int_eq(gates->impl, SG_LSTM_GATES);
    int64_t I = gates->opt.input_size, H = gates->opt.units;
    for (int g = 0; g < 4; g++) {
        const sg_tensor *W = gates->W[g];
        ck_assert_int_eq(W->shape[0], H + I);
        ck_assert_int_eq(W->shape[1], H);
        for (int64_t j = 0; j < H; j++) {
            int64_t col = g * H + j;
            for (int64_t r = 0; r < I; r++)
                ck_assert_msg(sg_get(W, (int64_t[]){H + r, j}) == sg_get(k, (int64_t[]){r, col}),
                              "W_%c[%lld, %lld] != kernel[%lld, %lld]", "ifco"[g],
                              (long long)(H + r), (long long)j, (long long)r, (long long)col);
            for (int64_t r = 0; r < H; r++)
                ck_assert_msg(sg_get(W, (int64_t[]){r, j}) == sg_get(rk, (int64_t[]){r, col}),
                              "W_%c[%lld, %lld] != recurrent_kernel[%lld, %lld]", "ifco"[g],
                              (long long)r, (long long)j, (long long)r, (long long)col);
            if (gates->b[g])
                ck_assert_msg(sg_get(gates->b[g], (int64_t[]){0, j}) ==
                                  (b ? sg_get(b, (int64_t[]){col}) : 0.0),
                              "b_%c[0, %lld] != bias[%lld]", "ifco"[g], (long long)j,
                              (long long)col);
        }
    }
}

/* One forward and backward of `l`: loss = sum(y * dy). */
typedef struct lstm_run {
    sg_tensor *y, *h, *c;      /* outputs */
    sg_tensor *dx, *dh0, *dc0; /* input gradients (dh0/dc0 NULL without an initial state) */
    keras_w dw;                /* weight gradients, Keras layout, float64 */
} lstm_run;

static lstm_run run_lstm(sg_ctx *ctx, sg_lstm *l, int64_t B, int64_t T, const double *x,
                         const double *h0, const double *c0, const double *dy) {
    sg_dtype dt = l->opt.dtype;
    int64_t I = l->opt.input_size, H = l->opt.units;
    sg_store_zero_grad(store_of(l)); /* parameter gradients accumulate across runs */
    sg_tensor *xt = leaf(ctx, dt, SG_SHAPE(B, T, I), x, true);
    sg_tensor *h0t = h0 ? leaf(ctx, dt, SG_SHAPE(B, H), h0, true) : NULL;
    sg_tensor *c0t = c0 ? leaf(ctx, dt, SG_SHAPE(B, H), c0, true) : NULL;
    sg_lstm_output out;
    ck_assert_msg(sg_lstm_forward(ctx, l, xt, h0t, c0t, &out) == 0, "sg_lstm_forward: %s",
                  sg_ctx_error(ctx));
    sg_tensor *dyt = l->opt.return_sequences ? leaf(ctx, dt, SG_SHAPE(B, T, H), dy, false)
                                             : leaf(ctx, dt, SG_SHAPE(B, H), dy, false);
    ck_assert_msg(sg_backward(ctx, out.y, dyt) == 0, "sg_backward: %s", sg_ctx_error(ctx));
    lstm_run r = {out.y,
                  out.h,
                  out.c,
                  xt->grad,
                  h0t ? h0t->grad : NULL,
                  c0t ? c0t->grad : NULL,
                  get_keras(ctx, l, true)};
    ck_assert_ptr_nonnull(r.dx);
    ck_assert(!h0t || r.dh0);
    ck_assert(!c0t || r.dc0);
    return r;
}

static void compare_runs(sg_ctx *ctx, const char *label, const lstm_run *a, const lstm_run *b,
                         double rtol, double atol) {
    const struct {
        const char *n;
        const sg_tensor *x, *y;
    } pairs[] = {{"y", a->y, b->y},
                 {"h_T", a->h, b->h},
                 {"c_T", a->c, b->c},
                 {"dx", a->dx, b->dx},
                 {"dh0", a->dh0, b->dh0},
                 {"dc0", a->dc0, b->dc0},
                 {"dkernel", a->dw.k, b->dw.k},
                 {"drecurrent_kernel", a->dw.rk, b->dw.rk},
                 {"dbias", a->dw.b, b->dw.b}};
    for (size_t i = 0; i < sizeof pairs / sizeof pairs[0]; i++) {
        char what[160];
        snprintf(what, sizeof what, "%s: %s", label, pairs[i].n);
        ck_assert_msg((pairs[i].x == NULL) == (pairs[i].y == NULL), "%s: present in one only",
                      what);
        if (pairs[i].x)
            expect_close(ctx, what, pairs[i].x, pairs[i].y, rtol, atol);
    }
}

/* ---- gates == fused under the mapping ------------------------------------------------- */

static const int64_t k_shapes[4][4] = {{2, 3, 5, 4}, {1, 1, 1, 1}, {3, 7, 2, 6}, {4, 2, 8, 3}};

/* _i = shape * 2 + dtype. 16 variants per shape: bias, initial state, return_sequences,
 * and which layout is the source of sg_lstm_copy. */
START_TEST(test_gates_equal_fused) {
    const int64_t *s = k_shapes[_i / 2];
    int64_t B = s[0], T = s[1], I = s[2], H = s[3];
    sg_dtype dt = k_dtypes[_i % 2];
    double rtol = dt == SG_F64 ? 1e-12 : 1e-5, atol = dt == SG_F64 ? 1e-13 : 2e-6;
    sg_ctx *ctx = sg_ctx_new(0);
    sg_store *store = sg_store_new();
    sg_rng rng;
    sg_rng_seed(&rng, 1000 + (uint64_t)_i);
    for (int v = 0; v < 16; v++) {
        bool bias = v & 1, init = v & 2, seqs = v & 4, from_gates = v & 8;
        sg_lstm_options o = options(dt, I, H, bias, seqs);
        sg_lstm *src = new_lstm(ctx, store, from_gates ? SG_LSTM_GATES : SG_LSTM_FUSED, &o, &rng);
        sg_lstm *dst = new_lstm(ctx, store, from_gates ? SG_LSTM_FUSED : SG_LSTM_GATES, &o, &rng);
        randomize(ctx, src, &rng, 0.8);
        ck_assert_msg(sg_lstm_copy(ctx, dst, src) == 0, "sg_lstm_copy: %s", sg_ctx_error(ctx));
        sg_lstm *fused = from_gates ? dst : src, *gates = from_gates ? src : dst;
        check_mapping(gates, fused->kernel, fused->recurrent_kernel, fused->bias);
        ck_assert(bias == (fused->bias != NULL));

        double *x = normals(ctx, &rng, B * T * I, 1.0);
        double *h0 = init ? normals(ctx, &rng, B * H, 0.5) : NULL;
        double *c0 = init ? normals(ctx, &rng, B * H, 0.5) : NULL;
        double *dy = normals(ctx, &rng, B * (seqs ? T : 1) * H, 1.0);
        lstm_run rf = run_lstm(ctx, fused, B, T, x, h0, c0, dy);
        lstm_run rg = run_lstm(ctx, gates, B, T, x, h0, c0, dy);
        char label[160];
        snprintf(label, sizeof label,
                 "(B,T,I,H)=(%lld,%lld,%lld,%lld) %s bias=%d init=%d seqs=%d %s->%s", (long long)B,
                 (long long)T, (long long)I, (long long)H, sg_dtype_name(dt), bias, init, seqs,
                 from_gates ? "gates" : "fused", from_gates ? "fused" : "gates");
        compare_runs(ctx, label, &rg, &rf, rtol, atol);
        ck_assert_msg(max_abs(rf.y) > 1e-6 && max_abs(rf.dw.k) > 1e-6 && max_abs(rf.dx) > 1e-6,
                      "%s: degenerate (all-zero) outputs or gradients", label);
        ck_assert_int_eq(rf.y->ndim, seqs ? 3 : 2);
        sg_lstm_free(src);
        sg_lstm_free(dst);
        sg_ctx_reset(ctx);
    }
    ck_assert_ptr_null(sg_ctx_error(ctx));
    sg_store_free(store);
    sg_ctx_free(ctx);
}
END_TEST

/* sg_lstm_set_keras into a gates layer lands every element where the table says; into a
 * fused layer it is a plain copy; sg_lstm_get_keras gives the values back exactly. */
START_TEST(test_set_keras_mapping) {
    sg_dtype dt = k_dtypes[_i % 2];
    bool bias = _i / 2;
    int64_t I = 3, H = 2;
    sg_ctx *ctx = sg_ctx_new(0);
    sg_store *store = sg_store_new();
    sg_rng rng;
    sg_rng_seed(&rng, 77);
    sg_lstm_options o = options(dt, I, H, bias, false);
    sg_lstm *gates = new_lstm(ctx, store, SG_LSTM_GATES, &o, &rng);
    sg_lstm *fused = new_lstm(ctx, store, SG_LSTM_FUSED, &o, &rng);
    /* Distinct values everywhere (k = 100 + flat, rk = 200 + flat, b = 300 + flat), so a
     * misplaced element cannot match by accident. */
    sg_tensor *k = sg_arange(ctx, dt, 100, 100 + I * 4 * H, 1);
    sg_tensor *rk = sg_arange(ctx, dt, 200, 200 + H * 4 * H, 1);
    sg_tensor *b = bias ? sg_arange(ctx, dt, 300, 300 + 4 * H, 1) : NULL;
    k = sg_reshape(ctx, k, SG_SHAPE(I, 4 * H));
    rk = sg_reshape(ctx, rk, SG_SHAPE(H, 4 * H));
    ck_assert_int_eq(sg_lstm_set_keras(ctx, gates, k, rk, b), 0);
    ck_assert_int_eq(sg_lstm_set_keras(ctx, fused, k, rk, b), 0);
    check_mapping(gates, k, rk, b);
    /* Spot checks written out by hand for I = 3, H = 2: W_f = gate 1 takes columns 2..3;
     * W_f[H + 1, 0] = kernel[1, 2] = 100 + 1*8 + 2; W_o[1, 1] = rk[1, 7] = 200 + 8 + 7. */
    ck_assert_double_eq(sg_get(gates->W[SG_GATE_F], (int64_t[]){3, 0}), 110);
    ck_assert_double_eq(sg_get(gates->W[SG_GATE_O], (int64_t[]){1, 1}), 215);
    ck_assert_double_eq(sg_get(gates->W[SG_GATE_C], (int64_t[]){0, 0}), 204);
    if (bias)
        ck_assert_double_eq(sg_get(gates->b[SG_GATE_C], (int64_t[]){0, 1}), 305);
    expect_close(ctx, "fused kernel", fused->kernel, k, 0, 0);
    expect_close(ctx, "fused recurrent_kernel", fused->recurrent_kernel, rk, 0, 0);
    if (bias)
        expect_close(ctx, "fused bias", fused->bias, b, 0, 0);
    for (int which = 0; which < 2; which++) {
        keras_w w = get_keras(ctx, which ? gates : fused, false);
        expect_close(ctx, "get_keras kernel", w.k, k, 0, 0);
        expect_close(ctx, "get_keras recurrent_kernel", w.rk, rk, 0, 0);
        if (bias)
            expect_close(ctx, "get_keras bias", w.b, b, 0, 0);
    }
    /* A layer without bias reads back a zero bias. */
    if (!bias) {
        sg_tensor *zb = sg_full(ctx, SG_F64, SG_SHAPE(4 * H), 9.0);
        ck_assert_int_eq(sg_lstm_get_keras(ctx, gates, false,
                                           sg_zeros(ctx, SG_F64, SG_SHAPE(I, 4 * H)),
                                           sg_zeros(ctx, SG_F64, SG_SHAPE(H, 4 * H)), zb),
                         0);
        ck_assert_double_eq(max_abs(zb), 0.0);
    }
    ck_assert_ptr_null(sg_ctx_error(ctx));
    sg_lstm_free(gates);
    sg_lstm_free(fused);
    sg_store_free(store);
    sg_ctx_free(ctx);
}
END_TEST

/* ---- PyTorch fixtures ------------------------------------------------------------------- */

typedef struct fixture {
    const char *name;
    int64_t B, T, I, H;
    bool bias, init;
    const double *x, *h0, *c0, *kernel, *rk, *b, *dy, *y, *hT, *cT, *dx, *dk, *drk;
    const double *w_ih, *w_hh;
    const double *db, *b_ih, *b_hh; /* with bias */
    const double *dh0, *dc0;        /* with an initial state */
} fixture;

#define FIX(n)                                                                                     \
    .name = #n, .B = n##_B, .T = n##_T, .I = n##_I, .H = n##_H, .bias = n##_has_bias,              \
    .init = n##_has_initial_state, .x = n##_x, .h0 = n##_h0, .c0 = n##_c0, .kernel = n##_kernel,   \
    .rk = n##_recurrent_kernel, .b = n##_bias, .dy = n##_dy, .y = n##_y, .hT = n##_h_T,            \
    .cT = n##_c_T, .dx = n##_dx, .dk = n##_dkernel, .drk = n##_drecurrent_kernel,                  \
    .w_ih = n##_weight_ih_l0, .w_hh = n##_weight_hh_l0
#define FIX_BIAS(n) .db = n##_dbias, .b_ih = n##_bias_ih_l0, .b_hh = n##_bias_hh_l0
#define FIX_INIT(n) .dh0 = n##_dh0, .dc0 = n##_dc0

static const fixture k_fixtures[4] = {
    {FIX(lstm_a), FIX_BIAS(lstm_a), FIX_INIT(lstm_a)},
    {FIX(lstm_b)},
    {FIX(lstm_c), FIX_BIAS(lstm_c)},
    {FIX(lstm_d), FIX_BIAS(lstm_d), FIX_INIT(lstm_d)},
};

/* _i = fixture * 4 + impl * 2 + dtype. Loads the weights in Keras layout (and runs in
 * place) and in PyTorch layout (not in place); both must give the same parameters and
 * match torch. Configs without an initial
 * state also run once with explicit zero h0/c0, which must not change anything. */
START_TEST(test_pytorch_fixtures) {
    const fixture *f = &k_fixtures[_i / 4];
    sg_lstm_impl impl = k_impls[(_i / 2) % 2];
    sg_dtype dt = k_dtypes[_i % 2];
    int64_t B = f->B, T = f->T, I = f->I, H = f->H;
    double rtol = rtol_of(dt), atol = atol_of(dt);
    ck_assert(f->bias == (f->db != NULL) && f->init == (f->dh0 != NULL));
    sg_ctx *ctx = sg_ctx_new(0);
    sg_store *store = sg_store_new();
    sg_lstm_options o = options(dt, I, H, f->bias, true);
    sg_lstm *layers[2];
    lstm_run runs[2];
    for (int load = 0; load < 2; load++) {
        /* The Keras load runs in place, the PyTorch load not: both must match torch. */
        o.in_place = load == 0 ? SG_IN_PLACE_ALWAYS : SG_IN_PLACE_NEVER;
        sg_lstm *l = layers[load] = new_lstm(ctx, store, impl, &o, NULL);
        int rc;
        if (load == 0)
            rc = sg_lstm_set_keras(ctx, l, sg_from_data(ctx, SG_F64, SG_SHAPE(I, 4 * H), f->kernel),
                                   sg_from_data(ctx, SG_F64, SG_SHAPE(H, 4 * H), f->rk),
                                   f->bias ? sg_from_data(ctx, SG_F64, SG_SHAPE(4 * H), f->b)
                                           : NULL);
        else
            rc = sg_lstm_set_torch(
                ctx, l, sg_from_data(ctx, SG_F64, SG_SHAPE(4 * H, I), f->w_ih),
                sg_from_data(ctx, SG_F64, SG_SHAPE(4 * H, H), f->w_hh),
                f->bias ? sg_from_data(ctx, SG_F64, SG_SHAPE(4 * H), f->b_ih) : NULL,
                f->bias ? sg_from_data(ctx, SG_F64, SG_SHAPE(4 * H), f->b_hh) : NULL);
        ck_assert_msg(rc == 0, "%s load %d: %s", f->name, load, sg_ctx_error(ctx));
        /* The loaded weights are the fixture's (rounded once for float32). */
        double wr = dt == SG_F64 ? 0 : 6e-8;
        keras_w w = get_keras(ctx, l, false);
        expect_data(ctx, "loaded kernel", w.k, f->kernel, wr, 0);
        expect_data(ctx, "loaded recurrent_kernel", w.rk, f->rk, wr, 0);
        if (f->bias)
            expect_data(ctx, "loaded bias", w.b, f->b, wr, 1e-15);

        static const double zeros[64] = {0};
        ck_assert_int_le(B * H, N_ELEMS(zeros));
        const double *h0 = f->init ? f->h0 : (load ? zeros : NULL);
        const double *c0 = f->init ? f->c0 : (load ? zeros : NULL);
        lstm_run r = runs[load] = run_lstm(ctx, l, B, T, f->x, h0, c0, f->dy);
        char what[128];
#define REF(field, ref)                                                                            \
    do {                                                                                           \
        snprintf(what, sizeof what, "%s %s %s %s: %s", f->name,                                    \
                 k_impl_names[impl == SG_LSTM_GATES], load ? "torch-load" : "keras-load",          \
                 sg_dtype_name(dt), #field);                                                       \
        expect_data(ctx, what, r.field, ref, rtol, atol);                                          \
    } while (0)
        REF(y, f->y);
        REF(h, f->hT);
        REF(c, f->cT);
        REF(dx, f->dx);
        REF(dw.k, f->dk);
        REF(dw.rk, f->drk);
        if (f->bias)
            REF(dw.b, f->db);
        if (f->init) {
            REF(dh0, f->dh0);
            REF(dc0, f->dc0);
        }
#undef REF
        ck_assert_int_eq(r.y->shape[0], B);
        ck_assert_int_eq(r.y->shape[1], T);
        ck_assert_int_eq(r.y->shape[2], H);
    }
    /* Both loads gave the same parameters and so the same outputs and gradients. */
    keras_w w0 = get_keras(ctx, layers[0], false), w1 = get_keras(ctx, layers[1], false);
    expect_close(ctx, "keras vs torch load: kernel", w0.k, w1.k, 0, 0);
    expect_close(ctx, "keras vs torch load: recurrent_kernel", w0.rk, w1.rk, 0, 0);
    if (f->bias)
        expect_close(ctx, "keras vs torch load: bias", w0.b, w1.b, 0, 0);
    /* In place the fused layer lays xk out time-major: sums run in another order. */
    if (f->init)
        compare_runs(ctx, "keras vs torch load", &runs[0], &runs[1], dt == SG_F64 ? 1e-14 : 1e-6,
                     dt == SG_F64 ? 1e-15 : 1e-7);
    else
        /* run 1 had explicit zero states (and so dh0/dc0): compare the rest */
        compare_runs(
            ctx, "keras load vs torch load with zero h0/c0",
            &(lstm_run){runs[0].y, runs[0].h, runs[0].c, runs[0].dx, NULL, NULL, runs[0].dw},
            &(lstm_run){runs[1].y, runs[1].h, runs[1].c, runs[1].dx, NULL, NULL, runs[1].dw},
            dt == SG_F64 ? 1e-14 : 1e-6, dt == SG_F64 ? 1e-15 : 1e-7);
    ck_assert_ptr_null(sg_ctx_error(ctx));
    sg_lstm_free(layers[0]);
    sg_lstm_free(layers[1]);
    sg_store_free(store);
    sg_ctx_free(ctx);
}
END_TEST

/* ---- Keras' golden numbers --------------------------------------------------------------
 * LSTM(5, recurrent_activation='hard_sigmoid'), every weight and bias 1, input ones
 * (4, 2, 2), return_sequences: Keras prints y[:, 0] = 0.7595095, y[:, 1] = 0.96367633 and
 * c_T = 1.99505234 for every element. Keras ran float32 with TF's tanh, so its digits may
 * sit one float32 ulp away from the exact recurrence: 3e-7. The fixture's keras_golden_*
 * arrays hold the float64 recurrence (0.759509445, 0.963676346, 1.99505226). */
START_TEST(test_keras_golden) {
    sg_lstm_impl impl = k_impls[_i / 2];
    sg_dtype dt = k_dtypes[_i % 2];
    enum { B = keras_golden_B, T = keras_golden_T, I = keras_golden_I, H = keras_golden_H };
    sg_ctx *ctx = sg_ctx_new(0);
    sg_store *store = sg_store_new();
    sg_lstm_options o = options(dt, I, H, true, true);
    o.recurrent_activation = SG_ACT_HARD_SIGMOID;
    sg_lstm *l = new_lstm(ctx, store, impl, &o, NULL);
    ck_assert_int_eq(sg_lstm_set_keras(ctx, l, sg_ones(ctx, SG_F64, SG_SHAPE(I, 4 * H)),
                                       sg_ones(ctx, SG_F64, SG_SHAPE(H, 4 * H)),
                                       sg_ones(ctx, SG_F64, SG_SHAPE(4 * H))),
                     0);
    sg_lstm_output out;
    ck_assert_int_eq(sg_lstm_forward(ctx, l, sg_ones(ctx, dt, SG_SHAPE(B, T, I)), NULL, NULL, &out),
                     0);
    for (int64_t b = 0; b < B; b++)
        for (int64_t j = 0; j < H; j++) {
            ck_assert_double_eq_tol(sg_get(out.y, (int64_t[]){b, 0, j}), 0.7595095, 3e-7);
            ck_assert_double_eq_tol(sg_get(out.y, (int64_t[]){b, 1, j}), 0.96367633, 3e-7);
            ck_assert_double_eq_tol(sg_get(out.h, (int64_t[]){b, j}), 0.96367633, 3e-7);
            ck_assert_double_eq_tol(sg_get(out.c, (int64_t[]){b, j}), 1.99505234, 3e-7);
        }
    double tol = dt == SG_F64 ? 1e-15 : 3e-7;
    expect_data(ctx, "keras golden y", out.y, keras_golden_y, 0, tol);
    expect_data(ctx, "keras golden h_T", out.h, keras_golden_h_T, 0, tol);
    expect_data(ctx, "keras golden c_T", out.c, keras_golden_c_T, 0, tol);
    ck_assert_ptr_null(sg_ctx_error(ctx));
    sg_lstm_free(l);
    sg_store_free(store);
    sg_ctx_free(ctx);
}
END_TEST

/* ---- gradcheck ---------------------------------------------------------------------------- */

typedef struct gc_user {
    sg_lstm *l;
} gc_user;

/* Everything the layer outputs, as one (B, T*H + H) tensor: every h_t and c_T, so both
 * the h path and the direct c_T path are checked. inputs = x, h0, c0, parameters... */
static sg_tensor *gc_lstm(sg_ctx *ctx, sg_tensor *const *in, void *user) {
    gc_user *u = user;
    sg_lstm_output out;
    if (sg_lstm_forward(ctx, u->l, in[0], in[1], in[2], &out))
        return NULL;
    int64_t B = out.c->shape[0];
    sg_tensor *parts[2] = {sg_reshape(ctx, out.y, SG_SHAPE(B, -1)), out.c};
    return sg_concat(ctx, 2, parts, 1);
}

static const sg_activation k_gc_acts[4][2] = {
    /* activation, recurrent_activation */
    {SG_ACT_TANH, SG_ACT_SIGMOID},
    {SG_ACT_TANH, SG_ACT_HARD_SIGMOID},
    {SG_ACT_RELU, SG_ACT_SIGMOID},
    {SG_ACT_RELU, SG_ACT_HARD_SIGMOID},
};

static void gradcheck_lstm(sg_lstm_impl impl, sg_dtype dt, sg_activation act, sg_activation ract,
                           bool bias, sg_in_place ip, const sg_gradcheck_opts *opts) {
    int64_t B = 2, T = 3, I = 3, H = 2;
    sg_ctx *ctx = sg_ctx_new(0);
    sg_store *store = sg_store_new();
    sg_rng rng;
    sg_rng_seed(&rng, 4242 + (uint64_t)impl * 7 + (uint64_t)act * 3 + (uint64_t)ract);
    sg_lstm_options o = options(dt, I, H, bias, true);
    o.activation = act;
    o.recurrent_activation = ract;
    o.in_place = ip; /* ALWAYS: where the activations allow; AUTO would not here */
    sg_lstm *l = new_lstm(ctx, store, impl, &o, &rng);
    randomize(ctx, l, &rng, 0.8);
    sg_tensor *in[16] = {
        leaf(ctx, dt, SG_SHAPE(B, T, I), normals(ctx, &rng, B * T * I, 1.0), true),
        leaf(ctx, dt, SG_SHAPE(B, H), normals(ctx, &rng, B * H, 0.5), true),
        leaf(ctx, dt, SG_SHAPE(B, H), normals(ctx, &rng, B * H, 0.5), true),
    };
    const char *names[16] = {"x", "h0", "c0"};
    sg_param_list pl = {0};
    ck_assert_int_eq(sg_lstm_params(l, &pl), 0);
    int n = 3;
    for (int i = 0; i < pl.n; i++) {
        names[n] = pl.items[i].name;
        in[n++] = pl.items[i].tensor;
    }
    ck_assert_int_eq(n, 3 + (impl == SG_LSTM_FUSED ? 2 + bias : 4 + 4 * bias));
    gc_user u = {l};
    sg_gradcheck_report rep[16];
    int rc = sg_gradcheck(ctx, gc_lstm, &u, n, in, opts, rep);
    ck_assert_msg(rc >= 0, "sg_gradcheck: %s", sg_ctx_error(ctx));
    for (int i = 0; i < n; i++)
        ck_assert_msg(rep[i].ok,
                      "gradcheck %s %s act=%s ract=%s bias=%d in_place=%d: %s off at %lld: "
                      "analytic %.10g numeric %.10g (max abs %.3g, max rel %.3g)",
                      k_impl_names[impl == SG_LSTM_GATES], sg_dtype_name(dt),
                      sg_activation_name(act), sg_activation_name(ract), bias, (int)ip, names[i],
                      (long long)rep[i].worst_flat, rep[i].analytic, rep[i].numeric, rep[i].max_abs,
                      rep[i].max_rel);
    ck_assert_int_eq(rc, 1);
    /* and the check was not vacuous */
    for (int i = 0; i < n; i++)
        ck_assert_msg(max_abs(in[i]->grad) > 1e-4, "gradcheck: %s has a ~zero gradient", names[i]);
    ck_assert_ptr_null(sg_ctx_error(ctx));
    sg_params_clear(&pl);
    sg_lstm_free(l);
    sg_store_free(store);
    sg_ctx_free(ctx);
}

/* _i = in_place * 16 + impl * 8 + activations * 2 + bias; float64, eps 1e-6, tight
 * tolerances. In place and not, the fused step is composed differently (four activations
 * on slices of z, or one over z and slices of it). */
START_TEST(test_gradcheck_f64) {
    sg_gradcheck_opts opts = {.eps = 1e-6, .atol = 1e-8, .rtol = 1e-6, .seed = 3};
    int k = _i % 16;
    gradcheck_lstm(k_impls[k / 8], SG_F64, k_gc_acts[(k / 2) % 4][0], k_gc_acts[(k / 2) % 4][1],
                   k % 2, _i < 16 ? SG_IN_PLACE_ALWAYS : SG_IN_PLACE_NEVER, &opts);
}
END_TEST

/* float32: the step and the tolerance follow float32's resolution. */
START_TEST(test_gradcheck_f32) {
    sg_gradcheck_opts opts = {.eps = 1e-2, .atol = 2e-3, .rtol = 1e-2, .seed = 3};
    gradcheck_lstm(k_impls[_i % 2], SG_F32, SG_ACT_TANH, SG_ACT_SIGMOID, true,
                   _i < 2 ? SG_IN_PLACE_ALWAYS : SG_IN_PLACE_NEVER, &opts);
}
END_TEST

/* ---- the recurrence carries h ------------------------------------------------------------
 * The LSTM of docs/lstm.md written out with ops in Keras layout. carry_h = false is the
 * notebook's defect (its loop assigns h_prev = h_prev): every step sees h0 instead of
 * h_{t-1}, while c is carried. */
static sg_tensor *reference_lstm(sg_ctx *ctx, sg_tensor *x, sg_tensor *h0, sg_tensor *c0,
                                 sg_tensor *k, sg_tensor *rk, sg_tensor *b, bool carry_h,
                                 sg_tensor **hT, sg_tensor **cT) {
    int64_t T = x->shape[1];
    sg_tensor *hs[16], *h = h0, *c = c0;
    ck_assert_int_le(T, 16);
    for (int64_t t = 0; t < T; t++) {
        sg_tensor *hprev = carry_h ? h : h0;
        sg_tensor *z =
            sg_add(ctx, sg_matmul(ctx, sg_select(ctx, x, 1, t), k), sg_matmul(ctx, hprev, rk));
        z = sg_add(ctx, z, b);
        sg_tensor *zs[4];
        ck_assert_int_eq(sg_split(ctx, z, 1, 4, zs), 0);
        sg_tensor *i = sg_sigmoid(ctx, zs[0]), *f = sg_sigmoid(ctx, zs[1]);
        sg_tensor *g = sg_tanh(ctx, zs[2]), *o = sg_sigmoid(ctx, zs[3]);
        c = sg_add(ctx, sg_mul(ctx, f, c), sg_mul(ctx, i, g));
        h = sg_mul(ctx, o, sg_tanh(ctx, c));
        hs[t] = h;
    }
    *hT = h;
    *cT = c;
    return sg_stack(ctx, (int)T, hs, 1);
}

START_TEST(test_h_is_carried) {
    sg_lstm_impl impl = k_impls[_i];
    int64_t B = 2, T = 5, I = 3, H = 4;
    sg_ctx *ctx = sg_ctx_new(0);
    sg_store *store = sg_store_new();
    sg_rng rng;
    sg_rng_seed(&rng, 99);
    sg_lstm_options o = options(SG_F64, I, H, true, true);
    sg_lstm *l = new_lstm(ctx, store, impl, &o, &rng);
    /* Recurrent kernel entries of order one (uniform in [-1, 1)), so that h matters. */
    sg_tensor *k = sg_rand_uniform(ctx, SG_F64, SG_SHAPE(I, 4 * H), -0.8, 0.8);
    sg_tensor *rk = sg_rand_uniform(ctx, SG_F64, SG_SHAPE(H, 4 * H), -1.0, 1.0);
    sg_tensor *b = sg_rand_uniform(ctx, SG_F64, SG_SHAPE(4 * H), -0.5, 0.5);
    ck_assert_int_eq(sg_lstm_set_keras(ctx, l, k, rk, b), 0);
    sg_tensor *x = sg_rand_normal(ctx, SG_F64, SG_SHAPE(B, T, I), 0, 1);
    sg_tensor *h0 = sg_rand_normal(ctx, SG_F64, SG_SHAPE(B, H), 0, 0.5);
    sg_tensor *c0 = sg_rand_normal(ctx, SG_F64, SG_SHAPE(B, H), 0, 0.5);
    for (int with_state = 0; with_state < 2; with_state++) {
        sg_tensor *hh = with_state ? h0 : sg_zeros(ctx, SG_F64, SG_SHAPE(B, H));
        sg_tensor *cc = with_state ? c0 : sg_zeros(ctx, SG_F64, SG_SHAPE(B, H));
        sg_lstm_output out;
        ck_assert_int_eq(
            sg_lstm_forward(ctx, l, x, with_state ? h0 : NULL, with_state ? c0 : NULL, &out), 0);
        sg_tensor *good_h, *good_c, *bad_h, *bad_c;
        sg_tensor *good = reference_lstm(ctx, x, hh, cc, k, rk, b, true, &good_h, &good_c);
        sg_tensor *bad = reference_lstm(ctx, x, hh, cc, k, rk, b, false, &bad_h, &bad_c);
        expect_close(ctx, "y vs the correct recurrence", out.y, good, 1e-12, 1e-14);
        expect_close(ctx, "h_T vs the correct recurrence", out.h, good_h, 1e-12, 1e-14);
        expect_close(ctx, "c_T vs the correct recurrence", out.c, good_c, 1e-12, 1e-14);
        /* Step 0 is the same in both (h_0 is h0); from step 1 on they part clearly. */
        sg_compare_result res;
        ck_assert_int_eq(sg_compare(ctx, sg_select(ctx, out.y, 1, 0), sg_select(ctx, bad, 1, 0),
                                    1e-12, 1e-14, &res),
                         0);
        ck_assert_int_eq(sg_compare(ctx, out.y, bad, 0, 0.05, &res), 1);
        ck_assert_msg(res.max_abs > 0.05, "max |y - y_defective| = %g", res.max_abs);
        ck_assert_int_eq(sg_compare(ctx, out.c, bad_c, 0, 0.05, &res), 1);
    }
    ck_assert_ptr_null(sg_ctx_error(ctx));
    sg_lstm_free(l);
    sg_store_free(store);
    sg_ctx_free(ctx);
}
END_TEST

/* ---- state carried across chunks ---------------------------------------------------------
 * Running x[:, :T1] from (h0, c0) and then x[:, T1:] from the first chunk's (h_T, c_T),
 * backpropagating through both, is the same computation as one run over x: the same
 * outputs and the same gradients for x, h0, c0 and every weight. */
START_TEST(test_state_across_chunks) {
    sg_lstm_impl impl = k_impls[_i / 2];
    sg_dtype dt = k_dtypes[_i % 2];
    double rtol = dt == SG_F64 ? 1e-12 : 1e-5, atol = dt == SG_F64 ? 1e-13 : 2e-6;
    int64_t B = 3, T1 = 2, T2 = 3, T = T1 + T2, I = 4, H = 3;
    sg_ctx *ctx = sg_ctx_new(0);
    sg_store *store = sg_store_new();
    sg_rng rng;
    sg_rng_seed(&rng, 31 + (uint64_t)_i);
    sg_lstm_options o = options(dt, I, H, true, true);
    sg_lstm *l = new_lstm(ctx, store, impl, &o, &rng);
    randomize(ctx, l, &rng, 0.8);
    double *xd = normals(ctx, &rng, B * T * I, 1.0), *dyd = normals(ctx, &rng, B * T * H, 1.0);
    double *h0d = normals(ctx, &rng, B * H, 0.5), *c0d = normals(ctx, &rng, B * H, 0.5);

    lstm_run whole = run_lstm(ctx, l, B, T, xd, h0d, c0d, dyd);

    sg_store_zero_grad(store);
    sg_tensor *x = leaf(ctx, dt, SG_SHAPE(B, T, I), xd, true);
    sg_tensor *h0 = leaf(ctx, dt, SG_SHAPE(B, H), h0d, true);
    sg_tensor *c0 = leaf(ctx, dt, SG_SHAPE(B, H), c0d, true);
    sg_lstm_output o1, o2;
    ck_assert_int_eq(sg_lstm_forward(ctx, l, sg_slice(ctx, x, 1, 0, T1), h0, c0, &o1), 0);
    ck_assert_int_eq(sg_lstm_forward(ctx, l, sg_slice(ctx, x, 1, T1, T2), o1.h, o1.c, &o2), 0);
    sg_tensor *y = sg_concat(ctx, 2, (sg_tensor *[]){o1.y, o2.y}, 1);
    ck_assert_int_eq(sg_backward(ctx, y, leaf(ctx, dt, SG_SHAPE(B, T, H), dyd, false)), 0);
    lstm_run chunks = {y, o2.h, o2.c, x->grad, h0->grad, c0->grad, get_keras(ctx, l, true)};
    compare_runs(ctx, "two chunks vs one sequence", &chunks, &whole, rtol, atol);
    ck_assert(max_abs(chunks.dh0) > 1e-3 && max_abs(chunks.dc0) > 1e-3);
    ck_assert_ptr_null(sg_ctx_error(ctx));
    sg_lstm_free(l);
    sg_store_free(store);
    sg_ctx_free(ctx);
}
END_TEST

/* ---- initializers ------------------------------------------------------------------------ */

/* _i = impl * 2 + dtype. Keras defaults: kernel glorot_uniform over (I, 4H), recurrent
 * kernel orthogonal over (H, 4H), bias zeros with the forget block at 1. */
START_TEST(test_initializers) {
    sg_lstm_impl impl = k_impls[_i / 2];
    sg_dtype dt = k_dtypes[_i % 2];
    static const int64_t sizes[2][2] = {{5, 4}, {3, 7}};
    for (int s = 0; s < 2; s++) {
        int64_t I = sizes[s][0], H = sizes[s][1];
        sg_ctx *ctx = sg_ctx_new(0);
        sg_store *store = sg_store_new();
        sg_lstm_options o = sg_lstm_defaults(I, H);
        o.dtype = dt;
        sg_rng rng;
        sg_rng_seed(&rng, 2024);
        sg_lstm *l = new_lstm(ctx, store, impl, &o, &rng);
        keras_w w = get_keras(ctx, l, false);

        /* glorot_uniform: fan_in I, fan_out 4H. The draws stay inside the limit and use it. */
        double limit = sqrt(6.0 / (double)(I + 4 * H));
        ck_assert_double_le(max_abs(w.k), limit);
        ck_assert_double_gt(max_abs(w.k), 0.5 * limit);
        /* orthogonal (H, 4H): orthonormal rows, RK RK^T = I_H. */
        double otol = dt == SG_F64 ? 1e-12 : 1e-5;
        for (int64_t a = 0; a < H; a++)
            for (int64_t b = 0; b < H; b++) {
                double d = 0;
                for (int64_t j = 0; j < 4 * H; j++)
                    d += sg_get(w.rk, (int64_t[]){a, j}) * sg_get(w.rk, (int64_t[]){b, j});
                ck_assert_msg(fabs(d - (a == b)) <= otol, "(RK RK^T)[%lld, %lld] = %.17g",
                              (long long)a, (long long)b, d);
            }
        /* unit_forget_bias: exactly the columns H..2H-1 are 1. */
        for (int64_t j = 0; j < 4 * H; j++)
            ck_assert_double_eq(sg_get_flat(w.b, j), (j >= H && j < 2 * H) ? 1.0 : 0.0);
        if (impl == SG_LSTM_GATES)
            for (int g = 0; g < 4; g++)
                for (int64_t j = 0; j < H; j++)
                    ck_assert_double_eq(sg_get_flat(l->b[g], j), g == SG_GATE_F ? 1.0 : 0.0);

        /* The draws are Keras' order: the kernel first, then the recurrent kernel, from the
         * given generator; so the same seed gives the same weights in both layouts. */
        sg_rng r2;
        sg_rng_seed(&r2, 2024);
        sg_tensor *k_ref = sg_zeros(ctx, dt, SG_SHAPE(I, 4 * H));
        sg_tensor *rk_ref = sg_zeros(ctx, dt, SG_SHAPE(H, 4 * H));
        ck_assert_int_eq(sg_init_tensor(ctx, k_ref, sg_init_default(SG_INIT_GLOROT_UNIFORM), &r2),
                         0);
        ck_assert_int_eq(sg_init_tensor(ctx, rk_ref, sg_init_default(SG_INIT_ORTHOGONAL), &r2), 0);
        expect_close(ctx, "kernel draws", w.k, k_ref, 0, 0);
        expect_close(ctx, "recurrent_kernel draws", w.rk, rk_ref, 0, 0);
        sg_rng_seed(&rng, 2024);
        sg_lstm *other =
            new_lstm(ctx, store, impl == SG_LSTM_FUSED ? SG_LSTM_GATES : SG_LSTM_FUSED, &o, &rng);
        keras_w w2 = get_keras(ctx, other, false);
        expect_close(ctx, "same seed, other layout: kernel", w2.k, w.k, 0, 0);
        expect_close(ctx, "same seed, other layout: recurrent_kernel", w2.rk, w.rk, 0, 0);
        expect_close(ctx, "same seed, other layout: bias", w2.b, w.b, 0, 0);

        /* unit_forget_bias = false: the bias is all zeros. */
        o.unit_forget_bias = false;
        sg_lstm *nf = new_lstm(ctx, store, impl, &o, &rng);
        keras_w w3 = get_keras(ctx, nf, false);
        ck_assert_double_eq(max_abs(w3.b), 0.0);
        if (impl == SG_LSTM_GATES)
            for (int g = 0; g < 4; g++)
                ck_assert_double_eq(max_abs(nf->b[g]), 0.0);
        ck_assert_ptr_null(sg_ctx_error(ctx));
        sg_lstm_free(l);
        sg_lstm_free(other);
        sg_lstm_free(nf);
        sg_store_free(store);
        sg_ctx_free(ctx);
    }
}
END_TEST

/* ---- shapes, strided input, no-grad mode ------------------------------------------------- */

START_TEST(test_output_shapes) {
    sg_lstm_impl impl = k_impls[_i];
    int64_t B = 2, T = 4, I = 3, H = 5;
    sg_ctx *ctx = sg_ctx_new(0);
    sg_store *store = sg_store_new();
    sg_tensor *x = sg_rand_normal(ctx, SG_F64, SG_SHAPE(B, T, I), 0, 1);
    for (int v = 0; v < 4; v++) {
        sg_lstm_options o = options(SG_F64, I, H, true, v & 1);
        o.return_state = v & 2; /* does not change y; h and c are filled either way */
        sg_lstm *l = new_lstm(ctx, store, impl, &o, NULL);
        sg_lstm_output out;
        ck_assert_int_eq(sg_lstm_forward(ctx, l, x, NULL, NULL, &out), 0);
        ck_assert_int_eq(out.h->ndim, 2);
        ck_assert_int_eq(out.h->shape[0], B);
        ck_assert_int_eq(out.h->shape[1], H);
        ck_assert_int_eq(out.c->ndim, 2);
        ck_assert_int_eq(out.c->shape[0], B);
        ck_assert_int_eq(out.c->shape[1], H);
        if (o.return_sequences) {
            ck_assert_int_eq(out.y->ndim, 3);
            ck_assert_int_eq(out.y->shape[0], B);
            ck_assert_int_eq(out.y->shape[1], T);
            ck_assert_int_eq(out.y->shape[2], H);
            expect_close(ctx, "y[:, T-1] == h_T", sg_select(ctx, out.y, 1, T - 1), out.h, 0, 0);
        } else {
            ck_assert_int_eq(out.y->ndim, 2);
            ck_assert_int_eq(out.y->shape[0], B);
            ck_assert_int_eq(out.y->shape[1], H);
            expect_close(ctx, "y == h_T", out.y, out.h, 0, 0);
        }
        /* c_T is not h_T: h = o * tanh(c), |h| < |c| wherever c != 0 */
        ck_assert_int_eq(sg_compare(ctx, out.h, out.c, 0, 1e-9, NULL), 1);
        sg_lstm_free(l);
    }
    ck_assert_ptr_null(sg_ctx_error(ctx));
    sg_store_free(store);
    sg_ctx_free(ctx);
}
END_TEST

/* x given as a permuted (time-major) view and h0 as a transposed view: same outputs, and
 * the gradients land in the underlying leaves' layout. */
START_TEST(test_strided_inputs) {
    sg_lstm_impl impl = k_impls[_i / 2];
    sg_dtype dt = k_dtypes[_i % 2];
    double rtol = dt == SG_F64 ? 1e-13 : 1e-6, atol = dt == SG_F64 ? 1e-14 : 1e-7;
    int64_t B = 3, T = 4, I = 2, H = 3;
    sg_ctx *ctx = sg_ctx_new(0);
    sg_store *store = sg_store_new();
    sg_rng rng;
    sg_rng_seed(&rng, 5);
    sg_lstm_options o = options(dt, I, H, true, true);
    sg_lstm *l = new_lstm(ctx, store, impl, &o, &rng);
    randomize(ctx, l, &rng, 0.8);
    double *xd = normals(ctx, &rng, B * T * I, 1.0), *dyd = normals(ctx, &rng, B * T * H, 1.0);
    double *h0d = normals(ctx, &rng, B * H, 0.5);
    lstm_run ref = run_lstm(ctx, l, B, T, xd, h0d, NULL, dyd);

    /* time-major copies of x (T, B, I) and h0^T (H, B) */
    double *xtm = sg_arena_alloc(ctx, (size_t)(B * T * I) * sizeof *xtm);
    double *h0t = sg_arena_alloc(ctx, (size_t)(B * H) * sizeof *h0t);
    for (int64_t b = 0; b < B; b++) {
        for (int64_t t = 0; t < T; t++)
            for (int64_t i = 0; i < I; i++)
                xtm[(t * B + b) * I + i] = xd[(b * T + t) * I + i];
        for (int64_t j = 0; j < H; j++)
            h0t[j * B + b] = h0d[b * H + j];
    }
    sg_store_zero_grad(store);
    sg_tensor *X = leaf(ctx, dt, SG_SHAPE(T, B, I), xtm, true);
    sg_tensor *H0 = leaf(ctx, dt, SG_SHAPE(H, B), h0t, true);
    sg_tensor *x = sg_permute(ctx, X, (const int[]){1, 0, 2});
    sg_tensor *h0 = sg_transpose(ctx, H0, 0, 1);
    ck_assert(!sg_is_contiguous(x) && !sg_is_contiguous(h0));
    sg_lstm_output out;
    ck_assert_int_eq(sg_lstm_forward(ctx, l, x, h0, NULL, &out), 0);
    ck_assert_int_eq(sg_backward(ctx, out.y, leaf(ctx, dt, SG_SHAPE(B, T, H), dyd, false)), 0);
    expect_close(ctx, "strided y", out.y, ref.y, rtol, atol);
    expect_close(ctx, "strided dx", sg_permute(ctx, X->grad, (const int[]){1, 0, 2}), ref.dx, rtol,
                 atol);
    expect_close(ctx, "strided dh0", sg_transpose(ctx, H0->grad, 0, 1), ref.dh0, rtol, atol);
    keras_w dw = get_keras(ctx, l, true);
    expect_close(ctx, "strided dkernel", dw.k, ref.dw.k, rtol, atol);
    expect_close(ctx, "strided drecurrent_kernel", dw.rk, ref.dw.rk, rtol, atol);
    ck_assert_ptr_null(sg_ctx_error(ctx));
    sg_lstm_free(l);
    sg_store_free(store);
    sg_ctx_free(ctx);
}
END_TEST

/* Inference with gradients off: the same values, nothing on the tape. */
START_TEST(test_no_grad) {
    sg_lstm_impl impl = k_impls[_i];
    sg_ctx *ctx = sg_ctx_new(0);
    sg_store *store = sg_store_new();
    sg_lstm_options o = options(SG_F64, 3, 4, true, true);
    sg_lstm *l = new_lstm(ctx, store, impl, &o, NULL);
    sg_tensor *x = sg_rand_normal(ctx, SG_F64, SG_SHAPE(2, 5, 3), 0, 1);
    sg_lstm_output a, b;
    ck_assert_int_eq(sg_lstm_forward(ctx, l, x, NULL, NULL, &a), 0);
    ck_assert_int_gt(sg_tape_size(ctx), 0);
    ck_assert(a.y->flags & SG_FLAG_REQUIRES_GRAD);
    sg_ctx_reset(ctx);
    x = sg_rand_normal(ctx, SG_F64, SG_SHAPE(2, 5, 3), 0, 1);
    ck_assert_int_eq(sg_lstm_forward(ctx, l, x, NULL, NULL, &a), 0);
    int64_t on_tape = sg_tape_size(ctx);
    bool was = sg_ctx_set_grad_enabled(ctx, false);
    ck_assert_int_eq(sg_lstm_forward(ctx, l, x, NULL, NULL, &b), 0);
    sg_ctx_set_grad_enabled(ctx, was);
    ck_assert_int_eq(sg_tape_size(ctx), on_tape);
    ck_assert(!(b.y->flags & SG_FLAG_REQUIRES_GRAD));
    expect_close(ctx, "no-grad y", b.y, a.y, 0, 0);
    ck_assert_ptr_null(sg_ctx_error(ctx));
    sg_lstm_free(l);
    sg_store_free(store);
    sg_ctx_free(ctx);
}
END_TEST

/* ---- bad input ---------------------------------------------------------------------------- */

/* Run forward and expect failure with exactly `msg`; the output is cleared. */
static void expect_forward_error(sg_ctx *ctx, sg_lstm *l, sg_tensor *x, sg_tensor *h0,
                                 sg_tensor *c0, const char *msg) {
    sg_ctx_clear_error(ctx);
    sg_lstm_output out = {(sg_tensor *)1, (sg_tensor *)1, (sg_tensor *)1};
    ck_assert_int_eq(sg_lstm_forward(ctx, l, x, h0, c0, &out), -1);
    if (l) { /* with a NULL layer the output is left untouched */
        ck_assert_ptr_null(out.y);
        ck_assert_ptr_null(out.h);
        ck_assert_ptr_null(out.c);
    }
    ck_assert_msg(sg_ctx_error(ctx) != NULL, "no error recorded for: %s", msg);
    ck_assert_str_eq(sg_ctx_error(ctx), msg);
    sg_ctx_clear_error(ctx);
}

START_TEST(test_bad_input) {
    sg_lstm_impl impl = k_impls[_i];
    sg_ctx *ctx = sg_ctx_new(0);
    sg_store *store = sg_store_new();
    sg_lstm_options o = options(SG_F64, 5, 4, true, false);
    sg_lstm *l = sg_lstm_new(ctx, store, impl, &o, "enc", NULL);
    ck_assert_ptr_nonnull(l);
    sg_tensor *x = sg_zeros(ctx, SG_F64, SG_SHAPE(2, 3, 5));
    sg_tensor *h = sg_zeros(ctx, SG_F64, SG_SHAPE(2, 4));

    expect_forward_error(ctx, l, sg_zeros(ctx, SG_F64, SG_SHAPE(2, 3, 4)), NULL, NULL,
                         "sg_lstm_forward (enc): x has shape (2, 3, 4), expected (B, T, 5)");
    expect_forward_error(ctx, l, sg_zeros(ctx, SG_F64, SG_SHAPE(2, 5)), NULL, NULL,
                         "sg_lstm_forward (enc): x has shape (2, 5), expected (B, T, 5)");
    expect_forward_error(ctx, l, sg_zeros(ctx, SG_F64, SG_SHAPE(2, 0, 5)), NULL, NULL,
                         "sg_lstm_forward (enc): x has shape (2, 0, 5): a sequence of length 0 "
                         "(or an empty batch) has no output");
    expect_forward_error(ctx, l, sg_zeros(ctx, SG_F64, SG_SHAPE(0, 3, 5)), NULL, NULL,
                         "sg_lstm_forward (enc): x has shape (0, 3, 5): a sequence of length 0 "
                         "(or an empty batch) has no output");
    expect_forward_error(ctx, l, sg_zeros(ctx, SG_F32, SG_SHAPE(2, 3, 5)), NULL, NULL,
                         "sg_lstm_forward (enc): x is float32, the layer is float64");
    expect_forward_error(ctx, l, x, sg_zeros(ctx, SG_F64, SG_SHAPE(2, 3)), NULL,
                         "sg_lstm_forward (enc): h0 has shape (2, 3), expected (2, 4)");
    expect_forward_error(ctx, l, x, sg_zeros(ctx, SG_F64, SG_SHAPE(4)), NULL,
                         "sg_lstm_forward (enc): h0 has shape (4,), expected (2, 4)");
    expect_forward_error(ctx, l, x, h, sg_zeros(ctx, SG_F64, SG_SHAPE(3, 4)),
                         "sg_lstm_forward (enc): c0 has shape (3, 4), expected (2, 4)");
    expect_forward_error(ctx, l, x, NULL, sg_zeros(ctx, SG_F64, SG_SHAPE(1, 2, 4)),
                         "sg_lstm_forward (enc): c0 has shape (1, 2, 4), expected (2, 4)");
    expect_forward_error(ctx, l, x, sg_zeros(ctx, SG_F32, SG_SHAPE(2, 4)), NULL,
                         "sg_lstm_forward (enc): h0 is float32, the layer is float64");
    expect_forward_error(ctx, l, x, h, sg_zeros(ctx, SG_F32, SG_SHAPE(2, 4)),
                         "sg_lstm_forward (enc): c0 is float32, the layer is float64");
    expect_forward_error(ctx, NULL, x, NULL, NULL, "sg_lstm_forward: layer or output is NULL");

    /* NULL x propagates silently (its error is already recorded elsewhere). */
    sg_lstm_output out;
    ck_assert_int_eq(sg_lstm_forward(ctx, l, NULL, NULL, NULL, &out), -1);
    ck_assert_ptr_null(sg_ctx_error(ctx));
    /* A stale x (from before a reset) is caught, not read. */
    sg_ctx_reset(ctx);
    ck_assert_int_eq(sg_lstm_forward(ctx, l, x, NULL, NULL, &out), -1);
    ck_assert_ptr_nonnull(sg_ctx_error(ctx));
    ck_assert_ptr_nonnull(strstr(sg_ctx_error(ctx), "sg_lstm_forward"));
    sg_ctx_clear_error(ctx);

    /* After all that, the layer still works. */
    x = sg_rand_normal(ctx, SG_F64, SG_SHAPE(2, 3, 5), 0, 1);
    ck_assert_int_eq(sg_lstm_forward(ctx, l, x, NULL, NULL, &out), 0);
    ck_assert_ptr_null(sg_ctx_error(ctx));

    /* Bad options at creation (in a store of their own: this one has "enc" already). */
    sg_store *other = sg_store_new();
    sg_lstm_options bad = options(SG_F64, 0, 4, true, false);
    ck_assert_ptr_null(sg_lstm_new(ctx, other, impl, &bad, NULL, NULL));
    ck_assert_str_eq(sg_ctx_error(ctx),
                     "sg_lstm_new (lstm): input_size and units must be positive, got 0 and 4");
    sg_ctx_clear_error(ctx);
    bad = options(SG_F64, 3, 4, true, false);
    bad.activation = (sg_activation)42;
    ck_assert_ptr_null(sg_lstm_new(ctx, other, impl, &bad, "enc", NULL));
    ck_assert_str_eq(sg_ctx_error(ctx), "sg_lstm_new (enc): unknown activation");
    sg_ctx_clear_error(ctx);
    bad = options(SG_F64, 3, 4, true, false);
    bad.in_place = (sg_in_place)7;
    ck_assert_ptr_null(sg_lstm_new(ctx, other, impl, &bad, "enc", NULL));
    ck_assert_str_eq(sg_ctx_error(ctx), "sg_lstm_new (enc): unknown in_place mode 7");
    sg_ctx_clear_error(ctx);
    ck_assert_ptr_null(sg_lstm_new(ctx, other, impl, NULL, NULL, NULL));
    ck_assert_str_eq(sg_ctx_error(ctx),
                     "sg_lstm_new: options are NULL (start from sg_lstm_defaults)");
    sg_ctx_clear_error(ctx);
    /* Sizes whose products overflow (issue 20): 4 * 2^62 wraps to 0, and 2^58 passes 4H
     * and H + I but not I * 4H; both say so, not "negative size -9223372036854775808". */
    const struct {
        int64_t I, H;
        const char *msg;
    } huge[] = {
        {3, (int64_t)1 << 62,
         "sg_lstm_new (lstm): input_size 3 and units 4611686018427387904: the parameter sizes "
         "overflow (4 * units, units + input_size, or a weight matrix of more than 2^60 - 1 "
         "elements)"},
        {16, (int64_t)1 << 58,
         "sg_lstm_new (lstm): input_size 16 and units 288230376151711744: the parameter sizes "
         "overflow (4 * units, units + input_size, or a weight matrix of more than 2^60 - 1 "
         "elements)"},
        {INT64_MAX, 1,
         "sg_lstm_new (lstm): input_size 9223372036854775807 and units 1: the parameter sizes "
         "overflow (4 * units, units + input_size, or a weight matrix of more than 2^60 - 1 "
         "elements)"},
        {1, (int64_t)1 << 30,
         "sg_lstm_new (lstm): input_size 1 and units 1073741824: the parameter sizes "
         "overflow (4 * units, units + input_size, or a weight matrix of more than 2^60 - 1 "
         "elements)"},
    };
    for (size_t k = 0; k < sizeof huge / sizeof huge[0]; k++) {
        bad = options(SG_F64, huge[k].I, huge[k].H, true, false);
        ck_assert_ptr_null(sg_lstm_new(ctx, other, impl, &bad, NULL, NULL));
        ck_assert_str_eq(sg_ctx_error(ctx), huge[k].msg);
        sg_ctx_clear_error(ctx);
    }
    ck_assert_int_eq(sg_store_size(other), 0);
    sg_store_free(other);

    sg_lstm_free(l);
    sg_store_free(store);
    sg_ctx_free(ctx);
}
END_TEST

/* _i = impl. SG_IN_PLACE_AUTO works in place from B * 4H >= 1024 elements: there the
 * step leaves less in the arena than SG_IN_PLACE_NEVER, with the same outputs and
 * gradients up to summation order. (T 16: the fused in-place step's sg_seqmm also keeps one
 * padded copy of the recurrent kernel, whatever T.) */
START_TEST(test_in_place_auto) {
    sg_lstm_impl impl = k_impls[_i];
    int64_t B = 8, T = 16, I = 3, H = 32; /* B * 4H = 1024 */
    size_t used[2];
    double loss[2], dk[2];
    for (int never = 0; never < 2; never++) {
        sg_ctx *ctx = sg_ctx_new(0);
        sg_store *store = sg_store_new();
        sg_rng rng;
        sg_rng_seed(&rng, 77);
        sg_lstm_options o = options(SG_F64, I, H, true, true);
        o.in_place = never ? SG_IN_PLACE_NEVER : SG_IN_PLACE_AUTO;
        sg_lstm *l = new_lstm(ctx, store, impl, &o, &rng);
        sg_tensor *x = sg_rand_normal(ctx, SG_F64, SG_SHAPE(B, T, I), 0, 1);
        size_t before = sg_ctx_arena_used(ctx);
        sg_lstm_output out;
        ck_assert_int_eq(sg_lstm_forward(ctx, l, x, NULL, NULL, &out), 0);
        sg_tensor *L = sg_sum(ctx, sg_mul(ctx, out.y, out.y));
        ck_assert_int_eq(sg_backward(ctx, L, NULL), 0);
        used[never] = sg_ctx_arena_used(ctx) - before;
        loss[never] = sg_get_flat(L, 0);
        sg_tensor *w = impl == SG_LSTM_FUSED ? l->kernel : l->W[0];
        dk[never] = 0;
        for (int64_t k = 0; k < sg_numel(w); k++)
            dk[never] += fabs(sg_get_flat(w->grad, k));
        ck_assert_ptr_null(sg_ctx_error(ctx));
        sg_lstm_free(l);
        sg_store_free(store);
        sg_ctx_free(ctx);
    }
    ck_assert_msg(used[0] < used[1] * 0.9, "%s: arena in place %zu, not in place %zu",
                  k_impl_names[_i], used[0], used[1]);
    ck_assert_double_eq_tol(loss[0], loss[1], 1e-12 * fabs(loss[1]));
    ck_assert_double_eq_tol(dk[0], dk[1], 1e-12 * dk[1]);
}
END_TEST

/* _i: impl (bit 0), in place (bit 1). Anomaly mode makes a NaN or Inf an error: the op that
 * produces it returns NULL, so sg_lstm_forward returns -1 with the anomaly's message (it
 * used to return 0 with the error set), and sg_dense_forward NULL. */
START_TEST(test_anomaly_forward) {
    sg_lstm_impl impl = k_impls[_i & 1];
    sg_ctx *ctx = sg_ctx_new(0);
    sg_store *store = sg_store_new();
    sg_rng rng;
    sg_rng_seed(&rng, 5);
    sg_lstm_options o = options(SG_F64, 5, 4, true, true);
    o.in_place = (_i & 2) ? SG_IN_PLACE_ALWAYS : SG_IN_PLACE_NEVER;
    sg_lstm *l = new_lstm(ctx, store, impl, &o, &rng);
    sg_dense *d = sg_dense_new(ctx, store, SG_F64, 4, 2, true, SG_ACT_TANH, NULL, &rng);
    ck_assert_ptr_nonnull(d);
    sg_ctx_set_anomaly(ctx, true);
    sg_lstm_output out;
    /* finite input: anomaly mode changes nothing */
    sg_tensor *x = sg_rand_normal(ctx, SG_F64, SG_SHAPE(3, 2, 5), 0, 1);
    ck_assert_int_eq(sg_lstm_forward(ctx, l, x, NULL, NULL, &out), 0);
    ck_assert_ptr_nonnull(sg_dense_forward(ctx, d, out.y));
    ck_assert_ptr_null(sg_ctx_error(ctx));
    /* a NaN in x */
    ck_assert_int_eq(sg_set_flat(x, 7, NAN), 0);
    ck_assert_int_eq(sg_lstm_forward(ctx, l, x, NULL, NULL, &out), -1);
    ck_assert_ptr_nonnull(sg_ctx_error(ctx));
    ck_assert_msg(!strncmp(sg_ctx_error(ctx), "anomaly: ", 9) &&
                      strstr(sg_ctx_error(ctx), " produced NaN in forward; inputs "),
                  "%s: %s", k_impl_names[_i & 1], sg_ctx_error(ctx));
    ck_assert_ptr_null(out.y);
    ck_assert_ptr_null(out.h);
    ck_assert_ptr_null(out.c);
    sg_ctx_clear_error(ctx);
    /* an Inf in h0 */
    sg_tensor *h0 = sg_zeros(ctx, SG_F64, SG_SHAPE(3, 4));
    sg_set_flat(h0, 0, INFINITY);
    sg_set_flat(x, 7, 0.5);
    ck_assert_int_eq(sg_lstm_forward(ctx, l, x, h0, NULL, &out), -1);
    ck_assert_ptr_nonnull(strstr(sg_ctx_error(ctx), " produced "));
    ck_assert_ptr_null(out.y);
    sg_ctx_clear_error(ctx);
    /* an error recorded before the call is kept, and the call still fails on the NaN */
    sg_set_flat(x, 7, NAN);
    sg_error(ctx, "earlier");
    ck_assert_int_eq(sg_lstm_forward(ctx, l, x, NULL, NULL, &out), -1);
    ck_assert_str_eq(sg_ctx_error(ctx), "earlier");
    sg_ctx_clear_error(ctx);
    /* Dense */
    sg_tensor *hx = sg_full(ctx, SG_F64, SG_SHAPE(3, 4), 1);
    sg_set_flat(hx, 5, NAN);
    ck_assert_ptr_null(sg_dense_forward(ctx, d, hx));
    ck_assert_str_eq(sg_ctx_error(ctx),
                     "anomaly: addmm produced NaN in forward; inputs (3, 4), (4, 2), (2,) -> "
                     "output (3, 2)");
    sg_ctx_clear_error(ctx);
    /* anomaly mode off: NaN flows through, no error (the default) */
    sg_ctx_set_anomaly(ctx, false);
    ck_assert_int_eq(sg_lstm_forward(ctx, l, x, NULL, NULL, &out), 0);
    ck_assert_ptr_nonnull(out.y);
    ck_assert_ptr_nonnull(sg_dense_forward(ctx, d, hx));
    ck_assert_ptr_null(sg_ctx_error(ctx));
    sg_dense_free(d);
    sg_lstm_free(l);
    sg_store_free(store);
    sg_ctx_free(ctx);
}
END_TEST

int main(void) {
    const ck_tcase tcases[] = {
        {"lstm",
         600,
         {{test_gates_equal_fused, 8},
          {test_set_keras_mapping, 4},
          {test_pytorch_fixtures, 16},
          {test_in_place_auto, 2},
          {test_keras_golden, 4},
          {test_gradcheck_f64, 32},
          {test_gradcheck_f32, 4},
          {test_h_is_carried, 2},
          {test_state_across_chunks, 4},
          {test_initializers, 4},
          {test_output_shapes, 2},
          {test_strided_inputs, 4},
          {test_no_grad, 2},
          {test_bad_input, 2},
          {test_anomaly_forward, 4}}},
    };
    return CK_RUN("lstm", tcases, NULL, NULL);
}
