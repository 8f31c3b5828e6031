/* Tests of io/checkpoint.c: a parameter list + SGD momentum state + step + generator
 * survive a save/load exactly (training resumes bit for bit), and every mismatch is
 * refused with a message naming it, before anything is changed.
 *
 * With SG_ST_EXPORT_DIR=DIR set, the round trip also leaves export_ckpt.safetensors in
 * DIR for `tests/fixtures/gen_safetensors.py --verify DIR`. */
#define _GNU_SOURCE /* mkdtemp */
#include <check.h>
#include <dirent.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "io.h"
#include "io_internal.h" /* sg__io_fail_point, the failure-injection hook */

#include "ctxtest.h"

/* ---- helpers ------------------------------------------------------------------------- */

#include "tmptest.h"

/* A parameter filled with a + b * i (row-major). */
static sg_tensor *param(sg_dtype dt, int ndim, const int64_t *shape, const char *name, double a,
                        double b) {
    sg_tensor *t = sg_param_new(ctx, dt, ndim, shape, name);
    ck_assert_ptr_nonnull(t);
    for (int64_t i = 0; i < sg_numel(t); i++)
        sg_set_flat(t, i, a + b * (double)i);
    return t;
}

/* Bitwise equality of the values of two same-shaped tensors. */
static void ck_same(const sg_tensor *a, const sg_tensor *b) {
    ck_assert_int_eq(a->dtype, b->dtype);
    ck_assert_int_eq(sg_numel(a), sg_numel(b));
    for (int64_t i = 0; i < sg_numel(a); i++)
        ck_assert_msg(sg_get_flat(a, i) == sg_get_flat(b, i), "%s[%lld]: %.17g vs %.17g", a->name,
                      (long long)i, sg_get_flat(a, i), sg_get_flat(b, i));
}

/* A little model: dense.kernel (3, 4), dense.bias (4) with values depending on `seed`. */
typedef struct {
    sg_param_list params;
    sg_tensor *kernel, *bias;
    sg_optim *opt;
} model;

static void model_new(model *m, sg_dtype dt, double seed, double momentum) {
    memset(m, 0, sizeof *m);
    m->kernel = param(dt, 2, (int64_t[]){3, 4}, "dense.kernel", seed, 0.125);
    m->bias = param(dt, 1, (int64_t[]){4}, "dense.bias", -seed, 0.5);
    ck_assert_int_eq(sg_params_add(&m->params, "dense.kernel", m->kernel), 0);
    ck_assert_int_eq(sg_params_add(&m->params, "dense.bias", m->bias), 0);
    m->opt = sg_sgd_new(ctx, &m->params, (sg_sgd_options){.lr = 0.1, .momentum = momentum});
    ck_assert_ptr_nonnull(m->opt);
}

static void model_free(model *m) {
    sg_optim_free(m->opt);
    sg_params_clear(&m->params);
}

/* One SGD step from gradients that depend on the step number. */
static void model_step(model *m, int s) {
    for (int64_t i = 0; i < sg_numel(m->kernel); i++)
        sg_set_flat(m->kernel->grad, i, sin(1.0 + (double)(s * 12 + i)));
    for (int64_t i = 0; i < sg_numel(m->bias); i++)
        sg_set_flat(m->bias->grad, i, cos(2.0 + (double)(s * 4 + i)));
    ck_assert_int_eq(sg_optim_step(m->opt), 0);
}

/* ---- round trip ---------------------------------------------------------------------- */

