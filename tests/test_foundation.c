/* Foundation: errors, numbers, thread pool, JSON, safetensors (read, validate, write), config.json
   and the matrix product. */
#if defined(__linux__)
#define _GNU_SOURCE /* sched_setaffinity, for the CPU count test; the header compiles with it as without */
#include <sched.h>
#include <time.h>
#endif
#define ARWKV_IMPLEMENTATION
#include "arwkv.h"
#include "test.h"

/* ---- numbers ---------------------------------------------------------------------------------- */

TEST(bf16_rounding) {
    CHECK(arwkv_f32_to_bf16(1.0f) == 0x3f80, "1.0");
    /* 1 + 2^-8 is exactly half-way between two bf16 values: ties go to the even one (1.0) */
    CHECK(arwkv_f32_to_bf16(1.00390625f) == 0x3f80, "tie to even down");
    /* 1 + 3*2^-8 is half-way too, and rounds up to the even 1 + 2^-6 */
    CHECK(arwkv_f32_to_bf16(1.01171875f) == 0x3f82, "tie to even up: %04x", arwkv_f32_to_bf16(1.01171875f));
    CHECK(arwkv_f32_to_bf16(1.0040f) == 0x3f81, "above half rounds up");
    uint16_t nan = arwkv_f32_to_bf16(NAN);
    CHECK((nan & 0x7f80) == 0x7f80 && (nan & 0x7f), "NaN stays NaN: %04x", nan);
    CHECK(arwkv_f32_to_bf16(INFINITY) == 0x7f80, "inf");
    CHECK(arwkv_f32_to_bf16(3.4e38f) == 0x7f80, "max float rounds to inf in bf16");
    for (uint32_t h = 0; h < 65536; h++) { /* every finite bf16 survives the round trip */
        if ((h & 0x7f80) == 0x7f80 && (h & 0x7f)) continue;
        if (arwkv_f32_to_bf16(arwkv_bf16_to_f32((uint16_t)h)) != h) {
            CHECK(0, "bf16 %04x does not round-trip", h);
            break;
        }
    }
}

TEST(f16_conversion) {
    for (uint32_t h = 0; h < 65536; h++) { /* every non-NaN half survives the round trip */
        if ((h & 0x7c00) == 0x7c00 && (h & 0x3ff)) continue;
        uint16_t back = arwkv_f32_to_f16(arwkv_f16_to_f32((uint16_t)h));
        if (back != h) {
            CHECK(0, "f16 %04x -> %g -> %04x", h, arwkv_f16_to_f32((uint16_t)h), back);
            break;
        }
    }
    CHECK(arwkv_f16_to_f32(0x3c00) == 1.0f && arwkv_f16_to_f32(0x0001) == 5.9604644775390625e-8f, "known values");
#ifdef __F16C__
    /* the CPU's own conversion instruction is an independent reference for rounding */
    test_seed(7);
    int bad = 0;
    for (int i = 0; i < 200000 && !bad; i++) {
        float f = (float)(test_randn() * pow(2.0, (int)(test_uniform() * 50) - 30));
        uint16_t ref = (uint16_t)_mm_extract_epi16(_mm_cvtps_ph(_mm_set_ss(f), 0), 0);
        if (arwkv_f32_to_f16(f) != ref) {
            CHECK(0, "f32 %a -> f16 %04x, hardware %04x", f, arwkv_f32_to_f16(f), ref);
            bad = 1;
        }
    }
#endif
}

/* ---- thread pool ------------------------------------------------------------------------------ */

typedef struct {
    int hits[1000];
    int max_thread;
} pool_ctx;
static void pool_task(void *ctx, int task, int thread) {
    pool_ctx *c = (pool_ctx *)ctx;
    __atomic_fetch_add(&c->hits[task], 1, __ATOMIC_RELAXED);
    if (thread > c->max_thread) c->max_thread = thread;
}

TEST(pool_runs_each_task_once) {
    for (int n = 1; n <= 4; n++) {
        arwkv_pool *pool;
        CHECK_OK(arwkv_pool_create(n, &pool));
        CHECK(arwkv_pool_size(pool) == n, "size %d", arwkv_pool_size(pool));
        for (int rep = 0; rep < 50; rep++) {
            pool_ctx c;
            memset(&c, 0, sizeof c);
            arwkv_pool_run(pool, 1000, pool_task, &c);
            int bad = 0;
            for (int i = 0; i < 1000; i++) bad += c.hits[i] != 1;
            CHECK(bad == 0 && c.max_thread < n, "threads %d rep %d: %d tasks not run exactly once", n, rep, bad);
            if (bad) break;
        }
        arwkv_pool_destroy(pool);
    }
    pool_ctx c;
    memset(&c, 0, sizeof c);
    arwkv_pool_run(NULL, 1000, pool_task, &c); /* no pool: the caller runs everything */
    CHECK(c.hits[999] == 1 && c.max_thread == 0, "NULL pool");
}

/* Loops back to back (caught by spinning workers), after 50 us (inside the spin) and after 400 us
   (workers asleep), with a straggler now and then that keeps the caller waiting past its own spin:
   every task runs once, and its plain (non-atomic) writes are visible when arwkv_pool_run returns. */
typedef struct {
    int rep, vals[64];
} pool_handover_ctx;
static void pool_sleep_us(long us) {
    struct timespec ts = {0, us * 1000};
    nanosleep(&ts, NULL);
}
static void pool_handover_task(void *ctx, int task, int thread) {
    (void)thread;
    pool_handover_ctx *c = (pool_handover_ctx *)ctx;
    if (task == 0 && c->rep % 10 == 9) pool_sleep_us(300);
    c->vals[task] = c->rep * 1000 + task;
}

TEST(pool_hands_over_between_spin_and_sleep) {
    arwkv_pool *pool;
    CHECK_OK(arwkv_pool_create(3, &pool));
    pool_handover_ctx c;
    memset(&c, 0, sizeof c);
    int bad = 0;
    for (c.rep = 1; c.rep <= 300 && !bad; c.rep++) {
        if (c.rep % 3 == 1) pool_sleep_us(50);
        if (c.rep % 3 == 2) pool_sleep_us(400);
        arwkv_pool_run(pool, 64, pool_handover_task, &c);
        for (int i = 0; i < 64; i++) bad += c.vals[i] != c.rep * 1000 + i;
    }
    CHECK(bad == 0, "loop %d: %d tasks missing or not visible after arwkv_pool_run returned", c.rep - 1, bad);
    arwkv_pool_destroy(pool);
}

/* ---- JSON ------------------------------------------------------------------------------------- */

static arwkv_result json_parse_str(arwkv__json *j, const char *s) { return arwkv__json_parse(j, s, strlen(s), "test.json"); }

