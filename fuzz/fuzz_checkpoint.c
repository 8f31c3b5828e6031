/* libFuzzer target for checkpoint loading (io/checkpoint.c over io/safetensors.c) into a
 * live model and optimizer. Build and run with fuzz/run.sh.
 *
 * A fixed small model is built once, as examples/train.c builds it: an LSTM ("lstm",
 * input 2, units 3, float32, fused) and a Dense head ("dense", 3 -> 1) in one store, Adam
 * over sg_params_from_store, trained two steps so that every state tensor and the step
 * counts are nonzero. That state is the baseline. For each input:
 *   - the baseline is restored (so every input runs from the same state: reproducible),
 *   - the bytes are written to a temporary file (in $SG_FUZZ_TMPDIR, else /dev/shm when
 *     it exists),
 *   - sg_checkpoint_load(ctx, path, &params, opt, &step, &rng) is called, and
 *   (a) on failure nothing has changed: every byte of the store's value and gradient
 *       slabs, every optimizer state tensor, the optimizer's step counts (its own and each
 *       parameter's), learning rate and bias-correction cache, *step, *rng and the
 *       context's generator compare bitwise equal to the baseline;
 *   (b) on failure the context holds an error "sg_checkpoint_load: <path>: ..." (the
 *       function's name first, then the file, as io.h documents); on success it holds
 *       none; the store never receives an error;
 *   (c) on success the file re-read with sg_safetensors_load holds exactly the model's
 *       tensors and the optimizer's, and each loaded tensor equals the file's bitwise;
 *       *step, the optimizer's step count and *rng equal the file's metadata; the
 *       gradients and the context's generator are untouched.
 * A violated invariant prints what broke and aborts, so libFuzzer reports the input.
 *
 * SG_FUZZ_VERBOSE=1 in the environment prints each load's outcome (its error, or "loaded").
 * SG_FUZZ_STRICT=1 adds the checks that issue 20 asks for and that the
 * loader does not make yet (items 1, 2, 8, 13): a loaded step is >= 0, a loaded generator
 * state is not all zero and its spare normal (when it has one) is finite, every loaded
 * value is finite, Adam's second moments are >= 0, an
 * error message holds no control characters. Off by default so that CI fuzzes for new
 * bugs rather than re-finding the known ones.
 *
 * Seeds: `fuzz_checkpoint -write_seeds=DIR` writes valid checkpoints of this model and
 * mutated variants (see write_seeds) into DIR and exits; fuzz/corpus_checkpoint holds
 * their output.
 */
#define _POSIX_C_SOURCE 200809L
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "io/io.h"
#include "layers/layers.h"
#include "optim/internal.h" /* the optimizer's step counts and caches, to snapshot them */

#define FN "sg_checkpoint_load"

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* ---- failing loudly ------------------------------------------------------------------ */

static void remove_file(void);

__attribute__((noreturn, format(printf, 1, 2))) static void violated(const char *fmt, ...);
static void violated(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "\nfuzz_checkpoint: INVARIANT VIOLATED: ");
    vfprintf(stderr, fmt, ap);
    fprintf(stderr, "\n");
    va_end(ap);
    remove_file(); /* abort runs no atexit handler */
    abort();
}

/* A failure to set up (out of memory, no temporary file) is no finding: exit 2. */
__attribute__((noreturn)) static void setup_failed(const char *what, const char *err) {
    fprintf(stderr, "fuzz_checkpoint: setup failed: %s: %s\n", what, err ? err : "(no error)");
    exit(2);
}

/* ---- the model ----------------------------------------------------------------------- */

enum { I_SIZE = 2, H_SIZE = 3, B_SIZE = 2, T_SIZE = 3 };

static sg_ctx *g_ctx;    /* the model's context: optimizer state, errors of the load */
static sg_ctx *g_vctx;   /* a second context for re-reading a loaded file */
static sg_store *g_store;
static sg_lstm *g_lstm;
static sg_dense *g_dense;
static sg_param_list g_params; /* the store's parameters */
static sg_param_list g_state;  /* the optimizer's state tensors (same tensors as inside opt) */
static sg_optim *g_opt;
static int64_t g_step;
static sg_rng g_rng;
static bool g_strict;
static bool g_verbose;
static char g_path[256];
static int g_fd = -1;

