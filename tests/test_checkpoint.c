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
#include "layers/layers.h"

#include "cksuite.h"
#include "ctxtest.h"

/* ---- helpers ------------------------------------------------------------------------- */

#include "oomtest.h"
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
    ck_assert_int_eq(sg_checkpoint_save(ctx, path, &l, NULL, 7, NULL), 0);
    sg_st_file *f = sg_safetensors_load(ctx, path);
    ck_assert_int_eq(sg_st_meta_count(f), 4);
    ck_assert_str_eq(sg_st_meta(f, "optimizer"), "none");
    ck_assert_str_eq(sg_st_meta(f, "step"), "7");
    ck_assert_str_eq(sg_st_meta(f, "crc32"), "5cd8256f"); /* zlib.crc32(struct.pack('<f', 1.5)) */
    ck_assert_ptr_null(sg_st_meta(f, "rng"));
    sg_st_free(f);
    sg_set_flat(w, 0, 0.0);
    int64_t step = 0;
    ck_assert_int_eq(sg_checkpoint_load(ctx, path, &l, NULL, &step, NULL), 0);
    ck_assert(sg_get_flat(w, 0) == 1.5);
    ck_assert_int_eq(step, 7);

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
             "sg_checkpoint_load: %s: tensor 'lstm.kernel' has shape (5, 16), expected (5, 32)",
             path);
    ck_error(want);
    ck_assert(sg_get_flat(l.items[0].tensor, 0) == -1.0); /* nothing copied */
    ck_assert_int_eq(step, 99);
    sg_params_clear(&l);

    /* dtype */
    static const sg_dtype dts_f[] = {SG_F64, SG_F32};
    make_list(&l, 2, names, shapes, dts_f, -1.0);
    ck_assert_int_eq(sg_checkpoint_load(ctx, path, &l, NULL, &step, NULL), -1);
    snprintf(want, sizeof want,
             "sg_checkpoint_load: %s: tensor 'dense.bias' has dtype float64, expected float32",
             path);
    ck_error(want);
    ck_assert(sg_get_flat(l.items[0].tensor, 0) == -1.0);
    sg_params_clear(&l);

    /* missing: the model has a tensor the file lacks */
    static const char *const names_m[] = {"lstm.kernel", "dense.bias", "dense.kernel"};
    static const int64_t shapes_m[][2] = {{5, 16}, {1, 3}, {3, 3}};
    static const sg_dtype dts_m[] = {SG_F64, SG_F64, SG_F64};
    make_list(&l, 3, names_m, shapes_m, dts_m, -1.0);
    ck_assert_int_eq(sg_checkpoint_load(ctx, path, &l, NULL, &step, NULL), -1);
    snprintf(want, sizeof want, "sg_checkpoint_load: %s: missing tensor 'dense.kernel'", path);
    ck_error(want);
    sg_params_clear(&l);

    /* unexpected: the file has a tensor the model lacks */
    make_list(&l, 1, names, shapes, dts, -1.0);
    ck_assert_int_eq(sg_checkpoint_load(ctx, path, &l, NULL, &step, NULL), -1);
    snprintf(want, sizeof want, "sg_checkpoint_load: %s: unexpected tensor 'dense.bias'", path);
    ck_error(want);
    ck_assert(sg_get_flat(l.items[0].tensor, 0) == -1.0);
    sg_params_clear(&l);

    /* a name twice in the list */
    make_list(&l, 2, names, shapes, dts, -1.0);
    snprintf(l.items[1].name, sizeof l.items[1].name, "lstm.kernel");
    ck_assert_int_eq(sg_checkpoint_load(ctx, path, &l, NULL, &step, NULL), -1);
    snprintf(want, sizeof want,
             "sg_checkpoint_load: %s: tensor 'lstm.kernel' has shape (5, 16), expected (1, 3)",
             path);
    ck_error(want);
    l.items[1].tensor = l.items[0].tensor;
    ck_assert_int_eq(sg_checkpoint_load(ctx, path, &l, NULL, &step, NULL), -1);
    snprintf(want, sizeof want,
             "sg_checkpoint_load: %s: duplicate name 'lstm.kernel' in the parameter list", path);
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
             "sg_checkpoint_load: %s: unexpected tensor 'optim.dense.bias.momentum_buffer'", path);
    ck_error(want);
    /* and the other way round: the optimizer expects state the file lacks */
    ck_assert_int_eq(sg_checkpoint_save(ctx, path, &a.params, plain, 0, NULL), 0);
    ck_assert_int_eq(sg_checkpoint_load(ctx, path, &a.params, a.opt, NULL, NULL), -1);
    snprintf(want, sizeof want,
             "sg_checkpoint_load: %s: missing tensor 'optim.dense.kernel.momentum_buffer'", path);
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
        {"abc", NULL, "metadata 'step' is not a decimal integer: 'abc'"},
        {"", NULL, "metadata 'step' is not a decimal integer: ''"},
        {"-", NULL, "metadata 'step' is not a decimal integer: '-'"},
        {" 1", NULL, "metadata 'step' is not a decimal integer: ' 1'"},
        {"9223372036854775808", NULL, "metadata 'step' overflows int64: '9223372036854775808'"},
        {"1", "xyz", "metadata 'rng' is not 5 words of 16 hex digits and 0 or 1: 'xyz'"},
        {"1",
         "0000000000000001 0000000000000002 0000000000000003 0000000000000004 "
         "0000000000000000 2",
         "metadata 'rng' is not 5 words of 16 hex digits and 0 or 1: '0000000000000001 "
         "0000000000000002 0000000000000003 0000000000000004 "
         "0000000000000000 2'"},
        {"1",
         "0000000000000001 0000000000000002 0000000000000003 000000000000004 "
         "0000000000000000 0",
         "metadata 'rng' is not 5 words of 16 hex digits and 0 or 1: '0000000000000001 "
         "0000000000000002 0000000000000003 000000000000004 "
         "0000000000000000 0'"},
        {"1",
         "0000000000000001 0000000000000002 0000000000000003 0000000000000004 "
         "0000000000000000 0 ",
         "metadata 'rng' is not 5 words of 16 hex digits and 0 or 1: '0000000000000001 "
         "0000000000000002 0000000000000003 0000000000000004 "
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
                        "9007199254740992",
                        "rng",
                        "FFFFFFFFFFFFFFFF 0000000000000002 0000000000000003 0000000000000004 "
                        "3FF8000000000000 1",
                        NULL};
    ck_assert_int_eq(sg_safetensors_save(ctx, path, &l, ok), 0);
    ck_assert_int_eq(sg_checkpoint_load(ctx, path, &l, NULL, &step, &r), 0);
    ck_assert(step == INT64_C(9007199254740992));
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