/* The default thread count is the CPUs this process may use: pinned to one CPU, one thread. */
TEST(cpu_count_follows_the_affinity_mask) {
    CHECK(arwkv_cpu_list_count("0-3,8,10-11") == 7, "list: %d", arwkv_cpu_list_count("0-3,8,10-11"));
    CHECK(arwkv_cpu_list_count("5\n") == 1, "one CPU");
    CHECK(arwkv_cpu_list_count("0-127") == 128, "range");
    const char *bad[] = {"", "x", "3-1", "0-", "1,,2", "-2", "0-3;4", "0-99999999999999999999"};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++)
        CHECK(arwkv_cpu_list_count(bad[i]) == 0, "'%s' parses as %d CPUs", bad[i], arwkv_cpu_list_count(bad[i]));
    CHECK(arwkv_cpu_count() >= 1, "at least one CPU");
#if defined(__linux__)
    cpu_set_t all, one;
    CHECK(sched_getaffinity(0, sizeof all, &all) == 0, "sched_getaffinity");
    CHECK(arwkv_cpu_count() == CPU_COUNT(&all), "%d CPUs counted, the mask has %d", arwkv_cpu_count(), CPU_COUNT(&all));
    int first = 0;
    while (first < CPU_SETSIZE && !CPU_ISSET(first, &all)) first++;
    CPU_ZERO(&one);
    CPU_SET(first, &one);
    CHECK(sched_setaffinity(0, sizeof one, &one) == 0, "sched_setaffinity");
    arwkv_pool *pool;
    CHECK_OK(arwkv_pool_create(0, &pool));
    CHECK(arwkv_cpu_count() == 1 && arwkv_pool_size(pool) == 1, "pinned to CPU %d: %d CPUs counted, %d threads", first, arwkv_cpu_count(),
          arwkv_pool_size(pool));
    arwkv_pool_destroy(pool);
    CHECK(sched_setaffinity(0, sizeof all, &all) == 0, "restoring the mask");
#endif
}

TEST(json_values) {
    arwkv__json j;
    const char *doc = " {\"a\": [1, -2.5e3, 1e-06, true, false, null, \"x\"], \"b\": {\"c\": {}}, \"d\": [], \"n\": 9007199254740993 } ";
    CHECK_OK(json_parse_str(&j, doc));
    uint32_t a = arwkv__json_get(&j, 0, "a");
    CHECK(arwkv__json_count(&j, a) == 7, "array count");
    CHECK(arwkv__json_num(&j, arwkv__json_at(&j, a, 0)) == 1.0, "1");
    CHECK(arwkv__json_num(&j, arwkv__json_at(&j, a, 1)) == -2500.0, "-2.5e3");
    CHECK(arwkv__json_num(&j, arwkv__json_at(&j, a, 2)) == 1e-06, "1e-06 exactly as strtod reads it");
    CHECK(arwkv__json_bool(&j, arwkv__json_at(&j, a, 3)) == 1 && arwkv__json_bool(&j, arwkv__json_at(&j, a, 4)) == 0, "bools");
    CHECK(arwkv__json_type(&j, arwkv__json_at(&j, a, 5)) == ARWKV__JSON_NULL, "null");
    CHECK(strcmp(arwkv__json_str(&j, arwkv__json_at(&j, a, 6)), "x") == 0, "string");
    CHECK(arwkv__json_type(&j, arwkv__json_get(&j, arwkv__json_get(&j, 0, "b"), "c")) == ARWKV__JSON_OBJECT, "nested");
    CHECK(arwkv__json_count(&j, arwkv__json_get(&j, 0, "d")) == 0, "empty array");
    CHECK(arwkv__json_get(&j, 0, "missing") == ARWKV__JSON_NONE, "absent key");
    /* an absent node flows through every accessor: a reader may chain them without checking each level */
    uint32_t none = arwkv__json_first(&j, arwkv__json_get(&j, 0, "missing"));
    CHECK(none == ARWKV__JSON_NONE && arwkv__json_next(&j, none) == ARWKV__JSON_NONE, "next of an absent node is absent");
    CHECK(arwkv__json_next(&j, arwkv__json_first(&j, arwkv__json_get(&j, 0, "d"))) == ARWKV__JSON_NONE, "next of an empty array's first");
    CHECK(arwkv__json_str(&j, none) == NULL && arwkv__json_str_len(&j, none) == 0 && arwkv__json_str_len(&j, a) == 0,
          "an absent node or an array has no string");
    CHECK(arwkv__json_type(&j, none) == -1 && arwkv__json_count(&j, none) == 0 && arwkv__json_bool(&j, none) == -1 &&
          !arwkv__json_is_number(&j, none) && arwkv__json_at(&j, none, 0) == ARWKV__JSON_NONE &&
          arwkv__json_get(&j, none, "a") == ARWKV__JSON_NONE, "type, count, bool, number, at and get of an absent node");
    CHECK(arwkv__json_num(&j, arwkv__json_get(&j, 0, "n")) == 9007199254740992.0, "long integers go through strtod");
    arwkv__json_free(&j);
}

TEST(json_string_escapes) {
    arwkv__json j;
    CHECK_OK(json_parse_str(&j, "[\"q\\\"b\\\\s\\/b\\bf\\fn\\nr\\rt\\t\", \"\\u00e9\\u4e2d\\ud83d\\ude00\", \"\\u0000z\", \"caf\xc3\xa9\"]"));
    CHECK(strcmp(arwkv__json_str(&j, arwkv__json_at(&j, 0, 0)), "q\"b\\s/b\bf\fn\nr\rt\t") == 0, "simple escapes");
    CHECK(strcmp(arwkv__json_str(&j, arwkv__json_at(&j, 0, 1)), "\xc3\xa9\xe4\xb8\xad\xf0\x9f\x98\x80") == 0, "\\u escapes and a surrogate pair");
    uint32_t z = arwkv__json_at(&j, 0, 2);
    CHECK(arwkv__json_str_len(&j, z) == 2 && arwkv__json_str(&j, z)[0] == 0 && arwkv__json_str(&j, z)[1] == 'z', "\\u0000 keeps its length");
    CHECK(strcmp(arwkv__json_str(&j, arwkv__json_at(&j, 0, 3)), "caf\xc3\xa9") == 0, "raw UTF-8");
    arwkv__json_free(&j);
}

