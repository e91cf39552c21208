/* Teacher architectures beyond Qwen2: LlamaForCausalLM and Qwen3ForCausalLM from Hugging Face
   directories, their students, and stage 2 with a teacher larger than the student's own base.

   The references are tests/data/arch/: three random-weight models that transformers wrote (a GQA
   Llama with an untied head, a tied Llama with attention biases and head_dim given, a Qwen3 with
   q/k norms and head_dim != hidden/heads) and NAME.ref.safetensors beside each, holding what
   transformers computes in float32 (tools/ref_arch.py makes them all). A tensor's error is
   test_rel_err: max |ours - reference| / max |reference|. */
#define _DEFAULT_SOURCE /* popen */
#define ARWKV_IMPLEMENTATION
#include "arwkv.h"
#include "test.h"
#include <sys/wait.h>

#define ARCH_DIR "tests/data/arch"
static const char *const model_names[] = {"llama-gqa", "llama-tied", "qwen3", "qwen3-small"};
#define N_MODELS 4
#define N_SEQS 3
#define N_GREEDY 2

/* ---- Config fields ---------------------------------------------------------------------------------- */

static arwkv_result parse(const char *json, arwkv_config *c) { return arwkv_config_parse(json, strlen(json), "test.json", c); }

TEST(config_fields_of_llama_and_qwen3) {
    arwkv_config c;
    CHECK_OK(arwkv_config_load(ARCH_DIR "/llama-gqa", &c));
    CHECK(c.arch == ARWKV_ARCH_LLAMA && c.base_arch == ARWKV_ARCH_LLAMA && arwkv_arch_is_teacher(c.arch), "arch %d", (int)c.arch);
    CHECK(c.num_heads == 4 && c.num_kv_heads == 2 && c.head_dim == 16 && !c.attention_bias && !c.attention_output_bias && !c.qk_norm,
          "heads %d/%d dim %d bias %d/%d qk %d", c.num_heads, c.num_kv_heads, c.head_dim, c.attention_bias, c.attention_output_bias, c.qk_norm);
    CHECK(c.rope_theta == 500000.0 && c.rms_norm_eps == 1e-5f && !c.tie_word_embeddings && c.vocab_size == 512, "theta %g eps %g tied %d",
          c.rope_theta, (double)c.rms_norm_eps, c.tie_word_embeddings);
    CHECK_OK(arwkv_config_load(ARCH_DIR "/llama-tied", &c));
    CHECK(c.arch == ARWKV_ARCH_LLAMA && c.head_dim == 32 && c.num_heads * c.head_dim != c.hidden_size && c.attention_bias &&
              c.attention_output_bias && c.tie_word_embeddings && c.rope_theta == 10000.0,
          "llama-tied: dim %d bias %d/%d tied %d", c.head_dim, c.attention_bias, c.attention_output_bias, c.tie_word_embeddings);
    CHECK_OK(arwkv_config_load(ARCH_DIR "/qwen3", &c));
    CHECK(c.arch == ARWKV_ARCH_QWEN3 && c.qk_norm && c.head_dim == 80 && c.hidden_size == 128 && !c.attention_bias && c.rope_theta == 1e6,
          "qwen3: arch %d qk %d dim %d", (int)c.arch, c.qk_norm, c.head_dim);
    /* by model_type alone, and Qwen2 keeps its fixed biases whatever the config says */
    CHECK_OK(parse("{\"model_type\": \"llama\", \"vocab_size\": 8, \"hidden_size\": 4, \"intermediate_size\": 8, "
                   "\"num_hidden_layers\": 1, \"num_attention_heads\": 2, \"attention_bias\": true}", &c));
    CHECK(c.arch == ARWKV_ARCH_LLAMA && c.attention_bias && c.attention_output_bias && c.num_kv_heads == 2 && c.head_dim == 2 &&
              c.rms_norm_eps == 1e-6f && c.rope_theta == 10000.0,
          "llama by model_type: %d", (int)c.arch);
    CHECK_OK(parse("{\"architectures\": [\"Qwen2ForCausalLM\"], \"vocab_size\": 8, \"hidden_size\": 4, \"intermediate_size\": 8, "
                   "\"num_hidden_layers\": 1, \"num_attention_heads\": 2, \"attention_bias\": false}", &c));
    CHECK(c.arch == ARWKV_ARCH_QWEN2 && c.attention_bias && !c.attention_output_bias && !c.qk_norm, "qwen2 biases %d/%d", c.attention_bias,
          c.attention_output_bias);
    /* a student names its teacher's family; an old student (no key) is Qwen2's */
    CHECK_OK(parse("{\"architectures\": [\"RwkvHybridForCausalLM\"], \"teacher_architecture\": \"Qwen3ForCausalLM\", \"vocab_size\": 8, "
                   "\"hidden_size\": 64, \"intermediate_size\": 8, \"num_hidden_layers\": 1}", &c));
    CHECK(c.arch == ARWKV_ARCH_ARWKV7 && c.base_arch == ARWKV_ARCH_QWEN3, "student of qwen3: base %d", (int)c.base_arch);
    CHECK_OK(parse("{\"architectures\": [\"RwkvHybridForCausalLM\"], \"vocab_size\": 8, \"hidden_size\": 64, \"intermediate_size\": 8, "
                   "\"num_hidden_layers\": 1}", &c));
    CHECK(c.base_arch == ARWKV_ARCH_QWEN2, "old student: base %d", (int)c.base_arch);
}

