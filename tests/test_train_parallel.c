/* train with data parallelism. Over threads (parallel/): at a fixed --threads the loss
 * curve is the same bits run to run, and a resumed run continues it bit for bit (with
 * dropout, whose masks each part draws from its own generator); across thread counts the
 * losses agree within float rounding (float64 1e-9). Over processes, under mpirun (dist/):
 * the loss of every step of
 * `mpirun -np N train` equals the single process's with the same global batch (float64
 * within 1e-9 relative, float32 within 1e-4) for N = 2, 3, 4 (oversubscribed) and the toy,
 * text and classify tasks; a resumed run under mpirun is bit-exact; ranks whose models
 * differ, and a rank that fails alone, stop every rank with a message, without hanging.
 * mpirun is $SG_MPIRUN (meson sets it); built without MPI the program says so and exits 77
 * (skipped) for those cases. */
#define _GNU_SOURCE
#include <check.h>
#include <math.h>

#include "cksuite.h"
#include "progtest.h"
#include "seqgrad.h"

static char train_exe[PATH_MAX + 64], mpirun_exe[PATH_MAX + 64];

static void setup(void) {
    snprintf(tmpdir, sizeof tmpdir, "/tmp/sg_train_par_XXXXXX");
    ck_assert_ptr_nonnull(mkdtemp(tmpdir));
    run_time_limit = 120; /* a hang fails the test */
}
static void teardown(void) { rm_tree(tmpdir); }

/* Run train with args, alone (np 0) or under mpirun -np np. The exit status. */
static int train(int np, const char *const *args) {
    const char *argv[64];
    int n = 0;
    char nps[16];
    if (np > 0) {
        snprintf(nps, sizeof nps, "%d", np);
        snprintf(exe, sizeof exe, "%s", mpirun_exe);
        argv[n++] = "--oversubscribe";
        argv[n++] = "-np";
        argv[n++] = nps;
        argv[n++] = train_exe;
    } else {
        snprintf(exe, sizeof exe, "%s", train_exe);
    }
    for (int i = 0; args[i]; i++)
        argv[n++] = args[i];
    argv[n] = NULL;
    return run(argv);
}

/* The loss column of a loss CSV into v (up to n values); the count. */
static int read_losses(const char *path, double *v, int n) {
    FILE *f = fopen(path, "r");
    ck_assert_msg(f != NULL, "no %s", path);
    char line[256];
    int k = 0;
    ck_assert_ptr_nonnull(fgets(line, sizeof line, f)); /* header */
    long long step;
    while (k < n && fgets(line, sizeof line, f) && sscanf(line, "%lld,%lf", &step, &v[k]) == 2)
        k++;
    fclose(f);
    return k;
}

static const char *text_path(void) {
    static char path[PATH_MAX + 32];
    snprintf(path, sizeof path, "%s", tp("text.txt"));
    FILE *f = fopen(path, "w");
    for (int k = 0; f && k < 60; k++)
        fputs("It was the best of times, it was the worst of times; 0123456789.\n", f);
    ck_assert_int_eq(f && fclose(f) == 0, 1);
    return path;
}

/* The tasks both kinds of parallelism are checked on: sine in float64 and float32, text and
 * classify (bidirectional) in float64; their CSV and the tolerance of a loss computed in
 * other slices (relative). Appends case c's options to args[*n]. */
enum { NCASES = 4 };
static const char *const case_csv[NCASES] = {"loss_sine.csv", "loss_sine.csv", "loss_text.csv",
                                             "loss_classify.csv"};
static const double case_tol[NCASES] = {1e-9, 1e-4, 1e-9, 1e-9};
static void case_args(int c, const char **args, int *n) {
    static const char *const opts[NCASES][16] = {
        {"--task", "sine", "--dtype", "f64", "--batch", "7", NULL},
        {"--task", "sine", "--dtype", "f32", "--batch", "7", NULL},
        {"--task", "text", "--dtype", "f64", "--text", "", "--hidden", "16", "--embed", "8",
         "--seq-len", "16", "--batch", "6", NULL},
        {"--task", "classify", "--dtype", "f64", "--hidden", "12", "--batch", "9",
         "--bidirectional", NULL},
    };
    for (int i = 0; opts[c][i]; i++) /* the text, written now, after --text */
        args[(*n)++] = i > 0 && !strcmp(opts[c][i - 1], "--text") ? text_path() : opts[c][i];
}

