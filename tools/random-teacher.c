/* arwkv-random-teacher: write a Qwen2 teacher of a given shape with random bf16 weights, for measuring
   memory and speed at sizes whose real weights one does not have (bench/mem-device.sh: the 7B-shaped
   runs of the memory goals). The values are U(-a, a) with the standard deviation 0.02 of Qwen's
   initializer, norms 1 and biases 0: a model that computes finite numbers, not a useful one.

     arwkv-random-teacher --out DIR --shape 0.5b|1.5b|7b|32b [--layers N] [--seed S] [--tokenizer DIR]

   The tokenizer (tokenizer.json) is copied from --tokenizer (default models/qwen2-code-tiny): every
   Qwen2.5 size has the same one. */
#define ARWKV_IMPLEMENTATION
#include "arwkv.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct shape {
    const char *name;
    int hidden, layers, heads, kv_heads, mlp, vocab, tied;
} shape;

static const shape shapes[] = {
    {"0.5b", 896, 24, 14, 2, 4864, 151936, 1},
    {"1.5b", 1536, 28, 12, 2, 8960, 151936, 1},
    {"7b", 3584, 28, 28, 4, 18944, 152064, 0},
    {"32b", 5120, 64, 40, 8, 27648, 152064, 0},
};

/* xorshift64*: fast enough for billions of values */
static uint64_t rng_state;
static uint64_t rng_next(void) {
    rng_state ^= rng_state >> 12, rng_state ^= rng_state << 25, rng_state ^= rng_state >> 27;
    return rng_state * 2685821657736338717ull;
}

typedef struct tensor_list {
    arwkv_st_entry *e;
    char (*names)[96];
    int n, cap;
} tensor_list;

/* kind: 0 random matrix, 1 ones (norm), 2 zeros (bias) */
static int add(tensor_list *t, const char *name, int64_t rows, int64_t cols, int kind) {
    if (t->n == t->cap) {
        t->cap = t->cap ? 2 * t->cap : 64;
        t->e = (arwkv_st_entry *)realloc(t->e, (size_t)t->cap * sizeof *t->e);
        t->names = (char (*)[96])realloc(t->names, (size_t)t->cap * sizeof *t->names);
        if (!t->e || !t->names) return 0;
    }
    int64_t n = rows * (cols ? cols : 1);
    uint16_t *d = (uint16_t *)malloc((size_t)n * sizeof(uint16_t));
    if (!d) return 0;
    const float a = 0.02f * 1.7320508f; /* U(-a, a) has standard deviation 0.02 */
    uint16_t one = arwkv_f32_to_bf16(1.0f);
    for (int64_t i = 0; i < n; i++) {
        if (kind == 0) d[i] = arwkv_f32_to_bf16(a * (2.0f * (float)(rng_next() >> 40) / 16777216.0f - 1.0f));
        else d[i] = kind == 1 ? one : 0;
    }
    arwkv_st_entry *e = &t->e[t->n];
    memset(e, 0, sizeof *e);
    snprintf(t->names[t->n], sizeof t->names[t->n], "%s", name); /* e->name is set at the end: names moves as it grows */
    e->dtype = ARWKV_BF16;
    e->ndim = cols ? 2 : 1;
    e->shape[0] = rows;
    e->shape[1] = cols;
    e->data = d;
    t->n++;
    return 1;
}

static int copy_file(const char *from, const char *to) {
    FILE *in = fopen(from, "rb"), *out = in ? fopen(to, "wb") : NULL;
    char buf[1 << 16];
    size_t k;
    int ok = in && out;
    while (ok && (k = fread(buf, 1, sizeof buf, in)) > 0) ok = fwrite(buf, 1, k, out) == k;
    if (in) fclose(in);
    if (out && fclose(out) != 0) ok = 0;
    return ok;
}

