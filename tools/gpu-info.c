/* arwkv-gpu-info [DEVICE]: what the GPU backend sees (device, memory, matrix units, warp width),
   then a small matrix product on the GPU checked against the CPU backend.

   This file is also the pattern every GPU program of the repository follows: the same .c file
   builds for the CPU with a C compiler (`make`), and for the GPU as C++ through nvcc or hipcc with
   ARWKV_GPU and ARWKV_HIP_IMPLEMENTATION defined (`make gpu`, `make gpu-hip`), where the include
   below brings arwkv_hip.h's implementation and arwkv_backend_gpu() can be called. */
#define ARWKV_IMPLEMENTATION
#include "arwkv.h"
#ifdef ARWKV_GPU
#include "arwkv_hip.h"
#endif
#include <math.h>
#include <stdio.h>
#include <stdlib.h>

#ifndef ARWKV_GPU
int main(int argc, char **argv) {
    (void)argc, (void)argv;
    fprintf(stderr, "arwkv-gpu-info: this is the CPU build; the GPU build is build/gpu/arwkv-gpu-info (make gpu, with nvcc)\n"
                    "or build/hip/arwkv-gpu-info (make gpu-hip, with hipcc)\n");
    return 2;
}
#else
/* A product on both backends: x [M,K] times a bf16 weight W [N,K] transposed, as nn.Linear does. */
static arwkv_result check_gemm(arwkv_backend *gpu, arwkv_backend *cpu, double *err) {
    enum { M = 37, N = 70, K = 300 };
    static float x[M * K], yc[M * N], yg[M * N];
    static uint16_t wh[N * K];
    uint64_t s = 12345;
    for (int i = 0; i < M * K + N * K; i++) {
        s = s * 6364136223846793005ull + 1442695040888963407ull;
        float v = (float)((double)(s >> 11) / 9007199254740992.0 - 0.5);
        if (i < M * K) x[i] = v;
        else wh[i - M * K] = arwkv_f32_to_bf16(v);
    }
    arwkv_result r = cpu->core->gemm(cpu, M, N, K, x, K, 1, wh, ARWKV_BF16, 1, K, yc, N, 0, NULL);
    if (r != ARWKV_OK) return r;
    void *dx = NULL, *dw = NULL, *dy = NULL;
    r = gpu->mem->alloc(gpu, sizeof x, &dx);
    if (r == ARWKV_OK) r = gpu->mem->alloc(gpu, sizeof wh, &dw);
    if (r == ARWKV_OK) r = gpu->mem->alloc(gpu, sizeof yg, &dy);
    if (r == ARWKV_OK) r = gpu->mem->upload(gpu, dx, x, sizeof x);
    if (r == ARWKV_OK) r = gpu->mem->upload(gpu, dw, wh, sizeof wh);
    if (r == ARWKV_OK) r = gpu->core->gemm(gpu, M, N, K, (const float *)dx, K, 1, dw, ARWKV_BF16, 1, K, (float *)dy, N, 0, NULL);
    if (r == ARWKV_OK) r = gpu->mem->download(gpu, yg, dy, sizeof yg);
    double md = 0, mb = 0;
    for (int i = 0; i < M * N; i++) md = fmax(md, fabs((double)yg[i] - yc[i])), mb = fmax(mb, fabs((double)yc[i]));
    *err = mb > 0 ? md / mb : md;
    gpu->mem->free(gpu, dx), gpu->mem->free(gpu, dw), gpu->mem->free(gpu, dy);
    return r;
}

int main(int argc, char **argv) {
    int device = 0;
    if (argc > 1 && arwkv_parse_int("DEVICE", argv[1], 0, 1023, &device) != ARWKV_OK) {
        fprintf(stderr, "arwkv-gpu-info: %s\n", arwkv_last_error());
        return 2;
    }
    arwkv_backend *gpu = NULL, *cpu = NULL;
    if (arwkv_backend_gpu(device, &gpu) != ARWKV_OK || arwkv_backend_cpu(1, &cpu) != ARWKV_OK) {
        fprintf(stderr, "arwkv-gpu-info: %s\n", arwkv_last_error());
        arwkv_backend_destroy(gpu);
        return 1;
    }
    hipDeviceProp_t prop;
    size_t free_b = 0, total_b = 0;
    if (hipGetDeviceProperties(&prop, device) != hipSuccess || hipMemGetInfo(&free_b, &total_b) != hipSuccess) {
        fprintf(stderr, "arwkv-gpu-info: cannot read the device's properties\n");
        return 1;
    }
    printf("backend   %s\n", arwkv_backend_name(gpu));
    printf("runtime   %s, compute capability / gfx %d.%d, %d multiprocessors, warp %d\n", arwkv_gpu_runtime(), prop.major, prop.minor,
           prop.multiProcessorCount, prop.warpSize);
    printf("memory    %.1f GiB free of %.1f GiB\n", free_b / 1073741824.0, total_b / 1073741824.0);
    printf("gemm      %s\n", arwkv_gpu_gemm_path(gpu));
    double err = 0;
    arwkv_result r = check_gemm(gpu, cpu, &err);
    if (r != ARWKV_OK) fprintf(stderr, "arwkv-gpu-info: matrix product failed: %s\n", arwkv_last_error());
    else printf("check     37x70x300 product against the CPU: relative error %.2e (%s)\n", err, err < 1e-2 ? "ok" : "TOO LARGE");
    arwkv_backend_destroy(gpu);
    arwkv_backend_destroy(cpu);
    return r == ARWKV_OK && err < 1e-2 ? 0 : 1;
}
#endif
