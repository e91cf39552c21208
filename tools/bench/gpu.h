/* GPU benchmarks (the GPU build of arwkv-bench only: `make gpu` builds build/gpu/arwkv-bench).

     arwkv-bench gpu-ops [matmul|attention|wkv|all]
                                            the kernels at the training shapes, each against the
                                            device's peak: matrix products (M = 8192 tokens, every
                                            projection of Qwen2.5 0.5B/1.5B/7B and the head, in the
                                            forward and both backward layouts), teacher attention at
                                            T = 2048 (head 64 and 128), WKV7 and WKV6 forward and
                                            backward (B4 T2048 H14, B4 T2048 H56, B1 T8192 H56)
     arwkv-bench gpu-train [0.5b|1.5b|7b|all] [STEPS]
                                            random Qwen2.5-shaped teachers built on the device,
                                            stage-1 and stage-2 steps at T = 2048 (B 4, 4, 1):
                                            tokens/s, peak device memory, and where the time of a step
                                            goes by op kind

   Peaks: the dense bf16 rate is multiprocessors x clock x the matrix units' FLOP per clock and
   multiprocessor (4096 on Hopper, 2048 on Ampere and CDNA3: the vendors' datasheet figures); the
   memory bound is the bus width x the memory clock, and a device-to-device copy gives the
   measured one. How the per-kind profile works: every op table of the backend is wrapped so that
   each call records a device event before and after itself; the events are read after the step.
   The wrapped step is run once after the timed ones, so the timing runs without the wrappers. */

#include <map>
#include <type_traits>
#include <vector>

/* ---- the device and its peaks ------------------------------------------------------------------- */
typedef struct gb_device {
    char name[256];
    double tflops; /* dense bf16 matrix units, nominal */
    double gbs;    /* memory bus, nominal */
    double copy;   /* measured device-to-device copy, bytes read + written per second / 1e9 */
} gb_device;

static hipStream_t gb_stream(arwkv_backend *be) { return ARWKV__G(be)->stream; }

static int gb_attr(int which, int dev) {
    int v = 0;
#if defined(__CUDACC__)
    (void)cudaDeviceGetAttribute(&v, (cudaDeviceAttr)which, dev);
#else
    (void)hipDeviceGetAttribute(&v, (hipDeviceAttribute_t)which, dev);
#endif
    return v;
}

__global__ void gb_fill_f32_kernel(float *p, size_t n, unsigned seed, float lo, float hi) {
    ARWKV__GRID_LOOP(i, n) {
        unsigned x = (unsigned)i * 2654435761u ^ seed * 0x9e3779b9u ^ (unsigned)(i >> 32) * 0x85ebca6bu;
        x ^= x >> 16, x *= 0x7feb352du, x ^= x >> 15, x *= 0x846ca68bu, x ^= x >> 16;
        p[i] = lo + (hi - lo) * (float)(x >> 8) * (1.0f / 16777216.0f);
    }
}
__global__ void gb_fill_bf16_kernel(unsigned short *p, size_t n, unsigned seed, float lo, float hi) {
    ARWKV__GRID_LOOP(i, n) {
        unsigned x = (unsigned)i * 2654435761u ^ seed * 0x9e3779b9u ^ (unsigned)(i >> 32) * 0x85ebca6bu;
        x ^= x >> 16, x *= 0x7feb352du, x ^= x >> 15, x *= 0x846ca68bu, x ^= x >> 16;
        p[i] = (unsigned short)arwkv__dev_f32_to_bf16(lo + (hi - lo) * (float)(x >> 8) * (1.0f / 16777216.0f));
    }
}

/* Uniform values in [lo, hi) over n elements of device memory (never zeros: zeros run faster). */
static void gb_fill(arwkv_backend *be, void *p, arwkv_dtype t, size_t n, unsigned seed, float lo, float hi) {
    unsigned blocks = arwkv__hip_blocks(ARWKV__G(be), n);
    if (t == ARWKV_BF16) gb_fill_bf16_kernel<<<blocks, 256, 0, gb_stream(be)>>>((unsigned short *)p, n, seed, lo, hi);
    else gb_fill_f32_kernel<<<blocks, 256, 0, gb_stream(be)>>>((float *)p, n, seed, lo, hi);
}

static void *gb_alloc(arwkv_backend *be, size_t bytes) {
    void *p = NULL;
    if (be->mem->alloc(be, bytes, &p) != ARWKV_OK) {
        fprintf(stderr, "arwkv-bench: %s\n", arwkv_last_error());
        exit(1);
    }
    return p;
}

