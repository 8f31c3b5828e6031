/* Tests of examples/lstm_run: the built binary is run on safetensors files made from the
 * PyTorch fixtures (tests/fixtures/lstm.h, configs lstm_a..lstm_d): both implementations,
 * both dtypes (float64 to 1e-10 relative, float32 to 1e-5), Keras and PyTorch weight
 * names, with and without dy; the Keras hard_sigmoid golden numbers through
 * --recurrent-activation; and the exit status and message for bad options (2) and for
 * missing tensors, wrong shapes, corrupt files, NaN or Inf values and paths that are not
 * regular files (1).
 *
 * The binary is $SG_LSTM_RUN if set, else ../examples/lstm_run next to this test's own
 * directory (the build tree's layout). */
#define _GNU_SOURCE /* mkdtemp */
#include <check.h>
#include <dirent.h>
#include <fcntl.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "cksuite.h"
#include "fixtures/lstm.h"
#include "io.h"
#include "progtest.h"

static sg_ctx *ctx;

static void setup(void) {
    ctx = sg_ctx_new(0);
    snprintf(tmpdir, sizeof tmpdir, "/tmp/sg_lstm_run_XXXXXX");
    ck_assert_ptr_nonnull(mkdtemp(tmpdir));
}

static void teardown(void) {
    rm_tree(tmpdir);
    sg_ctx_free(ctx);
    ctx = NULL;
}

/* ---- writing inputs ------------------------------------------------------------------ */

/* A tensor of dtype dt holding `data` (doubles, row-major). */
static sg_tensor *from(sg_dtype dt, int ndim, const int64_t *shape, const double *data) {
    sg_tensor *t = sg_from_data(ctx, SG_F64, ndim, shape, data);
    ck_assert_ptr_nonnull(t);
    if (dt == SG_F64)
        return t;
    sg_tensor *f = sg_zeros(ctx, SG_F32, ndim, shape);
    for (int64_t i = 0; i < sg_numel(t); i++)
        sg_set_flat(f, i, sg_get_flat(t, i));
    return f;
}

typedef struct {
    sg_param_list list;
    sg_param_entry items[16];
} file_list;

static void add(file_list *l, const char *name, sg_tensor *t) {
    ck_assert_int_lt(l->list.n, 16);
    l->list.items = l->items;
    l->list.cap = 16;
    snprintf(l->items[l->list.n].name, sizeof l->items[0].name, "%s", name);
    l->items[l->list.n++].tensor = t;
}

static void save(const char *path, const file_list *l) {
    ck_assert_msg(sg_safetensors_save(ctx, path, &l->list, NULL) == 0, "%s", sg_ctx_error(ctx));
}

/* One fixture configuration; gradients/biases NULL where the config has none. */
typedef struct {
    const char *name;
    int64_t B, T, I, H;
    const double *x, *h0, *c0, *kernel, *recurrent_kernel, *bias, *dy;
    const double *y, *h_T, *c_T, *dx, *dkernel, *drecurrent_kernel, *dbias, *dh0, *dc0;
    const double *weight_ih, *weight_hh, *bias_ih, *bias_hh;
    int has_initial_state;
} config;

#define COMMON(c)                                                                                  \
    .name = #c, .B = c##_B, .T = c##_T, .I = c##_I, .H = c##_H, .x = c##_x, .h0 = c##_h0,          \
    .c0 = c##_c0, .kernel = c##_kernel, .recurrent_kernel = c##_recurrent_kernel, .dy = c##_dy,    \
    .y = c##_y, .h_T = c##_h_T, .c_T = c##_c_T, .dx = c##_dx, .dkernel = c##_dkernel,              \
    .drecurrent_kernel = c##_drecurrent_kernel, .weight_ih = c##_weight_ih_l0,                     \
    .weight_hh = c##_weight_hh_l0, .has_initial_state = c##_has_initial_state
#define BIAS(c)                                                                                    \
    .bias = c##_bias, .dbias = c##_dbias, .bias_ih = c##_bias_ih_l0, .bias_hh = c##_bias_hh_l0
#define STATE(c) .dh0 = c##_dh0, .dc0 = c##_dc0