int main(int argc, char **argv) {
    const char *out = NULL, *which = NULL, *tok = "models/qwen2-code-tiny";
    int layers = 0;
    unsigned long long seed = 1;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--out") && i + 1 < argc) out = argv[++i];
        else if (!strcmp(argv[i], "--shape") && i + 1 < argc) which = argv[++i];
        else if (!strcmp(argv[i], "--layers") && i + 1 < argc) layers = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--seed") && i + 1 < argc) seed = strtoull(argv[++i], NULL, 10);
        else if (!strcmp(argv[i], "--tokenizer") && i + 1 < argc) tok = argv[++i];
        else if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help")) {
            printf("usage: arwkv-random-teacher --out DIR --shape 0.5b|1.5b|7b|32b [--layers N] [--seed S] [--tokenizer DIR]\n");
            return 0;
        } else {
            fprintf(stderr, "arwkv-random-teacher: unknown option or missing value: '%s' (see --help)\n", argv[i]);
            return 2;
        }
    }
    const shape *s = NULL;
    for (size_t i = 0; which && i < sizeof shapes / sizeof shapes[0]; i++)
        if (!strcmp(which, shapes[i].name)) s = &shapes[i];
    if (!out || !s || layers < 0) {
        fprintf(stderr, "arwkv-random-teacher: need --out DIR and --shape 0.5b, 1.5b, 7b or 32b\n");
        return 2;
    }
    int L = layers ? layers : s->layers;
    int64_t C = s->hidden, F = s->mlp, V = s->vocab, D = C / s->heads, Q = s->heads * D, KV = s->kv_heads * D;
    rng_state = seed * 0x9E3779B97F4A7C15ull + 1;
    tensor_list t;
    memset(&t, 0, sizeof t);
    char n[96];
    int ok = add(&t, "model.embed_tokens.weight", V, C, 0);
    for (int l = 0; l < L && ok; l++) {
#define W(suffix, r, c, kind) (snprintf(n, sizeof n, "model.layers.%d.%s", l, suffix), ok = ok && add(&t, n, r, c, kind))
        W("input_layernorm.weight", C, 0, 1);
        W("self_attn.q_proj.weight", Q, C, 0);
        W("self_attn.q_proj.bias", Q, 0, 2);
        W("self_attn.k_proj.weight", KV, C, 0);
        W("self_attn.k_proj.bias", KV, 0, 2);
        W("self_attn.v_proj.weight", KV, C, 0);
        W("self_attn.v_proj.bias", KV, 0, 2);
        W("self_attn.o_proj.weight", C, Q, 0);
        W("post_attention_layernorm.weight", C, 0, 1);
        W("mlp.gate_proj.weight", F, C, 0);
        W("mlp.up_proj.weight", F, C, 0);
        W("mlp.down_proj.weight", C, F, 0);
#undef W
    }
    ok = ok && add(&t, "model.norm.weight", C, 0, 1);
    if (!s->tied) ok = ok && add(&t, "lm_head.weight", V, C, 0);
    if (!ok) {
        fprintf(stderr, "arwkv-random-teacher: out of memory\n");
        return 1;
    }
    for (int i = 0; i < t.n; i++) t.e[i].name = t.names[i];
    const char *meta[2] = {"format", "pt"};
    arwkv_result r = arwkv_st_write_dir(out, t.e, t.n, meta, 1, 5000000000ull);
    if (r != ARWKV_OK) {
        fprintf(stderr, "arwkv-random-teacher: %s\n", arwkv_last_error());
        return 1;
    }
    char path[4096];
    snprintf(path, sizeof path, "%s/config.json", out);
    FILE *f = fopen(path, "w");
    if (!f) {
        fprintf(stderr, "arwkv-random-teacher: cannot write %s\n", path);
        return 1;
    }
    fprintf(f,
            "{\n  \"architectures\": [\"Qwen2ForCausalLM\"],\n  \"model_type\": \"qwen2\",\n  \"hidden_size\": %lld,\n"
            "  \"intermediate_size\": %lld,\n  \"num_hidden_layers\": %d,\n  \"num_attention_heads\": %d,\n  \"num_key_value_heads\": %d,\n"
            "  \"vocab_size\": %lld,\n  \"rms_norm_eps\": 1e-06,\n  \"rope_theta\": 1000000.0,\n  \"max_position_embeddings\": 32768,\n"
            "  \"tie_word_embeddings\": %s,\n  \"bos_token_id\": 151643,\n  \"eos_token_id\": 151643,\n  \"torch_dtype\": \"bfloat16\"\n}\n",
            (long long)C, (long long)F, L, s->heads, s->kv_heads, (long long)V, s->tied ? "true" : "false");
    fclose(f);
    char from[4096];
    snprintf(from, sizeof from, "%s/tokenizer.json", tok);
    snprintf(path, sizeof path, "%s/tokenizer.json", out);
    if (!copy_file(from, path)) {
        fprintf(stderr, "arwkv-random-teacher: cannot copy %s to %s\n", from, path);
        return 1;
    }
    int64_t params = 0;
    for (int i = 0; i < t.n; i++) params += t.e[i].shape[0] * (t.e[i].ndim == 2 ? t.e[i].shape[1] : 1);
    printf("%s: random Qwen2 teacher of shape %s (%d layers), %lld parameters, bf16\n", out, s->name, L, (long long)params);
    for (int i = 0; i < t.n; i++) free((void *)t.e[i].data);
    free(t.e);
    free(t.names);
    return 0;
}
