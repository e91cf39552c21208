/* The QRWKV6 time mix (RWKV6Qwen2ForCausalLM): every rwkv6 op against a float64 reference and its
   backward against float64 finite differences; the whole block the same way; recurrent mode, chunked
   processing and thread counts against each other; an independent transcription of llama.cpp's
   rwkv6qwen2 graph (through the converter's tensor transformations); and the checkpoint layout of a
   student made from the bundled teacher, saved and loaded back. */
#define ARWKV_IMPLEMENTATION
#include "arwkv.h"
#include "test.h"

static arwkv_backend *be1, *be2; /* 1 and 2 threads */
static int quick;                /* ARWKV_TEST_QUICK: sample fewer finite differences */

/* ---- helpers -------------------------------------------------------------------------------- */

static double *dnew(size_t n) { return (double *)calloc(n ? n : 1, sizeof(double)); }
static float *fnew(size_t n) { return (float *)calloc(n ? n : 1, sizeof(float)); }
static void drandn(double *x, size_t n, double scale, double shift) {
    for (size_t i = 0; i < n; i++) x[i] = shift + scale * test_randn();
}
static void dtof(float *f, const double *d, size_t n) {
    for (size_t i = 0; i < n; i++) f[i] = (float)d[i];
}
static float *fcopy(const double *d, size_t n) {
    float *f = fnew(n);
    dtof(f, d, n);
    return f;
}
/* max |a - b| over max |b| (a float, b double) */
static double rel_err_fd(const float *a, const double *b, size_t n) {
    double md = 0, mb = 0;
    for (size_t i = 0; i < n; i++) {
        double d = fabs((double)a[i] - b[i]);
        if (!(d <= md)) md = d;
        if (fabs(b[i]) > mb) mb = fabs(b[i]);
    }
    return mb > 0 ? md / mb : md;
}
static double sigm(double x) { return 1.0 / (1.0 + exp(-x)); }

/* Central finite differences of loss() with respect to arr[0..n), every `step`-th element;
   returns max |analytic - fd| / max |fd| over the sampled elements. */
typedef double (*loss_fn)(void *ctx);
static double fd_check(loss_fn loss, void *ctx, double *arr, size_t n, const float *analytic, size_t step) {
    double md = 0, mf = 0;
    for (size_t i = 0; i < n; i += step) {
        double save = arr[i], h = 1e-6 * (fabs(save) > 1 ? fabs(save) : 1);
        arr[i] = save + h;
        double lp = loss(ctx);
        arr[i] = save - h;
        double lm = loss(ctx);
        arr[i] = save;
        double fd = (lp - lm) / (2 * h), d = fabs(fd - (double)analytic[i]);
        if (!(d <= md)) md = d;
        if (fabs(fd) > mf) mf = fabs(fd);
    }
    return mf > 0 ? md / mf : md;
}
static double dot(const double *a, const double *b, size_t n) {
    double s = 0;
    for (size_t i = 0; i < n; i++) s += a[i] * b[i];
    return s;
}

/* ---- op tests: each op against a float64 transcription of its formula ------------------------ */

/* token shift */
typedef struct {
    int B, T, C;
    double *x, *shift, *maa, *sxx, *sxxx; /* sxx, sxxx: upstream gradient seeds */
} shift_case;
static double shift_loss(void *p) {
    shift_case *c = (shift_case *)p;
    double L = 0;
    for (int b = 0; b < c->B; b++)
        for (int t = 0; t < c->T; t++)
            for (int i = 0; i < c->C; i++) {
                size_t r = ((size_t)b * c->T + t) * c->C + i;
                double prev = t ? c->x[r - c->C] : c->shift[b * c->C + i];
                double xx = prev - c->x[r], xxx = c->x[r] + xx * c->maa[i];
                L += xx * c->sxx[r] + xxx * c->sxxx[r];
            }
    return L;
}
TEST(op_token_shift) {
    shift_case c = {2, 7, 24, NULL, NULL, NULL, NULL, NULL};
    size_t n = (size_t)c.B * c.T * c.C;
    c.x = dnew(n), c.shift = dnew(c.B * c.C), c.maa = dnew(c.C), c.sxx = dnew(n), c.sxxx = dnew(n);
    drandn(c.x, n, 1, 0), drandn(c.shift, c.B * c.C, 1, 0), drandn(c.maa, c.C, 0.5, 0.5), drandn(c.sxx, n, 1, 0), drandn(c.sxxx, n, 1, 0);
    float *x = fcopy(c.x, n), *sh = fcopy(c.shift, c.B * c.C), *maa = fcopy(c.maa, c.C), *gxx = fcopy(c.sxx, n), *gxxx = fcopy(c.sxxx, n);
    float *xx = fnew(n), *xxx = fnew(n), *dx = fnew(n), *dmaa = fnew(c.C);
    CHECK_OK(be1->rwkv6->shift_forward(be1, xx, xxx, x, sh, maa, c.B, c.T, c.C));
    double worst = 0;
    for (int b = 0; b < c.B; b++)
        for (int t = 0; t < c.T; t++)
            for (int i = 0; i < c.C; i++) {
                size_t r = ((size_t)b * c.T + t) * c.C + i;
                double prev = t ? c.x[r - c.C] : c.shift[b * c.C + i];
                worst = fmax(worst, fabs(xx[r] - (prev - c.x[r])) + fabs(xxx[r] - (c.x[r] + (prev - c.x[r]) * c.maa[i])));
            }
    CHECK(worst < 1e-5, "forward error %g", worst);
    /* with shift NULL the first row sees zeros */
    CHECK_OK(be1->rwkv6->shift_forward(be1, xx, xxx, x, NULL, maa, c.B, c.T, c.C));
    CHECK(xx[0] == -x[0] && xx[(size_t)c.T * c.C + 3] == -x[(size_t)c.T * c.C + 3], "zero state");
    /* dx accumulates: start from ones */
    CHECK_OK(be1->rwkv6->shift_forward(be1, xx, xxx, x, sh, maa, c.B, c.T, c.C)); /* xx with the state, for dmaa */
    for (size_t i = 0; i < n; i++) dx[i] = 1;
    CHECK_OK(be1->rwkv6->shift_backward(be1, dx, dmaa, gxx, gxxx, xx, maa, c.B, c.T, c.C));
    for (size_t i = 0; i < n; i++) dx[i] -= 1;
    double ex = fd_check(shift_loss, &c, c.x, n, dx, 1), em = fd_check(shift_loss, &c, c.maa, c.C, dmaa, 1);
    CHECK(ex < 1e-5 && em < 1e-5, "dx %g dmaa %g", ex, em);
    free(c.x), free(c.shift), free(c.maa), free(c.sxx), free(c.sxxx);
    free(x), free(sh), free(maa), free(gxx), free(gxxx), free(xx), free(xxx), free(dx), free(dmaa);
}

/* data-dependent lerp */
typedef struct {
    int rows, C;
    double *x, *xx, *maa, *m, *seed; /* maa [5][C]; m, seed [5][rows][C] */
} ddlerp_case;
static double ddlerp_loss(void *p) {
    ddlerp_case *c = (ddlerp_case *)p;
    double L = 0;
    size_t plane = (size_t)c->rows * c->C;
    for (int br = 0; br < 5; br++)
        for (size_t r = 0; r < (size_t)c->rows; r++)
            for (int i = 0; i < c->C; i++) {
                size_t k = r * c->C + i;
                L += (c->x[k] + c->xx[k] * (c->maa[br * c->C + i] + c->m[br * plane + k])) * c->seed[br * plane + k];
            }
    return L;
}
TEST(op_ddlerp) {
    ddlerp_case c = {11, 20, NULL, NULL, NULL, NULL, NULL};
    size_t n = (size_t)c.rows * c.C, n5 = 5 * n;
    c.x = dnew(n), c.xx = dnew(n), c.maa = dnew(5 * c.C), c.m = dnew(n5), c.seed = dnew(n5);
    drandn(c.x, n, 1, 0), drandn(c.xx, n, 1, 0), drandn(c.maa, 5 * c.C, 0.5, 0.3), drandn(c.m, n5, 0.5, 0), drandn(c.seed, n5, 1, 0);
    float *x = fcopy(c.x, n), *xx = fcopy(c.xx, n), *maa = fcopy(c.maa, 5 * c.C), *m = fcopy(c.m, n5), *seed = fcopy(c.seed, n5);
    float *xc = fnew(n5), *dx = fnew(n), *dxx = fnew(n), *dm = fnew(n5), *dmaa = fnew(5 * c.C);
    const float *maap[5];
    float *dmaap[5];
    for (int br = 0; br < 5; br++) maap[br] = maa + br * c.C, dmaap[br] = dmaa + br * c.C;
    CHECK_OK(be2->rwkv6->ddlerp_forward(be2, xc, x, xx, maap, m, c.rows, c.C));
    double worst = 0;
    for (int br = 0; br < 5; br++)
        for (size_t k = 0; k < n; k++)
            worst = fmax(worst, fabs(xc[br * n + k] - (c.x[k] + c.xx[k] * (c.maa[br * c.C + k % c.C] + c.m[br * n + k]))));
    CHECK(worst < 1e-5, "forward %g", worst);
    dmaap[2] = NULL; /* a frozen branch gets nothing */
    CHECK_OK(be2->rwkv6->ddlerp_backward(be2, dx, dxx, dm, dmaap, seed, xx, maap, m, c.rows, c.C));
    double e1 = fd_check(ddlerp_loss, &c, c.x, n, dx, 1), e2 = fd_check(ddlerp_loss, &c, c.xx, n, dxx, 1);
    double e3 = fd_check(ddlerp_loss, &c, c.m, n5, dm, 1);
    double e4 = fd_check(ddlerp_loss, &c, c.maa, 2 * c.C, dmaa, 1) + fd_check(ddlerp_loss, &c, c.maa + 3 * c.C, 2 * c.C, dmaa + 3 * c.C, 1);
    int untouched = 1;
    for (int i = 0; i < c.C; i++) untouched &= dmaa[2 * c.C + i] == 0;
    CHECK(e1 < 1e-5 && e2 < 1e-5 && e3 < 1e-5 && e4 < 1e-5 && untouched, "dx %g dxx %g dm %g dmaa %g untouched %d", e1, e2, e3, e4, untouched);
    free(c.x), free(c.xx), free(c.maa), free(c.m), free(c.seed);
    free(x), free(xx), free(maa), free(m), free(seed), free(xc), free(dx), free(dxx), free(dm), free(dmaa);
}