static const config CONFIGS[] = {
    {COMMON(lstm_a), BIAS(lstm_a), STATE(lstm_a)},
    {COMMON(lstm_b)},
    {COMMON(lstm_c), BIAS(lstm_c)},
    {COMMON(lstm_d), BIAS(lstm_d), STATE(lstm_d)},
};
#define NCONFIGS ((int)(sizeof CONFIGS / sizeof CONFIGS[0]))

/* Write the weights (dtype wdt, Keras or PyTorch names) and the input (dtype dt; dy
 * optional) of config c to tmpdir/w.safetensors and tmpdir/in.safetensors. */
static void write_config(const config *c, sg_dtype dt, sg_dtype wdt, bool torch, bool with_dy) {
    const int64_t I = c->I, H = c->H;
    file_list w = {0}, in = {0};
    if (torch) {
        add(&w, "weight_ih_l0", from(wdt, 2, (int64_t[]){4 * H, I}, c->weight_ih));
        add(&w, "weight_hh_l0", from(wdt, 2, (int64_t[]){4 * H, H}, c->weight_hh));
        if (c->bias_ih) {
            add(&w, "bias_ih_l0", from(wdt, 1, (int64_t[]){4 * H}, c->bias_ih));
            add(&w, "bias_hh_l0", from(wdt, 1, (int64_t[]){4 * H}, c->bias_hh));
        }
    } else {
        add(&w, "kernel", from(wdt, 2, (int64_t[]){I, 4 * H}, c->kernel));
        add(&w, "recurrent_kernel", from(wdt, 2, (int64_t[]){H, 4 * H}, c->recurrent_kernel));
        if (c->bias)
            add(&w, "bias", from(wdt, 1, (int64_t[]){4 * H}, c->bias));
    }
    add(&in, "x", from(dt, 3, (int64_t[]){c->B, c->T, I}, c->x));
    if (c->has_initial_state) {
        add(&in, "h0", from(dt, 2, (int64_t[]){c->B, H}, c->h0));
        add(&in, "c0", from(dt, 2, (int64_t[]){c->B, H}, c->c0));
    }
    if (with_dy)
        add(&in, "dy", from(dt, 3, (int64_t[]){c->B, c->T, H}, c->dy));
    save(tp("w.safetensors"), &w);
    save(tp("in.safetensors"), &in);
}

/* OUT's tensor `name` has dtype dt, the given shape, and matches `want`. */
static void ck_out(const sg_st_file *f, const char *name, sg_dtype dt, int ndim,
                   const int64_t *shape, const double *want, const char *what) {
    ck_assert_msg(sg_st_has(f, name), "%s: no %s in the output", what, name);
    sg_tensor *t = sg_st_get(f, name);
    ck_assert_int_eq(t->dtype, dt);
    ck_assert_int_eq(t->ndim, ndim);
    for (int d = 0; d < ndim; d++)
        ck_assert_int_eq(t->shape[d], shape[d]);
    sg_tensor *ref = sg_from_data(ctx, SG_F64, ndim, shape, want);
    /* float32 computes in float32 from float32-rounded inputs: 1e-5 relative */
    double rtol = dt == SG_F64 ? 1e-10 : 1e-5, atol = dt == SG_F64 ? 1e-13 : 1e-6;
    sg_compare_result r;
    int rc = sg_compare(ctx, t, ref, rtol, atol, &r);
    ck_assert_msg(rc == 0, "%s: %s differs: max abs %g, max rel %g at %lld (%.17g vs %.17g)", what,
                  name, r.max_abs, r.max_rel, (long long)r.worst_flat, sg_get_flat(t, r.worst_flat),
                  want[r.worst_flat]);
}

static const char *const *std_args(const char *impl) {
    static const char *a[10];
    a[0] = "--weights";
    a[1] = tp("w.safetensors");
    a[2] = "--input";
    a[3] = tp("in.safetensors");
    a[4] = "--output";
    a[5] = tp("out.safetensors");
    a[6] = "--impl";
    a[7] = impl;
    a[8] = NULL;
    return a;
}

