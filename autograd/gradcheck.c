/* Gradient checking by central differences, and its breakdown by time step and gate for
 * recurrent layers (sg_gradcheck_rnn, through the probes cells place with sg_gate_probe). */
#include <math.h>
#include <string.h>

#include "ops.h"

sg_gradcheck_opts sg_gradcheck_defaults(void) {
    return (sg_gradcheck_opts){.eps = 1e-6, .atol = 1e-7, .rtol = 1e-5, .seed = 1};
}

/* float32 keeps about 7 digits: a step of 1e-6 is lost in the rounding of inputs near 1,
 * and a loss's differences carry errors near 1e-7 relative, so the step and the tolerances
 * are those a float32 central difference can meet (torch.autograd.gradcheck refuses float32
 * instead; its users switch to float64, which remains the tight check). */
sg_gradcheck_opts sg_gradcheck_defaults_for(sg_dtype dt) {
    if (dt == SG_F32)
        return (sg_gradcheck_opts){.eps = 1e-3, .atol = 1e-3, .rtol = 1e-2, .seed = 1};
    return sg_gradcheck_defaults();
}

/* The arena and tape as they are now, to return to after an evaluation. */
typedef struct {
    sg_arena_block *cur;
    size_t cur_used, used;
    sg_tensor *tail;
} arena_mark;

static arena_mark mark_arena(const sg_ctx *ctx) {
    return (arena_mark){ctx->cur, ctx->cur->used, ctx->used, ctx->tape.tail};
}

/* Roll back: blocks after `cur` that an evaluation may have filled are simply reused. */
static void restore_arena(sg_ctx *ctx, arena_mark m) {
    for (sg_arena_block *b = m.cur->next; b; b = b->next)
        b->used = 0;
    ctx->cur = m.cur;
    m.cur->used = m.cur_used;
    ctx->used = m.used;
    ctx->tape.tail = m.tail;
}

/* Run fn with grad mode on (ops whose forward depends on it, such as dropout, compute the
 * same function in every pass), recording unless `quiet`. NULL from fn is an error: the
 * function's own message when it recorded one, else one saying so. */
static sg_tensor *run_fn(sg_ctx *ctx, sg_gradcheck_fn fn, void *user, sg_tensor *const *inputs,
                         bool quiet, const char *when) {
    bool was = sg_ctx_set_grad_enabled(ctx, true), was_quiet = ctx->tape.quiet;
    ctx->tape.quiet = quiet;
    sg_tensor *out = fn(ctx, inputs, user);
    ctx->tape.quiet = was_quiet;
    sg_ctx_set_grad_enabled(ctx, was);
    if (!out)
        sg_error(ctx, "sg_gradcheck: the function returned NULL %s", when);
    return out;
}

/* L = sum(out * w), accumulated in double whatever out's dtype. */
static double weighted_sum(const sg_tensor *out, const double *w) {
    double s = 0;
    sg_iter it;
    sg__iter_flat(&it, out);
    SG_ITER_LOOP(&it, s += sg__ld(out, i0) * w[i1]);
    return s;
}

/* Evaluate L at the current input values without recording anything; the arena is rolled
 * back afterwards so that checking a big input does not grow it per element. */
static int eval_loss(sg_ctx *ctx, sg_gradcheck_fn fn, void *user, sg_tensor *const *inputs,
                     const double *w, int64_t wn, double *loss) {
    arena_mark m = mark_arena(ctx);
    sg_tensor *out = run_fn(ctx, fn, user, inputs, true, "evaluating a perturbed input");
    int rc = -1;
    if (out && sg_numel(out) == wn) {
        *loss = weighted_sum(out, w);
        rc = 0;
    } else if (out) {
        sg_error(ctx, "sg_gradcheck: the function's output changed size between calls");
    }
    restore_arena(ctx, m);
    return rc;
}

/* Called for every element checked: input k, flat index i, the two derivatives, and whether
 * they agree within the tolerance. */
typedef void (*elem_fn)(void *u, int k, int64_t i, double ana, double num, bool ok);

