/* Data-parallel training: the API of dist.h over MPI, or, built without MPI (SG_HAVE_MPI
 * 0), the same API as one rank of one. The MPI calls are all in the small wrappers of the
 * first section; everything above them (the model check, the buckets, the overlap with
 * backward) is the same code in both builds. */
#define _POSIX_C_SOURCE 200809L
#include "dist.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#if SG_HAVE_MPI
#include <mpi.h>
#endif

/* ---- the MPI layer ---------------------------------------------------------------------
 * Each wrapper returns 0 or -1 with an error in ctx naming the call and MPI's message. */
static int g_rank = 0, g_size = 1;
static bool g_started; /* we called MPI_Init_thread, so we finalize */

bool sg_dist_available(void) { return SG_HAVE_MPI; }
int sg_dist_rank(void) { return g_rank; }
int sg_dist_size(void) { return g_size; }

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

#if SG_HAVE_MPI
static int mpi_fail(sg_ctx *ctx, const char *fn, const char *call, int code) {
    char msg[MPI_MAX_ERROR_STRING];
    int len = 0;
    if (MPI_Error_string(code, msg, &len) != MPI_SUCCESS)
        snprintf(msg, sizeof msg, "error %d", code);
    sg_error(ctx, "%s: %s failed on rank %d: %s", fn, call, g_rank, msg);
    return -1;
}
#define MPI_CHECK(ctx, fn, call)                                                                   \
    do {                                                                                           \
        int rc_ = (call);                                                                          \
        if (rc_ != MPI_SUCCESS)                                                                    \
            return mpi_fail(ctx, fn, #call, rc_);                                                  \
    } while (0)

static MPI_Datatype mpi_type(sg_dtype dt) { return dt == SG_F32 ? MPI_FLOAT : MPI_DOUBLE; }
#endif

/* Started by an MPI launcher (mpirun, mpiexec, srun): they set these in every process. */
static const char *launcher_var(void) {
    static const char *const vars[] = {"OMPI_COMM_WORLD_SIZE", "PMI_SIZE", "PMIX_RANK"};
    for (size_t i = 0; i < sizeof vars / sizeof *vars; i++)
        if (getenv(vars[i]))
            return vars[i];
    return NULL;
}

int sg_dist_init(int *argc, char ***argv) {
#if SG_HAVE_MPI
    int inited = 0;
    MPI_Initialized(&inited);
    /* A program started without a launcher is one rank: MPI is not started at all (no
     * start-up time, nothing of Open MPI's in the process). */
    if (!inited && !launcher_var())
        return 0;
    if (!inited) {
        int provided;
        if (MPI_Init_thread(argc, argv, MPI_THREAD_FUNNELED, &provided) != MPI_SUCCESS) {
            fprintf(stderr, "sg_dist_init: MPI_Init_thread failed\n");
            return -1;
        }
        g_started = true;
    }
    MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_RETURN);
    MPI_Comm_rank(MPI_COMM_WORLD, &g_rank);
    MPI_Comm_size(MPI_COMM_WORLD, &g_size);
    return 0;
#else
    (void)argc;
    (void)argv;
    static const char *const sizes[] = {"OMPI_COMM_WORLD_SIZE", "PMI_SIZE"};
    for (size_t i = 0; i < sizeof sizes / sizeof *sizes; i++) {
        const char *v = getenv(sizes[i]);
        if (v && atoi(v) > 1) {
            fprintf(stderr,
                    "sg_dist_init: started by mpirun with %s=%s, but seqgrad was built without "
                    "MPI (install libopenmpi-dev and reconfigure with -Dmpi=enabled)\n",
                    sizes[i], v);
            return -1;
        }
    }
    (void)launcher_var;
    return 0;
#endif
}

void sg_dist_finalize(void) {
#if SG_HAVE_MPI
    int fin = 0;
    MPI_Finalized(&fin);
    if (g_started && !fin)
        MPI_Finalize();
#endif
    g_started = false;
}

