/* libFuzzer target: a GGUF image of arbitrary bytes opens with an error or opens fine, and then
   every metadata value reads without leaving the image and every tensor's data lies inside it and
   dequantizes (its first rows) without reading past it; the teacher config, the fp32 checkpoint and
   the tokenizer built from the metadata fail cleanly or succeed. */
#define ARWKV_IMPLEMENTATION
#include "arwkv.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    arwkv_gguf *g;
    if (arwkv_gguf_open_memory(data, size, "fuzz", &g) != ARWKV_OK) return 0;
    for (int i = 0; i < arwkv_gguf_kv_count(g); i++) {
        const arwkv_gguf_kv *kv = arwkv_gguf_kv_at(g, i);
        if (arwkv_gguf_find_kv(g, kv->key) != kv) __builtin_trap();
        uint64_t n = kv->count < 64 ? kv->count : 64;
        for (uint64_t k = 0; k < n; k++) {
            int64_t v;
            double f;
            const char *s;
            size_t len;
            arwkv_gguf_kv_int(g, kv, k, &v);
            arwkv_gguf_kv_float(g, kv, k, &f);
            if (arwkv_gguf_kv_string(g, kv, k, &s, &len) == ARWKV_OK &&
                ((const uint8_t *)s < data || len > size || (const uint8_t *)s + len > data + size))
                __builtin_trap();
        }
    }
    float buf[1024];
    for (int i = 0; i < arwkv_gguf_tensor_count(g); i++) {
        const arwkv_gguf_tensor *t = arwkv_gguf_tensor_at(g, i);
        const uint8_t *p = (const uint8_t *)t->data;
        if (p < data || t->nbytes > size || p + t->nbytes > data + size) __builtin_trap();
        if (arwkv_gguf_find_tensor(g, t->name) != t) __builtin_trap();
        size_t bytes;
        int64_t block = arwkv_ggml_block_size(t->type, &bytes);
        int64_t n = t->numel < 1024 ? t->numel : 1024;
        n -= n % block;
        arwkv_dequantize(t->type, t->data, n, buf);
    }
    /* what a teacher and its tokenizer make of the metadata: an error or a consistent result */
    arwkv_config cfg;
    int64_t total = 0;
    for (int i = 0; i < arwkv_gguf_tensor_count(g); i++) total += arwkv_gguf_tensor_at(g, i)->numel;
    if (arwkv_gguf_config(g, &cfg) == ARWKV_OK && total < (1 << 20)) {
        arwkv_safetensors *st;
        if (arwkv__gguf_checkpoint(g, &cfg, &st) == ARWKV_OK) arwkv_st_close(st);
    }
    arwkv_tokenizer *tok;
    if (arwkv_gguf_tokenizer(g, &tok) == ARWKV_OK) arwkv_tokenizer_free(tok);
    arwkv_gguf_close(g);
    return 0;
}
