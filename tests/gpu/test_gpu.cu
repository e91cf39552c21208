/* test_gpu: every op of the GPU backend (arwkv_hip.h) against the CPU backend, on fresh random
   inputs of several shapes (sizes that are not multiples of the tiles, single rows, odd strides).
   Outputs are poisoned with NaN before each call, so an element the kernel forgets to write fails
   the comparison. Tolerances: fp32 paths 1e-5 of the largest reference value (float64 sums on both
   sides), bf16 matrix-unit products 1e-2. Ends with timings (matrix product, bandwidth) and the
   device's name.

   Built by `make gpu` (nvcc) or `make gpu-hip` (hipcc); needs a GPU to run. test_gpu_emu.cpp builds
   the same tests against the CPU emulator of tests/gpu/emu.h (part of `make test`). */
#define ARWKV_IMPLEMENTATION
#include "arwkv.h"
#define ARWKV_HIP_IMPLEMENTATION
#include "arwkv_hip.h"
#include "test.h"

#include <algorithm>
#include <string>
#include <vector>

static arwkv_backend *cpu, *gpu;

static arwkv__gpu *gpu_state(void) { return ARWKV__G(gpu); }

/* ---- device buffers for tests: every failure aborts (the tests themselves check results) ---- */
static void die(const char *what) {
    printf("FATAL %s: %s\n", what, arwkv_last_error());
    exit(2);
}
static void *dev_alloc(size_t bytes) {
    void *p;
    if (gpu->mem->alloc(gpu, bytes, &p) != ARWKV_OK) die("alloc");
    return p;
}
static void *dev_from(const void *host, size_t bytes) {
    void *p = dev_alloc(bytes);
    if (gpu->mem->upload(gpu, p, host, bytes) != ARWKV_OK) die("upload");
    return p;
}
/* a buffer of NaNs (all bits set: a NaN as fp32 and as bf16) */
static void *dev_poison(size_t bytes) {
    std::vector<unsigned char> nan(bytes ? bytes : 1, 0xff);
    return dev_from(nan.data(), bytes);
}
static void dev_to(void *host, const void *dev, size_t bytes) {
    if (gpu->mem->download(gpu, host, dev, bytes) != ARWKV_OK) die("download");
}
static void dev_free(void *p) { gpu->mem->free(gpu, p); }

static std::vector<float> randn(size_t n, float scale) {
    std::vector<float> v(n);
    test_fill_randn(v.data(), n, scale);
    return v;
}
static std::vector<uint16_t> to_half(const std::vector<float> &x, arwkv_dtype t) {
    std::vector<uint16_t> h(x.size());
    for (size_t i = 0; i < x.size(); i++) h[i] = t == ARWKV_BF16 ? arwkv_f32_to_bf16(x[i]) : arwkv_f32_to_f16(x[i]);
    return h;
}
static std::vector<float> from_dev(const float *d, size_t n);
/* max |a-b| / max |b| over n, with NaN as infinity */
static double rel(const float *a, const float *b, size_t n) {
    for (size_t i = 0; i < n; i++)
        if (isnan(a[i]) != isnan(b[i])) return INFINITY;
    return test_rel_err(a, b, n);
}

/* ============================================================================================
   Memory
   ============================================================================================ */
TEST(memory_ops) {
    size_t n = 100003;
    float *d = (float *)dev_alloc(n * sizeof(float));
    std::vector<float> host(n, 1.0f), back(n);
    dev_to(back.data(), d, n * sizeof(float));
    size_t nonzero = 0;
    for (float v : back) nonzero += v != 0.0f;
    CHECK(nonzero == 0, "alloc returned %zu non-zero floats", nonzero);
    std::vector<float> x = randn(n, 1.0f);
    CHECK_OK(gpu->mem->upload(gpu, d, x.data(), n * sizeof(float)));
    float *e = (float *)dev_poison(n * sizeof(float));
    CHECK_OK(gpu->mem->copy(gpu, e, d, n * sizeof(float)));
    dev_to(back.data(), e, n * sizeof(float));
    CHECK(memcmp(back.data(), x.data(), n * sizeof(float)) == 0, "copy then download differs");
    CHECK_OK(gpu->mem->zero(gpu, e + 7, 1000 * sizeof(float)));
    CHECK_OK(gpu->mem->sync(gpu));
    dev_to(back.data(), e, n * sizeof(float));
    int ok = 1;
    for (size_t i = 0; i < n; i++) ok &= (i >= 7 && i < 1007) ? back[i] == 0.0f : back[i] == x[i];
    CHECK(ok, "zero touched the wrong range");
    void *z;
    CHECK_OK(gpu->mem->alloc(gpu, 0, &z));
    CHECK(z != NULL, "alloc of 0 bytes returned NULL");
    dev_free(z);
    dev_free(d);
    dev_free(e);
}

/* ============================================================================================
   Matrix product
   ============================================================================================ */
typedef struct gemm_case {
    const char *name;
    int M, N, K;
    arwkv_dtype bt;
    int layout; /* 0 x W^T (W [N,K]), 1 x @ B (B [K,N]), 2 dW = dy^T x, 3 odd strides, 4 both operands strided */
    int accumulate, bias, pad_c;
} gemm_case;

/* One case on both backends; returns the relative error (or infinity if C's padding was written). */
static double gemm_run(const gemm_case &c) {
    int M = c.M, N = c.N, K = c.K;
    ptrdiff_t a_rs, a_cs, b_rs, b_cs, ldc = N + c.pad_c;
    size_t a_n, b_n;
    switch (c.layout) {
    case 0: a_rs = K, a_cs = 1, b_rs = 1, b_cs = K, a_n = (size_t)M * K, b_n = (size_t)N * K; break;
    case 1: a_rs = K, a_cs = 1, b_rs = N, b_cs = 1, a_n = (size_t)M * K, b_n = (size_t)K * N; break;
    case 2: a_rs = 1, a_cs = M, b_rs = N, b_cs = 1, a_n = (size_t)K * M, b_n = (size_t)K * N; break; /* A = dy [K,M]^T */
    case 3: a_rs = K + 3, a_cs = 1, b_rs = 1, b_cs = K + 5, a_n = (size_t)M * (K + 3), b_n = (size_t)N * (K + 5); break;
    default: a_rs = 2, a_cs = 2 * (ptrdiff_t)M + 1, b_rs = 3, b_cs = 3 * (ptrdiff_t)K + 2, a_n = (size_t)(2 * M + 1) * K + 2,
             b_n = (size_t)(3 * K + 2) * N + 3; break;
    }
    std::vector<float> A = randn(a_n, 1.0f), Bf = randn(b_n, 1.0f), bias = randn((size_t)N, 1.0f);
    std::vector<uint16_t> Bh;
    const void *Bhost = Bf.data();
    size_t esz = arwkv_dtype_size(c.bt);
    if (c.bt != ARWKV_F32) {
        Bh = to_half(Bf, c.bt);
        Bhost = Bh.data();
    }
    size_t c_n = (size_t)M * ldc;
    std::vector<float> C0 = c.accumulate ? randn(c_n, 1.0f) : std::vector<float>(c_n, NAN);
    for (int m = 0; m < M; m++) /* the padding past N stays NaN: nobody may write it */
        for (ptrdiff_t j = N; j < ldc; j++) C0[(size_t)m * ldc + j] = NAN;
    std::vector<float> Cc = C0, Cg(c_n);
    cpu->core->gemm(cpu, M, N, K, A.data(), a_rs, a_cs, Bhost, c.bt, b_rs, b_cs, Cc.data(), ldc, c.accumulate, c.bias ? bias.data() : NULL);
    float *dA = (float *)dev_from(A.data(), a_n * 4), *dC = (float *)dev_from(C0.data(), c_n * 4);
    float *dbias = (float *)dev_from(bias.data(), (size_t)N * 4);
    void *dB = dev_from(Bhost, b_n * esz);
    arwkv_result r = gpu->core->gemm(gpu, M, N, K, dA, a_rs, a_cs, dB, c.bt, b_rs, b_cs, dC, ldc, c.accumulate, c.bias ? dbias : NULL);
    CHECK_OK(r);
    dev_to(Cg.data(), dC, c_n * 4);
    dev_free(dA), dev_free(dB), dev_free(dC), dev_free(dbias);
    for (int m = 0; m < M; m++)
        for (ptrdiff_t j = N; j < ldc; j++)
            if (!isnan(Cg[(size_t)m * ldc + j])) return INFINITY;
    /* error over the whole [M,N] window, relative to its largest value */
    double md = 0, mb = 0;
    for (int m = 0; m < M; m++)
        for (int n = 0; n < N; n++) {
            float g = Cg[(size_t)m * ldc + n], h = Cc[(size_t)m * ldc + n];
            if (isnan(g) || isnan(h)) return INFINITY;
            md = fmax(md, fabs((double)g - h));
            mb = fmax(mb, fabs((double)h));
        }
    return mb > 0 ? md / mb : md;
}

static const gemm_case gemm_cases[] = {
    {"1x1x1 linear f32", 1, 1, 1, ARWKV_F32, 0, 0, 0, 0},
    {"1x300x77 linear bf16 (decode row)", 1, 300, 77, ARWKV_BF16, 0, 0, 1, 0},
    {"7x33x5 linear f16", 7, 33, 5, ARWKV_F16, 0, 1, 0, 3},
    {"128x128x32 linear bf16", 128, 128, 32, ARWKV_BF16, 0, 0, 0, 0},
    {"130x257x100 lora f32", 130, 257, 100, ARWKV_F32, 1, 0, 1, 0},
    {"96x896x896 linear bf16 + bias", 96, 896, 896, ARWKV_BF16, 0, 0, 1, 0},
    {"896x896x200 dW = dy^T x", 896, 896, 200, ARWKV_F32, 2, 1, 0, 0},
    {"77x64x513 dW = dy^T x, ldc+5", 77, 64, 513, ARWKV_F32, 2, 0, 0, 5},
    {"333x129x513 odd strides bf16", 333, 129, 513, ARWKV_BF16, 3, 1, 1, 7},
    {"65x70x45 odd strides f32", 65, 70, 45, ARWKV_F32, 3, 0, 0, 1},
    {"50x61x37 both strided f16", 50, 61, 37, ARWKV_F16, 4, 0, 1, 2},
    {"31x17x29 both strided f32 accumulate", 31, 17, 29, ARWKV_F32, 4, 1, 0, 0},
    {"5x7x0 empty sum + bias", 5, 7, 0, ARWKV_BF16, 0, 0, 1, 0},
    {"257x1000x1024 linear bf16", 257, 1000, 1024, ARWKV_BF16, 0, 0, 0, 0},
    {"300x2048x40 lora bf16 accumulate", 300, 2048, 40, ARWKV_BF16, 1, 1, 1, 0},
    {"2x130x20000 split K + bias", 2, 130, 20000, ARWKV_BF16, 0, 0, 1, 0},
    {"140x64x9000 split K, dW layout, accumulate", 140, 64, 9000, ARWKV_F32, 2, 1, 0, 3},
    {"33x77x6001 split K, odd strides", 33, 77, 6001, ARWKV_F16, 3, 0, 1, 1},
};

/* Every case on the matrix units (bf16 operands, 1e-2) and on the fp32 SIMT path (1e-5). */
TEST(gemm_matrix_units_bf16) {
    arwkv__gpu *g = gpu_state();
    if (!g->has_mma) SKIP("this build or device has no matrix-unit kernel");
    g->gemm_fp32 = 0;
    for (const gemm_case &c : gemm_cases) {
        double e = gemm_run(c);
        CHECK(e < 1e-2, "%s: relative error %.3g", c.name, e);
        if (getenv("ARWKV_TEST_VERBOSE")) printf("    %-40s %.3g\n", c.name, e);
    }
}

TEST(gemm_simt_fp32) {
    arwkv__gpu *g = gpu_state();
    int saved = g->gemm_fp32;
    g->gemm_fp32 = 1;
    for (const gemm_case &c : gemm_cases) {
        double e = gemm_run(c);
        CHECK(e < 1e-5, "%s: relative error %.3g", c.name, e);
        if (getenv("ARWKV_TEST_VERBOSE")) printf("    %-40s %.3g\n", c.name, e);
    }
    g->gemm_fp32 = saved;
}

/* Hopper's wgmma path (sm_90a): every case above and larger awkward ones, forced onto it whatever
   their size (by default small products stay on mma.sync), at the bf16 tolerance 1e-2. The cases
   cover B read in place (bf16 [N,K] with 16-byte rows) and packed (f32, f16, transposed, odd
   strides), K not a multiple of 8 or 64, split K and a long K kept whole, both tile widths, bias and
   accumulate. */
static const gemm_case wgmma_cases[] = {
    {"1000x1000x1000 linear bf16 (B in place)", 1000, 1000, 1000, ARWKV_BF16, 0, 0, 0, 0},
    {"8192x128x896 k/v projection", 8192, 128, 896, ARWKV_BF16, 0, 0, 1, 0},
    {"300x2100x904 linear bf16 + bias, ldc+3", 300, 2100, 904, ARWKV_BF16, 0, 0, 1, 3},
    {"517x900x333 dx layout (B [K,N]) bf16", 517, 900, 333, ARWKV_BF16, 1, 1, 0, 0},
    {"896x640x2500 dW = dy^T x accumulate", 896, 640, 2500, ARWKV_F32, 2, 1, 0, 0},
    {"129x257x12000 split K f16 + bias", 129, 257, 12000, ARWKV_F16, 0, 0, 1, 1},
    {"200x700x9000 split K dW layout", 200, 700, 9000, ARWKV_F32, 2, 0, 0, 0},
    {"1500x1200x130 both strided bf16", 1500, 1200, 130, ARWKV_BF16, 4, 1, 1, 0},
    {"2048x2048x5000 dW layout, K whole (128 tiles)", 2048, 2048, 5000, ARWKV_F32, 2, 1, 0, 0},
};
TEST(gemm_wgmma_bf16) {
    arwkv__gpu *g = gpu_state();
    if (!g->has_wgmma) SKIP("no wgmma path: needs a Hopper GPU (compute capability 9.0) and a build for sm_90a");
    double saved = g->wgmma_min_macs;
    g->wgmma_min_macs = 0;
    g->gemm_fp32 = 0;
    std::vector<gemm_case> cases(gemm_cases, gemm_cases + sizeof gemm_cases / sizeof gemm_cases[0]);
    cases.insert(cases.end(), wgmma_cases, wgmma_cases + sizeof wgmma_cases / sizeof wgmma_cases[0]);
    for (const gemm_case &c : cases) {
        double e = gemm_run(c); /* (an empty sum, K = 0, stays on the other path) */
        CHECK(e < 1e-2, "%s: relative error %.3g", c.name, e);
        if (getenv("ARWKV_TEST_VERBOSE")) printf("    wgmma %-40s %.3g\n", c.name, e);
    }
    g->wgmma_min_macs = saved;
}

/* The same inputs give the same bits twice (no atomics, no scheduling dependence). */
TEST(gemm_repeatable) {
    int M = 200, N = 300, K = 700;
    std::vector<float> A = randn((size_t)M * K, 1.0f), B = randn((size_t)N * K, 1.0f), c1((size_t)M * N), c2((size_t)M * N);
    std::vector<uint16_t> Bh = to_half(B, ARWKV_BF16);
    float *dA = (float *)dev_from(A.data(), A.size() * 4), *dC = (float *)dev_poison(c1.size() * 4);
    void *dB = dev_from(Bh.data(), Bh.size() * 2);
    CHECK_OK(gpu->core->gemm(gpu, M, N, K, dA, K, 1, dB, ARWKV_BF16, 1, K, dC, N, 0, NULL));
    dev_to(c1.data(), dC, c1.size() * 4);
    CHECK_OK(gpu->core->gemm(gpu, M, N, K, dA, K, 1, dB, ARWKV_BF16, 1, K, dC, N, 0, NULL));
    dev_to(c2.data(), dC, c2.size() * 4);
    CHECK(memcmp(c1.data(), c2.data(), c1.size() * 4) == 0, "two identical products differ");
    dev_free(dA), dev_free(dB), dev_free(dC);
}

/* ============================================================================================
   Embedding, RMSNorm, SwiGLU, axpy
   ============================================================================================ */
