/* arwkv-answer: a model answers a JSON-lines file of conversations, many at a time.

     arwkv-answer --model DIR --jsonl PROMPTS.jsonl [--out FILE] [--batch N] [-n MAX] [sampling options]

   Each input line is {"messages": [..., {"role": "user", "content": "..."}]}; the model reads it
   through its chat template with the assistant's turn opened, answers until its end-of-turn token
   (or MAX new tokens), and the line is written out with the answer appended as
   {"role": "assistant", "content": "..."}, in input order: the conversations stage 3 trains on, or
   the side-by-side answers of a teacher and a student. Up to N conversations are decoded together
   (arwkv_generate_batch). Conversation i samples with seed S + i, so an answer does not depend on
   the batch size or on the other lines.

   A tool of its own rather than an option of arwkv-generate: that example stays the smallest
   program that generates text (80 lines); this one is about files of conversations. */
#define ARWKV_IMPLEMENTATION
#include "arwkv.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#ifdef ARWKV_GPU
#include "arwkv_hip.h"
#endif

static void usage(FILE *f) {
    fprintf(f,
            "usage: arwkv-answer --model DIR --jsonl PROMPTS.jsonl [options]\n"
            "  --out FILE           where the answered conversations go (default: standard output)\n"
            "  --batch N            conversations decoded together (default 32)\n"
            "  -n, --max-new N      new tokens per answer at most (default 256)\n"
            "  --temperature T      0: greedy (default 0.7)\n"
            "  --top-k K            (default 40; 0: off)\n"
            "  --top-p P            (default 0.9)\n"
            "  --repeat-penalty R   (default 1.1; 1: off)\n"
            "  --seed S             conversation i samples with seed S+i (default 1)\n"
            "  --threads N          CPU threads (default: every CPU it may use)\n"
#ifdef ARWKV_GPU
            "  --gpu                run on the GPU\n"
#endif
    );
}

static int parse_num(const char *opt, const char *s, double lo, double hi, double *v) {
    char *end;
    *v = strtod(s, &end);
    if (!*s || *end || !(*v >= lo && *v <= hi)) return fprintf(stderr, "arwkv-answer: %s wants a number in [%g, %g], not '%s'\n", opt, lo, hi, s), 0;
    return 1;
}

typedef struct conv {
    arwkv_chat_message *msgs;
    int n;
    arwkv_tokens prompt;
    int32_t *out;
} conv;

int main(int argc, char **argv) {
    const char *model_dir = NULL, *in_path = NULL, *out_path = NULL;
    int batch = 32, max_new = 256, threads = 0, gpu = 0;
    arwkv_sampler_options so;
    arwkv_sampler_options_default(&so);
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        int has = i + 1 < argc;
        double v = 0;
        if (!strcmp(a, "--model") && has) model_dir = argv[++i];
        else if (!strcmp(a, "--jsonl") && has) in_path = argv[++i];
        else if (!strcmp(a, "--out") && has) out_path = argv[++i];
        else if (!strcmp(a, "--batch") && has) {
            if (!parse_num(a, argv[++i], 1, 4096, &v)) return 2;
            batch = (int)v;
        } else if ((!strcmp(a, "-n") || !strcmp(a, "--max-new")) && has) {
            if (!parse_num(a, argv[++i], 1, 1 << 20, &v)) return 2;
            max_new = (int)v;
        } else if (!strcmp(a, "--temperature") && has) {
            if (!parse_num(a, argv[++i], 0, 100, &v)) return 2;
            so.temperature = (float)v;
        } else if (!strcmp(a, "--top-k") && has) {
            if (!parse_num(a, argv[++i], 0, 1 << 30, &v)) return 2;
            so.top_k = (int)v;
        } else if (!strcmp(a, "--top-p") && has) {
            if (!parse_num(a, argv[++i], 1e-6, 1, &v)) return 2;
            so.top_p = (float)v;
        } else if (!strcmp(a, "--repeat-penalty") && has) {
            if (!parse_num(a, argv[++i], 1e-3, 100, &v)) return 2;
            so.repetition_penalty = (float)v;
        } else if (!strcmp(a, "--seed") && has) {
            if (!parse_num(a, argv[++i], 0, 1e15, &v)) return 2;
            so.seed = (uint64_t)v;
        } else if (!strcmp(a, "--threads") && has) {
            if (!parse_num(a, argv[++i], 0, 4096, &v)) return 2;
            threads = (int)v;
        } else if (!strcmp(a, "--gpu")) gpu = 1;
        else if (!strcmp(a, "-h") || !strcmp(a, "--help")) return usage(stdout), 0;
        else return fprintf(stderr, "arwkv-answer: unknown option or missing value: '%s' (see --help)\n", a), 2;
    }
    if (!model_dir || !in_path) return usage(stderr), 2;

    arwkv_backend *be = NULL;
    arwkv_model *m = NULL;
    arwkv_tokenizer *tok = NULL;
    conv *cv = NULL;
    arwkv_gen_request *q = NULL;
    char *text = NULL, *json = NULL;
    size_t len = 0, n_conv = 0, cap_conv = 0;
    FILE *out = NULL;
    int status = 1;
    double t0 = arwkv_seconds();
    long long generated = 0;
    int32_t stop[2];
    int n_stop = 0;
