/* Batched generation (arwkv_generate_batch): every sequence of a batch is the sequence generated
   alone through a session, for the teacher and for ARWKV-7 and QRWKV6 students, with different
   prompt lengths, sampling options and stops, and with more requests than batch slots. */
#define ARWKV_IMPLEMENTATION
#include "arwkv.h"
#include "test.h"

/* The reference: the request alone through a session (feed the prompt, sample with the last
   ARWKV_GEN_RECENT generated tokens as the repetition window, feed the token back). */
static int alone(arwkv_model *m, const arwkv_gen_request *q, int32_t *out, int *stopped) {
    int V = m->cfg.vocab_size, n = 0;
    float *logits = (float *)malloc((size_t)V * sizeof(float));
    arwkv_session *s;
    arwkv_sampler smp;
    *stopped = 0;
    CHECK_OK(arwkv_session_create(m, 0, &s));
    CHECK_OK(arwkv_sampler_init(&smp, &q->sampling, V));
    CHECK_OK(arwkv_session_feed(s, q->prompt, q->n_prompt, logits));
    while (n < q->max_new) {
        int from = n > ARWKV_GEN_RECENT ? n - ARWKV_GEN_RECENT : 0;
        int32_t id = arwkv_sample(&smp, logits, out + from, n - from);
        out[n++] = id;
        for (int i = 0; i < q->n_stop; i++) *stopped |= q->stop[i] == id;
        if (*stopped || n == q->max_new) break;
        CHECK_OK(arwkv_session_feed(s, &id, 1, logits));
    }
    arwkv_sampler_free(&smp);
    arwkv_session_free(s);
    free(logits);
    return n;
}

#define NREQ 6
#define MAXNEW 10

static void check_model(arwkv_model *m, const arwkv_tokenizer *tok, const char *what) {
    const char *prompts[NREQ] = {"def fibonacci(n):", "import", "class Stack:\n    def push(self, x):", "# sort a list of numbers\n",
                                 "for i in range(10):\n    print(", "x"};
    arwkv_tokens toks[NREQ];
    arwkv_gen_request q[NREQ];
    int32_t outs[NREQ][MAXNEW], want[NREQ][MAXNEW];
    int want_n[NREQ], want_stopped[NREQ];
    memset(q, 0, sizeof q);
    for (int i = 0; i < NREQ; i++) {
        memset(&toks[i], 0, sizeof toks[i]);
        CHECK_OK(arwkv_tokenizer_encode(tok, prompts[i], strlen(prompts[i]), 0, &toks[i]));
        q[i].prompt = toks[i].ids, q[i].n_prompt = (int)toks[i].n, q[i].out = outs[i], q[i].max_new = MAXNEW - (i % 3);
        arwkv_sampler_options_default(&q[i].sampling);
        q[i].sampling.seed = 100 + (uint64_t)i;
        if (i % 2 == 0) q[i].sampling.temperature = 0; /* greedy */
        else q[i].sampling.temperature = 1.0f, q[i].sampling.top_p = 0.95f, q[i].sampling.top_k = 0; /* seeded sampling */
    }
    /* stops: request 2 stops at the 4th token it would generate without one, request 3 never meets its stop */
    int stopped;
    int32_t probe[MAXNEW];
    int np = alone(m, &q[2], probe, &stopped);
    static int32_t stop2[2], stop3[1] = {-5};
    stop2[0] = np > 3 ? probe[3] : 0, stop2[1] = -7;
    q[2].stop = stop2, q[2].n_stop = 2;
    q[3].stop = stop3, q[3].n_stop = 1;
    for (int i = 0; i < NREQ; i++) want_n[i] = alone(m, &q[i], want[i], &want_stopped[i]);
    CHECK(want_stopped[2] && want_n[2] <= 4 && !want_stopped[3], "%s: the stops of the reference", what);
    /* 4 slots for 6 requests: two wait for a slot; then 3 slots */
    const int batches[2] = {4, 3};
    for (int k = 0; k < 2; k++) {
        memset(outs, 0xff, sizeof outs);
        CHECK_OK(arwkv_generate_batch(m, q, NREQ, batches[k]));
        for (int i = 0; i < NREQ; i++)
            CHECK(q[i].n_out == want_n[i] && q[i].stopped == want_stopped[i] && memcmp(outs[i], want[i], (size_t)want_n[i] * sizeof(int32_t)) == 0,
                  "%s, batch %d, request %d (%s): %d tokens (stopped %d), alone %d (stopped %d); first %d %d vs %d %d", what, batches[k], i,
                  i % 2 ? "sampled" : "greedy", q[i].n_out, q[i].stopped, want_n[i], want_stopped[i], outs[i][0], outs[i][1], want[i][0], want[i][1]);
    }
    /* seeded sampling really samples: another seed gives another sequence somewhere */
    int differ = 0;
    for (int i = 1; i < NREQ; i += 2) q[i].sampling.seed += 1000;
    CHECK_OK(arwkv_generate_batch(m, q, NREQ, 4));
    for (int i = 1; i < NREQ; i += 2) differ |= q[i].n_out != want_n[i] || memcmp(outs[i], want[i], (size_t)want_n[i] * sizeof(int32_t)) != 0;
    CHECK(differ, "%s: other seeds gave the same samples", what);
    /* bad requests are refused, naming the request */
    q[4].n_prompt = 0;
    CHECK(arwkv_generate_batch(m, q, NREQ, 2) == ARWKV_ERR_INVALID_ARGUMENT && strstr(arwkv_last_error(), "request 4"), "%s: empty prompt: %s", what,
          arwkv_last_error());
    q[4].n_prompt = (int)toks[4].n, q[4].max_new = 0;
    CHECK_OK(arwkv_generate_batch(m, q + 4, 1, 2));
    CHECK(q[4].n_out == 0, "%s: max_new 0 generates nothing", what);
    for (int i = 0; i < NREQ; i++) arwkv_tokens_free(&toks[i]);
}

TEST(batch_equals_alone_teacher_and_students) {
    arwkv_backend *be;
    arwkv_model *t, *s7, *s6;
    arwkv_tokenizer *tok;
    CHECK_OK(arwkv_backend_cpu(2, &be));
    CHECK_OK(arwkv_model_load("models/qwen2-code-tiny", be, &t));
    CHECK_OK(arwkv_tokenizer_load("models/qwen2-code-tiny", &tok));
    check_model(t, tok, "teacher");
    arwkv_student_options so;
    arwkv_student_options_default(&so);
    so.init = ARWKV_INIT_INHERIT, so.seed = 7;
    CHECK_OK(arwkv_student_create(t, &so, &s7));
    check_model(s7, tok, "ARWKV-7 student");
    if (!getenv("ARWKV_TEST_QUICK")) { /* sanitizer builds: the teacher and one student are enough */
        so.arch = ARWKV_ARCH_QRWKV6;
        CHECK_OK(arwkv_student_create(t, &so, &s6));
        check_model(s6, tok, "QRWKV6 student");
        arwkv_model_free(s6);
    }
    arwkv_model_free(s7), arwkv_model_free(t);
    arwkv_tokenizer_free(tok);
    arwkv_backend_destroy(be);
}

int main(void) {
    RUN(batch_equals_alone_teacher_and_students);
    return test_summary("batch");
}
