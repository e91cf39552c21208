/* arwkv-eval: the likelihood a model gives a text file, and how closely it predicts like its teacher.

     arwkv-eval --model DIR --text FILE [--teacher DIR] [--max-tokens N] [--windows K] [--threads N]

   FILE is plain text (raw bytes, special-token text not matched) or, ending in .jsonl, JSON lines of
   {"text": ...} documents or {"messages": [...]} conversations (ChatML; only the assistant tokens
   are scored, as stage 3 trains them). The token stream is cut into K windows (default 1) of N
   tokens (default 1024), each read from a fresh state, and the last line printed is
     tokens N nll X ppl Y
   where X is the mean negative log-likelihood in nats of the scored tokens given their prefix (all
   tokens but each window's first) and Y = exp(X). With --teacher, the same line goes on with
     targets T teacher_nll X teacher_ppl Y kl K agreement A
   T scored tokens, the teacher's NLL and perplexity on them, K the mean KL(teacher || model) over
   the full vocabulary (nats per token) and A the fraction of positions where both models' most
   likely next token is the same (top-1 agreement). Works for every model arwkv loads: the Qwen2
   teacher and ARWKV-7 / QRWKV6 students. */
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
    fprintf(f, "usage: arwkv-eval --model DIR --text FILE [--teacher DIR] [--max-tokens N] [--windows K] [--threads N]%s\n"
               "  FILE: plain text, or .jsonl of {\"text\"} documents / {\"messages\"} conversations (assistant tokens scored)\n"
               "  --model (and --teacher) is a Hugging Face model directory or a GGUF file (weights and tokenizer)\n"
               "  prints 'tokens N nll X ppl Y': mean negative log-likelihood (nats) of the scored tokens, over K windows of N\n"
               "  tokens (default 1 x 1024); with --teacher also 'targets T teacher_nll X teacher_ppl Y kl K agreement A'\n"
               "  (KL(teacher || model) per token and the top-1 next-token agreement with the teacher)\n",
#ifdef ARWKV_GPU
            " [--gpu]"
#else
            ""
#endif
    );
}

int main(int argc, char **argv) {
    const char *model_dir = NULL, *text_path = NULL, *teacher_dir = NULL;
    int max_tokens = 1024, windows = 1, threads = 0, gpu = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        int has = i + 1 < argc;
        if (!strcmp(a, "--model") && has) model_dir = argv[++i];
        else if (!strcmp(a, "--text") && has) text_path = argv[++i];
        else if (!strcmp(a, "--teacher") && has) teacher_dir = argv[++i];
        else if (!strcmp(a, "--max-tokens") && has) {
            if (arwkv_parse_int(a, argv[++i], 2, INT_MAX, &max_tokens) != ARWKV_OK) return fprintf(stderr, "arwkv-eval: %s\n", arwkv_last_error()), 2;
        } else if (!strcmp(a, "--windows") && has) {
            if (arwkv_parse_int(a, argv[++i], 1, INT_MAX, &windows) != ARWKV_OK) return fprintf(stderr, "arwkv-eval: %s\n", arwkv_last_error()), 2;
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
    if (!model_dir || !text_path || max_tokens < 2 || windows < 1) {
        if (model_dir && text_path) fprintf(stderr, "arwkv-eval: --max-tokens must be an integer >= 2 and --windows >= 1\n");
        usage(stderr);
        return 2;
    }
    arwkv_backend *be = NULL;
    arwkv_model *m = NULL, *teacher = NULL;
    arwkv_tokenizer *tok = NULL;
    arwkv_dataset d;
    arwkv_dataset_init(&d);
    arwkv_compare_stats acc;
    memset(&acc, 0, sizeof acc);
    int status = 1, read = 0;
    double t0 = arwkv_seconds();
#ifdef ARWKV_GPU
    arwkv_result r = gpu ? arwkv_backend_gpu(0, &be) : arwkv_backend_cpu(threads, &be);
#else
    arwkv_result r = ARWKV_OK;
    if (gpu) r = (fprintf(stderr, "arwkv-eval: this build has no GPU support (build with make gpu)\n"), ARWKV_ERR_UNSUPPORTED);
    else r = arwkv_backend_cpu(threads, &be);
#endif
    if (r == ARWKV_OK) r = arwkv_model_load(model_dir, be, &m);
    if (r == ARWKV_OK && teacher_dir) r = arwkv_model_load(teacher_dir, be, &teacher);
    if (r == ARWKV_OK) r = arwkv_tokenizer_load(model_dir, &tok);
    /* the library's data reader: plain text, or JSON lines with a mask on the assistant tokens */
    if (r == ARWKV_OK) r = arwkv_dataset_add_file(&d, tok, text_path, -1);
    if (r == ARWKV_OK && d.n_tokens < 2) {
        fprintf(stderr, "arwkv-eval: %s: %zu tokens, need at least 2\n", text_path, d.n_tokens);
        r = ARWKV_ERR_INVALID_ARGUMENT;
    }
    for (int w = 0; w < windows && r == ARWKV_OK && (size_t)read + 1 < d.n_tokens; w++) {
        size_t left = d.n_tokens - (size_t)read;
        int n = left < (size_t)max_tokens ? (int)left : max_tokens;
        r = arwkv_model_compare(teacher, m, d.tokens + read, d.mask ? d.mask + read : NULL, n, &acc);
        read += n;
    }
    if (r == ARWKV_OK && acc.tokens == 0) {
        fprintf(stderr, "arwkv-eval: %s: no token to score in the first %d (a conversation file needs assistant turns)\n", text_path, read);
        r = ARWKV_ERR_INVALID_ARGUMENT;
    }
    if (r == ARWKV_OK) {
        double nll = acc.nll / acc.tokens;
        fprintf(stderr, "%s (%s) on %s: %d of %zu tokens in %.1f s\n", model_dir, arwkv_arch_name(m->cfg.arch), text_path, read, d.n_tokens,
                arwkv_seconds() - t0);
        printf("tokens %d nll %.6f ppl %.4f", read, nll, exp(nll));
        if (teacher)
            printf(" targets %lld teacher_nll %.6f teacher_ppl %.4f kl %.6f agreement %.6f", (long long)acc.tokens, acc.ref_nll / acc.tokens,
                   exp(acc.ref_nll / acc.tokens), acc.kl / acc.tokens, (double)acc.agree / acc.tokens);
        printf("\n");
        status = 0;
    }
    if (r != ARWKV_OK && arwkv_last_error()[0]) fprintf(stderr, "arwkv-eval: %s\n", arwkv_last_error());
    arwkv_dataset_free(&d);
    arwkv_tokenizer_free(tok);
    arwkv_model_free(teacher);
    arwkv_model_free(m);
    arwkv_backend_destroy(be);
    return status;
}