TEST(embedding_forward_backward) {
    const int shapes[][3] = {{1, 1, 5}, {37, 130, 50}, {300, 896, 1000}, {64, 7, 3}}; /* T, C, vocab */
    const arwkv_dtype types[3] = {ARWKV_F32, ARWKV_BF16, ARWKV_F16};
    for (auto &s : shapes) {
        int T = s[0], C = s[1], V = s[2];
        std::vector<int32_t> ids(T);
        for (int t = 0; t < T; t++) ids[t] = (int32_t)(test_uniform() * V); /* small vocabularies repeat ids */
        int32_t *dids = (int32_t *)dev_from(ids.data(), ids.size() * 4);
        for (arwkv_dtype ty : types) {
            std::vector<float> tab = randn((size_t)V * C, 1.0f);
            std::vector<uint16_t> h;
            const void *host = tab.data();
            if (ty != ARWKV_F32) h = to_half(tab, ty), host = h.data();
            size_t tb = (size_t)V * C * arwkv_dtype_size(ty);
            void *dtab = dev_from(host, tb);
            std::vector<float> oc((size_t)T * C), og((size_t)T * C);
            cpu->core->embed_forward(cpu, oc.data(), ids.data(), T, host, ty, C);
            float *dout = (float *)dev_poison(og.size() * 4);
            CHECK_OK(gpu->core->embed_forward(gpu, dout, dids, T, dtab, ty, C));
            dev_to(og.data(), dout, og.size() * 4);
            CHECK(memcmp(oc.data(), og.data(), og.size() * 4) == 0, "T=%d C=%d %s: forward differs", T, C, arwkv_dtype_name(ty));
            dev_free(dtab), dev_free(dout);
        }
        /* backward: into a table that already holds a gradient */
        std::vector<float> dy = randn((size_t)T * C, 1.0f), g0 = randn((size_t)V * C, 1.0f), gc = g0, gg((size_t)V * C);
        cpu->core->embed_backward(cpu, gc.data(), ids.data(), T, dy.data(), C);
        float *ddy = (float *)dev_from(dy.data(), dy.size() * 4), *dg = (float *)dev_from(g0.data(), g0.size() * 4);
        CHECK_OK(gpu->core->embed_backward(gpu, dg, dids, T, ddy, C));
        dev_to(gg.data(), dg, gg.size() * 4);
        CHECK(memcmp(gc.data(), gg.data(), gg.size() * 4) == 0, "T=%d C=%d: backward is not bit-identical (max rel %.3g)", T, C,
              rel(gg.data(), gc.data(), gg.size()));
        dev_free(ddy), dev_free(dg), dev_free(dids);
    }
}

TEST(rmsnorm_forward_backward) {
    const int shapes[][2] = {{1, 1}, {7, 130}, {64, 896}, {3, 3584}, {513, 64}};
    const arwkv_dtype types[3] = {ARWKV_F32, ARWKV_BF16, ARWKV_F16};
    for (auto &s : shapes)
        for (arwkv_dtype ty : types) {
            int T = s[0], C = s[1];
            float eps = 1e-6f;
            std::vector<float> x = randn((size_t)T * C, 2.0f), w = randn((size_t)C, 1.0f), dy = randn((size_t)T * C, 1.0f);
            std::vector<uint16_t> wh;
            const void *wp = w.data();
            if (ty != ARWKV_F32) wh = to_half(w, ty), wp = wh.data();
            size_t wb = (size_t)C * arwkv_dtype_size(ty);
            std::vector<float> yc((size_t)T * C), rc(T), yg((size_t)T * C), rg(T);
            cpu->core->rmsnorm_forward(cpu, yc.data(), rc.data(), x.data(), wp, ty, T, C, eps);
            float *dx_in = (float *)dev_from(x.data(), x.size() * 4), *dy_ = (float *)dev_poison(yg.size() * 4), *dr = (float *)dev_poison((size_t)T * 4);
            void *dw = dev_from(wp, wb);
            CHECK_OK(gpu->core->rmsnorm_forward(gpu, dy_, dr, dx_in, dw, ty, T, C, eps));
            dev_to(yg.data(), dy_, yg.size() * 4);
            dev_to(rg.data(), dr, (size_t)T * 4);
            double e1 = rel(yg.data(), yc.data(), yg.size()), e2 = rel(rg.data(), rc.data(), (size_t)T);
            CHECK(e1 < 1e-5 && e2 < 1e-5, "T=%d C=%d %s forward: out %.3g rstd %.3g", T, C, arwkv_dtype_name(ty), e1, e2);
            /* without rstd */
            CHECK_OK(gpu->core->rmsnorm_forward(gpu, dy_, NULL, dx_in, dw, ty, T, C, eps));
            /* backward, both modes of dx, dw accumulated into an existing gradient */
            for (int acc = 0; acc < 2; acc++) {
                std::vector<float> dx0 = acc ? randn((size_t)T * C, 1.0f) : std::vector<float>((size_t)T * C, NAN);
                std::vector<float> dw0 = randn((size_t)C, 1.0f), dxc = dx0, dwc = dw0, dxg((size_t)T * C), dwg((size_t)C);
                cpu->core->rmsnorm_backward(cpu, dxc.data(), dwc.data(), dy.data(), x.data(), wp, ty, rc.data(), T, C, acc);
                float *ddx = (float *)dev_from(dx0.data(), dx0.size() * 4), *ddw = (float *)dev_from(dw0.data(), dw0.size() * 4);
                float *ddy = (float *)dev_from(dy.data(), dy.size() * 4), *drc = (float *)dev_from(rc.data(), (size_t)T * 4);
                CHECK_OK(gpu->core->rmsnorm_backward(gpu, ddx, ddw, ddy, dx_in, dw, ty, drc, T, C, acc));
                dev_to(dxg.data(), ddx, dxg.size() * 4);
                dev_to(dwg.data(), ddw, dwg.size() * 4);
                /* dx = r w dy - x k is a difference of nearly equal terms when C is tiny (C = 1: exactly
                   r w dy eps / (x^2 + eps)), so its error is judged against the size of those terms */
                double ex = rel(dxg.data(), dxc.data(), dxg.size()), ew = rel(dwg.data(), dwc.data(), dwg.size()), terms = 0, big = 0;
                for (size_t i = 0; i < dxc.size(); i++) {
                    float wi = ty == ARWKV_F32 ? w[i % C] : ty == ARWKV_BF16 ? arwkv_bf16_to_f32(wh[i % C]) : arwkv_f16_to_f32(wh[i % C]);
                    terms = fmax(terms, fabs((double)rc[i / C] * wi * dy[i])), big = fmax(big, fabs((double)dxc[i]));
                }
                if (isfinite(ex) && big < terms) ex *= big / terms;
                CHECK(ex < 1e-5 && ew < 1e-5, "T=%d C=%d %s backward acc=%d: dx %.3g dw %.3g", T, C, arwkv_dtype_name(ty), acc, ex, ew);
                /* dw may be NULL, dx may be NULL */
                CHECK_OK(gpu->core->rmsnorm_backward(gpu, ddx, NULL, ddy, dx_in, dw, ty, drc, T, C, acc));
                CHECK_OK(gpu->core->rmsnorm_backward(gpu, NULL, ddw, ddy, dx_in, dw, ty, drc, T, C, acc));
                CHECK_OK(gpu->mem->sync(gpu));
                dev_free(ddx), dev_free(ddw), dev_free(ddy), dev_free(drc);
            }
            dev_free(dx_in), dev_free(dy_), dev_free(dr), dev_free(dw);
        }
}

TEST(swiglu_axpy) {
    const size_t sizes[] = {1, 1000, (1u << 20) + 3};
    for (size_t n : sizes) {
        std::vector<float> gate = randn(n, 3.0f), up = randn(n, 1.0f), dout = randn(n, 1.0f);
        std::vector<float> oc(n), og(n), dgc(n), duc(n), dgg(n), dug(n);
        cpu->core->swiglu_forward(cpu, oc.data(), gate.data(), up.data(), n);
        cpu->core->swiglu_backward(cpu, dgc.data(), duc.data(), dout.data(), gate.data(), up.data(), n);
        float *dg = (float *)dev_from(gate.data(), n * 4), *du = (float *)dev_from(up.data(), n * 4), *dd = (float *)dev_from(dout.data(), n * 4);
        float *o = (float *)dev_poison(n * 4), *dgo = (float *)dev_poison(n * 4), *duo = (float *)dev_poison(n * 4);
        CHECK_OK(gpu->core->swiglu_forward(gpu, o, dg, du, n));
        CHECK_OK(gpu->core->swiglu_backward(gpu, dgo, duo, dd, dg, du, n));
        dev_to(og.data(), o, n * 4), dev_to(dgg.data(), dgo, n * 4), dev_to(dug.data(), duo, n * 4);
        double e1 = rel(og.data(), oc.data(), n), e2 = rel(dgg.data(), dgc.data(), n), e3 = rel(dug.data(), duc.data(), n);
        CHECK(e1 < 1e-5 && e2 < 1e-5 && e3 < 1e-5, "n=%zu: out %.3g dgate %.3g dup %.3g", n, e1, e2, e3);
        /* in place, as the MLP's backward calls it: gate and up become their gradients */
        float *ig = (float *)dev_from(gate.data(), n * 4), *iu = (float *)dev_from(up.data(), n * 4);
        CHECK_OK(gpu->core->swiglu_backward(gpu, ig, iu, dd, ig, iu, n));
        double e4 = rel(from_dev(ig, n).data(), dgc.data(), n), e5 = rel(from_dev(iu, n).data(), duc.data(), n);
        CHECK(e4 < 1e-5 && e5 < 1e-5, "n=%zu in place: dgate %.3g dup %.3g", n, e4, e5);
        dev_free(ig), dev_free(iu);
        /* axpy */
        std::vector<float> y = randn(n, 1.0f), yc = y, yg(n);
        cpu->core->axpy(cpu, yc.data(), -0.37f, gate.data(), n);
        float *dyv = (float *)dev_from(y.data(), n * 4);
        CHECK_OK(gpu->core->axpy(gpu, dyv, -0.37f, dg, n));
        dev_to(yg.data(), dyv, n * 4);
        CHECK(rel(yg.data(), yc.data(), n) < 1e-6, "axpy n=%zu: %.3g", n, rel(yg.data(), yc.data(), n));
        dev_free(dg), dev_free(du), dev_free(dd), dev_free(o), dev_free(dgo), dev_free(duo), dev_free(dyv);
    }
}

/* ============================================================================================
   Losses
   ============================================================================================ */
TEST(align_losses) {
    const int shapes[][2] = {{1, 1}, {7, 64}, {33, 896}, {2, 3584}};
    const arwkv_align_kind kinds[3] = {ARWKV_ALIGN_L2, ARWKV_ALIGN_MSE, ARWKV_ALIGN_COSINE};
    for (auto &s : shapes)
        for (arwkv_align_kind k : kinds) {
            int R = s[0], C = s[1];
            std::vector<float> o = randn((size_t)R * C, 1.0f), a = randn((size_t)R * C, 1.0f);
            if (R > 1) /* one row with o == a: the L2 gradient's 0/0 case */
                memcpy(&o[C], &a[C], (size_t)C * 4);
            std::vector<float> lc(R), dc((size_t)R * C), lg(R), dg((size_t)R * C);
            cpu->loss->align(cpu, k, o.data(), a.data(), R, C, 0.25f, lc.data(), dc.data());
            float *d_o = (float *)dev_from(o.data(), o.size() * 4), *d_a = (float *)dev_from(a.data(), a.size() * 4);
            float *d_l = (float *)dev_poison((size_t)R * 4), *d_d = (float *)dev_poison(dg.size() * 4);
            CHECK_OK(gpu->loss->align(gpu, k, d_o, d_a, R, C, 0.25f, d_l, d_d));
            dev_to(lg.data(), d_l, (size_t)R * 4), dev_to(dg.data(), d_d, dg.size() * 4);
            double e1 = rel(lg.data(), lc.data(), (size_t)R), e2 = rel(dg.data(), dc.data(), dg.size());
            CHECK(e1 < 1e-5 && e2 < 1e-5, "kind %d R=%d C=%d: loss %.3g grad %.3g", (int)k, R, C, e1, e2);
            CHECK_OK(gpu->loss->align(gpu, k, d_o, d_a, R, C, 0.25f, d_l, NULL)); /* loss only */
            CHECK_OK(gpu->mem->sync(gpu));
            dev_free(d_o), dev_free(d_a), dev_free(d_l), dev_free(d_d);
        }
}

TEST(logits_losses) {
    struct {
        int rows, V;
        float tau, kl_w, ce_w;
        int teacher, labels;
    } cases[] = {
        {1, 1, 1.0f, 1.0f, 0.0f, 1, 0},      {3, 100, 1.0f, 1.0f, 0.0f, 1, 0},   {4, 1000, 2.0f, 1.0f, 0.5f, 1, 1},
        {5, 151936, 1.0f, 0.7f, 0.3f, 1, 1}, {3, 5000, 1.0f, 0.0f, 1.0f, 0, 1},  {2, 4097, 0.5f, 1.0f, 1.0f, 1, 1},
    };
    for (auto &c : cases) {
        size_t n = (size_t)c.rows * c.V;
        std::vector<float> s = randn(n, 3.0f), t = randn(n, 3.0f);
        for (size_t i = 0; i < n; i++) t[i] = 0.6f * t[i] + 0.8f * s[i]; /* a teacher that roughly agrees */
        std::vector<int32_t> lab(c.rows);
        for (int r = 0; r < c.rows; r++) lab[r] = r == 1 ? -1 : (int32_t)(test_uniform() * c.V); /* row 1: no target */
        std::vector<float> sc = s, sg(n), klc(c.rows), cec(c.rows), klg(c.rows), ceg(c.rows);
        const float *tp = c.teacher ? t.data() : NULL;
        const int32_t *lp = c.labels ? lab.data() : NULL;
        CHECK_OK(cpu->loss->logits_loss(cpu, sc.data(), tp, lp, c.rows, c.V, c.tau, c.kl_w, c.ce_w, 0.125f, klc.data(), cec.data()));
        float *ds = (float *)dev_from(s.data(), n * 4), *dt = (float *)dev_from(t.data(), n * 4);
        int32_t *dl = (int32_t *)dev_from(lab.data(), (size_t)c.rows * 4);
        float *dkl = (float *)dev_poison((size_t)c.rows * 4), *dce = (float *)dev_poison((size_t)c.rows * 4);
        CHECK_OK(gpu->loss->logits_loss(gpu, ds, c.teacher ? dt : NULL, c.labels ? dl : NULL, c.rows, c.V, c.tau, c.kl_w, c.ce_w, 0.125f,
                                        dkl, dce));
        dev_to(sg.data(), ds, n * 4), dev_to(klg.data(), dkl, (size_t)c.rows * 4), dev_to(ceg.data(), dce, (size_t)c.rows * 4);
        double eg = rel(sg.data(), sc.data(), n), ek = rel(klg.data(), klc.data(), (size_t)c.rows), ec = rel(ceg.data(), cec.data(), (size_t)c.rows);
        CHECK(eg < 1e-5 && ek < 1e-5 && ec < 1e-5, "rows %d V %d tau %g: grad %.3g kl %.3g ce %.3g", c.rows, c.V, (double)c.tau, eg, ek, ec);
        /* kl and ce may be NULL */
        CHECK_OK(gpu->loss->logits_loss(gpu, ds, c.teacher ? dt : NULL, c.labels ? dl : NULL, c.rows, c.V, c.tau, c.kl_w, c.ce_w, 0.125f,
                                        NULL, NULL));
        CHECK_OK(gpu->mem->sync(gpu));
        dev_free(ds), dev_free(dt), dev_free(dl), dev_free(dkl), dev_free(dce);
    }
    CHECK(gpu->loss->logits_loss(gpu, NULL, NULL, NULL, 1, 1, 0.0f, 1, 0, 1, NULL, NULL) == ARWKV_ERR_INVALID_ARGUMENT,
          "temperature 0 accepted");
}

/* ============================================================================================
   Optimizer
   ============================================================================================ */
TEST(optimizer_ops) {
    const size_t sizes[] = {1, 777, 3000017};
    for (size_t n : sizes) {
        std::vector<float> g = randn(n, 1.0f), p = randn(n, 1.0f), m = randn(n, 0.1f), v(n);
        for (size_t i = 0; i < n; i++) v[i] = 0.01f * fabsf(g[i]);
        float sc, sg = NAN;
        cpu->optim->sumsq(cpu, g.data(), n, &sc);
        float *dg = (float *)dev_from(g.data(), n * 4);
        CHECK_OK(gpu->optim->sumsq(gpu, dg, n, &sg));
        CHECK(fabs((double)sg - sc) <= 1e-6 * fabs((double)sc), "sumsq n=%zu: %.9g vs %.9g", n, (double)sg, (double)sc);
        /* scale */
        std::vector<float> xs = g, xg(n);
        cpu->optim->scale(cpu, xs.data(), 0.3f, n);
        CHECK_OK(gpu->optim->scale(gpu, dg, 0.3f, n));
        dev_to(xg.data(), dg, n * 4);
        CHECK(memcmp(xg.data(), xs.data(), n * 4) == 0, "scale n=%zu differs", n);
        /* AdamW, a few steps */
        std::vector<float> pc = p, mc = m, vc = v, pg(n), mg(n), vg(n);
        float *dp = (float *)dev_from(p.data(), n * 4), *dm = (float *)dev_from(m.data(), n * 4), *dv = (float *)dev_from(v.data(), n * 4);
        for (int step = 1; step <= 3; step++) {
            cpu->optim->adamw(cpu, pc.data(), xs.data(), mc.data(), vc.data(), n, 1e-3f, 0.9f, 0.95f, 1e-8f, 0.1f, step);
            CHECK_OK(gpu->optim->adamw(gpu, dp, dg, dm, dv, n, 1e-3f, 0.9f, 0.95f, 1e-8f, 0.1f, step));
        }
        dev_to(pg.data(), dp, n * 4), dev_to(mg.data(), dm, n * 4), dev_to(vg.data(), dv, n * 4);
        double e1 = rel(pg.data(), pc.data(), n), e2 = rel(mg.data(), mc.data(), n), e3 = rel(vg.data(), vc.data(), n);
        CHECK(e1 < 1e-6 && e2 < 1e-6 && e3 < 1e-6, "adamw n=%zu: p %.3g m %.3g v %.3g", n, e1, e2, e3);
        dev_free(dg), dev_free(dp), dev_free(dm), dev_free(dv);
    }
    float z = 1;
    CHECK_OK(gpu->optim->sumsq(gpu, NULL, 0, &z));
    CHECK(z == 0, "sumsq of nothing is %g", (double)z);
}