static void gb_device_info(arwkv_backend *be, gb_device *d) {
    arwkv__gpu *g = ARWKV__G(be);
    snprintf(d->name, sizeof d->name, "%s", g->prop.name);
#if defined(__CUDACC__)
    int clock_khz = gb_attr(cudaDevAttrClockRate, g->device), mem_khz = gb_attr(cudaDevAttrMemoryClockRate, g->device);
    int bus = gb_attr(cudaDevAttrGlobalMemoryBusWidth, g->device);
    int per_clock = g->prop.major >= 9 ? 4096 : g->prop.major >= 8 ? 2048 : 1024;
#else
    int clock_khz = gb_attr(hipDeviceAttributeClockRate, g->device), mem_khz = gb_attr(hipDeviceAttributeMemoryClockRate, g->device);
    int bus = gb_attr(hipDeviceAttributeMemoryBusWidth, g->device);
    int per_clock = 2048; /* CDNA3: 1307 TFLOP/s dense bf16 at 2.1 GHz over 304 CUs */
#endif
    d->tflops = (double)g->prop.multiProcessorCount * clock_khz * 1e3 * per_clock / 1e12;
    d->gbs = 2.0 * mem_khz * 1e3 * (bus / 8) / 1e9;
    /* the measured bound: a 1 GiB device-to-device copy, best of 5 */
    size_t bytes = (size_t)1 << 30;
    void *a = gb_alloc(be, bytes), *b = gb_alloc(be, bytes);
    hipEvent_t e0, e1;
    (void)hipEventCreate(&e0), (void)hipEventCreate(&e1);
    float best = 1e30f;
    for (int i = 0; i < 6; i++) {
        (void)hipEventRecord(e0, gb_stream(be));
        (void)hipMemcpyAsync(b, a, bytes, hipMemcpyDeviceToDevice, gb_stream(be));
        (void)hipEventRecord(e1, gb_stream(be));
        (void)hipEventSynchronize(e1);
        float ms = 0;
        (void)hipEventElapsedTime(&ms, e0, e1);
        if (i > 0 && ms < best) best = ms;
    }
    d->copy = 2.0 * bytes / (best * 1e-3) / 1e9;
    (void)hipEventDestroy(e0), (void)hipEventDestroy(e1);
    be->mem->free(be, a), be->mem->free(be, b);
    printf("  device: %s, %d multiprocessors; peaks: dense bf16 %.0f TFLOP/s (nominal), memory %.0f GB/s (nominal), "
           "%.0f GB/s measured (1 GiB device copy, read + write)\n",
           d->name, g->prop.multiProcessorCount, d->tflops, d->gbs, d->copy);
    printf("  matrix products: %s\n", arwkv__hip_gemm_path_name(g));
}

/* Median time of fn over reps runs (after one warm-up), in ms, from device events. */
template <typename F> static double gb_time(arwkv_backend *be, int reps, F fn) {
    hipStream_t s = gb_stream(be);
    std::vector<hipEvent_t> ev(2 * reps);
    for (auto &e : ev) (void)hipEventCreate(&e);
    if (fn() != ARWKV_OK) {
        fprintf(stderr, "arwkv-bench: %s\n", arwkv_last_error());
        exit(1);
    }
    for (int i = 0; i < reps; i++) {
        (void)hipEventRecord(ev[2 * i], s);
        if (fn() != ARWKV_OK) {
            fprintf(stderr, "arwkv-bench: %s\n", arwkv_last_error());
            exit(1);
        }
        (void)hipEventRecord(ev[2 * i + 1], s);
    }
    if (be->mem->sync(be) != ARWKV_OK) {
        fprintf(stderr, "arwkv-bench: %s\n", arwkv_last_error());
        exit(1);
    }
    std::vector<float> ms(reps);
    for (int i = 0; i < reps; i++) (void)hipEventElapsedTime(&ms[i], ev[2 * i], ev[2 * i + 1]);
    for (auto &e : ev) (void)hipEventDestroy(e);
    std::sort(ms.begin(), ms.end());
    return ms[reps / 2];
}

/* ---- the Qwen2.5 shapes -------------------------------------------------------------------------- */
typedef struct gb_shape {
    const char *name;
    int C, layers, heads, kv_heads, head_dim, mlp, vocab, tied, batch;
    double lean[2]; /* the lean PyTorch pipeline's tokens/s, stages 1 and 2 (issue 15, one H100 80GB) */
} gb_shape;

static const gb_shape gb_shapes[] = {
    {"0.5b", 896, 24, 14, 2, 64, 4864, 151936, 1, 4, {23142, 16645}},
    {"1.5b", 1536, 28, 12, 2, 128, 8960, 151936, 1, 4, {15203, 10705}},
    {"7b", 3584, 28, 28, 4, 128, 18944, 152064, 0, 1, {4079, 2767}},
};
enum { GB_NSHAPES = 3 };

