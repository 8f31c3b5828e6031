/* train: the sequence-training program. Toy tasks generated here from a seeded generator,
 * a character-level language model on a real text, and a variable-length classifier.
 *
 * Tasks:
 *   sine      predict the next value of a noisy sine wave (random amplitude, frequency,
 *             phase) from the previous T values; MSE; baseline: always answer 0.
 *   adding    Hochreiter & Schmidhuber's adding problem: T >= 50 steps of (value, marker),
 *             two markers; answer the sum of the two marked values; MSE; baseline:
 *             always answer 1 (MSE 1/6 = 0.167).
 *   recall    classification: a one-hot symbol (of K = 4) at step 0, then T-1 steps of
 *             noise symbols; answer the first symbol; cross-entropy; baseline: uniform
 *             guess (log 4 = 1.386).
 *   text      next-byte prediction on --text (default the GPL-3, on every Debian system):
 *             Embedding -> --layers x --cell -> Dense(V), truncated BPTT over --seq-len with
 *             the state carried between steps (the protocol is in train.h and README.md);
 *             baseline: the training bytes' unigram; 200 sampled characters at the end.
 *   classify  right-padded sequences of random bits of lengths 5 .. --seq-len (the lengths
 *             go to the layer); is there more 1s than 0s? Accuracy beside the majority class.
 * The toy tasks use an sg_lstm and a Dense on its last state; text and classify the seqmodel
 * (seqmodel.h), built on sg_rnn.
 *
 * Output: progress (a live line on a terminal, a plain line every --log-every steps
 * otherwise), the held-out loss beside the baseline, the loss curve as CSV and SVG, for
 * sine a plot of predictions against targets, and a last line
 *   result: task=<task> impl=<impl> eval_loss=<x> baseline=<y> steps=<n> seconds=<s>
 * (text: task=text cell=<cell> impl=<impl> eval_loss=<x> baseline=<y> bpc=<z> steps=...;
 * classify: ... baseline=<y> accuracy=<a> majority=<m> steps=...).
 *
 * Checkpoints carry the options (metadata "train.<option>"), so --resume needs none of them
 * again; an option given that differs from the checkpoint's is refused.
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
#include "train.h"

static const char *const task_names[NTASKS] = {"sine", "adding", "recall", "text", "classify"};
static const char *const impl_names[2] = {"fused", "gates"};
enum { RECALL_K = 4 };
#define DEFAULT_TEXT "/usr/share/common-licenses/GPL-3"

static void usage(FILE *f) {
    fprintf(f,
            "usage: train [options]\n"
            "  --task sine|adding|recall|text|classify   task to learn (default sine)\n"
            "  --impl fused|gates          LSTM implementation (default fused)\n"
            "  --hidden N                  recurrent units (default: text 128, else 32)\n"
            "  --batch N                   sequences per step (default 32)\n"
            "  --seq-len N                 time steps (default: sine 20, adding 50, recall 10,\n"
            "                              text 64, classify 40: the longest sequence)\n"
            "  --steps N                   total training steps (default: sine 1500,\n"
            "                              adding 3000, recall 1000, text 2000, classify 1000)\n"
            "  --lr X                      learning rate (default: adam 0.01, text 0.002;\n"
            "                              sgd 0.1)\n"
            "  --momentum X                SGD momentum (default 0.9)\n"
            "  --optimizer sgd|adam        optimizer (default adam)\n"
            "  --clip X                    clip gradients to global norm X (default 1; 0 off)\n"
            "  --seed N                    seed for weights and data (default 1)\n"
            "  --dtype f32|f64             precision (default f32)\n"
            "  --save PATH                 write a checkpoint at the end\n"
            "  --save-every N              ... and every N steps\n"
            "  --resume PATH               continue from a checkpoint (its options apply)\n"
            "  --out DIR                   where CSV/SVG files go (default train_out)\n"
            "  --log-every N               progress line every N steps when not a terminal\n"
            "                              (default 100)\n"
            "  --threads N                 threads for each step, at most (default: the CPUs\n"
            "                              this process may use, or SG_NUM_THREADS); a step\n"
            "                              uses as many as its work pays for\n"
            "  --export-onnx PATH          write the trained model as ONNX (README: inputs and\n"
            "                              outputs)\n"
            " text and classify:\n"
            "  --cell lstm|gru|rnn         recurrent cell (default lstm)\n"
            "  --layers N                  stacked layers (default: text 2, classify 1)\n"
            "  --embed N                   embedding size (default 32)\n"
            "  --dropout X                 dropout between layers (default 0)\n"
            "  --recurrent-dropout X       dropout on the recurrent state (default 0)\n"
            " text:\n"
            "  --text PATH                 the text (default " DEFAULT_TEXT ")\n"
            "  --temperature X             of the sample after training (default 0.8)\n"
            "  --eval-every N              held-out bits per byte every N steps (default 0: off)\n"
            " classify:\n"
            "  --bidirectional             read the sequences both ways\n"
            "  --help                      this text\n");
}

/* The options, in the order of their bits in config.given / config.stored. */
enum {
    O_TASK,
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
    O_CELL,
    O_LAYERS,
    O_EMBED,
    O_DROPOUT,
    O_RDROPOUT,
    O_TEXT,
    O_TEMP,
    O_EVAL_EVERY,
    O_BIDIR,
    O_EXPORT,
    O_HELP,
    NOPTS
};

#define TOY ((1u << TASK_SINE) | (1u << TASK_ADDING) | (1u << TASK_RECALL))
#define SEQ ((1u << TASK_TEXT) | (1u << TASK_CLASSIFY))
#define ALL (TOY | SEQ)

/* Each option: its name, the values it takes (for the message refusing a bad one), the
 * tasks it applies to, and whether checkpoints carry it (the model, the data and the
 * training; not the run's own settings: steps, paths, logging, threads, sampling). */