/* ---- hostile files and faults (issue 20) ---------------------------------------------- */

static unsigned char *read_all(const char *path, size_t *len) {
    FILE *fp = fopen(path, "rb");
    ck_assert_ptr_nonnull(fp);
    ck_assert_int_eq(fseek(fp, 0, SEEK_END), 0);
    long n = ftell(fp);
    rewind(fp);
    unsigned char *b = malloc((size_t)n + 1);
    ck_assert_ptr_nonnull(b);
    ck_assert_uint_eq(fread(b, 1, (size_t)n, fp), (size_t)n);
    fclose(fp);
    *len = (size_t)n;
    return b;
}

static void write_all(const char *path, const void *b, size_t n) {
    FILE *fp = fopen(path, "wb");
    ck_assert_ptr_nonnull(fp);
    ck_assert_uint_eq(fwrite(b, 1, n, fp), n);
    ck_assert_int_eq(fclose(fp), 0);
}

/* CRC-32 bit by bit (an implementation independent of io/'s table). */
static uint32_t crc32_bits(const unsigned char *p, size_t n) {
    uint32_t c = 0xFFFFFFFFu;
    for (size_t i = 0; i < n; i++) {
        c ^= p[i];
        for (int k = 0; k < 8; k++)
            c = c & 1 ? 0xEDB88320u ^ (c >> 1) : c >> 1;
    }
    return ~c;
}

/* Every value of model m, its optimizer's state and steps, as a list of doubles, to check
 * that a refused load changed nothing. */
typedef struct {
    double v[128];
    int n;
    int64_t steps;
} snapshot;

static void snap(const model *m, snapshot *s) {
    memset(s, 0, sizeof *s);
    sg_param_list st = {0};
    ck_assert_int_eq(sg_optim_state(m->opt, &st), 0);
    const sg_tensor *ts[8] = {m->kernel, m->bias};
    int nt = 2;
    for (int i = 0; i < st.n && nt < 8; i++)
        ts[nt++] = st.items[i].tensor;
    for (int i = 0; i < nt; i++)
        for (int64_t k = 0; k < sg_numel(ts[i]); k++) {
            ck_assert_int_lt(s->n, 128);
            s->v[s->n++] = sg_get_flat(ts[i], k);
        }
    s->steps = sg_optim_steps(m->opt);
    sg_params_clear(&st);
}

static void ck_unchanged(const model *m, const snapshot *before) {
    snapshot now;
    snap(m, &now);
    ck_assert_int_eq(now.n, before->n);
    ck_assert(!memcmp(now.v, before->v, sizeof now.v));
    ck_assert_int_eq(now.steps, before->steps);
}

/* A flipped byte in the tensor data is found by the CRC-32 the checkpoint carries, and
 * named; the values match zlib's CRC-32 of each tensor's bytes; a file without the
 * checksum (written before it existed) still loads. */
START_TEST(test_checksum) {
    make_tmpdir("sg_ckpt");
    char path[512], want[1024];
    snprintf(path, sizeof path, "%s", tmp_path("c.safetensors"));
    model a, b;
    model_new(&a, SG_F64, 0.5, 0.9);
    model_step(&a, 0);
    ck_assert_int_eq(sg_checkpoint_save(ctx, path, &a.params, a.opt, 1, NULL), 0);
    model_new(&b, SG_F64, -3.0, 0.9);
    model_step(&b, 7);
    snapshot sb;
    snap(&b, &sb);

    /* what the file says: 4 tensors, zlib CRC-32 of each tensor's bytes in name order */
    size_t len;
    unsigned char *bytes = read_all(path, &len);
    uint64_t hlen = 0;
    for (int i = 7; i >= 0; i--)
        hlen = hlen << 8 | bytes[i];
    const unsigned char *data = bytes + 8 + hlen;
    const size_t sizes[4] = {4 * 8, 12 * 8, 4 * 8, 12 * 8}; /* bias, kernel, their buffers */
    char crcs[64];
    size_t off = 0;
    for (int i = 0, at = 0; i < 4; i++) {
        at += snprintf(crcs + at, sizeof crcs - (size_t)at, i ? " %08x" : "%08x",
                       (unsigned)crc32_bits(data + off, sizes[i]));
        off += sizes[i];
    }
    ck_assert_uint_eq(8 + hlen + off, len);
    sg_st_file *f = sg_safetensors_load(ctx, path);
    ck_assert_str_eq(sg_st_meta(f, "crc32"), crcs);
    sg_st_free(f);

    /* one bit flipped in the last tensor (optim.dense.kernel.momentum_buffer) */
    bytes[len - 3] ^= 0x10;
    write_all(path, bytes, len);
    uint32_t got = crc32_bits(bytes + len - 96, 96), file_crc;
    ck_assert_int_eq(sscanf(crcs + 27, "%8x", &file_crc), 1);
    int64_t step = 5;
    ck_assert_int_eq(sg_checkpoint_load(ctx, path, &b.params, b.opt, &step, NULL), -1);
    snprintf(want, sizeof want,
             "sg_checkpoint_load: %s: tensor 'optim.dense.kernel.momentum_buffer': data checksum "
             "mismatch (crc32 %08x in the file, %08x of the data)",
             path, (unsigned)file_crc, (unsigned)got);
    ck_error(want);
    ck_unchanged(&b, &sb);
    ck_assert_int_eq(step, 5);
    /* also when loading for inference (the optimizer's tensors are not loaded but checked) */
    ck_assert_int_eq(sg_checkpoint_load(ctx, path, &b.params, NULL, NULL, NULL), -1);
    ck_error(want);
    ck_unchanged(&b, &sb);

    /* without the checksum: loads (the flipped bit is then not detected) */
    f = sg_safetensors_load(ctx, path);
    ck_assert_ptr_nonnull(f);
    sg_param_list all = {0};
    for (int i = 0; i < sg_st_count(f); i++)
        ck_assert_int_eq(sg_params_add(&all, sg_st_name(f, i), sg_st_tensor(f, i)), 0);
    const char *old_meta[] = {"format", "seqgrad-checkpoint-1", "step", "1", "optimizer",
                              "sgd",    "optimizer_steps",      "1",    NULL};
    ck_assert_int_eq(sg_safetensors_save(ctx, path, &all, old_meta), 0);
    ck_assert_int_eq(sg_checkpoint_load(ctx, path, &b.params, b.opt, &step, NULL), 0);
    ck_assert_int_eq(step, 1);
    ck_same(b.kernel, a.kernel);
    ck_same(b.bias, a.bias);
    snap(&b, &sb);

    /* a malformed checksum list */
    const char *bad_crc[][2] = {
        {"zz", "'zz'"},
        {"00000000 00000000 00000000", "'00000000 00000000 00000000'"},
        {"00000000 00000000 00000000 00000000 ", "'00000000 00000000 00000000 00000000 '"},
        {"00000000  00000000 00000000 00000000", "'00000000  00000000 00000000 00000000'"},
        {"", "''"},
    };
    for (size_t i = 0; i < sizeof bad_crc / sizeof bad_crc[0]; i++) {
        const char *m[] = {"format", "seqgrad-checkpoint-1", "step", "1",     "optimizer",
                           "sgd",    "optimizer_steps",      "1",    "crc32", bad_crc[i][0],
                           NULL};
        ck_assert_int_eq(sg_safetensors_save(ctx, path, &all, m), 0);
        ck_assert_int_eq(sg_checkpoint_load(ctx, path, &b.params, b.opt, &step, NULL), -1);
        snprintf(want, sizeof want,
                 "sg_checkpoint_load: %s: metadata 'crc32' is not 4 CRC-32 values (8 hex digits "
                 "each, separated by spaces): %s",
                 path, bad_crc[i][1]);
        ck_error(want);
        ck_unchanged(&b, &sb);
    }
    sg_params_clear(&all);
    sg_st_free(f);
    free(bytes);
    model_free(&a);
    model_free(&b);
    ck_no_error();
    remove_tmpdir();
}
END_TEST

