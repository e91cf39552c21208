/* Benchmarks of this area; included by tools/bench.c.

   The RWKV-7 time mix alone (one layer, random weights, fp32, all threads):
     - sequence mode over B*T = 2048 tokens: forward, and forward + backward, in tokens/s, through
       the time-mix table (arwkv__tmix_family) as the model and trainer call it, with the share of
       the time spent in the WKV7 recurrence (its ops timed on their own, on inputs of the same size);
     - recurrent mode: one token of one sequence from a state, in microseconds.
   At C = 128 (the bundled teacher's width) and C = 896 (Qwen2.5-0.5B), LoRA ranks 64/64/32/128 as
   in ARWKV-7B. */

typedef struct bench_tmix7 {
    arwkv_tmix7_dims d;
    arwkv_param p[26];
    arwkv_layer l;
} bench_tmix7;

static unsigned long long bench__rng = 0x2545F4914F6CDD1Dull;
static float bench_uniform(void) { /* [-1, 1) */
    bench__rng ^= bench__rng >> 12, bench__rng ^= bench__rng << 25, bench__rng ^= bench__rng >> 27;
    return (float)((bench__rng * 2685821657736338717ull) >> 40) / 8388608.0f - 1.0f;
}
static float *bench_floats(size_t n, float lo, float hi) {
    float *x = (float *)malloc((n ? n : 1) * sizeof(float));
    for (size_t i = 0; x && i < n; i++) x[i] = lo + (hi - lo) * 0.5f * (bench_uniform() + 1.0f);
    return x;
}

/* One trainable layer with plausible values (decays over (0.55, 1), small LoRAs). */
static void bench_tmix7_layer_init(bench_tmix7 *b, const arwkv_tmix7_dims *d) {
    memset(b, 0, sizeof *b);
    b->d = *d;
    int C = d->C;
    struct { arwkv_param **field; const char *name; int rows, cols; float lo, hi; } t[] = {
        {&b->l.x_r, "x_r", C, 0, 0, 1}, {&b->l.x_w, "x_w", C, 0, 0, 1}, {&b->l.x_k, "x_k", C, 0, 0, 1},
        {&b->l.x_v, "x_v", C, 0, 0, 1}, {&b->l.x_a, "x_a", C, 0, 0, 1}, {&b->l.x_g, "x_g", C, 0, 0, 1},
        {&b->l.w0, "w0", C, 0, -4, 1}, {&b->l.w1, "w1", C, d->rank_w, -0.1f, 0.1f}, {&b->l.w2, "w2", d->rank_w, C, -0.1f, 0.1f},
        {&b->l.a0, "a0", C, 0, -1, 1}, {&b->l.a1, "a1", C, d->rank_a, -0.1f, 0.1f}, {&b->l.a2, "a2", d->rank_a, C, -0.1f, 0.1f},
        {&b->l.v0, "v0", C, 0, -1, 1}, {&b->l.v1, "v1", C, d->rank_v, -0.1f, 0.1f}, {&b->l.v2, "v2", d->rank_v, C, -0.1f, 0.1f},
        {&b->l.g1, "g1", C, d->rank_g, -0.1f, 0.1f}, {&b->l.g2, "g2", d->rank_g, C, -0.1f, 0.1f},
        {&b->l.k_k, "k_k", C, 0, 0.7f, 1}, {&b->l.k_a, "k_a", C, 0, 0.8f, 1.2f}, {&b->l.r_k, "r_k", C, 0, -0.3f, 0.3f},
        {&b->l.receptance, "receptance.weight", C, C, -0.05f, 0.05f}, {&b->l.key, "key.weight", C, C, -0.05f, 0.05f},
        {&b->l.value, "value.weight", C, C, -0.05f, 0.05f}, {&b->l.output, "output.weight", C, C, -0.05f, 0.05f},
        {&b->l.ln_x_w, "ln_x.weight", C, 0, 0.8f, 1.2f}, {&b->l.ln_x_b, "ln_x.bias", C, 0, -0.1f, 0.1f},
    };
    for (int i = 0; i < 26; i++) {
        arwkv_param *p = &b->p[i];
        snprintf(p->name, sizeof p->name, "%s", t[i].name);
        p->ndim = t[i].cols ? 2 : 1;
        p->shape[0] = t[i].rows, p->shape[1] = t[i].cols;
        p->numel = (int64_t)t[i].rows * (t[i].cols ? t[i].cols : 1);
        p->dtype = ARWKV_F32;
        p->data = bench_floats((size_t)p->numel, t[i].lo, t[i].hi);
        p->grad = (float *)calloc((size_t)p->numel, sizeof(float));
        p->trainable = 1;
        *t[i].field = p;
    }
}
static void bench_tmix7_layer_free(bench_tmix7 *b) {
    for (int i = 0; i < 26; i++) free(b->p[i].data), free(b->p[i].grad);
}

