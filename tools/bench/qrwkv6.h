/* QRWKV6 time mix: block forward and forward+backward speed on the CPU; included by tools/bench.c.

     arwkv-bench qrwkv6 [T] [B]     sequences of T tokens (default 512), B of them (default 1)

   Two sizes: C = 128 (the bundled teacher: 2 heads of 64, 1 kv head) and C = 896 (Qwen2.5-0.5B:
   14 heads of 64, 2 kv heads), LoRA ranks 32 and 64. The layer is set up as stage 1 trains it:
   q/k/v/o frozen in bf16, the RWKV parameters fp32 with gradients. Printed: tokens/s for forward,
   forward+backward and token-by-token decode, and the useful GFLOP/s of forward+backward (matrix
   products at 2 flops per multiply-add plus the recurrence's 4 H N^2 per token forward, 10 H N^2
   backward), to be read against arwkv-bench matmul's figure. */

typedef struct bench_qrwkv6_layer {
    arwkv_param p[19];
    arwkv_layer layer;
} bench_qrwkv6_layer;

/* A random layer of dims d on backend be (fills l; returns 0 on failure). */
static int bench_qrwkv6_make(arwkv_backend *be, const arwkv_tmix6_dims *d, bench_qrwkv6_layer *l) {
    memset(l, 0, sizeof *l);
    int64_t C = d->C, KV = (int64_t)d->n_kv_heads * d->head_size, Dm = d->rank_mix, Dd = d->rank_decay;
    /* rows 0 for vectors; frozen matrices are stored bf16 */
    struct {
        arwkv_param **slot;
        int64_t rows, cols;
        int frozen;
        float scale, shift;
    } spec[19] = {
        {&l->layer.maa_x, 0, C, 0, 0.2f, 0.5f},      {&l->layer.maa_r, 0, C, 0, 0.2f, 0.5f},
        {&l->layer.maa_k, 0, C, 0, 0.2f, 0.5f},      {&l->layer.maa_v, 0, C, 0, 0.2f, 0.5f},
        {&l->layer.maa_w, 0, C, 0, 0.2f, 0.5f},      {&l->layer.maa_g, 0, C, 0, 0.2f, 0.5f},
        {&l->layer.maa_w1, C, 5 * Dm, 0, 0.05f, 0},  {&l->layer.maa_w2, 5 * Dm, C, 0, 0.05f, 0},
        {&l->layer.time_decay, 0, C, 0, 1.0f, -3},   {&l->layer.decay_w1, C, Dd, 0, 0.05f, 0},
        {&l->layer.decay_w2, Dd, C, 0, 0.05f, 0},    {&l->layer.gate, C, C, 0, 0.03f, 0},
        {&l->layer.q_w, C, C, 1, 0.03f, 0},          {&l->layer.q_b, 0, C, 1, 0.1f, 0},
        {&l->layer.k_w, KV, C, 1, 0.03f, 0},         {&l->layer.k_b, 0, KV, 1, 0.1f, 0},
        {&l->layer.v_w, KV, C, 1, 0.03f, 0},         {&l->layer.v_b, 0, KV, 1, 0.1f, 0},
        {&l->layer.o_w, C, C, 1, 0.03f, 0},
    };
    uint64_t s = 88172645463325252ull;
    for (int i = 0; i < 19; i++) {
        arwkv_param *p = &l->p[i];
        int64_t n = spec[i].rows ? spec[i].rows * spec[i].cols : spec[i].cols;
        p->ndim = spec[i].rows ? 2 : 1;
        p->shape[0] = spec[i].rows ? spec[i].rows : n;
        p->shape[1] = spec[i].cols;
        p->numel = n;
        int bf16 = spec[i].frozen && spec[i].rows;
        p->dtype = bf16 ? ARWKV_BF16 : ARWKV_F32;
        float *host = (float *)malloc((size_t)n * sizeof(float));
        if (!host || be->mem->alloc(be, (size_t)n * arwkv_dtype_size(p->dtype), &p->data) != ARWKV_OK) return 0;
        for (int64_t k = 0; k < n; k++) { /* xorshift, uniform in [-1, 1) */
            s ^= s << 13, s ^= s >> 7, s ^= s << 17;
            host[k] = spec[i].shift + spec[i].scale * (float)((double)(s >> 11) / 4503599627370496.0 - 1.0);
        }
        if (bf16) {
            uint16_t *h = (uint16_t *)host;
            for (int64_t k = 0; k < n; k++) h[k] = arwkv_f32_to_bf16(host[k]);
        }
        be->mem->upload(be, p->data, host, (size_t)n * arwkv_dtype_size(p->dtype));
        free(host);
        if (!spec[i].frozen) {
            if (be->mem->alloc(be, (size_t)n * sizeof(float), (void **)&p->grad) != ARWKV_OK) return 0;
            p->trainable = 1;
        }
        *spec[i].slot = p;
    }
    return 1;
}