TEST(json_errors) {
    struct { const char *text, *message; } cases[] = {
        {"", "unexpected end of input"},
        {"[1,]", "value expected"},
        {"{\"a\":1,}", "object key"},
        {"{\"a\" 1}", "':' expected"},
        {"[1 2]", "',' or ']' expected"},
        {"{\"a\":1 \"b\":2}", "',' or '}' expected"},
        {"\"abc", "unterminated string"},
        {"\"a\\x\"", "unknown escape"},
        {"\"\\u12\"", "four hex digits"},
        {"\"\\ud800\"", "high surrogate not followed"},
        {"\"\\ud800\\u0041\"", "high surrogate not followed"},
        {"\"\\udc00\"", "lone low surrogate"},
        {"\"a\nb\"", "control character"},
        {"\"\xff\"", "invalid UTF-8"},
        {"\"\xc0\xaf\"", "invalid UTF-8"},      /* overlong '/' */
        {"\"\xed\xa0\x80\"", "invalid UTF-8"},  /* encoded surrogate */
        {"\"\xf4\x90\x80\x80\"", "invalid UTF-8"}, /* above U+10FFFF */
        {"-", "bad number"},
        {"1.", "digit expected after '.'"},
        {"1e+", "digit expected in exponent"},
        {".5", "value expected"},
        {"01", "trailing characters"},
        {"tru", "value expected"},
        {"{} x", "trailing characters"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        arwkv__json j;
        arwkv_result r = json_parse_str(&j, cases[i].text);
        CHECK(r == ARWKV_ERR_FORMAT && strstr(arwkv_last_error(), cases[i].message), "input %zu '%s': got %d '%s', want '%s'", i,
              cases[i].text, r, arwkv_last_error(), cases[i].message);
        CHECK(strstr(arwkv_last_error(), "test.json") != NULL, "error names the document");
    }
    /* nesting limit: 200 levels is refused, 100 is fine */
    char deep[512];
    for (int d = 0; d < 2; d++) {
        int n = d ? 200 : 100;
        for (int i = 0; i < n; i++) deep[i] = '[', deep[2 * n - 1 - i] = ']';
        deep[2 * n] = 0;
        arwkv__json j;
        arwkv_result r = json_parse_str(&j, deep);
        if (d) CHECK(r == ARWKV_ERR_FORMAT && strstr(arwkv_last_error(), "nesting"), "deep nesting refused");
        else {
            CHECK(r == ARWKV_OK, "100 levels: %s", arwkv_last_error());
            arwkv__json_free(&j);
        }
    }
    /* the position is reported as byte, line and column */
    arwkv__json j;
    json_parse_str(&j, "{\n  \"a\": ?\n}");
    CHECK(strstr(arwkv_last_error(), "byte 9 (line 2, column 8)") != NULL, "position: %s", arwkv_last_error());
}

TEST(json_tokenizer_file) {
    char path[512];
    snprintf(path, sizeof path, "models/qwen2-code-tiny/tokenizer.json");
    char *text;
    size_t len;
    CHECK_OK(arwkv__read_file(path, &text, &len));
    if (!text) return;
    arwkv__json j;
    CHECK_OK(arwkv__json_parse(&j, text, len, path));
    uint32_t model = arwkv__json_get(&j, 0, "model");
    CHECK(arwkv__json_count(&j, arwkv__json_get(&j, model, "vocab")) == 151643, "vocab size");
    CHECK(arwkv__json_count(&j, arwkv__json_get(&j, model, "merges")) == 151387, "merge count");
    arwkv__json_free(&j);
    arwkv__free(text);
}

/* ---- safetensors: the real checkpoint ----------------------------------------------------------- */

TEST(safetensors_teacher_checkpoint) {
    const char *dirs[2] = {"models/qwen2-code-tiny", NULL};
    char shared_model[512];
    snprintf(shared_model, sizeof shared_model, "%s/models/qwen2-code-tiny", test_shared_dir());
    dirs[1] = shared_model;
    for (int d = 0; d < 2; d++) {
        arwkv_safetensors *st;
        CHECK_OK(arwkv_st_open(dirs[d], &st));
        if (!st) continue;
        CHECK(arwkv_st_file_count(st) == 2, "two shards");
        CHECK(arwkv_st_count(st) == 1 + 8 * 12 + 1, "tensor count %d", arwkv_st_count(st));
        const arwkv_tensor_info *e = arwkv_st_find(st, "model.embed_tokens.weight");
        CHECK(e && e->dtype == ARWKV_BF16 && e->ndim == 2 && e->shape[0] == 151936 && e->shape[1] == 128, "embedding");
        const arwkv_tensor_info *k = arwkv_st_find(st, "model.layers.3.self_attn.k_proj.weight");
        CHECK(k && k->shape[0] == 64 && k->shape[1] == 128 && k->nbytes == 64 * 128 * 2, "k_proj (GQA: one kv head)");
        CHECK(arwkv_st_find(st, "model.layers.7.self_attn.q_proj.bias") != NULL, "q bias");
        CHECK(arwkv_st_find(st, "lm_head.weight") == NULL, "tied: no lm_head");
        const arwkv_tensor_info *t;
        CHECK(arwkv_st_get(st, "lm_head.weight", &t) == ARWKV_ERR_NOT_FOUND && strstr(arwkv_last_error(), "lm_head.weight"), "get names the tensor");
        CHECK(strcmp(arwkv_st_metadata(st, "format"), "pt") == 0, "metadata");

        /* the embedding row of the reference prompt's first token is the reference's layer-0 input */
        char ref_path[512];
        snprintf(ref_path, sizeof ref_path, "%s/reference/qwen2_code_tiny_reference.safetensors", test_shared_dir());
        arwkv_safetensors *ref;
        if (arwkv_st_open(ref_path, &ref) != ARWKV_OK) {
            arwkv_st_close(st);
            SKIP("reference not found at %s", ref_path);
        }
        const arwkv_tensor_info *ids = arwkv_st_find(ref, "input_ids");
        CHECK(ids && ids->dtype == ARWKV_I32 && ids->numel == 24, "input_ids");
        float id0, hidden[24 * 128], row[128];
        CHECK_OK(arwkv_to_f32(&id0, ids->data, ARWKV_I32, 1));
        CHECK_OK(arwkv_st_read_f32(ref, "hidden_states.0", hidden, 24 * 128));
        CHECK_OK(arwkv_to_f32(row, (const char *)e->data + (size_t)id0 * 128 * 2, ARWKV_BF16, 128));
        CHECK(memcmp(row, hidden, sizeof row) == 0, "embedding row %d equals hidden_states.0[0]", (int)id0);
        float wrong[10];
        CHECK(arwkv_st_read_f32(ref, "hidden_states.0", wrong, 10) == ARWKV_ERR_SHAPE && strstr(arwkv_last_error(), "3072 elements"), "size check");
        arwkv_st_close(ref);
        arwkv_st_close(st);
    }
}

/* ---- safetensors: broken files ----------------------------------------------------------------- */

/* Build a file image: 8-byte length, the header text, then `data_len` bytes of data. */
static size_t make_st(unsigned char *out, const char *header, size_t data_len) {
    size_t h = strlen(header);
    for (int i = 0; i < 8; i++) out[i] = (unsigned char)((uint64_t)h >> (8 * i));
    memcpy(out + 8, header, h);
    memset(out + 8 + h, 0x11, data_len);
    return 8 + h + data_len;
}

TEST(safetensors_broken_files) {
    static unsigned char buf[1 << 16];
    struct { const char *header; size_t data; arwkv_result code; const char *message; } cases[] = {
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}", 8, ARWKV_OK, ""},
        {"{\"a\":{\"dtype\":\"F7\",\"shape\":[2],\"data_offsets\":[0,8]}}", 8, ARWKV_ERR_UNSUPPORTED, "unknown dtype \"F7\""},
        {"{\"a\":{\"shape\":[2],\"data_offsets\":[0,8]}}", 8, ARWKV_ERR_FORMAT, "missing \"dtype\""},
        {"{\"a\":{\"dtype\":\"F32\",\"data_offsets\":[0,8]}}", 8, ARWKV_ERR_FORMAT, "missing \"shape\""},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[-2],\"data_offsets\":[0,8]}}", 8, ARWKV_ERR_FORMAT, "shape[0] is not a non-negative integer"},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[2.5],\"data_offsets\":[0,8]}}", 8, ARWKV_ERR_FORMAT, "shape[0]"},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[1,1,1,1,1,1,1,1,1],\"data_offsets\":[0,4]}}", 4, ARWKV_ERR_UNSUPPORTED, "9 dimensions"},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[4294967296,4294967296,4],\"data_offsets\":[0,8]}}", 8, ARWKV_ERR_FORMAT, "overflows"},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0]}}", 8, ARWKV_ERR_FORMAT, "[begin, end]"},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[8,0]}}", 8, ARWKV_ERR_FORMAT, "before begin"},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}", 4, ARWKV_ERR_FORMAT, "past the end"},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[3],\"data_offsets\":[0,8]}}", 8, ARWKV_ERR_FORMAT, "needs 12"},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},\"b\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[4,12]}}", 12, ARWKV_ERR_FORMAT, "overlaps"},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[4,12]}}", 12, ARWKV_ERR_FORMAT, "hole in the data"},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}", 12, ARWKV_ERR_FORMAT, "after the last tensor"},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[8,16]}}", 16, ARWKV_ERR_FORMAT, "appears twice"},
        {"{\"__metadata__\":{\"k\":1},\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}", 8, ARWKV_ERR_FORMAT, "is not a string"},
        {"{\"__metadata__\":{\"k\":\"v\"},\"__metadata__\":{\"k\":\"v\",\"l\":\"w\"},\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}", 8, ARWKV_ERR_FORMAT, "__metadata__ appears twice"},
        {"{\"a\":[1,2]}", 0, ARWKV_ERR_FORMAT, "not an object"},
        {"[1,2]", 0, ARWKV_ERR_FORMAT, "does not start with '{'"},
        {"{\"a\":{\"dtype\":\"F32\",", 0, ARWKV_ERR_FORMAT, "JSON error at byte"},
        {"{\"a\\u0000b\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}", 8, ARWKV_ERR_FORMAT, "NUL"},
        {"{\"s\":{\"dtype\":\"BF16\",\"shape\":[],\"data_offsets\":[0,2]},\"e\":{\"dtype\":\"I64\",\"shape\":[0],\"data_offsets\":[2,2]}}", 2, ARWKV_OK, ""},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        size_t n = make_st(buf, cases[i].header, cases[i].data);
        arwkv_safetensors *st;
        arwkv_result r = arwkv_st_open_memory(buf, n, "case.safetensors", &st);
        CHECK(r == cases[i].code && (r == ARWKV_OK || strstr(arwkv_last_error(), cases[i].message)), "case %zu: got %d '%s', want %d '%s'",
              i, r, arwkv_last_error(), cases[i].code, cases[i].message);
        if (r != ARWKV_OK) CHECK(strstr(arwkv_last_error(), "case.safetensors") != NULL, "case %zu: error names the file", i);
        arwkv_st_close(st);
    }
    /* header length problems */
    CHECK(arwkv_st_open_memory(buf, 5, "short.safetensors", &(arwkv_safetensors *){NULL}) == ARWKV_ERR_FORMAT &&
              strstr(arwkv_last_error(), "too short"), "5-byte file: %s", arwkv_last_error());
    size_t n = make_st(buf, "{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}", 8);
    buf[0] += 1; /* header length one byte longer than the header */
    CHECK(arwkv_st_open_memory(buf, 9 + 10, "trunc.safetensors", &(arwkv_safetensors *){NULL}) == ARWKV_ERR_FORMAT &&
              strstr(arwkv_last_error(), "runs past the end"), "truncated header: %s", arwkv_last_error());
    buf[0] -= 1;
    buf[5] = 1; /* 2^40 bytes of header */
    CHECK(arwkv_st_open_memory(buf, n, "huge.safetensors", &(arwkv_safetensors *){NULL}) == ARWKV_ERR_FORMAT &&
              strstr(arwkv_last_error(), "100 MB"), "huge header: %s", arwkv_last_error());
    /* truncating a good file anywhere gives an error, never a crash */
    buf[5] = 0;
    for (size_t cut = 0; cut < n; cut++) {
        arwkv_safetensors *st;
        if (arwkv_st_open_memory(buf, cut, "cut.safetensors", &st) == ARWKV_OK) {
            CHECK(0, "file cut at %zu accepted", cut);
            arwkv_st_close(st);
        }
    }
    /* missing files and directories */
    CHECK(arwkv_st_open("/nonexistent/x.safetensors", &(arwkv_safetensors *){NULL}) == ARWKV_ERR_IO &&
              strstr(arwkv_last_error(), "/nonexistent/x.safetensors"), "missing file");
    CHECK(arwkv_st_open("tests", &(arwkv_safetensors *){NULL}) == ARWKV_ERR_NOT_FOUND && strstr(arwkv_last_error(), "model.safetensors"),
          "directory without a checkpoint: %s", arwkv_last_error());
}

