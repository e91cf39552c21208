/* arwkv.h - ARWKV in one C header: turn a Qwen2.5 Transformer into an RNN by distillation.
   No warranty; MIT licence (see the end of this file).

   ============================================================================================
   WHAT THIS IS
   ============================================================================================
   ARWKV keeps a trained Qwen2 model (embeddings, RMSNorms, SwiGLU MLPs, head) and replaces each
   layer's softmax attention by an RWKV-7 "time mix" (or RWKV-6 for QRWKV6). The new blocks are not
   pre-trained; they are taught by the Transformer itself:
     stage 1  each time mix learns to reproduce its layer's attention output (teacher-forced);
     stage 2  the whole student learns the teacher's next-token distribution (KL, full vocabulary);
     stage 3  supervised fine-tuning on chat conversations.
   The result needs constant memory per token (a fixed recurrent state, no KV cache).

   This header holds everything on the CPU: JSON and safetensors readers, the Qwen tokenizer, the
   Qwen2 teacher, the ARWKV-7 and QRWKV6 students (forward and backward), the distillation losses,
   AdamW, checkpoints and sampling. The companion arwkv_hip.h adds GPU kernels (HIP for MI300X,
   also compiled by nvcc for NVIDIA).

   ============================================================================================
   HOW TO USE IT
   ============================================================================================
   In exactly one C or C++ file:

       #define ARWKV_IMPLEMENTATION
       #include "arwkv.h"

   Everywhere else just #include "arwkv.h". A ten-line example (list a checkpoint's tensors):

       #define ARWKV_IMPLEMENTATION
       #include "arwkv.h"
       #include <stdio.h>
       int main(int argc, char **argv) {
           arwkv_safetensors *st;
           if (arwkv_st_open(argv[1], &st) != ARWKV_OK) { fprintf(stderr, "%s\n", arwkv_last_error()); return 1; }
           for (int i = 0; i < arwkv_st_count(st); i++)
               printf("%s %s\n", arwkv_st_tensor(st, i)->name, arwkv_dtype_name(arwkv_st_tensor(st, i)->dtype));
           arwkv_st_close(st);
           return 0;
       }

   Build it with a C11 compiler and libc: cc -O2 example.c -lm -lpthread

   ============================================================================================
   BUILD OPTIONS (define before including the implementation)
   ============================================================================================
       ARWKV_STATIC          make every public function static (private to one translation unit)
       ARWKV_API             decoration of public functions (default: extern)
       ARWKV_MALLOC(sz)      } allocation; define all three or none
       ARWKV_REALLOC(p,sz)   }
       ARWKV_FREE(p)         }
       ARWKV_ASSERT(x)       internal invariant checks (default: assert). Never used on input data:
                             bad input always returns an error code.
       ARWKV_NO_THREADS      no pthreads: every parallel loop runs on the calling thread
       ARWKV_NO_MMAP         read files with fread instead of mapping them

   ============================================================================================
   ERRORS
   ============================================================================================
   Every call that can fail returns an arwkv_result (ARWKV_OK is 0). arwkv_result_string() names
   the code; arwkv_last_error() gives the detail of the last failure on this thread: the file, the
   tensor or byte offset, and what to do. Nothing in this library aborts or exits on bad input.

   ============================================================================================
   READING ORDER OF THE IMPLEMENTATION
   ============================================================================================
     1. Support: errors, allocation, numbers (bf16/f16), thread pool
     2. JSON reader
     3. safetensors reader (mmap) and writer (atomic)
     4. config.json of the three architectures
     5. Tokenizer
     6. Ops, each forward beside its backward
     7. Models: teacher, students
     8. Training
     9. Generation
*/
#ifndef ARWKV_H_INCLUDED
#define ARWKV_H_INCLUDED

#include <stddef.h>
#include <stdint.h>

#define ARWKV_VERSION "0.1.0"

#ifndef ARWKV_API
#ifdef ARWKV_STATIC
#define ARWKV_API static
#else
#define ARWKV_API extern
#endif
#endif

#ifdef __cplusplus
extern "C" {
#endif

/* ============================================================================================
   Results and errors
   ============================================================================================ */

/* One list gives both the enum and its strings (X-macro). */
#define ARWKV__RESULTS(X)                                                         \
    X(ARWKV_OK, 0, "success")                                                     \
    X(ARWKV_ERR_INVALID_ARGUMENT, -1, "invalid argument")                         \
    X(ARWKV_ERR_IO, -2, "input/output error")                                     \
    X(ARWKV_ERR_FORMAT, -3, "malformed input")                                    \
    X(ARWKV_ERR_UNSUPPORTED, -4, "unsupported")                                   \
    X(ARWKV_ERR_OUT_OF_MEMORY, -5, "out of memory")                               \
    X(ARWKV_ERR_NOT_FOUND, -6, "not found")                                       \
    X(ARWKV_ERR_SHAPE, -7, "shape mismatch")                                      \
    X(ARWKV_ERR_NUMERIC, -8, "non-finite number")                                 \
    X(ARWKV_ERR_GPU, -9, "GPU error")                                             \
    X(ARWKV_ERR_INTERRUPTED, -10, "interrupted")

typedef enum arwkv_result {
#define ARWKV__RESULT_ENUM(name, value, text) name = value,
    ARWKV__RESULTS(ARWKV__RESULT_ENUM)
#undef ARWKV__RESULT_ENUM
    ARWKV__RESULT_END = -11
} arwkv_result;

/* A short fixed name for a result code ("malformed input"). Infallible. */
ARWKV_API const char *arwkv_result_string(arwkv_result r);
/* The detail of the last error on this thread ("" if none). Infallible. */
ARWKV_API const char *arwkv_last_error(void);
/* Forget the last error on this thread. Infallible. */
ARWKV_API void arwkv_clear_error(void);

/* ============================================================================================
   Numbers: element types and conversions
   ============================================================================================ */

typedef enum arwkv_dtype {
    ARWKV_DTYPE_UNKNOWN = 0,
    ARWKV_F32, ARWKV_F16, ARWKV_BF16, ARWKV_F64,
    ARWKV_I64, ARWKV_I32, ARWKV_I16, ARWKV_I8, ARWKV_U8, ARWKV_BOOL,
    ARWKV_DTYPE_COUNT
} arwkv_dtype;

ARWKV_API const char *arwkv_dtype_name(arwkv_dtype t); /* "F32", "BF16", ...; infallible */
ARWKV_API size_t arwkv_dtype_size(arwkv_dtype t);      /* bytes per element, 0 if unknown */

/* bf16 is the top half of an fp32. Rounding to bf16 is to nearest, ties to even; NaN stays NaN. */
ARWKV_API float arwkv_bf16_to_f32(uint16_t h);
ARWKV_API uint16_t arwkv_f32_to_bf16(float f);
ARWKV_API float arwkv_f16_to_f32(uint16_t h);
ARWKV_API uint16_t arwkv_f32_to_f16(float f);
/* Convert n elements of type t at src into fp32 (floats and integers). */
ARWKV_API arwkv_result arwkv_to_f32(float *dst, const void *src, arwkv_dtype t, size_t n);

/* Free memory the library returned to the caller (strings, id arrays). Infallible. */
ARWKV_API void arwkv_free(void *p);

/* Wall-clock seconds (C11 timespec_get), for progress lines and benchmarks. Infallible. */
ARWKV_API double arwkv_seconds(void);

/* ============================================================================================
   Thread pool
   ============================================================================================
   A fixed set of workers runs the tasks 0..n_tasks-1 of one parallel loop; the caller's thread
   takes part. Which worker runs a task never changes a result: tasks write disjoint outputs. */

typedef struct arwkv_pool arwkv_pool;
typedef void (*arwkv_task_fn)(void *ctx, int task, int thread);

/* n_threads <= 0 picks the number of online processors. */
ARWKV_API arwkv_result arwkv_pool_create(int n_threads, arwkv_pool **out);
ARWKV_API void arwkv_pool_destroy(arwkv_pool *pool);
/* Number of threads, counting the caller's (1 for a NULL pool). Infallible. */
ARWKV_API int arwkv_pool_size(const arwkv_pool *pool);
/* Run fn(ctx, task, thread) for every task; returns when all are done. pool may be NULL. */
ARWKV_API void arwkv_pool_run(arwkv_pool *pool, int n_tasks, arwkv_task_fn fn, void *ctx);

/* ============================================================================================
   safetensors
   ============================================================================================
   A checkpoint is one .safetensors file, or a directory with model.safetensors or with shards
   listed in model.safetensors.index.json. Files are mapped, not read: a 15 GB checkpoint costs
   address space, not memory. Every header is validated before any tensor is touched. */

#define ARWKV_MAX_DIMS 8

typedef struct arwkv_tensor_info {
    const char *name;
    arwkv_dtype dtype;
    int ndim;
    int64_t shape[ARWKV_MAX_DIMS];
    int64_t numel;
    const void *data;  /* points into the mapped file; not aligned beyond 1 byte in general */
    size_t nbytes;
    int file;          /* index of the shard that holds it */
    uint64_t offset;   /* byte offset of the data in that file */
} arwkv_tensor_info;

typedef struct arwkv_safetensors arwkv_safetensors;

ARWKV_API arwkv_result arwkv_st_open(const char *path, arwkv_safetensors **out);
/* Parse a safetensors image held in memory (buf must outlive the handle). name is for errors. */
ARWKV_API arwkv_result arwkv_st_open_memory(const void *buf, size_t len, const char *name, arwkv_safetensors **out);
ARWKV_API void arwkv_st_close(arwkv_safetensors *st);
ARWKV_API int arwkv_st_count(const arwkv_safetensors *st);
ARWKV_API const arwkv_tensor_info *arwkv_st_tensor(const arwkv_safetensors *st, int i);
/* NULL if absent (no error is recorded: absence is often fine). */
ARWKV_API const arwkv_tensor_info *arwkv_st_find(const arwkv_safetensors *st, const char *name);
/* Like arwkv_st_find, but absence is an error naming the checkpoint and the tensor. */
ARWKV_API arwkv_result arwkv_st_get(const arwkv_safetensors *st, const char *name, const arwkv_tensor_info **out);
/* The file name of shard i (the path given for a single file). */
ARWKV_API const char *arwkv_st_file_name(const arwkv_safetensors *st, int i);
ARWKV_API int arwkv_st_file_count(const arwkv_safetensors *st);
/* __metadata__ value of key in the first file, NULL if absent. */
ARWKV_API const char *arwkv_st_metadata(const arwkv_safetensors *st, const char *key);
/* Copy a tensor into fp32, checking that it holds exactly n elements. */
ARWKV_API arwkv_result arwkv_st_read_f32(const arwkv_safetensors *st, const char *name, float *dst, int64_t n);

typedef struct arwkv_st_entry {
    const char *name;
    arwkv_dtype dtype;
    int ndim;
    int64_t shape[ARWKV_MAX_DIMS];
    const void *data; /* numel * dtype size bytes */
} arwkv_st_entry;

/* Write one file atomically: a temporary file beside path, fsync, rename. meta holds n_meta
   key/value pairs (meta[2i], meta[2i+1]) for __metadata__. The file loads back bit for bit. */
ARWKV_API arwkv_result arwkv_st_write(const char *path, const arwkv_st_entry *entries, int n,
                                      const char *const *meta, int n_meta);
/* Write a checkpoint into directory dir: model.safetensors if it fits in max_shard_bytes, else
   model-0000i-of-0000n.safetensors plus model.safetensors.index.json, as transformers does. */
ARWKV_API arwkv_result arwkv_st_write_dir(const char *dir, const arwkv_st_entry *entries, int n,
                                          const char *const *meta, int n_meta, uint64_t max_shard_bytes);

/* ============================================================================================
   Model configuration (config.json)
   ============================================================================================ */

typedef enum arwkv_arch {
    ARWKV_ARCH_UNKNOWN = 0,
    ARWKV_ARCH_QWEN2,   /* Qwen2ForCausalLM: the teacher */
    ARWKV_ARCH_ARWKV7,  /* RwkvHybridForCausalLM, wkv_version 7: RWKV-7 time mix in Qwen */
    ARWKV_ARCH_QRWKV6   /* RWKV6Qwen2ForCausalLM: RWKV-6 style time mix in Qwen */
} arwkv_arch;

ARWKV_API const char *arwkv_arch_name(arwkv_arch a); /* the architectures[] string; infallible */

typedef struct arwkv_config {
    arwkv_arch arch;
    int vocab_size;
    int hidden_size;          /* C */
    int intermediate_size;    /* MLP width */
    int num_layers;
    int num_heads;            /* Qwen query heads */
    int num_kv_heads;         /* Qwen key/value heads (GQA) */
    int head_dim;             /* Qwen attention head size = hidden_size / num_heads */
    float rms_norm_eps;
    double rope_theta;
    int max_position_embeddings;
    int tie_word_embeddings;
    int bos_token_id, eos_token_id; /* -1 if absent */
    /* ARWKV-7 */
    int head_size;            /* WKV head size (64) */
    int head_size_divisor;
    int wkv_has_gate;
    int wkv_has_group_norm;
    int wkv_version;
    /* QRWKV6 */
    int attention_bias;
    int attention_output_bias;
    int lora_rank_tokenshift;
    int lora_rank_decay;
    char torch_dtype[16];     /* as written ("bfloat16"), "" if absent */
} arwkv_config;

/* Read path (a config.json or a directory holding one). */
ARWKV_API arwkv_result arwkv_config_load(const char *path, arwkv_config *cfg);
/* Parse config text; name is used in errors. */
ARWKV_API arwkv_result arwkv_config_parse(const char *json, size_t len, const char *name, arwkv_config *cfg);

/* ============================================================================================
   Tokenizer
   ============================================================================================ */
/* @@tokenizer-api@@ */

/* ============================================================================================
   Ops
   ============================================================================================ */
/* ---- Backends ----------------------------------------------------------------------------------
   The model code is written once. It never reads or writes tensor memory itself: every tensor is
   a buffer owned by a backend, and every computation is an op called through the backend's
   tables. The CPU backend is in this file; arwkv_hip.h provides a GPU backend with the same
   tables. Ops are grouped by who needs them, one table each. */

typedef struct arwkv_backend arwkv_backend;

/* A CPU backend with n_threads threads (<= 0: all online processors). */
ARWKV_API arwkv_result arwkv_backend_cpu(int n_threads, arwkv_backend **out);
ARWKV_API void arwkv_backend_destroy(arwkv_backend *be);
ARWKV_API const char *arwkv_backend_name(const arwkv_backend *be); /* "cpu (2 threads)", ... */

/* Memory. alloc returns zeroed memory. upload/download copy host <-> backend memory. */
typedef struct arwkv_mem_ops {
    arwkv_result (*alloc)(arwkv_backend *be, size_t bytes, void **out);
    void (*free)(arwkv_backend *be, void *p);
    arwkv_result (*upload)(arwkv_backend *be, void *dst, const void *src, size_t bytes);
    arwkv_result (*download)(arwkv_backend *be, void *dst, const void *src, size_t bytes);
    arwkv_result (*copy)(arwkv_backend *be, void *dst, const void *src, size_t bytes);
    arwkv_result (*zero)(arwkv_backend *be, void *p, size_t bytes);
    arwkv_result (*sync)(arwkv_backend *be); /* wait until queued work is done */
} arwkv_mem_ops;

/* Ops every model uses. Shapes: T rows (tokens), C columns (channels). Backward ops accumulate
   (+=) into parameter gradients and write (=) input gradients unless documented otherwise. */
typedef struct arwkv_core_ops {
    /* C[M,N] (+)= A[M,K].B[K,N] (+bias[N]); A(m,k)=A[m*a_rs+k*a_cs] fp32, B(k,n)=B[k*b_rs+n*b_cs]
       of b_type (F32, BF16, F16). accumulate=0 overwrites C. */
    arwkv_result (*gemm)(arwkv_backend *be, int M, int N, int K, const float *A, ptrdiff_t a_rs, ptrdiff_t a_cs,
                         const void *B, arwkv_dtype b_type, ptrdiff_t b_rs, ptrdiff_t b_cs, float *C, ptrdiff_t ldc,
                         int accumulate, const float *bias);
    /* out[t,:] = table[ids[t],:] widened to fp32. ids are int32 in backend memory. */
    arwkv_result (*embed_forward)(arwkv_backend *be, float *out, const int32_t *ids, int T, const void *table,
                                  arwkv_dtype type, int C);
    /* dtable[ids[t],:] += dout[t,:] */
    arwkv_result (*embed_backward)(arwkv_backend *be, float *dtable, const int32_t *ids, int T, const float *dout, int C);
    /* out = x / sqrt(mean(x^2) + eps) * w per row; rstd[t] = the reciprocal root (may be NULL). */
    arwkv_result (*rmsnorm_forward)(arwkv_backend *be, float *out, float *rstd, const float *x, const void *w,
                                    arwkv_dtype w_type, int T, int C, float eps);
    /* dx (+)= d out/d x . dout (accumulate_dx selects += or =); dw += d out/d w . dout (dw may be NULL). */
    arwkv_result (*rmsnorm_backward)(arwkv_backend *be, float *dx, float *dw, const float *dout, const float *x,
                                     const void *w, arwkv_dtype w_type, const float *rstd, int T, int C, int accumulate_dx);
    /* out = silu(gate) * up, elementwise over n */
    arwkv_result (*swiglu_forward)(arwkv_backend *be, float *out, const float *gate, const float *up, size_t n);
    /* dgate = d/dgate, dup = d/dup (written, not accumulated) */
    arwkv_result (*swiglu_backward)(arwkv_backend *be, float *dgate, float *dup, const float *dout, const float *gate,
                                    const float *up, size_t n);
    /* y += alpha * x over n */
    arwkv_result (*axpy)(arwkv_backend *be, float *y, float alpha, const float *x, size_t n);
} arwkv_core_ops;

/* Op tables of the model families; each is defined beside the code that uses it. */
typedef struct arwkv_qwen_ops arwkv_qwen_ops;
typedef struct arwkv_rwkv7_ops arwkv_rwkv7_ops;
typedef struct arwkv_rwkv6_ops arwkv_rwkv6_ops;
typedef struct arwkv_loss_ops arwkv_loss_ops;
typedef struct arwkv_optim_ops arwkv_optim_ops;

struct arwkv_backend {
    char name[64];
    int on_gpu;                  /* tensor memory is not host-addressable */
    arwkv_pool *pool;            /* CPU threads (the GPU backend uses them for host work) */
    void *gpu;                   /* private state of arwkv_hip.h */
    const arwkv_mem_ops *mem;
    const arwkv_core_ops *core;
    const arwkv_qwen_ops *qwen;
    const arwkv_rwkv7_ops *rwkv7;
    const arwkv_rwkv6_ops *rwkv6;
    const arwkv_loss_ops *loss;
    const arwkv_optim_ops *optim;
    void (*destroy)(arwkv_backend *be);
};

/* @@qwen-ops-api@@ */


/* @@rwkv7-ops-api@@ */


/* RWKV-6 ops: the pieces of the QRWKV6 time mix that are not matrix products (those go through
   core->gemm). Rows are tokens (row = b*T + t); H heads of N channels; KVH key/value heads.
   Everything is fp32; every op is deterministic (bit-identical for any number of threads).
   Parameter gradients accumulate (+=) and may be NULL; other outputs are written (=) unless said. */
#define ARWKV_WKV6_CHUNK 16 /* tokens between two state checkpoints kept by wkv6_forward for backward */

struct arwkv_rwkv6_ops {
    /* Token shift. xx[b,t] = prev - x[b,t] with prev = x[b,t-1], or at t = 0 shift[b] (zeros when
       shift is NULL); xxx = x + xx * maa_x. x, xx, xxx: [B*T, C]; shift: [B, C]. */
    arwkv_result (*shift_forward)(arwkv_backend *be, float *xx, float *xxx, const float *x, const float *shift,
                                  const float *maa_x, int B, int T, int C);
    /* dx += d/dx of (xx, xxx) given their gradients dxx, dxxx (the gradient into shift is dropped);
       dmaa_x += sum over rows of dxxx * xx. */
    arwkv_result (*shift_backward)(arwkv_backend *be, float *dx, float *dmaa_x, const float *dxx, const float *dxxx,
                                   const float *xx, const float *maa_x, int B, int T, int C);
    /* Data-dependent lerp of the five branches c = 0..4 (r, k, v, w, g: the checkpoint's LoRA order):
       xc[c] = x + xx * (maa[c] + m[c]). xc and m are [5][rows][C]; maa[c] is a [C] vector (the
       arrays of five pointers are host memory, the pointers in them backend memory). */
    arwkv_result (*ddlerp_forward)(arwkv_backend *be, float *xc, const float *x, const float *xx, const float *const *maa,
                                   const float *m, int rows, int C);
    /* dx = sum_c dxc[c];  dxx = sum_c dxc[c] (maa[c] + m[c]);  dm[c] = dxc[c] xx;
       dmaa[c] += sum over rows of dxc[c] xx (dmaa itself or any dmaa[c] may be NULL). */
    arwkv_result (*ddlerp_backward)(arwkv_backend *be, float *dx, float *dxx, float *dm, float *const *dmaa,
                                    const float *dxc, const float *xx, const float *const *maa, const float *m, int rows,
                                    int C);
    /* y = tanh(x) over n (y may be x); backward: dx = dy (1 - y^2) (dx may be dy). */
    arwkv_result (*tanh_forward)(arwkv_backend *be, float *y, const float *x, size_t n);
    arwkv_result (*tanh_backward)(arwkv_backend *be, float *dx, const float *dy, const float *y, size_t n);
    /* Decay. On entry z holds the decay LoRA's output; on return z = z + time_decay and
       w = exp(-exp(z)), in (0, 1). z, w: [rows, C]. */
    arwkv_result (*decay_forward)(arwkv_backend *be, float *w, float *z, const float *time_decay, int rows, int C);
    /* dz = -dw w exp(z) (dz may be dw);  dtime_decay += sum over rows of dz. */
    arwkv_result (*decay_backward)(arwkv_backend *be, float *dz, float *dtime_decay, const float *dw, const float *z,
                                   const float *w, int rows, int C);
    /* Grouped keys and values to every head (head h reads kv head h / (H/KVH), as repeat_kv), the
       key scaled by (1 - w): kk[h] = k[kv(h)] (1 - w[h]), vv[h] = v[kv(h)]. k, v: [rows, KVH*N];
       kk, vv, w: [rows, H*N]. */
    arwkv_result (*kv_expand_forward)(arwkv_backend *be, float *kk, float *vv, const float *k, const float *v,
                                      const float *w, int rows, int H, int KVH, int N);
    /* dk = sum over the heads h of a group of dkk[h] (1 - w[h]);  dv = sum of dvv[h];
       dw[h] += -dkk[h] k[kv(h)] (dw accumulates: it already holds the recurrence's gradient). */
    arwkv_result (*kv_expand_backward)(arwkv_backend *be, float *dk, float *dv, float *dw, const float *dkk,
                                       const float *dvv, const float *k, const float *w, int rows, int H, int KVH, int N);
    /* The gated linear-attention recurrence, per sequence b and head h, with an N x N fp32 state
       S[i][j] (i: key channel, j: value channel; the layout of llama.cpp's state):
           S_t = diag(w_t) S_{t-1} + k_t v_t^T        y_t = scale * (r_t^T S_t)
       The read-out includes the current token; there is no bonus term. r, k, v, w, y: [B*T, H*N].
       s0: [B, H, N, N] initial state (NULL: zeros); s_out: final state (NULL: not kept; may be s0).
       ckpt: NULL, or [B, H, ceil(T / ARWKV_WKV6_CHUNK), N, N] receiving the state before each chunk of
       ARWKV_WKV6_CHUNK tokens, which is what the backward needs. */
    arwkv_result (*wkv6_forward)(arwkv_backend *be, float *y, float *s_out, float *ckpt, const float *r, const float *k,
                                 const float *v, const float *w, const float *s0, int B, int T, int H, int N, float scale);
    /* dr, dk, dv, dw of the recurrence (written), from dy and the forward's checkpoints. The initial
       state is a constant: no gradient flows into it. */
    arwkv_result (*wkv6_backward)(arwkv_backend *be, float *dr, float *dk, float *dv, float *dw, const float *dy,
                                  const float *r, const float *k, const float *v, const float *w, const float *ckpt,
                                  int B, int T, int H, int N, float scale);
    /* Output gate: out = y * sigmoid(g) over n;  backward: dy = dout s, dg = dout y s (1 - s). */
    arwkv_result (*gate_forward)(arwkv_backend *be, float *out, const float *y, const float *g, size_t n);
    arwkv_result (*gate_backward)(arwkv_backend *be, float *dy, float *dg, const float *dout, const float *y,
                                  const float *g, size_t n);
    /* db[j] += sum over rows of dy[row, j]: the gradient of a bias. */
    arwkv_result (*colsum)(arwkv_backend *be, float *db, const float *dy, int rows, int cols);
};

/* @@rwkv6-ops-api@@ */


/* Loss ops. Rows are tokens; each op writes one loss value per row (summed on the host in a fixed
   order, so totals do not depend on threads) and the gradient with respect to the student's
   output, already multiplied by grad_scale (e.g. 1 / number of rows in the batch). */
typedef enum arwkv_align_kind {
    ARWKV_ALIGN_L2 = 0, /* ||a - o||_2 / sqrt(C): upstream's stage-1 loss (a norm, not squared) */
    ARWKV_ALIGN_MSE,    /* mean over channels of (a - o)^2 */
    ARWKV_ALIGN_COSINE  /* 1 - cos(a, o) */
} arwkv_align_kind;

struct arwkv_loss_ops {
    /* Stage 1: loss[r] for rows r of the student output o against the teacher's a [rows, C];
       dout = grad_scale * d loss[r] / d o (written). */
    arwkv_result (*align)(arwkv_backend *be, arwkv_align_kind kind, const float *o, const float *a, int rows, int C,
                          float grad_scale, float *loss, float *dout);
    /* Stages 2 and 3, over a chunk of rows of logits [rows, V]:
         kl[r] = tau^2 * KL(softmax(t_r / tau) || softmax(s_r / tau))  when teacher logits t != NULL
         ce[r] = -log softmax(s_r)[label_r]                              when labels != NULL and label_r >= 0
       The student logits s are replaced by grad_scale * d(kl_weight * kl + ce_weight * ce)/ds.
       kl and ce may be NULL when not computed. */
    arwkv_result (*logits_loss)(arwkv_backend *be, float *s, const float *t, const int32_t *labels, int rows, int V,
                                float tau, float kl_weight, float ce_weight, float grad_scale, float *kl, float *ce);
};

/* Optimizer ops. */
struct arwkv_optim_ops {
    /* out[0] = sum of squares of g over n (float64 accumulation inside; written as float) */
    arwkv_result (*sumsq)(arwkv_backend *be, const float *g, size_t n, float *out);
    /* x *= s */
    arwkv_result (*scale)(arwkv_backend *be, float *x, float s, size_t n);
    /* one AdamW step (decoupled weight decay, bias-corrected moments; step counts from 1):
         m = b1 m + (1-b1) g;  v = b2 v + (1-b2) g^2;
         p -= lr * (m / (1-b1^step) / (sqrt(v / (1-b2^step)) + eps) + wd * p) */
    arwkv_result (*adamw)(arwkv_backend *be, float *p, const float *g, float *m, float *v, size_t n, float lr, float b1,
                          float b2, float eps, float wd, int step);
};

/* @@loss-ops-api@@ */


/* @@optim-ops-api@@ */


/* ============================================================================================
   Models
   ============================================================================================ */
/* ---- Parameters --------------------------------------------------------------------------------
   A model is a list of named parameters (the checkpoint's tensor names) plus per-layer pointers
   into that list. Matrices used by the matrix product may keep their stored type (bf16 weights
   of a teacher are never converted); every other parameter is fp32. Trainable parameters are fp32
   and carry a gradient and two AdamW moments; frozen ones carry nothing extra. */

typedef struct arwkv_param {
    char name[96];        /* Hugging Face tensor name */
    int ndim;
    int64_t shape[4];
    int64_t numel;
    arwkv_dtype dtype;    /* type of data */
    void *data;           /* backend memory */
    int owns_data;        /* 0: points into a mapped checkpoint (CPU inference) */
    int is_matrix;        /* used through the matrix product: may stay bf16/f16 while frozen */
    int trainable;
    int decay;            /* AdamW weight decay applies (matrices only) */
    float *grad, *adam_m, *adam_v; /* fp32 backend memory, NULL unless trainable */
} arwkv_param;

/* Per-layer views. Which members are set depends on the architecture. */
typedef struct arwkv_layer {
    arwkv_param *in_norm, *post_norm, *mlp_gate, *mlp_up, *mlp_down;
    /* Qwen2 attention (the teacher; QRWKV6 keeps q/k/v/o) */
    arwkv_param *q_w, *q_b, *k_w, *k_b, *v_w, *v_b, *o_w, *o_b;
    /* RWKV-7 time mix (ARWKV) */
    arwkv_param *x_r, *x_w, *x_k, *x_v, *x_a, *x_g;
    arwkv_param *w0, *w1, *w2, *a0, *a1, *a2, *v0, *v1, *v2, *g1, *g2;
    arwkv_param *k_k, *k_a, *r_k;
    arwkv_param *receptance, *key, *value, *output, *ln_x_w, *ln_x_b;
    /* RWKV-6 time mix (QRWKV6) */
    arwkv_param *maa_x, *maa_w, *maa_k, *maa_v, *maa_r, *maa_g, *maa_w1, *maa_w2;
    arwkv_param *time_decay, *decay_w1, *decay_w2, *gate;
} arwkv_layer;

typedef struct arwkv_model {
    arwkv_config cfg;
    arwkv_backend *be;
    arwkv_safetensors *st;   /* kept open while parameters point into it */
    char *dir;               /* where it was loaded from (NULL if created) */
    arwkv_param *params;
    int n_params, cap_params;
    arwkv_param *embed, *final_norm, *lm_head; /* lm_head == embed when tied */
    arwkv_layer *layers;
    int rank_w, rank_a, rank_v, rank_g;        /* RWKV-7 LoRA ranks, read from the tensors */
} arwkv_model;

/* Load a model directory (config.json + safetensors) of any supported architecture onto a backend.
   Frozen matrices keep their stored type; on the CPU they are mapped, not copied. */
ARWKV_API arwkv_result arwkv_model_load(const char *dir, arwkv_backend *be, arwkv_model **out);
ARWKV_API void arwkv_model_free(arwkv_model *m);
/* Find a parameter by its checkpoint name (NULL if absent). */
ARWKV_API arwkv_param *arwkv_model_param(arwkv_model *m, const char *name);
/* Total number of parameters (elements). */
ARWKV_API int64_t arwkv_model_numel(const arwkv_model *m);
/* Copy a parameter's values to host fp32 (n must equal its numel). */
ARWKV_API arwkv_result arwkv_param_read(arwkv_model *m, const arwkv_param *p, float *dst, int64_t n);
/* Set a parameter's values from host fp32 (converted to its type). */
ARWKV_API arwkv_result arwkv_param_write(arwkv_model *m, arwkv_param *p, const float *src, int64_t n);
/* Save in the Hugging Face layout: config.json, safetensors (sharded above max_shard_bytes, 0 =
   5 GB) with parameters stored as save_type (F32 or BF16; frozen parameters keep their type if
   save_type is ARWKV_DTYPE_UNKNOWN). Tokenizer files are copied from tokenizer_dir if not NULL. */
ARWKV_API arwkv_result arwkv_model_save(arwkv_model *m, const char *dir, arwkv_dtype save_type, uint64_t max_shard_bytes,
                                        const char *tokenizer_dir);

/* @@teacher-api@@ */


/* @@student-api@@ */


/* ---- Creating an ARWKV-7 (or QRWKV6) student from a teacher ----------------------------------------
   The student is the teacher with every self-attention replaced by an RWKV-7 time mix: embeddings,
   norms, MLPs and head are copied; the time mix is new. A QRWKV6 student (arch) keeps the
   attention's q/k/v/o projections and adds the RWKV-6 parameters around them. */
typedef enum arwkv_init {
    ARWKV_INIT_UPSTREAM = 0, /* the rule of upstream's training code (RWKVInside, Jan 2025): fresh r/k/v/o */
    ARWKV_INIT_INHERIT       /* as upstream, but receptance/key/value/output from q/k/v/o_proj (kv heads repeated) */
} arwkv_init;

typedef struct arwkv_student_options {
    arwkv_init init;
    int gate;        /* output gate (wkv_has_gate); upstream's released ARWKV-7B has it */
    int group_norm;  /* GroupNorm after the WKV (wkv_has_group_norm); off upstream */
    uint64_t seed;   /* random matrices of the init */
    int rank_w, rank_a, rank_v, rank_g; /* LoRA ranks; 0 = upstream's 64, 64, 32, 128 */
    arwkv_arch arch; /* ARWKV_ARCH_ARWKV7 (the default; also when 0) or ARWKV_ARCH_QRWKV6 */
    int rank_mix;    /* QRWKV6: token-shift LoRA rank (0: 32, 64 from C = 4096); its decay rank is
                        rank_w (0: 64, 128 from C = 4096); init, gate, group_norm do not apply */
} arwkv_student_options;

ARWKV_API void arwkv_student_options_default(arwkv_student_options *o);
/* A new RwkvHybridForCausalLM student on the teacher's backend (RWKV6Qwen2ForCausalLM when opt->arch
   says so). ARWKV-7: the teacher's hidden size must be a multiple of 64 (the WKV head size). */
ARWKV_API arwkv_result arwkv_student_create(arwkv_model *teacher, const arwkv_student_options *opt, arwkv_model **out);

/* @@student-model-api@@ */


/* ---- The QRWKV6 time mix (RWKV6Qwen2ForCausalLM) ---------------------------------------------------
   Each layer's softmax attention becomes an RWKV-6 style recurrence that keeps Qwen's q/k/v/o
   projections (with their biases) and adds a data-dependent token shift, a data-dependent decay and
   a sigmoid output gate (names are the checkpoint's, under model.layers.N.self_attn.):
       xx  = x_{t-1} - x_t                      (x: the layer's RMSNorm'd input)
       m_c = tanh((x + xx maa_x) . time_maa_w1)[c] . time_maa_w2[c]     c = r, k, v, w, g
       x_c = x + xx (maa_c + m_c)
       r = q_proj(x_r)  k = k_proj(x_k)  v = v_proj(x_v)   (biases included; k, v per kv head)
       w = exp(-exp(time_decay + tanh(x_w . time_decay_w1) . time_decay_w2))
       per head: S_t = diag(w_t) S_{t-1} + (k_t (1 - w_t)) v_t^T,  y_t = r_t^T S_t / sqrt(head size)
       out = o_proj(y * sigmoid(gate(x_g)))
   Recurrent state per sequence: the last input row (C floats) and S (H x N x N floats). */

typedef struct arwkv_tmix6_dims {
    int C;          /* hidden size */
    int n_heads;    /* H = num_attention_heads */
    int head_size;  /* N = C / H */
    int n_kv_heads; /* KVH = num_key_value_heads */
    int rank_mix;   /* lora_rank_tokenshift (time_maa_w1 is [C, 5 rank_mix]) */
    int rank_decay; /* lora_rank_decay */
} arwkv_tmix6_dims;

/* The dimensions of a QRWKV6 config; fails on inconsistent sizes. */
ARWKV_API arwkv_result arwkv_tmix6_dims_from_config(const arwkv_config *cfg, arwkv_tmix6_dims *out);

/* What forward keeps for backward (backend memory, grown on demand). One per layer in training;
   also usable as reusable scratch for inference. */
typedef struct arwkv_tmix6_acts arwkv_tmix6_acts;
ARWKV_API arwkv_result arwkv_tmix6_acts_create(arwkv_backend *be, const arwkv_tmix6_dims *d, arwkv_tmix6_acts **out);
ARWKV_API void arwkv_tmix6_acts_free(arwkv_tmix6_acts *a);

/* Forward over B sequences of T tokens. x, out: [B*T*C] (out may not alias x). shift_state [B*C] and
   wkv_state [B*H*N*N] (layout [b][h][key i][value j]) are read as the state before the first token
   and overwritten with the state after the last; NULL means zeros in and nothing out. Calling it
   token by token (T = 1) with the states is the recurrent mode and gives the same outputs as one
   call over the whole sequence. acts: kept for arwkv_tmix6_backward, its buffers reused from call to
   call (pass one in decoding too); NULL: scratch memory for this call only. */
ARWKV_API arwkv_result arwkv_tmix6_forward(arwkv_backend *be, const arwkv_layer *layer, const arwkv_tmix6_dims *d, int B,
                                           int T, const float *x, float *shift_state, float *wkv_state, float *out,
                                           arwkv_tmix6_acts *acts);
/* Backward of the last forward that used acts (same layer, B, T, x): accumulates (+=) into
   param->grad of every trainable parameter of the layer and writes dx [B*T*C] (= d loss / d x;
   NULL: not needed). The incoming states are treated as constants. */
ARWKV_API arwkv_result arwkv_tmix6_backward(arwkv_backend *be, const arwkv_layer *layer, const arwkv_tmix6_dims *d, int B,
                                            int T, const float *x, arwkv_tmix6_acts *acts, const float *dout, float *dx);

/* @@qrwkv6-api@@ */


/* ============================================================================================
   Training
   ============================================================================================ */
/* ---- Training options ------------------------------------------------------------------------------ */

typedef enum arwkv_schedule {
    ARWKV_SCHEDULE_COSINE = 0,  /* warm-up, then cosine from lr to lr_final */
    ARWKV_SCHEDULE_EXPONENTIAL, /* warm-up, then geometric from lr to lr_final (upstream) */
    ARWKV_SCHEDULE_CONSTANT     /* warm-up, then lr */
} arwkv_schedule;

typedef struct arwkv_train_options {
    int stage;              /* 1 alignment, 2 distillation, 3 chat fine-tuning */
    int seq_len, batch;     /* tokens per sequence, sequences per step */
    int steps;              /* optimizer steps in the whole run */
    float lr, lr_final;     /* peak and final learning rate */
    int warmup_steps;       /* linear warm-up from lr/100 (upstream: factor 0.01 -> 1) */
    arwkv_schedule schedule;
    float beta1, beta2, eps, weight_decay; /* AdamW; decay applies to matrices only */
    float clip;             /* global gradient-norm clipping (0: off) */
    arwkv_align_kind align; /* stage-1 loss */
    float temperature;      /* stage-2 KL temperature */
    float kl_weight, ce_weight; /* stage 2: kl_weight * KL + ce_weight * label cross-entropy */
    int freeze_mlp;         /* stages 2-3: MLPs stay frozen (upstream's -z 1) */
    uint64_t seed;          /* data order */
} arwkv_train_options;

/* Upstream's settings for a stage (spec section 3): AdamW betas 0.9/0.95, eps 1e-8, weight decay
   0.1, clip 1.0, warm-up 50 steps, exponential decay 1e-4 -> 1e-5, stage-1 L2 loss, stage-2 KL at
   temperature 1 with no label cross-entropy. */
ARWKV_API void arwkv_train_options_default(arwkv_train_options *o, int stage);
/* Learning rate at step (counting from 1). */
ARWKV_API float arwkv_lr_at(const arwkv_train_options *o, int step);

/* ---- Data -------------------------------------------------------------------------------------------
   A dataset is one token stream (documents joined by the end-of-text token), cut into windows of
   seq_len + 1 tokens (inputs and next-token targets) and visited in a seeded shuffled order. For
   chat data a mask marks the target tokens a model must learn (assistant turns). */
typedef struct arwkv_dataset {
    int32_t *tokens;
    uint8_t *mask;         /* NULL: every token is a target */
    size_t n_tokens, cap_tokens;
    int seq_len;
    size_t n_seqs;         /* windows */
    uint32_t *order;       /* this epoch's permutation of the windows */
    uint64_t seed, epoch;
    size_t pos;            /* next window in order */
} arwkv_dataset;

ARWKV_API void arwkv_dataset_init(arwkv_dataset *d);
ARWKV_API void arwkv_dataset_free(arwkv_dataset *d);
/* Append a document (and, if mask is not NULL, which of its tokens are targets). */
ARWKV_API arwkv_result arwkv_dataset_append(arwkv_dataset *d, const int32_t *ids, const uint8_t *mask, size_t n);
/* Cut into windows and shuffle epoch 0 with seed. Fails if there is not one whole window. */
ARWKV_API arwkv_result arwkv_dataset_pack(arwkv_dataset *d, int seq_len, uint64_t seed);
/* The next window: inputs[seq_len], targets[seq_len] (-1 where not a target). Starts a new
   epoch (a new permutation) when the current one is used up. */
ARWKV_API void arwkv_dataset_next(arwkv_dataset *d, int32_t *inputs, int32_t *targets);
/* Window i in storage order (for evaluation). */
ARWKV_API void arwkv_dataset_window(const arwkv_dataset *d, size_t i, int32_t *inputs, int32_t *targets);
/* A checksum of the token stream, so a resumed run can tell it was given the same data. */
ARWKV_API uint64_t arwkv_dataset_hash(const arwkv_dataset *d);

/* ---- The trainer ---------------------------------------------------------------------------------------
   One object runs the stages: it owns the optimizer state and the position in the data, and each
   call to arwkv_trainer_step does one optimizer step on batch sequences of seq_len tokens:
     stage 1: teacher layer by layer; each student time mix is fitted to its layer's attention
              output (teacher-forced; only one layer's activations alive at a time);
     stage 2: teacher and student logits on the same tokens, forward KL in chunks of positions;
     stage 3: cross-entropy on the target tokens (assistant turns) of the student alone. */
typedef struct arwkv_trainer arwkv_trainer;

typedef struct arwkv_step_stats {
    int step;          /* steps done, this one included */
    float loss;        /* the stage's loss (mean over tokens; stage 1: mean over layers too) */
    float kl, ce;      /* stage 2 parts (ce only when computed) */
    float lr, grad_norm;
    int64_t tokens;    /* tokens of this step */
    double seconds;    /* wall time of this step */
} arwkv_step_stats;

typedef struct arwkv_eval_stats {
    double student_nll; /* mean negative log-likelihood (nats per target token) */
    double teacher_nll; /* the same for the teacher (when there is one) */
    double kl;          /* mean KL(teacher || student) per token (when there is a teacher) */
    int64_t tokens;
} arwkv_eval_stats;

/* teacher may be NULL for stage 3. The student is made trainable for the stage (fp32 master copies,
   gradients, moments). train must be packed with the options' seq_len. */
ARWKV_API arwkv_result arwkv_trainer_create(arwkv_model *teacher, arwkv_model *student, const arwkv_train_options *opt,
                                            arwkv_dataset *train, arwkv_trainer **out);
ARWKV_API void arwkv_trainer_free(arwkv_trainer *tr);
ARWKV_API arwkv_result arwkv_trainer_step(arwkv_trainer *tr, arwkv_step_stats *stats);
/* Student (and teacher) likelihood and KL on up to max_windows windows of eval (0: all). */
ARWKV_API arwkv_result arwkv_trainer_evaluate(arwkv_trainer *tr, const arwkv_dataset *eval, int max_windows, arwkv_eval_stats *out);
ARWKV_API int arwkv_trainer_steps_done(const arwkv_trainer *tr);
/* Checkpoint into out_dir/checkpoints (see "Checkpoints"); tokenizer files copied from tokenizer_dir. */
ARWKV_API arwkv_result arwkv_trainer_save(arwkv_trainer *tr, const char *out_dir, const char *tokenizer_dir);
/* The directory of the latest checkpoint in out_dir (free it with arwkv_free). */
ARWKV_API arwkv_result arwkv_checkpoint_latest(const char *out_dir, char **dir);
/* After creating a trainer on a student loaded from a checkpoint directory: restore the moments,
   step and data position, checking that stage, sequence length, batch and data are the same. */
ARWKV_API arwkv_result arwkv_trainer_restore(arwkv_trainer *tr, const char *checkpoint_dir);

/* @@train-api@@ */

/* ============================================================================================
   Generation
   ============================================================================================ */
/* @@generate-api@@ */

#ifdef __cplusplus
}
#endif
#endif /* ARWKV_H_INCLUDED */

