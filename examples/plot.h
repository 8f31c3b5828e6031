/* Small SVG plots for the examples and lessons (no dependencies): line and scatter plots of
 * named series with ticked, labelled axes (linear or log10 y), a legend and an optional
 * horizontal reference line; heatmaps with row labels, a colour scale and highlighted
 * columns. And the checked output file they are written through. */
#ifndef SG_EXAMPLES_PLOT_H
#define SG_EXAMPLES_PLOT_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

/* ---- an output file whose every write, flush and close is checked ----------------------
 * The first failure is kept (its errno) and reported by out_close, which names the file. A
 * full disk shows up at the flush or the close, seldom at the write: stdio buffers. Messages
 * go to stderr as "<program>: <path>: cannot open for writing: <reason>" and
 * "<program>: <path>: write failed: <reason>". */
typedef struct {
    FILE *f;
    const char *path;
    int err; /* errno of the first failure, 0 while none */
} output;

/* Open path for writing: 0, or -1 with the message. */
int out_open(output *o, const char *path);
/* printf into the file; after a failure, nothing (the first failure is kept). */
void out_printf(output *o, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Flush and close: 0, or -1 with the message. */
int out_close(output *o);

/* ---- line plots ------------------------------------------------------------------------ */

/* One series: n points (x[i], y[i]); x NULL: x = x0 + i. Points where y is not finite (or
 * not positive, on a log axis) break the line. */
typedef struct {
    const char *name; /* in the legend; NULL: not listed */
    const double *x;
    const double *y;
    int64_t n;
    double x0;
    const char *color; /* NULL: the palette's next colour */
    bool points;       /* markers instead of a line (a scatter plot) */
} plot_series;

typedef struct {
    const char *title, *xlabel, *ylabel;
    bool logy;            /* log10 y axis, ticks at powers of ten */
    bool ref;             /* draw a horizontal reference line at y = ref_y */
    double ref_y;         /* e.g. a baseline loss */
    const char *ref_name; /* its legend entry (NULL: "reference") */
    bool diagonal;        /* draw y = x (a perfect prediction) */
    bool legend_left;     /* the legend top left (default: top right) */
    bool fixed;           /* use the limits below instead of the data's range */
    double xmin, xmax, ymin, ymax;
    int width, height; /* 0: 640 x 400 */
} plot_opts;

/* Write an SVG plot of n series to path. 0, or -1 with a message naming the file. */
int plot_lines(const char *path, const plot_opts *o, int n, const plot_series *s);

/* ---- heatmaps -------------------------------------------------------------------------- */

typedef struct {
    const char *title, *xlabel;
    int rows, cols;
    const double *v;               /* rows * cols values, row-major */
    const char *const *row_labels; /* rows labels (NULL: none) */
    double lo, hi;                 /* the colour scale's range (lo == hi: the data's) */
    const char *scale_label;       /* under the colour scale */
    const bool *highlight;         /* cols flags: columns outlined (NULL: none) */
    int cell_w, cell_h;            /* 0: 10 x 14 */
    const int *row_gap_after;      /* rows after which a gap is left (-1 ends; NULL: none) */
} plot_heatmap_opts;

/* Write the heatmap as SVG: cell (r, c) coloured by v on a white-to-blue scale, column
 * numbers every 5 under it. 0, or -1 with a message naming the file. */
int plot_heatmap(const char *path, const plot_heatmap_opts *h);

/* ---- PNG through Graphviz or rsvg (optional) --------------------------------------------
 * Is the program `name` on PATH? */
bool plot_have(const char *name);

#endif