/* ---- safetensors: writing ---------------------------------------------------------------------- */

TEST(safetensors_write_roundtrip) {
    float a[6] = {1, -2, 3.5f, NAN, INFINITY, -0.0f};
    uint16_t b[4] = {0x3f80, 0x0001, 0xffff, 0x7f80};
    int64_t c[2] = {-5, 1LL << 40};
    arwkv_st_entry e[3] = {
        {"layer.a", ARWKV_F32, 2, {2, 3}, a},
        {"b", ARWKV_BF16, 1, {4}, b},
        {"c \"quoted\" \\ name", ARWKV_I64, 1, {2}, c},
    };
    const char *meta[4] = {"format", "pt", "note", "line\nbreak \"q\""};
    const char *path = "build/test_roundtrip.safetensors";
    CHECK_OK(arwkv_st_write(path, e, 3, meta, 2));
    arwkv_safetensors *st;
    CHECK_OK(arwkv_st_open(path, &st));
    if (!st) return;
    CHECK(arwkv_st_count(st) == 3, "count");
    for (int i = 0; i < 3; i++) {
        const arwkv_tensor_info *t = arwkv_st_find(st, e[i].name);
        CHECK(t && t->dtype == e[i].dtype && t->ndim == e[i].ndim && t->shape[0] == e[i].shape[0], "%s header", e[i].name);
        if (t) CHECK(memcmp(t->data, e[i].data, t->nbytes) == 0, "%s bits", e[i].name);
        if (t) CHECK(t->offset % 8 == 0 || i > 0, "data starts 8-byte aligned");
    }
    CHECK(strcmp(arwkv_st_metadata(st, "note"), "line\nbreak \"q\"") == 0, "metadata escapes");
    arwkv_st_close(st);
    /* no temporary file is left behind */
    char cmd[256];
    snprintf(cmd, sizeof cmd, "ls build | grep -c 'test_roundtrip.safetensors.tmp' > /dev/null");
    CHECK(system(cmd) != 0, "temporary file left in build/");
    /* a path in a missing directory fails cleanly and names the path */
    CHECK(arwkv_st_write("/nonexistent-dir/x.safetensors", e, 3, NULL, 0) == ARWKV_ERR_IO && strstr(arwkv_last_error(), "/nonexistent-dir/x.safetensors"),
          "write into a missing directory: %s", arwkv_last_error());
    /* duplicate names are refused before anything is written */
    arwkv_st_entry dup[2] = {e[0], e[0]};
    CHECK(arwkv_st_write(path, dup, 2, NULL, 0) == ARWKV_ERR_INVALID_ARGUMENT, "duplicate names");
}