/* ============================================================================================
   Qwen2 attention ops
   ============================================================================================ */
TEST(rope) {
    const int shapes[][4] = {{1, 1, 2, 0}, {37, 2, 64, 0}, {100, 14, 64, 64}, {5, 3, 128, 7}}; /* rows, heads, head_dim, extra row stride */
    for (auto &s : shapes)
        for (int use_pos = 0; use_pos < 2; use_pos++) {
            int rows = s[0], H = s[1], D = s[2];
            ptrdiff_t ld = (ptrdiff_t)H * D + s[3];
            std::vector<float> x = randn((size_t)rows * ld, 1.0f), xc = x, xg(x.size());
            std::vector<int32_t> pos(rows);
            for (int r = 0; r < rows; r++) pos[r] = (int32_t)(test_uniform() * 4000);
            CHECK_OK(cpu->qwen->rope_forward(cpu, xc.data(), rows, H, D, ld, use_pos ? pos.data() : NULL, 17, 1e6));
            float *dx = (float *)dev_from(x.data(), x.size() * 4);
            int32_t *dpos = (int32_t *)dev_from(pos.data(), pos.size() * 4);
            CHECK_OK(gpu->qwen->rope_forward(gpu, dx, rows, H, D, ld, use_pos ? dpos : NULL, 17, 1e6));
            dev_to(xg.data(), dx, xg.size() * 4);
            double e = rel(xg.data(), xc.data(), xg.size());
            CHECK(e < 1e-6, "rows %d heads %d D %d pos %d: %.3g", rows, H, D, use_pos, e);
            dev_free(dx), dev_free(dpos);
        }
    CHECK(gpu->qwen->rope_forward(gpu, NULL, 1, 1, 63, 63, NULL, 0, 1e6) == ARWKV_ERR_INVALID_ARGUMENT, "odd head_dim accepted");
}

/* Attention on every case of `cases`; tol: the tolerance of the path taken. */
static void attention_cases(const int (*cases)[6], size_t n_cases, double tol, const char *path) {
    for (size_t ci = 0; ci < n_cases; ci++) {
        const int *c = cases[ci];
        int B = c[0], Tq = c[1], p0 = c[2], H = c[3], Hkv = c[4], D = c[5];
        ptrdiff_t kv_bs = (ptrdiff_t)(p0 + Tq + 3) * Hkv * D;
        size_t nq = (size_t)B * Tq * H * D, nkv = (size_t)B * kv_bs;
        std::vector<float> q = randn(nq, 2.0f), k = randn(nkv, 1.0f), v = randn(nkv, 1.0f), oc(nq), og(nq);
        CHECK_OK(cpu->qwen->attention_forward(cpu, oc.data(), q.data(), k.data(), v.data(), B, Tq, p0, H, Hkv, D, kv_bs));
        float *dq = (float *)dev_from(q.data(), nq * 4), *dk = (float *)dev_from(k.data(), nkv * 4), *dv = (float *)dev_from(v.data(), nkv * 4);
        float *dout = (float *)dev_poison(nq * 4);
        CHECK_OK(gpu->qwen->attention_forward(gpu, dout, dq, dk, dv, B, Tq, p0, H, Hkv, D, kv_bs));
        dev_to(og.data(), dout, nq * 4);
        double e = rel(og.data(), oc.data(), nq);
        CHECK(e < tol, "%s B%d Tq%d p0 %d H%d Hkv%d D%d: %.3g", path, B, Tq, p0, H, Hkv, D, e);
        printf("    attention (%s) B%d Tq%d p0 %d H%d Hkv%d D%d: %.2e\n", path, B, Tq, p0, H, Hkv, D, e);
        dev_free(dq), dev_free(dk), dev_free(dv), dev_free(dout);
    }
}

/* The fp32 SIMT kernel (every head size, decoding steps; ARWKV_GPU_GEMM=fp32 keeps all attention there). */
TEST(attention) {
    /* B, Tq, p0, H, Hkv, D: as the CPU test, plus longer sequences and the largest GPU head size */
    static const int cases[][6] = {{2, 5, 0, 4, 2, 64},   {2, 70, 0, 4, 1, 64},  {1, 45, 100, 2, 1, 64}, {1, 1, 200, 14, 2, 64},
                                   {3, 33, 3, 6, 3, 24},  {1, 40, 0, 2, 2, 128}, {1, 300, 0, 4, 2, 128}, {2, 20, 5, 2, 1, 256},
                                   {1, 513, 0, 14, 2, 64}, {1, 17, 0, 1, 1, 200}};
    arwkv__gpu *g = gpu_state();
    int saved = g->gemm_fp32;
    g->gemm_fp32 = 1;
    attention_cases(cases, sizeof cases / sizeof cases[0], 1e-5, "fp32");
    g->gemm_fp32 = saved;
    CHECK(gpu->qwen->attention_forward(gpu, NULL, NULL, NULL, NULL, 1, 1, 0, 3, 2, 64, 0) == ARWKV_ERR_INVALID_ARGUMENT,
          "kv heads that do not divide heads accepted");
}

/* The tensor-core kernel (NVIDIA mma.sync; head sizes 64 and 128, 16 queries or more): bf16 Q, K, V
   and P, so 2e-2 of the largest output (4e-3 to 7e-3 seen, with scores of a few units). Tile edges:
   queries and keys not multiples of 64, cached keys (p0 > 0), one kv head for all, several sequences. */
TEST(attention_tensor_cores) {
    arwkv__gpu *g = gpu_state();
    if (!g->has_mma_sync) SKIP("no mma.sync in this build (the tensor-core attention is NVIDIA's)");
    static const int cases[][6] = {{2, 70, 0, 4, 1, 64},  {1, 45, 100, 2, 1, 64}, {1, 16, 0, 2, 2, 128},  {1, 300, 0, 4, 2, 128},
                                   {1, 513, 0, 14, 2, 64}, {3, 64, 64, 6, 3, 64},  {2, 129, 7, 4, 2, 128}, {1, 200, 1000, 2, 1, 128}};
    int saved = g->gemm_fp32;
    g->gemm_fp32 = 0;
    attention_cases(cases, sizeof cases / sizeof cases[0], 2e-2, "tensor cores");
    g->gemm_fp32 = saved;
}

/* ============================================================================================
   RWKV-7 time-mix ops
   ============================================================================================ */

/* Host arrays and their device copies, for ops with many inputs. */
struct dev_set {
    std::vector<std::vector<float>> host;
    std::vector<float *> dev;
    float *add(const std::vector<float> &h) {
        host.push_back(h);
        dev.push_back((float *)dev_from(h.data(), h.size() * 4));
        return dev.back();
    }
    float *poison(size_t n) {
        host.push_back(std::vector<float>(n, NAN));
        dev.push_back((float *)dev_poison(n * 4));
        return dev.back();
    }
    ~dev_set() {
        for (float *p : dev) dev_free(p);
    }
};
static std::vector<float> from_dev(const float *d, size_t n) {
    std::vector<float> h(n);
    dev_to(h.data(), d, n * 4);
    return h;
}
/* compare a device array with a host reference, returning the error */
static double cmp(const float *d, const std::vector<float> &ref) { return rel(from_dev(d, ref.size()).data(), ref.data(), ref.size()); }

TEST(rwkv7_lerp) {
    const int shapes[][4] = {{1, 1, 8, 6}, {2, 37, 192, 6}, {3, 20, 100, 5}}; /* B, T, C, mixes */
    for (auto &s : shapes)
        for (int variant = 0; variant < 3; variant++) { /* 0: no shift state, 1: shift in, 2: shift in == shift out */
            int B = s[0], T = s[1], C = s[2], n_mix = s[3];
            size_t MC = (size_t)B * T * C, BC = (size_t)B * C;
            dev_set d;
            std::vector<float> x = randn(MC, 1.0f), sh = randn(BC, 1.0f), sh2 = randn(BC, 1.0f);
            std::vector<std::vector<float>> mu(n_mix);
            const float *mu_h[6], *mu_d[6];
            float *dx_ = d.add(x), *dsh = d.add(sh), *dsh_out = variant == 2 ? dsh : d.add(sh2);
            for (int m = 0; m < n_mix; m++) mu[m] = randn(C, 0.5f), mu_h[m] = mu[m].data(), mu_d[m] = d.add(mu[m]);
            std::vector<float> xmix((size_t)n_mix * MC), shc = sh, shc2 = sh2;
            float *sh_in_h = variant ? shc.data() : NULL, *sh_out_h = variant == 2 ? shc.data() : shc2.data();
            CHECK_OK(cpu->rwkv7->lerp_forward(cpu, xmix.data(), x.data(), sh_in_h, sh_out_h, mu_h, n_mix, B, T, C));
            float *dxmix = d.poison((size_t)n_mix * MC);
            CHECK_OK(gpu->rwkv7->lerp_forward(gpu, dxmix, dx_, variant ? dsh : NULL, dsh_out, mu_d, n_mix, B, T, C));
            double e1 = cmp(dxmix, xmix), e2 = cmp(dsh_out, variant == 2 ? shc : shc2);
            CHECK(e1 < 1e-6 && e2 == 0, "lerp forward B%d T%d C%d mixes %d variant %d: xmix %.3g shift %.3g", B, T, C, n_mix, variant, e1, e2);
            /* backward: dx, dshift in/out, dmu added to (one of them NULL) */
            std::vector<float> dxm = randn((size_t)n_mix * MC, 1.0f), dshift = randn(BC, 1.0f), dxc(MC), dshc = dshift;
            std::vector<std::vector<float>> dmu(n_mix);
            float *dmu_h[6], *dmu_d[6];
            for (int m = 0; m < n_mix; m++) {
                dmu[m] = randn(C, 1.0f);
                dmu_d[m] = m == 1 ? NULL : d.add(dmu[m]);
                dmu_h[m] = m == 1 ? NULL : dmu[m].data();
            }
            float *ddxm = d.add(dxm), *ddshift = d.add(dshift), *ddx = d.poison(MC);
            CHECK_OK(cpu->rwkv7->lerp_backward(cpu, dxc.data(), variant ? dshc.data() : NULL, dmu_h, dxm.data(), x.data(),
                                               variant ? sh.data() : NULL, mu_h, n_mix, B, T, C));
            CHECK_OK(gpu->rwkv7->lerp_backward(gpu, ddx, variant ? ddshift : NULL, dmu_d, ddxm, dx_, variant ? d.add(sh) : NULL, mu_d,
                                               n_mix, B, T, C));
            double e3 = cmp(ddx, dxc), e4 = variant ? cmp(ddshift, dshc) : 0, e5 = 0;
            for (int m = 0; m < n_mix; m++)
                if (dmu_d[m]) e5 = fmax(e5, cmp(dmu_d[m], dmu[m]));
            CHECK(e3 < 1e-6 && e4 < 1e-6 && e5 < 1e-6, "lerp backward B%d T%d C%d variant %d: dx %.3g dshift %.3g dmu %.3g", B, T, C, variant,
                  e3, e4, e5);
        }
}

TEST(rwkv7_activations) {
    size_t n = 100003;
    for (int kind = ARWKV_ACT_TANH; kind <= ARWKV_ACT_SIGMOID; kind++) {
        dev_set d;
        std::vector<float> h = randn(n, 2.0f), hc = h, dh = randn(n, 1.0f), dhc = dh;
        float *dh_ = d.add(h), *ddh = d.add(dh);
        cpu->rwkv7->act_forward(cpu, hc.data(), n, kind);
        CHECK_OK(gpu->rwkv7->act_forward(gpu, dh_, n, kind));
        cpu->rwkv7->act_backward(cpu, dhc.data(), hc.data(), n, kind);
        CHECK_OK(gpu->rwkv7->act_backward(gpu, ddh, dh_, n, kind));
        double e1 = cmp(dh_, hc), e2 = cmp(ddh, dhc);
        CHECK(e1 < 1e-6 && e2 < 1e-6, "kind %d: forward %.3g backward %.3g", kind, e1, e2);
    }
}

TEST(rwkv7_prepare) {
    const int shapes[][3] = {{7, 192, 64}, {300, 128, 64}, {33, 48, 16}}; /* M, C, N */
    for (auto &s : shapes)
        for (int first = 0; first < 3; first++) { /* 0: later layer, 1: first layer keeping v_first, 2: first layer without */
            int M = s[0], C = s[1], N = s[2];
            size_t MC = (size_t)M * C;
            dev_set d;
            std::vector<float> k_in = randn(MC, 1.0f), v_in = randn(MC, 1.0f), wl = randn(MC, 1.0f), al = randn(MC, 1.0f), vl = randn(MC, 1.0f);
            std::vector<float> vf = randn(MC, 1.0f), w0 = randn(C, 1.0f), a0 = randn(C, 1.0f), v0 = randn(C, 1.0f), kk = randn(C, 1.0f),
                               ka = randn(C, 1.0f);
            for (int j = 0; j < N; j++) k_in[(size_t)C + j] = 0; /* row 1, head 0: a zero removal key (the clamped norm) */
            float *dk_in = d.add(k_in), *dv_in = d.add(v_in), *dwl = d.add(wl), *dal = d.add(al), *dvl = d.add(vl), *dvf = d.add(vf);
            float *dw0 = d.add(w0), *da0 = d.add(a0), *dv0 = d.add(v0), *dkk = d.add(kk), *dka = d.add(ka);
            std::vector<float> o[5], vfc = vf;
            for (auto &a : o) a.assign(MC, 0);
            float *vf_h = first == 2 ? NULL : vfc.data(), *vf_d = first == 2 ? NULL : dvf;
            arwkv_r7_prepare_args pc = {}, pg_ = {};
            pc.M = pg_.M = M, pc.C = pg_.C = C, pc.N = pg_.N = N, pc.first_layer = pg_.first_layer = first != 0;
            pc.k_in = k_in.data(), pc.v_in = v_in.data(), pc.w_lora = wl.data(), pc.a_lora = al.data(), pc.v_lora = vl.data(), pc.v_first = vf_h;
            pc.w0 = w0.data(), pc.a0 = a0.data(), pc.v0 = v0.data(), pc.k_k = kk.data(), pc.k_a = ka.data();
            pc.decay = o[0].data(), pc.k = o[1].data(), pc.v = o[2].data(), pc.wkv_a = o[3].data(), pc.wkv_b = o[4].data();
            CHECK_OK(cpu->rwkv7->prepare_forward(cpu, &pc));
            float *od[5];
            for (auto &p : od) p = d.poison(MC);
            pg_.k_in = dk_in, pg_.v_in = dv_in, pg_.w_lora = dwl, pg_.a_lora = dal, pg_.v_lora = dvl, pg_.v_first = vf_d;
            pg_.w0 = dw0, pg_.a0 = da0, pg_.v0 = dv0, pg_.k_k = dkk, pg_.k_a = dka;
            pg_.decay = od[0], pg_.k = od[1], pg_.v = od[2], pg_.wkv_a = od[3], pg_.wkv_b = od[4];
            CHECK_OK(gpu->rwkv7->prepare_forward(gpu, &pg_));
            double ef = 0;
            for (int i = 0; i < 5; i++) ef = fmax(ef, cmp(od[i], o[i]));
            if (first == 1) ef = fmax(ef, cmp(dvf, vfc));
            CHECK(ef < 1e-5, "prepare forward M%d C%d N%d first %d: %.3g", M, C, N, first, ef);
            /* backward */
            std::vector<float> g[5], pg[5], out[6], dvf0 = randn(MC, 1.0f);
            for (int i = 0; i < 5; i++) g[i] = randn(MC, 1.0f), pg[i] = randn(C, 1.0f);
            for (auto &a : out) a.assign(MC, 0);
            std::vector<float> dvfc = dvf0, pgc[5];
            for (int i = 0; i < 5; i++) pgc[i] = pg[i];
            float *gd[5], *pgd[5], *outd[5];
            for (int i = 0; i < 5; i++) gd[i] = d.add(g[i]), pgd[i] = d.add(pg[i]), outd[i] = d.poison(MC);
            float *ddvf = d.add(dvf0);
            /* the first layer reads dv_first (NULL in variant 2), later layers add to it */
            arwkv_r7_prepare_args bc = {}, bg = {};
            bc.M = bg.M = M, bc.C = bg.C = C, bc.N = bg.N = N, bc.first_layer = bg.first_layer = first != 0;
            bc.d_decay = g[0].data(), bc.dk = g[1].data(), bc.dv = g[2].data(), bc.d_wkv_a = g[3].data(), bc.d_wkv_b = g[4].data();
            bc.k_in = k_in.data(), bc.v_in = v_in.data(), bc.w_lora = wl.data(), bc.a_lora = al.data(), bc.v_lora = vl.data(), bc.v_first = vf.data();
            bc.w0 = w0.data(), bc.a0 = a0.data(), bc.v0 = v0.data(), bc.k_k = kk.data(), bc.k_a = ka.data();
            bc.dk_in = out[0].data(), bc.dv_in = out[1].data(), bc.dw_lora = out[2].data(), bc.da_lora = out[3].data(), bc.dv_lora = out[4].data();
            bc.dv_first = first == 2 ? NULL : dvfc.data();
            bc.dw0 = pgc[0].data(), bc.da0 = pgc[1].data(), bc.dv0 = pgc[2].data(), bc.dk_k = pgc[3].data(), bc.dk_a = pgc[4].data();
            CHECK_OK(cpu->rwkv7->prepare_backward(cpu, &bc));
            bg.d_decay = gd[0], bg.dk = gd[1], bg.dv = gd[2], bg.d_wkv_a = gd[3], bg.d_wkv_b = gd[4];
            bg.k_in = dk_in, bg.v_in = dv_in, bg.w_lora = dwl, bg.a_lora = dal, bg.v_lora = dvl, bg.v_first = d.add(vf);
            bg.w0 = dw0, bg.a0 = da0, bg.v0 = dv0, bg.k_k = dkk, bg.k_a = dka;
            bg.dk_in = outd[0], bg.dv_in = outd[1], bg.dw_lora = outd[2], bg.da_lora = outd[3], bg.dv_lora = outd[4];
            bg.dv_first = first == 2 ? NULL : ddvf;
            bg.dw0 = pgd[0], bg.da0 = pgd[1], bg.dv0 = pgd[2], bg.dk_k = pgd[3], bg.dk_a = pgd[4];
            CHECK_OK(gpu->rwkv7->prepare_backward(gpu, &bg));
            double eb = 0, ep = 0;
            for (int i = 0; i < 5; i++) {
                if (first && i == 4) continue; /* dv_lora is not written in the first layer */
                eb = fmax(eb, cmp(outd[i], out[i]));
            }
            if (first != 2) eb = fmax(eb, cmp(ddvf, dvfc));
            for (int i = 0; i < 5; i++) ep = fmax(ep, cmp(pgd[i], pgc[i]));
            CHECK(eb < 1e-5 && ep < 1e-5, "prepare backward M%d C%d N%d first %d: outputs %.3g parameters %.3g", M, C, N, first, eb, ep);
        }
}

