/* libFuzzer target: a JSON line of a conversation (arwkv_chat_parse) on arbitrary bytes must give OK
   or an error, never crash or read out of bounds; what parses is written back (arwkv_chat_to_json)
   and must parse again into as many messages; ASCII text comes back byte for byte. */
#define ARWKV_IMPLEMENTATION
#include "arwkv.h"
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    arwkv_chat_message *m, *back;
    int n, n_back;
    if (arwkv_chat_parse((const char *)data, size, "fuzz", &m, &n) != ARWKV_OK) return 0;
    char *json;
    if (arwkv_chat_to_json(m, n, &json) != ARWKV_OK) __builtin_trap();
    if (arwkv_chat_parse(json, strlen(json), "round trip", &back, &n_back) != ARWKV_OK || n_back != n) __builtin_trap();
    for (int i = 0; i < n; i++)
        for (int f = 0; f < 2; f++) {
            const char *a = f ? m[i].content : m[i].role, *b = f ? back[i].content : back[i].role;
            int ascii = 1;
            for (const char *p = a; *p; p++) ascii &= (unsigned char)*p < 0x80;
            if (ascii && strcmp(a, b) != 0) __builtin_trap();
        }
    arwkv_free(back);
    arwkv_free(json);
    arwkv_free(m);
    return 0;
}
