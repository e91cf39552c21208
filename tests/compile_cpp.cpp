// The header compiles as C++17: extern "C" linkage, no C-only constructs in the implementation.
#define ARWKV_IMPLEMENTATION
#include "arwkv.h"
#include "arwkv.h"
#include <cstdio>
#include <cstring>

int main() {
    arwkv_config cfg;
    const char *json = "{\"architectures\":[\"Qwen2ForCausalLM\"],\"vocab_size\":10,\"hidden_size\":8,"
                       "\"intermediate_size\":16,\"num_hidden_layers\":1,\"num_attention_heads\":2}";
    bool ok = arwkv_config_parse(json, std::strlen(json), "inline", &cfg) == ARWKV_OK && cfg.head_dim == 4;
    std::printf("%s compile_cpp\n", ok ? "PASS" : "FAIL");
    return ok ? 0 : 1;
}