TEST(safetensors_write_sharded) {
    enum { N = 7 };
    static float data[N][300];
    arwkv_st_entry e[N];
    char names[N][32];
    for (int i = 0; i < N; i++) {
        for (int k = 0; k < 300; k++) data[i][k] = (float)(i * 1000 + k);
        snprintf(names[i], sizeof names[i], "t.%d", i);
        memset(&e[i], 0, sizeof e[i]);
        e[i].name = names[i];
        e[i].dtype = ARWKV_F32;
        e[i].ndim = 2;
        e[i].shape[0] = 3;
        e[i].shape[1] = 100;
        e[i].data = data[i];
    }
    system("rm -rf build/test_sharded");
    /* 1200 bytes per tensor, 2500 per shard: 2 tensors per shard, 4 shards */
    CHECK_OK(arwkv_st_write_dir("build/test_sharded", e, N, NULL, 0, 2500));
    CHECK(test_file_exists("build/test_sharded/model-00004-of-00004.safetensors"), "four shards");
    CHECK(test_file_exists("build/test_sharded/model.safetensors.index.json"), "index");
    arwkv_safetensors *st;
    CHECK_OK(arwkv_st_open("build/test_sharded", &st));
    if (st) {
        CHECK(arwkv_st_count(st) == N && arwkv_st_file_count(st) == 4, "all tensors through the index");
        for (int i = 0; i < N; i++) {
            const arwkv_tensor_info *t = arwkv_st_find(st, names[i]);
            CHECK(t && memcmp(t->data, data[i], sizeof data[i]) == 0, "%s", names[i]);
        }
        arwkv_st_close(st);
    }
    /* saving again small replaces the shards' index by a single file */
    CHECK_OK(arwkv_st_write_dir("build/test_sharded", e, N, NULL, 0, 1 << 20));
    CHECK(!test_file_exists("build/test_sharded/model.safetensors.index.json"), "stale index removed");
    CHECK_OK(arwkv_st_open("build/test_sharded", &st));
    if (st) CHECK(arwkv_st_file_count(st) == 1 && arwkv_st_count(st) == N, "single file");
    arwkv_st_close(st);
}