/* The dimensions of an upstream-shaped time mix of width C (head size 64, LoRA ranks 64/64/32/128,
   gate) and a layer of random parameters for it. */
static arwkv_result bench_tmix7_setup(int C, arwkv_tmix7_dims *d, bench_tmix7 *L) {
    arwkv_config cfg;
    memset(&cfg, 0, sizeof cfg);
    cfg.hidden_size = C, cfg.head_size = 64, cfg.head_size_divisor = 8, cfg.wkv_has_gate = 1;
    arwkv_result r = arwkv__tmix7_dims(&cfg, 64, 64, 32, 128, d);
    if (r == ARWKV_OK) bench_tmix7_layer_init(L, d);
    return r;
}

/* The WKV7 recurrence alone, forward and backward, on random inputs of the sizes of one call: the
   time it takes does not depend on the values, so this measures its share of the time mix. */
static arwkv_result bench_wkv7_alone(arwkv_backend *be, const arwkv_tmix7_dims *d, int B, int T, double *t_fwd, double *t_bwd) {
    size_t MC = (size_t)B * T * d->C, n_ckpt = (size_t)B * d->H * ((T + ARWKV_WKV7_CHUNK - 1) / ARWKV_WKV7_CHUNK) * d->N * d->N;
    float *r = bench_floats(MC, -1, 1), *decay = bench_floats(MC, 0.55f, 1), *k = bench_floats(MC, -1, 1);
    float *v = bench_floats(MC, -1, 1), *a = bench_floats(MC, -0.1f, 0.1f), *b = bench_floats(MC, -0.1f, 0.1f);
    float *y = bench_floats(MC, 0, 0), *dy = bench_floats(MC, -1, 1), *ckpt = bench_floats(n_ckpt, 0, 0);
    float *dr = bench_floats(MC, 0, 0), *dd = bench_floats(MC, 0, 0), *dk = bench_floats(MC, 0, 0), *dv = bench_floats(MC, 0, 0);
    float *da = bench_floats(MC, 0, 0), *db = bench_floats(MC, 0, 0);
    double t0 = bench_now();
    arwkv_result res = be->rwkv7->wkv7_forward(be, B, T, d->H, d->N, r, decay, k, v, a, b, y, NULL, ckpt);
    double t1 = bench_now();
    if (res == ARWKV_OK) res = be->rwkv7->wkv7_backward(be, B, T, d->H, d->N, r, decay, k, v, a, b, dy, ckpt, NULL, dr, dd, dk, dv, da, db);
    double t2 = bench_now();
    *t_fwd = t1 - t0, *t_bwd = t2 - t1;
    free(r), free(decay), free(k), free(v), free(a), free(b), free(y), free(dy), free(ckpt);
    free(dr), free(dd), free(dk), free(dv), free(da), free(db);
    return res;
}

/* Forward and forward+backward tokens/s of layer 1 (it consumes v_first) at width C over B x T
   tokens, through the time-mix table as the trainer calls it, and the WKV7 ops' share of each. */
