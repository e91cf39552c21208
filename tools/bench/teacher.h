/* Benchmarks of the teacher area; included by tools/bench.c.

     arwkv-bench matmul [THREADS]   GEMM GFLOP/s on shapes of Qwen2.5-0.5B, against the FMA peak of
                                    the kernels' instruction set (also shows the bf16 dot peak)
     arwkv-bench decode [THREADS]   decode tokens/s of a Qwen2.5-0.5B-shaped model (random bf16
                                    weights), against the memory-bandwidth bound

   Each figure is judged against a bound measured on this machine by the same program: the peak of
   fused multiply-adds by a register-only loop, and the rate at which the same threads read a buffer
   as large as a token's weights. */
#if defined(__AVX2__) || ((defined(__GNUC__) || defined(__clang__)) && defined(__x86_64__))
#include <immintrin.h>
#endif

/* ---- Bounds of this machine -------------------------------------------------------------------- */

/* Three peaks, each by a register-only loop of 12 independent chains (enough in flight to fill both
   vector pipes of a core whose latency is 4 to 6 cycles):
     BENCH_PEAK_KERNELS  fused multiply-adds as wide as this build's kernels use them (arwkv_cpu_kernels():
                         512-bit with AVX-512, 256-bit with AVX2+FMA, scalar fmaf otherwise); every
                         GEMM ratio is against this one, the path the products actually take;
     BENCH_PEAK_FMA512   512-bit FMAs where the CPU has AVX-512F, whatever this build was compiled for
                         (a build for -mavx2 on an AVX-512 machine shows what it leaves unused);
     BENCH_PEAK_DOT_BF16 vdpbf16ps (AVX512_BF16): 16 lanes, each two bf16 products added to an fp32 sum.
   The last two are compiled for their instruction sets with target attributes and run only where
   the CPU reports them. */
enum { BENCH_PEAK_KERNELS, BENCH_PEAK_FMA512, BENCH_PEAK_DOT_BF16 };

typedef struct {
    long iters;
    int kind;
    double sink[1024];
} bench_fma_ctx;

#define BENCH_CHAINS(X) X(0) X(1) X(2) X(3) X(4) X(5) X(6) X(7) X(8) X(9) X(10) X(11)
/* distinct starting values the compiler cannot see, or it would merge equal chains into one */
static volatile float bench_init[12] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12};

#if (defined(__GNUC__) || defined(__clang__)) && defined(__x86_64__)
#define BENCH_X86 1
__attribute__((target("avx512f"))) static double bench_fma512_loop(long iters, double *sink) {
#define BENCH_Z_INIT(i) __m512 a##i = _mm512_set1_ps(bench_init[i]);
#define BENCH_Z_FMA(i) a##i = _mm512_fmadd_ps(a##i, m, c);
#define BENCH_Z_SUM(i) s = _mm512_add_ps(s, a##i);
    BENCH_CHAINS(BENCH_Z_INIT)
    const __m512 m = _mm512_set1_ps(0.999999f), c = _mm512_set1_ps(1e-7f);
    for (long i = 0; i < iters; i++) { BENCH_CHAINS(BENCH_Z_FMA) }
    __m512 s = _mm512_setzero_ps();
    BENCH_CHAINS(BENCH_Z_SUM)
    *sink = _mm512_reduce_add_ps(s);
    return (double)iters * 12 * 16 * 2;
}
__attribute__((target("avx512f,avx512bf16"))) static double bench_dot_bf16_loop(long iters, double *sink) {
#define BENCH_D_DOT(i) a##i = _mm512_dpbf16_ps(a##i, x, y);
    BENCH_CHAINS(BENCH_Z_INIT)
    const __m512bh x = (__m512bh)_mm512_set1_epi16(0x3f80), y = (__m512bh)_mm512_set1_epi16(0x3400); /* 1.0, 2^-23 */
    for (long i = 0; i < iters; i++) { BENCH_CHAINS(BENCH_D_DOT) }
    __m512 s = _mm512_setzero_ps();
    BENCH_CHAINS(BENCH_Z_SUM)
    *sink = _mm512_reduce_add_ps(s);
    return (double)iters * 12 * 32 * 2; /* 32 products and 32 additions per instruction */
}
#endif

/* Whether the CPU running this can do a peak of the given kind. */
static int bench_peak_available(int kind) {
    if (kind == BENCH_PEAK_KERNELS) return 1;
#ifdef BENCH_X86
    __builtin_cpu_init();
    if (kind == BENCH_PEAK_FMA512) return __builtin_cpu_supports("avx512f") != 0;
    return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bf16");
#else
    return 0;
#endif
}