static void roundtrip(sg_dtype dt) {
    make_tmpdir("sg_ckpt");
    const char *path = tmp_path("ckpt.safetensors");
    model a, b;
    model_new(&a, dt, 0.25, 0.9);
    for (int s = 0; s < 3; s++)
        model_step(&a, s);
    sg_rng ra;
    sg_rng_seed(&ra, 123);
    (void)sg_rng_normal(&ra); /* leaves a spare normal: has_spare = 1 */
    ck_assert(ra.has_spare);
    ck_assert_int_eq(sg_checkpoint_save(ctx, path, &a.params, a.opt, 42, &ra), 0);
    const char *exp = getenv("SG_ST_EXPORT_DIR");
    if (exp && *exp && dt == SG_F64) {
        char p[512];
        snprintf(p, sizeof p, "%s/export_ckpt.safetensors", exp);
        ck_assert_int_eq(sg_checkpoint_save(ctx, p, &a.params, a.opt, 42, &ra), 0);
    }
    ck_no_error();

    /* what the file holds */
    sg_st_file *f = sg_safetensors_load(ctx, path);
    ck_assert_ptr_nonnull(f);
    ck_assert_int_eq(sg_st_count(f), 4);
    ck_assert_str_eq(sg_st_name(f, 0), "dense.bias");
    ck_assert_str_eq(sg_st_name(f, 1), "dense.kernel");
    ck_assert_str_eq(sg_st_name(f, 2), "optim.dense.bias.momentum_buffer");
    ck_assert_str_eq(sg_st_name(f, 3), "optim.dense.kernel.momentum_buffer");
    ck_assert_str_eq(sg_st_meta(f, "format"), "seqgrad-checkpoint-1");
    ck_assert_str_eq(sg_st_meta(f, "step"), "42");
    ck_assert_str_eq(sg_st_meta(f, "optimizer"), "sgd");
    ck_assert_str_eq(sg_st_meta(f, "optimizer_steps"), "3");
    uint64_t spare_bits;
    memcpy(&spare_bits, &ra.spare, 8);
    char want_rng[128];
    snprintf(want_rng, sizeof want_rng, "%016llx %016llx %016llx %016llx %016llx 1",
             (unsigned long long)ra.s[0], (unsigned long long)ra.s[1], (unsigned long long)ra.s[2],
             (unsigned long long)ra.s[3], (unsigned long long)spare_bits);
    ck_assert_str_eq(sg_st_meta(f, "rng"), want_rng);
    sg_st_free(f);

    /* load into a differently initialised model */
    model_new(&b, dt, -3.0, 0.9);
    sg_rng rb;
    sg_rng_seed(&rb, 999);
    int64_t step = 0;
    ck_assert_int_eq(sg_checkpoint_load(ctx, path, &b.params, b.opt, &step, &rb), 0);
    ck_no_error();
    ck_assert_int_eq(step, 42);
    ck_assert_int_eq(sg_optim_steps(b.opt), 3);
    ck_same(b.kernel, a.kernel);
    ck_same(b.bias, a.bias);
    sg_param_list sa = {0}, sb = {0};
    ck_assert_int_eq(sg_optim_state(a.opt, &sa), 0);
    ck_assert_int_eq(sg_optim_state(b.opt, &sb), 0);
    ck_assert_int_eq(sa.n, 2);
    ck_assert_int_eq(sb.n, 2);
    for (int i = 0; i < sa.n; i++)
        ck_same(sb.items[i].tensor, sa.items[i].tensor);
    sg_params_clear(&sa);
    sg_params_clear(&sb);
    /* the generator resumes exactly, spare normal included */
    ck_assert(memcmp(rb.s, ra.s, sizeof ra.s) == 0);
    ck_assert_int_eq(rb.has_spare, ra.has_spare);
    for (int i = 0; i < 5; i++) {
        double x = sg_rng_normal(&ra), y = sg_rng_normal(&rb);
        ck_assert(memcmp(&x, &y, sizeof x) == 0);
    }
    /* and training continues bit for bit */
    for (int s = 3; s < 5; s++) {
        model_step(&a, s);
        model_step(&b, s);
    }
    ck_same(b.kernel, a.kernel);
    ck_same(b.bias, a.bias);

    /* inference: no optimizer, no step, no rng: the optimizer tensors are skipped */
    model c;
    model_new(&c, dt, 7.0, 0.0);
    ck_assert_int_eq(sg_checkpoint_load(ctx, path, &c.params, NULL, NULL, NULL), 0);
    model_step(&a, 5); /* a moves on; c holds the checkpoint's values */
    f = sg_safetensors_load(ctx, path);
    ck_same(c.kernel, sg_st_get(f, "dense.kernel"));
    ck_same(c.bias, sg_st_get(f, "dense.bias"));
    sg_st_free(f);
    ck_no_error();
    model_free(&a);
    model_free(&b);
    model_free(&c);
    remove_tmpdir();
}