/* ############################################################################################
   ##                                   IMPLEMENTATION                                       ##
   ############################################################################################ */
#ifdef ARWKV_IMPLEMENTATION
#ifndef ARWKV_IMPLEMENTATION_ONCE
#define ARWKV_IMPLEMENTATION_ONCE

#include <errno.h>
#include <float.h>
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#if !defined(_WIN32)
#include <fcntl.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <dirent.h>
#include <unistd.h>
#ifndef ARWKV_NO_MMAP
#include <sys/mman.h>
#endif
#endif
#ifndef ARWKV_NO_THREADS
#include <pthread.h>
#endif

#if defined(ARWKV_MALLOC) && defined(ARWKV_REALLOC) && defined(ARWKV_FREE)
/* all three given */
#elif !defined(ARWKV_MALLOC) && !defined(ARWKV_REALLOC) && !defined(ARWKV_FREE)
#define ARWKV_MALLOC(sz) malloc(sz)
#define ARWKV_REALLOC(p, sz) realloc((p), (sz))
#define ARWKV_FREE(p) free(p)
#else
#error "arwkv.h: define all of ARWKV_MALLOC, ARWKV_REALLOC and ARWKV_FREE, or none of them"
#endif

#ifndef ARWKV_ASSERT
#include <assert.h>
#define ARWKV_ASSERT(x) assert(x)
#endif

#if defined(__GNUC__) || defined(__clang__)
#define ARWKV_PRIVATE static __attribute__((unused))
#define ARWKV__PRINTF(a, b) __attribute__((format(printf, a, b)))
#define ARWKV__RESTRICT __restrict__
#else
#define ARWKV_PRIVATE static
#define ARWKV__PRINTF(a, b)
#define ARWKV__RESTRICT
#endif

#if defined(__cplusplus)
#define ARWKV__THREAD_LOCAL thread_local
#elif defined(_MSC_VER)
#define ARWKV__THREAD_LOCAL __declspec(thread)
#else
#define ARWKV__THREAD_LOCAL _Thread_local
#endif

#ifdef __cplusplus
extern "C" {
#endif

/* ============================================================================================
   1. Support
   ============================================================================================ */

/* ---- Errors ---------------------------------------------------------------------------------
   The only mutable global: the detail of the last error, one buffer per thread. */

static ARWKV__THREAD_LOCAL char arwkv__error_text[1024];

ARWKV_API const char *arwkv_result_string(arwkv_result r) {
    switch (r) {
#define ARWKV__RESULT_CASE(name, value, text) case name: return text;
        ARWKV__RESULTS(ARWKV__RESULT_CASE)
#undef ARWKV__RESULT_CASE
    default: return "unknown result code";
    }
}

ARWKV_API const char *arwkv_last_error(void) { return arwkv__error_text; }
ARWKV_API void arwkv_clear_error(void) { arwkv__error_text[0] = 0; }

/* Record the detail of an error and return its code: `return arwkv__fail(ARWKV_ERR_IO, ...)`. */
ARWKV_PRIVATE ARWKV__PRINTF(2, 3) arwkv_result arwkv__fail(arwkv_result code, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(arwkv__error_text, sizeof arwkv__error_text, fmt, ap);
    va_end(ap);
    return code;
}

/* Put context in front of the current error text: "loading teacher: <old text>". */
ARWKV_PRIVATE ARWKV__PRINTF(2, 3) arwkv_result arwkv__context(arwkv_result code, const char *fmt, ...) {
    char prefix[512], old[sizeof arwkv__error_text];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(prefix, sizeof prefix, fmt, ap);
    va_end(ap);
    memcpy(old, arwkv__error_text, sizeof old);
    snprintf(arwkv__error_text, sizeof arwkv__error_text, "%.500s: %.500s", prefix, old);
    return code;
}

#define ARWKV__TRY(call)                       \
    do {                                       \
        arwkv_result arwkv__r_ = (call);       \
        if (arwkv__r_ != ARWKV_OK) return arwkv__r_; \
    } while (0)

/* ---- Allocation ------------------------------------------------------------------------------ */

ARWKV_PRIVATE void *arwkv__malloc(size_t n) { return ARWKV_MALLOC(n ? n : 1); }
ARWKV_PRIVATE void *arwkv__calloc(size_t count, size_t size) {
    if (size && count > SIZE_MAX / size) return NULL;
    size_t total = count * size;
    void *p = ARWKV_MALLOC(total > 0 ? total : 1);
    if (p) memset(p, 0, total);
    return p;
}
ARWKV_PRIVATE void *arwkv__realloc(void *p, size_t n) { return ARWKV_REALLOC(p, n ? n : 1); }
ARWKV_PRIVATE void arwkv__free(void *p) {
    if (p) ARWKV_FREE(p);
}
ARWKV_PRIVATE char *arwkv__strndup(const char *s, size_t n) {
    char *d = (char *)arwkv__malloc(n + 1);
    if (d) {
        memcpy(d, s, n);
        d[n] = 0;
    }
    return d;
}
ARWKV_PRIVATE char *arwkv__strdup(const char *s) { return arwkv__strndup(s, strlen(s)); }

/* Overflow-checked size arithmetic for parsers of untrusted headers. */
ARWKV_PRIVATE int arwkv__mul_ok(uint64_t a, uint64_t b, uint64_t *out) {
    if (a && b > UINT64_MAX / a) return 0;
    *out = a * b;
    return 1;
}

/* A growable byte buffer, used to build JSON and messages. */
typedef struct arwkv__buf {
    char *data;
    size_t len, cap;
    int failed; /* set once an allocation fails; later appends are ignored */
} arwkv__buf;

ARWKV_PRIVATE void arwkv__buf_reserve(arwkv__buf *b, size_t extra) {
    if (b->failed) return;
    if (b->len + extra + 1 <= b->cap) return;
    size_t cap = b->cap ? b->cap : 256;
    while (cap < b->len + extra + 1) cap *= 2;
    char *p = (char *)arwkv__realloc(b->data, cap);
    if (!p) {
        b->failed = 1;
        return;
    }
    b->data = p;
    b->cap = cap;
}
ARWKV_PRIVATE void arwkv__buf_add(arwkv__buf *b, const void *s, size_t n) {
    arwkv__buf_reserve(b, n);
    if (b->failed) return;
    memcpy(b->data + b->len, s, n);
    b->len += n;
    b->data[b->len] = 0;
}
ARWKV_PRIVATE void arwkv__buf_str(arwkv__buf *b, const char *s) { arwkv__buf_add(b, s, strlen(s)); }
ARWKV_PRIVATE ARWKV__PRINTF(2, 3) void arwkv__buf_printf(arwkv__buf *b, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n < 0) return;
    arwkv__buf_reserve(b, (size_t)n);
    if (b->failed) return;
    va_start(ap, fmt);
    vsnprintf(b->data + b->len, (size_t)n + 1, fmt, ap);
    va_end(ap);
    b->len += (size_t)n;
}
/* Append s as a JSON string literal (quotes and escapes). */
ARWKV_PRIVATE void arwkv__buf_json_string(arwkv__buf *b, const char *s, size_t n) {
    arwkv__buf_add(b, "\"", 1);
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c == '"' || c == '\\') {
            char e[2] = {'\\', (char)c};
            arwkv__buf_add(b, e, 2);
        } else if (c == '\n') arwkv__buf_add(b, "\\n", 2);
        else if (c == '\r') arwkv__buf_add(b, "\\r", 2);
        else if (c == '\t') arwkv__buf_add(b, "\\t", 2);
        else if (c < 0x20) arwkv__buf_printf(b, "\\u%04x", c);
        else arwkv__buf_add(b, &s[i], 1);
    }
    arwkv__buf_add(b, "\"", 1);
}
ARWKV_PRIVATE void arwkv__buf_free(arwkv__buf *b) {
    arwkv__free(b->data);
    memset(b, 0, sizeof *b);
}

/* ---- Files ------------------------------------------------------------------------------------ */

/* Read a whole file into memory (NUL-terminated for convenience). */
ARWKV_PRIVATE arwkv_result arwkv__read_file(const char *path, char **out, size_t *out_len) {
    *out = NULL;
    *out_len = 0;
    FILE *f = fopen(path, "rb");
    if (!f) return arwkv__fail(ARWKV_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
    size_t cap = 1 << 16, len = 0;
    char *data = (char *)arwkv__malloc(cap);
    for (;;) {
        if (!data) {
            fclose(f);
            return arwkv__fail(ARWKV_ERR_OUT_OF_MEMORY, "%s: out of memory after %zu bytes", path, len);
        }
        size_t got = fread(data + len, 1, cap - len - 1, f);
        len += got;
        if (got == 0) break;
        if (len + 1 == cap) {
            char *p = (char *)arwkv__realloc(data, cap * 2);
            if (!p) arwkv__free(data);
            data = p;
            cap *= 2;
        }
    }
    int err = ferror(f);
    fclose(f);
    if (err) {
        arwkv__free(data);
        return arwkv__fail(ARWKV_ERR_IO, "%s: read error after %zu bytes", path, len);
    }
    data[len] = 0;
    *out = data;
    *out_len = len;
    return ARWKV_OK;
}

ARWKV_PRIVATE int arwkv__is_dir(const char *path) {
#if !defined(_WIN32)
    struct stat s;
    return stat(path, &s) == 0 && S_ISDIR(s.st_mode);
#else
    (void)path;
    return 0;
#endif
}

ARWKV_PRIVATE int arwkv__file_exists(const char *path) {
    FILE *f = fopen(path, "rb");
    if (f) fclose(f);
    return f != NULL;
}

/* dir + "/" + name into a fresh string. */
ARWKV_PRIVATE char *arwkv__path_join(const char *dir, const char *name) {
    size_t a = strlen(dir), b = strlen(name);
    char *p = (char *)arwkv__malloc(a + b + 2);
    if (!p) return NULL;
    memcpy(p, dir, a);
    size_t k = a;
    if (a && dir[a - 1] != '/') p[k++] = '/';
    memcpy(p + k, name, b + 1);
    return p;
}

/* Write a file atomically: write to a temporary name in the same directory, flush it to the disk,
   then rename over the target, so a crash leaves either the old file or the new one, never half.
   The writer callback emits bytes through arwkv__out (plain POSIX write(2) underneath). */
typedef struct arwkv__out {
    int fd;
    FILE *file; /* used where there is no POSIX */
    size_t n;
    char buf[1 << 16];
} arwkv__out;

ARWKV_PRIVATE int arwkv__out_flush(arwkv__out *o) {
    size_t done = 0;
    while (done < o->n) {
#if !defined(_WIN32)
        ssize_t w = write(o->fd, o->buf + done, o->n - done);
        if (w < 0 && errno == EINTR) continue;
        if (w <= 0) return 0;
        done += (size_t)w;
#else
        if (fwrite(o->buf, 1, o->n, o->file) != o->n) return 0;
        done = o->n;
#endif
    }
    o->n = 0;
    return 1;
}

/* Returns 0 on a write error (errno tells why). */
ARWKV_PRIVATE int arwkv__out_write(arwkv__out *o, const void *data, size_t len) {
    const char *p = (const char *)data;
    while (len > 0) {
        if (o->n == sizeof o->buf && !arwkv__out_flush(o)) return 0;
        size_t k = sizeof o->buf - o->n < len ? sizeof o->buf - o->n : len;
        memcpy(o->buf + o->n, p, k);
        o->n += k;
        p += k;
        len -= k;
    }
    return 1;
}

typedef arwkv_result (*arwkv__writer_fn)(arwkv__out *out, void *ctx);

ARWKV_PRIVATE arwkv_result arwkv__write_atomic(const char *path, arwkv__writer_fn write_fn, void *ctx) {
    size_t n = strlen(path);
    char *tmp = (char *)arwkv__malloc(n + 48);
    arwkv__out *o = (arwkv__out *)arwkv__malloc(sizeof *o);
    if (!tmp || !o) {
        arwkv__free(tmp);
        arwkv__free(o);
        return arwkv__fail(ARWKV_ERR_OUT_OF_MEMORY, "%s: out of memory", path);
    }
    memset(o, 0, offsetof(arwkv__out, buf));
    arwkv_result r = ARWKV_OK;
#if !defined(_WIN32)
    /* a name no other writer uses: pid plus an attempt counter, created exclusively */
    for (int attempt = 0;; attempt++) {
        snprintf(tmp, n + 48, "%s.tmp.%ld.%d", path, (long)getpid(), attempt);
        o->fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL, 0644);
        if (o->fd >= 0 || errno != EEXIST || attempt > 1000) break;
    }
    if (o->fd < 0) r = arwkv__fail(ARWKV_ERR_IO, "%s: cannot create temporary file %s: %s", path, tmp, strerror(errno));
#else
    snprintf(tmp, n + 48, "%s.tmp", path);
    o->file = fopen(tmp, "wb");
    if (!o->file) r = arwkv__fail(ARWKV_ERR_IO, "%s: cannot create temporary file %s: %s", path, tmp, strerror(errno));
#endif
    if (r != ARWKV_OK) {
        arwkv__free(tmp);
        arwkv__free(o);
        return r;
    }
    r = write_fn(o, ctx);
    if (r == ARWKV_OK && !arwkv__out_flush(o)) r = arwkv__fail(ARWKV_ERR_IO, "%s: write failed: %s", path, strerror(errno));
#if !defined(_WIN32)
    if (r == ARWKV_OK && fsync(o->fd) != 0) r = arwkv__fail(ARWKV_ERR_IO, "%s: fsync failed: %s", path, strerror(errno));
    if (close(o->fd) != 0 && r == ARWKV_OK) r = arwkv__fail(ARWKV_ERR_IO, "%s: close failed: %s", path, strerror(errno));
#else
    if (fclose(o->file) != 0 && r == ARWKV_OK) r = arwkv__fail(ARWKV_ERR_IO, "%s: close failed: %s", path, strerror(errno));
#endif
    if (r == ARWKV_OK && rename(tmp, path) != 0)
        r = arwkv__fail(ARWKV_ERR_IO, "%s: cannot rename %s into place: %s", path, tmp, strerror(errno));
    if (r != ARWKV_OK) remove(tmp);
#if !defined(_WIN32)
    if (r == ARWKV_OK) { /* make the rename itself durable */
        char *dir = arwkv__strdup(path);
        if (dir) {
            char *slash = strrchr(dir, '/');
            if (slash == dir) dir[1] = 0;
            else if (slash) *slash = 0;
            else strcpy(dir, ".");
            int dfd = open(dir, O_RDONLY);
            if (dfd >= 0) {
                fsync(dfd);
                close(dfd);
            }
            arwkv__free(dir);
        }
    }
#endif
    arwkv__free(tmp);
    arwkv__free(o);
    return r;
}

ARWKV_PRIVATE arwkv_result arwkv__mkdir(const char *dir) {
#if !defined(_WIN32)
    if (mkdir(dir, 0755) != 0 && errno != EEXIST)
        return arwkv__fail(ARWKV_ERR_IO, "%s: cannot create directory: %s", dir, strerror(errno));
    if (!arwkv__is_dir(dir)) return arwkv__fail(ARWKV_ERR_IO, "%s: exists and is not a directory", dir);
#else
    (void)dir;
#endif
    return ARWKV_OK;
}

/* ---- Numbers ---------------------------------------------------------------------------------- */

ARWKV_API const char *arwkv_dtype_name(arwkv_dtype t) {
    static const char *names[ARWKV_DTYPE_COUNT] = {"UNKNOWN", "F32", "F16", "BF16", "F64", "I64",
                                                   "I32", "I16", "I8", "U8", "BOOL"};
    return (t > 0 && t < ARWKV_DTYPE_COUNT) ? names[t] : "UNKNOWN";
}

ARWKV_API size_t arwkv_dtype_size(arwkv_dtype t) {
    static const size_t sizes[ARWKV_DTYPE_COUNT] = {0, 4, 2, 2, 8, 8, 4, 2, 1, 1, 1};
    return (t > 0 && t < ARWKV_DTYPE_COUNT) ? sizes[t] : 0;
}

ARWKV_PRIVATE arwkv_dtype arwkv__dtype_from_name(const char *s, size_t n) {
    for (int t = 1; t < ARWKV_DTYPE_COUNT; t++) {
        const char *name = arwkv_dtype_name((arwkv_dtype)t);
        if (strlen(name) == n && memcmp(name, s, n) == 0) return (arwkv_dtype)t;
    }
    return ARWKV_DTYPE_UNKNOWN;
}

ARWKV_API float arwkv_bf16_to_f32(uint16_t h) {
    uint32_t u = (uint32_t)h << 16;
    float f;
    memcpy(&f, &u, 4);
    return f;
}

ARWKV_API uint16_t arwkv_f32_to_bf16(float f) {
    uint32_t u;
    memcpy(&u, &f, 4);
    if ((u & 0x7fffffffu) > 0x7f800000u) return (uint16_t)((u >> 16) | 0x40); /* quiet NaN */
    u += 0x7fffu + ((u >> 16) & 1u);                                         /* nearest, ties to even */
    return (uint16_t)(u >> 16);
}

ARWKV_API float arwkv_f16_to_f32(uint16_t h) {
    uint32_t sign = (uint32_t)(h & 0x8000) << 16, exp = (h >> 10) & 0x1f, mant = h & 0x3ff, u;
    if (exp == 0) {
        if (mant == 0) u = sign;
        else { /* subnormal: normalise */
            exp = 127 - 15 + 1;
            while (!(mant & 0x400)) {
                mant <<= 1;
                exp--;
            }
            u = sign | (exp << 23) | ((mant & 0x3ff) << 13);
        }
    } else if (exp == 31) u = sign | 0x7f800000u | (mant << 13);
    else u = sign | ((exp + 127 - 15) << 23) | (mant << 13);
    float f;
    memcpy(&f, &u, 4);
    return f;
}

ARWKV_API uint16_t arwkv_f32_to_f16(float f) {
    uint32_t u;
    memcpy(&u, &f, 4);
    uint32_t sign = (u >> 16) & 0x8000, abs = u & 0x7fffffffu;
    if (abs > 0x7f800000u) return (uint16_t)(sign | 0x7e00);      /* NaN */
    if (abs >= 0x477ff000u) return (uint16_t)(sign | 0x7c00);     /* overflow to inf (after rounding) */
    if (abs < 0x38800000u) {                                      /* subnormal or zero in f16 */
        if (abs < 0x33000000u) return (uint16_t)sign;             /* below half the smallest subnormal */
        uint32_t e = abs >> 23, m = (abs & 0x7fffff) | 0x800000;
        uint32_t shift = 126 - e;                                 /* 14 + (113 - e) */
        uint32_t half = 1u << (shift - 1), rest = m & ((1u << shift) - 1), q = m >> shift;
        if (rest > half || (rest == half && (q & 1))) q++;
        return (uint16_t)(sign | q);
    }
    uint32_t r = abs + 0xfffu + ((abs >> 13) & 1u);               /* nearest, ties to even */
    return (uint16_t)(sign | ((r - 0x38000000u) >> 13));
}

ARWKV_API arwkv_result arwkv_to_f32(float *dst, const void *src, arwkv_dtype t, size_t n) {
    const unsigned char *p = (const unsigned char *)src;
    switch (t) {
    case ARWKV_F32: memcpy(dst, src, n * 4); break;
    case ARWKV_BF16:
        for (size_t i = 0; i < n; i++) {
            uint16_t h;
            memcpy(&h, p + 2 * i, 2);
            dst[i] = arwkv_bf16_to_f32(h);
        }
        break;
    case ARWKV_F16:
        for (size_t i = 0; i < n; i++) {
            uint16_t h;
            memcpy(&h, p + 2 * i, 2);
            dst[i] = arwkv_f16_to_f32(h);
        }
        break;
    case ARWKV_F64:
        for (size_t i = 0; i < n; i++) {
            double d;
            memcpy(&d, p + 8 * i, 8);
            dst[i] = (float)d;
        }
        break;
    case ARWKV_I64:
        for (size_t i = 0; i < n; i++) {
            int64_t v;
            memcpy(&v, p + 8 * i, 8);
            dst[i] = (float)v;
        }
        break;
    case ARWKV_I32:
        for (size_t i = 0; i < n; i++) {
            int32_t v;
            memcpy(&v, p + 4 * i, 4);
            dst[i] = (float)v;
        }
        break;
    case ARWKV_I16:
        for (size_t i = 0; i < n; i++) {
            int16_t v;
            memcpy(&v, p + 2 * i, 2);
            dst[i] = (float)v;
        }
        break;
    case ARWKV_I8:
        for (size_t i = 0; i < n; i++) dst[i] = (float)(int8_t)p[i];
        break;
    case ARWKV_U8:
    case ARWKV_BOOL:
        for (size_t i = 0; i < n; i++) dst[i] = (float)p[i];
        break;
    default: return arwkv__fail(ARWKV_ERR_UNSUPPORTED, "cannot convert dtype %s to F32", arwkv_dtype_name(t));
    }
    return ARWKV_OK;
}

ARWKV_API void arwkv_free(void *p) { arwkv__free(p); }