/* tanh, decay, gate: elementwise */
typedef struct {
    int rows, C;
    double *a, *b, *seed;
    int which; /* 0 tanh(a), 1 exp(-exp(a + b[col])), 2 a sigmoid(b) */
} ew_case;
static double ew_loss(void *p) {
    ew_case *c = (ew_case *)p;
    double L = 0;
    for (size_t k = 0; k < (size_t)c->rows * c->C; k++) {
        double v = c->which == 0 ? tanh(c->a[k]) : c->which == 1 ? exp(-exp(c->a[k] + c->b[k % c->C])) : c->a[k] * sigm(c->b[k]);
        L += v * c->seed[k];
    }
    return L;
}
TEST(op_tanh_decay_gate) {
    ew_case c = {9, 40, NULL, NULL, NULL, 0};
    size_t n = (size_t)c.rows * c.C;
    c.a = dnew(n), c.b = dnew(n), c.seed = dnew(n);
    drandn(c.a, n, 1.5, 0), drandn(c.b, n, 1.5, 0), drandn(c.seed, n, 1, 0);
    float *a = fcopy(c.a, n), *b = fcopy(c.b, n), *seed = fcopy(c.seed, n), *y = fnew(n), *z = fnew(n), *da = fnew(n), *db = fnew(n);
    /* tanh */
    CHECK_OK(be2->rwkv6->tanh_forward(be2, y, a, n));
    double worst = 0;
    for (size_t k = 0; k < n; k++) worst = fmax(worst, fabs(y[k] - tanh(c.a[k])));
    CHECK_OK(be2->rwkv6->tanh_backward(be2, da, seed, y, n));
    c.which = 0;
    double e = fd_check(ew_loss, &c, c.a, n, da, 1);
    CHECK(worst < 1e-6 && e < 1e-5, "tanh forward %g backward %g", worst, e);
    /* decay: z enters as the LoRA output a, leaves as a + time_decay */
    memcpy(z, a, n * sizeof(float));
    CHECK_OK(be2->rwkv6->decay_forward(be2, y, z, b, c.rows, c.C));
    worst = 0;
    for (size_t k = 0; k < n; k++) worst = fmax(worst, fabs(y[k] - exp(-exp(c.a[k] + c.b[k % c.C]))));
    CHECK_OK(be2->rwkv6->decay_backward(be2, da, db, seed, z, y, c.rows, c.C));
    c.which = 1;
    double e1 = fd_check(ew_loss, &c, c.a, n, da, 1), e2 = fd_check(ew_loss, &c, c.b, c.C, db, 1);
    CHECK(worst < 1e-6 && e1 < 1e-5 && e2 < 1e-5, "decay forward %g dz %g dtime_decay %g", worst, e1, e2);
    /* an extreme decay: w rounds to 1 in float, the derivative must not vanish */
    float zz = -30, ww = expf(-expf(zz)), one = 1, dz;
    CHECK_OK(be1->rwkv6->decay_backward(be1, &dz, NULL, &one, &zz, &ww, 1, 1));
    CHECK(ww == 1.0f && dz < 0 && fabs(dz + exp(-30.0)) < 1e-6 * exp(-30.0), "dz at z = -30: %g", dz);
    /* the other end: exp(z) overflows, w = 0, and the derivative is 0, not NaN */
    float zero = 0;
    zz = 100;
    CHECK_OK(be1->rwkv6->decay_forward(be1, &ww, &zz, &zero, 1, 1));
    CHECK_OK(be1->rwkv6->decay_backward(be1, &dz, NULL, &one, &zz, &ww, 1, 1));
    CHECK(ww == 0 && dz == 0, "z = 100: w %g dz %g", ww, dz);
    /* gate */
    CHECK_OK(be2->rwkv6->gate_forward(be2, y, a, b, n));
    worst = 0;
    for (size_t k = 0; k < n; k++) worst = fmax(worst, fabs(y[k] - c.a[k] * sigm(c.b[k])));
    memset(db, 0, n * sizeof(float));
    CHECK_OK(be2->rwkv6->gate_backward(be2, da, db, seed, a, b, n));
    c.which = 2;
    e1 = fd_check(ew_loss, &c, c.a, n, da, 1), e2 = fd_check(ew_loss, &c, c.b, n, db, 1);
    CHECK(worst < 1e-6 && e1 < 1e-5 && e2 < 1e-5, "gate forward %g dy %g dg %g", worst, e1, e2);
    /* colsum accumulates column sums */
    for (int j = 0; j < c.C; j++) db[j] = 1;
    CHECK_OK(be2->rwkv6->colsum(be2, db, a, c.rows, c.C));
    worst = 0;
    for (int j = 0; j < c.C; j++) {
        double s = 1;
        for (int r = 0; r < c.rows; r++) s += a[(size_t)r * c.C + j];
        worst = fmax(worst, fabs(db[j] - s));
    }
    CHECK(worst < 1e-5, "colsum %g", worst);
    free(c.a), free(c.b), free(c.seed), free(a), free(b), free(seed), free(y), free(z), free(da), free(db);
}

/* grouped keys/values to heads */
typedef struct {
    int rows, H, KVH, N;
    double *k, *v, *w, *skk, *svv;
} kv_case;
static double kv_loss(void *p) {
    kv_case *c = (kv_case *)p;
    double L = 0;
    int G = c->H / c->KVH;
    for (int r = 0; r < c->rows; r++)
        for (int h = 0; h < c->H; h++)
            for (int i = 0; i < c->N; i++) {
                size_t hi = ((size_t)r * c->H + h) * c->N + i, ki = ((size_t)r * c->KVH + h / G) * c->N + i;
                L += c->k[ki] * (1 - c->w[hi]) * c->skk[hi] + c->v[ki] * c->svv[hi];
            }
    return L;
}
TEST(op_kv_expand) {
    kv_case c = {5, 6, 2, 8, NULL, NULL, NULL, NULL, NULL};
    size_t nk = (size_t)c.rows * c.KVH * c.N, nh = (size_t)c.rows * c.H * c.N;
    c.k = dnew(nk), c.v = dnew(nk), c.w = dnew(nh), c.skk = dnew(nh), c.svv = dnew(nh);
    drandn(c.k, nk, 1, 0), drandn(c.v, nk, 1, 0), drandn(c.skk, nh, 1, 0), drandn(c.svv, nh, 1, 0);
    for (size_t i = 0; i < nh; i++) c.w[i] = test_uniform();
    float *k = fcopy(c.k, nk), *v = fcopy(c.v, nk), *w = fcopy(c.w, nh), *skk = fcopy(c.skk, nh), *svv = fcopy(c.svv, nh);
    float *kk = fnew(nh), *vv = fnew(nh), *dk = fnew(nk), *dv = fnew(nk), *dw = fnew(nh);
    CHECK_OK(be2->rwkv6->kv_expand_forward(be2, kk, vv, k, v, w, c.rows, c.H, c.KVH, c.N));
    /* head 4 of 6 with 2 kv heads reads kv head 1 (repeat_kv) */
    size_t h4 = (size_t)4 * c.N + 3, kv1 = (size_t)1 * c.N + 3;
    CHECK(vv[h4] == v[kv1] && fabs(kk[h4] - k[kv1] * (1 - w[h4])) < 1e-6 && vv[2 * c.N] == v[0], "head to kv head map");
    for (size_t i = 0; i < nh; i++) dw[i] = 0.5f;
    CHECK_OK(be2->rwkv6->kv_expand_backward(be2, dk, dv, dw, skk, svv, k, w, c.rows, c.H, c.KVH, c.N));
    for (size_t i = 0; i < nh; i++) dw[i] -= 0.5f;
    double e1 = fd_check(kv_loss, &c, c.k, nk, dk, 1), e2 = fd_check(kv_loss, &c, c.v, nk, dv, 1), e3 = fd_check(kv_loss, &c, c.w, nh, dw, 1);
    CHECK(e1 < 1e-5 && e2 < 1e-5 && e3 < 1e-5, "dk %g dv %g dw %g", e1, e2, e3);
    free(c.k), free(c.v), free(c.w), free(c.skk), free(c.svv), free(k), free(v), free(w), free(skk), free(svv);
    free(kk), free(vv), free(dk), free(dv), free(dw);
}

