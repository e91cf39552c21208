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


/* ---- RWKV-7 time mix (ARWKV): the op table ------------------------------------------------------
   The time mix that replaces each Qwen attention, split into the pieces a backend implements. In
   data-flow order (M = B*T token rows, C = H*N channels, heads of N; every [M,C] array row-major):

     lerp      xx = shift(x) - x;  x_m = x + xx*mu_m for m in r,w,k,v,a(,g)     -> xmix [n_mix][M][C]
     (gemm)    r,k,v = x_m W^T;  LoRA products for w, a, v, g
     act       tanh / sigmoid inside the w and g LoRAs
     prepare   decay, ICLR a, value residual, removal key kk, key mix       -> WKV7 inputs
     wkv7      the recurrence over time, one N x N fp32 state per head
     finish    group norm (optional), bonus r.k.r_k * v, gate                -> o, then out = o W_o^T

   Each forward has its backward beside it. Backward ops write (=) the gradients of their inputs
   unless documented as adding (+=); they always add into parameter gradients, whose pointers may
   be NULL (frozen parameter: skipped). Every pointer is backend memory except the small host
   arrays of pointers (mu, dmu). */

/* Activations inside the LoRAs. */
enum { ARWKV_ACT_TANH = 1, ARWKV_ACT_SIGMOID = 2 };

/* The WKV7 state is checkpointed every ARWKV_WKV7_CHUNK tokens for the backward pass. */
#define ARWKV_WKV7_CHUNK 16

struct arwkv_rwkv7_ops {
    /* xmix[m][row][c] = x + (prev - x)*mu[m][c], prev = the previous token of the same sequence,
       or shift_in[b] before t = 0 (NULL: zeros). shift_out[b] (NULL: not kept) receives the last
       token x[b,T-1]; it may be the same array as shift_in. mu: host array of n_mix vectors [C]. */
    arwkv_result (*lerp_forward)(arwkv_backend *be, float *xmix, const float *x, const float *shift_in, float *shift_out,
                                 const float *const *mu, int n_mix, int B, int T, int C);
    /* dx = d/dx (may be NULL). dshift [B,C] (may be NULL): in, the gradient of shift_out (added to
       the last token's); out, the gradient of shift_in. dmu: host array of n_mix gradients (+=,
       entries may be NULL). */
    arwkv_result (*lerp_backward)(arwkv_backend *be, float *dx, float *dshift, float *const *dmu, const float *dxmix,
                                  const float *x, const float *shift_in, const float *const *mu, int n_mix, int B, int T, int C);
    /* h = f(h) in place, f = tanh or sigmoid (ARWKV_ACT_*). */
    arwkv_result (*act_forward)(arwkv_backend *be, float *h, size_t n, int kind);
    /* dh *= f'(.) in place, from the activated values h. */
    arwkv_result (*act_backward)(arwkv_backend *be, float *dh, const float *h, size_t n, int kind);
    /* From the projections and LoRA outputs of M rows to the WKV7 inputs:
         decay = exp(-e^-0.5 * sigmoid(w0 + w_lora))      in (0.545, 1)
         a     = sigmoid(a0 + a_lora)                     the in-context learning rate
         v     = v_in                                     first layer (v_first = v_in if not NULL)
               = v_in + (v_first - v_in) * sigmoid(v0 + v_lora)           other layers
         kk    = normalize_per_head(k_in * k_k)           L2, eps 1e-12
         k     = k_in * (1 + (a - 1) * k_a)
         wkv_a = -kk,  wkv_b = kk * a */
    arwkv_result (*prepare_forward)(arwkv_backend *be, int M, int C, int N, int first_layer, const float *k_in, const float *v_in,
                                    const float *w_lora, const float *a_lora, const float *v_lora, float *v_first,
                                    const float *w0, const float *a0, const float *v0, const float *k_k, const float *k_a,
                                    float *decay, float *k, float *v, float *wkv_a, float *wkv_b);
    /* Gradients of the inputs above from those of the outputs (d_decay .. d_wkv_b). dv_first: first
       layer, read (the gradient of v_first from later layers, NULL: none); other layers, added to
       (NULL: v_first is held constant). */
    arwkv_result (*prepare_backward)(arwkv_backend *be, int M, int C, int N, int first_layer, const float *d_decay,
                                     const float *dk, const float *dv, const float *d_wkv_a, const float *d_wkv_b,
                                     const float *k_in, const float *v_in, const float *w_lora, const float *a_lora,
                                     const float *v_lora, const float *v_first, const float *w0, const float *a0,
                                     const float *v0, const float *k_k, const float *k_a, float *dk_in, float *dv_in,
                                     float *dw_lora, float *da_lora, float *dv_lora, float *dv_first, float *dw0, float *da0,
                                     float *dv0, float *dk_k, float *dk_a);
    /* The recurrence, per sequence b and head h (S is N x N, row i = value, column j = key):
         sa = S a_t;  S = S diag(decay_t) + sa b_t^T + v_t k_t^T;  y_t = S r_t
       Inputs are [B,T,H*N]. state [B,H,N,N]: in, the state before t = 0 (NULL: zeros); out, the
       state after the last token. ckpt (NULL: not saved) [B,H,ceil(T/CHUNK),N,N] receives the
       state before tokens 0, CHUNK, 2 CHUNK, ... for the backward pass. */
    arwkv_result (*wkv7_forward)(arwkv_backend *be, int B, int T, int H, int N, const float *r, const float *decay,
                                 const float *k, const float *v, const float *a, const float *b, float *y, float *state,
                                 float *ckpt);
    /* Exact gradients from dy and the checkpoints (states inside a chunk are recomputed). dr, dk,
       dv are ADDED to (in the time mix they also feed the bonus term); d_decay, da, db are
       written. dstate (NULL: none): in, the gradient of the final state; out, that of the initial
       state. */
    arwkv_result (*wkv7_backward)(arwkv_backend *be, int B, int T, int H, int N, const float *r, const float *decay,
                                  const float *k, const float *v, const float *a, const float *b, const float *dy,
                                  const float *ckpt, float *dstate, float *dr, float *d_decay, float *dk, float *dv,
                                  float *da, float *db);
    /* o = (GN(y) or y) + (sum_j r_j k_j r_k[h][j]) v per head, times g if g is not NULL.
       GN is a per-head group norm with ln_w, ln_b (NULL: none) and eps gn_eps. */
    arwkv_result (*finish_forward)(arwkv_backend *be, int M, int C, int N, const float *y, const float *r, const float *k,
                                   const float *v, const float *r_k, const float *ln_w, const float *ln_b, float gn_eps,
                                   const float *g, float *o);
    /* dy, dr, dk, dv, dg (if g) written; dr_k, dln_w, dln_b added to. */
    arwkv_result (*finish_backward)(arwkv_backend *be, int M, int C, int N, const float *d_o, const float *y, const float *r,
                                    const float *k, const float *v, const float *r_k, const float *ln_w, const float *ln_b,
                                    float gn_eps, const float *g, float *dy, float *dr, float *dk, float *dv, float *dg,
                                    float *dr_k, float *dln_w, float *dln_b);
};

/* Sizes of one ARWKV-7 time mix, from the config and the LoRA ranks found in the checkpoint. */
typedef struct arwkv_tmix7_dims {
    int C, H, N;                        /* width, heads, head size */
    int rank_w, rank_a, rank_v, rank_g; /* LoRA ranks (rank_g 0 without the gate) */
    int has_gate, has_group_norm;
    float gn_eps;                       /* 1e-5 * head_size_divisor^2 */
} arwkv_tmix7_dims;

/* @@rwkv7-ops-api@@ */


/* @@rwkv6-ops-api@@ */


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


/* @@qrwkv6-api@@ */


/* ============================================================================================
   Training
   ============================================================================================ */
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


/* ---- RWKV-7 time mix: CPU ops --------------------------------------------------------------------
   The ops of arwkv_rwkv7_ops on host memory. Determinism: every task owns its outputs, and a sum
   over token rows (a parameter gradient) is taken by one task in row order, so any number of
   threads gives the same bits. Inner loops over a head's channels go eight lanes at a time with
   fixed partial sums, which the compiler turns into vector code without reassociating anything. */
#define ARWKV__HAVE_CPU_RWKV7_OPS

#define ARWKV__R7_MAX_N 256 /* largest head size (per-head vectors live on the stack) */
#define ARWKV__R7_CBLOCK 64 /* channels per task of the loops that run down the time axis */

/* e^-0.5: the decay is exp(-e^-0.5 * sigmoid(z)), the same as exp(-exp(-softplus(-z) - 0.5)). */
#define ARWKV__R7_DECAY_SCALE 0.60653065971263342f

static inline float arwkv__r7_sigmoid(float x) { return 1.0f / (1.0f + expf(-x)); }

/* a*b + c in one rounding where the CPU has FMA (the vectorizer turns it into vfmadd). */
#if defined(__FMA__) || defined(__FP_FAST_FMAF)
#define ARWKV__R7_FMA(a, b, c) fmaf((a), (b), (c))
#else
#define ARWKV__R7_FMA(a, b, c) ((a) * (b) + (c))
#endif

/* The eight partial sums of the lane loops below, added in a fixed order. */
static inline float arwkv__r7_sum8(const float *acc) {
    return ((acc[0] + acc[4]) + (acc[2] + acc[6])) + ((acc[1] + acc[5]) + (acc[3] + acc[7]));
}

/* sum_j x[j] y[j] over n (a multiple of 8). */
static inline float arwkv__r7_dot(const float *ARWKV__RESTRICT x, const float *ARWKV__RESTRICT y, int n) {
    float acc[8] = {0, 0, 0, 0, 0, 0, 0, 0};
    for (int j = 0; j < n; j += 8)
        for (int l = 0; l < 8; l++) acc[l] = ARWKV__R7_FMA(x[j + l], y[j + l], acc[l]);
    return arwkv__r7_sum8(acc);
}

/* ---- Token shift and the lerps ----------------------------------------------------------------
   x_m = x + (prev - x) mu_m. A task owns a block of channels of one sequence (forward) or of all
   sequences (backward, which sums the mu gradients over every token), and walks down time. */
typedef struct arwkv__r7_lerp_ctx {
    float *xmix, *shift_out, *dx, *dshift;
    float *const *dmu;
    const float *x, *shift_in, *dxmix;
    const float *const *mu;
    int n_mix, B, T, C, n_blocks;
} arwkv__r7_lerp_ctx;

static void arwkv__r7_lerp_fwd_range(void *ctx, size_t begin, size_t end) {
    arwkv__r7_lerp_ctx *c = (arwkv__r7_lerp_ctx *)ctx;
    size_t MC = (size_t)c->B * c->T * c->C;
    for (size_t u = begin; u < end; u++) {
        int b = (int)(u / (size_t)c->n_blocks), c0 = (int)(u % (size_t)c->n_blocks) * ARWKV__R7_CBLOCK;
        int c1 = c0 + ARWKV__R7_CBLOCK < c->C ? c0 + ARWKV__R7_CBLOCK : c->C;
        for (int t = 0; t < c->T; t++) {
            size_t row = ((size_t)b * c->T + t) * c->C;
            const float *x = c->x + row;
            const float *prev = t > 0 ? x - c->C : c->shift_in ? c->shift_in + (size_t)b * c->C : NULL;
            for (int i = c0; i < c1; i++) {
                float xx = (prev ? prev[i] : 0.0f) - x[i];
                for (int m = 0; m < c->n_mix; m++) c->xmix[m * MC + row + i] = x[i] + xx * c->mu[m][i];
            }
        }
        if (c->shift_out) /* after every read of shift_in: the two may be one array */
            for (int i = c0; i < c1; i++) c->shift_out[(size_t)b * c->C + i] = c->x[((size_t)b * c->T + c->T - 1) * c->C + i];
    }
}

