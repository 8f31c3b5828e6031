/* Training checkpoints: a parameter list, an optimizer's state, the step and the
 * generator, in one safetensors file.
 *
 * Tensors are stored under their list names ("lstm.kernel") and the optimizer's stable
 * state names ("optim.lstm.kernel.momentum_buffer"); the rest is string metadata:
 *     format           "seqgrad-checkpoint-1"
 *     step             decimal, 0 .. 2^53
 *     optimizer        sg_optim_kind(opt) ("sgd", "adam", "adamw") or "none"
 *     optimizer_steps  decimal, 0 .. step (only with an optimizer)
 *     rng              "s0 s1 s2 s3 spare has_spare": 16 hex digits per 64-bit word, the
 *                      spare normal as its IEEE bits, has_spare 0 or 1 (only with an rng)
 *     crc32            the CRC-32 of every tensor's bytes, 8 hex digits each, separated by
 *                      spaces, in the file's (sorted) tensor order; verified on load when
 *                      present (files written before it existed load without it)
 * Loading validates everything (every metadata value, in range and against the others;
 * the checksums; names, shapes and dtypes; finite values) against the file's copies of
 * the tensors before it copies anything into the live ones.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "io_internal.h"

#define CKPT_FORMAT "seqgrad-checkpoint-1"
#define OPT_PREFIX "optim."
#define CRC_KEY "crc32"
/* Largest step / optimizer step count: exact as a double (Adam's bias correction uses it
 * as one), and far from int64 overflow as training counts on. */
#define CKPT_MAX_COUNT (INT64_C(1) << 53)

/* ---- metadata values ----------------------------------------------------------------- */

/* A counter: a strict decimal (digits only) in [0, CKPT_MAX_COUNT]. NULL, or why not, to
 * follow "metadata 'step' ". */
static const char *parse_count(const char *s, int64_t *out) {
    bool neg = *s == '-';
    const char *p = s + neg;
    if (!*p)
        return "is not a decimal integer";
    uint64_t v = 0;
    bool over = false;
    for (; *p; p++) {
        if (*p < '0' || *p > '9')
            return "is not a decimal integer";
        over = over || __builtin_mul_overflow(v, 10u, &v) ||
               __builtin_add_overflow(v, (unsigned)(*p - '0'), &v);
    }
    if (neg)
        return "is negative";
    if (over || v > (uint64_t)INT64_MAX)
        return "overflows int64";
    if (v > (uint64_t)CKPT_MAX_COUNT)
        return "is larger than 2^53";
    *out = (int64_t)v;
    return NULL;
}

/* Exactly n hex digits; advances *s past them. */
static bool parse_hex(const char **s, int n, uint64_t *out) {
    uint64_t v = 0;
    for (int i = 0; i < n; i++) {
        char c = (*s)[i];
        unsigned d = c >= '0' && c <= '9'   ? (unsigned)(c - '0')
                     : c >= 'a' && c <= 'f' ? (unsigned)(c - 'a' + 10)
                     : c >= 'A' && c <= 'F' ? (unsigned)(c - 'A' + 10)
                                            : 16u;
        if (d == 16)
            return false;
        v = v << 4 | d;
    }
    *s += n;
    *out = v;
    return true;
}

static void rng_format(const sg_rng *r, char *buf, size_t n) {
    uint64_t spare;
    memcpy(&spare, &r->spare, sizeof spare); /* the bits: exactly restorable */
    snprintf(buf, n, "%016llx %016llx %016llx %016llx %016llx %d", (unsigned long long)r->s[0],
             (unsigned long long)r->s[1], (unsigned long long)r->s[2], (unsigned long long)r->s[3],
             (unsigned long long)spare, r->has_spare ? 1 : 0);
}

/* A state the generator can continue from: xoshiro256** never leaves the all-zero state
 * (every output would be 0, and sg_rng_normal would wait forever for a nonzero one), and a
 * pending spare normal is a finite number. NULL, or why not. */