ARWKV_API double arwkv_seconds(void) {
    struct timespec ts;
    if (timespec_get(&ts, TIME_UTC) != TIME_UTC) return 0;
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* ---- Thread pool -------------------------------------------------------------------------------
   Workers sleep on a condition variable between loops. A loop hands out task indices through an
   atomic counter; the caller's thread works too and then waits for the stragglers. */

struct arwkv_pool {
    int n_threads; /* including the caller */
#ifndef ARWKV_NO_THREADS
    pthread_t *workers;
    pthread_mutex_t mutex;
    pthread_cond_t wake, done;
    uint64_t generation; /* bumped for every loop */
    int busy;            /* workers still inside the current loop */
    int quit;
    arwkv_task_fn fn;
    void *ctx;
    int n_tasks;
    int next_task; /* atomic */
#endif
    /* per-thread scratch memory for ops (packed matrix panels, ...); grown on demand by the
       thread that owns it, freed with the pool */
    void **scratch;
    size_t *scratch_size;
};

/* Scratch memory of at least `bytes` for `thread` of the pool, 64-byte aligned. Contents are not
   kept between calls. NULL if out of memory. */
ARWKV_PRIVATE void *arwkv__scratch(arwkv_pool *p, int thread, size_t bytes) {
    if (p->scratch_size[thread] < bytes) {
        arwkv__free(p->scratch[thread]);
        p->scratch[thread] = arwkv__malloc(bytes + 64);
        p->scratch_size[thread] = p->scratch[thread] ? bytes : 0;
        if (!p->scratch[thread]) return NULL;
    }
    uintptr_t a = (uintptr_t)p->scratch[thread];
    return (void *)((a + 63) & ~(uintptr_t)63);
}

#ifndef ARWKV_NO_THREADS
ARWKV_PRIVATE void arwkv__pool_work(arwkv_pool *p, int thread) {
    for (;;) {
        int t = __atomic_fetch_add(&p->next_task, 1, __ATOMIC_RELAXED);
        if (t >= p->n_tasks) break;
        p->fn(p->ctx, t, thread);
    }
}

typedef struct arwkv__worker_arg {
    arwkv_pool *pool;
    int thread;
} arwkv__worker_arg;

static void *arwkv__pool_main(void *arg_) {
    arwkv__worker_arg *arg = (arwkv__worker_arg *)arg_;
    arwkv_pool *p = arg->pool;
    int thread = arg->thread;
    arwkv__free(arg);
    uint64_t seen = 0;
    pthread_mutex_lock(&p->mutex);
    for (;;) {
        while (p->generation == seen && !p->quit) pthread_cond_wait(&p->wake, &p->mutex);
        if (p->quit) break;
        seen = p->generation;
        pthread_mutex_unlock(&p->mutex);
        arwkv__pool_work(p, thread);
        pthread_mutex_lock(&p->mutex);
        if (--p->busy == 0) pthread_cond_signal(&p->done);
    }
    pthread_mutex_unlock(&p->mutex);
    return NULL;
}
#endif

ARWKV_API arwkv_result arwkv_pool_create(int n_threads, arwkv_pool **out) {
    *out = NULL;
    if (n_threads <= 0) {
#if !defined(_WIN32) && defined(_SC_NPROCESSORS_ONLN)
        long n = sysconf(_SC_NPROCESSORS_ONLN);
        n_threads = n > 0 ? (int)n : 1;
#else
        n_threads = 1;
#endif
    }
    if (n_threads > 1024) n_threads = 1024;
    arwkv_pool *p = (arwkv_pool *)arwkv__calloc(1, sizeof *p);
    if (p) p->scratch = (void **)arwkv__calloc((size_t)n_threads, sizeof(void *));
    if (p) p->scratch_size = (size_t *)arwkv__calloc((size_t)n_threads, sizeof(size_t));
    if (!p || !p->scratch || !p->scratch_size) {
        if (p) arwkv__free(p->scratch);
        arwkv__free(p);
        return arwkv__fail(ARWKV_ERR_OUT_OF_MEMORY, "thread pool: out of memory");
    }
#ifdef ARWKV_NO_THREADS
    p->n_threads = 1;
#else
    p->n_threads = n_threads;
    pthread_mutex_init(&p->mutex, NULL);
    pthread_cond_init(&p->wake, NULL);
    pthread_cond_init(&p->done, NULL);
    if (n_threads > 1) {
        p->workers = (pthread_t *)arwkv__calloc((size_t)n_threads, sizeof(pthread_t));
        if (!p->workers) {
            arwkv_pool_destroy(p);
            return arwkv__fail(ARWKV_ERR_OUT_OF_MEMORY, "thread pool: out of memory");
        }
    }
    for (int i = 1; i < n_threads; i++) {
        arwkv__worker_arg *arg = (arwkv__worker_arg *)arwkv__malloc(sizeof *arg);
        if (!arg || (arg->pool = p, arg->thread = i, pthread_create(&p->workers[i], NULL, arwkv__pool_main, arg) != 0)) {
            arwkv__free(arg);
            p->n_threads = i; /* the ones started so far are joined by destroy */
            arwkv_pool_destroy(p);
            return arwkv__fail(ARWKV_ERR_UNSUPPORTED, "thread pool: cannot start thread %d of %d", i, n_threads);
        }
    }
#endif
    *out = p;
    return ARWKV_OK;
}

ARWKV_API void arwkv_pool_destroy(arwkv_pool *p) {
    if (!p) return;
#ifndef ARWKV_NO_THREADS
    pthread_mutex_lock(&p->mutex);
    p->quit = 1;
    pthread_cond_broadcast(&p->wake);
    pthread_mutex_unlock(&p->mutex);
    for (int i = 1; i < p->n_threads; i++) pthread_join(p->workers[i], NULL);
    pthread_mutex_destroy(&p->mutex);
    pthread_cond_destroy(&p->wake);
    pthread_cond_destroy(&p->done);
    arwkv__free(p->workers);
#endif
    for (int i = 0; i < p->n_threads; i++) arwkv__free(p->scratch[i]);
    arwkv__free(p->scratch);
    arwkv__free(p->scratch_size);
    arwkv__free(p);
}

ARWKV_API int arwkv_pool_size(const arwkv_pool *p) { return p ? p->n_threads : 1; }

ARWKV_API void arwkv_pool_run(arwkv_pool *p, int n_tasks, arwkv_task_fn fn, void *ctx) {
    if (n_tasks <= 0) return;
#ifndef ARWKV_NO_THREADS
    if (p && p->n_threads > 1 && n_tasks > 1) {
        pthread_mutex_lock(&p->mutex);
        p->fn = fn;
        p->ctx = ctx;
        p->n_tasks = n_tasks;
        p->next_task = 0;
        p->busy = p->n_threads - 1;
        p->generation++;
        pthread_cond_broadcast(&p->wake);
        pthread_mutex_unlock(&p->mutex);
        arwkv__pool_work(p, 0);
        pthread_mutex_lock(&p->mutex);
        while (p->busy > 0) pthread_cond_wait(&p->done, &p->mutex);
        pthread_mutex_unlock(&p->mutex);
        return;
    }
#endif
    (void)p;
    for (int t = 0; t < n_tasks; t++) fn(ctx, t, 0);
}

/* ============================================================================================
   2. JSON reader
   ============================================================================================
   Parses a whole document into a flat array of nodes; strings are unescaped into one arena.
   Enough for config.json, tokenizer.json (11 MB in well under a second), index files and
   safetensors headers. Strict: RFC 8259 grammar, valid UTF-8, no lone surrogates, a depth limit. */

enum { ARWKV__JSON_NULL, ARWKV__JSON_FALSE, ARWKV__JSON_TRUE, ARWKV__JSON_NUMBER,
       ARWKV__JSON_STRING, ARWKV__JSON_ARRAY, ARWKV__JSON_OBJECT };

#define ARWKV__JSON_MAX_DEPTH 128

typedef struct arwkv__json_node {
    uint8_t type;
    uint32_t next;     /* next sibling (0: none; node 0 is the root and is nobody's sibling) */
    uint32_t key;      /* member key: offset into the string arena */
    uint32_t key_len;
    uint32_t first;    /* array/object: first child; string: offset into the arena */
    uint32_t len;      /* array/object: child count; string: byte length */
    double num;
} arwkv__json_node;

typedef struct arwkv__json {
    arwkv__json_node *nodes;
    uint32_t n_nodes, cap_nodes;
    char *strings; /* arena: every string and key, NUL-terminated */
    size_t n_strings;
    /* parser state */
    const char *src;
    size_t len, pos;
    const char *name; /* for errors */
} arwkv__json;

ARWKV_PRIVATE void arwkv__json_free(arwkv__json *j) {
    arwkv__free(j->nodes);
    arwkv__free(j->strings);
    memset(j, 0, sizeof *j);
}

ARWKV_PRIVATE arwkv_result arwkv__json_error(arwkv__json *j, const char *what) {
    /* line and column help a person find the spot in a text file */
    size_t line = 1, col = 1;
    for (size_t i = 0; i < j->pos && i < j->len; i++) {
        if (j->src[i] == '\n') {
            line++;
            col = 1;
        } else col++;
    }
    return arwkv__fail(ARWKV_ERR_FORMAT, "%s: JSON error at byte %zu (line %zu, column %zu): %s", j->name,
                       j->pos, line, col, what);
}

ARWKV_PRIVATE uint32_t arwkv__json_new_node(arwkv__json *j, int type) {
    if (j->n_nodes == j->cap_nodes) {
        uint32_t cap = j->cap_nodes ? j->cap_nodes * 2 : 64;
        if (cap < j->cap_nodes) return UINT32_MAX;
        arwkv__json_node *p = (arwkv__json_node *)arwkv__realloc(j->nodes, (size_t)cap * sizeof *p);
        if (!p) return UINT32_MAX;
        j->nodes = p;
        j->cap_nodes = cap;
    }
    arwkv__json_node *n = &j->nodes[j->n_nodes];
    memset(n, 0, sizeof *n);
    n->type = (uint8_t)type;
    return j->n_nodes++;
}

ARWKV_PRIVATE void arwkv__json_skip_ws(arwkv__json *j) {
    while (j->pos < j->len) {
        char c = j->src[j->pos];
        if (c == ' ' || c == '\t' || c == '\n' || c == '\r') j->pos++;
        else break;
    }
}

ARWKV_PRIVATE int arwkv__hex4(const char *s, uint32_t *out) {
    uint32_t v = 0;
    for (int i = 0; i < 4; i++) {
        char c = s[i];
        v <<= 4;
        if (c >= '0' && c <= '9') v |= (uint32_t)(c - '0');
        else if (c >= 'a' && c <= 'f') v |= (uint32_t)(c - 'a' + 10);
        else if (c >= 'A' && c <= 'F') v |= (uint32_t)(c - 'A' + 10);
        else return 0;
    }
    *out = v;
    return 1;
}

ARWKV_PRIVATE int arwkv__utf8_encode(uint32_t cp, char *out) {
    if (cp < 0x80) {
        out[0] = (char)cp;
        return 1;
    }
    if (cp < 0x800) {
        out[0] = (char)(0xc0 | (cp >> 6));
        out[1] = (char)(0x80 | (cp & 0x3f));
        return 2;
    }
    if (cp < 0x10000) {
        out[0] = (char)(0xe0 | (cp >> 12));
        out[1] = (char)(0x80 | ((cp >> 6) & 0x3f));
        out[2] = (char)(0x80 | (cp & 0x3f));
        return 3;
    }
    out[0] = (char)(0xf0 | (cp >> 18));
    out[1] = (char)(0x80 | ((cp >> 12) & 0x3f));
    out[2] = (char)(0x80 | ((cp >> 6) & 0x3f));
    out[3] = (char)(0x80 | (cp & 0x3f));
    return 4;
}

/* Length of the valid UTF-8 sequence at s (at most n bytes), 0 if invalid (overlong forms,
   surrogates and code points above U+10FFFF are invalid). */
ARWKV_PRIVATE int arwkv__utf8_valid_len(const unsigned char *s, size_t n) {
    unsigned char c = s[0];
    if (c < 0x80) return 1;
    if (c < 0xc2) return 0;
    if (c < 0xe0) return (n >= 2 && (s[1] & 0xc0) == 0x80) ? 2 : 0;
    if (c < 0xf0) {
        if (n < 3 || (s[1] & 0xc0) != 0x80 || (s[2] & 0xc0) != 0x80) return 0;
        if (c == 0xe0 && s[1] < 0xa0) return 0;  /* overlong */
        if (c == 0xed && s[1] >= 0xa0) return 0; /* surrogate */
        return 3;
    }
    if (c < 0xf5) {
        if (n < 4 || (s[1] & 0xc0) != 0x80 || (s[2] & 0xc0) != 0x80 || (s[3] & 0xc0) != 0x80) return 0;
        if (c == 0xf0 && s[1] < 0x90) return 0;  /* overlong */
        if (c == 0xf4 && s[1] >= 0x90) return 0; /* above U+10FFFF */
        return 4;
    }
    return 0;
}

/* Parse a string literal at pos (on the opening quote); unescape into the arena. */
ARWKV_PRIVATE arwkv_result arwkv__json_string(arwkv__json *j, uint32_t *off, uint32_t *out_len) {
    j->pos++; /* opening quote */
    size_t start = j->n_strings;
    char *dst = j->strings + start;
    size_t k = 0;
    for (;;) {
        if (j->pos >= j->len) return arwkv__json_error(j, "unterminated string");
        unsigned char c = (unsigned char)j->src[j->pos];
        if (c == '"') {
            j->pos++;
            break;
        }
        if (c < 0x20) return arwkv__json_error(j, "control character inside a string (must be escaped)");
        if (c == '\\') {
            if (j->pos + 1 >= j->len) return arwkv__json_error(j, "unterminated escape");
            char e = j->src[j->pos + 1];
            j->pos += 2;
            switch (e) {
            case '"': dst[k++] = '"'; break;
            case '\\': dst[k++] = '\\'; break;
            case '/': dst[k++] = '/'; break;
            case 'b': dst[k++] = '\b'; break;
            case 'f': dst[k++] = '\f'; break;
            case 'n': dst[k++] = '\n'; break;
            case 'r': dst[k++] = '\r'; break;
            case 't': dst[k++] = '\t'; break;
            case 'u': {
                uint32_t cp;
                if (j->pos + 4 > j->len || !arwkv__hex4(j->src + j->pos, &cp))
                    return arwkv__json_error(j, "bad \\u escape (needs four hex digits)");
                j->pos += 4;
                if (cp >= 0xdc00 && cp <= 0xdfff) return arwkv__json_error(j, "lone low surrogate in \\u escape");
                if (cp >= 0xd800 && cp <= 0xdbff) {
                    uint32_t lo;
                    if (j->pos + 6 > j->len || j->src[j->pos] != '\\' || j->src[j->pos + 1] != 'u' ||
                        !arwkv__hex4(j->src + j->pos + 2, &lo) || lo < 0xdc00 || lo > 0xdfff)
                        return arwkv__json_error(j, "high surrogate not followed by a low surrogate");
                    j->pos += 6;
                    cp = 0x10000 + ((cp - 0xd800) << 10) + (lo - 0xdc00);
                }
                k += (size_t)arwkv__utf8_encode(cp, dst + k);
                break;
            }
            default: j->pos -= 1; return arwkv__json_error(j, "unknown escape character");
            }
            continue;
        }
        if (c < 0x80) {
            dst[k++] = (char)c;
            j->pos++;
            continue;
        }
        int n = arwkv__utf8_valid_len((const unsigned char *)j->src + j->pos, j->len - j->pos);
        if (!n) return arwkv__json_error(j, "invalid UTF-8 inside a string");
        memcpy(dst + k, j->src + j->pos, (size_t)n);
        k += (size_t)n;
        j->pos += (size_t)n;
    }
    dst[k] = 0;
    if (start > UINT32_MAX || k > UINT32_MAX) return arwkv__json_error(j, "string too large");
    j->n_strings += k + 1;
    *off = (uint32_t)start;
    *out_len = (uint32_t)k;
    return ARWKV_OK;
}

ARWKV_PRIVATE arwkv_result arwkv__json_number(arwkv__json *j, double *out) {
    size_t p = j->pos, start = p;
    const char *s = j->src;
    int negative = 0, integral = 1;
    if (p < j->len && s[p] == '-') {
        negative = 1;
        p++;
    }
    if (p >= j->len || !(s[p] >= '0' && s[p] <= '9')) return arwkv__json_error(j, "bad number");
    uint64_t iv = 0;
    int digits = 0;
    if (s[p] == '0') p++, digits = 1;
    else
        while (p < j->len && s[p] >= '0' && s[p] <= '9') {
            if (digits < 18) iv = iv * 10 + (uint64_t)(s[p] - '0');
            digits++;
            p++;
        }
    if (p < j->len && s[p] == '.') {
        integral = 0;
        p++;
        if (p >= j->len || !(s[p] >= '0' && s[p] <= '9')) return arwkv__json_error(j, "bad number: digit expected after '.'");
        while (p < j->len && s[p] >= '0' && s[p] <= '9') p++;
    }
    if (p < j->len && (s[p] == 'e' || s[p] == 'E')) {
        integral = 0;
        p++;
        if (p < j->len && (s[p] == '+' || s[p] == '-')) p++;
        if (p >= j->len || !(s[p] >= '0' && s[p] <= '9')) return arwkv__json_error(j, "bad number: digit expected in exponent");
        while (p < j->len && s[p] >= '0' && s[p] <= '9') p++;
    }
    if (integral && digits <= 18) {
        *out = negative ? -(double)iv : (double)iv; /* exact: fast path for token ids and offsets */
    } else {
        char tmp[64];
        size_t n = p - start;
        if (n >= sizeof tmp) { /* very long literal: strtod needs a NUL-terminated copy */
            char *big = arwkv__strndup(s + start, n);
            if (!big) return arwkv__fail(ARWKV_ERR_OUT_OF_MEMORY, "%s: out of memory", j->name);
            *out = strtod(big, NULL);
            arwkv__free(big);
        } else {
            memcpy(tmp, s + start, n);
            tmp[n] = 0;
            *out = strtod(tmp, NULL);
        }
    }
    j->pos = p;
    return ARWKV_OK;
}

ARWKV_PRIVATE arwkv_result arwkv__json_value(arwkv__json *j, uint32_t *out, int depth) {
    arwkv__json_skip_ws(j);
    if (j->pos >= j->len) return arwkv__json_error(j, "unexpected end of input, value expected");
    if (depth > ARWKV__JSON_MAX_DEPTH) return arwkv__json_error(j, "nesting deeper than 128 levels");
    char c = j->src[j->pos];
    uint32_t id;
    if (c == '{' || c == '[') {
        int is_object = c == '{';
        id = arwkv__json_new_node(j, is_object ? ARWKV__JSON_OBJECT : ARWKV__JSON_ARRAY);
        if (id == UINT32_MAX) return arwkv__fail(ARWKV_ERR_OUT_OF_MEMORY, "%s: out of memory", j->name);
        j->pos++;
        arwkv__json_skip_ws(j);
        uint32_t prev = 0, count = 0;
        if (j->pos < j->len && j->src[j->pos] == (is_object ? '}' : ']')) {
            j->pos++;
        } else {
            for (;;) {
                uint32_t key = 0, key_len = 0, child;
                if (is_object) {
                    arwkv__json_skip_ws(j);
                    if (j->pos >= j->len || j->src[j->pos] != '"') return arwkv__json_error(j, "object key (a string) expected");
                    ARWKV__TRY(arwkv__json_string(j, &key, &key_len));
                    arwkv__json_skip_ws(j);
                    if (j->pos >= j->len || j->src[j->pos] != ':') return arwkv__json_error(j, "':' expected after object key");
                    j->pos++;
                }
                ARWKV__TRY(arwkv__json_value(j, &child, depth + 1));
                j->nodes[child].key = key;
                j->nodes[child].key_len = key_len;
                if (count == 0) j->nodes[id].first = child;
                else j->nodes[prev].next = child;
                prev = child;
                count++;
                arwkv__json_skip_ws(j);
                if (j->pos >= j->len) return arwkv__json_error(j, is_object ? "unterminated object" : "unterminated array");
                char d = j->src[j->pos];
                if (d == ',') {
                    j->pos++;
                    continue;
                }
                if (d == (is_object ? '}' : ']')) {
                    j->pos++;
                    break;
                }
                return arwkv__json_error(j, is_object ? "',' or '}' expected" : "',' or ']' expected");
            }
        }
        j->nodes[id].len = count;
    } else if (c == '"') {
        uint32_t off, len;
        ARWKV__TRY(arwkv__json_string(j, &off, &len));
        id = arwkv__json_new_node(j, ARWKV__JSON_STRING);
        if (id == UINT32_MAX) return arwkv__fail(ARWKV_ERR_OUT_OF_MEMORY, "%s: out of memory", j->name);
        j->nodes[id].first = off;
        j->nodes[id].len = len;
    } else if (c == '-' || (c >= '0' && c <= '9')) {
        double v = 0;
        ARWKV__TRY(arwkv__json_number(j, &v));
        id = arwkv__json_new_node(j, ARWKV__JSON_NUMBER);
        if (id == UINT32_MAX) return arwkv__fail(ARWKV_ERR_OUT_OF_MEMORY, "%s: out of memory", j->name);
        j->nodes[id].num = v;
    } else {
        static const char *words[3] = {"null", "false", "true"};
        int type = -1;
        for (int w = 0; w < 3; w++) {
            size_t n = strlen(words[w]);
            if (j->len - j->pos >= n && memcmp(j->src + j->pos, words[w], n) == 0) {
                type = w; /* ARWKV__JSON_NULL, _FALSE, _TRUE are 0, 1, 2 */
                j->pos += n;
                break;
            }
        }
        if (type < 0) return arwkv__json_error(j, "unexpected character, value expected");
        id = arwkv__json_new_node(j, type);
        if (id == UINT32_MAX) return arwkv__fail(ARWKV_ERR_OUT_OF_MEMORY, "%s: out of memory", j->name);
    }
    *out = id;
    return ARWKV_OK;
}

/* Parse text[0..len) (need not be NUL-terminated). On error j is left empty. */
ARWKV_PRIVATE arwkv_result arwkv__json_parse(arwkv__json *j, const char *text, size_t len, const char *name) {
    memset(j, 0, sizeof *j);
    j->src = text;
    j->len = len;
    j->name = name ? name : "JSON";
    if (len > ((size_t)1 << 31)) return arwkv__fail(ARWKV_ERR_FORMAT, "%s: JSON text larger than 2 GiB", j->name);
    /* unescaping never grows a string, and each literal's quotes pay for its NUL */
    j->strings = (char *)arwkv__malloc(len + 1);
    if (!j->strings) return arwkv__fail(ARWKV_ERR_OUT_OF_MEMORY, "%s: out of memory", j->name);
    uint32_t root;
    arwkv_result r = arwkv__json_value(j, &root, 0);
    if (r == ARWKV_OK) {
        arwkv__json_skip_ws(j);
        if (j->pos != j->len) r = arwkv__json_error(j, "trailing characters after the JSON value");
    }
    if (r != ARWKV_OK) arwkv__json_free(j);
    return r;
}

/* Accessors. Node ids are indices; 0 is the root. UINT32_MAX means "absent". */
#define ARWKV__JSON_NONE UINT32_MAX

ARWKV_PRIVATE int arwkv__json_type(const arwkv__json *j, uint32_t n) {
    return n == ARWKV__JSON_NONE ? -1 : j->nodes[n].type;
}
ARWKV_PRIVATE const char *arwkv__json_str(const arwkv__json *j, uint32_t n) {
    return (n != ARWKV__JSON_NONE && j->nodes[n].type == ARWKV__JSON_STRING) ? j->strings + j->nodes[n].first : NULL;
}
ARWKV_PRIVATE uint32_t arwkv__json_str_len(const arwkv__json *j, uint32_t n) { return j->nodes[n].len; }
ARWKV_PRIVATE const char *arwkv__json_key(const arwkv__json *j, uint32_t n) { return j->strings + j->nodes[n].key; }
ARWKV_PRIVATE uint32_t arwkv__json_key_len(const arwkv__json *j, uint32_t n) { return j->nodes[n].key_len; }
ARWKV_PRIVATE uint32_t arwkv__json_count(const arwkv__json *j, uint32_t n) {
    return (n != ARWKV__JSON_NONE && j->nodes[n].type >= ARWKV__JSON_ARRAY) ? j->nodes[n].len : 0;
}
/* First child of an array or object, then arwkv__json_next. */
ARWKV_PRIVATE uint32_t arwkv__json_first(const arwkv__json *j, uint32_t n) {
    return arwkv__json_count(j, n) ? j->nodes[n].first : ARWKV__JSON_NONE;
}
ARWKV_PRIVATE uint32_t arwkv__json_next(const arwkv__json *j, uint32_t n) {
    return j->nodes[n].next ? j->nodes[n].next : ARWKV__JSON_NONE;
}
/* Member of an object by key (the last one wins if a key repeats, as in most JSON readers). */
ARWKV_PRIVATE uint32_t arwkv__json_get(const arwkv__json *j, uint32_t obj, const char *key) {
    if (arwkv__json_type(j, obj) != ARWKV__JSON_OBJECT) return ARWKV__JSON_NONE;
    size_t n = strlen(key);
    uint32_t found = ARWKV__JSON_NONE;
    for (uint32_t c = arwkv__json_first(j, obj); c != ARWKV__JSON_NONE; c = arwkv__json_next(j, c))
        if (j->nodes[c].key_len == n && memcmp(j->strings + j->nodes[c].key, key, n) == 0) found = c;
    return found;
}
ARWKV_PRIVATE uint32_t arwkv__json_at(const arwkv__json *j, uint32_t arr, uint32_t i) {
    if (i >= arwkv__json_count(j, arr)) return ARWKV__JSON_NONE;
    uint32_t c = arwkv__json_first(j, arr);
    while (i--) c = arwkv__json_next(j, c);
    return c;
}
ARWKV_PRIVATE int arwkv__json_is_number(const arwkv__json *j, uint32_t n) {
    return arwkv__json_type(j, n) == ARWKV__JSON_NUMBER;
}
ARWKV_PRIVATE double arwkv__json_num(const arwkv__json *j, uint32_t n) { return j->nodes[n].num; }
/* true/false as 1/0, -1 if not a boolean */
ARWKV_PRIVATE int arwkv__json_bool(const arwkv__json *j, uint32_t n) {
    int t = arwkv__json_type(j, n);
    return t == ARWKV__JSON_TRUE ? 1 : t == ARWKV__JSON_FALSE ? 0 : -1;
}

/* ============================================================================================
   3. safetensors
   ============================================================================================
   Format: 8-byte little-endian header length N, N bytes of JSON (may be padded with spaces), then
   the data. The JSON maps each tensor name to {dtype, shape, data_offsets: [begin, end]} relative
   to the start of the data; "__metadata__" maps strings to strings. We require what the reference
   implementation requires: offsets in range, tensors back to back from 0 with no hole and no
   overlap, size = product of shape times element size, known dtypes, unique names. */

#define ARWKV__ST_MAX_HEADER (100u << 20) /* the reference reader's limit: 100 MB */

typedef struct arwkv__st_file {
    char *path;
    const unsigned char *map; /* whole file */
    size_t size;
    int owned;  /* 1: mmapped, 2: malloc'd copy, 0: caller's memory */
    char **meta; /* key, value, key, value, ... */
    int n_meta;
} arwkv__st_file;

struct arwkv_safetensors {
    char *name; /* what the user opened, for errors */
    arwkv__st_file *files;
    int n_files;
    arwkv_tensor_info *tensors;
    int n_tensors, cap_tensors;
    char *names; /* arena for tensor names (per tensor a separate allocation would be wasteful) */
    int32_t *table; /* open-addressing hash table of tensor indices, -1 empty */
    uint32_t table_mask;
};

ARWKV_PRIVATE uint64_t arwkv__hash(const char *s, size_t n) {
    uint64_t h = 1469598103934665603ull; /* FNV-1a */
    for (size_t i = 0; i < n; i++) {
        h ^= (unsigned char)s[i];
        h *= 1099511628211ull;
    }
    return h;
}

ARWKV_PRIVATE int arwkv__st_lookup(const arwkv_safetensors *st, const char *name, size_t n) {
    if (!st->table) return -1;
    uint32_t i = (uint32_t)arwkv__hash(name, n) & st->table_mask;
    for (;;) {
        int32_t t = st->table[i];
        if (t < 0) return -1;
        const char *tn = st->tensors[t].name;
        if (strncmp(tn, name, n) == 0 && tn[n] == 0) return t;
        i = (i + 1) & st->table_mask;
    }
}

ARWKV_PRIVATE arwkv_result arwkv__st_build_table(arwkv_safetensors *st) {
    uint32_t size = 16;
    while (size < (uint32_t)st->n_tensors * 2u) size *= 2;
    arwkv__free(st->table);
    st->table = (int32_t *)arwkv__malloc(size * sizeof(int32_t));
    if (!st->table) return arwkv__fail(ARWKV_ERR_OUT_OF_MEMORY, "%s: out of memory", st->name);
    memset(st->table, 0xff, size * sizeof(int32_t));
    st->table_mask = size - 1;
    for (int t = 0; t < st->n_tensors; t++) {
        const char *name = st->tensors[t].name;
        uint32_t i = (uint32_t)arwkv__hash(name, strlen(name)) & st->table_mask;
        while (st->table[i] >= 0) {
            if (strcmp(st->tensors[st->table[i]].name, name) == 0) {
                return arwkv__fail(ARWKV_ERR_FORMAT, "%s: tensor '%s' appears twice (in %s and %s)", st->name, name,
                                   st->files[st->tensors[st->table[i]].file].path, st->files[st->tensors[t].file].path);
            }
            i = (i + 1) & st->table_mask;
        }
        st->table[i] = t;
    }
    return ARWKV_OK;
}

typedef struct arwkv__st_span {
    uint64_t begin, end;
    int tensor;
} arwkv__st_span;

static int arwkv__st_span_cmp(const void *a, const void *b) {
    const arwkv__st_span *x = (const arwkv__st_span *)a, *y = (const arwkv__st_span *)b;
    return x->begin < y->begin ? -1 : x->begin > y->begin ? 1 : (x->end < y->end ? -1 : x->end > y->end);
}

/* Parse and validate the header of st->files[fi]; append its tensors. */
ARWKV_PRIVATE arwkv_result arwkv__st_parse_file(arwkv_safetensors *st, int fi) {
    arwkv__st_file *f = &st->files[fi];
    const char *path = f->path;
    if (f->size < 8)
        return arwkv__fail(ARWKV_ERR_FORMAT, "%s: file is %zu bytes, too short for a safetensors header (8-byte length first)", path, f->size);
    uint64_t hlen = 0;
    for (int i = 7; i >= 0; i--) hlen = (hlen << 8) | f->map[i];
    if (hlen > ARWKV__ST_MAX_HEADER)
        return arwkv__fail(ARWKV_ERR_FORMAT, "%s: header length %llu at byte 0 exceeds the 100 MB limit (not a safetensors file?)", path, (unsigned long long)hlen);
    if (hlen > f->size - 8)
        return arwkv__fail(ARWKV_ERR_FORMAT, "%s: header length %llu at byte 0 runs past the end of the %zu-byte file (truncated?)", path, (unsigned long long)hlen, f->size);
    if (hlen < 2 || f->map[8] != '{')
        return arwkv__fail(ARWKV_ERR_FORMAT, "%s: header at byte 8 does not start with '{' (not a safetensors file?)", path);
    uint64_t data_start = 8 + hlen, data_size = f->size - data_start;

    arwkv__json j;
    char jname[512];
    snprintf(jname, sizeof jname, "%s (header, JSON byte 0 = file byte 8)", path);
    ARWKV__TRY(arwkv__json_parse(&j, (const char *)f->map + 8, (size_t)hlen, jname));
    arwkv_result r = ARWKV_OK;
    if (arwkv__json_type(&j, 0) != ARWKV__JSON_OBJECT) {
        arwkv__json_free(&j);
        return arwkv__fail(ARWKV_ERR_FORMAT, "%s: header is not a JSON object", path);
    }
    uint32_t count = arwkv__json_count(&j, 0);
    arwkv__st_span *spans = (arwkv__st_span *)arwkv__calloc(count + 1, sizeof *spans);
    int n_spans = 0;
    if (!spans) {
        arwkv__json_free(&j);
        return arwkv__fail(ARWKV_ERR_OUT_OF_MEMORY, "%s: out of memory", path);
    }
    for (uint32_t m = arwkv__json_first(&j, 0); m != ARWKV__JSON_NONE && r == ARWKV_OK; m = arwkv__json_next(&j, m)) {
        const char *key = arwkv__json_key(&j, m);
        size_t klen = arwkv__json_key_len(&j, m);
        if (strlen(key) != klen) { /* an embedded NUL would make the name ambiguous in C */
            r = arwkv__fail(ARWKV_ERR_FORMAT, "%s: a tensor name contains a NUL character", path);
            break;
        }
        if (strcmp(key, "__metadata__") == 0) {
            if (arwkv__json_type(&j, m) != ARWKV__JSON_OBJECT) {
                r = arwkv__fail(ARWKV_ERR_FORMAT, "%s: __metadata__ must be an object of strings", path);
                break;
            }
            uint32_t nm = arwkv__json_count(&j, m);
            f->meta = (char **)arwkv__calloc(2 * (size_t)nm + 1, sizeof(char *));
            if (!f->meta) {
                r = arwkv__fail(ARWKV_ERR_OUT_OF_MEMORY, "%s: out of memory", path);
                break;
            }
            for (uint32_t e = arwkv__json_first(&j, m); e != ARWKV__JSON_NONE; e = arwkv__json_next(&j, e)) {
                if (arwkv__json_type(&j, e) != ARWKV__JSON_STRING) {
                    r = arwkv__fail(ARWKV_ERR_FORMAT, "%s: __metadata__ value of '%s' is not a string", path, arwkv__json_key(&j, e));
                    break;
                }
                f->meta[2 * f->n_meta] = arwkv__strdup(arwkv__json_key(&j, e));
                f->meta[2 * f->n_meta + 1] = arwkv__strndup(arwkv__json_str(&j, e), arwkv__json_str_len(&j, e));
                f->n_meta++;
                if (!f->meta[2 * f->n_meta - 2] || !f->meta[2 * f->n_meta - 1]) {
                    r = arwkv__fail(ARWKV_ERR_OUT_OF_MEMORY, "%s: out of memory", path);
                    break;
                }
            }
            continue;
        }
        if (arwkv__json_type(&j, m) != ARWKV__JSON_OBJECT) {
            r = arwkv__fail(ARWKV_ERR_FORMAT, "%s: tensor '%s': entry is not an object", path, key);
            break;
        }
        uint32_t jd = arwkv__json_get(&j, m, "dtype"), js = arwkv__json_get(&j, m, "shape"),
                 jo = arwkv__json_get(&j, m, "data_offsets");
        if (arwkv__json_type(&j, jd) != ARWKV__JSON_STRING) {
            r = arwkv__fail(ARWKV_ERR_FORMAT, "%s: tensor '%s': missing \"dtype\" string", path, key);
            break;
        }
        arwkv_dtype dt = arwkv__dtype_from_name(arwkv__json_str(&j, jd), arwkv__json_str_len(&j, jd));
        if (dt == ARWKV_DTYPE_UNKNOWN) {
            r = arwkv__fail(ARWKV_ERR_UNSUPPORTED, "%s: tensor '%s': unknown dtype \"%s\" (supported: F32 F16 BF16 F64 I64 I32 I16 I8 U8 BOOL)", path, key, arwkv__json_str(&j, jd));
            break;
        }
        if (arwkv__json_type(&j, js) != ARWKV__JSON_ARRAY) {
            r = arwkv__fail(ARWKV_ERR_FORMAT, "%s: tensor '%s': missing \"shape\" array", path, key);
            break;
        }
        uint32_t ndim = arwkv__json_count(&j, js);
        if (ndim > ARWKV_MAX_DIMS) {
            r = arwkv__fail(ARWKV_ERR_UNSUPPORTED, "%s: tensor '%s': %u dimensions, at most %d supported", path, key, ndim, ARWKV_MAX_DIMS);
            break;
        }
        if (arwkv__json_type(&j, jo) != ARWKV__JSON_ARRAY || arwkv__json_count(&j, jo) != 2) {
            r = arwkv__fail(ARWKV_ERR_FORMAT, "%s: tensor '%s': \"data_offsets\" must be [begin, end]", path, key);
            break;
        }
        if (st->n_tensors == st->cap_tensors) {
            int cap = st->cap_tensors ? st->cap_tensors * 2 : 64;
            arwkv_tensor_info *p = (arwkv_tensor_info *)arwkv__realloc(st->tensors, (size_t)cap * sizeof *p);
            if (!p) {
                r = arwkv__fail(ARWKV_ERR_OUT_OF_MEMORY, "%s: out of memory", path);
                break;
            }
            st->tensors = p;
            st->cap_tensors = cap;
        }
        arwkv_tensor_info *t = &st->tensors[st->n_tensors];
        memset(t, 0, sizeof *t);
        t->dtype = dt;
        t->ndim = (int)ndim;
        t->file = fi;
        uint64_t numel = 1;
        uint32_t d = 0;
        for (uint32_t e = arwkv__json_first(&j, js); e != ARWKV__JSON_NONE; e = arwkv__json_next(&j, e), d++) {
            double v = arwkv__json_is_number(&j, e) ? arwkv__json_num(&j, e) : -1;
            if (v < 0 || v != floor(v) || v > 9007199254740992.0) {
                r = arwkv__fail(ARWKV_ERR_FORMAT, "%s: tensor '%s': shape[%u] is not a non-negative integer", path, key, d);
                break;
            }
            t->shape[d] = (int64_t)v;
            if (!arwkv__mul_ok(numel, (uint64_t)v, &numel)) {
                r = arwkv__fail(ARWKV_ERR_FORMAT, "%s: tensor '%s': shape overflows 64 bits", path, key);
                break;
            }
        }
        if (r != ARWKV_OK) break;
        uint64_t off[2];
        for (int k = 0; k < 2; k++) {
            uint32_t e = arwkv__json_at(&j, jo, (uint32_t)k);
            double v = arwkv__json_is_number(&j, e) ? arwkv__json_num(&j, e) : -1;
            if (v < 0 || v != floor(v) || v > 9007199254740992.0) {
                r = arwkv__fail(ARWKV_ERR_FORMAT, "%s: tensor '%s': data_offsets[%d] is not a non-negative integer", path, key, k);
                break;
            }
            off[k] = (uint64_t)v;
        }
        if (r != ARWKV_OK) break;
        uint64_t nbytes;
        if (!arwkv__mul_ok(numel, arwkv_dtype_size(dt), &nbytes) || numel > (uint64_t)INT64_MAX) {
            r = arwkv__fail(ARWKV_ERR_FORMAT, "%s: tensor '%s': byte size overflows 64 bits", path, key);
            break;
        }
        if (off[1] < off[0]) {
            r = arwkv__fail(ARWKV_ERR_FORMAT, "%s: tensor '%s': data_offsets end %llu is before begin %llu", path, key,
                            (unsigned long long)off[1], (unsigned long long)off[0]);
            break;
        }
        if (off[1] > data_size) {
            r = arwkv__fail(ARWKV_ERR_FORMAT, "%s: tensor '%s': data ends at file byte %llu, past the end of the %zu-byte file (truncated?)",
                            path, key, (unsigned long long)(data_start + off[1]), f->size);
            break;
        }
        if (off[1] - off[0] != nbytes) {
            r = arwkv__fail(ARWKV_ERR_FORMAT, "%s: tensor '%s': %llu bytes in data_offsets but shape x %s needs %llu", path, key,
                            (unsigned long long)(off[1] - off[0]), arwkv_dtype_name(dt), (unsigned long long)nbytes);
            break;
        }
        t->numel = (int64_t)numel;
        t->nbytes = (size_t)nbytes;
        t->offset = data_start + off[0];
        t->data = f->map + t->offset;
        t->name = arwkv__strndup(key, klen);
        if (!t->name) {
            r = arwkv__fail(ARWKV_ERR_OUT_OF_MEMORY, "%s: out of memory", path);
            break;
        }
        spans[n_spans].begin = off[0];
        spans[n_spans].end = off[1];
        spans[n_spans].tensor = st->n_tensors;
        n_spans++;
        st->n_tensors++;
    }
    if (r == ARWKV_OK) { /* the data must be covered exactly once, in order */
        qsort(spans, (size_t)n_spans, sizeof *spans, arwkv__st_span_cmp);
        uint64_t at = 0;
        for (int s = 0; s < n_spans && r == ARWKV_OK; s++) {
            if (spans[s].begin < at)
                r = arwkv__fail(ARWKV_ERR_FORMAT, "%s: tensor '%s' (data bytes %llu..%llu) overlaps the tensor before it", path,
                                st->tensors[spans[s].tensor].name, (unsigned long long)spans[s].begin, (unsigned long long)spans[s].end);
            else if (spans[s].begin > at)
                r = arwkv__fail(ARWKV_ERR_FORMAT, "%s: hole in the data: bytes %llu..%llu belong to no tensor (next is '%s')", path,
                                (unsigned long long)at, (unsigned long long)spans[s].begin, st->tensors[spans[s].tensor].name);
            at = spans[s].end;
        }
        if (r == ARWKV_OK && at != data_size)
            r = arwkv__fail(ARWKV_ERR_FORMAT, "%s: %llu bytes after the last tensor belong to no tensor", path,
                            (unsigned long long)(data_size - at));
    }
    arwkv__free(spans);
    arwkv__json_free(&j);
    return r;
}

ARWKV_PRIVATE arwkv_result arwkv__st_map_file(arwkv__st_file *f) {
#if !defined(_WIN32)
    int fd = open(f->path, O_RDONLY);
    if (fd < 0) return arwkv__fail(ARWKV_ERR_IO, "%s: cannot open: %s", f->path, strerror(errno));
    struct stat s;
    if (fstat(fd, &s) != 0 || !S_ISREG(s.st_mode)) {
        close(fd);
        return arwkv__fail(ARWKV_ERR_IO, "%s: not a regular file", f->path);
    }
    f->size = (size_t)s.st_size;
#ifndef ARWKV_NO_MMAP
    if (f->size > 0) {
        void *p = mmap(NULL, f->size, PROT_READ, MAP_PRIVATE, fd, 0);
        if (p != MAP_FAILED) {
            close(fd);
            f->map = (const unsigned char *)p;
            f->owned = 1;
            return ARWKV_OK;
        }
    }
#endif
    close(fd);
#endif
    char *data;
    size_t len;
    ARWKV__TRY(arwkv__read_file(f->path, &data, &len));
    f->map = (const unsigned char *)data;
    f->size = len;
    f->owned = 2;
    return ARWKV_OK;
}

ARWKV_API void arwkv_st_close(arwkv_safetensors *st) {
    if (!st) return;
    for (int i = 0; i < st->n_files; i++) {
        arwkv__st_file *f = &st->files[i];
#if !defined(_WIN32) && !defined(ARWKV_NO_MMAP)
        if (f->owned == 1) munmap((void *)f->map, f->size);
#endif
        if (f->owned == 2) arwkv__free((void *)f->map);
        for (int k = 0; k < 2 * f->n_meta; k++) arwkv__free(f->meta[k]);
        arwkv__free(f->meta);
        arwkv__free(f->path);
    }
    for (int t = 0; t < st->n_tensors; t++) arwkv__free((void *)st->tensors[t].name);
    arwkv__free(st->files);
    arwkv__free(st->tensors);
    arwkv__free(st->table);
    arwkv__free(st->name);
    arwkv__free(st);
}

ARWKV_PRIVATE arwkv_result arwkv__st_new(const char *name, int n_files, arwkv_safetensors **out) {
    arwkv_safetensors *st = (arwkv_safetensors *)arwkv__calloc(1, sizeof *st);
    if (st) st->files = (arwkv__st_file *)arwkv__calloc((size_t)n_files, sizeof(arwkv__st_file));
    if (st) st->name = arwkv__strdup(name);
    if (!st || !st->files || !st->name) {
        arwkv_st_close(st);
        return arwkv__fail(ARWKV_ERR_OUT_OF_MEMORY, "%s: out of memory", name);
    }
    *out = st;
    return ARWKV_OK;
}

ARWKV_API arwkv_result arwkv_st_open_memory(const void *buf, size_t len, const char *name, arwkv_safetensors **out) {
    *out = NULL;
    arwkv_safetensors *st;
    ARWKV__TRY(arwkv__st_new(name ? name : "<memory>", 1, &st));
    st->n_files = 1;
    st->files[0].path = arwkv__strdup(st->name);
    st->files[0].map = (const unsigned char *)buf;
    st->files[0].size = len;
    arwkv_result r = st->files[0].path ? arwkv__st_parse_file(st, 0) : arwkv__fail(ARWKV_ERR_OUT_OF_MEMORY, "out of memory");
    if (r == ARWKV_OK) r = arwkv__st_build_table(st);
    if (r != ARWKV_OK) {
        arwkv_st_close(st);
        return r;
    }
    *out = st;
    return ARWKV_OK;
}

/* Open the shards named by an index file, checking the weight_map against the shards' contents. */
ARWKV_PRIVATE arwkv_result arwkv__st_open_index(const char *dir, const char *index_path, arwkv_safetensors **out) {
    char *text;
    size_t len;
    ARWKV__TRY(arwkv__read_file(index_path, &text, &len));
    arwkv__json j;
    arwkv_result r = arwkv__json_parse(&j, text, len, index_path);
    if (r != ARWKV_OK) {
        arwkv__free(text);
        return r;
    }
    arwkv_safetensors *st = NULL;
    char **shards = NULL;
    int n_shards = 0;
    uint32_t map = arwkv__json_get(&j, 0, "weight_map");
    if (arwkv__json_type(&j, map) != ARWKV__JSON_OBJECT) {
        r = arwkv__fail(ARWKV_ERR_FORMAT, "%s: no \"weight_map\" object", index_path);
        goto done;
    }
    shards = (char **)arwkv__calloc(arwkv__json_count(&j, map) + 1, sizeof(char *));
    if (!shards) {
        r = arwkv__fail(ARWKV_ERR_OUT_OF_MEMORY, "%s: out of memory", index_path);
        goto done;
    }
    for (uint32_t e = arwkv__json_first(&j, map); e != ARWKV__JSON_NONE; e = arwkv__json_next(&j, e)) {
        const char *file = arwkv__json_str(&j, e);
        if (!file) {
            r = arwkv__fail(ARWKV_ERR_FORMAT, "%s: weight_map entry '%s' is not a file name", index_path, arwkv__json_key(&j, e));
            goto done;
        }
        if (strchr(file, '/') || strcmp(file, "..") == 0 || file[0] == 0) {
            r = arwkv__fail(ARWKV_ERR_FORMAT, "%s: weight_map entry '%s' names '%s', which is not a plain file name in the directory",
                            index_path, arwkv__json_key(&j, e), file);
            goto done;
        }
        int seen = 0;
        for (int s = 0; s < n_shards; s++) seen |= strcmp(shards[s], file) == 0;
        if (!seen) shards[n_shards++] = (char *)file; /* points into j, lives until done */
    }
    if (n_shards == 0) {
        r = arwkv__fail(ARWKV_ERR_FORMAT, "%s: weight_map is empty", index_path);
        goto done;
    }
    r = arwkv__st_new(dir, n_shards, &st);
    if (r != ARWKV_OK) goto done;
    for (int s = 0; s < n_shards && r == ARWKV_OK; s++) {
        st->files[s].path = arwkv__path_join(dir, shards[s]);
        st->n_files = s + 1;
        if (!st->files[s].path) r = arwkv__fail(ARWKV_ERR_OUT_OF_MEMORY, "out of memory");
        if (r == ARWKV_OK) r = arwkv__st_map_file(&st->files[s]);
        if (r == ARWKV_OK) r = arwkv__st_parse_file(st, s);
    }
    if (r == ARWKV_OK) r = arwkv__st_build_table(st);
    for (uint32_t e = arwkv__json_first(&j, map); e != ARWKV__JSON_NONE && r == ARWKV_OK; e = arwkv__json_next(&j, e)) {
        const char *name = arwkv__json_key(&j, e), *file = arwkv__json_str(&j, e);
        int t = arwkv__st_lookup(st, name, strlen(name));
        if (t < 0) r = arwkv__fail(ARWKV_ERR_FORMAT, "%s: tensor '%s' is listed in weight_map but missing from %s", index_path, name, file);
        else {
            const char *actual = st->files[st->tensors[t].file].path;
            size_t al = strlen(actual), fl = strlen(file);
            if (al < fl || strcmp(actual + al - fl, file) != 0)
                r = arwkv__fail(ARWKV_ERR_FORMAT, "%s: tensor '%s' is listed in %s but stored in %s", index_path, name, file, actual);
        }
    }
done:
    arwkv__free(shards);
    arwkv__json_free(&j);
    arwkv__free(text);
    if (r != ARWKV_OK) {
        arwkv_st_close(st);
        return r;
    }
    *out = st;
    return ARWKV_OK;
}

ARWKV_API arwkv_result arwkv_st_open(const char *path, arwkv_safetensors **out) {
    *out = NULL;
    if (!path) return arwkv__fail(ARWKV_ERR_INVALID_ARGUMENT, "arwkv_st_open: path is NULL");
    if (arwkv__is_dir(path)) {
        char *index = arwkv__path_join(path, "model.safetensors.index.json");
        char *single = arwkv__path_join(path, "model.safetensors");
        arwkv_result r;
        if (!index || !single) r = arwkv__fail(ARWKV_ERR_OUT_OF_MEMORY, "out of memory");
        else if (arwkv__file_exists(index)) r = arwkv__st_open_index(path, index, out);
        else if (arwkv__file_exists(single)) r = arwkv_st_open(single, out);
        else r = arwkv__fail(ARWKV_ERR_NOT_FOUND, "%s: no model.safetensors.index.json or model.safetensors in this directory", path);
        arwkv__free(index);
        arwkv__free(single);
        return r;
    }
    arwkv_safetensors *st;
    ARWKV__TRY(arwkv__st_new(path, 1, &st));
    st->n_files = 1;
    st->files[0].path = arwkv__strdup(path);
    arwkv_result r = st->files[0].path ? arwkv__st_map_file(&st->files[0]) : arwkv__fail(ARWKV_ERR_OUT_OF_MEMORY, "out of memory");
    if (r == ARWKV_OK) r = arwkv__st_parse_file(st, 0);
    if (r == ARWKV_OK) r = arwkv__st_build_table(st);
    if (r != ARWKV_OK) {
        arwkv_st_close(st);
        return r;
    }
    *out = st;
    return ARWKV_OK;
}

ARWKV_API int arwkv_st_count(const arwkv_safetensors *st) { return st ? st->n_tensors : 0; }
ARWKV_API const arwkv_tensor_info *arwkv_st_tensor(const arwkv_safetensors *st, int i) {
    return (st && i >= 0 && i < st->n_tensors) ? &st->tensors[i] : NULL;
}
ARWKV_API const arwkv_tensor_info *arwkv_st_find(const arwkv_safetensors *st, const char *name) {
    int t = st ? arwkv__st_lookup(st, name, strlen(name)) : -1;
    return t >= 0 ? &st->tensors[t] : NULL;
}
ARWKV_API arwkv_result arwkv_st_get(const arwkv_safetensors *st, const char *name, const arwkv_tensor_info **out) {
    *out = arwkv_st_find(st, name);
    if (!*out) return arwkv__fail(ARWKV_ERR_NOT_FOUND, "%s: tensor '%s' not found", st ? st->name : "(null)", name);
    return ARWKV_OK;
}
ARWKV_API const char *arwkv_st_file_name(const arwkv_safetensors *st, int i) {
    return (st && i >= 0 && i < st->n_files) ? st->files[i].path : NULL;
}
ARWKV_API int arwkv_st_file_count(const arwkv_safetensors *st) { return st ? st->n_files : 0; }
ARWKV_API const char *arwkv_st_metadata(const arwkv_safetensors *st, const char *key) {
    if (!st || st->n_files == 0) return NULL;
    const arwkv__st_file *f = &st->files[0];
    for (int k = 0; k < f->n_meta; k++)
        if (strcmp(f->meta[2 * k], key) == 0) return f->meta[2 * k + 1];
    return NULL;
}

ARWKV_API arwkv_result arwkv_st_read_f32(const arwkv_safetensors *st, const char *name, float *dst, int64_t n) {
    const arwkv_tensor_info *t;
    ARWKV__TRY(arwkv_st_get(st, name, &t));
    if (t->numel != n)
        return arwkv__fail(ARWKV_ERR_SHAPE, "%s: tensor '%s' has %lld elements, expected %lld", st->files[t->file].path, name,
                           (long long)t->numel, (long long)n);
    arwkv_result r = arwkv_to_f32(dst, t->data, t->dtype, (size_t)n);
    if (r != ARWKV_OK) return arwkv__context(r, "%s: tensor '%s'", st->files[t->file].path, name);
    return ARWKV_OK;
}

/* ---- Writer ----------------------------------------------------------------------------------- */

typedef struct arwkv__st_write_ctx {
    const arwkv_st_entry *entries;
    int n;
    arwkv__buf header;
} arwkv__st_write_ctx;

ARWKV_PRIVATE uint64_t arwkv__st_entry_bytes(const arwkv_st_entry *e) {
    uint64_t n = arwkv_dtype_size(e->dtype);
    for (int d = 0; d < e->ndim; d++) n *= (uint64_t)e->shape[d];
    return n;
}

ARWKV_PRIVATE arwkv_result arwkv__st_write_body(arwkv__out *f, void *ctx_) {
    arwkv__st_write_ctx *c = (arwkv__st_write_ctx *)ctx_;
    unsigned char len8[8];
    uint64_t hlen = c->header.len;
    for (int i = 0; i < 8; i++) len8[i] = (unsigned char)(hlen >> (8 * i));
    if (!arwkv__out_write(f, len8, 8) || !arwkv__out_write(f, c->header.data, c->header.len))
        return arwkv__fail(ARWKV_ERR_IO, "write failed: %s", strerror(errno));
    for (int i = 0; i < c->n; i++) {
        size_t nb = (size_t)arwkv__st_entry_bytes(&c->entries[i]);
        if (nb && !arwkv__out_write(f, c->entries[i].data, nb))
            return arwkv__fail(ARWKV_ERR_IO, "write of tensor '%s' failed: %s", c->entries[i].name, strerror(errno));
    }
    return ARWKV_OK;
}

ARWKV_API arwkv_result arwkv_st_write(const char *path, const arwkv_st_entry *entries, int n, const char *const *meta, int n_meta) {
    arwkv__st_write_ctx c;
    memset(&c, 0, sizeof c);
    c.entries = entries;
    c.n = n;
    arwkv__buf *h = &c.header;
    arwkv__buf_str(h, "{");
    int first = 1;
    if (n_meta > 0) {
        arwkv__buf_str(h, "\"__metadata__\":{");
        for (int k = 0; k < n_meta; k++) {
            if (k) arwkv__buf_str(h, ",");
            arwkv__buf_json_string(h, meta[2 * k], strlen(meta[2 * k]));
            arwkv__buf_str(h, ":");
            arwkv__buf_json_string(h, meta[2 * k + 1], strlen(meta[2 * k + 1]));
        }
        arwkv__buf_str(h, "}");
        first = 0;
    }
    uint64_t offset = 0;
    for (int i = 0; i < n; i++) {
        const arwkv_st_entry *e = &entries[i];
        if (!e->name || arwkv_dtype_size(e->dtype) == 0 || e->ndim < 0 || e->ndim > ARWKV_MAX_DIMS) {
            arwkv__buf_free(h);
            return arwkv__fail(ARWKV_ERR_INVALID_ARGUMENT, "%s: entry %d ('%s') has no name, a bad dtype or a bad rank", path, i,
                               e->name ? e->name : "");
        }
        for (int k = 0; k < i; k++)
            if (strcmp(entries[k].name, e->name) == 0) {
                arwkv__buf_free(h);
                return arwkv__fail(ARWKV_ERR_INVALID_ARGUMENT, "%s: tensor '%s' given twice", path, e->name);
            }
        uint64_t nb = arwkv__st_entry_bytes(e);
        if (!first) arwkv__buf_str(h, ",");
        first = 0;
        arwkv__buf_json_string(h, e->name, strlen(e->name));
        arwkv__buf_printf(h, ":{\"dtype\":\"%s\",\"shape\":[", arwkv_dtype_name(e->dtype));
        for (int d = 0; d < e->ndim; d++) arwkv__buf_printf(h, "%s%lld", d ? "," : "", (long long)e->shape[d]);
        arwkv__buf_printf(h, "],\"data_offsets\":[%llu,%llu]}", (unsigned long long)offset, (unsigned long long)(offset + nb));
        offset += nb;
    }
    arwkv__buf_str(h, "}");
    while (h->len % 8) arwkv__buf_str(h, " "); /* keep the data 8-byte aligned */
    if (h->failed) {
        arwkv__buf_free(h);
        return arwkv__fail(ARWKV_ERR_OUT_OF_MEMORY, "%s: out of memory", path);
    }
    arwkv_result r = arwkv__write_atomic(path, arwkv__st_write_body, &c);
    arwkv__buf_free(h);
    return r;
}

typedef struct arwkv__text_ctx {
    const char *text;
    size_t len;
} arwkv__text_ctx;

ARWKV_PRIVATE arwkv_result arwkv__write_text_body(arwkv__out *f, void *ctx) {
    arwkv__text_ctx *c = (arwkv__text_ctx *)ctx;
    if (!arwkv__out_write(f, c->text, c->len)) return arwkv__fail(ARWKV_ERR_IO, "write failed: %s", strerror(errno));
    return ARWKV_OK;
}

/* Write a small text file atomically. */
ARWKV_PRIVATE arwkv_result arwkv__write_text(const char *path, const char *text, size_t len) {
    arwkv__text_ctx c = {text, len};
    return arwkv__write_atomic(path, arwkv__write_text_body, &c);
}

ARWKV_API arwkv_result arwkv_st_write_dir(const char *dir, const arwkv_st_entry *entries, int n, const char *const *meta,
                                          int n_meta, uint64_t max_shard_bytes) {
    ARWKV__TRY(arwkv__mkdir(dir));
    uint64_t total = 0;
    int n_shards = 1;
    uint64_t in_shard = 0;
    for (int i = 0; i < n; i++) {
        uint64_t nb = arwkv__st_entry_bytes(&entries[i]);
        if (in_shard > 0 && in_shard + nb > max_shard_bytes) {
            n_shards++;
            in_shard = 0;
        }
        in_shard += nb;
        total += nb;
    }
    char name[64];
    if (n_shards == 1) {
        char *path = arwkv__path_join(dir, "model.safetensors");
        if (!path) return arwkv__fail(ARWKV_ERR_OUT_OF_MEMORY, "out of memory");
        arwkv_result r = arwkv_st_write(path, entries, n, meta, n_meta);
        arwkv__free(path);
        /* a stale index from an earlier sharded save would shadow the new file */
        char *index = arwkv__path_join(dir, "model.safetensors.index.json");
        if (index) remove(index);
        arwkv__free(index);
        return r;
    }
    arwkv__buf idx;
    memset(&idx, 0, sizeof idx);
    arwkv__buf_printf(&idx, "{\n  \"metadata\": {\n    \"total_size\": %llu\n  },\n  \"weight_map\": {", (unsigned long long)total);
    int start = 0, shard = 0;
    arwkv_result r = ARWKV_OK;
    while (start < n && r == ARWKV_OK) {
        int end = start;
        in_shard = 0;
        while (end < n) {
            uint64_t nb = arwkv__st_entry_bytes(&entries[end]);
            if (end > start && in_shard + nb > max_shard_bytes) break;
            in_shard += nb;
            end++;
        }
        shard++;
        snprintf(name, sizeof name, "model-%05d-of-%05d.safetensors", shard, n_shards);
        char *path = arwkv__path_join(dir, name);
        r = path ? arwkv_st_write(path, entries + start, end - start, meta, n_meta) : arwkv__fail(ARWKV_ERR_OUT_OF_MEMORY, "out of memory");
        arwkv__free(path);
        for (int i = start; i < end; i++) {
            arwkv__buf_str(&idx, i ? ",\n    " : "\n    ");
            arwkv__buf_json_string(&idx, entries[i].name, strlen(entries[i].name));
            arwkv__buf_printf(&idx, ": \"%s\"", name);
        }
        start = end;
    }
    arwkv__buf_str(&idx, "\n  }\n}\n");
    if (r == ARWKV_OK) {
        char *path = arwkv__path_join(dir, "model.safetensors.index.json");
        if (idx.failed || !path) r = arwkv__fail(ARWKV_ERR_OUT_OF_MEMORY, "out of memory");
        else r = arwkv__write_text(path, idx.data, idx.len);
        arwkv__free(path);
        char *single = arwkv__path_join(dir, "model.safetensors"); /* would be ambiguous beside the index */
        if (single) remove(single);
        arwkv__free(single);
    }
    arwkv__buf_free(&idx);
    return r;
}

/* ============================================================================================
   4. config.json
   ============================================================================================ */

ARWKV_API const char *arwkv_arch_name(arwkv_arch a) {
    switch (a) {
    case ARWKV_ARCH_QWEN2: return "Qwen2ForCausalLM";
    case ARWKV_ARCH_ARWKV7: return "RwkvHybridForCausalLM";
    case ARWKV_ARCH_QRWKV6: return "RWKV6Qwen2ForCausalLM";
    default: return "unknown";
    }
}

/* Read an integer member; absent members keep *out. Wrong types are errors naming the key. */
ARWKV_PRIVATE arwkv_result arwkv__cfg_int(const arwkv__json *j, uint32_t obj, const char *key, int *out, const char *name) {
    uint32_t n = arwkv__json_get(j, obj, key);
    if (n == ARWKV__JSON_NONE || arwkv__json_type(j, n) == ARWKV__JSON_NULL) return ARWKV_OK;
    int b = arwkv__json_bool(j, n);
    if (b >= 0) {
        *out = b;
        return ARWKV_OK;
    }
    if (!arwkv__json_is_number(j, n)) return arwkv__fail(ARWKV_ERR_FORMAT, "%s: \"%s\" must be a number", name, key);
    double v = arwkv__json_num(j, n);
    if (v != floor(v) || v < INT_MIN || v > INT_MAX) return arwkv__fail(ARWKV_ERR_FORMAT, "%s: \"%s\" must be an integer, got %g", name, key, v);
    *out = (int)v;
    return ARWKV_OK;
}

ARWKV_PRIVATE arwkv_result arwkv__cfg_num(const arwkv__json *j, uint32_t obj, const char *key, double *out, const char *name) {
    uint32_t n = arwkv__json_get(j, obj, key);
    if (n == ARWKV__JSON_NONE || arwkv__json_type(j, n) == ARWKV__JSON_NULL) return ARWKV_OK;
    if (!arwkv__json_is_number(j, n)) return arwkv__fail(ARWKV_ERR_FORMAT, "%s: \"%s\" must be a number", name, key);
    *out = arwkv__json_num(j, n);
    return ARWKV_OK;
}

/* The positive-integer keys every architecture needs. */
ARWKV_PRIVATE arwkv_result arwkv__cfg_require(const arwkv__json *j, const char *key, int value, const char *name) {
    if (arwkv__json_get(j, 0, key) == ARWKV__JSON_NONE) return arwkv__fail(ARWKV_ERR_FORMAT, "%s: required key \"%s\" is missing", name, key);
    if (value <= 0) return arwkv__fail(ARWKV_ERR_FORMAT, "%s: \"%s\" must be positive, got %d", name, key, value);
    return ARWKV_OK;
}

ARWKV_API arwkv_result arwkv_config_parse(const char *text, size_t len, const char *name, arwkv_config *cfg) {
    memset(cfg, 0, sizeof *cfg);
    arwkv__json j;
    ARWKV__TRY(arwkv__json_parse(&j, text, len, name));
    arwkv_result r = ARWKV_OK;
    if (arwkv__json_type(&j, 0) != ARWKV__JSON_OBJECT) {
        r = arwkv__fail(ARWKV_ERR_FORMAT, "%s: config is not a JSON object", name);
        goto done;
    }
    {
        uint32_t archs = arwkv__json_get(&j, 0, "architectures");
        const char *arch = arwkv__json_str(&j, arwkv__json_at(&j, archs, 0));
        const char *model_type = arwkv__json_str(&j, arwkv__json_get(&j, 0, "model_type"));
        if (arch && strcmp(arch, "Qwen2ForCausalLM") == 0) cfg->arch = ARWKV_ARCH_QWEN2;
        else if (arch && strcmp(arch, "RwkvHybridForCausalLM") == 0) cfg->arch = ARWKV_ARCH_ARWKV7;
        else if (arch && strcmp(arch, "RWKV6Qwen2ForCausalLM") == 0) cfg->arch = ARWKV_ARCH_QRWKV6;
        else if (!arch && model_type && strcmp(model_type, "qwen2") == 0) cfg->arch = ARWKV_ARCH_QWEN2;
        else if (!arch && model_type && strcmp(model_type, "rwkv_hybrid") == 0) cfg->arch = ARWKV_ARCH_ARWKV7;
        else if (!arch && model_type && strcmp(model_type, "rwkv6qwen2") == 0) cfg->arch = ARWKV_ARCH_QRWKV6;
        else {
            r = arwkv__fail(ARWKV_ERR_UNSUPPORTED,
                            "%s: unsupported architecture \"%s\" (model_type \"%s\"); supported: Qwen2ForCausalLM, "
                            "RwkvHybridForCausalLM, RWKV6Qwen2ForCausalLM",
                            name, arch ? arch : "(none)", model_type ? model_type : "(none)");
            goto done;
        }
    }
    cfg->tie_word_embeddings = 0;
    cfg->rms_norm_eps = 1e-6f;
    cfg->rope_theta = 10000.0;
    cfg->bos_token_id = cfg->eos_token_id = -1;
    cfg->head_size = 64;
    cfg->head_size_divisor = 8;
    cfg->wkv_version = 7;
    cfg->max_position_embeddings = 32768;
    cfg->attention_bias = 1;
    {
        double eps = cfg->rms_norm_eps;
#define ARWKV__CFG_INT(key, field) \
    if (r == ARWKV_OK) r = arwkv__cfg_int(&j, 0, key, &cfg->field, name)
        ARWKV__CFG_INT("vocab_size", vocab_size);
        ARWKV__CFG_INT("hidden_size", hidden_size);
        ARWKV__CFG_INT("intermediate_size", intermediate_size);
        ARWKV__CFG_INT("num_hidden_layers", num_layers);
        ARWKV__CFG_INT("num_attention_heads", num_heads);
        ARWKV__CFG_INT("num_key_value_heads", num_kv_heads);
        ARWKV__CFG_INT("head_dim", head_dim);
        ARWKV__CFG_INT("max_position_embeddings", max_position_embeddings);
        ARWKV__CFG_INT("tie_word_embeddings", tie_word_embeddings);
        ARWKV__CFG_INT("bos_token_id", bos_token_id);
        if (arwkv__json_type(&j, arwkv__json_get(&j, 0, "eos_token_id")) != ARWKV__JSON_ARRAY) ARWKV__CFG_INT("eos_token_id", eos_token_id);
        ARWKV__CFG_INT("head_size", head_size);
        ARWKV__CFG_INT("head_size_divisor", head_size_divisor);
        ARWKV__CFG_INT("wkv_has_gate", wkv_has_gate);
        ARWKV__CFG_INT("wkv_has_group_norm", wkv_has_group_norm);
        ARWKV__CFG_INT("wkv_version", wkv_version);
        ARWKV__CFG_INT("attention_bias", attention_bias);
        ARWKV__CFG_INT("attention_output_bias", attention_output_bias);
        ARWKV__CFG_INT("lora_rank_tokenshift", lora_rank_tokenshift);
        ARWKV__CFG_INT("lora_rank_decay", lora_rank_decay);
#undef ARWKV__CFG_INT
        if (r == ARWKV_OK) r = arwkv__cfg_num(&j, 0, "rms_norm_eps", &eps, name);
        /* transformers 5 moved rope_theta into rope_parameters; the hub's older files have it on top */
        if (r == ARWKV_OK) r = arwkv__cfg_num(&j, 0, "rope_theta", &cfg->rope_theta, name);
        if (r == ARWKV_OK) r = arwkv__cfg_num(&j, arwkv__json_get(&j, 0, "rope_parameters"), "rope_theta", &cfg->rope_theta, name);
        cfg->rms_norm_eps = (float)eps;
        if (r != ARWKV_OK) goto done;
        /* eos_token_id may be a list in newer configs: take the first */
        uint32_t eos = arwkv__json_get(&j, 0, "eos_token_id");
        if (arwkv__json_type(&j, eos) == ARWKV__JSON_ARRAY && arwkv__json_is_number(&j, arwkv__json_at(&j, eos, 0)))
            cfg->eos_token_id = (int)arwkv__json_num(&j, arwkv__json_at(&j, eos, 0));
        const char *dt = arwkv__json_str(&j, arwkv__json_get(&j, 0, "torch_dtype"));
        if (!dt) dt = arwkv__json_str(&j, arwkv__json_get(&j, 0, "dtype"));
        if (dt) snprintf(cfg->torch_dtype, sizeof cfg->torch_dtype, "%s", dt);
    }
    if (r == ARWKV_OK) r = arwkv__cfg_require(&j, "vocab_size", cfg->vocab_size, name);
    if (r == ARWKV_OK) r = arwkv__cfg_require(&j, "hidden_size", cfg->hidden_size, name);
    if (r == ARWKV_OK) r = arwkv__cfg_require(&j, "intermediate_size", cfg->intermediate_size, name);
    if (r == ARWKV_OK) r = arwkv__cfg_require(&j, "num_hidden_layers", cfg->num_layers, name);
    if (r == ARWKV_OK && cfg->arch != ARWKV_ARCH_ARWKV7) r = arwkv__cfg_require(&j, "num_attention_heads", cfg->num_heads, name);
    if (r != ARWKV_OK) goto done;
    if (cfg->num_heads > 0) {
        if (cfg->num_kv_heads <= 0) cfg->num_kv_heads = cfg->num_heads;
        if (cfg->head_dim <= 0) cfg->head_dim = cfg->hidden_size / cfg->num_heads;
        if (cfg->num_heads % cfg->num_kv_heads != 0) {
            r = arwkv__fail(ARWKV_ERR_FORMAT, "%s: num_attention_heads %d is not a multiple of num_key_value_heads %d", name,
                            cfg->num_heads, cfg->num_kv_heads);
            goto done;
        }
        if (cfg->arch != ARWKV_ARCH_ARWKV7 && cfg->head_dim * cfg->num_heads != cfg->hidden_size) {
            r = arwkv__fail(ARWKV_ERR_UNSUPPORTED, "%s: head_dim %d x num_attention_heads %d != hidden_size %d", name,
                            cfg->head_dim, cfg->num_heads, cfg->hidden_size);
            goto done;
        }
        if (cfg->head_dim % 2 != 0) {
            r = arwkv__fail(ARWKV_ERR_UNSUPPORTED, "%s: head_dim %d is odd; rotary embeddings need an even size", name, cfg->head_dim);
            goto done;
        }
    }
    if (cfg->arch == ARWKV_ARCH_ARWKV7) {
        if (cfg->wkv_version != 7) {
            r = arwkv__fail(ARWKV_ERR_UNSUPPORTED, "%s: wkv_version %d is not supported (only 7)", name, cfg->wkv_version);
            goto done;
        }
        if (cfg->head_size <= 0 || cfg->hidden_size % cfg->head_size != 0) {
            r = arwkv__fail(ARWKV_ERR_FORMAT, "%s: hidden_size %d is not a multiple of head_size %d", name, cfg->hidden_size, cfg->head_size);
            goto done;
        }
    }
    if (cfg->arch == ARWKV_ARCH_QRWKV6) {
        /* llama.cpp's defaults when the keys are absent */
        if (cfg->lora_rank_tokenshift <= 0) cfg->lora_rank_tokenshift = cfg->hidden_size >= 4096 ? 64 : 32;
        if (cfg->lora_rank_decay <= 0) cfg->lora_rank_decay = cfg->hidden_size >= 4096 ? 128 : 64;
        cfg->head_size = cfg->head_dim;
    }
done:
    arwkv__json_free(&j);
    return r;
}

ARWKV_API arwkv_result arwkv_config_load(const char *path, arwkv_config *cfg) {
    char *file = arwkv__is_dir(path) ? arwkv__path_join(path, "config.json") : arwkv__strdup(path);
    if (!file) return arwkv__fail(ARWKV_ERR_OUT_OF_MEMORY, "out of memory");
    char *text;
    size_t len;
    arwkv_result r = arwkv__read_file(file, &text, &len);
    if (r == ARWKV_OK) {
        r = arwkv_config_parse(text, len, file, cfg);
        arwkv__free(text);
    }
    arwkv__free(file);
    return r;
}

/* ============================================================================================
   5. Tokenizer
   ============================================================================================ */
/* @@tokenizer-impl@@ */

/* ============================================================================================
   6. Ops
   ============================================================================================ */
/* ---- Matrix product ----------------------------------------------------------------------------
   Every projection of every model goes through one routine:

       C[M,N] (+)= A[M,K] . B[K,N]  (+ bias[N])

   A is fp32 activations read in place, with any strides (so A can be a transposed view, as in the
   weight gradient dW = dY^T X). B is fp32, bf16 or f16 with any strides: a weight stays in its
   stored type and is widened to fp32 when a block of it is packed, so a bf16 checkpoint is never
   converted as a whole. The block of B (KC x NC) is packed once and reused by every row of A;
   a 6x16 micro-kernel keeps 12 vectors of C in registers (AVX2+FMA when compiled for it, plain C
   otherwise). With one to four rows of A (token-by-token decoding) the product is a bandwidth-bound
   matrix-vector loop over the weight instead. Threads split the columns of C (and its rows when
   there are few column blocks); each element of C is summed in the same order whatever the number
   of threads, so results are bit-identical from 1 to N threads. */

#if defined(__AVX2__) && defined(__FMA__)
#include <immintrin.h>
#define ARWKV__AVX2 1
#endif

#define ARWKV__MR 6   /* rows of C per micro-kernel */
#define ARWKV__NR 16  /* columns of C per micro-kernel (two 8-float vectors) */
#define ARWKV__KC 256 /* depth of a packed block of B */
#define ARWKV__NC 128 /* columns of a packed block of B */

typedef struct arwkv__gemm_args {
    int M, N, K;
    const float *A;
    ptrdiff_t a_rs, a_cs; /* A(m,k) = A[m*a_rs + k*a_cs] */
    const void *B;
    arwkv_dtype b_type;
    ptrdiff_t b_rs, b_cs; /* B(k,n) = B[k*b_rs + n*b_cs] (in elements) */
    float *C;
    ptrdiff_t ldc;
    int accumulate;
    const float *bias;
    int m_chunk, n_m_chunks; /* rows of A per task */
    arwkv_pool *pool;
    int oom;
} arwkv__gemm_args;

/* Widen n elements of a weight to fp32 (strided source). */
ARWKV_PRIVATE void arwkv__widen(float *dst, const void *src, arwkv_dtype t, ptrdiff_t stride, int n) {
    if (t == ARWKV_F32) {
        const float *s = (const float *)src;
        if (stride == 1) memcpy(dst, s, (size_t)n * sizeof(float));
        else
            for (int i = 0; i < n; i++) dst[i] = s[i * stride];
    } else if (t == ARWKV_BF16) {
        const uint16_t *s = (const uint16_t *)src;
        for (int i = 0; i < n; i++) {
            uint32_t u = (uint32_t)s[i * stride] << 16;
            memcpy(&dst[i], &u, 4);
        }
    } else {
        const uint16_t *s = (const uint16_t *)src;
        for (int i = 0; i < n; i++) dst[i] = arwkv_f16_to_f32(s[i * stride]);
    }
}

/* Pack B(k0..k0+kc, n0..n0+nc) as panels of NR columns: panel p holds kc rows of NR floats,
   zero-padded past N so the micro-kernel never branches. */
ARWKV_PRIVATE void arwkv__pack_b(const arwkv__gemm_args *g, float *dst, int k0, int kc, int n0, int nc) {
    size_t esz = arwkv_dtype_size(g->b_type);
    const char *B = (const char *)g->B;
    for (int p = 0; p < nc; p += ARWKV__NR) {
        float *panel = dst + (size_t)p * kc;
        int w = nc - p < ARWKV__NR ? nc - p : ARWKV__NR;
        if (g->b_cs == 1) { /* rows of B contiguous in n: copy row pieces */
            for (int k = 0; k < kc; k++) {
                const char *src = B + ((size_t)(k0 + k) * (size_t)g->b_rs + (size_t)(n0 + p)) * esz;
                arwkv__widen(panel + (size_t)k * ARWKV__NR, src, g->b_type, 1, w);
                for (int j = w; j < ARWKV__NR; j++) panel[(size_t)k * ARWKV__NR + j] = 0;
            }
        } else { /* columns of B contiguous in k (nn.Linear weights): widen a column at a time */
            float col[ARWKV__KC];
            for (int j = 0; j < ARWKV__NR; j++) {
                if (j < w) {
                    const char *src = B + ((size_t)(n0 + p + j) * (size_t)g->b_cs + (size_t)k0 * (size_t)g->b_rs) * esz;
                    arwkv__widen(col, src, g->b_type, g->b_rs, kc);
                    for (int k = 0; k < kc; k++) panel[(size_t)k * ARWKV__NR + j] = col[k];
                } else
                    for (int k = 0; k < kc; k++) panel[(size_t)k * ARWKV__NR + j] = 0;
            }
        }
    }
}

/* c[6][16] = sum over k of a(i,k) * panel[k][0..16). a rows are given by pointers (rows past M
   point at a valid row and their results are dropped). */
ARWKV_PRIVATE void arwkv__kernel_6x16(int kc, const float *const *a, ptrdiff_t a_cs, const float *ARWKV__RESTRICT b,
                                      float *ARWKV__RESTRICT c) {
#ifdef ARWKV__AVX2
    __m256 c00 = _mm256_setzero_ps(), c01 = c00, c10 = c00, c11 = c00, c20 = c00, c21 = c00, c30 = c00, c31 = c00,
           c40 = c00, c41 = c00, c50 = c00, c51 = c00;
    const float *a0 = a[0], *a1 = a[1], *a2 = a[2], *a3 = a[3], *a4 = a[4], *a5 = a[5];
    for (int k = 0; k < kc; k++) {
        __m256 b0 = _mm256_loadu_ps(b), b1 = _mm256_loadu_ps(b + 8), x;
        ptrdiff_t o = k * a_cs;
        x = _mm256_broadcast_ss(a0 + o); c00 = _mm256_fmadd_ps(x, b0, c00); c01 = _mm256_fmadd_ps(x, b1, c01);
        x = _mm256_broadcast_ss(a1 + o); c10 = _mm256_fmadd_ps(x, b0, c10); c11 = _mm256_fmadd_ps(x, b1, c11);
        x = _mm256_broadcast_ss(a2 + o); c20 = _mm256_fmadd_ps(x, b0, c20); c21 = _mm256_fmadd_ps(x, b1, c21);
        x = _mm256_broadcast_ss(a3 + o); c30 = _mm256_fmadd_ps(x, b0, c30); c31 = _mm256_fmadd_ps(x, b1, c31);
        x = _mm256_broadcast_ss(a4 + o); c40 = _mm256_fmadd_ps(x, b0, c40); c41 = _mm256_fmadd_ps(x, b1, c41);
        x = _mm256_broadcast_ss(a5 + o); c50 = _mm256_fmadd_ps(x, b0, c50); c51 = _mm256_fmadd_ps(x, b1, c51);
        b += ARWKV__NR;
    }
    _mm256_storeu_ps(c + 0, c00); _mm256_storeu_ps(c + 8, c01);
    _mm256_storeu_ps(c + 16, c10); _mm256_storeu_ps(c + 24, c11);
    _mm256_storeu_ps(c + 32, c20); _mm256_storeu_ps(c + 40, c21);
    _mm256_storeu_ps(c + 48, c30); _mm256_storeu_ps(c + 56, c31);
    _mm256_storeu_ps(c + 64, c40); _mm256_storeu_ps(c + 72, c41);
    _mm256_storeu_ps(c + 80, c50); _mm256_storeu_ps(c + 88, c51);
#else
    float acc[ARWKV__MR][ARWKV__NR];
    memset(acc, 0, sizeof acc);
    for (int k = 0; k < kc; k++) {
        for (int i = 0; i < ARWKV__MR; i++) {
            float x = a[i][k * a_cs];
            for (int j = 0; j < ARWKV__NR; j++) acc[i][j] = fmaf(x, b[j], acc[i][j]);
        }
        b += ARWKV__NR;
    }
    memcpy(c, acc, sizeof acc);
#endif
}

ARWKV_PRIVATE void arwkv__gemm_task(void *ctx, int task, int thread) {
    arwkv__gemm_args *g = (arwkv__gemm_args *)ctx;
    int nb = task / g->n_m_chunks, mc = task % g->n_m_chunks;
    int n0 = nb * ARWKV__NC, nc = g->N - n0 < ARWKV__NC ? g->N - n0 : ARWKV__NC;
    int m_begin = mc * g->m_chunk, m_end = m_begin + g->m_chunk < g->M ? m_begin + g->m_chunk : g->M;
    float *packed = (float *)arwkv__scratch(g->pool, thread, (size_t)ARWKV__KC * ARWKV__NC * sizeof(float));
    if (!packed) {
        __atomic_store_n(&g->oom, 1, __ATOMIC_RELAXED);
        return;
    }
    float tile[ARWKV__MR * ARWKV__NR];
    for (int k0 = 0; k0 < g->K; k0 += ARWKV__KC) {
        int kc = g->K - k0 < ARWKV__KC ? g->K - k0 : ARWKV__KC;
        int first = k0 == 0;
        arwkv__pack_b(g, packed, k0, kc, n0, nc);
        for (int m = m_begin; m < m_end; m += ARWKV__MR) {
            int mr = m_end - m < ARWKV__MR ? m_end - m : ARWKV__MR;
            const float *rows[ARWKV__MR];
            for (int i = 0; i < ARWKV__MR; i++)
                rows[i] = g->A + (ptrdiff_t)(m + (i < mr ? i : 0)) * g->a_rs + (ptrdiff_t)k0 * g->a_cs;
            for (int p = 0; p < nc; p += ARWKV__NR) {
                int w = nc - p < ARWKV__NR ? nc - p : ARWKV__NR;
                arwkv__kernel_6x16(kc, rows, g->a_cs, packed + (size_t)p * kc, tile);
                for (int i = 0; i < mr; i++) {
                    float *c = g->C + (ptrdiff_t)(m + i) * g->ldc + n0 + p;
                    const float *t = tile + i * ARWKV__NR;
                    if (first && !g->accumulate) {
                        if (g->bias)
                            for (int j = 0; j < w; j++) c[j] = t[j] + g->bias[n0 + p + j];
                        else
                            for (int j = 0; j < w; j++) c[j] = t[j];
                    } else {
                        if (first && g->bias)
                            for (int j = 0; j < w; j++) c[j] += t[j] + g->bias[n0 + p + j];
                        else
                            for (int j = 0; j < w; j++) c[j] += t[j];
                    }
                }
            }
        }
    }
}

/* Dot products of up to 4 rows of A with one row of a weight stored [N,K] (decode path). */
ARWKV_PRIVATE void arwkv__gemv_rows(const arwkv__gemm_args *g, int m0, int mr, int n, float *out) {
    const char *w = (const char *)g->B + (size_t)n * (size_t)g->b_cs * arwkv_dtype_size(g->b_type);
    int K = g->K, k = 0;
    float acc[4] = {0, 0, 0, 0};
#ifdef ARWKV__AVX2
    if (g->a_cs == 1 && g->b_rs == 1 && (g->b_type == ARWKV_BF16 || g->b_type == ARWKV_F32)) {
        __m256 s[4][2];
        for (int i = 0; i < 4; i++) s[i][0] = s[i][1] = _mm256_setzero_ps();
        for (; k + 16 <= K; k += 16) {
            __m256 w0, w1;
            if (g->b_type == ARWKV_BF16) {
                __m256i raw = _mm256_loadu_si256((const __m256i *)(w + 2 * (size_t)k));
                w0 = _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(_mm256_castsi256_si128(raw)), 16));
                w1 = _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(_mm256_extracti128_si256(raw, 1)), 16));
            } else {
                w0 = _mm256_loadu_ps((const float *)w + k);
                w1 = _mm256_loadu_ps((const float *)w + k + 8);
            }
            for (int i = 0; i < mr; i++) {
                const float *a = g->A + (ptrdiff_t)(m0 + i) * g->a_rs + k;
                s[i][0] = _mm256_fmadd_ps(_mm256_loadu_ps(a), w0, s[i][0]);
                s[i][1] = _mm256_fmadd_ps(_mm256_loadu_ps(a + 8), w1, s[i][1]);
            }
        }
        for (int i = 0; i < mr; i++) {
            __m256 v = _mm256_add_ps(s[i][0], s[i][1]);
            __m128 h = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
            h = _mm_add_ps(h, _mm_movehl_ps(h, h));
            h = _mm_add_ss(h, _mm_movehdup_ps(h));
            acc[i] = _mm_cvtss_f32(h);
        }
    }
