/* SVG plots for the examples and lessons (plot.h). */
#define _GNU_SOURCE /* program_invocation_short_name: messages name the program */
#include "plot.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* ---- the checked output file ---------------------------------------------------------- */

int out_open(output *o, const char *path) {
    *o = (output){.f = fopen(path, "w"), .path = path};
    if (!o->f) {
        fprintf(stderr, "%s: %s: cannot open for writing: %s\n", program_invocation_short_name,
                path, strerror(errno));
        return -1;
    }
    return 0;
}

void out_printf(output *o, const char *fmt, ...) {
    if (o->err)
        return;
    va_list ap;
    va_start(ap, fmt);
    errno = 0;
    if (vfprintf(o->f, fmt, ap) < 0)
        o->err = errno ? errno : EIO;
    va_end(ap);
}

int out_close(output *o) {
    errno = 0;
    if (!o->err && fflush(o->f) != 0)
        o->err = errno ? errno : EIO;
    if (!o->err && ferror(o->f))
        o->err = EIO;
    errno = 0;
    if (fclose(o->f) != 0 && !o->err)
        o->err = errno ? errno : EIO;
    o->f = NULL;
    if (o->err) {
        fprintf(stderr, "%s: %s: write failed: %s\n", program_invocation_short_name, o->path,
                strerror(o->err));
        return -1;
    }
    return 0;
}

/* ---- axes ------------------------------------------------------------------------------- */

static const char *const palette[] = {"#1f4e99", "#c0392b", "#2e8b3e",
                                      "#e67e22", "#8e44ad", "#16a085"};

/* A "nice" tick step (1, 2 or 5 times a power of ten) giving about `want` ticks over span. */
static double nice_step(double span, int want) {
    double raw = span / want, p = pow(10, floor(log10(raw))), m = raw / p;
    return (m < 1.5 ? 1 : m < 3.5 ? 2 : m < 7.5 ? 5 : 10) * p;
}

/* Widen [lo, hi] to whole ticks of a nice step; an empty range gets some room. */
static double nice_range(double *lo, double *hi, int want) {
    if (!(*hi > *lo)) {
        double d = fabs(*lo) > 0 ? fabs(*lo) * 0.1 : 1;
        *lo -= d;
        *hi += d;
    }
    double st = nice_step(*hi - *lo, want);
    *lo = floor(*lo / st + 1e-9) * st;
    *hi = ceil(*hi / st - 1e-9) * st;
    return st;
}

/* A tick's label: short, without trailing noise ("0.25", "1e-06", "300"). */
static void tick_label(char *buf, size_t n, double v, double step) {
    if (fabs(v) < step * 1e-6)
        v = 0;
    snprintf(buf, n, "%.*g", fabs(v) >= 1e5 || (v != 0 && fabs(v) < 1e-3) ? 2 : 6, v);
}

typedef struct {
    double x0, y0, w, h; /* the plot area in pixels */
    double xlo, xhi, ylo, yhi;
    bool logy;
} frame;

/* Pixel coordinates, kept inside the frame (a point beyond fixed limits sits on the edge). */
static double fx(const frame *fr, double x) {
    return fr->x0 + fr->w * fmax(0, fmin(1, (x - fr->xlo) / (fr->xhi - fr->xlo)));
}
static double fy(const frame *fr, double y) {
    if (fr->logy)
        y = log10(y);
    return fr->y0 + fr->h * (1 - fmax(0, fmin(1, (y - fr->ylo) / (fr->yhi - fr->ylo))));
}
static bool drawable(const frame *fr, double y) { return isfinite(y) && (!fr->logy || y > 0); }

static void text(output *f, double x, double y, const char *anchor, int size, const char *extra,
                 const char *s) {
    out_printf(f,
               "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"%s\" font-size=\"%d\" "
               "font-family=\"sans-serif\"%s>",
               x, y, anchor, size, extra ? extra : "");
    for (const char *p = s; *p; p++) /* escape what XML needs */
        out_printf(f, "%s",
                   *p == '<'   ? "&lt;"
                   : *p == '>' ? "&gt;"
                   : *p == '&' ? "&amp;"
                               : (char[]){*p, 0});
    out_printf(f, "</text>\n");
}

/* Open path and start an SVG of W x H pixels on a white background. */
static int svg_open(output *f, const char *path, double W, double H) {
    if (out_open(f, path))
        return -1;
    out_printf(f,
               "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%.0f\" height=\"%.0f\">\n"
               "<rect width=\"%.0f\" height=\"%.0f\" fill=\"white\"/>\n",
               W, H, W, H);
    return 0;
}