static const char *rng_check(const sg_rng *r) {
    if (sg_rng_state_valid(r))
        return NULL;
    return r->has_spare && !isfinite(r->spare) ? "the pending spare normal is not finite"
                                               : "generator state is all zero";
}

static bool rng_parse(const char *s, sg_rng *r) {
    uint64_t w[5];
    for (int i = 0; i < 5; i++) {
        if (!parse_hex(&s, 16, &w[i]) || *s++ != ' ')
            return false;
    }
    if ((s[0] != '0' && s[0] != '1') || s[1])
        return false;
    for (int i = 0; i < 4; i++)
        r->s[i] = w[i];
    memcpy(&r->spare, &w[4], sizeof r->spare);
    r->has_spare = s[0] == '1';
    return true;
}

static bool known_kind(const char *k) {
    return !strcmp(k, "none") || !strcmp(k, "sgd") || !strcmp(k, "adam") || !strcmp(k, "adamw");
}

/* ---- save ---------------------------------------------------------------------------- */

/* The metadata keys a checkpoint writes itself: a caller's own keys may not take them. */
static const char *const reserved_keys[] = {"format",          "step", "optimizer",
                                            "optimizer_steps", "rng",  CRC_KEY};

int sg_checkpoint_save(sg_ctx *ctx, const char *path, const sg_param_list *params,
                       const sg_optim *opt, int64_t step, const sg_rng *rng) {
    return sg_checkpoint_save_ex(ctx, path, params, opt, step, rng, NULL);
}

int sg_checkpoint_save_ex(sg_ctx *ctx, const char *path, const sg_param_list *params,
                          const sg_optim *opt, int64_t step, const sg_rng *rng,
                          const char *const *user_meta) {
    static const char fn[] = "sg_checkpoint_save";
    if (!ctx)
        return -1;
    if (!sg__io_path_ok(ctx, fn, path))
        return -1;
    if (!params) {
        sg__io_error(ctx, fn, path, "NULL parameter list");
        return -1;
    }
    /* Write nothing that sg_checkpoint_load would refuse. */
    if (step < 0 || step > CKPT_MAX_COUNT) {
        sg__io_error(ctx, fn, path, "step %lld is %s", (long long)step,
                     step < 0 ? "negative" : "larger than 2^53");
        return -1;
    }
    if (opt && sg_optim_steps(opt) > step) {
        sg__io_error(ctx, fn, path,
                     "the optimizer has taken %lld steps, more than step %lld (a step counts "
                     "training steps)",
                     (long long)sg_optim_steps(opt), (long long)step);
        return -1;
    }
    const char *why = rng ? rng_check(rng) : NULL;
    if (why) {
        sg__io_error(ctx, fn, path, "rng: %s", why);
        return -1;
    }
    int nuser = 0;
    for (; user_meta && user_meta[nuser]; nuser += 2) {
        if (!user_meta[nuser + 1]) {
            sg__io_error(ctx, fn, path, "metadata key %s has no value", SG_IO_QN(user_meta[nuser]));
            return -1;
        }
        for (size_t r = 0; r < sizeof reserved_keys / sizeof *reserved_keys; r++)
            if (!strcmp(user_meta[nuser], reserved_keys[r])) {
                sg__io_error(ctx, fn, path, "metadata key %s is the checkpoint's own",
                             SG_IO_QN(user_meta[nuser]));
                return -1;
            }
    }
    sg_param_list state = {.ctx = ctx}, all = {0};
    const char **meta = NULL;
    int rc = -1;
    bool clean = !sg_ctx_error(ctx);
    if (opt && sg_optim_state(opt, &state) != 0) {
        sg__io_rewrap(ctx, clean, fn, path, "cannot list the optimizer state");
        goto out;
    }
    /* One list of everything; sg__st_save rejects names that collide. */
    all.n = all.cap = params->n + state.n;
    all.items = sg_calloc((size_t)all.n + 1, sizeof *all.items);
    if (!all.items) {
        sg__io_error(ctx, fn, path, "out of memory");
        goto out;
    }
    if (params->n)
        memcpy(all.items, params->items, (size_t)params->n * sizeof *all.items);
    if (state.n)
        memcpy(all.items + params->n, state.items, (size_t)state.n * sizeof *all.items);

    char step_s[24], osteps_s[24], rng_s[128];
    snprintf(step_s, sizeof step_s, "%lld", (long long)step);
    meta = sg_calloc((size_t)nuser + 13, sizeof *meta);
    if (!meta) {
        sg__io_error(ctx, fn, path, "out of memory");
        goto out;
    }
    int k = 0;
    meta[k++] = "format";
    meta[k++] = CKPT_FORMAT;
    meta[k++] = "step";
    meta[k++] = step_s;
    meta[k++] = "optimizer";
    meta[k++] = opt ? sg_optim_kind(opt) : "none";
    if (opt) {
        snprintf(osteps_s, sizeof osteps_s, "%lld", (long long)sg_optim_steps(opt));
        meta[k++] = "optimizer_steps";
        meta[k++] = osteps_s;
    }
    if (rng) {
        rng_format(rng, rng_s, sizeof rng_s);
        meta[k++] = "rng";
        meta[k++] = rng_s;
    }
    for (int i = 0; i < nuser; i++)
        meta[k++] = user_meta[i];
    meta[k] = NULL;
    rc = sg__st_save(ctx, fn, path, &all, meta, CRC_KEY);
out:
    sg_free(meta);
    sg_free(all.items);
    sg_params_clear(&state);
    return rc;
}

