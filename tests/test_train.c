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

TEST(vectorized_exp_accuracy) {
    enum { N = 100003 };
    static float x[N], y[N];
    for (int i = 0; i < N; i++) x[i] = -100.0f + 100.0f * (float)i / (N - 1); /* [-100, 0] with the tail */
    double sum = arwkv__exp_array(y, x, 0.0f, 1.0f, N), want_sum = 0, worst = 0;
    for (int i = 0; i < N; i++) {
        double want = exp((double)x[i]);
        want_sum += want;
        if (x[i] > -87) worst = fmax(worst, fabs(y[i] - want) / want);
        else CHECK(y[i] == 0 || fabs(y[i] - want) < 1e-37, "underflow at %g: %g", x[i], y[i]);
    }
    CHECK(worst < 3e-7, "relative error %g", worst);
    CHECK(fabs(sum - want_sum) / want_sum < 1e-6, "sum %g vs %g", sum, want_sum);
    /* shift and scale: exp((x - m) / tau) */
    arwkv__exp_array(y, x, -50.0f, 0.5f, 9);
    CHECK(fabs(y[3] - exp((x[3] + 50.0) * 0.5)) / exp((x[3] + 50.0) * 0.5) < 3e-7, "shifted");
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

/* ---- schedule ------------------------------------------------------------------------------------ */

TEST(schedules) {
    arwkv_train_options o;
    arwkv_train_options_default(&o, 1);
    o.steps = 1050;
    CHECK(fabsf(arwkv_lr_at(&o, 1) - 1e-4f * (0.01f + 0.99f / 50)) < 1e-12f, "warm-up starts near lr/100");
    CHECK(fabsf(arwkv_lr_at(&o, 50) - 1e-4f) < 1e-12f, "warm-up ends at lr");
    CHECK(fabsf(arwkv_lr_at(&o, 550) - (float)(1e-4 * pow(0.1, 0.5))) < 1e-10f, "exponential half way: %g", arwkv_lr_at(&o, 550));
    CHECK(fabsf(arwkv_lr_at(&o, 1050) - 1e-5f) < 1e-11f, "exponential end");
    o.schedule = ARWKV_SCHEDULE_COSINE;
    CHECK(fabsf(arwkv_lr_at(&o, 550) - 5.5e-5f) < 1e-10f, "cosine half way: %g", arwkv_lr_at(&o, 550));
    CHECK(fabsf(arwkv_lr_at(&o, 1050) - 1e-5f) < 1e-11f && fabsf(arwkv_lr_at(&o, 5000) - 1e-5f) < 1e-11f, "cosine end, and past it");
}

/* ---- data ------------------------------------------------------------------------------------------ */

TEST(dataset_packing_and_order) {
    arwkv_dataset d;
    arwkv_dataset_init(&d);
    int32_t ids[1001];
    for (int i = 0; i < 1001; i++) ids[i] = i;
    CHECK_OK(arwkv_dataset_append(&d, ids, NULL, 500));
    CHECK_OK(arwkv_dataset_append(&d, ids + 500, NULL, 501));
    CHECK_OK(arwkv_dataset_pack(&d, 100, 7));
    CHECK(d.n_seqs == 10, "1001 tokens make 10 windows of 100+1");
    int32_t in[100], tg[100];
    int seen[10] = {0};
    for (int k = 0; k < 10; k++) {
        arwkv_dataset_next(&d, in, tg);
        CHECK(in[0] % 100 == 0 && tg[99] == in[99] + 1, "window %d: targets are the next tokens", k);
        seen[in[0] / 100]++;
    }
    int all = 1;
    for (int k = 0; k < 10; k++) all &= seen[k] == 1;
    CHECK(all, "an epoch visits every window once");
    arwkv_dataset_next(&d, in, tg);
    CHECK(d.epoch == 1 && d.pos == 1, "then a new epoch begins");
    /* the same seed gives the same order */
    arwkv_dataset e;
    arwkv_dataset_init(&e);
    CHECK_OK(arwkv_dataset_append(&e, ids, NULL, 1001));
    CHECK_OK(arwkv_dataset_pack(&e, 100, 7));
    arwkv_dataset_pack(&d, 100, 7);
    CHECK(memcmp(d.order, e.order, 10 * sizeof(uint32_t)) == 0 && arwkv_dataset_hash(&d) == arwkv_dataset_hash(&e), "deterministic");
    /* masks: only marked tokens are targets */
    arwkv_dataset m;
    arwkv_dataset_init(&m);
    uint8_t mask[11] = {0, 0, 0, 1, 1, 0, 0, 1, 0, 0, 0};
    CHECK_OK(arwkv_dataset_append(&m, ids, mask, 11));
    CHECK_OK(arwkv_dataset_pack(&m, 10, 1));
    arwkv_dataset_next(&m, in, tg);
    CHECK(tg[0] == -1 && tg[1] == -1 && tg[2] == 3 && tg[3] == 4 && tg[4] == -1 && tg[6] == 7, "masked targets");
    CHECK(arwkv_dataset_append(&m, ids, NULL, 5) == ARWKV_ERR_INVALID_ARGUMENT, "no mixing of masked and unmasked documents");
    arwkv_dataset small;
    arwkv_dataset_init(&small);
    arwkv_dataset_append(&small, ids, NULL, 10);
    CHECK(arwkv_dataset_pack(&small, 10, 1) == ARWKV_ERR_INVALID_ARGUMENT && strstr(arwkv_last_error(), "10 tokens"), "too little data");
    arwkv_dataset_free(&d), arwkv_dataset_free(&e), arwkv_dataset_free(&m), arwkv_dataset_free(&small);
}

/* ---- checkpoints ------------------------------------------------------------------------------------ */

TEST(checkpoint_roundtrip) {
    arwkv_model *teacher, *s;
    CHECK_OK(arwkv_model_load("models/qwen2-code-tiny", be, &teacher));
    if (!teacher) return;
    CHECK_OK(arwkv_student_create(teacher, NULL, &s));
    CHECK_OK(arwkv__make_trainable(s, 2, 1));
    int n_train = 0;
    for (int i = 0; i < s->n_params; i++) n_train += s->params[i].trainable;
    CHECK(s->layers[0].mlp_up->trainable == 0 && !s->layers[0].mlp_up->grad && s->embed->trainable && s->embed->dtype == ARWKV_F32,
          "stage 2 with frozen MLPs: %d trainable", n_train);
    /* fill the moments and weights with something recognisable */
    test_seed(4);
    for (int i = 0; i < s->n_params; i++) {
        arwkv_param *p = &s->params[i];
        if (!p->trainable) continue;
        test_fill_randn(p->adam_m, (size_t)p->numel, 1);
        test_fill_randn(p->adam_v, (size_t)p->numel, 1);
        if (p->numel < 100000) test_fill_randn((float *)p->data, (size_t)p->numel, 1);
    }
    system("rm -rf build/test_ckpt");
    arwkv__train_state st = {17, 2, 5, 99, 0xabcdef0123456789ull, 2, 64, 3};
    CHECK_OK(arwkv__checkpoint_save(s, &st, "build/test_ckpt", "models/qwen2-code-tiny"));
    st.step = 18;
    CHECK_OK(arwkv__checkpoint_save(s, &st, "build/test_ckpt", "models/qwen2-code-tiny"));
    CHECK(!test_file_exists("build/test_ckpt/checkpoints/step-00000017/config.json"), "the replaced checkpoint is removed");
    char *dir;
    CHECK_OK(arwkv__checkpoint_latest("build/test_ckpt", &dir));
    CHECK(dir && strstr(dir, "step-00000018"), "latest names the new one");
    arwkv_model *r = NULL;
    if (dir) CHECK_OK(arwkv_model_load(dir, be, &r));
    if (r) {
        CHECK_OK(arwkv__make_trainable(r, 2, 1));
        arwkv__train_state back;
        memset(&back, 0, sizeof back);
        CHECK_OK(arwkv__checkpoint_load_state(r, dir, &back));
        CHECK(back.step == 18 && back.epoch == 2 && back.pos == 5 && back.seed == 99 && back.data_hash == st.data_hash &&
                  back.stage == 2 && back.seq_len == 64 && back.batch == 3, "trainer state");
        int same = 1;
        for (int i = 0; i < s->n_params; i++) {
            arwkv_param *p = &s->params[i], *q = arwkv_model_param(r, p->name);
            size_t bytes = (size_t)p->numel * arwkv_dtype_size(p->dtype);
            same &= q && q->dtype == p->dtype && memcmp(p->data, q->data, bytes) == 0;
            if (p->trainable) same &= memcmp(p->adam_m, q->adam_m, bytes) == 0 && memcmp(p->adam_v, q->adam_v, bytes) == 0;
        }
        CHECK(same, "weights and moments bit for bit");
        arwkv_model_free(r);
    }
    free(dir);
    CHECK(arwkv__checkpoint_latest("build/nonexistent", &dir) == ARWKV_ERR_NOT_FOUND && strstr(arwkv_last_error(), "--resume"), "nothing to resume");
    arwkv_model_free(s);
    arwkv_model_free(teacher);
}

int main(void) {
    if (arwkv_backend_cpu(2, &be) != ARWKV_OK) {
        printf("FAIL backend: %s\n", arwkv_last_error());
        return 1;
    }
    RUN(align_losses_match_float64);
    RUN(kl_and_ce_match_float64);
    RUN(vectorized_exp_accuracy);
    RUN(adamw_matches_float64);
    RUN(schedules);
    RUN(dataset_packing_and_order);
    RUN(checkpoint_roundtrip);
    arwkv_backend_destroy(be);
    return test_summary("train");
}
