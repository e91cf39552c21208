/* Teacher: the Qwen2 ops (RoPE, causal GQA attention) against float64 references, and the Qwen2
   forward against what transformers computes (shared/reference/qwen2_code_tiny_reference.safetensors
   and, when present, tests/data/teacher_ref.safetensors made by tools/ref_teacher.py).

   The measure of a tensor's error is test_rel_err: max |ours - reference| / max |reference| over the
   tensor. Beside it we print the worst elementwise relative error |a - b| / |b| over the elements
   with |b| >= 1% of max |b| (smaller elements are rounding noise of sums that cancel). */
#define ARWKV_IMPLEMENTATION
#include "arwkv.h"
#include "test.h"

static int quick(void) { return getenv("ARWKV_TEST_QUICK") && *getenv("ARWKV_TEST_QUICK") == '1'; }

static double elem_rel_err(const float *a, const float *b, size_t n) {
    double mb = 0, worst = 0;
    for (size_t i = 0; i < n; i++) mb = fabs((double)b[i]) > mb ? fabs((double)b[i]) : mb;
    for (size_t i = 0; i < n; i++)
        if (fabs((double)b[i]) >= 0.01 * mb) {
            double e = fabs((double)a[i] - (double)b[i]) / fabs((double)b[i]);
            if (!(e <= worst)) worst = e;
        }
    return worst;
}

/* ---- RoPE ----------------------------------------------------------------------------------------- */

TEST(rope_matches_closed_form) {
    arwkv_backend *be;
    CHECK_OK(arwkv_backend_cpu(2, &be));
    const int rows = 37, H = 3, D = 64;
    const ptrdiff_t ld = H * D + 5; /* a padded row stride */
    const double theta = 1e6;
    float *x = (float *)malloc(sizeof(float) * rows * ld), *y = (float *)malloc(sizeof(float) * rows * ld),
          *z = (float *)malloc(sizeof(float) * rows * ld);
    int32_t pos[37];
    test_seed(1);
    test_fill_randn(x, (size_t)rows * ld, 1);
    for (int r = 0; r < rows; r++) pos[r] = 300 + 7 * r;
    memcpy(y, x, sizeof(float) * rows * ld);
    CHECK_OK(be->qwen->rope_forward(be, y, rows, H, D, ld, pos, 0, theta));
    double worst = 0, mx = 0;
    for (int r = 0; r < rows; r++)
        for (int h = 0; h < H; h++)
            for (int i = 0; i < D / 2; i++) {
                double angle = pos[r] * pow(theta, -2.0 * i / D), c = cos(angle), s = sin(angle);
                const float *xr = x + r * ld + h * D;
                double want1 = xr[i] * c - xr[i + D / 2] * s, want2 = xr[i + D / 2] * c + xr[i] * s;
                const float *yr = y + r * ld + h * D;
                double e = fmax(fabs(yr[i] - want1), fabs(yr[i + D / 2] - want2));
                worst = e > worst ? e : worst;
                mx = fmax(mx, fmax(fabs(want1), fabs(want2)));
            }
    /* the angle is formed in fp32 as transformers does: near position 550 it is off by up to half an
       ulp, 3e-5 rad */
    CHECK(worst / mx < 2e-5, "rope vs closed form: max error %g of max %g", worst, mx);
    for (int r = 0; r < rows; r++) /* the padding between rows is never touched */
        for (int j = H * D; j < ld; j++) CHECK(y[r * ld + j] == x[r * ld + j], "padding changed at row %d", r);
    /* positions as an offset give the same bits as the same positions listed per row */
    for (int r = 0; r < rows; r++) pos[r] = 40 + r;
    memcpy(y, x, sizeof(float) * rows * ld);
    memcpy(z, x, sizeof(float) * rows * ld);
    CHECK_OK(be->qwen->rope_forward(be, y, rows, H, D, ld, pos, 0, theta));
    CHECK_OK(be->qwen->rope_forward(be, z, rows, H, D, ld, NULL, 40, theta));
    CHECK(memcmp(y, z, sizeof(float) * rows * ld) == 0, "offset and per-row positions differ");
    /* repeated positions (the sequences of a batch) take the table of angles made once per position:
       the same bits as each row rotated on its own */
    for (int r = 0; r < rows; r++) pos[r] = (r * 5) % 12;
    memcpy(y, x, sizeof(float) * rows * ld);
    memcpy(z, x, sizeof(float) * rows * ld);
    CHECK_OK(be->qwen->rope_forward(be, y, rows, H, D, ld, pos, 0, theta));
    for (int r = 0; r < rows; r++) CHECK_OK(be->qwen->rope_forward(be, z + r * ld, 1, H, D, ld, NULL, pos[r], theta));
    CHECK(memcmp(y, z, sizeof(float) * rows * ld) == 0, "batched positions differ from rows rotated one at a time");
    /* position 0 is the identity */
    memcpy(y, x, sizeof(float) * rows * ld);
    CHECK_OK(be->qwen->rope_forward(be, y, 1, H, D, ld, NULL, 0, theta));
    CHECK(memcmp(y, x, sizeof(float) * H * D) == 0, "position 0 changed the row");
    CHECK(be->qwen->rope_forward(be, y, rows, H, 63, ld, NULL, 0, theta) == ARWKV_ERR_INVALID_ARGUMENT &&
              strstr(arwkv_last_error(), "head_dim 63"), "odd head_dim rejected: %s", arwkv_last_error());
    free(x), free(y), free(z);
    arwkv_backend_destroy(be);
}

/* ---- Attention ------------------------------------------------------------------------------------ */

/* float64 causal GQA attention, the textbook way: full score rows, softmax, weighted sum. */
static void attention_ref(double *out, const float *q, const float *k, const float *v, int B, int Tq, int p0, int H, int Hkv, int D,
                          ptrdiff_t kv_bs) {
    double *s = (double *)malloc(sizeof(double) * (p0 + Tq));
    for (int b = 0; b < B; b++)
        for (int i = 0; i < Tq; i++)
            for (int h = 0; h < H; h++) {
                int g = h / (H / Hkv), n = p0 + i + 1;
                const float *qi = q + ((size_t)(b * Tq + i) * H + h) * D;
                double m = -INFINITY, l = 0;
                for (int j = 0; j < n; j++) {
                    const float *kj = k + b * kv_bs + ((size_t)j * Hkv + g) * D;
                    double d = 0;
                    for (int e = 0; e < D; e++) d += (double)qi[e] * kj[e];
                    s[j] = d / sqrt((double)D);
                    m = s[j] > m ? s[j] : m;
                }
                for (int j = 0; j < n; j++) l += (s[j] = exp(s[j] - m));
                double *o = out + ((size_t)(b * Tq + i) * H + h) * D;
                for (int e = 0; e < D; e++) {
                    double acc = 0;
                    for (int j = 0; j < n; j++) acc += s[j] * v[b * kv_bs + ((size_t)j * Hkv + g) * D + e];
                    o[e] = acc / l;
                }
            }
    free(s);
}

