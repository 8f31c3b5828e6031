/* Tests of examples/train, run as a subprocess (stdout and stderr captured, each run writing
 * into a fresh mkdtemp directory that is removed afterwards):
 *   - learning: each task (sine, adding, recall) with each LSTM implementation (fused,
 *     gates) must beat a stated held-out loss, and the baselines it reports must be the
 *     closed-form ones (within sampling error; log 4 exactly for recall);
 *   - resume: training 2N steps in one go and N + N steps through a checkpoint gives
 *     bit-identical checkpoints (parameters, optimizer state, step, generator), for both
 *     implementations and both optimizers, while another seed gives other parameters;
 *   - the command line: --help (and its copy in README.md), bad options (exit 2), a
 *     missing or mismatched checkpoint (exit 1), a checkpoint whose counters do not hold
 *     together, paths refused at the start (exit 1, nothing trained), the plain progress
 *     lines, the CSV / SVG files, and a failure to write any of them (exit 1).
 *
 * The binary is $SG_TRAIN if set (meson sets it), else ../examples/train next to this
 * test's own directory (the build tree's layout). */
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
#include "progtest.h"
#include "seqgrad.h"

static sg_ctx *ctx;

/* ---- running the program ------------------------------------------------------------- */

/* Each test works in its own directory inside `root`, which main makes and removes: a
 * failed assertion ends Check's forked test process at once, without the teardown. */
static char root[32];

static void setup(void) {
    ctx = sg_ctx_new(0);
    ck_assert_ptr_nonnull(ctx);
    snprintf(tmpdir, sizeof tmpdir, "%s/t_XXXXXX", root);
    ck_assert_ptr_nonnull(mkdtemp(tmpdir));
}

static void teardown(void) {
    rm_tree(tmpdir);
    sg_ctx_free(ctx);
    ctx = NULL;
}

/* Whole binary file; returns its length (0 when missing), at most n. */
static size_t slurp_bin(const char *path, char *buf, size_t n) {
    FILE *f = fopen(path, "rb");
    size_t k = f ? fread(buf, 1, n, f) : 0;
    if (f)
        fclose(f);
    return k;
}

/* stderr must be exactly `want` (the message shows at most 1000 characters of it: Check
 * refuses longer ones, and a sanitizer report can be long). */
static void ck_err(const char *want) {
    ck_assert_msg(!strcmp(err_text, want), "stderr: expected '%s', got '%.1000s'", want, err_text);
}

/* ---- the result line ----------------------------------------------------------------- */

typedef struct {
    char task[16], impl[16];
    double eval, baseline, seconds;
    long long steps;
} result;

/* The last line of stdout must be exactly
 *     result: task=<task> impl=<impl> eval_loss=<%.6g> baseline=<%.6g> steps=<n> seconds=<%.2f>
 * checked by parsing it and printing the values back in that format. */
static result parse_result(void) {
    size_t len = strlen(out_text);
    ck_assert_msg(len > 0 && out_text[len - 1] == '\n', "stdout does not end in a line: %.1000s",
                  out_text);
    char line[512];
    const char *start = out_text + len - 1;
    while (start > out_text && start[-1] != '\n')
        start--;
    ck_assert_uint_lt((size_t)(out_text + len - start), sizeof line);
    memcpy(line, start, (size_t)(out_text + len - 1 - start));
    line[out_text + len - 1 - start] = 0;

    result r;
    int used = -1;
    int got = sscanf(line,
                     "result: task=%15[a-z] impl=%15[a-z] eval_loss=%lf baseline=%lf steps=%lld "
                     "seconds=%lf%n",
                     r.task, r.impl, &r.eval, &r.baseline, &r.steps, &r.seconds, &used);
    ck_assert_msg(got == 6 && used == (int)strlen(line), "bad result line: '%s'", line);
    char again[512];
    snprintf(again, sizeof again,
             "result: task=%s impl=%s eval_loss=%.6g baseline=%.6g steps=%lld seconds=%.2f", r.task,
             r.impl, r.eval, r.baseline, r.steps, r.seconds);
    ck_assert_str_eq(line, again);
    ck_assert(isfinite(r.eval) && r.eval >= 0);
    ck_assert(r.seconds >= 0);
    return r;
}

/* ---- learning ------------------------------------------------------------------------ */

/* Sizes picked so the six runs take about 1 s together in a release build and about 25 s
 * in the ASan debug build; the thresholds hold with a wide margin (losses measured for
 * seed 1 in the comments; the adding threshold also held for seeds 1..20, worst 0.012). */
static const struct {
    const char *task, *hidden, *batch, *seq_len, *lr, *steps;
} learn_cfg[3] = {
    /* sine: eval < baseline / 20 (measured 0.0064 against 0.553, 86x better) */
    {"sine", "16", "32", "20", "0.01", "150"},
    /* adding, T = 50: eval < 0.02 against the baseline 1/6 (measured 0.0015 fused, 0.0013
     * gates). A small model (8 units) on bigger batches (64 sequences) leaves the plateau at
     * MSE ~0.17 reliably within 500 steps and is cheap enough under ASan. */
    {"adding", "8", "64", "50", "0.02", "500"},
    /* recall, T = 10: eval < 0.1 log 4 = 0.139 (measured 0.00096) */
    {"recall", "32", "32", "10", "0.01", "80"},
};

/* Standard deviations of the per-sequence baseline losses, for the sampling error of the
 * reported baselines (16 held-out batches of B sequences):
 *   sine: target a sin(phase), a ~ U(0.5, 1.5): mean E[a^2] / 2 = 13/24, and
 *     E[(a sin)^4] = E[a^4] * 3/8 with E[a^4] = (1.5^5 - 0.5^5) / 5 = 1.5125;
 *   adding: target - 1 = U1 + U2 - 1, triangular on [-1, 1]: E[z^2] = 1/6, E[z^4] = 1/15. */
static const double sine_base = 13.0 / 24, adding_base = 1.0 / 6;
static double sine_sd(void) { return sqrt(1.5125 * 3 / 8 - sine_base * sine_base); }
static double adding_sd(void) { return sqrt(1.0 / 15 - adding_base * adding_base); }

START_TEST(test_learn) {
    int k = _i / 2;
    const char *impl = _i % 2 ? "gates" : "fused";
    const char *args[] = {"--task",    learn_cfg[k].task,    "--impl",  impl,
                          "--hidden",  learn_cfg[k].hidden,  "--batch", learn_cfg[k].batch,
                          "--seq-len", learn_cfg[k].seq_len, "--lr",    learn_cfg[k].lr,
                          "--steps",   learn_cfg[k].steps,   "--out",   tmpdir,
                          NULL};
    ck_assert_msg(run(args) == 0, "%.1000s", err_text);
    ck_err("");
    result r = parse_result();
    ck_assert_str_eq(r.task, learn_cfg[k].task);
    ck_assert_str_eq(r.impl, impl);
    ck_assert_int_eq(r.steps, atoll(learn_cfg[k].steps));
    double samples = 16 * atof(learn_cfg[k].batch);
    switch (k) {
    case 0:
        ck_assert_double_le(fabs(r.baseline - sine_base), 4 * sine_sd() / sqrt(samples));
        ck_assert_msg(r.eval < r.baseline / 20, "sine %s: eval %g, baseline %g", impl, r.eval,
                      r.baseline);
        break;
    case 1:
        ck_assert_double_le(fabs(r.baseline - adding_base), 4 * adding_sd() / sqrt(samples));
        ck_assert_msg(r.eval < 0.02, "adding %s: eval %g, baseline %g", impl, r.eval, r.baseline);
        break;
    default:
        ck_assert_double_le(fabs(r.baseline - log(4.0)), 5e-6); /* 6 digits of log 4 */
        ck_assert_msg(r.eval < 0.1 * log(4.0), "recall %s: eval %g", impl, r.eval);
        break;
    }
}
END_TEST