/* Run train with the arguments (NULL-terminated) plus --out dir, alone; the loss column of
 * its CSV `csv` into v (steps values). */
static void train_losses(const char *const *args, const char *dir, const char *csv, double *v,
                         int steps) {
    const char *all[40];
    int n = 0;
    for (int i = 0; args[i]; i++)
        all[n++] = args[i];
    all[n++] = "--out";
    all[n++] = tp(dir);
    all[n] = NULL;
    ck_assert_msg(train(0, all) == 0, "%s: %s", dir, err_text);
    char path[PATH_MAX + 64];
    snprintf(path, sizeof path, "%s/%s", tp(dir), csv);
    ck_assert_int_eq(read_losses(path, v, steps), steps);
}

/* Threads: sine (float64, float32), text with dropout and recurrent dropout (float64),
 * classify bidirectional (float64). --threads 2 twice: the same bits; --threads 1, 2, 3:
 * equal within rounding (without dropout: with it, the masks depend on the parts). */
START_TEST(test_threads) {
    enum { STEPS = 60 };
    const char *args[40];
    int n = 0;
    case_args(_i, args, &n);
    if (_i == 2) { /* text with dropout: the masks come from each part's generator */
        const char *drop[] = {"--dropout", "0.2", "--recurrent-dropout", "0.1", NULL};
        for (int i = 0; drop[i]; i++)
            args[n++] = drop[i];
    }
    const char *tail[] = {"--steps", "60", "--log-every", "1000", "--threads", "2", NULL};
    for (int i = 0; tail[i]; i++)
        args[n++] = tail[i];
    args[n] = NULL;
    double a[STEPS], b[STEPS], one[STEPS];
    train_losses(args, "a", case_csv[_i], a, STEPS);
    ck_assert_msg(strstr(out_text, " threads=2\n"), "not 2 threads: %s", out_text);
    train_losses(args, "b", case_csv[_i], b, STEPS);
    ck_assert_msg(!memcmp(a, b, sizeof a), "%s: --threads 2 runs differ", args[1]);
    if (_i == 2) /* dropout: other slices, other masks */
        return;
    for (const char *t = "13"; *t; t++) {
        char th[2] = {*t, 0};
        args[n - 1] = th;
        train_losses(args, "one", case_csv[_i], one, STEPS);
        for (int s = 0; s < STEPS; s++)
            ck_assert_msg(fabs(one[s] - a[s]) <= case_tol[_i] * fabs(one[s]),
                          "%s step %d: --threads %s %.17g, --threads 2 %.17g", args[1], s + 1, th,
                          one[s], a[s]);
    }
    /* and the parts are not all the same rows: the 3-thread curve is not the 2-thread one */
    ck_assert(memcmp(a, one, sizeof a) != 0);
}
END_TEST

/* Stop at 30 and resume to 60 with --threads 2: the same losses, bit for bit, as one run
 * (text with dropout: each part's masks are seeded from the run's seed and the step). */