TEST(attention_matches_float64) {
    /* B, Tq, p0, H, Hkv, D: one query block and one key block; many of both with a cached prefix;
       a decode step; head sizes that are not a multiple of 16 or of 8 (the generic paths); MHA */
    static const int cases[][6] = {{2, 5, 0, 4, 2, 64}, {2, 70, 0, 4, 1, 64}, {1, 45, 100, 2, 1, 64}, {1, 1, 200, 14, 2, 64},
                                   {3, 33, 3, 6, 3, 24}, {1, 9, 70, 2, 1, 20}, {1, 40, 0, 2, 2, 128},
                                   {1, 21, 30, 2, 1, 48}};
    arwkv_backend *be[3];
    for (int t = 0; t < 3; t++) CHECK_OK(arwkv_backend_cpu(t + 1, &be[t]));
    test_seed(2);
    for (size_t cs = 0; cs < sizeof cases / sizeof cases[0]; cs++) {
        int B = cases[cs][0], Tq = cases[cs][1], p0 = cases[cs][2], H = cases[cs][3], Hkv = cases[cs][4], D = cases[cs][5];
        ptrdiff_t kv_bs = (ptrdiff_t)(p0 + Tq + 3) * Hkv * D; /* sequences not back to back */
        size_t nq = (size_t)B * Tq * H * D, nkv = (size_t)B * kv_bs;
        float *q = (float *)malloc(sizeof(float) * nq), *k = (float *)malloc(sizeof(float) * nkv), *v = (float *)malloc(sizeof(float) * nkv);
        float *out = (float *)malloc(sizeof(float) * nq), *out0 = (float *)malloc(sizeof(float) * nq);
        double *ref = (double *)malloc(sizeof(double) * nq);
        float *reff = (float *)malloc(sizeof(float) * nq);
        test_fill_randn(q, nq, 2); /* scores of a few units: a peaked softmax, as in trained models */
        test_fill_randn(k, nkv, 1);
        test_fill_randn(v, nkv, 1);
        attention_ref(ref, q, k, v, B, Tq, p0, H, Hkv, D, kv_bs);
        for (size_t i = 0; i < nq; i++) reff[i] = (float)ref[i];
        for (int t = 0; t < 3; t++) {
            for (size_t i = 0; i < nq; i++) out[i] = NAN;
            CHECK_OK(be[t]->qwen->attention_forward(be[t], out, q, k, v, B, Tq, p0, H, Hkv, D, kv_bs));
            double e = test_rel_err(out, reff, nq);
            CHECK(e < 2e-6, "case %zu (B%d Tq%d p0 %d H%d Hkv%d D%d) threads %d: error %g", cs, B, Tq, p0, H, Hkv, D, t + 1, e);
            if (t == 0) memcpy(out0, out, sizeof(float) * nq);
            else CHECK(memcmp(out0, out, sizeof(float) * nq) == 0, "case %zu: %d threads differ from 1", cs, t + 1);
        }
        free(q), free(k), free(v), free(out), free(out0), free(ref), free(reff);
    }
    /* a query block of a long prefix equals the same rows of the whole sequence (what the KV cache relies on) */
    {
        int T = 90, p0 = 61, H = 2, Hkv = 1, D = 64;
        size_t nq = (size_t)T * H * D, nkv = (size_t)T * Hkv * D;
        float *q = (float *)malloc(sizeof(float) * nq), *k = (float *)malloc(sizeof(float) * nkv), *v = (float *)malloc(sizeof(float) * nkv);
        float *full = (float *)malloc(sizeof(float) * nq), *tail = (float *)malloc(sizeof(float) * nq);
        test_fill_randn(q, nq, 2), test_fill_randn(k, nkv, 1), test_fill_randn(v, nkv, 1);
        CHECK_OK(be[1]->qwen->attention_forward(be[1], full, q, k, v, 1, T, 0, H, Hkv, D, 0));
        CHECK_OK(be[1]->qwen->attention_forward(be[1], tail, q + (size_t)p0 * H * D, k, v, 1, T - p0, p0, H, Hkv, D, 0));
        CHECK(test_rel_err(tail, full + (size_t)p0 * H * D, (size_t)(T - p0) * H * D) < 1e-6, "cached rows differ from the full pass");
        free(q), free(k), free(v), free(full), free(tail);
    }
    float x[64];
    CHECK(be[0]->qwen->attention_forward(be[0], x, x, x, x, 1, 1, 0, 3, 2, 64, 0) == ARWKV_ERR_INVALID_ARGUMENT &&
              strstr(arwkv_last_error(), "kv heads 2"), "kv heads must divide heads: %s", arwkv_last_error());
    for (int t = 0; t < 3; t++) arwkv_backend_destroy(be[t]);
}

/* ---- The reference model --------------------------------------------------------------------------- */

#define MODEL_DIR "models/qwen2-code-tiny"

typedef struct {
    arwkv_safetensors *st;
    char path[512];
} reference;

static int open_reference(reference *r, const char *name) {
    snprintf(r->path, sizeof r->path, "%s/reference/%s", test_shared_dir(), name);
    r->st = NULL;
    if (!test_file_exists(r->path)) return 0;
    CHECK_OK(arwkv_st_open(r->path, &r->st));
    return r->st != NULL;
}

/* A reference tensor as fp32 (malloc'd), or NULL with a failed CHECK. */
static float *ref_f32(arwkv_safetensors *st, const char *name, int64_t n) {
    float *x = (float *)malloc(sizeof(float) * (size_t)(n > 0 ? n : 1));
    arwkv_result r = arwkv_st_read_f32(st, name, x, n);
    CHECK(r == ARWKV_OK, "reading %s: %s", name, arwkv_last_error());
    if (r != ARWKV_OK) {
        free(x);
        return NULL;
    }
    return x;
}

/* An int32 tensor of the reference (malloc'd) and its length. */
static int32_t *ref_ids(arwkv_safetensors *st, const char *name, int *n) {
    const arwkv_tensor_info *t = arwkv_st_find(st, name);
    CHECK(t && t->dtype == ARWKV_I32, "%s: int32 tensor expected", name);
    if (!t || t->dtype != ARWKV_I32) return NULL;
    *n = (int)t->numel;
    int32_t *ids = (int32_t *)malloc(t->nbytes + 4);
    memcpy(ids, t->data, t->nbytes);
    return ids;
}

