/* Dense, parameter lists, layer names in a parameter store and the LSTM weight converters
 * (layers/dense.c, layers/common.c, autograd/store.c, layers/convert.c). The LSTM's function
 * itself is tested in test_lstm.c.
 *
 *  - Dense on (B, in) and on (B, T, in) against a loop written out here, with and without
 *    bias, for every activation; its initializer; gradcheck (float64 tight, float32 loose)
 *    including a transposed input and the kernel used twice in one expression; errors;
 *  - parameter lists: names of every layer kind, duplicates rejected, find, count,
 *    zero_grad (only the listed parameters), clear and reuse;
 *  - layer names in a store: Keras' defaults ("lstm", "lstm_1", ...), a name taken or with a
 *    '.' refused with the store unchanged, and a layer made after a refused one;
 *  - converters: wrong shapes name the tensor and both shapes, a bias given to a layer
 *    without one, a failed call leaves the layer unchanged, sg_lstm_set_torch with one
 *    bias, both or none, sg_lstm_copy between sizes and dtypes.
 */
#include <check.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "layers/layers.h"

#include "cksuite.h"

static const sg_dtype k_dtypes[2] = {SG_F64, SG_F32};

static const sg_activation k_acts[5] = {SG_ACT_LINEAR, SG_ACT_TANH, SG_ACT_SIGMOID,
                                        SG_ACT_HARD_SIGMOID, SG_ACT_RELU};

/* The activations by their definitions (Keras 2's hard_sigmoid: clip(0.2 z + 0.5, 0, 1)). */
static double act_ref(sg_activation a, double z) {
    switch (a) {
    case SG_ACT_TANH: return tanh(z);
    case SG_ACT_SIGMOID: return 1.0 / (1.0 + exp(-z));
    case SG_ACT_HARD_SIGMOID: return fmin(1.0, fmax(0.0, 0.2 * z + 0.5));
    case SG_ACT_RELU: return z > 0 ? z : 0.0;
    case SG_ACT_LINEAR: return z;
    }
    return NAN;
}

static double max_abs(const sg_tensor *t) {
    double m = 0;
    for (int64_t i = 0; i < sg_numel(t); i++)
        m = fmax(m, fabs(sg_get_flat(t, i)));
    return m;
}

static void expect_close(sg_ctx *ctx, const char *what, const sg_tensor *got, const sg_tensor *ref,
                         double rtol, double atol) {
    ck_assert_msg(got != NULL, "%s: NULL (%s)", what,
                  sg_ctx_error(ctx) ? sg_ctx_error(ctx) : "no error recorded");
    sg_compare_result res;
    int rc = sg_compare(ctx, got, ref, rtol, atol, &res);
    ck_assert_msg(rc >= 0, "%s: sg_compare: %s", what, sg_ctx_error(ctx));
    ck_assert_msg(rc == 0, "%s: %lld elements off, worst at flat %lld: got %.17g expected %.17g",
                  what, (long long)res.n_mismatch, (long long)res.worst_flat,
                  sg_get_flat(got, res.worst_flat), sg_get_flat(ref, res.worst_flat));
}

/* ---- Dense ---------------------------------------------------------------------------- */

/* _i = activation * 4 + bias * 2 + dtype. y = act(x @ K + b) on (B, in) and on (B, T, in)
 * against the sums written out in float64. */
START_TEST(test_dense_forward) {
    sg_activation act = k_acts[_i / 4];
    bool bias = (_i / 2) % 2;
    sg_dtype dt = k_dtypes[_i % 2];
    double tol = dt == SG_F64 ? 1e-14 : 2e-6;
    enum { B = 3, T = 4, IN = 5, OUT = 3 };
    sg_ctx *ctx = sg_ctx_new(0);
    sg_store *store = sg_store_new();
    sg_rng rng;
    sg_rng_seed(&rng, 11 + (uint64_t)_i);
    sg_dense *d = sg_dense_new(ctx, store, dt, IN, OUT, bias, act, NULL, &rng);
    ck_assert_msg(d != NULL, "sg_dense_new: %s", sg_ctx_error(ctx));
    ck_assert_int_eq(d->in, IN);
    ck_assert_int_eq(d->out, OUT);
    ck_assert(bias == (d->bias != NULL));
    if (bias) /* a nonzero bias, so that adding it is tested */
        ck_assert_int_eq(
            sg_init_tensor(ctx, d->bias, (sg_init){SG_INIT_RANDOM_UNIFORM, -1, 1}, &rng), 0);

    for (int seq = 0; seq < 2; seq++) {
        int64_t rows = seq ? B * T : B;
        sg_tensor *x = seq ? sg_rand_normal(ctx, dt, SG_SHAPE(B, T, IN), 0, 1.5)
                           : sg_rand_normal(ctx, dt, SG_SHAPE(B, IN), 0, 1.5);
        sg_tensor *y = sg_dense_forward(ctx, d, x);
        ck_assert_msg(y != NULL, "sg_dense_forward: %s", sg_ctx_error(ctx));
        ck_assert_int_eq(y->ndim, x->ndim);
        ck_assert_int_eq(y->shape[0], B);
        ck_assert_int_eq(y->shape[y->ndim - 1], OUT);
        if (seq)
            ck_assert_int_eq(y->shape[1], T);
        /* rows of x and y in row-major order: (b, t) flattened */
        for (int64_t r = 0; r < rows; r++)
            for (int64_t o = 0; o < OUT; o++) {
                double z = bias ? sg_get_flat(d->bias, o) : 0.0;
                for (int64_t i = 0; i < IN; i++)
                    z += sg_get_flat(x, r * IN + i) * sg_get_flat(d->kernel, i * OUT + o);
                double want = act_ref(act, z), got = sg_get_flat(y, r * OUT + o);
                ck_assert_msg(fabs(got - want) <= tol * (1 + fabs(want)),
                              "dense %s bias=%d %s seq=%d: y[%lld, %lld] = %.17g, expected %.17g",
                              sg_activation_name(act), bias, sg_dtype_name(dt), seq, (long long)r,
                              (long long)o, got, want);
            }
    }
    ck_assert_ptr_null(sg_ctx_error(ctx));
    sg_dense_free(d);
    sg_store_free(store);
    sg_ctx_free(ctx);
}
END_TEST

/* Keras Dense defaults: kernel glorot_uniform (limit sqrt(6 / (in + out))), bias zeros,
 * parameters named "<name>.kernel" / "<name>.bias"; the same seed gives the same kernel. */