/* the recurrence */
typedef struct {
    int B, T, H, N;
    double *r, *k, *v, *w, *s0, *seed, scale;
} wkv_case;
/* y (and the final state) by the definition, in float64 */
static void wkv_ref(const wkv_case *c, double *y, double *s_out) {
    int N = c->N;
    double *S = dnew((size_t)N * N);
    for (int b = 0; b < c->B; b++)
        for (int h = 0; h < c->H; h++) {
            size_t so = ((size_t)b * c->H + h) * N * N;
            for (int q = 0; q < N * N; q++) S[q] = c->s0 ? c->s0[so + q] : 0;
            for (int t = 0; t < c->T; t++) {
                size_t o = (((size_t)b * c->T + t) * c->H + h) * N;
                for (int i = 0; i < N; i++)
                    for (int j = 0; j < N; j++) S[i * N + j] = S[i * N + j] * c->w[o + i] + c->k[o + i] * c->v[o + j];
                for (int j = 0; j < N; j++) {
                    double s = 0;
                    for (int i = 0; i < N; i++) s += c->r[o + i] * S[i * N + j];
                    y[o + j] = c->scale * s;
                }
            }
            if (s_out) memcpy(s_out + so, S, (size_t)N * N * sizeof(double));
        }
    free(S);
}
static double wkv_loss(void *p) {
    wkv_case *c = (wkv_case *)p;
    size_t n = (size_t)c->B * c->T * c->H * c->N;
    double *y = dnew(n);
    wkv_ref(c, y, NULL);
    double L = dot(y, c->seed, n);
    free(y);
    return L;
}
/* One head size N of op_wkv6_forward_backward. */
static void wkv6_check(int N) {
    wkv_case c = {2, 37, 2, N, NULL, NULL, NULL, NULL, NULL, NULL, 1 / sqrt((double)N)}; /* 37 = two whole chunks and 5 tokens */
    size_t n = (size_t)c.B * c.T * c.H * c.N, ns = (size_t)c.B * c.H * c.N * c.N;
    c.r = dnew(n), c.k = dnew(n), c.v = dnew(n), c.w = dnew(n), c.s0 = dnew(ns), c.seed = dnew(n);
    drandn(c.r, n, 1, 0), drandn(c.k, n, 1, 0), drandn(c.v, n, 1, 0), drandn(c.s0, ns, 0.5, 0), drandn(c.seed, n, 1, 0);
    for (size_t i = 0; i < n; i++) c.w[i] = exp(-exp(-2.5 + 2 * test_randn())); /* from ~0 to ~1 */
    float *r = fcopy(c.r, n), *k = fcopy(c.k, n), *v = fcopy(c.v, n), *w = fcopy(c.w, n), *s0 = fcopy(c.s0, ns), *seed = fcopy(c.seed, n);
    int nch = (c.T + ARWKV_WKV6_CHUNK - 1) / ARWKV_WKV6_CHUNK;
    float *y = fnew(n), *sout = fnew(ns), *ckpt = fnew((size_t)nch * ns), *dr = fnew(n), *dk = fnew(n), *dv = fnew(n), *dw = fnew(n);
    double *yref = dnew(n), *sref = dnew(ns);
    wkv_ref(&c, yref, sref);
    CHECK_OK(be2->rwkv6->wkv6_forward(be2, y, sout, ckpt, r, k, v, w, s0, c.B, c.T, c.H, c.N, (float)c.scale));
    double ey = rel_err_fd(y, yref, n), es = rel_err_fd(sout, sref, ns);
    CHECK(ey < 1e-5 && es < 1e-5, "N %d: forward y %g state %g", N, ey, es);
    CHECK(memcmp(ckpt, s0, (size_t)c.N * c.N * sizeof(float)) == 0, "the first checkpoint is the initial state");
    CHECK_OK(be2->rwkv6->wkv6_backward(be2, dr, dk, dv, dw, seed, r, k, v, w, ckpt, c.B, c.T, c.H, c.N, (float)c.scale));
    size_t step = N <= 8 ? 1 : (n / 60) | 1; /* every element at N = 8; about 60 probes (odd stride) at the larger sizes */
    double e1 = fd_check(wkv_loss, &c, c.r, n, dr, step), e2 = fd_check(wkv_loss, &c, c.k, n, dk, step);
    double e3 = fd_check(wkv_loss, &c, c.v, n, dv, step), e4 = fd_check(wkv_loss, &c, c.w, n, dw, step);
    CHECK(e1 < 1e-4 && e2 < 1e-4 && e3 < 1e-4 && e4 < 1e-4, "N %d: dr %g dk %g dv %g dw %g", N, e1, e2, e3, e4);
    /* the state in place (s_out == s0) and the zero state */
    float *st = fcopy(c.s0, ns), *y2 = fnew(n);
    CHECK_OK(be1->rwkv6->wkv6_forward(be1, y2, st, NULL, r, k, v, w, st, c.B, c.T, c.H, c.N, (float)c.scale));
    CHECK(memcmp(st, sout, ns * sizeof(float)) == 0 && memcmp(y, y2, n * sizeof(float)) == 0, "in-place state, 1 thread = 2 threads");
    CHECK_OK(be1->rwkv6->wkv6_forward(be1, y2, NULL, NULL, r, k, v, w, NULL, c.B, c.T, c.H, c.N, (float)c.scale));
    memset(c.s0, 0, ns * sizeof(double));
    wkv_ref(&c, yref, NULL);
    CHECK(rel_err_fd(y2, yref, n) < 1e-5, "zero initial state");
    free(c.r), free(c.k), free(c.v), free(c.w), free(c.s0), free(c.seed), free(r), free(k), free(v), free(w), free(s0), free(seed);
    free(y), free(sout), free(ckpt), free(dr), free(dk), free(dv), free(dw), free(yref), free(sref), free(st), free(y2);
}
/* N = 8, and 20 and 64: whole and partial vectors of 16 in an AVX-512 build */
TEST(op_wkv6_forward_backward) {
    const int sizes[3] = {8, 20, 64};
    for (int i = 0; i < 3; i++) wkv6_check(sizes[i]);
}

/* ---- the block: a random layer, a float64 reference, finite differences ------------------------- */

enum { P_MAA_X, P_MAA_R, P_MAA_K, P_MAA_V, P_MAA_W, P_MAA_G, P_W1, P_W2, P_TD, P_D1, P_D2,
       P_Q, P_QB, P_K, P_KB, P_V, P_VB, P_O, P_GATE, P_QN, P_KN, P_COUNT };
static const char *pnames[P_COUNT] = {"time_maa_x", "time_maa_r", "time_maa_k", "time_maa_v", "time_maa_w", "time_maa_g",
                                      "time_maa_w1", "time_maa_w2", "time_decay", "time_decay_w1", "time_decay_w2",
                                      "q_proj.weight", "q_proj.bias", "k_proj.weight", "k_proj.bias", "v_proj.weight",
                                      "v_proj.bias", "o_proj.weight", "gate.weight", "q_norm.weight", "k_norm.weight"};

typedef struct {
    arwkv_tmix6_dims d;
    double *p[P_COUNT];
    size_t n[P_COUNT];
    arwkv_param params[P_COUNT];
    arwkv_layer layer;
} rand_layer;

static void layer_sync(rand_layer *L) { /* float copies of the float64 master values */
    for (int i = 0; i < P_COUNT; i++) dtof((float *)L->params[i].data, L->p[i], L->n[i]);
}

/* A layer whose every part matters: mixes away from 0 and 1, decays spread over (0, 1), LoRAs and
   biases clearly non-zero. */
static void layer_make_qk(rand_layer *L, arwkv_tmix6_dims d, int qk_norm);
static void layer_make(rand_layer *L, arwkv_tmix6_dims d) { layer_make_qk(L, d, 0); }
/* qk_norm: the layer of a Qwen3 teacher's student also has q_norm and k_norm (eps 1e-6). */
static void layer_make_qk(rand_layer *L, arwkv_tmix6_dims d, int qk_norm) {
    memset(L, 0, sizeof *L);
    L->d = d;
    size_t C = d.C, KV = (size_t)d.n_kv_heads * d.head_size, Dm = d.rank_mix, Dd = d.rank_decay;
    size_t N = d.head_size;
    size_t sizes[P_COUNT] = {C, C, C, C, C, C, C * 5 * Dm, 5 * Dm * C, C, C * Dd, Dd * C, C * C, C, KV * C, KV, KV * C, KV, C * C, C * C, N, N};
    int64_t shapes[P_COUNT][3] = {{1, 1, (int64_t)C}, {1, 1, (int64_t)C}, {1, 1, (int64_t)C}, {1, 1, (int64_t)C}, {1, 1, (int64_t)C},
                                  {1, 1, (int64_t)C}, {(int64_t)C, (int64_t)(5 * Dm)}, {5, (int64_t)Dm, (int64_t)C}, {1, 1, (int64_t)C},
                                  {(int64_t)C, (int64_t)Dd}, {(int64_t)Dd, (int64_t)C}, {(int64_t)C, (int64_t)C}, {(int64_t)C},
                                  {(int64_t)KV, (int64_t)C}, {(int64_t)KV}, {(int64_t)KV, (int64_t)C}, {(int64_t)KV},
                                  {(int64_t)C, (int64_t)C}, {(int64_t)C, (int64_t)C}, {(int64_t)N}, {(int64_t)N}};
    int ndims[P_COUNT] = {3, 3, 3, 3, 3, 3, 2, 3, 3, 2, 2, 2, 1, 2, 1, 2, 1, 2, 2, 1, 1};
    double scale[P_COUNT] = {0.3, 0.3, 0.3, 0.3, 0.3, 0.3, 0.5, 0.5, 0.6, 0.5, 0.7,
                             1 / sqrt((double)C), 0.3, 1 / sqrt((double)C), 0.3, 1 / sqrt((double)C), 0.3, 1 / sqrt((double)C), 0.5, 0.3, 0.3};
    double shift[P_COUNT] = {0.5, 0.5, 0.5, 0.5, 0.5, 0.5, 0, 0, -1.5, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 1};
    for (int i = 0; i < P_COUNT; i++) {
        L->n[i] = sizes[i];
        L->p[i] = dnew(sizes[i]);
        drandn(L->p[i], sizes[i], scale[i], shift[i]);
        arwkv_param *p = &L->params[i];
        snprintf(p->name, sizeof p->name, "model.layers.0.self_attn.%s", pnames[i]);
        p->ndim = ndims[i];
        p->numel = (int64_t)sizes[i];
        for (int k = 0; k < ndims[i]; k++) p->shape[k] = shapes[i][k];
        p->dtype = ARWKV_F32;
        p->is_matrix = ndims[i] >= 2 && shapes[i][0] > 1;
        p->data = fnew(sizes[i]);
        p->grad = fnew(sizes[i]);
        p->trainable = 1;
    }
    layer_sync(L);
    arwkv_layer *y = &L->layer;
    arwkv_param *P = L->params;
    y->maa_x = &P[P_MAA_X], y->maa_r = &P[P_MAA_R], y->maa_k = &P[P_MAA_K], y->maa_v = &P[P_MAA_V], y->maa_w = &P[P_MAA_W];
    y->maa_g = &P[P_MAA_G], y->maa_w1 = &P[P_W1], y->maa_w2 = &P[P_W2], y->time_decay = &P[P_TD], y->decay_w1 = &P[P_D1];
    y->decay_w2 = &P[P_D2], y->q_w = &P[P_Q], y->q_b = &P[P_QB], y->k_w = &P[P_K], y->k_b = &P[P_KB], y->v_w = &P[P_V];
    y->v_b = &P[P_VB], y->o_w = &P[P_O], y->gate = &P[P_GATE];
    if (qk_norm) y->q_norm = &P[P_QN], y->k_norm = &P[P_KN], y->qk_norm_eps = 1e-6f;
}
static void layer_free(rand_layer *L) {
    for (int i = 0; i < P_COUNT; i++) free(L->p[i]), free(L->params[i].data), free(L->params[i].grad);
}
static void layer_zero_grads(rand_layer *L) {
    for (int i = 0; i < P_COUNT; i++) memset(L->params[i].grad, 0, L->n[i] * sizeof(float));
}

