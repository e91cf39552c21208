/* RWKV-7 time mix (ARWKV): the ops of arwkv_rwkv7_ops and the block forward/backward.

   Independent references: the upstream-validated values and gradients in
   shared/reference/timemix_reference.safetensors, and a float64 transcription of the block in
   this file (written from the spec, not from the library) that drives central finite differences
   for every op's backward and for the whole block. Then: sequence mode = recurrent mode = chunks
   with carried state, chunked training = whole-sequence training, and 1 thread = 2 threads bit
   for bit. */
#define ARWKV_IMPLEMENTATION
#include "arwkv.h"
#include "test.h"

static int quick; /* ARWKV_TEST_QUICK: fewer finite-difference probes (sanitizer builds) */

/* ============================================================================================
   float64 reference of the time mix
   ============================================================================================ */

static double ref_sigmoid(double x) { return 1.0 / (1.0 + exp(-x)); }

/* xmix[m][row][c] = x + (prev - x) mu_m */
static void ref_lerp(int B, int T, int C, int n_mix, const double *x, const double *shift_in, double *const *mu, double *xmix) {
    size_t MC = (size_t)B * T * C;
    for (int b = 0; b < B; b++)
        for (int t = 0; t < T; t++)
            for (int c = 0; c < C; c++) {
                size_t i = ((size_t)b * T + t) * C + c;
                double prev = t > 0 ? x[i - C] : shift_in ? shift_in[(size_t)b * C + c] : 0.0;
                for (int m = 0; m < n_mix; m++) xmix[m * MC + i] = x[i] + (prev - x[i]) * mu[m][c];
            }
}

/* y[M,out] = x[M,in] W^T (W [out,in]) or x W (W [in,out]) */
static void ref_mm(int M, int in, int out, const double *x, const double *W, int linear, double *y) {
    for (int m = 0; m < M; m++)
        for (int o = 0; o < out; o++) {
            double s = 0;
            if (linear)
                for (int i = 0; i < in; i++) s += x[(size_t)m * in + i] * W[(size_t)o * in + i];
            else
                for (int i = 0; i < in; i++) s += x[(size_t)m * in + i] * W[(size_t)i * out + o];
            y[(size_t)m * out + o] = s;
        }
}

/* The decay in its training form: exp(-exp(w')), w' = -softplus(-z) - 0.5. */
static void ref_prepare(int M, int C, int N, int first, const double *k_in, const double *v_in, const double *w_lora,
                        const double *a_lora, const double *v_lora, double *v_first, const double *w0, const double *a0,
                        const double *v0, const double *k_k, const double *k_a, double *decay, double *k, double *v, double *wa,
                        double *wb) {
    for (int m = 0; m < M; m++)
        for (int h = 0; h < C / N; h++) {
            size_t o = (size_t)m * C + (size_t)h * N;
            double ss = 0;
            for (int j = 0; j < N; j++) ss += pow(k_in[o + j] * k_k[h * N + j], 2);
            double norm = fmax(sqrt(ss), 1e-12);
            for (int j = 0; j < N; j++) {
                size_t i = o + j;
                int c = h * N + j;
                double z = w0[c] + w_lora[i], wl = -log1p(exp(-z)) - 0.5;
                decay[i] = exp(-exp(wl));
                double a = ref_sigmoid(a0[c] + a_lora[i]), kk = k_in[i] * k_k[c] / norm;
                k[i] = k_in[i] * (1 + (a - 1) * k_a[c]);
                wa[i] = -kk;
                wb[i] = kk * a;
                if (first) {
                    v[i] = v_in[i];
                    if (v_first) v_first[i] = v_in[i];
                } else
                    v[i] = v_in[i] + (v_first[i] - v_in[i]) * ref_sigmoid(v0[c] + v_lora[i]);
            }
        }
}

/* S [B,H,N,N] in/out (NULL: zeros) */
static void ref_wkv7(int B, int T, int H, int N, const double *r, const double *d, const double *k, const double *v,
                     const double *a, const double *bb, double *y, double *S_io) {
    double *S = (double *)malloc((size_t)N * N * sizeof(double)), *sa = (double *)malloc((size_t)N * sizeof(double));
    for (int b = 0; b < B; b++)
        for (int h = 0; h < H; h++) {
            double *Sh = S_io ? S_io + ((size_t)b * H + h) * N * N : S;
            if (!S_io) memset(S, 0, (size_t)N * N * sizeof(double));
            for (int t = 0; t < T; t++) {
                size_t o = ((size_t)b * T + t) * H * N + (size_t)h * N;
                for (int i = 0; i < N; i++) {
                    sa[i] = 0;
                    for (int j = 0; j < N; j++) sa[i] += Sh[i * N + j] * a[o + j];
                }
                for (int i = 0; i < N; i++) {
                    double yi = 0;
                    for (int j = 0; j < N; j++) {
                        Sh[i * N + j] = Sh[i * N + j] * d[o + j] + sa[i] * bb[o + j] + v[o + i] * k[o + j];
                        yi += Sh[i * N + j] * r[o + j];
                    }
                    y[o + i] = yi;
                }
            }
        }
    free(S);
    free(sa);
}

/* torch GroupNorm(H, C) (biased variance), bonus, gate */
static void ref_finish(int M, int C, int N, const double *y, const double *r, const double *k, const double *v, const double *r_k,
                       const double *ln_w, const double *ln_b, double eps, const double *g, double *o) {
    for (int m = 0; m < M; m++)
        for (int h = 0; h < C / N; h++) {
            size_t b = (size_t)m * C + (size_t)h * N;
            double mean = 0, var = 0, bonus = 0;
            for (int j = 0; j < N; j++) mean += y[b + j] / N;
            for (int j = 0; j < N; j++) var += (y[b + j] - mean) * (y[b + j] - mean) / N;
            for (int j = 0; j < N; j++) bonus += r[b + j] * k[b + j] * r_k[h * N + j];
            for (int j = 0; j < N; j++) {
                double p = ln_w ? (y[b + j] - mean) / sqrt(var + eps) * ln_w[h * N + j] + ln_b[h * N + j] : y[b + j];
                p += bonus * v[b + j];
                o[b + j] = g ? p * g[b + j] : p;
            }
        }
}

/* ============================================================================================
   Test layers: library views (arwkv_param) plus float64 copies of the same values
   ============================================================================================ */

enum { P_XR, P_XW, P_XK, P_XV, P_XA, P_XG, P_W0, P_W1, P_W2, P_A0, P_A1, P_A2, P_V0, P_V1, P_V2, P_G1, P_G2,
       P_KK, P_KA, P_RK, P_WR, P_WK, P_WV, P_WO, P_LNW, P_LNB, P_COUNT };
static const char *const pname[P_COUNT] = {"x_r", "x_w", "x_k", "x_v", "x_a", "x_g", "w0", "w1", "w2", "a0", "a1", "a2", "v0",
                                           "v1", "v2", "g1", "g2", "k_k", "k_a", "r_k", "receptance.weight", "key.weight",
                                           "value.weight", "output.weight", "ln_x.weight", "ln_x.bias"};

typedef struct tlayer {
    arwkv_tmix7_dims d;
    arwkv_param p[P_COUNT];
    double *val[P_COUNT]; /* NULL where the layer lacks the tensor */
    arwkv_layer l;
} tlayer;

static int p_rows(const arwkv_tmix7_dims *d, int i) {
    switch (i) {
    case P_W2: return d->rank_w;
    case P_A2: return d->rank_a;
    case P_V2: return d->rank_v;
    case P_G2: return d->rank_g;
    case P_RK: return d->H;
    default: return d->C;
    }
}
static int p_cols(const arwkv_tmix7_dims *d, int i) {
    switch (i) {
    case P_W1: return d->rank_w;
    case P_A1: return d->rank_a;
    case P_V1: return d->rank_v;
    case P_G1: return d->rank_g;
    case P_W2: case P_A2: case P_V2: case P_G2: case P_WR: case P_WK: case P_WV: case P_WO: return d->C;
    case P_RK: return d->N;
    default: return 0; /* vector */
    }
}
static int p_is_matrix(int i) { return i == P_W1 || i == P_W2 || i == P_A1 || i == P_A2 || i == P_V1 || i == P_V2 || i == P_G1 || i == P_G2 || (i >= P_WR && i <= P_WO); }
static int p_present(const arwkv_tmix7_dims *d, int i) {
    if (i == P_XG || i == P_G1 || i == P_G2) return d->has_gate;
    if (i == P_LNW || i == P_LNB) return d->has_group_norm;
    return 1;
}

/* values(i, n, out) gives the initial values of tensor i. Matrices are bf16 (and then frozen)
   if bf16 is set; the float64 copy holds exactly what the library sees. */
typedef void (*tvalues_fn)(void *ctx, int i, size_t n, float *out);
static void tlayer_init(tlayer *L, const arwkv_tmix7_dims *d, tvalues_fn values, void *ctx, int bf16, int trainable) {
    memset(L, 0, sizeof *L);
    L->d = *d;
    arwkv_param **field[P_COUNT] = {&L->l.x_r, &L->l.x_w, &L->l.x_k, &L->l.x_v, &L->l.x_a, &L->l.x_g, &L->l.w0, &L->l.w1,
                                    &L->l.w2, &L->l.a0, &L->l.a1, &L->l.a2, &L->l.v0, &L->l.v1, &L->l.v2, &L->l.g1,
                                    &L->l.g2, &L->l.k_k, &L->l.k_a, &L->l.r_k, &L->l.receptance, &L->l.key, &L->l.value,
                                    &L->l.output, &L->l.ln_x_w, &L->l.ln_x_b};
    for (int i = 0; i < P_COUNT; i++) {
        if (!p_present(d, i)) continue;
        arwkv_param *p = &L->p[i];
        int rows = p_rows(d, i), cols = p_cols(d, i);
        snprintf(p->name, sizeof p->name, "%s", pname[i]);
        p->ndim = cols ? 2 : 1;
        p->shape[0] = cols ? rows : d->C;
        p->shape[1] = cols;
        p->numel = cols ? (int64_t)rows * cols : d->C;
        p->is_matrix = p_is_matrix(i);
        size_t n = (size_t)p->numel;
        float *f = (float *)malloc(n * sizeof(float));
        values(ctx, i, n, f);
        L->val[i] = (double *)malloc(n * sizeof(double));
        if (bf16 && p->is_matrix) {
            uint16_t *h = (uint16_t *)malloc(n * 2);
            for (size_t k = 0; k < n; k++) h[k] = arwkv_f32_to_bf16(f[k]), L->val[i][k] = arwkv_bf16_to_f32(h[k]);
            free(f);
            p->data = h;
            p->dtype = ARWKV_BF16;
        } else {
            for (size_t k = 0; k < n; k++) L->val[i][k] = f[k];
            p->data = f;
            p->dtype = ARWKV_F32;
        }
        p->trainable = trainable && p->dtype == ARWKV_F32;
        if (p->trainable) p->grad = (float *)calloc(n, sizeof(float));
        *field[i] = p;
    }
}
static void tlayer_free(tlayer *L) {
    for (int i = 0; i < P_COUNT; i++) {
        free(L->p[i].data);
        free(L->p[i].grad);
        free(L->val[i]);
    }
}
static void tlayer_zero_grads(tlayer *L) {
    for (int i = 0; i < P_COUNT; i++)
        if (L->p[i].grad) memset(L->p[i].grad, 0, (size_t)L->p[i].numel * sizeof(float));
}

