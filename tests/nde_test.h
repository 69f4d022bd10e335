/* nde_test.h - the tiny test harness used by tests/test_*.c.
   CHECK(cond), CHECK_NEAR(a, b, atol, rtol), CHECK_STATUS(ctx_or_status...), SKIP(reason).
   nde_test_files_equal(a, b) compares two files byte for byte;
   nde_test_same_file(dir_a, dir_b, name) the file name in two run directories.
   nde_test_remove_dir(dir) deletes a run directory of the example tests (its
   files, then the directory; POSIX).
   nde_test_finish(name) prints "<name>: N passed, N failed" and returns the exit code. */
#ifndef NDE_TEST_H
#define NDE_TEST_H
#include <dirent.h>
#include <math.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

/* Not every test file uses every helper. */
#if defined(__GNUC__) || defined(__clang__)
#define NDE_TEST_FN static __attribute__((unused))
#else
#define NDE_TEST_FN static
#endif

static int nde_test_passed = 0, nde_test_failed = 0, nde_test_skipped = 0;

NDE_TEST_FN void nde_test_check(int ok, const char *expr, const char *file, int line) {
    if (ok) { nde_test_passed++; return; }
    nde_test_failed++;
    fprintf(stderr, "FAIL %s:%d: %s\n", file, line, expr);
}
NDE_TEST_FN void nde_test_check_near(double a, double b, double atol, double rtol, const char *ea, const char *eb,
                                const char *file, int line) {
    double tol = atol + rtol * fabs(b);
    if (fabs(a - b) <= tol) { nde_test_passed++; return; }   /* NaN fails */
    nde_test_failed++;
    fprintf(stderr, "FAIL %s:%d: %s = %.17g vs %s = %.17g (|diff| %.3g > tol %.3g)\n", file, line, ea, a, eb, b,
            fabs(a - b), tol);
}
NDE_TEST_FN void nde_test_check_msg(const char *msg, const char *fragment, const char *file, int line) {
    if (msg && fragment && strstr(msg, fragment)) { nde_test_passed++; return; }
    nde_test_failed++;
    fprintf(stderr, "FAIL %s:%d: message \"%s\" lacks \"%s\"\n", file, line, msg ? msg : "(null)", fragment);
}
#define CHECK(cond) nde_test_check(!!(cond), #cond, __FILE__, __LINE__)
#define CHECK_NEAR(a, b, atol, rtol) nde_test_check_near((double)(a), (double)(b), (atol), (rtol), #a, #b, __FILE__, __LINE__)
#define CHECK_MSG(msg, fragment) nde_test_check_msg((msg), (fragment), __FILE__, __LINE__)
#define SKIP(reason) (nde_test_skipped++, printf("SKIP %s:%d: %s\n", __FILE__, __LINE__, (reason)))

/* 1 if the two files exist and hold the same bytes. */
NDE_TEST_FN int nde_test_files_equal(const char *pa, const char *pb) {
    FILE *fa = fopen(pa, "rb"), *fb = fopen(pb, "rb");
    int same = fa && fb, ca, cb;
    while (same) {
        ca = fgetc(fa); cb = fgetc(fb);
        if (ca != cb) same = 0;
        if (ca == EOF || cb == EOF) break;
    }
    if (fa) fclose(fa);
    if (fb) fclose(fb);
    return same;
}

/* 1 if dir_a/name and dir_b/name exist and hold the same bytes (two runs of
   an example that must end in the same state). */
NDE_TEST_FN int nde_test_same_file(const char *dir_a, const char *dir_b, const char *name) {
    char pa[1024], pb[1024];
    if (snprintf(pa, sizeof pa, "%s/%s", dir_a, name) >= (int)sizeof pa ||
        snprintf(pb, sizeof pb, "%s/%s", dir_b, name) >= (int)sizeof pb)
        return 0;
    return nde_test_files_equal(pa, pb);
}

/* Removes every file directly inside dir, then dir itself (the example tests'
   output directories hold no subdirectories). Missing dir: nothing to do. */
NDE_TEST_FN void nde_test_remove_dir(const char *dir) {
    DIR *d = opendir(dir);
    struct dirent *e;
    char path[1024];
    if (!d) return;
    while ((e = readdir(d)) != NULL) {
        if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..")) continue;
        if (snprintf(path, sizeof path, "%s/%s", dir, e->d_name) < (int)sizeof path) remove(path);
    }
    closedir(d);
    rmdir(dir);
}

NDE_TEST_FN int nde_test_finish(const char *name) {
    if (nde_test_skipped) printf("%s: %d skipped\n", name, nde_test_skipped);
    printf("%s: %d passed, %d failed\n", name, nde_test_passed, nde_test_failed);
    return nde_test_failed ? 1 : 0;
}
#endif