START_TEST(test_roundtrip_f64) { roundtrip(SG_F64); }
END_TEST

START_TEST(test_roundtrip_f32) { roundtrip(SG_F32); }
END_TEST

/* Without an optimizer or generator: metadata says so; loading asks for what is there. */
START_TEST(test_minimal) {
    make_tmpdir("sg_ckpt");
    const char *path = tmp_path("p.safetensors");
    sg_param_list l = {0};
    sg_tensor *w = param(SG_F32, 0, NULL, "w", 1.5, 0);
    ck_assert_int_eq(sg_params_add(&l, "w", w), 0);
    ck_assert_int_eq(sg_checkpoint_save(ctx, path, &l, NULL, -7, NULL), 0);
    sg_st_file *f = sg_safetensors_load(ctx, path);
    ck_assert_int_eq(sg_st_meta_count(f), 3);
    ck_assert_str_eq(sg_st_meta(f, "optimizer"), "none");
    ck_assert_str_eq(sg_st_meta(f, "step"), "-7");
    ck_assert_ptr_null(sg_st_meta(f, "rng"));
    sg_st_free(f);
    sg_set_flat(w, 0, 0.0);
    int64_t step = 0;
    ck_assert_int_eq(sg_checkpoint_load(ctx, path, &l, NULL, &step, NULL), 0);
    ck_assert(sg_get_flat(w, 0) == 1.5);
    ck_assert_int_eq(step, -7);

    char want[1024];
    sg_rng r;
    sg_rng_seed(&r, 5);
    sg_rng r0 = r;
    ck_assert_int_eq(sg_checkpoint_load(ctx, path, &l, NULL, &step, &r), -1);
    snprintf(want, sizeof want,
             "sg_checkpoint_load: %s: no rng state in the file (saved without one)", path);
    ck_error(want);
    ck_assert(!memcmp(&r, &r0, sizeof r));

    sg_param_list l2 = {0};
    sg_tensor *k = param(SG_F64, 1, (int64_t[]){2}, "k", 0, 1);
    ck_assert_int_eq(sg_params_add(&l2, "k", k), 0);
    sg_optim *opt = sg_sgd_new(ctx, &l2, (sg_sgd_options){.lr = 0.1});
    ck_assert_int_eq(sg_checkpoint_save(ctx, path, &l2, NULL, 0, NULL), 0);
    ck_assert_int_eq(sg_checkpoint_load(ctx, path, &l2, opt, NULL, NULL), -1);
    snprintf(want, sizeof want,
             "sg_checkpoint_load: %s: no optimizer state in the file (saved without one)", path);
    ck_error(want);
    sg_optim_free(opt);
    sg_params_clear(&l);
    sg_params_clear(&l2);
    remove_tmpdir();
}
END_TEST

/* ---- mismatches ---------------------------------------------------------------------- */

/* Build a list of `n` named parameters (names[i], shapes[i] 2-D, dtype dts[i]) holding
 * `fill`. */
static void make_list(sg_param_list *l, int n, const char *const *names, const int64_t (*shapes)[2],
                      const sg_dtype *dts, double fill) {
    memset(l, 0, sizeof *l);
    for (int i = 0; i < n; i++)
        ck_assert_int_eq(sg_params_add(l, names[i], param(dts[i], 2, shapes[i], names[i], fill, 0)),
                         0);
}