/* Check the options: a step that is positive and finite, tolerances that are >= 0. */
static bool opts_ok(sg_ctx *ctx, const char *fn, const sg_gradcheck_opts *o) {
    if (!(o->eps > 0) || !isfinite(o->eps))
        sg_error(ctx, "%s: eps = %g must be positive and finite", fn, o->eps);
    else if (!(o->atol >= 0) || !(o->rtol >= 0))
        sg_error(ctx, "%s: atol = %g and rtol = %g must be >= 0", fn, o->atol, o->rtol);
    else
        return true;
    return false;
}

/* Validate the inputs and pick the options: opts_in, or the defaults for the dtype of the
 * first input (float32's when it is float32). */
static bool prepare(sg_ctx *ctx, const char *name, sg_gradcheck_fn fn, int n,
                    sg_tensor *const *inputs, const sg_gradcheck_opts *opts_in,
                    sg_gradcheck_opts *o) {
    if (!fn || n <= 0 || !inputs) {
        sg_error(ctx, "%s: need a function and at least one input", name);
        return false;
    }
    for (int i = 0; i < n; i++) {
        if (!inputs[i] || !sg_check(ctx, inputs[i], name))
            return false;
        if (!sg_is_contiguous(inputs[i])) {
            sg_error(ctx, "%s: input %d is not contiguous", name, i);
            return false;
        }
    }
    *o = opts_in ? *opts_in : sg_gradcheck_defaults_for(inputs[0]->dtype);
    return opts_ok(ctx, name, o);
}

/* The check proper, over inputs[from..n) (the others are held fixed and not reported). */
static int check(sg_ctx *ctx, sg_gradcheck_fn fn, void *user, int n, sg_tensor *const *inputs,
                 int from, const sg_gradcheck_opts *opts, sg_gradcheck_report *reports,
                 elem_fn elem, void *eu) {
    sg_gradcheck_opts o = *opts;
    /* Analytic gradients: one backward with upstream w (or 1 for a scalar). */
    for (int i = 0; i < n; i++)
        if (inputs[i]->grad)
            sg_fill(inputs[i]->grad, 0.0);
    sg_tensor *out = run_fn(ctx, fn, user, inputs, false, "(the analytic pass)");
    if (!out)
        return -1;
    if (!(out->flags & SG_FLAG_REQUIRES_GRAD)) {
        sg_error(ctx, "sg_gradcheck: the output does not depend on any input that requires grad");
        return -1;
    }
    int64_t wn = sg_numel(out);
    double *w = sg_arena_alloc(ctx, (size_t)(wn ? wn : 1) * sizeof(double));
    if (!w)
        return -1;
    sg_tensor *wt = sg__new(ctx, "sg_gradcheck", out->dtype, out->ndim, out->shape, false);
    if (!wt)
        return -1;
    sg_rng rng;
    sg_rng_seed(&rng, o.seed);
    for (int64_t i = 0; i < wn; i++) {
        w[i] = wn == 1 ? 1.0 : sg_rng_uniform(&rng) * 2 - 1;
        if (out->dtype == SG_F32) /* the weights the analytic pass sees, exactly */
            w[i] = (float)w[i];
        sg__st(wt, i, w[i]);
    }
    if (sg_backward(ctx, out, wt))
        return -1;

    int all_ok = 1;
    for (int k = from; k < n; k++) {
        sg_tensor *x = inputs[k];
        sg_gradcheck_report r = {.ok = true, .worst_flat = -1};
        if (x->flags & SG_FLAG_REQUIRES_GRAD) {
            int64_t m = sg_numel(x);
            for (int64_t i = 0; i < m; i++) {
                double x0 = sg__ld(x, i), fp = 0, fm = 0;
                sg__st(x, i, x0 + o.eps);
                double hp = sg__ld(x, i) - x0; /* the step actually taken (f32 rounding) */
                int rc = eval_loss(ctx, fn, user, inputs, w, wn, &fp);
                sg__st(x, i, x0 - o.eps);
                double hm = x0 - sg__ld(x, i);
                rc |= eval_loss(ctx, fn, user, inputs, w, wn, &fm);
                sg__st(x, i, x0);
                if (rc)
                    return -1;
                double num = (fp - fm) / (hp + hm);
                double ana = x->grad ? sg__ld(x->grad, i) : 0.0;
                double err = fabs(ana - num);
                if (isnan(err))
                    err = INFINITY;
                double rel = err / fmax(fabs(num), 1e-12);
                if (err > r.max_abs || r.worst_flat < 0) {
                    r.max_abs = err;
                    r.worst_flat = i;
                    r.analytic = ana;
                    r.numeric = num;
                }
                if (rel > r.max_rel)
                    r.max_rel = rel;
                bool ok = err <= o.atol + o.rtol * fabs(num);
                if (!ok)
                    r.ok = false;
                if (elem)
                    elem(eu, k, i, ana, num, ok);
            }
        }
        if (!r.ok)
            all_ok = 0;
        if (reports)
            reports[k - from] = r;
    }
    return all_ok;
}

