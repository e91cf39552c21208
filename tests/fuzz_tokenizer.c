/* libFuzzer target: the tokenizer on arbitrary bytes. For every input:
     - encode it with and without added-token matching; every id must be a token;
     - without matching, decode(encode(x)) == NFC(x) and encode(decode(encode(x))) == encode(x);
     - with matching, NFC(decode(encode(x))) == NFC(x);
     - the streaming decoder emits exactly the bytes of decode;
     - the input split at its first NUL is a user turn and an assistant answer for the chat encoder.
   The same checks run with the reference tokenizers of the other pre-tokenizers
   (tests/data/tokenizer/families: GPT-2's regex, Llama-3's, SmolLM's digit split), where there is
   no NFC, so decode(encode(x)) == x exactly; SmolLM2 lacks 21 byte tokens and leaves those bytes
   out, so there only the ids and the stream are checked. The input is also a conversation for
   each chat template (ChatML with a default system prompt, Llama 3) and a chat template's text.
   An input that starts with '{' is also parsed as a tokenizer.json (errors are fine, crashes are
   not) and, if it loads, used to encode itself: there only the ids and the stream are checked, since
   a made-up file may give an added token the id of a merged one and so decode otherwise.
   Run from the repository root: it loads models/qwen2-code-tiny/tokenizer.json. */
#define ARWKV_IMPLEMENTATION
#include "arwkv.h"
#include <stdio.h>
#include <stdlib.h>

static arwkv_tokenizer *tok, *families[3]; /* gpt2, llama3, smollm2 */
static arwkv_chat_template *templates[2];  /* SmolLM2's ChatML, Llama 3 */

int LLVMFuzzerInitialize(int *argc, char ***argv) {
    (void)argc;
    (void)argv;
    static const char *const paths[3] = {"tests/data/tokenizer/families/gpt2", "tests/data/tokenizer/families/llama3",
                                         "tests/data/tokenizer/families/smollm2"};
    int ok = arwkv_tokenizer_load("models/qwen2-code-tiny/tokenizer.json", &tok) == ARWKV_OK;
    for (int i = 0; i < 3 && ok; i++) ok = arwkv_tokenizer_load(paths[i], &families[i]) == ARWKV_OK;
    if (ok) ok = arwkv_chat_template_load(paths[2], &templates[0]) == ARWKV_OK && arwkv_chat_template_load(paths[1], &templates[1]) == ARWKV_OK;
    if (!ok) {
        fprintf(stderr, "fuzz_tokenizer: %s (run from the repository root)\n", arwkv_last_error());
        abort();
    }
    return 0;
}

/* NFC of s[0..n) into a fresh buffer (*len set); s itself for a tokenizer without NFC. */
static unsigned char *nfc(const arwkv_tokenizer *t, const unsigned char *s, size_t n, size_t *len) {
    unsigned char *out = (unsigned char *)malloc(3 * n + 4);
    if (!t->nfc || arwkv__nfc_quick_check(t->bmp, s, n)) {
        memcpy(out, s, n);
        *len = n;
        return out;
    }
    uint32_t *chars = NULL;
    size_t cap = 0;
    *len = arwkv__nfc(s, n, &chars, &cap, out);
    free(chars);
    if (*len == SIZE_MAX) __builtin_trap();
    return out;
}

static char *decode_all(const arwkv_tokenizer *t, const arwkv_tokens *ids, size_t *len) {
    if (arwkv_tokenizer_decode(t, ids->ids, ids->n, NULL, 0, len) != ARWKV_OK) __builtin_trap();
    char *out = (char *)malloc(*len + 1);
    size_t again;
    if (arwkv_tokenizer_decode(t, ids->ids, ids->n, out, *len + 1, &again) != ARWKV_OK || again != *len) __builtin_trap();
    return out;
}