static arwkv_result arwkv__cpu_r7_lerp_forward(arwkv_backend *be, float *xmix, const float *x, const float *shift_in,
                                               float *shift_out, const float *const *mu, int n_mix, int B, int T, int C) {
    if (n_mix < 1 || n_mix > 6) return arwkv__fail(ARWKV_ERR_INVALID_ARGUMENT, "time-mix lerp: %d mixes (1 to 6)", n_mix);
    arwkv__r7_lerp_ctx c;
    memset(&c, 0, sizeof c);
    c.xmix = xmix, c.x = x, c.shift_in = shift_in, c.shift_out = shift_out, c.mu = mu, c.n_mix = n_mix;
    c.B = B, c.T = T, c.C = C, c.n_blocks = (C + ARWKV__R7_CBLOCK - 1) / ARWKV__R7_CBLOCK;
    size_t units = (size_t)B * c.n_blocks;
    arwkv__parallel_range(be->pool, units, T >= 64 ? 1 : (size_t)(64 / T), arwkv__r7_lerp_fwd_range, &c);
    return ARWKV_OK;
}

/* x_t feeds its own mixes with weight (1 - mu) and those of token t+1 with weight mu; the carry
   holds the latter, walking backwards (at t = T-1 it starts from the gradient of the final shift). */
static void arwkv__r7_lerp_bwd_range(void *ctx, size_t begin, size_t end) {
    arwkv__r7_lerp_ctx *c = (arwkv__r7_lerp_ctx *)ctx;
    size_t MC = (size_t)c->B * c->T * c->C;
    for (size_t u = begin; u < end; u++) {
        int c0 = (int)u * ARWKV__R7_CBLOCK, c1 = c0 + ARWKV__R7_CBLOCK < c->C ? c0 + ARWKV__R7_CBLOCK : c->C;
        double gmu[6][ARWKV__R7_CBLOCK];
        float carry[ARWKV__R7_CBLOCK];
        memset(gmu, 0, sizeof gmu);
        for (int b = 0; b < c->B; b++) {
            for (int i = c0; i < c1; i++) carry[i - c0] = c->dshift ? c->dshift[(size_t)b * c->C + i] : 0.0f;
            for (int t = c->T - 1; t >= 0; t--) {
                size_t row = ((size_t)b * c->T + t) * c->C;
                const float *x = c->x + row;
                const float *prev = t > 0 ? x - c->C : c->shift_in ? c->shift_in + (size_t)b * c->C : NULL;
                for (int i = c0; i < c1; i++) {
                    float xx = (prev ? prev[i] : 0.0f) - x[i], g = carry[i - c0], g_prev = 0.0f;
                    for (int m = 0; m < c->n_mix; m++) {
                        float dm = c->dxmix[m * MC + row + i], mu = c->mu[m][i];
                        g += dm * (1.0f - mu);
                        g_prev += dm * mu;
                        gmu[m][i - c0] += (double)dm * xx;
                    }
                    if (c->dx) c->dx[row + i] = g;
                    carry[i - c0] = g_prev;
                }
            }
            if (c->dshift)
                for (int i = c0; i < c1; i++) c->dshift[(size_t)b * c->C + i] = carry[i - c0];
        }
        for (int m = 0; m < c->n_mix; m++)
            if (c->dmu[m])
                for (int i = c0; i < c1; i++) c->dmu[m][i] += (float)gmu[m][i - c0];
    }
}

static arwkv_result arwkv__cpu_r7_lerp_backward(arwkv_backend *be, float *dx, float *dshift, float *const *dmu, const float *dxmix,
                                                const float *x, const float *shift_in, const float *const *mu, int n_mix, int B,
                                                int T, int C) {
    if (n_mix < 1 || n_mix > 6) return arwkv__fail(ARWKV_ERR_INVALID_ARGUMENT, "time-mix lerp: %d mixes (1 to 6)", n_mix);
    arwkv__r7_lerp_ctx c;
    memset(&c, 0, sizeof c);
    c.dx = dx, c.dshift = dshift, c.dmu = dmu, c.dxmix = dxmix, c.x = x, c.shift_in = shift_in, c.mu = mu, c.n_mix = n_mix;
    c.B = B, c.T = T, c.C = C, c.n_blocks = (C + ARWKV__R7_CBLOCK - 1) / ARWKV__R7_CBLOCK;
    arwkv__parallel_range(be->pool, (size_t)c.n_blocks, 1, arwkv__r7_lerp_bwd_range, &c);
    return ARWKV_OK;
}

/* ---- LoRA activations -------------------------------------------------------------------------- */
typedef struct arwkv__r7_act_ctx {
    float *h, *dh;
    const float *h_in;
    int kind;
} arwkv__r7_act_ctx;

static void arwkv__r7_act_fwd_range(void *ctx, size_t b, size_t e) {
    arwkv__r7_act_ctx *c = (arwkv__r7_act_ctx *)ctx;
    if (c->kind == ARWKV_ACT_TANH)
        for (size_t i = b; i < e; i++) c->h[i] = tanhf(c->h[i]);
    else
        for (size_t i = b; i < e; i++) c->h[i] = arwkv__r7_sigmoid(c->h[i]);
}
static arwkv_result arwkv__cpu_r7_act_forward(arwkv_backend *be, float *h, size_t n, int kind) {
    if (kind != ARWKV_ACT_TANH && kind != ARWKV_ACT_SIGMOID) return arwkv__fail(ARWKV_ERR_INVALID_ARGUMENT, "unknown activation %d", kind);
    arwkv__r7_act_ctx c = {h, NULL, NULL, kind};
    arwkv__parallel_range(be->pool, n, 4096, arwkv__r7_act_fwd_range, &c);
    return ARWKV_OK;
}
/* tanh' = 1 - tanh^2 and sigmoid' = s (1 - s), both from the activated value. */
static void arwkv__r7_act_bwd_range(void *ctx, size_t b, size_t e) {
    arwkv__r7_act_ctx *c = (arwkv__r7_act_ctx *)ctx;
    if (c->kind == ARWKV_ACT_TANH)
        for (size_t i = b; i < e; i++) c->dh[i] *= 1.0f - c->h_in[i] * c->h_in[i];
    else
        for (size_t i = b; i < e; i++) c->dh[i] *= c->h_in[i] * (1.0f - c->h_in[i]);
}
static arwkv_result arwkv__cpu_r7_act_backward(arwkv_backend *be, float *dh, const float *h, size_t n, int kind) {
    if (kind != ARWKV_ACT_TANH && kind != ARWKV_ACT_SIGMOID) return arwkv__fail(ARWKV_ERR_INVALID_ARGUMENT, "unknown activation %d", kind);
    arwkv__r7_act_ctx c = {NULL, dh, h, kind};
    arwkv__parallel_range(be->pool, n, 4096, arwkv__r7_act_bwd_range, &c);
    return ARWKV_OK;
}

/* ---- Prepare: from projections to the WKV7 inputs ----------------------------------------------
   Forward tasks own (row, head) pieces; the backward's tasks own heads (all rows), because the
   gradients of w0, a0, v0, k_k and k_a are sums over rows. The L2 norm of the removal key follows
   torch's F.normalize: kk / max(|kk|, 1e-12), so below eps the gradient is plain 1/eps. */
typedef struct arwkv__r7_prep_ctx {
    int M, C, N, H, first_layer;
    const float *k_in, *v_in, *w_lora, *a_lora, *v_lora, *w0, *a0, *v0, *k_k, *k_a;
    float *v_first, *decay, *k, *v, *wkv_a, *wkv_b;
    const float *d_decay, *dk, *dv, *d_wkv_a, *d_wkv_b;
    float *dk_in, *dv_in, *dw_lora, *da_lora, *dv_lora, *dv_first, *dw0, *da0, *dv0, *dk_k, *dk_a;
} arwkv__r7_prep_ctx;

#define ARWKV__R7_NORM_EPS 1e-12f

/* kk = k_in * k_k over one head; returns max(|kk|, eps). */
static float arwkv__r7_removal_key(float *kk, const float *k_in, const float *k_k, int N) {
    double ss = 0;
    for (int j = 0; j < N; j++) {
        kk[j] = k_in[j] * k_k[j];
        ss += (double)kk[j] * kk[j];
    }
    float norm = (float)sqrt(ss);
    return norm > ARWKV__R7_NORM_EPS ? norm : ARWKV__R7_NORM_EPS;
}

static void arwkv__r7_prep_fwd_range(void *ctx, size_t begin, size_t end) {
    arwkv__r7_prep_ctx *c = (arwkv__r7_prep_ctx *)ctx;
    int N = c->N;
    float kk[ARWKV__R7_MAX_N];
    for (size_t u = begin; u < end; u++) {
        size_t row = u / (size_t)c->H;
        int h0 = (int)(u % (size_t)c->H) * N;
        size_t o = row * (size_t)c->C + (size_t)h0;
        float norm = arwkv__r7_removal_key(kk, c->k_in + o, c->k_k + h0, N);
        for (int j = 0; j < N; j++) {
            size_t i = o + (size_t)j;
            int ch = h0 + j;
            float a = arwkv__r7_sigmoid(c->a0[ch] + c->a_lora[i]), kkn = kk[j] / norm;
            c->decay[i] = expf(-ARWKV__R7_DECAY_SCALE * arwkv__r7_sigmoid(c->w0[ch] + c->w_lora[i]));
            c->k[i] = c->k_in[i] * (1.0f + (a - 1.0f) * c->k_a[ch]);
            c->wkv_a[i] = -kkn;
            c->wkv_b[i] = kkn * a;
            if (c->first_layer) {
                c->v[i] = c->v_in[i];
                if (c->v_first) c->v_first[i] = c->v_in[i];
            } else {
                float s = arwkv__r7_sigmoid(c->v0[ch] + c->v_lora[i]);
                c->v[i] = c->v_in[i] + (c->v_first[i] - c->v_in[i]) * s;
            }
        }
    }
}