/* The bundled teacher on a CPU backend of n threads; t is NULL (after a failed CHECK) if any step failed. */
typedef struct {
    arwkv_backend *be;
    arwkv_model *m;
    arwkv_teacher *t;
} teacher_setup;

static teacher_setup open_teacher(int threads) {
    teacher_setup s = {NULL, NULL, NULL};
    CHECK_OK(arwkv_backend_cpu(threads, &s.be));
    if (s.be) CHECK_OK(arwkv_model_load(MODEL_DIR, s.be, &s.m));
    if (s.m) CHECK_OK(arwkv_teacher_create(s.m, &s.t));
    return s;
}

static void close_teacher(teacher_setup *s) {
    arwkv_teacher_free(s->t);
    arwkv_model_free(s->m);
    arwkv_backend_destroy(s->be);
}

typedef struct {
    arwkv_backend *be;
    int layers, rows, C;
    float *x, *xn, *ao; /* [layers][rows][C] */
} hook_record;

static arwkv_result record_hook(void *user, int layer, const float *x, const float *xn, const float *attn_out, int rows) {
    hook_record *h = (hook_record *)user;
    if (layer < 0 || layer >= h->layers || rows != h->rows) return ARWKV_ERR_SHAPE;
    size_t n = (size_t)rows * h->C, off = (size_t)layer * n;
    ARWKV__TRY(h->be->mem->download(h->be, h->x + off, x, n * sizeof(float)));
    ARWKV__TRY(h->be->mem->download(h->be, h->xn + off, xn, n * sizeof(float)));
    return h->be->mem->download(h->be, h->ao + off, attn_out, n * sizeof(float));
}

static arwkv_result stop_hook(void *user, int layer, const float *x, const float *xn, const float *attn_out, int rows) {
    (void)x, (void)xn, (void)attn_out, (void)rows;
    int *calls = (int *)user;
    ++*calls;
    if (layer == 2) return arwkv__fail(ARWKV_ERR_INTERRUPTED, "stopped by the hook at layer %d", layer);
    return ARWKV_OK;
}

/* Largest logit of a row (the first on ties). */
static int argmax(const float *x, int n) {
    int best = 0;
    for (int i = 1; i < n; i++)
        if (x[i] > x[best]) best = i;
    return best;
}

/* Logits of all rows of a forward's hidden states, on the host. */
static float *all_logits(arwkv_model *m, const float *hidden, int rows) {
    size_t V = (size_t)m->cfg.vocab_size;
    float *dev = NULL, *host = (float *)malloc(sizeof(float) * rows * V);
    CHECK_OK(m->be->mem->alloc(m->be, sizeof(float) * rows * V, (void **)&dev));
    if (dev) CHECK_OK(arwkv_model_logits(m, hidden, rows, dev));
    if (dev) CHECK_OK(m->be->mem->download(m->be, host, dev, sizeof(float) * rows * V));
    m->be->mem->free(m->be, dev);
    return host;
}

TEST(teacher_matches_transformers) {
    reference ref;
    if (!open_reference(&ref, "qwen2_code_tiny_reference.safetensors")) SKIP("%s not found (set ARWKV_SHARED)", ref.path);
    teacher_setup su = open_teacher(2);
    arwkv_backend *be = su.be;
    arwkv_model *m = su.m;
    arwkv_teacher *t = su.t;
    int T = 0;
    int32_t *ids = ref_ids(ref.st, "input_ids", &T);
    if (!t || !ids) goto done;
    {
        int C = m->cfg.hidden_size, L = m->cfg.num_layers, V = m->cfg.vocab_size;
        size_t n = (size_t)T * C;
        hook_record rec = {be, L, T, C, (float *)malloc(sizeof(float) * L * n), (float *)malloc(sizeof(float) * L * n),
                           (float *)malloc(sizeof(float) * L * n)};
        const float *hidden = NULL;
        CHECK_OK(arwkv_teacher_forward(t, ids, 1, T, record_hook, &rec, &hidden));
        if (!hidden) goto done_rec;
        double worst_h = 0, worst_a = 0, worst_xn = 0, elem_h = 0, elem_a = 0;
        char name[64];
        for (int l = 0; l <= L; l++) {
            snprintf(name, sizeof name, "hidden_states.%d", l);
            float *want = ref_f32(ref.st, name, (int64_t)n);
            float *got = l < L ? rec.x + l * n : (float *)malloc(sizeof(float) * n);
            if (l == L) CHECK_OK(be->mem->download(be, got, hidden, sizeof(float) * n));
            if (want) {
                double e = test_rel_err(got, want, n);
                CHECK(e < 1e-4, "%s: error %g", name, e);
                worst_h = fmax(worst_h, e), elem_h = fmax(elem_h, elem_rel_err(got, want, n));
                if (l < L) { /* the hook's xn is input_layernorm of the reference's layer input */
                    float w[4096], *xn_ref = (float *)malloc(sizeof(float) * n);
                    CHECK_OK(arwkv_param_read(m, m->layers[l].in_norm, w, C));
                    for (int r = 0; r < T; r++) {
                        double ss = 0;
                        for (int i = 0; i < C; i++) ss += (double)want[r * C + i] * want[r * C + i];
                        double rs = 1 / sqrt(ss / C + m->cfg.rms_norm_eps);
                        for (int i = 0; i < C; i++) xn_ref[r * C + i] = (float)(want[r * C + i] * rs * w[i]);
                    }
                    double exn = test_rel_err(rec.xn + l * n, xn_ref, n);
                    CHECK(exn < 1e-4, "xn of layer %d: error %g", l, exn);
                    worst_xn = fmax(worst_xn, exn);
                    free(xn_ref);
                }
            }
            free(want);
            if (l == L) free(got);
            if (l == L) break;
            snprintf(name, sizeof name, "attn_out.%d", l);
            want = ref_f32(ref.st, name, (int64_t)n);
            if (want) {
                double e = test_rel_err(rec.ao + l * n, want, n);
                CHECK(e < 1e-4, "%s: error %g", name, e);
                worst_a = fmax(worst_a, e), elem_a = fmax(elem_a, elem_rel_err(rec.ao + l * n, want, n));
            }
            free(want);
        }
        float *logits = all_logits(m, hidden, T), *want = ref_f32(ref.st, "logits", (int64_t)T * V);
        if (want) {
            double e = test_rel_err(logits, want, (size_t)T * V);
            CHECK(e < 1e-4, "logits: error %g", e);
            int same_argmax = 1;
            for (int r = 0; r < T; r++) same_argmax &= argmax(logits + (size_t)r * V, V) == argmax(want + (size_t)r * V, V);
            CHECK(same_argmax, "argmax of some row differs");
            printf("    vs transformers (max|a-b|/max|b| per tensor; worst elementwise rel. error where |b| >= 1%% of max):\n"
                   "      hidden_states.0-%d %.2e (%.2e)  attn_out.0-%d %.2e (%.2e)  hook xn %.2e  logits [%d,%d] %.2e (%.2e)\n",
                   L, worst_h, elem_h, L - 1, worst_a, elem_a, worst_xn, T, V, e, elem_rel_err(logits, want, (size_t)T * V));
        }
        free(logits), free(want);
    done_rec:
        free(rec.x), free(rec.xn), free(rec.ao);
        /* a hook can stop the forward; its code and message come back */
        int calls = 0;
        CHECK(arwkv_teacher_forward(t, ids, 1, T, stop_hook, &calls, &hidden) == ARWKV_ERR_INTERRUPTED && calls == 3 &&
                  strstr(arwkv_last_error(), "stopped by the hook") && strstr(arwkv_last_error(), "layer 2") && hidden == NULL,
              "hook stop: calls %d, '%s'", calls, arwkv_last_error());
        ids[5] = V;
        CHECK(arwkv_teacher_forward(t, ids, 1, T, NULL, NULL, &hidden) == ARWKV_ERR_INVALID_ARGUMENT &&
                  strstr(arwkv_last_error(), "position 5"), "bad id: %s", arwkv_last_error());
    }
done:
    free(ids);
    close_teacher(&su);
    arwkv_st_close(ref.st);
}