/* A NaN or infinite parameter or optimizer state, or a negative Adam second moment, is
 * refused naming the tensor and the index, and the model, the optimizer, the step and
 * the generator keep their values. */
START_TEST(test_nonfinite) {
    make_tmpdir("sg_ckpt");
    char path[512], want[1024];
    snprintf(path, sizeof path, "%s", tmp_path("n.safetensors"));
    model a, b;
    model_new(&a, SG_F32, 0.5, 0.9);
    model_step(&a, 0);
    model_new(&b, SG_F32, -3.0, 0.9);
    model_step(&b, 3);
    snapshot sb;
    snap(&b, &sb);
    sg_rng r, r0;
    sg_rng_seed(&r, 3);
    r0 = r;
    int64_t step = 11;
    sg_param_list sa = {0};
    ck_assert_int_eq(sg_optim_state(a.opt, &sa), 0);
    sg_tensor *mb_bias = sg_params_find(&sa, "optim.dense.bias.momentum_buffer");
    ck_assert_ptr_nonnull(mb_bias);

    const struct {
        sg_tensor *t;
        int64_t i;
        double v;
        const char *msg;
    } bad[] = {
        {a.kernel, 3, NAN, "tensor 'dense.kernel' has NaN at index 3"},
        {a.bias, 0, INFINITY, "tensor 'dense.bias' has Inf at index 0"},
        {mb_bias, 1, -INFINITY, "tensor 'optim.dense.bias.momentum_buffer' has -Inf at index 1"},
    };
    for (size_t k = 0; k < sizeof bad / sizeof bad[0]; k++) {
        double keep = sg_get_flat(bad[k].t, bad[k].i);
        sg_set_flat(bad[k].t, bad[k].i, bad[k].v);
        ck_assert_int_eq(sg_checkpoint_save(ctx, path, &a.params, a.opt, 1, &r), 0);
        sg_set_flat(bad[k].t, bad[k].i, keep);
        ck_assert_int_eq(sg_checkpoint_load(ctx, path, &b.params, b.opt, &step, &r), -1);
        snprintf(want, sizeof want, "sg_checkpoint_load: %s: %s", path, bad[k].msg);
        ck_error(want);
        ck_unchanged(&b, &sb);
        ck_assert_int_eq(step, 11);
        ck_assert(!memcmp(&r, &r0, sizeof r));
    }
    /* loading for inference does not read the optimizer's state */
    ck_assert_int_eq(sg_checkpoint_load(ctx, path, &b.params, NULL, NULL, NULL), 0);
    ck_same(b.kernel, a.kernel);
    sg_params_clear(&sa);
    model_free(&b);
    model_new(&b, SG_F32, -3.0, 0.9);
    model_step(&b, 3);
    snap(&b, &sb);

    /* Adam with amsgrad: a negative second moment (either buffer) is impossible;
     * a negative first moment is fine */
    sg_optim *adam = sg_adam_new(ctx, &a.params, (sg_adam_options){.lr = 0.01, .amsgrad = true});
    sg_optim *adam_b = sg_adam_new(ctx, &b.params, (sg_adam_options){.lr = 0.01, .amsgrad = true});
    ck_assert_int_eq(sg_optim_step(adam), 0);
    ck_assert_int_eq(sg_optim_step(adam_b), 0);
    sg_optim *keep_a = a.opt, *keep_b = b.opt;
    a.opt = adam;
    b.opt = adam_b;
    snap(&b, &sb);
    ck_assert_int_eq(sg_optim_state(adam, &sa), 0);
    const struct {
        const char *name;
        double v;
        const char *msg;
    } neg[] = {
        {"optim.dense.kernel.exp_avg_sq", -0.5,
         "tensor 'optim.dense.kernel.exp_avg_sq' has a negative value -0.5 at index 2 (a "
         "second moment is never negative)"},
        {"optim.dense.bias.max_exp_avg_sq", -1e-30,
         "tensor 'optim.dense.bias.max_exp_avg_sq' has a negative value -1e-30 at index 2 (a "
         "second moment is never negative)"},
        {"optim.dense.bias.exp_avg_sq", NAN,
         "tensor 'optim.dense.bias.exp_avg_sq' has NaN at index 2"},
    };
    for (size_t k = 0; k < sizeof neg / sizeof neg[0]; k++) {
        sg_tensor *t = sg_params_find(&sa, neg[k].name);
        ck_assert_ptr_nonnull(t);
        double keep = sg_get_flat(t, 2);
        sg_set_flat(t, 2, neg[k].v);
        ck_assert_int_eq(sg_checkpoint_save(ctx, path, &a.params, adam, 1, NULL), 0);
        sg_set_flat(t, 2, keep);
        ck_assert_int_eq(sg_checkpoint_load(ctx, path, &b.params, adam_b, &step, NULL), -1);
        snprintf(want, sizeof want, "sg_checkpoint_load: %s: %s", path, neg[k].msg);
        ck_error(want);
        ck_unchanged(&b, &sb);
        ck_assert_int_eq(step, 11);
    }
    sg_set_flat(sg_params_find(&sa, "optim.dense.kernel.exp_avg"), 0, -2.0);
    ck_assert_int_eq(sg_checkpoint_save(ctx, path, &a.params, adam, 1, NULL), 0);
    ck_assert_int_eq(sg_checkpoint_load(ctx, path, &b.params, adam_b, &step, NULL), 0);
    ck_assert_int_eq(step, 1);
    sg_params_clear(&sa);
    a.opt = keep_a;
    b.opt = keep_b;
    sg_optim_free(adam);
    sg_optim_free(adam_b);
    model_free(&a);
    model_free(&b);
    ck_no_error();
    remove_tmpdir();
}
END_TEST