/* The loop of one kind; returns flops done. */
static double bench_fma_loop(int kind, long iters, double *sink) {
#ifdef BENCH_X86
    if (kind == BENCH_PEAK_FMA512) return bench_fma512_loop(iters, sink);
    if (kind == BENCH_PEAK_DOT_BF16) return bench_dot_bf16_loop(iters, sink);
#endif
#if defined(ARWKV__AVX512)
    return bench_fma512_loop(iters, sink);
#elif defined(ARWKV__AVX2)
#define BENCH_Y_INIT(i) __m256 a##i = _mm256_set1_ps(bench_init[i]);
#define BENCH_Y_FMA(i) a##i = _mm256_fmadd_ps(a##i, m, c);
#define BENCH_Y_SUM(i) s = _mm256_add_ps(s, a##i);
    BENCH_CHAINS(BENCH_Y_INIT)
    const __m256 m = _mm256_set1_ps(0.999999f), c = _mm256_set1_ps(1e-7f);
    for (long i = 0; i < iters; i++) { BENCH_CHAINS(BENCH_Y_FMA) }
    __m256 s = _mm256_setzero_ps();
    BENCH_CHAINS(BENCH_Y_SUM)
    float out[8];
    _mm256_storeu_ps(out, s);
    *sink = out[0] + out[7];
    return (double)iters * 12 * 8 * 2;
#else /* no vector FMA: the peak of the scalar code the generic GEMM runs (fmaf, as its kernel) */
    float a[12];
    for (int j = 0; j < 12; j++) a[j] = bench_init[j];
    for (long i = 0; i < iters; i++)
        for (int j = 0; j < 12; j++) a[j] = fmaf(a[j], 0.999999f, 1e-7f);
    *sink = a[0] + a[11];
    return (double)iters * 12 * 2;
#endif
}

static void bench_fma_task(void *ctx, int task, int thread) {
    (void)thread;
    bench_fma_ctx *c = (bench_fma_ctx *)ctx;
    bench_fma_loop(c->kind, c->iters, &c->sink[task]);
}

/* On a shared machine the wall clock also counts the time other processes held our cores. So each
   figure is taken twice: by the wall clock (the best of many short runs, which catches quiet
   moments) and by the CPU time the process used (clock(): all its threads), which shows the speed
   of the code itself. On a quiet machine the two agree. The CPU time is the mean over the runs, not
   the least: the kernel brings a running thread's time up to date only at its scheduler tick, and
   pool workers now stay running between loops (they spin before they sleep), so one short run's
   CPU time can miss part of theirs. */
typedef struct {
    double wall, cpu; /* seconds: the best wall-clock time of a run, the mean CPU time of a run (all threads) */
    double cpu_sum;
    int runs;
} bench_time;

static double bench_cpu_now(void) { return (double)clock() / CLOCKS_PER_SEC; }

static void bench_time_add(bench_time *best, double wall, double cpu) {
    if (wall < best->wall) best->wall = wall;
    best->cpu_sum += cpu, best->runs++;
    best->cpu = best->cpu_sum > 0 ? best->cpu_sum / best->runs : 1e30;
}

/* A peak (see above) with every thread of pool busy (GFLOP/s, wall clock and CPU time): the best of
   many short runs of ~10 ms, as long as one matrix product. */
static bench_time bench_fma_peak(arwkv_pool *pool, int kind) {
    bench_fma_ctx c;
    memset(&c, 0, sizeof c);
    c.kind = kind;
    int n = arwkv_pool_size(pool);
    double flops_per_task = bench_fma_loop(kind, 1, &c.sink[0]);
    c.iters = 1000;
    for (;;) { /* grow the run until it takes ~10 ms */
        double t0 = bench_now();
        arwkv_pool_run(pool, n, bench_fma_task, &c);
        double dt = bench_now() - t0;
        if (dt > 0.01) break;
        c.iters *= dt < 0.001 ? 10 : 2;
    }
    bench_time best = {1e30, 1e30, 0, 0};
    for (int rep = 0; rep < 40; rep++) {
        double t0 = bench_now(), c0 = bench_cpu_now();
        arwkv_pool_run(pool, n, bench_fma_task, &c);
        bench_time_add(&best, bench_now() - t0, bench_cpu_now() - c0);
    }
    double flops = flops_per_task * (double)c.iters * n * 1e-9;
    bench_time g = {flops / best.wall, flops / best.cpu, 0, 0}; /* the second: per core, whatever n */
    return g;
}

/* Ascending, in place (a handful of timings). */
static void bench_sort(double *v, int n) {
    for (int i = 1; i < n; i++)
        for (int j = i; j > 0 && v[j] < v[j - 1]; j--) {
            double x = v[j];
            v[j] = v[j - 1], v[j - 1] = x;
        }
}

typedef struct {
    char *src, *dst;
    size_t bytes;
} bench_copy_ctx;

static void bench_copy_task(void *ctx, int task, int thread) {
    (void)thread;
    bench_copy_ctx *c = (bench_copy_ctx *)ctx;
    memcpy(c[task].dst, c[task].src, c[task].bytes);
}