/* ---- load ---------------------------------------------------------------------------- */

static int cmp_entry_ptr(const void *a, const void *b) {
    return strcmp((*(const sg_param_entry *const *)a)->name,
                  (*(const sg_param_entry *const *)b)->name);
}

/* Is `name` among the sorted expected entries? */
static bool expected_has(const sg_param_entry *const *exp, int n, const char *name) {
    int lo = 0, hi = n - 1;
    while (lo <= hi) {
        int mid = lo + (hi - lo) / 2, c = strcmp(exp[mid]->name, name);
        if (!c)
            return true;
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid - 1;
    }
    return false;
}

/* The "crc32" metadata `s` against every tensor of f. 0, or -1 with an error. */
static int verify_crcs(sg_ctx *ctx, const char *fn, const char *path, const sg_st_file *f,
                       const char *s) {
    const int n = sg_st_count(f);
    const char *p = s;
    bool ok = true;
    for (int i = 0; ok && i < n; i++) {
        uint64_t v;
        ok = (!i || *p++ == ' ') && parse_hex(&p, 8, &v);
    }
    if (!ok || *p) {
        sg__io_error(ctx, fn, path,
                     "metadata '" CRC_KEY "' is not %d CRC-32 values (8 hex digits each, "
                     "separated by spaces): %s",
                     n, SG_IO_QN(s));
        return -1;
    }
    p = s;
    for (int i = 0; i < n; i++) {
        uint64_t want = 0;
        p += i > 0;
        parse_hex(&p, 8, &want);
        uint32_t got;
        if (sg__io_tensor_crc32(ctx, fn, path, sg_st_name(f, i), sg_st_tensor(f, i), &got) != 0)
            return -1;
        if (got != (uint32_t)want) {
            sg__io_error(ctx, fn, path,
                         "tensor %s: data checksum mismatch (crc32 %08x in the file, %08x of "
                         "the data)",
                         SG_IO_QN(sg_st_name(f, i)), (unsigned)want, (unsigned)got);
            return -1;
        }
    }
    return 0;
}

/* The first element of t (contiguous, as loaded) that is NaN or infinite, or, with
 * second_moment, negative: its index and value, or -1. */