TEST(safetensors_bad_index) {
    system("rm -rf build/test_badindex && mkdir -p build/test_badindex");
    float x[2] = {1, 2};
    arwkv_st_entry e = {"a", ARWKV_F32, 1, {2}, x};
    CHECK_OK(arwkv_st_write("build/test_badindex/m1.safetensors", &e, 1, NULL, 0));
    struct { const char *index; const char *message; } cases[] = {
        {"{\"weight_map\":{\"a\":\"m1.safetensors\",\"b\":\"m1.safetensors\"}}", "'b' is listed in weight_map but missing"},
        {"{\"weight_map\":{\"a\":\"../m1.safetensors\"}}", "not a plain file name"},
        {"{\"weight_map\":{\"a\":\"m2.safetensors\"}}", "m2.safetensors: cannot open"},
        {"{\"weight_map\":{}}", "weight_map is empty"},
        {"{\"metadata\":{}}", "no \"weight_map\""},
        {"{\"weight_map\":{\"a\":3}}", "is not a file name"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        FILE *f = fopen("build/test_badindex/model.safetensors.index.json", "w");
        fputs(cases[i].index, f);
        fclose(f);
        arwkv_safetensors *st;
        arwkv_result r = arwkv_st_open("build/test_badindex", &st);
        CHECK(r != ARWKV_OK && strstr(arwkv_last_error(), cases[i].message), "case %zu: %s", i, arwkv_last_error());
        if (r == ARWKV_OK) arwkv_st_close(st);
    }
}

/* ---- config.json ------------------------------------------------------------------------------ */

TEST(config_teacher) {
    arwkv_config c;
    CHECK_OK(arwkv_config_load("models/qwen2-code-tiny", &c));
    CHECK(c.arch == ARWKV_ARCH_QWEN2, "arch");
    CHECK(c.vocab_size == 151936 && c.hidden_size == 128 && c.intermediate_size == 512 && c.num_layers == 8, "sizes");
    CHECK(c.num_heads == 2 && c.num_kv_heads == 1 && c.head_dim == 64, "GQA");
    CHECK(c.rope_theta == 1000000.0, "rope_theta from rope_parameters (transformers 5): %g", c.rope_theta);
    CHECK(c.tie_word_embeddings == 1 && c.rms_norm_eps == 1e-6f, "tied, eps");
    CHECK(c.bos_token_id == 151643 && c.eos_token_id == 151643, "special ids");
    CHECK(strcmp(c.torch_dtype, "bfloat16") == 0, "dtype");
}

#define QWEN_KEYS "\"vocab_size\":100,\"hidden_size\":128,\"intermediate_size\":256,\"num_hidden_layers\":2,"

TEST(config_variants) {
    arwkv_config c;
    const char *hub = "{\"architectures\":[\"Qwen2ForCausalLM\"]," QWEN_KEYS "\"num_attention_heads\":4,\"num_key_value_heads\":2,"
                      "\"rope_theta\":1000000.0,\"tie_word_embeddings\":false,\"eos_token_id\":[151645,151643]}";
    CHECK_OK(arwkv_config_parse(hub, strlen(hub), "hub.json", &c));
    CHECK(c.rope_theta == 1e6 && c.tie_word_embeddings == 0 && c.head_dim == 32 && c.eos_token_id == 151645, "hub style");

    /* the published ARWKV-7B-Preview-0.1 config (keys as in the spec) */
    const char *arwkv = "{\"architectures\":[\"RwkvHybridForCausalLM\"],\"model_type\":\"rwkv_hybrid\",\"head_size\":64,"
                        "\"head_size_divisor\":8,\"hidden_size\":3584,\"intermediate_size\":18944,\"num_attention_heads\":28,"
                        "\"num_hidden_layers\":28,\"num_key_value_heads\":4,\"rms_norm_eps\":1e-06,\"rope_theta\":1000000.0,"
                        "\"tie_word_embeddings\":false,\"vocab_size\":152064,\"wkv_has_gate\":true,\"wkv_has_group_norm\":false,"
                        "\"wkv_version\":7,\"torch_dtype\":\"float16\"}";
    CHECK_OK(arwkv_config_parse(arwkv, strlen(arwkv), "arwkv.json", &c));
    CHECK(c.arch == ARWKV_ARCH_ARWKV7 && c.head_size == 64 && c.wkv_has_gate == 1 && c.wkv_has_group_norm == 0 &&
              c.head_size_divisor == 8 && c.hidden_size == 3584, "ARWKV-7");

    const char *qrwkv = "{\"architectures\":[\"RWKV6Qwen2ForCausalLM\"],\"model_type\":\"rwkv6qwen2\",\"attention_bias\":true,"
                        "\"attention_output_bias\":false,\"hidden_size\":5120,\"intermediate_size\":27648,\"num_attention_heads\":40,"
                        "\"num_key_value_heads\":8,\"num_hidden_layers\":64,\"rms_norm_eps\":1e-05,\"vocab_size\":152064}";
    CHECK_OK(arwkv_config_parse(qrwkv, strlen(qrwkv), "qrwkv6.json", &c));
    CHECK(c.arch == ARWKV_ARCH_QRWKV6 && c.head_size == 128 && c.lora_rank_tokenshift == 64 && c.lora_rank_decay == 128 &&
              c.num_kv_heads == 8 && c.attention_output_bias == 0 && fabsf(c.rms_norm_eps - 1e-5f) < 1e-12f, "QRWKV6 with llama.cpp's default ranks");

    struct { const char *text; arwkv_result code; const char *message; } bad[] = {
        {"{\"architectures\":[\"GPT2LMHeadModel\"]," QWEN_KEYS "\"num_attention_heads\":4}", ARWKV_ERR_UNSUPPORTED, "\"GPT2LMHeadModel\""},
        {"{\"architectures\":[\"Qwen2ForCausalLM\"],\"vocab_size\":100}", ARWKV_ERR_FORMAT, "\"hidden_size\" is missing"},
        {"{\"architectures\":[\"Qwen2ForCausalLM\"]," QWEN_KEYS "\"num_attention_heads\":\"4\"}", ARWKV_ERR_FORMAT, "\"num_attention_heads\" must be a number"},
        {"{\"architectures\":[\"Qwen2ForCausalLM\"]," QWEN_KEYS "\"num_attention_heads\":4.5}", ARWKV_ERR_FORMAT, "must be an integer"},
        {"{\"architectures\":[\"Qwen2ForCausalLM\"]," QWEN_KEYS "\"num_attention_heads\":4,\"num_key_value_heads\":3}", ARWKV_ERR_FORMAT, "not a multiple"},
        {"{\"architectures\":[\"Qwen2ForCausalLM\"]," QWEN_KEYS "\"num_attention_heads\":0}", ARWKV_ERR_FORMAT, "must be positive"},
        {"{\"architectures\":[\"RwkvHybridForCausalLM\"]," QWEN_KEYS "\"wkv_version\":6}", ARWKV_ERR_UNSUPPORTED, "wkv_version 6"},
        {"{\"architectures\":[\"RwkvHybridForCausalLM\"],\"vocab_size\":100,\"hidden_size\":100,\"intermediate_size\":256,\"num_hidden_layers\":2}", ARWKV_ERR_FORMAT, "not a multiple of head_size"},
        {"[1]", ARWKV_ERR_FORMAT, "not a JSON object"},
        {"{", ARWKV_ERR_FORMAT, "JSON error"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        arwkv_result r = arwkv_config_parse(bad[i].text, strlen(bad[i].text), "bad.json", &c);
        CHECK(r == bad[i].code && strstr(arwkv_last_error(), bad[i].message) && strstr(arwkv_last_error(), "bad.json"),
              "case %zu: got %d '%s', want '%s'", i, r, arwkv_last_error(), bad[i].message);
    }
    CHECK(arwkv_config_load("/nonexistent", &c) == ARWKV_ERR_IO && strstr(arwkv_last_error(), "/nonexistent"), "missing file");
}

/* ---- matrix product ------------------------------------------------------------------------------ */

/* float64 reference of C = A.B (+bias) with the same strides */
static void gemm_ref(int M, int N, int K, const float *A, ptrdiff_t ars, ptrdiff_t acs, const float *Bf, ptrdiff_t brs,
                     ptrdiff_t bcs, double *C, const float *bias) {
    for (int m = 0; m < M; m++)
        for (int n = 0; n < N; n++) {
            double s = bias ? bias[n] : 0;
            for (int k = 0; k < K; k++) s += (double)A[m * ars + k * acs] * (double)Bf[k * brs + n * bcs];
            C[(size_t)m * N + n] = s;
        }
}

TEST(gemm_matches_float64) {
    int shapes[][3] = {{1, 1, 1}, {5, 7, 3}, {7, 17, 300}, {130, 260, 513}, {1, 300, 257}, {3, 129, 70}, {4, 64, 1000},
                       {97, 33, 17}, {200, 16, 256}, {6, 16, 256}, {64, 40, 700}};
    arwkv_pool *pools[3];
    for (int p = 0; p < 3; p++) CHECK_OK(arwkv_pool_create(p + 1, &pools[p]));
    test_seed(11);
    for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++) {
        int M = shapes[s][0], N = shapes[s][1], K = shapes[s][2];
        float *A = (float *)malloc(sizeof(float) * M * K), *Bf = (float *)malloc(sizeof(float) * K * N);
        uint16_t *Bh = (uint16_t *)malloc(2 * (size_t)K * N);
        float *bias = (float *)malloc(sizeof(float) * N), *C = (float *)malloc(sizeof(float) * M * N), *C0 = (float *)malloc(sizeof(float) * M * N);
        double *R = (double *)malloc(sizeof(double) * M * N);
        test_fill_randn(A, (size_t)M * K, 1);
        test_fill_randn(bias, N, 1);
        for (int variant = 0; variant < 12; variant++) {
            int trans_a = variant & 1, trans_b = (variant >> 1) & 1, type = variant >> 2; /* 0 f32, 1 bf16, 2 f16 */
            ptrdiff_t ars = trans_a ? 1 : K, acs = trans_a ? M : 1, brs = trans_b ? 1 : N, bcs = trans_b ? K : 1;
            test_fill_randn(Bf, (size_t)K * N, 1);
            const void *B = Bf;
            arwkv_dtype bt = ARWKV_F32;
            if (type) { /* round B to the narrow type so the reference sees the same values */
                for (size_t i = 0; i < (size_t)K * N; i++) {
                    Bh[i] = type == 1 ? arwkv_f32_to_bf16(Bf[i]) : arwkv_f32_to_f16(Bf[i]);
                    Bf[i] = type == 1 ? arwkv_bf16_to_f32(Bh[i]) : arwkv_f16_to_f32(Bh[i]);
                }
                B = Bh;
                bt = type == 1 ? ARWKV_BF16 : ARWKV_F16;
            }
            const float *use_bias = (variant % 3 == 0) ? bias : NULL;
            gemm_ref(M, N, K, A, ars, acs, Bf, brs, bcs, R, use_bias);
            for (int p = 0; p < 3; p++) {
                for (int i = 0; i < M * N; i++) C[i] = NAN; /* poison: every element must be written */
                CHECK_OK(arwkv__gemm(pools[p], M, N, K, A, ars, acs, B, bt, brs, bcs, C, N, 0, use_bias));
                double worst = 0;
                for (int i = 0; i < M * N; i++) {
                    double e = fabs(C[i] - R[i]) / (sqrt((double)K) + fabs(R[i]));
                    if (!(e <= worst)) worst = e;
                }
                CHECK(worst < 1e-5, "M%d N%d K%d transA %d transB %d %s threads %d: error %g", M, N, K, trans_a, trans_b,
                      arwkv_dtype_name(bt), p + 1, worst);
                if (p == 0) memcpy(C0, C, sizeof(float) * M * N);
                else CHECK(memcmp(C0, C, sizeof(float) * M * N) == 0, "M%d N%d K%d: %d threads differ from 1 thread", M, N, K, p + 1);
            }
            /* accumulate: C += A.B gives twice the product */
            CHECK_OK(arwkv__gemm(pools[1], M, N, K, A, ars, acs, B, bt, brs, bcs, C, N, 1, NULL));
            double worst = 0;
            for (int i = 0; i < M * N; i++) {
                double want = 2 * R[i] - (use_bias ? bias[i % N] : 0);
                double e = fabs(C[i] - want) / (sqrt((double)K) + fabs(want));
                if (!(e <= worst)) worst = e;
            }
            CHECK(worst < 2e-5, "accumulate M%d N%d K%d: %g", M, N, K, worst);
        }
        free(A), free(Bf), free(Bh), free(bias), free(C), free(C0), free(R);
    }
    for (int p = 0; p < 3; p++) arwkv_pool_destroy(pools[p]);
}

/* Every instruction path (AVX-512, AVX2+FMA, plain C) sums an element of C in one order: a chain of
   fused multiply-adds from zero over each block of ARWKV__KC k-values, the bias added to the first
   block's sum, the blocks added to C in turn. So the three builds give the same bits; this checks
   the order exactly, against fmaf, with A and B in both layouts, a bias and accumulation. */
TEST(gemm_sums_in_the_documented_order) {
    int shapes[][3] = {{13, 45, 600}, {7, 129, 256}, {100, 70, 300}, {5, 33, 17}};
    arwkv_pool *pool;
    CHECK_OK(arwkv_pool_create(2, &pool));
    test_seed(12);
    for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++) {
        int M = shapes[s][0], N = shapes[s][1], K = shapes[s][2];
        float *A = (float *)malloc(sizeof(float) * M * K), *Bf = (float *)malloc(sizeof(float) * K * N);
        float *bias = (float *)malloc(sizeof(float) * N), *C = (float *)malloc(sizeof(float) * M * N), *R = (float *)malloc(sizeof(float) * M * N);
        uint16_t *Bh = (uint16_t *)malloc(2 * (size_t)K * N);
        test_fill_randn(A, (size_t)M * K, 1);
        test_fill_randn(bias, N, 1);
        test_fill_randn(Bf, (size_t)K * N, 1);
        for (size_t i = 0; i < (size_t)K * N; i++) Bf[i] = arwkv_bf16_to_f32(Bh[i] = arwkv_f32_to_bf16(Bf[i]));
        for (int variant = 0; variant < 16; variant++) {
            int trans_a = variant & 1, trans_b = (variant >> 1) & 1, bf16 = (variant >> 2) & 1, acc = variant >> 3;
            ptrdiff_t ars = trans_a ? 1 : K, acs = trans_a ? M : 1, brs = trans_b ? 1 : N, bcs = trans_b ? K : 1;
            const float *use_bias = variant % 3 ? bias : NULL;
            for (int i = 0; i < M * N; i++) C[i] = R[i] = (float)(i % 7) - 3.0f;
            for (int m = 0; m < M; m++)
                for (int n = 0; n < N; n++) {
                    float c = R[m * N + n];
                    for (int k0 = 0; k0 < K; k0 += ARWKV__KC) {
                        float t = 0;
                        for (int k = k0; k < K && k < k0 + ARWKV__KC; k++) t = fmaf(A[m * ars + k * acs], Bf[k * brs + n * bcs], t);
                        if (k0 == 0) {
                            if (use_bias) t = t + use_bias[n];
                            c = acc ? c + t : t;
                        } else c = c + t;
                    }
                    R[m * N + n] = c;
                }
            CHECK_OK(arwkv__gemm(pool, M, N, K, A, ars, acs, bf16 ? (const void *)Bh : (const void *)Bf, bf16 ? ARWKV_BF16 : ARWKV_F32,
                                 brs, bcs, C, N, acc, use_bias));
            int differ = 0;
            for (int i = 0; i < M * N; i++) differ += memcmp(&C[i], &R[i], sizeof(float)) != 0;
            CHECK(differ == 0, "M%d N%d K%d transA %d transB %d %s accumulate %d: %d of %d elements differ from the fmaf chain", M, N,
                  K, trans_a, trans_b, bf16 ? "bf16" : "f32", acc, differ, M * N);
        }
        free(A), free(Bf), free(bias), free(C), free(R), free(Bh);
    }
    arwkv_pool_destroy(pool);
}

