/* libFuzzer target: a safetensors image of arbitrary bytes opens with an error or opens fine, and
   then every tensor's bytes lie inside the image and convert without reading past them. */
#define ARWKV_IMPLEMENTATION
#include "arwkv.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    arwkv_safetensors *st;
    if (arwkv_st_open_memory(data, size, "fuzz", &st) != ARWKV_OK) return 0;
    float buf[64];
    for (int i = 0; i < arwkv_st_count(st); i++) {
        const arwkv_tensor_info *t = arwkv_st_tensor(st, i);
        const uint8_t *p = (const uint8_t *)t->data;
        if (p < data || p + t->nbytes > data + size) __builtin_trap();
        if (arwkv_st_find(st, t->name) != t) __builtin_trap();
        size_t n = t->numel < 64 ? (size_t)t->numel : 64;
        arwkv_to_f32(buf, t->data, t->dtype, n);
    }
    arwkv_st_close(st);
    return 0;
}
