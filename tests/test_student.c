/* The ARWKV-7 student as a model: created from the teacher, its names and shapes (the layout of
   published ARWKV checkpoints), its initial values, saving and loading. (The time mix's math is
   tested in test_rwkv7.c.) */
#define ARWKV_IMPLEMENTATION
#include "arwkv.h"
#include "test.h"

static arwkv_backend *be;
static arwkv_model *teacher;

/* The spec's tensor table for one layer of an ARWKV-7 student with the gate and no group norm,
   at C = 128 (2 heads of 64) with upstream's LoRA ranks 64, 64, 32, 128. */
static const struct {
    const char *suffix;
    int ndim;
    int64_t shape[3];
} tmix_table[] = {
    {"x_r", 3, {1, 1, 128}}, {"x_w", 3, {1, 1, 128}}, {"x_k", 3, {1, 1, 128}}, {"x_v", 3, {1, 1, 128}},
    {"x_a", 3, {1, 1, 128}}, {"x_g", 3, {1, 1, 128}}, {"w0", 3, {1, 1, 128}}, {"w1", 2, {128, 64}},
    {"w2", 2, {64, 128}}, {"a0", 3, {1, 1, 128}}, {"a1", 2, {128, 64}}, {"a2", 2, {64, 128}},
    {"v0", 3, {1, 1, 128}}, {"v1", 2, {128, 32}}, {"v2", 2, {32, 128}}, {"g1", 2, {128, 128}},
    {"g2", 2, {128, 128}}, {"k_k", 3, {1, 1, 128}}, {"k_a", 3, {1, 1, 128}}, {"r_k", 2, {2, 64}},
    {"receptance.weight", 2, {128, 128}}, {"key.weight", 2, {128, 128}}, {"value.weight", 2, {128, 128}},
    {"output.weight", 2, {128, 128}},
};

TEST(student_layout_matches_spec) {
    arwkv_model *s;
    CHECK_OK(arwkv_student_create(teacher, NULL, &s));
    if (!s) return;
    CHECK(s->cfg.arch == ARWKV_ARCH_ARWKV7 && s->cfg.wkv_has_gate && !s->cfg.wkv_has_group_norm, "config");
    int n_tmix = (int)(sizeof tmix_table / sizeof tmix_table[0]);
    CHECK(s->n_params == 1 + 8 * (2 + 3 + n_tmix) + 1, "parameter count %d", s->n_params);
    for (int l = 0; l < 8; l++)
        for (int k = 0; k < n_tmix; k++) {
            char name[128];
            snprintf(name, sizeof name, "model.layers.%d.self_attn.time_mixer.%s", l, tmix_table[k].suffix);
            arwkv_param *p = arwkv_model_param(s, name);
            CHECK(p != NULL, "%s missing", name);
            if (!p) continue;
            int ok = p->ndim == tmix_table[k].ndim && p->dtype == ARWKV_F32;
            for (int d = 0; d < p->ndim; d++) ok &= p->shape[d] == tmix_table[k].shape[d];
            CHECK(ok, "%s shape/dtype", name);
        }
    CHECK(arwkv_model_param(s, "model.layers.0.self_attn.q_proj.weight") == NULL, "no attention left");
    /* copied parts are the teacher's, bit for bit */
    float a[512 * 128], b[512 * 128];
    CHECK_OK(arwkv_param_read(teacher, teacher->layers[5].mlp_up, a, 512 * 128));
    CHECK_OK(arwkv_param_read(s, s->layers[5].mlp_up, b, 512 * 128));
    CHECK(memcmp(a, b, sizeof a) == 0 && s->layers[5].mlp_up->dtype == ARWKV_BF16, "MLP copied in its stored type");
    arwkv_model_free(s);
}