TEST(greedy_generation_matches_transformers) {
    reference ref;
    if (!open_reference(&ref, "qwen2_code_tiny_reference.safetensors")) SKIP("%s not found (set ARWKV_SHARED)", ref.path);
    teacher_setup su = open_teacher(2);
    arwkv_model *m = su.m;
    arwkv_teacher *t = su.t;
    arwkv_kv_cache *c = NULL;
    if (m) CHECK_OK(arwkv_kv_cache_create(m, 0, &c));
    int T = 0, n_want = 0;
    int32_t *prompt = ref_ids(ref.st, "input_ids", &T), *want = ref_ids(ref.st, "greedy_ids", &n_want);
    if (t && c && prompt && want) {
        int V = m->cfg.vocab_size, eos = m->cfg.eos_token_id;
        float *logits = (float *)malloc(sizeof(float) * V);
        int32_t *got = (int32_t *)malloc(sizeof(int32_t) * (n_want + 1));
        memcpy(got, prompt, sizeof(int32_t) * T);
        int n = T;
        arwkv_result r = arwkv_teacher_step(t, c, prompt, T, logits, NULL);
        CHECK_OK(r);
        while (r == ARWKV_OK && n < n_want) {
            got[n] = argmax(logits, V);
            if (got[n++] == eos) break;
            r = arwkv_teacher_step(t, c, &got[n - 1], 1, logits, NULL);
            CHECK_OK(r);
        }
        int same = n == n_want && memcmp(got, want, sizeof(int32_t) * n) == 0;
        CHECK(same, "greedy continuation differs (%d tokens, reference %d)", n, n_want);
        printf("    greedy: %d prompt + %d generated tokens, identical to transformers; cache %d positions, %zu bytes\n", T, n - T,
               arwkv_kv_cache_len(c), arwkv_kv_cache_bytes(c));
        CHECK(arwkv_kv_cache_len(c) == n - 1, "cache length %d", arwkv_kv_cache_len(c));
        CHECK(arwkv_kv_cache_bytes(c) == 2 * 8 * 64 * 64 * sizeof(float), "cache bytes %zu (64 positions of 8 layers x 64 floats x 2)",
              arwkv_kv_cache_bytes(c));
        free(logits), free(got);
    }
    free(prompt), free(want);
    arwkv_kv_cache_free(c);
    close_teacher(&su);
    arwkv_st_close(ref.st);
}

/* ---- Consistency: cache vs full pass, batch vs single, threads -------------------------------------- */

/* A deterministic token sequence of code-like ids. */
static void fake_ids(int32_t *ids, int n, unsigned seed) {
    for (int i = 0; i < n; i++) ids[i] = (int32_t)((seed = seed * 1103515245u + 12345u) >> 8) % 20000;
}

TEST(kv_cache_equals_full_forward) {
    teacher_setup su = open_teacher(2);
    arwkv_model *m = su.m;
    arwkv_teacher *t = su.t;
    arwkv_kv_cache *grow = NULL, *fixed = NULL;
    if (m) CHECK_OK(arwkv_kv_cache_create(m, 0, &grow));
    if (m) CHECK_OK(arwkv_kv_cache_create(m, 80, &fixed));
    if (t && grow && fixed) {
        const int T = 80, P = 10; /* the cache grows past its first 64 positions */
        int V = m->cfg.vocab_size;
        int32_t ids[80];
        fake_ids(ids, T, 3);
        const float *hidden;
        CHECK_OK(arwkv_teacher_forward(t, ids, 1, T, NULL, NULL, &hidden));
        float *full = all_logits(m, hidden, T), *step = (float *)malloc(sizeof(float) * T * V),
              *last = (float *)malloc(sizeof(float) * V);
        /* prefill P tokens (all their logits), then one token at a time */
        CHECK_OK(arwkv_teacher_step(t, grow, ids, P, last, step));
        CHECK(memcmp(last, step + (size_t)(P - 1) * V, sizeof(float) * V) == 0, "logits_last is the last row of logits_all");
        for (int i = P; i < T; i++) CHECK_OK(arwkv_teacher_step(t, grow, ids + i, 1, step + (size_t)i * V, NULL));
        double e = test_rel_err(step, full, (size_t)T * V);
        CHECK(e < 1e-5, "prefill %d + decode %d vs full forward: error %g", P, T - P, e);
        printf("    prefill %d + %d decode steps vs one forward of %d: logits error %.2e\n", P, T - P, T, e);
        /* a preallocated cache gives the same, then refuses to grow */
        CHECK_OK(arwkv_teacher_step(t, fixed, ids, T, NULL, step));
        CHECK(test_rel_err(step, full, (size_t)T * V) < 1e-6, "prefill of all %d tokens vs forward", T);
        CHECK(arwkv_kv_cache_bytes(fixed) == 2 * 8 * 80 * 64 * sizeof(float), "fixed cache bytes %zu", arwkv_kv_cache_bytes(fixed));
        CHECK(arwkv_teacher_step(t, fixed, ids, 1, last, NULL) == ARWKV_ERR_INVALID_ARGUMENT && strstr(arwkv_last_error(), "max_len is 80") &&
                  arwkv_kv_cache_len(fixed) == T, "full cache: %s", arwkv_last_error());
        arwkv_kv_cache_reset(fixed);
        CHECK_OK(arwkv_teacher_step(t, fixed, ids, 1, last, NULL));
        CHECK(test_rel_err(last, full, V) < 1e-5, "after reset the first position starts over: error %g", test_rel_err(last, full, V));
        free(full), free(step), free(last);
    }
    arwkv_kv_cache_free(grow);
    arwkv_kv_cache_free(fixed);
    close_teacher(&su);
}