static void wkv_inputs(int B, int T, int H, int N, std::vector<float> in[6]) { /* r, decay, k, v, a, b as the CPU test makes them */
    size_t n = (size_t)B * T * H * N;
    for (int i = 0; i < 6; i++) in[i] = randn(n, 1.0f);
    for (size_t row = 0; row < n / N; row++) {
        float *kk = &in[4][row * N], ss = 0;
        for (int j = 0; j < N; j++) ss += kk[j] * kk[j];
        for (int j = 0; j < N; j++) {
            size_t i = row * N + j;
            float unit = kk[j] / sqrtf(ss), iclr = (float)test_uniform();
            in[4][i] = -unit;
            in[5][i] = unit * iclr;
            in[1][i] = expf(-0.6065306597f * (float)test_uniform());
            in[2][i] *= 0.3f;
        }
    }
}

TEST(rwkv7_wkv7) {
    const int shapes[][4] = {{1, 21, 2, 16}, {2, 37, 2, 64}, {1, 16, 1, 64}, {1, 1, 3, 8}, {2, 300, 3, 64}, {1, 100, 2, 32}, {3, 0, 2, 64}};
    for (auto &s : shapes) {
        int B = s[0], T = s[1], H = s[2], N = s[3];
        size_t n = (size_t)B * T * H * N, ns = (size_t)B * H * N * N, nck = (size_t)((T + 15) / 16) * ns;
        dev_set d;
        std::vector<float> in[6], S0 = randn(ns, 0.3f), Sc = S0, yc(n), ckc(nck);
        wkv_inputs(B, T, H, N, in);
        float *din[6];
        for (int i = 0; i < 6; i++) din[i] = d.add(in[i]);
        CHECK_OK(cpu->rwkv7->wkv7_forward(cpu, B, T, H, N, in[0].data(), in[1].data(), in[2].data(), in[3].data(), in[4].data(), in[5].data(),
                                          yc.data(), Sc.data(), ckc.data()));
        float *dy = d.poison(n), *dS = d.add(S0), *dck = d.poison(nck);
        CHECK_OK(gpu->rwkv7->wkv7_forward(gpu, B, T, H, N, din[0], din[1], din[2], din[3], din[4], din[5], dy, dS, dck));
        double e1 = cmp(dy, yc), e2 = cmp(dS, Sc), e3 = cmp(dck, ckc);
        CHECK(e1 < 1e-5 && e2 < 1e-5 && e3 < 1e-5, "forward B%d T%d H%d N%d: y %.3g state %.3g checkpoints %.3g", B, T, H, N, e1, e2, e3);
        /* without a state (zeros) and without checkpoints */
        std::vector<float> yc0(n);
        CHECK_OK(cpu->rwkv7->wkv7_forward(cpu, B, T, H, N, in[0].data(), in[1].data(), in[2].data(), in[3].data(), in[4].data(), in[5].data(),
                                          yc0.data(), NULL, NULL));
        CHECK_OK(gpu->rwkv7->wkv7_forward(gpu, B, T, H, N, din[0], din[1], din[2], din[3], din[4], din[5], dy, NULL, NULL));
        double e0 = cmp(dy, yc0);
        CHECK(e0 < 1e-5, "forward from zeros B%d T%d H%d N%d: y %.3g", B, T, H, N, e0);
        /* backward, from the forward's checkpoints; dr, dk, dv added to existing values */
        std::vector<float> gy = randn(n, 1.0f), gS = randn(ns, 1.0f), gSc = gS, gc[6];
        for (int i = 0; i < 6; i++) gc[i] = randn(n, 1.0f);
        float *dgy = d.add(gy), *dgS = d.add(gS), *dg[6], none = 0;
        const float *ck_h = nck ? ckc.data() : &none, *ck_d = nck ? dck : d.poison(1); /* T = 0: no chunks, but a buffer */
        for (int i = 0; i < 6; i++) dg[i] = (i == 0 || i == 2 || i == 3) ? d.add(gc[i]) : d.poison(n);
        CHECK_OK(cpu->rwkv7->wkv7_backward(cpu, B, T, H, N, in[0].data(), in[1].data(), in[2].data(), in[3].data(), in[4].data(),
                                           in[5].data(), gy.data(), ck_h, gSc.data(), gc[0].data(), gc[1].data(), gc[2].data(),
                                           gc[3].data(), gc[4].data(), gc[5].data()));
        CHECK_OK(gpu->rwkv7->wkv7_backward(gpu, B, T, H, N, din[0], din[1], din[2], din[3], din[4], din[5], dgy, ck_d, dgS, dg[0], dg[1],
                                           dg[2], dg[3], dg[4], dg[5]));
        const char *names[6] = {"dr", "d_decay", "dk", "dv", "da", "db"};
        double worst = cmp(dgS, gSc);
        char line[256];
        int len = snprintf(line, sizeof line, "    wkv7 B%d T%d H%d N%d: y %.1e, dstate %.1e", B, T, H, N, e1, worst);
        for (int i = 0; i < 6; i++) {
            double e = cmp(dg[i], gc[i]);
            worst = fmax(worst, e);
            len += snprintf(line + len, sizeof line - (size_t)len, ", %s %.1e", names[i], e);
        }
        printf("%s\n", line);
        CHECK(worst < 1e-4, "backward B%d T%d H%d N%d: worst gradient error %.3g", B, T, H, N, worst);
    }
    CHECK(gpu->rwkv7->wkv7_forward(gpu, 1, 1, 1, 128, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL) == ARWKV_ERR_UNSUPPORTED,
          "head size 128 accepted");
}

TEST(rwkv7_finish) {
    const int shapes[][3] = {{9, 192, 64}, {300, 128, 64}, {20, 48, 16}}; /* M, C, N */
    for (auto &s : shapes)
        for (int variant = 0; variant < 4; variant++) {
            int M = s[0], C = s[1], N = s[2], gate = variant & 1, gn = variant >> 1;
            size_t MC = (size_t)M * C;
            float eps = 64e-5f;
            dev_set d;
            std::vector<float> y = randn(MC, 1.0f), r = randn(MC, 1.0f), k = randn(MC, 1.0f), v = randn(MC, 1.0f), g = randn(MC, 1.0f);
            std::vector<float> rk = randn(C, 1.0f), lw = randn(C, 1.0f), lb = randn(C, 1.0f), oc(MC);
            float *dy_ = d.add(y), *dr_ = d.add(r), *dk_ = d.add(k), *dv_ = d.add(v), *dg_ = d.add(g), *drk = d.add(rk), *dlw = d.add(lw),
                  *dlb = d.add(lb), *dout = d.poison(MC);
            arwkv_r7_finish_args fc = {}, fg = {};
            fc.M = fg.M = M, fc.C = fg.C = C, fc.N = fg.N = N, fc.gn_eps = fg.gn_eps = eps;
            fc.y = y.data(), fc.r = r.data(), fc.k = k.data(), fc.v = v.data(), fc.r_k = rk.data();
            fc.ln_w = gn ? lw.data() : NULL, fc.ln_b = gn ? lb.data() : NULL, fc.g = gate ? g.data() : NULL, fc.o = oc.data();
            CHECK_OK(cpu->rwkv7->finish_forward(cpu, &fc));
            fg.y = dy_, fg.r = dr_, fg.k = dk_, fg.v = dv_, fg.r_k = drk, fg.ln_w = gn ? dlw : NULL, fg.ln_b = gn ? dlb : NULL;
            fg.g = gate ? dg_ : NULL, fg.o = dout;
            CHECK_OK(gpu->rwkv7->finish_forward(gpu, &fg));
            double ef = cmp(dout, oc);
            CHECK(ef < 1e-5, "finish forward M%d C%d N%d gate %d gn %d: %.3g", M, C, N, gate, gn, ef);
            std::vector<float> d_o = randn(MC, 1.0f), grk = randn(C, 1.0f), glw = randn(C, 1.0f), glb = randn(C, 1.0f), o5[5];
            for (auto &a : o5) a.assign(MC, 0);
            std::vector<float> grkc = grk, glwc = glw, glbc = glb;
            float *dd_o = d.add(d_o), *dgrk = d.add(grk), *dglw = d.add(glw), *dglb = d.add(glb), *od[5];
            for (auto &p : od) p = d.poison(MC);
            fc.o = NULL, fc.d_o = d_o.data();
            fc.dy = o5[0].data(), fc.dr = o5[1].data(), fc.dk = o5[2].data(), fc.dv = o5[3].data(), fc.dg = gate ? o5[4].data() : NULL;
            fc.dr_k = grkc.data(), fc.dln_w = glwc.data(), fc.dln_b = glbc.data();
            CHECK_OK(cpu->rwkv7->finish_backward(cpu, &fc));
            fg.o = NULL, fg.d_o = dd_o;
            fg.dy = od[0], fg.dr = od[1], fg.dk = od[2], fg.dv = od[3], fg.dg = gate ? od[4] : NULL;
            fg.dr_k = dgrk, fg.dln_w = dglw, fg.dln_b = dglb;
            CHECK_OK(gpu->rwkv7->finish_backward(gpu, &fg));
            double eb = 0;
            for (int i = 0; i < (gate ? 5 : 4); i++) eb = fmax(eb, cmp(od[i], o5[i]));
            double ep = fmax(cmp(dgrk, grkc), fmax(cmp(dglw, glwc), cmp(dglb, glbc)));
            CHECK(eb < 1e-5 && ep < 1e-5, "finish backward M%d C%d N%d gate %d gn %d: outputs %.3g parameters %.3g", M, C, N, gate, gn, eb, ep);
        }
}

/* ============================================================================================
   RWKV-6 time-mix ops (QRWKV6)
   ============================================================================================
   Each op of be->rwkv6 against the CPU backend's, forward and backward, parameter gradients
   accumulating into random starting values. */

TEST(rwkv6_shift_ddlerp) {
    const int shapes[][3] = {{1, 1, 8}, {2, 37, 192}, {3, 20, 100}}; /* B, T, C */
    for (auto &s : shapes)
        for (int variant = 0; variant < 3; variant++) { /* 0: no shift state; 1: a shift state; 2: no dx, no dmaa_x */
            int B = s[0], T = s[1], C = s[2], rows = B * T;
            size_t MC = (size_t)rows * C;
            dev_set d;
            std::vector<float> x = randn(MC, 1.0f), sh = randn((size_t)B * C, 1.0f), maa_x = randn(C, 0.5f), xx(MC), xxx(MC);
            float *dx_ = d.add(x), *dsh = variant == 1 ? d.add(sh) : NULL, *dmaa_x = d.add(maa_x);
            CHECK_OK(cpu->rwkv6->shift_forward(cpu, xx.data(), xxx.data(), x.data(), variant == 1 ? sh.data() : NULL, maa_x.data(), B, T, C));
            float *dxx = d.poison(MC), *dxxx = d.poison(MC);
            CHECK_OK(gpu->rwkv6->shift_forward(gpu, dxx, dxxx, dx_, dsh, dmaa_x, B, T, C));
            double e1 = fmax(cmp(dxx, xx), cmp(dxxx, xxx));
            CHECK(e1 < 1e-6, "shift forward B%d T%d C%d variant %d: %.3g", B, T, C, variant, e1);
            /* backward: dx and dmaa_x are added to */
            std::vector<float> gxx = randn(MC, 1.0f), gxxx = randn(MC, 1.0f), gx = randn(MC, 1.0f), gmaa = randn(C, 1.0f);
            std::vector<float> gxc = gx, gmaac = gmaa;
            float *dgxx = d.add(gxx), *dgxxx = d.add(gxxx), *dgx = d.add(gx), *dgmaa = d.add(gmaa);
            int no_out = variant == 2;
            CHECK_OK(cpu->rwkv6->shift_backward(cpu, no_out ? NULL : gxc.data(), no_out ? NULL : gmaac.data(), gxx.data(), gxxx.data(),
                                                xx.data(), maa_x.data(), B, T, C));
            CHECK_OK(gpu->rwkv6->shift_backward(gpu, no_out ? NULL : dgx, no_out ? NULL : dgmaa, dgxx, dgxxx, dxx, dmaa_x, B, T, C));
            double e2 = cmp(dgx, gxc), e3 = cmp(dgmaa, gmaac);
            CHECK(e2 < 1e-6 && e3 < 1e-6, "shift backward B%d T%d C%d variant %d: dx %.3g dmaa_x %.3g", B, T, C, variant, e2, e3);

            /* the five lerps on the same rows */
            std::vector<float> m = randn(5 * MC, 0.5f), xc(5 * MC), maa[5];
            const float *maa_h[5], *maa_d[5];
            for (int c = 0; c < 5; c++) maa[c] = randn(C, 0.5f), maa_h[c] = maa[c].data(), maa_d[c] = d.add(maa[c]);
            float *dm_ = d.add(m), *dxc = d.poison(5 * MC);
            CHECK_OK(cpu->rwkv6->ddlerp_forward(cpu, xc.data(), x.data(), xx.data(), maa_h, m.data(), rows, C));
            CHECK_OK(gpu->rwkv6->ddlerp_forward(gpu, dxc, dx_, dxx, maa_d, dm_, rows, C));
            double e4 = cmp(dxc, xc);
            CHECK(e4 < 1e-6, "ddlerp forward rows %d C %d: %.3g", rows, C, e4);
            /* backward; variant 0: every dmaa; 1: dmaa[2] NULL; 2: dmaa NULL */
            std::vector<float> gxcv = randn(5 * MC, 1.0f), o_dx(MC), o_dxx(MC), o_dm(5 * MC), gm[5];
            float *gm_h[5], *gm_d[5];
            for (int c = 0; c < 5; c++) {
                gm[c] = randn(C, 1.0f);
                gm_d[c] = variant == 1 && c == 2 ? NULL : d.add(gm[c]);
                gm_h[c] = variant == 1 && c == 2 ? NULL : gm[c].data();
            }
            float *dgxc = d.add(gxcv), *ddx = d.poison(MC), *ddxx = d.poison(MC), *ddm = d.poison(5 * MC);
            CHECK_OK(cpu->rwkv6->ddlerp_backward(cpu, o_dx.data(), o_dxx.data(), o_dm.data(), variant == 2 ? NULL : gm_h, gxcv.data(),
                                                 xx.data(), maa_h, m.data(), rows, C));
            CHECK_OK(gpu->rwkv6->ddlerp_backward(gpu, ddx, ddxx, ddm, variant == 2 ? NULL : gm_d, dgxc, dxx, maa_d, dm_, rows, C));
            double e5 = fmax(cmp(ddx, o_dx), fmax(cmp(ddxx, o_dxx), cmp(ddm, o_dm))), e6 = 0;
            for (int c = 0; c < 5; c++)
                if (gm_d[c]) e6 = fmax(e6, cmp(gm_d[c], gm[c]));
            CHECK(e5 < 1e-6 && e6 < 1e-6, "ddlerp backward rows %d C %d variant %d: dx/dxx/dm %.3g dmaa %.3g", rows, C, variant, e5, e6);
        }
}