TEST(student_upstream_init_values) {
    arwkv_student_options o;
    arwkv_student_options_default(&o);
    o.seed = 42;
    arwkv_model *s;
    CHECK_OK(arwkv_student_create(teacher, &o, &s));
    if (!s) return;
    float v[128 * 128];
    int l = 3, C = 128;
    double r0 = 3.0 / 7.0, r1 = 1 - 3.0 / 8.0;
    CHECK_OK(arwkv_param_read(s, s->layers[l].x_k, v, C));
    CHECK(fabs(v[100] - (1 - (pow(100.0 / C, 0.9 * r1) + 0.4 * r0))) < 1e-6, "x_k[100] = %g", v[100]);
    CHECK_OK(arwkv_param_read(s, s->layers[l].w0, v, C));
    CHECK(fabs(v[127] - (-7 + 5 + 0.5)) < 1e-5 && fabs(v[0] - (-6.5)) < 1e-6, "w0 ends %g %g", v[0], v[127]);
    CHECK_OK(arwkv_param_read(s, s->layers[l].v0, v, C));
    CHECK(v[0] == 1 && v[127] == 1, "v0 = 1");
    CHECK_OK(arwkv_param_read(s, s->layers[l].k_k, v, C));
    CHECK(v[5] == 0.85f, "k_k");
    /* w2 [64,128]: rows orthogonal with norm 0.1 */
    CHECK_OK(arwkv_param_read(s, s->layers[l].w2, v, 64 * 128));
    double worst = 0;
    for (int i = 0; i < 64; i++)
        for (int j = 0; j <= i; j++) {
            double d = 0;
            for (int k = 0; k < 128; k++) d += (double)v[i * 128 + k] * v[j * 128 + k];
            worst = fmax(worst, fabs(d - (i == j ? 0.01 : 0)));
        }
    CHECK(worst < 1e-6, "w2 orthogonality %g", worst);
    /* r/k/v/o: U(-1/sqrt(C), 1/sqrt(C)) with the right spread */
    CHECK_OK(arwkv_param_read(s, s->layers[l].key, v, C * C));
    double mx = 0, var = 0;
    for (int i = 0; i < C * C; i++) mx = fmax(mx, fabs(v[i])), var += (double)v[i] * v[i];
    var /= C * C;
    CHECK(mx <= 1 / sqrt(128.0) && fabs(var - 1.0 / (3 * 128)) < 0.05 / (3 * 128), "kaiming uniform: max %g var %g", mx, var);
    /* the same seed gives the same student; another seed another one */
    arwkv_model *s2;
    CHECK_OK(arwkv_student_create(teacher, &o, &s2));
    float w[128 * 128];
    CHECK_OK(arwkv_param_read(s2, s2->layers[l].key, w, C * C));
    CHECK(memcmp(v, w, sizeof w) == 0, "deterministic");
    arwkv_model_free(s2);
    o.seed = 43;
    CHECK_OK(arwkv_student_create(teacher, &o, &s2));
    CHECK_OK(arwkv_param_read(s2, s2->layers[l].key, w, C * C));
    CHECK(memcmp(v, w, sizeof w) != 0, "seed matters");
    arwkv_model_free(s2);
    arwkv_model_free(s);
}

TEST(student_inherit_init) {
    arwkv_student_options o;
    arwkv_student_options_default(&o);
    o.init = ARWKV_INIT_INHERIT;
    arwkv_model *s;
    CHECK_OK(arwkv_student_create(teacher, &o, &s));
    if (!s) return;
    static float kq[64 * 128], ks[128 * 128], q[128 * 128], r[128 * 128];
    CHECK_OK(arwkv_param_read(teacher, teacher->layers[2].k_w, kq, 64 * 128));
    CHECK_OK(arwkv_param_read(s, s->layers[2].key, ks, 128 * 128));
    /* one kv head of 64 shared by both query heads: rows 0..63 and 64..127 are both k_proj */
    CHECK(memcmp(ks, kq, sizeof kq) == 0 && memcmp(ks + 64 * 128, kq, sizeof kq) == 0, "key = k_proj with kv heads repeated");
    CHECK_OK(arwkv_param_read(teacher, teacher->layers[2].q_w, q, 128 * 128));
    CHECK_OK(arwkv_param_read(s, s->layers[2].receptance, r, 128 * 128));
    CHECK(memcmp(q, r, sizeof q) == 0, "receptance = q_proj");
    arwkv_model_free(s);
}

