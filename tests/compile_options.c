/* The optional switches ARWKV_NO_TOKENIZER and ARWKV_NO_TRAINING: the header still compiles as C11
   (-pedantic, warning-free) with either or both, and what is left works. The Makefile builds this
   file once per switch (-DARWKV_NO_TOKENIZER, -DARWKV_NO_TRAINING, both).

   That a part is really left out is checked at compile time: this file defines a variable under
   the name of a public function of that part, which fails to compile if the header still declares
   the function. What is left is checked at run time: the bundled teacher reads the same tokens in
   one call and token by token, and both give the same next-token logits. */
#define ARWKV_IMPLEMENTATION
#include "arwkv.h"
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#ifdef ARWKV_NO_TOKENIZER
static int arwkv_tokenizer_load = 1; /* a redeclaration error if the tokenizer API were still there */
#define LEFT_OUT_TOKENIZER arwkv_tokenizer_load
#else
#define LEFT_OUT_TOKENIZER 1
#endif
#ifdef ARWKV_NO_TRAINING
static int arwkv_trainer_create = 1; /* likewise for the trainer */
#define LEFT_OUT_TRAINING arwkv_trainer_create
#else
#define LEFT_OUT_TRAINING 1
#endif

#if defined(ARWKV_NO_TOKENIZER) && defined(ARWKV_NO_TRAINING)
#define NAME "compile_no_tokenizer_no_training"
#elif defined(ARWKV_NO_TOKENIZER)
#define NAME "compile_no_tokenizer"
#else
#define NAME "compile_no_training"
#endif

static int fail(const char *what) {
    printf("FAIL " NAME ": %s: %s\n", what, arwkv_last_error());
    return 1;
}

int main(void) {
    const char *dir = "models/qwen2-code-tiny";
    arwkv_backend *be = NULL;
    arwkv_model *m = NULL;
    arwkv_session *whole = NULL, *one_by_one = NULL;
    int32_t ids[8] = {750, 282, 2075, 982, 262, 470, 856, 13};
    int n = 8, rc = 1;
#ifndef ARWKV_NO_TOKENIZER
    arwkv_tokenizer *tok = NULL;
    arwkv_tokens t = {NULL, NULL, 0, 0};
    if (arwkv_tokenizer_load(dir, &tok) != ARWKV_OK) return fail("tokenizer");
    if (arwkv_tokenizer_encode(tok, "def add(a, b):\n    return", 25, 0, &t) != ARWKV_OK || t.n < 2) return fail("encoding");
    n = t.n < 8 ? (int)t.n : 8;
    memcpy(ids, t.ids, (size_t)n * sizeof *ids);
    arwkv_tokens_free(&t);
    arwkv_tokenizer_free(tok);
#endif
#ifndef ARWKV_NO_TRAINING
    arwkv_train_options o;
    arwkv_train_options_default(&o, 2);
    if (o.stage != 2) return fail("training options");
#endif
    if (arwkv_backend_cpu(1, &be) != ARWKV_OK) return fail("backend");
    if (arwkv_model_load(dir, be, &m) != ARWKV_OK) {
        fail("loading the model");
        goto done;
    }
    int V = m->cfg.vocab_size;
    float *a = (float *)malloc((size_t)V * sizeof(float)), *b = (float *)malloc((size_t)V * sizeof(float));
    if (!a || !b || arwkv_session_create(m, 0, &whole) != ARWKV_OK || arwkv_session_create(m, 0, &one_by_one) != ARWKV_OK) {
        fail("sessions");
        goto free_logits;
    }
    if (arwkv_session_feed(whole, ids, n, a) != ARWKV_OK) {
        fail("reading the tokens");
        goto free_logits;
    }
    for (int i = 0; i < n; i++)
        if (arwkv_session_feed(one_by_one, ids + i, 1, b) != ARWKV_OK) {
            fail("reading a token");
            goto free_logits;
        }
    double worst = 0, largest = 0;
    for (int i = 0; i < V; i++) {
        double d = fabs((double)a[i] - b[i]);
        if (!(d <= worst)) worst = d; /* a NaN counts as the worst */
        if (fabs(a[i]) > largest) largest = fabs(a[i]);
    }
    rc = !(worst <= 1e-4 * largest && largest > 0 && LEFT_OUT_TOKENIZER && LEFT_OUT_TRAINING);
    printf("%s " NAME " (%d tokens at once and one by one: logits differ by %.2g of %.2g)\n", rc ? "FAIL" : "PASS", n, worst, largest);
free_logits:
    free(a), free(b);
done:
    arwkv_session_free(whole), arwkv_session_free(one_by_one);
    arwkv_model_free(m);
    arwkv_backend_destroy(be);
    return rc;
}