_Noreturn void sg_dist_abort(int code) {
#if SG_HAVE_MPI
    int inited = 0;
    MPI_Initialized(&inited);
    if (inited) {
        fflush(stdout);
        fflush(stderr);
        MPI_Abort(MPI_COMM_WORLD, code);
    }
#endif
    exit(code);
}

bool sg_dist_all_ok(bool ok) {
#if SG_HAVE_MPI
    if (g_size > 1) {
        int mine = ok, all = 0;
        if (MPI_Allreduce(&mine, &all, 1, MPI_INT, MPI_LAND, MPI_COMM_WORLD) != MPI_SUCCESS)
            return false;
        return all != 0;
    }
#endif
    return ok;
}

int sg_dist_sum(sg_ctx *ctx, double *v, int n) {
    if (!ctx || !v || n < 0)
        return -1;
#if SG_HAVE_MPI
    if (g_size > 1 && n > 0)
        MPI_CHECK(ctx, "sg_dist_sum",
                  MPI_Allreduce(MPI_IN_PLACE, v, n, MPI_DOUBLE, MPI_SUM, MPI_COMM_WORLD));
#endif
    return 0;
}

int sg_dist_broadcast(sg_ctx *ctx, void *buf, size_t n) {
    if (!ctx || (!buf && n))
        return -1;
#if SG_HAVE_MPI
    /* MPI counts are ints: broadcast in pieces of at most 1 GiB. */
    for (size_t off = 0; g_size > 1 && off < n;) {
        size_t k = n - off < ((size_t)1 << 30) ? n - off : (size_t)1 << 30;
        MPI_CHECK(ctx, "sg_dist_broadcast",
                  MPI_Bcast((char *)buf + off, (int)k, MPI_BYTE, 0, MPI_COMM_WORLD));
        off += k;
    }
#endif
    return 0;
}

int sg_dist_allgather(sg_ctx *ctx, const void *mine, size_t n, void *all) {
    if (!ctx || (n && (!mine || !all)))
        return -1;
#if SG_HAVE_MPI
    if (g_size > 1) {
        if (n > INT32_MAX)
            return sg_error(ctx, "sg_dist_allgather: %zu bytes, more than MPI counts", n), -1;
        int *counts = sg_calloc((size_t)g_size * 2, sizeof *counts), mine_n = (int)n;
        if (!counts)
            return sg_error(ctx, "sg_dist_allgather: out of memory"), -1;
        int *displs = counts + g_size,
            rc = MPI_Allgather(&mine_n, 1, MPI_INT, counts, 1, MPI_INT, MPI_COMM_WORLD);
        for (int r = 0, at = 0; r < g_size; at += counts[r++])
            displs[r] = at;
        if (rc == MPI_SUCCESS)
            rc = MPI_Allgatherv(mine, mine_n, MPI_BYTE, all, counts, displs, MPI_BYTE,
                                MPI_COMM_WORLD);
        sg_free(counts);
        if (rc != MPI_SUCCESS)
            return mpi_fail(ctx, "sg_dist_allgather", "MPI_Allgatherv", rc);
        return 0;
    }
#endif
    if (n)
        memmove(all, mine, n);
    return 0;
}

/* ---- the model check ---------------------------------------------------------------- */

/* "name dtype (shape)" of parameter i, or "(none)" past the end. */
static void describe(const sg_store *s, int i, char *buf, size_t n) {
    if (i >= sg_store_size(s)) {
        snprintf(buf, n, "(none)");
        return;
    }
    const sg_tensor *p = sg_store_at(s, i);
    char shp[96];
    snprintf(buf, n, "%s %s %s", sg_store_name_at(s, i), sg_dtype_name(p->dtype),
             sg_shape_str(p->ndim, p->shape, shp, sizeof shp));
}