TEST(student_save_load_roundtrip) {
    arwkv_student_options o;
    arwkv_student_options_default(&o);
    o.group_norm = 1;
    arwkv_model *s;
    CHECK_OK(arwkv_student_create(teacher, &o, &s));
    if (!s) return;
    system("rm -rf build/test_student_saved");
    CHECK_OK(arwkv_model_save(s, "build/test_student_saved", ARWKV_DTYPE_UNKNOWN, 20 << 20, "models/qwen2-code-tiny"));
    arwkv_model *t;
    CHECK_OK(arwkv_model_load("build/test_student_saved", be, &t));
    if (t) {
        CHECK(t->cfg.arch == ARWKV_ARCH_ARWKV7 && t->cfg.wkv_has_group_norm && t->cfg.head_size == 64 && t->rank_v == 32, "config and ranks");
        CHECK(t->n_params == s->n_params, "same parameters");
        int same = 1;
        for (int i = 0; i < s->n_params && same; i++) {
            arwkv_param *p = &s->params[i], *q = arwkv_model_param(t, p->name);
            same = q && q->dtype == p->dtype && q->numel == p->numel &&
                   memcmp(p->data, q->data, (size_t)p->numel * arwkv_dtype_size(p->dtype)) == 0; /* CPU: host memory */
        }
        CHECK(same, "every tensor loads back bit for bit, in its type");
        CHECK(test_file_exists("build/test_student_saved/tokenizer.json"), "tokenizer files copied");
        /* tied: lm_head.weight is written too, equal to the embeddings: llama.cpp's arwkv7 loader
           requires output.weight (issue 13, item 13); loaded back, the model is still tied */
        arwkv_safetensors *st;
        CHECK_OK(arwkv_st_open("build/test_student_saved", &st));
        if (st) {
            const arwkv_tensor_info *h = arwkv_st_find(st, "lm_head.weight"), *emb = arwkv_st_find(st, "model.embed_tokens.weight");
            CHECK(h && emb && h->dtype == emb->dtype && h->nbytes == emb->nbytes && memcmp(h->data, emb->data, h->nbytes) == 0,
                  "lm_head.weight = embeddings");
            arwkv_st_close(st);
        }
        CHECK(t->cfg.tie_word_embeddings && t->lm_head == t->embed, "still tied when loaded");
        /* the config.json keys published ARWKV checkpoints have */
        char *text;
        size_t len;
        CHECK_OK(arwkv__read_file("build/test_student_saved/config.json", &text, &len));
        if (text) {
            CHECK(strstr(text, "\"RwkvHybridForCausalLM\"") && strstr(text, "\"model_type\": \"rwkv_hybrid\"") &&
                      strstr(text, "\"wkv_version\": 7") && strstr(text, "\"head_size_divisor\": 8") && strstr(text, "\"wkv_has_group_norm\": true"),
                  "config keys:\n%s", text);
            arwkv__free(text);
        }
        arwkv_model_free(t);
    }
    arwkv_model_free(s);
}

/* ---- running the student ---------------------------------------------------------------------------- */

static arwkv_model *small_student(int seed) {
    arwkv_student_options o;
    arwkv_student_options_default(&o);
    o.seed = (uint64_t)seed;
    o.init = ARWKV_INIT_INHERIT; /* a student that already computes something attention-like */
    arwkv_model *s = NULL;
    if (arwkv_student_create(teacher, &o, &s) != ARWKV_OK) return NULL;
    /* make the LoRAs non-trivial so every path of the time mix is exercised */
    test_seed((unsigned long long)seed + 100);
    for (int l = 0; l < s->cfg.num_layers; l++) {
        arwkv_param *ps[4] = {s->layers[l].w1, s->layers[l].a1, s->layers[l].v1, s->layers[l].g1};
        for (int k = 0; k < 4; k++) {
            float *v = (float *)malloc((size_t)ps[k]->numel * sizeof(float));
            test_fill_randn(v, (size_t)ps[k]->numel, 0.05f);
            arwkv_param_write(s, ps[k], v, ps[k]->numel);
            free(v);
        }
        float g2[128 * 128];
        test_fill_randn(g2, 128 * 128, 0.02f);
        arwkv_param_write(s, s->layers[l].g2, g2, 128 * 128);
    }
    return s;
}