/* ---- arwkv-bench gpu-ops -------------------------------------------------------------------------- */
static int bench_gpu_ops(int argc, char **argv) {
    const char *what = argc >= 2 ? argv[1] : "all";
    int do_mm = !strcmp(what, "all") || !strcmp(what, "matmul"), do_att = !strcmp(what, "all") || !strcmp(what, "attention");
    int do_wkv = !strcmp(what, "all") || !strcmp(what, "wkv");
    if (!do_mm && !do_att && !do_wkv) {
        fprintf(stderr, "gpu-ops: unknown part '%s' (matmul, attention, wkv or all)\n", what);
        return 2;
    }
    arwkv_backend *be;
    if (arwkv_backend_gpu(0, &be) != ARWKV_OK) {
        fprintf(stderr, "gpu-ops: %s\n", arwkv_last_error());
        return 1;
    }
    gb_device dev;
    gb_device_info(be, &dev);
    const int M = 8192;

    /* Matrix products: y = x W^T (fwd), dx = dy W (dx), dW += dy^T x (dW); W bf16 [N,K], the rest fp32. */
    size_t a_max = 0, b_max = 0, c_max = 0;
    for (int s = 0; s < GB_NSHAPES; s++) {
        const gb_shape &q = gb_shapes[s];
        size_t big = (size_t)(q.vocab > q.mlp ? q.vocab : q.mlp);
        a_max = std::max(a_max, (size_t)M * big), b_max = std::max(b_max, big * q.C), c_max = std::max(c_max, (size_t)M * big);
    }
    float *A = (float *)gb_alloc(be, a_max * 4), *Cm = (float *)gb_alloc(be, c_max * 4), *Bf = (float *)gb_alloc(be, (size_t)M * 18944 * 4);
    void *W = gb_alloc(be, b_max * 2);
    gb_fill(be, A, ARWKV_F32, a_max, 1, -1, 1), gb_fill(be, Bf, ARWKV_F32, (size_t)M * 18944, 2, -1, 1);
    gb_fill(be, W, ARWKV_BF16, b_max, 3, -0.05f, 0.05f), gb_fill(be, Cm, ARWKV_F32, c_max, 4, -1, 1);
    if (do_mm) printf("\n  matrix products, M = %d tokens, A fp32 activations, W bf16 [N,K], C fp32 (median of 5)\n", M);
    if (do_mm) printf("  %-6s %-8s %-4s %7s %7s %7s %9s %9s %7s\n", "model", "proj", "pass", "M", "N", "K", "ms", "TFLOP/s", "%peak");
    for (int s = 0; s < GB_NSHAPES && do_mm; s++) {
        const gb_shape &q = gb_shapes[s];
        struct { const char *name; int N, K; } proj[] = {
            {"q,o", q.C, q.C}, {"k,v", q.kv_heads * q.head_dim, q.C}, {"gate,up", q.mlp, q.C}, {"down", q.C, q.mlp}, {"head", q.vocab, q.C}};
        for (auto &p : proj)
            for (int pass = 0; pass < 3; pass++) {
                int N = p.N, K = p.K, gm, gn, gk;
                std::function<arwkv_result()> fn;
                if (pass == 0) { /* y[M,N] = x[M,K] W^T */
                    gm = M, gn = N, gk = K;
                    fn = [=]() { return be->core->gemm(be, M, N, K, A, K, 1, W, ARWKV_BF16, 1, K, Cm, N, 0, NULL); };
                } else if (pass == 1) { /* dx[M,K] = dy[M,N] W */
                    gm = M, gn = K, gk = N;
                    fn = [=]() { return be->core->gemm(be, M, K, N, A, N, 1, W, ARWKV_BF16, K, 1, Cm, K, 0, NULL); };
                } else { /* dW[N,K] += dy^T x: A(n, t) = dy[t, n], B(t, k) = x[t, k] */
                    gm = N, gn = K, gk = M;
                    fn = [=]() { return be->core->gemm(be, N, K, M, A, 1, N, Bf, ARWKV_F32, K, 1, Cm, K, 1, NULL); };
                }
                double ms = gb_time(be, 5, fn), tf = 2.0 * gm * gn * gk / (ms * 1e-3) / 1e12;
                printf("  %-6s %-8s %-4s %7d %7d %7d %9.3f %9.1f %6.1f%%\n", q.name, p.name, pass == 0 ? "fwd" : pass == 1 ? "dx" : "dW", gm,
                       gn, gk, ms, tf, 100 * tf / dev.tflops);
                fflush(stdout);
            }
    }
    be->mem->free(be, W), be->mem->free(be, Bf);

    /* Teacher attention, causal GQA, T = 2048: flops 4 B H D T^2 / 2 (the causal half). */
    if (do_att) printf("\n  teacher attention (causal, grouped-query), T = 2048 (median of 5)\n");
    if (do_att) printf("  %-24s %9s %9s %7s\n", "shape", "ms", "TFLOP/s", "%peak");
    for (int s = 0; s < GB_NSHAPES && do_att; s++) {
        const gb_shape &q = gb_shapes[s];
        int B = q.batch, T = 2048, H = q.heads, Hk = q.kv_heads, D = q.head_dim;
        float *Q = A, *K = A + (size_t)B * T * H * D, *V = K + (size_t)B * T * Hk * D;
        double ms = gb_time(be, 5, [=]() {
            return be->qwen->attention_forward(be, Cm, Q, K, V, B, T, 0, H, Hk, D, (ptrdiff_t)T * Hk * D);
        });
        double tf = 4.0 * B * H * D * (double)T * T / 2 / (ms * 1e-3) / 1e12;
        char name[64];
        snprintf(name, sizeof name, "%s B%d H%d/%d D%d", q.name, B, H, Hk, D);
        printf("  %-24s %9.3f %9.2f %6.1f%%\n", name, ms, tf, 100 * tf / dev.tflops);
        fflush(stdout);
    }

    /* WKV7 and WKV6, head size 64: memory-bound recurrences, judged in GB/s against the copy. */
    if (do_wkv) printf("\n  WKV recurrences, head size 64, fp32 state (median of 5; GB/s counts each input and output once, checkpoints too)\n");
    if (do_wkv) printf("  %-22s %-5s %9s %9s %7s\n", "shape", "pass", "ms", "GB/s", "%copy");
    struct { int B, T, H; } wk[] = {{4, 2048, 14}, {4, 2048, 56}, {1, 8192, 56}};
    for (int arch = 7; arch >= 6 && do_wkv; arch--)
        for (auto &w : wk) {
            int B = w.B, T = w.T, H = w.H, N = 64;
            size_t n = (size_t)B * T * H * N, ck = (size_t)B * H * ((T + 15) / 16) * N * N;
            float *buf = (float *)gb_alloc(be, (16 * n + ck) * 4);
            float *r = buf, *dec = r + n, *k = dec + n, *v = k + n, *a = v + n, *b = a + n, *y = b + n, *dy = y + n;
            float *dr = dy + n, *dd = dr + n, *dk = dd + n, *dv = dk + n, *da = dv + n, *db = da + n, *ckpt = db + 2 * n;
            gb_fill(be, buf, ARWKV_F32, 16 * n, 7, -0.5f, 0.5f);
            gb_fill(be, dec, ARWKV_F32, n, 8, 0.7f, 0.99f);
            gb_fill(be, a, ARWKV_F32, 2 * n, 9, -0.05f, 0.05f);
            double fms, bms, fbytes, bbytes;
            if (arch == 7) {
                fms = gb_time(be, 5, [=]() { return be->rwkv7->wkv7_forward(be, B, T, H, N, r, dec, k, v, a, b, y, NULL, ckpt); });
                bms = gb_time(be, 5, [=]() {
                    return be->rwkv7->wkv7_backward(be, B, T, H, N, r, dec, k, v, a, b, dy, ckpt, NULL, dr, dd, dk, dv, da, db);
                });
                fbytes = 7.0 * n * 4 + ck * 4, bbytes = (7.0 + 9.0) * n * 4 + ck * 4;
            } else {
                fms = gb_time(be, 5, [=]() { return be->rwkv6->wkv6_forward(be, y, NULL, ckpt, r, k, v, dec, NULL, B, T, H, N, 0.125f); });
                bms = gb_time(be, 5, [=]() {
                    return be->rwkv6->wkv6_backward(be, dr, dk, dv, dd, dy, r, k, v, dec, ckpt, B, T, H, N, 0.125f);
                });
                fbytes = 5.0 * n * 4 + ck * 4, bbytes = 9.0 * n * 4 + ck * 4;
            }
            char name[64];
            snprintf(name, sizeof name, "WKV%d B%d T%d H%d", arch, B, T, H);
            printf("  %-22s %-5s %9.3f %9.0f %6.1f%%\n", name, "fwd", fms, fbytes / (fms * 1e-3) / 1e9, 100 * fbytes / (fms * 1e-3) / 1e9 / dev.copy);
            printf("  %-22s %-5s %9.3f %9.0f %6.1f%%\n", name, "bwd", bms, bbytes / (bms * 1e-3) / 1e9, 100 * bbytes / (bms * 1e-3) / 1e9 / dev.copy);
            printf("  %-22s %-5s %9.3f\n", name, "both", fms + bms);
            fflush(stdout);
            be->mem->free(be, buf);
        }
    be->mem->free(be, A), be->mem->free(be, Cm);
    arwkv_backend_destroy(be);
    return 0;
}