TEST(rwkv6_elementwise) {
    const size_t n = 100003;
    dev_set d;
    /* tanh, in place as the time mix calls it, and out of place */
    std::vector<float> x = randn(n, 2.0f), y(n), g = randn(n, 1.0f), gx(n);
    float *dxv = d.add(x), *dyv = d.poison(n), *dg = d.add(g), *dgx = d.poison(n);
    CHECK_OK(cpu->rwkv6->tanh_forward(cpu, y.data(), x.data(), n));
    CHECK_OK(gpu->rwkv6->tanh_forward(gpu, dyv, dxv, n));
    CHECK_OK(gpu->rwkv6->tanh_forward(gpu, dxv, dxv, n));
    CHECK_OK(cpu->rwkv6->tanh_backward(cpu, gx.data(), g.data(), y.data(), n));
    CHECK_OK(gpu->rwkv6->tanh_backward(gpu, dgx, dg, dyv, n));
    CHECK_OK(gpu->rwkv6->tanh_backward(gpu, dg, dg, dyv, n));
    double e1 = fmax(cmp(dyv, y), cmp(dxv, y)), e2 = fmax(cmp(dgx, gx), cmp(dg, gx));
    CHECK(e1 < 1e-6 && e2 < 1e-6, "tanh: forward %.3g backward %.3g", e1, e2);

    /* decay: z in place; a few z so large that exp(z) overflows (w = 0, dz = 0) */
    const int rows = 333, C = 192;
    size_t RC = (size_t)rows * C;
    std::vector<float> z = randn(RC, 1.5f), td = randn(C, 1.0f), w(RC), gw = randn(RC, 1.0f), gz(RC), gtd = randn(C, 1.0f);
    for (size_t i = 0; i < RC; i += 997) z[i] = 100.0f;
    std::vector<float> zc = z, gtdc = gtd;
    float *dz = d.add(z), *dtd = d.add(td), *dw = d.poison(RC), *dgw = d.add(gw), *dgz = d.poison(RC), *dgtd = d.add(gtd);
    CHECK_OK(cpu->rwkv6->decay_forward(cpu, w.data(), zc.data(), td.data(), rows, C));
    CHECK_OK(gpu->rwkv6->decay_forward(gpu, dw, dz, dtd, rows, C));
    double e3 = fmax(cmp(dw, w), cmp(dz, zc));
    CHECK(e3 < 1e-6, "decay forward: %.3g", e3);
    CHECK_OK(cpu->rwkv6->decay_backward(cpu, gz.data(), gtdc.data(), gw.data(), zc.data(), w.data(), rows, C));
    CHECK_OK(gpu->rwkv6->decay_backward(gpu, dgz, dgtd, dgw, dz, dw, rows, C));
    double e4 = cmp(dgz, gz), e5 = cmp(dgtd, gtdc);
    /* dz over dw, in place, without a time_decay gradient: as the time mix calls it */
    CHECK_OK(gpu->rwkv6->decay_backward(gpu, dgw, NULL, dgw, dz, dw, rows, C));
    double e6 = cmp(dgw, gz);
    CHECK(e4 < 1e-6 && e5 < 1e-6 && e6 < 1e-6, "decay backward: dz %.3g dtime_decay %.3g in place %.3g", e4, e5, e6);
    std::vector<float> gzh = from_dev(dgz, RC);
    int zeros = 0;
    for (size_t i = 0; i < RC; i += 997) zeros += gzh[i] == 0.0f;
    CHECK(zeros == (int)((RC + 996) / 997), "decay backward where exp(z) overflows: %d zeros", zeros);

    /* output gate */
    std::vector<float> yv = randn(n, 1.0f), gv = randn(n, 3.0f), out(n), dout = randn(n, 1.0f), gy(n), gg(n);
    float *dy_ = d.add(yv), *dg_ = d.add(gv), *dout_ = d.poison(n), *ddout = d.add(dout), *dgy = d.poison(n), *dgg = d.poison(n);
    CHECK_OK(cpu->rwkv6->gate_forward(cpu, out.data(), yv.data(), gv.data(), n));
    CHECK_OK(gpu->rwkv6->gate_forward(gpu, dout_, dy_, dg_, n));
    CHECK_OK(cpu->rwkv6->gate_backward(cpu, gy.data(), gg.data(), dout.data(), yv.data(), gv.data(), n));
    CHECK_OK(gpu->rwkv6->gate_backward(gpu, dgy, dgg, ddout, dy_, dg_, n));
    double e7 = cmp(dout_, out), e8 = fmax(cmp(dgy, gy), cmp(dgg, gg));
    CHECK(e7 < 1e-6 && e8 < 1e-6, "gate: forward %.3g backward %.3g", e7, e8);

    /* bias gradient: more rows than row blocks, and not a multiple of them */
    const int shapes[][2] = {{1, 5}, {1000, 77}, {129, 640}};
    for (auto &s : shapes) {
        std::vector<float> dy = randn((size_t)s[0] * s[1], 1.0f), db = randn(s[1], 1.0f), dbc = db;
        float *ddy = d.add(dy), *ddb = d.add(db);
        CHECK_OK(cpu->rwkv6->colsum(cpu, dbc.data(), dy.data(), s[0], s[1]));
        CHECK_OK(gpu->rwkv6->colsum(gpu, ddb, ddy, s[0], s[1]));
        double e = cmp(ddb, dbc);
        CHECK(e < 1e-6, "colsum rows %d cols %d: %.3g", s[0], s[1], e);
    }
}

TEST(rwkv6_kv_expand) {
    const int shapes[][4] = {{37, 2, 1, 64}, {5, 6, 3, 16}, {20, 4, 4, 32}, {3, 8, 2, 128}, {64, 14, 2, 64}}; /* rows, H, KVH, N */
    for (auto &s : shapes) {
        int rows = s[0], H = s[1], KVH = s[2], N = s[3];
        size_t nh = (size_t)rows * H * N, nk = (size_t)rows * KVH * N;
        dev_set d;
        std::vector<float> k = randn(nk, 1.0f), v = randn(nk, 1.0f), w(nh), kk(nh), vv(nh);
        for (auto &e : w) e = (float)test_uniform();
        float *dk_ = d.add(k), *dv_ = d.add(v), *dw_ = d.add(w), *dkk = d.poison(nh), *dvv = d.poison(nh);
        CHECK_OK(cpu->rwkv6->kv_expand_forward(cpu, kk.data(), vv.data(), k.data(), v.data(), w.data(), rows, H, KVH, N));
        CHECK_OK(gpu->rwkv6->kv_expand_forward(gpu, dkk, dvv, dk_, dv_, dw_, rows, H, KVH, N));
        double e1 = fmax(cmp(dkk, kk), cmp(dvv, vv));
        CHECK(e1 < 1e-6, "kv_expand forward rows %d H%d KVH%d N%d: %.3g", rows, H, KVH, N, e1);
        /* backward: dk, dv written, dw added to */
        std::vector<float> gkk = randn(nh, 1.0f), gvv = randn(nh, 1.0f), gw = randn(nh, 1.0f), gwc = gw, gk(nk), gv(nk);
        float *dgkk = d.add(gkk), *dgvv = d.add(gvv), *dgw = d.add(gw), *dgk = d.poison(nk), *dgv = d.poison(nk);
        CHECK_OK(cpu->rwkv6->kv_expand_backward(cpu, gk.data(), gv.data(), gwc.data(), gkk.data(), gvv.data(), k.data(), w.data(), rows, H,
                                                KVH, N));
        CHECK_OK(gpu->rwkv6->kv_expand_backward(gpu, dgk, dgv, dgw, dgkk, dgvv, dk_, dw_, rows, H, KVH, N));
        double e2 = fmax(cmp(dgk, gk), fmax(cmp(dgv, gv), cmp(dgw, gwc)));
        CHECK(e2 < 1e-6, "kv_expand backward rows %d H%d KVH%d N%d: %.3g", rows, H, KVH, N, e2);
    }
    CHECK(gpu->rwkv6->kv_expand_forward(gpu, NULL, NULL, NULL, NULL, NULL, 1, 3, 2, 16) == ARWKV_ERR_INVALID_ARGUMENT,
          "kv heads that do not divide heads accepted");
}


/* r, k, v, w of the recurrence: decays w = exp(-exp(z)) over (0, 1), a few tiny (a state nearly
   forgotten at once) and a few within 2e-4 of 1 (kept for thousands of tokens) */
static void wkv6_inputs(size_t n, std::vector<float> in[4]) {
    for (int i = 0; i < 3; i++) in[i] = randn(n, 1.0f);
    in[3].resize(n);
    for (size_t i = 0; i < n; i++) {
        double u = test_uniform();
        float z = u < 0.05 ? 2.5f : u < 0.1 ? -9.0f : (float)(-4.0 + 4.0 * test_uniform());
        in[3][i] = expf(-expf(z));
    }
}

TEST(rwkv6_wkv6) {
    /* B, T, H, N: T not a multiple of ARWKV_WKV6_CHUNK (last chunks shorter and longer than half a
       chunk), exactly one chunk, one token, no token */
    const int shapes[][4] = {{1, 21, 2, 16}, {2, 37, 3, 32}, {1, 16, 1, 64}, {2, 59, 2, 64}, {1, 1, 3, 16}, {2, 40, 1, 128}, {3, 0, 2, 32}};
    for (auto &s : shapes) {
        int B = s[0], T = s[1], H = s[2], N = s[3];
        size_t n = (size_t)B * T * H * N, ns = (size_t)B * H * N * N;
        size_t nck = (size_t)((T + ARWKV_WKV6_CHUNK - 1) / ARWKV_WKV6_CHUNK) * ns;
        float scale = 1.0f / sqrtf((float)N);
        dev_set d;
        std::vector<float> in[4], S0 = randn(ns, 0.5f), yc(n), Sc(ns), ckc(nck);
        wkv6_inputs(n, in);
        float *din[4];
        for (int i = 0; i < 4; i++) din[i] = d.add(in[i]);
        const float *r = in[0].data(), *k = in[1].data(), *v = in[2].data(), *w = in[3].data();
        CHECK_OK(cpu->rwkv6->wkv6_forward(cpu, yc.data(), Sc.data(), ckc.data(), r, k, v, w, S0.data(), B, T, H, N, scale));
        float *dy = d.poison(n), *dS0 = d.add(S0), *dSo = d.poison(ns), *dck = d.poison(nck);
        CHECK_OK(gpu->rwkv6->wkv6_forward(gpu, dy, dSo, dck, din[0], din[1], din[2], din[3], dS0, B, T, H, N, scale));
        double e1 = cmp(dy, yc), e2 = cmp(dSo, Sc), e3 = cmp(dck, ckc);
        CHECK(e1 < 1e-5 && e2 < 1e-5 && e3 < 1e-5, "forward B%d T%d H%d N%d: y %.3g state %.3g checkpoints %.3g", B, T, H, N, e1, e2, e3);
        /* the final state over the initial one (the time mix passes one array for both) */
        float *dy2 = d.poison(n);
        CHECK_OK(gpu->rwkv6->wkv6_forward(gpu, dy2, dS0, NULL, din[0], din[1], din[2], din[3], dS0, B, T, H, N, scale));
        double e4 = fmax(cmp(dy2, yc), cmp(dS0, Sc));
        CHECK(e4 < 1e-5, "forward with s_out == s0 B%d T%d H%d N%d: %.3g", B, T, H, N, e4);
        /* from zeros, nothing kept */
        std::vector<float> yc0(n);
        CHECK_OK(cpu->rwkv6->wkv6_forward(cpu, yc0.data(), NULL, NULL, r, k, v, w, NULL, B, T, H, N, scale));
        CHECK_OK(gpu->rwkv6->wkv6_forward(gpu, dy, NULL, NULL, din[0], din[1], din[2], din[3], NULL, B, T, H, N, scale));
        double e0 = cmp(dy, yc0);
        CHECK(e0 < 1e-5, "forward from zeros B%d T%d H%d N%d: y %.3g", B, T, H, N, e0);
        /* backward from the checkpoints of the run with an initial state; every output written */
        std::vector<float> gy = randn(n, 1.0f), gc[4];
        for (auto &a : gc) a.assign(n, 0.0f);
        float *dgy = d.add(gy), *dg[4];
        for (auto &p : dg) p = d.poison(n);
        CHECK_OK(cpu->rwkv6->wkv6_backward(cpu, gc[0].data(), gc[1].data(), gc[2].data(), gc[3].data(), gy.data(), r, k, v, w, ckc.data(),
                                           B, T, H, N, scale));
        CHECK_OK(gpu->rwkv6->wkv6_backward(gpu, dg[0], dg[1], dg[2], dg[3], dgy, din[0], din[1], din[2], din[3], dck, B, T, H, N, scale));
        const char *names[4] = {"dr", "dk", "dv", "dw"};
        double worst = 0;
        char line[256];
        int len = snprintf(line, sizeof line, "    wkv6 B%d T%d H%d N%d: y %.1e, state %.1e", B, T, H, N, e1, e2);
        for (int i = 0; i < 4; i++) {
            double e = cmp(dg[i], gc[i]);
            worst = fmax(worst, e);
            len += snprintf(line + len, sizeof line - (size_t)len, ", %s %.1e", names[i], e);
        }
        printf("%s\n", line);
        CHECK(worst < 1e-4, "backward B%d T%d H%d N%d: worst gradient error %.3g", B, T, H, N, worst);
    }
    CHECK(gpu->rwkv6->wkv6_forward(gpu, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, 1, 1, 1, 8, 1.0f) == ARWKV_ERR_UNSUPPORTED,
          "head size 8 accepted");
    CHECK(gpu->rwkv6->wkv6_backward(gpu, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, 1, 4, 1, 16, 1.0f) ==
              ARWKV_ERR_INVALID_ARGUMENT,
          "backward without checkpoints accepted");
}

/* ============================================================================================
   Training through the whole backend
   ============================================================================================
   A few optimizer steps of a stage on the bundled teacher, once per backend: teacher forward, the
   student's forward and backward (time mix, MLP, head), the loss, clipping and AdamW all run
   through the op tables, so the GPU run must follow the CPU's losses and gradient norms. */
static const char *tiny_teacher = "models/qwen2-code-tiny";

static arwkv_result train_steps(arwkv_backend *be, int stage, int steps, float *loss, float *gnorm, int offload = 0,
                                double *master_vs_weights = NULL, int stream = 0) {
    arwkv_model *teacher = NULL, *student = NULL;
    arwkv_tokenizer *tok = NULL;
    arwkv_trainer *tr = NULL;
    arwkv_dataset data;
    arwkv_dataset_init(&data);
    arwkv_student_options so;
    arwkv_student_options_default(&so);
    arwkv_train_options o;
    arwkv_train_options_default(&o, stage);
    o.seq_len = 32, o.batch = 2, o.steps = steps, o.lr = 1e-3f, o.lr_final = 1e-4f, o.warmup_steps = 0, o.seed = 3;
    o.offload_optimizer = offload;
    arwkv_result r = arwkv_model_load_ex(tiny_teacher, be, stream ? ARWKV_LOAD_HOST_LAYERS : 0, &teacher);
    if (r == ARWKV_OK) r = arwkv_tokenizer_load(tiny_teacher, &tok);
    if (r == ARWKV_OK) r = arwkv_student_create(teacher, &so, &student);
    if (r == ARWKV_OK) r = arwkv_dataset_add_file(&data, tok, "tests/test.h", arwkv_tokenizer_token_id(tok, "<|endoftext|>"));
    if (r == ARWKV_OK) r = arwkv_dataset_pack(&data, o.seq_len, 7);
    if (r == ARWKV_OK) r = arwkv_trainer_create(teacher, student, &o, &data, &tr);
    for (int i = 0; i < steps && r == ARWKV_OK; i++) {
        arwkv_step_stats st;
        r = arwkv_trainer_step(tr, &st);
        loss[i] = st.loss, gnorm[i] = st.grad_norm;
    }
    if (master_vs_weights && r == ARWKV_OK) { /* offloaded: is every working copy its master, rounded? */
        double worst = 0;
        for (int i = 0; i < student->n_params; i++) {
            const arwkv_param *p = &student->params[i];
            if (!p->master) continue;
            size_t n = (size_t)p->numel, w = arwkv_dtype_size(p->dtype);
            std::vector<unsigned char> dev(n * w);
            dev_to(dev.data(), p->data, n * w);
            for (size_t e = 0; e < n; e++) {
                float want = p->dtype == ARWKV_F32 ? p->master[e] : arwkv_bf16_to_f32(arwkv_f32_to_bf16(p->master[e]));
                float got = p->dtype == ARWKV_F32 ? ((float *)dev.data())[e] : arwkv_bf16_to_f32(((uint16_t *)dev.data())[e]);
                worst = fmax(worst, fabs((double)got - want));
            }
        }
        *master_vs_weights = worst;
    }
    arwkv_trainer_free(tr);
    arwkv_model_free(student);
    arwkv_model_free(teacher);
    arwkv_tokenizer_free(tok);
    arwkv_dataset_free(&data);
    return r;
}