START_TEST(test_threads_resume) {
    enum { STEPS = 60 };
    const char *text = text_path();
    const char *base[] = {"--task",      "text", "--dtype",   "f32", "--text",    text,
                          "--hidden",    "16",   "--embed",   "8",   "--seq-len", "16",
                          "--batch",     "6",    "--dropout", "0.3", "--threads", "2",
                          "--log-every", "1000", NULL};
    const char *args[40];
    int n = 0;
    for (int i = 0; base[i]; i++)
        args[n++] = base[i];
    args[n] = "--steps";
    args[n + 1] = "60";
    args[n + 2] = NULL;
    double full[STEPS], resumed[STEPS];
    train_losses(args, "full", "loss_text.csv", full, STEPS);
    args[n + 1] = "30";
    args[n + 2] = "--save";
    args[n + 3] = tp("ck");
    args[n + 4] = NULL;
    train_losses(args, "part", "loss_text.csv", resumed, 30);
    const char *resume[] = {"--resume", tp("ck"), "--steps", "60", "--threads", "2", NULL};
    train_losses(resume, "part", "loss_text.csv", resumed, STEPS);
    for (int s = 0; s < STEPS; s++)
        ck_assert_msg(full[s] == resumed[s], "step %d: one run %.17g, resumed %.17g", s + 1,
                      full[s], resumed[s]);
}
END_TEST

/* Each task in float64 (and sine in float32): the CSV of one process against -np 2, 3, 4. */
START_TEST(test_equivalence) {
    enum { STEPS = 100 };
    const int c = _i / 3, np = 2 + _i % 3;
    const char *args[32];
    int n = 0;
    case_args(c, args, &n);
    const char *tail[] = {"--steps", "100", "--log-every", "1000", "--out", NULL};
    for (int i = 0; tail[i]; i++)
        args[n++] = tail[i];
    args[n + 1] = NULL;
    args[n] = tp("one");
    ck_assert_msg(train(0, args) == 0, "%s", err_text);
    args[n] = tp("many");
    ck_assert_msg(train(np, args) == 0, "-np %d: %s", np, err_text);
    char a[PATH_MAX + 64], b[PATH_MAX + 64];
    snprintf(a, sizeof a, "%s/%s", tp("one"), case_csv[c]);
    snprintf(b, sizeof b, "%s/%s", tp("many"), case_csv[c]);
    double la[STEPS], lb[STEPS];
    ck_assert_int_eq(read_losses(a, la, STEPS), STEPS);
    ck_assert_int_eq(read_losses(b, lb, STEPS), STEPS);
    for (int s = 0; s < STEPS; s++)
        ck_assert_msg(fabs(la[s] - lb[s]) <= case_tol[c] * fabs(la[s]),
                      "%s -np %d step %d: one process %.17g, %d ranks %.17g", args[1], np, s + 1,
                      la[s], np, lb[s]);
    /* the rank's data were its rows: not every rank's loss is the same (else the test
     * would not tell a split batch from a copied one); only rank 0 printed */
    ck_assert_ptr_nonnull(strstr(out_text, "result: task="));
    ck_assert_ptr_null(strstr(strstr(out_text, "result: task=") + 1, "result: task="));
}
END_TEST

/* Stop at 40, resume under mpirun to 80: the same losses, bit for bit, as one run to 80
 * (text: the carried state of every rank's streams goes through the checkpoint). */
START_TEST(test_resume) {
    const char *text = text_path();
    const char *task = _i == 0 ? "text" : "sine";
    const char *common[] = {"--task", task,          "--dtype", "f32", "--batch",
                            "6",      "--log-every", "1000",    NULL};
    const char *textopt[] = {"--text", text,        "--hidden", "16", "--embed",
                             "8",      "--seq-len", "16",       NULL};
    const char *args[40];
    int n = 0;
    for (int i = 0; common[i]; i++)
        args[n++] = common[i];
    for (int i = 0; _i == 0 && textopt[i]; i++)
        args[n++] = textopt[i];
    const char *full[] = {"--steps", "80", "--out", tp("full"), NULL};
    for (int i = 0; full[i]; i++)
        args[n + i] = full[i];
    args[n + 4] = NULL;
    ck_assert_msg(train(3, args) == 0, "%s", err_text);
    const char *part[] = {"--steps", "40", "--out", tp("part"), "--save", tp("ck"), NULL};
    for (int i = 0; part[i]; i++)
        args[n + i] = part[i];
    args[n + 6] = NULL;
    ck_assert_msg(train(3, args) == 0, "%s", err_text);
    const char *resume[] = {"--resume", tp("ck"),      "--steps", "80", "--out",
                            tp("part"), "--log-every", "1000",    NULL};
    ck_assert_msg(train(3, resume) == 0, "%s", err_text);
    char a[PATH_MAX + 64], b[PATH_MAX + 64];
    snprintf(a, sizeof a, "%s/loss_%s.csv", tp("full"), task);
    snprintf(b, sizeof b, "%s/loss_%s.csv", tp("part"), task);
    static char ta[1 << 16], tb[1 << 16];
    slurp(a, ta, sizeof ta);
    slurp(b, tb, sizeof tb);
    ck_assert_int_gt(strlen(ta), 80 * 4);
    ck_assert_str_eq(ta, tb);
}
END_TEST