static void build_model(void) {
    g_ctx = sg_ctx_new(0);
    g_vctx = sg_ctx_new(0);
    g_store = sg_store_new();
    if (!g_ctx || !g_vctx || !g_store)
        setup_failed("contexts", "out of memory");
    sg_rng init_rng;
    sg_rng_seed(&init_rng, 42);
    sg_lstm_options lo = sg_lstm_defaults(I_SIZE, H_SIZE);
    lo.dtype = SG_F32;
    g_lstm = sg_lstm_new(g_ctx, g_store, SG_LSTM_FUSED, &lo, "lstm", &init_rng);
    g_dense = sg_dense_new(g_ctx, g_store, SG_F32, H_SIZE, 1, true, SG_ACT_LINEAR, "dense",
                           &init_rng);
    if (!g_lstm || !g_dense || sg_params_from_store(&g_params, g_store))
        setup_failed("model", sg_ctx_error(g_ctx));
    g_opt = sg_adam_new(g_ctx, &g_params, (sg_adam_options){.lr = 0.01});
    if (!g_opt || sg_optim_state(g_opt, &g_state))
        setup_failed("optimizer", sg_ctx_error(g_ctx));
    sg_rng_seed(&g_rng, 42 ^ UINT64_C(0x9E3779B97F4A7C15));
    g_step = 0;
    for (int i = 0; i < g_state.n; i++)
        if (!sg_is_contiguous(g_state.items[i].tensor))
            setup_failed("optimizer state", "not contiguous");
}

/* One training step on a batch drawn from g_rng, as train does. */
static void train_step(void) {
    float x[B_SIZE * T_SIZE * I_SIZE], y[B_SIZE];
    for (int i = 0; i < B_SIZE * T_SIZE * I_SIZE; i++)
        x[i] = (float)sg_rng_normal(&g_rng);
    for (int i = 0; i < B_SIZE; i++)
        y[i] = (float)sg_rng_uniform(&g_rng);
    sg_store_zero_grad(g_store);
    sg_tensor *xt = sg_from_data(g_ctx, SG_F32, SG_SHAPE(B_SIZE, T_SIZE, I_SIZE), x);
    sg_tensor *yt = sg_from_data(g_ctx, SG_F32, SG_SHAPE(B_SIZE, 1), y);
    sg_lstm_output out;
    if (!xt || !yt || sg_lstm_forward(g_ctx, g_lstm, xt, NULL, NULL, &out))
        setup_failed("forward", sg_ctx_error(g_ctx));
    sg_tensor *loss = sg_mse_loss(g_ctx, sg_dense_forward(g_ctx, g_dense, out.y), yt);
    if (!loss || sg_backward(g_ctx, loss, NULL) || sg_optim_step(g_opt))
        setup_failed("training step", sg_ctx_error(g_ctx));
    sg_ctx_reset(g_ctx);
    g_step++;
}

/* ---- snapshots ----------------------------------------------------------------------- */

typedef struct snapshot {
    size_t slab_bytes;
    unsigned char *values, *grads; /* the store's slabs */
    unsigned char *state[64];      /* each optimizer state tensor's bytes */
    size_t state_bytes[64];
    int64_t osteps, slot_step[16], bc_step;
    double lr, bc1, bc2_sqrt;
    int64_t step;
    sg_rng rng, ctx_rng;
} snapshot;

static snapshot g_base, g_now;

static size_t tensor_bytes(const sg_tensor *t) {
    return (size_t)sg_numel(t) * sg_dtype_size(t->dtype);
}

static void snap_alloc(snapshot *s) {
    s->slab_bytes = (size_t)sg_store_slab_len(g_store) * sg_dtype_size(sg_store_dtype(g_store));
    s->values = malloc(s->slab_bytes);
    s->grads = malloc(s->slab_bytes);
    if (!s->values || !s->grads || g_state.n > 64 || g_opt->n > 16)
        setup_failed("snapshot", "out of memory or too many tensors");
    for (int i = 0; i < g_state.n; i++) {
        s->state_bytes[i] = tensor_bytes(g_state.items[i].tensor);
        if (!(s->state[i] = malloc(s->state_bytes[i] ? s->state_bytes[i] : 1)))
            setup_failed("snapshot", "out of memory");
    }
}

static void snap_take(snapshot *s) {
    memcpy(s->values, sg_store_values(g_store), s->slab_bytes);
    memcpy(s->grads, sg_store_grads(g_store), s->slab_bytes);
    for (int i = 0; i < g_state.n; i++)
        memcpy(s->state[i], sg_data(g_state.items[i].tensor), s->state_bytes[i]);
    s->osteps = g_opt->steps;
    for (int i = 0; i < g_opt->n; i++)
        s->slot_step[i] = g_opt->slots[i].step;
    s->bc_step = g_opt->bc_step;
    s->lr = g_opt->lr;
    s->bc1 = g_opt->bc1;
    s->bc2_sqrt = g_opt->bc2_sqrt;
    s->step = g_step;
    s->rng = g_rng;
    s->ctx_rng = *sg_ctx_rng(g_ctx);
}