/* The baselines with many held-out sequences (no training): the sampling error shrinks to
 * 0.003 (sine) and 0.001 (adding), so a wrong data generator cannot hide in it. */
START_TEST(test_baselines) {
    const char *sine[] = {"--task",  "sine", "--hidden", "4",    "--batch", "2048",
                          "--steps", "0",    "--out",    tmpdir, NULL};
    ck_assert_msg(run(sine) == 0, "%.1000s", err_text);
    result r = parse_result();
    ck_assert_str_eq(r.task, "sine");
    ck_assert_int_eq(r.steps, 0);
    ck_assert_double_le(fabs(r.baseline - sine_base), 4 * sine_sd() / sqrt(16 * 2048.0));
    const char *adding[] = {"--task",  "adding", "--hidden", "4",    "--batch", "2048",
                            "--steps", "0",      "--out",    tmpdir, NULL};
    ck_assert_msg(run(adding) == 0, "%.1000s", err_text);
    r = parse_result();
    ck_assert_str_eq(r.task, "adding");
    ck_assert_double_le(fabs(r.baseline - adding_base), 4 * adding_sd() / sqrt(16 * 2048.0));
    const char *recall[] = {"--task",  "recall", "--hidden", "4",    "--batch", "4",
                            "--steps", "0",      "--out",    tmpdir, NULL};
    ck_assert_msg(run(recall) == 0, "%.1000s", err_text);
    ck_assert_ptr_nonnull(strstr(out_text, " baseline=1.38629 "));
}
END_TEST

/* ---- resume -------------------------------------------------------------------------- */

static sg_st_file *load(const char *path) {
    sg_st_file *f = sg_safetensors_load(ctx, path);
    ck_assert_msg(f != NULL, "%s", sg_ctx_error(ctx));
    return f;
}

/* Number of tensors of a and b (same names, dtypes and shapes required) whose bytes
 * differ. */
static int count_differing(const sg_st_file *a, const sg_st_file *b) {
    ck_assert_int_eq(sg_st_count(a), sg_st_count(b));
    int differ = 0;
    for (int i = 0; i < sg_st_count(a); i++) {
        ck_assert_str_eq(sg_st_name(a, i), sg_st_name(b, i));
        const sg_tensor *x = sg_st_tensor(a, i), *y = sg_st_tensor(b, i);
        ck_assert_int_eq(x->dtype, y->dtype);
        ck_assert_int_eq(x->ndim, y->ndim);
        for (int d = 0; d < x->ndim; d++)
            ck_assert_int_eq(x->shape[d], y->shape[d]);
        ck_assert(sg_is_contiguous(x) && sg_is_contiguous(y));
        size_t bytes = (size_t)sg_numel(x) * sg_dtype_size(x->dtype);
        differ += memcmp(sg_data(x), sg_data(y), bytes) != 0;
    }
    return differ;
}

/* Lines [from, ...) of a text, as a pointer into it. */
static const char *skip_lines(const char *s, int from) {
    for (int i = 0; i < from && s; i++) {
        s = strchr(s, '\n');
        s = s ? s + 1 : NULL;
    }
    ck_assert_ptr_nonnull(s);
    return s;
}

enum { N = 15 };

/* _i: bit 0 the implementation, bit 1 the optimizer (adam, SGD with momentum). */
START_TEST(test_resume) {
    const char *impl = _i & 1 ? "gates" : "fused";
    bool sgd = _i & 2;
    /* The options every run shares; RUN appends its own. */
    const char *args[32] = {"--task",      "sine",
                            "--impl",      impl,
                            "--hidden",    "8",
                            "--batch",     "8",
                            "--seq-len",   "10",
                            "--log-every", "1000",
                            "--clip",      "0.5",
                            "--optimizer", sgd ? "sgd" : "adam",
                            "--lr",        sgd ? "0.05" : "0.01"};
    int common = 0;
    while (args[common])
        common++;
    if (sgd) {
        args[common++] = "--momentum";
        args[common++] = "0.9";
    }
#define RUN(...)                                                                                   \
    do {                                                                                           \
        const char *more[] = {__VA_ARGS__, NULL};                                                  \
        int n = common;                                                                            \
        for (int j = 0; more[j]; j++)                                                              \
            args[n++] = more[j];                                                                   \
        args[n] = NULL;                                                                            \
        ck_assert_msg(run(args) == 0, "%.1000s", err_text);                                        \
        ck_err("");                                                                                \
    } while (0)

    char a_csv[4096], b_csv[4096];
    const char *a = tp("a.st"), *b = tp("b.st"), *c = tp("c.st");
    RUN("--steps", "30", "--save", a, "--out", tp("a"));
    result ra = parse_result();
    slurp(tp("a/loss_sine.csv"), a_csv, sizeof a_csv);

    RUN("--steps", "15", "--save", b, "--out", tp("b1"));
    sg_st_file *half = load(b);
    ck_assert_str_eq(sg_st_meta(half, "step"), "15");
    ck_assert_str_eq(sg_st_meta(half, "optimizer_steps"), "15");
    sg_st_free(half);

    RUN("--steps", "30", "--resume", b, "--save", b, "--out", tp("b2"));
    char resumed[300];
    snprintf(resumed, sizeof resumed, "resumed from %s at step %d\n", b, N);
    ck_assert_msg(!strncmp(out_text, resumed, strlen(resumed)), "got: %.1000s", out_text);
    result rb = parse_result();
    slurp(tp("b2/loss_sine.csv"), b_csv, sizeof b_csv);

    /* Every tensor (parameters and optimizer state) bit-identical, and the metadata too
     * (step, optimizer step count, the data generator's state). */
    sg_st_file *fa = load(a), *fb = load(b);
    ck_assert_int_eq(sg_st_count(fa), (sgd ? 2 : 3) * (_i & 1 ? 10 : 5));
    ck_assert(sg_st_has(fa, sgd ? "optim.dense.kernel.momentum_buffer"
                                : "optim.dense.kernel.exp_avg_sq"));
    ck_assert_int_eq(count_differing(fa, fb), 0);
    ck_assert_str_eq(sg_st_meta(fa, "step"), "30");
    ck_assert_str_eq(sg_st_meta(fa, "optimizer"), sgd ? "sgd" : "adam");
    ck_assert_int_eq(sg_st_meta_count(fa), sg_st_meta_count(fb));
    for (int i = 0; i < sg_st_meta_count(fa); i++) {
        ck_assert_str_eq(sg_st_meta_key(fa, i), sg_st_meta_key(fb, i));
        ck_assert_str_eq(sg_st_meta_value(fa, i), sg_st_meta_value(fb, i));
    }

    /* The same held-out loss, and the second half of the loss curve row for row. */
    ck_assert_double_eq(ra.eval, rb.eval);
    ck_assert_str_eq(skip_lines(a_csv, 1 + N), skip_lines(b_csv, 1));
    static char svg[1 << 16];
    slurp(tp("b2/loss_sine.svg"), svg, sizeof svg);
    ck_assert_ptr_nonnull(strstr(svg, ">step (15 .. 30)<"));

    /* In fact the whole files are the same bytes. */
    static char bytes_a[1 << 16], bytes_b[1 << 16];
    size_t len_a = slurp_bin(a, bytes_a, sizeof bytes_a),
           len_b = slurp_bin(b, bytes_b, sizeof bytes_b);
    ck_assert_uint_gt(len_a, 8);
    ck_assert_uint_lt(len_a, sizeof bytes_a);
    ck_assert_uint_eq(len_a, len_b);
    ck_assert_int_eq(memcmp(bytes_a, bytes_b, len_a), 0);

    /* The comparison can fail: another seed trains other parameters. */
    RUN("--steps", "30", "--seed", "2", "--save", c, "--out", tp("c"));
    sg_st_file *fc = load(c);
    ck_assert_int_eq(count_differing(fa, fc), sg_st_count(fa));
    ck_assert_str_ne(sg_st_meta(fa, "rng"), sg_st_meta(fc, "rng"));
    sg_st_free(fa);
    sg_st_free(fb);
    sg_st_free(fc);
#undef RUN
}
END_TEST