/* ---- models: load, parameters, save ------------------------------------------------------------ */

TEST(model_load_and_save_teacher) {
    arwkv_backend *be;
    CHECK_OK(arwkv_backend_cpu(2, &be));
    arwkv_model *m;
    CHECK_OK(arwkv_model_load("models/qwen2-code-tiny", be, &m));
    if (!m) return;
    CHECK(m->n_params == 1 + 8 * 12 + 1, "parameters %d", m->n_params);
    CHECK(m->lm_head == m->embed, "tied head");
    CHECK(m->embed->dtype == ARWKV_BF16 && !m->embed->owns_data, "embedding mapped in place as bf16");
    CHECK(m->layers[2].q_b->dtype == ARWKV_F32 && m->layers[2].q_b->owns_data, "biases become fp32");
    CHECK(arwkv_model_numel(m) == 21418112, "parameter count %lld", (long long)arwkv_model_numel(m));
    float norm[128];
    CHECK_OK(arwkv_param_read(m, m->layers[0].in_norm, norm, 128));
    /* save as bf16: every tensor comes back bit for bit */
    system("rm -rf build/test_saved_teacher");
    CHECK_OK(arwkv_model_save(m, "build/test_saved_teacher", ARWKV_BF16, 10 << 20, "models/qwen2-code-tiny"));
    arwkv_model *m2;
    CHECK_OK(arwkv_model_load("build/test_saved_teacher", be, &m2));
    if (m2) {
        CHECK(m2->cfg.rope_theta == 1e6 && m2->cfg.num_kv_heads == 1 && m2->cfg.tie_word_embeddings, "config round trip");
        CHECK(m2->st->n_files == 2 && test_file_exists("build/test_saved_teacher/model.safetensors.index.json"), "sharded at 10 MB (the 39 MB embedding alone in the first shard): %d files", m2->st->n_files);
        int same = 1;
        for (int i = 0; i < m->n_params; i++) {
            const arwkv_tensor_info *a = arwkv_st_find(m->st, m->params[i].name), *b = arwkv_st_find(m2->st, m->params[i].name);
            same &= a && b && a->nbytes == b->nbytes && memcmp(a->data, b->data, a->nbytes) == 0;
        }
        CHECK(same, "bf16 bits round-trip");
        CHECK(test_file_exists("build/test_saved_teacher/tokenizer.json"), "tokenizer copied");
        arwkv_model_free(m2);
    }
    arwkv_model_free(m);
    /* errors a person can act on */
    CHECK(arwkv_model_load("/nonexistent/model", be, &m) == ARWKV_ERR_NOT_FOUND && strstr(arwkv_last_error(), "/nonexistent/model"), "missing dir");
    system("rm -rf build/test_bad_model && mkdir -p build/test_bad_model && cp models/qwen2-code-tiny/config.json build/test_bad_model/");
    float x[4] = {0};
    arwkv_st_entry e = {"model.norm.weight", ARWKV_F32, 1, {4}, x};
    arwkv_st_write("build/test_bad_model/model.safetensors", &e, 1, NULL, 0);
    CHECK(arwkv_model_load("build/test_bad_model", be, &m) == ARWKV_ERR_NOT_FOUND && strstr(arwkv_last_error(), "model.embed_tokens.weight"),
          "missing tensor named: %s", arwkv_last_error());
    arwkv_backend_destroy(be);
}