TEST(rnn_recurrent_equals_sequence) {
    arwkv_model *s = small_student(1);
    CHECK(s != NULL, "create: %s", arwkv_last_error());
    if (!s) return;
    arwkv_rnn *r;
    CHECK_OK(arwkv_rnn_create(s, &r));
    enum { T = 37, V = 151936 };
    int32_t ids[T];
    test_seed(21);
    for (int i = 0; i < T; i++) ids[i] = (int32_t)(test_uniform() * 5000);
    float *all = (float *)malloc(sizeof(float) * T * (size_t)V), *one = (float *)malloc(sizeof(float) * V);
    arwkv_rnn_state *st, *st2;
    CHECK_OK(arwkv_rnn_state_create(s, &st));
    CHECK_OK(arwkv_rnn_state_create(s, &st2));
    CHECK_OK(arwkv_rnn_step(r, st, ids, T, NULL, all)); /* the whole sequence at once */
    double worst = 0;
    for (int t = 0; t < T; t++) { /* token by token from a state */
        CHECK_OK(arwkv_rnn_step(r, st2, ids + t, 1, one, NULL));
        worst = fmax(worst, test_rel_err(one, all + (size_t)t * V, V));
    }
    CHECK(worst < 1e-5, "recurrent vs sequence logits: %g", worst);
    CHECK(arwkv_rnn_state_tokens(st2) == T && arwkv_rnn_state_tokens(st) == T, "token counts");
    /* chunks of 10 + 27 with the state carried equal the whole */
    CHECK_OK(arwkv_rnn_state_reset(st2));
    CHECK_OK(arwkv_rnn_step(r, st2, ids, 10, NULL, NULL));
    CHECK_OK(arwkv_rnn_step(r, st2, ids + 10, 27, one, NULL));
    CHECK(test_rel_err(one, all + (size_t)(T - 1) * V, V) < 1e-5, "chunked: %g", test_rel_err(one, all + (size_t)(T - 1) * V, V));
    /* a saved state loads back and continues identically */
    CHECK_OK(arwkv_rnn_state_save(st2, "build/test_state.safetensors"));
    arwkv_rnn_state *st3;
    CHECK_OK(arwkv_rnn_state_create(s, &st3));
    CHECK_OK(arwkv_rnn_state_load(st3, "build/test_state.safetensors"));
    float *a = (float *)malloc(sizeof(float) * V), *b = (float *)malloc(sizeof(float) * V);
    int32_t next = 42;
    CHECK_OK(arwkv_rnn_step(r, st2, &next, 1, a, NULL));
    CHECK_OK(arwkv_rnn_step(r, st3, &next, 1, b, NULL));
    CHECK(memcmp(a, b, sizeof(float) * V) == 0 && arwkv_rnn_state_tokens(st3) == T + 1, "save/load continues bit for bit");
    CHECK(arwkv_rnn_state_bytes(st3) == 8 * (128 + 2 * 64 * 64) * 4, "state bytes %zu", arwkv_rnn_state_bytes(st3));
    /* a state of another model is refused with a reason */
    arwkv_model *other = small_student(2);
    arwkv_rnn_state *so;
    if (other && arwkv_rnn_state_create(other, &so) == ARWKV_OK) {
        arwkv_param_write(other, other->layers[0].in_norm, (float[128]){0.5f}, 128);
        CHECK(arwkv_rnn_state_load(so, "build/test_state.safetensors") == ARWKV_ERR_INVALID_ARGUMENT && strstr(arwkv_last_error(), "another model"),
              "foreign state: %s", arwkv_last_error());
        arwkv_rnn_state_free(so);
    }
    arwkv_model_free(other);
    /* students of one teacher share shape, embeddings and norms: the same student loads the state,
       one that differs only in its time-mix weights (another seed, or one more training step) does
       not (issue 13, item 6) */
    other = small_student(1);
    if (other && arwkv_rnn_state_create(other, &so) == ARWKV_OK) {
        CHECK_OK(arwkv_rnn_state_load(so, "build/test_state.safetensors"));
        arwkv_param *w = other->layers[3].receptance; /* a time-mix matrix, nudged as a training step would */
        float *v = (float *)malloc((size_t)w->numel * sizeof(float));
        CHECK_OK(arwkv_param_read(other, w, v, w->numel));
        for (int64_t i = 0; i < w->numel; i++) v[i] += 1e-4f * (v[i] >= 0 ? 1 : -1);
        CHECK_OK(arwkv_param_write(other, w, v, w->numel));
        free(v);
        CHECK(arwkv_rnn_state_load(so, "build/test_state.safetensors") == ARWKV_ERR_INVALID_ARGUMENT && strstr(arwkv_last_error(), "another model"),
              "a state of the student before its last step: %s", arwkv_last_error());
        arwkv_rnn_state_free(so);
    }
    arwkv_model_free(other);
    other = small_student(2);
    if (other && arwkv_rnn_state_create(other, &so) == ARWKV_OK) { /* another seed */
        CHECK(arwkv_rnn_state_load(so, "build/test_state.safetensors") == ARWKV_ERR_INVALID_ARGUMENT, "another seed: %s", arwkv_last_error());
        arwkv_rnn_state_free(so);
    }
    arwkv_model_free(other);
    /* a state file with a NaN is refused, naming the tensor and element (issue 13, item 8) */
    arwkv_safetensors *sf;
    long at = -1;
    if (arwkv_st_open("build/test_state.safetensors", &sf) == ARWKV_OK) {
        at = (long)arwkv_st_find(sf, "wkv")->offset + 4 * 5;
        arwkv_st_close(sf);
    }
    FILE *f = at > 0 ? fopen("build/test_state.safetensors", "r+b") : NULL;
    float nan_ = NAN;
    CHECK(f && fseek(f, at, SEEK_SET) == 0 && fwrite(&nan_, 4, 1, f) == 1, "cannot patch the state file");
    if (f) fclose(f);
    CHECK(arwkv_rnn_state_load(st3, "build/test_state.safetensors") == ARWKV_ERR_NUMERIC &&
              strstr(arwkv_last_error(), "tensor 'wkv' holds a non-finite value (NaN or Inf) at element 5"),
          "NaN state: %s", arwkv_last_error());
    free(all), free(one), free(a), free(b);
    arwkv_rnn_state_free(st), arwkv_rnn_state_free(st2), arwkv_rnn_state_free(st3);
    arwkv_rnn_free(r);
    arwkv_model_free(s);
}

