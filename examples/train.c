/* train: the toy sequence-training program. An LSTM (either implementation) reads a
 * sequence, a Dense layer maps its last hidden state to the answer, and an optimizer
 * trains both on data generated here from a seeded generator (nothing to download).
 *
 * Tasks:
 *   sine    predict the next value of a noisy sine wave (random amplitude, frequency,
 *           phase) from the previous T values; MSE; baseline: always answer 0.
 *   adding  Hochreiter & Schmidhuber's adding problem: T >= 50 steps of (value, marker),
 *           two markers; answer the sum of the two marked values; MSE; baseline:
 *           always answer 1 (MSE 1/6 = 0.167).
 *   recall  classification: a one-hot symbol (of K = 4) at step 0, then T-1 steps of
 *           noise symbols; answer the first symbol; cross-entropy; baseline: uniform
 *           guess (log 4 = 1.386).
 *
 * Output: progress (a live line on a terminal, a plain line every --log-every steps
 * otherwise), the held-out loss beside the baseline, the loss curve as CSV and SVG, for
 * sine a plot of predictions against targets, and a last line
 *   result: task=<task> impl=<impl> eval_loss=<x> baseline=<y> steps=<n> seconds=<s>
 */
#define _POSIX_C_SOURCE 200809L
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "plot.h"
#include "seqgrad.h"

typedef enum { TASK_SINE, TASK_ADDING, TASK_RECALL } task_kind;
static const char *const task_names[] = {"sine", "adding", "recall"};
enum { RECALL_K = 4 };

typedef struct {
    task_kind task;
    sg_lstm_impl impl;
    int64_t hidden, batch, seq_len, steps;
    double lr, momentum, clip;
    int adam;
    uint64_t seed;
    const char *save, *resume, *out_dir;
    int64_t save_every, log_every;
    int threads;
    sg_dtype dtype;
} config;

static void usage(FILE *f) {
    fprintf(f, "usage: train [options]\n"
               "  --task sine|adding|recall   task to learn (default sine)\n"
               "  --impl fused|gates          LSTM implementation (default fused)\n"
               "  --hidden N                  LSTM units (default 32)\n"
               "  --batch N                   sequences per step (default 32)\n"
               "  --seq-len N                 time steps (default: sine 20, adding 50, recall 10)\n"
               "  --steps N                   total training steps (default: sine 1500,\n"
               "                              adding 3000, recall 1000)\n"
               "  --lr X                      learning rate (default: adam 0.01, sgd 0.1)\n"
               "  --momentum X                SGD momentum (default 0.9)\n"
               "  --optimizer sgd|adam        optimizer (default adam)\n"
               "  --clip X                    clip gradients to global norm X (default 1; 0 off)\n"
               "  --seed N                    seed for weights and data (default 1)\n"
               "  --dtype f32|f64             precision (default f32)\n"
               "  --save PATH                 write a checkpoint at the end\n"
               "  --save-every N              ... and every N steps\n"
               "  --resume PATH               continue from a checkpoint\n"
               "  --out DIR                   where CSV/SVG files go (default train_out)\n"
               "  --log-every N               progress line every N steps when not a terminal\n"
               "                              (default 100)\n"
               "  --threads N                 BLIS threads (default 1)\n"
               "  --help                      this text\n");
}

/* Strict number parsing: the whole argument must be a number in range. */
static int parse_i64(const char *s, int64_t lo, int64_t hi, int64_t *out) {
    char *end;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    if (errno || end == s || *end || v < lo || v > hi)
        return -1;
    *out = v;
    return 0;
}
static int parse_f64(const char *s, double lo, double hi, double *out) {
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (errno || end == s || *end || !(v >= lo && v <= hi))
        return -1;
    *out = v;
    return 0;
}