/* A config built from another source (as a GGUF reader builds one from metadata) is completed and
   checked by the same rules as config.json: here SmolLM2-135M's numbers and a Qwen3's. */
TEST(config_from_other_sources_is_finished_alike) {
    arwkv_config c;
    memset(&c, 0, sizeof c);
    c.arch = ARWKV_ARCH_LLAMA, c.vocab_size = 49152, c.hidden_size = 576, c.intermediate_size = 1536, c.num_layers = 30;
    c.num_heads = 9, c.num_kv_heads = 3, c.rms_norm_eps = 1e-5f, c.rope_theta = 100000, c.tie_word_embeddings = 1;
    CHECK_OK(arwkv__config_finish(&c, "smollm2.gguf"));
    CHECK(c.head_dim == 64 && c.base_arch == ARWKV_ARCH_LLAMA && !c.attention_bias && !c.attention_output_bias && !c.qk_norm,
          "llama: head_dim %d base %d", c.head_dim, (int)c.base_arch);
    memset(&c, 0, sizeof c);
    c.arch = ARWKV_ARCH_QWEN3, c.vocab_size = 151936, c.hidden_size = 1024, c.intermediate_size = 3072, c.num_layers = 28;
    c.num_heads = 16, c.num_kv_heads = 8, c.head_dim = 128, c.rms_norm_eps = 1e-6f, c.rope_theta = 1e6;
    CHECK_OK(arwkv__config_finish(&c, "qwen3.gguf"));
    CHECK(c.qk_norm && c.head_dim == 128 && c.base_arch == ARWKV_ARCH_QWEN3, "qwen3: qk_norm %d", c.qk_norm);
    c.num_kv_heads = 5;
    CHECK(arwkv__config_finish(&c, "qwen3.gguf") == ARWKV_ERR_FORMAT && strstr(arwkv_last_error(), "qwen3.gguf") &&
              strstr(arwkv_last_error(), "num_key_value_heads 5"),
          "bad grouping: %s", arwkv_last_error());
    c.num_kv_heads = 8, c.hidden_size = 0;
    CHECK(arwkv__config_finish(&c, "qwen3.gguf") == ARWKV_ERR_FORMAT && strstr(arwkv_last_error(), "hidden_size"), "zero size: %s",
          arwkv_last_error());
}