TEST(batch_and_threads_give_the_same_results) {
    teacher_setup one = open_teacher(1), two_threads = open_teacher(2);
    arwkv_model *m1 = one.m, *m2 = two_threads.m;
    arwkv_teacher *t1 = one.t, *t2 = two_threads.t;
    if (t1 && t2) {
        const int B = 3, T = quick() ? 40 : 100; /* more than one query block per sequence */
        int C = m1->cfg.hidden_size;
        size_t n = (size_t)T * C;
        int32_t *ids = (int32_t *)malloc(sizeof(int32_t) * B * T);
        for (int b = 0; b < B; b++) fake_ids(ids + b * T, T, 10 + b);
        const float *h;
        float *batch = (float *)malloc(sizeof(float) * B * n), *single = (float *)malloc(sizeof(float) * n),
              *two = (float *)malloc(sizeof(float) * B * n);
        CHECK_OK(arwkv_teacher_forward(t2, ids, B, T, NULL, NULL, &h));
        if (h) memcpy(batch, h, sizeof(float) * B * n);
        for (int b = 0; b < B; b++) {
            CHECK_OK(arwkv_teacher_forward(t2, ids + b * T, 1, T, NULL, NULL, &h));
            if (h) {
                memcpy(single, h, sizeof(float) * n);
                double e = test_rel_err(batch + b * n, single, n);
                CHECK(e < 1e-6, "sequence %d of a batch of %d vs alone: error %g", b, B, e);
            }
        }
        /* one thread and two threads give the same bits */
        CHECK_OK(arwkv_teacher_forward(t1, ids, B, T, NULL, NULL, &h));
        if (h) memcpy(two, h, sizeof(float) * B * n);
        CHECK(memcmp(two, batch, sizeof(float) * B * n) == 0, "1 thread and 2 threads differ");
        float *l1 = all_logits(m1, h, 2), *l2 = all_logits(m2, batch, 2);
        CHECK(memcmp(l1, l2, sizeof(float) * 2 * m1->cfg.vocab_size) == 0, "logits: 1 thread and 2 threads differ");
        free(l1), free(l2), free(ids), free(batch), free(single), free(two);
    }
    close_teacher(&one);
    close_teacher(&two_threads);
}

/* ---- Longer and batched inputs: tests/data/teacher_ref.safetensors (tools/ref_teacher.py) ----------- */

#define FIXTURE "tests/data/teacher_ref.safetensors"

/* The logits of rows `positions` of a forward's hidden states (sequence b of length T), on the host. */
static float *logits_at(arwkv_model *m, const float *hidden, int b, int T, const int32_t *positions, int P) {
    size_t V = (size_t)m->cfg.vocab_size, C = (size_t)m->cfg.hidden_size;
    const int chunk = 32;
    float *host = (float *)malloc(sizeof(float) * P * V), *rows = NULL, *dev = NULL;
    CHECK_OK(m->be->mem->alloc(m->be, sizeof(float) * chunk * C, (void **)&rows));
    CHECK_OK(m->be->mem->alloc(m->be, sizeof(float) * chunk * V, (void **)&dev));
    for (int p0 = 0; rows && dev && p0 < P; p0 += chunk) {
        int n = P - p0 < chunk ? P - p0 : chunk;
        for (int i = 0; i < n; i++)
            CHECK_OK(m->be->mem->copy(m->be, rows + i * C, hidden + ((size_t)b * T + positions[p0 + i]) * C, sizeof(float) * C));
        CHECK_OK(arwkv_model_logits(m, rows, n, dev));
        CHECK_OK(m->be->mem->download(m->be, host + (size_t)p0 * V, dev, sizeof(float) * n * V));
    }
    m->be->mem->free(m->be, rows);
    m->be->mem->free(m->be, dev);
    return host;
}

/* Compare our logits at the fixture's positions of sequence `name` (those below `limit`). Errors:
   top-k values as one tensor (max |a-b| / max |b|), log-sum-exp likewise, and the best token unless
   the reference's margin to the second is below 1e-3 (a near-tie either side may win). */
static void check_topk(arwkv_model *m, arwkv_safetensors *st, const char *name, const float *hidden, int b, int T, int limit,
                       const char *label) {
    char key[96];
    int P = 0, n_id = 0;
    snprintf(key, sizeof key, "%s.positions", name);
    int32_t *positions = ref_ids(st, key, &P);
    snprintf(key, sizeof key, "%s.topk_ids", name);
    int32_t *top_ids = ref_ids(st, key, &n_id);
    if (!positions || !top_ids || P == 0) {
        free(positions), free(top_ids);
        return;
    }
    int K = n_id / P;
    snprintf(key, sizeof key, "%s.topk_logits", name);
    float *top = ref_f32(st, key, (int64_t)P * K);
    snprintf(key, sizeof key, "%s.logsumexp", name);
    float *lse = ref_f32(st, key, P);
    while (P > 0 && positions[P - 1] >= limit) P--;
    if (top && lse && P > 0) {
        size_t V = (size_t)m->cfg.vocab_size;
        float *logits = logits_at(m, hidden, b, T, positions, P);
        float *ours = (float *)malloc(sizeof(float) * P * K), *our_lse = (float *)malloc(sizeof(float) * P);
        int best_ok = 1;
        for (int p = 0; p < P; p++) {
            const float *row = logits + (size_t)p * V;
            for (int k = 0; k < K; k++) ours[p * K + k] = row[top_ids[p * K + k]];
            double mx = row[0], s = 0;
            for (size_t v = 0; v < V; v++) mx = row[v] > mx ? row[v] : mx;
            for (size_t v = 0; v < V; v++) s += exp(row[v] - mx);
            our_lse[p] = (float)(mx + log(s));
            if (argmax(row, (int)V) != top_ids[p * K] && top[p * K] - top[p * K + 1] > 1e-3f) {
                best_ok = 0;
                printf("    %s position %d: best token %d, transformers %d (margin %g)\n", name, positions[p], argmax(row, (int)V),
                       top_ids[p * K], top[p * K] - top[p * K + 1]);
            }
        }
        double e_top = test_rel_err(ours, top, (size_t)P * K), e_lse = test_rel_err(our_lse, lse, P);
        CHECK(e_top < 1e-4 && e_lse < 1e-4 && best_ok, "%s %s: top-%d logits error %g, log-sum-exp error %g", label, name, K, e_top, e_lse);
        printf("    %s %s (T=%d, %d positions): top-%d logits %.2e (elementwise %.2e), log-sum-exp %.2e\n", label, name, T, P, K, e_top,
               elem_rel_err(ours, top, (size_t)P * K), e_lse);
        free(logits), free(ours), free(our_lse);
    }
    free(positions), free(top_ids), free(top), free(lse);
}