/* Plausible random values: decays spread over (0.55, 1), keys of moderate size, small LoRAs. */
static void random_values(void *ctx, int i, size_t n, float *out) {
    const arwkv_tmix7_dims *d = (const arwkv_tmix7_dims *)ctx;
    for (size_t k = 0; k < n; k++) {
        float u = (float)test_uniform(), z = test_randn();
        switch (i) {
        case P_XR: case P_XW: case P_XK: case P_XV: case P_XA: case P_XG: out[k] = u; break;
        case P_W0: out[k] = -4.0f + 5.0f * u; break;
        case P_A0: case P_V0: out[k] = 0.5f * z; break;
        case P_KK: out[k] = 0.85f + 0.2f * z; break;
        case P_KA: out[k] = 1.0f + 0.2f * z; break;
        case P_RK: out[k] = 0.3f * z; break;
        case P_LNW: out[k] = 1.0f + 0.2f * z; break;
        case P_LNB: out[k] = 0.2f * z; break;
        case P_WR: case P_WK: case P_WV: case P_WO: out[k] = z / sqrtf((float)d->C); break;
        default: out[k] = 0.3f * z; break; /* LoRA factors */
        }
    }
}

static arwkv_tmix7_dims make_dims(int C, int rw, int ra, int rv, int rg, int gate, int gn) {
    arwkv_config cfg;
    memset(&cfg, 0, sizeof cfg);
    cfg.hidden_size = C, cfg.head_size = 64, cfg.head_size_divisor = 8, cfg.wkv_has_gate = gate, cfg.wkv_has_group_norm = gn;
    arwkv_tmix7_dims d;
    arwkv_result r = arwkv__tmix7_dims(&cfg, rw, ra, rv, rg, &d);
    if (r != ARWKV_OK) printf("    make_dims: %s\n", arwkv_last_error());
    return d;
}

/* The float64 block, as the spec writes it. shift [B,C] and S [B,H,N,N] in/out (NULL: zeros). */
static void ref_block(const tlayer *L, int first, int B, int T, const double *x, double *shift, double *S, double *v_first,
                      double *out) {
    const arwkv_tmix7_dims *d = &L->d;
    int M = B * T, C = d->C, n_mix = d->has_gate ? 6 : 5;
    size_t MC = (size_t)M * C;
    double *xm = (double *)malloc(6 * MC * sizeof(double)), *buf = (double *)malloc(16 * MC * sizeof(double));
    double *h = (double *)malloc((size_t)M * 512 * sizeof(double));
    double *r = buf, *k_in = buf + MC, *v_in = buf + 2 * MC, *wl = buf + 3 * MC, *al = buf + 4 * MC, *vl = buf + 5 * MC;
    double *g = buf + 6 * MC, *dec = buf + 7 * MC, *k = buf + 8 * MC, *v = buf + 9 * MC, *wa = buf + 10 * MC, *wb = buf + 11 * MC;
    double *y = buf + 12 * MC, *o = buf + 13 * MC;
    double *mu[6] = {L->val[P_XR], L->val[P_XW], L->val[P_XK], L->val[P_XV], L->val[P_XA], L->val[P_XG]};
    ref_lerp(B, T, C, n_mix, x, shift, mu, xm);
    if (shift)
        for (int b = 0; b < B; b++) memcpy(shift + (size_t)b * C, x + ((size_t)b * T + T - 1) * C, C * sizeof(double));
    ref_mm(M, C, C, xm + 0 * MC, L->val[P_WR], 1, r);
    ref_mm(M, C, C, xm + 2 * MC, L->val[P_WK], 1, k_in);
    ref_mm(M, C, C, xm + 3 * MC, L->val[P_WV], 1, v_in);
    ref_mm(M, C, d->rank_w, xm + 1 * MC, L->val[P_W1], 0, h);
    for (size_t i = 0; i < (size_t)M * d->rank_w; i++) h[i] = tanh(h[i]);
    ref_mm(M, d->rank_w, C, h, L->val[P_W2], 0, wl);
    ref_mm(M, C, d->rank_a, xm + 4 * MC, L->val[P_A1], 0, h);
    ref_mm(M, d->rank_a, C, h, L->val[P_A2], 0, al);
    if (!first) {
        ref_mm(M, C, d->rank_v, xm + 3 * MC, L->val[P_V1], 0, h);
        ref_mm(M, d->rank_v, C, h, L->val[P_V2], 0, vl);
    }
    if (d->has_gate) {
        ref_mm(M, C, d->rank_g, xm + 5 * MC, L->val[P_G1], 0, h);
        for (size_t i = 0; i < (size_t)M * d->rank_g; i++) h[i] = ref_sigmoid(h[i]);
        ref_mm(M, d->rank_g, C, h, L->val[P_G2], 0, g);
    }
    ref_prepare(M, C, d->N, first, k_in, v_in, wl, al, vl, v_first, L->val[P_W0], L->val[P_A0], L->val[P_V0], L->val[P_KK],
                L->val[P_KA], dec, k, v, wa, wb);
    ref_wkv7(B, T, d->H, d->N, r, dec, k, v, wa, wb, y, S);
    ref_finish(M, C, d->N, y, r, k, v, L->val[P_RK], L->val[P_LNW], L->val[P_LNB], d->gn_eps, d->has_gate ? g : NULL, o);
    ref_mm(M, C, C, o, L->val[P_WO], 1, out);
    free(xm);
    free(buf);
    free(h);
}

/* ============================================================================================
   Finite differences
   ============================================================================================ */

typedef double (*loss_fn)(void *ctx);

/* Central differences of f along coordinates of p (double, n values) against the analytic
   gradient g: the largest |g| element, probes random elements (all if n <= probes), and one
   random +-1 direction. Error of an element: |fd - g| / max|g|; of the direction: |fd - g.u| /
   |g|_2. Returns the worst. */
static double fd_check(loss_fn f, void *ctx, double *p, size_t n, const float *g, int probes) {
    double gmax = 0, g2 = 0;
    size_t imax = 0;
    for (size_t i = 0; i < n; i++) {
        if (fabs(g[i]) > gmax) gmax = fabs(g[i]), imax = i;
        g2 += (double)g[i] * g[i];
    }
    g2 = sqrt(g2);
    double scale = gmax > 1e-30 ? gmax : 1e-30, worst = 0;
    int all = n <= (size_t)probes;
    int count = all ? (int)n : probes + 1;
    for (int q = 0; q < count; q++) {
        size_t i = all ? (size_t)q : q == 0 ? imax : (size_t)(test_uniform() * n);
        double keep = p[i], h = 1e-5 * fmax(1.0, fabs(keep));
        p[i] = keep + h;
        double lp = f(ctx);
        p[i] = keep - h;
        double lm = f(ctx);
        p[i] = keep;
        double e = fabs((lp - lm) / (2 * h) - g[i]) / scale;
        if (!(e <= worst)) worst = e;
    }
    /* the whole tensor at once */
    signed char *u = (signed char *)malloc(n);
    double gu = 0, h = 1e-6;
    for (size_t i = 0; i < n; i++) u[i] = test_uniform() < 0.5 ? -1 : 1, gu += u[i] * (double)g[i];
    for (size_t i = 0; i < n; i++) p[i] += h * u[i];
    double lp = f(ctx);
    for (size_t i = 0; i < n; i++) p[i] -= 2 * h * u[i];
    double lm = f(ctx);
    for (size_t i = 0; i < n; i++) p[i] += h * u[i];
    free(u);
    double e = fabs((lp - lm) / (2 * h) - gu) / (g2 > 1e-30 ? g2 : 1e-30);
    if (!(e <= worst)) worst = e;
    return worst;
}

static double *to_double(const float *x, size_t n) {
    double *d = (double *)malloc((n ? n : 1) * sizeof(double));
    for (size_t i = 0; i < n; i++) d[i] = x[i];
    return d;
}
static float *rand_floats(size_t n, float scale) {
    float *x = (float *)malloc((n ? n : 1) * sizeof(float));
    test_fill_randn(x, n, scale);
    return x;
}
static double dot_seed(const double *a, const float *s, size_t n) {
    double t = 0;
    for (size_t i = 0; i < n; i++) t += a[i] * s[i];
    return t;
}
/* max |a - b| / max |b| of a float array against a double one */
static double rel_err_d(const float *a, const double *b, size_t n) {
    double md = 0, mb = 0;
    for (size_t i = 0; i < n; i++) {
        double e = fabs(a[i] - b[i]);
        if (!(e <= md)) md = e;
        if (fabs(b[i]) > mb) mb = fabs(b[i]);
    }
    return mb > 0 ? md / mb : md;
}

static arwkv_backend *make_backend(int threads) {
    arwkv_backend *be = NULL;
    arwkv_result r = arwkv_backend_cpu(threads, &be);
    if (r != ARWKV_OK) printf("    backend: %s\n", arwkv_last_error());
    return be;
}

#define FD_TOL 1e-4

/* ============================================================================================
   Op by op: each backward against finite differences of its float64 reference
   ============================================================================================ */

/* ---- lerp ---- */
typedef struct {
    int B, T, C, n_mix;
    double *x, *shift, *mu[6];
    float *seed, *seed_shift;
} lerp_fd;
static double lerp_loss(void *ctx) {
    lerp_fd *c = (lerp_fd *)ctx;
    size_t MC = (size_t)c->B * c->T * c->C;
    double *xm = (double *)malloc(c->n_mix * MC * sizeof(double)), l = 0;
    ref_lerp(c->B, c->T, c->C, c->n_mix, c->x, c->shift, c->mu, xm);
    l = dot_seed(xm, c->seed, c->n_mix * MC);
    for (int b = 0; b < c->B; b++) /* the final shift state is the last token */
        for (int i = 0; i < c->C; i++) l += c->x[((size_t)b * c->T + c->T - 1) * c->C + i] * c->seed_shift[b * c->C + i];
    free(xm);
    return l;
}

