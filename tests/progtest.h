/* Shared by the tests that run a built program as a subprocess (test_train.c,
 * test_lstm_run.c, test_rnn_run.c): finding the binary, a scratch directory and paths in it,
 * running it with stdout and stderr captured, reading files, removing the directory.
 * Header-only: each test is one translation unit. Needs _GNU_SOURCE (or POSIX 2008) and
 * <check.h> before it. */
#ifndef SG_TESTS_PROGTEST_H
#define SG_TESTS_PROGTEST_H

#include <dirent.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

static char exe[PATH_MAX + 64];
static char out_text[1 << 16], err_text[1 << 16];

/* For the next runs: a time limit in seconds (0: none; the program is killed by SIGALRM
 * when it runs longer, which fails the test instead of hanging it), and a file to take the
 * program's stdout instead of the scratch file (NULL: the scratch file, read into
 * out_text). */
static unsigned run_time_limit;
static const char *run_stdout_path;

/* The binary: $env_var if set (meson sets it), else ../examples/<name> next to this test's
 * own directory (the build tree's layout). */
static void find_program(const char *env_var, const char *name) {
    const char *env = getenv(env_var);
    if (env && *env) {
        snprintf(exe, sizeof exe, "%s", env);
        return;
    }
    char self[PATH_MAX];
    ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
    if (n <= 0) {
        snprintf(exe, sizeof exe, "../examples/%s", name);
        return;
    }
    self[n] = 0;
    *strrchr(self, '/') = 0;
    snprintf(exe, sizeof exe, "%s/../examples/%s", self, name);
}

/* Whole file into a NUL-terminated buffer (empty when the file is missing). */
static void slurp(const char *path, char *buf, size_t n) {
    FILE *f = fopen(path, "rb");
    size_t k = f ? fread(buf, 1, n - 1, f) : 0;
    buf[k] = 0;
    if (f)
        fclose(f);
}

/* Remove a directory tree (files and directories only: the programs make nothing else). */
static void rm_tree(const char *dir) {
    DIR *d = opendir(dir);
    for (struct dirent *e; d && (e = readdir(d));) {
        if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."))
            continue;
        char p[PATH_MAX];
        snprintf(p, sizeof p, "%s/%s", dir, e->d_name);
        struct stat st;
        if (lstat(p, &st) == 0 && S_ISDIR(st.st_mode))
            rm_tree(p);
        else
            unlink(p);
    }
    if (d)
        closedir(d);
    rmdir(dir);
}

/* The test's scratch directory (each program makes it in its setup and removes it with
 * rm_tree), and tmpdir/name in one of sixteen rotating buffers (several paths are alive at
 * once). */
static char tmpdir[64];

static const char *tp(const char *name) {
    static char p[16][512];
    static int k;
    k = (k + 1) % 16;
    snprintf(p[k], sizeof p[k], "%s/%s", tmpdir, name);
    return p[k];
}

/* Run the program with the NULL-terminated args, its stdout and stderr going through
 * files in `dir`; returns its exit status, with stdout and stderr in out_text / err_text.
 * A run that dies of a signal (a sanitizer abort, or SIGALRM after run_time_limit) fails
 * the test. */
static int run_in(const char *dir, const char *const *args) {
    const char *argv[64];
    int n = 0;
    argv[n++] = exe;
    for (int i = 0; args[i]; i++) {
        ck_assert_int_lt(n, 63);
        argv[n++] = args[i];
    }
    argv[n] = NULL;
    char errp[PATH_MAX], outp[PATH_MAX];
    snprintf(errp, sizeof errp, "%s/stderr.txt", dir);
    snprintf(outp, sizeof outp, "%s/stdout.txt", dir);
    pid_t pid = fork();
    ck_assert_int_ge(pid, 0);
    if (pid == 0) {
        int e = open(errp, O_WRONLY | O_CREAT | O_TRUNC, 0644);
        int o = run_stdout_path ? open(run_stdout_path, O_WRONLY)
                                : open(outp, O_WRONLY | O_CREAT | O_TRUNC, 0644);
        if (e < 0 || o < 0 || dup2(e, 2) < 0 || dup2(o, 1) < 0)
            _exit(126);
        alarm(run_time_limit); /* a pending alarm survives execv */
        execv(exe, (char *const *)argv);
        _exit(127);
    }
    int status;
    ck_assert_int_eq(waitpid(pid, &status, 0), pid);
    slurp(errp, err_text, sizeof err_text);
    slurp(outp, out_text, sizeof out_text);
    unlink(errp);
    unlink(outp);
    ck_assert_msg(status != 127 << 8, "cannot execute %s", exe);
    ck_assert_msg(!WIFSIGNALED(status) || WTERMSIG(status) != SIGALRM,
                  "%s took longer than %u s (killed): %.1000s", exe, run_time_limit, err_text);
    ck_assert_msg(WIFEXITED(status), "%s died (signal %d): %.1000s", exe, WTERMSIG(status),
                  err_text);
    return WEXITSTATUS(status);
}

/* run_in the scratch directory. */
static int run(const char *const *args) { return run_in(tmpdir, args); }

#endif