static int parse_args(int argc, char **argv, config *c) {
    *c = (config){.task = TASK_SINE,
                  .impl = SG_LSTM_FUSED,
                  .hidden = 32,
                  .batch = 32,
                  .seq_len = -1,
                  .steps = -1,
                  .lr = -1,
                  .momentum = 0.9,
                  .clip = 1.0,
                  .adam = 1,
                  .seed = 1,
                  .out_dir = "train_out",
                  .log_every = 100,
                  .threads = 1,
                  .dtype = SG_F32};
    enum {
        O_TASK = 256,
        O_IMPL,
        O_HIDDEN,
        O_BATCH,
        O_SEQ,
        O_STEPS,
        O_LR,
        O_MOM,
        O_OPT,
        O_CLIP,
        O_SEED,
        O_DTYPE,
        O_SAVE,
        O_SAVE_EVERY,
        O_RESUME,
        O_OUT,
        O_LOG,
        O_THREADS,
        O_HELP
    };
    static const struct option opts[] = {{"task", required_argument, 0, O_TASK},
                                         {"impl", required_argument, 0, O_IMPL},
                                         {"hidden", required_argument, 0, O_HIDDEN},
                                         {"batch", required_argument, 0, O_BATCH},
                                         {"seq-len", required_argument, 0, O_SEQ},
                                         {"steps", required_argument, 0, O_STEPS},
                                         {"lr", required_argument, 0, O_LR},
                                         {"momentum", required_argument, 0, O_MOM},
                                         {"optimizer", required_argument, 0, O_OPT},
                                         {"clip", required_argument, 0, O_CLIP},
                                         {"seed", required_argument, 0, O_SEED},
                                         {"dtype", required_argument, 0, O_DTYPE},
                                         {"save", required_argument, 0, O_SAVE},
                                         {"save-every", required_argument, 0, O_SAVE_EVERY},
                                         {"resume", required_argument, 0, O_RESUME},
                                         {"out", required_argument, 0, O_OUT},
                                         {"log-every", required_argument, 0, O_LOG},
                                         {"threads", required_argument, 0, O_THREADS},
                                         {"help", no_argument, 0, O_HELP},
                                         {0, 0, 0, 0}};
    int o;
    int64_t v;
    opterr = 0;
    while ((o = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        const char *a = optarg;
        int bad = 0;
        switch (o) {
        case O_TASK:
            bad = 1;
            for (int i = 0; i < 3; i++)
                if (!strcmp(a, task_names[i])) {
                    c->task = (task_kind)i;
                    bad = 0;
                }
            break;
        case O_IMPL:
            if (!strcmp(a, "fused"))
                c->impl = SG_LSTM_FUSED;
            else if (!strcmp(a, "gates"))
                c->impl = SG_LSTM_GATES;
            else
                bad = 1;
            break;
        case O_HIDDEN: bad = parse_i64(a, 1, 4096, &c->hidden); break;
        case O_BATCH: bad = parse_i64(a, 1, 65536, &c->batch); break;
        case O_SEQ: bad = parse_i64(a, 1, 100000, &c->seq_len); break;
        case O_STEPS: bad = parse_i64(a, 0, INT64_C(1) << 40, &c->steps); break;
        case O_LR: bad = parse_f64(a, 0, 1e3, &c->lr); break;
        case O_MOM: bad = parse_f64(a, 0, 0.999999, &c->momentum); break;
        case O_OPT:
            if (!strcmp(a, "sgd"))
                c->adam = 0;
            else if (!strcmp(a, "adam"))
                c->adam = 1;
            else
                bad = 1;
            break;
        case O_CLIP: bad = parse_f64(a, 0, 1e9, &c->clip); break;
        case O_SEED:
            bad = parse_i64(a, 0, INT64_MAX, &v);
            c->seed = (uint64_t)v;
            break;
        case O_DTYPE:
            if (!strcmp(a, "f32"))
                c->dtype = SG_F32;
            else if (!strcmp(a, "f64"))
                c->dtype = SG_F64;
            else
                bad = 1;
            break;
        case O_SAVE: c->save = a; break;
        case O_SAVE_EVERY: bad = parse_i64(a, 1, INT64_MAX, &c->save_every); break;
        case O_RESUME: c->resume = a; break;
        case O_OUT: c->out_dir = a; break;
        case O_LOG: bad = parse_i64(a, 1, INT64_MAX, &c->log_every); break;
        case O_THREADS:
            bad = parse_i64(a, 1, 256, &v);
            c->threads = (int)v;
            break;
        case O_HELP: usage(stdout); exit(0);
        default:
            fprintf(stderr, "train: unknown option or missing value: %s\n", argv[optind - 1]);
            usage(stderr);
            return -1;
        }
        if (bad) {
            fprintf(stderr, "train: bad value '%s' for --%s\n", a, opts[o - O_TASK].name);
            usage(stderr);
            return -1;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "train: unexpected argument '%s'\n", argv[optind]);
        usage(stderr);
        return -1;
    }
    static const int64_t def_len[] = {20, 50, 10}, def_steps[] = {1500, 3000, 1000};
    if (c->seq_len < 0)
        c->seq_len = def_len[c->task];
    if (c->steps < 0)
        c->steps = def_steps[c->task];
    if (c->lr < 0)
        c->lr = c->adam ? 0.01 : 0.1;
    if (c->task == TASK_ADDING && c->seq_len < 2) {
        fprintf(stderr, "train: the adding task needs --seq-len of at least 2\n");
        return -1;
    }
    if (c->save_every && !c->save) {
        fprintf(stderr, "train: --save-every needs --save PATH\n");
        return -1;
    }
    return 0;
}

/* ---- data -------------------------------------------------------------------------- */

/* Fill x (B, T, I) and the targets: y (B, 1) for regression, labels[B] for recall. */
static void make_batch(const config *c, sg_rng *r, double *x, double *y, int32_t *labels,
                       int64_t B) {
    int64_t T = c->seq_len;
    switch (c->task) {
    case TASK_SINE: /* I = 1 */
        for (int64_t b = 0; b < B; b++) {
            double amp = 0.5 + sg_rng_uniform(r), w = 0.1 + 0.4 * sg_rng_uniform(r);
            double ph = 6.283185307179586 * sg_rng_uniform(r);
            for (int64_t t = 0; t < T; t++)
                x[b * T + t] = amp * sin(w * (double)t + ph) + 0.05 * sg_rng_normal(r);
            y[b] = amp * sin(w * (double)T + ph);
        }
        break;
    case TASK_ADDING: /* I = 2: value, marker */
        for (int64_t b = 0; b < B; b++) {
            int64_t i1 = (int64_t)sg_rng_below(r, (uint64_t)(T / 2));
            int64_t i2 = T / 2 + (int64_t)sg_rng_below(r, (uint64_t)(T - T / 2));
            y[b] = 0;
            for (int64_t t = 0; t < T; t++) {
                double v = sg_rng_uniform(r), m = (t == i1 || t == i2) ? 1.0 : 0.0;
                x[(b * T + t) * 2] = v;
                x[(b * T + t) * 2 + 1] = m;
                y[b] += v * m;
            }
        }
        break;
    case TASK_RECALL: /* I = K one-hot */
        for (int64_t b = 0; b < B; b++) {
            memset(x + b * T * RECALL_K, 0, (size_t)(T * RECALL_K) * sizeof *x);
            labels[b] = (int32_t)sg_rng_below(r, RECALL_K);
            x[b * T * RECALL_K + labels[b]] = 1.0;
            for (int64_t t = 1; t < T; t++)
                x[(b * T + t) * RECALL_K + sg_rng_below(r, RECALL_K)] = 0.5;
        }
        break;
    }
}

static int64_t input_size(task_kind t) {
    return t == TASK_SINE ? 1 : t == TASK_ADDING ? 2 : RECALL_K;
}
static int64_t output_size(task_kind t) { return t == TASK_RECALL ? RECALL_K : 1; }

typedef struct {
    sg_lstm *lstm;
    sg_dense *head;
} model;

/* Forward one batch; returns the loss (0-d) and the predictions through *pred. */
static sg_tensor *forward(sg_ctx *ctx, const config *c, model *m, const double *x, const double *y,
                          const int32_t *labels, int64_t B, sg_tensor **pred) {
    int64_t T = c->seq_len, I = input_size(c->task);
    sg_tensor *xt = sg_from_data(ctx, SG_F64, SG_SHAPE(B, T, I), x);
    if (c->dtype == SG_F32 && xt) { /* data is made in double; the model may be float32 */
        sg_tensor *x32 = sg_tensor_new(ctx, SG_F32, SG_SHAPE(B, T, I));
        for (int64_t i = 0; x32 && i < B * T * I; i++)
            ((float *)sg_data(x32))[i] = (float)x[i];
        xt = x32;
    }
    sg_lstm_output out;
    if (sg_lstm_forward(ctx, m->lstm, xt, NULL, NULL, &out))
        return NULL;
    sg_tensor *p = sg_dense_forward(ctx, m->head, out.y); /* (B, out) */
    *pred = p;
    if (c->task == TASK_RECALL)
        return sg_cross_entropy(ctx, p, sg_from_data(ctx, SG_I32, SG_SHAPE(B), labels));
    sg_tensor *yt = sg_tensor_new(ctx, c->dtype, SG_SHAPE(B, 1));
    for (int64_t b = 0; yt && b < B; b++)
        sg_set_flat(yt, b, y[b]);
    return sg_mse_loss(ctx, p, yt);
}

/* ---- output files ------------------------------------------------------------------ */

/* output, out_open, out_printf, out_close: plot.h */

/* The loss curve as CSV: the losses of steps first+1 .. first+n. */
static int write_loss_csv(const char *path, const double *loss, int64_t first, int64_t n) {
    output o;
    if (out_open(&o, path))
        return -1;
    out_printf(&o, "step,loss\n");
    for (int64_t i = 0; i < n; i++)
        out_printf(&o, "%lld,%.8g\n", (long long)(first + i + 1), loss[i]);
    return out_close(&o);
}

/* ---- plots ------------------------------------------------------------------------- */

/* loss[0 .. n) are the losses of steps first+1 .. first+n (a resumed run starts late), on a
 * log axis titled ylabel, with the baseline as a dashed reference line. */
static int write_loss_plot(const char *path, const double *loss, int64_t first, int64_t n,
                           double baseline, const char *ylabel) {
    char xl[96];
    snprintf(xl, sizeof xl, "step (%lld .. %lld)", (long long)first, (long long)(first + n));
    plot_opts o = {.title = "training loss and baseline",
                   .xlabel = xl,
                   .ylabel = ylabel,
                   .logy = true,
                   .ref = true,
                   .ref_y = baseline,
                   .ref_name = "baseline"};
    plot_series s = {.name = "training loss", .y = loss, .n = n, .x0 = (double)first + 1};
    return plot_lines(path, &o, 1, &s);
}

/* Scatter of held-out predictions against targets; perfect answers lie on the diagonal. */
static int write_pred_plot(const char *path, const double *pred, const double *target, int64_t n) {
    plot_opts o = {.title = "sine, held out: prediction against target",
                   .xlabel = "target",
                   .ylabel = "prediction",
                   .diagonal = true,
                   .legend_left = true,
                   .fixed = true,
                   .xmin = -1.6,
                   .xmax = 1.6,
                   .ymin = -1.6,
                   .ymax = 1.6,
                   .width = 460,
                   .height = 440};
    plot_series s = {.name = "held-out windows", .x = target, .y = pred, .n = n, .points = true};
    return plot_lines(path, &o, 1, &s);
}

/* ---- checks of the paths, at the start ------------------------------------------------ */

/* Create and remove a file in dir: 0, or the errno of the failure. This is the test that
 * means "a file can be made here" for everyone (access(W_OK) says yes to root in a
 * read-only directory it can write anyway, and no on a read-only file system only
 * sometimes). */
static int probe_dir(const char *dir) {
    char p[PATH_MAX];
    if (snprintf(p, sizeof p, "%s/.train-probe-XXXXXX", dir) >= (int)sizeof p)
        return ENAMETOOLONG;
    int fd = mkstemp(p);
    if (fd < 0)
        return errno;
    close(fd);
    unlink(p);
    return 0;
}

/* A path given to option `opt` that names a file: not empty, and when it exists a regular
 * file. 1: it exists; 0: stat failed (errno says why); -1: refused, with a message. */
static int file_option(const char *opt, const char *path) {
    struct stat st;
    if (!*path) {
        fprintf(stderr, "train: %s: empty path\n", opt);
        return -1;
    }
    if (stat(path, &st) != 0)
        return 0;
    if (!S_ISREG(st.st_mode)) {
        fprintf(stderr, "train: %s %s: %s\n", opt, path,
                S_ISDIR(st.st_mode) ? "is a directory" : "not a regular file");
        return -1;
    }
    return 1;
}

/* --resume: an existing path must be a regular file (a device such as /dev/zero would be
 * read without end); a missing one is left to the loader, whose message says so. */
static int check_resume_path(const char *path) {
    return file_option("--resume", path) < 0 ? -1 : 0;
}

/* --save: a regular file or nothing yet, in a directory where files can be created (the
 * checkpoint is written to a temporary file there and renamed over the path). */
static int check_save_path(const char *path) {
    size_t n = strlen(path);
    int r = file_option("--save", path);
    if (r < 0)
        return -1;
    if (r == 0 && errno != ENOENT) {
        fprintf(stderr, "train: --save %s: %s\n", path, strerror(errno));
        return -1;
    } else if (r == 0 && path[n - 1] == '/') { /* missing, and named as a directory */
        fprintf(stderr, "train: --save %s: names a directory (ends in '/')\n", path);
        return -1;
    }
    char dir[PATH_MAX];
    const char *slash = strrchr(path, '/');
    if (!slash)
        snprintf(dir, sizeof dir, ".");
    else if (slash == path)
        snprintf(dir, sizeof dir, "/");
    else
        snprintf(dir, sizeof dir, "%.*s", (int)(slash - path), path);
    int err = probe_dir(dir);
    if (err) {
        fprintf(stderr, "train: --save %s: cannot create files in %s: %s\n", path, dir,
                strerror(err));
        return -1;
    }
    return 0;
}

/* --out: made if missing; it must be a directory where files can be created. */
static int check_out_dir(const char *dir) {
    struct stat st;
    if (!*dir) {
        fprintf(stderr, "train: --out: empty path\n");
        return -1;
    }
    if (mkdir(dir, 0777) != 0 && errno != EEXIST) {
        fprintf(stderr, "train: --out %s: cannot create: %s\n", dir, strerror(errno));
        return -1;
    }
    if (stat(dir, &st) != 0 || !S_ISDIR(st.st_mode)) {
        fprintf(stderr, "train: --out %s: not a directory\n", dir);
        return -1;
    }
    int err = probe_dir(dir);
    if (err) {
        fprintf(stderr, "train: --out %s: cannot create files in it: %s\n", dir, strerror(err));
        return -1;
    }
    return 0;
}

/* All of them, --out last: a refused --resume or --save leaves no directory behind. */
static int check_paths(const config *c) {
    if (c->resume && check_resume_path(c->resume))
        return -1;
    if (c->save && check_save_path(c->save))
        return -1;
    return check_out_dir(c->out_dir);
}

/* ---- checks of a resumed checkpoint --------------------------------------------------- */

/* The counters of a loaded checkpoint, before anything uses them: the step indexes the
 * loss curve (an array of --steps entries) and starts the loop, so it must lie in
 * [0, --steps] (a checkpoint past --steps has nothing left to do, and saving it again would
 * label a model trained `start` steps as step --steps); train makes one optimizer step per
 * training step, so the optimizer's count must equal it; and the data generator's state
 * must be one it can leave (xoshiro256** stays at all zero forever). Returns 0, or -1 with
 * a message naming the file and the field. */
static int check_resumed(const config *c, int64_t start, const sg_optim *opt, const sg_rng *r) {
    if (start < 0) {
        fprintf(stderr, "train: %s: metadata step %lld is negative\n", c->resume, (long long)start);
        return -1;
    }
    if (start > c->steps) {
        fprintf(stderr, "train: %s is at step %lld, past --steps %lld\n", c->resume,
                (long long)start, (long long)c->steps);
        return -1;
    }
    if (sg_optim_steps(opt) != start) {
        fprintf(stderr,
                "train: %s: metadata optimizer_steps %lld differs from step %lld (train makes "
                "one optimizer step per step)\n",
                c->resume, (long long)sg_optim_steps(opt), (long long)start);
        return -1;
    }
    if (!sg_rng_state_valid(r)) {
        fprintf(stderr,
                "train: %s: metadata rng is all zero (a state the data generator cannot "
                "leave)\n",
                c->resume);
        return -1;
    }
    return 0;
}

/* ---- main -------------------------------------------------------------------------- */

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static int fail(sg_ctx *ctx, const char *what) {
    fprintf(stderr, "train: %s: %s\n", what, sg_ctx_error(ctx) ? sg_ctx_error(ctx) : "failed");
    return 1;
}

/* Every failure after the context exists goes through `done`, which frees everything: the
 * sanitizer build runs this program under LeakSanitizer, where a leak on an error path
 * would turn a clean "exit 1 with a message" into an abort. */
#define FAIL(what)                                                                                 \
    do {                                                                                           \
        fail(ctx, what);                                                                           \
        goto done;                                                                                 \
    } while (0)

int main(int argc, char **argv) {
    config c;
    if (parse_args(argc, argv, &c))
        return 2;
    /* Check the paths first, and make the output directory: a bad --save or --out should
     * fail before the training, not after it. */
    if (check_paths(&c))
        return 1;
    sg_set_num_threads(c.threads);
    sg_ctx *ctx = sg_ctx_new(0);
    sg_store *store = sg_store_new(); /* the model's parameters: the LSTM's, then the head's */
    if (!ctx || !store) {
        fprintf(stderr, "train: out of memory\n");
        sg_store_free(store);
        sg_ctx_free(ctx);
        return 1;
    }
    int rc = 1;
    int64_t I = input_size(c.task), O = output_size(c.task), B = c.batch, T = c.seq_len;
    model m = {0};
    sg_param_list params = {0};
    sg_optim *opt = NULL;
    double *x = NULL, *y = NULL, *curve = NULL;
    int32_t *labels = NULL;

    /* Weights from the seed; data from its own generator, which checkpoints carry. The
     * LSTM draws its weights before the Dense layer, in two statements: the order of
     * evaluation inside one initializer list is unspecified in C. */
    sg_rng init_rng, data_rng;
    sg_rng_seed(&init_rng, c.seed);
    sg_rng_seed(&data_rng, c.seed ^ UINT64_C(0x9E3779B97F4A7C15));
    sg_lstm_options lo = sg_lstm_defaults(I, c.hidden);
    lo.dtype = c.dtype;
    m.lstm = sg_lstm_new(ctx, store, c.impl, &lo, "lstm", &init_rng);
    m.head =
        sg_dense_new(ctx, store, c.dtype, c.hidden, O, true, SG_ACT_LINEAR, "dense", &init_rng);
    /* The optimizer and checkpoints walk the store's parameters in the order they were
     * added: "lstm.*", then "dense.*". */
    if (!m.lstm || !m.head || sg_params_from_store(&params, store))
        FAIL("building the model");
    opt = c.adam ? sg_adam_new(ctx, &params, (sg_adam_options){.lr = c.lr})
                 : sg_sgd_new(ctx, &params, (sg_sgd_options){.lr = c.lr, .momentum = c.momentum});
    if (!opt)
        FAIL("building the optimizer");

    int64_t start = 0;
    if (c.resume) {
        if (sg_checkpoint_load(ctx, c.resume, &params, opt, &start, &data_rng))
            FAIL("resuming");
        if (check_resumed(&c, start, opt, &data_rng))
            goto done;
        printf("resumed from %s at step %lld\n", c.resume, (long long)start);
    }
    printf("task=%s impl=%s hidden=%lld batch=%lld seq_len=%lld steps=%lld optimizer=%s "
           "lr=%g params=%lld isa=%s\n",
           task_names[c.task], c.impl == SG_LSTM_FUSED ? "fused" : "gates", (long long)c.hidden,
           (long long)B, (long long)T, (long long)c.steps, c.adam ? "adam" : "sgd", c.lr,
           (long long)sg_params_count(&params), sg_vmath_isa());

    x = malloc((size_t)(B * T * I) * sizeof *x);
    y = malloc((size_t)B * sizeof *y);
    labels = malloc((size_t)B * sizeof *labels);
    curve = calloc((size_t)(c.steps > 0 ? c.steps : 1), sizeof *curve);
    if (!x || !y || !labels || !curve) {
        fprintf(stderr, "train: out of memory\n");
        goto done;
    }
    bool tty = isatty(STDOUT_FILENO);
    double t0 = now(), last_print = 0;
    for (int64_t step = start; step < c.steps; step++) {
        make_batch(&c, &data_rng, x, y, labels, B);
        sg_store_zero_grad(store); /* every gradient of the model: one memset */
        sg_tensor *pred;
        sg_tensor *loss = forward(ctx, &c, &m, x, y, labels, B, &pred);
        if (!loss || sg_backward(ctx, loss, NULL))
            FAIL("training step");
        if (c.clip > 0 && sg_clip_grad_norm(&params, c.clip) < 0)
            FAIL("clipping");
        if (sg_optim_step(opt))
            FAIL("optimizer step");
        curve[step] = sg_get_flat(loss, 0);
        sg_ctx_reset(ctx);
        int64_t ran = step + 1 - start;
        double el = now() - t0, rate = (double)ran / (el > 0 ? el : 1e-9);
        if (tty && (el - last_print > 0.1 || step + 1 == c.steps)) {
            last_print = el;
            printf("\rstep %lld/%lld  loss %.5f  %.0f steps/s  %.1fs left   ",
                   (long long)(step + 1), (long long)c.steps, curve[step], rate,
                   (double)(c.steps - step - 1) / rate);
            fflush(stdout);
        } else if (!tty && ((step + 1) % c.log_every == 0 || step + 1 == c.steps)) {
            printf("step %lld/%lld loss %.5f steps/s %.0f\n", (long long)(step + 1),
                   (long long)c.steps, curve[step], rate);
        }
        if (c.save && c.save_every && (step + 1) % c.save_every == 0 && step + 1 < c.steps &&
            sg_checkpoint_save(ctx, c.save, &params, opt, step + 1, &data_rng))
            FAIL("saving");
    }
    if (tty)
        printf("\n");
    double seconds = now() - t0;
    if (c.save && sg_checkpoint_save(ctx, c.save, &params, opt, c.steps, &data_rng))
        FAIL("saving");

    /* Held-out evaluation on fresh data from a generator the training never touched. */
    sg_rng eval_rng;
    sg_rng_seed(&eval_rng, c.seed + UINT64_C(1000003));
    enum { EVAL_BATCHES = 16 };
    double eval = 0, base = 0;
    double preds[64], targets[64];
    int64_t np = 0;
    sg_ctx_set_grad_enabled(ctx, false);
    for (int e = 0; e < EVAL_BATCHES; e++) {
        make_batch(&c, &eval_rng, x, y, labels, B);
        sg_tensor *pred;
        sg_tensor *loss = forward(ctx, &c, &m, x, y, labels, B, &pred);
        if (!loss)
            FAIL("evaluation");
        eval += sg_get_flat(loss, 0) / EVAL_BATCHES;
        for (int64_t b = 0; b < B; b++) {
            if (c.task == TASK_SINE)
                base += y[b] * y[b] / (double)(B * EVAL_BATCHES); /* answer 0 */
            else if (c.task == TASK_ADDING)
                base += (y[b] - 1) * (y[b] - 1) / (double)(B * EVAL_BATCHES); /* answer 1 */
            if (c.task == TASK_SINE && np < 64) {
                preds[np] = sg_get_flat(pred, b);
                targets[np++] = y[b];
            }
        }
        sg_ctx_reset(ctx);
    }
    if (c.task == TASK_RECALL)
        base = log((double)RECALL_K);
    printf("held-out loss %.6f vs baseline %.6f (%.1fx better)\n", eval, base, base / eval);

    /* Loss curve (CSV + SVG) and, for sine, predictions against targets. Each file is
     * written even when another failed; any failure (reported by the writer) is exit 1. */
    char path[4096];
    int failed = 0;
    snprintf(path, sizeof path, "%s/loss_%s.csv", c.out_dir, task_names[c.task]);
    if (write_loss_csv(path, curve + start, start, c.steps - start) == 0)
        printf("wrote %s\n", path);
    else
        failed = 1;
    snprintf(path, sizeof path, "%s/loss_%s.svg", c.out_dir, task_names[c.task]);
    if (c.steps > start) {
        if (write_loss_plot(path, curve + start, start, c.steps - start, base, "loss") == 0)
            printf("wrote %s\n", path);
        else
            failed = 1;
    }
    if (c.task == TASK_SINE) {
        snprintf(path, sizeof path, "%s/predictions_sine.svg", c.out_dir);
        if (write_pred_plot(path, preds, targets, np) == 0)
            printf("wrote %s\n", path);
        else
            failed = 1;
    }
    if (failed)
        goto done;
    printf("result: task=%s impl=%s eval_loss=%.6g baseline=%.6g steps=%lld seconds=%.2f\n",
           task_names[c.task], c.impl == SG_LSTM_FUSED ? "fused" : "gates", eval, base,
           (long long)c.steps, seconds);
    /* stdout is an output too: a full disk under it loses the results. */
    errno = 0;
    if (fflush(stdout) != 0 || ferror(stdout)) {
        fprintf(stderr, "train: stdout: write failed: %s\n", strerror(errno ? errno : EIO));
        goto done;
    }
    rc = 0;

done:
    free(x);
    free(y);
    free(labels);
    free(curve);
    sg_optim_free(opt);
    sg_params_clear(&params);
    sg_lstm_free(m.lstm);
    sg_dense_free(m.head);
    sg_store_free(store);
    sg_ctx_free(ctx);
    return rc;
}