TEST(lerp_backward_matches_finite_differences) {
    arwkv_backend *be = make_backend(2);
    test_seed(11);
    for (int n_mix = 5; n_mix <= 6; n_mix++) {
        /* 84 channels: a block of 64, then 16 and a tail of 4 for the 16-lane paths */
        lerp_fd c = {3, 7, n_mix == 5 ? 80 : 84, n_mix, NULL, NULL, {NULL}, NULL, NULL};
        size_t MC = (size_t)c.B * c.T * c.C;
        float *x = rand_floats(MC, 1), *shift = rand_floats((size_t)c.B * c.C, 1), *mu[6], *dmu[6];
        for (int m = 0; m < 6; m++) {
            mu[m] = (float *)malloc(c.C * sizeof(float));
            for (int i = 0; i < c.C; i++) mu[m][i] = (float)test_uniform();
            dmu[m] = (float *)calloc(c.C, sizeof(float));
            c.mu[m] = to_double(mu[m], c.C);
        }
        c.seed = rand_floats(6 * MC, 1), c.seed_shift = rand_floats((size_t)c.B * c.C, 1);
        c.x = to_double(x, MC), c.shift = to_double(shift, (size_t)c.B * c.C);
        float *xmix = (float *)malloc(6 * MC * sizeof(float)), *dx = (float *)malloc(MC * sizeof(float));
        float *shift_out = (float *)malloc((size_t)c.B * c.C * sizeof(float)), *dshift = (float *)malloc((size_t)c.B * c.C * sizeof(float));
        memcpy(shift_out, shift, (size_t)c.B * c.C * sizeof(float));
        CHECK_OK(be->rwkv7->lerp_forward(be, xmix, x, shift_out, shift_out, (const float *const *)mu, n_mix, c.B, c.T, c.C));
        double *ref = (double *)malloc(6 * MC * sizeof(double));
        ref_lerp(c.B, c.T, c.C, n_mix, c.x, c.shift, c.mu, ref);
        CHECK(rel_err_d(xmix, ref, n_mix * MC) < 1e-6, "lerp forward %g", rel_err_d(xmix, ref, n_mix * MC));
        CHECK(memcmp(shift_out, x + (size_t)(c.T - 1) * c.C, c.C * sizeof(float)) == 0, "shift_out = last token");
        memcpy(dshift, c.seed_shift, (size_t)c.B * c.C * sizeof(float));
        CHECK_OK(be->rwkv7->lerp_backward(be, dx, dshift, dmu, c.seed, x, shift, (const float *const *)mu, n_mix, c.B, c.T, c.C));
        double e = fd_check(lerp_loss, &c, c.x, MC, dx, 40);
        CHECK(e < FD_TOL, "%d mixes: dx %g", n_mix, e);
        e = fd_check(lerp_loss, &c, c.shift, (size_t)c.B * c.C, dshift, 40);
        CHECK(e < FD_TOL, "%d mixes: dshift %g", n_mix, e);
        for (int m = 0; m < n_mix; m++) {
            e = fd_check(lerp_loss, &c, c.mu[m], c.C, dmu[m], 20);
            CHECK(e < FD_TOL, "%d mixes: dmu[%d] %g", n_mix, m, e);
        }
        for (int m = n_mix; m < 6; m++)
            for (int i = 0; i < c.C; i++) CHECK(dmu[m][i] == 0, "absent mix %d untouched", m);
        for (int m = 0; m < 6; m++) free(mu[m]), free(dmu[m]), free(c.mu[m]);
        free(x), free(shift), free(c.seed), free(c.seed_shift), free(c.x), free(c.shift), free(xmix), free(dx), free(shift_out);
        free(dshift), free(ref);
    }
    arwkv_backend_destroy(be);
}

/* ---- activations ---- */
TEST(lora_activations_backward) {
    arwkv_backend *be = make_backend(2);
    test_seed(12);
    size_t n = 9000;
    float *x = rand_floats(n, 2), *h = (float *)malloc(n * sizeof(float)), *dh = (float *)malloc(n * sizeof(float));
    for (int kind = ARWKV_ACT_TANH; kind <= ARWKV_ACT_SIGMOID; kind++) {
        memcpy(h, x, n * sizeof(float));
        CHECK_OK(be->rwkv7->act_forward(be, h, n, kind));
        test_fill_randn(dh, n, 1);
        float *seed = (float *)malloc(n * sizeof(float));
        memcpy(seed, dh, n * sizeof(float));
        CHECK_OK(be->rwkv7->act_backward(be, dh, h, n, kind));
        double worst_f = 0, worst_b = 0;
        for (size_t i = 0; i < n; i++) {
            double f = kind == ARWKV_ACT_TANH ? tanh(x[i]) : ref_sigmoid(x[i]);
            double eps = 1e-6, fd = kind == ARWKV_ACT_TANH ? (tanh(x[i] + eps) - tanh(x[i] - eps)) / (2 * eps)
                                                          : (ref_sigmoid(x[i] + eps) - ref_sigmoid(x[i] - eps)) / (2 * eps);
            worst_f = fmax(worst_f, fabs(h[i] - f));
            worst_b = fmax(worst_b, fabs(dh[i] - seed[i] * fd) / fmax(1.0, fabs(seed[i])));
        }
        CHECK(worst_f < 1e-6, "activation %d forward %g", kind, worst_f);
        CHECK(worst_b < 1e-5, "activation %d backward %g", kind, worst_b);
        free(seed);
    }
    CHECK(be->rwkv7->act_forward(be, h, n, 7) == ARWKV_ERR_INVALID_ARGUMENT, "unknown activation refused");
    free(x), free(h), free(dh);
    arwkv_backend_destroy(be);
}

/* ---- prepare ---- */
enum { PR_KIN, PR_VIN, PR_WL, PR_AL, PR_VL, PR_VF, PR_W0, PR_A0, PR_V0, PR_KK, PR_KA, PR_N };
typedef struct {
    int M, C, N, first;
    double *in[PR_N];
    float *seed[5];
} prep_fd;
static double prep_loss(void *ctx) {
    prep_fd *c = (prep_fd *)ctx;
    size_t MC = (size_t)c->M * c->C;
    double *out = (double *)malloc(6 * MC * sizeof(double)), l = 0;
    ref_prepare(c->M, c->C, c->N, c->first, c->in[PR_KIN], c->in[PR_VIN], c->in[PR_WL], c->in[PR_AL], c->in[PR_VL],
                c->first ? out + 5 * MC : c->in[PR_VF], c->in[PR_W0], c->in[PR_A0], c->in[PR_V0], c->in[PR_KK], c->in[PR_KA],
                out, out + MC, out + 2 * MC, out + 3 * MC, out + 4 * MC);
    for (int o = 0; o < 5; o++) l += dot_seed(out + o * MC, c->seed[o], MC);
    if (c->first) l += dot_seed(out + 5 * MC, c->seed[2], MC) * 0.5; /* v_first = v_in: gradient flows back through it */
    free(out);
    return l;
}

TEST(prepare_backward_matches_finite_differences) {
    arwkv_backend *be = make_backend(2);
    test_seed(13);
    for (int first = 1; first >= 0; first--) {
        prep_fd c;
        memset(&c, 0, sizeof c);
        c.M = 7, c.C = first ? 192 : 72, c.N = first ? 64 : 24, c.first = first; /* 24: 16 lanes and a tail of 8 */
        size_t MC = (size_t)c.M * c.C, n[PR_N];
        float *in[PR_N];
        for (int i = 0; i < PR_N; i++) {
            n[i] = i >= PR_W0 ? (size_t)c.C : MC;
            in[i] = rand_floats(n[i], 1);
        }
        for (int i = 0; i < c.C; i++) in[PR_KK][i] = 0.85f + 0.2f * in[PR_KK][i], in[PR_KA][i] = 1 + 0.2f * in[PR_KA][i];
        for (int i = 0; i < PR_N; i++) c.in[i] = to_double(in[i], n[i]);
        for (int o = 0; o < 5; o++) c.seed[o] = rand_floats(MC, 1);
        float *out = (float *)malloc(6 * MC * sizeof(float)), *vf_out = (float *)malloc(MC * sizeof(float));
        arwkv_r7_prepare_args p = {0};
        p.M = c.M, p.C = c.C, p.N = c.N, p.first_layer = first;
        p.k_in = in[PR_KIN], p.v_in = in[PR_VIN], p.w_lora = in[PR_WL], p.a_lora = in[PR_AL], p.v_lora = first ? NULL : in[PR_VL];
        p.v_first = first ? vf_out : in[PR_VF];
        p.w0 = in[PR_W0], p.a0 = in[PR_A0], p.v0 = first ? NULL : in[PR_V0], p.k_k = in[PR_KK], p.k_a = in[PR_KA];
        p.decay = out, p.k = out + MC, p.v = out + 2 * MC, p.wkv_a = out + 3 * MC, p.wkv_b = out + 4 * MC;
        CHECK_OK(be->rwkv7->prepare_forward(be, &p));
        double *ref = (double *)malloc(6 * MC * sizeof(double));
        ref_prepare(c.M, c.C, c.N, first, c.in[PR_KIN], c.in[PR_VIN], c.in[PR_WL], c.in[PR_AL], c.in[PR_VL], first ? ref + 5 * MC : c.in[PR_VF],
                    c.in[PR_W0], c.in[PR_A0], c.in[PR_V0], c.in[PR_KK], c.in[PR_KA], ref, ref + MC, ref + 2 * MC, ref + 3 * MC,
                    ref + 4 * MC);
        for (int o = 0; o < 5; o++) CHECK(rel_err_d(out + o * MC, ref + o * MC, MC) < 2e-6, "output %d: %g", o, rel_err_d(out + o * MC, ref + o * MC, MC));
        if (first) CHECK(memcmp(vf_out, in[PR_VIN], MC * sizeof(float)) == 0, "layer 0 writes v_first = v");
        /* gradients: for the first layer, v_first's gradient (half the v seed) comes in through dv_first */
        float *g[PR_N];
        for (int i = 0; i < PR_N; i++) g[i] = (float *)calloc(n[i], sizeof(float));
        if (first)
            for (size_t i = 0; i < MC; i++) g[PR_VF][i] = 0.5f * c.seed[2][i];
        arwkv_r7_prepare_args q = {0};
        q.M = c.M, q.C = c.C, q.N = c.N, q.first_layer = first;
        q.k_in = in[PR_KIN], q.v_in = in[PR_VIN], q.w_lora = in[PR_WL], q.a_lora = in[PR_AL], q.v_lora = first ? NULL : in[PR_VL];
        q.v_first = first ? NULL : in[PR_VF];
        q.w0 = in[PR_W0], q.a0 = in[PR_A0], q.v0 = first ? NULL : in[PR_V0], q.k_k = in[PR_KK], q.k_a = in[PR_KA];
        q.d_decay = c.seed[0], q.dk = c.seed[1], q.dv = c.seed[2], q.d_wkv_a = c.seed[3], q.d_wkv_b = c.seed[4];
        q.dk_in = g[PR_KIN], q.dv_in = g[PR_VIN], q.dw_lora = g[PR_WL], q.da_lora = g[PR_AL], q.dv_lora = first ? NULL : g[PR_VL];
        q.dv_first = g[PR_VF], q.dw0 = g[PR_W0], q.da0 = g[PR_A0], q.dv0 = first ? NULL : g[PR_V0], q.dk_k = g[PR_KK], q.dk_a = g[PR_KA];
        CHECK_OK(be->rwkv7->prepare_backward(be, &q));
        for (int i = 0; i < PR_N; i++) {
            if (first && (i == PR_VL || i == PR_VF || i == PR_V0)) continue;
            double e = fd_check(prep_loss, &c, c.in[i], n[i], g[i], quick ? 20 : 60);
            CHECK(e < FD_TOL, "%s layer, input %d: %g", first ? "first" : "later", i, e);
        }
        for (int i = 0; i < PR_N; i++) free(in[i]), free(c.in[i]), free(g[i]);
        for (int o = 0; o < 5; o++) free(c.seed[o]);
        free(out), free(vf_out), free(ref);
    }
    arwkv_backend_destroy(be);
}

