/* test_gpu: every op of the GPU backend (arwkv_hip.h) against the CPU backend, on fresh random
   inputs of several shapes (sizes that are not multiples of the tiles, single rows, odd strides).
   Outputs are poisoned with NaN before each call, so an element the kernel forgets to write fails
   the comparison. Tolerances: fp32 paths 1e-5 of the largest reference value (float64 sums on both
   sides), bf16 matrix-unit products 1e-2. Ends with timings (matrix product, bandwidth) and the
   device's name.

   Built by `make gpu` (nvcc) or `make gpu-hip` (hipcc); needs a GPU to run. */
#define ARWKV_IMPLEMENTATION
#include "arwkv.h"
#define ARWKV_HIP_IMPLEMENTATION
#include "arwkv_hip.h"
#include "test.h"

#include <algorithm>
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
    std::vector<float> v(n ? n : 1);
    test_fill_randn(v.data(), n, scale);
    return v;
}
static std::vector<uint16_t> to_half(const std::vector<float> &x, arwkv_dtype t) {
    std::vector<uint16_t> h(x.size());
    for (size_t i = 0; i < x.size(); i++) h[i] = t == ARWKV_BF16 ? arwkv_f32_to_bf16(x[i]) : arwkv_f32_to_f16(x[i]);
    return h;
}
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
                double ex = rel(dxg.data(), dxc.data(), dxg.size()), ew = rel(dwg.data(), dwc.data(), dwg.size());
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
    int saved = g->gemm_fp32;
    for (int mode = 0; mode < 2; mode++) {
        if (mode == 0 && !g->has_mma) continue;
        g->gemm_fp32 = mode;
        int n = mode ? 4096 : S; /* the SIMT path is slower: a smaller product */
        gb.M = gb.N = gb.K = n;
        double ms = time_ms(run_gemm_bench, &gb, mode ? 5 : 10);
        printf("TIME gemm %dx%dx%d A fp32, B bf16 [N,K], %s: %.3f ms, %.1f TFLOP/s\n", n, n, n,
               mode ? "fp32 SIMT" : "bf16 matrix units", ms, 2.0 * n * n * (double)n / (ms * 1e-3) / 1e12);
    }
    g->gemm_fp32 = saved;
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
    RUN(errors);
    int rc = test_summary("gpu");
    if (!getenv("ARWKV_TEST_NO_TIMINGS")) timings();
    arwkv_backend_destroy(gpu);
    arwkv_backend_destroy(cpu);
    return rc;
}