static void bench_qrwkv6_free(arwkv_backend *be, bench_qrwkv6_layer *l) {
    for (int i = 0; i < 19; i++) {
        be->mem->free(be, l->p[i].data);
        be->mem->free(be, l->p[i].grad);
    }
}

static int bench_qrwkv6(int argc, char **argv) {
    int T = bench_int_arg(argc, argv, 1, "T", 512), B = bench_int_arg(argc, argv, 2, "B", 1);
    if (T < 1 || B < 1) {
        fprintf(stderr, "usage: arwkv-bench qrwkv6 [T] [B]\n");
        return 2;
    }
    arwkv_backend *be;
    if (arwkv_backend_cpu(0, &be) != ARWKV_OK) {
        fprintf(stderr, "%s\n", arwkv_last_error());
        return 1;
    }
    printf("  QRWKV6 time mix, %s, B = %d, T = %d (stage-1 layer: q/k/v/o bf16 frozen)\n", arwkv_backend_name(be), B, T);
    printf("  %-34s %12s %12s %12s %10s\n", "size", "fwd tok/s", "fwd+bwd tok/s", "decode tok/s", "GFLOP/s");
    const arwkv_tmix6_dims sizes[2] = {{128, 2, 64, 1, 32, 64}, {896, 14, 64, 2, 32, 64}};
    int status = 0;
    for (int si = 0; si < 2; si++) {
        const arwkv_tmix6_dims *d = &sizes[si];
        bench_qrwkv6_layer l;
        size_t n = (size_t)B * T * d->C;
        float *x = (float *)malloc(n * sizeof(float)), *out = (float *)malloc(n * sizeof(float)), *dx = (float *)malloc(n * sizeof(float));
        float *shift = (float *)calloc((size_t)B * d->C, sizeof(float));
        float *state = (float *)calloc((size_t)B * d->n_heads * d->head_size * d->head_size, sizeof(float));
        arwkv__tmix6_acts *acts = NULL;
        if (!x || !out || !dx || !shift || !state || !bench_qrwkv6_make(be, d, &l) || arwkv__tmix6_acts_create(be, d, &acts) != ARWKV_OK) {
            fprintf(stderr, "  out of memory\n");
            return 1;
        }
        for (size_t i = 0; i < n; i++) x[i] = (float)((i * 2654435761u) % 1000) / 500.0f - 1.0f;
        arwkv_result r = arwkv__tmix6_forward(be, &l.layer, d, B, T, x, NULL, NULL, out, acts); /* warm-up, allocations */
        if (r == ARWKV_OK) r = arwkv__tmix6_backward(be, &l.layer, d, B, T, x, acts, out, dx);
        /* forward */
        int reps = 0;
        double t0 = bench_now(), t_fwd, t_both, t_dec;
        do {
            if (r == ARWKV_OK) r = arwkv__tmix6_forward(be, &l.layer, d, B, T, x, NULL, NULL, out, acts);
            reps++;
        } while (r == ARWKV_OK && bench_now() - t0 < 1.0);
        t_fwd = (bench_now() - t0) / reps;
        /* forward + backward */
        reps = 0;
        t0 = bench_now();
        do {
            if (r == ARWKV_OK) r = arwkv__tmix6_forward(be, &l.layer, d, B, T, x, NULL, NULL, out, acts);
            if (r == ARWKV_OK) r = arwkv__tmix6_backward(be, &l.layer, d, B, T, x, acts, out, dx);
            reps++;
        } while (r == ARWKV_OK && bench_now() - t0 < 1.0);
        t_both = (bench_now() - t0) / reps;
        /* decode: one token per call, states carried */
        int steps = 0;
        t0 = bench_now();
        do {
            if (r == ARWKV_OK) r = arwkv__tmix6_forward(be, &l.layer, d, B, 1, x + (size_t)(steps % T) * d->C, shift, state, out, acts);
            steps++;
        } while (r == ARWKV_OK && bench_now() - t0 < 0.5);
        t_dec = (bench_now() - t0) / steps;
        if (r != ARWKV_OK) {
            fprintf(stderr, "  %s\n", arwkv_last_error());
            status = 1;
        } else {
            double C = d->C, KV = (double)d->n_kv_heads * d->head_size, HNN = (double)d->n_heads * d->head_size * d->head_size;
            double mm = 2 * (C * 5 * d->rank_mix * 2 + 3 * C * C + 2 * C * KV + 2 * C * d->rank_decay); /* per token, forward */
            double flops = (double)B * T * (3 * mm + 14 * HNN); /* backward: two products per forward one */
            char name[64];
            snprintf(name, sizeof name, "C=%d (%d heads of %d, %d kv)", d->C, d->n_heads, d->head_size, d->n_kv_heads);
            printf("  %-34s %12.0f %12.0f %12.0f %10.2f\n", name, B * T / t_fwd, B * T / t_both, B / t_dec, flops / t_both * 1e-9);
        }
        arwkv__tmix6_acts_free(acts);
        bench_qrwkv6_free(be, &l);
        free(x), free(out), free(dx), free(shift), free(state);
    }
    arwkv_backend_destroy(be);
    return status;
}