/* The block in float64, written from the Hugging Face side (recursal's RWKV6Qwen2 attention): LoRA
   outputs in the order r, k, v, w, g; k/v repeated per kv group; w = exp(-exp(.)); k (1 - w); the
   read-out after the update, over sqrt(N); sigmoid gate. shift0, s0 may be NULL (zeros). */
static void ref_block(const rand_layer *L, int B, int T, const double *x, const double *shift0, const double *s0, double *out,
                      double *shift_out, double *s_out) {
    const arwkv_tmix6_dims *d = &L->d;
    int C = d->C, H = d->n_heads, N = d->head_size, KVH = d->n_kv_heads, Dm = d->rank_mix, Dd = d->rank_decay, G = H / KVH, KV = KVH * N;
    double *const *P = L->p;
    double *S = dnew((size_t)H * N * N), *prev = dnew(C), *xx = dnew(C), *xxx = dnew(C), *h1 = dnew(5 * Dm), *xc = dnew(5 * C);
    double *r = dnew(C), *k = dnew(KV), *v = dnew(KV), *gp = dnew(C), *hd = dnew(Dd), *w = dnew(C), *y = dnew(C);
    for (int b = 0; b < B; b++) {
        for (int q = 0; q < H * N * N; q++) S[q] = s0 ? s0[(size_t)b * H * N * N + q] : 0;
        for (int c = 0; c < C; c++) prev[c] = shift0 ? shift0[(size_t)b * C + c] : 0;
        for (int t = 0; t < T; t++) {
            const double *xt = x + ((size_t)b * T + t) * C;
            for (int c = 0; c < C; c++) xx[c] = prev[c] - xt[c], xxx[c] = xt[c] + xx[c] * P[P_MAA_X][c];
            for (int j = 0; j < 5 * Dm; j++) {
                double s = 0;
                for (int c = 0; c < C; c++) s += xxx[c] * P[P_W1][(size_t)c * 5 * Dm + j];
                h1[j] = tanh(s);
            }
            const double *maa[5] = {P[P_MAA_R], P[P_MAA_K], P[P_MAA_V], P[P_MAA_W], P[P_MAA_G]};
            for (int br = 0; br < 5; br++)
                for (int n = 0; n < C; n++) {
                    double m = 0;
                    for (int q = 0; q < Dm; q++) m += h1[br * Dm + q] * P[P_W2][((size_t)br * Dm + q) * C + n];
                    xc[br * C + n] = xt[n] + xx[n] * (maa[br][n] + m);
                }
            const double *xr = xc, *xk = xc + C, *xv = xc + 2 * C, *xw = xc + 3 * C, *xg = xc + 4 * C;
            for (int o = 0; o < C; o++) r[o] = P[P_QB][o] + dot(P[P_Q] + (size_t)o * C, xr, C), gp[o] = dot(P[P_GATE] + (size_t)o * C, xg, C);
            for (int o = 0; o < KV; o++) k[o] = P[P_KB][o] + dot(P[P_K] + (size_t)o * C, xk, C), v[o] = P[P_VB][o] + dot(P[P_V] + (size_t)o * C, xv, C);
            if (L->layer.q_norm) /* Qwen3's: each head of r and of k RMS-normalized, times q_norm / k_norm */
                for (int h = 0; h < H + KVH; h++) {
                    double *u = h < H ? r + (size_t)h * N : k + (size_t)(h - H) * N, ss = 0;
                    const double *wn = h < H ? P[P_QN] : P[P_KN];
                    for (int i = 0; i < N; i++) ss += u[i] * u[i];
                    double inv = 1 / sqrt(ss / N + (double)L->layer.qk_norm_eps);
                    for (int i = 0; i < N; i++) u[i] *= inv * wn[i];
                }
            for (int j = 0; j < Dd; j++) {
                double s = 0;
                for (int c = 0; c < C; c++) s += xw[c] * P[P_D1][(size_t)c * Dd + j];
                hd[j] = tanh(s);
            }
            for (int n = 0; n < C; n++) {
                double z = P[P_TD][n];
                for (int j = 0; j < Dd; j++) z += hd[j] * P[P_D2][(size_t)j * C + n];
                w[n] = exp(-exp(z));
            }
            for (int h = 0; h < H; h++) {
                int g = h / G;
                double *Sh = S + (size_t)h * N * N;
                for (int i = 0; i < N; i++)
                    for (int j = 0; j < N; j++)
                        Sh[i * N + j] = Sh[i * N + j] * w[h * N + i] + k[g * N + i] * (1 - w[h * N + i]) * v[g * N + j];
                for (int j = 0; j < N; j++) {
                    double s = 0;
                    for (int i = 0; i < N; i++) s += r[h * N + i] * Sh[i * N + j];
                    y[h * N + j] = s / sqrt((double)N) * sigm(gp[h * N + j]);
                }
            }
            double *ot = out + ((size_t)b * T + t) * C;
            for (int o = 0; o < C; o++) ot[o] = dot(P[P_O] + (size_t)o * C, y, C);
            memcpy(prev, xt, (size_t)C * sizeof(double));
        }
        if (shift_out) memcpy(shift_out + (size_t)b * C, prev, (size_t)C * sizeof(double));
        if (s_out) memcpy(s_out + (size_t)b * H * N * N, S, (size_t)H * N * N * sizeof(double));
    }
    free(S), free(prev), free(xx), free(xxx), free(h1), free(xc), free(r), free(k), free(v), free(gp), free(hd), free(w), free(y);
}

typedef struct {
    rand_layer *L;
    int B, T;
    double *x, *shift0, *s0, *seed;
} block_case;
static double block_loss(void *p) {
    block_case *c = (block_case *)p;
    size_t n = (size_t)c->B * c->T * c->L->d.C;
    double *out = dnew(n);
    ref_block(c->L, c->B, c->T, c->x, c->shift0, c->s0, out, NULL, NULL);
    double L = dot(out, c->seed, n);
    free(out);
    return L;
}

static arwkv_tmix6_dims small_dims(void) {
    arwkv_tmix6_dims d = {16, 4, 4, 2, 3, 5}; /* C, 4 heads of 4, 2 kv heads, LoRA ranks 3 and 5 */
    return d;
}

/* The linear layer (y = x W^T + b) and the LoRA factor (y = x A, on a slice of a 3-D stack, with
   row strides) of every model, forward and backward, against float64: the forward directly, every
   gradient by central differences of L = sum(dy * y). */
static double lin_loss(const double *x, const double *W, const double *b, const double *dy, int M, int in, int out) {
    double L = 0;
    for (int m = 0; m < M; m++)
        for (int o = 0; o < out; o++) {
            double y = b ? b[o] : 0;
            for (int i = 0; i < in; i++) y += x[m * in + i] * W[o * in + i];
            L += dy[m * out + o] * y;
        }
    return L;
}
static void fd_all(double *v, size_t n, double *g, const double *x, const double *W, const double *b, const double *dy, int M, int in,
                   int out) {
    for (size_t k = 0; k < n; k++) {
        double keep = v[k], h = 1e-3;
        v[k] = keep + h;
        double lp = lin_loss(x, W, b, dy, M, in, out);
        v[k] = keep - h;
        double lm = lin_loss(x, W, b, dy, M, in, out);
        v[k] = keep;
        g[k] = (lp - lm) / (2 * h);
    }
}
static void param_f32(arwkv_param *p, float *data, int ndim, int64_t d0, int64_t d1, int64_t d2) {
    memset(p, 0, sizeof *p);
    p->ndim = ndim, p->shape[0] = d0, p->shape[1] = d1, p->shape[2] = d2;
    p->numel = d0 * (ndim > 1 ? d1 : 1) * (ndim > 2 ? d2 : 1);
    p->dtype = ARWKV_F32, p->data = data, p->grad = fnew((size_t)p->numel), p->trainable = 1;
}

