/* What every lesson program shares: where its figures go, rendering a DOT graph when
 * Graphviz is installed, and failing loudly. Header-only (each lesson is one program). */
#ifndef SG_LESSON_H
#define SG_LESSON_H

#include <seqgrad.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "plot.h"

/* The figures' directory: "--out DIR" on the command line, else "lessons_out" (made if
 * missing). NULL (after a message) when it cannot be made. */
static inline const char *lesson_out_dir(int argc, char **argv, const char *prog) {
    const char *dir = "lessons_out";
    for (int i = 1; i + 1 < argc; i++)
        if (!strcmp(argv[i], "--out"))
            dir = argv[i + 1];
    if (mkdir(dir, 0777) != 0) {
        struct stat st;
        if (stat(dir, &st) != 0 || !S_ISDIR(st.st_mode)) {
            fprintf(stderr, "%s: cannot make the output directory %s\n", prog, dir);
            return NULL;
        }
    }
    return dir;
}

/* dir/name into buf. */
static inline const char *lesson_path(char *buf, size_t n, const char *dir, const char *name) {
    snprintf(buf, n, "%s/%s", dir, name);
    return buf;
}

/* Render dot_path (x.dot) as x.svg and x.png with Graphviz's dot when it is installed; else
 * say how to get it. 0, or -1 when dot ran and failed. */
static inline int lesson_render_dot(const char *dot_path) {
    if (!plot_have("dot")) {
        printf("(install graphviz (apt-get install graphviz) for SVG and PNG pictures of %s)\n",
               dot_path);
        return 0;
    }
    char base[4096], cmd[3 * 4096 + 64];
    snprintf(base, sizeof base, "%.*s", (int)(strlen(dot_path) - (strlen(dot_path) > 4 ? 4 : 0)),
             dot_path);
    for (int k = 0; k < 2; k++) {
        const char *fmt = k ? "png" : "svg";
        snprintf(cmd, sizeof cmd, "dot -T%s '%s' -o '%s.%s'", fmt, dot_path, base, fmt);
        if (system(cmd) != 0) {
            fprintf(stderr, "failed: %s\n", cmd);
            return -1;
        }
        printf("wrote %s.%s\n", base, fmt);
    }
    return 0;
}

/* Seconds since an arbitrary start (the lessons report how long they ran). */
static inline double lesson_seconds(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

#endif