TEST(training_steps_match_cpu) {
    if (!test_file_exists("models/qwen2-code-tiny/config.json")) SKIP("run from the repository root (needs %s)", tiny_teacher);
    arwkv__gpu *g = gpu_state();
    int saved = g->gemm_fp32;
    for (int stage = 1; stage <= 2; stage++) {
#ifdef ARWKV_HIP_EMULATOR
        if (stage == 2 && !getenv("ARWKV_TEST_STAGE2")) continue; /* the vocabulary-sized products take minutes emulated */
#endif
        enum { STEPS = 3 };
        float lc[STEPS], gc[STEPS], lg[STEPS], gg[STEPS];
        CHECK_OK(train_steps(cpu, stage, STEPS, lc, gc));
        for (int mode = 1; mode >= 0; mode--) { /* fp32 products first: tight; then the matrix units: bf16 */
            if (mode == 0 && !g->has_mma) continue;
            g->gemm_fp32 = mode;
            for (int i = 0; i < STEPS; i++) lg[i] = gg[i] = NAN;
            CHECK_OK(train_steps(gpu, stage, STEPS, lg, gg));
            /* the first step's loss and gradient norm are the same computation on both; after it,
               AdamW's first update (lr times the sign of each gradient) turns rounding differences
               of near-zero gradients into different weights, so later steps only have to stay sane */
            /* bf16 operands: stage 2's head backward, d hidden = d logits . W, adds 151936 nearly
               cancelling terms, so rounding d logits to bf16 moves the gradient by several percent
               (7% of its norm on this model); the fp32 path is the exact check */
            double tol = mode ? 1e-4 : 3e-2, tol_g = mode ? 1e-4 : stage == 2 ? 0.15 : 3e-2;
            double el = fabs((double)lg[0] - lc[0]) / fabs((double)lc[0]), eg = fabs((double)gg[0] - gc[0]) / fabs((double)gc[0]);
            printf("    stage %d, %s products: loss %.5f |g| %.4f (CPU %.5f %.4f); steps 2-3 %.4f %.4f (CPU %.4f %.4f)\n", stage,
                   mode ? "fp32" : "bf16", (double)lg[0], (double)gg[0], (double)lc[0], (double)gc[0], (double)lg[1], (double)lg[2],
                   (double)lc[1], (double)lc[2]);
            CHECK(el <= tol && eg <= tol_g, "stage %d with %s products: first step loss %.3g, gradient norm %.3g apart", stage,
                  mode ? "fp32" : "bf16", el, eg);
            for (int i = 1; i < STEPS; i++)
                CHECK(isfinite(lg[i]) && fabs((double)lg[i] - lc[i]) < 0.25 * fabs((double)lc[i]), "stage %d step %d: loss %g, CPU %g",
                      stage, i + 1, (double)lg[i], (double)lc[i]);
        }
    }
    g->gemm_fp32 = saved;
}

/* --stream-teacher on a GPU: the teacher's layers in pinned host memory, each copied on the second
   stream into one of two device slots while the layer before it computes. The same kernels read
   the same numbers, so stage 1's losses and gradient norms equal the resident teacher's to the bit;
   a missing wait between the copy and the kernels (or a copy that overwrites a slot still in use)
   shows as a difference on a real GPU. */
TEST(streamed_teacher_matches_resident) {
    if (!test_file_exists("models/qwen2-code-tiny/config.json")) SKIP("run from the repository root");
    enum { STEPS = 3 };
    float lr[STEPS], gr[STEPS], ls[STEPS], gs[STEPS];
    CHECK_OK(train_steps(gpu, 1, STEPS, lr, gr));
    CHECK_OK(train_steps(gpu, 1, STEPS, ls, gs, 0, NULL, 1));
    printf("    stage 1, resident teacher: loss %.6f %.6f %.6f; streamed: %.6f %.6f %.6f\n", (double)lr[0], (double)lr[1], (double)lr[2],
           (double)ls[0], (double)ls[1], (double)ls[2]);
    for (int i = 0; i < STEPS; i++)
        CHECK(memcmp(&lr[i], &ls[i], sizeof(float)) == 0 && memcmp(&gr[i], &gs[i], sizeof(float)) == 0,
              "step %d: streamed loss %.9g |g| %.9g, resident %.9g %.9g", i + 1, (double)ls[i], (double)gs[i], (double)lr[i], (double)gr[i]);
}

/* --offload-optimizer on a GPU: the masters and moments on the host, updated slice by slice while
   the next slice's gradient comes down and the last one's weights go up. The losses follow the
   on-device optimizer's (bf16 working copy: close, not equal), and after the steps every weight on
   the device is exactly its host master rounded to bf16: no slice lost, late or misplaced. */
TEST(offloaded_optimizer_on_gpu) {
    if (!test_file_exists("models/qwen2-code-tiny/config.json")) SKIP("run from the repository root");
    enum { STEPS = 3 };
    float lo[STEPS], go[STEPS], ld[STEPS], gd[STEPS];
    double worst = -1;
    CHECK_OK(train_steps(gpu, 1, STEPS, ld, gd));
    CHECK_OK(train_steps(gpu, 1, STEPS, lo, go, 1, &worst));
    printf("    stage 1 losses offloaded %.5f %.5f %.5f, on the device %.5f %.5f %.5f; working copy vs master %.3g\n", (double)lo[0],
           (double)lo[1], (double)lo[2], (double)ld[0], (double)ld[1], (double)ld[2], worst);
    CHECK(worst == 0, "a working copy differs from its rounded master by %g", worst);
    CHECK(lo[0] == ld[0], "the first loss comes before any update: %g against %g", (double)lo[0], (double)ld[0]);
    for (int i = 1; i < STEPS; i++)
        CHECK(isfinite(lo[i]) && fabs((double)lo[i] - ld[i]) < 0.05 * fabs((double)ld[i]), "step %d: offloaded loss %g, on the device %g",
              i + 1, (double)lo[i], (double)ld[i]);
}

/* Every parameter's gradient of one stage-1 and one stage-2 step, tensor by tensor, against the
   CPU (fp32 products, so both backends compute the same function in the same precision). */
/* A QRWKV6 student's new parameters, randomized the same way on every backend: recursal's init has
   zero first LoRA matrices and gate, which would leave the paths through them without signal. */
static arwkv_result qrwkv6_randomize(arwkv_model *s) {
    unsigned long long seed = 0x51ED2701ull;
    arwkv_result r = ARWKV_OK;
    for (int l = 0; l < s->cfg.num_layers && r == ARWKV_OK; l++) {
        arwkv_layer *L = &s->layers[l];
        struct {
            arwkv_param *p;
            float lo, hi; /* uniform in [lo, hi), added to the init for time_decay */
        } set[] = {{L->maa_x, 0, 1},         {L->maa_r, 0, 1},         {L->maa_k, 0, 1},       {L->maa_v, 0, 1},
                   {L->maa_w, 0, 1},         {L->maa_g, 0, 1},         {L->maa_w1, -0.05f, 0.05f}, {L->maa_w2, -0.05f, 0.05f},
                   {L->time_decay, -0.5f, 0.5f}, {L->decay_w1, -0.05f, 0.05f}, {L->decay_w2, -0.05f, 0.05f}, {L->gate, -0.05f, 0.05f}};
        for (auto &e : set) {
            std::vector<float> v((size_t)e.p->numel);
            if (e.p == L->time_decay) r = r == ARWKV_OK ? arwkv_param_read(s, e.p, v.data(), e.p->numel) : r;
            for (auto &x : v) {
                seed ^= seed >> 12, seed ^= seed << 25, seed ^= seed >> 27;
                x += e.lo + (e.hi - e.lo) * (float)((seed * 2685821657736338717ull) >> 40) / 16777216.0f;
            }
            if (r == ARWKV_OK) r = arwkv_param_write(s, e.p, v.data(), e.p->numel);
        }
    }
    return r;
}

static arwkv_result grad_step(arwkv_backend *be, int stage, arwkv_model **teacher, arwkv_model **student, arwkv_trainer **tr,
                              arwkv_dataset *data, arwkv_arch arch = ARWKV_ARCH_ARWKV7, double *loss_out = NULL) {
    arwkv_tokenizer *tok = NULL;
    arwkv_student_options so;
    arwkv_student_options_default(&so);
    so.init = ARWKV_INIT_INHERIT; /* every path of the time mix carries signal from the first step */
    so.arch = arch;
    arwkv_train_options o;
    arwkv_train_options_default(&o, stage);
    o.seq_len = 48, o.batch = 2, o.steps = 1, o.seed = 3;
    arwkv_dataset_init(data);
    arwkv_result r = arwkv_model_load(tiny_teacher, be, teacher);
    if (r == ARWKV_OK) r = arwkv_tokenizer_load(tiny_teacher, &tok);
    if (r == ARWKV_OK) r = arwkv_student_create(*teacher, &so, student);
    if (r == ARWKV_OK && arch == ARWKV_ARCH_QRWKV6) r = qrwkv6_randomize(*student);
    if (r == ARWKV_OK) r = arwkv_dataset_add_file(data, tok, "tests/test.h", arwkv_tokenizer_token_id(tok, "<|endoftext|>"));
    if (r == ARWKV_OK) r = arwkv_dataset_pack(data, o.seq_len, 7);
    if (r == ARWKV_OK) r = arwkv_trainer_create(*teacher, *student, &o, data, tr);
    if (r == ARWKV_OK) {
        for (int b = 0; b < o.batch; b++) arwkv_dataset_next(data, (*tr)->inputs + b * o.seq_len, (*tr)->targets + b * o.seq_len);
        double loss, kl, ce;
        r = arwkv__zero_grads(*student);
        if (r == ARWKV_OK) r = stage == 1 ? arwkv__stage1_step(*tr, &loss) : arwkv__logit_stage_step(*tr, &loss, &kl, &ce);
        if (loss_out) *loss_out = loss;
    }
    arwkv_tokenizer_free(tok);
    return r;
}

TEST(every_gradient_matches_cpu) {
    if (!test_file_exists("models/qwen2-code-tiny/config.json")) SKIP("run from the repository root");
#ifdef ARWKV_HIP_EMULATOR
    if (!getenv("ARWKV_TEST_STAGE2")) SKIP("a GPU check: minutes on the emulator (set ARWKV_TEST_STAGE2=1 to run it there)");
#endif
    arwkv__gpu *g = gpu_state();
    int saved = g->gemm_fp32;
    g->gemm_fp32 = 1;
    for (int stage = 1; stage <= 2; stage++) {
#ifdef ARWKV_HIP_EMULATOR
        if (stage == 2 && !getenv("ARWKV_TEST_STAGE2")) continue;
#endif
        arwkv_model *tc = NULL, *sc = NULL, *tg = NULL, *sg = NULL;
        arwkv_trainer *trc = NULL, *trg = NULL;
        arwkv_dataset dc, dg;
        CHECK_OK(grad_step(cpu, stage, &tc, &sc, &trc, &dc));
        CHECK_OK(grad_step(gpu, stage, &tg, &sg, &trg, &dg));
        double worst = 0;
        const char *worst_name = "";
        int compared = 0;
        for (int i = 0; sc && sg && i < sc->n_params; i++) {
            arwkv_param *p = &sc->params[i], *q = arwkv_model_param(sg, p->name);
            if (!p->trainable || !q || !q->trainable) continue;
            std::vector<float> a((size_t)p->numel), b((size_t)p->numel);
            memcpy(a.data(), p->grad, a.size() * sizeof(float));
            dev_to(b.data(), q->grad, b.size() * sizeof(float));
            double e = test_rel_err(b.data(), a.data(), a.size());
            if (!(e <= worst)) worst = e, worst_name = p->name;
            compared++;
        }
        printf("    stage %d: %d gradients, worst %.3g (%s)\n", stage, compared, worst, worst_name);
        CHECK(compared > 0 && worst < 1e-3, "stage %d: gradient of %s is %.3g from the CPU's", stage, worst_name, worst);
        arwkv_trainer_free(trc), arwkv_trainer_free(trg);
        arwkv_model_free(sc), arwkv_model_free(sg), arwkv_model_free(tc), arwkv_model_free(tg);
        arwkv_dataset_free(&dc), arwkv_dataset_free(&dg);
    }
    g->gemm_fp32 = saved;
}

/* Recomputing each layer in the backward (--recompute) gives the student's gradients of keeping every
   layer's activations, on the GPU as on the CPU: the recomputed forward is the same sequence of
   kernels on the same inputs. Both time mixes; no vocabulary-sized product, so the emulator runs it. */
TEST(recompute_matches_keeping) {
    if (!test_file_exists("models/qwen2-code-tiny/config.json")) SKIP("run from the repository root");
    for (int arch = 0; arch < 2; arch++) {
        arwkv_model *teacher = NULL, *s = NULL;
        arwkv_rnn *r = NULL;
        arwkv_student_options so;
        arwkv_student_options_default(&so);
        so.init = ARWKV_INIT_INHERIT;
        so.arch = arch ? ARWKV_ARCH_QRWKV6 : ARWKV_ARCH_ARWKV7;
        CHECK_OK(arwkv_model_load(tiny_teacher, gpu, &teacher));
        if (teacher) CHECK_OK(arwkv_student_create(teacher, &so, &s));
        if (s && arch) CHECK_OK(qrwkv6_randomize(s));
        if (s) CHECK_OK(arwkv__make_trainable(s, 2, 0));
        if (s) CHECK_OK(arwkv_rnn_create(s, &r));
        if (!r) {
            arwkv_model_free(s), arwkv_model_free(teacher);
            continue;
        }
        enum { B = 2, T = 24 };
        int C = s->cfg.hidden_size;
        std::vector<int32_t> ids(B * T);
        std::vector<float> R((size_t)B * T * C), hid0((size_t)B * T * C), hid1((size_t)B * T * C);
        test_seed(17);
        for (auto &i : ids) i = (int32_t)(test_uniform() * 3000);
        test_fill_randn(R.data(), R.size(), 1);
        float *dR = (float *)dev_from(R.data(), R.size() * sizeof(float));
        std::vector<std::vector<float>> keep((size_t)s->n_params);
        int differ = 0, compared = 0;
        double worst = 0;
        for (int pass = 0; pass < 2; pass++) {
            const float *hid = NULL;
            CHECK_OK(arwkv__zero_grads(s));
            CHECK_OK(arwkv_rnn_forward(r, ids.data(), B, T, NULL, pass ? ARWKV_RNN_TRAIN_RECOMPUTE : ARWKV_RNN_TRAIN, &hid));
            if (hid) dev_to(pass ? hid1.data() : hid0.data(), hid, hid0.size() * sizeof(float));
            CHECK_OK(arwkv_rnn_backward(r, dR));
            for (int i = 0; i < s->n_params; i++) {
                const arwkv_param *p = &s->params[i];
                if (!p->trainable || !p->grad) continue;
                std::vector<float> g((size_t)p->numel);
                dev_to(g.data(), p->grad, g.size() * sizeof(float));
                if (pass == 0) {
                    keep[(size_t)i] = g;
                    continue;
                }
                compared++;
                differ += memcmp(g.data(), keep[(size_t)i].data(), g.size() * sizeof(float)) != 0;
                worst = fmax(worst, test_rel_err(g.data(), keep[(size_t)i].data(), g.size()));
            }
        }
        printf("    %s: %d gradients, %d not bit-identical, worst %.3g\n", arch ? "QRWKV6" : "ARWKV-7", compared, differ, worst);
        CHECK(memcmp(hid0.data(), hid1.data(), hid0.size() * sizeof(float)) == 0, "%s: hidden states differ", arch ? "QRWKV6" : "ARWKV-7");
        /* bit-identical unless a kernel sums in a run-dependent order (atomics); then within rounding */
        CHECK(compared > 0 && worst <= 1e-5, "%s: recomputed gradients %.3g from kept ones", arch ? "QRWKV6" : "ARWKV-7", worst);
        dev_free(dR);
        arwkv_rnn_free(r);
        arwkv_model_free(s);
        arwkv_model_free(teacher);
    }
}

/* A QRWKV6 student (RWKV-6 time mix, GQA keys and values, head size 64): the loss and every
   parameter's gradient of a stage-1 and a stage-2 step, as on the CPU (fp32 products). Both run on
   the emulator too (seconds: the student's sequence is short). */