START_TEST(test_dense_init) {
    sg_ctx *ctx = sg_ctx_new(0);
    sg_store *store = sg_store_new();
    sg_rng rng;
    sg_rng_seed(&rng, 8);
    sg_dense *d = sg_dense_new(ctx, store, SG_F64, 6, 10, true, SG_ACT_LINEAR, NULL, &rng);
    ck_assert_ptr_nonnull(d);
    double limit = sqrt(6.0 / 16.0);
    ck_assert_double_le(max_abs(d->kernel), limit);
    ck_assert_double_gt(max_abs(d->kernel), 0.5 * limit);
    ck_assert_double_eq(max_abs(d->bias), 0.0);
    ck_assert_str_eq(d->kernel->name, "dense.kernel");
    ck_assert_str_eq(d->bias->name, "dense.bias");
    ck_assert(d->kernel->flags & SG_FLAG_PARAM);
    sg_rng_seed(&rng, 8);
    sg_dense *e = sg_dense_new(ctx, store, SG_F64, 6, 10, false, SG_ACT_LINEAR, "head", &rng);
    ck_assert_ptr_nonnull(e);
    ck_assert_ptr_null(e->bias);
    ck_assert_str_eq(e->kernel->name, "head.kernel");
    expect_close(ctx, "same seed, same kernel", e->kernel, d->kernel, 0, 0);
    ck_assert_ptr_null(sg_ctx_error(ctx));
    sg_dense_free(d);
    sg_dense_free(e);
    sg_store_free(store);
    sg_ctx_free(ctx);
}
END_TEST

typedef struct dense_gc {
    sg_dense *d;
    int mode; /* 0: dense(x); 1: x given transposed; 2: dense(dense(x)), kernel used twice */
} dense_gc;

/* inputs = x (or x^T for mode 1), kernel, bias */
static sg_tensor *gc_dense(sg_ctx *ctx, sg_tensor *const *in, void *user) {
    dense_gc *u = user;
    switch (u->mode) {
    case 1: return sg_dense_forward(ctx, u->d, sg_transpose(ctx, in[0], 0, 1));
    case 2: return sg_dense_forward(ctx, u->d, sg_dense_forward(ctx, u->d, in[0]));
    default: return sg_dense_forward(ctx, u->d, in[0]);
    }
}

static void dense_gradcheck(sg_dtype dt, sg_activation act, int mode, bool seq,
                            const sg_gradcheck_opts *opts) {
    enum { B = 3, T = 2, N = 4 }; /* in = out = N so that mode 2 can chain */
    sg_ctx *ctx = sg_ctx_new(0);
    sg_store *store = sg_store_new();
    sg_rng rng;
    sg_rng_seed(&rng, 21 + (uint64_t)mode);
    sg_dense *d = sg_dense_new(ctx, store, dt, N, N, true, act, NULL, &rng);
    ck_assert_ptr_nonnull(d);
    ck_assert_int_eq(sg_init_tensor(ctx, d->bias, (sg_init){SG_INIT_RANDOM_UNIFORM, -1, 1}, &rng),
                     0);
    sg_tensor *x = mode == 1 ? sg_rand_normal(ctx, dt, SG_SHAPE(N, B), 0, 1)
                   : seq     ? sg_rand_normal(ctx, dt, SG_SHAPE(B, T, N), 0, 1)
                             : sg_rand_normal(ctx, dt, SG_SHAPE(B, N), 0, 1);
    sg_set_requires_grad(x, true);
    sg_tensor *in[3] = {x, d->kernel, d->bias};
    dense_gc u = {d, mode};
    sg_gradcheck_report rep[3];
    int rc = sg_gradcheck(ctx, gc_dense, &u, 3, in, opts, rep);
    ck_assert_msg(rc >= 0, "sg_gradcheck: %s", sg_ctx_error(ctx));
    static const char *const names[3] = {"x", "kernel", "bias"};
    for (int i = 0; i < 3; i++)
        ck_assert_msg(rep[i].ok,
                      "dense gradcheck %s %s mode %d seq %d: %s at %lld: analytic %.10g numeric "
                      "%.10g",
                      sg_dtype_name(dt), sg_activation_name(act), mode, seq, names[i],
                      (long long)rep[i].worst_flat, rep[i].analytic, rep[i].numeric);
    ck_assert_int_eq(rc, 1);
    for (int i = 0; i < 3; i++)
        ck_assert_double_gt(max_abs(in[i]->grad), 1e-4);
    ck_assert_ptr_null(sg_ctx_error(ctx));
    sg_dense_free(d);
    sg_store_free(store);
    sg_ctx_free(ctx);
}

/* _i = activation (tanh, sigmoid, relu, linear) * 4 + mode-ish: 0 (B, N), 1 transposed x,
 * 2 kernel used twice, 3 (B, T, N). */
START_TEST(test_dense_gradcheck_f64) {
    static const sg_activation acts[4] = {SG_ACT_TANH, SG_ACT_SIGMOID, SG_ACT_RELU, SG_ACT_LINEAR};
    sg_gradcheck_opts opts = {.eps = 1e-6, .atol = 1e-9, .rtol = 1e-7, .seed = 5};
    int v = _i % 4;
    dense_gradcheck(SG_F64, acts[_i / 4], v == 3 ? 0 : v, v == 3, &opts);
}
END_TEST

START_TEST(test_dense_gradcheck_f32) {
    sg_gradcheck_opts opts = {.eps = 1e-2, .atol = 1e-3, .rtol = 1e-2, .seed = 5};
    int v = _i % 4;
    dense_gradcheck(SG_F32, SG_ACT_TANH, v == 3 ? 0 : v, v == 3, &opts);
}
END_TEST