TEST(linear_and_lora_match_float64) {
    enum { M = 5, IN = 7, OUT = 6 };
    double x[M * IN], W[OUT * IN], b[OUT], dy[M * OUT], gx[M * IN], gW[OUT * IN], gb[OUT], y[M * OUT];
    drandn(x, M * IN, 1, 0), drandn(W, OUT * IN, 0.5, 0), drandn(b, OUT, 0.5, 0), drandn(dy, M * OUT, 1, 0);
    /* the reference works on the float-rounded inputs the library sees */
    float *xf = fcopy(x, M * IN), *Wf = fcopy(W, OUT * IN), *bf = fcopy(b, OUT), *dyf = fcopy(dy, M * OUT);
    for (int i = 0; i < M * IN; i++) x[i] = xf[i];
    for (int i = 0; i < OUT * IN; i++) W[i] = Wf[i];
    for (int i = 0; i < OUT; i++) b[i] = bf[i];
    for (int i = 0; i < M * OUT; i++) dy[i] = dyf[i];
    for (int m = 0; m < M; m++)
        for (int o = 0; o < OUT; o++) {
            y[m * OUT + o] = b[o];
            for (int i = 0; i < IN; i++) y[m * OUT + o] += x[m * IN + i] * W[o * IN + i];
        }
    fd_all(x, M * IN, gx, x, W, b, dy, M, IN, OUT), fd_all(W, OUT * IN, gW, x, W, b, dy, M, IN, OUT);
    fd_all(b, OUT, gb, x, W, b, dy, M, IN, OUT);
    arwkv_param Wp, bp;
    param_f32(&Wp, Wf, 2, OUT, IN, 0), param_f32(&bp, bf, 1, OUT, 0, 0);
    float *yf = fnew(M * OUT), *dxf = fnew(M * IN);
    CHECK_OK(arwkv__linear_forward(be2, yf, 0, xf, &Wp, &bp, M, 0));
    CHECK_OK(arwkv__linear_backward(be2, dxf, dyf, xf, &Wp, &bp, M, 0));
    double ey = rel_err_fd(yf, y, M * OUT), ex = rel_err_fd(dxf, gx, M * IN), eW = rel_err_fd(Wp.grad, gW, OUT * IN);
    double eb = rel_err_fd(bp.grad, gb, OUT);
    CHECK(ey < 1e-6 && ex < 1e-6 && eW < 1e-6 && eb < 1e-6, "linear: y %g dx %g dW %g db %g", ey, ex, eW, eb);

    /* LoRA: A is the second [IN, OUT] slice of a [2, IN, OUT] stack, i.e. W^T above; x and y strided */
    float *stack = fnew(2 * IN * OUT), *xs = fnew(M * (IN + 3)), *ys = fnew(M * (OUT + 2)), *dxs = fnew(M * (IN + 3));
    for (int i = 0; i < IN; i++)
        for (int o = 0; o < OUT; o++) stack[IN * OUT + i * OUT + o] = Wf[o * IN + i], stack[i * OUT + o] = 99.0f;
    for (int m = 0; m < M; m++)
        for (int i = 0; i < IN; i++) xs[m * (IN + 3) + i] = xf[m * IN + i];
    arwkv_param Ap;
    param_f32(&Ap, stack, 3, 2, IN, OUT);
    double yl[M * OUT];
    for (int k = 0; k < M * OUT; k++) yl[k] = y[k] - b[k % OUT];
    CHECK_OK(arwkv__lora_forward(be2, ys, OUT + 2, xs, IN + 3, &Ap, IN, IN, M));
    CHECK_OK(arwkv__lora_backward(be2, dxs, IN + 3, dyf, xs, IN + 3, &Ap, IN, IN, M, 0));
    double e_y = 0, e_x = 0, e_A = 0, e_other = 0;
    for (int m = 0; m < M; m++)
        for (int o = 0; o < OUT; o++) e_y = fmax(e_y, fabs(ys[m * (OUT + 2) + o] - yl[m * OUT + o]));
    for (int m = 0; m < M; m++)
        for (int i = 0; i < IN; i++) e_x = fmax(e_x, fabs(dxs[m * (IN + 3) + i] - gx[m * IN + i]));
    for (int i = 0; i < IN; i++)
        for (int o = 0; o < OUT; o++) e_A = fmax(e_A, fabs(Ap.grad[IN * OUT + i * OUT + o] - gW[o * IN + i])), e_other += fabs(Ap.grad[i * OUT + o]);
    CHECK(e_y < 1e-5 && e_x < 1e-5 && e_A < 1e-5 && e_other == 0, "LoRA slice: y %g dx %g dA %g, other slice's gradient %g", e_y, e_x, e_A,
          e_other);
    free(xf), free(Wf), free(bf), free(dyf), free(yf), free(dxf), free(Wp.grad), free(bp.grad);
    free(stack), free(xs), free(ys), free(dxs), free(Ap.grad);
}

TEST(block_forward_matches_reference) {
  for (int qk = 0; qk <= 1; qk++) { /* without and with a Qwen3 teacher's q/k norms */
    rand_layer L;
    layer_make_qk(&L, small_dims(), qk);
    int B = 2, T = 21, C = L.d.C, H = L.d.n_heads, N = L.d.head_size;
    size_t n = (size_t)B * T * C, ns = (size_t)B * H * N * N;
    double *x = dnew(n), *sh = dnew((size_t)B * C), *s0 = dnew(ns), *out = dnew(n), *sh_out = dnew((size_t)B * C), *s_out = dnew(ns);
    drandn(x, n, 1, 0), drandn(sh, (size_t)B * C, 1, 0), drandn(s0, ns, 0.3, 0);
    ref_block(&L, B, T, x, sh, s0, out, sh_out, s_out);
    float *xf = fcopy(x, n), *shf = fcopy(sh, (size_t)B * C), *sf = fcopy(s0, ns), *of = fnew(n);
    CHECK_OK(arwkv__tmix6_forward(be2, &L.layer, &L.d, B, T, xf, shf, sf, of, NULL));
    double eo = rel_err_fd(of, out, n), esh = rel_err_fd(shf, sh_out, (size_t)B * C), es = rel_err_fd(sf, s_out, ns);
    CHECK(eo < 1e-5 && esh == 0 && es < 1e-5, "qk_norm %d: out %g shift state %g wkv state %g", qk, eo, esh, es);
    free(x), free(sh), free(s0), free(out), free(sh_out), free(s_out), free(xf), free(shf), free(sf), free(of);
    layer_free(&L);
  }
}

/* The activations one layer keeps hold exactly the arrays the forward writes: per token 20 arrays
   of C (xx, xxx, five m, five xc, r, g, z, w, kk, vv, y, yg), two of the kv width (k, v) and the two
   LoRA hiddens, plus the recurrence's checkpoints. The table reports that size, and the backend's
   memory grows by it. */
TEST(block_activations_size_is_exact) {
    rand_layer L;
    layer_make(&L, small_dims());
    int B = 2, T = 21, C = L.d.C, H = L.d.n_heads, N = L.d.head_size, KV = L.d.n_kv_heads * N;
    size_t rows = (size_t)B * T, chunks = (size_t)(T + ARWKV_WKV6_CHUNK - 1) / ARWKV_WKV6_CHUNK;
    size_t want = (rows * (20 * (size_t)C + 2 * (size_t)KV + 5 * (size_t)L.d.rank_mix + (size_t)L.d.rank_decay) +
                   (size_t)B * H * chunks * N * N) * sizeof(float);
    arwkv__tmix tm;
    memset(&tm, 0, sizeof tm);
    tm.family = arwkv__tmix_family_of(ARWKV_ARCH_QRWKV6);
    tm.r6 = L.d;
    CHECK(tm.family == &arwkv__tmix_rwkv6 && arwkv__tmix_family_of(ARWKV_ARCH_QWEN2) == NULL, "the QRWKV6 family, none for a teacher");
    CHECK(tm.family->acts_bytes(&tm, B, T) == want, "table says %zu bytes, the arrays need %zu", tm.family->acts_bytes(&tm, B, T), want);
    arwkv__tmix_acts *acts = NULL;
    CHECK_OK(tm.family->acts_create(be1, &tm, B, T, &acts));
    arwkv_memory_use before, after;
    arwkv_backend_memory(be1, &before);
    float *x = fnew(rows * C), *out = fnew(rows * C);
    CHECK_OK(tm.family->forward(be1, &tm, &L.layer, 1, B, T, x, NULL, NULL, NULL, out, acts, NULL));
    arwkv_backend_memory(be1, &after);
    CHECK(after.in_use - before.in_use == want, "forward kept %llu bytes, %zu expected", (unsigned long long)(after.in_use - before.in_use),
          want);
    tm.family->acts_free(be1, acts);
    free(x), free(out);
    layer_free(&L);
}

TEST(block_backward_matches_finite_differences) {
  for (int qk = 0; qk <= 1; qk++) { /* without and with a Qwen3 teacher's q/k norms */
    rand_layer L;
    layer_make_qk(&L, small_dims(), qk);
    block_case c = {&L, 2, 21, NULL, NULL, NULL, NULL}; /* 21 tokens: a whole chunk of 16 and a part */
    int C = L.d.C, H = L.d.n_heads, N = L.d.head_size;
    size_t n = (size_t)c.B * c.T * C, ns = (size_t)c.B * H * N * N;
    c.x = dnew(n), c.shift0 = dnew((size_t)c.B * C), c.s0 = dnew(ns), c.seed = dnew(n);
    drandn(c.x, n, 1, 0), drandn(c.shift0, (size_t)c.B * C, 1, 0), drandn(c.s0, ns, 0.3, 0), drandn(c.seed, n, 1, 0);
    float *xf = fcopy(c.x, n), *shf = fcopy(c.shift0, (size_t)c.B * C), *sf = fcopy(c.s0, ns), *of = fnew(n), *dout = fcopy(c.seed, n), *dx = fnew(n);
    arwkv__tmix6_acts *acts;
    CHECK_OK(arwkv__tmix6_acts_create(be2, &L.d, &acts));
    CHECK_OK(arwkv__tmix6_forward(be2, &L.layer, &L.d, c.B, c.T, xf, shf, sf, of, acts));
    layer_zero_grads(&L);
    /* frozen parameters get nothing: freeze the output projection */
    L.params[P_O].trainable = 0;
    L.params[P_O].grad[0] = 7;
    CHECK_OK(arwkv__tmix6_backward(be2, &L.layer, &L.d, c.B, c.T, xf, acts, dout, dx));
    CHECK(L.params[P_O].grad[0] == 7, "a frozen parameter's gradient is left alone");
    size_t step = quick ? 5 : 1;
    double worst = 0;
    int worst_p = -1;
    for (int i = 0; i < P_COUNT; i++) {
        if (i == P_O || (!qk && (i == P_QN || i == P_KN))) continue;
        double e = fd_check(block_loss, &c, L.p[i], L.n[i], L.params[i].grad, step);
        if (e > worst) worst = e, worst_p = i;
        CHECK(e < 2e-4, "qk_norm %d: d %s: %g", qk, pnames[i], e);
    }
    double ex = fd_check(block_loss, &c, c.x, n, dx, step);
    CHECK(ex < 2e-4, "dx %g", ex);
    printf("    %s: worst parameter gradient error %.2e (%s), dx %.2e\n", qk ? "with q/k norms" : "plain", worst,
           worst_p >= 0 ? pnames[worst_p] : "-", ex);
    /* gradients accumulate: a second backward doubles them */
    float g0 = L.params[P_W1].grad[3];
    CHECK_OK(arwkv__tmix6_backward(be2, &L.layer, &L.d, c.B, c.T, xf, acts, dout, NULL));
    CHECK(fabsf(L.params[P_W1].grad[3] - 2 * g0) <= 1e-6f * fabsf(g0), "accumulates");
    /* backward of another shape than the forward is refused */
    CHECK(arwkv__tmix6_backward(be2, &L.layer, &L.d, c.B, c.T - 1, xf, acts, dout, dx) == ARWKV_ERR_INVALID_ARGUMENT, "shape mismatch refused");
    arwkv__tmix6_acts_free(acts);
    free(c.x), free(c.shift0), free(c.s0), free(c.seed), free(xf), free(shf), free(sf), free(of), free(dout), free(dx);
    layer_free(&L);
  }
}

