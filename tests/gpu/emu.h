/* emu.h - run arwkv_hip.h's kernels on the CPU, so their logic is tested on machines without a GPU
   (this one, CI). Test infrastructure only: include it before arwkv_hip.h, compile as plain C++.

   What it models:
     - a kernel launch runs its blocks one after another; the threads of a block are fibers
       (ucontext) that run until they reach a barrier, so __syncthreads() means exactly "every
       thread of the block has arrived" and shared memory (__shared__ becomes `static`) is one
       array for the block;
     - warps of ARWKV_EMU_WARP lanes (32 like NVIDIA, 64 like CDNA): a shuffle is an exchange among
       the lanes of one warp with a warp-level barrier, so a reduction inside a branch that only
       some warps take works as on hardware, and mismatched barriers are reported (deadlock);
     - the matrix-core instructions from their documented register layouts: ARWKV_EMU_MATRIX=1 is
       mma.sync.m16n8k16 (warp 32), 2 is MFMA 16x16x16 (wave 64). Each lane deposits its
       fragments, then computes its own output elements from the whole warp's, so the kernel's
       fragment loads and output mapping are checked against those layouts.
   What it does not model: speed, memory coalescing, the order of fp32 additions inside a matrix
   instruction, and races between threads without a barrier (fibers only switch at barriers). Device
   memory is host memory (hipMalloc is malloc). */
#ifndef ARWKV_EMU_H
#define ARWKV_EMU_H

#define ARWKV_HIP_EMULATOR 1
#ifndef ARWKV_EMU_WARP
#define ARWKV_EMU_WARP 32
#endif
#ifndef ARWKV_EMU_MATRIX
#define ARWKV_EMU_MATRIX (ARWKV_EMU_WARP == 64 ? 2 : 1)
#endif

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <ucontext.h>

#include <functional>
#include <vector>

/* ---- the types and qualifiers of the kernel language ---------------------------------------- */
struct dim3 {
    unsigned x, y, z;
    dim3(unsigned a = 1, unsigned b = 1, unsigned c = 1) : x(a), y(b), z(c) {}
};
struct arwkv_emu_uint3 {
    unsigned x, y, z;
};
struct alignas(8) uint2 {
    unsigned x, y;
};
struct alignas(16) uint4 {
    unsigned x, y, z, w;
};
struct alignas(16) float4 {
    float x, y, z, w;
};
struct alignas(8) float2 {
    float x, y;
};
static inline float2 make_float2(float x, float y) { return float2{x, y}; }
static inline float4 make_float4(float x, float y, float z, float w) { return float4{x, y, z, w}; }
static inline uint2 make_uint2(unsigned x, unsigned y) { return uint2{x, y}; }

#define __global__
#define __device__
#define __host__
#define __forceinline__ inline
#define __launch_bounds__(...)
#define __shared__ static

static inline unsigned __float_as_uint(float f) {
    unsigned u;
    memcpy(&u, &f, 4);
    return u;
}
static inline float __uint_as_float(unsigned u) {
    float f;
    memcpy(&f, &u, 4);
    return f;
}
static inline float __fmul_rn(float a, float b) { return a * b; }
static inline float __fadd_rn(float a, float b) { return a + b; }
static inline float __fsub_rn(float a, float b) { return a - b; }

/* ---- the runtime ---------------------------------------------------------------------------------- */
typedef int hipError_t;
enum { hipSuccess = 0, hipErrorInvalidValue = 1, hipErrorOutOfMemory = 2, hipErrorInvalidConfiguration = 9 };
enum { hipMemcpyHostToDevice = 1, hipMemcpyDeviceToHost = 2, hipMemcpyDeviceToDevice = 3 };
typedef struct arwkv_emu_stream *hipStream_t;
typedef struct arwkv_emu_event {
    double t;
} *hipEvent_t;
struct hipDeviceProp_t {
    char name[256];
    size_t totalGlobalMem, sharedMemPerBlock;
    int multiProcessorCount, warpSize, major, minor;
};

namespace arwkv_emu {
inline hipError_t &last_error() {
    static hipError_t e = hipSuccess;
    return e;
}
inline double now() {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + 1e-9 * ts.tv_nsec;
}
} // namespace arwkv_emu

