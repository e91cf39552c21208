/* ARWKV_STATIC makes every public function static: the library can live privately inside one
   translation unit of a bigger program without exporting a single symbol. */
#define ARWKV_STATIC
#define ARWKV_IMPLEMENTATION
#include "arwkv.h"
#include <stdio.h>

int main(void) {
    arwkv_pool *pool;
    int ok = arwkv_pool_create(2, &pool) == ARWKV_OK && arwkv_pool_size(pool) == 2;
    arwkv_pool_destroy(pool);
    printf("%s compile_static\n", ok ? "PASS" : "FAIL");
    return ok ? 0 : 1;
}