/* ---- the command line ---------------------------------------------------------------- */

START_TEST(test_help) {
    ck_assert_int_eq(run((const char *[]){"--help", NULL}), 0);
    ck_err("");
    ck_assert(!strncmp(out_text, "usage: train [options]\n", 23));
    static const char *const opts[] = {"--task sine|adding|recall",
                                       "--impl fused|gates",
                                       "--hidden N",
                                       "--batch N",
                                       "--seq-len N",
                                       "--steps N",
                                       "--lr X",
                                       "--momentum X",
                                       "--optimizer sgd|adam",
                                       "--clip X",
                                       "--seed N",
                                       "--dtype f32|f64",
                                       "--save PATH",
                                       "--save-every N",
                                       "--resume PATH",
                                       "--out DIR",
                                       "--log-every N",
                                       "--threads N",
                                       "--cell lstm|gru|rnn",
                                       "--layers N",
                                       "--embed N",
                                       "--dropout X",
                                       "--recurrent-dropout X",
                                       "--text PATH",
                                       "--temperature X",
                                       "--eval-every N",
                                       "--bidirectional",
                                       "--export-onnx PATH",
                                       "--help"};
    for (size_t i = 0; i < sizeof opts / sizeof *opts; i++)
        ck_assert_msg(strstr(out_text, opts[i]), "--help does not mention %s", opts[i]);

    /* README.md quotes the whole text (section "Training example"): keep them in sync. */
    static char readme[1 << 17];
    slurp(SG_SOURCE_DIR "/README.md", readme, sizeof readme);
    ck_assert_msg(strstr(readme, out_text), "README.md does not quote --help as it is now");
}
END_TEST

