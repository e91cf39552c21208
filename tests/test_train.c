/* Training: losses, optimizer, schedules, checkpoints, and the stages end to end. Every gradient is
   checked against float64 finite differences of an independent float64 implementation. */
#define ARWKV_IMPLEMENTATION
#include "arwkv.h"
#include "test.h"

static arwkv_backend *be;

/* ---- stage-1 alignment losses ------------------------------------------------------------------ */

static double align_ref(arwkv_align_kind kind, const double *o, const double *a, int C) {
    double oa = 0, oo = 0, aa = 0, dd = 0;
    for (int i = 0; i < C; i++) oa += o[i] * a[i], oo += o[i] * o[i], aa += a[i] * a[i], dd += (o[i] - a[i]) * (o[i] - a[i]);
    if (kind == ARWKV_ALIGN_L2) return sqrt(dd) / sqrt((double)C);
    if (kind == ARWKV_ALIGN_MSE) return dd / C;
    return 1 - oa / (sqrt(oo) * sqrt(aa));
}

TEST(align_losses_match_float64) {
    enum { R = 5, C = 37 };
    float o[R * C], a[R * C], loss[R], g[R * C];
    test_seed(3);
    test_fill_randn(o, R * C, 1);
    test_fill_randn(a, R * C, 1);
    for (int kind = 0; kind < 3; kind++) {
        float scale = 0.25f;
        CHECK_OK(be->loss->align(be, (arwkv_align_kind)kind, o, a, R, C, scale, loss, g));
        double worst_l = 0, worst_g = 0, gmax = 0;
        for (int r = 0; r < R; r++) {
            double od[C], ad[C];
            for (int i = 0; i < C; i++) od[i] = o[r * C + i], ad[i] = a[r * C + i];
            double ref = align_ref((arwkv_align_kind)kind, od, ad, C);
            worst_l = fmax(worst_l, fabs(loss[r] - ref) / fabs(ref));
            for (int i = 0; i < C; i++) {
                double h = 1e-6, keep = od[i];
                od[i] = keep + h;
                double up = align_ref((arwkv_align_kind)kind, od, ad, C);
                od[i] = keep - h;
                double dn = align_ref((arwkv_align_kind)kind, od, ad, C);
                od[i] = keep;
                double fd = scale * (up - dn) / (2 * h);
                worst_g = fmax(worst_g, fabs(g[r * C + i] - fd));
                gmax = fmax(gmax, fabs(fd));
            }
        }
        CHECK(worst_l < 1e-6, "kind %d: loss error %g", kind, worst_l);
        CHECK(worst_g / gmax < 1e-5, "kind %d: gradient error %g of %g", kind, worst_g, gmax);
    }
    /* identical rows: the L2 loss is 0 and its (sub)gradient is 0, not NaN */
    CHECK_OK(be->loss->align(be, ARWKV_ALIGN_L2, a, a, R, C, 1, loss, g));
    CHECK(loss[0] == 0 && g[0] == 0 && !isnan(g[1]), "zero difference");
}

/* ---- KL and cross-entropy over logits ------------------------------------------------------------ */

static double logits_ref(const double *s, const double *t, int label, int V, double tau, double klw, double cew) {
    double mt = -1e300, ms = -1e300, ms1 = -1e300;
    for (int i = 0; i < V; i++) mt = fmax(mt, t[i] / tau), ms = fmax(ms, s[i] / tau), ms1 = fmax(ms1, s[i]);
    double zt = 0, zs = 0, zs1 = 0;
    for (int i = 0; i < V; i++) zt += exp(t[i] / tau - mt), zs += exp(s[i] / tau - ms), zs1 += exp(s[i] - ms1);
    double kl = 0;
    for (int i = 0; i < V; i++) {
        double lp = t[i] / tau - mt - log(zt), lq = s[i] / tau - ms - log(zs);
        kl += exp(lp) * (lp - lq);
    }
    double ce = label >= 0 ? -(s[label] - ms1 - log(zs1)) : 0;
    return klw * tau * tau * kl + cew * ce;
}