static arwkv_result arwkv__cpu_r7_prepare_forward(arwkv_backend *be, int M, int C, int N, int first_layer, const float *k_in,
                                                  const float *v_in, const float *w_lora, const float *a_lora, const float *v_lora,
                                                  float *v_first, const float *w0, const float *a0, const float *v0,
                                                  const float *k_k, const float *k_a, float *decay, float *k, float *v,
                                                  float *wkv_a, float *wkv_b) {
    if (N <= 0 || N > ARWKV__R7_MAX_N || C % N != 0)
        return arwkv__fail(ARWKV_ERR_INVALID_ARGUMENT, "time-mix prepare: head size %d with width %d", N, C);
    arwkv__r7_prep_ctx c;
    memset(&c, 0, sizeof c);
    c.M = M, c.C = C, c.N = N, c.H = C / N, c.first_layer = first_layer;
    c.k_in = k_in, c.v_in = v_in, c.w_lora = w_lora, c.a_lora = a_lora, c.v_lora = v_lora, c.v_first = v_first;
    c.w0 = w0, c.a0 = a0, c.v0 = v0, c.k_k = k_k, c.k_a = k_a;
    c.decay = decay, c.k = k, c.v = v, c.wkv_a = wkv_a, c.wkv_b = wkv_b;
    arwkv__parallel_range(be->pool, (size_t)M * c.H, 16, arwkv__r7_prep_fwd_range, &c);
    return ARWKV_OK;
}

static void arwkv__r7_prep_bwd_range(void *ctx, size_t begin, size_t end) {
    arwkv__r7_prep_ctx *c = (arwkv__r7_prep_ctx *)ctx;
    int N = c->N;
    float kkn[ARWKV__R7_MAX_N], a[ARWKV__R7_MAX_N], dkkn[ARWKV__R7_MAX_N];
    double g_w0[ARWKV__R7_MAX_N], g_a0[ARWKV__R7_MAX_N], g_v0[ARWKV__R7_MAX_N], g_kk[ARWKV__R7_MAX_N], g_ka[ARWKV__R7_MAX_N];
    for (size_t h = begin; h < end; h++) {
        int h0 = (int)h * N;
        for (int j = 0; j < N; j++) g_w0[j] = g_a0[j] = g_v0[j] = g_kk[j] = g_ka[j] = 0;
        for (int row = 0; row < c->M; row++) {
            size_t o = (size_t)row * c->C + (size_t)h0;
            float norm = arwkv__r7_removal_key(kkn, c->k_in + o, c->k_k + h0, N);
            int clamped = !(norm > ARWKV__R7_NORM_EPS);
            /* wkv_a = -kkn and wkv_b = kkn a both depend on the unit key kkn = kk / norm */
            double dot = 0;
            for (int j = 0; j < N; j++) {
                kkn[j] /= norm;
                a[j] = arwkv__r7_sigmoid(c->a0[h0 + j] + c->a_lora[o + j]);
                dkkn[j] = -c->d_wkv_a[o + j] + c->d_wkv_b[o + j] * a[j];
                dot += (double)dkkn[j] * kkn[j];
            }
            for (int j = 0; j < N; j++) {
                size_t i = o + (size_t)j;
                int ch = h0 + j;
                float sw = arwkv__r7_sigmoid(c->w0[ch] + c->w_lora[i]);
                float decay = expf(-ARWKV__R7_DECAY_SCALE * sw);
                float dz = c->d_decay[i] * decay * -ARWKV__R7_DECAY_SCALE * sw * (1.0f - sw);
                c->dw_lora[i] = dz;
                g_w0[j] += dz;

                float da = c->d_wkv_b[i] * kkn[j] + c->dk[i] * c->k_in[i] * c->k_a[ch];
                float da_pre = da * a[j] * (1.0f - a[j]);
                c->da_lora[i] = da_pre;
                g_a0[j] += da_pre;
                g_ka[j] += (double)c->dk[i] * c->k_in[i] * (a[j] - 1.0f);

                /* d(kk/norm)/dkk projects out the unit direction; a clamped norm is a constant */
                float dkk = clamped ? dkkn[j] / norm : (dkkn[j] - kkn[j] * (float)dot) / norm;
                c->dk_in[i] = c->dk[i] * (1.0f + (a[j] - 1.0f) * c->k_a[ch]) + dkk * c->k_k[ch];
                g_kk[j] += (double)dkk * c->k_in[i];

                if (c->first_layer) {
                    c->dv_in[i] = c->dv[i] + (c->dv_first ? c->dv_first[i] : 0.0f);
                } else {
                    float s = arwkv__r7_sigmoid(c->v0[ch] + c->v_lora[i]), dv = c->dv[i];
                    float ds = dv * (c->v_first[i] - c->v_in[i]) * s * (1.0f - s);
                    c->dv_in[i] = dv * (1.0f - s);
                    if (c->dv_first) c->dv_first[i] += dv * s;
                    c->dv_lora[i] = ds;
                    g_v0[j] += ds;
                }
            }
        }
        for (int j = 0; j < N; j++) {
            if (c->dw0) c->dw0[h0 + j] += (float)g_w0[j];
            if (c->da0) c->da0[h0 + j] += (float)g_a0[j];
            if (c->dv0 && !c->first_layer) c->dv0[h0 + j] += (float)g_v0[j];
            if (c->dk_k) c->dk_k[h0 + j] += (float)g_kk[j];
            if (c->dk_a) c->dk_a[h0 + j] += (float)g_ka[j];
        }
    }
}

static arwkv_result arwkv__cpu_r7_prepare_backward(arwkv_backend *be, int M, int C, int N, int first_layer, const float *d_decay,
                                                   const float *dk, const float *dv, const float *d_wkv_a, const float *d_wkv_b,
                                                   const float *k_in, const float *v_in, const float *w_lora, const float *a_lora,
                                                   const float *v_lora, const float *v_first, const float *w0, const float *a0,
                                                   const float *v0, const float *k_k, const float *k_a, float *dk_in, float *dv_in,
                                                   float *dw_lora, float *da_lora, float *dv_lora, float *dv_first, float *dw0,
                                                   float *da0, float *dv0, float *dk_k, float *dk_a) {
    if (N <= 0 || N > ARWKV__R7_MAX_N || C % N != 0)
        return arwkv__fail(ARWKV_ERR_INVALID_ARGUMENT, "time-mix prepare: head size %d with width %d", N, C);
    arwkv__r7_prep_ctx c;
    memset(&c, 0, sizeof c);
    c.M = M, c.C = C, c.N = N, c.H = C / N, c.first_layer = first_layer;
    c.d_decay = d_decay, c.dk = dk, c.dv = dv, c.d_wkv_a = d_wkv_a, c.d_wkv_b = d_wkv_b;
    c.k_in = k_in, c.v_in = v_in, c.w_lora = w_lora, c.a_lora = a_lora, c.v_lora = v_lora, c.v_first = (float *)v_first;
    c.w0 = w0, c.a0 = a0, c.v0 = v0, c.k_k = k_k, c.k_a = k_a;
    c.dk_in = dk_in, c.dv_in = dv_in, c.dw_lora = dw_lora, c.da_lora = da_lora, c.dv_lora = dv_lora, c.dv_first = dv_first;
    c.dw0 = dw0, c.da0 = da0, c.dv0 = dv0, c.dk_k = dk_k, c.dk_a = dk_a;
    arwkv__parallel_range(be->pool, (size_t)c.H, 1, arwkv__r7_prep_bwd_range, &c);
    return ARWKV_OK;
}

/* ---- WKV7: the recurrence ------------------------------------------------------------------------
   One task per (sequence, head) holds the N x N fp32 state (16 KB for N = 64) and walks the
   tokens. The forward saves the state at the start of every chunk of ARWKV_WKV7_CHUNK tokens.
   The backward walks the chunks from the last: it recomputes the chunk's states from its
   checkpoint (the same arithmetic as the forward, so the same bits; no division by the decay as
   in back-stepping kernels, so no error growth), then walks the chunk's tokens backwards with the
   state gradient G = dL/dS:
       G += dy r^T                              (y = S r reads the updated state)
       dr = S^T dy,  dv = G k,  dk = G^T v,  db = G^T sa,  d_decay_j = sum_i G_ij S'_ij
       dsa = G b,  da = S'^T dsa,  G <- G diag(decay) + dsa a^T     (S' = the state before the token)
   A tail shorter than a chunk is just a shorter chunk. */
typedef struct arwkv__r7_wkv_ctx {
    int B, T, H, N;
    const float *r, *decay, *k, *v, *a, *b, *dy, *ckpt_in;
    float *y, *state, *ckpt, *dstate, *dr, *d_decay, *dk, *dv, *da, *db;
    arwkv_pool *pool;
    int oom;
} arwkv__r7_wkv_ctx;

/* One token of one head, in place: sa = S a; S = S diag(d) + sa b^T + v k^T; y = S r (y, sa may be
   NULL). The loops over j go eight lanes at a time (N is a multiple of 8) so that they vectorize. */
static void arwkv__wkv7_step(float *ARWKV__RESTRICT S, int N, const float *ARWKV__RESTRICT r, const float *ARWKV__RESTRICT d,
                             const float *ARWKV__RESTRICT k, const float *ARWKV__RESTRICT v, const float *ARWKV__RESTRICT a,
                             const float *ARWKV__RESTRICT b, float *ARWKV__RESTRICT y, float *ARWKV__RESTRICT sa) {
    for (int i = 0; i < N; i++) {
        float *ARWKV__RESTRICT s = S + (size_t)i * N;
        float s_a = arwkv__r7_dot(s, a, N), vi = v[i], acc[8] = {0, 0, 0, 0, 0, 0, 0, 0};
        for (int j = 0; j < N; j += 8)
            for (int l = 0; l < 8; l++) {
                float next = ARWKV__R7_FMA(s[j + l], d[j + l], ARWKV__R7_FMA(s_a, b[j + l], vi * k[j + l]));
                s[j + l] = next;
                acc[l] = ARWKV__R7_FMA(next, r[j + l], acc[l]);
            }
        if (y) y[i] = arwkv__r7_sum8(acc);
        if (sa) sa[i] = s_a;
    }
}

/* A token of one head costs about a microsecond: waking the workers for a recurrent step would
   cost more than it saves, so small calls run on the caller's thread (task scratch still comes
   from the pool, as thread 0's). */
static arwkv_pool *arwkv__r7_wkv_pool(arwkv_backend *be, int B, int T, int H) {
    return (int64_t)B * T * H >= 16 ? be->pool : NULL;
}

static void arwkv__r7_wkv_fwd_task(void *ctx, int task, int thread) {
    arwkv__r7_wkv_ctx *c = (arwkv__r7_wkv_ctx *)ctx;
    int N = c->N, H = c->H, bi = task / H, h = task % H, n_chunks = (c->T + ARWKV_WKV7_CHUNK - 1) / ARWKV_WKV7_CHUNK;
    size_t NN = (size_t)N * N, C = (size_t)H * N;
    float *S = c->state ? c->state + (size_t)task * NN : (float *)arwkv__scratch(c->pool, thread, NN * sizeof(float));
    if (!S) {
        __atomic_store_n(&c->oom, 1, __ATOMIC_RELAXED);
        return;
    }
    if (!c->state) memset(S, 0, NN * sizeof(float));
    for (int t = 0; t < c->T; t++) {
        if (c->ckpt && t % ARWKV_WKV7_CHUNK == 0)
            memcpy(c->ckpt + ((size_t)task * n_chunks + t / ARWKV_WKV7_CHUNK) * NN, S, NN * sizeof(float));
        size_t o = ((size_t)bi * c->T + t) * C + (size_t)h * N;
        arwkv__wkv7_step(S, N, c->r + o, c->decay + o, c->k + o, c->v + o, c->a + o, c->b + o, c->y + o, NULL);
    }
}