START_TEST(test_dense_errors) {
    sg_ctx *ctx = sg_ctx_new(0);
    sg_store *store = sg_store_new();
    sg_dense *d = sg_dense_new(ctx, store, SG_F64, 3, 2, true, SG_ACT_TANH, "out", NULL);
    ck_assert_ptr_nonnull(d);
    ck_assert_ptr_null(sg_dense_forward(ctx, d, sg_zeros(ctx, SG_F64, SG_SHAPE(2, 4))));
    ck_assert_str_eq(sg_ctx_error(ctx),
                     "sg_dense_forward (out): x has shape (2, 4), expected (B, 3) or (B, T, 3)");
    sg_ctx_clear_error(ctx);
    ck_assert_ptr_null(sg_dense_forward(ctx, d, sg_zeros(ctx, SG_F64, SG_SHAPE(1, 2, 2, 3))));
    ck_assert_str_eq(sg_ctx_error(ctx), "sg_dense_forward (out): x has shape (1, 2, 2, 3), "
                                        "expected (B, 3) or (B, T, 3)");
    sg_ctx_clear_error(ctx);
    ck_assert_ptr_null(sg_dense_forward(ctx, NULL, sg_zeros(ctx, SG_F64, SG_SHAPE(2, 3))));
    ck_assert_str_eq(sg_ctx_error(ctx), "sg_dense_forward: layer is NULL");
    sg_ctx_clear_error(ctx);
    /* mixed dtypes: reported by the matmul inside */
    ck_assert_ptr_null(sg_dense_forward(ctx, d, sg_zeros(ctx, SG_F32, SG_SHAPE(2, 3))));
    ck_assert_ptr_nonnull(sg_ctx_error(ctx));
    ck_assert_ptr_nonnull(strstr(sg_ctx_error(ctx), "float32 and float64"));
    sg_ctx_clear_error(ctx);
    /* NULL x propagates without a new error */
    ck_assert_ptr_null(sg_dense_forward(ctx, d, NULL));
    ck_assert_ptr_null(sg_ctx_error(ctx));

    ck_assert_ptr_null(sg_dense_new(ctx, store, SG_F64, 0, 3, true, SG_ACT_TANH, NULL, NULL));
    ck_assert_str_eq(sg_ctx_error(ctx),
                     "sg_dense_new (dense): sizes must be positive, got in=0 out=3");
    sg_ctx_clear_error(ctx);
    ck_assert_ptr_null(sg_dense_new(ctx, store, SG_F64, 2, 3, true, (sg_activation)9, "h", NULL));
    ck_assert_str_eq(sg_ctx_error(ctx), "sg_dense_new (h): unknown activation 9");
    sg_ctx_clear_error(ctx);
    /* a kernel whose element count overflows (issue 20) */
    ck_assert_ptr_null(sg_dense_new(ctx, store, SG_F64, (int64_t)1 << 40, (int64_t)1 << 40, true,
                                    SG_ACT_TANH, "h", NULL));
    ck_assert_str_eq(sg_ctx_error(ctx),
                     "sg_dense_new (h): in=1099511627776 out=1099511627776: "
                     "the kernel's size overflows (more than 2^60 - 1 elements)");
    sg_ctx_clear_error(ctx);
    ck_assert_ptr_null(
        sg_dense_new(ctx, store, SG_F64, INT64_MAX, 2, false, SG_ACT_TANH, "h", NULL));
    ck_assert_ptr_nonnull(strstr(sg_ctx_error(ctx), "the kernel's size overflows"));
    sg_ctx_clear_error(ctx);
    ck_assert_int_eq(sg_store_size(store), 2);
    sg_dense_free(d);
    sg_dense_free(NULL);
    sg_store_free(store);
    sg_ctx_free(ctx);
}
END_TEST

/* ---- parameter lists --------------------------------------------------------------------- */

static sg_lstm *new_lstm(sg_ctx *ctx, sg_store *store, sg_lstm_impl impl, sg_dtype dt, int64_t I,
                         int64_t H, bool bias, const char *name) {
    sg_lstm_options o = sg_lstm_defaults(I, H);
    o.dtype = dt;
    o.use_bias = bias;
    sg_lstm *l = sg_lstm_new(ctx, store, impl, &o, name, NULL);
    ck_assert_msg(l != NULL, "sg_lstm_new: %s", sg_ctx_error(ctx));
    return l;
}