/* Bad command lines: exit 2, nothing on stdout, the reason on stderr, and nothing made. */
START_TEST(test_bad_options) {
    const char *out = tp("out");
    static const struct {
        const char *args[6], *message;
    } bad[] = {
        {{"--bogus"}, "train: unknown option or missing value: --bogus\n"},
        {{"--steps"}, "train: unknown option or missing value: --steps\n"},
        {{"--impl", "foo"}, "train: bad value 'foo' for --impl (allowed: fused or gates)\n"},
        {{"--steps", "-1"}, "train: bad value '-1' for --steps (allowed: an integer in 0..2^40)\n"},
        {{"--lr", "abc"}, "train: bad value 'abc' for --lr (allowed: a number > 0 and <= 1000)\n"},
        {{"--lr", "0.1x"},
         "train: bad value '0.1x' for --lr (allowed: a number > 0 and <= 1000)\n"},
        /* a value given is used or refused: 0 is not a learning rate (Adam took it for its
         * default 0.001) */
        {{"--lr", "0"}, "train: bad value '0' for --lr (allowed: a number > 0 and <= 1000)\n"},
        {{"--task", "xyz"},
         "train: bad value 'xyz' for --task (allowed: sine, adding, recall, text or classify)\n"},
        {{"--hidden", "0"}, "train: bad value '0' for --hidden (allowed: an integer in 1..4096)\n"},
        {{"--optimizer", "rmsprop"},
         "train: bad value 'rmsprop' for --optimizer (allowed: sgd or adam)\n"},
        {{"--dtype", "f16"}, "train: bad value 'f16' for --dtype (allowed: f32 or f64)\n"},
        {{"--log-every", "0"}, "train: bad value '0' for --log-every (allowed: an integer >= 1)\n"},
        {{"--task", "text", "--dropout", "1"},
         "train: bad value '1' for --dropout (allowed: a number in [0, 1))\n"},
        {{"--cell", "gru"}, "train: --cell does not apply to --task sine\n"},
        {{"--task", "text", "--bidirectional"},
         "train: --bidirectional does not apply to --task text\n"},
        {{"--task", "classify", "--text", "x"},
         "train: --text does not apply to --task classify\n"},
        {{"--task", "classify", "--seq-len", "4"},
         "train: the classify task needs --seq-len of at least 5\n"},
        {{"--task", "text", "--cell", "gru", "--impl", "gates"},
         "train: --impl applies to --cell lstm only (--cell gru given)\n"},
        {{"extra"}, "train: unexpected argument 'extra'\n"},
        {{"--save-every", "10"}, "train: --save-every needs --save PATH\n"},
        {{"--task", "adding", "--seq-len", "1"},
         "train: the adding task needs --seq-len of at least 2\n"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        const char *args[10] = {"--out", out};
        for (int j = 0; j < 6 && bad[i].args[j]; j++)
            args[2 + j] = bad[i].args[j];
        ck_assert_msg(run(args) == 2, "case %zu (%s): exit status not 2", i, bad[i].args[0]);
        ck_assert_str_eq(out_text, "");
        ck_assert_msg(!strncmp(err_text, bad[i].message, strlen(bad[i].message)),
                      "case %zu: expected '%s', got '%.1000s'", i, bad[i].message, err_text);
        ck_assert_msg(access(out, F_OK) != 0, "case %zu created %s", i, out);
    }
}
END_TEST

/* Failures after the options are read: exit 1 and a message naming the file. */
START_TEST(test_run_errors) {
    const char *missing = tp("missing.st"), *ck = tp("ck.st");
    const char *a1[] = {"--resume", missing, "--out", tmpdir, NULL};
    ck_assert_int_eq(run(a1), 1);
    char msg[512];
    snprintf(msg, sizeof msg,
             "train: resuming: sg_checkpoint_meta: %s: cannot open: No such file or directory\n",
             missing);
    ck_err(msg);

    /* A checkpoint of another model: the loader's message, nothing trained. */
    const char *a2[] = {"--hidden", "4", "--batch", "2",    "--steps", "3",
                        "--save",   ck,  "--out",   tmpdir, NULL};
    ck_assert_msg(run(a2) == 0, "%.1000s", err_text);
    const char *a3[] = {"--hidden", "5", "--steps", "6", "--resume", ck, "--out", tmpdir, NULL};
    ck_assert_int_eq(run(a3), 1);
    snprintf(msg, sizeof msg,
             "train: --hidden 5 conflicts with %s, which was saved with --hidden 4\n", ck);
    ck_err(msg);
    /* A checkpoint without the options (written before they were stored): the loader
     * compares the shapes. */
    sg_st_file *f0 = load(ck);
    sg_param_list bare = {0};
    for (int i = 0; i < sg_st_count(f0); i++)
        ck_assert_int_eq(sg_params_add(&bare, sg_st_name(f0, i), sg_st_tensor(f0, i)), 0);
    const char *keep[] = {"format", "step", "optimizer", "optimizer_steps", "rng"};
    const char *kv[12];
    for (int i = 0; i < 5; i++) {
        kv[2 * i] = keep[i];
        kv[2 * i + 1] = sg_st_meta(f0, keep[i]);
    }
    kv[10] = NULL;
    ck_assert_int_eq(sg_safetensors_save(ctx, tp("bare.st"), &bare, kv), 0);
    sg_params_clear(&bare);
    sg_st_free(f0);
    const char *a3b[] = {"--hidden",    "5",     "--steps", "6", "--resume",
                         tp("bare.st"), "--out", tmpdir,    NULL};
    ck_assert_int_eq(run(a3b), 1);
    snprintf(msg, sizeof msg,
             "train: resuming: sg_checkpoint_load: %s: tensor 'lstm.kernel' has shape (1, 16), "
             "expected (1, 20)\n",
             tp("bare.st"));
    ck_err(msg);
    ck_assert_ptr_null(strstr(out_text, "step "));

    /* A checkpoint already past --steps. */
    const char *a4[] = {"--hidden", "4",      "--batch", "2",     "--steps", "2", "--resume",
                        ck,         "--save", ck,        "--out", tmpdir,    NULL};
    ck_assert_int_eq(run(a4), 1);
    snprintf(msg, sizeof msg, "train: %s is at step 3, past --steps 2\n", ck);
    ck_err(msg);
    sg_st_file *f = load(ck);
    ck_assert_str_eq(sg_st_meta(f, "step"), "3"); /* untouched */
    sg_st_free(f);

    /* An --out that cannot be made fails before any training. */
    const char *a5[] = {"--out", "/nonexistent/dir", NULL};
    ck_assert_int_eq(run(a5), 1);
    ck_err("train: --out /nonexistent/dir: cannot create: No such file or directory\n");
    ck_assert_str_eq(out_text, "");
}
END_TEST

/* Rewrite the metadata value of `key` in the safetensors file at path (8-byte
 * little-endian header length, then the JSON header, then the data): the header is spliced
 * and its length rewritten, padded with spaces to a multiple of 8 as seqgrad writes it. */
static void set_meta(const char *path, const char *key, const char *value) {
    static char buf[1 << 16], out[1 << 16];
    size_t len = slurp_bin(path, buf, sizeof buf);
    ck_assert_uint_gt(len, 8);
    ck_assert_uint_lt(len, sizeof buf);
    uint64_t hlen = 0;
    for (int i = 7; i >= 0; i--)
        hlen = hlen << 8 | (unsigned char)buf[i];
    ck_assert_uint_le(hlen, len - 8);
    char pat[128];
    snprintf(pat, sizeof pat, "\"%s\":\"", key);
    char *header = buf + 8, *at = memmem(header, hlen, pat, strlen(pat));
    ck_assert_msg(at != NULL, "%s: no metadata %s", path, key);
    char *v = at + strlen(pat), *end = memchr(v, '"', (size_t)(header + hlen - v));
    ck_assert_ptr_nonnull(end);
    /* the header without its padding, with the new value */
    size_t used = hlen;
    while (used > 0 && header[used - 1] == ' ')
        used--;
    size_t before = (size_t)(v - header), after = used - (size_t)(end - header);
    size_t nh = before + strlen(value) + after, padded = (nh + 7) / 8 * 8;
    ck_assert_uint_lt(8 + padded + (len - 8 - hlen), sizeof out);
    for (int i = 0; i < 8; i++)
        out[i] = (char)(padded >> (8 * i) & 0xff);
    memcpy(out + 8, header, before);
    memcpy(out + 8 + before, value, strlen(value));
    memcpy(out + 8 + before + strlen(value), end, after);
    memset(out + 8 + nh, ' ', padded - nh);
    memcpy(out + 8 + padded, header + hlen, len - 8 - hlen);
    FILE *f = fopen(path, "wb");
    ck_assert_ptr_nonnull(f);
    ck_assert_uint_eq(fwrite(out, 1, 8 + padded + (len - 8 - hlen), f),
                      8 + padded + (len - 8 - hlen));
    ck_assert_int_eq(fclose(f), 0);
}

/* stderr is one line starting with "train: " that contains every string of the
 * NULL-terminated list (the words that must be in the message; the loader may refuse some
 * of these checkpoints itself, in its own words, before train's checks see them). */
static void ck_err_has(const char *const *words) {
    size_t n = strlen(err_text);
    ck_assert_msg(!strncmp(err_text, "train: ", 7) && n > 0 && err_text[n - 1] == '\n' &&
                      strchr(err_text, '\n') == err_text + n - 1,
                  "stderr is not one 'train: ' line: '%.1000s'", err_text);
    for (int i = 0; words[i]; i++)
        ck_assert_msg(strstr(err_text, words[i]), "stderr lacks '%s': '%.1000s'", words[i],
                      err_text);
}

/* Counters in a checkpoint are validated before they are used: a negative step (which
 * indexed the loss curve at -5 and aborted with a heap corruption), a step past --steps,
 * an optimizer step count other than the step (train makes one optimizer step per step),
 * and a data generator state the generator cannot leave (all zero: it spun forever). Each
 * is exit 1, one line naming the file and the field, and nothing trained. */
START_TEST(test_resume_bad_counters) {
    const char *ck = tp("ck.st"), *bad = tp("bad.st");
    const char *save[] = {"--hidden", "4", "--batch", "2",    "--steps", "3",
                          "--save",   ck,  "--out",   tmpdir, NULL};
    ck_assert_msg(run(save) == 0, "%.1000s", err_text);
    static char orig[1 << 16];
    size_t len = slurp_bin(ck, orig, sizeof orig);
    ck_assert_uint_gt(len, 8);
    const char *resume[] = {"--hidden", "4", "--batch", "2",    "--steps", "6",
                            "--resume", bad, "--out",   tmpdir, NULL};
    char msg[512];
    run_time_limit = 60; /* the all-zero generator state looped forever */

    /* the file unchanged resumes (the editing itself is sound) */
    FILE *f = fopen(bad, "wb");
    ck_assert_ptr_nonnull(f);
    ck_assert_uint_eq(fwrite(orig, 1, len, f), len);
    ck_assert_int_eq(fclose(f), 0);
    set_meta(bad, "step", "3");
    ck_assert_msg(run(resume) == 0, "%.1000s", err_text);
    snprintf(msg, sizeof msg, "resumed from %s at step 3\n", bad);
    ck_assert_msg(!strncmp(out_text, msg, strlen(msg)), "got: %.1000s", out_text);

    static const struct {
        const char *key, *value, *words[3];
    } cases[] = {
        {"step", "-5", {"step", "-5"}},
        {"step", "-9223372036854775808", {"step", "-9223372036854775808"}},
        {"step", "7", {"step 7", "--steps 6"}},
        {"optimizer_steps", "2", {"optimizer_steps", "2"}},
        {"optimizer_steps", "1000000", {"optimizer_steps", "1000000"}},
        {"rng",
         "0000000000000000 0000000000000000 0000000000000000 0000000000000000 "
         "0000000000000000 0",
         {"rng", "zero"}},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        f = fopen(bad, "wb");
        ck_assert_ptr_nonnull(f);
        ck_assert_uint_eq(fwrite(orig, 1, len, f), len);
        ck_assert_int_eq(fclose(f), 0);
        set_meta(bad, cases[i].key, cases[i].value);
        ck_assert_msg(run(resume) == 1, "case %zu (%s %s): exit status not 1", i, cases[i].key,
                      cases[i].value);
        const char *words[] = {bad, cases[i].words[0], cases[i].words[1], NULL};
        ck_err_has(words);
        ck_assert_msg(!strstr(out_text, "step ") && !strstr(out_text, "wrote "),
                      "case %zu trained: %.1000s", i, out_text);
    }
    run_time_limit = 0;
}
END_TEST

/* Plain progress lines, the CSV and the SVG files. */
START_TEST(test_outputs) {
    const char *out = tp("out"); /* made by the program */
    const char *args[] = {"--hidden",    "8",  "--batch", "8", "--seq-len", "10", "--steps", "25",
                          "--log-every", "10", "--out",   out, NULL};
    ck_assert_msg(run(args) == 0, "%.1000s", err_text);
    ck_err("");
    ck_assert_ptr_null(strchr(out_text, '\r')); /* not a terminal: no live line */
    result r = parse_result();
    ck_assert_int_eq(r.steps, 25);

    /* "step N/M loss X steps/s Y" after steps 10, 20 and the last, and no other. */
    static const long long want[] = {10, 20, 25};
    double logged[3];
    int lines = 0;
    for (const char *s = out_text; *s; s = strchr(s, '\n') + 1) {
        if (strncmp(s, "step ", 5) == 0) {
            long long n, m;
            double loss, rate;
            int used = -1;
            int got =
                sscanf(s, "step %lld/%lld loss %lf steps/s %lf%n", &n, &m, &loss, &rate, &used);
            ck_assert_msg(got == 4 && s[used] == '\n', "bad progress line: %.80s", s);
            ck_assert_int_lt(lines, 3);
            ck_assert_int_eq(n, want[lines]);
            ck_assert_int_eq(m, 25);
            ck_assert(loss > 0 && rate > 0);
            logged[lines++] = loss;
        }
    }
    ck_assert_int_eq(lines, 3);

    /* The CSV: a header, then one row per step, consistent with the progress lines. */
    static char csv[1 << 14];
    char path[512];
    snprintf(path, sizeof path, "%s/loss_sine.csv", out);
    slurp(path, csv, sizeof csv);
    ck_assert(!strncmp(csv, "step,loss\n", 10));
    const char *s = csv + 10;
    for (int step = 1; step <= 25; step++) {
        int n, used = -1;
        double loss;
        ck_assert_msg(sscanf(s, "%d,%lf%n", &n, &loss, &used) == 2 && s[used] == '\n',
                      "bad CSV row %d: %.40s", step, s);
        ck_assert_int_eq(n, step);
        ck_assert(isfinite(loss) && loss > 0);
        if (step % 10 == 0 || step == 25)
            ck_assert_double_eq_tol(loss, logged[step == 25 ? 2 : step / 10 - 1], 5.1e-6);
        s += used + 1;
    }
    ck_assert_str_eq(s, "");

    static const char *const svgs[] = {"loss_sine.svg", "predictions_sine.svg"};
    for (int i = 0; i < 2; i++) {
        static char svg[1 << 16];
        snprintf(path, sizeof path, "%s/%s", out, svgs[i]);
        slurp(path, svg, sizeof svg);
        ck_assert_msg(!strncmp(svg, "<svg", 4), "%s does not start with <svg", path);
        size_t n = strlen(svg);
        ck_assert(n > 12 && !strcmp(svg + n - 7, "</svg>\n"));
        char wrote[600];
        snprintf(wrote, sizeof wrote, "wrote %s\n", path);
        ck_assert_ptr_nonnull(strstr(out_text, wrote));
        /* axis titles (and tick labels) on both plots, the baseline in the legend */
        ck_assert_ptr_nonnull(strstr(svg, i == 0 ? ">step (0 .. 25)<" : ">target<"));
        ck_assert_ptr_nonnull(strstr(svg, i == 0 ? ">loss<" : ">prediction<"));
        ck_assert_ptr_nonnull(strstr(svg, i == 0 ? ">baseline<" : ">-1.5<"));
    }

    /* Other tasks: their own CSV and loss plot, no predictions plot. */
    const char *rec[] = {"--task",  "recall", "--hidden", "4",    "--batch", "4",
                         "--steps", "3",      "--out",    tmpdir, NULL};
    ck_assert_msg(run(rec) == 0, "%.1000s", err_text);
    ck_assert_int_eq(access(tp("loss_recall.csv"), R_OK), 0);
    ck_assert_int_eq(access(tp("loss_recall.svg"), R_OK), 0);
    ck_assert_int_ne(access(tp("predictions_sine.svg"), F_OK), 0);
    /* with no --log-every, only the last step is logged within the first 100 */
    ck_assert_ptr_nonnull(strstr(out_text, "\nstep 3/3 loss "));
    ck_assert_ptr_null(strstr(out_text, "\nstep 1/3 "));
}
END_TEST

/* Output and input paths are checked at the start, before any step (so before stdout gets
 * a line): each case runs with a million steps under a time limit, and must exit 1 at once
 * with an empty stdout and one line on stderr naming the option, the path and the reason.
 * A refused --save or --resume creates no --out directory. Writability is checked by
 * creating (and removing) a file in the directory, which is right for root too: root
 * writes into a read-only directory, so the chmod cases run only when not root; /proc,
 * where nobody creates files, is the case that runs always. */
START_TEST(test_start_path_errors) {
    const char *out = tp("out"), *file = tp("file"), *fifo = tp("fifo"), *ro = tp("ro");
    const char *ck = tp("ck.st");
    FILE *f = fopen(file, "w");
    ck_assert_ptr_nonnull(f);
    ck_assert_int_eq(fclose(f), 0);
    ck_assert_int_eq(mkfifo(fifo, 0644), 0);
    ck_assert_int_eq(mkdir(ro, 0555), 0);
    char missing_dir[300], missing[320], slash[320], in_ro[320], ro_out[320];
    snprintf(missing_dir, sizeof missing_dir, "%s/missing", tmpdir);
    snprintf(missing, sizeof missing, "%s/ck.st", missing_dir);
    snprintf(slash, sizeof slash, "%s/nodir/", tmpdir);
    snprintf(in_ro, sizeof in_ro, "%s/ck.st", ro);
    snprintf(ro_out, sizeof ro_out, "%s/out", ro);
    const bool root = geteuid() == 0;

    const struct {
        const char *opt, *value, *out;
        const char *msg, *a1, *a2; /* the message after "train: ", with a1 and a2 for %s */
        bool skip_as_root;
    } cases[] = {
        {"--save", "", out, "--save: empty path", NULL, NULL, false},
        {"--save", "/tmp", out, "--save /tmp: is a directory", NULL, NULL, false},
        {"--save", tmpdir, out, "--save %s: is a directory", tmpdir, NULL, false},
        {"--save", slash, out, "--save %s: names a directory (ends in '/')", slash, NULL, false},
        {"--save", fifo, out, "--save %s: not a regular file", fifo, NULL, false},
        {"--save", missing, out, "--save %s: cannot create files in %s: No such file or directory",
         missing, missing_dir, false},
        {"--save", "/proc/ck.st", out,
         "--save /proc/ck.st: cannot create files in /proc: No such file or directory", NULL, NULL,
         false},
        {"--save", in_ro, out, "--save %s: cannot create files in %s: Permission denied", in_ro, ro,
         true},
        {"--resume", "", out, "--resume: empty path", NULL, NULL, false},
        {"--resume", "/dev/zero", out, "--resume /dev/zero: not a regular file", NULL, NULL, false},
        {"--resume", tmpdir, out, "--resume %s: is a directory", tmpdir, NULL, false},
        {"--resume", fifo, out, "--resume %s: not a regular file", fifo, NULL, false},
        {"--save", ck, "", "--out: empty path", NULL, NULL, false},
        {"--save", ck, file, "--out %s: not a directory", file, NULL, false},
        {"--save", ck, "/proc", "--out /proc: cannot create files in it: No such file or directory",
         NULL, NULL, false},
        {"--save", ck, ro, "--out %s: cannot create files in it: Permission denied", ro, NULL,
         true},
        {"--save", ck, ro_out, "--out %s: cannot create: Permission denied", ro_out, NULL, true},
    };
    run_time_limit = 60; /* a million steps take ten minutes: refused at once, or killed */
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        if (cases[i].skip_as_root && root)
            continue; /* root writes into a read-only directory: nothing to refuse */
        const char *args[] = {"--steps", "1000000",    cases[i].opt, cases[i].value,
                              "--out",   cases[i].out, NULL};
        char msg[1024], want[1100];
        snprintf(msg, sizeof msg, cases[i].msg, cases[i].a1, cases[i].a2);
        snprintf(want, sizeof want, "train: %s\n", msg);
        ck_assert_msg(run(args) == 1, "case %zu (%s '%s'): exit status not 1: %.1000s", i,
                      cases[i].opt, cases[i].value, err_text);
        ck_err(want);
        ck_assert_msg(!strcmp(out_text, ""), "case %zu printed: %.1000s", i, out_text);
        if (cases[i].out == out)
            ck_assert_msg(access(out, F_OK) != 0, "case %zu created %s", i, out);
    }
    run_time_limit = 0;
    /* nothing made, and no probe file left behind */
    ck_assert_int_eq(access(ck, F_OK), -1);
    ck_assert_int_eq(access(ro_out, F_OK), -1);
    ck_assert_int_eq(access(missing_dir, F_OK), -1);
    DIR *d = opendir(tmpdir);
    ck_assert_ptr_nonnull(d);
    for (struct dirent *e; (e = readdir(d));)
        ck_assert_msg(strncmp(e->d_name, ".train", 6), "left behind: %s", e->d_name);
    closedir(d);
    ck_assert_int_eq(rmdir(ro), 0);
}
END_TEST