#endif
    if (k < K) {
        float wbuf[256];
        for (; k < K; k += 256) {
            int kc = K - k < 256 ? K - k : 256;
            arwkv__widen(wbuf, w + (size_t)k * (size_t)g->b_rs * arwkv_dtype_size(g->b_type), g->b_type, g->b_rs, kc);
            for (int i = 0; i < mr; i++) {
                const float *a = g->A + (ptrdiff_t)(m0 + i) * g->a_rs;
                float s = 0;
                for (int q = 0; q < kc; q++) s += a[(ptrdiff_t)(k + q) * g->a_cs] * wbuf[q];
                acc[i] += s;
            }
        }
    }
    for (int i = 0; i < mr; i++) out[i] = acc[i];
}

#define ARWKV__GEMV_ROWS 64 /* weight rows per decode task */

ARWKV_PRIVATE void arwkv__gemv_task(void *ctx, int task, int thread) {
    (void)thread;
    arwkv__gemm_args *g = (arwkv__gemm_args *)ctx;
    int n0 = task * ARWKV__GEMV_ROWS, n1 = n0 + ARWKV__GEMV_ROWS < g->N ? n0 + ARWKV__GEMV_ROWS : g->N;
    for (int n = n0; n < n1; n++) {
        float out[4];
        arwkv__gemv_rows(g, 0, g->M, n, out);
        for (int i = 0; i < g->M; i++) {
            float *c = g->C + (ptrdiff_t)i * g->ldc + n;
            float v = out[i] + (g->bias ? g->bias[n] : 0.0f);
            *c = g->accumulate ? *c + v : v;
        }
    }
}

/* The general product described above. Shapes are trusted (callers check them). */
ARWKV_PRIVATE arwkv_result arwkv__gemm(arwkv_pool *pool, int M, int N, int K, const float *A, ptrdiff_t a_rs, ptrdiff_t a_cs,
                                       const void *B, arwkv_dtype b_type, ptrdiff_t b_rs, ptrdiff_t b_cs, float *C,
                                       ptrdiff_t ldc, int accumulate, const float *bias) {
    if (M <= 0 || N <= 0) return ARWKV_OK;
    if (K <= 0) { /* empty sum */
        for (int m = 0; m < M; m++)
            for (int n = 0; n < N; n++) {
                float v = bias ? bias[n] : 0.0f;
                C[(ptrdiff_t)m * ldc + n] = accumulate ? C[(ptrdiff_t)m * ldc + n] + v : v;
            }
        return ARWKV_OK;
    }
    arwkv__gemm_args g;
    memset(&g, 0, sizeof g);
    g.M = M, g.N = N, g.K = K, g.A = A, g.a_rs = a_rs, g.a_cs = a_cs, g.B = B, g.b_type = b_type, g.b_rs = b_rs, g.b_cs = b_cs;
    g.C = C, g.ldc = ldc, g.accumulate = accumulate, g.bias = bias;
    arwkv_pool local; /* a one-thread pool when the caller has none, for the scratch memory */
    void *local_scratch = NULL;
    size_t local_size = 0;
    if (!pool) {
        memset(&local, 0, sizeof local);
        local.n_threads = 1;
        local.scratch = &local_scratch;
        local.scratch_size = &local_size;
        pool = &local;
    }
    g.pool = pool;
    int threads = arwkv_pool_size(pool);
    if (M <= 4 && b_rs == 1) { /* decode: stream the weight once */
        arwkv_pool_run(pool, (N + ARWKV__GEMV_ROWS - 1) / ARWKV__GEMV_ROWS, arwkv__gemv_task, &g);
    } else {
        int n_blocks = (N + ARWKV__NC - 1) / ARWKV__NC;
        /* enough tasks to keep every thread busy, but rows of A in chunks of at least 96 so the
           cost of packing B stays small next to the arithmetic */
        int want_chunks = (4 * threads + n_blocks - 1) / n_blocks;
        int chunk = (M + want_chunks - 1) / want_chunks;
        if (chunk < 16 * ARWKV__MR) chunk = 16 * ARWKV__MR;
        chunk = (chunk + ARWKV__MR - 1) / ARWKV__MR * ARWKV__MR;
        g.m_chunk = chunk;
        g.n_m_chunks = (M + chunk - 1) / chunk;
        arwkv_pool_run(pool, n_blocks * g.n_m_chunks, arwkv__gemm_task, &g);
    }
    arwkv__free(local_scratch);
    if (g.oom) return arwkv__fail(ARWKV_ERR_OUT_OF_MEMORY, "matrix product %dx%dx%d: out of scratch memory", M, N, K);
    return ARWKV_OK;
}

/* A weight matrix as stored: W[rows][cols] of any float dtype (nn.Linear: rows = outputs). */
typedef struct arwkv_weight {
    const void *data;
    arwkv_dtype dtype;
    int rows, cols;
} arwkv_weight;

/* y[M,rows] (+)= x[M,cols] . W^T (+ bias): an nn.Linear. */
ARWKV_PRIVATE arwkv_result arwkv__linear(arwkv_pool *pool, float *y, const float *x, int M, arwkv_weight W, const float *bias,
                                         int accumulate) {
    return arwkv__gemm(pool, M, W.rows, W.cols, x, W.cols, 1, W.data, W.dtype, 1, W.cols, y, W.rows, accumulate, bias);
}


/* ---- The CPU backend: memory ------------------------------------------------------------------- */

/* 64-byte aligned, zeroed; the original pointer is kept just before the block. */
static arwkv_result arwkv__cpu_alloc(arwkv_backend *be, size_t bytes, void **out) {
    (void)be;
    *out = NULL;
    if (bytes > SIZE_MAX - 128) return arwkv__fail(ARWKV_ERR_OUT_OF_MEMORY, "cannot allocate %zu bytes", bytes);
    char *raw = (char *)arwkv__calloc(1, bytes + 64 + sizeof(void *));
    if (!raw) return arwkv__fail(ARWKV_ERR_OUT_OF_MEMORY, "out of memory allocating %.1f MiB", bytes / 1048576.0);
    uintptr_t a = ((uintptr_t)(raw + sizeof(void *)) + 63) & ~(uintptr_t)63;
    memcpy((char *)a - sizeof(void *), &raw, sizeof(void *));
    *out = (void *)a;
    return ARWKV_OK;
}
static void arwkv__cpu_free(arwkv_backend *be, void *p) {
    (void)be;
    if (!p) return;
    void *raw;
    memcpy(&raw, (char *)p - sizeof(void *), sizeof(void *));
    arwkv__free(raw);
}
static arwkv_result arwkv__cpu_memcpy(arwkv_backend *be, void *dst, const void *src, size_t bytes) {
    (void)be;
    if (bytes) memmove(dst, src, bytes);
    return ARWKV_OK;
}
static arwkv_result arwkv__cpu_zero(arwkv_backend *be, void *p, size_t bytes) {
    (void)be;
    if (bytes) memset(p, 0, bytes);
    return ARWKV_OK;
}
static arwkv_result arwkv__cpu_sync(arwkv_backend *be) {
    (void)be;
    return ARWKV_OK;
}
static const arwkv_mem_ops arwkv__cpu_mem_ops = {arwkv__cpu_alloc, arwkv__cpu_free, arwkv__cpu_memcpy, arwkv__cpu_memcpy,
                                                 arwkv__cpu_memcpy, arwkv__cpu_zero, arwkv__cpu_sync};

/* ---- Parallel loops over ranges ----------------------------------------------------------------
   Elementwise ops cut [0, n) into chunks; fn(ctx, begin, end) handles one. */
