/* GGUF: the reader (every metadata type, tensor infos, alignment), the dequantizers against
   references written here from the format's definition, and every malformed file we can think of,
   each with its precise error. The files are written by this test (gguf_buf below). */
#define ARWKV_IMPLEMENTATION
#include "arwkv.h"
#include "test.h"

#include "gguf_write.h"

/* Open an image, expecting failure whose message contains `want`. */
static void expect_error(const gguf_buf *b, const char *want, const char *label) {
    arwkv_gguf *g = NULL;
    arwkv_result r = arwkv_gguf_open_memory(b->p, b->n, "bad.gguf", &g);
    CHECK(r != ARWKV_OK && g == NULL, "%s: opened a malformed file", label);
    CHECK(strstr(arwkv_last_error(), want) != NULL, "%s: error '%s' lacks '%s'", label, arwkv_last_error(), want);
    CHECK(strstr(arwkv_last_error(), "bad.gguf") != NULL, "%s: error '%s' does not name the file", label, arwkv_last_error());
    arwkv_gguf_close(g);
}

/* ---- metadata --------------------------------------------------------------------------------- */

/* One entry of every value type, arrays of numbers, strings and arrays; version 2 and 3. */
static void write_all_types(gguf_buf *b, uint32_t version) {
    put_header(b, version, 0, 18);
    const int sizes[13] = {1, 1, 2, 2, 4, 4, 4, 1, 0, 0, 8, 8, 8};
    const uint64_t raw[13] = {200, 0x80, 60000, 0x8000, 4000000000u, 0x80000000u, 0x40490fdbu /* 3.1415927f */, 1, 0, 0,
                              18000000000000000000ull, 0x8000000000000000ull, 0x400921fb54442d18ull /* pi */};
    for (int t = 0; t < 13; t++) {
        if (t == ARWKV_GGUF_STRING || t == ARWKV_GGUF_ARRAY) continue;
        char key[32];
        snprintf(key, sizeof key, "k.%d", t);
        put_str(b, key);
        put_u32(b, (uint32_t)t);
        put_le(b, raw[t], sizes[t]);
    }
    put_kv_str(b, "k.string", "h\xc3\xa9llo");
    put_str(b, "k.empty_string");
    put_u32(b, ARWKV_GGUF_STRING);
    put_u64(b, 0);
    put_str(b, "k.ints"); /* int16 array */
    put_u32(b, ARWKV_GGUF_ARRAY);
    put_u32(b, ARWKV_GGUF_INT16);
    put_u64(b, 3);
    put_le(b, 1, 2), put_le(b, 0xfffe, 2), put_le(b, 300, 2);
    put_str(b, "k.strings");
    put_u32(b, ARWKV_GGUF_ARRAY);
    put_u32(b, ARWKV_GGUF_STRING);
    put_u64(b, 3);
    put_str(b, "a"), put_str(b, ""), put_str(b, "\xc4\xa0the");
    put_str(b, "k.nested"); /* array of 2 arrays of uint8 */
    put_u32(b, ARWKV_GGUF_ARRAY);
    put_u32(b, ARWKV_GGUF_ARRAY);
    put_u64(b, 2);
    put_u32(b, ARWKV_GGUF_UINT8), put_u64(b, 2), put_le(b, 7, 1), put_le(b, 8, 1);
    put_u32(b, ARWKV_GGUF_UINT8), put_u64(b, 0);
    put_str(b, "k.floats");
    put_u32(b, ARWKV_GGUF_ARRAY);
    put_u32(b, ARWKV_GGUF_FLOAT32);
    put_u64(b, 2);
    put_u32(b, 0x3f800000u), put_u32(b, 0xc0000000u);
    put_kv_u32(b, "general.alignment", 64);
}