static int bench_tmix7_sequence(arwkv_backend *be, int C, int B, int T, int reps) {
    arwkv__tmix tm;
    bench_tmix7 L;
    memset(&tm, 0, sizeof tm);
    tm.family = &arwkv__tmix_rwkv7;
    if (bench_tmix7_setup(C, &tm.r7, &L) != ARWKV_OK) return 1;
    const arwkv__tmix_family *f = tm.family;
    size_t MC = (size_t)B * T * C;
    float *x = bench_floats(MC, -1, 1), *vf = bench_floats(MC, -1, 1), *out = bench_floats(MC, 0, 0);
    float *dout = bench_floats(MC, -1, 1), *dx = bench_floats(MC, 0, 0), *dvf = bench_floats(MC, 0, 0);
    arwkv__tmix_acts *acts = NULL;
    arwkv__tmix_work *work = NULL;
    arwkv_result r = f->acts_create(be, &tm, B, T, &acts);
    if (r == ARWKV_OK) r = f->work_create(be, &tm, B, T, 1, &work);
    double t_fwd = 1e30, t_all = 1e30, t_wkv_f = 1e30, t_wkv_b = 1e30;
    for (int rep = 0; rep < reps && r == ARWKV_OK; rep++) {
        double t0 = bench_now();
        r = f->forward(be, &tm, &L.l, 1, B, T, x, NULL, NULL, vf, out, acts, work);
        double t1 = bench_now();
        if (r == ARWKV_OK) r = f->backward(be, &tm, &L.l, 1, B, T, x, vf, acts, dout, dx, dvf, work);
        double t2 = bench_now();
        t_fwd = t1 - t0 < t_fwd ? t1 - t0 : t_fwd;
        t_all = t2 - t0 < t_all ? t2 - t0 : t_all;
        double wf = 0, wb = 0;
        if (r == ARWKV_OK) r = bench_wkv7_alone(be, &tm.r7, B, T, &wf, &wb);
        t_wkv_f = wf < t_wkv_f ? wf : t_wkv_f;
        t_wkv_b = wb < t_wkv_b ? wb : t_wkv_b;
    }
    if (r != ARWKV_OK) printf("  time mix C=%d: %s\n", C, arwkv_last_error());
    else {
        double n = (double)B * T, kept = (double)f->acts_bytes(&tm, B, T);
        printf("  time mix C=%-4d B=%d T=%d: forward %8.0f tokens/s (WKV7 %4.1f%%)   forward+backward %8.0f tokens/s (WKV7 %4.1f%%)\n",
               C, B, T, n / t_fwd, 100 * t_wkv_f / t_fwd, n / t_all, 100 * (t_wkv_f + t_wkv_b) / t_all);
        printf("  %*s activations kept for the backward: %.1f MiB per layer (%.0f bytes per token)\n", 12, "", kept / 1048576.0,
               kept / n);
    }
    f->acts_free(be, acts);
    if (work) f->work_free(be, work);
    bench_tmix7_layer_free(&L);
    free(x), free(vf), free(out), free(dout), free(dx), free(dvf);
    return r != ARWKV_OK;
}

/* One token of one sequence through layer 1 from a carried state: microseconds per token. */
static int bench_tmix7_recurrent(arwkv_backend *be, int C, int steps) {
    arwkv__tmix tm;
    bench_tmix7 L;
    memset(&tm, 0, sizeof tm);
    tm.family = &arwkv__tmix_rwkv7;
    if (bench_tmix7_setup(C, &tm.r7, &L) != ARWKV_OK) return 1;
    const arwkv__tmix_family *f = tm.family;
    const arwkv_tmix7_dims *d = &tm.r7;
    float *x = bench_floats((size_t)steps * C, -1, 1), *vf = bench_floats(C, -1, 1), *out = bench_floats(C, 0, 0);
    float *shift = bench_floats(C, 0, 0), *S = bench_floats((size_t)d->H * d->N * d->N, 0, 0);
    arwkv__tmix_work *work = NULL;
    arwkv_result r = f->work_create(be, &tm, 1, 1, 0, &work);
    double best = 1e30;
    for (int rep = 0; rep < 3 && r == ARWKV_OK; rep++) {
        double t0 = bench_now();
        for (int t = 0; t < steps && r == ARWKV_OK; t++)
            r = f->forward(be, &tm, &L.l, 1, 1, 1, x + (size_t)t * C, shift, S, vf, out, NULL, work);
        double dt = (bench_now() - t0) / steps;
        best = dt < best ? dt : best;
    }
    if (r != ARWKV_OK) printf("  recurrent C=%d: %s\n", C, arwkv_last_error());
    else
        printf("  recurrent step C=%-4d: %7.1f us per token per layer (state %.0f KiB per layer)\n", C, best * 1e6,
               ((double)d->H * d->N * d->N + C) * 4 / 1024.0);
    if (work) f->work_free(be, work);
    bench_tmix7_layer_free(&L);
    free(x), free(vf), free(out), free(shift), free(S);
    return r != ARWKV_OK;
}

static int bench_student(int argc, char **argv) {
    (void)argc;
    (void)argv;
    arwkv_backend *be = NULL;
    if (arwkv_backend_cpu(0, &be) != ARWKV_OK) {
        printf("  %s\n", arwkv_last_error());
        return 1;
    }
    printf("  %s\n", arwkv_backend_name(be));
    int status = 0;
    status |= bench_tmix7_sequence(be, 128, 4, 512, 5);
    status |= bench_tmix7_sequence(be, 896, 4, 512, 3);
    status |= bench_tmix7_recurrent(be, 128, 2000);
    status |= bench_tmix7_recurrent(be, 896, 500);
    arwkv_backend_destroy(be);
    return status;
}