/* Recurrent mode (one token per call, states carried) and chunks with state give what one call over
   the whole sequence gives; with 1 or 2 threads, bit for bit. */
TEST(block_recurrent_chunked_threads) {
    rand_layer L;
    arwkv_tmix6_dims d = {32, 4, 8, 1, 4, 6};
    layer_make(&L, d);
    int B = 2, T = 40, C = d.C, H = d.n_heads, N = d.head_size;
    size_t n = (size_t)B * T * C, ns = (size_t)B * H * N * N;
    float *x = fnew(n), *whole = fnew(n), *part = fnew(n), *sh = fnew((size_t)B * C), *st = fnew(ns);
    float *sh_whole = fnew((size_t)B * C), *st_whole = fnew(ns);
    test_fill_randn(x, n, 1);
    CHECK_OK(arwkv__tmix6_forward(be2, &L.layer, &d, B, T, x, sh_whole, st_whole, whole, NULL));
    /* chunks of 5, 16, 19 tokens (more than 4 rows each: the same matrix-product path) */
    int cuts[4] = {0, 5, 21, 40};
    float *xs = fnew(n), *os = fnew(n);
    for (int k = 0; k < 3; k++) {
        int t0 = cuts[k], len = cuts[k + 1] - cuts[k];
        for (int b = 0; b < B; b++) memcpy(xs + (size_t)b * len * C, x + ((size_t)b * T + t0) * C, (size_t)len * C * sizeof(float));
        CHECK_OK(arwkv__tmix6_forward(be1, &L.layer, &d, B, len, xs, sh, st, os, NULL));
        for (int b = 0; b < B; b++) memcpy(part + ((size_t)b * T + t0) * C, os + (size_t)b * len * C, (size_t)len * C * sizeof(float));
    }
    CHECK(memcmp(part, whole, n * sizeof(float)) == 0, "chunked with state = whole, bit for bit (rel err %g)", test_rel_err(part, whole, n));
    CHECK(memcmp(st, st_whole, ns * sizeof(float)) == 0 && memcmp(sh, sh_whole, (size_t)B * C * sizeof(float)) == 0, "same final states");
    /* recurrent: token by token */
    memset(sh, 0, (size_t)B * C * sizeof(float));
    memset(st, 0, ns * sizeof(float));
    for (int t = 0; t < T; t++) {
        for (int b = 0; b < B; b++) memcpy(xs + (size_t)b * C, x + ((size_t)b * T + t) * C, (size_t)C * sizeof(float));
        CHECK_OK(arwkv__tmix6_forward(be2, &L.layer, &d, B, 1, xs, sh, st, os, NULL));
        for (int b = 0; b < B; b++) memcpy(part + ((size_t)b * T + t) * C, os + (size_t)b * C, (size_t)C * sizeof(float));
    }
    double e = test_rel_err(part, whole, n), es = test_rel_err(st, st_whole, ns);
    CHECK(e < 1e-5 && es < 1e-5, "recurrent = sequence: out %g state %g", e, es);
    /* 1 thread = 2 threads, forward and backward */
    float *o1 = fnew(n), *o2 = fnew(n), *dx1 = fnew(n), *dx2 = fnew(n), *dout = fnew(n);
    test_fill_randn(dout, n, 1);
    arwkv__tmix6_acts *a1, *a2;
    CHECK_OK(arwkv__tmix6_acts_create(be1, &d, &a1));
    CHECK_OK(arwkv__tmix6_acts_create(be2, &d, &a2));
    CHECK_OK(arwkv__tmix6_forward(be1, &L.layer, &d, B, T, x, NULL, NULL, o1, a1));
    CHECK_OK(arwkv__tmix6_forward(be2, &L.layer, &d, B, T, x, NULL, NULL, o2, a2));
    CHECK(memcmp(o1, o2, n * sizeof(float)) == 0 && memcmp(o1, whole, n * sizeof(float)) == 0, "forward: threads and acts change nothing");
    layer_zero_grads(&L);
    CHECK_OK(arwkv__tmix6_backward(be1, &L.layer, &d, B, T, x, a1, dout, dx1));
    float *g1[P_COUNT];
    for (int i = 0; i < P_COUNT; i++) g1[i] = fnew(L.n[i]), memcpy(g1[i], L.params[i].grad, L.n[i] * sizeof(float));
    layer_zero_grads(&L);
    CHECK_OK(arwkv__tmix6_backward(be2, &L.layer, &d, B, T, x, a2, dout, dx2));
    int same = memcmp(dx1, dx2, n * sizeof(float)) == 0;
    for (int i = 0; i < P_COUNT; i++) same &= memcmp(g1[i], L.params[i].grad, L.n[i] * sizeof(float)) == 0, free(g1[i]);
    CHECK(same, "backward: 1 thread = 2 threads, bit for bit");
    arwkv__tmix6_acts_free(a1), arwkv__tmix6_acts_free(a2);
    free(x), free(whole), free(part), free(sh), free(st), free(sh_whole), free(st_whole), free(xs), free(os);
    free(o1), free(o2), free(dx1), free(dx2), free(dout);
    layer_free(&L);
}

/* ---- llama.cpp's graph, transcribed independently --------------------------------------------------
   The HF tensors go through the converter's transformations (convert_hf_to_gguf.py Rwkv6Model and
   RWKV6Qwen2Model.modify_tensors): time_maa_w1 transposed to [5 Dm, C], time_maa_w2 permuted to
   [5, C, Dm], both with their five slices reordered from r,k,v,w,g to w,k,v,r,g; the five lerps
   stacked as w,k,v,r,g (time_mix_lerp_fused); time_decay_w1/w2 transposed. Then
   build_rwkv6_time_mix (rwkv6-base.cpp) with is_qrwkv, step by step in ggml's terms, and the
   GATED_LINEAR_ATTN op as ggml's CPU loop computes it (state[h][i][j], i = key). */
