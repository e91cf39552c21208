/* arwkv_hip.h - the GPU backend of arwkv.h: HIP kernels for AMD MI300X, also built by nvcc for NVIDIA.
   No warranty; MIT licence (see the end of arwkv.h).

   ============================================================================================
   WHAT THIS IS
   ============================================================================================
   arwkv.h never touches tensor memory itself: every buffer comes from a backend and every
   computation is an op called through the backend's tables. This header fills the same tables
   with GPU kernels, so the model code and the trainer run unchanged on a GPU: tensors live in
   device memory, and each op is one or two kernel launches queued on the backend's stream.
     arwkv_mem_ops     alloc (zeroed), free, upload, download, copy, zero, sync, host_alloc (pinned),
                       host_free, upload_async, upload_wait (a second stream for the copies)
     arwkv_core_ops    matrix product, embedding, RMSNorm, SwiGLU, axpy (forward and backward)
     arwkv_loss_ops    stage-1 alignment, stage-2/3 KL and cross-entropy over the vocabulary
     arwkv_optim_ops   sum of squares, scale, AdamW
     arwkv_qwen_ops    rotary embedding, causal grouped-query attention (the teacher)
     arwkv_rwkv7_ops   the RWKV-7 time mix: lerps, LoRA activations, prepare, WKV7, finish
     arwkv_rwkv6_ops   the RWKV-6 time mix (QRWKV6 students): token shift, ddlerp, tanh, decay,
                       key/value heads, WKV6, output gate, bias gradients

   One kernel source serves two vendors:
     AMD MI300X  (CDNA3, gfx942)  hip-clang; wavefronts of 64 lanes; matrix cores through the MFMA
                                  builtin __builtin_amdgcn_mfma_f32_16x16x16bf16_1k
     NVIDIA H100 (Hopper, sm_90)  nvcc; warps of 32 lanes; tensor cores through mma.sync.m16n8k16
                                  (inline PTX); built for sm_90a, the matrix product also has a
                                  Hopper-only path (wgmma fed by the tensor copy engine), chosen at
                                  run time on compute capability 9.0
   The code is written with HIP's runtime names (hipMalloc, hipStream_t, ...). Under nvcc, where no
   HIP headers exist for CUDA 13, the "Portability" section maps each name this file uses onto its
   CUDA twin; nothing else differs between the two builds except the warp width (ARWKV__WARP,
   defined once there) and the matrix-core micro-kernel. Only the vendor runtime is used: no BLAS,
   no CUTLASS, no rocWMMA.

   ============================================================================================
   HOW TO USE IT
   ============================================================================================
   In exactly one translation unit, compiled as HIP or CUDA C++ (a .c file works: pass -x hip or
   -x cu), put both implementations:

       #define ARWKV_IMPLEMENTATION
       #include "arwkv.h"
       #define ARWKV_HIP_IMPLEMENTATION
       #include "arwkv_hip.h"

   (If ARWKV_IMPLEMENTATION is not defined there, arwkv_hip.h defines it: the GPU code uses the
   library's error and allocation helpers, so both live in the same unit.) Any other file, C or
   C++, includes arwkv_hip.h for the one declaration it adds:

       arwkv_backend *be;
       if (arwkv_backend_gpu(0, &be) != ARWKV_OK) { fprintf(stderr, "%s\n", arwkv_last_error()); return 1; }
       ... arwkv_model_load(dir, be, &m), or be->mem->alloc / upload, be->core->gemm(...) ...
       arwkv_backend_destroy(be);

   The programs of this repository follow one pattern: the same .c file builds for the CPU with a
   C compiler, and for the GPU through nvcc or hipcc as C++ with ARWKV_GPU and
   ARWKV_HIP_IMPLEMENTATION defined on the command line, where its `#ifdef ARWKV_GPU` include of
   this header brings the implementation and it can call arwkv_backend_gpu() (tools/gpu-info.c).

   ============================================================================================
   BUILD
   ============================================================================================
     NVIDIA (CUDA 12 or 13):  nvcc -x cu -std=c++17 -O2 -gencode=arch=compute_90a,code=sm_90a -DARWKV_GPU -DARWKV_HIP_IMPLEMENTATION prog.c -o prog
                              (H100/H200, with the wgmma path; -arch=sm_90 or sm_80 builds the portable path only)
     AMD (ROCm 6 or later):   hipcc -x hip -std=c++17 -O2 --offload-arch=gfx942 -DARWKV_GPU -DARWKV_HIP_IMPLEMENTATION prog.c -o prog
     compile check for gfx942 without ROCm 6 (Debian 12: clang-19 with ROCm 5.2's headers and
     device libraries): .ci/gpu-compile.sh, which also checks that the device code holds MFMA
     instructions (gfx942), mma.sync (sm_90) and wgmma (sm_90a).
   `make gpu` builds build/gpu/test_gpu, build/gpu/arwkv-bench and the GPU builds of the programs with
   nvcc (NVCC=..., GPU_ARCH=sm_90a by default); `make gpu-hip` does the same with hipcc (HIPCC=...,
   HIP_ARCH=gfx942).

   ============================================================================================
   NUMBERS
   ============================================================================================
   Matrix products accumulate in fp32. By default (ARWKV_GPU_GEMM unset or "bf16") they run on
   the matrix units: each 128x32 tile of A (fp32 activations) and of B (the weight, fp32, bf16 or
   f16) is rounded to bf16 (to nearest, ties to even) as it is staged in shared memory. A bf16
   weight is exact there, an fp32 one loses its low 16 bits, an f16 one is widened and rounded.
   Expect a relative error near 1e-3 of the largest output (checked at 1e-2). Where a product's
   terms nearly cancel, the error relative to the result is larger: stage 2's head backward
   (d hidden = d logits . W over the whole vocabulary) moves the gradient by several percent (7%
   of its norm on the bundled tiny model; its loss by 0.5%), as in bf16 training elsewhere. With the
   environment variable ARWKV_GPU_GEMM=fp32 at backend creation, every product takes the SIMT path
   in fp32 FMAs instead (checked at 1e-5 of the CPU backend; a training step then matches the CPU's
   loss and gradient norm to ~1e-6), also the fallback on GPUs without MFMA or mma.sync.
   ARWKV_GPU_GEMM=mma keeps bf16 products but never takes the Hopper (wgmma) path: a comparison point.
   On Hopper the wgmma path rounds exactly as the tile-by-tile path does (A and B to bf16, to
   nearest even, fp32 accumulation); only the order of the fp32 sums differs. It first writes bf16
   copies of A (and of B unless B is a bf16 [N,K] weight) into a buffer of its own: activations stay
   fp32 in memory, and bf16 exists only as these per-product copies and as the weights.

   Teacher attention, on NVIDIA with head size 64 or 128 and at least 16 queries, runs on the
   tensor cores: Q, K, V rounded to bf16 as they are staged, scores, softmax and output in fp32
   (about 5e-3 of the largest output, checked at 2e-2). Decoding steps, other head sizes, AMD and
   ARWKV_GPU_GEMM=fp32 use the fp32 SIMT kernel. Every other op computes in fp32 with float64 sums
   where the CPU backend uses them; they match the CPU to ~1e-6.

   The WKV7 recurrence keeps its N x N state in fp32 registers. Its backward steps the state back
   through each 16-token chunk by dividing by the decay (>= 0.545), where the CPU backend recomputes
   the chunk's states: the gradients agree with the CPU to ~2e-5 of their largest value (checked
   at 1e-4). The WKV6 recurrence (QRWKV6) also keeps its state in fp32 registers; its backward
   recomputes states forward from the checkpoints, as the CPU does, so no decay (which may be
   arbitrarily close to 0) divides anything. The SIMT attention is fp32 (flash-style, ~3e-7 of the
   CPU's output).

   Results do not depend on scheduling: no op uses floating-point atomics. Sums over rows
   (embedding gradient, RMSNorm weight gradient, the time mix's parameter gradients) walk the rows
   in a fixed order or in a fixed number of row blocks added in order, and every reduction has a
   fixed shape, so a run repeats bit for bit on the same GPU and build.

   ============================================================================================
   LIMITS (ARWKV_ERR_UNSUPPORTED or _INVALID_ARGUMENT, never a wrong answer)
   ============================================================================================
   WKV7 head size 8, 16, 32 or 64 (ARWKV uses 64); WKV6 head size 16, 32, 64 or 128 (QRWKV6 uses
   the teacher's head size: 64 or 128); attention head size at most 256 (Qwen uses 64 and 128);
   matrix products with at most 65535 x 128 rows per call.

   ============================================================================================
   TESTS
   ============================================================================================
   tests/gpu/test_gpu.cu runs every op against the CPU backend on fresh random inputs with poisoned
   outputs (build/gpu/test_gpu, needs a GPU). Without one, `make test` runs the same tests through
   tests/gpu/emu.h, a CPU emulator of the kernel environment (blocks of fibers, exact barriers and
   warp shuffles, the matrix-core instructions from their register layouts), once with warps of 32
   and mma.sync, once with wavefronts of 64 and MFMA. For the emulator this header routes every
   kernel launch through ARWKV__LAUNCH and the two matrix-core instructions through small device
   functions; nothing else changes.

   ============================================================================================
   DIFFERENCES FROM THE CPU BACKEND
   ============================================================================================
   - Every pointer given to an op is device memory (from be->mem->alloc), except the result of
     be->optim->sumsq, which is a host float (the trainer needs the number at once; the call
     waits for it).
   - Ops are asynchronous: they return once queued. be->mem->download and be->mem->sync wait;
     upload returns when the host buffer may be reused. Errors inside a kernel surface at the next
     call that waits.
   - The backend makes its device current on the creating thread; call it from that thread.
   - be->pool is a CPU thread pool for host-side work (tokenizing, loading).
*/
#ifndef ARWKV_HIP_H_INCLUDED
#define ARWKV_HIP_H_INCLUDED

#include "arwkv.h"

#ifdef __cplusplus
extern "C" {
#endif

/* A backend on GPU number `device` (0 is the first). ARWKV_ERR_GPU when there is no such device,
   the runtime cannot start, or this build has no code for the device (the message says which
   architecture to build for). */
ARWKV_API arwkv_result arwkv_backend_gpu(int device, arwkv_backend **out);
/* The vendor runtime this build drives: "CUDA", "HIP" (or "emulator" in the tests). */
ARWKV_API const char *arwkv_gpu_runtime(void);
/* Which kernel a GPU backend's matrix products take (bf16 wgmma, mma.sync / MFMA, or fp32 SIMT and
   why); "not a GPU backend" for any other backend. */
ARWKV_API const char *arwkv_gpu_gemm_path(const arwkv_backend *be);

#ifdef __cplusplus
}
#endif
#endif /* ARWKV_HIP_H_INCLUDED */

/* ############################################################################################
   ##                                   IMPLEMENTATION                                       ##
   ############################################################################################ */
#ifdef ARWKV_HIP_IMPLEMENTATION
#ifndef ARWKV_HIP_IMPLEMENTATION_ONCE
#define ARWKV_HIP_IMPLEMENTATION_ONCE

#ifndef ARWKV_IMPLEMENTATION_ONCE
#define ARWKV_IMPLEMENTATION
#include "arwkv.h"
#endif

/* ============================================================================================
   Portability: HIP names, mapped onto CUDA under nvcc
   ============================================================================================
   The platform test is on the compiler, not on HIP's own macros (hip_common.h defines __HIPCC__
   under nvcc too): hip-clang defines __HIP__ in both of its passes, nvcc defines __CUDACC__. */
#if defined(ARWKV_HIP_EMULATOR)
/* tests/gpu/emu.h, included first, provides the runtime and the kernel environment on the CPU */
#define ARWKV__GPU_API "emulator"
#elif defined(__HIP__)
#include <hip/hip_runtime.h>
#define ARWKV__GPU_API "HIP"
#elif defined(__CUDACC__)
#include <cuda_runtime.h>
#define ARWKV__GPU_API "CUDA"
typedef cudaError_t hipError_t;
typedef cudaStream_t hipStream_t;
typedef cudaEvent_t hipEvent_t;
typedef cudaDeviceProp hipDeviceProp_t;
#define hipSuccess cudaSuccess
#define hipGetErrorString cudaGetErrorString
#define hipGetLastError cudaGetLastError
#define hipGetDeviceCount cudaGetDeviceCount
#define hipSetDevice cudaSetDevice
#define hipGetDeviceProperties cudaGetDeviceProperties
#define hipDeviceSynchronize cudaDeviceSynchronize
#define hipMemGetInfo cudaMemGetInfo
#define hipMalloc cudaMalloc
#define hipFree cudaFree
#define hipMemcpyAsync cudaMemcpyAsync
#define hipMemsetAsync cudaMemsetAsync
#define hipMemcpyHostToDevice cudaMemcpyHostToDevice
#define hipMemcpyDeviceToHost cudaMemcpyDeviceToHost
#define hipMemcpyDeviceToDevice cudaMemcpyDeviceToDevice
#define hipStreamCreate cudaStreamCreate
#define hipStreamDestroy cudaStreamDestroy
#define hipStreamSynchronize cudaStreamSynchronize
#define hipEventCreate cudaEventCreate
#define hipEventDestroy cudaEventDestroy
#define hipEventRecord cudaEventRecord
#define hipEventSynchronize cudaEventSynchronize
#define hipEventElapsedTime cudaEventElapsedTime
#define hipStreamWaitEvent cudaStreamWaitEvent
#define hipHostMalloc cudaHostAlloc
#define hipHostFree cudaFreeHost
#else
#error "arwkv_hip.h: compile the unit that defines ARWKV_HIP_IMPLEMENTATION as HIP (hipcc, clang -x hip) or CUDA (nvcc -x cu)"
#endif

/* The SIMT width, the one place where wave64 (CDNA) and warp32 (NVIDIA, and AMD's RDNA) differ.
   Only device code uses it: launch shapes on the host are the same for both (blocks of 256 or 512
   threads), and each kernel divides its block into warps itself. */
#if defined(ARWKV_HIP_EMULATOR)
#define ARWKV__WARP ARWKV_EMU_WARP
#elif defined(__HIP_DEVICE_COMPILE__) && !defined(__GFX9__)
#define ARWKV__WARP 32 /* RDNA runs wave32 */
#elif defined(__HIP__)
#define ARWKV__WARP 64 /* CDNA (gfx9: MI100, MI200, MI300X) runs wave64 */
#else
#define ARWKV__WARP 32
#endif

#if defined(ARWKV_HIP_EMULATOR)
#define ARWKV__SHFL_XOR(v, m) arwkv_emu::shfl_xor((v), (m))
#elif defined(__HIP__)
#define ARWKV__SHFL_XOR(v, m) __shfl_xor((v), (m), ARWKV__WARP)
#else
#define ARWKV__SHFL_XOR(v, m) __shfl_xor_sync(0xffffffffu, (v), (m), ARWKV__WARP)
#endif

/* Which matrix-core micro-kernel the device pass compiles (none: the GEMM keeps to its SIMT path;
   the host learns this from a probe kernel, so it never launches a kernel without a body). */
#if defined(ARWKV_HIP_EMULATOR)
#if ARWKV_EMU_MATRIX == 1
#define ARWKV__MMA_SYNC 1
#elif ARWKV_EMU_MATRIX == 2
#define ARWKV__MFMA 1
#endif
#elif defined(__HIP_DEVICE_COMPILE__) && (defined(__gfx90a__) || defined(__gfx940__) || defined(__gfx941__) || defined(__gfx942__))
#define ARWKV__MFMA 1
#elif defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 800
#define ARWKV__MMA_SYNC 1
#endif