/* Config c through every implementation and both weight layouts, in dtype dt. */
static void run_config(const config *c, sg_dtype dt) {
    const int64_t B = c->B, T = c->T, I = c->I, H = c->H;
    for (int torch = 0; torch < 2; torch++)
        for (int impl = 0; impl < 2; impl++) {
            char what[128];
            snprintf(what, sizeof what, "%s %s %s %s", c->name, sg_dtype_name(dt),
                     impl ? "gates" : "fused", torch ? "pytorch" : "keras");
            /* float64 weights converted to float32 for a float32 x */
            write_config(c, dt, SG_F64, torch, true);
            int rc = run(std_args(impl ? "gates" : "fused"));
            ck_assert_msg(rc == 0, "%s: exit %d: %s", what, rc, err_text);
            sg_st_file *f = sg_safetensors_load(ctx, tp("out.safetensors"));
            ck_assert_msg(f != NULL, "%s", sg_ctx_error(ctx));
            int n = 6 + (c->dbias != NULL) + 2 * (c->dh0 != NULL);
            ck_assert_int_eq(sg_st_count(f), n);
            ck_out(f, "y", dt, 3, (int64_t[]){B, T, H}, c->y, what);
            ck_out(f, "h", dt, 2, (int64_t[]){B, H}, c->h_T, what);
            ck_out(f, "c", dt, 2, (int64_t[]){B, H}, c->c_T, what);
            ck_out(f, "dx", dt, 3, (int64_t[]){B, T, I}, c->dx, what);
            ck_out(f, "dkernel", dt, 2, (int64_t[]){I, 4 * H}, c->dkernel, what);
            ck_out(f, "drecurrent_kernel", dt, 2, (int64_t[]){H, 4 * H}, c->drecurrent_kernel,
                   what);
            if (c->dbias)
                ck_out(f, "dbias", dt, 1, (int64_t[]){4 * H}, c->dbias, what);
            if (c->dh0) {
                ck_out(f, "dh0", dt, 2, (int64_t[]){B, H}, c->dh0, what);
                ck_out(f, "dc0", dt, 2, (int64_t[]){B, H}, c->dc0, what);
            }
            ck_assert_str_eq(sg_st_meta(f, "impl"), impl ? "gates" : "fused");
            ck_assert_str_eq(sg_st_meta(f, "weights_layout"), torch ? "pytorch" : "keras");
            sg_st_free(f);
            sg_ctx_reset(ctx);
        }
    ck_assert_msg(sg_ctx_error(ctx) == NULL, "%s", sg_ctx_error(ctx));
}

START_TEST(test_fixtures_f64) { run_config(&CONFIGS[_i], SG_F64); }
END_TEST

START_TEST(test_fixtures_f32) { run_config(&CONFIGS[_i], SG_F32); }
END_TEST

/* Without dy: only y, h, c. float32 weights with a float64 x (converted up). */
START_TEST(test_forward_only) {
    const config *c = &CONFIGS[0];
    write_config(c, SG_F64, SG_F32, false, false);
    ck_assert_int_eq(run(std_args("fused")), 0);
    sg_st_file *f = sg_safetensors_load(ctx, tp("out.safetensors"));
    ck_assert_ptr_nonnull(f);
    ck_assert_int_eq(sg_st_count(f), 3);
    ck_assert_str_eq(sg_st_name(f, 0), "c");
    ck_assert_str_eq(sg_st_name(f, 1), "h");
    ck_assert_str_eq(sg_st_name(f, 2), "y");
    /* the weights were rounded to float32: compare loosely, but in float64 */
    sg_tensor *y = sg_st_get(f, "y");
    ck_assert_int_eq(y->dtype, SG_F64);
    sg_tensor *ref = sg_from_data(ctx, SG_F64, SG_SHAPE(c->B, c->T, c->H), c->y);
    ck_assert_int_eq(sg_compare(ctx, y, ref, 1e-5, 1e-6, NULL), 0);
    ck_assert_int_ne(sg_compare(ctx, y, ref, 1e-12, 0, NULL), 0); /* really rounded */
    sg_st_free(f);
}
END_TEST

/* float32 h0, c0 and dy with a float64 x are converted up to float64 (they were copied as
 * floats into float64 storage, giving wrong states and gradients). */