/* Every output is checked to the end (write, flush, close): a full disk is a message
 * naming the file and exit 1, not "wrote ..." and exit 0 over an empty file. The file is a
 * symlink to /dev/full (every write fails with ENOSPC), one output at a time; the others
 * are still written. An output that cannot be opened (a directory in its place) is the
 * same. stdout itself going to a full disk is exit 1 too. */
START_TEST(test_output_write_errors) {
    static const char *const names[] = {"loss_sine.csv", "loss_sine.svg", "predictions_sine.svg"};
    char out[300], path[400], want[600];
    for (int i = 0; i < 6; i++) {
        const char *name = names[i % 3];
        snprintf(out, sizeof out, "%s/out%d", tmpdir, i);
        ck_assert_int_eq(mkdir(out, 0777), 0);
        snprintf(path, sizeof path, "%s/%s", out, name);
        if (i < 3) {
            ck_assert_int_eq(symlink("/dev/full", path), 0);
            snprintf(want, sizeof want, "train: %s: write failed: No space left on device\n", path);
        } else {
            ck_assert_int_eq(mkdir(path, 0777), 0);
            snprintf(want, sizeof want, "train: %s: cannot open for writing: Is a directory\n",
                     path);
        }
        const char *args[] = {"--hidden", "4", "--batch", "2", "--steps", "5", "--out", out, NULL};
        ck_assert_msg(run(args) == 1, "%s: exit status not 1: %.1000s", name, err_text);
        ck_err(want);
        ck_assert_ptr_nonnull(strstr(out_text, "held-out loss "));
        ck_assert_ptr_null(strstr(out_text, "result: "));
        for (int k = 0; k < 3; k++) {
            char wrote[600];
            snprintf(wrote, sizeof wrote, "wrote %s/%s\n", out, names[k]);
            ck_assert_msg((strstr(out_text, wrote) != NULL) == (k != i % 3), "%s: %s", name,
                          out_text);
        }
    }

    /* stdout on a full disk */
    run_stdout_path = "/dev/full";
    const char *args[] = {"--hidden", "4", "--batch", "2", "--steps", "5", "--out", tmpdir, NULL};
    ck_assert_int_eq(run(args), 1);
    ck_err("train: stdout: write failed: No space left on device\n");
    run_stdout_path = NULL;
}
END_TEST