static void llama_cpp_graph(const rand_layer *L, int T, const double *cur, double *out, double *state) {
    const arwkv_tmix6_dims *d = &L->d;
    int C = d->C, H = d->n_heads, N = d->head_size, KVH = d->n_kv_heads, Dm = d->rank_mix, Dd = d->rank_decay;
    int order[5] = {3, 1, 2, 0, 4}; /* new slice s takes HF slice order[s] */
    /* converted tensors (ggml ne0 is the last torch dimension) */
    double *w1 = dnew((size_t)5 * Dm * C), *w2 = dnew((size_t)5 * C * Dm), *lerp = dnew((size_t)5 * C), *d1 = dnew((size_t)Dd * C), *d2 = dnew((size_t)C * Dd);
    for (int s = 0; s < 5; s++)
        for (int q = 0; q < Dm; q++)
            for (int c = 0; c < C; c++) {
                w1[((size_t)s * Dm + q) * C + c] = L->p[P_W1][(size_t)c * 5 * Dm + order[s] * Dm + q]; /* transpose, then reorder */
                w2[((size_t)s * C + c) * Dm + q] = L->p[P_W2][((size_t)order[s] * Dm + q) * C + c]; /* permute(0,2,1), reorder */
            }
    const double *lerp_src[5] = {L->p[P_MAA_W], L->p[P_MAA_K], L->p[P_MAA_V], L->p[P_MAA_R], L->p[P_MAA_G]};
    for (int s = 0; s < 5; s++) memcpy(lerp + (size_t)s * C, lerp_src[s], (size_t)C * sizeof(double));
    for (int j = 0; j < Dd; j++)
        for (int c = 0; c < C; c++) d1[(size_t)j * C + c] = L->p[P_D1][(size_t)c * Dd + j], d2[(size_t)c * Dd + j] = L->p[P_D2][(size_t)j * C + c];
    /* x_prev = concat(token_shift = 0, cur[0 .. T-2]);  sx = x_prev - cur */
    double *sx = dnew((size_t)T * C), *xxx = dnew((size_t)T * C), *h = dnew((size_t)T * 5 * Dm), *mix = dnew((size_t)5 * T * C);
    for (int t = 0; t < T; t++)
        for (int c = 0; c < C; c++) sx[t * C + c] = (t ? cur[(t - 1) * C + c] : 0) - cur[t * C + c];
    /* xxx = tanh(mul_mat(w1, sx * lerp_x + cur)), viewed {Dm, 1, 5, T} and permuted to {Dm, 1, T, 5} */
    for (int t = 0; t < T; t++)
        for (int c = 0; c < C; c++) xxx[t * C + c] = sx[t * C + c] * L->p[P_MAA_X][c] + cur[t * C + c];
    for (int t = 0; t < T; t++)
        for (int j = 0; j < 5 * Dm; j++) h[(size_t)t * 5 * Dm + j] = tanh(dot(w1 + (size_t)j * C, xxx + (size_t)t * C, C));
    /* mul_mat(w2 as {Dm, C, 1, 5}, xxx {Dm, 1, T, 5}) -> {C, 1, T, 5}; then (xxx + lerp_fused) * sx + cur */
    for (int s = 0; s < 5; s++)
        for (int t = 0; t < T; t++)
            for (int c = 0; c < C; c++) {
                double m = dot(w2 + ((size_t)s * C + c) * Dm, h + (size_t)t * 5 * Dm + s * Dm, Dm);
                mix[((size_t)s * T + t) * C + c] = (m + lerp[(size_t)s * C + c]) * sx[t * C + c] + cur[t * C + c];
            }
    const double *xw = mix, *xk = mix + (size_t)T * C, *xv = mix + 2 * (size_t)T * C, *xr = mix + 3 * (size_t)T * C, *xg = mix + 4 * (size_t)T * C;
    int KV = KVH * N;
    double *r = dnew((size_t)T * C), *k = dnew((size_t)T * KV), *v = dnew((size_t)T * KV), *g = dnew((size_t)T * C);
    double *kr = dnew((size_t)T * C), *vr = dnew((size_t)T * C), *w = dnew((size_t)T * C), *hd = dnew(Dd), *o = dnew((size_t)T * C);
    for (int t = 0; t < T; t++) {
        for (int q = 0; q < C; q++) {
            r[t * C + q] = dot(L->p[P_Q] + (size_t)q * C, xr + (size_t)t * C, C) + L->p[P_QB][q];
            g[t * C + q] = sigm(dot(L->p[P_GATE] + (size_t)q * C, xg + (size_t)t * C, C));
        }
        for (int q = 0; q < KV; q++) {
            k[t * KV + q] = dot(L->p[P_K] + (size_t)q * C, xk + (size_t)t * C, C) + L->p[P_KB][q];
            v[t * KV + q] = dot(L->p[P_V] + (size_t)q * C, xv + (size_t)t * C, C) + L->p[P_VB][q];
        }
        /* ggml_repeat of {N, 1, KVH, T} into {N, H/KVH, KVH, T}, reshaped {N, H, T} */
        for (int kv = 0; kv < KVH; kv++)
            for (int rep = 0; rep < H / KVH; rep++)
                for (int i = 0; i < N; i++) {
                    int head = kv * (H / KVH) + rep;
                    kr[(size_t)t * C + head * N + i] = k[(size_t)t * KV + kv * N + i];
                    vr[(size_t)t * C + head * N + i] = v[(size_t)t * KV + kv * N + i];
                }
        /* w = exp(-exp(mul_mat(d2, tanh(mul_mat(d1, xw))) + time_decay));  k = k - k w */
        for (int j = 0; j < Dd; j++) hd[j] = tanh(dot(d1 + (size_t)j * C, xw + (size_t)t * C, C));
        for (int c = 0; c < C; c++) {
            w[t * C + c] = exp(-exp(dot(d2 + (size_t)c * Dd, hd, Dd) + L->p[P_TD][c]));
            kr[t * C + c] = kr[t * C + c] - kr[t * C + c] * w[t * C + c];
        }
    }
    /* ggml_gated_linear_attn(k, v, r, w, state, head_size^-0.5): dst[t,h,j] += (prev[i][j] g[i] + k[i] v[j]) q[i] scale */
    memset(state, 0, (size_t)H * N * N * sizeof(double));
    double scale = pow((double)N, -0.5);
    memset(o, 0, (size_t)T * C * sizeof(double));
    for (int t = 0; t < T; t++)
        for (int hh = 0; hh < H; hh++)
            for (int i = 0; i < N; i++) {
                size_t ti = (size_t)t * C + hh * N + i;
                double kval = kr[ti], qval = r[ti] * scale, gval = w[ti];
                for (int j = 0; j < N; j++) {
                    double *st = &state[((size_t)hh * N + i) * N + j];
                    double temp = *st * gval + kval * vr[(size_t)t * C + hh * N + j];
                    o[(size_t)t * C + hh * N + j] += temp * qval;
                    *st = temp;
                }
            }
    /* cur * g, then time_mix_output */
    for (int t = 0; t < T; t++) {
        for (int c = 0; c < C; c++) o[t * C + c] *= g[t * C + c];
        for (int q = 0; q < C; q++) out[t * C + q] = dot(L->p[P_O] + (size_t)q * C, o + (size_t)t * C, C);
    }
    free(w1), free(w2), free(lerp), free(d1), free(d2), free(sx), free(xxx), free(h), free(mix), free(r), free(k), free(v), free(g);
    free(kr), free(vr), free(w), free(hd), free(o);
}

TEST(block_agrees_with_llama_cpp_graph) {
    rand_layer L;
    arwkv_tmix6_dims d = {24, 6, 4, 2, 3, 4}; /* 6 heads on 2 kv heads: groups of 3 */
    layer_make(&L, d);
    int T = 19, C = d.C;
    double *x = dnew((size_t)T * C), *ref = dnew((size_t)T * C), *state = dnew((size_t)d.n_heads * d.head_size * d.head_size);
    drandn(x, (size_t)T * C, 1, 0);
    llama_cpp_graph(&L, T, x, ref, state);
    float *xf = fcopy(x, (size_t)T * C), *of = fnew((size_t)T * C), *st = fnew((size_t)d.n_heads * d.head_size * d.head_size);
    CHECK_OK(arwkv__tmix6_forward(be2, &L.layer, &d, 1, T, xf, NULL, st, of, NULL));
    double e = rel_err_fd(of, ref, (size_t)T * C), es = rel_err_fd(st, state, (size_t)d.n_heads * d.head_size * d.head_size);
    CHECK(e < 1e-5 && es < 1e-5, "output %g, state %g against llama.cpp's graph", e, es);
    /* and the two float64 transcriptions agree with each other to rounding */
    double *hf = dnew((size_t)T * C);
    ref_block(&L, 1, T, x, NULL, NULL, hf, NULL, NULL);
    double worst = 0;
    for (size_t i = 0; i < (size_t)T * C; i++) worst = fmax(worst, fabs(hf[i] - ref[i]));
    CHECK(worst < 1e-12, "HF-side and llama.cpp-side transcriptions differ by %g", worst);
    free(x), free(ref), free(state), free(xf), free(of), free(st), free(hf);
    layer_free(&L);
}

TEST(block_refuses_bad_input) {
    rand_layer L;
    layer_make(&L, small_dims());
    float x[16 * 2], out[16 * 2];
    memset(x, 0, sizeof x);
    arwkv_tmix6_dims d = L.d;
    d.rank_mix = 4; /* the layer's LoRA has rank 3 */
    CHECK(arwkv__tmix6_forward(be1, &L.layer, &d, 1, 2, x, NULL, NULL, out, NULL) == ARWKV_ERR_SHAPE, "rank mismatch");
    arwkv_layer empty;
    memset(&empty, 0, sizeof empty);
    CHECK(arwkv__tmix6_forward(be1, &empty, &L.d, 1, 2, x, NULL, NULL, out, NULL) == ARWKV_ERR_INVALID_ARGUMENT, "not a QRWKV6 layer");
    CHECK(strstr(arwkv_last_error(), "RWKV6Qwen2") != NULL, "message: %s", arwkv_last_error());
    CHECK(arwkv__tmix6_forward(be1, &L.layer, &L.d, 1, 0, x, NULL, NULL, out, NULL) == ARWKV_ERR_INVALID_ARGUMENT, "T = 0");
    arwkv__tmix6_acts *a;
    CHECK_OK(arwkv__tmix6_acts_create(be1, &L.d, &a));
    CHECK(arwkv__tmix6_backward(be1, &L.layer, &L.d, 1, 2, x, a, x, NULL) == ARWKV_ERR_INVALID_ARGUMENT, "backward before forward");
    arwkv__tmix6_acts_free(a);
    layer_free(&L);
}

/* ---- a student from the bundled teacher: layout, init, save, load ---------------------------------- */

static arwkv_model *teacher;

/* The published RWKV6Qwen2ForCausalLM names and shapes (recursal's checkpoints; what llama.cpp's
   converter maps) at C = 128, 2 heads of 64, 1 kv head, LoRA ranks 32 and 64. */
static const struct {
    const char *suffix;
    int ndim;
    int64_t shape[3];
    int from_teacher;
} qrwkv6_table[] = {
    {"time_maa_x", 3, {1, 1, 128}, 0},     {"time_maa_w", 3, {1, 1, 128}, 0},    {"time_maa_k", 3, {1, 1, 128}, 0},
    {"time_maa_v", 3, {1, 1, 128}, 0},     {"time_maa_r", 3, {1, 1, 128}, 0},    {"time_maa_g", 3, {1, 1, 128}, 0},
    {"time_maa_w1", 2, {128, 160}, 0},     {"time_maa_w2", 3, {5, 32, 128}, 0},  {"time_decay", 3, {1, 1, 128}, 0},
    {"time_decay_w1", 2, {128, 64}, 0},    {"time_decay_w2", 2, {64, 128}, 0},   {"gate.weight", 2, {128, 128}, 0},
    {"q_proj.weight", 2, {128, 128}, 1},   {"q_proj.bias", 1, {128}, 1},         {"k_proj.weight", 2, {64, 128}, 1},
    {"k_proj.bias", 1, {64}, 1},           {"v_proj.weight", 2, {64, 128}, 1},   {"v_proj.bias", 1, {64}, 1},
    {"o_proj.weight", 2, {128, 128}, 1},
};