/* The prepare loops' row helpers (16 at a time through a polynomial exp in an AVX-512 build, expf
   otherwise) against float64, over the whole range a sigmoid sees, a half vector at the end; NaN in,
   NaN out (a NaN must not become a plausible gate). */
TEST(prepare_sigmoid_and_decay_rows) {
    enum { N = 40 };
    float x[N], y[N], s[N], dec[N];
    double worst_s = 0, worst_d = 0;
    for (int trial = 0; trial < 200; trial++) {
        for (int j = 0; j < N; j++) x[j] = (float)((trial * N + j) % 401 - 200) * 0.25f, y[j] = (float)(j % 7) * 0.01f;
        arwkv__r7_sigmoid_sum(s, x, y, N);
        arwkv__r7_decay_of(dec, s, N);
        for (int j = 0; j < N; j++) {
            double z = (double)(x[j] + y[j]), want = 1 / (1 + exp(-z)), want_d = exp(-0.60653065971263342 * s[j]);
            worst_s = fmax(worst_s, fabs(s[j] - want) / want);
            worst_d = fmax(worst_d, fabs(dec[j] - want_d) / want_d);
        }
    }
    CHECK(worst_s < 1e-6, "sigmoid: worst relative error %g", worst_s);
    CHECK(worst_d < 1e-6, "decay: worst relative error %g", worst_d);
    for (int j = 0; j < N; j++) x[j] = 0, y[j] = 0;
    x[3] = NAN, y[N - 2] = NAN;
    arwkv__r7_sigmoid_sum(s, x, y, N);
    CHECK(isnan(s[3]) && isnan(s[N - 2]) && s[0] == 0.5f && s[N - 1] == 0.5f, "NaN gives NaN (%g, %g), 0 gives 0.5", s[3], s[N - 2]);
    s[5] = NAN;
    arwkv__r7_decay_of(dec, s, N);
    CHECK(isnan(dec[5]) && fabs(dec[4] - exp(-0.60653065971263342 * 0.5)) < 1e-6, "decay of NaN is NaN, of 0.5 %g", dec[4]);
}

/* ---- WKV7 ---- */
enum { WK_R, WK_D, WK_K, WK_V, WK_A, WK_B, WK_N };
typedef struct {
    int B, T, H, N;
    double *in[WK_N], *S0;
    float *seed, *seed_S;
} wkv_fd;
static double wkv_loss(void *ctx) {
    wkv_fd *c = (wkv_fd *)ctx;
    size_t n = (size_t)c->B * c->T * c->H * c->N, ns = (size_t)c->B * c->H * c->N * c->N;
    double *y = (double *)malloc(n * sizeof(double)), *S = (double *)malloc(ns * sizeof(double));
    memcpy(S, c->S0, ns * sizeof(double));
    ref_wkv7(c->B, c->T, c->H, c->N, c->in[WK_R], c->in[WK_D], c->in[WK_K], c->in[WK_V], c->in[WK_A], c->in[WK_B], y, S);
    double l = dot_seed(y, c->seed, n) + dot_seed(S, c->seed_S, ns);
    free(y), free(S);
    return l;
}

/* Inputs as the time mix makes them: decay in (0.55, 1), a = -kk with |kk| = 1 per head, b = kk*iclr. */
static void wkv_inputs(int B, int T, int H, int N, float *in[WK_N]) {
    size_t n = (size_t)B * T * H * N;
    for (int i = 0; i < WK_N; i++) in[i] = rand_floats(n, 1);
    for (size_t row = 0; row < n / N; row++) {
        float *kk = in[WK_A] + row * N, ss = 0;
        for (int j = 0; j < N; j++) ss += kk[j] * kk[j];
        for (int j = 0; j < N; j++) {
            size_t i = row * N + j;
            float unit = kk[j] / sqrtf(ss), iclr = (float)test_uniform();
            in[WK_A][i] = -unit;
            in[WK_B][i] = unit * iclr;
            in[WK_D][i] = expf(-0.6065306597f * (float)test_uniform());
            in[WK_K][i] *= 0.3f;
        }
    }
}

TEST(wkv7_backward_matches_finite_differences) {
    arwkv_backend *be = make_backend(2);
    test_seed(14);
    struct { int B, T, H, N, probes; } shapes[] = {{1, 21, 2, 16, 100000}, {2, 37, 2, 64, 40}, {1, 16, 1, 64, 40}, {1, 1, 3, 8, 100000},
                                                   {1, 19, 1, 24, 100000}}; /* N = 24: a half vector at the end of an AVX-512 row */
    for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++) {
        wkv_fd c;
        memset(&c, 0, sizeof c);
        c.B = shapes[s].B, c.T = shapes[s].T, c.H = shapes[s].H, c.N = shapes[s].N;
        int probes = quick ? 20 : shapes[s].probes;
        size_t n = (size_t)c.B * c.T * c.H * c.N, ns = (size_t)c.B * c.H * c.N * c.N;
        int n_chunks = (c.T + ARWKV_WKV7_CHUNK - 1) / ARWKV_WKV7_CHUNK;
        float *in[WK_N], *S = rand_floats(ns, 0.3f), *S0 = (float *)malloc(ns * sizeof(float));
        memcpy(S0, S, ns * sizeof(float));
        wkv_inputs(c.B, c.T, c.H, c.N, in);
        for (int i = 0; i < WK_N; i++) c.in[i] = to_double(in[i], n);
        c.S0 = to_double(S0, ns), c.seed = rand_floats(n, 1), c.seed_S = rand_floats(ns, 1);
        float *y = (float *)malloc(n * sizeof(float)), *ckpt = (float *)malloc((size_t)n_chunks * ns * sizeof(float));
        CHECK_OK(be->rwkv7->wkv7_forward(be, c.B, c.T, c.H, c.N, in[WK_R], in[WK_D], in[WK_K], in[WK_V], in[WK_A], in[WK_B], y, S, ckpt));
        double *yr = (double *)malloc(n * sizeof(double)), *Sr = (double *)malloc(ns * sizeof(double));
        memcpy(Sr, c.S0, ns * sizeof(double));
        ref_wkv7(c.B, c.T, c.H, c.N, c.in[WK_R], c.in[WK_D], c.in[WK_K], c.in[WK_V], c.in[WK_A], c.in[WK_B], yr, Sr);
        CHECK(rel_err_d(y, yr, n) < 1e-5, "shape %zu: y %g", s, rel_err_d(y, yr, n));
        CHECK(rel_err_d(S, Sr, ns) < 1e-5, "shape %zu: final state %g", s, rel_err_d(S, Sr, ns));
        float *g[WK_N], *dS = (float *)malloc(ns * sizeof(float));
        for (int i = 0; i < WK_N; i++) g[i] = (float *)calloc(n, sizeof(float));
        memcpy(dS, c.seed_S, ns * sizeof(float));
        CHECK_OK(be->rwkv7->wkv7_backward(be, c.B, c.T, c.H, c.N, in[WK_R], in[WK_D], in[WK_K], in[WK_V], in[WK_A], in[WK_B], c.seed,
                                          ckpt, dS, g[WK_R], g[WK_D], g[WK_K], g[WK_V], g[WK_A], g[WK_B]));
        const char *names[WK_N] = {"r", "decay", "k", "v", "a", "b"};
        for (int i = 0; i < WK_N; i++) {
            double e = fd_check(wkv_loss, &c, c.in[i], n, g[i], probes);
            CHECK(e < FD_TOL, "B%d T%d H%d N%d: d%s %g", c.B, c.T, c.H, c.N, names[i], e);
        }
        double e = fd_check(wkv_loss, &c, c.S0, ns, dS, probes);
        CHECK(e < FD_TOL, "B%d T%d H%d N%d: initial state %g", c.B, c.T, c.H, c.N, e);
        /* dr, dk, dv are added to: a second backward adds the same again */
        float *g2 = (float *)malloc(n * sizeof(float));
        memcpy(g2, g[WK_R], n * sizeof(float));
        CHECK_OK(be->rwkv7->wkv7_backward(be, c.B, c.T, c.H, c.N, in[WK_R], in[WK_D], in[WK_K], in[WK_V], in[WK_A], in[WK_B], c.seed,
                                          ckpt, NULL, g[WK_R], g[WK_D], g[WK_K], g[WK_V], g[WK_A], g[WK_B]));
        int doubled = 1;
        for (size_t i = 0; i < n; i++) doubled &= g[WK_R][i] == 2 * g2[i] || fabsf(g[WK_R][i] - 2 * g2[i]) <= 1e-6f * fabsf(g2[i]);
        CHECK(doubled, "dr accumulates");
        for (int i = 0; i < WK_N; i++) free(in[i]), free(c.in[i]), free(g[i]);
        free(S), free(S0), free(c.S0), free(c.seed), free(c.seed_S), free(y), free(ckpt), free(yr), free(Sr), free(dS), free(g2);
    }
    arwkv_backend_destroy(be);
}