TEST(rnn_batch_equals_single) {
    arwkv_model *s = small_student(3);
    if (!s) return;
    arwkv_rnn *r;
    CHECK_OK(arwkv_rnn_create(s, &r));
    enum { B = 3, T = 19 };
    int32_t ids[B * T];
    test_seed(5);
    for (int i = 0; i < B * T; i++) ids[i] = (int32_t)(test_uniform() * 151936);
    const float *hid;
    static float batch[B * T * 128], single[T * 128];
    CHECK_OK(arwkv_rnn_forward(r, ids, B, T, NULL, 0, &hid));
    memcpy(batch, hid, sizeof batch);
    for (int b = 0; b < B; b++) {
        CHECK_OK(arwkv_rnn_forward(r, ids + b * T, 1, T, NULL, 0, &hid));
        memcpy(single, hid, sizeof single);
        CHECK(memcmp(single, batch + b * T * 128, sizeof single) == 0, "sequence %d of the batch equals it alone", b);
    }
    int32_t bad = 151936;
    CHECK(arwkv_rnn_forward(r, &bad, 1, 1, NULL, 0, &hid) == ARWKV_ERR_INVALID_ARGUMENT && strstr(arwkv_last_error(), "151936"), "bad id");
    arwkv_rnn_free(r);
    arwkv_model_free(s);
}

/* The model-level backward (norms, MLP, residuals, the time mix, the embedding) against central
   differences of loss = sum(hidden * R) in double, parameter by parameter. */