TEST(student_layout_init_save_load) {
    arwkv_student_options o;
    arwkv_student_options_default(&o);
    o.arch = ARWKV_ARCH_QRWKV6;
    o.seed = 5;
    arwkv_model *s;
    CHECK_OK(arwkv_student_create(teacher, &o, &s));
    if (!s) return;
    CHECK(s->cfg.arch == ARWKV_ARCH_QRWKV6 && s->cfg.lora_rank_tokenshift == 32 && s->cfg.lora_rank_decay == 64 && s->cfg.attention_bias &&
              !s->cfg.attention_output_bias,
          "config");
    int n_att = (int)(sizeof qrwkv6_table / sizeof qrwkv6_table[0]);
    CHECK(s->n_params == 1 + 8 * (2 + 3 + n_att) + 1, "parameter count %d", s->n_params);
    for (int l = 0; l < 8; l++)
        for (int k = 0; k < n_att; k++) {
            char name[128];
            snprintf(name, sizeof name, "model.layers.%d.self_attn.%s", l, qrwkv6_table[k].suffix);
            arwkv_param *p = arwkv_model_param(s, name);
            CHECK(p != NULL, "%s missing", name);
            if (!p) continue;
            int ok = p->ndim == qrwkv6_table[k].ndim;
            for (int dd = 0; dd < p->ndim; dd++) ok &= p->shape[dd] == qrwkv6_table[k].shape[dd];
            CHECK(ok, "%s shape", name);
            arwkv_param *tp = arwkv_model_param(teacher, name);
            if (qrwkv6_table[k].from_teacher)
                CHECK(tp && tp->dtype == p->dtype && memcmp(tp->data, p->data, (size_t)p->numel * arwkv_dtype_size(p->dtype)) == 0,
                      "%s copied from the teacher bit for bit", name);
            else
                CHECK(!tp && p->dtype == ARWKV_F32, "%s new, fp32", name);
            /* stage 1 trains the new parameters only */
            CHECK(arwkv__is_trained(p, 1, 0) == !qrwkv6_table[k].from_teacher, "%s stage-1 trainability", name);
        }
    /* the init values */
    arwkv_layer *L = &s->layers[3];
    static float v[5 * 32 * 128];
    CHECK_OK(arwkv_param_read(s, L->maa_x, v, 128));
    CHECK(v[0] == 1 && v[127] == 1, "maa_x = 1");
    CHECK_OK(arwkv_param_read(s, L->maa_v, v, 128));
    CHECK(v[5] == 0, "maa_v = 0");
    CHECK_OK(arwkv_param_read(s, L->time_decay, v, 128));
    double r0 = 3.0 / 7.0;
    CHECK(fabs(v[0] + 6) < 1e-6 && fabs(v[127] + 1) < 1e-5 && fabs(v[64] - (-6 + 5 * pow(64.0 / 127, 0.7 + 1.3 * r0))) < 1e-5, "time_decay %g %g %g",
          v[0], v[64], v[127]);
    CHECK_OK(arwkv_param_read(s, L->maa_w2, v, 5 * 32 * 128));
    double mx = 0, var = 0;
    for (int i = 0; i < 5 * 32 * 128; i++) mx = fmax(mx, fabs(v[i])), var += (double)v[i] * v[i];
    CHECK(mx <= 0.01 && mx > 0.009 && fabs(var / (5 * 32 * 128) - 1e-4 / 3) < 1e-5, "maa_w2 ~ U(-0.01, 0.01): max %g", mx);
    CHECK_OK(arwkv_param_read(s, L->gate, v, 128 * 128));
    CHECK(v[0] == 0 && v[128 * 128 - 1] == 0, "gate = 0");
    /* at init the branch inputs are x itself: r is exactly the teacher's q_proj(x), and the block runs */
    arwkv_tmix6_dims d;
    CHECK_OK(arwkv__tmix6_dims_from_config(&s->cfg, &d));
    CHECK(d.C == 128 && d.n_heads == 2 && d.head_size == 64 && d.n_kv_heads == 1 && d.rank_mix == 32 && d.rank_decay == 64, "dims");
    int T = 20;
    float *x = fnew((size_t)T * 128), *out = fnew((size_t)T * 128), *q = fnew((size_t)T * 128);
    test_fill_randn(x, (size_t)T * 128, 1);
    arwkv__tmix6_acts *a;
    CHECK_OK(arwkv__tmix6_acts_create(be2, &d, &a));
    CHECK_OK(arwkv__tmix6_forward(be2, L, &d, 1, T, x, NULL, NULL, out, a));
    arwkv_layer *TL = &teacher->layers[3];
    CHECK_OK(be2->core->gemm(be2, T, 128, 128, x, 128, 1, TL->q_w->data, TL->q_w->dtype, 1, 128, q, 128, 0, (const float *)TL->q_b->data));
    CHECK(a->r && memcmp(a->r, q, (size_t)T * 128 * sizeof(float)) == 0, "receptance = teacher's q_proj(x)");
    int finite = 1, nonzero = 0;
    for (int i = 0; i < T * 128; i++) finite &= isfinite(out[i]), nonzero += out[i] != 0;
    CHECK(finite && nonzero > T * 100, "finite output (%d non-zero)", nonzero);
    arwkv__tmix6_acts_free(a);
    free(x), free(out), free(q);
    /* save, load, compare */
    system("rm -rf build/test_qrwkv6_saved");
    CHECK_OK(arwkv_model_save(s, "build/test_qrwkv6_saved", ARWKV_DTYPE_UNKNOWN, 20 << 20, "models/qwen2-code-tiny"));
    arwkv_model *t;
    CHECK_OK(arwkv_model_load("build/test_qrwkv6_saved", be1, &t));
    if (t) {
        CHECK(t->cfg.arch == ARWKV_ARCH_QRWKV6 && t->cfg.lora_rank_tokenshift == 32 && t->cfg.lora_rank_decay == 64 && t->cfg.num_kv_heads == 1,
              "config loads back");
        CHECK(t->n_params == s->n_params, "same parameters");
        int same = 1;
        for (int i = 0; i < s->n_params && same; i++) {
            arwkv_param *p = &s->params[i], *pq = arwkv_model_param(t, p->name);
            same = pq && pq->dtype == p->dtype && pq->numel == p->numel && pq->ndim == p->ndim &&
                   memcmp(p->data, pq->data, (size_t)p->numel * arwkv_dtype_size(p->dtype)) == 0;
            if (!same) printf("    differs: %s\n", p->name);
        }
        CHECK(same, "every tensor loads back bit for bit, in its type");
        /* tied: lm_head.weight is written as well (llama.cpp's rwkv6qwen2 needs it), equal to the embeddings */
        arwkv_safetensors *st;
        CHECK_OK(arwkv_st_open("build/test_qrwkv6_saved", &st));
        if (st) {
            const arwkv_tensor_info *h = arwkv_st_find(st, "lm_head.weight"), *emb = arwkv_st_find(st, "model.embed_tokens.weight");
            CHECK(h && emb && h->nbytes == emb->nbytes && memcmp(h->data, emb->data, h->nbytes) == 0, "lm_head.weight = embeddings");
            arwkv_st_close(st);
        }
        CHECK(t->cfg.tie_word_embeddings && t->lm_head == t->embed, "still tied when loaded");
        char *text;
        size_t len;
        CHECK_OK(arwkv__read_file("build/test_qrwkv6_saved/config.json", &text, &len));
        if (text) {
            CHECK(strstr(text, "\"RWKV6Qwen2ForCausalLM\"") && strstr(text, "\"model_type\": \"rwkv6qwen2\"") &&
                      strstr(text, "\"attention_bias\": true") && strstr(text, "\"attention_output_bias\": false") &&
                      strstr(text, "\"lora_rank_tokenshift\": 32") && strstr(text, "\"lora_rank_decay\": 64") &&
                      strstr(text, "\"num_key_value_heads\": 1") && strstr(text, "\"num_attention_heads\": 2") &&
                      strstr(text, "modeling_rwkv6qwen2.RWKV6Qwen2ForCausalLM") && strstr(text, "configuration_rwkv6qwen2.RWKV6Qwen2Config"),
                  "config keys:\n%s", text);
            arwkv__free(text);
        }
        /* the loaded layer computes what the created one computes */
        float xs[4 * 128], o1[4 * 128], o2[4 * 128];
        test_fill_randn(xs, 4 * 128, 1);
        CHECK_OK(arwkv__tmix6_forward(be1, &s->layers[5], &d, 1, 4, xs, NULL, NULL, o1, NULL));
        CHECK_OK(arwkv__tmix6_forward(be1, &t->layers[5], &d, 1, 4, xs, NULL, NULL, o2, NULL));
        CHECK(memcmp(o1, o2, sizeof o1) == 0, "same outputs after the round trip");
        arwkv_model_free(t);
    }
    /* a bf16 save loads back too (vectors widened to fp32 on load) */
    system("rm -rf build/test_qrwkv6_saved_bf16");
    CHECK_OK(arwkv_model_save(s, "build/test_qrwkv6_saved_bf16", ARWKV_BF16, 0, NULL));
    CHECK_OK(arwkv_model_load("build/test_qrwkv6_saved_bf16", be1, &t));
    if (t) {
        arwkv_param *p = arwkv_model_param(t, "model.layers.2.self_attn.time_maa_w2");
        CHECK(p && p->dtype == ARWKV_BF16 && arwkv_model_param(t, "model.layers.2.self_attn.time_decay")->dtype == ARWKV_F32, "bf16 layout");
        arwkv_model_free(t);
    }
    arwkv_model_free(s);
}

int main(void) {
    quick = getenv("ARWKV_TEST_QUICK") != NULL;
    test_seed(20250706);
    if (arwkv_backend_cpu(1, &be1) != ARWKV_OK || arwkv_backend_cpu(2, &be2) != ARWKV_OK) {
        printf("FAIL setup: %s\n", arwkv_last_error());
        return 1;
    }
    RUN(op_token_shift);
    RUN(op_ddlerp);
    RUN(op_tanh_decay_gate);
    RUN(op_kv_expand);
    RUN(op_wkv6_forward_backward);
    RUN(linear_and_lora_match_float64);
    RUN(block_forward_matches_reference);
    RUN(block_activations_size_is_exact);
    RUN(block_backward_matches_finite_differences);
    RUN(block_recurrent_chunked_threads);
    RUN(block_agrees_with_llama_cpp_graph);
    RUN(block_refuses_bad_input);
    if (arwkv_model_load("models/qwen2-code-tiny", be2, &teacher) != ARWKV_OK) {
        printf("FAIL setup: %s\n", arwkv_last_error());
        return 1;
    }
    RUN(student_layout_init_save_load);
    arwkv_model_free(teacher);
    arwkv_backend_destroy(be1);
    arwkv_backend_destroy(be2);
    return test_summary("qrwkv6");
}