START_TEST(test_param_names) {
    sg_ctx *ctx = sg_ctx_new(0);
    sg_store *store = sg_store_new();
    int64_t I = 5, H = 4;
    sg_lstm *fused = new_lstm(ctx, store, SG_LSTM_FUSED, SG_F32, I, H, true, NULL);
    sg_lstm *gates = new_lstm(ctx, store, SG_LSTM_GATES, SG_F32, I, H, true, "enc");
    sg_dense *d = sg_dense_new(ctx, store, SG_F32, H, 3, true, SG_ACT_LINEAR, NULL, NULL);
    ck_assert_ptr_nonnull(d);

    sg_param_list pl = {.ctx = ctx}; /* store parameters have no context of the test's */
    ck_assert_int_eq(sg_lstm_params(fused, &pl), 0);
    ck_assert_int_eq(sg_dense_params(d, &pl), 0);
    ck_assert_int_eq(pl.n, 5);
    static const char *const fused_names[5] = {"lstm.kernel", "lstm.recurrent_kernel", "lstm.bias",
                                               "dense.kernel", "dense.bias"};
    sg_tensor *const fused_ts[5] = {fused->kernel, fused->recurrent_kernel, fused->bias, d->kernel,
                                    d->bias};
    for (int i = 0; i < 5; i++) {
        ck_assert_str_eq(pl.items[i].name, fused_names[i]);
        ck_assert_ptr_eq(pl.items[i].tensor, fused_ts[i]);
        ck_assert_ptr_eq(sg_params_find(&pl, fused_names[i]), fused_ts[i]);
    }
    ck_assert_ptr_null(sg_params_find(&pl, "lstm.W_i"));
    ck_assert_ptr_null(sg_params_find(&pl, "lstm"));
    ck_assert_ptr_null(sg_params_find(NULL, "lstm.kernel"));
    /* (I + H + 1) * 4H for the LSTM, in * out + out for Dense */
    ck_assert_int_eq(sg_params_count(&pl), (I + H + 1) * 4 * H + H * 3 + 3);

    /* The same layer again: its first name is a duplicate. */
    ck_assert_int_eq(sg_lstm_params(fused, &pl), -1);
    ck_assert_str_eq(sg_ctx_error(ctx), "sg_params_add: duplicate parameter name 'lstm.kernel'");
    sg_ctx_clear_error(ctx);
    ck_assert_int_eq(sg_dense_params(d, &pl), -1);
    ck_assert_str_eq(sg_ctx_error(ctx), "sg_params_add: duplicate parameter name 'dense.kernel'");
    sg_ctx_clear_error(ctx);
    ck_assert_int_eq(sg_params_add(&pl, "dense.bias", gates->W[0]), -1);
    ck_assert_str_eq(sg_ctx_error(ctx), "sg_params_add: duplicate parameter name 'dense.bias'");
    sg_ctx_clear_error(ctx);
    ck_assert_int_eq(pl.n, 5);

    /* gates layer named "enc": W_i .. W_o and b_i .. b_o */
    ck_assert_int_eq(sg_lstm_params(gates, &pl), 0);
    ck_assert_int_eq(pl.n, 13);
    static const char gate_chars[4] = {'i', 'f', 'c', 'o'};
    for (int g = 0; g < 4; g++) {
        char n[32];
        snprintf(n, sizeof n, "enc.W_%c", gate_chars[g]);
        ck_assert_ptr_eq(sg_params_find(&pl, n), gates->W[g]);
        ck_assert_str_eq(gates->W[g]->name, n);
        snprintf(n, sizeof n, "enc.b_%c", gate_chars[g]);
        ck_assert_ptr_eq(sg_params_find(&pl, n), gates->b[g]);
    }
    /* Both layouts hold the same number of scalars. */
    ck_assert_int_eq(sg_params_count(&pl), 2 * (I + H + 1) * 4 * H + H * 3 + 3);

    /* A name too long for an entry. */
    char longname[100];
    memset(longname, 'x', sizeof longname - 1);
    longname[sizeof longname - 1] = 0;
    ck_assert_int_eq(sg_params_add(&pl, longname, d->kernel), -1);
    ck_assert_ptr_nonnull(strstr(sg_ctx_error(ctx), "is longer than 95 characters"));
    ck_assert(!strncmp(sg_ctx_error(ctx), "sg_params_add: name 'xxx", 24));
    sg_ctx_clear_error(ctx);
    /* NULL arguments: refused with a message (the list's context, or with no list the
     * tensor's: a store parameter's is the store's); a NULL tensor propagates silently. */
    ck_assert_int_eq(sg_params_add(&pl, NULL, d->kernel), -1);
    ck_assert_str_eq(sg_ctx_error(ctx), "sg_params_add: name is NULL");
    sg_ctx_clear_error(ctx);
    ck_assert_int_eq(sg_params_add(&pl, "x", NULL), -1);
    ck_assert_ptr_null(sg_ctx_error(ctx));
    ck_assert_int_eq(sg_params_add(NULL, "x", d->kernel), -1);
    ck_assert_str_eq(sg_store_error(store), "sg_params_add: list is NULL");
    sg_store_clear_error(store);
    ck_assert_int_eq(sg_params_from_store(&pl, NULL), -1);
    ck_assert_str_eq(sg_ctx_error(ctx), "sg_params_from_store: store is NULL");
    sg_ctx_clear_error(ctx);
    ck_assert_int_eq(sg_params_from_store(NULL, store), -1);
    ck_assert_str_eq(sg_store_error(store), "sg_params_from_store: list is NULL");
    sg_store_clear_error(store);
    ck_assert_int_eq(pl.n, 13);

    /* Clear, then reuse the list. A gates layer named "lstm" (in a store of its own: this
     * one has a layer "lstm") lists lstm.W_i ... */
    sg_params_clear(&pl);
    ck_assert_int_eq(pl.n, 0);
    ck_assert_ptr_null(pl.items);
    ck_assert_int_eq(sg_params_count(&pl), 0);
    sg_store *store2 = sg_store_new(), *store3 = sg_store_new();
    sg_lstm *g2 = new_lstm(ctx, store2, SG_LSTM_GATES, SG_F32, I, H, false, NULL);
    ck_assert_int_eq(sg_lstm_params(g2, &pl), 0);
    ck_assert_int_eq(pl.n, 4); /* no biases */
    ck_assert_ptr_eq(sg_params_find(&pl, "lstm.W_i"), g2->W[SG_GATE_I]);
    ck_assert_ptr_eq(sg_params_find(&pl, "lstm.W_f"), g2->W[SG_GATE_F]);
    ck_assert_ptr_eq(sg_params_find(&pl, "lstm.W_c"), g2->W[SG_GATE_C]);
    ck_assert_ptr_eq(sg_params_find(&pl, "lstm.W_o"), g2->W[SG_GATE_O]);
    ck_assert_ptr_null(sg_params_find(&pl, "lstm.b_i"));
    ck_assert_int_eq(sg_params_count(&pl), (I + H) * 4 * H);
    /* ... and lstm.b_i etc. with biases (a second list) */
    sg_lstm *g3 = new_lstm(ctx, store3, SG_LSTM_GATES, SG_F32, I, H, true, NULL);
    sg_param_list p3 = {0};
    ck_assert_int_eq(sg_lstm_params(g3, &p3), 0);
    ck_assert_int_eq(p3.n, 8);
    ck_assert_ptr_eq(sg_params_find(&p3, "lstm.b_i"), g3->b[SG_GATE_I]);
    ck_assert_ptr_eq(sg_params_find(&p3, "lstm.b_o"), g3->b[SG_GATE_O]);
    ck_assert_int_eq(sg_params_count(&p3), (I + H + 1) * 4 * H);
    sg_params_clear(&p3);
    sg_params_clear(&pl);
    sg_params_clear(&pl); /* twice is fine */
    sg_params_clear(NULL);

    ck_assert_ptr_null(sg_ctx_error(ctx));
    sg_lstm_free(fused);
    sg_lstm_free(gates);
    sg_lstm_free(g2);
    sg_lstm_free(g3);
    sg_dense_free(d);
    sg_store_free(store3);
    sg_store_free(store2);
    sg_store_free(store);
    sg_ctx_free(ctx);
}
END_TEST

/* The longest layer name sg_lstm_new accepts (31 characters) still gives complete,
 * distinct parameter names: the list entries hold 63 characters, so
 * "<31 characters>.recurrent_kernel" (48) fits, and a checkpoint keyed by these names
 * must not see a truncated "...recurrent_kerne". */
START_TEST(test_param_names_long_layer_name) {
    sg_ctx *ctx = sg_ctx_new(0);
    /* Two layers of the same name: two stores. */
    sg_store *store = sg_store_new(), *gstore = sg_store_new();
    char name[32], want[128];
    memset(name, 'n', sizeof name - 1);
    name[sizeof name - 1] = 0;
    sg_lstm *l = new_lstm(ctx, store, SG_LSTM_FUSED, SG_F32, 3, 2, true, name);
    sg_lstm *g = new_lstm(ctx, gstore, SG_LSTM_GATES, SG_F32, 3, 2, true, name);
    ck_assert_str_eq(l->name, name);
    sg_param_list pl = {0}, pg = {0};
    ck_assert_int_eq(sg_lstm_params(l, &pl), 0);
    ck_assert_int_eq(sg_lstm_params(g, &pg), 0);
    static const char *const suffixes[3] = {"kernel", "recurrent_kernel", "bias"};
    for (int i = 0; i < 3; i++) {
        snprintf(want, sizeof want, "%s.%s", name, suffixes[i]);
        ck_assert_str_eq(pl.items[i].name, want);
    }
    snprintf(want, sizeof want, "%s.b_o", name);
    ck_assert_ptr_eq(sg_params_find(&pg, want), g->b[SG_GATE_O]);
    sg_params_clear(&pl);
    sg_params_clear(&pg);
    sg_lstm_free(l);
    sg_lstm_free(g);
    /* One character more is refused with a message. */
    char longer[40];
    memset(longer, 'n', 32);
    longer[32] = 0;
    sg_lstm_options o = sg_lstm_defaults(3, 2);
    ck_assert_ptr_null(sg_lstm_new(ctx, store, SG_LSTM_FUSED, &o, longer, NULL));
    snprintf(want, sizeof want,
             "sg_lstm_new: layer name \"%s\" must be 1 to 31 characters without a '.'", longer);
    ck_assert_str_eq(sg_ctx_error(ctx), want);
    sg_store_free(gstore);
    sg_store_free(store);
    sg_ctx_free(ctx);
}
END_TEST

