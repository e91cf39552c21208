/* arwkv-inspect PATH: list the tensors of a checkpoint (name, dtype, shape, bytes) and its config.
   PATH is a .safetensors file, a model directory (sharded or not) or a GGUF file (its metadata, the
   config read from it, and its tensors with their ggml types). A bad file is reported with
   the library's error (file, tensor, byte offset) and a non-zero exit status. */
#define ARWKV_IMPLEMENTATION
#include "arwkv.h"
#include <stdio.h>
#include <string.h>

static void usage(void) {
    fprintf(stderr, "usage: arwkv-inspect PATH\n"
                    "  PATH  a .safetensors file, or a model directory with config.json and\n"
                    "        model.safetensors or model.safetensors.index.json, or a .gguf file\n");
}

/* One metadata value: a scalar in full, an array as its length and first elements. */
static void print_kv(const arwkv_gguf *g, const arwkv_gguf_kv *kv) {
    static const char *types[13] = {"u8", "i8", "u16", "i16", "u32", "i32", "f32", "bool", "str", "arr", "u64", "i64", "f64"};
    printf("  %-44s ", kv->key);
    if (kv->type == ARWKV_GGUF_ARRAY) printf("[%llu x %s] ", (unsigned long long)kv->count, types[kv->elem_type]);
    else printf("%s ", types[kv->type]);
    uint64_t shown = kv->count < 4 ? kv->count : 4;
    for (uint64_t i = 0; i < shown; i++) {
        const char *s;
        size_t len;
        int64_t v;
        double f;
        if (arwkv_gguf_kv_string(g, kv, i, &s, &len) == ARWKV_OK)
            printf("%s\"%.*s%s\"", i ? ", " : "", (int)(len < 60 ? len : 60), s, len > 60 ? "..." : "");
        else if (kv->elem_type != ARWKV_GGUF_FLOAT32 && kv->elem_type != ARWKV_GGUF_FLOAT64 && arwkv_gguf_kv_int(g, kv, i, &v) == ARWKV_OK)
            printf("%s%lld", i ? ", " : "", (long long)v);
        else if (arwkv_gguf_kv_float(g, kv, i, &f) == ARWKV_OK) printf("%s%.9g", i ? ", " : "", f);
        else printf("%s(nested)", i ? ", " : "");
    }
    printf("%s\n", shown < kv->count ? ", ..." : "");
}

static int inspect_gguf(const char *path) {
    arwkv_gguf *g;
    if (arwkv_gguf_open(path, &g) != ARWKV_OK) {
        fprintf(stderr, "arwkv-inspect: %s\n", arwkv_last_error());
        return 1;
    }
    printf("GGUF version %u, alignment %u, %d metadata entries, %d tensors\n", arwkv_gguf_version(g), arwkv_gguf_alignment(g),
           arwkv_gguf_kv_count(g), arwkv_gguf_tensor_count(g));
    for (int i = 0; i < arwkv_gguf_kv_count(g); i++) print_kv(g, arwkv_gguf_kv_at(g, i));
    arwkv_config c;
    if (arwkv_gguf_config(g, &c) == ARWKV_OK)
        printf("config: %s\n  vocab %d  hidden %d  mlp %d  layers %d  rms_eps %g\n  heads %d  kv_heads %d  head_dim %d  rope_theta %g  "
               "tied %d  attention_bias %d  qk_norm %d\n", arwkv_arch_name(c.arch), c.vocab_size, c.hidden_size, c.intermediate_size,
               c.num_layers, c.rms_norm_eps, c.num_heads, c.num_kv_heads, c.head_dim, c.rope_theta, c.tie_word_embeddings,
               c.attention_bias, c.qk_norm);
    else printf("config: none (%s)\n", arwkv_last_error());
    unsigned long long total_bytes = 0, total_elems = 0;
    printf("%-40s %-5s %-20s %12s\n", "tensor", "type", "shape", "bytes");
    for (int i = 0; i < arwkv_gguf_tensor_count(g); i++) {
        const arwkv_gguf_tensor *t = arwkv_gguf_tensor_at(g, i);
        char shape[128] = "[", *p = shape + 1;
        for (int d = t->ndim - 1; d >= 0; d--) /* PyTorch order, as for safetensors */
            p += snprintf(p, sizeof shape - (size_t)(p - shape) - 2, "%s%lld", d < t->ndim - 1 ? "," : "", (long long)t->ne[d]);
        strcat(shape, "]");
        printf("%-40s %-5s %-20s %12zu\n", t->name, arwkv_ggml_type_name(t->type), shape, t->nbytes);
        total_bytes += t->nbytes;
        total_elems += (unsigned long long)t->numel;
    }
    printf("%d tensors, %llu elements, %llu bytes\n", arwkv_gguf_tensor_count(g), total_elems, total_bytes);
    arwkv_gguf_close(g);
    return 0;
}

int main(int argc, char **argv) {
    if (argc != 2 || strcmp(argv[1], "-h") == 0 || strcmp(argv[1], "--help") == 0) {
        usage();
        return argc == 2 ? 0 : 2;
    }
    const char *path = argv[1];
    char magic[4] = {0};
    FILE *head = fopen(path, "rb");
    int is_gguf = head && fread(magic, 1, 4, head) == 4 && memcmp(magic, "GGUF", 4) == 0;
    if (head) fclose(head);
    if (is_gguf) return inspect_gguf(path);
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