TEST(long_and_batched_inputs_match_transformers) {
    if (!test_file_exists(FIXTURE)) SKIP("%s not found (make it with tools/ref_teacher.py on a machine with transformers)", FIXTURE);
    arwkv_safetensors *st = NULL;
    arwkv_kv_cache *c = NULL;
    CHECK_OK(arwkv_st_open(FIXTURE, &st));
    teacher_setup su = open_teacher(2);
    arwkv_model *m = su.m;
    arwkv_teacher *t = su.t;
    if (m) CHECK_OK(arwkv_kv_cache_create(m, 0, &c));
    if (!st || !t || !c) goto done;
    {
        const float *hidden;
        int V = m->cfg.vocab_size;
        /* each sequence alone; under the sanitizers only the first 512 tokens (causal: same rows) */
        const char *names[4] = {"long", "seq0", "seq1", "seq2"};
        int32_t *seq[4] = {0};
        int len[4] = {0}, min_len = INT_MAX;
        for (int s = 0; s < 4; s++) {
            char key[64];
            snprintf(key, sizeof key, "%s.ids", names[s]);
            seq[s] = ref_ids(st, key, &len[s]);
            if (!seq[s]) continue;
            int T = quick() && len[s] > 512 ? 512 : len[s];
            CHECK_OK(arwkv_teacher_forward(t, seq[s], 1, T, NULL, NULL, &hidden));
            if (hidden) check_topk(m, st, names[s], hidden, 0, T, T, "alone");
            if (s == 0 && hidden && T == len[s]) { /* two whole rows */
                int F = 0;
                int32_t *fp = ref_ids(st, "long.full_positions", &F);
                float *want = fp ? ref_f32(st, "long.full_logits", (int64_t)F * V) : NULL;
                if (want) {
                    float *got = logits_at(m, hidden, 0, T, fp, F);
                    double e = test_rel_err(got, want, (size_t)F * V);
                    CHECK(e < 1e-4, "long: whole logit rows error %g", e);
                    printf("    long: whole rows at positions %d and %d: %.2e (elementwise %.2e)\n", fp[0], fp[F - 1], e,
                           elem_rel_err(got, want, (size_t)F * V));
                    free(got);
                }
                free(fp), free(want);
            }
            if (s > 0 && len[s] < min_len) min_len = len[s];
        }
        /* the three sequences as one batch, cut to the shortest length */
        if (seq[1] && seq[2] && seq[3]) {
            int T = quick() && min_len > 256 ? 256 : min_len;
            int32_t *ids = (int32_t *)malloc(sizeof(int32_t) * 3 * T);
            for (int b = 0; b < 3; b++) memcpy(ids + b * T, seq[b + 1], sizeof(int32_t) * T);
            CHECK_OK(arwkv_teacher_forward(t, ids, 3, T, NULL, NULL, &hidden));
            for (int b = 0; hidden && b < 3; b++) check_topk(m, st, names[b + 1], hidden, b, T, T, "batch of 3");
            free(ids);
        }
        for (int s = 0; s < 4; s++) free(seq[s]);
        /* greedy continuations through the KV cache */
        for (int g = 0; g < 2; g++) {
            char key[64];
            int n_prompt = 0, n_want = 0, n_gap = 0;
            snprintf(key, sizeof key, "greedy%d.prompt", g);
            int32_t *prompt = ref_ids(st, key, &n_prompt);
            snprintf(key, sizeof key, "greedy%d.ids", g);
            int32_t *want = ref_ids(st, key, &n_want);
            snprintf(key, sizeof key, "greedy%d.gap", g);
            const arwkv_tensor_info *gi = arwkv_st_find(st, key);
            n_gap = gi ? (int)gi->numel : 0;
            float *gap = gi ? ref_f32(st, key, n_gap) : NULL;
            if (prompt && want && gap) {
                float *logits = (float *)malloc(sizeof(float) * V);
                int32_t *got = (int32_t *)malloc(sizeof(int32_t) * n_want);
                memcpy(got, prompt, sizeof(int32_t) * n_prompt);
                int n = n_prompt;
                arwkv_kv_cache_reset(c);
                arwkv_result r = arwkv_teacher_step(t, c, prompt, n_prompt, logits, NULL);
                while (r == ARWKV_OK && n < n_want) {
                    got[n] = argmax(logits, V);
                    if (got[n] != want[n]) break;
                    if (got[n++] == m->cfg.eos_token_id) break;
                    r = arwkv_teacher_step(t, c, &got[n - 1], 1, logits, NULL);
                }
                CHECK_OK(r);
                CHECK(n == n_want, "greedy%d: first difference at generated token %d of %d: ours %d, transformers %d (their margin %g)", g,
                      n - n_prompt, n_want - n_prompt, n < n_want ? got[n] : -1, n < n_want ? want[n] : -1,
                      n - n_prompt < n_gap ? gap[n - n_prompt] : -1.0f);
                if (n == n_want) printf("    greedy%d: %d prompt + %d generated tokens identical\n", g, n_prompt, n - n_prompt);
                free(logits), free(got);
            }
            free(prompt), free(want), free(gap);
        }
    }
done:
    arwkv_kv_cache_free(c);
    close_teacher(&su);
    arwkv_st_close(st);
}

/* SwiGLU forward and backward against float64 over gates from -100 to 100 (the AVX-512 build takes
   16 at a time through a polynomial exp), a length that leaves a tail, the in-place form the teacher
   uses, and a NaN gate giving NaN. */
/* RMSNorm against float64: the forward directly, the backward against central differences of the
   float64 forward (loss sum(seed * y)). 600 columns: a piece of 512 widened weights and a tail;
   bf16 weights, as the teachers store them. */
