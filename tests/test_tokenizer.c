/* Tokenizer tests: ids identical to Hugging Face `tokenizers` on every text we have, round trips,
   invalid UTF-8, the streaming decoder, the chat template, and errors on tokenizer.json files we do
   not support.

   The expected ids come from tests/gen_tokenizer_expected.py. The committed copy in
   tests/data/tokenizer/ (hand-written code and prose, ~8000 generated edge cases, the Unicode
   classes and NFC mappings of every code point) is always checked. When `tokenizers` is importable
   (and ARWKV_TEST_QUICK is not set) the script also runs now, into BUILD/tokenizer-expected/, and
   adds the large corpora of this machine: the CPython standard library, tinyshakespeare, the
   translated man pages and every code point of Unicode in context. */
#define ARWKV_IMPLEMENTATION
#include "arwkv.h"
#include "test.h"

#define TOKENIZER_JSON "models/qwen2-code-tiny/tokenizer.json"
#define DATA_DIR "tests/data/tokenizer"

static arwkv_tokenizer *tok;
static char fresh_dir[600]; /* expectations computed now by tokenizers ("" if not) */
static int quick;

/* ---- helpers ------------------------------------------------------------------------------------ */

static char *read_all(const char *path, size_t *len) {
    char *text = NULL;
    if (arwkv__read_file(path, &text, len) != ARWKV_OK) return NULL;
    return text;
}

/* Space-separated ids of a file. */
static int32_t *read_ids(const char *path, size_t *n) {
    size_t len;
    char *text = read_all(path, &len);
    if (!text) return NULL;
    size_t cap = 1024, k = 0;
    int32_t *ids = (int32_t *)malloc(cap * sizeof *ids);
    char *p = text, *end;
    for (;;) {
        long v = strtol(p, &end, 10);
        if (end == p) break;
        if (k == cap) ids = (int32_t *)realloc(ids, (cap *= 2) * sizeof *ids);
        ids[k++] = (int32_t)v;
        p = end;
    }
    free(text);
    *n = k;
    return ids;
}

/* Print a text for a failure message, escaped and cut short. */
static void print_text(const char *s, size_t n) {
    printf("      text (%zu bytes): \"", n);
    for (size_t i = 0; i < n && i < 160; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c == '\n') printf("\\n");
        else if (c == '\r') printf("\\r");
        else if (c == '\t') printf("\\t");
        else if (c < 0x20 || c == 0x7f) printf("\\x%02x", c);
        else putchar(c);
    }
    printf(n > 160 ? "\"...\n" : "\"\n");
}

/* Compare ids; on a difference print where, with the bytes around it. Returns 1 if equal. */
static int same_ids(const char *what, const char *text, size_t len, const int32_t *got, size_t n_got,
                    const int32_t *want, size_t n_want) {
    size_t i = 0;
    while (i < n_got && i < n_want && got[i] == want[i]) i++;
    if (i == n_got && i == n_want) return 1;
    printf("    %s: ids differ at index %zu of %zu (expected %zu ids)\n", what, i, n_got, n_want);
    size_t from = i >= 3 ? i - 3 : 0;
    printf("      got:     ");
    for (size_t k = from; k < n_got && k < i + 4; k++) printf(" %d", got[k]);
    printf("\n      expected:");
    for (size_t k = from; k < n_want && k < i + 4; k++) printf(" %d", want[k]);
    printf("\n");
    /* the text around the difference: decode the expected ids up to it */
    size_t before = 0;
    arwkv_tokenizer_decode(tok, want, i < n_want ? i : n_want, NULL, 0, &before);
    size_t a = before > 40 ? before - 40 : 0;
    if (a < len) print_text(text + a, len - a);
    return 0;
}

static int encode(const char *text, size_t len, int flags, arwkv_tokens *out) {
    out->n = 0;
    arwkv_result r = arwkv_tokenizer_encode(tok, text, len, flags, out);
    CHECK(r == ARWKV_OK, "encode: %s", arwkv_last_error());
    return r == ARWKV_OK;
}

/* decode(encode(x)) must be NFC(x): x itself when x passes the quick check. */
static int check_round_trip(const char *text, size_t len, const arwkv_tokens *t) {
    size_t n;
    arwkv_tokenizer_decode(tok, t->ids, t->n, NULL, 0, &n);
    char *back = (char *)malloc(n + 1);
    CHECK_OK(arwkv_tokenizer_decode(tok, t->ids, t->n, back, n + 1, &n));
    int ok;
    if (arwkv__nfc_quick_check(tok->bmp, (const unsigned char *)text, len)) {
        ok = n == len && memcmp(back, text, len) == 0;
    } else {
        unsigned char *norm = (unsigned char *)malloc(3 * len + 4);
        uint32_t *chars = NULL;
        size_t cap = 0, m = arwkv__nfc((const unsigned char *)text, len, &chars, &cap, norm);
        ok = m == n && memcmp(back, norm, n) == 0;
        free(norm);
        free(chars);
    }
    free(back);
    return ok;
}

/* ---- loading -------------------------------------------------------------------------------------- */