/* Every counter in the metadata is checked for its range and against the others before
 * anything is used: train indexes its loss curve by the step. The generator's all-zero
 * state (which it never leaves) and a non-finite pending normal are refused. Saving
 * refuses to write what loading would refuse. */
START_TEST(test_counters) {
    make_tmpdir("sg_ckpt");
    char path[512], want[1024];
    snprintf(path, sizeof path, "%s", tmp_path("k.safetensors"));
    sg_param_list l = {0};
    sg_tensor *w = param(SG_F64, 1, (int64_t[]){2}, "w", 3.0, 0);
    ck_assert_int_eq(sg_params_add(&l, "w", w), 0);
    const char *Z16 = "0000000000000000";
    char zero_rng[128], nan_spare[128], nan_unused[128];
    snprintf(zero_rng, sizeof zero_rng, "%s %s %s %s 3FF8000000000000 1", Z16, Z16, Z16, Z16);
    snprintf(nan_spare, sizeof nan_spare, "%s %s %s 0000000000000001 7FF8000000000000 1", Z16, Z16,
             Z16);
    snprintf(nan_unused, sizeof nan_unused, "%s %s %s 0000000000000001 7FF8000000000000 0", Z16,
             Z16, Z16);
    const struct {
        const char *opt, *step, *osteps, *rng, *msg;
    } bad[] = {
        {"none", "-5", NULL, NULL, "metadata 'step' is negative: '-5'"},
        {"none", "-0", NULL, NULL, "metadata 'step' is negative: '-0'"},
        {"none", "+5", NULL, NULL, "metadata 'step' is not a decimal integer: '+5'"},
        {"none", "1e3", NULL, NULL, "metadata 'step' is not a decimal integer: '1e3'"},
        {"none", "5.0", NULL, NULL, "metadata 'step' is not a decimal integer: '5.0'"},
        {"none", "99999999999999999999", NULL, NULL,
         "metadata 'step' overflows int64: '99999999999999999999'"},
        {"none", "18446744073709551621", NULL, NULL,
         "metadata 'step' overflows int64: '18446744073709551621'"},
        {"none", "9007199254740993", NULL, NULL,
         "metadata 'step' is larger than 2^53: '9007199254740993'"},
        {"none", "9223372036854775807", NULL, NULL,
         "metadata 'step' is larger than 2^53: '9223372036854775807'"},
        {"none", NULL, NULL, NULL, "metadata 'step' is missing"},
        {"rmsprop", "1", NULL, NULL,
         "metadata 'optimizer' is 'rmsprop', not one of none, sgd, adam, adamw"},
        {"none", "1", "0", NULL, "metadata 'optimizer_steps' without an optimizer"},
        {"sgd", "1", NULL, NULL, "metadata 'optimizer_steps' is missing"},
        {"sgd", "1", "-1", NULL, "metadata 'optimizer_steps' is negative: '-1'"},
        {"sgd", "1", "x", NULL, "metadata 'optimizer_steps' is not a decimal integer: 'x'"},
        {"sgd", "1", "9223372036854775808", NULL,
         "metadata 'optimizer_steps' overflows int64: '9223372036854775808'"},
        {"sgd", "5", "6", NULL, "metadata 'optimizer_steps' 6 is more than 'step' 5"},
        {"none", "1", NULL, zero_rng, "metadata 'rng': generator state is all zero"},
        {"none", "1", NULL, nan_spare, "metadata 'rng': the pending spare normal is not finite"},
    };
    sg_rng r, r0;
    sg_rng_seed(&r, 9);
    r0 = r;
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        const char *m[12];
        int k = 0;
        m[k++] = "format", m[k++] = "seqgrad-checkpoint-1";
        m[k++] = "optimizer", m[k++] = bad[i].opt;
        if (bad[i].step)
            m[k++] = "step", m[k++] = bad[i].step;
        if (bad[i].osteps)
            m[k++] = "optimizer_steps", m[k++] = bad[i].osteps;
        if (bad[i].rng)
            m[k++] = "rng", m[k++] = bad[i].rng;
        m[k] = NULL;
        ck_assert_int_eq(sg_safetensors_save(ctx, path, &l, m), 0);
        int64_t step = 77;
        /* checked whether or not the caller asks for them (step: only when asked) */
        for (int ask = 0; ask < 2; ask++) {
            if (!ask && !bad[i].step)
                continue;
            ck_assert_int_eq(sg_checkpoint_load(ctx, path, &l, NULL, ask ? &step : NULL,
                                                ask && bad[i].rng ? &r : NULL),
                             -1);
            snprintf(want, sizeof want, "sg_checkpoint_load: %s: %s", path, bad[i].msg);
            ck_error(want);
        }
        ck_assert_int_eq(step, 77);
        ck_assert(!memcmp(&r, &r0, sizeof r));
        ck_assert(sg_get_flat(w, 0) == 3.0);
    }
    /* a stale spare (has_spare 0) is not used: any bits are fine; 2^53 is the largest step */
    const char *ok[] = {"format", "seqgrad-checkpoint-1", "optimizer", "none",
                        "step",   "9007199254740992",     "rng",       nan_unused,
                        NULL};
    ck_assert_int_eq(sg_safetensors_save(ctx, path, &l, ok), 0);
    int64_t step = 0;
    ck_assert_int_eq(sg_checkpoint_load(ctx, path, &l, NULL, &step, &r), 0);
    ck_assert(step == INT64_C(9007199254740992));
    ck_assert(r.s[3] == 1 && !r.has_spare);

    /* saving: the same limits */
    sg_rng zero = {{0, 0, 0, 0}, 0.0, 0};
    ck_assert_int_eq(sg_checkpoint_save(ctx, path, &l, NULL, -5, NULL), -1);
    snprintf(want, sizeof want, "sg_checkpoint_save: %s: step -5 is negative", path);
    ck_error(want);
    ck_assert_int_eq(sg_checkpoint_save(ctx, path, &l, NULL, INT64_MAX, NULL), -1);
    snprintf(want, sizeof want,
             "sg_checkpoint_save: %s: step 9223372036854775807 is larger than "
             "2^53",
             path);
    ck_error(want);
    ck_assert_int_eq(sg_checkpoint_save(ctx, path, &l, NULL, 0, &zero), -1);
    snprintf(want, sizeof want, "sg_checkpoint_save: %s: rng: generator state is all zero", path);
    ck_error(want);
    zero.s[1] = 1, zero.has_spare = 1, zero.spare = INFINITY;
    ck_assert_int_eq(sg_checkpoint_save(ctx, path, &l, NULL, 0, &zero), -1);
    snprintf(want, sizeof want,
             "sg_checkpoint_save: %s: rng: the pending spare normal is not finite", path);
    ck_error(want);
    model a;
    model_new(&a, SG_F64, 1.0, 0.9);
    model_step(&a, 0);
    model_step(&a, 1);
    ck_assert_int_eq(sg_checkpoint_save(ctx, path, &a.params, a.opt, 1, NULL), -1);
    snprintf(want, sizeof want,
             "sg_checkpoint_save: %s: the optimizer has taken 2 steps, more than step 1 (a step "
             "counts training steps)",
             path);
    ck_error(want);
    /* none of the refused saves touched the file */
    ck_assert_int_eq(sg_checkpoint_load(ctx, path, &l, NULL, &step, NULL), 0);
    ck_assert(step == INT64_C(9007199254740992));
    model_free(&a);
    sg_params_clear(&l);
    ck_no_error();
    remove_tmpdir();
}
END_TEST