typedef void (*arwkv__range_fn)(void *ctx, size_t begin, size_t end);
typedef struct arwkv__range_job {
    arwkv__range_fn fn;
    void *ctx;
    size_t n, chunk;
} arwkv__range_job;
static void arwkv__range_task(void *ctx, int task, int thread) {
    (void)thread;
    arwkv__range_job *j = (arwkv__range_job *)ctx;
    size_t b = (size_t)task * j->chunk, e = b + j->chunk < j->n ? b + j->chunk : j->n;
    j->fn(j->ctx, b, e);
}
/* min_chunk: the smallest piece worth a thread (elements, rows, ...) */
ARWKV_PRIVATE void arwkv__parallel_range(arwkv_pool *pool, size_t n, size_t min_chunk, arwkv__range_fn fn, void *ctx) {
    if (n == 0) return;
    size_t threads = (size_t)arwkv_pool_size(pool);
    size_t chunk = (n + 4 * threads - 1) / (4 * threads);
    if (chunk < min_chunk) chunk = min_chunk;
    arwkv__range_job j = {fn, ctx, n, chunk};
    arwkv_pool_run(pool, (int)((n + chunk - 1) / chunk), arwkv__range_task, &j);
}

/* ---- Matrix product (core op) ----------------------------------------------------------------- */
static arwkv_result arwkv__cpu_gemm(arwkv_backend *be, int M, int N, int K, const float *A, ptrdiff_t a_rs, ptrdiff_t a_cs,
                                    const void *B, arwkv_dtype b_type, ptrdiff_t b_rs, ptrdiff_t b_cs, float *C, ptrdiff_t ldc,
                                    int accumulate, const float *bias) {
    return arwkv__gemm(be->pool, M, N, K, A, a_rs, a_cs, B, b_type, b_rs, b_cs, C, ldc, accumulate, bias);
}

/* ---- Embedding --------------------------------------------------------------------------------
   forward: rows of the table, widened. backward: scatter-add into the table's gradient; threads
   split the columns, so two equal token ids never race and the sum order is fixed. */
typedef struct arwkv__embed_ctx {
    float *out;
    const int32_t *ids;
    const void *table;
    arwkv_dtype type;
    int C;
    const float *dout;
    int T;
} arwkv__embed_ctx;
static void arwkv__embed_fwd_range(void *ctx, size_t b, size_t e) {
    arwkv__embed_ctx *c = (arwkv__embed_ctx *)ctx;
    size_t esz = arwkv_dtype_size(c->type);
    for (size_t t = b; t < e; t++)
        arwkv__widen(c->out + t * (size_t)c->C, (const char *)c->table + (size_t)c->ids[t] * (size_t)c->C * esz, c->type, 1, c->C);
}
static arwkv_result arwkv__cpu_embed_forward(arwkv_backend *be, float *out, const int32_t *ids, int T, const void *table,
                                             arwkv_dtype type, int C) {
    arwkv__embed_ctx c = {out, ids, table, type, C, NULL, T};
    arwkv__parallel_range(be->pool, (size_t)T, 16, arwkv__embed_fwd_range, &c);
    return ARWKV_OK;
}
static void arwkv__embed_bwd_range(void *ctx, size_t b, size_t e) {
    arwkv__embed_ctx *c = (arwkv__embed_ctx *)ctx;
    for (int t = 0; t < c->T; t++) {
        float *row = c->out + (size_t)c->ids[t] * (size_t)c->C;
        const float *d = c->dout + (size_t)t * (size_t)c->C;
        for (size_t i = b; i < e; i++) row[i] += d[i];
    }
}
static arwkv_result arwkv__cpu_embed_backward(arwkv_backend *be, float *dtable, const int32_t *ids, int T, const float *dout, int C) {
    arwkv__embed_ctx c = {dtable, ids, NULL, ARWKV_F32, C, dout, T};
    arwkv__parallel_range(be->pool, (size_t)C, 32, arwkv__embed_bwd_range, &c);
    return ARWKV_OK;
}

/* ---- RMSNorm ----------------------------------------------------------------------------------
   y = x * r * w with r = 1/sqrt(mean(x^2) + eps), per row (as Qwen2RMSNorm, in fp32).
   Backward: dx = r*w*dy - x * r^3/C * sum_j(dy_j w_j x_j);  dw += dy * x * r. */
typedef struct arwkv__rms_ctx {
    float *out, *rstd, *dx, *dw;
    const float *x, *dout, *rstd_in;
    const void *w;
    arwkv_dtype w_type;
    int T, C, accumulate_dx;
    float eps;
} arwkv__rms_ctx;
static void arwkv__rms_fwd_range(void *ctx, size_t b, size_t e) {
    arwkv__rms_ctx *c = (arwkv__rms_ctx *)ctx;
    float wrow[512];
    for (size_t t = b; t < e; t++) {
        const float *x = c->x + t * (size_t)c->C;
        float *y = c->out + t * (size_t)c->C;
        double ss = 0;
        for (int i = 0; i < c->C; i++) ss += (double)x[i] * x[i];
        float r = (float)(1.0 / sqrt(ss / c->C + c->eps));
        if (c->rstd) c->rstd[t] = r;
        for (int i0 = 0; i0 < c->C; i0 += 512) { /* weights widened a piece at a time */
            int n = c->C - i0 < 512 ? c->C - i0 : 512;
            arwkv__widen(wrow, (const char *)c->w + (size_t)i0 * arwkv_dtype_size(c->w_type), c->w_type, 1, n);
            for (int i = 0; i < n; i++) y[i0 + i] = x[i0 + i] * r * wrow[i];
        }
    }
}
static arwkv_result arwkv__cpu_rmsnorm_forward(arwkv_backend *be, float *out, float *rstd, const float *x, const void *w,
                                               arwkv_dtype w_type, int T, int C, float eps) {
    arwkv__rms_ctx c;
    memset(&c, 0, sizeof c);
    c.out = out, c.rstd = rstd, c.x = x, c.w = w, c.w_type = w_type, c.T = T, c.C = C, c.eps = eps;
    arwkv__parallel_range(be->pool, (size_t)T, 8, arwkv__rms_fwd_range, &c);
    return ARWKV_OK;
}
static void arwkv__rms_bwd_dx_range(void *ctx, size_t b, size_t e) {
    arwkv__rms_ctx *c = (arwkv__rms_ctx *)ctx;
    size_t esz = arwkv_dtype_size(c->w_type);
    for (size_t t = b; t < e; t++) {
        const float *x = c->x + t * (size_t)c->C, *dy = c->dout + t * (size_t)c->C;
        float *dx = c->dx + t * (size_t)c->C;
        float r = c->rstd_in[t];
        double dot = 0;
        for (int i = 0; i < c->C; i++) {
            float wi;
            arwkv__widen(&wi, (const char *)c->w + (size_t)i * esz, c->w_type, 1, 1);
            dot += (double)dy[i] * wi * x[i];
        }
        float k = (float)(dot * r * r * r / c->C);
        for (int i = 0; i < c->C; i++) {
            float wi;
            arwkv__widen(&wi, (const char *)c->w + (size_t)i * esz, c->w_type, 1, 1);
            float g = r * wi * dy[i] - x[i] * k;
            dx[i] = c->accumulate_dx ? dx[i] + g : g;
        }
    }
}
static void arwkv__rms_bwd_dw_range(void *ctx, size_t b, size_t e) {
    arwkv__rms_ctx *c = (arwkv__rms_ctx *)ctx;
    for (int t = 0; t < c->T; t++) {
        const float *x = c->x + (size_t)t * c->C, *dy = c->dout + (size_t)t * c->C;
        float r = c->rstd_in[t];
        for (size_t i = b; i < e; i++) c->dw[i] += dy[i] * x[i] * r;
    }
}
static arwkv_result arwkv__cpu_rmsnorm_backward(arwkv_backend *be, float *dx, float *dw, const float *dout, const float *x,
                                                const void *w, arwkv_dtype w_type, const float *rstd, int T, int C,
                                                int accumulate_dx) {
    arwkv__rms_ctx c;
    memset(&c, 0, sizeof c);
    c.dx = dx, c.dw = dw, c.dout = dout, c.x = x, c.w = w, c.w_type = w_type, c.rstd_in = rstd, c.T = T, c.C = C;
    c.accumulate_dx = accumulate_dx;
    if (dx) arwkv__parallel_range(be->pool, (size_t)T, 8, arwkv__rms_bwd_dx_range, &c);
    if (dw) arwkv__parallel_range(be->pool, (size_t)C, 64, arwkv__rms_bwd_dw_range, &c);
    return ARWKV_OK;
}

/* ---- SwiGLU -----------------------------------------------------------------------------------
   out = silu(g) * u, silu(g) = g * sigmoid(g);  d silu/dg = s * (1 + g * (1 - s)). */
typedef struct arwkv__swiglu_ctx {
    float *out, *dgate, *dup;
    const float *gate, *up, *dout;
} arwkv__swiglu_ctx;
static void arwkv__swiglu_fwd_range(void *ctx, size_t b, size_t e) {
    arwkv__swiglu_ctx *c = (arwkv__swiglu_ctx *)ctx;
    for (size_t i = b; i < e; i++) {
        float g = c->gate[i];
        c->out[i] = g / (1.0f + expf(-g)) * c->up[i];
    }
}
static arwkv_result arwkv__cpu_swiglu_forward(arwkv_backend *be, float *out, const float *gate, const float *up, size_t n) {
    arwkv__swiglu_ctx c = {out, NULL, NULL, gate, up, NULL};
    arwkv__parallel_range(be->pool, n, 4096, arwkv__swiglu_fwd_range, &c);
    return ARWKV_OK;
}
static void arwkv__swiglu_bwd_range(void *ctx, size_t b, size_t e) {
    arwkv__swiglu_ctx *c = (arwkv__swiglu_ctx *)ctx;
    for (size_t i = b; i < e; i++) {
        float g = c->gate[i], s = 1.0f / (1.0f + expf(-g)), d = c->dout[i];
        c->dup[i] = d * g * s;
        c->dgate[i] = d * c->up[i] * s * (1.0f + g * (1.0f - s));
    }
}
static arwkv_result arwkv__cpu_swiglu_backward(arwkv_backend *be, float *dgate, float *dup, const float *dout, const float *gate,
                                               const float *up, size_t n) {
    arwkv__swiglu_ctx c = {NULL, dgate, dup, gate, up, dout};
    arwkv__parallel_range(be->pool, n, 4096, arwkv__swiglu_bwd_range, &c);
    return ARWKV_OK;
}

/* ---- y += alpha x ------------------------------------------------------------------------------ */
typedef struct arwkv__axpy_ctx {
    float *y;
    const float *x;
    float alpha;
} arwkv__axpy_ctx;
static void arwkv__axpy_range(void *ctx, size_t b, size_t e) {
    arwkv__axpy_ctx *c = (arwkv__axpy_ctx *)ctx;
    for (size_t i = b; i < e; i++) c->y[i] += c->alpha * c->x[i];
}
static arwkv_result arwkv__cpu_axpy(arwkv_backend *be, float *y, float alpha, const float *x, size_t n) {
    arwkv__axpy_ctx c = {y, x, alpha};
    arwkv__parallel_range(be->pool, n, 8192, arwkv__axpy_range, &c);
    return ARWKV_OK;
}

static const arwkv_core_ops arwkv__cpu_core_ops = {
    arwkv__cpu_gemm,          arwkv__cpu_embed_forward,  arwkv__cpu_embed_backward, arwkv__cpu_rmsnorm_forward,
    arwkv__cpu_rmsnorm_backward, arwkv__cpu_swiglu_forward, arwkv__cpu_swiglu_backward, arwkv__cpu_axpy};

/* @@qwen-ops-impl@@ */


/* @@rwkv7-ops-impl@@ */


/* ---- RWKV-6 ops (CPU) ---------------------------------------------------------------------------
   The QRWKV6 time mix between its matrix products. Elementwise ops split rows over threads; the
   reductions over rows (parameter gradients) split channels instead and sum rows in order, in
   float64, so no two threads ever add into one number. The recurrence runs one (sequence, head) per
   task with its state in the thread's scratch memory. */

typedef struct arwkv__rwkv6_ctx {
    float *o0, *o1, *o2;
    float *const *po; /* five output pointers (dmaa) */
    const float *i0, *i1, *i2, *i3, *i4;
    const float *const *pi; /* five input pointers (maa) */
    int B, T, C, rows, H, KVH, N;
} arwkv__rwkv6_ctx;

/* Token shift: xx = prev - x, xxx = x + xx maa_x. */
static void arwkv__shift_fwd_range(void *ctx, size_t b, size_t e) {
    arwkv__rwkv6_ctx *c = (arwkv__rwkv6_ctx *)ctx;
    const float *x = c->i0, *shift = c->i1, *maa = c->i2;
    size_t C = (size_t)c->C;
    for (size_t row = b; row < e; row++) {
        int t = (int)(row % (size_t)c->T);
        const float *xr = x + row * C;
        const float *prev = t > 0 ? xr - C : shift ? shift + (row / (size_t)c->T) * C : NULL;
        float *xx = c->o0 + row * C, *xxx = c->o1 + row * C;
        for (size_t i = 0; i < C; i++) {
            float d = (prev ? prev[i] : 0.0f) - xr[i];
            xx[i] = d;
            xxx[i] = xr[i] + d * maa[i];
        }
    }
}
static arwkv_result arwkv__cpu_shift_forward(arwkv_backend *be, float *xx, float *xxx, const float *x, const float *shift,
                                             const float *maa_x, int B, int T, int C) {
    arwkv__rwkv6_ctx c;
    memset(&c, 0, sizeof c);
    c.o0 = xx, c.o1 = xxx, c.i0 = x, c.i1 = shift, c.i2 = maa_x, c.B = B, c.T = T, c.C = C;
    arwkv__parallel_range(be->pool, (size_t)B * (size_t)T, 16, arwkv__shift_fwd_range, &c);
    return ARWKV_OK;
}
/* Backward. With D_t = dxx_t + dxxx_t maa_x (all that reaches xx_t), and xx_t = x_{t-1} - x_t:
   dx_t += dxxx_t - D_t + D_{t+1} (the last term only inside the sequence). */
static void arwkv__shift_bwd_dx_range(void *ctx, size_t b, size_t e) {
    arwkv__rwkv6_ctx *c = (arwkv__rwkv6_ctx *)ctx;
    const float *dxx = c->i0, *dxxx = c->i1, *maa = c->i3;
    size_t C = (size_t)c->C;
    for (size_t row = b; row < e; row++) {
        int has_next = (int)(row % (size_t)c->T) + 1 < c->T;
        const float *a = dxx + row * C, *g = dxxx + row * C;
        float *dx = c->o0 + row * C;
        for (size_t i = 0; i < C; i++) {
            float v = g[i] - (a[i] + g[i] * maa[i]);
            if (has_next) v += a[i + C] + g[i + C] * maa[i];
            dx[i] += v;
        }
    }
}
static void arwkv__shift_bwd_dmaa_range(void *ctx, size_t b, size_t e) {
    arwkv__rwkv6_ctx *c = (arwkv__rwkv6_ctx *)ctx;
    double acc[64];
    for (size_t i0 = b; i0 < e; i0 += 64) {
        size_t n = e - i0 < 64 ? e - i0 : 64;
        memset(acc, 0, sizeof acc);
        for (size_t row = 0; row < (size_t)c->rows; row++) {
            const float *g = c->i1 + row * (size_t)c->C + i0, *xx = c->i2 + row * (size_t)c->C + i0;
            for (size_t i = 0; i < n; i++) acc[i] += (double)g[i] * xx[i];
        }
        for (size_t i = 0; i < n; i++) c->o1[i0 + i] += (float)acc[i];
    }
}
static arwkv_result arwkv__cpu_shift_backward(arwkv_backend *be, float *dx, float *dmaa_x, const float *dxx, const float *dxxx,
                                              const float *xx, const float *maa_x, int B, int T, int C) {
    arwkv__rwkv6_ctx c;
    memset(&c, 0, sizeof c);
    c.o0 = dx, c.o1 = dmaa_x, c.i0 = dxx, c.i1 = dxxx, c.i2 = xx, c.i3 = maa_x, c.B = B, c.T = T, c.C = C, c.rows = B * T;
    if (dx) arwkv__parallel_range(be->pool, (size_t)B * (size_t)T, 16, arwkv__shift_bwd_dx_range, &c);
    if (dmaa_x) arwkv__parallel_range(be->pool, (size_t)C, 64, arwkv__shift_bwd_dmaa_range, &c);
    return ARWKV_OK;
}

/* Data-dependent lerp of the five branches. */
static void arwkv__ddlerp_fwd_range(void *ctx, size_t b, size_t e) {
    arwkv__rwkv6_ctx *c = (arwkv__rwkv6_ctx *)ctx;
    size_t C = (size_t)c->C, plane = (size_t)c->rows * C;
    for (size_t row = b; row < e; row++) {
        const float *x = c->i0 + row * C, *xx = c->i1 + row * C;
        for (int br = 0; br < 5; br++) {
            const float *m = c->i2 + br * plane + row * C, *maa = c->pi[br];
            float *out = c->o0 + br * plane + row * C;
            for (size_t i = 0; i < C; i++) out[i] = x[i] + xx[i] * (maa[i] + m[i]);
        }
    }
}
static arwkv_result arwkv__cpu_ddlerp_forward(arwkv_backend *be, float *xc, const float *x, const float *xx,
                                              const float *const *maa, const float *m, int rows, int C) {
    arwkv__rwkv6_ctx c;
    memset(&c, 0, sizeof c);
    c.o0 = xc, c.i0 = x, c.i1 = xx, c.i2 = m, c.pi = maa, c.rows = rows, c.C = C;
    arwkv__parallel_range(be->pool, (size_t)rows, 16, arwkv__ddlerp_fwd_range, &c);
    return ARWKV_OK;
}
static void arwkv__ddlerp_bwd_range(void *ctx, size_t b, size_t e) {
    arwkv__rwkv6_ctx *c = (arwkv__rwkv6_ctx *)ctx;
    size_t C = (size_t)c->C, plane = (size_t)c->rows * C;
    const float *dxc = c->i0, *xx = c->i1, *m = c->i2;
    for (size_t row = b; row < e; row++) {
        float *dx = c->o0 + row * C, *dxx = c->o1 + row * C;
        const float *xr = xx + row * C;
        for (size_t i = 0; i < C; i++) dx[i] = dxx[i] = 0;
        for (int br = 0; br < 5; br++) { /* fixed branch order: the sums do not depend on threads */
            const float *g = dxc + br * plane + row * C, *mr = m + br * plane + row * C, *maa = c->pi[br];
            float *dm = c->o2 + br * plane + row * C;
            for (size_t i = 0; i < C; i++) {
                dx[i] += g[i];
                dxx[i] += g[i] * (maa[i] + mr[i]);
                dm[i] = g[i] * xr[i];
            }
        }
    }
}
static void arwkv__ddlerp_bwd_dmaa_range(void *ctx, size_t b, size_t e) {
    arwkv__rwkv6_ctx *c = (arwkv__rwkv6_ctx *)ctx;
    size_t C = (size_t)c->C, plane = (size_t)c->rows * C;
    double acc[64];
    for (int br = 0; br < 5; br++) {
        if (!c->po[br]) continue;
        for (size_t i0 = b; i0 < e; i0 += 64) {
            size_t n = e - i0 < 64 ? e - i0 : 64;
            memset(acc, 0, sizeof acc);
            for (size_t row = 0; row < (size_t)c->rows; row++) {
                const float *g = c->i0 + br * plane + row * C + i0, *xx = c->i1 + row * C + i0;
                for (size_t i = 0; i < n; i++) acc[i] += (double)g[i] * xx[i];
            }
            for (size_t i = 0; i < n; i++) c->po[br][i0 + i] += (float)acc[i];
        }
    }
}
static arwkv_result arwkv__cpu_ddlerp_backward(arwkv_backend *be, float *dx, float *dxx, float *dm, float *const *dmaa,
                                               const float *dxc, const float *xx, const float *const *maa, const float *m,
                                               int rows, int C) {
    arwkv__rwkv6_ctx c;
    memset(&c, 0, sizeof c);
    c.o0 = dx, c.o1 = dxx, c.o2 = dm, c.po = dmaa, c.i0 = dxc, c.i1 = xx, c.i2 = m, c.pi = maa, c.rows = rows, c.C = C;
    arwkv__parallel_range(be->pool, (size_t)rows, 16, arwkv__ddlerp_bwd_range, &c);
    if (dmaa) arwkv__parallel_range(be->pool, (size_t)C, 64, arwkv__ddlerp_bwd_dmaa_range, &c);
    return ARWKV_OK;
}

/* tanh, elementwise. */
typedef struct arwkv__ew_ctx {
    float *o0, *o1;
    const float *i0, *i1, *i2;
} arwkv__ew_ctx;
static void arwkv__tanh_fwd_range(void *ctx, size_t b, size_t e) {
    arwkv__ew_ctx *c = (arwkv__ew_ctx *)ctx;
    for (size_t i = b; i < e; i++) c->o0[i] = tanhf(c->i0[i]);
}
static arwkv_result arwkv__cpu_tanh_forward(arwkv_backend *be, float *y, const float *x, size_t n) {
    arwkv__ew_ctx c = {y, NULL, x, NULL, NULL};
    arwkv__parallel_range(be->pool, n, 4096, arwkv__tanh_fwd_range, &c);
    return ARWKV_OK;
}
static void arwkv__tanh_bwd_range(void *ctx, size_t b, size_t e) {
    arwkv__ew_ctx *c = (arwkv__ew_ctx *)ctx;
    for (size_t i = b; i < e; i++) c->o0[i] = c->i0[i] * (1.0f - c->i1[i] * c->i1[i]);
}
static arwkv_result arwkv__cpu_tanh_backward(arwkv_backend *be, float *dx, const float *dy, const float *y, size_t n) {
    arwkv__ew_ctx c = {dx, NULL, dy, y, NULL};
    arwkv__parallel_range(be->pool, n, 4096, arwkv__tanh_bwd_range, &c);
    return ARWKV_OK;
}

/* Column sums (bias gradients): channels split over threads, rows summed in order in float64. */
static void arwkv__colsum_range(void *ctx, size_t b, size_t e) {
    arwkv__rwkv6_ctx *c = (arwkv__rwkv6_ctx *)ctx;
    double acc[64];
    for (size_t i0 = b; i0 < e; i0 += 64) {
        size_t n = e - i0 < 64 ? e - i0 : 64;
        memset(acc, 0, sizeof acc);
        for (size_t row = 0; row < (size_t)c->rows; row++) {
            const float *d = c->i0 + row * (size_t)c->C + i0;
            for (size_t i = 0; i < n; i++) acc[i] += d[i];
        }
        for (size_t i = 0; i < n; i++) c->o0[i0 + i] += (float)acc[i];
    }
}
static arwkv_result arwkv__cpu_colsum(arwkv_backend *be, float *db, const float *dy, int rows, int cols) {
    arwkv__rwkv6_ctx c;
    memset(&c, 0, sizeof c);
    c.o0 = db, c.i0 = dy, c.rows = rows, c.C = cols;
    arwkv__parallel_range(be->pool, (size_t)cols, 64, arwkv__colsum_range, &c);
    return ARWKV_OK;
}

/* Decay w = exp(-exp(z)). No clamp (as llama.cpp): w may come arbitrarily close to 0 or 1. */
static void arwkv__decay_fwd_range(void *ctx, size_t b, size_t e) {
    arwkv__rwkv6_ctx *c = (arwkv__rwkv6_ctx *)ctx;
    size_t C = (size_t)c->C;
    for (size_t row = b; row < e; row++) {
        float *z = c->o1 + row * C, *w = c->o0 + row * C;
        for (size_t i = 0; i < C; i++) {
            z[i] += c->i0[i];
            w[i] = expf(-expf(z[i]));
        }
    }
}
static arwkv_result arwkv__cpu_decay_forward(arwkv_backend *be, float *w, float *z, const float *time_decay, int rows, int C) {
    arwkv__rwkv6_ctx c;
    memset(&c, 0, sizeof c);
    c.o0 = w, c.o1 = z, c.i0 = time_decay, c.rows = rows, c.C = C;
    arwkv__parallel_range(be->pool, (size_t)rows, 16, arwkv__decay_fwd_range, &c);
    return ARWKV_OK;
}
/* dz = dw dw/dz = -dw w exp(z): exp(z) from z itself, so the derivative stays exact where w rounds to
   1; where exp(z) overflows, w is 0 and so is the derivative (not 0 * inf). */
static void arwkv__decay_bwd_range(void *ctx, size_t b, size_t e) {
    arwkv__ew_ctx *c = (arwkv__ew_ctx *)ctx;
    for (size_t i = b; i < e; i++) {
        float ez = expf(c->i1[i]);
        c->o0[i] = ez <= FLT_MAX ? -c->i0[i] * c->i2[i] * ez : 0.0f;
    }
}
static arwkv_result arwkv__cpu_decay_backward(arwkv_backend *be, float *dz, float *dtime_decay, const float *dw, const float *z,
                                              const float *w, int rows, int C) {
    arwkv__ew_ctx c = {dz, NULL, dw, z, w};
    arwkv__parallel_range(be->pool, (size_t)rows * (size_t)C, 4096, arwkv__decay_bwd_range, &c);
    return dtime_decay ? arwkv__cpu_colsum(be, dtime_decay, dz, rows, C) : ARWKV_OK;
}

/* Keys and values repeated to the heads of their group, keys scaled by (1 - w). */
static void arwkv__kv_expand_fwd_range(void *ctx, size_t b, size_t e) {
    arwkv__rwkv6_ctx *c = (arwkv__rwkv6_ctx *)ctx;
    size_t N = (size_t)c->N, HN = (size_t)c->H * N, KN = (size_t)c->KVH * N;
    int group = c->H / c->KVH;
    for (size_t row = b; row < e; row++)
        for (int h = 0; h < c->H; h++) {
            const float *k = c->i0 + row * KN + (size_t)(h / group) * N, *v = c->i1 + row * KN + (size_t)(h / group) * N;
            const float *w = c->i2 + row * HN + (size_t)h * N;
            float *kk = c->o0 + row * HN + (size_t)h * N, *vv = c->o1 + row * HN + (size_t)h * N;
            for (size_t i = 0; i < N; i++) {
                kk[i] = k[i] - k[i] * w[i]; /* as llama.cpp's graph: k - k w */
                vv[i] = v[i];
            }
        }
}
static arwkv_result arwkv__cpu_kv_expand_forward(arwkv_backend *be, float *kk, float *vv, const float *k, const float *v,
                                                 const float *w, int rows, int H, int KVH, int N) {
    arwkv__rwkv6_ctx c;
    memset(&c, 0, sizeof c);
    c.o0 = kk, c.o1 = vv, c.i0 = k, c.i1 = v, c.i2 = w, c.rows = rows, c.H = H, c.KVH = KVH, c.N = N;
    arwkv__parallel_range(be->pool, (size_t)rows, 16, arwkv__kv_expand_fwd_range, &c);
    return ARWKV_OK;
}
static void arwkv__kv_expand_bwd_range(void *ctx, size_t b, size_t e) {
    arwkv__rwkv6_ctx *c = (arwkv__rwkv6_ctx *)ctx;
    size_t N = (size_t)c->N, HN = (size_t)c->H * N, KN = (size_t)c->KVH * N;
    int group = c->H / c->KVH;
    for (size_t row = b; row < e; row++)
        for (int g = 0; g < c->KVH; g++) {
            float *dk = c->o0 + row * KN + (size_t)g * N, *dv = c->o1 + row * KN + (size_t)g * N;
            const float *k = c->i2 + row * KN + (size_t)g * N;
            for (size_t i = 0; i < N; i++) dk[i] = dv[i] = 0;
            for (int h = g * group; h < (g + 1) * group; h++) { /* heads of the group in order */
                const float *dkk = c->i0 + row * HN + (size_t)h * N, *dvv = c->i1 + row * HN + (size_t)h * N;
                const float *w = c->i3 + row * HN + (size_t)h * N;
                float *dw = c->o2 + row * HN + (size_t)h * N;
                for (size_t i = 0; i < N; i++) {
                    dk[i] += dkk[i] * (1.0f - w[i]);
                    dv[i] += dvv[i];
                    dw[i] -= dkk[i] * k[i];
                }
            }
        }
}
static arwkv_result arwkv__cpu_kv_expand_backward(arwkv_backend *be, float *dk, float *dv, float *dw, const float *dkk,
                                                  const float *dvv, const float *k, const float *w, int rows, int H, int KVH,
                                                  int N) {
    arwkv__rwkv6_ctx c;
    memset(&c, 0, sizeof c);
    c.o0 = dk, c.o1 = dv, c.o2 = dw, c.i0 = dkk, c.i1 = dvv, c.i2 = k, c.i3 = w, c.rows = rows, c.H = H, c.KVH = KVH, c.N = N;
    arwkv__parallel_range(be->pool, (size_t)rows, 16, arwkv__kv_expand_bwd_range, &c);
    return ARWKV_OK;
}

/* ---- WKV6: the gated linear-attention recurrence -------------------------------------------------
   Forward, per (sequence, head): the N x N state lives in the thread's scratch; each token decays
   row i of the state by w[i], adds k[i] v, and reads y = scale r^T S out of the updated state.
   Every ARWKV_WKV6_CHUNK tokens the state is copied to ckpt first.

   Backward. With G_t = d loss / d S_t (everything downstream of S_t, future tokens included):
       G_t = scale r_t dy_t^T + diag(w_{t+1}) G_{t+1}
       dr_t = scale S_t dy_t    dk_t = G_t v_t    dv_t = G_t^T k_t    dw_t[i] = sum_j G_t[i][j] S_{t-1}[i][j]
   G runs backwards through the sequence; the states S_{t-1}, S_t it needs are recomputed chunk by
   chunk from the checkpoints (ARWKV_WKV6_CHUNK + 1 states in scratch), so the memory kept between
   forward and backward is 1/ARWKV_WKV6_CHUNK of all the states, and no state is ever divided by a
   decay (stepping back by S_{t-1} = (S_t - k v^T) / w would blow up where w is tiny). */
typedef struct arwkv__wkv6_ctx {
    float *y, *s_out, *ckpt, *dr, *dk, *dv, *dw;
    const float *r, *k, *v, *w, *s0, *dy;
    int B, T, H, N;
    float scale;
    arwkv_pool *pool;
    int oom;
} arwkv__wkv6_ctx;

static int arwkv__wkv6_chunks(int T) { return (T + ARWKV_WKV6_CHUNK - 1) / ARWKV_WKV6_CHUNK; }

/* The inner loops run over value channels j in blocks of 8 with a fixed trip count, which compilers
   vectorize at -O2 without reordering any sum; a scalar tail takes N % 8. */
#define ARWKV__WKV_LANES 8

/* S = diag(w) S + k v^T, and y = scale r^T S (y may be NULL). */
static void arwkv__wkv6_step(float *ARWKV__RESTRICT S, const float *ARWKV__RESTRICT r, const float *ARWKV__RESTRICT k,
                             const float *ARWKV__RESTRICT v, const float *ARWKV__RESTRICT w, float *ARWKV__RESTRICT y,
                             int N, float scale) {
    int nb = N - N % ARWKV__WKV_LANES;
    if (!y) {
        for (int i = 0; i < N; i++) {
            float *ARWKV__RESTRICT Si = S + (size_t)i * N;
            float wi = w[i], ki = k[i];
            for (int j0 = 0; j0 < nb; j0 += ARWKV__WKV_LANES)
                for (int j = j0; j < j0 + ARWKV__WKV_LANES; j++) Si[j] = Si[j] * wi + ki * v[j];
            for (int j = nb; j < N; j++) Si[j] = Si[j] * wi + ki * v[j];
        }
        return;
    }
    for (int j = 0; j < N; j++) y[j] = 0;
    for (int i = 0; i < N; i++) {
        float *ARWKV__RESTRICT Si = S + (size_t)i * N;
        float wi = w[i], ki = k[i], ri = r[i] * scale;
        for (int j0 = 0; j0 < nb; j0 += ARWKV__WKV_LANES)
            for (int j = j0; j < j0 + ARWKV__WKV_LANES; j++) {
                float s = Si[j] * wi + ki * v[j];
                Si[j] = s;
                y[j] += ri * s;
            }
        for (int j = nb; j < N; j++) {
            float s = Si[j] * wi + ki * v[j];
            Si[j] = s;
            y[j] += ri * s;
        }
    }
}

static void arwkv__wkv6_fwd_task(void *ctx, int task, int thread) {
    arwkv__wkv6_ctx *c = (arwkv__wkv6_ctx *)ctx;
    int b = task / c->H, h = task % c->H, N = c->N;
    size_t NN = (size_t)N * N, HN = (size_t)c->H * N, nch = (size_t)arwkv__wkv6_chunks(c->T);
    float *S = (float *)arwkv__scratch(c->pool, thread, NN * sizeof(float));
    if (!S) {
        __atomic_store_n(&c->oom, 1, __ATOMIC_RELAXED);
        return;
    }
    size_t sidx = ((size_t)b * c->H + h) * NN;
    if (c->s0) memcpy(S, c->s0 + sidx, NN * sizeof(float));
    else memset(S, 0, NN * sizeof(float));
    for (int t = 0; t < c->T; t++) {
        if (c->ckpt && t % ARWKV_WKV6_CHUNK == 0)
            memcpy(c->ckpt + (((size_t)b * c->H + h) * nch + (size_t)(t / ARWKV_WKV6_CHUNK)) * NN, S, NN * sizeof(float));
        size_t off = ((size_t)b * c->T + t) * HN + (size_t)h * N;
        arwkv__wkv6_step(S, c->r + off, c->k + off, c->v + off, c->w + off, c->y + off, N, c->scale);
    }
    if (c->s_out) memcpy(c->s_out + sidx, S, NN * sizeof(float));
}

static arwkv_result arwkv__cpu_wkv6_forward(arwkv_backend *be, float *y, float *s_out, float *ckpt, const float *r, const float *k,
                                            const float *v, const float *w, const float *s0, int B, int T, int H, int N,
                                            float scale) {
    arwkv__wkv6_ctx c;
    memset(&c, 0, sizeof c);
    c.y = y, c.s_out = s_out, c.ckpt = ckpt, c.r = r, c.k = k, c.v = v, c.w = w, c.s0 = s0;
    c.B = B, c.T = T, c.H = H, c.N = N, c.scale = scale, c.pool = be->pool;
    arwkv_pool_run(be->pool, B * H, arwkv__wkv6_fwd_task, &c);
    if (c.oom) return arwkv__fail(ARWKV_ERR_OUT_OF_MEMORY, "wkv6 forward: out of scratch memory (head size %d)", N);
    return ARWKV_OK;
}

static void arwkv__wkv6_bwd_task(void *ctx, int task, int thread) {
    arwkv__wkv6_ctx *c = (arwkv__wkv6_ctx *)ctx;
    int b = task / c->H, h = task % c->H, N = c->N;
    size_t NN = (size_t)N * N, HN = (size_t)c->H * N, nch = (size_t)arwkv__wkv6_chunks(c->T);
    /* scratch: G, then the states S_{t0-1} .. S_{t1-1} of one chunk */
    float *G = (float *)arwkv__scratch(c->pool, thread, (ARWKV_WKV6_CHUNK + 2) * NN * sizeof(float));
    if (!G) {
        __atomic_store_n(&c->oom, 1, __ATOMIC_RELAXED);
        return;
    }
    float *states = G + NN;
    memset(G, 0, NN * sizeof(float));
    for (int ch = (int)nch - 1; ch >= 0; ch--) {
        int t0 = ch * ARWKV_WKV6_CHUNK, t1 = t0 + ARWKV_WKV6_CHUNK < c->T ? t0 + ARWKV_WKV6_CHUNK : c->T;
        memcpy(states, c->ckpt + (((size_t)b * c->H + h) * nch + (size_t)ch) * NN, NN * sizeof(float));
        for (int t = t0; t < t1; t++) {
            size_t off = ((size_t)b * c->T + t) * HN + (size_t)h * N;
            float *next = states + (size_t)(t - t0 + 1) * NN;
            memcpy(next, next - NN, NN * sizeof(float));
            arwkv__wkv6_step(next, NULL, c->k + off, c->v + off, c->w + off, NULL, N, c->scale);
        }
        for (int t = t1 - 1; t >= t0; t--) {
            size_t off = ((size_t)b * c->T + t) * HN + (size_t)h * N;
            const float *ARWKV__RESTRICT r = c->r + off, *ARWKV__RESTRICT k = c->k + off, *ARWKV__RESTRICT v = c->v + off;
            const float *ARWKV__RESTRICT w = c->w + off, *ARWKV__RESTRICT dy = c->dy + off;
            const float *St = states + (size_t)(t - t0 + 1) * NN, *Sp = St - NN;
            float *ARWKV__RESTRICT dv = c->dv + off;
            for (int j = 0; j < N; j++) dv[j] = 0;
            int nb = N - N % ARWKV__WKV_LANES;
            for (int i = 0; i < N; i++) {
                float *ARWKV__RESTRICT Gi = G + (size_t)i * N;
                const float *ARWKV__RESTRICT Sti = St + (size_t)i * N, *ARWKV__RESTRICT Spi = Sp + (size_t)i * N;
                float ri = r[i] * c->scale, ki = k[i], wi = w[i];
                /* the three dot products over j in 8 partial sums, added up in a fixed order */
                float ar[ARWKV__WKV_LANES] = {0}, ak[ARWKV__WKV_LANES] = {0}, aw[ARWKV__WKV_LANES] = {0};
                int j0 = 0;
#ifdef ARWKV__AVX2
                __m256 vr = _mm256_setzero_ps(), vk = vr, vw = vr, vri = _mm256_set1_ps(ri), vki = _mm256_set1_ps(ki);
                __m256 vwi = _mm256_set1_ps(wi);
                for (; j0 < nb; j0 += ARWKV__WKV_LANES) {
                    __m256 d = _mm256_loadu_ps(dy + j0), g = _mm256_fmadd_ps(vri, d, _mm256_loadu_ps(Gi + j0));
                    vr = _mm256_fmadd_ps(d, _mm256_loadu_ps(Sti + j0), vr);
                    vk = _mm256_fmadd_ps(g, _mm256_loadu_ps(v + j0), vk);
                    vw = _mm256_fmadd_ps(g, _mm256_loadu_ps(Spi + j0), vw);
                    _mm256_storeu_ps(dv + j0, _mm256_fmadd_ps(vki, g, _mm256_loadu_ps(dv + j0)));
                    _mm256_storeu_ps(Gi + j0, _mm256_mul_ps(g, vwi));
                }
                _mm256_storeu_ps(ar, vr);
                _mm256_storeu_ps(ak, vk);
                _mm256_storeu_ps(aw, vw);
#endif
                for (; j0 < nb; j0 += ARWKV__WKV_LANES)
                    for (int l = 0; l < ARWKV__WKV_LANES; l++) {
                        int j = j0 + l;
                        float g = Gi[j] + ri * dy[j];
                        ar[l] += dy[j] * Sti[j];
                        ak[l] += g * v[j];
                        aw[l] += g * Spi[j];
                        dv[j] += ki * g;
                        Gi[j] = g * wi; /* carried to token t-1 as diag(w_t) G_t */
                    }
                for (int j = nb; j < N; j++) {
                    float g = Gi[j] + ri * dy[j];
                    ar[0] += dy[j] * Sti[j];
                    ak[0] += g * v[j];
                    aw[0] += g * Spi[j];
                    dv[j] += ki * g;
                    Gi[j] = g * wi;
                }
                float dri = 0, dki = 0, dwi = 0;
                for (int l = 0; l < ARWKV__WKV_LANES; l++) dri += ar[l], dki += ak[l], dwi += aw[l];
                c->dr[off + (size_t)i] = dri * c->scale;
                c->dk[off + (size_t)i] = dki;
                c->dw[off + (size_t)i] = dwi;
            }
        }
    }
}

