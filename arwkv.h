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
    /* dgate = d/dgate, dup = d/dup (written, not accumulated; they may be the gate and up arrays) */
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

/* ---- Qwen2 attention ops -----------------------------------------------------------------------
   Forward only: the teacher is frozen. A row holds one token's heads side by side, as the
   projections write them: q is [rows, H*D], k and v are [rows, Hkv*D] (H query heads, Hkv key/value
   heads, D = head_dim). */
struct arwkv_qwen_ops {
    /* Rotary position embedding in place, in Hugging Face's rotate_half convention: within each head,
       element i < D/2 pairs with element i + D/2, rotated by the angle pos * theta^(-2i/D):
           x'[i]       = x[i] cos - x[i+D/2] sin
           x'[i+D/2]   = x[i+D/2] cos + x[i] sin
       x: rows of n_heads*D floats, row r at x + r*ld. Row r is at position pos[r] when pos (int32,
       backend memory) is given, else at pos0 + r. Angles are formed in fp32 as transformers does. */
    arwkv_result (*rope_forward)(arwkv_backend *be, float *x, int rows, int n_heads, int head_dim, ptrdiff_t ld,
                                 const int32_t *pos, int pos0, double theta);
    /* Causal grouped-query attention for B sequences at once:
           out[b, i, h] = sum_{j <= p0+i} softmax_j(q[b,i,h] . k[b,j,g] / sqrt(D)) v[b,j,g],  g = h / (H/Hkv)
       q and out are [B*Tq, H*D]: row b*Tq + i is query i of sequence b, at absolute position p0 + i.
       k and v hold p0 + Tq rows of Hkv*D floats per sequence; sequence b starts at k + b*kv_batch_stride.
       So one op serves a whole sequence (p0 = 0) and KV-cached decoding (p0 = tokens already cached).
       Never forms the Tq x (p0+Tq) score matrix: keys are visited in blocks with a running softmax. */
    arwkv_result (*attention_forward)(arwkv_backend *be, float *out, const float *q, const float *k, const float *v, int B,
                                      int Tq, int p0, int H, int Hkv, int D, ptrdiff_t kv_batch_stride);
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
       layer, read (the gradient of v_first from later layers, NULL: none); other layers, added to. */
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

/* ---- The teacher: Qwen2 forward ----------------------------------------------------------------
   Qwen2ForCausalLM as transformers computes it in fp32 (see the top of section 7 of the
   implementation for the equations). Activations are fp32; weights stay in their stored type and
   are widened block by block inside the matrix product, so a bf16 7B teacher needs ~16 GB.
   Every buffer lives in backend memory and every computation goes through the backend's tables.

   Two ways to run it:
   - arwkv_teacher_forward: B sequences of T tokens, all positions at once (perplexity, the
     distillation targets). A per-layer hook sees each layer's attention input and output as soon as
     they exist, so a trainer can consume layer l before layer l+1 runs and memory does not grow
     with depth. Logits are not formed: arwkv_teacher_logits turns any chunk of rows of the final
     hidden states into logits, so tokens x vocabulary floats never have to exist at once.
   - arwkv_teacher_step: incremental decoding of one sequence with a KV cache (prefill n > 1 tokens,
     then one at a time), returning logits on the host.
   A teacher object holds the activation workspace; it is not safe to use from two threads at once.
   Several teacher objects may share one model. */

typedef struct arwkv_teacher arwkv_teacher;
typedef struct arwkv_kv_cache arwkv_kv_cache;

/* Called once per layer during arwkv_teacher_forward, after the attention and before the residual
   add. All three arrays are [rows, hidden_size] in backend memory (rows = B*T, sequence-major) and
   are valid only during the call:
     x        the layer's input (the residual stream; x of layer 0 is the embedding)
     xn       input_layernorm(x): what the attention (and an ARWKV time mix) reads
     attn_out the attention output after o_proj: the stage-1 target of the layer's time mix
   Returning anything but ARWKV_OK stops the forward, which returns that code. */
typedef arwkv_result (*arwkv_layer_hook)(void *user, int layer, const float *x, const float *xn, const float *attn_out, int rows);

/* A workspace for running model m (a Qwen2ForCausalLM loaded on a backend with Qwen ops). The model
   must outlive the teacher. Buffers grow on demand to the largest batch seen. */
ARWKV_API arwkv_result arwkv_teacher_create(arwkv_model *m, arwkv_teacher **out);
ARWKV_API void arwkv_teacher_free(arwkv_teacher *t);

/* Run B sequences of T tokens each (ids: host int32 [B*T], sequence-major; all in [0, vocab)).
   hook may be NULL. On success *hidden points to the final normed hidden states [B*T, hidden_size]
   in backend memory, owned by t and valid until t's next forward or step. */
ARWKV_API arwkv_result arwkv_teacher_forward(arwkv_teacher *t, const int32_t *ids, int B, int T, arwkv_layer_hook hook,
                                             void *user, const float **hidden);

/* logits[n_rows, vocab] = lm_head(hidden[n_rows, hidden_size]); both in backend memory, row-major.
   The head is the embedding when tie_word_embeddings is set. */
ARWKV_API arwkv_result arwkv_teacher_logits(arwkv_model *m, const float *hidden, int n_rows, float *logits);

/* The keys (after RoPE) and values of every layer for one sequence. max_len > 0 allocates that many
   positions up front and refuses to go beyond; max_len <= 0 grows on demand (doubling). */
ARWKV_API arwkv_result arwkv_kv_cache_create(arwkv_model *m, int max_len, arwkv_kv_cache **out);
ARWKV_API void arwkv_kv_cache_free(arwkv_kv_cache *c);
ARWKV_API void arwkv_kv_cache_reset(arwkv_kv_cache *c);          /* forget all positions; keeps memory */
ARWKV_API int arwkv_kv_cache_len(const arwkv_kv_cache *c);        /* positions cached */
ARWKV_API size_t arwkv_kv_cache_bytes(const arwkv_kv_cache *c);   /* backend memory held */

/* Append n tokens (host int32) to the sequence in cache c and run them: n > 1 is a prefill, n = 1 a
   decoding step. Writes the logits of the last new position to logits_last[vocab] and, if
   logits_all is not NULL, those of all n new positions to logits_all[n, vocab] (host memory; either
   may be NULL). On failure the cache keeps its previous length. */
ARWKV_API arwkv_result arwkv_teacher_step(arwkv_teacher *t, arwkv_kv_cache *c, const int32_t *ids, int n, float *logits_last,
                                          float *logits_all);

/* @@teacher-api@@ */


/* @@student-api@@ */


/* ---- Creating an ARWKV-7 student from a teacher ---------------------------------------------------
   The student is the teacher with every self-attention replaced by an RWKV-7 time mix: embeddings,
   norms, MLPs and head are copied; the time mix is new. */
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
} arwkv_student_options;

ARWKV_API void arwkv_student_options_default(arwkv_student_options *o);
/* A new RwkvHybridForCausalLM student on the teacher's backend. The teacher's hidden size must be a
   multiple of 64 (the WKV head size). */
ARWKV_API arwkv_result arwkv_student_create(arwkv_model *teacher, const arwkv_student_options *opt, arwkv_model **out);

/* ---- Running a student: the RNN ----------------------------------------------------------------------
   A student is an RNN: what it remembers of a sequence is a fixed-size state per layer (the
   previous token's normalized input and the WKV matrices), whatever the length. arwkv_rnn runs
   whole sequences (training, prefill) or one token at a time (generation) from such states; both
   compute the same function. */
typedef struct arwkv_rnn_state arwkv_rnn_state; /* one sequence's recurrent state */
typedef struct arwkv_rnn arwkv_rnn;             /* a workspace for running a student model */

/* A zero state for model m (an ARWKV-7 or QRWKV6 student), in backend memory. */
ARWKV_API arwkv_result arwkv_rnn_state_create(arwkv_model *m, arwkv_rnn_state **out);
ARWKV_API void arwkv_rnn_state_free(arwkv_rnn_state *s);
ARWKV_API arwkv_result arwkv_rnn_state_reset(arwkv_rnn_state *s);
ARWKV_API arwkv_result arwkv_rnn_state_copy(arwkv_rnn_state *dst, const arwkv_rnn_state *src);
ARWKV_API size_t arwkv_rnn_state_bytes(const arwkv_rnn_state *s);
ARWKV_API int64_t arwkv_rnn_state_tokens(const arwkv_rnn_state *s); /* tokens it has read */
/* Save/load a state as a small safetensors file; loading checks it belongs to the same model. */
ARWKV_API arwkv_result arwkv_rnn_state_save(const arwkv_rnn_state *s, const char *path);
ARWKV_API arwkv_result arwkv_rnn_state_load(arwkv_rnn_state *s, const char *path);

ARWKV_API arwkv_result arwkv_rnn_create(arwkv_model *m, arwkv_rnn **out);
ARWKV_API void arwkv_rnn_free(arwkv_rnn *r);
/* Run B sequences of T tokens (ids: host int32 [B*T]). states: B states that are read and advanced,
   or NULL to start from zeros. train != 0 keeps what arwkv_rnn_backward needs. On success *hidden
   points to the final normed hidden states [B*T, C] in backend memory, valid until the next call. */
ARWKV_API arwkv_result arwkv_rnn_forward(arwkv_rnn *r, const int32_t *ids, int B, int T, arwkv_rnn_state **states, int train,
                                         const float **hidden);
/* Gradient of the last training forward from dhidden [B*T, C] (backend memory): adds into the
   gradients of the model's trainable parameters. */
ARWKV_API arwkv_result arwkv_rnn_backward(arwkv_rnn *r, const float *dhidden);
/* Read n tokens (host ids) into state s; logits of the last one into logits_last[V] (host, may be
   NULL), of all n into logits_all[n, V] (host, may be NULL). */
ARWKV_API arwkv_result arwkv_rnn_step(arwkv_rnn *r, arwkv_rnn_state *s, const int32_t *ids, int n, float *logits_last,
                                      float *logits_all);

/* @@student-model-api@@ */


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
/* ---- Sampling -------------------------------------------------------------------------------------------
   Turns the logits of the last position into the next token. The filters apply in this order:
   repetition penalty (on tokens seen recently), temperature, top-k, top-p (nucleus), min-p; then a
   draw from what is left. Temperature 0 is greedy (the arg-max; the lowest id wins ties). */
typedef struct arwkv_sampler_options {
    float temperature;        /* 0: greedy */
    int top_k;                /* 0: off */
    float top_p;              /* 1: off */
    float min_p;              /* 0: off; keep tokens with p >= min_p * p_max */
    float repetition_penalty; /* 1: off; >1 divides positive logits (multiplies negative ones) of recent tokens */
    uint64_t seed;
} arwkv_sampler_options;

typedef struct arwkv_sampler {
    arwkv_sampler_options opt;
    uint64_t rng;
    float *probs;   /* scratch, V entries */
    void *cand;     /* scratch, V (probability, id) pairs */
    int V;
} arwkv_sampler;

ARWKV_API void arwkv_sampler_options_default(arwkv_sampler_options *o);
ARWKV_API arwkv_result arwkv_sampler_init(arwkv_sampler *s, const arwkv_sampler_options *o, int vocab_size);
ARWKV_API void arwkv_sampler_free(arwkv_sampler *s);
/* Pick a token from logits[V] (host memory; modified). recent: the last n_recent token ids. */
ARWKV_API int32_t arwkv_sample(arwkv_sampler *s, float *logits, const int32_t *recent, int n_recent);

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

/* Pack one full panel (16 columns) of a weight whose columns are contiguous in k (an nn.Linear
   weight read as B = W^T): 8 k-values of 8 columns are loaded as 8 vectors, widened, and transposed
   in registers into 8 rows of the panel. Returns 0 where it does not apply (no AVX2, a short panel,
   strided k, f16), and the caller packs element by element instead. */