/* Layer names in a store: NULL gives Keras' "lstm", "lstm_1", ... ("dense", "dense_1", ...);
 * a name the store has, or one with a '.', is refused and leaves the store as it was; a
 * layer made after a refused one is registered and works. */
START_TEST(test_store_names) {
    sg_ctx *ctx = sg_ctx_new(0);
    sg_store *store = sg_store_new();
    ck_assert_ptr_nonnull(store);
    sg_lstm_options o = sg_lstm_defaults(3, 2);
    sg_lstm *a = sg_lstm_new(ctx, store, SG_LSTM_FUSED, &o, NULL, NULL);
    sg_lstm *b = sg_lstm_new(ctx, store, SG_LSTM_GATES, &o, NULL, NULL);
    ck_assert_msg(a && b, "sg_lstm_new: %s", sg_ctx_error(ctx));
    ck_assert_str_eq(a->name, "lstm");
    ck_assert_str_eq(b->name, "lstm_1");
    ck_assert_ptr_eq(sg_store_find(store, "lstm.kernel"), a->kernel);
    ck_assert_ptr_eq(sg_store_find(store, "lstm_1.W_i"), b->W[SG_GATE_I]);
    /* a third default-named layer: "lstm_2", fused so that it has a kernel */
    sg_lstm *c = sg_lstm_new(ctx, store, SG_LSTM_FUSED, &o, NULL, NULL);
    ck_assert_msg(c != NULL, "sg_lstm_new: %s", sg_ctx_error(ctx));
    ck_assert_str_eq(c->name, "lstm_2");
    ck_assert_ptr_eq(sg_store_find(store, "lstm_2.kernel"), c->kernel);
    ck_assert_ptr_null(sg_store_find(store, "lstm_1.kernel")); /* lstm_1 is a gates layer */
    int n = sg_store_size(store);
    ck_assert_int_eq(n, 3 + 8 + 3);

    /* An explicit name the store already has. */
    ck_assert_ptr_null(sg_lstm_new(ctx, store, SG_LSTM_FUSED, &o, "lstm", NULL));
    ck_assert_str_eq(sg_ctx_error(ctx),
                     "sg_lstm_new: the store already has a layer named \"lstm\"");
    sg_ctx_clear_error(ctx);
    ck_assert_ptr_null(sg_lstm_new(ctx, store, SG_LSTM_GATES, &o, "lstm_1", NULL));
    ck_assert_str_eq(sg_ctx_error(ctx),
                     "sg_lstm_new: the store already has a layer named \"lstm_1\"");
    sg_ctx_clear_error(ctx);
    ck_assert_int_eq(sg_store_size(store), n);

    /* Dense layers: "dense", "dense_1"; a taken name is refused the same way. */
    sg_dense *d0 = sg_dense_new(ctx, store, SG_F32, 2, 1, true, SG_ACT_LINEAR, NULL, NULL);
    sg_dense *d1 = sg_dense_new(ctx, store, SG_F32, 2, 1, false, SG_ACT_LINEAR, NULL, NULL);
    ck_assert_msg(d0 && d1, "sg_dense_new: %s", sg_ctx_error(ctx));
    ck_assert_str_eq(d0->name, "dense");
    ck_assert_str_eq(d1->name, "dense_1");
    ck_assert_ptr_eq(sg_store_find(store, "dense.kernel"), d0->kernel);
    ck_assert_ptr_eq(sg_store_find(store, "dense.bias"), d0->bias);
    ck_assert_ptr_eq(sg_store_find(store, "dense_1.kernel"), d1->kernel);
    ck_assert_ptr_null(sg_store_find(store, "dense_1.bias"));
    n = sg_store_size(store);
    ck_assert_int_eq(n, 3 + 8 + 3 + 2 + 1);
    ck_assert_ptr_null(sg_dense_new(ctx, store, SG_F32, 2, 1, true, SG_ACT_LINEAR, "dense", NULL));
    ck_assert_str_eq(sg_ctx_error(ctx),
                     "sg_dense_new: the store already has a layer named \"dense\"");
    sg_ctx_clear_error(ctx);
    /* A layer's name is taken whatever the other layer's kind. */
    ck_assert_ptr_null(sg_dense_new(ctx, store, SG_F32, 2, 1, true, SG_ACT_LINEAR, "lstm", NULL));
    ck_assert_str_eq(sg_ctx_error(ctx),
                     "sg_dense_new: the store already has a layer named \"lstm\"");
    sg_ctx_clear_error(ctx);

    /* Names with a '.', and empty ones, are refused. */
    ck_assert_ptr_null(sg_lstm_new(ctx, store, SG_LSTM_FUSED, &o, "enc.l0", NULL));
    ck_assert_str_eq(sg_ctx_error(ctx),
                     "sg_lstm_new: layer name \"enc.l0\" must be 1 to 31 characters without a '.'");
    sg_ctx_clear_error(ctx);
    ck_assert_ptr_null(sg_dense_new(ctx, store, SG_F32, 2, 1, true, SG_ACT_LINEAR, "head.", NULL));
    ck_assert_str_eq(sg_ctx_error(ctx),
                     "sg_dense_new: layer name \"head.\" must be 1 to 31 characters without a '.'");
    sg_ctx_clear_error(ctx);
    ck_assert_ptr_null(sg_lstm_new(ctx, store, SG_LSTM_FUSED, &o, "", NULL));
    ck_assert_str_eq(sg_ctx_error(ctx),
                     "sg_lstm_new: layer name \"\" must be 1 to 31 characters without a '.'");
    sg_ctx_clear_error(ctx);
    /* Bad options, and a dtype other than the store's, leave the store as it was too. */
    sg_lstm_options bad = sg_lstm_defaults(0, 2);
    ck_assert_ptr_null(sg_lstm_new(ctx, store, SG_LSTM_FUSED, &bad, NULL, NULL));
    ck_assert_ptr_nonnull(sg_ctx_error(ctx));
    sg_ctx_clear_error(ctx);
    sg_lstm_options o64 = o;
    o64.dtype = SG_F64;
    ck_assert_ptr_null(sg_lstm_new(ctx, store, SG_LSTM_GATES, &o64, NULL, NULL));
    ck_assert_ptr_nonnull(sg_ctx_error(ctx));
    sg_ctx_clear_error(ctx);
    ck_assert_int_eq(sg_store_size(store), n);

    /* After the refusals: a new layer takes the next default name and works. */
    sg_lstm *e = sg_lstm_new(ctx, store, SG_LSTM_FUSED, &o, NULL, NULL);
    ck_assert_msg(e != NULL, "sg_lstm_new: %s", sg_ctx_error(ctx));
    ck_assert_str_eq(e->name, "lstm_3");
    ck_assert_int_eq(sg_store_size(store), n + 3);
    ck_assert_ptr_eq(sg_store_find(store, "lstm_3.recurrent_kernel"), e->recurrent_kernel);
    sg_lstm_output out;
    ck_assert_int_eq(sg_lstm_forward(ctx, e, sg_rand_normal(ctx, SG_F32, SG_SHAPE(2, 4, 3), 0, 1),
                                     NULL, NULL, &out),
                     0);
    ck_assert_int_eq(sg_backward(ctx, sg_sum(ctx, sg_dense_forward(ctx, d0, out.y)), NULL), 0);
    ck_assert_double_gt(max_abs(e->kernel->grad), 0);
    ck_assert_double_gt(max_abs(d0->kernel->grad), 0);
    ck_assert_double_eq(max_abs(a->kernel->grad), 0); /* not used */
    ck_assert_ptr_null(sg_ctx_error(ctx));

    sg_lstm_free(a);
    sg_lstm_free(b);
    sg_lstm_free(c);
    sg_lstm_free(e);
    sg_dense_free(d0);
    sg_dense_free(d1);
    sg_store_free(store);
    sg_ctx_free(ctx);
}
END_TEST