static arwkv_result arwkv__cpu_wkv6_backward(arwkv_backend *be, float *dr, float *dk, float *dv, float *dw, const float *dy,
                                             const float *r, const float *k, const float *v, const float *w, const float *ckpt,
                                             int B, int T, int H, int N, float scale) {
    arwkv__wkv6_ctx c;
    memset(&c, 0, sizeof c);
    c.dr = dr, c.dk = dk, c.dv = dv, c.dw = dw, c.dy = dy, c.r = r, c.k = k, c.v = v, c.w = w, c.ckpt = (float *)ckpt;
    c.B = B, c.T = T, c.H = H, c.N = N, c.scale = scale, c.pool = be->pool;
    arwkv_pool_run(be->pool, B * H, arwkv__wkv6_bwd_task, &c);
    if (c.oom) return arwkv__fail(ARWKV_ERR_OUT_OF_MEMORY, "wkv6 backward: out of scratch memory (head size %d)", N);
    return ARWKV_OK;
}

/* Output gate y * sigmoid(g). */
static void arwkv__gate_fwd_range(void *ctx, size_t b, size_t e) {
    arwkv__ew_ctx *c = (arwkv__ew_ctx *)ctx;
    for (size_t i = b; i < e; i++) c->o0[i] = c->i0[i] / (1.0f + expf(-c->i1[i]));
}
static arwkv_result arwkv__cpu_gate_forward(arwkv_backend *be, float *out, const float *y, const float *g, size_t n) {
    arwkv__ew_ctx c = {out, NULL, y, g, NULL};
    arwkv__parallel_range(be->pool, n, 4096, arwkv__gate_fwd_range, &c);
    return ARWKV_OK;
}
static void arwkv__gate_bwd_range(void *ctx, size_t b, size_t e) {
    arwkv__ew_ctx *c = (arwkv__ew_ctx *)ctx;
    for (size_t i = b; i < e; i++) {
        float s = 1.0f / (1.0f + expf(-c->i2[i])), d = c->i0[i];
        c->o1[i] = d * c->i1[i] * s * (1.0f - s);
        c->o0[i] = d * s;
    }
}
static arwkv_result arwkv__cpu_gate_backward(arwkv_backend *be, float *dy, float *dg, const float *dout, const float *y,
                                             const float *g, size_t n) {
    arwkv__ew_ctx c = {dy, dg, dout, y, g};
    arwkv__parallel_range(be->pool, n, 4096, arwkv__gate_bwd_range, &c);
    return ARWKV_OK;
}

#define ARWKV__HAVE_CPU_RWKV6_OPS
static const arwkv_rwkv6_ops arwkv__cpu_rwkv6_ops = {
    arwkv__cpu_shift_forward,     arwkv__cpu_shift_backward, arwkv__cpu_ddlerp_forward, arwkv__cpu_ddlerp_backward,
    arwkv__cpu_tanh_forward,      arwkv__cpu_tanh_backward,  arwkv__cpu_decay_forward,  arwkv__cpu_decay_backward,
    arwkv__cpu_kv_expand_forward, arwkv__cpu_kv_expand_backward, arwkv__cpu_wkv6_forward, arwkv__cpu_wkv6_backward,
    arwkv__cpu_gate_forward,      arwkv__cpu_gate_backward,  arwkv__cpu_colsum};

/* @@rwkv6-ops-impl@@ */


/* ---- Losses (CPU) -------------------------------------------------------------------------------
   Stage 1 compares a student time mix's output o with the teacher attention output a, row by row.
     L2:     l = ||d||/sqrt(C), d = o - a      dl/do = d / (||d|| sqrt(C))   (0 when d = 0)
     MSE:    l = |d|^2 / C                     dl/do = 2 d / C
     cosine: l = 1 - o.a/(|o||a|)              dl/do = -(a/(|o||a|) - (o.a) o/(|o|^3 |a|)) */
typedef struct arwkv__align_ctx {
    arwkv_align_kind kind;
    const float *o, *a;
    int C;
    float scale, *loss, *dout;
} arwkv__align_ctx;

static void arwkv__align_range(void *ctx, size_t b, size_t e) {
    arwkv__align_ctx *c = (arwkv__align_ctx *)ctx;
    for (size_t r = b; r < e; r++) {
        const float *o = c->o + r * (size_t)c->C, *a = c->a + r * (size_t)c->C;
        float *g = c->dout ? c->dout + r * (size_t)c->C : NULL;
        double l = 0;
        if (c->kind == ARWKV_ALIGN_COSINE) {
            double oa = 0, oo = 0, aa = 0;
            for (int i = 0; i < c->C; i++) oa += (double)o[i] * a[i], oo += (double)o[i] * o[i], aa += (double)a[i] * a[i];
            double no = sqrt(oo) + 1e-12, na = sqrt(aa) + 1e-12;
            l = 1 - oa / (no * na);
            if (g)
                for (int i = 0; i < c->C; i++) g[i] = (float)(c->scale * -(a[i] / (no * na) - oa * o[i] / (no * no * no * na)));
        } else {
            double ss = 0;
            for (int i = 0; i < c->C; i++) ss += ((double)o[i] - a[i]) * ((double)o[i] - a[i]);
            if (c->kind == ARWKV_ALIGN_L2) {
                double n = sqrt(ss), k = n > 0 ? c->scale / (n * sqrt((double)c->C)) : 0;
                l = n / sqrt((double)c->C);
                if (g)
                    for (int i = 0; i < c->C; i++) g[i] = (float)(k * ((double)o[i] - a[i]));
            } else {
                l = ss / c->C;
                if (g)
                    for (int i = 0; i < c->C; i++) g[i] = (float)(c->scale * 2.0 * ((double)o[i] - a[i]) / c->C);
            }
        }
        c->loss[r] = (float)l;
    }
}

static arwkv_result arwkv__cpu_align(arwkv_backend *be, arwkv_align_kind kind, const float *o, const float *a, int rows, int C,
                                     float grad_scale, float *loss, float *dout) {
    arwkv__align_ctx c = {kind, o, a, C, grad_scale, loss, dout};
    arwkv__parallel_range(be->pool, (size_t)rows, 4, arwkv__align_range, &c);
    return ARWKV_OK;
}

/* exp over an array: dst[i] = exp((src[i] - shift) * scale), returning the sum in float64. The
   softmaxes of stage 2 take 2 x 151936 of these per token, so it is vectorized: exp(x) = 2^n e^r with
   n = round(x / ln 2), r = x - n ln 2 (in two parts, Cody-Waite) and a degree-6 polynomial for e^r
   on [-ln2/2, ln2/2]; relative error below 2e-7. Inputs are at most 0 here (shifted by the max). */
ARWKV_PRIVATE float arwkv__expf_poly(float x) {
    if (x < -87.0f) return 0.0f;
    float n = floorf(x * 1.44269504f + 0.5f);
    float r = x - n * 0.693145752f - n * 1.42860677e-6f;
    float p = 1.0f + r * (1.0f + r * (0.5f + r * (0.166666672f + r * (0.0416666418f + r * (0.00833335239f + r * 0.00138889086f)))));
    int32_t e = ((int32_t)n + 127) << 23;
    float two_n;
    memcpy(&two_n, &e, 4);
    return p * two_n;
}

ARWKV_PRIVATE double arwkv__exp_array(float *dst, const float *src, float shift, float scale, int n) {
    double sum = 0;
    int i = 0;
#ifdef ARWKV__AVX2
    __m256 vs = _mm256_set1_ps(shift), vk = _mm256_set1_ps(scale), acc = _mm256_setzero_ps();
    const __m256 log2e = _mm256_set1_ps(1.44269504f), half = _mm256_set1_ps(0.5f), lo = _mm256_set1_ps(-87.0f);
    const __m256 c1 = _mm256_set1_ps(0.693145752f), c2 = _mm256_set1_ps(1.42860677e-6f);
    for (; i + 8 <= n; i += 8) {
        __m256 x = _mm256_mul_ps(_mm256_sub_ps(_mm256_loadu_ps(src + i), vs), vk);
        __m256 keep = _mm256_cmp_ps(x, lo, _CMP_GE_OQ);
        x = _mm256_max_ps(x, lo);
        __m256 nf = _mm256_floor_ps(_mm256_fmadd_ps(x, log2e, half));
        __m256 r = _mm256_fnmadd_ps(nf, c2, _mm256_fnmadd_ps(nf, c1, x));
        __m256 p = _mm256_set1_ps(0.00138889086f);
        p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(0.00833335239f));
        p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(0.0416666418f));
        p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(0.166666672f));
        p = _mm256_fmadd_ps(p, r, half);
        p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f));
        p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f));
        __m256i e = _mm256_slli_epi32(_mm256_add_epi32(_mm256_cvtps_epi32(nf), _mm256_set1_epi32(127)), 23);
        __m256 y = _mm256_and_ps(_mm256_mul_ps(p, _mm256_castsi256_ps(e)), keep);
        _mm256_storeu_ps(dst + i, y);
        acc = _mm256_add_ps(acc, y);
        if ((i & 1023) == 1016) { /* fold into float64 now and then: sums of 151936 terms stay exact enough */
            float part[8];
            _mm256_storeu_ps(part, acc);
            for (int k = 0; k < 8; k++) sum += part[k];
            acc = _mm256_setzero_ps();
        }
    }
    float part[8];
    _mm256_storeu_ps(part, acc);
    for (int k = 0; k < 8; k++) sum += part[k];
#endif
    for (; i < n; i++) {
        dst[i] = arwkv__expf_poly((src[i] - shift) * scale);
        sum += dst[i];
    }
    return sum;
}

ARWKV_PRIVATE float arwkv__max_array(const float *x, int n) {
    float m = -INFINITY;
    for (int i = 0; i < n; i++) m = x[i] > m ? x[i] : m;
    return m;
}

/* Stages 2 and 3 over the full vocabulary. With p = softmax(t/tau), q = softmax(s/tau):
     KL(p||q) = sum p (log p - log q),   d[tau^2 KL]/ds = tau (q - p)
     CE = logsumexp(s) - s[label],       dCE/ds = softmax(s) - onehot(label)
   Two exponentials per vocabulary entry (the unnormalized p and q, kept in per-thread scratch); the
   logs come from the shifted logits themselves. Each row is one task. */
typedef struct arwkv__logits_ctx {
    float *s;
    const float *t;
    const int32_t *labels;
    int V;
    float tau, kl_w, ce_w, scale, *kl, *ce;
    arwkv_pool *pool;
    int oom;
} arwkv__logits_ctx;

static void arwkv__logits_task(void *ctx, int r, int thread) {
    arwkv__logits_ctx *c = (arwkv__logits_ctx *)ctx;
    int V = c->V, label = c->labels ? c->labels[r] : -1, use_ce = label >= 0 && c->ce_w != 0;
    float *s = c->s + (size_t)r * V, inv_tau = 1.0f / c->tau;
    const float *t = c->t ? c->t + (size_t)r * V : NULL;
    /* scratch: unnormalized q, p, and (only for CE at a temperature other than 1) softmax(s) */
    float *eq = (float *)arwkv__scratch(c->pool, thread, 3 * (size_t)V * sizeof(float)), *ep = eq + V, *e1 = eq + 2 * (size_t)V;
    if (!eq) {
        __atomic_store_n(&c->oom, 1, __ATOMIC_RELAXED);
        return;
    }
    float ms = arwkv__max_array(s, V), mt = t ? arwkv__max_array(t, V) : 0;
    double zq = arwkv__exp_array(eq, s, ms, inv_tau, V), zp = 1, kl = 0, ce = 0, z1 = zq;
    if (t) { /* KL = sum p (log p - log q), log p = (t-mt)/tau - log zp, log q = (s-ms)/tau - log zq */
        zp = arwkv__exp_array(ep, t, mt, inv_tau, V);
        double lzp = log(zp), lzq = log(zq);
        for (int i = 0; i < V; i++)
            if (ep[i] > 0) kl += (double)ep[i] * (((double)(t[i] - mt) - (double)(s[i] - ms)) * inv_tau - lzp + lzq);
        kl = kl / zp * c->tau * c->tau;
    }
    if (use_ce) {
        if (c->tau != 1.0f) z1 = arwkv__exp_array(e1, s, ms, 1.0f, V);
        else e1 = eq;
        ce = log(z1) - (double)(s[label] - ms);
    }
    double kq = t ? c->kl_w * c->tau / zq : 0, kp = t ? c->kl_w * c->tau / zp : 0, k1 = use_ce ? c->ce_w / z1 : 0;
    for (int i = 0; i < V; i++) s[i] = (float)(c->scale * (kq * eq[i] - kp * (t ? ep[i] : 0.0f) + k1 * e1[i]));
    if (use_ce) s[label] -= (float)(c->scale * c->ce_w);
    if (c->kl) c->kl[r] = (float)kl;
    if (c->ce) c->ce[r] = (float)ce;
}

static arwkv_result arwkv__cpu_logits_loss(arwkv_backend *be, float *s, const float *t, const int32_t *labels, int rows, int V,
                                           float tau, float kl_weight, float ce_weight, float grad_scale, float *kl, float *ce) {
    if (!(tau > 0)) return arwkv__fail(ARWKV_ERR_INVALID_ARGUMENT, "temperature must be positive, got %g", (double)tau);
    arwkv__logits_ctx c = {s, t, labels, V, tau, t ? kl_weight : 0, labels ? ce_weight : 0, grad_scale, kl, ce, be->pool, 0};
    arwkv_pool_run(be->pool, rows, arwkv__logits_task, &c);
    if (c.oom) return arwkv__fail(ARWKV_ERR_OUT_OF_MEMORY, "logits loss: out of scratch memory");
    return ARWKV_OK;
}

#define ARWKV__HAVE_CPU_LOSS_OPS
static const arwkv_loss_ops arwkv__cpu_loss_ops = {arwkv__cpu_align, arwkv__cpu_logits_loss};

/* @@loss-ops-impl@@ */


/* ---- Optimizer (CPU) ----------------------------------------------------------------------------
   The sum of squares is split into fixed chunks whose partial sums are added in chunk order, so
   the gradient norm (and with it clipping) is the same for any number of threads. */
#define ARWKV__SUMSQ_CHUNK 65536
typedef struct arwkv__sumsq_ctx {
    const float *g;
    size_t n;
    double *partial;
} arwkv__sumsq_ctx;
static void arwkv__sumsq_task(void *ctx, int task, int thread) {
    (void)thread;
    arwkv__sumsq_ctx *c = (arwkv__sumsq_ctx *)ctx;
    size_t b = (size_t)task * ARWKV__SUMSQ_CHUNK, e = b + ARWKV__SUMSQ_CHUNK < c->n ? b + ARWKV__SUMSQ_CHUNK : c->n;
    double s = 0;
    for (size_t i = b; i < e; i++) s += (double)c->g[i] * c->g[i];
    c->partial[task] = s;
}
static arwkv_result arwkv__cpu_sumsq(arwkv_backend *be, const float *g, size_t n, float *out) {
    int tasks = (int)((n + ARWKV__SUMSQ_CHUNK - 1) / ARWKV__SUMSQ_CHUNK);
    double *partial = (double *)arwkv__calloc((size_t)tasks + 1, sizeof(double));
    if (!partial) return arwkv__fail(ARWKV_ERR_OUT_OF_MEMORY, "out of memory");
    arwkv__sumsq_ctx c = {g, n, partial};
    arwkv_pool_run(be->pool, tasks, arwkv__sumsq_task, &c);
    double s = 0;
    for (int i = 0; i < tasks; i++) s += partial[i];
    arwkv__free(partial);
    out[0] = (float)s;
    return ARWKV_OK;
}

typedef struct arwkv__adamw_ctx {
    float *p, *m, *v, *x;
    const float *g;
    float lr, b1, b2, eps, wd, s, bc1, bc2;
} arwkv__adamw_ctx;
static void arwkv__scale_range(void *ctx, size_t b, size_t e) {
    arwkv__adamw_ctx *c = (arwkv__adamw_ctx *)ctx;
    for (size_t i = b; i < e; i++) c->x[i] *= c->s;
}
static arwkv_result arwkv__cpu_scale(arwkv_backend *be, float *x, float s, size_t n) {
    arwkv__adamw_ctx c;
    memset(&c, 0, sizeof c);
    c.x = x, c.s = s;
    arwkv__parallel_range(be->pool, n, 16384, arwkv__scale_range, &c);
    return ARWKV_OK;
}
static void arwkv__adamw_range(void *ctx, size_t b, size_t e) {
    arwkv__adamw_ctx *c = (arwkv__adamw_ctx *)ctx;
    for (size_t i = b; i < e; i++) {
        float g = c->g[i];
        c->m[i] = c->b1 * c->m[i] + (1 - c->b1) * g;
        c->v[i] = c->b2 * c->v[i] + (1 - c->b2) * g * g;
        float mh = c->m[i] / c->bc1, vh = c->v[i] / c->bc2;
        c->p[i] -= c->lr * (mh / (sqrtf(vh) + c->eps) + c->wd * c->p[i]);
    }
}
static arwkv_result arwkv__cpu_adamw(arwkv_backend *be, float *p, const float *g, float *m, float *v, size_t n, float lr, float b1,
                                     float b2, float eps, float wd, int step) {
    arwkv__adamw_ctx c;
    memset(&c, 0, sizeof c);
    c.p = p, c.g = g, c.m = m, c.v = v, c.lr = lr, c.b1 = b1, c.b2 = b2, c.eps = eps, c.wd = wd;
    c.bc1 = (float)(1.0 - pow((double)b1, (double)step));
    c.bc2 = (float)(1.0 - pow((double)b2, (double)step));
    arwkv__parallel_range(be->pool, n, 16384, arwkv__adamw_range, &c);
    return ARWKV_OK;
}

#define ARWKV__HAVE_CPU_OPTIM_OPS
static const arwkv_optim_ops arwkv__cpu_optim_ops = {arwkv__cpu_sumsq, arwkv__cpu_scale, arwkv__cpu_adamw};

/* @@optim-ops-impl@@ */


/* ============================================================================================
   7. Models
   ============================================================================================ */
/* ---- Parameters and checkpoints ------------------------------------------------------------------
   Loading is two steps: declare the parameters an architecture has (names, shapes, roles), then
   materialize them from the checkpoint. Creating a model from scratch declares the same list and
   allocates it instead, so loading, saving and creating can never disagree about names. */

enum { ARWKV__P_MATRIX = 1, ARWKV__P_OPTIONAL = 2 };

ARWKV_PRIVATE arwkv_param *arwkv__declare(arwkv_model *m, const char *name, int flags, int ndim, int64_t d0, int64_t d1, int64_t d2) {
    if (m->n_params == m->cap_params) {
        int cap = m->cap_params ? m->cap_params * 2 : 256;
        arwkv_param *p = (arwkv_param *)arwkv__realloc(m->params, (size_t)cap * sizeof *p);
        if (!p) return NULL;
        m->params = p;
        m->cap_params = cap;
    }
    arwkv_param *p = &m->params[m->n_params++];
    memset(p, 0, sizeof *p);
    snprintf(p->name, sizeof p->name, "%s", name);
    p->ndim = ndim;
    int64_t d[3] = {d0, d1, d2};
    p->numel = 1;
    for (int i = 0; i < ndim; i++) {
        p->shape[i] = d[i];
        p->numel *= d[i];
    }
    p->is_matrix = (flags & ARWKV__P_MATRIX) != 0;
    p->decay = p->is_matrix;
    p->dtype = ARWKV_F32;
    (void)flags;
    return p;
}

/* Pointers into m->params move when the list grows: layers keep indices until declaration ends. */
typedef struct arwkv__decl_slot {
    arwkv_param **field;
    int index;
} arwkv__decl_slot;

typedef struct arwkv__decl {
    arwkv_model *m;
    arwkv__decl_slot *slots;
    int n_slots, cap_slots;
    int failed;
} arwkv__decl;

ARWKV_PRIVATE void arwkv__decl_add(arwkv__decl *d, arwkv_param **field, const char *name, int flags, int ndim, int64_t d0,
                                   int64_t d1, int64_t d2) {
    if (d->failed) return;
    if (d->n_slots == d->cap_slots) {
        int cap = d->cap_slots ? d->cap_slots * 2 : 256;
        arwkv__decl_slot *s = (arwkv__decl_slot *)arwkv__realloc(d->slots, (size_t)cap * sizeof *s);
        if (!s) {
            d->failed = 1;
            return;
        }
        d->slots = s;
        d->cap_slots = cap;
    }
    if (!arwkv__declare(d->m, name, flags, ndim, d0, d1, d2)) {
        d->failed = 1;
        return;
    }
    d->slots[d->n_slots].field = field;
    d->slots[d->n_slots].index = d->m->n_params - 1;
    d->n_slots++;
}

/* Declare every parameter of m->cfg's architecture (and m's LoRA ranks). */
ARWKV_PRIVATE arwkv_result arwkv__declare_params(arwkv_model *m) {
    const arwkv_config *c = &m->cfg;
    int64_t C = c->hidden_size, F = c->intermediate_size, V = c->vocab_size;
    arwkv__decl d;
    memset(&d, 0, sizeof d);
    d.m = m;
    m->n_params = 0;
    m->layers = (arwkv_layer *)arwkv__calloc((size_t)c->num_layers, sizeof(arwkv_layer));
    if (!m->layers) return arwkv__fail(ARWKV_ERR_OUT_OF_MEMORY, "out of memory");
    char n[128];
#define ARWKV__P(field, flags, ndim, d0, d1, d2, ...)        \
    do {                                                     \
        snprintf(n, sizeof n, __VA_ARGS__);                  \
        arwkv__decl_add(&d, &(field), n, flags, ndim, d0, d1, d2); \
    } while (0)
    ARWKV__P(m->embed, ARWKV__P_MATRIX, 2, V, C, 0, "model.embed_tokens.weight");
    for (int i = 0; i < c->num_layers; i++) {
        arwkv_layer *l = &m->layers[i];
        ARWKV__P(l->in_norm, 0, 1, C, 0, 0, "model.layers.%d.input_layernorm.weight", i);
        if (c->arch == ARWKV_ARCH_QWEN2 || c->arch == ARWKV_ARCH_QRWKV6) {
            int64_t Q = (int64_t)c->num_heads * c->head_dim, KV = (int64_t)c->num_kv_heads * c->head_dim;
            const char *a = "model.layers.%d.self_attn.";
            char fmt[128];
#define ARWKV__ATT(field, flags, ndim, d0, d1, d2, suffix) \
    do {                                                   \
        snprintf(fmt, sizeof fmt, "%s%s", a, suffix);      \
        ARWKV__P(field, flags, ndim, d0, d1, d2, fmt, i);  \
    } while (0)
            int bias = c->arch == ARWKV_ARCH_QWEN2 || c->attention_bias;
            ARWKV__ATT(l->q_w, ARWKV__P_MATRIX, 2, Q, C, 0, "q_proj.weight");
            if (bias) ARWKV__ATT(l->q_b, 0, 1, Q, 0, 0, "q_proj.bias");
            ARWKV__ATT(l->k_w, ARWKV__P_MATRIX, 2, KV, C, 0, "k_proj.weight");
            if (bias) ARWKV__ATT(l->k_b, 0, 1, KV, 0, 0, "k_proj.bias");
            ARWKV__ATT(l->v_w, ARWKV__P_MATRIX, 2, KV, C, 0, "v_proj.weight");
            if (bias) ARWKV__ATT(l->v_b, 0, 1, KV, 0, 0, "v_proj.bias");
            ARWKV__ATT(l->o_w, ARWKV__P_MATRIX, 2, C, Q, 0, "o_proj.weight");
            if (c->arch == ARWKV_ARCH_QRWKV6 && c->attention_output_bias) ARWKV__ATT(l->o_b, 0, 1, C, 0, 0, "o_proj.bias");
            if (c->arch == ARWKV_ARCH_QRWKV6) {
                int64_t Dm = c->lora_rank_tokenshift, Dd = c->lora_rank_decay;
                ARWKV__ATT(l->maa_x, 0, 3, 1, 1, C, "time_maa_x");
                ARWKV__ATT(l->maa_w, 0, 3, 1, 1, C, "time_maa_w");
                ARWKV__ATT(l->maa_k, 0, 3, 1, 1, C, "time_maa_k");
                ARWKV__ATT(l->maa_v, 0, 3, 1, 1, C, "time_maa_v");
                ARWKV__ATT(l->maa_r, 0, 3, 1, 1, C, "time_maa_r");
                ARWKV__ATT(l->maa_g, 0, 3, 1, 1, C, "time_maa_g");
                ARWKV__ATT(l->maa_w1, ARWKV__P_MATRIX, 2, C, 5 * Dm, 0, "time_maa_w1");
                ARWKV__ATT(l->maa_w2, ARWKV__P_MATRIX, 3, 5, Dm, C, "time_maa_w2");
                ARWKV__ATT(l->time_decay, 0, 3, 1, 1, C, "time_decay");
                ARWKV__ATT(l->decay_w1, ARWKV__P_MATRIX, 2, C, Dd, 0, "time_decay_w1");
                ARWKV__ATT(l->decay_w2, ARWKV__P_MATRIX, 2, Dd, C, 0, "time_decay_w2");
                ARWKV__ATT(l->gate, ARWKV__P_MATRIX, 2, C, C, 0, "gate.weight");
            }
#undef ARWKV__ATT
        } else { /* ARWKV-7 */
            int64_t H = C / c->head_size, N = c->head_size;
            const char *t = "model.layers.%d.self_attn.time_mixer.";
            char fmt[128];
#define ARWKV__TM(field, flags, ndim, d0, d1, d2, suffix) \
    do {                                                  \
        snprintf(fmt, sizeof fmt, "%s%s", t, suffix);     \
        ARWKV__P(field, flags, ndim, d0, d1, d2, fmt, i); \
    } while (0)
            ARWKV__TM(l->x_r, 0, 3, 1, 1, C, "x_r");
            ARWKV__TM(l->x_w, 0, 3, 1, 1, C, "x_w");
            ARWKV__TM(l->x_k, 0, 3, 1, 1, C, "x_k");
            ARWKV__TM(l->x_v, 0, 3, 1, 1, C, "x_v");
            ARWKV__TM(l->x_a, 0, 3, 1, 1, C, "x_a");
            if (c->wkv_has_gate) ARWKV__TM(l->x_g, 0, 3, 1, 1, C, "x_g");
            ARWKV__TM(l->w0, 0, 3, 1, 1, C, "w0");
            ARWKV__TM(l->w1, ARWKV__P_MATRIX, 2, C, m->rank_w, 0, "w1");
            ARWKV__TM(l->w2, ARWKV__P_MATRIX, 2, m->rank_w, C, 0, "w2");
            ARWKV__TM(l->a0, 0, 3, 1, 1, C, "a0");
            ARWKV__TM(l->a1, ARWKV__P_MATRIX, 2, C, m->rank_a, 0, "a1");
            ARWKV__TM(l->a2, ARWKV__P_MATRIX, 2, m->rank_a, C, 0, "a2");
            ARWKV__TM(l->v0, 0, 3, 1, 1, C, "v0");
            ARWKV__TM(l->v1, ARWKV__P_MATRIX, 2, C, m->rank_v, 0, "v1");
            ARWKV__TM(l->v2, ARWKV__P_MATRIX, 2, m->rank_v, C, 0, "v2");
            if (c->wkv_has_gate) {
                ARWKV__TM(l->g1, ARWKV__P_MATRIX, 2, C, m->rank_g, 0, "g1");
                ARWKV__TM(l->g2, ARWKV__P_MATRIX, 2, m->rank_g, C, 0, "g2");
            }
            ARWKV__TM(l->k_k, 0, 3, 1, 1, C, "k_k");
            ARWKV__TM(l->k_a, 0, 3, 1, 1, C, "k_a");
            ARWKV__TM(l->r_k, 0, 2, H, N, 0, "r_k");
            ARWKV__TM(l->receptance, ARWKV__P_MATRIX, 2, C, C, 0, "receptance.weight");
            ARWKV__TM(l->key, ARWKV__P_MATRIX, 2, C, C, 0, "key.weight");
            ARWKV__TM(l->value, ARWKV__P_MATRIX, 2, C, C, 0, "value.weight");
            ARWKV__TM(l->output, ARWKV__P_MATRIX, 2, C, C, 0, "output.weight");
            if (c->wkv_has_group_norm) {
                ARWKV__TM(l->ln_x_w, 0, 1, C, 0, 0, "ln_x.weight");
                ARWKV__TM(l->ln_x_b, 0, 1, C, 0, 0, "ln_x.bias");
            }
#undef ARWKV__TM
        }
        ARWKV__P(l->post_norm, 0, 1, C, 0, 0, "model.layers.%d.post_attention_layernorm.weight", i);
        ARWKV__P(l->mlp_gate, ARWKV__P_MATRIX, 2, F, C, 0, "model.layers.%d.mlp.gate_proj.weight", i);
        ARWKV__P(l->mlp_up, ARWKV__P_MATRIX, 2, F, C, 0, "model.layers.%d.mlp.up_proj.weight", i);
        ARWKV__P(l->mlp_down, ARWKV__P_MATRIX, 2, C, F, 0, "model.layers.%d.mlp.down_proj.weight", i);
    }
    ARWKV__P(m->final_norm, 0, 1, C, 0, 0, "model.norm.weight");
    if (!c->tie_word_embeddings) ARWKV__P(m->lm_head, ARWKV__P_MATRIX, 2, V, C, 0, "lm_head.weight");
#undef ARWKV__P
    if (d.failed) {
        arwkv__free(d.slots);
        return arwkv__fail(ARWKV_ERR_OUT_OF_MEMORY, "out of memory declaring parameters");
    }
    for (int s = 0; s < d.n_slots; s++) *d.slots[s].field = &m->params[d.slots[s].index];
    if (c->tie_word_embeddings) m->lm_head = m->embed;
    arwkv__free(d.slots);
    return ARWKV_OK;
}

ARWKV_API arwkv_param *arwkv_model_param(arwkv_model *m, const char *name) {
    for (int i = 0; i < m->n_params; i++)
        if (strcmp(m->params[i].name, name) == 0) return &m->params[i];
    return NULL;
}

ARWKV_API int64_t arwkv_model_numel(const arwkv_model *m) {
    int64_t n = 0;
    for (int i = 0; i < m->n_params; i++) n += m->params[i].numel;
    return n;
}

ARWKV_PRIVATE void arwkv__param_release(arwkv_model *m, arwkv_param *p) {
    if (p->owns_data) m->be->mem->free(m->be, p->data);
    m->be->mem->free(m->be, p->grad);
    m->be->mem->free(m->be, p->adam_m);
    m->be->mem->free(m->be, p->adam_v);
    p->data = NULL;
    p->grad = p->adam_m = p->adam_v = NULL;
    p->owns_data = 0;
}

ARWKV_API void arwkv_model_free(arwkv_model *m) {
    if (!m) return;
    for (int i = 0; i < m->n_params; i++) arwkv__param_release(m, &m->params[i]);
    arwkv__free(m->params);
    arwkv__free(m->layers);
    arwkv_st_close(m->st);
    arwkv__free(m->dir);
    arwkv__free(m);
}

/* Give p fresh backend memory of type t (zeroed). */
ARWKV_PRIVATE arwkv_result arwkv__param_alloc(arwkv_model *m, arwkv_param *p, arwkv_dtype t) {
    if (p->owns_data) m->be->mem->free(m->be, p->data);
    p->data = NULL;
    p->owns_data = 0;
    arwkv_result r = m->be->mem->alloc(m->be, (size_t)p->numel * arwkv_dtype_size(t), &p->data);
    if (r != ARWKV_OK) return arwkv__context(r, "parameter %s", p->name);
    p->dtype = t;
    p->owns_data = 1;
    return ARWKV_OK;
}

/* Values of p from host memory src of type src_type, converted to p->dtype. */
ARWKV_PRIVATE arwkv_result arwkv__param_upload(arwkv_model *m, arwkv_param *p, const void *src, arwkv_dtype src_type) {
    size_t n = (size_t)p->numel;
    if (src_type == p->dtype) return m->be->mem->upload(m->be, p->data, src, n * arwkv_dtype_size(p->dtype));
    float *tmp = (float *)arwkv__malloc(n * sizeof(float) + 1);
    if (!tmp) return arwkv__fail(ARWKV_ERR_OUT_OF_MEMORY, "parameter %s: out of memory", p->name);
    arwkv_result r = arwkv_to_f32(tmp, src, src_type, n);
    if (r == ARWKV_OK && p->dtype == ARWKV_F32) r = m->be->mem->upload(m->be, p->data, tmp, n * sizeof(float));
    else if (r == ARWKV_OK) { /* narrow in place: 16-bit values fit in the first half of tmp */
        uint16_t *h = (uint16_t *)tmp;
        for (size_t i = 0; i < n; i++) h[i] = p->dtype == ARWKV_BF16 ? arwkv_f32_to_bf16(tmp[i]) : arwkv_f32_to_f16(tmp[i]);
        r = m->be->mem->upload(m->be, p->data, h, n * 2);
    }
    arwkv__free(tmp);
    return r;
}

ARWKV_API arwkv_result arwkv_param_write(arwkv_model *m, arwkv_param *p, const float *src, int64_t n) {
    if (n != p->numel) return arwkv__fail(ARWKV_ERR_SHAPE, "parameter %s has %lld elements, given %lld", p->name, (long long)p->numel, (long long)n);
    if (!p->owns_data) ARWKV__TRY(arwkv__param_alloc(m, p, p->dtype)); /* never write into a mapped file */
    return arwkv__param_upload(m, p, src, ARWKV_F32);
}

ARWKV_API arwkv_result arwkv_param_read(arwkv_model *m, const arwkv_param *p, float *dst, int64_t n) {
    if (n != p->numel) return arwkv__fail(ARWKV_ERR_SHAPE, "parameter %s has %lld elements, asked for %lld", p->name, (long long)p->numel, (long long)n);
    size_t bytes = (size_t)n * arwkv_dtype_size(p->dtype);
    if (p->dtype == ARWKV_F32) return m->be->mem->download(m->be, dst, p->data, bytes);
    void *tmp = arwkv__malloc(bytes);
    if (!tmp) return arwkv__fail(ARWKV_ERR_OUT_OF_MEMORY, "parameter %s: out of memory", p->name);
    arwkv_result r = m->be->mem->download(m->be, tmp, p->data, bytes);
    if (r == ARWKV_OK) r = arwkv_to_f32(dst, tmp, p->dtype, (size_t)n);
    arwkv__free(tmp);
    return r;
}

/* Materialize p from the checkpoint: a frozen matrix keeps its stored float type (mapped in place
   on the CPU when aligned); everything else becomes fp32. */
ARWKV_PRIVATE arwkv_result arwkv__param_from_checkpoint(arwkv_model *m, arwkv_param *p, const arwkv_tensor_info *t) {
    const char *file = arwkv_st_file_name(m->st, t->file);
    int ok_shape = t->numel == p->numel;
    if (ok_shape && t->ndim == p->ndim)
        for (int i = 0; i < p->ndim; i++) ok_shape &= t->shape[i] == p->shape[i];
    else if (ok_shape) { /* accept a different rank of the same size only for vectors ([C] vs [1,1,C]) */
        int64_t big = 1;
        for (int i = 0; i < t->ndim; i++) big = t->shape[i] > big ? t->shape[i] : big;
        ok_shape = !p->is_matrix && big == t->numel;
    }
    if (!ok_shape) {
        char want[96] = "", got[96] = "";
        for (int i = 0; i < p->ndim; i++) snprintf(want + strlen(want), sizeof want - strlen(want), "%s%lld", i ? "," : "", (long long)p->shape[i]);
        for (int i = 0; i < t->ndim; i++) snprintf(got + strlen(got), sizeof got - strlen(got), "%s%lld", i ? "," : "", (long long)t->shape[i]);
        return arwkv__fail(ARWKV_ERR_SHAPE, "%s: tensor '%s' has shape [%s], the config implies [%s]", file, p->name, got, want);
    }
    int is_float = t->dtype == ARWKV_F32 || t->dtype == ARWKV_BF16 || t->dtype == ARWKV_F16;
    if (!is_float && t->dtype != ARWKV_F64)
        return arwkv__fail(ARWKV_ERR_UNSUPPORTED, "%s: tensor '%s' has dtype %s; parameters must be F32, BF16, F16 or F64", file,
                           p->name, arwkv_dtype_name(t->dtype));
    if (p->is_matrix && is_float) {
        if (!m->be->on_gpu && ((uintptr_t)t->data % arwkv_dtype_size(t->dtype)) == 0) {
            p->data = (void *)t->data; /* mapped: the OS pages it in on first use */
            p->dtype = t->dtype;
            p->owns_data = 0;
            return ARWKV_OK;
        }
        ARWKV__TRY(arwkv__param_alloc(m, p, t->dtype));
        return arwkv__param_upload(m, p, t->data, t->dtype);
    }
    ARWKV__TRY(arwkv__param_alloc(m, p, ARWKV_F32));
    return arwkv__param_upload(m, p, t->data, t->dtype);
}

/* RWKV-7 LoRA ranks come from the checkpoint's tensor shapes. */
ARWKV_PRIVATE arwkv_result arwkv__read_lora_ranks(arwkv_model *m) {
    const char *names[4] = {"w1", "a1", "v1", "g1"};
    int *ranks[4] = {&m->rank_w, &m->rank_a, &m->rank_v, &m->rank_g};
    for (int k = 0; k < 4; k++) {
        char n[128];
        /* layer 0's v1 is unused upstream (llama.cpp replaces it by a dummy), so read ranks from the last layer */
        snprintf(n, sizeof n, "model.layers.%d.self_attn.time_mixer.%s", m->cfg.num_layers - 1, names[k]);
        const arwkv_tensor_info *t = arwkv_st_find(m->st, n);
        if (!t) {
            if (k == 3 && !m->cfg.wkv_has_gate) continue;
            return arwkv__fail(ARWKV_ERR_NOT_FOUND, "%s: tensor '%s' not found (needed for the LoRA rank)", m->dir, n);
        }
        if (t->ndim != 2 || t->shape[0] != m->cfg.hidden_size || t->shape[1] <= 0 || t->shape[1] > 65536)
            return arwkv__fail(ARWKV_ERR_SHAPE, "%s: tensor '%s' should be [%d, rank]", m->dir, n, m->cfg.hidden_size);
        *ranks[k] = (int)t->shape[1];
    }
    return ARWKV_OK;
}

ARWKV_API arwkv_result arwkv_model_load(const char *dir, arwkv_backend *be, arwkv_model **out) {
    *out = NULL;
    arwkv_model *m = (arwkv_model *)arwkv__calloc(1, sizeof *m);
    if (!m) return arwkv__fail(ARWKV_ERR_OUT_OF_MEMORY, "out of memory");
    m->be = be;
    m->dir = arwkv__strdup(dir);
    arwkv_result r = m->dir ? ARWKV_OK : arwkv__fail(ARWKV_ERR_OUT_OF_MEMORY, "out of memory");
    if (r == ARWKV_OK && !arwkv__is_dir(dir))
        r = arwkv__fail(ARWKV_ERR_NOT_FOUND, "%s: not a directory (a model is a directory with config.json and safetensors)", dir);
    if (r == ARWKV_OK) r = arwkv_config_load(dir, &m->cfg);
    if (r == ARWKV_OK) r = arwkv_st_open(dir, &m->st);
    if (r == ARWKV_OK && m->cfg.arch == ARWKV_ARCH_ARWKV7) r = arwkv__read_lora_ranks(m);
    if (r == ARWKV_OK) r = arwkv__declare_params(m);
    for (int i = 0; i < m->n_params && r == ARWKV_OK; i++) {
        arwkv_param *p = &m->params[i];
        const arwkv_tensor_info *t = arwkv_st_find(m->st, p->name);
        if (!t) r = arwkv__fail(ARWKV_ERR_NOT_FOUND, "%s: tensor '%s' is missing from the checkpoint (architecture %s)", dir, p->name,
                                arwkv_arch_name(m->cfg.arch));
        else r = arwkv__param_from_checkpoint(m, p, t);
    }
    if (r != ARWKV_OK) {
        arwkv_model_free(m);
        return r;
    }
    *out = m;
    return ARWKV_OK;
}