TEST(test_load) {
    arwkv_tokenizer *t2 = NULL;
    double t0 = arwkv_seconds();
    CHECK_OK(arwkv_tokenizer_load("models/qwen2-code-tiny", &t2)); /* a model directory */
    printf("    tokenizer.json loaded in %.3f s\n", arwkv_seconds() - t0);
    CHECK(t2 && arwkv_tokenizer_vocab_size(t2) == 151669, "vocab size %d", t2 ? arwkv_tokenizer_vocab_size(t2) : -1);
    arwkv_tokenizer_free(t2);
    CHECK(arwkv_tokenizer_token_id(tok, "<|endoftext|>") == 151643, "endoftext");
    CHECK(arwkv_tokenizer_token_id(tok, "<|im_start|>") == 151644, "im_start");
    CHECK(arwkv_tokenizer_token_id(tok, "<|im_end|>") == 151645, "im_end");
    CHECK(arwkv_tokenizer_token_id(tok, "</think>") == 151668, "think");
    CHECK(arwkv_tokenizer_token_id(tok, "Ġthe") == 279, "Ġthe is %d", arwkv_tokenizer_token_id(tok, "Ġthe"));
    CHECK(arwkv_tokenizer_token_id(tok, "!") == 0, "!");
    CHECK(arwkv_tokenizer_token_id(tok, "<|nothing|>") == -1, "absent");
    CHECK(arwkv_tokenizer_is_special(tok, 151645) && !arwkv_tokenizer_is_special(tok, 151668) &&
              !arwkv_tokenizer_is_special(tok, 279),
          "special flags");
    size_t n;
    const char *b = arwkv_tokenizer_token_bytes(tok, 279, &n);
    CHECK(b && n == 4 && memcmp(b, " the", 4) == 0, "bytes of 279");
    b = arwkv_tokenizer_token_bytes(tok, 151645, &n);
    CHECK(b && n == 10 && memcmp(b, "<|im_end|>", 10) == 0, "bytes of <|im_end|>");
    CHECK(arwkv_tokenizer_token_bytes(tok, 151669, &n) == NULL && n == 0, "out of range");
    CHECK(arwkv_tokenizer_token_bytes(tok, -1, &n) == NULL, "negative");
    /* every byte is a token of its own */
    for (int c = 0; c < 256; c++) {
        char s = (char)c;
        b = arwkv_tokenizer_token_bytes(tok, tok->byte_id[c], &n);
        CHECK(b && n == 1 && b[0] == s, "byte %d", c);
    }
}

/* Replace the first occurrence of `from` in json by `to` and try to load the result. */
static arwkv_result load_modified(const char *json, size_t len, const char *from, const char *to) {
    const char *at = strstr(json, from);
    CHECK(at != NULL, "'%s' not found in tokenizer.json", from);
    if (!at) return ARWKV_OK;
    size_t a = (size_t)(at - json), fl = strlen(from), tl = strlen(to);
    char *text = (char *)malloc(len - fl + tl + 1);
    memcpy(text, json, a);
    memcpy(text + a, to, tl);
    memcpy(text + a + tl, at + fl, len - a - fl);
    arwkv_tokenizer *t = NULL;
    arwkv_result r = arwkv_tokenizer_parse(text, len - fl + tl, "modified.json", &t);
    arwkv_tokenizer_free(t);
    free(text);
    return r;
}

/* the third merge, as the file spells it */
#define MERGE_IN "[\n        \"i\",\n        \"n\"\n      ]"

TEST(test_load_errors) {
    size_t len;
    char *json = read_all(TOKENIZER_JSON, &len);
    CHECK(json != NULL, "cannot read " TOKENIZER_JSON);
    if (!json) return;
    static const struct {
        const char *from, *to, *field;
        arwkv_result code;
    } cases[] = {
        {"\"type\": \"NFC\"", "\"type\": \"NFKC\"", "normalizer.type \"NFKC\"", ARWKV_ERR_UNSUPPORTED},
        {"\"type\": \"BPE\"", "\"type\": \"WordPiece\"", "model.type \"WordPiece\"", ARWKV_ERR_UNSUPPORTED},
        {"\\\\p{N}|", "\\\\p{N}{1,2}|", "pattern.Regex", ARWKV_ERR_UNSUPPORTED}, /* {1,3} is Llama-3's */
        {"\"behavior\": \"Isolated\"", "\"behavior\": \"Removed\"", "behavior", ARWKV_ERR_UNSUPPORTED},
        {"\"decoder\": {\n    \"type\": \"ByteLevel\"", "\"decoder\": {\"type\": \"Metaspace\"", "decoder.type", ARWKV_ERR_UNSUPPORTED},
        {"\"dropout\": null", "\"dropout\": 0.1", "model.dropout", ARWKV_ERR_UNSUPPORTED},
        {"\"lstrip\": false", "\"lstrip\": true", "lstrip", ARWKV_ERR_UNSUPPORTED},
        {"\"truncation\": null", "\"truncation\": {\"max_length\": 8}", "truncation", ARWKV_ERR_UNSUPPORTED},
        {MERGE_IN, "[\"i\", \"n\", \"x\"]", "model.merges[2]", ARWKV_ERR_FORMAT},
        {MERGE_IN, "[\"i\", \"\xe2\x82\xac\"]", "model.merges[2]: token \"\xe2\x82\xac\"", ARWKV_ERR_FORMAT},
        {MERGE_IN, "\"i n\"", "mixes", ARWKV_ERR_FORMAT}, /* one form or the other, as tokenizers reads them */
        {MERGE_IN, "\"i  n\"", "model.merges[2]", ARWKV_ERR_FORMAT},
        {MERGE_IN, "\"in\"", "model.merges[2]", ARWKV_ERR_FORMAT},
        {"\"!\": 0", "\"!\": -1", "model.vocab[\"!\"]", ARWKV_ERR_FORMAT},
        {"\"\\\"\": 1", "\"\\\"\": 0", "id 0", ARWKV_ERR_FORMAT},
        {"\"content\": \"<|im_end|>\"", "\"content\": \"<|im_start|>\"", "repeats", ARWKV_ERR_FORMAT},
        /* ids far beyond the vocabulary: an error naming the token, not gigabytes of tables (or a hang) */
        {"\"id\": 151643,", "\"id\": 1073741824,", "added_tokens[0] (\"<|endoftext|>\") has id 1073741824", ARWKV_ERR_FORMAT},
        {"\"id\": 151643,", "\"id\": 2147483646,", "has id 2147483646", ARWKV_ERR_FORMAT},
        {"\"!\": 0", "\"!\": 1073741823", "model.vocab[\"!\"] has id 1073741823", ARWKV_ERR_FORMAT},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        arwkv_result r = load_modified(json, len, cases[i].from, cases[i].to);
        CHECK(r == cases[i].code, "case %zu: got %s (%s)", i, arwkv_result_string(r), arwkv_last_error());
        if (cases[i].field)
            CHECK(strstr(arwkv_last_error(), cases[i].field) && strstr(arwkv_last_error(), "modified.json"),
                  "case %zu: the error should name '%s' and the file: %s", i, cases[i].field, arwkv_last_error());
    }
    arwkv_tokenizer *t = NULL;
    CHECK(arwkv_tokenizer_parse("{\"model\": 3}", 12, "x.json", &t) == ARWKV_ERR_FORMAT, "no model");
    CHECK(arwkv_tokenizer_parse("{", 1, "x.json", &t) == ARWKV_ERR_FORMAT, "bad JSON");
    CHECK(arwkv_tokenizer_load("/nonexistent/tokenizer.json", &t) == ARWKV_ERR_IO, "missing file");
    CHECK(t == NULL, "no tokenizer on error");
    free(json);
}

