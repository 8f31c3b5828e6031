/* NumPy-style printing and numpy.isclose-style comparison.
 *
 * The value layout reproduces numpy.array2string's defaults (numpy/core/arrayprint.py,
 * FloatingFormat with precision=8, floatmode='maxprec', suppress=False, threshold=1000,
 * edgeitems=3, separator ' '):
 *  - every value is printed with the fewest digits that round-trip in its own dtype
 *    (float32 values as float32), at most 8 after the decimal point;
 *  - scientific notation for the whole array when a non-zero |value| is >= 1e8 or < 1e-4,
 *    or when max/min of the non-zero magnitudes exceeds 1000;
 *  - decimal points (positional) or mantissas and exponents (scientific) line up, so every
 *    cell has the same width; nan/inf/-inf are right-aligned in that width.
 * One difference: NumPy wraps rows longer than 75 characters; we keep one row per line,
 * which reads better for the wide matrices of recurrent layers.
 */
#define _GNU_SOURCE /* strnlen is POSIX, not C11 */
#include <float.h>
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"

#define EDGE 3         /* numpy edgeitems */
#define THRESHOLD 1000 /* numpy threshold: summarize above this many elements */
#define MAX_FRAC 8     /* numpy precision */

/* ---- growing string ------------------------------------------------------------------ */

typedef struct {
    char *p;
    size_t len, cap;
    bool oom;
} sbuf;

static void sb_putn(sbuf *b, const char *s, size_t n) {
    if (b->oom)
        return;
    if (b->len + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 256;
        while (cap < b->len + n + 1)
            cap *= 2;
        char *p = sg_realloc(b->p, cap);
        if (!p) {
            b->oom = true;
            return;
        }
        b->p = p;
        b->cap = cap;
    }
    memcpy(b->p + b->len, s, n);
    b->len += n;
    b->p[b->len] = 0;
}

static void sb_puts(sbuf *b, const char *s) { sb_putn(b, s, strlen(s)); }

static void sb_spaces(sbuf *b, int n) {
    static const char sp[] = "                                ";
    while (n > 0) {
        int k = n < (int)sizeof sp - 1 ? n : (int)sizeof sp - 1;
        sb_putn(b, sp, (size_t)k);
        n -= k;
    }
}

/* ---- digits of one value ------------------------------------------------------------- */

/* A finite value as sign, significant digits d[0] d[1] ... (no trailing zeros, "0" for
 * zero) and decimal exponent e: |v| = d[0].d[1]d[2]... * 10^e. */
typedef struct {
    bool neg;
    int nd;
    int e;
    char d[40];
} decimal;

/* Parse printf's "%.*e" output. Only digits, '-' and the exponent are read, so whatever
 * decimal point the C locale uses does not matter. */
static void parse_e(const char *s, decimal *x) {
    x->neg = *s == '-';
    x->nd = 0;
    for (; *s && *s != 'e' && *s != 'E'; s++)
        if (*s >= '0' && *s <= '9' && x->nd < (int)sizeof x->d - 1)
            x->d[x->nd++] = *s;
    x->e = *s ? atoi(s + 1) : 0;
    while (x->nd > 1 && x->d[x->nd - 1] == '0')
        x->nd--;
    x->d[x->nd] = 0;
}

/* The shortest decimal that reads back as the same value of the dtype (NumPy's Dragon4
 * "unique" mode). strtof/strtod round correctly, so the first precision that round-trips
 * is the shortest one. */
static void shortest(double v, bool f32, decimal *x) {
    char s[64];
    int maxp = f32 ? FLT_DECIMAL_DIG : DBL_DECIMAL_DIG;
    for (int p = 1; p <= maxp; p++) {
        snprintf(s, sizeof s, "%.*e", p - 1, v);
        if (f32 ? strtof(s, NULL) == (float)v : strtod(s, NULL) == v)
            break;
    }
    parse_e(s, x);
}

/* Positional text of a finite value: integer part with sign (ip) and fraction digits (fp,
 * possibly empty), at most MAX_FRAC of them. */