TEST(gguf_metadata_every_type) {
    for (uint32_t version = 2; version <= 3; version++) {
        gguf_buf b = {0};
        write_all_types(&b, version);
        arwkv_gguf *g;
        CHECK_OK(arwkv_gguf_open_memory(b.p, b.n, "types.gguf", &g));
        if (!g) continue;
        CHECK(arwkv_gguf_version(g) == version && arwkv_gguf_kv_count(g) == 18 && arwkv_gguf_tensor_count(g) == 0, "counts");
        CHECK(arwkv_gguf_alignment(g) == 64, "alignment %u", arwkv_gguf_alignment(g));
        const int64_t want_int[13] = {200, -128, 60000, -32768, 4000000000ll, INT32_MIN, 0, 1, 0, 0, 0, INT64_MIN, 0};
        for (int t = 0; t < 13; t++) {
            if (t == ARWKV_GGUF_STRING || t == ARWKV_GGUF_ARRAY) continue;
            char key[32];
            snprintf(key, sizeof key, "k.%d", t);
            const arwkv_gguf_kv *kv = arwkv_gguf_find_kv(g, key);
            CHECK(kv && kv->type == (arwkv_gguf_value_type)t && kv->count == 1, "%s present with its type", key);
            if (!kv) continue;
            int64_t v = 0;
            double f = 0;
            if (t == ARWKV_GGUF_FLOAT32 || t == ARWKV_GGUF_FLOAT64) {
                CHECK(arwkv_gguf_kv_int(g, kv, 0, &v) == ARWKV_ERR_FORMAT && strstr(arwkv_last_error(), "not an integer"), "%s: float is not an int", key);
                CHECK_OK(arwkv_gguf_kv_float(g, kv, 0, &f));
                double want = t == ARWKV_GGUF_FLOAT32 ? (double)3.14159274f : 3.141592653589793;
                CHECK(f == want, "%s = %.17g", key, f);
            } else if (t == ARWKV_GGUF_UINT64) {
                CHECK(arwkv_gguf_kv_int(g, kv, 0, &v) == ARWKV_ERR_FORMAT && strstr(arwkv_last_error(), "does not fit in int64"),
                      "uint64 above INT64_MAX: %s", arwkv_last_error());
            } else {
                CHECK_OK(arwkv_gguf_kv_int(g, kv, 0, &v));
                CHECK(v == want_int[t], "%s = %lld, want %lld", key, (long long)v, (long long)want_int[t]);
                if (t != ARWKV_GGUF_BOOL) {
                    CHECK_OK(arwkv_gguf_kv_float(g, kv, 0, &f));
                    CHECK(f == (double)want_int[t], "%s as float", key);
                }
            }
            CHECK(arwkv_gguf_kv_int(g, kv, 1, &v) == ARWKV_ERR_INVALID_ARGUMENT && strstr(arwkv_last_error(), "past its 1"),
                  "index past a scalar");
        }
        const char *s;
        size_t len;
        const arwkv_gguf_kv *kv = arwkv_gguf_find_kv(g, "k.string");
        CHECK(kv && arwkv_gguf_kv_string(g, kv, 0, &s, &len) == ARWKV_OK && len == 6 && memcmp(s, "h\xc3\xa9llo", 6) == 0, "string");
        int64_t v;
        CHECK(kv && arwkv_gguf_kv_int(g, kv, 0, &v) == ARWKV_ERR_FORMAT && strstr(arwkv_last_error(), "'k.string'") &&
                  strstr(arwkv_last_error(), "is string, not an integer"), "string is not an int: %s", arwkv_last_error());
        kv = arwkv_gguf_find_kv(g, "k.empty_string");
        CHECK(kv && arwkv_gguf_kv_string(g, kv, 0, &s, &len) == ARWKV_OK && len == 0, "empty string");
        kv = arwkv_gguf_find_kv(g, "k.ints");
        CHECK(kv && kv->type == ARWKV_GGUF_ARRAY && kv->elem_type == ARWKV_GGUF_INT16 && kv->count == 3, "int16 array");
        int64_t ints[3] = {0, 0, 0};
        for (int i = 0; kv && i < 3; i++) CHECK_OK(arwkv_gguf_kv_int(g, kv, (uint64_t)i, &ints[i]));
        CHECK(ints[0] == 1 && ints[1] == -2 && ints[2] == 300, "int16 values %lld %lld %lld", (long long)ints[0], (long long)ints[1], (long long)ints[2]);
        CHECK(kv && arwkv_gguf_kv_int(g, kv, 3, &v) == ARWKV_ERR_INVALID_ARGUMENT, "index 3 of 3");
        kv = arwkv_gguf_find_kv(g, "k.strings");
        CHECK(kv && kv->elem_type == ARWKV_GGUF_STRING && kv->count == 3, "string array");
        const char *want_s[3] = {"a", "", "\xc4\xa0the"};
        for (int i = 0; kv && i < 3; i++) {
            CHECK(arwkv_gguf_kv_string(g, kv, (uint64_t)i, &s, &len) == ARWKV_OK && len == strlen(want_s[i]) && memcmp(s, want_s[i], len) == 0,
                  "string %d", i);
        }
        kv = arwkv_gguf_find_kv(g, "k.nested");
        CHECK(kv && kv->elem_type == ARWKV_GGUF_ARRAY && kv->count == 2, "nested array is listed");
        CHECK(kv && arwkv_gguf_kv_int(g, kv, 0, &v) == ARWKV_ERR_FORMAT && strstr(arwkv_last_error(), "an array of array"),
              "nested elements are not numbers: %s", arwkv_last_error());
        kv = arwkv_gguf_find_kv(g, "k.floats");
        double f0 = 0, f1 = 0;
        CHECK(kv && arwkv_gguf_kv_float(g, kv, 0, &f0) == ARWKV_OK && arwkv_gguf_kv_float(g, kv, 1, &f1) == ARWKV_OK && f0 == 1 && f1 == -2,
              "float array");
        CHECK(arwkv_gguf_find_kv(g, "k.missing") == NULL && arwkv_gguf_find_tensor(g, "x") == NULL, "absent key and tensor");
        arwkv_gguf_close(g);
        if (version == 3) { /* also the fuzzer's seed for metadata */
            FILE *f = fopen("build/fuzz-seed-metadata.gguf", "wb");
            if (f) fwrite(b.p, 1, b.n, f), fclose(f);
        }
        free(b.p);
    }
}