static arwkv_result arwkv__cpu_r7_wkv7_forward(arwkv_backend *be, int B, int T, int H, int N, const float *r, const float *decay,
                                               const float *k, const float *v, const float *a, const float *b, float *y,
                                               float *state, float *ckpt) {
    if (N <= 0 || N % 8 != 0 || N > ARWKV__R7_MAX_N)
        return arwkv__fail(ARWKV_ERR_UNSUPPORTED, "WKV7: head size %d (must be a multiple of 8, at most %d)", N, ARWKV__R7_MAX_N);
    arwkv__r7_wkv_ctx c;
    memset(&c, 0, sizeof c);
    c.B = B, c.T = T, c.H = H, c.N = N, c.r = r, c.decay = decay, c.k = k, c.v = v, c.a = a, c.b = b;
    c.y = y, c.state = state, c.ckpt = ckpt, c.pool = be->pool;
    arwkv_pool_run(arwkv__r7_wkv_pool(be, B, T, H), B * H, arwkv__r7_wkv_fwd_task, &c);
    if (c.oom) return arwkv__fail(ARWKV_ERR_OUT_OF_MEMORY, "WKV7 forward: out of scratch memory");
    return ARWKV_OK;
}

/* Row i of one backward step: g (row i of G) gains dy_i r^T, the column sums dr, dk, db, dd, da
   gain row i's terms, then g becomes row i of the previous token's G. Returns dv_i. */
static float arwkv__wkv7_step_back_row(int N, float *ARWKV__RESTRICT g, const float *ARWKV__RESTRICT before,
                                       const float *ARWKV__RESTRICT after, float dyi, float vi, float sai,
                                       const float *ARWKV__RESTRICT r, const float *ARWKV__RESTRICT d,
                                       const float *ARWKV__RESTRICT k, const float *ARWKV__RESTRICT a,
                                       const float *ARWKV__RESTRICT b, float *ARWKV__RESTRICT dr, float *ARWKV__RESTRICT dk,
                                       float *ARWKV__RESTRICT db, float *ARWKV__RESTRICT dd, float *ARWKV__RESTRICT da) {
    float acc_v[8] = {0, 0, 0, 0, 0, 0, 0, 0}, acc_sa[8] = {0, 0, 0, 0, 0, 0, 0, 0};
    for (int j = 0; j < N; j += 8)
        for (int q = 0; q < 8; q++) {
            float gj = ARWKV__R7_FMA(dyi, r[j + q], g[j + q]);
            g[j + q] = gj;
            dr[j + q] = ARWKV__R7_FMA(after[j + q], dyi, dr[j + q]);
            dk[j + q] = ARWKV__R7_FMA(gj, vi, dk[j + q]);
            db[j + q] = ARWKV__R7_FMA(gj, sai, db[j + q]);
            dd[j + q] = ARWKV__R7_FMA(gj, before[j + q], dd[j + q]);
            acc_v[q] = ARWKV__R7_FMA(gj, k[j + q], acc_v[q]);
            acc_sa[q] = ARWKV__R7_FMA(gj, b[j + q], acc_sa[q]);
        }
    float dsa = arwkv__r7_sum8(acc_sa);
    for (int j = 0; j < N; j += 8)
        for (int q = 0; q < 8; q++) {
            da[j + q] = ARWKV__R7_FMA(before[j + q], dsa, da[j + q]);
            g[j + q] = ARWKV__R7_FMA(g[j + q], d[j + q], dsa * a[j + q]);
        }
    return arwkv__r7_sum8(acc_v);
}

static void arwkv__r7_wkv_bwd_task(void *ctx, int task, int thread) {
    arwkv__r7_wkv_ctx *c = (arwkv__r7_wkv_ctx *)ctx;
    int N = c->N, H = c->H, bi = task / H, h = task % H, n_chunks = (c->T + ARWKV_WKV7_CHUNK - 1) / ARWKV_WKV7_CHUNK;
    size_t NN = (size_t)N * N, C = (size_t)H * N;
    /* scratch: G, the chunk's states S[0..CHUNK] (S[l] = before its token l), sa per token */
    float *G = (float *)arwkv__scratch(c->pool, thread, ((ARWKV_WKV7_CHUNK + 2) * NN + (size_t)ARWKV_WKV7_CHUNK * N) * sizeof(float));
    if (!G) {
        __atomic_store_n(&c->oom, 1, __ATOMIC_RELAXED);
        return;
    }
    float *states = G + NN, *sa = states + (ARWKV_WKV7_CHUNK + 1) * NN;
    float dk[ARWKV__R7_MAX_N], db[ARWKV__R7_MAX_N], dd[ARWKV__R7_MAX_N], dr[ARWKV__R7_MAX_N], da[ARWKV__R7_MAX_N];
    if (c->dstate) memcpy(G, c->dstate + (size_t)task * NN, NN * sizeof(float));
    else memset(G, 0, NN * sizeof(float));
    for (int chunk = n_chunks - 1; chunk >= 0; chunk--) {
        int t0 = chunk * ARWKV_WKV7_CHUNK, len = c->T - t0 < ARWKV_WKV7_CHUNK ? c->T - t0 : ARWKV_WKV7_CHUNK;
        memcpy(states, c->ckpt_in + ((size_t)task * n_chunks + chunk) * NN, NN * sizeof(float));
        for (int l = 0; l < len; l++) {
            size_t o = ((size_t)bi * c->T + t0 + l) * C + (size_t)h * N;
            memcpy(states + (l + 1) * NN, states + l * NN, NN * sizeof(float));
            arwkv__wkv7_step(states + (l + 1) * NN, N, c->r + o, c->decay + o, c->k + o, c->v + o, c->a + o, c->b + o, NULL,
                             sa + (size_t)l * N);
        }
        for (int l = len - 1; l >= 0; l--) {
            size_t o = ((size_t)bi * c->T + t0 + l) * C + (size_t)h * N;
            const float *ARWKV__RESTRICT r = c->r + o, *ARWKV__RESTRICT d = c->decay + o, *ARWKV__RESTRICT k = c->k + o;
            const float *ARWKV__RESTRICT v = c->v + o, *ARWKV__RESTRICT a = c->a + o, *ARWKV__RESTRICT b = c->b + o;
            const float *ARWKV__RESTRICT dy = c->dy + o, *ARWKV__RESTRICT s_a = sa + (size_t)l * N;
            for (int j = 0; j < N; j++) dk[j] = db[j] = dd[j] = dr[j] = da[j] = 0;
            for (int i = 0; i < N; i++)
                c->dv[o + i] += arwkv__wkv7_step_back_row(N, G + (size_t)i * N, states + l * NN + (size_t)i * N,
                                                          states + (l + 1) * NN + (size_t)i * N, dy[i], v[i], s_a[i], r, d, k,
                                                          a, b, dr, dk, db, dd, da);
            for (int j = 0; j < N; j++) {
                c->dr[o + j] += dr[j];
                c->dk[o + j] += dk[j];
                c->d_decay[o + j] = dd[j];
                c->da[o + j] = da[j];
                c->db[o + j] = db[j];
            }
        }
    }
    if (c->dstate) memcpy(c->dstate + (size_t)task * NN, G, NN * sizeof(float));
}

static arwkv_result arwkv__cpu_r7_wkv7_backward(arwkv_backend *be, int B, int T, int H, int N, const float *r, const float *decay,
                                                const float *k, const float *v, const float *a, const float *b, const float *dy,
                                                const float *ckpt, float *dstate, float *dr, float *d_decay, float *dk, float *dv,
                                                float *da, float *db) {
    if (N <= 0 || N % 8 != 0 || N > ARWKV__R7_MAX_N)
        return arwkv__fail(ARWKV_ERR_UNSUPPORTED, "WKV7: head size %d (must be a multiple of 8, at most %d)", N, ARWKV__R7_MAX_N);
    if (!ckpt) return arwkv__fail(ARWKV_ERR_INVALID_ARGUMENT, "WKV7 backward: no state checkpoints (run the forward with ckpt)");
    arwkv__r7_wkv_ctx c;
    memset(&c, 0, sizeof c);
    c.B = B, c.T = T, c.H = H, c.N = N, c.r = r, c.decay = decay, c.k = k, c.v = v, c.a = a, c.b = b, c.dy = dy;
    c.ckpt_in = ckpt, c.dstate = dstate, c.dr = dr, c.d_decay = d_decay, c.dk = dk, c.dv = dv, c.da = da, c.db = db;
    c.pool = be->pool;
    arwkv_pool_run(arwkv__r7_wkv_pool(be, B, T, H), B * H, arwkv__r7_wkv_bwd_task, &c);
    if (c.oom) return arwkv__fail(ARWKV_ERR_OUT_OF_MEMORY, "WKV7 backward: out of scratch memory");
    return ARWKV_OK;
}

/* ---- Finish: group norm, bonus, gate -------------------------------------------------------------
   Per token and head: p = GN(y) + (sum_j r_j k_j r_k_j) v, o = p g. GN normalizes the head's N
   values (biased variance, eps gn_eps) and applies ln_x. The backward tasks own heads, because
   the gradients of r_k and ln_x are sums over rows. */
typedef struct arwkv__r7_finish_ctx {
    int M, C, N, H;
    const float *d_o, *y, *r, *k, *v, *r_k, *ln_w, *ln_b, *g;
    float gn_eps;
    float *o, *dy, *dr, *dk, *dv, *dg, *dr_k, *dln_w, *dln_b;
} arwkv__r7_finish_ctx;

/* p (the value before the gate) of one head of one row; xhat and rstd receive the normalized y
   and 1/std when there is a group norm. Returns the bonus coefficient sum_j r_j k_j r_k_j. */
static float arwkv__r7_finish_head(const arwkv__r7_finish_ctx *c, size_t o, int h0, float *p, float *xhat, float *rstd) {
    int N = c->N;
    const float *y = c->y + o;
    float bonus = 0;
    for (int j = 0; j < N; j++) bonus += c->r[o + j] * c->k[o + j] * c->r_k[h0 + j];
    if (c->ln_w) {
        double mean = 0, var = 0;
        for (int j = 0; j < N; j++) mean += y[j];
        mean /= N;
        for (int j = 0; j < N; j++) var += (y[j] - mean) * (y[j] - mean);
        *rstd = (float)(1.0 / sqrt(var / N + c->gn_eps));
        for (int j = 0; j < N; j++) {
            xhat[j] = (float)(y[j] - mean) * *rstd;
            p[j] = xhat[j] * c->ln_w[h0 + j] + c->ln_b[h0 + j] + bonus * c->v[o + j];
        }
    } else
        for (int j = 0; j < N; j++) p[j] = y[j] + bonus * c->v[o + j];
    return bonus;
}

static void arwkv__r7_finish_fwd_range(void *ctx, size_t begin, size_t end) {
    arwkv__r7_finish_ctx *c = (arwkv__r7_finish_ctx *)ctx;
    float p[ARWKV__R7_MAX_N], xhat[ARWKV__R7_MAX_N], rstd;
    for (size_t u = begin; u < end; u++) {
        int h0 = (int)(u % (size_t)c->H) * c->N;
        size_t o = u / (size_t)c->H * (size_t)c->C + (size_t)h0;
        arwkv__r7_finish_head(c, o, h0, p, xhat, &rstd);
        for (int j = 0; j < c->N; j++) c->o[o + j] = c->g ? p[j] * c->g[o + j] : p[j];
    }
}