/* sg_params_zero_grad zeros exactly the listed parameters' gradients. */
START_TEST(test_params_zero_grad) {
    sg_ctx *ctx = sg_ctx_new(0);
    sg_store *store = sg_store_new();
    sg_lstm *l = new_lstm(ctx, store, SG_LSTM_FUSED, SG_F64, 3, 2, true, NULL);
    sg_dense *d = sg_dense_new(ctx, store, SG_F64, 2, 1, true, SG_ACT_LINEAR, NULL, NULL);
    ck_assert_ptr_nonnull(d);
    sg_lstm_output out;
    ck_assert_int_eq(sg_lstm_forward(ctx, l, sg_rand_normal(ctx, SG_F64, SG_SHAPE(2, 3, 3), 0, 1),
                                     NULL, NULL, &out),
                     0);
    sg_tensor *loss = sg_sum(ctx, sg_dense_forward(ctx, d, out.y));
    ck_assert_int_eq(sg_backward(ctx, loss, NULL), 0);
    sg_param_list pl = {0};
    ck_assert_int_eq(sg_lstm_params(l, &pl), 0);
    for (int i = 0; i < pl.n; i++)
        ck_assert_double_gt(max_abs(pl.items[i].tensor->grad), 0);
    ck_assert_double_gt(max_abs(d->kernel->grad), 0);
    /* d.bias's gradient is the number of rows summed: 2 */
    ck_assert_double_eq_tol(sg_get_flat(d->bias->grad, 0), 2.0, 1e-15);
    sg_params_zero_grad(&pl);
    for (int i = 0; i < pl.n; i++)
        ck_assert_double_eq(max_abs(pl.items[i].tensor->grad), 0);
    ck_assert_double_gt(max_abs(d->kernel->grad), 0); /* not in the list: untouched */
    ck_assert_int_eq(sg_dense_params(d, &pl), 0);
    sg_params_zero_grad(&pl);
    ck_assert_double_eq(max_abs(d->kernel->grad), 0);
    ck_assert_double_eq(max_abs(d->bias->grad), 0);
    sg_params_zero_grad(NULL);
    ck_assert_ptr_null(sg_ctx_error(ctx));
    sg_params_clear(&pl);
    sg_lstm_free(l);
    sg_dense_free(d);
    sg_store_free(store);
    sg_ctx_free(ctx);
}
END_TEST

/* ---- converters ---------------------------------------------------------------------------- */

/* The layer's Keras-layout weights as float64 arena tensors. */
static void keras_of(sg_ctx *ctx, const sg_lstm *l, sg_tensor **k, sg_tensor **rk, sg_tensor **b) {
    int64_t I = l->opt.input_size, H = l->opt.units;
    *k = sg_zeros(ctx, SG_F64, SG_SHAPE(I, 4 * H));
    *rk = sg_zeros(ctx, SG_F64, SG_SHAPE(H, 4 * H));
    *b = sg_zeros(ctx, SG_F64, SG_SHAPE(4 * H));
    ck_assert_msg(sg_lstm_get_keras(ctx, l, false, *k, *rk, *b) == 0, "%s", sg_ctx_error(ctx));
}

static void expect_err(sg_ctx *ctx, int rc, const char *msg) {
    ck_assert_int_eq(rc, -1);
    ck_assert_msg(sg_ctx_error(ctx) != NULL, "no error for: %s", msg);
    ck_assert_str_eq(sg_ctx_error(ctx), msg);
    sg_ctx_clear_error(ctx);
}

/* _i = impl. Every converter's shape checks, a bias for a layer without one, and a failed
 * call leaving the weights as they were. */