static int64_t first_bad(const sg_tensor *t, bool second_moment, double *val) {
    if (!sg_dtype_is_float(t->dtype))
        return -1; /* integers are always finite and never second moments */
    const int64_t n = sg_numel(t);
    const float *x32 = t->dtype == SG_F32 ? sg_data(t) : NULL;
    const double *x64 = t->dtype == SG_F64 ? sg_data(t) : NULL;
    for (int64_t i = 0; i < n; i++) {
        double v = x32 ? (double)x32[i] : x64[i];
        if (!isfinite(v) || (second_moment && v < 0)) {
            *val = v;
            return i;
        }
    }
    return -1;
}

static bool ends_with(const char *s, const char *suffix) {
    size_t a = strlen(s), b = strlen(suffix);
    return a >= b && !strcmp(s + a - b, suffix);
}

/* Is f a seqgrad checkpoint? 0, or -1 with an error. */
static int check_format(sg_ctx *ctx, const char *fn, const char *path, const sg_st_file *f) {
    const char *format = sg_st_meta(f, "format");
    if (format && !strcmp(format, CKPT_FORMAT))
        return 0;
    if (format)
        sg__io_error(ctx, fn, path, "not a seqgrad checkpoint (format %s, expected '%s')",
                     SG_IO_QN(format), CKPT_FORMAT);
    else
        sg__io_error(ctx, fn, path, "not a seqgrad checkpoint (no 'format' metadata)");
    return -1;
}

/* The file at path, or (buf non-NULL) the len bytes at buf that path names. */
static sg_st_file *meta(sg_ctx *ctx, const char *fn, const char *path, const void *buf,
                        size_t len) {
    if (!ctx)
        return NULL;
    sg_st_file *f = sg__st_open(ctx, fn, path, buf, len);
    if (f && check_format(ctx, fn, path, f)) {
        sg_st_free(f);
        return NULL;
    }
    return f;
}

sg_st_file *sg_checkpoint_meta(sg_ctx *ctx, const char *path) {
    return meta(ctx, "sg_checkpoint_meta", path, NULL, 0);
}

sg_st_file *sg_checkpoint_meta_mem(sg_ctx *ctx, const void *buf, size_t len, const char *name) {
    if (ctx && !buf)
        return sg_error(ctx, "sg_checkpoint_meta_mem: NULL buffer");
    return meta(ctx, "sg_checkpoint_meta", name ? name : "(memory)", buf, len);
}

static int load(sg_ctx *ctx, const char *path, const void *buf, size_t len, sg_param_list *params,
                sg_optim *opt, int64_t *step, sg_rng *rng);

int sg_checkpoint_load(sg_ctx *ctx, const char *path, sg_param_list *params, sg_optim *opt,
                       int64_t *step, sg_rng *rng) {
    return load(ctx, path, NULL, 0, params, opt, step, rng);
}

int sg_checkpoint_load_mem(sg_ctx *ctx, const void *buf, size_t len, const char *name,
                           sg_param_list *params, sg_optim *opt, int64_t *step, sg_rng *rng) {
    if (ctx && !buf) {
        sg_error(ctx, "sg_checkpoint_load_mem: NULL buffer");
        return -1;
    }
    return load(ctx, name ? name : "(memory)", buf, len, params, opt, step, rng);
}