/* A write that fails inside the writer (a full disk: "No space left on device") names the file it
   was writing, and leaves no partial file behind (issue 13). */
static arwkv_result failing_writer(arwkv__out *o, void *ctx) {
    (void)ctx;
    arwkv__out_write(o, "partial", 7);
    return arwkv__fail(ARWKV_ERR_IO, "write failed: No space left on device");
}
TEST(failed_write_names_the_file) {
    system("rm -rf build/test_full && mkdir -p build/test_full");
    arwkv_result r = arwkv__write_atomic("build/test_full/model.safetensors", failing_writer, NULL);
    CHECK(r == ARWKV_ERR_IO && strstr(arwkv_last_error(), "build/test_full/model.safetensors: write failed: No space left"), "%s",
          arwkv_last_error());
    char tmp[128];
    snprintf(tmp, sizeof tmp, "build/test_full/model.safetensors.tmp.%ld.0", (long)getpid());
    CHECK(!test_file_exists(tmp) && !test_file_exists("build/test_full/model.safetensors"), "a file was left behind");
}

/* Command-line numbers: whole string, in range, finite; the error names the option. */
TEST(strict_option_numbers) {
    int v = 7;
    float f = 7;
    uint64_t u = 7;
    CHECK_OK(arwkv_parse_int("--seq-len", "512", 1, 1 << 20, &v));
    CHECK(v == 512, "512 -> %d", v);
    CHECK_OK(arwkv_parse_int("--x", "-3", -5, 5, &v));
    CHECK(v == -3, "-3 -> %d", v);
    static const char *bad_ints[] = {"1e3", "99999999999", "", " 5", "5 ", "0x10", "12abc", "abc", "2147483648", "0"};
    for (size_t i = 0; i < sizeof bad_ints / sizeof *bad_ints; i++) {
        v = 7;
        arwkv_result r = arwkv_parse_int("--seq-len", bad_ints[i], 1, INT32_MAX, &v);
        CHECK(r == ARWKV_ERR_INVALID_ARGUMENT && v == 7 && strstr(arwkv_last_error(), "--seq-len") && strstr(arwkv_last_error(), bad_ints[i]),
              "'%s': %s, %d, '%s'", bad_ints[i], arwkv_result_string(r), v, arwkv_last_error());
    }
    CHECK(arwkv_parse_int("--seq-len", "99999999999", 1, INT32_MAX, &v) != ARWKV_OK && strstr(arwkv_last_error(), "out of range 1 to 2147483647"),
          "%s", arwkv_last_error());
    CHECK_OK(arwkv_parse_float("--lr", "1e-3", 0, 10, &f));
    CHECK(f == 1e-3f, "1e-3 -> %g", (double)f);
    static const char *bad_floats[] = {"nan", "inf", "-inf", "1e40", "", "0.5x", " 1", "11", "-1"};
    for (size_t i = 0; i < sizeof bad_floats / sizeof *bad_floats; i++) {
        f = 7;
        arwkv_result r = arwkv_parse_float("--temperature", bad_floats[i], 0, 10, &f);
        CHECK(r == ARWKV_ERR_INVALID_ARGUMENT && f == 7 && strstr(arwkv_last_error(), "--temperature"), "'%s': %s, %g, '%s'", bad_floats[i],
              arwkv_result_string(r), (double)f, arwkv_last_error());
    }
    CHECK(arwkv_parse_float("--temperature", "nan", 0, 10, &f) != ARWKV_OK && strstr(arwkv_last_error(), "finite"), "%s", arwkv_last_error());
    CHECK_OK(arwkv_parse_u64("--seed", "18446744073709551615", &u));
    CHECK(u == UINT64_MAX, "2^64-1 -> %llu", (unsigned long long)u);
    CHECK(arwkv_parse_u64("--seed", "-1", &u) == ARWKV_ERR_INVALID_ARGUMENT && u == UINT64_MAX, "-1 is not a seed");
    CHECK(arwkv_parse_u64("--seed", "18446744073709551616", &u) == ARWKV_ERR_INVALID_ARGUMENT, "2^64 is out of range");
    CHECK(arwkv_parse_u64("--seed", "3.5", &u) == ARWKV_ERR_INVALID_ARGUMENT, "3.5 is not a seed");
}

int main(void) {
    RUN(bf16_rounding);
    RUN(f16_conversion);
    RUN(pool_runs_each_task_once);
    RUN(pool_hands_over_between_spin_and_sleep);
    RUN(cpu_count_follows_the_affinity_mask);
    RUN(json_values);
    RUN(json_string_escapes);
    RUN(json_errors);
    RUN(json_tokenizer_file);
    RUN(safetensors_teacher_checkpoint);
    RUN(safetensors_broken_files);
    RUN(safetensors_write_roundtrip);
    RUN(safetensors_write_sharded);
    RUN(safetensors_bad_index);
    RUN(config_teacher);
    RUN(config_variants);
    RUN(gemm_matches_float64);
    RUN(gemm_sums_in_the_documented_order);
    RUN(model_load_and_save_teacher);
    RUN(strict_option_numbers);
    RUN(failed_write_names_the_file);
    return test_summary("foundation");
}
