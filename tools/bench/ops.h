/* Single CPU ops at the training shapes; included by tools/bench.c.

     arwkv-bench cpu-ops [T]     WKV7 over sequences of T tokens (default 512)

   WKV7 forward (with the state checkpoints training saves) and backward at the bundled teacher's
   shape (2 heads of 64) and Qwen2.5-0.5B's (14 heads of 64), B = 2: tokens/s and GFLOP/s (the
   recurrence does 4 N^2 multiply-adds per head and token forward; the backward replays the forward
   and does 7 N^2 more, 11 N^2 in all). AdamW over 22M fp32 parameters (the bundled student's
   size): parameters/s and GB/s (it reads p, g, m, v and writes p, m, v: 28 bytes per parameter).
   The kernel path (AVX-512, AVX2+FMA, portable C) is printed first, as each uses its own loops. */

static double bench_ops_time(double min_s, int (*fn)(void *), void *ctx) {
    int reps = 0;
    double t0 = bench_now();
    do {
        if (!fn(ctx)) return -1;
        reps++;
    } while (bench_now() - t0 < min_s);
    return (bench_now() - t0) / reps;
}

typedef struct {
    arwkv_backend *be;
    int B, T, H, N;
    float *in[6], *y, *ckpt, *g[6];
} bench_ops_wkv;

static int bench_ops_wkv_fwd(void *ctx) {
    bench_ops_wkv *w = (bench_ops_wkv *)ctx;
    return w->be->rwkv7->wkv7_forward(w->be, w->B, w->T, w->H, w->N, w->in[0], w->in[1], w->in[2], w->in[3], w->in[4], w->in[5], w->y,
                                      NULL, w->ckpt) == ARWKV_OK;
}
static int bench_ops_wkv_bwd(void *ctx) {
    bench_ops_wkv *w = (bench_ops_wkv *)ctx;
    return w->be->rwkv7->wkv7_backward(w->be, w->B, w->T, w->H, w->N, w->in[0], w->in[1], w->in[2], w->in[3], w->in[4], w->in[5], w->y,
                                       w->ckpt, NULL, w->g[0], w->g[1], w->g[2], w->g[3], w->g[4], w->g[5]) == ARWKV_OK;
}

typedef struct {
    arwkv_backend *be;
    float *p, *g, *m, *v;
    size_t n;
    int step;
} bench_ops_adamw;

static int bench_ops_adamw_run(void *ctx) {
    bench_ops_adamw *a = (bench_ops_adamw *)ctx;
    return a->be->optim->adamw(a->be, a->p, a->g, a->m, a->v, a->n, 1e-3f, 0.9f, 0.99f, 1e-8f, 0.01f, ++a->step) == ARWKV_OK;
}

static int bench_cpu_ops(int argc, char **argv) {
    int T = bench_int_arg(argc, argv, 1, "T", 512);
    if (T < 1) {
        fprintf(stderr, "usage: arwkv-bench cpu-ops [T]\n");
        return 2;
    }
    arwkv_backend *be;
    if (arwkv_backend_cpu(0, &be) != ARWKV_OK) {
        fprintf(stderr, "%s\n", arwkv_last_error());
        return 1;
    }
    printf("  CPU ops, %s, kernels: %s\n", arwkv_backend_name(be), arwkv_cpu_kernels());
    printf("  %-36s %14s %14s %10s\n", "WKV7 (B = 2, T tokens)", "fwd tok/s", "bwd tok/s", "GFLOP/s");
    int status = 0;
    const int heads[2] = {2, 14};
    for (int hi = 0; hi < 2 && !status; hi++) {
        bench_ops_wkv w;
        memset(&w, 0, sizeof w);
        w.be = be, w.B = 2, w.T = T, w.H = heads[hi], w.N = 64;
        size_t n = (size_t)w.B * T * w.H * w.N, NN = (size_t)w.N * w.N;
        size_t n_ckpt = (size_t)w.B * w.H * ((T + ARWKV_WKV7_CHUNK - 1) / ARWKV_WKV7_CHUNK) * NN;
        int ok = 1;
        for (int i = 0; i < 6; i++) ok &= (w.in[i] = (float *)malloc(n * sizeof(float))) != NULL && (w.g[i] = (float *)calloc(n, sizeof(float))) != NULL;
        ok &= (w.y = (float *)malloc(n * sizeof(float))) != NULL && (w.ckpt = (float *)malloc(n_ckpt * sizeof(float))) != NULL;
        if (!ok) {
            fprintf(stderr, "  out of memory\n");
            return 1;
        }
        /* inputs as the time mix makes them: decay in (0.55, 1), a = -kk and b = kk * 0.5 with |kk| = 1 */
        uint64_t s = 88172645463325252ull;
        for (size_t i = 0; i < n; i++)
            for (int q = 0; q < 6; q++) {
                s ^= s << 13, s ^= s >> 7, s ^= s << 17;
                float u = (float)((double)(s >> 11) / 9007199254740992.0); /* [0, 1) */
                w.in[q][i] = q == 1 ? 0.55f + 0.45f * u : q == 4 ? -0.125f * (2 * u - 1) : q == 5 ? 0.0625f * (2 * u - 1) : 2 * u - 1;
            }
        double t_fwd = bench_ops_time(0.5, bench_ops_wkv_fwd, &w), t_bwd = t_fwd < 0 ? -1 : bench_ops_time(0.5, bench_ops_wkv_bwd, &w);
        if (t_fwd < 0 || t_bwd < 0) {
            fprintf(stderr, "  %s\n", arwkv_last_error());
            status = 1;
        } else {
            double per_tok = 2.0 * w.H * NN, tok = (double)w.B * T; /* flops per token per multiply-add of the state */
            char name[64];
            snprintf(name, sizeof name, "%d heads of 64", w.H);
            printf("  %-36s %14.0f %14.0f %10.2f\n", name, tok / t_fwd, tok / t_bwd, tok * per_tok * (4 + 11) / (t_fwd + t_bwd) * 1e-9);
        }
        for (int i = 0; i < 6; i++) free(w.in[i]), free(w.g[i]);
        free(w.y), free(w.ckpt);
    }
    bench_ops_adamw a;
    memset(&a, 0, sizeof a);
    a.be = be, a.n = 22149248;
    a.p = (float *)calloc(a.n, sizeof(float)), a.g = (float *)calloc(a.n, sizeof(float));
    a.m = (float *)calloc(a.n, sizeof(float)), a.v = (float *)calloc(a.n, sizeof(float));
    if (!status && a.p && a.g && a.m && a.v) {
        for (size_t i = 0; i < a.n; i++) a.p[i] = 0.01f * (float)(i % 201) - 1, a.g[i] = 0.001f * (float)(i % 97) - 0.05f;
        double t = bench_ops_time(1.0, bench_ops_adamw_run, &a);
        if (t < 0) {
            fprintf(stderr, "  %s\n", arwkv_last_error());
            status = 1;
        } else
            printf("  %-36s %14.0f M params/s %8.1f GB/s\n", "AdamW (22.1M fp32 parameters)", a.n / t * 1e-6, a.n * 28.0 / t * 1e-9);
    } else if (!status) {
        fprintf(stderr, "  out of memory\n");
        status = 1;
    }
    free(a.p), free(a.g), free(a.m), free(a.v);
    arwkv_backend_destroy(be);
    return status;
}