static arwkv_result arwkv__cpu_r7_finish_forward(arwkv_backend *be, int M, int C, int N, const float *y, const float *r,
                                                 const float *k, const float *v, const float *r_k, const float *ln_w,
                                                 const float *ln_b, float gn_eps, const float *g, float *o) {
    if (N <= 0 || N > ARWKV__R7_MAX_N || C % N != 0)
        return arwkv__fail(ARWKV_ERR_INVALID_ARGUMENT, "time-mix finish: head size %d with width %d", N, C);
    if (!ln_w != !ln_b) return arwkv__fail(ARWKV_ERR_INVALID_ARGUMENT, "time-mix finish: group norm needs both ln_x weight and bias");
    arwkv__r7_finish_ctx c;
    memset(&c, 0, sizeof c);
    c.M = M, c.C = C, c.N = N, c.H = C / N, c.y = y, c.r = r, c.k = k, c.v = v, c.r_k = r_k, c.ln_w = ln_w, c.ln_b = ln_b;
    c.gn_eps = gn_eps, c.g = g, c.o = o;
    arwkv__parallel_range(be->pool, (size_t)M * c.H, 16, arwkv__r7_finish_fwd_range, &c);
    return ARWKV_OK;
}

static void arwkv__r7_finish_bwd_range(void *ctx, size_t begin, size_t end) {
    arwkv__r7_finish_ctx *c = (arwkv__r7_finish_ctx *)ctx;
    int N = c->N;
    float p[ARWKV__R7_MAX_N], xhat[ARWKV__R7_MAX_N], dp[ARWKV__R7_MAX_N], rstd = 0;
    double g_rk[ARWKV__R7_MAX_N], g_lw[ARWKV__R7_MAX_N], g_lb[ARWKV__R7_MAX_N];
    for (size_t h = begin; h < end; h++) {
        int h0 = (int)h * N;
        for (int j = 0; j < N; j++) g_rk[j] = g_lw[j] = g_lb[j] = 0;
        for (int row = 0; row < c->M; row++) {
            size_t o = (size_t)row * c->C + (size_t)h0;
            float bonus = arwkv__r7_finish_head(c, o, h0, p, xhat, &rstd), d_bonus = 0;
            for (int j = 0; j < N; j++) {
                float d_o = c->d_o[o + j];
                dp[j] = c->g ? d_o * c->g[o + j] : d_o;
                if (c->g) c->dg[o + j] = d_o * p[j];
                d_bonus += dp[j] * c->v[o + j];
                c->dv[o + j] = dp[j] * bonus;
            }
            for (int j = 0; j < N; j++) {
                float rk = c->r_k[h0 + j];
                c->dr[o + j] = d_bonus * c->k[o + j] * rk;
                c->dk[o + j] = d_bonus * c->r[o + j] * rk;
                g_rk[j] += (double)d_bonus * c->r[o + j] * c->k[o + j];
            }
            if (c->ln_w) {
                /* dy = rstd (dxhat - mean(dxhat) - xhat mean(dxhat xhat)), dxhat = dp ln_w */
                double m1 = 0, m2 = 0;
                for (int j = 0; j < N; j++) {
                    float dxh = dp[j] * c->ln_w[h0 + j];
                    m1 += dxh;
                    m2 += (double)dxh * xhat[j];
                    g_lw[j] += (double)dp[j] * xhat[j];
                    g_lb[j] += dp[j];
                }
                m1 /= N;
                m2 /= N;
                for (int j = 0; j < N; j++) c->dy[o + j] = rstd * (dp[j] * c->ln_w[h0 + j] - (float)m1 - xhat[j] * (float)m2);
            } else
                for (int j = 0; j < N; j++) c->dy[o + j] = dp[j];
        }
        for (int j = 0; j < N; j++) {
            if (c->dr_k) c->dr_k[h0 + j] += (float)g_rk[j];
            if (c->ln_w && c->dln_w) c->dln_w[h0 + j] += (float)g_lw[j];
            if (c->ln_w && c->dln_b) c->dln_b[h0 + j] += (float)g_lb[j];
        }
    }
}

static arwkv_result arwkv__cpu_r7_finish_backward(arwkv_backend *be, int M, int C, int N, const float *d_o, const float *y,
                                                  const float *r, const float *k, const float *v, const float *r_k,
                                                  const float *ln_w, const float *ln_b, float gn_eps, const float *g, float *dy,
                                                  float *dr, float *dk, float *dv, float *dg, float *dr_k, float *dln_w,
                                                  float *dln_b) {
    if (N <= 0 || N > ARWKV__R7_MAX_N || C % N != 0)
        return arwkv__fail(ARWKV_ERR_INVALID_ARGUMENT, "time-mix finish: head size %d with width %d", N, C);
    if (!ln_w != !ln_b) return arwkv__fail(ARWKV_ERR_INVALID_ARGUMENT, "time-mix finish: group norm needs both ln_x weight and bias");
    arwkv__r7_finish_ctx c;
    memset(&c, 0, sizeof c);
    c.M = M, c.C = C, c.N = N, c.H = C / N, c.d_o = d_o, c.y = y, c.r = r, c.k = k, c.v = v, c.r_k = r_k, c.ln_w = ln_w;
    c.ln_b = ln_b, c.gn_eps = gn_eps, c.g = g, c.dy = dy, c.dr = dr, c.dk = dk, c.dv = dv, c.dg = dg, c.dr_k = dr_k;
    c.dln_w = dln_w, c.dln_b = dln_b;
    arwkv__parallel_range(be->pool, (size_t)c.H, 1, arwkv__r7_finish_bwd_range, &c);
    return ARWKV_OK;
}

static const arwkv_rwkv7_ops arwkv__cpu_rwkv7_ops = {
    arwkv__cpu_r7_lerp_forward,    arwkv__cpu_r7_lerp_backward,    arwkv__cpu_r7_act_forward,   arwkv__cpu_r7_act_backward,
    arwkv__cpu_r7_prepare_forward, arwkv__cpu_r7_prepare_backward, arwkv__cpu_r7_wkv7_forward,  arwkv__cpu_r7_wkv7_backward,
    arwkv__cpu_r7_finish_forward,  arwkv__cpu_r7_finish_backward};

/* ---- The ARWKV-7 time mix block: forward and backward ---------------------------------------------
   One layer's time mix over B sequences of T tokens, written once over the backend's tables:

     lerp -> r, k, v projections and the w, a, v, g LoRAs -> prepare -> wkv7 -> finish -> output

   Training keeps, per layer, what the backward cannot cheaply recompute (arwkv__tmix7_acts): the
   projections and LoRA outputs, the WKV output and its state checkpoints. Everything elementwise
   (the six mixes, the five WKV inputs, the pre-projection output o) is recomputed by the backward
   from them, which costs a few elementwise passes and saves twelve [B*T, C] arrays per layer.
   Temporaries live in a workspace (arwkv__tmix7_work) that all layers share and that is reused
   from call to call, so a recurrent step allocates nothing. */

/* Sizes of the time mix from the config and the LoRA ranks of the checkpoint (the model's
   rank_w .. rank_g, read from the tensors' shapes). */
ARWKV_PRIVATE arwkv_result arwkv__tmix7_dims(const arwkv_config *cfg, int rank_w, int rank_a, int rank_v, int rank_g,
                                             arwkv_tmix7_dims *d) {
    memset(d, 0, sizeof *d);
    int C = cfg->hidden_size, N = cfg->head_size;
    if (C <= 0 || N <= 0 || C % N != 0)
        return arwkv__fail(ARWKV_ERR_SHAPE, "time mix: hidden_size %d is not a multiple of head_size %d", C, N);
    if (N % 8 != 0 || N > ARWKV__R7_MAX_N)
        return arwkv__fail(ARWKV_ERR_UNSUPPORTED, "time mix: head_size %d must be a multiple of 8 and at most %d", N, ARWKV__R7_MAX_N);
    if (rank_w <= 0 || rank_a <= 0 || rank_v <= 0 || (cfg->wkv_has_gate && rank_g <= 0))
        return arwkv__fail(ARWKV_ERR_SHAPE, "time mix: LoRA ranks w %d, a %d, v %d, g %d must be positive", rank_w, rank_a, rank_v,
                           rank_g);
    if (cfg->wkv_has_group_norm && cfg->head_size_divisor <= 0)
        return arwkv__fail(ARWKV_ERR_FORMAT, "time mix: head_size_divisor %d must be positive", cfg->head_size_divisor);
    d->C = C, d->N = N, d->H = C / N;
    d->rank_w = rank_w, d->rank_a = rank_a, d->rank_v = rank_v, d->rank_g = cfg->wkv_has_gate ? rank_g : 0;
    d->has_gate = cfg->wkv_has_gate != 0, d->has_group_norm = cfg->wkv_has_group_norm != 0;
    d->gn_eps = 1e-5f * (float)cfg->head_size_divisor * (float)cfg->head_size_divisor;
    return ARWKV_OK;
}

/* Does the layer hold every tensor the time mix reads, with the right shape and type? */
ARWKV_PRIVATE arwkv_result arwkv__tmix7_check_layer(const arwkv_tmix7_dims *d, const arwkv_layer *l, int layer_index) {
    struct {
        const arwkv_param *p;
        const char *name;
        int64_t rows, cols; /* cols 0: a vector of `rows` elements */
        int needed;
    } t[] = {
        {l->x_r, "x_r", d->C, 0, 1}, {l->x_w, "x_w", d->C, 0, 1}, {l->x_k, "x_k", d->C, 0, 1},
        {l->x_v, "x_v", d->C, 0, 1}, {l->x_a, "x_a", d->C, 0, 1}, {l->x_g, "x_g", d->C, 0, d->has_gate},
        {l->w0, "w0", d->C, 0, 1}, {l->w1, "w1", d->C, d->rank_w, 1}, {l->w2, "w2", d->rank_w, d->C, 1},
        {l->a0, "a0", d->C, 0, 1}, {l->a1, "a1", d->C, d->rank_a, 1}, {l->a2, "a2", d->rank_a, d->C, 1},
        {l->v0, "v0", d->C, 0, layer_index > 0}, {l->v1, "v1", d->C, d->rank_v, layer_index > 0},
        {l->v2, "v2", d->rank_v, d->C, layer_index > 0}, {l->g1, "g1", d->C, d->rank_g, d->has_gate},
        {l->g2, "g2", d->rank_g, d->C, d->has_gate}, {l->k_k, "k_k", d->C, 0, 1}, {l->k_a, "k_a", d->C, 0, 1},
        {l->r_k, "r_k", d->C, 0, 1}, {l->receptance, "receptance.weight", d->C, d->C, 1},
        {l->key, "key.weight", d->C, d->C, 1}, {l->value, "value.weight", d->C, d->C, 1},
        {l->output, "output.weight", d->C, d->C, 1}, {l->ln_x_w, "ln_x.weight", d->C, 0, d->has_group_norm},
        {l->ln_x_b, "ln_x.bias", d->C, 0, d->has_group_norm},
    };
    for (size_t i = 0; i < sizeof t / sizeof t[0]; i++) {
        const arwkv_param *p = t[i].p;
        if (!t[i].needed) continue;
        if (!p || !p->data)
            return arwkv__fail(ARWKV_ERR_NOT_FOUND, "layer %d: time-mix tensor %s is missing", layer_index, t[i].name);
        if (t[i].cols == 0) { /* vectors: any shape of C elements ([1,1,C], [C], [H,N]), fp32 */
            if (p->numel != t[i].rows || p->dtype != ARWKV_F32)
                return arwkv__fail(ARWKV_ERR_SHAPE, "layer %d: %s has %lld elements of %s; the time mix needs %lld of F32",
                                   layer_index, p->name, (long long)p->numel, arwkv_dtype_name(p->dtype), (long long)t[i].rows);
        } else {
            if (p->ndim != 2 || p->shape[0] != t[i].rows || p->shape[1] != t[i].cols)
                return arwkv__fail(ARWKV_ERR_SHAPE, "layer %d: %s should be [%lld, %lld]", layer_index, p->name,
                                   (long long)t[i].rows, (long long)t[i].cols);
            if (p->dtype != ARWKV_F32 && p->dtype != ARWKV_BF16 && p->dtype != ARWKV_F16)
                return arwkv__fail(ARWKV_ERR_UNSUPPORTED, "layer %d: %s has dtype %s (F32, BF16 or F16 expected)", layer_index,
                                   p->name, arwkv_dtype_name(p->dtype));
        }
        if (p->trainable && (!p->grad || p->dtype != ARWKV_F32))
            return arwkv__fail(ARWKV_ERR_INVALID_ARGUMENT, "layer %d: trainable %s needs F32 data and a gradient buffer", layer_index,
                               p->name);
    }
    return ARWKV_OK;
}

