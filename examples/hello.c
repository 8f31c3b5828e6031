/* hello: the smallest tour of seqgrad.
 *
 *   1. tensors and views (a view shares storage: writing through it changes the base),
 *   2. a matmul and printing,
 *   3. how errors look (a deliberate shape mismatch),
 *   4. a few steps of fitting y = 3x - 1 with one weight and one bias.
 *
 * Build and run from the repository root:
 *   scripts/setup.sh && meson compile -C build && build/examples/hello
 * Outside the tree:  cc hello.c $(pkg-config --cflags --libs seqgrad)
 * Exits nonzero if anything fails or the fit does not converge.
 */
#include <math.h>
#include <seqgrad.h>
#include <stdio.h>

/* Print the context's error (if any) with what we were doing, and say whether it failed. */
static int failed(sg_ctx *ctx, const char *what) {
    if (!sg_ctx_error(ctx))
        return 0;
    fprintf(stderr, "hello: %s failed: %s\n", what, sg_ctx_error(ctx));
    return 1;
}

int main(void) {
    /* A context owns an arena for temporaries; 0 picks the default size. */
    sg_ctx *ctx = sg_ctx_new(0);
    if (!ctx) {
        fprintf(stderr, "hello: out of memory\n");
        return 1;
    }
    sg_store *model = NULL; /* made in part 4 */

    /* ---- 1. tensors and views ---------------------------------------------------------- */
    sg_tensor *m = sg_reshape(ctx, sg_arange(ctx, SG_F32, 0, 6, 1), SG_SHAPE(2, 3));
    sg_tensor *mt = sg_transpose(ctx, m, 0, 1); /* (3, 2) view: same storage, swapped strides */
    sg_tensor_set_name(m, "m");
    sg_tensor_set_name(mt, "m.T");
    sg_print(m, stdout);
    sg_print(mt, stdout);
    sg_set_flat(mt, 1, 10.0); /* mt[0, 1] is m[1, 0] */
    printf("after mt[0, 1] = 10, m[1, 0] = %g\n\n", sg_get(m, (const int64_t[]){1, 0}));
    if (failed(ctx, "views"))
        goto fail;

    /* ---- 2. matmul (BLIS reads the transposed view in place) --------------------------- */
    sg_tensor *p = sg_matmul(ctx, m, mt); /* (2, 3) @ (3, 2) -> (2, 2) */
    sg_tensor_set_name(p, "m @ m.T");
    sg_print(p, stdout);
    if (failed(ctx, "matmul"))
        goto fail;

    /* ---- 3. errors: no abort, a NULL result and one message naming op and shapes -------- */
    sg_tensor *bad = sg_matmul(ctx, m, m);           /* (2, 3) @ (2, 3): inner sizes differ */
    sg_tensor *worse = sg_add_scalar(ctx, bad, 1.0); /* NULL in, NULL out, nothing new */
    printf("\ndeliberate mistake: %s -> %s\n", worse ? "a result?!" : "NULL", sg_ctx_error(ctx));
    if (worse || !sg_ctx_error(ctx))
        goto fail;
    sg_ctx_clear_error(ctx);
    sg_ctx_reset(ctx); /* drop every temporary so far (O(1)) */

    /* ---- 4. fit y = 3x - 1 ------------------------------------------------------------- */
    /* Parameters live in a store: named, in one slab of values and one of gradients, and
     * untouched by sg_ctx_reset. */
    model = sg_store_new();
    sg_tensor *w = sg_store_param(ctx, model, "w", SG_F64, SG_SHAPE(1, 1));
    sg_tensor *b = sg_store_param(ctx, model, "b", SG_F64, SG_SHAPE(1));
    printf("\nfitting y = 3x - 1 with plain SGD (lr 0.1, batches of 8)\n");
    double loss_value = NAN;
    for (int step = 0; step < 200; step++) {
        sg_store_zero_grad(model); /* gradients accumulate: zero them each step */
        sg_tensor *x = sg_rand_uniform(ctx, SG_F64, SG_SHAPE(8, 1), -1, 1);
        sg_tensor *y = sg_add_scalar(ctx, sg_scale(ctx, x, 3.0), -1.0);
        sg_tensor *pred = sg_add(ctx, sg_matmul(ctx, x, w), b); /* ops record a tape */
        sg_tensor *loss = sg_mse_loss(ctx, pred, y);
        if (sg_backward(ctx, loss, NULL)) /* walks the tape in reverse */
            break;
        loss_value = sg_get_flat(loss, 0);
        if (step % 50 == 0 || step == 199)
            printf("  step %3d  loss %.3e  w %.4f  b %.4f\n", step, loss_value, sg_get_flat(w, 0),
                   sg_get_flat(b, 0));
        sg_axpy(w, -0.1, w->grad);
        sg_axpy(b, -0.1, b->grad);
        sg_ctx_reset(ctx);
    }
    if (failed(ctx, "training"))
        goto fail;
    double wv = sg_get_flat(w, 0), bv = sg_get_flat(b, 0);
    printf("learned w = %.4f, b = %.4f (want 3, -1)\n", wv, bv);
    if (!(fabs(wv - 3) < 1e-2 && fabs(bv + 1) < 1e-2)) {
        fprintf(stderr, "hello: the fit did not converge\n");
        goto fail;
    }
    sg_store_free(model);
    sg_ctx_free(ctx);
    return 0;

fail:
    sg_store_free(model);
    sg_ctx_free(ctx);
    return 1;
}
