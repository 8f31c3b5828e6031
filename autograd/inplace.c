/* The in-place policy: which buffers and regions a recorded backward still reads, and the
 * check every in-place op makes before it overwrites anything (see sg_sigmoid_ in
 * autograd.h for the rules as the user sees them). */
#include <string.h>

#include "ops.h"

/* Where a view's elements lie in its buffer: the span [lo, hi] of offsets and, when
 * the last dimension is unit-stride and every other stride a multiple of S (> 0), the
 * column range [r, r + L) modulo S that every element falls in (offset + k*S + j, j < L).
 * S = 0: no such form. */
enum { RG_LO, RG_HI, RG_S, RG_R, RG_L, RG_N };
static void region(const sg_tensor *t, int64_t *rg) {
    int nd = t->ndim;
    int64_t lo = t->offset, hi = t->offset, S = 0;
    bool form = nd >= 2 && t->stride[nd - 1] == 1;
    for (int d = 0; d < nd; d++) {
        int64_t e = t->stride[d] * (t->shape[d] - 1);
        if (e < 0)
            lo += e;
        else
            hi += e;
        if (d < nd - 1 && t->shape[d] > 1) {
            if (t->stride[d] <= 0)
                form = false;
            else if (S == 0 || t->stride[d] < S)
                S = t->stride[d];
        }
    }
    for (int d = 0; form && S && d < nd - 1; d++)
        if (t->shape[d] > 1 && t->stride[d] % S)
            form = false;
    int64_t L = nd ? t->shape[nd - 1] : 1;
    if (!form || !S || t->offset % S + L > S)
        S = 0;
    rg[RG_LO] = lo;
    rg[RG_HI] = hi;
    rg[RG_S] = S;
    rg[RG_R] = S ? t->offset % S : 0;
    rg[RG_L] = L;
}

/* Can two non-empty views of one buffer, given by their regions, share an element? Exact
 * for views that differ only by offset and last-dimension length (slices and splits of one
 * tensor), conservative (true) otherwise. */
static bool regions_overlap(const int64_t *a, const int64_t *b) {
    if (a[RG_HI] < b[RG_LO] || b[RG_HI] < a[RG_LO])
        return false;
    if (a[RG_S] && a[RG_S] == b[RG_S])
        return !(a[RG_R] + a[RG_L] <= b[RG_R] || b[RG_R] + b[RG_L] <= a[RG_R]);
    return true; /* conservative */
}

/* The marks of a buffer are the in-place results that a recorded backward reads, newest
 * first (the root storage's `marks`, then each one's mark_next); each also carries the lowest
 * and highest offset over itself and every older mark. A check walks them newest first and
 * stops where those bounds show that nothing older can reach x: a sequence worked front to
 * back (each step above the last) stops at once, and so does one worked back to front, as a
 * reverse-direction layer does. A mark's region is computed again when a check visits it. */
/* The mark of a whole buffer (sg__save): not a tensor, only its address is used. */
sg_tensor sg__whole_mark;

void sg__save_inplace(sg_ctx *ctx, sg_tensor *t) {
    t->flags |= SG_FLAG_SAVED;
    if (sg_numel(t) == 0) /* nothing to overwrite */
        return;
    sg_storage *r = t->storage->root;
    if (r->mark_gen != ctx->gen + 1) {
        r->mark_gen = ctx->gen + 1;
        r->marks = NULL;
    } else if (r->marks == SG__WHOLE) { /* every in-place op on the buffer is refused anyway */
        return;
    }
    int64_t rg[RG_N];
    region(t, rg);
    const sg_tensor *older = r->marks;
    t->mark_next = r->marks;
    t->mark_lo = older && older->mark_lo < rg[RG_LO] ? older->mark_lo : rg[RG_LO];
    t->mark_hi = older && older->mark_hi > rg[RG_HI] ? older->mark_hi : rg[RG_HI];
    r->marks = t;
}

bool sg__inplace_check(sg_ctx *ctx, const char *fn, sg_tensor *x, int n, sg_tensor *const *others,
                       bool same_ok) {
    /* A detached view of a parameter, or a view of one (ops_shape.c passes the flag on). */
    if ((x->flags & SG_FLAG_NO_WRITE) && !ctx->tape.grad_disabled) {
        sg_error(ctx,
                 "%s: cannot work in place on a detached view of a parameter: it would change "
                 "the parameter; use the out-of-place op",
                 fn);
        return false;
    }
    /* A leaf that requires grad, or a view of one: its gradient would be of a value that no
     * longer exists (PyTorch refuses the same). */
    const sg_tensor *base = sg__view_base(x);
    if (base->op == SG_OP_NONE && (base->flags & SG_FLAG_REQUIRES_GRAD) &&
        !ctx->tape.grad_disabled) {
        sg_error(ctx,
                 "%s: cannot work in place on %s that requires grad (a parameter?): use the "
                 "out-of-place op",
                 fn, base == x ? "a leaf tensor" : "a view of a leaf tensor");
        return false;
    }
    for (int d = 0; d < x->ndim; d++)
        if (x->stride[d] == 0 && x->shape[d] > 1) {
            sg_error(ctx,
                     "%s: cannot work in place on an expanded view (dimension %d has stride "
                     "0, so several elements share one location)",
                     fn, d);
            return false;
        }
    /* x's region, once, for the other inputs and for the saved in-place results. */
    bool empty = sg_numel(x) == 0;
    int64_t rx[RG_N];
    if (!empty)
        region(x, rx);
    for (int i = 0; i < n; i++) {
        const sg_tensor *o = others[i];
        int64_t ro[RG_N];
        if (empty || o->storage->root != x->storage->root || sg_numel(o) == 0)
            continue;
        region(o, ro);
        if (!regions_overlap(rx, ro))
            continue;
        bool same = o->offset == x->offset && o->ndim == x->ndim &&
                    !memcmp(o->shape, x->shape, sizeof(int64_t) * (size_t)x->ndim) &&
                    !memcmp(o->stride, x->stride, sizeof(int64_t) * (size_t)x->ndim);
        if (!(same_ok && same)) {
            sg_error(ctx,
                     "%s: input %d overlaps the tensor written in place; its values would "
                     "change while being read",
                     fn, i + 1);
            return false;
        }
    }
    const sg_storage *r = x->storage->root;
    if (r->mark_gen == ctx->gen + 1 && r->marks == SG__WHOLE) {
        sg_error(ctx,
                 "%s: the values of this tensor (or of another view of its buffer) are "
                 "needed by the backward of an op recorded earlier; working in place would "
                 "corrupt that gradient: use the out-of-place op",
                 fn);
        return false;
    }
    if (r->mark_gen == ctx->gen + 1 && !empty) {
        for (const sg_tensor *m = r->marks; m; m = m->mark_next) {
            if (m->mark_hi < rx[RG_LO] || m->mark_lo > rx[RG_HI])
                break; /* neither this mark nor any older one reaches x */
            ctx->tape.ip_visits++;
            int64_t rm[RG_N];
            region(m, rm);
            if (regions_overlap(rx, rm)) {
                sg_error(ctx,
                         "%s: this tensor overlaps the result of an earlier in-place %s "
                         "whose backward needs its values: use the out-of-place op",
                         fn, sg_op_name(m->op));
                return false;
            }
        }
    }
    return true;
}

sg_tensor *sg__inplace_result(sg_ctx *ctx, sg_tensor *x) {
    sg_tensor *y = sg__view_of(ctx, x);
    if (y)
        y->flags |= SG_FLAG_INPLACE;
    return y;
}
