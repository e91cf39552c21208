/* Training throughput: tokens per second of stage 1 (alignment) and stage 2 (logit distillation)
   on this CPU, for the bundled teacher and for a Qwen2.5-0.5B-shaped teacher with random bf16
   weights (built in memory by bench_random_model in teacher.h).

     arwkv-bench train [THREADS [SKIP_0.5B]] */

static double bench_train_stage(arwkv_model *teacher, int stage, int T, int B, int steps, double *loss) {
    arwkv_model *s = NULL;
    arwkv_dataset d;
    arwkv_dataset_init(&d);
    int n = (steps + 1) * B * T + 1;
    int32_t *ids = (int32_t *)malloc(sizeof(int32_t) * (size_t)n);
    uint64_t x = 99;
    for (int i = 0; i < n; i++) {
        x ^= x << 13, x ^= x >> 7, x ^= x << 17;
        ids[i] = (int32_t)(x % 50000);
    }
    arwkv_dataset_append(&d, ids, NULL, (size_t)n);
    free(ids);
    arwkv_train_options o;
    arwkv_train_options_default(&o, stage);
    o.seq_len = T, o.batch = B, o.steps = steps + 1, o.lr = 1e-4f, o.warmup_steps = 0;
    arwkv_trainer *tr = NULL;
    double tps = -1;
    if (arwkv_dataset_pack(&d, T, 1) == ARWKV_OK && arwkv_student_create(teacher, NULL, &s) == ARWKV_OK &&
        arwkv_trainer_create(teacher, s, &o, &d, &tr) == ARWKV_OK) {
        arwkv_step_stats st;
        if (arwkv_trainer_step(tr, &st) == ARWKV_OK) { /* the first step warms up (page faults, buffers) */
            double t0 = bench_now();
            int ok = 1;
            for (int i = 0; i < steps && ok; i++) ok = arwkv_trainer_step(tr, &st) == ARWKV_OK;
            if (ok) tps = (double)steps * B * T / (bench_now() - t0);
            *loss = st.loss;
        }
    }
    if (tps < 0) fprintf(stderr, "bench train: %s\n", arwkv_last_error());
    arwkv_trainer_free(tr);
    arwkv_model_free(s);
    arwkv_dataset_free(&d);
    return tps;
}

static int bench_train(int argc, char **argv) {
    int threads = bench_int_arg(argc, argv, 1, "THREADS", 0), skip_big = bench_int_arg(argc, argv, 2, "SKIP_BIG", 0);
    arwkv_backend *be;
    if (arwkv_backend_cpu(threads, &be) != ARWKV_OK) return 1;
    arwkv_model *tiny;
    if (arwkv_model_load("models/qwen2-code-tiny", be, &tiny) != ARWKV_OK) {
        fprintf(stderr, "bench train: %s\n", arwkv_last_error());
        return 1;
    }
    double loss;
    printf("  %s; ARWKV-7 students, sequences of 256 tokens\n", arwkv_backend_name(be));
    printf("  %-34s %8s %12s\n", "teacher", "stage", "tokens/s");
    double t1 = bench_train_stage(tiny, 1, 256, 4, 6, &loss);
    printf("  %-34s %8d %12.0f\n", "qwen2-code-tiny (C=128, 8 layers)", 1, t1);
    double t2 = bench_train_stage(tiny, 2, 256, 2, 3, &loss);
    printf("  %-34s %8d %12.0f\n", "qwen2-code-tiny (C=128, 8 layers)", 2, t2);
    fflush(stdout);
    arwkv_model_free(tiny);
    if (!skip_big) {
        arwkv_config c;
        memset(&c, 0, sizeof c);
        c.arch = ARWKV_ARCH_QWEN2, c.vocab_size = 151936, c.hidden_size = 896, c.intermediate_size = 4864, c.num_layers = 24;
        c.num_heads = 14, c.num_kv_heads = 2, c.head_dim = 64, c.rms_norm_eps = 1e-6f, c.rope_theta = 1e6, c.tie_word_embeddings = 1;
        c.max_position_embeddings = 32768, c.bos_token_id = c.eos_token_id = 151643;
        arwkv_model *big;
        if (bench_random_model(be, &c, &big) != ARWKV_OK) {
            fprintf(stderr, "bench train: %s\n", arwkv_last_error());
            return 1;
        }
        double b1 = bench_train_stage(big, 1, 256, 2, 2, &loss);
        printf("  %-34s %8d %12.1f\n", "Qwen2.5-0.5B shape (C=896, 24 l.)", 1, b1);
        fflush(stdout);
        double b2 = bench_train_stage(big, 2, 256, 1, 2, &loss);
        printf("  %-34s %8d %12.1f\n", "Qwen2.5-0.5B shape (C=896, 24 l.)", 2, b2);
        arwkv_model_free(big);
    }
    arwkv_backend_destroy(be);
    return 0;
}