/* ---- finish ---- */
enum { FI_Y, FI_R, FI_K, FI_V, FI_G, FI_RK, FI_LW, FI_LB, FI_N };
typedef struct {
    int M, C, N, gate, gn;
    double *in[FI_N], eps;
    float *seed;
} fin_fd;
static double fin_loss(void *ctx) {
    fin_fd *c = (fin_fd *)ctx;
    size_t MC = (size_t)c->M * c->C;
    double *o = (double *)malloc(MC * sizeof(double));
    ref_finish(c->M, c->C, c->N, c->in[FI_Y], c->in[FI_R], c->in[FI_K], c->in[FI_V], c->in[FI_RK], c->gn ? c->in[FI_LW] : NULL,
               c->gn ? c->in[FI_LB] : NULL, c->eps, c->gate ? c->in[FI_G] : NULL, o);
    double l = dot_seed(o, c->seed, MC);
    free(o);
    return l;
}

TEST(finish_backward_matches_finite_differences) {
    arwkv_backend *be = make_backend(2);
    test_seed(15);
    for (int variant = 0; variant < 4; variant++) {
        fin_fd c;
        memset(&c, 0, sizeof c);
        c.M = 9, c.C = 192, c.N = 64, c.gate = variant & 1, c.gn = (variant >> 1) & 1, c.eps = 64e-5;
        size_t MC = (size_t)c.M * c.C, n[FI_N];
        float *in[FI_N], *g[FI_N];
        for (int i = 0; i < FI_N; i++) {
            n[i] = i >= FI_RK ? (size_t)c.C : MC;
            in[i] = rand_floats(n[i], 1);
            c.in[i] = to_double(in[i], n[i]);
            g[i] = (float *)calloc(n[i], sizeof(float));
        }
        c.seed = rand_floats(MC, 1);
        float *o = (float *)malloc(MC * sizeof(float));
        const float *lw = c.gn ? in[FI_LW] : NULL, *lb = c.gn ? in[FI_LB] : NULL, *gg = c.gate ? in[FI_G] : NULL;
        arwkv_r7_finish_args f = {0};
        f.M = c.M, f.C = c.C, f.N = c.N;
        f.y = in[FI_Y], f.r = in[FI_R], f.k = in[FI_K], f.v = in[FI_V], f.r_k = in[FI_RK], f.ln_w = lw, f.ln_b = lb, f.gn_eps = (float)c.eps;
        f.g = gg, f.o = o;
        CHECK_OK(be->rwkv7->finish_forward(be, &f));
        double *ref = (double *)malloc(MC * sizeof(double));
        ref_finish(c.M, c.C, c.N, c.in[FI_Y], c.in[FI_R], c.in[FI_K], c.in[FI_V], c.in[FI_RK], c.gn ? c.in[FI_LW] : NULL,
                   c.gn ? c.in[FI_LB] : NULL, c.eps, c.gate ? c.in[FI_G] : NULL, ref);
        CHECK(rel_err_d(o, ref, MC) < 2e-6, "gate %d gn %d: forward %g", c.gate, c.gn, rel_err_d(o, ref, MC));
        f.o = NULL, f.d_o = c.seed;
        f.dy = g[FI_Y], f.dr = g[FI_R], f.dk = g[FI_K], f.dv = g[FI_V], f.dg = c.gate ? g[FI_G] : NULL;
        f.dr_k = g[FI_RK], f.dln_w = c.gn ? g[FI_LW] : NULL, f.dln_b = c.gn ? g[FI_LB] : NULL;
        CHECK_OK(be->rwkv7->finish_backward(be, &f));
        for (int i = 0; i < FI_N; i++) {
            if ((i == FI_G && !c.gate) || ((i == FI_LW || i == FI_LB) && !c.gn)) continue;
            double e = fd_check(fin_loss, &c, c.in[i], n[i], g[i], quick ? 20 : 60);
            CHECK(e < FD_TOL, "gate %d gn %d: input %d: %g", c.gate, c.gn, i, e);
        }
        for (int i = 0; i < FI_N; i++) free(in[i]), free(c.in[i]), free(g[i]);
        free(c.seed), free(o), free(ref);
    }
    arwkv_backend_destroy(be);
}

/* ============================================================================================
   The block: two layers (layer 0 makes v_first, layer 1 uses it), states in and out
   ============================================================================================ */

typedef struct {
    int B, T;
    tlayer L[2];
    double *x[2], *shift[2], *S[2]; /* inputs of each layer (states: initial values) */
    float *dy[2], *seed_shift[2], *seed_S[2];
    float *seed_vf; /* v_first also feeds the loss directly, as if a third layer used it */
    int only_layer1;  /* moving a layer-1 tensor: layer 0's loss and v_first stay as cached */
    double loss0, *v_first;
} block_fd;

/* sum(out dy) + sum(final shift seed) + sum(final state seed) of one layer */
static double block_layer_loss(block_fd *c, int li, double *v_first) {
    const arwkv_tmix7_dims *d = &c->L[li].d;
    size_t MC = (size_t)c->B * c->T * d->C, nsh = (size_t)c->B * d->C, ns = (size_t)c->B * d->H * d->N * d->N;
    double *out = (double *)malloc(MC * sizeof(double)), *sh = (double *)malloc(nsh * sizeof(double));
    double *S = (double *)malloc(ns * sizeof(double));
    memcpy(sh, c->shift[li], nsh * sizeof(double));
    memcpy(S, c->S[li], ns * sizeof(double));
    ref_block(&c->L[li], li == 0, c->B, c->T, c->x[li], sh, S, v_first, out);
    double l = dot_seed(out, c->dy[li], MC) + dot_seed(sh, c->seed_shift[li], nsh) + dot_seed(S, c->seed_S[li], ns);
    free(out), free(sh), free(S);
    return l;
}
static double block_loss(void *ctx) {
    block_fd *c = (block_fd *)ctx;
    double l0 = c->loss0;
    if (!c->only_layer1)
        l0 = block_layer_loss(c, 0, c->v_first) + dot_seed(c->v_first, c->seed_vf, (size_t)c->B * c->T * c->L[0].d.C);
    return l0 + block_layer_loss(c, 1, c->v_first);
}

typedef struct {
    int C, rw, ra, rv, rg, gate, gn, bf16, B, T, probes;
} block_cfg;

/* Forward and backward of both layers through the library; then every gradient against finite
   differences of the float64 block, and the outputs against its values. */
static void block_check(const block_cfg *k, unsigned long long seed) {
    arwkv_backend *be = make_backend(2);
    test_seed(seed);
    arwkv_tmix7_dims d = make_dims(k->C, k->rw, k->ra, k->rv, k->rg, k->gate, k->gn);
    block_fd c;
    memset(&c, 0, sizeof c);
    c.B = k->B, c.T = k->T;
    int B = k->B, T = k->T, C = d.C;
    size_t MC = (size_t)B * T * C, nsh = (size_t)B * C, ns = (size_t)B * d.H * d.N * d.N;
    float *x[2], *sh[2], *S[2], *out[2], *dx[2], *dsh[2], *dS[2], *v_first = (float *)malloc(MC * sizeof(float));
    float *dv_first = rand_floats(MC, 1); /* starts as the direct gradient of v_first; layer 1 adds its share */
    c.seed_vf = (float *)malloc(MC * sizeof(float));
    memcpy(c.seed_vf, dv_first, MC * sizeof(float));
    arwkv__tmix7_acts *acts[2];
    arwkv__tmix7_work *work = NULL;
    CHECK_OK(arwkv__tmix7_work_create(be, &d, B * T, 1, &work));
    for (int li = 0; li < 2; li++) {
        tlayer_init(&c.L[li], &d, random_values, &d, k->bf16, 1);
        x[li] = rand_floats(MC, 1), sh[li] = rand_floats(nsh, 1), S[li] = rand_floats(ns, 0.2f);
        c.x[li] = to_double(x[li], MC), c.shift[li] = to_double(sh[li], nsh), c.S[li] = to_double(S[li], ns);
        c.dy[li] = rand_floats(MC, 1), c.seed_shift[li] = rand_floats(nsh, 1), c.seed_S[li] = rand_floats(ns, 1);
        out[li] = (float *)malloc(MC * sizeof(float)), dx[li] = (float *)malloc(MC * sizeof(float));
        dsh[li] = (float *)malloc(nsh * sizeof(float)), dS[li] = (float *)malloc(ns * sizeof(float));
        memcpy(dsh[li], c.seed_shift[li], nsh * sizeof(float));
        memcpy(dS[li], c.seed_S[li], ns * sizeof(float));
        CHECK_OK(arwkv__tmix7_acts_create(be, &d, B, T, &acts[li]));
    }
    for (int li = 0; li < 2; li++)
        CHECK_OK(arwkv__tmix7_forward(be, &c.L[li].l, li, &d, B, T, x[li], sh[li], S[li], v_first, out[li], acts[li], work));
    /* outputs and final states against the float64 block */
    double *ro = (double *)malloc(MC * sizeof(double)), *rvf = (double *)malloc(MC * sizeof(double));
    double *rsh = (double *)malloc(nsh * sizeof(double)), *rS = (double *)malloc(ns * sizeof(double));
    for (int li = 0; li < 2; li++) {
        memcpy(rsh, c.shift[li], nsh * sizeof(double));
        memcpy(rS, c.S[li], ns * sizeof(double));
        ref_block(&c.L[li], li == 0, B, T, c.x[li], rsh, rS, rvf, ro);
        CHECK(rel_err_d(out[li], ro, MC) < 1e-5, "layer %d out %g", li, rel_err_d(out[li], ro, MC));
        CHECK(rel_err_d(S[li], rS, ns) < 1e-5, "layer %d final WKV state %g", li, rel_err_d(S[li], rS, ns));
        CHECK(rel_err_d(sh[li], rsh, nsh) == 0, "layer %d final shift", li);
        if (li == 0) CHECK(rel_err_d(v_first, rvf, MC) < 1e-5, "v_first %g", rel_err_d(v_first, rvf, MC));
    }
    /* backward: layer 1 first, it adds its share into dv_first, which layer 0 then reads */
    for (int li = 1; li >= 0; li--)
        CHECK_OK(arwkv__tmix7_backward(be, &c.L[li].l, li, &d, B, T, x[li], v_first, acts[li], c.dy[li], dx[li], dv_first, dsh[li],
                                       dS[li], work));
    double worst = 0;
    c.v_first = (double *)malloc(MC * sizeof(double));
    for (int li = 0; li < 2; li++) {
        c.only_layer1 = 0;
        if (li == 1) {
            c.loss0 = block_loss(&c) - block_layer_loss(&c, 1, c.v_first);
            c.only_layer1 = 1;
        }
        for (int i = 0; i < P_COUNT; i++) {
            arwkv_param *p = &c.L[li].p[i];
            if (!c.L[li].val[i]) continue;
            if (li == 0 && (i == P_V0 || i == P_V1 || i == P_V2)) { /* unused by the first layer */
                int zero = 1;
                for (int64_t q = 0; p->grad && q < p->numel; q++) zero &= p->grad[q] == 0;
                CHECK(zero, "layer 0 leaves %s alone", pname[i]);
                continue;
            }
            if (!p->trainable) continue; /* a frozen bf16 matrix: no gradient */
            double e = fd_check(block_loss, &c, c.L[li].val[i], (size_t)p->numel, p->grad, k->probes);
            CHECK(e < FD_TOL, "C%d gate %d gn %d bf16 %d: layer %d %s: %g", k->C, k->gate, k->gn, k->bf16, li, pname[i], e);
            worst = fmax(worst, e);
        }
        struct { double *p; const float *g; size_t n; const char *what; } inputs[3] = {
            {c.x[li], dx[li], MC, "x"}, {c.shift[li], dsh[li], nsh, "initial shift"}, {c.S[li], dS[li], ns, "initial WKV state"}};
        for (int q = 0; q < 3; q++) {
            double e = fd_check(block_loss, &c, inputs[q].p, inputs[q].n, inputs[q].g, k->probes);
            CHECK(e < FD_TOL, "C%d gate %d gn %d bf16 %d: layer %d %s: %g", k->C, k->gate, k->gn, k->bf16, li, inputs[q].what, e);
            worst = fmax(worst, e);
        }
    }
    printf("    C=%d B=%d T=%d gate %d group norm %d %s: worst finite-difference error %.2g\n", k->C, B, T, k->gate, k->gn,
           k->bf16 ? "bf16 matrices (frozen)" : "fp32", worst);
    for (int li = 0; li < 2; li++) {
        tlayer_free(&c.L[li]);
        arwkv__tmix7_acts_free(be, acts[li]);
        free(x[li]), free(sh[li]), free(S[li]), free(out[li]), free(dx[li]), free(dsh[li]), free(dS[li]);
        free(c.x[li]), free(c.shift[li]), free(c.S[li]), free(c.dy[li]), free(c.seed_shift[li]), free(c.seed_S[li]);
    }
    arwkv__tmix7_work_free(be, work);
    free(v_first), free(dv_first), free(ro), free(rvf), free(rsh), free(rS), free(c.v_first), free(c.seed_vf);
    arwkv_backend_destroy(be);
}