static void check_text(const arwkv_tokenizer *t, const uint8_t *data, size_t size, int strict) {
    arwkv_tokens plain = {0}, special = {0}, again = {0};
    if (arwkv_tokenizer_encode(t, (const char *)data, size, 0, &plain) != ARWKV_OK) __builtin_trap();
    if (arwkv_tokenizer_encode(t, (const char *)data, size, ARWKV_TOKENIZE_SPECIAL, &special) != ARWKV_OK) __builtin_trap();
    for (size_t i = 0; i < special.n; i++)
        if (special.ids[i] < 0 || special.ids[i] >= arwkv_tokenizer_vocab_size(t)) __builtin_trap();

    size_t n_norm, n_back, n_sp, n_sp_norm;
    unsigned char *norm = nfc(t, data, size, &n_norm);
    char *back = decode_all(t, &plain, &n_back);
    char *back_sp = decode_all(t, &special, &n_sp);
    unsigned char *sp_norm = nfc(t, (const unsigned char *)back_sp, n_sp, &n_sp_norm);
    if (strict) {
        if (n_back != n_norm || memcmp(back, norm, n_norm) != 0) __builtin_trap(); /* both are allocated */
        if (arwkv_tokenizer_encode(t, back, n_back, 0, &again) != ARWKV_OK) __builtin_trap();
        if (again.n != plain.n || (plain.n && memcmp(again.ids, plain.ids, plain.n * sizeof(int32_t)) != 0)) __builtin_trap();
        /* NFC(a + NFC(b)) == NFC(a + b): the text between added tokens is normalized on its own */
        if (n_sp_norm != n_norm || memcmp(sp_norm, norm, n_norm) != 0) __builtin_trap();
    }

    /* streaming: the pieces add up to the decoded bytes */
    arwkv_stream_decoder *d;
    if (arwkv_stream_decoder_create(t, &d) != ARWKV_OK) __builtin_trap();
    size_t total = 0;
    for (size_t i = 0; i <= special.n; i++) {
        const char *chunk;
        size_t n;
        if (i < special.n) {
            if (arwkv_stream_decoder_put(d, special.ids[i], &chunk, &n) != ARWKV_OK) __builtin_trap();
        } else {
            arwkv_stream_decoder_flush(d, &chunk, &n);
        }
        if (total + n > n_sp || memcmp(back_sp + total, chunk, n) != 0) __builtin_trap();
        total += n;
    }
    if (total != n_sp) __builtin_trap();
    arwkv_stream_decoder_free(d);

    free(norm);
    free(back);
    free(back_sp);
    free(sp_norm);
    arwkv_tokens_free(&plain);
    arwkv_tokens_free(&special);
    arwkv_tokens_free(&again);
}

static void check_chat(const uint8_t *data, size_t size) {
    char *text = (char *)malloc(size + 2);
    memcpy(text, data, size);
    text[size] = text[size + 1] = 0;
    size_t first = strlen(text);
    arwkv_chat_message msgs[2] = {{"user", text}, {"assistant", text + (first < size ? first + 1 : size)}};
    arwkv_tokens ids = {0};
    if (arwkv_chat_encode(tok, msgs, 2, ARWKV_CHAT_GENERATION_PROMPT, &ids) != ARWKV_OK) __builtin_trap();
    size_t learned = 0;
    for (size_t i = 0; i < ids.n; i++) learned += ids.mask[i];
    if (learned == 0) __builtin_trap(); /* at least the <|im_end|> of the answer */
    size_t len;
    if (arwkv_chat_render(msgs, 2, ARWKV_CHAT_GENERATION_PROMPT, NULL, 0, &len) != ARWKV_OK) __builtin_trap();
    arwkv_tokens_free(&ids);
    free(text);
}

/* The input as a conversation for the other templates, and as a template's text. */
static void check_templates(const uint8_t *data, size_t size) {
    char *text = (char *)malloc(size + 1);
    memcpy(text, data, size);
    text[size] = 0;
    arwkv_chat_message msgs[3] = {{"system", text}, {"user", text}, {"assistant", text}};
    for (int k = 0; k < 2; k++) {
        arwkv_tokens ids = {0};
        const arwkv_tokenizer *t = families[k == 0 ? 2 : 1];
        if (arwkv_chat_template_encode(templates[k], t, msgs + 1, 2, ARWKV_CHAT_GENERATION_PROMPT, &ids) != ARWKV_OK) __builtin_trap();
        size_t learned = 0;
        for (size_t i = 0; i < ids.n; i++) learned += ids.mask[i];
        if (learned == 0) __builtin_trap(); /* at least the token that ends the answer */
        size_t len, again;
        if (arwkv_chat_template_render(templates[k], msgs, 3, 0, NULL, 0, &len) != ARWKV_OK) __builtin_trap();
        char *out = (char *)malloc(len + 1);
        if (arwkv_chat_template_render(templates[k], msgs, 3, 0, out, len + 1, &again) != ARWKV_OK || again != len ||
            strlen(out) > len)
            __builtin_trap();
        free(out);
        arwkv_tokens_free(&ids);
    }
    arwkv_chat_template *tpl = NULL;
    if (arwkv_chat_template_parse(text, size, "fuzz", &tpl) == ARWKV_OK) {
        const char *sys = arwkv_chat_template_default_system(tpl);
        if (sys && strlen(sys) > size) __builtin_trap(); /* taken from the text */
        arwkv_chat_template_free(tpl);
    }
    free(text);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    check_text(tok, data, size, 1);
    for (int k = 0; k < 3; k++) check_text(families[k], data, size, k < 2);
    check_chat(data, size);
    check_templates(data, size);
    if (size > 0 && data[0] == '{') {
        arwkv_tokenizer *t = NULL;
        if (arwkv_tokenizer_parse((const char *)data, size, "fuzz.json", &t) == ARWKV_OK) {
            check_text(t, data, size, 0);
            arwkv_tokenizer_free(t);
        }
    }
    return 0;
}