/* ---- text, generate, classify --------------------------------------------------------- */

static char gen_exe[PATH_MAX + 64];

/* Run examples/generate instead of train. */
static int run_generate(const char *const *args) {
    char keep[sizeof exe];
    memcpy(keep, exe, sizeof exe);
    memcpy(exe, gen_exe, sizeof exe);
    int rc = run(args);
    memcpy(exe, keep, sizeof exe);
    return rc;
}

/* A small text of n bytes: words from a fixed list in a fixed pseudo-random order. */
static void make_text(const char *path, int n) {
    static const char *const words[] = {"the ",  "quick ", "brown ", "fox ",  "jumps ",  "over ",
                                        "lazy ", "dog. ",  "A ",     "cat\n", "sleeps ", "in, "};
    FILE *f = fopen(path, "wb");
    ck_assert_ptr_nonnull(f);
    unsigned x = 12345;
    for (int k = 0; k < n;) {
        x = x * 1103515245u + 12345u;
        const char *w = words[(x >> 16) % 12];
        for (; *w && k < n; w++, k++)
            fputc(*w, f);
    }
    ck_assert_int_eq(fclose(f), 0);
}

/* The last line of stdout, into line. */
static void last_line(char *line, size_t n) {
    size_t len = strlen(out_text);
    ck_assert_msg(len > 0 && out_text[len - 1] == '\n', "stdout: %.1000s", out_text);
    const char *start = out_text + len - 1;
    while (start > out_text && start[-1] != '\n')
        start--;
    ck_assert_uint_lt((size_t)(out_text + len - 1 - start), n);
    memcpy(line, start, (size_t)(out_text + len - 1 - start));
    line[out_text + len - 1 - start] = 0;
}

/* The text task's result line: its held-out loss, baseline and bits per byte (bpc =
 * eval_loss / ln 2, to the 4 digits printed). */
static void parse_text_result(double *eval, double *base, double *bpc) {
    char line[512], cell[16], impl[16];
    last_line(line, sizeof line);
    long long steps;
    double sec;
    int used = -1;
    int got = sscanf(line,
                     "result: task=text cell=%15[a-z] impl=%15[a-z] eval_loss=%lf baseline=%lf "
                     "bpc=%lf steps=%lld seconds=%lf%n",
                     cell, impl, eval, base, bpc, &steps, &sec, &used);
    ck_assert_msg(got == 7 && used == (int)strlen(line), "bad result line: '%s'", line);
    ck_assert_double_eq_tol(*bpc, *eval / log(2.0), 1e-4);
}

/* The options of the small text runs: 800 bytes make 4 streams of 179 bytes, 22 steps of 8
 * per epoch, so 30 steps wrap around once (the state reset); two layers with dropout, so
 * the dropout masks' generator must resume too. */
#define TEXT_OPTS(t)                                                                               \
    "--task", "text", "--text", (t), "--hidden", "8", "--embed", "4", "--batch", "4", "--seq-len", \
        "8", "--layers", "2", "--dropout", "0.1", "--recurrent-dropout", "0.1", "--log-every",     \
        "1000"

/* Training 30 steps at once and 11 + 19 through a checkpoint gives the same bytes: the
 * checkpoint, the held-out loss, and the loss CSV, which the resumed run appends to. The
 * resumed run is given no option of the model or the data: the checkpoint has them. */