/* Copy bandwidth in GB/s (bytes read + bytes written, per second) with every thread of pool copying
   its own part of the buffers; information only, beside the read bound below. */
static double bench_copy_bandwidth(arwkv_pool *pool, size_t total_bytes) {
    char *src = (char *)malloc(total_bytes), *dst = (char *)malloc(total_bytes);
    if (!src || !dst) {
        free(src), free(dst);
        return 0;
    }
    memset(src, 1, total_bytes);
    memset(dst, 2, total_bytes);
    int n = arwkv_pool_size(pool);
    bench_copy_ctx c[1024];
    size_t part = total_bytes / (size_t)n / 64 * 64;
    for (int i = 0; i < n; i++) c[i].src = src + (size_t)i * part, c[i].dst = dst + (size_t)i * part, c[i].bytes = part;
    double best = 0;
    for (int rep = 0; rep < 10; rep++) {
        double t0 = bench_now();
        arwkv_pool_run(pool, n, bench_copy_task, c);
        double dt = bench_now() - t0;
        double gbs = 2.0 * (double)part * n / dt * 1e-9;
        if (rep > 0 && gbs > best) best = gbs; /* the first run pays the page faults */
    }
    free(src), free(dst);
    return best;
}

/* The read bound of a decode step: how fast these threads read a buffer as large as the weights of
   one token (so the same caches, or none, serve it), each thread its own part, in `streams`
   interleaved runs (a matrix-vector kernel reads several weight rows at once; some CPUs keep more
   requests in flight over several runs, others prefer one). 64-byte vector loads XORed together:
   nothing but reading. */
typedef uint64_t bench_line __attribute__((vector_size(64)));
typedef struct {
    const unsigned char *base;
    size_t bytes;
    int streams;
    uint64_t sink;
} bench_read_ctx;

static void bench_read_task(void *ctx, int task, int thread) {
    (void)thread;
    bench_read_ctx *c = (bench_read_ctx *)ctx + task;
    size_t piece = c->bytes / (size_t)c->streams / 64 * 64;
    bench_line acc[8];
    memset(acc, 0, sizeof acc);
    for (size_t off = 0; off < piece; off += 64)
        for (int s = 0; s < c->streams; s++) {
            bench_line v;
            memcpy(&v, c->base + (size_t)s * piece + off, 64);
            acc[s] ^= v;
        }
    uint64_t x = 0;
    for (int s = 0; s < 8; s++)
        for (int l = 0; l < 8; l++) x ^= acc[s][l];
    c->sink = x;
}

typedef struct {
    arwkv_pool *pool;
    unsigned char *buf;
    int n; /* threads, one part each */
    size_t part;
    uint64_t sink;
    bench_read_ctx c[256];
} bench_reader;

static int bench_reader_init(bench_reader *r, arwkv_pool *pool, size_t total_bytes) {
    memset(r, 0, sizeof *r);
    r->pool = pool;
    r->n = arwkv_pool_size(pool) < 256 ? arwkv_pool_size(pool) : 256;
    r->part = total_bytes / (size_t)r->n / 512 * 512; /* whole lines in each of up to 8 runs */
    r->buf = (unsigned char *)malloc(r->part * (size_t)r->n);
    if (r->buf) memset(r->buf, 3, r->part * (size_t)r->n); /* the page faults, before any timing */
    return r->buf != NULL;
}

/* One pass over the buffer; returns GB/s. */
static double bench_read_pass(bench_reader *r, int streams) {
    for (int i = 0; i < r->n; i++) r->c[i].base = r->buf + (size_t)i * r->part, r->c[i].bytes = r->part, r->c[i].streams = streams;
    double t0 = bench_now();
    arwkv_pool_run(r->pool, r->n, bench_read_task, r->c);
    double dt = bench_now() - t0;
    for (int i = 0; i < r->n; i++) r->sink ^= r->c[i].sink;
    return (double)r->part * r->n / dt * 1e-9;
}

static void bench_reader_free(bench_reader *r) {
    if (r->sink == 1) printf(" "); /* the XORs are used: the reads stay */
    free(r->buf);
}

static int bench_threads_arg(int argc, char **argv) { return bench_int_arg(argc, argv, 1, "THREADS", 0); }

/* The 1-minute load average (0 where unknown): timings on a shared machine need it beside them. */
static double bench_load_average(void) {
    double load = 0;
    FILE *f = fopen("/proc/loadavg", "r");
    if (f) {
        if (fscanf(f, "%lf", &load) != 1) load = 0;
        fclose(f);
    }
    return load;
}

/* ---- GEMM --------------------------------------------------------------------------------------- */