/* ---- Saving ------------------------------------------------------------------------------------ */

ARWKV_PRIVATE void arwkv__json_kv_int(arwkv__buf *b, const char *key, long long v, int last) {
    arwkv__buf_printf(b, "  \"%s\": %lld%s\n", key, v, last ? "" : ",");
}

/* config.json in the layout transformers and llama.cpp read for each architecture. */
ARWKV_PRIVATE void arwkv__config_json(const arwkv_config *c, arwkv__buf *b) {
    arwkv__buf_printf(b, "{\n  \"architectures\": [\n    \"%s\"\n  ],\n", arwkv_arch_name(c->arch));
    const char *model_type = c->arch == ARWKV_ARCH_QWEN2 ? "qwen2" : c->arch == ARWKV_ARCH_ARWKV7 ? "rwkv_hybrid" : "rwkv6qwen2";
    arwkv__buf_printf(b, "  \"model_type\": \"%s\",\n", model_type);
    arwkv__buf_str(b, "  \"attention_dropout\": 0.0,\n");
    if (c->bos_token_id >= 0) arwkv__json_kv_int(b, "bos_token_id", c->bos_token_id, 0);
    if (c->eos_token_id >= 0) arwkv__json_kv_int(b, "eos_token_id", c->eos_token_id, 0);
    if (c->arch == ARWKV_ARCH_ARWKV7) {
        arwkv__json_kv_int(b, "head_size", c->head_size, 0);
        arwkv__json_kv_int(b, "head_size_divisor", c->head_size_divisor, 0);
        arwkv__buf_printf(b, "  \"wkv_has_gate\": %s,\n  \"wkv_has_group_norm\": %s,\n", c->wkv_has_gate ? "true" : "false",
                          c->wkv_has_group_norm ? "true" : "false");
        arwkv__json_kv_int(b, "wkv_version", 7, 0);
    }
    if (c->arch == ARWKV_ARCH_QRWKV6) {
        arwkv__buf_printf(b, "  \"attention_bias\": %s,\n  \"attention_output_bias\": %s,\n", c->attention_bias ? "true" : "false",
                          c->attention_output_bias ? "true" : "false");
        arwkv__json_kv_int(b, "lora_rank_tokenshift", c->lora_rank_tokenshift, 0);
        arwkv__json_kv_int(b, "lora_rank_decay", c->lora_rank_decay, 0);
        /* as the published checkpoints: transformers loads them with recursal's two Python files */
        arwkv__buf_str(b, "  \"auto_map\": {\n    \"AutoConfig\": \"configuration_rwkv6qwen2.RWKV6Qwen2Config\",\n"
                          "    \"AutoModelForCausalLM\": \"modeling_rwkv6qwen2.RWKV6Qwen2ForCausalLM\"\n  },\n");
    }
    arwkv__buf_str(b, "  \"hidden_act\": \"silu\",\n");
    arwkv__json_kv_int(b, "hidden_size", c->hidden_size, 0);
    arwkv__buf_str(b, "  \"initializer_range\": 0.02,\n");
    arwkv__json_kv_int(b, "intermediate_size", c->intermediate_size, 0);
    arwkv__json_kv_int(b, "max_position_embeddings", c->max_position_embeddings, 0);
    arwkv__json_kv_int(b, "num_attention_heads", c->num_heads, 0);
    arwkv__json_kv_int(b, "num_hidden_layers", c->num_layers, 0);
    arwkv__json_kv_int(b, "num_key_value_heads", c->num_kv_heads, 0);
    if (c->head_dim > 0 && c->num_heads > 0 && c->head_dim * c->num_heads != c->hidden_size) arwkv__json_kv_int(b, "head_dim", c->head_dim, 0);
    arwkv__buf_printf(b, "  \"rms_norm_eps\": %.9g,\n", (double)c->rms_norm_eps);
    arwkv__buf_printf(b, "  \"rope_theta\": %.17g,\n", c->rope_theta);
    arwkv__buf_printf(b, "  \"tie_word_embeddings\": %s,\n", c->tie_word_embeddings ? "true" : "false");
    arwkv__buf_printf(b, "  \"torch_dtype\": \"%s\",\n", c->torch_dtype[0] ? c->torch_dtype : "float32");
    arwkv__buf_str(b, "  \"use_cache\": true,\n");
    arwkv__json_kv_int(b, "vocab_size", c->vocab_size, 1);
    arwkv__buf_str(b, "}\n");
}

ARWKV_PRIVATE arwkv_result arwkv__copy_file(const char *from, const char *to) {
    char *data;
    size_t len;
    ARWKV__TRY(arwkv__read_file(from, &data, &len));
    arwkv_result r = arwkv__write_text(to, data, len);
    arwkv__free(data);
    return r;
}

ARWKV_API arwkv_result arwkv_model_save(arwkv_model *m, const char *dir, arwkv_dtype save_type, uint64_t max_shard_bytes,
                                        const char *tokenizer_dir) {
    if (save_type != ARWKV_DTYPE_UNKNOWN && save_type != ARWKV_F32 && save_type != ARWKV_BF16 && save_type != ARWKV_F16)
        return arwkv__fail(ARWKV_ERR_INVALID_ARGUMENT, "save type must be F32, BF16 or F16, not %s", arwkv_dtype_name(save_type));
    if (max_shard_bytes == 0) max_shard_bytes = 5000000000ull;
    ARWKV__TRY(arwkv__mkdir(dir));
    arwkv_st_entry *e = (arwkv_st_entry *)arwkv__calloc((size_t)m->n_params + 1, sizeof *e);
    void **host = (void **)arwkv__calloc((size_t)m->n_params, sizeof(void *));
    arwkv_result r = (e && host) ? ARWKV_OK : arwkv__fail(ARWKV_ERR_OUT_OF_MEMORY, "%s: out of memory", dir);
    for (int i = 0; i < m->n_params && r == ARWKV_OK; i++) {
        arwkv_param *p = &m->params[i];
        arwkv_dtype t = save_type == ARWKV_DTYPE_UNKNOWN ? p->dtype : save_type;
        /* small fp32 parameters (vectors) stay fp32 in a bf16 save only if the model is fp32 */
        size_t n = (size_t)p->numel;
        host[i] = arwkv__malloc(n * 4 + 1);
        if (!host[i]) {
            r = arwkv__fail(ARWKV_ERR_OUT_OF_MEMORY, "%s: out of memory", dir);
            break;
        }
        if (t == p->dtype) r = m->be->mem->download(m->be, host[i], p->data, n * arwkv_dtype_size(t));
        else {
            r = arwkv_param_read(m, p, (float *)host[i], p->numel);
            uint16_t *h = (uint16_t *)host[i];
            float *f = (float *)host[i];
            if (r == ARWKV_OK)
                for (size_t k = 0; k < n; k++) h[k] = t == ARWKV_BF16 ? arwkv_f32_to_bf16(f[k]) : arwkv_f32_to_f16(f[k]);
        }
        e[i].name = p->name;
        e[i].dtype = t;
        e[i].ndim = p->ndim;
        for (int d = 0; d < p->ndim; d++) e[i].shape[d] = p->shape[d];
        e[i].data = host[i];
    }
    int n_entries = m->n_params;
    /* llama.cpp's rwkv6qwen2 loader has no tied head (output.weight is required) and recursal's
       converter materializes lm_head.weight: a tied QRWKV6 model also writes its head, as a copy */
    if (r == ARWKV_OK && m->cfg.arch == ARWKV_ARCH_QRWKV6 && m->cfg.tie_word_embeddings && m->embed) {
        e[n_entries] = e[m->embed - m->params];
        e[n_entries++].name = "lm_head.weight";
    }
    const char *meta[2] = {"format", "pt"};
    if (r == ARWKV_OK) r = arwkv_st_write_dir(dir, e, n_entries, meta, 1, max_shard_bytes);
    if (r == ARWKV_OK) {
        arwkv__buf b;
        memset(&b, 0, sizeof b);
        arwkv_config c = m->cfg;
        if (save_type == ARWKV_F32) snprintf(c.torch_dtype, sizeof c.torch_dtype, "float32");
        if (save_type == ARWKV_BF16) snprintf(c.torch_dtype, sizeof c.torch_dtype, "bfloat16");
        arwkv__config_json(&c, &b);
        char *path = arwkv__path_join(dir, "config.json");
        r = (path && !b.failed) ? arwkv__write_text(path, b.data, b.len) : arwkv__fail(ARWKV_ERR_OUT_OF_MEMORY, "out of memory");
        arwkv__free(path);
        arwkv__buf_free(&b);
    }
    if (r == ARWKV_OK && tokenizer_dir) {
        const char *files[3] = {"tokenizer.json", "tokenizer_config.json", "generation_config.json"};
        for (int k = 0; k < 3 && r == ARWKV_OK; k++) {
            char *from = arwkv__path_join(tokenizer_dir, files[k]), *to = arwkv__path_join(dir, files[k]);
            if (!from || !to) r = arwkv__fail(ARWKV_ERR_OUT_OF_MEMORY, "out of memory");
            else if (arwkv__file_exists(from) && strcmp(from, to) != 0) r = arwkv__copy_file(from, to);
            arwkv__free(from);
            arwkv__free(to);
        }
    }
    for (int i = 0; host && i < m->n_params; i++) arwkv__free(host[i]);
    arwkv__free(host);
    arwkv__free(e);
    return r;
}

/* @@teacher-impl@@ */


/* @@student-impl@@ */


/* ---- Creating a student ------------------------------------------------------------------------------ */

ARWKV_API void arwkv_student_options_default(arwkv_student_options *o) {
    memset(o, 0, sizeof *o);
    o->init = ARWKV_INIT_UPSTREAM;
    o->gate = 1;
    o->group_norm = 0;
    o->seed = 1;
    o->arch = ARWKV_ARCH_ARWKV7;
}

/* A small deterministic generator for initial weights (splitmix64, Box-Muller in double). */
typedef struct arwkv__rng {
    uint64_t s;
} arwkv__rng;
ARWKV_PRIVATE uint64_t arwkv__rng_u64(arwkv__rng *r) {
    uint64_t z = (r->s += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}
ARWKV_PRIVATE double arwkv__rng_uniform(arwkv__rng *r) { return (double)(arwkv__rng_u64(r) >> 11) / 9007199254740992.0; }
ARWKV_PRIVATE double arwkv__rng_normal(arwkv__rng *r) {
    double u = arwkv__rng_uniform(r) + 1e-300, v = arwkv__rng_uniform(r);
    return sqrt(-2.0 * log(u)) * cos(6.283185307179586 * v);
}

/* A (rows x cols) matrix with orthonormal rows (rows <= cols) or columns (rows > cols), times gain:
   Gram-Schmidt in float64 over Gaussian vectors, as torch.nn.init.orthogonal_ produces in law. */
ARWKV_PRIVATE arwkv_result arwkv__init_orthogonal(float *w, int rows, int cols, double gain, arwkv__rng *rng) {
    int by_rows = rows <= cols, n = by_rows ? rows : cols, len = by_rows ? cols : rows;
    double *q = (double *)arwkv__malloc((size_t)n * (size_t)len * sizeof(double));
    if (!q) return arwkv__fail(ARWKV_ERR_OUT_OF_MEMORY, "orthogonal init: out of memory");
    for (int i = 0; i < n; i++) {
        double *v = q + (size_t)i * len;
        for (;;) {
            for (int k = 0; k < len; k++) v[k] = arwkv__rng_normal(rng);
            for (int pass = 0; pass < 2; pass++) /* twice: re-orthogonalization keeps it exact */
                for (int j = 0; j < i; j++) {
                    const double *u = q + (size_t)j * len;
                    double d = 0;
                    for (int k = 0; k < len; k++) d += u[k] * v[k];
                    for (int k = 0; k < len; k++) v[k] -= d * u[k];
                }
            double nn = 0;
            for (int k = 0; k < len; k++) nn += v[k] * v[k];
            if (nn > 1e-20) {
                double inv = 1.0 / sqrt(nn);
                for (int k = 0; k < len; k++) v[k] *= inv;
                break;
            }
        }
    }
    for (int r = 0; r < rows; r++)
        for (int c = 0; c < cols; c++) w[(size_t)r * cols + c] = (float)(gain * (by_rows ? q[(size_t)r * len + c] : q[(size_t)c * len + r]));
    arwkv__free(q);
    return ARWKV_OK;
}

/* Copy a teacher parameter (same name and shape) into a student's, keeping its stored type. */
ARWKV_PRIVATE arwkv_result arwkv__copy_param(arwkv_model *dst, arwkv_param *d, const arwkv_param *s) {
    if (d->numel != s->numel) return arwkv__fail(ARWKV_ERR_SHAPE, "%s: %lld elements in the teacher, %lld in the student", d->name,
                                                 (long long)s->numel, (long long)d->numel);
    ARWKV__TRY(arwkv__param_alloc(dst, d, s->dtype));
    return dst->be->mem->copy(dst->be, d->data, s->data, (size_t)s->numel * arwkv_dtype_size(s->dtype));
}

/* The time mix of layer l by upstream's rule (RWKVInside TimeMixer, Jan 2025), with
   r0 = l/(L-1), r1 = 1 - l/L, ddd[i] = i/C:
     x_r = 1-ddd^(0.2 r1), x_w = 1-ddd^(0.9 r1), x_k = 1-(ddd^(0.9 r1)+0.4 r0), x_v = 1-(ddd^(0.4 r1)+0.6 r0),
     x_a = 1-ddd^(0.9 r1), x_g = 1;  w0[n] = -7 + 5 (n/(C-1))^(0.85+sqrt(r0)) + 0.5;  a0 = 0; v0 = 1;
     w1 = a1 = v1 = 0 and w2, a2, v2 orthogonal x 0.1 (the LoRAs start as biases only);
     g1 = g2 = 1;  k_k = 0.85; k_a = 1; r_k = 0;  r/k/v/o: nn.Linear's default U(-1/sqrt(C), 1/sqrt(C)). */
ARWKV_PRIVATE arwkv_result arwkv__init_tmix7(arwkv_model *s, int l, const arwkv_student_options *opt, arwkv_model *teacher,
                                             arwkv__rng *rng) {
    const arwkv_config *c = &s->cfg;
    arwkv_layer *L = &s->layers[l];
    int C = c->hidden_size, nl = c->num_layers;
    double r0 = nl > 1 ? (double)l / (nl - 1) : 0.0, r1 = 1.0 - (double)l / nl;
    size_t big = (size_t)C * (size_t)C;
    int maxr = s->rank_w > s->rank_a ? s->rank_w : s->rank_a;
    if (s->rank_v > maxr) maxr = s->rank_v;
    if (s->rank_g > maxr) maxr = s->rank_g;
    size_t need = big > (size_t)C * (size_t)maxr ? big : (size_t)C * (size_t)maxr;
    float *buf = (float *)arwkv__malloc(need * sizeof(float));
    if (!buf) return arwkv__fail(ARWKV_ERR_OUT_OF_MEMORY, "student init: out of memory");
    arwkv_result r = ARWKV_OK;
#define ARWKV__SET(param, expr)                                  \
    if (r == ARWKV_OK && (param)) {                              \
        for (int64_t i_ = 0; i_ < (param)->numel; i_++) {        \
            double i = (double)i_;                               \
            (void)i;                                             \
            buf[i_] = (float)(expr);                             \
        }                                                        \
        r = arwkv_param_write(s, (param), buf, (param)->numel);  \
    }
    ARWKV__SET(L->x_r, 1 - pow(i / C, 0.2 * r1));
    ARWKV__SET(L->x_w, 1 - pow(i / C, 0.9 * r1));
    ARWKV__SET(L->x_k, 1 - (pow(i / C, 0.9 * r1) + 0.4 * r0));
    ARWKV__SET(L->x_v, 1 - (pow(i / C, 0.4 * r1) + 0.6 * r0));
    ARWKV__SET(L->x_a, 1 - pow(i / C, 0.9 * r1));
    ARWKV__SET(L->x_g, 1.0);
    ARWKV__SET(L->w0, -7 + 5 * pow(i / (C - 1), 0.85 + sqrt(r0)) + 0.5);
    ARWKV__SET(L->a0, 0.0);
    ARWKV__SET(L->v0, 1.0);
    ARWKV__SET(L->w1, 0.0);
    ARWKV__SET(L->a1, 0.0);
    ARWKV__SET(L->v1, 0.0);
    ARWKV__SET(L->g1, 1.0);
    ARWKV__SET(L->g2, 1.0);
    ARWKV__SET(L->k_k, 0.85);
    ARWKV__SET(L->k_a, 1.0);
    ARWKV__SET(L->r_k, 0.0);
    ARWKV__SET(L->ln_x_w, pow((1.0 + l) / nl, 0.7));
    ARWKV__SET(L->ln_x_b, 0.0);
#undef ARWKV__SET
    arwkv_param *lora2[3] = {L->w2, L->a2, L->v2};
    for (int k = 0; k < 3 && r == ARWKV_OK; k++) {
        r = arwkv__init_orthogonal(buf, (int)lora2[k]->shape[0], (int)lora2[k]->shape[1], 0.1, rng);
        if (r == ARWKV_OK) r = arwkv_param_write(s, lora2[k], buf, lora2[k]->numel);
    }
    arwkv_param *proj[4] = {L->receptance, L->key, L->value, L->output};
    if (opt->init == ARWKV_INIT_INHERIT) {
        /* channel c of the student's key/value reads the teacher's kv channel of the same query head
           position: query head h = c / head_dim uses kv head h / (heads / kv_heads), as GQA does */
        const arwkv_config *tc = &teacher->cfg;
        arwkv_layer *T = &teacher->layers[l];
        int hd = tc->head_dim, group = tc->num_heads / tc->num_kv_heads;
        float *row = (float *)arwkv__malloc((size_t)tc->num_kv_heads * hd * (size_t)C * sizeof(float));
        if (!row) r = arwkv__fail(ARWKV_ERR_OUT_OF_MEMORY, "student init: out of memory");
        const arwkv_param *src[4] = {T->q_w, T->k_w, T->v_w, T->o_w};
        for (int k = 0; k < 4 && r == ARWKV_OK; k++) {
            if (k == 0 || k == 3) {
                r = arwkv_param_read(teacher, src[k], buf, src[k]->numel);
            } else {
                r = arwkv_param_read(teacher, src[k], row, src[k]->numel);
                for (int ch = 0; ch < C && r == ARWKV_OK; ch++) {
                    int kv_channel = (ch / hd) / group * hd + ch % hd;
                    memcpy(buf + (size_t)ch * C, row + (size_t)kv_channel * C, (size_t)C * sizeof(float));
                }
            }
            if (r == ARWKV_OK) r = arwkv_param_write(s, proj[k], buf, proj[k]->numel);
        }
        arwkv__free(row);
    } else {
        double bound = 1.0 / sqrt((double)C);
        for (int k = 0; k < 4 && r == ARWKV_OK; k++) {
            for (size_t i = 0; i < big; i++) buf[i] = (float)((2 * arwkv__rng_uniform(rng) - 1) * bound);
            r = arwkv_param_write(s, proj[k], buf, proj[k]->numel);
        }
    }
    arwkv__free(buf);
    return r;
}

/* The QRWKV6 time mix of layer l, chosen so that at step 0 the block is the teacher's attention with
   the softmax replaced by a decaying linear attention, and nothing else changed:
     time_maa_x = 1, time_maa_r/k/v/w/g = 0, time_maa_w1 = 0, time_maa_w2 ~ U(-0.01, 0.01):
       every branch input x_c is exactly x (m_c = tanh(0) . w2 = 0), so q/k/v see what the
       teacher's projections see; the token-shift LoRA's input is the previous token (maa_x = 1), and
       its gradient reaches w1 through the small random w2 from the first step.
     time_decay[n] = -6 + 5 (n/(C-1))^(0.7 + 1.3 r0), r0 = l/(L-1); time_decay_w1 = 0,
       time_decay_w2 ~ U(-0.01, 0.01): per-channel decays exp(-exp(time_decay)) from 0.9975 (a state
       that averages ~400 tokens, since k is scaled by 1 - w) down to 0.69 (~3 tokens), the slow
       ones more numerous in deeper layers: a spread of windows for the softmax's mix of local and
       long-range heads.
     gate.weight = 0: sigmoid(0) = 1/2 for every input, the one input-independent value a gate
       without bias can start at; it is trained from stage 1 on to scale the output per channel.
   This is recursal's initialisation in its QRWKV6 conversion code (TMix_qwen2rwkv6), taken as is. */
ARWKV_PRIVATE arwkv_result arwkv__init_tmix6(arwkv_model *s, int l, arwkv__rng *rng) {
    const arwkv_config *c = &s->cfg;
    arwkv_layer *L = &s->layers[l];
    int C = c->hidden_size, nl = c->num_layers;
    double r0 = nl > 1 ? (double)l / (nl - 1) : 0.0;
    int64_t most = (int64_t)C * C;
    if (L->maa_w1->numel > most) most = L->maa_w1->numel;
    if (L->maa_w2->numel > most) most = L->maa_w2->numel;
    float *buf = (float *)arwkv__malloc((size_t)most * sizeof(float));
    if (!buf) return arwkv__fail(ARWKV_ERR_OUT_OF_MEMORY, "student init: out of memory");
    arwkv_result r = ARWKV_OK;
#define ARWKV__SET(param, expr)                                  \
    if (r == ARWKV_OK) {                                         \
        for (int64_t i_ = 0; i_ < (param)->numel; i_++) {        \
            double i = (double)i_;                               \
            (void)i;                                             \
            buf[i_] = (float)(expr);                             \
        }                                                        \
        r = arwkv_param_write(s, (param), buf, (param)->numel);  \
    }
    ARWKV__SET(L->maa_x, 1.0);
    ARWKV__SET(L->maa_r, 0.0);
    ARWKV__SET(L->maa_k, 0.0);
    ARWKV__SET(L->maa_v, 0.0);
    ARWKV__SET(L->maa_w, 0.0);
    ARWKV__SET(L->maa_g, 0.0);
    ARWKV__SET(L->maa_w1, 0.0);
    ARWKV__SET(L->maa_w2, 0.02 * arwkv__rng_uniform(rng) - 0.01);
    ARWKV__SET(L->time_decay, -6 + 5 * pow(i / (C - 1), 0.7 + 1.3 * r0));
    ARWKV__SET(L->decay_w1, 0.0);
    ARWKV__SET(L->decay_w2, 0.02 * arwkv__rng_uniform(rng) - 0.01);
    ARWKV__SET(L->gate, 0.0);
#undef ARWKV__SET
    arwkv__free(buf);
    return r;
}

/* A QRWKV6 student: every parameter the teacher has (q/k/v/o with biases included) is copied in its
   stored type; the RWKV-6 parameters are new, fp32. */
ARWKV_PRIVATE arwkv_result arwkv__student_create_qrwkv6(arwkv_model *teacher, const arwkv_student_options *opt, arwkv_model **out) {
    const arwkv_config *tc = &teacher->cfg;
    if (tc->num_heads * tc->head_dim != tc->hidden_size)
        return arwkv__fail(ARWKV_ERR_UNSUPPORTED, "a QRWKV6 student needs heads x head_dim == hidden size (%d x %d != %d)", tc->num_heads,
                           tc->head_dim, tc->hidden_size);
    arwkv_model *s = (arwkv_model *)arwkv__calloc(1, sizeof *s);
    if (!s) return arwkv__fail(ARWKV_ERR_OUT_OF_MEMORY, "out of memory");
    s->be = teacher->be;
    s->cfg = *tc;
    s->cfg.arch = ARWKV_ARCH_QRWKV6;
    s->cfg.attention_bias = 1; /* Qwen2's q/k/v biases */
    s->cfg.attention_output_bias = 0;
    s->cfg.head_size = tc->head_dim;
    s->cfg.lora_rank_tokenshift = opt->rank_mix > 0 ? opt->rank_mix : tc->hidden_size >= 4096 ? 64 : 32;
    s->cfg.lora_rank_decay = opt->rank_w > 0 ? opt->rank_w : tc->hidden_size >= 4096 ? 128 : 64;
    arwkv_result r = arwkv__declare_params(s);
    arwkv__rng rng = {opt->seed * 0x2545F4914F6CDD1Dull + 6789};
    for (int i = 0; i < s->n_params && r == ARWKV_OK; i++) {
        arwkv_param *p = &s->params[i], *tp = arwkv_model_param(teacher, p->name);
        r = tp ? arwkv__copy_param(s, p, tp) : arwkv__param_alloc(s, p, ARWKV_F32);
    }
    for (int l = 0; l < s->cfg.num_layers && r == ARWKV_OK; l++) r = arwkv__init_tmix6(s, l, &rng);
    if (r != ARWKV_OK) {
        arwkv_model_free(s);
        return r;
    }
    snprintf(s->cfg.torch_dtype, sizeof s->cfg.torch_dtype, "float32");
    *out = s;
    return ARWKV_OK;
}

ARWKV_API arwkv_result arwkv_student_create(arwkv_model *teacher, const arwkv_student_options *opt_in, arwkv_model **out) {
    *out = NULL;
    arwkv_student_options opt;
    if (opt_in) opt = *opt_in;
    else arwkv_student_options_default(&opt);
    const arwkv_config *tc = &teacher->cfg;
    if (tc->arch != ARWKV_ARCH_QWEN2)
        return arwkv__fail(ARWKV_ERR_UNSUPPORTED, "a student is made from a Qwen2ForCausalLM teacher, not %s", arwkv_arch_name(tc->arch));
    if (opt.arch == ARWKV_ARCH_QRWKV6) return arwkv__student_create_qrwkv6(teacher, &opt, out);
    if (opt.arch != ARWKV_ARCH_UNKNOWN && opt.arch != ARWKV_ARCH_ARWKV7)
        return arwkv__fail(ARWKV_ERR_INVALID_ARGUMENT, "a student is ARWKV-7 or QRWKV6, not %s", arwkv_arch_name(opt.arch));
    if (tc->hidden_size % 64 != 0)
        return arwkv__fail(ARWKV_ERR_UNSUPPORTED, "teacher hidden size %d is not a multiple of the WKV head size 64", tc->hidden_size);
    if (opt.init == ARWKV_INIT_INHERIT && tc->num_heads * tc->head_dim != tc->hidden_size)
        return arwkv__fail(ARWKV_ERR_UNSUPPORTED, "--init inherit needs heads x head_dim == hidden size");
    arwkv_model *s = (arwkv_model *)arwkv__calloc(1, sizeof *s);
    if (!s) return arwkv__fail(ARWKV_ERR_OUT_OF_MEMORY, "out of memory");
    s->be = teacher->be;
    s->cfg = *tc;
    s->cfg.arch = ARWKV_ARCH_ARWKV7;
    s->cfg.head_size = 64;
    s->cfg.head_size_divisor = 8;
    s->cfg.wkv_has_gate = opt.gate != 0;
    s->cfg.wkv_has_group_norm = opt.group_norm != 0;
    s->cfg.wkv_version = 7;
    s->rank_w = opt.rank_w > 0 ? opt.rank_w : 64;
    s->rank_a = opt.rank_a > 0 ? opt.rank_a : 64;
    s->rank_v = opt.rank_v > 0 ? opt.rank_v : 32;
    s->rank_g = opt.gate ? (opt.rank_g > 0 ? opt.rank_g : 128) : 0;
    arwkv_result r = arwkv__declare_params(s);
    arwkv__rng rng = {opt.seed * 0x2545F4914F6CDD1Dull + 12345};
    /* shared parts: same names in both models */
    for (int i = 0; i < s->n_params && r == ARWKV_OK; i++) {
        arwkv_param *p = &s->params[i];
        if (strstr(p->name, ".time_mixer.")) continue;
        arwkv_param *tp = arwkv_model_param(teacher, p->name);
        if (!tp) r = arwkv__fail(ARWKV_ERR_NOT_FOUND, "teacher has no parameter '%s'", p->name);
        else r = arwkv__copy_param(s, p, tp);
    }
    /* the time mix is fp32 (it is what training changes) */
    for (int i = 0; i < s->n_params && r == ARWKV_OK; i++)
        if (strstr(s->params[i].name, ".time_mixer.")) r = arwkv__param_alloc(s, &s->params[i], ARWKV_F32);
    for (int l = 0; l < s->cfg.num_layers && r == ARWKV_OK; l++) r = arwkv__init_tmix7(s, l, &opt, teacher, &rng);
    if (r != ARWKV_OK) {
        arwkv_model_free(s);
        return r;
    }
    snprintf(s->cfg.torch_dtype, sizeof s->cfg.torch_dtype, "float32");
    *out = s;
    return ARWKV_OK;
}

/* @@student-model-impl@@ */


/* ---- The QRWKV6 time mix ---------------------------------------------------------------------------
   The block is a chain of matrix products (core->gemm, weights in their stored type) and the
   rwkv6 ops. Forward keeps every intermediate it makes in the activations object; backward walks
   the chain in reverse with one workspace allocated per call. */

ARWKV_API arwkv_result arwkv_tmix6_dims_from_config(const arwkv_config *cfg, arwkv_tmix6_dims *o) {
    memset(o, 0, sizeof *o);
    int C = cfg->hidden_size, H = cfg->num_heads, KVH = cfg->num_kv_heads > 0 ? cfg->num_kv_heads : cfg->num_heads;
    if (C <= 0 || H <= 0 || C % H != 0)
        return arwkv__fail(ARWKV_ERR_SHAPE, "QRWKV6: hidden_size %d is not a multiple of num_attention_heads %d", C, H);
    if (H % KVH != 0)
        return arwkv__fail(ARWKV_ERR_SHAPE, "QRWKV6: num_attention_heads %d is not a multiple of num_key_value_heads %d", H, KVH);
    o->C = C;
    o->n_heads = H;
    o->head_size = C / H;
    o->n_kv_heads = KVH;
    /* llama.cpp's (and recursal's) defaults when the config does not say */
    o->rank_mix = cfg->lora_rank_tokenshift > 0 ? cfg->lora_rank_tokenshift : C >= 4096 ? 64 : 32;
    o->rank_decay = cfg->lora_rank_decay > 0 ? cfg->lora_rank_decay : C >= 4096 ? 128 : 64;
    return ARWKV_OK;
}

struct arwkv_tmix6_acts {
    arwkv_backend *be;
    arwkv_tmix6_dims d;
    size_t rows_cap, ckpt_cap; /* capacity: token rows, checkpoint floats */
    int B, T;                  /* shape of the forward the buffers hold (0: none) */
    void *block;               /* one backend allocation holding every buffer below */
    float *xx, *xxx;           /* token shift: x_{t-1} - x_t, and x + xx maa_x          [rows, C] */
    float *h1;                 /* tanh(xxx . time_maa_w1)                              [rows, 5 Dm] */
    float *m, *xc;             /* branch LoRA outputs and mixed inputs, order r,k,v,w,g [5, rows, C] */
    float *r, *k, *v, *g;      /* q_proj, k_proj, v_proj (kv heads), gate pre-sigmoid */
    float *hd, *z, *w;         /* tanh(x_w . time_decay_w1) [rows, Dd]; log-log decay z; decay w */
    float *kk, *vv, *y, *yg;   /* k (1-w) and v per head; recurrence output; y sigmoid(g) */
    float *ckpt;               /* WKV states at chunk starts [B, H, chunks, N, N] */
};

ARWKV_API arwkv_result arwkv_tmix6_acts_create(arwkv_backend *be, const arwkv_tmix6_dims *d, arwkv_tmix6_acts **out) {
    *out = NULL;
    arwkv_tmix6_acts *a = (arwkv_tmix6_acts *)arwkv__calloc(1, sizeof *a);
    if (!a) return arwkv__fail(ARWKV_ERR_OUT_OF_MEMORY, "QRWKV6 activations: out of memory");
    a->be = be;
    a->d = *d;
    *out = a;
    return ARWKV_OK;
}

ARWKV_API void arwkv_tmix6_acts_free(arwkv_tmix6_acts *a) {
    if (!a) return;
    if (a->block) a->be->mem->free(a->be, a->block);
    arwkv__free(a);
}

/* Room for B sequences of T tokens (buffers are replaced, not kept, when they grow). */
ARWKV_PRIVATE arwkv_result arwkv__tmix6_reserve(arwkv_tmix6_acts *a, int B, int T) {
    const arwkv_tmix6_dims *d = &a->d;
    size_t rows = (size_t)B * (size_t)T, NN = (size_t)d->head_size * (size_t)d->head_size;
    size_t ckpt = (size_t)B * (size_t)d->n_heads * (size_t)arwkv__wkv6_chunks(T) * NN;
    if (a->block && rows <= a->rows_cap && ckpt <= a->ckpt_cap) return ARWKV_OK;
    if (rows > a->rows_cap) a->rows_cap = rows;
    if (ckpt > a->ckpt_cap) a->ckpt_cap = ckpt;
    rows = a->rows_cap;
    size_t C = (size_t)d->C, KV = (size_t)d->n_kv_heads * (size_t)d->head_size;
    size_t per_row = 21 * C + 5 * (size_t)d->rank_mix + 2 * KV + (size_t)d->rank_decay;
    if (a->block) a->be->mem->free(a->be, a->block);
    a->block = NULL;
    a->B = a->T = 0;
    arwkv_result r = a->be->mem->alloc(a->be, (per_row * rows + a->ckpt_cap) * sizeof(float), &a->block);
    if (r != ARWKV_OK) return arwkv__context(r, "QRWKV6 activations for %d x %d tokens", B, T);
    float *p = (float *)a->block;
#define ARWKV__TAKE(field, n) (a->field = p, p += (n))
    ARWKV__TAKE(xx, rows * C);
    ARWKV__TAKE(xxx, rows * C);
    ARWKV__TAKE(h1, rows * 5 * (size_t)d->rank_mix);
    ARWKV__TAKE(m, 5 * rows * C);
    ARWKV__TAKE(xc, 5 * rows * C);
    ARWKV__TAKE(r, rows * C);
    ARWKV__TAKE(k, rows * KV);
    ARWKV__TAKE(v, rows * KV);
    ARWKV__TAKE(g, rows * C);
    ARWKV__TAKE(hd, rows * (size_t)d->rank_decay);
    ARWKV__TAKE(z, rows * C);
    ARWKV__TAKE(w, rows * C);
    ARWKV__TAKE(kk, rows * C);
    ARWKV__TAKE(vv, rows * C);
    ARWKV__TAKE(y, rows * C);
    ARWKV__TAKE(yg, rows * C);
    ARWKV__TAKE(ckpt, a->ckpt_cap);
#undef ARWKV__TAKE
    return ARWKV_OK;
}

/* The layer really is a QRWKV6 layer of these dimensions (a mismatch would read out of bounds). */
ARWKV_PRIVATE arwkv_result arwkv__tmix6_check(const arwkv_layer *L, const arwkv_tmix6_dims *d, int B, int T) {
    if (B <= 0 || T <= 0) return arwkv__fail(ARWKV_ERR_INVALID_ARGUMENT, "QRWKV6 time mix: B = %d, T = %d", B, T);
    int64_t C = d->C, KV = (int64_t)d->n_kv_heads * d->head_size, Dm = d->rank_mix, Dd = d->rank_decay;
    if (d->n_heads <= 0 || d->n_kv_heads <= 0 || d->n_heads * d->head_size != d->C || d->n_heads % d->n_kv_heads != 0 ||
        Dm <= 0 || Dd <= 0)
        return arwkv__fail(ARWKV_ERR_INVALID_ARGUMENT, "QRWKV6 time mix: inconsistent dimensions (C %d, %d heads of %d, %d kv heads)",
                           d->C, d->n_heads, d->head_size, d->n_kv_heads);
    struct {
        const arwkv_param *p;
        int64_t rows, cols; /* matrices; vectors have rows = 0 and cols elements */
        int optional;
    } want[] = {
        {L->maa_x, 0, C, 0},     {L->maa_r, 0, C, 0},      {L->maa_k, 0, C, 0},     {L->maa_v, 0, C, 0},
        {L->maa_w, 0, C, 0},     {L->maa_g, 0, C, 0},      {L->time_decay, 0, C, 0}, {L->maa_w1, C, 5 * Dm, 0},
        {L->maa_w2, 5 * Dm, C, 0}, {L->decay_w1, C, Dd, 0}, {L->decay_w2, Dd, C, 0}, {L->q_w, C, C, 0},
        {L->k_w, KV, C, 0},      {L->v_w, KV, C, 0},       {L->o_w, C, C, 0},       {L->gate, C, C, 0},
        {L->q_b, 0, C, 1},       {L->k_b, 0, KV, 1},       {L->v_b, 0, KV, 1},      {L->o_b, 0, C, 1},
    };
    for (size_t i = 0; i < sizeof want / sizeof want[0]; i++) {
        const arwkv_param *p = want[i].p;
        if (!p) {
            if (want[i].optional) continue;
            return arwkv__fail(ARWKV_ERR_INVALID_ARGUMENT, "QRWKV6 time mix: the layer lacks parameter %d of the time mix "
                                                           "(is the model RWKV6Qwen2ForCausalLM?)", (int)i);
        }
        int64_t n = want[i].rows ? want[i].rows * want[i].cols : want[i].cols;
        int ok = p->numel == n && p->data != NULL;
        if (want[i].rows && p->ndim == 2) ok &= p->shape[0] == want[i].rows && p->shape[1] == want[i].cols;
        if (!want[i].rows) ok &= p->dtype == ARWKV_F32;
        if (!ok)
            return arwkv__fail(ARWKV_ERR_SHAPE, "QRWKV6 time mix: parameter %s (%lld elements, %s) does not fit C %d, %d heads of %d, "
                                                "%d kv heads, LoRA ranks %d/%d", p->name, (long long)p->numel,
                               arwkv_dtype_name(p->dtype), d->C, d->n_heads, d->head_size, d->n_kv_heads, d->rank_mix, d->rank_decay);
    }
    return ARWKV_OK;
}

ARWKV_PRIVATE float *arwkv__tmix6_grad(const arwkv_param *p) { return p && p->trainable ? p->grad : NULL; }
ARWKV_PRIVATE const float *arwkv__tmix6_f32(const arwkv_param *p) { return p ? (const float *)p->data : NULL; }

/* y[rows, out] = x[rows, in] . W^T (+ bias): an nn.Linear with W [out, in]. */
ARWKV_PRIVATE arwkv_result arwkv__tmix6_linear(arwkv_backend *be, float *y, const float *x, int rows, const arwkv_param *W,
                                               const arwkv_param *bias) {
    int out = (int)W->shape[0], in = (int)W->shape[1];
    return be->core->gemm(be, rows, out, in, x, in, 1, W->data, W->dtype, 1, in, y, out, 0, arwkv__tmix6_f32(bias));
}
/* Its backward: dx = dy . W (when dx), dW += dy^T . x, dbias += column sums of dy (when trainable). */
ARWKV_PRIVATE arwkv_result arwkv__tmix6_linear_backward(arwkv_backend *be, float *dx, const float *dy, const float *x, int rows,
                                                        const arwkv_param *W, const arwkv_param *bias) {
    int out = (int)W->shape[0], in = (int)W->shape[1];
    if (dx) ARWKV__TRY(be->core->gemm(be, rows, in, out, dy, out, 1, W->data, W->dtype, in, 1, dx, in, 0, NULL));
    float *gW = arwkv__tmix6_grad(W), *gb = arwkv__tmix6_grad(bias);
    if (gW) ARWKV__TRY(be->core->gemm(be, out, in, rows, dy, 1, out, x, ARWKV_F32, in, 1, gW, in, 1, NULL));
    if (gb) ARWKV__TRY(be->rwkv6->colsum(be, gb, dy, rows, out));
    return ARWKV_OK;
}
/* y[rows, out] = x[rows, in] . A with A [in, out] stored row-major (RWKV's LoRA matrices), at
   byte offset `offset` of the parameter (one slice of time_maa_w2). */
ARWKV_PRIVATE arwkv_result arwkv__tmix6_mm(arwkv_backend *be, float *y, ptrdiff_t ldy, const float *x, ptrdiff_t ldx, int rows,
                                           const arwkv_param *A, size_t slice, int in, int out) {
    const char *a = (const char *)A->data + slice * (size_t)in * (size_t)out * arwkv_dtype_size(A->dtype);
    return be->core->gemm(be, rows, out, in, x, ldx, 1, a, A->dtype, out, 1, y, ldy, 0, NULL);
}
/* Its backward: dx = dy . A^T, dA += x^T . dy (when trainable). */
ARWKV_PRIVATE arwkv_result arwkv__tmix6_mm_backward(arwkv_backend *be, float *dx, ptrdiff_t lddx, const float *dy, const float *x,
                                                    ptrdiff_t ldx, int rows, const arwkv_param *A, size_t slice, int in, int out) {
    size_t off = slice * (size_t)in * (size_t)out;
    const char *a = (const char *)A->data + off * arwkv_dtype_size(A->dtype);
    ARWKV__TRY(be->core->gemm(be, rows, in, out, dy, out, 1, a, A->dtype, 1, out, dx, lddx, 0, NULL));
    float *gA = arwkv__tmix6_grad(A);
    if (gA) ARWKV__TRY(be->core->gemm(be, in, out, rows, x, 1, ldx, dy, ARWKV_F32, out, 1, gA + off, out, 1, NULL));
    return ARWKV_OK;
}

ARWKV_PRIVATE arwkv_result arwkv__tmix6_fwd(arwkv_backend *be, const arwkv_layer *L, const arwkv_tmix6_dims *d, int B, int T,
                                            const float *x, float *shift_state, float *wkv_state, float *out, arwkv_tmix6_acts *a) {
    const arwkv_rwkv6_ops *op = be->rwkv6;
    int C = d->C, H = d->n_heads, N = d->head_size, KVH = d->n_kv_heads, Dm = d->rank_mix, Dd = d->rank_decay, rows = B * T;
    size_t RC = (size_t)rows * (size_t)C;
    /* token shift; the state handed on is the last input row of each sequence */
    ARWKV__TRY(op->shift_forward(be, a->xx, a->xxx, x, shift_state, arwkv__tmix6_f32(L->maa_x), B, T, C));
    for (int b = 0; shift_state && b < B; b++)
        ARWKV__TRY(be->mem->copy(be, shift_state + (size_t)b * C, x + ((size_t)b * T + (size_t)T - 1) * C, (size_t)C * sizeof(float)));
    /* the five data-dependent mixes: one shared first LoRA matrix, then a second matrix per branch */
    ARWKV__TRY(arwkv__tmix6_mm(be, a->h1, 5 * Dm, a->xxx, C, rows, L->maa_w1, 0, C, 5 * Dm));
    ARWKV__TRY(op->tanh_forward(be, a->h1, a->h1, (size_t)rows * 5 * (size_t)Dm));
    for (int c = 0; c < 5; c++) ARWKV__TRY(arwkv__tmix6_mm(be, a->m + (size_t)c * RC, C, a->h1 + (size_t)c * Dm, 5 * Dm, rows, L->maa_w2, (size_t)c, Dm, C));
    const float *maa[5] = {arwkv__tmix6_f32(L->maa_r), arwkv__tmix6_f32(L->maa_k), arwkv__tmix6_f32(L->maa_v),
                           arwkv__tmix6_f32(L->maa_w), arwkv__tmix6_f32(L->maa_g)};
    ARWKV__TRY(op->ddlerp_forward(be, a->xc, x, a->xx, maa, a->m, rows, C));
    const float *xr = a->xc, *xk = a->xc + RC, *xv = a->xc + 2 * RC, *xw = a->xc + 3 * RC, *xg = a->xc + 4 * RC;
    /* projections inherited from Qwen, and the gate */
    ARWKV__TRY(arwkv__tmix6_linear(be, a->r, xr, rows, L->q_w, L->q_b));
    ARWKV__TRY(arwkv__tmix6_linear(be, a->k, xk, rows, L->k_w, L->k_b));
    ARWKV__TRY(arwkv__tmix6_linear(be, a->v, xv, rows, L->v_w, L->v_b));
    ARWKV__TRY(arwkv__tmix6_linear(be, a->g, xg, rows, L->gate, NULL));
    /* decay */
    ARWKV__TRY(arwkv__tmix6_mm(be, a->hd, Dd, xw, C, rows, L->decay_w1, 0, C, Dd));
    ARWKV__TRY(op->tanh_forward(be, a->hd, a->hd, (size_t)rows * (size_t)Dd));
    ARWKV__TRY(arwkv__tmix6_mm(be, a->z, C, a->hd, Dd, rows, L->decay_w2, 0, Dd, C));
    ARWKV__TRY(op->decay_forward(be, a->w, a->z, arwkv__tmix6_f32(L->time_decay), rows, C));
    /* the recurrence over heads, keys repeated from their kv head and scaled by (1 - w) */
    ARWKV__TRY(op->kv_expand_forward(be, a->kk, a->vv, a->k, a->v, a->w, rows, H, KVH, N));
    ARWKV__TRY(op->wkv6_forward(be, a->y, wkv_state, a->ckpt, a->r, a->kk, a->vv, a->w, wkv_state, B, T, H, N, 1.0f / sqrtf((float)N)));
    ARWKV__TRY(op->gate_forward(be, a->yg, a->y, a->g, RC));
    return arwkv__tmix6_linear(be, out, a->yg, rows, L->o_w, L->o_b);
}

ARWKV_API arwkv_result arwkv_tmix6_forward(arwkv_backend *be, const arwkv_layer *layer, const arwkv_tmix6_dims *d, int B, int T,
                                           const float *x, float *shift_state, float *wkv_state, float *out, arwkv_tmix6_acts *acts) {
    if (!be->rwkv6) return arwkv__fail(ARWKV_ERR_UNSUPPORTED, "backend %s has no RWKV-6 ops", be->name);
    ARWKV__TRY(arwkv__tmix6_check(layer, d, B, T));
    arwkv_tmix6_acts *a = acts, *own = NULL;
    if (!a) ARWKV__TRY(arwkv_tmix6_acts_create(be, d, &own));
    if (own) a = own;
    arwkv_result r = memcmp(&a->d, d, sizeof *d) == 0 ? ARWKV_OK
                                                    : arwkv__fail(ARWKV_ERR_INVALID_ARGUMENT, "QRWKV6 activations were made for other dimensions");
    if (r == ARWKV_OK) r = arwkv__tmix6_reserve(a, B, T);
    if (r == ARWKV_OK) r = arwkv__tmix6_fwd(be, layer, d, B, T, x, shift_state, wkv_state, out, a);
    a->B = r == ARWKV_OK ? B : 0;
    a->T = r == ARWKV_OK ? T : 0;
    arwkv_tmix6_acts_free(own);
    return r;
}

ARWKV_API arwkv_result arwkv_tmix6_backward(arwkv_backend *be, const arwkv_layer *L, const arwkv_tmix6_dims *d, int B, int T,
                                            const float *x, arwkv_tmix6_acts *a, const float *dout, float *dx) {
    if (!be->rwkv6) return arwkv__fail(ARWKV_ERR_UNSUPPORTED, "backend %s has no RWKV-6 ops", be->name);
    ARWKV__TRY(arwkv__tmix6_check(L, d, B, T));
    if (!a || a->B != B || a->T != T || memcmp(&a->d, d, sizeof *d) != 0)
        return arwkv__fail(ARWKV_ERR_INVALID_ARGUMENT, "QRWKV6 backward needs the activations of a forward over the same %d x %d tokens", B, T);
    (void)x; /* taken so both time mixes are called alike; this one kept its mixed inputs in acts */
    const arwkv_rwkv6_ops *op = be->rwkv6;
    int C = d->C, H = d->n_heads, N = d->head_size, KVH = d->n_kv_heads, Dm = d->rank_mix, Dd = d->rank_decay, rows = B * T;
    size_t RC = (size_t)rows * (size_t)C, RKV = (size_t)rows * (size_t)KVH * (size_t)N;
    /* workspace: dyg dy dg dr dkk dvv dw dxx dxxx dx [rows, C]; dxc dm [5, rows, C]; dk dv [rows, KV];
       dhd [rows, Dd]; dh1 [rows, 5 Dm] */
    size_t total = 20 * RC + 2 * RKV + (size_t)rows * ((size_t)Dd + 5 * (size_t)Dm);
    void *ws;
    ARWKV__TRY(be->mem->alloc(be, total * sizeof(float), &ws));
    float *p = (float *)ws;
    float *dyg = p, *dy = p + RC, *dg = p + 2 * RC, *dr = p + 3 * RC, *dkk = p + 4 * RC, *dvv = p + 5 * RC, *dw = p + 6 * RC;
    float *dxx = p + 7 * RC, *dxxx = p + 8 * RC, *dx_own = p + 9 * RC, *dxc = p + 10 * RC, *dm = p + 15 * RC;
    float *dk = p + 20 * RC, *dv = dk + RKV, *dhd = dv + RKV, *dh1 = dhd + (size_t)rows * Dd;
    float *dxo = dx ? dx : dx_own;
    const float *xr = a->xc, *xk = a->xc + RC, *xv = a->xc + 2 * RC, *xw = a->xc + 3 * RC, *xg = a->xc + 4 * RC;
    const float *maa[5] = {arwkv__tmix6_f32(L->maa_r), arwkv__tmix6_f32(L->maa_k), arwkv__tmix6_f32(L->maa_v),
                           arwkv__tmix6_f32(L->maa_w), arwkv__tmix6_f32(L->maa_g)};
    float *dmaa[5] = {arwkv__tmix6_grad(L->maa_r), arwkv__tmix6_grad(L->maa_k), arwkv__tmix6_grad(L->maa_v),
                      arwkv__tmix6_grad(L->maa_w), arwkv__tmix6_grad(L->maa_g)};
    arwkv_result r = ARWKV_OK;
#define ARWKV__STEP(call) \
    if (r == ARWKV_OK) r = (call)
    /* out = o_proj(y sigmoid(g)) */
    ARWKV__STEP(arwkv__tmix6_linear_backward(be, dyg, dout, a->yg, rows, L->o_w, L->o_b));
    ARWKV__STEP(op->gate_backward(be, dy, dg, dyg, a->y, a->g, RC));
    ARWKV__STEP(arwkv__tmix6_linear_backward(be, dxc + 4 * RC, dg, xg, rows, L->gate, NULL));
    /* recurrence, then the kv heads and the (1 - w) scaling of the keys */
    ARWKV__STEP(op->wkv6_backward(be, dr, dkk, dvv, dw, dy, a->r, a->kk, a->vv, a->w, a->ckpt, B, T, H, N, 1.0f / sqrtf((float)N)));
    ARWKV__STEP(op->kv_expand_backward(be, dk, dv, dw, dkk, dvv, a->k, a->w, rows, H, KVH, N));
    /* decay (dz overwrites dw) and its LoRA */
    ARWKV__STEP(op->decay_backward(be, dw, arwkv__tmix6_grad(L->time_decay), dw, a->z, a->w, rows, C));
    ARWKV__STEP(arwkv__tmix6_mm_backward(be, dhd, Dd, dw, a->hd, Dd, rows, L->decay_w2, 0, Dd, C));
    ARWKV__STEP(op->tanh_backward(be, dhd, dhd, a->hd, (size_t)rows * (size_t)Dd));
    ARWKV__STEP(arwkv__tmix6_mm_backward(be, dxc + 3 * RC, C, dhd, xw, C, rows, L->decay_w1, 0, C, Dd));
    /* q/k/v projections */
    ARWKV__STEP(arwkv__tmix6_linear_backward(be, dxc, dr, xr, rows, L->q_w, L->q_b));
    ARWKV__STEP(arwkv__tmix6_linear_backward(be, dxc + RC, dk, xk, rows, L->k_w, L->k_b));
    ARWKV__STEP(arwkv__tmix6_linear_backward(be, dxc + 2 * RC, dv, xv, rows, L->v_w, L->v_b));
    /* the five mixes and their LoRA */
    ARWKV__STEP(op->ddlerp_backward(be, dxo, dxx, dm, dmaa, dxc, a->xx, maa, a->m, rows, C));
    for (int c = 0; c < 5; c++)
        ARWKV__STEP(arwkv__tmix6_mm_backward(be, dh1 + (size_t)c * Dm, 5 * Dm, dm + (size_t)c * RC, a->h1 + (size_t)c * Dm, 5 * Dm,
                                             rows, L->maa_w2, (size_t)c, Dm, C));
    ARWKV__STEP(op->tanh_backward(be, dh1, dh1, a->h1, (size_t)rows * 5 * (size_t)Dm));
    ARWKV__STEP(arwkv__tmix6_mm_backward(be, dxxx, C, dh1, a->xxx, C, rows, L->maa_w1, 0, C, 5 * Dm));
    /* token shift */
    ARWKV__STEP(op->shift_backward(be, dxo, arwkv__tmix6_grad(L->maa_x), dxx, dxxx, a->xx, arwkv__tmix6_f32(L->maa_x), B, T, C));
#undef ARWKV__STEP
    be->mem->free(be, ws);
    return r;
}

/* @@qrwkv6-impl@@ */


/* ============================================================================================
   8. Training
   ============================================================================================ */
/* ---- Options and schedule ------------------------------------------------------------------------- */

ARWKV_API void arwkv_train_options_default(arwkv_train_options *o, int stage) {
    memset(o, 0, sizeof *o);
    o->stage = stage;
    o->seq_len = 2048;
    o->batch = 2;
    o->steps = 1000;
    o->lr = 1e-4f;
    o->lr_final = 1e-5f;
    o->warmup_steps = 50;
    o->schedule = ARWKV_SCHEDULE_EXPONENTIAL;
    o->beta1 = 0.9f;
    o->beta2 = 0.95f;
    o->eps = 1e-8f;
    o->weight_decay = 0.1f;
    o->clip = 1.0f;
    o->align = ARWKV_ALIGN_L2;
    o->temperature = 1.0f;
    o->kl_weight = 1.0f;
    o->ce_weight = 0.0f;
    o->freeze_mlp = 0;
    o->seed = 1;
}

ARWKV_API float arwkv_lr_at(const arwkv_train_options *o, int step) {
    if (o->warmup_steps > 0 && step <= o->warmup_steps) /* 0.01 -> 1 linearly, as upstream */
        return o->lr * (0.01f + 0.99f * (float)step / (float)o->warmup_steps);
    int span = o->steps - o->warmup_steps;
    double progress = span > 0 ? (double)(step - o->warmup_steps) / span : 1.0;
    if (progress > 1) progress = 1;
    switch (o->schedule) {
    case ARWKV_SCHEDULE_COSINE: return (float)(o->lr_final + 0.5 * (o->lr - o->lr_final) * (1 + cos(3.141592653589793 * progress)));
    case ARWKV_SCHEDULE_EXPONENTIAL:
        if (o->lr_final <= 0 || o->lr <= 0) return o->lr;
        return (float)(o->lr * pow((double)o->lr_final / o->lr, progress));
    default: return o->lr;
    }
}

/* ---- Trainable parameters ----------------------------------------------------------------------------
   Which parameters a stage trains (upstream's choices): stage 1 only the time mix; stages 2 and 3
   everything, or everything but the MLPs. A trainable parameter becomes fp32 (its master copy)
   with a gradient and two AdamW moments; the others get no extra memory at all. */

ARWKV_PRIVATE int arwkv__is_trained(const arwkv_param *p, int stage, int freeze_mlp) {
    /* the student's new blocks: everything under self_attn except projections inherited from Qwen.
       QRWKV6: stage 1 trains time_maa_*, time_decay* and gate.weight; q/k/v/o_proj (and their
       biases) stay frozen, as in recursal's stage 1. The gate is trained too (recursal left it at
       its zero init, a constant 1/2): with q/k/v/o frozen it is the only per-channel output scale. */
    int is_mix = strstr(p->name, ".self_attn.") && !strstr(p->name, "_proj.");
    if (stage == 1) return is_mix != 0;
    if (freeze_mlp && strstr(p->name, ".mlp.")) return 0;
    return 1;
}

ARWKV_PRIVATE arwkv_result arwkv__make_trainable(arwkv_model *m, int stage, int freeze_mlp) {
    arwkv_backend *be = m->be;
    for (int i = 0; i < m->n_params; i++) {
        arwkv_param *p = &m->params[i];
        int want = arwkv__is_trained(p, stage, freeze_mlp);
        if (!want) {
            be->mem->free(be, p->grad);
            be->mem->free(be, p->adam_m);
            be->mem->free(be, p->adam_v);
            p->grad = p->adam_m = p->adam_v = NULL;
            p->trainable = 0;
            continue;
        }
        if (p->dtype != ARWKV_F32 || !p->owns_data) { /* widen (or un-map) into an fp32 master copy */
            size_t n = (size_t)p->numel;
            float *host = (float *)arwkv__malloc(n * sizeof(float) + 1);
            if (!host) return arwkv__fail(ARWKV_ERR_OUT_OF_MEMORY, "parameter %s: out of memory", p->name);
            arwkv_result r = arwkv_param_read(m, p, host, p->numel);
            if (r == ARWKV_OK) r = arwkv__param_alloc(m, p, ARWKV_F32);
            if (r == ARWKV_OK) r = arwkv__param_upload(m, p, host, ARWKV_F32);
            arwkv__free(host);
            ARWKV__TRY(r);
        }
        size_t bytes = (size_t)p->numel * sizeof(float);
        if (!p->grad) ARWKV__TRY(be->mem->alloc(be, bytes, (void **)&p->grad));
        if (!p->adam_m) ARWKV__TRY(be->mem->alloc(be, bytes, (void **)&p->adam_m));
        if (!p->adam_v) ARWKV__TRY(be->mem->alloc(be, bytes, (void **)&p->adam_v));
        p->trainable = 1;
    }
    return ARWKV_OK;
}

ARWKV_PRIVATE arwkv_result arwkv__zero_grads(arwkv_model *m) {
    for (int i = 0; i < m->n_params; i++)
        if (m->params[i].grad) ARWKV__TRY(m->be->mem->zero(m->be, m->params[i].grad, (size_t)m->params[i].numel * sizeof(float)));
    return ARWKV_OK;
}

/* Global gradient norm, clipping, and one AdamW step over every trainable parameter. A gradient
   that is not finite stops everything before any weight changes, naming the parameter. */
ARWKV_PRIVATE arwkv_result arwkv__optimizer_step(arwkv_model *m, const arwkv_train_options *o, int step, float lr, float *grad_norm) {
    arwkv_backend *be = m->be;
    double total = 0;
    for (int i = 0; i < m->n_params; i++) {
        arwkv_param *p = &m->params[i];
        if (!p->trainable) continue;
        float ss;
        ARWKV__TRY(be->optim->sumsq(be, p->grad, (size_t)p->numel, &ss));
        if (!isfinite(ss))
            return arwkv__fail(ARWKV_ERR_NUMERIC, "step %d: the gradient of '%s' is not finite (NaN or Inf); weights were not updated", step, p->name);
        total += ss;
    }
    double norm = sqrt(total);
    *grad_norm = (float)norm;
    float scale = (o->clip > 0 && norm > o->clip) ? (float)(o->clip / norm) : 1.0f;
    for (int i = 0; i < m->n_params; i++) {
        arwkv_param *p = &m->params[i];
        if (!p->trainable) continue;
        if (scale != 1.0f) ARWKV__TRY(be->optim->scale(be, p->grad, scale, (size_t)p->numel));
        ARWKV__TRY(be->optim->adamw(be, (float *)p->data, p->grad, p->adam_m, p->adam_v, (size_t)p->numel, lr, o->beta1, o->beta2, o->eps,
                                    p->decay ? o->weight_decay : 0.0f, step));
    }
    return ARWKV_OK;
}

/* ---- Data -------------------------------------------------------------------------------------------- */

ARWKV_API void arwkv_dataset_init(arwkv_dataset *d) { memset(d, 0, sizeof *d); }

ARWKV_API void arwkv_dataset_free(arwkv_dataset *d) {
    arwkv__free(d->tokens);
    arwkv__free(d->mask);
    arwkv__free(d->order);
    memset(d, 0, sizeof *d);
}

ARWKV_API arwkv_result arwkv_dataset_append(arwkv_dataset *d, const int32_t *ids, const uint8_t *mask, size_t n) {
    if (n == 0) return ARWKV_OK;
    if ((mask != NULL) != (d->mask != NULL) && d->n_tokens > 0)
        return arwkv__fail(ARWKV_ERR_INVALID_ARGUMENT, "dataset: documents with and without target masks cannot be mixed");
    if (d->n_tokens + n > d->cap_tokens) {
        size_t cap = d->cap_tokens ? d->cap_tokens : 1 << 16;
        while (cap < d->n_tokens + n) cap *= 2;
        int32_t *t = (int32_t *)arwkv__realloc(d->tokens, cap * sizeof(int32_t));
        if (!t) return arwkv__fail(ARWKV_ERR_OUT_OF_MEMORY, "dataset: out of memory at %zu tokens", d->n_tokens);
        d->tokens = t;
        if (mask) {
            uint8_t *mk = (uint8_t *)arwkv__realloc(d->mask, cap);
            if (!mk) return arwkv__fail(ARWKV_ERR_OUT_OF_MEMORY, "dataset: out of memory at %zu tokens", d->n_tokens);
            d->mask = mk;
        }
        d->cap_tokens = cap;
    }
    memcpy(d->tokens + d->n_tokens, ids, n * sizeof(int32_t));
    if (mask) memcpy(d->mask + d->n_tokens, mask, n);
    d->n_tokens += n;
    return ARWKV_OK;
}

ARWKV_PRIVATE void arwkv__dataset_shuffle(arwkv_dataset *d) {
    arwkv__rng rng = {d->seed * 0x9E3779B97F4A7C15ull ^ (d->epoch + 1) * 0xD1B54A32D192ED03ull};
    for (size_t i = 0; i < d->n_seqs; i++) d->order[i] = (uint32_t)i;
    for (size_t i = d->n_seqs; i > 1; i--) { /* Fisher-Yates */
        size_t j = (size_t)(arwkv__rng_u64(&rng) % i);
        uint32_t t = d->order[i - 1];
        d->order[i - 1] = d->order[j];
        d->order[j] = t;
    }
    d->pos = 0;
}

ARWKV_API arwkv_result arwkv_dataset_pack(arwkv_dataset *d, int seq_len, uint64_t seed) {
    if (seq_len < 1) return arwkv__fail(ARWKV_ERR_INVALID_ARGUMENT, "sequence length must be at least 1");
    if (d->n_tokens < (size_t)seq_len + 1)
        return arwkv__fail(ARWKV_ERR_INVALID_ARGUMENT, "dataset has %zu tokens, fewer than one sequence of %d (+1 target)", d->n_tokens, seq_len);
    d->seq_len = seq_len;
    d->n_seqs = (d->n_tokens - 1) / (size_t)seq_len;
    if (d->n_seqs > UINT32_MAX) d->n_seqs = UINT32_MAX;
    arwkv__free(d->order);
    d->order = (uint32_t *)arwkv__malloc(d->n_seqs * sizeof(uint32_t));
    if (!d->order) return arwkv__fail(ARWKV_ERR_OUT_OF_MEMORY, "dataset: out of memory");
    d->seed = seed;
    d->epoch = 0;
    arwkv__dataset_shuffle(d);
    return ARWKV_OK;
}

ARWKV_API void arwkv_dataset_window(const arwkv_dataset *d, size_t i, int32_t *inputs, int32_t *targets) {
    size_t start = i * (size_t)d->seq_len;
    for (int t = 0; t < d->seq_len; t++) {
        inputs[t] = d->tokens[start + (size_t)t];
        if (targets) {
            int is_target = !d->mask || d->mask[start + (size_t)t + 1];
            targets[t] = is_target ? d->tokens[start + (size_t)t + 1] : -1;
        }
    }
}

ARWKV_API void arwkv_dataset_next(arwkv_dataset *d, int32_t *inputs, int32_t *targets) {
    if (d->pos >= d->n_seqs) {
        d->epoch++;
        arwkv__dataset_shuffle(d);
    }
    arwkv_dataset_window(d, d->order[d->pos++], inputs, targets);
}

ARWKV_API uint64_t arwkv_dataset_hash(const arwkv_dataset *d) {
    uint64_t h = arwkv__hash((const char *)d->tokens, d->n_tokens * sizeof(int32_t));
    if (d->mask) h ^= arwkv__hash((const char *)d->mask, d->n_tokens) * 31;
    return h;
}


/* ---- Checkpoints ---------------------------------------------------------------------------------------
   A checkpoint is a directory OUT/checkpoints/step-NNNNNNNN holding the student (Hugging Face layout,
   trainable parameters in fp32, frozen ones in their stored type) and trainer.safetensors (the AdamW
   moments, plus the step, data position and options in its metadata). It is complete before the
   small file OUT/checkpoints/latest is atomically replaced to name it, so a crash at any moment
   leaves the previous checkpoint in force. Older checkpoints are then removed. */

typedef struct arwkv__train_state {
    int step;
    uint64_t epoch, pos, seed, data_hash;
    int stage, seq_len, batch;
} arwkv__train_state;

/* Remove a checkpoint directory: only the files a checkpoint holds (.safetensors, .json), then the
   directory itself; anything else a person put there is left alone (and keeps the directory). */
ARWKV_PRIVATE void arwkv__remove_checkpoint_dir(const char *path) {
#if !defined(_WIN32)
    DIR *d = opendir(path);
    if (!d) return;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        size_t n = strlen(e->d_name);
        int ours = (n > 12 && strcmp(e->d_name + n - 12, ".safetensors") == 0) || (n > 5 && strcmp(e->d_name + n - 5, ".json") == 0);
        if (!ours) continue;
        char *f = arwkv__path_join(path, e->d_name);
        if (f) remove(f);
        arwkv__free(f);
    }
    closedir(d);
    rmdir(path);
#else
    (void)path;
#endif
}