/* What the forward keeps for the backward, for one layer. Sizes in floats, M = B*T rows:
     M * C * (6 + has_gate + (rank_v > 0))    r, k, v, w_lora, a_lora, y (+ g, v_lora)
     M * (rank_w + rank_a + rank_v + rank_g)  LoRA hidden activations
     B * H * ceil(T/16) * N * N               WKV7 state checkpoints (= 4 M C for N = 64 and T % 16 = 0)
     B * C                                    the shift state before the first token */
typedef struct arwkv__tmix7_acts {
    arwkv_tmix7_dims d;
    int cap_B, cap_T; /* capacity */
    int B, T;         /* shape of the forward that filled it (0: none yet) */
    void *mem;        /* one backend allocation holding the arrays below */
    float *shift0, *r, *k_in, *v_in, *w_lora, *a_lora, *v_lora, *g, *y;
    float *h_w, *h_a, *h_v, *h_g;
    float *ckpt;
} arwkv__tmix7_acts;

/* Temporaries of the forward (and of the backward, if asked), shared by all layers. */
typedef struct arwkv__tmix7_work {
    arwkv_tmix7_dims d;
    int max_rows, backward;
    void *mem;
    /* forward: the mixes, the projections when no acts are kept, the WKV inputs, o */
    float *xmix; /* [6][rows][C] */
    float *r, *k_in, *v_in, *w_lora, *a_lora, *v_lora, *g, *y, *h_w, *h_a, *h_v, *h_g;
    float *decay, *k, *v, *wkv_a, *wkv_b, *o;
    /* backward */
    float *dxmix; /* [6][rows][C] */
    float *d_o, *dy, *dr, *dk, *dv, *dg, *d_decay, *d_wkv_a, *d_wkv_b, *dk_in, *dv_in, *dw_lora, *da_lora, *dv_lora;
    float *dh_w, *dh_a, *dh_v, *dh_g;
} arwkv__tmix7_work;

/* Carves consecutive arrays out of one allocation (first pass: only counts). */
typedef struct arwkv__carver {
    float *base;
    size_t used; /* floats */
} arwkv__carver;
ARWKV_PRIVATE float *arwkv__carve(arwkv__carver *c, size_t n) {
    float *p = c->base ? c->base + c->used : NULL;
    c->used += (n + 15) / 16 * 16; /* keep every array 64-byte aligned */
    return n ? p : NULL;
}

ARWKV_PRIVATE void arwkv__tmix7_acts_layout(arwkv__tmix7_acts *a, arwkv__carver *cv) {
    const arwkv_tmix7_dims *d = &a->d;
    size_t M = (size_t)a->cap_B * a->cap_T, MC = M * d->C;
    size_t n_ckpt = (size_t)a->cap_B * d->H * ((a->cap_T + ARWKV_WKV7_CHUNK - 1) / ARWKV_WKV7_CHUNK) * d->N * d->N;
    a->shift0 = arwkv__carve(cv, (size_t)a->cap_B * d->C);
    a->r = arwkv__carve(cv, MC), a->k_in = arwkv__carve(cv, MC), a->v_in = arwkv__carve(cv, MC);
    a->w_lora = arwkv__carve(cv, MC), a->a_lora = arwkv__carve(cv, MC), a->y = arwkv__carve(cv, MC);
    a->v_lora = arwkv__carve(cv, d->rank_v ? MC : 0), a->g = arwkv__carve(cv, d->has_gate ? MC : 0);
    a->h_w = arwkv__carve(cv, M * d->rank_w), a->h_a = arwkv__carve(cv, M * d->rank_a);
    a->h_v = arwkv__carve(cv, M * d->rank_v), a->h_g = arwkv__carve(cv, M * d->rank_g);
    a->ckpt = arwkv__carve(cv, n_ckpt);
}

/* Bytes of one layer's activations for B sequences of T tokens. */
ARWKV_PRIVATE size_t arwkv__tmix7_acts_bytes(const arwkv_tmix7_dims *d, int B, int T) {
    arwkv__tmix7_acts a;
    memset(&a, 0, sizeof a);
    a.d = *d, a.cap_B = B, a.cap_T = T;
    arwkv__carver cv = {NULL, 0};
    arwkv__tmix7_acts_layout(&a, &cv);
    return cv.used * sizeof(float);
}

ARWKV_PRIVATE void arwkv__tmix7_acts_free(arwkv_backend *be, arwkv__tmix7_acts *a) {
    if (!a) return;
    be->mem->free(be, a->mem);
    arwkv__free(a);
}

ARWKV_PRIVATE arwkv_result arwkv__tmix7_acts_create(arwkv_backend *be, const arwkv_tmix7_dims *d, int B, int T,
                                                    arwkv__tmix7_acts **out) {
    *out = NULL;
    if (B <= 0 || T <= 0) return arwkv__fail(ARWKV_ERR_INVALID_ARGUMENT, "time-mix activations for %d x %d tokens", B, T);
    arwkv__tmix7_acts *a = (arwkv__tmix7_acts *)arwkv__calloc(1, sizeof *a);
    if (!a) return arwkv__fail(ARWKV_ERR_OUT_OF_MEMORY, "time-mix activations: out of memory");
    a->d = *d, a->cap_B = B, a->cap_T = T;
    arwkv_result r = be->mem->alloc(be, arwkv__tmix7_acts_bytes(d, B, T), &a->mem);
    if (r != ARWKV_OK) {
        arwkv__free(a);
        return arwkv__context(r, "time-mix activations for %d x %d tokens", B, T);
    }
    arwkv__carver cv = {(float *)a->mem, 0};
    arwkv__tmix7_acts_layout(a, &cv);
    *out = a;
    return ARWKV_OK;
}

ARWKV_PRIVATE void arwkv__tmix7_work_layout(arwkv__tmix7_work *w, arwkv__carver *cv) {
    const arwkv_tmix7_dims *d = &w->d;
    size_t M = (size_t)w->max_rows, MC = M * d->C, MCg = d->has_gate ? MC : 0;
    w->xmix = arwkv__carve(cv, 6 * MC);
    w->r = arwkv__carve(cv, MC), w->k_in = arwkv__carve(cv, MC), w->v_in = arwkv__carve(cv, MC);
    w->w_lora = arwkv__carve(cv, MC), w->a_lora = arwkv__carve(cv, MC), w->v_lora = arwkv__carve(cv, MC);
    w->g = arwkv__carve(cv, MCg), w->y = arwkv__carve(cv, MC);
    w->h_w = arwkv__carve(cv, M * d->rank_w), w->h_a = arwkv__carve(cv, M * d->rank_a);
    w->h_v = arwkv__carve(cv, M * d->rank_v), w->h_g = arwkv__carve(cv, M * d->rank_g);
    w->decay = arwkv__carve(cv, MC), w->k = arwkv__carve(cv, MC), w->v = arwkv__carve(cv, MC);
    w->wkv_a = arwkv__carve(cv, MC), w->wkv_b = arwkv__carve(cv, MC), w->o = arwkv__carve(cv, MC);
    if (!w->backward) return;
    w->dxmix = arwkv__carve(cv, 6 * MC);
    w->d_o = arwkv__carve(cv, MC), w->dy = arwkv__carve(cv, MC), w->dr = arwkv__carve(cv, MC), w->dk = arwkv__carve(cv, MC);
    w->dv = arwkv__carve(cv, MC), w->dg = arwkv__carve(cv, MCg), w->d_decay = arwkv__carve(cv, MC);
    w->d_wkv_a = arwkv__carve(cv, MC), w->d_wkv_b = arwkv__carve(cv, MC), w->dk_in = arwkv__carve(cv, MC);
    w->dv_in = arwkv__carve(cv, MC), w->dw_lora = arwkv__carve(cv, MC), w->da_lora = arwkv__carve(cv, MC);
    w->dv_lora = arwkv__carve(cv, MC);
    w->dh_w = arwkv__carve(cv, M * d->rank_w), w->dh_a = arwkv__carve(cv, M * d->rank_a);
    w->dh_v = arwkv__carve(cv, M * d->rank_v), w->dh_g = arwkv__carve(cv, M * d->rank_g);
}

ARWKV_PRIVATE void arwkv__tmix7_work_free(arwkv_backend *be, arwkv__tmix7_work *w) {
    if (!w) return;
    be->mem->free(be, w->mem);
    arwkv__free(w);
}

/* A workspace for calls of up to max_rows = B*T tokens; backward != 0 adds the backward's arrays.
   Floats: max_rows * C * (20 forward + 20 backward), plus LoRA-rank-sized arrays. */
ARWKV_PRIVATE arwkv_result arwkv__tmix7_work_create(arwkv_backend *be, const arwkv_tmix7_dims *d, int max_rows, int backward,
                                                    arwkv__tmix7_work **out) {
    *out = NULL;
    if (max_rows <= 0) return arwkv__fail(ARWKV_ERR_INVALID_ARGUMENT, "time-mix workspace for %d tokens", max_rows);
    arwkv__tmix7_work *w = (arwkv__tmix7_work *)arwkv__calloc(1, sizeof *w);
    if (!w) return arwkv__fail(ARWKV_ERR_OUT_OF_MEMORY, "time-mix workspace: out of memory");
    w->d = *d, w->max_rows = max_rows, w->backward = backward != 0;
    arwkv__carver cv = {NULL, 0};
    arwkv__tmix7_work_layout(w, &cv);
    arwkv_result r = be->mem->alloc(be, cv.used * sizeof(float), &w->mem);
    if (r != ARWKV_OK) {
        arwkv__free(w);
        return arwkv__context(r, "time-mix workspace for %d tokens", max_rows);
    }
    cv.base = (float *)w->mem, cv.used = 0;
    arwkv__tmix7_work_layout(w, &cv);
    *out = w;
    return ARWKV_OK;
}