int sg_dist_check_store(sg_ctx *ctx, const sg_store *s) {
    if (!ctx)
        return -1;
    if (!s)
        return sg_error(ctx, "sg_dist_check_store: store is NULL"), -1;
    enum { LINE = 192 };
    /* Rank 0's descriptions, one fixed-width line per parameter, go to every rank; each
     * rank finds its first difference; the lowest (parameter, rank) one is reported. */
    int n0 = sg_store_size(s);
    if (sg_dist_broadcast(ctx, &n0, sizeof n0))
        return -1;
    int n = sg_store_size(s) > n0 ? sg_store_size(s) : n0;
    char *ref = sg_calloc((size_t)(n0 > 0 ? n0 : 1), LINE);
    bool ok = ref != NULL;
    if (!sg_dist_all_ok(ok)) {
        sg_free(ref);
        return sg_error(ctx, "sg_dist_check_store: out of memory"), -1;
    }
    for (int i = 0; g_rank == 0 && i < n0; i++)
        describe(s, i, ref + (size_t)i * LINE, LINE);
    if (sg_dist_broadcast(ctx, ref, (size_t)n0 * LINE)) {
        sg_free(ref);
        return -1;
    }
    int first = INT32_MAX;
    char mine[LINE], msg[2 * LINE + 96] = "";
    for (int i = 0; i < n && first == INT32_MAX; i++) {
        describe(s, i, mine, sizeof mine);
        const char *theirs = i < n0 ? ref + (size_t)i * LINE : "(none)";
        if (strcmp(mine, theirs)) {
            first = i;
            snprintf(msg, sizeof msg, "rank %d's parameter %d is %s; rank 0's is %s", g_rank, i,
                     mine, theirs);
        }
    }
    sg_free(ref);
#if SG_HAVE_MPI
    if (g_size > 1) {
        int in[2] = {first, g_rank}, out[2];
        MPI_CHECK(ctx, "sg_dist_check_store",
                  MPI_Allreduce(in, out, 1, MPI_2INT, MPI_MINLOC, MPI_COMM_WORLD));
        if (out[0] == INT32_MAX)
            return 0;
        MPI_CHECK(ctx, "sg_dist_check_store",
                  MPI_Bcast(msg, (int)sizeof msg, MPI_CHAR, out[1], MPI_COMM_WORLD));
        first = out[0];
    }
#endif
    if (first == INT32_MAX)
        return 0;
    sg_error(ctx, "sg_dist_check_store: %s", msg);
    return -1;
}

int sg_dist_broadcast_store(sg_ctx *ctx, sg_store *s) {
    if (!ctx)
        return -1;
    if (!s)
        return sg_error(ctx, "sg_dist_broadcast_store: store is NULL"), -1;
    size_t n = (size_t)sg_store_slab_len(s) * sg_dtype_size(sg_store_dtype(s));
    return sg_dist_broadcast(ctx, sg_store_values(s), n);
}

int sg_dist_broadcast_list(sg_ctx *ctx, const sg_param_list *list) {
    if (!ctx)
        return -1;
    if (!list)
        return sg_error(ctx, "sg_dist_broadcast_list: list is NULL"), -1;
    for (int i = 0; i < list->n; i++) {
        sg_tensor *t = list->items[i].tensor;
        if (!sg_is_contiguous(t))
            return sg_error(ctx, "sg_dist_broadcast_list: %s is not contiguous",
                            list->items[i].name),
                   -1;
        if (sg_dist_broadcast(ctx, sg_data(t), (size_t)sg_numel(t) * sg_dtype_size(t->dtype)))
            return -1;
    }
    return 0;
}

/* ---- buckets -------------------------------------------------------------------------- */

typedef struct {
    int64_t off, len; /* elements of the gradient slab: [off, off + len) */
    int pending;      /* parameters whose gradient is not final yet in this step */
    int nparams;
    bool launched;
} bucket;

