/* libFuzzer target: the JSON reader on arbitrary bytes must return OK or an error, never crash,
   hang or read out of bounds. On success every node is walked. The same bytes, as a string, also go
   through the other small text parser, the CPU list of /proc/self/status (arwkv_cpu_list_count). */
#define ARWKV_IMPLEMENTATION
#include "arwkv.h"

static size_t walk(const arwkv__json *j, uint32_t n, int depth) {
    size_t count = 1;
    if (depth > 200) __builtin_trap();
    for (uint32_t c = arwkv__json_first(j, n); c != ARWKV__JSON_NONE; c = arwkv__json_next(j, c)) {
        const char *k = arwkv__json_key(j, c);
        (void)k;
        count += walk(j, c, depth + 1);
    }
    const char *s = arwkv__json_str(j, n);
    if (s && s[arwkv__json_str_len(j, n)] != 0) __builtin_trap();
    /* chains a file reader writes without checking each level: a missing level must end them */
    uint32_t deep = arwkv__json_next(j, arwkv__json_first(j, arwkv__json_get(j, n, "single")));
    if (deep != ARWKV__JSON_NONE && deep >= j->n_nodes) __builtin_trap();
    (void)arwkv__json_str_len(j, arwkv__json_at(j, n, 1));
    return count;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    arwkv__json j;
    if (arwkv__json_parse(&j, (const char *)data, size, "fuzz") == ARWKV_OK) {
        if (walk(&j, 0, 0) != j.n_nodes) __builtin_trap();
        arwkv__json_free(&j);
    }
    char *text = (char *)malloc(size + 1);
    if (text) {
        memcpy(text, data, size);
        text[size] = 0;
        int n = arwkv_cpu_list_count(text);
        if (n < 0 || n > (1 << 20)) __builtin_trap();
        free(text);
    }
    return 0;
}