/* ---- dequantizers: references written from the format's definition --------------------------- */
/* Each reference computes value e of a block on its own, in double, from the bit positions the
   format gives it; the library decodes whole blocks in its own loop order. */

static double h16(const unsigned char *p) { return (double)arwkv_f16_to_f32((uint16_t)(p[0] | p[1] << 8)); }
static int bit(const unsigned char *bytes, int i) { return (bytes[i / 8] >> (i % 8)) & 1; }

static double ref_q4_0(const unsigned char *b, int e) {
    int q = e < 16 ? b[2 + e] & 15 : b[2 + e - 16] >> 4;
    return (q - 8) * h16(b);
}
static double ref_q4_1(const unsigned char *b, int e) {
    int q = e < 16 ? b[4 + e] & 15 : b[4 + e - 16] >> 4;
    return q * h16(b) + h16(b + 2);
}
static double ref_q5_0(const unsigned char *b, int e) {
    int q = (e < 16 ? b[6 + e] & 15 : b[6 + e - 16] >> 4) + 16 * bit(b + 2, e);
    return (q - 16) * h16(b);
}
static double ref_q5_1(const unsigned char *b, int e) {
    int q = (e < 16 ? b[8 + e] & 15 : b[8 + e - 16] >> 4) + 16 * bit(b + 4, e);
    return q * h16(b) + h16(b + 2);
}
static double ref_q8_0(const unsigned char *b, int e) { return (signed char)b[2 + e] * h16(b); }
/* The 6-bit scale (which 0) or min (which 1) of K-quant sub-block s, read from the 96 bits of
   scales[12] as the layout places them (see arwkv.h): written here as explicit bit positions. */
static int ref_k_six_bits(const unsigned char *scales, int s, int which) {
    int v = 0;
    for (int k = 0; k < 6; k++) {
        int pos; /* bit position in scales[] of bit k of the value */
        if (s < 4) pos = 8 * (s + 4 * which) + k;
        else if (k < 4) pos = 8 * (s + 4) + 4 * which + k;
        else pos = 8 * (s - 4 + 4 * which) + 6 + (k - 4);
        v |= bit(scales, pos) << k;
    }
    return v;
}
static double ref_q4_k(const unsigned char *b, int e) {
    int s = e / 32, chunk = e / 64, l = e % 32;
    int q = (s % 2 == 0) ? b[16 + 32 * chunk + l] & 15 : b[16 + 32 * chunk + l] >> 4;
    return h16(b) * ref_k_six_bits(b + 4, s, 0) * q - h16(b + 2) * ref_k_six_bits(b + 4, s, 1);
}
static double ref_q5_k(const unsigned char *b, int e) {
    int s = e / 32, chunk = e / 64, l = e % 32;
    int q = (s % 2 == 0) ? b[48 + 32 * chunk + l] & 15 : b[48 + 32 * chunk + l] >> 4;
    q += 16 * bit(b + 16, 8 * l + s); /* bit s of qh[l] */
    return h16(b) * ref_k_six_bits(b + 4, s, 0) * q - h16(b + 2) * ref_k_six_bits(b + 4, s, 1);
}
static double ref_q6_k(const unsigned char *b, int e) {
    int half = e / 128, r = e % 128, k = r / 32, l = r % 32;
    const unsigned char *ql = b + 64 * half, *qh = b + 128 + 32 * half;
    int byte = ql[l + (k % 2) * 32];
    int lo = k < 2 ? byte & 15 : byte >> 4;
    int hi = (qh[l] >> (2 * k)) & 3;
    int scale = (signed char)b[192 + e / 16];
    return h16(b + 208) * scale * (lo + 16 * hi - 32);
}

typedef struct {
    int type, block, bytes;
    double (*ref)(const unsigned char *, int);
    int f16_at[2]; /* byte offsets of fp16 scales in a block (-1: none), kept finite and small */
} quant_case;
static const quant_case quant_cases[] = {
    {ARWKV_GGML_Q4_0, 32, 18, ref_q4_0, {0, -1}},   {ARWKV_GGML_Q4_1, 32, 20, ref_q4_1, {0, 2}},
    {ARWKV_GGML_Q5_0, 32, 22, ref_q5_0, {0, -1}},   {ARWKV_GGML_Q5_1, 32, 24, ref_q5_1, {0, 2}},
    {ARWKV_GGML_Q8_0, 32, 34, ref_q8_0, {0, -1}},   {ARWKV_GGML_Q4_K, 256, 144, ref_q4_k, {0, 2}},
    {ARWKV_GGML_Q5_K, 256, 176, ref_q5_k, {0, 2}},  {ARWKV_GGML_Q6_K, 256, 210, ref_q6_k, {208, -1}},
};
#define N_QUANT ((int)(sizeof quant_cases / sizeof quant_cases[0]))