/* ---- the profile: every op table wrapped with device events -------------------------------------- */
enum { GP_MATMUL, GP_ATTENTION, GP_WKV, GP_ELEMENTWISE, GP_LOSS, GP_OPTIM, GP_COPY, GP_KINDS };
static const char *const gp_kind_names[GP_KINDS] = {"matrix products", "attention", "WKV", "elementwise", "losses", "optimizer", "copies"};
static const int gp_kind_flops[GP_KINDS] = {1, 1, 0, 0, 0, 0, 0}; /* work in FLOP (else in bytes) */

enum { GP_MAX_CALLS = 60000 };
typedef struct gp_state {
    int on, n, dropped;
    hipStream_t stream;
    hipEvent_t *ev;
    int kind[GP_MAX_CALLS];
    double work[GP_MAX_CALLS];
    int shape[GP_MAX_CALLS][4]; /* matrix products: M, N, K, layout (1: A transposed, 2: B not [N,K] bf16) */
    /* device memory in use through mem->alloc, and its highest value */
    std::map<void *, size_t> *sizes;
    size_t in_use, peak;
} gp_state;
static gp_state gp;

static int gp_begin(void) {
    if (!gp.on) return -1;
    if (gp.n >= GP_MAX_CALLS) {
        gp.dropped++;
        return -1;
    }
    (void)hipEventRecord(gp.ev[2 * gp.n], gp.stream);
    return gp.n++;
}
static void gp_end(int i, int kind, double work) {
    if (i < 0) return;
    (void)hipEventRecord(gp.ev[2 * i + 1], gp.stream);
    gp.kind[i] = kind, gp.work[i] = work;
}

/* Bytes of an elementwise op from its arguments: n (the size_t argument) floats through each
   non-NULL float pointer. Ops without a size_t count report no bytes. */
struct gp_count {
    int ptrs = 0;
    double n = 0;
};
template <typename X> static void gp_visit(gp_count &c, X x) {
    if constexpr (std::is_same<X, float *>::value || std::is_same<X, const float *>::value) c.ptrs += x != NULL;
    else if constexpr (std::is_same<X, size_t>::value) c.n = (double)x;
}
template <typename... A> static double gp_generic_bytes(A... a) {
    gp_count c;
    (gp_visit(c, a), ...);
    return c.n * 4 * c.ptrs;
}