struct sg_dist_reducer {
    sg_store *store;
    sg_ctx *ctx;
    int nparams, nb;
    bucket *b;
    int *bucket_of; /* store index -> bucket */
    int next;       /* the next bucket to launch: launches go in bucket order on every rank */
    double weight;
    bool failed; /* an MPI call failed in this step (reported after the walk) */
#if SG_HAVE_MPI
    MPI_Request *req;
#endif
    sg_dist_stats st;
};

sg_dist_reducer *sg_dist_reducer_new(sg_ctx *ctx, sg_store *s, size_t bucket_bytes) {
    if (!ctx)
        return NULL;
    if (!s || sg_store_size(s) == 0) {
        sg_error(ctx, "sg_dist_reducer_new: the store has no parameters");
        return NULL;
    }
    if (!bucket_bytes)
        bucket_bytes = (size_t)1 << 20;
    sg_dist_reducer *r = sg_calloc(1, sizeof *r);
    int n = sg_store_size(s);
    if (r) {
        r->store = s;
        r->nparams = n;
        r->b = sg_calloc((size_t)n, sizeof *r->b);
        r->bucket_of = sg_calloc((size_t)n, sizeof *r->bucket_of);
#if SG_HAVE_MPI
        r->req = sg_calloc((size_t)n, sizeof *r->req);
#endif
    }
    if (!r || !r->b || !r->bucket_of
#if SG_HAVE_MPI
        || !r->req
#endif
    ) {
        sg_dist_reducer_free(r);
        sg_error(ctx, "sg_dist_reducer_new: out of memory");
        return NULL;
    }
    /* From the last parameter back: the head nearest the loss finishes first. Parameters
     * are consecutive in the slab, so a bucket of neighbours is one contiguous range (with
     * the zero alignment gaps between them). */
    size_t es = sg_dtype_size(sg_store_dtype(s));
    const char *slab = sg_store_grads(s);
    for (int i = n - 1; i >= 0; i--) {
        const sg_tensor *g = sg_store_at(s, i)->grad;
        int64_t off = (int64_t)(((const char *)sg_data(g) - slab) / (ptrdiff_t)es);
        int64_t end = off + sg_numel(g);
        bucket *cur = r->nb ? &r->b[r->nb - 1] : NULL;
        if (!cur || (size_t)cur->len * es >= bucket_bytes) {
            cur = &r->b[r->nb++];
            cur->off = off;
            cur->len = end - off;
        } else { /* extend downwards to this parameter */
            cur->len += cur->off - off;
            cur->off = off;
        }
        cur->nparams++;
        r->bucket_of[i] = r->nb - 1;
    }
    r->st.buckets = r->nb;
    r->st.bytes = sg_store_slab_len(s) * (int64_t)es;
    return r;
}

void sg_dist_reducer_free(sg_dist_reducer *r) {
    if (!r)
        return;
    sg_free(r->b);
    sg_free(r->bucket_of);
#if SG_HAVE_MPI
    sg_free(r->req);
#endif
    sg_free(r);
}

sg_dist_stats sg_dist_reducer_stats(const sg_dist_reducer *r) {
    return r ? r->st : (sg_dist_stats){0};
}

void sg_dist_reducer_reset_stats(sg_dist_reducer *r) {
    if (r)
        r->st = (sg_dist_stats){.buckets = r->nb, .bytes = r->st.bytes};
}

/* Scale bucket k by the rank's weight and start its sum over the ranks. */
static void launch(sg_dist_reducer *r, int k) {
    bucket *b = &r->b[k];
    sg_dtype dt = sg_store_dtype(r->store);
    void *base = sg_store_grads(r->store);
    if (r->weight != 1.0) {
        if (dt == SG_F32) {
            float *g = (float *)base + b->off, w = (float)r->weight;
            for (int64_t i = 0; i < b->len; i++)
                g[i] *= w;
        } else {
            double *g = (double *)base + b->off;
            for (int64_t i = 0; i < b->len; i++)
                g[i] *= r->weight;
        }
    }
    b->launched = true;
#if SG_HAVE_MPI
    if (g_size > 1) {
        void *p = (char *)base + (size_t)b->off * sg_dtype_size(dt);
        int rc = MPI_Iallreduce(MPI_IN_PLACE, p, (int)b->len, mpi_type(dt), MPI_SUM, MPI_COMM_WORLD,
                                &r->req[k]);
        if (rc != MPI_SUCCESS && !r->failed) {
            r->failed = true;
            mpi_fail(r->ctx, "sg_dist_backward", "MPI_Iallreduce", rc);
        }
    }
#endif
}