START_TEST(test_converter_errors) {
    sg_lstm_impl impl = _i ? SG_LSTM_GATES : SG_LSTM_FUSED;
    sg_ctx *ctx = sg_ctx_new(0);
    sg_store *store = sg_store_new();
    int64_t I = 5, H = 4;
    sg_lstm *l = new_lstm(ctx, store, impl, SG_F64, I, H, true, NULL);
    sg_lstm *nb = new_lstm(ctx, store, impl, SG_F64, I, H, false, "nobias");
    sg_tensor *k0, *rk0, *b0;
    keras_of(ctx, l, &k0, &rk0, &b0);
    sg_tensor *k = sg_ones(ctx, SG_F64, SG_SHAPE(I, 4 * H));
    sg_tensor *rk = sg_ones(ctx, SG_F64, SG_SHAPE(H, 4 * H));
    sg_tensor *b = sg_ones(ctx, SG_F64, SG_SHAPE(4 * H));

    expect_err(ctx, sg_lstm_set_keras(ctx, l, sg_ones(ctx, SG_F64, SG_SHAPE(I, 3 * H)), rk, b),
               "sg_lstm_set_keras (lstm): kernel has shape (5, 12), expected (5, 16)");
    expect_err(ctx, sg_lstm_set_keras(ctx, l, sg_ones(ctx, SG_F64, SG_SHAPE(4 * H, I)), rk, b),
               "sg_lstm_set_keras (lstm): kernel has shape (16, 5), expected (5, 16)");
    expect_err(ctx, sg_lstm_set_keras(ctx, l, k, sg_ones(ctx, SG_F64, SG_SHAPE(I, 4 * H)), b),
               "sg_lstm_set_keras (lstm): recurrent_kernel has shape (5, 16), expected (4, 16)");
    expect_err(ctx, sg_lstm_set_keras(ctx, l, k, rk, sg_ones(ctx, SG_F64, SG_SHAPE(1, 4 * H))),
               "sg_lstm_set_keras (lstm): bias has shape (1, 16), expected (16,)");
    expect_err(ctx, sg_lstm_set_keras(ctx, l, k, rk, sg_ones(ctx, SG_F64, SG_SHAPE(4 * H + 1))),
               "sg_lstm_set_keras (lstm): bias has shape (17,), expected (16,)");
    expect_err(ctx, sg_lstm_set_keras(ctx, nb, k, rk, b),
               "sg_lstm_set_keras (nobias): a bias was given but the layer has use_bias = false");
    expect_err(ctx, sg_lstm_set_keras(ctx, NULL, k, rk, b), "sg_lstm_set_keras: layer is NULL");
    /* NULL tensors propagate silently */
    ck_assert_int_eq(sg_lstm_set_keras(ctx, l, NULL, rk, b), -1);
    ck_assert_int_eq(sg_lstm_set_keras(ctx, l, k, NULL, b), -1);
    ck_assert_ptr_null(sg_ctx_error(ctx));

    expect_err(ctx, sg_lstm_get_keras(ctx, l, false, k, sg_ones(ctx, SG_F64, SG_SHAPE(H, H)), b),
               "sg_lstm_get_keras (lstm): recurrent_kernel has shape (4, 4), expected (4, 16)");
    expect_err(ctx, sg_lstm_get_keras(ctx, l, true, sg_ones(ctx, SG_F64, SG_SHAPE(4 * H)), rk, b),
               "sg_lstm_get_keras (lstm): kernel has shape (16,), expected (5, 16)");

    sg_tensor *wih = sg_ones(ctx, SG_F64, SG_SHAPE(4 * H, I));
    sg_tensor *whh = sg_ones(ctx, SG_F64, SG_SHAPE(4 * H, H));
    expect_err(ctx, sg_lstm_set_torch(ctx, l, k, whh, b, b),
               "sg_lstm_set_torch (lstm): weight_ih has shape (5, 16), expected (16, 5)");
    expect_err(ctx, sg_lstm_set_torch(ctx, l, wih, rk, b, b),
               "sg_lstm_set_torch (lstm): weight_hh has shape (4, 16), expected (16, 4)");
    expect_err(ctx, sg_lstm_set_torch(ctx, l, wih, whh, sg_ones(ctx, SG_F64, SG_SHAPE(H)), b),
               "sg_lstm_set_torch (lstm): bias_ih has shape (4,), expected (16,)");
    expect_err(ctx, sg_lstm_set_torch(ctx, l, wih, whh, b, sg_ones(ctx, SG_F64, SG_SHAPE(4, H))),
               "sg_lstm_set_torch (lstm): bias_hh has shape (4, 4), expected (16,)");
    expect_err(ctx, sg_lstm_set_torch(ctx, nb, wih, whh, NULL, b),
               "sg_lstm_set_torch (nobias): a bias was given but the layer has use_bias = false");
    expect_err(ctx, sg_lstm_set_torch(ctx, NULL, wih, whh, NULL, NULL),
               "sg_lstm_set_torch: layer is NULL");

    /* None of the failed calls changed the weights. */
    sg_tensor *k1, *rk1, *b1;
    keras_of(ctx, l, &k1, &rk1, &b1);
    expect_close(ctx, "kernel after failed calls", k1, k0, 0, 0);
    expect_close(ctx, "recurrent_kernel after failed calls", rk1, rk0, 0, 0);
    expect_close(ctx, "bias after failed calls", b1, b0, 0, 0);

    /* sg_lstm_copy: sizes must match; a bias cannot go into a layer without one. */
    sg_lstm *other = new_lstm(ctx, store, impl, SG_F64, 3, H, true, "small");
    expect_err(ctx, sg_lstm_copy(ctx, other, l),
               "sg_lstm_copy: sizes differ: (lstm) has I=5 H=4, (small) has I=3 H=4");
    expect_err(ctx, sg_lstm_copy(ctx, NULL, l), "sg_lstm_copy: layer is NULL");
    ck_assert_int_eq(sg_lstm_copy(ctx, nb, l), -1);
    ck_assert_ptr_nonnull(
        strstr(sg_ctx_error(ctx), "a bias was given but the layer has use_bias = false"));
    sg_ctx_clear_error(ctx);
    /* without bias -> with bias: the bias becomes zero */
    ck_assert_int_eq(sg_lstm_copy(ctx, l, nb), 0);
    keras_of(ctx, l, &k1, &rk1, &b1);
    ck_assert_double_eq(max_abs(b1), 0.0);
    sg_tensor *kn, *rkn, *bn;
    keras_of(ctx, nb, &kn, &rkn, &bn);
    expect_close(ctx, "copied kernel", k1, kn, 0, 0);
    expect_close(ctx, "copied recurrent_kernel", rk1, rkn, 0, 0);

    ck_assert_ptr_null(sg_ctx_error(ctx));
    sg_lstm_free(l);
    sg_lstm_free(nb);
    sg_lstm_free(other);
    sg_store_free(store);
    sg_ctx_free(ctx);
}
END_TEST

/* _i = impl * 2 + dtype. PyTorch layout in: weight_ih = kernel^T, weight_hh =
 * recurrent_kernel^T, bias = bias_ih + bias_hh where a missing bias counts as zero. */