/* ---- Products with the layer's matrices (all through be->core->gemm) ----
   A weight W [R,S] is used either as nn.Linear (y = x W^T: in S, out R) or as a LoRA factor
   (y = x W: in R, out S). */
ARWKV_PRIVATE arwkv_result arwkv__tmix7_mm(arwkv_backend *be, int M, const float *x, const arwkv_param *W, int linear, float *y) {
    int R = (int)W->shape[0], S = (int)W->shape[1], in = linear ? S : R, out = linear ? R : S;
    return be->core->gemm(be, M, out, in, x, in, 1, W->data, W->dtype, linear ? 1 : S, linear ? S : 1, y, out, 0, NULL);
}
/* Its backward: dx (+)= dy W (linear) or dy W^T (LoRA), if dx is not NULL; W's gradient
   (+)= dy^T x or x^T dy, if W is trainable. */
ARWKV_PRIVATE arwkv_result arwkv__tmix7_mm_backward(arwkv_backend *be, int M, const float *x, const arwkv_param *W, int linear,
                                             const float *dy, float *dx, int accumulate_dx) {
    int R = (int)W->shape[0], S = (int)W->shape[1], in = linear ? S : R, out = linear ? R : S;
    if (W->trainable) {
        if (linear) ARWKV__TRY(be->core->gemm(be, R, S, M, dy, 1, R, x, ARWKV_F32, S, 1, W->grad, S, 1, NULL));
        else ARWKV__TRY(be->core->gemm(be, R, S, M, x, 1, R, dy, ARWKV_F32, S, 1, W->grad, S, 1, NULL));
    }
    if (!dx) return ARWKV_OK;
    return be->core->gemm(be, M, in, out, dy, out, 1, W->data, W->dtype, linear ? S : 1, linear ? 1 : S, dx, in, accumulate_dx, NULL);
}

ARWKV_PRIVATE const float *arwkv__tmix7_vec(const arwkv_param *p) { return p ? (const float *)p->data : NULL; }
ARWKV_PRIVATE float *arwkv__tmix7_grad(const arwkv_param *p) { return p && p->trainable ? p->grad : NULL; }

/* The arrays one call works on: the layer's activations when training, else the workspace's. */
typedef struct arwkv__tmix7_bufs {
    float *r, *k_in, *v_in, *w_lora, *a_lora, *v_lora, *g, *y, *h_w, *h_a, *h_v, *h_g;
} arwkv__tmix7_bufs;

ARWKV_PRIVATE arwkv__tmix7_bufs arwkv__tmix7_bufs_of(const arwkv__tmix7_acts *a, const arwkv__tmix7_work *w) {
    arwkv__tmix7_bufs b;
    if (a) {
        b.r = a->r, b.k_in = a->k_in, b.v_in = a->v_in, b.w_lora = a->w_lora, b.a_lora = a->a_lora, b.v_lora = a->v_lora;
        b.g = a->g, b.y = a->y, b.h_w = a->h_w, b.h_a = a->h_a, b.h_v = a->h_v, b.h_g = a->h_g;
    } else {
        b.r = w->r, b.k_in = w->k_in, b.v_in = w->v_in, b.w_lora = w->w_lora, b.a_lora = w->a_lora, b.v_lora = w->v_lora;
        b.g = w->g, b.y = w->y, b.h_w = w->h_w, b.h_a = w->h_a, b.h_v = w->h_v, b.h_g = w->h_g;
    }
    return b;
}

/* The six lerp coefficients in the order of the mixes: r, w, k, v, a, g. */
ARWKV_PRIVATE int arwkv__tmix7_mus(const arwkv_layer *l, const arwkv_tmix7_dims *d, const float *mu[6], float *dmu[6]) {
    const arwkv_param *p[6] = {l->x_r, l->x_w, l->x_k, l->x_v, l->x_a, l->x_g};
    int n = d->has_gate ? 6 : 5;
    for (int i = 0; i < 6; i++) {
        mu[i] = i < n ? arwkv__tmix7_vec(p[i]) : NULL;
        if (dmu) dmu[i] = i < n ? arwkv__tmix7_grad(p[i]) : NULL;
    }
    return n;
}
enum { ARWKV__MIX_R, ARWKV__MIX_W, ARWKV__MIX_K, ARWKV__MIX_V, ARWKV__MIX_A, ARWKV__MIX_G };

ARWKV_PRIVATE arwkv_result arwkv__tmix7_check_call(arwkv_backend *be, const arwkv_layer *l, int layer_index, const arwkv_tmix7_dims *d,
                                            int B, int T) {
    if (!be->rwkv7) return arwkv__fail(ARWKV_ERR_UNSUPPORTED, "backend %s has no RWKV-7 ops", be->name);
    if (B <= 0 || T <= 0) return arwkv__fail(ARWKV_ERR_INVALID_ARGUMENT, "layer %d: time mix over %d x %d tokens", layer_index, B, T);
    if ((int64_t)B * T * d->C > INT_MAX / 6)
        return arwkv__fail(ARWKV_ERR_INVALID_ARGUMENT, "layer %d: %d x %d tokens of width %d are too many for one call", layer_index,
                           B, T, d->C);
    return arwkv__tmix7_check_layer(d, l, layer_index);
}

/* The elementwise steps of the forward, which the backward recomputes: WKV inputs, and o. */
ARWKV_PRIVATE arwkv_result arwkv__tmix7_prepare(arwkv_backend *be, const arwkv_layer *l, int layer_index, const arwkv_tmix7_dims *d, int M,
                                         const arwkv__tmix7_bufs *b, float *v_first, arwkv__tmix7_work *w) {
    return be->rwkv7->prepare_forward(be, M, d->C, d->N, layer_index == 0, b->k_in, b->v_in, b->w_lora, b->a_lora,
                                      layer_index == 0 ? NULL : b->v_lora, v_first, arwkv__tmix7_vec(l->w0),
                                      arwkv__tmix7_vec(l->a0), arwkv__tmix7_vec(l->v0), arwkv__tmix7_vec(l->k_k),
                                      arwkv__tmix7_vec(l->k_a), w->decay, w->k, w->v, w->wkv_a, w->wkv_b);
}
ARWKV_PRIVATE arwkv_result arwkv__tmix7_finish(arwkv_backend *be, const arwkv_layer *l, const arwkv_tmix7_dims *d, int M,
                                        const arwkv__tmix7_bufs *b, arwkv__tmix7_work *w) {
    return be->rwkv7->finish_forward(be, M, d->C, d->N, b->y, b->r, w->k, w->v, arwkv__tmix7_vec(l->r_k),
                                     d->has_group_norm ? arwkv__tmix7_vec(l->ln_x_w) : NULL,
                                     d->has_group_norm ? arwkv__tmix7_vec(l->ln_x_b) : NULL, d->gn_eps,
                                     d->has_gate ? b->g : NULL, w->o);
}

/* Runs the calls of a forward or backward one after another until one fails (r holds the result). */
#define ARWKV__STEP(call)                \
    do {                                 \
        if (r == ARWKV_OK) r = (call);   \
    } while (0)

/* One layer's time mix over B sequences of T tokens (T = 1: one recurrent step).
     x            [B,T,C] the layer's normalized input
     shift_state  [B,C] in/out: the previous token's x before t = 0, x[b,T-1] after (NULL: zeros, not kept)
     wkv_state    [B,H,N,N] in/out fp32 (NULL: zeros, not kept)
     v_first      [B,T,C] written by layer 0 (may then be NULL), read by the others
     out          [B,T,C] the time-mix output (before the residual add)
     acts         NULL for inference; else filled for arwkv__tmix7_backward
     work         a workspace of at least B*T rows (NULL: one is made for this call) */
ARWKV_PRIVATE arwkv_result arwkv__tmix7_forward(arwkv_backend *be, const arwkv_layer *l, int layer_index, const arwkv_tmix7_dims *d,
                                                int B, int T, const float *x, float *shift_state, float *wkv_state, float *v_first,
                                                float *out, arwkv__tmix7_acts *acts, arwkv__tmix7_work *work) {
    ARWKV__TRY(arwkv__tmix7_check_call(be, l, layer_index, d, B, T));
    if (layer_index > 0 && !v_first) return arwkv__fail(ARWKV_ERR_INVALID_ARGUMENT, "layer %d: the time mix needs v_first", layer_index);
    if (acts && (B > acts->cap_B || T > acts->cap_T))
        return arwkv__fail(ARWKV_ERR_INVALID_ARGUMENT, "layer %d: activations hold %d x %d tokens, the call has %d x %d", layer_index,
                           acts->cap_B, acts->cap_T, B, T);
    int M = B * T, C = d->C;
    arwkv__tmix7_work *own = NULL;
    if (!work || work->max_rows < M) {
        if (work) return arwkv__fail(ARWKV_ERR_INVALID_ARGUMENT, "layer %d: workspace holds %d tokens, the call has %d", layer_index,
                                     work->max_rows, M);
        ARWKV__TRY(arwkv__tmix7_work_create(be, d, M, 0, &own));
        work = own;
    }
    arwkv__tmix7_bufs b = arwkv__tmix7_bufs_of(acts, work);
    const float *mu[6];
    int n_mix = arwkv__tmix7_mus(l, d, mu, NULL);
    size_t MC = (size_t)M * C;
    float *xm[6];
    for (int i = 0; i < 6; i++) xm[i] = work->xmix + i * MC;
    const arwkv_rwkv7_ops *op = be->rwkv7;
    arwkv_result r = ARWKV_OK;
    if (acts) {
        acts->B = B, acts->T = T;
        if (shift_state) ARWKV__STEP(be->mem->copy(be, acts->shift0, shift_state, (size_t)B * C * sizeof(float)));
        else ARWKV__STEP(be->mem->zero(be, acts->shift0, (size_t)B * C * sizeof(float)));
    }
    ARWKV__STEP(op->lerp_forward(be, work->xmix, x, shift_state, shift_state, mu, n_mix, B, T, C));
    ARWKV__STEP(arwkv__tmix7_mm(be, M, xm[ARWKV__MIX_R], l->receptance, 1, b.r));
    ARWKV__STEP(arwkv__tmix7_mm(be, M, xm[ARWKV__MIX_K], l->key, 1, b.k_in));
    ARWKV__STEP(arwkv__tmix7_mm(be, M, xm[ARWKV__MIX_V], l->value, 1, b.v_in));
    ARWKV__STEP(arwkv__tmix7_mm(be, M, xm[ARWKV__MIX_W], l->w1, 0, b.h_w));
    ARWKV__STEP(op->act_forward(be, b.h_w, (size_t)M * d->rank_w, ARWKV_ACT_TANH));
    ARWKV__STEP(arwkv__tmix7_mm(be, M, b.h_w, l->w2, 0, b.w_lora));
    ARWKV__STEP(arwkv__tmix7_mm(be, M, xm[ARWKV__MIX_A], l->a1, 0, b.h_a));
    ARWKV__STEP(arwkv__tmix7_mm(be, M, b.h_a, l->a2, 0, b.a_lora));
    if (layer_index > 0) {
        ARWKV__STEP(arwkv__tmix7_mm(be, M, xm[ARWKV__MIX_V], l->v1, 0, b.h_v));
        ARWKV__STEP(arwkv__tmix7_mm(be, M, b.h_v, l->v2, 0, b.v_lora));
    }
    if (d->has_gate) {
        ARWKV__STEP(arwkv__tmix7_mm(be, M, xm[ARWKV__MIX_G], l->g1, 0, b.h_g));
        ARWKV__STEP(op->act_forward(be, b.h_g, (size_t)M * d->rank_g, ARWKV_ACT_SIGMOID));
        ARWKV__STEP(arwkv__tmix7_mm(be, M, b.h_g, l->g2, 0, b.g));
    }
    ARWKV__STEP(arwkv__tmix7_prepare(be, l, layer_index, d, M, &b, v_first, work));
    ARWKV__STEP(op->wkv7_forward(be, B, T, d->H, d->N, b.r, work->decay, work->k, work->v, work->wkv_a, work->wkv_b, b.y, wkv_state,
                                 acts ? acts->ckpt : NULL));
    ARWKV__STEP(arwkv__tmix7_finish(be, l, d, M, &b, work));
    ARWKV__STEP(arwkv__tmix7_mm(be, M, work->o, l->output, 1, out));
    arwkv__tmix7_work_free(be, own);
    if (r != ARWKV_OK) return arwkv__context(r, "layer %d: time-mix forward", layer_index);
    return ARWKV_OK;
}

