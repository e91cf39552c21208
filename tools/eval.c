/* arwkv-eval: the likelihood a model gives a text file.

     arwkv-eval --model DIR --text FILE [--max-tokens N] [--threads N]

   Tokenizes the whole file (raw bytes, special-token text not matched), keeps the first N tokens
   (default 1024) as one sequence and prints, as its last line,
     tokens N nll X ppl Y
   where X is the mean negative log-likelihood in nats of tokens 2..N given their prefix and Y =
   exp(X). Works for every model arwkv loads: the Qwen2 teacher and ARWKV-7 / QRWKV6 students. */
#define ARWKV_IMPLEMENTATION
#include "arwkv.h"
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#ifdef ARWKV_GPU
#include "arwkv_hip.h"
#endif

static void usage(FILE *f) {
    fprintf(f, "usage: arwkv-eval --model DIR --text FILE [--max-tokens N] [--threads N]%s\n"
               "  prints 'tokens N nll X ppl Y': mean negative log-likelihood (nats) of tokens 2..N\n"
               "  --model is a Hugging Face model directory or a GGUF file (weights and tokenizer)\n",
#ifdef ARWKV_GPU
            " [--gpu]"
#else
            ""
#endif
    );
}

int main(int argc, char **argv) {
    const char *model_dir = NULL, *text_path = NULL;
    int max_tokens = 1024, threads = 0, gpu = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        int has = i + 1 < argc;
        if (!strcmp(a, "--model") && has) model_dir = argv[++i];
        else if (!strcmp(a, "--text") && has) text_path = argv[++i];
        else if (!strcmp(a, "--max-tokens") && has) {
            if (arwkv_parse_int(a, argv[++i], 2, INT_MAX, &max_tokens) != ARWKV_OK) return fprintf(stderr, "arwkv-eval: %s\n", arwkv_last_error()), 2;
        } else if (!strcmp(a, "--threads") && has) {
            if (arwkv_parse_int(a, argv[++i], 0, 4096, &threads) != ARWKV_OK) return fprintf(stderr, "arwkv-eval: %s\n", arwkv_last_error()), 2;
        }
        else if (!strcmp(a, "--gpu")) gpu = 1;
        else if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            usage(stdout);
            return 0;
        } else {
            fprintf(stderr, "arwkv-eval: unknown or incomplete option '%s'\n", a);
            usage(stderr);
            return 2;
        }
    }
    if (!model_dir || !text_path || max_tokens < 2) {
        usage(stderr);
        return 2;
    }
    arwkv_backend *be = NULL;
    arwkv_model *m = NULL;
    arwkv_tokenizer *tok = NULL;
    arwkv_tokens t = {NULL, NULL, 0, 0};
    char *text = NULL;
    size_t len = 0;
    int status = 1;
#ifdef ARWKV_GPU
    arwkv_result r = gpu ? arwkv_backend_gpu(0, &be) : arwkv_backend_cpu(threads, &be);
#else
    arwkv_result r = ARWKV_OK;
    if (gpu) r = (fprintf(stderr, "arwkv-eval: this build has no GPU support (build with make gpu)\n"), ARWKV_ERR_UNSUPPORTED);
    else r = arwkv_backend_cpu(threads, &be);
#endif
    if (r == ARWKV_OK) r = arwkv_model_load(model_dir, be, &m);
    if (r == ARWKV_OK) r = arwkv_tokenizer_load(model_dir, &tok);
    if (r == ARWKV_OK) {
        FILE *f = fopen(text_path, "rb");
        if (!f) {
            fprintf(stderr, "arwkv-eval: %s: cannot open\n", text_path);
            r = ARWKV_ERR_IO;
        } else {
            size_t cap = 1 << 20;
            text = (char *)malloc(cap);
            for (size_t got; text && (got = fread(text + len, 1, cap - len, f)) > 0;) {
                len += got;
                if (len == cap) text = (char *)realloc(text, cap *= 2);
            }
            int bad = ferror(f); /* a directory opens, then fails at the first read */
            fclose(f);
            if (!text) r = ARWKV_ERR_OUT_OF_MEMORY;
            else if (bad) {
                fprintf(stderr, "arwkv-eval: %s: cannot read it (a directory?)\n", text_path);
                r = ARWKV_ERR_IO;
            }
        }
    }
    if (r == ARWKV_OK) r = arwkv_tokenizer_encode(tok, text, len, 0, &t);
    if (r == ARWKV_OK && t.n < 2) {
        fprintf(stderr, "arwkv-eval: %s: %zu tokens, need at least 2\n", text_path, t.n);
        r = ARWKV_ERR_INVALID_ARGUMENT;
    }
    if (r == ARWKV_OK) {
        int n = t.n < (size_t)max_tokens ? (int)t.n : max_tokens;
        double nll, t0 = arwkv_seconds();
        r = arwkv_model_nll(m, t.ids, n, &nll);
        if (r == ARWKV_OK) {
            fprintf(stderr, "%s (%s) on %s: %d of %zu tokens in %.1f s\n", model_dir, arwkv_arch_name(m->cfg.arch), text_path, n, t.n,
                    arwkv_seconds() - t0);
            printf("tokens %d nll %.6f ppl %.4f\n", n, nll, exp(nll));
            status = 0;
        }
    }
    if (r != ARWKV_OK && arwkv_last_error()[0]) fprintf(stderr, "arwkv-eval: %s\n", arwkv_last_error());
    arwkv_tokens_free(&t);
    free(text);
    arwkv_tokenizer_free(tok);
    arwkv_model_free(m);
    arwkv_backend_destroy(be);
    return status;
}