static void positional(double v, bool f32, char *ip, char *fp) {
    decimal x;
    shortest(v, f32, &x);
    int ni = 0, nf = 0;
    if (x.neg)
        ip[ni++] = '-';
    if (x.nd - 1 - x.e > MAX_FRAC) {
        /* Too many digits for the precision: NumPy rounds the exact binary value at the
         * last allowed place, which is what %.8f does. */
        char s[64];
        snprintf(s, sizeof s, "%.*f", MAX_FRAC, fabs(v));
        const char *c = s;
        for (; *c >= '0' && *c <= '9'; c++)
            ip[ni++] = *c;
        for (; *c; c++)
            if (*c >= '0' && *c <= '9')
                fp[nf++] = *c;
        while (nf > 0 && fp[nf - 1] == '0')
            nf--;
    } else if (x.e >= 0) {
        for (int i = 0; i <= x.e; i++)
            ip[ni++] = i < x.nd ? x.d[i] : '0';
        for (int i = x.e + 1; i < x.nd; i++)
            fp[nf++] = x.d[i];
    } else {
        ip[ni++] = '0';
        for (int i = 0; i < -x.e - 1; i++)
            fp[nf++] = '0';
        for (int i = 0; i < x.nd; i++)
            fp[nf++] = x.d[i];
    }
    ip[ni] = 0;
    fp[nf] = 0;
}

/* Scientific digits of a finite value, at most MAX_FRAC after the point. */
static void scientific(double v, bool f32, decimal *x) {
    shortest(v, f32, x);
    if (x->nd - 1 > MAX_FRAC) {
        char s[64];
        snprintf(s, sizeof s, "%.*e", MAX_FRAC, v);
        parse_e(s, x);
    }
}

static int exp_digits(int e) {
    int a = abs(e), n = 1;
    while (a >= 10) {
        a /= 10;
        n++;
    }
    return n < 2 ? 2 : n;
}

/* ---- the common format of the displayed values --------------------------------------- */

typedef struct {
    bool f32;
    int int_width; /* an integer tensor: every cell right-aligned in this many characters, as
                      NumPy's IntegerFormat; 0 for a float tensor */
    bool exp;      /* scientific notation */
    int pad_left;  /* characters before the decimal point */
    int pad_right; /* characters after it */
    int prec;      /* scientific: mantissa digits after the point */
    int exp_size;  /* scientific: exponent digits */
} numfmt;

/* A displayed value: double for float tensors, exact int64 for integer ones. */
typedef union {
    double d;
    int64_t i;
} cell;

static void choose_format(const cell *v, int64_t n, bool f32, numfmt *f) {
    memset(f, 0, sizeof *f);
    f->f32 = f32;
    double maxv = 0.0, minv = INFINITY;
    bool any_finite = false, any_nonfinite = false, neg_inf = false;
    for (int64_t i = 0; i < n; i++) {
        if (!isfinite(v[i].d)) {
            any_nonfinite = true;
            neg_inf |= isinf(v[i].d) && v[i].d < 0;
            continue;
        }
        any_finite = true;
        double a = fabs(v[i].d);
        if (a != 0.0) {
            maxv = fmax(maxv, a);
            minv = fmin(minv, a);
        }
    }
    if (maxv > 0.0)
        f->exp = maxv >= 1e8 || minv < 1e-4 || maxv / minv > 1000.0;
    if (any_finite) {
        for (int64_t i = 0; i < n; i++) {
            if (!isfinite(v[i].d))
                continue;
            if (f->exp) {
                decimal x;
                scientific(v[i].d, f32, &x);
                int il = 1 + x.neg;
                f->pad_left = il > f->pad_left ? il : f->pad_left;
                f->prec = x.nd - 1 > f->prec ? x.nd - 1 : f->prec;
                int ed = exp_digits(x.e);
                f->exp_size = ed > f->exp_size ? ed : f->exp_size;
            } else {
                char ip[64], fp[64];
                positional(v[i].d, f32, ip, fp);
                int il = (int)strlen(ip), fl = (int)strlen(fp);
                f->pad_left = il > f->pad_left ? il : f->pad_left;
                f->pad_right = fl > f->pad_right ? fl : f->pad_right;
            }
        }
        if (f->exp)
            f->pad_right = f->exp_size + 2 + f->prec;
    }
    if (any_nonfinite) {
        /* Widen so "nan" and "inf" (with the '-' if any is negative) fit the cell. */
        int offset = f->pad_right + 1;
        int inflen = 3 + neg_inf;
        if (3 - offset > f->pad_left)
            f->pad_left = 3 - offset;
        if (inflen - offset > f->pad_left)
            f->pad_left = inflen - offset;
    }
}

static void int_format(const cell *v, int64_t n, numfmt *f) {
    memset(f, 0, sizeof *f);
    char s[32];
    for (int64_t i = 0; i < n; i++) {
        int w = snprintf(s, sizeof s, "%lld", (long long)v[i].i);
        f->int_width = w > f->int_width ? w : f->int_width;
    }
}