/* A small byte-level tokenizer.json: the 256 bytes, merges "Ġ t", "h e", "Ġt he", "i n" in either
   form, and two added tokens; the pipeline of Qwen. */
static char *tiny_tokenizer(int string_merges) {
    arwkv__buf b;
    memset(&b, 0, sizeof b);
    arwkv__buf_str(&b, "{\"added_tokens\": [{\"id\": 260, \"content\": \"<|im_end|>\", \"special\": true},"
                       " {\"id\": 300, \"content\": \"<x>\"}],"
                       " \"normalizer\": {\"type\": \"NFC\"}, \"pre_tokenizer\": {\"type\": \"Sequence\", \"pretokenizers\": ["
                       "{\"type\": \"Split\", \"pattern\": {\"Regex\": ");
    arwkv__buf_json_string(&b, ARWKV__QWEN_PATTERN, strlen(ARWKV__QWEN_PATTERN));
    arwkv__buf_str(&b, "}, \"behavior\": \"Isolated\", \"invert\": false}, {\"type\": \"ByteLevel\", \"add_prefix_space\": false,"
                       " \"use_regex\": false}]}, \"decoder\": {\"type\": \"ByteLevel\"}, \"model\": {\"type\": \"BPE\", \"vocab\": {");
    for (int c = 0; c < 256; c++) {
        char u[4];
        int n = arwkv__utf8_encode(arwkv__byte_char(c), u);
        arwkv__buf_json_string(&b, u, (size_t)n);
        arwkv__buf_printf(&b, ": %d, ", c);
    }
    arwkv__buf_str(&b, "\"\xc4\xa0t\": 256, \"he\": 257, \"\xc4\xa0the\": 258, \"in\": 259}, \"merges\": [");
    arwkv__buf_str(&b, string_merges ? "\"\xc4\xa0 t\", \"h e\", \"\xc4\xa0t he\", \"i n\"]}}"
                                     : "[\"\xc4\xa0\", \"t\"], [\"h\", \"e\"], [\"\xc4\xa0t\", \"he\"], [\"i\", \"n\"]]}}");
    return b.data;
}

TEST(test_tiny_tokenizer) {
    for (int form = 0; form < 2; form++) {
        char *json = tiny_tokenizer(form);
        arwkv_tokenizer *t = NULL;
        CHECK_OK(arwkv_tokenizer_parse(json, strlen(json), "tiny.json", &t));
        free(json);
        if (!t) continue;
        CHECK(arwkv_tokenizer_vocab_size(t) == 301, "ids 0..300: %d", arwkv_tokenizer_vocab_size(t));
        arwkv_tokens ids = {0};
        const char *text = "the thin<x><|im_end|>";
        CHECK_OK(arwkv_tokenizer_encode(t, text, strlen(text), ARWKV_TOKENIZE_SPECIAL, &ids));
        int32_t expect[] = {'t', 257, 256, 'h', 259, 300, 260}; /* "t" "he", " t" "h" "in", the added tokens */
        CHECK(ids.n == 7 && memcmp(ids.ids, expect, sizeof expect) == 0, "form %d: %zu ids", form, ids.n);
        size_t n;
        CHECK(arwkv_tokenizer_token_bytes(t, 299, &n) == NULL, "a hole in the ids has no token");
        CHECK(arwkv_tokenizer_decode(t, ids.ids, ids.n, NULL, 0, &n) == ARWKV_OK && n == strlen(text), "decode");
        arwkv_tokens_free(&ids);
        arwkv_tokenizer_free(t);
    }
}

/* ---- Unicode tables against what tokenizers does, code point by code point ----------------------- */