TEST(block_backward_matches_finite_differences) {
    int p = quick ? 1 : 3;
    block_cfg cfgs[] = {
        {192, 16, 12, 8, 24, 1, 0, 0, 3, 21, p}, /* H = 3, B = 3, T not a multiple of 16: the ARWKV-7B layout */
        {128, 8, 8, 8, 0, 0, 1, 1, 2, 17, p},    /* no gate, group norm, bf16 matrices */
        {128, 8, 16, 8, 8, 1, 1, 0, 1, 33, p},   /* both, three checkpoint chunks */
    };
    for (size_t i = 0; i < sizeof cfgs / sizeof cfgs[0]; i++) {
        if (quick && i == 2) break;
        block_check(&cfgs[i], 100 + i);
    }
}

/* ============================================================================================
   The upstream-validated reference: two blocks with gate, no group norm
   ============================================================================================ */

typedef struct {
    const arwkv_safetensors *st;
    int layer;
} ref_ctx;
static void reference_values(void *ctx, int i, size_t n, float *out) {
    ref_ctx *c = (ref_ctx *)ctx;
    char name[96];
    snprintf(name, sizeof name, "layer%d.%s", c->layer, pname[i]);
    arwkv_result r = arwkv_st_read_f32(c->st, name, out, (int64_t)n);
    if (r != ARWKV_OK) {
        printf("    %s\n", arwkv_last_error());
        memset(out, 0, n * sizeof(float));
    }
}
static int st_dim(const arwkv_safetensors *st, const char *name, int dim) {
    const arwkv_tensor_info *t = arwkv_st_find(st, name);
    return t && t->ndim > dim ? (int)t->shape[dim] : 0;
}

TEST(reference_two_layers) {
    char path[1024];
    snprintf(path, sizeof path, "%s/reference/timemix_reference.safetensors", test_shared_dir());
    if (!test_file_exists(path)) SKIP("%s not found (set ARWKV_SHARED)", path);
    arwkv_safetensors *st = NULL;
    CHECK_OK(arwkv_st_open(path, &st));
    if (!st) return;
    int B = st_dim(st, "x0", 0), T = st_dim(st, "x0", 1), C = st_dim(st, "x0", 2);
    /* ranks from the tensors' shapes */
    arwkv_tmix7_dims d = make_dims(C, st_dim(st, "layer1.w1", 1), st_dim(st, "layer1.a1", 1), st_dim(st, "layer1.v1", 1),
                                   st_dim(st, "layer1.g1", 1), 1, 0);
    CHECK(B == 2 && T == 32 && C == 128 && d.H == 2 && d.rank_g == 128, "reference shape B %d T %d C %d", B, T, C);
    arwkv_backend *be = make_backend(2);
    tlayer L[2];
    size_t MC = (size_t)B * T * C;
    float *x[2], *dy[2], *out[2], *dx[2], *want = (float *)malloc(MC * sizeof(float));
    float *v_first = (float *)malloc(MC * sizeof(float)), *dv_first = (float *)calloc(MC, sizeof(float));
    arwkv__tmix7_acts *acts[2];
    for (int li = 0; li < 2; li++) {
        ref_ctx rc = {st, li};
        tlayer_init(&L[li], &d, reference_values, &rc, 0, 1);
        char n[16];
        x[li] = (float *)malloc(MC * sizeof(float)), dy[li] = (float *)malloc(MC * sizeof(float));
        out[li] = (float *)malloc(MC * sizeof(float)), dx[li] = (float *)malloc(MC * sizeof(float));
        snprintf(n, sizeof n, "x%d", li);
        CHECK_OK(arwkv_st_read_f32(st, n, x[li], (int64_t)MC));
        snprintf(n, sizeof n, "dy%d", li);
        CHECK_OK(arwkv_st_read_f32(st, n, dy[li], (int64_t)MC));
        CHECK_OK(arwkv__tmix7_acts_create(be, &d, B, T, &acts[li]));
    }
    double worst_out = 0, worst_grad = 0;
    const char *worst_name = "";
    for (int li = 0; li < 2; li++) /* no work given: each call makes its own */
        CHECK_OK(arwkv__tmix7_forward(be, &L[li].l, li, &d, B, T, x[li], NULL, NULL, v_first, out[li], acts[li], NULL));
    for (int li = 0; li < 3; li++) {
        const char *n = li == 0 ? "out0" : li == 1 ? "out1" : "v_first";
        CHECK_OK(arwkv_st_read_f32(st, n, want, (int64_t)MC));
        double e = test_rel_err(li < 2 ? out[li] : v_first, want, MC);
        CHECK(e < 1e-5, "%s: %g", n, e);
        worst_out = fmax(worst_out, e);
    }
    for (int li = 1; li >= 0; li--)
        CHECK_OK(arwkv__tmix7_backward(be, &L[li].l, li, &d, B, T, x[li], v_first, acts[li], dy[li], dx[li], dv_first, NULL, NULL, NULL));
    for (int li = 0; li < 2; li++) {
        char n[96];
        for (int i = 0; i < P_COUNT; i++) {
            arwkv_param *p = &L[li].p[i];
            if (!L[li].val[i]) continue;
            snprintf(n, sizeof n, "grad.layer%d.%s", li, pname[i]);
            if (!arwkv_st_find(st, n)) { /* layer 0's v0, v1, v2 are unused: no gradient */
                int zero = 1;
                for (int64_t q = 0; q < p->numel; q++) zero &= p->grad[q] == 0;
                CHECK(zero, "%s has no reference gradient and should stay zero", n);
                continue;
            }
            float *g = (float *)malloc((size_t)p->numel * sizeof(float));
            CHECK_OK(arwkv_st_read_f32(st, n, g, p->numel));
            double e = test_rel_err(p->grad, g, (size_t)p->numel);
            CHECK(e < 1e-4, "%s: %g", n, e);
            if (e > worst_grad) worst_grad = e, worst_name = pname[i];
            free(g);
        }
        snprintf(n, sizeof n, "grad.x%d", li);
        CHECK_OK(arwkv_st_read_f32(st, n, want, (int64_t)MC));
        double e = test_rel_err(dx[li], want, MC);
        CHECK(e < 1e-4, "%s: %g", n, e);
        if (e > worst_grad) worst_grad = e, worst_name = li ? "x1" : "x0";
    }
    printf("    worst relative error: outputs %.2g, gradients %.2g (%s)\n", worst_out, worst_grad, worst_name);
    for (int li = 0; li < 2; li++) {
        tlayer_free(&L[li]);
        arwkv__tmix7_acts_free(be, acts[li]);
        free(x[li]), free(dy[li]), free(out[li]), free(dx[li]);
    }
    free(want), free(v_first), free(dv_first);
    arwkv_st_close(st);
    arwkv_backend_destroy(be);
}

/* ============================================================================================
   Modes: sequence = recurrent steps = chunks with carried state; chunked training
   ============================================================================================ */

/* Runs both layers over tokens [t0, t0+len) of every sequence, carrying the four states. */
typedef struct {
    arwkv_backend *be;
    tlayer *L;
    arwkv_tmix7_dims d;
    int B, T;
    const float *x[2];
    float *sh[2], *S[2];
    arwkv__tmix7_work *work;
} run_ctx;