/* Models that differ (rank 1 started with another --hidden): every rank exits nonzero and
 * rank 0 names the difference. A rank that fails alone (its --text missing): all stop. */
START_TEST(test_failures) {
    const char *mpmd[] = {
        "--oversubscribe", "-np",   "1",     train_exe, "--hidden", "8",       "--steps",  "5",
        "--out",           tp("o"), ":",     "-np",     "1",        train_exe, "--hidden", "12",
        "--steps",         "5",     "--out", tp("o"),   NULL};
    snprintf(exe, sizeof exe, "%s", mpirun_exe);
    ck_assert_int_ne(run(mpmd), 0);
    ck_assert_msg(strstr(err_text, "train: the ranks' models differ: sg_dist_check_store: rank "
                                   "1's parameter 0 is lstm.kernel float32 (1, 48); rank 0's is "
                                   "lstm.kernel float32 (1, 32)"),
                  "%s", err_text);

    const char *text = text_path();
    const char *alone[] = {"--oversubscribe",
                           "-np",
                           "1",
                           train_exe,
                           "--task",
                           "text",
                           "--text",
                           text,
                           "--steps",
                           "5",
                           "--out",
                           tp("o"),
                           ":",
                           "-np",
                           "1",
                           train_exe,
                           "--task",
                           "text",
                           "--text",
                           tp("missing.txt"),
                           "--steps",
                           "5",
                           "--out",
                           tp("o"),
                           NULL};
    ck_assert_int_ne(run(alone), 0);
    ck_assert_msg(strstr(err_text, "missing.txt"), "%s", err_text);

    const char *missing[] = {"--resume", tp("nothing"), NULL};
    ck_assert_int_ne(train(2, missing), 0);
    ck_assert_msg(strstr(err_text, "train: --resume"), "%s", err_text);

    const char *small[] = {"--batch", "2", "--steps", "5", "--out", tp("o"), NULL};
    ck_assert_int_ne(train(3, small), 0);
    ck_assert_msg(strstr(err_text, "train: --batch 2 is smaller than the 3 ranks"), "%s", err_text);
}
END_TEST

int main(void) {
    find_program("SG_TRAIN", "train");
    snprintf(train_exe, sizeof train_exe, "%s", exe);
    const char *m = getenv("SG_MPIRUN");
    bool mpi = true;
    if (!sg_dist_available()) {
        printf("test_train_parallel: mpirun cases skipped: seqgrad was built without MPI "
               "(libopenmpi-dev)\n");
        mpi = false;
    } else if (!m || !*m || access(m, X_OK) != 0) {
        printf("test_train_parallel: mpirun cases skipped: no mpirun (SG_MPIRUN; Debian: "
               "openmpi-bin)\n");
        mpi = false;
    } else {
        snprintf(mpirun_exe, sizeof mpirun_exe, "%s", m);
    }
    const ck_tcase tcases[] = {
        {"threads", 600, {{test_threads, 4}, {test_threads_resume, 1}}},
        {"mpirun", 600, {{test_equivalence, 12}, {test_resume, 2}, {test_failures, 1}}},
    };
    return ck_run("train_parallel", tcases, mpi ? 2 : 1, setup, teardown);
}
