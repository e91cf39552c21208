/* arwkv-tokenize: the tokenizer of arwkv.h on the command line.

     arwkv-tokenize --tokenizer PATH FILE            ids of FILE on one line
     arwkv-tokenize --tokenizer PATH --decode FILE   ids in FILE -> the bytes they stand for
     arwkv-tokenize --tokenizer PATH --chat FILE     JSON lines {"role","content"} -> the chat template's text

   The ids are those of Hugging Face tokenizers' tokenizer.encode(text).ids. */
#define ARWKV_IMPLEMENTATION
#include "arwkv.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void usage(FILE *f) {
    fprintf(f,
            "usage: arwkv-tokenize --tokenizer PATH [OPTIONS] [FILE]\n"
            "\n"
            "Encode FILE (standard input if absent or '-'), read as raw bytes with no newline\n"
            "translation, and print its token ids on one line, separated by single spaces. Nothing is\n"
            "added (no BOS/EOS). Text of added tokens such as <|endoftext|> or <|im_end|> in the file\n"
            "becomes those tokens, as tokenizers' encode does, unless --no-special is given.\n"
            "\n"
            "  --tokenizer PATH      tokenizer.json, a model directory that holds one, or a GGUF file\n"
            "  --no-special          added-token text is ordinary text (use for untrusted input)\n"
            "  --decode              FILE holds ids separated by white space: write their bytes\n"
            "  --chat                FILE holds one JSON object per line, {\"role\": R, \"content\": C}\n"
            "                        (R: system, user, assistant, tool): print it as the chat template\n"
            "                        of tokenizer_config.json beside the tokenizer writes it\n"
            "  --chat-template F     with --chat: chatml or llama3 instead\n"
            "  --ids                 with --chat: print the ids of the conversation instead\n"
            "  --mask                with --chat --ids: and a second line, 1 under each token a model\n"
            "                        learns in fine-tuning (assistant contents and the token that ends them)\n"
            "  --generation-prompt   with --chat: end with the assistant's header (\"<|im_start|>assistant\\n\")\n"
            "  -h, --help            this text\n"
            "\n"
            "example: arwkv-tokenize --tokenizer models/qwen2-code-tiny hello.txt\n");
}

/* Print the library's error, after `what` if not empty. */
static int fail(const char *what) {
    fprintf(stderr, "arwkv-tokenize: %s%s%s\n", what, *what && *arwkv_last_error() ? ": " : "", arwkv_last_error());
    return 1;
}

/* The whole of a file or of standard input. */
static char *slurp(const char *path, size_t *len) {
    FILE *f = strcmp(path, "-") == 0 ? stdin : fopen(path, "rb");
    if (!f) {
        fprintf(stderr, "arwkv-tokenize: cannot open %s\n", path);
        return NULL;
    }
    size_t cap = 1 << 16, n = 0, got;
    char *data = (char *)malloc(cap + 1);
    while (data && (got = fread(data + n, 1, cap - n, f)) > 0) {
        n += got;
        if (n == cap) data = (char *)realloc(data, (cap *= 2) + 1);
    }
    int err = ferror(f);
    if (f != stdin) fclose(f);
    if (!data || err) {
        fprintf(stderr, "arwkv-tokenize: %s: %s\n", path, data ? "read error" : "out of memory");
        free(data);
        return NULL;
    }
    data[n] = 0;
    *len = n;
    return data;
}

static void print_ids(const arwkv_tokens *t) {
    for (size_t i = 0; i < t->n; i++) printf(i ? " %d" : "%d", (int)t->ids[i]);
    printf("\n");
}

static int decode_file(const arwkv_tokenizer *tok, const char *text, const char *path) {
    const char *p = text;
    for (;;) {
        while (*p == ' ' || *p == '\n' || *p == '\t' || *p == '\r') p++;
        if (!*p) break;
        char *end;
        long v = strtol(p, &end, 10);
        size_t n;
        const char *bytes = end != p ? arwkv_tokenizer_token_bytes(tok, (int32_t)v, &n) : NULL;
        if (end == p || v < 0 || v > INT32_MAX || !bytes) {
            int word = (int)strcspn(p, " \t\r\n");
            fprintf(stderr, "arwkv-tokenize: %s: byte %zu: '%.*s' is not a token id (0..%d)\n", path, (size_t)(p - text),
                    word > 20 ? 20 : word, p, (int)arwkv_tokenizer_vocab_size(tok) - 1);
            return 1;
        }
        fwrite(bytes, 1, n, stdout);
        p = end;
    }
    return 0;
}