static const struct {
    const char *name;
    int has_arg;
    const char *allowed;
    unsigned tasks;
    bool stored;
} optdefs[NOPTS] = {
    [O_TASK] = {"task", 1, "sine, adding, recall, text or classify", ALL, true},
    [O_IMPL] = {"impl", 1, "fused or gates", ALL, true},
    [O_HIDDEN] = {"hidden", 1, "an integer in 1..4096", ALL, true},
    [O_BATCH] = {"batch", 1, "an integer in 1..65536", ALL, true},
    [O_SEQ] = {"seq-len", 1, "an integer in 1..100000", ALL, true},
    [O_STEPS] = {"steps", 1, "an integer in 0..2^40", ALL, false},
    [O_LR] = {"lr", 1, "a number > 0 and <= 1000", ALL, true},
    [O_MOM] = {"momentum", 1, "a number in [0, 0.999999]", ALL, true},
    [O_OPT] = {"optimizer", 1, "sgd or adam", ALL, true},
    [O_CLIP] = {"clip", 1, "a number in [0, 1e9]; 0 is off", ALL, true},
    [O_SEED] = {"seed", 1, "an integer in 0..2^63-1", ALL, true},
    [O_DTYPE] = {"dtype", 1, "f32 or f64", ALL, true},
    [O_SAVE] = {"save", 1, "a path", ALL, false},
    [O_SAVE_EVERY] = {"save-every", 1, "an integer >= 1", ALL, false},
    [O_RESUME] = {"resume", 1, "a path", ALL, false},
    [O_OUT] = {"out", 1, "a directory", ALL, false},
    [O_LOG] = {"log-every", 1, "an integer >= 1", ALL, false},
    [O_THREADS] = {"threads", 1, "an integer in 1..256", ALL, false},
    [O_CELL] = {"cell", 1, "lstm, gru or rnn", SEQ, true},
    [O_LAYERS] = {"layers", 1, "an integer in 1..64", SEQ, true},
    [O_EMBED] = {"embed", 1, "an integer in 1..4096", SEQ, true},
    [O_DROPOUT] = {"dropout", 1, "a number in [0, 1)", SEQ, true},
    [O_RDROPOUT] = {"recurrent-dropout", 1, "a number in [0, 1)", SEQ, true},
    [O_TEXT] = {"text", 1, "a file", 1u << TASK_TEXT, true},
    [O_TEMP] = {"temperature", 1, "a number in [0, 100]; 0 is greedy", 1u << TASK_TEXT, false},
    [O_EVAL_EVERY] = {"eval-every", 1, "an integer >= 1", 1u << TASK_TEXT, false},
    [O_BIDIR] = {"bidirectional", 0, "", 1u << TASK_CLASSIFY, true},
    [O_EXPORT] = {"export-onnx", 1, "a path", ALL, false},
    [O_HELP] = {"help", 0, "", ALL, false},
};

/* Index of s in names[0 .. n), or -1. */
static int choice(const char *s, const char *const *names, int n) {
    for (int i = 0; i < n; i++)
        if (!strcmp(s, names[i]))
            return i;
    return -1;
}

/* Set option o from its text a (the command line's, or a checkpoint's): 0, or -1 for a bad
 * value. */
static int set_option(config *c, int o, const char *a) {
    static const char *const opt_names[2] = {"sgd", "adam"}, *const dtype_names[2] = {"f32", "f64"};
    int64_t v = 0;
    int k = 0, bad = 0;
    switch (o) {
    case O_TASK: bad = (k = choice(a, task_names, NTASKS)) < 0, c->task = (task_kind)k; break;
    case O_IMPL: bad = (k = choice(a, impl_names, 2)) < 0, c->impl = (sg_lstm_impl)k; break;
    case O_CELL:
        bad = (k = choice(a, seqmodel_cell_names, 3)) < 0, c->cell = (sg_cell_kind)k;
        break;
    case O_OPT: bad = (k = choice(a, opt_names, 2)) < 0, c->adam = k; break;
    case O_DTYPE: bad = (k = choice(a, dtype_names, 2)) < 0, c->dtype = k ? SG_F64 : SG_F32; break;
    case O_HIDDEN: bad = seqmodel_parse_i64(a, 1, 4096, &c->hidden); break;
    case O_BATCH: bad = seqmodel_parse_i64(a, 1, 65536, &c->batch); break;
    case O_SEQ: bad = seqmodel_parse_i64(a, 1, 100000, &c->seq_len); break;
    case O_STEPS: bad = seqmodel_parse_i64(a, 0, INT64_C(1) << 40, &c->steps); break;
    case O_LR: bad = seqmodel_parse_f64(a, 0, 1e3, &c->lr) || c->lr <= 0; break;
    case O_MOM: bad = seqmodel_parse_f64(a, 0, 0.999999, &c->momentum); break;
    case O_CLIP: bad = seqmodel_parse_f64(a, 0, 1e9, &c->clip); break;
    case O_SEED:
        bad = seqmodel_parse_i64(a, 0, INT64_MAX, &v);
        c->seed = (uint64_t)v;
        break;
    case O_SAVE: c->save = a; break;
    case O_SAVE_EVERY: bad = seqmodel_parse_i64(a, 1, INT64_MAX, &c->save_every); break;
    case O_RESUME: c->resume = a; break;
    case O_OUT: c->out_dir = a; break;
    case O_LOG: bad = seqmodel_parse_i64(a, 1, INT64_MAX, &c->log_every); break;
    case O_THREADS:
        bad = seqmodel_parse_i64(a, 1, 256, &v);
        c->threads = (int)v;
        break;
    case O_LAYERS: bad = seqmodel_parse_i64(a, 1, 64, &c->layers); break;
    case O_EMBED: bad = seqmodel_parse_i64(a, 1, 4096, &c->embed); break;
    case O_DROPOUT: bad = seqmodel_parse_f64(a, 0, 1, &c->dropout) || c->dropout >= 1; break;
    case O_RDROPOUT:
        bad = seqmodel_parse_f64(a, 0, 1, &c->recurrent_dropout) || c->recurrent_dropout >= 1;
        break;
    case O_TEXT: c->text = a; break;
    case O_EXPORT: c->export_onnx = a; break;
    case O_TEMP: bad = seqmodel_parse_f64(a, 0, 100, &c->temperature); break;
    case O_EVAL_EVERY: bad = seqmodel_parse_i64(a, 1, INT64_MAX, &c->eval_every); break;
    case O_BIDIR:
        bad = (k = choice(a ? a : "1", (const char *const[]){"0", "1"}, 2)) < 0,
        c->bidirectional = k == 1;
        break;
    default: bad = 1;
    }
    return bad ? -1 : 0;
}

/* A stored option's value as text, the form set_option reads back exactly. */
static void format_option(const config *c, int o, char *buf, size_t n) {
    switch (o) {
    case O_TASK: snprintf(buf, n, "%s", task_names[c->task]); break;
    case O_IMPL: snprintf(buf, n, "%s", impl_names[c->impl]); break;
    case O_CELL: snprintf(buf, n, "%s", seqmodel_cell_names[c->cell]); break;
    case O_OPT: snprintf(buf, n, "%s", c->adam ? "adam" : "sgd"); break;
    case O_DTYPE: snprintf(buf, n, "%s", c->dtype == SG_F64 ? "f64" : "f32"); break;
    case O_HIDDEN: snprintf(buf, n, "%lld", (long long)c->hidden); break;
    case O_BATCH: snprintf(buf, n, "%lld", (long long)c->batch); break;
    case O_SEQ: snprintf(buf, n, "%lld", (long long)c->seq_len); break;
    case O_LAYERS: snprintf(buf, n, "%lld", (long long)c->layers); break;
    case O_EMBED: snprintf(buf, n, "%lld", (long long)c->embed); break;
    case O_SEED: snprintf(buf, n, "%llu", (unsigned long long)c->seed); break;
    case O_LR: snprintf(buf, n, "%.17g", c->lr); break;
    case O_MOM: snprintf(buf, n, "%.17g", c->momentum); break;
    case O_CLIP: snprintf(buf, n, "%.17g", c->clip); break;
    case O_DROPOUT: snprintf(buf, n, "%.17g", c->dropout); break;
    case O_RDROPOUT: snprintf(buf, n, "%.17g", c->recurrent_dropout); break;
    case O_TEXT: snprintf(buf, n, "%s", c->text ? c->text : ""); break;
    case O_BIDIR: snprintf(buf, n, "%d", c->bidirectional ? 1 : 0); break;
    default: snprintf(buf, n, "?");
    }
}