TEST(rnn_backward_matches_finite_differences) {
    arwkv_model *s = small_student(4);
    if (!s) return;
    CHECK_OK(arwkv__make_trainable(s, 2, 0));
    arwkv_rnn *r;
    CHECK_OK(arwkv_rnn_create(s, &r));
    enum { B = 2, T = 9, C = 128 };
    int32_t ids[B * T];
    test_seed(8);
    for (int i = 0; i < B * T; i++) ids[i] = (int32_t)(test_uniform() * 3000);
    static float R[B * T * C];
    test_fill_randn(R, B * T * C, 1);
    const float *hid;
    CHECK_OK(arwkv__zero_grads(s));
    CHECK_OK(arwkv_rnn_forward(r, ids, B, T, NULL, 1, &hid));
    CHECK_OK(arwkv_rnn_backward(r, R));
    /* The forward runs in fp32, so a difference quotient carries rounding noise of about 1e-3 here;
       probing each parameter's largest gradient entry with a step of 10% keeps the comparison
       meaningful (a wrong gradient is off by far more than the 3% allowed). */
    arwkv_param *probes[] = {s->layers[0].in_norm, s->layers[6].post_norm, s->layers[2].mlp_up, s->layers[7].mlp_down,
                             s->layers[1].mlp_gate, s->layers[3].x_k, s->layers[0].value, s->layers[5].w0,
                             s->layers[4].output, s->final_norm, s->embed, s->layers[1].v2, s->layers[2].key,
                             s->layers[6].a2, s->layers[3].g1, s->layers[0].receptance, s->layers[7].k_k, s->layers[2].r_k};
    for (size_t k = 0; k < sizeof probes / sizeof probes[0]; k++) {
        arwkv_param *p = probes[k];
        int64_t at = 0;
        for (int64_t i = 1; i < p->numel; i++)
            if (fabsf(p->grad[i]) > fabsf(p->grad[at])) at = i;
        float *w = (float *)p->data, keep = w[at];
        double h = 0.1 * fmax(fabs(keep), 0.1), lp[2];
        for (int side = 0; side < 2; side++) {
            w[at] = (float)(keep + (side ? -h : h));
            CHECK_OK(arwkv_rnn_forward(r, ids, B, T, NULL, 0, &hid));
            double l = 0;
            for (int i = 0; i < B * T * C; i++) l += (double)hid[i] * R[i];
            lp[side] = l;
        }
        w[at] = keep;
        double fd = (lp[0] - lp[1]) / (2 * h), an = p->grad[at];
        CHECK(fabs(fd - an) <= 3e-2 * fabs(fd) && fabs(an) > 1e-3, "%s[%lld]: analytic %g, finite difference %g", p->name, (long long)at, an, fd);
    }
    arwkv_rnn_free(r);
    arwkv_model_free(s);
}

/* Recomputing each layer's activations in the backward (ARWKV_RNN_TRAIN_RECOMPUTE) gives the same
   gradients, to the bit, as keeping them all, for both time mixes; the hidden states too. */
static void recompute_equals_keeping(arwkv_model *s, const char *what) {
    CHECK_OK(arwkv__make_trainable(s, 2, 0));
    arwkv_rnn *r;
    CHECK_OK(arwkv_rnn_create(s, &r));
    enum { B = 2, T = 11, C = 128 };
    int32_t ids[B * T];
    test_seed(12);
    for (int i = 0; i < B * T; i++) ids[i] = (int32_t)(test_uniform() * 3000);
    static float R[B * T * C], hid_keep[B * T * C];
    test_fill_randn(R, B * T * C, 1);
    float *saved[512];
    int n = s->n_params < 512 ? s->n_params : 512, differ = 0, nonzero = 0;
    for (int pass = 0; pass < 2; pass++) {
        const float *hid;
        CHECK_OK(arwkv__zero_grads(s));
        CHECK_OK(arwkv_rnn_forward(r, ids, B, T, NULL, pass ? ARWKV_RNN_TRAIN_RECOMPUTE : ARWKV_RNN_TRAIN, &hid));
        if (pass == 0) memcpy(hid_keep, hid, sizeof hid_keep);
        else CHECK(memcmp(hid_keep, hid, sizeof hid_keep) == 0, "%s: the hidden states differ", what);
        CHECK_OK(arwkv_rnn_backward(r, R));
        for (int i = 0; i < n; i++) {
            const arwkv_param *p = &s->params[i];
            if (!p->grad) continue;
            size_t bytes = (size_t)p->numel * sizeof(float);
            if (pass == 0) {
                saved[i] = (float *)malloc(bytes);
                memcpy(saved[i], p->grad, bytes);
                for (int64_t j = 0; j < p->numel; j++) nonzero += p->grad[j] != 0;
            } else {
                if (memcmp(saved[i], p->grad, bytes) != 0) {
                    if (differ++ < 3) printf("    %s: %s differs\n", what, p->name);
                }
                free(saved[i]);
            }
        }
    }
    CHECK(differ == 0 && nonzero > 1000, "%s: %d gradients differ (%d nonzero entries)", what, differ, nonzero);
    /* recomputation reads no states: a state would already be advanced when the backward reruns */
    arwkv_rnn_state *st;
    CHECK_OK(arwkv_rnn_state_create(s, &st));
    const float *hid;
    arwkv_rnn_state *sts[1] = {st};
    CHECK(arwkv_rnn_forward(r, ids, 1, T, sts, ARWKV_RNN_TRAIN_RECOMPUTE, &hid) == ARWKV_ERR_INVALID_ARGUMENT &&
              strstr(arwkv_last_error(), "recomputation"), "%s: states refused: %s", what, arwkv_last_error());
    arwkv_rnn_state_free(st);
    arwkv_rnn_free(r);
    arwkv_model_free(s);
}