static void axes(output *f, const frame *fr, const plot_opts *o, double xst, double yst) {
    char b[64];
    out_printf(f,
               "<rect x=\"%.1f\" y=\"%.1f\" width=\"%.1f\" height=\"%.1f\" fill=\"none\" "
               "stroke=\"#888\"/>\n",
               fr->x0, fr->y0, fr->w, fr->h);
    /* ticks at the multiples of the step inside the range (its ends, unless fixed limits) */
    for (double x = ceil(fr->xlo / xst - 1e-9) * xst; x <= fr->xhi + xst * 1e-6; x += xst) {
        double px = fx(fr, x);
        out_printf(f,
                   "<line x1=\"%.1f\" x2=\"%.1f\" y1=\"%.1f\" y2=\"%.1f\" stroke=\"#eee\"/>"
                   "<line x1=\"%.1f\" x2=\"%.1f\" y1=\"%.1f\" y2=\"%.1f\" stroke=\"#888\"/>\n",
                   px, px, fr->y0, fr->y0 + fr->h, px, px, fr->y0 + fr->h, fr->y0 + fr->h + 5);
        tick_label(b, sizeof b, x, xst);
        text(f, px, fr->y0 + fr->h + 18, "middle", 11, NULL, b);
    }
    for (double y = ceil(fr->ylo / yst - 1e-9) * yst; y <= fr->yhi + yst * 1e-6; y += yst) {
        double py = fr->y0 + fr->h * (1 - (y - fr->ylo) / (fr->yhi - fr->ylo));
        out_printf(f,
                   "<line x1=\"%.1f\" x2=\"%.1f\" y1=\"%.1f\" y2=\"%.1f\" stroke=\"#eee\"/>"
                   "<line x1=\"%.1f\" x2=\"%.1f\" y1=\"%.1f\" y2=\"%.1f\" stroke=\"#888\"/>\n",
                   fr->x0, fr->x0 + fr->w, py, py, fr->x0 - 5, fr->x0, py, py);
        if (o->logy) /* y + 0.0: the decade 10^-0 is labelled 1e+0 */
            snprintf(b, sizeof b, "1e%+.0f", y + 0.0);
        else
            tick_label(b, sizeof b, y, yst);
        text(f, fr->x0 - 8, py + 4, "end", 11, NULL, b);
    }
    if (o->title)
        text(f, fr->x0 + fr->w / 2, 22, "middle", 14, NULL, o->title);
    if (o->xlabel)
        text(f, fr->x0 + fr->w / 2, fr->y0 + fr->h + 40, "middle", 12, NULL, o->xlabel);
    if (o->ylabel) {
        char tr[96];
        snprintf(tr, sizeof tr, " transform=\"rotate(-90 16 %.1f)\"", fr->y0 + fr->h / 2);
        text(f, 16, fr->y0 + fr->h / 2, "middle", 12, tr, o->ylabel);
    }
}

static void series(output *f, const frame *fr, const plot_series *s, const char *color) {
    bool open = false;
    for (int64_t i = 0; i < s->n; i++) {
        double x = s->x ? s->x[i] : s->x0 + (double)i, y = s->y[i];
        if (!drawable(fr, y) || !isfinite(x)) {
            if (open)
                out_printf(f, "\"/>\n");
            open = false;
            continue;
        }
        if (s->points) {
            out_printf(f, "<circle cx=\"%.1f\" cy=\"%.1f\" r=\"3\" fill=\"%s\"/>\n", fx(fr, x),
                       fy(fr, y), color);
            continue;
        }
        if (!open)
            out_printf(f, "<polyline fill=\"none\" stroke=\"%s\" stroke-width=\"1.5\" points=\"",
                       color);
        open = true;
        out_printf(f, "%.1f,%.1f ", fx(fr, x), fy(fr, y));
    }
    if (open)
        out_printf(f, "\"/>\n");
}

