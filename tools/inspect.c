/* arwkv-inspect PATH: list the tensors of a checkpoint (name, dtype, shape, bytes) and its config.
   PATH is a .safetensors file or a model directory (sharded or not). A bad file is reported with
   the library's error (file, tensor, byte offset) and a non-zero exit status. */
#define ARWKV_IMPLEMENTATION
#include "arwkv.h"
#include <stdio.h>
#include <string.h>

static void usage(void) {
    fprintf(stderr, "usage: arwkv-inspect PATH\n"
                    "  PATH  a .safetensors file, or a model directory with config.json and\n"
                    "        model.safetensors or model.safetensors.index.json\n");
}

int main(int argc, char **argv) {
    if (argc != 2 || strcmp(argv[1], "-h") == 0 || strcmp(argv[1], "--help") == 0) {
        usage();
        return argc == 2 ? 0 : 2;
    }
    const char *path = argv[1];
    char cfg_path[4096];
    snprintf(cfg_path, sizeof cfg_path, "%s/config.json", path);
    FILE *probe = fopen(cfg_path, "rb");
    if (probe) {
        fclose(probe);
        arwkv_config c;
        if (arwkv_config_load(cfg_path, &c) != ARWKV_OK) {
            fprintf(stderr, "arwkv-inspect: %s\n", arwkv_last_error());
            return 1;
        }
        printf("config: %s\n", arwkv_arch_name(c.arch));
        printf("  vocab %d  hidden %d  mlp %d  layers %d  rms_eps %g\n", c.vocab_size, c.hidden_size, c.intermediate_size,
               c.num_layers, c.rms_norm_eps);
        if (arwkv_arch_is_teacher(c.arch))
            printf("  heads %d  kv_heads %d  head_dim %d  rope_theta %g  tied %d  attention_bias %d  qk_norm %d\n", c.num_heads,
                   c.num_kv_heads, c.head_dim, c.rope_theta, c.tie_word_embeddings, c.attention_bias, c.qk_norm);
        else
            printf("  teacher_architecture %s\n", arwkv_arch_name(c.base_arch));
        if (c.arch == ARWKV_ARCH_ARWKV7)
            printf("  wkv_version %d  head_size %d  gate %d  group_norm %d  tied %d\n", c.wkv_version, c.head_size,
                   c.wkv_has_gate, c.wkv_has_group_norm, c.tie_word_embeddings);
        if (c.arch == ARWKV_ARCH_QRWKV6)
            printf("  heads %d  kv_heads %d  head_size %d  lora tokenshift %d decay %d  tied %d\n", c.num_heads, c.num_kv_heads,
                   c.head_size, c.lora_rank_tokenshift, c.lora_rank_decay, c.tie_word_embeddings);
    }
    arwkv_safetensors *st;
    if (arwkv_st_open(path, &st) != ARWKV_OK) {
        fprintf(stderr, "arwkv-inspect: %s\n", arwkv_last_error());
        return 1;
    }
    printf("files: %d\n", arwkv_st_file_count(st));
    for (int f = 0; f < arwkv_st_file_count(st); f++) printf("  %s\n", arwkv_st_file_name(st, f));
    unsigned long long total_bytes = 0, total_elems = 0;
    printf("%-64s %-5s %-20s %12s\n", "tensor", "dtype", "shape", "bytes");
    for (int i = 0; i < arwkv_st_count(st); i++) {
        const arwkv_tensor_info *t = arwkv_st_tensor(st, i);
        char shape[128] = "[", *p = shape + 1;
        for (int d = 0; d < t->ndim; d++) p += snprintf(p, sizeof shape - (size_t)(p - shape) - 2, "%s%lld", d ? "," : "", (long long)t->shape[d]);
        strcat(shape, "]");
        printf("%-64s %-5s %-20s %12zu\n", t->name, arwkv_dtype_name(t->dtype), shape, t->nbytes);
        total_bytes += t->nbytes;
        total_elems += (unsigned long long)t->numel;
    }
    printf("%d tensors, %llu elements, %llu bytes\n", arwkv_st_count(st), total_elems, total_bytes);
    arwkv_st_close(st);
    return 0;
}
