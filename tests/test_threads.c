/* Workspaces that share one parameter store: two threads, each with its own context and
 * private gradient slab, run forward and backward on halves of a batch at the same time;
 * the reduced gradients must equal one thread's gradients of the whole batch. CI also runs
 * this program under ThreadSanitizer (build-tsan in .ci/run). */
#include <check.h>
#include <math.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "seqgrad.h"

#include "cksuite.h"

enum { B = 6, T = 5, I = 3, H = 4 };

typedef struct {
    sg_ctx *ctx;
    sg_lstm *lstm;
    sg_dense *head;
    const double *x, *y; /* the whole batch: x (B, T, I), y (B, 1) */
    int64_t row0, rows;  /* this worker's rows */
    int rc;
} job;

/* loss = (rows / B) * mean over the rows of (head(lstm(x)) - y)^2: the parts of the two halves
 * add up to the mean over the whole batch, and so do their gradients. */
static void *work(void *arg) {
    job *j = arg;
    sg_ctx *ctx = j->ctx;
    sg_tensor *x = sg_from_data(ctx, SG_F64, SG_SHAPE(j->rows, T, I), j->x + j->row0 * T * I);
    sg_tensor *y = sg_from_data(ctx, SG_F64, SG_SHAPE(j->rows, 1), j->y + j->row0);
    sg_lstm_output out;
    j->rc = sg_lstm_forward(ctx, j->lstm, x, NULL, NULL, &out);
    sg_tensor *loss = sg_scale(ctx, sg_mse_loss(ctx, sg_dense_forward(ctx, j->head, out.y), y),
                               (double)j->rows / B);
    if (j->rc || sg_backward(ctx, loss, NULL))
        j->rc = -1;
    return NULL;
}

START_TEST(test_two_workspaces_one_store) {
    sg_ctx *ctx = sg_ctx_new(0);
    sg_store *store = sg_store_new();
    sg_rng rng;
    sg_rng_seed(&rng, 11);
    sg_lstm_options o = sg_lstm_defaults(I, H);
    o.dtype = SG_F64;
    sg_lstm *lstm = sg_lstm_new(ctx, store, _i ? SG_LSTM_GATES : SG_LSTM_FUSED, &o, NULL, &rng);
    sg_dense *head = sg_dense_new(ctx, store, SG_F64, H, 1, true, SG_ACT_LINEAR, NULL, &rng);
    ck_assert_msg(lstm && head, "%s", sg_ctx_error(ctx));
    double x[B * T * I], y[B];
    for (int i = 0; i < B * T * I; i++)
        x[i] = sg_rng_normal(&rng);
    for (int i = 0; i < B; i++)
        y[i] = sg_rng_normal(&rng);

    /* one workspace, the whole batch, into the store's gradient slab */
    job all = {ctx, lstm, head, x, y, 0, B, 0};
    sg_store_zero_grad(store);
    work(&all);
    ck_assert_msg(all.rc == 0, "%s", sg_ctx_error(ctx));
    int64_t len = sg_store_slab_len(store);
    double *want = malloc((size_t)len * sizeof *want);
    memcpy(want, sg_store_grads(store), (size_t)len * sizeof *want);
    sg_store_zero_grad(store);

    /* two workspaces with private slabs, at once, then reduced in order */
    job half[2];
    pthread_t th[2];
    sg_ctx *ws[2];
    for (int k = 0; k < 2; k++) {
        ws[k] = sg_ctx_new(0);
        ck_assert_int_eq(sg_ctx_private_grads(ws[k], store), 0);
        half[k] = (job){ws[k], lstm, head, x, y, k * (B / 2), B / 2, 0};
    }
    for (int k = 0; k < 2; k++)
        ck_assert_int_eq(pthread_create(&th[k], NULL, work, &half[k]), 0);
    for (int k = 0; k < 2; k++) {
        pthread_join(th[k], NULL);
        ck_assert_msg(half[k].rc == 0, "worker %d: %s", k, sg_ctx_error(ws[k]));
    }
    /* nothing went into the store's slab while they ran */
    for (int64_t i = 0; i < len; i++)
        ck_assert(((const double *)sg_store_grads(store))[i] == 0);
    ck_assert_int_eq(sg_store_reduce(ctx, store, 2, ws), 0);
    const double *got = sg_store_grads(store);
    double worst = 0;
    for (int64_t i = 0; i < len; i++) {
        double rel = fabs(got[i] - want[i]) / fmax(fabs(want[i]), 1e-300);
        if (want[i] == 0 && got[i] == 0)
            rel = 0;
        worst = fmax(worst, rel);
    }
    ck_assert_msg(worst <= 1e-12, "largest relative difference %g", worst);
    /* each parameter's view says the same: the workspace's own, and the store's */
    sg_tensor *k0 = sg_store_find(store, "lstm.kernel");
    if (!k0)
        k0 = sg_store_find(store, "lstm.W_i");
    ck_assert_ptr_nonnull(k0);
    ck_assert_ptr_ne(sg_ctx_grad_of(ws[0], k0), k0->grad);
    ck_assert_ptr_eq(sg_ctx_grad_of(ctx, k0), k0->grad);

    /* errors: a workspace without private gradients, twice private */
    ck_assert_int_eq(sg_store_reduce(ctx, store, 1, &ctx), -1);
    ck_assert_str_eq(sg_ctx_error(ctx),
                     "sg_store_reduce: workspace 0 has no private gradients for this store");
    sg_ctx_clear_error(ctx);
    ck_assert_int_eq(sg_ctx_private_grads(ws[0], store), -1);
    ck_assert_str_eq(sg_ctx_error(ws[0]),
                     "sg_ctx_private_grads: this workspace already has private gradients");

    for (int k = 0; k < 2; k++)
        sg_ctx_free(ws[k]);
    free(want);
    sg_lstm_free(lstm);
    sg_dense_free(head);
    sg_store_free(store);
    sg_ctx_free(ctx);
}
END_TEST

int main(void) {
    const ck_tcase tcases[] = {
        {"store", 0, {{test_two_workspaces_one_store, 2} /* fused, gates */}},
    };
    return CK_RUN("threads", tcases, NULL, NULL);
}