int sg_gradcheck(sg_ctx *ctx, sg_gradcheck_fn fn, void *user, int n, sg_tensor *const *inputs,
                 const sg_gradcheck_opts *opts_in, sg_gradcheck_report *reports) {
    if (!ctx)
        return -1;
    sg_gradcheck_opts o;
    if (!prepare(ctx, "sg_gradcheck", fn, n, inputs, opts_in, &o))
        return -1;
    return check(ctx, fn, user, n, inputs, 0, &o, reports, NULL, NULL);
}

/* ---- by time step and gate ------------------------------------------------------------- */

/* One probe a forward passed (sg_gate_probe): its step, gate letters, shape and, while the
 * check injects, the zero leaf d added to it. */
typedef struct {
    int64_t step;
    char gates[SG_GATES_MAX + 1];
    sg_dtype dt;
    int ndim;
    int64_t shape[SG_MAX_DIMS];
    sg_tensor *d;
} probe_entry;

typedef struct {
    bool inject; /* false: discovering the probes; true: adding each one's d */
    int k;       /* probes passed in this forward */
    int n, cap;
    probe_entry *p;
} probe_state;

sg_tensor *sg_gate_probe(sg_ctx *ctx, sg_tensor *z, const char *gates) {
    if (!ctx || !z)
        return z;
    if (ctx->tape.labels) {
        char nm[SG_GATES_MAX + 8];
        snprintf(nm, sizeof nm, "z_t[%s]", gates ? gates : "");
        sg_tensor_set_name(z, nm);
    }
    probe_state *ps = ctx->tape.probe;
    if (!ps)
        return z;
    size_t ng = gates ? strlen(gates) : 0;
    if (!sg_check(ctx, z, "sg_gate_probe"))
        return NULL;
    if (ng < 1 || ng > SG_GATES_MAX || z->ndim < 1 || z->shape[z->ndim - 1] % (int64_t)ng) {
        char s[96];
        return sg_error(ctx,
                        "sg_gate_probe: %zu gates \"%s\" for pre-activations %s (1 to %d "
                        "gates that divide the last dimension)",
                        ng, gates ? gates : "", sg_shape_str(z->ndim, z->shape, s, sizeof s),
                        SG_GATES_MAX);
    }
    if (!ps->inject) {
        if (ps->n == ps->cap) {
            int nc = ps->cap ? 2 * ps->cap : 64;
            probe_entry *np = sg_realloc(ps->p, (size_t)nc * sizeof *np);
            if (!np)
                return sg_error(ctx, "sg_gate_probe: out of memory");
            ps->p = np;
            ps->cap = nc;
        }
        probe_entry *e = &ps->p[ps->n++];
        *e = (probe_entry){.step = (int64_t)ctx->tape.step - 1, .dt = z->dtype, .ndim = z->ndim};
        memcpy(e->gates, gates, ng + 1);
        memcpy(e->shape, z->shape, sizeof e->shape);
        return z;
    }
    if (ps->k >= ps->n || !sg__same_shape(z, ps->p[ps->k].d))
        return sg_error(ctx,
                        "sg_gate_probe: the forward passed other probes than in its first "
                        "run (probe %d)",
                        ps->k);
    return sg_add(ctx, z, ps->p[ps->k++].d);
}

typedef struct {
    sg_gradcheck_fn fn;
    void *user;
    probe_state *ps;
    int n;    /* the user's inputs; the d leaves follow */
    int *row; /* each probe's row */
    int *col; /* each probe's gate letters' columns (SG_GATES_MAX per probe) */
    sg_gradcheck_rnn_report *r;
} rnn_check;