#ifdef ARWKV_GPU
    arwkv_result r = gpu ? arwkv_backend_gpu(0, &be) : arwkv_backend_cpu(threads, &be);
#else
    arwkv_result r = gpu ? (fprintf(stderr, "arwkv-answer: this build has no GPU support (build it with make gpu)\n"), ARWKV_ERR_UNSUPPORTED)
                         : arwkv_backend_cpu(threads, &be);
#endif
    if (r == ARWKV_OK) r = arwkv_model_load(model_dir, be, &m);
    if (r == ARWKV_OK) r = arwkv_tokenizer_load(model_dir, &tok);
    if (r == ARWKV_OK) { /* the whole file, then one conversation per non-blank line */
        FILE *f = fopen(in_path, "rb");
        if (!f) r = (fprintf(stderr, "arwkv-answer: %s: cannot open\n", in_path), ARWKV_ERR_IO);
        for (size_t cap = 0, got = 1; f && got > 0;) {
            if (len == cap) {
                char *t = (char *)realloc(text, (cap = cap ? 2 * cap : 1 << 16) + 1);
                if (!t) break;
                text = t;
            }
            got = fread(text + len, 1, cap - len, f);
            len += got;
        }
        if (f) fclose(f);
    }
    for (size_t pos = 0, line = 1; r == ARWKV_OK && text && pos < len; line++) {
        size_t end = pos;
        while (end < len && text[end] != '\n') end++;
        size_t a = pos;
        pos = end + 1;
        while (a < end && (text[a] == ' ' || text[a] == '\t' || text[a] == '\r')) a++;
        if (a == end) continue;
        if (n_conv == cap_conv) {
            conv *c = (conv *)realloc(cv, (cap_conv = cap_conv ? 2 * cap_conv : 256) * sizeof *cv);
            if (!c) {
                r = ARWKV_ERR_OUT_OF_MEMORY;
                break;
            }
            cv = c;
        }
        conv *c = &cv[n_conv];
        memset(c, 0, sizeof *c);
        char name[600];
        snprintf(name, sizeof name, "%.500s line %zu", in_path, line);
        r = arwkv_chat_parse(text + a, end - a, name, &c->msgs, &c->n);
        if (r == ARWKV_OK) n_conv++;
        if (r == ARWKV_OK && (c->n == 0 || strcmp(c->msgs[c->n - 1].role, "user")))
            r = (fprintf(stderr, "arwkv-answer: %s: the last message must be the user's (the one to answer)\n", name), ARWKV_ERR_FORMAT);
        if (r == ARWKV_OK) r = arwkv_chat_encode(tok, c->msgs, c->n, ARWKV_CHAT_GENERATION_PROMPT, &c->prompt);
    }
    if (r == ARWKV_OK && n_conv == 0) r = (fprintf(stderr, "arwkv-answer: %s: no conversation in it\n", in_path), ARWKV_ERR_FORMAT);
    /* the end of an assistant turn, and the end of text (a model that skips the turn's end) */
    const char *stops[2] = {"<|im_end|>", "<|endoftext|>"};
    for (int i = 0; i < 2; i++)
        if (arwkv_tokenizer_token_id(tok, stops[i]) >= 0) stop[n_stop++] = arwkv_tokenizer_token_id(tok, stops[i]);
    if (r == ARWKV_OK) {
        q = (arwkv_gen_request *)calloc(n_conv, sizeof *q);
        if (!q) r = ARWKV_ERR_OUT_OF_MEMORY;
        for (size_t i = 0; i < n_conv && r == ARWKV_OK; i++) {
            cv[i].out = (int32_t *)malloc((size_t)max_new * sizeof(int32_t));
            if (!cv[i].out) r = ARWKV_ERR_OUT_OF_MEMORY;
            q[i].prompt = cv[i].prompt.ids, q[i].n_prompt = (int)cv[i].prompt.n, q[i].sampling = so, q[i].max_new = max_new;
            q[i].sampling.seed = so.seed + i, q[i].stop = stop, q[i].n_stop = n_stop, q[i].out = cv[i].out;
        }
    }
    if (r == ARWKV_OK) r = arwkv_generate_batch(m, q, (int)n_conv, batch);
    if (r == ARWKV_OK) {
        out = out_path ? fopen(out_path, "w") : stdout;
        if (!out) r = (fprintf(stderr, "arwkv-answer: %s: cannot write\n", out_path), ARWKV_ERR_IO);
    }
    for (size_t i = 0; i < n_conv && r == ARWKV_OK; i++) {
        int n = q[i].n_out - (q[i].stopped ? 1 : 0); /* the stop token is not text */
        size_t cap = 16 * (size_t)n + 16, tl = 0;
        char *answer = (char *)malloc(cap);
        generated += q[i].n_out;
        r = answer ? arwkv_tokenizer_decode(tok, cv[i].out, (size_t)n, answer, cap, &tl) : ARWKV_ERR_OUT_OF_MEMORY;
        if (r == ARWKV_OK && tl >= cap) { /* snprintf-style: the needed length came back */
            char *bigger = (char *)realloc(answer, tl + 1);
            r = bigger ? arwkv_tokenizer_decode(tok, cv[i].out, (size_t)n, bigger, tl + 1, &tl) : ARWKV_ERR_OUT_OF_MEMORY;
            answer = bigger ? bigger : answer;
        }
        arwkv_chat_message *all = r == ARWKV_OK ? (arwkv_chat_message *)malloc((size_t)(cv[i].n + 1) * sizeof *all) : NULL;
        if (all) {
            memcpy(all, cv[i].msgs, (size_t)cv[i].n * sizeof *all);
            all[cv[i].n].role = "assistant", all[cv[i].n].content = answer;
            r = arwkv_chat_to_json(all, cv[i].n + 1, &json);
            if (r == ARWKV_OK) fprintf(out, "%s\n", json);
            arwkv_free(json);
            json = NULL;
        } else if (r == ARWKV_OK) r = ARWKV_ERR_OUT_OF_MEMORY;
        free(all);
        free(answer);
    }
    if (out && out != stdout && fclose(out) != 0 && r == ARWKV_OK) r = (fprintf(stderr, "arwkv-answer: %s: write failed\n", out_path), ARWKV_ERR_IO);
    if (r == ARWKV_OK) {
        double s = arwkv_seconds() - t0;
        fprintf(stderr, "arwkv-answer: %zu conversations, %lld tokens generated in %.1f s (%.0f tokens/s, batch %d, %s)\n", n_conv, generated, s,
                generated / s, batch, arwkv_backend_name(be));
        status = 0;
    } else if (arwkv_last_error()[0]) fprintf(stderr, "arwkv-answer: %s\n", arwkv_last_error());
    for (size_t i = 0; i < n_conv; i++) {
        arwkv_free(cv[i].msgs);
        arwkv_tokens_free(&cv[i].prompt);
        free(cv[i].out);
    }
    free(cv), free(q), free(text);
    arwkv_tokenizer_free(tok);
    arwkv_model_free(m);
    arwkv_backend_destroy(be);
    return status;
}