TEST(rnn_recompute_equals_keeping) {
    arwkv_model *s = small_student(5);
    if (s) recompute_equals_keeping(s, "ARWKV-7");
    arwkv_student_options o;
    arwkv_student_options_default(&o);
    o.arch = ARWKV_ARCH_QRWKV6;
    CHECK_OK(arwkv_student_create(teacher, &o, &s));
    if (s) recompute_equals_keeping(s, "QRWKV6");
}

TEST(rnn_qrwkv6_recurrent_equals_sequence) {
    arwkv_student_options o;
    arwkv_student_options_default(&o);
    o.arch = ARWKV_ARCH_QRWKV6;
    arwkv_model *s;
    CHECK_OK(arwkv_student_create(teacher, &o, &s));
    if (!s) return;
    arwkv_rnn *r;
    CHECK_OK(arwkv_rnn_create(s, &r));
    enum { T = 21, V = 151936 };
    int32_t ids[T];
    test_seed(31);
    for (int i = 0; i < T; i++) ids[i] = (int32_t)(test_uniform() * 5000);
    float *all = (float *)malloc(sizeof(float) * T * (size_t)V), *one = (float *)malloc(sizeof(float) * V);
    arwkv_rnn_state *a, *b;
    CHECK_OK(arwkv_rnn_state_create(s, &a));
    CHECK_OK(arwkv_rnn_state_create(s, &b));
    CHECK_OK(arwkv_rnn_step(r, a, ids, T, NULL, all));
    double worst = 0;
    for (int t = 0; t < T; t++) {
        CHECK_OK(arwkv_rnn_step(r, b, ids + t, 1, one, NULL));
        worst = fmax(worst, test_rel_err(one, all + (size_t)t * V, V));
    }
    CHECK(worst < 1e-5, "QRWKV6 recurrent vs sequence: %g", worst);
    CHECK(arwkv_rnn_state_bytes(a) == 8 * (128 + 2 * 64 * 64) * 4, "state bytes %zu", arwkv_rnn_state_bytes(a));
    free(all), free(one);
    arwkv_rnn_state_free(a), arwkv_rnn_state_free(b);
    arwkv_rnn_free(r);
    arwkv_model_free(s);
}

int main(void) {
    if (arwkv_backend_cpu(2, &be) != ARWKV_OK || arwkv_model_load("models/qwen2-code-tiny", be, &teacher) != ARWKV_OK) {
        printf("FAIL setup: %s\n", arwkv_last_error());
        return 1;
    }
    RUN(student_layout_matches_spec);
    RUN(student_upstream_init_values);
    RUN(student_inherit_init);
    RUN(student_save_load_roundtrip);
    RUN(rnn_recurrent_equals_sequence);
    RUN(rnn_batch_equals_single);
    RUN(rnn_backward_matches_finite_differences);
    RUN(rnn_recompute_equals_keeping);
    RUN(rnn_qrwkv6_recurrent_equals_sequence);
    arwkv_model_free(teacher);
    arwkv_backend_destroy(be);
    return test_summary("student");
}
