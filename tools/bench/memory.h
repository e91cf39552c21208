/* arwkv-bench memory: the memory plan of a training run on a GPU for Qwen2.5 shapes (0.5B, 1.5B, 7B and
   a 32B shape), stage by stage and with each option that changes it, without a GPU and without the
   weights: the plan needs shapes only (arwkv_memory_plan_shapes). These are the figures arwkv-distill
   prints at its start and checks against the device's free memory; on a GPU it prints the measured
   peak at its end (bench/mem-device.sh compares the two).

     arwkv-bench memory [--batch B] [--seq-len T] [--gate]    the table (default B 1, T 2048, no gate)
     arwkv-bench memory SHAPE [...]                           every item of every column, for 0.5b, 1.5b, 7b or 32b */

typedef struct bench_shape {
    const char *name;
    int hidden, layers, heads, kv_heads, mlp, vocab, tied;
} bench_shape;

static const bench_shape bench_shapes[] = {
    {"0.5b", 896, 24, 14, 2, 4864, 151936, 1},
    {"1.5b", 1536, 28, 12, 2, 8960, 151936, 1},
    {"7b", 3584, 28, 28, 4, 18944, 152064, 0},
    {"32b", 5120, 64, 40, 8, 27648, 152064, 0},
};

static void bench_shape_config(const bench_shape *s, arwkv_config *c) {
    memset(c, 0, sizeof *c);
    c->arch = ARWKV_ARCH_QWEN2;
    c->vocab_size = s->vocab, c->hidden_size = s->hidden, c->intermediate_size = s->mlp, c->num_layers = s->layers;
    c->num_heads = s->heads, c->num_kv_heads = s->kv_heads, c->head_dim = s->hidden / s->heads;
    c->rms_norm_eps = 1e-6f, c->rope_theta = 1e6, c->max_position_embeddings = 32768, c->tie_word_embeddings = s->tied;
    c->bos_token_id = c->eos_token_id = -1;
}

typedef struct bench_mem_column {
    const char *name;
    int stage, freeze_mlp, offload, recompute, stream;
} bench_mem_column;

static const bench_mem_column bench_mem_columns[] = {
    {"stage 1", 1, 0, 0, 0, 0},      {"stage 1 offload", 1, 0, 1, 0, 0},  {"1 stream+offload", 1, 0, 1, 0, 1},
    {"stage 2", 2, 0, 0, 0, 0},      {"2 freeze-mlp", 2, 1, 0, 0, 0},     {"2 offload", 2, 0, 1, 0, 0},
    {"2 freeze+offload", 2, 1, 1, 0, 0}, {"2 recompute", 2, 0, 0, 1, 0},  {"2 recomp+offload", 2, 0, 1, 1, 0},
    {"2 recomp+freeze", 2, 1, 0, 1, 0},
};

static int bench_memory(int argc, char **argv) {
    int B = 1, T = 2048, gate = 0;
    const char *only = NULL;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--batch") && i + 1 < argc) B = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--seq-len") && i + 1 < argc) T = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--gate")) gate = 1;
        else if (argv[i][0] != '-' && !only) only = argv[i];
        else {
            fprintf(stderr, "arwkv-bench memory: unknown argument '%s'\n", argv[i]);
            return 2;
        }
    }
    if (B < 1 || T < 1) {
        fprintf(stderr, "arwkv-bench memory: --batch and --seq-len must be positive\n");
        return 2;
    }
    int n_shapes = (int)(sizeof bench_shapes / sizeof bench_shapes[0]), n_cols = (int)(sizeof bench_mem_columns / sizeof bench_mem_columns[0]);
    const double gib = 1073741824.0, h100 = 78.66; /* GiB an 80 GB H100 had free (80548 MiB, bench/results/mem-gpu-*) */
    printf("memory plan on a GPU, ARWKV-7 student%s sharing the teacher's frozen tensors, B %d, T %d, bf16 teacher,\n"
           "GiB of device memory [GiB of host memory]; * fits in %.2f GiB (the free memory of an 80 GB H100)\n",
           gate ? " with gate" : " without gate", B, T, h100);
    if (!only) {
        printf("%-6s", "shape");
        for (int c = 0; c < n_cols; c++) printf(" %19s", bench_mem_columns[c].name);
        printf("\n");
    }
    for (int s = 0; s < n_shapes; s++) {
        if (only && strcmp(only, bench_shapes[s].name)) continue;
        arwkv_config tc;
        bench_shape_config(&bench_shapes[s], &tc);
        if (!only) printf("%-6s", bench_shapes[s].name);
        for (int c = 0; c < n_cols; c++) {
            arwkv_student_options so;
            arwkv_student_options_default(&so);
            so.gate = gate, so.share_teacher = 1;
            arwkv_train_options o;
            arwkv_train_options_default(&o, bench_mem_columns[c].stage);
            o.batch = B, o.seq_len = T, o.freeze_mlp = bench_mem_columns[c].freeze_mlp, o.offload_optimizer = bench_mem_columns[c].offload;
            o.recompute = bench_mem_columns[c].recompute;
            o.stream_teacher = bench_mem_columns[c].stream;
            arwkv_memory_plan p;
            if (arwkv_memory_plan_shapes(&tc, ARWKV_BF16, &so, &o, 0, 1, &p) != ARWKV_OK) {
                fprintf(stderr, "arwkv-bench memory: %s\n", arwkv_last_error());
                return 1;
            }
            char cell[48];
            if (p.host_total) snprintf(cell, sizeof cell, "%.1f%s [%.0f]", p.total / gib, p.total / gib <= h100 ? "*" : " ", p.host_total / gib);
            else snprintf(cell, sizeof cell, "%.1f%s", p.total / gib, p.total / gib <= h100 ? "*" : " ");
            if (!only) {
                printf(" %19s", cell);
                continue;
            }
            printf("%s %s:\n", bench_shapes[s].name, bench_mem_columns[c].name);
            for (int i = 0; i < p.n_items; i++) printf("  %-26s %8.2f GiB\n", p.items[i].name, p.items[i].bytes / gib);
            printf("  %-26s %8.2f GiB on the device%s, %.2f GiB on the host\n", "total", p.total / gib, p.total / gib <= h100 ? " (fits)" : "",
                   p.host_total / gib);
        }
        if (!only) printf("\n");
    }
    return 0;
}