static void run_span(run_ctx *c, int t0, int len, float *out[2], arwkv__tmix7_acts *acts[2], float *v_first) {
    int C = c->d.C;
    size_t n = (size_t)c->B * len * C;
    float *xs = (float *)malloc(n * sizeof(float)), *o = (float *)malloc(n * sizeof(float));
    for (int li = 0; li < 2; li++) {
        for (int b = 0; b < c->B; b++)
            memcpy(xs + (size_t)b * len * C, c->x[li] + ((size_t)b * c->T + t0) * C, (size_t)len * C * sizeof(float));
        CHECK_OK(arwkv__tmix7_forward(c->be, &c->L[li].l, li, &c->d, c->B, len, xs, c->sh[li], c->S[li], v_first, o,
                                      acts ? acts[li] : NULL, c->work));
        for (int b = 0; b < c->B; b++)
            memcpy(out[li] + ((size_t)b * c->T + t0) * C, o + (size_t)b * len * C, (size_t)len * C * sizeof(float));
    }
    free(xs), free(o);
}

TEST(sequence_equals_recurrent_equals_chunks) {
    arwkv_backend *be = make_backend(2);
    test_seed(21);
    int lengths[] = {1, 15, 16, 17, 33, 100};
    double worst_rec = 0, worst_chunk = 0;
    for (int gn = 0; gn <= 1; gn++) {
        arwkv_tmix7_dims d = make_dims(128, 16, 16, 8, 32, 1, gn);
        tlayer L[2];
        for (int li = 0; li < 2; li++) tlayer_init(&L[li], &d, random_values, &d, 0, 0);
        for (size_t li_ = 0; li_ < sizeof lengths / sizeof lengths[0]; li_++) {
            int B = 2, T = lengths[li_], C = d.C;
            size_t MC = (size_t)B * T * C, nsh = (size_t)B * C, ns = (size_t)B * d.H * d.N * d.N;
            float *x[2], *out[3][2], *sh[3][2], *S[3][2], *vf = (float *)malloc(MC * sizeof(float));
            for (int li = 0; li < 2; li++) {
                x[li] = rand_floats(MC, 1);
                float *sh0 = rand_floats(nsh, 1), *S0 = rand_floats(ns, 0.2f);
                for (int m = 0; m < 3; m++) {
                    out[m][li] = (float *)malloc(MC * sizeof(float));
                    sh[m][li] = (float *)malloc(nsh * sizeof(float)), S[m][li] = (float *)malloc(ns * sizeof(float));
                    memcpy(sh[m][li], sh0, nsh * sizeof(float));
                    memcpy(S[m][li], S0, ns * sizeof(float));
                }
                free(sh0), free(S0);
            }
            arwkv__tmix7_work *work = NULL; /* one workspace for every call, as a generator would keep */
            CHECK_OK(arwkv__tmix7_work_create(be, &d, B * T, 0, &work));
            /* mode 0: the whole sequence; 1: token by token; 2: chunks of 7, 16, 1, 16, ... tokens */
            for (int m = 0; m < 3; m++) {
                run_ctx c = {be, L, d, B, T, {x[0], x[1]}, {sh[m][0], sh[m][1]}, {S[m][0], S[m][1]}, work};
                int sizes[4] = {7, 16, 1, 16}, t = 0, q = 0;
                while (t < T) {
                    int len = m == 0 ? T : m == 1 ? 1 : sizes[q++ % 4];
                    if (len > T - t) len = T - t;
                    run_span(&c, t, len, out[m], NULL, vf);
                    t += len;
                }
            }
            arwkv__tmix7_work_free(be, work);
            for (int li = 0; li < 2; li++) {
                double er = test_rel_err(out[1][li], out[0][li], MC), ec = test_rel_err(out[2][li], out[0][li], MC);
                double sr = test_rel_err(S[1][li], S[0][li], ns), sc = test_rel_err(S[2][li], S[0][li], ns);
                CHECK(er < 1e-5 && sr < 1e-5, "gn %d T %d layer %d: recurrent out %g state %g", gn, T, li, er, sr);
                CHECK(ec < 1e-5 && sc < 1e-5, "gn %d T %d layer %d: chunks out %g state %g", gn, T, li, ec, sc);
                CHECK(memcmp(sh[1][li], sh[0][li], nsh * sizeof(float)) == 0 && memcmp(sh[2][li], sh[0][li], nsh * sizeof(float)) == 0,
                      "final shift states equal");
                worst_rec = fmax(worst_rec, fmax(er, sr)), worst_chunk = fmax(worst_chunk, fmax(ec, sc));
            }
            for (int li = 0; li < 2; li++) {
                free(x[li]);
                for (int m = 0; m < 3; m++) free(out[m][li]), free(sh[m][li]), free(S[m][li]);
            }
            free(vf);
        }
        for (int li = 0; li < 2; li++) tlayer_free(&L[li]);
    }
    printf("    worst relative difference to the whole sequence: recurrent %.2g, chunks %.2g (limit 1e-5)\n", worst_rec, worst_chunk);
    arwkv_backend_destroy(be);
}

/* Training over a sequence cut in two, with the states' gradients handed from the second part's
   backward to the first's, gives the whole sequence's gradients. */
TEST(chunked_training_equals_whole_sequence) {
    arwkv_backend *be = make_backend(2);
    test_seed(22);
    arwkv_tmix7_dims d = make_dims(128, 16, 16, 8, 32, 1, 1);
    int B = 2, T = 37, T1 = 20, C = d.C;
    size_t MC = (size_t)B * T * C, nsh = (size_t)B * C, ns = (size_t)B * d.H * d.N * d.N;
    tlayer L[2][2]; /* [run][layer]: run 0 whole, run 1 in two chunks */
    float *x[2], *dy[2], *grads_whole_dx[2], *dx_chunks[2];
    for (int li = 0; li < 2; li++) {
        unsigned long long s = 500 + li;
        for (int run = 0; run < 2; run++) {
            test_seed(s);
            tlayer_init(&L[run][li], &d, random_values, &d, 0, 1);
        }
        x[li] = rand_floats(MC, 1), dy[li] = rand_floats(MC, 1);
        grads_whole_dx[li] = (float *)calloc(MC, sizeof(float)), dx_chunks[li] = (float *)calloc(MC, sizeof(float));
    }
    /* whole */
    {
        arwkv__tmix7_acts *acts[2];
        float *vf = (float *)malloc(MC * sizeof(float)), *dvf = (float *)calloc(MC, sizeof(float)), *out = (float *)malloc(MC * sizeof(float));
        for (int li = 0; li < 2; li++) {
            CHECK_OK(arwkv__tmix7_acts_create(be, &d, B, T, &acts[li]));
            CHECK_OK(arwkv__tmix7_forward(be, &L[0][li].l, li, &d, B, T, x[li], NULL, NULL, vf, out, acts[li], NULL));
        }
        for (int li = 1; li >= 0; li--)
            CHECK_OK(arwkv__tmix7_backward(be, &L[0][li].l, li, &d, B, T, x[li], vf, acts[li], dy[li], grads_whole_dx[li], dvf, NULL,
                                           NULL, NULL));
        for (int li = 0; li < 2; li++) arwkv__tmix7_acts_free(be, acts[li]);
        free(vf), free(dvf), free(out);
    }
    /* two chunks: [0, T1) and [T1, T) with the states carried forward and their gradients back */
    {
        int t0[2] = {0, T1}, len[2] = {T1, T - T1};
        arwkv__tmix7_acts *acts[2][2];
        float *sh[2], *S[2], *dsh[2], *dS[2], *xs[2][2], *vf[2], *out = (float *)malloc(MC * sizeof(float));
        for (int li = 0; li < 2; li++) {
            sh[li] = (float *)calloc(nsh, sizeof(float)), S[li] = (float *)calloc(ns, sizeof(float));
            dsh[li] = (float *)calloc(nsh, sizeof(float)), dS[li] = (float *)calloc(ns, sizeof(float));
        }
        for (int ch = 0; ch < 2; ch++) {
            vf[ch] = (float *)malloc((size_t)B * len[ch] * C * sizeof(float));
            for (int li = 0; li < 2; li++) {
                xs[ch][li] = (float *)malloc((size_t)B * len[ch] * C * sizeof(float));
                for (int b = 0; b < B; b++)
                    memcpy(xs[ch][li] + (size_t)b * len[ch] * C, x[li] + ((size_t)b * T + t0[ch]) * C, (size_t)len[ch] * C * sizeof(float));
                CHECK_OK(arwkv__tmix7_acts_create(be, &d, B, len[ch], &acts[ch][li]));
                CHECK_OK(arwkv__tmix7_forward(be, &L[1][li].l, li, &d, B, len[ch], xs[ch][li], sh[li], S[li], vf[ch], out, acts[ch][li],
                                              NULL));
            }
        }
        for (int ch = 1; ch >= 0; ch--) {
            size_t n = (size_t)B * len[ch] * C;
            float *dys = (float *)malloc(n * sizeof(float)), *dxs = (float *)malloc(n * sizeof(float)), *dvf = (float *)calloc(n, sizeof(float));
            for (int li = 1; li >= 0; li--) {
                for (int b = 0; b < B; b++)
                    memcpy(dys + (size_t)b * len[ch] * C, dy[li] + ((size_t)b * T + t0[ch]) * C, (size_t)len[ch] * C * sizeof(float));
                CHECK_OK(arwkv__tmix7_backward(be, &L[1][li].l, li, &d, B, len[ch], xs[ch][li], vf[ch], acts[ch][li], dys, dxs, dvf,
                                               dsh[li], dS[li], NULL));
                for (int b = 0; b < B; b++)
                    memcpy(dx_chunks[li] + ((size_t)b * T + t0[ch]) * C, dxs + (size_t)b * len[ch] * C, (size_t)len[ch] * C * sizeof(float));
            }
            free(dys), free(dxs), free(dvf);
        }
        for (int li = 0; li < 2; li++) {
            for (int ch = 0; ch < 2; ch++) arwkv__tmix7_acts_free(be, acts[ch][li]), free(xs[ch][li]);
            free(sh[li]), free(S[li]), free(dsh[li]), free(dS[li]);
        }
        free(vf[0]), free(vf[1]), free(out);
    }
    double worst = 0;
    for (int li = 0; li < 2; li++) {
        double e = test_rel_err(dx_chunks[li], grads_whole_dx[li], MC);
        CHECK(e < 1e-5, "layer %d dx %g", li, e);
        worst = fmax(worst, e);
        for (int i = 0; i < P_COUNT; i++) {
            if (!L[0][li].p[i].grad) continue;
            e = test_rel_err(L[1][li].p[i].grad, L[0][li].p[i].grad, (size_t)L[0][li].p[i].numel);
            CHECK(e < 1e-5, "layer %d %s: %g", li, pname[i], e);
            worst = fmax(worst, e);
        }
    }
    printf("    worst relative difference of gradients, two chunks vs whole: %.2g\n", worst);
    /* a later layer may hold v_first constant (dv_first NULL): its own gradients do not change */
    {
        arwkv__tmix7_acts *acts = NULL;
        float *vf = rand_floats(MC, 1), *out = (float *)malloc(MC * sizeof(float)), *dvf = (float *)calloc(MC, sizeof(float));
        float *keep = (float *)malloc((size_t)L[0][1].p[P_V2].numel * sizeof(float));
        CHECK_OK(arwkv__tmix7_acts_create(be, &d, B, T, &acts));
        CHECK_OK(arwkv__tmix7_forward(be, &L[0][1].l, 1, &d, B, T, x[1], NULL, NULL, vf, out, acts, NULL));
        tlayer_zero_grads(&L[0][1]);
        CHECK_OK(arwkv__tmix7_backward(be, &L[0][1].l, 1, &d, B, T, x[1], vf, acts, dy[1], NULL, dvf, NULL, NULL, NULL));
        memcpy(keep, L[0][1].p[P_V2].grad, (size_t)L[0][1].p[P_V2].numel * sizeof(float));
        tlayer_zero_grads(&L[0][1]);
        CHECK_OK(arwkv__tmix7_backward(be, &L[0][1].l, 1, &d, B, T, x[1], vf, acts, dy[1], NULL, NULL, NULL, NULL, NULL));
        CHECK(memcmp(keep, L[0][1].p[P_V2].grad, (size_t)L[0][1].p[P_V2].numel * sizeof(float)) == 0, "v2 gradient without dv_first");
        arwkv__tmix7_acts_free(be, acts);
        free(vf), free(out), free(dvf), free(keep);
    }
    for (int li = 0; li < 2; li++) {
        tlayer_free(&L[0][li]), tlayer_free(&L[1][li]);
        free(x[li]), free(dy[li]), free(grads_whole_dx[li]), free(dx_chunks[li]);
    }
    arwkv_backend_destroy(be);
}