START_TEST(test_mixed_input_dtypes) {
    const config *c = &CONFIGS[0]; /* h0, c0 */
    const int64_t B = c->B, T = c->T, I = c->I, H = c->H;
    write_config(c, SG_F64, SG_F64, false, true);
    file_list in = {0};
    add(&in, "x", from(SG_F64, 3, (int64_t[]){B, T, I}, c->x));
    add(&in, "h0", from(SG_F32, 2, (int64_t[]){B, H}, c->h0));
    add(&in, "c0", from(SG_F32, 2, (int64_t[]){B, H}, c->c0));
    add(&in, "dy", from(SG_F32, 3, (int64_t[]){B, T, H}, c->dy));
    save(tp("in.safetensors"), &in);
    ck_assert_msg(run(std_args("gates")) == 0, "%s", err_text);
    sg_st_file *f = sg_safetensors_load(ctx, tp("out.safetensors"));
    ck_assert_ptr_nonnull(f);
    /* the float32-rounded h0, c0, dy: compare at float32's precision, in float64 */
    const struct {
        const char *name;
        int ndim;
        int64_t shape[3];
        const double *want;
    } outs[] = {{"h", 2, {B, H}, c->h_T},
                {"c", 2, {B, H}, c->c_T},
                {"dx", 3, {B, T, I}, c->dx},
                {"dh0", 2, {B, H}, c->dh0},
                {"dc0", 2, {B, H}, c->dc0}};
    for (size_t k = 0; k < sizeof outs / sizeof *outs; k++) {
        sg_tensor *t = sg_st_get(f, outs[k].name);
        ck_assert_int_eq(t->dtype, SG_F64);
        sg_tensor *ref = sg_from_data(ctx, SG_F64, outs[k].ndim, outs[k].shape, outs[k].want);
        ck_assert_msg(sg_compare(ctx, t, ref, 1e-5, 1e-6, NULL) == 0, "%s", outs[k].name);
    }
    sg_st_free(f);
}
END_TEST

/* Keras' golden numbers: hard_sigmoid recurrent activation, all weights 1, input ones. */
START_TEST(test_keras_golden) {
    const int64_t B = keras_golden_B, T = keras_golden_T, I = keras_golden_I, H = keras_golden_H;
    file_list w = {0}, in = {0};
    add(&w, "kernel", sg_ones(ctx, SG_F64, SG_SHAPE(I, 4 * H)));
    add(&w, "recurrent_kernel", sg_ones(ctx, SG_F64, SG_SHAPE(H, 4 * H)));
    add(&w, "bias", sg_ones(ctx, SG_F64, SG_SHAPE(4 * H)));
    add(&in, "x", sg_ones(ctx, SG_F64, SG_SHAPE(B, T, I)));
    save(tp("w.safetensors"), &w);
    save(tp("in.safetensors"), &in);
    for (int impl = 0; impl < 2; impl++)
        for (int form = 0; form < 2; form++) {
            const char *const *a = std_args(impl ? "gates" : "fused");
            const char *args[12];
            int n = 0;
            for (; a[n]; n++)
                args[n] = a[n];
            if (form) {
                args[n++] = "--recurrent-activation=hard_sigmoid";
                args[n++] = "--activation=tanh";
            } else {
                args[n++] = "--recurrent-activation";
                args[n++] = "hard_sigmoid";
            }
            args[n] = NULL;
            ck_assert_msg(run(args) == 0, "%s", err_text);
            sg_st_file *f = sg_safetensors_load(ctx, tp("out.safetensors"));
            ck_out(f, "y", SG_F64, 3, (int64_t[]){B, T, H}, keras_golden_y, "golden");
            ck_out(f, "h", SG_F64, 2, (int64_t[]){B, H}, keras_golden_h_T, "golden");
            ck_out(f, "c", SG_F64, 2, (int64_t[]){B, H}, keras_golden_c_T, "golden");
            ck_assert_str_eq(sg_st_meta(f, "recurrent_activation"), "hard_sigmoid");
            sg_st_free(f);
        }
    /* the default (sigmoid) is a different function */
    ck_assert_int_eq(run(std_args("fused")), 0);
    sg_st_file *f = sg_safetensors_load(ctx, tp("out.safetensors"));
    sg_tensor *ref = sg_from_data(ctx, SG_F64, SG_SHAPE(B, H), keras_golden_c_T);
    ck_assert_int_ne(sg_compare(ctx, sg_st_get(f, "c"), ref, 1e-3, 0, NULL), 0);
    ck_assert_str_eq(sg_st_meta(f, "recurrent_activation"), "sigmoid");
    sg_st_free(f);
}
END_TEST