/* The wrapper of one table member: the original table is kept in gp_orig<Table>. */
template <typename Tab> static Tab gp_orig;
template <typename Mem> struct gp_member;
template <typename Tab, typename... A> struct gp_member<arwkv_result (*Tab::*)(arwkv_backend *, A...)> {
    template <arwkv_result (*Tab::*mem)(arwkv_backend *, A...), int kind, double (*work)(A...)>
    static arwkv_result call(arwkv_backend *be, A... a) {
        int i = gp_begin();
        arwkv_result r = (gp_orig<Tab>.*mem)(be, a...);
        double w;
        if constexpr (work != nullptr) w = work(a...);
        else w = gp_generic_bytes(a...);
        gp_end(i, kind, w);
        return r;
    }
};
#define GP_WRAP(table, member, kind, work) \
    table.member = &gp_member<decltype(&std::remove_reference<decltype(table)>::type::member)>::template call<&std::remove_reference<decltype(table)>::type::member, kind, work>

static double gp_w_gemm(int M, int N, int K, const float *, ptrdiff_t, ptrdiff_t a_cs, const void *, arwkv_dtype bt, ptrdiff_t b_rs,
                        ptrdiff_t, float *, ptrdiff_t, int, const float *) {
    if (gp.on && gp.n > 0 && gp.n <= GP_MAX_CALLS) {
        int *sh = gp.shape[gp.n - 1];
        sh[0] = M, sh[1] = N, sh[2] = K, sh[3] = (a_cs != 1) | ((bt != ARWKV_BF16 || b_rs != 1) << 1);
    }
    return 2.0 * M * N * K;
}
static double gp_w_attention(float *, const float *, const float *, const float *, int B, int Tq, int p0, int H, int, int D, ptrdiff_t) {
    return 4.0 * B * H * D * (double)Tq * (p0 + (Tq + 1) / 2.0);
}
static double gp_w_wkv7f(int B, int T, int H, int N, const float *, const float *, const float *, const float *, const float *,
                         const float *, float *, float *, float *) {
    return 7.0 * B * T * H * N * 4 + (double)B * H * ((T + 15) / 16) * N * N * 4;
}
static double gp_w_wkv7b(int B, int T, int H, int N, const float *, const float *, const float *, const float *, const float *,
                         const float *, const float *, const float *, float *, float *, float *, float *, float *, float *, float *) {
    return 16.0 * B * T * H * N * 4 + (double)B * H * ((T + 15) / 16) * N * N * 4;
}
static double gp_w_wkv6f(float *, float *, float *, const float *, const float *, const float *, const float *, const float *, int B, int T,
                         int H, int N, float) {
    return 5.0 * B * T * H * N * 4 + (double)B * H * ((T + 15) / 16) * N * N * 4;
}
static double gp_w_wkv6b(float *, float *, float *, float *, const float *, const float *, const float *, const float *, const float *,
                         const float *, int B, int T, int H, int N, float) {
    return 9.0 * B * T * H * N * 4 + (double)B * H * ((T + 15) / 16) * N * N * 4;
}
static double gp_w_logits(float *, const float *t, const int32_t *, int rows, int V, float, float, float, float, float *, float *) {
    return (t ? 3.0 : 2.0) * rows * V * 4;
}
static double gp_w_align(arwkv_align_kind, const float *, const float *, int rows, int C, float, float *, float *) {
    return 3.0 * rows * C * 4;
}
static double gp_w_rms_f(float *, float *, const float *, const void *, arwkv_dtype, int T, int C, float) { return 2.0 * T * C * 4; }
static double gp_w_rms_b(float *, float *, const float *, const float *, const void *, arwkv_dtype, const float *, int T, int C, int) {
    return 3.0 * T * C * 4;
}
static double gp_w_embed_f(float *, const int32_t *, int T, const void *, arwkv_dtype t, int C) {
    return (double)T * C * (4 + arwkv_dtype_size(t));
}
static double gp_w_upload(void *, const void *, size_t bytes) { return (double)bytes; }
static double gp_w_copy(void *, const void *, size_t bytes) { return 2.0 * bytes; }
static double gp_w_zero(void *, size_t bytes) { return (double)bytes; }

static arwkv_result gp_alloc(arwkv_backend *be, size_t bytes, void **out) {
    arwkv_result r = gp_orig<arwkv_mem_ops>.alloc(be, bytes, out);
    if (r == ARWKV_OK) {
        (*gp.sizes)[*out] = bytes;
        gp.in_use += bytes;
        if (gp.in_use > gp.peak) gp.peak = gp.in_use;
    }
    return r;
}
static void gp_free(arwkv_backend *be, void *p) {
    auto it = gp.sizes->find(p);
    if (it != gp.sizes->end()) gp.in_use -= it->second, gp.sizes->erase(it);
    gp_orig<arwkv_mem_ops>.free(be, p);
}

static arwkv_mem_ops gp_mem;
static arwkv_core_ops gp_core;
static arwkv_qwen_ops gp_qwen;
static arwkv_rwkv7_ops gp_rwkv7;
static arwkv_rwkv6_ops gp_rwkv6;
static arwkv_loss_ops gp_loss;
static arwkv_optim_ops gp_optim;