/* The user's function, with the probe count reset for this forward. */
static sg_tensor *probed_fn(sg_ctx *ctx, sg_tensor *const *inputs, void *u) {
    rnn_check *rc = u;
    rc->ps->k = 0;
    return rc->fn(ctx, inputs, rc->user);
}

static void rnn_elem(void *u, int k, int64_t i, double ana, double num, bool ok) {
    rnn_check *rc = u;
    int p = k - rc->n;
    const probe_entry *e = &rc->ps->p[p];
    int64_t last = e->shape[e->ndim - 1], width = last / (int64_t)strlen(e->gates);
    int g = rc->col[p * SG_GATES_MAX + (int)((i % last) / width)];
    int cell = rc->row[p] * rc->r->gates + g;
    double err = fabs(ana - num);
    if (isnan(err))
        err = INFINITY;
    if (err > rc->r->max_abs[cell] || !rc->r->visited[cell]) {
        rc->r->max_abs[cell] = err;
        rc->r->analytic[cell] = ana;
        rc->r->numeric[cell] = num;
    }
    rc->r->visited[cell] = true;
    double rel = err / fmax(fabs(num), 1e-12);
    if (rel > rc->r->max_rel[cell])
        rc->r->max_rel[cell] = rel;
    if (!ok)
        rc->r->ok = false;
}

void sg_gradcheck_rnn_report_free(sg_gradcheck_rnn_report *r) {
    if (!r)
        return;
    sg_free(r->step);
    sg_free(r->max_abs);
    *r = (sg_gradcheck_rnn_report){0};
}

/* Rows (distinct steps, in the order first seen) and columns (distinct gate letters) of the
 * probes found; allocates the report's arrays. */
static int layout(sg_ctx *ctx, rnn_check *rc) {
    const probe_state *ps = rc->ps;
    sg_gradcheck_rnn_report *r = rc->r;
    /* Columns in the order of the step with the most probes (a cell that probes each gate
     * alone skips one at step 0), then any other letters as first seen. */
    int best = 0, bestn = 0;
    for (int p = 0; p < ps->n; p++) {
        int k = 0;
        for (int q = p; q < ps->n && ps->p[q].step == ps->p[p].step; q++)
            k += (int)strlen(ps->p[q].gates);
        if (k > bestn)
            bestn = k, best = p;
    }
    for (int i = 0; i < ps->n; i++) {
        int p = (best + i) % ps->n;
        for (const char *g = ps->p[p].gates; *g; g++)
            if (!strchr(r->gate_names, *g)) {
                if (r->gates == SG_GATES_MAX) {
                    sg_error(ctx, "sg_gradcheck_rnn: more than %d gate letters", SG_GATES_MAX);
                    return -1;
                }
                r->gate_names[r->gates++] = *g;
            }
    }
    r->step = sg_calloc((size_t)ps->n, sizeof *r->step);
    rc->row = sg_calloc((size_t)ps->n, sizeof *rc->row);
    rc->col = sg_calloc((size_t)ps->n * SG_GATES_MAX, sizeof *rc->col);
    if (!r->step || !rc->row || !rc->col)
        return -1;
    for (int p = 0; p < ps->n; p++) {
        int j = 0;
        while (j < r->rows && r->step[j] != ps->p[p].step)
            j++;
        if (j == r->rows)
            r->step[r->rows++] = ps->p[p].step;
        rc->row[p] = j;
        for (int g = 0; ps->p[p].gates[g]; g++)
            rc->col[p * SG_GATES_MAX + g] =
                (int)(strchr(r->gate_names, ps->p[p].gates[g]) - r->gate_names);
    }
    /* one block: max_abs, max_rel, analytic, numeric (doubles), then visited */
    size_t cells = (size_t)r->rows * (size_t)r->gates;
    unsigned char *blk = sg_calloc(cells, 4 * sizeof(double) + sizeof(bool));
    if (!blk)
        return -1;
    r->max_abs = (double *)blk;
    r->max_rel = r->max_abs + cells;
    r->analytic = r->max_rel + cells;
    r->numeric = r->analytic + cells;
    r->visited = (bool *)(r->numeric + cells);
    return 0;
}