/* ---- exit status --------------------------------------------------------------------- */

START_TEST(test_options) {
    ck_assert_int_eq(run((const char *[]){"--help", NULL}), 0);
    ck_assert_ptr_nonnull(strstr(out_text, "usage: lstm_run --weights"));
    ck_assert_str_eq(err_text, "");

    struct {
        const char *args[8];
        const char *msg;
    } bad[] = {
        {{NULL}, "lstm_run: missing --weights\nusage: "},
        {{"--weights", "w", "--input", "i", NULL}, "lstm_run: missing --output\n"},
        {{"--weights", "w", "--output", "o", NULL}, "lstm_run: missing --input\n"},
        {{"--bogus", NULL}, "lstm_run: unknown option '--bogus'\n"},
        {{"--weightsx=1", NULL}, "lstm_run: unknown option '--weightsx=1'\n"},
        {{"--weights", NULL}, "lstm_run: option --weights needs a value\n"},
        {{"--impl", "fast", "--weights", "w", NULL},
         "lstm_run: --impl must be fused or gates, not 'fast'\n"},
        {{"--activation", "swish", NULL}, "lstm_run: unknown activation 'swish'\n"},
        {{"--recurrent-activation=", NULL}, "lstm_run: unknown activation ''\n"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        ck_assert_int_eq(run(bad[i].args), 2);
        ck_assert_msg(!strncmp(err_text, bad[i].msg, strlen(bad[i].msg)), "got: %s", err_text);
        ck_assert_ptr_nonnull(strstr(err_text, "usage: lstm_run"));
    }
}
END_TEST

/* Bad data: exit 1, one line naming the file and the problem, no output written. */
static void ck_data_error(const char *impl, const char *msg) {
    char want[1024];
    snprintf(want, sizeof want, "lstm_run: %s\n", msg);
    ck_assert_int_eq(run(std_args(impl)), 1);
    ck_assert_str_eq(err_text, want);
    ck_assert_int_eq(access(tp("out.safetensors"), F_OK), -1);
}

START_TEST(test_data_errors) {
    const config *c = &CONFIGS[0]; /* I 5, H 4, B 2, T 3 */
    char msg[1024];
    const char *w = tp("w.safetensors"), *in = tp("in.safetensors");
    char wp[512], inp[512];
    snprintf(wp, sizeof wp, "%s", w);
    snprintf(inp, sizeof inp, "%s", in);

    /* missing tensors */
    file_list l = {0};
    add(&l, "kernel", from(SG_F64, 2, (int64_t[]){5, 16}, c->kernel));
    save(wp, &l);
    write_config(c, SG_F64, SG_F64, false, true);
    save(wp, &l);
    snprintf(msg, sizeof msg, "%s: missing tensor recurrent_kernel", wp);
    ck_data_error("fused", msg);
    file_list lt = {0};
    add(&lt, "weight_hh_l0", from(SG_F64, 2, (int64_t[]){16, 4}, c->weight_hh));
    save(wp, &lt);
    snprintf(msg, sizeof msg, "%s: missing tensor weight_ih_l0", wp);
    ck_data_error("gates", msg);
    write_config(c, SG_F64, SG_F64, false, true);
    file_list li = {0};
    add(&li, "h0", from(SG_F64, 2, (int64_t[]){2, 4}, c->h0));
    save(inp, &li);
    snprintf(msg, sizeof msg, "%s: missing tensor x", inp);
    ck_data_error("fused", msg);

    /* wrong shapes */
    write_config(c, SG_F64, SG_F64, false, true);
    file_list l2 = {0};
    add(&l2, "kernel", sg_zeros(ctx, SG_F64, SG_SHAPE(6, 16)));
    add(&l2, "recurrent_kernel", sg_zeros(ctx, SG_F64, SG_SHAPE(4, 16)));
    save(wp, &l2);
    snprintf(msg, sizeof msg, "%s: kernel has shape (6, 16), expected (5, 16)", wp);
    ck_data_error("fused", msg);
    l2.items[0].tensor = sg_zeros(ctx, SG_F64, SG_SHAPE(5, 16));
    l2.items[1].tensor = sg_zeros(ctx, SG_F64, SG_SHAPE(4, 15));
    save(wp, &l2);
    snprintf(msg, sizeof msg, "%s: recurrent_kernel has shape (4, 15), expected (H, 4H)", wp);
    ck_data_error("fused", msg);
    l2.items[1].tensor = sg_zeros(ctx, SG_F64, SG_SHAPE(4, 16));
    add(&l2, "bias", sg_zeros(ctx, SG_F64, SG_SHAPE(12)));
    save(wp, &l2);
    snprintf(msg, sizeof msg, "%s: bias has shape (12,), expected (16,)", wp);
    ck_data_error("gates", msg);
    write_config(c, SG_F64, SG_F64, false, true);
    file_list l3 = {0};
    add(&l3, "x", sg_zeros(ctx, SG_F64, SG_SHAPE(2, 3, 5)));
    add(&l3, "h0", sg_zeros(ctx, SG_F64, SG_SHAPE(3, 4)));
    save(inp, &l3);
    snprintf(msg, sizeof msg, "%s: h0 has shape (3, 4), expected (2, 4)", inp);
    ck_data_error("fused", msg);
    l3.items[1].tensor = sg_zeros(ctx, SG_F64, SG_SHAPE(2, 4));
    add(&l3, "dy", sg_zeros(ctx, SG_F64, SG_SHAPE(2, 3, 5)));
    save(inp, &l3);
    snprintf(msg, sizeof msg, "%s: dy has shape (2, 3, 5), expected (2, 3, 4)", inp);
    ck_data_error("fused", msg);
    l3.list.n = 0;
    add(&l3, "x", sg_zeros(ctx, SG_F64, SG_SHAPE(6, 5)));
    save(inp, &l3);
    snprintf(msg, sizeof msg, "%s: x has shape (6, 5), expected (B, T, I)", inp);
    ck_data_error("fused", msg);

    /* unknown names (a misspelt optional tensor), and both layouts at once */
    write_config(c, SG_F64, SG_F64, false, true);
    file_list l4 = {0};
    add(&l4, "x", from(SG_F64, 3, (int64_t[]){2, 3, 5}, c->x));
    add(&l4, "hO", from(SG_F64, 2, (int64_t[]){2, 4}, c->h0));
    save(inp, &l4);
    snprintf(msg, sizeof msg, "%s: unexpected tensor hO", inp);
    ck_data_error("fused", msg);
    write_config(c, SG_F64, SG_F64, false, true);
    file_list l5 = {0};
    add(&l5, "kernel", from(SG_F64, 2, (int64_t[]){5, 16}, c->kernel));
    add(&l5, "recurrent_kernel", from(SG_F64, 2, (int64_t[]){4, 16}, c->recurrent_kernel));
    add(&l5, "bias_ih_l0", from(SG_F64, 1, (int64_t[]){16}, c->bias_ih));
    save(wp, &l5);
    snprintf(msg, sizeof msg,
             "%s: holds both Keras (kernel, ...) and PyTorch (weight_ih_l0, ...) names", wp);
    ck_data_error("fused", msg);

    /* corrupt and missing files: the loader's message */
    write_config(c, SG_F64, SG_F64, false, true);
    FILE *f = fopen(wp, "r+b");
    ck_assert_ptr_nonnull(f);
    ck_assert_int_eq(fseek(f, 5, SEEK_SET), 0);
    ck_assert_int_eq(fputc(0x7f, f), 0x7f); /* header length 0x7f0000000000 + ... */
    fclose(f);
    ck_assert_int_eq(run(std_args("fused")), 1);
    ck_assert_msg(!strncmp(err_text, "lstm_run: sg_safetensors_load: ", 31) &&
                      strstr(err_text, wp) && strstr(err_text, "is absurd (more than 100 MB)"),
                  "got: %s", err_text);
    write_config(c, SG_F64, SG_F64, false, true);
    ck_assert_int_eq(unlink(inp), 0);
    snprintf(msg, sizeof msg, "sg_safetensors_load: %s: cannot open: No such file or directory",
             inp);
    ck_data_error("fused", msg);

    /* an unwritable output */
    write_config(c, SG_F64, SG_F64, false, true);
    const char *args[] = {"--weights", wp, "--input", inp, "--output", "/nonexistent/o.st", NULL};
    ck_assert_int_eq(run(args), 1);
    ck_assert_str_eq(err_text, "lstm_run: sg_safetensors_save: /nonexistent/o.st: cannot create "
                               "a temporary file: No such file or directory\n");
    ck_assert_msg(sg_ctx_error(ctx) == NULL, "%s", sg_ctx_error(ctx));
}
END_TEST

/* Set element `index` of tensor `name` in the safetensors file at path to v (the file is
 * loaded, changed and saved again whole). */
static void poke(const char *path, const char *name, int64_t index, double v) {
    sg_st_file *f = sg_safetensors_load(ctx, path);
    ck_assert_msg(f != NULL, "%s", sg_ctx_error(ctx));
    file_list l = {0};
    for (int i = 0; i < sg_st_count(f); i++)
        add(&l, sg_st_name(f, i), sg_st_tensor(f, i));
    ck_assert_msg(sg_st_has(f, name), "%s: no %s", path, name);
    ck_assert_int_eq(sg_set_flat(sg_st_get(f, name), index, v), 0);
    save(path, &l);
    sg_st_free(f);
}

/* NaN or Inf anywhere in the weights (either layout) or the input is refused: exit 1, one
 * line naming the file, the tensor and the first bad index, and no output (they used to
 * give all-NaN outputs and exit 0). Both dtypes of the input; float32 weights too. */
START_TEST(test_nonfinite) {
    const config *c = &CONFIGS[0]; /* I 5, H 4, B 2, T 3; bias, h0, c0 */
    const double inf = 1.0 / 0.0;
    static const struct {
        const char *file, *name;
        int torch;
        int64_t index;
        int kind; /* 0 NaN, 1 Inf, 2 -Inf */
    } cases[] = {
        {"w", "kernel", 0, 3, 0},       {"w", "recurrent_kernel", 0, 63, 1},
        {"w", "bias", 0, 0, 2},         {"w", "weight_ih_l0", 1, 7, 0},
        {"w", "weight_hh_l0", 1, 1, 2}, {"w", "bias_ih_l0", 1, 15, 1},
        {"w", "bias_hh_l0", 1, 2, 0},   {"in", "x", 0, 29, 0},
        {"in", "h0", 1, 4, 1},          {"in", "c0", 0, 0, 2},
        {"in", "dy", 1, 23, 0},
    };
    static const char *const kinds[] = {"NaN", "Inf", "-Inf"};
    const double values[] = {nan(""), inf, -inf};
    for (int dt = 0; dt < 2; dt++)
        for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
            sg_dtype d = dt ? SG_F32 : SG_F64;
            write_config(c, d, d, cases[i].torch, true);
            char file[600], want[1024];
            snprintf(file, sizeof file, "%s/%s.safetensors", tmpdir, cases[i].file);
            /* a bad value after an earlier good one: the index is the first bad one */
            if (cases[i].index > 0)
                poke(file, cases[i].name, cases[i].index - 1, 0.5);
            poke(file, cases[i].name, cases[i].index, values[cases[i].kind]);
            snprintf(want, sizeof want, "lstm_run: %s: %s has %s at index %lld\n", file,
                     cases[i].name, kinds[cases[i].kind], (long long)cases[i].index);
            for (int impl = 0; impl < 2; impl++) {
                ck_assert_msg(run(std_args(impl ? "gates" : "fused")) == 1,
                              "%s %s: exit status not 1: %s", sg_dtype_name(d), cases[i].name,
                              err_text);
                ck_assert_str_eq(err_text, want);
                ck_assert_int_eq(access(tp("out.safetensors"), F_OK), -1);
            }
            /* two bad values: the first is named */
            if (cases[i].index > 0) {
                poke(file, cases[i].name, cases[i].index - 1, values[(cases[i].kind + 1) % 3]);
                snprintf(want, sizeof want, "lstm_run: %s: %s has %s at index %lld\n", file,
                         cases[i].name, kinds[(cases[i].kind + 1) % 3],
                         (long long)cases[i].index - 1);
                ck_assert_int_eq(run(std_args("fused")), 1);
                ck_assert_str_eq(err_text, want);
            }
        }
    /* finite extremes are not refused */
    write_config(c, SG_F64, SG_F64, false, true);
    poke(tp("w.safetensors"), "kernel", 0, 1e300);
    poke(tp("in.safetensors"), "x", 0, -4.9e-324);
    ck_assert_msg(run(std_args("fused")) == 0, "%s", err_text);
    ck_assert_msg(sg_ctx_error(ctx) == NULL, "%s", sg_ctx_error(ctx));
}
END_TEST