int plot_lines(const char *path, const plot_opts *o, int n, const plot_series *s) {
    int W = o->width ? o->width : 640, H = o->height ? o->height : 400;
    frame fr = {.x0 = 72, .y0 = 36, .w = W - 72 - 16, .h = H - 36 - 56, .logy = o->logy};
    /* the data's range */
    double xlo = INFINITY, xhi = -INFINITY, ylo = INFINITY, yhi = -INFINITY;
    for (int k = 0; k < n; k++)
        for (int64_t i = 0; i < s[k].n; i++) {
            double x = s[k].x ? s[k].x[i] : s[k].x0 + (double)i, y = s[k].y[i];
            if (!drawable(&fr, y) || !isfinite(x))
                continue;
            xlo = fmin(xlo, x), xhi = fmax(xhi, x);
            ylo = fmin(ylo, y), yhi = fmax(yhi, y);
        }
    if (o->ref && drawable(&fr, o->ref_y))
        ylo = fmin(ylo, o->ref_y), yhi = fmax(yhi, o->ref_y);
    if (o->fixed)
        xlo = o->xmin, xhi = o->xmax, ylo = o->ymin, yhi = o->ymax;
    if (!isfinite(xlo))
        xlo = 0, xhi = 1, ylo = 1, yhi = 10;
    double xst = o->fixed ? nice_step(xhi - xlo, 6) : nice_range(&xlo, &xhi, 8), yst;
    if (o->logy) { /* whole decades, a tick every decade (or every few when many) */
        ylo = floor(log10(ylo));
        yhi = ceil(log10(yhi) - 1e-9);
        if (yhi <= ylo)
            yhi = ylo + 1;
        yst = ceil((yhi - ylo) / 8);
        yhi = ylo + yst * ceil((yhi - ylo) / yst);
    } else if (o->fixed) {
        yst = nice_step(yhi - ylo, 6);
    } else {
        yst = nice_range(&ylo, &yhi, 6);
    }
    fr.xlo = xlo, fr.xhi = xhi, fr.ylo = ylo, fr.yhi = yhi;

    output of, *f = &of;
    if (svg_open(f, path, W, H))
        return -1;
    axes(f, &fr, o, xst, yst);
    if (o->diagonal) {
        double a = fmax(xlo, o->logy ? pow(10, ylo) : ylo),
               b = fmin(xhi, o->logy ? pow(10, yhi) : yhi);
        out_printf(f,
                   "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"#c0392b\"/>\n",
                   fx(&fr, a), fy(&fr, a), fx(&fr, b), fy(&fr, b));
    }
    if (o->ref && drawable(&fr, o->ref_y))
        out_printf(f,
                   "<line x1=\"%.1f\" x2=\"%.1f\" y1=\"%.1f\" y2=\"%.1f\" stroke=\"#c0392b\" "
                   "stroke-dasharray=\"6 4\"/>\n",
                   fr.x0, fr.x0 + fr.w, fy(&fr, o->ref_y), fy(&fr, o->ref_y));
    /* the series, then the legend (top right, inside the frame) */
    int listed = 0;
    size_t longest = o->ref && o->ref_name ? strlen(o->ref_name) : 9;
    for (int k = 0; k < n; k++)
        if (s[k].name && strlen(s[k].name) > longest)
            longest = strlen(s[k].name);
    double lx = o->legend_left ? fr.x0 + 10 : fr.x0 + fr.w - 36 - 6.2 * (double)longest;
    int entries = o->ref ? 1 : 0;
    for (int k = 0; k < n; k++)
        entries += s[k].name != NULL;
    if (entries) /* a backing, so that lines passing under the legend do not hide it */
        out_printf(f,
                   "<rect x=\"%.1f\" y=\"%.1f\" width=\"%.1f\" height=\"%d\" fill=\"white\" "
                   "fill-opacity=\"0.85\" stroke=\"#ccc\"/>\n",
                   lx - 6, fr.y0 + 2, 40 + 6.2 * (double)longest, 16 * entries + 4);
    for (int k = 0; k < n; k++) {
        const char *c = s[k].color ? s[k].color : palette[k % 6];
        series(f, &fr, &s[k], c);
    }
    for (int k = 0; k <= n; k++) {
        const char *name = k < n    ? s[k].name
                           : o->ref ? (o->ref_name ? o->ref_name : "reference")
                                    : NULL;
        if (!name)
            continue;
        const char *c = k < n ? (s[k].color ? s[k].color : palette[k % 6]) : "#c0392b";
        double ly = fr.y0 + 14 + 16 * listed++;
        out_printf(f,
                   "<line x1=\"%.1f\" x2=\"%.1f\" y1=\"%.1f\" y2=\"%.1f\" stroke=\"%s\" "
                   "stroke-width=\"%s\"%s/>\n",
                   lx, lx + 22, ly - 4, ly - 4, c, k < n && s[k].points ? "5" : "2",
                   k == n ? " stroke-dasharray=\"6 4\"" : "");
        text(f, lx + 28, ly, "start", 11, NULL, name);
    }
    out_printf(f, "</svg>\n");
    return out_close(f);
}

/* ---- heatmaps ------------------------------------------------------------------------- */