static void random_blocks(const quant_case *qc, unsigned char *p, int n_blocks) {
    for (int i = 0; i < n_blocks * qc->bytes; i++) p[i] = (unsigned char)(test_uniform() * 256);
    for (int i = 0; i < n_blocks; i++)
        for (int k = 0; k < 2; k++)
            if (qc->f16_at[k] >= 0) {
                uint16_t h = arwkv_f32_to_f16(test_randn() * 0.01f);
                p[i * qc->bytes + qc->f16_at[k]] = (unsigned char)h;
                p[i * qc->bytes + qc->f16_at[k] + 1] = (unsigned char)(h >> 8);
            }
}

TEST(gguf_dequantize_against_reference) {
    test_seed(17);
    enum { NB = 64 };
    for (int c = 0; c < N_QUANT; c++) {
        const quant_case *qc = &quant_cases[c];
        size_t bytes;
        CHECK(arwkv_ggml_block_size(qc->type, &bytes) == qc->block && (int)bytes == qc->bytes, "%s block size", arwkv_ggml_type_name(qc->type));
        unsigned char *blocks = (unsigned char *)malloc((size_t)NB * qc->bytes);
        float *got = (float *)malloc((size_t)NB * qc->block * sizeof(float));
        random_blocks(qc, blocks, NB);
        CHECK_OK(arwkv_dequantize(qc->type, blocks, (int64_t)NB * qc->block, got));
        double worst = 0;
        int distinct_nonzero = 0;
        for (int i = 0; i < NB; i++)
            for (int e = 0; e < qc->block; e++) {
                double want = qc->ref(blocks + (size_t)i * qc->bytes, e), have = got[i * qc->block + e];
                double err = fabs(have - want) / (fabs(want) > 1e-3 ? fabs(want) : 1e-3);
                if (!(err <= worst)) worst = err;
                distinct_nonzero += want != 0;
            }
        CHECK(worst < 1e-6, "%s: relative error %.3g against the reference", arwkv_ggml_type_name(qc->type), worst);
        CHECK(distinct_nonzero > NB * qc->block / 2, "%s: the random blocks exercise nonzero values", arwkv_ggml_type_name(qc->type));
        CHECK(arwkv_dequantize(qc->type, blocks, qc->block + 1, got) == ARWKV_ERR_INVALID_ARGUMENT &&
                  strstr(arwkv_last_error(), "not whole"), "%s: a partial block is refused", arwkv_ggml_type_name(qc->type));
        free(blocks);
        free(got);
    }
    /* float types are plain conversions */
    unsigned char raw[8] = {0x00, 0x3c, 0x00, 0xc0, 0x80, 0x3f, 0x00, 0x40}; /* f16 1, -2; bf16 1, 2 */
    float out[2];
    CHECK(arwkv_dequantize(ARWKV_GGML_F16, raw, 2, out) == ARWKV_OK && out[0] == 1 && out[1] == -2, "F16");
    CHECK(arwkv_dequantize(ARWKV_GGML_BF16, raw + 4, 2, out) == ARWKV_OK && out[0] == 1 && out[1] == 2, "BF16");
    CHECK(arwkv_dequantize(10 /* Q2_K */, raw, 256, out) == ARWKV_ERR_UNSUPPORTED && strstr(arwkv_last_error(), "Q2_K") &&
              strstr(arwkv_last_error(), "not supported"), "Q2_K is named as unsupported: %s", arwkv_last_error());
}

/* ---- tensors of every type in one file -------------------------------------------------------- */

/* A file with one 2-D tensor per supported type ([2 rows, one block each... ] in ggml order) and the
   data of each at an aligned offset; returns the values the reader must give (fp32, in order). */