ARWKV_PRIVATE int arwkv__pack_kmajor_avx2(const arwkv__gemm_args *g, float *panel, int k0, int kc, int n, int w) {
#ifdef ARWKV__AVX2
    if (w != ARWKV__NR || g->b_rs != 1 || (g->b_type != ARWKV_BF16 && g->b_type != ARWKV_F32)) return 0;
    size_t esz = arwkv_dtype_size(g->b_type);
    const char *B = (const char *)g->B;
    int k = 0;
    for (; k + 8 <= kc; k += 8)
        for (int half = 0; half < 2; half++) {
            __m256 r[8];
            for (int j = 0; j < 8; j++) {
                const char *src = B + ((size_t)(n + 8 * half + j) * (size_t)g->b_cs + (size_t)(k0 + k)) * esz;
                if (g->b_type == ARWKV_BF16)
                    r[j] = _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(_mm_loadu_si128((const __m128i *)src)), 16));
                else r[j] = _mm256_loadu_ps((const float *)src);
            }
            /* transpose: r[i] becomes k-value i of the 8 columns */
            __m256 t0 = _mm256_unpacklo_ps(r[0], r[1]), t1 = _mm256_unpackhi_ps(r[0], r[1]), t2 = _mm256_unpacklo_ps(r[2], r[3]),
                   t3 = _mm256_unpackhi_ps(r[2], r[3]), t4 = _mm256_unpacklo_ps(r[4], r[5]), t5 = _mm256_unpackhi_ps(r[4], r[5]),
                   t6 = _mm256_unpacklo_ps(r[6], r[7]), t7 = _mm256_unpackhi_ps(r[6], r[7]);
            __m256 u0 = _mm256_shuffle_ps(t0, t2, 0x44), u1 = _mm256_shuffle_ps(t0, t2, 0xEE), u2 = _mm256_shuffle_ps(t1, t3, 0x44),
                   u3 = _mm256_shuffle_ps(t1, t3, 0xEE), u4 = _mm256_shuffle_ps(t4, t6, 0x44), u5 = _mm256_shuffle_ps(t4, t6, 0xEE),
                   u6 = _mm256_shuffle_ps(t5, t7, 0x44), u7 = _mm256_shuffle_ps(t5, t7, 0xEE);
            float *dst = panel + (size_t)k * ARWKV__NR + 8 * half;
            _mm256_storeu_ps(dst + 0 * ARWKV__NR, _mm256_permute2f128_ps(u0, u4, 0x20));
            _mm256_storeu_ps(dst + 1 * ARWKV__NR, _mm256_permute2f128_ps(u1, u5, 0x20));
            _mm256_storeu_ps(dst + 2 * ARWKV__NR, _mm256_permute2f128_ps(u2, u6, 0x20));
            _mm256_storeu_ps(dst + 3 * ARWKV__NR, _mm256_permute2f128_ps(u3, u7, 0x20));
            _mm256_storeu_ps(dst + 4 * ARWKV__NR, _mm256_permute2f128_ps(u0, u4, 0x31));
            _mm256_storeu_ps(dst + 5 * ARWKV__NR, _mm256_permute2f128_ps(u1, u5, 0x31));
            _mm256_storeu_ps(dst + 6 * ARWKV__NR, _mm256_permute2f128_ps(u2, u6, 0x31));
            _mm256_storeu_ps(dst + 7 * ARWKV__NR, _mm256_permute2f128_ps(u3, u7, 0x31));
        }
    for (; k < kc; k++)
        for (int j = 0; j < ARWKV__NR; j++)
            arwkv__widen(panel + (size_t)k * ARWKV__NR + j, B + ((size_t)(n + j) * (size_t)g->b_cs + (size_t)(k0 + k)) * esz, g->b_type, 1, 1);
    return 1;
#else
    (void)g, (void)panel, (void)k0, (void)kc, (void)n, (void)w;
    return 0;