static void snap_restore(const snapshot *s) {
    memcpy(sg_store_values(g_store), s->values, s->slab_bytes);
    memcpy(sg_store_grads(g_store), s->grads, s->slab_bytes);
    for (int i = 0; i < g_state.n; i++)
        memcpy(sg_data(g_state.items[i].tensor), s->state[i], s->state_bytes[i]);
    g_opt->steps = s->osteps;
    for (int i = 0; i < g_opt->n; i++)
        g_opt->slots[i].step = s->slot_step[i];
    g_opt->bc_step = s->bc_step;
    g_opt->lr = s->lr;
    g_opt->bc1 = s->bc1;
    g_opt->bc2_sqrt = s->bc2_sqrt;
    g_step = s->step;
    g_rng = s->rng;
    *sg_ctx_rng(g_ctx) = s->ctx_rng;
}

static bool same_bits(const void *a, const void *b, size_t n) { return !memcmp(a, b, n); }

static bool rng_equal(const sg_rng *a, const sg_rng *b) {
    return same_bits(a->s, b->s, sizeof a->s) && same_bits(&a->spare, &b->spare, sizeof a->spare) &&
           a->has_spare == b->has_spare;
}

/* The first byte offset where two buffers differ, for the report. */
static size_t first_diff(const unsigned char *a, const unsigned char *b, size_t n) {
    size_t i = 0;
    while (i < n && a[i] == b[i])
        i++;
    return i;
}

/* Which parameter holds byte `off` of the value slab. */
static const char *param_at_byte(size_t off) {
    const unsigned char *slab = sg_store_values(g_store);
    for (int i = 0; i < g_params.n; i++) {
        const unsigned char *p = sg_data(g_params.items[i].tensor);
        if ((size_t)(p - slab) <= off && off < (size_t)(p - slab) + tensor_bytes(g_params.items[i].tensor))
            return g_params.items[i].name;
    }
    return "(padding between parameters)";
}

/* (a): after a failed load everything equals the baseline. */
static void check_unchanged(const char *err) {
    snap_take(&g_now);
    const snapshot *b = &g_base, *n = &g_now;
    if (!same_bits(b->values, n->values, b->slab_bytes)) {
        size_t off = first_diff(b->values, n->values, b->slab_bytes);
        violated("failed load changed parameter values (byte %zu of the value slab, in %s); "
                 "error: %s", off, param_at_byte(off), err);
    }
    if (!same_bits(b->grads, n->grads, b->slab_bytes))
        violated("failed load changed gradients (byte %zu of the gradient slab); error: %s",
                 first_diff(b->grads, n->grads, b->slab_bytes), err);
    for (int i = 0; i < g_state.n; i++)
        if (!same_bits(b->state[i], n->state[i], b->state_bytes[i]))
            violated("failed load changed optimizer state %s (byte %zu); error: %s",
                     g_state.items[i].name, first_diff(b->state[i], n->state[i], b->state_bytes[i]),
                     err);
    if (b->osteps != n->osteps)
        violated("failed load changed the optimizer's step count %" PRId64 " -> %" PRId64
                 "; error: %s", b->osteps, n->osteps, err);
    for (int i = 0; i < g_opt->n; i++)
        if (b->slot_step[i] != n->slot_step[i])
            violated("failed load changed %s's step count %" PRId64 " -> %" PRId64 "; error: %s",
                     g_opt->slots[i].name, b->slot_step[i], n->slot_step[i], err);
    if (!same_bits(&b->lr, &n->lr, sizeof b->lr) || b->bc_step != n->bc_step ||
        !same_bits(&b->bc1, &n->bc1, sizeof b->bc1) ||
        !same_bits(&b->bc2_sqrt, &n->bc2_sqrt, sizeof b->bc2_sqrt))
        violated("failed load changed the optimizer's rate or bias corrections; error: %s", err);
    if (b->step != n->step)
        violated("failed load changed *step %" PRId64 " -> %" PRId64 "; error: %s", b->step,
                 n->step, err);
    if (!rng_equal(&b->rng, &n->rng))
        violated("failed load changed *rng; error: %s", err);
    if (!rng_equal(&b->ctx_rng, &n->ctx_rng))
        violated("failed load changed the context's generator; error: %s", err);
}

/* ---- the checks after a load --------------------------------------------------------- */

static bool has_prefix(const char *s, const char *p) { return !strncmp(s, p, strlen(p)); }