/* ============================================================================================
   Threads and errors
   ============================================================================================ */

TEST(one_thread_equals_two_bit_for_bit) {
    arwkv_tmix7_dims d = make_dims(192, 16, 16, 8, 32, 1, 1);
    int B = 3, T = 37, C = d.C;
    size_t MC = (size_t)B * T * C, ns = (size_t)B * d.H * d.N * d.N;
    float *res_out[2][2], *res_dx[2][2], *res_S[2][2];
    tlayer L[2][2];
    test_seed(31);
    float *x[2], *dy[2];
    for (int li = 0; li < 2; li++) x[li] = rand_floats(MC, 1), dy[li] = rand_floats(MC, 1);
    for (int run = 0; run < 2; run++) {
        arwkv_backend *be = make_backend(run + 1);
        float *vf = (float *)malloc(MC * sizeof(float)), *dvf = (float *)calloc(MC, sizeof(float));
        arwkv__tmix7_acts *acts[2];
        for (int li = 0; li < 2; li++) {
            test_seed(40 + li);
            tlayer_init(&L[run][li], &d, random_values, &d, 0, 1);
            res_out[run][li] = (float *)malloc(MC * sizeof(float)), res_dx[run][li] = (float *)malloc(MC * sizeof(float));
            res_S[run][li] = (float *)calloc(ns, sizeof(float));
            CHECK_OK(arwkv__tmix7_acts_create(be, &d, B, T, &acts[li]));
            CHECK_OK(arwkv__tmix7_forward(be, &L[run][li].l, li, &d, B, T, x[li], NULL, res_S[run][li], vf, res_out[run][li], acts[li], NULL));
        }
        for (int li = 1; li >= 0; li--)
            CHECK_OK(arwkv__tmix7_backward(be, &L[run][li].l, li, &d, B, T, x[li], vf, acts[li], dy[li], res_dx[run][li], dvf, NULL,
                                           NULL, NULL));
        for (int li = 0; li < 2; li++) arwkv__tmix7_acts_free(be, acts[li]);
        free(vf), free(dvf);
        arwkv_backend_destroy(be);
    }
    for (int li = 0; li < 2; li++) {
        CHECK(memcmp(res_out[0][li], res_out[1][li], MC * sizeof(float)) == 0, "layer %d out", li);
        CHECK(memcmp(res_S[0][li], res_S[1][li], ns * sizeof(float)) == 0, "layer %d state", li);
        CHECK(memcmp(res_dx[0][li], res_dx[1][li], MC * sizeof(float)) == 0, "layer %d dx", li);
        for (int i = 0; i < P_COUNT; i++)
            if (L[0][li].p[i].grad)
                CHECK(memcmp(L[0][li].p[i].grad, L[1][li].p[i].grad, (size_t)L[0][li].p[i].numel * sizeof(float)) == 0, "layer %d %s",
                      li, pname[i]);
        for (int run = 0; run < 2; run++) {
            tlayer_free(&L[run][li]);
            free(res_out[run][li]), free(res_dx[run][li]), free(res_S[run][li]);
        }
        free(x[li]), free(dy[li]);
    }
}

TEST(bad_layers_and_calls_are_refused) {
    arwkv_backend *be = make_backend(1);
    test_seed(51);
    arwkv_config cfg;
    memset(&cfg, 0, sizeof cfg);
    cfg.hidden_size = 100, cfg.head_size = 64, cfg.head_size_divisor = 8;
    arwkv_tmix7_dims d;
    CHECK(arwkv__tmix7_dims(&cfg, 8, 8, 8, 0, &d) == ARWKV_ERR_SHAPE, "width not a multiple of the head size");
    cfg.hidden_size = 128, cfg.wkv_has_gate = 1;
    CHECK(arwkv__tmix7_dims(&cfg, 8, 8, 8, 0, &d) == ARWKV_ERR_SHAPE, "gate without a rank");
    d = make_dims(128, 8, 8, 8, 8, 1, 0);
    tlayer L;
    tlayer_init(&L, &d, random_values, &d, 0, 0);
    float *x = rand_floats(128 * 4, 1), *out = (float *)malloc(128 * 4 * sizeof(float)), *vf = (float *)malloc(128 * 4 * sizeof(float));
    CHECK_OK(arwkv__tmix7_forward(be, &L.l, 0, &d, 1, 4, x, NULL, NULL, vf, out, NULL, NULL));
    CHECK(arwkv__tmix7_forward(be, &L.l, 1, &d, 1, 4, x, NULL, NULL, NULL, out, NULL, NULL) == ARWKV_ERR_INVALID_ARGUMENT,
          "a later layer without v_first");
    arwkv_param *keep = L.l.key;
    L.l.key = NULL;
    CHECK(arwkv__tmix7_forward(be, &L.l, 0, &d, 1, 4, x, NULL, NULL, vf, out, NULL, NULL) == ARWKV_ERR_NOT_FOUND, "missing key");
    CHECK(strstr(arwkv_last_error(), "key.weight") != NULL, "the error names the tensor: %s", arwkv_last_error());
    L.l.key = keep;
    L.p[P_W1].shape[1] = 9;
    CHECK(arwkv__tmix7_forward(be, &L.l, 0, &d, 1, 4, x, NULL, NULL, vf, out, NULL, NULL) == ARWKV_ERR_SHAPE, "w1 of another rank");
    L.p[P_W1].shape[1] = 8;
    L.p[P_WR].trainable = 1; /* trainable without a gradient buffer */
    CHECK(arwkv__tmix7_forward(be, &L.l, 0, &d, 1, 4, x, NULL, NULL, vf, out, NULL, NULL) == ARWKV_ERR_INVALID_ARGUMENT,
          "trainable without gradient");
    L.p[P_WR].trainable = 0;
    arwkv__tmix7_acts *acts = NULL;
    arwkv__tmix7_work *work = NULL;
    CHECK_OK(arwkv__tmix7_acts_create(be, &d, 1, 2, &acts));
    CHECK(arwkv__tmix7_forward(be, &L.l, 0, &d, 1, 4, x, NULL, NULL, vf, out, acts, NULL) == ARWKV_ERR_INVALID_ARGUMENT,
          "activations too small");
    CHECK_OK(arwkv__tmix7_work_create(be, &d, 2, 0, &work));
    CHECK(arwkv__tmix7_forward(be, &L.l, 0, &d, 1, 4, x, NULL, NULL, vf, out, NULL, work) == ARWKV_ERR_INVALID_ARGUMENT,
          "workspace too small");
    CHECK_OK(arwkv__tmix7_forward(be, &L.l, 0, &d, 1, 2, x, NULL, NULL, vf, out, acts, work));
    CHECK(arwkv__tmix7_backward(be, &L.l, 0, &d, 1, 2, x, NULL, acts, out, NULL, NULL, NULL, NULL, work) == ARWKV_ERR_INVALID_ARGUMENT,
          "a forward-only workspace for a backward");
    CHECK(arwkv__tmix7_backward(be, &L.l, 0, &d, 1, 3, x, NULL, acts, out, NULL, NULL, NULL, NULL, NULL) == ARWKV_ERR_INVALID_ARGUMENT,
          "a backward of another shape than the forward");
    arwkv__tmix7_acts_free(be, acts);
    arwkv__tmix7_work_free(be, work);
    tlayer_free(&L);
    free(x), free(out), free(vf);
    arwkv_backend_destroy(be);
}

int main(void) {
    quick = getenv("ARWKV_TEST_QUICK") && atoi(getenv("ARWKV_TEST_QUICK"));
    RUN(lerp_backward_matches_finite_differences);
    RUN(lora_activations_backward);
    RUN(prepare_backward_matches_finite_differences);
    RUN(prepare_sigmoid_and_decay_rows);
    RUN(wkv7_backward_matches_finite_differences);
    RUN(finish_backward_matches_finite_differences);
    RUN(reference_two_layers);
    RUN(block_backward_matches_finite_differences);
    RUN(sequence_equals_recurrent_equals_chunks);
    RUN(chunked_training_equals_whole_sequence);
    RUN(one_thread_equals_two_bit_for_bit);
    RUN(bad_layers_and_calls_are_refused);
    return test_summary("rwkv7");
}