/* Out of memory at any allocation of a load is an error naming the file, and changes
 * nothing. */

START_TEST(test_load_oom) {
    make_tmpdir("sg_ckpt");
    char path[512], prefix[600];
    snprintf(path, sizeof path, "%s", tmp_path("o.safetensors"));
    snprintf(prefix, sizeof prefix, "sg_checkpoint_load: %s: ", path);
    model a, b;
    model_new(&a, SG_F64, 0.5, 0.9);
    model_step(&a, 0);
    sg_rng r;
    sg_rng_seed(&r, 1);
    ck_assert_int_eq(sg_checkpoint_save(ctx, path, &a.params, a.opt, 1, &r), 0);
    model_new(&b, SG_F64, -3.0, 0.9);
    snapshot sb;
    snap(&b, &sb);
    int k;
    for (k = 0; k < 1000; k++) {
        int64_t step = 0;
        oom_arm(k);
        int rc = sg_checkpoint_load(ctx, path, &b.params, b.opt, &step, &r);
        oom_disarm();
        if (rc == 0)
            break;
        const char *e = sg_ctx_error(ctx);
        ck_assert_msg(e && !strncmp(e, prefix, strlen(prefix)) && strstr(e, "out of memory"),
                      "allocation %d: %s", k, e ? e : "(no error)");
        sg_ctx_clear_error(ctx);
        ck_unchanged(&b, &sb);
    }
    ck_assert_int_gt(k, 5);
    ck_assert_int_lt(k, 1000);
    ck_same(b.kernel, a.kernel);
    model_free(&a);
    model_free(&b);
    ck_no_error();
    remove_tmpdir();
}
END_TEST

/* The longest names: a 31-character layer name (SG_LAYER_NAME_MAX) under Adam with
 * amsgrad gives "optim.<31>.recurrent_kernel.max_exp_avg_sq" (69 characters), and a
 * 63-character parameter name (SG_NAME_MAX) "optim.<63>.max_exp_avg_sq" (84): both are
 * listed, saved and loaded. */