/* (b): "sg_checkpoint_load: <path>: <problem>". */
static void check_message(const char *err) {
    if (!has_prefix(err, FN ": "))
        violated("error does not start with \"" FN ": \": %s", err);
    const char *rest = err + strlen(FN ": ");
    if (!has_prefix(rest, g_path) || !has_prefix(rest + strlen(g_path), ": "))
        violated("error does not name the file (\"" FN ": %s: ...\"): %s", g_path, err);
    if (!rest[strlen(g_path) + 2])
        violated("error names no problem: %s", err);
    if (g_strict)
        for (const unsigned char *c = (const unsigned char *)err; *c; c++)
            if (*c < 0x20 || *c == 0x7f)
                violated("(strict) error holds control character 0x%02x at %td: %s", *c,
                         (const char *)c - err, err);
}

/* A strict decimal int64 as the checkpoint writer prints it. */
static bool meta_i64(const sg_st_file *f, const char *key, int64_t *out) {
    const char *s = sg_st_meta(f, key);
    if (!s || !*s)
        return false;
    char *end;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    if (*end || errno)
        return false;
    *out = v;
    return true;
}

static bool meta_rng(const sg_st_file *f, sg_rng *r) {
    const char *s = sg_st_meta(f, "rng");
    unsigned long long w[5];
    int hs, used = 0;
    if (!s || sscanf(s, "%16llx %16llx %16llx %16llx %16llx %d%n", &w[0], &w[1], &w[2], &w[3],
                     &w[4], &hs, &used) != 6 || s[used])
        return false;
    for (int i = 0; i < 4; i++)
        r->s[i] = w[i];
    uint64_t bits = w[4];
    memcpy(&r->spare, &bits, sizeof bits);
    r->has_spare = hs;
    return true;
}

/* Compare one live tensor with the file's tensor of that name, bitwise. */
static void check_loaded_tensor(const sg_st_file *f, const char *name, const sg_tensor *live) {
    if (!sg_st_has(f, name))
        violated("successful load, but the file has no tensor %s", name);
    const sg_tensor *ft = sg_st_get(f, name);
    if (ft->dtype != live->dtype || ft->ndim != live->ndim)
        violated("successful load, but %s has dtype/ndim %d/%d in the file, %d/%d live", name,
                 (int)ft->dtype, ft->ndim, (int)live->dtype, live->ndim);
    for (int d = 0; d < ft->ndim; d++)
        if (ft->shape[d] != live->shape[d])
            violated("successful load, but %s's dimension %d is %" PRId64 " in the file, %" PRId64
                     " live", name, d, ft->shape[d], live->shape[d]);
    size_t nb = tensor_bytes(live);
    unsigned char *a = malloc(nb + 1), *b = malloc(nb + 1);
    if (!a || !b)
        setup_failed("compare", "out of memory");
    if (sg_copy_to(ft, a) || sg_copy_to(live, b))
        violated("cannot read %s back: %s / %s", name, sg_ctx_error(g_vctx) ? sg_ctx_error(g_vctx) : "",
                 sg_store_error(g_store) ? sg_store_error(g_store) : "");
    if (!same_bits(a, b, nb))
        violated("successful load, but %s differs from the file's tensor at byte %zu", name,
                 first_diff(a, b, nb));
    if (g_strict) {
        size_t es = sg_dtype_size(live->dtype);
        bool second_moment = strstr(name, "exp_avg_sq") != NULL;
        for (size_t k = 0; k < nb / es; k++) {
            double v = es == 4 ? (double)((const float *)(const void *)b)[k]
                               : ((const double *)(const void *)b)[k];
            if (!isfinite(v))
                violated("(strict) loaded %s holds %g at index %zu", name, v, k);
            if (second_moment && v < 0)
                violated("(strict) loaded second moment %s holds %g at index %zu", name, v, k);
        }
    }
    free(a);
    free(b);
}