START_TEST(test_mismatch) {
    make_tmpdir("sg_ckpt");
    const char *path = tmp_path("m.safetensors");
    char want[1024];
    static const char *const names[] = {"lstm.kernel", "dense.bias"};
    static const int64_t shapes[][2] = {{5, 16}, {1, 3}};
    static const sg_dtype dts[] = {SG_F64, SG_F64};
    sg_param_list saved;
    make_list(&saved, 2, names, shapes, dts, 1.0);
    ck_assert_int_eq(sg_checkpoint_save(ctx, path, &saved, NULL, 1, NULL), 0);

    /* shape: the first tensor matches, and must be left alone when the second fails */
    static const char *const names_r[] = {"dense.bias", "lstm.kernel"};
    static const int64_t shapes_r[][2] = {{1, 3}, {5, 32}};
    sg_param_list l;
    make_list(&l, 2, names_r, shapes_r, dts, -1.0);
    int64_t step = 99;
    ck_assert_int_eq(sg_checkpoint_load(ctx, path, &l, NULL, &step, NULL), -1);
    snprintf(want, sizeof want,
             "sg_checkpoint_load: %s: lstm.kernel has shape (5, 16), expected (5, 32)", path);
    ck_error(want);
    ck_assert(sg_get_flat(l.items[0].tensor, 0) == -1.0); /* nothing copied */
    ck_assert_int_eq(step, 99);
    sg_params_clear(&l);

    /* dtype */
    static const sg_dtype dts_f[] = {SG_F64, SG_F32};
    make_list(&l, 2, names, shapes, dts_f, -1.0);
    ck_assert_int_eq(sg_checkpoint_load(ctx, path, &l, NULL, &step, NULL), -1);
    snprintf(want, sizeof want,
             "sg_checkpoint_load: %s: dense.bias has dtype float64, expected float32", path);
    ck_error(want);
    ck_assert(sg_get_flat(l.items[0].tensor, 0) == -1.0);
    sg_params_clear(&l);

    /* missing: the model has a tensor the file lacks */
    static const char *const names_m[] = {"lstm.kernel", "dense.bias", "dense.kernel"};
    static const int64_t shapes_m[][2] = {{5, 16}, {1, 3}, {3, 3}};
    static const sg_dtype dts_m[] = {SG_F64, SG_F64, SG_F64};
    make_list(&l, 3, names_m, shapes_m, dts_m, -1.0);
    ck_assert_int_eq(sg_checkpoint_load(ctx, path, &l, NULL, &step, NULL), -1);
    snprintf(want, sizeof want, "sg_checkpoint_load: %s: missing tensor dense.kernel", path);
    ck_error(want);
    sg_params_clear(&l);

    /* unexpected: the file has a tensor the model lacks */
    make_list(&l, 1, names, shapes, dts, -1.0);
    ck_assert_int_eq(sg_checkpoint_load(ctx, path, &l, NULL, &step, NULL), -1);
    snprintf(want, sizeof want, "sg_checkpoint_load: %s: unexpected tensor dense.bias", path);
    ck_error(want);
    ck_assert(sg_get_flat(l.items[0].tensor, 0) == -1.0);
    sg_params_clear(&l);

    /* a name twice in the list */
    make_list(&l, 2, names, shapes, dts, -1.0);
    snprintf(l.items[1].name, sizeof l.items[1].name, "lstm.kernel");
    ck_assert_int_eq(sg_checkpoint_load(ctx, path, &l, NULL, &step, NULL), -1);
    snprintf(want, sizeof want,
             "sg_checkpoint_load: %s: lstm.kernel has shape (5, 16), expected (1, 3)", path);
    ck_error(want);
    l.items[1].tensor = l.items[0].tensor;
    ck_assert_int_eq(sg_checkpoint_load(ctx, path, &l, NULL, &step, NULL), -1);
    snprintf(want, sizeof want,
             "sg_checkpoint_load: %s: duplicate name lstm.kernel in the parameter list", path);
    ck_error(want);
    ck_assert_int_eq(sg_checkpoint_save(ctx, path, &l, NULL, 1, NULL), -1);
    snprintf(want, sizeof want, "sg_checkpoint_save: %s: duplicate tensor name 'lstm.kernel'",
             path);
    ck_error(want);
    sg_params_clear(&l);

    /* the right list loads */
    make_list(&l, 2, names, shapes, dts, -1.0);
    ck_assert_int_eq(sg_checkpoint_load(ctx, path, &l, NULL, &step, NULL), 0);
    ck_assert(sg_get_flat(l.items[0].tensor, 7) == 1.0);
    ck_assert_int_eq(step, 1);
    sg_params_clear(&l);
    sg_params_clear(&saved);
    ck_no_error();
    remove_tmpdir();
}
END_TEST

