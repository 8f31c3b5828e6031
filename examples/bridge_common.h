/* Shared by the cross-framework bridges lstm_run and rnn_run: option matching, one-line
 * error messages, checks of the tensors read from safetensors files (names, shapes, finite
 * values, paths) and the opening of the two input files.
 *
 * Header-only (each program is one translation unit). Before including it, a program
 * defines BRIDGE_PROG, its name as a string literal (every message starts "<name>: "), and
 * `static const char usage_text[]`, its usage, printed after an option error. */
#ifndef SG_EXAMPLES_BRIDGE_COMMON_H
#define SG_EXAMPLES_BRIDGE_COMMON_H

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "seqgrad.h"

/* An option error: "<prog>: <message>" and the usage on stderr; the exit status 2. */
static int usage_error(const char *fmt, const char *arg) {
    fprintf(stderr, BRIDGE_PROG ": ");
    fprintf(stderr, fmt, arg);
    fprintf(stderr, "\n%s", usage_text);
    return 2;
}

/* Does argv word a name option `name` ("--name value" or "--name=value"; a prefix of a
 * name is no match)? Then *val is the value after '=', or NULL. */
static bool is_option(const char *a, const char *name, const char **val) {
    size_t len = strlen(name);
    if (strncmp(a, name, len) || (a[len] != 0 && a[len] != '='))
        return false;
    *val = a[len] == '=' ? a + len + 1 : NULL;
    return true;
}

/* The three file options. */
typedef struct {
    const char *weights, *input, *output;
} bridge_files;

/* Parse argv: --weights, --input and --output into *files (left as they are when absent: see
 * need_files), and the program's own options own_names[0 .. n_own - 1] handed
 * to own(k, value, data), which returns -1 or 2 (after usage_error). Returns -1 to go on, 0
 * after printing the usage to stdout for --help or -h, or 2 after usage_error (unknown
 * option, missing value, or own's 2). */
static int parse_options(int argc, char **argv, const char *const *own_names, int n_own,
                         bridge_files *files, int (*own)(int k, const char *val, void *data),
                         void *data) {
    static const char *const file_opts[3] = {"--weights", "--input", "--output"};
    const char **paths[3] = {&files->weights, &files->input, &files->output};
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *val = NULL;
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            fputs(usage_text, stdout);
            return 0;
        }
        int which = -1;
        for (int k = 0; k < 3 + n_own && which < 0; k++)
            if (is_option(a, k < 3 ? file_opts[k] : own_names[k - 3], &val))
                which = k;
        if (which < 0)
            return usage_error("unknown option '%s'", a);
        if (!val) {
            if (i + 1 >= argc)
                return usage_error("option %s needs a value", a);
            val = argv[++i];
        }
        if (which < 3)
            *paths[which] = val;
        else if (own(which - 3, val, data) >= 0)
            return 2;
    }
    return -1;
}

/* --impl's value into *impl: -1, or 2 after usage_error. */
static int parse_impl(const char *val, sg_lstm_impl *impl) {
    if (!strcmp(val, "fused"))
        *impl = SG_LSTM_FUSED;
    else if (!strcmp(val, "gates"))
        *impl = SG_LSTM_GATES;
    else
        return usage_error("--impl must be fused or gates, not '%s'", val);
    return -1;
}

/* The file options are required (--output only when need_output): -1, or 2 after
 * usage_error naming the first one missing. */
static int need_files(const bridge_files *f, bool need_output) {
    if (!f->weights)
        return usage_error("%s", "missing --weights");
    if (!f->input)
        return usage_error("%s", "missing --input");
    if (!f->output && need_output)
        return usage_error("%s", "missing --output");
    return -1;
}

/* ---- data checks: each failure prints one line and makes the exit status 1 ---------- */

static int fail(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static int fail(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, BRIDGE_PROG ": ");
    vfprintf(stderr, fmt, ap);
    fprintf(stderr, "\n");
    va_end(ap);
    return 1;
}

/* The context's error as a failure (exit status 1). */
static int report(sg_ctx *ctx) {
    return fail("%s", sg_ctx_error(ctx) ? sg_ctx_error(ctx) : "unknown error");
}

/* Every tensor in f must be one of the NULL-terminated `allowed` names (a misspelt
 * optional tensor would otherwise be silently ignored). */