/* White (0) to dark blue (1). */
static void shade(double t, char *buf, size_t n) {
    t = isfinite(t) ? fmax(0, fmin(1, t)) : 0;
    snprintf(buf, n, "#%02x%02x%02x", (int)lround(255 - t * (255 - 0x10)),
             (int)lround(255 - t * (255 - 0x3a)), (int)lround(255 - t * (255 - 0x8c)));
}

int plot_heatmap(const char *path, const plot_heatmap_opts *h) {
    int cw = h->cell_w ? h->cell_w : 10, ch = h->cell_h ? h->cell_h : 14, gaps = 0;
    for (const int *g = h->row_gap_after; g && *g >= 0; g++)
        gaps++;
    double lo = h->lo, hi = h->hi;
    if (!(hi > lo)) {
        lo = INFINITY, hi = -INFINITY;
        for (int i = 0; i < h->rows * h->cols; i++)
            if (isfinite(h->v[i]))
                lo = fmin(lo, h->v[i]), hi = fmax(hi, h->v[i]);
        if (!(hi > lo))
            hi = lo + 1;
    }
    double x0 = 80, y0 = 40, gap = 8;
    double W = x0 + (double)h->cols * cw + 90, H = y0 + (double)h->rows * ch + gaps * gap + 60;
    output of, *f = &of;
    if (svg_open(f, path, W, H))
        return -1;
    if (h->title)
        text(f, W / 2, 22, "middle", 14, NULL, h->title);
    char col[16], b[32];
    double y = y0;
    int gi = 0;
    for (int r = 0; r < h->rows; r++) {
        if (h->row_labels && h->row_labels[r])
            text(f, x0 - 6, y + ch - 3, "end", 11, NULL, h->row_labels[r]);
        for (int c = 0; c < h->cols; c++) {
            shade((h->v[r * h->cols + c] - lo) / (hi - lo), col, sizeof col);
            out_printf(f, "<rect x=\"%.1f\" y=\"%.1f\" width=\"%d\" height=\"%d\" fill=\"%s\"/>\n",
                       x0 + c * cw, y, cw, ch, col);
        }
        y += ch;
        if (h->row_gap_after && h->row_gap_after[gi] == r && gi < gaps)
            y += gap, gi++;
    }
    for (int c = 0; h->highlight && c < h->cols; c++)
        if (h->highlight[c])
            out_printf(f,
                       "<rect x=\"%.1f\" y=\"%.1f\" width=\"%d\" height=\"%.1f\" fill=\"none\" "
                       "stroke=\"#e67e22\" stroke-width=\"2\"/>\n",
                       x0 + c * cw, y0 - 3, cw, y - y0 + 6);
    for (int c = 0; c < h->cols; c += 5) {
        snprintf(b, sizeof b, "%d", c);
        text(f, x0 + c * cw + cw / 2.0, y + 16, "middle", 10, NULL, b);
    }
    if (h->xlabel)
        text(f, x0 + h->cols * cw / 2.0, y + 34, "middle", 12, NULL, h->xlabel);
    /* the colour scale: a vertical bar right of the map */
    double sx = x0 + h->cols * cw + 20, sh = y - y0;
    for (int i = 0; i < 20; i++) {
        shade(1 - i / 19.0, col, sizeof col);
        out_printf(f, "<rect x=\"%.1f\" y=\"%.1f\" width=\"14\" height=\"%.2f\" fill=\"%s\"/>\n",
                   sx, y0 + sh * i / 20, sh / 20 + 0.5, col);
    }
    out_printf(f,
               "<rect x=\"%.1f\" y=\"%.1f\" width=\"14\" height=\"%.1f\" fill=\"none\" "
               "stroke=\"#888\"/>\n",
               sx, y0, sh);
    snprintf(b, sizeof b, "%.3g", hi);
    text(f, sx + 18, y0 + 10, "start", 10, NULL, b);
    snprintf(b, sizeof b, "%.3g", lo);
    text(f, sx + 18, y, "start", 10, NULL, b);
    if (h->scale_label)
        text(f, sx + 7, y + 16, "middle", 10, NULL, h->scale_label);
    out_printf(f, "</svg>\n");
    return out_close(f);
}

bool plot_have(const char *name) {
    const char *path = getenv("PATH");
    if (!path || !name)
        return false;
    char buf[4096];
    for (const char *p = path; *p;) {
        size_t n = strcspn(p, ":");
        snprintf(buf, sizeof buf, "%.*s/%s", (int)n, p, name);
        if (n && access(buf, X_OK) == 0)
            return true;
        p += n + (p[n] == ':');
    }
    return false;
}