static double rms_ref_loss(const double *x, const double *w, const float *seed, int T, int C, double eps, double *y_out) {
    double L = 0;
    for (int t = 0; t < T; t++) {
        double ss = 0;
        for (int i = 0; i < C; i++) ss += x[t * C + i] * x[t * C + i];
        double r = 1 / sqrt(ss / C + eps);
        for (int i = 0; i < C; i++) {
            double y = x[t * C + i] * r * w[i];
            if (y_out) y_out[t * C + i] = y;
            L += seed[t * C + i] * y;
        }
    }
    return L;
}
TEST(rmsnorm_matches_float64) {
    enum { T = 5, C = 600 };
    static float x[T * C], seed[T * C], y[T * C], dx[T * C], dx_acc[T * C], dw[C], rstd[T];
    static uint16_t w16[C];
    static double xd[T * C], wd[C], yd[T * C];
    const float eps = 1e-6f;
    arwkv_backend *be;
    CHECK_OK(arwkv_backend_cpu(2, &be));
    test_seed(21);
    test_fill_randn(x, T * C, 1);
    test_fill_randn(seed, T * C, 1);
    for (int i = 0; i < C; i++) {
        float f = 1.0f + 0.5f * test_randn();
        uint32_t u;
        memcpy(&u, &f, 4);
        w16[i] = (uint16_t)(u >> 16);
        u = (uint32_t)w16[i] << 16;
        memcpy(&f, &u, 4);
        wd[i] = f;
    }
    for (int i = 0; i < T * C; i++) xd[i] = x[i];
    CHECK_OK(be->core->rmsnorm_forward(be, y, rstd, x, w16, ARWKV_BF16, T, C, eps));
    rms_ref_loss(xd, wd, seed, T, C, eps, yd);
    double worst = 0;
    for (int i = 0; i < T * C; i++) worst = fmax(worst, fabs(y[i] - yd[i]) / (fabs(yd[i]) + 1e-3));
    CHECK(worst < 1e-6, "forward: relative error %g", worst);
    for (int i = 0; i < C; i++) dw[i] = 0.25f; /* the weight gradient is added to */
    for (int i = 0; i < T * C; i++) dx_acc[i] = 1.0f;
    CHECK_OK(be->core->rmsnorm_backward(be, dx, dw, seed, x, w16, ARWKV_BF16, rstd, T, C, 0));
    CHECK_OK(be->core->rmsnorm_backward(be, dx_acc, NULL, seed, x, w16, ARWKV_BF16, rstd, T, C, 1));
    double worst_x = 0, worst_w = 0, worst_acc = 0, scale_x = 0, scale_w = 0;
    for (int k = 0; k < 60; k++) { /* 60 entries of each, spread over rows and both pieces */
        int ix = (k * 977) % (T * C), iw = (k * 331) % C;
        double h = 1e-5, keep = xd[ix];
        xd[ix] = keep + h;
        double lp = rms_ref_loss(xd, wd, seed, T, C, eps, NULL);
        xd[ix] = keep - h;
        double lm = rms_ref_loss(xd, wd, seed, T, C, eps, NULL);
        xd[ix] = keep;
        double gx = (lp - lm) / (2 * h);
        keep = wd[iw];
        wd[iw] = keep + h;
        lp = rms_ref_loss(xd, wd, seed, T, C, eps, NULL);
        wd[iw] = keep - h;
        lm = rms_ref_loss(xd, wd, seed, T, C, eps, NULL);
        wd[iw] = keep;
        double gw = (lp - lm) / (2 * h);
        worst_x = fmax(worst_x, fabs(dx[ix] - gx)), scale_x = fmax(scale_x, fabs(gx));
        worst_w = fmax(worst_w, fabs((dw[iw] - 0.25) - gw)), scale_w = fmax(scale_w, fabs(gw));
        worst_acc = fmax(worst_acc, fabs(dx_acc[ix] - (1.0 + dx[ix])));
    }
    CHECK(worst_x < 1e-5 * scale_x && worst_w < 1e-5 * scale_w, "backward vs finite differences: dx %g of %g, dw %g of %g", worst_x, scale_x,
          worst_w, scale_w);
    CHECK(worst_acc < 1e-6, "accumulated dx differs from 1 + dx by %g", worst_acc);
    arwkv_backend_destroy(be);
}

TEST(swiglu_matches_float64) {
    enum { N = 4099 };
    static float gate[N], up[N], dout[N], out[N], dg[N], du[N];
    arwkv_backend *be;
    CHECK_OK(arwkv_backend_cpu(2, &be));
    test_seed(5);
    for (int i = 0; i < N; i++)
        gate[i] = -100.0f + 200.0f * (float)i / (N - 1), up[i] = (float)test_uniform() * 4 - 2, dout[i] = (float)test_uniform() * 2 - 1;
    gate[N / 2] = 0;
    CHECK_OK(be->core->swiglu_forward(be, out, gate, up, N));
    CHECK_OK(be->core->swiglu_backward(be, dg, du, dout, gate, up, N));
    double worst_o = 0, worst_g = 0, worst_u = 0;
    for (int i = 0; i < N; i++) {
        double g = gate[i], s = 1 / (1 + exp(-g)), o = g * s * up[i];
        double want_u = dout[i] * g * s, want_g = dout[i] * up[i] * s * (1 + g * (1 - s));
        worst_o = fmax(worst_o, fabs(out[i] - o) / (fabs(o) + 1e-30));
        worst_u = fmax(worst_u, fabs(du[i] - want_u) / (fabs(want_u) + 1e-30));
        worst_g = fmax(worst_g, fabs(dg[i] - want_g) / (fabs(want_g) + 1e-30));
    }
    CHECK(worst_o < 1e-6 && worst_u < 1e-6 && worst_g < 1e-5, "relative errors: out %g, dup %g, dgate %g", worst_o, worst_u, worst_g);
    float in_place[N];
    memcpy(in_place, gate, sizeof in_place);
    CHECK_OK(be->core->swiglu_forward(be, in_place, in_place, up, N));
    CHECK(memcmp(in_place, out, sizeof in_place) == 0, "in place gives the same bits");
    gate[17] = NAN;
    CHECK_OK(be->core->swiglu_forward(be, out, gate, up, N));
    CHECK_OK(be->core->swiglu_backward(be, dg, du, dout, gate, up, N));
    CHECK(isnan(out[17]) && isnan(dg[17]) && isnan(du[17]) && !isnan(out[16]), "a NaN gate gives NaN");
    arwkv_backend_destroy(be);
}

/* A teacher loaded with its layers in host memory (ARWKV_LOAD_HOST_LAYERS, --stream-teacher) copies
   one layer at a time into two device slots: every number it computes must be the resident
   teacher's, bit for bit, in the batched forward (twice: the second starts from a prefetched layer
   0), in every hook call, and in cached decoding; its parameters read back the same. */
