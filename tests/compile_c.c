/* The header compiles as C11 (with -pedantic), and including it twice, implementation and all,
   is harmless. Built by gcc and by clang; the binary runs a smoke check. */
#define ARWKV_IMPLEMENTATION
#include "arwkv.h"
#include "arwkv.h"
#include <stdio.h>
#include <string.h>

int main(void) {
    int ok = strcmp(arwkv_result_string(ARWKV_ERR_FORMAT), "malformed input") == 0 &&
             arwkv_bf16_to_f32(arwkv_f32_to_bf16(1.5f)) == 1.5f;
#if defined(__clang__)
    printf("%s compile_c_clang\n", ok ? "PASS" : "FAIL");
#else
    printf("%s compile_c_gcc\n", ok ? "PASS" : "FAIL");
#endif
    return ok ? 0 : 1;
}