/* Best times of one product (after a warm-up that packs and faults pages in). */
static bench_time bench_time_gemm(arwkv_backend *be, int M, int N, int K, const float *A, const void *W, arwkv_dtype wt, float *C) {
    bench_time best = {1e30, 1e30, 0, 0};
    be->core->gemm(be, M, N, K, A, K, 1, W, wt, 1, K, C, N, 0, NULL);
    double start = bench_now();
    for (int rep = 0; rep < 50; rep++) {
        double t0 = bench_now(), c0 = bench_cpu_now();
        be->core->gemm(be, M, N, K, A, K, 1, W, wt, 1, K, C, N, 0, NULL);
        bench_time_add(&best, bench_now() - t0, bench_cpu_now() - c0);
        if (bench_now() - start > 1.0 && rep >= 3) break;
    }
    return best;
}

/* The same for a product with any strides (A^T views, row-major B), C accumulated into or not. */
typedef struct {
    int M, N, K;
    const float *A;
    ptrdiff_t a_rs, a_cs;
    const void *B;
    arwkv_dtype b_type;
    ptrdiff_t b_rs, b_cs;
    float *C;
    int accumulate;
} bench_gemm_shape;

static bench_time bench_time_gemm_strided(arwkv_backend *be, const bench_gemm_shape *s) {
    bench_time best = {1e30, 1e30, 0, 0};
    double start = bench_now();
    for (int rep = 0; rep < 51; rep++) { /* the first is a warm-up */
        double t0 = bench_now(), c0 = bench_cpu_now();
        be->core->gemm(be, s->M, s->N, s->K, s->A, s->a_rs, s->a_cs, s->B, s->b_type, s->b_rs, s->b_cs, s->C, s->N, s->accumulate, NULL);
        if (rep > 0) bench_time_add(&best, bench_now() - t0, bench_cpu_now() - c0);
        if (bench_now() - start > 1.0 && rep >= 4) break;
    }
    return best;
}

/* One line: GFLOP/s on 1 and on n threads against the peaks by the wall clock, then per core by CPU
   time. Returns 1 if the n-thread wall-clock figure is below the goal, 60% of the peak. */
static int bench_report(const char *what, double flops, bench_time t1, bench_time tn, bench_time peak1, bench_time peak, int nt) {
    double w1 = flops / t1.wall * 1e-9, wn = flops / tn.wall * 1e-9, c1 = flops / t1.cpu * 1e-9, cn = flops / tn.cpu * 1e-9;
    printf("  %-40s 1 thread %6.1f GFLOP/s (%3.0f%%), %d threads %6.1f (%3.0f%%) | per core by CPU time: %5.1f (%3.0f%%), %5.1f (%3.0f%%)%s\n",
           what, w1, 100 * w1 / peak1.wall, nt, wn, 100 * wn / peak.wall, c1, 100 * c1 / peak1.cpu, cn, 100 * cn / peak1.cpu,
           wn / peak.wall >= 0.6 ? "" : "  [wall clock below 60%]");
    return wn / peak.wall < 0.6;
}

