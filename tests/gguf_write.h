/* gguf_write.h - a small GGUF writer for the tests (test_gguf.c, test_gguf_model.c): bytes appended
   to a growing buffer, little-endian, exactly as the format lays them out. */
#ifndef ARWKV_TEST_GGUF_WRITE_H
#define ARWKV_TEST_GGUF_WRITE_H
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    unsigned char *p;
    size_t n, cap;
} gguf_buf;

static void put(gguf_buf *b, const void *src, size_t n) {
    if (b->n + n > b->cap) {
        b->cap = (b->n + n) * 2 + 64;
        b->p = (unsigned char *)realloc(b->p, b->cap);
    }
    memcpy(b->p + b->n, src, n);
    b->n += n;
}
static void put_le(gguf_buf *b, uint64_t v, int bytes) {
    for (int i = 0; i < bytes; i++) {
        unsigned char c = (unsigned char)(v >> (8 * i));
        put(b, &c, 1);
    }
}
static void put_u32(gguf_buf *b, uint32_t v) { put_le(b, v, 4); }
static void put_u64(gguf_buf *b, uint64_t v) { put_le(b, v, 8); }
static void put_str(gguf_buf *b, const char *s) {
    put_u64(b, strlen(s));
    put(b, s, strlen(s));
}
static void put_header(gguf_buf *b, uint32_t version, uint64_t n_tensors, uint64_t n_kvs) {
    put(b, "GGUF", 4);
    put_u32(b, version);
    put_u64(b, n_tensors);
    put_u64(b, n_kvs);
}
static void put_kv_u32(gguf_buf *b, const char *key, uint32_t v) {
    put_str(b, key);
    put_u32(b, ARWKV_GGUF_UINT32);
    put_u32(b, v);
}
static void put_kv_str(gguf_buf *b, const char *key, const char *v) {
    put_str(b, key);
    put_u32(b, ARWKV_GGUF_STRING);
    put_str(b, v);
}
static void put_tensor_info(gguf_buf *b, const char *name, int ndim, const uint64_t *ne, uint32_t type, uint64_t offset) {
    put_str(b, name);
    put_u32(b, (uint32_t)ndim);
    for (int d = 0; d < ndim; d++) put_u64(b, ne[d]);
    put_u32(b, type);
    put_u64(b, offset);
}
static void pad_to(gguf_buf *b, size_t align) {
    while (b->n % align) put_le(b, 0, 1);
}

static void put_kv_f32(gguf_buf *b, const char *key, float v) {
    uint32_t u;
    memcpy(&u, &v, 4);
    put_str(b, key);
    put_u32(b, ARWKV_GGUF_FLOAT32);
    put_u32(b, u);
}
static int write_file(const gguf_buf *b, const char *path) {
    FILE *f = fopen(path, "wb");
    int ok = f && fwrite(b->p, 1, b->n, f) == b->n;
    if (f) ok &= fclose(f) == 0;
    return ok;
}
#endif