/* JSON lines -> messages (arwkv_chat_parse_lines) -> the template's text or ids. */
static int chat_file(const arwkv_tokenizer *tok, const arwkv_chat_template *tpl, char *text, const char *path, int flags, int ids,
                     int mask) {
    arwkv_chat_message *msgs = NULL;
    int n = 0, status = 0;
    if (arwkv_chat_parse_lines(text, strlen(text), path, &msgs, &n) != ARWKV_OK) return fail("");
    if (ids) {
        arwkv_tokens t = {0};
        if (arwkv_chat_template_encode(tpl, tok, msgs, n, flags, &t) != ARWKV_OK) status = fail("");
        else {
            print_ids(&t);
            if (mask) {
                for (size_t i = 0; i < t.n; i++) printf(i ? " %d" : "%d", t.mask[i]);
                printf("\n");
            }
        }
        arwkv_tokens_free(&t);
    } else {
        size_t len;
        if (arwkv_chat_template_render(tpl, msgs, n, flags, NULL, 0, &len) != ARWKV_OK) status = fail("");
        else {
            char *out = (char *)malloc(len + 1);
            arwkv_chat_template_render(tpl, msgs, n, flags, out, len + 1, &len);
            fwrite(out, 1, len, stdout);
            free(out);
        }
    }
    arwkv_free(msgs);
    return status;
}

int main(int argc, char **argv) {
    const char *tokenizer = NULL, *file = "-", *template_name = NULL;
    int special = 1, decode = 0, chat = 0, ids = 0, mask = 0, generation = 0, have_file = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0) {
            usage(stdout);
            return 0;
        } else if (strcmp(a, "--tokenizer") == 0 && i + 1 < argc) tokenizer = argv[++i];
        else if (strcmp(a, "--no-special") == 0) special = 0;
        else if (strcmp(a, "--decode") == 0) decode = 1;
        else if (strcmp(a, "--chat") == 0) chat = 1;
        else if (strcmp(a, "--ids") == 0) ids = 1;
        else if (strcmp(a, "--mask") == 0) mask = ids = 1;
        else if (strcmp(a, "--generation-prompt") == 0) generation = 1;
        else if (strcmp(a, "--chat-template") == 0 && i + 1 < argc) template_name = argv[++i];
        else if ((a[0] != '-' || strcmp(a, "-") == 0) && !have_file) file = a, have_file = 1;
        else {
            fprintf(stderr, "arwkv-tokenize: unexpected argument '%s'\n", a);
            usage(stderr);
            return 2;
        }
    }
    if (!tokenizer || (decode && chat) || ((ids || generation || template_name) && !chat)) {
        fprintf(stderr, "arwkv-tokenize: %s\n",
                !tokenizer ? "--tokenizer PATH is required" : decode && chat ? "--decode and --chat exclude each other"
                                                                           : "--ids, --mask, --generation-prompt and --chat-template go with --chat");
        usage(stderr);
        return 2;
    }
    arwkv_tokenizer *tok;
    if (arwkv_tokenizer_load(tokenizer, &tok) != ARWKV_OK) return fail("cannot load the tokenizer");
    arwkv_chat_template *tpl = NULL;
    if (chat && (template_name ? arwkv_chat_template_named(template_name, &tpl) : arwkv_chat_template_load(tokenizer, &tpl)) != ARWKV_OK) {
        arwkv_tokenizer_free(tok);
        return fail("the chat template");
    }
    size_t len = 0;
    char *text = slurp(file, &len);
    int status = 1;
    if (text) {
        const char *name = strcmp(file, "-") == 0 ? "standard input" : file;
        int flags = special ? ARWKV_TOKENIZE_SPECIAL : 0;
        if (decode) status = decode_file(tok, text, name);
        else if (chat) status = chat_file(tok, tpl, text, name, flags | (generation ? ARWKV_CHAT_GENERATION_PROMPT : 0), ids, mask);
        else {
            arwkv_tokens t = {0};
            if (arwkv_tokenizer_encode(tok, text, len, flags, &t) != ARWKV_OK) status = fail("encode");
            else {
                print_ids(&t);
                status = 0;
            }
            arwkv_tokens_free(&t);
        }
        free(text);
    }
    arwkv_chat_template_free(tpl);
    arwkv_tokenizer_free(tok);
    if (fflush(stdout) != 0 || ferror(stdout)) {
        fprintf(stderr, "arwkv-tokenize: write error on standard output\n");
        status = 1;
    }
    return status;
}
