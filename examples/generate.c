/* arwkv-generate: the smallest complete program around arwkv.h - load a model (teacher or
   student), read a prompt, print its greedy continuation as it is generated.

       build/arwkv-generate MODEL_DIR "def fibonacci(n):" [N]

   Read it before examples/chat.c: the chat binary is this loop plus the chat template, sampling
   options, commands and signal handling. */
#define ARWKV_IMPLEMENTATION
#include "arwkv.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Print what failed and why; main() then frees what it holds (every pointer starts NULL). */
static int fail(const char *what) {
    fprintf(stderr, "arwkv-generate: %s: %s\n", what, arwkv_last_error());
    return 1;
}

int main(int argc, char **argv) {
    const char *usage = "usage: arwkv-generate MODEL_DIR PROMPT [N]   (N new tokens, default 32; MODEL_DIR may be a .gguf file)\n";
    if (argc == 2 && (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h"))) return fputs(usage, stdout), 0;
    if (argc < 3 || argc > 4) return fputs(usage, stderr), 2;
    int n_new = 32;
    if (argc == 4 && arwkv_parse_int("N", argv[3], 1, 1 << 30, &n_new) != ARWKV_OK)
        return fprintf(stderr, "arwkv-generate: %s\n", arwkv_last_error()), 2;

    arwkv_backend *be = NULL;
    arwkv_model *model = NULL;
    arwkv_tokenizer *tok = NULL;
    arwkv_tokens prompt = {0};
    arwkv_session *sess = NULL;
    arwkv_stream_decoder *out = NULL;
    float *logits = NULL;
    int status = 1;
    int V, eos;
    const char *text;
    size_t len;

    /* 1. A backend (all CPU threads), the model and its tokenizer. */
    if (arwkv_backend_cpu(0, &be) != ARWKV_OK) return fail("backend");
    if (arwkv_model_load(argv[1], be, &model) != ARWKV_OK) { fail("loading the model"); goto done; }
    if (arwkv_tokenizer_load(argv[1], &tok) != ARWKV_OK) { fail("loading the tokenizer"); goto done; }

    /* 2. The prompt's ids, as the raw text (no chat template, no special tokens). */
    if (arwkv_tokenizer_encode(tok, argv[2], strlen(argv[2]), 0, &prompt) != ARWKV_OK) { fail("encoding"); goto done; }
    if (prompt.n == 0) {
        fprintf(stderr, "arwkv-generate: the prompt is empty\n");
        status = 2;
        goto done;
    }

    /* 3. A session reads tokens and returns the next token's logits: a KV cache for a teacher,
          a fixed-size recurrent state for a student. The same loop serves both. */
    V = model->cfg.vocab_size, eos = model->cfg.eos_token_id;
    logits = (float *)malloc((size_t)V * sizeof(float));
    if (!logits) { fprintf(stderr, "arwkv-generate: out of memory\n"); goto done; }
    if (arwkv_session_create(model, 0, &sess) != ARWKV_OK) { fail("session"); goto done; }
    if (arwkv_stream_decoder_create(tok, &out) != ARWKV_OK) { fail("decoder"); goto done; }
    if (arwkv_session_feed(sess, prompt.ids, (int)prompt.n, logits) != ARWKV_OK) { fail("reading the prompt"); goto done; }

    /* 4. Greedy decoding: take the most likely token, print it (the stream decoder holds back
          bytes until they form whole UTF-8 characters), feed it back. */
    for (int i = 0; i < n_new; i++) {
        int32_t next = 0;
        for (int v = 1; v < V; v++)
            if (logits[v] > logits[next]) next = v;
        if (next == eos || arwkv_tokenizer_is_special(tok, next)) break;
        if (arwkv_stream_decoder_put(out, next, &text, &len) != ARWKV_OK) { fail("decoding"); goto done; }
        fwrite(text, 1, len, stdout);
        fflush(stdout);
        if (arwkv_session_feed(sess, &next, 1, logits) != ARWKV_OK) { fail("generating"); goto done; }
    }
    arwkv_stream_decoder_flush(out, &text, &len);
    fwrite(text, 1, len, stdout);
    fflush(stdout);
    fprintf(stderr, "\n[%s: %lld tokens in context, %.2f MiB of %s]\n", arwkv_arch_name(model->cfg.arch),
            (long long)arwkv_session_tokens(sess), arwkv_session_memory_bytes(sess) / 1048576.0,
            arwkv_session_is_recurrent(sess) ? "recurrent state" : "KV cache");
    status = 0;

done: /* 5. Free everything, on success and on every error alike. */
    arwkv_stream_decoder_free(out);
    arwkv_session_free(sess);
    free(logits);
    arwkv_tokens_free(&prompt);
    arwkv_tokenizer_free(tok);
    arwkv_model_free(model);
    arwkv_backend_destroy(be);
    return status;
}