static inline const char *hipGetErrorString(hipError_t e) {
    switch (e) {
    case hipSuccess: return "no error";
    case hipErrorOutOfMemory: return "out of memory (emulator)";
    case hipErrorInvalidConfiguration: return "invalid launch configuration (emulator)";
    default: return "invalid value (emulator)";
    }
}
static inline hipError_t hipGetLastError(void) {
    hipError_t e = arwkv_emu::last_error();
    arwkv_emu::last_error() = hipSuccess;
    return e;
}
static inline hipError_t hipGetDeviceCount(int *n) { return *n = 1, hipSuccess; }
static inline hipError_t hipSetDevice(int d) { return d == 0 ? hipSuccess : hipErrorInvalidValue; }
static inline hipError_t hipGetDeviceProperties(hipDeviceProp_t *p, int d) {
    memset(p, 0, sizeof *p);
    snprintf(p->name, sizeof p->name, "CPU emulator (warp %d, %s)", ARWKV_EMU_WARP, ARWKV_EMU_MATRIX == 1 ? "mma.sync" : "MFMA");
    p->totalGlobalMem = (size_t)1 << 34, p->sharedMemPerBlock = 65536;
    p->multiProcessorCount = 4, p->warpSize = ARWKV_EMU_WARP, p->major = 9;
    return d == 0 ? hipSuccess : hipErrorInvalidValue;
}
static inline hipError_t hipDeviceSynchronize(void) { return hipSuccess; }
static inline hipError_t hipMemGetInfo(size_t *free_b, size_t *total_b) { return *free_b = *total_b = (size_t)1 << 34, hipSuccess; }
static inline hipError_t hipStreamCreate(hipStream_t *s) { return *s = (hipStream_t)1, hipSuccess; }
static inline hipError_t hipStreamDestroy(hipStream_t) { return hipSuccess; }
static inline hipError_t hipStreamSynchronize(hipStream_t) { return hipSuccess; }
static inline hipError_t hipMalloc(void **p, size_t n) {
    *p = NULL;
    if (n > ((size_t)1 << 40)) return hipErrorOutOfMemory;
    *p = aligned_alloc(256, (n + 255) / 256 * 256);
    return *p ? hipSuccess : hipErrorOutOfMemory;
}
static inline hipError_t hipFree(void *p) { return free(p), hipSuccess; }
static inline hipError_t hipMemsetAsync(void *p, int v, size_t n, hipStream_t) { return memset(p, v, n), hipSuccess; }
static inline hipError_t hipMemcpyAsync(void *d, const void *s, size_t n, int, hipStream_t) { return memmove(d, s, n), hipSuccess; }
static inline hipError_t hipEventCreate(hipEvent_t *e) { return *e = new arwkv_emu_event(), hipSuccess; }
static inline hipError_t hipEventDestroy(hipEvent_t e) { return delete e, hipSuccess; }
static inline hipError_t hipEventRecord(hipEvent_t e, hipStream_t) { return e->t = arwkv_emu::now(), hipSuccess; }
static inline hipError_t hipEventSynchronize(hipEvent_t) { return hipSuccess; }
static inline hipError_t hipStreamWaitEvent(hipStream_t, hipEvent_t, unsigned) { return hipSuccess; } /* one queue: in order already */
static inline hipError_t hipHostMalloc(void **p, size_t n, unsigned) { return hipMalloc(p, n); }
static inline hipError_t hipHostFree(void *p) { return hipFree(p); }
static inline hipError_t hipEventElapsedTime(float *ms, hipEvent_t a, hipEvent_t b) { return *ms = (float)((b->t - a->t) * 1e3), hipSuccess; }

/* ---- blocks as fibers ---------------------------------------------------------------------------
   A switch between fibers saves the callee-saved registers and the stack pointer: on x86-64 a few
   instructions (below); elsewhere swapcontext, which also saves the signal mask (a system call,
   several times slower). Barriers are frequent (a shuffle is two), so the switch is the cost. */
#if defined(__x86_64__) && !defined(ARWKV_EMU_UCONTEXT)
extern "C" void arwkv_emu_switch(void **save_sp, void *new_sp);
__asm__(".text\n"
        ".globl arwkv_emu_switch\n"
        ".type arwkv_emu_switch,@function\n"
        "arwkv_emu_switch:\n"
        "  pushq %rbp\n  pushq %rbx\n  pushq %r12\n  pushq %r13\n  pushq %r14\n  pushq %r15\n"
        "  movq %rsp, (%rdi)\n"
        "  movq %rsi, %rsp\n"
        "  popq %r15\n  popq %r14\n  popq %r13\n  popq %r12\n  popq %rbx\n  popq %rbp\n"
        "  ret\n"
        ".size arwkv_emu_switch, .-arwkv_emu_switch\n");
#define ARWKV_EMU_FAST_SWITCH 1
#endif