/* Route every op of be through the wrappers (they time only while gp.on). */
static void gp_install(arwkv_backend *be) {
    gp.stream = gb_stream(be);
    gp.ev = (hipEvent_t *)calloc(2 * GP_MAX_CALLS, sizeof(hipEvent_t));
    for (int i = 0; i < 2 * GP_MAX_CALLS; i++) (void)hipEventCreate(&gp.ev[i]);
    gp.sizes = new std::map<void *, size_t>();
    gp_orig<arwkv_mem_ops> = *be->mem, gp_orig<arwkv_core_ops> = *be->core, gp_orig<arwkv_qwen_ops> = *be->qwen;
    gp_orig<arwkv_rwkv7_ops> = *be->rwkv7, gp_orig<arwkv_rwkv6_ops> = *be->rwkv6;
    gp_orig<arwkv_loss_ops> = *be->loss, gp_orig<arwkv_optim_ops> = *be->optim;
    gp_mem = *be->mem, gp_core = *be->core, gp_qwen = *be->qwen, gp_rwkv7 = *be->rwkv7, gp_rwkv6 = *be->rwkv6;
    gp_loss = *be->loss, gp_optim = *be->optim;
    gp_mem.alloc = gp_alloc, gp_mem.free = gp_free;
    GP_WRAP(gp_mem, upload, GP_COPY, gp_w_upload);
    GP_WRAP(gp_mem, download, GP_COPY, gp_w_upload);
    GP_WRAP(gp_mem, copy, GP_COPY, gp_w_copy);
    GP_WRAP(gp_mem, zero, GP_COPY, gp_w_zero);
    GP_WRAP(gp_core, gemm, GP_MATMUL, gp_w_gemm);
    GP_WRAP(gp_core, embed_forward, GP_ELEMENTWISE, gp_w_embed_f);
    GP_WRAP(gp_core, embed_backward, GP_ELEMENTWISE, nullptr);
    GP_WRAP(gp_core, rmsnorm_forward, GP_ELEMENTWISE, gp_w_rms_f);
    GP_WRAP(gp_core, rmsnorm_backward, GP_ELEMENTWISE, gp_w_rms_b);
    GP_WRAP(gp_core, swiglu_forward, GP_ELEMENTWISE, nullptr);
    GP_WRAP(gp_core, swiglu_backward, GP_ELEMENTWISE, nullptr);
    GP_WRAP(gp_core, axpy, GP_ELEMENTWISE, nullptr);
    GP_WRAP(gp_qwen, rope_forward, GP_ELEMENTWISE, nullptr);
    GP_WRAP(gp_qwen, attention_forward, GP_ATTENTION, gp_w_attention);
    GP_WRAP(gp_rwkv7, lerp_forward, GP_ELEMENTWISE, nullptr);
    GP_WRAP(gp_rwkv7, lerp_backward, GP_ELEMENTWISE, nullptr);
    GP_WRAP(gp_rwkv7, act_forward, GP_ELEMENTWISE, nullptr);
    GP_WRAP(gp_rwkv7, act_backward, GP_ELEMENTWISE, nullptr);
    GP_WRAP(gp_rwkv7, prepare_forward, GP_ELEMENTWISE, nullptr);
    GP_WRAP(gp_rwkv7, prepare_backward, GP_ELEMENTWISE, nullptr);
    GP_WRAP(gp_rwkv7, wkv7_forward, GP_WKV, gp_w_wkv7f);
    GP_WRAP(gp_rwkv7, wkv7_backward, GP_WKV, gp_w_wkv7b);
    GP_WRAP(gp_rwkv7, finish_forward, GP_ELEMENTWISE, nullptr);
    GP_WRAP(gp_rwkv7, finish_backward, GP_ELEMENTWISE, nullptr);
    GP_WRAP(gp_rwkv6, shift_forward, GP_ELEMENTWISE, nullptr);
    GP_WRAP(gp_rwkv6, shift_backward, GP_ELEMENTWISE, nullptr);
    GP_WRAP(gp_rwkv6, ddlerp_forward, GP_ELEMENTWISE, nullptr);
    GP_WRAP(gp_rwkv6, ddlerp_backward, GP_ELEMENTWISE, nullptr);
    GP_WRAP(gp_rwkv6, tanh_forward, GP_ELEMENTWISE, nullptr);
    GP_WRAP(gp_rwkv6, tanh_backward, GP_ELEMENTWISE, nullptr);
    GP_WRAP(gp_rwkv6, decay_forward, GP_ELEMENTWISE, nullptr);
    GP_WRAP(gp_rwkv6, decay_backward, GP_ELEMENTWISE, nullptr);
    GP_WRAP(gp_rwkv6, kv_expand_forward, GP_ELEMENTWISE, nullptr);
    GP_WRAP(gp_rwkv6, kv_expand_backward, GP_ELEMENTWISE, nullptr);
    GP_WRAP(gp_rwkv6, wkv6_forward, GP_WKV, gp_w_wkv6f);
    GP_WRAP(gp_rwkv6, wkv6_backward, GP_WKV, gp_w_wkv6b);
    GP_WRAP(gp_rwkv6, gate_forward, GP_ELEMENTWISE, nullptr);
    GP_WRAP(gp_rwkv6, gate_backward, GP_ELEMENTWISE, nullptr);
    GP_WRAP(gp_rwkv6, colsum, GP_ELEMENTWISE, nullptr);
    GP_WRAP(gp_loss, align, GP_LOSS, gp_w_align);
    GP_WRAP(gp_loss, logits_loss, GP_LOSS, gp_w_logits);
    GP_WRAP(gp_optim, sumsq, GP_OPTIM, nullptr);
    GP_WRAP(gp_optim, scale, GP_OPTIM, nullptr);
    GP_WRAP(gp_optim, adamw, GP_OPTIM, nullptr);
    be->mem = &gp_mem, be->core = &gp_core, be->qwen = &gp_qwen, be->rwkv7 = &gp_rwkv7, be->rwkv6 = &gp_rwkv6;
    be->loss = &gp_loss, be->optim = &gp_optim;
}