START_TEST(test_set_torch) {
    sg_lstm_impl impl = _i / 2 ? SG_LSTM_GATES : SG_LSTM_FUSED;
    sg_dtype dt = _i % 2 ? SG_F32 : SG_F64;
    double rt = dt == SG_F64 ? 0 : 6e-8;
    sg_ctx *ctx = sg_ctx_new(0);
    sg_store *store = sg_store_new();
    int64_t I = 3, H = 2;
    sg_lstm *l = new_lstm(ctx, store, impl, dt, I, H, true, NULL);
    sg_tensor *wih = sg_rand_uniform(ctx, SG_F64, SG_SHAPE(4 * H, I), -1, 1);
    sg_tensor *whh = sg_rand_uniform(ctx, SG_F64, SG_SHAPE(4 * H, H), -1, 1);
    sg_tensor *bih = sg_rand_uniform(ctx, SG_F64, SG_SHAPE(4 * H), -1, 1);
    sg_tensor *bhh = sg_rand_uniform(ctx, SG_F64, SG_SHAPE(4 * H), -1, 1);
    sg_tensor *sum = sg_add(ctx, bih, bhh);
    sg_tensor *k, *rk, *b;
    struct {
        const char *what;
        sg_tensor *bi, *bh, *want;
    } cases[4] = {{"both biases", bih, bhh, sum},
                  {"bias_ih only", bih, NULL, bih},
                  {"bias_hh only", NULL, bhh, bhh},
                  {"no bias", NULL, NULL, sg_zeros(ctx, SG_F64, SG_SHAPE(4 * H))}};
    for (int c = 0; c < 4; c++) {
        ck_assert_msg(sg_lstm_set_torch(ctx, l, wih, whh, cases[c].bi, cases[c].bh) == 0, "%s: %s",
                      cases[c].what, sg_ctx_error(ctx));
        keras_of(ctx, l, &k, &rk, &b);
        expect_close(ctx, "kernel = weight_ih^T", k, sg_transpose(ctx, wih, 0, 1), rt, 0);
        expect_close(ctx, "recurrent_kernel = weight_hh^T", rk, sg_transpose(ctx, whh, 0, 1), rt,
                     0);
        expect_close(ctx, cases[c].what, b, cases[c].want, rt, 1e-16);
    }
    /* Strided sources: weight_ih given as the transposed view of a kernel-shaped tensor
     * and a bias that is every other element of a longer vector. */
    sg_tensor *kin = sg_rand_uniform(ctx, SG_F64, SG_SHAPE(I, 4 * H), -1, 1);
    sg_tensor *wide = sg_rand_uniform(ctx, SG_F64, SG_SHAPE(4 * H, 2), -1, 1);
    sg_tensor *bstr = sg_select(ctx, wide, 1, 1); /* (4H,) with stride 2 */
    ck_assert_int_eq(bstr->stride[0], 2);
    ck_assert_int_eq(sg_lstm_set_torch(ctx, l, sg_transpose(ctx, kin, 0, 1), whh, NULL, bstr), 0);
    keras_of(ctx, l, &k, &rk, &b);
    expect_close(ctx, "kernel from a transposed weight_ih", k, kin, rt, 0);
    expect_close(ctx, "bias from a strided bias_hh", b, bstr, rt, 0);
    /* Keras layout with strided sources too. */
    sg_tensor *rkT = sg_rand_uniform(ctx, SG_F64, SG_SHAPE(4 * H, H), -1, 1);
    ck_assert_int_eq(sg_lstm_set_keras(ctx, l, kin, sg_transpose(ctx, rkT, 0, 1), bstr), 0);
    keras_of(ctx, l, &k, &rk, &b);
    expect_close(ctx, "recurrent_kernel from a transposed view", rk, sg_transpose(ctx, rkT, 0, 1),
                 rt, 0);
    /* No tape entries were made by any of this. */
    ck_assert_int_eq(sg_tape_size(ctx), 0);
    ck_assert_ptr_null(sg_ctx_error(ctx));
    sg_lstm_free(l);
    sg_store_free(store);
    sg_ctx_free(ctx);
}
END_TEST

/* sg_lstm_copy between dtypes (float64 -> float32 rounds once) and its gradients view:
 * sg_lstm_get_keras(grads = true) of a layer never run is all zeros. */
START_TEST(test_copy_dtypes) {
    sg_ctx *ctx = sg_ctx_new(0);
    /* A store holds one dtype: one store per layer. */
    sg_store *store = sg_store_new(), *store32 = sg_store_new();
    sg_lstm *a = new_lstm(ctx, store, SG_LSTM_FUSED, SG_F64, 3, 2, true, "a");
    sg_lstm *b = new_lstm(ctx, store32, SG_LSTM_GATES, SG_F32, 3, 2, true, "b");
    ck_assert_int_eq(
        sg_init_tensor(ctx, a->bias, (sg_init){SG_INIT_RANDOM_UNIFORM, -1, 1}, sg_ctx_rng(ctx)), 0);
    ck_assert_int_eq(sg_lstm_copy(ctx, b, a), 0);
    sg_tensor *ka, *rka, *ba, *kb, *rkb, *bb;
    keras_of(ctx, a, &ka, &rka, &ba);
    keras_of(ctx, b, &kb, &rkb, &bb);
    expect_close(ctx, "f64 -> f32 kernel", kb, ka, 6e-8, 0);
    expect_close(ctx, "f64 -> f32 recurrent_kernel", rkb, rka, 6e-8, 0);
    expect_close(ctx, "f64 -> f32 bias", bb, ba, 6e-8, 0);
    ck_assert_double_gt(max_abs(bb), 0.1);
    sg_tensor *gk = sg_full(ctx, SG_F64, SG_SHAPE(3, 8), 5.0);
    sg_tensor *grk = sg_full(ctx, SG_F64, SG_SHAPE(2, 8), 5.0);
    sg_tensor *gb = sg_full(ctx, SG_F64, SG_SHAPE(8), 5.0);
    ck_assert_int_eq(sg_lstm_get_keras(ctx, b, true, gk, grk, gb), 0);
    ck_assert_double_eq(max_abs(gk) + max_abs(grk) + max_abs(gb), 0.0);
    ck_assert_ptr_null(sg_ctx_error(ctx));
    sg_lstm_free(a);
    sg_lstm_free(b);
    sg_store_free(store32);
    sg_store_free(store);
    sg_ctx_free(ctx);
}
END_TEST

int main(void) {
    const ck_tcase tcases[] = {
        {"layers",
         600,
         {{test_dense_forward, 20},
          {test_dense_init, 1},
          {test_dense_gradcheck_f64, 16},
          {test_dense_gradcheck_f32, 4},
          {test_dense_errors, 1},
          {test_param_names, 1},
          {test_param_names_long_layer_name, 1},
          {test_store_names, 1},
          {test_params_zero_grad, 1},
          {test_converter_errors, 2},
          {test_set_torch, 4},
          {test_copy_dtypes, 1}}},
    };
    return CK_RUN("layers", tcases, NULL, NULL);
}