static void write_every_type(gguf_buf *b, uint32_t alignment, float **want, int64_t *n_want, int *n_tensors) {
    test_seed(99);
    int n = N_QUANT + 3;
    unsigned char *data[N_QUANT + 3];
    size_t size[N_QUANT + 3];
    uint64_t ne[N_QUANT + 3][2];
    int type[N_QUANT + 3];
    *n_want = 0;
    for (int c = 0; c < n; c++) {
        int block = 1, bytes;
        if (c < N_QUANT) {
            block = quant_cases[c].block;
            bytes = quant_cases[c].bytes;
            type[c] = quant_cases[c].type;
        } else {
            type[c] = c == N_QUANT ? ARWKV_GGML_F32 : c == N_QUANT + 1 ? ARWKV_GGML_F16 : ARWKV_GGML_BF16;
            bytes = type[c] == ARWKV_GGML_F32 ? 4 : 2;
        }
        ne[c][0] = (uint64_t)block * (c < N_QUANT ? 2 : 5); /* two blocks per row, or 5 floats */
        ne[c][1] = 3;
        size_t values = (size_t)(ne[c][0] * ne[c][1]);
        size[c] = values / (size_t)block * (size_t)bytes;
        data[c] = (unsigned char *)malloc(size[c]);
        if (c < N_QUANT) random_blocks(&quant_cases[c], data[c], (int)(values / (size_t)block));
        else
            for (size_t i = 0; i < values; i++) {
                float f = test_randn();
                uint32_t u;
                memcpy(&u, &f, 4);
                uint16_t h = type[c] == ARWKV_GGML_F16 ? arwkv_f32_to_f16(f) : arwkv_f32_to_bf16(f);
                if (type[c] == ARWKV_GGML_F32) memcpy(data[c] + 4 * i, &u, 4);
                else data[c][2 * i] = (unsigned char)h, data[c][2 * i + 1] = (unsigned char)(h >> 8);
            }
        *n_want += (int64_t)values;
    }
    *want = (float *)malloc((size_t)*n_want * sizeof(float));
    put_header(b, 3, (uint64_t)n, 2);
    put_kv_str(b, "general.architecture", "test");
    put_kv_u32(b, "general.alignment", alignment);
    uint64_t off = 0;
    for (int c = 0; c < n; c++) {
        char name[32];
        snprintf(name, sizeof name, "t.%s", arwkv_ggml_type_name(type[c]));
        put_tensor_info(b, name, 2, ne[c], (uint32_t)type[c], off);
        off += (size[c] + alignment - 1) / alignment * alignment;
    }
    pad_to(b, alignment);
    int64_t at = 0;
    for (int c = 0; c < n; c++) {
        size_t values = (size_t)(ne[c][0] * ne[c][1]);
        if (c < N_QUANT) {
            const quant_case *qc = &quant_cases[c];
            for (size_t v = 0; v < values; v++) (*want)[at + (int64_t)v] = (float)qc->ref(data[c] + v / (size_t)qc->block * (size_t)qc->bytes, (int)(v % (size_t)qc->block));
        } else
            for (size_t v = 0; v < values; v++) {
                uint16_t h = (uint16_t)(data[c][2 * v] | data[c][2 * v + 1] << 8);
                if (type[c] == ARWKV_GGML_F32) memcpy(&(*want)[at + (int64_t)v], data[c] + 4 * v, 4);
                else (*want)[at + (int64_t)v] = type[c] == ARWKV_GGML_F16 ? arwkv_f16_to_f32(h) : arwkv_bf16_to_f32(h);
            }
        at += (int64_t)values;
        put(b, data[c], size[c]);
        pad_to(b, alignment);
        free(data[c]);
    }
    *n_tensors = n;
}

static void check_every_type(arwkv_gguf *g, const float *want, int n, uint32_t alignment) {
    CHECK(arwkv_gguf_tensor_count(g) == n, "%d tensors", arwkv_gguf_tensor_count(g));
    int64_t at = 0;
    for (int i = 0; i < arwkv_gguf_tensor_count(g); i++) {
        const arwkv_gguf_tensor *t = arwkv_gguf_tensor_at(g, i);
        char name[32];
        snprintf(name, sizeof name, "t.%s", arwkv_ggml_type_name(t->type));
        CHECK(strcmp(t->name, name) == 0 && arwkv_gguf_find_tensor(g, name) == t, "tensor %d is %s", i, name);
        CHECK(t->ndim == 2 && t->ne[1] == 3 && t->ne[2] == 1 && t->ne[3] == 1 && t->numel == t->ne[0] * 3, "%s shape", name);
        CHECK(t->offset % alignment == 0, "%s: offset %llu aligned to %u", name, (unsigned long long)t->offset, alignment);
        float *got = (float *)malloc((size_t)t->numel * sizeof(float));
        CHECK_OK(arwkv_gguf_tensor_f32(g, t, got, t->numel));
        double err = test_max_rel_err(got, want + at, (size_t)t->numel, 1e-3);
        CHECK(err < 1e-6, "%s: relative error %.3g", name, err);
        CHECK(arwkv_gguf_tensor_f32(g, t, got, t->numel - 1) == ARWKV_ERR_SHAPE && strstr(arwkv_last_error(), name), "count check names %s", name);
        at += t->numel;
        free(got);
    }
}

TEST(gguf_tensors_every_type) {
    for (uint32_t alignment = 32; alignment <= 256; alignment *= 8) {
        gguf_buf b = {0};
        float *want;
        int64_t n_want;
        int n;
        write_every_type(&b, alignment, &want, &n_want, &n);
        arwkv_gguf *g;
        CHECK_OK(arwkv_gguf_open_memory(b.p, b.n, "every.gguf", &g));
        if (g) check_every_type(g, want, n, alignment);
        arwkv_gguf_close(g);
        /* the same through a file (mapped, or read where ARWKV_NO_MMAP is defined) */
        const char *path = "build/test_gguf_every_type.gguf";
        FILE *f = fopen(path, "wb");
        CHECK(f && fwrite(b.p, 1, b.n, f) == b.n, "write %s", path);
        if (f) fclose(f);
        CHECK_OK(arwkv_gguf_open(path, &g));
        if (g) {
            CHECK(strcmp(arwkv_gguf_path(g), path) == 0, "path");
            check_every_type(g, want, n, alignment);
        }
        arwkv_gguf_close(g);
        if (alignment == 32) { /* also the fuzzer's seed: every type in a few kilobytes */
            f = fopen("build/fuzz-seed-every-type.gguf", "wb");
            if (f) fwrite(b.p, 1, b.n, f), fclose(f);
        }
        free(want);
        free(b.p);
    }
    arwkv_gguf *g;
    CHECK(arwkv_gguf_open("build/no-such-file.gguf", &g) == ARWKV_ERR_IO && strstr(arwkv_last_error(), "no-such-file.gguf"), "missing file");
}