TEST(qrwkv6_student_matches_cpu) {
    if (!test_file_exists("models/qwen2-code-tiny/config.json")) SKIP("run from the repository root");
    arwkv__gpu *g = gpu_state();
    int saved = g->gemm_fp32;
    g->gemm_fp32 = 1;
    for (int stage = 1; stage <= 2; stage++) {
        arwkv_model *tc = NULL, *sc = NULL, *tg = NULL, *sg = NULL;
        arwkv_trainer *trc = NULL, *trg = NULL;
        arwkv_dataset dc, dg;
        double lc = NAN, lg = NAN;
        CHECK_OK(grad_step(cpu, stage, &tc, &sc, &trc, &dc, ARWKV_ARCH_QRWKV6, &lc));
        CHECK_OK(grad_step(gpu, stage, &tg, &sg, &trg, &dg, ARWKV_ARCH_QRWKV6, &lg));
        double worst = 0;
        const char *worst_name = "";
        int compared = 0, rwkv6_params = 0;
        for (int i = 0; sc && sg && i < sc->n_params; i++) {
            arwkv_param *p = &sc->params[i], *q = arwkv_model_param(sg, p->name);
            if (!p->trainable || !q || !q->trainable) continue;
            std::vector<float> a((size_t)p->numel), b((size_t)p->numel);
            memcpy(a.data(), p->grad, a.size() * sizeof(float));
            dev_to(b.data(), q->grad, b.size() * sizeof(float));
            double e = test_rel_err(b.data(), a.data(), a.size()), amax = 0;
            for (float x : a) amax = fmax(amax, fabs((double)x));
            CHECK(amax > 0, "stage %d: the gradient of %s is zero on the CPU: the test would compare nothing", stage, p->name);
            if (!(e <= worst)) worst = e, worst_name = p->name;
            compared++;
            rwkv6_params += strstr(p->name, "time_") != NULL;
        }
        double el = fabs(lg - lc) / fabs(lc);
        printf("    stage %d: loss %.6f (CPU %.6f, %.2g apart); %d gradients (%d time_*), worst %.3g (%s)\n", stage, lg, lc, el, compared,
               rwkv6_params, worst, worst_name);
        CHECK(el < 1e-5, "stage %d: loss %.8g, CPU %.8g", stage, lg, lc);
        /* 8 layers, each with maa_x/r/k/v/w/g, maa_w1, maa_w2, time_decay, decay_w1, decay_w2 */
        CHECK(compared > 0 && rwkv6_params == 8 * 11 && worst < 1e-3, "stage %d: gradient of %s is %.3g from the CPU's (%d compared, %d time_*)",
              stage, worst_name, worst, compared, rwkv6_params);
        arwkv_trainer_free(trc), arwkv_trainer_free(trg);
        arwkv_model_free(sc), arwkv_model_free(sg), arwkv_model_free(tc), arwkv_model_free(tg);
        arwkv_dataset_free(&dc), arwkv_dataset_free(&dg);
    }
    g->gemm_fp32 = saved;
}

/* Greedy generation on the GPU picks the same tokens as on the CPU, for the teacher and a student. */
static arwkv_result greedy(arwkv_backend *be, int student, int n, int32_t *out) {
    arwkv_model *t = NULL, *s = NULL, *m;
    arwkv_session *sess = NULL;
    arwkv_student_options so;
    arwkv_student_options_default(&so);
    so.init = ARWKV_INIT_INHERIT;
    std::vector<float> logits(151936);
    int32_t prompt[8] = {750, 75698, 1445, 982, 262, 421, 308, 366};
    arwkv_result r = arwkv_model_load(tiny_teacher, be, &t);
    if (r == ARWKV_OK && student) r = arwkv_student_create(t, &so, &s);
    m = student ? s : t;
    if (r == ARWKV_OK) r = arwkv_session_create(m, 0, &sess);
    if (r == ARWKV_OK) r = arwkv_session_feed(sess, prompt, 8, logits.data());
    for (int i = 0; i < n && r == ARWKV_OK; i++) {
        out[i] = (int32_t)(std::max_element(logits.begin(), logits.end()) - logits.begin());
        r = arwkv_session_feed(sess, &out[i], 1, logits.data());
    }
    arwkv_session_free(sess);
    arwkv_model_free(s);
    arwkv_model_free(t);
    return r;
}

TEST(greedy_generation_matches_cpu) {
    if (!test_file_exists("models/qwen2-code-tiny/config.json")) SKIP("run from the repository root");
#ifdef ARWKV_HIP_EMULATOR
    if (!getenv("ARWKV_TEST_STAGE2")) SKIP("a GPU check: a vocabulary-sized product per token is minutes on the emulator");
#endif
    arwkv__gpu *g = gpu_state();
    int saved = g->gemm_fp32;
    enum { N = 32 };
    for (int student = 0; student <= 1; student++)
        for (int mode = 1; mode >= 0; mode--) {
            if (mode == 0 && !g->has_mma) continue;
            g->gemm_fp32 = mode;
            int32_t a[N], b[N];
            CHECK_OK(greedy(cpu, student, N, a));
            CHECK_OK(greedy(gpu, student, N, b));
            int same = 0;
            while (same < N && a[same] == b[same]) same++;
            printf("    %s, %s products: %d of %d greedy tokens as on the CPU\n", student ? "student" : "teacher", mode ? "fp32" : "bf16", same, N);
            /* fp32 products: the same function, so the same tokens; bf16 rounding may flip a near-tie */
            if (mode) CHECK(same == N, "%s: greedy tokens differ from the CPU's at %d", student ? "student" : "teacher", same);
        }
    g->gemm_fp32 = saved;
}

/* The teachers of every family (tests/data/arch: GQA Llama, tied Llama with biases and a head_dim of
   its own, Qwen3 with per-head q/k norms) compute the CPU's logits, batched and KV-cached. */
static arwkv_result family_logits(arwkv_backend *be, const char *dir, const int32_t *ids, int T, std::vector<float> &full,
                                  std::vector<float> &cached) {
    arwkv_model *m = NULL;
    arwkv_teacher *t = NULL;
    arwkv_kv_cache *kv = NULL;
    float *dev = NULL;
    const float *hidden = NULL;
    arwkv_result r = arwkv_model_load(dir, be, &m);
    int V = m ? m->cfg.vocab_size : 0;
    full.assign((size_t)T * V, 0), cached.assign((size_t)T * V, 0);
    if (r == ARWKV_OK) r = arwkv_teacher_create(m, &t);
    if (r == ARWKV_OK) r = arwkv_teacher_forward(t, ids, 1, T, NULL, NULL, &hidden);
    if (r == ARWKV_OK) r = be->mem->alloc(be, sizeof(float) * full.size(), (void **)&dev);
    if (r == ARWKV_OK) r = arwkv_model_logits(m, hidden, T, dev);
    if (r == ARWKV_OK) r = be->mem->download(be, full.data(), dev, sizeof(float) * full.size());
    if (r == ARWKV_OK) r = arwkv_kv_cache_create(m, 0, &kv);
    if (r == ARWKV_OK) r = arwkv_teacher_step(t, kv, ids, T / 2, NULL, cached.data());
    for (int i = T / 2; i < T && r == ARWKV_OK; i++) r = arwkv_teacher_step(t, kv, ids + i, 1, NULL, cached.data() + (size_t)i * V);
    if (dev) be->mem->free(be, dev);
    arwkv_kv_cache_free(kv);
    arwkv_teacher_free(t);
    arwkv_model_free(m);
    return r;
}

TEST(teacher_families_match_cpu) {
    if (!test_file_exists("tests/data/arch/qwen3/config.json")) SKIP("run from the repository root (needs tests/data/arch)");
    arwkv__gpu *g = gpu_state();
    int saved = g->gemm_fp32;
    g->gemm_fp32 = 1;
    static const char *const dirs[4] = {"tests/data/arch/llama-gqa", "tests/data/arch/llama-tied", "tests/data/arch/qwen3",
                                        "tests/data/arch/qwen3-small"};
    int32_t ids[40];
    for (int i = 0; i < 40; i++) ids[i] = (i * 97 + 13) % 509;
    for (int k = 0; k < 4; k++) {
        std::vector<float> fc, cc, fg, cg;
        CHECK_OK(family_logits(cpu, dirs[k], ids, 40, fc, cc));
        CHECK_OK(family_logits(gpu, dirs[k], ids, 40, fg, cg));
        double ef = fg.size() == fc.size() ? rel(fg.data(), fc.data(), fc.size()) : INFINITY;
        double ec = cg.size() == fc.size() ? rel(cg.data(), fc.data(), fc.size()) : INFINITY;
        printf("    %s: logits %.2g, KV-cached %.2g from the CPU's\n", dirs[k], ef, ec);
        CHECK(ef < 1e-5 && ec < 1e-5, "%s: logits %.3g, cached %.3g from the CPU's", dirs[k], ef, ec);
    }
    g->gemm_fp32 = saved;
}

/* A QRWKV6 student of Qwen3 keeps the teacher's per-head q/k norms inside its time mix (RMSNorm ops
   over rows of head_dim, forward and backward): one stage-2 gradient, every parameter's, as on the CPU. */
static arwkv_result qwen3_qrwkv6_grads(arwkv_backend *be, arwkv_model **teacher, arwkv_model **student, arwkv_trainer **tr,
                                       arwkv_dataset *data, double *loss) {
    const char *dir = "tests/data/arch/qwen3-small";
    arwkv_tokenizer *tok = NULL;
    arwkv_student_options so;
    arwkv_student_options_default(&so);
    so.arch = ARWKV_ARCH_QRWKV6;
    arwkv_train_options o;
    arwkv_train_options_default(&o, 2);
    o.seq_len = 24, o.batch = 2, o.steps = 1, o.seed = 3;
    arwkv_dataset_init(data);
    arwkv_result r = arwkv_model_load(dir, be, teacher);
    if (r == ARWKV_OK) r = arwkv_tokenizer_load(dir, &tok);
    if (r == ARWKV_OK) r = arwkv_student_create(*teacher, &so, student);
    if (r == ARWKV_OK) r = qrwkv6_randomize(*student);
    if (r == ARWKV_OK) r = arwkv_dataset_add_file(data, tok, "tests/data/tokenizer/code.txt", arwkv_tokenizer_token_id(tok, "<|endoftext|>"));
    if (r == ARWKV_OK) r = arwkv_dataset_pack(data, o.seq_len, 7);
    if (r == ARWKV_OK) r = arwkv_trainer_create(*teacher, *student, &o, data, tr);
    if (r == ARWKV_OK) {
        for (int b = 0; b < o.batch; b++) arwkv_dataset_next(data, (*tr)->inputs + b * o.seq_len, (*tr)->targets + b * o.seq_len);
        double kl, ce;
        r = arwkv__zero_grads(*student);
        if (r == ARWKV_OK) r = arwkv__logit_stage_step(*tr, loss, &kl, &ce);
    }
    arwkv_tokenizer_free(tok);
    return r;
}

TEST(qrwkv6_student_of_qwen3_matches_cpu) {
    if (!test_file_exists("tests/data/arch/qwen3-small/config.json")) SKIP("run from the repository root (needs tests/data/arch)");
    arwkv__gpu *g = gpu_state();
    int saved = g->gemm_fp32;
    g->gemm_fp32 = 1;
    arwkv_model *tc = NULL, *sc = NULL, *tg = NULL, *sg = NULL;
    arwkv_trainer *trc = NULL, *trg = NULL;
    arwkv_dataset dc, dg;
    double lc = NAN, lg = NAN, worst = 0;
    const char *worst_name = "";
    int compared = 0, norms = 0;
    CHECK_OK(qwen3_qrwkv6_grads(cpu, &tc, &sc, &trc, &dc, &lc));
    CHECK_OK(qwen3_qrwkv6_grads(gpu, &tg, &sg, &trg, &dg, &lg));
    for (int i = 0; sc && sg && i < sc->n_params; i++) {
        arwkv_param *p = &sc->params[i], *q = arwkv_model_param(sg, p->name);
        if (!p->trainable || !q || !q->trainable) continue;
        std::vector<float> a((size_t)p->numel), b((size_t)p->numel);
        memcpy(a.data(), p->grad, a.size() * sizeof(float));
        dev_to(b.data(), q->grad, b.size() * sizeof(float));
        double e = test_rel_err(b.data(), a.data(), a.size());
        if (!(e <= worst)) worst = e, worst_name = p->name;
        compared++;
        norms += strstr(p->name, "_norm.weight") != NULL && strstr(p->name, "self_attn") != NULL;
    }
    double el = fabs(lg - lc) / fabs(lc);
    printf("    loss %.6f (CPU %.6f, %.2g apart); %d gradients (%d q/k norms), worst %.3g (%s)\n", lg, lc, el, compared, norms, worst, worst_name);
    CHECK(el < 1e-5 && compared > 0 && norms == 4 && worst < 1e-3, "loss %.8g vs %.8g; gradient of %s %.3g from the CPU's (%d norms)", lg, lc,
          worst_name, worst, norms);
    arwkv_trainer_free(trc), arwkv_trainer_free(trg);
    arwkv_model_free(sc), arwkv_model_free(sg), arwkv_model_free(tc), arwkv_model_free(tg);
    arwkv_dataset_free(&dc), arwkv_dataset_free(&dg);
    g->gemm_fp32 = saved;
}

/* Batched generation (arwkv_generate_batch) on the GPU: three prompts of different lengths decoded
   together, greedy and seeded-sampled, give the CPU's tokens with fp32 products, teacher and student. */
static arwkv_result batched(arwkv_backend *be, int student, int32_t out[3][12], int n_out[3]) {
    arwkv_model *t = NULL, *s = NULL;
    arwkv_student_options so;
    arwkv_student_options_default(&so);
    so.init = ARWKV_INIT_INHERIT;
    static const int32_t prompt[8] = {750, 75698, 1445, 982, 262, 421, 308, 366};
    arwkv_gen_request q[3];
    memset(q, 0, sizeof q);
    for (int i = 0; i < 3; i++) {
        q[i].prompt = prompt + 2 * i, q[i].n_prompt = 8 - 2 * i, q[i].max_new = 12, q[i].out = out[i];
        arwkv_sampler_options_default(&q[i].sampling);
        q[i].sampling.temperature = i == 1 ? 0.8f : 0.0f, q[i].sampling.seed = 5;
    }
    arwkv_result r = arwkv_model_load(tiny_teacher, be, &t);
    if (r == ARWKV_OK && student) r = arwkv_student_create(t, &so, &s);
    if (r == ARWKV_OK) r = arwkv_generate_batch(student ? s : t, q, 3, 3);
    for (int i = 0; i < 3; i++) n_out[i] = q[i].n_out;
    arwkv_model_free(s);
    arwkv_model_free(t);
    return r;
}

TEST(batched_generation_matches_cpu) {
    if (!test_file_exists("models/qwen2-code-tiny/config.json")) SKIP("run from the repository root");
#ifdef ARWKV_HIP_EMULATOR
    if (!getenv("ARWKV_TEST_STAGE2")) SKIP("a GPU check: a vocabulary-sized product per token is minutes on the emulator");
#endif
    arwkv__gpu *g = gpu_state();
    int saved = g->gemm_fp32;
    g->gemm_fp32 = 1;
    for (int student = 0; student <= 1; student++) {
        int32_t a[3][12], b[3][12];
        int na[3], nb[3];
        CHECK_OK(batched(cpu, student, a, na));
        CHECK_OK(batched(gpu, student, b, nb));
        for (int i = 0; i < 3; i++)
            CHECK(na[i] == 12 && nb[i] == 12 && memcmp(a[i], b[i], sizeof a[i]) == 0, "%s, sequence %d: the GPU's tokens differ from the CPU's",
                  student ? "student" : "teacher", i);
    }
    g->gemm_fp32 = saved;
}

/* ============================================================================================
   Errors
   ============================================================================================ */
TEST(errors) {
    arwkv_backend *be = NULL;
    CHECK(arwkv_backend_gpu(999, &be) == ARWKV_ERR_GPU && be == NULL, "device 999 accepted");
    CHECK(strstr(arwkv_last_error(), "999") != NULL, "error text does not name the device: %s", arwkv_last_error());
    void *p = NULL;
    CHECK(gpu->mem->alloc(gpu, (size_t)1 << 50, &p) == ARWKV_ERR_OUT_OF_MEMORY && p == NULL, "a petabyte allocation succeeded");
    CHECK(gpu->core->gemm(gpu, 2, 2, 2, NULL, 2, 1, NULL, ARWKV_I32, 1, 2, NULL, 2, 0, NULL) == ARWKV_ERR_UNSUPPORTED, "int B accepted");
    /* the backend still works after those */
    float *d = (float *)dev_alloc(64);
    CHECK_OK(gpu->core->axpy(gpu, d, 1.0f, d, 16));
    CHECK_OK(gpu->mem->sync(gpu));
    dev_free(d);
}

/* Both backends go through the same checks (arwkv.h's arwkv__*_check): the same bad call gets the
   same code and the same message from the CPU and the GPU. No call here reaches memory: each
   fails before it would read a pointer (all NULL). */
