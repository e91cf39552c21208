/* Tokenizer benchmarks; included by tools/bench.c.

     arwkv-bench tokenizer [--tokenizer PATH] [--runs N]

   Load time of tokenizer.json, then single-thread encode throughput (MB of UTF-8 input per second,
   best of N runs, default 3; in wall time, and in CPU time of the process, the fairer figure on a
   busy machine) on three texts found on any Debian machine:
     code       the CPython standard library: every .py file of /usr/lib/python3.X, concatenated
     prose      tinyshakespeare ($ARWKV_SHARED or ../shared, data/tinyshakespeare.txt)
     non-Latin  the translated man pages (ru uk ja ko zh_CN zh_TW) under /usr/share/man, gunzipped
   tools/bench_tokenizer_hf.py measures Hugging Face tokenizers on the same texts. Goal: 10 MB/s. */
#include <glob.h>

/* POSIX, hidden by -std=c11: declared here for gunzipping the man pages through gzip(1) */
FILE *popen(const char *command, const char *mode);
int pclose(FILE *stream);

typedef struct bench_text {
    char *data;
    size_t len, cap;
} bench_text;

static void bench_text_add(bench_text *t, const char *p, size_t n) {
    if (t->len + n + 1 > t->cap) {
        size_t cap = t->cap ? t->cap : 1 << 20;
        while (cap < t->len + n + 1) cap *= 2;
        char *q = (char *)realloc(t->data, cap);
        if (!q) return;
        t->data = q;
        t->cap = cap;
    }
    memcpy(t->data + t->len, p, n);
    t->len += n;
}

/* Append every file matching pattern (sorted), through `filter` (a shell command) if not NULL. */
static void bench_text_glob(bench_text *t, const char *pattern, const char *filter) {
    glob_t g;
    if (glob(pattern, 0, NULL, &g) != 0) return;
    char buf[1 << 16];
    for (size_t i = 0; i < g.gl_pathc; i++) {
        char cmd[4200];
        FILE *f;
        if (filter) {
            snprintf(cmd, sizeof cmd, "%s '%s'", filter, g.gl_pathv[i]);
            f = popen(cmd, "r");
        } else {
            f = fopen(g.gl_pathv[i], "rb");
        }
        if (!f) continue;
        size_t n;
        while ((n = fread(buf, 1, sizeof buf, f)) > 0) bench_text_add(t, buf, n);
        if (filter) pclose(f);
        else fclose(f);
    }
    globfree(&g);
}

static int bench_tokenizer(int argc, char **argv) {
    const char *path = "models/qwen2-code-tiny/tokenizer.json";
    int runs = 3;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--tokenizer") == 0 && i + 1 < argc) path = argv[++i];
        else if (strcmp(argv[i], "--runs") == 0 && i + 1 < argc) runs = bench_int_arg(argc, argv, ++i, "--runs", runs);
        else {
            fprintf(stderr, "usage: arwkv-bench tokenizer [--tokenizer PATH] [--runs N]\n");
            return 2;
        }
    }
    if (runs < 1) runs = 1;
    arwkv_tokenizer *tok = NULL;
    double t0 = bench_now();
    clock_t c0 = clock();
    if (arwkv_tokenizer_load(path, &tok) != ARWKV_OK) {
        fprintf(stderr, "arwkv-bench: %s\n", arwkv_last_error());
        return 1;
    }
    printf("  load %s: %.3f s (cpu %.3f s)\n", path, bench_now() - t0, (double)(clock() - c0) / CLOCKS_PER_SEC);

    const char *shared = getenv("ARWKV_SHARED");
    char shakespeare[1024];
    snprintf(shakespeare, sizeof shakespeare, "%s/data/tinyshakespeare.txt", shared && *shared ? shared : "../shared");
    bench_text texts[3];
    memset(texts, 0, sizeof texts);
    const char *names[3] = {"code", "prose", "non-Latin"};
    const char *sources[3] = {"/usr/lib/python3*/*.py", shakespeare, "/usr/share/man/{ru,uk,ja,ko,zh_CN,zh_TW}/man*/*.gz"};
    bench_text_glob(&texts[0], "/usr/lib/python3*/*.py", NULL);
    bench_text_glob(&texts[1], shakespeare, NULL);
    static const char *const langs[] = {"ru", "uk", "ja", "ko", "zh_CN", "zh_TW"};
    for (int i = 0; i < 6; i++) {
        char pattern[64];
        snprintf(pattern, sizeof pattern, "/usr/share/man/%s/man*/*.gz", langs[i]);
        bench_text_glob(&texts[2], pattern, "gzip -dc");
    }
    printf("  %-10s %10s %10s %9s %9s %9s  %s\n", "text", "bytes", "tokens", "bytes/tok", "MB/s", "cpu MB/s", "source");
    int status = 0;
    for (int k = 0; k < 3; k++) {
        if (!texts[k].len) {
            printf("  %-10s (not found: %s)\n", names[k], sources[k]);
            continue;
        }
        arwkv_tokens ids = {0};
        double best = 1e30, best_cpu = 1e30;
        for (int r = 0; r < runs; r++) {
            ids.n = 0;
            double s = bench_now();
            clock_t c = clock();
            if (arwkv_tokenizer_encode(tok, texts[k].data, texts[k].len, ARWKV_TOKENIZE_SPECIAL, &ids) != ARWKV_OK) {
                fprintf(stderr, "arwkv-bench: %s\n", arwkv_last_error());
                status = 1;
                break;
            }
            double dt = bench_now() - s, dc = (double)(clock() - c) / CLOCKS_PER_SEC;
            if (dt < best) best = dt;
            if (dc < best_cpu) best_cpu = dc;
        }
        printf("  %-10s %10zu %10zu %9.2f %9.1f %9.1f  %s\n", names[k], texts[k].len, ids.n,
               (double)texts[k].len / (double)(ids.n ? ids.n : 1), texts[k].len / 1e6 / best, texts[k].len / 1e6 / best_cpu,
               sources[k]);
        arwkv_tokens_free(&ids);
        free(texts[k].data);
    }
    printf("  (one thread, best of %d runs; goal: at least 10 MB/s)\n", runs);
    arwkv_tokenizer_free(tok);
    return status;
}