/* ---- malformed files -------------------------------------------------------------------------- */

/* A valid file with one Q4_0 tensor, to cut and corrupt. */
static void write_small(gguf_buf *b) {
    put_header(b, 3, 1, 1);
    put_kv_str(b, "general.architecture", "llama");
    uint64_t ne[2] = {32, 2};
    put_tensor_info(b, "w", 2, ne, ARWKV_GGML_Q4_0, 0);
    pad_to(b, 32);
    for (int i = 0; i < 36; i++) put_le(b, (uint64_t)i, 1);
}

TEST(gguf_malformed_header) {
    gguf_buf b = {0};
    expect_error(&b, "needs 4 bytes", "empty file");
    put(&b, "GGUF", 4);
    expect_error(&b, "the version at byte 4 needs 4 bytes", "no version");
    b.n = 0;
    put(&b, "GGML", 4), put_u32(&b, 3), put_u64(&b, 0), put_u64(&b, 0);
    expect_error(&b, "bytes 0..3 are not \"GGUF\"", "magic");
    for (uint32_t v = 0; v < 6; v++) {
        if (v == 2 || v == 3) continue;
        b.n = 0;
        put_header(&b, v, 0, 0);
        expect_error(&b, v == 1 ? "version 1" : "versions 2 and 3 are supported", "version");
    }
    b.n = 0;
    put_header(&b, 3u << 24, 0, 0);
    expect_error(&b, "big-endian", "big-endian file");
    b.n = 0;
    put_header(&b, 3, 0, 1ull << 40);
    expect_error(&b, "metadata count 1099511627776 at byte 16 cannot fit", "huge metadata count");
    b.n = 0;
    put_header(&b, 3, 1ull << 62, 0);
    expect_error(&b, "tensor count 4611686018427387904 at byte 8 cannot fit", "huge tensor count");
    b.n = 0;
    put_header(&b, 2, 0, 0);
    arwkv_gguf *g;
    CHECK(arwkv_gguf_open_memory(b.p, b.n, "ok.gguf", &g) == ARWKV_OK && arwkv_gguf_kv_count(g) == 0, "an empty v2 file is valid");
    arwkv_gguf_close(g);
    free(b.p);
}

TEST(gguf_malformed_every_truncation) {
    /* every prefix of a valid file is refused with a message about the end of the file */
    gguf_buf full = {0};
    write_small(&full);
    arwkv_gguf *g;
    CHECK_OK(arwkv_gguf_open_memory(full.p, full.n, "small.gguf", &g));
    arwkv_gguf_close(g);
    for (size_t n = 0; n < full.n; n++) {
        gguf_buf cut = {full.p, n, n};
        arwkv_result r = arwkv_gguf_open_memory(cut.p, cut.n, "cut.gguf", &g);
        const char *e = arwkv_last_error();
        int worded = strstr(e, "truncated") || strstr(e, "ends first") || strstr(e, "past the end") || strstr(e, "cannot fit");
        if (r == ARWKV_OK || !worded) {
            CHECK(0, "prefix of %zu bytes: %s", n, r == ARWKV_OK ? "opened" : e);
            arwkv_gguf_close(g);
            break;
        }
    }
    free(full.p);
}

/* Build a file with one metadata entry whose bytes after the key come from `value`. */
static void one_kv(gguf_buf *b, const char *key, void (*value)(gguf_buf *)) {
    b->n = 0;
    put_header(b, 3, 0, 1);
    put_str(b, key);
    value(b);
}
static void v_unknown_type(gguf_buf *b) { put_u32(b, 13); }
static void v_bad_bool(gguf_buf *b) { put_u32(b, ARWKV_GGUF_BOOL), put_le(b, 2, 1); }
static void v_long_string(gguf_buf *b) { put_u32(b, ARWKV_GGUF_STRING), put_u64(b, 1ull << 60), put(b, "abc", 3); }
static void v_array_unknown(gguf_buf *b) { put_u32(b, ARWKV_GGUF_ARRAY), put_u32(b, 77), put_u64(b, 1); }
static void v_array_huge(gguf_buf *b) { put_u32(b, ARWKV_GGUF_ARRAY), put_u32(b, ARWKV_GGUF_UINT64), put_u64(b, 1ull << 61), put_u64(b, 0); }
static void v_string_array_huge(gguf_buf *b) { put_u32(b, ARWKV_GGUF_ARRAY), put_u32(b, ARWKV_GGUF_STRING), put_u64(b, 1000), put_str(b, "x"); }
static void v_array_bool(gguf_buf *b) { put_u32(b, ARWKV_GGUF_ARRAY), put_u32(b, ARWKV_GGUF_BOOL), put_u64(b, 3), put_le(b, 0x030001, 3); }
static void v_deep(gguf_buf *b) {
    put_u32(b, ARWKV_GGUF_ARRAY);
    for (int i = 0; i < 20; i++) put_u32(b, ARWKV_GGUF_ARRAY), put_u64(b, 1);
    put_u32(b, ARWKV_GGUF_UINT8), put_u64(b, 0);
}
static void v_alignment_48(gguf_buf *b) { put_u32(b, ARWKV_GGUF_UINT32), put_u32(b, 48); }
static void v_alignment_u64(gguf_buf *b) { put_u32(b, ARWKV_GGUF_UINT64), put_u64(b, 32); }
static void v_alignment_0(gguf_buf *b) { put_u32(b, ARWKV_GGUF_UINT32), put_u32(b, 0); }