START_TEST(test_long_names) {
    make_tmpdir("sg_ckpt");
    char path[512];
    snprintf(path, sizeof path, "%s", tmp_path("l.safetensors"));
    static const char name31[] = "a_layer_name_of_31_characters__";
    ck_assert_uint_eq(strlen(name31), SG_LAYER_NAME_MAX);
    sg_store *st[2];
    sg_lstm *lstm[2];
    sg_param_list p[2] = {{0}, {0}};
    sg_optim *opt[2];
    char name63[SG_NAME_MAX + 1];
    memset(name63, 'p', SG_NAME_MAX);
    name63[SG_NAME_MAX] = 0;
    sg_tensor *extra[2];
    for (int m = 0; m < 2; m++) {
        st[m] = sg_store_new();
        sg_lstm_options o = sg_lstm_defaults(3, 4);
        sg_rng r;
        sg_rng_seed(&r, 10 + (uint64_t)m);
        lstm[m] = sg_lstm_new(ctx, st[m], SG_LSTM_FUSED, &o, name31, &r);
        ck_assert_msg(lstm[m] != NULL, "%s", sg_ctx_error(ctx));
        extra[m] = sg_store_param(ctx, st[m], name63, SG_F32, 1, (int64_t[]){2});
        ck_assert_msg(extra[m] != NULL, "%s", sg_ctx_error(ctx));
        ck_assert_int_eq(sg_params_from_store(&p[m], st[m]), 0);
        opt[m] = sg_adam_new(ctx, &p[m], (sg_adam_options){.lr = 0.01, .amsgrad = true});
        ck_assert_msg(opt[m] != NULL, "%s", sg_ctx_error(ctx));
    }
    for (int i = 0; i < p[0].n; i++)
        sg_fill(p[0].items[i].tensor->grad, 0.25 + i);
    ck_assert_int_eq(sg_optim_step(opt[0]), 0);
    ck_assert_msg(sg_checkpoint_save(ctx, path, &p[0], opt[0], 1, NULL) == 0, "%s",
                  sg_ctx_error(ctx));
    sg_st_file *f = sg_safetensors_load(ctx, path);
    char want[256];
    snprintf(want, sizeof want, "optim.%s.recurrent_kernel.max_exp_avg_sq", name31);
    ck_assert_uint_eq(strlen(want), 69);
    ck_assert(sg_st_has(f, want));
    snprintf(want, sizeof want, "optim.%s.max_exp_avg_sq", name63);
    ck_assert_uint_eq(strlen(want), 84);
    ck_assert(sg_st_has(f, want));
    ck_assert_int_eq(sg_st_count(f), 4 * 4); /* 4 parameters, each with 3 buffers */
    sg_st_free(f);
    ck_assert_msg(sg_checkpoint_load(ctx, path, &p[1], opt[1], NULL, NULL) == 0, "%s",
                  sg_ctx_error(ctx));
    ck_assert_int_eq(sg_optim_steps(opt[1]), 1);
    for (int i = 0; i < p[0].n; i++)
        ck_same(p[1].items[i].tensor, p[0].items[i].tensor);
    sg_param_list s0 = {0}, s1 = {0};
    ck_assert_int_eq(sg_optim_state(opt[0], &s0), 0);
    ck_assert_int_eq(sg_optim_state(opt[1], &s1), 0);
    for (int i = 0; i < s0.n; i++)
        ck_same(s1.items[i].tensor, s0.items[i].tensor);
    sg_params_clear(&s0);
    sg_params_clear(&s1);
    for (int m = 0; m < 2; m++) {
        sg_optim_free(opt[m]);
        sg_params_clear(&p[m]);
        sg_lstm_free(lstm[m]);
        sg_store_free(st[m]);
    }
    ck_no_error();
    remove_tmpdir();
}
END_TEST

/* Messages: a directory or an empty path is said to be one; names are quoted (an empty one
 * reads ''), escaped and shortened; non-regular files are refused before reading. */
START_TEST(test_messages) {
    make_tmpdir("sg_ckpt");
    char path[512], want[1024];
    snprintf(path, sizeof path, "%s", tmp_path("m.safetensors"));
    sg_param_list l = {0};
    sg_tensor *w = param(SG_F64, 1, (int64_t[]){2}, "w", 3.0, 0);
    ck_assert_int_eq(sg_params_add(&l, "w", w), 0);

    ck_assert_int_eq(sg_checkpoint_save(ctx, tmpdir, &l, NULL, 0, NULL), -1);
    snprintf(want, sizeof want, "sg_checkpoint_save: %s: is a directory", tmpdir);
    ck_error(want);
    ck_assert_int_eq(sg_checkpoint_save(ctx, "", &l, NULL, 0, NULL), -1);
    ck_error("sg_checkpoint_save: empty path");
    ck_assert_int_eq(sg_checkpoint_load(ctx, "", &l, NULL, NULL, NULL), -1);
    ck_error("sg_checkpoint_load: empty path");
    ck_assert_int_eq(sg_checkpoint_load(ctx, tmpdir, &l, NULL, NULL, NULL), -1);
    snprintf(want, sizeof want, "sg_checkpoint_load: %s: is a directory", tmpdir);
    ck_error(want);
    ck_assert_int_eq(sg_checkpoint_load(ctx, "/dev/zero", &l, NULL, NULL, NULL), -1);
    ck_error("sg_checkpoint_load: /dev/zero: not a regular file");
    ck_assert_int_eq(sg_checkpoint_save(ctx, "/dev/null", &l, NULL, 0, NULL), -1);
    ck_error("sg_checkpoint_save: /dev/null: not a regular file");

    /* a file with an extra tensor of an awkward name */
    sg_tensor *x = param(SG_F64, 1, (int64_t[]){1}, "x", 0, 0);
    const char *names[] = {"", "evil\x1b[2J\n\x9b", "it's", "caf\xc3\xa9"};
    const char *shown[] = {"''", "'evil\\x1b[2J\\n\\x9b'", "'it\\'s'", "'caf\xc3\xa9'"};
    const char *meta[] = {"format", "seqgrad-checkpoint-1", "optimizer", "none", "step", "0", NULL};
    for (int i = 0; i < 4; i++) {
        sg_param_list two = {0};
        ck_assert_int_eq(sg_params_add(&two, "w", w), 0);
        ck_assert_int_eq(sg_params_add(&two, "", x), 0); /* placeholder, renamed below */
        snprintf(two.items[1].name, sizeof two.items[1].name, "%s", names[i]);
        int rc = sg_safetensors_save(ctx, path, &two, meta);
        if (i == 1) { /* \x9b alone is not UTF-8: the writer refuses it */
            ck_assert_int_eq(rc, -1);
            snprintf(want, sizeof want,
                     "sg_safetensors_save: %s: tensor name %s is not valid UTF-8", path, shown[i]);
            ck_error(want);
            two.items[1].name[strlen(two.items[1].name) - 1] = 0;
            ck_assert_int_eq(sg_safetensors_save(ctx, path, &two, meta), 0);
        } else {
            ck_assert_int_eq(rc, 0);
        }
        ck_assert_int_eq(sg_checkpoint_load(ctx, path, &l, NULL, NULL, NULL), -1);
        snprintf(want, sizeof want, "sg_checkpoint_load: %s: unexpected tensor %s", path,
                 i == 1 ? "'evil\\x1b[2J\\n'" : shown[i]);
        ck_error(want);
        sg_params_clear(&two);
    }
    /* a 100,000-character name (written by hand: a list entry cannot hold it) */
    size_t n = 100000;
    const char *head = "{\"__metadata__\":{\"format\":\"seqgrad-checkpoint-1\",\"optimizer\":"
                       "\"none\",\"step\":\"0\"},\"w\":{\"dtype\":\"F64\",\"shape\":[2],"
                       "\"data_offsets\":[0,16]},\"";
    const char *tail = "\":{\"dtype\":\"F64\",\"shape\":[0],\"data_offsets\":[16,16]}}";
    size_t hl = strlen(head) + n + strlen(tail);
    unsigned char *b = calloc(1, 8 + hl + 16);
    ck_assert_ptr_nonnull(b);
    for (int i = 0; i < 8; i++)
        b[i] = (unsigned char)((uint64_t)hl >> (8 * i));
    memcpy(b + 8, head, strlen(head));
    memset(b + 8 + strlen(head), 'n', n);
    memcpy(b + 8 + strlen(head) + n, tail, strlen(tail));
    write_all(path, b, 8 + hl + 16);
    free(b);
    ck_assert_int_eq(sg_checkpoint_load(ctx, path, &l, NULL, NULL, NULL), -1);
    char nn[97];
    memset(nn, 'n', 96);
    nn[96] = 0;
    snprintf(want, sizeof want, "sg_checkpoint_load: %s: unexpected tensor '%s'...", path, nn);
    ck_error(want);
    ck_assert(sg_get_flat(w, 0) == 3.0);
    sg_params_clear(&l);
    remove_tmpdir();
}
END_TEST

