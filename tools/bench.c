/* arwkv-bench: measured speed and memory figures, printed with the ratios they are judged by.
   Each area has its own file under tools/bench/; this file only dispatches.

     arwkv-bench                 run every benchmark
     arwkv-bench NAME [ARGS]     run one: tokenizer, matmul, decode, ... (see "list")
     arwkv-bench list            the names

   The GPU build (`make gpu`: build/gpu/arwkv-bench) has the GPU benchmarks instead: gpu-ops and
   gpu-train (tools/bench/gpu.h). */
#define ARWKV_IMPLEMENTATION
#include "arwkv.h"
#ifdef ARWKV_GPU
#include "arwkv_hip.h"
#include <algorithm>
#include <functional>
#endif
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Wall-clock seconds. */
static double bench_now(void) { return arwkv_seconds(); }

/* Positional number i of a benchmark (fallback when absent), parsed strictly; a bad one ends the
   program naming it, as every binary does. */
static int bench_int_arg(int argc, char **argv, int i, const char *name, int fallback) {
    int v = fallback;
    if (argc > i && arwkv_parse_int(name, argv[i], 0, INT_MAX, &v) != ARWKV_OK) {
        fprintf(stderr, "arwkv-bench: %s\n", arwkv_last_error());
        exit(2);
    }
    return v;
}

typedef int (*bench_fn)(int argc, char **argv);
typedef struct {
    const char *name, *what;
    bench_fn fn;
} bench_entry;

#ifdef ARWKV_GPU
#include "bench/gpu.h"

static const bench_entry benches[] = {
    {"gpu-ops", "GPU kernels at the training shapes against the device's peaks", bench_gpu_ops},
    {"gpu-train", "GPU stage-1 and stage-2 steps of Qwen2.5-shaped models: tokens/s, memory, profile", bench_gpu_train},
};
#else
#include "bench/tokenizer.h"
#include "bench/teacher.h"
#include "bench/student.h"
#include "bench/train.h"
#include "bench/chat.h"
#include "bench/qrwkv6.h"
#include "bench/memory.h"
#include "bench/ops.h"

static const bench_entry benches[] = {
    {"tokenizer", "encode throughput (MB/s) on code and prose", bench_tokenizer},
    {"matmul", "matrix product GFLOP/s against the CPU's FMA peak", bench_matmul},
    {"decode", "teacher decode tokens/s against the memory-bandwidth bound", bench_decode},
    {"student", "student prefill and decode speed, state size", bench_student},
    {"train", "training throughput (tokens/s) of stages 1 and 2", bench_train},
    {"context", "teacher vs student: speed and memory per token at 1k, 8k, 32k context", bench_context},
    {"qrwkv6", "QRWKV6 time mix forward / forward+backward / decode tokens/s at C=128 and C=896", bench_qrwkv6},
    {"memory", "memory plan of training on a GPU for Qwen2.5 0.5B-32B shapes (no GPU needed)", bench_memory},
    {"cpu-ops", "WKV7 forward/backward and AdamW on the CPU: tokens/s, GFLOP/s, GB/s", bench_cpu_ops},
};
#endif

int main(int argc, char **argv) {
    int n = (int)(sizeof benches / sizeof benches[0]);
    if (argc >= 2 && (strcmp(argv[1], "list") == 0 || strcmp(argv[1], "-h") == 0 || strcmp(argv[1], "--help") == 0)) {
        printf("usage: arwkv-bench [NAME [ARGS...]]\n");
        for (int i = 0; i < n; i++) printf("  %-10s %s\n", benches[i].name, benches[i].what);
        return 0;
    }
    if (argc >= 2) {
        for (int i = 0; i < n; i++)
            if (strcmp(argv[1], benches[i].name) == 0) return benches[i].fn(argc - 1, argv + 1);
        fprintf(stderr, "arwkv-bench: unknown benchmark '%s' (try: arwkv-bench list)\n", argv[1]);
        return 2;
    }
    int status = 0;
    for (int i = 0; i < n; i++) {
        printf("== %s: %s\n", benches[i].name, benches[i].what);
        char *args[1] = {(char *)benches[i].name};
        status |= benches[i].fn(1, args);
    }
    return status;
}