TEST(gguf_malformed_metadata) {
    gguf_buf b = {0};
    one_kv(&b, "k", v_unknown_type);
    expect_error(&b, "metadata 'k': unknown value type 13 at byte 33", "unknown value type");
    one_kv(&b, "k", v_bad_bool);
    expect_error(&b, "metadata 'k': bool at byte 37 is 2, not 0 or 1", "bool");
    one_kv(&b, "k", v_long_string);
    expect_error(&b, "metadata 'k': string value at byte 37 has length 1152921504606846976, past the end", "string length");
    one_kv(&b, "k", v_array_unknown);
    expect_error(&b, "metadata 'k': unknown array element type 77 at byte 37", "array element type");
    one_kv(&b, "k", v_array_huge);
    expect_error(&b, "metadata 'k': array of 2305843009213693952 uint64 elements at byte 37 does not fit", "array count");
    one_kv(&b, "k", v_string_array_huge);
    expect_error(&b, "array of 1000 string elements", "string array count");
    one_kv(&b, "k", v_array_bool);
    expect_error(&b, "metadata 'k': bool element 2 at byte 51 is 3", "bool array");
    one_kv(&b, "k", v_deep);
    expect_error(&b, "arrays nested more than 8 deep", "nesting");
    one_kv(&b, "general.alignment", v_alignment_48);
    expect_error(&b, "general.alignment at byte 53 must be a uint32 power of two, found uint32 48", "alignment 48");
    one_kv(&b, "general.alignment", v_alignment_0);
    expect_error(&b, "power of two, found uint32 0", "alignment 0");
    one_kv(&b, "general.alignment", v_alignment_u64);
    expect_error(&b, "must be a uint32 power of two, found uint64", "alignment type");
    /* keys: empty, with a NUL, too long, repeated */
    b.n = 0;
    put_header(&b, 3, 0, 1), put_u64(&b, 0), put_u32(&b, ARWKV_GGUF_UINT8), put_le(&b, 0, 1);
    expect_error(&b, "the key of metadata entry 0 at byte 24 is empty", "empty key");
    b.n = 0;
    put_header(&b, 3, 0, 1), put_u64(&b, 3), put(&b, "a\0b", 3), put_u32(&b, ARWKV_GGUF_UINT8), put_le(&b, 0, 1);
    expect_error(&b, "the key of metadata entry 0 at byte 24 is a string with a NUL byte inside", "NUL in key");
    b.n = 0;
    put_header(&b, 3, 0, 1), put_u64(&b, 5000);
    for (int i = 0; i < 5000; i++) put(&b, "k", 1);
    put_u32(&b, ARWKV_GGUF_UINT8), put_le(&b, 0, 1);
    expect_error(&b, "is longer than 4096 bytes", "long key");
    b.n = 0;
    put_header(&b, 3, 0, 3);
    put_kv_u32(&b, "a", 1), put_kv_u32(&b, "b", 2), put_kv_u32(&b, "a", 3);
    expect_error(&b, "metadata key 'a' appears twice (entry 2)", "duplicate key");
    free(b.p);
}

/* A file with tensor infos given by the caller; data of data_bytes zero bytes after padding. */
typedef struct {
    const char *name;
    int ndim;
    uint64_t ne[5];
    uint32_t type;
    uint64_t offset;
} tinfo;
static void tensors_file(gguf_buf *b, const tinfo *t, int n, size_t data_bytes) {
    b->n = 0;
    put_header(b, 3, (uint64_t)n, 0);
    for (int i = 0; i < n; i++) put_tensor_info(b, t[i].name, t[i].ndim, t[i].ne, t[i].type, t[i].offset);
    pad_to(b, 32);
    for (size_t i = 0; i < data_bytes; i++) put_le(b, 0, 1);
}