static int bench_matmul(int argc, char **argv) {
    int threads = bench_threads_arg(argc, argv);
    arwkv_backend *be1, *be;
    if (arwkv_backend_cpu(1, &be1) != ARWKV_OK || arwkv_backend_cpu(threads, &be) != ARWKV_OK) {
        fprintf(stderr, "matmul: %s\n", arwkv_last_error());
        return 1;
    }
    int nt = arwkv_pool_size(be->pool);
    double load = bench_load_average();
    bench_time peak1 = bench_fma_peak(be1->pool, BENCH_PEAK_KERNELS), peak = bench_fma_peak(be->pool, BENCH_PEAK_KERNELS);
    const char *path = arwkv_cpu_kernels();
    const char *width = strcmp(path, "AVX-512") == 0 ? "512-bit" : strcmp(path, "AVX2+FMA") == 0 ? "256-bit" : "scalar";
    printf("  CPU kernels of this build: %s; the GEMM multiplies in fp32 (bf16 weights widened in registers)\n", path);
    printf("  FMA peak (measured, %s FMAs as the kernels use them): %.1f GFLOP/s on 1 thread, %.1f GFLOP/s on %d threads (by CPU time: %.1f per core)\n",
           width, peak1.wall, peak.wall, nt, peak1.cpu);
    if (strcmp(width, "512-bit") != 0 && bench_peak_available(BENCH_PEAK_FMA512)) {
        bench_time z1 = bench_fma_peak(be1->pool, BENCH_PEAK_FMA512), z = bench_fma_peak(be->pool, BENCH_PEAK_FMA512);
        printf("  this CPU has 512-bit FMAs, which this build does not use: %.1f GFLOP/s on 1 thread, %.1f on %d threads (build with -march=native)\n",
               z1.wall, z.wall, nt);
    }
    if (bench_peak_available(BENCH_PEAK_DOT_BF16)) {
        bench_time d1 = bench_fma_peak(be1->pool, BENCH_PEAK_DOT_BF16), d = bench_fma_peak(be->pool, BENCH_PEAK_DOT_BF16);
        printf("  bf16 dot peak (measured, vdpbf16ps): %.1f GFLOP/s on 1 thread, %.1f on %d threads (%.2fx the FMA peak); not used by the\n"
               "    GEMM: it would round every activation to bf16 (8 bits), beyond the documented accuracy (arwkv.h, NUMBERS)\n",
               d1.wall, d.wall, nt, d1.wall / peak1.wall);
    } else printf("  bf16 dot peak: this CPU has no AVX512_BF16\n");
    printf("  load average %.2f before the run%s\n", load, load > 0.5 ? ": other processes share these cores, and lower every wall-clock figure" : "");
    printf("  percentages: of the peak on as many threads; CPU-time figures: GFLOP per CPU-second, of a core's peak\n");
    /* Qwen2.5-0.5B projections over 512 tokens: q/o (896x896), k/v (128x896), MLP up/gate and down,
       and one chunk of the vocabulary head; weights bf16 as stored, activations fp32. */
    static const int shapes[][3] = {{512, 896, 896}, {512, 128, 896}, {512, 4864, 896}, {512, 896, 4864}, {64, 151936, 896}};
    const char *names[] = {"q_proj/o_proj", "k_proj/v_proj", "gate/up_proj", "down_proj", "lm_head (64 rows)"};
    int fails = 0;
    for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++) {
        int M = shapes[s][0], N = shapes[s][1], K = shapes[s][2];
        float *A = (float *)malloc(sizeof(float) * (size_t)M * K), *C = (float *)malloc(sizeof(float) * (size_t)M * N);
        uint16_t *W = (uint16_t *)malloc(2 * (size_t)N * K);
        if (!A || !C || !W) {
            free(A), free(C), free(W);
            fprintf(stderr, "matmul: out of memory\n");
            return 1;
        }
        unsigned x = 12345;
        for (size_t i = 0; i < (size_t)M * K; i++) A[i] = (float)((x = x * 1103515245u + 12345u) >> 9) / 8388608.0f - 1.0f;
        for (size_t i = 0; i < (size_t)N * K; i++)
            W[i] = arwkv_f32_to_bf16(((float)((x = x * 1103515245u + 12345u) >> 9) / 8388608.0f - 1.0f) * 0.05f);
        char what[96];
        snprintf(what, sizeof what, "%s %dx%dx%d bf16", names[s], M, N, K);
        bench_time t1 = bench_time_gemm(be1, M, N, K, A, W, ARWKV_BF16, C), tn = bench_time_gemm(be, M, N, K, A, W, ARWKV_BF16, C);
        fails += bench_report(what, 2.0 * M * N * K, t1, tn, peak1, peak, nt);
        free(A), free(C), free(W);
    }
    printf("  goal: >= 60%% of the FMA peak with all threads: %s\n", fails ? "MISSED on the wall clock for some shapes" : "met");
    /* The products of the bundled teacher's stage 2 (make demo), which are nearly all of its time:
       the vocabulary head (151936 x hidden 128) over a chunk of 128 positions. The teacher's logits
       (bf16 weight), then the student's head trained in fp32: its backward to the hidden states
       (d logits . W, a long sum into a narrow C) and its weight gradient (d logits^T . hidden, an A^T
       view accumulated into C). Each moves 78 MB of logits or weight per 5 GFLOP. */
    {
        enum { R = 128, V = 151936, H = 128 };
        float *hid = (float *)malloc(sizeof(float) * R * H), *logits = (float *)malloc(sizeof(float) * (size_t)R * V),
              *wf = (float *)malloc(sizeof(float) * (size_t)V * H), *dw = (float *)calloc((size_t)V * H, sizeof(float)),
              *dh = (float *)malloc(sizeof(float) * R * H);
        uint16_t *wh = (uint16_t *)malloc(2 * (size_t)V * H);
        if (!hid || !logits || !wf || !dw || !dh || !wh) {
            free(hid), free(logits), free(wf), free(dw), free(dh), free(wh);
            fprintf(stderr, "matmul: out of memory\n");
            return 1;
        }
        unsigned x = 4242;
        for (size_t i = 0; i < (size_t)R * H; i++) hid[i] = (float)((x = x * 1103515245u + 12345u) >> 9) / 8388608.0f - 1.0f;
        for (size_t i = 0; i < (size_t)R * V; i++) logits[i] = ((float)((x = x * 1103515245u + 12345u) >> 9) / 8388608.0f - 1.0f) * 1e-5f;
        for (size_t i = 0; i < (size_t)V * H; i++) {
            wf[i] = ((float)((x = x * 1103515245u + 12345u) >> 9) / 8388608.0f - 1.0f) * 0.05f;
            wh[i] = arwkv_f32_to_bf16(wf[i]);
        }
        bench_gemm_shape head[3] = {{R, V, H, hid, H, 1, wh, ARWKV_BF16, 1, H, logits, 0},
                                    {R, H, V, logits, V, 1, wf, ARWKV_F32, H, 1, dh, 0},
                                    {V, H, R, logits, 1, V, hid, ARWKV_F32, H, 1, dw, 1}};
        const char *head_names[3] = {"demo head: logits 128x151936x128 bf16", "demo head: d hidden 128x128x151936", "demo head: d W 151936x128x128 (A^T)"};
        for (int s = 0; s < 3; s++) {
            char what[96];
            snprintf(what, sizeof what, "%s (info)", head_names[s]);
            bench_time t1 = bench_time_gemm_strided(be1, &head[s]), tn = bench_time_gemm_strided(be, &head[s]);
            bench_report(what, 2.0 * R * V * H, t1, tn, peak1, peak, nt);
        }
        free(hid), free(logits), free(wf), free(dw), free(dh), free(wh);
    }
    /* the other product of a forward pass: causal attention, 0.5B heads (14 query, 2 key/value, 64 wide) */
    {
        enum { T = 2048, H = 14, HKV = 2, D = 64 };
        float *q = (float *)malloc(sizeof(float) * T * H * D), *k = (float *)malloc(sizeof(float) * T * HKV * D),
              *v = (float *)malloc(sizeof(float) * T * HKV * D), *o = (float *)malloc(sizeof(float) * T * H * D);
        unsigned x = 777;
        for (size_t i = 0; i < (size_t)T * H * D; i++) q[i] = (float)((x = x * 1103515245u + 12345u) >> 9) / 8388608.0f - 1.0f;
        for (size_t i = 0; i < (size_t)T * HKV * D; i++) {
            k[i] = (float)((x = x * 1103515245u + 12345u) >> 9) / 8388608.0f - 1.0f;
            v[i] = (float)((x = x * 1103515245u + 12345u) >> 9) / 8388608.0f - 1.0f;
        }
        bench_time best[2] = {{1e30, 1e30, 0, 0}, {1e30, 1e30, 0, 0}};
        arwkv_backend *bes[2] = {be1, be};
        for (int b = 0; b < 2; b++)
            for (int rep = 0; rep < 4; rep++) {
                double t0 = bench_now(), c0 = bench_cpu_now();
                bes[b]->qwen->attention_forward(bes[b], o, q, k, v, 1, T, 0, H, HKV, D, 0);
                bench_time_add(&best[b], bench_now() - t0, bench_cpu_now() - c0);
            }
        bench_report("attention T=2048 14/2 heads of 64 (info)", 2.0 * 2.0 * (double)T * T / 2 * H * D, best[0], best[1], peak1, peak, nt);
        free(q), free(k), free(v), free(o);
    }
    arwkv_backend_destroy(be1);
    arwkv_backend_destroy(be);
    return 0;
}