/* Launch, in bucket order, every bucket from r->next on whose gradients are all final. */
static void launch_ready(sg_dist_reducer *r, bool all) {
    while (r->next < r->nb && (all || r->b[r->next].pending == 0))
        launch(r, r->next++);
#if SG_HAVE_MPI
    /* Open MPI progresses non-blocking collectives only inside MPI calls: poke it. */
    if (g_size > 1 && r->next > 0 && !all) {
        int done;
        MPI_Testall(r->next, r->req, &done, MPI_STATUSES_IGNORE);
    }
#endif
}

static void on_ready(void *user, sg_tensor *p) {
    sg_dist_reducer *r = user;
    int i = 0;
    while (i < r->nparams && sg_store_at(r->store, i) != p)
        i++;
    if (i == r->nparams) /* not one of this store's */
        return;
    if (--r->b[r->bucket_of[i]].pending == 0) {
        int before = r->next;
        launch_ready(r, false);
        r->st.early_launches += r->next - before;
    }
}

int sg_dist_backward(sg_ctx *ctx, sg_dist_reducer *r, sg_tensor *loss, double weight) {
    if (!ctx)
        return -1;
    if (!r) {
        sg_error(ctx, "sg_dist_backward: reducer is NULL");
        return -1;
    }
    if (!(weight >= 0) || weight > 1) {
        sg_error(ctx, "sg_dist_backward: weight = %g outside [0, 1]", weight);
        return -1;
    }
    if (sg_ctx_grad_of(ctx, sg_store_at(r->store, 0)) != sg_store_at(r->store, 0)->grad) {
        sg_error(ctx, "sg_dist_backward: the workspace has private gradients; reduce them "
                      "into the store first (sg_store_reduce) or use one workspace per rank");
        return -1;
    }
    r->ctx = ctx;
    r->weight = weight;
    r->failed = false;
    r->next = 0;
    for (int k = 0; k < r->nb; k++) {
        r->b[k].pending = r->b[k].nparams;
        r->b[k].launched = false;
    }
    /* One rank: nothing to sum and nothing to overlap, so plain backward: no gradient-ready
     * tracking (a hash table of parameter uses built and walked every step) and no clock; on a
     * small model those cost as much as a few ops. */
    const bool many = g_size > 1;
    sg_backward_options o = {.grad_ready = on_ready, .user = r};
    double t0 = many ? now() : 0;
    /* Even when backward fails here, every bucket is launched below: the other ranks are
     * waiting for this one's part of each sum. */
    int rc = loss ? sg_backward_ex(ctx, loss, NULL, many ? &o : NULL)
                  : (sg_error(ctx, "sg_dist_backward: "
                                   "loss is NULL"),
                     -1);
    double t1 = many ? now() : 0;
    launch_ready(r, true);
#if SG_HAVE_MPI
    if (many) {
        int wrc = MPI_Waitall(r->nb, r->req, MPI_STATUSES_IGNORE);
        if (wrc != MPI_SUCCESS && !r->failed) {
            r->failed = true;
            mpi_fail(ctx, "sg_dist_backward", "MPI_Waitall", wrc);
        }
    }
#endif
    double t2 = many ? now() : 0;
    r->st.steps++;
    r->st.backward_s += t1 - t0;
    r->st.wait_s += t2 - t1;
    return rc || r->failed ? -1 : 0;
}