/* Paths that are not regular files are refused before anything is read (/dev/zero was
 * read until memory ran out), under a time limit so that a regression fails instead of
 * hanging; an empty path too, and an --output that is a directory or a FIFO (saving renames
 * a temporary file over the path: a device would be replaced). */
START_TEST(test_not_regular) {
    write_config(&CONFIGS[0], SG_F64, SG_F64, false, true);
    char w[600], in[600], out[600];
    snprintf(w, sizeof w, "%s", tp("w.safetensors"));
    snprintf(in, sizeof in, "%s", tp("in.safetensors"));
    snprintf(out, sizeof out, "%s", tp("out.safetensors"));
    ck_assert_int_eq(mkfifo(tp("fifo"), 0644), 0);
    const struct {
        const char *w, *in, *out, *msg, *arg;
    } cases[] = {
        {"/dev/zero", in, out, "--weights /dev/zero: not a regular file", NULL},
        {w, "/dev/zero", out, "--input /dev/zero: not a regular file", NULL},
        {tmpdir, in, out, "--weights %s: is a directory", tmpdir},
        {w, tmpdir, out, "--input %s: is a directory", tmpdir},
        {tp("fifo"), in, out, "--weights %s: not a regular file", tp("fifo")},
        {"", in, out, "--weights: empty path", NULL},
        {w, "", out, "--input: empty path", NULL},
        {w, in, "", "--output: empty path", NULL},
        {w, in, tmpdir, "--output %s: is a directory", tmpdir},
        {w, in, tp("fifo"), "--output %s: not a regular file", tp("fifo")},
    };
    run_time_limit = 30;
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        const char *args[] = {"--weights", cases[i].w,   "--input", cases[i].in,
                              "--output",  cases[i].out, NULL};
        char msg[700], want[800];
        snprintf(msg, sizeof msg, cases[i].msg, cases[i].arg);
        snprintf(want, sizeof want, "lstm_run: %s\n", msg);
        ck_assert_msg(run(args) == 1, "case %zu: exit status not 1: %s", i, err_text);
        ck_assert_str_eq(err_text, want);
        ck_assert_int_eq(access(out, F_OK), -1);
    }
    run_time_limit = 0;
    struct stat st;
    ck_assert_int_eq(lstat(tp("fifo"), &st), 0);
    ck_assert(S_ISFIFO(st.st_mode)); /* not replaced by a file */
}
END_TEST

int main(void) {
    find_program("SG_LSTM_RUN", "lstm_run");
    if (access(exe, X_OK) != 0) {
        fprintf(stderr,
                "test_lstm_run: %s is not an executable (build examples/lstm_run, or "
                "set SG_LSTM_RUN)\n",
                exe);
        return EXIT_FAILURE;
    }
    const ck_tcase tcases[] = {
        {"lstm_run",
         300,
         {{test_fixtures_f64, NCONFIGS},
          {test_fixtures_f32, NCONFIGS},
          {test_forward_only, 1},
          {test_mixed_input_dtypes, 1},
          {test_keras_golden, 1},
          {test_options, 1},
          {test_data_errors, 1},
          {test_nonfinite, 1},
          {test_not_regular, 1}}},
    };
    return CK_RUN("lstm_run", tcases, setup, teardown);
}