/* ---- Decode ------------------------------------------------------------------------------------ */

typedef struct {
    uint16_t *w;
    size_t n;
    unsigned seed;
    float scale;
} bench_fill_ctx;

static void bench_fill_range(void *ctx, size_t b, size_t e) {
    bench_fill_ctx *c = (bench_fill_ctx *)ctx;
    uint64_t x = 0x9E3779B97F4A7C15ull ^ ((uint64_t)c->seed << 32) ^ b;
    for (size_t i = b; i < e; i++) {
        x ^= x << 13, x ^= x >> 7, x ^= x << 17;
        c->w[i] = arwkv_f32_to_bf16(((float)(x >> 40) / 16777216.0f * 2 - 1) * c->scale);
    }
}

/* A model of the given shape with random weights, built in memory: matrices bf16 uniform in
   +-sqrt(3/fan_in) (unit-variance outputs), norms 1, biases 0. Built from the parameter list that
   loading uses, so the shapes are the real ones. */
static arwkv_result bench_random_model(arwkv_backend *be, const arwkv_config *cfg, arwkv_model **out) {
    *out = NULL;
    arwkv_model *m = (arwkv_model *)calloc(1, sizeof *m);
    if (!m) return ARWKV_ERR_OUT_OF_MEMORY;
    m->be = be;
    m->cfg = *cfg;
    arwkv_result r = arwkv__declare_params(m);
    for (int i = 0; i < m->n_params && r == ARWKV_OK; i++) {
        arwkv_param *p = &m->params[i];
        r = arwkv__param_alloc(m, p, p->is_matrix ? ARWKV_BF16 : ARWKV_F32);
        if (r != ARWKV_OK) break;
        if (p->is_matrix) {
            bench_fill_ctx c = {(uint16_t *)p->data, (size_t)p->numel, (unsigned)i, (float)sqrt(3.0 / (double)p->shape[1])};
            arwkv__parallel_range(be->pool, c.n, 1 << 20, bench_fill_range, &c);
        } else if (strstr(p->name, "norm")) {
            for (int64_t k = 0; k < p->numel; k++) ((float *)p->data)[k] = 1.0f;
        }
    }
    if (r != ARWKV_OK) {
        arwkv_model_free(m);
        return r;
    }
    *out = m;
    return ARWKV_OK;
}