TEST(streamed_layers_equal_resident) {
    arwkv_backend *be = NULL;
    arwkv_model *res = NULL, *str = NULL;
    arwkv_teacher *tr = NULL, *ts = NULL;
    CHECK_OK(arwkv_backend_cpu(2, &be));
    if (be) CHECK_OK(arwkv_model_load(MODEL_DIR, be, &res));
    if (be) CHECK_OK(arwkv_model_load_ex(MODEL_DIR, be, ARWKV_LOAD_HOST_LAYERS, &str));
    if (res) CHECK_OK(arwkv_teacher_create(res, &tr));
    if (str) CHECK_OK(arwkv_teacher_create(str, &ts));
    if (!tr || !ts) goto out;
    {
        int L = str->cfg.num_layers, C = str->cfg.hidden_size, V = str->cfg.vocab_size, B = 2, T = 40, R = B * T;
        int host = 0, in_block = 1, layer_tensors = 0;
        for (int i = 0; i < str->n_params; i++) {
            arwkv_param *p = &str->params[i];
            layer_tensors += strncmp(p->name, "model.layers.", 13) == 0;
            if (!p->on_host) continue;
            host++;
            int l = atoi(p->name + strlen("model.layers."));
            in_block &= (char *)p->data >= (char *)str->host_block[l] && (char *)p->data < (char *)str->host_block[l] + str->host_block_bytes[l];
        }
        CHECK(host == layer_tensors && host >= 11 * L && in_block && !str->embed->on_host && !str->final_norm->on_host,
              "every layer tensor (%d of %d) and only those in host memory, inside its layer's block", host, layer_tensors);
        int n = (int)str->layers[1].mlp_up->numel;
        float *a = (float *)malloc(sizeof(float) * n), *b = (float *)malloc(sizeof(float) * n);
        CHECK_OK(arwkv_param_read(res, res->layers[1].mlp_up, a, n));
        CHECK_OK(arwkv_param_read(str, str->layers[1].mlp_up, b, n));
        CHECK(memcmp(a, b, sizeof(float) * n) == 0, "a host parameter reads back as the resident one");
        free(a), free(b);
        int32_t ids[80];
        fake_ids(ids, R, 5);
        hook_record hr = {be, L, R, C, NULL, NULL, NULL}, hs = hr;
        size_t nh = (size_t)L * R * C;
        hr.x = (float *)malloc(nh * 4), hr.xn = (float *)malloc(nh * 4), hr.ao = (float *)malloc(nh * 4);
        hs.x = (float *)malloc(nh * 4), hs.xn = (float *)malloc(nh * 4), hs.ao = (float *)malloc(nh * 4);
        const float *h1, *h2;
        float *want = (float *)malloc(sizeof(float) * R * C), *got = (float *)malloc(sizeof(float) * R * C);
        CHECK_OK(arwkv_teacher_forward(tr, ids, B, T, record_hook, &hr, &h1));
        CHECK_OK(be->mem->download(be, want, h1, sizeof(float) * R * C));
        for (int pass = 0; pass < 2; pass++) {
            memset(got, 0, sizeof(float) * R * C);
            CHECK_OK(arwkv_teacher_forward(ts, ids, B, T, record_hook, &hs, &h2));
            CHECK_OK(be->mem->download(be, got, h2, sizeof(float) * R * C));
            CHECK(memcmp(got, want, sizeof(float) * R * C) == 0, "pass %d: final hidden states equal to the bit", pass);
            CHECK(memcmp(hr.x, hs.x, nh * 4) == 0 && memcmp(hr.xn, hs.xn, nh * 4) == 0 && memcmp(hr.ao, hs.ao, nh * 4) == 0,
                  "pass %d: every layer's hook sees the same input, normed input and attention output", pass);
        }
        arwkv_kv_cache *cr = NULL, *cs = NULL;
        CHECK_OK(arwkv_kv_cache_create(res, 0, &cr));
        CHECK_OK(arwkv_kv_cache_create(str, 0, &cs));
        float *lr = (float *)malloc(sizeof(float) * V), *ls = (float *)malloc(sizeof(float) * V);
        int same = 1;
        for (int i = 0; cr && cs && i < 6; i++) { /* a prefill of 10, then single tokens */
            int k = i == 0 ? 10 : 1, at = i == 0 ? 0 : 9 + i;
            CHECK_OK(arwkv_teacher_step(tr, cr, ids + at, k, lr, NULL));
            CHECK_OK(arwkv_teacher_step(ts, cs, ids + at, k, ls, NULL));
            same &= memcmp(lr, ls, sizeof(float) * V) == 0;
        }
        CHECK(same, "cached decoding: the same logits at every step");
        arwkv_kv_cache_free(cr);
        arwkv_kv_cache_free(cs);
        free(lr), free(ls), free(want), free(got);
        free(hr.x), free(hr.xn), free(hr.ao), free(hs.x), free(hs.xn), free(hs.ao);
        /* a student loaded so (stage 1 resumed with --stream-teacher) keeps its time mix on the device: for QRWKV6
           that is everything under self_attn, the q/k/v/o its time mix reuses included */
        arwkv_student_options so;
        arwkv_student_options_default(&so);
        so.arch = ARWKV_ARCH_QRWKV6;
        arwkv_model *q6 = NULL, *back = NULL;
        CHECK_OK(arwkv_student_create(res, &so, &q6));
        if (q6) CHECK_OK(arwkv_model_save(q6, "build/test_teacher_q6", ARWKV_F32, 0, NULL));
        if (q6) CHECK_OK(arwkv_model_load_ex("build/test_teacher_q6", be, ARWKV_LOAD_HOST_LAYERS, &back));
        int attn_on_host = 0, mlp_on_host = 0;
        for (int i = 0; back && i < back->n_params; i++) {
            attn_on_host += back->params[i].on_host && strstr(back->params[i].name, ".self_attn.") != NULL;
            mlp_on_host += back->params[i].on_host && strstr(back->params[i].name, ".mlp.") != NULL;
        }
        CHECK(back && attn_on_host == 0 && mlp_on_host == 3 * L, "a QRWKV6 student's time mix stays on the device (%d on the host), its MLPs "
              "go to the host (%d of %d)", attn_on_host, mlp_on_host, 3 * L);
        arwkv_model_free(back);
        arwkv_model_free(q6);
    }
out:
    arwkv_teacher_free(tr);
    arwkv_teacher_free(ts);
    arwkv_model_free(res);
    arwkv_model_free(str);
    arwkv_backend_destroy(be);
}

int main(void) {
    RUN(rmsnorm_matches_float64);
    RUN(swiglu_matches_float64);
    RUN(rope_matches_closed_form);
    RUN(attention_matches_float64);
    RUN(teacher_matches_transformers);
    RUN(greedy_generation_matches_transformers);
    RUN(kv_cache_equals_full_forward);
    RUN(streamed_layers_equal_resident);
    RUN(batch_and_threads_give_the_same_results);
    RUN(long_and_batched_inputs_match_transformers);
    return test_summary("teacher");
}