/* Issue 20, item 9: two layers left with the default name used to collide ("lstm"), and
 * once the error was cleared the second trained on outside every list, and a checkpoint held
 * 3 LSTM tensors instead of 6. In a store the second is "lstm_1", a taken name is refused,
 * and the checkpoint of the store's parameters holds both layers, which load back. */
START_TEST(test_default_names_all_saved) {
    make_tmpdir("sg_ckpt");
    const char *path = tmp_path("two.safetensors");
    sg_store *st = sg_store_new();
    sg_lstm_options o = sg_lstm_defaults(2, 3);
    sg_lstm *a = sg_lstm_new(ctx, st, SG_LSTM_FUSED, &o, NULL, NULL);
    ck_assert_ptr_null(sg_lstm_new(ctx, st, SG_LSTM_FUSED, &o, "lstm", NULL));
    ck_error("sg_lstm_new: the store already has a layer named \"lstm\"");
    sg_lstm *b = sg_lstm_new(ctx, st, SG_LSTM_FUSED, &o, NULL, NULL);
    ck_assert_msg(a && b, "%s", sg_ctx_error(ctx));
    ck_assert_str_eq(b->name, "lstm_1");
    sg_param_list l = {.ctx = ctx};
    ck_assert_int_eq(sg_params_from_store(&l, st), 0);
    ck_assert_int_eq(sg_checkpoint_save(ctx, path, &l, NULL, 1, NULL), 0);
    sg_st_file *f = sg_safetensors_load(ctx, path);
    ck_assert_int_eq(sg_st_count(f), 6);
    ck_assert_ptr_nonnull(sg_st_get(f, "lstm_1.recurrent_kernel"));
    sg_st_free(f);
    /* the second layer's weights come back from the file */
    double before = sg_get_flat(b->kernel, 0);
    sg_fill(b->kernel, 0.0);
    ck_assert_int_eq(sg_checkpoint_load(ctx, path, &l, NULL, NULL, NULL), 0);
    ck_assert(sg_get_flat(b->kernel, 0) == before);
    ck_no_error();
    sg_params_clear(&l);
    sg_lstm_free(a);
    sg_lstm_free(b);
    sg_store_free(st);
    remove_tmpdir();
}
END_TEST

/* ck_error with a printf-style message. */
#define ck_error_f(...)                                                                            \
    do {                                                                                           \
        char want_[1024];                                                                          \
        snprintf(want_, sizeof want_, __VA_ARGS__);                                                \
        ck_error(want_);                                                                           \
    } while (0)

/* The caller's own metadata: written beside the checkpoint's keys (any text, here a value
 * with quotes, a newline and non-ASCII), read back by sg_checkpoint_meta before any model
 * exists, ignored by sg_checkpoint_load; the checkpoint's own keys, a key without a value
 * and a duplicate are refused; sg_checkpoint_meta refuses a file that is not a checkpoint. */