/* (c): the loaded state is the file's. */
static void check_loaded(void) {
    sg_ctx_clear_error(g_vctx);
    sg_st_file *f = sg_safetensors_load(g_vctx, g_path);
    if (!f)
        violated("sg_checkpoint_load accepted the file, sg_safetensors_load refuses it: %s",
                 sg_ctx_error(g_vctx));
    if (sg_st_count(f) != g_params.n + g_state.n)
        violated("successful load of a file with %d tensors; the model and optimizer have %d",
                 sg_st_count(f), g_params.n + g_state.n);
    for (int i = 0; i < g_params.n; i++)
        check_loaded_tensor(f, g_params.items[i].name, g_params.items[i].tensor);
    for (int i = 0; i < g_state.n; i++)
        check_loaded_tensor(f, g_state.items[i].name, g_state.items[i].tensor);

    const char *fmt = sg_st_meta(f, "format"), *okind = sg_st_meta(f, "optimizer");
    if (!fmt || strcmp(fmt, "seqgrad-checkpoint-1") || !okind || strcmp(okind, "adam"))
        violated("successful load of a file with format '%s', optimizer '%s'", fmt ? fmt : "(none)",
                 okind ? okind : "(none)");
    int64_t v;
    if (!meta_i64(f, "step", &v) || v != g_step)
        violated("successful load: *step is %" PRId64 ", the file's step is '%s'", g_step,
                 sg_st_meta(f, "step") ? sg_st_meta(f, "step") : "(none)");
    if (!meta_i64(f, "optimizer_steps", &v) || v != g_opt->steps)
        violated("successful load: the optimizer's steps are %" PRId64
                 ", the file's optimizer_steps is '%s'", g_opt->steps,
                 sg_st_meta(f, "optimizer_steps") ? sg_st_meta(f, "optimizer_steps") : "(none)");
    for (int i = 0; i < g_opt->n; i++)
        if (g_opt->slots[i].step != g_opt->steps)
            violated("successful load: %s's step count %" PRId64 " is not the optimizer's %" PRId64,
                     g_opt->slots[i].name, g_opt->slots[i].step, g_opt->steps);
    sg_rng r;
    if (!meta_rng(f, &r) || !rng_equal(&r, &g_rng))
        violated("successful load: *rng differs from the file's rng '%s'",
                 sg_st_meta(f, "rng") ? sg_st_meta(f, "rng") : "(none)");
    sg_st_free(f);

    snap_take(&g_now);
    if (!same_bits(g_base.grads, g_now.grads, g_base.slab_bytes))
        violated("successful load changed gradients");
    if (!rng_equal(&g_base.ctx_rng, &g_now.ctx_rng))
        violated("successful load changed the context's generator");
    if (g_strict) {
        if (g_step < 0)
            violated("(strict) loaded a negative step %" PRId64, g_step);
        if (!(g_rng.s[0] | g_rng.s[1] | g_rng.s[2] | g_rng.s[3]))
            violated("(strict) loaded the all-zero generator state (xoshiro's fixed point)");
        if (g_rng.has_spare && !isfinite(g_rng.spare))
            violated("(strict) loaded a generator whose spare normal is %g", g_rng.spare);
    }
}

/* ---- the input file ------------------------------------------------------------------ */

/* Remove the input file: at exit and before an abort of ours. A sanitizer report, a
 * timeout or a signal still leaves it (the sanitizers' one death callback is libFuzzer's,
 * which saves the input): fuzz/run.sh gives the target a directory of its own
 * (SG_FUZZ_TMPDIR) and removes that. */
static void remove_file(void) {
    if (g_fd >= 0) {
        close(g_fd);
        unlink(g_path);
        g_fd = -1;
    }
}