static void check_classes(const char *path) {
    size_t len;
    char *text = read_all(path, &len);
    CHECK(text != NULL, "cannot read %s", path);
    if (!text) return;
    static uint8_t want[0x110000];
    memset(want, ARWKV__OTHER, sizeof want);
    char *p = text;
    unsigned a, b;
    char c;
    int n;
    while (sscanf(p, "%x %x %c%n", &a, &b, &c, &n) == 3) {
        for (unsigned cp = a; cp <= b && cp < 0x110000; cp++)
            want[cp] = c == 'L' ? ARWKV__LETTER : c == 'N' ? ARWKV__NUMBER : ARWKV__SPACE;
        p += n;
    }
    int bad = 0;
    for (uint32_t cp = 2; cp < 0x110000; cp++) { /* 0 and 1 are the probe's separators */
        if (cp >= 0xd800 && cp <= 0xdfff) continue;
        unsigned char utf8[4];
        int fast;
        arwkv__class_at(tok->bmp, utf8, arwkv__char_put(cp, utf8), &fast); /* through the BMP table */
        if ((arwkv__char_class(cp) != want[cp] || fast != want[cp]) && bad++ < 10)
            printf("    U+%04X: class %d (%d), tokenizers says %d\n", cp, arwkv__char_class(cp), fast, want[cp]);
    }
    CHECK(bad == 0, "%d code points classified differently from %s", bad, path);
    free(text);
}

TEST(test_unicode_classes) {
    check_classes(DATA_DIR "/classes.txt");
    if (*fresh_dir) {
        char path[700];
        snprintf(path, sizeof path, "%s/classes.txt", fresh_dir);
        check_classes(path);
    }
}

/* NFC of every single code point, against tokenizers' (the listed ones change, the rest do not). */
static void check_nfc(const char *path) {
    size_t len;
    char *text = read_all(path, &len);
    CHECK(text != NULL, "cannot read %s", path);
    if (!text) return;
    static uint32_t want[0x110000][4];
    static uint8_t n_want[0x110000];
    for (uint32_t cp = 0; cp < 0x110000; cp++) {
        want[cp][0] = cp;
        n_want[cp] = 1;
    }
    for (char *line = text; *line;) {
        char *end;
        unsigned long cp = strtoul(line, &end, 16);
        if (end == line || *end != ':' || cp >= 0x110000) break;
        line = end + 1;
        n_want[cp] = 0;
        for (;;) {
            unsigned long v = strtoul(line, &end, 16);
            if (end == line) break;
            if (n_want[cp] < 4) want[cp][n_want[cp]++] = (uint32_t)v;
            line = end;
            if (*line == '\n') break;
        }
        while (*line == '\n') line++;
    }
    uint32_t *chars = NULL;
    size_t cap = 0;
    int bad = 0;
    for (uint32_t cp = 1; cp < 0x110000; cp++) {
        if (cp >= 0xd800 && cp <= 0xdfff) continue;
        unsigned char in[4], out[16], exp[16];
        size_t n = arwkv__char_put(cp, in), m = arwkv__nfc(in, n, &chars, &cap, out), e = 0;
        for (int k = 0; k < n_want[cp]; k++) e += arwkv__char_put(want[cp][k], exp + e);
        int quick_ok = !arwkv__nfc_quick_check(tok->bmp, in, n) || (e == n && memcmp(exp, in, n) == 0);
        if ((m != e || memcmp(out, exp, e) != 0 || !quick_ok) && bad++ < 10) printf("    NFC(U+%04X) differs\n", cp);
    }
    CHECK(bad == 0, "%d code points normalize differently from %s", bad, path);
    free(chars);
    free(text);
}

TEST(test_unicode_nfc) {
    check_nfc(DATA_DIR "/nfc.txt");
    if (*fresh_dir) {
        char path[700];
        snprintf(path, sizeof path, "%s/nfc.txt", fresh_dir);
        check_nfc(path);
    }
}

/* ---- identity with tokenizers ----------------------------------------------------------------- */

static void ids_of_json(const arwkv__json *j, uint32_t arr, int32_t **ids, size_t *n) {
    *n = arwkv__json_count(j, arr);
    *ids = (int32_t *)malloc((*n + 1) * sizeof(int32_t));
    size_t k = 0;
    for (uint32_t c = arwkv__json_first(j, arr); c != ARWKV__JSON_NONE; c = arwkv__json_next(j, c))
        (*ids)[k++] = (int32_t)arwkv__json_num(j, c);
}

