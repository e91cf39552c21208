/* test.h - the tiny test runner every test binary uses (no framework dependency).

   TEST(name) { ... CHECK(cond, "fmt", ...); ... }   defines a test
   RUN(name);                                        runs it inside main()
   return test_summary("area");                      prints "area: P passed, F failed" and the exit code

   A test passes when none of its CHECKs failed; a failed CHECK prints where and why and the test
   goes on, so one run shows every broken assertion. SKIP("why") ends a test that cannot run here
   (missing reference data) and is counted on its own: a skipped test is not a passed test. */
#ifndef ARWKV_TEST_H
#define ARWKV_TEST_H
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int test__passed, test__failed, test__skipped, test__current_failed, test__current_skipped;

#define CHECK(cond, ...)                                                        \
    do {                                                                        \
        if (!(cond)) {                                                          \
            test__current_failed++;                                             \
            printf("    FAILED %s:%d: %s: ", __FILE__, __LINE__, #cond);       \
            printf(__VA_ARGS__);                                                \
            printf("\n");                                                       \
        }                                                                       \
    } while (0)

/* Check an arwkv call succeeded; on failure print the library's error detail. */
#define CHECK_OK(call)                                                                          \
    do {                                                                                        \
        arwkv_result test__r = (call);                                                          \
        CHECK(test__r == ARWKV_OK, "%s: %s", arwkv_result_string(test__r), arwkv_last_error()); \
    } while (0)

#define SKIP(...)                           \
    do {                                    \
        test__current_skipped = 1;          \
        printf("    skipped: ");            \
        printf(__VA_ARGS__);                \
        printf("\n");                       \
        return;                             \
    } while (0)

#define TEST(name) static void name(void)

#define RUN(name)                                                            \
    do {                                                                     \
        test__current_failed = 0;                                            \
        test__current_skipped = 0;                                           \
        fflush(stdout);                                                      \
        name();                                                              \
        if (test__current_failed) {                                          \
            test__failed++;                                                  \
            printf("FAIL %s\n", #name);                                      \
        } else if (test__current_skipped) {                                  \
            test__skipped++;                                                 \
            printf("SKIP %s\n", #name);                                      \
        } else {                                                             \
            test__passed++;                                                  \
            printf("PASS %s\n", #name);                                      \
        }                                                                    \
        fflush(stdout);                                                      \
    } while (0)

#ifdef _DEFAULT_SOURCE /* a test that runs programs defines it (popen) before any include */
#include <sys/wait.h>

/* Commands name the binaries as build/arwkv-*; a build into another directory (make B=build/avx2
   test, as CI does for each instruction path) sets ARWKV_TEST_BUILD, and its binaries run instead. */
static const char *test_binaries_of_this_build(const char *cmd, char *buf, size_t cap) {
    const char *dir = getenv("ARWKV_TEST_BUILD"), *from = "build/arwkv-";
    if (!dir || !*dir || strcmp(dir, "build") == 0) return cmd;
    size_t len = 0, dl = strlen(dir), fl = strlen(from);
    for (const char *c = cmd; *c && len + dl + 16 < cap;) {
        if (strncmp(c, from, fl) == 0 && (c == cmd || c[-1] == ' ' || c[-1] == '"' || c[-1] == '(')) {
            memcpy(buf + len, dir, dl), len += dl;
            buf[len++] = '/';
            c += 6; /* past "build/" */
        } else buf[len++] = *c++;
    }
    buf[len] = 0;
    return buf;
}

/* Run a shell command (its build/arwkv-* binaries those of this build); capture its standard
   output into a fresh string (out may be NULL); return the exit status, 128 if it did not exit. */
static int test_run(const char *cmd_in, char **out) {
    static char rewritten[1 << 16];
    const char *cmd = test_binaries_of_this_build(cmd_in, rewritten, sizeof rewritten);
    FILE *p = popen(cmd, "r");
    size_t cap = 1 << 16, len = 0;
    char *buf = (char *)malloc(cap);
    for (size_t got; p && (got = fread(buf + len, 1, cap - len - 1, p)) > 0;) {
        len += got;
        if (len + 1 == cap) buf = (char *)realloc(buf, cap *= 2);
    }
    buf[len] = 0;
    int st = p ? pclose(p) : -1;
    if (out) *out = buf;
    else free(buf);
    return WIFEXITED(st) ? WEXITSTATUS(st) : 128;
}
#endif

static int test_summary(const char *area) {
    printf("%s: %d passed, %d failed, %d skipped\n", area, test__passed, test__failed, test__skipped);
    return test__failed ? 1 : 0;
}

/* Largest |a-b| / max(|b|, floor) over n values, the measure every numeric test reports. */
static double test_max_rel_err(const float *a, const float *b, size_t n, double floor_) {
    double worst = 0;
    for (size_t i = 0; i < n; i++) {
        double d = fabs((double)a[i] - (double)b[i]);
        double s = fabs((double)b[i]);
        if (s < floor_) s = floor_;
        if (!(d / s <= worst)) worst = d / s; /* NaN counts as the worst */
        if (isnan(a[i]) || isnan(b[i])) worst = INFINITY;
    }
    return worst;
}

/* Relative error of whole tensors: max |a-b| over max |b|. Robust for values that cross zero. */
static double test_rel_err(const float *a, const float *b, size_t n) {
    double md = 0, mb = 0;
    for (size_t i = 0; i < n; i++) {
        double d = fabs((double)a[i] - (double)b[i]);
        if (!(d <= md)) md = d;
        if (fabs((double)b[i]) > mb) mb = fabs((double)b[i]);
    }
    return mb > 0 ? md / mb : md;
}

/* Where the shared reference data lives: $ARWKV_SHARED or ../shared beside the checkout. */
static const char *test_shared_dir(void) {
    const char *s = getenv("ARWKV_SHARED");
    return s && *s ? s : "../shared";
}

static int test_file_exists(const char *path) {
    FILE *f = fopen(path, "rb");
    if (f) fclose(f);
    return f != NULL;
}

/* Deterministic random numbers for tests (xorshift64*). */
static unsigned long long test__rng = 0x9E3779B97F4A7C15ull;
static void test_seed(unsigned long long s) { test__rng = s ? s : 1; }
static double test_uniform(void) { /* [0,1) */
    test__rng ^= test__rng >> 12;
    test__rng ^= test__rng << 25;
    test__rng ^= test__rng >> 27;
    return (double)((test__rng * 2685821657736338717ull) >> 11) / 9007199254740992.0;
}
static float test_randn(void) {
    double u = test_uniform() + 1e-12, v = test_uniform();
    return (float)(sqrt(-2 * log(u)) * cos(6.283185307179586 * v));
}
static void test_fill_randn(float *x, size_t n, float scale) {
    for (size_t i = 0; i < n; i++) x[i] = scale * test_randn();
}
#endif