START_TEST(test_user_meta) {
    make_tmpdir("sg_ckpt");
    const char *path = tmp_path("user.safetensors"), *plain = tmp_path("plain.safetensors");
    model m;
    model_new(&m, SG_F32, 1.0, 0.9);
    model_step(&m, 1);
    const char *meta[] = {"train.task", "text", "train.note", "a \"quoted\"\nline \xc3\xa9", NULL};
    ck_assert_int_eq(sg_checkpoint_save_ex(ctx, path, &m.params, m.opt, 1, NULL, meta), 0);
    sg_st_file *f = sg_checkpoint_meta(ctx, path);
    ck_assert_msg(f != NULL, "%s", sg_ctx_error(ctx));
    ck_assert_str_eq(sg_st_meta(f, "train.task"), "text");
    ck_assert_str_eq(sg_st_meta(f, "train.note"), "a \"quoted\"\nline \xc3\xa9");
    ck_assert_str_eq(sg_st_meta(f, "step"), "1");
    ck_assert_str_eq(sg_st_meta(f, "optimizer"), "sgd");
    ck_assert_int_eq(sg_st_count(f), 4);
    sg_st_free(f);
    ck_assert_int_eq(sg_checkpoint_load(ctx, path, &m.params, m.opt, NULL, NULL), 0);
    ck_no_error();

    const char *reserved[] = {"step", "5", NULL};
    ck_assert_int_eq(sg_checkpoint_save_ex(ctx, path, &m.params, m.opt, 1, NULL, reserved), -1);
    ck_error_f("sg_checkpoint_save: %s: metadata key 'step' is the checkpoint's own", path);
    const char *crc[] = {"crc32", "0", NULL};
    ck_assert_int_eq(sg_checkpoint_save_ex(ctx, path, &m.params, m.opt, 1, NULL, crc), -1);
    ck_error_f("sg_checkpoint_save: %s: metadata key 'crc32' is the checkpoint's own", path);
    const char *lone[] = {"train.task", NULL};
    ck_assert_int_eq(sg_checkpoint_save_ex(ctx, path, &m.params, m.opt, 1, NULL, lone), -1);
    ck_error_f("sg_checkpoint_save: %s: metadata key 'train.task' has no value", path);
    const char *dup[] = {"k", "1", "k", "2", NULL};
    ck_assert_int_eq(sg_checkpoint_save_ex(ctx, path, &m.params, m.opt, 1, NULL, dup), -1);
    ck_assert_ptr_nonnull(strstr(sg_ctx_error(ctx), "duplicate"));
    sg_ctx_clear_error(ctx);
    /* the refused saves left the first file as it was */
    f = sg_checkpoint_meta(ctx, path);
    ck_assert_str_eq(sg_st_meta(f, "train.task"), "text");
    sg_st_free(f);

    ck_assert_int_eq(sg_safetensors_save(ctx, plain, &m.params, NULL), 0);
    ck_assert_ptr_null(sg_checkpoint_meta(ctx, plain));
    ck_error_f("sg_checkpoint_meta: %s: not a seqgrad checkpoint (no 'format' metadata)", plain);
    ck_assert_ptr_null(sg_checkpoint_meta(ctx, tmp_path("missing")));
    ck_assert_ptr_nonnull(strstr(sg_ctx_error(ctx), "sg_checkpoint_meta: "));
    sg_ctx_clear_error(ctx);
    ck_assert_ptr_null(sg_checkpoint_meta(NULL, path));
    model_free(&m);
    remove_tmpdir();
}
END_TEST

/* From bytes in memory (what a rank gets from rank 0's broadcast): the same model, state,
 * step, generator and metadata as from the file; errors name the given name. */
START_TEST(test_load_mem) {
    make_tmpdir("sg_ckpt");
    const char *path = tmp_path("mem.safetensors");
    model a, b;
    model_new(&a, SG_F64, 1.0, 0.9);
    model_new(&b, SG_F64, 2.0, 0.9);
    for (int s = 0; s < 3; s++)
        model_step(&a, s);
    sg_rng r, r2;
    sg_rng_seed(&r, 99);
    sg_rng_normal(&r);
    const char *meta[] = {"train.task", "sine", NULL};
    ck_assert_int_eq(sg_checkpoint_save_ex(ctx, path, &a.params, a.opt, 3, &r, meta), 0);
    size_t len;
    unsigned char *bytes = read_all(path, &len);
    sg_st_file *f = sg_checkpoint_meta_mem(ctx, bytes, len, "from rank 0");
    ck_assert_msg(f != NULL, "%s", sg_ctx_error(ctx));
    ck_assert_str_eq(sg_st_meta(f, "train.task"), "sine");
    sg_st_free(f);
    int64_t step = 0;
    ck_assert_int_eq(
        sg_checkpoint_load_mem(ctx, bytes, len, "from rank 0", &b.params, b.opt, &step, &r2), 0);
    ck_assert_int_eq(step, 3);
    for (int k = 0; k < 3; k++) /* the spare normal first, then fresh draws */
        ck_assert_double_eq(sg_rng_normal(&r), sg_rng_normal(&r2));
    ck_same(a.kernel, b.kernel);
    ck_same(a.bias, b.bias);
    model_step(&a, 3); /* the momentum came along: the next steps agree */
    model_step(&b, 3);
    ck_same(a.kernel, b.kernel);
    ck_assert_int_eq(
        sg_checkpoint_load_mem(ctx, bytes, len - 9, "from rank 0", &b.params, b.opt, NULL, NULL),
        -1);
    ck_assert_ptr_nonnull(strstr(sg_ctx_error(ctx), "sg_checkpoint_load: from rank 0: "));
    sg_ctx_clear_error(ctx);
    ck_assert_ptr_null(sg_checkpoint_meta_mem(ctx, bytes, 4, NULL));
    ck_assert_ptr_nonnull(strstr(sg_ctx_error(ctx), "sg_checkpoint_meta: (memory): truncated"));
    sg_ctx_clear_error(ctx);
    ck_assert_int_eq(sg_checkpoint_load_mem(ctx, NULL, 0, "x", &b.params, NULL, NULL, NULL), -1);
    ck_error_f("sg_checkpoint_load_mem: NULL buffer");
    ck_assert_ptr_null(sg_checkpoint_meta_mem(ctx, NULL, 0, "x"));
    ck_error_f("sg_checkpoint_meta_mem: NULL buffer");
    free(bytes);
    model_free(&a);
    model_free(&b);
    remove_tmpdir();
}
END_TEST

int main(void) {
    const ck_tcase tcases[] = {
        {"checkpoint",
         0,
         {{test_roundtrip_f64, 1},
          {test_roundtrip_f32, 1},
          {test_minimal, 1},
          {test_mismatch, 1},
          {test_optimizer_mismatch, 1},
          {test_bad_files, 1},
          {test_atomic, 1}}},
        {"hostile",
         0,
         {{test_checksum, 1},
          {test_nonfinite, 1},
          {test_counters, 1},
          {test_load_oom, 1},
          {test_long_names, 1},
          {test_messages, 1},
          {test_default_names_all_saved, 1},
          {test_user_meta, 1},
          {test_load_mem, 1}}},
    };
    return CK_RUN("checkpoint", tcases, setup, teardown);
}