TEST(kl_and_ce_match_float64) {
    enum { R = 4, V = 301 };
    static float s[R * V], s0[R * V], t[R * V], kl[R], ce[R];
    int32_t labels[R] = {3, -1, 300, 0};
    test_seed(5);
    test_fill_randn(s0, R * V, 3);
    test_fill_randn(t, R * V, 3);
    float taus[2] = {1.0f, 2.0f};
    for (int k = 0; k < 2; k++) {
        float tau = taus[k], klw = 1.0f, cew = 0.5f, scale = 1.0f / R;
        memcpy(s, s0, sizeof s);
        CHECK_OK(be->loss->logits_loss(be, s, t, labels, R, V, tau, klw, cew, scale, kl, ce));
        double worst = 0, gmax = 0, worst_loss = 0;
        for (int r = 0; r < R; r++) {
            static double sd[V], td[V];
            for (int i = 0; i < V; i++) sd[i] = s0[r * V + i], td[i] = t[r * V + i];
            double want_kl = logits_ref(sd, td, -1, V, tau, 1, 0), want_ce = logits_ref(sd, td, labels[r], V, tau, 0, 1);
            worst_loss = fmax(worst_loss, fabs(kl[r] - want_kl) / (1e-6 + want_kl));
            if (labels[r] >= 0) worst_loss = fmax(worst_loss, fabs(ce[r] - want_ce) / want_ce);
            for (int i = 0; i < V; i += 7) {
                double h = 1e-5, keep = sd[i];
                sd[i] = keep + h;
                double up = logits_ref(sd, td, labels[r], V, tau, klw, cew);
                sd[i] = keep - h;
                double dn = logits_ref(sd, td, labels[r], V, tau, klw, cew);
                sd[i] = keep;
                double fd = scale * (up - dn) / (2 * h);
                worst = fmax(worst, fabs(s[r * V + i] - fd));
                gmax = fmax(gmax, fabs(fd));
            }
        }
        CHECK(worst_loss < 1e-5, "tau %g: loss error %g", tau, worst_loss);
        CHECK(worst / gmax < 1e-4, "tau %g: gradient error %g of %g", tau, worst, gmax);
    }
    /* teacher equal to student: KL is zero, gradient zero */
    memcpy(s, t, sizeof s);
    CHECK_OK(be->loss->logits_loss(be, s, t, NULL, R, V, 1.0f, 1.0f, 0.0f, 1.0f, kl, NULL));
    float gm = 0;
    for (int i = 0; i < R * V; i++) gm = fmaxf(gm, fabsf(s[i]));
    CHECK(fabsf(kl[0]) < 1e-6f && gm < 1e-7f, "KL(p||p) = %g, |grad| %g", kl[0], gm);
    CHECK(be->loss->logits_loss(be, s, t, NULL, R, V, 0.0f, 1, 0, 1, kl, NULL) == ARWKV_ERR_INVALID_ARGUMENT, "tau 0 refused");
}

/* ---- AdamW --------------------------------------------------------------------------------------- */

TEST(adamw_matches_float64) {
    enum { N = 1000 };
    static float p[N], g[N], m[N], v[N];
    static double pd[N], md[N], vd[N];
    test_seed(9);
    test_fill_randn(p, N, 1);
    for (int i = 0; i < N; i++) pd[i] = p[i], md[i] = vd[i] = 0, m[i] = v[i] = 0;
    double lr = 1e-2, b1 = 0.9, b2 = 0.95, eps = 1e-8, wd = 0.1;
    for (int step = 1; step <= 5; step++) {
        test_fill_randn(g, N, 1);
        CHECK_OK(be->optim->adamw(be, p, g, m, v, N, (float)lr, (float)b1, (float)b2, (float)eps, (float)wd, step));
        for (int i = 0; i < N; i++) {
            md[i] = b1 * md[i] + (1 - b1) * g[i];
            vd[i] = b2 * vd[i] + (1 - b2) * (double)g[i] * g[i];
            double mh = md[i] / (1 - pow(b1, step)), vh = vd[i] / (1 - pow(b2, step));
            pd[i] -= lr * (mh / (sqrt(vh) + eps) + wd * pd[i]);
        }
    }
    double worst = 0;
    for (int i = 0; i < N; i++) worst = fmax(worst, fabs(p[i] - pd[i]));
    CHECK(worst < 1e-5, "AdamW after 5 steps: %g", worst);
    float ss;
    CHECK_OK(be->optim->sumsq(be, g, N, &ss));
    double want = 0;
    for (int i = 0; i < N; i++) want += (double)g[i] * g[i];
    CHECK(fabs(ss - want) / want < 1e-6, "sum of squares");
    CHECK_OK(be->optim->scale(be, g, 0.5f, N));
    CHECK_OK(be->optim->sumsq(be, g, N, &ss));
    CHECK(fabs(ss - want / 4) / want < 1e-6, "scale");
}

int main(void) {
    if (arwkv_backend_cpu(2, &be) != ARWKV_OK) {
        printf("FAIL backend: %s\n", arwkv_last_error());
        return 1;
    }
    RUN(align_losses_match_float64);
    RUN(kl_and_ce_match_float64);
    RUN(adamw_matches_float64);
    arwkv_backend_destroy(be);
    return test_summary("train");
}