/* The file at path, or (buf non-NULL) the len bytes at buf that path names. */
static int load(sg_ctx *ctx, const char *path, const void *buf, size_t len, sg_param_list *params,
                sg_optim *opt, int64_t *step, sg_rng *rng) {
    static const char fn[] = "sg_checkpoint_load";
    if (!ctx)
        return -1;
    if (!params) {
        sg__io_error(ctx, fn, path ? path : "(null)", "NULL parameter list");
        return -1;
    }
    sg_st_file *f = sg__st_open(ctx, fn, path, buf, len);
    if (!f)
        return -1;
    sg_param_list state = {.ctx = ctx};
    const sg_param_entry **exp = NULL;
    int rc = -1, nexp = 0;
    int64_t step_v = 0, osteps = 0;
    sg_rng rng_v = {0};
    const char *why;

    /* What kind of file, and what it was saved with: every metadata value is checked,
     * whether or not the caller asked for it. */
    if (check_format(ctx, fn, path, f))
        goto out;
    const char *okind = sg_st_meta(f, "optimizer");
    if (!okind) {
        sg__io_error(ctx, fn, path, "metadata 'optimizer' is missing");
        goto out;
    }
    if (!known_kind(okind)) {
        sg__io_error(ctx, fn, path, "metadata 'optimizer' is %s, not one of none, sgd, adam, adamw",
                     SG_IO_QN(okind));
        goto out;
    }
    const bool file_has_opt = strcmp(okind, "none") != 0;
    const char *s_step = sg_st_meta(f, "step"), *s_osteps = sg_st_meta(f, "optimizer_steps"),
               *s_rng = sg_st_meta(f, "rng"), *s_crc = sg_st_meta(f, CRC_KEY);
    if (s_step && (why = parse_count(s_step, &step_v))) {
        sg__io_error(ctx, fn, path, "metadata 'step' %s: %s", why, SG_IO_QN(s_step));
        goto out;
    }
    if (!s_step && step) {
        sg__io_error(ctx, fn, path, "metadata 'step' is missing");
        goto out;
    }
    if (file_has_opt && !s_osteps) {
        sg__io_error(ctx, fn, path, "metadata 'optimizer_steps' is missing");
        goto out;
    }
    if (!file_has_opt && s_osteps) {
        sg__io_error(ctx, fn, path, "metadata 'optimizer_steps' without an optimizer");
        goto out;
    }
    if (s_osteps && (why = parse_count(s_osteps, &osteps))) {
        sg__io_error(ctx, fn, path, "metadata 'optimizer_steps' %s: %s", why, SG_IO_QN(s_osteps));
        goto out;
    }
    if (s_step && s_osteps && osteps > step_v) {
        sg__io_error(ctx, fn, path, "metadata 'optimizer_steps' %lld is more than 'step' %lld",
                     (long long)osteps, (long long)step_v);
        goto out;
    }
    if (s_rng && !rng_parse(s_rng, &rng_v)) {
        sg__io_error(ctx, fn, path, "metadata 'rng' is not 5 words of 16 hex digits and 0 or 1: %s",
                     SG_IO_QN(s_rng));
        goto out;
    }
    if (s_rng && (why = rng_check(&rng_v))) {
        sg__io_error(ctx, fn, path, "metadata 'rng': %s", why);
        goto out;
    }
    if (rng && !s_rng) {
        sg__io_error(ctx, fn, path, "no rng state in the file (saved without one)");
        goto out;
    }
    if (s_crc && verify_crcs(ctx, fn, path, f, s_crc) != 0)
        goto out;
    if (opt) {
        if (!file_has_opt) {
            sg__io_error(ctx, fn, path, "no optimizer state in the file (saved without one)");
            goto out;
        }
        if (strcmp(okind, sg_optim_kind(opt))) {
            sg__io_error(ctx, fn, path, "optimizer is %s in the file, %s given", okind,
                         sg_optim_kind(opt));
            goto out;
        }
        bool clean = !sg_ctx_error(ctx);
        if (sg_optim_state(opt, &state) != 0) {
            sg__io_rewrap(ctx, clean, fn, path, "cannot list the optimizer state");
            goto out;
        }
    }
    const bool adam = opt && strcmp(okind, "sgd") != 0;

    /* Every expected tensor: present, same shape, same dtype, finite values (and no
     * negative second moment): checked on the file's copy. */
    nexp = params->n + state.n;
    exp = sg_calloc((size_t)nexp + 1, sizeof *exp);
    if (!exp) {
        sg__io_error(ctx, fn, path, "out of memory");
        goto out;
    }
    for (int i = 0; i < nexp; i++)
        exp[i] = i < params->n ? &params->items[i] : &state.items[i - params->n];
    for (int i = 0; i < nexp; i++) {
        const sg_param_entry *e = exp[i];
        const char *qn = SG_IO_QN(e->name);
        char where[1024];
        snprintf(where, sizeof where, "%s: %s: tensor %s", fn, path, qn);
        if (!e->tensor) {
            sg__io_error(ctx, fn, path, "tensor %s is NULL in the parameter list", qn);
            goto out;
        }
        if (!sg_check(ctx, e->tensor, where))
            goto out;
        if (!sg_st_has(f, e->name)) {
            sg__io_error(ctx, fn, path, "missing tensor %s", qn);
            goto out;
        }
        const sg_tensor *src = sg_st_get(f, e->name), *dst = e->tensor;
        bool same = src->ndim == dst->ndim;
        for (int d = 0; same && d < dst->ndim; d++)
            same = src->shape[d] == dst->shape[d];
        if (!same) {
            char a[192], b[192];
            sg__io_error(ctx, fn, path, "tensor %s has shape %s, expected %s", qn,
                         sg_shape_str(src->ndim, src->shape, a, sizeof a),
                         sg_shape_str(dst->ndim, dst->shape, b, sizeof b));
            goto out;
        }
        if (src->dtype != dst->dtype) {
            sg__io_error(ctx, fn, path, "tensor %s has dtype %s, expected %s", qn,
                         sg_dtype_name(src->dtype), sg_dtype_name(dst->dtype));
            goto out;
        }
        const bool moment2 =
            adam && i >= params->n &&
            (ends_with(e->name, ".exp_avg_sq") || ends_with(e->name, ".max_exp_avg_sq"));
        double v;
        int64_t at = first_bad(src, moment2, &v);
        if (at >= 0) {
            if (isfinite(v))
                sg__io_error(ctx, fn, path,
                             "tensor %s has a negative value %g at index %lld (a second moment "
                             "is never negative)",
                             qn, v, (long long)at);
            else
                sg__io_error(ctx, fn, path, "tensor %s has %s at index %lld", qn,
                             isnan(v) ? "NaN"
                             : v > 0  ? "Inf"
                                      : "-Inf",
                             (long long)at);
            goto out;
        }
    }
    qsort(exp, (size_t)nexp, sizeof *exp, cmp_entry_ptr);
    for (int i = 1; i < nexp; i++)
        if (!strcmp(exp[i - 1]->name, exp[i]->name)) {
            sg__io_error(ctx, fn, path, "duplicate name %s in the parameter list",
                         SG_IO_QN(exp[i]->name));
            goto out;
        }
    /* Nothing else: an extra tensor means the file is for another model. The one
     * exception is the state of the optimizer the file was saved with when the caller
     * passes no optimizer (loading a training checkpoint for inference). */
    for (int i = 0; i < sg_st_count(f); i++) {
        const char *name = sg_st_name(f, i);
        if (expected_has(exp, nexp, name))
            continue;
        if (!opt && file_has_opt && !strncmp(name, OPT_PREFIX, strlen(OPT_PREFIX)))
            continue;
        sg__io_error(ctx, fn, path, "unexpected tensor %s", SG_IO_QN(name));
        goto out;
    }

    /* All checked: copy. */
    for (int i = 0; i < nexp; i++)
        if (sg_copy(exp[i]->tensor, sg_st_get(f, exp[i]->name)) != 0)
            goto out; /* cannot happen after the checks above; sg_copy says why */
    if (opt)
        sg_optim_set_steps(opt, osteps);
    if (step)
        *step = step_v;
    if (rng)
        *rng = rng_v;
    rc = 0;
out:
    sg_free(exp);
    sg_params_clear(&state);
    sg_st_free(f);
    return rc;
}
