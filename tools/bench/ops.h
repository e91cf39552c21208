/* Single CPU ops at the training shapes; included by tools/bench.c.

     arwkv-bench cpu-ops [T]     WKV7 over sequences of T tokens (default 512)

   WKV7 forward (with the state checkpoints training saves) and backward at the bundled teacher's
   shape (2 heads of 64) and Qwen2.5-0.5B's (14 heads of 64), B = 2: tokens/s and GFLOP/s (the
   recurrence does 4 N^2 multiply-adds per head and token forward; the backward replays the forward
   and does 7 N^2 more, 11 N^2 in all). AdamW over 22M fp32 parameters (the bundled student's
   size): parameters/s and GB/s (it reads p, g, m, v and writes p, m, v: 28 bytes per parameter).
   Then the time per call of the stage-1 ops around the recurrence (attention, rope, RMSNorm, the
   time mix's lerps and prepare step) at the bundled pair's shapes, and QRWKV6's WKV6 at the same.
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

/* The stage-1 ops around the recurrence, at the bundled pair's shapes (4 sequences of 256 tokens,
   width 128, heads of 64; the teacher's 2 query heads share 1 key/value head): the time per call. */
enum { BENCH_EW_ATT, BENCH_EW_ROPE, BENCH_EW_RMS_FWD, BENCH_EW_RMS_BWD, BENCH_EW_LERP_FWD, BENCH_EW_LERP_BWD, BENCH_EW_PREP_FWD,
       BENCH_EW_PREP_BWD, BENCH_EW_WKV6_FWD, BENCH_EW_WKV6_BWD, BENCH_EW_N };
static const char *const bench_ew_names[BENCH_EW_N] = {
    "attention (B 4, T 256, 2/1 heads of 64)", "rope (q, 1024 rows, 2 heads)", "RMSNorm forward (1024 x 128)",
    "RMSNorm backward (1024 x 128)",           "lerp forward (6 mixes, 4 x 256 x 128)",  "lerp backward (6 mixes)",
    "prepare forward (1024 x 128, N 64)",      "prepare backward",
    "WKV6 forward (B 4, T 256, 2 heads of 64)", "WKV6 backward"};
typedef struct {
    arwkv_backend *be;
    int op;
    float *buf[24];
    int32_t *pos;
} bench_ops_ew;