/* Print the profile of the calls recorded since gp.n was last reset; step_ms is the wall time. */
static void gp_report(arwkv_backend *be, const gb_device *dev, double step_ms) {
    (void)be->mem->sync(be);
    double ms[GP_KINDS] = {0}, work[GP_KINDS] = {0}, work_ms[GP_KINDS] = {0}, total = 0;
    int calls[GP_KINDS] = {0};
    for (int i = 0; i < gp.n; i++) {
        float t = 0;
        (void)hipEventElapsedTime(&t, gp.ev[2 * i], gp.ev[2 * i + 1]);
        int k = gp.kind[i];
        ms[k] += t, calls[k]++, total += t;
        if (gp.work[i] > 0) work[k] += gp.work[i], work_ms[k] += t;
    }
    printf("    %-16s %10s %7s %7s %14s %8s\n", "op kind", "ms/step", "share", "calls", "rate", "%peak");
    for (int k = 0; k < GP_KINDS; k++) {
        if (!calls[k]) continue;
        char rate[32] = "-", peak[16] = "-";
        if (work_ms[k] > 0) {
            double r = work[k] / (work_ms[k] * 1e-3);
            if (gp_kind_flops[k]) snprintf(rate, sizeof rate, "%.1f TFLOP/s", r / 1e12), snprintf(peak, sizeof peak, "%.1f%%", 100 * r / 1e12 / dev->tflops);
            else snprintf(rate, sizeof rate, "%.0f GB/s%s", r / 1e9, work_ms[k] < 0.99 * ms[k] ? "*" : ""),
                 snprintf(peak, sizeof peak, "%.1f%%", 100 * r / 1e9 / dev->copy);
        }
        printf("    %-16s %10.2f %6.1f%% %7d %14s %8s\n", gp_kind_names[k], ms[k], 100 * ms[k] / step_ms, calls[k], rate, peak);
    }
    printf("    %-16s %10.2f %6.1f%%\n", "between ops", step_ms - total, 100 * (step_ms - total) / step_ms);
    /* the matrix products by shape, the costliest first */
    std::map<std::vector<int>, std::pair<double, int>> by_shape;
    for (int i = 0; i < gp.n; i++)
        if (gp.kind[i] == GP_MATMUL) {
            float t = 0;
            (void)hipEventElapsedTime(&t, gp.ev[2 * i], gp.ev[2 * i + 1]);
            auto &e = by_shape[std::vector<int>(gp.shape[i], gp.shape[i] + 4)];
            e.first += t, e.second++;
        }
    std::vector<std::pair<double, std::vector<int>>> order;
    for (auto &e : by_shape) order.push_back({-e.second.first, e.first});
    std::sort(order.begin(), order.end());
    printf("    matrix products by shape (A^T: A read transposed; B*: B packed, not a bf16 [N,K] weight):\n");
    printf("      %7s %7s %7s %-7s %6s %9s %9s\n", "M", "N", "K", "layout", "calls", "ms/step", "TFLOP/s");
    for (size_t j = 0; j < order.size() && j < 10; j++) {
        const std::vector<int> &k = order[j].second;
        const auto &e = by_shape[k];
        char lay[16];
        snprintf(lay, sizeof lay, "%s%s", k[3] & 1 ? "A^T" : "A", k[3] & 2 ? " B*" : " B");
        printf("      %7d %7d %7d %-7s %6d %9.2f %9.1f\n", k[0], k[1], k[2], lay, e.second, e.first,
               2.0 * k[0] * k[1] * (double)k[2] * e.second / (e.first * 1e-3) / 1e12);
    }
    printf("    (GB/s against the measured copy bound; * = bytes counted for part of the kind's ops only%s)\n",
           gp.dropped ? "; some calls past the profiler's capacity were not timed" : "");
}

/* ---- arwkv-bench gpu-train ------------------------------------------------------------------------ */
static void gb_config(const gb_shape &q, arwkv_config *c) {
    memset(c, 0, sizeof *c);
    c->arch = ARWKV_ARCH_QWEN2, c->vocab_size = q.vocab, c->hidden_size = q.C, c->intermediate_size = q.mlp, c->num_layers = q.layers;
    c->num_heads = q.heads, c->num_kv_heads = q.kv_heads, c->head_dim = q.head_dim, c->rms_norm_eps = 1e-6f, c->rope_theta = 1e6;
    c->tie_word_embeddings = q.tied, c->max_position_embeddings = 32768, c->bos_token_id = c->eos_token_id = 151643;
}

/* A teacher of the configuration's shape with random bf16 matrices (uniform, variance 1/in), fp32
   norms of one and zero biases, filled on the device. */
static arwkv_result gb_random_teacher(arwkv_backend *be, const arwkv_config *cfg, arwkv_model **out) {
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
        float a = p->is_matrix ? (float)sqrt(3.0 / (double)p->shape[1]) : 1.0f;
        if (p->is_matrix) gb_fill(be, p->data, ARWKV_BF16, (size_t)p->numel, 100 + i, -a, a);
        else if (strstr(p->name, "norm")) gb_fill(be, p->data, ARWKV_F32, (size_t)p->numel, 100 + i, 1.0f, 1.0f);
    }
    if (r == ARWKV_OK) r = be->mem->sync(be);
    if (r != ARWKV_OK) {
        arwkv_model_free(m);
        return r;
    }
    *out = m;
    return ARWKV_OK;
}