/* A kernel launch on a stream (no dynamic shared memory: every kernel sizes its own). */
#if defined(ARWKV_HIP_EMULATOR)
#define ARWKV__LAUNCH(kernel, grid, block, stream, ...) \
    ((void)(stream), arwkv_emu::launch(#kernel, dim3(grid), dim3(block), [=]() { kernel(__VA_ARGS__); }))
#else
#define ARWKV__LAUNCH(kernel, grid, block, stream, ...) kernel<<<(grid), (block), 0, (stream)>>>(__VA_ARGS__)
#endif

#define ARWKV__DEV static __device__ __forceinline__

/* The matrix-core instructions, one warp (wave) each:
     mma.sync.m16n8k16  D[16x8] += A[16x16] B[16x8], bf16 operands packed two to a register
     MFMA 16x16x16      D[16x16] += A[16x16] B[16x16], four bf16 per lane in, four fp32 out */
#if defined(ARWKV__MMA_SYNC)
ARWKV__DEV void arwkv__mma_bf16_16816(float (&d)[4], const unsigned (&a)[4], const unsigned (&b)[2]) {
#if defined(ARWKV_HIP_EMULATOR)
    arwkv_emu::mma_bf16_16816(d, a, b);
#else
    asm volatile("mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, {%0,%1,%2,%3};\n"
                 : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
                 : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b[0]), "r"(b[1]));
#endif
}
#endif
#if defined(ARWKV__MFMA)
#if defined(ARWKV_HIP_EMULATOR)
typedef arwkv_emu::f4 arwkv__f4;
typedef arwkv_emu::s4 arwkv__s4;
#else
typedef float arwkv__f4 __attribute__((ext_vector_type(4)));
typedef short arwkv__s4 __attribute__((ext_vector_type(4)));
#endif
ARWKV__DEV arwkv__f4 arwkv__mfma_bf16_16x16x16(arwkv__s4 a, arwkv__s4 b, arwkv__f4 c) {
#if defined(ARWKV_HIP_EMULATOR)
    return arwkv_emu::mfma_bf16_16x16x16(a, b, c);
#else
    return __builtin_amdgcn_mfma_f32_16x16x16bf16_1k(a, b, c, 0, 0, 0);
#endif
}
#endif
#define ARWKV__LDS_MAX 65536 /* shared memory per block on MI300X; every kernel here stays under it */

/* ============================================================================================
   Device helpers: numbers and reductions
   ============================================================================================ */

/* Element types of weights and tables, as template arguments. */
enum { ARWKV__T_F32 = 0, ARWKV__T_BF16 = 1, ARWKV__T_F16 = 2 };

ARWKV__DEV float arwkv__dev_bf16_to_f32(unsigned h) { return __uint_as_float(h << 16); }

/* f16 bits to fp32, exactly (the same function as arwkv_f16_to_f32 on the host). */
ARWKV__DEV float arwkv__dev_f16_to_f32(unsigned h) {
    unsigned sign = (h & 0x8000u) << 16, exp = (h >> 10) & 0x1fu, mant = h & 0x3ffu;
    if (exp == 0) { /* zero or subnormal: mant * 2^-24, exact in fp32 */
        float f = (float)mant * 5.9604644775390625e-8f;
        return sign ? -f : f;
    }
    if (exp == 31) return __uint_as_float(sign | 0x7f800000u | (mant << 13));
    return __uint_as_float(sign | ((exp + 112u) << 23) | (mant << 13));
}

/* fp32 to bf16 bits, to nearest with ties to even; NaN stays a quiet NaN (as arwkv_f32_to_bf16). */
ARWKV__DEV unsigned arwkv__dev_f32_to_bf16(float f) {
    unsigned u = __float_as_uint(f);
    if ((u & 0x7fffffffu) > 0x7f800000u) return (u >> 16) | 0x40u;
    return (u + 0x7fffu + ((u >> 16) & 1u)) >> 16;
}

ARWKV__DEV unsigned arwkv__dev_pack_bf16(float lo, float hi) {
    return arwkv__dev_f32_to_bf16(lo) | (arwkv__dev_f32_to_bf16(hi) << 16);
}

/* Element i of an array of type T, widened to fp32. */
template <int T> ARWKV__DEV float arwkv__dev_load(const void *p, long long i) {
    if (T == ARWKV__T_F32) return ((const float *)p)[i];
    unsigned h = ((const unsigned short *)p)[i];
    return T == ARWKV__T_BF16 ? arwkv__dev_bf16_to_f32(h) : arwkv__dev_f16_to_f32(h);
}

template <typename V> ARWKV__DEV V arwkv__warp_sum(V v) {
#pragma unroll
    for (int o = ARWKV__WARP / 2; o > 0; o >>= 1) v += ARWKV__SHFL_XOR(v, o);
    return v;
}

ARWKV__DEV float arwkv__warp_max(float v) {
#pragma unroll
    for (int o = ARWKV__WARP / 2; o > 0; o >>= 1) {
        float w = ARWKV__SHFL_XOR(v, o);
        v = w > v ? w : v;
    }
    return v;
}

/* Sum over the whole block (blockDim.x a multiple of the warp, at most 1024 threads); every thread
   receives the total. The butterfly inside a warp and the sum over warps run in a fixed order, so
   the result repeats bit for bit. sh: 32 elements of shared memory (only warps' partial sums). */
template <typename V> ARWKV__DEV V arwkv__block_sum(V v, V *sh) {
    v = arwkv__warp_sum(v);
    int nw = (int)blockDim.x / ARWKV__WARP;
    __syncthreads(); /* sh may still be read by the previous reduction */
    if (threadIdx.x % ARWKV__WARP == 0) sh[threadIdx.x / ARWKV__WARP] = v;
    __syncthreads();
    V total = sh[0];
    for (int i = 1; i < nw; i++) total += sh[i];
    return total;
}

ARWKV__DEV float arwkv__block_max(float v, float *sh) {
    v = arwkv__warp_max(v);
    int nw = (int)blockDim.x / ARWKV__WARP;
    __syncthreads();
    if (threadIdx.x % ARWKV__WARP == 0) sh[threadIdx.x / ARWKV__WARP] = v;
    __syncthreads();
    float m = sh[0];
    for (int i = 1; i < nw; i++) m = sh[i] > m ? sh[i] : m;
    return m;
}

/* Loops over n elements with whatever grid was launched. */
#define ARWKV__GRID_LOOP(i, n) \
    for (size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x; i < (size_t)(n); i += (size_t)gridDim.x * blockDim.x)

/* ============================================================================================
   The backend's state, errors, memory
   ============================================================================================ */

#define ARWKV__REDUCE_BLOCKS 1024 /* most partial sums a two-pass reduction keeps */

typedef struct arwkv__gpu {
    int device;
    hipStream_t stream;        /* every op is queued here, in call order */
    hipStream_t copy_stream;   /* streamed uploads (upload_async), beside the ops */
    hipEvent_t queued;         /* marks the ops queued before a streamed upload, which waits for them */
    hipEvent_t lane_done[2];   /* the last streamed upload of each lane */
    hipDeviceProp_t prop;
    int has_mma;               /* the device code has a matrix-core GEMM (probed at creation) */
    int gemm_fp32;             /* ARWKV_GPU_GEMM=fp32: every product on the fp32 SIMT path */
    int has_wgmma;             /* Hopper's wgmma path is usable (sm_90a code, device 9.0, driver) */
    int has_mma_sync;          /* the device code has NVIDIA's mma.sync (tensor-core attention) */
    double wgmma_min_macs;     /* products of fewer multiply-adds stay on the mma.sync path */
    void *encode_tiled;        /* the driver's cuTensorMapEncodeTiled */
    void *pack;                /* bf16 copies of the operands of the wgmma path, grown on demand */
    size_t pack_size;
    int max_blocks;            /* grid of the elementwise ops: enough blocks to fill the GPU */
    double *partial;           /* ARWKV__REDUCE_BLOCKS partial sums */
    float *scalar;             /* a result on its way back to the host */
    void *scratch;             /* per-call temporaries (partial sums over rows), grown on demand */
    size_t scratch_size;
    arwkv_backend *be;         /* the backend this is the state of (its memory accounting) */
} arwkv__gpu;

#define ARWKV__G(be) ((arwkv__gpu *)(be)->gpu)

/* A failed runtime call becomes ARWKV_ERR_GPU with the runtime's words and what was being done. */
#define ARWKV__HIP_TRY(call, what)                                                                             \
    do {                                                                                                       \
        hipError_t arwkv__e_ = (call);                                                                         \
        if (arwkv__e_ != hipSuccess) return arwkv__fail(ARWKV_ERR_GPU, "%s: %s (%s)", what, hipGetErrorString(arwkv__e_), #call); \
    } while (0)

/* After a kernel launch: a bad launch (shape, no code for this device) is reported at once; an
   error while the kernel runs shows at the next call that waits. */
ARWKV_PRIVATE arwkv_result arwkv__hip_launched(const char *kernel) {
    hipError_t e = hipGetLastError();
    if (e != hipSuccess) return arwkv__fail(ARWKV_ERR_GPU, "launching %s: %s", kernel, hipGetErrorString(e));
    return ARWKV_OK;
}

/* Grid size for an elementwise loop over n items with 256 threads a block. */
ARWKV_PRIVATE unsigned arwkv__hip_blocks(const arwkv__gpu *g, size_t n) {
    size_t b = (n + 255) / 256;
    return (unsigned)(b < (size_t)g->max_blocks ? (b ? b : 1) : (size_t)g->max_blocks);
}

/* Scratch memory of at least `bytes` for the op being queued (contents not kept). Growing it frees
   the old block, which waits for queued work that may still use it. */
ARWKV_PRIVATE arwkv_result arwkv__hip_scratch(arwkv__gpu *g, size_t bytes, void **out) {
    if (g->scratch_size < bytes) {
        arwkv_backend *be = g->be;
        if (g->scratch) {
            arwkv__mem_note_free(be, g->scratch);
            (void)hipFree(g->scratch);
        }
        g->scratch = NULL, g->scratch_size = 0;
        ARWKV__TRY(arwkv__mem_admit(be, bytes));
        hipError_t e = hipMalloc(&g->scratch, bytes);
        if (e != hipSuccess) {
            (void)hipGetLastError();
            g->scratch = NULL;
            return arwkv__fail(ARWKV_ERR_OUT_OF_MEMORY, "GPU %d: cannot allocate %.1f MiB of scratch memory: %s", g->device,
                               bytes / 1048576.0, hipGetErrorString(e));
        }
        g->scratch_size = bytes;
        (void)arwkv__mem_note_alloc(be, g->scratch, bytes); /* a table that cannot grow only leaves it uncounted */
    }
    *out = g->scratch;
    return ARWKV_OK;
}

ARWKV_PRIVATE arwkv_result arwkv__hip_alloc(arwkv_backend *be, size_t bytes, void **out) {
    arwkv__gpu *g = ARWKV__G(be);
    *out = NULL;
    void *p = NULL;
    size_t n = bytes ? bytes : 1; /* every call returns a distinct pointer, as on the CPU */
    ARWKV__TRY(arwkv__mem_admit(be, bytes));
    hipError_t e = hipMalloc(&p, n);
    if (e != hipSuccess) {
        (void)hipGetLastError(); /* out of memory is not sticky: clear it */
        size_t free_b = 0, total_b = 0;
        (void)hipMemGetInfo(&free_b, &total_b);
        return arwkv__fail(ARWKV_ERR_OUT_OF_MEMORY, "GPU %d: cannot allocate %.1f MiB (%.1f MiB free of %.1f): %s", g->device,
                           bytes / 1048576.0, free_b / 1048576.0, total_b / 1048576.0, hipGetErrorString(e));
    }
    e = hipMemsetAsync(p, 0, n, g->stream);
    if (e != hipSuccess) {
        (void)hipFree(p);
        return arwkv__fail(ARWKV_ERR_GPU, "GPU %d: zeroing a new buffer: %s", g->device, hipGetErrorString(e));
    }
    arwkv_result r = arwkv__mem_note_alloc(be, p, bytes);
    if (r != ARWKV_OK) {
        (void)hipFree(p);
        return r;
    }
    *out = p;
    return ARWKV_OK;
}

ARWKV_PRIVATE void arwkv__hip_free(arwkv_backend *be, void *p) {
    if (!p) return;
    arwkv__mem_note_free(be, p);
    (void)hipFree(p); /* waits for the device: work queued on p finishes first */
}

ARWKV_PRIVATE arwkv_result arwkv__hip_memory_info(arwkv_backend *be, uint64_t *free_bytes, uint64_t *total_bytes) {
    arwkv__gpu *g = ARWKV__G(be);
    size_t f = 0, t = 0;
    ARWKV__HIP_TRY(hipSetDevice(g->device), "selecting the GPU");
    ARWKV__HIP_TRY(hipMemGetInfo(&f, &t), "asking the GPU for its free memory");
    *free_bytes = f, *total_bytes = t;
    return ARWKV_OK;
}

/* Host memory may be reused as soon as upload returns: copy, then wait for the copy. */
ARWKV_PRIVATE arwkv_result arwkv__hip_upload(arwkv_backend *be, void *dst, const void *src, size_t bytes) {
    arwkv__gpu *g = ARWKV__G(be);
    if (!bytes) return ARWKV_OK;
    ARWKV__HIP_TRY(hipMemcpyAsync(dst, src, bytes, hipMemcpyHostToDevice, g->stream), "upload");
    ARWKV__HIP_TRY(hipStreamSynchronize(g->stream), "upload");
    return ARWKV_OK;
}

ARWKV_PRIVATE arwkv_result arwkv__hip_download(arwkv_backend *be, void *dst, const void *src, size_t bytes) {
    arwkv__gpu *g = ARWKV__G(be);
    if (!bytes) return ARWKV_OK;
    ARWKV__HIP_TRY(hipMemcpyAsync(dst, src, bytes, hipMemcpyDeviceToHost, g->stream), "download");
    ARWKV__HIP_TRY(hipStreamSynchronize(g->stream), "download (or an earlier kernel)");
    return ARWKV_OK;
}

ARWKV_PRIVATE arwkv_result arwkv__hip_copy(arwkv_backend *be, void *dst, const void *src, size_t bytes) {
    if (!bytes) return ARWKV_OK;
    ARWKV__HIP_TRY(hipMemcpyAsync(dst, src, bytes, hipMemcpyDeviceToDevice, ARWKV__G(be)->stream), "device copy");
    return ARWKV_OK;
}

ARWKV_PRIVATE arwkv_result arwkv__hip_zero(arwkv_backend *be, void *p, size_t bytes) {
    if (!bytes) return ARWKV_OK;
    ARWKV__HIP_TRY(hipMemsetAsync(p, 0, bytes, ARWKV__G(be)->stream), "zero");
    return ARWKV_OK;
}

ARWKV_PRIVATE arwkv_result arwkv__hip_sync(arwkv_backend *be) {
    ARWKV__HIP_TRY(hipStreamSynchronize(ARWKV__G(be)->stream), "waiting for the GPU");
    return ARWKV_OK;
}

/* Pinned host memory: the GPU's copy engines read it directly, so a copy from it can run beside
   kernels (from pageable memory the runtime stages it, and the copy is neither fast nor async). */
ARWKV_PRIVATE arwkv_result arwkv__hip_host_alloc(arwkv_backend *be, size_t bytes, void **out) {
    *out = NULL;
    hipError_t e = hipHostMalloc(out, bytes ? bytes : 1, 0);
    if (e != hipSuccess) {
        *out = NULL;
        return arwkv__fail(ARWKV_ERR_OUT_OF_MEMORY, "GPU %d: pinning %.1f MiB of host memory: %s", ARWKV__G(be)->device, bytes / 1048576.0,
                           hipGetErrorString(e));
    }
    memset(*out, 0, bytes);
    return ARWKV_OK;
}

ARWKV_PRIVATE void arwkv__hip_host_free(arwkv_backend *be, void *p) {
    (void)be;
    if (p) (void)hipHostFree(p); /* waits for copies still reading it */
}

/* The copy stream waits for an event recorded on the op stream now (the slot being overwritten was
   read by ops already queued), copies, and marks the lane; upload_wait makes the op stream wait for
   that mark. Neither call blocks the host. */
ARWKV_PRIVATE arwkv_result arwkv__hip_upload_async(arwkv_backend *be, int lane, void *dst, const void *src, size_t bytes) {
    arwkv__gpu *g = ARWKV__G(be);
    ARWKV_ASSERT(lane == 0 || lane == 1);
    ARWKV__HIP_TRY(hipEventRecord(g->queued, g->stream), "streamed upload");
    ARWKV__HIP_TRY(hipStreamWaitEvent(g->copy_stream, g->queued, 0), "streamed upload");
    if (bytes) ARWKV__HIP_TRY(hipMemcpyAsync(dst, src, bytes, hipMemcpyHostToDevice, g->copy_stream), "streamed upload");
    ARWKV__HIP_TRY(hipEventRecord(g->lane_done[lane], g->copy_stream), "streamed upload");
    return ARWKV_OK;
}

ARWKV_PRIVATE arwkv_result arwkv__hip_upload_wait(arwkv_backend *be, int lane) {
    arwkv__gpu *g = ARWKV__G(be);
    ARWKV_ASSERT(lane == 0 || lane == 1);
    ARWKV__HIP_TRY(hipStreamWaitEvent(g->stream, g->lane_done[lane], 0), "waiting for a streamed upload");
    return ARWKV_OK;
}

static const arwkv_mem_ops arwkv__hip_mem_ops = {arwkv__hip_alloc,       arwkv__hip_free,       arwkv__hip_upload,   arwkv__hip_download,
                                                 arwkv__hip_copy,        arwkv__hip_zero,       arwkv__hip_sync,     arwkv__hip_host_alloc,
                                                 arwkv__hip_host_free,   arwkv__hip_upload_async, arwkv__hip_upload_wait};

/* ============================================================================================
   Matrix product
   ============================================================================================
   C[M,N] (+)= A[M,K] . B[K,N] (+ bias[N]) with the CPU backend's arguments: A fp32 with any strides,
   B fp32/bf16/f16 with any strides, C fp32 with row stride ldc.

   A block of 256 threads computes a 128x128 tile of C, walking K in steps of 32. Each step, every
   thread reads 16 elements of A's 128x32 tile and 16 of B's 32x128 tile into registers (the next
   step's, while the current one is multiplied), then stores them into shared memory. How a tile is
   read depends on the strides, so that neighbouring threads read neighbouring addresses:
     TILE_K    k is the contiguous direction: threads run along k (A row-major, an nn.Linear W)
     TILE_ROW  rows of the tile (m of A, n of B) are contiguous: threads run along them
               (a transposed view such as dY^T in dW = dY^T X, or B = X [T,in] there)
     TILE_VEC  as TILE_K with 16-byte loads, when the addresses are aligned for them
   Elements past M, N or K read as zero, so the multiply never branches. Products with K above 4096
   are split along K over blockIdx.z (arwkv__gemm_slices), their partial sums added in a fixed order.

   Two multiply stages use the same tiles:
     matrix units  shared memory holds bf16 tiles [128][32+8] (the 8 of padding spread a warp's
                   fragment reads over all 32 banks); double-buffered, 40 KiB.
                   NVIDIA: 8 warps as 2x4, each 64x32 of C = 4x4 mma.sync.m16n8k16 per 16 of K.
                   AMD:    4 waves as 2x2, each 64x64 of C = 4x4 MFMA 16x16x16 per 16 of K.
     SIMT          shared memory holds fp32 tiles [32][128+4]; each thread owns 8x8 of C in
                   registers and does fp32 FMAs; 33 KiB. */

#define ARWKV__GM_THREADS 256
#define ARWKV__GM_TILE 128 /* rows and columns of C per block */
#define ARWKV__GM_K 32     /* depth of a tile step */
#define ARWKV__GM_LDH 40   /* bf16 elements per shared row of the matrix-unit path (32 + 8 padding) */
#define ARWKV__GM_LDF 132  /* floats per shared row of the SIMT path (128 + 4 padding) */

enum { ARWKV__TILE_K = 0, ARWKV__TILE_ROW = 1, ARWKV__TILE_VEC = 2 };

/* Where a tile comes from: element (row, k) is p[row * rs + k * ks]; rows past `rows` and k past K
   read as zero. For A, row = m; for B, row = n (so B's tile is stored transposed, k innermost). */
typedef struct arwkv__tile_src {
    const void *p;
    long long rs, ks;
    int rows, K, mode;
} arwkv__tile_src;

typedef struct arwkv__gemm_params {
    arwkv__tile_src a, b;
    int M, N, K;
    int kslice;     /* depth of the K slice of each blockIdx.z */
    float *partial; /* split K: [slices][M][N] sums, added up by arwkv__gemm_reduce_kernel; NULL: write C */
    float *C;
    long long ldc;
    int accumulate;
    const float *bias;
} arwkv__gemm_params;

/* Elements per 16-byte vector of type T. */
template <int T> struct arwkv__vec_len { enum { n = T == ARWKV__T_F32 ? 4 : 8 }; };

/* Tile position (row, k) of element e (0..15) of thread tid in the scalar modes. */
ARWKV__DEV void arwkv__tile_pos(int mode, int tid, int e, int &row, int &k) {
    if (mode == ARWKV__TILE_ROW) {
        row = tid % ARWKV__GM_TILE;
        k = tid / ARWKV__GM_TILE + 2 * e;
    } else {
        row = tid / ARWKV__GM_K + 8 * e;
        k = tid % ARWKV__GM_K;
    }
}

/* Read this thread's 16 elements of the tile at (row0, k0), widened to fp32; k at or past k_end
   reads as zero. In TILE_VEC mode, element e is item e % V of vector (tid + 256 * (e / V)), vectors
   laid out row by row. */
template <int T> ARWKV__DEV void arwkv__tile_load(const arwkv__tile_src &s, int row0, int k0, int k_end, int tid, float (&r)[16]) {
    if (s.mode == ARWKV__TILE_VEC) {
        const int V = arwkv__vec_len<T>::n, per_row = ARWKV__GM_K / V;
#pragma unroll
        for (int q = 0; q < 16 / V; q++) {
            int c = tid + ARWKV__GM_THREADS * q, row = row0 + c / per_row, k = k0 + (c % per_row) * V;
            if (row < s.rows && k + V <= k_end) {
                uint4 w = *(const uint4 *)((const char *)s.p + ((long long)row * s.rs + k) * (T == ARWKV__T_F32 ? 4 : 2));
                unsigned u[4] = {w.x, w.y, w.z, w.w};
#pragma unroll
                for (int j = 0; j < V; j++) {
                    if (T == ARWKV__T_F32) r[q * V + j] = __uint_as_float(u[j % 4]);
                    else {
                        unsigned h = (u[j / 2] >> (16 * (j % 2))) & 0xffffu;
                        r[q * V + j] = T == ARWKV__T_BF16 ? arwkv__dev_bf16_to_f32(h) : arwkv__dev_f16_to_f32(h);
                    }
                }
            } else {
#pragma unroll
                for (int j = 0; j < V; j++)
                    r[q * V + j] = (row < s.rows && k + j < k_end) ? arwkv__dev_load<T>(s.p, (long long)row * s.rs + k + j) : 0.0f;
            }
        }
    } else {
#pragma unroll
        for (int e = 0; e < 16; e++) {
            int row, k;
            arwkv__tile_pos(s.mode, tid, e, row, k);
            row += row0, k += k0;
            r[e] = (row < s.rows && k < k_end) ? arwkv__dev_load<T>(s.p, (long long)row * s.rs + (long long)k * s.ks) : 0.0f;
        }
    }
}

/* Store the 16 elements as bf16 into a [128][ARWKV__GM_LDH] tile (k innermost). */
template <int T> ARWKV__DEV void arwkv__tile_store_bf16(int mode, int tid, const float (&r)[16], unsigned short *S) {
    if (mode == ARWKV__TILE_VEC) {
        const int V = arwkv__vec_len<T>::n, per_row = ARWKV__GM_K / V;
#pragma unroll
        for (int q = 0; q < 16 / V; q++) {
            int c = tid + ARWKV__GM_THREADS * q, row = c / per_row, k = (c % per_row) * V;
            unsigned short *d = S + row * ARWKV__GM_LDH + k;
            if constexpr (V == 8) {
                uint4 w;
                w.x = arwkv__dev_pack_bf16(r[q * V + 0], r[q * V + 1]);
                w.y = arwkv__dev_pack_bf16(r[q * V + 2], r[q * V + 3]);
                w.z = arwkv__dev_pack_bf16(r[q * V + 4], r[q * V + 5]);
                w.w = arwkv__dev_pack_bf16(r[q * V + 6], r[q * V + 7]);
                *(uint4 *)d = w;
            } else {
                uint2 w;
                w.x = arwkv__dev_pack_bf16(r[q * V + 0], r[q * V + 1]);
                w.y = arwkv__dev_pack_bf16(r[q * V + 2], r[q * V + 3]);
                *(uint2 *)d = w;
            }
        }
    } else {
#pragma unroll
        for (int e = 0; e < 16; e++) {
            int row, k;
            arwkv__tile_pos(mode, tid, e, row, k);
            S[row * ARWKV__GM_LDH + k] = (unsigned short)arwkv__dev_f32_to_bf16(r[e]);
        }
    }
}

/* Store the 16 elements as fp32 into a [32][ARWKV__GM_LDF] tile (the row index innermost). */
template <int T> ARWKV__DEV void arwkv__tile_store_f32(int mode, int tid, const float (&r)[16], float *S) {
#pragma unroll
    for (int e = 0; e < 16; e++) {
        int row, k;
        if (mode == ARWKV__TILE_VEC) {
            const int V = arwkv__vec_len<T>::n, per_row = ARWKV__GM_K / V;
            int c = tid + ARWKV__GM_THREADS * (e / V);
            row = c / per_row, k = (c % per_row) * V + e % V;
        } else
            arwkv__tile_pos(mode, tid, e, row, k);
        S[k * ARWKV__GM_LDF + row] = r[e];
    }
}

ARWKV__DEV void arwkv__gemm_out(const arwkv__gemm_params &p, int row, int col, float v) {
    if (row < p.M && col < p.N) {
        if (p.partial) {
            p.partial[((size_t)blockIdx.z * p.M + row) * p.N + col] = v;
            return;
        }
        if (p.bias) v += p.bias[col];
        float *c = p.C + (long long)row * p.ldc + col;
        *c = p.accumulate ? *c + v : v;
    }
}

/* The matrix-unit kernel (bf16 operands, fp32 accumulation). B's element type is T. */
template <int T> __global__ void __launch_bounds__(ARWKV__GM_THREADS) arwkv__gemm_mma_kernel(arwkv__gemm_params p) {
#if defined(ARWKV__MMA_SYNC) || defined(ARWKV__MFMA)
    /* two buffers of (A tile, B tile), each [128][40] bf16: 40 KiB, as uint4 for 16-byte alignment */
    __shared__ uint4 smem[2 * 2 * ARWKV__GM_TILE * ARWKV__GM_LDH * 2 / 16];
    unsigned short *tiles = (unsigned short *)smem;
    const int tile_elems = ARWKV__GM_TILE * ARWKV__GM_LDH;
    const int tid = threadIdx.x, m0 = blockIdx.y * ARWKV__GM_TILE, n0 = blockIdx.x * ARWKV__GM_TILE;
    const int k_lo = blockIdx.z * p.kslice, k_hi = p.K - k_lo < p.kslice ? p.K : k_lo + p.kslice;
    const int steps = (k_hi - k_lo + ARWKV__GM_K - 1) / ARWKV__GM_K;
    float ra[16], rb[16];
    arwkv__tile_load<ARWKV__T_F32>(p.a, m0, k_lo, k_hi, tid, ra);
    arwkv__tile_load<T>(p.b, n0, k_lo, k_hi, tid, rb);
    arwkv__tile_store_bf16<ARWKV__T_F32>(p.a.mode, tid, ra, tiles);
    arwkv__tile_store_bf16<T>(p.b.mode, tid, rb, tiles + tile_elems);
    __syncthreads();

#if defined(ARWKV__MMA_SYNC)
    /* mma.sync.m16n8k16 fragments (PTX ISA): lane = 4 g + t; A regs hold rows g and g+8, k pairs
       2t and 2t+8; B regs hold column g, k pairs 2t and 2t+8; C holds rows g, g+8, columns 2t, 2t+1 */
    const int warp = tid / 32, lane = tid % 32, g = lane / 4, t = lane % 4;
    const int wm = (warp / 4) * 64, wn = (warp % 4) * 32;
    float acc[4][4][4];
#pragma unroll
    for (int i = 0; i < 4; i++)
#pragma unroll
        for (int j = 0; j < 4; j++)
#pragma unroll
            for (int q = 0; q < 4; q++) acc[i][j][q] = 0.0f;
#else
    /* MFMA 16x16x16 fragments (wave64): lane = i + 16 kb; A holds row i, k = 4kb..4kb+3; B holds
       column i, the same k; D holds column i, rows 4kb..4kb+3 */
    const int wave = tid / 64, lane = tid % 64, li = lane % 16, kb = lane / 16;
    const int wm = (wave / 2) * 64, wn = (wave % 2) * 64;
    const arwkv__f4 zero = {0.0f, 0.0f, 0.0f, 0.0f};
    arwkv__f4 acc[4][4];
#pragma unroll
    for (int i = 0; i < 4; i++)
#pragma unroll
        for (int j = 0; j < 4; j++) acc[i][j] = zero;
#endif

    for (int step = 0; step < steps; step++) {
        const int cur = step & 1;
        const unsigned short *As = tiles + cur * 2 * tile_elems, *Bs = As + tile_elems;
        if (step + 1 < steps) { /* next tiles into registers: their loads overlap the multiplies */
            arwkv__tile_load<ARWKV__T_F32>(p.a, m0, k_lo + (step + 1) * ARWKV__GM_K, k_hi, tid, ra);
            arwkv__tile_load<T>(p.b, n0, k_lo + (step + 1) * ARWKV__GM_K, k_hi, tid, rb);
        }
#pragma unroll
        for (int ks = 0; ks < ARWKV__GM_K; ks += 16) {
#if defined(ARWKV__MMA_SYNC)
            unsigned af[4][4], bfr[4][2];
#pragma unroll
            for (int i = 0; i < 4; i++) {
                const unsigned short *a = As + (wm + i * 16 + g) * ARWKV__GM_LDH + ks + 2 * t;
                af[i][0] = *(const unsigned *)a;
                af[i][1] = *(const unsigned *)(a + 8 * ARWKV__GM_LDH);
                af[i][2] = *(const unsigned *)(a + 8);
                af[i][3] = *(const unsigned *)(a + 8 * ARWKV__GM_LDH + 8);
            }
#pragma unroll
            for (int j = 0; j < 4; j++) {
                const unsigned short *b = Bs + (wn + j * 8 + g) * ARWKV__GM_LDH + ks + 2 * t;
                bfr[j][0] = *(const unsigned *)b;
                bfr[j][1] = *(const unsigned *)(b + 8);
            }
#pragma unroll
            for (int i = 0; i < 4; i++)
#pragma unroll
                for (int j = 0; j < 4; j++) arwkv__mma_bf16_16816(acc[i][j], af[i], bfr[j]);
#else
            arwkv__s4 af[4], bfr[4];
#pragma unroll
            for (int i = 0; i < 4; i++) af[i] = *(const arwkv__s4 *)(As + (wm + i * 16 + li) * ARWKV__GM_LDH + ks + 4 * kb);
#pragma unroll
            for (int j = 0; j < 4; j++) bfr[j] = *(const arwkv__s4 *)(Bs + (wn + j * 16 + li) * ARWKV__GM_LDH + ks + 4 * kb);
#pragma unroll
            for (int i = 0; i < 4; i++)
#pragma unroll
                for (int j = 0; j < 4; j++) acc[i][j] = arwkv__mfma_bf16_16x16x16(af[i], bfr[j], acc[i][j]);
#endif
        }
        if (step + 1 < steps) { /* the other buffer was last read before the previous barrier */
            unsigned short *An = tiles + (cur ^ 1) * 2 * tile_elems;
            arwkv__tile_store_bf16<ARWKV__T_F32>(p.a.mode, tid, ra, An);
            arwkv__tile_store_bf16<T>(p.b.mode, tid, rb, An + tile_elems);
        }
        __syncthreads();
    }

#if defined(ARWKV__MMA_SYNC)
#pragma unroll
    for (int i = 0; i < 4; i++)
#pragma unroll
        for (int j = 0; j < 4; j++) {
            int row = m0 + wm + i * 16 + g, col = n0 + wn + j * 8 + 2 * t;
            arwkv__gemm_out(p, row, col, acc[i][j][0]);
            arwkv__gemm_out(p, row, col + 1, acc[i][j][1]);
            arwkv__gemm_out(p, row + 8, col, acc[i][j][2]);
            arwkv__gemm_out(p, row + 8, col + 1, acc[i][j][3]);
        }
#else
#pragma unroll
    for (int i = 0; i < 4; i++)
#pragma unroll
        for (int j = 0; j < 4; j++)
#pragma unroll
            for (int q = 0; q < 4; q++) arwkv__gemm_out(p, m0 + wm + i * 16 + 4 * kb + q, n0 + wn + j * 16 + li, acc[i][j][q]);
#endif
#else
    (void)p; /* no matrix units in this device pass: the host never launches this kernel here */
#endif
}

/* The SIMT kernel: fp32 FMAs, each thread an 8x8 piece of C (rows ty*4.. and 64+ty*4.., columns
   likewise), so its shared-memory reads are two float4 of A and two of B per k. */
template <int T> __global__ void __launch_bounds__(ARWKV__GM_THREADS) arwkv__gemm_simt_kernel(arwkv__gemm_params p) {
    __shared__ float4 smem[2 * ARWKV__GM_K * ARWKV__GM_LDF / 4];
    float *As = (float *)smem, *Bs = As + ARWKV__GM_K * ARWKV__GM_LDF;
    const int tid = threadIdx.x, tx = tid % 16, ty = tid / 16;
    const int m0 = blockIdx.y * ARWKV__GM_TILE, n0 = blockIdx.x * ARWKV__GM_TILE;
    const int k_lo = blockIdx.z * p.kslice, k_hi = p.K - k_lo < p.kslice ? p.K : k_lo + p.kslice;
    const int steps = (k_hi - k_lo + ARWKV__GM_K - 1) / ARWKV__GM_K;
    float ra[16], rb[16], acc[8][8];
#pragma unroll
    for (int i = 0; i < 8; i++)
#pragma unroll
        for (int j = 0; j < 8; j++) acc[i][j] = 0.0f;
    if (steps > 0) {
        arwkv__tile_load<ARWKV__T_F32>(p.a, m0, k_lo, k_hi, tid, ra);
        arwkv__tile_load<T>(p.b, n0, k_lo, k_hi, tid, rb);
    }
    for (int step = 0; step < steps; step++) {
        arwkv__tile_store_f32<ARWKV__T_F32>(p.a.mode, tid, ra, As);
        arwkv__tile_store_f32<T>(p.b.mode, tid, rb, Bs);
        __syncthreads();
        if (step + 1 < steps) {
            arwkv__tile_load<ARWKV__T_F32>(p.a, m0, k_lo + (step + 1) * ARWKV__GM_K, k_hi, tid, ra);
            arwkv__tile_load<T>(p.b, n0, k_lo + (step + 1) * ARWKV__GM_K, k_hi, tid, rb);
        }
#pragma unroll 4
        for (int k = 0; k < ARWKV__GM_K; k++) {
            float4 a0 = *(const float4 *)(As + k * ARWKV__GM_LDF + ty * 4), a1 = *(const float4 *)(As + k * ARWKV__GM_LDF + 64 + ty * 4);
            float4 b0 = *(const float4 *)(Bs + k * ARWKV__GM_LDF + tx * 4), b1 = *(const float4 *)(Bs + k * ARWKV__GM_LDF + 64 + tx * 4);
            float a[8] = {a0.x, a0.y, a0.z, a0.w, a1.x, a1.y, a1.z, a1.w}, b[8] = {b0.x, b0.y, b0.z, b0.w, b1.x, b1.y, b1.z, b1.w};
#pragma unroll
            for (int i = 0; i < 8; i++)
#pragma unroll
                for (int j = 0; j < 8; j++) acc[i][j] = fmaf(a[i], b[j], acc[i][j]);
        }
        __syncthreads();
    }
#pragma unroll
    for (int i = 0; i < 8; i++)
#pragma unroll
        for (int j = 0; j < 8; j++)
            arwkv__gemm_out(p, m0 + (i < 4 ? ty * 4 + i : 64 + ty * 4 + i - 4), n0 + (j < 4 ? tx * 4 + j : 64 + tx * 4 + j - 4), acc[i][j]);
}

/* Split K: C = the slices' partial sums added in slice order (+ bias, or + C). */
__global__ void arwkv__gemm_reduce_kernel(const float *part, int slices, int M, int N, float *C, long long ldc, int accumulate,
                                          const float *bias) {
    ARWKV__GRID_LOOP(u, (size_t)M * N) {
        int row = (int)(u / N), col = (int)(u % N);
        float v = 0.0f;
        for (int z = 0; z < slices; z++) v += part[((size_t)z * M + row) * N + col];
        if (bias) v += bias[col];
        float *c = C + (long long)row * ldc + col;
        *c = accumulate ? *c + v : v;
    }
}

/* Slices of K for one product, from its shape alone (so the same product always sums in the same
   order): none up to K = 4096; beyond, slices of at least 2048 (at most 64 of them, their partial
   sums at most 256 MiB). A long sum in one accumulator loses precision (the head's backward has
   K = 151936 and nearly cancelling terms) and a thin output leaves most of the GPU idle; slices fix
   both, at the price of one more pass over C. */
ARWKV_PRIVATE int arwkv__gemm_slices(int M, int N, int K, int align, int *kslice) {
    int slices = K > 4096 ? K / 2048 : 1;
    if (slices > 64) slices = 64;
    while (slices > 1 && (uint64_t)slices * M * N * sizeof(float) > ARWKV__GPU_SPLIT_K_MAX) slices /= 2; /* the plan counts this much */
    int depth = (K + slices - 1) / slices;
    depth = (depth + align - 1) / align * align; /* whole tile steps: aligned vector loads */
    if (depth < align) depth = align;
    *kslice = depth;
    return (K + depth - 1) / depth > 1 ? (K + depth - 1) / depth : 1;
}

/* How to read a tile of an operand whose element (row, k) is at p[row * rs + k * ks]. */
ARWKV_PRIVATE int arwkv__tile_mode(const void *p, long long rs, long long ks, size_t esize) {
    if (ks == 1 && (uintptr_t)p % 16 == 0 && ((unsigned long long)rs * esize) % 16 == 0) return ARWKV__TILE_VEC;
    if (ks == 1) return ARWKV__TILE_K;
    if (rs == 1) return ARWKV__TILE_ROW;
    return ARWKV__TILE_K;
}

/* ============================================================================================
   Matrix product on Hopper: warpgroup MMA (wgmma) fed by the tensor copy engine (sm_90a)
   ============================================================================================
   On H100/H200 the product above reaches a small fraction of the chip: mma.sync issues one
   16x8x16 product per warp and instruction, and every operand passes through registers. Hopper's
   own path moves tiles from global to shared memory with the tensor copy engine (TMA: one thread
   asks for a whole 2-D box, which lands swizzled and signals an mbarrier when its bytes are in)
   and multiplies straight out of shared memory with wgmma (a warpgroup of 4 warps computes
   64 x N x 16 per instruction, asynchronously). It needs bf16 operands laid out K-major:
     A  fp32 activations (any strides) are first packed into bf16 [M][Kp] (Kp = K rounded up to 8,
        so that rows are 16-byte aligned as TMA requires); this is also where fp32 is rounded, as
        the other path does tile by tile;
     B  a bf16 weight stored [N][K] (nn.Linear's W, the forward) is read in place; any other B (the
        backward's W, fp32 activations, f16) is packed into bf16 [N][Kp] first.
   TMA reads past the matrix's edges as zeros, so the kernel never checks bounds until it stores C.

   The kernel: 384 threads = 3 warpgroups. Warpgroup 0 is the producer (one thread issues the
   copies); warpgroups 1 and 2 are consumers, each owning 64 rows of a 128 x BN tile of C (BN 256,
   or 128 for thin outputs) in registers. Shared memory holds STAGES (A, B) tiles of K-depth 64
   (one 128-byte swizzle row of bf16) in a ring: full[s] says stage s has arrived, empty[s] that
   the 8 consumer warps are done with it. The grid is persistent (one block per multiprocessor, tiles
   taken in turn, rows fastest so that concurrent blocks share B's tile in L2); the producer runs
   ahead into the next tile while the consumers store the last one. Split-K, bias and accumulate
   behave exactly as in the other kernels (the same slices, the same reduction). */
#if defined(__CUDACC__) && !defined(ARWKV_HIP_EMULATOR)
#define ARWKV__WGMMA_HOST 1 /* this build may carry the sm_90a kernel; the probe says whether it does */
#include <cuda.h>

#define ARWKV__WG_BM 128    /* rows of C per tile */
#define ARWKV__WG_BK 64     /* K-depth of a stage: 64 bf16 = one 128-byte swizzle row */
#define ARWKV__WG_THREADS 384

template <int BN> struct arwkv__wg_cfg {
    enum {
        STAGES = BN == 256 ? 4 : 6,
        A_BYTES = ARWKV__WG_BM * ARWKV__WG_BK * 2,
        B_BYTES = BN * ARWKV__WG_BK * 2,
        SMEM = STAGES * (A_BYTES + B_BYTES) + 2 * STAGES * 8 + 1024 /* tiles, barriers, alignment slack */
    };
};

typedef struct arwkv__wg_params {
    int M, N, K;
    int tiles_m, tiles_n, slices, kb_per_slice; /* K-blocks of 64 per slice */
    float *C, *partial;
    long long ldc;
    int accumulate;
    int pairs; /* C (or the partial sums) takes 8-byte stores: even row stride, aligned */
    const float *bias;
} arwkv__wg_params;

#if defined(__CUDA_ARCH__) && defined(__CUDA_ARCH_FEAT_SM90_ALL)
#define ARWKV__WGMMA_DEVICE 1
ARWKV__DEV unsigned arwkv__smem_addr(const void *p) { return (unsigned)__cvta_generic_to_shared(p); }
ARWKV__DEV void arwkv__mbar_init(unsigned long long *bar, unsigned count) {
    asm volatile("mbarrier.init.shared::cta.b64 [%0], %1;\n" ::"r"(arwkv__smem_addr(bar)), "r"(count));
}
ARWKV__DEV void arwkv__mbar_expect_tx(unsigned long long *bar, unsigned bytes) {
    asm volatile("mbarrier.arrive.expect_tx.shared::cta.b64 _, [%0], %1;\n" ::"r"(arwkv__smem_addr(bar)), "r"(bytes) : "memory");
}
ARWKV__DEV void arwkv__mbar_arrive(unsigned long long *bar) {
    asm volatile("mbarrier.arrive.shared::cta.b64 _, [%0];\n" ::"r"(arwkv__smem_addr(bar)) : "memory");
}
/* Wait until the phase of the given parity has completed (a fresh barrier counts its phase
   "before 0", parity 1, as completed: a producer's first wait on an empty slot passes). */
ARWKV__DEV void arwkv__mbar_wait(unsigned long long *bar, unsigned parity) {
    unsigned done = 0, a = arwkv__smem_addr(bar);
    do {
        asm volatile("{\n.reg .pred p;\nmbarrier.try_wait.parity.shared::cta.b64 p, [%1], %2;\nselp.u32 %0, 1, 0, p;\n}\n"
                     : "=r"(done)
                     : "r"(a), "r"(parity)
                     : "memory");
    } while (!done);
}
/* One 2-D box of a tensor map into shared memory; completes bytes on the barrier. */
ARWKV__DEV void arwkv__tma_load(void *dst, const CUtensorMap *map, unsigned long long *bar, int x, int y) {
    asm volatile("cp.async.bulk.tensor.2d.shared::cluster.global.mbarrier::complete_tx::bytes [%0], [%1, {%3, %4}], [%2];\n" ::"r"(
                     arwkv__smem_addr(dst)),
                 "l"((unsigned long long)map), "r"(arwkv__smem_addr(bar)), "r"(x), "r"(y)
                 : "memory");
}
/* Shared-memory matrix descriptor of a K-major tile with 128-byte swizzle: rows of 128 bytes,
   groups of 8 rows 1024 bytes apart (the stride field); the leading-offset field is unused. */
ARWKV__DEV unsigned long long arwkv__wg_desc(const void *tile) {
    unsigned long long a = arwkv__smem_addr(tile);
    return ((a & 0x3ffffull) >> 4) | (1ull << 16) | ((1024ull >> 4) << 32) | (1ull << 62);
}
/* Tile t of the persistent loop: slices outermost; inside a slice, bands of ARWKV__WG_GROUP tile
   rows walked column by column, so that the blocks running at once share both A's and B's tiles
   in L2 (and A's band stays there while B streams past it). */
#define ARWKV__WG_GROUP 16
ARWKV__DEV void arwkv__wg_tile(const arwkv__wg_params &p, int t, int &tm, int &tn, int &slice) {
    const int per_slice = p.tiles_m * p.tiles_n, u = t % per_slice, band = ARWKV__WG_GROUP * p.tiles_n;
    const int m0 = u / band * ARWKV__WG_GROUP, rows = min(ARWKV__WG_GROUP, p.tiles_m - m0), v = u % band;
    slice = t / per_slice, tm = m0 + v % rows, tn = v / rows;
}
ARWKV__DEV void arwkv__wg_fence(void) { asm volatile("wgmma.fence.sync.aligned;\n" ::: "memory"); }
ARWKV__DEV void arwkv__wg_commit(void) { asm volatile("wgmma.commit_group.sync.aligned;\n" ::: "memory"); }
ARWKV__DEV void arwkv__wg_wait0(void) { asm volatile("wgmma.wait_group.sync.aligned 0;\n" ::: "memory"); }
ARWKV__DEV void arwkv__wg_wait1(void) { asm volatile("wgmma.wait_group.sync.aligned 1;\n" ::: "memory"); }
/* Pin the accumulators at this point of the program: the compiler sees wgmma's outputs as ready
   when it is issued, and must not move their other uses across the wait (or the zeroing past the
   first issue). */
template <int R> ARWKV__DEV void arwkv__wg_pin(float (&d)[R]) {
#pragma unroll
    for (int i = 0; i < R; i++) asm volatile("" : "+f"(d[i])::"memory");
}

/* D[64 x N] += A[64 x 16] B[16 x N], both from shared memory (K-major), fp32 accumulators in
   registers: lane l of warp w holds, for each 8 columns i, rows 16w + l/4 (+8) and columns
   8i + 2(l%4) (+1), as d[4i..4i+3]. */
#define ARWKV__ACC8(i) "+f"(d[i]), "+f"(d[i + 1]), "+f"(d[i + 2]), "+f"(d[i + 3]), "+f"(d[i + 4]), "+f"(d[i + 5]), "+f"(d[i + 6]), "+f"(d[i + 7])
ARWKV__DEV void arwkv__wgmma_m64n256k16(float (&d)[128], unsigned long long da, unsigned long long db) {
    asm volatile("{\n.reg .pred p;\nsetp.ne.b32 p, 1, 0;\n"
                 "wgmma.mma_async.sync.aligned.m64n256k16.f32.bf16.bf16 {"
                 "%0,%1,%2,%3,%4,%5,%6,%7,%8,%9,%10,%11,%12,%13,%14,%15,%16,%17,%18,%19,%20,%21,%22,%23,%24,%25,%26,%27,%28,%29,%30,%31,"
                 "%32,%33,%34,%35,%36,%37,%38,%39,%40,%41,%42,%43,%44,%45,%46,%47,%48,%49,%50,%51,%52,%53,%54,%55,%56,%57,%58,%59,%60,%61,%62,%63,"
                 "%64,%65,%66,%67,%68,%69,%70,%71,%72,%73,%74,%75,%76,%77,%78,%79,%80,%81,%82,%83,%84,%85,%86,%87,%88,%89,%90,%91,%92,%93,%94,%95,"
                 "%96,%97,%98,%99,%100,%101,%102,%103,%104,%105,%106,%107,%108,%109,%110,%111,%112,%113,%114,%115,%116,%117,%118,%119,%120,%121,%122,%123,%124,%125,%126,%127"
                 "}, %128, %129, p, 1, 1, 0, 0;\n}\n"
                 : ARWKV__ACC8(0), ARWKV__ACC8(8), ARWKV__ACC8(16), ARWKV__ACC8(24),
                   ARWKV__ACC8(32), ARWKV__ACC8(40), ARWKV__ACC8(48), ARWKV__ACC8(56),
                   ARWKV__ACC8(64), ARWKV__ACC8(72), ARWKV__ACC8(80), ARWKV__ACC8(88),
                   ARWKV__ACC8(96), ARWKV__ACC8(104), ARWKV__ACC8(112), ARWKV__ACC8(120)
                 : "l"(da), "l"(db));
}
ARWKV__DEV void arwkv__wgmma_m64n128k16(float (&d)[64], unsigned long long da, unsigned long long db) {
    asm volatile("{\n.reg .pred p;\nsetp.ne.b32 p, 1, 0;\n"
                 "wgmma.mma_async.sync.aligned.m64n128k16.f32.bf16.bf16 {"
                 "%0,%1,%2,%3,%4,%5,%6,%7,%8,%9,%10,%11,%12,%13,%14,%15,%16,%17,%18,%19,%20,%21,%22,%23,%24,%25,%26,%27,%28,%29,%30,%31,"
                 "%32,%33,%34,%35,%36,%37,%38,%39,%40,%41,%42,%43,%44,%45,%46,%47,%48,%49,%50,%51,%52,%53,%54,%55,%56,%57,%58,%59,%60,%61,%62,%63"
                 "}, %64, %65, p, 1, 1, 0, 0;\n}\n"
                 : ARWKV__ACC8(0), ARWKV__ACC8(8), ARWKV__ACC8(16), ARWKV__ACC8(24),
                   ARWKV__ACC8(32), ARWKV__ACC8(40), ARWKV__ACC8(48), ARWKV__ACC8(56)
                 : "l"(da), "l"(db));
}
#undef ARWKV__ACC8
/* the instruction for a tile width, chosen by the accumulator array's size */
ARWKV__DEV void arwkv__wgmma(float (&d)[128], unsigned long long da, unsigned long long db) { arwkv__wgmma_m64n256k16(d, da, db); }
ARWKV__DEV void arwkv__wgmma(float (&d)[64], unsigned long long da, unsigned long long db) { arwkv__wgmma_m64n128k16(d, da, db); }
#endif

template <int BN>
__global__ void __launch_bounds__(ARWKV__WG_THREADS, 1)
    arwkv__gemm_wgmma_kernel(const __grid_constant__ CUtensorMap map_a, const __grid_constant__ CUtensorMap map_b, arwkv__wg_params p) {
#if defined(ARWKV__WGMMA_DEVICE)
    typedef arwkv__wg_cfg<BN> cfg;
    extern __shared__ unsigned char arwkv__wg_smem[];
    /* the swizzle pattern repeats every 1024 bytes: tiles start on such a boundary */
    unsigned char *base = (unsigned char *)(((unsigned long long)arwkv__wg_smem + 1023) & ~1023ull);
    unsigned char *sa = base, *sb = base + cfg::STAGES * cfg::A_BYTES;
    unsigned long long *full = (unsigned long long *)(sb + cfg::STAGES * cfg::B_BYTES), *empty = full + cfg::STAGES;
    const int wg = threadIdx.x / 128, tid = threadIdx.x % 128;
    if (threadIdx.x == 0) {
        for (int s = 0; s < cfg::STAGES; s++) arwkv__mbar_init(&full[s], 1), arwkv__mbar_init(&empty[s], 8); /* 8 consumer warps */
        asm volatile("fence.mbarrier_init.release.cluster;\n" ::: "memory");
    }
    __syncthreads();
    const int tiles = p.tiles_m * p.tiles_n * p.slices, kblocks = (p.K + ARWKV__WG_BK - 1) / ARWKV__WG_BK;
    if (wg == 0) { /* producer */
        asm volatile("setmaxnreg.dec.sync.aligned.u32 40;\n");
        if (tid == 0) {
            int stage = 0;
            unsigned phase = 0;
            for (int t = blockIdx.x; t < tiles; t += gridDim.x) {
                int tm, tn, slice;
                arwkv__wg_tile(p, t, tm, tn, slice);
                int kb0 = slice * p.kb_per_slice, kb1 = min(kblocks, kb0 + p.kb_per_slice);
                for (int kb = kb0; kb < kb1; kb++) {
                    arwkv__mbar_wait(&empty[stage], phase ^ 1);
                    arwkv__mbar_expect_tx(&full[stage], cfg::A_BYTES + cfg::B_BYTES);
                    arwkv__tma_load(sa + stage * cfg::A_BYTES, &map_a, &full[stage], kb * ARWKV__WG_BK, tm * ARWKV__WG_BM);
                    arwkv__tma_load(sb + stage * cfg::B_BYTES, &map_b, &full[stage], kb * ARWKV__WG_BK, tn * BN);
                    if (++stage == cfg::STAGES) stage = 0, phase ^= 1;
                }
            }
        }
    } else { /* consumers: warpgroup 1 takes rows 0..63 of the tile, warpgroup 2 rows 64..127 */
        asm volatile("setmaxnreg.inc.sync.aligned.u32 232;\n");
        const int half = wg - 1, warp = tid / 32, lane = tid % 32;
        int stage = 0;
        unsigned phase = 0;
        float d[BN / 2];
        for (int t = blockIdx.x; t < tiles; t += gridDim.x) {
            int tm, tn, slice;
            arwkv__wg_tile(p, t, tm, tn, slice);
            int kb0 = slice * p.kb_per_slice, kb1 = min(kblocks, kb0 + p.kb_per_slice), held = -1;
#pragma unroll
            for (int i = 0; i < BN / 2; i++) d[i] = 0.0f;
            for (int kb = kb0; kb < kb1; kb++) {
                arwkv__mbar_wait(&full[stage], phase);
                unsigned long long da = arwkv__wg_desc(sa + stage * cfg::A_BYTES + half * 64 * 128);
                unsigned long long db = arwkv__wg_desc(sb + stage * cfg::B_BYTES);
                arwkv__wg_pin(d);
                arwkv__wg_fence();
#pragma unroll
                for (int k = 0; k < ARWKV__WG_BK / 16; k++) arwkv__wgmma(d, da + 2 * k, db + 2 * k); /* +32 bytes = 16 bf16 of K */
                arwkv__wg_commit();
                /* one group stays in flight while the next stage is awaited: the previous k-block's
                   products are done, so its stage goes back to the producer */
                arwkv__wg_wait1();
                arwkv__wg_pin(d);
                if (held >= 0 && lane == 0) arwkv__mbar_arrive(&empty[held]);
                held = stage;
                if (++stage == cfg::STAGES) stage = 0, phase ^= 1;
            }
            arwkv__wg_wait0();
            arwkv__wg_pin(d);
            if (held >= 0 && lane == 0) arwkv__mbar_arrive(&empty[held]);
            /* store: rows 16 warp + lane/4 (+8), columns 8i + 2(lane%4) (+1), two at a time where aligned */
            const int row = tm * ARWKV__WG_BM + half * 64 + warp * 16 + lane / 4, col0 = tn * BN + 2 * (lane % 4);
#pragma unroll
            for (int i = 0; i < BN / 8; i++)
#pragma unroll
                for (int h = 0; h < 2; h++) {
                    const int r = row + 8 * h, col = col0 + 8 * i;
                    if (r >= p.M || col >= p.N) continue;
                    float v0 = d[4 * i + 2 * h], v1 = d[4 * i + 2 * h + 1];
                    if (p.partial) {
                        float *out = p.partial + ((size_t)slice * p.M + r) * p.N + col;
                        if (col + 1 < p.N && p.pairs) *(float2 *)out = make_float2(v0, v1);
                        else {
                            out[0] = v0;
                            if (col + 1 < p.N) out[1] = v1;
                        }
                        continue;
                    }
                    float *out = p.C + (long long)r * p.ldc + col;
                    if (p.bias) v0 += p.bias[col], v1 += col + 1 < p.N ? p.bias[col + 1] : 0.0f;
                    if (col + 1 < p.N && p.pairs) {
                        if (p.accumulate) {
                            float2 o = *(const float2 *)out;
                            v0 += o.x, v1 += o.y;
                        }
                        *(float2 *)out = make_float2(v0, v1);
                    } else {
                        out[0] = p.accumulate ? out[0] + v0 : v0;
                        if (col + 1 < p.N) out[1] = p.accumulate ? out[1] + v1 : v1;
                    }
                }
        }
    }
#else
    (void)map_a, (void)map_b, (void)p; /* not an sm_90a pass: the host never launches this kernel here */
#endif
}

/* Pack an operand into bf16 [rows][ld] (k innermost, zeros in k = K..ld-1): element (row, k) of
   the source is src[row * rs + k * ks], of type T. A 64 x 64 block goes through shared memory so
   that reads run along the source's contiguous direction and writes along k. */
template <int T> __global__ void __launch_bounds__(256) arwkv__pack_bf16_kernel(unsigned *dst, long long ld, const void *src, long long rs,
                                                                                 long long ks, int rows, int K) {
    __shared__ float tile[64][65];
    const int row0 = blockIdx.y * 64, k0 = blockIdx.x * 64, tid = threadIdx.x;
    const bool along_rows = ks != 1 && rs == 1;
    for (int e = tid; e < 64 * 64; e += 256) {
        int r = along_rows ? e % 64 : e / 64, k = along_rows ? e / 64 : e % 64;
        int gr = row0 + r, gk = k0 + k;
        tile[r][k] = gr < rows && gk < K ? arwkv__dev_load<T>(src, (long long)gr * rs + (long long)gk * ks) : 0.0f;
    }
    __syncthreads();
    for (int e = tid; e < 64 * 32; e += 256) {
        int r = e / 32, k = 2 * (e % 32), gr = row0 + r, gk = k0 + k;
        if (gr < rows && gk < ld) dst[((long long)gr * ld + gk) / 2] = arwkv__dev_pack_bf16(tile[r][k], tile[r][k + 1]);
    }
}
/* The common case of the packing above, fp32 rows with k contiguous and 16-byte aligned (the
   activations of every forward product): 8 elements per thread, two 16-byte loads, one store. */
__global__ void arwkv__pack_rows_bf16_kernel(uint4 *dst, long long ld, const float *src, long long rs, int rows, int K) {
    const long long per_row = ld / 8;
    ARWKV__GRID_LOOP(i, (size_t)rows * per_row) {
        long long row = (long long)(i / per_row), k = (long long)(i % per_row) * 8;
        const float *p = src + row * rs + k;
        float x[8];
        if (k + 8 <= K) {
            float4 a = *(const float4 *)p, b = *(const float4 *)(p + 4);
            x[0] = a.x, x[1] = a.y, x[2] = a.z, x[3] = a.w, x[4] = b.x, x[5] = b.y, x[6] = b.z, x[7] = b.w;
        } else {
#pragma unroll
            for (int j = 0; j < 8; j++) x[j] = k + j < K ? p[j] : 0.0f;
        }
        uint4 w;
        w.x = arwkv__dev_pack_bf16(x[0], x[1]), w.y = arwkv__dev_pack_bf16(x[2], x[3]);
        w.z = arwkv__dev_pack_bf16(x[4], x[5]), w.w = arwkv__dev_pack_bf16(x[6], x[7]);
        dst[i] = w;
    }
}
#endif /* __CUDACC__ */

#if defined(ARWKV__WGMMA_HOST)
typedef CUresult (*arwkv__encode_tiled_fn)(CUtensorMap *, CUtensorMapDataType, cuuint32_t, void *, const cuuint64_t *, const cuuint64_t *,
                                           const cuuint32_t *, const cuuint32_t *, CUtensorMapInterleave, CUtensorMapSwizzle,
                                           CUtensorMapL2promotion, CUtensorMapFloatOOBfill);

/* The tensor map of a bf16 matrix [rows][K] with row stride ld elements, read in boxes of 64 x box_rows. */
ARWKV_PRIVATE arwkv_result arwkv__wg_tensor_map(arwkv__gpu *g, CUtensorMap *map, const void *p, int rows, int K, long long ld, int box_rows) {
    cuuint64_t dims[2] = {(cuuint64_t)K, (cuuint64_t)rows}, strides[1] = {(cuuint64_t)ld * 2};
    cuuint32_t box[2] = {ARWKV__WG_BK, (cuuint32_t)box_rows}, elem_strides[2] = {1, 1};
    CUresult r = ((arwkv__encode_tiled_fn)g->encode_tiled)(map, CU_TENSOR_MAP_DATA_TYPE_BFLOAT16, 2, (void *)p, dims, strides, box, elem_strides,
                                                           CU_TENSOR_MAP_INTERLEAVE_NONE, CU_TENSOR_MAP_SWIZZLE_128B,
                                                           CU_TENSOR_MAP_L2_PROMOTION_L2_256B, CU_TENSOR_MAP_FLOAT_OOB_FILL_NONE);
    if (r != CUDA_SUCCESS)
        return arwkv__fail(ARWKV_ERR_GPU, "GPU matrix product: cannot describe a %d x %d bf16 operand (row stride %lld) to the tensor copy engine (error %d)",
                           rows, K, ld, (int)r);
    return ARWKV_OK;
}

/* Packed operands live in their own buffer (the scratch buffer holds split-K partial sums). */
ARWKV_PRIVATE arwkv_result arwkv__hip_pack_buffer(arwkv__gpu *g, size_t bytes, void **out) {
    if (g->pack_size < bytes) {
        if (g->pack) (void)hipFree(g->pack);
        g->pack = NULL, g->pack_size = 0;
        hipError_t e = hipMalloc(&g->pack, bytes);
        if (e != hipSuccess) {
            (void)hipGetLastError();
            g->pack = NULL;
            return arwkv__fail(ARWKV_ERR_OUT_OF_MEMORY, "GPU %d: cannot allocate %.1f MiB for bf16 operands of a matrix product: %s", g->device,
                               bytes / 1048576.0, hipGetErrorString(e));
        }
        g->pack_size = bytes;
    }
    *out = g->pack;
    return ARWKV_OK;
}

ARWKV_PRIVATE void arwkv__wg_pack(arwkv__gpu *g, unsigned short *dst, long long ld, const void *src, int t, long long rs, long long ks, int rows, int K) {
    if (t == ARWKV__T_F32 && ks == 1 && rs % 4 == 0 && (uintptr_t)src % 16 == 0) {
        ARWKV__LAUNCH(arwkv__pack_rows_bf16_kernel, arwkv__hip_blocks(g, (size_t)rows * (ld / 8)), 256, g->stream, (uint4 *)dst, ld,
                      (const float *)src, rs, rows, K);
        return;
    }
    dim3 grid((unsigned)((ld + 63) / 64), (unsigned)((rows + 63) / 64));
    if (t == ARWKV__T_BF16) ARWKV__LAUNCH(arwkv__pack_bf16_kernel<ARWKV__T_BF16>, grid, 256, g->stream, (unsigned *)dst, ld, src, rs, ks, rows, K);
    else if (t == ARWKV__T_F16) ARWKV__LAUNCH(arwkv__pack_bf16_kernel<ARWKV__T_F16>, grid, 256, g->stream, (unsigned *)dst, ld, src, rs, ks, rows, K);
    else ARWKV__LAUNCH(arwkv__pack_bf16_kernel<ARWKV__T_F32>, grid, 256, g->stream, (unsigned *)dst, ld, src, rs, ks, rows, K);
}

/* C = A B on the wgmma path (arguments as arwkv__hip_gemm's; K >= 1). */
ARWKV_PRIVATE arwkv_result arwkv__hip_gemm_wgmma(arwkv__gpu *g, int M, int N, int K, const float *A, ptrdiff_t a_rs, ptrdiff_t a_cs, const void *B,
                                          arwkv_dtype b_type, ptrdiff_t b_rs, ptrdiff_t b_cs, float *C, ptrdiff_t ldc, int accumulate,
                                          const float *bias) {
    const long long kp = (K + 7) / 8 * 8;
    const int b_in_place = b_type == ARWKV_BF16 && b_rs == 1 && b_cs >= K && (b_cs * 2) % 16 == 0 && (uintptr_t)B % 16 == 0;
    size_t a_bytes = ((size_t)M * kp * 2 + 255) / 256 * 256, b_bytes = b_in_place ? 0 : (size_t)N * kp * 2;
    void *pack = NULL;
    ARWKV__TRY(arwkv__hip_pack_buffer(g, a_bytes + b_bytes, &pack));
    unsigned short *pa = (unsigned short *)pack, *pb = b_in_place ? (unsigned short *)B : pa + a_bytes / 2;
    long long ldb = b_in_place ? (long long)b_cs : kp;
    arwkv__wg_pack(g, pa, kp, A, ARWKV__T_F32, a_rs, a_cs, M, K);
    if (!b_in_place)
        arwkv__wg_pack(g, pb, kp, B, b_type == ARWKV_BF16 ? ARWKV__T_BF16 : b_type == ARWKV_F16 ? ARWKV__T_F16 : ARWKV__T_F32, b_cs, b_rs, N, K);
    ARWKV__TRY(arwkv__hip_launched("matrix product (packing operands to bf16)"));

    arwkv__wg_params p;
    memset(&p, 0, sizeof p);
    int kslice = 0;
    p.M = M, p.N = N, p.K = K, p.C = C, p.ldc = ldc, p.accumulate = accumulate, p.bias = bias;
    /* Split K only where whole-K tiles would leave multiprocessors idle (their last wave less than
       80% full) or K is very long (the head's backward, K = vocabulary). A dW over 8192 tokens of a
       7B model fills the GPU with whole-K tiles, and its partial sums would cost more passes over C
       than the split gains (measured on an H100: 3584 x 3584 x 8192 at 400 TFLOP/s whole, 346 split);
       one of a 0.5B model (7 x 38 tiles of 128 x 256: 1.15 waves) runs faster split. */
    int sms = g->prop.multiProcessorCount;
    long long whole_tiles = (long long)((M + ARWKV__WG_BM - 1) / ARWKV__WG_BM) * ((N + 255) / 256);
    long long waves = (whole_tiles + sms - 1) / sms;
    if (K <= 16384 && whole_tiles >= 0.8 * waves * sms) p.slices = 1, kslice = (K + ARWKV__WG_BK - 1) / ARWKV__WG_BK * ARWKV__WG_BK;
    else p.slices = arwkv__gemm_slices(M, N, K, ARWKV__WG_BK, &kslice);
    p.pairs = p.slices > 1 ? N % 2 == 0 : ldc % 2 == 0 && (uintptr_t)C % 8 == 0;
    p.kb_per_slice = kslice / ARWKV__WG_BK;
    p.tiles_m = (M + ARWKV__WG_BM - 1) / ARWKV__WG_BM;
    /* wide tiles when there are enough of them to fill the GPU, else narrow ones */
    int bn = 256;
    if (N <= 128 || (long long)p.tiles_m * ((N + 255) / 256) * p.slices < sms) bn = 128;
    p.tiles_n = (N + bn - 1) / bn;
    if (p.slices > 1) {
        void *part = NULL;
        ARWKV__TRY(arwkv__hip_scratch(g, (size_t)p.slices * M * N * sizeof(float), &part));
        p.partial = (float *)part;
    }
    CUtensorMap map_a, map_b;
    ARWKV__TRY(arwkv__wg_tensor_map(g, &map_a, pa, M, K, kp, ARWKV__WG_BM));
    ARWKV__TRY(arwkv__wg_tensor_map(g, &map_b, pb, N, K, ldb, bn));
    long long tiles = (long long)p.tiles_m * p.tiles_n * p.slices;
    unsigned grid = (unsigned)(tiles < sms ? tiles : sms);
    if (bn == 256)
        arwkv__gemm_wgmma_kernel<256><<<grid, ARWKV__WG_THREADS, arwkv__wg_cfg<256>::SMEM, g->stream>>>(map_a, map_b, p);
    else
        arwkv__gemm_wgmma_kernel<128><<<grid, ARWKV__WG_THREADS, arwkv__wg_cfg<128>::SMEM, g->stream>>>(map_a, map_b, p);
    ARWKV__TRY(arwkv__hip_launched("matrix product (wgmma)"));
    if (p.slices > 1) {
        ARWKV__LAUNCH(arwkv__gemm_reduce_kernel, arwkv__hip_blocks(g, (size_t)M * N), 256, g->stream, p.partial, p.slices, M, N, C,
                      (long long)ldc, accumulate, bias);
        ARWKV__TRY(arwkv__hip_launched("matrix product (sum of the K slices)"));
    }
    return ARWKV_OK;
}

/* At backend creation: the wgmma path is used when the device is Hopper (9.0), this build carries
   its sm_90a code (probed), the driver offers the tensor-map encoder, and the kernel may have the
   shared memory it needs. Any missing piece leaves the portable path in charge. */
ARWKV_PRIVATE void arwkv__wg_setup(arwkv__gpu *g, int probed) {
    g->has_wgmma = 0;
    if (!probed || g->prop.major != 9 || g->prop.minor != 0) return;
    if ((size_t)g->prop.sharedMemPerBlockOptin < (size_t)arwkv__wg_cfg<256>::SMEM) return;
    void *fn = NULL;
    cudaDriverEntryPointQueryResult q;
    if (cudaGetDriverEntryPointByVersion("cuTensorMapEncodeTiled", &fn, 12000, cudaEnableDefault, &q) != cudaSuccess || !fn ||
        q != cudaDriverEntryPointSuccess) {
        (void)cudaGetLastError();
        return;
    }
    if (cudaFuncSetAttribute(arwkv__gemm_wgmma_kernel<256>, cudaFuncAttributeMaxDynamicSharedMemorySize, arwkv__wg_cfg<256>::SMEM) != cudaSuccess ||
        cudaFuncSetAttribute(arwkv__gemm_wgmma_kernel<128>, cudaFuncAttributeMaxDynamicSharedMemorySize, arwkv__wg_cfg<128>::SMEM) != cudaSuccess) {
        (void)cudaGetLastError();
        return;
    }
    g->encode_tiled = fn;
    g->has_wgmma = 1;
}
#endif

ARWKV_PRIVATE arwkv_result arwkv__hip_gemm(arwkv_backend *be, int M, int N, int K, const float *A, ptrdiff_t a_rs, ptrdiff_t a_cs,
                                    const void *B, arwkv_dtype b_type, ptrdiff_t b_rs, ptrdiff_t b_cs, float *C, ptrdiff_t ldc,
                                    int accumulate, const float *bias) {
    arwkv__gpu *g = ARWKV__G(be);
    ARWKV__TRY(arwkv__float_type_check(b_type, "matrix product B"));
    if (M <= 0 || N <= 0) return ARWKV_OK;
    if ((M + ARWKV__GM_TILE - 1) / ARWKV__GM_TILE > 65535)
        return arwkv__fail(ARWKV_ERR_UNSUPPORTED, "GPU matrix product: %d rows is more than 65535 tiles of %d; split the call", M,
                           ARWKV__GM_TILE);
    if (K < 0) K = 0;
    arwkv__gemm_params p;
    memset(&p, 0, sizeof p);
    size_t esize = arwkv_dtype_size(b_type);
    p.a.p = A, p.a.rs = a_rs, p.a.ks = a_cs, p.a.rows = M, p.a.K = K, p.a.mode = arwkv__tile_mode(A, a_rs, a_cs, 4);
    p.b.p = B, p.b.rs = b_cs, p.b.ks = b_rs, p.b.rows = N, p.b.K = K, p.b.mode = arwkv__tile_mode(B, b_cs, b_rs, esize);
    p.M = M, p.N = N, p.K = K, p.C = C, p.ldc = ldc, p.accumulate = accumulate, p.bias = bias;
#if defined(ARWKV__WGMMA_HOST)
    if (g->has_wgmma && !g->gemm_fp32 && K > 0 && (double)M * N * K >= g->wgmma_min_macs)
        return arwkv__hip_gemm_wgmma(g, M, N, K, A, a_rs, a_cs, B, b_type, b_rs, b_cs, C, ldc, accumulate, bias);
#endif
    int slices = arwkv__gemm_slices(M, N, K, ARWKV__GM_K, &p.kslice);
    if (slices > 1) {
        void *part = NULL;
        ARWKV__TRY(arwkv__hip_scratch(g, (size_t)slices * M * N * sizeof(float), &part));
        p.partial = (float *)part;
    }
    dim3 grid((unsigned)((N + ARWKV__GM_TILE - 1) / ARWKV__GM_TILE), (unsigned)((M + ARWKV__GM_TILE - 1) / ARWKV__GM_TILE), (unsigned)slices);
    int mma = g->has_mma && !g->gemm_fp32;
#define ARWKV__GEMM_LAUNCH(T)                                                                                 \
    do {                                                                                                      \
        if (mma) ARWKV__LAUNCH(arwkv__gemm_mma_kernel<T>, grid, ARWKV__GM_THREADS, g->stream, p);                    \
        else ARWKV__LAUNCH(arwkv__gemm_simt_kernel<T>, grid, ARWKV__GM_THREADS, g->stream, p);                       \
    } while (0)
    if (b_type == ARWKV_F32) ARWKV__GEMM_LAUNCH(ARWKV__T_F32);
    else if (b_type == ARWKV_BF16) ARWKV__GEMM_LAUNCH(ARWKV__T_BF16);
    else ARWKV__GEMM_LAUNCH(ARWKV__T_F16);
#undef ARWKV__GEMM_LAUNCH
    ARWKV__TRY(arwkv__hip_launched(mma ? "matrix product (matrix units)" : "matrix product (SIMT)"));
    if (slices > 1) {
        ARWKV__LAUNCH(arwkv__gemm_reduce_kernel, arwkv__hip_blocks(g, (size_t)M * N), 256, g->stream, p.partial, slices, M, N, C,
                      (long long)ldc, accumulate, bias);
        ARWKV__TRY(arwkv__hip_launched("matrix product (sum of the K slices)"));
    }
    return ARWKV_OK;
}

/* Which kernel the matrix products take, in words (arwkv-gpu-info, arwkv-bench). */
ARWKV_PRIVATE const char *arwkv__hip_gemm_path_name(const arwkv__gpu *g) {
    if (g->gemm_fp32) return "fp32 SIMT (ARWKV_GPU_GEMM=fp32)";
    if (g->has_wgmma) return "bf16 wgmma (sm_90a: tensor copy engine, persistent grid), mma.sync below 4M multiply-adds; fp32 accumulation";
    if (g->has_mma) return "bf16 on the matrix units (mma.sync / MFMA), fp32 accumulation";
    return "fp32 SIMT (no matrix units in this build)";
}

/* ============================================================================================
   Core ops: embedding, RMSNorm, SwiGLU, axpy
   ============================================================================================ */

/* Run a statement with T bound to the element type t (F32, BF16 or F16) as a template constant. */
#define ARWKV__WITH_TYPE(t, T, stmt)                       \
    do {                                                   \
        if ((t) == ARWKV_BF16) {                           \
            const int T = ARWKV__T_BF16;                   \
            stmt;                                          \
        } else if ((t) == ARWKV_F16) {                     \
            const int T = ARWKV__T_F16;                    \
            stmt;                                          \
        } else {                                           \
            const int T = ARWKV__T_F32;                    \
            stmt;                                          \
        }                                                  \
    } while (0)

/* ---- Embedding ----------------------------------------------------------------------------------
   forward: one block per token copies its row. backward: one thread per column walks the tokens
   in order, so equal ids add up in the same order as on the CPU (bit-identical) and never race. */
template <int T> __global__ void arwkv__embed_fwd_kernel(float *out, const int32_t *ids, const void *table, int C) {
    long long t = blockIdx.x, row = ids[t];
    for (int i = threadIdx.x; i < C; i += blockDim.x) out[t * C + i] = arwkv__dev_load<T>(table, row * C + i);
}

__global__ void arwkv__embed_bwd_kernel(float *dtable, const int32_t *ids, int T, const float *dout, int C) {
    int c = blockIdx.x * blockDim.x + threadIdx.x;
    if (c >= C) return;
    for (int t = 0; t < T; t++) dtable[(long long)ids[t] * C + c] += dout[(long long)t * C + c];
}

ARWKV_PRIVATE arwkv_result arwkv__hip_embed_forward(arwkv_backend *be, float *out, const int32_t *ids, int T, const void *table,
                                             arwkv_dtype type, int C) {
    if (T <= 0 || C <= 0) return ARWKV_OK;
    ARWKV__TRY(arwkv__float_type_check(type, "embedding"));
    ARWKV__WITH_TYPE(type, TT, (ARWKV__LAUNCH(arwkv__embed_fwd_kernel<TT>, T, 256, ARWKV__G(be)->stream, out, ids, table, C)));
    return arwkv__hip_launched("embedding forward");
}

ARWKV_PRIVATE arwkv_result arwkv__hip_embed_backward(arwkv_backend *be, float *dtable, const int32_t *ids, int T, const float *dout, int C) {
    if (T <= 0 || C <= 0) return ARWKV_OK;
    ARWKV__LAUNCH(arwkv__embed_bwd_kernel, (C + 255) / 256, 256, ARWKV__G(be)->stream, dtable, ids, T, dout, C);
    return arwkv__hip_launched("embedding backward");
}

/* ---- RMSNorm -------------------------------------------------------------------------------------
   y = x r w, r = 1/sqrt(mean(x^2) + eps): one block per row, the sum of squares in float64 as on
   the CPU. Backward: dx = r w dy - x r^3/C sum(dy w x) per row (one block each); dw += sum over
   rows of dy x r, by 32 columns x 8 row-lanes per block, the 8 partial sums added in lane order. */
template <int T> __global__ void arwkv__rms_fwd_kernel(float *out, float *rstd, const float *x, const void *w, int C, float eps) {
    __shared__ double sh[32];
    long long t = blockIdx.x;
    const float *xr = x + t * C;
    float *yr = out + t * C;
    double ss = 0;
    for (int i = threadIdx.x; i < C; i += blockDim.x) ss += (double)xr[i] * xr[i];
    ss = arwkv__block_sum(ss, sh);
    float r = (float)(1.0 / sqrt(ss / C + eps));
    if (rstd && threadIdx.x == 0) rstd[t] = r;
    for (int i = threadIdx.x; i < C; i += blockDim.x) yr[i] = xr[i] * r * arwkv__dev_load<T>(w, i);
}

template <int T>
__global__ void arwkv__rms_bwd_dx_kernel(float *dx, const float *dout, const float *x, const void *w, const float *rstd, int C, int accumulate) {
    __shared__ double sh[32];
    long long t = blockIdx.x;
    const float *xr = x + t * C, *dy = dout + t * C;
    float *d = dx + t * C, r = rstd[t];
    double dot = 0;
    for (int i = threadIdx.x; i < C; i += blockDim.x) dot += (double)dy[i] * arwkv__dev_load<T>(w, i) * xr[i];
    dot = arwkv__block_sum(dot, sh);
    float k = (float)(dot * r * r * r / C);
    for (int i = threadIdx.x; i < C; i += blockDim.x) {
        float gi = r * arwkv__dev_load<T>(w, i) * dy[i] - xr[i] * k;
        d[i] = accumulate ? d[i] + gi : gi;
    }
}

__global__ void arwkv__rms_bwd_dw_kernel(float *dw, const float *dout, const float *x, const float *rstd, int T, int C) {
    __shared__ float part[8][33];
    int c = threadIdx.x % 32, lane = threadIdx.x / 32, col = blockIdx.x * 32 + c;
    float s = 0;
    if (col < C)
        for (int t = lane; t < T; t += 8) s += dout[(long long)t * C + col] * x[(long long)t * C + col] * rstd[t];
    part[lane][c] = s;
    __syncthreads();
    if (lane == 0 && col < C) {
        float total = part[0][c];
        for (int l = 1; l < 8; l++) total += part[l][c];
        dw[col] += total;
    }
}

ARWKV_PRIVATE arwkv_result arwkv__hip_rmsnorm_forward(arwkv_backend *be, float *out, float *rstd, const float *x, const void *w,
                                               arwkv_dtype w_type, int T, int C, float eps) {
    if (T <= 0 || C <= 0) return ARWKV_OK;
    ARWKV__TRY(arwkv__float_type_check(w_type, "RMSNorm"));
    ARWKV__WITH_TYPE(w_type, TT, (ARWKV__LAUNCH(arwkv__rms_fwd_kernel<TT>, T, 256, ARWKV__G(be)->stream, out, rstd, x, w, C, eps)));
    return arwkv__hip_launched("RMSNorm forward");
}

ARWKV_PRIVATE arwkv_result arwkv__hip_rmsnorm_backward(arwkv_backend *be, float *dx, float *dw, const float *dout, const float *x,
                                                const void *w, arwkv_dtype w_type, const float *rstd, int T, int C,
                                                int accumulate_dx) {
    if (T <= 0 || C <= 0) return ARWKV_OK;
    ARWKV__TRY(arwkv__float_type_check(w_type, "RMSNorm"));
    hipStream_t s = ARWKV__G(be)->stream;
    if (dx) {
        ARWKV__WITH_TYPE(w_type, TT, (ARWKV__LAUNCH(arwkv__rms_bwd_dx_kernel<TT>, T, 256, s, dx, dout, x, w, rstd, C, accumulate_dx)));
        ARWKV__TRY(arwkv__hip_launched("RMSNorm backward (dx)"));
    }
    if (dw) {
        ARWKV__LAUNCH(arwkv__rms_bwd_dw_kernel, (C + 31) / 32, 256, s, dw, dout, x, rstd, T, C);
        ARWKV__TRY(arwkv__hip_launched("RMSNorm backward (dw)"));
    }
    return ARWKV_OK;
}

/* ---- Elementwise: SwiGLU, axpy -------------------------------------------------------------------- */
__global__ void arwkv__swiglu_fwd_kernel(float *out, const float *gate, const float *up, size_t n) {
    ARWKV__GRID_LOOP(i, n) {
        float g = gate[i];
        out[i] = g / (1.0f + expf(-g)) * up[i];
    }
}

__global__ void arwkv__swiglu_bwd_kernel(float *dgate, float *dup, const float *dout, const float *gate, const float *up, size_t n) {
    ARWKV__GRID_LOOP(i, n) {
        float g = gate[i], u = up[i], s = 1.0f / (1.0f + expf(-g)), d = dout[i];
        dup[i] = d * g * s; /* inputs are read first: dgate/dup may alias gate/up (the MLP's backward) */
        dgate[i] = d * u * s * (1.0f + g * (1.0f - s));
    }
}

__global__ void arwkv__axpy_kernel(float *y, float alpha, const float *x, size_t n) {
    ARWKV__GRID_LOOP(i, n) y[i] += alpha * x[i];
}

ARWKV_PRIVATE arwkv_result arwkv__hip_swiglu_forward(arwkv_backend *be, float *out, const float *gate, const float *up, size_t n) {
    if (!n) return ARWKV_OK;
    arwkv__gpu *g = ARWKV__G(be);
    ARWKV__LAUNCH(arwkv__swiglu_fwd_kernel, arwkv__hip_blocks(g, n), 256, g->stream, out, gate, up, n);
    return arwkv__hip_launched("SwiGLU forward");
}

ARWKV_PRIVATE arwkv_result arwkv__hip_swiglu_backward(arwkv_backend *be, float *dgate, float *dup, const float *dout, const float *gate,
                                               const float *up, size_t n) {
    if (!n) return ARWKV_OK;
    arwkv__gpu *g = ARWKV__G(be);
    ARWKV__LAUNCH(arwkv__swiglu_bwd_kernel, arwkv__hip_blocks(g, n), 256, g->stream, dgate, dup, dout, gate, up, n);
    return arwkv__hip_launched("SwiGLU backward");
}

ARWKV_PRIVATE arwkv_result arwkv__hip_axpy(arwkv_backend *be, float *y, float alpha, const float *x, size_t n) {
    if (!n) return ARWKV_OK;
    arwkv__gpu *g = ARWKV__G(be);
    ARWKV__LAUNCH(arwkv__axpy_kernel, arwkv__hip_blocks(g, n), 256, g->stream, y, alpha, x, n);
    return arwkv__hip_launched("axpy");
}

static const arwkv_core_ops arwkv__hip_core_ops = {
    arwkv__hip_gemm,          arwkv__hip_embed_forward,  arwkv__hip_embed_backward, arwkv__hip_rmsnorm_forward,
    arwkv__hip_rmsnorm_backward, arwkv__hip_swiglu_forward, arwkv__hip_swiglu_backward, arwkv__hip_axpy};

/* ============================================================================================
   Loss ops
   ============================================================================================ */

/* ---- Stage 1: alignment, one block per row (the formulas of the CPU backend, in float64) ---- */
__global__ void arwkv__align_kernel(int kind, const float *o_all, const float *a_all, int C, float scale, float *loss, float *dout) {
    __shared__ double sh[32];
    long long r = blockIdx.x;
    const float *o = o_all + r * C, *a = a_all + r * C;
    float *g = dout ? dout + r * C : NULL;
    double l;
    if (kind == ARWKV_ALIGN_COSINE) {
        double oa = 0, oo = 0, aa = 0;
        for (int i = threadIdx.x; i < C; i += blockDim.x) oa += (double)o[i] * a[i], oo += (double)o[i] * o[i], aa += (double)a[i] * a[i];
        oa = arwkv__block_sum(oa, sh);
        oo = arwkv__block_sum(oo, sh);
        aa = arwkv__block_sum(aa, sh);
        double no = sqrt(oo) + ARWKV__ALIGN_COSINE_EPS, na = sqrt(aa) + ARWKV__ALIGN_COSINE_EPS;
        l = 1 - oa / (no * na);
        if (g)
            for (int i = threadIdx.x; i < C; i += blockDim.x) g[i] = (float)(scale * -(a[i] / (no * na) - oa * o[i] / (no * no * no * na)));
    } else {
        double ss = 0;
        for (int i = threadIdx.x; i < C; i += blockDim.x) ss += ((double)o[i] - a[i]) * ((double)o[i] - a[i]);
        ss = arwkv__block_sum(ss, sh);
        if (kind == ARWKV_ALIGN_L2) {
            double n = sqrt(ss), k = n > 0 ? scale / (n * sqrt((double)C)) : 0;
            l = n / sqrt((double)C);
            if (g)
                for (int i = threadIdx.x; i < C; i += blockDim.x) g[i] = (float)(k * ((double)o[i] - a[i]));
        } else {
            l = ss / C;
            if (g)
                for (int i = threadIdx.x; i < C; i += blockDim.x) g[i] = (float)(scale * 2.0 * ((double)o[i] - a[i]) / C);
        }
    }
    if (threadIdx.x == 0) loss[r] = (float)l;
}

ARWKV_PRIVATE arwkv_result arwkv__hip_align(arwkv_backend *be, arwkv_align_kind kind, const float *o, const float *a, int rows, int C,
                                     float grad_scale, float *loss, float *dout) {
    if (rows <= 0) return ARWKV_OK;
    ARWKV__TRY(arwkv__align_check(kind));
    ARWKV__LAUNCH(arwkv__align_kernel, rows, 256, ARWKV__G(be)->stream, (int)kind, o, a, C, grad_scale, loss, dout);
    return arwkv__hip_launched("alignment loss");
}

/* ---- Stages 2 and 3: KL and cross-entropy over the vocabulary, one block of 512 per row ----------
   Three passes over the row, as the CPU backend's formulas: the maxima of s and t; the partition
   functions zq = sum exp((s-ms)/tau), zp = sum exp((t-mt)/tau) (and z1 = sum exp(s-ms) for the
   cross-entropy at a temperature other than 1), summed in float64; then the KL terms and the
   gradient, written over s in place (each thread reads s[i] before it writes it). */
#define ARWKV__LOGITS_THREADS 512
__global__ void __launch_bounds__(ARWKV__LOGITS_THREADS)
    arwkv__logits_kernel(float *s_all, const float *t_all, const int32_t *labels, int V, float tau, float kl_w, float ce_w,
                         float scale, float *kl_out, float *ce_out) {
    __shared__ double shd[32];
    __shared__ float shf[32];
    long long r = blockIdx.x;
    float *s = s_all + r * V;
    const float *t = t_all ? t_all + r * V : NULL;
    int label = labels ? labels[r] : -1, use_ce = label >= 0 && label < V && ce_w != 0;
    float inv_tau = 1.0f / tau, ms = -INFINITY, mt = -INFINITY;
    for (int i = threadIdx.x; i < V; i += blockDim.x) {
        ms = s[i] > ms ? s[i] : ms;
        if (t) mt = t[i] > mt ? t[i] : mt;
    }
    ms = arwkv__block_max(ms, shf);
    mt = t ? arwkv__block_max(mt, shf) : 0.0f;
    float s_label = use_ce ? s[label] : 0.0f;
    double zq = 0, zp = 0, z1 = 0;
    for (int i = threadIdx.x; i < V; i += blockDim.x) {
        zq += expf((s[i] - ms) * inv_tau);
        if (t) zp += expf((t[i] - mt) * inv_tau);
        if (use_ce && tau != 1.0f) z1 += expf(s[i] - ms);
    }
    zq = arwkv__block_sum(zq, shd);
    zp = t ? arwkv__block_sum(zp, shd) : 1.0;
    z1 = (use_ce && tau != 1.0f) ? arwkv__block_sum(z1, shd) : zq;
    double lzp = log(zp), lzq = log(zq), kl = 0;
    double kq = t ? kl_w * tau / zq : 0, kp = t ? kl_w * tau / zp : 0, k1 = use_ce ? ce_w / z1 : 0;
    __syncthreads(); /* every thread has read s[label] before anyone overwrites it */
    for (int i = threadIdx.x; i < V; i += blockDim.x) {
        float si = s[i], eq = expf((si - ms) * inv_tau), ep = 0.0f, e1 = 0.0f;
        if (t) {
            float ti = t[i];
            ep = expf((ti - mt) * inv_tau);
            if (ep > 0) kl += (double)ep * (((double)(ti - mt) - (double)(si - ms)) * inv_tau - lzp + lzq);
        }
        if (use_ce) e1 = tau == 1.0f ? eq : expf(si - ms);
        float gi = (float)(scale * (kq * eq - kp * ep + k1 * e1));
        if (use_ce && i == label) gi -= (float)(scale * ce_w);
        s[i] = gi;
    }
    if (t) kl = arwkv__block_sum(kl, shd);
    if (threadIdx.x == 0) {
        if (kl_out) kl_out[r] = t ? (float)(kl / zp * tau * tau) : 0.0f;
        if (ce_out) ce_out[r] = use_ce ? (float)(log(z1) - (double)(s_label - ms)) : 0.0f;
    }
}

ARWKV_PRIVATE arwkv_result arwkv__hip_logits_loss(arwkv_backend *be, float *s, const float *t, const int32_t *labels, int rows, int V,
                                           float tau, float kl_weight, float ce_weight, float grad_scale, float *kl, float *ce) {
    ARWKV__TRY(arwkv__logits_loss_check(tau));
    if (rows <= 0 || V <= 0) return ARWKV_OK;
    ARWKV__LAUNCH(arwkv__logits_kernel, rows, ARWKV__LOGITS_THREADS, ARWKV__G(be)->stream, s, t, labels, V, tau, t ? kl_weight : 0.0f,
                                                                                   labels ? ce_weight : 0.0f, grad_scale, kl, ce);
    return arwkv__hip_launched("logits loss");
}

static const arwkv_loss_ops arwkv__hip_loss_ops = {arwkv__hip_align, arwkv__hip_logits_loss};

/* ============================================================================================
   Optimizer ops
   ============================================================================================ */

/* Sum of squares in two passes of fixed shape (partial sums per block, then one block adds them in
   block order): the same n gives the same bits, whatever else runs. */
__global__ void arwkv__sumsq_partial_kernel(const float *g, size_t n, double *partial) {
    __shared__ double sh[32];
    double s = 0;
    ARWKV__GRID_LOOP(i, n) s += (double)g[i] * g[i];
    s = arwkv__block_sum(s, sh);
    if (threadIdx.x == 0) partial[blockIdx.x] = s;
}

__global__ void arwkv__sumsq_final_kernel(const double *partial, int n, float *out) {
    __shared__ double sh[32];
    double s = 0;
    for (int i = threadIdx.x; i < n; i += blockDim.x) s += partial[i];
    s = arwkv__block_sum(s, sh);
    if (threadIdx.x == 0) out[0] = (float)s;
}

/* out is HOST memory: the trainer needs the norm at once to decide on clipping. */
ARWKV_PRIVATE arwkv_result arwkv__hip_sumsq(arwkv_backend *be, const float *g, size_t n, float *out) {
    arwkv__gpu *gp = ARWKV__G(be);
    if (!n) {
        out[0] = 0;
        return ARWKV_OK;
    }
    size_t want = (n + 2047) / 2048; /* at least 8 elements a thread before a block is added */
    int blocks = (int)(want < ARWKV__REDUCE_BLOCKS ? want : ARWKV__REDUCE_BLOCKS);
    ARWKV__LAUNCH(arwkv__sumsq_partial_kernel, blocks, 256, gp->stream, g, n, gp->partial);
    ARWKV__TRY(arwkv__hip_launched("sum of squares"));
    ARWKV__LAUNCH(arwkv__sumsq_final_kernel, 1, 256, gp->stream, gp->partial, blocks, gp->scalar);
    ARWKV__TRY(arwkv__hip_launched("sum of squares"));
    return arwkv__hip_download(be, out, gp->scalar, sizeof(float));
}

__global__ void arwkv__scale_kernel(float *x, float s, size_t n) {
    ARWKV__GRID_LOOP(i, n) x[i] *= s;
}

ARWKV_PRIVATE arwkv_result arwkv__hip_scale(arwkv_backend *be, float *x, float s, size_t n) {
    if (!n) return ARWKV_OK;
    arwkv__gpu *g = ARWKV__G(be);
    ARWKV__LAUNCH(arwkv__scale_kernel, arwkv__hip_blocks(g, n), 256, g->stream, x, s, n);
    return arwkv__hip_launched("scale");
}

__global__ void arwkv__adamw_kernel(float *p, const float *g, float *m, float *v, size_t n, float lr, float b1, float b2, float eps,
                                    float wd, float bc1, float bc2) {
    ARWKV__GRID_LOOP(i, n) {
        float gi = g[i], mi = b1 * m[i] + (1 - b1) * gi, vi = b2 * v[i] + (1 - b2) * gi * gi;
        m[i] = mi;
        v[i] = vi;
        float mh = mi / bc1, vh = vi / bc2;
        p[i] -= lr * (mh / (sqrtf(vh) + eps) + wd * p[i]);
    }
}

ARWKV_PRIVATE arwkv_result arwkv__hip_adamw(arwkv_backend *be, float *p, const float *g, float *m, float *v, size_t n, float lr, float b1,
                                     float b2, float eps, float wd, int step) {
    if (!n) return ARWKV_OK;
    arwkv__gpu *gp = ARWKV__G(be);
    float bc1 = (float)(1.0 - pow((double)b1, (double)step)), bc2 = (float)(1.0 - pow((double)b2, (double)step));
    ARWKV__LAUNCH(arwkv__adamw_kernel, arwkv__hip_blocks(gp, n), 256, gp->stream, p, g, m, v, n, lr, b1, b2, eps, wd, bc1, bc2);
    return arwkv__hip_launched("AdamW");
}

static const arwkv_optim_ops arwkv__hip_optim_ops = {arwkv__hip_sumsq, arwkv__hip_scale, arwkv__hip_adamw};

/* ============================================================================================
   Qwen2 attention ops (the teacher: forward only)
   ============================================================================================ */

/* ---- Rotary embedding ---------------------------------------------------------------------------
   The CPU backend's roundings exactly: inverse frequencies formed on the host (as there) and passed
   by value; angle = fp32(pos) * inv_freq in fp32, cos and sin in float64 of that fp32 angle; the four
   products rounded separately (no fused multiply-add), as transformers computes them. */
#define ARWKV__ROPE_MAX_HALF (ARWKV__ROPE_MAX_DIM / 2)
typedef struct arwkv__rope_freqs {
    float inv_freq[ARWKV__ROPE_MAX_HALF];
} arwkv__rope_freqs;

__global__ void arwkv__rope_kernel(float *x, int n_heads, int head_dim, long long ld, const int32_t *pos, int pos0,
                                   arwkv__rope_freqs f) {
    long long r = blockIdx.x;
    int half = head_dim / 2;
    float p = (float)(pos ? pos[r] : pos0 + (int)r);
    float *row = x + r * ld;
    for (int u = threadIdx.x; u < n_heads * half; u += blockDim.x) {
        int h = u / half, i = u % half;
        float angle = __fmul_rn(p, f.inv_freq[i]), cs = (float)cos((double)angle), sn = (float)sin((double)angle);
        float *x1 = row + (long long)h * head_dim + i, *x2 = x1 + half;
        float a = *x1, b = *x2;
        *x1 = __fsub_rn(__fmul_rn(a, cs), __fmul_rn(b, sn));
        *x2 = __fadd_rn(__fmul_rn(b, cs), __fmul_rn(a, sn));
    }
}

ARWKV_PRIVATE arwkv_result arwkv__hip_rope_forward(arwkv_backend *be, float *x, int rows, int n_heads, int head_dim, ptrdiff_t ld,
                                            const int32_t *pos, int pos0, double theta) {
    ARWKV__TRY(arwkv__rope_check(rows, n_heads, head_dim, ld, theta));
    if (rows == 0) return ARWKV_OK;
    arwkv__rope_freqs f;
    memset(&f, 0, sizeof f);
    float base = (float)theta;
    for (int i = 0; i < head_dim / 2; i++) {
        float exponent = (float)(2 * i) / (float)head_dim;
        f.inv_freq[i] = 1.0f / (float)pow((double)base, (double)exponent);
    }
    ARWKV__LAUNCH(arwkv__rope_kernel, rows, 256, ARWKV__G(be)->stream, x, n_heads, head_dim, (long long)ld, pos, pos0, f);
    return arwkv__hip_launched("rope");
}

/* ---- Causal grouped-query attention ----------------------------------------------------------------
   Flash-style, in fp32 on the SIMT cores. A block of 256 threads owns QB query rows of one head of
   one sequence; each warp owns QB / (warps per block) of those rows. Keys and values come in tiles
   of KB rows staged in shared memory, and for each tile:
     scores   lane j of a warp takes key j of the tile: s = q . k_j / sqrt(D), masked by causality
     softmax  the warp's maximum and sum update the running max m and sum l of each row; the
              row's accumulator is rescaled by exp(m_old - m_new)
     P.V      lanes split the head dimension: acc[d] += sum_j p_j v_j[d]
   Shapes by head size (all within 48 KiB of shared memory, so no opt-in is needed on either
   vendor): D <= 64: 32 rows, tiles of 32 keys; D <= 128: 16 rows, 32 keys; D <= 256: 8 rows, 16 keys. */
template <int DMAX> struct arwkv__att_shape {
    enum { QB = DMAX <= 64 ? 32 : DMAX <= 128 ? 16 : 8, KB = DMAX <= 128 ? 32 : 16 };
};

template <int DMAX>
__global__ void __launch_bounds__(256) arwkv__attention_kernel(float *out, const float *q, const float *k, const float *v, int Tq, int p0,
                                                               int H, int Hkv, int D, long long kv_bs, float scale) {
    enum { QB = arwkv__att_shape<DMAX>::QB, KB = arwkv__att_shape<DMAX>::KB, NW = 256 / ARWKV__WARP, R = QB / NW,
           E = (DMAX + ARWKV__WARP - 1) / ARWKV__WARP };
    __shared__ float Qs[QB][DMAX], Ks[KB][DMAX + 1], Vs[KB][DMAX], Ps[QB][KB];
    const int tid = threadIdx.x, warp = tid / ARWKV__WARP, lane = tid % ARWKV__WARP;
    const int i0 = blockIdx.x * QB, h = blockIdx.y, b = blockIdx.z, g = h / (H / Hkv);
    const long long q_ld = (long long)H * D, kv_ld = (long long)Hkv * D;
    const int n_rows = Tq - i0 < QB ? Tq - i0 : QB;
    for (int u = tid; u < QB * D; u += 256) {
        int r = u / D, d = u % D;
        Qs[r][d] = r < n_rows ? q[((long long)b * Tq + i0 + r) * q_ld + (long long)h * D + d] : 0.0f;
    }
    float m[R], l[R], acc[R][E];
#pragma unroll
    for (int r = 0; r < R; r++) {
        m[r] = -INFINITY, l[r] = 0.0f;
#pragma unroll
        for (int e = 0; e < E; e++) acc[r][e] = 0.0f;
    }
    const float *kb_ = k + (long long)b * kv_bs + (long long)g * D, *vb_ = v + (long long)b * kv_bs + (long long)g * D;
    const int n_keys = p0 + i0 + n_rows; /* the block's last row sees keys 0 .. n_keys-1 */
    for (int j0 = 0; j0 < n_keys; j0 += KB) {
        const int kb = n_keys - j0 < KB ? n_keys - j0 : KB;
        __syncthreads(); /* the previous tile is no longer read */
        for (int u = tid; u < KB * D; u += 256) {
            int j = u / D, d = u % D;
            float kv = 0.0f, vv = 0.0f;
            if (j < kb) kv = kb_[(long long)(j0 + j) * kv_ld + d], vv = vb_[(long long)(j0 + j) * kv_ld + d];
            Ks[j][d] = kv, Vs[j][d] = vv;
        }
        __syncthreads();
        float alpha[R];
#pragma unroll
        for (int r = 0; r < R; r++) {
            const int row = warp * R + r, qi = p0 + i0 + row; /* absolute position of the query */
            alpha[r] = 1.0f;
            if (row >= n_rows) continue; /* warp-uniform */
            float s = -INFINITY;
            if (lane < kb && j0 + lane <= qi) {
                float dot = 0.0f;
                for (int d = 0; d < D; d++) dot += Qs[row][d] * Ks[lane][d];
                s = dot * scale;
            }
            float m_new = arwkv__warp_max(s);
            m_new = m_new > m[r] ? m_new : m[r];
            float p = s == -INFINITY ? 0.0f : expf(s - m_new);
            alpha[r] = expf(m[r] - m_new); /* 0 on the first tile, where m is -inf */
            l[r] = l[r] * alpha[r] + arwkv__warp_sum(p);
            m[r] = m_new;
            if (lane < KB) Ps[row][lane] = p;
        }
        __syncthreads();
#pragma unroll
        for (int r = 0; r < R; r++) {
            const int row = warp * R + r;
            if (row >= n_rows) continue;
#pragma unroll
            for (int e = 0; e < E; e++) {
                int d = e * ARWKV__WARP + lane;
                float a = acc[r][e] * alpha[r];
                if (d < D)
                    for (int j = 0; j < kb; j++) a += Ps[row][j] * Vs[j][d];
                acc[r][e] = a;
            }
        }
    }
#pragma unroll
    for (int r = 0; r < R; r++) {
        const int row = warp * R + r;
        if (row >= n_rows) continue;
        float inv = 1.0f / l[r];
        float *o = out + ((long long)b * Tq + i0 + row) * q_ld + (long long)h * D;
#pragma unroll
        for (int e = 0; e < E; e++) {
            int d = e * ARWKV__WARP + lane;
            if (d < D) o[d] = acc[r][e] * inv;
        }
    }
}

#define ARWKV__ATT_GPU_MAX_D 256

/* ---- Causal grouped-query attention on the tensor cores (mma.sync, NVIDIA) ------------------------
   The same function as the kernel above for head sizes 64 and 128 with bf16 operands: Q, K and V
   are rounded to bf16 as they are staged (Q pre-scaled by log2(e)/sqrt(D), so that the softmax uses
   exp2), scores and the output accumulate in fp32 and the online softmax (running max and sum per
   row) is fp32. A block of 4 warps owns 64 query rows of one head of one sequence, 16 per warp;
   keys come in tiles of 64: K as [key][d] and V transposed as [d][key] in shared memory, which are
   the layouts the m16n8k16 B fragment reads with 32-bit loads.
     S = Q K^T   per warp 16 x 64: 8 column groups x D/16 products; masked by causality
     softmax     each thread holds rows g and g+8 of its quad's columns: the max is shared over
                 the quad with two shuffles; the sum stays per thread until the end
     O += P V    the S accumulators are already P's A fragments once packed to bf16 (two column
                 groups of 8 make one 16-wide k step) */
#define ARWKV__ATT_MMA_QB 64 /* query rows per block */
#define ARWKV__ATT_MMA_KB 64 /* keys per tile */

template <int D>
__global__ void __launch_bounds__(128) arwkv__attention_mma_kernel(float *out, const float *q, const float *k, const float *v, int Tq, int p0,
                                                                   int H, int Hkv, long long kv_bs, float scale_log2) {
#if defined(ARWKV__MMA_SYNC)
    /* bf16 pairs as 32-bit words: K as [key][d], V as [d][key], rows padded by 4 words (conflict-free fragment reads) */
    __shared__ unsigned Ks[ARWKV__ATT_MMA_KB][D / 2 + 4], Vt[D][ARWKV__ATT_MMA_KB / 2 + 4];
    const int b = blockIdx.z, h = blockIdx.y, q0 = blockIdx.x * ARWKV__ATT_MMA_QB, kvh = h / (H / Hkv);
    const int tid = threadIdx.x, warp = tid / 32, lane = tid % 32, g = lane / 4, t = lane % 4;
    const int Tk = p0 + Tq;
    const long long q_ld = (long long)H * D, kv_ld = (long long)Hkv * D;
    const float *kb = k + b * kv_bs + (long long)kvh * D, *vb = v + b * kv_bs + (long long)kvh * D;
    /* this warp's Q rows as A fragments, scaled and rounded once */
    unsigned qa[D / 16][4];
    const int r0 = q0 + warp * 16 + g;
#pragma unroll
    for (int kk = 0; kk < D / 16; kk++)
#pragma unroll
        for (int j = 0; j < 4; j++) {
            int r = r0 + 8 * (j & 1), c = kk * 16 + 2 * t + 8 * (j >> 1);
            float2 x = r < Tq ? *(const float2 *)(q + ((long long)b * Tq + r) * q_ld + (long long)h * D + c) : make_float2(0.0f, 0.0f);
            qa[kk][j] = arwkv__dev_pack_bf16(x.x * scale_log2, x.y * scale_log2);
        }
    float o[D / 8][4], m[2] = {-INFINITY, -INFINITY}, l[2] = {0.0f, 0.0f};
#pragma unroll
    for (int i = 0; i < D / 8; i++) o[i][0] = o[i][1] = o[i][2] = o[i][3] = 0.0f;
    const int kv_end = Tk < p0 + q0 + ARWKV__ATT_MMA_QB ? Tk : p0 + q0 + ARWKV__ATT_MMA_QB; /* the last query sees keys to p0 + q0 + 63 */
    for (int j0 = 0; j0 < kv_end; j0 += ARWKV__ATT_MMA_KB) {
        __syncthreads(); /* the previous tile is no longer read */
        for (int e = tid; e < ARWKV__ATT_MMA_KB / 2 * D / 4; e += 128) { /* two keys, four channels each */
            int key = 2 * (e / (D / 4)), d = (e % (D / 4)) * 4;
            float4 kx[2], vx[2];
#pragma unroll
            for (int u = 0; u < 2; u++) {
                kx[u] = vx[u] = make_float4(0.0f, 0.0f, 0.0f, 0.0f);
                if (j0 + key + u < Tk) {
                    kx[u] = *(const float4 *)(kb + (long long)(j0 + key + u) * kv_ld + d);
                    vx[u] = *(const float4 *)(vb + (long long)(j0 + key + u) * kv_ld + d);
                }
                Ks[key + u][d / 2] = arwkv__dev_pack_bf16(kx[u].x, kx[u].y), Ks[key + u][d / 2 + 1] = arwkv__dev_pack_bf16(kx[u].z, kx[u].w);
            }
            Vt[d][key / 2] = arwkv__dev_pack_bf16(vx[0].x, vx[1].x), Vt[d + 1][key / 2] = arwkv__dev_pack_bf16(vx[0].y, vx[1].y);
            Vt[d + 2][key / 2] = arwkv__dev_pack_bf16(vx[0].z, vx[1].z), Vt[d + 3][key / 2] = arwkv__dev_pack_bf16(vx[0].w, vx[1].w);
        }
        __syncthreads();
        float s[ARWKV__ATT_MMA_KB / 8][4];
#pragma unroll
        for (int n = 0; n < ARWKV__ATT_MMA_KB / 8; n++) {
            s[n][0] = s[n][1] = s[n][2] = s[n][3] = 0.0f;
#pragma unroll
            for (int kk = 0; kk < D / 16; kk++) {
                unsigned bf[2] = {Ks[n * 8 + g][kk * 8 + t], Ks[n * 8 + g][kk * 8 + t + 4]};
                arwkv__mma_bf16_16816(s[n], qa[kk], bf);
            }
        }
        /* causality and the end of the keys: only tiles reaching past a row's position need it */
        if (j0 + ARWKV__ATT_MMA_KB > p0 + q0 + warp * 16 || j0 + ARWKV__ATT_MMA_KB > Tk) {
#pragma unroll
            for (int n = 0; n < ARWKV__ATT_MMA_KB / 8; n++)
#pragma unroll
                for (int j = 0; j < 4; j++) {
                    int key = j0 + n * 8 + 2 * t + (j & 1), pos = p0 + r0 + 8 * (j >> 1);
                    if (key > pos || key >= Tk) s[n][j] = -INFINITY;
                }
        }
        /* online softmax, rows g (j = 0, 1) and g + 8 (j = 2, 3) */
        float mx[2] = {m[0], m[1]};
#pragma unroll
        for (int n = 0; n < ARWKV__ATT_MMA_KB / 8; n++) {
            mx[0] = fmaxf(mx[0], fmaxf(s[n][0], s[n][1]));
            mx[1] = fmaxf(mx[1], fmaxf(s[n][2], s[n][3]));
        }
#pragma unroll
        for (int i = 0; i < 2; i++) {
            mx[i] = fmaxf(mx[i], ARWKV__SHFL_XOR(mx[i], 1));
            mx[i] = fmaxf(mx[i], ARWKV__SHFL_XOR(mx[i], 2));
        }
        float ref[2], rescale[2];
#pragma unroll
        for (int i = 0; i < 2; i++) {
            ref[i] = mx[i] == -INFINITY ? 0.0f : mx[i]; /* a row with no key yet: nothing to rescale */
            rescale[i] = exp2f(m[i] - ref[i]);
            m[i] = mx[i];
            l[i] *= rescale[i];
        }
#pragma unroll
        for (int i = 0; i < D / 8; i++) o[i][0] *= rescale[0], o[i][1] *= rescale[0], o[i][2] *= rescale[1], o[i][3] *= rescale[1];
#pragma unroll
        for (int n = 0; n < ARWKV__ATT_MMA_KB / 8; n++)
#pragma unroll
            for (int j = 0; j < 4; j++) {
                s[n][j] = exp2f(s[n][j] - ref[j >> 1]);
                l[j >> 1] += s[n][j];
            }
        /* O += P V: keys in steps of 16 (column groups 2kk and 2kk + 1 of S) */
#pragma unroll
        for (int kk = 0; kk < ARWKV__ATT_MMA_KB / 16; kk++) {
            unsigned pa[4] = {arwkv__dev_pack_bf16(s[2 * kk][0], s[2 * kk][1]), arwkv__dev_pack_bf16(s[2 * kk][2], s[2 * kk][3]),
                              arwkv__dev_pack_bf16(s[2 * kk + 1][0], s[2 * kk + 1][1]), arwkv__dev_pack_bf16(s[2 * kk + 1][2], s[2 * kk + 1][3])};
#pragma unroll
            for (int n = 0; n < D / 8; n++) {
                unsigned bf[2] = {Vt[n * 8 + g][kk * 8 + t], Vt[n * 8 + g][kk * 8 + t + 4]};
                arwkv__mma_bf16_16816(o[n], pa, bf);
            }
        }
    }
#pragma unroll
    for (int i = 0; i < 2; i++) {
        l[i] += ARWKV__SHFL_XOR(l[i], 1);
        l[i] += ARWKV__SHFL_XOR(l[i], 2);
    }
#pragma unroll
    for (int i = 0; i < 2; i++) {
        int r = r0 + 8 * i;
        if (r >= Tq) continue;
        float inv = 1.0f / l[i], *dst = out + ((long long)b * Tq + r) * q_ld + (long long)h * D + 2 * t;
#pragma unroll
        for (int n = 0; n < D / 8; n++) *(float2 *)(dst + n * 8) = make_float2(o[n][2 * i] * inv, o[n][2 * i + 1] * inv);
    }
#else
    (void)out, (void)q, (void)k, (void)v, (void)Tq, (void)p0, (void)H, (void)Hkv, (void)kv_bs, (void)scale_log2;
#endif
}

ARWKV_PRIVATE arwkv_result arwkv__hip_attention_forward(arwkv_backend *be, float *out, const float *q, const float *k, const float *v, int B,
                                                 int Tq, int p0, int H, int Hkv, int D, ptrdiff_t kv_batch_stride) {
    ARWKV__TRY(arwkv__attention_check(B, Tq, p0, H, Hkv, D, kv_batch_stride, ARWKV__ATT_GPU_MAX_D, " on the GPU"));
    if (B == 0 || Tq == 0) return ARWKV_OK;
    if (H > 65535 || B > 65535) return arwkv__fail(ARWKV_ERR_UNSUPPORTED, "attention: %d heads x %d sequences is too many for one launch", H, B);
    arwkv__gpu *g = ARWKV__G(be);
    hipStream_t s = g->stream;
    float scale = (float)(1.0 / sqrt((double)D));
    long long bs = (long long)kv_batch_stride;
    /* the tensor cores for head sizes 64 and 128 and more than a few queries (decoding steps stay on
       the SIMT kernel, whose work is spread over the keys); 16-byte aligned rows for vector loads */
    int aligned = ((uintptr_t)q | (uintptr_t)k | (uintptr_t)v | (uintptr_t)out) % 16 == 0 && bs % 4 == 0 && (Hkv * D) % 4 == 0;
    if (g->has_mma_sync && !g->gemm_fp32 && (D == 64 || D == 128) && Tq >= 16 && aligned) {
        dim3 grid((unsigned)((Tq + ARWKV__ATT_MMA_QB - 1) / ARWKV__ATT_MMA_QB), (unsigned)H, (unsigned)B);
        float scale_log2 = (float)(1.4426950408889634 / sqrt((double)D));
        if (D == 64) ARWKV__LAUNCH(arwkv__attention_mma_kernel<64>, grid, 128, s, out, q, k, v, Tq, p0, H, Hkv, bs, scale_log2);
        else ARWKV__LAUNCH(arwkv__attention_mma_kernel<128>, grid, 128, s, out, q, k, v, Tq, p0, H, Hkv, bs, scale_log2);
        return arwkv__hip_launched("attention (tensor cores)");
    }
#define ARWKV__ATT_LAUNCH(DM)                                                                                              \
    do {                                                                                                                   \
        dim3 grid((unsigned)((Tq + arwkv__att_shape<DM>::QB - 1) / arwkv__att_shape<DM>::QB), (unsigned)H, (unsigned)B); \
        ARWKV__LAUNCH(arwkv__attention_kernel<DM>, grid, 256, s, out, q, k, v, Tq, p0, H, Hkv, D, bs, scale);                      \
    } while (0)
    if (D <= 64) ARWKV__ATT_LAUNCH(64);
    else if (D <= 128) ARWKV__ATT_LAUNCH(128);
    else ARWKV__ATT_LAUNCH(256);
#undef ARWKV__ATT_LAUNCH
    return arwkv__hip_launched("attention");
}

static const arwkv_qwen_ops arwkv__hip_qwen_ops = {arwkv__hip_rope_forward, arwkv__hip_attention_forward};

/* ============================================================================================
   RWKV-7 time-mix ops (ARWKV): the formulas of the CPU backend's arwkv_rwkv7_ops
   ============================================================================================
   Parameter gradients are sums over token rows. None uses atomics: a kernel over (head, block of
   rows) keeps float64 partial sums per channel in registers and writes them to scratch memory, and
   a second kernel adds the partial sums of each channel in block order (arwkv__colsum_kernel). The
   number of row blocks depends only on the number of rows, so the result repeats bit for bit.
   The decay scale and the norm floor are arwkv.h's (ARWKV__R7_DECAY_SCALE, ARWKV__R7_NORM_EPS): this
   header is compiled in the same unit as arwkv.h's implementation, so both backends read one number. */

#define ARWKV__R7_ROW_BLOCKS 128 /* most row blocks of a parameter-gradient sum */

ARWKV__DEV float arwkv__dev_sigmoid(float x) { return 1.0f / (1.0f + expf(-x)); }

/* Up to six destination vectors (NULL: skipped) for sums over row blocks. */
typedef struct arwkv__colsum_dst {
    float *p[6];
} arwkv__colsum_dst;

/* dst.p[kk][c] += sum over rb of part[kk][rb][c], in rb order. */
__global__ void arwkv__colsum_kernel(const double *part, int K, int RB, int C, arwkv__colsum_dst dst) {
    ARWKV__GRID_LOOP(u, (size_t)K * C) {
        int kk = (int)(u / C), c = (int)(u % C);
        float *d = dst.p[kk];
        if (!d) continue;
        double s = 0;
        for (int rb = 0; rb < RB; rb++) s += part[((size_t)kk * RB + rb) * C + c];
        d[c] += (float)s;
    }
}

ARWKV_PRIVATE arwkv_result arwkv__hip_colsum(arwkv__gpu *g, const double *part, int K, int RB, int C, arwkv__colsum_dst dst) {
    ARWKV__LAUNCH(arwkv__colsum_kernel, arwkv__hip_blocks(g, (size_t)K * C), 256, g->stream, part, K, RB, C, dst);
    return arwkv__hip_launched("parameter-gradient sum");
}

/* Row blocks for M rows: at most ARWKV__R7_ROW_BLOCKS, a function of M alone. */
ARWKV_PRIVATE int arwkv__r7_row_blocks(int M, int *rows_per_block) {
    int rb = M < ARWKV__R7_ROW_BLOCKS ? M : ARWKV__R7_ROW_BLOCKS;
    if (rb < 1) rb = 1;
    *rows_per_block = (M + rb - 1) / rb;
    return (M + *rows_per_block - 1) / *rows_per_block;
}

/* Threads per block of the per-head kernels: the head size rounded up to 64 (a whole number of
   warps on both vendors; threads past N hold zeros in the reductions). */
ARWKV_PRIVATE int arwkv__r7_head_threads(int N) { return (N + 63) / 64 * 64; }

/* ---- Token shift and the lerps ------------------------------------------------------------------ */
typedef struct arwkv__r7_mu {
    const float *mu[ARWKV__R7_MAX_MIXES];
} arwkv__r7_mu;

__global__ void arwkv__r7_lerp_fwd_kernel(float *xmix, const float *x, const float *shift_in, arwkv__r7_mu mu, int n_mix, int T, int C,
                                          size_t MC) {
    ARWKV__GRID_LOOP(u, MC) {
        size_t row = u / C;
        int i = (int)(u % C), t = (int)(row % T);
        float xv = x[u], prev = t > 0 ? x[u - C] : shift_in ? shift_in[(row / T) * C + i] : 0.0f, xx = prev - xv;
#pragma unroll
        for (int m = 0; m < ARWKV__R7_MAX_MIXES; m++)
            if (m < n_mix) xmix[m * MC + u] = xv + xx * mu.mu[m][i];
    }
}

/* After the lerps, in a launch of its own: shift_out may be the array shift_in was. */
__global__ void arwkv__r7_shift_out_kernel(float *shift_out, const float *x, int T, int C, size_t BC) {
    ARWKV__GRID_LOOP(u, BC) shift_out[u] = x[((u / C) * T + T - 1) * C + u % C];
}

ARWKV_PRIVATE arwkv_result arwkv__hip_r7_lerp_forward(arwkv_backend *be, float *xmix, const float *x, const float *shift_in, float *shift_out,
                                               const float *const *mu, int n_mix, int B, int T, int C) {
    ARWKV__TRY(arwkv__r7_lerp_check(n_mix, B, T, C));
    if (B == 0 || T == 0 || C == 0) return ARWKV_OK;
    arwkv__gpu *g = ARWKV__G(be);
    arwkv__r7_mu m;
    memset(&m, 0, sizeof m);
    for (int i = 0; i < n_mix; i++) m.mu[i] = mu[i];
    size_t MC = (size_t)B * T * C;
    if (n_mix > 0) {
        ARWKV__LAUNCH(arwkv__r7_lerp_fwd_kernel, arwkv__hip_blocks(g, MC), 256, g->stream, xmix, x, shift_in, m, n_mix, T, C, MC);
        ARWKV__TRY(arwkv__hip_launched("time-mix lerp"));
    }
    if (shift_out) {
        ARWKV__LAUNCH(arwkv__r7_shift_out_kernel, arwkv__hip_blocks(g, (size_t)B * C), 256, g->stream, shift_out, x, T, C, (size_t)B * C);
        ARWKV__TRY(arwkv__hip_launched("time-mix shift"));
    }
    return ARWKV_OK;
}

/* One thread per (sequence, channel) walks time backwards with the carry (the gradient x_t
   receives from token t+1's mixes); the mu gradients of the sequence go to part[m][b][c]. */
__global__ void arwkv__r7_lerp_bwd_kernel(float *dx, float *dshift, const float *dxmix, const float *x, const float *shift_in,
                                          arwkv__r7_mu mu, int n_mix, int B, int T, int C, double *part) {
    size_t u = (size_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (u >= (size_t)B * C) return;
    int b = (int)(u / C), i = (int)(u % C);
    size_t MC = (size_t)B * T * C;
    float mv[ARWKV__R7_MAX_MIXES];
    double gmu[ARWKV__R7_MAX_MIXES];
#pragma unroll
    for (int m = 0; m < ARWKV__R7_MAX_MIXES; m++) mv[m] = m < n_mix ? mu.mu[m][i] : 0.0f, gmu[m] = 0;
    float carry = dshift ? dshift[u] : 0.0f;
    for (int t = T - 1; t >= 0; t--) {
        size_t at = ((size_t)b * T + t) * C + i;
        float xv = x[at], prev = t > 0 ? x[at - C] : shift_in ? shift_in[u] : 0.0f, xx = prev - xv, gx = carry, g_prev = 0.0f;
#pragma unroll
        for (int m = 0; m < ARWKV__R7_MAX_MIXES; m++)
            if (m < n_mix) {
                float dm = dxmix[m * MC + at];
                gx += dm * (1.0f - mv[m]);
                g_prev += dm * mv[m];
                gmu[m] += (double)dm * xx;
            }
        if (dx) dx[at] = gx;
        carry = g_prev;
    }
    if (dshift) dshift[u] = carry;
#pragma unroll
    for (int m = 0; m < ARWKV__R7_MAX_MIXES; m++)
        if (m < n_mix) part[((size_t)m * B + b) * C + i] = gmu[m];
}

ARWKV_PRIVATE arwkv_result arwkv__hip_r7_lerp_backward(arwkv_backend *be, float *dx, float *dshift, float *const *dmu, const float *dxmix,
                                                const float *x, const float *shift_in, const float *const *mu, int n_mix, int B, int T,
                                                int C) {
    ARWKV__TRY(arwkv__r7_lerp_check(n_mix, B, T, C));
    if (B == 0 || T == 0 || C == 0) return ARWKV_OK;
    arwkv__gpu *g = ARWKV__G(be);
    arwkv__r7_mu m;
    arwkv__colsum_dst d;
    memset(&m, 0, sizeof m);
    memset(&d, 0, sizeof d);
    for (int i = 0; i < n_mix; i++) m.mu[i] = mu[i], d.p[i] = dmu ? dmu[i] : NULL;
    void *part = NULL;
    ARWKV__TRY(arwkv__hip_scratch(g, (size_t)(n_mix > 0 ? n_mix : 1) * B * C * sizeof(double), &part));
    size_t BC = (size_t)B * C;
    ARWKV__LAUNCH(arwkv__r7_lerp_bwd_kernel, (unsigned)((BC + 127) / 128), 128, g->stream, dx, dshift, dxmix, x, shift_in, m, n_mix, B, T, C,
                                                                                    (double *)part);
    ARWKV__TRY(arwkv__hip_launched("time-mix lerp backward"));
    if (n_mix > 0) ARWKV__TRY(arwkv__hip_colsum(g, (const double *)part, n_mix, B, C, d));
    return ARWKV_OK;
}

/* ---- LoRA activations ---------------------------------------------------------------------------- */
__global__ void arwkv__r7_act_fwd_kernel(float *h, size_t n, int kind) {
    ARWKV__GRID_LOOP(i, n) h[i] = kind == ARWKV_ACT_TANH ? tanhf(h[i]) : arwkv__dev_sigmoid(h[i]);
}
__global__ void arwkv__r7_act_bwd_kernel(float *dh, const float *h, size_t n, int kind) {
    ARWKV__GRID_LOOP(i, n) dh[i] *= kind == ARWKV_ACT_TANH ? 1.0f - h[i] * h[i] : h[i] * (1.0f - h[i]);
}
ARWKV_PRIVATE arwkv_result arwkv__hip_r7_act_forward(arwkv_backend *be, float *h, size_t n, int kind) {
    ARWKV__TRY(arwkv__r7_act_check(kind));
    if (!n) return ARWKV_OK;
    arwkv__gpu *g = ARWKV__G(be);
    ARWKV__LAUNCH(arwkv__r7_act_fwd_kernel, arwkv__hip_blocks(g, n), 256, g->stream, h, n, kind);
    return arwkv__hip_launched("LoRA activation");
}
ARWKV_PRIVATE arwkv_result arwkv__hip_r7_act_backward(arwkv_backend *be, float *dh, const float *h, size_t n, int kind) {
    ARWKV__TRY(arwkv__r7_act_check(kind));
    if (!n) return ARWKV_OK;
    arwkv__gpu *g = ARWKV__G(be);
    ARWKV__LAUNCH(arwkv__r7_act_bwd_kernel, arwkv__hip_blocks(g, n), 256, g->stream, dh, h, n, kind);
    return arwkv__hip_launched("LoRA activation backward");
}

/* ---- Prepare: from projections to the WKV7 inputs ---------------------------------------------------
   Forward: one block per (row, head), thread j on channel j of the head (the norm of the removal key
   is a block sum). Backward: one block per (head, block of rows), walking its rows in order and
   keeping the five parameter-gradient sums of its channel in float64. */
typedef struct arwkv__r7_prep_args {
    int M, C, N, H, first_layer;
    const float *k_in, *v_in, *w_lora, *a_lora, *v_lora, *w0, *a0, *v0, *k_k, *k_a;
    float *v_first, *decay, *k, *v, *wkv_a, *wkv_b;
    const float *d_decay, *dk, *dv, *d_wkv_a, *d_wkv_b;
    float *dk_in, *dv_in, *dw_lora, *da_lora, *dv_lora, *dv_first;
} arwkv__r7_prep_args;

__global__ void arwkv__r7_prep_fwd_kernel(arwkv__r7_prep_args c) {
    __shared__ double sh[32];
    size_t row = blockIdx.x / c.H;
    int h0 = (int)(blockIdx.x % c.H) * c.N, j = threadIdx.x, ch = h0 + j;
    size_t i = row * c.C + h0 + j;
    float kk = j < c.N ? c.k_in[i] * c.k_k[ch] : 0.0f;
    double ss = arwkv__block_sum((double)kk * kk, sh);
    float norm = (float)sqrt(ss);
    norm = norm > ARWKV__R7_NORM_EPS ? norm : ARWKV__R7_NORM_EPS;
    if (j >= c.N) return;
    float a = arwkv__dev_sigmoid(c.a0[ch] + c.a_lora[i]), kkn = kk / norm;
    c.decay[i] = expf(-ARWKV__R7_DECAY_SCALE * arwkv__dev_sigmoid(c.w0[ch] + c.w_lora[i]));
    c.k[i] = c.k_in[i] * (1.0f + (a - 1.0f) * c.k_a[ch]);
    c.wkv_a[i] = -kkn;
    c.wkv_b[i] = kkn * a;
    if (c.first_layer) {
        c.v[i] = c.v_in[i];
        if (c.v_first) c.v_first[i] = c.v_in[i];
    } else {
        float s = arwkv__dev_sigmoid(c.v0[ch] + c.v_lora[i]);
        c.v[i] = c.v_in[i] + (c.v_first[i] - c.v_in[i]) * s;
    }
}

__global__ void arwkv__r7_prep_bwd_kernel(arwkv__r7_prep_args c, int rows_per_block, int RB, double *part) {
    __shared__ double sh[32];
    int h0 = blockIdx.x * c.N, rb = blockIdx.y, j = threadIdx.x, ch = h0 + j, on = j < c.N;
    int r0 = rb * rows_per_block, r1 = r0 + rows_per_block < c.M ? r0 + rows_per_block : c.M;
    double g_w0 = 0, g_a0 = 0, g_v0 = 0, g_kk = 0, g_ka = 0;
    for (int row = r0; row < r1; row++) {
        size_t i = (size_t)row * c.C + h0 + j;
        float kk = on ? c.k_in[i] * c.k_k[ch] : 0.0f;
        double ss = arwkv__block_sum((double)kk * kk, sh);
        float norm = (float)sqrt(ss);
        int clamped = !(norm > ARWKV__R7_NORM_EPS);
        if (clamped) norm = ARWKV__R7_NORM_EPS;
        float kkn = kk / norm, a = on ? arwkv__dev_sigmoid(c.a0[ch] + c.a_lora[i]) : 0.0f;
        float dkkn = on ? -c.d_wkv_a[i] + c.d_wkv_b[i] * a : 0.0f;
        float dot = (float)arwkv__block_sum((double)dkkn * kkn, sh);
        if (!on) continue;
        float sw = arwkv__dev_sigmoid(c.w0[ch] + c.w_lora[i]), decay = expf(-ARWKV__R7_DECAY_SCALE * sw);
        float dz = c.d_decay[i] * decay * -ARWKV__R7_DECAY_SCALE * sw * (1.0f - sw);
        c.dw_lora[i] = dz;
        g_w0 += dz;
        float da = c.d_wkv_b[i] * kkn + c.dk[i] * c.k_in[i] * c.k_a[ch], da_pre = da * a * (1.0f - a);
        c.da_lora[i] = da_pre;
        g_a0 += da_pre;
        g_ka += (double)c.dk[i] * c.k_in[i] * (a - 1.0f);
        float dkk = clamped ? dkkn / norm : (dkkn - kkn * dot) / norm;
        c.dk_in[i] = c.dk[i] * (1.0f + (a - 1.0f) * c.k_a[ch]) + dkk * c.k_k[ch];
        g_kk += (double)dkk * c.k_in[i];
        if (c.first_layer) {
            c.dv_in[i] = c.dv[i] + (c.dv_first ? c.dv_first[i] : 0.0f);
        } else {
            float s = arwkv__dev_sigmoid(c.v0[ch] + c.v_lora[i]), dv = c.dv[i];
            float ds = dv * (c.v_first[i] - c.v_in[i]) * s * (1.0f - s);
            c.dv_in[i] = dv * (1.0f - s);
            c.dv_first[i] += dv * s;
            c.dv_lora[i] = ds;
            g_v0 += ds;
        }
    }
    if (on) {
        size_t at = (size_t)rb * c.C + ch, plane = (size_t)RB * c.C;
        part[at] = g_w0, part[plane + at] = g_a0, part[2 * plane + at] = g_v0, part[3 * plane + at] = g_kk, part[4 * plane + at] = g_ka;
    }
}

/* The kernels' argument block from the op's arguments (the same members, plus the head count). */
ARWKV_PRIVATE arwkv__r7_prep_args arwkv__hip_r7_prep_args_from(const arwkv_r7_prepare_args *p) {
    arwkv__r7_prep_args c;
    memset(&c, 0, sizeof c);
    c.M = p->M, c.C = p->C, c.N = p->N, c.H = p->C / p->N, c.first_layer = p->first_layer;
    c.k_in = p->k_in, c.v_in = p->v_in, c.w_lora = p->w_lora, c.a_lora = p->a_lora, c.v_lora = p->v_lora, c.v_first = p->v_first;
    c.w0 = p->w0, c.a0 = p->a0, c.v0 = p->v0, c.k_k = p->k_k, c.k_a = p->k_a;
    c.decay = p->decay, c.k = p->k, c.v = p->v, c.wkv_a = p->wkv_a, c.wkv_b = p->wkv_b;
    c.d_decay = p->d_decay, c.dk = p->dk, c.dv = p->dv, c.d_wkv_a = p->d_wkv_a, c.d_wkv_b = p->d_wkv_b;
    c.dk_in = p->dk_in, c.dv_in = p->dv_in, c.dw_lora = p->dw_lora, c.da_lora = p->da_lora, c.dv_lora = p->dv_lora;
    c.dv_first = p->dv_first;
    return c;
}

ARWKV_PRIVATE arwkv_result arwkv__hip_r7_prepare_forward(arwkv_backend *be, const arwkv_r7_prepare_args *p) {
    ARWKV__TRY(arwkv__r7_prepare_check(p));
    if (p->M <= 0) return ARWKV_OK;
    arwkv__r7_prep_args c = arwkv__hip_r7_prep_args_from(p);
    ARWKV__LAUNCH(arwkv__r7_prep_fwd_kernel, (unsigned)((size_t)p->M * c.H), arwkv__r7_head_threads(p->N), ARWKV__G(be)->stream, c);
    return arwkv__hip_launched("time-mix prepare");
}

ARWKV_PRIVATE arwkv_result arwkv__hip_r7_prepare_backward(arwkv_backend *be, const arwkv_r7_prepare_args *p) {
    ARWKV__TRY(arwkv__r7_prepare_check(p));
    if (p->M <= 0) return ARWKV_OK;
    arwkv__gpu *g = ARWKV__G(be);
    arwkv__r7_prep_args c = arwkv__hip_r7_prep_args_from(p);
    int per, RB = arwkv__r7_row_blocks(p->M, &per);
    void *part = NULL;
    ARWKV__TRY(arwkv__hip_scratch(g, 5 * (size_t)RB * p->C * sizeof(double), &part));
    dim3 grid((unsigned)c.H, (unsigned)RB);
    ARWKV__LAUNCH(arwkv__r7_prep_bwd_kernel, grid, arwkv__r7_head_threads(p->N), g->stream, c, per, RB, (double *)part);
    ARWKV__TRY(arwkv__hip_launched("time-mix prepare backward"));
    arwkv__colsum_dst d;
    memset(&d, 0, sizeof d);
    d.p[0] = p->dw0, d.p[1] = p->da0, d.p[2] = p->first_layer ? NULL : p->dv0, d.p[3] = p->dk_k, d.p[4] = p->dk_a;
    return arwkv__hip_colsum(g, (const double *)part, 5, RB, p->C, d);
}

/* ---- WKV7: the recurrence ------------------------------------------------------------------------------
   One block per (sequence, head) of N threads, N in {8, 16, 32, 64}. Forward: thread i holds row i
   of the fp32 state S (the value channel i) in registers; each token's r, decay, k, a, b are staged
   in shared memory (double-buffered, the next token's loads in flight during this one's update):
       sa_i = sum_j S_ij a_j;  S_ij = S_ij d_j + sa_i b_j + v_i k_j;  y_i = sum_j S_ij r_j
   and the state is saved before tokens 0, 16, 32, ...

   Backward: chunks of 16 tokens from the last. For each chunk the forward is replayed from its
   checkpoint (the same arithmetic, so the same bits), keeping the sa of each token in shared
   memory (the state gradient waits there meanwhile); the state at the end of the chunk is
   transposed through shared memory so that thread i holds column i (the key channel i). Then the chunk's tokens are walked backwards with the state
   gradient G held twice, row i and column i, so that every reduction is local to a thread:
       G += dy r^T
       dr_i = sum_j S_ji dy_j          (S after the token)
       S_ji <- (S_ji - sa_j b_i - v_j k_i) / d_i     (back to the state before the token)
       dv_i = sum_j G_ij k_j,  dsa_i = sum_j G_ij b_j
       dk_i = sum_j G_ji v_j,  db_i = sum_j G_ji sa_j,  dd_i = sum_j G_ji S_ji,  da_i = sum_j S_ji dsa_j
       G_ij <- G_ij d_j + dsa_i a_j
   Stepping back divides by the decay, which is at least 0.545: a rounding error grows by at most
   1.83x a step, over at most 15 steps before the next checkpoint (the reference CUDA kernels of
   RWKV-7 do the same). The CPU backend recomputes the chunk's states instead; the two agree to
   about 1e-6 of the largest gradient on typical decays. Checkpoints every ARWKV_WKV7_CHUNK tokens,
   the layout the CPU backend reads and writes too. */

template <int N>
__global__ void __launch_bounds__(N) arwkv__wkv7_fwd_kernel(int T, int H, const float *r, const float *decay, const float *k, const float *v,
                                                            const float *a, const float *b, float *y, float *state, float *ckpt) {
    __shared__ float in[2][5][N]; /* r, decay, k, a, b of a token */
    const int task = blockIdx.x, bi = task / H, h = task % H, i = threadIdx.x;
    const size_t C = (size_t)H * N, NN = (size_t)N * N;
    const int n_chunks = (T + ARWKV_WKV7_CHUNK - 1) / ARWKV_WKV7_CHUNK;
    float S[N];
#pragma unroll
    for (int j = 0; j < N; j++) S[j] = state ? state[task * NN + (size_t)i * N + j] : 0.0f;
    size_t o = (size_t)bi * T * C + (size_t)h * N + i;
    float nr = 0, nd = 0, nk = 0, nv = 0, na = 0, nb = 0;
    if (T > 0) nr = r[o], nd = decay[o], nk = k[o], nv = v[o], na = a[o], nb = b[o];
    for (int t = 0; t < T; t++, o += C) {
        const int buf = t & 1;
        in[buf][0][i] = nr, in[buf][1][i] = nd, in[buf][2][i] = nk, in[buf][3][i] = na, in[buf][4][i] = nb;
        const float vi = nv;
        __syncthreads();
        if (t + 1 < T) nr = r[o + C], nd = decay[o + C], nk = k[o + C], nv = v[o + C], na = a[o + C], nb = b[o + C];
        if (ckpt && t % ARWKV_WKV7_CHUNK == 0) {
            float *dst = ckpt + ((size_t)task * n_chunks + t / ARWKV_WKV7_CHUNK) * NN + (size_t)i * N;
#pragma unroll
            for (int j = 0; j < N; j++) dst[j] = S[j];
        }
        float sa = 0.0f, yi = 0.0f;
#pragma unroll
        for (int j = 0; j < N; j++) sa += S[j] * in[buf][3][j];
#pragma unroll
        for (int j = 0; j < N; j++) {
            S[j] = S[j] * in[buf][1][j] + sa * in[buf][4][j] + vi * in[buf][2][j];
            yi += S[j] * in[buf][0][j];
        }
        y[o] = yi;
    }
    if (state)
#pragma unroll
        for (int j = 0; j < N; j++) state[task * NN + (size_t)i * N + j] = S[j];
}

template <int N>
__global__ void __launch_bounds__(N) arwkv__wkv7_bwd_kernel(int T, int H, const float *r, const float *decay, const float *k, const float *v,
                                                            const float *a, const float *b, const float *dy, const float *ckpt,
                                                            float *dstate, float *dr, float *d_decay, float *dk, float *dv, float *da,
                                                            float *db) {
    enum { R_ = 0, D_, K_, V_, A_, B_, DY_, N_IN };
    __shared__ float in[N_IN][N], sa_chunk[ARWKV_WKV7_CHUNK][N], dsa_s[N], tr[N][N + 1], gs[N][N + 1];
    const int task = blockIdx.x, bi = task / H, h = task % H, i = threadIdx.x;
    const size_t C = (size_t)H * N, NN = (size_t)N * N;
    const int n_chunks = (T + ARWKV_WKV7_CHUNK - 1) / ARWKV_WKV7_CHUNK;
    float Grow[N], Gcol[N], Scol[N];
#pragma unroll
    for (int j = 0; j < N; j++) {
        Grow[j] = dstate ? dstate[task * NN + (size_t)i * N + j] : 0.0f;
        Gcol[j] = dstate ? dstate[task * NN + (size_t)j * N + i] : 0.0f;
    }
    for (int chunk = n_chunks - 1; chunk >= 0; chunk--) {
        const int t0 = chunk * ARWKV_WKV7_CHUNK, len = T - t0 < ARWKV_WKV7_CHUNK ? T - t0 : ARWKV_WKV7_CHUNK;
        /* G waits in shared memory while the replay needs the registers */
        __syncthreads();
#pragma unroll
        for (int j = 0; j < N; j++) gs[i][j] = Grow[j];
        { /* replay the chunk (rows of S), keeping sa; then hand the final state over as columns */
            float S[N];
            const float *src = ckpt + ((size_t)task * n_chunks + chunk) * NN + (size_t)i * N;
#pragma unroll
            for (int j = 0; j < N; j++) S[j] = src[j];
            for (int l = 0; l < len; l++) {
                size_t o = ((size_t)bi * T + t0 + l) * C + (size_t)h * N + i;
                __syncthreads();
                in[R_][i] = r[o], in[D_][i] = decay[o], in[K_][i] = k[o], in[V_][i] = v[o], in[A_][i] = a[o], in[B_][i] = b[o];
                __syncthreads();
                float sa = 0.0f, vi = in[V_][i];
#pragma unroll
                for (int j = 0; j < N; j++) sa += S[j] * in[A_][j];
                sa_chunk[l][i] = sa;
#pragma unroll
                for (int j = 0; j < N; j++) S[j] = S[j] * in[D_][j] + sa * in[B_][j] + vi * in[K_][j];
            }
            __syncthreads();
#pragma unroll
            for (int j = 0; j < N; j++) tr[i][j] = S[j];
            __syncthreads();
#pragma unroll
            for (int j = 0; j < N; j++) Scol[j] = tr[j][i];
        }
#pragma unroll
        for (int j = 0; j < N; j++) Grow[j] = gs[i][j], Gcol[j] = gs[j][i];
        for (int l = len - 1; l >= 0; l--) {
            size_t o = ((size_t)bi * T + t0 + l) * C + (size_t)h * N + i;
            __syncthreads();
            in[R_][i] = r[o], in[D_][i] = decay[o], in[K_][i] = k[o], in[V_][i] = v[o], in[A_][i] = a[o], in[B_][i] = b[o];
            in[DY_][i] = dy[o];
            __syncthreads();
            const float dyi = in[DY_][i], ri = in[R_][i], di = in[D_][i], ki = in[K_][i], ai = in[A_][i], bi_ = in[B_][i];
            float dri = 0.0f, dvi = 0.0f, dsai = 0.0f, dki = 0.0f, dbi = 0.0f, ddi = 0.0f;
#pragma unroll
            for (int j = 0; j < N; j++) {
                const float dyj = in[DY_][j], vj = in[V_][j], saj = sa_chunk[l][j];
                Grow[j] += dyi * in[R_][j];
                Gcol[j] += dyj * ri;
                dri += Scol[j] * dyj;
                Scol[j] = (Scol[j] - saj * bi_ - vj * ki) / di;
                dvi += Grow[j] * in[K_][j];
                dsai += Grow[j] * in[B_][j];
                dki += Gcol[j] * vj;
                dbi += Gcol[j] * saj;
                ddi += Gcol[j] * Scol[j];
            }
            dsa_s[i] = dsai;
            __syncthreads();
            float dai = 0.0f;
#pragma unroll
            for (int j = 0; j < N; j++) {
                dai += Scol[j] * dsa_s[j];
                Grow[j] = Grow[j] * in[D_][j] + dsai * in[A_][j];
                Gcol[j] = Gcol[j] * di + dsa_s[j] * ai;
            }
            dr[o] += dri;
            dk[o] += dki;
            dv[o] += dvi;
            d_decay[o] = ddi;
            da[o] = dai;
            db[o] = dbi;
        }
    }
    if (dstate)
#pragma unroll
        for (int j = 0; j < N; j++) dstate[task * NN + (size_t)i * N + j] = Grow[j];
}

/* The GPU's head sizes: one kernel instance per size (the state row lives in registers). */
ARWKV_PRIVATE arwkv_result arwkv__hip_wkv_shape(int B, int T, int H, int N) {
    return arwkv__wkv_check("WKV7", B, T, H, N, N == 8 || N == 16 || N == 32 || N == 64, "8, 16, 32 or 64 on the GPU");
}

#define ARWKV__WKV_DISPATCH(N, kernel, ...)                                    \
    do {                                                                       \
        if ((N) == 8) ARWKV__LAUNCH(kernel<8>, grid, 8, s, __VA_ARGS__);       \
        else if ((N) == 16) ARWKV__LAUNCH(kernel<16>, grid, 16, s, __VA_ARGS__); \
        else if ((N) == 32) ARWKV__LAUNCH(kernel<32>, grid, 32, s, __VA_ARGS__); \
        else ARWKV__LAUNCH(kernel<64>, grid, 64, s, __VA_ARGS__);              \
    } while (0)

ARWKV_PRIVATE arwkv_result arwkv__hip_r7_wkv7_forward(arwkv_backend *be, int B, int T, int H, int N, const float *r, const float *decay,
                                               const float *k, const float *v, const float *a, const float *b, float *y, float *state,
                                               float *ckpt) {
    ARWKV__TRY(arwkv__hip_wkv_shape(B, T, H, N));
    if (B == 0) return ARWKV_OK;
    hipStream_t s = ARWKV__G(be)->stream;
    unsigned grid = (unsigned)(B * H);
    ARWKV__WKV_DISPATCH(N, arwkv__wkv7_fwd_kernel, T, H, r, decay, k, v, a, b, y, state, ckpt);
    return arwkv__hip_launched("WKV7 forward");
}

ARWKV_PRIVATE arwkv_result arwkv__hip_r7_wkv7_backward(arwkv_backend *be, int B, int T, int H, int N, const float *r, const float *decay,
                                                const float *k, const float *v, const float *a, const float *b, const float *dy,
                                                const float *ckpt, float *dstate, float *dr, float *d_decay, float *dk, float *dv,
                                                float *da, float *db) {
    ARWKV__TRY(arwkv__hip_wkv_shape(B, T, H, N));
    ARWKV__TRY(arwkv__wkv_ckpt_check("WKV7", B, T, ckpt));
    if (B == 0) return ARWKV_OK;
    hipStream_t s = ARWKV__G(be)->stream;
    unsigned grid = (unsigned)(B * H);
    ARWKV__WKV_DISPATCH(N, arwkv__wkv7_bwd_kernel, T, H, r, decay, k, v, a, b, dy, ckpt, dstate, dr, d_decay, dk, dv, da, db);
    return arwkv__hip_launched("WKV7 backward");
}

/* ---- Finish: group norm, bonus, gate --------------------------------------------------------------------
   Forward: one block per (row, head). Backward: one block per (head, block of rows), the sums for
   r_k and ln_x kept per channel in float64. */
typedef struct arwkv__r7_fin_args {
    int M, C, N, H;
    const float *d_o, *y, *r, *k, *v, *r_k, *ln_w, *ln_b, *g;
    float gn_eps;
    float *o, *dy, *dr, *dk, *dv, *dg;
} arwkv__r7_fin_args;

/* p_j (before the gate) for thread j of the head at offset `at`; xhat and rstd for the backward. */
ARWKV__DEV float arwkv__r7_fin_head(const arwkv__r7_fin_args &c, size_t at, int j, int ch, double *sh, float *bonus, float *xhat,
                                    float *rstd) {
    int on = j < c.N;
    float yj = on ? c.y[at] : 0.0f;
    *bonus = (float)arwkv__block_sum(on ? (double)(c.r[at] * c.k[at] * c.r_k[ch]) : 0.0, sh);
    float p;
    if (c.ln_w) {
        double mean = arwkv__block_sum((double)yj, sh) / c.N;
        double var = arwkv__block_sum(on ? (yj - mean) * (yj - mean) : 0.0, sh);
        *rstd = (float)(1.0 / sqrt(var / c.N + c.gn_eps));
        *xhat = (float)(yj - mean) * *rstd;
        p = on ? *xhat * c.ln_w[ch] + c.ln_b[ch] + *bonus * c.v[at] : 0.0f;
    } else {
        *xhat = 0.0f, *rstd = 1.0f;
        p = on ? yj + *bonus * c.v[at] : 0.0f;
    }
    return p;
}

__global__ void arwkv__r7_fin_fwd_kernel(arwkv__r7_fin_args c) {
    __shared__ double sh[32];
    size_t row = blockIdx.x / c.H;
    int h0 = (int)(blockIdx.x % c.H) * c.N, j = threadIdx.x, ch = h0 + j;
    size_t at = row * c.C + h0 + j;
    float bonus, xhat, rstd, p = arwkv__r7_fin_head(c, at, j, ch, sh, &bonus, &xhat, &rstd);
    if (j < c.N) c.o[at] = c.g ? p * c.g[at] : p;
}

__global__ void arwkv__r7_fin_bwd_kernel(arwkv__r7_fin_args c, int rows_per_block, int RB, double *part) {
    __shared__ double sh[32];
    int h0 = blockIdx.x * c.N, rb = blockIdx.y, j = threadIdx.x, ch = h0 + j, on = j < c.N;
    int r0 = rb * rows_per_block, r1 = r0 + rows_per_block < c.M ? r0 + rows_per_block : c.M;
    double g_rk = 0, g_lw = 0, g_lb = 0;
    for (int row = r0; row < r1; row++) {
        size_t at = (size_t)row * c.C + h0 + j;
        float bonus, xhat, rstd, p = arwkv__r7_fin_head(c, at, j, ch, sh, &bonus, &xhat, &rstd);
        float d_o = on ? c.d_o[at] : 0.0f, dp = c.g && on ? d_o * c.g[at] : d_o;
        if (on && c.g) c.dg[at] = d_o * p;
        float d_bonus = (float)arwkv__block_sum(on ? (double)(dp * c.v[at]) : 0.0, sh);
        float m1 = 0.0f, m2 = 0.0f;
        if (c.ln_w) {
            float dxh = on ? dp * c.ln_w[ch] : 0.0f;
            m1 = (float)(arwkv__block_sum((double)dxh, sh) / c.N);
            m2 = (float)(arwkv__block_sum((double)dxh * xhat, sh) / c.N);
        }
        if (!on) continue;
        c.dv[at] = dp * bonus;
        float rk = c.r_k[ch];
        c.dr[at] = d_bonus * c.k[at] * rk;
        c.dk[at] = d_bonus * c.r[at] * rk;
        g_rk += (double)d_bonus * c.r[at] * c.k[at];
        if (c.ln_w) {
            g_lw += (double)dp * xhat;
            g_lb += dp;
            c.dy[at] = rstd * (dp * c.ln_w[ch] - m1 - xhat * m2);
        } else
            c.dy[at] = dp;
    }
    if (on) {
        size_t at = (size_t)rb * c.C + ch, plane = (size_t)RB * c.C;
        part[at] = g_rk, part[plane + at] = g_lw, part[2 * plane + at] = g_lb;
    }
}

/* The kernels' argument block from the op's arguments (the same members, plus the head count). */
ARWKV_PRIVATE arwkv__r7_fin_args arwkv__hip_r7_fin_args_from(const arwkv_r7_finish_args *f) {
    arwkv__r7_fin_args c;
    memset(&c, 0, sizeof c);
    c.M = f->M, c.C = f->C, c.N = f->N, c.H = f->C / f->N;
    c.y = f->y, c.r = f->r, c.k = f->k, c.v = f->v, c.r_k = f->r_k, c.ln_w = f->ln_w, c.ln_b = f->ln_b, c.gn_eps = f->gn_eps;
    c.g = f->g, c.o = f->o, c.d_o = f->d_o, c.dy = f->dy, c.dr = f->dr, c.dk = f->dk, c.dv = f->dv, c.dg = f->dg;
    return c;
}

ARWKV_PRIVATE arwkv_result arwkv__hip_r7_finish_forward(arwkv_backend *be, const arwkv_r7_finish_args *f) {
    ARWKV__TRY(arwkv__r7_finish_check(f->C, f->N, f->ln_w, f->ln_b));
    if (f->M <= 0) return ARWKV_OK;
    arwkv__r7_fin_args c = arwkv__hip_r7_fin_args_from(f);
    ARWKV__LAUNCH(arwkv__r7_fin_fwd_kernel, (unsigned)((size_t)f->M * c.H), arwkv__r7_head_threads(f->N), ARWKV__G(be)->stream, c);
    return arwkv__hip_launched("time-mix finish");
}

ARWKV_PRIVATE arwkv_result arwkv__hip_r7_finish_backward(arwkv_backend *be, const arwkv_r7_finish_args *f) {
    ARWKV__TRY(arwkv__r7_finish_check(f->C, f->N, f->ln_w, f->ln_b));
    if (f->M <= 0) return ARWKV_OK;
    arwkv__gpu *gp = ARWKV__G(be);
    arwkv__r7_fin_args c = arwkv__hip_r7_fin_args_from(f);
    int per, RB = arwkv__r7_row_blocks(f->M, &per);
    void *part = NULL;
    ARWKV__TRY(arwkv__hip_scratch(gp, 3 * (size_t)RB * f->C * sizeof(double), &part));
    dim3 grid((unsigned)c.H, (unsigned)RB);
    ARWKV__LAUNCH(arwkv__r7_fin_bwd_kernel, grid, arwkv__r7_head_threads(f->N), gp->stream, c, per, RB, (double *)part);
    ARWKV__TRY(arwkv__hip_launched("time-mix finish backward"));
    arwkv__colsum_dst d;
    memset(&d, 0, sizeof d);
    d.p[0] = f->dr_k, d.p[1] = f->ln_w ? f->dln_w : NULL, d.p[2] = f->ln_w ? f->dln_b : NULL;
    return arwkv__hip_colsum(gp, (const double *)part, 3, RB, f->C, d);
}

static const arwkv_rwkv7_ops arwkv__hip_rwkv7_ops = {
    arwkv__hip_r7_lerp_forward,    arwkv__hip_r7_lerp_backward,    arwkv__hip_r7_act_forward,  arwkv__hip_r7_act_backward,
    arwkv__hip_r7_prepare_forward, arwkv__hip_r7_prepare_backward, arwkv__hip_r7_wkv7_forward, arwkv__hip_r7_wkv7_backward,
    arwkv__hip_r7_finish_forward,  arwkv__hip_r7_finish_backward};

/* ============================================================================================
   RWKV-6 time-mix ops (QRWKV6): the formulas of the CPU backend's arwkv_rwkv6_ops
   ============================================================================================
   Elementwise ops are one grid loop each, with the CPU's expressions. Sums over token rows (the
   parameter gradients of maa_x, the five maa, time_decay and the projection biases) go through
   float64 partial sums per (row block, channel) and arwkv__colsum_kernel, as the RWKV-7 ops do: no
   atomics, a fixed order, so a run repeats bit for bit. */

/* part[kk][rb][c] = sum over the rows of row block rb of a_kk[row][c], times b[row][c] when b is
   given (a_kk = a + kk * a_plane), in float64 with the rows in order. Sums whose destination in dst
   is NULL are skipped. */
__global__ void arwkv__r6_colsum_part_kernel(const float *a, size_t a_plane, const float *b, int rows, int C, int rows_per_block, int K,
                                             arwkv__colsum_dst dst, double *part) {
    int c = blockIdx.x * blockDim.x + threadIdx.x, rb = blockIdx.y, RB = gridDim.y;
    if (c >= C) return;
    int r0 = rb * rows_per_block, r1 = r0 + rows_per_block < rows ? r0 + rows_per_block : rows;
    for (int kk = 0; kk < K; kk++) {
        if (!dst.p[kk]) continue;
        const float *ak = a + kk * a_plane;
        double s = 0;
        for (int row = r0; row < r1; row++) {
            size_t at = (size_t)row * C + c;
            s += b ? (double)ak[at] * b[at] : (double)ak[at];
        }
        part[((size_t)kk * RB + rb) * C + c] = s;
    }
}

/* dst.p[kk][c] += sum over rows of a_kk (times b), for up to six kk. */
ARWKV_PRIVATE arwkv_result arwkv__r6_colsums(arwkv__gpu *g, const float *a, size_t a_plane, const float *b, int rows, int C, int K,
                                      arwkv__colsum_dst dst) {
    int any = 0;
    for (int kk = 0; kk < K; kk++) any |= dst.p[kk] != NULL;
    if (!any || rows <= 0 || C <= 0) return ARWKV_OK;
    int per, RB = arwkv__r7_row_blocks(rows, &per);
    void *part = NULL;
    ARWKV__TRY(arwkv__hip_scratch(g, (size_t)K * RB * C * sizeof(double), &part));
    dim3 grid((unsigned)((C + 255) / 256), (unsigned)RB);
    ARWKV__LAUNCH(arwkv__r6_colsum_part_kernel, grid, 256, g->stream, a, a_plane, b, rows, C, per, K, dst, (double *)part);
    ARWKV__TRY(arwkv__hip_launched("parameter-gradient sum (rows)"));
    return arwkv__hip_colsum(g, (const double *)part, K, RB, C, dst);
}

/* ---- Token shift -------------------------------------------------------------------------------- */
__global__ void arwkv__r6_shift_fwd_kernel(float *xx, float *xxx, const float *x, const float *shift, const float *maa, int T, int C,
                                           size_t n) {
    ARWKV__GRID_LOOP(u, n) {
        size_t row = u / C;
        int i = (int)(u % C), t = (int)(row % T);
        float xv = x[u], prev = t > 0 ? x[u - C] : shift ? shift[(row / T) * C + i] : 0.0f, d = prev - xv;
        xx[u] = d;
        xxx[u] = xv + d * maa[i];
    }
}

/* With D_t = dxx_t + dxxx_t maa (all that reaches xx_t = x_{t-1} - x_t):
   dx_t += dxxx_t - D_t + D_{t+1}, the last term only inside the sequence. */
__global__ void arwkv__r6_shift_bwd_kernel(float *dx, const float *dxx, const float *dxxx, const float *maa, int T, int C, size_t n) {
    ARWKV__GRID_LOOP(u, n) {
        int i = (int)(u % C), has_next = (int)((u / C) % T) + 1 < T;
        float a = dxx[u], g = dxxx[u], v = g - (a + g * maa[i]);
        if (has_next) v += dxx[u + C] + dxxx[u + C] * maa[i];
        dx[u] += v;
    }
}

ARWKV_PRIVATE arwkv_result arwkv__hip_r6_shift_forward(arwkv_backend *be, float *xx, float *xxx, const float *x, const float *shift,
                                                const float *maa_x, int B, int T, int C) {
    if (B <= 0 || T <= 0 || C <= 0) return ARWKV_OK;
    arwkv__gpu *g = ARWKV__G(be);
    size_t n = (size_t)B * T * C;
    ARWKV__LAUNCH(arwkv__r6_shift_fwd_kernel, arwkv__hip_blocks(g, n), 256, g->stream, xx, xxx, x, shift, maa_x, T, C, n);
    return arwkv__hip_launched("RWKV-6 token shift");
}

ARWKV_PRIVATE arwkv_result arwkv__hip_r6_shift_backward(arwkv_backend *be, float *dx, float *dmaa_x, const float *dxx, const float *dxxx,
                                                 const float *xx, const float *maa_x, int B, int T, int C) {
    if (B <= 0 || T <= 0 || C <= 0) return ARWKV_OK;
    arwkv__gpu *g = ARWKV__G(be);
    size_t n = (size_t)B * T * C;
    if (dx) {
        ARWKV__LAUNCH(arwkv__r6_shift_bwd_kernel, arwkv__hip_blocks(g, n), 256, g->stream, dx, dxx, dxxx, maa_x, T, C, n);
        ARWKV__TRY(arwkv__hip_launched("RWKV-6 token shift backward"));
    }
    arwkv__colsum_dst d;
    memset(&d, 0, sizeof d);
    d.p[0] = dmaa_x;
    return arwkv__r6_colsums(g, dxxx, 0, xx, B * T, C, 1, d);
}

/* ---- Data-dependent lerp of the five branches ---------------------------------------------------- */
__global__ void arwkv__r6_ddlerp_fwd_kernel(float *xc, const float *x, const float *xx, arwkv__r7_mu maa, const float *m, int C,
                                            size_t plane) {
    ARWKV__GRID_LOOP(u, 5 * plane) {
        size_t e = u % plane;
        int br = (int)(u / plane), i = (int)(e % C);
        xc[u] = x[e] + xx[e] * (maa.mu[br][i] + m[u]);
    }
}

/* dx and dxx add the branches in order 0..4 (as the CPU), dm per branch. */
__global__ void arwkv__r6_ddlerp_bwd_kernel(float *dx, float *dxx, float *dm, const float *dxc, const float *xx, arwkv__r7_mu maa,
                                            const float *m, int C, size_t plane) {
    ARWKV__GRID_LOOP(e, plane) {
        int i = (int)(e % C);
        float sx = 0.0f, sxx = 0.0f, xv = xx[e];
#pragma unroll
        for (int br = 0; br < 5; br++) {
            size_t u = br * plane + e;
            float g = dxc[u];
            sx += g;
            sxx += g * (maa.mu[br][i] + m[u]);
            dm[u] = g * xv;
        }
        dx[e] = sx;
        dxx[e] = sxx;
    }
}

ARWKV_PRIVATE arwkv_result arwkv__hip_r6_ddlerp_forward(arwkv_backend *be, float *xc, const float *x, const float *xx, const float *const *maa,
                                                 const float *m, int rows, int C) {
    if (rows <= 0 || C <= 0) return ARWKV_OK;
    arwkv__gpu *g = ARWKV__G(be);
    arwkv__r7_mu mu;
    memset(&mu, 0, sizeof mu);
    for (int br = 0; br < 5; br++) mu.mu[br] = maa[br];
    size_t plane = (size_t)rows * C;
    ARWKV__LAUNCH(arwkv__r6_ddlerp_fwd_kernel, arwkv__hip_blocks(g, 5 * plane), 256, g->stream, xc, x, xx, mu, m, C, plane);
    return arwkv__hip_launched("RWKV-6 data-dependent lerp");
}

ARWKV_PRIVATE arwkv_result arwkv__hip_r6_ddlerp_backward(arwkv_backend *be, float *dx, float *dxx, float *dm, float *const *dmaa, const float *dxc,
                                                  const float *xx, const float *const *maa, const float *m, int rows, int C) {
    if (rows <= 0 || C <= 0) return ARWKV_OK;
    arwkv__gpu *g = ARWKV__G(be);
    arwkv__r7_mu mu;
    arwkv__colsum_dst d;
    memset(&mu, 0, sizeof mu);
    memset(&d, 0, sizeof d);
    for (int br = 0; br < 5; br++) mu.mu[br] = maa[br], d.p[br] = dmaa ? dmaa[br] : NULL;
    size_t plane = (size_t)rows * C;
    ARWKV__LAUNCH(arwkv__r6_ddlerp_bwd_kernel, arwkv__hip_blocks(g, plane), 256, g->stream, dx, dxx, dm, dxc, xx, mu, m, C, plane);
    ARWKV__TRY(arwkv__hip_launched("RWKV-6 data-dependent lerp backward"));
    return arwkv__r6_colsums(g, dxc, plane, xx, rows, C, 5, d);
}

/* ---- tanh, decay, output gate, bias gradient ------------------------------------------------------ */
__global__ void arwkv__r6_tanh_fwd_kernel(float *y, const float *x, size_t n) {
    ARWKV__GRID_LOOP(i, n) y[i] = tanhf(x[i]);
}
__global__ void arwkv__r6_tanh_bwd_kernel(float *dx, const float *dy, const float *y, size_t n) {
    ARWKV__GRID_LOOP(i, n) dx[i] = dy[i] * (1.0f - y[i] * y[i]);
}

/* w = exp(-exp(z)) with no clamp; backward from exp(z) itself, 0 where it overflows (w is 0 there). */
__global__ void arwkv__r6_decay_fwd_kernel(float *w, float *z, const float *time_decay, int C, size_t n) {
    ARWKV__GRID_LOOP(u, n) {
        float zu = z[u] + time_decay[u % C];
        z[u] = zu;
        w[u] = expf(-expf(zu));
    }
}
__global__ void arwkv__r6_decay_bwd_kernel(float *dz, const float *dw, const float *z, const float *w, size_t n) {
    ARWKV__GRID_LOOP(i, n) {
        float ez = expf(z[i]);
        dz[i] = ez <= FLT_MAX ? -dw[i] * w[i] * ez : 0.0f;
    }
}

__global__ void arwkv__r6_gate_fwd_kernel(float *out, const float *y, const float *g, size_t n) {
    ARWKV__GRID_LOOP(i, n) out[i] = y[i] / (1.0f + expf(-g[i]));
}
__global__ void arwkv__r6_gate_bwd_kernel(float *dy, float *dg, const float *dout, const float *y, const float *g, size_t n) {
    ARWKV__GRID_LOOP(i, n) {
        float s = 1.0f / (1.0f + expf(-g[i])), d = dout[i], yi = y[i];
        dg[i] = d * yi * s * (1.0f - s);
        dy[i] = d * s;
    }
}

ARWKV_PRIVATE arwkv_result arwkv__hip_r6_tanh_forward(arwkv_backend *be, float *y, const float *x, size_t n) {
    if (!n) return ARWKV_OK;
    arwkv__gpu *g = ARWKV__G(be);
    ARWKV__LAUNCH(arwkv__r6_tanh_fwd_kernel, arwkv__hip_blocks(g, n), 256, g->stream, y, x, n);
    return arwkv__hip_launched("RWKV-6 tanh");
}
ARWKV_PRIVATE arwkv_result arwkv__hip_r6_tanh_backward(arwkv_backend *be, float *dx, const float *dy, const float *y, size_t n) {
    if (!n) return ARWKV_OK;
    arwkv__gpu *g = ARWKV__G(be);
    ARWKV__LAUNCH(arwkv__r6_tanh_bwd_kernel, arwkv__hip_blocks(g, n), 256, g->stream, dx, dy, y, n);
    return arwkv__hip_launched("RWKV-6 tanh backward");
}

ARWKV_PRIVATE arwkv_result arwkv__hip_r6_colsum(arwkv_backend *be, float *db, const float *dy, int rows, int cols) {
    arwkv__colsum_dst d;
    memset(&d, 0, sizeof d);
    d.p[0] = db;
    return arwkv__r6_colsums(ARWKV__G(be), dy, 0, NULL, rows, cols, 1, d);
}

ARWKV_PRIVATE arwkv_result arwkv__hip_r6_decay_forward(arwkv_backend *be, float *w, float *z, const float *time_decay, int rows, int C) {
    if (rows <= 0 || C <= 0) return ARWKV_OK;
    arwkv__gpu *g = ARWKV__G(be);
    size_t n = (size_t)rows * C;
    ARWKV__LAUNCH(arwkv__r6_decay_fwd_kernel, arwkv__hip_blocks(g, n), 256, g->stream, w, z, time_decay, C, n);
    return arwkv__hip_launched("RWKV-6 decay");
}
ARWKV_PRIVATE arwkv_result arwkv__hip_r6_decay_backward(arwkv_backend *be, float *dz, float *dtime_decay, const float *dw, const float *z,
                                                 const float *w, int rows, int C) {
    if (rows <= 0 || C <= 0) return ARWKV_OK;
    arwkv__gpu *g = ARWKV__G(be);
    size_t n = (size_t)rows * C;
    ARWKV__LAUNCH(arwkv__r6_decay_bwd_kernel, arwkv__hip_blocks(g, n), 256, g->stream, dz, dw, z, w, n);
    ARWKV__TRY(arwkv__hip_launched("RWKV-6 decay backward"));
    return dtime_decay ? arwkv__hip_r6_colsum(be, dtime_decay, dz, rows, C) : ARWKV_OK;
}

ARWKV_PRIVATE arwkv_result arwkv__hip_r6_gate_forward(arwkv_backend *be, float *out, const float *y, const float *g, size_t n) {
    if (!n) return ARWKV_OK;
    arwkv__gpu *gp = ARWKV__G(be);
    ARWKV__LAUNCH(arwkv__r6_gate_fwd_kernel, arwkv__hip_blocks(gp, n), 256, gp->stream, out, y, g, n);
    return arwkv__hip_launched("RWKV-6 output gate");
}
ARWKV_PRIVATE arwkv_result arwkv__hip_r6_gate_backward(arwkv_backend *be, float *dy, float *dg, const float *dout, const float *y, const float *g,
                                                size_t n) {
    if (!n) return ARWKV_OK;
    arwkv__gpu *gp = ARWKV__G(be);
    ARWKV__LAUNCH(arwkv__r6_gate_bwd_kernel, arwkv__hip_blocks(gp, n), 256, gp->stream, dy, dg, dout, y, g, n);
    return arwkv__hip_launched("RWKV-6 output gate backward");
}

/* ---- Keys and values to every head ---------------------------------------------------------------- */
__global__ void arwkv__r6_kv_fwd_kernel(float *kk, float *vv, const float *k, const float *v, const float *w, int H, int KVH, int N,
                                        size_t n) {
    ARWKV__GRID_LOOP(u, n) {
        size_t HN = (size_t)H * N, row = u / HN;
        int e = (int)(u % HN), h = e / N, i = e % N;
        size_t src = row * KVH * N + (size_t)(h / (H / KVH)) * N + i;
        float kv = k[src];
        kk[u] = kv - kv * w[u]; /* as llama.cpp's graph (and the CPU): k - k w */
        vv[u] = v[src];
    }
}

/* One thread per (row, kv channel) adds up the heads of its group in order. */
__global__ void arwkv__r6_kv_bwd_kernel(float *dk, float *dv, float *dw, const float *dkk, const float *dvv, const float *k, const float *w,
                                        int H, int KVH, int N, size_t n) {
    ARWKV__GRID_LOOP(u, n) {
        size_t KN = (size_t)KVH * N, row = u / KN, HN = (size_t)H * N;
        int e = (int)(u % KN), g = e / N, i = e % N, group = H / KVH;
        float kv = k[u], sk = 0.0f, sv = 0.0f;
        for (int h = g * group; h < (g + 1) * group; h++) {
            size_t at = row * HN + (size_t)h * N + i;
            float d = dkk[at];
            sk += d * (1.0f - w[at]);
            sv += dvv[at];
            dw[at] -= d * kv;
        }
        dk[u] = sk;
        dv[u] = sv;
    }
}

ARWKV_PRIVATE arwkv_result arwkv__hip_r6_kv_expand_forward(arwkv_backend *be, float *kk, float *vv, const float *k, const float *v, const float *w,
                                                    int rows, int H, int KVH, int N) {
    ARWKV__TRY(arwkv__r6_kv_check(rows, H, KVH, N));
    if (!rows) return ARWKV_OK;
    arwkv__gpu *g = ARWKV__G(be);
    size_t n = (size_t)rows * H * N;
    ARWKV__LAUNCH(arwkv__r6_kv_fwd_kernel, arwkv__hip_blocks(g, n), 256, g->stream, kk, vv, k, v, w, H, KVH, N, n);
    return arwkv__hip_launched("RWKV-6 key/value heads");
}

ARWKV_PRIVATE arwkv_result arwkv__hip_r6_kv_expand_backward(arwkv_backend *be, float *dk, float *dv, float *dw, const float *dkk, const float *dvv,
                                                     const float *k, const float *w, int rows, int H, int KVH, int N) {
    ARWKV__TRY(arwkv__r6_kv_check(rows, H, KVH, N));
    if (!rows) return ARWKV_OK;
    arwkv__gpu *g = ARWKV__G(be);
    size_t n = (size_t)rows * KVH * N;
    ARWKV__LAUNCH(arwkv__r6_kv_bwd_kernel, arwkv__hip_blocks(g, n), 256, g->stream, dk, dv, dw, dkk, dvv, k, w, H, KVH, N, n);
    return arwkv__hip_launched("RWKV-6 key/value heads backward");
}

/* ---- WKV6: the gated linear-attention recurrence -------------------------------------------------------
   Per sequence b and head h, an N x N fp32 state S[i][j] (i key channel, j value channel):
       S_t = diag(w_t) S_{t-1} + k_t v_t^T        y_t = scale r_t^T S_t
   Every element S[i][j] evolves on its own (the decay is per key channel, not a matrix); only the
   read-outs mix them: y sums over i, and the backward's dr, dk, dw sum over j and dv over i. So each
   kernel gives a thread whole columns or whole rows of the state, whichever makes its sums local.

   Forward: blocks of one (sequence, head, group of up to 64 value channels); thread j holds column
   j of S (N registers). Each chunk of ARWKV_WKV6_CHUNK tokens stages r scale, k, w (every key
   channel) and v (the block's columns) in shared memory; the state is saved to ckpt before the
   chunk, as the CPU does.

   Backward, with G_t = d loss / d S_t (future tokens included):
       G_t = scale r_t dy_t^T + diag(w_{t+1}) G_{t+1}
       dr_t = scale S_t dy_t    dk_t = G_t v_t    dv_t = G_t^T k_t    dw_t[i] = sum_j G_t[i][j] S_{t-1}[i][j]
   in two kernels, chunks from the last:
     dv    columns again (thread j holds column j of G): dv_t[j] = sum_i k_t[i] G_t[i][j] in the
           CPU's order (i ascending). It needs no state at all.
     rows  thread (i, p) holds key row i of S and G over the value channels j = p, p + P, ... (32 of
           them; P threads share a row and add their partial sums by shuffles in a fixed order).
           The chunk is replayed forward from its checkpoint, giving dr_t from S_t and keeping the
           state at the chunk's middle; then walking back, each S_{t-1} is replayed again from the
           nearer of the two saved states (at most 7 steps). Replaying costs about five times the
           forward's arithmetic but keeps every state in registers: no state is divided by a decay
           (which may be arbitrarily close to 0) and none goes through memory. */
#define ARWKV__W6_COLS 64 /* value channels per block of the forward and dv kernels */
#define ARWKV__W6_PART 32 /* value channels of a key row per thread of the rows kernel */

template <int N> struct arwkv__w6_shape {
    enum {
        COLS = N < ARWKV__W6_COLS ? N : ARWKV__W6_COLS, /* threads of a forward / dv block */
        PART = N < ARWKV__W6_PART ? N : ARWKV__W6_PART,
        P = N / PART,                           /* threads per key row */
        ROWS = 64 / P < N ? 64 / P : N,         /* key rows per block of the rows kernel */
        CH = ARWKV_WKV6_CHUNK,
        HALF = ARWKV_WKV6_CHUNK / 2
    };
};

/* One step of an element of the state: S w + k v, in the same roundings everywhere (forward and
   both replays), so the backward's states are the forward's to the bit. */
ARWKV__DEV float arwkv__wkv6_next(float s, float w, float k, float v) { return fmaf(s, w, k * v); }

/* The sum of the P partial sums of a key row (adjacent lanes), the same on every lane. */
template <int P> ARWKV__DEV float arwkv__wkv6_row_sum(float v) {
#pragma unroll
    for (int o = P / 2; o > 0; o >>= 1) v += ARWKV__SHFL_XOR(v, o);
    return v;
}

template <int N>
__global__ void __launch_bounds__(arwkv__w6_shape<N>::COLS)
    arwkv__wkv6_fwd_kernel(float *y, float *s_out, float *ckpt, const float *r, const float *k, const float *v, const float *w,
                           const float *s0, int T, int H, float scale) {
    typedef arwkv__w6_shape<N> Sh;
    enum { J = Sh::COLS, CH = Sh::CH };
    __shared__ float sr[CH][N], sk[CH][N], sw[CH][N], sv[CH][J];
    const int groups = N / J, task = blockIdx.x / groups, j0 = (int)(blockIdx.x % groups) * J, jt = threadIdx.x, j = j0 + jt;
    const int b = task / H, h = task % H, n_chunks = (T + CH - 1) / CH;
    const size_t HN = (size_t)H * N, NN = (size_t)N * N, head = (size_t)b * T * HN + (size_t)h * N;
    float S[N];
#pragma unroll
    for (int i = 0; i < N; i++) S[i] = s0 ? s0[(size_t)task * NN + (size_t)i * N + j] : 0.0f;
    for (int c = 0; c < n_chunks; c++) {
        const int t0 = c * CH, len = T - t0 < CH ? T - t0 : CH;
        if (ckpt) {
            float *dst = ckpt + ((size_t)task * n_chunks + c) * NN + j;
#pragma unroll
            for (int i = 0; i < N; i++) dst[(size_t)i * N] = S[i];
        }
        __syncthreads(); /* the previous chunk's inputs are no longer read */
        for (int u = jt; u < len * N; u += J) {
            size_t o = head + (size_t)(t0 + u / N) * HN + u % N;
            sr[u / N][u % N] = r[o] * scale, sk[u / N][u % N] = k[o], sw[u / N][u % N] = w[o];
        }
        for (int l = 0; l < len; l++) sv[l][jt] = v[head + (size_t)(t0 + l) * HN + j];
        __syncthreads();
        for (int l = 0; l < len; l++) {
            const float vj = sv[l][jt];
            float yj = 0.0f;
#pragma unroll
            for (int i = 0; i < N; i++) {
                float s = arwkv__wkv6_next(S[i], sw[l][i], sk[l][i], vj);
                S[i] = s;
                yj = fmaf(sr[l][i], s, yj);
            }
            y[head + (size_t)(t0 + l) * HN + j] = yj;
        }
    }
    if (s_out) /* after every read of s0: it may be the same array */
#pragma unroll
        for (int i = 0; i < N; i++) s_out[(size_t)task * NN + (size_t)i * N + j] = S[i];
}

template <int N>
__global__ void __launch_bounds__(arwkv__w6_shape<N>::COLS)
    arwkv__wkv6_bwd_dv_kernel(float *dv, const float *dy, const float *r, const float *k, const float *w, int T, int H, float scale) {
    typedef arwkv__w6_shape<N> Sh;
    enum { J = Sh::COLS, CH = Sh::CH };
    __shared__ float sr[CH][N], sk[CH][N], sw[CH][N], sdy[CH][J];
    const int groups = N / J, task = blockIdx.x / groups, jt = threadIdx.x, j = (int)(blockIdx.x % groups) * J + jt;
    const int b = task / H, h = task % H, n_chunks = (T + CH - 1) / CH;
    const size_t HN = (size_t)H * N, head = (size_t)b * T * HN + (size_t)h * N;
    float G[N];
#pragma unroll
    for (int i = 0; i < N; i++) G[i] = 0.0f;
    for (int c = n_chunks - 1; c >= 0; c--) {
        const int t0 = c * CH, len = T - t0 < CH ? T - t0 : CH;
        __syncthreads();
        for (int u = jt; u < len * N; u += J) {
            size_t o = head + (size_t)(t0 + u / N) * HN + u % N;
            sr[u / N][u % N] = r[o] * scale, sk[u / N][u % N] = k[o], sw[u / N][u % N] = w[o];
        }
        for (int l = 0; l < len; l++) sdy[l][jt] = dy[head + (size_t)(t0 + l) * HN + j];
        __syncthreads();
        for (int l = len - 1; l >= 0; l--) {
            const float dyj = sdy[l][jt];
            float acc = 0.0f;
#pragma unroll
            for (int i = 0; i < N; i++) {
                float g = fmaf(sr[l][i], dyj, G[i]);
                acc = fmaf(sk[l][i], g, acc);
                G[i] = g * sw[l][i];
            }
            dv[head + (size_t)(t0 + l) * HN + j] = acc;
        }
    }
}

template <int N>
__global__ void __launch_bounds__(arwkv__w6_shape<N>::ROWS * arwkv__w6_shape<N>::P)
    arwkv__wkv6_bwd_rows_kernel(float *dr, float *dk, float *dw, const float *dy, const float *r, const float *k, const float *v,
                                const float *w, const float *ckpt, int T, int H, float scale) {
    typedef arwkv__w6_shape<N> Sh;
    enum { J = Sh::PART, P = Sh::P, RB = Sh::ROWS, CH = Sh::CH, HALF = Sh::HALF };
    __shared__ float sv[CH][N], sdy[CH][N], sr[CH][RB], sk[CH][RB], sw[CH][RB];
    const int groups = N / RB, task = blockIdx.x / groups, i0 = (int)(blockIdx.x % groups) * RB, tid = threadIdx.x;
    const int il = tid / P, p = tid % P, i = i0 + il;
    const int b = task / H, h = task % H, n_chunks = (T + CH - 1) / CH;
    const size_t HN = (size_t)H * N, NN = (size_t)N * N, head = (size_t)b * T * HN + (size_t)h * N;
    float G[J], ck[J], mid[J], S[J]; /* value channels p + P jj of row i */
#pragma unroll
    for (int jj = 0; jj < J; jj++) G[jj] = 0.0f;
    for (int c = n_chunks - 1; c >= 0; c--) {
        const int t0 = c * CH, len = T - t0 < CH ? T - t0 : CH;
        __syncthreads();
        for (int u = tid; u < len * N; u += RB * P) {
            size_t o = head + (size_t)(t0 + u / N) * HN + u % N;
            sv[u / N][u % N] = v[o], sdy[u / N][u % N] = dy[o];
        }
        for (int u = tid; u < len * RB; u += RB * P) {
            size_t o = head + (size_t)(t0 + u / RB) * HN + i0 + u % RB;
            sr[u / RB][u % RB] = r[o] * scale, sk[u / RB][u % RB] = k[o], sw[u / RB][u % RB] = w[o];
        }
        __syncthreads();
        const float *src = ckpt + ((size_t)task * n_chunks + c) * NN + (size_t)i * N + p;
#pragma unroll
        for (int jj = 0; jj < J; jj++) ck[jj] = src[jj * P], S[jj] = ck[jj], mid[jj] = ck[jj];
        /* forward through the chunk: dr from each S_t; the state before token HALF kept */
        for (int l = 0; l < len; l++) {
            if (l == HALF)
#pragma unroll
                for (int jj = 0; jj < J; jj++) mid[jj] = S[jj];
            const float wi = sw[l][il], ki = sk[l][il];
            float acc = 0.0f;
#pragma unroll
            for (int jj = 0; jj < J; jj++) {
                S[jj] = arwkv__wkv6_next(S[jj], wi, ki, sv[l][jj * P + p]);
                acc = fmaf(sdy[l][jj * P + p], S[jj], acc);
            }
            acc = arwkv__wkv6_row_sum<P>(acc);
            if (p == 0) dr[head + (size_t)(t0 + l) * HN + i] = acc * scale;
        }
        /* back through the chunk: S_{t-1} replayed from the nearer saved state, then G */
        for (int l = len - 1; l >= 0; l--) {
            const int from = l >= HALF ? HALF : 0;
#pragma unroll
            for (int jj = 0; jj < J; jj++) S[jj] = l >= HALF ? mid[jj] : ck[jj];
            for (int m = from; m < l; m++) {
                const float wm = sw[m][il], km = sk[m][il];
#pragma unroll
                for (int jj = 0; jj < J; jj++) S[jj] = arwkv__wkv6_next(S[jj], wm, km, sv[m][jj * P + p]);
            }
            const float ri = sr[l][il], wi = sw[l][il];
            float ak = 0.0f, aw = 0.0f;
#pragma unroll
            for (int jj = 0; jj < J; jj++) {
                const int jv = jj * P + p;
                float g = fmaf(ri, sdy[l][jv], G[jj]);
                ak = fmaf(g, sv[l][jv], ak);
                aw = fmaf(g, S[jj], aw);
                G[jj] = g * wi; /* carried to token t-1 as diag(w_t) G_t */
            }
            ak = arwkv__wkv6_row_sum<P>(ak);
            aw = arwkv__wkv6_row_sum<P>(aw);
            if (p == 0) {
                size_t o = head + (size_t)(t0 + l) * HN + i;
                dk[o] = ak;
                dw[o] = aw;
            }
        }
    }
}

ARWKV_PRIVATE arwkv_result arwkv__hip_wkv6_shape(int B, int T, int H, int N) {
    return arwkv__wkv_check("WKV6", B, T, H, N, N == 16 || N == 32 || N == 64 || N == 128, "16, 32, 64 or 128 on the GPU");
}

template <int N>
ARWKV_PRIVATE void arwkv__wkv6_fwd_launch(hipStream_t s, float *y, float *s_out, float *ckpt, const float *r, const float *k, const float *v,
                                   const float *w, const float *s0, int B, int T, int H, float scale) {
    typedef arwkv__w6_shape<N> Sh;
    ARWKV__LAUNCH(arwkv__wkv6_fwd_kernel<N>, (unsigned)((size_t)B * H * (N / Sh::COLS)), Sh::COLS, s, y, s_out, ckpt, r, k, v, w, s0, T, H,
                  scale);
}

template <int N>
ARWKV_PRIVATE void arwkv__wkv6_bwd_launch(hipStream_t s, float *dr, float *dk, float *dv, float *dw, const float *dy, const float *r,
                                   const float *k, const float *v, const float *w, const float *ckpt, int B, int T, int H, float scale) {
    typedef arwkv__w6_shape<N> Sh;
    ARWKV__LAUNCH(arwkv__wkv6_bwd_dv_kernel<N>, (unsigned)((size_t)B * H * (N / Sh::COLS)), Sh::COLS, s, dv, dy, r, k, w, T, H, scale);
    ARWKV__LAUNCH(arwkv__wkv6_bwd_rows_kernel<N>, (unsigned)((size_t)B * H * (N / Sh::ROWS)), Sh::ROWS * Sh::P, s, dr, dk, dw, dy, r, k, v,
                  w, ckpt, T, H, scale);
}

#define ARWKV__W6_DISPATCH(N, fn, ...)              \
    do {                                            \
        if ((N) == 16) fn<16>(__VA_ARGS__);         \
        else if ((N) == 32) fn<32>(__VA_ARGS__);    \
        else if ((N) == 64) fn<64>(__VA_ARGS__);    \
        else fn<128>(__VA_ARGS__);                  \
    } while (0)

ARWKV_PRIVATE arwkv_result arwkv__hip_r6_wkv6_forward(arwkv_backend *be, float *y, float *s_out, float *ckpt, const float *r, const float *k,
                                               const float *v, const float *w, const float *s0, int B, int T, int H, int N, float scale) {
    ARWKV__TRY(arwkv__hip_wkv6_shape(B, T, H, N));
    if (B == 0) return ARWKV_OK;
    ARWKV__W6_DISPATCH(N, arwkv__wkv6_fwd_launch, ARWKV__G(be)->stream, y, s_out, ckpt, r, k, v, w, s0, B, T, H, scale);
    return arwkv__hip_launched("WKV6 forward");
}

ARWKV_PRIVATE arwkv_result arwkv__hip_r6_wkv6_backward(arwkv_backend *be, float *dr, float *dk, float *dv, float *dw, const float *dy,
                                                const float *r, const float *k, const float *v, const float *w, const float *ckpt, int B,
                                                int T, int H, int N, float scale) {
    ARWKV__TRY(arwkv__hip_wkv6_shape(B, T, H, N));
    ARWKV__TRY(arwkv__wkv_ckpt_check("WKV6", B, T, ckpt));
    if (B == 0 || T == 0) return ARWKV_OK;
    ARWKV__W6_DISPATCH(N, arwkv__wkv6_bwd_launch, ARWKV__G(be)->stream, dr, dk, dv, dw, dy, r, k, v, w, ckpt, B, T, H, scale);
    return arwkv__hip_launched("WKV6 backward");
}

static const arwkv_rwkv6_ops arwkv__hip_rwkv6_ops = {
    arwkv__hip_r6_shift_forward,     arwkv__hip_r6_shift_backward,     arwkv__hip_r6_ddlerp_forward, arwkv__hip_r6_ddlerp_backward,
    arwkv__hip_r6_tanh_forward,      arwkv__hip_r6_tanh_backward,      arwkv__hip_r6_decay_forward,  arwkv__hip_r6_decay_backward,
    arwkv__hip_r6_kv_expand_forward, arwkv__hip_r6_kv_expand_backward, arwkv__hip_r6_wkv6_forward,   arwkv__hip_r6_wkv6_backward,
    arwkv__hip_r6_gate_forward,      arwkv__hip_r6_gate_backward,      arwkv__hip_r6_colsum};

/* ============================================================================================
   The backend
   ============================================================================================ */

/* What the device pass was compiled with: whether the GEMM has a matrix-unit kernel, and the warp
   width the kernels assume (checked against the device's, so a mismatched build fails loudly). */
__global__ void arwkv__probe_kernel(int *out) {
#if defined(ARWKV__MMA_SYNC) || defined(ARWKV__MFMA)
    out[0] = 1;
#else
    out[0] = 0;
#endif
    out[1] = ARWKV__WARP;
#if defined(ARWKV__WGMMA_DEVICE)
    out[2] = 1;
#else
    out[2] = 0;
#endif
#if defined(ARWKV__MMA_SYNC)
    out[3] = 1;
#else
    out[3] = 0;
#endif
}

ARWKV_PRIVATE void arwkv__hip_destroy(arwkv_backend *be) {
    arwkv__gpu *g = ARWKV__G(be);
    if (g) {
        (void)hipSetDevice(g->device);
        if (g->stream) (void)hipStreamSynchronize(g->stream);
        if (g->partial) (void)hipFree(g->partial);
        if (g->scratch) (void)hipFree(g->scratch);
        if (g->pack) (void)hipFree(g->pack);
        if (g->copy_stream) (void)hipStreamSynchronize(g->copy_stream);
        if (g->stream) (void)hipStreamDestroy(g->stream);
        if (g->copy_stream) (void)hipStreamDestroy(g->copy_stream);
        if (g->queued) (void)hipEventDestroy(g->queued);
        for (int i = 0; i < 2; i++)
            if (g->lane_done[i]) (void)hipEventDestroy(g->lane_done[i]);
        arwkv__free(g);
    }
    arwkv__mem_accounting_free(be);
    arwkv_pool_destroy(be->pool);
    arwkv__free(be);
}

ARWKV_PRIVATE arwkv_result arwkv__hip_setup(arwkv_backend *be, int device) {
    int count = 0;
    hipError_t e = hipGetDeviceCount(&count);
    if (e != hipSuccess) return arwkv__fail(ARWKV_ERR_GPU, "no usable GPU: the %s runtime says: %s", ARWKV__GPU_API, hipGetErrorString(e));
    if (device < 0 || device >= count)
        return arwkv__fail(ARWKV_ERR_GPU, "GPU %d asked for, but the %s runtime sees %d device%s", device, ARWKV__GPU_API, count,
                           count == 1 ? "" : "s");
    arwkv__gpu *g = (arwkv__gpu *)arwkv__calloc(1, sizeof *g);
    if (!g) return arwkv__fail(ARWKV_ERR_OUT_OF_MEMORY, "GPU backend: out of memory");
    be->gpu = g;
    g->be = be;
    g->device = device;
    ARWKV__HIP_TRY(hipSetDevice(device), "selecting the GPU");
    ARWKV__HIP_TRY(hipGetDeviceProperties(&g->prop, device), "reading the GPU's properties");
    ARWKV__HIP_TRY(hipStreamCreate(&g->stream), "creating a stream");
    ARWKV__HIP_TRY(hipStreamCreate(&g->copy_stream), "creating a stream");
    ARWKV__HIP_TRY(hipEventCreate(&g->queued), "creating an event");
    for (int i = 0; i < 2; i++) ARWKV__HIP_TRY(hipEventCreate(&g->lane_done[i]), "creating an event");
    g->max_blocks = g->prop.multiProcessorCount > 0 ? 32 * g->prop.multiProcessorCount : 4096;
    void *scratch = NULL;
    ARWKV__HIP_TRY(hipMalloc(&scratch, ARWKV__REDUCE_BLOCKS * sizeof(double) + 64), "allocating scratch memory");
    g->partial = (double *)scratch;
    g->scalar = (float *)(g->partial + ARWKV__REDUCE_BLOCKS);
    int *probe = (int *)g->scalar, got[4] = {0, 0, 0, 0};
    ARWKV__LAUNCH(arwkv__probe_kernel, 1, 1, g->stream, probe);
    e = hipGetLastError();
    if (e != hipSuccess)
        return arwkv__fail(ARWKV_ERR_GPU, "GPU %d (%s): cannot run this build's kernels: %s; rebuild for this device (make gpu GPU_ARCH=... or HIP_ARCH=...)",
                           device, g->prop.name, hipGetErrorString(e));
    ARWKV__HIP_TRY(hipMemcpyAsync(got, probe, sizeof got, hipMemcpyDeviceToHost, g->stream), "probing the device code");
    ARWKV__HIP_TRY(hipStreamSynchronize(g->stream), "probing the device code");
    if (got[1] != g->prop.warpSize)
        return arwkv__fail(ARWKV_ERR_GPU, "GPU %d (%s) runs warps of %d threads, but this build's kernels assume %d: rebuild for this device",
                           device, g->prop.name, g->prop.warpSize, got[1]);
    g->has_mma = got[0];
    g->has_mma_sync = got[3];
    const char *mode = getenv("ARWKV_GPU_GEMM");
    g->gemm_fp32 = mode && strcmp(mode, "fp32") == 0;
    if (mode && *mode && strcmp(mode, "fp32") != 0 && strcmp(mode, "bf16") != 0 && strcmp(mode, "mma") != 0)
        return arwkv__fail(ARWKV_ERR_INVALID_ARGUMENT,
                           "ARWKV_GPU_GEMM=%s: use bf16 (matrix units, the default), mma (the portable matrix-unit kernel, no wgmma) or fp32", mode);
    g->wgmma_min_macs = 1 << 22; /* below ~4M multiply-adds the packing costs more than the faster kernel saves */
#if defined(ARWKV__WGMMA_HOST)
    if (!(mode && strcmp(mode, "mma") == 0)) arwkv__wg_setup(g, got[2] && got[0]);
#endif
    return ARWKV_OK;
}

ARWKV_API const char *arwkv_gpu_runtime(void) { return ARWKV__GPU_API; }

ARWKV_API const char *arwkv_gpu_gemm_path(const arwkv_backend *be) {
    return be && be->on_gpu && be->gpu ? arwkv__hip_gemm_path_name(ARWKV__G(be)) : "not a GPU backend";
}

ARWKV_API arwkv_result arwkv_backend_gpu(int device, arwkv_backend **out) {
    *out = NULL;
    arwkv_backend *be = (arwkv_backend *)arwkv__calloc(1, sizeof *be);
    if (!be) return arwkv__fail(ARWKV_ERR_OUT_OF_MEMORY, "GPU backend: out of memory");
    arwkv_result r = arwkv_pool_create(0, &be->pool);
    if (r == ARWKV_OK) r = arwkv__hip_setup(be, device);
    if (r != ARWKV_OK) {
        arwkv__hip_destroy(be);
        return r;
    }
    arwkv__gpu *g = ARWKV__G(be);
    snprintf(be->name, sizeof be->name, "gpu %d: %.50s", device, g->prop.name);
    be->on_gpu = 1;
    arwkv__backend_set_ops(be, &arwkv__hip_mem_ops, &arwkv__hip_core_ops, &arwkv__hip_qwen_ops, &arwkv__hip_rwkv7_ops,
                           &arwkv__hip_rwkv6_ops, &arwkv__hip_loss_ops, &arwkv__hip_optim_ops);
    be->destroy = arwkv__hip_destroy;
    be->memory_info = arwkv__hip_memory_info;
    *out = be;
    return ARWKV_OK;
}

#endif /* ARWKV_HIP_IMPLEMENTATION_ONCE */
#endif /* ARWKV_HIP_IMPLEMENTATION */
