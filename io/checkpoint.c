/* Training checkpoints: a parameter list, an optimizer's state, the step and the
 * generator, in one safetensors file.
 *
 * Tensors are stored under their list names ("lstm.kernel") and the optimizer's stable
 * state names ("optim.lstm.kernel.momentum_buffer"); the rest is string metadata:
 *     format           "seqgrad-checkpoint-1"
 *     step             decimal int64
 *     optimizer        sg_optim_kind(opt) or "none"
 *     optimizer_steps  decimal (only with an optimizer)
 *     rng              "s0 s1 s2 s3 spare has_spare": 16 hex digits per 64-bit word, the
 *                      spare normal as its IEEE bits, has_spare 0 or 1 (only with an rng)
 * Loading validates everything against the live tensors before it copies anything.
 */
#include <stdlib.h>
#include <string.h>

#include "io_internal.h"

#define CKPT_FORMAT "seqgrad-checkpoint-1"
#define OPT_PREFIX "optim."

/* ---- metadata values ----------------------------------------------------------------- */

/* A strict decimal int64: optional '-', digits only, no overflow. */
static bool parse_i64(const char *s, int64_t *out) {
    if (!s)
        return false;
    bool neg = *s == '-';
    s += neg;
    if (!*s)
        return false;
    uint64_t v = 0, lim = neg ? (uint64_t)INT64_MAX + 1 : (uint64_t)INT64_MAX;
    for (; *s; s++) {
        if (*s < '0' || *s > '9')
            return false;
        unsigned d = (unsigned)(*s - '0');
        if (v > (lim - d) / 10)
            return false;
        v = v * 10 + d;
    }
    *out = neg ? (int64_t)(0 - v) : (int64_t)v;
    return true;
}

/* Exactly 16 hex digits; advances *s past them. */
static bool parse_hex16(const char **s, uint64_t *out) {
    uint64_t v = 0;
    for (int i = 0; i < 16; i++) {
        char c = (*s)[i];
        unsigned d = c >= '0' && c <= '9'   ? (unsigned)(c - '0')
                     : c >= 'a' && c <= 'f' ? (unsigned)(c - 'a' + 10)
                     : c >= 'A' && c <= 'F' ? (unsigned)(c - 'A' + 10)
                                            : 16u;
        if (d == 16)
            return false;
        v = v << 4 | d;
    }
    *s += 16;
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

static bool rng_parse(const char *s, sg_rng *r) {
    uint64_t w[5];
    for (int i = 0; i < 5; i++) {
        if (!parse_hex16(&s, &w[i]) || *s++ != ' ')
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

/* ---- save ---------------------------------------------------------------------------- */

int sg_checkpoint_save(sg_ctx *ctx, const char *path, const sg_param_list *params,
                       const sg_optim *opt, int64_t step, const sg_rng *rng) {
    static const char fn[] = "sg_checkpoint_save";
    if (!ctx)
        return -1;
    if (!params) {
        sg__io_error(ctx, fn, path ? path : "(null)", "NULL parameter list");
        return -1;
    }
    sg_param_list state = {0}, all = {0};
    int rc = -1;
    if (opt && sg_optim_state(opt, &state) != 0) {
        sg__io_error(ctx, fn, path, "cannot list the optimizer state");
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
    const char *meta[12];
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
    meta[k] = NULL;
    rc = sg__st_save(ctx, fn, path, &all, meta);
out:
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

int sg_checkpoint_load(sg_ctx *ctx, const char *path, sg_param_list *params, sg_optim *opt,
                       int64_t *step, sg_rng *rng) {
    static const char fn[] = "sg_checkpoint_load";
    if (!ctx)
        return -1;
    if (!params) {
        sg__io_error(ctx, fn, path ? path : "(null)", "NULL parameter list");
        return -1;
    }
    sg_st_file *f = sg__st_load(ctx, fn, path);
    if (!f)
        return -1;
    sg_param_list state = {0};
    const sg_param_entry **exp = NULL;
    int rc = -1, nexp = 0;
    int64_t step_v = 0, osteps = 0;
    sg_rng rng_v = {0};

    /* What kind of file, and what it was saved with. */
    const char *format = sg_st_meta(f, "format");
    if (!format || strcmp(format, CKPT_FORMAT)) {
        if (format)
            sg__io_error(ctx, fn, path, "not a seqgrad checkpoint (format '%s', expected '%s')",
                         format, CKPT_FORMAT);
        else
            sg__io_error(ctx, fn, path, "not a seqgrad checkpoint (no 'format' metadata)");
        goto out;
    }
    const char *okind = sg_st_meta(f, "optimizer");
    if (!okind) {
        sg__io_error(ctx, fn, path, "missing metadata 'optimizer'");
        goto out;
    }
    bool file_has_opt = strcmp(okind, "none") != 0;
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
        const char *s = sg_st_meta(f, "optimizer_steps");
        if (!parse_i64(s, &osteps) || osteps < 0) {
            sg__io_error(ctx, fn, path, "bad or missing metadata optimizer_steps '%s'", s ? s : "");
            goto out;
        }
        if (sg_optim_state(opt, &state) != 0) {
            sg__io_error(ctx, fn, path, "cannot list the optimizer state");
            goto out;
        }
    }
    if (step) {
        const char *s = sg_st_meta(f, "step");
        if (!parse_i64(s, &step_v)) {
            sg__io_error(ctx, fn, path, "bad or missing metadata step '%s'", s ? s : "");
            goto out;
        }
    }
    if (rng) {
        const char *s = sg_st_meta(f, "rng");
        if (!s) {
            sg__io_error(ctx, fn, path, "no rng state in the file (saved without one)");
            goto out;
        }
        if (!rng_parse(s, &rng_v)) {
            sg__io_error(ctx, fn, path, "bad rng state '%s'", s);
            goto out;
        }
    }

    /* Every expected tensor: present, same shape, same dtype. */
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
        char where[1024];
        snprintf(where, sizeof where, "%s: %s: %s", fn, path, e->name);
        if (!e->tensor) {
            sg__io_error(ctx, fn, path, "%s is NULL in the parameter list", e->name);
            goto out;
        }
        if (!sg_check(ctx, e->tensor, where))
            goto out;
        if (!sg_st_has(f, e->name)) {
            sg__io_error(ctx, fn, path, "missing tensor %s", e->name);
            goto out;
        }
        const sg_tensor *src = sg_st_get(f, e->name), *dst = e->tensor;
        bool same = src->ndim == dst->ndim;
        for (int d = 0; same && d < dst->ndim; d++)
            same = src->shape[d] == dst->shape[d];
        if (!same) {
            char a[128], b[128];
            sg__io_error(ctx, fn, path, "%s has shape %s, expected %s", e->name,
                         sg_shape_str(src->ndim, src->shape, a, sizeof a),
                         sg_shape_str(dst->ndim, dst->shape, b, sizeof b));
            goto out;
        }
        if (src->dtype != dst->dtype) {
            sg__io_error(ctx, fn, path, "%s has dtype %s, expected %s", e->name,
                         sg_dtype_name(src->dtype), sg_dtype_name(dst->dtype));
            goto out;
        }
    }
    qsort(exp, (size_t)nexp, sizeof *exp, cmp_entry_ptr);
    for (int i = 1; i < nexp; i++)
        if (!strcmp(exp[i - 1]->name, exp[i]->name)) {
            sg__io_error(ctx, fn, path, "duplicate name %s in the parameter list", exp[i]->name);
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
        sg__io_error(ctx, fn, path, "unexpected tensor %s", name);
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