static int bench_ops_ew_run(void *ctx) {
    bench_ops_ew *e = (bench_ops_ew *)ctx;
    arwkv_backend *be = e->be;
    float **f = e->buf;
    const int B = 4, T = 256, M = B * T, C = 128;
    const float *mu[6] = {f[10], f[11], f[12], f[13], f[14], f[15]};
    float *dmu[6] = {f[16], f[17], f[18], f[19], f[20], f[21]};
    arwkv_r7_prepare_args p;
    memset(&p, 0, sizeof p);
    p.M = M, p.C = C, p.N = 64, p.first_layer = 0;
    p.k_in = f[0], p.v_in = f[1], p.w_lora = f[2], p.a_lora = f[3], p.v_lora = f[4], p.v_first = f[5];
    p.w0 = f[10], p.a0 = f[11], p.v0 = f[12], p.k_k = f[13], p.k_a = f[14];
    switch (e->op) {
    case BENCH_EW_ATT: return be->qwen->attention_forward(be, f[6], f[0], f[1], f[2], B, T, 0, 2, 1, 64, (ptrdiff_t)T * 64) == ARWKV_OK;
    case BENCH_EW_ROPE: return be->qwen->rope_forward(be, f[6], M, 2, 64, 128, e->pos, 0, 1e6) == ARWKV_OK;
    case BENCH_EW_RMS_FWD: return be->core->rmsnorm_forward(be, f[6], f[7], f[0], f[10], ARWKV_F32, M, C, 1e-6f) == ARWKV_OK;
    case BENCH_EW_RMS_BWD:
        return be->core->rmsnorm_backward(be, f[6], f[16], f[1], f[0], f[10], ARWKV_F32, f[7], M, C, 0) == ARWKV_OK;
    case BENCH_EW_LERP_FWD: return be->rwkv7->lerp_forward(be, f[8], f[0], f[1], f[7], mu, 6, B, T, C) == ARWKV_OK;
    case BENCH_EW_LERP_BWD: return be->rwkv7->lerp_backward(be, f[6], f[7], dmu, f[8], f[0], f[1], mu, 6, B, T, C) == ARWKV_OK;
    case BENCH_EW_PREP_FWD:
        p.decay = f[6], p.k = f[7], p.v = f[8], p.wkv_a = f[9], p.wkv_b = f[22];
        return be->rwkv7->prepare_forward(be, &p) == ARWKV_OK;
    case BENCH_EW_WKV6_FWD: /* decays f[10] in (0, 1); the state checkpoints in f[23] */
        return be->rwkv6->wkv6_forward(be, f[6], NULL, f[23], f[0], f[1], f[2], f[10], NULL, B, T, 2, 64, 0.125f) == ARWKV_OK;
    case BENCH_EW_WKV6_BWD:
        return be->rwkv6->wkv6_backward(be, f[6], f[7], f[8], f[9], f[3], f[0], f[1], f[2], f[10], f[23], B, T, 2, 64, 0.125f) == ARWKV_OK;
    case BENCH_EW_PREP_BWD:
        p.d_decay = f[0], p.dk = f[1], p.dv = f[2], p.d_wkv_a = f[3], p.d_wkv_b = f[4];
        p.dk_in = f[6], p.dv_in = f[7], p.dw_lora = f[8], p.da_lora = f[9], p.dv_lora = f[22], p.dv_first = f[23];
        p.dw0 = f[16], p.da0 = f[17], p.dv0 = f[18], p.dk_k = f[19], p.dk_a = f[20];
        return be->rwkv7->prepare_backward(be, &p) == ARWKV_OK;
    }
    return 0;
}

static int bench_cpu_ops_elementwise(arwkv_backend *be) {
    bench_ops_ew e;
    memset(&e, 0, sizeof e);
    e.be = be;
    const size_t big = (size_t)6 * 4 * 256 * 128; /* the six mixes of 1024 rows */
    int ok = (e.pos = (int32_t *)malloc(1024 * sizeof(int32_t))) != NULL;
    for (int i = 0; i < 24 && ok; i++) ok &= (e.buf[i] = (float *)malloc(big * sizeof(float))) != NULL;
    if (!ok) {
        fprintf(stderr, "  out of memory\n");
        return 1;
    }
    uint64_t s = 0x9E3779B97F4A7C15ull;
    for (int i = 0; i < 24; i++)
        for (size_t j = 0; j < big; j++) {
            s ^= s << 13, s ^= s >> 7, s ^= s << 17;
            e.buf[i][j] = (float)((double)(s >> 11) / 9007199254740992.0) * (i >= 10 && i < 16 ? 1.0f : 2.0f) - (i >= 10 && i < 16 ? 0.0f : 1.0f);
        }
    for (int r = 0; r < 1024; r++) e.pos[r] = r % 256;
    for (size_t j = 0; j < big; j++) e.buf[7][j] = 1.0f; /* rstd for the backward */
    printf("  %-44s %12s\n", "stage-1 ops", "us/call");
    int status = 0;
    for (e.op = 0; e.op < BENCH_EW_N && !status; e.op++) {
        double t = bench_ops_time(0.3, bench_ops_ew_run, &e);
        if (t < 0) {
            fprintf(stderr, "  %s: %s\n", bench_ew_names[e.op], arwkv_last_error());
            status = 1;
        } else
            printf("  %-44s %12.1f\n", bench_ew_names[e.op], t * 1e6);
    }
    for (int i = 0; i < 24; i++) free(e.buf[i]);
    free(e.pos);
    return status;
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
    if (!status) status = bench_cpu_ops_elementwise(be);
    arwkv_backend_destroy(be);
    return status;
}