static void put_cell(sbuf *b, cell c, const numfmt *f) {
    if (f->int_width) {
        char s[32];
        int w = snprintf(s, sizeof s, "%*lld", f->int_width, (long long)c.i);
        sb_putn(b, s, (size_t)w);
        return;
    }
    double v = c.d;
    int width = f->pad_left + f->pad_right + 1;
    if (!isfinite(v)) {
        const char *s = isnan(v) ? "nan" : v < 0 ? "-inf" : "inf";
        sb_spaces(b, width - (int)strlen(s));
        sb_puts(b, s);
        return;
    }
    if (f->exp) {
        decimal x;
        scientific(v, f->f32, &x);
        char s[96];
        int k = 0;
        for (int i = 1 + x.neg; i < f->pad_left; i++)
            s[k++] = ' ';
        if (x.neg)
            s[k++] = '-';
        s[k++] = x.d[0];
        s[k++] = '.';
        for (int i = 1; i <= f->prec; i++)
            s[k++] = i < x.nd ? x.d[i] : '0';
        k += snprintf(s + k, sizeof s - (size_t)k, "e%c%0*d", x.e < 0 ? '-' : '+', f->exp_size,
                      abs(x.e));
        sb_putn(b, s, (size_t)k);
        return;
    }
    char ip[64], fp[64];
    positional(v, f->f32, ip, fp);
    sb_spaces(b, f->pad_left - (int)strlen(ip));
    sb_puts(b, ip);
    sb_puts(b, ".");
    sb_puts(b, fp);
    sb_spaces(b, f->pad_right - (int)strlen(fp));
}

/* ---- walking the displayed elements -------------------------------------------------- */

/* The indices shown along a dimension of size n: all, or EDGE leading and EDGE trailing. */
static bool cut(int64_t n, bool summarize) { return summarize && n > 2 * EDGE; }

static void collect(const sg_tensor *t, int d, int64_t off, bool summarize, cell *out, int64_t *k) {
    if (d == t->ndim) {
        if (sg_dtype_is_float(t->dtype))
            out[(*k)++].d = sg__ld(t, off);
        else
            out[(*k)++].i = sg__ldi(t, off);
        return;
    }
    int64_t n = t->shape[d];
    for (int64_t i = 0; i < n; i++) {
        if (cut(n, summarize) && i == EDGE)
            i = n - EDGE;
        collect(t, d + 1, off + i * t->stride[d], summarize, out, k);
    }
}

/* Mirrors numpy's _formatArray: rows of the last axis are joined by ' ', blocks of outer
 * axes by as many newlines as there are axes below them, continuation lines indented to
 * sit under the opening bracket. */
static void render(sbuf *b, const sg_tensor *t, int d, bool summarize, const cell *v, int64_t *k,
                   const numfmt *f) {
    if (d == t->ndim) {
        put_cell(b, v[(*k)++], f);
        return;
    }
    int64_t n = t->shape[d];
    int below = t->ndim - d - 1;
    sb_puts(b, "[");
    for (int64_t i = 0; i < n; i++) {
        bool dots = cut(n, summarize) && i == EDGE;
        if (i > 0) {
            if (below == 0) {
                sb_puts(b, " ");
            } else {
                for (int j = 0; j < below; j++)
                    sb_puts(b, "\n");
                sb_spaces(b, d + 1);
            }
        }
        if (dots) {
            sb_puts(b, "...");
            i = n - EDGE - 1;
            continue;
        }
        render(b, t, d + 1, summarize, v, k, f);
    }
    sb_puts(b, "]");
}

static char *format_tensor(const sg_tensor *t) {
    sbuf b = {0};
    char shp[128];
    if (t->name[0]) {
        sb_putn(&b, t->name, strnlen(t->name, sizeof t->name));
        sb_puts(&b, ": ");
    }
    sb_puts(&b, "shape=");
    sb_puts(&b, sg_shape_str(t->ndim, t->shape, shp, sizeof shp));
    sb_puts(&b, " dtype=");
    sb_puts(&b, sg_dtype_name(t->dtype));
    sb_puts(&b, "\n");

    int64_t numel = sg_numel(t);
    if (numel == 0) {
        sb_puts(&b, "[]\n");
    } else {
        bool summarize = numel > THRESHOLD;
        int64_t shown = 1;
        for (int d = 0; d < t->ndim; d++)
            shown *= cut(t->shape[d], summarize) ? 2 * EDGE : t->shape[d];
        cell *v = sg_malloc((size_t)shown * sizeof(cell));
        if (!v) {
            sg_free(b.p);
            return NULL;
        }
        int64_t k = 0;
        collect(t, 0, 0, summarize, v, &k);
        numfmt f;
        if (sg_dtype_is_float(t->dtype))
            choose_format(v, shown, t->dtype == SG_F32, &f);
        else
            int_format(v, shown, &f);
        k = 0;
        render(&b, t, 0, summarize, v, &k, &f);
        sb_puts(&b, "\n");
        sg_free(v);
    }
    if (b.oom) {
        sg_free(b.p);
        return NULL;
    }
    return b.p;
}