static int only_names(const char *path, const sg_st_file *f, const char *const *allowed) {
    for (int i = 0; i < sg_st_count(f); i++) {
        const char *n = sg_st_name(f, i);
        bool ok = false;
        for (int k = 0; allowed[k] && !ok; k++)
            ok = !strcmp(n, allowed[k]);
        if (!ok)
            return fail("%s: unexpected tensor %s", path, n);
    }
    return 0;
}

/* t (if present) must have ndim dims of the given sizes. */
static int want_shape(const char *path, const char *name, const sg_tensor *t, int ndim,
                      const int64_t *shape) {
    bool same = t->ndim == ndim;
    for (int d = 0; same && d < ndim; d++)
        same = t->shape[d] == shape[d];
    if (same)
        return 0;
    char a[128], b[128];
    return fail("%s: %s has shape %s, expected %s", path, name,
                sg_shape_str(t->ndim, t->shape, a, sizeof a),
                sg_shape_str(ndim, shape, b, sizeof b));
}

/* An input path (--weights, --input) must be a regular file: a device such as /dev/zero
 * would be read without end, a FIFO without a writer waits forever. A missing file is left
 * to the loader, whose message says so. The output path must be a regular file or nothing
 * yet: it is replaced by renaming a temporary file over it. */
static int check_path(const char *opt, const char *path) {
    struct stat st;
    if (!*path)
        return fail("%s: empty path", opt);
    if (stat(path, &st) == 0 && !S_ISREG(st.st_mode))
        return fail("%s %s: %s", opt, path,
                    S_ISDIR(st.st_mode) ? "is a directory" : "not a regular file");
    return 0;
}

/* A context and a parameter store: 0, or 1 after printing "out of memory" (nothing left
 * allocated). */
static int new_ctx_store(sg_ctx **ctx, sg_store **store) {
    *ctx = sg_ctx_new(0);
    *store = sg_store_new();
    if (*ctx && *store)
        return 0;
    fail("out of memory");
    sg_store_free(*store);
    sg_ctx_free(*ctx);
    return 1;
}

/* Check the paths (no --output: not checked), then load the weights and the input into *W and *IN.
 * 0, or 1 after printing the reason (*W / *IN NULL where not loaded). */
static int open_files(sg_ctx *ctx, const bridge_files *f, sg_st_file **W, sg_st_file **IN) {
    *W = *IN = NULL;
    if (check_path("--weights", f->weights) || check_path("--input", f->input) ||
        (f->output && check_path("--output", f->output)))
        return 1;
    *W = sg_safetensors_load(ctx, f->weights);
    *IN = *W ? sg_safetensors_load(ctx, f->input) : NULL;
    return *W && *IN ? 0 : report(ctx);
}

/* IN's x: present, (B, T, I), float32 or float64 (the computation's dtype). NULL after
 * printing the reason. */
static const sg_tensor *get_x(const char *path, const sg_st_file *IN) {
    if (!sg_st_has(IN, "x")) {
        fail("%s: missing tensor x", path);
        return NULL;
    }
    const sg_tensor *x = sg_st_get(IN, "x");
    if (x->ndim != 3) {
        char a[128];
        fail("%s: x has shape %s, expected (B, T, I)", path,
             sg_shape_str(x->ndim, x->shape, a, sizeof a));
        return NULL;
    }
    if (x->dtype != SG_F32 && x->dtype != SG_F64) {
        fail("%s: x has dtype %s, expected float32 or float64", path, sg_dtype_name(x->dtype));
        return NULL;
    }
    return x;
}

/* Every value of t must be finite: NaN or Inf in a weight or an input would only give
 * NaN outputs. Names the first bad element by its flat (row-major) index. */
static int all_finite(const char *path, const char *name, const sg_tensor *t) {
    if (!t)
        return 0;
    int64_t n = sg_numel(t);
    for (int64_t i = 0; i < n; i++) {
        double v = sg_get_flat(t, i);
        if (isfinite(v))
            continue;
        const char *what = isnan(v) ? "NaN" : v > 0 ? "Inf" : "-Inf";
        return fail("%s: %s has %s at index %lld", path, name, what, (long long)i);
    }
    return 0;
}

#endif