START_TEST(test_text_resume) {
    /* copies: tp's buffers are reused after 16 calls */
    char text[256], a[256], b[256];
    snprintf(text, sizeof text, "%s", tp("t.txt"));
    snprintf(a, sizeof a, "%s", tp("a.st"));
    snprintf(b, sizeof b, "%s", tp("b.st"));
    make_text(text, 800);
    const char *ra[] = {TEXT_OPTS(text), "--steps", "30", "--save", a, "--out", tp("A"), NULL};
    ck_assert_msg(run(ra) == 0, "%.1000s", err_text);
    ck_err("");
    double ea, ba, pa, eb, bb, pb;
    parse_text_result(&ea, &ba, &pa);
    ck_assert(ea > 0 && ba > 0);
    ck_assert_ptr_nonnull(strstr(out_text, "streams=4 x 179 (22 steps per epoch)\n"));
    const char *rb1[] = {TEXT_OPTS(text), "--steps", "11", "--save", b, "--out", tp("B"), NULL};
    ck_assert_msg(run(rb1) == 0, "%.1000s", err_text);
    const char *rb2[] = {"--resume", b, "--steps", "30", "--save", b, "--out", tp("B"), NULL};
    ck_assert_msg(run(rb2) == 0, "%.1000s", err_text);
    ck_err("");
    parse_text_result(&eb, &bb, &pb);
    ck_assert_double_eq(ea, eb);
    ck_assert_double_eq(ba, bb);

    static char csv_a[1 << 15], csv_b[1 << 15];
    slurp(tp("A/loss_text.csv"), csv_a, sizeof csv_a);
    slurp(tp("B/loss_text.csv"), csv_b, sizeof csv_b);
    ck_assert_str_eq(skip_lines(csv_a, 31), ""); /* the header and 30 rows */
    ck_assert_str_eq(csv_a, csv_b);
    static char svg[1 << 16];
    slurp(tp("B/loss_text.svg"), svg, sizeof svg);
    ck_assert_ptr_nonnull(strstr(svg, ">step (0 .. 30)<")); /* the whole run, resumed or not */
    ck_assert_ptr_nonnull(strstr(svg, ">bits per character<"));
    ck_assert_ptr_nonnull(strstr(svg, ">30<"));
    static char bytes_a[1 << 16], bytes_b[1 << 16];
    size_t la = slurp_bin(a, bytes_a, sizeof bytes_a), lb = slurp_bin(b, bytes_b, sizeof bytes_b);
    ck_assert_uint_gt(la, 8);
    ck_assert_uint_lt(la, sizeof bytes_a);
    ck_assert_uint_eq(la, lb);
    ck_assert_int_eq(memcmp(bytes_a, bytes_b, la), 0);

    /* what the checkpoint carries */
    sg_st_file *f = load(b);
    ck_assert_str_eq(sg_st_meta(f, "train.task"), "text");
    ck_assert_str_eq(sg_st_meta(f, "train.hidden"), "8");
    ck_assert_str_eq(sg_st_meta(f, "train.dropout"), "0.10000000000000001");
    ck_assert_str_eq(sg_st_meta(f, "train.text-bytes"), "800");
    ck_assert_str_eq(sg_st_meta(f, "train.text-position"), "8"); /* 30 = 22 + 8 */
    ck_assert_str_eq(sg_st_meta(f, "train.vocab"),
                     "0a202c2e416162636465666768696a6b6c6d6e6f707172737475767778797a");
    ck_assert(sg_st_has(f, "tbptt.h") && sg_st_has(f, "tbptt.c"));
    sg_st_free(f);

    /* a data position that does not fit the step */
    FILE *bf = fopen(tp("bad.st"), "wb");
    ck_assert_ptr_nonnull(bf);
    ck_assert_uint_eq(fwrite(bytes_b, 1, lb, bf), lb);
    ck_assert_int_eq(fclose(bf), 0);
    set_meta(tp("bad.st"), "train.text-position", "3");
    const char *p1[] = {"--resume", tp("bad.st"), "--steps", "40", "--out", tp("B"), NULL};
    ck_assert_int_eq(run(p1), 1);
    char pmsg[1024];
    snprintf(pmsg, sizeof pmsg,
             "train: %s: metadata train.text-position '3' is not step 30's place in an epoch of "
             "22 steps (8)\n",
             tp("bad.st"));
    ck_err(pmsg);

    /* an option that differs from the checkpoint's: refused, naming both */
    const char *c1[] = {"--resume", b, "--steps", "40", "--hidden", "9", "--out", tp("B"), NULL};
    ck_assert_int_eq(run(c1), 1);
    char msg[2048];
    snprintf(msg, sizeof msg,
             "train: --hidden 9 conflicts with %s, which was saved with --hidden 8\n", b);
    ck_err(msg);
    const char *c2[] = {"--resume", b, "--steps", "40", "--cell", "gru", "--out", tp("B"), NULL};
    ck_assert_int_eq(run(c2), 1);
    snprintf(msg, sizeof msg,
             "train: --cell gru conflicts with %s, which was saved with --cell lstm\n", b);
    ck_err(msg);
    /* --steps equal to the checkpoint's step: nothing to do, and nothing written */
    const char *n1[] = {"--resume", b, "--steps", "30", "--out", tp("B"), NULL};
    ck_assert_int_eq(run(n1), 0);
    ck_err("");
    snprintf(msg, sizeof msg,
             "train: %s is at step 30 already, as --steps 30 asks: nothing to do\n", b);
    ck_assert_str_eq(out_text, msg);
    /* one given with the same value is fine; another text is not */
    const char *other = tp("o.txt");
    make_text(other, 900);
    const char *c3[] = {"--resume", b,     "--steps", "40",    "--hidden", "8",
                        "--text",   other, "--out",   tp("B"), NULL};
    ck_assert_int_eq(run(c3), 1);
    snprintf(msg, sizeof msg,
             "train: --text %s conflicts with %s, which was saved with --text %s\n", other, b,
             text);
    ck_err(msg);
    /* the same path with other contents */
    make_text(text, 900);
    const char *c4[] = {"--resume", b, "--steps", "40", "--out", tp("B"), NULL};
    ck_assert_int_eq(run(c4), 1);
    snprintf(msg, sizeof msg,
             "train: --text %s (900 bytes, 31 distinct) is not the text %s was trained on (800 "
             "bytes, 31 distinct)\n",
             text, b);
    ck_err(msg);
}
END_TEST

/* generate: exactly the prime and N characters on stdout, the same for the same seed; its
 * first 200 characters without a prime are train's sample; and its errors. */
START_TEST(test_generate) {
    const char *text = tp("t.txt"), *ck = tp("ck.st");
    make_text(text, 800);
    const char *tr[] = {TEXT_OPTS(text), "--steps", "5",     "--seed", "3",
                        "--save",        ck,        "--out", tmpdir,   NULL};
    ck_assert_msg(run(tr) == 0, "%.1000s", err_text);
    const char *head = "sample (200 characters, temperature 0.8):\n";
    const char *at = strstr(out_text, head);
    ck_assert_ptr_nonnull(at);
    char sample[201];
    memcpy(sample, at + strlen(head), 200);
    sample[200] = 0;
    ck_assert_int_eq(at[strlen(head) + 200], '\n');

    const char *g1[] = {ck, "--length", "200", "--seed", "3", NULL};
    ck_assert_msg(run_generate(g1) == 0, "%.1000s", err_text);
    ck_err("");
    ck_assert_str_eq(out_text, sample);

    const char *g2[] = {ck, "--length", "50", "--seed", "7", "--prime", "the ", NULL};
    ck_assert_msg(run_generate(g2) == 0, "%.1000s", err_text);
    char first[128];
    ck_assert_uint_lt(strlen(out_text), sizeof first);
    memcpy(first, out_text, strlen(out_text) + 1);
    ck_assert_uint_eq(strlen(first), 54);
    ck_assert(!strncmp(first, "the ", 4));
    ck_assert_msg(run_generate(g2) == 0, "%.1000s", err_text);
    ck_assert_str_eq(out_text, first);
    const char *g3[] = {ck, "--length", "50", "--seed", "8", "--prime", "the ", NULL};
    ck_assert_msg(run_generate(g3) == 0, "%.1000s", err_text);
    ck_assert_str_ne(out_text, first);
    /* greedy: the seed does not matter; top-k 1 is greedy too */
    const char *g4[] = {ck, "--length", "30", "--seed", "1", "--temperature", "0", NULL};
    const char *g5[] = {ck, "--length", "30", "--seed", "2", "--top-k", "1", NULL};
    ck_assert_msg(run_generate(g4) == 0, "%.1000s", err_text);
    ck_assert_uint_lt(strlen(out_text), sizeof first);
    memcpy(first, out_text, strlen(out_text) + 1);
    ck_assert_uint_eq(strlen(first), 30);
    ck_assert_msg(run_generate(g5) == 0, "%.1000s", err_text);
    ck_assert_str_eq(out_text, first);
    const char *g6[] = {ck, "--length", "0", NULL};
    ck_assert_msg(run_generate(g6) == 0, "%.1000s", err_text);
    ck_assert_str_eq(out_text, "");

    /* errors: exit 2 for the command line, 1 for the files; nothing on stdout */
    const char *e1[] = {NULL};
    ck_assert_int_eq(run_generate(e1), 2);
    ck_assert(!strncmp(err_text, "generate: no checkpoint given\n", 30));
    const char *e2[] = {ck, "--length", "-1", NULL};
    ck_assert_int_eq(run_generate(e2), 2);
    ck_err("generate: bad value '-1' for --length (allowed: an integer in 0..2^40)\n");
    const char *e3[] = {ck, "--prime", "the~", NULL};
    ck_assert_int_eq(run_generate(e3), 1);
    ck_err("generate: --prime: byte 0x7e at 3 is not in the vocabulary\n");
    ck_assert_str_eq(out_text, "");
    const char *e4[] = {tp("missing.st"), NULL};
    ck_assert_int_eq(run_generate(e4), 1);
    char msg[1024];
    snprintf(msg, sizeof msg,
             "generate: sg_checkpoint_meta: %s: cannot open: No such file or directory\n",
             tp("missing.st"));
    ck_err(msg);
    const char *toy[] = {"--hidden",   "4",     "--steps", "1", "--save",
                         tp("toy.st"), "--out", tmpdir,    NULL};
    ck_assert_msg(run(toy) == 0, "%.1000s", err_text);
    const char *e5[] = {tp("toy.st"), NULL};
    ck_assert_int_eq(run_generate(e5), 1);
    snprintf(msg, sizeof msg, "generate: %s: metadata 'train.task' has a bad value 'sine'\n",
             tp("toy.st"));
    ck_err(msg);
}
END_TEST