/* Every case of a cases.jsonl, with and without added tokens; returns the number of cases. */
static int check_cases(const char *path) {
    size_t len;
    char *text = read_all(path, &len);
    CHECK(text != NULL, "cannot read %s", path);
    if (!text) return 0;
    arwkv_tokens t = {0};
    int count = 0, bad = 0, bad_trip = 0;
    for (char *line = text; *line;) {
        char *nl = strchr(line, '\n');
        size_t n = nl ? (size_t)(nl - line) : strlen(line);
        arwkv__json j;
        if (arwkv__json_parse(&j, line, n, path) != ARWKV_OK) {
            CHECK(0, "%s: line %d: %s", path, count + 1, arwkv_last_error());
            break;
        }
        uint32_t s = arwkv__json_get(&j, 0, "text"), plain = arwkv__json_get(&j, 0, "plain");
        const char *str = arwkv__json_str(&j, s);
        size_t slen = arwkv__json_str_len(&j, s);
        int32_t *want, *want_plain;
        size_t n_want, n_plain;
        ids_of_json(&j, arwkv__json_get(&j, 0, "ids"), &want, &n_want);
        ids_of_json(&j, plain != ARWKV__JSON_NONE ? plain : arwkv__json_get(&j, 0, "ids"), &want_plain, &n_plain);
        char what[64];
        snprintf(what, sizeof what, "case %d", count + 1);
        if (encode(str, slen, ARWKV_TOKENIZE_SPECIAL, &t) && !same_ids(what, str, slen, t.ids, t.n, want, n_want)) bad++;
        snprintf(what, sizeof what, "case %d without added tokens", count + 1);
        if (encode(str, slen, 0, &t)) {
            if (!same_ids(what, str, slen, t.ids, t.n, want_plain, n_plain)) bad++;
            if (!check_round_trip(str, slen, &t)) bad_trip++;
        }
        free(want);
        free(want_plain);
        arwkv__json_free(&j);
        count++;
        if (bad > 20) break;
        line += n + (nl ? 1 : 0);
    }
    CHECK(bad == 0, "%s: %d of %d cases differ from tokenizers", path, bad, count);
    CHECK(bad_trip == 0, "%s: %d cases do not decode back to their NFC", path, bad_trip);
    arwkv_tokens_free(&t);
    free(text);
    return count;
}

TEST(test_cases) {
    int n = check_cases(DATA_DIR "/cases.jsonl");
    printf("    %d committed cases\n", n);
    if (*fresh_dir) {
        char path[700];
        snprintf(path, sizeof path, "%s/cases.jsonl", fresh_dir);
        n = check_cases(path);
        printf("    %d cases just computed by tokenizers\n", n);
        size_t a, b;
        char *committed = read_all(DATA_DIR "/cases.jsonl", &a), *fresh = read_all(path, &b);
        CHECK(committed && fresh && a == b && memcmp(committed, fresh, a) == 0,
              "tests/data/tokenizer/cases.jsonl is stale: run python3 tests/gen_tokenizer_expected.py");
        free(committed);
        free(fresh);
    }
}

/* The documents listed in dir/documents; texts are in dir or in tests/data/tokenizer. */
static void check_documents(const char *dir) {
    char path[800], name[256];
    snprintf(path, sizeof path, "%s/documents", dir);
    FILE *f = fopen(path, "r");
    CHECK(f != NULL, "cannot read %s", path);
    if (!f) return;
    arwkv_tokens t = {0};
    while (fscanf(f, "%255s", name) == 1) {
        size_t len, n_want, n_plain = 0;
        snprintf(path, sizeof path, "%s/%s.txt", dir, name);
        char *text = read_all(path, &len);
        if (!text) {
            snprintf(path, sizeof path, "%s/%s.txt", DATA_DIR, name);
            text = read_all(path, &len);
        }
        snprintf(path, sizeof path, "%s/%s.ids", dir, name);
        int32_t *want = read_ids(path, &n_want);
        snprintf(path, sizeof path, "%s/%s.plain.ids", dir, name);
        int32_t *want_plain = read_ids(path, &n_plain);
        CHECK(text && want, "%s: missing text or ids", name);
        if (text && want) {
            if (encode(text, len, ARWKV_TOKENIZE_SPECIAL, &t)) {
                CHECK(same_ids(name, text, len, t.ids, t.n, want, n_want), "%s differs from tokenizers", name);
                printf("    %-14s %9zu bytes %8zu ids  identical: %s\n", name, len, t.n,
                       t.n == n_want && memcmp(t.ids, want, n_want * 4) == 0 ? "yes" : "NO");
            }
            if (encode(text, len, 0, &t)) {
                CHECK(same_ids(name, text, len, t.ids, t.n, want_plain ? want_plain : want, want_plain ? n_plain : n_want),
                      "%s without added tokens differs from tokenizers", name);
                CHECK(check_round_trip(text, len, &t), "%s: decode(encode(x)) != NFC(x)", name);
            }
        }
        free(text);
        free(want);
        free(want_plain);
    }
    fclose(f);
    arwkv_tokens_free(&t);
}

TEST(test_documents) { check_documents(DATA_DIR); }

TEST(test_documents_large) {
    if (!*fresh_dir) SKIP("tokenizers is not importable here (or ARWKV_TEST_QUICK): the large corpora need it");
    check_documents(fresh_dir);
}

/* ---- our own rules: invalid UTF-8, long pieces, streaming, chat ------------------------------ */