START_TEST(test_optimizer_mismatch) {
    make_tmpdir("sg_ckpt");
    const char *path = tmp_path("o.safetensors");
    char want[1024];
    model a;
    model_new(&a, SG_F64, 1.0, 0.9);
    ck_assert_int_eq(sg_checkpoint_save(ctx, path, &a.params, a.opt, 0, NULL), 0);
    sg_optim *adam = sg_adam_new(ctx, &a.params, (sg_adam_options){.lr = 0.01});
    ck_assert_int_eq(sg_checkpoint_load(ctx, path, &a.params, adam, NULL, NULL), -1);
    snprintf(want, sizeof want, "sg_checkpoint_load: %s: optimizer is sgd in the file, adam given",
             path);
    ck_error(want);
    /* same kind, but without momentum: no state tensors, so the file's are unexpected */
    sg_optim *plain = sg_sgd_new(ctx, &a.params, (sg_sgd_options){.lr = 0.01});
    ck_assert_int_eq(sg_checkpoint_load(ctx, path, &a.params, plain, NULL, NULL), -1);
    snprintf(want, sizeof want,
             "sg_checkpoint_load: %s: unexpected tensor optim.dense.bias.momentum_buffer", path);
    ck_error(want);
    /* and the other way round: the optimizer expects state the file lacks */
    ck_assert_int_eq(sg_checkpoint_save(ctx, path, &a.params, plain, 0, NULL), 0);
    ck_assert_int_eq(sg_checkpoint_load(ctx, path, &a.params, a.opt, NULL, NULL), -1);
    snprintf(want, sizeof want,
             "sg_checkpoint_load: %s: missing tensor optim.dense.kernel.momentum_buffer", path);
    ck_error(want);
    /* Adam round trip: its two buffers per parameter */
    for (int s = 0; s < 2; s++) {
        sg_params_zero_grad(&a.params);
        sg_fill(a.kernel->grad, 0.5 + s);
        ck_assert_int_eq(sg_optim_step(adam), 0);
    }
    ck_assert_int_eq(sg_checkpoint_save(ctx, path, &a.params, adam, 2, NULL), 0);
    sg_st_file *f = sg_safetensors_load(ctx, path);
    ck_assert_int_eq(sg_st_count(f), 6);
    ck_assert(sg_st_has(f, "optim.dense.kernel.exp_avg_sq"));
    ck_assert_str_eq(sg_st_meta(f, "optimizer"), "adam");
    sg_st_free(f);
    sg_optim *adam2 = sg_adam_new(ctx, &a.params, (sg_adam_options){.lr = 0.01});
    ck_assert_int_eq(sg_checkpoint_load(ctx, path, &a.params, adam2, NULL, NULL), 0);
    ck_assert_int_eq(sg_optim_steps(adam2), 2);
    sg_optim_free(adam);
    sg_optim_free(adam2);
    sg_optim_free(plain);
    model_free(&a);
    ck_no_error();
    remove_tmpdir();
}
END_TEST