/* Texts train refuses, before any step: exit 1, one line naming the file. */
START_TEST(test_text_refused) {
    const char *empty = tp("empty.txt"), *same = tp("same.txt"), *shrt = tp("short.txt");
    FILE *f = fopen(empty, "wb");
    ck_assert_int_eq(fclose(f), 0);
    f = fopen(same, "wb");
    fputs("aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", f);
    ck_assert_int_eq(fclose(f), 0);
    make_text(shrt, 500);
    const struct {
        const char *path, *msg;
    } cases[] = {
        {tp("missing.txt"), "train: --text %s: cannot open: No such file or directory\n"},
        {empty, "train: --text %s: empty file\n"},
        {same, "train: --text %s: every byte is 0x61: a single distinct byte leaves nothing to "
               "predict\n"},
        {shrt, "train: --text %s: 450 training bytes make 32 streams of 14 bytes, fewer than "
               "--seq-len 64\n"},
        {tmpdir, "train: --text %s: is a directory\n"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        const char *args[] = {"--task", "text", "--text", cases[i].path, "--out", tp("out"), NULL};
        ck_assert_msg(run(args) == 1, "case %zu: %.1000s", i, err_text);
        char msg[1024];
        snprintf(msg, sizeof msg, cases[i].msg, cases[i].path);
        ck_err(msg);
        ck_assert_ptr_null(strstr(out_text, "step "));
    }
}
END_TEST

/* classify: variable lengths and a label that needs the whole sequence; a short run beats
 * the majority class; both directions work. */
START_TEST(test_classify) {
    const char *args[] = {"--task", "classify", "--hidden", "16",    "--embed", "4", "--steps",
                          "150",    "--lr",     "0.02",     "--out", tmpdir,    NULL};
    ck_assert_msg(run(args) == 0, "%.1000s", err_text);
    ck_err("");
    char line[512], cell[16], impl[16];
    last_line(line, sizeof line);
    double eval, base, acc, maj, sec;
    long long steps;
    int used = -1;
    int got = sscanf(line,
                     "result: task=classify cell=%15[a-z] impl=%15[a-z] eval_loss=%lf "
                     "baseline=%lf accuracy=%lf majority=%lf steps=%lld seconds=%lf%n",
                     cell, impl, &eval, &base, &acc, &maj, &steps, &sec, &used);
    ck_assert_msg(got == 8 && used == (int)strlen(line), "bad result line: '%s'", line);
    /* label 0 (ties included) is the larger class: about 0.56 for lengths 5 .. 40 */
    ck_assert_msg(maj > 0.5 && maj < 0.65, "majority %g", maj);
    ck_assert_msg(acc > maj + 0.15, "accuracy %g vs majority %g", acc, maj);
    ck_assert_msg(eval < base, "eval %g vs baseline %g", eval, base);

    const char *bi[] = {
        "--task",  "classify", "--bidirectional", "--cell", "gru",   "--hidden", "4",
        "--embed", "2",        "--steps",         "3",      "--out", tmpdir,     NULL};
    ck_assert_msg(run(bi) == 0, "%.1000s", err_text);
    ck_assert_ptr_nonnull(strstr(out_text, "result: task=classify cell=gru impl=none "));
}
END_TEST

/* The held-out line says worse, with the ratio, when the model is worse than the
 * baseline (an untrained model on the adding task answers about 0 against the baseline's 1). */
START_TEST(test_worse_than_baseline) {
    const char *args[] = {"--task", "adding", "--hidden", "4", "--steps",
                          "0",      "--out",  tmpdir,     NULL};
    ck_assert_msg(run(args) == 0, "%.1000s", err_text);
    const char *at = strstr(out_text, "held-out loss ");
    ck_assert_ptr_nonnull(at);
    double eval, base, ratio;
    int used = -1;
    ck_assert_int_eq(sscanf(at, "held-out loss %lf vs baseline %lf (%lfx worse)\n%n", &eval, &base,
                            &ratio, &used),
                     3);
    ck_assert(used > 0);
    ck_assert(eval > base);
    ck_assert_double_eq_tol(ratio, eval / base, 0.006);
}
END_TEST

/* Find a program (find_program: into exe) and check it can run. */
static bool have_program(const char *env_var, const char *name) {
    find_program(env_var, name);
    if (access(exe, X_OK) == 0)
        return true;
    fprintf(stderr, "test_train: %s is not an executable (build examples/%s, or set %s)\n", exe,
            name, env_var);
    return false;
}

int main(void) {
    if (!have_program("SG_GENERATE", "generate"))
        return EXIT_FAILURE;
    memcpy(gen_exe, exe, sizeof exe);
    if (!have_program("SG_TRAIN", "train"))
        return EXIT_FAILURE;
    snprintf(root, sizeof root, "/tmp/sg_train_XXXXXX");
    if (!mkdtemp(root)) {
        perror("test_train: mkdtemp");
        return EXIT_FAILURE;
    }
    const ck_tcase tcases[] = {
        {"learn", 300, {{test_learn, 6}, {test_baselines, 1}}},
        {"resume", 300, {{test_resume, 4}}},
        {"text",
         300,
         {{test_text_resume, 1},
          {test_generate, 1},
          {test_text_refused, 1},
          {test_classify, 1},
          {test_worse_than_baseline, 1}}},
        {"cli",
         300,
         {{test_help, 1},
          {test_bad_options, 1},
          {test_run_errors, 1},
          {test_resume_bad_counters, 1},
          {test_start_path_errors, 1},
          {test_outputs, 1},
          {test_output_write_errors, 1}}},
    };
    int status = CK_RUN("train", tcases, setup, teardown);
    rm_tree(root);
    return status;
}