namespace arwkv_emu {
enum { RUNNING, AT_BLOCK_BARRIER, AT_WARP_BARRIER, FINISHED };
enum { STACK = 128 * 1024, MAX_THREADS = 1024 };

struct fiber {
#ifdef ARWKV_EMU_FAST_SWITCH
    void *sp;
#else
    ucontext_t ctx;
#endif
    int state, linear;
    arwkv_emu_uint3 tid;
};

struct machine {
    std::vector<fiber> fibers;
    std::vector<char *> stacks;
#ifdef ARWKV_EMU_FAST_SWITCH
    void *scheduler_sp;
#else
    ucontext_t scheduler;
#endif
    fiber *current = nullptr;
    const std::function<void()> *body = nullptr;
    arwkv_emu_uint3 block_idx{0, 0, 0}, block_dim{1, 1, 1}, grid_dim{1, 1, 1};
    double slots[MAX_THREADS]; /* shuffle exchange */
};
inline machine &M() {
    static machine m;
    return m;
}

/* from the running fiber to the scheduler, and back */
inline void to_scheduler(fiber *f) {
#ifdef ARWKV_EMU_FAST_SWITCH
    arwkv_emu_switch(&f->sp, M().scheduler_sp);
#else
    swapcontext(&f->ctx, &M().scheduler);
#endif
}
inline void to_fiber(fiber *f) {
    M().current = f;
#ifdef ARWKV_EMU_FAST_SWITCH
    arwkv_emu_switch(&M().scheduler_sp, f->sp);
#else
    swapcontext(&M().scheduler, &f->ctx);
#endif
}

inline void yield(int state) {
    fiber *f = M().current;
    f->state = state;
    to_scheduler(f);
}
inline void syncthreads() { yield(AT_BLOCK_BARRIER); }
inline void syncwarp() { yield(AT_WARP_BARRIER); }

/* A fiber's first frame: run the kernel body, then leave for good. */
inline void trampoline() {
    (*M().body)();
    M().current->state = FINISHED;
    to_scheduler(M().current);
}

inline void start_fiber(fiber &f, char *stack) {
#ifdef ARWKV_EMU_FAST_SWITCH
    /* the frame arwkv_emu_switch pops: six saved registers, then trampoline as the return address;
       above it a dummy return address, so trampoline starts with rsp = 8 (mod 16) as after a call */
    uintptr_t top = ((uintptr_t)(stack + STACK)) & ~(uintptr_t)15;
    void **sp = (void **)(top - 64);
    for (int r = 0; r < 6; r++) sp[r] = nullptr;
    sp[6] = (void *)&trampoline;
    sp[7] = nullptr;
    f.sp = sp;
#else
    getcontext(&f.ctx);
    f.ctx.uc_stack.ss_sp = stack;
    f.ctx.uc_stack.ss_size = STACK;
    f.ctx.uc_link = nullptr;
    makecontext(&f.ctx, trampoline, 0);
#endif
}

template <typename V> V shfl_xor(V v, int mask) {
    machine &m = M();
    int me = m.current->linear, other = me ^ mask;
    if (other >= (int)m.fibers.size()) {
        fprintf(stderr, "emulator: shuffle with lane %d of a block of %zu threads\n", other, m.fibers.size());
        abort();
    }
    m.slots[me] = (double)v;
    syncwarp();
    V r = (V)m.slots[other];
    syncwarp();
    return r;
}

/* Run body for every thread of every block, blocks in order. */
inline void launch(const char *name, dim3 grid, dim3 block, std::function<void()> body) {
    machine &m = M();
    size_t nt = (size_t)block.x * block.y * block.z;
    if (nt == 0 || nt > MAX_THREADS || grid.x == 0 || grid.y == 0 || grid.z == 0 || grid.y > 65535 || grid.z > 65535) {
        last_error() = hipErrorInvalidConfiguration;
        return;
    }
    while (m.stacks.size() < nt) m.stacks.push_back((char *)malloc(STACK));
    m.fibers.assign(nt, fiber());
    m.body = &body;
    m.block_dim = {block.x, block.y, block.z};
    m.grid_dim = {grid.x, grid.y, grid.z};
    const int warps = (int)((nt + ARWKV_EMU_WARP - 1) / ARWKV_EMU_WARP);
    for (unsigned bz = 0; bz < grid.z; bz++)
        for (unsigned by = 0; by < grid.y; by++)
            for (unsigned bx = 0; bx < grid.x; bx++) {
                m.block_idx = {bx, by, bz};
                for (size_t t = 0; t < nt; t++) {
                    fiber &f = m.fibers[t];
                    start_fiber(f, m.stacks[t]);
                    f.state = RUNNING, f.linear = (int)t;
                    f.tid = {(unsigned)(t % block.x), (unsigned)(t / block.x % block.y), (unsigned)(t / ((size_t)block.x * block.y))};
                }
                for (;;) {
                    for (size_t t = 0; t < nt; t++)
                        if (m.fibers[t].state == RUNNING) to_fiber(&m.fibers[t]);
                    /* every thread has stopped: at a barrier, or finished */
                    int live = 0, at_block = 0, released = 0;
                    for (int w = 0; w < warps; w++) {
                        int wl = 0, ww = 0;
                        for (size_t t = (size_t)w * ARWKV_EMU_WARP; t < nt && t < (size_t)(w + 1) * ARWKV_EMU_WARP; t++) {
                            int s = m.fibers[t].state;
                            wl += s != FINISHED, ww += s == AT_WARP_BARRIER, at_block += s == AT_BLOCK_BARRIER;
                        }
                        live += wl;
                        if (wl > 0 && ww == wl) {
                            for (size_t t = (size_t)w * ARWKV_EMU_WARP; t < nt && t < (size_t)(w + 1) * ARWKV_EMU_WARP; t++)
                                m.fibers[t].state = RUNNING;
                            released = 1;
                        }
                    }
                    if (live == 0) break;
                    if (released) continue;
                    if (at_block == live) {
                        for (size_t t = 0; t < nt; t++)
                            if (m.fibers[t].state == AT_BLOCK_BARRIER) m.fibers[t].state = RUNNING;
                        continue;
                    }
                    fprintf(stderr, "emulator: %s, block (%u,%u,%u): threads wait at different barriers (a __syncthreads or a "
                                    "shuffle not reached by all)\n", name, bx, by, bz);
                    abort();
                }
            }
    m.body = nullptr;
}

/* ---- matrix-core instructions from their register layouts -------------------------------------- */
inline float bf16(unsigned h) { return __uint_as_float((h & 0xffffu) << 16); }

/* mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32, lane = 4 g + t (PTX ISA, "Matrix Fragments
   for mma.m16n8k16"): A registers {a0,a1} row g, cols 2t,2t+1; {a2,a3} row g+8; {a4,a5} row g,
   cols 2t+8,2t+9; {a6,a7} row g+8, cols 2t+8,2t+9. B registers {b0,b1} rows (k) 2t,2t+1, col g;
   {b2,b3} rows 2t+8,2t+9. C/D: c0,c1 row g, cols 2t,2t+1; c2,c3 row g+8. The lower k is the low half. */
inline void mma_bf16_16816(float (&d)[4], const unsigned (&a)[4], const unsigned (&b)[2]) {
    static unsigned fa[MAX_THREADS][4], fb[MAX_THREADS][2];
    machine &m = M();
    int me = m.current->linear, base = me - me % 32, lane = me % 32, g = lane / 4, t = lane % 4;
    memcpy(fa[me], a, sizeof fa[me]);
    memcpy(fb[me], b, sizeof fb[me]);
    syncwarp();
    auto A = [&](int r, int k) {
        unsigned w = fa[base + (r % 8) * 4 + (k % 8) / 2][(r >= 8) + 2 * (k >= 8)];
        return bf16(k % 2 ? w >> 16 : w);
    };
    auto B = [&](int k, int n) {
        unsigned w = fb[base + n * 4 + (k % 8) / 2][k >= 8];
        return bf16(k % 2 ? w >> 16 : w);
    };
    float out[4];
    for (int q = 0; q < 4; q++) {
        int r = g + 8 * (q / 2), c = 2 * t + q % 2;
        float s = d[q];
        for (int k = 0; k < 16; k++) s += A(r, k) * B(k, c);
        out[q] = s;
    }
    syncwarp();
    memcpy(d, out, sizeof out);
}

typedef float f4 __attribute__((vector_size(16)));
typedef short s4 __attribute__((vector_size(8)));

/* v_mfma_f32_16x16x16_bf16 (wave64): lane = i + 16 kb holds A[i][4kb..4kb+3] and B[4kb..4kb+3][i];
   D lane = j + 16 ib holds D[4ib..4ib+3][j]. */
inline f4 mfma_bf16_16x16x16(s4 a, s4 b, f4 c) {
    static short fa[MAX_THREADS][4], fb[MAX_THREADS][4];
    machine &m = M();
    int me = m.current->linear, base = me - me % 64, lane = me % 64, j = lane % 16, ib = lane / 16;
    for (int q = 0; q < 4; q++) fa[me][q] = a[q], fb[me][q] = b[q];
    syncwarp();
    f4 out;
    for (int r = 0; r < 4; r++) {
        int i = 4 * ib + r;
        float s = c[r];
        for (int k = 0; k < 16; k++)
            s += bf16((unsigned short)fa[base + i + 16 * (k / 4)][k % 4]) * bf16((unsigned short)fb[base + j + 16 * (k / 4)][k % 4]);
        out[r] = s;
    }
    syncwarp();
    return out;
}
} // namespace arwkv_emu

#define threadIdx (arwkv_emu::M().current->tid)
#define blockIdx (arwkv_emu::M().block_idx)
#define blockDim (arwkv_emu::M().block_dim)
#define gridDim (arwkv_emu::M().grid_dim)
#define __syncthreads() arwkv_emu::syncthreads()

#endif /* ARWKV_EMU_H */