static bool printable(const sg_tensor *t, const char *fn) {
    /* Without a valid magic even t->ctx is garbage, so there is nowhere to report. */
    return sg_check(sg__ctx_of(t), t, fn);
}

char *sg_print_str(const sg_tensor *t) {
    if (!printable(t, "sg_print_str"))
        return NULL;
    char *s = format_tensor(t);
    if (!s)
        sg_error(t->ctx, "sg_print_str: out of memory");
    return s;
}

void sg_print(const sg_tensor *t, FILE *f) {
    if (!f) {
        sg_error(sg__ctx_of(t), "sg_print: FILE is NULL");
        return;
    }
    if (!t) {
        fputs("NULL tensor\n", f);
        return;
    }
    if (!printable(t, "sg_print")) {
        fputs("invalid tensor\n", f);
        return;
    }
    char *s = format_tensor(t);
    if (!s) {
        sg_error(t->ctx, "sg_print: out of memory");
        return;
    }
    fputs(s, f);
    sg_free(s);
}

/* ---- comparison ---------------------------------------------------------------------- */

/* One element of sg_compare: x of a, y of b, at flat index i. */
static void compare_one(sg_compare_result *r, double x, double y, int64_t i, double rtol,
                        double atol) {
    double diff, rel;
    bool ok;
    if (isnan(x) || isnan(y)) {
        ok = isnan(x) && isnan(y);
        diff = rel = ok ? 0.0 : INFINITY;
    } else if (isinf(x) || isinf(y)) {
        /* Like numpy.isclose: equal infinities match, anything else is infinitely off
         * (computing inf - inf would give NaN). */
        ok = x == y;
        diff = rel = ok ? 0.0 : INFINITY;
    } else {
        diff = fabs(x - y);
        ok = diff <= atol + rtol * fabs(y);
        rel = diff / fmax(fabs(y), DBL_MIN);
    }
    if (!ok)
        r->n_mismatch++;
    if (diff > r->max_abs) {
        r->max_abs = diff;
        r->worst_flat = i;
    }
    if (rel > r->max_rel)
        r->max_rel = rel;
}

int sg_compare(sg_ctx *ctx, const sg_tensor *a, const sg_tensor *b, double rtol, double atol,
               sg_compare_result *res) {
    if (!ctx || !a || !b || !sg_check(ctx, a, "sg_compare") || !sg_check(ctx, b, "sg_compare"))
        return -1;
    if (!(rtol >= 0.0) || !(atol >= 0.0)) {
        sg_error(ctx, "sg_compare: rtol and atol must be >= 0, got rtol=%g atol=%g", rtol, atol);
        return -1;
    }
    bool same = a->ndim == b->ndim;
    for (int d = 0; same && d < a->ndim; d++)
        same = a->shape[d] == b->shape[d];
    if (!same) {
        char sa[96], sb[96];
        sg_error(ctx, "sg_compare: shapes %s and %s differ",
                 sg_shape_str(a->ndim, a->shape, sa, sizeof sa),
                 sg_shape_str(b->ndim, b->shape, sb, sizeof sb));
        return -1;
    }
    int64_t n = sg_numel(a);
    sg_compare_result r;
    memset(&r, 0, sizeof r);
    r.worst_flat = n > 0 ? 0 : -1;
    /* operands: a (i0), b (i1), the flat index (i2) */
    int64_t flat[SG_MAX_DIMS];
    sg__contiguous_strides(a->ndim, a->shape, flat);
    sg_iter it;
    sg__iter_init(&it, a->ndim, a->shape, 3, (const int64_t *const[]){a->stride, b->stride, flat});
    SG_ITER_LOOP(&it, compare_one(&r, sg__ld(a, i0), sg__ld(b, i1), i2, rtol, atol));
    for (int64_t d = a->ndim - 1, i = r.worst_flat; d >= 0 && i >= 0; d--) {
        r.worst_index[d] = i % a->shape[d];
        i /= a->shape[d];
    }
    if (res)
        *res = r;
    return r.n_mismatch ? 1 : 0;
}