/* Bytes a decode step must read: every matrix once (the head too; only one embedding row), plus the
   fp32 vectors. The KV cache is reported apart. */
static double bench_weight_bytes(const arwkv_model *m) {
    double bytes = 0;
    for (int i = 0; i < m->n_params; i++) {
        const arwkv_param *p = &m->params[i];
        if (p == m->embed && m->lm_head != m->embed) bytes += (double)p->shape[1] * arwkv_dtype_size(p->dtype);
        else bytes += (double)p->numel * arwkv_dtype_size(p->dtype);
    }
    return bytes;
}

static int bench_decode(int argc, char **argv) {
    int threads = bench_threads_arg(argc, argv);
    arwkv_backend *be;
    if (arwkv_backend_cpu(threads, &be) != ARWKV_OK) {
        fprintf(stderr, "decode: %s\n", arwkv_last_error());
        return 1;
    }
    int nt = arwkv_pool_size(be->pool);
    /* Qwen2.5-0.5B */
    arwkv_config cfg;
    memset(&cfg, 0, sizeof cfg);
    cfg.arch = ARWKV_ARCH_QWEN2, cfg.vocab_size = 151936, cfg.hidden_size = 896, cfg.intermediate_size = 4864, cfg.num_layers = 24;
    cfg.num_heads = 14, cfg.num_kv_heads = 2, cfg.head_dim = 64, cfg.rms_norm_eps = 1e-6f, cfg.rope_theta = 1e6;
    cfg.max_position_embeddings = 32768, cfg.tie_word_embeddings = 1, cfg.bos_token_id = cfg.eos_token_id = 151643;
    double t0 = bench_now();
    arwkv_model *m;
    arwkv_teacher *t = NULL;
    arwkv_kv_cache *c = NULL;
    arwkv_result r = bench_random_model(be, &cfg, &m);
    if (r == ARWKV_OK) r = arwkv_teacher_create(m, &t);
    if (r == ARWKV_OK) r = arwkv_kv_cache_create(m, 0, &c);
    if (r != ARWKV_OK) {
        fprintf(stderr, "decode: %s\n", arwkv_last_error());
        return 1;
    }
    double bytes = bench_weight_bytes(m);
    printf("  model: Qwen2.5-0.5B shape, random bf16 weights (%.0f M parameters, %.1f MB read per token), built in %.1f s\n",
           arwkv_model_numel(m) / 1e6, bytes / 1e6, bench_now() - t0);
    /* the read bound: first the number of interleaved runs per thread that reads fastest here (best of
       4 passes each), then passes of that kind between the decode steps below, so that the bound and
       the steps see the same neighbours on a shared machine */
    bench_reader reader;
    if (!bench_reader_init(&reader, be->pool, (size_t)bytes)) {
        fprintf(stderr, "decode: out of memory\n");
        return 1;
    }
    double rates[4] = {0, 0, 0, 0}; /* 1, 2, 4, 8 runs per thread */
    int fastest = 0;
    for (int which = 0; which < 4; which++) {
        for (int rep = 0; rep < 4; rep++) {
            double gbs = bench_read_pass(&reader, 1 << which);
            if (gbs > rates[which]) rates[which] = gbs;
        }
        if (rates[which] > rates[fastest]) fastest = which;
    }
    int streams = 1 << fastest;
    double copy = bench_copy_bandwidth(be->pool, (size_t)bytes);
    printf("  memory: %d threads read a buffer of the weights' size (%.0f MB) at %.1f, %.1f, %.1f, %.1f GB/s in 1, 2, 4, 8 interleaved\n"
           "    runs per thread (best of 4); %d run%s per thread is the bound below. memcpy of the buffer: %.1f GB/s of bytes read + written\n",
           nt, bytes / 1e6, rates[0], rates[1], rates[2], rates[3], streams, streams > 1 ? "s" : "", copy);
    /* prefill: one forward over 512 tokens, judged in GFLOP/s of its matrix products and attention */
    {
        enum { T = 512 };
        int32_t ids[T];
        for (int i = 0; i < T; i++) ids[i] = (1000 + 37 * i) % cfg.vocab_size;
        const float *hidden;
        double best_fw = 1e30;
        for (int rep = 0; r == ARWKV_OK && rep < 2; rep++) {
            double s0 = bench_now();
            r = arwkv_teacher_forward(t, ids, 1, T, NULL, NULL, &hidden);
            double dt = bench_now() - s0;
            best_fw = dt < best_fw ? dt : best_fw;
        }
        double matmul = 2.0 * T * (bench_weight_bytes(m) / 2 - (double)cfg.vocab_size * cfg.hidden_size); /* no head: hidden states only */
        double attn = 2.0 * 2.0 * cfg.num_layers * (double)T * T / 2 * cfg.num_heads * cfg.head_dim;
        if (r == ARWKV_OK)
            printf("  prefill: forward of %d tokens (no logits) in %.0f ms: %.0f tokens/s, %.1f GFLOP/s\n", T, best_fw * 1e3, T / best_fw,
                   (matmul + attn) / best_fw * 1e-9);
    }
    float *logits = (float *)malloc(sizeof(float) * cfg.vocab_size);
    int32_t prompt[32];
    for (int i = 0; i < 32; i++) prompt[i] = 1000 + 37 * i;
    if (r == ARWKV_OK) r = arwkv_teacher_step(t, c, prompt, 32, logits, NULL);
    enum { STEPS = 48 };
    double times[STEPS], reads[STEPS];
    int steps = 0;
    for (; r == ARWKV_OK && steps < STEPS; steps++) {
        int32_t next = 0;
        for (int i = 1; i < cfg.vocab_size; i++) next = logits[i] > logits[next] ? i : next;
        reads[steps] = bench_read_pass(&reader, streams);
        double s0 = bench_now();
        r = arwkv_teacher_step(t, c, &next, 1, logits, NULL);
        times[steps] = bench_now() - s0;
    }
    bench_reader_free(&reader);
    if (r != ARWKV_OK) {
        fprintf(stderr, "decode: %s\n", arwkv_last_error());
        return 1;
    }
    bench_sort(times, steps), bench_sort(reads, steps); /* ascending: median and best */
    double read = reads[steps / 2], median = times[steps / 2], tps = 1 / median, bound = read * 1e9 / bytes;
    printf("  read bound during the steps: median %.1f GB/s, best %.1f (one pass of the buffer before each step)\n", read,
           reads[steps - 1]);
    double load = bench_load_average();
    printf("  decode: %d greedy steps after a 32-token prompt: median %.1f ms = %.2f tokens/s, best %.1f ms = %.2f tokens/s (%d threads; "
           "load average %.2f); KV cache %zu bytes\n",
           steps, median * 1e3, tps, times[0] * 1e3, 1 / times[0], nt, load, arwkv_kv_cache_bytes(c));
    printf("  bound: %.1f MB per token at %.1f GB/s = %.2f tokens/s; the median step reaches %.0f%% of it, the best %.0f%% (goal 90%%: %s)\n",
           bytes / 1e6, read, bound, 100 * tps / bound, 100 * bytes / times[0] / (reads[steps - 1] * 1e9), tps / bound >= 0.9 ? "met" : "MISSED");
    /* where a step's time goes: the same matrix-vector products alone, back to back */
    {
        float *x = (float *)calloc((size_t)cfg.intermediate_size, sizeof(float)), *y = (float *)malloc(sizeof(float) * cfg.vocab_size);
        for (int i = 0; i < cfg.intermediate_size; i++) x[i] = 0.01f * (float)(i % 97);
        double mv[5];
        for (int rep = 0; rep < 5; rep++) {
            double s0 = bench_now();
            for (int l = 0; l < cfg.num_layers; l++) {
                const arwkv_layer *L = &m->layers[l];
                const arwkv_param *w[7] = {L->q_w, L->k_w, L->v_w, L->o_w, L->mlp_gate, L->mlp_up, L->mlp_down};
                for (int i = 0; i < 7; i++)
                    be->core->gemm(be, 1, (int)w[i]->shape[0], (int)w[i]->shape[1], x, w[i]->shape[1], 1, w[i]->data, w[i]->dtype, 1,
                                   w[i]->shape[1], y, w[i]->shape[0], 0, NULL);
            }
            be->core->gemm(be, 1, cfg.vocab_size, cfg.hidden_size, x, cfg.hidden_size, 1, m->lm_head->data, m->lm_head->dtype, 1,
                           cfg.hidden_size, y, cfg.vocab_size, 0, NULL);
            mv[rep] = bench_now() - s0;
        }
        bench_sort(mv, 5);
        printf("  of which: the %d matrix-vector products alone take %.1f ms (median of 5; %.1f GB/s of weights, %.0f%% of the read bound); "
               "the rest of a step (attention, norms, RoPE, thread wake-ups, logits copy) %.1f ms\n",
               7 * cfg.num_layers + 1, mv[2] * 1e3, bytes / mv[2] * 1e-9, 100 * bytes / mv[2] * 1e-9 / read, (median - mv[2]) * 1e3);
        free(x), free(y);
    }
    free(logits);
    arwkv_kv_cache_free(c);
    arwkv_teacher_free(t);
    arwkv_model_free(m);
    arwkv_backend_destroy(be);
    return 0;
}