/* Files that are not (valid) checkpoints. */
START_TEST(test_bad_files) {
    make_tmpdir("sg_ckpt");
    const char *path = tmp_path("b.safetensors");
    char want[1024];
    sg_param_list l = {0};
    sg_tensor *w = param(SG_F64, 1, (int64_t[]){2}, "w", 3.0, 0);
    ck_assert_int_eq(sg_params_add(&l, "w", w), 0);
    int64_t step = 5;
    sg_rng r;
    sg_rng_seed(&r, 1);

    /* plain safetensors file, and a foreign format */
    ck_assert_int_eq(sg_safetensors_save(ctx, path, &l, NULL), 0);
    ck_assert_int_eq(sg_checkpoint_load(ctx, path, &l, NULL, &step, NULL), -1);
    snprintf(want, sizeof want,
             "sg_checkpoint_load: %s: not a seqgrad checkpoint (no 'format' metadata)", path);
    ck_error(want);
    const char *m1[] = {"format", "pt", NULL};
    ck_assert_int_eq(sg_safetensors_save(ctx, path, &l, m1), 0);
    ck_assert_int_eq(sg_checkpoint_load(ctx, path, &l, NULL, &step, NULL), -1);
    snprintf(want, sizeof want,
             "sg_checkpoint_load: %s: not a seqgrad checkpoint (format 'pt', expected "
             "'seqgrad-checkpoint-1')",
             path);
    ck_error(want);

    /* bad metadata values */
    const struct {
        const char *step, *rng, *msg;
    } bad[] = {
        {"abc", NULL, "bad or missing metadata step 'abc'"},
        {"", NULL, "bad or missing metadata step ''"},
        {"-", NULL, "bad or missing metadata step '-'"},
        {" 1", NULL, "bad or missing metadata step ' 1'"},
        {"9223372036854775808", NULL, "bad or missing metadata step '9223372036854775808'"},
        {"1", "xyz", "bad rng state 'xyz'"},
        {"1",
         "0000000000000001 0000000000000002 0000000000000003 0000000000000004 "
         "0000000000000000 2",
         "bad rng state '0000000000000001 0000000000000002 0000000000000003 0000000000000004 "
         "0000000000000000 2'"},
        {"1",
         "0000000000000001 0000000000000002 0000000000000003 000000000000004 "
         "0000000000000000 0",
         "bad rng state '0000000000000001 0000000000000002 0000000000000003 000000000000004 "
         "0000000000000000 0'"},
        {"1",
         "0000000000000001 0000000000000002 0000000000000003 0000000000000004 "
         "0000000000000000 0 ",
         "bad rng state '0000000000000001 0000000000000002 0000000000000003 0000000000000004 "
         "0000000000000000 0 '"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        const char *m[] = {"format",    "seqgrad-checkpoint-1",    "optimizer", "none", "step",
                           bad[i].step, bad[i].rng ? "rng" : NULL, bad[i].rng,  NULL};
        ck_assert_int_eq(sg_safetensors_save(ctx, path, &l, m), 0);
        ck_assert_int_eq(sg_checkpoint_load(ctx, path, &l, NULL, &step, &r), -1);
        snprintf(want, sizeof want, "sg_checkpoint_load: %s: %s", path, bad[i].msg);
        ck_error(want);
    }
    /* extreme but valid values; upper-case hex */
    const char *ok[] = {"format",
                        "seqgrad-checkpoint-1",
                        "optimizer",
                        "none",
                        "step",
                        "-9223372036854775808",
                        "rng",
                        "FFFFFFFFFFFFFFFF 0000000000000002 0000000000000003 0000000000000004 "
                        "3FF8000000000000 1",
                        NULL};
    ck_assert_int_eq(sg_safetensors_save(ctx, path, &l, ok), 0);
    ck_assert_int_eq(sg_checkpoint_load(ctx, path, &l, NULL, &step, &r), 0);
    ck_assert(step == INT64_MIN);
    ck_assert(r.s[0] == UINT64_MAX && r.s[3] == 4 && r.spare == 1.5 && r.has_spare == 1);
    ck_assert(sg_get_flat(w, 0) == 3.0);

    /* corrupt and missing files, named by the checkpoint function */
    FILE *fp = fopen(path, "wb");
    fwrite("\x10\0\0\0\0\0\0\0{", 1, 9, fp);
    fclose(fp);
    ck_assert_int_eq(sg_checkpoint_load(ctx, path, &l, NULL, &step, NULL), -1);
    snprintf(want, sizeof want,
             "sg_checkpoint_load: %s: header length 16 exceeds the 1 bytes "
             "after it",
             path);
    ck_error(want);
    ck_assert_int_eq(sg_checkpoint_load(ctx, "/nonexistent/c.safetensors", &l, NULL, NULL, NULL),
                     -1);
    ck_error("sg_checkpoint_load: /nonexistent/c.safetensors: cannot open: No such file or "
             "directory");
    ck_assert_int_eq(sg_checkpoint_load(ctx, path, NULL, NULL, NULL, NULL), -1);
    snprintf(want, sizeof want, "sg_checkpoint_load: %s: NULL parameter list", path);
    ck_error(want);
    ck_assert_int_eq(sg_checkpoint_save(ctx, path, NULL, NULL, 0, NULL), -1);
    snprintf(want, sizeof want, "sg_checkpoint_save: %s: NULL parameter list", path);
    ck_error(want);
    ck_assert_int_eq(sg_checkpoint_save(ctx, NULL, &l, NULL, 0, NULL), -1);
    ck_error("sg_checkpoint_save: NULL path");
    ck_assert_int_eq(sg_checkpoint_load(NULL, path, &l, NULL, NULL, NULL), -1);
    ck_assert_int_eq(sg_checkpoint_save(NULL, path, &l, NULL, 0, NULL), -1);
    sg_params_clear(&l);
    remove_tmpdir();
}
END_TEST

/* A failed checkpoint save leaves the previous checkpoint loadable and unchanged. */
START_TEST(test_atomic) {
    make_tmpdir("sg_ckpt");
    const char *path = tmp_path("a.safetensors");
    model a;
    model_new(&a, SG_F64, 1.0, 0.9);
    model_step(&a, 0);
    ck_assert_int_eq(sg_checkpoint_save(ctx, path, &a.params, a.opt, 1, NULL), 0);
    model_step(&a, 1);
    sg__io_fail_point = SG_IO_FAIL_BEFORE_RENAME;
    ck_assert_int_eq(sg_checkpoint_save(ctx, path, &a.params, a.opt, 2, NULL), -1);
    sg__io_fail_point = SG_IO_FAIL_NONE;
    char want[1024];
    snprintf(want, sizeof want, "sg_checkpoint_save: %s: injected failure before rename", path);
    ck_error(want);
    int64_t step = 0;
    ck_assert_int_eq(sg_checkpoint_load(ctx, path, &a.params, a.opt, &step, NULL), 0);
    ck_assert_int_eq(step, 1);
    ck_assert_int_eq(sg_optim_steps(a.opt), 1);
    model_free(&a);
    ck_no_error();
    remove_tmpdir(); /* also fails if a temporary file was left behind... */
    ck_assert_int_eq(access(tmpdir, F_OK), -1); /* ...as rmdir would */
}
END_TEST

static Suite *suite(void) {
    Suite *s = suite_create("checkpoint");
    TCase *tc = tcase_create("checkpoint");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, test_roundtrip_f64);
    tcase_add_test(tc, test_roundtrip_f32);
    tcase_add_test(tc, test_minimal);
    tcase_add_test(tc, test_mismatch);
    tcase_add_test(tc, test_optimizer_mismatch);
    tcase_add_test(tc, test_bad_files);
    tcase_add_test(tc, test_atomic);
    suite_add_tcase(s, tc);
    return s;
}

int main(void) {
    SRunner *sr = srunner_create(suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