static int parse_args(int argc, char **argv, config *c) {
    *c = (config){.task = TASK_SINE,
                  .impl = SG_LSTM_FUSED,
                  .cell = SG_CELL_LSTM,
                  .hidden = -1,
                  .batch = 32,
                  .seq_len = -1,
                  .steps = -1,
                  .embed = 32,
                  .layers = -1,
                  .lr = -1,
                  .momentum = 0.9,
                  .clip = 1.0,
                  .temperature = 0.8,
                  .adam = 1,
                  .seed = 1,
                  .out_dir = "train_out",
                  .log_every = 100,
                  .threads = 0, /* sg_threads_default() */
                  .dtype = SG_F32};
    struct option opts[NOPTS + 1];
    for (int i = 0; i < NOPTS; i++)
        opts[i] = (struct option){optdefs[i].name,
                                  optdefs[i].has_arg ? required_argument : no_argument, 0, 256 + i};
    opts[NOPTS] = (struct option){0, 0, 0, 0};
    int o;
    opterr = 0;
    while ((o = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        if (o == 256 + O_HELP) {
            usage(stdout);
            exit(0);
        }
        if (o < 256 || o >= 256 + NOPTS) {
            fprintf(stderr, "train: unknown option or missing value: %s\n", argv[optind - 1]);
            usage(stderr);
            return -1;
        }
        o -= 256;
        if (set_option(c, o, optarg)) {
            fprintf(stderr, "train: bad value '%s' for --%s (allowed: %s)\n", optarg,
                    optdefs[o].name, optdefs[o].allowed);
            usage(stderr);
            return -1;
        }
        c->given |= UINT64_C(1) << o;
    }
    if (optind < argc) {
        fprintf(stderr, "train: unexpected argument '%s'\n", argv[optind]);
        usage(stderr);
        return -1;
    }
    if (c->save_every && !c->save) {
        fprintf(stderr, "train: --save-every needs --save PATH\n");
        return -1;
    }
    return 0;
}

/* After the command line and the checkpoint: the defaults of what neither gave, and the
 * checks across options. 0, or -1 with a message. */
static int finish_config(config *c) {
    static const int64_t def_len[] = {20, 50, 10, 64, 40},
                         def_steps[] = {1500, 3000, 1000, 2000, 1000};
    for (int o = 0; o < NOPTS; o++)
        if ((c->given >> o & 1) && !(optdefs[o].tasks >> c->task & 1)) {
            fprintf(stderr, "train: --%s does not apply to --task %s\n", optdefs[o].name,
                    task_names[c->task]);
            return -1;
        }
    if (c->seq_len < 0)
        c->seq_len = def_len[c->task];
    if (c->steps < 0)
        c->steps = def_steps[c->task];
    if (c->hidden < 0)
        c->hidden = c->task == TASK_TEXT ? 128 : 32;
    if (c->layers < 0)
        c->layers = c->task == TASK_TEXT ? 2 : 1;
    if (c->lr < 0)
        c->lr = !c->adam ? 0.1 : c->task == TASK_TEXT ? 0.002 : 0.01;
    if (c->task == TASK_TEXT && !c->text)
        c->text = DEFAULT_TEXT;
    if (c->task == TASK_ADDING && c->seq_len < 2) {
        fprintf(stderr, "train: the adding task needs --seq-len of at least 2\n");
        return -1;
    }
    if (c->task == TASK_CLASSIFY && c->seq_len < CLASSIFY_MIN) {
        fprintf(stderr, "train: the classify task needs --seq-len of at least %d\n", CLASSIFY_MIN);
        return -1;
    }
    if ((c->given >> O_IMPL & 1) && c->cell != SG_CELL_LSTM) {
        fprintf(stderr, "train: --impl applies to --cell lstm only (--cell %s given)\n",
                seqmodel_cell_names[c->cell]);
        return -1;
    }
    return 0;
}

/* --resume: the options the checkpoint carries (metadata "train.<option>") take the place of
 * those not given; one given with another value is refused, naming both. 0, or -1. */
static int merge_checkpoint_options(config *c, const sg_st_file *f) {
    for (int o = 0; o < NOPTS; o++) {
        if (!optdefs[o].stored)
            continue;
        char key[64], mine[4096], theirs[4096];
        snprintf(key, sizeof key, "train.%s", optdefs[o].name);
        const char *v = sg_st_meta(f, key);
        if (!v)
            continue;
        config saved = *c;
        if (set_option(&saved, o, v)) {
            fprintf(stderr, "train: %s: metadata '%s' has a bad value '%.100s' (allowed: %s)\n",
                    c->resume, key, v, optdefs[o].allowed);
            return -1;
        }
        if (!(c->given >> o & 1)) {
            *c = saved;
            c->stored |= UINT64_C(1) << o;
            continue;
        }
        format_option(c, o, mine, sizeof mine);
        format_option(&saved, o, theirs, sizeof theirs);
        if (strcmp(mine, theirs)) {
            fprintf(stderr, "train: --%s %s conflicts with %s, which was saved with --%s %s\n",
                    optdefs[o].name, mine, c->resume, optdefs[o].name, theirs);
            return -1;
        }
    }
    return 0;
}

/* The stored options as checkpoint metadata: key, value pairs into meta (NULL-terminated),
 * their text in buf. */
static void checkpoint_options(const config *c, const char **meta, char (*buf)[2][4200]) {
    int k = 0, j = 0;
    for (int o = 0; o < NOPTS; o++) {
        if (!optdefs[o].stored || !(optdefs[o].tasks >> c->task & 1))
            continue;
        snprintf(buf[j][0], sizeof buf[j][0], "train.%s", optdefs[o].name);
        format_option(c, o, buf[j][1], sizeof buf[j][1]);
        meta[k++] = buf[j][0];
        meta[k++] = buf[j][1];
        j++;
    }
    meta[k] = NULL;
}

/* ---- data -------------------------------------------------------------------------- */

/* The toy tasks: rows [r0, r0 + B) of a global batch into x (B, T, I) and the targets: y
 * (B, 1) for regression, labels[B] for recall. (text and classify have their data in
 * train_seq.c.) Each row has its own generator, seeded from the batch's key and the row's
 * index (row_rng), so that a rank of a data-parallel run makes only its own rows and they
 * are the rows one process makes. */
static void make_batch(const config *c, uint64_t key, int64_t r0, double *x, double *y,
                       int32_t *labels, int64_t B) {
    int64_t T = c->seq_len;
    for (int64_t b = 0; b < B; b++) {
        sg_rng rr, *r = &rr;
        row_rng(r, key, r0 + b);
        switch (c->task) {
        case TASK_SINE: { /* I = 1 */
            double amp = 0.5 + sg_rng_uniform(r), w = 0.1 + 0.4 * sg_rng_uniform(r);
            double ph = 6.283185307179586 * sg_rng_uniform(r);
            for (int64_t t = 0; t < T; t++)
                x[b * T + t] = amp * sin(w * (double)t + ph) + 0.05 * sg_rng_normal(r);
            y[b] = amp * sin(w * (double)T + ph);
            break;
        }
        case TASK_ADDING: { /* I = 2: value, marker */
            int64_t i1 = (int64_t)sg_rng_below(r, (uint64_t)(T / 2));
            int64_t i2 = T / 2 + (int64_t)sg_rng_below(r, (uint64_t)(T - T / 2));
            y[b] = 0;
            for (int64_t t = 0; t < T; t++) {
                double v = sg_rng_uniform(r), m = (t == i1 || t == i2) ? 1.0 : 0.0;
                x[(b * T + t) * 2] = v;
                x[(b * T + t) * 2 + 1] = m;
                y[b] += v * m;
            }
            break;
        }
        case TASK_RECALL: /* I = K one-hot */
            memset(x + b * T * RECALL_K, 0, (size_t)(T * RECALL_K) * sizeof *x);
            labels[b] = (int32_t)sg_rng_below(r, RECALL_K);
            x[b * T * RECALL_K + labels[b]] = 1.0;
            for (int64_t t = 1; t < T; t++)
                x[(b * T + t) * RECALL_K + sg_rng_below(r, RECALL_K)] = 0.5;
            break;
        case TASK_TEXT:
        case TASK_CLASSIFY: break;
        }
    }
}

static int64_t input_size(task_kind t) {
    return t == TASK_SINE ? 1 : t == TASK_ADDING ? 2 : RECALL_K;
}
static int64_t output_size(task_kind t) { return t == TASK_RECALL ? RECALL_K : 1; }

/* The toy tasks' LSTM and head, or the text and classify tasks' seqmodel. */
typedef struct {
    sg_lstm *lstm;
    sg_dense *head;
    seqmodel seq;
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

/* One training step's data, for its parts (parallel/: one per thread, each on a slice
 * row0.. of this rank's rows). */
typedef struct {
    const config *c;
    model *m;
    const corpus *cp;
    int64_t step;
    uint64_t key;        /* the batch's key (row_rng) */
    row_range rr;        /* this rank's rows */
    sg_tensor *h, *cs;   /* text: the state carried by rr's streams */
    const double *x, *y; /* the toy tasks: rr's batch */
    const int32_t *labels;
    sg_rnn_output *out;   /* text, per part: the final states, carried after backward */
    sg_tensor **ph, **pc; /* text, per part: its rows of h and cs */
} step_job;

/* The mean loss of a part's rows. */
static sg_tensor *part_loss(sg_ctx *ctx, int part, int64_t row0, int64_t rows, void *user) {
    step_job *j = user;
    const row_range pr = {j->rr.first + row0, rows, j->rr.total};
    if (j->c->task == TASK_TEXT) {
        j->ph[part] = sg_parallel_rows(ctx, j->h, 1, row0, rows); /* (layers, B, H) */
        j->pc[part] = j->cs ? sg_parallel_rows(ctx, j->cs, 1, row0, rows) : NULL;
        return text_loss(ctx, &j->m->seq, j->cp, j->step, pr, j->ph[part], j->pc[part],
                         &j->out[part]);
    }
    if (j->c->task == TASK_CLASSIFY)
        return classify_loss(ctx, &j->m->seq, j->key, pr, j->c->seq_len, NULL);
    sg_tensor *pred;
    const int64_t TI = j->c->seq_len * input_size(j->c->task);
    return forward(ctx, j->c, j->m, j->x + row0 * TI, j->y + row0, j->labels + row0, rows, &pred);
}

/* After a part's backward: text carries its streams' final states to the next step. */
static int part_after(sg_ctx *ctx, int part, int64_t row0, int64_t rows, void *user) {
    (void)row0, (void)rows;
    step_job *j = user;
    return j->c->task == TASK_TEXT ? text_carry(ctx, j->ph[part], j->pc[part], &j->out[part]) : 0;
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
        out_printf(&o, "%lld,%.17g\n", (long long)(first + i + 1), loss[i]); /* exact */
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

/* --save, --export-onnx: a regular file or nothing yet, in a directory where files can be
 * created (the file is written to a temporary file there and renamed over the path). */
static int check_output_path(const char *opt, const char *path) {
    size_t n = strlen(path);
    int r = file_option(opt, path);
    if (r < 0)
        return -1;
    if (r == 0 && errno != ENOENT) {
        fprintf(stderr, "train: %s %s: %s\n", opt, path, strerror(errno));
        return -1;
    } else if (r == 0 && path[n - 1] == '/') { /* missing, and named as a directory */
        fprintf(stderr, "train: %s %s: names a directory (ends in '/')\n", opt, path);
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
        fprintf(stderr, "train: %s %s: cannot create files in %s: %s\n", opt, path, dir,
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
    if (c->save && check_output_path("--save", c->save))
        return -1;
    if (c->export_onnx && check_output_path("--export-onnx", c->export_onnx))
        return -1;
    if (c->text && file_option("--text", c->text) < 0)
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

/* A failure: its message; under mpirun every rank is stopped (a rank that failed alone
 * would leave the others waiting in a collective call). */
static int fail(sg_ctx *ctx, const char *what) {
    fprintf(stderr, "train: %s%s%s: %s\n", sg_dist_size() > 1 ? "rank " : "",
            sg_dist_size() > 1 ? (char[12]){(char)('0' + sg_dist_rank() % 10), ':', ' ', 0} : "",
            what, sg_ctx_error(ctx) ? sg_ctx_error(ctx) : "failed");
    if (sg_dist_size() > 1)
        sg_dist_abort(1);
    return 1;
}

/* A resumed run appends to the loss CSV of the run it continues: when `path` holds the
 * header and exactly the rows of steps 1 .. start first (rows after them, from a run that
 * went further, are dropped), their losses go into curve[0 .. start) and the answer is
 * true; otherwise the CSV starts at the resumed step. */
static bool read_loss_csv(const char *path, double *curve, int64_t start) {
    FILE *f = fopen(path, "r");
    if (!f)
        return false;
    char line[256];
    bool ok = fgets(line, sizeof line, f) && !strcmp(line, "step,loss\n");
    for (int64_t i = 0; ok && i < start; i++) {
        long long step;
        int used = 0;
        ok = fgets(line, sizeof line, f) &&
             sscanf(line, "%lld,%lf%n", &step, &curve[i], &used) == 2 && line[used] == '\n' &&
             step == i + 1;
    }
    fclose(f);
    return ok;
}

/* The text's vocabulary and size must be those the checkpoint was trained on. */
static int check_resumed_text(const config *c, const corpus *cp, const sg_st_file *saved) {
    char hex[513], bytes[24];
    seqmodel_vocab_hex(cp->vocab, cp->nvocab, hex);
    snprintf(bytes, sizeof bytes, "%lld", (long long)cp->n);
    const char *v = sg_st_meta(saved, "train.vocab"), *n = sg_st_meta(saved, "train.text-bytes");
    if ((v && strcmp(v, hex)) || (n && strcmp(n, bytes))) {
        fprintf(stderr,
                "train: --text %s (%s bytes, %d distinct) is not the text %s was trained on "
                "(%s bytes, %d distinct)\n",
                c->text, bytes, cp->nvocab, c->resume, n ? n : "?", v ? (int)strlen(v) / 2 : 0);
        return -1;
    }
    return 0;
}

/* A checkpoint after `step` steps; for text with the place of the next step in the epoch
 * (metadata train.text-position, written into `position`, which meta points to): step k of
 * an epoch of cp->chunks steps, k = step mod cp->chunks. */
static int save_at(sg_ctx *ctx, const config *c, const corpus *cp, const sg_param_list *ckpt,
                   const sg_optim *opt, int64_t step, const sg_rng *rng, const char *const *meta,
                   char *position) {
    if (c->task == TASK_TEXT)
        snprintf(position, 24, "%lld", (long long)(step % cp->chunks));
    return sg_checkpoint_save_ex(ctx, c->save, ckpt, opt, step, rng, meta);
}

/* ---- data-parallel runs (mpirun) ------------------------------------------------------ */

/* --resume under mpirun: rank 0 reads the checkpoint and every rank gets its bytes (*buf,
 * malloc'd, *len). 0; -1 on every rank when rank 0 could not read it (its message). */
static int share_checkpoint(sg_ctx *ctx, const char *path, unsigned char **buf, size_t *len) {
    int64_t n = -1;
    unsigned char *b = NULL;
    if (sg_dist_rank() == 0) {
        FILE *f = fopen(path, "rb");
        struct stat st;
        if (!f || fstat(fileno(f), &st) || !S_ISREG(st.st_mode))
            fprintf(stderr, "train: --resume %s: %s\n", path,
                    f ? "not a regular file" : strerror(errno));
        else if (!(b = malloc((size_t)st.st_size + 1)) ||
                 fread(b, 1, (size_t)st.st_size, f) != (size_t)st.st_size)
            fprintf(stderr, "train: --resume %s: %s\n", path, b ? "read error" : "out of memory");
        else
            n = (int64_t)st.st_size;
        if (f)
            fclose(f);
    }
    if (sg_dist_broadcast(ctx, &n, sizeof n) || n < 0) {
        free(b);
        return -1;
    }
    if (!b && !(b = malloc((size_t)n + 1)))
        sg_dist_abort(1);
    if (sg_dist_broadcast(ctx, b, (size_t)n)) {
        free(b);
        return -1;
    }
    *buf = b;
    *len = (size_t)n;
    return 0;
}

/* The text task's carried state: the checkpoint holds all B streams' (L, B, H); a rank
 * trains its rows (L, rows, H). Gather (collective) before a save, take the rows after a
 * resume. */
static int state_gather(sg_ctx *ctx, const sg_tensor *local, sg_tensor *global, row_range rr) {
    size_t row = (size_t)local->shape[2] * sg_dtype_size(local->dtype);
    for (int64_t l = 0; l < local->shape[0]; l++)
        if (sg_dist_allgather(ctx, (char *)sg_data(local) + (size_t)(l * rr.rows) * row,
                              (size_t)rr.rows * row,
                              (char *)sg_data(global) + (size_t)(l * rr.total) * row))
            return -1;
    return 0;
}
static void state_rows(const sg_tensor *global, sg_tensor *local, row_range rr) {
    size_t row = (size_t)local->shape[2] * sg_dtype_size(local->dtype);
    for (int64_t l = 0; l < local->shape[0]; l++)
        memcpy((char *)sg_data(local) + (size_t)(l * rr.rows) * row,
               (char *)sg_data(global) + (size_t)(l * rr.total + rr.first) * row,
               (size_t)rr.rows * row);
}

/* Held-out text loss (nats per byte) over every rank's streams; collective. NAN on an error
 * on any rank. */
static double text_heldout(sg_ctx *ctx, seqmodel *m, const corpus *cp) {
    double s[3] = {0, 0, 0};
    s[2] = text_eval(ctx, m, cp, sg_dist_rank(), sg_dist_size(), s) != 0;
    if (sg_dist_sum(ctx, s, 3) || s[2] > 0 || !(s[1] > 0))
        return NAN;
    return s[0] / s[1];
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
    /* Under mpirun, one process per rank (README.md, "Training on several processes"): rank
     * 0 prints and writes the files; every rank checks with the others before going on. */
    if (sg_dist_init(&argc, &argv))
        return 1;
    const int rank = sg_dist_rank(), ranks = sg_dist_size();
    if (rank > 0 && !freopen("/dev/null", "w", stdout))
        sg_dist_abort(1);
    config c;
    bool ok = !(parse_args(argc, argv, &c) || (!c.resume && finish_config(&c)));
    if (!sg_dist_all_ok(ok)) {
        sg_dist_finalize();
        return 2;
    }
    /* Check the paths first, and make the output directory: a bad --save or --out should
     * fail before the training, not after it. */
    if (!sg_dist_all_ok(rank > 0 || check_paths(&c) == 0)) {
        sg_dist_finalize();
        return 1;
    }
    sg_ctx *ctx = sg_ctx_new(0);
    sg_store *store = sg_store_new(); /* the model's parameters, in the order of the layers */
    if (!ctx || !store) {
        fprintf(stderr, "train: out of memory\n");
        sg_store_free(store);
        sg_ctx_free(ctx);
        return 1;
    }
    int rc = 1;
    model m = {0};
    sg_param_list params = {0}, ckpt = {0};
    sg_optim *opt = NULL;
    sg_st_file *saved = NULL;
    corpus cp = {0};
    sg_tensor *h = NULL, *cs = NULL; /* text: the state carried from step to step */
    double *x = NULL, *y = NULL, *curve = NULL, *plot = NULL;
    int32_t *labels = NULL;
    int64_t *sample = NULL;
    sg_tensor *h_local = NULL, *c_local = NULL; /* text under mpirun: this rank's streams */
    unsigned char *resume_bytes = NULL;
    size_t resume_len = 0;
    sg_dist_reducer *red = NULL;
    sg_parallel *par = NULL;
    sg_rnn_output *part_out = NULL;
    sg_tensor **part_state = NULL;
    bool agreed = false; /* under mpirun: every rank failed together (no rank left waiting) */

    /* A resumed run takes the checkpoint's options first: they decide the model. Under
     * mpirun rank 0 reads it and every rank loads the bytes it broadcasts. */
    if (c.resume) {
        if (ranks > 1 && share_checkpoint(ctx, c.resume, &resume_bytes, &resume_len)) {
            agreed = true; /* every rank knows */
            goto done;
        }
        saved = ranks > 1 ? sg_checkpoint_meta_mem(ctx, resume_bytes, resume_len, c.resume)
                          : sg_checkpoint_meta(ctx, c.resume);
        if (!saved)
            FAIL("resuming");
        if (!sg_dist_all_ok(!(merge_checkpoint_options(&c, saved) || finish_config(&c)))) {
            agreed = true;
            goto done;
        }
    }
    const bool seq = c.task == TASK_TEXT || c.task == TASK_CLASSIFY;
    int64_t I = input_size(c.task), O = output_size(c.task), B = c.batch, T = c.seq_len;
    /* this rank's rows of every global batch (streams for text): all of them in one process */
    const row_range rr = rows_of(B, rank, ranks);
    const int64_t Bl = rr.rows;
    const double share = (double)Bl / (double)B; /* its part of a batch mean */
    if (B < ranks) {                             /* the same test on every rank */
        if (rank == 0)
            fprintf(stderr, "train: --batch %lld is smaller than the %d ranks\n", (long long)B,
                    ranks);
        agreed = true; /* every rank sees the same numbers */
        goto done;
    }
    if (!sg_dist_all_ok(c.task != TASK_TEXT || !(corpus_load(c.text, &cp, B, T) ||
                                                 (saved && check_resumed_text(&c, &cp, saved))))) {
        agreed = true; /* a rank whose text is missing stops them all */
        goto done;
    }

    /* Weights from the seed; data (and dropout masks) from the context's generator, which
     * checkpoints carry. The layers draw their weights in order, one statement each: the
     * order of evaluation inside one initializer list is unspecified in C. */
    sg_rng init_rng, *data_rng = sg_ctx_rng(ctx);
    sg_rng_seed(&init_rng, c.seed);
    sg_rng_seed(data_rng, c.seed ^ UINT64_C(0x9E3779B97F4A7C15));
    if (seq) {
        seqmodel_options so = {.cell = c.cell,
                               .impl = c.impl,
                               .vocab = c.task == TASK_TEXT ? cp.nvocab : 2,
                               .embed = c.embed,
                               .hidden = c.hidden,
                               .outputs = c.task == TASK_TEXT ? cp.nvocab : 2,
                               .layers = c.layers,
                               .bidirectional = c.bidirectional,
                               .per_step = c.task == TASK_TEXT,
                               .dropout = c.dropout,
                               .recurrent_dropout = c.recurrent_dropout,
                               .dtype = c.dtype};
        if (seqmodel_init(ctx, store, &m.seq, &so, &init_rng))
            FAIL("building the model");
    } else {
        sg_lstm_options lo = sg_lstm_defaults(I, c.hidden);
        lo.dtype = c.dtype;
        m.lstm = sg_lstm_new(ctx, store, c.impl, &lo, "lstm", &init_rng);
        m.head =
            sg_dense_new(ctx, store, c.dtype, c.hidden, O, true, SG_ACT_LINEAR, "dense", &init_rng);
        if (!m.lstm || !m.head)
            FAIL("building the model");
    }
    /* The optimizer walks the store's parameters in the order they were added; checkpoints
     * hold them and, for text, the carried state. */
    if (sg_params_from_store(&params, store) || sg_params_from_store(&ckpt, store) ||
        (c.task == TASK_TEXT && seqmodel_state_new(ctx, &m.seq, B, &h, &cs, &ckpt)))
        FAIL("building the model");
    /* Every rank the same model (a rank started with other options is named), with rank 0's
     * values; the reducer sums the gradients over the ranks while backward runs. */
    if (ranks > 1) {
        if (sg_dist_check_store(ctx, store)) {
            if (rank == 0)
                fprintf(stderr, "train: the ranks' models differ: %s\n", sg_ctx_error(ctx));
            agreed = true;
            goto done;
        }
        if (sg_dist_broadcast_store(ctx, store) || !(red = sg_dist_reducer_new(ctx, store, 0)) ||
            (c.task == TASK_TEXT && seqmodel_state_new(ctx, &m.seq, Bl, &h_local, &c_local, NULL)))
            FAIL("building the model");
    }
    opt = c.adam ? sg_adam_new(ctx, &params, (sg_adam_options){.lr = c.lr})
                 : sg_sgd_new(ctx, &params, (sg_sgd_options){.lr = c.lr, .momentum = c.momentum});
    if (!opt)
        FAIL("building the optimizer");
    /* Threads: as many as the step's work pays for (sg_threads_for; a step costs about 6
     * FLOPs per parameter per row and time step), at most --threads or the default. Under
     * mpirun one per rank: a process per core instead. */
    const int threads =
        ranks > 1 ? 1
                  : sg_threads_for(6.0 * (double)sg_params_count(&params) * (double)(Bl * T), Bl,
                                   c.threads ? c.threads : sg_threads_default());
    part_out = calloc((size_t)threads, sizeof *part_out);
    part_state = calloc(2 * (size_t)threads, sizeof *part_state);
    if (!part_out || !part_state || (ranks == 1 && !(par = sg_parallel_new(ctx, store, threads))))
        FAIL("starting the threads");

    /* What a checkpoint says about the run: the options, and for text the data. */
    static char optbuf[NOPTS][2][4200];
    const char *meta[2 * NOPTS + 8];
    checkpoint_options(&c, meta, optbuf);
    char vocab_hex[513], text_bytes[24], position[24] = "";
    if (c.task == TASK_TEXT) {
        int k = 0;
        while (meta[k])
            k++;
        seqmodel_vocab_hex(cp.vocab, cp.nvocab, vocab_hex);
        snprintf(text_bytes, sizeof text_bytes, "%lld", (long long)cp.n);
        meta[k++] = "train.vocab";
        meta[k++] = vocab_hex;
        meta[k++] = "train.text-bytes";
        meta[k++] = text_bytes;
        meta[k++] = "train.text-position"; /* the next step's place in the epoch (save_at) */
        meta[k++] = position;
        meta[k] = NULL;
    }

    int64_t start = 0;
    if (c.resume) {
        if (ranks > 1 ? sg_checkpoint_load_mem(ctx, resume_bytes, resume_len, c.resume, &ckpt, opt,
                                               &start, data_rng)
                      : sg_checkpoint_load(ctx, c.resume, &ckpt, opt, &start, data_rng))
            FAIL("resuming");
        if (h_local)
            state_rows(h, h_local, rr);
        if (c_local)
            state_rows(cs, c_local, rr);
        if (check_resumed(&c, start, opt, data_rng))
            goto done;
        const char *pos = sg_st_meta(saved, "train.text-position");
        char want[24];
        snprintf(want, sizeof want, "%lld", (long long)(cp.chunks ? start % cp.chunks : 0));
        if (c.task == TASK_TEXT && pos && strcmp(pos, want)) {
            fprintf(stderr,
                    "train: %s: metadata train.text-position '%.30s' is not step %lld's place in "
                    "an epoch of %lld steps (%s)\n",
                    c.resume, pos, (long long)start, (long long)cp.chunks, want);
            goto done;
        }
        if (start == c.steps) {
            printf("train: %s is at step %lld already, as --steps %lld asks: nothing to do\n",
                   c.resume, (long long)start, (long long)c.steps);
            rc = 0;
            goto done;
        }
        printf("resumed from %s at step %lld\n", c.resume, (long long)start);
    }
    /* the LSTM's implementation; the other cells have one */
    const char *impl_name = c.cell == SG_CELL_LSTM ? impl_names[c.impl] : "none";
    if (seq)
        printf("task=%s cell=%s impl=%s layers=%lld hidden=%lld embed=%lld batch=%lld "
               "seq_len=%lld steps=%lld optimizer=%s lr=%g params=%lld isa=%s threads=%d\n",
               task_names[c.task], seqmodel_cell_names[c.cell], impl_name, (long long)c.layers,
               (long long)c.hidden, (long long)c.embed, (long long)B, (long long)T,
               (long long)c.steps, c.adam ? "adam" : "sgd", c.lr,
               (long long)sg_params_count(&params), sg_vmath_isa(), threads);
    else
        printf("task=%s impl=%s hidden=%lld batch=%lld seq_len=%lld steps=%lld optimizer=%s "
               "lr=%g params=%lld isa=%s threads=%d\n",
               task_names[c.task], impl_names[c.impl], (long long)c.hidden, (long long)B,
               (long long)T, (long long)c.steps, c.adam ? "adam" : "sgd", c.lr,
               (long long)sg_params_count(&params), sg_vmath_isa(), threads);
    if (c.task == TASK_TEXT)
        printf("text=%s bytes=%lld vocab=%d train=%lld held_out=%lld streams=%lld x %lld "
               "(%lld steps per epoch)\n",
               c.text, (long long)cp.n, cp.nvocab, (long long)cp.ntrain,
               (long long)(cp.n - cp.ntrain), (long long)B, (long long)cp.stream,
               (long long)cp.chunks);

    x = malloc((size_t)(Bl * T * I) * sizeof *x);
    y = malloc((size_t)Bl * sizeof *y);
    labels = malloc((size_t)Bl * sizeof *labels);
    curve = calloc((size_t)(c.steps > 0 ? c.steps : 1), sizeof *curve);
    plot = calloc((size_t)(c.steps > 0 ? c.steps : 1), sizeof *plot);
    if (!x || !y || !labels || !curve || !plot) {
        fprintf(stderr, "train: out of memory\n");
        goto done;
    }
    /* the state a rank carries: its own streams' under mpirun */
    sg_tensor *hs = h_local ? h_local : h, *css = h_local ? c_local : cs;
    bool tty = rank == 0 && isatty(STDOUT_FILENO);
    double t0 = now(), last_print = 0, eval_time = 0;
    for (int64_t step = start; step < c.steps; step++) {
        /* one draw of the data generator keys the batch's rows (row_rng) */
        uint64_t key = c.task == TASK_TEXT ? 0 : sg_rng_next(data_rng);
        if (!seq)
            make_batch(&c, key, rr.first, x, y, labels, Bl);
        sg_store_zero_grad(store); /* every gradient of the model: one memset */
        if (par) { /* one process: the step's parts on the threads (one part on one thread) */
            step_job j = {&c,  &m, &cp, step,   key,      rr,         hs,
                          css, x,  y,   labels, part_out, part_state, part_state + threads};
            /* Several parts: each draws its dropout masks from its own generator, seeded from
             * the run's seed and the step (so that a resumed run draws the same); the data
             * generator (workspace 0's) keys the batches only, as with one thread. */
            sg_rng keep = *data_rng;
            if (threads > 1)
                sg_parallel_seed(par, c.seed ^ (UINT64_C(0xD1B54A32D192ED03) * (uint64_t)step));
            int bad = sg_parallel_step(par, Bl, &(sg_parallel_fns){part_loss, part_after}, &j,
                                       &curve[step]);
            if (threads > 1)
                *data_rng = keep;
            if (bad)
                FAIL("training step");
        } else { /* under mpirun: this rank's rows, the gradients summed over the ranks */
            sg_tensor *pred, *loss;
            sg_rnn_output rout;
            if (c.task == TASK_TEXT)
                loss = text_loss(ctx, &m.seq, &cp, step, rr, hs, css, &rout);
            else if (c.task == TASK_CLASSIFY)
                loss = classify_loss(ctx, &m.seq, key, rr, T, NULL);
            else
                loss = forward(ctx, &c, &m, x, y, labels, Bl, &pred);
            /* every rank's gradients, weighted by its share */
            if (!loss || sg_dist_backward(ctx, red, loss, share))
                FAIL("training step");
            if (c.task == TASK_TEXT && text_carry(ctx, hs, css, &rout))
                FAIL("carrying the state");
            curve[step] = sg_get_flat(loss, 0) * share; /* the batch's loss: summed over ranks */
            if (sg_dist_sum(ctx, &curve[step], 1))
                FAIL("training step");
        }
        if (c.clip > 0 && sg_clip_grad_norm(&params, c.clip) < 0)
            FAIL("clipping");
        if (sg_optim_step(opt))
            FAIL("optimizer step");
        sg_ctx_reset(ctx);
        int64_t ran = step + 1 - start;
        double el = now() - t0 - eval_time, rate = (double)ran / (el > 0 ? el : 1e-9);
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
        if (c.eval_every && (step + 1) % c.eval_every == 0) {
            /* held-out bits per byte at this step, and the training time so far (the
             * evaluations' own time left out) */
            double e0 = now(), e = text_heldout(ctx, &m.seq, &cp);
            if (isnan(e))
                FAIL("evaluation");
            eval_time += now() - e0;
            printf("%seval step %lld eval_loss %.6f bpc %.4f seconds %.2f\n", tty ? "\n" : "",
                   (long long)(step + 1), e, e / log(2.0), el);
        }
        if (c.save && c.save_every && (step + 1) % c.save_every == 0 && step + 1 < c.steps &&
            ((h_local && (state_gather(ctx, h_local, h, rr) ||
                          (c_local && state_gather(ctx, c_local, cs, rr)))) ||
             (rank == 0 && save_at(ctx, &c, &cp, &ckpt, opt, step + 1, data_rng, meta, position))))
            FAIL("saving");
    }
    if (tty)
        printf("\n");
    double seconds = now() - t0 - eval_time;
    if (c.save &&
        ((h_local &&
          (state_gather(ctx, h_local, h, rr) || (c_local && state_gather(ctx, c_local, cs, rr)))) ||
         (rank == 0 && save_at(ctx, &c, &cp, &ckpt, opt, c.steps, data_rng, meta, position))))
        FAIL("saving");

    /* Held-out evaluation: text on its held-out bytes; the others on fresh data from a
     * generator the training never touched. */
    sg_rng eval_rng;
    sg_rng_seed(&eval_rng, c.seed + UINT64_C(1000003));
    enum { EVAL_BATCHES = 16 };
    double eval = 0, base = 0, accuracy = 0, majority = 0;
    double preds[64], targets[64];
    int64_t np = 0;
    sg_ctx_set_grad_enabled(ctx, false);
    sg_ctx_set_training(ctx, false);
    if (c.task == TASK_TEXT) {
        eval = text_heldout(ctx, &m.seq, &cp);
        base = corpus_baseline(&cp);
        if (isnan(eval))
            FAIL("evaluation");
    }
    int64_t counts[2] = {0, 0}; /* classify: right answers, label 0 */
    for (int e = 0; !(c.task == TASK_TEXT) && e < EVAL_BATCHES; e++) {
        sg_tensor *pred, *loss;
        uint64_t key = sg_rng_next(&eval_rng);
        if (c.task == TASK_CLASSIFY) {
            loss = classify_loss(ctx, &m.seq, key, rr, T, counts);
        } else {
            make_batch(&c, key, rr.first, x, y, labels, Bl);
            loss = forward(ctx, &c, &m, x, y, labels, Bl, &pred);
        }
        if (!loss)
            FAIL("evaluation");
        eval += sg_get_flat(loss, 0) * share / EVAL_BATCHES;
        for (int64_t b = 0; !seq && b < Bl; b++) {
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
    if (ranks > 1 && c.task != TASK_TEXT) { /* every rank's rows of the batches */
        double sums[4] = {eval, base, (double)counts[0], (double)counts[1]};
        if (sg_dist_sum(ctx, sums, 4))
            FAIL("evaluation");
        eval = sums[0];
        base = sums[1];
        counts[0] = (int64_t)sums[2];
        counts[1] = (int64_t)sums[3];
    }
    if (c.task == TASK_RECALL)
        base = log((double)RECALL_K);
    if (c.task == TASK_CLASSIFY) { /* the labels' entropy: the loss of always answering the prior */
        double n = (double)(B * EVAL_BATCHES), p0 = (double)counts[1] / n, p1 = 1 - p0;
        base = -(p0 > 0 ? p0 * log(p0) : 0) - (p1 > 0 ? p1 * log(p1) : 0);
        accuracy = (double)counts[0] / n;
        majority = p0 > p1 ? p0 : p1;
    }
    if (eval <= base)
        printf("held-out loss %.6f vs baseline %.6f (%.1fx better)\n", eval, base, base / eval);
    else
        printf("held-out loss %.6f vs baseline %.6f (%.2fx worse)\n", eval, base, eval / base);
    if (c.task == TASK_TEXT)
        printf("held-out bits per byte %.4f vs baseline %.4f\n", eval / log(2.0), base / log(2.0));
    if (c.task == TASK_CLASSIFY)
        printf("held-out accuracy %.4f vs majority class %.4f\n", accuracy, majority);

    if (rank > 0) { /* rank 0 writes the files, the sample and the result */
        rc = 0;
        goto done;
    }
    /* Loss curve (CSV + SVG) and, for sine, predictions against targets. Each file is
     * written even when another failed; any failure (reported by the writer) is exit 1. A
     * resumed run appends to the CSV of the run it continues (read_loss_csv). */
    char path[4096];
    int failed = 0;
    snprintf(path, sizeof path, "%s/loss_%s.csv", c.out_dir, task_names[c.task]);
    int64_t first = start > 0 && read_loss_csv(path, curve, start) ? 0 : start;
    if (write_loss_csv(path, curve + first, first, c.steps - first) == 0)
        printf("wrote %s\n", path);
    else
        failed = 1;
    /* text: the plot in bits per character */
    double unit = c.task == TASK_TEXT ? log(2.0) : 1.0;
    for (int64_t i = first; i < c.steps; i++)
        plot[i] = curve[i] / unit;
    snprintf(path, sizeof path, "%s/loss_%s.svg", c.out_dir, task_names[c.task]);
    if (c.steps > first) {
        if (write_loss_plot(path, plot + first, first, c.steps - first, base / unit,
                            c.task == TASK_TEXT ? "bits per character" : "loss") == 0)
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
    if (c.task == TASK_TEXT) { /* what the model writes: as generate does with this seed */
        enum { SAMPLE = 200 };
        sg_rng srng;
        sg_rng_seed(&srng, c.seed);
        sg_sample_opts so = sg_sample_defaults();
        so.temperature = c.temperature;
        int64_t prime = seqmodel_default_prime(cp.vocab, cp.nvocab);
        sample = malloc(SAMPLE * sizeof *sample);
        if (!sample || seqmodel_sample(ctx, &m.seq, &prime, 1, SAMPLE, &so, &srng, sample))
            FAIL("sampling");
        printf("sample (%d characters, temperature %g):\n", SAMPLE, c.temperature);
        for (int i = 0; i < SAMPLE; i++)
            putchar(cp.vocab[sample[i]]);
        printf("\n");
    }
    /* The trained model as ONNX (README.md, "Exporting to ONNX"): text gives logits at
     * every step and takes and returns the recurrent state (for generation one character at
     * a time); classify reads lengths; the toy tasks' y is the Dense layer on the last h. */
    if (c.export_onnx) {
        sg_dense *head = seq ? m.seq.head : m.head;
        const bool text = c.task == TASK_TEXT, lstm = c.cell == SG_CELL_LSTM;
        sg_onnx_model om = {.embedding = seq ? m.seq.emb : NULL,
                            .rnn = seq ? m.seq.rnn : NULL,
                            .lstm = seq ? NULL : m.lstm,
                            .dense = &head,
                            .n_dense = 1,
                            .head = text ? SG_ONNX_EVERY_STEP : SG_ONNX_FINAL_STATE,
                            .lengths = c.task == TASK_CLASSIFY,
                            .h0 = text,
                            .c0 = text && lstm,
                            .h_n = text,
                            .c_n = text && lstm,
                            .output_name = seq ? "logits" : "y"};
        if (sg_onnx_export(ctx, c.export_onnx, &om))
            FAIL("exporting to ONNX");
        printf("wrote %s (ONNX; inputs: %s%s%s; outputs: %s%s)\n", c.export_onnx, seq ? "ids" : "x",
               c.task == TASK_CLASSIFY ? ", lengths" : "", text ? (lstm ? ", h0, c0" : ", h0") : "",
               seq ? "logits" : "y", text ? (lstm ? ", h_n, c_n" : ", h_n") : "");
    }
    if (c.task == TASK_TEXT)
        printf("result: task=text cell=%s impl=%s eval_loss=%.6g baseline=%.6g bpc=%.4f "
               "steps=%lld seconds=%.2f\n",
               seqmodel_cell_names[c.cell], impl_name, eval, base, eval / log(2.0),
               (long long)c.steps, seconds);
    else if (c.task == TASK_CLASSIFY)
        printf("result: task=classify cell=%s impl=%s eval_loss=%.6g baseline=%.6g "
               "accuracy=%.4f majority=%.4f steps=%lld seconds=%.2f\n",
               seqmodel_cell_names[c.cell], impl_name, eval, base, accuracy, majority,
               (long long)c.steps, seconds);
    else
        printf("result: task=%s impl=%s eval_loss=%.6g baseline=%.6g steps=%lld seconds=%.2f\n",
               task_names[c.task], impl_names[c.impl], eval, base, (long long)c.steps, seconds);
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
    free(plot);
    free(sample);
    sg_optim_free(opt);
    sg_params_clear(&params);
    sg_params_clear(&ckpt);
    sg_tensor_free(h);
    sg_tensor_free(cs);
    sg_lstm_free(m.lstm);
    sg_dense_free(m.head);
    seqmodel_free(&m.seq);
    sg_store_free(store);
    sg_st_free(saved);
    corpus_free(&cp);
    sg_dist_reducer_free(red);
    sg_parallel_free(par);
    free(part_out);
    free(part_state);
    sg_tensor_free(h_local);
    sg_tensor_free(c_local);
    free(resume_bytes);
    sg_ctx_free(ctx);
    if (rc != 0 && ranks > 1 && !agreed) /* a rank failing alone must not leave others waiting */
        sg_dist_abort(rc);
    sg_dist_finalize();
    return rc;
}