/* What the teacher cannot compute exactly is refused with the key named, never run differently. */
TEST(config_refusals_name_the_key) {
    static const struct {
        const char *extra, *want;
    } cases[] = {
        {"\"rope_scaling\": {\"rope_type\": \"llama3\", \"factor\": 32.0}", "llama3"},
        {"\"rope_parameters\": {\"rope_type\": \"yarn\", \"rope_theta\": 10000}", "rope_parameters.rope_type \"yarn\""},
        {"\"rope_scaling\": {\"type\": \"linear\", \"factor\": 2.0}", "rope_scaling.rope_type \"linear\""},
        {"\"mlp_bias\": true", "mlp_bias"},
        {"\"use_sliding_window\": true", "use_sliding_window"},
        {"\"attention_bias\": \"yes\"", "attention_bias"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char json[512];
        snprintf(json, sizeof json,
                 "{\"architectures\": [\"LlamaForCausalLM\"], \"vocab_size\": 8, \"hidden_size\": 4, \"intermediate_size\": 8, "
                 "\"num_hidden_layers\": 1, \"num_attention_heads\": 2, %s}",
                 cases[i].extra);
        arwkv_config c;
        arwkv_result r = parse(json, &c);
        CHECK(r != ARWKV_OK && strstr(arwkv_last_error(), cases[i].want) && strstr(arwkv_last_error(), "test.json"), "%s: %s", cases[i].extra,
              arwkv_last_error());
    }
    arwkv_config c;
    arwkv_result r = parse("{\"architectures\": [\"RwkvHybridForCausalLM\"], \"teacher_architecture\": \"GPT2LMHeadModel\", \"vocab_size\": 8, "
                           "\"hidden_size\": 64, \"intermediate_size\": 8, \"num_hidden_layers\": 1}", &c);
    CHECK(r == ARWKV_ERR_UNSUPPORTED && strstr(arwkv_last_error(), "GPT2LMHeadModel") && strstr(arwkv_last_error(), "teacher_architecture"),
          "unknown teacher family: %s", arwkv_last_error());
    r = parse("{\"architectures\": [\"MistralForCausalLM\"], \"vocab_size\": 8, \"hidden_size\": 4, \"intermediate_size\": 8, "
              "\"num_hidden_layers\": 1, \"num_attention_heads\": 2}", &c);
    CHECK(r == ARWKV_ERR_UNSUPPORTED && strstr(arwkv_last_error(), "MistralForCausalLM") && strstr(arwkv_last_error(), "LlamaForCausalLM"),
          "unknown architecture lists the supported ones: %s", arwkv_last_error());
}

/* ---- The forward against transformers -------------------------------------------------------------- */

typedef struct {
    arwkv_backend *be;
    arwkv_model *m;
    arwkv_teacher *t;
    arwkv_safetensors *ref;
} setup;

static setup open_model(const char *name) {
    setup s = {NULL, NULL, NULL, NULL};
    char dir[256], ref[256];
    snprintf(dir, sizeof dir, ARCH_DIR "/%s", name);
    snprintf(ref, sizeof ref, ARCH_DIR "/%s.ref.safetensors", name);
    CHECK_OK(arwkv_backend_cpu(2, &s.be));
    if (s.be) CHECK_OK(arwkv_model_load(dir, s.be, &s.m));
    if (s.m) CHECK_OK(arwkv_teacher_create(s.m, &s.t));
    if (s.t) CHECK_OK(arwkv_st_open(ref, &s.ref));
    return s;
}

static void close_model(setup *s) {
    arwkv_st_close(s->ref);
    arwkv_teacher_free(s->t);
    arwkv_model_free(s->m);
    arwkv_backend_destroy(s->be);
}

static float *ref_f32(arwkv_safetensors *st, const char *name, int64_t n) {
    float *x = (float *)malloc(sizeof(float) * (size_t)(n > 0 ? n : 1));
    arwkv_result r = arwkv_st_read_f32(st, name, x, n);
    CHECK(r == ARWKV_OK, "reading %s: %s", name, arwkv_last_error());
    if (r == ARWKV_OK) return x;
    free(x);
    return NULL;
}

static int32_t *ref_ids(arwkv_safetensors *st, const char *name, int *n) {
    const arwkv_tensor_info *t = arwkv_st_find(st, name);
    CHECK(t && t->dtype == ARWKV_I32, "%s: int32 tensor expected", name);
    if (!t || t->dtype != ARWKV_I32) return NULL;
    *n = (int)t->numel;
    int32_t *ids = (int32_t *)malloc(t->nbytes + 4);
    memcpy(ids, t->data, t->nbytes);
    return ids;
}

typedef struct {
    arwkv_backend *be;
    int layers, rows, C;
    float *x, *ao; /* [layers][rows][C] */
} hook_record;

static arwkv_result record_hook(void *user, int layer, const float *x, const float *xn, const float *attn_out, int rows) {
    (void)xn;
    hook_record *h = (hook_record *)user;
    if (layer < 0 || layer >= h->layers || rows != h->rows) return ARWKV_ERR_SHAPE;
    size_t n = (size_t)rows * h->C, off = (size_t)layer * n;
    ARWKV__TRY(h->be->mem->download(h->be, h->x + off, x, n * sizeof(float)));
    return h->be->mem->download(h->be, h->ao + off, attn_out, n * sizeof(float));
}

static float *host_logits(arwkv_model *m, const float *hidden, int rows) {
    size_t V = (size_t)m->cfg.vocab_size;
    float *dev = NULL, *host = (float *)malloc(sizeof(float) * rows * V);
    CHECK_OK(m->be->mem->alloc(m->be, sizeof(float) * rows * V, (void **)&dev));
    if (dev) CHECK_OK(arwkv_model_logits(m, hidden, rows, dev));
    if (dev) CHECK_OK(m->be->mem->download(m->be, host, dev, sizeof(float) * rows * V));
    m->be->mem->free(m->be, dev);
    return host;
}

#define TOL 1e-4

/* Every layer's input and attention output, the final hidden states and the logits of three
   sequences, each model, within 1e-4 of transformers. */
TEST(forward_matches_transformers) {
    for (int mi = 0; mi < N_MODELS; mi++) {
        setup s = open_model(model_names[mi]);
        if (!s.ref) {
            close_model(&s);
            continue;
        }
        const arwkv_config *c = &s.m->cfg;
        int L = c->num_layers, C = c->hidden_size, V = c->vocab_size;
        double worst[4] = {0, 0, 0, 0};
        for (int si = 0; si < N_SEQS; si++) {
            char name[64];
            int T = 0;
            snprintf(name, sizeof name, "seq%d.ids", si);
            int32_t *ids = ref_ids(s.ref, name, &T);
            if (!ids) break;
            hook_record h = {s.be, L, T, C, (float *)malloc(sizeof(float) * L * T * C), (float *)malloc(sizeof(float) * L * T * C)};
            const float *hidden = NULL;
            CHECK_OK(arwkv_teacher_forward(s.t, ids, 1, T, record_hook, &h, &hidden));
            float *hid = (float *)malloc(sizeof(float) * T * C);
            if (hidden) CHECK_OK(s.be->mem->download(s.be, hid, hidden, sizeof(float) * T * C));
            float *lg = hidden ? host_logits(s.m, hidden, T) : NULL;
            const char *parts[4] = {"layer_in", "attn_out", "hidden", "logits"};
            float *ours[4] = {h.x, h.ao, hid, lg};
            int64_t sizes[4] = {(int64_t)L * T * C, (int64_t)L * T * C, (int64_t)T * C, (int64_t)T * V};
            for (int p = 0; p < 4 && hidden; p++) {
                snprintf(name, sizeof name, "seq%d.%s", si, parts[p]);
                float *want = ref_f32(s.ref, name, sizes[p]);
                if (!want) continue;
                double e = test_rel_err(ours[p], want, (size_t)sizes[p]);
                if (!(e <= worst[p])) worst[p] = e;
                CHECK(e < TOL, "%s %s: relative error %.3g", model_names[mi], name, e);
                free(want);
            }
            free(h.x), free(h.ao), free(hid), free(lg), free(ids);
        }
        printf("    %-10s %s: layer inputs %.2g, attention outputs %.2g, hidden %.2g, logits %.2g\n", model_names[mi],
               arwkv_arch_name(c->arch), worst[0], worst[1], worst[2], worst[3]);
        close_model(&s);
    }
}

/* The KV-cached path (prefill, then one token at a time) gives the logits of the full forward, and
   greedy decoding continues each prompt with transformers' tokens. */
TEST(cached_decoding_and_greedy_match_transformers) {
    for (int mi = 0; mi < N_MODELS; mi++) {
        setup s = open_model(model_names[mi]);
        if (!s.ref) {
            close_model(&s);
            continue;
        }
        int V = s.m->cfg.vocab_size, T = 0;
        int32_t *ids = ref_ids(s.ref, "seq2.ids", &T);
        float *want = ids ? ref_f32(s.ref, "seq2.logits", (int64_t)T * V) : NULL;
        arwkv_kv_cache *kv = NULL;
        CHECK_OK(arwkv_kv_cache_create(s.m, 0, &kv));
        float *got = (float *)malloc(sizeof(float) * (size_t)T * V);
        int pre = T / 3;
        if (kv && want) {
            CHECK_OK(arwkv_teacher_step(s.t, kv, ids, pre, NULL, got));
            for (int i = pre; i < T; i++) CHECK_OK(arwkv_teacher_step(s.t, kv, ids + i, 1, got + (size_t)i * V, NULL));
            double e = test_rel_err(got, want, (size_t)T * V);
            CHECK(e < TOL, "%s: cached logits relative error %.3g", model_names[mi], e);
        }
        for (int g = 0; g < N_GREEDY && kv; g++) {
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
            CHECK(memcmp(mine, full, sizeof(int32_t) * nt) == 0, "%s greedy %d differs from transformers", model_names[mi], g);
            free(mine), free(last), free(prompt), free(full);
        }
        arwkv_kv_cache_free(kv);
        free(got), free(want), free(ids);
        close_model(&s);
    }
}

/* ---- Students of these teachers --------------------------------------------------------------------- */

/* The final hidden states of a student on ids [T] (host, malloc'd). */
static float *student_hidden(arwkv_model *m, const int32_t *ids, int T) {
    arwkv_rnn *r = NULL;
    const float *hid = NULL;
    float *out = (float *)malloc(sizeof(float) * (size_t)T * m->cfg.hidden_size);
    CHECK_OK(arwkv_rnn_create(m, &r));
    if (r) CHECK_OK(arwkv_rnn_forward(r, ids, 1, T, NULL, 0, &hid));
    if (hid) CHECK_OK(m->be->mem->download(m->be, out, hid, sizeof(float) * (size_t)T * m->cfg.hidden_size));
    arwkv_rnn_free(r);
    return out;
}

/* ARWKV-7 and QRWKV6 students keep the teacher's embeddings, norms, MLPs and head (and for QRWKV6 its
   projections, biases as the family has them), record the family in config.json, and come back
   from disk computing the same function. */
TEST(students_of_llama_and_qwen3_save_and_load) {
    static const struct {
        const char *teacher;
        arwkv_arch arch;
        arwkv_init init;
    } cases[] = {
        {"llama-gqa", ARWKV_ARCH_ARWKV7, ARWKV_INIT_INHERIT},
        {"llama-gqa", ARWKV_ARCH_QRWKV6, ARWKV_INIT_UPSTREAM},
        {"qwen3", ARWKV_ARCH_ARWKV7, ARWKV_INIT_UPSTREAM},
        {"qwen3-small", ARWKV_ARCH_QRWKV6, ARWKV_INIT_UPSTREAM},
    };
    arwkv_backend *be = NULL;
    CHECK_OK(arwkv_backend_cpu(2, &be));
    static const int32_t ids[12] = {5, 300, 7, 7, 42, 509, 100, 3, 250, 64, 1, 2};
    for (size_t i = 0; i < sizeof cases / sizeof cases[0] && be; i++) {
        char dir[256], out[256];
        snprintf(dir, sizeof dir, ARCH_DIR "/%s", cases[i].teacher);
        snprintf(out, sizeof out, "build/test_arch_student%zu", i);
        arwkv_model *t = NULL, *s = NULL, *back = NULL;
        CHECK_OK(arwkv_model_load(dir, be, &t));
        arwkv_student_options o;
        arwkv_student_options_default(&o);
        o.arch = cases[i].arch, o.init = cases[i].init, o.seed = 7;
        if (t) CHECK_OK(arwkv_student_create(t, &o, &s));
        if (!s) {
            arwkv_model_free(t);
            continue;
        }
        /* a QRWKV6 student keeps the projections, and with them a Qwen3 teacher's q/k norms */
        int keeps_qk = cases[i].arch == ARWKV_ARCH_QRWKV6 && t->cfg.qk_norm;
        CHECK(s->cfg.arch == cases[i].arch && s->cfg.base_arch == t->cfg.arch && s->cfg.qk_norm == keeps_qk &&
                  s->cfg.rms_norm_eps == t->cfg.rms_norm_eps &&
                  s->cfg.tie_word_embeddings == t->cfg.tie_word_embeddings && s->cfg.vocab_size == t->cfg.vocab_size,
              "%s %s: config", cases[i].teacher, arwkv_arch_name(cases[i].arch));
        /* everything outside the attention is the teacher's, bit for bit */
        const char *kept[4] = {"model.embed_tokens.weight", "model.layers.1.mlp.down_proj.weight", "model.norm.weight",
                               "model.layers.1.self_attn.k_norm.weight"};
        for (int k = 0; k < 3 + keeps_qk; k++) {
            arwkv_param *a = arwkv_model_param(t, kept[k]), *b = arwkv_model_param(s, kept[k]);
            float *va = a ? (float *)malloc(sizeof(float) * a->numel) : NULL, *vb = a ? (float *)malloc(sizeof(float) * a->numel) : NULL;
            CHECK(a && b && a->numel == b->numel, "%s: %s kept", cases[i].teacher, kept[k]);
            if (a && b && a->numel == b->numel) {
                CHECK_OK(arwkv_param_read(t, a, va, a->numel));
                CHECK_OK(arwkv_param_read(s, b, vb, b->numel));
                CHECK(memcmp(va, vb, sizeof(float) * a->numel) == 0, "%s: %s copied", cases[i].teacher, kept[k]);
            }
            free(va), free(vb);
        }
        if (cases[i].arch == ARWKV_ARCH_QRWKV6)
            CHECK(arwkv_model_param(s, "model.layers.0.self_attn.q_proj.weight") && !arwkv_model_param(s, "model.layers.0.self_attn.q_proj.bias") &&
                      !arwkv_model_param(s, "model.layers.0.self_attn.o_proj.bias") && !s->cfg.attention_bias,
                  "a QRWKV6 student of Llama keeps q/k/v/o without biases");
        CHECK(!arwkv_model_param(s, "model.layers.0.self_attn.q_norm.weight") == !keeps_qk, "%s: q_norm %s", cases[i].teacher,
              keeps_qk ? "kept" : "dropped with the attention");
        float *before = student_hidden(s, ids, 12);
        CHECK_OK(arwkv_model_save(s, out, ARWKV_DTYPE_UNKNOWN, 0, dir));
        CHECK_OK(arwkv_model_load(out, be, &back));
        if (back) {
            CHECK(back->cfg.arch == cases[i].arch && back->cfg.base_arch == t->cfg.arch && back->cfg.attention_bias == s->cfg.attention_bias &&
                      back->cfg.qk_norm == keeps_qk &&
                      back->cfg.rms_norm_eps == t->cfg.rms_norm_eps && back->cfg.tie_word_embeddings == t->cfg.tie_word_embeddings,
                  "%s: reloaded config (base %s)", out, arwkv_arch_name(back->cfg.base_arch));
            float *after = student_hidden(back, ids, 12);
            CHECK(memcmp(before, after, sizeof(float) * 12 * s->cfg.hidden_size) == 0, "%s: same hidden states after save and load", out);
            free(after);
        }
        free(before);
        arwkv_model_free(back);
        arwkv_model_free(s);
        arwkv_model_free(t);
    }
    /* what a student cannot be made of is refused, saying why */
    arwkv_model *t = NULL, *s = NULL;
    arwkv_student_options o;
    arwkv_student_options_default(&o);
    CHECK_OK(arwkv_model_load(ARCH_DIR "/llama-tied", be, &t));
    CHECK(t && arwkv_student_create(t, &o, &s) == ARWKV_ERR_UNSUPPORTED && strstr(arwkv_last_error(), "96") && strstr(arwkv_last_error(), "64"),
          "hidden 96 for ARWKV-7: %s", arwkv_last_error());
    arwkv_model_free(t);
    t = NULL;
    o.arch = ARWKV_ARCH_QRWKV6;
    CHECK_OK(arwkv_model_load(ARCH_DIR "/qwen3", be, &t));
    CHECK(t && arwkv_student_create(t, &o, &s) == ARWKV_ERR_UNSUPPORTED && strstr(arwkv_last_error(), "2 x 80 != 128"),
          "QRWKV6 of a Qwen3 with head_dim 80: %s", arwkv_last_error());
    arwkv_model_free(t);
    arwkv_backend_destroy(be);
}

/* A QRWKV6 student of Qwen3 starts where the teacher is: at its init every branch input is the
   layer's normed input, so its r and k must be the teacher's queries and keys before RoPE, per-head
   RMS-normalized with the teacher's q_norm and k_norm (a float64 reference from the teacher's
   weights), and its training step runs with the norms' gradients. */
static arwkv_result keep_xn(void *user, int layer, const float *x, const float *xn, const float *attn_out, int rows) {
    (void)x, (void)attn_out;
    hook_record *h = (hook_record *)user;
    if (layer != 0) return ARWKV_OK;
    return h->be->mem->download(h->be, h->x, xn, sizeof(float) * (size_t)rows * h->C);
}

TEST(qrwkv6_student_of_qwen3_reads_the_teachers_queries_and_keys) {
    setup su = open_model("qwen3-small");
    arwkv_model *s = NULL;
    arwkv_student_options o;
    arwkv_student_options_default(&o);
    o.arch = ARWKV_ARCH_QRWKV6;
    if (su.t) CHECK_OK(arwkv_student_create(su.m, &o, &s));
    if (!s) {
        close_model(&su);
        return;
    }
    const arwkv_config *c = &su.m->cfg;
    int T = 0, C = c->hidden_size, H = c->num_heads, KVH = c->num_kv_heads, N = c->head_dim;
    int32_t *ids = ref_ids(su.ref, "seq1.ids", &T);
    hook_record h = {su.be, 1, T, C, (float *)malloc(sizeof(float) * T * C), NULL};
    const float *hidden;
    CHECK_OK(arwkv_teacher_forward(su.t, ids, 1, T, keep_xn, &h, &hidden));
    arwkv_tmix6_dims d;
    arwkv__tmix6_acts *acts = NULL;
    float *out = (float *)malloc(sizeof(float) * T * C);
    CHECK_OK(arwkv__tmix6_dims_from_config(&s->cfg, &d));
    CHECK_OK(arwkv__tmix6_acts_create(su.be, &d, &acts));
    if (acts) CHECK_OK(arwkv__tmix6_forward(su.be, &s->layers[0], &d, 1, T, h.x, NULL, NULL, out, acts));
    /* the reference: xn W^T, then each head over its RMS, times the norm weight */
    const arwkv_layer *TL = &su.m->layers[0];
    const arwkv_param *W[2] = {TL->q_w, TL->k_w}, *G[2] = {TL->q_norm, TL->k_norm};
    const float *got[2] = {acts ? acts->r : NULL, acts ? acts->k : NULL};
    int heads[2] = {H, KVH};
    for (int which = 0; which < 2 && acts; which++) {
        int rowsW = heads[which] * N;
        float *w = (float *)malloc(sizeof(float) * rowsW * C), *g = (float *)malloc(sizeof(float) * N), *want = (float *)malloc(sizeof(float) * T * rowsW);
        CHECK_OK(arwkv_param_read(su.m, W[which], w, (int64_t)rowsW * C));
        CHECK_OK(arwkv_param_read(su.m, G[which], g, N));
        for (int t = 0; t < T; t++)
            for (int hh = 0; hh < heads[which]; hh++) {
                double u[256], ss = 0;
                for (int i = 0; i < N; i++) {
                    double acc = 0;
                    for (int k = 0; k < C; k++) acc += (double)h.x[(size_t)t * C + k] * w[(size_t)(hh * N + i) * C + k];
                    u[i] = acc, ss += acc * acc;
                }
                double inv = 1 / sqrt(ss / N + (double)c->rms_norm_eps);
                for (int i = 0; i < N; i++) want[(size_t)t * rowsW + hh * N + i] = (float)(u[i] * inv * g[i]);
            }
        double e = test_rel_err(got[which], want, (size_t)T * rowsW);
        CHECK(e < 1e-5, "%s: %.3g from the teacher's normed %s", which ? "k" : "r", e, which ? "keys" : "queries");
        free(w), free(g), free(want);
    }
    /* a stage-1 step trains the mixes, not the inherited norms; stage 2 trains the norms too */
    for (int stage = 1; stage <= 2; stage++) {
        arwkv_train_options to;
        arwkv_train_options_default(&to, stage);
        to.seq_len = 16, to.batch = 1, to.steps = 2, to.warmup_steps = 0;
        arwkv_dataset data;
        arwkv_dataset_init(&data);
        arwkv_tokenizer *tok = NULL;
        CHECK_OK(arwkv_tokenizer_load(ARCH_DIR "/qwen3-small", &tok));
        if (tok) CHECK_OK(arwkv_dataset_add_file(&data, tok, "tests/data/tokenizer/code.txt", 509));
        arwkv_tokenizer_free(tok);
        CHECK_OK(arwkv_dataset_pack(&data, 16, 1));
        arwkv_trainer *tr = NULL;
        arwkv_step_stats st;
        memset(&st, 0, sizeof st);
        CHECK_OK(arwkv_trainer_create(su.m, s, &to, &data, &tr));
        if (tr) CHECK_OK(arwkv_trainer_step(tr, &st));
        arwkv_param *qn = arwkv_model_param(s, "model.layers.1.self_attn.q_norm.weight");
        CHECK(tr && qn && qn->trainable == (stage == 2) && isfinite(st.loss) && st.grad_norm > 0, "stage %d: q_norm trainable %d, loss %g",
              stage, qn ? qn->trainable : -1, st.loss);
        arwkv_trainer_free(tr);
        arwkv_dataset_free(&data);
    }
    arwkv__tmix6_acts_free(acts);
    free(out), free(h.x), free(ids);
    arwkv_model_free(s);
    close_model(&su);
}

/* Stage 2 takes any teacher with the student's vocabulary (a larger one of another family here);
   stage 1 needs the student's own base; a different vocabulary is refused, naming both models. */
TEST(stage2_with_a_larger_teacher) {
    arwkv_backend *be = NULL;
    arwkv_model *base = NULL, *big = NULL, *other = NULL, *s = NULL;
    arwkv_trainer *tr = NULL;
    CHECK_OK(arwkv_backend_cpu(2, &be));
    if (be) CHECK_OK(arwkv_model_load(ARCH_DIR "/llama-gqa", be, &base));
    if (be) CHECK_OK(arwkv_model_load(ARCH_DIR "/qwen3", be, &big));
    if (be) CHECK_OK(arwkv_model_load("models/qwen2-code-tiny", be, &other));
    if (base) CHECK_OK(arwkv_student_create(base, NULL, &s));
    if (!s || !big || !other) goto done;
    arwkv_train_options o;
    arwkv_train_options_default(&o, 2);
    o.seq_len = 16, o.batch = 1, o.steps = 1;
    CHECK_OK(arwkv_trainer_create(big, s, &o, NULL, &tr));
    arwkv_trainer_free(tr);
    tr = NULL;
    arwkv_train_options_default(&o, 1);
    o.seq_len = 16, o.batch = 1, o.steps = 1;
    CHECK(arwkv_trainer_create(big, s, &o, NULL, &tr) == ARWKV_ERR_SHAPE && strstr(arwkv_last_error(), ARCH_DIR "/qwen3") &&
              strstr(arwkv_last_error(), "stage 2"),
          "stage 1 with another teacher: %s", arwkv_last_error());
    arwkv_trainer_free(tr);
    tr = NULL;
    arwkv_train_options_default(&o, 2);
    o.seq_len = 16, o.batch = 1, o.steps = 1;
    CHECK(arwkv_trainer_create(other, s, &o, NULL, &tr) == ARWKV_ERR_SHAPE && strstr(arwkv_last_error(), "models/qwen2-code-tiny") &&
              strstr(arwkv_last_error(), "151936") && strstr(arwkv_last_error(), "512"),
          "another vocabulary: %s", arwkv_last_error());
    arwkv_trainer_free(tr);
done:
    arwkv_model_free(s);
    arwkv_model_free(other);
    arwkv_model_free(big);
    arwkv_model_free(base);
    arwkv_backend_destroy(be);
}

/* ---- The binaries, as a person runs them -------------------------------------------------------------- */

/* The binaries on each teacher: arwkv-eval's nll and arwkv-chat's greedy continuation are
   transformers' (the text tokenized by Hugging Face tokenizers, which our tokenizer must match). */
TEST(teacher_eval_and_chat_match_transformers) {
    if (!test_file_exists("build/arwkv-eval") || !test_file_exists("build/arwkv-chat")) SKIP("build/arwkv-* not built (run make first)");
    for (int mi = 0; mi < N_MODELS; mi++) {
        char dir[256], ref[256], cmd[1024], *out;
        snprintf(dir, sizeof dir, ARCH_DIR "/%s", model_names[mi]);
        snprintf(ref, sizeof ref, ARCH_DIR "/%s.ref.safetensors", model_names[mi]);
        arwkv_safetensors *st = NULL;
        arwkv_tokenizer *tok = NULL;
        CHECK_OK(arwkv_st_open(ref, &st));
        CHECK_OK(arwkv_tokenizer_load(dir, &tok));
        if (!st || !tok) {
            arwkv_st_close(st);
            arwkv_tokenizer_free(tok);
            continue;
        }
        /* the same 128 tokens as transformers saw */
        int n = 0;
        int32_t *want_ids = ref_ids(st, "eval.ids", &n);
        char *text = NULL;
        size_t len = 0;
        CHECK_OK(arwkv__read_file("tests/data/tokenizer/code.txt", &text, &len));
        arwkv_tokens toks;
        memset(&toks, 0, sizeof toks);
        if (text) CHECK_OK(arwkv_tokenizer_encode(tok, text, len, ARWKV_TOKENIZE_SPECIAL, &toks));
        CHECK(want_ids && toks.n >= (size_t)n && memcmp(toks.ids, want_ids, sizeof(int32_t) * n) == 0, "%s: our tokens differ from tokenizers'",
              model_names[mi]);
        arwkv_tokens_free(&toks);
        arwkv__free(text);
        free(want_ids);
        const arwkv_tensor_info *nt = arwkv_st_find(st, "eval.nll");
        double want_nll = 0, nll = -1;
        if (nt && nt->dtype == ARWKV_F64) memcpy(&want_nll, nt->data, sizeof want_nll);
        snprintf(cmd, sizeof cmd, "build/arwkv-eval --model %s --text tests/data/tokenizer/code.txt --max-tokens %d 2>/dev/null", dir, n);
        int rc = test_run(cmd, &out);
        const char *line = strncmp(out, "tokens ", 7) == 0 ? out : NULL;
        CHECK(rc == 0 && line && sscanf(line, "tokens %*d nll %lf", &nll) == 1 && fabs(nll - want_nll) <= 1e-4 * want_nll,
              "%s: arwkv-eval nll %.7f, transformers %.7f (%d: %s)", model_names[mi], nll, want_nll, rc, out);
        free(out);
        /* greedy chat --raw --prompt prints transformers' continuation */
        int nc = 0;
        int32_t *chat_ids = ref_ids(st, "chat.ids", &nc);
        char want[1024];
        size_t wl = 0;
        if (chat_ids) CHECK_OK(arwkv_tokenizer_decode(tok, chat_ids, (size_t)nc, want, sizeof want, &wl));
        snprintf(cmd, sizeof cmd, "build/arwkv-chat --model %s --raw --prompt 'def fibonacci(n):' -n 16 --temperature 0 --repeat-penalty 1 2>/dev/null",
                 dir);
        rc = test_run(cmd, &out);
        CHECK(rc == 0 && chat_ids && nc > 0 && wl < sizeof want && strcmp(out, want) == 0, "%s: arwkv-chat printed '%s' (%d), transformers' '%s'",
              model_names[mi], out, rc, want);
        free(out);
        free(chat_ids);
        arwkv_tokenizer_free(tok);
        arwkv_st_close(st);
    }
}

#define DISTILL "build/arwkv-distill --data tests/test_arch.c --eval-data tests/test.h --seq-len 32 --batch 2 --steps 3 --threads 2 "

/* Stage 1 then stage 2 of an ARWKV-7 and a QRWKV6 student of the Llama teacher, each saved, then
   loaded by arwkv-chat (--raw --prompt), arwkv-generate and arwkv-eval; stage 2 again with the
   larger Qwen3 teacher; the Qwen2 teacher's other vocabulary refused. */
TEST(distill_chat_and_eval_students_of_llama) {
    if (!test_file_exists("build/arwkv-distill") || !test_file_exists("build/arwkv-generate")) SKIP("build/arwkv-* not built (run make first)");
    static const char *const archs[2] = {"arwkv7", "qrwkv6"};
    static const char *const names[2] = {"RwkvHybridForCausalLM", "RWKV6Qwen2ForCausalLM"};
    char cmd[1024], *out;
    for (int a = 0; a < 2; a++) {
        snprintf(cmd, sizeof cmd,
                 "rm -rf build/test_arch_%s_s1 build/test_arch_%s_s2 && " DISTILL "--teacher " ARCH_DIR "/llama-gqa --out build/test_arch_%s_s1 "
                 "--stage 1 --arch %s --lr 1e-3 >/dev/null 2>&1 && " DISTILL "--teacher " ARCH_DIR "/llama-gqa --student build/test_arch_%s_s1 "
                 "--out build/test_arch_%s_s2 --stage 2 --lr 5e-4 2>&1",
                 archs[a], archs[a], archs[a], archs[a], archs[a], archs[a]);
        int st = test_run(cmd, &out);
        CHECK(st == 0 && strstr(out, names[a]) && strstr(out, "student saved"), "%s stages 1 and 2: %d\n%s", archs[a], st, out);
        free(out);
        snprintf(cmd, sizeof cmd, "build/test_arch_%s_s2/config.json", archs[a]);
        arwkv_config c;
        CHECK_OK(arwkv_config_load(cmd, &c));
        CHECK(c.base_arch == ARWKV_ARCH_LLAMA && c.rms_norm_eps == 1e-5f && !c.tie_word_embeddings, "%s: saved config", archs[a]);
        /* greedy chat --raw and arwkv-generate continue the prompt identically */
        char *gen;
        snprintf(cmd, sizeof cmd, "build/arwkv-chat --model build/test_arch_%s_s2 --raw --prompt 'def add(a, b):' -n 6 --temperature 0 "
                                  "--repeat-penalty 1 2>/dev/null", archs[a]);
        st = test_run(cmd, &out);
        snprintf(cmd, sizeof cmd, "build/arwkv-generate build/test_arch_%s_s2 'def add(a, b):' 6 2>/dev/null", archs[a]);
        int gst = test_run(cmd, &gen);
        CHECK(st == 0 && gst == 0 && strlen(out) > 0 && strcmp(out, gen) == 0, "%s: chat '%s' (%d), generate '%s' (%d)", archs[a], out, st, gen, gst);
        free(out), free(gen);
        snprintf(cmd, sizeof cmd, "build/arwkv-eval --model build/test_arch_%s_s2 --text tests/test.h --max-tokens 100 2>/dev/null", archs[a]);
        st = test_run(cmd, &out);
        double nll = 0;
        CHECK(st == 0 && sscanf(out, "tokens 100 nll %lf", &nll) == 1 && nll > 0 && nll < 7.0, "%s: eval '%s'", archs[a], out);
        free(out);
    }
    int st = test_run("rm -rf build/test_arch_big && " DISTILL "--teacher " ARCH_DIR "/qwen3 --student build/test_arch_arwkv7_s1 "
                 "--out build/test_arch_big --stage 2 --lr 5e-4 2>&1", &out);
    CHECK(st == 0 && strstr(out, "student saved"), "stage 2 with the larger Qwen3 teacher: %d\n%s", st, out);
    free(out);
    st = test_run(DISTILL "--teacher models/qwen2-code-tiny --student build/test_arch_arwkv7_s1 --out build/test_arch_bad --stage 2 2>&1", &out);
    CHECK(st != 0 && strstr(out, "models/qwen2-code-tiny") && strstr(out, "build/test_arch_arwkv7_s1") && strstr(out, "vocabulary"),
          "another vocabulary: %d %s", st, out);
    free(out);
}

int main(void) {
    RUN(config_fields_of_llama_and_qwen3);
    RUN(config_refusals_name_the_key);
    RUN(config_from_other_sources_is_finished_alike);
    RUN(forward_matches_transformers);
    RUN(cached_decoding_and_greedy_match_transformers);
    RUN(students_of_llama_and_qwen3_save_and_load);
    RUN(qrwkv6_student_of_qwen3_reads_the_teachers_queries_and_keys);
    RUN(stage2_with_a_larger_teacher);
    RUN(teacher_eval_and_chat_match_transformers);
    RUN(distill_chat_and_eval_students_of_llama);
    return test_summary("arch");
}