/* One stage on the teacher: a warm-up step, `steps` timed ones, then one profiled step. */
static void gb_train_stage(arwkv_backend *be, const gb_device *dev, arwkv_model *teacher, const gb_shape &q, int stage, int steps) {
    int T = 2048, B = q.batch;
    arwkv_model *s = NULL;
    arwkv_dataset d;
    arwkv_dataset_init(&d);
    size_t n = (size_t)(steps + 3) * B * T + 1;
    int32_t *ids = (int32_t *)malloc(sizeof(int32_t) * n);
    uint64_t x = 99;
    for (size_t i = 0; i < n; i++) {
        x ^= x << 13, x ^= x >> 7, x ^= x << 17;
        ids[i] = (int32_t)(x % 150000);
    }
    arwkv_dataset_append(&d, ids, NULL, n);
    free(ids);
    arwkv_train_options o;
    arwkv_train_options_default(&o, stage);
    o.seq_len = T, o.batch = B, o.steps = steps + 3, o.lr = 1e-4f, o.warmup_steps = 0;
    arwkv_student_options so;
    arwkv_student_options_default(&so);
    so.gate = 0;
    arwkv_trainer *tr = NULL;
    arwkv_step_stats st;
    size_t peak0 = gp.peak;
    gp.peak = gp.in_use;
    arwkv_result r = arwkv_dataset_pack(&d, T, 1);
    if (r == ARWKV_OK) r = arwkv_student_create(teacher, &so, &s);
    if (r == ARWKV_OK) r = arwkv_trainer_create(teacher, s, &o, &d, &tr);
    if (r == ARWKV_OK) r = arwkv_trainer_step(tr, &st);
    double t0 = bench_now();
    for (int i = 0; i < steps && r == ARWKV_OK; i++) r = arwkv_trainer_step(tr, &st);
    if (r == ARWKV_OK) r = be->mem->sync(be);
    double dt = (bench_now() - t0) / steps;
    size_t scratch = ARWKV__G(be)->scratch_size + ARWKV__G(be)->pack_size; /* split-K sums, bf16 operand copies */
    if (r != ARWKV_OK) {
        printf("  %-5s stage %d  B%d T%d: %s\n", q.name, stage, B, T, arwkv_last_error());
    } else {
        printf("  %-5s stage %d  B%d T%d: %8.0f tokens/s (%.2f x lean PyTorch's %.0f on an H100)  %7.1f ms/step  peak %.1f GiB "
               "(allocations %.1f + scratch %.1f)  loss %.4f\n",
               q.name, stage, B, T, B * T / dt, B * T / dt / q.lean[stage - 1], q.lean[stage - 1], dt * 1e3, (gp.peak + scratch) / 1073741824.0,
               gp.peak / 1073741824.0, scratch / 1073741824.0, st.loss);
        fflush(stdout);
        gp.n = 0, gp.dropped = 0, gp.on = 1;
        double p0 = bench_now();
        r = arwkv_trainer_step(tr, &st);
        if (r == ARWKV_OK) r = be->mem->sync(be);
        double pms = (bench_now() - p0) * 1e3;
        gp.on = 0;
        if (r == ARWKV_OK) gp_report(be, dev, pms);
        printf("    (the profiled step took %.1f ms with its %d event pairs)\n", pms, gp.n);
        fflush(stdout);
    }
    arwkv_trainer_free(tr);
    arwkv_model_free(s);
    arwkv_dataset_free(&d);
    gp.peak = gp.peak > peak0 ? gp.peak : peak0;
}

static int bench_gpu_train(int argc, char **argv) {
    const char *which = argc >= 2 ? argv[1] : "all";
    int steps = bench_int_arg(argc, argv, 2, "STEPS", 3);
    if (steps < 1) steps = 1;
    int any = 0;
    for (int s = 0; s < GB_NSHAPES; s++) any |= strcmp(which, "all") == 0 || strcmp(which, gb_shapes[s].name) == 0;
    if (!any) {
        fprintf(stderr, "gpu-train: unknown shape '%s' (0.5b, 1.5b, 7b or all)\n", which);
        return 2;
    }
    arwkv_backend *be;
    if (arwkv_backend_gpu(0, &be) != ARWKV_OK) {
        fprintf(stderr, "gpu-train: %s\n", arwkv_last_error());
        return 1;
    }
    gb_device dev;
    gb_device_info(be, &dev);
    gp_install(be);
    printf("  random Qwen2.5-shaped teachers (bf16 matrices), ARWKV-7 students without gate, sequences of 2048, %d timed steps after one warm-up\n",
           steps);
    int status = 0;
    for (int s = 0; s < GB_NSHAPES; s++) {
        const gb_shape &q = gb_shapes[s];
        if (strcmp(which, "all") != 0 && strcmp(which, q.name) != 0) continue;
        arwkv_config c;
        gb_config(q, &c);
        arwkv_model *t = NULL;
        if (gb_random_teacher(be, &c, &t) != ARWKV_OK) {
            printf("  %-5s teacher: %s\n", q.name, arwkv_last_error());
            status = 1;
            continue;
        }
        printf("  %-5s teacher: %.0f M parameters\n", q.name, arwkv_model_numel(t) / 1e6);
        for (int stage = 1; stage <= 2; stage++) gb_train_stage(be, &dev, t, q, stage, steps);
        arwkv_model_free(t);
    }
    arwkv_backend_destroy(be);
    return status;
}