typedef arwkv_result (*bad_call)(arwkv_backend *be);
static void same_error(const char *what, bad_call call, const char *expect) {
    arwkv_result rc = call(cpu);
    std::string cpu_msg = arwkv_last_error();
    arwkv_result rg = call(gpu);
    std::string gpu_msg = arwkv_last_error();
    CHECK(rc != ARWKV_OK && rc == rg, "%s: CPU %s, GPU %s", what, arwkv_result_string(rc), arwkv_result_string(rg));
    CHECK(cpu_msg == gpu_msg, "%s: the CPU says \"%s\", the GPU \"%s\"", what, cpu_msg.c_str(), gpu_msg.c_str());
    CHECK(strstr(cpu_msg.c_str(), expect) != NULL, "%s: \"%s\" does not say \"%s\"", what, cpu_msg.c_str(), expect);
}
TEST(checks_shared_with_cpu) {
    same_error("WKV7 forward, B < 0",
               [](arwkv_backend *be) { return be->rwkv7->wkv7_forward(be, -1, 4, 2, 16, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL); },
               "WKV7: bad shape (B -1, T 4, H 2)");
    same_error("WKV7 backward, no heads",
               [](arwkv_backend *be) {
                   return be->rwkv7->wkv7_backward(be, 1, 4, 0, 16, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL,
                                                   NULL, NULL);
               },
               "WKV7: bad shape (B 1, T 4, H 0)");
    same_error("WKV7 backward without checkpoints",
               [](arwkv_backend *be) {
                   return be->rwkv7->wkv7_backward(be, 1, 4, 1, 16, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL,
                                                   NULL, NULL);
               },
               "WKV7 backward: no state checkpoints (run the forward with ckpt)");
    same_error("WKV6 forward, T < 0",
               [](arwkv_backend *be) { return be->rwkv6->wkv6_forward(be, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, 1, -2, 1, 64, 1.0f); },
               "WKV6: bad shape (B 1, T -2, H 1)");
    same_error("WKV6 forward, B x H x N beyond an int",
               [](arwkv_backend *be) {
                   return be->rwkv6->wkv6_forward(be, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, 1 << 20, 1, 1 << 10, 64, 1.0f);
               },
               "WKV6: bad shape (B 1048576, T 1, H 1024)");
    same_error("WKV6 backward without checkpoints",
               [](arwkv_backend *be) {
                   return be->rwkv6->wkv6_backward(be, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, 2, 3, 1, 64, 1.0f);
               },
               "WKV6 backward: no state checkpoints (run the forward with ckpt)");
    same_error("time-mix lerp, 7 mixes",
               [](arwkv_backend *be) { return be->rwkv7->lerp_forward(be, NULL, NULL, NULL, NULL, NULL, 7, 1, 1, 8); },
               "time-mix lerp: 7 mixes (0 to 6)");
    same_error("time-mix lerp backward, C < 0",
               [](arwkv_backend *be) { return be->rwkv7->lerp_backward(be, NULL, NULL, NULL, NULL, NULL, NULL, NULL, 2, 1, 1, -8); },
               "time-mix lerp: bad shape (B 1, T 1, C -8)");
    same_error("RWKV-6 key/value heads that do not divide",
               [](arwkv_backend *be) { return be->rwkv6->kv_expand_forward(be, NULL, NULL, NULL, NULL, NULL, 1, 3, 2, 16); },
               "RWKV-6 key/value heads: 3 heads, 2 kv heads");
    same_error("alignment loss of an unknown kind",
               [](arwkv_backend *be) { return be->loss->align(be, (arwkv_align_kind)9, NULL, NULL, 1, 8, 1.0f, NULL, NULL); },
               "alignment loss: unknown kind 9");
    same_error("matrix product of an integer B",
               [](arwkv_backend *be) { return be->core->gemm(be, 2, 2, 2, NULL, 2, 1, NULL, ARWKV_I32, 1, 2, NULL, 2, 0, NULL); },
               "matrix product B: element type I32 (F32, BF16 or F16 only)");
    same_error("embedding of an F64 table",
               [](arwkv_backend *be) { return be->core->embed_forward(be, NULL, NULL, 1, NULL, ARWKV_F64, 8); },
               "embedding: element type F64");
    same_error("RMSNorm backward with I8 weights",
               [](arwkv_backend *be) { return be->core->rmsnorm_backward(be, NULL, NULL, NULL, NULL, NULL, ARWKV_I8, NULL, 1, 8, 0); },
               "RMSNorm: element type I8");
}

/* ============================================================================================
   Timings (not tests: numbers for the record)
   ============================================================================================ */
static double time_ms(void (*fn)(void *), void *ctx, int reps) {
    hipEvent_t a, b;
    (void)hipEventCreate(&a), (void)hipEventCreate(&b);
    fn(ctx); /* warm-up */
    std::vector<float> ms;
    for (int i = 0; i < reps; i++) {
        (void)hipEventRecord(a, gpu_state()->stream);
        fn(ctx);
        (void)hipEventRecord(b, gpu_state()->stream);
        (void)hipEventSynchronize(b);
        float t = 0;
        (void)hipEventElapsedTime(&t, a, b);
        ms.push_back(t);
    }
    (void)hipEventDestroy(a), (void)hipEventDestroy(b);
    std::sort(ms.begin(), ms.end());
    return ms[ms.size() / 2];
}

/* n random floats on the device: one random block of 4M, copied over and over */
static void fill_random(float *d, size_t n) {
    const size_t block = (size_t)1 << 22;
    std::vector<float> r = randn(block, 1.0f);
    float *src = (float *)dev_from(r.data(), block * 4);
    for (size_t i = 0; i < n; i += block) gpu->mem->copy(gpu, d + i, src, (n - i < block ? n - i : block) * 4);
    dev_free(src);
}

struct gemm_bench {
    int M, N, K;
    float *A, *C;
    void *B;
    arwkv_dtype bt;
};
static void run_gemm_bench(void *ctx) {
    gemm_bench *g = (gemm_bench *)ctx;
    gpu->core->gemm(gpu, g->M, g->N, g->K, g->A, g->K, 1, g->B, g->bt, 1, g->K, g->C, g->N, 0, NULL);
}
struct bw_bench {
    float *x, *y;
    size_t n;
    int op;
};
static void run_bw_bench(void *ctx) {
    bw_bench *b = (bw_bench *)ctx;
    if (b->op == 0) gpu->core->axpy(gpu, b->y, 0.5f, b->x, b->n);
    else if (b->op == 1) gpu->mem->copy(gpu, b->y, b->x, b->n * 4);
    else gpu->core->swiglu_forward(gpu, b->y, b->x, b->x, b->n);
}

static void timings(void) {
    arwkv__gpu *g = gpu_state();
    printf("timings on %s (%s, %d multiprocessors, %.1f GiB)\n", g->prop.name, ARWKV__GPU_API, g->prop.multiProcessorCount,
           g->prop.totalGlobalMem / 1073741824.0);
    const int S = 8192;
    std::vector<float> a = randn((size_t)S * S, 1.0f);
    std::vector<uint16_t> bh = to_half(a, ARWKV_BF16);
    gemm_bench gb = {S, S, S, (float *)dev_from(a.data(), a.size() * 4), (float *)dev_alloc((size_t)S * S * 4),
                     dev_from(bh.data(), bh.size() * 2), ARWKV_BF16};
    int saved = g->gemm_fp32, saved_wg = g->has_wgmma;
    for (int mode = 0; mode < 3; mode++) { /* wgmma (Hopper), the portable matrix-unit kernel, fp32 SIMT */
        if ((mode == 0 && !saved_wg) || (mode == 1 && !g->has_mma)) continue;
        g->gemm_fp32 = mode == 2, g->has_wgmma = mode == 0;
        int n = mode == 2 ? 4096 : S; /* the SIMT path is slower: a smaller product */
        gb.M = gb.N = gb.K = n;
        double ms = time_ms(run_gemm_bench, &gb, mode == 2 ? 5 : 10);
        printf("TIME gemm %dx%dx%d A fp32, B bf16 [N,K], %s: %.3f ms, %.1f TFLOP/s\n", n, n, n,
               mode == 0 ? "bf16 wgmma" : mode == 1 ? "bf16 matrix units (mma.sync / MFMA)" : "fp32 SIMT", ms,
               2.0 * n * n * (double)n / (ms * 1e-3) / 1e12);
    }
    g->gemm_fp32 = saved, g->has_wgmma = saved_wg;
    /* the shape of a 7B model's MLP up projection over 4096 tokens */
    gb.M = 4096, gb.N = 8192, gb.K = 3584;
    double ms = time_ms(run_gemm_bench, &gb, 10);
    printf("TIME gemm 4096x8192x3584 (an MLP projection of 4096 tokens), bf16 matrix units: %.3f ms, %.1f TFLOP/s\n", ms,
           2.0 * gb.M * gb.N * (double)gb.K / (ms * 1e-3) / 1e12);
    dev_free(gb.A), dev_free(gb.C), dev_free(gb.B);
    size_t n = (size_t)1 << 28; /* 1 GiB per fp32 array, filled with random numbers (never time zeros) */
    bw_bench bb = {(float *)dev_alloc(n * 4), (float *)dev_alloc(n * 4), n, 0};
    fill_random(bb.x, n), fill_random(bb.y, n);
    ms = time_ms(run_bw_bench, &bb, 10);
    printf("TIME axpy over %zu floats: %.3f ms, %.0f GB/s (12 bytes per element)\n", n, ms, 12.0 * n / (ms * 1e-3) / 1e9);
    bb.op = 1;
    ms = time_ms(run_bw_bench, &bb, 10);
    printf("TIME device copy of %zu bytes: %.3f ms, %.0f GB/s (read + write)\n", n * 4, ms, 8.0 * n / (ms * 1e-3) / 1e9);
    dev_free(bb.x), dev_free(bb.y);
    /* stage-2 loss: 64 rows of Qwen's vocabulary */
    int rows = 64, V = 151936;
    float *s = (float *)dev_alloc((size_t)rows * V * 4), *t = (float *)dev_alloc((size_t)rows * V * 4);
    fill_random(s, (size_t)rows * V), fill_random(t, (size_t)rows * V);
    struct lctx { float *s, *t; int rows, V; } lc = {s, t, rows, V};
    auto run_logits = [](void *c) {
        lctx *l = (lctx *)c;
        gpu->loss->logits_loss(gpu, l->s, l->t, NULL, l->rows, l->V, 1.0f, 1.0f, 0.0f, 1.0f, NULL, NULL);
    };
    ms = time_ms(run_logits, &lc, 10);
    printf("TIME logits loss (KL) %d rows x %d: %.3f ms, %.0f GB/s effective (s, t read twice, s written)\n", rows, V, ms,
           (double)rows * V * 4 * 5 / (ms * 1e-3) / 1e9);
    dev_free(s), dev_free(t);
    /* the teacher's attention over 2048 tokens: Qwen2.5-0.5B (14 heads, 2 kv heads, 64) and 7B (28, 4, 128) */
    const int att[2][4] = {{2048, 14, 2, 64}, {2048, 28, 4, 128}};
    for (auto &shape : att) {
        int T = shape[0], H = shape[1], Hkv = shape[2], D = shape[3];
        struct actx { float *o, *q, *k, *v; int T, H, Hkv, D; } ac = {(float *)dev_alloc((size_t)T * H * D * 4), (float *)dev_alloc((size_t)T * H * D * 4),
                                                                       (float *)dev_alloc((size_t)T * Hkv * D * 4), (float *)dev_alloc((size_t)T * Hkv * D * 4),
                                                                       T, H, Hkv, D};
        fill_random(ac.q, (size_t)T * H * D), fill_random(ac.k, (size_t)T * Hkv * D), fill_random(ac.v, (size_t)T * Hkv * D);
        auto run_att = [](void *c) {
            actx *x = (actx *)c;
            gpu->qwen->attention_forward(gpu, x->o, x->q, x->k, x->v, 1, x->T, 0, x->H, x->Hkv, x->D, 0);
        };
        ms = time_ms(run_att, &ac, 5);
        printf("TIME attention T=%d heads %d/%d D=%d (causal): %.3f ms, %.1f TFLOP/s (fp32 SIMT)\n", T, H, Hkv, D, ms,
               2.0 * T * (double)T * D * H / (ms * 1e-3) / 1e12);
        dev_free(ac.o), dev_free(ac.q), dev_free(ac.k), dev_free(ac.v);
    }
    /* WKV7 over 4 sequences of 2048 tokens with 56 heads of 64 (an ARWKV-7B layer) */
    {
        int B = 4, T = 2048, H = 56, N = 64;
        size_t nw = (size_t)B * T * H * N, ns = (size_t)B * H * N * N;
        struct wctx { int B, T, H, N; float *in[8], *ck, *S, *g[6]; } wc;
        wc.B = B, wc.T = T, wc.H = H, wc.N = N;
        std::vector<float> in[6];
        wkv_inputs(1, 1024, H, N, in); /* a quarter of the tokens, repeated: realistic decays and keys */
        for (int i = 0; i < 8; i++) {
            wc.in[i] = (float *)dev_alloc(nw * 4);
            for (size_t o = 0; o < nw; o += in[0].size()) gpu->mem->upload(gpu, wc.in[i] + o, in[i < 6 ? i : 0].data(), in[0].size() * 4);
        }
        wc.ck = (float *)dev_alloc((size_t)((T + 15) / 16) * ns * 4), wc.S = (float *)dev_alloc(ns * 4);
        for (int i = 0; i < 6; i++) wc.g[i] = (float *)dev_alloc(nw * 4);
        auto run_fwd = [](void *c) {
            wctx *w = (wctx *)c;
            gpu->rwkv7->wkv7_forward(gpu, w->B, w->T, w->H, w->N, w->in[0], w->in[1], w->in[2], w->in[3], w->in[4], w->in[5], w->in[6], NULL, w->ck);
        };
        auto run_bwd = [](void *c) {
            wctx *w = (wctx *)c;
            gpu->rwkv7->wkv7_backward(gpu, w->B, w->T, w->H, w->N, w->in[0], w->in[1], w->in[2], w->in[3], w->in[4], w->in[5], w->in[7], w->ck,
                                      NULL, w->g[0], w->g[1], w->g[2], w->g[3], w->g[4], w->g[5]);
        };
        double f = time_ms(run_fwd, &wc, 5), bw = time_ms(run_bwd, &wc, 5);
        printf("TIME WKV7 B=%d T=%d H=%d N=%d: forward %.3f ms (%.2f M tokens/s), backward %.3f ms\n", B, T, H, N, f, B * T / (f * 1e-3) / 1e6,
               bw);
        for (int i = 0; i < 8; i++) dev_free(wc.in[i]);
        for (int i = 0; i < 6; i++) dev_free(wc.g[i]);
        dev_free(wc.ck), dev_free(wc.S);
    }
}

int main(int argc, char **argv) {
    (void)argc, (void)argv;
    test_seed(20260611);
    if (arwkv_backend_cpu(0, &cpu) != ARWKV_OK) die("cpu backend");
    if (arwkv_backend_gpu(0, &gpu) != ARWKV_OK) {
        printf("SKIP all: no GPU backend: %s\n", arwkv_last_error());
        return 0;
    }
    printf("device: %s (%s, matrix units %s, warp %d)\n", arwkv_backend_name(gpu), ARWKV__GPU_API,
           gpu_state()->has_mma ? "yes" : "no", gpu_state()->prop.warpSize);
    RUN(memory_ops);
    RUN(gemm_matrix_units_bf16);
    RUN(gemm_simt_fp32);
    RUN(gemm_repeatable);
    RUN(embedding_forward_backward);
    RUN(rmsnorm_forward_backward);
    RUN(swiglu_axpy);
    RUN(align_losses);
    RUN(logits_losses);
    RUN(optimizer_ops);
    RUN(rope);
    RUN(attention);
    RUN(rwkv7_lerp);
    RUN(rwkv7_activations);
    RUN(rwkv7_prepare);
    RUN(rwkv7_wkv7);
    RUN(rwkv7_finish);
    RUN(rwkv6_shift_ddlerp);
    RUN(rwkv6_elementwise);
    RUN(rwkv6_kv_expand);
    RUN(rwkv6_wkv6);
    RUN(training_steps_match_cpu);
    RUN(every_gradient_matches_cpu);
    RUN(recompute_matches_keeping);
    RUN(offloaded_optimizer_on_gpu);
    RUN(streamed_teacher_matches_resident);
    RUN(qrwkv6_student_matches_cpu);
    RUN(greedy_generation_matches_cpu);
    RUN(teacher_families_match_cpu);
    RUN(qrwkv6_student_of_qwen3_matches_cpu);
    RUN(batched_generation_matches_cpu);
    RUN(errors);
    RUN(checks_shared_with_cpu);
    /* last: their random draws would change the inputs of the tests above */
    RUN(gemm_wgmma_bf16);
    RUN(attention_tensor_cores);
#ifdef ARWKV_HIP_EMULATOR
    int rc = test_summary(ARWKV_EMU_WARP == 64 ? "gpu kernels on the CPU emulator (wave 64, MFMA)" : "gpu kernels on the CPU emulator (warp 32, mma.sync)");
#else
    int rc = test_summary("gpu");
    if (!getenv("ARWKV_TEST_NO_TIMINGS")) timings();
#endif
    arwkv_backend_destroy(gpu);
    arwkv_backend_destroy(cpu);
    return rc;
}