ARWKV_PRIVATE arwkv_result arwkv__checkpoint_save(arwkv_model *student, const arwkv__train_state *s, const char *out_dir,
                                                  const char *tokenizer_dir) {
    char sub[64], *ckdir = arwkv__path_join(out_dir, "checkpoints"), *dir = NULL, *old = NULL;
    arwkv_result r = ckdir ? arwkv__mkdir(out_dir) : arwkv__fail(ARWKV_ERR_OUT_OF_MEMORY, "out of memory");
    if (r == ARWKV_OK) r = arwkv__mkdir(ckdir);
    snprintf(sub, sizeof sub, "step-%08d", s->step);
    if (r == ARWKV_OK) dir = arwkv__path_join(ckdir, sub);
    if (r == ARWKV_OK && !dir) r = arwkv__fail(ARWKV_ERR_OUT_OF_MEMORY, "out of memory");
    if (r == ARWKV_OK) r = arwkv_model_save(student, dir, ARWKV_DTYPE_UNKNOWN, 0, tokenizer_dir);
    /* optimizer moments and the trainer's position */
    arwkv_st_entry *e = NULL;
    float **host = NULL;
    int n = 0;
    if (r == ARWKV_OK) {
        e = (arwkv_st_entry *)arwkv__calloc(2 * (size_t)student->n_params + 1, sizeof *e);
        host = (float **)arwkv__calloc(2 * (size_t)student->n_params + 1, sizeof(float *));
        char (*names)[112] = (char (*)[112])arwkv__calloc(2 * (size_t)student->n_params + 1, 112);
        if (!e || !host || !names) r = arwkv__fail(ARWKV_ERR_OUT_OF_MEMORY, "out of memory");
        for (int i = 0; i < student->n_params && r == ARWKV_OK; i++) {
            arwkv_param *p = &student->params[i];
            if (!p->trainable) continue;
            for (int k = 0; k < 2 && r == ARWKV_OK; k++) {
                host[n] = (float *)arwkv__malloc((size_t)p->numel * sizeof(float) + 1);
                if (!host[n]) {
                    r = arwkv__fail(ARWKV_ERR_OUT_OF_MEMORY, "out of memory");
                    break;
                }
                r = student->be->mem->download(student->be, host[n], k ? p->adam_v : p->adam_m, (size_t)p->numel * sizeof(float));
                snprintf(names[n], 112, "%s.%s", k ? "adam_v" : "adam_m", p->name);
                e[n].name = names[n];
                e[n].dtype = ARWKV_F32;
                e[n].ndim = 1;
                e[n].shape[0] = p->numel;
                e[n].data = host[n];
                n++;
            }
        }
        char v[8][32];
        snprintf(v[0], 32, "%d", s->step);
        snprintf(v[1], 32, "%llu", (unsigned long long)s->epoch);
        snprintf(v[2], 32, "%llu", (unsigned long long)s->pos);
        snprintf(v[3], 32, "%llu", (unsigned long long)s->seed);
        snprintf(v[4], 32, "%016llx", (unsigned long long)s->data_hash);
        snprintf(v[5], 32, "%d", s->stage);
        snprintf(v[6], 32, "%d", s->seq_len);
        snprintf(v[7], 32, "%d", s->batch);
        const char *meta[16] = {"step", v[0], "epoch", v[1], "data_pos", v[2], "seed", v[3],
                                "data_hash", v[4], "stage", v[5], "seq_len", v[6], "batch", v[7]};
        char *path = dir ? arwkv__path_join(dir, "trainer.safetensors") : NULL;
        if (r == ARWKV_OK) r = path ? arwkv_st_write(path, e, n, meta, 8) : arwkv__fail(ARWKV_ERR_OUT_OF_MEMORY, "out of memory");
        arwkv__free(path);
        arwkv__free(names);
    }
    for (int i = 0; host && i < n; i++) arwkv__free(host[i]);
    arwkv__free(host);
    arwkv__free(e);
    /* switch "latest" to the new checkpoint, then drop the one it replaced */
    char *latest = ckdir ? arwkv__path_join(ckdir, "latest") : NULL;
    if (r == ARWKV_OK && latest) {
        char *prev = NULL;
        size_t plen;
        if (arwkv__file_exists(latest) && arwkv__read_file(latest, &prev, &plen) == ARWKV_OK) {
            while (plen && (prev[plen - 1] == '\n' || prev[plen - 1] == ' ')) prev[--plen] = 0;
            if (strcmp(prev, sub) != 0 && !strchr(prev, '/') && prev[0]) old = arwkv__path_join(ckdir, prev);
        }
        arwkv__free(prev);
        char line[80];
        snprintf(line, sizeof line, "%s\n", sub);
        r = arwkv__write_text(latest, line, strlen(line));
        if (r == ARWKV_OK && old) arwkv__remove_checkpoint_dir(old);
    }
    arwkv__free(latest);
    arwkv__free(old);
    arwkv__free(dir);
    arwkv__free(ckdir);
    return r;
}

/* The directory of the latest checkpoint under out_dir, or NULL (and ARWKV_ERR_NOT_FOUND). */
ARWKV_PRIVATE arwkv_result arwkv__checkpoint_latest(const char *out_dir, char **dir_out) {
    *dir_out = NULL;
    char *ckdir = arwkv__path_join(out_dir, "checkpoints");
    char *latest = ckdir ? arwkv__path_join(ckdir, "latest") : NULL;
    char *text = NULL;
    size_t len;
    arwkv_result r = latest ? ARWKV_OK : arwkv__fail(ARWKV_ERR_OUT_OF_MEMORY, "out of memory");
    if (r == ARWKV_OK && !arwkv__file_exists(latest))
        r = arwkv__fail(ARWKV_ERR_NOT_FOUND, "%s: no checkpoint to resume from (start without --resume)", latest);
    if (r == ARWKV_OK) r = arwkv__read_file(latest, &text, &len);
    if (r == ARWKV_OK) {
        while (len && (text[len - 1] == '\n' || text[len - 1] == ' ')) text[--len] = 0;
        if (!len || strchr(text, '/')) r = arwkv__fail(ARWKV_ERR_FORMAT, "%s: does not name a checkpoint", latest);
        else *dir_out = arwkv__path_join(ckdir, text);
    }
    arwkv__free(text);
    arwkv__free(latest);
    arwkv__free(ckdir);
    return r;
}

ARWKV_PRIVATE uint64_t arwkv__meta_u64(const arwkv_safetensors *st, const char *key, int *ok) {
    const char *v = arwkv_st_metadata(st, key);
    if (!v) {
        *ok = 0;
        return 0;
    }
    char *end;
    unsigned long long x = strtoull(v, &end, key[0] == 'd' && key[1] == 'a' && key[5] == 'h' ? 16 : 10);
    if (*end) *ok = 0;
    return (uint64_t)x;
}

/* Restore the optimizer moments and the trainer state of a checkpoint into a loaded student that has
   already been made trainable for the same stage. */
ARWKV_PRIVATE arwkv_result arwkv__checkpoint_load_state(arwkv_model *student, const char *dir, arwkv__train_state *s) {
    char *path = arwkv__path_join(dir, "trainer.safetensors");
    arwkv_safetensors *st = NULL;
    arwkv_result r = path ? arwkv_st_open(path, &st) : arwkv__fail(ARWKV_ERR_OUT_OF_MEMORY, "out of memory");
    if (r == ARWKV_OK) {
        int ok = 1;
        s->step = (int)arwkv__meta_u64(st, "step", &ok);
        s->epoch = arwkv__meta_u64(st, "epoch", &ok);
        s->pos = arwkv__meta_u64(st, "data_pos", &ok);
        s->seed = arwkv__meta_u64(st, "seed", &ok);
        s->data_hash = arwkv__meta_u64(st, "data_hash", &ok);
        s->stage = (int)arwkv__meta_u64(st, "stage", &ok);
        s->seq_len = (int)arwkv__meta_u64(st, "seq_len", &ok);
        s->batch = (int)arwkv__meta_u64(st, "batch", &ok);
        if (!ok) r = arwkv__fail(ARWKV_ERR_FORMAT, "%s: trainer metadata is incomplete or malformed", path);
    }
    for (int i = 0; i < student->n_params && r == ARWKV_OK; i++) {
        arwkv_param *p = &student->params[i];
        if (!p->trainable) continue;
        for (int k = 0; k < 2 && r == ARWKV_OK; k++) {
            char name[112];
            snprintf(name, sizeof name, "%s.%s", k ? "adam_v" : "adam_m", p->name);
            const arwkv_tensor_info *t;
            r = arwkv_st_get(st, name, &t);
            if (r == ARWKV_OK && (t->dtype != ARWKV_F32 || t->numel != p->numel))
                r = arwkv__fail(ARWKV_ERR_SHAPE, "%s: '%s' does not match the parameter (%lld elements)", path, name, (long long)p->numel);
            if (r == ARWKV_OK) r = student->be->mem->upload(student->be, k ? p->adam_v : p->adam_m, t->data, t->nbytes);
        }
    }
    arwkv_st_close(st);
    arwkv__free(path);
    return r;
}

/* @@train-impl@@ */

/* ============================================================================================
   9. Generation
   ============================================================================================ */
/* @@generate-impl@@ */

/* ============================================================================================
   The CPU backend: every op table of the sections above
   ============================================================================================ */

static void arwkv__cpu_destroy(arwkv_backend *be) {
    arwkv_pool_destroy(be->pool);
    arwkv__free(be);
}

ARWKV_API arwkv_result arwkv_backend_cpu(int n_threads, arwkv_backend **out) {
    *out = NULL;
    arwkv_backend *be = (arwkv_backend *)arwkv__calloc(1, sizeof *be);
    if (!be) return arwkv__fail(ARWKV_ERR_OUT_OF_MEMORY, "backend: out of memory");
    arwkv_result r = arwkv_pool_create(n_threads, &be->pool);
    if (r != ARWKV_OK) {
        arwkv__free(be);
        return r;
    }
    snprintf(be->name, sizeof be->name, "cpu (%d thread%s)", arwkv_pool_size(be->pool), arwkv_pool_size(be->pool) > 1 ? "s" : "");
    be->mem = &arwkv__cpu_mem_ops;
    be->core = &arwkv__cpu_core_ops;
#ifdef ARWKV__HAVE_CPU_QWEN_OPS
    be->qwen = &arwkv__cpu_qwen_ops;
#endif
#ifdef ARWKV__HAVE_CPU_RWKV7_OPS
    be->rwkv7 = &arwkv__cpu_rwkv7_ops;
#endif
#ifdef ARWKV__HAVE_CPU_RWKV6_OPS
    be->rwkv6 = &arwkv__cpu_rwkv6_ops;
#endif
#ifdef ARWKV__HAVE_CPU_LOSS_OPS
    be->loss = &arwkv__cpu_loss_ops;
#endif
#ifdef ARWKV__HAVE_CPU_OPTIM_OPS
    be->optim = &arwkv__cpu_optim_ops;
#endif
    be->destroy = arwkv__cpu_destroy;
    *out = be;
    return ARWKV_OK;
}

ARWKV_API void arwkv_backend_destroy(arwkv_backend *be) {
    if (be && be->destroy) be->destroy(be);
}

ARWKV_API const char *arwkv_backend_name(const arwkv_backend *be) { return be ? be->name : "none"; }

#ifdef __cplusplus
}
#endif
#endif /* ARWKV_IMPLEMENTATION_ONCE */
#endif /* ARWKV_IMPLEMENTATION */

/*
MIT License

Copyright (c) 2026 the arwkv authors

Permission is hereby granted, free of charge, to any person obtaining a copy of this software and
associated documentation files (the "Software"), to deal in the Software without restriction,
including without limitation the rights to use, copy, modify, merge, publish, distribute,
sublicense, and/or sell copies of the Software, and to permit persons to whom the Software is
furnished to do so, subject to the following conditions:

The above copyright notice and this permission notice shall be included in all copies or
substantial portions of the Software.

THE SOFTWARE IS PROVIDED "AS IS", WITHOUT WARRANTY OF ANY KIND, EXPRESS OR IMPLIED, INCLUDING BUT
NOT LIMITED TO THE WARRANTIES OF MERCHANTABILITY, FITNESS FOR A PARTICULAR PURPOSE AND
NONINFRINGEMENT. IN NO EVENT SHALL THE AUTHORS OR COPYRIGHT HOLDERS BE LIABLE FOR ANY CLAIM, DAMAGES
OR OTHER LIABILITY, WHETHER IN AN ACTION OF CONTRACT, TORT OR OTHERWISE, ARISING FROM, OUT OF OR IN
CONNECTION WITH THE SOFTWARE OR THE USE OR OTHER DEALINGS IN THE SOFTWARE.
*/