/* The backward of arwkv__tmix7_forward, from the activations it filled. Adds into the gradients
   of the layer's trainable parameters.
     x, v_first   the forward's inputs (v_first unused by layer 0)
     dout         [B,T,C] gradient of out
     dx           [B,T,C] written: gradient of x (NULL: not needed)
     dv_first     layer 0: read, the gradient of v_first from the later layers (NULL: none);
                  other layers: their share is added into it (NULL: v_first held constant)
     d_shift      [B,C] (NULL: none) in: gradient of the final shift state; out: of the initial one
     d_wkv_state  [B,H,N,N] (NULL: none) in: gradient of the final WKV state; out: of the initial one
     work         a workspace with backward arrays of at least B*T rows (NULL: one is made) */
ARWKV_PRIVATE arwkv_result arwkv__tmix7_backward(arwkv_backend *be, const arwkv_layer *l, int layer_index, const arwkv_tmix7_dims *d,
                                                 int B, int T, const float *x, const float *v_first, const arwkv__tmix7_acts *acts,
                                                 const float *dout, float *dx, float *dv_first, float *d_shift, float *d_wkv_state,
                                                 arwkv__tmix7_work *work) {
    ARWKV__TRY(arwkv__tmix7_check_call(be, l, layer_index, d, B, T));
    if (!acts || acts->B != B || acts->T != T)
        return arwkv__fail(ARWKV_ERR_INVALID_ARGUMENT, "layer %d: time-mix backward over %d x %d tokens without their activations",
                           layer_index, B, T);
    if (layer_index > 0 && !v_first)
        return arwkv__fail(ARWKV_ERR_INVALID_ARGUMENT, "layer %d: the time-mix backward needs v_first", layer_index);
    int M = B * T, C = d->C;
    arwkv__tmix7_work *own = NULL;
    if (!work || work->max_rows < M || !work->backward) {
        if (work) return arwkv__fail(ARWKV_ERR_INVALID_ARGUMENT, "layer %d: workspace (%d tokens%s) too small for a backward of %d",
                                     layer_index, work->max_rows, work->backward ? "" : ", forward only", M);
        ARWKV__TRY(arwkv__tmix7_work_create(be, d, M, 1, &own));
        work = own;
    }
    arwkv__tmix7_work *w = work;
    arwkv__tmix7_bufs b = arwkv__tmix7_bufs_of(acts, w);
    const float *mu[6];
    float *dmu[6];
    int n_mix = arwkv__tmix7_mus(l, d, mu, dmu), first = layer_index == 0;
    size_t MC = (size_t)M * C;
    float *xm[6], *dxm[6];
    for (int i = 0; i < 6; i++) xm[i] = w->xmix + i * MC, dxm[i] = w->dxmix + i * MC;
    /* the gradients of the mixes are needed for dx, for the initial shift and for trainable mus */
    int need_dxmix = dx || d_shift;
    for (int i = 0; i < n_mix; i++) need_dxmix |= dmu[i] != NULL;
    const arwkv_rwkv7_ops *op = be->rwkv7;
    arwkv_result r = ARWKV_OK;

    /* recompute the elementwise parts of the forward */
    ARWKV__STEP(op->lerp_forward(be, w->xmix, x, acts->shift0, NULL, mu, n_mix, B, T, C));
    ARWKV__STEP(arwkv__tmix7_prepare(be, l, layer_index, d, M, &b, first ? NULL : (float *)v_first, w));
    ARWKV__STEP(arwkv__tmix7_finish(be, l, d, M, &b, w));

    /* out = o W_o^T, then the finish, the recurrence and the prepare step backwards */
    ARWKV__STEP(arwkv__tmix7_mm_backward(be, M, w->o, l->output, 1, dout, w->d_o, 0));
    ARWKV__STEP(op->finish_backward(be, M, C, d->N, w->d_o, b.y, b.r, w->k, w->v, arwkv__tmix7_vec(l->r_k),
                                    d->has_group_norm ? arwkv__tmix7_vec(l->ln_x_w) : NULL,
                                    d->has_group_norm ? arwkv__tmix7_vec(l->ln_x_b) : NULL, d->gn_eps, d->has_gate ? b.g : NULL,
                                    w->dy, w->dr, w->dk, w->dv, d->has_gate ? w->dg : NULL, arwkv__tmix7_grad(l->r_k),
                                    d->has_group_norm ? arwkv__tmix7_grad(l->ln_x_w) : NULL,
                                    d->has_group_norm ? arwkv__tmix7_grad(l->ln_x_b) : NULL));
    ARWKV__STEP(op->wkv7_backward(be, B, T, d->H, d->N, b.r, w->decay, w->k, w->v, w->wkv_a, w->wkv_b, w->dy, acts->ckpt, d_wkv_state,
                                  w->dr, w->d_decay, w->dk, w->dv, w->d_wkv_a, w->d_wkv_b));
    ARWKV__STEP(op->prepare_backward(be, M, C, d->N, first, w->d_decay, w->dk, w->dv, w->d_wkv_a, w->d_wkv_b, b.k_in, b.v_in,
                                     b.w_lora, b.a_lora, first ? NULL : b.v_lora, first ? NULL : v_first,
                                     arwkv__tmix7_vec(l->w0), arwkv__tmix7_vec(l->a0), arwkv__tmix7_vec(l->v0),
                                     arwkv__tmix7_vec(l->k_k), arwkv__tmix7_vec(l->k_a), w->dk_in, w->dv_in, w->dw_lora,
                                     w->da_lora, first ? NULL : w->dv_lora, dv_first, arwkv__tmix7_grad(l->w0),
                                     arwkv__tmix7_grad(l->a0), first ? NULL : arwkv__tmix7_grad(l->v0),
                                     arwkv__tmix7_grad(l->k_k), arwkv__tmix7_grad(l->k_a)));

    /* the LoRAs and projections back to the mixes: dxmix[m] = sum of what each mix fed */
    float *dx_of[6];
    for (int i = 0; i < 6; i++) dx_of[i] = need_dxmix ? dxm[i] : NULL;
    if (d->has_gate) {
        ARWKV__STEP(arwkv__tmix7_mm_backward(be, M, b.h_g, l->g2, 0, w->dg, w->dh_g, 0));
        ARWKV__STEP(op->act_backward(be, w->dh_g, b.h_g, (size_t)M * d->rank_g, ARWKV_ACT_SIGMOID));
        ARWKV__STEP(arwkv__tmix7_mm_backward(be, M, xm[ARWKV__MIX_G], l->g1, 0, w->dh_g, dx_of[ARWKV__MIX_G], 0));
    }
    ARWKV__STEP(arwkv__tmix7_mm_backward(be, M, b.h_w, l->w2, 0, w->dw_lora, w->dh_w, 0));
    ARWKV__STEP(op->act_backward(be, w->dh_w, b.h_w, (size_t)M * d->rank_w, ARWKV_ACT_TANH));
    ARWKV__STEP(arwkv__tmix7_mm_backward(be, M, xm[ARWKV__MIX_W], l->w1, 0, w->dh_w, dx_of[ARWKV__MIX_W], 0));
    ARWKV__STEP(arwkv__tmix7_mm_backward(be, M, b.h_a, l->a2, 0, w->da_lora, w->dh_a, 0));
    ARWKV__STEP(arwkv__tmix7_mm_backward(be, M, xm[ARWKV__MIX_A], l->a1, 0, w->dh_a, dx_of[ARWKV__MIX_A], 0));
    ARWKV__STEP(arwkv__tmix7_mm_backward(be, M, xm[ARWKV__MIX_R], l->receptance, 1, w->dr, dx_of[ARWKV__MIX_R], 0));
    ARWKV__STEP(arwkv__tmix7_mm_backward(be, M, xm[ARWKV__MIX_K], l->key, 1, w->dk_in, dx_of[ARWKV__MIX_K], 0));
    ARWKV__STEP(arwkv__tmix7_mm_backward(be, M, xm[ARWKV__MIX_V], l->value, 1, w->dv_in, dx_of[ARWKV__MIX_V], 0));
    if (!first) {
        ARWKV__STEP(arwkv__tmix7_mm_backward(be, M, b.h_v, l->v2, 0, w->dv_lora, w->dh_v, 0));
        ARWKV__STEP(arwkv__tmix7_mm_backward(be, M, xm[ARWKV__MIX_V], l->v1, 0, w->dh_v, dx_of[ARWKV__MIX_V], 1));
    }
    if (need_dxmix) ARWKV__STEP(op->lerp_backward(be, dx, d_shift, dmu, w->dxmix, x, acts->shift0, mu, n_mix, B, T, C));
#undef ARWKV__STEP
    arwkv__tmix7_work_free(be, own);
    if (r != ARWKV_OK) return arwkv__context(r, "layer %d: time-mix backward", layer_index);
    return ARWKV_OK;
}

/* @@rwkv7-ops-impl@@ */


/* @@rwkv6-ops-impl@@ */


/* @@loss-ops-impl@@ */


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
    arwkv_st_entry *e = (arwkv_st_entry *)arwkv__calloc((size_t)m->n_params, sizeof *e);
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
    const char *meta[2] = {"format", "pt"};
    if (r == ARWKV_OK) r = arwkv_st_write_dir(dir, e, m->n_params, meta, 1, max_shard_bytes);
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


/* @@qrwkv6-impl@@ */


/* ============================================================================================
   8. Training
   ============================================================================================ */
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