#endif
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
        } else if (arwkv__pack_kmajor_avx2(g, panel, k0, kc, n0 + p, w)) {
            /* done: 8x8 blocks transposed in registers */
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

/* Ask for the next block of B while this one is multiplied. A block is a few hundred short pieces
   of different rows of the weight (512 bytes each for bf16), a pattern the hardware prefetcher does
   not follow; when the weight comes from DRAM (a 272 MB vocabulary head) that costs a quarter of the
   time. Only a hint: no effect on results. */
ARWKV_PRIVATE void arwkv__prefetch_b(const arwkv__gemm_args *g, int k0, int n0, int nc) {
#if defined(__GNUC__) || defined(__clang__)
    int kc = g->K - k0 < ARWKV__KC ? g->K - k0 : ARWKV__KC;
    size_t esz = arwkv_dtype_size(g->b_type);
    const char *B = (const char *)g->B;
    if (g->b_rs == 1) /* a run of kc elements per column */
        for (int n = n0; n < n0 + nc; n++) {
            const char *p = B + ((size_t)n * (size_t)g->b_cs + (size_t)k0) * esz;
            for (size_t off = 0; off < (size_t)kc * esz; off += 64) __builtin_prefetch(p + off);
        }
    else if (g->b_cs == 1) /* a run of nc elements per row */
        for (int k = k0; k < k0 + kc; k++) {
            const char *p = B + ((size_t)k * (size_t)g->b_rs + (size_t)n0) * esz;
            for (size_t off = 0; off < (size_t)nc * esz; off += 64) __builtin_prefetch(p + off);
        }
#else
    (void)g, (void)k0, (void)n0, (void)nc;
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
        if (k0 + ARWKV__KC < g->K) arwkv__prefetch_b(g, k0 + ARWKV__KC, n0, nc);
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

/* The decode path. With one to four rows of A the product is bound by reading the weight, each
   element of which is used only M times, so the weight is streamed once in its stored layout (rows
   of W [N,K] contiguous in k) and each task takes a range of its rows. Four weight rows go through
   the kernel together: their sums are independent chains that hide the FMA latency, and each piece
   of the activation row is loaded once for the four. A bf16 vector of 16 is widened by interleaving
   it with zeros, which leaves elements 0-3 and 8-11 in one fp32 vector and 4-7 and 12-15 in the
   other; the activation is permuted the same way, which leaves the dot product unchanged. */

/* Generic dot product of row m of A with weight row n, any strides and types. */
ARWKV_PRIVATE float arwkv__gemv_dot(const arwkv__gemm_args *g, int m, int n) {
    const char *w = (const char *)g->B + (size_t)n * (size_t)g->b_cs * arwkv_dtype_size(g->b_type);
    const float *a = g->A + (ptrdiff_t)m * g->a_rs;
    float wbuf[256], acc = 0;
    for (int k = 0; k < g->K; k += 256) {
        int kc = g->K - k < 256 ? g->K - k : 256;
        arwkv__widen(wbuf, w + (size_t)k * (size_t)g->b_rs * arwkv_dtype_size(g->b_type), g->b_type, g->b_rs, kc);
        float s = 0;
        for (int q = 0; q < kc; q++) s += a[(ptrdiff_t)(k + q) * g->a_cs] * wbuf[q];
        acc += s;
    }
    return acc;
}

#ifdef ARWKV__AVX2
ARWKV_PRIVATE float arwkv__hsum8(__m256 v) {
    __m128 h = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    h = _mm_add_ps(h, _mm_movehl_ps(h, h));
    h = _mm_add_ss(h, _mm_movehdup_ps(h));
    return _mm_cvtss_f32(h);
}

/* out[r] = a . w[r] over K elements for 4 contiguous weight rows of type t (BF16 or F32). */
ARWKV_PRIVATE void arwkv__dot4_avx2(const float *a, const void *const *w, arwkv_dtype t, int K, float *out) {
    __m256 s0 = _mm256_setzero_ps(), s1 = s0, s2 = s0, s3 = s0, s4 = s0, s5 = s0, s6 = s0, s7 = s0;
    int k = 0;
    if (t == ARWKV_BF16) {
        const uint16_t *w0 = (const uint16_t *)w[0], *w1 = (const uint16_t *)w[1], *w2 = (const uint16_t *)w[2], *w3 = (const uint16_t *)w[3];
        const __m256i z = _mm256_setzero_si256();
        for (; k + 16 <= K; k += 16) {
            __m256 x0 = _mm256_loadu_ps(a + k), x1 = _mm256_loadu_ps(a + k + 8);
            __m256 lo = _mm256_permute2f128_ps(x0, x1, 0x20), hi = _mm256_permute2f128_ps(x0, x1, 0x31);
            __m256i r0 = _mm256_loadu_si256((const __m256i *)(w0 + k)), r1 = _mm256_loadu_si256((const __m256i *)(w1 + k)),
                    r2 = _mm256_loadu_si256((const __m256i *)(w2 + k)), r3 = _mm256_loadu_si256((const __m256i *)(w3 + k));
            s0 = _mm256_fmadd_ps(_mm256_castsi256_ps(_mm256_unpacklo_epi16(z, r0)), lo, s0);
            s1 = _mm256_fmadd_ps(_mm256_castsi256_ps(_mm256_unpackhi_epi16(z, r0)), hi, s1);
            s2 = _mm256_fmadd_ps(_mm256_castsi256_ps(_mm256_unpacklo_epi16(z, r1)), lo, s2);
            s3 = _mm256_fmadd_ps(_mm256_castsi256_ps(_mm256_unpackhi_epi16(z, r1)), hi, s3);
            s4 = _mm256_fmadd_ps(_mm256_castsi256_ps(_mm256_unpacklo_epi16(z, r2)), lo, s4);
            s5 = _mm256_fmadd_ps(_mm256_castsi256_ps(_mm256_unpackhi_epi16(z, r2)), hi, s5);
            s6 = _mm256_fmadd_ps(_mm256_castsi256_ps(_mm256_unpacklo_epi16(z, r3)), lo, s6);
            s7 = _mm256_fmadd_ps(_mm256_castsi256_ps(_mm256_unpackhi_epi16(z, r3)), hi, s7);
        }
    } else {
        const float *w0 = (const float *)w[0], *w1 = (const float *)w[1], *w2 = (const float *)w[2], *w3 = (const float *)w[3];
        for (; k + 16 <= K; k += 16) {
            __m256 x0 = _mm256_loadu_ps(a + k), x1 = _mm256_loadu_ps(a + k + 8);
            s0 = _mm256_fmadd_ps(_mm256_loadu_ps(w0 + k), x0, s0), s1 = _mm256_fmadd_ps(_mm256_loadu_ps(w0 + k + 8), x1, s1);
            s2 = _mm256_fmadd_ps(_mm256_loadu_ps(w1 + k), x0, s2), s3 = _mm256_fmadd_ps(_mm256_loadu_ps(w1 + k + 8), x1, s3);
            s4 = _mm256_fmadd_ps(_mm256_loadu_ps(w2 + k), x0, s4), s5 = _mm256_fmadd_ps(_mm256_loadu_ps(w2 + k + 8), x1, s5);
            s6 = _mm256_fmadd_ps(_mm256_loadu_ps(w3 + k), x0, s6), s7 = _mm256_fmadd_ps(_mm256_loadu_ps(w3 + k + 8), x1, s7);
        }
    }
    out[0] = arwkv__hsum8(_mm256_add_ps(s0, s1));
    out[1] = arwkv__hsum8(_mm256_add_ps(s2, s3));
    out[2] = arwkv__hsum8(_mm256_add_ps(s4, s5));
    out[3] = arwkv__hsum8(_mm256_add_ps(s6, s7));
    for (; k < K; k++)
        for (int r = 0; r < 4; r++) {
            float wk;
            arwkv__widen(&wk, (const char *)w[r] + (size_t)k * arwkv_dtype_size(t), t, 1, 1);
            out[r] += a[k] * wk;
        }
}
#endif

#define ARWKV__GEMV_ROWS 64 /* weight rows per decode task */

ARWKV_PRIVATE void arwkv__gemv_task(void *ctx, int task, int thread) {
    (void)thread;
    arwkv__gemm_args *g = (arwkv__gemm_args *)ctx;
    int n0 = task * ARWKV__GEMV_ROWS, count = g->N - n0 < ARWKV__GEMV_ROWS ? g->N - n0 : ARWKV__GEMV_ROWS;
    /* The four rows that go together are a quarter of the range apart, so each of the four streams
       the kernel reads is one long run of memory (rows q apart are contiguous in between), not a
       short piece followed by a jump; short rows (K ~ 1000) stream markedly faster this way. */
    int q = (count + 3) / 4;
    size_t esz = arwkv_dtype_size(g->b_type);
    for (int j = 0; j < q; j++) {
        int rows[4];
        float out[4][4];
        for (int r = 0; r < 4; r++) rows[r] = r * q + j < count ? n0 + r * q + j : -1;
        for (int i = 0; i < g->M; i++) {
#ifdef ARWKV__AVX2
            if (g->a_cs == 1 && g->b_rs == 1 && (g->b_type == ARWKV_BF16 || g->b_type == ARWKV_F32)) {
                const void *w[4]; /* a missing row repeats the first; its sum is dropped */
                for (int r = 0; r < 4; r++) w[r] = (const char *)g->B + (size_t)(rows[r] >= 0 ? rows[r] : rows[0]) * (size_t)g->b_cs * esz;
                arwkv__dot4_avx2(g->A + (ptrdiff_t)i * g->a_rs, w, g->b_type, g->K, out[i]);
                continue;
            }
#endif
            for (int r = 0; r < 4; r++) out[i][r] = rows[r] >= 0 ? arwkv__gemv_dot(g, i, rows[r]) : 0.0f;
        }
        for (int i = 0; i < g->M; i++)
            for (int r = 0; r < 4; r++) {
                if (rows[r] < 0) continue;
                float *c = g->C + (ptrdiff_t)i * g->ldc + rows[r];
                float v = out[i][r] + (g->bias ? g->bias[rows[r]] : 0.0f);
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
        float g = c->gate[i], u = c->up[i], s = 1.0f / (1.0f + expf(-g)), d = c->dout[i];
        c->dup[i] = d * g * s; /* inputs are read first: dgate/dup may alias gate/up */
        c->dgate[i] = d * u * s * (1.0f + g * (1.0f - s));
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

/* ---- Qwen2 ops: rotary embedding ----------------------------------------------------------------
   transformers forms the angles in fp32: inv_freq = 1 / theta^(2i/D) rounded to fp32, then
   angle = fp32(pos) * inv_freq rounded to fp32, and cos/sin of that fp32 angle. One ulp of an angle
   near position 2048 is 1e-4 rad, so the same roundings are kept here instead of a float64 angle:
   matching the reference beats being more exact than it. */
#define ARWKV__ROPE_MAX_DIM 1024

typedef struct arwkv__rope_ctx {
    float *x;
    ptrdiff_t ld;
    const int32_t *pos;
    int pos0, n_heads, head_dim;
    float inv_freq[ARWKV__ROPE_MAX_DIM / 2];
} arwkv__rope_ctx;

static void arwkv__rope_range(void *ctx, size_t b, size_t e) {
    arwkv__rope_ctx *c = (arwkv__rope_ctx *)ctx;
    int half = c->head_dim / 2;
    float cs[ARWKV__ROPE_MAX_DIM / 2], sn[ARWKV__ROPE_MAX_DIM / 2];
    for (size_t r = b; r < e; r++) {
        float p = (float)(c->pos ? c->pos[r] : c->pos0 + (int)r);
        for (int i = 0; i < half; i++) { /* one set of angles serves every head of the row */
            float angle = p * c->inv_freq[i];
            cs[i] = (float)cos((double)angle);
            sn[i] = (float)sin((double)angle);
        }
        float *row = c->x + (ptrdiff_t)r * c->ld;
        for (int h = 0; h < c->n_heads; h++) {
            float *x1 = row + (size_t)h * (size_t)c->head_dim, *x2 = x1 + half;
            for (int i = 0; i < half; i++) {
                /* separate products, as the reference rounds each before the sum (no fused multiply-add) */
                float ac = x1[i] * cs[i], bs = x2[i] * sn[i], bc = x2[i] * cs[i], as = x1[i] * sn[i];
                x1[i] = ac - bs;
                x2[i] = bc + as;
            }
        }
    }
}

static arwkv_result arwkv__cpu_rope_forward(arwkv_backend *be, float *x, int rows, int n_heads, int head_dim, ptrdiff_t ld,
                                            const int32_t *pos, int pos0, double theta) {
    if (rows < 0 || n_heads <= 0 || head_dim <= 0 || head_dim % 2 || head_dim > ARWKV__ROPE_MAX_DIM || ld < (ptrdiff_t)n_heads * head_dim ||
        !(theta > 0))
        return arwkv__fail(ARWKV_ERR_INVALID_ARGUMENT, "rope: bad shape (rows %d, heads %d, head_dim %d (even, at most %d), row stride %lld, theta %g)",
                           rows, n_heads, head_dim, ARWKV__ROPE_MAX_DIM, (long long)ld, theta);
    arwkv__rope_ctx c;
    c.x = x, c.ld = ld, c.pos = pos, c.pos0 = pos0, c.n_heads = n_heads, c.head_dim = head_dim;
    float base = (float)theta;
    for (int i = 0; i < head_dim / 2; i++) {
        float exponent = (float)(2 * i) / (float)head_dim;
        c.inv_freq[i] = 1.0f / (float)pow((double)base, (double)exponent);
    }
    arwkv__parallel_range(be->pool, (size_t)rows, 16, arwkv__rope_range, &c);
    return ARWKV_OK;
}

/* ---- Qwen2 ops: causal grouped-query attention ------------------------------------------------
   Flash-style: a task owns QB query rows of one head of one sequence and visits the keys in blocks
   of KB, keeping per row the running maximum m, the running sum l of exp(s - m) and the running
   weighted sum of values acc. When a block raises the maximum, l and acc are rescaled by
   exp(m_old - m_new), so the result is softmax(s) . V without ever holding a full row of scores.
   Within a block the scores are a small matrix product: the block's keys are transposed once so the
   kernel runs along keys (4 query rows x 16 keys per step), and P.V runs along the head dimension.
   Tasks write disjoint output rows and sum in a fixed order: any thread count gives the same bits.
   Query heads h and h' of one group read the same keys; each task re-reads them from cache. */
#define ARWKV__ATT_QB 32 /* query rows per task (a multiple of 4) */
#define ARWKV__ATT_KB 64 /* keys per block (a multiple of 16) */
#define ARWKV__ATT_MAX_D 512

typedef struct arwkv__attn_ctx {
    float *out;
    const float *q, *k, *v;
    int B, Tq, p0, H, Hkv, D, n_qblocks;
    ptrdiff_t kv_bs;
    float scale;
    arwkv_pool *pool;
    int oom;
} arwkv__attn_ctx;

/* s[r][0..16) = scale * (q_r . key j) for 4 query rows; kt holds the keys transposed (d-major,
   row stride KB). */
ARWKV_PRIVATE void arwkv__attn_scores_4x16(const float *const *q, const float *kt, int D, float scale, float *s) {
#ifdef ARWKV__AVX2
    __m256 c00 = _mm256_setzero_ps(), c01 = c00, c10 = c00, c11 = c00, c20 = c00, c21 = c00, c30 = c00, c31 = c00, x;
    for (int d = 0; d < D; d++) {
        __m256 k0 = _mm256_loadu_ps(kt + (size_t)d * ARWKV__ATT_KB), k1 = _mm256_loadu_ps(kt + (size_t)d * ARWKV__ATT_KB + 8);
        x = _mm256_broadcast_ss(q[0] + d); c00 = _mm256_fmadd_ps(x, k0, c00); c01 = _mm256_fmadd_ps(x, k1, c01);
        x = _mm256_broadcast_ss(q[1] + d); c10 = _mm256_fmadd_ps(x, k0, c10); c11 = _mm256_fmadd_ps(x, k1, c11);
        x = _mm256_broadcast_ss(q[2] + d); c20 = _mm256_fmadd_ps(x, k0, c20); c21 = _mm256_fmadd_ps(x, k1, c21);
        x = _mm256_broadcast_ss(q[3] + d); c30 = _mm256_fmadd_ps(x, k0, c30); c31 = _mm256_fmadd_ps(x, k1, c31);
    }
    __m256 sc = _mm256_set1_ps(scale);
    _mm256_storeu_ps(s + 0 * ARWKV__ATT_KB, _mm256_mul_ps(c00, sc)); _mm256_storeu_ps(s + 0 * ARWKV__ATT_KB + 8, _mm256_mul_ps(c01, sc));
    _mm256_storeu_ps(s + 1 * ARWKV__ATT_KB, _mm256_mul_ps(c10, sc)); _mm256_storeu_ps(s + 1 * ARWKV__ATT_KB + 8, _mm256_mul_ps(c11, sc));
    _mm256_storeu_ps(s + 2 * ARWKV__ATT_KB, _mm256_mul_ps(c20, sc)); _mm256_storeu_ps(s + 2 * ARWKV__ATT_KB + 8, _mm256_mul_ps(c21, sc));
    _mm256_storeu_ps(s + 3 * ARWKV__ATT_KB, _mm256_mul_ps(c30, sc)); _mm256_storeu_ps(s + 3 * ARWKV__ATT_KB + 8, _mm256_mul_ps(c31, sc));
#else
    float acc[4][16];
    memset(acc, 0, sizeof acc);
    for (int d = 0; d < D; d++) {
        const float *krow = kt + (size_t)d * ARWKV__ATT_KB;
        for (int r = 0; r < 4; r++) {
            float x = q[r][d];
            for (int j = 0; j < 16; j++) acc[r][j] += x * krow[j];
        }
    }
    for (int r = 0; r < 4; r++)
        for (int j = 0; j < 16; j++) s[r * ARWKV__ATT_KB + j] = acc[r][j] * scale;
#endif
}

/* acc_r[0..w) += sum_{j < kb} p[r][j] v_j[0..w) for 4 query rows (p row stride KB, acc row stride D,
   value j at v + j*v_ld); w <= 16. */
ARWKV_PRIVATE void arwkv__attn_pv_4xw(const float *p, const float *v, ptrdiff_t v_ld, int kb, float *acc, int D, int w) {
#ifdef ARWKV__AVX2
    if (w == 16) {
        __m256 a00 = _mm256_loadu_ps(acc), a01 = _mm256_loadu_ps(acc + 8), a10 = _mm256_loadu_ps(acc + D),
               a11 = _mm256_loadu_ps(acc + D + 8), a20 = _mm256_loadu_ps(acc + 2 * D), a21 = _mm256_loadu_ps(acc + 2 * D + 8),
               a30 = _mm256_loadu_ps(acc + 3 * D), a31 = _mm256_loadu_ps(acc + 3 * D + 8), x;
        for (int j = 0; j < kb; j++) {
            __m256 v0 = _mm256_loadu_ps(v + j * v_ld), v1 = _mm256_loadu_ps(v + j * v_ld + 8);
            x = _mm256_broadcast_ss(p + j); a00 = _mm256_fmadd_ps(x, v0, a00); a01 = _mm256_fmadd_ps(x, v1, a01);
            x = _mm256_broadcast_ss(p + ARWKV__ATT_KB + j); a10 = _mm256_fmadd_ps(x, v0, a10); a11 = _mm256_fmadd_ps(x, v1, a11);
            x = _mm256_broadcast_ss(p + 2 * ARWKV__ATT_KB + j); a20 = _mm256_fmadd_ps(x, v0, a20); a21 = _mm256_fmadd_ps(x, v1, a21);
            x = _mm256_broadcast_ss(p + 3 * ARWKV__ATT_KB + j); a30 = _mm256_fmadd_ps(x, v0, a30); a31 = _mm256_fmadd_ps(x, v1, a31);
        }
        _mm256_storeu_ps(acc, a00); _mm256_storeu_ps(acc + 8, a01);
        _mm256_storeu_ps(acc + D, a10); _mm256_storeu_ps(acc + D + 8, a11);
        _mm256_storeu_ps(acc + 2 * D, a20); _mm256_storeu_ps(acc + 2 * D + 8, a21);
        _mm256_storeu_ps(acc + 3 * D, a30); _mm256_storeu_ps(acc + 3 * D + 8, a31);
        return;
    }
#endif
    for (int r = 0; r < 4; r++) {
        float *a = acc + (size_t)r * D;
        for (int j = 0; j < kb; j++) {
            float x = p[r * ARWKV__ATT_KB + j];
            const float *vj = v + j * v_ld;
            for (int d = 0; d < w; d++) a[d] += x * vj[d];
        }
    }
}

static void arwkv__attn_task(void *ctx, int task, int thread) {
    arwkv__attn_ctx *c = (arwkv__attn_ctx *)ctx;
    const int QB = ARWKV__ATT_QB, KB = ARWKV__ATT_KB, D = c->D;
    int BH = c->B * c->H;
    int qb = c->n_qblocks - 1 - task / BH; /* the longest blocks (latest queries) first, so they don't finish last */
    int b = (task % BH) / c->H, h = (task % BH) % c->H, g = h / (c->H / c->Hkv);
    int i0 = qb * QB, n_rows = c->Tq - i0 < QB ? c->Tq - i0 : QB;
    float *kt = (float *)arwkv__scratch(c->pool, thread, sizeof(float) * ((size_t)D * KB + (size_t)QB * KB + (size_t)QB * D + 2 * (size_t)QB));
    if (!kt) {
        __atomic_store_n(&c->oom, 1, __ATOMIC_RELAXED);
        return;
    }
    float *s = kt + (size_t)D * KB, *acc = s + (size_t)QB * KB, *mx = acc + (size_t)QB * D, *sum = mx + QB;
    ptrdiff_t q_ld = (ptrdiff_t)c->H * D, kv_ld = (ptrdiff_t)c->Hkv * D;
    const float *qbase = c->q + (ptrdiff_t)(b * c->Tq + i0) * q_ld + (ptrdiff_t)h * D;
    const float *kbase = c->k + b * c->kv_bs + (ptrdiff_t)g * D, *vbase = c->v + b * c->kv_bs + (ptrdiff_t)g * D;
    const float *qrow[ARWKV__ATT_QB];
    for (int r = 0; r < QB; r++) qrow[r] = qbase + (ptrdiff_t)(r < n_rows ? r : n_rows - 1) * q_ld; /* spare rows repeat a real one */
    memset(acc, 0, sizeof(float) * (size_t)QB * D);
    memset(s, 0, sizeof(float) * (size_t)QB * KB);
    for (int r = 0; r < QB; r++) mx[r] = -INFINITY, sum[r] = 0;
    int rows4 = (n_rows + 3) & ~3;
    int n_keys = c->p0 + i0 + n_rows; /* the last row sees keys 0 .. p0+i0+n_rows-1 */
    for (int j0 = 0; j0 < n_keys; j0 += KB) {
        int kb = n_keys - j0 < KB ? n_keys - j0 : KB, kb16 = (kb + 15) & ~15;
        for (int j = 0; j < kb; j++) {
            const float *key = kbase + (ptrdiff_t)(j0 + j) * kv_ld;
            for (int d = 0; d < D; d++) kt[(size_t)d * KB + j] = key[d];
        }
        for (int d = 0; d < D; d++)
            for (int j = kb; j < kb16; j++) kt[(size_t)d * KB + j] = 0;
        for (int r0 = 0; r0 < rows4; r0 += 4)
            for (int j = 0; j < kb16; j += 16) arwkv__attn_scores_4x16(qrow + r0, kt + j, D, c->scale, s + (size_t)r0 * KB + j);
        for (int r = 0; r < rows4; r++) {
            float *sr = s + (size_t)r * KB;
            int n_valid = c->p0 + i0 + r - j0 + 1; /* causal: keys j0 .. p0+i0+r */
            if (n_valid > kb) n_valid = kb;
            if (r >= n_rows || n_valid <= 0) { /* nothing to add in this block */
                memset(sr, 0, sizeof(float) * (size_t)kb);
                continue;
            }
            float m_new = mx[r];
            for (int j = 0; j < n_valid; j++) m_new = sr[j] > m_new ? sr[j] : m_new;
            float alpha = expf(mx[r] - m_new), l = 0; /* exp(-inf) = 0 on the first block */
            for (int j = 0; j < n_valid; j++) {
                sr[j] = expf(sr[j] - m_new);
                l += sr[j];
            }
            for (int j = n_valid; j < kb; j++) sr[j] = 0;
            sum[r] = sum[r] * alpha + l;
            mx[r] = m_new;
            if (alpha != 1.0f)
                for (int d = 0; d < D; d++) acc[(size_t)r * D + d] *= alpha;
        }
        const float *vblock = vbase + (ptrdiff_t)j0 * kv_ld;
        for (int r0 = 0; r0 < rows4; r0 += 4)
            for (int d0 = 0; d0 < D; d0 += 16)
                arwkv__attn_pv_4xw(s + (size_t)r0 * KB, vblock + d0, kv_ld, kb, acc + (size_t)r0 * D + d0, D, D - d0 < 16 ? D - d0 : 16);
    }
    for (int r = 0; r < n_rows; r++) {
        float *o = c->out + (ptrdiff_t)(b * c->Tq + i0 + r) * q_ld + (ptrdiff_t)h * D;
        float inv = 1.0f / sum[r];
        for (int d = 0; d < D; d++) o[d] = acc[(size_t)r * D + d] * inv;
    }
}

static arwkv_result arwkv__cpu_attention_forward(arwkv_backend *be, float *out, const float *q, const float *k, const float *v, int B,
                                                 int Tq, int p0, int H, int Hkv, int D, ptrdiff_t kv_batch_stride) {
    if (B < 0 || Tq < 0 || p0 < 0 || H <= 0 || Hkv <= 0 || H % Hkv || D <= 0 || D > ARWKV__ATT_MAX_D ||
        (B > 1 && kv_batch_stride < (ptrdiff_t)(p0 + Tq) * Hkv * D))
        return arwkv__fail(ARWKV_ERR_INVALID_ARGUMENT,
                           "attention: bad shape (B %d, Tq %d, p0 %d, heads %d, kv heads %d (must divide heads), head_dim %d (at most %d), "
                           "kv batch stride %lld)", B, Tq, p0, H, Hkv, D, ARWKV__ATT_MAX_D, (long long)kv_batch_stride);
    if (B == 0 || Tq == 0) return ARWKV_OK;
    arwkv__attn_ctx c;
    memset(&c, 0, sizeof c);
    c.out = out, c.q = q, c.k = k, c.v = v, c.B = B, c.Tq = Tq, c.p0 = p0, c.H = H, c.Hkv = Hkv, c.D = D;
    c.kv_bs = kv_batch_stride;
    c.scale = (float)(1.0 / sqrt((double)D));
    c.pool = be->pool;
    c.n_qblocks = (Tq + ARWKV__ATT_QB - 1) / ARWKV__ATT_QB;
    arwkv_pool_run(be->pool, B * H * c.n_qblocks, arwkv__attn_task, &c);
    if (c.oom) return arwkv__fail(ARWKV_ERR_OUT_OF_MEMORY, "attention (Tq %d, keys %d, head_dim %d): out of scratch memory", Tq, p0 + Tq, D);
    return ARWKV_OK;
}

#define ARWKV__HAVE_CPU_QWEN_OPS
static const arwkv_qwen_ops arwkv__cpu_qwen_ops = {arwkv__cpu_rope_forward, arwkv__cpu_attention_forward};

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

/* sum_j x[j] y[j] over n (a multiple of 8) in a fixed order of eight partial sums. */
static inline float arwkv__r7_dot(const float *ARWKV__RESTRICT x, const float *ARWKV__RESTRICT y, int n) {
    float acc[8] = {0, 0, 0, 0, 0, 0, 0, 0};
    for (int j = 0; j < n; j += 8)
        for (int l = 0; l < 8; l++) acc[l] += x[j + l] * y[j + l];
    return ((acc[0] + acc[4]) + (acc[2] + acc[6])) + ((acc[1] + acc[5]) + (acc[3] + acc[7]));
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
    if (n_mix > 6) return arwkv__fail(ARWKV_ERR_INVALID_ARGUMENT, "time-mix lerp: %d mixes (at most 6)", n_mix);
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
                    c->dv_first[i] += dv * s;
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
   NULL). */
static void arwkv__wkv7_step(float *ARWKV__RESTRICT S, int N, const float *ARWKV__RESTRICT r, const float *ARWKV__RESTRICT d,
                             const float *ARWKV__RESTRICT k, const float *ARWKV__RESTRICT v, const float *ARWKV__RESTRICT a,
                             const float *ARWKV__RESTRICT b, float *ARWKV__RESTRICT y, float *ARWKV__RESTRICT sa) {
    for (int i = 0; i < N; i++) {
        float *ARWKV__RESTRICT s = S + (size_t)i * N;
        float s_a = arwkv__r7_dot(s, a, N), vi = v[i];
        for (int j = 0; j < N; j++) s[j] = s[j] * d[j] + s_a * b[j] + vi * k[j];
        if (y) y[i] = arwkv__r7_dot(s, r, N);
        if (sa) sa[i] = s_a;
    }
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
    arwkv_pool_run(be->pool, B * H, arwkv__r7_wkv_fwd_task, &c);
    if (c.oom) return arwkv__fail(ARWKV_ERR_OUT_OF_MEMORY, "WKV7 forward: out of scratch memory");
    return ARWKV_OK;
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
            for (int i = 0; i < N; i++) {
                float *ARWKV__RESTRICT g = G + (size_t)i * N;
                const float *ARWKV__RESTRICT before = states + l * NN + (size_t)i * N, *ARWKV__RESTRICT after = before + NN;
                float dyi = dy[i], vi = v[i], sai = s_a[i];
                for (int j = 0; j < N; j++) {
                    g[j] += dyi * r[j];
                    dr[j] += after[j] * dyi;
                    dk[j] += g[j] * vi;
                    db[j] += g[j] * sai;
                    dd[j] += g[j] * before[j];
                }
                float dvi = arwkv__r7_dot(g, k, N), dsa = arwkv__r7_dot(g, b, N);
                for (int j = 0; j < N; j++) {
                    da[j] += before[j] * dsa;
                    g[j] = g[j] * d[j] + dsa * a[j];
                }
                c->dv[o + i] += dvi;
            }
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
    arwkv__r7_wkv_ctx c;
    memset(&c, 0, sizeof c);
    c.B = B, c.T = T, c.H = H, c.N = N, c.r = r, c.decay = decay, c.k = k, c.v = v, c.a = a, c.b = b, c.dy = dy;
    c.ckpt_in = ckpt, c.dstate = dstate, c.dr = dr, c.d_decay = d_decay, c.dk = dk, c.dv = dv, c.da = da, c.db = db;
    c.pool = be->pool;
    arwkv_pool_run(be->pool, B * H, arwkv__r7_wkv_bwd_task, &c);
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
   (the lerps, the WKV inputs, the pre-projection output o) is recomputed by the backward from
   them, which costs a few elementwise passes and saves eleven [B*T, C] arrays per layer.
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
   Floats: max_rows * C * (26 forward + 20 backward), plus LoRA-rank-sized arrays. */
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
                  other layers: their share is added into it
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
    if (layer_index > 0 && (!v_first || !dv_first))
        return arwkv__fail(ARWKV_ERR_INVALID_ARGUMENT, "layer %d: the time-mix backward needs v_first and its gradient", layer_index);
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

/* ---- The teacher: Qwen2ForCausalLM --------------------------------------------------------------
       h = embed[ids]
       for each layer:
           xn = RMSNorm(h; input_layernorm)
           q = xn Wq^T + bq,  k = xn Wk^T + bk,  v = xn Wv^T + bv     H query heads, Hkv key/value heads
           q, k = RoPE(q, k; position)
           a = attention(q, k, v) Wo^T                                causal, GQA; the stage-1 target
           h = h + a
           yn = RMSNorm(h; post_attention_layernorm)
           h = h + W_down (silu(W_gate yn) * (W_up yn))
       hidden = RMSNorm(h; norm);  logits = hidden W_head^T             W_head = embed when tied
   One routine runs a layer for both uses: the batched forward (keys and values of all positions in
   the workspace) and the cached step (new keys and values appended to the cache, queries attending
   to everything cached before them). */

#define ARWKV__TEACHER_MLP_ROWS 512  /* rows per MLP pass: bounds the two [rows, intermediate] buffers */
#define ARWKV__TEACHER_LOGIT_ROWS 16 /* rows per lm_head pass in arwkv_teacher_step */

struct arwkv_teacher {
    arwkv_model *m;
    arwkv_backend *be;
    int cap_rows;                         /* rows the activation buffers hold */
    float *x, *xn, *q, *k, *v, *att, *ao; /* [rows, C], [rows, C], [rows, H*D], [rows, Hkv*D] x2, [rows, H*D], [rows, C] */
    float *gate, *up;                     /* [min(rows, MLP_ROWS), intermediate] */
    int32_t *ids, *pos;                   /* [rows] */
    float *logits;                        /* [LOGIT_ROWS, vocab], allocated by the first step */
};

struct arwkv_kv_cache {
    arwkv_backend *be;
    int n_layers, width; /* width = Hkv * head_dim floats per position */
    int len, cap, max_len;
    float **k, **v;      /* per layer: [cap, width] */
};

ARWKV_PRIVATE void arwkv__teacher_release(arwkv_teacher *t) {
    float **bufs[] = {&t->x, &t->xn, &t->q, &t->k, &t->v, &t->att, &t->ao, &t->gate, &t->up};
    for (size_t i = 0; i < sizeof bufs / sizeof bufs[0]; i++) {
        t->be->mem->free(t->be, *bufs[i]);
        *bufs[i] = NULL;
    }
    t->be->mem->free(t->be, t->ids);
    t->be->mem->free(t->be, t->pos);
    t->ids = t->pos = NULL;
    t->cap_rows = 0;
}

/* Make the activation buffers hold `rows` rows. */
ARWKV_PRIVATE arwkv_result arwkv__teacher_reserve(arwkv_teacher *t, int rows) {
    if (rows <= t->cap_rows) return ARWKV_OK;
    const arwkv_config *c = &t->m->cfg;
    size_t R = (size_t)rows, C = (size_t)c->hidden_size, Q = (size_t)c->num_heads * c->head_dim,
           KV = (size_t)c->num_kv_heads * c->head_dim, F = (size_t)c->intermediate_size;
    size_t mlp_rows = R < ARWKV__TEACHER_MLP_ROWS ? R : ARWKV__TEACHER_MLP_ROWS;
    arwkv__teacher_release(t);
    struct {
        void **p;
        size_t bytes;
    } want[] = {{(void **)&t->x, R * C * 4},      {(void **)&t->xn, R * C * 4},        {(void **)&t->q, R * Q * 4},
                {(void **)&t->k, R * KV * 4},     {(void **)&t->v, R * KV * 4},        {(void **)&t->att, R * Q * 4},
                {(void **)&t->ao, R * C * 4},     {(void **)&t->gate, mlp_rows * F * 4}, {(void **)&t->up, mlp_rows * F * 4},
                {(void **)&t->ids, R * 4},        {(void **)&t->pos, R * 4}};
    for (size_t i = 0; i < sizeof want / sizeof want[0]; i++) {
        arwkv_result r = t->be->mem->alloc(t->be, want[i].bytes, want[i].p);
        if (r != ARWKV_OK) {
            arwkv__teacher_release(t);
            return arwkv__context(r, "teacher workspace for %d rows", rows);
        }
    }
    t->cap_rows = rows;
    return ARWKV_OK;
}

ARWKV_API arwkv_result arwkv_teacher_create(arwkv_model *m, arwkv_teacher **out) {
    *out = NULL;
    if (m->cfg.arch != ARWKV_ARCH_QWEN2)
        return arwkv__fail(ARWKV_ERR_UNSUPPORTED, "%s: the teacher must be a Qwen2ForCausalLM, this model is %s", m->dir ? m->dir : "model",
                           arwkv_arch_name(m->cfg.arch));
    if (!m->be->qwen)
        return arwkv__fail(ARWKV_ERR_UNSUPPORTED, "backend %s has no Qwen ops (rope, attention)", arwkv_backend_name(m->be));
    arwkv_teacher *t = (arwkv_teacher *)arwkv__calloc(1, sizeof *t);
    if (!t) return arwkv__fail(ARWKV_ERR_OUT_OF_MEMORY, "teacher: out of memory");
    t->m = m;
    t->be = m->be;
    *out = t;
    return ARWKV_OK;
}

ARWKV_API void arwkv_teacher_free(arwkv_teacher *t) {
    if (!t) return;
    arwkv__teacher_release(t);
    t->be->mem->free(t->be, t->logits);
    arwkv__free(t);
}

/* y[rows, out] = x[rows, in] W^T (+ b): an nn.Linear through the backend, written with row stride ldy. */
ARWKV_PRIVATE arwkv_result arwkv__teacher_linear(arwkv_backend *be, float *y, ptrdiff_t ldy, const float *x, int rows, const arwkv_param *W,
                                                 const arwkv_param *b, int accumulate) {
    int out = (int)W->shape[0], in = (int)W->shape[1];
    return be->core->gemm(be, rows, out, in, x, in, 1, W->data, W->dtype, 1, in, y, ldy, accumulate, b ? (const float *)b->data : NULL);
}

/* Host ids into backend memory, checked against the vocabulary first (a bad id would read outside
   the embedding table). */
ARWKV_PRIVATE arwkv_result arwkv__teacher_upload_ids(arwkv_teacher *t, const int32_t *ids, int n) {
    int V = t->m->cfg.vocab_size;
    for (int i = 0; i < n; i++)
        if (ids[i] < 0 || ids[i] >= V)
            return arwkv__fail(ARWKV_ERR_INVALID_ARGUMENT, "teacher: token id %d at position %d is outside the vocabulary [0, %d)", (int)ids[i], i, V);
    return t->be->mem->upload(t->be, t->ids, ids, (size_t)n * sizeof(int32_t));
}

/* One decoder layer over B sequences of n new tokens each; t->x [B*n, C] is updated in place. The
   new keys and values go to rows p0..p0+n-1 of kc and vc (sequence b's rows start at b*kv_bs), and
   query i attends to rows 0..p0+i there. Either B == 1 (the cached step), or p0 == 0 and the
   sequences' rows are back to back (kv_bs = n*KV, the batched forward), so that each projection is
   one matrix product over all B*n rows. pos gives each row's position (NULL: p0 + row). */
ARWKV_PRIVATE arwkv_result arwkv__teacher_layer(arwkv_teacher *t, int l, int B, int n, int p0, float *kc, float *vc, ptrdiff_t kv_bs,
                                                const int32_t *pos, arwkv_layer_hook hook, void *user) {
    arwkv_backend *be = t->be;
    const arwkv_config *c = &t->m->cfg;
    const arwkv_layer *L = &t->m->layers[l];
    int C = c->hidden_size, H = c->num_heads, Hkv = c->num_kv_heads, D = c->head_dim, F = c->intermediate_size;
    int KV = Hkv * D, R = B * n;
    ARWKV_ASSERT(B == 1 || (p0 == 0 && kv_bs == (ptrdiff_t)n * KV));
    float *k_new = kc + (ptrdiff_t)p0 * KV, *v_new = vc + (ptrdiff_t)p0 * KV;
    ARWKV__TRY(be->core->rmsnorm_forward(be, t->xn, NULL, t->x, L->in_norm->data, L->in_norm->dtype, R, C, c->rms_norm_eps));
    ARWKV__TRY(arwkv__teacher_linear(be, t->q, H * D, t->xn, R, L->q_w, L->q_b, 0));
    ARWKV__TRY(arwkv__teacher_linear(be, k_new, KV, t->xn, R, L->k_w, L->k_b, 0));
    ARWKV__TRY(arwkv__teacher_linear(be, v_new, KV, t->xn, R, L->v_w, L->v_b, 0));
    ARWKV__TRY(be->qwen->rope_forward(be, t->q, R, H, D, (ptrdiff_t)H * D, pos, p0, c->rope_theta));
    ARWKV__TRY(be->qwen->rope_forward(be, k_new, R, Hkv, D, KV, pos, p0, c->rope_theta));
    ARWKV__TRY(be->qwen->attention_forward(be, t->att, t->q, kc, vc, B, n, p0, H, Hkv, D, kv_bs));
    ARWKV__TRY(arwkv__teacher_linear(be, t->ao, C, t->att, R, L->o_w, L->o_b, 0));
    if (hook) ARWKV__TRY(hook(user, l, t->x, t->xn, t->ao, R));
    ARWKV__TRY(be->core->axpy(be, t->x, 1.0f, t->ao, (size_t)R * C));
    ARWKV__TRY(be->core->rmsnorm_forward(be, t->xn, NULL, t->x, L->post_norm->data, L->post_norm->dtype, R, C, c->rms_norm_eps));
    for (int r0 = 0; r0 < R; r0 += ARWKV__TEACHER_MLP_ROWS) { /* rows are independent here: a chunk at a time */
        int rows = R - r0 < ARWKV__TEACHER_MLP_ROWS ? R - r0 : ARWKV__TEACHER_MLP_ROWS;
        const float *yn = t->xn + (ptrdiff_t)r0 * C;
        ARWKV__TRY(arwkv__teacher_linear(be, t->gate, F, yn, rows, L->mlp_gate, NULL, 0));
        ARWKV__TRY(arwkv__teacher_linear(be, t->up, F, yn, rows, L->mlp_up, NULL, 0));
        ARWKV__TRY(be->core->swiglu_forward(be, t->gate, t->gate, t->up, (size_t)rows * F)); /* elementwise: in place is fine */
        ARWKV__TRY(arwkv__teacher_linear(be, t->x + (ptrdiff_t)r0 * C, C, t->gate, rows, L->mlp_down, NULL, 1)); /* h += MLP */
    }
    return ARWKV_OK;
}

ARWKV_API arwkv_result arwkv_teacher_forward(arwkv_teacher *t, const int32_t *ids, int B, int T, arwkv_layer_hook hook, void *user,
                                             const float **hidden) {
    *hidden = NULL;
    const arwkv_config *c = &t->m->cfg;
    arwkv_backend *be = t->be;
    if (B <= 0 || T <= 0 || (int64_t)B * T > INT_MAX / (c->intermediate_size > c->hidden_size ? c->intermediate_size : c->hidden_size))
        return arwkv__fail(ARWKV_ERR_INVALID_ARGUMENT, "teacher forward: bad batch shape B=%d T=%d", B, T);
    int R = B * T, KV = c->num_kv_heads * c->head_dim;
    ARWKV__TRY(arwkv__teacher_reserve(t, R));
    ARWKV__TRY(arwkv__teacher_upload_ids(t, ids, R));
    int32_t *pos = (int32_t *)arwkv__malloc((size_t)R * sizeof(int32_t));
    if (!pos) return arwkv__fail(ARWKV_ERR_OUT_OF_MEMORY, "teacher forward: out of memory");
    for (int r = 0; r < R; r++) pos[r] = r % T; /* every sequence starts at position 0 */
    arwkv_result res = be->mem->upload(be, t->pos, pos, (size_t)R * sizeof(int32_t));
    arwkv__free(pos);
    ARWKV__TRY(res);
    ARWKV__TRY(be->core->embed_forward(be, t->x, t->ids, R, t->m->embed->data, t->m->embed->dtype, c->hidden_size));
    for (int l = 0; l < c->num_layers; l++) {
        res = arwkv__teacher_layer(t, l, B, T, 0, t->k, t->v, (ptrdiff_t)T * KV, t->pos, hook, user);
        if (res != ARWKV_OK) return arwkv__context(res, "teacher forward, layer %d", l);
    }
    ARWKV__TRY(be->core->rmsnorm_forward(be, t->xn, NULL, t->x, t->m->final_norm->data, t->m->final_norm->dtype, R, c->hidden_size,
                                         c->rms_norm_eps));
    *hidden = t->xn;
    return ARWKV_OK;
}

ARWKV_API arwkv_result arwkv_teacher_logits(arwkv_model *m, const float *hidden, int n_rows, float *logits) {
    if (n_rows < 0) return arwkv__fail(ARWKV_ERR_INVALID_ARGUMENT, "teacher logits: %d rows", n_rows);
    return arwkv__teacher_linear(m->be, logits, m->cfg.vocab_size, hidden, n_rows, m->lm_head, NULL, 0);
}

/* ---- KV cache ---------------------------------------------------------------------------------- */

ARWKV_PRIVATE arwkv_result arwkv__kv_cache_reserve(arwkv_kv_cache *c, int need) {
    if (need <= c->cap) return ARWKV_OK;
    if (c->max_len > 0 && need > c->max_len)
        return arwkv__fail(ARWKV_ERR_INVALID_ARGUMENT, "KV cache full: %d positions needed, max_len is %d (create the cache with a larger "
                           "max_len, or 0 to let it grow)", need, c->max_len);
    int cap = c->max_len > 0 ? c->max_len : (need > 2 * c->cap ? need : 2 * c->cap);
    if (cap < 64 && c->max_len <= 0) cap = 64;
    size_t row = (size_t)c->width * sizeof(float);
    float **nk = (float **)arwkv__calloc((size_t)c->n_layers, sizeof(float *)), **nv = (float **)arwkv__calloc((size_t)c->n_layers, sizeof(float *));
    arwkv_result r = nk && nv ? ARWKV_OK : arwkv__fail(ARWKV_ERR_OUT_OF_MEMORY, "KV cache: out of memory");
    for (int l = 0; l < c->n_layers && r == ARWKV_OK; l++) {
        r = c->be->mem->alloc(c->be, (size_t)cap * row, (void **)&nk[l]);
        if (r == ARWKV_OK) r = c->be->mem->alloc(c->be, (size_t)cap * row, (void **)&nv[l]);
        if (r == ARWKV_OK && c->len > 0) r = c->be->mem->copy(c->be, nk[l], c->k[l], (size_t)c->len * row);
        if (r == ARWKV_OK && c->len > 0) r = c->be->mem->copy(c->be, nv[l], c->v[l], (size_t)c->len * row);
    }
    float **drop_k = r == ARWKV_OK ? c->k : nk, **drop_v = r == ARWKV_OK ? c->v : nv; /* keep the old cache on failure */
    for (int l = 0; l < c->n_layers; l++) {
        if (drop_k) c->be->mem->free(c->be, drop_k[l]);
        if (drop_v) c->be->mem->free(c->be, drop_v[l]);
    }
    arwkv__free(drop_k);
    arwkv__free(drop_v);
    if (r != ARWKV_OK) return arwkv__context(r, "KV cache of %d positions", cap);
    c->k = nk, c->v = nv, c->cap = cap;
    return ARWKV_OK;
}

ARWKV_API arwkv_result arwkv_kv_cache_create(arwkv_model *m, int max_len, arwkv_kv_cache **out) {
    *out = NULL;
    if (m->cfg.arch != ARWKV_ARCH_QWEN2)
        return arwkv__fail(ARWKV_ERR_UNSUPPORTED, "KV cache: the model is %s, not a Qwen2ForCausalLM", arwkv_arch_name(m->cfg.arch));
    arwkv_kv_cache *c = (arwkv_kv_cache *)arwkv__calloc(1, sizeof *c);
    if (!c) return arwkv__fail(ARWKV_ERR_OUT_OF_MEMORY, "KV cache: out of memory");
    c->be = m->be;
    c->n_layers = m->cfg.num_layers;
    c->width = m->cfg.num_kv_heads * m->cfg.head_dim;
    c->max_len = max_len > 0 ? max_len : 0;
    c->k = (float **)arwkv__calloc((size_t)c->n_layers, sizeof(float *));
    c->v = (float **)arwkv__calloc((size_t)c->n_layers, sizeof(float *));
    arwkv_result r = c->k && c->v ? ARWKV_OK : arwkv__fail(ARWKV_ERR_OUT_OF_MEMORY, "KV cache: out of memory");
    if (r == ARWKV_OK && c->max_len > 0) r = arwkv__kv_cache_reserve(c, c->max_len);
    if (r != ARWKV_OK) {
        arwkv_kv_cache_free(c);
        return r;
    }
    *out = c;
    return ARWKV_OK;
}

ARWKV_API void arwkv_kv_cache_free(arwkv_kv_cache *c) {
    if (!c) return;
    for (int l = 0; l < c->n_layers; l++) {
        if (c->k) c->be->mem->free(c->be, c->k[l]);
        if (c->v) c->be->mem->free(c->be, c->v[l]);
    }
    arwkv__free(c->k);
    arwkv__free(c->v);
    arwkv__free(c);
}

ARWKV_API void arwkv_kv_cache_reset(arwkv_kv_cache *c) { c->len = 0; }
ARWKV_API int arwkv_kv_cache_len(const arwkv_kv_cache *c) { return c->len; }
ARWKV_API size_t arwkv_kv_cache_bytes(const arwkv_kv_cache *c) {
    return 2 * (size_t)c->n_layers * (size_t)c->cap * (size_t)c->width * sizeof(float);
}

/* ---- Cached decoding ---------------------------------------------------------------------------- */

ARWKV_API arwkv_result arwkv_teacher_step(arwkv_teacher *t, arwkv_kv_cache *c, const int32_t *ids, int n, float *logits_last,
                                          float *logits_all) {
    const arwkv_config *cfg = &t->m->cfg;
    arwkv_backend *be = t->be;
    int C = cfg->hidden_size, V = cfg->vocab_size;
    if (n <= 0 || n > INT_MAX / (cfg->intermediate_size > C ? cfg->intermediate_size : C))
        return arwkv__fail(ARWKV_ERR_INVALID_ARGUMENT, "teacher step: %d tokens", n);
    if (c->n_layers != cfg->num_layers || c->width != cfg->num_kv_heads * cfg->head_dim || c->be != be)
        return arwkv__fail(ARWKV_ERR_INVALID_ARGUMENT, "teacher step: the KV cache was made for another model (%d layers x %d, this one %d x %d)",
                           c->n_layers, c->width, cfg->num_layers, cfg->num_kv_heads * cfg->head_dim);
    if (c->len > INT_MAX - n) return arwkv__fail(ARWKV_ERR_INVALID_ARGUMENT, "teacher step: position overflow");
    ARWKV__TRY(arwkv__kv_cache_reserve(c, c->len + n));
    ARWKV__TRY(arwkv__teacher_reserve(t, n));
    if (!t->logits && (logits_last || logits_all))
        ARWKV__TRY(be->mem->alloc(be, (size_t)ARWKV__TEACHER_LOGIT_ROWS * V * sizeof(float), (void **)&t->logits));
    ARWKV__TRY(arwkv__teacher_upload_ids(t, ids, n));
    ARWKV__TRY(be->core->embed_forward(be, t->x, t->ids, n, t->m->embed->data, t->m->embed->dtype, C));
    for (int l = 0; l < cfg->num_layers; l++) {
        arwkv_result r = arwkv__teacher_layer(t, l, 1, n, c->len, c->k[l], c->v[l], 0, NULL, NULL, NULL);
        if (r != ARWKV_OK) return arwkv__context(r, "teacher step at position %d, layer %d", c->len, l);
    }
    ARWKV__TRY(be->core->rmsnorm_forward(be, t->xn, NULL, t->x, t->m->final_norm->data, t->m->final_norm->dtype, n, C, cfg->rms_norm_eps));
    if (logits_all)
        for (int r0 = 0; r0 < n; r0 += ARWKV__TEACHER_LOGIT_ROWS) {
            int rows = n - r0 < ARWKV__TEACHER_LOGIT_ROWS ? n - r0 : ARWKV__TEACHER_LOGIT_ROWS;
            ARWKV__TRY(arwkv_teacher_logits(t->m, t->xn + (ptrdiff_t)r0 * C, rows, t->logits));
            ARWKV__TRY(be->mem->download(be, logits_all + (size_t)r0 * V, t->logits, (size_t)rows * V * sizeof(float)));
        }
    if (logits_last && logits_all) memcpy(logits_last, logits_all + (size_t)(n - 1) * V, (size_t)V * sizeof(float));
    else if (logits_last) {
        ARWKV__TRY(arwkv_teacher_logits(t->m, t->xn + (ptrdiff_t)(n - 1) * C, 1, t->logits));
        ARWKV__TRY(be->mem->download(be, logits_last, t->logits, (size_t)V * sizeof(float)));
    }
    c->len += n;
    return ARWKV_OK;
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

ARWKV_API arwkv_result arwkv_student_create(arwkv_model *teacher, const arwkv_student_options *opt_in, arwkv_model **out) {
    *out = NULL;
    arwkv_student_options opt;
    if (opt_in) opt = *opt_in;
    else arwkv_student_options_default(&opt);
    const arwkv_config *tc = &teacher->cfg;
    if (tc->arch != ARWKV_ARCH_QWEN2)
        return arwkv__fail(ARWKV_ERR_UNSUPPORTED, "a student is made from a Qwen2ForCausalLM teacher, not %s", arwkv_arch_name(tc->arch));
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

/* ---- Running a student: the RNN ------------------------------------------------------------------------
   The layer stack around the time mix is Qwen's: embedding, then per layer
       xn = RMSNorm(x);  h = x + TimeMix(xn);  x' = h + MLP(RMSNorm(h))
   and a final RMSNorm. Training keeps per layer the inputs of every step (x, xn, h, RMSNorm(h)
   and the norms' reciprocal roots) plus the time mix's own activations; the MLP's intermediate
   arrays are recomputed in the backward from RMSNorm(h), which costs two matrix products per
   layer and saves three [rows, intermediate] arrays per layer. */

struct arwkv_rnn_state {
    arwkv_model *m;
    int L, C, HNN;     /* layers, width, WKV floats per layer (H * N * N) */
    float *shift;      /* [L][C] the previous token's normalized input, per layer */
    float *wkv;        /* [L][H*N*N] fp32 WKV matrices */
    int64_t tokens;
};

#define ARWKV__RNN_STEP_CHUNK 256 /* tokens per forward inside arwkv_rnn_step (bounds its memory) */
#define ARWKV__LOGIT_ROWS 64      /* rows of logits alive at a time */

struct arwkv_rnn {
    arwkv_model *m;
    arwkv_backend *be;
    arwkv_tmix7_dims d7;
    int L, C, F, V;
    int cap_rows, cap_train_rows, cap_B, cap_T; /* what the buffers hold */
    int B, T, trained;                          /* the last forward */
    int32_t *ids;                  /* [rows] */
    float *x;                      /* [L+1][rows][C] when training, else [2][rows][C] */
    float *xn, *h, *yn;            /* [L][rows][C] when training, else [rows][C] */
    float *rstd1, *rstd2;          /* [L][rows] when training, else [rows] */
    float *att, *v_first, *hn, *rstdf;
    float *gate, *up, *act;        /* [rows][F] scratch */
    float *shift_b, *wkv_b;        /* one layer's state of B sequences */
    float *dx, *dxn, *dv_first;    /* backward: [rows][C] */
    float *logits;                 /* [LOGIT_ROWS][V] for steps */
    arwkv__tmix7_acts **acts7;     /* [L] when training */
    arwkv__tmix7_work *work7;
};

ARWKV_PRIVATE int arwkv__rnn_heads(const arwkv_model *m, int *N) {
    *N = m->cfg.head_size;
    return m->cfg.hidden_size / m->cfg.head_size;
}

ARWKV_API arwkv_result arwkv_rnn_state_create(arwkv_model *m, arwkv_rnn_state **out) {
    *out = NULL;
    if (m->cfg.arch != ARWKV_ARCH_ARWKV7 && m->cfg.arch != ARWKV_ARCH_QRWKV6)
        return arwkv__fail(ARWKV_ERR_UNSUPPORTED, "%s is not a recurrent student (no state to create)", arwkv_arch_name(m->cfg.arch));
    arwkv_rnn_state *s = (arwkv_rnn_state *)arwkv__calloc(1, sizeof *s);
    if (!s) return arwkv__fail(ARWKV_ERR_OUT_OF_MEMORY, "out of memory");
    int N, H = arwkv__rnn_heads(m, &N);
    s->m = m, s->L = m->cfg.num_layers, s->C = m->cfg.hidden_size, s->HNN = H * N * N;
    arwkv_result r = m->be->mem->alloc(m->be, (size_t)s->L * s->C * sizeof(float), (void **)&s->shift);
    if (r == ARWKV_OK) r = m->be->mem->alloc(m->be, (size_t)s->L * s->HNN * sizeof(float), (void **)&s->wkv);
    if (r != ARWKV_OK) {
        arwkv_rnn_state_free(s);
        return r;
    }
    *out = s;
    return ARWKV_OK;
}

ARWKV_API void arwkv_rnn_state_free(arwkv_rnn_state *s) {
    if (!s) return;
    s->m->be->mem->free(s->m->be, s->shift);
    s->m->be->mem->free(s->m->be, s->wkv);
    arwkv__free(s);
}

ARWKV_API arwkv_result arwkv_rnn_state_reset(arwkv_rnn_state *s) {
    arwkv_backend *be = s->m->be;
    s->tokens = 0;
    ARWKV__TRY(be->mem->zero(be, s->shift, (size_t)s->L * s->C * sizeof(float)));
    return be->mem->zero(be, s->wkv, (size_t)s->L * s->HNN * sizeof(float));
}

ARWKV_API arwkv_result arwkv_rnn_state_copy(arwkv_rnn_state *dst, const arwkv_rnn_state *src) {
    if (dst->m != src->m) return arwkv__fail(ARWKV_ERR_INVALID_ARGUMENT, "state copy between different models");
    arwkv_backend *be = src->m->be;
    dst->tokens = src->tokens;
    ARWKV__TRY(be->mem->copy(be, dst->shift, src->shift, (size_t)src->L * src->C * sizeof(float)));
    return be->mem->copy(be, dst->wkv, src->wkv, (size_t)src->L * src->HNN * sizeof(float));
}

ARWKV_API size_t arwkv_rnn_state_bytes(const arwkv_rnn_state *s) { return (size_t)s->L * ((size_t)s->C + (size_t)s->HNN) * sizeof(float); }
ARWKV_API int64_t arwkv_rnn_state_tokens(const arwkv_rnn_state *s) { return s->tokens; }

/* A fingerprint of a model: its shape and a hash of a few parameter values, so a state saved for one
   model is not silently loaded into another of the same shape. */
ARWKV_PRIVATE uint64_t arwkv__model_fingerprint(arwkv_model *m) {
    char head[256];
    snprintf(head, sizeof head, "%s/%d/%d/%d/%d", arwkv_arch_name(m->cfg.arch), m->cfg.hidden_size, m->cfg.num_layers,
             m->cfg.vocab_size, m->cfg.intermediate_size);
    uint64_t h = arwkv__hash(head, strlen(head));
    float probe[64];
    for (int l = 0; l < m->cfg.num_layers; l++) {
        arwkv_param *p = m->layers[l].in_norm;
        int64_t n = p->numel < 64 ? p->numel : 64;
        if (p->numel <= 64 && arwkv_param_read(m, p, probe, p->numel) == ARWKV_OK) h ^= arwkv__hash((const char *)probe, (size_t)n * 4) + (uint64_t)l;
        else {
            float *all = (float *)arwkv__malloc((size_t)p->numel * sizeof(float));
            if (all && arwkv_param_read(m, p, all, p->numel) == ARWKV_OK) h ^= arwkv__hash((const char *)all, (size_t)n * 4) + (uint64_t)l;
            arwkv__free(all);
        }
        h *= 1099511628211ull;
    }
    return h;
}

ARWKV_API arwkv_result arwkv_rnn_state_save(const arwkv_rnn_state *s, const char *path) {
    arwkv_backend *be = s->m->be;
    size_t ns = (size_t)s->L * s->C, nw = (size_t)s->L * s->HNN;
    float *host = (float *)arwkv__malloc((ns + nw) * sizeof(float));
    if (!host) return arwkv__fail(ARWKV_ERR_OUT_OF_MEMORY, "%s: out of memory", path);
    arwkv_result r = be->mem->download(be, host, s->shift, ns * sizeof(float));
    if (r == ARWKV_OK) r = be->mem->download(be, host + ns, s->wkv, nw * sizeof(float));
    char fp[32], tok[32];
    snprintf(fp, sizeof fp, "%016llx", (unsigned long long)arwkv__model_fingerprint(s->m));
    snprintf(tok, sizeof tok, "%lld", (long long)s->tokens);
    const char *meta[8] = {"format", "arwkv-rnn-state", "architecture", arwkv_arch_name(s->m->cfg.arch), "model_fingerprint", fp,
                           "tokens", tok};
    arwkv_st_entry e[2] = {{"shift", ARWKV_F32, 2, {s->L, s->C}, host}, {"wkv", ARWKV_F32, 2, {s->L, s->HNN}, host + ns}};
    if (r == ARWKV_OK) r = arwkv_st_write(path, e, 2, meta, 4);
    arwkv__free(host);
    return r;
}

ARWKV_API arwkv_result arwkv_rnn_state_load(arwkv_rnn_state *s, const char *path) {
    arwkv_safetensors *st;
    ARWKV__TRY(arwkv_st_open(path, &st));
    arwkv_result r = ARWKV_OK;
    const char *format = arwkv_st_metadata(st, "format"), *fp = arwkv_st_metadata(st, "model_fingerprint"),
               *tok = arwkv_st_metadata(st, "tokens");
    char want[32];
    snprintf(want, sizeof want, "%016llx", (unsigned long long)arwkv__model_fingerprint(s->m));
    const arwkv_tensor_info *sh = arwkv_st_find(st, "shift"), *wk = arwkv_st_find(st, "wkv");
    if (!format || strcmp(format, "arwkv-rnn-state") != 0)
        r = arwkv__fail(ARWKV_ERR_FORMAT, "%s: not a saved conversation state (no format arwkv-rnn-state in its metadata)", path);
    else if (!fp || strcmp(fp, want) != 0)
        r = arwkv__fail(ARWKV_ERR_INVALID_ARGUMENT, "%s: saved from another model (fingerprint %s, this model %s); load it with the model that saved it",
                        path, fp ? fp : "none", want);
    else if (!sh || !wk || sh->dtype != ARWKV_F32 || wk->dtype != ARWKV_F32 || sh->numel != (int64_t)s->L * s->C ||
             wk->numel != (int64_t)s->L * s->HNN)
        r = arwkv__fail(ARWKV_ERR_SHAPE, "%s: tensors 'shift' and 'wkv' do not have this model's state shape", path);
    if (r == ARWKV_OK) r = s->m->be->mem->upload(s->m->be, s->shift, sh->data, sh->nbytes);
    if (r == ARWKV_OK) r = s->m->be->mem->upload(s->m->be, s->wkv, wk->data, wk->nbytes);
    if (r == ARWKV_OK) s->tokens = tok ? strtoll(tok, NULL, 10) : 0;
    arwkv_st_close(st);
    return r;
}

/* ---- the workspace ---- */

ARWKV_PRIVATE void arwkv__rnn_release(arwkv_rnn *r) {
    arwkv_backend *be = r->be;
    void *bufs[] = {r->ids, r->x, r->xn, r->h, r->yn, r->rstd1, r->rstd2, r->att, r->v_first, r->hn, r->rstdf, r->gate, r->up,
                    r->act, r->shift_b, r->wkv_b, r->dx, r->dxn, r->dv_first};
    for (size_t i = 0; i < sizeof bufs / sizeof bufs[0]; i++) be->mem->free(be, bufs[i]);
    if (r->acts7)
        for (int l = 0; l < r->L; l++) arwkv__tmix7_acts_free(be, r->acts7[l]);
    arwkv__free(r->acts7);
    arwkv__tmix7_work_free(be, r->work7);
    r->ids = NULL, r->x = r->xn = r->h = r->yn = r->rstd1 = r->rstd2 = r->att = r->v_first = r->hn = r->rstdf = NULL;
    r->gate = r->up = r->act = r->shift_b = r->wkv_b = r->dx = r->dxn = r->dv_first = NULL;
    r->acts7 = NULL, r->work7 = NULL;
    r->cap_rows = r->cap_train_rows = r->cap_B = r->cap_T = 0;
}

ARWKV_API arwkv_result arwkv_rnn_create(arwkv_model *m, arwkv_rnn **out) {
    *out = NULL;
    if (m->cfg.arch != ARWKV_ARCH_ARWKV7)
        return arwkv__fail(ARWKV_ERR_UNSUPPORTED, "arwkv_rnn runs ARWKV-7 students; %s is not one", arwkv_arch_name(m->cfg.arch));
    arwkv_rnn *r = (arwkv_rnn *)arwkv__calloc(1, sizeof *r);
    if (!r) return arwkv__fail(ARWKV_ERR_OUT_OF_MEMORY, "out of memory");
    r->m = m, r->be = m->be, r->L = m->cfg.num_layers, r->C = m->cfg.hidden_size, r->F = m->cfg.intermediate_size;
    r->V = m->cfg.vocab_size;
    arwkv_result res = arwkv__tmix7_dims(&m->cfg, m->rank_w, m->rank_a, m->rank_v, m->rank_g, &r->d7);
    if (res == ARWKV_OK && !m->be->rwkv7) res = arwkv__fail(ARWKV_ERR_UNSUPPORTED, "backend %s has no RWKV-7 ops", m->be->name);
    if (res != ARWKV_OK) {
        arwkv__free(r);
        return res;
    }
    *out = r;
    return ARWKV_OK;
}

ARWKV_API void arwkv_rnn_free(arwkv_rnn *r) {
    if (!r) return;
    arwkv__rnn_release(r);
    arwkv_backend *be = r->be;
    be->mem->free(be, r->logits);
    arwkv__free(r);
}

/* Make the buffers hold B x T tokens (for training, with per-layer activations). */
ARWKV_PRIVATE arwkv_result arwkv__rnn_reserve(arwkv_rnn *r, int B, int T, int train) {
    int rows = B * T;
    int ok = rows <= r->cap_rows && B <= r->cap_B && (!train || (rows <= r->cap_train_rows && T <= r->cap_T));
    if (ok) return ARWKV_OK;
    arwkv__rnn_release(r);
    arwkv_backend *be = r->be;
    size_t R = (size_t)rows, C = (size_t)r->C, L = (size_t)r->L, keep = train ? L : 1;
    int N, H = arwkv__rnn_heads(r->m, &N);
    arwkv_result res = ARWKV_OK;
#define ARWKV__ALLOC(ptr, n) \
    if (res == ARWKV_OK) res = be->mem->alloc(be, (size_t)(n) * sizeof(*(ptr)), (void **)&(ptr))
    ARWKV__ALLOC(r->ids, R);
    ARWKV__ALLOC(r->x, (train ? L + 1 : 2) * R * C);
    ARWKV__ALLOC(r->xn, keep * R * C);
    ARWKV__ALLOC(r->h, keep * R * C);
    ARWKV__ALLOC(r->yn, keep * R * C);
    ARWKV__ALLOC(r->rstd1, keep * R);
    ARWKV__ALLOC(r->rstd2, keep * R);
    ARWKV__ALLOC(r->att, R * C);
    ARWKV__ALLOC(r->v_first, R * C);
    ARWKV__ALLOC(r->hn, R * C);
    ARWKV__ALLOC(r->rstdf, R);
    ARWKV__ALLOC(r->gate, R * (size_t)r->F);
    ARWKV__ALLOC(r->up, R * (size_t)r->F);
    ARWKV__ALLOC(r->act, R * (size_t)r->F);
    ARWKV__ALLOC(r->shift_b, (size_t)B * C);
    ARWKV__ALLOC(r->wkv_b, (size_t)B * H * N * N);
    if (train) {
        ARWKV__ALLOC(r->dx, R * C);
        ARWKV__ALLOC(r->dxn, R * C);
        ARWKV__ALLOC(r->dv_first, R * C);
    }
#undef ARWKV__ALLOC
    if (res == ARWKV_OK && train) {
        r->acts7 = (arwkv__tmix7_acts **)arwkv__calloc(L, sizeof *r->acts7);
        if (!r->acts7) res = arwkv__fail(ARWKV_ERR_OUT_OF_MEMORY, "out of memory");
        for (size_t l = 0; l < L && res == ARWKV_OK; l++) res = arwkv__tmix7_acts_create(be, &r->d7, B, T, &r->acts7[l]);
    }
    if (res == ARWKV_OK) res = arwkv__tmix7_work_create(be, &r->d7, rows, train, &r->work7);
    if (res != ARWKV_OK) {
        arwkv__rnn_release(r);
        return arwkv__context(res, "student workspace for %d x %d tokens", B, T);
    }
    r->cap_rows = rows, r->cap_B = B;
    if (train) r->cap_train_rows = rows, r->cap_T = T;
    return ARWKV_OK;
}

/* y[M, out] = x[M, in] . W^T for an nn.Linear weight W [out, in] of any stored type. */
ARWKV_PRIVATE arwkv_result arwkv__linear_fwd(arwkv_backend *be, int M, const float *x, const arwkv_param *W, float *y, int accumulate) {
    int out = (int)W->shape[0], in = (int)W->shape[1];
    return be->core->gemm(be, M, out, in, x, in, 1, W->data, W->dtype, 1, in, y, out, accumulate, NULL);
}
/* Its backward: dx (+)= dy . W (if dx), and W's gradient += dy^T . x (if W trains). */
ARWKV_PRIVATE arwkv_result arwkv__linear_bwd(arwkv_backend *be, int M, const float *x, const arwkv_param *W, const float *dy, float *dx,
                                             int accumulate_dx) {
    int out = (int)W->shape[0], in = (int)W->shape[1];
    if (dx) ARWKV__TRY(be->core->gemm(be, M, in, out, dy, out, 1, W->data, W->dtype, in, 1, dx, in, accumulate_dx, NULL));
    if (W->trainable) ARWKV__TRY(be->core->gemm(be, out, in, M, dy, 1, out, x, ARWKV_F32, in, 1, W->grad, in, 1, NULL));
    return ARWKV_OK;
}

/* Move one layer's state of B sequences between the per-sequence states and the contiguous
   [B, ...] arrays the time mix reads (to_batch) or back. */
ARWKV_PRIVATE arwkv_result arwkv__rnn_state_io(arwkv_rnn *r, arwkv_rnn_state **states, int B, int l, int to_batch) {
    arwkv_backend *be = r->be;
    for (int b = 0; b < B; b++) {
        arwkv_rnn_state *s = states[b];
        size_t C = (size_t)s->C, W = (size_t)s->HNN;
        float *ps = s->shift + (size_t)l * C, *pw = s->wkv + (size_t)l * W, *bs = r->shift_b + b * C, *bw = r->wkv_b + b * W;
        ARWKV__TRY(be->mem->copy(be, to_batch ? bs : ps, to_batch ? ps : bs, C * sizeof(float)));
        ARWKV__TRY(be->mem->copy(be, to_batch ? bw : pw, to_batch ? pw : bw, W * sizeof(float)));
    }
    return ARWKV_OK;
}

ARWKV_API arwkv_result arwkv_rnn_forward(arwkv_rnn *r, const int32_t *ids, int B, int T, arwkv_rnn_state **states, int train,
                                         const float **hidden) {
    arwkv_model *m = r->m;
    arwkv_backend *be = r->be;
    if (B <= 0 || T <= 0) return arwkv__fail(ARWKV_ERR_INVALID_ARGUMENT, "student forward over %d x %d tokens", B, T);
    for (int i = 0; i < B * T; i++)
        if (ids[i] < 0 || ids[i] >= r->V)
            return arwkv__fail(ARWKV_ERR_INVALID_ARGUMENT, "token id %d at position %d is outside the vocabulary (0..%d)", ids[i], i, r->V - 1);
    if (states)
        for (int b = 0; b < B; b++)
            if (!states[b] || states[b]->m != m) return arwkv__fail(ARWKV_ERR_INVALID_ARGUMENT, "state %d does not belong to this model", b);
    ARWKV__TRY(arwkv__rnn_reserve(r, B, T, train));
    int M = B * T, C = r->C, L = r->L;
    size_t MC = (size_t)M * C;
    float eps = m->cfg.rms_norm_eps;
    r->B = B, r->T = T, r->trained = train;
    ARWKV__TRY(be->mem->upload(be, r->ids, ids, (size_t)M * sizeof(int32_t)));
    arwkv_result res = be->core->embed_forward(be, r->x, r->ids, M, m->embed->data, m->embed->dtype, C);
    for (int l = 0; l < L && res == ARWKV_OK; l++) {
        const arwkv_layer *ly = &m->layers[l];
        float *x = r->x + (train ? (size_t)l : (size_t)(l & 1)) * MC, *xnext = r->x + (train ? (size_t)l + 1 : (size_t)((l + 1) & 1)) * MC;
        size_t k = train ? (size_t)l : 0;
        float *xn = r->xn + k * MC, *h = r->h + k * MC, *yn = r->yn + k * MC, *rs1 = r->rstd1 + k * M, *rs2 = r->rstd2 + k * M;
        res = be->core->rmsnorm_forward(be, xn, rs1, x, ly->in_norm->data, ly->in_norm->dtype, M, C, eps);
        if (res == ARWKV_OK && states) res = arwkv__rnn_state_io(r, states, B, l, 1);
        if (res == ARWKV_OK)
            res = arwkv__tmix7_forward(be, ly, l, &r->d7, B, T, xn, states ? r->shift_b : NULL, states ? r->wkv_b : NULL, r->v_first,
                                       r->att, train ? r->acts7[l] : NULL, r->work7);
        if (res == ARWKV_OK && states) res = arwkv__rnn_state_io(r, states, B, l, 0);
        /* h = x + att; x' = h + down(silu(gate(yn)) * up(yn)), yn = RMSNorm(h) */
        if (res == ARWKV_OK) res = be->mem->copy(be, h, x, MC * sizeof(float));
        if (res == ARWKV_OK) res = be->core->axpy(be, h, 1.0f, r->att, MC);
        if (res == ARWKV_OK) res = be->core->rmsnorm_forward(be, yn, rs2, h, ly->post_norm->data, ly->post_norm->dtype, M, C, eps);
        if (res == ARWKV_OK) res = arwkv__linear_fwd(be, M, yn, ly->mlp_gate, r->gate, 0);
        if (res == ARWKV_OK) res = arwkv__linear_fwd(be, M, yn, ly->mlp_up, r->up, 0);
        if (res == ARWKV_OK) res = be->core->swiglu_forward(be, r->act, r->gate, r->up, (size_t)M * r->F);
        if (res == ARWKV_OK) res = be->mem->copy(be, xnext, h, MC * sizeof(float));
        if (res == ARWKV_OK) res = arwkv__linear_fwd(be, M, r->act, ly->mlp_down, xnext, 1);
    }
    float *xL = r->x + (train ? (size_t)L : (size_t)(L & 1)) * MC;
    if (res == ARWKV_OK) res = be->core->rmsnorm_forward(be, r->hn, r->rstdf, xL, m->final_norm->data, m->final_norm->dtype, M, C, eps);
    if (res != ARWKV_OK) return arwkv__context(res, "student forward");
    if (states)
        for (int b = 0; b < B; b++) states[b]->tokens += T;
    *hidden = r->hn;
    return ARWKV_OK;
}

ARWKV_API arwkv_result arwkv_rnn_backward(arwkv_rnn *r, const float *dhidden) {
    arwkv_model *m = r->m;
    arwkv_backend *be = r->be;
    if (!r->trained) return arwkv__fail(ARWKV_ERR_INVALID_ARGUMENT, "student backward without a training forward before it");
    int B = r->B, T = r->T, M = B * T, C = r->C, L = r->L;
    size_t MC = (size_t)M * C, MF = (size_t)M * r->F;
    arwkv_result res = ARWKV_OK;
    /* final norm: dx = d RMSNorm(x_L) */
    const float *xL = r->x + (size_t)L * MC;
    res = be->core->rmsnorm_backward(be, r->dx, m->final_norm->trainable ? m->final_norm->grad : NULL, dhidden, xL,
                                     m->final_norm->data, m->final_norm->dtype, r->rstdf, M, C, 0);
    if (res == ARWKV_OK) res = be->mem->zero(be, r->dv_first, MC * sizeof(float));
    for (int l = L - 1; l >= 0 && res == ARWKV_OK; l--) {
        const arwkv_layer *ly = &m->layers[l];
        const float *x = r->x + (size_t)l * MC, *xn = r->xn + (size_t)l * MC, *h = r->h + (size_t)l * MC, *yn = r->yn + (size_t)l * MC;
        const float *rs1 = r->rstd1 + (size_t)l * M, *rs2 = r->rstd2 + (size_t)l * M;
        /* the MLP, its intermediates recomputed from yn; r->dx holds d x_{l+1} = d h (residual) */
        res = arwkv__linear_fwd(be, M, yn, ly->mlp_gate, r->gate, 0);
        if (res == ARWKV_OK) res = arwkv__linear_fwd(be, M, yn, ly->mlp_up, r->up, 0);
        if (res == ARWKV_OK && ly->mlp_down->trainable) res = be->core->swiglu_forward(be, r->act, r->gate, r->up, MF);
        /* d act = dx . W_down (into act's place once W_down's gradient has used act) */
        if (res == ARWKV_OK && ly->mlp_down->trainable) {
            int out = (int)ly->mlp_down->shape[0], in = (int)ly->mlp_down->shape[1];
            res = be->core->gemm(be, out, in, M, r->dx, 1, out, r->act, ARWKV_F32, in, 1, ly->mlp_down->grad, in, 1, NULL);
        }
        if (res == ARWKV_OK) {
            int out = (int)ly->mlp_down->shape[0], in = (int)ly->mlp_down->shape[1];
            res = be->core->gemm(be, M, in, out, r->dx, out, 1, ly->mlp_down->data, ly->mlp_down->dtype, in, 1, r->act, in, 0, NULL);
        }
        /* swiglu: act now holds d act; gate and up become their gradients */
        if (res == ARWKV_OK) res = be->core->swiglu_backward(be, r->gate, r->up, r->act, r->gate, r->up, MF);
        /* d yn = d gate . W_gate + d up . W_up (dxn used as the d yn buffer) */
        if (res == ARWKV_OK) res = arwkv__linear_bwd(be, M, yn, ly->mlp_gate, r->gate, r->dxn, 0);
        if (res == ARWKV_OK) res = arwkv__linear_bwd(be, M, yn, ly->mlp_up, r->up, r->dxn, 1);
        /* d h += RMSNorm backward (post-attention norm): r->dx becomes d h */
        if (res == ARWKV_OK)
            res = be->core->rmsnorm_backward(be, r->dx, ly->post_norm->trainable ? ly->post_norm->grad : NULL, r->dxn, h,
                                             ly->post_norm->data, ly->post_norm->dtype, rs2, M, C, 1);
        /* h = x + att: d att = d h; the time mix gives d xn; then d x = d h + d RMSNorm(x) */
        if (res == ARWKV_OK)
            res = arwkv__tmix7_backward(be, ly, l, &r->d7, B, T, xn, r->v_first, r->acts7[l], r->dx, r->dxn, r->dv_first, NULL, NULL,
                                        r->work7);
        if (res == ARWKV_OK)
            res = be->core->rmsnorm_backward(be, r->dx, ly->in_norm->trainable ? ly->in_norm->grad : NULL, r->dxn, x,
                                             ly->in_norm->data, ly->in_norm->dtype, rs1, M, C, 1);
    }
    if (res == ARWKV_OK && m->embed->trainable) res = be->core->embed_backward(be, m->embed->grad, r->ids, M, r->dx, C);
    r->trained = 0; /* the activations are spent (the time-mix backward may reuse its buffers) */
    if (res != ARWKV_OK) return arwkv__context(res, "student backward");
    return ARWKV_OK;
}

ARWKV_API arwkv_result arwkv_rnn_step(arwkv_rnn *r, arwkv_rnn_state *s, const int32_t *ids, int n, float *logits_last, float *logits_all) {
    arwkv_backend *be = r->be;
    if (n <= 0) return arwkv__fail(ARWKV_ERR_INVALID_ARGUMENT, "student step over %d tokens", n);
    if (!r->logits) ARWKV__TRY(be->mem->alloc(be, (size_t)ARWKV__LOGIT_ROWS * r->V * sizeof(float), (void **)&r->logits));
    for (int done = 0; done < n;) {
        int T = n - done < ARWKV__RNN_STEP_CHUNK ? n - done : ARWKV__RNN_STEP_CHUNK;
        const float *hidden;
        ARWKV__TRY(arwkv_rnn_forward(r, ids + done, 1, T, &s, 0, &hidden));
        int first = logits_all ? 0 : (done + T == n ? T - 1 : T);
        for (int row = first; row < T; row += ARWKV__LOGIT_ROWS) {
            int rows = T - row < ARWKV__LOGIT_ROWS ? T - row : ARWKV__LOGIT_ROWS;
            ARWKV__TRY(arwkv_teacher_logits(r->m, hidden + (size_t)row * r->C, rows, r->logits));
            if (logits_all)
                ARWKV__TRY(be->mem->download(be, logits_all + (size_t)(done + row) * r->V, r->logits, (size_t)rows * r->V * sizeof(float)));
            if (logits_last && done + row + rows == n)
                ARWKV__TRY(be->mem->download(be, logits_last, r->logits + (size_t)(rows - 1) * r->V, (size_t)r->V * sizeof(float)));
        }
        done += T;
    }
    return ARWKV_OK;
}

/* @@student-model-impl@@ */


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
    /* the student's new blocks: everything under self_attn except projections inherited from Qwen */
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
/* ---- Sampling ------------------------------------------------------------------------------------------- */

ARWKV_API void arwkv_sampler_options_default(arwkv_sampler_options *o) {
    memset(o, 0, sizeof *o);
    o->temperature = 0.7f;
    o->top_k = 40;
    o->top_p = 0.9f;
    o->min_p = 0.0f;
    o->repetition_penalty = 1.1f;
    o->seed = 1;
}

ARWKV_API arwkv_result arwkv_sampler_init(arwkv_sampler *s, const arwkv_sampler_options *o, int vocab_size) {
    memset(s, 0, sizeof *s);
    if (vocab_size <= 0) return arwkv__fail(ARWKV_ERR_INVALID_ARGUMENT, "sampler: vocabulary size %d", vocab_size);
    if (o->temperature < 0 || o->top_k < 0 || !(o->top_p > 0 && o->top_p <= 1) || o->min_p < 0 || o->min_p > 1 || !(o->repetition_penalty > 0))
        return arwkv__fail(ARWKV_ERR_INVALID_ARGUMENT,
                           "sampler: temperature >= 0, top-k >= 0, 0 < top-p <= 1, 0 <= min-p <= 1, repetition penalty > 0 (got %g, %d, %g, %g, %g)",
                           (double)o->temperature, o->top_k, (double)o->top_p, (double)o->min_p, (double)o->repetition_penalty);
    s->opt = *o;
    s->V = vocab_size;
    s->rng = o->seed * 0x9E3779B97F4A7C15ull + 1;
    s->probs = (float *)arwkv__malloc((size_t)vocab_size * sizeof(float));
    s->cand = arwkv__malloc((size_t)vocab_size * (sizeof(float) + sizeof(int32_t)));
    if (!s->probs || !s->cand) {
        arwkv_sampler_free(s);
        return arwkv__fail(ARWKV_ERR_OUT_OF_MEMORY, "sampler: out of memory");
    }
    return ARWKV_OK;
}

ARWKV_API void arwkv_sampler_free(arwkv_sampler *s) {
    arwkv__free(s->probs);
    arwkv__free(s->cand);
    s->probs = NULL;
    s->cand = NULL;
}

/* qsort has no context argument in C11: sort (probability, id) pairs packed in a struct instead */
typedef struct arwkv__cand {
    float p;
    int32_t id;
} arwkv__cand;
static int arwkv__cand_cmp(const void *a, const void *b) {
    const arwkv__cand *x = (const arwkv__cand *)a, *y = (const arwkv__cand *)b;
    if (x->p != y->p) return x->p > y->p ? -1 : 1;
    return x->id < y->id ? -1 : x->id > y->id;
}

ARWKV_API int32_t arwkv_sample(arwkv_sampler *s, float *logits, const int32_t *recent, int n_recent) {
    int V = s->V;
    const arwkv_sampler_options *o = &s->opt;
    if (o->repetition_penalty != 1.0f)
        for (int i = 0; i < n_recent; i++) {
            int32_t t = recent[i];
            if (t < 0 || t >= V) continue;
            float *l = &logits[t];
            int seen = 0; /* a token repeated in the window is penalized once, not once per copy */
            for (int j = 0; j < i && !seen; j++) seen = recent[j] == t;
            if (!seen) *l = *l > 0 ? *l / o->repetition_penalty : *l * o->repetition_penalty;
        }
    int best = 0;
    for (int i = 1; i < V; i++)
        if (logits[i] > logits[best]) best = i;
    if (o->temperature == 0.0f || V == 1) return best;
    /* probabilities at the temperature, from the max for stability */
    float mx = logits[best];
    double z = 0;
    for (int i = 0; i < V; i++) {
        s->probs[i] = expf((logits[i] - mx) / o->temperature);
        z += s->probs[i];
    }
    /* candidates: top-k by probability (all if 0), sorted descending */
    int k = o->top_k > 0 && o->top_k < V ? o->top_k : V;
    arwkv__cand *c = (arwkv__cand *)s->cand;
    if (k == V) {
        for (int i = 0; i < V; i++) c[i].p = s->probs[i], c[i].id = i;
        qsort(c, (size_t)V, sizeof *c, arwkv__cand_cmp);
    } else { /* keep the k best with a simple selection: a min-heap would do, k is small */
        int n = 0;
        for (int i = 0; i < V; i++) {
            float p = s->probs[i];
            if (n < k) {
                c[n].p = p, c[n].id = i, n++;
                for (int j = n - 1; j > 0 && arwkv__cand_cmp(&c[j], &c[j - 1]) < 0; j--) {
                    arwkv__cand t = c[j];
                    c[j] = c[j - 1], c[j - 1] = t;
                }
            } else if (p > c[k - 1].p) {
                int j = k - 1;
                c[j].p = p, c[j].id = i;
                for (; j > 0 && arwkv__cand_cmp(&c[j], &c[j - 1]) < 0; j--) {
                    arwkv__cand t = c[j];
                    c[j] = c[j - 1], c[j - 1] = t;
                }
            }
        }
    }
    /* top-p and min-p on the normalized candidates */
    int keep = k;
    double cum = 0;
    for (int i = 0; i < k; i++) {
        cum += c[i].p / z;
        if (cum >= o->top_p) {
            keep = i + 1;
            break;
        }
    }
    if (o->min_p > 0)
        for (int i = 1; i < keep; i++)
            if (c[i].p < o->min_p * c[0].p) {
                keep = i;
                break;
            }
    double total = 0;
    for (int i = 0; i < keep; i++) total += c[i].p;
    s->rng ^= s->rng >> 12, s->rng ^= s->rng << 25, s->rng ^= s->rng >> 27;
    double u = (double)((s->rng * 2685821657736338717ull) >> 11) / 9007199254740992.0 * total;
    int32_t pick = c[keep - 1].id;
    for (int i = 0; i < keep; i++) {
        u -= c[i].p;
        if (u < 0) {
            pick = c[i].id;
            break;
        }
    }
    return pick;
}

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