int sg_gradcheck_rnn(sg_ctx *ctx, sg_gradcheck_fn fn, void *user, int n, sg_tensor *const *inputs,
                     const sg_gradcheck_opts *opts_in, sg_gradcheck_rnn_report *report) {
    if (!ctx)
        return -1;
    if (!report) {
        sg_error(ctx, "sg_gradcheck_rnn: report is NULL");
        return -1;
    }
    *report = (sg_gradcheck_rnn_report){.worst_row = -1, .worst_gate = -1, .ok = true};
    if (ctx->tape.probe) {
        sg_error(ctx, "sg_gradcheck_rnn: already running in this context");
        return -1;
    }
    sg_gradcheck_opts o;
    if (!prepare(ctx, "sg_gradcheck_rnn", fn, n, inputs, opts_in, &o))
        return -1;
    probe_state ps = {0};
    rnn_check rc = {.fn = fn, .user = user, .ps = &ps, .n = n, .r = report};
    sg_tensor **all = NULL;
    int res = -1;
    ctx->tape.probe = &ps;
    /* 1. find the probes: one forward that records nothing */
    arena_mark m = mark_arena(ctx);
    sg_tensor *out = run_fn(ctx, fn, user, inputs, true, "(finding the probes)");
    restore_arena(ctx, m);
    if (!out)
        goto done;
    if (ps.n == 0) {
        sg_error(ctx, "sg_gradcheck_rnn: the function passed no sg_gate_probe (a recurrent "
                      "layer's cells place them)");
        goto done;
    }
    if (layout(ctx, &rc))
        goto oom;
    /* 2. a zero leaf per probe, added to its pre-activations; check by those leaves */
    all = sg_malloc((size_t)(n + ps.n) * sizeof *all);
    if (!all)
        goto oom;
    memcpy(all, inputs, (size_t)n * sizeof *all);
    for (int p = 0; p < ps.n; p++) {
        probe_entry *e = &ps.p[p];
        sg_tensor *d = sg_zeros(ctx, e->dt, e->ndim, e->shape);
        if (!sg_set_requires_grad(d, true))
            goto done;
        e->d = all[n + p] = d;
    }
    ps.inject = true;
    res = check(ctx, probed_fn, &rc, n + ps.n, all, n, &o, NULL, rnn_elem, &rc);
    if (res >= 0) {
        double worst = -1;
        for (int j = 0; j < report->rows * report->gates; j++)
            if (report->visited[j] && report->max_abs[j] > worst) {
                worst = report->max_abs[j];
                report->worst_row = j / report->gates;
                report->worst_gate = j % report->gates;
            }
        res = report->ok ? 1 : 0;
    }
    goto done;
oom:
    sg_error(ctx, "sg_gradcheck_rnn: out of memory");
done:
    ctx->tape.probe = NULL;
    sg_free(ps.p);
    sg_free(rc.row);
    sg_free(rc.col);
    sg_free(all);
    if (res < 0)
        sg_gradcheck_rnn_report_free(report);
    return res;
}

int sg_gradcheck_rnn_print(FILE *f, const sg_gradcheck_rnn_report *r) {
    if (!f || !r)
        return -1;
    fprintf(f, "max |analytic - numeric| of dL/dz by time step (rows) and gate (columns)\n%6s",
            "step");
    for (int g = 0; g < r->gates; g++)
        fprintf(f, "  %10c", r->gate_names[g]);
    fputc('\n', f);
    for (int j = 0; j < r->rows; j++) {
        if (r->step[j] < 0)
            fprintf(f, "%6s", "-");
        else
            fprintf(f, "%6lld", (long long)r->step[j]);
        for (int g = 0; g < r->gates; g++) {
            int c = j * r->gates + g;
            if (r->visited[c])
                fprintf(f, "  %10.3g", r->max_abs[c]);
            else
                fprintf(f, "  %10s", "-");
        }
        fputc('\n', f);
    }
    if (r->worst_row >= 0) {
        int c = r->worst_row * r->gates + r->worst_gate;
        fprintf(f, "%s: worst at step %lld, gate %c: analytic %.9g, numeric %.9g (rel %.3g)\n",
                r->ok ? "ok" : "MISMATCH", (long long)r->step[r->worst_row],
                r->gate_names[r->worst_gate], r->analytic[c], r->numeric[c], r->max_rel[c]);
    }
    return ferror(f) ? -1 : 0;
}