TEST(gguf_malformed_tensors) {
    gguf_buf b = {0};
    tinfo t0 = {"w", 0, {0}, 0, 0};
    tensors_file(&b, &t0, 1, 64);
    expect_error(&b, "tensor 'w': 0 dimensions at byte 33; 1 to 4 are allowed", "0 dims");
    tinfo t5 = {"w", 5, {1, 1, 1, 1, 1}, 0, 0};
    tensors_file(&b, &t5, 1, 64);
    expect_error(&b, "tensor 'w': 5 dimensions", "5 dims");
    tinfo tz = {"w", 2, {4, 0}, 0, 0};
    tensors_file(&b, &tz, 1, 64);
    expect_error(&b, "tensor 'w': dimension 1 at byte 45 is 0 (must be at least 1)", "zero dim");
    tinfo tbig = {"w", 3, {1ull << 31, 1ull << 31, 4}, 0, 0};
    tensors_file(&b, &tbig, 1, 64);
    expect_error(&b, "tensor 'w': dimension 2 at byte 53 is 4 (the element count overflows 63 bits)", "overflow");
    tinfo tneg = {"w", 1, {1ull << 63}, 0, 0};
    tensors_file(&b, &tneg, 1, 64);
    expect_error(&b, "overflows 63 bits", "dimension above INT64_MAX");
    tinfo ttype = {"w", 1, {4}, 99, 0};
    tensors_file(&b, &ttype, 1, 64);
    expect_error(&b, "tensor 'w': unknown ggml type 99 at byte 45", "type");
    tinfo trow = {"w", 2, {48, 2}, ARWKV_GGML_Q4_0, 0};
    tensors_file(&b, &trow, 1, 64);
    expect_error(&b, "tensor 'w': row length 48 is not a multiple of the Q4_0 block size 32", "block");
    tinfo talign = {"w", 1, {4}, 0, 8};
    tensors_file(&b, &talign, 1, 64);
    expect_error(&b, "tensor 'w': data offset 8 (at byte 49) is not a multiple of the alignment 32", "unaligned offset");
    tinfo tend = {"w", 1, {32}, ARWKV_GGML_Q8_0, 32};
    tensors_file(&b, &tend, 1, 64);
    expect_error(&b, "tensor 'w': 34 bytes of Q8_0 data at offset 32 (file byte 96) run past the end of the 128-byte file", "past end");
    tinfo thuge = {"w", 1, {32}, ARWKV_GGML_Q8_0, 1ull << 63};
    tensors_file(&b, &thuge, 1, 64);
    expect_error(&b, "run past the end", "huge offset");
    tinfo tover[2] = {{"a", 1, {8}, 0, 0}, {"b", 1, {8}, 0, 32}};
    tensors_file(&b, tover, 2, 128);
    arwkv_gguf *g;
    CHECK(arwkv_gguf_open_memory(b.p, b.n, "ok.gguf", &g) == ARWKV_OK, "adjacent tensors are fine: %s", arwkv_last_error());
    arwkv_gguf_close(g);
    tover[0].ne[0] = 16; /* b inside a */
    tensors_file(&b, tover, 2, 128);
    expect_error(&b, "overlaps tensor", "overlap");
    tover[0].ne[0] = 9, tover[1].ne[0] = 8, tover[1].offset = 32; /* a's 36 bytes reach into b */
    tensors_file(&b, tover, 2, 128);
    expect_error(&b, "tensor 'b' (data offset 32) overlaps tensor 'a' (data offsets 0..36)", "overlap at the edge");
    tinfo tdup[2] = {{"a", 1, {4}, 0, 0}, {"a", 1, {4}, 0, 32}};
    tensors_file(&b, tdup, 2, 64);
    expect_error(&b, "tensor 'a' appears twice (tensor 1)", "duplicate tensor");
    /* the data section must start inside the file */
    tinfo tone = {"w", 1, {4}, 0, 0};
    tensors_file(&b, &tone, 1, 0);
    b.n -= 4; /* the file ends inside the padding before the data */
    expect_error(&b, "the data section would start at byte 64, past the end of the 60-byte file", "no data section");
    /* a type the reader knows but cannot dequantize opens; reading it names the type */
    tinfo tq2 = {"q2", 1, {256}, 10, 0};
    tensors_file(&b, &tq2, 1, 84);
    CHECK_OK(arwkv_gguf_open_memory(b.p, b.n, "q2.gguf", &g));
    if (g) {
        float out[256];
        CHECK(arwkv_gguf_tensor_f32(g, arwkv_gguf_find_tensor(g, "q2"), out, 256) == ARWKV_ERR_UNSUPPORTED &&
                  strstr(arwkv_last_error(), "q2.gguf: tensor 'q2'") && strstr(arwkv_last_error(), "Q2_K"), "%s", arwkv_last_error());
    }
    arwkv_gguf_close(g);
    free(b.p);
}

int main(void) {
    RUN(gguf_metadata_every_type);
    RUN(gguf_dequantize_against_reference);
    RUN(gguf_tensors_every_type);
    RUN(gguf_malformed_header);
    RUN(gguf_malformed_every_truncation);
    RUN(gguf_malformed_metadata);
    RUN(gguf_malformed_tensors);
    return test_summary("gguf");
}