TEST(test_invalid_utf8) {
    arwkv_tokens t = {0};
    /* a byte that is not UTF-8 is a token of its own, a punctuation-like character */
    static const struct {
        const char *text;
        size_t len;
        const char *pieces; /* '|' separates the expected pre-tokens */
    } cases[] = {
        {"\xff", 1, "\xff"},
        {"a\xffz", 3, "a|\xffz"},                 /* [^\r\n\p{L}\p{N}]?\p{L}+ takes it as the leading non-letter */
        {"\x80\x80", 2, "\x80\x80"},              /* a run of "punctuation" */
        {" \xc3", 2, " \xc3"},                    /* truncated sequence at the end */
        {"\xc3(", 2, "\xc3("},
        {"\xe4\xb8 x", 4, "\xe4\xb8| x"},         /* truncated 3-byte character */
        {"\xed\xa0\x80", 3, "\xed\xa0\x80"},      /* an encoded surrogate: three invalid bytes */
        {"\xc0\xaf", 2, "\xc0\xaf"},              /* overlong '/' */
        {"1\xf5", 2, "1|\xf5"},
        {"\xf4\x90\x80\x80!", 5, "\xf4\x90\x80\x80!"}, /* above U+10FFFF */
        {"'\xff", 2, "'\xff"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        /* the pieces, encoded one by one, must give the ids of the whole */
        arwkv_tokens want = {0};
        const char *p = cases[i].pieces;
        while (*p) {
            const char *bar = strchr(p, '|');
            size_t n = bar ? (size_t)(bar - p) : strlen(p);
            CHECK(arwkv__pretoken(tok->bmp, (const unsigned char *)p, n) == n, "case %zu: piece of %zu bytes", i, n);
            CHECK_OK(arwkv_tokenizer_encode(tok, p, n, 0, &want));
            p += n + (bar ? 1 : 0);
        }
        if (encode(cases[i].text, cases[i].len, ARWKV_TOKENIZE_SPECIAL, &t))
            CHECK(same_ids("invalid UTF-8", cases[i].text, cases[i].len, t.ids, t.n, want.ids, want.n), "case %zu", i);
        arwkv_tokens_free(&want);
    }
    /* the byte 0xff alone is byte token 0xff */
    if (encode("\xff", 1, 0, &t)) CHECK(t.n == 1 && t.ids[0] == tok->byte_id[0xff], "0xff");
    /* decode(encode(x)) == NFC(x) for random bytes (x itself when x has no composable sequence) */
    test_seed(7);
    int bad = 0;
    for (int trial = 0; trial < (quick ? 300 : 3000); trial++) {
        char buf[64];
        size_t n = 1 + (size_t)(test_uniform() * 63);
        for (size_t i = 0; i < n; i++) {
            double u = test_uniform();
            buf[i] = (char)(u < 0.3 ? 0x80 + (int)(test_uniform() * 128) : u < 0.6 ? 0x20 + (int)(test_uniform() * 95)
                                                                          : (int)(test_uniform() * 256));
        }
        if (encode(buf, n, ARWKV_TOKENIZE_SPECIAL, &t) && !check_round_trip(buf, n, &t)) bad++;
    }
    CHECK(bad == 0, "%d random byte strings do not come back", bad);
    arwkv_tokens_free(&t);
}

/* The heap-based BPE for long pieces must merge exactly as the simple one. */
TEST(test_bpe_long_equals_short) {
    arwkv__tok_work w;
    memset(&w, 0, sizeof w);
    test_seed(11);
    static const char alphabet[] = "  \t\nabcdeeeinnorsttthe_=-.,;:()0123456789ABCXYZ";
    int32_t a[300], b[300];
    int bad = 0;
    for (int trial = 0; trial < (quick ? 200 : 2000); trial++) {
        unsigned char s[300];
        size_t n = 2 + (size_t)(test_uniform() * 298);
        int mode = trial % 3;
        for (size_t i = 0; i < n; i++) {
            s[i] = mode == 0 ? (unsigned char)alphabet[(int)(test_uniform() * (sizeof alphabet - 1))]
                 : mode == 1 ? (unsigned char)(test_uniform() < 0.8 ? ' ' : 'x')
                             : (unsigned char)(test_uniform() * 256);
        }
        CHECK(arwkv__tok_work_reserve(&w, n), "memory");
        for (size_t i = 0; i < n; i++) w.sym[i] = tok->byte_id[s[i]];
        size_t ka = arwkv__bpe_short(tok, &w, n);
        memcpy(a, w.sym, ka * 4);
        for (size_t i = 0; i < n; i++) w.sym[i] = tok->byte_id[s[i]];
        size_t kb = arwkv__bpe_long(tok, &w, n);
        memcpy(b, w.sym, kb * 4);
        if ((ka != kb || memcmp(a, b, ka * 4) != 0) && bad++ < 3) printf("    trial %d: %zu vs %zu tokens\n", trial, ka, kb);
    }
    CHECK(bad == 0, "%d pieces merge differently", bad);
    arwkv__tok_work_free(&w);
}

TEST(test_decode) {
    int32_t ids[3] = {9707, 1879, 0}; /* "Hello", " world", "!" */
    char buf[32];
    size_t n;
    CHECK_OK(arwkv_tokenizer_decode(tok, ids, 3, buf, sizeof buf, &n));
    CHECK(n == 12 && strcmp(buf, "Hello world!") == 0, "got '%s'", buf);
    CHECK_OK(arwkv_tokenizer_decode(tok, ids, 3, buf, 6, &n));
    CHECK(n == 12 && strcmp(buf, "Hello") == 0, "truncated: '%s' %zu", buf, n);
    CHECK_OK(arwkv_tokenizer_decode(tok, ids, 3, NULL, 0, &n));
    CHECK(n == 12, "measure: %zu", n);
    ids[1] = 200000;
    CHECK(arwkv_tokenizer_decode(tok, ids, 3, buf, sizeof buf, &n) == ARWKV_ERR_INVALID_ARGUMENT, "bad id");
    CHECK(strstr(arwkv_last_error(), "ids[1] = 200000"), "error names the id: %s", arwkv_last_error());
}

static int valid_utf8(const char *s, size_t n) {
    for (size_t i = 0; i < n;) {
        int k = arwkv__utf8_valid_len((const unsigned char *)s + i, n - i);
        if (!k) return 0;
        i += (size_t)k;
    }
    return 1;
}

TEST(test_stream_decoder) {
    static const char *const texts[] = {
        "Hello, world! Grüße, 世界! 👨‍👩‍👧‍👦 🇯🇵 नमस्ते", "日本語のテキスト、漢字とかな。", "\xf0\x9f\x98\x80\xf0\x9f\x98\x81 ok",
        "bad \xff\xfe bytes \xe4\xb8 cut \xc3", "\xe2\x82", "a\xf0\x9f\x98",
    };
    arwkv_stream_decoder *d = NULL;
    CHECK_OK(arwkv_stream_decoder_create(tok, &d));
    if (!d) return;
    arwkv_tokens t = {0};
    for (size_t i = 0; i < sizeof texts / sizeof texts[0]; i++) {
        size_t len = strlen(texts[i]), total = 0;
        if (!encode(texts[i], len, 0, &t)) continue;
        char out[512];
        int valid_in = valid_utf8(texts[i], len);
        for (size_t k = 0; k < t.n; k++) {
            const char *chunk;
            size_t n;
            CHECK_OK(arwkv_stream_decoder_put(d, t.ids[k], &chunk, &n));
            if (valid_in) CHECK(valid_utf8(chunk, n), "text %zu, token %zu: incomplete UTF-8 emitted", i, k);
            memcpy(out + total, chunk, n);
            total += n;
        }
        const char *chunk;
        size_t n;
        arwkv_stream_decoder_flush(d, &chunk, &n);
        if (valid_in) CHECK(n == 0, "text %zu: %zu bytes left at the end of valid UTF-8", i, n);
        memcpy(out + total, chunk, n);
        total += n;
        CHECK(total == len && memcmp(out, texts[i], len) == 0, "text %zu: the stream does not add up to the text", i);
    }
    /* multi-byte characters split over byte tokens come out whole: feed "€" byte by byte */
    const char *chunk;
    size_t n;
    CHECK_OK(arwkv_stream_decoder_put(d, tok->byte_id[0xe2], &chunk, &n));
    CHECK(n == 0, "held");
    CHECK_OK(arwkv_stream_decoder_put(d, tok->byte_id[0x82], &chunk, &n));
    CHECK(n == 0, "held");
    CHECK_OK(arwkv_stream_decoder_put(d, tok->byte_id[0xac], &chunk, &n));
    CHECK(n == 3 && memcmp(chunk, "\xe2\x82\xac", 3) == 0, "euro sign: %zu bytes", n);
    /* a held start that the next token does not continue is let go, unchanged */
    CHECK_OK(arwkv_stream_decoder_put(d, tok->byte_id[0xe2], &chunk, &n));
    CHECK_OK(arwkv_stream_decoder_put(d, tok->byte_id['x'], &chunk, &n));
    CHECK(n == 2 && memcmp(chunk, "\xe2x", 2) == 0, "released: %zu bytes", n);
    CHECK(arwkv_stream_decoder_put(d, -5, &chunk, &n) == ARWKV_ERR_INVALID_ARGUMENT, "bad id");
    arwkv_stream_decoder_free(d);
    arwkv_tokens_free(&t);
}

TEST(test_special_flag) {
    arwkv_tokens t = {0};
    const char *s = "a<|im_end|>b";
    if (encode(s, strlen(s), ARWKV_TOKENIZE_SPECIAL, &t)) CHECK(t.n == 3 && t.ids[1] == 151645, "matched");
    if (encode(s, strlen(s), 0, &t)) {
        int found = 0;
        for (size_t i = 0; i < t.n; i++) found |= t.ids[i] >= 151643;
        CHECK(!found && t.n > 3, "not matched without the flag");
    }
    /* encode appends */
    t.n = 0;
    CHECK_OK(arwkv_tokenizer_encode(tok, "a", 1, 0, &t));
    CHECK_OK(arwkv_tokenizer_encode(tok, "b", 1, 0, &t));
    CHECK(t.n == 2 && t.ids[0] == 64 && t.ids[1] == 65 && t.mask[0] == 0 && t.mask[1] == 0, "append");
    CHECK_OK(arwkv_tokenizer_encode(tok, "", 0, 0, &t));
    CHECK(t.n == 2, "empty text adds nothing");
    arwkv_tokens_free(&t);
}

TEST(test_chat) {
    arwkv_chat_message conv[] = {
        {"user", "What is 2+2?"},
        {"assistant", "4."},
        {"user", "And <|im_end|> 3+3?"},
        {"assistant", "6, I think."},
    };
    char buf[1024];
    size_t n;
    CHECK_OK(arwkv_chat_render(conv, 2, ARWKV_CHAT_GENERATION_PROMPT, buf, sizeof buf, &n));
    const char *want = "<|im_start|>system\nYou are Qwen, created by Alibaba Cloud. You are a helpful assistant.<|im_end|>\n"
                       "<|im_start|>user\nWhat is 2+2?<|im_end|>\n<|im_start|>assistant\n4.<|im_end|>\n<|im_start|>assistant\n";
    CHECK(n == strlen(want) && strcmp(buf, want) == 0, "rendered:\n%s", buf);
    arwkv_chat_message with_system[] = {{"system", "Be brief."}, {"user", "Hi"}, {"system", "Later."}};
    CHECK_OK(arwkv_chat_render(with_system, 3, 0, buf, sizeof buf, &n));
    want = "<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n<|im_start|>system\nLater.<|im_end|>\n";
    CHECK(strcmp(buf, want) == 0, "rendered:\n%s", buf);
    arwkv_chat_message tools[] = {{"user", "Weather?"}, {"tool", "{\"t\": 20}"}, {"tool", "sunny"}, {"assistant", "20, sunny."}};
    CHECK_OK(arwkv_chat_render(tools, 4, 0, buf, sizeof buf, &n));
    CHECK(strstr(buf, "<|im_start|>user\n<tool_response>\n{\"t\": 20}\n</tool_response>\n<tool_response>\nsunny\n"
                      "</tool_response><|im_end|>\n<|im_start|>assistant\n20, sunny.<|im_end|>\n") != NULL,
          "tool turns:\n%s", buf);
    CHECK_OK(arwkv_chat_render(NULL, 0, ARWKV_CHAT_GENERATION_PROMPT, buf, 10, &n));
    CHECK(n == strlen("<|im_start|>system\n" ARWKV_CHAT_DEFAULT_SYSTEM "<|im_end|>\n<|im_start|>assistant\n") && strlen(buf) == 9,
          "snprintf-like: %zu", n);
    arwkv_chat_message bad[] = {{"bot", "x"}};
    CHECK(arwkv_chat_render(bad, 1, 0, buf, sizeof buf, &n) == ARWKV_ERR_INVALID_ARGUMENT, "unknown role");
    CHECK(strstr(arwkv_last_error(), "messages[0].role \"bot\""), "%s", arwkv_last_error());

    /* encoding: equal to encoding the rendered text (no content starts or ends with white space
       here), except that <|im_end|> typed by the user stays text without ARWKV_TOKENIZE_SPECIAL */
    arwkv_tokens ids = {0}, ref = {0};
    CHECK_OK(arwkv_chat_encode(tok, conv, 4, ARWKV_CHAT_GENERATION_PROMPT | ARWKV_TOKENIZE_SPECIAL, &ids));
    CHECK_OK(arwkv_chat_render(conv, 4, ARWKV_CHAT_GENERATION_PROMPT, buf, sizeof buf, &n));
    CHECK_OK(arwkv_tokenizer_encode(tok, buf, n, ARWKV_TOKENIZE_SPECIAL, &ref));
    CHECK(same_ids("chat", buf, n, ids.ids, ids.n, ref.ids, ref.n), "chat encode != encode(render)");
    ids.n = 0;
    CHECK_OK(arwkv_chat_encode(tok, conv, 4, 0, &ids));
    int end_count = 0;
    for (size_t i = 0; i < ids.n; i++) end_count += ids.ids[i] == 151645;
    CHECK(end_count == 5, "%d <|im_end|> tokens, expected 5 (system, 2 user, 2 assistant turns): the user's became one",
          end_count);
    /* the mask: exactly the assistant contents and their <|im_end|> */
    arwkv_tokens learn = {0};
    const char *answers[2] = {"4.", "6, I think."};
    for (int k = 0; k < 2; k++) {
        CHECK_OK(arwkv_tokenizer_encode(tok, answers[k], strlen(answers[k]), 0, &learn));
        CHECK_OK(arwkv_tokenizer_encode(tok, "<|im_end|>", 10, ARWKV_TOKENIZE_SPECIAL, &learn));
    }
    size_t m = 0;
    int order_ok = 1;
    for (size_t i = 0; i < ids.n; i++)
        if (ids.mask[i]) {
            if (m >= learn.n || ids.ids[i] != learn.ids[m]) order_ok = 0;
            m++;
            if (ids.ids[i] == 151645) CHECK(i + 1 < ids.n && ids.mask[i + 1] == 0, "the newline after <|im_end|> is not learned");
        }
    CHECK(order_ok && m == learn.n, "masked tokens: %zu, expected %zu", m, learn.n);
    arwkv_tokens_free(&learn);
    arwkv_tokens_free(&ids);
    arwkv_tokens_free(&ref);
}

int main(int argc, char **argv) {
    quick = getenv("ARWKV_TEST_QUICK") != NULL;
    if (arwkv_tokenizer_load(TOKENIZER_JSON, &tok) != ARWKV_OK) {
        printf("FAIL load: %s\n", arwkv_last_error());
        return 1;
    }
    /* fresh expectations from tokenizers, when it is here */
    if (!quick && !getenv("ARWKV_TEST_NO_PYTHON") && system("python3 -c 'import tokenizers' >/dev/null 2>&1") == 0) {
        char build[512];
        snprintf(build, sizeof build, "%s", argc > 0 ? argv[0] : "build/test_tokenizer");
        char *slash = strrchr(build, '/');
        if (slash) *slash = 0;
        else snprintf(build, sizeof build, ".");
        char cmd[1400];
        snprintf(fresh_dir, sizeof fresh_dir, "%s/tokenizer-expected", build);
        snprintf(cmd, sizeof cmd, "python3 tests/gen_tokenizer_expected.py --large --out %s > %s.log 2>&1", fresh_dir, fresh_dir);
        double t0 = arwkv_seconds();
        if (system(cmd) != 0) {
            printf("FAIL gen_tokenizer_expected (see %s.log)\n", fresh_dir);
            fresh_dir[0] = 0;
        } else {
            printf("    expectations computed by tokenizers in %.1f s\n", arwkv_seconds() - t0);
        }
    }
    RUN(test_load);
    RUN(test_load_errors);
    RUN(test_tiny_tokenizer);
    RUN(test_unicode_classes);
    RUN(test_unicode_nfc);
    RUN(test_cases);
    RUN(test_documents);
    RUN(test_documents_large);
    RUN(test_invalid_utf8);
    RUN(test_bpe_long_equals_short);
    RUN(test_decode);
    RUN(test_stream_decoder);
    RUN(test_special_flag);
    RUN(test_chat);
    arwkv_tokenizer_free(tok);
    return test_summary("tokenizer");
}