/* In $SG_FUZZ_TMPDIR, else /dev/shm (memory), else $TMPDIR or /tmp. */
static void open_file(void) {
    struct stat st;
    const char *dir = getenv("SG_FUZZ_TMPDIR");
    if (!dir || !*dir)
        dir = stat("/dev/shm", &st) == 0 && S_ISDIR(st.st_mode) && !access("/dev/shm", W_OK)
                  ? "/dev/shm"
                  : (getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp");
    snprintf(g_path, sizeof g_path, "%s/sg-fuzz-ckpt.XXXXXX", dir);
    g_fd = mkstemp(g_path);
    if (g_fd < 0)
        setup_failed("temporary file", g_path);
    atexit(remove_file);
}

static void write_input(const uint8_t *data, size_t size) {
    if (ftruncate(g_fd, 0))
        setup_failed("ftruncate", g_path);
    size_t done = 0;
    while (done < size) {
        ssize_t w = pwrite(g_fd, data + done, size - done, (off_t)done);
        if (w <= 0)
            setup_failed("write", g_path);
        done += (size_t)w;
    }
}

/* ---- seeds --------------------------------------------------------------------------- */

static const char *g_seed_dir;

static void seed_path(char *buf, size_t n, const char *name) {
    snprintf(buf, n, "%s/%s", g_seed_dir, name);
}

static void write_bytes(const char *name, const void *data, size_t n) {
    char p[1024];
    seed_path(p, sizeof p, name);
    FILE *f = fopen(p, "wb");
    if (!f || fwrite(data, 1, n, f) != n || fclose(f))
        setup_failed("writing seed", p);
}

static unsigned char *read_bytes(const char *name, size_t *n) {
    char p[1024];
    seed_path(p, sizeof p, name);
    FILE *f = fopen(p, "rb");
    if (!f)
        setup_failed("reading seed", p);
    unsigned char *buf = malloc(1 << 20);
    *n = buf ? fread(buf, 1, 1 << 20, f) : 0;
    fclose(f);
    if (!buf || !*n)
        setup_failed("reading seed", p);
    return buf;
}

static void save_checkpoint(const char *name) {
    char p[1024];
    seed_path(p, sizeof p, name);
    if (sg_checkpoint_save(g_ctx, p, &g_params, g_opt, g_step, &g_rng))
        setup_failed("saving seed", sg_ctx_error(g_ctx));
}

/* The list a checkpoint of this model holds: parameters, then optimizer state. `skip`
 * leaves one name out; `swap_name`/`swap` replaces that entry's tensor; `extra` appends. */
static void save_variant(const char *name, const char *const *meta, const char *skip,
                         const char *swap_name, sg_tensor *swap, const char *extra) {
    sg_param_list all = {0};
    for (int k = 0; k < 2; k++) {
        const sg_param_list *l = k ? &g_state : &g_params;
        for (int i = 0; i < l->n; i++) {
            const char *n = l->items[i].name;
            if (skip && !strcmp(n, skip))
                continue;
            sg_params_add(&all, n, swap_name && !strcmp(n, swap_name) ? swap : l->items[i].tensor);
        }
    }
    if (extra)
        sg_params_add(&all, extra, g_params.items[0].tensor);
    char p[1024];
    seed_path(p, sizeof p, name);
    if (sg_safetensors_save(g_ctx, p, &all, meta))
        setup_failed("saving seed", sg_ctx_error(g_ctx));
    sg_params_clear(&all);
}

/* A checkpoint's metadata with one key's value replaced (value NULL: the key left out). */
static void save_meta_variant(const char *name, const char *key, const char *value) {
    char step_s[24], osteps_s[24], rng_s[128];
    snprintf(step_s, sizeof step_s, "%" PRId64, g_step);
    snprintf(osteps_s, sizeof osteps_s, "%" PRId64, g_opt->steps);
    uint64_t spare;
    memcpy(&spare, &g_rng.spare, sizeof spare);
    snprintf(rng_s, sizeof rng_s, "%016" PRIx64 " %016" PRIx64 " %016" PRIx64 " %016" PRIx64
             " %016" PRIx64 " %d", g_rng.s[0], g_rng.s[1], g_rng.s[2], g_rng.s[3], spare,
             g_rng.has_spare ? 1 : 0);
    const char *kv[][2] = {{"format", "seqgrad-checkpoint-1"},
                           {"optimizer", "adam"},
                           {"optimizer_steps", osteps_s},
                           {"rng", rng_s},
                           {"step", step_s}};
    const char *meta[16];
    int m = 0;
    for (size_t i = 0; i < sizeof kv / sizeof kv[0]; i++) {
        const char *v = key && !strcmp(key, kv[i][0]) ? value : kv[i][1];
        if (!v)
            continue;
        meta[m++] = kv[i][0];
        meta[m++] = v;
    }
    meta[m] = NULL;
    save_variant(name, meta, NULL, NULL, NULL, NULL);
}

/* A raw safetensors file: 8-byte header length, the header padded to 8 bytes, data. */
static void write_raw(const char *name, const char *header, const void *data, size_t n) {
    size_t hl = strlen(header), padded = (hl + 7) / 8 * 8;
    unsigned char *buf = calloc(1, 8 + padded + n + 1);
    if (!buf)
        setup_failed("seed", "out of memory");
    for (int i = 0; i < 8; i++)
        buf[i] = (unsigned char)((uint64_t)padded >> (8 * i));
    memset(buf + 8, ' ', padded);
    memcpy(buf + 8, header, hl);
    if (n)
        memcpy(buf + 8 + padded, data, n);
    write_bytes(name, buf, 8 + padded + n);
    free(buf);
}

static void write_seeds(const char *dir) {
    g_seed_dir = dir;
    if (mkdir(dir, 0777) && errno != EEXIST)
        setup_failed("mkdir", dir);
    /* A fresh model: zero optimizer state, step 0. */
    save_checkpoint("valid_step0");
    train_step();
    train_step();
    train_step();
    /* Trained three steps: differs from the baseline (two steps) everywhere. */
    save_checkpoint("valid_step3");

    save_meta_variant("step_negative", "step", "-5");
    save_meta_variant("step_int64_max", "step", "9223372036854775807");
    save_meta_variant("step_int64_min", "step", "-9223372036854775808");
    save_meta_variant("step_overflow", "step", "9223372036854775808");
    save_meta_variant("step_2p32", "step", "4294967296");
    save_meta_variant("step_not_a_number", "step", "five");
    save_meta_variant("step_float", "step", "3.0");
    save_meta_variant("step_space", "step", " 3");
    save_meta_variant("step_empty", "step", "");
    save_meta_variant("step_missing", "step", NULL);
    save_meta_variant("osteps_negative", "optimizer_steps", "-1");
    save_meta_variant("osteps_int64_max", "optimizer_steps", "9223372036854775807");
    save_meta_variant("osteps_missing", "optimizer_steps", NULL);
    save_meta_variant("rng_all_zero", "rng",
                      "0000000000000000 0000000000000000 0000000000000000 0000000000000000 "
                      "0000000000000000 0");
    save_meta_variant("rng_nan_spare", "rng",
                      "0000000000000001 0000000000000002 0000000000000003 0000000000000004 "
                      "7ff8000000000000 1");
    save_meta_variant("rng_short", "rng", "0000000000000001 0000000000000002");
    save_meta_variant("rng_missing", "rng", NULL);
    save_meta_variant("format_other", "format", "seqgrad-checkpoint-2");
    save_meta_variant("format_missing", "format", NULL);
    save_meta_variant("optimizer_sgd", "optimizer", "sgd");
    save_meta_variant("optimizer_none", "optimizer", "none");
    save_meta_variant("optimizer_missing", "optimizer", NULL);

    /* Non-finite values and a negative second moment (issue 20 item 8). */
    sg_tensor *k = sg_params_find(&g_params, "lstm.kernel");
    float *kd = sg_data(k), keep = kd[0];
    kd[0] = NAN;
    save_checkpoint("param_nan");
    kd[0] = INFINITY;
    save_checkpoint("param_inf");
    kd[0] = keep;
    sg_tensor *ea = sg_params_find(&g_state, "optim.dense.bias.exp_avg");
    sg_tensor *eas = sg_params_find(&g_state, "optim.lstm.bias.exp_avg_sq");
    if (!ea || !eas)
        setup_failed("seeds", "no Adam state tensors under the expected names");
    float *ead = sg_data(ea), *easd = sg_data(eas), keep_ea = ead[0], keep_eas = easd[0];
    ead[0] = -INFINITY;
    save_checkpoint("state_inf");
    ead[0] = keep_ea;
    easd[0] = -1.0f;
    save_checkpoint("state_negative_second_moment");
    easd[0] = keep_eas;

    /* Byte-level damage to a valid file. */
    size_t n;
    unsigned char *v = read_bytes("valid_step3", &n);
    v[n - 1] ^= 0x01; /* the last tensor's last byte */
    write_bytes("flipped_last_byte", v, n);
    v[n - 1] ^= 0x01;
    v[n / 2 + 200 < n ? n / 2 + 200 : n - 2] ^= 0x80; /* a sign or exponent bit somewhere */
    write_bytes("flipped_data_bit", v, n);
    v[n / 2 + 200 < n ? n / 2 + 200 : n - 2] ^= 0x80;
    write_bytes("truncated_by_1", v, n - 1);
    write_bytes("truncated_half", v, n / 2);
    write_bytes("truncated_header", v, 40);
    free(v);

    /* Tensors that do not fit the model. */
    sg_tensor *f64 = sg_persistent_new(g_ctx, SG_F64, SG_SHAPE(1));
    sg_tensor *two = sg_persistent_new(g_ctx, SG_F32, SG_SHAPE(2));
    sg_tensor *scalar = sg_persistent_new(g_ctx, SG_F32, 0, NULL);
    if (!f64 || !two || !scalar)
        setup_failed("seeds", sg_ctx_error(g_ctx));
    char step_s[24], osteps_s[24];
    snprintf(step_s, sizeof step_s, "%" PRId64, g_step);
    snprintf(osteps_s, sizeof osteps_s, "%" PRId64, g_opt->steps);
    const char *meta[] = {"format", "seqgrad-checkpoint-1", "optimizer", "adam", "optimizer_steps",
                          osteps_s, "step", step_s, "rng",
                          "0123456789abcdef 0000000000000001 0000000000000000 fedcba9876543210 "
                          "0000000000000000 0",
                          NULL};
    save_variant("dtype_f64", meta, NULL, "dense.bias", f64, NULL);
    save_variant("shape_mismatch", meta, NULL, "dense.bias", two, NULL);
    save_variant("shape_scalar", meta, NULL, "dense.bias", scalar, NULL);
    save_variant("tensor_missing", meta, "dense.bias", NULL, NULL, NULL);
    save_variant("tensor_state_missing", meta, "optim.lstm.kernel.exp_avg_sq", NULL, NULL, NULL);
    save_variant("tensor_extra", meta, NULL, NULL, NULL, "lstm.extra");
    save_variant("tensor_extra_optim", meta, NULL, NULL, NULL, "optim.lstm.kernel.extra");
    sg_tensor_free(f64);
    sg_tensor_free(two);
    sg_tensor_free(scalar);

    /* Shapes whose element and byte counts overflow int64 (issue 20 item 7), under a name
     * the model has so that the loader gets as far as it can with them. */
    const char *m = "\"__metadata__\": {\"format\": \"seqgrad-checkpoint-1\", \"optimizer\": "
                    "\"adam\", \"optimizer_steps\": \"2\", \"step\": \"2\"}";
    char h[1024];
    snprintf(h, sizeof h, "{%s, \"dense.bias\": {\"dtype\": \"F32\", \"shape\": [0, "
             "1099511627776, 1099511627776], \"data_offsets\": [0, 0]}}", m);
    write_raw("shape_0_2p40_2p40", h, NULL, 0);
    snprintf(h, sizeof h, "{%s, \"dense.bias\": {\"dtype\": \"F32\", \"shape\": [1099511627776, "
             "1099511627776], \"data_offsets\": [0, 0]}}", m);
    write_raw("shape_2p40_2p40", h, NULL, 0);
    snprintf(h, sizeof h, "{%s, \"dense.bias\": {\"dtype\": \"F64\", \"shape\": "
             "[2305843009213693952], \"data_offsets\": [0, 8]}}", m);
    write_raw("shape_bytes_2p64", h, "\0\0\0\0\0\0\0\0", 8);
    snprintf(h, sizeof h, "{%s, \"dense.bias\": {\"dtype\": \"F32\", \"shape\": [1], "
             "\"data_offsets\": [9223372036854775804, 9223372036854775808]}}", m);
    write_raw("offsets_huge", h, "\0\0\0\0", 4);
    snprintf(h, sizeof h, "{%s, \"dense.bias\": {\"dtype\": \"F32\", \"shape\": [1], "
             "\"data_offsets\": [4294967296, 4294967300]}}", m);
    write_raw("offsets_2p32", h, "\0\0\0\0", 4);
    snprintf(h, sizeof h, "{%s, \"dense.bias\": {\"dtype\": \"I64\", \"shape\": [1], "
             "\"data_offsets\": [0, 8]}}", m);
    write_raw("dtype_i64", h, "\0\0\0\0\0\0\0\0", 8);
    snprintf(h, sizeof h, "{%s, \"dense.bias\": {\"dtype\": \"I32\", \"shape\": [1], "
             "\"data_offsets\": [0, 4]}}", m);
    write_raw("dtype_i32", h, "\0\0\0\0", 4);
}

/* ---- libFuzzer entry points ---------------------------------------------------------- */

int LLVMFuzzerInitialize(int *argc, char ***argv) {
    const char *seeds = NULL;
    for (int i = 1; i < *argc; i++)
        if (has_prefix((*argv)[i], "-write_seeds="))
            seeds = (*argv)[i] + strlen("-write_seeds=");
    const char *strict = getenv("SG_FUZZ_STRICT");
    g_strict = strict && *strict && strcmp(strict, "0");
    const char *verbose = getenv("SG_FUZZ_VERBOSE");
    g_verbose = verbose && *verbose && strcmp(verbose, "0");
    build_model();
    if (seeds) {
        write_seeds(seeds);
        fprintf(stderr, "fuzz_checkpoint: wrote seeds to %s\n", seeds);
        exit(0);
    }
    train_step();
    train_step();
    snap_alloc(&g_base);
    snap_alloc(&g_now);
    snap_take(&g_base);
    open_file();
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    snap_restore(&g_base);
    sg_ctx_clear_error(g_ctx);
    sg_store_clear_error(g_store);
    write_input(data, size);

    int rc = sg_checkpoint_load(g_ctx, g_path, &g_params, g_opt, &g_step, &g_rng);
    const char *err = sg_ctx_error(g_ctx), *serr = sg_store_error(g_store);
    if (g_verbose)
        fprintf(stderr, "fuzz_checkpoint: %zu bytes: %s\n", size, rc ? (err ? err : "-1") : "loaded");
    if (rc != 0 && rc != -1)
        violated("sg_checkpoint_load returned %d", rc);
    if (serr)
        violated("the store received an error (rc %d): %s", rc, serr);
    if (rc) {
        if (!err)
            violated("failed load (-1) recorded no error");
        check_message(err);
        check_unchanged(err);
    } else {
        if (err)
            violated("successful load (0) recorded an error: %s", err);
        check_loaded();
    }
    sg_ctx_clear_error(g_ctx);
    return 0;
}
