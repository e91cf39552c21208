/* arwkv.h - ARWKV in one C header: turn a Transformer (Qwen2.5, Llama, Qwen3) into an RNN by distillation.
   No warranty; MIT licence (see the end of this file).

   ============================================================================================
   WHAT THIS IS
   ============================================================================================
   ARWKV keeps a trained Transformer - Qwen2, Llama or Qwen3 (embeddings, RMSNorms, SwiGLU MLPs,
   head) - and replaces each layer's softmax attention by an RWKV-7 "time mix" (or RWKV-6 for
   QRWKV6). The new blocks are not
   pre-trained; they are taught by the Transformer itself:
     stage 1  each time mix learns to reproduce its layer's attention output (teacher-forced);
     stage 2  the whole student learns the teacher's next-token distribution (KL, full vocabulary);
     stage 3  supervised fine-tuning on chat conversations.
   The result needs constant memory per token (a fixed recurrent state, no KV cache).

   This header holds everything on the CPU: JSON, safetensors and GGUF readers, the byte-level BPE
   tokenizers (Qwen2, Llama 3, GPT-2, SmolLM) and chat templates, the Qwen2/Llama/Qwen3 teachers,
   the ARWKV-7 and QRWKV6 students (forward and backward), the distillation losses, AdamW,
   checkpoints and sampling. The companion arwkv_hip.h adds GPU kernels (HIP for MI300X,
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

   The next step is examples/generate.c (80 lines): load any model and its tokenizer, read a prompt
   through an arwkv_session, print the greedy continuation. examples/chat.c and examples/distill.c
   are the full chat binary and the trainer.

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
       ARWKV_POOL_SPIN_US    how long an idle pool thread watches for the next loop before it
                             sleeps (default 100 microseconds; 0 sleeps at once, for machines
                             with more threads than cores)
       ARWKV_NO_MMAP         read files with fread instead of mapping them
       ARWKV_NO_TOKENIZER    leave out the tokenizer and chat templates (SECTION 5, its API block and
                             arwkv_dataset_add_file); models still load and run on token ids, and
                             arwkv_chat_message and its JSON-lines reader stay
       ARWKV_NO_TRAINING     leave out the trainer (SECTION 8 and its API block: options, datasets,
                             checkpoints, memory plan); models, sessions and generation stay. The ops'
                             backward halves stay too: they are slots of the op tables and of the
                             time-mix table that every backend fills

   ============================================================================================
   NUMBERS
   ============================================================================================
   Activations, states, gradients and optimizer moments are fp32 (a few sums float64); bf16 and
   f16 weights stay as stored and are widened to fp32, exactly, where a block of them is read.
   The CPU kernels have three instruction paths, chosen at compile time by -march (the Makefile's
   default is -march=native): AVX-512 (F/BW/VL/DQ), AVX2+FMA and portable C. arwkv_cpu_kernels()
   names the one built; CI tests all three. Every result is deterministic for a given build and
   bit-identical for any number of threads.
     Matrix products: each element of C is one chain of fused multiply-adds from zero over each
       block of 256 k-values, the bias added to the first block's sum, the blocks added to C in
       order. The AVX-512 (6x32), AVX2 (6x16) and C kernels all follow it, so they give the same
       bits (test_foundation checks it against fmaf). The products multiply in fp32 on bf16
       weights widened in registers. AVX512_BF16's vdpbf16ps (bf16 x bf16 pairs summed in fp32)
       runs at twice the FMA peak, but would round every activation and gradient to bf16: a
       relative error of 2^-9 per element, far beyond the 1e-4 agreement with transformers and the
       1e-5 between decoding and the full forward that the tests hold; splitting each activation
       into two or three bf16 parts restores the accuracy but takes two or three dot instructions
       where fp32 takes two FMAs, no faster. So it is not used (arwkv-bench matmul shows its peak).
     The loss over the vocabulary sums in float64 in 8 partial sums (element i into sum i % 8), on
       every path. The decode products (1-4 rows), attention, the WKV6 backward and the loss's
       vectorized exp have AVX2 and C versions whose sums may differ in the last bits; the AVX-512
       build uses the AVX2 versions of the decode products, the WKV6 backward (a 16-lane version
       measured no faster at heads of 64) and the exp, and has attention kernels of 16 lanes that
       keep the AVX2 bits (each lane's chain of fused multiply-adds, the softmax sum in halves of 8).
     The AVX-512 build has its own versions of the following, which differ from an AVX2 build in
       the last bits of the student's time mix and of the teacher's MLP (every test keeps its
       tolerance):
       - WKV7 forward and backward: a row's dot products (S a, S r, G k, G b) are 16 partial sums
         reduced in a tree, where the C loops (which the AVX2 build vectorizes) have 8 added in a
         fixed order. The backward's column sums (dr, dk, db, d_decay, da) add the rows in the C
         order, and it replays the states with the forward's own step (the forward's bits).
       - The time mix's prepare (sigmoids, decay) and SwiGLU take e^x from a polynomial, 16 at a
         time (relative error ~2e-7), where the other builds call libm's expf.
       AdamW, the WKV6 forward, the time mix's lerps and the rest of its prepare backward (the
       same operations in the same order, unfused, float64 row sums lane by lane) and the packing
       of B give the same bits on every path built with gcc, which fuses nothing in C11 mode (clang
       fuses a*b + c in C where the CPU has FMA, so there its C loops differ in the last bit).

   ============================================================================================
   ERRORS
   ============================================================================================
   Every call that can fail returns an arwkv_result (ARWKV_OK is 0). arwkv_result_string() names
   the code; arwkv_last_error() gives the detail of the last failure on this thread: the file, the
   tensor or byte offset, and what to do. Nothing in this library aborts or exits on bad input.

   ============================================================================================
   READING ORDER
   ============================================================================================
   The declarations come first, in blocks titled "API: <topic>"; the implementation follows in the
   sections below. Search for "SECTION 6." (say) to jump to a section, and for "---- " to walk
   the parts named after each section.
     SECTION 1.  Support: errors, allocation, backend memory accounting, files, numbers
                 (bf16/f16), strict option numbers, thread pool
     SECTION 2.  JSON reader
     SECTION 3.  safetensors reader (mmap) and writer (atomic)
     SECTION 3b. GGUF reader and dequantization
     SECTION 4.  config.json of the teachers (Qwen2, Llama, Qwen3) and students (ARWKV-7, QRWKV6)
     SECTION 5.  Tokenizer: Unicode tables, NFC, pre-tokenizer, byte-level BPE, encoding, decoding,
                 loading (tokenizer.json or GGUF), chat templates
     SECTION 6.  Ops and the CPU backend, each op's forward beside its backward: matrix product,
                 backend memory, embedding, RMSNorm, SwiGLU, axpy; Qwen2 rotary embedding and
                 attention; the RWKV-7 time mix ops; RWKV-6 ops and WKV6; losses; optimizer; the
                 op tables filled and arwkv_backend_cpu() last
     SECTION 6b. Time mixes: the ARWKV-7 block and the QRWKV6 block (each forward beside its
                 backward), and the one table (arwkv__tmix_family) through which the model and the
                 trainer use either
     SECTION 7.  Models: parameters and checkpoints, GGUF teachers, saving, the teacher and its KV
                 cache, creating and running a student (the RNN)
     SECTION 8.  Training: options and schedule, trainable parameters, data, checkpoints, output
                 directories, the trainer, the memory plan, data from files
     SECTION 9.  Generation: sampling, sessions, comparing a model with its reference, batched
                 generation, conversations as JSON lines
   The GPU backend, arwkv_hip.h, fills the same op tables with kernels.
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
   API: Results and errors
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
   API: Numbers: element types and conversions
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
/* The instruction set of the CPU kernels this build uses, chosen at compile time by -march:
   "AVX-512", "AVX2+FMA" or "portable C". Infallible. */
ARWKV_API const char *arwkv_cpu_kernels(void);

/* Strict numbers for command-line options, shared by the examples and tools: the whole text must
   be one number (no trailing characters, no "1e3" for an integer, no nan or inf) inside [min, max],
   else ARWKV_ERR_INVALID_ARGUMENT with a message naming the option ("--seq-len: 99999999999 is out
   of range 1 to 2147483647"). *out is written only on success. */
ARWKV_API arwkv_result arwkv_parse_int(const char *option, const char *text, int min, int max, int *out);
ARWKV_API arwkv_result arwkv_parse_float(const char *option, const char *text, double min, double max, float *out);
ARWKV_API arwkv_result arwkv_parse_u64(const char *option, const char *text, uint64_t *out); /* seeds: 0 to 2^64-1 */

/* ============================================================================================
   API: Thread pool
   ============================================================================================
   A fixed set of workers runs the tasks 0..n_tasks-1 of one parallel loop; the caller's thread
   takes part. Which worker runs a task never changes a result: tasks write disjoint outputs. */

typedef struct arwkv_pool arwkv_pool;
typedef void (*arwkv_task_fn)(void *ctx, int task, int thread);

/* n_threads <= 0 picks the number of processors this process may run on (arwkv_cpu_count). */
ARWKV_API arwkv_result arwkv_pool_create(int n_threads, arwkv_pool **out);
/* Processors this process may run on: on Linux the CPUs of its affinity mask (taskset, a
   container's cpuset), elsewhere the online processors; at least 1. */
ARWKV_API int arwkv_cpu_count(void);
/* The number of CPUs in a Linux CPU list such as "0-3,8,10-11" (the Cpus_allowed_list line of
   /proc/self/status); 0 for a list that does not parse. */
ARWKV_API int arwkv_cpu_list_count(const char *list);
ARWKV_API void arwkv_pool_destroy(arwkv_pool *pool);
/* Number of threads, counting the caller's (1 for a NULL pool). Infallible. */
ARWKV_API int arwkv_pool_size(const arwkv_pool *pool);
/* Run fn(ctx, task, thread) for every task; returns when all are done. pool may be NULL. */
ARWKV_API void arwkv_pool_run(arwkv_pool *pool, int n_tasks, arwkv_task_fn fn, void *ctx);

/* ============================================================================================
   API: safetensors
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
   API: GGUF (llama.cpp's single-file format)
   ============================================================================================
   A GGUF file holds typed metadata (key/value pairs, arrays included) and tensors, often
   block-quantized. Versions 2 and 3 are read (little-endian). The file is mapped, every count,
   length, dimension and offset is checked before use, and a bad file gets an error naming the
   byte offset, key or tensor. Tensors stay in their stored type; arwkv_dequantize turns blocks
   into fp32. arwkv_model_load and arwkv_tokenizer_load accept a .gguf path directly. */

typedef enum arwkv_gguf_value_type {
    ARWKV_GGUF_UINT8 = 0, ARWKV_GGUF_INT8 = 1, ARWKV_GGUF_UINT16 = 2, ARWKV_GGUF_INT16 = 3,
    ARWKV_GGUF_UINT32 = 4, ARWKV_GGUF_INT32 = 5, ARWKV_GGUF_FLOAT32 = 6, ARWKV_GGUF_BOOL = 7,
    ARWKV_GGUF_STRING = 8, ARWKV_GGUF_ARRAY = 9, ARWKV_GGUF_UINT64 = 10, ARWKV_GGUF_INT64 = 11,
    ARWKV_GGUF_FLOAT64 = 12
} arwkv_gguf_value_type;

/* ggml tensor types that arwkv_dequantize reads (the numbers are the file's). */
typedef enum arwkv_ggml_type {
    ARWKV_GGML_F32 = 0, ARWKV_GGML_F16 = 1, ARWKV_GGML_Q4_0 = 2, ARWKV_GGML_Q4_1 = 3,
    ARWKV_GGML_Q5_0 = 6, ARWKV_GGML_Q5_1 = 7, ARWKV_GGML_Q8_0 = 8,
    ARWKV_GGML_Q4_K = 12, ARWKV_GGML_Q5_K = 13, ARWKV_GGML_Q6_K = 14, ARWKV_GGML_BF16 = 30
} arwkv_ggml_type;

typedef struct arwkv_gguf_kv {
    const char *key;
    arwkv_gguf_value_type type;      /* ARWKV_GGUF_ARRAY for an array */
    arwkv_gguf_value_type elem_type; /* an array's element type; a scalar's own type */
    uint64_t count;                  /* number of elements of an array; 1 for a scalar */
    uint64_t offset;                 /* file byte offset of the value, for messages */
} arwkv_gguf_kv;

typedef struct arwkv_gguf_tensor {
    const char *name;
    int type;         /* a ggml type number (arwkv_ggml_type or another one the file may hold) */
    int ndim;         /* 1..4 */
    int64_t ne[4];    /* ggml order: ne[0] varies fastest, so a PyTorch [rows, cols] matrix has ne {cols, rows} */
    int64_t numel;
    uint64_t offset;  /* file byte offset of the data */
    const void *data; /* into the mapped file */
    size_t nbytes;
} arwkv_gguf_tensor;

typedef struct arwkv_gguf arwkv_gguf;

ARWKV_API arwkv_result arwkv_gguf_open(const char *path, arwkv_gguf **out);
/* Parse a GGUF image in memory (buf must outlive the handle); name is used in errors. */
ARWKV_API arwkv_result arwkv_gguf_open_memory(const void *buf, size_t len, const char *name, arwkv_gguf **out);
ARWKV_API void arwkv_gguf_close(arwkv_gguf *g);
ARWKV_API uint32_t arwkv_gguf_version(const arwkv_gguf *g);     /* 2 or 3 */
ARWKV_API uint32_t arwkv_gguf_alignment(const arwkv_gguf *g);   /* general.alignment, 32 if absent */
ARWKV_API const char *arwkv_gguf_path(const arwkv_gguf *g);     /* what was opened */
ARWKV_API int arwkv_gguf_kv_count(const arwkv_gguf *g);
ARWKV_API const arwkv_gguf_kv *arwkv_gguf_kv_at(const arwkv_gguf *g, int i);
/* NULL if absent (no error is recorded). */
ARWKV_API const arwkv_gguf_kv *arwkv_gguf_find_kv(const arwkv_gguf *g, const char *key);
/* Element i of a value (i = 0 for a scalar). _int takes integer and bool values (a uint64 above
   INT64_MAX is an error), _float takes any number, _string gives the bytes (not NUL-terminated,
   valid while g is open). A wrong type or an index out of range is an error naming the key. */
ARWKV_API arwkv_result arwkv_gguf_kv_int(const arwkv_gguf *g, const arwkv_gguf_kv *kv, uint64_t i, int64_t *out);
ARWKV_API arwkv_result arwkv_gguf_kv_float(const arwkv_gguf *g, const arwkv_gguf_kv *kv, uint64_t i, double *out);
ARWKV_API arwkv_result arwkv_gguf_kv_string(const arwkv_gguf *g, const arwkv_gguf_kv *kv, uint64_t i, const char **s, size_t *len);
ARWKV_API int arwkv_gguf_tensor_count(const arwkv_gguf *g);
ARWKV_API const arwkv_gguf_tensor *arwkv_gguf_tensor_at(const arwkv_gguf *g, int i);
ARWKV_API const arwkv_gguf_tensor *arwkv_gguf_find_tensor(const arwkv_gguf *g, const char *name); /* NULL if absent */
/* "Q4_K", "F32", ...; "unknown" for a number this library does not know. Infallible. */
ARWKV_API const char *arwkv_ggml_type_name(int type);
/* Values per block of a ggml type, and bytes per block in *block_bytes; 0 for an unknown type. */
ARWKV_API int arwkv_ggml_block_size(int type, size_t *block_bytes);
/* n values of type `type` at src (n a multiple of the block size) into fp32. The types of
   arwkv_ggml_type are supported; any other is ARWKV_ERR_UNSUPPORTED naming it. */
ARWKV_API arwkv_result arwkv_dequantize(int type, const void *src, int64_t n, float *dst);
/* A tensor into fp32, checking that it holds exactly n values; errors name the file and tensor. */
ARWKV_API arwkv_result arwkv_gguf_tensor_f32(const arwkv_gguf *g, const arwkv_gguf_tensor *t, float *dst, int64_t n);

/* ============================================================================================
   API: Model configuration (config.json)
   ============================================================================================ */

typedef enum arwkv_arch {
    ARWKV_ARCH_UNKNOWN = 0,
    ARWKV_ARCH_QWEN2,   /* Qwen2ForCausalLM: a teacher (q/k/v biases) */
    ARWKV_ARCH_ARWKV7,  /* RwkvHybridForCausalLM, wkv_version 7: RWKV-7 time mix in a teacher's blocks */
    ARWKV_ARCH_QRWKV6,  /* RWKV6Qwen2ForCausalLM: RWKV-6 style time mix in a teacher's blocks */
    ARWKV_ARCH_LLAMA,   /* LlamaForCausalLM: a teacher (biases only with attention_bias) */
    ARWKV_ARCH_QWEN3    /* Qwen3ForCausalLM: a teacher (per-head RMSNorm on q and k) */
} arwkv_arch;

ARWKV_API const char *arwkv_arch_name(arwkv_arch a); /* the architectures[] string; infallible */
/* 1 for the softmax-attention Transformers a student is distilled from (Qwen2, Llama, Qwen3). */
ARWKV_API int arwkv_arch_is_teacher(arwkv_arch a);

typedef struct arwkv_config {
    arwkv_arch arch;
    int vocab_size;
    int hidden_size;          /* C */
    int intermediate_size;    /* MLP width */
    int num_layers;
    int num_heads;            /* attention query heads */
    int num_kv_heads;         /* attention key/value heads (GQA) */
    int head_dim;             /* attention head size: "head_dim", else hidden_size / num_heads */
    int qk_norm;              /* Qwen3: per-head RMSNorm of q and k (q_norm, k_norm) before RoPE */
    arwkv_arch base_arch;     /* whose blocks these are: arch for a teacher; for a student, its
                                 teacher's ("teacher_architecture", Qwen2ForCausalLM if absent) */
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
    /* biases of the attention projections (QRWKV6 keeps the teacher's): q/k/v, and o. Qwen2 has
       q/k/v biases and none on o; Llama and Qwen3 have both or neither ("attention_bias") */
    int attention_bias;
    int attention_output_bias;
    /* QRWKV6 */
    int lora_rank_tokenshift;
    int lora_rank_decay;
    char torch_dtype[16];     /* as written ("bfloat16"), "" if absent */
} arwkv_config;

/* Read path (a config.json or a directory holding one). */
ARWKV_API arwkv_result arwkv_config_load(const char *path, arwkv_config *cfg);
/* The config of a llama, qwen2 or qwen3 GGUF file, from its metadata (llama.cpp's keys: block_count,
   embedding_length, attention.head_count(_kv), key_length, feed_forward_length, rope.freq_base,
   attention.layer_norm_rms_epsilon); the vocabulary size from token_embd.weight, a tied head when
   output.weight is absent, biases and bos/eos as the file has them. arwkv_model_load(path.gguf)
   uses it and dequantizes the weights to fp32 (what transformers does with a GGUF file). */
ARWKV_API arwkv_result arwkv_gguf_config(const arwkv_gguf *g, arwkv_config *cfg);
/* Parse config text; name is used in errors. */
ARWKV_API arwkv_result arwkv_config_parse(const char *json, size_t len, const char *name, arwkv_config *cfg);

/* ============================================================================================
   API: Tokenizer
   ============================================================================================ */
#ifndef ARWKV_NO_TOKENIZER
/* Byte-level BPE tokenizers: a Hugging Face tokenizer.json (or the parts a GGUF file holds, see
   arwkv_tokenizer_from_parts) with a BPE model, NFC or no normalizer, the pre-tokenizer of one of
   the families below (each regex written here by hand over embedded Unicode tables) and added
   tokens such as <|im_start|>:
     Qwen2, Qwen2.5, Qwen3   Split(Qwen's regex) + ByteLevel, NFC
     Llama 3                 Split(Llama 3's regex: Qwen's, but numbers in pieces of up to 3 digits)
     GPT-2                   ByteLevel(use_regex): GPT-2's regex
     SmolLM (1, 2)           Digits(individual_digits) + ByteLevel(use_regex): each digit alone
   Encoding gives the same ids as Hugging Face `tokenizers` (tokenizer.encode(text,
   add_special_tokens=False).ids) for every valid UTF-8 text; tests/test_tokenizer.c checks that
   for Qwen and tests/test_tokenizer_families.c for the others, on several megabytes of code and
   prose in many scripts. The steps below are Qwen's; the others differ in step 2 (no NFC) and 3
   (their own regex; SmolLM's first makes every digit a piece). A byte that has no token in the
   vocabulary (SmolLM2 lacks 21, such as 0x04 and 0xF5-0xFF) is left out of the ids, as
   `tokenizers` does; decode(encode(x)) then lacks it.

   Encoding, step by step:
     1. with ARWKV_TOKENIZE_SPECIAL, the contents of the added tokens are found in the raw text
        (leftmost, then longest) and become their ids; the text between them goes through 2-4.
        Without the flag every byte is ordinary text: use that for untrusted input, so that a user
        cannot type "<|im_end|>" into a conversation.
     2. NFC normalization (as tokenizers does it: Unicode 9.0 composition data);
     3. pre-tokenization by the regex
          (?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+
        with Oniguruma's meaning (the engine tokenizers uses): \p{L} and \p{N} of Unicode 16.0, \s the
        White_Space property (U+0085 included), and (?i) letting 's also match U+017F LATIN SMALL
        LETTER LONG S after the apostrophe (U+212A KELVIN SIGN plays no part: no contraction has a k);
     4. byte-level BPE on each piece: the merges of model.merges by rank, leftmost first.

   Bytes that are not valid UTF-8. tokenizers only accepts valid UTF-8; here any byte string can be
   encoded. Each byte that is not part of a valid UTF-8 sequence (a stray continuation byte, a
   truncated sequence, an overlong form, a surrogate, 0xF5..0xFF) is a character of its own that is
   not a letter, number or space (like punctuation), has no decomposition and combining class 0.
   Byte-level BPE covers every byte, so decode(encode(x)) == NFC(x) for ANY byte string x, where NFC
   leaves such bytes unchanged: decode(encode(x)) == x whenever x is already NFC (nearly all text;
   a decomposed "e" + U+0301 comes back as the composed U+00E9, as with tokenizers).

   Decoding gives the exact bytes of the tokens (tokenizers would turn invalid UTF-8 into U+FFFD;
   we keep the bytes). The streaming decoder emits only complete UTF-8 characters, holding back at
   most three bytes of a character that the next token may complete; a byte that can never become
   part of a valid character is emitted at once, unchanged. So the concatenation of everything a
   stream emits (with its final flush) is exactly what arwkv_tokenizer_decode gives. */

typedef struct arwkv_tokenizer arwkv_tokenizer;

/* Load a tokenizer.json, the tokenizer.json inside a model directory, or the tokenizer in a GGUF
   file's metadata (see arwkv_gguf_tokenizer). Anything this tokenizer
   does not implement (another model type, normalizer or pre-tokenizer, a different regex, added
   tokens with lstrip/rstrip/single_word/normalized) is an ARWKV_ERR_UNSUPPORTED error naming the
   field. The 11 MB Qwen file loads in about 0.12 s (arwkv-bench tokenizer measures it). */
ARWKV_API arwkv_result arwkv_tokenizer_load(const char *path, arwkv_tokenizer **out);
/* The same from the text of a tokenizer.json in memory; name is used in errors. */
ARWKV_API arwkv_result arwkv_tokenizer_parse(const char *json, size_t len, const char *name, arwkv_tokenizer **out);
ARWKV_API void arwkv_tokenizer_free(arwkv_tokenizer *tok);
/* Number of ids: 1 + the largest id of the vocabulary and the added tokens (151669 for Qwen2.5;
   the model's embedding may have more rows). Infallible. */
ARWKV_API int32_t arwkv_tokenizer_vocab_size(const arwkv_tokenizer *tok);
/* The id of an added token ("<|im_end|>") or of a vocabulary entry as tokenizer.json spells it
   ("Ġthe"); -1 if there is none. Infallible. */
ARWKV_API int32_t arwkv_tokenizer_token_id(const arwkv_tokenizer *tok, const char *token);
/* The bytes id decodes to (not NUL-terminated; *len set), NULL for an id without a token. The
   pointer lives as long as the tokenizer. Infallible. */
ARWKV_API const char *arwkv_tokenizer_token_bytes(const arwkv_tokenizer *tok, int32_t id, size_t *len);
/* 1 if id is an added token marked "special" in tokenizer.json (<|im_end|>, <|endoftext|>, ...). */
ARWKV_API int arwkv_tokenizer_is_special(const arwkv_tokenizer *tok, int32_t id);

/* The beginning-of-text, end-of-text and padding tokens (-1: none) and whether the model expects
   the beginning-of-text token before every text (Llama-3 does; encoding never adds it: a caller
   that wants it pushes bos_id first). From the parts (below), or for a tokenizer.json from its
   TemplateProcessing post-processor (bos only) and the tokenizer_config.json beside it (bos_token,
   eos_token, pad_token, add_bos_token) when arwkv_tokenizer_load finds one. Infallible. */
ARWKV_API int32_t arwkv_tokenizer_bos_id(const arwkv_tokenizer *tok);
ARWKV_API int32_t arwkv_tokenizer_eos_id(const arwkv_tokenizer *tok);
ARWKV_API int32_t arwkv_tokenizer_pad_id(const arwkv_tokenizer *tok);
ARWKV_API int arwkv_tokenizer_add_bos(const arwkv_tokenizer *tok);

/* ---- A tokenizer from parts (what a GGUF file holds) -------------------------------------------
   A byte-level BPE tokenizer given as arrays instead of a tokenizer.json: the GGUF keys
   tokenizer.ggml.tokens, .merges, .token_type, .bos_token_id, .eos_token_id, .padding_token_id,
   .add_bos_token and .pre. It stands for the tokenizer.json that arwkv_tokenizer_parts_json
   writes, and loads exactly as that file would (errors name the file's fields: model.vocab holds
   the tokens, model.merges the merges). Token types, numbered as llama.cpp does: control tokens
   become special added tokens (matched with ARWKV_TOKENIZE_SPECIAL, like <|im_end|>), user-defined
   ones added tokens that are not special; the others are ordinary vocabulary. The pre-tokenizer is
   named as llama.cpp's tokenizer.ggml.pre names it:
       "qwen2", "deepseek-r1-qwen"           Qwen2's regex, NFC normalization (as Qwen's tokenizer.json)
       "llama-bpe", "llama3", "llama-v3"     Llama-3's regex (Qwen's with up to 3 digits a piece)
       "smollm"                              each digit alone, then GPT-2's regex (SmolLM's original
                                             tokenizer.json; transformers' GGUF reader drops the digits)
       "gpt2", "gpt-2", "default"            GPT-2's regex ("default": a GGUF that names none, read
                                             as a plain byte-level BPE)
   and any other name is an ARWKV_ERR_UNSUPPORTED error that names it. */
enum {
    ARWKV_TOKEN_UNDEFINED = 0, ARWKV_TOKEN_NORMAL = 1, ARWKV_TOKEN_UNKNOWN = 2, ARWKV_TOKEN_CONTROL = 3,
    ARWKV_TOKEN_USER_DEFINED = 4, ARWKV_TOKEN_UNUSED = 5, ARWKV_TOKEN_BYTE = 6
};

typedef struct arwkv_tokenizer_parts {
    const char *name;             /* where the parts come from, for errors ("model.gguf") */
    int32_t n_tokens;
    const char *const *tokens;    /* tokens[id]: spelled in the byte-level alphabet ("Ġthe"), UTF-8 */
    const uint64_t *token_lens;   /* their lengths in bytes; NULL: NUL-terminated strings */
    const int32_t *token_types;   /* ARWKV_TOKEN_*; NULL: all normal */
    int32_t n_merges;
    const char *const *merges;    /* by rank: "left right", one space */
    const uint64_t *merge_lens;   /* NULL: NUL-terminated */
    const char *pre;              /* the pre-tokenizer's name (above) */
    int32_t bos_id, eos_id, pad_id; /* -1: none */
    int add_bos;
} arwkv_tokenizer_parts;

ARWKV_API arwkv_result arwkv_tokenizer_from_parts(const arwkv_tokenizer_parts *parts, arwkv_tokenizer **out);
/* The tokenizer.json the parts stand for (Hugging Face `tokenizers` loads it and encodes the same),
   NUL-terminated, in *json (free with arwkv_free); *len its length. */
ARWKV_API arwkv_result arwkv_tokenizer_parts_json(const arwkv_tokenizer_parts *parts, char **json, size_t *len);
/* The tokenizer of a GGUF file: tokenizer.ggml.model "gpt2" with the parts above read from its
   metadata (tokens, merges, token_type, pre, bos/eos/padding ids, add_bos_token). arwkv_tokenizer_load
   does this for a .gguf path. Another model ("llama": SentencePiece) is ARWKV_ERR_UNSUPPORTED. */
ARWKV_API arwkv_result arwkv_gguf_tokenizer(const arwkv_gguf *g, arwkv_tokenizer **out);

/* A growable list of token ids with one mask byte per token (the chat encoder sets it to 1 on the
   tokens a model must learn; plain encoding appends 0). Start from {0}; free with arwkv_tokens_free. */
typedef struct arwkv_tokens {
    int32_t *ids;
    uint8_t *mask;
    size_t n, cap;
} arwkv_tokens;
ARWKV_API void arwkv_tokens_free(arwkv_tokens *t);

/* Flags of arwkv_tokenizer_encode and the chat functions. */
#define ARWKV_TOKENIZE_SPECIAL 1          /* match added tokens in the text (see above) */
#define ARWKV_CHAT_GENERATION_PROMPT 2    /* end the conversation with "<|im_start|>assistant\n" */

/* Append the ids of text[0..len) to out. Only running out of memory can fail (out is then as it was).
   Safe to call from several threads on one tokenizer. */
ARWKV_API arwkv_result arwkv_tokenizer_encode(const arwkv_tokenizer *tok, const char *text, size_t len, int flags,
                                              arwkv_tokens *out);
/* Write the bytes of ids[0..n) into buf like snprintf: at most cap bytes, NUL-terminated when there
   is room, *len = the full length (call with cap 0 to measure). An id without a token is an
   ARWKV_ERR_INVALID_ARGUMENT error naming its position. */
ARWKV_API arwkv_result arwkv_tokenizer_decode(const arwkv_tokenizer *tok, const int32_t *ids, size_t n, char *buf,
                                              size_t cap, size_t *len);

/* Streaming decoder for printing tokens as they are generated (see above for what it emits). */
typedef struct arwkv_stream_decoder arwkv_stream_decoder;
ARWKV_API arwkv_result arwkv_stream_decoder_create(const arwkv_tokenizer *tok, arwkv_stream_decoder **out);
/* Feed one id; *text and *len: the bytes now complete (valid until the next call). */
ARWKV_API arwkv_result arwkv_stream_decoder_put(arwkv_stream_decoder *d, int32_t id, const char **text, size_t *len);
/* Emit whatever is held back (an incomplete character at the end of the stream) and start over. */
ARWKV_API void arwkv_stream_decoder_flush(arwkv_stream_decoder *d, const char **text, size_t *len);
ARWKV_API void arwkv_stream_decoder_free(arwkv_stream_decoder *d);

/* ---- Chat template ---------------------------------------------------------------------------
   The ChatML format of Qwen2.5, written out in C (no template engine):

       <|im_start|>system\nSYSTEM<|im_end|>\n
       <|im_start|>user\nUSER<|im_end|>\n
       <|im_start|>assistant\nASSISTANT<|im_end|>\n
       ...
       <|im_start|>assistant\n                      (with ARWKV_CHAT_GENERATION_PROMPT)

   A conversation whose first message is not a system message gets ARWKV_CHAT_DEFAULT_SYSTEM. Roles:
   "system", "user", "assistant" and "tool" (consecutive tool results share one user turn, as
   "\n<tool_response>\nRESULT\n</tool_response>" each, as Qwen2.5 does); any other role is an
   ARWKV_ERR_INVALID_ARGUMENT error. Contents are NUL-terminated UTF-8. */
#define ARWKV_CHAT_DEFAULT_SYSTEM "You are Qwen, created by Alibaba Cloud. You are a helpful assistant."

#endif /* ARWKV_NO_TOKENIZER */
/* (kept without the tokenizer: the conversations of SECTION 9's JSON-lines reader are made of these) */
typedef struct arwkv_chat_message {
    const char *role;
    const char *content;
} arwkv_chat_message;
#ifndef ARWKV_NO_TOKENIZER

/* Render a conversation as text, snprintf-style (see arwkv_tokenizer_decode). */
ARWKV_API arwkv_result arwkv_chat_render(const arwkv_chat_message *msgs, int n, int flags, char *buf, size_t cap,
                                         size_t *len);
/* Append the ids of the rendered conversation to out, with mask 1 on what a model must learn in
   supervised fine-tuning: the content of every assistant turn and its closing <|im_end|> (the
   token that ends generation). Everything else has mask 0: system and user turns, the
   "<|im_start|>assistant\n" header (the prompt supplies it at inference), and the "\n" after
   <|im_end|>, which the template adds between turns and the model never generates (generation
   stops at <|im_end|>).
   The template's own markers are always tokens; contents are encoded with `flags`: leave out
   ARWKV_TOKENIZE_SPECIAL for untrusted text. Each content is encoded on its own, exactly as the
   model sees it when it generates after "<|im_start|>assistant\n". That equals tokenizers'
   encode(render(conversation)) except where white space at the edge of a content touches a "\n"
   of the template: tokenizers would pre-tokenize the two together. */
ARWKV_API arwkv_result arwkv_chat_encode(const arwkv_tokenizer *tok, const arwkv_chat_message *msgs, int n, int flags,
                                         arwkv_tokens *out);

/* ---- Chat templates of other families -----------------------------------------------------------
   A model's chat template is Jinja text (tokenizer_config.json's chat_template, a GGUF's
   tokenizer.chat_template). Without a template engine we recognise the two formats it can be:
     ChatML (Qwen2/2.5/3, SmolLM2): as above; the default system prompt is the one the template
         states ('<|im_start|>system\nDEFAULT<|im_end|>\n', SmolLM2's "You are a helpful AI
         assistant named SmolLM, trained by Hugging Face"), none if it states none (Qwen3). Tool
         results go inside a user turn where the template has <tool_response>, and a final answer
         after the last user turn opens with "<think>\n\n</think>\n\n" where it is Qwen3's.
     Llama 3: <|begin_of_text|> then, for each message,
         <|start_header_id|>ROLE<|end_header_id|>\n\nCONTENT<|eot_id|>   (CONTENT trimmed)
         and <|start_header_id|>assistant<|end_header_id|>\n\n as the generation prompt.
   Anything else (Llama 3.1's dated system turn included) is an ARWKV_ERR_UNSUPPORTED error that
   says so; arwkv_chat_template_named chooses a format by name instead. tests/test_chat_template.c
   checks the rendered text against transformers' apply_chat_template. The mask of
   arwkv_chat_template_encode marks each answer and the token that ends it (<|im_end|> or
   <|eot_id|>), as arwkv_chat_encode does. */
typedef struct arwkv_chat_template arwkv_chat_template;
enum { ARWKV_CHAT_CHATML = 1, ARWKV_CHAT_LLAMA3 = 2 };
#define ARWKV_CHAT_CONTINUE 4 /* the messages continue a conversation: no <|begin_of_text|>, no default system */

/* Recognise a template from its Jinja text; name is used in errors. */
ARWKV_API arwkv_result arwkv_chat_template_parse(const char *jinja, size_t len, const char *name, arwkv_chat_template **out);
/* The chat_template of the tokenizer_config.json in a model directory (or beside a tokenizer.json). */
ARWKV_API arwkv_result arwkv_chat_template_load(const char *path, arwkv_chat_template **out);
/* "chatml" or "llama3", with no default system prompt. */
ARWKV_API arwkv_result arwkv_chat_template_named(const char *format, arwkv_chat_template **out);
ARWKV_API void arwkv_chat_template_free(arwkv_chat_template *t);
ARWKV_API int arwkv_chat_template_format(const arwkv_chat_template *t);                /* ARWKV_CHAT_* */
ARWKV_API const char *arwkv_chat_template_default_system(const arwkv_chat_template *t); /* NULL: none */
/* The added token that ends an answer ("<|im_end|>", "<|eot_id|>"): generation stops there. */
ARWKV_API const char *arwkv_chat_template_stop(const arwkv_chat_template *t);
/* The markup that closes an answer, for a program that feeds a conversation turn by turn after
   generating ("<|im_end|>\n", "<|eot_id|>"). */
ARWKV_API const char *arwkv_chat_template_turn_end(const arwkv_chat_template *t);
/* As arwkv_chat_render and arwkv_chat_encode, with this template. */
ARWKV_API arwkv_result arwkv_chat_template_render(const arwkv_chat_template *t, const arwkv_chat_message *msgs, int n, int flags,
                                                  char *buf, size_t cap, size_t *len);
ARWKV_API arwkv_result arwkv_chat_template_encode(const arwkv_chat_template *t, const arwkv_tokenizer *tok,
                                                  const arwkv_chat_message *msgs, int n, int flags, arwkv_tokens *out);

#endif /* ARWKV_NO_TOKENIZER */

/* ============================================================================================
   API: Ops
   ============================================================================================ */
/* ---- Backends ----------------------------------------------------------------------------------
   The model code is written once. It never reads or writes tensor memory itself: every tensor is
   a buffer owned by a backend, and every computation is an op called through the backend's
   tables. The CPU backend is in this file; arwkv_hip.h provides a GPU backend with the same
   tables. Ops are grouped by who needs them, one table each.

   Argument order of every op: the backend first; then what the op writes, then what it reads,
   then sizes and options (destination first, as in memcpy: embed_forward(be, out, ids, T, ...),
   wkv6_forward(be, y, s_out, ckpt, r, k, ...)). A backward op reads the gradients of the forward's
   outputs and writes those of its inputs, adding (+=) into parameter gradients unless its comment
   says otherwise. An op that would take more than about a dozen pointers takes one argument struct
   instead, shared by its forward and backward (arwkv_r7_prepare_args, arwkv_r7_finish_args), so
   that two tensors cannot be swapped unseen. Older exceptions, kept because every caller and both
   backends follow them: gemm takes BLAS's order (sizes, A, B, C), and wkv7_forward/backward take
   their sizes first and their outputs last. */

typedef struct arwkv_backend arwkv_backend;

/* A CPU backend with n_threads threads (<= 0: arwkv_cpu_count(), the CPUs this process may use). */
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
    /* Host memory the backend copies from without staging (pinned on a GPU, plain on the CPU). */
    arwkv_result (*host_alloc)(arwkv_backend *be, size_t bytes, void **out);
    void (*host_free)(arwkv_backend *be, void *p);
    /* Streaming (the teacher's layers): upload_async queues a copy on lane 0 or 1 that starts once all
       work queued before it is done, and returns at once (src stays untouched until that lane is
       waited for); upload_wait makes all work queued after it wait for the lane's copies. */
    arwkv_result (*upload_async)(arwkv_backend *be, int lane, void *dst, const void *src, size_t bytes);
    arwkv_result (*upload_wait)(arwkv_backend *be, int lane);
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
    /* Free and total bytes of the backend's memory (NULL: the host's, from the operating system). */
    arwkv_result (*memory_info)(arwkv_backend *be, uint64_t *free_bytes, uint64_t *total_bytes);
    /* Memory accounting, kept by the backend's alloc and free (read it with arwkv_backend_memory). */
    uint64_t mem_in_use, mem_peak, mem_limit;
    void *mem_sizes; /* private: the size of every live allocation */
};

/* ---- Memory accounting -------------------------------------------------------------------------
   Every byte a backend allocates for tensors (alloc above, and a GPU's scratch space) is counted:
   what is in use now, the peak since the backend was made (or the last reset), and an optional
   limit past which alloc fails with ARWKV_ERR_OUT_OF_MEMORY instead of asking the system. Checkpoints
   mapped from disk by the CPU backend are not allocations and are not counted. */
typedef struct arwkv_memory_use {
    uint64_t in_use, peak, limit; /* bytes; limit 0: none */
} arwkv_memory_use;
ARWKV_API void arwkv_backend_memory(const arwkv_backend *be, arwkv_memory_use *out); /* infallible */
ARWKV_API void arwkv_backend_reset_peak(arwkv_backend *be);                           /* peak = in use */
ARWKV_API void arwkv_backend_set_memory_limit(arwkv_backend *be, uint64_t bytes);     /* 0: no limit */
/* Free and total memory where the backend's tensors live: the device's, or the host's available
   memory (MemAvailable) for the CPU backend. */
ARWKV_API arwkv_result arwkv_backend_free_memory(arwkv_backend *be, uint64_t *free_bytes, uint64_t *total_bytes);

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

/* The tensors of the prepare step below, one struct for its forward and its backward: 27 pointers
   passed one by one could be swapped without a compiler noticing. M rows of width C = H*N; arrays
   are [M,C] except the [C] vectors w0 .. k_a and their gradients. Each direction reads and writes
   the members its comment names and ignores the others. */
typedef struct arwkv_r7_prepare_args {
    int M, C, N, first_layer;
    /* inputs, read by both directions; v_lora and v0 are not read on the first layer (may be NULL) */
    const float *k_in, *v_in, *w_lora, *a_lora, *v_lora;
    float *v_first; /* first layer: the forward writes v_in here (NULL: not kept); others: read */
    const float *w0, *a0, *v0, *k_k, *k_a;
    /* forward: written */
    float *decay, *k, *v, *wkv_a, *wkv_b;
    /* backward: the gradients of those outputs, read */
    const float *d_decay, *dk, *dv, *d_wkv_a, *d_wkv_b;
    /* backward: the gradients of the inputs; [M,C] ones written, [C] ones added to */
    float *dk_in, *dv_in, *dw_lora, *da_lora, *dv_lora, *dv_first, *dw0, *da0, *dv0, *dk_k, *dk_a;
} arwkv_r7_prepare_args;

/* The tensors of the finish step below, one struct for its forward and its backward (17 pointers in
   the backward). [M,C] arrays, C = H*N, except the [C] vectors r_k, ln_w, ln_b and their gradients. */
typedef struct arwkv_r7_finish_args {
    int M, C, N;
    /* read by both directions; ln_w and ln_b both or neither (NULL: no group norm), g NULL: no gate */
    const float *y, *r, *k, *v, *r_k, *ln_w, *ln_b, *g;
    float gn_eps;
    float *o; /* forward: written */
    /* backward: d_o read; dy, dr, dk, dv, dg (if g) written; dr_k, dln_w, dln_b added to */
    const float *d_o;
    float *dy, *dr, *dk, *dv, *dg, *dr_k, *dln_w, *dln_b;
} arwkv_r7_finish_args;

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
    arwkv_result (*prepare_forward)(arwkv_backend *be, const arwkv_r7_prepare_args *p);
    /* Gradients of the inputs above from those of the outputs (d_decay .. d_wkv_b). dv_first: first
       layer, read (the gradient of v_first from later layers, NULL: none); other layers, added to
       (NULL: v_first is held constant). */
    arwkv_result (*prepare_backward)(arwkv_backend *be, const arwkv_r7_prepare_args *p);
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
    arwkv_result (*finish_forward)(arwkv_backend *be, const arwkv_r7_finish_args *f);
    /* dy, dr, dk, dv, dg (if g) written; dr_k, dln_w, dln_b added to. */
    arwkv_result (*finish_backward)(arwkv_backend *be, const arwkv_r7_finish_args *f);
};

/* Sizes of one ARWKV-7 time mix, from the config and the LoRA ranks found in the checkpoint. */
typedef struct arwkv_tmix7_dims {
    int C, H, N;                        /* width, heads, head size */
    int rank_w, rank_a, rank_v, rank_g; /* LoRA ranks (rank_g 0 without the gate) */
    int has_gate, has_group_norm;
    float gn_eps;                       /* 1e-5 * head_size_divisor^2 */
} arwkv_tmix7_dims;

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

/* ============================================================================================
   API: Models
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
    float *master;        /* offloaded optimizer: the fp32 master in host memory (data is its working copy on
                             the backend), and adam_m, adam_v are host memory too; NULL otherwise */
    int on_host;          /* data is host memory (a streamed layer, ARWKV_LOAD_HOST_LAYERS), not the backend's */
} arwkv_param;

/* Per-layer views. Which members are set depends on the architecture. */
typedef struct arwkv_layer {
    arwkv_param *in_norm, *post_norm, *mlp_gate, *mlp_up, *mlp_down;
    /* a teacher's attention (QRWKV6 keeps q/k/v/o); q_norm, k_norm: Qwen3's per-head norms */
    arwkv_param *q_w, *q_b, *k_w, *k_b, *v_w, *v_b, *o_w, *o_b, *q_norm, *k_norm;
    float qk_norm_eps; /* the epsilon of q_norm and k_norm (rms_norm_eps) */
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
    /* ARWKV_LOAD_HOST_LAYERS: each layer's inherited tensors (norms, attention, MLP: everything but a
       student's time mix) packed into one block of host memory, in parameter order, so that one copy
       moves a layer to the device; NULL otherwise */
    void **host_block;
    size_t *host_block_bytes;
} arwkv_model;

/* Load a model directory (config.json + safetensors) of any supported architecture onto a backend,
   or a GGUF file of a llama, qwen2 or qwen3 teacher (dequantized to fp32; see arwkv_gguf_config).
   Frozen matrices keep their stored type; on the CPU they are mapped, not copied. */
ARWKV_API arwkv_result arwkv_model_load(const char *dir, arwkv_backend *be, arwkv_model **out);
/* arwkv_model_load with flags. ARWKV_LOAD_HOST_LAYERS keeps each layer's inherited tensors (a
   teacher's whole layers; a student's norms and MLPs) in the backend's host memory (pinned on a GPU)
   instead of on the device: the teacher then uploads one layer at a time, overlapped with compute
   (--stream-teacher), so a teacher larger than the device can still teach stage 1. Only the
   teacher's forward streams: a student with host layers trains in stage 1 (its time mix is on the
   device) but cannot run its own forward on a GPU. */
#define ARWKV_LOAD_HOST_LAYERS 1
ARWKV_API arwkv_result arwkv_model_load_ex(const char *dir, arwkv_backend *be, int flags, arwkv_model **out);
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
   save_type is ARWKV_DTYPE_UNKNOWN). Tokenizer files are copied from tokenizer_dir if not NULL (a GGUF
   file: its tokenizer is written out as tokenizer.json and tokenizer_config.json). */
ARWKV_API arwkv_result arwkv_model_save(arwkv_model *m, const char *dir, arwkv_dtype save_type, uint64_t max_shard_bytes,
                                        const char *tokenizer_dir);

/* ---- The teacher: Transformer forward -------------------------------------------------------------
   Qwen2ForCausalLM, LlamaForCausalLM and Qwen3ForCausalLM as transformers computes them in fp32 (the
   equations are written out beside the implementation, "The teacher" in section 7). Activations are fp32; weights stay in their stored type and
   are widened block by block inside the matrix product, so a bf16 7B teacher needs ~16 GB.
   Every buffer lives in backend memory and every computation goes through the backend's tables.

   Two ways to run it:
   - arwkv_teacher_forward: B sequences of T tokens, all positions at once (perplexity, the
     distillation targets). A per-layer hook sees each layer's attention input and output as soon as
     they exist, so a trainer can consume layer l before layer l+1 runs and memory does not grow
     with depth. Logits are not formed: arwkv_model_logits turns any chunk of rows of the final
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

/* A workspace for running model m (a teacher: arwkv_arch_is_teacher, on a backend with Qwen ops). The model
   must outlive the teacher. Buffers grow on demand to the largest batch seen. */
ARWKV_API arwkv_result arwkv_teacher_create(arwkv_model *m, arwkv_teacher **out);
ARWKV_API void arwkv_teacher_free(arwkv_teacher *t);

/* Run B sequences of T tokens each (ids: host int32 [B*T], sequence-major; all in [0, vocab)).
   hook may be NULL. On success *hidden points to the final normed hidden states [B*T, hidden_size]
   in backend memory, owned by t and valid until t's next forward or step. */
ARWKV_API arwkv_result arwkv_teacher_forward(arwkv_teacher *t, const int32_t *ids, int B, int T, arwkv_layer_hook hook,
                                             void *user, const float **hidden);

/* logits[n_rows, vocab] = lm_head(hidden[n_rows, hidden_size]) for any model (teacher or student);
   both in backend memory, row-major.
   The head is the embedding when tie_word_embeddings is set. */
ARWKV_API arwkv_result arwkv_model_logits(arwkv_model *m, const float *hidden, int n_rows, float *logits);

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
    int share_teacher; /* inherited parameters (embeddings, norms, MLPs, head) use the teacher's memory
                          instead of a copy: the teacher must then outlive the student */
} arwkv_student_options;

ARWKV_API void arwkv_student_options_default(arwkv_student_options *o);
/* A new RwkvHybridForCausalLM student on the teacher's backend (RWKV6Qwen2ForCausalLM when opt->arch
   says so). ARWKV-7: the teacher's hidden size must be a multiple of 64 (the WKV head size). */
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
/* What a forward keeps for arwkv_rnn_backward. RECOMPUTE keeps only each layer's input (one
   [B*T, C] array per layer, plus one layer's worth of activations) and the backward runs each
   layer's forward again just before its backward: about a third more arithmetic for the student
   and a fraction of the memory, with gradients identical to the bit (the forward is deterministic).
   It is upstream's gradient checkpointing, per layer. */
typedef enum arwkv_rnn_mode {
    ARWKV_RNN_INFER = 0,          /* no backward will follow */
    ARWKV_RNN_TRAIN = 1,          /* keep every layer's activations */
    ARWKV_RNN_TRAIN_RECOMPUTE = 2 /* keep the layer inputs; recompute the rest in the backward */
} arwkv_rnn_mode;
/* Run B sequences of T tokens (ids: host int32 [B*T]). states: B states that are read and advanced,
   or NULL to start from zeros. train is an arwkv_rnn_mode (0/1 as before: inference/training); the
   training modes take no states. On success *hidden points to the final normed hidden states
   [B*T, C] in backend memory, valid until the next call. */
ARWKV_API arwkv_result arwkv_rnn_forward(arwkv_rnn *r, const int32_t *ids, int B, int T, arwkv_rnn_state **states, int train,
                                         const float **hidden);
/* Gradient of the last training forward from dhidden [B*T, C] (backend memory): adds into the
   gradients of the model's trainable parameters. */
ARWKV_API arwkv_result arwkv_rnn_backward(arwkv_rnn *r, const float *dhidden);
/* Read n tokens (host ids) into state s; logits of the last one into logits_last[V] (host, may be
   NULL), of all n into logits_all[n, V] (host, may be NULL). */
ARWKV_API arwkv_result arwkv_rnn_step(arwkv_rnn *r, arwkv_rnn_state *s, const int32_t *ids, int n, float *logits_last,
                                      float *logits_all);

/* ---- The QRWKV6 time mix (RWKV6Qwen2ForCausalLM) ---------------------------------------------------
   Each layer's softmax attention becomes an RWKV-6 style recurrence that keeps Qwen's q/k/v/o
   projections (with their biases) and adds a data-dependent token shift, a data-dependent decay and
   a sigmoid output gate (names are the checkpoint's, under model.layers.N.self_attn.):
       xx  = x_{t-1} - x_t                      (x: the layer's RMSNorm'd input)
       m_c = tanh((x + xx maa_x) . time_maa_w1)[c] . time_maa_w2[c]     c = r, k, v, w, g
       x_c = x + xx (maa_c + m_c)
       r = q_proj(x_r)  k = k_proj(x_k)  v = v_proj(x_v)   (biases included; k, v per kv head)
       r, k = RMSNorm per head (q_norm, k_norm)          a student of Qwen3 (the layer has q_norm)
       w = exp(-exp(time_decay + tanh(x_w . time_decay_w1) . time_decay_w2))
       per head: S_t = diag(w_t) S_{t-1} + (k_t (1 - w_t)) v_t^T,  y_t = r_t^T S_t / sqrt(head size)
       out = o_proj(y * sigmoid(gate(x_g)))
   Recurrent state per sequence: the last input row (C floats) and S (H x N x N floats).
   A student runs through arwkv_rnn; the block itself (forward and backward) is private, beside the
   ARWKV-7 block in SECTION 6b. These are its sizes. */

typedef struct arwkv_tmix6_dims {
    int C;          /* hidden size */
    int n_heads;    /* H = num_attention_heads */
    int head_size;  /* N = C / H */
    int n_kv_heads; /* KVH = num_key_value_heads */
    int rank_mix;   /* lora_rank_tokenshift (time_maa_w1 is [C, 5 rank_mix]) */
    int rank_decay; /* lora_rank_decay */
} arwkv_tmix6_dims;

/* ============================================================================================
   API: Training
   ============================================================================================ */
#ifndef ARWKV_NO_TRAINING
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
    int recompute;          /* stages 2-3: keep only the student's layer inputs and recompute each layer's
                               activations in the backward (ARWKV_RNN_TRAIN_RECOMPUTE); same gradients */
    uint64_t seed;          /* data order */
    int resume_with_new_options; /* arwkv_trainer_restore: accept a learning rate, schedule or loss
                                    that differ from the checkpoint's (else an error names them) */
    int offload_optimizer;  /* fp32 masters and AdamW moments in host memory, updated by the CPU's threads;
                               the backend keeps the working copy of the weights and the gradients */
    arwkv_dtype offload_weight_type; /* that working copy's type for matrices: F32 or BF16; 0 (unknown):
                               BF16 on a GPU, F32 on the CPU */
    int stream_teacher;     /* stages 1-2: the teacher was loaded with ARWKV_LOAD_HOST_LAYERS (its layers in
                               host memory, two on the device at a time); the memory plan counts it so */
} arwkv_train_options;

/* Upstream's settings for a stage (the ARWKV authors' training recipe): AdamW betas 0.9/0.95, eps
   1e-8, weight decay 0.1, clip 1.0, warm-up 50 steps, exponential decay 1e-4 -> 1e-5, stage-1 L2
   loss, stage-2 KL at temperature 1 with no label cross-entropy. */
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
    size_t n_seqs;         /* windows visited */
    size_t n_skipped;      /* windows without any target token (chat data: inside a long user turn), never visited */
    uint32_t *windows;     /* where visited window i starts, in windows of seq_len (NULL: window i starts at i) */
    uint32_t *order;       /* this epoch's permutation of the visited windows */
    uint64_t seed, epoch;
    size_t pos;            /* next window in order */
} arwkv_dataset;

ARWKV_API void arwkv_dataset_init(arwkv_dataset *d);
ARWKV_API void arwkv_dataset_free(arwkv_dataset *d);
/* Append a document (and, if mask is not NULL, which of its tokens are targets; documents without a
   mask are targets throughout). */
ARWKV_API arwkv_result arwkv_dataset_append(arwkv_dataset *d, const int32_t *ids, const uint8_t *mask, size_t n);
/* Cut into windows and shuffle epoch 0 with seed. Windows without a target token (possible only with
   a mask: a user turn longer than seq_len) are left out and counted in n_skipped, so every window
   a trainer sees has something to learn. Fails if no whole window (with a target) is left. */
ARWKV_API arwkv_result arwkv_dataset_pack(arwkv_dataset *d, int seq_len, uint64_t seed);
/* The next window: inputs[seq_len], targets[seq_len] (-1 where not a target). Starts a new
   epoch (a new permutation) when the current one is used up. */
ARWKV_API void arwkv_dataset_next(arwkv_dataset *d, int32_t *inputs, int32_t *targets);
/* Visited window i, in storage order (for evaluation). */
ARWKV_API void arwkv_dataset_window(const arwkv_dataset *d, size_t i, int32_t *inputs, int32_t *targets);
/* Tokenize a file into a dataset. A file ending in .jsonl holds one JSON object per line: a document
   {"text": "..."} or a conversation {"messages": [{"role": ..., "content": ...}, ...]} (ChatML;
   only assistant turns are targets). Any other file is one plain-text document, read as raw bytes.
   Special-token text inside documents is not matched (it is data, not markup). Every document is
   followed by eos_id (the end-of-text token). Errors name the file and line. */
#ifndef ARWKV_NO_TOKENIZER
ARWKV_API arwkv_result arwkv_dataset_add_file(arwkv_dataset *d, const arwkv_tokenizer *tok, const char *path, int32_t eos_id);
#endif
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

/* ---- Output directories ---------------------------------------------------------------------
   A training run or a conversion writes into OUT hours after it starts; open OUT first so that
   whatever would make that write fail or do harm is found before the work:
     - OUT is created (with its parents) and a lock file is written in it (it must be writable);
     - OUT may not be, contain or lie inside any of the input model directories (n_inputs paths),
       nor already hold a model that is not a student: its files would be replaced;
     - OUT is locked (OUT/.arwkv.lock) until arwkv_out_dir_close: a second run on the same OUT is
       refused, naming the process that holds it;
     - what an interrupted run left behind is removed: partial files (NAME.tmp.PID.N) of
       processes that no longer run, and checkpoint directories that checkpoints/latest does not
       name (unfinished saves). arwkv_out_dir_note says what was removed ("" if nothing). */
typedef struct arwkv_out_dir arwkv_out_dir;
ARWKV_API arwkv_result arwkv_out_dir_open(const char *dir, const char *const *inputs, int n_inputs, arwkv_out_dir **out);
ARWKV_API const char *arwkv_out_dir_note(const arwkv_out_dir *o);
ARWKV_API void arwkv_out_dir_close(arwkv_out_dir *o); /* releases the lock; NULL is fine */
/* ---- The memory plan ----------------------------------------------------------------------------------
   What a training run will allocate at its peak, computed from the configs and checkpoint headers
   before anything is allocated, so that a run that cannot fit is refused at the start instead of
   failing mid-run. The items (bytes on the backend: the device, or host memory for the CPU):
     teacher weights     frozen, in their stored type (bf16 stays bf16)
     student weights     the frozen parameters (stored type)
     fp32 masters        the trained parameters, in fp32
     gradients           fp32, one per trained parameter
     AdamW moments       two fp32 arrays per trained parameter
     teacher activations the teacher's workspace for batch x seq-len rows
     student activations stage 1: the time mix of one layer (and layer 0's, kept for the end);
                         stages 2-3: every layer's activations for the backward
     logits chunk        teacher and student logits of 128 positions (1024 on a GPU), and the hidden-state gradient
     evaluation          the evaluation's own logits and student workspace (alive beside training's)
     GPU workspace       a GPU backend's scratch space (an allowance)
   With stream_teacher the teacher's layers are a host item and two layer slots a device one.
   With offload_optimizer the trained parameters keep a working copy (bf16 matrices on a GPU) and
   their fp32 gradients on the backend; masters and moments are host items (on_host), which a GPU run does not count against the
   device, and a CPU run does (it is the same memory).
   On the CPU, checkpoints are mapped from disk, not allocated: their bytes are reported apart
   (`mapped`) and not counted against the host's memory. tests/test_memory.c checks the total
   against the allocator's measured peak. */
#define ARWKV_PLAN_MAX_ITEMS 16
typedef struct arwkv_memory_item {
    char name[32];
    uint64_t bytes;
    int on_host; /* host memory of a GPU run (--offload-optimizer), not the device's */
} arwkv_memory_item;

typedef struct arwkv_memory_plan {
    arwkv_memory_item items[ARWKV_PLAN_MAX_ITEMS];
    int n_items;
    uint64_t total;          /* bytes allocated on the backend at the peak: the sum of the items not on_host */
    uint64_t host_total;     /* the items on_host: offloaded optimizer state, streamed teacher layers */
    uint64_t host_available; /* a GPU run: the host memory host_total must fit in (0: not checked) */
    uint64_t need;           /* what must fit in available: total, plus host_total on the CPU backend */
    uint64_t mapped;         /* CPU backend: checkpoint bytes mapped from disk (not in total) */
    uint64_t available;      /* what the run must fit in */
    char available_from[96]; /* where that figure comes from ("free memory of gpu 0: ...", "memory limit") */
    char advice[512];        /* options that would make it fit, with their totals ("" if none helps) */
} arwkv_memory_plan;

/* Plan a run of arwkv_trainer on backend be: the teacher in teacher_dir (NULL: none, stage 3), the
   student in student_dir or, when that is NULL, a new one made from the teacher with student options
   so (NULL: defaults); training options o; eval_seq_len > 0 when the run also evaluates sequences of
   that length. available is the backend's memory limit if one is set (arwkv_backend_set_memory_limit),
   else its free memory. Reads configs and safetensors headers only; allocates nothing on be. */
ARWKV_API arwkv_result arwkv_memory_plan_training(arwkv_backend *be, const char *teacher_dir, const char *student_dir,
                                                  const arwkv_student_options *so, const arwkv_train_options *o, int eval_seq_len,
                                                  arwkv_memory_plan *plan);
/* The same from shapes alone, for models one does not have on disk (arwkv-bench memory): a teacher of
   config tc (Qwen2) whose matrices are stored as teacher_type, and a new student made from it with so,
   on a GPU (on_gpu: everything allocated, a workspace allowance) or on the CPU (the teacher's matrices
   mapped). available is left at 0 and advice empty: the caller knows what to compare with. */
ARWKV_API arwkv_result arwkv_memory_plan_shapes(const arwkv_config *tc, arwkv_dtype teacher_type, const arwkv_student_options *so,
                                                const arwkv_train_options *o, int eval_seq_len, int on_gpu, arwkv_memory_plan *plan);
/* ARWKV_OK when the plan fits; else ARWKV_ERR_OUT_OF_MEMORY, with arwkv_last_error() naming the need,
   what is available, the biggest items and the options that would make it fit. */
ARWKV_API arwkv_result arwkv_memory_plan_check(const arwkv_memory_plan *plan);
#endif /* ARWKV_NO_TRAINING */

/* ============================================================================================
   API: Generation
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

/* ---- Sessions: one conversation with any model ------------------------------------------------------------
   A session reads tokens and gives the logits of the next one, for the teacher (which keeps a KV
   cache that grows with every token) and for students (which keep a fixed-size recurrent state).
   The chat binary and generation use only this. */
typedef struct arwkv_session arwkv_session;

/* max_tokens bounds the teacher's KV cache (<= 0: grow as needed); students ignore it. */
ARWKV_API arwkv_result arwkv_session_create(arwkv_model *m, int max_tokens, arwkv_session **out);
ARWKV_API void arwkv_session_free(arwkv_session *s);
/* Read n tokens (host ids); the logits of the last one go to logits_last[vocab] (host; may be NULL). */
ARWKV_API arwkv_result arwkv_session_feed(arwkv_session *s, const int32_t *ids, int n, float *logits_last);
ARWKV_API arwkv_result arwkv_session_reset(arwkv_session *s);
ARWKV_API int64_t arwkv_session_tokens(const arwkv_session *s);
/* Memory that grows with the conversation: the KV cache, or the (constant) recurrent state. */
ARWKV_API size_t arwkv_session_memory_bytes(const arwkv_session *s);
ARWKV_API int arwkv_session_is_recurrent(const arwkv_session *s);
/* Students: save or restore the whole conversation (its recurrent state) in a small file. */
ARWKV_API arwkv_result arwkv_session_save(arwkv_session *s, const char *path);
ARWKV_API arwkv_result arwkv_session_load(arwkv_session *s, const char *path);

/* Mean negative log-likelihood in nats of ids[1..n) given their prefixes, for any model (the
   measure arwkv-eval prints; perplexity is its exponential). */
ARWKV_API arwkv_result arwkv_model_nll(arwkv_model *m, const int32_t *ids, int n, double *nll);

/* How closely a model predicts like a reference (a student like its teacher) on the same tokens:
   both read ids[0..n) from a fresh state and predict every next token. Counts and sums, so that the
   windows of a long text add up (zero *acc first; the means are the sums over tokens). Position i
   (predicting ids[i+1]) counts when mask is NULL or mask[i+1] is nonzero: a conversation's mask from
   arwkv_chat_encode scores the assistant tokens only. ref may be NULL (the model's NLL alone). */
typedef struct arwkv_compare_stats {
    int64_t tokens;     /* positions counted */
    double nll;         /* sum of the model's negative log-likelihoods of the targets (nats) */
    double ref_nll;     /* the same for the reference */
    double kl;          /* sum of KL(reference || model) over the full vocabulary (nats) */
    int64_t agree;      /* positions where both give the highest logit to the same token (lowest id on ties) */
} arwkv_compare_stats;
ARWKV_API arwkv_result arwkv_model_compare(arwkv_model *ref, arwkv_model *m, const int32_t *ids, const uint8_t *mask, int n,
                                           arwkv_compare_stats *acc);

/* ---- Batched generation -----------------------------------------------------------------------------
   Many sequences decoded together, for teachers and students: each request has its own prompt,
   sampling options (seed, temperature, top-p, ...), length limit and stop tokens. Up to max_batch
   requests are in flight at once; one that finishes makes room for the next. Each decoding step
   runs the model once over every sequence in flight, so their matrix products are one product of
   max_batch rows (the teacher's attention runs per sequence, each over its own KV cache at its own
   position; a student's recurrent states are batched), all through the backend's op tables, so the
   GPU backend batches the same way.
   A sequence gets the tokens it would get alone: arwkv_session_feed of the prompt, then repeatedly
   arwkv_sample with the last ARWKV_GEN_RECENT tokens it generated as the repetition window and
   arwkv_session_feed of the token. "The same" is up to the summation order of matrix products of
   different row counts: on the CPU, 1 to 4 rows share one path (bit-for-bit equal), beyond that a
   near tie between two tokens may break the other way. */
#define ARWKV_GEN_RECENT 64

typedef struct arwkv_gen_request {
    const int32_t *prompt;          /* at least one token */
    int n_prompt;
    arwkv_sampler_options sampling; /* temperature 0: greedy */
    int max_new;                    /* generate at most this many tokens (>= 0) */
    const int32_t *stop;            /* generation ends after any of these ids (kept in out); may be NULL */
    int n_stop;
    int32_t *out;                   /* the caller's buffer of max_new ids */
    int n_out;                      /* set: tokens generated */
    int stopped;                    /* set: 1 if a stop token ended it, 0 if max_new did */
} arwkv_gen_request;

/* Answer n requests with model m (a teacher or a student), max_batch at a time (<= 0: all). */
ARWKV_API arwkv_result arwkv_generate_batch(arwkv_model *m, arwkv_gen_request *reqs, int n, int max_batch);

/* Conversations as JSON lines, the format of the data tools and of stage 3:
     {"messages": [{"role": "user", "content": "..."}, {"role": "assistant", "content": "..."}]}
   arwkv_chat_parse reads one such object (name: for errors, e.g. "file.jsonl line 3"); *msgs is one
   allocation holding the messages and copies of their strings (free it with arwkv_free).
   arwkv_chat_to_json writes one, on one line without the newline (free it with arwkv_free); bytes
   that are not UTF-8 (a generation cut inside a character) become U+FFFD. */
ARWKV_API arwkv_result arwkv_chat_parse(const char *json, size_t len, const char *name, arwkv_chat_message **msgs, int *n);
ARWKV_API arwkv_result arwkv_chat_to_json(const arwkv_chat_message *msgs, int n, char **json);
/* One conversation written one message per line, {"role": "...", "content": "..."} (the input of
   arwkv-tokenize --chat); blank lines are skipped, name is for errors (a line's own is "name: line
   N"). *msgs is one allocation, as arwkv_chat_parse's (free it with arwkv_free). */
ARWKV_API arwkv_result arwkv_chat_parse_lines(const char *text, size_t len, const char *name, arwkv_chat_message **msgs, int *n);

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

/* ARWKV_PRIVATE marks every private function (as sokol's _SOKOL_PRIVATE does): it is static, and
   "unused" keeps a user's -Wall build quiet about helpers of an instruction path or option that the
   build does not take. Grep for it to list the private functions; public ones carry ARWKV_API. */
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
   SECTION 1. Support
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

/* ---- Backend memory accounting ----------------------------------------------------------------
   Backends call arwkv__mem_admit before asking the system for tensor memory (it enforces the
   limit), arwkv__mem_note_alloc once they have it and arwkv__mem_note_free when they give it back.
   The size of each live block is kept in a small open-addressing table keyed by its address (a
   device pointer cannot carry a header), with deletion by backward shift so no tombstones pile up. */

typedef struct arwkv__size_table {
    uintptr_t *keys; /* 0: empty slot */
    uint64_t *sizes;
    size_t cap, n;   /* cap is a power of two */
} arwkv__size_table;

ARWKV_PRIVATE size_t arwkv__ptr_hash(uintptr_t k, size_t cap) {
    uint64_t h = (uint64_t)k * 0x9E3779B97F4A7C15ull;
    return (size_t)(h >> 17) & (cap - 1);
}

ARWKV_PRIVATE int arwkv__size_table_grow(arwkv__size_table *t) {
    size_t cap = t->cap ? t->cap * 2 : 256;
    uintptr_t *keys = (uintptr_t *)arwkv__calloc(cap, sizeof *keys);
    uint64_t *sizes = (uint64_t *)arwkv__calloc(cap, sizeof *sizes);
    if (!keys || !sizes) {
        arwkv__free(keys);
        arwkv__free(sizes);
        return 0;
    }
    for (size_t i = 0; i < t->cap; i++) {
        if (!t->keys[i]) continue;
        size_t j = arwkv__ptr_hash(t->keys[i], cap);
        while (keys[j]) j = (j + 1) & (cap - 1);
        keys[j] = t->keys[i], sizes[j] = t->sizes[i];
    }
    arwkv__free(t->keys);
    arwkv__free(t->sizes);
    t->keys = keys, t->sizes = sizes, t->cap = cap;
    return 1;
}

ARWKV_PRIVATE arwkv_result arwkv__mem_admit(arwkv_backend *be, size_t bytes) {
    if (be->mem_limit && be->mem_in_use + bytes > be->mem_limit)
        return arwkv__fail(ARWKV_ERR_OUT_OF_MEMORY, "%s: allocating %.1f MiB would pass the memory limit of %.1f MiB (%.1f MiB in use)",
                           be->name, bytes / 1048576.0, be->mem_limit / 1048576.0, be->mem_in_use / 1048576.0);
    return ARWKV_OK;
}

/* Fails only when the host cannot grow the table (the backend then gives the block back). */
ARWKV_PRIVATE arwkv_result arwkv__mem_note_alloc(arwkv_backend *be, void *p, size_t bytes) {
    arwkv__size_table *t = (arwkv__size_table *)be->mem_sizes;
    if (!t) {
        t = (arwkv__size_table *)arwkv__calloc(1, sizeof *t);
        if (!t) return arwkv__fail(ARWKV_ERR_OUT_OF_MEMORY, "out of memory (memory accounting)");
        be->mem_sizes = t;
    }
    if ((t->n + 1) * 2 > t->cap && !arwkv__size_table_grow(t)) return arwkv__fail(ARWKV_ERR_OUT_OF_MEMORY, "out of memory (memory accounting)");
    size_t j = arwkv__ptr_hash((uintptr_t)p, t->cap);
    while (t->keys[j]) j = (j + 1) & (t->cap - 1);
    t->keys[j] = (uintptr_t)p, t->sizes[j] = bytes, t->n++;
    be->mem_in_use += bytes;
    if (be->mem_in_use > be->mem_peak) be->mem_peak = be->mem_in_use;
    return ARWKV_OK;
}

ARWKV_PRIVATE void arwkv__mem_note_free(arwkv_backend *be, void *p) {
    arwkv__size_table *t = (arwkv__size_table *)be->mem_sizes;
    if (!t || !p || !t->cap) return;
    size_t mask = t->cap - 1, j = arwkv__ptr_hash((uintptr_t)p, t->cap);
    while (t->keys[j] && t->keys[j] != (uintptr_t)p) j = (j + 1) & mask;
    if (!t->keys[j]) return; /* not ours (never counted) */
    be->mem_in_use -= t->sizes[j];
    t->keys[j] = 0, t->n--;
    /* backward shift: move later entries of the same probe run into the hole */
    for (size_t hole = j, k = (j + 1) & mask; t->keys[k]; k = (k + 1) & mask) {
        size_t home = arwkv__ptr_hash(t->keys[k], t->cap);
        int between = hole <= k ? (home > hole && home <= k) : (home > hole || home <= k);
        if (between) continue; /* already as close to home as it can be */
        t->keys[hole] = t->keys[k], t->sizes[hole] = t->sizes[k], t->keys[k] = 0;
        hole = k;
    }
}

ARWKV_PRIVATE void arwkv__mem_accounting_free(arwkv_backend *be) {
    arwkv__size_table *t = (arwkv__size_table *)be->mem_sizes;
    if (t) {
        arwkv__free(t->keys);
        arwkv__free(t->sizes);
        arwkv__free(t);
    }
    be->mem_sizes = NULL;
}

/* ---- Files ------------------------------------------------------------------------------------ */

/* Only regular files are read: opening a FIFO blocks until a writer comes (forever), a device may
   never end, and a directory opens but fails at the first read. Checked by name, before opening. */
ARWKV_PRIVATE arwkv_result arwkv__check_regular_file(const char *path) {
#if !defined(_WIN32)
    struct stat s;
    if (stat(path, &s) != 0) return arwkv__fail(ARWKV_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
    if (S_ISDIR(s.st_mode)) return arwkv__fail(ARWKV_ERR_IO, "%s: is a directory, not a file", path);
    if (!S_ISREG(s.st_mode)) return arwkv__fail(ARWKV_ERR_IO, "%s: not a regular file (a pipe or a device)", path);
#else
    (void)path;
#endif
    return ARWKV_OK;
}

/* Read a whole file into memory (NUL-terminated for convenience). */
ARWKV_PRIVATE arwkv_result arwkv__read_file(const char *path, char **out, size_t *out_len) {
    *out = NULL;
    *out_len = 0;
    ARWKV__TRY(arwkv__check_regular_file(path));
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
#if !defined(_WIN32)
    struct stat s; /* not fopen: on a FIFO it would block */
    return stat(path, &s) == 0 && !S_ISDIR(s.st_mode);
#else
    FILE *f = fopen(path, "rb");
    if (f) fclose(f);
    return f != NULL;
#endif
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
    if (r == ARWKV_ERR_IO) r = arwkv__context(r, "%s", path); /* "write failed: No space left on device" names no file */
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
    /* element i of type TYPE at p (unaligned), turned into a float by EXPR of v */
#define ARWKV__CONVERT(TYPE, EXPR)                       \
    for (size_t i = 0; i < n; i++) {                     \
        TYPE v;                                          \
        memcpy(&v, p + sizeof(TYPE) * i, sizeof(TYPE));  \
        dst[i] = (float)(EXPR);                          \
    }                                                    \
    break
    switch (t) {
    case ARWKV_F32: memcpy(dst, src, n * 4); break;
    case ARWKV_BF16: ARWKV__CONVERT(uint16_t, arwkv_bf16_to_f32(v));
    case ARWKV_F16: ARWKV__CONVERT(uint16_t, arwkv_f16_to_f32(v));
    case ARWKV_F64: ARWKV__CONVERT(double, v);
    case ARWKV_I64: ARWKV__CONVERT(int64_t, v);
    case ARWKV_I32: ARWKV__CONVERT(int32_t, v);
    case ARWKV_I16: ARWKV__CONVERT(int16_t, v);
    case ARWKV_I8: ARWKV__CONVERT(int8_t, v);
    case ARWKV_U8:
    case ARWKV_BOOL: ARWKV__CONVERT(uint8_t, v);
    default: return arwkv__fail(ARWKV_ERR_UNSUPPORTED, "cannot convert dtype %s to F32", arwkv_dtype_name(t));
    }
#undef ARWKV__CONVERT
    return ARWKV_OK;
}

ARWKV_API void arwkv_free(void *p) { arwkv__free(p); }

ARWKV_API double arwkv_seconds(void) {
    struct timespec ts = {0, 0}; /* MemorySanitizer does not see timespec_get fill it */
    if (timespec_get(&ts, TIME_UTC) != TIME_UTC) return 0;
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* ---- Strict option numbers ---------------------------------------------------------------------
   atoi("1e3") is 1 and atoi("99999999999") wraps: a typo would train for hours with the wrong
   setting. strtoll/strtod are used, but only their whole-string, in-range, finite results count. */

ARWKV_PRIVATE arwkv_result arwkv__parse_i64(const char *option, const char *text, int64_t min, int64_t max, int64_t *out) {
    if (!text || !*text || (*text != '-' && *text != '+' && (*text < '0' || *text > '9')))
        return arwkv__fail(ARWKV_ERR_INVALID_ARGUMENT, "%s: '%s' is not a whole number", option, text ? text : "");
    char *end;
    errno = 0;
    long long v = strtoll(text, &end, 10);
    if (*end) return arwkv__fail(ARWKV_ERR_INVALID_ARGUMENT, "%s: '%s' is not a whole number", option, text);
    if (errno == ERANGE || v < min || v > max)
        return arwkv__fail(ARWKV_ERR_INVALID_ARGUMENT, "%s: %s is out of range %lld to %lld", option, text, (long long)min, (long long)max);
    *out = (int64_t)v;
    return ARWKV_OK;
}

ARWKV_API arwkv_result arwkv_parse_int(const char *option, const char *text, int min, int max, int *out) {
    int64_t v = 0;
    ARWKV__TRY(arwkv__parse_i64(option, text, min, max, &v));
    *out = (int)v;
    return ARWKV_OK;
}

ARWKV_API arwkv_result arwkv_parse_u64(const char *option, const char *text, uint64_t *out) {
    if (!text || *text < '0' || *text > '9') /* strtoull would accept "-1" as 2^64-1 */
        return arwkv__fail(ARWKV_ERR_INVALID_ARGUMENT, "%s: '%s' is not a non-negative whole number", option, text ? text : "");
    char *end;
    errno = 0;
    unsigned long long v = strtoull(text, &end, 10);
    if (*end) return arwkv__fail(ARWKV_ERR_INVALID_ARGUMENT, "%s: '%s' is not a non-negative whole number", option, text);
    if (errno == ERANGE) return arwkv__fail(ARWKV_ERR_INVALID_ARGUMENT, "%s: %s is out of range 0 to 2^64-1", option, text);
    *out = (uint64_t)v;
    return ARWKV_OK;
}

ARWKV_API arwkv_result arwkv_parse_float(const char *option, const char *text, double min, double max, float *out) {
    if (!text || !*text || *text == ' ' || *text == '\t' || *text == '\n') /* strtod would skip leading space */
        return arwkv__fail(ARWKV_ERR_INVALID_ARGUMENT, "%s: '%s' is not a number", option, text ? text : "");
    char *end;
    double v = strtod(text, &end);
    if (*end) return arwkv__fail(ARWKV_ERR_INVALID_ARGUMENT, "%s: '%s' is not a number", option, text);
    if (!isfinite(v) || !isfinite((float)v)) return arwkv__fail(ARWKV_ERR_INVALID_ARGUMENT, "%s: '%s' is not a finite number", option, text);
    if (v < min || v > max) return arwkv__fail(ARWKV_ERR_INVALID_ARGUMENT, "%s: %s is out of range %g to %g", option, text, min, max);
    *out = (float)v;
    return ARWKV_OK;
}

/* ---- Thread pool -------------------------------------------------------------------------------
   A loop hands out task indices through an atomic counter; the caller's thread works too and then
   waits for the stragglers. Between loops a worker first spins for a short while (ARWKV_POOL_SPIN_US),
   watching for the next loop, and only then sleeps on a condition variable; the caller likewise
   spins before it sleeps on the last worker. A decode step or a small model's training step runs
   hundreds of short loops back to back, and waking a sleeping thread costs tens of microseconds:
   with sleeping alone, a decode step of a 0.5B model lost a sixth of its time to wake-ups. */

#ifndef ARWKV_POOL_SPIN_US
#define ARWKV_POOL_SPIN_US 100 /* how long an idle thread watches for more work before it sleeps */
#endif

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
/* Spin until *v != unless (or, with until_zero, until *v == 0), at most ARWKV_POOL_SPIN_US; returns
   whether it happened. Reads are atomic: the writers change these fields under the mutex. */
ARWKV_PRIVATE int arwkv__pool_spin(const void *v, uint64_t unless, int until_zero) {
    double deadline = 0;
    for (int i = 0;; i++) {
        uint64_t now = until_zero ? (uint64_t)__atomic_load_n((const int *)v, __ATOMIC_ACQUIRE)
                                  : __atomic_load_n((const uint64_t *)v, __ATOMIC_ACQUIRE);
        if (until_zero ? now == 0 : now != unless) return 1;
        if (ARWKV_POOL_SPIN_US <= 0) return 0;
#if defined(__x86_64__) || defined(__i386__)
        __builtin_ia32_pause();
#endif
        if ((i & 63) == 0) { /* the clock now and then: a pause lasts 10 to 150 cycles, by CPU */
            double t = arwkv_seconds();
            if (deadline == 0) deadline = t + ARWKV_POOL_SPIN_US * 1e-6;
            else if (t > deadline) return 0;
        }
    }
}

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

ARWKV_PRIVATE void *arwkv__pool_main(void *arg_) {
    arwkv__worker_arg *arg = (arwkv__worker_arg *)arg_;
    arwkv_pool *p = arg->pool;
    int thread = arg->thread;
    arwkv__free(arg);
    uint64_t seen = 0;
    for (;;) {
        arwkv__pool_spin(&p->generation, seen, 0); /* the next loop often comes within microseconds */
        pthread_mutex_lock(&p->mutex);
        while (p->generation == seen && !p->quit) pthread_cond_wait(&p->wake, &p->mutex);
        if (p->quit) break;
        seen = p->generation;
        pthread_mutex_unlock(&p->mutex);
        arwkv__pool_work(p, thread);
        pthread_mutex_lock(&p->mutex);
        if (__atomic_sub_fetch(&p->busy, 1, __ATOMIC_RELEASE) == 0) pthread_cond_signal(&p->done);
        pthread_mutex_unlock(&p->mutex);
    }
    pthread_mutex_unlock(&p->mutex);
    return NULL;
}
#endif

ARWKV_API int arwkv_cpu_list_count(const char *list) {
    int count = 0;
    const char *c = list;
    while (c && *c && *c != '\n') {
        if (*c < '0' || *c > '9') return 0;
        long first = strtol(c, (char **)&c, 10), last = first;
        if (*c == '-') {
            c++;
            if (*c < '0' || *c > '9') return 0;
            last = strtol(c, (char **)&c, 10);
        }
        if (last < first || last - first >= 1 << 20) return 0;
        count += (int)(last - first + 1);
        if (count > 1 << 20) return 0;
        if (*c == ',') c++;
        else if (*c && *c != '\n') return 0;
    }
    return count;
}

ARWKV_API int arwkv_cpu_count(void) {
    int n = 0;
#if defined(__linux__)
    /* the affinity mask, not the machine: a process pinned to 2 of 16 cores that started 16
       threads would run 8 on each core */
    FILE *f = fopen("/proc/self/status", "r");
    char line[4096];
    while (f && !n && fgets(line, sizeof line, f))
        if (!strncmp(line, "Cpus_allowed_list:", 18) && strchr(line, '\n')) { /* a whole line, not a cut one */
            const char *c = line + 18;
            while (*c == ' ' || *c == '\t') c++;
            n = arwkv_cpu_list_count(c);
        }
    if (f) fclose(f);
#endif
#if !defined(_WIN32) && defined(_SC_NPROCESSORS_ONLN)
    if (n <= 0) {
        long online = sysconf(_SC_NPROCESSORS_ONLN);
        n = online > 0 ? (int)online : 1;
    }
#endif
    return n > 0 ? n : 1;
}

ARWKV_API arwkv_result arwkv_pool_create(int n_threads, arwkv_pool **out) {
    *out = NULL;
    if (n_threads <= 0) n_threads = arwkv_cpu_count();
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
        __atomic_store_n(&p->busy, p->n_threads - 1, __ATOMIC_RELAXED);
        __atomic_add_fetch(&p->generation, 1, __ATOMIC_RELEASE); /* after the fields above, for the spinners */
        pthread_cond_broadcast(&p->wake);
        pthread_mutex_unlock(&p->mutex);
        arwkv__pool_work(p, 0);
        if (arwkv__pool_spin(&p->busy, 0, 1)) return;
        pthread_mutex_lock(&p->mutex);
        while (__atomic_load_n(&p->busy, __ATOMIC_ACQUIRE) > 0) pthread_cond_wait(&p->done, &p->mutex);
        pthread_mutex_unlock(&p->mutex);
        return;
    }
#endif
    (void)p;
    for (int t = 0; t < n_tasks; t++) fn(ctx, t, 0);
}

/* ============================================================================================
   SECTION 2. JSON reader
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
ARWKV_PRIVATE uint32_t arwkv__json_str_len(const arwkv__json *j, uint32_t n) { return arwkv__json_str(j, n) ? j->nodes[n].len : 0; }
ARWKV_PRIVATE const char *arwkv__json_key(const arwkv__json *j, uint32_t n) { return j->strings + j->nodes[n].key; }
ARWKV_PRIVATE uint32_t arwkv__json_key_len(const arwkv__json *j, uint32_t n) { return j->nodes[n].key_len; }
ARWKV_PRIVATE uint32_t arwkv__json_count(const arwkv__json *j, uint32_t n) {
    return (n != ARWKV__JSON_NONE && j->nodes[n].type >= ARWKV__JSON_ARRAY) ? j->nodes[n].len : 0;
}
/* First child of an array or object, then arwkv__json_next. */
ARWKV_PRIVATE uint32_t arwkv__json_first(const arwkv__json *j, uint32_t n) {
    return arwkv__json_count(j, n) ? j->nodes[n].first : ARWKV__JSON_NONE;
}
/* NONE in, NONE out, so a chain such as next(first(get(...))) on a file missing a level ends there
   instead of reading node UINT32_MAX. */
ARWKV_PRIVATE uint32_t arwkv__json_next(const arwkv__json *j, uint32_t n) {
    return n != ARWKV__JSON_NONE && j->nodes[n].next ? j->nodes[n].next : ARWKV__JSON_NONE;
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
   SECTION 3. safetensors
   ============================================================================================
   Format: 8-byte little-endian header length N, N bytes of JSON (may be padded with spaces), then
   the data. The JSON maps each tensor name to {dtype, shape, data_offsets: [begin, end]} relative
   to the start of the data; "__metadata__" maps strings to strings. We require what the reference
   implementation requires: offsets in range, tensors back to back from 0 with no hole and no
   overlap, size = product of shape times element size, known dtypes, unique names. */

#define ARWKV__ST_MAX_HEADER (100u << 20) /* the reference reader's limit: 100 MB */

/* Where a file's bytes live, and so how closing releases them. */
typedef enum arwkv__st_owner {
    ARWKV__ST_BORROWED = 0, /* memory the file does not own (nothing yet): nothing to release */
    ARWKV__ST_MAPPED = 1,  /* mmap of the file: munmap */
    ARWKV__ST_COPIED = 2   /* read into a malloc'd copy (no mmap, or a GGUF file dequantized): free */
} arwkv__st_owner;

typedef struct arwkv__st_file {
    char *path;
    const unsigned char *map; /* whole file */
    size_t size;
    arwkv__st_owner owned; /* who frees map */
    char **meta; /* key, value, key, value, ... */
    int n_meta;
} arwkv__st_file;

struct arwkv_safetensors {
    char *name; /* what the user opened, for errors */
    arwkv__st_file *files;
    int n_files;
    arwkv_tensor_info *tensors;
    int n_tensors, cap_tensors;
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

ARWKV_PRIVATE int arwkv__st_span_cmp(const void *a, const void *b) {
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
            if (f->meta) { /* a second copy would be sized by its own count but appended after the first */
                r = arwkv__fail(ARWKV_ERR_FORMAT, "%s: __metadata__ appears twice", path);
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
    ARWKV__TRY(arwkv__check_regular_file(f->path));
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
            f->owned = ARWKV__ST_MAPPED;
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
    f->owned = ARWKV__ST_COPIED;
    return ARWKV_OK;
}

ARWKV_API void arwkv_st_close(arwkv_safetensors *st) {
    if (!st) return;
    for (int i = 0; i < st->n_files; i++) {
        arwkv__st_file *f = &st->files[i];
#if !defined(_WIN32) && !defined(ARWKV_NO_MMAP)
        if (f->owned == ARWKV__ST_MAPPED) munmap((void *)f->map, f->size);
#endif
        if (f->owned == ARWKV__ST_COPIED) arwkv__free((void *)f->map);
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
   SECTION 3b. GGUF reader
   ============================================================================================
   Layout (all little-endian): "GGUF", u32 version, u64 tensor count, u64 metadata count; then
   each metadata entry: string key, u32 value type, value; then each tensor info: string name,
   u32 n_dims, u64 dims[n_dims] (ggml order), u32 ggml type, u64 offset (from the data section);
   then padding to general.alignment (default 32) and the data section. A string is a u64 length
   and that many bytes (no NUL); an array is a u32 element type, a u64 count and the elements.
   Version 1 (32-bit counts) is not read. The data of each tensor must lie in the data section,
   start at a multiple of the alignment and overlap no other tensor; holes are allowed. */

#define ARWKV__GGUF_MAX_DEPTH 8       /* arrays of arrays nest at most this deep */
#define ARWKV__GGUF_MAX_NAME 4096     /* longest key or tensor name accepted */

typedef struct arwkv__gguf_kv {
    arwkv_gguf_kv pub;
    const unsigned char *data; /* numbers: the first element; strings: see str */
    uint64_t *str;             /* strings: file offset of each element's u64 length (count entries) */
} arwkv__gguf_kv;

struct arwkv_gguf {
    arwkv__st_file file; /* the mapping, shared with the safetensors reader */
    uint32_t version, alignment;
    arwkv__gguf_kv *kvs;
    int n_kvs;
    arwkv_gguf_tensor *tensors;
    int n_tensors;
    int32_t *kv_table, *tensor_table; /* open-addressing hash tables of indices, -1 empty */
    uint32_t kv_mask, tensor_mask;
    uint64_t data_start;
};

/* A bounds-checked cursor over the file. Every read names what it reads and where. */
typedef struct arwkv__gguf_cur {
    const unsigned char *p;
    uint64_t size, pos;
    const char *path;
} arwkv__gguf_cur;

ARWKV_PRIVATE arwkv_result arwkv__gguf_need(arwkv__gguf_cur *c, uint64_t n, const char *what) {
    if (n > c->size - c->pos)
        return arwkv__fail(ARWKV_ERR_FORMAT, "%s: %s at byte %llu needs %llu bytes but the %llu-byte file ends first (truncated?)",
                           c->path, what, (unsigned long long)c->pos, (unsigned long long)n, (unsigned long long)c->size);
    return ARWKV_OK;
}
ARWKV_PRIVATE uint64_t arwkv__le(const unsigned char *p, int n) {
    uint64_t v = 0;
    for (int i = n - 1; i >= 0; i--) v = (v << 8) | p[i];
    return v;
}
ARWKV_PRIVATE arwkv_result arwkv__gguf_u32(arwkv__gguf_cur *c, uint32_t *v, const char *what) {
    ARWKV__TRY(arwkv__gguf_need(c, 4, what));
    *v = (uint32_t)arwkv__le(c->p + c->pos, 4);
    c->pos += 4;
    return ARWKV_OK;
}
ARWKV_PRIVATE arwkv_result arwkv__gguf_u64(arwkv__gguf_cur *c, uint64_t *v, const char *what) {
    ARWKV__TRY(arwkv__gguf_need(c, 8, what));
    *v = arwkv__le(c->p + c->pos, 8);
    c->pos += 8;
    return ARWKV_OK;
}
/* A string: its length is checked against the bytes left before anything is allocated. */
ARWKV_PRIVATE arwkv_result arwkv__gguf_str(arwkv__gguf_cur *c, const unsigned char **s, uint64_t *len, const char *what) {
    uint64_t at = c->pos;
    ARWKV__TRY(arwkv__gguf_u64(c, len, what));
    if (*len > c->size - c->pos)
        return arwkv__fail(ARWKV_ERR_FORMAT, "%s: %s at byte %llu has length %llu, past the end of the %llu-byte file", c->path, what,
                           (unsigned long long)at, (unsigned long long)*len, (unsigned long long)c->size);
    *s = c->p + c->pos;
    c->pos += *len;
    return ARWKV_OK;
}

/* Bytes of one scalar of a metadata type; 0 for strings and arrays, -1 for an unknown type. */
ARWKV_PRIVATE int arwkv__gguf_scalar_size(uint32_t t) {
    static const signed char size[13] = {1, 1, 2, 2, 4, 4, 4, 1, 0, 0, 8, 8, 8};
    return t < 13 ? size[t] : -1;
}

ARWKV_PRIVATE const char *arwkv__gguf_type_name(uint32_t t) {
    static const char *names[13] = {"uint8", "int8", "uint16", "int16", "uint32", "int32", "float32",
                                    "bool", "string", "array", "uint64", "int64", "float64"};
    return t < 13 ? names[t] : "unknown";
}

/* Skip (and check) one value of type t at the cursor; a string array records where each string is. */
ARWKV_PRIVATE arwkv_result arwkv__gguf_value(arwkv__gguf_cur *c, uint32_t t, int depth, const char *key, arwkv__gguf_kv *kv) {
    char what[ARWKV__GGUF_MAX_NAME + 64];
    int sz = arwkv__gguf_scalar_size(t);
    if (sz < 0)
        return arwkv__fail(ARWKV_ERR_FORMAT, "%s: metadata '%s': unknown value type %u at byte %llu", c->path, key, t,
                           (unsigned long long)c->pos - 4);
    if (t == ARWKV_GGUF_STRING) {
        const unsigned char *s;
        uint64_t len;
        snprintf(what, sizeof what, "metadata '%s': string value", key);
        return arwkv__gguf_str(c, &s, &len, what);
    }
    if (t != ARWKV_GGUF_ARRAY) {
        snprintf(what, sizeof what, "metadata '%s': %s value", key, arwkv__gguf_type_name(t));
        ARWKV__TRY(arwkv__gguf_need(c, (uint64_t)sz, what));
        if (t == ARWKV_GGUF_BOOL && c->p[c->pos] > 1)
            return arwkv__fail(ARWKV_ERR_FORMAT, "%s: metadata '%s': bool at byte %llu is %u, not 0 or 1", c->path, key,
                               (unsigned long long)c->pos, c->p[c->pos]);
        c->pos += (uint64_t)sz;
        return ARWKV_OK;
    }
    if (depth >= ARWKV__GGUF_MAX_DEPTH)
        return arwkv__fail(ARWKV_ERR_FORMAT, "%s: metadata '%s': arrays nested more than %d deep at byte %llu", c->path, key,
                           ARWKV__GGUF_MAX_DEPTH, (unsigned long long)c->pos);
    uint32_t et;
    uint64_t n, at = c->pos;
    snprintf(what, sizeof what, "metadata '%s': array element type", key);
    ARWKV__TRY(arwkv__gguf_u32(c, &et, what));
    snprintf(what, sizeof what, "metadata '%s': array length", key);
    ARWKV__TRY(arwkv__gguf_u64(c, &n, what));
    int esz = arwkv__gguf_scalar_size(et);
    if (esz < 0)
        return arwkv__fail(ARWKV_ERR_FORMAT, "%s: metadata '%s': unknown array element type %u at byte %llu", c->path, key, et,
                           (unsigned long long)at);
    /* every element takes at least one byte (8 for a string or array header): a count larger than
       the rest of the file is malformed, and checking it first bounds every allocation below */
    uint64_t min_bytes = esz > 0 ? (uint64_t)esz : 8;
    if (n > (c->size - c->pos) / min_bytes)
        return arwkv__fail(ARWKV_ERR_FORMAT, "%s: metadata '%s': array of %llu %s elements at byte %llu does not fit in the %llu-byte file",
                           c->path, key, (unsigned long long)n, arwkv__gguf_type_name(et), (unsigned long long)at,
                           (unsigned long long)c->size);
    if (kv) {
        kv->pub.elem_type = (arwkv_gguf_value_type)et;
        kv->pub.count = n;
        kv->data = c->p + c->pos;
    }
    if (esz > 0) {
        if (et == ARWKV_GGUF_BOOL)
            for (uint64_t i = 0; i < n; i++)
                if (c->p[c->pos + i] > 1)
                    return arwkv__fail(ARWKV_ERR_FORMAT, "%s: metadata '%s': bool element %llu at byte %llu is %u, not 0 or 1", c->path,
                                       key, (unsigned long long)i, (unsigned long long)(c->pos + i), c->p[c->pos + i]);
        c->pos += n * (uint64_t)esz;
        return ARWKV_OK;
    }
    if (et == ARWKV_GGUF_STRING && kv) {
        kv->str = (uint64_t *)arwkv__malloc((size_t)n * sizeof(uint64_t));
        if (!kv->str) return arwkv__fail(ARWKV_ERR_OUT_OF_MEMORY, "%s: metadata '%s': out of memory", c->path, key);
    }
    for (uint64_t i = 0; i < n; i++) {
        if (kv && kv->str) kv->str[i] = c->pos;
        ARWKV__TRY(arwkv__gguf_value(c, et, depth + 1, key, NULL));
    }
    return ARWKV_OK;
}

/* Values per block and bytes per block of every ggml type with a known layout. */
ARWKV_API int arwkv_ggml_block_size(int type, size_t *block_bytes) {
    static const struct { int type, values, bytes; const char *name; } table[] = {
        {0, 1, 4, "F32"}, {1, 1, 2, "F16"}, {2, 32, 18, "Q4_0"}, {3, 32, 20, "Q4_1"}, {6, 32, 22, "Q5_0"},
        {7, 32, 24, "Q5_1"}, {8, 32, 34, "Q8_0"}, {9, 32, 36, "Q8_1"}, {10, 256, 84, "Q2_K"}, {11, 256, 110, "Q3_K"},
        {12, 256, 144, "Q4_K"}, {13, 256, 176, "Q5_K"}, {14, 256, 210, "Q6_K"}, {15, 256, 292, "Q8_K"},
        {16, 256, 66, "IQ2_XXS"}, {17, 256, 74, "IQ2_XS"}, {18, 256, 98, "IQ3_XXS"}, {19, 256, 50, "IQ1_S"},
        {20, 32, 18, "IQ4_NL"}, {21, 256, 110, "IQ3_S"}, {22, 256, 82, "IQ2_S"}, {23, 256, 136, "IQ4_XS"},
        {24, 1, 1, "I8"}, {25, 1, 2, "I16"}, {26, 1, 4, "I32"}, {27, 1, 8, "I64"}, {28, 1, 8, "F64"},
        {29, 256, 56, "IQ1_M"}, {30, 1, 2, "BF16"}, {34, 256, 54, "TQ1_0"}, {35, 256, 66, "TQ2_0"},
    };
    for (size_t i = 0; i < sizeof table / sizeof table[0]; i++)
        if (table[i].type == type) {
            if (block_bytes) *block_bytes = (size_t)table[i].bytes;
            return table[i].values;
        }
    if (block_bytes) *block_bytes = 0;
    return 0;
}

ARWKV_API const char *arwkv_ggml_type_name(int type) {
    static const char *names[36] = {"F32", "F16", "Q4_0", "Q4_1", NULL, NULL, "Q5_0", "Q5_1", "Q8_0", "Q8_1",
                                    "Q2_K", "Q3_K", "Q4_K", "Q5_K", "Q6_K", "Q8_K", "IQ2_XXS", "IQ2_XS", "IQ3_XXS",
                                    "IQ1_S", "IQ4_NL", "IQ3_S", "IQ2_S", "IQ4_XS", "I8", "I16", "I32", "I64", "F64",
                                    "IQ1_M", "BF16", NULL, NULL, NULL, "TQ1_0", "TQ2_0"};
    return type >= 0 && type < 36 && names[type] ? names[type] : "unknown";
}

/* An open-addressing table of n names (get(i) gives name i); a repeated name is reported by index. */
ARWKV_PRIVATE arwkv_result arwkv__gguf_table(int n, const char *(*get)(const arwkv_gguf *, int), const arwkv_gguf *g,
                                             int32_t **table, uint32_t *mask, int *dup) {
    uint32_t size = 16;
    while (size < (uint32_t)n * 2u) size *= 2;
    *table = (int32_t *)arwkv__malloc(size * sizeof(int32_t));
    if (!*table) return arwkv__fail(ARWKV_ERR_OUT_OF_MEMORY, "%s: out of memory", g->file.path);
    memset(*table, 0xff, size * sizeof(int32_t));
    *mask = size - 1;
    *dup = -1;
    for (int k = 0; k < n; k++) {
        const char *name = get(g, k);
        uint32_t i = (uint32_t)arwkv__hash(name, strlen(name)) & *mask;
        while ((*table)[i] >= 0) {
            if (strcmp(get(g, (*table)[i]), name) == 0) {
                *dup = k;
                return ARWKV_ERR_FORMAT;
            }
            i = (i + 1) & *mask;
        }
        (*table)[i] = k;
    }
    return ARWKV_OK;
}
ARWKV_PRIVATE const char *arwkv__gguf_kv_name(const arwkv_gguf *g, int i) { return g->kvs[i].pub.key; }
ARWKV_PRIVATE const char *arwkv__gguf_tensor_name(const arwkv_gguf *g, int i) { return g->tensors[i].name; }
ARWKV_PRIVATE int arwkv__gguf_lookup(const int32_t *table, uint32_t mask, const char *name,
                                     const char *(*get)(const arwkv_gguf *, int), const arwkv_gguf *g) {
    if (!table) return -1;
    for (uint32_t i = (uint32_t)arwkv__hash(name, strlen(name)) & mask;; i = (i + 1) & mask) {
        if (table[i] < 0) return -1;
        if (strcmp(get(g, table[i]), name) == 0) return table[i];
    }
}

/* A key or tensor name as a C string: not empty, no NUL inside, not absurdly long. */
ARWKV_PRIVATE arwkv_result arwkv__gguf_name(arwkv__gguf_cur *c, char **out, const char *what) {
    const unsigned char *s;
    uint64_t len, at = c->pos;
    ARWKV__TRY(arwkv__gguf_str(c, &s, &len, what));
    if (len == 0 || len > ARWKV__GGUF_MAX_NAME || memchr(s, 0, (size_t)len))
        return arwkv__fail(ARWKV_ERR_FORMAT, "%s: %s at byte %llu is %s", c->path, what, (unsigned long long)at,
                           len == 0 ? "empty" : len > ARWKV__GGUF_MAX_NAME ? "longer than 4096 bytes" : "a string with a NUL byte inside");
    *out = arwkv__strndup((const char *)s, (size_t)len);
    return *out ? ARWKV_OK : arwkv__fail(ARWKV_ERR_OUT_OF_MEMORY, "%s: out of memory", c->path);
}

typedef struct arwkv__gguf_span {
    uint64_t begin, end;
    int tensor;
} arwkv__gguf_span;

ARWKV_PRIVATE int arwkv__gguf_span_cmp(const void *a, const void *b) {
    const arwkv__gguf_span *x = (const arwkv__gguf_span *)a, *y = (const arwkv__gguf_span *)b;
    return x->begin < y->begin ? -1 : x->begin > y->begin ? 1 : (x->tensor > y->tensor) - (x->tensor < y->tensor);
}

ARWKV_PRIVATE arwkv_result arwkv__gguf_parse(arwkv_gguf *g) {
    arwkv__gguf_cur c = {g->file.map, g->file.size, 0, g->file.path};
    char what[ARWKV__GGUF_MAX_NAME + 64];
    ARWKV__TRY(arwkv__gguf_need(&c, 4, "the magic \"GGUF\""));
    if (memcmp(c.p, "GGUF", 4) != 0)
        return arwkv__fail(ARWKV_ERR_FORMAT, "%s: bytes 0..3 are not \"GGUF\" (not a GGUF file)", c.path);
    c.pos = 4;
    ARWKV__TRY(arwkv__gguf_u32(&c, &g->version, "the version"));
    if (g->version != 2 && g->version != 3) {
        if (g->version == 1) return arwkv__fail(ARWKV_ERR_UNSUPPORTED, "%s: GGUF version 1 (32-bit counts) is not supported; convert the file again", c.path);
        if (g->version != 0 && (g->version & 0xffff) == 0) return arwkv__fail(ARWKV_ERR_UNSUPPORTED, "%s: the version at byte 4 reads as big-endian; only little-endian GGUF is supported", c.path);
        return arwkv__fail(ARWKV_ERR_UNSUPPORTED, "%s: GGUF version %u at byte 4; versions 2 and 3 are supported", c.path, g->version);
    }
    uint64_t n_tensors, n_kvs;
    ARWKV__TRY(arwkv__gguf_u64(&c, &n_tensors, "the tensor count"));
    ARWKV__TRY(arwkv__gguf_u64(&c, &n_kvs, "the metadata count"));
    /* a metadata entry takes at least 12 bytes, a tensor info at least 24 */
    if (n_kvs > (c.size - c.pos) / 12 || n_kvs > INT32_MAX / 4)
        return arwkv__fail(ARWKV_ERR_FORMAT, "%s: metadata count %llu at byte 16 cannot fit in the %llu-byte file", c.path,
                           (unsigned long long)n_kvs, (unsigned long long)c.size);
    if (n_tensors > (c.size - c.pos) / 24 || n_tensors > INT32_MAX / 4)
        return arwkv__fail(ARWKV_ERR_FORMAT, "%s: tensor count %llu at byte 8 cannot fit in the %llu-byte file", c.path,
                           (unsigned long long)n_tensors, (unsigned long long)c.size);
    g->kvs = (arwkv__gguf_kv *)arwkv__calloc((size_t)n_kvs + 1, sizeof *g->kvs);
    g->tensors = (arwkv_gguf_tensor *)arwkv__calloc((size_t)n_tensors + 1, sizeof *g->tensors);
    if (!g->kvs || !g->tensors) return arwkv__fail(ARWKV_ERR_OUT_OF_MEMORY, "%s: out of memory", c.path);

    for (uint64_t k = 0; k < n_kvs; k++) {
        arwkv__gguf_kv *kv = &g->kvs[k];
        char *key;
        snprintf(what, sizeof what, "the key of metadata entry %llu", (unsigned long long)k);
        ARWKV__TRY(arwkv__gguf_name(&c, &key, what));
        kv->pub.key = key;
        g->n_kvs = (int)k + 1;
        uint32_t t;
        snprintf(what, sizeof what, "metadata '%s': value type", key);
        ARWKV__TRY(arwkv__gguf_u32(&c, &t, what));
        kv->pub.type = kv->pub.elem_type = (arwkv_gguf_value_type)t;
        kv->pub.count = 1;
        kv->pub.offset = c.pos;
        kv->data = c.p + c.pos;
        if (t == ARWKV_GGUF_STRING) {
            kv->str = (uint64_t *)arwkv__malloc(sizeof(uint64_t));
            if (!kv->str) return arwkv__fail(ARWKV_ERR_OUT_OF_MEMORY, "%s: out of memory", c.path);
            kv->str[0] = c.pos;
        }
        ARWKV__TRY(arwkv__gguf_value(&c, t, 0, key, kv));
    }
    int dup;
    if (arwkv__gguf_table(g->n_kvs, arwkv__gguf_kv_name, g, &g->kv_table, &g->kv_mask, &dup) != ARWKV_OK)
        return dup < 0 ? ARWKV_ERR_OUT_OF_MEMORY
                       : arwkv__fail(ARWKV_ERR_FORMAT, "%s: metadata key '%s' appears twice (entry %d)", c.path, g->kvs[dup].pub.key, dup);

    g->alignment = 32;
    const arwkv_gguf_kv *al = arwkv_gguf_find_kv(g, "general.alignment");
    if (al) {
        uint32_t a = al->type == ARWKV_GGUF_UINT32 ? (uint32_t)arwkv__le(((const arwkv__gguf_kv *)al)->data, 4) : 0;
        if (al->type != ARWKV_GGUF_UINT32 || a == 0 || (a & (a - 1)) != 0)
            return arwkv__fail(ARWKV_ERR_FORMAT, "%s: general.alignment at byte %llu must be a uint32 power of two, found %s %u", c.path,
                               (unsigned long long)al->offset, arwkv__gguf_type_name(al->type), a);
        g->alignment = a;
    }

    for (uint64_t k = 0; k < n_tensors; k++) {
        arwkv_gguf_tensor *t = &g->tensors[k];
        char *name;
        snprintf(what, sizeof what, "the name of tensor %llu", (unsigned long long)k);
        ARWKV__TRY(arwkv__gguf_name(&c, &name, what));
        t->name = name;
        g->n_tensors = (int)k + 1;
        uint32_t nd, type;
        snprintf(what, sizeof what, "tensor '%s': dimension count", name);
        ARWKV__TRY(arwkv__gguf_u32(&c, &nd, what));
        if (nd < 1 || nd > 4)
            return arwkv__fail(ARWKV_ERR_FORMAT, "%s: tensor '%s': %u dimensions at byte %llu; 1 to 4 are allowed", c.path, name, nd,
                               (unsigned long long)c.pos - 4);
        t->ndim = (int)nd;
        uint64_t numel = 1;
        for (uint32_t d = 0; d < nd; d++) {
            uint64_t v;
            snprintf(what, sizeof what, "tensor '%s': dimension %u", name, d);
            ARWKV__TRY(arwkv__gguf_u64(&c, &v, what));
            if (v == 0 || v > (uint64_t)INT64_MAX || !arwkv__mul_ok(numel, v, &numel) || numel > (uint64_t)INT64_MAX)
                return arwkv__fail(ARWKV_ERR_FORMAT, "%s: tensor '%s': dimension %u at byte %llu is %llu (%s)", c.path, name, d,
                                   (unsigned long long)c.pos - 8, (unsigned long long)v,
                                   v == 0 ? "must be at least 1" : "the element count overflows 63 bits");
            t->ne[d] = (int64_t)v;
        }
        for (uint32_t d = nd; d < 4; d++) t->ne[d] = 1;
        t->numel = (int64_t)numel;
        snprintf(what, sizeof what, "tensor '%s': type", name);
        ARWKV__TRY(arwkv__gguf_u32(&c, &type, what));
        size_t block_bytes;
        int block = type > 1000 ? 0 : arwkv_ggml_block_size((int)type, &block_bytes);
        if (block == 0)
            return arwkv__fail(ARWKV_ERR_UNSUPPORTED, "%s: tensor '%s': unknown ggml type %u at byte %llu", c.path, name, type,
                               (unsigned long long)c.pos - 4);
        t->type = (int)type;
        if (t->ne[0] % block != 0)
            return arwkv__fail(ARWKV_ERR_FORMAT, "%s: tensor '%s': row length %lld is not a multiple of the %s block size %d", c.path,
                               name, (long long)t->ne[0], arwkv_ggml_type_name(t->type), block);
        uint64_t nbytes;
        if (!arwkv__mul_ok(numel / (uint64_t)block, block_bytes, &nbytes) || nbytes > SIZE_MAX)
            return arwkv__fail(ARWKV_ERR_FORMAT, "%s: tensor '%s': byte size overflows", c.path, name);
        t->nbytes = (size_t)nbytes;
        snprintf(what, sizeof what, "tensor '%s': data offset", name);
        ARWKV__TRY(arwkv__gguf_u64(&c, &t->offset, what));
        if (t->offset % g->alignment != 0)
            return arwkv__fail(ARWKV_ERR_FORMAT, "%s: tensor '%s': data offset %llu (at byte %llu) is not a multiple of the alignment %u",
                               c.path, name, (unsigned long long)t->offset, (unsigned long long)c.pos - 8, g->alignment);
    }
    if (arwkv__gguf_table(g->n_tensors, arwkv__gguf_tensor_name, g, &g->tensor_table, &g->tensor_mask, &dup) != ARWKV_OK)
        return dup < 0 ? ARWKV_ERR_OUT_OF_MEMORY
                       : arwkv__fail(ARWKV_ERR_FORMAT, "%s: tensor '%s' appears twice (tensor %d)", c.path, g->tensors[dup].name, dup);

    /* the data section starts at the next multiple of the alignment */
    uint64_t start = c.pos + (g->alignment - c.pos % g->alignment) % g->alignment;
    if (g->n_tensors == 0) start = start < c.size ? start : c.size; /* a file without tensors may omit the padding */
    if (start > c.size)
        return arwkv__fail(ARWKV_ERR_FORMAT, "%s: the data section would start at byte %llu, past the end of the %llu-byte file (truncated?)",
                           c.path, (unsigned long long)start, (unsigned long long)c.size);
    g->data_start = start;
    uint64_t data_size = c.size - start;
    arwkv__gguf_span *spans = (arwkv__gguf_span *)arwkv__calloc((size_t)g->n_tensors + 1, sizeof *spans);
    if (!spans) return arwkv__fail(ARWKV_ERR_OUT_OF_MEMORY, "%s: out of memory", c.path);
    arwkv_result r = ARWKV_OK;
    for (int k = 0; k < g->n_tensors && r == ARWKV_OK; k++) {
        arwkv_gguf_tensor *t = &g->tensors[k];
        if (t->offset > data_size || t->nbytes > data_size - t->offset)
            r = arwkv__fail(ARWKV_ERR_FORMAT, "%s: tensor '%s': %zu bytes of %s data at offset %llu (file byte %llu) run past the end of "
                            "the %llu-byte file (truncated?)", c.path, t->name, t->nbytes, arwkv_ggml_type_name(t->type),
                            (unsigned long long)t->offset, (unsigned long long)(start + t->offset), (unsigned long long)c.size);
        if (r != ARWKV_OK) break;
        spans[k].begin = t->offset;
        spans[k].end = t->offset + t->nbytes;
        spans[k].tensor = k;
        t->offset += start;
        t->data = c.p + t->offset;
    }
    if (r == ARWKV_OK) {
        qsort(spans, (size_t)g->n_tensors, sizeof *spans, arwkv__gguf_span_cmp);
        for (int s = 1; s < g->n_tensors && r == ARWKV_OK; s++)
            if (spans[s].begin < spans[s - 1].end)
                r = arwkv__fail(ARWKV_ERR_FORMAT, "%s: tensor '%s' (data offset %llu) overlaps tensor '%s' (data offsets %llu..%llu)",
                                c.path, g->tensors[spans[s].tensor].name, (unsigned long long)spans[s].begin,
                                g->tensors[spans[s - 1].tensor].name, (unsigned long long)spans[s - 1].begin,
                                (unsigned long long)spans[s - 1].end);
    }
    arwkv__free(spans);
    return r;
}

ARWKV_API void arwkv_gguf_close(arwkv_gguf *g) {
    if (!g) return;
#if !defined(_WIN32) && !defined(ARWKV_NO_MMAP)
    if (g->file.owned == ARWKV__ST_MAPPED) munmap((void *)g->file.map, g->file.size);
#endif
    if (g->file.owned == ARWKV__ST_COPIED) arwkv__free((void *)g->file.map);
    arwkv__free(g->file.path);
    for (int i = 0; i < g->n_kvs; i++) {
        arwkv__free((void *)g->kvs[i].pub.key);
        arwkv__free(g->kvs[i].str);
    }
    for (int i = 0; i < g->n_tensors; i++) arwkv__free((void *)g->tensors[i].name);
    arwkv__free(g->kvs);
    arwkv__free(g->tensors);
    arwkv__free(g->kv_table);
    arwkv__free(g->tensor_table);
    arwkv__free(g);
}

ARWKV_PRIVATE arwkv_result arwkv__gguf_finish(arwkv_gguf *g, arwkv_result r, arwkv_gguf **out) {
    if (r == ARWKV_OK) r = arwkv__gguf_parse(g);
    if (r != ARWKV_OK) {
        arwkv_gguf_close(g);
        return r;
    }
    *out = g;
    return ARWKV_OK;
}

ARWKV_API arwkv_result arwkv_gguf_open_memory(const void *buf, size_t len, const char *name, arwkv_gguf **out) {
    *out = NULL;
    arwkv_gguf *g = (arwkv_gguf *)arwkv__calloc(1, sizeof *g);
    if (!g) return arwkv__fail(ARWKV_ERR_OUT_OF_MEMORY, "out of memory");
    g->file.path = arwkv__strdup(name ? name : "<memory>");
    g->file.map = (const unsigned char *)buf;
    g->file.size = len;
    return arwkv__gguf_finish(g, g->file.path ? ARWKV_OK : arwkv__fail(ARWKV_ERR_OUT_OF_MEMORY, "out of memory"), out);
}

ARWKV_API arwkv_result arwkv_gguf_open(const char *path, arwkv_gguf **out) {
    *out = NULL;
    if (!path) return arwkv__fail(ARWKV_ERR_INVALID_ARGUMENT, "arwkv_gguf_open: path is NULL");
    arwkv_gguf *g = (arwkv_gguf *)arwkv__calloc(1, sizeof *g);
    if (!g) return arwkv__fail(ARWKV_ERR_OUT_OF_MEMORY, "out of memory");
    g->file.path = arwkv__strdup(path);
    arwkv_result r = g->file.path ? arwkv__st_map_file(&g->file) : arwkv__fail(ARWKV_ERR_OUT_OF_MEMORY, "out of memory");
    return arwkv__gguf_finish(g, r, out);
}

/* 1 if path is a file that starts with the GGUF magic. */
ARWKV_PRIVATE int arwkv__is_gguf_file(const char *path) {
    if (!path || arwkv__is_dir(path)) return 0;
    FILE *f = fopen(path, "rb");
    char magic[4] = {0};
    if (!f) return 0;
    size_t n = fread(magic, 1, 4, f);
    fclose(f);
    return n == 4 && memcmp(magic, "GGUF", 4) == 0;
}

ARWKV_API uint32_t arwkv_gguf_version(const arwkv_gguf *g) { return g ? g->version : 0; }
ARWKV_API uint32_t arwkv_gguf_alignment(const arwkv_gguf *g) { return g ? g->alignment : 0; }
ARWKV_API const char *arwkv_gguf_path(const arwkv_gguf *g) { return g ? g->file.path : NULL; }
ARWKV_API int arwkv_gguf_kv_count(const arwkv_gguf *g) { return g ? g->n_kvs : 0; }
ARWKV_API const arwkv_gguf_kv *arwkv_gguf_kv_at(const arwkv_gguf *g, int i) {
    return g && i >= 0 && i < g->n_kvs ? &g->kvs[i].pub : NULL;
}
ARWKV_API const arwkv_gguf_kv *arwkv_gguf_find_kv(const arwkv_gguf *g, const char *key) {
    int i = g ? arwkv__gguf_lookup(g->kv_table, g->kv_mask, key, arwkv__gguf_kv_name, g) : -1;
    return i >= 0 ? &g->kvs[i].pub : NULL;
}
ARWKV_API int arwkv_gguf_tensor_count(const arwkv_gguf *g) { return g ? g->n_tensors : 0; }
ARWKV_API const arwkv_gguf_tensor *arwkv_gguf_tensor_at(const arwkv_gguf *g, int i) {
    return g && i >= 0 && i < g->n_tensors ? &g->tensors[i] : NULL;
}
ARWKV_API const arwkv_gguf_tensor *arwkv_gguf_find_tensor(const arwkv_gguf *g, const char *name) {
    int i = g ? arwkv__gguf_lookup(g->tensor_table, g->tensor_mask, name, arwkv__gguf_tensor_name, g) : -1;
    return i >= 0 ? &g->tensors[i] : NULL;
}

/* The raw bytes of element i of a numeric value, after checking the index. */
ARWKV_PRIVATE arwkv_result arwkv__gguf_elem(const arwkv_gguf *g, const arwkv_gguf_kv *kv, uint64_t i, const unsigned char **p) {
    if (i >= kv->count)
        return arwkv__fail(ARWKV_ERR_INVALID_ARGUMENT, "%s: metadata '%s': index %llu is past its %llu elements", g->file.path, kv->key,
                           (unsigned long long)i, (unsigned long long)kv->count);
    int sz = arwkv__gguf_scalar_size(kv->elem_type);
    if (sz <= 0) return ARWKV_ERR_FORMAT; /* the caller words the message */
    *p = ((const arwkv__gguf_kv *)kv)->data + i * (uint64_t)sz;
    return ARWKV_OK;
}

ARWKV_API arwkv_result arwkv_gguf_kv_int(const arwkv_gguf *g, const arwkv_gguf_kv *kv, uint64_t i, int64_t *out) {
    const unsigned char *p;
    arwkv_result r = arwkv__gguf_elem(g, kv, i, &p);
    if (r == ARWKV_ERR_INVALID_ARGUMENT) return r;
    uint64_t u = 0;
    switch (r == ARWKV_OK ? kv->elem_type : ARWKV_GGUF_STRING) {
    case ARWKV_GGUF_UINT8: case ARWKV_GGUF_BOOL: *out = p[0]; return ARWKV_OK;
    case ARWKV_GGUF_INT8: *out = (int8_t)p[0]; return ARWKV_OK;
    case ARWKV_GGUF_UINT16: *out = (int64_t)arwkv__le(p, 2); return ARWKV_OK;
    case ARWKV_GGUF_INT16: *out = (int16_t)(uint16_t)arwkv__le(p, 2); return ARWKV_OK;
    case ARWKV_GGUF_UINT32: *out = (int64_t)arwkv__le(p, 4); return ARWKV_OK;
    case ARWKV_GGUF_INT32: *out = (int32_t)(uint32_t)arwkv__le(p, 4); return ARWKV_OK;
    case ARWKV_GGUF_INT64: u = arwkv__le(p, 8); memcpy(out, &u, 8); return ARWKV_OK;
    case ARWKV_GGUF_UINT64:
        u = arwkv__le(p, 8);
        if (u > (uint64_t)INT64_MAX)
            return arwkv__fail(ARWKV_ERR_FORMAT, "%s: metadata '%s' (byte %llu): %llu does not fit in int64", g->file.path, kv->key,
                               (unsigned long long)kv->offset, (unsigned long long)u);
        *out = (int64_t)u;
        return ARWKV_OK;
    default:
        return arwkv__fail(ARWKV_ERR_FORMAT, "%s: metadata '%s' (byte %llu) is %s%s, not an integer", g->file.path, kv->key,
                           (unsigned long long)kv->offset, kv->type == ARWKV_GGUF_ARRAY ? "an array of " : "",
                           arwkv__gguf_type_name(kv->elem_type));
    }
}

ARWKV_API arwkv_result arwkv_gguf_kv_float(const arwkv_gguf *g, const arwkv_gguf_kv *kv, uint64_t i, double *out) {
    const unsigned char *p;
    arwkv_result r = arwkv__gguf_elem(g, kv, i, &p);
    if (r == ARWKV_ERR_INVALID_ARGUMENT) return r;
    if (r == ARWKV_OK && kv->elem_type == ARWKV_GGUF_FLOAT32) {
        uint32_t b = (uint32_t)arwkv__le(p, 4);
        float f;
        memcpy(&f, &b, 4);
        *out = f;
        return ARWKV_OK;
    }
    if (r == ARWKV_OK && kv->elem_type == ARWKV_GGUF_FLOAT64) {
        uint64_t b = arwkv__le(p, 8);
        memcpy(out, &b, 8);
        return ARWKV_OK;
    }
    int64_t v;
    if (r == ARWKV_OK && kv->elem_type != ARWKV_GGUF_BOOL && arwkv_gguf_kv_int(g, kv, i, &v) == ARWKV_OK) {
        *out = (double)v;
        return ARWKV_OK;
    }
    return arwkv__fail(ARWKV_ERR_FORMAT, "%s: metadata '%s' (byte %llu) is %s%s, not a number", g->file.path, kv->key,
                       (unsigned long long)kv->offset, kv->type == ARWKV_GGUF_ARRAY ? "an array of " : "", arwkv__gguf_type_name(kv->elem_type));
}

ARWKV_API arwkv_result arwkv_gguf_kv_string(const arwkv_gguf *g, const arwkv_gguf_kv *kv, uint64_t i, const char **s, size_t *len) {
    const arwkv__gguf_kv *k = (const arwkv__gguf_kv *)kv;
    if (kv->elem_type != ARWKV_GGUF_STRING || !k->str)
        return arwkv__fail(ARWKV_ERR_FORMAT, "%s: metadata '%s' (byte %llu) is %s%s, not a string", g->file.path, kv->key,
                           (unsigned long long)kv->offset, kv->type == ARWKV_GGUF_ARRAY ? "an array of " : "", arwkv__gguf_type_name(kv->elem_type));
    if (i >= kv->count)
        return arwkv__fail(ARWKV_ERR_INVALID_ARGUMENT, "%s: metadata '%s': index %llu is past its %llu elements", g->file.path, kv->key,
                           (unsigned long long)i, (unsigned long long)kv->count);
    const unsigned char *p = g->file.map + k->str[i]; /* checked at open: the length and the bytes lie in the file */
    *len = (size_t)arwkv__le(p, 8);
    *s = (const char *)p + 8;
    return ARWKV_OK;
}

/* ---- Dequantization ----------------------------------------------------------------------------
   Each block type as the format defines it. d and m (or dmin) are fp16 scale and minimum. */

ARWKV_PRIVATE float arwkv__f16_at(const unsigned char *p) { return arwkv_f16_to_f32((uint16_t)(p[0] | p[1] << 8)); }

/* Q4_0 (18 bytes): d, 16 bytes of nibbles. Value j < 16 is the low nibble of byte j, value j + 16 the
   high nibble; x = (q - 8) * d. Q4_1 (20 bytes): d, m, then the same nibbles; x = q * d + m. */
ARWKV_PRIVATE void arwkv__dq_q4(const unsigned char *b, float *y, int has_min) {
    float d = arwkv__f16_at(b), m = has_min ? arwkv__f16_at(b + 2) : -8.0f * d;
    const unsigned char *qs = b + (has_min ? 4 : 2);
    for (int j = 0; j < 16; j++) {
        y[j] = (float)(qs[j] & 15) * d + m;
        y[j + 16] = (float)(qs[j] >> 4) * d + m;
    }
}
/* Q5_0 (22 bytes): d, 32 high bits (u32, bit j for value j), 16 bytes of low nibbles as Q4_0;
   x = (q - 16) * d. Q5_1 (24 bytes): d, m, the high bits, the nibbles; x = q * d + m. */
ARWKV_PRIVATE void arwkv__dq_q5(const unsigned char *b, float *y, int has_min) {
    float d = arwkv__f16_at(b), m = has_min ? arwkv__f16_at(b + 2) : -16.0f * d;
    const unsigned char *h = b + (has_min ? 4 : 2), *qs = h + 4;
    uint32_t qh = (uint32_t)arwkv__le(h, 4);
    for (int j = 0; j < 16; j++) {
        int lo = (qs[j] & 15) | (int)((qh >> j) & 1) << 4;
        int hi = (qs[j] >> 4) | (int)((qh >> (j + 16)) & 1) << 4;
        y[j] = (float)lo * d + m;
        y[j + 16] = (float)hi * d + m;
    }
}
/* Q8_0 (34 bytes): d, 32 signed bytes; x = q * d. */
ARWKV_PRIVATE void arwkv__dq_q8_0(const unsigned char *b, float *y) {
    float d = arwkv__f16_at(b);
    for (int j = 0; j < 32; j++) y[j] = (float)(int8_t)b[2 + j] * d;
}
/* The K-quants' 12 bytes of 6-bit scales and mins of 8 sub-blocks: sub-block j < 4 has its scale in
   the low 6 bits of byte j and its min in those of byte j + 4; j >= 4 has the low 4 bits of each in
   byte j + 4 (scale low nibble, min high nibble) and the top 2 bits in bytes j - 4 (scale) and j (min). */
ARWKV_PRIVATE void arwkv__k_scale_min(const unsigned char *s, int j, int *sc, int *mn) {
    if (j < 4) {
        *sc = s[j] & 63;
        *mn = s[j + 4] & 63;
    } else {
        *sc = (s[j + 4] & 15) | (s[j - 4] >> 6) << 4;
        *mn = (s[j + 4] >> 4) | (s[j] >> 6) << 4;
    }
}
/* Q4_K (144 bytes, 256 values): d, dmin, scales[12], 128 bytes of nibbles. Each 64 values use 32
   bytes: the low nibbles are sub-block 2i, the high nibbles sub-block 2i + 1; x = d*sc*q - dmin*mn.
   Q5_K (176 bytes): d, dmin, scales[12], qh[32], qs[128]: as Q4_K with a fifth bit, bit s of qh[l]
   for value l of sub-block s. */
ARWKV_PRIVATE void arwkv__dq_qk(const unsigned char *b, float *y, int five) {
    float d = arwkv__f16_at(b), dmin = arwkv__f16_at(b + 2);
    const unsigned char *sc = b + 4, *qh = b + 16, *qs = b + (five ? 48 : 16);
    for (int i = 0; i < 4; i++) {
        int s0, m0, s1, m1;
        arwkv__k_scale_min(sc, 2 * i, &s0, &m0);
        arwkv__k_scale_min(sc, 2 * i + 1, &s1, &m1);
        for (int l = 0; l < 32; l++) {
            int lo = qs[32 * i + l] & 15, hi = qs[32 * i + l] >> 4;
            if (five) {
                lo |= ((qh[l] >> (2 * i)) & 1) << 4;
                hi |= ((qh[l] >> (2 * i + 1)) & 1) << 4;
            }
            y[64 * i + l] = d * (float)s0 * (float)lo - dmin * (float)m0;
            y[64 * i + 32 + l] = d * (float)s1 * (float)hi - dmin * (float)m1;
        }
    }
}
/* Q6_K (210 bytes, 256 values): ql[128] low nibbles, qh[64] 2-bit highs, 16 signed 8-bit scales
   (one per 16 values), d last. Each half of 128 values uses 64 bytes of ql and 32 of qh: value
   l + 32k (k = 0..3) takes the low nibble of ql[l] (k 0), ql[l+32] (k 1), the high nibble of ql[l]
   (k 2), ql[l+32] (k 3), and bits 2k..2k+1 of qh[l]; x = d * scale * (q - 32). */
ARWKV_PRIVATE void arwkv__dq_q6_k(const unsigned char *b, float *y) {
    const unsigned char *ql = b, *qh = b + 128;
    const signed char *sc = (const signed char *)(b + 192);
    float d = arwkv__f16_at(b + 208);
    for (int half = 0; half < 2; half++) {
        for (int l = 0; l < 32; l++)
            for (int k = 0; k < 4; k++) {
                int lo = (k & 1 ? ql[l + 32] : ql[l]);
                lo = k < 2 ? lo & 15 : lo >> 4;
                int q = (lo | ((qh[l] >> (2 * k)) & 3) << 4) - 32;
                y[32 * k + l] = d * (float)sc[(32 * k + l) / 16] * (float)q;
            }
        ql += 64;
        qh += 32;
        sc += 8;
        y += 128;
    }
}

ARWKV_API arwkv_result arwkv_dequantize(int type, const void *src, int64_t n, float *dst) {
    size_t bytes;
    int block = arwkv_ggml_block_size(type, &bytes);
    if (n < 0 || (block > 0 && n % block != 0))
        return arwkv__fail(ARWKV_ERR_INVALID_ARGUMENT, "dequantize: %lld values are not whole %s blocks of %d", (long long)n,
                           arwkv_ggml_type_name(type), block);
    const unsigned char *b = (const unsigned char *)src;
    int64_t nb = block > 0 ? n / block : 0;
    switch (type) {
    case ARWKV_GGML_F32: return arwkv_to_f32(dst, src, ARWKV_F32, (size_t)n);
    case ARWKV_GGML_F16: return arwkv_to_f32(dst, src, ARWKV_F16, (size_t)n);
    case ARWKV_GGML_BF16: return arwkv_to_f32(dst, src, ARWKV_BF16, (size_t)n);
    case ARWKV_GGML_Q4_0: case ARWKV_GGML_Q4_1:
        for (int64_t i = 0; i < nb; i++) arwkv__dq_q4(b + i * bytes, dst + i * 32, type == ARWKV_GGML_Q4_1);
        return ARWKV_OK;
    case ARWKV_GGML_Q5_0: case ARWKV_GGML_Q5_1:
        for (int64_t i = 0; i < nb; i++) arwkv__dq_q5(b + i * bytes, dst + i * 32, type == ARWKV_GGML_Q5_1);
        return ARWKV_OK;
    case ARWKV_GGML_Q8_0:
        for (int64_t i = 0; i < nb; i++) arwkv__dq_q8_0(b + i * bytes, dst + i * 32);
        return ARWKV_OK;
    case ARWKV_GGML_Q4_K: case ARWKV_GGML_Q5_K:
        for (int64_t i = 0; i < nb; i++) arwkv__dq_qk(b + i * bytes, dst + i * 256, type == ARWKV_GGML_Q5_K);
        return ARWKV_OK;
    case ARWKV_GGML_Q6_K:
        for (int64_t i = 0; i < nb; i++) arwkv__dq_q6_k(b + i * bytes, dst + i * 256);
        return ARWKV_OK;
    default:
        return arwkv__fail(ARWKV_ERR_UNSUPPORTED, "dequantize: ggml type %d (%s) is not supported; supported are F32 F16 BF16 Q8_0 "
                           "Q4_0 Q4_1 Q5_0 Q5_1 Q4_K Q5_K Q6_K", type, arwkv_ggml_type_name(type));
    }
}

ARWKV_API arwkv_result arwkv_gguf_tensor_f32(const arwkv_gguf *g, const arwkv_gguf_tensor *t, float *dst, int64_t n) {
    if (t->numel != n)
        return arwkv__fail(ARWKV_ERR_SHAPE, "%s: tensor '%s' has %lld values, expected %lld", g->file.path, t->name, (long long)t->numel,
                           (long long)n);
    arwkv_result r = arwkv_dequantize(t->type, t->data, n, dst);
    if (r != ARWKV_OK) return arwkv__context(r, "%s: tensor '%s'", g->file.path, t->name);
    return ARWKV_OK;
}

/* ============================================================================================
   SECTION 4. config.json
   ============================================================================================ */

/* Each architecture's names in config.json: architectures[0] and model_type. */
static const struct {
    arwkv_arch arch;
    const char *name, *model_type;
} arwkv__archs[] = {
    {ARWKV_ARCH_QWEN2, "Qwen2ForCausalLM", "qwen2"},           {ARWKV_ARCH_LLAMA, "LlamaForCausalLM", "llama"},
    {ARWKV_ARCH_QWEN3, "Qwen3ForCausalLM", "qwen3"},           {ARWKV_ARCH_ARWKV7, "RwkvHybridForCausalLM", "rwkv_hybrid"},
    {ARWKV_ARCH_QRWKV6, "RWKV6Qwen2ForCausalLM", "rwkv6qwen2"},
};

ARWKV_API const char *arwkv_arch_name(arwkv_arch a) {
    for (size_t i = 0; i < sizeof arwkv__archs / sizeof arwkv__archs[0]; i++)
        if (arwkv__archs[i].arch == a) return arwkv__archs[i].name;
    return "unknown";
}

ARWKV_PRIVATE const char *arwkv__arch_model_type(arwkv_arch a) {
    for (size_t i = 0; i < sizeof arwkv__archs / sizeof arwkv__archs[0]; i++)
        if (arwkv__archs[i].arch == a) return arwkv__archs[i].model_type;
    return "unknown";
}

/* The architecture named by an architectures[] string (or, when that is NULL, by a model_type). */
ARWKV_PRIVATE arwkv_arch arwkv__arch_from_names(const char *arch, const char *model_type) {
    for (size_t i = 0; i < sizeof arwkv__archs / sizeof arwkv__archs[0]; i++)
        if (arch ? strcmp(arch, arwkv__archs[i].name) == 0 : model_type && strcmp(model_type, arwkv__archs[i].model_type) == 0)
            return arwkv__archs[i].arch;
    return ARWKV_ARCH_UNKNOWN;
}

ARWKV_API int arwkv_arch_is_teacher(arwkv_arch a) { return a == ARWKV_ARCH_QWEN2 || a == ARWKV_ARCH_LLAMA || a == ARWKV_ARCH_QWEN3; }

/* Rotary embeddings other than the plain one (Llama 3.1's "llama3", YaRN, linear or dynamic
   scaling) change the angles: refuse them rather than compute a silently different model. */
ARWKV_PRIVATE arwkv_result arwkv__cfg_check_rope(const arwkv__json *j, uint32_t obj, const char *key, const char *name) {
    uint32_t n = arwkv__json_get(j, obj, key);
    if (n == ARWKV__JSON_NONE || arwkv__json_type(j, n) == ARWKV__JSON_NULL) return ARWKV_OK;
    if (arwkv__json_type(j, n) != ARWKV__JSON_OBJECT) return arwkv__fail(ARWKV_ERR_FORMAT, "%s: \"%s\" must be an object", name, key);
    const char *type = arwkv__json_str(j, arwkv__json_get(j, n, "rope_type"));
    if (!type) type = arwkv__json_str(j, arwkv__json_get(j, n, "type"));
    if (type && strcmp(type, "default") != 0)
        return arwkv__fail(ARWKV_ERR_UNSUPPORTED, "%s: %s.rope_type \"%s\" is not supported (only the default rotary embedding)", name, key, type);
    return ARWKV_OK;
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

/* What follows from the architecture once the sizes are known, and the checks every model must
   pass: the family's fixed parts (Qwen2: q/k/v biases and none on o; Llama, Qwen3: o as q/k/v;
   Qwen3: q/k norms), the defaults (key/value heads, head_dim), and the shapes the code can run.
   Anything that builds a config from another source (e.g. a GGUF file's metadata) fills arch, the
   sizes, rms_norm_eps, rope_theta, tie_word_embeddings, token ids and attention_bias, then calls
   this; name is used in errors. */
ARWKV_PRIVATE arwkv_result arwkv__config_finish(arwkv_config *cfg, const char *name) {
    if (arwkv_arch_is_teacher(cfg->arch)) cfg->base_arch = cfg->arch;
    if (cfg->arch == ARWKV_ARCH_QWEN2) cfg->attention_bias = 1, cfg->attention_output_bias = 0;
    if (cfg->arch == ARWKV_ARCH_LLAMA || cfg->arch == ARWKV_ARCH_QWEN3) cfg->attention_output_bias = cfg->attention_bias;
    if (cfg->arch == ARWKV_ARCH_QWEN3) cfg->qk_norm = 1;
    const struct {
        const char *key;
        int value;
    } sizes[] = {{"vocab_size", cfg->vocab_size}, {"hidden_size", cfg->hidden_size}, {"intermediate_size", cfg->intermediate_size},
                 {"num_hidden_layers", cfg->num_layers}, {"num_attention_heads", cfg->arch == ARWKV_ARCH_ARWKV7 ? 1 : cfg->num_heads}};
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++)
        if (sizes[i].value <= 0) return arwkv__fail(ARWKV_ERR_FORMAT, "%s: \"%s\" must be positive, got %d", name, sizes[i].key, sizes[i].value);
    if (cfg->num_heads > 0) {
        if (cfg->num_kv_heads <= 0) cfg->num_kv_heads = cfg->num_heads;
        if (cfg->head_dim <= 0) cfg->head_dim = cfg->hidden_size / cfg->num_heads;
        if (cfg->num_heads % cfg->num_kv_heads != 0)
            return arwkv__fail(ARWKV_ERR_FORMAT, "%s: num_attention_heads %d is not a multiple of num_key_value_heads %d", name,
                               cfg->num_heads, cfg->num_kv_heads);
        /* a teacher's attention may be wider or narrower than its hidden size (Qwen3's head_dim 128 at
           hidden 1024 and 16 heads); QRWKV6's time mix needs them equal */
        if (cfg->arch == ARWKV_ARCH_QRWKV6 && cfg->head_dim * cfg->num_heads != cfg->hidden_size)
            return arwkv__fail(ARWKV_ERR_UNSUPPORTED, "%s: head_dim %d x num_attention_heads %d != hidden_size %d", name,
                               cfg->head_dim, cfg->num_heads, cfg->hidden_size);
        if (cfg->head_dim % 2 != 0)
            return arwkv__fail(ARWKV_ERR_UNSUPPORTED, "%s: head_dim %d is odd; rotary embeddings need an even size", name, cfg->head_dim);
    }
    if (cfg->arch == ARWKV_ARCH_ARWKV7) {
        if (cfg->wkv_version != 7)
            return arwkv__fail(ARWKV_ERR_UNSUPPORTED, "%s: wkv_version %d is not supported (only 7)", name, cfg->wkv_version);
        if (cfg->head_size <= 0 || cfg->hidden_size % cfg->head_size != 0)
            return arwkv__fail(ARWKV_ERR_FORMAT, "%s: hidden_size %d is not a multiple of head_size %d", name, cfg->hidden_size, cfg->head_size);
    }
    if (cfg->arch == ARWKV_ARCH_QRWKV6) {
        /* llama.cpp's defaults when the keys are absent */
        if (cfg->lora_rank_tokenshift <= 0) cfg->lora_rank_tokenshift = cfg->hidden_size >= 4096 ? 64 : 32;
        if (cfg->lora_rank_decay <= 0) cfg->lora_rank_decay = cfg->hidden_size >= 4096 ? 128 : 64;
        cfg->head_size = cfg->head_dim;
    }
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
        cfg->arch = arwkv__arch_from_names(arch, model_type);
        if (cfg->arch == ARWKV_ARCH_UNKNOWN) {
            r = arwkv__fail(ARWKV_ERR_UNSUPPORTED,
                            "%s: unsupported architecture \"%s\" (model_type \"%s\"); supported: Qwen2ForCausalLM, "
                            "LlamaForCausalLM, Qwen3ForCausalLM, RwkvHybridForCausalLM, RWKV6Qwen2ForCausalLM",
                            name, arch ? arch : "(none)", model_type ? model_type : "(none)");
            goto done;
        }
        /* a student records the Transformer its blocks came from; older students are Qwen2's */
        cfg->base_arch = cfg->arch;
        if (!arwkv_arch_is_teacher(cfg->arch)) {
            uint32_t tn = arwkv__json_get(&j, 0, "teacher_architecture");
            const char *teacher = arwkv__json_str(&j, tn);
            cfg->base_arch = tn == ARWKV__JSON_NONE ? ARWKV_ARCH_QWEN2 : arwkv__arch_from_names(teacher ? teacher : "", NULL);
            if (!arwkv_arch_is_teacher(cfg->base_arch)) {
                r = arwkv__fail(ARWKV_ERR_UNSUPPORTED, "%s: \"teacher_architecture\" %s%s%s is not a supported teacher", name,
                                teacher ? "\"" : "", teacher ? teacher : "(not a string)", teacher ? "\"" : "");
                goto done;
            }
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
    cfg->attention_bias = cfg->arch == ARWKV_ARCH_QRWKV6; /* recursal's default; Llama's and Qwen3's is false */
    {
        double eps = cfg->rms_norm_eps;
        int mlp_bias = 0, sliding = 0;
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
        if (cfg->arch == ARWKV_ARCH_QRWKV6) ARWKV__CFG_INT("qk_norm", qk_norm); /* a student of Qwen3 keeps its q/k norms */
#undef ARWKV__CFG_INT
        if (r == ARWKV_OK) r = arwkv__cfg_int(&j, 0, "mlp_bias", &mlp_bias, name);
        if (r == ARWKV_OK) r = arwkv__cfg_int(&j, 0, "use_sliding_window", &sliding, name);
        if (r == ARWKV_OK && mlp_bias) r = arwkv__fail(ARWKV_ERR_UNSUPPORTED, "%s: \"mlp_bias\" true is not supported (MLPs without biases only)", name);
        if (r == ARWKV_OK && sliding)
            r = arwkv__fail(ARWKV_ERR_UNSUPPORTED, "%s: \"use_sliding_window\" true is not supported (full attention only)", name);
        if (r == ARWKV_OK) r = arwkv__cfg_check_rope(&j, 0, "rope_scaling", name);
        if (r == ARWKV_OK) r = arwkv__cfg_check_rope(&j, 0, "rope_parameters", name);
        if (r == ARWKV_OK) r = arwkv__cfg_num(&j, 0, "rms_norm_eps", &eps, name);
        /* transformers 5 moved rope_theta into rope_parameters; the hub's older files have it on top */
        if (r == ARWKV_OK) r = arwkv__cfg_num(&j, 0, "rope_theta", &cfg->rope_theta, name);
        if (r == ARWKV_OK) r = arwkv__cfg_num(&j, arwkv__json_get(&j, 0, "rope_parameters"), "rope_theta", &cfg->rope_theta, name);
        cfg->rms_norm_eps = (float)eps;
        if (r == ARWKV_OK && !(eps > 0 && eps < 1)) /* -1 or nan would turn every norm into NaN */
            r = arwkv__fail(ARWKV_ERR_FORMAT, "%s: rms_norm_eps %g must be a small positive number", name, eps);
        if (r == ARWKV_OK && !(cfg->rope_theta > 0 && isfinite(cfg->rope_theta)))
            r = arwkv__fail(ARWKV_ERR_FORMAT, "%s: rope_theta %g must be a positive number", name, cfg->rope_theta);
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
    if (r == ARWKV_OK) r = arwkv__config_finish(cfg, name);
done:
    arwkv__json_free(&j);
    return r;
}

/* path is a model directory (then name inside it is read) or the file itself. On success *file is
   the path read (for error messages) and *text its contents; the caller frees both. */
ARWKV_PRIVATE arwkv_result arwkv__read_model_file(const char *path, const char *name, char **file, char **text, size_t *len) {
    *file = arwkv__is_dir(path) ? arwkv__path_join(path, name) : arwkv__strdup(path);
    if (!*file) return arwkv__fail(ARWKV_ERR_OUT_OF_MEMORY, "out of memory");
    arwkv_result r = arwkv__read_file(*file, text, len);
    if (r != ARWKV_OK) {
        arwkv__free(*file);
        *file = NULL;
    }
    return r;
}

ARWKV_API arwkv_result arwkv_config_load(const char *path, arwkv_config *cfg) {
    char *file, *text;
    size_t len;
    arwkv_result r = arwkv__read_model_file(path, "config.json", &file, &text, &len);
    if (r != ARWKV_OK) return r;
    r = arwkv_config_parse(text, len, file, cfg);
    arwkv__free(text);
    arwkv__free(file);
    return r;
}

/* ============================================================================================
   SECTION 5. Tokenizer
   ============================================================================================ */
#ifndef ARWKV_NO_TOKENIZER
/* ---- BEGIN generated Unicode tables: tools/gen_unicode.py wrote them; do not edit by hand ----
   Source: the Unicode Character Database 15.0.0 as Debian's unicode-data package installs it
   (UnicodeData.txt, PropList.txt, DerivedAge.txt, CompositionExclusions.txt), plus the letters and
   numbers of Unicode 15.1 and 16.0 listed in the generator. 27568 bytes of data in all:
     arwkv__uni_class       6440 bytes  pre-tokenizer class, at each change: start << 2 | class
                                      (0 other, 1 letter \p{L}, 2 number \p{N}, 3 White_Space \s)
     arwkv__uni_nfc         2768 bytes  NFC quick check and combining class (Unicode 9.0), at each
                                      change: start << 10 | qc << 8 | ccc (qc: 0 yes, 1 maybe, 2 no)
     arwkv__uni_decomp     16480 bytes  canonical decompositions (Unicode 9.0, Hangul excluded), by
                                      code point: composes << 63 | cp << 42 | first << 21 | second
     arwkv__uni_compose     1880 bytes  the decompositions that compose back, ordered by (first, second)
*/
#define ARWKV__UNI_MAX_DECOMP 4 /* longest full canonical decomposition */
static const uint32_t arwkv__uni_class[1610] = {
    0x0, 0x27, 0x38, 0x83, 0x84, 0xc2, 0xe8, 0x105, 0x16c, 0x185,
    0x1ec, 0x217, 0x218, 0x283, 0x284, 0x2a9, 0x2ac, 0x2ca, 0x2d0, 0x2d5,
    0x2d8, 0x2e6, 0x2e9, 0x2ec, 0x2f2, 0x2fc, 0x301, 0x35c, 0x361, 0x3dc,
    0x3e1, 0xb08, 0xb19, 0xb48, 0xb81, 0xb94, 0xbb1, 0xbb4, 0xbb9, 0xbbc,
    0xdc1, 0xdd4, 0xdd9, 0xde0, 0xde9, 0xdf8, 0xdfd, 0xe00, 0xe19, 0xe1c,
    0xe21, 0xe2c, 0xe31, 0xe34, 0xe39, 0xe88, 0xe8d, 0xfd8, 0xfdd, 0x1208,
    0x1229, 0x14c0, 0x14c5, 0x155c, 0x1565, 0x1568, 0x1581, 0x1624, 0x1741, 0x17ac,
    0x17bd, 0x17cc, 0x1881, 0x192c, 0x1982, 0x19a8, 0x19b9, 0x19c0, 0x19c5, 0x1b50,
    0x1b55, 0x1b58, 0x1b95, 0x1b9c, 0x1bb9, 0x1bc2, 0x1be9, 0x1bf4, 0x1bfd, 0x1c00,
    0x1c41, 0x1c44, 0x1c49, 0x1cc0, 0x1d35, 0x1e98, 0x1ec5, 0x1ec8, 0x1f02, 0x1f29,
    0x1fac, 0x1fd1, 0x1fd8, 0x1fe9, 0x1fec, 0x2001, 0x2058, 0x2069, 0x206c, 0x2091,
    0x2094, 0x20a1, 0x20a4, 0x2101, 0x2164, 0x2181, 0x21ac, 0x21c1, 0x2220, 0x2225,
    0x223c, 0x2281, 0x2328, 0x2411, 0x24e8, 0x24f5, 0x24f8, 0x2541, 0x2544, 0x2561,
    0x2588, 0x259a, 0x25c0, 0x25c5, 0x2604, 0x2615, 0x2634, 0x263d, 0x2644, 0x264d,
    0x26a4, 0x26a9, 0x26c4, 0x26c9, 0x26cc, 0x26d9, 0x26e8, 0x26f5, 0x26f8, 0x2739,
    0x273c, 0x2771, 0x2778, 0x277d, 0x2788, 0x279a, 0x27c1, 0x27c8, 0x27d2, 0x27e8,
    0x27f1, 0x27f4, 0x2815, 0x282c, 0x283d, 0x2844, 0x284d, 0x28a4, 0x28a9, 0x28c4,
    0x28c9, 0x28d0, 0x28d5, 0x28dc, 0x28e1, 0x28e8, 0x2965, 0x2974, 0x2979, 0x297c,
    0x299a, 0x29c0, 0x29c9, 0x29d4, 0x2a15, 0x2a38, 0x2a3d, 0x2a48, 0x2a4d, 0x2aa4,
    0x2aa9, 0x2ac4, 0x2ac9, 0x2ad0, 0x2ad5, 0x2ae8, 0x2af5, 0x2af8, 0x2b41, 0x2b44,
    0x2b81, 0x2b88, 0x2b9a, 0x2bc0, 0x2be5, 0x2be8, 0x2c15, 0x2c34, 0x2c3d, 0x2c44,
    0x2c4d, 0x2ca4, 0x2ca9, 0x2cc4, 0x2cc9, 0x2cd0, 0x2cd5, 0x2ce8, 0x2cf5, 0x2cf8,
    0x2d71, 0x2d78, 0x2d7d, 0x2d88, 0x2d9a, 0x2dc0, 0x2dc5, 0x2dca, 0x2de0, 0x2e0d,
    0x2e10, 0x2e15, 0x2e2c, 0x2e39, 0x2e44, 0x2e49, 0x2e58, 0x2e65, 0x2e6c, 0x2e71,
    0x2e74, 0x2e79, 0x2e80, 0x2e8d, 0x2e94, 0x2ea1, 0x2eac, 0x2eb9, 0x2ee8, 0x2f41,
    0x2f44, 0x2f9a, 0x2fcc, 0x3015, 0x3034, 0x3039, 0x3044, 0x3049, 0x30a4, 0x30a9,
    0x30e8, 0x30f5, 0x30f8, 0x3161, 0x316c, 0x3175, 0x3178, 0x3181, 0x3188, 0x319a,
    0x31c0, 0x31e2, 0x31fc, 0x3201, 0x3204, 0x3215, 0x3234, 0x3239, 0x3244, 0x3249,
    0x32a4, 0x32a9, 0x32d0, 0x32d5, 0x32e8, 0x32f5, 0x32f8, 0x3375, 0x337c, 0x3381,
    0x3388, 0x339a, 0x33c0, 0x33c5, 0x33cc, 0x3411, 0x3434, 0x3439, 0x3444, 0x3449,
    0x34ec, 0x34f5, 0x34f8, 0x3539, 0x353c, 0x3551, 0x355c, 0x3562, 0x357d, 0x3588,
    0x359a, 0x35e4, 0x35e9, 0x3600, 0x3615, 0x365c, 0x3669, 0x36c8, 0x36cd, 0x36f0,
    0x36f5, 0x36f8, 0x3701, 0x371c, 0x379a, 0x37c0, 0x3805, 0x38c4, 0x38c9, 0x38d0,
    0x3901, 0x391c, 0x3942, 0x3968, 0x3a05, 0x3a0c, 0x3a11, 0x3a14, 0x3a19, 0x3a2c,
    0x3a31, 0x3a90, 0x3a95, 0x3a98, 0x3a9d, 0x3ac4, 0x3ac9, 0x3ad0, 0x3af5, 0x3af8,
    0x3b01, 0x3b14, 0x3b19, 0x3b1c, 0x3b42, 0x3b68, 0x3b71, 0x3b80, 0x3c01, 0x3c04,
    0x3c82, 0x3cd0, 0x3d01, 0x3d20, 0x3d25, 0x3db4, 0x3e21, 0x3e34, 0x4001, 0x40ac,
    0x40fd, 0x4102, 0x4128, 0x4141, 0x4158, 0x4169, 0x4178, 0x4185, 0x4188, 0x4195,
    0x419c, 0x41b9, 0x41c4, 0x41d5, 0x4208, 0x4239, 0x423c, 0x4242, 0x4268, 0x4281,
    0x4318, 0x431d, 0x4320, 0x4335, 0x4338, 0x4341, 0x43ec, 0x43f1, 0x4924, 0x4929,
    0x4938, 0x4941, 0x495c, 0x4961, 0x4964, 0x4969, 0x4978, 0x4981, 0x4a24, 0x4a29,
    0x4a38, 0x4a41, 0x4ac4, 0x4ac9, 0x4ad8, 0x4ae1, 0x4afc, 0x4b01, 0x4b04, 0x4b09,
    0x4b18, 0x4b21, 0x4b5c, 0x4b61, 0x4c44, 0x4c49, 0x4c58, 0x4c61, 0x4d6c, 0x4da6,
    0x4df4, 0x4e01, 0x4e40, 0x4e81, 0x4fd8, 0x4fe1, 0x4ff8, 0x5005, 0x59b4, 0x59bd,
    0x5a03, 0x5a05, 0x5a6c, 0x5a81, 0x5bac, 0x5bba, 0x5bc5, 0x5be4, 0x5c01, 0x5c48,
    0x5c7d, 0x5cc8, 0x5d01, 0x5d48, 0x5d81, 0x5db4, 0x5db9, 0x5dc4, 0x5e01, 0x5ed0,
    0x5f5d, 0x5f60, 0x5f71, 0x5f74, 0x5f82, 0x5fa8, 0x5fc2, 0x5fe8, 0x6042, 0x6068,
    0x6081, 0x61e4, 0x6201, 0x6214, 0x621d, 0x62a4, 0x62a9, 0x62ac, 0x62c1, 0x63d8,
    0x6401, 0x647c, 0x651a, 0x6541, 0x65b8, 0x65c1, 0x65d4, 0x6601, 0x66b0, 0x66c1,
    0x6728, 0x6742, 0x676c, 0x6801, 0x685c, 0x6881, 0x6954, 0x6a02, 0x6a28, 0x6a42,
    0x6a68, 0x6a9d, 0x6aa0, 0x6c15, 0x6cd0, 0x6d15, 0x6d34, 0x6d42, 0x6d68, 0x6e0d,
    0x6e84, 0x6eb9, 0x6ec2, 0x6ee9, 0x6f98, 0x7001, 0x7090, 0x7102, 0x7128, 0x7135,
    0x7142, 0x7169, 0x71f8, 0x7201, 0x722c, 0x7241, 0x72ec, 0x72f5, 0x7300, 0x73a5,
    0x73b4, 0x73b9, 0x73d0, 0x73d5, 0x73dc, 0x73e9, 0x73ec, 0x7401, 0x7700, 0x7801,
    0x7c58, 0x7c61, 0x7c78, 0x7c81, 0x7d18, 0x7d21, 0x7d38, 0x7d41, 0x7d60, 0x7d65,
    0x7d68, 0x7d6d, 0x7d70, 0x7d75, 0x7d78, 0x7d7d, 0x7df8, 0x7e01, 0x7ed4, 0x7ed9,
    0x7ef4, 0x7ef9, 0x7efc, 0x7f09, 0x7f14, 0x7f19, 0x7f34, 0x7f41, 0x7f50, 0x7f59,
    0x7f70, 0x7f81, 0x7fb4, 0x7fc9, 0x7fd4, 0x7fd9, 0x7ff4, 0x8003, 0x802c, 0x80a3,
    0x80a8, 0x80bf, 0x80c0, 0x817f, 0x8180, 0x81c2, 0x81c5, 0x81c8, 0x81d2, 0x81e8,
    0x81fd, 0x8202, 0x8228, 0x8241, 0x8274, 0x8409, 0x840c, 0x841d, 0x8420, 0x8429,
    0x8450, 0x8455, 0x8458, 0x8465, 0x8478, 0x8491, 0x8494, 0x8499, 0x849c, 0x84a1,
    0x84a4, 0x84a9, 0x84b8, 0x84bd, 0x84e8, 0x84f1, 0x8500, 0x8515, 0x8528, 0x8539,
    0x853c, 0x8542, 0x860d, 0x8616, 0x8628, 0x9182, 0x9270, 0x93aa, 0x9400, 0x9dda,
    0x9e50, 0xb001, 0xb394, 0xb3ad, 0xb3bc, 0xb3c9, 0xb3d0, 0xb3f6, 0xb3f8, 0xb401,
    0xb498, 0xb49d, 0xb4a0, 0xb4b5, 0xb4b8, 0xb4c1, 0xb5a0, 0xb5bd, 0xb5c0, 0xb601,
    0xb65c, 0xb681, 0xb69c, 0xb6a1, 0xb6bc, 0xb6c1, 0xb6dc, 0xb6e1, 0xb6fc, 0xb701,
    0xb71c, 0xb721, 0xb73c, 0xb741, 0xb75c, 0xb761, 0xb77c, 0xb8bd, 0xb8c0, 0xc003,
    0xc004, 0xc015, 0xc01e, 0xc020, 0xc086, 0xc0a8, 0xc0c5, 0xc0d8, 0xc0e2, 0xc0ed,
    0xc0f4, 0xc105, 0xc25c, 0xc275, 0xc280, 0xc285, 0xc3ec, 0xc3f1, 0xc400, 0xc415,
    0xc4c0, 0xc4c5, 0xc63c, 0xc64a, 0xc658, 0xc681, 0xc700, 0xc7c1, 0xc800, 0xc882,
    0xc8a8, 0xc922, 0xc940, 0xc946, 0xc980, 0xca02, 0xca28, 0xcac6, 0xcb00, 0xd001,
    0x13700, 0x13801, 0x29234, 0x29341, 0x293f8, 0x29401, 0x29834, 0x29841, 0x29882, 0x298a9,
    0x298b0, 0x29901, 0x299bc, 0x299fd, 0x29a78, 0x29a81, 0x29b9a, 0x29bc0, 0x29c5d, 0x29c80,
    0x29c89, 0x29e24, 0x29e2d, 0x29f38, 0x29f41, 0x29f48, 0x29f4d, 0x29f50, 0x29f55, 0x29f74,
    0x29fc9, 0x2a008, 0x2a00d, 0x2a018, 0x2a01d, 0x2a02c, 0x2a031, 0x2a08c, 0x2a0c2, 0x2a0d8,
    0x2a101, 0x2a1d0, 0x2a209, 0x2a2d0, 0x2a342, 0x2a368, 0x2a3c9, 0x2a3e0, 0x2a3ed, 0x2a3f0,
    0x2a3f5, 0x2a3fc, 0x2a402, 0x2a429, 0x2a498, 0x2a4c1, 0x2a51c, 0x2a581, 0x2a5f4, 0x2a611,
    0x2a6cc, 0x2a73d, 0x2a742, 0x2a768, 0x2a781, 0x2a794, 0x2a799, 0x2a7c2, 0x2a7e9, 0x2a7fc,
    0x2a801, 0x2a8a4, 0x2a901, 0x2a90c, 0x2a911, 0x2a930, 0x2a942, 0x2a968, 0x2a981, 0x2a9dc,
    0x2a9e9, 0x2a9ec, 0x2a9f9, 0x2aac0, 0x2aac5, 0x2aac8, 0x2aad5, 0x2aadc, 0x2aae5, 0x2aaf8,
    0x2ab01, 0x2ab04, 0x2ab09, 0x2ab0c, 0x2ab6d, 0x2ab78, 0x2ab81, 0x2abac, 0x2abc9, 0x2abd4,
    0x2ac05, 0x2ac1c, 0x2ac25, 0x2ac3c, 0x2ac45, 0x2ac5c, 0x2ac81, 0x2ac9c, 0x2aca1, 0x2acbc,
    0x2acc1, 0x2ad6c, 0x2ad71, 0x2ada8, 0x2adc1, 0x2af8c, 0x2afc2, 0x2afe8, 0x2b001, 0x35e90,
    0x35ec1, 0x35f1c, 0x35f2d, 0x35ff0, 0x3e401, 0x3e9b8, 0x3e9c1, 0x3eb68, 0x3ec01, 0x3ec1c,
    0x3ec4d, 0x3ec60, 0x3ec75, 0x3ec78, 0x3ec7d, 0x3eca4, 0x3eca9, 0x3ecdc, 0x3ece1, 0x3ecf4,
    0x3ecf9, 0x3ecfc, 0x3ed01, 0x3ed08, 0x3ed0d, 0x3ed14, 0x3ed19, 0x3eec8, 0x3ef4d, 0x3f4f8,
    0x3f541, 0x3f640, 0x3f649, 0x3f720, 0x3f7c1, 0x3f7f0, 0x3f9c1, 0x3f9d4, 0x3f9d9, 0x3fbf4,
    0x3fc42, 0x3fc68, 0x3fc85, 0x3fcec, 0x3fd05, 0x3fd6c, 0x3fd99, 0x3fefc, 0x3ff09, 0x3ff20,
    0x3ff29, 0x3ff40, 0x3ff49, 0x3ff60, 0x3ff69, 0x3ff74, 0x40001, 0x40030, 0x40035, 0x4009c,
    0x400a1, 0x400ec, 0x400f1, 0x400f8, 0x400fd, 0x40138, 0x40141, 0x40178, 0x40201, 0x403ec,
    0x4041e, 0x404d0, 0x40502, 0x405e4, 0x4062a, 0x40630, 0x40a01, 0x40a74, 0x40a81, 0x40b44,
    0x40b86, 0x40bf0, 0x40c01, 0x40c82, 0x40c90, 0x40cb5, 0x40d06, 0x40d09, 0x40d2a, 0x40d2c,
    0x40d41, 0x40dd8, 0x40e01, 0x40e78, 0x40e81, 0x40f10, 0x40f21, 0x40f40, 0x40f46, 0x40f58,
    0x41001, 0x41278, 0x41282, 0x412a8, 0x412c1, 0x41350, 0x41361, 0x413f0, 0x41401, 0x414a0,
    0x414c1, 0x41590, 0x415c1, 0x415ec, 0x415f1, 0x4162c, 0x41631, 0x4164c, 0x41651, 0x41658,
    0x4165d, 0x41688, 0x4168d, 0x416c8, 0x416cd, 0x416e8, 0x416ed, 0x416f4, 0x41701, 0x417d0,
    0x41801, 0x41cdc, 0x41d01, 0x41d58, 0x41d81, 0x41da0, 0x41e01, 0x41e18, 0x41e1d, 0x41ec4,
    0x41ec9, 0x41eec, 0x42001, 0x42018, 0x42021, 0x42024, 0x42029, 0x420d8, 0x420dd, 0x420e4,
    0x420f1, 0x420f4, 0x420fd, 0x42158, 0x42162, 0x42181, 0x421dc, 0x421e6, 0x42201, 0x4227c,
    0x4229e, 0x422c0, 0x42381, 0x423cc, 0x423d1, 0x423d8, 0x423ee, 0x42401, 0x4245a, 0x42470,
    0x42481, 0x424e8, 0x42601, 0x426e0, 0x426f2, 0x426f9, 0x42702, 0x42740, 0x4274a, 0x42801,
    0x42804, 0x42841, 0x42850, 0x42855, 0x42860, 0x42865, 0x428d8, 0x42902, 0x42924, 0x42981,
    0x429f6, 0x429fc, 0x42a01, 0x42a76, 0x42a80, 0x42b01, 0x42b20, 0x42b25, 0x42b94, 0x42bae,
    0x42bc0, 0x42c01, 0x42cd8, 0x42d01, 0x42d58, 0x42d62, 0x42d81, 0x42dcc, 0x42de2, 0x42e01,
    0x42e48, 0x42ea6, 0x42ec0, 0x43001, 0x43124, 0x43201, 0x432cc, 0x43301, 0x433cc, 0x433ea,
    0x43401, 0x43490, 0x434c2, 0x434e8, 0x43502, 0x43529, 0x43598, 0x435bd, 0x43618, 0x43982,
    0x439fc, 0x43a01, 0x43aa8, 0x43ac1, 0x43ac8, 0x43b09, 0x43b14, 0x43c01, 0x43c76, 0x43c9d,
    0x43ca0, 0x43cc1, 0x43d18, 0x43d46, 0x43d54, 0x43dc1, 0x43e08, 0x43ec1, 0x43f16, 0x43f30,
    0x43f81, 0x43fdc, 0x4400d, 0x440e0, 0x4414a, 0x441c0, 0x441c5, 0x441cc, 0x441d5, 0x441d8,
    0x4420d, 0x442c0, 0x44341, 0x443a4, 0x443c2, 0x443e8, 0x4440d, 0x4449c, 0x444da, 0x44500,
    0x44511, 0x44514, 0x4451d, 0x44520, 0x44541, 0x445cc, 0x445d9, 0x445dc, 0x4460d, 0x446cc,
    0x44705, 0x44714, 0x44742, 0x44769, 0x4476c, 0x44771, 0x44774, 0x44786, 0x447d4, 0x44801,
    0x44848, 0x4484d, 0x448b0, 0x448fd, 0x44904, 0x44a01, 0x44a1c, 0x44a21, 0x44a24, 0x44a29,
    0x44a38, 0x44a3d, 0x44a78, 0x44a7d, 0x44aa4, 0x44ac1, 0x44b7c, 0x44bc2, 0x44be8, 0x44c15,
    0x44c34, 0x44c3d, 0x44c44, 0x44c4d, 0x44ca4, 0x44ca9, 0x44cc4, 0x44cc9, 0x44cd0, 0x44cd5,
    0x44ce8, 0x44cf5, 0x44cf8, 0x44d41, 0x44d44, 0x44d75, 0x44d88, 0x44e01, 0x44e28, 0x44e2d,
    0x44e30, 0x44e39, 0x44e3c, 0x44e41, 0x44ed8, 0x44edd, 0x44ee0, 0x44f45, 0x44f48, 0x44f4d,
    0x44f50, 0x45001, 0x450d4, 0x4511d, 0x4512c, 0x45142, 0x45168, 0x4517d, 0x45188, 0x45201,
    0x452c0, 0x45311, 0x45318, 0x4531d, 0x45320, 0x45342, 0x45368, 0x45601, 0x456bc, 0x45761,
    0x45770, 0x45801, 0x458c0, 0x45911, 0x45914, 0x45942, 0x45968, 0x45a01, 0x45aac, 0x45ae1,
    0x45ae4, 0x45b02, 0x45b28, 0x45b42, 0x45b90, 0x45c01, 0x45c6c, 0x45cc2, 0x45cf0, 0x45d01,
    0x45d1c, 0x46001, 0x460b0, 0x46281, 0x46382, 0x463cc, 0x463fd, 0x4641c, 0x46425, 0x46428,
    0x46431, 0x46450, 0x46455, 0x4645c, 0x46461, 0x464c0, 0x464fd, 0x46500, 0x46505, 0x46508,
    0x46542, 0x46568, 0x46681, 0x466a0, 0x466a9, 0x46744, 0x46785, 0x46788, 0x4678d, 0x46790,
    0x46801, 0x46804, 0x4682d, 0x468cc, 0x468e9, 0x468ec, 0x46941, 0x46944, 0x46971, 0x46a28,
    0x46a75, 0x46a78, 0x46ac1, 0x46be4, 0x46f01, 0x46f84, 0x46fc2, 0x46fe8, 0x47001, 0x47024,
    0x47029, 0x470bc, 0x47101, 0x47104, 0x47142, 0x471b4, 0x471c9, 0x47240, 0x47401, 0x4741c,
    0x47421, 0x47428, 0x4742d, 0x474c4, 0x47519, 0x4751c, 0x47542, 0x47568, 0x47581, 0x47598,
    0x4759d, 0x475a4, 0x475a9, 0x47628, 0x47661, 0x47664, 0x47682, 0x476a8, 0x47b81, 0x47bcc,
    0x47c09, 0x47c0c, 0x47c11, 0x47c44, 0x47c49, 0x47cd0, 0x47d42, 0x47d68, 0x47ec1, 0x47ec4,
    0x47f02, 0x47f54, 0x48001, 0x48e68, 0x49002, 0x491bc, 0x49201, 0x49510, 0x4be41, 0x4bfc4,
    0x4c001, 0x4d0c0, 0x4d105, 0x4d11c, 0x4d181, 0x50fec, 0x51001, 0x5191c, 0x58401, 0x58478,
    0x584c2, 0x584e8, 0x5a001, 0x5a8e4, 0x5a901, 0x5a97c, 0x5a982, 0x5a9a8, 0x5a9c1, 0x5aafc,
    0x5ab02, 0x5ab28, 0x5ab41, 0x5abb8, 0x5ac01, 0x5acc0, 0x5ad01, 0x5ad10, 0x5ad42, 0x5ad68,
    0x5ad6e, 0x5ad88, 0x5ad8d, 0x5ade0, 0x5adf5, 0x5ae40, 0x5b501, 0x5b5b4, 0x5b5c2, 0x5b5e8,
    0x5b901, 0x5ba02, 0x5ba5c, 0x5bc01, 0x5bd2c, 0x5bd41, 0x5bd44, 0x5be4d, 0x5be80, 0x5bf81,
    0x5bf88, 0x5bf8d, 0x5bf90, 0x5c001, 0x61fe0, 0x62001, 0x63358, 0x633fd, 0x63424, 0x6bfc1,
    0x6bfd0, 0x6bfd5, 0x6bff0, 0x6bff5, 0x6bffc, 0x6c001, 0x6c48c, 0x6c4c9, 0x6c4cc, 0x6c541,
    0x6c54c, 0x6c555, 0x6c558, 0x6c591, 0x6c5a0, 0x6c5c1, 0x6cbf0, 0x6f001, 0x6f1ac, 0x6f1c1,
    0x6f1f4, 0x6f201, 0x6f224, 0x6f241, 0x6f268, 0x733c2, 0x733e8, 0x74b02, 0x74b50, 0x74b82,
    0x74bd0, 0x74d82, 0x74de4, 0x75001, 0x75154, 0x75159, 0x75274, 0x75279, 0x75280, 0x75289,
    0x7528c, 0x75295, 0x7529c, 0x752a5, 0x752b4, 0x752b9, 0x752e8, 0x752ed, 0x752f0, 0x752f5,
    0x75310, 0x75315, 0x75418, 0x7541d, 0x7542c, 0x75435, 0x75454, 0x75459, 0x75474, 0x75479,
    0x754e8, 0x754ed, 0x754fc, 0x75501, 0x75514, 0x75519, 0x7551c, 0x75529, 0x75544, 0x75549,
    0x75a98, 0x75aa1, 0x75b04, 0x75b09, 0x75b6c, 0x75b71, 0x75bec, 0x75bf1, 0x75c54, 0x75c59,
    0x75cd4, 0x75cd9, 0x75d3c, 0x75d41, 0x75dbc, 0x75dc1, 0x75e24, 0x75e29, 0x75ea4, 0x75ea9,
    0x75f0c, 0x75f11, 0x75f30, 0x75f3a, 0x76000, 0x77c01, 0x77c7c, 0x77c95, 0x77cac, 0x780c1,
    0x781b8, 0x78401, 0x784b4, 0x784dd, 0x784f8, 0x78502, 0x78528, 0x78539, 0x7853c, 0x78a41,
    0x78ab8, 0x78b01, 0x78bb0, 0x78bc2, 0x78be8, 0x79341, 0x793b0, 0x793c2, 0x793e8, 0x79741,
    0x797b8, 0x797c1, 0x797c6, 0x797ec, 0x79f81, 0x79f9c, 0x79fa1, 0x79fb0, 0x79fb5, 0x79fbc,
    0x79fc1, 0x79ffc, 0x7a001, 0x7a314, 0x7a31e, 0x7a340, 0x7a401, 0x7a510, 0x7a52d, 0x7a530,
    0x7a542, 0x7a568, 0x7b1c6, 0x7b2b0, 0x7b2b6, 0x7b2c0, 0x7b2c6, 0x7b2d4, 0x7b406, 0x7b4b8,
    0x7b4be, 0x7b4f8, 0x7b801, 0x7b810, 0x7b815, 0x7b880, 0x7b885, 0x7b88c, 0x7b891, 0x7b894,
    0x7b89d, 0x7b8a0, 0x7b8a5, 0x7b8cc, 0x7b8d1, 0x7b8e0, 0x7b8e5, 0x7b8e8, 0x7b8ed, 0x7b8f0,
    0x7b909, 0x7b90c, 0x7b91d, 0x7b920, 0x7b925, 0x7b928, 0x7b92d, 0x7b930, 0x7b935, 0x7b940,
    0x7b945, 0x7b94c, 0x7b951, 0x7b954, 0x7b95d, 0x7b960, 0x7b965, 0x7b968, 0x7b96d, 0x7b970,
    0x7b975, 0x7b978, 0x7b97d, 0x7b980, 0x7b985, 0x7b98c, 0x7b991, 0x7b994, 0x7b99d, 0x7b9ac,
    0x7b9b1, 0x7b9cc, 0x7b9d1, 0x7b9e0, 0x7b9e5, 0x7b9f4, 0x7b9f9, 0x7b9fc, 0x7ba01, 0x7ba28,
    0x7ba2d, 0x7ba70, 0x7ba85, 0x7ba90, 0x7ba95, 0x7baa8, 0x7baad, 0x7baf0, 0x7c402, 0x7c434,
    0x7efc2, 0x7efe8, 0x80001, 0xa9b80, 0xa9c01, 0xadce8, 0xadd01, 0xae078, 0xae081, 0xb3a88,
    0xb3ac1, 0xbaf84, 0xbafc1, 0xbb978, 0xbe001, 0xbe878, 0xc0001, 0xc4d2c, 0xc4d41, 0xc8ec0,
};
static const uint32_t arwkv__uni_nfc[692] = {
    0x0, 0xc01e6, 0xc14e6, 0xc19e6, 0xc34e6, 0xc3de6, 0xc40e6, 0xc45e6, 0xc48e6, 0xc4de6,
    0xc54e8, 0xc58dc, 0xc68e8, 0xc6dd8, 0xc70dc, 0xc84ca, 0xc8ddc, 0xc9dca, 0xca4dc, 0xcb5dc,
    0xcbcdc, 0xcc1dc, 0xcc8dc, 0xcd001, 0xce101, 0xce4dc, 0xcf4e6, 0xd02e6, 0xd09e6, 0xd0ee6,
    0xd15f0, 0xd18e6, 0xd1cdc, 0xd28e6, 0xd34dc, 0xd3c00, 0xd40e6, 0xd4cdc, 0xd5ce6, 0xd60e8,
    0xd64dc, 0xd6ce6, 0xd70e9, 0xd74ea, 0xd7ce9, 0xd80ea, 0xd88e9, 0xd8ce6, 0xdc000, 0xdd200,
    0xdd400, 0xdfa00, 0xdfc00, 0xe1e00, 0xe2000, 0x120ce6, 0x122000, 0x1644dc, 0x1648e6, 0x1658dc,
    0x165ce6, 0x1668de, 0x166cdc, 0x1670e6, 0x1688dc, 0x16a0e6, 0x16a8dc, 0x16ace6, 0x16b4de, 0x16b8e4,
    0x16bce6, 0x16c00a, 0x16c40b, 0x16c80c, 0x16cc0d, 0x16d00e, 0x16d40f, 0x16d810, 0x16dc11, 0x16e012,
    0x16e413, 0x16ec14, 0x16f015, 0x16f416, 0x16f800, 0x16fc17, 0x170000, 0x170418, 0x170819, 0x170c00,
    0x1710e6, 0x1714dc, 0x171800, 0x171c12, 0x172000, 0x1840e6, 0x18601e, 0x18641f, 0x186820, 0x186c00,
    0x192c1b, 0x19301c, 0x19341d, 0x19381e, 0x193c1f, 0x194020, 0x194421, 0x194822, 0x194de6, 0x1955dc,
    0x1958dc, 0x195ce6, 0x1970dc, 0x1974e6, 0x197cdc, 0x198000, 0x19c023, 0x19c400, 0x1b58e6, 0x1b7400,
    0x1b7ce6, 0x1b8cdc, 0x1b90e6, 0x1b9400, 0x1b9ce6, 0x1ba400, 0x1ba8dc, 0x1bace6, 0x1bb4dc, 0x1bb800,
    0x1c4424, 0x1c4800, 0x1cc0e6, 0x1cc4dc, 0x1cc8e6, 0x1cd0dc, 0x1cd4e6, 0x1cdcdc, 0x1ce8e6, 0x1cecdc,
    0x1cf4e6, 0x1cf8dc, 0x1cfce6, 0x1d08dc, 0x1d0ce6, 0x1d10dc, 0x1d14e6, 0x1d18dc, 0x1d1ce6, 0x1d20dc,
    0x1d24e6, 0x1d2c00, 0x1face6, 0x1fc8dc, 0x1fcce6, 0x1fd000, 0x2058e6, 0x206800, 0x206ce6, 0x209000,
    0x2094e6, 0x20a000, 0x20a4e6, 0x20b800, 0x2164dc, 0x217000, 0x2350e6, 0x238800, 0x238cdc, 0x2390e6,
    0x2398dc, 0x239ce6, 0x23a4dc, 0x23a8e6, 0x23b4dc, 0x23c01b, 0x23c41c, 0x23c81d, 0x23cce6, 0x23d8dc,
    0x23dce6, 0x23e4dc, 0x23ece6, 0x240000, 0x24f107, 0x24f400, 0x253409, 0x253800, 0x2544e6, 0x2548dc,
    0x254ce6, 0x255400, 0x256200, 0x258000, 0x26f007, 0x26f400, 0x26f900, 0x26fc00, 0x273409, 0x273800,
    0x275d00, 0x276000, 0x277200, 0x277800, 0x277e00, 0x278000, 0x28ce00, 0x28d000, 0x28da00, 0x28dc00,
    0x28f007, 0x28f400, 0x293409, 0x293800, 0x296600, 0x297000, 0x297a00, 0x297c00, 0x2af007, 0x2af400,
    0x2b3409, 0x2b3800, 0x2cf007, 0x2cf400, 0x2cf900, 0x2cfc00, 0x2d3409, 0x2d3800, 0x2d5900, 0x2d6000,
    0x2d7200, 0x2d7800, 0x2ef900, 0x2efc00, 0x2f3409, 0x2f3800, 0x2f5d00, 0x2f6000, 0x313409, 0x313800,
    0x315454, 0x31595b, 0x315c00, 0x32f007, 0x32f400, 0x330900, 0x330c00, 0x333409, 0x333800, 0x335500,
    0x335c00, 0x34f900, 0x34fc00, 0x353409, 0x353800, 0x355d00, 0x356000, 0x372909, 0x372c00, 0x373d00,
    0x374000, 0x377d00, 0x378000, 0x38e067, 0x38e809, 0x38ec00, 0x39206b, 0x393000, 0x3ae076, 0x3ae800,
    0x3b207a, 0x3b3000, 0x3c60dc, 0x3c6800, 0x3cd4dc, 0x3cd800, 0x3cdcdc, 0x3ce000, 0x3ce4d8, 0x3ce800,
    0x3d0e00, 0x3d1000, 0x3d3600, 0x3d3800, 0x3d4a00, 0x3d4c00, 0x3d5e00, 0x3d6000, 0x3d7200, 0x3d7400,
    0x3da600, 0x3da800, 0x3dc481, 0x3dc882, 0x3dce00, 0x3dd084, 0x3dd600, 0x3ddc00, 0x3de200, 0x3de400,
    0x3de882, 0x3df800, 0x3e0082, 0x3e0600, 0x3e08e6, 0x3e1009, 0x3e1400, 0x3e18e6, 0x3e2000, 0x3e4e00,
    0x3e5000, 0x3e7600, 0x3e7800, 0x3e8a00, 0x3e8c00, 0x3e9e00, 0x3ea000, 0x3eb200, 0x3eb400, 0x3ee600,
    0x3ee800, 0x3f18dc, 0x3f1c00, 0x40b900, 0x40bc00, 0x40dc07, 0x40e000, 0x40e409, 0x40ec00, 0x4234dc,
    0x423800, 0x458500, 0x45d800, 0x46a100, 0x470c00, 0x4d74e6, 0x4d8000, 0x5c5009, 0x5c5400, 0x5cd009,
    0x5cd400, 0x5f4809, 0x5f4c00, 0x5f74e6, 0x5f7800, 0x62a4e4, 0x62a800, 0x64e4de, 0x64e8e6, 0x64ecdc,
    0x64f000, 0x685ce6, 0x6860dc, 0x686400, 0x698009, 0x698400, 0x69d4e6, 0x69f400, 0x69fcdc, 0x6a0000,
    0x6ac0e6, 0x6ad4dc, 0x6aece6, 0x6af4dc, 0x6af800, 0x6cd007, 0x6cd500, 0x6cd800, 0x6d1009, 0x6d1400,
    0x6dace6, 0x6db0dc, 0x6db4e6, 0x6dd000, 0x6ea809, 0x6eb000, 0x6f9807, 0x6f9c00, 0x6fc809, 0x6fd000,
    0x70dc07, 0x70e000, 0x7340e6, 0x734c00, 0x735001, 0x7354dc, 0x7368e6, 0x7370dc, 0x7380e6, 0x738400,
    0x738801, 0x73a400, 0x73b4dc, 0x73b800, 0x73d0e6, 0x73d400, 0x73e0e6, 0x73e800, 0x7700e6, 0x7708dc,
    0x770ce6, 0x7728dc, 0x772ce6, 0x7734ea, 0x7738d6, 0x773cdc, 0x7740ca, 0x7744e6, 0x77d800, 0x77ece6,
    0x77f0e9, 0x77f4dc, 0x77f8e6, 0x77fcdc, 0x780000, 0x7dc600, 0x7dc800, 0x7dce00, 0x7dd000, 0x7dd600,
    0x7dd800, 0x7dde00, 0x7de000, 0x7de600, 0x7de800, 0x7dee00, 0x7df000, 0x7df600, 0x7df800, 0x7eee00,
    0x7ef000, 0x7efa00, 0x7efc00, 0x7f2600, 0x7f2800, 0x7f2e00, 0x7f3000, 0x7f4e00, 0x7f5000, 0x7f6e00,
    0x7f7000, 0x7f8e00, 0x7f9000, 0x7fae00, 0x7fb000, 0x7fba00, 0x7fc000, 0x7fe600, 0x7fe800, 0x7fee00,
    0x7ff000, 0x7ff600, 0x7ff800, 0x800200, 0x800800, 0x8340e6, 0x834801, 0x8350e6, 0x836001, 0x836ce6,
    0x837400, 0x8384e6, 0x838800, 0x839401, 0x839ce6, 0x83a0dc, 0x83a4e6, 0x83a801, 0x83b0dc, 0x83c0e6,
    0x83c400, 0x849a00, 0x849c00, 0x84aa00, 0x84b000, 0x8ca600, 0x8cac00, 0xab7200, 0xab7400, 0xb3bce6,
    0xb3c800, 0xb5fc09, 0xb60000, 0xb780e6, 0xb80000, 0xc0a8da, 0xc0ace4, 0xc0b0e8, 0xc0b4de, 0xc0b8e0,
    0xc0c000, 0xc26508, 0xc26c00, 0x299bce6, 0x299c000, 0x299d0e6, 0x299f800, 0x29a78e6, 0x29a8000, 0x29bc0e6,
    0x29bc800, 0x2a01809, 0x2a01c00, 0x2a31009, 0x2a31400, 0x2a380e6, 0x2a3c800, 0x2a4acdc, 0x2a4b800, 0x2a54c09,
    0x2a55000, 0x2a6cc07, 0x2a6d000, 0x2a70009, 0x2a70400, 0x2aac0e6, 0x2aac400, 0x2aac8e6, 0x2aad0dc, 0x2aad400,
    0x2aadce6, 0x2aae400, 0x2aaf8e6, 0x2ab0000, 0x2ab04e6, 0x2ab0800, 0x2abd809, 0x2abdc00, 0x2afb409, 0x2afb800,
    0x3e40200, 0x3e83800, 0x3e84200, 0x3e84400, 0x3e84a00, 0x3e84c00, 0x3e85600, 0x3e87c00, 0x3e88200, 0x3e88400,
    0x3e88a00, 0x3e88c00, 0x3e89600, 0x3e89c00, 0x3e8aa00, 0x3e9b800, 0x3e9c200, 0x3eb6800, 0x3ec7600, 0x3ec781a,
    0x3ec7e00, 0x3ec8000, 0x3ecaa00, 0x3ecdc00, 0x3ece200, 0x3ecf400, 0x3ecfa00, 0x3ecfc00, 0x3ed0200, 0x3ed0800,
    0x3ed0e00, 0x3ed1400, 0x3ed1a00, 0x3ed3c00, 0x3f880e6, 0x3f89cdc, 0x3f8b8e6, 0x3f8c000, 0x407f4dc, 0x407f800,
    0x40b80dc, 0x40b8400, 0x40dd8e6, 0x40dec00, 0x42834dc, 0x4283800, 0x4283ce6, 0x4284000, 0x428e0e6, 0x428e401,
    0x428e8dc, 0x428ec00, 0x428fc09, 0x4290000, 0x42b94e6, 0x42b98dc, 0x42b9c00, 0x4411809, 0x4411c00, 0x441fc09,
    0x4420000, 0x442e409, 0x442e907, 0x442ec00, 0x44400e6, 0x4440c00, 0x4449d00, 0x444a000, 0x444cc09, 0x444d400,
    0x445cc07, 0x445d000, 0x4470009, 0x4470400, 0x4472807, 0x4472c00, 0x448d409, 0x448d807, 0x448dc00, 0x44ba407,
    0x44ba809, 0x44bac00, 0x44cf007, 0x44cf400, 0x44cf900, 0x44cfc00, 0x44d3409, 0x44d3800, 0x44d5d00, 0x44d6000,
    0x44d98e6, 0x44db400, 0x44dc0e6, 0x44dd400, 0x4510809, 0x4510c00, 0x4511807, 0x4511c00, 0x452c100, 0x452c400,
    0x452e900, 0x452ec00, 0x452f500, 0x452f800, 0x4530809, 0x4530c07, 0x4531000, 0x456bd00, 0x456c000, 0x456fc09,
    0x4570007, 0x4570400, 0x458fc09, 0x4590000, 0x45ad809, 0x45adc07, 0x45ae000, 0x45cac09, 0x45cb000, 0x470fc09,
    0x4710000, 0x5abc001, 0x5abd400, 0x5acc0e6, 0x5acdc00, 0x6f27801, 0x6f27c00, 0x7457a00, 0x74594d8, 0x7459c01,
    0x745a800, 0x745b4e2, 0x745b8d8, 0x745cc00, 0x745ecdc, 0x7460c00, 0x74614e6, 0x74628dc, 0x7463000, 0x746a8e6,
    0x746b800, 0x746ee00, 0x7470400, 0x74908e6, 0x7491400, 0x78000e6, 0x7801c00, 0x78020e6, 0x7806400, 0x7806ce6,
    0x7808800, 0x7808ce6, 0x7809400, 0x78098e6, 0x780ac00, 0x7a340dc, 0x7a35c00, 0x7a510e6, 0x7a52807, 0x7a52c00,
    0xbe00200, 0xbe87800,
};
static const uint64_t arwkv__uni_decomp[2060] = {
    0x8003000008200300ull, 0x8003040008200301ull, 0x8003080008200302ull, 0x80030c0008200303ull, 0x8003100008200308ull,
    0x800314000820030aull, 0x80031c0008600327ull, 0x8003200008a00300ull, 0x8003240008a00301ull, 0x8003280008a00302ull,
    0x80032c0008a00308ull, 0x8003300009200300ull, 0x8003340009200301ull, 0x8003380009200302ull, 0x80033c0009200308ull,
    0x8003440009c00303ull, 0x8003480009e00300ull, 0x80034c0009e00301ull, 0x8003500009e00302ull, 0x8003540009e00303ull,
    0x8003580009e00308ull, 0x800364000aa00300ull, 0x800368000aa00301ull, 0x80036c000aa00302ull, 0x800370000aa00308ull,
    0x800374000b200301ull, 0x800380000c200300ull, 0x800384000c200301ull, 0x800388000c200302ull, 0x80038c000c200303ull,
    0x800390000c200308ull, 0x800394000c20030aull, 0x80039c000c600327ull, 0x8003a0000ca00300ull, 0x8003a4000ca00301ull,
    0x8003a8000ca00302ull, 0x8003ac000ca00308ull, 0x8003b0000d200300ull, 0x8003b4000d200301ull, 0x8003b8000d200302ull,
    0x8003bc000d200308ull, 0x8003c4000dc00303ull, 0x8003c8000de00300ull, 0x8003cc000de00301ull, 0x8003d0000de00302ull,
    0x8003d4000de00303ull, 0x8003d8000de00308ull, 0x8003e4000ea00300ull, 0x8003e8000ea00301ull, 0x8003ec000ea00302ull,
    0x8003f0000ea00308ull, 0x8003f4000f200301ull, 0x8003fc000f200308ull, 0x8004000008200304ull, 0x800404000c200304ull,
    0x8004080008200306ull, 0x80040c000c200306ull, 0x8004100008200328ull, 0x800414000c200328ull, 0x8004180008600301ull,
    0x80041c000c600301ull, 0x8004200008600302ull, 0x800424000c600302ull, 0x8004280008600307ull, 0x80042c000c600307ull,
    0x800430000860030cull, 0x800434000c60030cull, 0x800438000880030cull, 0x80043c000c80030cull, 0x8004480008a00304ull,
    0x80044c000ca00304ull, 0x8004500008a00306ull, 0x800454000ca00306ull, 0x8004580008a00307ull, 0x80045c000ca00307ull,
    0x8004600008a00328ull, 0x800464000ca00328ull, 0x8004680008a0030cull, 0x80046c000ca0030cull, 0x8004700008e00302ull,
    0x800474000ce00302ull, 0x8004780008e00306ull, 0x80047c000ce00306ull, 0x8004800008e00307ull, 0x800484000ce00307ull,
    0x8004880008e00327ull, 0x80048c000ce00327ull, 0x8004900009000302ull, 0x800494000d000302ull, 0x8004a00009200303ull,
    0x8004a4000d200303ull, 0x8004a80009200304ull, 0x8004ac000d200304ull, 0x8004b00009200306ull, 0x8004b4000d200306ull,
    0x8004b80009200328ull, 0x8004bc000d200328ull, 0x8004c00009200307ull, 0x8004d00009400302ull, 0x8004d4000d400302ull,
    0x8004d80009600327ull, 0x8004dc000d600327ull, 0x8004e40009800301ull, 0x8004e8000d800301ull, 0x8004ec0009800327ull,
    0x8004f0000d800327ull, 0x8004f4000980030cull, 0x8004f8000d80030cull, 0x80050c0009c00301ull, 0x800510000dc00301ull,
    0x8005140009c00327ull, 0x800518000dc00327ull, 0x80051c0009c0030cull, 0x800520000dc0030cull, 0x8005300009e00304ull,
    0x800534000de00304ull, 0x8005380009e00306ull, 0x80053c000de00306ull, 0x8005400009e0030bull, 0x800544000de0030bull,
    0x800550000a400301ull, 0x800554000e400301ull, 0x800558000a400327ull, 0x80055c000e400327ull, 0x800560000a40030cull,
    0x800564000e40030cull, 0x800568000a600301ull, 0x80056c000e600301ull, 0x800570000a600302ull, 0x800574000e600302ull,
    0x800578000a600327ull, 0x80057c000e600327ull, 0x800580000a60030cull, 0x800584000e60030cull, 0x800588000a800327ull,
    0x80058c000e800327ull, 0x800590000a80030cull, 0x800594000e80030cull, 0x8005a0000aa00303ull, 0x8005a4000ea00303ull,
    0x8005a8000aa00304ull, 0x8005ac000ea00304ull, 0x8005b0000aa00306ull, 0x8005b4000ea00306ull, 0x8005b8000aa0030aull,
    0x8005bc000ea0030aull, 0x8005c0000aa0030bull, 0x8005c4000ea0030bull, 0x8005c8000aa00328ull, 0x8005cc000ea00328ull,
    0x8005d0000ae00302ull, 0x8005d4000ee00302ull, 0x8005d8000b200302ull, 0x8005dc000f200302ull, 0x8005e0000b200308ull,
    0x8005e4000b400301ull, 0x8005e8000f400301ull, 0x8005ec000b400307ull, 0x8005f0000f400307ull, 0x8005f4000b40030cull,
    0x8005f8000f40030cull, 0x8006800009e0031bull, 0x800684000de0031bull, 0x8006bc000aa0031bull, 0x8006c0000ea0031bull,
    0x800734000820030cull, 0x800738000c20030cull, 0x80073c000920030cull, 0x800740000d20030cull, 0x8007440009e0030cull,
    0x800748000de0030cull, 0x80074c000aa0030cull, 0x800750000ea0030cull, 0x800754001b800304ull, 0x800758001f800304ull,
    0x80075c001b800301ull, 0x800760001f800301ull, 0x800764001b80030cull, 0x800768001f80030cull, 0x80076c001b800300ull,
    0x800770001f800300ull, 0x8007780018800304ull, 0x80077c001c800304ull, 0x8007800044c00304ull, 0x8007840044e00304ull,
    0x8007880018c00304ull, 0x80078c001cc00304ull, 0x8007980008e0030cull, 0x80079c000ce0030cull, 0x8007a0000960030cull,
    0x8007a4000d60030cull, 0x8007a80009e00328ull, 0x8007ac000de00328ull, 0x8007b0003d400304ull, 0x8007b4003d600304ull,
    0x8007b80036e0030cull, 0x8007bc005240030cull, 0x8007c0000d40030cull, 0x8007d00008e00301ull, 0x8007d4000ce00301ull,
    0x8007e00009c00300ull, 0x8007e4000dc00300ull, 0x8007e80018a00301ull, 0x8007ec001ca00301ull, 0x8007f00018c00301ull,
    0x8007f4001cc00301ull, 0x8007f8001b000301ull, 0x8007fc001f000301ull, 0x800800000820030full, 0x800804000c20030full,
    0x8008080008200311ull, 0x80080c000c200311ull, 0x8008100008a0030full, 0x800814000ca0030full, 0x8008180008a00311ull,
    0x80081c000ca00311ull, 0x800820000920030full, 0x800824000d20030full, 0x8008280009200311ull, 0x80082c000d200311ull,
    0x8008300009e0030full, 0x800834000de0030full, 0x8008380009e00311ull, 0x80083c000de00311ull, 0x800840000a40030full,
    0x800844000e40030full, 0x800848000a400311ull, 0x80084c000e400311ull, 0x800850000aa0030full, 0x800854000ea0030full,
    0x800858000aa00311ull, 0x80085c000ea00311ull, 0x800860000a600326ull, 0x800864000e600326ull, 0x800868000a800326ull,
    0x80086c000e800326ull, 0x800878000900030cull, 0x80087c000d00030cull, 0x8008980008200307ull, 0x80089c000c200307ull,
    0x8008a00008a00327ull, 0x8008a4000ca00327ull, 0x8008a8001ac00304ull, 0x8008ac001ec00304ull, 0x8008b0001aa00304ull,
    0x8008b4001ea00304ull, 0x8008b80009e00307ull, 0x8008bc000de00307ull, 0x8008c00045c00304ull, 0x8008c40045e00304ull,
    0x8008c8000b200304ull, 0x8008cc000f200304ull, 0xd000060000000ull, 0xd040060200000ull, 0xd0c0062600000ull,
    0xd100061000301ull, 0xdd00057200000ull, 0xdf80007600000ull, 0x800e140015000301ull, 0x800e180072200301ull,
    0xe1c0016e00000ull, 0x800e200072a00301ull, 0x800e240072e00301ull, 0x800e280073200301ull, 0x800e300073e00301ull,
    0x800e380074a00301ull, 0x800e3c0075200301ull, 0x800e400079400301ull, 0x800ea80073200308ull, 0x800eac0074a00308ull,
    0x800eb00076200301ull, 0x800eb40076a00301ull, 0x800eb80076e00301ull, 0x800ebc0077200301ull, 0x800ec00079600301ull,
    0x800f280077200308ull, 0x800f2c0078a00308ull, 0x800f300077e00301ull, 0x800f340078a00301ull, 0x800f380079200301ull,
    0x800f4c007a400301ull, 0x800f50007a400308ull, 0x8010000082a00300ull, 0x8010040082a00308ull, 0x80100c0082600301ull,
    0x80101c0080c00308ull, 0x8010300083400301ull, 0x8010340083000300ull, 0x8010380084600306ull, 0x8010640083000306ull,
    0x8010e40087000306ull, 0x8011400086a00300ull, 0x8011440086a00308ull, 0x80114c0086600301ull, 0x80115c008ac00308ull,
    0x8011700087400301ull, 0x8011740087000300ull, 0x8011780088600306ull, 0x8011d8008e80030full, 0x8011dc008ea0030full,
    0x8013040082c00306ull, 0x8013080086c00306ull, 0x8013400082000306ull, 0x8013440086000306ull, 0x8013480082000308ull,
    0x80134c0086000308ull, 0x8013580082a00306ull, 0x80135c0086a00306ull, 0x801368009b000308ull, 0x80136c009b200308ull,
    0x8013700082c00308ull, 0x8013740086c00308ull, 0x8013780082e00308ull, 0x80137c0086e00308ull, 0x8013880083000304ull,
    0x80138c0087000304ull, 0x8013900083000308ull, 0x8013940087000308ull, 0x8013980083c00308ull, 0x80139c0087c00308ull,
    0x8013a8009d000308ull, 0x8013ac009d200308ull, 0x8013b00085a00308ull, 0x8013b40089a00308ull, 0x8013b80084600304ull,
    0x8013bc0088600304ull, 0x8013c00084600308ull, 0x8013c40088600308ull, 0x8013c8008460030bull, 0x8013cc008860030bull,
    0x8013d00084e00308ull, 0x8013d40088e00308ull, 0x8013e00085600308ull, 0x8013e40089600308ull, 0x80188800c4e00653ull,
    0x80188c00c4e00654ull, 0x80189000c9000654ull, 0x80189400c4e00655ull, 0x80189800c9400654ull, 0x801b0000daa00654ull,
    0x801b0800d8200654ull, 0x801b4c00da400654ull, 0x8024a4012500093cull, 0x8024c4012600093cull, 0x8024d0012660093cull,
    0x25600122a0093cull, 0x25640122c0093cull, 0x25680122e0093cull, 0x256c012380093cull, 0x2570012420093cull,
    0x2574012440093cull, 0x2578012560093cull, 0x257c0125e0093cull, 0x80272c0138e009beull, 0x8027300138e009d7ull,
    0x277001342009bcull, 0x277401344009bcull, 0x277c0135e009bcull, 0x28cc0146400a3cull, 0x28d80147000a3cull,
    0x29640142c00a3cull, 0x29680142e00a3cull, 0x296c0143800a3cull, 0x29780145600a3cull, 0x802d200168e00b56ull,
    0x802d2c0168e00b3eull, 0x802d300168e00b57ull, 0x2d700164200b3cull, 0x2d740164400b3cull, 0x802e500172400bd7ull,
    0x802f280178c00bbeull, 0x802f2c0178e00bbeull, 0x802f300178c00bd7ull, 0x8031200188c00c56ull, 0x8033000197e00cd5ull,
    0x80331c0198c00cd5ull, 0x8033200198c00cd6ull, 0x8033280198c00cc2ull, 0x80332c0199400cd5ull, 0x80352801a8c00d3eull,
    0x80352c01a8e00d3eull, 0x80353001a8c00d57ull, 0x80376801bb200dcaull, 0x80377001bb200dcfull, 0x80377401bb800dcaull,
    0x80377801bb200ddfull, 0x3d0c01e8400fb7ull, 0x3d3401e9800fb7ull, 0x3d4801ea200fb7ull, 0x3d5c01eac00fb7ull,
    0x3d7001eb600fb7ull, 0x3da401e8000fb5ull, 0x3dcc01ee200f72ull, 0x3dd401ee200f74ull, 0x3dd801f6400f80ull,
    0x3de001f6600f80ull, 0x3e0401ee200f80ull, 0x3e4c01f2400fb7ull, 0x3e7401f3800fb7ull, 0x3e8801f4200fb7ull,
    0x3e9c01f4c00fb7ull, 0x3eb001f5600fb7ull, 0x3ee401f2000fb5ull, 0x8040980204a0102eull, 0x806c180360a01b35ull,
    0x806c200360e01b35ull, 0x806c280361201b35ull, 0x806c300361601b35ull, 0x806c380361a01b35ull, 0x806c480362201b35ull,
    0x806cec0367401b35ull, 0x806cf40367801b35ull, 0x806d000367c01b35ull, 0x806d040367e01b35ull, 0x806d0c0368401b35ull,
    0x8078000008200325ull, 0x807804000c200325ull, 0x8078080008400307ull, 0x80780c000c400307ull, 0x8078100008400323ull,
    0x807814000c400323ull, 0x8078180008400331ull, 0x80781c000c400331ull, 0x8078200018e00301ull, 0x807824001ce00301ull,
    0x8078280008800307ull, 0x80782c000c800307ull, 0x8078300008800323ull, 0x807834000c800323ull, 0x8078380008800331ull,
    0x80783c000c800331ull, 0x8078400008800327ull, 0x807844000c800327ull, 0x807848000880032dull, 0x80784c000c80032dull,
    0x8078500022400300ull, 0x8078540022600300ull, 0x8078580022400301ull, 0x80785c0022600301ull, 0x8078600008a0032dull,
    0x807864000ca0032dull, 0x8078680008a00330ull, 0x80786c000ca00330ull, 0x8078700045000306ull, 0x8078740045200306ull,
    0x8078780008c00307ull, 0x80787c000cc00307ull, 0x8078800008e00304ull, 0x807884000ce00304ull, 0x8078880009000307ull,
    0x80788c000d000307ull, 0x8078900009000323ull, 0x807894000d000323ull, 0x8078980009000308ull, 0x80789c000d000308ull,
    0x8078a00009000327ull, 0x8078a4000d000327ull, 0x8078a8000900032eull, 0x8078ac000d00032eull, 0x8078b00009200330ull,
    0x8078b4000d200330ull, 0x8078b80019e00301ull, 0x8078bc001de00301ull, 0x8078c00009600301ull, 0x8078c4000d600301ull,
    0x8078c80009600323ull, 0x8078cc000d600323ull, 0x8078d00009600331ull, 0x8078d4000d600331ull, 0x8078d80009800323ull,
    0x8078dc000d800323ull, 0x8078e003c6c00304ull, 0x8078e403c6e00304ull, 0x8078e80009800331ull, 0x8078ec000d800331ull,
    0x8078f0000980032dull, 0x8078f4000d80032dull, 0x8078f80009a00301ull, 0x8078fc000da00301ull, 0x8079000009a00307ull,
    0x807904000da00307ull, 0x8079080009a00323ull, 0x80790c000da00323ull, 0x8079100009c00307ull, 0x807914000dc00307ull,
    0x8079180009c00323ull, 0x80791c000dc00323ull, 0x8079200009c00331ull, 0x807924000dc00331ull, 0x8079280009c0032dull,
    0x80792c000dc0032dull, 0x807930001aa00301ull, 0x807934001ea00301ull, 0x807938001aa00308ull, 0x80793c001ea00308ull,
    0x8079400029800300ull, 0x8079440029a00300ull, 0x8079480029800301ull, 0x80794c0029a00301ull, 0x807950000a000301ull,
    0x807954000e000301ull, 0x807958000a000307ull, 0x80795c000e000307ull, 0x807960000a400307ull, 0x807964000e400307ull,
    0x807968000a400323ull, 0x80796c000e400323ull, 0x80797003cb400304ull, 0x80797403cb600304ull, 0x807978000a400331ull,
    0x80797c000e400331ull, 0x807980000a600307ull, 0x807984000e600307ull, 0x807988000a600323ull, 0x80798c000e600323ull,
    0x807990002b400307ull, 0x807994002b600307ull, 0x807998002c000307ull, 0x80799c002c200307ull, 0x8079a003cc400307ull,
    0x8079a403cc600307ull, 0x8079a8000a800307ull, 0x8079ac000e800307ull, 0x8079b0000a800323ull, 0x8079b4000e800323ull,
    0x8079b8000a800331ull, 0x8079bc000e800331ull, 0x8079c0000a80032dull, 0x8079c4000e80032dull, 0x8079c8000aa00324ull,
    0x8079cc000ea00324ull, 0x8079d0000aa00330ull, 0x8079d4000ea00330ull, 0x8079d8000aa0032dull, 0x8079dc000ea0032dull,
    0x8079e0002d000301ull, 0x8079e4002d200301ull, 0x8079e8002d400308ull, 0x8079ec002d600308ull, 0x8079f0000ac00303ull,
    0x8079f4000ec00303ull, 0x8079f8000ac00323ull, 0x8079fc000ec00323ull, 0x807a00000ae00300ull, 0x807a04000ee00300ull,
    0x807a08000ae00301ull, 0x807a0c000ee00301ull, 0x807a10000ae00308ull, 0x807a14000ee00308ull, 0x807a18000ae00307ull,
    0x807a1c000ee00307ull, 0x807a20000ae00323ull, 0x807a24000ee00323ull, 0x807a28000b000307ull, 0x807a2c000f000307ull,
    0x807a30000b000308ull, 0x807a34000f000308ull, 0x807a38000b200307ull, 0x807a3c000f200307ull, 0x807a40000b400302ull,
    0x807a44000f400302ull, 0x807a48000b400323ull, 0x807a4c000f400323ull, 0x807a50000b400331ull, 0x807a54000f400331ull,
    0x807a58000d000331ull, 0x807a5c000e800308ull, 0x807a60000ee0030aull, 0x807a64000f20030aull, 0x807a6c002fe00307ull,
    0x807a800008200323ull, 0x807a84000c200323ull, 0x807a880008200309ull, 0x807a8c000c200309ull, 0x807a900018400301ull,
    0x807a94001c400301ull, 0x807a980018400300ull, 0x807a9c001c400300ull, 0x807aa00018400309ull, 0x807aa4001c400309ull,
    0x807aa80018400303ull, 0x807aac001c400303ull, 0x807ab003d4000302ull, 0x807ab403d4200302ull, 0x807ab80020400301ull,
    0x807abc0020600301ull, 0x807ac00020400300ull, 0x807ac40020600300ull, 0x807ac80020400309ull, 0x807acc0020600309ull,
    0x807ad00020400303ull, 0x807ad40020600303ull, 0x807ad803d4000306ull, 0x807adc03d4200306ull, 0x807ae00008a00323ull,
    0x807ae4000ca00323ull, 0x807ae80008a00309ull, 0x807aec000ca00309ull, 0x807af00008a00303ull, 0x807af4000ca00303ull,
    0x807af80019400301ull, 0x807afc001d400301ull, 0x807b000019400300ull, 0x807b04001d400300ull, 0x807b080019400309ull,
    0x807b0c001d400309ull, 0x807b100019400303ull, 0x807b14001d400303ull, 0x807b1803d7000302ull, 0x807b1c03d7200302ull,
    0x807b200009200309ull, 0x807b24000d200309ull, 0x807b280009200323ull, 0x807b2c000d200323ull, 0x807b300009e00323ull,
    0x807b34000de00323ull, 0x807b380009e00309ull, 0x807b3c000de00309ull, 0x807b40001a800301ull, 0x807b44001e800301ull,
    0x807b48001a800300ull, 0x807b4c001e800300ull, 0x807b50001a800309ull, 0x807b54001e800309ull, 0x807b58001a800303ull,
    0x807b5c001e800303ull, 0x807b6003d9800302ull, 0x807b6403d9a00302ull, 0x807b680034000301ull, 0x807b6c0034200301ull,
    0x807b700034000300ull, 0x807b740034200300ull, 0x807b780034000309ull, 0x807b7c0034200309ull, 0x807b800034000303ull,
    0x807b840034200303ull, 0x807b880034000323ull, 0x807b8c0034200323ull, 0x807b90000aa00323ull, 0x807b94000ea00323ull,
    0x807b98000aa00309ull, 0x807b9c000ea00309ull, 0x807ba00035e00301ull, 0x807ba40036000301ull, 0x807ba80035e00300ull,
    0x807bac0036000300ull, 0x807bb00035e00309ull, 0x807bb40036000309ull, 0x807bb80035e00303ull, 0x807bbc0036000303ull,
    0x807bc00035e00323ull, 0x807bc40036000323ull, 0x807bc8000b200300ull, 0x807bcc000f200300ull, 0x807bd0000b200323ull,
    0x807bd4000f200323ull, 0x807bd8000b200309ull, 0x807bdc000f200309ull, 0x807be0000b200303ull, 0x807be4000f200303ull,
    0x807c000076200313ull, 0x807c040076200314ull, 0x807c0803e0000300ull, 0x807c0c03e0200300ull, 0x807c1003e0000301ull,
    0x807c1403e0200301ull, 0x807c1803e0000342ull, 0x807c1c03e0200342ull, 0x807c200072200313ull, 0x807c240072200314ull,
    0x807c2803e1000300ull, 0x807c2c03e1200300ull, 0x807c3003e1000301ull, 0x807c3403e1200301ull, 0x807c3803e1000342ull,
    0x807c3c03e1200342ull, 0x807c400076a00313ull, 0x807c440076a00314ull, 0x807c4803e2000300ull, 0x807c4c03e2200300ull,
    0x807c5003e2000301ull, 0x807c5403e2200301ull, 0x807c600072a00313ull, 0x807c640072a00314ull, 0x807c6803e3000300ull,
    0x807c6c03e3200300ull, 0x807c7003e3000301ull, 0x807c7403e3200301ull, 0x807c800076e00313ull, 0x807c840076e00314ull,
    0x807c8803e4000300ull, 0x807c8c03e4200300ull, 0x807c9003e4000301ull, 0x807c9403e4200301ull, 0x807c9803e4000342ull,
    0x807c9c03e4200342ull, 0x807ca00072e00313ull, 0x807ca40072e00314ull, 0x807ca803e5000300ull, 0x807cac03e5200300ull,
    0x807cb003e5000301ull, 0x807cb403e5200301ull, 0x807cb803e5000342ull, 0x807cbc03e5200342ull, 0x807cc00077200313ull,
    0x807cc40077200314ull, 0x807cc803e6000300ull, 0x807ccc03e6200300ull, 0x807cd003e6000301ull, 0x807cd403e6200301ull,
    0x807cd803e6000342ull, 0x807cdc03e6200342ull, 0x807ce00073200313ull, 0x807ce40073200314ull, 0x807ce803e7000300ull,
    0x807cec03e7200300ull, 0x807cf003e7000301ull, 0x807cf403e7200301ull, 0x807cf803e7000342ull, 0x807cfc03e7200342ull,
    0x807d000077e00313ull, 0x807d040077e00314ull, 0x807d0803e8000300ull, 0x807d0c03e8200300ull, 0x807d1003e8000301ull,
    0x807d1403e8200301ull, 0x807d200073e00313ull, 0x807d240073e00314ull, 0x807d2803e9000300ull, 0x807d2c03e9200300ull,
    0x807d3003e9000301ull, 0x807d3403e9200301ull, 0x807d400078a00313ull, 0x807d440078a00314ull, 0x807d4803ea000300ull,
    0x807d4c03ea200300ull, 0x807d5003ea000301ull, 0x807d5403ea200301ull, 0x807d5803ea000342ull, 0x807d5c03ea200342ull,
    0x807d640074a00314ull, 0x807d6c03eb200300ull, 0x807d7403eb200301ull, 0x807d7c03eb200342ull, 0x807d800079200313ull,
    0x807d840079200314ull, 0x807d8803ec000300ull, 0x807d8c03ec200300ull, 0x807d9003ec000301ull, 0x807d9403ec200301ull,
    0x807d9803ec000342ull, 0x807d9c03ec200342ull, 0x807da00075200313ull, 0x807da40075200314ull, 0x807da803ed000300ull,
    0x807dac03ed200300ull, 0x807db003ed000301ull, 0x807db403ed200301ull, 0x807db803ed000342ull, 0x807dbc03ed200342ull,
    0x807dc00076200300ull, 0x7dc40075800000ull, 0x807dc80076a00300ull, 0x7dcc0075a00000ull, 0x807dd00076e00300ull,
    0x7dd40075c00000ull, 0x807dd80077200300ull, 0x7ddc0075e00000ull, 0x807de00077e00300ull, 0x7de40079800000ull,
    0x807de80078a00300ull, 0x7dec0079a00000ull, 0x807df00079200300ull, 0x7df40079c00000ull, 0x807e0003e0000345ull,
    0x807e0403e0200345ull, 0x807e0803e0400345ull, 0x807e0c03e0600345ull, 0x807e1003e0800345ull, 0x807e1403e0a00345ull,
    0x807e1803e0c00345ull, 0x807e1c03e0e00345ull, 0x807e2003e1000345ull, 0x807e2403e1200345ull, 0x807e2803e1400345ull,
    0x807e2c03e1600345ull, 0x807e3003e1800345ull, 0x807e3403e1a00345ull, 0x807e3803e1c00345ull, 0x807e3c03e1e00345ull,
    0x807e4003e4000345ull, 0x807e4403e4200345ull, 0x807e4803e4400345ull, 0x807e4c03e4600345ull, 0x807e5003e4800345ull,
    0x807e5403e4a00345ull, 0x807e5803e4c00345ull, 0x807e5c03e4e00345ull, 0x807e6003e5000345ull, 0x807e6403e5200345ull,
    0x807e6803e5400345ull, 0x807e6c03e5600345ull, 0x807e7003e5800345ull, 0x807e7403e5a00345ull, 0x807e7803e5c00345ull,
    0x807e7c03e5e00345ull, 0x807e8003ec000345ull, 0x807e8403ec200345ull, 0x807e8803ec400345ull, 0x807e8c03ec600345ull,
    0x807e9003ec800345ull, 0x807e9403eca00345ull, 0x807e9803ecc00345ull, 0x807e9c03ece00345ull, 0x807ea003ed000345ull,
    0x807ea403ed200345ull, 0x807ea803ed400345ull, 0x807eac03ed600345ull, 0x807eb003ed800345ull, 0x807eb403eda00345ull,
    0x807eb803edc00345ull, 0x807ebc03ede00345ull, 0x807ec00076200306ull, 0x807ec40076200304ull, 0x807ec803ee000345ull,
    0x807ecc0076200345ull, 0x807ed00075800345ull, 0x807ed80076200342ull, 0x807edc03f6c00345ull, 0x807ee00072200306ull,
    0x807ee40072200304ull, 0x807ee80072200300ull, 0x7eec0070c00000ull, 0x807ef00072200345ull, 0x7ef80077200000ull,
    0x807f040015000342ull, 0x807f0803ee800345ull, 0x807f0c0076e00345ull, 0x807f100075c00345ull, 0x807f180076e00342ull,
    0x807f1c03f8c00345ull, 0x807f200072a00300ull, 0x7f240071000000ull, 0x807f280072e00300ull, 0x7f2c0071200000ull,
    0x807f300072e00345ull, 0x807f3403f7e00300ull, 0x807f3803f7e00301ull, 0x807f3c03f7e00342ull, 0x807f400077200306ull,
    0x807f440077200304ull, 0x807f480079400300ull, 0x7f4c0072000000ull, 0x807f580077200342ull, 0x807f5c0079400342ull,
    0x807f600073200306ull, 0x807f640073200304ull, 0x807f680073200300ull, 0x7f6c0071400000ull, 0x807f7403ffc00300ull,
    0x807f7803ffc00301ull, 0x807f7c03ffc00342ull, 0x807f800078a00306ull, 0x807f840078a00304ull, 0x807f880079600300ull,
    0x7f8c0076000000ull, 0x807f900078200313ull, 0x807f940078200314ull, 0x807f980078a00342ull, 0x807f9c0079600342ull,
    0x807fa00074a00306ull, 0x807fa40074a00304ull, 0x807fa80074a00300ull, 0x7fac0071c00000ull, 0x807fb00074200314ull,
    0x807fb40015000300ull, 0x7fb80070a00000ull, 0x7fbc000c000000ull, 0x807fc803ef800345ull, 0x807fcc0079200345ull,
    0x807fd00079c00345ull, 0x807fd80079200342ull, 0x807fdc03fec00345ull, 0x807fe00073e00300ull, 0x7fe40071800000ull,
    0x807fe80075200300ull, 0x7fec0071e00000ull, 0x807ff00075200345ull, 0x7ff40016800000ull, 0x80000400400000ull,
    0x80040400600000ull, 0x84980075200000ull, 0x84a80009600000ull, 0x84ac0018a00000ull, 0x8086680432000338ull,
    0x80866c0432400338ull, 0x8086b80432800338ull, 0x808734043a000338ull, 0x808738043a800338ull, 0x80873c043a400338ull,
    0x8088100440600338ull, 0x8088240441000338ull, 0x8088300441600338ull, 0x8088900444600338ull, 0x8088980444a00338ull,
    0x8089040447800338ull, 0x8089100448600338ull, 0x80891c0448a00338ull, 0x8089240449000338ull, 0x8089800007a00338ull,
    0x808988044c200338ull, 0x8089b40449a00338ull, 0x8089b80007800338ull, 0x8089bc0007c00338ull, 0x8089c0044c800338ull,
    0x8089c4044ca00338ull, 0x8089d0044e400338ull, 0x8089d4044e600338ull, 0x8089e0044ec00338ull, 0x8089e4044ee00338ull,
    0x808a00044f400338ull, 0x808a04044f600338ull, 0x808a100450400338ull, 0x808a140450600338ull, 0x808a200450c00338ull,
    0x808a240450e00338ull, 0x808ab00454400338ull, 0x808ab40455000338ull, 0x808ab80455200338ull, 0x808abc0455600338ull,
    0x808b80044f800338ull, 0x808b84044fa00338ull, 0x808b880452200338ull, 0x808b8c0452400338ull, 0x808ba80456400338ull,
    0x808bac0456600338ull, 0x808bb00456800338ull, 0x808bb40456a00338ull, 0x8ca40601000000ull, 0x8ca80601200000ull,
    0xab70055ba00338ull, 0x80c1300609603099ull, 0x80c1380609a03099ull, 0x80c1400609e03099ull, 0x80c148060a203099ull,
    0x80c150060a603099ull, 0x80c158060aa03099ull, 0x80c160060ae03099ull, 0x80c168060b203099ull, 0x80c170060b603099ull,
    0x80c178060ba03099ull, 0x80c180060be03099ull, 0x80c188060c203099ull, 0x80c194060c803099ull, 0x80c19c060cc03099ull,
    0x80c1a4060d003099ull, 0x80c1c0060de03099ull, 0x80c1c4060de0309aull, 0x80c1cc060e403099ull, 0x80c1d0060e40309aull,
    0x80c1d8060ea03099ull, 0x80c1dc060ea0309aull, 0x80c1e4060f003099ull, 0x80c1e8060f00309aull, 0x80c1f0060f603099ull,
    0x80c1f4060f60309aull, 0x80c2500608c03099ull, 0x80c2780613a03099ull, 0x80c2b00615603099ull, 0x80c2b80615a03099ull,
    0x80c2c00615e03099ull, 0x80c2c80616203099ull, 0x80c2d00616603099ull, 0x80c2d80616a03099ull, 0x80c2e00616e03099ull,
    0x80c2e80617203099ull, 0x80c2f00617603099ull, 0x80c2f80617a03099ull, 0x80c3000617e03099ull, 0x80c3080618203099ull,
    0x80c3140618803099ull, 0x80c31c0618c03099ull, 0x80c3240619003099ull, 0x80c3400619e03099ull, 0x80c3440619e0309aull,
    0x80c34c061a403099ull, 0x80c350061a40309aull, 0x80c358061aa03099ull, 0x80c35c061aa0309aull, 0x80c364061b003099ull,
    0x80c368061b00309aull, 0x80c370061b603099ull, 0x80c374061b60309aull, 0x80c3d00614c03099ull, 0x80c3dc061de03099ull,
    0x80c3e0061e003099ull, 0x80c3e4061e203099ull, 0x80c3e8061e403099ull, 0x80c3f8061fa03099ull, 0x3e4001189000000ull,
    0x3e4040cde800000ull, 0x3e40811d9400000ull, 0x3e40c1199000000ull, 0x3e4100dda200000ull, 0x3e41409c6400000ull,
    0x3e4180a7ca00000ull, 0x3e41c13f3800000ull, 0x3e42013f3800000ull, 0x3e4240b2a200000ull, 0x3e428123a200000ull,
    0x3e42c0ab0e00000ull, 0x3e4300b29000000ull, 0x3e4340c3ec00000ull, 0x3e4380ecd200000ull, 0x3e43c0ff0a00000ull,
    0x3e44010c7e00000ull, 0x3e44410f7400000ull, 0x3e448111f000000ull, 0x3e44c1211e00000ull, 0x3e4500d40400000ull,
    0x3e4540da3600000ull, 0x3e4580e1b200000ull, 0x3e45c0e7bc00000ull, 0x3e4601087a00000ull, 0x3e464122d400000ull,
    0x3e468133e200000ull, 0x3e46c09d0400000ull, 0x3e4700a6ea00000ull, 0x3e4740d60800000ull, 0x3e4780e43600000ull,
    0x3e47c10c5a00000ull, 0x3e48013c3c00000ull, 0x3e4840baa000000ull, 0x3e4880dfd600000ull, 0x3e48c10b9a00000ull,
    0x3e490112c800000ull, 0x3e4940c59200000ull, 0x3e498103b000000ull, 0x3e49c1103e00000ull, 0x3e4a00bd9400000ull,
    0x3e4a40ce2e00000ull, 0x3e4a80dad400000ull, 0x3e4ac0e5f800000ull, 0x3e4b01219c00000ull, 0x3e4b409f0c00000ull,
    0x3e4b80a36e00000ull, 0x3e4bc0a5bc00000ull, 0x3e4c00c98800000ull, 0x3e4c40d5a600000ull, 0x3e4c80e42000000ull,
    0x3e4cc0edce00000ull, 0x3e4d01000200000ull, 0x3e4d410c0c00000ull, 0x3e4d810cb800000ull, 0x3e4dc11bde00000ull,
    0x3e4e012e6400000ull, 0x3e4e4136de00000ull, 0x3e4e813bf400000ull, 0x3e4ec0f11800000ull, 0x3e4f00f2fe00000ull,
    0x3e4f40fb4000000ull, 0x3e4f81079200000ull, 0x3e4fc1260800000ull, 0x3e50013cfe00000ull, 0x3e504115ac00000ull,
    0x3e5080b1be00000ull, 0x3e50c0be0800000ull, 0x3e5100f8c000000ull, 0x3e514100fc00000ull, 0x3e5180e4c400000ull,
    0x3e51c0f19400000ull, 0x3e5201198400000ull, 0x3e52412dee00000ull, 0x3e5280b1b000000ull, 0x3e52c0b8c400000ull,
    0x3e5300d42600000ull, 0x3e5340dbb400000ull, 0x3e5380de1e00000ull, 0x3e53c0fa5e00000ull, 0x3e5400fc6e00000ull,
    0x3e54412c9600000ull, 0x3e5480a5a400000ull, 0x3e54c1011600000ull, 0x3e5500a3b800000ull, 0x3e5540a39800000ull,
    0x3e5580f43800000ull, 0x3e55c0fb7c00000ull, 0x3e560107e200000ull, 0x3e56412cea00000ull, 0x3e5681170000000ull,
    0x3e56c0c59e00000ull, 0x3e5700d40400000ull, 0x3e574115fc00000ull, 0x3e57809c7200000ull, 0x3e57c0b7ce00000ull,
    0x3e5800c02400000ull, 0x3e5840e70e00000ull, 0x3e5880eae000000ull, 0x3e58c0a62e00000ull, 0x3e5900f1f600000ull,
    0x3e59409f7e00000ull, 0x3e5980bf5200000ull, 0x3e59c09c1a00000ull, 0x3e5a00d99800000ull, 0x3e5a40caf000000ull,
    0x3e5a80fa4400000ull, 0x3e5ac0a78600000ull, 0x3e5b00b0bc00000ull, 0x3e5b40ee0200000ull, 0x3e5b81089200000ull,
    0x3e5bc1155400000ull, 0x3e5c00d77400000ull, 0x3e5c411f6000000ull, 0x3e5c80d91000000ull, 0x3e5cc0c5fc00000ull,
    0x3e5d0105ca00000ull, 0x3e5d40c74000000ull, 0x3e5d80eaca00000ull, 0x3e5dc09d5c00000ull, 0x3e5e00a2d200000ull,
    0x3e5e40a39200000ull, 0x3e5e80d10200000ull, 0x3e5ec0f9ce00000ull, 0x3e5f0104de00000ull, 0x3e5f4115a400000ull,
    0x3e5f81239e00000ull, 0x3e5fc0a5ea00000ull, 0x3e6000a88400000ull, 0x3e6040b2e600000ull, 0x3e6080bdd800000ull,
    0x3e60c0cb8a00000ull, 0x3e6100dffc00000ull, 0x3e6140f25400000ull, 0x3e61812b5a00000ull, 0x3e61c134d400000ull,
    0x3e62013d2e00000ull, 0x3e62413d9c00000ull, 0x3e6280a53600000ull, 0x3e62c0cd8c00000ull, 0x3e6300d6ee00000ull,
    0x3e63411ec400000ull, 0x3e6380bce800000ull, 0x3e63c0c32000000ull, 0x3e6400c40000000ull, 0x3e6440c93400000ull,
    0x3e6480de4600000ull, 0x3e64c0e29200000ull, 0x3e6500e91200000ull, 0x3e6540f39400000ull, 0x3e6580fbe800000ull,
    0x3e65c100de00000ull, 0x3e66011e4c00000ull, 0x3e664109dc00000ull, 0x3e6681204600000ull, 0x3e66c1269400000ull,
    0x3e6700a42e00000ull, 0x3e6740a54600000ull, 0x3e6780a97a00000ull, 0x3e67c0e19000000ull, 0x3e6801118400000ull,
    0x3e6841155400000ull, 0x3e6880bd9200000ull, 0x3e68c0bfea00000ull, 0x3e6900c6f600000ull, 0x3e6940d75c00000ull,
    0x3e6980f87c00000ull, 0x3e69c0e6ea00000ull, 0x3e6a009dc800000ull, 0x3e6a40adf200000ull, 0x3e6a80b7ce00000ull,
    0x3e6ac0bb7400000ull, 0x3e6b00c03800000ull, 0x3e6b40e76400000ull, 0x3e6b80e8d200000ull, 0x3e6bc0ff3400000ull,
    0x3e6c01008c00000ull, 0x3e6c41246800000ull, 0x3e6c812dec00000ull, 0x3e6cc12e9000000ull, 0x3e6d01303000000ull,
    0x3e6d409f1600000ull, 0x3e6d80f35c00000ull, 0x3e6dc1236800000ull, 0x3e6e012d7000000ull, 0x3e6e40c1c200000ull,
    0x3e6e809d0c00000ull, 0x3e6ec0a1b400000ull, 0x3e6f00b7dc00000ull, 0x3e6f40b87e00000ull, 0x3e6f80cb3200000ull,
    0x3e6fc0d40400000ull, 0x3e7000e39c00000ull, 0x3e7040ec8400000ull, 0x3e708109f800000ull, 0x3e70c120f800000ull,
    0x3e71013f1a00000ull, 0x3e7140cd1000000ull, 0x3e71812c5c00000ull, 0x3e71c0a51200000ull, 0x3e7200cef600000ull,
    0x3e7240cfe600000ull, 0x3e7280da8200000ull, 0x3e72c0dd3800000ull, 0x3e7300e81200000ull, 0x3e7340eab200000ull,
    0x3e7380f0d600000ull, 0x3e73c0fa2000000ull, 0x3e740130bc00000ull, 0x3e7440a2da00000ull, 0x3e7480c45c00000ull,
    0x3e74c12cf000000ull, 0x3e7500a05600000ull, 0x3e7540ba3200000ull, 0x3e7580dbd400000ull, 0x3e75c11e5400000ull,
    0x3e7600bf1600000ull, 0x3e7640c28800000ull, 0x3e7680d02e00000ull, 0x3e76c0e70e00000ull, 0x3e77012d0c00000ull,
    0x3e7740a45200000ull, 0x3e7780a81e00000ull, 0x3e77c0b8ca00000ull, 0x3e7800cc2600000ull, 0x3e7840ce9c00000ull,
    0x3e7880d15000000ull, 0x3e78c0d9ca00000ull, 0x3e7900e80c00000ull, 0x3e7940ebc400000ull, 0x3e7980fef200000ull,
    0x3e79c1119e00000ull, 0x3e7a0111c200000ull, 0x3e7a41239800000ull, 0x3e7a812dc400000ull, 0x3e7ac0a67e00000ull,
    0x3e7b00dd7400000ull, 0x3e7b40a83a00000ull, 0x3e7b80e3a000000ull, 0x3e7bc0e93000000ull, 0x3e7c010bf400000ull,
    0x3e7c412d4600000ull, 0x3e7c8138ae00000ull, 0x3e7cc13d3e00000ull, 0x3e7d00cf2e00000ull, 0x3e7d40db9600000ull,
    0x3e7d8103d000000ull, 0x3e7dc0f59600000ull, 0x3e7e00f64000000ull, 0x3e7e40f92400000ull, 0x3e7e80e58000000ull,
    0x3e7ec0e13200000ull, 0x3e7f0116b000000ull, 0x3e7f409d8000000ull, 0x3e7f81066c00000ull, 0x3e7fc0a47400000ull,
    0x3e8000a40e00000ull, 0x3e8040bd4c00000ull, 0x3e8080c5a600000ull, 0x3e80c0f9ac00000ull, 0x3e8100b70a00000ull,
    0x3e8140da3c00000ull, 0x3e8180cd6800000ull, 0x3e81c11e7600000ull, 0x3e8201109800000ull, 0x3e82412c9a00000ull,
    0x3e8281131600000ull, 0x3e82c0bda600000ull, 0x3e8300a28000000ull, 0x3e8340ab8000000ull, 0x3e8400b0b400000ull,
    0x3e8480cce800000ull, 0x3e8540a3bc00000ull, 0x3e8580e65400000ull, 0x3e85c0ed9400000ull, 0x3e8600f27800000ull,
    0x3e8640f2bc00000ull, 0x3e8680f2ca00000ull, 0x3e86c0f31e00000ull, 0x3e87012eac00000ull, 0x3e8740f97c00000ull,
    0x3e8780ff7a00000ull, 0x3e88010c2400000ull, 0x3e888115f000000ull, 0x3e8941207000000ull, 0x3e898121fa00000ull,
    0x3e8a8131de00000ull, 0x3e8ac131f800000ull, 0x3e8b01325000000ull, 0x3e8b413b6800000ull, 0x3e8b8121bc00000ull,
    0x3e8bc12d6e00000ull, 0x3e8c009f5c00000ull, 0x3e8c40a1ce00000ull, 0x3e8c80a29a00000ull, 0x3e8cc0a59200000ull,
    0x3e8d00a5c800000ull, 0x3e8d40a6a200000ull, 0x3e8d80ab3a00000ull, 0x3e8dc0ac0c00000ull, 0x3e8e00acd000000ull,
    0x3e8e40b08000000ull, 0x3e8e80b15000000ull, 0x3e8ec0b8c800000ull, 0x3e8f00b8dc00000ull, 0x3e8f40c12800000ull,
    0x3e8f80c2d000000ull, 0x3e8fc0c31c00000ull, 0x3e9000c3e400000ull, 0x3e9040ca9e00000ull, 0x3e9080cbc400000ull,
    0x3e90c0cd2200000ull, 0x3e9100d10a00000ull, 0x3e9140daee00000ull, 0x3e9180dc3400000ull, 0x3e91c0de4400000ull,
    0x3e9200e2dc00000ull, 0x3e9240e45600000ull, 0x3e9280e84400000ull, 0x3e92c0f12200000ull, 0x3e9300f27c00000ull,
    0x3e9340f29200000ull, 0x3e9380f29000000ull, 0x3e93c0f2a000000ull, 0x3e9400f2ac00000ull, 0x3e9440f2ba00000ull,
    0x3e9480f31a00000ull, 0x3e94c0f31c00000ull, 0x3e9500f48000000ull, 0x3e9540f50200000ull, 0x3e9580f78000000ull,
    0x3e95c0fbe800000ull, 0x3e9600fc1200000ull, 0x3e9640fc8200000ull, 0x3e9680fee400000ull, 0x3e96c1000a00000ull,
    0x3e970103da00000ull, 0x3e974104f200000ull, 0x3e978104f200000ull, 0x3e97c108ae00000ull, 0x3e9801122000000ull,
    0x3e9841132c00000ull, 0x3e9881160200000ull, 0x3e98c1167200000ull, 0x3e990119a600000ull, 0x3e99411a1000000ull,
    0x3e99811f6c00000ull, 0x3e99c1207000000ull, 0x3e9a012dc600000ull, 0x3e9a412ffe00000ull, 0x3e9a81307600000ull,
    0x3e9ac0c0ea00000ull, 0x3e9b0485dc00000ull, 0x3e9b41043000000ull, 0x3e9c009c4c00000ull, 0x3e9c40a36a00000ull,
    0x3e9c80a2d000000ull, 0x3e9cc09f0000000ull, 0x3e9d00a28a00000ull, 0x3e9d40a30000000ull, 0x3e9d80a58e00000ull,
    0x3e9dc0a5f400000ull, 0x3e9e00ab3a00000ull, 0x3e9e40aaaa00000ull, 0x3e9e80ab3200000ull, 0x3e9ec0abc400000ull,
    0x3e9f00b0b400000ull, 0x3e9f40b16600000ull, 0x3e9f80b28800000ull, 0x3e9fc0b2a800000ull, 0x3ea000b4c400000ull,
    0x3ea040b65000000ull, 0x3ea080bda400000ull, 0x3ea0c0bdb200000ull, 0x3ea100bed200000ull, 0x3ea140bf5a00000ull,
    0x3ea180c1b000000ull, 0x3ea1c0c29c00000ull, 0x3ea200c21000000ull, 0x3ea240c31c00000ull, 0x3ea280c2c000000ull,
    0x3ea2c0c3e400000ull, 0x3ea300c46800000ull, 0x3ea340c78800000ull, 0x3ea380c83800000ull, 0x3ea3c0c8a400000ull,
    0x3ea400caac00000ull, 0x3ea440cce800000ull, 0x3ea480ce2e00000ull, 0x3ea4c0ce3600000ull, 0x3ea500ceac00000ull,
    0x3ea540d6f200000ull, 0x3ea580d77400000ull, 0x3ea5c0da8200000ull, 0x3ea600ddb600000ull, 0x3ea640dd9600000ull,
    0x3ea680de4400000ull, 0x3ea6c0e03c00000ull, 0x3ea700e2dc00000ull, 0x3ea740ef4e00000ull, 0x3ea780e46a00000ull,
    0x3ea7c0e55e00000ull, 0x3ea800e65400000ull, 0x3ea840e8e200000ull, 0x3ea880ea0c00000ull, 0x3ea8c0ea7600000ull,
    0x3ea900ec3a00000ull, 0x3ea940ec3e00000ull, 0x3ea980ed9400000ull, 0x3ea9c0edb600000ull, 0x3eaa00ede800000ull,
    0x3eaa40ee9400000ull, 0x3eaa80ee8000000ull, 0x3eaac0f19800000ull, 0x3eab00f56200000ull, 0x3eab40f78000000ull,
    0x3eab80f8f600000ull, 0x3eabc0fab600000ull, 0x3eac00fbe800000ull, 0x3eac40fe7c00000ull, 0x3eac81000a00000ull,
    0x3eacc106a400000ull, 0x3ead0107de00000ull, 0x3ead410ef200000ull, 0x3ead81128200000ull, 0x3eadc1130c00000ull,
    0x3eae01132c00000ull, 0x3eae41157e00000ull, 0x3eae8115f000000ull, 0x3eaec1159600000ull, 0x3eaf01160200000ull,
    0x3eaf4115fc00000ull, 0x3eaf8115da00000ull, 0x3eafc1167200000ull, 0x3eb001171400000ull, 0x3eb0411a1000000ull,
    0x3eb0811e7000000ull, 0x3eb0c120e400000ull, 0x3eb101233200000ull, 0x3eb14124ec00000ull, 0x3eb1812cf800000ull,
    0x3eb1c12dc600000ull, 0x3eb2012eac00000ull, 0x3eb2412fb600000ull, 0x3eb2812ffe00000ull, 0x3eb2c1301600000ull,
    0x3eb301307600000ull, 0x3eb341362400000ull, 0x3eb3813f3800000ull, 0x3eb3c4509400000ull, 0x3eb404508800000ull,
    0x3eb44467aa00000ull, 0x3eb480773a00000ull, 0x3eb4c0803000000ull, 0x3eb500807200000ull, 0x3eb544a49200000ull,
    0x3eb584b9a000000ull, 0x3eb5c4fda600000ull, 0x3eb6013e8600000ull, 0x3eb6413f1c00000ull, 0x3ec7400bb2005b4ull,
    0x3ec7c00be4005b7ull, 0x3eca800bd2005c1ull, 0x3ecac00bd2005c2ull, 0x3ecb01f692005c1ull, 0x3ecb41f692005c2ull,
    0x3ecb800ba0005b7ull, 0x3ecbc00ba0005b8ull, 0x3ecc000ba0005bcull, 0x3ecc400ba2005bcull, 0x3ecc800ba4005bcull,
    0x3eccc00ba6005bcull, 0x3ecd000ba8005bcull, 0x3ecd400baa005bcull, 0x3ecd800bac005bcull, 0x3ece000bb0005bcull,
    0x3ece400bb2005bcull, 0x3ece800bb4005bcull, 0x3ecec00bb6005bcull, 0x3ecf000bb8005bcull, 0x3ecf800bbc005bcull,
    0x3ed0000bc0005bcull, 0x3ed0400bc2005bcull, 0x3ed0c00bc6005bcull, 0x3ed1000bc8005bcull, 0x3ed1800bcc005bcull,
    0x3ed1c00bce005bcull, 0x3ed2000bd0005bcull, 0x3ed2400bd2005bcull, 0x3ed2800bd4005bcull, 0x3ed2c00baa005b9ull,
    0x3ed3000ba2005bfull, 0x3ed3400bb6005bfull, 0x3ed3800bc8005bfull, 0x84426822132110baull, 0x84427022136110baull,
    0x8442ac2214a110baull, 0x8444b82226211127ull, 0x8444bc2226411127ull, 0x844d2c2268e1133eull, 0x844d302268e11357ull,
    0x8452ec22972114baull, 0x8452f022972114b0ull, 0x8452f822972114bdull, 0x8456e822b70115afull, 0x8456ec22b72115afull,
    0x745783a2ae1d165ull, 0x7457c3a2b01d165ull, 0x745803a2be1d16eull, 0x745843a2be1d16full, 0x745883a2be1d170ull,
    0x7458c3a2be1d171ull, 0x745903a2be1d172ull, 0x746ec3a3721d165ull, 0x746f03a3741d165ull, 0x746f43a3761d16eull,
    0x746f83a3781d16eull, 0x746fc3a3761d16full, 0x747003a3781d16full, 0xbe00009c7a00000ull, 0xbe00409c7000000ull,
    0xbe00809c8200000ull, 0xbe00c4024400000ull, 0xbe01009ec000000ull, 0xbe01409f5c00000ull, 0xbe01809f7600000ull,
    0xbe01c0a00400000ull, 0xbe0200a0f400000ull, 0xbe0240a13200000ull, 0xbe0280a1ce00000ull, 0xbe02c0a19e00000ull,
    0xbe0300693c00000ull, 0xbe03440c7400000ull, 0xbe0380a29a00000ull, 0xbe03c0a2a800000ull, 0xbe0400a2c800000ull,
    0xbe0440a2ee00000ull, 0xbe04840a3800000ull, 0xbe04c0697200000ull, 0xbe0500a2ce00000ull, 0xbe0540a31a00000ull,
    0xbe05840a9600000ull, 0xbe05c0a32e00000ull, 0xbe0600a34800000ull, 0xbe06409d9800000ull, 0xbe0680a35800000ull,
    0xbe06c0a36a00000ull, 0xbe070523be00000ull, 0xbe0740a3ea00000ull, 0xbe0780a40600000ull, 0xbe07c069be00000ull,
    0xbe0800a47600000ull, 0xbe0840a48c00000ull, 0xbe0880a4e400000ull, 0xbe08c0a4ee00000ull, 0xbe09006a2a00000ull,
    0xbe0940a58e00000ull, 0xbe0980a59200000ull, 0xbe09c0a5c800000ull, 0xbe0a00a5f400000ull, 0xbe0a40a60a00000ull,
    0xbe0a80a60c00000ull, 0xbe0ac0a62e00000ull, 0xbe0b00a69200000ull, 0xbe0b40a6a200000ull, 0xbe0b80a6b400000ull,
    0xbe0bc0a6e600000ull, 0xbe0c00a6fa00000ull, 0xbe0c40a6fe00000ull, 0xbe0c80a6fe00000ull, 0xbe0cc0a6fe00000ull,
    0xbe0d04145800000ull, 0xbe0d40e0e000000ull, 0xbe0d80a79400000ull, 0xbe0dc0a7be00000ull, 0xbe0e0416c600000ull,
    0xbe0e40a7d600000ull, 0xbe0e80a7e200000ull, 0xbe0ec0a80c00000ull, 0xbe0f00a93c00000ull, 0xbe0f40a87000000ull,
    0xbe0f80a89000000ull, 0xbe0fc0a8d000000ull, 0xbe1000a94400000ull, 0xbe1040a9ec00000ull, 0xbe1080aa2000000ull,
    0xbe10c0aaa600000ull, 0xbe1100aac600000ull, 0xbe1140ab0800000ull, 0xbe1180ab0800000ull, 0xbe11c0ab3200000ull,
    0xbe1200ab5600000ull, 0xbe1240ab6600000ull, 0xbe1280ab8400000ull, 0xbe12c0ae2c00000ull, 0xbe1300ac0c00000ull,
    0xbe1340ae2e00000ull, 0xbe1380aca200000ull, 0xbe13c0ace800000ull, 0xbe1400a40e00000ull, 0xbe1440b1dc00000ull,
    0xbe1480af9c00000ull, 0xbe14c0afe800000ull, 0xbe1500b01a00000ull, 0xbe1540af1600000ull, 0xbe1580b06400000ull,
    0xbe15c0b06200000ull, 0xbe1600b15800000ull, 0xbe164429c800000ull, 0xbe1680b1e400000ull, 0xbe16c0b1ee00000ull,
    0xbe1700b20c00000ull, 0xbe1740b23400000ull, 0xbe1780b24400000ull, 0xbe17c0b2c400000ull, 0xbe18042d5000000ull,
    0xbe18442dd400000ull, 0xbe1880b3d800000ull, 0xbe18c0b43600000ull, 0xbe1900b44e00000ull, 0xbe1940b3b000000ull,
    0xbe1980b4cc00000ull, 0xbe19c06ddc00000ull, 0xbe1a006df800000ull, 0xbe1a40b61000000ull, 0xbe1a80b67c00000ull,
    0xbe1ac0b67c00000ull, 0xbe1b04339000000ull, 0xbe1b40b78600000ull, 0xbe1b80b7b000000ull, 0xbe1bc0b7ce00000ull,
    0xbe1c00b7e600000ull, 0xbe1c44363000000ull, 0xbe1c80b7fe00000ull, 0xbe1cc0b80c00000ull, 0xbe1d00bea600000ull,
    0xbe1d40b84400000ull, 0xbe1d806f0200000ull, 0xbe1dc0b8c000000ull, 0xbe1e00b8dc00000ull, 0xbe1e40b98000000ull,
    0xbe1e80b91a00000ull, 0xbe1ec43bc800000ull, 0xbe1f00ba8600000ull, 0xbe1f443bcc00000ull, 0xbe1f80badc00000ull,
    0xbe1fc0bad600000ull, 0xbe2000baf800000ull, 0xbe2040bbc200000ull, 0xbe2080bbc400000ull, 0xbe20c0705e00000ull,
    0xbe2100bbfa00000ull, 0xbe2140bc5000000ull, 0xbe2180bc7a00000ull, 0xbe21c0bcd200000ull, 0xbe220070c400000ull,
    0xbe2244430600000ull, 0xbe228070f800000ull, 0xbe22c0bd6000000ull, 0xbe2300bd6600000ull, 0xbe2340bd6c00000ull,
    0xbe2380bd9400000ull, 0xbe23c5472400000ull, 0xbe2400bdfc00000ull, 0xbe2444466200000ull, 0xbe2484466200000ull,
    0xbe24c1040200000ull, 0xbe2500be4400000ull, 0xbe2540be4400000ull, 0xbe2580718e00000ull, 0xbe25c4657000000ull,
    0xbe2604c3b400000ull, 0xbe2640bec400000ull, 0xbe2680bed600000ull, 0xbe26c071c600000ull, 0xbe2700bf3400000ull,
    0xbe2740bf9a00000ull, 0xbe2780bfae00000ull, 0xbe27c0bff200000ull, 0xbe2800c10200000ull, 0xbe2840727400000ull,
    0xbe2880723800000ull, 0xbe28c0c12800000ull, 0xbe29044da800000ull, 0xbe2940c18e00000ull, 0xbe2980c29000000ull,
    0xbe29c0c29800000ull, 0xbe2a00c29c00000ull, 0xbe2a40c29800000ull, 0xbe2a80c2f400000ull, 0xbe2ac0c31c00000ull,
    0xbe2b00c36400000ull, 0xbe2b40c34800000ull, 0xbe2b80c35e00000ull, 0xbe2bc0c3bc00000ull, 0xbe2c00c3e400000ull,
    0xbe2c40c3ec00000ull, 0xbe2c80c42000000ull, 0xbe2cc0c43600000ull, 0xbe2d00c4ba00000ull, 0xbe2d40c56200000ull,
    0xbe2d80c5a800000ull, 0xbe2dc0c6a000000ull, 0xbe2e04561800000ull, 0xbe2e40c67a00000ull, 0xbe2e80c5f800000ull,
    0xbe2ec0c6d000000ull, 0xbe2f00c70600000ull, 0xbe2f40c7c800000ull, 0xbe2f8457e200000ull, 0xbe2fc0c84400000ull,
    0xbe3000c78a00000ull, 0xbe3040c75200000ull, 0xbe3080745c00000ull, 0xbe30c0c8d200000ull, 0xbe3100c8fc00000ull,
    0xbe3140c93a00000ull, 0xbe3180c8ee00000ull, 0xbe31c074d800000ull, 0xbe3200ca9e00000ull, 0xbe3240cad800000ull,
    0xbe3284601400000ull, 0xbe32c0cbc600000ull, 0xbe3300cdf000000ull, 0xbe3340cc9200000ull, 0xbe3380763200000ull,
    0xbe33c0cd2200000ull, 0xbe3400761000000ull, 0xbe344075c800000ull, 0xbe3480a32400000ull, 0xbe34c0a32a00000ull,
    0xbe3500ce0000000ull, 0xbe3540cd3800000ull, 0xbe3581015a00000ull, 0xbe35c087b200000ull, 0xbe3600ce2e00000ull,
    0xbe3640ce3600000ull, 0xbe3680ce4200000ull, 0xbe36c0cebc00000ull, 0xbe3700cea600000ull, 0xbe3744678600000ull,
    0xbe3780769200000ull, 0xbe37c0cff400000ull, 0xbe3800cf0a00000ull, 0xbe3840d0a400000ull, 0xbe3880d10a00000ull,
    0xbe38c468da00000ull, 0xbe3900d11c00000ull, 0xbe3940d03e00000ull, 0xbe3980d22800000ull, 0xbe39c0773a00000ull,
    0xbe3a00d28400000ull, 0xbe3a40d34600000ull, 0xbe3a80d3d400000ull, 0xbe3ac0d55000000ull, 0xbe3b046d4600000ull,
    0xbe3b40d5b600000ull, 0xbe3b80783000000ull, 0xbe3bc0d64200000ull, 0xbe3c04714e00000ull, 0xbe3c40d6a800000ull,
    0xbe3c80789c00000ull, 0xbe3cc0d6e400000ull, 0xbe3d00d73e00000ull, 0xbe3d40d77400000ull, 0xbe3d80d77600000ull,
    0xbe3dc4751a00000ull, 0xbe3e043a1600000ull, 0xbe3e4475f400000ull, 0xbe3e80d89c00000ull, 0xbe3ec4797800000ull,
    0xbe3f00d97e00000ull, 0xbe3f40d99a00000ull, 0xbe3f80d8ce00000ull, 0xbe3fc0da2c00000ull, 0xbe4000da7c00000ull,
    0xbe4040daee00000ull, 0xbe4080da8200000ull, 0xbe40c0dad200000ull, 0xbe4100daf000000ull, 0xbe4140db0a00000ull,
    0xbe41847a3c00000ull, 0xbe41c0da6800000ull, 0xbe4200dc5e00000ull, 0xbe4240dcdc00000ull, 0xbe42807a6600000ull,
    0xbe42c0dd9600000ull, 0xbe4300dd8e00000ull, 0xbe43447da200000ull, 0xbe4380dbf200000ull, 0xbe43c0dedc00000ull,
    0xbe44047ebc00000ull, 0xbe44447f1c00000ull, 0xbe4480df8c00000ull, 0xbe44c0e07200000ull, 0xbe4500e03c00000ull,
    0xbe4540e03600000ull, 0xbe45807b2c00000ull, 0xbe45c0e09400000ull, 0xbe4600e0fa00000ull, 0xbe4640e0ee00000ull,
    0xbe4680e15a00000ull, 0xbe46c40a4a00000ull, 0xbe4700e28a00000ull, 0xbe474484c600000ull, 0xbe4780e33800000ull,
    0xbe47c4875600000ull, 0xbe4800e45000000ull, 0xbe4840e46a00000ull, 0xbe4880e4a000000ull, 0xbe48c48c1000000ull,
    0xbe4900e50000000ull, 0xbe4940e52a00000ull, 0xbe49848e6a00000ull, 0xbe49c4902800000ull, 0xbe4a00e6f400000ull,
    0xbe4a40e71600000ull, 0xbe4a807d5800000ull, 0xbe4ac0e74a00000ull, 0xbe4b007d7000000ull, 0xbe4b407d7000000ull,
    0xbe4b80e88e00000ull, 0xbe4bc0e8b800000ull, 0xbe4c00e8e200000ull, 0xbe4c40e90a00000ull, 0xbe4c80e99400000ull,
    0xbe4cc07e3600000ull, 0xbe4d00ea4800000ull, 0xbe4d44986c00000ull, 0xbe4d80ea7c00000ull, 0xbe4dc4992400000ull,
    0xbe4e00eae000000ull, 0xbe4e44433e00000ull, 0xbe4e80ec2000000ull, 0xbe4ec49f4200000ull, 0xbe4f049f7000000ull,
    0xbe4f44a08800000ull, 0xbe4f807ff800000ull, 0xbe4fc0801000000ull, 0xbe5000ede800000ull, 0xbe5044a1e600000ull,
    0xbe5084a1e400000ull, 0xbe50c4a23200000ull, 0xbe5104a26600000ull, 0xbe5140ee3c00000ull, 0xbe5180ee3e00000ull,
    0xbe51c0ee3e00000ull, 0xbe5200ee9400000ull, 0xbe5240807200000ull, 0xbe5280ef1600000ull, 0xbe52c0808c00000ull,
    0xbe5300812c00000ull, 0xbe5344a83a00000ull, 0xbe5380f09c00000ull, 0xbe53c0f11800000ull, 0xbe5400f19800000ull,
    0xbe544081c600000ull, 0xbe5484ac4c00000ull, 0xbe54c0f2ac00000ull, 0xbe5504ad3400000ull, 0xbe5544ad8a00000ull,
    0xbe5580f31e00000ull, 0xbe55c0f3d600000ull, 0xbe5600825e00000ull, 0xbe5640f48000000ull, 0xbe5680f49400000ull,
    0xbe56c0f49e00000ull, 0xbe5704b2f800000ull, 0xbe5744b54e00000ull, 0xbe5784b54e00000ull, 0xbe57c0f5dc00000ull,
    0xbe5800840400000ull, 0xbe5844b75600000ull, 0xbe5880f78c00000ull, 0xbe58c0f79200000ull, 0xbe5900844e00000ull,
    0xbe5944b90000000ull, 0xbe5980f9a400000ull, 0xbe59c0854000000ull, 0xbe5a00f9d000000ull, 0xbe5a40f9c600000ull,
    0xbe5a80fa0000000ull, 0xbe5ac4bf0c00000ull, 0xbe5b00fac600000ull, 0xbe5b40860200000ull, 0xbe5b80fb8e00000ull,
    0xbe5bc0fc0400000ull, 0xbe5c00fc8a00000ull, 0xbe5c40866800000ull, 0xbe5c84c45000000ull, 0xbe5cc4c48e00000ull,
    0xbe5d0086b200000ull, 0xbe5d44c5b200000ull, 0xbe5d80fef400000ull, 0xbe5dc4c67c00000ull, 0xbe5e00ff2a00000ull,
    0xbe5e40fff400000ull, 0xbe5e81000a00000ull, 0xbe5ec4c9b400000ull, 0xbe5f04ca4600000ull, 0xbe5f4100c000000ull,
    0xbe5f84cb5000000ull, 0xbe5fc100e000000ull, 0xbe600466be00000ull, 0xbe604087aa00000ull, 0xbe6081016400000ull,
    0xbe60c1020600000ull, 0xbe6100881600000ull, 0xbe6141027c00000ull, 0xbe6180b56a00000ull, 0xbe61c4cf4e00000ull,
    0xbe6204cf6a00000ull, 0xbe6244672600000ull, 0xbe6284673800000ull, 0xbe62c1040200000ull, 0xbe6301040800000ull,
    0xbe63411f3c00000ull, 0xbe638088d600000ull, 0xbe63c1052200000ull, 0xbe6401051600000ull, 0xbe6441053a00000ull,
    0xbe6480a56600000ull, 0xbe64c1056200000ull, 0xbe6501056600000ull, 0xbe6541057a00000ull, 0xbe658105cc00000ull,
    0xbe65c4d67800000ull, 0xbe660105ca00000ull, 0xbe6641063a00000ull, 0xbe668106c600000ull, 0xbe66c1075a00000ull,
    0xbe6701064600000ull, 0xbe6741077a00000ull, 0xbe678107ce00000ull, 0xbe67c108ae00000ull, 0xbe680106a600000ull,
    0xbe6841079400000ull, 0xbe6881079800000ull, 0xbe68c107b800000ull, 0xbe6904d86c00000ull, 0xbe6944dad600000ull,
    0xbe6984d9aa00000ull, 0xbe69c08a5600000ull, 0xbe6a0109e200000ull, 0xbe6a4109e600000ull, 0xbe6a810a2c00000ull,
    0xbe6ac4e79400000ull, 0xbe6b010ac800000ull, 0xbe6b44de5800000ull, 0xbe6b808aba00000ull, 0xbe6bc08ac200000ull,
    0xbe6c04df6200000ull, 0xbe6c44e1a400000ull, 0xbe6c808ad600000ull, 0xbe6cc10ca000000ull, 0xbe6d010cb800000ull,
    0xbe6d410cce00000ull, 0xbe6d810cd200000ull, 0xbe6dc10d5200000ull, 0xbe6e010d1000000ull, 0xbe6e410e1c00000ull,
    0xbe6e810dc400000ull, 0xbe6ec10ef200000ull, 0xbe6f010e5000000ull, 0xbe6f410ed600000ull, 0xbe6f810f0c00000ull,
    0xbe6fc08bae00000ull, 0xbe70010fc200000ull, 0xbe7041100200000ull, 0xbe70808bf200000ull, 0xbe70c110c000000ull,
    0xbe710110c600000ull, 0xbe7144ecce00000ull, 0xbe718111ae00000ull, 0xbe71c111bc00000ull, 0xbe72008c6a00000ull,
    0xbe724111f400000ull, 0xbe7280697600000ull, 0xbe72c4f15c00000ull, 0xbe7304f2cc00000ull, 0xbe73408d7c00000ull,
    0xbe73808d8e00000ull, 0xbe73c1154000000ull, 0xbe740115da00000ull, 0xbe7441171400000ull, 0xbe748118aa00000ull,
    0xbe74c4f95000000ull, 0xbe7501195600000ull, 0xbe7541198200000ull, 0xbe75811a3600000ull, 0xbe75c11aee00000ull,
    0xbe7604fe5e00000ull, 0xbe7644100800000ull, 0xbe76811b9600000ull, 0xbe76c11b7800000ull, 0xbe77011be000000ull,
    0xbe774411bc00000ull, 0xbe77811da800000ull, 0xbe77c11e7000000ull, 0xbe78050ba400000ull, 0xbe78450bda00000ull,
    0xbe7881212800000ull, 0xbe78c121e200000ull, 0xbe7901222200000ull, 0xbe79450e5c00000ull, 0xbe7981223600000ull,
    0xbe79c1247000000ull, 0xbe7a0125ae00000ull, 0xbe7a4125b000000ull, 0xbe7a8124f800000ull, 0xbe7ac127f200000ull,
    0xbe7b01282a00000ull, 0xbe7b4517f400000ull, 0xbe7b812b1600000ull, 0xbe7bc0932a00000ull, 0xbe7c012b6e00000ull,
    0xbe7c451aee00000ull, 0xbe7c8093cc00000ull, 0xbe7cc12d8600000ull, 0xbe7d00bb6400000ull, 0xbe7d412e4600000ull,
    0xbe7d85228a00000ull, 0xbe7dc5243400000ull, 0xbe7e0094dc00000ull, 0xbe7e4094ec00000ull, 0xbe7e812fc000000ull,
    0xbe7ec5281400000ull, 0xbe7f00956400000ull, 0xbe7f45292c00000ull, 0xbe7f81301600000ull, 0xbe7fc1301600000ull,
    0xbe8001305200000ull, 0xbe80452b6c00000ull, 0xbe808131c400000ull, 0xbe80c0966600000ull, 0xbe8101325200000ull,
    0xbe8141334e00000ull, 0xbe8181338400000ull, 0xbe81c133fc00000ull, 0xbe8200979c00000ull, 0xbe8245366000000ull,
    0xbe8281362400000ull, 0xbe82c1388000000ull, 0xbe830139fa00000ull, 0xbe8340999c00000ull, 0xbe838099da00000ull,
    0xbe83c13ace00000ull, 0xbe8405419c00000ull, 0xbe844099f000000ull, 0xbe8485420a00000ull, 0xbe84c5441c00000ull,
    0xbe8505452200000ull, 0xbe85413d7600000ull, 0xbe85809aac00000ull, 0xbe85c13df200000ull, 0xbe86013dfc00000ull,
    0xbe86413e0a00000ull, 0xbe86813e1e00000ull, 0xbe86c13e2c00000ull, 0xbe87013e7600000ull, 0xbe87454c0000000ull,
};
static const uint16_t arwkv__uni_compose[940] = {
    912, 909, 913, 0, 1, 2, 3, 53, 55, 238, 4, 572, 5, 165,
    208, 210, 570, 415, 57, 417, 419, 421, 59, 61, 63, 65, 6, 425,
    67, 427, 431, 433, 429, 7, 8, 9, 598, 69, 71, 73, 10, 596,
    77, 212, 214, 594, 240, 75, 439, 441, 445, 198, 79, 447, 81, 83,
    187, 85, 87, 449, 453, 236, 451, 455, 457, 11, 12, 13, 89, 91,
    93, 97, 14, 610, 167, 216, 218, 612, 95, 459, 98, 463, 189, 465,
    100, 467, 102, 106, 469, 104, 475, 473, 477, 479, 481, 200, 108, 15,
    483, 112, 485, 110, 489, 487, 16, 17, 18, 19, 114, 116, 246, 20,
    616, 118, 169, 220, 222, 161, 614, 191, 499, 501, 120, 503, 124, 224,
    226, 505, 122, 509, 126, 128, 511, 132, 513, 232, 130, 521, 136, 523,
    234, 134, 527, 525, 21, 22, 23, 138, 140, 142, 24, 640, 144, 146,
    171, 228, 230, 163, 638, 529, 148, 533, 531, 539, 541, 543, 545, 150,
    549, 547, 551, 553, 555, 652, 25, 152, 658, 250, 557, 154, 656, 654,
    155, 559, 157, 159, 561, 563, 26, 27, 28, 29, 54, 56, 239, 30,
    573, 31, 166, 209, 211, 571, 416, 58, 418, 420, 422, 60, 62, 64,
    66, 32, 426, 68, 428, 432, 434, 430, 33, 34, 35, 599, 70, 72,
    74, 36, 597, 78, 213, 215, 595, 241, 76, 440, 442, 446, 199, 80,
    448, 82, 84, 188, 86, 88, 450, 454, 237, 452, 456, 458, 565, 37,
    38, 39, 90, 92, 94, 40, 611, 168, 217, 219, 613, 96, 460, 99,
    197, 464, 190, 466, 101, 468, 103, 107, 470, 105, 476, 474, 478, 480,
    482, 201, 109, 41, 484, 113, 486, 111, 490, 488, 42, 43, 44, 45,
    115, 117, 247, 46, 617, 119, 170, 221, 223, 162, 615, 192, 500, 502,
    121, 504, 125, 225, 227, 506, 123, 510, 127, 129, 512, 133, 514, 233,
    131, 522, 566, 137, 524, 235, 135, 528, 526, 47, 48, 49, 139, 141,
    143, 50, 641, 145, 147, 172, 229, 231, 164, 639, 530, 149, 534, 532,
    540, 542, 544, 546, 151, 550, 548, 567, 552, 554, 556, 653, 51, 153,
    659, 251, 558, 52, 657, 568, 655, 156, 560, 158, 160, 562, 564, 875,
    258, 835, 576, 574, 580, 578, 181, 202, 204, 185, 423, 602, 600, 606,
    604, 461, 620, 618, 624, 622, 491, 244, 493, 242, 206, 179, 175, 173,
    177, 577, 575, 581, 579, 182, 203, 205, 186, 424, 603, 601, 607, 605,
    462, 621, 619, 625, 623, 492, 245, 494, 243, 207, 180, 176, 174, 178,
    586, 584, 590, 588, 587, 585, 591, 589, 435, 437, 436, 438, 495, 497,
    496, 498, 515, 516, 517, 518, 535, 536, 537, 538, 569, 630, 628, 634,
    632, 636, 631, 629, 635, 633, 637, 644, 642, 648, 646, 650, 645, 643,
    649, 647, 651, 195, 193, 194, 183, 184, 443, 444, 248, 249, 196, 831,
    259, 830, 829, 668, 669, 833, 841, 261, 682, 683, 843, 262, 696, 697,
    845, 857, 263, 856, 855, 268, 712, 713, 883, 264, 726, 727, 874, 872,
    265, 871, 870, 269, 740, 885, 266, 752, 753, 887, 826, 838, 760, 270,
    823, 822, 660, 661, 827, 825, 762, 271, 676, 677, 764, 272, 688, 689,
    839, 837, 766, 273, 850, 849, 275, 704, 705, 853, 768, 277, 720, 721,
    866, 867, 770, 278, 863, 862, 276, 732, 733, 868, 772, 279, 744, 745,
    881, 879, 851, 267, 854, 864, 274, 869, 880, 280, 281, 285, 302, 304,
    284, 282, 306, 283, 300, 310, 312, 287, 314, 289, 316, 286, 318, 324,
    288, 326, 328, 330, 332, 322, 303, 305, 293, 291, 307, 292, 301, 311,
    313, 296, 315, 290, 317, 295, 319, 325, 297, 327, 329, 331, 333, 323,
    294, 298, 299, 308, 309, 320, 321, 334, 335, 337, 336, 338, 340, 341,
    339, 342, 343, 344, 353, 354, 365, 364, 366, 369, 370, 372, 371, 373,
    374, 377, 375, 376, 378, 379, 381, 380, 382, 383, 385, 384, 403, 404,
    405, 406, 407, 408, 409, 410, 411, 412, 413, 414, 471, 472, 507, 508,
    519, 520, 582, 592, 583, 593, 608, 609, 626, 627, 662, 664, 666, 774,
    663, 665, 667, 775, 776, 777, 778, 779, 780, 781, 670, 672, 674, 782,
    671, 673, 675, 783, 784, 785, 786, 787, 788, 789, 678, 680, 679, 681,
    684, 686, 685, 687, 690, 692, 694, 790, 691, 693, 695, 791, 792, 793,
    794, 795, 796, 797, 698, 700, 702, 798, 699, 701, 703, 799, 800, 801,
    802, 803, 804, 805, 706, 708, 710, 707, 709, 711, 714, 716, 718, 715,
    717, 719, 722, 724, 723, 725, 728, 730, 729, 731, 734, 736, 738, 735,
    737, 739, 741, 742, 743, 746, 748, 750, 806, 747, 749, 751, 807, 808,
    809, 810, 811, 812, 813, 754, 756, 758, 814, 755, 757, 759, 815, 816,
    817, 818, 819, 820, 821, 824, 836, 878, 828, 846, 847, 848, 840, 882,
    859, 860, 861, 894, 895, 896, 897, 899, 898, 900, 901, 902, 903, 904,
    905, 906, 907, 908, 911, 910, 914, 915, 916, 917, 918, 919, 920, 921,
    930, 931, 922, 923, 924, 925, 932, 933, 926, 927, 928, 929, 934, 935,
    936, 937, 966, 941, 942, 943, 944, 945, 946, 947, 948, 949, 950, 951,
    952, 953, 954, 955, 956, 957, 958, 959, 960, 961, 962, 963, 964, 965,
    967, 993, 968, 969, 970, 971, 972, 973, 974, 975, 976, 977, 978, 979,
    980, 981, 982, 983, 984, 985, 986, 987, 988, 989, 990, 991, 992, 994,
    995, 996, 997, 998, 1493, 1494, 1495, 1496, 1497, 1498, 1499, 1501, 1500, 1502,
    1503, 1504,
};
/* ---- END generated Unicode tables ---- */

/* ---- Characters --------------------------------------------------------------------------------
   The tokenizer works on characters decoded from UTF-8. A byte that is not part of a valid UTF-8
   sequence becomes the character ARWKV__RAW_BYTE + byte: beyond Unicode, so every table below says
   "other, combining class 0, no decomposition" for it, and writing it back gives the byte itself. */
#define ARWKV__RAW_BYTE 0x110000u

/* The character at s[0] (n >= 1 bytes available): its length in bytes and its code point. */
ARWKV_PRIVATE size_t arwkv__utf8_next(const unsigned char *s, size_t n, uint32_t *cp) {
    unsigned c = s[0];
    if (c < 0x80) {
        *cp = c;
        return 1;
    }
    switch (arwkv__utf8_valid_len(s, n)) {
    case 2: *cp = ((c & 0x1fu) << 6) | (s[1] & 0x3fu); return 2;
    case 3: *cp = ((c & 0x0fu) << 12) | ((s[1] & 0x3fu) << 6) | (s[2] & 0x3fu); return 3;
    case 4: *cp = ((c & 0x07u) << 18) | ((s[1] & 0x3fu) << 12) | ((s[2] & 0x3fu) << 6) | (s[3] & 0x3fu); return 4;
    default: *cp = ARWKV__RAW_BYTE + c; return 1;
    }
}

/* Append character cp as UTF-8 (a raw byte as itself). */
ARWKV_PRIVATE size_t arwkv__char_put(uint32_t cp, unsigned char *out) {
    if (cp >= ARWKV__RAW_BYTE) {
        out[0] = (unsigned char)(cp - ARWKV__RAW_BYTE);
        return 1;
    }
    return (size_t)arwkv__utf8_encode(cp, (char *)out);
}

/* In a table of transitions (sorted entries start << shift | value), the value at cp. */
ARWKV_PRIVATE uint32_t arwkv__uni_find(const uint32_t *table, size_t n, int shift, uint32_t cp) {
    size_t lo = 0, hi = n; /* table[0] starts at 0 */
    while (hi - lo > 1) {
        size_t mid = lo + (hi - lo) / 2;
        if ((table[mid] >> shift) <= cp) lo = mid;
        else hi = mid;
    }
    return table[lo] & ((1u << shift) - 1);
}

/* Classes of the pre-tokenizer regex: \p{L}, \p{N}, \s, and everything else. */
enum { ARWKV__OTHER = 0, ARWKV__LETTER = 1, ARWKV__NUMBER = 2, ARWKV__SPACE = 3 };

ARWKV_PRIVATE int arwkv__char_class(uint32_t cp) {
    if (cp < 0x80) {
        if ((uint32_t)((cp | 0x20) - 'a') < 26) return ARWKV__LETTER;
        if ((uint32_t)(cp - '0') < 10) return ARWKV__NUMBER;
        if (cp == ' ' || (cp >= 9 && cp <= 13)) return ARWKV__SPACE;
        return ARWKV__OTHER;
    }
    return (int)arwkv__uni_find(arwkv__uni_class, sizeof arwkv__uni_class / sizeof arwkv__uni_class[0], 2, cp);
}

/* The properties of every BMP character, unpacked from the tables at load so that the hot loops
   index instead of searching (64 KB): bits 0-1 the class, bit 2 set if NFC's quick check passes the
   character with combining class 0 ("inert": NFC can leave it and its neighbours alone). */
enum { ARWKV__NFC_INERT = 4 };

ARWKV_PRIVATE void arwkv__bmp_props(uint8_t *props) {
    size_t n_class = sizeof arwkv__uni_class / sizeof arwkv__uni_class[0], n_nfc = sizeof arwkv__uni_nfc / sizeof arwkv__uni_nfc[0];
    for (size_t i = 0; i < n_class && (arwkv__uni_class[i] >> 2) < 0x10000; i++) {
        uint32_t end = i + 1 < n_class ? arwkv__uni_class[i + 1] >> 2 : 0x10000;
        for (uint32_t cp = arwkv__uni_class[i] >> 2; cp < end && cp < 0x10000; cp++) props[cp] = (uint8_t)(arwkv__uni_class[i] & 3);
    }
    for (size_t i = 0; i < n_nfc && (arwkv__uni_nfc[i] >> 10) < 0x10000; i++) {
        uint32_t end = i + 1 < n_nfc ? arwkv__uni_nfc[i + 1] >> 10 : 0x10000;
        if ((arwkv__uni_nfc[i] & 0x3ff) == 0)
            for (uint32_t cp = arwkv__uni_nfc[i] >> 10; cp < end && cp < 0x10000; cp++) props[cp] |= ARWKV__NFC_INERT;
    }
}

/* Length and class of the character at s[0]. */
ARWKV_PRIVATE size_t arwkv__class_at(const uint8_t *bmp, const unsigned char *s, size_t n, int *cls) {
    if (s[0] < 0x80) {
        *cls = bmp[s[0]] & 3;
        return 1;
    }
    uint32_t cp;
    size_t len = arwkv__utf8_next(s, n, &cp);
    *cls = cp < 0x10000 ? bmp[cp] & 3 : arwkv__char_class(cp);
    return len;
}

/* ---- NFC ---------------------------------------------------------------------------------------
   Canonical composition as UAX #15 defines it, with the data of Unicode 9.0 (that of the crate
   tokenizers uses). Most text is already NFC, which the quick check proves in one pass; only a
   segment that fails it is decomposed, reordered by combining class and recomposed. */

/* Combining class (bits 0-7) and NFC quick-check value (bits 8-9: 0 yes, 1 maybe, 2 no). */
ARWKV_PRIVATE uint32_t arwkv__nfc_props(uint32_t cp) {
    if (cp < 0x300) return 0; /* the generator checks that nothing below U+0300 needs NFC */
    return arwkv__uni_find(arwkv__uni_nfc, sizeof arwkv__uni_nfc / sizeof arwkv__uni_nfc[0], 10, cp);
}

/* 1 if NFC leaves s[0..n) unchanged for certain: every character has quick-check "yes" and the
   combining classes never decrease between starters. */
ARWKV_PRIVATE int arwkv__nfc_quick_check(const uint8_t *bmp, const unsigned char *s, size_t n) {
    uint32_t last = 0;
    size_t i = 0;
    while (i < n) {
        if (s[i] < 0x80) {
            last = 0;
            i++;
            continue;
        }
        uint32_t cp;
        i += arwkv__utf8_next(s + i, n - i, &cp);
        if (cp < 0x10000 && (bmp[cp] & ARWKV__NFC_INERT)) {
            last = 0;
            continue;
        }
        uint32_t p = arwkv__nfc_props(cp), ccc = p & 0xff;
        if ((p >> 8) != 0 || (ccc != 0 && ccc < last)) return 0;
        last = ccc;
    }
    return 1;
}

enum { ARWKV__HANGUL_S = 0xAC00, ARWKV__HANGUL_L = 0x1100, ARWKV__HANGUL_V = 0x1161, ARWKV__HANGUL_T = 0x11A7,
       ARWKV__HANGUL_NV = 21, ARWKV__HANGUL_NT = 28, ARWKV__HANGUL_COUNT = 19 * 21 * 28 };

/* Full canonical decomposition of cp into out (at most ARWKV__UNI_MAX_DECOMP characters). */
ARWKV_PRIVATE size_t arwkv__decompose(uint32_t cp, uint32_t *out) {
    if (cp - ARWKV__HANGUL_S < (uint32_t)ARWKV__HANGUL_COUNT) { /* algorithmic: L V (T) */
        uint32_t s = cp - ARWKV__HANGUL_S, t = s % ARWKV__HANGUL_NT;
        out[0] = ARWKV__HANGUL_L + s / (ARWKV__HANGUL_NV * ARWKV__HANGUL_NT);
        out[1] = ARWKV__HANGUL_V + (s % (ARWKV__HANGUL_NV * ARWKV__HANGUL_NT)) / ARWKV__HANGUL_NT;
        if (!t) return 2;
        out[2] = ARWKV__HANGUL_T + t;
        return 3;
    }
    if (cp >= 0xC0 && cp < ARWKV__RAW_BYTE) {
        size_t lo = 0, hi = sizeof arwkv__uni_decomp / sizeof arwkv__uni_decomp[0];
        while (lo < hi) {
            size_t mid = lo + (hi - lo) / 2;
            uint32_t c = (uint32_t)(arwkv__uni_decomp[mid] >> 42) & 0x1fffff;
            if (c == cp) {
                uint32_t first = (uint32_t)(arwkv__uni_decomp[mid] >> 21) & 0x1fffff;
                uint32_t second = (uint32_t)arwkv__uni_decomp[mid] & 0x1fffff;
                size_t k = arwkv__decompose(first, out);
                return second ? k + arwkv__decompose(second, out + k) : k;
            }
            if (c < cp) lo = mid + 1;
            else hi = mid;
        }
    }
    out[0] = cp;
    return 1;
}

/* The primary composite of a followed by b, 0 if none. */
ARWKV_PRIVATE uint32_t arwkv__compose(uint32_t a, uint32_t b) {
    if (a - ARWKV__HANGUL_L < 19 && b - ARWKV__HANGUL_V < (uint32_t)ARWKV__HANGUL_NV)
        return ARWKV__HANGUL_S + ((a - ARWKV__HANGUL_L) * ARWKV__HANGUL_NV + (b - ARWKV__HANGUL_V)) * ARWKV__HANGUL_NT;
    if (a - ARWKV__HANGUL_S < (uint32_t)ARWKV__HANGUL_COUNT && (a - ARWKV__HANGUL_S) % ARWKV__HANGUL_NT == 0 &&
        b - ARWKV__HANGUL_T - 1 < (uint32_t)ARWKV__HANGUL_NT - 1)
        return a + (b - ARWKV__HANGUL_T);
    uint64_t key = ((uint64_t)a << 21) | b;
    size_t lo = 0, hi = sizeof arwkv__uni_compose / sizeof arwkv__uni_compose[0];
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        uint64_t e = arwkv__uni_decomp[arwkv__uni_compose[mid]];
        uint64_t k = e & (((uint64_t)1 << 42) - 1);
        if (k == key) return (uint32_t)(e >> 42) & 0x1fffff;
        if (k < key) lo = mid + 1;
        else hi = mid;
    }
    return 0;
}

/* NFC of s[0..n), written at out, which must have room for 3 * n bytes (UAX #15: NFC grows UTF-8
   text at most threefold, as U+1D160 does: 4 bytes, 12 after). Returns the length, or SIZE_MAX if
   the scratch space `chars` (grown as needed) cannot be allocated. */
ARWKV_PRIVATE size_t arwkv__nfc(const unsigned char *s, size_t n, uint32_t **chars, size_t *cap, unsigned char *out) {
    /* decomposition makes at most 2 characters per byte of UTF-8 (the generator checks), and as
       much again serves the sort below */
    size_t need = 4 * n + 2 * ARWKV__UNI_MAX_DECOMP;
    if (*cap < need) {
        uint32_t *p = (uint32_t *)arwkv__realloc(*chars, need * sizeof(uint32_t));
        if (!p) return SIZE_MAX;
        *chars = p;
        *cap = need;
    }
    /* 1. decompose; each entry is ccc << 24 | character */
    uint32_t *c = *chars;
    size_t m = 0;
    for (size_t i = 0; i < n;) {
        uint32_t cp;
        i += arwkv__utf8_next(s + i, n - i, &cp);
        size_t k = arwkv__decompose(cp, c + m);
        for (size_t j = m; j < m + k; j++) c[j] |= (arwkv__nfc_props(c[j]) & 0xff) << 24;
        m += k;
    }
    /* 2. canonical order: a stable sort of each run of non-starters by combining class; by
       insertion when short, by counting (into the free space after the characters) when long, so
       that a megabyte of combining marks costs no more than a megabyte of letters */
    for (size_t a = 0; a < m; a++) {
        if ((c[a] >> 24) == 0) continue;
        size_t b = a + 1;
        while (b < m && (c[b] >> 24) != 0) b++;
        if (b - a <= 32) {
            for (size_t i = a + 1; i < b; i++) {
                uint32_t x = c[i];
                size_t j = i;
                for (; j > a && (c[j - 1] >> 24) > (x >> 24); j--) c[j] = c[j - 1];
                c[j] = x;
            }
        } else {
            size_t start[257] = {0};
            uint32_t *sorted = c + m;
            for (size_t i = a; i < b; i++) start[(c[i] >> 24) + 1]++;
            for (int k = 0; k < 256; k++) start[k + 1] += start[k];
            for (size_t i = a; i < b; i++) sorted[start[c[i] >> 24]++] = c[i];
            memcpy(c + a, sorted, (b - a) * sizeof(uint32_t));
        }
        a = b;
    }
    /* 3. compose: each character joins the last starter unless something between blocks it (a
       starter, or a non-starter of the same or a higher class) */
    size_t kept = 0;
    if (m > 0) {
        size_t starter = 0;
        uint32_t last = (c[0] >> 24) ? 256 : 0;
        kept = 1;
        for (size_t i = 1; i < m; i++) {
            uint32_t ch = c[i] & 0xffffff, cc = c[i] >> 24;
            uint32_t composite = (last < cc || last == 0) ? arwkv__compose(c[starter] & 0xffffff, ch) : 0;
            if (composite) {
                c[starter] = composite;
                continue;
            }
            if (cc == 0) starter = kept;
            last = cc;
            c[kept++] = c[i];
        }
    }
    size_t len = 0;
    for (size_t i = 0; i < kept; i++) len += arwkv__char_put(c[i] & 0xffffff, out + len);
    return len;
}

/* ---- Pre-tokenizer -----------------------------------------------------------------------------
   The Qwen regex, alternative by alternative, as Oniguruma runs it: at a position the first
   alternative that matches wins; quantifiers are greedy and give back what the rest needs.

     (?i:'s|'t|'re|'ve|'m|'ll|'d)      contractions ('S, 'Ll, and 'ſ for 's)
     [^\r\n\p{L}\p{N}]?\p{L}+          a word with at most one leading non-letter (" the", "(x")
     \p{N}                             one digit (of any script) at a time
      ?[^\s\p{L}\p{N}]+[\r\n]*         punctuation, with an optional leading space and trailing newlines
     \s*[\r\n]+                        white space up to its last line break
     \s+(?!\S)                         white space but its last character if a word follows
     \s+                               (a lone white-space character before a word)

   The alternatives cover every character, so the pieces tile the text. */

ARWKV_PRIVATE int arwkv__is_newline(unsigned char c) { return c == '\r' || c == '\n'; }

/* Byte length of the pre-token at the start of s[0..n), n > 0. max_digits is 1 for Qwen's \p{N}
   and 3 for Llama-3's \p{N}{1,3}, the one place where the two regexes differ. */
ARWKV_PRIVATE size_t arwkv__pretoken_digits(const uint8_t *bmp, const unsigned char *s, size_t n, int max_digits) {
    int c0, c;
    size_t l0 = arwkv__class_at(bmp, s, n, &c0), i, l;
    if (s[0] == '\'' && n >= 2) {
        unsigned a = s[1] | 0x20u; /* ASCII case folding; leaves non-letters non-letters */
        if (a == 's' || a == 't' || a == 'm' || a == 'd') return 2;
        if (n >= 3) {
            unsigned b = s[2] | 0x20u;
            if (((a == 'r' || a == 'v') && b == 'e') || (a == 'l' && b == 'l')) return 3;
            if (s[1] == 0xc5 && s[2] == 0xbf) return 3; /* U+017F LATIN SMALL LETTER LONG S folds to s */
        }
    }
    i = n; /* no word */
    if (c0 == ARWKV__LETTER) i = 0;
    else if (c0 != ARWKV__NUMBER && !arwkv__is_newline(s[0]) && l0 < n) {
        arwkv__class_at(bmp, s + l0, n - l0, &c);
        if (c == ARWKV__LETTER) i = l0;
    }
    if (i < n) {
        while (i < n && (l = arwkv__class_at(bmp, s + i, n - i, &c), c == ARWKV__LETTER)) i += l;
        return i;
    }
    if (c0 == ARWKV__NUMBER) {
        i = l0;
        for (int d = 1; d < max_digits && i < n && (l = arwkv__class_at(bmp, s + i, n - i, &c), c == ARWKV__NUMBER); d++) i += l;
        return i;
    }
    i = s[0] == ' ' ? 1 : 0;
    if (i < n && (arwkv__class_at(bmp, s + i, n - i, &c), c == ARWKV__OTHER)) {
        while (i < n && (l = arwkv__class_at(bmp, s + i, n - i, &c), c == ARWKV__OTHER)) i += l;
        while (i < n && arwkv__is_newline(s[i])) i++;
        return i;
    }
    /* white space: s[0] is */
    size_t after_newline = 0, last = 0;
    i = 0;
    while (i < n && (l = arwkv__class_at(bmp, s + i, n - i, &c), c == ARWKV__SPACE)) {
        if (arwkv__is_newline(s[i])) after_newline = i + 1;
        last = i;
        i += l;
    }
    if (after_newline) return after_newline;  /* \s*[\r\n]+ */
    if (i == n || last == 0) return i;        /* \s+ at the end of the text; a single \s before \S */
    return last;                              /* \s+(?!\S) */
}

/* The Qwen pre-token. */
ARWKV_PRIVATE size_t arwkv__pretoken(const uint8_t *bmp, const unsigned char *s, size_t n) {
    return arwkv__pretoken_digits(bmp, s, n, 1);
}

/* The GPT-2 regex (tokenizers' ByteLevel pre-tokenizer with use_regex, and SmolLM's after its digit
   split), case-sensitive and simpler than Qwen's:

     's|'t|'re|'ve|'m|'ll|'d          contractions, lower case only
      ?\p{L}+                         a word with an optional leading space
      ?\p{N}+                         a number (a run of digits), likewise
      ?[^\s\p{L}\p{N}]+               punctuation, likewise
     \s+(?!\S)                        white space but its last character if something follows
     \s+                              (a lone white-space character before a word)

   No alternative treats line breaks apart from other white space. */
ARWKV_PRIVATE size_t arwkv__pretoken_gpt2(const uint8_t *bmp, const unsigned char *s, size_t n) {
    int c;
    size_t i, l;
    if (s[0] == '\'' && n >= 2) {
        unsigned a = s[1];
        if (a == 's' || a == 't' || a == 'm' || a == 'd') return 2;
        if (n >= 3 && ((a == 'r' && s[2] == 'e') || (a == 'v' && s[2] == 'e') || (a == 'l' && s[2] == 'l'))) return 3;
    }
    i = s[0] == ' ' && n >= 2 ? 1 : 0; /* the optional leading space */
    arwkv__class_at(bmp, s + i, n - i, &c);
    if (c != ARWKV__SPACE) { /* a run of one class: letters, numbers or other */
        int run = c;
        while (i < n && (l = arwkv__class_at(bmp, s + i, n - i, &c), c == run)) i += l;
        return i;
    }
    size_t last = 0; /* white space: s[0] is */
    i = 0;
    while (i < n && (l = arwkv__class_at(bmp, s + i, n - i, &c), c == ARWKV__SPACE)) {
        last = i;
        i += l;
    }
    if (i == n || last == 0) return i; /* \s+ at the end of the text; a single \s before \S */
    return last;                       /* \s+(?!\S) */
}

/* ---- Byte-level BPE ----------------------------------------------------------------------------
   tokenizer.json spells tokens in GPT-2's byte-level alphabet: each byte is one printable
   character (bytes 0x21-0x7E, 0xA1-0xAC and 0xAE-0xFF stand for themselves, the others for
   U+0100 onwards in byte order), so "Ġthe" is the bytes " the". We convert every token to its
   bytes once, at load, and then work on bytes and ids only: a piece starts as one token per byte
   and merges apply by rank. The merge table maps a pair of ids to (rank, id of the merged token). */

typedef struct arwkv__merge {
    uint64_t pair; /* left id << 32 | right id; ARWKV__NO_PAIR when the slot is empty */
    uint32_t rank;
    int32_t id;
} arwkv__merge;
#define ARWKV__NO_PAIR UINT64_MAX

typedef struct arwkv__added_token {
    char *text;
    size_t len;
    int32_t id;
} arwkv__added_token;

struct arwkv_tokenizer {
    int32_t n_ids;              /* 1 + the largest id */
    uint32_t *bytes_off;        /* n_ids + 1 offsets into bytes: the decoded bytes of each id */
    char *bytes;
    uint8_t *id_flags;          /* ARWKV__ID_* */
    uint32_t *name_off;         /* the tokenizer.json spelling of vocabulary entries, in names */
    char *names;
    uint32_t *name_table;       /* open addressing: spelling -> id + 1 (0: empty slot) */
    uint32_t name_mask;
    arwkv__merge *merges;       /* open addressing, linear probing */
    uint64_t merge_mask;
    int merge_shift;
    int32_t byte_id[256];       /* the token of each single byte (-1: none; the byte is left out) */
    arwkv__added_token *added;  /* longest first */
    int n_added;
    uint8_t added_first[256];   /* bytes that start an added token */
    int nfc;                    /* the normalizer is NFC (else none) */
    int pre;                    /* the pre-tokenizer regex: ARWKV__PRE_* */
    int split_digits;           /* Digits(individual_digits) runs before the regex (SmolLM) */
    int32_t bos_id, eos_id, pad_id; /* -1: none (set by arwkv_tokenizer_from_parts) */
    int add_bos;                /* the model expects bos_id before a text */
    uint8_t *bmp;               /* arwkv__bmp_props */
    size_t max_token_bytes;
};
enum { ARWKV__ID_PRESENT = 1, ARWKV__ID_ADDED = 2, ARWKV__ID_SPECIAL = 4 };
enum { ARWKV__PRE_QWEN2 = 0, ARWKV__PRE_LLAMA3 = 1, ARWKV__PRE_GPT2 = 2 };

ARWKV_PRIVATE uint64_t arwkv__hash_bytes(const void *p, size_t n) { /* FNV-1a, then a final mix */
    const unsigned char *s = (const unsigned char *)p;
    uint64_t h = 0xcbf29ce484222325ull;
    for (size_t i = 0; i < n; i++) h = (h ^ s[i]) * 0x100000001b3ull;
    return h ^ (h >> 29);
}

ARWKV_PRIVATE const arwkv__merge *arwkv__merge_find(const arwkv_tokenizer *t, int32_t a, int32_t b) {
    uint64_t key = ((uint64_t)(uint32_t)a << 32) | (uint32_t)b;
    uint64_t h = (key * 0x9E3779B97F4A7C15ull) >> t->merge_shift;
    for (;;) {
        const arwkv__merge *m = &t->merges[h];
        if (m->pair == key) return m;
        if (m->pair == ARWKV__NO_PAIR) return NULL;
        h = (h + 1) & t->merge_mask;
    }
}

typedef struct arwkv__cached_piece {
    uint64_t hash;      /* 0: empty slot */
    uint32_t text, ids; /* offsets into cache_text and cache_ids */
    uint16_t len, n_ids;
} arwkv__cached_piece;

/* Scratch memory of one encode call. */
typedef struct arwkv__tok_work {
    int32_t *sym;          /* BPE: the tokens of the current piece */
    uint32_t *rank;        /* rank of the merge of sym[i] and its right neighbour (UINT32_MAX: none) */
    int32_t *merged;       /* ... and the token it makes */
    int32_t *prev, *next;  /* long pieces: neighbours in the list */
    uint64_t *heap_key;    /* long pieces: rank << 32 | position */
    int32_t *heap_id;
    size_t cap_sym;
    uint32_t *chars;       /* NFC scratch */
    size_t cap_chars;
    unsigned char *norm;   /* NFC output */
    size_t cap_norm;
    arwkv__cached_piece *cache; /* pieces seen before in this call: open addressing */
    size_t cache_mask, cache_used;
    unsigned char *cache_text;
    int32_t *cache_ids;
    size_t cache_text_len, cache_text_cap, cache_ids_len, cache_ids_cap;
    int failed;            /* out of memory */
} arwkv__tok_work;

ARWKV_PRIVATE void arwkv__tok_work_free(arwkv__tok_work *w) {
    arwkv__free(w->sym);
    arwkv__free(w->rank);
    arwkv__free(w->merged);
    arwkv__free(w->prev);
    arwkv__free(w->next);
    arwkv__free(w->heap_key);
    arwkv__free(w->heap_id);
    arwkv__free(w->chars);
    arwkv__free(w->norm);
    arwkv__free(w->cache);
    arwkv__free(w->cache_text);
    arwkv__free(w->cache_ids);
}

ARWKV_PRIVATE int arwkv__tok_work_reserve(arwkv__tok_work *w, size_t n) {
    if (n <= w->cap_sym) return 1;
    size_t cap = w->cap_sym ? w->cap_sym : 64;
    while (cap < n) cap *= 2;
#define ARWKV__GROW(field, type)                                                  \
    do {                                                                          \
        type *p_ = (type *)arwkv__realloc(w->field, cap * sizeof(type));          \
        if (!p_) return 0;                                                        \
        w->field = p_;                                                            \
    } while (0)
    ARWKV__GROW(sym, int32_t);
    ARWKV__GROW(rank, uint32_t);
    ARWKV__GROW(merged, int32_t);
    ARWKV__GROW(prev, int32_t);
    ARWKV__GROW(next, int32_t);
#undef ARWKV__GROW
    /* the heap of a long piece of n symbols holds at most 2n - 2 entries: n - 1 pairs at first,
       and each merge pops one and pushes at most two */
    uint64_t *keys = (uint64_t *)arwkv__realloc(w->heap_key, 2 * cap * sizeof(uint64_t));
    if (!keys) return 0;
    w->heap_key = keys;
    int32_t *ids = (int32_t *)arwkv__realloc(w->heap_id, 2 * cap * sizeof(int32_t));
    if (!ids) return 0;
    w->heap_id = ids;
    w->cap_sym = cap;
    return 1;
}

ARWKV_PRIVATE int arwkv__tokens_push(arwkv_tokens *t, int32_t id, uint8_t mask) {
    if (t->n == t->cap) {
        size_t cap = t->cap ? t->cap * 2 : 256;
        int32_t *ids = (int32_t *)arwkv__realloc(t->ids, cap * sizeof(int32_t));
        if (!ids) return 0;
        t->ids = ids;
        uint8_t *mask_ = (uint8_t *)arwkv__realloc(t->mask, cap);
        if (!mask_) return 0;
        t->mask = mask_;
        t->cap = cap;
    }
    t->ids[t->n] = id;
    t->mask[t->n] = mask;
    t->n++;
    return 1;
}

ARWKV_API void arwkv_tokens_free(arwkv_tokens *t) {
    if (!t) return;
    arwkv__free(t->ids);
    arwkv__free(t->mask);
    memset(t, 0, sizeof *t);
}

/* Look up the merge of sym[i] and sym[i + 1] into rank[i] / merged[i]. */
ARWKV_PRIVATE void arwkv__bpe_pair(const arwkv_tokenizer *t, arwkv__tok_work *w, size_t i, size_t right) {
    const arwkv__merge *m = arwkv__merge_find(t, w->sym[i], w->sym[right]);
    w->rank[i] = m ? m->rank : UINT32_MAX;
    w->merged[i] = m ? m->id : -1;
}

/* Short pieces (almost all): repeatedly merge the pair of lowest rank, the leftmost of equals. */
ARWKV_PRIVATE size_t arwkv__bpe_short(const arwkv_tokenizer *t, arwkv__tok_work *w, size_t n) {
    for (size_t i = 0; i + 1 < n; i++) arwkv__bpe_pair(t, w, i, i + 1);
    while (n > 1) {
        uint32_t best = UINT32_MAX;
        size_t k = 0;
        for (size_t i = 0; i + 1 < n; i++)
            if (w->rank[i] < best) {
                best = w->rank[i];
                k = i;
            }
        if (best == UINT32_MAX) break;
        w->sym[k] = w->merged[k];
        n--;
        memmove(w->sym + k + 1, w->sym + k + 2, (n - k - 1) * sizeof(int32_t));
        memmove(w->rank + k + 1, w->rank + k + 2, (n - k - 1) * sizeof(uint32_t));
        memmove(w->merged + k + 1, w->merged + k + 2, (n - k - 1) * sizeof(int32_t));
        if (k > 0) arwkv__bpe_pair(t, w, k - 1, k);
        if (k + 1 < n) arwkv__bpe_pair(t, w, k, k + 1);
    }
    return n;
}

/* Long pieces (a run of 10000 spaces is one piece): the same merges in the same order, found with
   a heap of (rank, position) over a linked list, so the cost is n log n instead of n^2. An entry
   whose pair has changed since it was pushed is skipped when it surfaces. */
ARWKV_PRIVATE void arwkv__heap_push(arwkv__tok_work *w, size_t *size, uint64_t key, int32_t id) {
    size_t i = (*size)++;
    while (i > 0) {
        size_t parent = (i - 1) / 2;
        if (w->heap_key[parent] <= key) break;
        w->heap_key[i] = w->heap_key[parent];
        w->heap_id[i] = w->heap_id[parent];
        i = parent;
    }
    w->heap_key[i] = key;
    w->heap_id[i] = id;
}

ARWKV_PRIVATE void arwkv__heap_pop(arwkv__tok_work *w, size_t *size) {
    uint64_t key = w->heap_key[--*size];
    int32_t id = w->heap_id[*size];
    size_t i = 0, n = *size;
    for (;;) {
        size_t child = 2 * i + 1;
        if (child >= n) break;
        if (child + 1 < n && w->heap_key[child + 1] < w->heap_key[child]) child++;
        if (key <= w->heap_key[child]) break;
        w->heap_key[i] = w->heap_key[child];
        w->heap_id[i] = w->heap_id[child];
        i = child;
    }
    w->heap_key[i] = key;
    w->heap_id[i] = id;
}

ARWKV_PRIVATE size_t arwkv__bpe_long(const arwkv_tokenizer *t, arwkv__tok_work *w, size_t n) {
    size_t heap = 0;
    for (size_t i = 0; i < n; i++) {
        w->prev[i] = (int32_t)i - 1;
        w->next[i] = i + 1 < n ? (int32_t)i + 1 : -1;
    }
    for (size_t i = 0; i + 1 < n; i++) {
        const arwkv__merge *m = arwkv__merge_find(t, w->sym[i], w->sym[i + 1]);
        if (m) arwkv__heap_push(w, &heap, ((uint64_t)m->rank << 32) | i, m->id);
    }
    while (heap > 0) {
        uint64_t key = w->heap_key[0];
        int32_t id = w->heap_id[0];
        arwkv__heap_pop(w, &heap);
        size_t pos = (size_t)(key & 0xffffffffu);
        int32_t right = w->next[pos];
        if (w->sym[pos] < 0 || right < 0) continue; /* removed, or last */
        const arwkv__merge *m = arwkv__merge_find(t, w->sym[pos], w->sym[right]);
        if (!m || m->id != id) continue; /* stale: the pair at pos has changed */
        w->sym[pos] = id;
        w->sym[right] = -1;
        w->next[pos] = w->next[right];
        if (w->next[right] >= 0) w->prev[w->next[right]] = (int32_t)pos;
        if (w->prev[pos] >= 0) {
            size_t p = (size_t)w->prev[pos];
            m = arwkv__merge_find(t, w->sym[p], id);
            if (m) arwkv__heap_push(w, &heap, ((uint64_t)m->rank << 32) | p, m->id);
        }
        if (w->next[pos] >= 0) {
            m = arwkv__merge_find(t, id, w->sym[w->next[pos]]);
            if (m) arwkv__heap_push(w, &heap, ((uint64_t)m->rank << 32) | pos, m->id);
        }
    }
    size_t k = 0;
    for (size_t i = 0; i < n; i++)
        if (w->sym[i] >= 0) w->sym[k++] = w->sym[i];
    return k;
}

/* ---- Encoding ----------------------------------------------------------------------------------
   Text repeats its words, so an encode call of more than a few kilobytes remembers the tokens of
   every piece of up to ARWKV__CACHE_PIECE bytes it has merged; a repeated piece costs one hash. */
#define ARWKV__CACHE_PIECE 48
#define ARWKV__CACHE_MIN_TEXT 4096
#define ARWKV__CACHE_MAX_SLOTS ((size_t)1 << 20)

ARWKV_PRIVATE uint64_t arwkv__hash_piece(const unsigned char *s, size_t n) {
    uint64_t h = (uint64_t)n * 0x9E3779B97F4A7C15ull, word;
    for (; n >= 8; s += 8, n -= 8) {
        memcpy(&word, s, 8);
        h = (h ^ word) * 0xbf58476d1ce4e5b9ull;
        h ^= h >> 31;
    }
    word = 0;
    memcpy(&word, s, n);
    h = (h ^ word) * 0x94d049bb133111ebull;
    h ^= h >> 29;
    return h | 1; /* never 0, the mark of an empty slot */
}

/* The cached tokens of s[0..n) (NULL if not there); *slot: where it is or would go. */
ARWKV_PRIVATE const int32_t *arwkv__cache_find(const arwkv__tok_work *w, uint64_t h, const unsigned char *s, size_t n,
                                               size_t *n_ids, size_t *slot) {
    for (size_t i = (size_t)h & w->cache_mask;; i = (i + 1) & w->cache_mask) {
        const arwkv__cached_piece *c = &w->cache[i];
        if (c->hash == 0) {
            *slot = i;
            return NULL;
        }
        if (c->hash == h && c->len == n && memcmp(w->cache_text + c->text, s, n) == 0) {
            *n_ids = c->n_ids;
            return w->cache_ids + c->ids;
        }
    }
}

/* Remember that s[0..n) is w->sym[0..k), in slot (from arwkv__cache_find); forgets nothing, and
   stops remembering when the table is full. Returns 0 if out of memory. */
ARWKV_PRIVATE int arwkv__cache_add(arwkv__tok_work *w, uint64_t h, const unsigned char *s, size_t n, size_t k, size_t slot) {
    if (2 * (w->cache_used + 1) > w->cache_mask + 1) { /* keep the load at most 1/2 */
        size_t size = 2 * (w->cache_mask + 1);
        if (size > ARWKV__CACHE_MAX_SLOTS) return 1;
        arwkv__cached_piece *t = (arwkv__cached_piece *)arwkv__calloc(size, sizeof *t);
        if (!t) return 0;
        for (size_t i = 0; i <= w->cache_mask; i++) {
            if (!w->cache[i].hash) continue;
            size_t j = (size_t)w->cache[i].hash & (size - 1);
            while (t[j].hash) j = (j + 1) & (size - 1);
            t[j] = w->cache[i];
        }
        arwkv__free(w->cache);
        w->cache = t;
        w->cache_mask = size - 1;
        size_t ignored;
        arwkv__cache_find(w, h, s, n, &ignored, &slot);
    }
    if (w->cache_text_len + n > w->cache_text_cap) {
        size_t cap = 2 * w->cache_text_cap + n;
        unsigned char *p = (unsigned char *)arwkv__realloc(w->cache_text, cap);
        if (!p) return 0;
        w->cache_text = p;
        w->cache_text_cap = cap;
    }
    if (w->cache_ids_len + k > w->cache_ids_cap) {
        size_t cap = 2 * w->cache_ids_cap + k;
        int32_t *p = (int32_t *)arwkv__realloc(w->cache_ids, cap * sizeof(int32_t));
        if (!p) return 0;
        w->cache_ids = p;
        w->cache_ids_cap = cap;
    }
    arwkv__cached_piece *c = &w->cache[slot];
    c->hash = h;
    c->text = (uint32_t)w->cache_text_len;
    c->ids = (uint32_t)w->cache_ids_len;
    c->len = (uint16_t)n;
    c->n_ids = (uint16_t)k;
    memcpy(w->cache_text + w->cache_text_len, s, n);
    memcpy(w->cache_ids + w->cache_ids_len, w->sym, k * sizeof(int32_t));
    w->cache_text_len += n;
    w->cache_ids_len += k;
    w->cache_used++;
    return 1;
}

/* Append the ids of one pre-token. */
ARWKV_PRIVATE void arwkv__encode_piece(const arwkv_tokenizer *t, arwkv__tok_work *w, const unsigned char *s, size_t n,
                                       arwkv_tokens *out) {
    if (n == 1) {
        if (t->byte_id[s[0]] >= 0 && !arwkv__tokens_push(out, t->byte_id[s[0]], 0)) w->failed = 1;
        return;
    }
    uint64_t h = 0;
    size_t slot = 0, k;
    int cacheable = w->cache && n <= ARWKV__CACHE_PIECE;
    if (cacheable) {
        h = arwkv__hash_piece(s, n);
        const int32_t *ids = arwkv__cache_find(w, h, s, n, &k, &slot);
        if (ids) {
            for (size_t i = 0; i < k; i++)
                if (!arwkv__tokens_push(out, ids[i], 0)) {
                    w->failed = 1;
                    return;
                }
            return;
        }
    }
    if (!arwkv__tok_work_reserve(w, n)) {
        w->failed = 1;
        return;
    }
    size_t m = 0; /* a byte without a token is left out, as tokenizers does (SmolLM2 lacks 21) */
    for (size_t i = 0; i < n; i++)
        if (t->byte_id[s[i]] >= 0) w->sym[m++] = t->byte_id[s[i]];
    k = m <= 64 ? arwkv__bpe_short(t, w, m) : arwkv__bpe_long(t, w, m);
    if (cacheable && !arwkv__cache_add(w, h, s, n, k, slot)) {
        w->failed = 1;
        return;
    }
    for (size_t i = 0; i < k; i++)
        if (!arwkv__tokens_push(out, w->sym[i], 0)) {
            w->failed = 1;
            return;
        }
}

/* Append the ids of text that holds no added token: normalize, pre-tokenize, BPE. */
ARWKV_PRIVATE void arwkv__encode_text(const arwkv_tokenizer *t, arwkv__tok_work *w, const unsigned char *s, size_t n,
                                      arwkv_tokens *out) {
    if (t->nfc && !arwkv__nfc_quick_check(t->bmp, s, n)) {
        if (w->cap_norm < 3 * n + 4) {
            unsigned char *p = (unsigned char *)arwkv__realloc(w->norm, 3 * n + 4);
            if (!p) {
                w->failed = 1;
                return;
            }
            w->norm = p;
            w->cap_norm = 3 * n + 4;
        }
        n = arwkv__nfc(s, n, &w->chars, &w->cap_chars, w->norm);
        if (n == SIZE_MAX) {
            w->failed = 1;
            return;
        }
        s = w->norm;
    }
    for (size_t i = 0; i < n && !w->failed;) {
        size_t end = n; /* the regex sees s[i..end): all of it, or the text up to the next digit */
        if (t->split_digits) {
            int c;
            size_t l = arwkv__class_at(t->bmp, s + i, n - i, &c);
            if (c == ARWKV__NUMBER) { /* Digits(individual_digits): each digit is a piece of its own */
                arwkv__encode_piece(t, w, s + i, l, out);
                i += l;
                continue;
            }
            for (end = i + l; end < n && (l = arwkv__class_at(t->bmp, s + end, n - end, &c), c != ARWKV__NUMBER);) end += l;
        }
        while (i < end && !w->failed) {
            size_t len = t->pre == ARWKV__PRE_GPT2     ? arwkv__pretoken_gpt2(t->bmp, s + i, end - i)
                       : t->pre == ARWKV__PRE_LLAMA3 ? arwkv__pretoken_digits(t->bmp, s + i, end - i, 3)
                                                     : arwkv__pretoken(t->bmp, s + i, end - i);
            arwkv__encode_piece(t, w, s + i, len, out);
            i += len;
        }
    }
}

/* The leftmost added token in s[*at..n), the longest of those that start there; NULL if none. */
ARWKV_PRIVATE const arwkv__added_token *arwkv__find_added(const arwkv_tokenizer *t, const unsigned char *s, size_t n,
                                                          size_t *at) {
    for (size_t i = *at; i < n; i++) {
        if (!t->added_first[s[i]]) continue;
        for (int k = 0; k < t->n_added; k++) { /* longest first */
            const arwkv__added_token *a = &t->added[k];
            if (a->len <= n - i && memcmp(s + i, a->text, a->len) == 0) {
                *at = i;
                return a;
            }
        }
    }
    return NULL;
}

ARWKV_API arwkv_result arwkv_tokenizer_encode(const arwkv_tokenizer *tok, const char *text, size_t len, int flags,
                                              arwkv_tokens *out) {
    if (!tok || !out || (!text && len)) return arwkv__fail(ARWKV_ERR_INVALID_ARGUMENT, "arwkv_tokenizer_encode: NULL argument");
    if (len > (size_t)INT32_MAX)
        return arwkv__fail(ARWKV_ERR_INVALID_ARGUMENT, "arwkv_tokenizer_encode: %zu bytes of text; encode at most 2 GiB at a time", len);
    const unsigned char *s = (const unsigned char *)text;
    size_t n0 = out->n, pos = 0;
    arwkv__tok_work w;
    memset(&w, 0, sizeof w);
    if (len >= ARWKV__CACHE_MIN_TEXT) {
        w.cache = (arwkv__cached_piece *)arwkv__calloc(1024, sizeof *w.cache);
        w.cache_mask = w.cache ? 1023 : 0; /* without it, we merely go slower */
    }
    while (pos < len && !w.failed) {
        size_t at = pos;
        const arwkv__added_token *a =
            (flags & ARWKV_TOKENIZE_SPECIAL) && tok->n_added ? arwkv__find_added(tok, s, len, &at) : NULL;
        arwkv__encode_text(tok, &w, s + pos, (a ? at : len) - pos, out);
        if (a && !w.failed && !arwkv__tokens_push(out, a->id, 0)) w.failed = 1;
        pos = a ? at + a->len : len;
    }
    arwkv__tok_work_free(&w);
    if (w.failed) {
        out->n = n0;
        return arwkv__fail(ARWKV_ERR_OUT_OF_MEMORY, "arwkv_tokenizer_encode: out of memory (%zu bytes of text)", len);
    }
    return ARWKV_OK;
}

/* ---- Decoding ---------------------------------------------------------------------------------- */

ARWKV_API int32_t arwkv_tokenizer_vocab_size(const arwkv_tokenizer *tok) { return tok ? tok->n_ids : 0; }

ARWKV_API const char *arwkv_tokenizer_token_bytes(const arwkv_tokenizer *tok, int32_t id, size_t *len) {
    if (!tok || id < 0 || id >= tok->n_ids || !(tok->id_flags[id] & ARWKV__ID_PRESENT)) {
        if (len) *len = 0;
        return NULL;
    }
    if (len) *len = tok->bytes_off[id + 1] - tok->bytes_off[id];
    return tok->bytes + tok->bytes_off[id];
}

ARWKV_API int arwkv_tokenizer_is_special(const arwkv_tokenizer *tok, int32_t id) {
    return tok && id >= 0 && id < tok->n_ids && (tok->id_flags[id] & ARWKV__ID_SPECIAL) != 0;
}

ARWKV_API arwkv_result arwkv_tokenizer_decode(const arwkv_tokenizer *tok, const int32_t *ids, size_t n, char *buf,
                                              size_t cap, size_t *len) {
    size_t total = 0;
    if (len) *len = 0;
    if (!tok || (!ids && n)) return arwkv__fail(ARWKV_ERR_INVALID_ARGUMENT, "arwkv_tokenizer_decode: NULL argument");
    for (size_t i = 0; i < n; i++) {
        size_t k;
        const char *b = arwkv_tokenizer_token_bytes(tok, ids[i], &k);
        if (!b)
            return arwkv__fail(ARWKV_ERR_INVALID_ARGUMENT, "arwkv_tokenizer_decode: ids[%zu] = %ld is not a token (ids are 0..%ld)",
                               i, (long)ids[i], (long)tok->n_ids - 1);
        if (total < cap) memcpy(buf + total, b, k < cap - total ? k : cap - total);
        total += k;
    }
    if (cap > 0) buf[total < cap ? total : cap - 1] = 0;
    if (len) *len = total;
    return ARWKV_OK;
}

/* Length of the start of a UTF-8 character at s[0..n) that more bytes could still complete, 0 if
   s does not start one (n < the character's length). */
ARWKV_PRIVATE size_t arwkv__utf8_partial(const unsigned char *s, size_t n) {
    unsigned c = s[0];
    size_t need = c >= 0xc2 && c <= 0xdf ? 2 : c >= 0xe0 && c <= 0xef ? 3 : c >= 0xf0 && c <= 0xf4 ? 4 : 0;
    if (need == 0 || n >= need) return 0;
    for (size_t i = 1; i < n; i++) {
        unsigned lo = 0x80, hi = 0xbf;
        if (i == 1) { /* the second byte excludes overlong forms, surrogates and > U+10FFFF */
            if (c == 0xe0) lo = 0xa0;
            else if (c == 0xed) hi = 0x9f;
            else if (c == 0xf0) lo = 0x90;
            else if (c == 0xf4) hi = 0x8f;
        }
        if (s[i] < lo || s[i] > hi) return 0;
    }
    return n;
}

struct arwkv_stream_decoder {
    const arwkv_tokenizer *tok;
    unsigned char held[4]; /* the start of a character the next token may complete */
    size_t n_held;
    char *out;
    size_t cap;
};

ARWKV_API arwkv_result arwkv_stream_decoder_create(const arwkv_tokenizer *tok, arwkv_stream_decoder **out) {
    *out = NULL;
    if (!tok) return arwkv__fail(ARWKV_ERR_INVALID_ARGUMENT, "arwkv_stream_decoder_create: NULL tokenizer");
    arwkv_stream_decoder *d = (arwkv_stream_decoder *)arwkv__calloc(1, sizeof *d);
    if (d) {
        d->cap = tok->max_token_bytes + sizeof d->held;
        d->out = (char *)arwkv__malloc(d->cap);
    }
    if (!d || !d->out) {
        if (d) arwkv__free(d);
        return arwkv__fail(ARWKV_ERR_OUT_OF_MEMORY, "arwkv_stream_decoder_create: out of memory");
    }
    d->tok = tok;
    *out = d;
    return ARWKV_OK;
}

ARWKV_API arwkv_result arwkv_stream_decoder_put(arwkv_stream_decoder *d, int32_t id, const char **text, size_t *len) {
    *text = d ? d->out : "";
    *len = 0;
    size_t k;
    const char *b = d ? arwkv_tokenizer_token_bytes(d->tok, id, &k) : NULL;
    if (!b) return arwkv__fail(ARWKV_ERR_INVALID_ARGUMENT, "arwkv_stream_decoder_put: %ld is not a token", (long)id);
    memcpy(d->out, d->held, d->n_held);
    memcpy(d->out + d->n_held, b, k);
    size_t n = d->n_held + k, cut = n;
    /* hold back the last character if it is incomplete: look at most 3 bytes back for its start */
    for (size_t i = n; i > 0 && n - i < 3; i--) {
        unsigned char c = (unsigned char)d->out[i - 1];
        if (c >= 0x80 && c < 0xc0) continue; /* continuation byte: the start is further back */
        if (arwkv__utf8_partial((const unsigned char *)d->out + i - 1, n - i + 1)) cut = i - 1;
        break;
    }
    d->n_held = n - cut;
    memcpy(d->held, d->out + cut, d->n_held);
    *len = cut;
    return ARWKV_OK;
}

ARWKV_API void arwkv_stream_decoder_flush(arwkv_stream_decoder *d, const char **text, size_t *len) {
    *text = d ? d->out : "";
    *len = 0;
    if (!d) return;
    memcpy(d->out, d->held, d->n_held);
    *len = d->n_held;
    d->n_held = 0;
}

ARWKV_API void arwkv_stream_decoder_free(arwkv_stream_decoder *d) {
    if (!d) return;
    arwkv__free(d->out);
    arwkv__free(d);
}

/* ---- Loading tokenizer.json -------------------------------------------------------------------- */

/* The pre-tokenizer regexes implemented, as tokenizer.json writes them: Qwen2's, Llama-3's (Qwen's
   with up to three digits a piece) and GPT-2's (also what ByteLevel's use_regex means). */
#define ARWKV__QWEN_PATTERN                                                                             \
    "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|" \
    "\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+"
#define ARWKV__LLAMA3_PATTERN                                                                                \
    "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|" \
    "\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+"
#define ARWKV__GPT2_PATTERN "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)|\\s+"

/* The byte-level alphabet: the character that stands for byte b, and back (-1: not in it). */
ARWKV_PRIVATE uint32_t arwkv__byte_char(int b) {
    int printable = (b >= 0x21 && b <= 0x7e) || (b >= 0xa1 && b <= 0xac) || (b >= 0xae && b <= 0xff);
    if (printable) return (uint32_t)b;
    int k = 0; /* the others take U+0100, U+0101, ... in byte order */
    for (int c = 0; c < b; c++) k += !((c >= 0x21 && c <= 0x7e) || (c >= 0xa1 && c <= 0xac) || (c >= 0xae && c <= 0xff));
    return 256u + (uint32_t)k;
}

/* The bytes a tokenizer.json spelling stands for, written to out (room: n bytes); returns their
   count. As tokenizers' ByteLevel decoder does, a spelling with a character outside the alphabet
   (possible for added tokens) stands for its own UTF-8. */
ARWKV_PRIVATE size_t arwkv__byte_level_decode(const int16_t *char_byte, const char *s, size_t n, char *out) {
    size_t k = 0;
    for (size_t i = 0; i < n;) {
        uint32_t cp;
        i += arwkv__utf8_next((const unsigned char *)s + i, n - i, &cp);
        if (cp >= 512 || char_byte[cp] < 0) {
            memcpy(out, s, n);
            return n;
        }
        out[k++] = (char)char_byte[cp];
    }
    return k;
}

ARWKV_PRIVATE int32_t arwkv__name_find(const arwkv_tokenizer *t, const char *s, size_t n) {
    for (uint32_t i = (uint32_t)arwkv__hash_bytes(s, n) & t->name_mask;; i = (i + 1) & t->name_mask) {
        uint32_t v = t->name_table[i];
        if (!v) return -1;
        uint32_t a = t->name_off[v - 1], b = t->name_off[v];
        if (b - a == n && memcmp(t->names + a, s, n) == 0) return (int32_t)v - 1;
    }
}

ARWKV_API int32_t arwkv_tokenizer_token_id(const arwkv_tokenizer *tok, const char *token) {
    if (!tok || !token) return -1;
    size_t n = strlen(token);
    for (int k = 0; k < tok->n_added; k++)
        if (tok->added[k].len == n && memcmp(tok->added[k].text, token, n) == 0) return tok->added[k].id;
    return arwkv__name_find(tok, token, n);
}

ARWKV_API void arwkv_tokenizer_free(arwkv_tokenizer *t) {
    if (!t) return;
    arwkv__free(t->bytes_off);
    arwkv__free(t->bytes);
    arwkv__free(t->id_flags);
    arwkv__free(t->name_off);
    arwkv__free(t->names);
    arwkv__free(t->name_table);
    arwkv__free(t->merges);
    for (int k = 0; k < t->n_added; k++) arwkv__free(t->added[k].text);
    arwkv__free(t->added);
    arwkv__free(t->bmp);
    arwkv__free(t);
}

/* obj.key as a string: "" when absent or null, NULL when it is not a string. */
ARWKV_PRIVATE const char *arwkv__json_get_str(const arwkv__json *j, uint32_t obj, const char *key) {
    uint32_t v = arwkv__json_get(j, obj, key);
    int type = arwkv__json_type(j, v);
    if (type < 0 || type == ARWKV__JSON_NULL) return "";
    return arwkv__json_str(j, v);
}

/* obj.key is absent, null or false (a flag we do not implement is off). */
ARWKV_PRIVATE int arwkv__json_off(const arwkv__json *j, uint32_t obj, const char *key) {
    int type = arwkv__json_type(j, arwkv__json_get(j, obj, key));
    return type < 0 || type == ARWKV__JSON_NULL || type == ARWKV__JSON_FALSE;
}

/* The pre-tokenizer: a Sequence (or a single one) of
     Digits(individual_digits: true)   optional, first: SmolLM's digit split
     Split(REGEX, Isolated)            optional: REGEX one of Qwen2's, Llama-3's, GPT-2's
     ByteLevel(add_prefix_space: false, use_regex)   last; use_regex (true when absent, as in
                                       tokenizers) means GPT-2's regex, so it excludes a Split
   which is what the Qwen2, Llama-3, GPT-2 and SmolLM families write. trim_offsets only moves
   offsets, which we do not report. Anything else is refused by name. */
ARWKV_PRIVATE arwkv_result arwkv__tok_check_pre(const arwkv__json *j, const char *name, int *pre, int *split_digits) {
    uint32_t node = arwkv__json_get(j, 0, "pre_tokenizer");
    const char *type = arwkv__json_get_str(j, node, "type");
    if (arwkv__json_type(j, node) != ARWKV__JSON_OBJECT || !type || !*type)
        return arwkv__fail(ARWKV_ERR_UNSUPPORTED, "%s: pre_tokenizer must be an object with a type (a byte-level BPE needs one)", name);
    int sequence = strcmp(type, "Sequence") == 0;
    uint32_t list = sequence ? arwkv__json_get(j, node, "pretokenizers") : ARWKV__JSON_NONE;
    if (sequence && (arwkv__json_type(j, list) != ARWKV__JSON_ARRAY || arwkv__json_count(j, list) == 0))
        return arwkv__fail(ARWKV_ERR_FORMAT, "%s: pre_tokenizer.pretokenizers must be a non-empty array", name);
    int regex = -1, byte_level = 0;
    *split_digits = 0;
    uint32_t k = 0;
    for (uint32_t c = sequence ? arwkv__json_first(j, list) : node; c != ARWKV__JSON_NONE; c = sequence ? arwkv__json_next(j, c) : ARWKV__JSON_NONE, k++) {
        char at[64];
        if (sequence) snprintf(at, sizeof at, "pre_tokenizer.pretokenizers[%u]", k);
        else snprintf(at, sizeof at, "pre_tokenizer");
        type = arwkv__json_get_str(j, c, "type");
        if (!type) type = "?";
        if (byte_level)
            return arwkv__fail(ARWKV_ERR_UNSUPPORTED, "%s: %s (\"%s\") comes after ByteLevel; only ByteLevel last is supported", name, at, type);
        if (strcmp(type, "Digits") == 0) {
            if (k != 0 || arwkv__json_bool(j, arwkv__json_get(j, c, "individual_digits")) != 1)
                return arwkv__fail(ARWKV_ERR_UNSUPPORTED,
                                   "%s: %s: only Digits with individual_digits true, first in the sequence, is supported", name, at);
            *split_digits = 1;
        } else if (strcmp(type, "Split") == 0) {
            const char *pattern = arwkv__json_get_str(j, arwkv__json_get(j, c, "pattern"), "Regex");
            const char *behavior = arwkv__json_get_str(j, c, "behavior");
            int which = !pattern ? -1 : !strcmp(pattern, ARWKV__QWEN_PATTERN) ? ARWKV__PRE_QWEN2
                      : !strcmp(pattern, ARWKV__LLAMA3_PATTERN)               ? ARWKV__PRE_LLAMA3
                      : !strcmp(pattern, ARWKV__GPT2_PATTERN)                 ? ARWKV__PRE_GPT2
                                                                              : -1;
            if (which < 0)
                return arwkv__fail(ARWKV_ERR_UNSUPPORTED,
                                   "%s: %s.pattern.Regex is not one of the regexes implemented (those of Qwen2, Llama-3 and GPT-2)", name, at);
            if (!behavior || strcmp(behavior, "Isolated") != 0 || !arwkv__json_off(j, c, "invert"))
                return arwkv__fail(ARWKV_ERR_UNSUPPORTED, "%s: %s: only behavior \"Isolated\" with invert false is supported", name, at);
            if (regex >= 0) return arwkv__fail(ARWKV_ERR_UNSUPPORTED, "%s: %s: a second Split is not supported", name, at);
            regex = which;
        } else if (strcmp(type, "ByteLevel") == 0) {
            if (!arwkv__json_off(j, c, "add_prefix_space"))
                return arwkv__fail(ARWKV_ERR_UNSUPPORTED, "%s: %s: ByteLevel with add_prefix_space true is not supported", name, at);
            uint32_t use_regex = arwkv__json_get(j, c, "use_regex");
            if (use_regex == ARWKV__JSON_NONE || arwkv__json_bool(j, use_regex) == 1) {
                if (regex >= 0)
                    return arwkv__fail(ARWKV_ERR_UNSUPPORTED,
                                       "%s: %s: ByteLevel with use_regex after a Split would split twice; not supported", name, at);
                regex = ARWKV__PRE_GPT2;
            }
            byte_level = 1;
        } else {
            return arwkv__fail(ARWKV_ERR_UNSUPPORTED,
                               "%s: %s.type \"%s\" is not supported (only Digits, Split and ByteLevel, as GPT-2, Llama-3, Qwen2 and SmolLM use)",
                               name, at, type);
        }
    }
    if (!byte_level)
        return arwkv__fail(ARWKV_ERR_UNSUPPORTED, "%s: pre_tokenizer has no ByteLevel step; only byte-level BPE is supported", name);
    if (regex < 0)
        return arwkv__fail(ARWKV_ERR_UNSUPPORTED,
                           "%s: pre_tokenizer splits with no regex (ByteLevel use_regex false and no Split); not supported", name);
    *pre = regex;
    return ARWKV_OK;
}

/* The parts of tokenizer.json other than the model: each must be what the supported families use. */
ARWKV_PRIVATE arwkv_result arwkv__tok_check_pipeline(const arwkv__json *j, const char *name, int *nfc, int *pre, int *split_digits,
                                                     char *bos, size_t bos_cap) {
    const char *type;
    uint32_t norm = arwkv__json_get(j, 0, "normalizer");
    *nfc = 0;
    if (arwkv__json_type(j, norm) == ARWKV__JSON_OBJECT) {
        type = arwkv__json_get_str(j, norm, "type");
        uint32_t list = arwkv__json_get(j, norm, "normalizers");
        if (type && strcmp(type, "Sequence") == 0 && arwkv__json_type(j, list) == ARWKV__JSON_ARRAY) {
            uint32_t i = 0;
            for (uint32_t c = arwkv__json_first(j, list); c != ARWKV__JSON_NONE; c = arwkv__json_next(j, c), i++) {
                const char *t = arwkv__json_get_str(j, c, "type");
                if (!t || strcmp(t, "NFC") != 0)
                    return arwkv__fail(ARWKV_ERR_UNSUPPORTED, "%s: normalizer.normalizers[%u].type \"%s\" is not supported (only NFC)",
                                       name, i, t ? t : "?");
                *nfc = 1;
            }
        } else if (type && strcmp(type, "NFC") == 0) {
            *nfc = 1;
        } else {
            return arwkv__fail(ARWKV_ERR_UNSUPPORTED, "%s: normalizer.type \"%s\" is not supported (only NFC or none)", name,
                               type ? type : "?");
        }
    } else if (norm != ARWKV__JSON_NONE && arwkv__json_type(j, norm) != ARWKV__JSON_NULL) {
        return arwkv__fail(ARWKV_ERR_FORMAT, "%s: normalizer must be an object or null", name);
    }

    ARWKV__TRY(arwkv__tok_check_pre(j, name, pre, split_digits));
    type = arwkv__json_get_str(j, arwkv__json_get(j, 0, "decoder"), "type");
    if (!type || strcmp(type, "ByteLevel") != 0)
        return arwkv__fail(ARWKV_ERR_UNSUPPORTED, "%s: decoder.type \"%s\" is not supported (only ByteLevel)", name,
                           type ? type : "?");
    /* post_processor: ByteLevel only adjusts offsets; Llama-3's TemplateProcessing "BOS $A" puts a
       beginning-of-text token before every text, which we record (arwkv_tokenizer_bos) rather than
       add: encoding adds nothing */
    uint32_t post = arwkv__json_get(j, 0, "post_processor");
    *bos = 0;
    if (post != ARWKV__JSON_NONE && arwkv__json_type(j, post) != ARWKV__JSON_NULL) {
        type = arwkv__json_get_str(j, post, "type");
        int sequence = type && strcmp(type, "Sequence") == 0;
        uint32_t list = sequence ? arwkv__json_get(j, post, "processors") : ARWKV__JSON_NONE;
        for (uint32_t c = sequence ? arwkv__json_first(j, list) : post; c != ARWKV__JSON_NONE; c = sequence ? arwkv__json_next(j, c) : ARWKV__JSON_NONE) {
            type = arwkv__json_get_str(j, c, "type");
            if (type && strcmp(type, "ByteLevel") == 0) continue;
            uint32_t single = arwkv__json_get(j, c, "single"), first = arwkv__json_first(j, single);
            uint32_t second = arwkv__json_next(j, first);
            const char *special = arwkv__json_get_str(j, arwkv__json_get(j, first, "SpecialToken"), "id");
            const char *seq = arwkv__json_get_str(j, arwkv__json_get(j, second, "Sequence"), "id");
            if (type && strcmp(type, "TemplateProcessing") == 0 && arwkv__json_count(j, single) == 2 && special && *special && seq &&
                strcmp(seq, "A") == 0 && !*bos) {
                snprintf(bos, bos_cap, "%s", special);
                continue;
            }
            return arwkv__fail(ARWKV_ERR_UNSUPPORTED,
                               "%s: post_processor%s.type \"%s\" is not supported (only ByteLevel, or TemplateProcessing of one special "
                               "token and $A)", name, sequence ? ".processors[]" : "", type ? type : "?");
        }
    }
    if (!arwkv__json_off(j, 0, "truncation") || !arwkv__json_off(j, 0, "padding"))
        return arwkv__fail(ARWKV_ERR_UNSUPPORTED, "%s: truncation and padding must be null", name);
    return ARWKV_OK;
}

ARWKV_PRIVATE arwkv_result arwkv__tok_check_model(const arwkv__json *j, uint32_t model, const char *name) {
    const char *type = arwkv__json_get_str(j, model, "type");
    if (arwkv__json_type(j, model) != ARWKV__JSON_OBJECT) return arwkv__fail(ARWKV_ERR_FORMAT, "%s: no \"model\" object", name);
    if (!type || (*type && strcmp(type, "BPE") != 0))
        return arwkv__fail(ARWKV_ERR_UNSUPPORTED, "%s: model.type \"%s\" is not supported (only BPE)", name, type ? type : "?");
    static const char *const empty_strings[2] = {"continuing_subword_prefix", "end_of_word_suffix"};
    for (int i = 0; i < 2; i++) {
        const char *v = arwkv__json_get_str(j, model, empty_strings[i]);
        if (!v || *v) return arwkv__fail(ARWKV_ERR_UNSUPPORTED, "%s: model.%s must be empty or null", name, empty_strings[i]);
    }
    uint32_t dropout = arwkv__json_get(j, model, "dropout");
    if (dropout != ARWKV__JSON_NONE && arwkv__json_type(j, dropout) != ARWKV__JSON_NULL)
        return arwkv__fail(ARWKV_ERR_UNSUPPORTED, "%s: model.dropout must be null (BPE dropout is not supported)", name);
    if (!arwkv__json_off(j, model, "ignore_merges"))
        return arwkv__fail(ARWKV_ERR_UNSUPPORTED, "%s: model.ignore_merges = true is not supported", name);
    if (arwkv__json_type(j, arwkv__json_get(j, model, "vocab")) != ARWKV__JSON_OBJECT)
        return arwkv__fail(ARWKV_ERR_FORMAT, "%s: model.vocab must be an object (token -> id)", name);
    if (arwkv__json_type(j, arwkv__json_get(j, model, "merges")) != ARWKV__JSON_ARRAY)
        return arwkv__fail(ARWKV_ERR_FORMAT, "%s: model.merges must be an array", name);
    /* unk_token, byte_fallback and fuse_unk only matter for characters without a token; in a
       byte-level vocabulary every byte has one (checked below) */
    return ARWKV_OK;
}

/* A non-negative integer id below 2^31 - 1, else -1. */
ARWKV_PRIVATE int32_t arwkv__json_id(const arwkv__json *j, uint32_t v) {
    if (!arwkv__json_is_number(j, v)) return -1;
    double d = arwkv__json_num(j, v);
    return d >= 0 && d < (double)INT32_MAX && d == (double)(int32_t)d ? (int32_t)d : -1;
}

ARWKV_PRIVATE arwkv_result arwkv__tok_build(arwkv_tokenizer *t, const arwkv__json *j, const char *name) {
    uint32_t model = arwkv__json_get(j, 0, "model");
    ARWKV__TRY(arwkv__tok_check_model(j, model, name));
    char bos[256];
    ARWKV__TRY(arwkv__tok_check_pipeline(j, name, &t->nfc, &t->pre, &t->split_digits, bos, sizeof bos));
    t->bos_id = t->eos_id = t->pad_id = -1;
    uint32_t vocab = arwkv__json_get(j, model, "vocab"), merges = arwkv__json_get(j, model, "merges");
    uint32_t added = arwkv__json_get(j, 0, "added_tokens");
    if (added != ARWKV__JSON_NONE && arwkv__json_type(j, added) != ARWKV__JSON_ARRAY && arwkv__json_type(j, added) != ARWKV__JSON_NULL)
        return arwkv__fail(ARWKV_ERR_FORMAT, "%s: added_tokens must be an array", name);

    /* ids: 1 + the largest. Every table below is sized by the largest id, so an id far beyond the
       number of tokens (a typo, or a hostile file) would cost gigabytes: ids may leave gaps, but
       only up to twice the number of tokens plus 65536 */
    int64_t n_ids = 0;
    size_t name_bytes = 0, added_bytes = 0;
    uint32_t i = 0;
    int64_t id_limit = 2 * ((int64_t)arwkv__json_count(j, vocab) + (int64_t)arwkv__json_count(j, added)) + 65536;
    for (uint32_t c = arwkv__json_first(j, vocab); c != ARWKV__JSON_NONE; c = arwkv__json_next(j, c), i++) {
        int32_t id = arwkv__json_id(j, c);
        if (id < 0)
            return arwkv__fail(ARWKV_ERR_FORMAT, "%s: model.vocab[\"%.100s\"] is not a token id (a non-negative integer)", name,
                               arwkv__json_key(j, c));
        if (id >= id_limit)
            return arwkv__fail(ARWKV_ERR_FORMAT, "%s: model.vocab[\"%.100s\"] has id %ld, far beyond the %u tokens of the vocabulary", name,
                               arwkv__json_key(j, c), (long)id, arwkv__json_count(j, vocab));
        if (id >= n_ids) n_ids = (int64_t)id + 1;
        name_bytes += arwkv__json_key_len(j, c);
    }
    i = 0;
    for (uint32_t c = arwkv__json_first(j, added); c != ARWKV__JSON_NONE; c = arwkv__json_next(j, c), i++) {
        int32_t id = arwkv__json_id(j, arwkv__json_get(j, c, "id"));
        const char *content = arwkv__json_get_str(j, c, "content");
        if (id < 0) return arwkv__fail(ARWKV_ERR_FORMAT, "%s: added_tokens[%u].id is not a token id", name, i);
        if (!content || !*content) return arwkv__fail(ARWKV_ERR_FORMAT, "%s: added_tokens[%u].content must be a non-empty string", name, i);
        if (id >= id_limit)
            return arwkv__fail(ARWKV_ERR_FORMAT, "%s: added_tokens[%u] (\"%.100s\") has id %ld, far beyond the %u tokens of the vocabulary",
                               name, i, content, (long)id, arwkv__json_count(j, vocab));
        static const char *const flags[4] = {"lstrip", "rstrip", "single_word", "normalized"};
        for (int f = 0; f < 4; f++)
            if (!arwkv__json_off(j, c, flags[f]))
                return arwkv__fail(ARWKV_ERR_UNSUPPORTED, "%s: added_tokens[%u] (\"%.100s\"): %s = true is not supported", name, i,
                                   content, flags[f]);
        if (id >= n_ids) n_ids = (int64_t)id + 1;
        added_bytes += arwkv__json_str_len(j, arwkv__json_get(j, c, "content"));
    }
    if (name_bytes + added_bytes >= UINT32_MAX) return arwkv__fail(ARWKV_ERR_FORMAT, "%s: vocabulary larger than 4 GB", name);
    t->n_ids = (int32_t)n_ids;
    t->id_flags = (uint8_t *)arwkv__calloc((size_t)n_ids, 1);
    t->name_off = (uint32_t *)arwkv__calloc((size_t)n_ids + 1, sizeof(uint32_t));
    t->bytes_off = (uint32_t *)arwkv__calloc((size_t)n_ids + 1, sizeof(uint32_t));
    t->names = (char *)arwkv__malloc(name_bytes);
    t->bytes = (char *)arwkv__malloc(name_bytes + added_bytes);
    uint32_t *key_of = (uint32_t *)arwkv__calloc((size_t)n_ids, sizeof(uint32_t)); /* JSON node of each id's name */
    uint32_t table_size = 16;
    while (table_size < 2 * n_ids) table_size *= 2;
    t->name_table = (uint32_t *)arwkv__calloc(table_size, sizeof(uint32_t));
    t->name_mask = table_size - 1;
    if (!t->id_flags || !t->name_off || !t->bytes_off || !t->names || !t->bytes || !key_of || !t->name_table) {
        arwkv__free(key_of);
        return arwkv__fail(ARWKV_ERR_OUT_OF_MEMORY, "%s: out of memory", name);
    }

    /* vocabulary names, in id order */
    for (uint32_t c = arwkv__json_first(j, vocab); c != ARWKV__JSON_NONE; c = arwkv__json_next(j, c)) {
        int32_t id = arwkv__json_id(j, c);
        if (t->id_flags[id]) {
            arwkv_result r = arwkv__fail(ARWKV_ERR_FORMAT, "%s: model.vocab: id %ld is given to \"%.100s\" and to \"%.100s\"", name,
                                         (long)id, arwkv__json_key(j, key_of[id]), arwkv__json_key(j, c));
            arwkv__free(key_of);
            return r;
        }
        t->id_flags[id] = ARWKV__ID_PRESENT;
        key_of[id] = c;
    }
    uint32_t off = 0;
    for (int32_t id = 0; id < t->n_ids; id++) {
        t->name_off[id] = off;
        if (t->id_flags[id]) {
            uint32_t len = arwkv__json_key_len(j, key_of[id]);
            memcpy(t->names + off, arwkv__json_key(j, key_of[id]), len);
            off += len;
        }
    }
    t->name_off[t->n_ids] = off;
    arwkv__free(key_of);
    for (int32_t id = 0; id < t->n_ids; id++) {
        if (!t->id_flags[id]) continue;
        const char *s = t->names + t->name_off[id];
        size_t len = t->name_off[id + 1] - t->name_off[id];
        if (arwkv__name_find(t, s, len) >= 0)
            return arwkv__fail(ARWKV_ERR_FORMAT, "%s: model.vocab: \"%.*s\" appears twice", name, (int)(len > 100 ? 100 : len), s);
        uint32_t h = (uint32_t)arwkv__hash_bytes(s, len) & t->name_mask;
        while (t->name_table[h]) h = (h + 1) & t->name_mask;
        t->name_table[h] = (uint32_t)id + 1;
    }

    /* bytes of every token: the byte-level alphabet undone */
    int16_t char_byte[512];
    for (int c = 0; c < 512; c++) char_byte[c] = -1;
    for (int b = 0; b < 256; b++) {
        char spelling[4];
        uint32_t cp = arwkv__byte_char(b);
        char_byte[cp] = (int16_t)b;
        t->byte_id[b] = arwkv__name_find(t, spelling, (size_t)arwkv__utf8_encode(cp, spelling));
        /* a byte without a token: tokenizers leaves it out of the ids, unless model.unk_token
           names a token to stand for it (not implemented) */
        const char *unk = arwkv__json_get_str(j, model, "unk_token");
        if (t->byte_id[b] < 0 && (!unk || *unk))
            return arwkv__fail(ARWKV_ERR_UNSUPPORTED,
                               "%s: model.vocab has no token for the byte 0x%02x (\"%.*s\") and model.unk_token is set; unknown "
                               "tokens are not supported", name, b, arwkv__utf8_encode(cp, spelling), spelling);
    }
    /* added tokens override what the vocabulary says about their id, as in tokenizers */
    int *added_index = (int *)arwkv__calloc((size_t)n_ids, sizeof(int)); /* 1 + index in t->added */
    if (!added_index) return arwkv__fail(ARWKV_ERR_OUT_OF_MEMORY, "%s: out of memory", name);
    t->n_added = (int)arwkv__json_count(j, added);
    t->added = (arwkv__added_token *)arwkv__calloc((size_t)t->n_added + 1, sizeof(arwkv__added_token));
    if (!t->added) {
        t->n_added = 0;
        arwkv__free(added_index);
        return arwkv__fail(ARWKV_ERR_OUT_OF_MEMORY, "%s: out of memory", name);
    }
    int k = 0;
    for (uint32_t c = arwkv__json_first(j, added); c != ARWKV__JSON_NONE; c = arwkv__json_next(j, c), k++) {
        uint32_t content = arwkv__json_get(j, c, "content");
        arwkv__added_token *a = &t->added[k];
        a->id = arwkv__json_id(j, arwkv__json_get(j, c, "id"));
        a->len = arwkv__json_str_len(j, content);
        a->text = arwkv__strndup(arwkv__json_str(j, content), a->len);
        if (!a->text) {
            arwkv__free(added_index);
            return arwkv__fail(ARWKV_ERR_OUT_OF_MEMORY, "%s: out of memory", name);
        }
        for (int m = 0; m < k; m++)
            if (t->added[m].len == a->len && memcmp(t->added[m].text, a->text, a->len) == 0) {
                arwkv__free(added_index);
                return arwkv__fail(ARWKV_ERR_FORMAT, "%s: added_tokens[%d] repeats \"%.100s\"", name, k, a->text);
            }
        if (added_index[a->id]) {
            arwkv__free(added_index);
            return arwkv__fail(ARWKV_ERR_FORMAT, "%s: added_tokens[%d]: id %ld is already taken by another added token", name, k,
                               (long)a->id);
        }
        added_index[a->id] = k + 1;
        t->id_flags[a->id] |= ARWKV__ID_PRESENT | ARWKV__ID_ADDED;
        if (arwkv__json_bool(j, arwkv__json_get(j, c, "special")) == 1) t->id_flags[a->id] |= ARWKV__ID_SPECIAL;
        t->added_first[(unsigned char)a->text[0]] = 1;
    }
    off = 0;
    for (int32_t id = 0; id < t->n_ids; id++) {
        t->bytes_off[id] = off;
        const arwkv__added_token *a = added_index[id] ? &t->added[added_index[id] - 1] : NULL;
        const char *s = a ? a->text : t->names + t->name_off[id];
        size_t len = a ? a->len : t->name_off[id + 1] - t->name_off[id];
        off += (uint32_t)arwkv__byte_level_decode(char_byte, s, len, t->bytes + off);
        if (off - t->bytes_off[id] > t->max_token_bytes) t->max_token_bytes = off - t->bytes_off[id];
    }
    t->bytes_off[t->n_ids] = off;
    arwkv__free(added_index);
    /* longest first, so that the first match at a position is the longest */
    for (int a = 1; a < t->n_added; a++)
        for (int b = a; b > 0 && t->added[b - 1].len < t->added[b].len; b--) {
            arwkv__added_token tmp = t->added[b];
            t->added[b] = t->added[b - 1];
            t->added[b - 1] = tmp;
        }

    /* merges: (left, right) -> (rank, merged token) */
    uint32_t n_merges = arwkv__json_count(j, merges);
    uint64_t size = 16;
    int bits = 4;
    while (size * 3 < (uint64_t)n_merges * 4) size *= 2, bits++; /* load factor at most 3/4 */
    t->merges = (arwkv__merge *)arwkv__malloc(size * sizeof(arwkv__merge));
    if (!t->merges) return arwkv__fail(ARWKV_ERR_OUT_OF_MEMORY, "%s: out of memory for %u merges", name, n_merges);
    for (uint64_t s = 0; s < size; s++) t->merges[s].pair = ARWKV__NO_PAIR;
    t->merge_mask = size - 1;
    t->merge_shift = 64 - bits;
    arwkv__buf joined;
    memset(&joined, 0, sizeof joined);
    uint32_t rank = 0;
    int string_form = 0;
    arwkv_result r = ARWKV_OK;
    for (uint32_t c = arwkv__json_first(j, merges); c != ARWKV__JSON_NONE && r == ARWKV_OK; c = arwkv__json_next(j, c), rank++) {
        const char *left = NULL, *right = NULL;
        size_t left_len = 0, right_len = 0;
        const char *line = arwkv__json_str(j, c);
        if (line) { /* "left right": exactly one space, as tokenizers requires */
            size_t len = arwkv__json_str_len(j, c);
            const char *space = (const char *)memchr(line, ' ', len);
            if (space && !memchr(space + 1, ' ', len - (size_t)(space + 1 - line))) {
                left = line, left_len = (size_t)(space - line);
                right = space + 1, right_len = len - left_len - 1;
            }
        } else if (arwkv__json_count(j, c) == 2 && arwkv__json_type(j, c) == ARWKV__JSON_ARRAY) { /* ["left", "right"] */
            uint32_t a = arwkv__json_first(j, c), b = arwkv__json_next(j, a);
            left = arwkv__json_str(j, a), right = arwkv__json_str(j, b);
            if (left && right) left_len = arwkv__json_str_len(j, a), right_len = arwkv__json_str_len(j, b);
        }
        if (!left || !right) {
            r = arwkv__fail(ARWKV_ERR_FORMAT, "%s: model.merges[%u] is not \"left right\" nor [\"left\", \"right\"]", name, rank);
            break;
        }
        if (rank > 0 && (line != NULL) != string_form) { /* tokenizers reads the list as all one form or all the other */
            r = arwkv__fail(ARWKV_ERR_FORMAT, "%s: model.merges[%u]: the list mixes \"left right\" strings and [\"left\", \"right\"] pairs",
                            name, rank);
            break;
        }
        string_form = line != NULL;
        joined.len = 0;
        arwkv__buf_add(&joined, left, left_len);
        arwkv__buf_add(&joined, right, right_len);
        if (joined.failed) {
            r = arwkv__fail(ARWKV_ERR_OUT_OF_MEMORY, "%s: out of memory", name);
            break;
        }
        int32_t a = arwkv__name_find(t, left, left_len), b = arwkv__name_find(t, right, right_len);
        int32_t m = arwkv__name_find(t, joined.data, joined.len);
        if (a < 0 || b < 0 || m < 0) {
            const char *missing = a < 0 ? left : b < 0 ? right : joined.data;
            int len = (int)(a < 0 ? left_len : b < 0 ? right_len : joined.len);
            r = arwkv__fail(ARWKV_ERR_FORMAT, "%s: model.merges[%u]: token \"%.*s\" is not in model.vocab", name, rank,
                            len > 100 ? 100 : len, missing);
            break;
        }
        uint64_t key = ((uint64_t)(uint32_t)a << 32) | (uint32_t)b;
        uint64_t h = (key * 0x9E3779B97F4A7C15ull) >> t->merge_shift;
        while (t->merges[h].pair != ARWKV__NO_PAIR && t->merges[h].pair != key) h = (h + 1) & t->merge_mask;
        t->merges[h].pair = key; /* a repeated pair keeps its last rank, as in tokenizers */
        t->merges[h].rank = rank;
        t->merges[h].id = m;
    }
    arwkv__buf_free(&joined);
    if (r == ARWKV_OK && *bos) {
        t->bos_id = arwkv_tokenizer_token_id(t, bos);
        t->add_bos = 1;
        if (t->bos_id < 0)
            r = arwkv__fail(ARWKV_ERR_FORMAT, "%s: post_processor names the token \"%.100s\", which is not in the vocabulary", name, bos);
    }
    return r;
}

ARWKV_API arwkv_result arwkv_tokenizer_parse(const char *text, size_t len, const char *name, arwkv_tokenizer **out) {
    *out = NULL;
    if (!name) name = "tokenizer.json";
    arwkv__json j;
    ARWKV__TRY(arwkv__json_parse(&j, text, len, name));
    arwkv_tokenizer *t = (arwkv_tokenizer *)arwkv__calloc(1, sizeof *t);
    if (t) t->bmp = (uint8_t *)arwkv__calloc(0x10000, 1);
    if (t && t->bmp) arwkv__bmp_props(t->bmp);
    arwkv_result r = t && t->bmp ? arwkv__tok_build(t, &j, name) : arwkv__fail(ARWKV_ERR_OUT_OF_MEMORY, "%s: out of memory", name);
    arwkv__json_free(&j);
    if (r != ARWKV_OK) {
        arwkv_tokenizer_free(t);
        return r;
    }
    *out = t;
    return ARWKV_OK;
}

/* The file named `name` in the directory of `file` (a new string). */
ARWKV_PRIVATE char *arwkv__sibling(const char *file, const char *name) {
    const char *slash = strrchr(file, '/');
    if (!slash) return arwkv__strdup(name);
    char *dir = arwkv__strndup(file, (size_t)(slash - file) + 1);
    char *path = dir ? arwkv__path_join(dir, name) : NULL;
    arwkv__free(dir);
    return path;
}

/* bos_token, eos_token, pad_token (a string or {"content": ...}) and add_bos_token of the
   tokenizer_config.json beside a tokenizer.json, where there is one. */
ARWKV_PRIVATE arwkv_result arwkv__tok_config(arwkv_tokenizer *t, const char *tokenizer_file) {
    char *file = arwkv__sibling(tokenizer_file, "tokenizer_config.json"), *text = NULL;
    size_t len;
    if (!file) return arwkv__fail(ARWKV_ERR_OUT_OF_MEMORY, "out of memory");
    if (!arwkv__file_exists(file) || arwkv__read_file(file, &text, &len) != ARWKV_OK) {
        arwkv__free(file);
        arwkv_clear_error();
        return ARWKV_OK; /* optional */
    }
    arwkv__json j;
    arwkv_result r = arwkv__json_parse(&j, text, len, file);
    int parsed = r == ARWKV_OK;
    static const char *const keys[3] = {"bos_token", "eos_token", "pad_token"};
    int32_t *ids[3] = {&t->bos_id, &t->eos_id, &t->pad_id};
    for (int k = 0; k < 3 && r == ARWKV_OK; k++) {
        uint32_t v = arwkv__json_get(&j, 0, keys[k]);
        if (arwkv__json_type(&j, v) == ARWKV__JSON_OBJECT) v = arwkv__json_get(&j, v, "content");
        const char *token = arwkv__json_str(&j, v);
        if (!token) continue; /* absent or null */
        *ids[k] = arwkv_tokenizer_token_id(t, token);
        if (*ids[k] < 0)
            r = arwkv__fail(ARWKV_ERR_FORMAT, "%s: %s \"%.100s\" is not a token of the tokenizer", file, keys[k], token);
    }
    if (r == ARWKV_OK && arwkv__json_bool(&j, arwkv__json_get(&j, 0, "add_bos_token")) == 1) t->add_bos = t->bos_id >= 0;
    if (parsed) arwkv__json_free(&j);
    arwkv__free(text);
    arwkv__free(file);
    return r;
}

/* ---- The tokenizer of a GGUF file --------------------------------------------------------------
   tokenizer.ggml.model "gpt2" (byte-level BPE) with .tokens, .merges, .token_type, .pre and the
   special ids, handed to arwkv_tokenizer_from_parts. The strings point into the open file. */
typedef struct arwkv__gguf_tok {
    arwkv_tokenizer_parts p;
    const char **tokens, **merges;
    uint64_t *token_lens, *merge_lens;
    int32_t *types;
    char pre[64];
} arwkv__gguf_tok;

ARWKV_PRIVATE void arwkv__gguf_tok_free(arwkv__gguf_tok *t) {
    arwkv__free((void *)t->tokens);
    arwkv__free((void *)t->merges);
    arwkv__free(t->token_lens);
    arwkv__free(t->merge_lens);
    arwkv__free(t->types);
    memset(t, 0, sizeof *t);
}

/* A string array's elements as pointers and lengths into the file. */
ARWKV_PRIVATE arwkv_result arwkv__gguf_strings(const arwkv_gguf *g, const char *key, const char ***s, uint64_t **lens, int32_t *n) {
    const arwkv_gguf_kv *kv = arwkv_gguf_find_kv(g, key);
    if (!kv) return arwkv__fail(ARWKV_ERR_FORMAT, "%s: metadata '%s' is missing", arwkv_gguf_path(g), key);
    if (kv->type != ARWKV_GGUF_ARRAY || kv->elem_type != ARWKV_GGUF_STRING || kv->count > INT32_MAX)
        return arwkv__fail(ARWKV_ERR_FORMAT, "%s: metadata '%s' (byte %llu) is not an array of strings", arwkv_gguf_path(g), key,
                           (unsigned long long)kv->offset);
    *n = (int32_t)kv->count;
    *s = (const char **)arwkv__calloc((size_t)kv->count + 1, sizeof(char *));
    *lens = (uint64_t *)arwkv__calloc((size_t)kv->count + 1, sizeof(uint64_t));
    if (!*s || !*lens) return arwkv__fail(ARWKV_ERR_OUT_OF_MEMORY, "%s: out of memory", arwkv_gguf_path(g));
    for (int32_t i = 0; i < *n; i++) {
        size_t len;
        ARWKV__TRY(arwkv_gguf_kv_string(g, kv, (uint64_t)i, &(*s)[i], &len));
        (*lens)[i] = len;
    }
    return ARWKV_OK;
}

/* An optional token id; absent: -1. */
ARWKV_PRIVATE arwkv_result arwkv__gguf_token_id(const arwkv_gguf *g, const char *key, int32_t n_tokens, int32_t *id) {
    const arwkv_gguf_kv *kv = arwkv_gguf_find_kv(g, key);
    int64_t v;
    *id = -1;
    if (!kv) return ARWKV_OK;
    ARWKV__TRY(arwkv_gguf_kv_int(g, kv, 0, &v));
    if (v < 0 || v >= n_tokens)
        return arwkv__fail(ARWKV_ERR_FORMAT, "%s: metadata '%s' = %lld is not a token id (the vocabulary has %d)", arwkv_gguf_path(g), key,
                           (long long)v, n_tokens);
    *id = (int32_t)v;
    return ARWKV_OK;
}

ARWKV_PRIVATE arwkv_result arwkv__gguf_tok_parts(const arwkv_gguf *g, arwkv__gguf_tok *t) {
    memset(t, 0, sizeof *t);
    const char *path = arwkv_gguf_path(g), *s;
    size_t len;
    const arwkv_gguf_kv *kv = arwkv_gguf_find_kv(g, "tokenizer.ggml.model");
    if (!kv) return arwkv__fail(ARWKV_ERR_FORMAT, "%s: metadata 'tokenizer.ggml.model' is missing (no tokenizer in this file)", path);
    ARWKV__TRY(arwkv_gguf_kv_string(g, kv, 0, &s, &len));
    if (!(len == 4 && memcmp(s, "gpt2", 4) == 0))
        return arwkv__fail(ARWKV_ERR_UNSUPPORTED, "%s: tokenizer.ggml.model \"%.*s\" is not supported (only \"gpt2\", byte-level BPE)", path,
                           (int)(len < 64 ? len : 64), s);
    ARWKV__TRY(arwkv__gguf_strings(g, "tokenizer.ggml.tokens", &t->tokens, &t->token_lens, &t->p.n_tokens));
    ARWKV__TRY(arwkv__gguf_strings(g, "tokenizer.ggml.merges", &t->merges, &t->merge_lens, &t->p.n_merges));
    if ((kv = arwkv_gguf_find_kv(g, "tokenizer.ggml.token_type"))) {
        if (kv->type != ARWKV_GGUF_ARRAY || kv->count != (uint64_t)t->p.n_tokens)
            return arwkv__fail(ARWKV_ERR_FORMAT, "%s: metadata 'tokenizer.ggml.token_type' is not an array of %d token types", path, t->p.n_tokens);
        t->types = (int32_t *)arwkv__malloc((size_t)t->p.n_tokens * sizeof(int32_t) + 1);
        if (!t->types) return arwkv__fail(ARWKV_ERR_OUT_OF_MEMORY, "%s: out of memory", path);
        for (int32_t i = 0; i < t->p.n_tokens; i++) {
            int64_t v;
            ARWKV__TRY(arwkv_gguf_kv_int(g, kv, (uint64_t)i, &v));
            t->types[i] = v < 0 || v > 6 ? -1 : (int32_t)v; /* an unknown type is refused by name in from_parts */
        }
    }
    snprintf(t->pre, sizeof t->pre, "default"); /* a file that names no pre-tokenizer: llama.cpp's reading */
    if ((kv = arwkv_gguf_find_kv(g, "tokenizer.ggml.pre"))) {
        ARWKV__TRY(arwkv_gguf_kv_string(g, kv, 0, &s, &len));
        if (len >= sizeof t->pre || memchr(s, 0, len))
            return arwkv__fail(ARWKV_ERR_UNSUPPORTED, "%s: tokenizer.ggml.pre \"%.*s\" is not a supported pre-tokenizer", path, (int)(len < 64 ? len : 64), s);
        memcpy(t->pre, s, len);
        t->pre[len] = 0;
    }
    ARWKV__TRY(arwkv__gguf_token_id(g, "tokenizer.ggml.bos_token_id", t->p.n_tokens, &t->p.bos_id));
    ARWKV__TRY(arwkv__gguf_token_id(g, "tokenizer.ggml.eos_token_id", t->p.n_tokens, &t->p.eos_id));
    ARWKV__TRY(arwkv__gguf_token_id(g, "tokenizer.ggml.padding_token_id", t->p.n_tokens, &t->p.pad_id));
    int64_t add_bos = 0;
    if ((kv = arwkv_gguf_find_kv(g, "tokenizer.ggml.add_bos_token"))) ARWKV__TRY(arwkv_gguf_kv_int(g, kv, 0, &add_bos));
    t->p.add_bos = add_bos != 0 && t->p.bos_id >= 0;
    t->p.name = path;
    t->p.tokens = t->tokens;
    t->p.token_lens = t->token_lens;
    t->p.token_types = t->types;
    t->p.merges = t->merges;
    t->p.merge_lens = t->merge_lens;
    t->p.pre = t->pre;
    return ARWKV_OK;
}

ARWKV_API arwkv_result arwkv_gguf_tokenizer(const arwkv_gguf *g, arwkv_tokenizer **out) {
    *out = NULL;
    arwkv__gguf_tok t;
    arwkv_result r = arwkv__gguf_tok_parts(g, &t);
    if (r == ARWKV_OK) r = arwkv_tokenizer_from_parts(&t.p, out);
    arwkv__gguf_tok_free(&t);
    return r;
}

/* tokenizer.json and tokenizer_config.json (special tokens, chat template) that stand for a GGUF
   file's tokenizer, written into dir: a student of a GGUF teacher is a Hugging Face directory. */
ARWKV_PRIVATE arwkv_result arwkv__gguf_write_tokenizer(const char *gguf_path, const char *dir) {
    arwkv_gguf *g;
    ARWKV__TRY(arwkv_gguf_open(gguf_path, &g));
    arwkv__gguf_tok t;
    char *json = NULL, *path = NULL;
    size_t len;
    arwkv__buf b;
    memset(&b, 0, sizeof b);
    if (!arwkv_gguf_find_kv(g, "tokenizer.ggml.model")) { /* no tokenizer in the file: nothing to write, as for a directory */
        arwkv_gguf_close(g);
        return ARWKV_OK;
    }
    arwkv_result r = arwkv__gguf_tok_parts(g, &t);
    if (r == ARWKV_OK) r = arwkv_tokenizer_parts_json(&t.p, &json, &len);
    if (r == ARWKV_OK) r = (path = arwkv__path_join(dir, "tokenizer.json")) ? arwkv__write_text(path, json, len) : arwkv__fail(ARWKV_ERR_OUT_OF_MEMORY, "out of memory");
    if (r == ARWKV_OK) {
        arwkv__buf_str(&b, "{\n");
        static const char *const keys[3] = {"bos_token", "eos_token", "pad_token"};
        int32_t ids[3] = {t.p.bos_id, t.p.eos_id, t.p.pad_id};
        for (int k = 0; k < 3; k++) {
            if (ids[k] < 0) continue;
            arwkv__buf_printf(&b, "  \"%s\": ", keys[k]);
            arwkv__buf_json_string(&b, t.tokens[ids[k]], (size_t)t.token_lens[ids[k]]);
            arwkv__buf_str(&b, ",\n");
        }
        const arwkv_gguf_kv *kv = arwkv_gguf_find_kv(g, "tokenizer.chat_template");
        const char *s;
        if (kv && arwkv_gguf_kv_string(g, kv, 0, &s, &len) == ARWKV_OK) {
            arwkv__buf_str(&b, "  \"chat_template\": ");
            arwkv__buf_json_string(&b, s, len);
            arwkv__buf_str(&b, ",\n");
        }
        arwkv__buf_printf(&b, "  \"add_bos_token\": %s\n}\n", t.p.add_bos ? "true" : "false");
        arwkv__free(path);
        path = arwkv__path_join(dir, "tokenizer_config.json");
        r = path && !b.failed ? arwkv__write_text(path, b.data, b.len) : arwkv__fail(ARWKV_ERR_OUT_OF_MEMORY, "out of memory");
    }
    arwkv__buf_free(&b);
    arwkv__free(path);
    arwkv__free(json);
    arwkv__gguf_tok_free(&t);
    arwkv_gguf_close(g);
    return r;
}

ARWKV_API arwkv_result arwkv_tokenizer_load(const char *path, arwkv_tokenizer **out) {
    *out = NULL;
    if (arwkv__is_gguf_file(path)) {
        arwkv_gguf *g;
        ARWKV__TRY(arwkv_gguf_open(path, &g));
        arwkv_result r = arwkv_gguf_tokenizer(g, out);
        arwkv_gguf_close(g);
        return r;
    }
    char *file, *text;
    size_t len;
    arwkv_result r = arwkv__read_model_file(path, "tokenizer.json", &file, &text, &len);
    if (r != ARWKV_OK) return r;
    r = arwkv_tokenizer_parse(text, len, file, out);
    if (r == ARWKV_OK) r = arwkv__tok_config(*out, file);
    if (r != ARWKV_OK) {
        arwkv_tokenizer_free(*out);
        *out = NULL;
    }
    arwkv__free(text);
    arwkv__free(file);
    return r;
}

/* ---- Special tokens, tokenizer_config.json --------------------------------------------------- */

ARWKV_API int32_t arwkv_tokenizer_bos_id(const arwkv_tokenizer *tok) { return tok ? tok->bos_id : -1; }
ARWKV_API int32_t arwkv_tokenizer_eos_id(const arwkv_tokenizer *tok) { return tok ? tok->eos_id : -1; }
ARWKV_API int32_t arwkv_tokenizer_pad_id(const arwkv_tokenizer *tok) { return tok ? tok->pad_id : -1; }
ARWKV_API int arwkv_tokenizer_add_bos(const arwkv_tokenizer *tok) { return tok ? tok->add_bos : 0; }

/* ---- A tokenizer from parts --------------------------------------------------------------------
   The parts are written out as the tokenizer.json they stand for and that is parsed: one loader,
   one set of checks, and a file that `tokenizers` can load to check us against. */

/* The pre-tokenizer and normalizer of a tokenizer.ggml.pre name, as tokenizer.json writes them. */
ARWKV_PRIVATE int arwkv__pre_json(const char *pre, arwkv__buf *b) {
    static const char *const qwen[] = {"qwen2", "deepseek-r1-qwen"}, *const llama[] = {"llama-bpe", "llama3", "llama-v3"},
                             *const gpt2[] = {"gpt2", "gpt-2", "default"};
    const char *regex = NULL, *normalizer = "null", *digits = "", *use_regex = "false";
    for (int i = 0; i < 2; i++)
        if (!strcmp(pre, qwen[i])) regex = ARWKV__QWEN_PATTERN, normalizer = "{\"type\": \"NFC\"}";
    for (int i = 0; i < 3; i++)
        if (!strcmp(pre, llama[i])) regex = ARWKV__LLAMA3_PATTERN;
    for (int i = 0; i < 3; i++)
        if (!strcmp(pre, gpt2[i])) use_regex = "true";
    if (!strcmp(pre, "smollm")) use_regex = "true", digits = "{\"type\": \"Digits\", \"individual_digits\": true}, ";
    if (!regex && !strcmp(use_regex, "false")) return 0;
    arwkv__buf_printf(b, "\"normalizer\": %s,\n\"pre_tokenizer\": {\"type\": \"Sequence\", \"pretokenizers\": [%s", normalizer, digits);
    if (regex) {
        arwkv__buf_str(b, "{\"type\": \"Split\", \"pattern\": {\"Regex\": ");
        arwkv__buf_json_string(b, regex, strlen(regex));
        arwkv__buf_str(b, "}, \"behavior\": \"Isolated\", \"invert\": false}, ");
    }
    arwkv__buf_printf(b, "{\"type\": \"ByteLevel\", \"add_prefix_space\": false, \"trim_offsets\": true, \"use_regex\": %s}]},\n",
                      use_regex);
    return 1;
}

ARWKV_PRIVATE size_t arwkv__part_len(const char *const *strs, const uint64_t *lens, int32_t i) {
    return lens ? (size_t)lens[i] : strlen(strs[i]);
}

ARWKV_API arwkv_result arwkv_tokenizer_parts_json(const arwkv_tokenizer_parts *p, char **json, size_t *len) {
    if (!p || !json) return arwkv__fail(ARWKV_ERR_INVALID_ARGUMENT, "arwkv_tokenizer_parts_json: NULL argument");
    *json = NULL;
    if (len) *len = 0;
    const char *name = p->name ? p->name : "tokenizer parts";
    if (p->n_tokens <= 0 || !p->tokens || p->n_merges < 0 || (p->n_merges > 0 && !p->merges))
        return arwkv__fail(ARWKV_ERR_FORMAT, "%s: the tokenizer needs tokens (%ld given) and merges (%ld)", name, (long)p->n_tokens,
                           (long)p->n_merges);
    const int32_t special_ids[3] = {p->bos_id, p->eos_id, p->pad_id};
    static const char *const special_names[3] = {"bos", "eos", "padding"};
    for (int k = 0; k < 3; k++)
        if (special_ids[k] < -1 || special_ids[k] >= p->n_tokens)
            return arwkv__fail(ARWKV_ERR_FORMAT, "%s: the %s token id %ld is not a token (ids are 0..%ld)", name, special_names[k],
                               (long)special_ids[k], (long)p->n_tokens - 1);
    if (p->add_bos && p->bos_id < 0) return arwkv__fail(ARWKV_ERR_FORMAT, "%s: add_bos_token is set but there is no bos token", name);
    arwkv__buf b;
    memset(&b, 0, sizeof b);
    arwkv__buf_str(&b, "{\"version\": \"1.0\", \"truncation\": null, \"padding\": null,\n\"added_tokens\": [");
    int first = 1;
    for (int32_t i = 0; i < p->n_tokens; i++) {
        const char *s = p->tokens[i];
        size_t n = s ? arwkv__part_len(p->tokens, p->token_lens, i) : 0;
        for (size_t k = 0; k < n;) {
            int l = arwkv__utf8_valid_len((const unsigned char *)s + k, n - k);
            if (!l) {
                arwkv__buf_free(&b);
                return arwkv__fail(ARWKV_ERR_FORMAT, "%s: token %ld is not valid UTF-8 (byte %zu)", name, (long)i, k);
            }
            k += (size_t)l;
        }
        if (!s || !n) {
            arwkv__buf_free(&b);
            return arwkv__fail(ARWKV_ERR_FORMAT, "%s: token %ld is empty", name, (long)i);
        }
        int type = p->token_types ? p->token_types[i] : ARWKV_TOKEN_NORMAL;
        if (type < ARWKV_TOKEN_UNDEFINED || type > ARWKV_TOKEN_BYTE) {
            arwkv__buf_free(&b);
            return arwkv__fail(ARWKV_ERR_FORMAT, "%s: token %ld (\"%.*s\") has type %d; types are 0..6", name, (long)i,
                               (int)(n > 100 ? 100 : n), s, type);
        }
        if (type != ARWKV_TOKEN_CONTROL && type != ARWKV_TOKEN_USER_DEFINED) continue;
        arwkv__buf_printf(&b, "%s\n  {\"id\": %ld, \"content\": ", first ? "" : ",", (long)i);
        arwkv__buf_json_string(&b, s, n);
        arwkv__buf_printf(&b, ", \"single_word\": false, \"lstrip\": false, \"rstrip\": false, \"normalized\": false, \"special\": %s}",
                          type == ARWKV_TOKEN_CONTROL ? "true" : "false");
        first = 0;
    }
    arwkv__buf_str(&b, "],\n");
    if (!p->pre || !arwkv__pre_json(p->pre, &b)) {
        arwkv__buf_free(&b);
        return arwkv__fail(ARWKV_ERR_UNSUPPORTED,
                           "%s: pre-tokenizer \"%.60s\" (tokenizer.ggml.pre) is not supported; known: qwen2, deepseek-r1-qwen, llama-bpe, "
                           "llama3, llama-v3, smollm, gpt2, gpt-2, default", name, p->pre ? p->pre : "(none)");
    }
    if (p->add_bos) { /* Llama-3's post-processor: the bos token before each sequence */
        size_t n = arwkv__part_len(p->tokens, p->token_lens, p->bos_id);
        arwkv__buf b_tok;
        memset(&b_tok, 0, sizeof b_tok);
        arwkv__buf_json_string(&b_tok, p->tokens[p->bos_id], n);
        const char *t = b_tok.data ? b_tok.data : "\"\"";
        arwkv__buf_printf(&b, "\"post_processor\": {\"type\": \"TemplateProcessing\", \"single\": [{\"SpecialToken\": {\"id\": %s, \"type_id\": 0}}, "
                              "{\"Sequence\": {\"id\": \"A\", \"type_id\": 0}}], \"pair\": [{\"SpecialToken\": {\"id\": %s, \"type_id\": 0}}, "
                              "{\"Sequence\": {\"id\": \"A\", \"type_id\": 0}}, {\"SpecialToken\": {\"id\": %s, \"type_id\": 1}}, "
                              "{\"Sequence\": {\"id\": \"B\", \"type_id\": 1}}], \"special_tokens\": {%s: {\"id\": %s, \"ids\": [%ld], "
                              "\"tokens\": [%s]}}},\n", t, t, t, t, t, (long)p->bos_id, t);
        arwkv__buf_free(&b_tok);
    } else {
        arwkv__buf_str(&b, "\"post_processor\": {\"type\": \"ByteLevel\", \"add_prefix_space\": false, \"trim_offsets\": false, \"use_regex\": false},\n");
    }
    arwkv__buf_str(&b, "\"decoder\": {\"type\": \"ByteLevel\", \"add_prefix_space\": true, \"trim_offsets\": true, \"use_regex\": true},\n"
                       "\"model\": {\"type\": \"BPE\", \"dropout\": null, \"unk_token\": null, \"continuing_subword_prefix\": null, "
                       "\"end_of_word_suffix\": null, \"fuse_unk\": false, \"byte_fallback\": false, \"ignore_merges\": false,\n\"vocab\": {");
    for (int32_t i = 0; i < p->n_tokens; i++) {
        arwkv__buf_str(&b, i ? ",\n" : "\n");
        arwkv__buf_json_string(&b, p->tokens[i], arwkv__part_len(p->tokens, p->token_lens, i));
        arwkv__buf_printf(&b, ": %ld", (long)i);
    }
    arwkv__buf_str(&b, "},\n\"merges\": [");
    for (int32_t i = 0; i < p->n_merges; i++) {
        if (!p->merges[i]) {
            arwkv__buf_free(&b);
            return arwkv__fail(ARWKV_ERR_FORMAT, "%s: merge %ld is NULL", name, (long)i);
        }
        arwkv__buf_str(&b, i ? ",\n" : "\n");
        arwkv__buf_json_string(&b, p->merges[i], arwkv__part_len(p->merges, p->merge_lens, i));
    }
    arwkv__buf_str(&b, "]}}\n");
    if (b.failed) {
        arwkv__buf_free(&b);
        return arwkv__fail(ARWKV_ERR_OUT_OF_MEMORY, "%s: out of memory writing the tokenizer", name);
    }
    *json = b.data;
    if (len) *len = b.len;
    return ARWKV_OK;
}

ARWKV_API arwkv_result arwkv_tokenizer_from_parts(const arwkv_tokenizer_parts *p, arwkv_tokenizer **out) {
    if (!out) return arwkv__fail(ARWKV_ERR_INVALID_ARGUMENT, "arwkv_tokenizer_from_parts: NULL argument");
    *out = NULL;
    char *json;
    size_t len;
    ARWKV__TRY(arwkv_tokenizer_parts_json(p, &json, &len));
    arwkv_result r = arwkv_tokenizer_parse(json, len, p->name ? p->name : "tokenizer parts", out);
    arwkv__free(json);
    if (r != ARWKV_OK) return r;
    (*out)->bos_id = p->bos_id;
    (*out)->eos_id = p->eos_id;
    (*out)->pad_id = p->pad_id;
    (*out)->add_bos = p->add_bos != 0;
    return ARWKV_OK;
}

/* ---- Chat template ------------------------------------------------------------------------------
   One walk over the conversation produces the rendered text as a sequence of parts; rendering
   concatenates them, encoding encodes each on its own with its mask. */
enum { ARWKV__CHAT_MARKUP, ARWKV__CHAT_CONTENT, ARWKV__CHAT_ANSWER, ARWKV__CHAT_ANSWER_END };
/* ARWKV__CHAT_ANSWER_END: markup that is learned (the token that ends an answer, Qwen3's empty
   think block that opens one) */

struct arwkv_chat_template {
    int format;            /* ARWKV_CHAT_CHATML or ARWKV_CHAT_LLAMA3 */
    char *default_system;  /* NULL: none */
    int qwen_tools;        /* ChatML: tool results inside a user turn, as Qwen2.5/Qwen3 write them */
    int qwen3_think;       /* ChatML: a final answer after the last user turn opens with an empty think block */
};

/* The Qwen2.5 template of arwkv_chat_render and arwkv_chat_encode. */
static const arwkv_chat_template arwkv__qwen25_template = {ARWKV_CHAT_CHATML, (char *)ARWKV_CHAT_DEFAULT_SYSTEM, 1, 0};

typedef arwkv_result (*arwkv__chat_part_fn)(void *ctx, const char *text, size_t len, int kind);

/* The first occurrence of needle[0..m) in hay[0..n), NULL if none (memmem is not C11). */
ARWKV_PRIVATE const char *arwkv__memmem(const char *hay, size_t n, const char *needle, size_t m) {
    for (size_t i = 0; m <= n && i <= n - m; i++)
        if (hay[i] == needle[0] && memcmp(hay + i, needle, m) == 0) return hay + i;
    return NULL;
}

/* Python's str.isspace() (Jinja's trim), byte length of the white-space character at s, else 0. */
ARWKV_PRIVATE size_t arwkv__chat_space(const unsigned char *s, size_t n) {
    uint32_t cp;
    size_t l = arwkv__utf8_next(s, n, &cp);
    return arwkv__char_class(cp) == ARWKV__SPACE || (cp >= 0x1c && cp <= 0x1f) ? l : 0;
}

ARWKV_PRIVATE arwkv_result arwkv__chat_walk(const arwkv_chat_template *tpl, const arwkv_chat_message *msgs, int n, int flags,
                                            arwkv__chat_part_fn part, void *ctx) {
#define ARWKV__PART(text, kind) ARWKV__TRY(part(ctx, (text), strlen(text), (kind)))
    if (n < 0 || (n > 0 && !msgs)) return arwkv__fail(ARWKV_ERR_INVALID_ARGUMENT, "chat: no messages array");
    int last_user = -1;
    for (int i = 0; i < n; i++) {
        const char *role = msgs[i].role;
        if (!role || !msgs[i].content) return arwkv__fail(ARWKV_ERR_INVALID_ARGUMENT, "chat: messages[%d] has a NULL role or content", i);
        if (strcmp(role, "system") && strcmp(role, "user") && strcmp(role, "assistant") && strcmp(role, "tool"))
            return arwkv__fail(ARWKV_ERR_INVALID_ARGUMENT,
                               "chat: messages[%d].role \"%.40s\" is not one of system, user, assistant, tool", i, role);
        if (!strcmp(role, "user")) last_user = i;
    }
    int begins = !(flags & ARWKV_CHAT_CONTINUE);
    if (tpl->format == ARWKV_CHAT_LLAMA3) {
        /* <|start_header_id|>ROLE<|end_header_id|>\n\nCONTENT<|eot_id|>, contents trimmed, as Llama-3's
           template does; <|begin_of_text|> before the first */
        for (int i = 0; i < n; i++) {
            const unsigned char *c = (const unsigned char *)msgs[i].content;
            size_t len = strlen(msgs[i].content), l;
            while (len > 0 && (l = arwkv__chat_space(c, len)) > 0) c += l, len -= l;
            while (len > 0) { /* trailing: find the last character */
                size_t k = len - 1;
                while (k > 0 && (c[k] & 0xc0) == 0x80 && len - k < 4) k--;
                if (arwkv__chat_space(c + k, len - k) != len - k) break;
                len = k;
            }
            int answer = !strcmp(msgs[i].role, "assistant");
            if (i == 0 && begins) ARWKV__PART("<|begin_of_text|>", ARWKV__CHAT_MARKUP);
            ARWKV__PART("<|start_header_id|>", ARWKV__CHAT_MARKUP);
            ARWKV__PART(msgs[i].role, ARWKV__CHAT_MARKUP);
            ARWKV__PART("<|end_header_id|>\n\n", ARWKV__CHAT_MARKUP);
            ARWKV__TRY(part(ctx, (const char *)c, len, answer ? ARWKV__CHAT_ANSWER : ARWKV__CHAT_CONTENT));
            ARWKV__PART("<|eot_id|>", answer ? ARWKV__CHAT_ANSWER_END : ARWKV__CHAT_MARKUP);
        }
        if (flags & ARWKV_CHAT_GENERATION_PROMPT) ARWKV__PART("<|start_header_id|>assistant<|end_header_id|>\n\n", ARWKV__CHAT_MARKUP);
        return ARWKV_OK;
    }
    if (begins && tpl->default_system && (n == 0 || strcmp(msgs[0].role, "system") != 0)) {
        ARWKV__PART("<|im_start|>system\n", ARWKV__CHAT_MARKUP);
        ARWKV__PART(tpl->default_system, ARWKV__CHAT_MARKUP);
        ARWKV__PART("<|im_end|>\n", ARWKV__CHAT_MARKUP);
    }
    for (int i = 0; i < n; i++) {
        const char *role = msgs[i].role;
        if (strcmp(role, "assistant") == 0) {
            ARWKV__PART("<|im_start|>assistant\n", ARWKV__CHAT_MARKUP);
            if (tpl->qwen3_think && i > last_user && i == n - 1 && !strstr(msgs[i].content, "</think>")) {
                const char *c = msgs[i].content;
                while (*c == '\n') c++; /* content.lstrip('\n') */
                ARWKV__PART("<think>\n\n</think>\n\n", ARWKV__CHAT_ANSWER_END);
                ARWKV__PART(c, ARWKV__CHAT_ANSWER);
            } else {
                ARWKV__PART(msgs[i].content, ARWKV__CHAT_ANSWER);
            }
            ARWKV__PART("<|im_end|>", ARWKV__CHAT_ANSWER_END);
            ARWKV__PART("\n", ARWKV__CHAT_MARKUP);
        } else if (tpl->qwen_tools && strcmp(role, "tool") == 0) { /* tool results: inside one user turn */
            if (i == 0 || strcmp(msgs[i - 1].role, "tool") != 0) ARWKV__PART("<|im_start|>user", ARWKV__CHAT_MARKUP);
            ARWKV__PART("\n<tool_response>\n", ARWKV__CHAT_MARKUP);
            ARWKV__PART(msgs[i].content, ARWKV__CHAT_CONTENT);
            ARWKV__PART("\n</tool_response>", ARWKV__CHAT_MARKUP);
            if (i == n - 1 || strcmp(msgs[i + 1].role, "tool") != 0) ARWKV__PART("<|im_end|>\n", ARWKV__CHAT_MARKUP);
        } else {
            ARWKV__PART("<|im_start|>", ARWKV__CHAT_MARKUP);
            ARWKV__PART(role, ARWKV__CHAT_MARKUP);
            ARWKV__PART("\n", ARWKV__CHAT_MARKUP);
            ARWKV__PART(msgs[i].content, ARWKV__CHAT_CONTENT);
            ARWKV__PART("<|im_end|>\n", ARWKV__CHAT_MARKUP);
        }
    }
    if (flags & ARWKV_CHAT_GENERATION_PROMPT) ARWKV__PART("<|im_start|>assistant\n", ARWKV__CHAT_MARKUP);
    return ARWKV_OK;
#undef ARWKV__PART
}

typedef struct arwkv__chat_text {
    char *buf;
    size_t cap, len;
} arwkv__chat_text;

ARWKV_PRIVATE arwkv_result arwkv__chat_render_part(void *ctx, const char *text, size_t n, int kind) {
    arwkv__chat_text *c = (arwkv__chat_text *)ctx;
    (void)kind;
    if (c->len < c->cap) memcpy(c->buf + c->len, text, n < c->cap - c->len ? n : c->cap - c->len);
    c->len += n;
    return ARWKV_OK;
}

ARWKV_API arwkv_result arwkv_chat_template_render(const arwkv_chat_template *tpl, const arwkv_chat_message *msgs, int n, int flags,
                                                  char *buf, size_t cap, size_t *len) {
    arwkv__chat_text c;
    c.buf = buf;
    c.cap = buf ? cap : 0;
    c.len = 0;
    if (len) *len = 0;
    if (!tpl) return arwkv__fail(ARWKV_ERR_INVALID_ARGUMENT, "arwkv_chat_template_render: NULL template");
    ARWKV__TRY(arwkv__chat_walk(tpl, msgs, n, flags, arwkv__chat_render_part, &c));
    if (c.cap > 0) buf[c.len < c.cap ? c.len : c.cap - 1] = 0;
    if (len) *len = c.len;
    return ARWKV_OK;
}

ARWKV_API arwkv_result arwkv_chat_render(const arwkv_chat_message *msgs, int n, int flags, char *buf, size_t cap,
                                         size_t *len) {
    return arwkv_chat_template_render(&arwkv__qwen25_template, msgs, n, flags, buf, cap, len);
}

typedef struct arwkv__chat_ids {
    const arwkv_tokenizer *tok;
    int flags;
    arwkv_tokens *out;
} arwkv__chat_ids;

ARWKV_PRIVATE arwkv_result arwkv__chat_encode_part(void *ctx, const char *text, size_t len, int kind) {
    arwkv__chat_ids *c = (arwkv__chat_ids *)ctx;
    size_t n0 = c->out->n;
    /* the template's markup is trusted: its <|im_start|> and <|im_end|> must become tokens */
    int flags = kind == ARWKV__CHAT_MARKUP || kind == ARWKV__CHAT_ANSWER_END ? ARWKV_TOKENIZE_SPECIAL : c->flags;
    ARWKV__TRY(arwkv_tokenizer_encode(c->tok, text, len, flags, c->out));
    if (kind == ARWKV__CHAT_ANSWER || kind == ARWKV__CHAT_ANSWER_END)
        for (size_t i = n0; i < c->out->n; i++) c->out->mask[i] = 1;
    return ARWKV_OK;
}

ARWKV_API arwkv_result arwkv_chat_template_encode(const arwkv_chat_template *tpl, const arwkv_tokenizer *tok,
                                                  const arwkv_chat_message *msgs, int n, int flags, arwkv_tokens *out) {
    if (!tpl || !tok || !out) return arwkv__fail(ARWKV_ERR_INVALID_ARGUMENT, "arwkv_chat_encode: NULL argument");
    static const char *const chatml[] = {"<|im_start|>", "<|im_end|>", NULL},
                             *const llama3[] = {"<|begin_of_text|>", "<|start_header_id|>", "<|end_header_id|>", "<|eot_id|>", NULL};
    const char *const *markers = tpl->format == ARWKV_CHAT_LLAMA3 ? llama3 : chatml;
    for (int i = 0; markers[i]; i++) {
        int32_t id = arwkv_tokenizer_token_id(tok, markers[i]);
        if (id < 0 || !(tok->id_flags[id] & ARWKV__ID_ADDED))
            return arwkv__fail(ARWKV_ERR_UNSUPPORTED, "arwkv_chat_encode: the tokenizer has no added token %s; the %s template needs it",
                               markers[i], tpl->format == ARWKV_CHAT_LLAMA3 ? "Llama-3" : "ChatML");
    }
    arwkv__chat_ids c;
    c.tok = tok;
    c.flags = flags & ARWKV_TOKENIZE_SPECIAL;
    c.out = out;
    size_t n0 = out->n;
    arwkv_result r = arwkv__chat_walk(tpl, msgs, n, flags, arwkv__chat_encode_part, &c);
    if (r != ARWKV_OK) out->n = n0;
    return r;
}

ARWKV_API arwkv_result arwkv_chat_encode(const arwkv_tokenizer *tok, const arwkv_chat_message *msgs, int n, int flags,
                                         arwkv_tokens *out) {
    return arwkv_chat_template_encode(&arwkv__qwen25_template, tok, msgs, n, flags, out);
}

/* ---- Recognising a chat template ---------------------------------------------------------------
   No Jinja engine: the template's text tells its family by the markers it writes, and a ChatML
   template states its default system prompt as one string literal,
       '<|im_start|>system\nDEFAULT<|im_end|>\n'
   (the newline written as \n or as itself), which we take from the first such literal. */

/* The default system prompt in a ChatML template (a new string), NULL if it states none. */
ARWKV_PRIVATE char *arwkv__chat_default_system(const char *t, size_t len, int *oom) {
    static const char open[] = "<|im_start|>system", close[] = "<|im_end|>";
    *oom = 0;
    for (const char *p = t; p && (size_t)(p - t) < len;) {
        const char *at = arwkv__memmem(p, len - (size_t)(p - t), open, sizeof open - 1);
        if (!at) return NULL;
        const char *s = at + sizeof open - 1, *end = t + len;
        p = s;
        if (s < end && *s == '\n') s++;
        else if (end - s >= 2 && s[0] == '\\' && s[1] == 'n') s += 2;
        else continue;
        const char *e = arwkv__memmem(s, (size_t)(end - s), close, sizeof close - 1);
        if (!e || e == s) continue;
        int quoted = 0; /* the prompt must lie inside the literal: no quote before <|im_end|> */
        for (const char *q = s; q < e; q++)
            if ((*q == '\'' || *q == '"') && q[-1] != '\\') quoted = 1;
        if (quoted) continue;
        char *out = (char *)arwkv__malloc((size_t)(e - s) + 1);
        if (!out) {
            *oom = 1;
            return NULL;
        }
        size_t k = 0;
        for (const char *q = s; q < e; q++) { /* the escapes of a Jinja (Python) string literal */
            if (*q == '\\' && q + 1 < e) {
                q++;
                out[k++] = *q == 'n' ? '\n' : *q == 't' ? '\t' : *q == 'r' ? '\r' : *q;
            } else {
                out[k++] = *q;
            }
        }
        out[k] = 0;
        return out;
    }
    return NULL;
}

ARWKV_API arwkv_result arwkv_chat_template_named(const char *format, arwkv_chat_template **out) {
    if (!out) return arwkv__fail(ARWKV_ERR_INVALID_ARGUMENT, "arwkv_chat_template_named: NULL argument");
    *out = NULL;
    int f = !format ? 0 : !strcmp(format, "chatml") ? ARWKV_CHAT_CHATML : !strcmp(format, "llama3") ? ARWKV_CHAT_LLAMA3 : 0;
    if (!f)
        return arwkv__fail(ARWKV_ERR_INVALID_ARGUMENT, "chat template \"%.40s\" is not one of chatml, llama3", format ? format : "(null)");
    arwkv_chat_template *t = (arwkv_chat_template *)arwkv__calloc(1, sizeof *t);
    if (!t) return arwkv__fail(ARWKV_ERR_OUT_OF_MEMORY, "out of memory");
    t->format = f;
    t->qwen_tools = f == ARWKV_CHAT_CHATML;
    *out = t;
    return ARWKV_OK;
}

ARWKV_API arwkv_result arwkv_chat_template_parse(const char *text, size_t len, const char *name, arwkv_chat_template **out) {
    if (!out || (!text && len)) return arwkv__fail(ARWKV_ERR_INVALID_ARGUMENT, "arwkv_chat_template_parse: NULL argument");
    *out = NULL;
    if (!name) name = "chat template";
#define ARWKV__HAS(s) (arwkv__memmem(text, len, (s), strlen(s)) != NULL)
    if (ARWKV__HAS("<|start_header_id|>") && ARWKV__HAS("<|eot_id|>")) {
        if (ARWKV__HAS("Cutting Knowledge Date"))
            return arwkv__fail(ARWKV_ERR_UNSUPPORTED,
                               "%s: this is the chat template of Llama 3.1 or later (a dated system turn, tools), which is not "
                               "implemented; --chat-template llama3 renders Llama 3's plain header format", name);
        ARWKV__TRY(arwkv_chat_template_named("llama3", out));
        return ARWKV_OK;
    }
    if (ARWKV__HAS("<|im_start|>") && ARWKV__HAS("<|im_end|>")) {
        ARWKV__TRY(arwkv_chat_template_named("chatml", out));
        arwkv_chat_template *t = *out;
        int oom;
        t->default_system = arwkv__chat_default_system(text, len, &oom);
        t->qwen_tools = ARWKV__HAS("<tool_response>");
        t->qwen3_think = ARWKV__HAS("reasoning_content") && ARWKV__HAS("<think>");
        if (oom) {
            arwkv_chat_template_free(t);
            *out = NULL;
            return arwkv__fail(ARWKV_ERR_OUT_OF_MEMORY, "out of memory");
        }
        return ARWKV_OK;
    }
#undef ARWKV__HAS
    return arwkv__fail(ARWKV_ERR_UNSUPPORTED,
                       "%s: the chat template is not one this library renders (ChatML with <|im_start|>, or Llama 3 with "
                       "<|start_header_id|>); choose one with --chat-template chatml|llama3", name);
}

ARWKV_API arwkv_result arwkv_chat_template_load(const char *path, arwkv_chat_template **out) {
    if (!path || !out) return arwkv__fail(ARWKV_ERR_INVALID_ARGUMENT, "arwkv_chat_template_load: NULL argument");
    *out = NULL;
    if (arwkv__is_gguf_file(path)) { /* its metadata's tokenizer.chat_template */
        arwkv_gguf *g;
        ARWKV__TRY(arwkv_gguf_open(path, &g));
        const arwkv_gguf_kv *kv = arwkv_gguf_find_kv(g, "tokenizer.chat_template");
        const char *s;
        size_t n;
        char name[1024];
        snprintf(name, sizeof name, "%s: tokenizer.chat_template", path);
        arwkv_result r = !kv ? arwkv__fail(ARWKV_ERR_NOT_FOUND, "%s: no tokenizer.chat_template; choose one with --chat-template chatml|llama3", path)
                             : arwkv_gguf_kv_string(g, kv, 0, &s, &n);
        if (r == ARWKV_OK) r = arwkv_chat_template_parse(s, n, name, out);
        arwkv_gguf_close(g);
        return r;
    }
    char *file = arwkv__is_dir(path) ? arwkv__path_join(path, "tokenizer_config.json") : arwkv__sibling(path, "tokenizer_config.json");
    char *text = NULL;
    size_t len;
    if (!file) return arwkv__fail(ARWKV_ERR_OUT_OF_MEMORY, "out of memory");
    arwkv_result r = arwkv__read_file(file, &text, &len);
    arwkv__json j;
    if (r == ARWKV_OK) r = arwkv__json_parse(&j, text, len, file);
    if (r == ARWKV_OK) {
        uint32_t v = arwkv__json_get(&j, 0, "chat_template");
        if (arwkv__json_type(&j, v) == ARWKV__JSON_ARRAY) { /* [{"name": ..., "template": ...}]: the default one */
            uint32_t list = v;
            v = ARWKV__JSON_NONE;
            for (uint32_t c = arwkv__json_first(&j, list); c != ARWKV__JSON_NONE; c = arwkv__json_next(&j, c)) {
                const char *tname = arwkv__json_get_str(&j, c, "name");
                if (tname && !strcmp(tname, "default")) v = arwkv__json_get(&j, c, "template");
            }
        }
        if (!arwkv__json_str(&j, v))
            r = arwkv__fail(ARWKV_ERR_NOT_FOUND, "%s: no chat_template; choose one with --chat-template chatml|llama3", file);
        else
            r = arwkv_chat_template_parse(arwkv__json_str(&j, v), arwkv__json_str_len(&j, v), file, out);
        arwkv__json_free(&j);
    }
    arwkv__free(text);
    arwkv__free(file);
    return r;
}

ARWKV_API void arwkv_chat_template_free(arwkv_chat_template *t) {
    if (!t) return;
    arwkv__free(t->default_system);
    arwkv__free(t);
}

ARWKV_API int arwkv_chat_template_format(const arwkv_chat_template *t) { return t ? t->format : 0; }
ARWKV_API const char *arwkv_chat_template_default_system(const arwkv_chat_template *t) { return t ? t->default_system : NULL; }
ARWKV_API const char *arwkv_chat_template_stop(const arwkv_chat_template *t) {
    return t && t->format == ARWKV_CHAT_LLAMA3 ? "<|eot_id|>" : "<|im_end|>";
}
ARWKV_API const char *arwkv_chat_template_turn_end(const arwkv_chat_template *t) {
    return t && t->format == ARWKV_CHAT_LLAMA3 ? "<|eot_id|>" : "<|im_end|>\n";
}

#else /* ARWKV_NO_TOKENIZER */
/* Saving a model next to a GGUF file's vocabulary writes it as tokenizer.json, which takes the
   tokenizer; without it the save says so. */
ARWKV_PRIVATE arwkv_result arwkv__gguf_write_tokenizer(const char *gguf_path, const char *dir) {
    (void)dir;
    return arwkv__fail(ARWKV_ERR_UNSUPPORTED, "%s: writing its vocabulary as tokenizer.json needs the tokenizer, which this build "
                                              "leaves out (ARWKV_NO_TOKENIZER)", gguf_path);
}
#endif /* ARWKV_NO_TOKENIZER */

/* ============================================================================================
   SECTION 6. Ops and the CPU backend (ends with arwkv_backend_cpu)
   ============================================================================================ */
/* ---- Matrix product ----------------------------------------------------------------------------
   Every projection of every model goes through one routine:

       C[M,N] (+)= A[M,K] . B[K,N]  (+ bias[N])

   A is fp32 activations read in place, with any strides (so A can be a transposed view, as in the
   weight gradient dW = dY^T X). B is fp32, bf16 or f16 with any strides: a weight stays in its
   stored type and is widened to fp32 when a block of it is packed, so a bf16 checkpoint is never
   converted as a whole. The block of B (KC x NC) is packed once and reused by every row of A;
   a micro-kernel keeps 12 vectors of C in registers: 6x32 with AVX-512, 6x16 with AVX2+FMA, plain
   C otherwise (the path is chosen at compile time by -march; arwkv_cpu_kernels() names it). Every
   path sums each element of C in the same order with fused multiply-adds, so the three give the
   same bits. Rows of A whose k-values are strided (A^T views) are copied into a contiguous tile
   first. With one to four rows of A (token-by-token decoding) the product is a bandwidth-bound
   matrix-vector loop over the weight instead. Threads split the columns of C (and its rows when
   there are few column blocks); each element of C is summed in the same order whatever the number
   of threads, so results are bit-identical from 1 to N threads. */

#if defined(__AVX2__) && defined(__FMA__)
#include <immintrin.h>
#define ARWKV__AVX2 1
#endif
/* AVX-512 (F, BW, VL and DQ, which every AVX-512 CPU has) adds 16-float vectors and masks; the
   AVX2 code stays in use where a kernel has no 512-bit version. */
#if defined(ARWKV__AVX2) && defined(__AVX512F__) && defined(__AVX512BW__) && defined(__AVX512VL__) && defined(__AVX512DQ__)
#define ARWKV__AVX512 1
/* g++ 12 warns (-Wmaybe-uninitialized) inside the unmasked forms of many AVX-512 intrinsics, which
   pass an undefined vector through; the zero-masked forms with every lane set are the same
   operation, so the kernels use those (ARWKV__ALL16), and their own sum of lanes. */
#define ARWKV__ALL16 ((__mmask16)0xFFFF)
#define ARWKV__BF16_WIDEN16(h) _mm512_maskz_slli_epi32(ARWKV__ALL16, _mm512_maskz_cvtepu16_epi32(ARWKV__ALL16, (h)), 16)
/* The first n lanes of 16 (a loop's tail). */
#define ARWKV__MASK16(n) ((n) >= 16 ? (__mmask16)0xFFFF : (n) <= 0 ? (__mmask16)0 : (__mmask16)((1u << (n)) - 1))
#endif

ARWKV_API const char *arwkv_cpu_kernels(void) {
#if defined(ARWKV__AVX512)
    return "AVX-512";
#elif defined(ARWKV__AVX2)
    return "AVX2+FMA";
#else
    return "portable C";
#endif
}

#define ARWKV__MR 6   /* rows of C per micro-kernel */
#ifdef ARWKV__AVX512
#define ARWKV__NR 32  /* columns of C per micro-kernel (two 16-float vectors) */
#else
#define ARWKV__NR 16  /* columns of C per micro-kernel (two 8-float vectors) */
#endif
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

#ifdef ARWKV__AVX2
/* Transpose the 8x8 block held in r[0..8) (r[i][j] becomes r[j][i]). */
ARWKV_PRIVATE void arwkv__transpose8_avx2(__m256 *r) {
    __m256 t0 = _mm256_unpacklo_ps(r[0], r[1]), t1 = _mm256_unpackhi_ps(r[0], r[1]), t2 = _mm256_unpacklo_ps(r[2], r[3]),
           t3 = _mm256_unpackhi_ps(r[2], r[3]), t4 = _mm256_unpacklo_ps(r[4], r[5]), t5 = _mm256_unpackhi_ps(r[4], r[5]),
           t6 = _mm256_unpacklo_ps(r[6], r[7]), t7 = _mm256_unpackhi_ps(r[6], r[7]);
    __m256 u0 = _mm256_shuffle_ps(t0, t2, 0x44), u1 = _mm256_shuffle_ps(t0, t2, 0xEE), u2 = _mm256_shuffle_ps(t1, t3, 0x44),
           u3 = _mm256_shuffle_ps(t1, t3, 0xEE), u4 = _mm256_shuffle_ps(t4, t6, 0x44), u5 = _mm256_shuffle_ps(t4, t6, 0xEE),
           u6 = _mm256_shuffle_ps(t5, t7, 0x44), u7 = _mm256_shuffle_ps(t5, t7, 0xEE);
    r[0] = _mm256_permute2f128_ps(u0, u4, 0x20), r[1] = _mm256_permute2f128_ps(u1, u5, 0x20);
    r[2] = _mm256_permute2f128_ps(u2, u6, 0x20), r[3] = _mm256_permute2f128_ps(u3, u7, 0x20);
    r[4] = _mm256_permute2f128_ps(u0, u4, 0x31), r[5] = _mm256_permute2f128_ps(u1, u5, 0x31);
    r[6] = _mm256_permute2f128_ps(u2, u6, 0x31), r[7] = _mm256_permute2f128_ps(u3, u7, 0x31);
}
#endif

/* Pack one full panel (NR columns) of a weight whose columns are contiguous in k (an nn.Linear
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
        for (int half = 0; half < ARWKV__NR / 8; half++) {
            __m256 r[8];
            for (int j = 0; j < 8; j++) {
                const char *src = B + ((size_t)(n + 8 * half + j) * (size_t)g->b_cs + (size_t)(k0 + k)) * esz;
                if (g->b_type == ARWKV_BF16)
                    r[j] = _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(_mm_loadu_si128((const __m128i *)src)), 16));
                else r[j] = _mm256_loadu_ps((const float *)src);
            }
            arwkv__transpose8_avx2(r); /* r[i] becomes k-value i of the 8 columns */
            float *dst = panel + (size_t)k * ARWKV__NR + 8 * half;
            for (int i = 0; i < 8; i++) _mm256_storeu_ps(dst + i * ARWKV__NR, r[i]);
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
#ifdef ARWKV__AVX512
    /* rows of B contiguous in n, whole panels: each row of the block is read once from start to end
       (k outer, panels inner), a stream the hardware prefetcher follows; panel by panel the reads
       were short pieces 512 bytes or more apart and the copy took a fifth of the product's time */
    if (g->b_cs == 1 && nc % ARWKV__NR == 0 && (g->b_type == ARWKV_F32 || g->b_type == ARWKV_BF16)) {
        for (int k = 0; k < kc; k++) {
            const char *src = B + ((size_t)(k0 + k) * (size_t)g->b_rs + (size_t)n0) * esz;
            for (int p = 0; p < nc; p += ARWKV__NR) {
                float *row = dst + (size_t)p * kc + (size_t)k * ARWKV__NR;
                __m512 lo, hi;
                if (g->b_type == ARWKV_F32) lo = _mm512_loadu_ps((const float *)src + p), hi = _mm512_loadu_ps((const float *)src + p + 16);
                else {
                    lo = _mm512_castsi512_ps(ARWKV__BF16_WIDEN16(_mm256_loadu_si256((const __m256i *)((const uint16_t *)src + p))));
                    hi = _mm512_castsi512_ps(ARWKV__BF16_WIDEN16(_mm256_loadu_si256((const __m256i *)((const uint16_t *)src + p + 16))));
                }
                _mm512_storeu_ps(row, lo), _mm512_storeu_ps(row + 16, hi);
            }
        }
        return;
    }
#endif
    for (int p = 0; p < nc; p += ARWKV__NR) {
        float *panel = dst + (size_t)p * kc;
        int w = nc - p < ARWKV__NR ? nc - p : ARWKV__NR;
        if (g->b_cs == 1) { /* rows of B contiguous in n: copy row pieces */
#ifdef ARWKV__AVX512
            /* a whole panel row is two vectors: load (widening bf16) and store them, rather than a
               memcpy call of 128 bytes per row, which cost as much as the copy */
            if (w == ARWKV__NR && (g->b_type == ARWKV_F32 || g->b_type == ARWKV_BF16)) {
                for (int k = 0; k < kc; k++) {
                    const char *src = B + ((size_t)(k0 + k) * (size_t)g->b_rs + (size_t)(n0 + p)) * esz;
                    __m512 lo, hi;
                    if (g->b_type == ARWKV_F32) lo = _mm512_loadu_ps((const float *)src), hi = _mm512_loadu_ps((const float *)src + 16);
                    else {
                        lo = _mm512_castsi512_ps(ARWKV__BF16_WIDEN16(_mm256_loadu_si256((const __m256i *)src)));
                        hi = _mm512_castsi512_ps(ARWKV__BF16_WIDEN16(_mm256_loadu_si256((const __m256i *)src + 1)));
                    }
                    _mm512_storeu_ps(panel + (size_t)k * ARWKV__NR, lo), _mm512_storeu_ps(panel + (size_t)k * ARWKV__NR + 16, hi);
                }
                continue;
            }
#endif
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

#ifdef ARWKV__AVX512
/* The AVX-512 micro-kernel: C[0..mr)[0..w) (+)= sum over k of a(i,k) * panel[k][0..w), written
   straight into C with masked stores (no tile in between). add: add to C instead of storing;
   bias (may be NULL) is added to the sum before that, as the portable path does. */
ARWKV_PRIVATE void arwkv__kernel_6x32_avx512(int kc, const float *const *a, ptrdiff_t a_cs, const float *ARWKV__RESTRICT b,
                                             float *c, ptrdiff_t ldc, int mr, int w, int add, const float *bias) {
    __m512 c00 = _mm512_setzero_ps(), c01 = c00, c10 = c00, c11 = c00, c20 = c00, c21 = c00, c30 = c00, c31 = c00,
           c40 = c00, c41 = c00, c50 = c00, c51 = c00;
    const float *a0 = a[0], *a1 = a[1], *a2 = a[2], *a3 = a[3], *a4 = a[4], *a5 = a[5];
    for (int k = 0; k < kc; k++) {
        __m512 b0 = _mm512_loadu_ps(b), b1 = _mm512_loadu_ps(b + 16), x;
        ptrdiff_t o = k * a_cs;
        x = _mm512_set1_ps(a0[o]); c00 = _mm512_fmadd_ps(x, b0, c00); c01 = _mm512_fmadd_ps(x, b1, c01);
        x = _mm512_set1_ps(a1[o]); c10 = _mm512_fmadd_ps(x, b0, c10); c11 = _mm512_fmadd_ps(x, b1, c11);
        x = _mm512_set1_ps(a2[o]); c20 = _mm512_fmadd_ps(x, b0, c20); c21 = _mm512_fmadd_ps(x, b1, c21);
        x = _mm512_set1_ps(a3[o]); c30 = _mm512_fmadd_ps(x, b0, c30); c31 = _mm512_fmadd_ps(x, b1, c31);
        x = _mm512_set1_ps(a4[o]); c40 = _mm512_fmadd_ps(x, b0, c40); c41 = _mm512_fmadd_ps(x, b1, c41);
        x = _mm512_set1_ps(a5[o]); c50 = _mm512_fmadd_ps(x, b0, c50); c51 = _mm512_fmadd_ps(x, b1, c51);
        b += ARWKV__NR;
    }
    __m512 acc[ARWKV__MR][2] = {{c00, c01}, {c10, c11}, {c20, c21}, {c30, c31}, {c40, c41}, {c50, c51}};
    __mmask16 m0 = (__mmask16)(w >= 16 ? 0xFFFF : (1u << w) - 1), m1 = (__mmask16)(w >= 32 ? 0xFFFF : w > 16 ? (1u << (w - 16)) - 1 : 0);
    __m512 bias0 = bias ? _mm512_maskz_loadu_ps(m0, bias) : _mm512_setzero_ps();
    __m512 bias1 = bias ? _mm512_maskz_loadu_ps(m1, bias + 16) : _mm512_setzero_ps();
    for (int i = 0; i < mr; i++) {
        float *row = c + (ptrdiff_t)i * ldc;
        __m512 r0 = acc[i][0], r1 = acc[i][1];
        if (bias) r0 = _mm512_add_ps(r0, bias0), r1 = _mm512_add_ps(r1, bias1);
        if (add) r0 = _mm512_add_ps(_mm512_maskz_loadu_ps(m0, row), r0), r1 = _mm512_add_ps(_mm512_maskz_loadu_ps(m1, row + 16), r1);
        _mm512_mask_storeu_ps(row, m0, r0);
        _mm512_mask_storeu_ps(row + 16, m1, r1);
    }
}
#endif

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
   time. The requests go out in parts, one part per row tile of A, so they overlap the products
   rather than all queueing at once (a block of 128 KB is 2048 cache lines). Part `part` of `parts`
   is a slice of the block's columns where they are contiguous in k, else a slice of its rows. Only
   a hint: no effect on results.
   gcc finds that a function whose only work is prefetching has no side effects and drops every
   call to it, the prefetches with it (so this one did nothing before); noipa keeps the calls. */
#if defined(__GNUC__) && !defined(__clang__)
#define ARWKV__KEEP_CALLS __attribute__((noipa))
#else
#define ARWKV__KEEP_CALLS
#endif
ARWKV_PRIVATE ARWKV__KEEP_CALLS void arwkv__prefetch_b(const arwkv__gemm_args *g, int k0, int n0, int nc, int part, int parts) {
#if defined(__GNUC__) || defined(__clang__)
    int kc = g->K - k0 < ARWKV__KC ? g->K - k0 : ARWKV__KC;
    size_t esz = arwkv_dtype_size(g->b_type);
    const char *B = (const char *)g->B;
    if (g->b_rs == 1) /* a run of kc elements per column */
        for (int n = n0 + nc * part / parts; n < n0 + nc * (part + 1) / parts; n++) {
            const char *p = B + ((size_t)n * (size_t)g->b_cs + (size_t)k0) * esz;
            for (size_t off = 0; off < (size_t)kc * esz; off += 64) __builtin_prefetch(p + off);
        }
    else if (g->b_cs == 1) /* a run of nc elements per row */
        for (int k = k0 + kc * part / parts; k < k0 + kc * (part + 1) / parts; k++) {
            const char *p = B + ((size_t)k * (size_t)g->b_rs + (size_t)n0) * esz;
            for (size_t off = 0; off < (size_t)nc * esz; off += 64) __builtin_prefetch(p + off);
        }
#else
    (void)g, (void)k0, (void)n0, (void)nc, (void)part, (void)parts;
#endif
}

/* Rows of A copied together when A is strided in k (an A^T view, as in the weight gradient
   dW = dY^T X): a multiple of the micro-kernel's rows and of the 8x8 transpose. */
#define ARWKV__A_GROUP (8 * ARWKV__MR)

/* Copy A(m0..m0+rows, k0..k0+kc) into dst[rows][kc] (rows contiguous in k). Where the rows of A are
   contiguous for a fixed k (a_rs == 1), 8 rows by 8 k-values are loaded as 8 vectors and transposed
   in registers: one element at a time, each k of a row lies on another page and the copy cost as
   much as the products it feeds. A copy: the result is the same whatever path does it. */
ARWKV_PRIVATE void arwkv__copy_a_block(const arwkv__gemm_args *g, float *dst, int m0, int rows, int k0, int kc) {
    int r = 0;
#ifdef ARWKV__AVX2
    if (g->a_rs == 1)
        for (; r + 8 <= rows; r += 8) {
            const float *src = g->A + (ptrdiff_t)(m0 + r) + (ptrdiff_t)k0 * g->a_cs;
            int k = 0;
            for (; k + 8 <= kc; k += 8) {
                __m256 v[8];
                for (int j = 0; j < 8; j++) v[j] = _mm256_loadu_ps(src + (ptrdiff_t)(k + j) * g->a_cs);
                arwkv__transpose8_avx2(v);
                for (int i = 0; i < 8; i++) _mm256_storeu_ps(dst + (size_t)(r + i) * kc + k, v[i]);
            }
            for (; k < kc; k++)
                for (int i = 0; i < 8; i++) dst[(size_t)(r + i) * kc + k] = src[(ptrdiff_t)k * g->a_cs + i];
        }
#endif
    for (; r < rows; r++) {
        const float *src = g->A + (ptrdiff_t)(m0 + r) * g->a_rs + (ptrdiff_t)k0 * g->a_cs;
        for (int k = 0; k < kc; k++) dst[(size_t)r * kc + k] = src[(ptrdiff_t)k * g->a_cs];
    }
}

ARWKV_PRIVATE void arwkv__gemm_task(void *ctx, int task, int thread) {
    arwkv__gemm_args *g = (arwkv__gemm_args *)ctx;
    int nb = task / g->n_m_chunks, mc = task % g->n_m_chunks;
    int n0 = nb * ARWKV__NC, nc = g->N - n0 < ARWKV__NC ? g->N - n0 : ARWKV__NC;
    int m_begin = mc * g->m_chunk, m_end = m_begin + g->m_chunk < g->M ? m_begin + g->m_chunk : g->M;
    /* scratch: the packed block of B, then a group of rows of A (used when A is strided in k) */
    float *packed = (float *)arwkv__scratch(g->pool, thread, (size_t)ARWKV__KC * (ARWKV__NC + ARWKV__A_GROUP) * sizeof(float));
    if (!packed) {
        __atomic_store_n(&g->oom, 1, __ATOMIC_RELAXED);
        return;
    }
    float *a_group = packed + (size_t)ARWKV__KC * ARWKV__NC;
#ifndef ARWKV__AVX512
    float tile[ARWKV__MR * ARWKV__NR];
#endif
    for (int k0 = 0; k0 < g->K; k0 += ARWKV__KC) {
        int kc = g->K - k0 < ARWKV__KC ? g->K - k0 : ARWKV__KC;
        int first = k0 == 0;
        arwkv__pack_b(g, packed, k0, kc, n0, nc);
        /* the block of B to ask for while this one is used: the next k-values of these columns, or
           after the last block of k the first block of the task this thread is likely to take next
           (tasks go out in order), for the vocabulary head's hundreds of column blocks. (That one
           was once asked only where K fits one block, the bundled teacher's head, and so never for a
           0.5B head's, K = 896 in four blocks.) */
        int next_k0 = k0 + ARWKV__KC, next_n0 = n0, next_nc = nc, n_tiles = (m_end - m_begin + ARWKV__MR - 1) / ARWKV__MR;
        if (next_k0 >= g->K) {
            int next_nb = (task + arwkv_pool_size(g->pool)) / g->n_m_chunks;
            next_k0 = -1;
            if (next_nb != nb && next_nb * ARWKV__NC < g->N)
                next_k0 = 0, next_n0 = next_nb * ARWKV__NC, next_nc = g->N - next_n0 < ARWKV__NC ? g->N - next_n0 : ARWKV__NC;
        }
        for (int m = m_begin; m < m_end; m += ARWKV__MR) {
            if (next_k0 >= 0) arwkv__prefetch_b(g, next_k0, next_n0, next_nc, (m - m_begin) / ARWKV__MR, n_tiles);
            int mr = m_end - m < ARWKV__MR ? m_end - m : ARWKV__MR;
            const float *rows[ARWKV__MR];
            ptrdiff_t a_cs = g->a_cs;
            for (int i = 0; i < ARWKV__MR; i++)
                rows[i] = g->A + (ptrdiff_t)(m + (i < mr ? i : 0)) * g->a_rs + (ptrdiff_t)k0 * g->a_cs;
            if (a_cs != 1 && nc > ARWKV__NR) {
                /* A strided in k (an A^T view): each k of a row lies on another page, and the kernel
                   would read them once per panel; copy a group of rows into contiguous memory once */
                int in_group = (m - m_begin) % ARWKV__A_GROUP;
                if (in_group == 0) arwkv__copy_a_block(g, a_group, m, m_end - m < ARWKV__A_GROUP ? m_end - m : ARWKV__A_GROUP, k0, kc);
                for (int i = 0; i < ARWKV__MR; i++) rows[i] = a_group + (size_t)(in_group + (i < mr ? i : 0)) * kc;
                a_cs = 1;
            }
            for (int p = 0; p < nc; p += ARWKV__NR) {
                int w = nc - p < ARWKV__NR ? nc - p : ARWKV__NR;
#ifdef ARWKV__AVX512
                arwkv__kernel_6x32_avx512(kc, rows, a_cs, packed + (size_t)p * kc, g->C + (ptrdiff_t)m * g->ldc + n0 + p, g->ldc, mr, w,
                                          !first || g->accumulate, first && g->bias ? g->bias + n0 + p : NULL);
#else
                arwkv__kernel_6x16(kc, rows, a_cs, packed + (size_t)p * kc, tile);
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
#endif
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

/* Bytes ahead of the loads at which a bf16 row is requested. Each of the four streams runs on past
   the end of its row into the next row it will read (the rows of a stream are contiguous), and a
   request past the weight's end is dropped, not a fault. The hardware's own prefetch leaves the
   Intel Xeon of our development machines short of the read rate: with these requests the decode
   products went from 41-43 ms to 36-38 ms a token (Qwen2.5-0.5B shape, 2 threads; 1 KB and 2 KB
   ahead alike, 4 KB a little slower). Only a hint: the sums are the same bits. */
#define ARWKV__GEMV_AHEAD 1024

/* out[r] = a . w[r] over K elements for 4 contiguous weight rows of type t (BF16 or F32). */
ARWKV_PRIVATE void arwkv__dot4_avx2(const float *a, const void *const *w, arwkv_dtype t, int K, float *out) {
    __m256 s0 = _mm256_setzero_ps(), s1 = s0, s2 = s0, s3 = s0, s4 = s0, s5 = s0, s6 = s0, s7 = s0;
    int k = 0;
    if (t == ARWKV_BF16) {
        const uint16_t *w0 = (const uint16_t *)w[0], *w1 = (const uint16_t *)w[1], *w2 = (const uint16_t *)w[2], *w3 = (const uint16_t *)w[3];
        const __m256i z = _mm256_setzero_si256();
        for (; k + 16 <= K; k += 16) {
            if ((k & 31) == 0) { /* one request per 64-byte line of each row, ARWKV__GEMV_AHEAD ahead */
                _mm_prefetch((const char *)(w0 + k) + ARWKV__GEMV_AHEAD, _MM_HINT_T0);
                _mm_prefetch((const char *)(w1 + k) + ARWKV__GEMV_AHEAD, _MM_HINT_T0);
                _mm_prefetch((const char *)(w2 + k) + ARWKV__GEMV_AHEAD, _MM_HINT_T0);
                _mm_prefetch((const char *)(w3 + k) + ARWKV__GEMV_AHEAD, _MM_HINT_T0);
            }
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
    for (int j = 0; j < q; j++) {
        int rows[4];
        float out[4][4];
        for (int r = 0; r < 4; r++) rows[r] = r * q + j < count ? n0 + r * q + j : -1;
        for (int i = 0; i < g->M; i++) {
#ifdef ARWKV__AVX2
            if (g->a_cs == 1 && g->b_rs == 1 && (g->b_type == ARWKV_BF16 || g->b_type == ARWKV_F32)) {
                const void *w[4]; /* a missing row repeats the first; its sum is dropped */
                for (int r = 0; r < 4; r++)
                    w[r] = (const char *)g->B + (size_t)(rows[r] >= 0 ? rows[r] : rows[0]) * (size_t)g->b_cs * arwkv_dtype_size(g->b_type);
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
        if (n_blocks * ((M + chunk - 1) / chunk) < threads) {
            /* fewer tasks than threads (a narrow C over a long sum, as the vocabulary head's
               d hidden = d logits . W): split the rows anyway; each thread then packs the same B,
               which costs less than leaving threads idle. Each element's sum is unchanged. */
            int per_block = (threads + n_blocks - 1) / n_blocks;
            chunk = (M + per_block - 1) / per_block;
        }
        chunk = (chunk + ARWKV__MR - 1) / ARWKV__MR * ARWKV__MR;
        g.m_chunk = chunk;
        g.n_m_chunks = (M + chunk - 1) / chunk;
        arwkv_pool_run(pool, n_blocks * g.n_m_chunks, arwkv__gemm_task, &g);
    }
    arwkv__free(local_scratch);
    if (g.oom) return arwkv__fail(ARWKV_ERR_OUT_OF_MEMORY, "matrix product %dx%dx%d: out of scratch memory", M, N, K);
    return ARWKV_OK;
}

/* ---- The CPU backend: memory ------------------------------------------------------------------- */

/* 64-byte aligned, zeroed; the original pointer is kept just before the block. Host memory is the
   CPU backend's memory: host_alloc is the same block without the backend's accounting. */
ARWKV_PRIVATE arwkv_result arwkv__cpu_host_alloc(arwkv_backend *be, size_t bytes, void **out) {
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
ARWKV_PRIVATE void arwkv__cpu_host_free(arwkv_backend *be, void *p) {
    (void)be;
    if (!p) return;
    void *raw;
    memcpy(&raw, (char *)p - sizeof(void *), sizeof(void *));
    arwkv__free(raw);
}
ARWKV_PRIVATE arwkv_result arwkv__cpu_alloc(arwkv_backend *be, size_t bytes, void **out) {
    *out = NULL;
    ARWKV__TRY(arwkv__mem_admit(be, bytes));
    ARWKV__TRY(arwkv__cpu_host_alloc(be, bytes, out));
    arwkv_result r = arwkv__mem_note_alloc(be, *out, bytes);
    if (r != ARWKV_OK) {
        arwkv__cpu_host_free(be, *out);
        *out = NULL;
    }
    return r;
}
ARWKV_PRIVATE void arwkv__cpu_free(arwkv_backend *be, void *p) {
    if (!p) return;
    arwkv__mem_note_free(be, p);
    arwkv__cpu_host_free(be, p);
}
ARWKV_PRIVATE arwkv_result arwkv__cpu_memcpy(arwkv_backend *be, void *dst, const void *src, size_t bytes) {
    (void)be;
    if (bytes) memmove(dst, src, bytes);
    return ARWKV_OK;
}
ARWKV_PRIVATE arwkv_result arwkv__cpu_zero(arwkv_backend *be, void *p, size_t bytes) {
    (void)be;
    if (bytes) memset(p, 0, bytes);
    return ARWKV_OK;
}
ARWKV_PRIVATE arwkv_result arwkv__cpu_sync(arwkv_backend *be) {
    (void)be;
    return ARWKV_OK;
}
/* The CPU runs each op as it is called: a streamed copy is done before upload_async returns. */
ARWKV_PRIVATE arwkv_result arwkv__cpu_upload_async(arwkv_backend *be, int lane, void *dst, const void *src, size_t bytes) {
    (void)lane;
    return arwkv__cpu_memcpy(be, dst, src, bytes);
}
ARWKV_PRIVATE arwkv_result arwkv__cpu_upload_wait(arwkv_backend *be, int lane) {
    (void)be, (void)lane;
    return ARWKV_OK;
}
static const arwkv_mem_ops arwkv__cpu_mem_ops = {arwkv__cpu_alloc,      arwkv__cpu_free,       arwkv__cpu_memcpy,       arwkv__cpu_memcpy,
                                                 arwkv__cpu_memcpy,     arwkv__cpu_zero,       arwkv__cpu_sync,         arwkv__cpu_host_alloc,
                                                 arwkv__cpu_host_free,  arwkv__cpu_upload_async, arwkv__cpu_upload_wait};

/* ---- Parallel loops over ranges ----------------------------------------------------------------
   Elementwise ops cut [0, n) into chunks; fn(ctx, begin, end) handles one. */
typedef void (*arwkv__range_fn)(void *ctx, size_t begin, size_t end);
typedef struct arwkv__range_job {
    arwkv__range_fn fn;
    void *ctx;
    size_t n, chunk;
} arwkv__range_job;
ARWKV_PRIVATE void arwkv__range_task(void *ctx, int task, int thread) {
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
/* The element types every backend reads for weights (the matrix product's B, embedding tables,
   norm weights); any other type would be read as something it is not. */
ARWKV_PRIVATE arwkv_result arwkv__float_type_check(arwkv_dtype t, const char *what) {
    if (t == ARWKV_F32 || t == ARWKV_BF16 || t == ARWKV_F16) return ARWKV_OK;
    return arwkv__fail(ARWKV_ERR_UNSUPPORTED, "%s: element type %s (F32, BF16 or F16 only)", what, arwkv_dtype_name(t));
}
ARWKV_PRIVATE arwkv_result arwkv__cpu_gemm(arwkv_backend *be, int M, int N, int K, const float *A, ptrdiff_t a_rs, ptrdiff_t a_cs,
                                    const void *B, arwkv_dtype b_type, ptrdiff_t b_rs, ptrdiff_t b_cs, float *C, ptrdiff_t ldc,
                                    int accumulate, const float *bias) {
    ARWKV__TRY(arwkv__float_type_check(b_type, "matrix product B"));
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
ARWKV_PRIVATE void arwkv__embed_fwd_range(void *ctx, size_t b, size_t e) {
    arwkv__embed_ctx *c = (arwkv__embed_ctx *)ctx;
    size_t esz = arwkv_dtype_size(c->type);
    for (size_t t = b; t < e; t++)
        arwkv__widen(c->out + t * (size_t)c->C, (const char *)c->table + (size_t)c->ids[t] * (size_t)c->C * esz, c->type, 1, c->C);
}
ARWKV_PRIVATE arwkv_result arwkv__cpu_embed_forward(arwkv_backend *be, float *out, const int32_t *ids, int T, const void *table,
                                             arwkv_dtype type, int C) {
    ARWKV__TRY(arwkv__float_type_check(type, "embedding"));
    arwkv__embed_ctx c = {out, ids, table, type, C, NULL, T};
    arwkv__parallel_range(be->pool, (size_t)T, 16, arwkv__embed_fwd_range, &c);
    return ARWKV_OK;
}
ARWKV_PRIVATE void arwkv__embed_bwd_range(void *ctx, size_t b, size_t e) {
    arwkv__embed_ctx *c = (arwkv__embed_ctx *)ctx;
    for (int t = 0; t < c->T; t++) {
        float *row = c->out + (size_t)c->ids[t] * (size_t)c->C;
        const float *d = c->dout + (size_t)t * (size_t)c->C;
        for (size_t i = b; i < e; i++) row[i] += d[i];
    }
}
ARWKV_PRIVATE arwkv_result arwkv__cpu_embed_backward(arwkv_backend *be, float *dtable, const int32_t *ids, int T, const float *dout, int C) {
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
ARWKV_PRIVATE void arwkv__rms_fwd_range(void *ctx, size_t b, size_t e) {
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
ARWKV_PRIVATE arwkv_result arwkv__cpu_rmsnorm_forward(arwkv_backend *be, float *out, float *rstd, const float *x, const void *w,
                                               arwkv_dtype w_type, int T, int C, float eps) {
    ARWKV__TRY(arwkv__float_type_check(w_type, "RMSNorm"));
    arwkv__rms_ctx c;
    memset(&c, 0, sizeof c);
    c.out = out, c.rstd = rstd, c.x = x, c.w = w, c.w_type = w_type, c.T = T, c.C = C, c.eps = eps;
    arwkv__parallel_range(be->pool, (size_t)T, 8, arwkv__rms_fwd_range, &c);
    return ARWKV_OK;
}
ARWKV_PRIVATE void arwkv__rms_bwd_dx_range(void *ctx, size_t b, size_t e) {
    arwkv__rms_ctx *c = (arwkv__rms_ctx *)ctx;
    size_t esz = arwkv_dtype_size(c->w_type);
    float wrow[512]; /* weights widened a piece at a time (one call per weight was most of the time) */
    for (size_t t = b; t < e; t++) {
        const float *x = c->x + t * (size_t)c->C, *dy = c->dout + t * (size_t)c->C;
        float *dx = c->dx + t * (size_t)c->C;
        float r = c->rstd_in[t];
        double dot = 0;
        for (int i0 = 0; i0 < c->C; i0 += 512) {
            int n = c->C - i0 < 512 ? c->C - i0 : 512;
            arwkv__widen(wrow, (const char *)c->w + (size_t)i0 * esz, c->w_type, 1, n);
            for (int i = 0; i < n; i++) dot += (double)dy[i0 + i] * wrow[i] * x[i0 + i];
        }
        float k = (float)(dot * r * r * r / c->C);
        for (int i0 = 0; i0 < c->C; i0 += 512) {
            int n = c->C - i0 < 512 ? c->C - i0 : 512;
            arwkv__widen(wrow, (const char *)c->w + (size_t)i0 * esz, c->w_type, 1, n);
            if (c->accumulate_dx)
                for (int i = 0; i < n; i++) dx[i0 + i] += r * wrow[i] * dy[i0 + i] - x[i0 + i] * k;
            else
                for (int i = 0; i < n; i++) dx[i0 + i] = r * wrow[i] * dy[i0 + i] - x[i0 + i] * k;
        }
    }
}
ARWKV_PRIVATE void arwkv__rms_bwd_dw_range(void *ctx, size_t b, size_t e) {
    arwkv__rms_ctx *c = (arwkv__rms_ctx *)ctx;
    for (int t = 0; t < c->T; t++) {
        const float *x = c->x + (size_t)t * c->C, *dy = c->dout + (size_t)t * c->C;
        float r = c->rstd_in[t];
        for (size_t i = b; i < e; i++) c->dw[i] += dy[i] * x[i] * r;
    }
}
ARWKV_PRIVATE arwkv_result arwkv__cpu_rmsnorm_backward(arwkv_backend *be, float *dx, float *dw, const float *dout, const float *x,
                                                const void *w, arwkv_dtype w_type, const float *rstd, int T, int C,
                                                int accumulate_dx) {
    ARWKV__TRY(arwkv__float_type_check(w_type, "RMSNorm"));
    arwkv__rms_ctx c;
    memset(&c, 0, sizeof c);
    c.dx = dx, c.dw = dw, c.dout = dout, c.x = x, c.w = w, c.w_type = w_type, c.rstd_in = rstd, c.T = T, c.C = C;
    c.accumulate_dx = accumulate_dx;
    if (dx) arwkv__parallel_range(be->pool, (size_t)T, 8, arwkv__rms_bwd_dx_range, &c);
    if (dw) arwkv__parallel_range(be->pool, (size_t)C, 64, arwkv__rms_bwd_dw_range, &c);
    return ARWKV_OK;
}

#ifdef ARWKV__AVX512
/* e^x for 16 floats, by the steps of arwkv__exp8_avx2 below (the attention's; relative error ~2e-7,
   like expf), except that a NaN stays NaN: the clamps take x as their second operand, which min and
   max return for a NaN. */
ARWKV_PRIVATE __m512 arwkv__exp16_avx512(__m512 x) {
    x = _mm512_maskz_min_ps(ARWKV__ALL16, _mm512_set1_ps(88.37f), _mm512_maskz_max_ps(ARWKV__ALL16, _mm512_set1_ps(-87.33f), x));
    __m512 n = _mm512_maskz_roundscale_ps(ARWKV__ALL16, _mm512_mul_ps(x, _mm512_set1_ps(1.44269504088896341f)),
                                          _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    __m512 r = _mm512_fnmadd_ps(n, _mm512_set1_ps(0.693359375f), x);
    r = _mm512_fnmadd_ps(n, _mm512_set1_ps(-2.12194440e-4f), r);
    __m512 p = _mm512_set1_ps(1.9875691500e-4f);
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.3981999507e-3f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(8.3334519073e-3f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(4.1665795894e-2f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.6666665459e-1f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(5.0000001201e-1f));
    __m512 y = _mm512_fmadd_ps(_mm512_mul_ps(p, r), r, _mm512_add_ps(r, _mm512_set1_ps(1.0f)));
    __m512i e = _mm512_add_epi32(_mm512_maskz_cvtps_epi32(ARWKV__ALL16, n), _mm512_set1_epi32(127));
    e = _mm512_maskz_slli_epi32(ARWKV__ALL16, e, 23);
    return _mm512_mul_ps(y, _mm512_castsi512_ps(e));
}
#endif

/* ---- SwiGLU -----------------------------------------------------------------------------------
   out = silu(g) * u, silu(g) = g * sigmoid(g);  d silu/dg = s * (1 + g * (1 - s)). */
typedef struct arwkv__swiglu_ctx {
    float *out, *dgate, *dup;
    const float *gate, *up, *dout;
} arwkv__swiglu_ctx;
ARWKV_PRIVATE void arwkv__swiglu_fwd_range(void *ctx, size_t b, size_t e) {
    arwkv__swiglu_ctx *c = (arwkv__swiglu_ctx *)ctx;
    size_t i = b;
#ifdef ARWKV__AVX512 /* the same formula 16 at a time, with arwkv__exp16_avx512 for expf */
    for (; i + 16 <= e; i += 16) {
        __m512 g = _mm512_loadu_ps(c->gate + i), en = arwkv__exp16_avx512(_mm512_sub_ps(_mm512_setzero_ps(), g));
        _mm512_storeu_ps(c->out + i, _mm512_mul_ps(_mm512_div_ps(g, _mm512_add_ps(_mm512_set1_ps(1.0f), en)), _mm512_loadu_ps(c->up + i)));
    }
#endif
    for (; i < e; i++) {
        float g = c->gate[i];
        c->out[i] = g / (1.0f + expf(-g)) * c->up[i];
    }
}
ARWKV_PRIVATE arwkv_result arwkv__cpu_swiglu_forward(arwkv_backend *be, float *out, const float *gate, const float *up, size_t n) {
    arwkv__swiglu_ctx c = {out, NULL, NULL, gate, up, NULL};
    arwkv__parallel_range(be->pool, n, 4096, arwkv__swiglu_fwd_range, &c);
    return ARWKV_OK;
}
ARWKV_PRIVATE void arwkv__swiglu_bwd_range(void *ctx, size_t b, size_t e) {
    arwkv__swiglu_ctx *c = (arwkv__swiglu_ctx *)ctx;
    size_t i = b;
#ifdef ARWKV__AVX512
    const __m512 one = _mm512_set1_ps(1.0f);
    for (; i + 16 <= e; i += 16) {
        __m512 g = _mm512_loadu_ps(c->gate + i), u = _mm512_loadu_ps(c->up + i), d = _mm512_loadu_ps(c->dout + i);
        __m512 s = _mm512_div_ps(one, _mm512_add_ps(one, arwkv__exp16_avx512(_mm512_sub_ps(_mm512_setzero_ps(), g))));
        _mm512_storeu_ps(c->dup + i, _mm512_mul_ps(_mm512_mul_ps(d, g), s));
        __m512 ds = _mm512_mul_ps(_mm512_mul_ps(_mm512_mul_ps(d, u), s), _mm512_add_ps(one, _mm512_mul_ps(g, _mm512_sub_ps(one, s))));
        _mm512_storeu_ps(c->dgate + i, ds);
    }
#endif
    for (; i < e; i++) {
        float g = c->gate[i], u = c->up[i], s = 1.0f / (1.0f + expf(-g)), d = c->dout[i];
        c->dup[i] = d * g * s; /* inputs are read first: dgate/dup may alias gate/up */
        c->dgate[i] = d * u * s * (1.0f + g * (1.0f - s));
    }
}
ARWKV_PRIVATE arwkv_result arwkv__cpu_swiglu_backward(arwkv_backend *be, float *dgate, float *dup, const float *dout, const float *gate,
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
ARWKV_PRIVATE void arwkv__axpy_range(void *ctx, size_t b, size_t e) {
    arwkv__axpy_ctx *c = (arwkv__axpy_ctx *)ctx;
    for (size_t i = b; i < e; i++) c->y[i] += c->alpha * c->x[i];
}
ARWKV_PRIVATE arwkv_result arwkv__cpu_axpy(arwkv_backend *be, float *y, float alpha, const float *x, size_t n) {
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
   near position 2048 is 2.4e-4 rad, so the same roundings are kept here instead of a float64
   angle: matching the reference beats being more exact than it. */
#define ARWKV__ROPE_MAX_DIM 1024

typedef struct arwkv__rope_ctx {
    float *x;
    ptrdiff_t ld;
    const int32_t *pos;
    int pos0, n_heads, head_dim;
    float *table; /* NULL, or cos then sin of the angles of position p at table + p * head_dim */
    float inv_freq[ARWKV__ROPE_MAX_DIM / 2];
} arwkv__rope_ctx;

/* cos and sin of one position's angles (half of each). */
ARWKV_PRIVATE void arwkv__rope_angles(const arwkv__rope_ctx *c, int pos, float *cs, float *sn) {
    float p = (float)pos;
    for (int i = 0; i < c->head_dim / 2; i++) {
        float angle = p * c->inv_freq[i];
        cs[i] = (float)cos((double)angle);
        sn[i] = (float)sin((double)angle);
    }
}
ARWKV_PRIVATE void arwkv__rope_table_range(void *ctx, size_t b, size_t e) {
    arwkv__rope_ctx *c = (arwkv__rope_ctx *)ctx;
    for (size_t p = b; p < e; p++) {
        float *cs = c->table + p * (size_t)c->head_dim;
        arwkv__rope_angles(c, (int)p, cs, cs + c->head_dim / 2);
    }
}

ARWKV_PRIVATE void arwkv__rope_range(void *ctx, size_t b, size_t e) {
    arwkv__rope_ctx *c = (arwkv__rope_ctx *)ctx;
    int half = c->head_dim / 2;
    float cs_row[ARWKV__ROPE_MAX_DIM / 2], sn_row[ARWKV__ROPE_MAX_DIM / 2];
    for (size_t r = b; r < e; r++) {
        int p = c->pos ? c->pos[r] : c->pos0 + (int)r;
        const float *cs = cs_row, *sn = sn_row; /* one set of angles serves every head of the row */
        if (c->table)
            cs = c->table + (size_t)p * (size_t)c->head_dim, sn = cs + half;
        else
            arwkv__rope_angles(c, p, cs_row, sn_row);
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

/* The shape check of rope, which both backends make (the GPU's table of frequencies holds
   ARWKV__ROPE_MAX_DIM / 2 of them). */
ARWKV_PRIVATE arwkv_result arwkv__rope_check(int rows, int n_heads, int head_dim, ptrdiff_t ld, double theta) {
    if (rows < 0 || n_heads <= 0 || head_dim <= 0 || head_dim % 2 || head_dim > ARWKV__ROPE_MAX_DIM || ld < (ptrdiff_t)n_heads * head_dim ||
        !(theta > 0))
        return arwkv__fail(ARWKV_ERR_INVALID_ARGUMENT, "rope: bad shape (rows %d, heads %d, head_dim %d (even, at most %d), row stride %lld, theta %g)",
                           rows, n_heads, head_dim, ARWKV__ROPE_MAX_DIM, (long long)ld, theta);
    return ARWKV_OK;
}

ARWKV_PRIVATE arwkv_result arwkv__cpu_rope_forward(arwkv_backend *be, float *x, int rows, int n_heads, int head_dim, ptrdiff_t ld,
                                            const int32_t *pos, int pos0, double theta) {
    ARWKV__TRY(arwkv__rope_check(rows, n_heads, head_dim, ld, theta));
    arwkv__rope_ctx c;
    c.x = x, c.ld = ld, c.pos = pos, c.pos0 = pos0, c.n_heads = n_heads, c.head_dim = head_dim;
    float base = (float)theta;
    for (int i = 0; i < head_dim / 2; i++) {
        float exponent = (float)(2 * i) / (float)head_dim;
        c.inv_freq[i] = 1.0f / (float)pow((double)base, (double)exponent);
    }
    /* The sequences of a batch repeat their positions: where positions are given and fewer than
       the rows, their cos and sin (libm's, the bulk of this op) are made once each, in a table. */
    c.table = NULL;
    int n_pos = 0;
    if (pos) {
        int max_pos = -1;
        for (int r = 0; r < rows && max_pos < rows; r++) max_pos = pos[r] < 0 ? rows : pos[r] > max_pos ? pos[r] : max_pos;
        n_pos = max_pos + 1;
        if (n_pos < rows) c.table = (float *)arwkv__malloc(sizeof(float) * (size_t)n_pos * (size_t)head_dim); /* NULL: per row, as before */
    }
    if (c.table) arwkv__parallel_range(be->pool, (size_t)n_pos, 16, arwkv__rope_table_range, &c);
    arwkv__parallel_range(be->pool, (size_t)rows, 16, arwkv__rope_range, &c);
    arwkv__free(c.table);
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

#ifdef ARWKV__AVX512
/* The two kernels above for 32 keys (scores) or 32 value columns (weighted sum) in 16-float
   vectors: eight chains of fused multiply-adds like the AVX2 ones, each lane's chain the same, so
   the same bits. */
ARWKV_PRIVATE void arwkv__attn_scores_4x32_avx512(const float *const *q, const float *kt, int D, float scale, float *s) {
    __m512 c00 = _mm512_setzero_ps(), c01 = c00, c10 = c00, c11 = c00, c20 = c00, c21 = c00, c30 = c00, c31 = c00, x;
    for (int d = 0; d < D; d++) { /* the chains by name: gcc -O2 keeps an array of them in memory */
        __m512 k0 = _mm512_loadu_ps(kt + (size_t)d * ARWKV__ATT_KB), k1 = _mm512_loadu_ps(kt + (size_t)d * ARWKV__ATT_KB + 16);
        x = _mm512_set1_ps(q[0][d]); c00 = _mm512_fmadd_ps(x, k0, c00); c01 = _mm512_fmadd_ps(x, k1, c01);
        x = _mm512_set1_ps(q[1][d]); c10 = _mm512_fmadd_ps(x, k0, c10); c11 = _mm512_fmadd_ps(x, k1, c11);
        x = _mm512_set1_ps(q[2][d]); c20 = _mm512_fmadd_ps(x, k0, c20); c21 = _mm512_fmadd_ps(x, k1, c21);
        x = _mm512_set1_ps(q[3][d]); c30 = _mm512_fmadd_ps(x, k0, c30); c31 = _mm512_fmadd_ps(x, k1, c31);
    }
    __m512 sc = _mm512_set1_ps(scale);
    _mm512_storeu_ps(s + 0 * ARWKV__ATT_KB, _mm512_mul_ps(c00, sc)); _mm512_storeu_ps(s + 0 * ARWKV__ATT_KB + 16, _mm512_mul_ps(c01, sc));
    _mm512_storeu_ps(s + 1 * ARWKV__ATT_KB, _mm512_mul_ps(c10, sc)); _mm512_storeu_ps(s + 1 * ARWKV__ATT_KB + 16, _mm512_mul_ps(c11, sc));
    _mm512_storeu_ps(s + 2 * ARWKV__ATT_KB, _mm512_mul_ps(c20, sc)); _mm512_storeu_ps(s + 2 * ARWKV__ATT_KB + 16, _mm512_mul_ps(c21, sc));
    _mm512_storeu_ps(s + 3 * ARWKV__ATT_KB, _mm512_mul_ps(c30, sc)); _mm512_storeu_ps(s + 3 * ARWKV__ATT_KB + 16, _mm512_mul_ps(c31, sc));
}
ARWKV_PRIVATE void arwkv__attn_pv_4x32_avx512(const float *p, const float *v, ptrdiff_t v_ld, int kb, float *acc, int D) {
    __m512 a00 = _mm512_loadu_ps(acc), a01 = _mm512_loadu_ps(acc + 16), a10 = _mm512_loadu_ps(acc + D),
           a11 = _mm512_loadu_ps(acc + D + 16), a20 = _mm512_loadu_ps(acc + 2 * D), a21 = _mm512_loadu_ps(acc + 2 * D + 16),
           a30 = _mm512_loadu_ps(acc + 3 * D), a31 = _mm512_loadu_ps(acc + 3 * D + 16), x;
    for (int j = 0; j < kb; j++) {
        __m512 v0 = _mm512_loadu_ps(v + j * v_ld), v1 = _mm512_loadu_ps(v + j * v_ld + 16);
        x = _mm512_set1_ps(p[j]); a00 = _mm512_fmadd_ps(x, v0, a00); a01 = _mm512_fmadd_ps(x, v1, a01);
        x = _mm512_set1_ps(p[ARWKV__ATT_KB + j]); a10 = _mm512_fmadd_ps(x, v0, a10); a11 = _mm512_fmadd_ps(x, v1, a11);
        x = _mm512_set1_ps(p[2 * ARWKV__ATT_KB + j]); a20 = _mm512_fmadd_ps(x, v0, a20); a21 = _mm512_fmadd_ps(x, v1, a21);
        x = _mm512_set1_ps(p[3 * ARWKV__ATT_KB + j]); a30 = _mm512_fmadd_ps(x, v0, a30); a31 = _mm512_fmadd_ps(x, v1, a31);
    }
    _mm512_storeu_ps(acc, a00); _mm512_storeu_ps(acc + 16, a01);
    _mm512_storeu_ps(acc + D, a10); _mm512_storeu_ps(acc + D + 16, a11);
    _mm512_storeu_ps(acc + 2 * D, a20); _mm512_storeu_ps(acc + 2 * D + 16, a21);
    _mm512_storeu_ps(acc + 3 * D, a30); _mm512_storeu_ps(acc + 3 * D + 16, a31);
}
#endif

/* kt[d][j] = key j's element d for the kb keys of a block (key j at keys + j*ld), zero up to kb16. */
ARWKV_PRIVATE void arwkv__attn_transpose_keys(float *kt, const float *keys, ptrdiff_t ld, int kb, int kb16, int D) {
    int j = 0;
#ifdef ARWKV__AVX2
    if (D % 8 == 0)
        for (; j + 8 <= kb; j += 8)
            for (int d = 0; d < D; d += 8) {
                __m256 r[8];
                for (int i = 0; i < 8; i++) r[i] = _mm256_loadu_ps(keys + (j + i) * ld + d);
                arwkv__transpose8_avx2(r);
                for (int i = 0; i < 8; i++) _mm256_storeu_ps(kt + (size_t)(d + i) * ARWKV__ATT_KB + j, r[i]);
            }
#endif
    for (; j < kb; j++)
        for (int d = 0; d < D; d++) kt[(size_t)d * ARWKV__ATT_KB + j] = keys[j * ld + d];
    for (int d = 0; d < D; d++)
        for (int jj = kb; jj < kb16; jj++) kt[(size_t)d * ARWKV__ATT_KB + jj] = 0;
}

#ifdef ARWKV__AVX2
/* e^x for 8 floats: x = n ln2 + r with |r| <= ln2/2, e^r by Cephes' degree-7 polynomial (relative
   error ~2e-7, like expf), 2^n put in the exponent. x below -87.3 gives 2^-126 (about 1e-38), not
   0: callers zero masked entries themselves. */
ARWKV_PRIVATE __m256 arwkv__exp8_avx2(__m256 x) {
    x = _mm256_min_ps(_mm256_max_ps(x, _mm256_set1_ps(-87.33f)), _mm256_set1_ps(88.37f));
    __m256 n = _mm256_round_ps(_mm256_mul_ps(x, _mm256_set1_ps(1.44269504088896341f)), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    __m256 r = _mm256_fnmadd_ps(n, _mm256_set1_ps(0.693359375f), x); /* ln2 in two parts: r stays exact */
    r = _mm256_fnmadd_ps(n, _mm256_set1_ps(-2.12194440e-4f), r);
    __m256 p = _mm256_set1_ps(1.9875691500e-4f);
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.3981999507e-3f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(8.3334519073e-3f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(4.1665795894e-2f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.6666665459e-1f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(5.0000001201e-1f));
    __m256 y = _mm256_fmadd_ps(_mm256_mul_ps(p, r), r, _mm256_add_ps(r, _mm256_set1_ps(1.0f)));
    __m256i e = _mm256_slli_epi32(_mm256_add_epi32(_mm256_cvtps_epi32(n), _mm256_set1_epi32(127)), 23);
    return _mm256_mul_ps(y, _mm256_castsi256_ps(e));
}
#endif

/* One row of a key block: with the running maximum m (updated here) and the scores sr[0..n_valid)
   (n_valid >= 1 valid keys, kb in the block), replace sr[j] by exp(sr[j] - m_new) for the valid keys
   and 0 for the rest; return their sum and the factor exp(m_old - m_new) for the older sums. */
ARWKV_PRIVATE float arwkv__attn_softmax_row(float *sr, int n_valid, int kb, float *m, float *alpha) {
    float m_old = *m, m_new = m_old, l = 0;
    int j = 0;
#if defined(ARWKV__AVX512)
    /* 16 at a time; the sum takes each half of 8 in turn, the AVX2 order below (the same bits) */
    int n16 = (n_valid + 15) & ~15; /* within the row: KB is a multiple of 16 */
    for (int jj = n_valid; jj < n16; jj++) sr[jj] = -INFINITY;
    __m512 vm = _mm512_set1_ps(m_old);
    for (; j < n16; j += 16) vm = _mm512_maskz_max_ps(ARWKV__ALL16, vm, _mm512_loadu_ps(sr + j));
    __m256 vm8 = _mm256_max_ps(_mm512_maskz_extractf32x8_ps((__mmask8)0xFF, vm, 0), _mm512_maskz_extractf32x8_ps((__mmask8)0xFF, vm, 1));
    __m128 h = _mm_max_ps(_mm256_castps256_ps128(vm8), _mm256_extractf128_ps(vm8, 1));
    h = _mm_max_ps(h, _mm_movehl_ps(h, h));
    m_new = _mm_cvtss_f32(_mm_max_ss(h, _mm_movehdup_ps(h)));
    __m512 vmn = _mm512_set1_ps(m_new);
    __m256 vs = _mm256_setzero_ps();
    for (j = 0; j < n16; j += 16) {
        __mmask16 valid = ARWKV__MASK16(n_valid - j);
        __m512 e = _mm512_maskz_mov_ps(valid, arwkv__exp16_avx512(_mm512_sub_ps(_mm512_loadu_ps(sr + j), vmn))); /* masked keys: 0 */
        _mm512_storeu_ps(sr + j, e);
        vs = _mm256_add_ps(vs, _mm512_maskz_extractf32x8_ps((__mmask8)0xFF, e, 0));
        vs = _mm256_add_ps(vs, _mm512_maskz_extractf32x8_ps((__mmask8)0xFF, e, 1));
    }
    l = arwkv__hsum8(vs);
    j = n16;
#elif defined(ARWKV__AVX2)
    int n8 = (n_valid + 7) & ~7; /* within the row: KB is a multiple of 8 */
    for (int jj = n_valid; jj < n8; jj++) sr[jj] = -INFINITY;
    __m256 vm = _mm256_set1_ps(m_old);
    for (; j < n8; j += 8) vm = _mm256_max_ps(vm, _mm256_loadu_ps(sr + j));
    __m128 h = _mm_max_ps(_mm256_castps256_ps128(vm), _mm256_extractf128_ps(vm, 1));
    h = _mm_max_ps(h, _mm_movehl_ps(h, h));
    m_new = _mm_cvtss_f32(_mm_max_ss(h, _mm_movehdup_ps(h)));
    __m256 vmn = _mm256_set1_ps(m_new), vs = _mm256_setzero_ps();
    const __m256 lane = _mm256_setr_ps(0, 1, 2, 3, 4, 5, 6, 7), nv = _mm256_set1_ps((float)n_valid);
    for (j = 0; j < n8; j += 8) {
        __m256 e = arwkv__exp8_avx2(_mm256_sub_ps(_mm256_loadu_ps(sr + j), vmn));
        e = _mm256_and_ps(e, _mm256_cmp_ps(_mm256_add_ps(lane, _mm256_set1_ps((float)j)), nv, _CMP_LT_OQ)); /* masked keys: 0 */
        _mm256_storeu_ps(sr + j, e);
        vs = _mm256_add_ps(vs, e);
    }
    l = arwkv__hsum8(vs);
    j = n8;
#else
    for (; j < n_valid; j++) m_new = sr[j] > m_new ? sr[j] : m_new;
    for (j = 0; j < n_valid; j++) {
        float d = sr[j] - m_new;
        sr[j] = d < -87.33f ? 0.0f : expf(d); /* below that it underflows, and libm takes a slow path */
        l += sr[j];
    }
#endif
    for (; j < kb; j++) sr[j] = 0;
    *alpha = m_old == -INFINITY ? 0.0f : expf(m_old - m_new);
    *m = m_new;
    return l;
}

ARWKV_PRIVATE void arwkv__attn_task(void *ctx, int task, int thread) {
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
    int rows4 = (n_rows + 3) & ~3;
    memset(acc, 0, sizeof(float) * (size_t)rows4 * D);
    for (int r = 0; r < rows4; r++) mx[r] = -INFINITY, sum[r] = 0;
    int n_keys = c->p0 + i0 + n_rows; /* the last row sees keys 0 .. p0+i0+n_rows-1 */
    for (int j0 = 0; j0 < n_keys; j0 += KB) {
        int kb = n_keys - j0 < KB ? n_keys - j0 : KB, kb16 = (kb + 15) & ~15;
        arwkv__attn_transpose_keys(kt, kbase + (ptrdiff_t)j0 * kv_ld, kv_ld, kb, kb16, D);
        for (int r0 = 0; r0 < rows4; r0 += 4) {
            int j = 0;
#ifdef ARWKV__AVX512
            for (; j + 32 <= kb16; j += 32) arwkv__attn_scores_4x32_avx512(qrow + r0, kt + j, D, c->scale, s + (size_t)r0 * KB + j);
#endif
            for (; j < kb16; j += 16) arwkv__attn_scores_4x16(qrow + r0, kt + j, D, c->scale, s + (size_t)r0 * KB + j);
        }
        for (int r = 0; r < rows4; r++) {
            float *sr = s + (size_t)r * KB, alpha;
            int n_valid = c->p0 + i0 + r - j0 + 1; /* causal: keys j0 .. p0+i0+r */
            if (n_valid > kb) n_valid = kb;
            if (r >= n_rows || n_valid <= 0) { /* nothing to add in this block */
                memset(sr, 0, sizeof(float) * (size_t)kb);
                continue;
            }
            float l = arwkv__attn_softmax_row(sr, n_valid, kb, &mx[r], &alpha);
            sum[r] = sum[r] * alpha + l;
            if (alpha != 1.0f)
                for (int d = 0; d < D; d++) acc[(size_t)r * D + d] *= alpha;
        }
        const float *vblock = vbase + (ptrdiff_t)j0 * kv_ld;
        for (int r0 = 0; r0 < rows4; r0 += 4) {
            int d0 = 0;
#ifdef ARWKV__AVX512
            for (; d0 + 32 <= D; d0 += 32) arwkv__attn_pv_4x32_avx512(s + (size_t)r0 * KB, vblock + d0, kv_ld, kb, acc + (size_t)r0 * D + d0, D);
#endif
            for (; d0 < D; d0 += 16)
                arwkv__attn_pv_4xw(s + (size_t)r0 * KB, vblock + d0, kv_ld, kb, acc + (size_t)r0 * D + d0, D, D - d0 < 16 ? D - d0 : 16);
        }
    }
    for (int r = 0; r < n_rows; r++) {
        float *o = c->out + (ptrdiff_t)(b * c->Tq + i0 + r) * q_ld + (ptrdiff_t)h * D;
        float inv = 1.0f / sum[r];
        for (int d = 0; d < D; d++) o[d] = acc[(size_t)r * D + d] * inv;
    }
}

/* The shape checks of attention_forward, shared by every backend (max_d: the largest head size
   the backend supports; where: "" or a note such as " on the GPU" for the message). */
ARWKV_PRIVATE arwkv_result arwkv__attention_check(int B, int Tq, int p0, int H, int Hkv, int D, ptrdiff_t kv_batch_stride, int max_d,
                                                  const char *where) {
    if (B < 0 || Tq < 0 || p0 < 0 || H <= 0 || Hkv <= 0 || H % Hkv || D <= 0 || D > max_d ||
        (B > 1 && kv_batch_stride < (ptrdiff_t)(p0 + Tq) * Hkv * D))
        return arwkv__fail(ARWKV_ERR_INVALID_ARGUMENT,
                           "attention: bad shape (B %d, Tq %d, p0 %d, heads %d, kv heads %d (must divide heads), head_dim %d (at most %d%s), "
                           "kv batch stride %lld)", B, Tq, p0, H, Hkv, D, max_d, where, (long long)kv_batch_stride);
    return ARWKV_OK;
}

ARWKV_PRIVATE arwkv_result arwkv__cpu_attention_forward(arwkv_backend *be, float *out, const float *q, const float *k, const float *v, int B,
                                                 int Tq, int p0, int H, int Hkv, int D, ptrdiff_t kv_batch_stride) {
    ARWKV__TRY(arwkv__attention_check(B, Tq, p0, H, Hkv, D, kv_batch_stride, ARWKV__ATT_MAX_D, ""));
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

static const arwkv_qwen_ops arwkv__cpu_qwen_ops = {arwkv__cpu_rope_forward, arwkv__cpu_attention_forward};

/* ---- RWKV-7 time mix: CPU ops --------------------------------------------------------------------
   The ops of arwkv_rwkv7_ops on host memory. Determinism: every task owns its outputs, and a sum
   over token rows (a parameter gradient) is taken by one task in row order, so any number of
   threads gives the same bits. Inner loops over a head's channels go eight lanes at a time with
   fixed partial sums, which the compiler turns into vector code without reassociating anything. */

#define ARWKV__R7_MAX_N 256 /* largest head size (per-head vectors live on the stack) */
#define ARWKV__R7_CBLOCK 64 /* channels per task of the loops that run down the time axis */
#define ARWKV__R7_MAX_MIXES 6 /* token-shift mixes of a time mix: r, w, k, v, a and the gate g */

/* e^-0.5: the decay is exp(-e^-0.5 * sigmoid(z)), the same as exp(-exp(-softplus(-z) - 0.5)). */
#define ARWKV__R7_DECAY_SCALE 0.60653065971263342f

ARWKV_PRIVATE inline float arwkv__r7_sigmoid(float x) { return 1.0f / (1.0f + expf(-x)); }

/* a*b + c in one rounding where the CPU has FMA (the vectorizer turns it into vfmadd). */
#if defined(__FMA__) || defined(__FP_FAST_FMAF)
#define ARWKV__R7_FMA(a, b, c) fmaf((a), (b), (c))
#else
#define ARWKV__R7_FMA(a, b, c) ((a) * (b) + (c))
#endif

/* The eight partial sums of the lane loops below, added in a fixed order. */
ARWKV_PRIVATE inline float arwkv__r7_sum8(const float *acc) {
    return ((acc[0] + acc[4]) + (acc[2] + acc[6])) + ((acc[1] + acc[5]) + (acc[3] + acc[7]));
}

/* sum_j x[j] y[j] over n (a multiple of 8). */
ARWKV_PRIVATE inline float arwkv__r7_dot(const float *ARWKV__RESTRICT x, const float *ARWKV__RESTRICT y, int n) {
    float acc[8] = {0, 0, 0, 0, 0, 0, 0, 0};
    for (int j = 0; j < n; j += 8)
        for (int l = 0; l < 8; l++) acc[l] = ARWKV__R7_FMA(x[j + l], y[j + l], acc[l]);
    return arwkv__r7_sum8(acc);
}

#ifdef ARWKV__AVX512
/* The time mix's elementwise AVX-512 loops: 16 channels at a time, the lanes past n masked off, and
   each lane doing the scalar loop's operations in its order (a product then a sum, never fused: the
   C code is compiled without contraction), so their results are the scalar ones to the bit. Float64
   sums over rows take the 16 lanes as two halves of 8 doubles. */
ARWKV_PRIVATE inline __m512d arwkv__lo8_pd(__m512 v) {
    return _mm512_maskz_cvtps_pd((__mmask8)0xFF, _mm512_maskz_extractf32x8_ps((__mmask8)0xFF, v, 0));
}
ARWKV_PRIVATE inline __m512d arwkv__hi8_pd(__m512 v) {
    return _mm512_maskz_cvtps_pd((__mmask8)0xFF, _mm512_maskz_extractf32x8_ps((__mmask8)0xFF, v, 1));
}
/* acc[0..16) += (double)a * (double)b, lane by lane (acc has room for 16, whatever the mask). */
ARWKV_PRIVATE inline void arwkv__acc16_prod_pd(double *acc, __m512 a, __m512 b) {
    _mm512_storeu_pd(acc, _mm512_add_pd(_mm512_loadu_pd(acc), _mm512_mul_pd(arwkv__lo8_pd(a), arwkv__lo8_pd(b))));
    _mm512_storeu_pd(acc + 8, _mm512_add_pd(_mm512_loadu_pd(acc + 8), _mm512_mul_pd(arwkv__hi8_pd(a), arwkv__hi8_pd(b))));
}
/* acc[0..16) += (double)a. */
ARWKV_PRIVATE inline void arwkv__acc16_pd(double *acc, __m512 a) {
    _mm512_storeu_pd(acc, _mm512_add_pd(_mm512_loadu_pd(acc), arwkv__lo8_pd(a)));
    _mm512_storeu_pd(acc + 8, _mm512_add_pd(_mm512_loadu_pd(acc + 8), arwkv__hi8_pd(a)));
}
#endif

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

ARWKV_PRIVATE void arwkv__r7_lerp_fwd_range(void *ctx, size_t begin, size_t end) {
    arwkv__r7_lerp_ctx *c = (arwkv__r7_lerp_ctx *)ctx;
    size_t MC = (size_t)c->B * c->T * c->C;
    for (size_t u = begin; u < end; u++) {
        int b = (int)(u / (size_t)c->n_blocks), c0 = (int)(u % (size_t)c->n_blocks) * ARWKV__R7_CBLOCK;
        int c1 = c0 + ARWKV__R7_CBLOCK < c->C ? c0 + ARWKV__R7_CBLOCK : c->C;
        for (int t = 0; t < c->T; t++) {
            size_t row = ((size_t)b * c->T + t) * c->C;
            const float *x = c->x + row;
            const float *prev = t > 0 ? x - c->C : c->shift_in ? c->shift_in + (size_t)b * c->C : NULL;
            int i = c0;
#ifdef ARWKV__AVX512
            for (; i < c1; i += 16) {
                __mmask16 k = ARWKV__MASK16(c1 - i);
                __m512 xi = _mm512_maskz_loadu_ps(k, x + i), xx = _mm512_sub_ps(prev ? _mm512_maskz_loadu_ps(k, prev + i) : _mm512_setzero_ps(), xi);
                for (int m = 0; m < c->n_mix; m++)
                    _mm512_mask_storeu_ps(c->xmix + m * MC + row + i, k, _mm512_add_ps(xi, _mm512_mul_ps(xx, _mm512_maskz_loadu_ps(k, c->mu[m] + i))));
            }
#endif
            for (; i < c1; i++) {
                float xx = (prev ? prev[i] : 0.0f) - x[i];
                for (int m = 0; m < c->n_mix; m++) c->xmix[m * MC + row + i] = x[i] + xx * c->mu[m][i];
            }
        }
        if (c->shift_out) /* after every read of shift_in: the two may be one array */
            for (int i = c0; i < c1; i++) c->shift_out[(size_t)b * c->C + i] = c->x[((size_t)b * c->T + c->T - 1) * c->C + i];
    }
}

/* The check both backends make before a lerp (forward or backward). */
ARWKV_PRIVATE arwkv_result arwkv__r7_lerp_check(int n_mix, int B, int T, int C) {
    if (n_mix < 0 || n_mix > ARWKV__R7_MAX_MIXES)
        return arwkv__fail(ARWKV_ERR_INVALID_ARGUMENT, "time-mix lerp: %d mixes (0 to %d)", n_mix, ARWKV__R7_MAX_MIXES);
    if (B < 0 || T < 0 || C < 0) return arwkv__fail(ARWKV_ERR_INVALID_ARGUMENT, "time-mix lerp: bad shape (B %d, T %d, C %d)", B, T, C);
    return ARWKV_OK;
}

ARWKV_PRIVATE arwkv_result arwkv__cpu_r7_lerp_forward(arwkv_backend *be, float *xmix, const float *x, const float *shift_in,
                                               float *shift_out, const float *const *mu, int n_mix, int B, int T, int C) {
    ARWKV__TRY(arwkv__r7_lerp_check(n_mix, B, T, C));
    if (B == 0 || T == 0 || C == 0) return ARWKV_OK;
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
ARWKV_PRIVATE void arwkv__r7_lerp_bwd_range(void *ctx, size_t begin, size_t end) {
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
                int i = c0;
#ifdef ARWKV__AVX512
                for (; i < c1; i += 16) {
                    __mmask16 k = ARWKV__MASK16(c1 - i);
                    __m512 xi = _mm512_maskz_loadu_ps(k, x + i), xx = _mm512_sub_ps(prev ? _mm512_maskz_loadu_ps(k, prev + i) : _mm512_setzero_ps(), xi);
                    __m512 g = _mm512_maskz_loadu_ps(k, carry + (i - c0)), g_prev = _mm512_setzero_ps();
                    for (int m = 0; m < c->n_mix; m++) {
                        __m512 dm = _mm512_maskz_loadu_ps(k, c->dxmix + m * MC + row + i), mu = _mm512_maskz_loadu_ps(k, c->mu[m] + i);
                        g = _mm512_add_ps(g, _mm512_mul_ps(dm, _mm512_sub_ps(_mm512_set1_ps(1.0f), mu)));
                        g_prev = _mm512_add_ps(g_prev, _mm512_mul_ps(dm, mu));
                        arwkv__acc16_prod_pd(&gmu[m][i - c0], dm, xx); /* masked lanes add 0 to unused slots */
                    }
                    if (c->dx) _mm512_mask_storeu_ps(c->dx + row + i, k, g);
                    _mm512_mask_storeu_ps(carry + (i - c0), k, g_prev);
                }
#endif
                for (; i < c1; i++) {
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

ARWKV_PRIVATE arwkv_result arwkv__cpu_r7_lerp_backward(arwkv_backend *be, float *dx, float *dshift, float *const *dmu, const float *dxmix,
                                                const float *x, const float *shift_in, const float *const *mu, int n_mix, int B,
                                                int T, int C) {
    ARWKV__TRY(arwkv__r7_lerp_check(n_mix, B, T, C));
    if (B == 0 || T == 0 || C == 0) return ARWKV_OK;
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

ARWKV_PRIVATE void arwkv__r7_act_fwd_range(void *ctx, size_t b, size_t e) {
    arwkv__r7_act_ctx *c = (arwkv__r7_act_ctx *)ctx;
    if (c->kind == ARWKV_ACT_TANH)
        for (size_t i = b; i < e; i++) c->h[i] = tanhf(c->h[i]);
    else
        for (size_t i = b; i < e; i++) c->h[i] = arwkv__r7_sigmoid(c->h[i]);
}
/* The check both backends make before a LoRA activation. */
ARWKV_PRIVATE arwkv_result arwkv__r7_act_check(int kind) {
    if (kind != ARWKV_ACT_TANH && kind != ARWKV_ACT_SIGMOID) return arwkv__fail(ARWKV_ERR_INVALID_ARGUMENT, "unknown activation %d", kind);
    return ARWKV_OK;
}
ARWKV_PRIVATE arwkv_result arwkv__cpu_r7_act_forward(arwkv_backend *be, float *h, size_t n, int kind) {
    ARWKV__TRY(arwkv__r7_act_check(kind));
    arwkv__r7_act_ctx c = {h, NULL, NULL, kind};
    arwkv__parallel_range(be->pool, n, 4096, arwkv__r7_act_fwd_range, &c);
    return ARWKV_OK;
}
/* tanh' = 1 - tanh^2 and sigmoid' = s (1 - s), both from the activated value. */
ARWKV_PRIVATE void arwkv__r7_act_bwd_range(void *ctx, size_t b, size_t e) {
    arwkv__r7_act_ctx *c = (arwkv__r7_act_ctx *)ctx;
    if (c->kind == ARWKV_ACT_TANH)
        for (size_t i = b; i < e; i++) c->dh[i] *= 1.0f - c->h_in[i] * c->h_in[i];
    else
        for (size_t i = b; i < e; i++) c->dh[i] *= c->h_in[i] * (1.0f - c->h_in[i]);
}
ARWKV_PRIVATE arwkv_result arwkv__cpu_r7_act_backward(arwkv_backend *be, float *dh, const float *h, size_t n, int kind) {
    ARWKV__TRY(arwkv__r7_act_check(kind));
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
ARWKV_PRIVATE float arwkv__r7_removal_key(float *kk, const float *k_in, const float *k_k, int N) {
    double ss = 0;
    for (int j = 0; j < N; j++) {
        kk[j] = k_in[j] * k_k[j];
        ss += (double)kk[j] * kk[j];
    }
    float norm = (float)sqrt(ss);
    return norm > ARWKV__R7_NORM_EPS ? norm : ARWKV__R7_NORM_EPS;
}

/* The prepare loops' sigmoids and exps, a head's row at a time (n is a multiple of 8): dst[j] =
   sigmoid(x[j] + y[j]), and dst[j] = exp(-e^-0.5 sw[j]) (the decay). libm's expf one at a time was
   the largest part of the time mix's elementwise work; the AVX-512 build takes 16 at a time through
   arwkv__exp16_avx512 (relative error ~2e-7, like expf; NaN stays NaN), other builds keep expf. */
ARWKV_PRIVATE void arwkv__r7_sigmoid_sum(float *ARWKV__RESTRICT dst, const float *x, const float *y, int n) {
    int j = 0;
#ifdef ARWKV__AVX512
    const __m512 one = _mm512_set1_ps(1.0f);
    for (; j < n; j += 16) {
        __mmask16 m = n - j >= 16 ? (__mmask16)0xFFFF : (__mmask16)0x00FF;
        __m512 z = _mm512_add_ps(_mm512_maskz_loadu_ps(m, x + j), _mm512_maskz_loadu_ps(m, y + j));
        __m512 e = arwkv__exp16_avx512(_mm512_sub_ps(_mm512_setzero_ps(), z));
        _mm512_mask_storeu_ps(dst + j, m, _mm512_div_ps(one, _mm512_add_ps(one, e)));
    }
#endif
    for (; j < n; j++) dst[j] = arwkv__r7_sigmoid(x[j] + y[j]);
}
ARWKV_PRIVATE void arwkv__r7_decay_of(float *ARWKV__RESTRICT dst, const float *ARWKV__RESTRICT sw, int n) {
    int j = 0;
#ifdef ARWKV__AVX512
    for (; j < n; j += 16) {
        __mmask16 m = n - j >= 16 ? (__mmask16)0xFFFF : (__mmask16)0x00FF;
        __m512 x = _mm512_mul_ps(_mm512_set1_ps(-ARWKV__R7_DECAY_SCALE), _mm512_maskz_loadu_ps(m, sw + j));
        _mm512_mask_storeu_ps(dst + j, m, arwkv__exp16_avx512(x));
    }
#endif
    for (; j < n; j++) dst[j] = expf(-ARWKV__R7_DECAY_SCALE * sw[j]);
}

ARWKV_PRIVATE void arwkv__r7_prep_fwd_range(void *ctx, size_t begin, size_t end) {
    arwkv__r7_prep_ctx *c = (arwkv__r7_prep_ctx *)ctx;
    int N = c->N;
    float kk[ARWKV__R7_MAX_N], sa[ARWKV__R7_MAX_N], sw[ARWKV__R7_MAX_N], sv[ARWKV__R7_MAX_N];
    for (size_t u = begin; u < end; u++) {
        size_t row = u / (size_t)c->H;
        int h0 = (int)(u % (size_t)c->H) * N;
        size_t o = row * (size_t)c->C + (size_t)h0;
        float norm = arwkv__r7_removal_key(kk, c->k_in + o, c->k_k + h0, N);
        arwkv__r7_sigmoid_sum(sa, c->a0 + h0, c->a_lora + o, N);
        arwkv__r7_sigmoid_sum(sw, c->w0 + h0, c->w_lora + o, N);
        arwkv__r7_decay_of(c->decay + o, sw, N);
        if (!c->first_layer) arwkv__r7_sigmoid_sum(sv, c->v0 + h0, c->v_lora + o, N);
        int j = 0;
#ifdef ARWKV__AVX512
        for (; j < N; j += 16) { /* the loop below, 16 channels at a time (the same bits) */
            __mmask16 k = ARWKV__MASK16(N - j);
            size_t i = o + (size_t)j;
            int ch = h0 + j;
            __m512 a = _mm512_maskz_loadu_ps(k, sa + j), kkn = _mm512_div_ps(_mm512_maskz_loadu_ps(k, kk + j), _mm512_set1_ps(norm));
            __m512 k_in = _mm512_maskz_loadu_ps(k, c->k_in + i), one = _mm512_set1_ps(1.0f);
            _mm512_mask_storeu_ps(c->k + i, k, _mm512_mul_ps(k_in, _mm512_add_ps(one, _mm512_mul_ps(_mm512_sub_ps(a, one), _mm512_maskz_loadu_ps(k, c->k_a + ch)))));
            _mm512_mask_storeu_ps(c->wkv_a + i, k, _mm512_xor_ps(kkn, _mm512_set1_ps(-0.0f))); /* -kkn, the sign flipped */
            _mm512_mask_storeu_ps(c->wkv_b + i, k, _mm512_mul_ps(kkn, a));
            __m512 v_in = _mm512_maskz_loadu_ps(k, c->v_in + i);
            if (c->first_layer) {
                _mm512_mask_storeu_ps(c->v + i, k, v_in);
                if (c->v_first) _mm512_mask_storeu_ps(c->v_first + i, k, v_in);
            } else {
                __m512 v = _mm512_add_ps(v_in, _mm512_mul_ps(_mm512_sub_ps(_mm512_maskz_loadu_ps(k, c->v_first + i), v_in), _mm512_maskz_loadu_ps(k, sv + j)));
                _mm512_mask_storeu_ps(c->v + i, k, v);
            }
        }
#endif
        for (; j < N; j++) {
            size_t i = o + (size_t)j;
            int ch = h0 + j;
            float a = sa[j], kkn = kk[j] / norm;
            c->k[i] = c->k_in[i] * (1.0f + (a - 1.0f) * c->k_a[ch]);
            c->wkv_a[i] = -kkn;
            c->wkv_b[i] = kkn * a;
            if (c->first_layer) {
                c->v[i] = c->v_in[i];
                if (c->v_first) c->v_first[i] = c->v_in[i];
            } else {
                float s = sv[j];
                c->v[i] = c->v_in[i] + (c->v_first[i] - c->v_in[i]) * s;
            }
        }
    }
}

/* The shape check both backends make before the prepare step. */
ARWKV_PRIVATE arwkv_result arwkv__r7_prepare_check(const arwkv_r7_prepare_args *p) {
    if (p->N <= 0 || p->N > ARWKV__R7_MAX_N || p->C % p->N != 0)
        return arwkv__fail(ARWKV_ERR_INVALID_ARGUMENT, "time-mix prepare: head size %d with width %d", p->N, p->C);
    return ARWKV_OK;
}

/* The kernel's context: the arguments and the head count. */
ARWKV_PRIVATE void arwkv__r7_prep_ctx_from(arwkv__r7_prep_ctx *c, const arwkv_r7_prepare_args *p) {
    memset(c, 0, sizeof *c);
    c->M = p->M, c->C = p->C, c->N = p->N, c->H = p->C / p->N, c->first_layer = p->first_layer;
    c->k_in = p->k_in, c->v_in = p->v_in, c->w_lora = p->w_lora, c->a_lora = p->a_lora, c->v_lora = p->v_lora, c->v_first = p->v_first;
    c->w0 = p->w0, c->a0 = p->a0, c->v0 = p->v0, c->k_k = p->k_k, c->k_a = p->k_a;
    c->decay = p->decay, c->k = p->k, c->v = p->v, c->wkv_a = p->wkv_a, c->wkv_b = p->wkv_b;
    c->d_decay = p->d_decay, c->dk = p->dk, c->dv = p->dv, c->d_wkv_a = p->d_wkv_a, c->d_wkv_b = p->d_wkv_b;
    c->dk_in = p->dk_in, c->dv_in = p->dv_in, c->dw_lora = p->dw_lora, c->da_lora = p->da_lora, c->dv_lora = p->dv_lora;
    c->dv_first = p->dv_first, c->dw0 = p->dw0, c->da0 = p->da0, c->dv0 = p->dv0, c->dk_k = p->dk_k, c->dk_a = p->dk_a;
}

ARWKV_PRIVATE arwkv_result arwkv__cpu_r7_prepare_forward(arwkv_backend *be, const arwkv_r7_prepare_args *p) {
    ARWKV__TRY(arwkv__r7_prepare_check(p));
    arwkv__r7_prep_ctx c;
    arwkv__r7_prep_ctx_from(&c, p);
    arwkv__parallel_range(be->pool, (size_t)p->M * c.H, 16, arwkv__r7_prep_fwd_range, &c);
    return ARWKV_OK;
}

#ifdef ARWKV__AVX512
/* 16 channels (mask k) of one row of the prepare backward below: every lane does that loop's
   operations in its order, the loads and stores too (an output may be an input's buffer). The
   float64 row sums g_* have room for 16 entries from the first channel. */
ARWKV_PRIVATE void arwkv__r7_prep_bwd16_avx512(const arwkv__r7_prep_ctx *c, size_t i, int ch, __mmask16 k, int clamped, float norm, float dot,
                                               const float *kkn, const float *dkkn, const float *a, const float *sw, const float *dec,
                                               const float *sv, double *g_w0, double *g_a0, double *g_v0, double *g_kk, double *g_ka) {
    const __m512 one = _mm512_set1_ps(1.0f), vnorm = _mm512_set1_ps(norm);
    __m512 vsw = _mm512_maskz_loadu_ps(k, sw), va = _mm512_maskz_loadu_ps(k, a), vkkn = _mm512_maskz_loadu_ps(k, kkn);
    __m512 dz = _mm512_mul_ps(_mm512_maskz_loadu_ps(k, c->d_decay + i), _mm512_maskz_loadu_ps(k, dec));
    dz = _mm512_mul_ps(_mm512_mul_ps(_mm512_mul_ps(dz, _mm512_set1_ps(-ARWKV__R7_DECAY_SCALE)), vsw), _mm512_sub_ps(one, vsw));
    _mm512_mask_storeu_ps(c->dw_lora + i, k, dz);
    arwkv__acc16_pd(g_w0, dz);

    __m512 dk = _mm512_maskz_loadu_ps(k, c->dk + i), k_in = _mm512_maskz_loadu_ps(k, c->k_in + i), k_a = _mm512_maskz_loadu_ps(k, c->k_a + ch);
    __m512 da = _mm512_add_ps(_mm512_mul_ps(_mm512_maskz_loadu_ps(k, c->d_wkv_b + i), vkkn), _mm512_mul_ps(_mm512_mul_ps(dk, k_in), k_a));
    __m512 da_pre = _mm512_mul_ps(_mm512_mul_ps(da, va), _mm512_sub_ps(one, va));
    _mm512_mask_storeu_ps(c->da_lora + i, k, da_pre);
    arwkv__acc16_pd(g_a0, da_pre);
    __m512 a_m1 = _mm512_sub_ps(va, one);
    for (int h = 0; h < 2; h++) { /* g_ka += ((double)dk * k_in) * (a - 1), in float64 */
        __m512d p = h ? _mm512_mul_pd(arwkv__hi8_pd(dk), arwkv__hi8_pd(k_in)) : _mm512_mul_pd(arwkv__lo8_pd(dk), arwkv__lo8_pd(k_in));
        p = _mm512_mul_pd(p, h ? arwkv__hi8_pd(a_m1) : arwkv__lo8_pd(a_m1));
        _mm512_storeu_pd(g_ka + 8 * h, _mm512_add_pd(_mm512_loadu_pd(g_ka + 8 * h), p));
    }

    __m512 vdkkn = _mm512_maskz_loadu_ps(k, dkkn);
    __m512 dkk = clamped ? _mm512_div_ps(vdkkn, vnorm)
                         : _mm512_div_ps(_mm512_sub_ps(vdkkn, _mm512_mul_ps(vkkn, _mm512_set1_ps(dot))), vnorm);
    __m512 dk_in = _mm512_add_ps(_mm512_mul_ps(dk, _mm512_add_ps(one, _mm512_mul_ps(a_m1, k_a))),
                                 _mm512_mul_ps(dkk, _mm512_maskz_loadu_ps(k, c->k_k + ch)));
    _mm512_mask_storeu_ps(c->dk_in + i, k, dk_in);
    arwkv__acc16_prod_pd(g_kk, dkk, _mm512_maskz_loadu_ps(k, c->k_in + i)); /* k_in read again: dk_in may be its buffer */

    if (c->first_layer) {
        __m512 dv = _mm512_maskz_loadu_ps(k, c->dv + i);
        _mm512_mask_storeu_ps(c->dv_in + i, k, c->dv_first ? _mm512_add_ps(dv, _mm512_maskz_loadu_ps(k, c->dv_first + i)) : _mm512_add_ps(dv, _mm512_setzero_ps()));
    } else {
        __m512 s = _mm512_maskz_loadu_ps(k, sv), dv = _mm512_maskz_loadu_ps(k, c->dv + i);
        __m512 ds = _mm512_mul_ps(dv, _mm512_sub_ps(_mm512_maskz_loadu_ps(k, c->v_first + i), _mm512_maskz_loadu_ps(k, c->v_in + i)));
        ds = _mm512_mul_ps(_mm512_mul_ps(ds, s), _mm512_sub_ps(one, s));
        _mm512_mask_storeu_ps(c->dv_in + i, k, _mm512_mul_ps(dv, _mm512_sub_ps(one, s)));
        if (c->dv_first) _mm512_mask_storeu_ps(c->dv_first + i, k, _mm512_add_ps(_mm512_maskz_loadu_ps(k, c->dv_first + i), _mm512_mul_ps(dv, s)));
        _mm512_mask_storeu_ps(c->dv_lora + i, k, ds);
        arwkv__acc16_pd(g_v0, ds);
    }
}
#endif

ARWKV_PRIVATE void arwkv__r7_prep_bwd_range(void *ctx, size_t begin, size_t end) {
    arwkv__r7_prep_ctx *c = (arwkv__r7_prep_ctx *)ctx;
    int N = c->N;
    float kkn[ARWKV__R7_MAX_N], a[ARWKV__R7_MAX_N], dkkn[ARWKV__R7_MAX_N], sw[ARWKV__R7_MAX_N], dec[ARWKV__R7_MAX_N], sv[ARWKV__R7_MAX_N];
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
            arwkv__r7_sigmoid_sum(a, c->a0 + h0, c->a_lora + o, N);
            arwkv__r7_sigmoid_sum(sw, c->w0 + h0, c->w_lora + o, N);
            arwkv__r7_decay_of(dec, sw, N);
            if (!c->first_layer) arwkv__r7_sigmoid_sum(sv, c->v0 + h0, c->v_lora + o, N);
            for (int j = 0; j < N; j++) {
                kkn[j] /= norm;
                dkkn[j] = -c->d_wkv_a[o + j] + c->d_wkv_b[o + j] * a[j];
                dot += (double)dkkn[j] * kkn[j];
            }
            int j = 0;
#ifdef ARWKV__AVX512
            for (; j < N; j += 16) /* the loop below, 16 channels at a time (the same bits) */
                arwkv__r7_prep_bwd16_avx512(c, o + (size_t)j, h0 + j, ARWKV__MASK16(N - j), clamped, norm, (float)dot, kkn + j, dkkn + j,
                                            a + j, sw + j, dec + j, sv + j, g_w0 + j, g_a0 + j, g_v0 + j, g_kk + j, g_ka + j);
#endif
            for (; j < N; j++) {
                size_t i = o + (size_t)j;
                int ch = h0 + j;
                float dz = c->d_decay[i] * dec[j] * -ARWKV__R7_DECAY_SCALE * sw[j] * (1.0f - sw[j]);
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
                    float s = sv[j], dv = c->dv[i];
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

ARWKV_PRIVATE arwkv_result arwkv__cpu_r7_prepare_backward(arwkv_backend *be, const arwkv_r7_prepare_args *p) {
    ARWKV__TRY(arwkv__r7_prepare_check(p));
    arwkv__r7_prep_ctx c;
    arwkv__r7_prep_ctx_from(&c, p);
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

#ifdef ARWKV__AVX512
/* The AVX-512 form of the WKV7 loops: a row of N channels is N/16 vectors of 16, the last one half
   (a mask of 8 lanes) when N % 16 == 8. Four rows of S go together: their dot products are four
   independent chains (one row's chain alone would wait on the FMA latency), and each vector of
   r, d, k, a, b is loaded once for the four. A row's sums have 16 partial sums, reduced in a tree,
   where the portable loops have 8 (so the last bits differ from an AVX2 build); the column sums of
   the backward add the rows in the same order as the portable loops. */
ARWKV_PRIVATE inline __mmask16 arwkv__r7_mask16(int N, int j) { return N - j >= 16 ? (__mmask16)0xFFFF : (__mmask16)0x00FF; }
/* The sum of 16 lanes: the two halves added, then arwkv__hsum8's tree (g++ 12's cast to the low
   half is an unmasked extract, so both halves are zero-masked extracts). */
ARWKV_PRIVATE inline float arwkv__hsum16(__m512 v) {
    __m256 lo = _mm512_maskz_extractf32x8_ps((__mmask8)0xFF, v, 0), hi = _mm512_maskz_extractf32x8_ps((__mmask8)0xFF, v, 1);
    return arwkv__hsum8(_mm256_add_ps(lo, hi));
}
/* Loads and stores of a vector of a row: whole when every vector is (full, a constant in each
   inlined copy), masked otherwise. A load of a masked store's data is not forwarded from the store
   buffer on some CPUs (Zen 4) and waits for it to reach the cache, so N % 16 == 0 avoids masks. */
#define ARWKV__R7_LD(p) (full ? _mm512_loadu_ps(p) : _mm512_maskz_loadu_ps(m, p))
#define ARWKV__R7_ST(p, x) (full ? _mm512_storeu_ps(p, x) : _mm512_mask_storeu_ps(p, m, x))
#define ARWKV__R7_INLINE static inline __attribute__((always_inline))

/* arwkv__wkv7_step for four rows i..i+3 at a time (N is a multiple of 8, so of 4), from the state
   S_in into S (the same array, or one apart: every element is read before its own store). */
ARWKV__R7_INLINE void arwkv__wkv7_step_avx512_lanes(float *S, const float *S_in, int N, const float *ARWKV__RESTRICT r, const float *ARWKV__RESTRICT d,
                                    const float *ARWKV__RESTRICT k, const float *ARWKV__RESTRICT v, const float *ARWKV__RESTRICT a,
                                    const float *ARWKV__RESTRICT b, float *ARWKV__RESTRICT y, float *ARWKV__RESTRICT sa, int full) {
    for (int i = 0; i < N; i += 4) {
        float *s0 = S + (size_t)i * N, *s1 = s0 + N, *s2 = s1 + N, *s3 = s2 + N;
        const float *i0 = S_in + (size_t)i * N, *i1 = i0 + N, *i2 = i1 + N, *i3 = i2 + N;
        __m512 p0 = _mm512_setzero_ps(), p1 = p0, p2 = p0, p3 = p0;
        for (int j = 0; j < N; j += 16) {
            __mmask16 m = arwkv__r7_mask16(N, j);
            __m512 aj = ARWKV__R7_LD(a + j);
            p0 = _mm512_fmadd_ps(ARWKV__R7_LD(i0 + j), aj, p0);
            p1 = _mm512_fmadd_ps(ARWKV__R7_LD(i1 + j), aj, p1);
            p2 = _mm512_fmadd_ps(ARWKV__R7_LD(i2 + j), aj, p2);
            p3 = _mm512_fmadd_ps(ARWKV__R7_LD(i3 + j), aj, p3);
        }
        float sa0 = arwkv__hsum16(p0), sa1 = arwkv__hsum16(p1), sa2 = arwkv__hsum16(p2),
              sa3 = arwkv__hsum16(p3);
        __m512 x0 = _mm512_set1_ps(sa0), x1 = _mm512_set1_ps(sa1), x2 = _mm512_set1_ps(sa2), x3 = _mm512_set1_ps(sa3);
        __m512 v0 = _mm512_set1_ps(v[i]), v1 = _mm512_set1_ps(v[i + 1]), v2 = _mm512_set1_ps(v[i + 2]), v3 = _mm512_set1_ps(v[i + 3]);
        __m512 q0 = _mm512_setzero_ps(), q1 = q0, q2 = q0, q3 = q0;
        for (int j = 0; j < N; j += 16) {
            __mmask16 m = arwkv__r7_mask16(N, j);
            __m512 dj = ARWKV__R7_LD(d + j), bj = ARWKV__R7_LD(b + j), kj = ARWKV__R7_LD(k + j),
                   rj = ARWKV__R7_LD(r + j), n;
#define ARWKV__R7_ROW(s, s_in, x, vi, q)                                                                                    \
    n = _mm512_fmadd_ps(ARWKV__R7_LD(s_in + j), dj, _mm512_fmadd_ps(x, bj, _mm512_mul_ps(vi, kj)));            \
    ARWKV__R7_ST(s + j, n);                                                                                    \
    q = _mm512_fmadd_ps(n, rj, q);
            ARWKV__R7_ROW(s0, i0, x0, v0, q0)
            ARWKV__R7_ROW(s1, i1, x1, v1, q1)
            ARWKV__R7_ROW(s2, i2, x2, v2, q2)
            ARWKV__R7_ROW(s3, i3, x3, v3, q3)
#undef ARWKV__R7_ROW
        }
        if (y) y[i] = arwkv__hsum16(q0), y[i + 1] = arwkv__hsum16(q1), y[i + 2] = arwkv__hsum16(q2),
               y[i + 3] = arwkv__hsum16(q3);
        if (sa) sa[i] = sa0, sa[i + 1] = sa1, sa[i + 2] = sa2, sa[i + 3] = sa3;
    }
}
ARWKV_PRIVATE void arwkv__wkv7_step_avx512(float *S, const float *S_in, int N, const float *ARWKV__RESTRICT r, const float *ARWKV__RESTRICT d,
                                    const float *ARWKV__RESTRICT k, const float *ARWKV__RESTRICT v, const float *ARWKV__RESTRICT a,
                                    const float *ARWKV__RESTRICT b, float *ARWKV__RESTRICT y, float *ARWKV__RESTRICT sa) {
    if (N % 16 == 0) arwkv__wkv7_step_avx512_lanes(S, S_in, N, r, d, k, v, a, b, y, sa, 1);
    else arwkv__wkv7_step_avx512_lanes(S, S_in, N, r, d, k, v, a, b, y, sa, 0);
}
#endif

/* One token of one head: sa = S a; S = S diag(d) + sa b^T + v k^T; y = S r (y, sa may be NULL),
   from the state S_in into S (S_in == S: in place; otherwise two arrays that do not overlap, which
   spares the backward's replay a copy of the state per token). The loops over j go eight lanes at a
   time (N is a multiple of 8) so that they vectorize. */
ARWKV_PRIVATE void arwkv__wkv7_step(float *S, const float *S_in, int N, const float *ARWKV__RESTRICT r, const float *ARWKV__RESTRICT d,
                             const float *ARWKV__RESTRICT k, const float *ARWKV__RESTRICT v, const float *ARWKV__RESTRICT a,
                             const float *ARWKV__RESTRICT b, float *ARWKV__RESTRICT y, float *ARWKV__RESTRICT sa) {
#ifdef ARWKV__AVX512
    arwkv__wkv7_step_avx512(S, S_in, N, r, d, k, v, a, b, y, sa);
#else
    if (S_in != S) memcpy(S, S_in, (size_t)N * (size_t)N * sizeof(float)); /* the loops below run in place */
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
#endif
}

/* A token of one head costs about a microsecond: waking the workers for a recurrent step would
   cost more than it saves, so small calls run on the caller's thread (task scratch still comes
   from the pool, as thread 0's). */
ARWKV_PRIVATE arwkv_pool *arwkv__r7_wkv_pool(arwkv_backend *be, int B, int T, int H) {
    return (int64_t)B * T * H >= 16 ? be->pool : NULL;
}

ARWKV_PRIVATE void arwkv__r7_wkv_fwd_task(void *ctx, int task, int thread) {
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
        arwkv__wkv7_step(S, S, N, c->r + o, c->decay + o, c->k + o, c->v + o, c->a + o, c->b + o, c->y + o, NULL);
    }
}

/* The checks of both recurrences (WKV7, WKV6) on either backend: the head size against the
   backend's own list (size_ok; sizes names the list), then the shape: B sequences of T tokens, H
   heads, B x H x N within an int (the tasks and the GPU grid count in int). */
ARWKV_PRIVATE arwkv_result arwkv__wkv_check(const char *op, int B, int T, int H, int N, int size_ok, const char *sizes) {
    if (!size_ok) return arwkv__fail(ARWKV_ERR_UNSUPPORTED, "%s: head size %d (%s)", op, N, sizes);
    if (B < 0 || T < 0 || H <= 0 || (size_t)B * H * N > 0x7fffffff)
        return arwkv__fail(ARWKV_ERR_INVALID_ARGUMENT, "%s: bad shape (B %d, T %d, H %d)", op, B, T, H);
    return ARWKV_OK;
}
/* A backward replays the states from the forward's checkpoints; where there are tokens it needs them. */
ARWKV_PRIVATE arwkv_result arwkv__wkv_ckpt_check(const char *op, int B, int T, const float *ckpt) {
    if (!ckpt && B > 0 && T > 0)
        return arwkv__fail(ARWKV_ERR_INVALID_ARGUMENT, "%s backward: no state checkpoints (run the forward with ckpt)", op);
    return ARWKV_OK;
}
/* The CPU's head sizes: whole vectors of 8 lanes, the per-head rows on the stack. */
#define ARWKV__R7_CPU_SIZE_OK(N) ((N) > 0 && (N) % 8 == 0 && (N) <= ARWKV__R7_MAX_N)
#define ARWKV__R7_STR_(x) #x
#define ARWKV__R7_STR(x) ARWKV__R7_STR_(x)
#define ARWKV__R7_CPU_SIZES "a multiple of 8, at most " ARWKV__R7_STR(ARWKV__R7_MAX_N)

ARWKV_PRIVATE arwkv_result arwkv__cpu_r7_wkv7_forward(arwkv_backend *be, int B, int T, int H, int N, const float *r, const float *decay,
                                               const float *k, const float *v, const float *a, const float *b, float *y,
                                               float *state, float *ckpt) {
    ARWKV__TRY(arwkv__wkv_check("WKV7", B, T, H, N, ARWKV__R7_CPU_SIZE_OK(N), ARWKV__R7_CPU_SIZES));
    arwkv__r7_wkv_ctx c;
    memset(&c, 0, sizeof c);
    c.B = B, c.T = T, c.H = H, c.N = N, c.r = r, c.decay = decay, c.k = k, c.v = v, c.a = a, c.b = b;
    c.y = y, c.state = state, c.ckpt = ckpt, c.pool = be->pool;
    arwkv_pool_run(arwkv__r7_wkv_pool(be, B, T, H), B * H, arwkv__r7_wkv_fwd_task, &c);
    if (c.oom) return arwkv__fail(ARWKV_ERR_OUT_OF_MEMORY, "WKV7 forward: out of scratch memory");
    return ARWKV_OK;
}

#ifndef ARWKV__AVX512 /* (the AVX-512 build has arwkv__wkv7_step_back_rows4_avx512 below) */
/* Row i of one backward step: g (row i of G) gains dy_i r^T, the column sums dr, dk, db, dd, da
   gain row i's terms, then g becomes row i of the previous token's G. Returns dv_i. */
ARWKV_PRIVATE float arwkv__wkv7_step_back_row(int N, float *ARWKV__RESTRICT g, const float *ARWKV__RESTRICT before,
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
#endif

#ifdef ARWKV__AVX512
/* arwkv__wkv7_step_back_row for rows i..i+3 (g, before, after: their row i; dyi, vi, sai: their
   element i; dv gets the four dv_i). The column sums dr, dk, db, dd, da take the four rows in order,
   so they have the portable loops' bits; dv and dsa are 16-lane sums reduced in a tree. */
ARWKV__R7_INLINE void arwkv__wkv7_step_back_rows4_avx512(int N, float *ARWKV__RESTRICT g, const float *ARWKV__RESTRICT before,
                                               const float *ARWKV__RESTRICT after, const float *dyi, const float *vi, const float *sai,
                                               const float *ARWKV__RESTRICT r, const float *ARWKV__RESTRICT d,
                                               const float *ARWKV__RESTRICT k, const float *ARWKV__RESTRICT a,
                                               const float *ARWKV__RESTRICT b, float *ARWKV__RESTRICT dr, float *ARWKV__RESTRICT dk,
                                               float *ARWKV__RESTRICT db, float *ARWKV__RESTRICT dd, float *ARWKV__RESTRICT da,
                                               float *dv, int full) {
    __m512 dy4[4], v4[4], sa4[4], acc_v[4], acc_sa[4], dsa4[4];
    for (int t = 0; t < 4; t++) {
        dy4[t] = _mm512_set1_ps(dyi[t]), v4[t] = _mm512_set1_ps(vi[t]), sa4[t] = _mm512_set1_ps(sai[t]);
        acc_v[t] = acc_sa[t] = _mm512_setzero_ps();
    }
    for (int j = 0; j < N; j += 16) {
        __mmask16 m = arwkv__r7_mask16(N, j);
        __m512 rj = ARWKV__R7_LD(r + j), kj = ARWKV__R7_LD(k + j), bj = ARWKV__R7_LD(b + j);
        __m512 vdr = ARWKV__R7_LD(dr + j), vdk = ARWKV__R7_LD(dk + j), vdb = ARWKV__R7_LD(db + j),
               vdd = ARWKV__R7_LD(dd + j);
        for (int t = 0; t < 4; t++) {
            size_t o = (size_t)t * N + j;
            __m512 gj = _mm512_fmadd_ps(dy4[t], rj, ARWKV__R7_LD(g + o));
            ARWKV__R7_ST(g + o, gj);
            vdr = _mm512_fmadd_ps(ARWKV__R7_LD(after + o), dy4[t], vdr);
            vdk = _mm512_fmadd_ps(gj, v4[t], vdk);
            vdb = _mm512_fmadd_ps(gj, sa4[t], vdb);
            vdd = _mm512_fmadd_ps(gj, ARWKV__R7_LD(before + o), vdd);
            acc_v[t] = _mm512_fmadd_ps(gj, kj, acc_v[t]);
            acc_sa[t] = _mm512_fmadd_ps(gj, bj, acc_sa[t]);
        }
        ARWKV__R7_ST(dr + j, vdr), ARWKV__R7_ST(dk + j, vdk);
        ARWKV__R7_ST(db + j, vdb), ARWKV__R7_ST(dd + j, vdd);
    }
    for (int t = 0; t < 4; t++) dsa4[t] = _mm512_set1_ps(arwkv__hsum16(acc_sa[t])), dv[t] = arwkv__hsum16(acc_v[t]);
    for (int j = 0; j < N; j += 16) {
        __mmask16 m = arwkv__r7_mask16(N, j);
        __m512 aj = ARWKV__R7_LD(a + j), dj = ARWKV__R7_LD(d + j), vda = ARWKV__R7_LD(da + j);
        for (int t = 0; t < 4; t++) {
            size_t o = (size_t)t * N + j;
            vda = _mm512_fmadd_ps(ARWKV__R7_LD(before + o), dsa4[t], vda);
            ARWKV__R7_ST(g + o, _mm512_fmadd_ps(ARWKV__R7_LD(g + o), dj, _mm512_mul_ps(dsa4[t], aj)));
        }
        ARWKV__R7_ST(da + j, vda);
    }
}
#endif

ARWKV_PRIVATE void arwkv__r7_wkv_bwd_task(void *ctx, int task, int thread) {
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
            arwkv__wkv7_step(states + (l + 1) * NN, states + l * NN, N, c->r + o, c->decay + o, c->k + o, c->v + o, c->a + o, c->b + o, NULL,
                             sa + (size_t)l * N);
        }
        for (int l = len - 1; l >= 0; l--) {
            size_t o = ((size_t)bi * c->T + t0 + l) * C + (size_t)h * N;
            const float *ARWKV__RESTRICT r = c->r + o, *ARWKV__RESTRICT d = c->decay + o, *ARWKV__RESTRICT k = c->k + o;
            const float *ARWKV__RESTRICT v = c->v + o, *ARWKV__RESTRICT a = c->a + o, *ARWKV__RESTRICT b = c->b + o;
            const float *ARWKV__RESTRICT dy = c->dy + o, *ARWKV__RESTRICT s_a = sa + (size_t)l * N;
            for (int j = 0; j < N; j++) dk[j] = db[j] = dd[j] = dr[j] = da[j] = 0;
#ifdef ARWKV__AVX512
            for (int i = 0; i < N; i += 4) {
                float dv4[4];
                arwkv__wkv7_step_back_rows4_avx512(N, G + (size_t)i * N, states + l * NN + (size_t)i * N,
                                                   states + (l + 1) * NN + (size_t)i * N, dy + i, v + i, s_a + i, r, d, k, a, b, dr,
                                                   dk, db, dd, da, dv4, N % 16 == 0);
                for (int t = 0; t < 4; t++) c->dv[o + i + t] += dv4[t];
            }
#else
            for (int i = 0; i < N; i++)
                c->dv[o + i] += arwkv__wkv7_step_back_row(N, G + (size_t)i * N, states + l * NN + (size_t)i * N,
                                                          states + (l + 1) * NN + (size_t)i * N, dy[i], v[i], s_a[i], r, d, k,
                                                          a, b, dr, dk, db, dd, da);
#endif
            int j = 0;
#ifdef ARWKV__AVX512 /* the same adds, 16 at a time (the compiler cannot: the outputs might overlap) */
            for (; j < N; j += 16) {
                __mmask16 m = arwkv__r7_mask16(N, j);
                _mm512_mask_storeu_ps(c->dr + o + j, m, _mm512_add_ps(_mm512_maskz_loadu_ps(m, c->dr + o + j), _mm512_maskz_loadu_ps(m, dr + j)));
                _mm512_mask_storeu_ps(c->dk + o + j, m, _mm512_add_ps(_mm512_maskz_loadu_ps(m, c->dk + o + j), _mm512_maskz_loadu_ps(m, dk + j)));
                _mm512_mask_storeu_ps(c->d_decay + o + j, m, _mm512_maskz_loadu_ps(m, dd + j));
                _mm512_mask_storeu_ps(c->da + o + j, m, _mm512_maskz_loadu_ps(m, da + j));
                _mm512_mask_storeu_ps(c->db + o + j, m, _mm512_maskz_loadu_ps(m, db + j));
            }
#endif
            for (; j < N; j++) {
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

ARWKV_PRIVATE arwkv_result arwkv__cpu_r7_wkv7_backward(arwkv_backend *be, int B, int T, int H, int N, const float *r, const float *decay,
                                                const float *k, const float *v, const float *a, const float *b, const float *dy,
                                                const float *ckpt, float *dstate, float *dr, float *d_decay, float *dk, float *dv,
                                                float *da, float *db) {
    ARWKV__TRY(arwkv__wkv_check("WKV7", B, T, H, N, ARWKV__R7_CPU_SIZE_OK(N), ARWKV__R7_CPU_SIZES));
    ARWKV__TRY(arwkv__wkv_ckpt_check("WKV7", B, T, ckpt));
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
ARWKV_PRIVATE float arwkv__r7_finish_head(const arwkv__r7_finish_ctx *c, size_t o, int h0, float *p, float *xhat, float *rstd) {
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

ARWKV_PRIVATE void arwkv__r7_finish_fwd_range(void *ctx, size_t begin, size_t end) {
    arwkv__r7_finish_ctx *c = (arwkv__r7_finish_ctx *)ctx;
    float p[ARWKV__R7_MAX_N], xhat[ARWKV__R7_MAX_N], rstd;
    for (size_t u = begin; u < end; u++) {
        int h0 = (int)(u % (size_t)c->H) * c->N;
        size_t o = u / (size_t)c->H * (size_t)c->C + (size_t)h0;
        arwkv__r7_finish_head(c, o, h0, p, xhat, &rstd);
        for (int j = 0; j < c->N; j++) c->o[o + j] = c->g ? p[j] * c->g[o + j] : p[j];
    }
}

/* The checks both backends make before the finish step. */
ARWKV_PRIVATE arwkv_result arwkv__r7_finish_check(int C, int N, const float *ln_w, const float *ln_b) {
    if (N <= 0 || N > ARWKV__R7_MAX_N || C % N != 0)
        return arwkv__fail(ARWKV_ERR_INVALID_ARGUMENT, "time-mix finish: head size %d with width %d", N, C);
    if (!ln_w != !ln_b) return arwkv__fail(ARWKV_ERR_INVALID_ARGUMENT, "time-mix finish: group norm needs both ln_x weight and bias");
    return ARWKV_OK;
}

ARWKV_PRIVATE void arwkv__r7_finish_ctx_from(arwkv__r7_finish_ctx *c, const arwkv_r7_finish_args *f) {
    memset(c, 0, sizeof *c);
    c->M = f->M, c->C = f->C, c->N = f->N, c->H = f->C / f->N;
    c->y = f->y, c->r = f->r, c->k = f->k, c->v = f->v, c->r_k = f->r_k, c->ln_w = f->ln_w, c->ln_b = f->ln_b, c->gn_eps = f->gn_eps;
    c->g = f->g, c->o = f->o, c->d_o = f->d_o, c->dy = f->dy, c->dr = f->dr, c->dk = f->dk, c->dv = f->dv, c->dg = f->dg;
    c->dr_k = f->dr_k, c->dln_w = f->dln_w, c->dln_b = f->dln_b;
}

ARWKV_PRIVATE arwkv_result arwkv__cpu_r7_finish_forward(arwkv_backend *be, const arwkv_r7_finish_args *f) {
    ARWKV__TRY(arwkv__r7_finish_check(f->C, f->N, f->ln_w, f->ln_b));
    arwkv__r7_finish_ctx c;
    arwkv__r7_finish_ctx_from(&c, f);
    arwkv__parallel_range(be->pool, (size_t)f->M * c.H, 16, arwkv__r7_finish_fwd_range, &c);
    return ARWKV_OK;
}

ARWKV_PRIVATE void arwkv__r7_finish_bwd_range(void *ctx, size_t begin, size_t end) {
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

ARWKV_PRIVATE arwkv_result arwkv__cpu_r7_finish_backward(arwkv_backend *be, const arwkv_r7_finish_args *f) {
    ARWKV__TRY(arwkv__r7_finish_check(f->C, f->N, f->ln_w, f->ln_b));
    arwkv__r7_finish_ctx c;
    arwkv__r7_finish_ctx_from(&c, f);
    arwkv__parallel_range(be->pool, (size_t)c.H, 1, arwkv__r7_finish_bwd_range, &c);
    return ARWKV_OK;
}

static const arwkv_rwkv7_ops arwkv__cpu_rwkv7_ops = {
    arwkv__cpu_r7_lerp_forward,    arwkv__cpu_r7_lerp_backward,    arwkv__cpu_r7_act_forward,   arwkv__cpu_r7_act_backward,
    arwkv__cpu_r7_prepare_forward, arwkv__cpu_r7_prepare_backward, arwkv__cpu_r7_wkv7_forward,  arwkv__cpu_r7_wkv7_backward,
    arwkv__cpu_r7_finish_forward,  arwkv__cpu_r7_finish_backward};

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
ARWKV_PRIVATE void arwkv__shift_fwd_range(void *ctx, size_t b, size_t e) {
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
ARWKV_PRIVATE arwkv_result arwkv__cpu_shift_forward(arwkv_backend *be, float *xx, float *xxx, const float *x, const float *shift,
                                             const float *maa_x, int B, int T, int C) {
    arwkv__rwkv6_ctx c;
    memset(&c, 0, sizeof c);
    c.o0 = xx, c.o1 = xxx, c.i0 = x, c.i1 = shift, c.i2 = maa_x, c.B = B, c.T = T, c.C = C;
    arwkv__parallel_range(be->pool, (size_t)B * (size_t)T, 16, arwkv__shift_fwd_range, &c);
    return ARWKV_OK;
}
/* Backward. With D_t = dxx_t + dxxx_t maa_x (all that reaches xx_t), and xx_t = x_{t-1} - x_t:
   dx_t += dxxx_t - D_t + D_{t+1} (the last term only inside the sequence). */
ARWKV_PRIVATE void arwkv__shift_bwd_dx_range(void *ctx, size_t b, size_t e) {
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
/* Column sums, for the bias gradients and for maa_x's: o0[i] += sum over rows of i0[row][i], or of
   i0[row][i] i1[row][i] where i1 is given. Channels split over threads, rows summed in order in
   float64. */
ARWKV_PRIVATE void arwkv__colsum_range(void *ctx, size_t b, size_t e) {
    arwkv__rwkv6_ctx *c = (arwkv__rwkv6_ctx *)ctx;
    double acc[64];
    for (size_t i0 = b; i0 < e; i0 += 64) {
        size_t n = e - i0 < 64 ? e - i0 : 64;
        memset(acc, 0, sizeof acc);
        for (size_t row = 0; row < (size_t)c->rows; row++) {
            const float *d = c->i0 + row * (size_t)c->C + i0, *f = c->i1 ? c->i1 + row * (size_t)c->C + i0 : NULL;
            if (f)
                for (size_t i = 0; i < n; i++) acc[i] += (double)d[i] * f[i];
            else
                for (size_t i = 0; i < n; i++) acc[i] += d[i];
        }
        for (size_t i = 0; i < n; i++) c->o0[i0 + i] += (float)acc[i];
    }
}
ARWKV_PRIVATE arwkv_result arwkv__cpu_shift_backward(arwkv_backend *be, float *dx, float *dmaa_x, const float *dxx, const float *dxxx,
                                              const float *xx, const float *maa_x, int B, int T, int C) {
    arwkv__rwkv6_ctx c;
    memset(&c, 0, sizeof c);
    c.o0 = dx, c.o1 = dmaa_x, c.i0 = dxx, c.i1 = dxxx, c.i2 = xx, c.i3 = maa_x, c.B = B, c.T = T, c.C = C, c.rows = B * T;
    if (dx) arwkv__parallel_range(be->pool, (size_t)B * (size_t)T, 16, arwkv__shift_bwd_dx_range, &c);
    if (dmaa_x) { /* dmaa_x = sum over rows of dxxx xx */
        arwkv__rwkv6_ctx s;
        memset(&s, 0, sizeof s);
        s.o0 = dmaa_x, s.i0 = dxxx, s.i1 = xx, s.rows = B * T, s.C = C;
        arwkv__parallel_range(be->pool, (size_t)C, 64, arwkv__colsum_range, &s);
    }
    return ARWKV_OK;
}

/* Data-dependent lerp of the five branches. */
ARWKV_PRIVATE void arwkv__ddlerp_fwd_range(void *ctx, size_t b, size_t e) {
    arwkv__rwkv6_ctx *c = (arwkv__rwkv6_ctx *)ctx;
    size_t C = (size_t)c->C, plane = (size_t)c->rows * C;
    for (size_t row = b; row < e; row++) {
        const float *x = c->i0 + row * C, *xx = c->i1 + row * C;
        for (int br = 0; br < 5; br++) {
            const float *m = c->i2 + br * plane + row * C, *maa = c->pi[br];
            float *out = c->o0 + br * plane + row * C;
            size_t i = 0;
#ifdef ARWKV__AVX512 /* 16 at a time, the same operations unfused (the same bits) */
            for (; i < C; i += 16) {
                __mmask16 k = ARWKV__MASK16((int)(C - i));
                __m512 mix = _mm512_add_ps(_mm512_maskz_loadu_ps(k, maa + i), _mm512_maskz_loadu_ps(k, m + i));
                _mm512_mask_storeu_ps(out + i, k, _mm512_add_ps(_mm512_maskz_loadu_ps(k, x + i), _mm512_mul_ps(_mm512_maskz_loadu_ps(k, xx + i), mix)));
            }
#endif
            for (; i < C; i++) out[i] = x[i] + xx[i] * (maa[i] + m[i]);
        }
    }
}
ARWKV_PRIVATE arwkv_result arwkv__cpu_ddlerp_forward(arwkv_backend *be, float *xc, const float *x, const float *xx,
                                              const float *const *maa, const float *m, int rows, int C) {
    arwkv__rwkv6_ctx c;
    memset(&c, 0, sizeof c);
    c.o0 = xc, c.i0 = x, c.i1 = xx, c.i2 = m, c.pi = maa, c.rows = rows, c.C = C;
    arwkv__parallel_range(be->pool, (size_t)rows, 16, arwkv__ddlerp_fwd_range, &c);
    return ARWKV_OK;
}
ARWKV_PRIVATE void arwkv__ddlerp_bwd_range(void *ctx, size_t b, size_t e) {
    arwkv__rwkv6_ctx *c = (arwkv__rwkv6_ctx *)ctx;
    size_t C = (size_t)c->C, plane = (size_t)c->rows * C;
    const float *dxc = c->i0, *xx = c->i1, *m = c->i2;
    for (size_t row = b; row < e; row++) {
        float *dx = c->o0 + row * C, *dxx = c->o1 + row * C;
        const float *xr = xx + row * C;
#ifdef ARWKV__AVX512 /* the loops below, 16 columns at a time with the sums in registers (the same bits) */
        for (size_t i = 0; i < C; i += 16) {
            __mmask16 k = ARWKV__MASK16((int)(C - i));
            __m512 sx = _mm512_setzero_ps(), sxx = sx, xri = _mm512_maskz_loadu_ps(k, xr + i);
            for (int br = 0; br < 5; br++) {
                size_t o = br * plane + row * C + i;
                __m512 g = _mm512_maskz_loadu_ps(k, dxc + o), mix = _mm512_add_ps(_mm512_maskz_loadu_ps(k, c->pi[br] + i), _mm512_maskz_loadu_ps(k, m + o));
                sx = _mm512_add_ps(sx, g);
                sxx = _mm512_add_ps(sxx, _mm512_mul_ps(g, mix));
                _mm512_mask_storeu_ps(c->o2 + o, k, _mm512_mul_ps(g, xri));
            }
            _mm512_mask_storeu_ps(dx + i, k, sx);
            _mm512_mask_storeu_ps(dxx + i, k, sxx);
        }
#else
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
#endif
    }
}
ARWKV_PRIVATE void arwkv__ddlerp_bwd_dmaa_range(void *ctx, size_t b, size_t e) {
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
                size_t i = 0;
#ifdef ARWKV__AVX512 /* the same float64 products and sums, 16 lanes at a time */
                for (; i < n; i += 16) {
                    __mmask16 k = ARWKV__MASK16((int)(n - i));
                    arwkv__acc16_prod_pd(acc + i, _mm512_maskz_loadu_ps(k, g + i), _mm512_maskz_loadu_ps(k, xx + i));
                }
#endif
                for (; i < n; i++) acc[i] += (double)g[i] * xx[i];
            }
            for (size_t i = 0; i < n; i++) c->po[br][i0 + i] += (float)acc[i];
        }
    }
}
ARWKV_PRIVATE arwkv_result arwkv__cpu_ddlerp_backward(arwkv_backend *be, float *dx, float *dxx, float *dm, float *const *dmaa,
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
ARWKV_PRIVATE void arwkv__tanh_fwd_range(void *ctx, size_t b, size_t e) {
    arwkv__ew_ctx *c = (arwkv__ew_ctx *)ctx;
    for (size_t i = b; i < e; i++) c->o0[i] = tanhf(c->i0[i]);
}
ARWKV_PRIVATE arwkv_result arwkv__cpu_tanh_forward(arwkv_backend *be, float *y, const float *x, size_t n) {
    arwkv__ew_ctx c = {y, NULL, x, NULL, NULL};
    arwkv__parallel_range(be->pool, n, 4096, arwkv__tanh_fwd_range, &c);
    return ARWKV_OK;
}
ARWKV_PRIVATE void arwkv__tanh_bwd_range(void *ctx, size_t b, size_t e) {
    arwkv__ew_ctx *c = (arwkv__ew_ctx *)ctx;
    for (size_t i = b; i < e; i++) c->o0[i] = c->i0[i] * (1.0f - c->i1[i] * c->i1[i]);
}
ARWKV_PRIVATE arwkv_result arwkv__cpu_tanh_backward(arwkv_backend *be, float *dx, const float *dy, const float *y, size_t n) {
    arwkv__ew_ctx c = {dx, NULL, dy, y, NULL};
    arwkv__parallel_range(be->pool, n, 4096, arwkv__tanh_bwd_range, &c);
    return ARWKV_OK;
}

ARWKV_PRIVATE arwkv_result arwkv__cpu_colsum(arwkv_backend *be, float *db, const float *dy, int rows, int cols) {
    arwkv__rwkv6_ctx c;
    memset(&c, 0, sizeof c);
    c.o0 = db, c.i0 = dy, c.rows = rows, c.C = cols;
    arwkv__parallel_range(be->pool, (size_t)cols, 64, arwkv__colsum_range, &c);
    return ARWKV_OK;
}

/* Decay w = exp(-exp(z)). No clamp (as llama.cpp): w may come arbitrarily close to 0 or 1. */
ARWKV_PRIVATE void arwkv__decay_fwd_range(void *ctx, size_t b, size_t e) {
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
ARWKV_PRIVATE arwkv_result arwkv__cpu_decay_forward(arwkv_backend *be, float *w, float *z, const float *time_decay, int rows, int C) {
    arwkv__rwkv6_ctx c;
    memset(&c, 0, sizeof c);
    c.o0 = w, c.o1 = z, c.i0 = time_decay, c.rows = rows, c.C = C;
    arwkv__parallel_range(be->pool, (size_t)rows, 16, arwkv__decay_fwd_range, &c);
    return ARWKV_OK;
}
/* dz = dw dw/dz = -dw w exp(z): exp(z) from z itself, so the derivative stays exact where w rounds to
   1; where exp(z) overflows, w is 0 and so is the derivative (not 0 * inf). */
ARWKV_PRIVATE void arwkv__decay_bwd_range(void *ctx, size_t b, size_t e) {
    arwkv__ew_ctx *c = (arwkv__ew_ctx *)ctx;
    for (size_t i = b; i < e; i++) {
        float ez = expf(c->i1[i]);
        c->o0[i] = ez <= FLT_MAX ? -c->i0[i] * c->i2[i] * ez : 0.0f;
    }
}
ARWKV_PRIVATE arwkv_result arwkv__cpu_decay_backward(arwkv_backend *be, float *dz, float *dtime_decay, const float *dw, const float *z,
                                              const float *w, int rows, int C) {
    arwkv__ew_ctx c = {dz, NULL, dw, z, w};
    arwkv__parallel_range(be->pool, (size_t)rows * (size_t)C, 4096, arwkv__decay_bwd_range, &c);
    return dtime_decay ? arwkv__cpu_colsum(be, dtime_decay, dz, rows, C) : ARWKV_OK;
}

/* Keys and values repeated to the heads of their group, keys scaled by (1 - w). */
ARWKV_PRIVATE void arwkv__kv_expand_fwd_range(void *ctx, size_t b, size_t e) {
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
/* The check both backends make before expanding (or folding back) the key/value heads. */
ARWKV_PRIVATE arwkv_result arwkv__r6_kv_check(int rows, int H, int KVH, int N) {
    if (H <= 0 || KVH <= 0 || H % KVH != 0 || N <= 0 || rows < 0)
        return arwkv__fail(ARWKV_ERR_INVALID_ARGUMENT, "RWKV-6 key/value heads: %d heads, %d kv heads (must divide), head size %d", H, KVH, N);
    return ARWKV_OK;
}
ARWKV_PRIVATE arwkv_result arwkv__cpu_kv_expand_forward(arwkv_backend *be, float *kk, float *vv, const float *k, const float *v,
                                                 const float *w, int rows, int H, int KVH, int N) {
    ARWKV__TRY(arwkv__r6_kv_check(rows, H, KVH, N));
    arwkv__rwkv6_ctx c;
    memset(&c, 0, sizeof c);
    c.o0 = kk, c.o1 = vv, c.i0 = k, c.i1 = v, c.i2 = w, c.rows = rows, c.H = H, c.KVH = KVH, c.N = N;
    arwkv__parallel_range(be->pool, (size_t)rows, 16, arwkv__kv_expand_fwd_range, &c);
    return ARWKV_OK;
}
ARWKV_PRIVATE void arwkv__kv_expand_bwd_range(void *ctx, size_t b, size_t e) {
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
ARWKV_PRIVATE arwkv_result arwkv__cpu_kv_expand_backward(arwkv_backend *be, float *dk, float *dv, float *dw, const float *dkk,
                                                  const float *dvv, const float *k, const float *w, int rows, int H, int KVH,
                                                  int N) {
    ARWKV__TRY(arwkv__r6_kv_check(rows, H, KVH, N));
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

ARWKV_PRIVATE int arwkv__wkv6_chunks(int T) { return (T + ARWKV_WKV6_CHUNK - 1) / ARWKV_WKV6_CHUNK; }

/* The inner loops run over value channels j in blocks of 8 with a fixed trip count, which compilers
   vectorize at -O2 without reordering any sum; a scalar tail takes N % 8. */
#define ARWKV__WKV_LANES 8

#ifdef ARWKV__AVX512
/* arwkv__wkv6_step by blocks of 16 value channels j (the last one masked): the block's y stays in a
   register while the rows i go by, where the C loops load and store y[j] for every row. The same
   operations in the same order (unfused, as the C loops are where the compiler does not contract,
   and y[j] adds the rows in order), so the same bits. */
ARWKV_PRIVATE void arwkv__wkv6_step_avx512(float *ARWKV__RESTRICT S, const float *ARWKV__RESTRICT r, const float *ARWKV__RESTRICT k,
                                    const float *ARWKV__RESTRICT v, const float *ARWKV__RESTRICT w, float *ARWKV__RESTRICT y, int N,
                                    float scale) {
    for (int j = 0; j < N; j += 16) {
        __mmask16 m = N - j >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << (N - j)) - 1);
        __m512 vj = _mm512_maskz_loadu_ps(m, v + j), yj = _mm512_setzero_ps();
        for (int i = 0; i < N; i++) {
            float *Si = S + (size_t)i * N + j;
            __m512 sij = _mm512_add_ps(_mm512_mul_ps(_mm512_maskz_loadu_ps(m, Si), _mm512_set1_ps(w[i])),
                                       _mm512_mul_ps(_mm512_set1_ps(k[i]), vj));
            _mm512_mask_storeu_ps(Si, m, sij);
            if (y) yj = _mm512_add_ps(yj, _mm512_mul_ps(_mm512_set1_ps(r[i] * scale), sij));
        }
        if (y) _mm512_mask_storeu_ps(y + j, m, yj);
    }
}
#endif

/* S = diag(w) S + k v^T, and y = scale r^T S (y may be NULL). */
ARWKV_PRIVATE void arwkv__wkv6_step(float *ARWKV__RESTRICT S, const float *ARWKV__RESTRICT r, const float *ARWKV__RESTRICT k,
                             const float *ARWKV__RESTRICT v, const float *ARWKV__RESTRICT w, float *ARWKV__RESTRICT y,
                             int N, float scale) {
#ifdef ARWKV__AVX512
    arwkv__wkv6_step_avx512(S, r, k, v, w, y, N, scale);
    return;
#endif
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

ARWKV_PRIVATE void arwkv__wkv6_fwd_task(void *ctx, int task, int thread) {
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

ARWKV_PRIVATE arwkv_result arwkv__cpu_wkv6_forward(arwkv_backend *be, float *y, float *s_out, float *ckpt, const float *r, const float *k,
                                            const float *v, const float *w, const float *s0, int B, int T, int H, int N,
                                            float scale) {
    ARWKV__TRY(arwkv__wkv_check("WKV6", B, T, H, N, N > 0, "at least 1"));
    arwkv__wkv6_ctx c;
    memset(&c, 0, sizeof c);
    c.y = y, c.s_out = s_out, c.ckpt = ckpt, c.r = r, c.k = k, c.v = v, c.w = w, c.s0 = s0;
    c.B = B, c.T = T, c.H = H, c.N = N, c.scale = scale, c.pool = be->pool;
    arwkv_pool_run(be->pool, B * H, arwkv__wkv6_fwd_task, &c);
    if (c.oom) return arwkv__fail(ARWKV_ERR_OUT_OF_MEMORY, "WKV6 forward: out of scratch memory (head size %d)", N);
    return ARWKV_OK;
}

ARWKV_PRIVATE void arwkv__wkv6_bwd_task(void *ctx, int task, int thread) {
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

ARWKV_PRIVATE arwkv_result arwkv__cpu_wkv6_backward(arwkv_backend *be, float *dr, float *dk, float *dv, float *dw, const float *dy,
                                             const float *r, const float *k, const float *v, const float *w, const float *ckpt,
                                             int B, int T, int H, int N, float scale) {
    ARWKV__TRY(arwkv__wkv_check("WKV6", B, T, H, N, N > 0, "at least 1"));
    ARWKV__TRY(arwkv__wkv_ckpt_check("WKV6", B, T, ckpt));
    arwkv__wkv6_ctx c;
    memset(&c, 0, sizeof c);
    c.dr = dr, c.dk = dk, c.dv = dv, c.dw = dw, c.dy = dy, c.r = r, c.k = k, c.v = v, c.w = w, c.ckpt = (float *)ckpt;
    c.B = B, c.T = T, c.H = H, c.N = N, c.scale = scale, c.pool = be->pool;
    arwkv_pool_run(be->pool, B * H, arwkv__wkv6_bwd_task, &c);
    if (c.oom) return arwkv__fail(ARWKV_ERR_OUT_OF_MEMORY, "WKV6 backward: out of scratch memory (head size %d)", N);
    return ARWKV_OK;
}

/* Output gate y * sigmoid(g). */
ARWKV_PRIVATE void arwkv__gate_fwd_range(void *ctx, size_t b, size_t e) {
    arwkv__ew_ctx *c = (arwkv__ew_ctx *)ctx;
    for (size_t i = b; i < e; i++) c->o0[i] = c->i0[i] / (1.0f + expf(-c->i1[i]));
}
ARWKV_PRIVATE arwkv_result arwkv__cpu_gate_forward(arwkv_backend *be, float *out, const float *y, const float *g, size_t n) {
    arwkv__ew_ctx c = {out, NULL, y, g, NULL};
    arwkv__parallel_range(be->pool, n, 4096, arwkv__gate_fwd_range, &c);
    return ARWKV_OK;
}
ARWKV_PRIVATE void arwkv__gate_bwd_range(void *ctx, size_t b, size_t e) {
    arwkv__ew_ctx *c = (arwkv__ew_ctx *)ctx;
    for (size_t i = b; i < e; i++) {
        float s = 1.0f / (1.0f + expf(-c->i2[i])), d = c->i0[i];
        c->o1[i] = d * c->i1[i] * s * (1.0f - s);
        c->o0[i] = d * s;
    }
}
ARWKV_PRIVATE arwkv_result arwkv__cpu_gate_backward(arwkv_backend *be, float *dy, float *dg, const float *dout, const float *y,
                                             const float *g, size_t n) {
    arwkv__ew_ctx c = {dy, dg, dout, y, g};
    arwkv__parallel_range(be->pool, n, 4096, arwkv__gate_bwd_range, &c);
    return ARWKV_OK;
}

static const arwkv_rwkv6_ops arwkv__cpu_rwkv6_ops = {
    arwkv__cpu_shift_forward,     arwkv__cpu_shift_backward, arwkv__cpu_ddlerp_forward, arwkv__cpu_ddlerp_backward,
    arwkv__cpu_tanh_forward,      arwkv__cpu_tanh_backward,  arwkv__cpu_decay_forward,  arwkv__cpu_decay_backward,
    arwkv__cpu_kv_expand_forward, arwkv__cpu_kv_expand_backward, arwkv__cpu_wkv6_forward, arwkv__cpu_wkv6_backward,
    arwkv__cpu_gate_forward,      arwkv__cpu_gate_backward,  arwkv__cpu_colsum};

/* ---- Losses (CPU) -------------------------------------------------------------------------------
   Stage 1 compares a student time mix's output o with the teacher attention output a, row by row.
     L2:     l = ||d||/sqrt(C), d = o - a      dl/do = d / (||d|| sqrt(C))   (0 when d = 0)
     MSE:    l = |d|^2 / C                     dl/do = 2 d / C
     cosine: l = 1 - o.a/(|o||a|)              dl/do = -(a/(|o||a|) - (o.a) o/(|o|^3 |a|)) */
/* Added to both norms of the cosine loss, so that a zero row has a finite gradient. */
#define ARWKV__ALIGN_COSINE_EPS 1e-12
typedef struct arwkv__align_ctx {
    arwkv_align_kind kind;
    const float *o, *a;
    int C;
    float scale, *loss, *dout;
} arwkv__align_ctx;

ARWKV_PRIVATE void arwkv__align_range(void *ctx, size_t b, size_t e) {
    arwkv__align_ctx *c = (arwkv__align_ctx *)ctx;
    for (size_t r = b; r < e; r++) {
        const float *o = c->o + r * (size_t)c->C, *a = c->a + r * (size_t)c->C;
        float *g = c->dout ? c->dout + r * (size_t)c->C : NULL;
        double l = 0;
        if (c->kind == ARWKV_ALIGN_COSINE) {
            double oa = 0, oo = 0, aa = 0;
            for (int i = 0; i < c->C; i++) oa += (double)o[i] * a[i], oo += (double)o[i] * o[i], aa += (double)a[i] * a[i];
            double no = sqrt(oo) + ARWKV__ALIGN_COSINE_EPS, na = sqrt(aa) + ARWKV__ALIGN_COSINE_EPS;
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

/* The check both backends make before an alignment loss. */
ARWKV_PRIVATE arwkv_result arwkv__align_check(arwkv_align_kind kind) {
    if (kind != ARWKV_ALIGN_L2 && kind != ARWKV_ALIGN_MSE && kind != ARWKV_ALIGN_COSINE)
        return arwkv__fail(ARWKV_ERR_INVALID_ARGUMENT, "alignment loss: unknown kind %d", (int)kind);
    return ARWKV_OK;
}
ARWKV_PRIVATE arwkv_result arwkv__cpu_align(arwkv_backend *be, arwkv_align_kind kind, const float *o, const float *a, int rows, int C,
                                     float grad_scale, float *loss, float *dout) {
    ARWKV__TRY(arwkv__align_check(kind));
    arwkv__align_ctx c = {kind, o, a, C, grad_scale, loss, dout};
    arwkv__parallel_range(be->pool, (size_t)rows, 4, arwkv__align_range, &c);
    return ARWKV_OK;
}

/* exp over an array: dst[i] = exp((src[i] - shift) * scale), returning the sum in float64. The
   softmaxes of stage 2 take 2 x 151936 of these per token, so it is vectorized: exp(x) = 2^n e^r with
   n = round(x / ln 2), r = x - n ln 2 (in two parts, Cody-Waite) and a degree-6 polynomial for e^r
   on [-ln2/2, ln2/2]; relative error below 2e-7. Inputs are at most 0 here (shifted by the max). */
ARWKV_PRIVATE float arwkv__expf_poly(float x) {
    if (x != x) return x; /* NaN stays NaN (and never reaches the integer shift below) */
    if (x < -87.0f) return 0.0f;
    if (x > 88.0f) return INFINITY;
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

#ifdef ARWKV__AVX512
/* g++ 12 warns (-Wuninitialized) inside the unmasked forms of some AVX-512 intrinsics, which pass an
   undefined vector through; the masked forms with every lane set are the same instruction. */
#define ARWKV__CVTPS_PD512(x) _mm512_mask_cvtps_pd(_mm512_setzero_pd(), (__mmask8)0xFF, (x))
#endif

/* The largest of n floats (NaNs are passed over, as x > m passes them over). The vector max
   instructions return their second operand unless the first is greater, the same rule, and a max
   does not round: every path gives the same result. */
ARWKV_PRIVATE float arwkv__max_array(const float *x, int n) {
    float m = -INFINITY;
    int i = 0;
#if defined(ARWKV__AVX512)
    __m512 vm = _mm512_set1_ps(-INFINITY);
    for (; i + 16 <= n; i += 16) vm = _mm512_mask_max_ps(vm, (__mmask16)0xFFFF, _mm512_loadu_ps(x + i), vm);
    float part[16];
    _mm512_storeu_ps(part, vm);
    for (int l = 0; l < 16; l++) m = part[l] > m ? part[l] : m;
#elif defined(ARWKV__AVX2)
    __m256 vm = _mm256_set1_ps(-INFINITY);
    for (; i + 8 <= n; i += 8) vm = _mm256_max_ps(_mm256_loadu_ps(x + i), vm);
    float part[8];
    _mm256_storeu_ps(part, vm);
    for (int l = 0; l < 8; l++) m = part[l] > m ? part[l] : m;
#endif
    for (; i < n; i++) m = x[i] > m ? x[i] : m;
    return m;
}

/* The KL sum of one row: sum over i with p[i] > 0 of p[i] (((t[i]-mt) - (s[i]-ms)) / tau - lzp + lzq),
   in float64, as 8 partial sums (element i goes to sum i % 8) added in order at the end, so that
   AVX-512 (8 doubles), AVX2 (2 x 4) and plain C give the same bits. */
ARWKV_PRIVATE double arwkv__kl_row(const float *p, const float *t, float mt, const float *s, float ms, float inv_tau, double lzp,
                                   double lzq, int n) {
    double acc[8] = {0, 0, 0, 0, 0, 0, 0, 0};
    int i = 0;
#if defined(ARWKV__AVX512)
    __m512d va = _mm512_setzero_pd(), it = _mm512_set1_pd((double)inv_tau), vp = _mm512_set1_pd(lzp), vq = _mm512_set1_pd(lzq);
    __m256 vmt = _mm256_set1_ps(mt), vms = _mm256_set1_ps(ms);
    for (; i + 8 <= n; i += 8) {
        __m256 pf = _mm256_loadu_ps(p + i);
        __mmask8 pos = _mm256_cmp_ps_mask(pf, _mm256_setzero_ps(), _CMP_GT_OQ);
        __m512d d = _mm512_sub_pd(ARWKV__CVTPS_PD512(_mm256_sub_ps(_mm256_loadu_ps(t + i), vmt)),
                                  ARWKV__CVTPS_PD512(_mm256_sub_ps(_mm256_loadu_ps(s + i), vms)));
        d = _mm512_add_pd(_mm512_sub_pd(_mm512_mul_pd(d, it), vp), vq);
        va = _mm512_mask_add_pd(va, pos, va, _mm512_mul_pd(ARWKV__CVTPS_PD512(pf), d));
    }
    _mm512_storeu_pd(acc, va);
#elif defined(ARWKV__AVX2)
    __m256d va[2] = {_mm256_setzero_pd(), _mm256_setzero_pd()}, it = _mm256_set1_pd((double)inv_tau), vp = _mm256_set1_pd(lzp),
            vq = _mm256_set1_pd(lzq);
    __m128 vmt = _mm_set1_ps(mt), vms = _mm_set1_ps(ms);
    for (; i + 8 <= n; i += 8)
        for (int h = 0; h < 2; h++) {
            __m128 pf = _mm_loadu_ps(p + i + 4 * h);
            __m256d pos = _mm256_castsi256_pd(_mm256_cvtepi32_epi64(_mm_castps_si128(_mm_cmpgt_ps(pf, _mm_setzero_ps()))));
            __m256d d = _mm256_sub_pd(_mm256_cvtps_pd(_mm_sub_ps(_mm_loadu_ps(t + i + 4 * h), vmt)),
                                      _mm256_cvtps_pd(_mm_sub_ps(_mm_loadu_ps(s + i + 4 * h), vms)));
            d = _mm256_add_pd(_mm256_sub_pd(_mm256_mul_pd(d, it), vp), vq);
            va[h] = _mm256_blendv_pd(va[h], _mm256_add_pd(va[h], _mm256_mul_pd(_mm256_cvtps_pd(pf), d)), pos);
        }
    _mm256_storeu_pd(acc, va[0]);
    _mm256_storeu_pd(acc + 4, va[1]);
#endif
    for (; i < n; i++)
        if (p[i] > 0) acc[i % 8] += (double)p[i] * (((double)(t[i] - mt) - (double)(s[i] - ms)) * inv_tau - lzp + lzq);
    double kl = 0;
    for (int l = 0; l < 8; l++) kl += acc[l];
    return kl;
}

/* The gradient of one row, written over the logits: s[i] = scale (kq eq[i] - kp ep[i] + k1 e1[i]) in
   float64, rounded to float (ep and e1 may be NULL: zeros; a term whose factor is 0 is passed as NULL,
   since 0 times a stale Inf in scratch would be NaN). Elementwise, so every path gives the same bits. */
ARWKV_PRIVATE void arwkv__logits_grad_row(float *s, const float *eq, const float *ep, const float *e1, double scale, double kq,
                                          double kp, double k1, int n) {
    int i = 0;
#if defined(ARWKV__AVX512)
    __m512d vs = _mm512_set1_pd(scale), vkq = _mm512_set1_pd(kq), vkp = _mm512_set1_pd(kp), vk1 = _mm512_set1_pd(k1);
    for (; i + 8 <= n; i += 8) {
        __m512d pp = ep ? ARWKV__CVTPS_PD512(_mm256_loadu_ps(ep + i)) : _mm512_setzero_pd();
        __m512d p1 = e1 ? ARWKV__CVTPS_PD512(_mm256_loadu_ps(e1 + i)) : _mm512_setzero_pd();
        __m512d r = _mm512_sub_pd(_mm512_mul_pd(vkq, ARWKV__CVTPS_PD512(_mm256_loadu_ps(eq + i))), _mm512_mul_pd(vkp, pp));
        r = _mm512_mul_pd(vs, _mm512_add_pd(r, _mm512_mul_pd(vk1, p1)));
        _mm256_storeu_ps(s + i, _mm512_mask_cvtpd_ps(_mm256_setzero_ps(), (__mmask8)0xFF, r));
    }
#elif defined(ARWKV__AVX2)
    __m256d vs = _mm256_set1_pd(scale), vkq = _mm256_set1_pd(kq), vkp = _mm256_set1_pd(kp), vk1 = _mm256_set1_pd(k1);
    for (; i + 4 <= n; i += 4) {
        __m256d pp = ep ? _mm256_cvtps_pd(_mm_loadu_ps(ep + i)) : _mm256_setzero_pd();
        __m256d p1 = e1 ? _mm256_cvtps_pd(_mm_loadu_ps(e1 + i)) : _mm256_setzero_pd();
        __m256d r = _mm256_sub_pd(_mm256_mul_pd(vkq, _mm256_cvtps_pd(_mm_loadu_ps(eq + i))), _mm256_mul_pd(vkp, pp));
        r = _mm256_mul_pd(vs, _mm256_add_pd(r, _mm256_mul_pd(vk1, p1)));
        _mm_storeu_ps(s + i, _mm256_cvtpd_ps(r));
    }
#endif
    for (; i < n; i++) s[i] = (float)(scale * (kq * eq[i] - kp * (ep ? ep[i] : 0.0f) + k1 * (e1 ? e1[i] : 0.0f)));
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

ARWKV_PRIVATE void arwkv__logits_task(void *ctx, int r, int thread) {
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
        kl = arwkv__kl_row(ep, t, mt, s, ms, inv_tau, log(zp), log(zq), V);
        kl = kl / zp * c->tau * c->tau;
    }
    if (use_ce) {
        if (c->tau != 1.0f) z1 = arwkv__exp_array(e1, s, ms, 1.0f, V);
        else e1 = eq;
        ce = log(z1) - (double)(s[label] - ms);
    }
    double kq = t ? c->kl_w * c->tau / zq : 0, kp = t ? c->kl_w * c->tau / zp : 0, k1 = use_ce ? c->ce_w / z1 : 0;
    arwkv__logits_grad_row(s, eq, t ? ep : NULL, use_ce ? e1 : NULL, c->scale, kq, kp, k1, V);
    if (use_ce) s[label] -= (float)(c->scale * c->ce_w);
    if (c->kl) c->kl[r] = (float)kl;
    if (c->ce) c->ce[r] = (float)ce;
}

/* The check both backends make before logits_loss. */
ARWKV_PRIVATE arwkv_result arwkv__logits_loss_check(float tau) {
    if (!(tau > 0)) return arwkv__fail(ARWKV_ERR_INVALID_ARGUMENT, "temperature must be positive, got %g", (double)tau);
    return ARWKV_OK;
}

ARWKV_PRIVATE arwkv_result arwkv__cpu_logits_loss(arwkv_backend *be, float *s, const float *t, const int32_t *labels, int rows, int V,
                                           float tau, float kl_weight, float ce_weight, float grad_scale, float *kl, float *ce) {
    ARWKV__TRY(arwkv__logits_loss_check(tau));
    arwkv__logits_ctx c = {s, t, labels, V, tau, t ? kl_weight : 0, labels ? ce_weight : 0, grad_scale, kl, ce, be->pool, 0};
    arwkv_pool_run(be->pool, rows, arwkv__logits_task, &c);
    if (c.oom) return arwkv__fail(ARWKV_ERR_OUT_OF_MEMORY, "logits loss: out of scratch memory");
    return ARWKV_OK;
}

static const arwkv_loss_ops arwkv__cpu_loss_ops = {arwkv__cpu_align, arwkv__cpu_logits_loss};

/* The weights of logits_loss where it only measures (evaluation, perplexity), named at each call:
   temperature 1, each term at weight 1, or 0 where it is left out, and gradient scale 1 (the
   gradient it writes over the logits is not used). */
#define ARWKV__MEASURE_TAU 1.0f
#define ARWKV__MEASURE_TERM 1.0f
#define ARWKV__MEASURE_NO_TERM 0.0f
#define ARWKV__MEASURE_GRAD_SCALE 1.0f

/* ---- Optimizer (CPU) ----------------------------------------------------------------------------
   The sum of squares is split into fixed chunks whose partial sums are added in chunk order, so
   the gradient norm (and with it clipping) is the same for any number of threads. */
#define ARWKV__SUMSQ_CHUNK 65536
typedef struct arwkv__sumsq_ctx {
    const float *g;
    size_t n;
    double *partial;
} arwkv__sumsq_ctx;
ARWKV_PRIVATE void arwkv__sumsq_task(void *ctx, int task, int thread) {
    (void)thread;
    arwkv__sumsq_ctx *c = (arwkv__sumsq_ctx *)ctx;
    size_t b = (size_t)task * ARWKV__SUMSQ_CHUNK, e = b + ARWKV__SUMSQ_CHUNK < c->n ? b + ARWKV__SUMSQ_CHUNK : c->n;
    double s = 0;
    for (size_t i = b; i < e; i++) s += (double)c->g[i] * c->g[i];
    c->partial[task] = s;
}
ARWKV_PRIVATE arwkv_result arwkv__cpu_sumsq(arwkv_backend *be, const float *g, size_t n, float *out) {
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
ARWKV_PRIVATE void arwkv__scale_range(void *ctx, size_t b, size_t e) {
    arwkv__adamw_ctx *c = (arwkv__adamw_ctx *)ctx;
    for (size_t i = b; i < e; i++) c->x[i] *= c->s;
}
ARWKV_PRIVATE arwkv_result arwkv__cpu_scale(arwkv_backend *be, float *x, float s, size_t n) {
    arwkv__adamw_ctx c;
    memset(&c, 0, sizeof c);
    c.x = x, c.s = s;
    arwkv__parallel_range(be->pool, n, 16384, arwkv__scale_range, &c);
    return ARWKV_OK;
}
ARWKV_PRIVATE void arwkv__adamw_range(void *ctx, size_t b, size_t e) {
    arwkv__adamw_ctx *c = (arwkv__adamw_ctx *)ctx;
    size_t i = b;
#ifdef ARWKV__AVX512
    /* 16 parameters at a time, the same operations in the same order as the loop below (no fused
       multiply-adds: the C loop has none where the compiler does not contract), so the same bits;
       the compiler cannot vectorize the loop itself, as p, g, m and v might overlap. */
    const __m512 b1 = _mm512_set1_ps(c->b1), nb1 = _mm512_set1_ps(1 - c->b1), b2 = _mm512_set1_ps(c->b2),
                 nb2 = _mm512_set1_ps(1 - c->b2), bc1 = _mm512_set1_ps(c->bc1), bc2 = _mm512_set1_ps(c->bc2),
                 lr = _mm512_set1_ps(c->lr), eps = _mm512_set1_ps(c->eps), wd = _mm512_set1_ps(c->wd);
    for (; i + 16 <= e; i += 16) {
        __m512 g = _mm512_loadu_ps(c->g + i), p = _mm512_loadu_ps(c->p + i);
        __m512 m = _mm512_add_ps(_mm512_mul_ps(b1, _mm512_loadu_ps(c->m + i)), _mm512_mul_ps(nb1, g));
        __m512 v = _mm512_add_ps(_mm512_mul_ps(b2, _mm512_loadu_ps(c->v + i)), _mm512_mul_ps(_mm512_mul_ps(nb2, g), g));
        _mm512_storeu_ps(c->m + i, m), _mm512_storeu_ps(c->v + i, v);
        __m512 mh = _mm512_div_ps(m, bc1), vh = _mm512_div_ps(v, bc2);
        __m512 step = _mm512_add_ps(_mm512_div_ps(mh, _mm512_add_ps(_mm512_maskz_sqrt_ps(ARWKV__ALL16, vh), eps)), _mm512_mul_ps(wd, p));
        _mm512_storeu_ps(c->p + i, _mm512_sub_ps(p, _mm512_mul_ps(lr, step)));
    }
#endif
    for (; i < e; i++) {
        float g = c->g[i];
        c->m[i] = c->b1 * c->m[i] + (1 - c->b1) * g;
        c->v[i] = c->b2 * c->v[i] + (1 - c->b2) * g * g;
        float mh = c->m[i] / c->bc1, vh = c->v[i] / c->bc2;
        c->p[i] -= c->lr * (mh / (sqrtf(vh) + c->eps) + c->wd * c->p[i]);
    }
}
ARWKV_PRIVATE arwkv_result arwkv__cpu_adamw(arwkv_backend *be, float *p, const float *g, float *m, float *v, size_t n, float lr, float b1,
                                     float b2, float eps, float wd, int step) {
    arwkv__adamw_ctx c;
    memset(&c, 0, sizeof c);
    c.p = p, c.g = g, c.m = m, c.v = v, c.lr = lr, c.b1 = b1, c.b2 = b2, c.eps = eps, c.wd = wd;
    c.bc1 = (float)(1.0 - pow((double)b1, (double)step));
    c.bc2 = (float)(1.0 - pow((double)b2, (double)step));
    arwkv__parallel_range(be->pool, n, 16384, arwkv__adamw_range, &c);
    return ARWKV_OK;
}

static const arwkv_optim_ops arwkv__cpu_optim_ops = {arwkv__cpu_sumsq, arwkv__cpu_scale, arwkv__cpu_adamw};

/* ---- Backends: filling the op tables, creating the CPU backend ----------------------------------
   Both backends (this one and arwkv_hip.h's) fill their tables through arwkv__backend_set_ops, whose
   parameters follow the order of struct arwkv_backend; each table has its own type, so a table put in
   the wrong slot does not compile. */

ARWKV_PRIVATE void arwkv__backend_set_ops(arwkv_backend *be, const arwkv_mem_ops *mem, const arwkv_core_ops *core,
                                          const arwkv_qwen_ops *qwen, const arwkv_rwkv7_ops *rwkv7, const arwkv_rwkv6_ops *rwkv6,
                                          const arwkv_loss_ops *loss, const arwkv_optim_ops *optim) {
    be->mem = mem;
    be->core = core;
    be->qwen = qwen;
    be->rwkv7 = rwkv7;
    be->rwkv6 = rwkv6;
    be->loss = loss;
    be->optim = optim;
}

ARWKV_PRIVATE void arwkv__cpu_destroy(arwkv_backend *be) {
    arwkv__mem_accounting_free(be);
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
    arwkv__backend_set_ops(be, &arwkv__cpu_mem_ops, &arwkv__cpu_core_ops, &arwkv__cpu_qwen_ops, &arwkv__cpu_rwkv7_ops,
                           &arwkv__cpu_rwkv6_ops, &arwkv__cpu_loss_ops, &arwkv__cpu_optim_ops);
    be->destroy = arwkv__cpu_destroy;
    *out = be;
    return ARWKV_OK;
}

ARWKV_API void arwkv_backend_destroy(arwkv_backend *be) {
    if (be && be->destroy) be->destroy(be);
}

ARWKV_API const char *arwkv_backend_name(const arwkv_backend *be) { return be ? be->name : "none"; }

ARWKV_API void arwkv_backend_memory(const arwkv_backend *be, arwkv_memory_use *out) {
    out->in_use = be->mem_in_use, out->peak = be->mem_peak, out->limit = be->mem_limit;
}
ARWKV_API void arwkv_backend_reset_peak(arwkv_backend *be) { be->mem_peak = be->mem_in_use; }
ARWKV_API void arwkv_backend_set_memory_limit(arwkv_backend *be, uint64_t bytes) { be->mem_limit = bytes; }

/* The host's memory from /proc/meminfo (Linux): MemAvailable counts what can be had without
   swapping (free memory plus caches the kernel can drop). */
ARWKV_PRIVATE arwkv_result arwkv__host_memory(uint64_t *free_bytes, uint64_t *total_bytes) {
    *free_bytes = *total_bytes = 0;
    FILE *f = fopen("/proc/meminfo", "r");
    if (!f) return arwkv__fail(ARWKV_ERR_UNSUPPORTED, "/proc/meminfo: cannot read the host's free memory (give a limit by hand)");
    char line[256];
    while (fgets(line, sizeof line, f)) {
        unsigned long long kb;
        if (sscanf(line, "MemAvailable: %llu kB", &kb) == 1) *free_bytes = (uint64_t)kb * 1024;
        else if (sscanf(line, "MemTotal: %llu kB", &kb) == 1) *total_bytes = (uint64_t)kb * 1024;
    }
    fclose(f);
    if (!*free_bytes || !*total_bytes) return arwkv__fail(ARWKV_ERR_UNSUPPORTED, "/proc/meminfo has no MemAvailable or MemTotal line");
    return ARWKV_OK;
}

ARWKV_API arwkv_result arwkv_backend_free_memory(arwkv_backend *be, uint64_t *free_bytes, uint64_t *total_bytes) {
    if (be->memory_info) return be->memory_info(be, free_bytes, total_bytes);
    return arwkv__host_memory(free_bytes, total_bytes);
}

/* ---- A parameter's fp32 values and gradient, as the time mixes pass them to ops ---------------------- */

/* The values of an fp32 parameter (a vector of the time mix); NULL for an absent one. */
ARWKV_PRIVATE const float *arwkv__param_f32(const arwkv_param *p) { return p ? (const float *)p->data : NULL; }
/* Its gradient, or NULL when it is absent or frozen (an op then skips that gradient). */
ARWKV_PRIVATE float *arwkv__param_grad(const arwkv_param *p) { return p && p->trainable ? p->grad : NULL; }

/* ---- The linear layer and the LoRA factor over a backend: forward and backward --------------------
   Every nn.Linear of every model (the teacher's projections and MLP, the head, the students' time
   mixes and MLPs) is these two calls over be->core->gemm, with W [out, in] in its stored type; the
   students' low-rank factors, stored the other way round, are the two after them. */

/* y[M, out] (+)= x[M, in] . W^T (+ b); y's rows are ldy floats apart (0: out, contiguous); b NULL:
   no bias. */
ARWKV_PRIVATE arwkv_result arwkv__linear_forward(arwkv_backend *be, float *y, ptrdiff_t ldy, const float *x, const arwkv_param *W,
                                                 const arwkv_param *b, int M, int accumulate) {
    int out = (int)W->shape[0], in = (int)W->shape[1];
    return be->core->gemm(be, M, out, in, x, in, 1, W->data, W->dtype, 1, in, y, ldy ? ldy : out, accumulate,
                          b ? (const float *)b->data : NULL);
}
/* Its backward from dy [M, out]: W's gradient += dy^T . x and b's += the column sums of dy (each if
   it trains), then dx [M, in] (+)= dy . W (dx NULL: not needed). dx may be x itself: x is read
   before dx is written. */
ARWKV_PRIVATE arwkv_result arwkv__linear_backward(arwkv_backend *be, float *dx, const float *dy, const float *x, const arwkv_param *W,
                                                  const arwkv_param *b, int M, int accumulate_dx) {
    int out = (int)W->shape[0], in = (int)W->shape[1];
    if (W->trainable) ARWKV__TRY(be->core->gemm(be, out, in, M, dy, 1, out, x, ARWKV_F32, in, 1, W->grad, in, 1, NULL));
    if (b && b->trainable) { /* only QRWKV6 trains biases; its op table has the column sum */
        if (!be->rwkv6) return arwkv__fail(ARWKV_ERR_UNSUPPORTED, "backend %s cannot train the bias %s", be->name, b->name);
        ARWKV__TRY(be->rwkv6->colsum(be, b->grad, dy, M, out));
    }
    if (dx) ARWKV__TRY(be->core->gemm(be, M, in, out, dy, out, 1, W->data, W->dtype, in, 1, dx, in, accumulate_dx, NULL));
    return ARWKV_OK;
}

/* y[M, out] = x[M, in] . A for a LoRA factor A [in, out] (RWKV's orientation: row-major, any
   stored type; out is A's last dimension), or for rows [row0, row0 + in) of a stack of them
   (time_maa_w2 [5, rank, C] holds five). x's and y's rows are ldx and ldy floats apart (0:
   contiguous); in 0: all of A's rows. */
ARWKV_PRIVATE arwkv_result arwkv__lora_forward(arwkv_backend *be, float *y, ptrdiff_t ldy, const float *x, ptrdiff_t ldx,
                                               const arwkv_param *A, int row0, int in, int M) {
    int out = (int)A->shape[A->ndim - 1];
    if (!in) in = (int)(A->numel / out);
    const char *a = (const char *)A->data + (size_t)row0 * (size_t)out * arwkv_dtype_size(A->dtype);
    return be->core->gemm(be, M, out, in, x, ldx ? ldx : in, 1, a, A->dtype, out, 1, y, ldy ? ldy : out, 0, NULL);
}
/* Its backward from dy [M, out] (contiguous): those rows of A's gradient += x^T . dy (if A trains),
   then dx (+)= dy . A^T (dx NULL: not needed; rows lddx apart, 0: contiguous). */
ARWKV_PRIVATE arwkv_result arwkv__lora_backward(arwkv_backend *be, float *dx, ptrdiff_t lddx, const float *dy, const float *x,
                                                ptrdiff_t ldx, const arwkv_param *A, int row0, int in, int M, int accumulate_dx) {
    int out = (int)A->shape[A->ndim - 1];
    if (!in) in = (int)(A->numel / out);
    size_t off = (size_t)row0 * (size_t)out;
    if (A->trainable) ARWKV__TRY(be->core->gemm(be, in, out, M, x, 1, ldx ? ldx : in, dy, ARWKV_F32, out, 1, A->grad + off, out, 1, NULL));
    if (!dx) return ARWKV_OK;
    const char *a = (const char *)A->data + off * arwkv_dtype_size(A->dtype);
    return be->core->gemm(be, M, in, out, dy, out, 1, a, A->dtype, 1, out, dx, lddx ? lddx : in, accumulate_dx, NULL);
}

/* ============================================================================================
   SECTION 6b. Time mixes
   ============================================================================================ */
/* A student's time mix replaces a teacher's attention. Two families are implemented, each as a
   block with its forward beside its backward: RWKV-7 (the ARWKV-7 student) and RWKV-6 (QRWKV6).
   Both are private: the public face of a student is arwkv_rnn (forward, backward, recurrent step),
   and a block's activations and workspace are layouts this file is free to change. The model
   (SECTION 7) and the trainer (SECTION 8) reach a block only through one table,
   arwkv__tmix_family, at the end of this section: sizes, the parameter check, the activations one
   layer keeps for its backward and their size, a workspace shared by the layers and its size,
   forward and backward. The recurrent step is the forward with T = 1 and the states (both
   families give the same outputs token by token as over a whole sequence). A third family fills
   one more table and needs no branch in the model or the trainer. */

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
        if (p->trainable && (!p->grad || (p->dtype != ARWKV_F32 && !p->master)))
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

/* Bytes of a workspace of `rows` tokens (with the backward's arrays if backward). */
ARWKV_PRIVATE size_t arwkv__tmix7_work_bytes(const arwkv_tmix7_dims *d, int rows, int backward) {
    arwkv__tmix7_work w;
    memset(&w, 0, sizeof w);
    w.d = *d, w.max_rows = rows, w.backward = backward != 0;
    arwkv__carver cv = {NULL, 0};
    arwkv__tmix7_work_layout(&w, &cv);
    return cv.used * sizeof(float);
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
        mu[i] = i < n ? arwkv__param_f32(p[i]) : NULL;
        if (dmu) dmu[i] = i < n ? arwkv__param_grad(p[i]) : NULL;
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
    arwkv_r7_prepare_args p;
    memset(&p, 0, sizeof p);
    p.M = M, p.C = d->C, p.N = d->N, p.first_layer = layer_index == 0;
    p.k_in = b->k_in, p.v_in = b->v_in, p.w_lora = b->w_lora, p.a_lora = b->a_lora, p.v_lora = layer_index == 0 ? NULL : b->v_lora;
    p.v_first = v_first;
    p.w0 = arwkv__param_f32(l->w0), p.a0 = arwkv__param_f32(l->a0), p.v0 = arwkv__param_f32(l->v0);
    p.k_k = arwkv__param_f32(l->k_k), p.k_a = arwkv__param_f32(l->k_a);
    p.decay = w->decay, p.k = w->k, p.v = w->v, p.wkv_a = w->wkv_a, p.wkv_b = w->wkv_b;
    return be->rwkv7->prepare_forward(be, &p);
}
ARWKV_PRIVATE arwkv_result arwkv__tmix7_finish(arwkv_backend *be, const arwkv_layer *l, const arwkv_tmix7_dims *d, int M,
                                        const arwkv__tmix7_bufs *b, arwkv__tmix7_work *w) {
    arwkv_r7_finish_args f;
    memset(&f, 0, sizeof f);
    f.M = M, f.C = d->C, f.N = d->N;
    f.y = b->y, f.r = b->r, f.k = w->k, f.v = w->v, f.r_k = arwkv__param_f32(l->r_k);
    f.ln_w = d->has_group_norm ? arwkv__param_f32(l->ln_x_w) : NULL, f.ln_b = d->has_group_norm ? arwkv__param_f32(l->ln_x_b) : NULL;
    f.gn_eps = d->gn_eps, f.g = d->has_gate ? b->g : NULL, f.o = w->o;
    return be->rwkv7->finish_forward(be, &f);
}

/* Runs the calls of a forward or backward one after another until one fails (r holds the result);
   both time mixes use it, up to the end of the QRWKV6 block. */
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
    ARWKV__STEP(arwkv__linear_forward(be, b.r, 0, xm[ARWKV__MIX_R], l->receptance, NULL, M, 0));
    ARWKV__STEP(arwkv__linear_forward(be, b.k_in, 0, xm[ARWKV__MIX_K], l->key, NULL, M, 0));
    ARWKV__STEP(arwkv__linear_forward(be, b.v_in, 0, xm[ARWKV__MIX_V], l->value, NULL, M, 0));
    ARWKV__STEP(arwkv__lora_forward(be, b.h_w, 0, xm[ARWKV__MIX_W], 0, l->w1, 0, 0, M));
    ARWKV__STEP(op->act_forward(be, b.h_w, (size_t)M * d->rank_w, ARWKV_ACT_TANH));
    ARWKV__STEP(arwkv__lora_forward(be, b.w_lora, 0, b.h_w, 0, l->w2, 0, 0, M));
    ARWKV__STEP(arwkv__lora_forward(be, b.h_a, 0, xm[ARWKV__MIX_A], 0, l->a1, 0, 0, M));
    ARWKV__STEP(arwkv__lora_forward(be, b.a_lora, 0, b.h_a, 0, l->a2, 0, 0, M));
    if (layer_index > 0) {
        ARWKV__STEP(arwkv__lora_forward(be, b.h_v, 0, xm[ARWKV__MIX_V], 0, l->v1, 0, 0, M));
        ARWKV__STEP(arwkv__lora_forward(be, b.v_lora, 0, b.h_v, 0, l->v2, 0, 0, M));
    }
    if (d->has_gate) {
        ARWKV__STEP(arwkv__lora_forward(be, b.h_g, 0, xm[ARWKV__MIX_G], 0, l->g1, 0, 0, M));
        ARWKV__STEP(op->act_forward(be, b.h_g, (size_t)M * d->rank_g, ARWKV_ACT_SIGMOID));
        ARWKV__STEP(arwkv__lora_forward(be, b.g, 0, b.h_g, 0, l->g2, 0, 0, M));
    }
    ARWKV__STEP(arwkv__tmix7_prepare(be, l, layer_index, d, M, &b, v_first, work));
    ARWKV__STEP(op->wkv7_forward(be, B, T, d->H, d->N, b.r, work->decay, work->k, work->v, work->wkv_a, work->wkv_b, b.y, wkv_state,
                                 acts ? acts->ckpt : NULL));
    ARWKV__STEP(arwkv__tmix7_finish(be, l, d, M, &b, work));
    ARWKV__STEP(arwkv__linear_forward(be, out, 0, work->o, l->output, NULL, M, 0));
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
    ARWKV__STEP(arwkv__linear_backward(be, w->d_o, dout, w->o, l->output, NULL, M, 0));
    arwkv_r7_finish_args fin;
    memset(&fin, 0, sizeof fin);
    fin.M = M, fin.C = C, fin.N = d->N;
    fin.y = b.y, fin.r = b.r, fin.k = w->k, fin.v = w->v, fin.r_k = arwkv__param_f32(l->r_k);
    fin.ln_w = d->has_group_norm ? arwkv__param_f32(l->ln_x_w) : NULL, fin.ln_b = d->has_group_norm ? arwkv__param_f32(l->ln_x_b) : NULL;
    fin.gn_eps = d->gn_eps, fin.g = d->has_gate ? b.g : NULL;
    fin.d_o = w->d_o, fin.dy = w->dy, fin.dr = w->dr, fin.dk = w->dk, fin.dv = w->dv, fin.dg = d->has_gate ? w->dg : NULL;
    fin.dr_k = arwkv__param_grad(l->r_k);
    fin.dln_w = d->has_group_norm ? arwkv__param_grad(l->ln_x_w) : NULL, fin.dln_b = d->has_group_norm ? arwkv__param_grad(l->ln_x_b) : NULL;
    ARWKV__STEP(op->finish_backward(be, &fin));
    ARWKV__STEP(op->wkv7_backward(be, B, T, d->H, d->N, b.r, w->decay, w->k, w->v, w->wkv_a, w->wkv_b, w->dy, acts->ckpt, d_wkv_state,
                                  w->dr, w->d_decay, w->dk, w->dv, w->d_wkv_a, w->d_wkv_b));
    arwkv_r7_prepare_args prep;
    memset(&prep, 0, sizeof prep);
    prep.M = M, prep.C = C, prep.N = d->N, prep.first_layer = first;
    prep.k_in = b.k_in, prep.v_in = b.v_in, prep.w_lora = b.w_lora, prep.a_lora = b.a_lora, prep.v_lora = first ? NULL : b.v_lora;
    prep.v_first = first ? NULL : (float *)v_first;
    prep.w0 = arwkv__param_f32(l->w0), prep.a0 = arwkv__param_f32(l->a0), prep.v0 = arwkv__param_f32(l->v0);
    prep.k_k = arwkv__param_f32(l->k_k), prep.k_a = arwkv__param_f32(l->k_a);
    prep.d_decay = w->d_decay, prep.dk = w->dk, prep.dv = w->dv, prep.d_wkv_a = w->d_wkv_a, prep.d_wkv_b = w->d_wkv_b;
    prep.dk_in = w->dk_in, prep.dv_in = w->dv_in, prep.dw_lora = w->dw_lora, prep.da_lora = w->da_lora;
    prep.dv_lora = first ? NULL : w->dv_lora, prep.dv_first = dv_first;
    prep.dw0 = arwkv__param_grad(l->w0), prep.da0 = arwkv__param_grad(l->a0), prep.dv0 = first ? NULL : arwkv__param_grad(l->v0);
    prep.dk_k = arwkv__param_grad(l->k_k), prep.dk_a = arwkv__param_grad(l->k_a);
    ARWKV__STEP(op->prepare_backward(be, &prep));

    /* the LoRAs and projections back to the mixes: dxmix[m] = sum of what each mix fed */
    float *dx_of[6];
    for (int i = 0; i < 6; i++) dx_of[i] = need_dxmix ? dxm[i] : NULL;
    if (d->has_gate) {
        ARWKV__STEP(arwkv__lora_backward(be, w->dh_g, 0, w->dg, b.h_g, 0, l->g2, 0, 0, M, 0));
        ARWKV__STEP(op->act_backward(be, w->dh_g, b.h_g, (size_t)M * d->rank_g, ARWKV_ACT_SIGMOID));
        ARWKV__STEP(arwkv__lora_backward(be, dx_of[ARWKV__MIX_G], 0, w->dh_g, xm[ARWKV__MIX_G], 0, l->g1, 0, 0, M, 0));
    }
    ARWKV__STEP(arwkv__lora_backward(be, w->dh_w, 0, w->dw_lora, b.h_w, 0, l->w2, 0, 0, M, 0));
    ARWKV__STEP(op->act_backward(be, w->dh_w, b.h_w, (size_t)M * d->rank_w, ARWKV_ACT_TANH));
    ARWKV__STEP(arwkv__lora_backward(be, dx_of[ARWKV__MIX_W], 0, w->dh_w, xm[ARWKV__MIX_W], 0, l->w1, 0, 0, M, 0));
    ARWKV__STEP(arwkv__lora_backward(be, w->dh_a, 0, w->da_lora, b.h_a, 0, l->a2, 0, 0, M, 0));
    ARWKV__STEP(arwkv__lora_backward(be, dx_of[ARWKV__MIX_A], 0, w->dh_a, xm[ARWKV__MIX_A], 0, l->a1, 0, 0, M, 0));
    ARWKV__STEP(arwkv__linear_backward(be, dx_of[ARWKV__MIX_R], w->dr, xm[ARWKV__MIX_R], l->receptance, NULL, M, 0));
    ARWKV__STEP(arwkv__linear_backward(be, dx_of[ARWKV__MIX_K], w->dk_in, xm[ARWKV__MIX_K], l->key, NULL, M, 0));
    ARWKV__STEP(arwkv__linear_backward(be, dx_of[ARWKV__MIX_V], w->dv_in, xm[ARWKV__MIX_V], l->value, NULL, M, 0));
    if (!first) {
        ARWKV__STEP(arwkv__lora_backward(be, w->dh_v, 0, w->dv_lora, b.h_v, 0, l->v2, 0, 0, M, 0));
        ARWKV__STEP(arwkv__lora_backward(be, dx_of[ARWKV__MIX_V], 0, w->dh_v, xm[ARWKV__MIX_V], 0, l->v1, 0, 0, M, 1));
    }
    if (need_dxmix) ARWKV__STEP(op->lerp_backward(be, dx, d_shift, dmu, w->dxmix, x, acts->shift0, mu, n_mix, B, T, C));
    arwkv__tmix7_work_free(be, own);
    if (r != ARWKV_OK) return arwkv__context(r, "layer %d: time-mix backward", layer_index);
    return ARWKV_OK;
}

/* ---- The QRWKV6 time mix ---------------------------------------------------------------------------
   The block is a chain of matrix products (core->gemm, weights in their stored type) and the
   rwkv6 ops. Forward keeps every intermediate it makes in the activations object; backward walks
   the chain in reverse with one workspace allocated per call. */

/* The dimensions of a QRWKV6 config; fails on inconsistent sizes. */
ARWKV_PRIVATE arwkv_result arwkv__tmix6_dims_from_config(const arwkv_config *cfg, arwkv_tmix6_dims *o) {
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

/* What forward keeps for backward (backend memory, grown on demand). One per layer in training;
   also usable as reusable scratch for inference. */
typedef struct arwkv__tmix6_acts {
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
    void *qk_block;            /* a layer with q/k norms (Qwen3's) also keeps, for rows_cap rows: */
    float *r_pre, *k_pre;      /*   q_proj and k_proj before their per-head norms [rows, C], [rows, KV] */
    float *rstd_r, *rstd_k;    /*   the norms' reciprocal roots [rows, H], [rows, KVH] */
    size_t qk_rows;            /*   rows those hold */
} arwkv__tmix6_acts;

ARWKV_PRIVATE arwkv_result arwkv__tmix6_acts_create(arwkv_backend *be, const arwkv_tmix6_dims *d, arwkv__tmix6_acts **out) {
    *out = NULL;
    arwkv__tmix6_acts *a = (arwkv__tmix6_acts *)arwkv__calloc(1, sizeof *a);
    if (!a) return arwkv__fail(ARWKV_ERR_OUT_OF_MEMORY, "QRWKV6 activations: out of memory");
    a->be = be;
    a->d = *d;
    *out = a;
    return ARWKV_OK;
}

ARWKV_PRIVATE void arwkv__tmix6_acts_free(arwkv__tmix6_acts *a) {
    if (!a) return;
    if (a->block) a->be->mem->free(a->be, a->block);
    if (a->qk_block) a->be->mem->free(a->be, a->qk_block);
    arwkv__free(a);
}

/* The arrays of the activations, one after another in one block for `rows` token rows and `ckpt`
   checkpoint floats (base NULL: only counts). Returns the floats the block needs. */
ARWKV_PRIVATE size_t arwkv__tmix6_acts_layout(arwkv__tmix6_acts *a, float *base, size_t rows, size_t ckpt) {
    const arwkv_tmix6_dims *d = &a->d;
    size_t C = (size_t)d->C, KV = (size_t)d->n_kv_heads * (size_t)d->head_size, used = 0;
#define ARWKV__TAKE(field, n) (a->field = base ? base + used : NULL, used += (n))
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
    ARWKV__TAKE(ckpt, ckpt);
#undef ARWKV__TAKE
    return used;
}

/* Checkpoint floats of a forward over B sequences of T tokens. */
ARWKV_PRIVATE size_t arwkv__tmix6_ckpt_floats(const arwkv_tmix6_dims *d, int B, int T) {
    return (size_t)B * (size_t)d->n_heads * (size_t)arwkv__wkv6_chunks(T) * (size_t)d->head_size * (size_t)d->head_size;
}

/* Bytes of the activations of B x T tokens (the q/k-norm buffers of a Qwen3 student aside). */
ARWKV_PRIVATE size_t arwkv__tmix6_acts_bytes(const arwkv_tmix6_dims *d, int B, int T) {
    arwkv__tmix6_acts a;
    memset(&a, 0, sizeof a);
    a.d = *d;
    return arwkv__tmix6_acts_layout(&a, NULL, (size_t)B * (size_t)T, arwkv__tmix6_ckpt_floats(d, B, T)) * sizeof(float);
}

/* Room for B sequences of T tokens (buffers are replaced, not kept, when they grow). */
ARWKV_PRIVATE arwkv_result arwkv__tmix6_reserve(arwkv__tmix6_acts *a, int B, int T) {
    size_t rows = (size_t)B * (size_t)T, ckpt = arwkv__tmix6_ckpt_floats(&a->d, B, T);
    if (a->block && rows <= a->rows_cap && ckpt <= a->ckpt_cap) return ARWKV_OK;
    if (rows > a->rows_cap) a->rows_cap = rows;
    if (ckpt > a->ckpt_cap) a->ckpt_cap = ckpt;
    if (a->block) a->be->mem->free(a->be, a->block);
    a->block = NULL;
    a->B = a->T = 0;
    size_t floats = arwkv__tmix6_acts_layout(a, NULL, a->rows_cap, a->ckpt_cap);
    arwkv_result r = a->be->mem->alloc(a->be, floats * sizeof(float), &a->block);
    if (r != ARWKV_OK) return arwkv__context(r, "QRWKV6 activations for %d x %d tokens", B, T);
    arwkv__tmix6_acts_layout(a, (float *)a->block, a->rows_cap, a->ckpt_cap);
    return ARWKV_OK;
}

/* The q/k-norm buffers, made only for layers that have the norms (students of Qwen3). */
ARWKV_PRIVATE arwkv_result arwkv__tmix6_reserve_qk(arwkv__tmix6_acts *a) {
    const arwkv_tmix6_dims *d = &a->d;
    if (a->qk_block && a->qk_rows >= a->rows_cap) return ARWKV_OK;
    size_t rows = a->rows_cap, C = (size_t)d->C, KV = (size_t)d->n_kv_heads * (size_t)d->head_size;
    if (a->qk_block) a->be->mem->free(a->be, a->qk_block);
    a->qk_block = NULL;
    a->qk_rows = 0;
    arwkv_result r = a->be->mem->alloc(a->be, rows * (C + KV + (size_t)d->n_heads + (size_t)d->n_kv_heads) * sizeof(float), &a->qk_block);
    if (r != ARWKV_OK) return arwkv__context(r, "QRWKV6 q/k norm activations for %zu tokens", rows);
    a->r_pre = (float *)a->qk_block;
    a->k_pre = a->r_pre + rows * C;
    a->rstd_r = a->k_pre + rows * KV;
    a->rstd_k = a->rstd_r + rows * (size_t)d->n_heads;
    a->qk_rows = rows;
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
        {L->q_norm, 0, d->head_size, 1}, {L->k_norm, 0, d->head_size, !L->q_norm}, /* both or neither */
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
        if (want[i].rows) ok &= p->ndim >= 2 && p->shape[p->ndim - 1] == want[i].cols; /* the products read the last dimension */
        if (!want[i].rows) ok &= p->dtype == ARWKV_F32;
        if (!ok)
            return arwkv__fail(ARWKV_ERR_SHAPE, "QRWKV6 time mix: parameter %s (%lld elements, %s) does not fit C %d, %d heads of %d, "
                                                "%d kv heads, LoRA ranks %d/%d", p->name, (long long)p->numel,
                               arwkv_dtype_name(p->dtype), d->C, d->n_heads, d->head_size, d->n_kv_heads, d->rank_mix, d->rank_decay);
    }
    return ARWKV_OK;
}

ARWKV_PRIVATE arwkv_result arwkv__tmix6_fwd(arwkv_backend *be, const arwkv_layer *L, const arwkv_tmix6_dims *d, int B, int T,
                                            const float *x, float *shift_state, float *wkv_state, float *out, arwkv__tmix6_acts *a) {
    const arwkv_rwkv6_ops *op = be->rwkv6;
    int C = d->C, H = d->n_heads, N = d->head_size, KVH = d->n_kv_heads, Dm = d->rank_mix, Dd = d->rank_decay, rows = B * T;
    size_t RC = (size_t)rows * (size_t)C;
    /* token shift; the state handed on is the last input row of each sequence */
    ARWKV__TRY(op->shift_forward(be, a->xx, a->xxx, x, shift_state, arwkv__param_f32(L->maa_x), B, T, C));
    for (int b = 0; shift_state && b < B; b++)
        ARWKV__TRY(be->mem->copy(be, shift_state + (size_t)b * C, x + ((size_t)b * T + (size_t)T - 1) * C, (size_t)C * sizeof(float)));
    /* the five data-dependent mixes: one shared first LoRA matrix, then a second matrix per branch */
    ARWKV__TRY(arwkv__lora_forward(be, a->h1, 5 * Dm, a->xxx, C, L->maa_w1, 0, C, rows));
    ARWKV__TRY(op->tanh_forward(be, a->h1, a->h1, (size_t)rows * 5 * (size_t)Dm));
    for (int c = 0; c < 5; c++) ARWKV__TRY(arwkv__lora_forward(be, a->m + (size_t)c * RC, C, a->h1 + (size_t)c * Dm, 5 * Dm, L->maa_w2, c * Dm, Dm, rows));
    const float *maa[5] = {arwkv__param_f32(L->maa_r), arwkv__param_f32(L->maa_k), arwkv__param_f32(L->maa_v),
                           arwkv__param_f32(L->maa_w), arwkv__param_f32(L->maa_g)};
    ARWKV__TRY(op->ddlerp_forward(be, a->xc, x, a->xx, maa, a->m, rows, C));
    const float *xr = a->xc, *xk = a->xc + RC, *xv = a->xc + 2 * RC, *xw = a->xc + 3 * RC, *xg = a->xc + 4 * RC;
    /* projections inherited from the teacher, and the gate */
    int qk = L->q_norm != NULL;
    if (qk) ARWKV__TRY(arwkv__tmix6_reserve_qk(a));
    ARWKV__TRY(arwkv__linear_forward(be, qk ? a->r_pre : a->r, 0, xr, L->q_w, L->q_b, rows, 0));
    ARWKV__TRY(arwkv__linear_forward(be, qk ? a->k_pre : a->k, 0, xk, L->k_w, L->k_b, rows, 0));
    ARWKV__TRY(arwkv__linear_forward(be, a->v, 0, xv, L->v_w, L->v_b, rows, 0));
    if (qk) { /* Qwen3's norms of each head's query and key, kept from the teacher */
        ARWKV__TRY(be->core->rmsnorm_forward(be, a->r, a->rstd_r, a->r_pre, L->q_norm->data, L->q_norm->dtype, rows * H, N, L->qk_norm_eps));
        ARWKV__TRY(be->core->rmsnorm_forward(be, a->k, a->rstd_k, a->k_pre, L->k_norm->data, L->k_norm->dtype, rows * KVH, N, L->qk_norm_eps));
    }
    ARWKV__TRY(arwkv__linear_forward(be, a->g, 0, xg, L->gate, NULL, rows, 0));
    /* decay */
    ARWKV__TRY(arwkv__lora_forward(be, a->hd, Dd, xw, C, L->decay_w1, 0, C, rows));
    ARWKV__TRY(op->tanh_forward(be, a->hd, a->hd, (size_t)rows * (size_t)Dd));
    ARWKV__TRY(arwkv__lora_forward(be, a->z, C, a->hd, Dd, L->decay_w2, 0, Dd, rows));
    ARWKV__TRY(op->decay_forward(be, a->w, a->z, arwkv__param_f32(L->time_decay), rows, C));
    /* the recurrence over heads, keys repeated from their kv head and scaled by (1 - w) */
    ARWKV__TRY(op->kv_expand_forward(be, a->kk, a->vv, a->k, a->v, a->w, rows, H, KVH, N));
    ARWKV__TRY(op->wkv6_forward(be, a->y, wkv_state, a->ckpt, a->r, a->kk, a->vv, a->w, wkv_state, B, T, H, N, 1.0f / sqrtf((float)N)));
    ARWKV__TRY(op->gate_forward(be, a->yg, a->y, a->g, RC));
    return arwkv__linear_forward(be, out, 0, a->yg, L->o_w, L->o_b, rows, 0);
}

/* Forward over B sequences of T tokens. x, out: [B*T*C] (out may not alias x). shift_state [B*C] and
   wkv_state [B*H*N*N] (layout [b][h][key i][value j]) are read as the state before the first token
   and overwritten with the state after the last; NULL means zeros in and nothing out. Calling it
   token by token (T = 1) with the states is the recurrent mode and gives the same outputs as one
   call over the whole sequence. acts: kept for arwkv__tmix6_backward, its buffers reused from call to
   call (pass one in decoding too); NULL: scratch memory for this call only. */
ARWKV_PRIVATE arwkv_result arwkv__tmix6_forward(arwkv_backend *be, const arwkv_layer *layer, const arwkv_tmix6_dims *d, int B, int T,
                                               const float *x, float *shift_state, float *wkv_state, float *out, arwkv__tmix6_acts *acts) {
    if (!be->rwkv6) return arwkv__fail(ARWKV_ERR_UNSUPPORTED, "backend %s has no RWKV-6 ops", be->name);
    ARWKV__TRY(arwkv__tmix6_check(layer, d, B, T));
    arwkv__tmix6_acts *a = acts, *own = NULL;
    if (!a) ARWKV__TRY(arwkv__tmix6_acts_create(be, d, &own));
    if (own) a = own;
    arwkv_result r = memcmp(&a->d, d, sizeof *d) == 0 ? ARWKV_OK
                                                    : arwkv__fail(ARWKV_ERR_INVALID_ARGUMENT, "QRWKV6 activations were made for other dimensions");
    if (r == ARWKV_OK) r = arwkv__tmix6_reserve(a, B, T);
    if (r == ARWKV_OK) r = arwkv__tmix6_fwd(be, layer, d, B, T, x, shift_state, wkv_state, out, a);
    a->B = r == ARWKV_OK ? B : 0;
    a->T = r == ARWKV_OK ? T : 0;
    arwkv__tmix6_acts_free(own);
    return r;
}

/* Floats of the backward's temporaries for `rows` tokens (its comment below lists them). */
ARWKV_PRIVATE size_t arwkv__tmix6_backward_floats(const arwkv_tmix6_dims *d, size_t rows, int qk_norm) {
    size_t RC = rows * (size_t)d->C, RKV = rows * (size_t)d->n_kv_heads * (size_t)d->head_size;
    return 20 * RC + 2 * RKV + rows * ((size_t)d->rank_decay + 5 * (size_t)d->rank_mix) + (qk_norm ? RC + RKV : 0);
}

/* Backward of the last forward that used acts (same layer, B, T, x): accumulates (+=) into
   param->grad of every trainable parameter of the layer and writes dx [B*T*C] (= d loss / d x;
   NULL: not needed). The incoming states are treated as constants. */
ARWKV_PRIVATE arwkv_result arwkv__tmix6_backward(arwkv_backend *be, const arwkv_layer *L, const arwkv_tmix6_dims *d, int B, int T,
                                                const float *x, arwkv__tmix6_acts *a, const float *dout, float *dx) {
    if (!be->rwkv6) return arwkv__fail(ARWKV_ERR_UNSUPPORTED, "backend %s has no RWKV-6 ops", be->name);
    ARWKV__TRY(arwkv__tmix6_check(L, d, B, T));
    if (!a || a->B != B || a->T != T || memcmp(&a->d, d, sizeof *d) != 0)
        return arwkv__fail(ARWKV_ERR_INVALID_ARGUMENT, "QRWKV6 backward needs the activations of a forward over the same %d x %d tokens", B, T);
    (void)x; /* taken so both time mixes are called alike; this one kept its mixed inputs in acts */
    const arwkv_rwkv6_ops *op = be->rwkv6;
    int C = d->C, H = d->n_heads, N = d->head_size, KVH = d->n_kv_heads, Dm = d->rank_mix, Dd = d->rank_decay, rows = B * T;
    size_t RC = (size_t)rows * (size_t)C, RKV = (size_t)rows * (size_t)KVH * (size_t)N;
    /* workspace: dyg dy dg dr dkk dvv dw dxx dxxx dx [rows, C]; dxc dm [5, rows, C]; dk dv [rows, KV];
       dhd [rows, Dd]; dh1 [rows, 5 Dm]; with q/k norms, dr_pre [rows, C] and dk_pre [rows, KV] */
    int qk = L->q_norm != NULL;
    void *ws;
    ARWKV__TRY(be->mem->alloc(be, arwkv__tmix6_backward_floats(d, (size_t)rows, qk) * sizeof(float), &ws));
    float *p = (float *)ws;
    float *dyg = p, *dy = p + RC, *dg = p + 2 * RC, *dr = p + 3 * RC, *dkk = p + 4 * RC, *dvv = p + 5 * RC, *dw = p + 6 * RC;
    float *dxx = p + 7 * RC, *dxxx = p + 8 * RC, *dx_own = p + 9 * RC, *dxc = p + 10 * RC, *dm = p + 15 * RC;
    float *dk = p + 20 * RC, *dv = dk + RKV, *dhd = dv + RKV, *dh1 = dhd + (size_t)rows * Dd;
    float *dr_pre = qk ? dh1 + (size_t)rows * 5 * Dm : dr, *dk_pre = qk ? dr_pre + RC : dk;
    float *dxo = dx ? dx : dx_own;
    const float *xr = a->xc, *xk = a->xc + RC, *xv = a->xc + 2 * RC, *xw = a->xc + 3 * RC, *xg = a->xc + 4 * RC;
    const float *maa[5] = {arwkv__param_f32(L->maa_r), arwkv__param_f32(L->maa_k), arwkv__param_f32(L->maa_v),
                           arwkv__param_f32(L->maa_w), arwkv__param_f32(L->maa_g)};
    float *dmaa[5] = {arwkv__param_grad(L->maa_r), arwkv__param_grad(L->maa_k), arwkv__param_grad(L->maa_v),
                      arwkv__param_grad(L->maa_w), arwkv__param_grad(L->maa_g)};
    arwkv_result r = ARWKV_OK;
    /* out = o_proj(y sigmoid(g)) */
    ARWKV__STEP(arwkv__linear_backward(be, dyg, dout, a->yg, L->o_w, L->o_b, rows, 0));
    ARWKV__STEP(op->gate_backward(be, dy, dg, dyg, a->y, a->g, RC));
    ARWKV__STEP(arwkv__linear_backward(be, dxc + 4 * RC, dg, xg, L->gate, NULL, rows, 0));
    /* recurrence, then the kv heads and the (1 - w) scaling of the keys */
    ARWKV__STEP(op->wkv6_backward(be, dr, dkk, dvv, dw, dy, a->r, a->kk, a->vv, a->w, a->ckpt, B, T, H, N, 1.0f / sqrtf((float)N)));
    ARWKV__STEP(op->kv_expand_backward(be, dk, dv, dw, dkk, dvv, a->k, a->w, rows, H, KVH, N));
    /* decay (dz overwrites dw) and its LoRA */
    ARWKV__STEP(op->decay_backward(be, dw, arwkv__param_grad(L->time_decay), dw, a->z, a->w, rows, C));
    ARWKV__STEP(arwkv__lora_backward(be, dhd, Dd, dw, a->hd, Dd, L->decay_w2, 0, Dd, rows, 0));
    ARWKV__STEP(op->tanh_backward(be, dhd, dhd, a->hd, (size_t)rows * (size_t)Dd));
    ARWKV__STEP(arwkv__lora_backward(be, dxc + 3 * RC, C, dhd, xw, C, L->decay_w1, 0, C, rows, 0));
    /* the per-head norms of r and k, then the q/k/v projections */
    if (qk) {
        ARWKV__STEP(be->core->rmsnorm_backward(be, dr_pre, arwkv__param_grad(L->q_norm), dr, a->r_pre, L->q_norm->data, L->q_norm->dtype,
                                               a->rstd_r, rows * H, N, 0));
        ARWKV__STEP(be->core->rmsnorm_backward(be, dk_pre, arwkv__param_grad(L->k_norm), dk, a->k_pre, L->k_norm->data, L->k_norm->dtype,
                                               a->rstd_k, rows * KVH, N, 0));
    }
    ARWKV__STEP(arwkv__linear_backward(be, dxc, dr_pre, xr, L->q_w, L->q_b, rows, 0));
    ARWKV__STEP(arwkv__linear_backward(be, dxc + RC, dk_pre, xk, L->k_w, L->k_b, rows, 0));
    ARWKV__STEP(arwkv__linear_backward(be, dxc + 2 * RC, dv, xv, L->v_w, L->v_b, rows, 0));
    /* the five mixes and their LoRA */
    ARWKV__STEP(op->ddlerp_backward(be, dxo, dxx, dm, dmaa, dxc, a->xx, maa, a->m, rows, C));
    for (int c = 0; c < 5; c++)
        ARWKV__STEP(arwkv__lora_backward(be, dh1 + (size_t)c * Dm, 5 * Dm, dm + (size_t)c * RC, a->h1 + (size_t)c * Dm, 5 * Dm, L->maa_w2, c * Dm, Dm, rows, 0));
    ARWKV__STEP(op->tanh_backward(be, dh1, dh1, a->h1, (size_t)rows * 5 * (size_t)Dm));
    ARWKV__STEP(arwkv__lora_backward(be, dxxx, C, dh1, a->xxx, C, L->maa_w1, 0, C, rows, 0));
    /* token shift */
    ARWKV__STEP(op->shift_backward(be, dxo, arwkv__param_grad(L->maa_x), dxx, dxxx, a->xx, arwkv__param_f32(L->maa_x), B, T, C));
    be->mem->free(be, ws);
    return r;
}
#undef ARWKV__STEP

/* ---- One shape for a time mix: the table both families fill ----------------------------------------
   Activations (acts) are what one layer's forward keeps for its backward; a workspace (work) holds
   the temporaries every layer shares, and with backward != 0 also the backward's. Both are opaque
   here and belong to the family that made them. v_first and dv_first are the value residual of
   RWKV-7 (layer 0's values feed every later layer); a family without one ignores them. */
typedef struct arwkv__tmix_family arwkv__tmix_family;
typedef struct arwkv__tmix_acts arwkv__tmix_acts; /* a family's activations, e.g. arwkv__tmix7_acts */
typedef struct arwkv__tmix_work arwkv__tmix_work; /* a family's workspace, e.g. arwkv__tmix7_work */

/* One student's time mix: its family and its sizes. */
typedef struct arwkv__tmix {
    const arwkv__tmix_family *family;
    arwkv_tmix7_dims r7; /* RWKV-7's sizes (zero for another family) */
    arwkv_tmix6_dims r6; /* RWKV-6's sizes (zero for another family) */
} arwkv__tmix;

struct arwkv__tmix_family {
    arwkv_arch arch;    /* the student architecture that uses it */
    const char *name;   /* for messages */
    int value_residual; /* layer 0's output feeds the later layers: its backward needs theirs first */
    /* sizes from the config and the checkpoint's shapes (a model or a shadow model of the plan) */
    arwkv_result (*dims)(const arwkv_model *m, arwkv__tmix *t);
    /* does layer l hold every parameter of the block, with the right shape and type? */
    arwkv_result (*check_layer)(const arwkv__tmix *t, const arwkv_layer *layer, int l);
    size_t (*acts_bytes)(const arwkv__tmix *t, int B, int T);
    arwkv_result (*acts_create)(arwkv_backend *be, const arwkv__tmix *t, int B, int T, arwkv__tmix_acts **out);
    void (*acts_free)(arwkv_backend *be, arwkv__tmix_acts *acts);
    size_t (*work_bytes)(const arwkv__tmix *t, int B, int T, int backward);
    arwkv_result (*work_create)(arwkv_backend *be, const arwkv__tmix *t, int B, int T, int backward, arwkv__tmix_work **out);
    void (*work_free)(arwkv_backend *be, arwkv__tmix_work *work);
    /* layer l over B x T tokens: out = TimeMix(x). shift_state [B,C] and wkv_state in/out (NULL:
       zeros, not kept); acts NULL for inference, else kept for the backward; work from work_create */
    arwkv_result (*forward)(arwkv_backend *be, const arwkv__tmix *t, const arwkv_layer *layer, int l, int B, int T, const float *x,
                            float *shift_state, float *wkv_state, float *v_first, float *out, arwkv__tmix_acts *acts,
                            arwkv__tmix_work *work);
    /* gradients of the layer's trainable parameters added to; dx written (NULL: not needed) */
    arwkv_result (*backward)(arwkv_backend *be, const arwkv__tmix *t, const arwkv_layer *layer, int l, int B, int T, const float *x,
                             const float *v_first, arwkv__tmix_acts *acts, const float *dout, float *dx, float *dv_first,
                             arwkv__tmix_work *work);
};

/* RWKV-7: the block above, as it is. */
ARWKV_PRIVATE arwkv_result arwkv__tmix7_family_dims(const arwkv_model *m, arwkv__tmix *t) {
    ARWKV__TRY(arwkv__tmix7_dims(&m->cfg, m->rank_w, m->rank_a, m->rank_v, m->rank_g, &t->r7));
    if (m->be && !m->be->rwkv7) return arwkv__fail(ARWKV_ERR_UNSUPPORTED, "backend %s has no RWKV-7 ops", m->be->name);
    return ARWKV_OK;
}
ARWKV_PRIVATE arwkv_result arwkv__tmix7_family_check(const arwkv__tmix *t, const arwkv_layer *layer, int l) {
    return arwkv__tmix7_check_layer(&t->r7, layer, l);
}
ARWKV_PRIVATE size_t arwkv__tmix7_family_acts_bytes(const arwkv__tmix *t, int B, int T) { return arwkv__tmix7_acts_bytes(&t->r7, B, T); }
ARWKV_PRIVATE arwkv_result arwkv__tmix7_family_acts_create(arwkv_backend *be, const arwkv__tmix *t, int B, int T, arwkv__tmix_acts **out) {
    return arwkv__tmix7_acts_create(be, &t->r7, B, T, (arwkv__tmix7_acts **)out);
}
ARWKV_PRIVATE void arwkv__tmix7_family_acts_free(arwkv_backend *be, arwkv__tmix_acts *a) { arwkv__tmix7_acts_free(be, (arwkv__tmix7_acts *)a); }
ARWKV_PRIVATE size_t arwkv__tmix7_family_work_bytes(const arwkv__tmix *t, int B, int T, int backward) {
    return arwkv__tmix7_work_bytes(&t->r7, B * T, backward);
}
ARWKV_PRIVATE arwkv_result arwkv__tmix7_family_work_create(arwkv_backend *be, const arwkv__tmix *t, int B, int T, int backward,
                                                           arwkv__tmix_work **out) {
    return arwkv__tmix7_work_create(be, &t->r7, B * T, backward, (arwkv__tmix7_work **)out);
}
ARWKV_PRIVATE void arwkv__tmix7_family_work_free(arwkv_backend *be, arwkv__tmix_work *w) { arwkv__tmix7_work_free(be, (arwkv__tmix7_work *)w); }
ARWKV_PRIVATE arwkv_result arwkv__tmix7_family_forward(arwkv_backend *be, const arwkv__tmix *t, const arwkv_layer *layer, int l, int B,
                                                       int T, const float *x, float *shift_state, float *wkv_state, float *v_first,
                                                       float *out, arwkv__tmix_acts *acts, arwkv__tmix_work *work) {
    return arwkv__tmix7_forward(be, layer, l, &t->r7, B, T, x, shift_state, wkv_state, v_first, out, (arwkv__tmix7_acts *)acts,
                                (arwkv__tmix7_work *)work);
}
ARWKV_PRIVATE arwkv_result arwkv__tmix7_family_backward(arwkv_backend *be, const arwkv__tmix *t, const arwkv_layer *layer, int l, int B,
                                                        int T, const float *x, const float *v_first, arwkv__tmix_acts *acts,
                                                        const float *dout, float *dx, float *dv_first, arwkv__tmix_work *work) {
    return arwkv__tmix7_backward(be, layer, l, &t->r7, B, T, x, v_first, (const arwkv__tmix7_acts *)acts, dout, dx, dv_first, NULL,
                                 NULL, (arwkv__tmix7_work *)work);
}
static const arwkv__tmix_family arwkv__tmix_rwkv7 = {
    ARWKV_ARCH_ARWKV7, "RWKV-7", 1, arwkv__tmix7_family_dims, arwkv__tmix7_family_check, arwkv__tmix7_family_acts_bytes,
    arwkv__tmix7_family_acts_create, arwkv__tmix7_family_acts_free, arwkv__tmix7_family_work_bytes, arwkv__tmix7_family_work_create,
    arwkv__tmix7_family_work_free, arwkv__tmix7_family_forward, arwkv__tmix7_family_backward};

/* RWKV-6: its activations grow on demand. Its workspace is, for inference, one set of activations
   used as scratch (grown on first use); the backward allocates its temporaries per call, which is
   what work_bytes counts when backward != 0. */
typedef struct arwkv__tmix6_work {
    arwkv__tmix6_acts *scratch;
} arwkv__tmix6_work;

ARWKV_PRIVATE arwkv_result arwkv__tmix6_family_dims(const arwkv_model *m, arwkv__tmix *t) {
    ARWKV__TRY(arwkv__tmix6_dims_from_config(&m->cfg, &t->r6));
    if (m->be && !m->be->rwkv6) return arwkv__fail(ARWKV_ERR_UNSUPPORTED, "backend %s has no RWKV-6 ops", m->be->name);
    return ARWKV_OK;
}
ARWKV_PRIVATE arwkv_result arwkv__tmix6_family_check(const arwkv__tmix *t, const arwkv_layer *layer, int l) {
    arwkv_result r = arwkv__tmix6_check(layer, &t->r6, 1, 1);
    return r == ARWKV_OK ? r : arwkv__context(r, "layer %d", l);
}
ARWKV_PRIVATE size_t arwkv__tmix6_family_acts_bytes(const arwkv__tmix *t, int B, int T) { return arwkv__tmix6_acts_bytes(&t->r6, B, T); }
ARWKV_PRIVATE arwkv_result arwkv__tmix6_family_acts_create(arwkv_backend *be, const arwkv__tmix *t, int B, int T, arwkv__tmix_acts **out) {
    (void)B, (void)T; /* grown by the first forward */
    return arwkv__tmix6_acts_create(be, &t->r6, (arwkv__tmix6_acts **)out);
}
ARWKV_PRIVATE void arwkv__tmix6_family_acts_free(arwkv_backend *be, arwkv__tmix_acts *a) {
    (void)be;
    arwkv__tmix6_acts_free((arwkv__tmix6_acts *)a);
}
ARWKV_PRIVATE size_t arwkv__tmix6_family_work_bytes(const arwkv__tmix *t, int B, int T, int backward) {
    if (backward) return arwkv__tmix6_backward_floats(&t->r6, (size_t)B * (size_t)T, 0) * sizeof(float);
    return arwkv__tmix6_acts_bytes(&t->r6, B, T);
}
ARWKV_PRIVATE arwkv_result arwkv__tmix6_family_work_create(arwkv_backend *be, const arwkv__tmix *t, int B, int T, int backward,
                                                           arwkv__tmix_work **out) {
    (void)B, (void)T, (void)backward;
    *out = NULL;
    arwkv__tmix6_work *w = (arwkv__tmix6_work *)arwkv__calloc(1, sizeof *w);
    if (!w) return arwkv__fail(ARWKV_ERR_OUT_OF_MEMORY, "QRWKV6 workspace: out of memory");
    arwkv_result r = arwkv__tmix6_acts_create(be, &t->r6, &w->scratch);
    if (r != ARWKV_OK) {
        arwkv__free(w);
        return r;
    }
    *out = (arwkv__tmix_work *)w;
    return ARWKV_OK;
}
ARWKV_PRIVATE void arwkv__tmix6_family_work_free(arwkv_backend *be, arwkv__tmix_work *work) {
    (void)be;
    arwkv__tmix6_work *w = (arwkv__tmix6_work *)work;
    if (!w) return;
    arwkv__tmix6_acts_free(w->scratch);
    arwkv__free(w);
}
ARWKV_PRIVATE arwkv_result arwkv__tmix6_family_forward(arwkv_backend *be, const arwkv__tmix *t, const arwkv_layer *layer, int l, int B,
                                                       int T, const float *x, float *shift_state, float *wkv_state, float *v_first,
                                                       float *out, arwkv__tmix_acts *acts, arwkv__tmix_work *work) {
    (void)l, (void)v_first;
    arwkv__tmix6_acts *a = acts ? (arwkv__tmix6_acts *)acts : work ? ((arwkv__tmix6_work *)work)->scratch : NULL;
    return arwkv__tmix6_forward(be, layer, &t->r6, B, T, x, shift_state, wkv_state, out, a);
}
ARWKV_PRIVATE arwkv_result arwkv__tmix6_family_backward(arwkv_backend *be, const arwkv__tmix *t, const arwkv_layer *layer, int l, int B,
                                                        int T, const float *x, const float *v_first, arwkv__tmix_acts *acts,
                                                        const float *dout, float *dx, float *dv_first, arwkv__tmix_work *work) {
    (void)l, (void)v_first, (void)dv_first, (void)work;
    return arwkv__tmix6_backward(be, layer, &t->r6, B, T, x, (arwkv__tmix6_acts *)acts, dout, dx);
}
static const arwkv__tmix_family arwkv__tmix_rwkv6 = {
    ARWKV_ARCH_QRWKV6, "RWKV-6", 0, arwkv__tmix6_family_dims, arwkv__tmix6_family_check, arwkv__tmix6_family_acts_bytes,
    arwkv__tmix6_family_acts_create, arwkv__tmix6_family_acts_free, arwkv__tmix6_family_work_bytes, arwkv__tmix6_family_work_create,
    arwkv__tmix6_family_work_free, arwkv__tmix6_family_forward, arwkv__tmix6_family_backward};

/* The family of a student architecture; NULL for a teacher (or any model without a time mix). */
ARWKV_PRIVATE const arwkv__tmix_family *arwkv__tmix_family_of(arwkv_arch arch) {
    static const arwkv__tmix_family *const families[] = {&arwkv__tmix_rwkv7, &arwkv__tmix_rwkv6};
    for (size_t i = 0; i < sizeof families / sizeof families[0]; i++)
        if (families[i]->arch == arch) return families[i];
    return NULL;
}

/* The time mix of model m (a student): its family and sizes. */
ARWKV_PRIVATE arwkv_result arwkv__tmix_of(const arwkv_model *m, arwkv__tmix *t) {
    memset(t, 0, sizeof *t);
    t->family = arwkv__tmix_family_of(m->cfg.arch);
    if (!t->family) return arwkv__fail(ARWKV_ERR_UNSUPPORTED, "%s has no time mix (not an ARWKV-7 or QRWKV6 student)", arwkv_arch_name(m->cfg.arch));
    return t->family->dims(m, t);
}

/* ============================================================================================
   SECTION 7. Models
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
        if (c->arch != ARWKV_ARCH_ARWKV7) { /* a teacher's attention, or QRWKV6's projections */
            int64_t Q = (int64_t)c->num_heads * c->head_dim, KV = (int64_t)c->num_kv_heads * c->head_dim;
#define ARWKV__ATT(field, flags, ndim, d0, d1, d2, suffix) ARWKV__P(field, flags, ndim, d0, d1, d2, "model.layers.%d.self_attn." suffix, i)
            int bias = c->attention_bias;
            ARWKV__ATT(l->q_w, ARWKV__P_MATRIX, 2, Q, C, 0, "q_proj.weight");
            if (bias) ARWKV__ATT(l->q_b, 0, 1, Q, 0, 0, "q_proj.bias");
            ARWKV__ATT(l->k_w, ARWKV__P_MATRIX, 2, KV, C, 0, "k_proj.weight");
            if (bias) ARWKV__ATT(l->k_b, 0, 1, KV, 0, 0, "k_proj.bias");
            ARWKV__ATT(l->v_w, ARWKV__P_MATRIX, 2, KV, C, 0, "v_proj.weight");
            if (bias) ARWKV__ATT(l->v_b, 0, 1, KV, 0, 0, "v_proj.bias");
            ARWKV__ATT(l->o_w, ARWKV__P_MATRIX, 2, C, Q, 0, "o_proj.weight");
            if (c->attention_output_bias) ARWKV__ATT(l->o_b, 0, 1, C, 0, 0, "o_proj.bias");
            if (c->qk_norm) {
                ARWKV__ATT(l->q_norm, 0, 1, c->head_dim, 0, 0, "q_norm.weight");
                ARWKV__ATT(l->k_norm, 0, 1, c->head_dim, 0, 0, "k_norm.weight");
                l->qk_norm_eps = c->rms_norm_eps;
            }
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
#define ARWKV__TM(field, flags, ndim, d0, d1, d2, suffix) \
    ARWKV__P(field, flags, ndim, d0, d1, d2, "model.layers.%d.self_attn.time_mixer." suffix, i)
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

/* Give back a parameter's gradient, moments and master (wherever they live). */
ARWKV_PRIVATE void arwkv__optim_state_free(arwkv_backend *be, arwkv_param *p) {
    be->mem->free(be, p->grad);
    if (p->master) { /* offloaded: the moments are host memory */
        arwkv__free(p->adam_m);
        arwkv__free(p->adam_v);
        arwkv__free(p->master);
    } else {
        be->mem->free(be, p->adam_m);
        be->mem->free(be, p->adam_v);
    }
    p->grad = p->adam_m = p->adam_v = p->master = NULL;
}

ARWKV_PRIVATE void arwkv__param_release(arwkv_model *m, arwkv_param *p) {
    if (p->owns_data) m->be->mem->free(m->be, p->data);
    arwkv__optim_state_free(m->be, p);
    p->data = NULL;
    p->owns_data = 0;
}

ARWKV_API void arwkv_model_free(arwkv_model *m) {
    if (!m) return;
    for (int i = 0; i < m->n_params; i++) arwkv__param_release(m, &m->params[i]);
    arwkv__free(m->params);
    arwkv__free(m->layers);
    for (int l = 0; m->host_block && l < m->cfg.num_layers; l++) m->be->mem->host_free(m->be, m->host_block[l]);
    arwkv__free(m->host_block);
    arwkv__free(m->host_block_bytes);
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
    if (p->master) memcpy(p->master, src, (size_t)n * sizeof(float)); /* offloaded optimizer: the master first */
    return arwkv__param_upload(m, p, src, ARWKV_F32);
}

ARWKV_API arwkv_result arwkv_param_read(arwkv_model *m, const arwkv_param *p, float *dst, int64_t n) {
    if (n != p->numel) return arwkv__fail(ARWKV_ERR_SHAPE, "parameter %s has %lld elements, asked for %lld", p->name, (long long)p->numel, (long long)n);
    if (p->master) { /* an offloaded optimizer's master holds the values; data is only their working copy */
        memcpy(dst, p->master, (size_t)n * sizeof(float));
        return ARWKV_OK;
    }
    size_t bytes = (size_t)n * arwkv_dtype_size(p->dtype);
    if (p->on_host) return arwkv_to_f32(dst, p->data, p->dtype, (size_t)n); /* a streamed layer's: already here */
    if (p->dtype == ARWKV_F32) return m->be->mem->download(m->be, dst, p->data, bytes);
    void *tmp = arwkv__malloc(bytes);
    if (!tmp) return arwkv__fail(ARWKV_ERR_OUT_OF_MEMORY, "parameter %s: out of memory", p->name);
    arwkv_result r = m->be->mem->download(m->be, tmp, p->data, bytes);
    if (r == ARWKV_OK) r = arwkv_to_f32(dst, tmp, p->dtype, (size_t)n);
    arwkv__free(tmp);
    return r;
}

/* Index of the first NaN or Inf among n values of a float type (all exponent bits set), or -1.
   One pass over the bits at load: a NaN in a weight otherwise surfaces as "nll nan" or a wrong
   gradient far from its cause. */
ARWKV_PRIVATE int64_t arwkv__first_non_finite(const void *data, arwkv_dtype t, int64_t n) {
    if (t == ARWKV_BF16 || t == ARWKV_F16) {
        const uint16_t *h = (const uint16_t *)data;
        uint16_t e = t == ARWKV_BF16 ? 0x7f80 : 0x7c00;
        for (int64_t i = 0; i < n; i++) {
            uint16_t v;
            memcpy(&v, h + i, 2); /* mapped tensors may be unaligned */
            if ((v & e) == e) return i;
        }
    } else if (t == ARWKV_F32) {
        for (int64_t i = 0; i < n; i++) {
            uint32_t v;
            memcpy(&v, (const char *)data + 4 * i, 4);
            if ((v & 0x7f800000u) == 0x7f800000u) return i;
        }
    } else if (t == ARWKV_F64) {
        for (int64_t i = 0; i < n; i++) {
            uint64_t v;
            memcpy(&v, (const char *)data + 8 * i, 8);
            if ((v & 0x7ff0000000000000ull) == 0x7ff0000000000000ull) return i;
        }
    }
    return -1;
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
    int64_t bad = arwkv__first_non_finite(t->data, t->dtype, t->numel);
    if (bad >= 0)
        return arwkv__fail(ARWKV_ERR_NUMERIC, "%s: tensor '%s' holds a non-finite value (NaN or Inf) at element %lld", file, p->name,
                           (long long)bad);
    if (p->on_host) { /* a streamed layer's tensor: its place in the layer's host block is reserved */
        if (p->dtype == t->dtype) memcpy(p->data, t->data, (size_t)t->numel * arwkv_dtype_size(t->dtype));
        else ARWKV__TRY(arwkv_to_f32((float *)p->data, t->data, t->dtype, (size_t)t->numel));
        return ARWKV_OK;
    }
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

/* ---- Teachers from GGUF files ------------------------------------------------------------------
   A llama.cpp file of a llama, qwen2 or qwen3 model becomes the same arwkv_model as its Hugging Face
   directory: the config from the metadata, each tensor dequantized to fp32 under its transformers
   name. fp32 because transformers dequantizes GGUF weights to fp32 too, so the two compute from
   identical weights (4 bytes a parameter: 540 MB for a 135M model). llama.cpp's converter stores the
   q and k rows of a Llama head interleaved for its RoPE (row 2i + p of a head is row p*D/2 + i of
   transformers' layout); that is undone here. */

/* An integer metadata value; absent: *out keeps its value unless required. */
ARWKV_PRIVATE arwkv_result arwkv__gguf_cfg_int(const arwkv_gguf *g, const char *arch, const char *suffix, int required, int *out) {
    char key[160];
    snprintf(key, sizeof key, "%s%s", arch, suffix);
    const arwkv_gguf_kv *kv = arwkv_gguf_find_kv(g, key);
    if (!kv) return required ? arwkv__fail(ARWKV_ERR_FORMAT, "%s: metadata '%s' is missing", g->file.path, key) : ARWKV_OK;
    int64_t v;
    ARWKV__TRY(arwkv_gguf_kv_int(g, kv, 0, &v));
    if (kv->type == ARWKV_GGUF_ARRAY)
        return arwkv__fail(ARWKV_ERR_UNSUPPORTED, "%s: metadata '%s' is an array (a different value per layer is not supported)", g->file.path, key);
    if (v < 0 || v > (1 << 24))
        return arwkv__fail(ARWKV_ERR_FORMAT, "%s: metadata '%s' = %lld is out of range", g->file.path, key, (long long)v);
    *out = (int)v;
    return ARWKV_OK;
}

ARWKV_API arwkv_result arwkv_gguf_config(const arwkv_gguf *g, arwkv_config *cfg) {
    memset(cfg, 0, sizeof *cfg);
    const char *path = g->file.path, *s;
    size_t len;
    const arwkv_gguf_kv *kv = arwkv_gguf_find_kv(g, "general.architecture");
    if (!kv) return arwkv__fail(ARWKV_ERR_FORMAT, "%s: metadata 'general.architecture' is missing", path);
    ARWKV__TRY(arwkv_gguf_kv_string(g, kv, 0, &s, &len));
    char arch[32];
    if (len >= sizeof arch) len = sizeof arch - 1;
    memcpy(arch, s, len);
    arch[len] = 0;
    if (strcmp(arch, "llama") == 0) cfg->arch = ARWKV_ARCH_LLAMA;
    else if (strcmp(arch, "qwen2") == 0) cfg->arch = ARWKV_ARCH_QWEN2;
    else if (strcmp(arch, "qwen3") == 0) cfg->arch = ARWKV_ARCH_QWEN3;
    else return arwkv__fail(ARWKV_ERR_UNSUPPORTED, "%s: general.architecture \"%s\" is not supported (llama, qwen2 and qwen3 are)", path, arch);
    cfg->base_arch = cfg->arch;
    strcat(arch, ".");
    ARWKV__TRY(arwkv__gguf_cfg_int(g, arch, "block_count", 1, &cfg->num_layers));
    ARWKV__TRY(arwkv__gguf_cfg_int(g, arch, "embedding_length", 1, &cfg->hidden_size));
    ARWKV__TRY(arwkv__gguf_cfg_int(g, arch, "feed_forward_length", 1, &cfg->intermediate_size));
    ARWKV__TRY(arwkv__gguf_cfg_int(g, arch, "attention.head_count", 1, &cfg->num_heads));
    cfg->max_position_embeddings = 4096;
    ARWKV__TRY(arwkv__gguf_cfg_int(g, arch, "context_length", 0, &cfg->max_position_embeddings));
    if (cfg->num_layers <= 0 || cfg->hidden_size <= 0 || cfg->intermediate_size <= 0 || cfg->num_heads <= 0)
        return arwkv__fail(ARWKV_ERR_FORMAT, "%s: block_count, embedding_length, feed_forward_length and head_count must be positive", path);
    cfg->num_kv_heads = cfg->num_heads;
    ARWKV__TRY(arwkv__gguf_cfg_int(g, arch, "attention.head_count_kv", 0, &cfg->num_kv_heads));
    cfg->head_dim = cfg->hidden_size / cfg->num_heads;
    ARWKV__TRY(arwkv__gguf_cfg_int(g, arch, "attention.key_length", 0, &cfg->head_dim));
    int value_dim = cfg->head_dim, rope_dim = cfg->head_dim;
    ARWKV__TRY(arwkv__gguf_cfg_int(g, arch, "attention.value_length", 0, &value_dim));
    ARWKV__TRY(arwkv__gguf_cfg_int(g, arch, "rope.dimension_count", 0, &rope_dim));
    if (cfg->num_kv_heads <= 0 || cfg->num_heads % cfg->num_kv_heads != 0)
        return arwkv__fail(ARWKV_ERR_FORMAT, "%s: head_count %d is not a multiple of head_count_kv %d", path, cfg->num_heads, cfg->num_kv_heads);
    if (cfg->head_dim <= 0 || cfg->head_dim % 2 != 0 || value_dim != cfg->head_dim || rope_dim != cfg->head_dim)
        return arwkv__fail(ARWKV_ERR_UNSUPPORTED, "%s: head size %d (value %d, rotary %d): an even head size, equal for keys, values and "
                           "the rotation, is supported", path, cfg->head_dim, value_dim, rope_dim);
    char key[160];
    double v;
    snprintf(key, sizeof key, "%sattention.layer_norm_rms_epsilon", arch);
    if (!(kv = arwkv_gguf_find_kv(g, key))) return arwkv__fail(ARWKV_ERR_FORMAT, "%s: metadata '%s' is missing", path, key);
    ARWKV__TRY(arwkv_gguf_kv_float(g, kv, 0, &v));
    if (!(v > 0 && v < 1)) return arwkv__fail(ARWKV_ERR_FORMAT, "%s: metadata '%s' = %g is out of range", path, key, v);
    cfg->rms_norm_eps = (float)v;
    cfg->rope_theta = 10000; /* llama.cpp's default */
    snprintf(key, sizeof key, "%srope.freq_base", arch);
    if ((kv = arwkv_gguf_find_kv(g, key))) ARWKV__TRY(arwkv_gguf_kv_float(g, kv, 0, &cfg->rope_theta));
    if (!(cfg->rope_theta > 1)) return arwkv__fail(ARWKV_ERR_FORMAT, "%s: metadata '%s' = %g is out of range", path, key, cfg->rope_theta);
    /* scaled rotary embeddings change the angles: refuse rather than compute another model */
    snprintf(key, sizeof key, "%srope.scaling.type", arch);
    if ((kv = arwkv_gguf_find_kv(g, key)) && arwkv_gguf_kv_string(g, kv, 0, &s, &len) == ARWKV_OK && !(len == 4 && memcmp(s, "none", 4) == 0))
        return arwkv__fail(ARWKV_ERR_UNSUPPORTED, "%s: %s \"%.*s\" is not supported (only the default rotary embedding)", path, key, (int)len, s);
    if (arwkv_gguf_find_tensor(g, "rope_freqs.weight"))
        return arwkv__fail(ARWKV_ERR_UNSUPPORTED, "%s: tensor 'rope_freqs.weight' (Llama 3.1 rope scaling) is not supported", path);
    const arwkv_gguf_tensor *emb = arwkv_gguf_find_tensor(g, "token_embd.weight");
    if (!emb || emb->ndim != 2 || emb->ne[0] != cfg->hidden_size || emb->ne[1] > (1 << 24))
        return arwkv__fail(ARWKV_ERR_FORMAT, "%s: tensor 'token_embd.weight' %s", path, emb ? "is not [vocabulary, embedding_length]" : "is missing");
    cfg->vocab_size = (int)emb->ne[1];
    cfg->tie_word_embeddings = arwkv_gguf_find_tensor(g, "output.weight") == NULL;
    cfg->attention_bias = arwkv_gguf_find_tensor(g, "blk.0.attn_q.bias") != NULL;
    cfg->attention_output_bias = arwkv_gguf_find_tensor(g, "blk.0.attn_output.bias") != NULL;
    if (cfg->arch == ARWKV_ARCH_QWEN2 && (!cfg->attention_bias || cfg->attention_output_bias))
        return arwkv__fail(ARWKV_ERR_UNSUPPORTED, "%s: a qwen2 model has q/k/v biases and no output bias; this file differs", path);
    cfg->qk_norm = cfg->arch == ARWKV_ARCH_QWEN3;
    cfg->bos_token_id = cfg->eos_token_id = -1;
    ARWKV__TRY(arwkv__gguf_cfg_int(g, "tokenizer.ggml.", "bos_token_id", 0, &cfg->bos_token_id));
    ARWKV__TRY(arwkv__gguf_cfg_int(g, "tokenizer.ggml.", "eos_token_id", 0, &cfg->eos_token_id));
    snprintf(cfg->torch_dtype, sizeof cfg->torch_dtype, "float32");
    return ARWKV_OK;
}

/* The transformers name of a GGUF tensor name; 0 if the name is not one of a llama/qwen model. */
ARWKV_PRIVATE int arwkv__gguf_hf_name(const char *name, int n_layers, char *out, size_t cap) {
    static const char *top[][2] = {{"token_embd.weight", "model.embed_tokens.weight"},
                                   {"output_norm.weight", "model.norm.weight"},
                                   {"output.weight", "lm_head.weight"}};
    static const char *layer[][2] = {
        {"attn_norm.weight", "input_layernorm.weight"},      {"ffn_norm.weight", "post_attention_layernorm.weight"},
        {"attn_q.weight", "self_attn.q_proj.weight"},        {"attn_q.bias", "self_attn.q_proj.bias"},
        {"attn_k.weight", "self_attn.k_proj.weight"},        {"attn_k.bias", "self_attn.k_proj.bias"},
        {"attn_v.weight", "self_attn.v_proj.weight"},        {"attn_v.bias", "self_attn.v_proj.bias"},
        {"attn_output.weight", "self_attn.o_proj.weight"},   {"attn_output.bias", "self_attn.o_proj.bias"},
        {"attn_q_norm.weight", "self_attn.q_norm.weight"},   {"attn_k_norm.weight", "self_attn.k_norm.weight"},
        {"ffn_gate.weight", "mlp.gate_proj.weight"},         {"ffn_up.weight", "mlp.up_proj.weight"},
        {"ffn_down.weight", "mlp.down_proj.weight"},
    };
    for (size_t i = 0; i < sizeof top / sizeof top[0]; i++)
        if (strcmp(name, top[i][0]) == 0) return snprintf(out, cap, "%s", top[i][1]) > 0;
    if (strncmp(name, "blk.", 4) != 0) return 0;
    const char *p = name + 4;
    long l = 0;
    if (*p < '0' || *p > '9') return 0;
    while (*p >= '0' && *p <= '9' && l <= n_layers) l = l * 10 + (*p++ - '0');
    if (*p++ != '.' || l >= n_layers) return 0;
    for (size_t i = 0; i < sizeof layer / sizeof layer[0]; i++)
        if (strcmp(p, layer[i][0]) == 0) return snprintf(out, cap, "model.layers.%ld.%s", l, layer[i][1]) > 0;
    return 0;
}

/* Undo llama.cpp's RoPE row order in place: rows of `heads` heads of D rows of `cols` values. */
ARWKV_PRIVATE arwkv_result arwkv__gguf_unpermute(float *w, int64_t heads, int64_t D, int64_t cols) {
    float *tmp = (float *)arwkv__malloc((size_t)(D * cols) * sizeof(float));
    if (!tmp) return arwkv__fail(ARWKV_ERR_OUT_OF_MEMORY, "out of memory");
    for (int64_t h = 0; h < heads; h++) {
        float *head = w + h * D * cols;
        memcpy(tmp, head, (size_t)(D * cols) * sizeof(float));
        for (int64_t i = 0; i < D / 2; i++)
            for (int64_t p = 0; p < 2; p++) memcpy(head + (p * D / 2 + i) * cols, tmp + (2 * i + p) * cols, (size_t)cols * sizeof(float));
    }
    arwkv__free(tmp);
    return ARWKV_OK;
}

/* Open a GGUF model as a checkpoint of fp32 tensors with transformers names, in one malloc'd block
   (the GGUF file can be closed afterwards). */
ARWKV_PRIVATE arwkv_result arwkv__gguf_checkpoint(const arwkv_gguf *g, const arwkv_config *cfg, arwkv_safetensors **out) {
    *out = NULL;
    const char *path = g->file.path;
    uint64_t total = 0;
    char hf[160];
    for (int i = 0; i < g->n_tensors; i++) {
        const arwkv_gguf_tensor *t = &g->tensors[i];
        if (!arwkv__gguf_hf_name(t->name, cfg->num_layers, hf, sizeof hf))
            return arwkv__fail(ARWKV_ERR_UNSUPPORTED, "%s: tensor '%s' is not part of a %s model with %d layers", path, t->name,
                               arwkv_arch_name(cfg->arch), cfg->num_layers);
        if ((uint64_t)t->numel > (SIZE_MAX / 2 - total) / 4)
            return arwkv__fail(ARWKV_ERR_OUT_OF_MEMORY, "%s: the tensors do not fit in memory as fp32", path);
        total += (uint64_t)t->numel * 4;
    }
    arwkv_safetensors *st;
    ARWKV__TRY(arwkv__st_new(path, 1, &st));
    st->n_files = 1;
    arwkv__st_file *f = &st->files[0];
    f->path = arwkv__strdup(path);
    f->map = (const unsigned char *)arwkv__malloc((size_t)total);
    f->size = (size_t)total;
    f->owned = ARWKV__ST_COPIED;
    st->tensors = (arwkv_tensor_info *)arwkv__calloc((size_t)g->n_tensors + 1, sizeof *st->tensors);
    st->cap_tensors = g->n_tensors + 1;
    arwkv_result r = f->path && f->map && st->tensors ? ARWKV_OK : arwkv__fail(ARWKV_ERR_OUT_OF_MEMORY, "%s: out of memory for %llu bytes of fp32 weights", path, (unsigned long long)total);
    uint64_t at = 0;
    for (int i = 0; i < g->n_tensors && r == ARWKV_OK; i++) {
        const arwkv_gguf_tensor *t = &g->tensors[i];
        arwkv_tensor_info *o = &st->tensors[i];
        arwkv__gguf_hf_name(t->name, cfg->num_layers, hf, sizeof hf);
        o->name = arwkv__strdup(hf);
        st->n_tensors = i + 1;
        if (!o->name) r = arwkv__fail(ARWKV_ERR_OUT_OF_MEMORY, "out of memory");
        o->dtype = ARWKV_F32;
        o->ndim = t->ndim;
        for (int d = 0; d < t->ndim; d++) o->shape[d] = t->ne[t->ndim - 1 - d]; /* PyTorch order */
        o->numel = t->numel;
        o->nbytes = (size_t)t->numel * 4;
        o->offset = at;
        o->data = f->map + at;
        at += o->nbytes;
        float *w = (float *)(uintptr_t)o->data;
        if (r == ARWKV_OK) r = arwkv_gguf_tensor_f32(g, t, w, t->numel);
        /* llama.cpp permuted Llama's q and k rows (weights and biases) for its RoPE; undo it */
        int is_q = strstr(t->name, ".attn_q.") != NULL, is_k = strstr(t->name, ".attn_k.") != NULL;
        if (r == ARWKV_OK && cfg->arch == ARWKV_ARCH_LLAMA && (is_q || is_k)) {
            int64_t heads = is_q ? cfg->num_heads : cfg->num_kv_heads, rows = o->ndim == 2 ? o->shape[0] : o->numel;
            if (rows != heads * cfg->head_dim)
                r = arwkv__fail(ARWKV_ERR_SHAPE, "%s: tensor '%s' has %lld rows, not %lld heads x %d", path, t->name, (long long)rows,
                                (long long)heads, cfg->head_dim);
            else r = arwkv__gguf_unpermute(w, heads, cfg->head_dim, o->numel / rows);
        }
    }
    if (r == ARWKV_OK) r = arwkv__st_build_table(st);
    if (r != ARWKV_OK) {
        arwkv_st_close(st);
        return r;
    }
    *out = st;
    return ARWKV_OK;
}

/* The config and the fp32 checkpoint of a GGUF teacher. */
ARWKV_PRIVATE arwkv_result arwkv__gguf_model_open(const char *path, arwkv_config *cfg, arwkv_safetensors **st) {
    arwkv_gguf *g;
    ARWKV__TRY(arwkv_gguf_open(path, &g));
    arwkv_result r = arwkv_gguf_config(g, cfg);
    if (r == ARWKV_OK) r = arwkv__gguf_checkpoint(g, cfg, st);
    arwkv_gguf_close(g);
    return r;
}

/* config.json's num_hidden_layers against the checkpoint, before anything is sized by it: a config
   with more layers than the checkpoint (2e9 would ask for gigabytes of bookkeeping) or with fewer
   (whose extra layers would be ignored in silence) is an error naming both. */
ARWKV_PRIVATE arwkv_result arwkv__check_layer_count(arwkv_model *m) {
    int L = m->cfg.num_layers, most = 0;
    for (int i = 0; i < arwkv_st_count(m->st); i++) {
        const char *name = arwkv_st_tensor(m->st, i)->name;
        if (strncmp(name, "model.layers.", 13) != 0) continue;
        char *end;
        long l = strtol(name + 13, &end, 10);
        if (end != name + 13 && *end == '.' && l >= most) most = l + 1 > INT_MAX ? INT_MAX : (int)(l + 1);
    }
    if (L < 1 || (most > 0 ? L != most : L > 65536)) /* no layer at all: the first missing tensor is named later */
        return arwkv__fail(ARWKV_ERR_SHAPE, "%s: config.json says num_hidden_layers %d, the checkpoint holds %d layers", m->dir, L, most);
    return ARWKV_OK;
}

/* The layer a parameter belongs to ("model.layers.N."), or -1. */
ARWKV_PRIVATE int arwkv__param_layer(const char *name) {
    const char *pre = "model.layers.";
    if (strncmp(name, pre, strlen(pre)) != 0) return -1;
    char *end;
    long l = strtol(name + strlen(pre), &end, 10);
    return *end == '.' && l >= 0 && l < INT_MAX ? (int)l : -1;
}

/* A parameter ARWKV_LOAD_HOST_LAYERS keeps in host memory: a layer's, but not a student's time mix
   (everything under self_attn: RWKV-7's time_mixer, and QRWKV6's q/k/v/o with its own tensors). */
ARWKV_PRIVATE int arwkv__param_streams(const arwkv_model *m, const arwkv_param *p) {
    return arwkv__param_layer(p->name) >= 0 && (arwkv_arch_is_teacher(m->cfg.arch) || !strstr(p->name, ".self_attn."));
}

/* Lay out each layer's streamed tensors in one host block (their checkpoint type for float
   matrices, fp32 otherwise, each at a multiple of 256 bytes, as the device copy is laid out) and
   point the parameters into it. */
ARWKV_PRIVATE arwkv_result arwkv__host_layers_place(arwkv_model *m) {
    int L = m->cfg.num_layers;
    m->host_block = (void **)arwkv__calloc((size_t)L, sizeof(void *));
    m->host_block_bytes = (size_t *)arwkv__calloc((size_t)L, sizeof(size_t));
    if (!m->host_block || !m->host_block_bytes) return arwkv__fail(ARWKV_ERR_OUT_OF_MEMORY, "out of memory");
    for (int pass = 0; pass < 2; pass++) { /* sizes, then places */
        for (int l = 0; l < L; l++) m->host_block_bytes[l] = 0;
        for (int i = 0; i < m->n_params; i++) {
            arwkv_param *p = &m->params[i];
            if (!arwkv__param_streams(m, p)) continue;
            const arwkv_tensor_info *t = arwkv_st_find(m->st, p->name);
            int l = arwkv__param_layer(p->name);
            if (!t || l >= L) continue; /* a missing tensor is reported by the loader */
            int keep = p->is_matrix && (t->dtype == ARWKV_F32 || t->dtype == ARWKV_BF16 || t->dtype == ARWKV_F16);
            arwkv_dtype type = keep ? t->dtype : ARWKV_F32;
            size_t *off = &m->host_block_bytes[l];
            if (pass == 1) p->dtype = type, p->data = (char *)m->host_block[l] + *off, p->on_host = 1, p->owns_data = 0;
            *off += ((size_t)p->numel * arwkv_dtype_size(type) + 255) / 256 * 256;
        }
        for (int l = 0; pass == 0 && l < L; l++) {
            arwkv_result r = m->be->mem->host_alloc(m->be, m->host_block_bytes[l], &m->host_block[l]);
            if (r != ARWKV_OK) return arwkv__context(r, "%s: layer %d in host memory", m->dir, l);
        }
    }
    return ARWKV_OK;
}

ARWKV_API arwkv_result arwkv_model_load(const char *dir, arwkv_backend *be, arwkv_model **out) { return arwkv_model_load_ex(dir, be, 0, out); }

ARWKV_API arwkv_result arwkv_model_load_ex(const char *dir, arwkv_backend *be, int flags, arwkv_model **out) {
    *out = NULL;
    arwkv_model *m = (arwkv_model *)arwkv__calloc(1, sizeof *m);
    if (!m) return arwkv__fail(ARWKV_ERR_OUT_OF_MEMORY, "out of memory");
    m->be = be;
    m->dir = arwkv__strdup(dir);
    arwkv_result r = m->dir ? ARWKV_OK : arwkv__fail(ARWKV_ERR_OUT_OF_MEMORY, "out of memory");
    if (r == ARWKV_OK && arwkv__is_gguf_file(dir)) r = arwkv__gguf_model_open(dir, &m->cfg, &m->st);
    else {
        if (r == ARWKV_OK && !arwkv__is_dir(dir))
            r = arwkv__fail(ARWKV_ERR_NOT_FOUND, "%s: not a directory or a GGUF file (a model is a directory with config.json and "
                            "safetensors, or a .gguf file)", dir);
        if (r == ARWKV_OK) r = arwkv_config_load(dir, &m->cfg);
        if (r == ARWKV_OK) r = arwkv_st_open(dir, &m->st);
    }
    if (r == ARWKV_OK) r = arwkv__check_layer_count(m);
    if (r == ARWKV_OK && m->cfg.arch == ARWKV_ARCH_ARWKV7) r = arwkv__read_lora_ranks(m);
    if (r == ARWKV_OK) r = arwkv__declare_params(m);
    if (r == ARWKV_OK && (flags & ARWKV_LOAD_HOST_LAYERS)) r = arwkv__host_layers_place(m);
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
    arwkv__buf_printf(b, "  \"model_type\": \"%s\",\n", arwkv__arch_model_type(c->arch));
    if (!arwkv_arch_is_teacher(c->arch)) /* the Transformer whose embeddings, norms, MLPs and head these are */
        arwkv__buf_printf(b, "  \"teacher_architecture\": \"%s\",\n", arwkv_arch_name(c->base_arch ? c->base_arch : ARWKV_ARCH_QWEN2));
    if (c->arch == ARWKV_ARCH_LLAMA || c->arch == ARWKV_ARCH_QWEN3)
        arwkv__buf_printf(b, "  \"attention_bias\": %s,\n", c->attention_bias ? "true" : "false");
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
        if (c->qk_norm) arwkv__buf_str(b, "  \"qk_norm\": true,\n");
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
        /* an offloaded optimizer's values are its fp32 master (data may be a bf16 working copy) */
        arwkv_dtype have = p->master ? ARWKV_F32 : p->dtype;
        arwkv_dtype t = save_type == ARWKV_DTYPE_UNKNOWN ? have : save_type;
        /* small fp32 parameters (vectors) stay fp32 in a bf16 save only if the model is fp32 */
        size_t n = (size_t)p->numel;
        host[i] = arwkv__malloc(n * 4 + 1);
        if (!host[i]) {
            r = arwkv__fail(ARWKV_ERR_OUT_OF_MEMORY, "%s: out of memory", dir);
            break;
        }
        if (t == have && p->on_host) memcpy(host[i], p->data, n * arwkv_dtype_size(t));
        else if (t == have && !p->master) r = m->be->mem->download(m->be, host[i], p->data, n * arwkv_dtype_size(t));
        else {
            r = arwkv_param_read(m, p, (float *)host[i], p->numel);
            uint16_t *h = (uint16_t *)host[i];
            float *f = (float *)host[i];
            if (r == ARWKV_OK && t != ARWKV_F32) /* narrow in place (an F32 save keeps the floats as read) */
                for (size_t k = 0; k < n; k++) h[k] = t == ARWKV_BF16 ? arwkv_f32_to_bf16(f[k]) : arwkv_f32_to_f16(f[k]);
        }
        e[i].name = p->name;
        e[i].dtype = t;
        e[i].ndim = p->ndim;
        for (int d = 0; d < p->ndim; d++) e[i].shape[d] = p->shape[d];
        e[i].data = host[i];
    }
    int n_entries = m->n_params;
    /* llama.cpp's rwkv6qwen2 and arwkv7 loaders have no tied head (output.weight is required; unlike
       its qwen2 loader they do not fall back to the embeddings) and recursal's converter materializes
       lm_head.weight: a tied student also writes its head, as a copy. Loading ignores it. */
    if (r == ARWKV_OK && !arwkv_arch_is_teacher(m->cfg.arch) && m->cfg.tie_word_embeddings && m->embed) {
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
    if (r == ARWKV_OK && tokenizer_dir && arwkv__is_gguf_file(tokenizer_dir)) r = arwkv__gguf_write_tokenizer(tokenizer_dir, dir);
    else if (r == ARWKV_OK && tokenizer_dir) {
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

/* ---- The teacher: Qwen2, Llama and Qwen3 ForCausalLM -----------------------------------------------
       h = embed[ids]
       for each layer:
           xn = RMSNorm(h; input_layernorm)
           q = xn Wq^T + bq,  k = xn Wk^T + bk,  v = xn Wv^T + bv     H query heads, Hkv key/value heads
           q, k = RMSNorm per head of head_dim (q_norm, k_norm)       Qwen3 only
           q, k = RoPE(q, k; position)
           a = attention(q, k, v) Wo^T (+ bo)                         causal, GQA; the stage-1 target
           h = h + a
           yn = RMSNorm(h; post_attention_layernorm)
           h = h + W_down (silu(W_gate yn) * (W_up yn))
       hidden = RMSNorm(h; norm);  logits = hidden W_head^T             W_head = embed when tied
   The families differ only in the biases (Qwen2: bq, bk, bv; Llama and Qwen3: all four or none, by
   attention_bias) and Qwen3's q/k norms. One routine runs a layer for both uses: the batched forward (keys and values of all positions in
   the workspace) and the cached step (new keys and values appended to the cache, queries attending
   to everything cached before them). */

#define ARWKV__TEACHER_MLP_ROWS 512  /* rows per MLP pass: bounds the two [rows, intermediate] buffers */
#define ARWKV__TEACHER_MLP_ROWS_GPU 4096 /* on a GPU: products of 512 rows leave much of it idle */
#define ARWKV__TEACHER_LOGIT_ROWS 16 /* rows per lm_head pass in arwkv_teacher_step */

struct arwkv_teacher {
    arwkv_model *m;
    arwkv_backend *be;
    int cap_rows;                         /* rows the activation buffers hold */
    float *x, *xn, *q, *k, *v, *att, *ao; /* [rows, C], [rows, C], [rows, H*D], [rows, Hkv*D] x2, [rows, H*D], [rows, C] */
    float *gate, *up;                     /* [min(rows, MLP_ROWS or MLP_ROWS_GPU), intermediate] */
    int32_t *ids, *pos;                   /* [rows] */
    float *logits;                        /* [LOGIT_ROWS, vocab], allocated by the first step */
    /* A streamed model (ARWKV_LOAD_HOST_LAYERS): two device slots of one layer each. While layer l
       runs from one, layer l+1 is copied into the other. */
    void *slot[2];
    int slot_layer[2], last_slot;         /* the layer each slot holds (-1: none), the slot used last */
    arwkv_param *slot_params[2];          /* [n_params]: copies of the model's parameters that point into a slot */
    arwkv_layer slot_view[2];             /* the layer in each slot, as arwkv__teacher_layer reads it */
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
    size_t chunk = t->be->on_gpu ? ARWKV__TEACHER_MLP_ROWS_GPU : ARWKV__TEACHER_MLP_ROWS, mlp_rows = R < chunk ? R : chunk;
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
    if (!arwkv_arch_is_teacher(m->cfg.arch))
        return arwkv__fail(ARWKV_ERR_UNSUPPORTED, "%s: the teacher must be a Transformer (Qwen2, Llama or Qwen3 ForCausalLM), this model is %s",
                           m->dir ? m->dir : "model", arwkv_arch_name(m->cfg.arch));
    if (!m->be->qwen)
        return arwkv__fail(ARWKV_ERR_UNSUPPORTED, "backend %s has no Qwen ops (rope, attention)", arwkv_backend_name(m->be));
    arwkv_teacher *t = (arwkv_teacher *)arwkv__calloc(1, sizeof *t);
    if (!t) return arwkv__fail(ARWKV_ERR_OUT_OF_MEMORY, "teacher: out of memory");
    t->m = m;
    t->be = m->be;
    t->slot_layer[0] = t->slot_layer[1] = -1;
    size_t slot_bytes = 0;
    for (int l = 0; m->host_block && l < m->cfg.num_layers; l++) slot_bytes = m->host_block_bytes[l] > slot_bytes ? m->host_block_bytes[l] : slot_bytes;
    for (int s = 0; s < 2 && m->host_block; s++) {
        arwkv_result r = m->be->mem->alloc(m->be, slot_bytes, &t->slot[s]);
        t->slot_params[s] = (arwkv_param *)arwkv__calloc((size_t)m->n_params, sizeof(arwkv_param));
        if (r == ARWKV_OK && !t->slot_params[s]) r = arwkv__fail(ARWKV_ERR_OUT_OF_MEMORY, "teacher: out of memory");
        if (r != ARWKV_OK) {
            arwkv_teacher_free(t);
            return arwkv__context(r, "%s: a device slot for a streamed layer", m->dir ? m->dir : "teacher");
        }
    }
    *out = t;
    return ARWKV_OK;
}

ARWKV_API void arwkv_teacher_free(arwkv_teacher *t) {
    if (!t) return;
    arwkv__teacher_release(t);
    t->be->mem->free(t->be, t->logits);
    for (int s = 0; s < 2; s++) {
        if (t->slot[s]) (void)t->be->mem->sync(t->be); /* a copy in flight still writes the slot */
        t->be->mem->free(t->be, t->slot[s]);
        arwkv__free(t->slot_params[s]);
    }
    arwkv__free(t);
}

/* ---- Streaming a teacher's layers ---------------------------------------------------------------
   A model loaded with ARWKV_LOAD_HOST_LAYERS keeps each layer in one block of host memory. The
   teacher copies a layer's block into a device slot whose layout is the same, so each parameter
   moves by the same offset; the slot's view of the layer points at those copies. */
ARWKV_PRIVATE arwkv_result arwkv__teacher_stage(arwkv_teacher *t, int s, int l) {
    arwkv_model *m = t->m;
    static const size_t members[] = {offsetof(arwkv_layer, in_norm), offsetof(arwkv_layer, post_norm), offsetof(arwkv_layer, mlp_gate),
                                     offsetof(arwkv_layer, mlp_up),  offsetof(arwkv_layer, mlp_down),  offsetof(arwkv_layer, q_w),
                                     offsetof(arwkv_layer, q_b),     offsetof(arwkv_layer, k_w),       offsetof(arwkv_layer, k_b),
                                     offsetof(arwkv_layer, v_w),     offsetof(arwkv_layer, v_b),       offsetof(arwkv_layer, o_w),
                                     offsetof(arwkv_layer, o_b),     offsetof(arwkv_layer, q_norm),    offsetof(arwkv_layer, k_norm)};
    ARWKV__TRY(t->be->mem->upload_async(t->be, s, t->slot[s], m->host_block[l], m->host_block_bytes[l]));
    t->slot_layer[s] = l;
    t->slot_view[s] = m->layers[l];
    for (size_t i = 0; i < sizeof members / sizeof members[0]; i++) {
        arwkv_param **field = (arwkv_param **)((char *)&t->slot_view[s] + members[i]), *p = *field;
        if (!p || !p->on_host) continue;
        arwkv_param *copy = &t->slot_params[s][p - m->params];
        *copy = *p;
        copy->data = (char *)t->slot[s] + ((char *)p->data - (char *)m->host_block[l]);
        copy->on_host = 0;
        *field = copy;
    }
    return ARWKV_OK;
}

/* The layer to run: the model's own, or for a streamed model layer l in its slot (copied now if it
   was not prefetched), with the next layer's copy started into the other slot. */
ARWKV_PRIVATE arwkv_result arwkv__teacher_fetch(arwkv_teacher *t, int l, const arwkv_layer **out) {
    arwkv_model *m = t->m;
    if (!m->host_block) {
        *out = &m->layers[l];
        return ARWKV_OK;
    }
    int s = t->slot_layer[0] == l ? 0 : t->slot_layer[1] == l ? 1 : -1, next = (l + 1) % m->cfg.num_layers;
    if (s < 0) ARWKV__TRY(arwkv__teacher_stage(t, s = 1 - t->last_slot, l));
    ARWKV__TRY(t->be->mem->upload_wait(t->be, s));
    t->last_slot = s;
    if (next != l && t->slot_layer[1 - s] != next) ARWKV__TRY(arwkv__teacher_stage(t, 1 - s, next)); /* waits for layer l-1's ops */
    *out = &t->slot_view[s];
    return ARWKV_OK;
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
    const arwkv_layer *L;
    ARWKV__TRY(arwkv__teacher_fetch(t, l, &L));
    int C = c->hidden_size, H = c->num_heads, Hkv = c->num_kv_heads, D = c->head_dim, F = c->intermediate_size;
    int KV = Hkv * D, R = B * n;
    ARWKV_ASSERT(B == 1 || (p0 == 0 && kv_bs == (ptrdiff_t)n * KV));
    float *k_new = kc + (ptrdiff_t)p0 * KV, *v_new = vc + (ptrdiff_t)p0 * KV;
    ARWKV__TRY(be->core->rmsnorm_forward(be, t->xn, NULL, t->x, L->in_norm->data, L->in_norm->dtype, R, C, c->rms_norm_eps));
    ARWKV__TRY(arwkv__linear_forward(be, t->q, H * D, t->xn, L->q_w, L->q_b, R, 0));
    ARWKV__TRY(arwkv__linear_forward(be, k_new, KV, t->xn, L->k_w, L->k_b, R, 0));
    ARWKV__TRY(arwkv__linear_forward(be, v_new, KV, t->xn, L->v_w, L->v_b, R, 0));
    if (c->qk_norm) { /* Qwen3: each head's q and k RMS-normalized (rows of D floats), before RoPE */
        ARWKV__TRY(be->core->rmsnorm_forward(be, t->q, NULL, t->q, L->q_norm->data, L->q_norm->dtype, R * H, D, c->rms_norm_eps));
        ARWKV__TRY(be->core->rmsnorm_forward(be, k_new, NULL, k_new, L->k_norm->data, L->k_norm->dtype, R * Hkv, D, c->rms_norm_eps));
    }
    ARWKV__TRY(be->qwen->rope_forward(be, t->q, R, H, D, (ptrdiff_t)H * D, pos, p0, c->rope_theta));
    ARWKV__TRY(be->qwen->rope_forward(be, k_new, R, Hkv, D, KV, pos, p0, c->rope_theta));
    ARWKV__TRY(be->qwen->attention_forward(be, t->att, t->q, kc, vc, B, n, p0, H, Hkv, D, kv_bs));
    ARWKV__TRY(arwkv__linear_forward(be, t->ao, C, t->att, L->o_w, L->o_b, R, 0));
    if (hook) ARWKV__TRY(hook(user, l, t->x, t->xn, t->ao, R));
    ARWKV__TRY(be->core->axpy(be, t->x, 1.0f, t->ao, (size_t)R * C));
    ARWKV__TRY(be->core->rmsnorm_forward(be, t->xn, NULL, t->x, L->post_norm->data, L->post_norm->dtype, R, C, c->rms_norm_eps));
    const int chunk = be->on_gpu ? ARWKV__TEACHER_MLP_ROWS_GPU : ARWKV__TEACHER_MLP_ROWS;
    for (int r0 = 0; r0 < R; r0 += chunk) { /* rows are independent here: a chunk at a time */
        int rows = R - r0 < chunk ? R - r0 : chunk;
        const float *yn = t->xn + (ptrdiff_t)r0 * C;
        ARWKV__TRY(arwkv__linear_forward(be, t->gate, F, yn, L->mlp_gate, NULL, rows, 0));
        ARWKV__TRY(arwkv__linear_forward(be, t->up, F, yn, L->mlp_up, NULL, rows, 0));
        ARWKV__TRY(be->core->swiglu_forward(be, t->gate, t->gate, t->up, (size_t)rows * F)); /* elementwise: in place is fine */
        ARWKV__TRY(arwkv__linear_forward(be, t->x + (ptrdiff_t)r0 * C, C, t->gate, L->mlp_down, NULL, rows, 1)); /* h += MLP */
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

/* ---- The head: logits from hidden states, forward and backward ---- */

ARWKV_API arwkv_result arwkv_model_logits(arwkv_model *m, const float *hidden, int n_rows, float *logits) {
    if (n_rows < 0) return arwkv__fail(ARWKV_ERR_INVALID_ARGUMENT, "model logits: %d rows", n_rows);
    return arwkv__linear_forward(m->be, logits, m->cfg.vocab_size, hidden, m->lm_head, NULL, n_rows, 0);
}
/* Its backward over n rows: dhidden = dlogits . W, and W's gradient += dlogits^T . hidden if the
   head trains (a tied head's gradient is the embedding's). */
ARWKV_PRIVATE arwkv_result arwkv__model_logits_backward(arwkv_model *m, const float *hidden, int n_rows, const float *dlogits,
                                                        float *dhidden) {
    return arwkv__linear_backward(m->be, dhidden, dlogits, hidden, m->lm_head, NULL, n_rows, 0);
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
    if (!arwkv_arch_is_teacher(m->cfg.arch))
        return arwkv__fail(ARWKV_ERR_UNSUPPORTED, "KV cache: the model is %s, not a Transformer teacher", arwkv_arch_name(m->cfg.arch));
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
            ARWKV__TRY(arwkv_model_logits(t->m, t->xn + (ptrdiff_t)r0 * C, rows, t->logits));
            ARWKV__TRY(be->mem->download(be, logits_all + (size_t)r0 * V, t->logits, (size_t)rows * V * sizeof(float)));
        }
    if (logits_last && logits_all) memcpy(logits_last, logits_all + (size_t)(n - 1) * V, (size_t)V * sizeof(float));
    else if (logits_last) {
        ARWKV__TRY(arwkv_model_logits(t->m, t->xn + (ptrdiff_t)(n - 1) * C, 1, t->logits));
        ARWKV__TRY(be->mem->download(be, logits_last, t->logits, (size_t)V * sizeof(float)));
    }
    c->len += n;
    return ARWKV_OK;
}

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
    size_t bytes = (size_t)s->numel * arwkv_dtype_size(s->dtype);
    return s->on_host ? dst->be->mem->upload(dst->be, d->data, s->data, bytes) : dst->be->mem->copy(dst->be, d->data, s->data, bytes);
}

/* Fills a new parameter (skipped when absent) with expr of its flat index i, in the host buffer buf,
   then writes it (r holds the result); the two initializers below use it. */
#define ARWKV__SET(param, expr)                                  \
    if (r == ARWKV_OK && (param)) {                              \
        for (int64_t i_ = 0; i_ < (param)->numel; i_++) {        \
            double i = (double)i_;                               \
            (void)i;                                             \
            buf[i_] = (float)(expr);                             \
        }                                                        \
        r = arwkv_param_write(s, (param), buf, (param)->numel);  \
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

/* The config and LoRA ranks of a new student of teacher config tc (also used by the memory plan,
   which must see the same shapes without making the student). */
ARWKV_PRIVATE void arwkv__student_shape(const arwkv_config *tc, const arwkv_student_options *opt, arwkv_model *s) {
    s->cfg = *tc;
    s->cfg.base_arch = tc->arch;
    if (opt->arch == ARWKV_ARCH_QRWKV6) {
        s->cfg.arch = ARWKV_ARCH_QRWKV6;
        /* the projections keep the teacher's biases (Qwen2: q/k/v; Llama, Qwen3: all four or none) and
           Qwen3's per-head norms of q and k, so that r and k start as the teacher's queries and keys */
        s->cfg.head_size = tc->head_dim;
        s->cfg.lora_rank_tokenshift = opt->rank_mix > 0 ? opt->rank_mix : tc->hidden_size >= 4096 ? 64 : 32;
        s->cfg.lora_rank_decay = opt->rank_w > 0 ? opt->rank_w : tc->hidden_size >= 4096 ? 128 : 64;
        return;
    }
    s->cfg.arch = ARWKV_ARCH_ARWKV7;
    s->cfg.qk_norm = 0; /* the attention, q/k norms included, is what the time mix replaces */
    s->cfg.head_size = 64;
    s->cfg.head_size_divisor = 8;
    s->cfg.wkv_has_gate = opt->gate != 0;
    s->cfg.wkv_has_group_norm = opt->group_norm != 0;
    s->cfg.wkv_version = 7;
    s->rank_w = opt->rank_w > 0 ? opt->rank_w : 64;
    s->rank_a = opt->rank_a > 0 ? opt->rank_a : 64;
    s->rank_v = opt->rank_v > 0 ? opt->rank_v : 32;
    s->rank_g = opt->gate ? (opt->rank_g > 0 ? opt->rank_g : 128) : 0;
}

/* A parameter the student inherits: a copy of the teacher's in its stored type, or with
   opt->share_teacher the teacher's own memory (a student that trains it makes its own fp32 master
   then, in arwkv_trainer_create, and never writes to the teacher's). */
ARWKV_PRIVATE arwkv_result arwkv__inherit_param(arwkv_model *s, arwkv_param *p, const arwkv_param *tp, const arwkv_student_options *opt) {
    /* a streamed teacher's attention (which a QRWKV6 time mix reuses) goes to the device: only
       the teacher's forward streams */
    if (!opt->share_teacher || (tp->on_host && strstr(p->name, ".self_attn."))) return arwkv__copy_param(s, p, tp);
    if (p->numel != tp->numel) return arwkv__fail(ARWKV_ERR_SHAPE, "%s: %lld elements in the teacher, %lld in the student", p->name,
                                                  (long long)tp->numel, (long long)p->numel);
    p->data = tp->data, p->dtype = tp->dtype, p->owns_data = 0, p->on_host = tp->on_host;
    return ARWKV_OK;
}

/* A QRWKV6 student: every parameter the teacher has (q/k/v/o with biases included) is inherited in
   its stored type; the RWKV-6 parameters are new, fp32. */
ARWKV_PRIVATE arwkv_result arwkv__student_create_qrwkv6(arwkv_model *teacher, const arwkv_student_options *opt, arwkv_model **out) {
    const arwkv_config *tc = &teacher->cfg;
    if (tc->num_heads * tc->head_dim != tc->hidden_size)
        return arwkv__fail(ARWKV_ERR_UNSUPPORTED, "a QRWKV6 student needs heads x head_dim == hidden size (%d x %d != %d)", tc->num_heads,
                           tc->head_dim, tc->hidden_size);
    arwkv_model *s = (arwkv_model *)arwkv__calloc(1, sizeof *s);
    if (!s) return arwkv__fail(ARWKV_ERR_OUT_OF_MEMORY, "out of memory");
    s->be = teacher->be;
    arwkv__student_shape(tc, opt, s);
    arwkv_result r = arwkv__declare_params(s);
    arwkv__rng rng = {opt->seed * 0x2545F4914F6CDD1Dull + 6789};
    for (int i = 0; i < s->n_params && r == ARWKV_OK; i++) {
        arwkv_param *p = &s->params[i], *tp = arwkv_model_param(teacher, p->name);
        r = tp ? arwkv__inherit_param(s, p, tp, opt) : arwkv__param_alloc(s, p, ARWKV_F32);
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
    if (!arwkv_arch_is_teacher(tc->arch))
        return arwkv__fail(ARWKV_ERR_UNSUPPORTED, "a student is made from a Transformer teacher (Qwen2, Llama or Qwen3 ForCausalLM), not %s",
                           arwkv_arch_name(tc->arch));
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
    arwkv__student_shape(tc, &opt, s);
    arwkv_result r = arwkv__declare_params(s);
    arwkv__rng rng = {opt.seed * 0x2545F4914F6CDD1Dull + 12345};
    /* shared parts: same names in both models */
    for (int i = 0; i < s->n_params && r == ARWKV_OK; i++) {
        arwkv_param *p = &s->params[i];
        if (strstr(p->name, ".time_mixer.")) continue;
        arwkv_param *tp = arwkv_model_param(teacher, p->name);
        if (!tp) r = arwkv__fail(ARWKV_ERR_NOT_FOUND, "teacher has no parameter '%s'", p->name);
        else r = arwkv__inherit_param(s, p, tp, &opt);
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
   The layer stack around the time mix (RWKV-7 for ARWKV, RWKV-6 for QRWKV6) is Qwen's: embedding, then per layer
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
    int L, C, F, V;
    int cap_rows, cap_train_rows, cap_B, cap_T; /* what the buffers hold */
    int cap_all_layers;                         /* training buffers hold every layer (ARWKV_RNN_TRAIN) */
    int B, T, trained;                          /* the last forward: its arwkv_rnn_mode */
    int32_t *ids;                  /* [rows] */
    float *x;                      /* [L+1][rows][C] when training, else [2][rows][C] */
    float *xn, *h, *yn;            /* [L][rows][C] when training every layer, else [rows][C] */
    float *rstd1, *rstd2;          /* [L][rows] when training every layer, else [rows] */
    float *att, *v_first, *hn, *rstdf;
    float *gate, *up, *act;        /* [rows][F] scratch */
    float *shift_b, *wkv_b;        /* one layer's state of B sequences */
    float *dx, *dxn, *dv_first;    /* backward: [rows][C] */
    float *logits;                 /* [LOGIT_ROWS][V] for steps */
    arwkv__tmix tm;                /* the time mix */
    arwkv__tmix_acts **acts;       /* its activations: [L] when training ([0] only when recomputing) */
    arwkv__tmix_work *work;        /* its workspace, shared by the layers */
};

ARWKV_PRIVATE int arwkv__rnn_heads(const arwkv_model *m, int *N) {
    *N = m->cfg.head_size;
    return m->cfg.hidden_size / m->cfg.head_size;
}

ARWKV_API arwkv_result arwkv_rnn_state_create(arwkv_model *m, arwkv_rnn_state **out) {
    *out = NULL;
    if (!arwkv__tmix_family_of(m->cfg.arch))
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

/* A fingerprint of a model, so a state saved with one model is refused by another. Students share
   their shape, embeddings and norms with their teacher and with each other, so the fingerprint
   covers every parameter: its name, shape, type and a sample of its bytes (16 runs of 64 bytes
   spread over it; all of a small one). Another seed, init or gate, or more training, change it;
   the sample keeps it cheap for a large model on a GPU (a few reads per tensor, not a copy). */
#define ARWKV__FP_RUNS 16
#define ARWKV__FP_RUN_BYTES 64
ARWKV_PRIVATE uint64_t arwkv__model_fingerprint(arwkv_model *m) {
    char head[256];
    snprintf(head, sizeof head, "%s/%d/%d/%d/%d", arwkv_arch_name(m->cfg.arch), m->cfg.hidden_size, m->cfg.num_layers,
             m->cfg.vocab_size, m->cfg.intermediate_size);
    uint64_t h = arwkv__hash(head, strlen(head));
    unsigned char sample[ARWKV__FP_RUNS * ARWKV__FP_RUN_BYTES];
    for (int i = 0; i < m->n_params; i++) {
        const arwkv_param *p = &m->params[i];
        snprintf(head, sizeof head, "%s/%s/%lld/%lld/%lld/%lld", p->name, arwkv_dtype_name(p->dtype), (long long)p->shape[0],
                 (long long)p->shape[1], (long long)p->shape[2], (long long)p->shape[3]);
        h = (h ^ arwkv__hash(head, strlen(head))) * 1099511628211ull;
        size_t bytes = (size_t)p->numel * arwkv_dtype_size(p->dtype), n = 0;
        if (bytes <= sizeof sample) {
            if (m->be->mem->download(m->be, sample, p->data, bytes) == ARWKV_OK) n = bytes;
        } else {
            for (int k = 0; k < ARWKV__FP_RUNS; k++) {
                size_t off = (bytes - ARWKV__FP_RUN_BYTES) / (ARWKV__FP_RUNS - 1) * (size_t)k;
                if (m->be->mem->download(m->be, sample + n, (const char *)p->data + off, ARWKV__FP_RUN_BYTES) != ARWKV_OK) break;
                n += ARWKV__FP_RUN_BYTES;
            }
        }
        h = (h ^ arwkv__hash((const char *)sample, n)) * 1099511628211ull;
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
    /* a state of NaNs would answer with NaN logits from its first token on */
    int64_t bad_shift = r == ARWKV_OK ? arwkv__first_non_finite(sh->data, ARWKV_F32, sh->numel) : -1;
    int64_t bad_wkv = r == ARWKV_OK && bad_shift < 0 ? arwkv__first_non_finite(wk->data, ARWKV_F32, wk->numel) : -1;
    if (bad_shift >= 0 || bad_wkv >= 0)
        r = arwkv__fail(ARWKV_ERR_NUMERIC, "%s: tensor '%s' holds a non-finite value (NaN or Inf) at element %lld", path,
                        bad_shift >= 0 ? "shift" : "wkv", (long long)(bad_shift >= 0 ? bad_shift : bad_wkv));
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
    if (r->acts)
        for (int l = 0; l < r->L; l++) r->tm.family->acts_free(be, r->acts[l]);
    arwkv__free(r->acts);
    if (r->work) r->tm.family->work_free(be, r->work);
    r->ids = NULL, r->x = r->xn = r->h = r->yn = r->rstd1 = r->rstd2 = r->att = r->v_first = r->hn = r->rstdf = NULL;
    r->gate = r->up = r->act = r->shift_b = r->wkv_b = r->dx = r->dxn = r->dv_first = NULL;
    r->acts = NULL, r->work = NULL;
    r->cap_rows = r->cap_train_rows = r->cap_B = r->cap_T = r->cap_all_layers = 0;
}

ARWKV_API arwkv_result arwkv_rnn_create(arwkv_model *m, arwkv_rnn **out) {
    *out = NULL;
    if (!arwkv__tmix_family_of(m->cfg.arch))
        return arwkv__fail(ARWKV_ERR_UNSUPPORTED, "arwkv_rnn runs ARWKV-7 and QRWKV6 students; %s is neither", arwkv_arch_name(m->cfg.arch));
    arwkv_rnn *r = (arwkv_rnn *)arwkv__calloc(1, sizeof *r);
    if (!r) return arwkv__fail(ARWKV_ERR_OUT_OF_MEMORY, "out of memory");
    r->m = m, r->be = m->be, r->L = m->cfg.num_layers, r->C = m->cfg.hidden_size, r->F = m->cfg.intermediate_size;
    r->V = m->cfg.vocab_size;
    arwkv_result res = arwkv__tmix_of(m, &r->tm);
    /* every layer holds its time mix's parameters: a missing or misshapen one is named here, not mid-forward */
    for (int l = 0; l < r->L && res == ARWKV_OK; l++) res = r->tm.family->check_layer(&r->tm, &m->layers[l], l);
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

/* Make the buffers hold B x T tokens for an arwkv_rnn_mode: training keeps every layer's input,
   and every layer's activations unless they are recomputed. */
ARWKV_PRIVATE arwkv_result arwkv__rnn_reserve(arwkv_rnn *r, int B, int T, int train) {
    int rows = B * T, all_layers = train == ARWKV_RNN_TRAIN;
    int ok = rows <= r->cap_rows && B <= r->cap_B &&
             (!train || (rows <= r->cap_train_rows && T <= r->cap_T && (r->cap_all_layers || !all_layers)));
    if (ok) return ARWKV_OK;
    arwkv__rnn_release(r);
    arwkv_backend *be = r->be;
    size_t R = (size_t)rows, C = (size_t)r->C, L = (size_t)r->L, keep = all_layers ? L : 1;
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
    const arwkv__tmix_family *tf = r->tm.family;
    if (res == ARWKV_OK && train) {
        r->acts = (arwkv__tmix_acts **)arwkv__calloc(L, sizeof *r->acts);
        if (!r->acts) res = arwkv__fail(ARWKV_ERR_OUT_OF_MEMORY, "out of memory");
        for (size_t l = 0; l < keep && res == ARWKV_OK; l++) res = tf->acts_create(be, &r->tm, B, T, &r->acts[l]);
    }
    if (res == ARWKV_OK) res = tf->work_create(be, &r->tm, B, T, train, &r->work);
    if (res != ARWKV_OK) {
        arwkv__rnn_release(r);
        return arwkv__context(res, "student workspace for %d x %d tokens", B, T);
    }
    r->cap_rows = rows, r->cap_B = B;
    if (train) r->cap_train_rows = rows, r->cap_T = T, r->cap_all_layers = all_layers;
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

/* Layer l up to the MLP's input: xn = RMSNorm(x), h = x + TimeMix(xn), yn = RMSNorm(h), into slot k of
   the kept arrays (k = l when every layer is kept, else 0). The forward runs it once per layer; with
   recomputation the backward runs it again, with the same inputs and so the same bits. */
ARWKV_PRIVATE arwkv_result arwkv__rnn_layer_tmix(arwkv_rnn *r, int l, size_t k, const float *x, arwkv_rnn_state **states, int train) {
    arwkv_model *m = r->m;
    arwkv_backend *be = r->be;
    const arwkv_layer *ly = &m->layers[l];
    int B = r->B, T = r->T, M = B * T, C = r->C;
    size_t MC = (size_t)M * C;
    float eps = m->cfg.rms_norm_eps;
    float *xn = r->xn + k * MC, *h = r->h + k * MC, *yn = r->yn + k * MC, *rs1 = r->rstd1 + k * M, *rs2 = r->rstd2 + k * M;
    ARWKV__TRY(be->core->rmsnorm_forward(be, xn, rs1, x, ly->in_norm->data, ly->in_norm->dtype, M, C, eps));
    if (states) ARWKV__TRY(arwkv__rnn_state_io(r, states, B, l, 1));
    ARWKV__TRY(r->tm.family->forward(be, &r->tm, ly, l, B, T, xn, states ? r->shift_b : NULL, states ? r->wkv_b : NULL, r->v_first,
                                     r->att, train ? r->acts[k] : NULL, r->work));
    if (states) ARWKV__TRY(arwkv__rnn_state_io(r, states, B, l, 0));
    ARWKV__TRY(be->mem->copy(be, h, x, MC * sizeof(float)));
    ARWKV__TRY(be->core->axpy(be, h, 1.0f, r->att, MC));
    return be->core->rmsnorm_forward(be, yn, rs2, h, ly->post_norm->data, ly->post_norm->dtype, M, C, eps);
}

ARWKV_API arwkv_result arwkv_rnn_forward(arwkv_rnn *r, const int32_t *ids, int B, int T, arwkv_rnn_state **states, int train,
                                         const float **hidden) {
    arwkv_model *m = r->m;
    arwkv_backend *be = r->be;
    if (B <= 0 || T <= 0) return arwkv__fail(ARWKV_ERR_INVALID_ARGUMENT, "student forward over %d x %d tokens", B, T);
    if (train < ARWKV_RNN_INFER || train > ARWKV_RNN_TRAIN_RECOMPUTE)
        return arwkv__fail(ARWKV_ERR_INVALID_ARGUMENT, "student forward: mode %d is not an arwkv_rnn_mode", train);
    if (train == ARWKV_RNN_TRAIN_RECOMPUTE && states) /* the recomputation would read states already advanced */
        return arwkv__fail(ARWKV_ERR_INVALID_ARGUMENT, "student forward: recomputation starts from zero states (pass NULL)");
    for (int i = 0; be->on_gpu && i < m->n_params; i++)
        if (m->params[i].on_host)
            return arwkv__fail(ARWKV_ERR_UNSUPPORTED, "%s: %s is in host memory (the model was loaded with ARWKV_LOAD_HOST_LAYERS, "
                               "--stream-teacher): on a GPU only a teacher's forward streams its layers; load the student without it "
                               "to run it", m->dir ? m->dir : "student", m->params[i].name);
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
        size_t k = train == ARWKV_RNN_TRAIN ? (size_t)l : 0;
        float *h = r->h + k * MC, *yn = r->yn + k * MC;
        res = arwkv__rnn_layer_tmix(r, l, k, x, states, train);
        /* x' = h + down(silu(gate(yn)) * up(yn)) */
        if (res == ARWKV_OK) res = arwkv__linear_forward(be, r->gate, 0, yn, ly->mlp_gate, NULL, M, 0);
        if (res == ARWKV_OK) res = arwkv__linear_forward(be, r->up, 0, yn, ly->mlp_up, NULL, M, 0);
        if (res == ARWKV_OK) res = be->core->swiglu_forward(be, r->act, r->gate, r->up, (size_t)M * r->F);
        if (res == ARWKV_OK) res = be->mem->copy(be, xnext, h, MC * sizeof(float));
        if (res == ARWKV_OK) res = arwkv__linear_forward(be, xnext, 0, r->act, ly->mlp_down, NULL, M, 1);
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
        size_t k = r->trained == ARWKV_RNN_TRAIN ? (size_t)l : 0;
        const float *x = r->x + (size_t)l * MC, *xn = r->xn + k * MC, *h = r->h + k * MC, *yn = r->yn + k * MC;
        const float *rs1 = r->rstd1 + k * M, *rs2 = r->rstd2 + k * M;
        /* recomputation: this layer's forward again, from its kept input (v_first, written by layer 0,
           is still there: no later layer writes it, and layer 0's recomputation writes the same) */
        if (r->trained == ARWKV_RNN_TRAIN_RECOMPUTE) res = arwkv__rnn_layer_tmix(r, l, 0, x, NULL, r->trained);
        /* the MLP, its intermediates recomputed from yn; r->dx holds d x_{l+1} = d h (residual) */
        if (res == ARWKV_OK) res = arwkv__linear_forward(be, r->gate, 0, yn, ly->mlp_gate, NULL, M, 0);
        if (res == ARWKV_OK) res = arwkv__linear_forward(be, r->up, 0, yn, ly->mlp_up, NULL, M, 0);
        if (res == ARWKV_OK && ly->mlp_down->trainable) res = be->core->swiglu_forward(be, r->act, r->gate, r->up, MF);
        /* d act = dx . W_down, into act's place (W_down's gradient reads act first) */
        if (res == ARWKV_OK) res = arwkv__linear_backward(be, r->act, r->dx, r->act, ly->mlp_down, NULL, M, 0);
        /* swiglu: act now holds d act; gate and up become their gradients */
        if (res == ARWKV_OK) res = be->core->swiglu_backward(be, r->gate, r->up, r->act, r->gate, r->up, MF);
        /* d yn = d gate . W_gate + d up . W_up (dxn used as the d yn buffer) */
        if (res == ARWKV_OK) res = arwkv__linear_backward(be, r->dxn, r->gate, yn, ly->mlp_gate, NULL, M, 0);
        if (res == ARWKV_OK) res = arwkv__linear_backward(be, r->dxn, r->up, yn, ly->mlp_up, NULL, M, 1);
        /* d h += RMSNorm backward (post-attention norm): r->dx becomes d h */
        if (res == ARWKV_OK)
            res = be->core->rmsnorm_backward(be, r->dx, ly->post_norm->trainable ? ly->post_norm->grad : NULL, r->dxn, h,
                                             ly->post_norm->data, ly->post_norm->dtype, rs2, M, C, 1);
        /* h = x + att: d att = d h; the time mix gives d xn; then d x = d h + d RMSNorm(x) */
        if (res == ARWKV_OK)
            res = r->tm.family->backward(be, &r->tm, ly, l, B, T, xn, r->v_first, r->acts[k], r->dx, r->dxn, r->dv_first, r->work);
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
            ARWKV__TRY(arwkv_model_logits(r->m, hidden + (size_t)row * r->C, rows, r->logits));
            if (logits_all)
                ARWKV__TRY(be->mem->download(be, logits_all + (size_t)(done + row) * r->V, r->logits, (size_t)rows * r->V * sizeof(float)));
            if (logits_last && done + row + rows == n)
                ARWKV__TRY(be->mem->download(be, logits_last, r->logits + (size_t)(rows - 1) * r->V, (size_t)r->V * sizeof(float)));
        }
        done += T;
    }
    return ARWKV_OK;
}

/* ============================================================================================
   SECTION 8. Training
   ============================================================================================ */
#ifndef ARWKV_NO_TRAINING
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
       biases, and a Qwen3 teacher's q_norm/k_norm) stay frozen, as in recursal's stage 1. The gate is trained too (recursal left it at
       its zero init, a constant 1/2): with q/k/v/o frozen it is the only per-channel output scale. */
    int is_mix = strstr(p->name, ".self_attn.") && !strstr(p->name, "_proj.") && !strstr(p->name, "_norm."); /* q/k_norm: Qwen3's */
    if (stage == 1) return is_mix != 0;
    if (freeze_mlp && strstr(p->name, ".mlp.")) return 0;
    return 1;
}

/* offload: masters and moments in host memory (see arwkv__optimizer_step); the backend keeps a working
   copy of each trained parameter, of type wtype for matrices (F32 or BF16), F32 for the vectors the
   ops read directly. */
ARWKV_PRIVATE arwkv_result arwkv__make_trainable_offload(arwkv_model *m, int stage, int freeze_mlp, int offload, arwkv_dtype wtype) {
    arwkv_backend *be = m->be;
    for (int i = 0; i < m->n_params; i++) {
        arwkv_param *p = &m->params[i];
        int want = arwkv__is_trained(p, stage, freeze_mlp);
        if (want && p->master && !offload) { /* leaving the host: the master becomes the weights again */
            if (p->dtype != ARWKV_F32) ARWKV__TRY(arwkv__param_alloc(m, p, ARWKV_F32));
            ARWKV__TRY(be->mem->upload(be, p->data, p->master, (size_t)p->numel * sizeof(float)));
        }
        if (!want || (p->master != NULL) != (offload != 0)) arwkv__optim_state_free(be, p); /* none, or it moves */
        if (!want) {
            p->trainable = 0;
            continue;
        }
        size_t bytes = (size_t)p->numel * sizeof(float);
        if (offload && !p->master) { /* the master starts as the weights, read in whatever type they have */
            float *master = (float *)arwkv__malloc(bytes + 1);
            p->adam_m = (float *)arwkv__calloc(1, bytes + 1);
            p->adam_v = (float *)arwkv__calloc(1, bytes + 1);
            if (!master || !p->adam_m || !p->adam_v) {
                arwkv__free(master);
                return arwkv__fail(ARWKV_ERR_OUT_OF_MEMORY, "parameter %s: out of host memory for the offloaded optimizer (%.1f MiB)", p->name,
                                   3.0 * bytes / 1048576.0);
            }
            arwkv_result r = arwkv_param_read(m, p, master, p->numel);
            p->master = master;
            ARWKV__TRY(r);
            arwkv_dtype type = p->is_matrix ? wtype : ARWKV_F32;
            if (p->dtype != type || !p->owns_data) {
                ARWKV__TRY(arwkv__param_alloc(m, p, type));
                ARWKV__TRY(arwkv__param_upload(m, p, master, ARWKV_F32));
            }
        } else if (!offload && (p->dtype != ARWKV_F32 || !p->owns_data)) { /* widen (or un-map) into an fp32 master copy */
            size_t n = (size_t)p->numel;
            float *host = (float *)arwkv__malloc(n * sizeof(float) + 1);
            if (!host) return arwkv__fail(ARWKV_ERR_OUT_OF_MEMORY, "parameter %s: out of memory", p->name);
            arwkv_result r = arwkv_param_read(m, p, host, p->numel);
            if (r == ARWKV_OK) r = arwkv__param_alloc(m, p, ARWKV_F32);
            if (r == ARWKV_OK) r = arwkv__param_upload(m, p, host, ARWKV_F32);
            arwkv__free(host);
            ARWKV__TRY(r);
        }
        if (!p->grad) ARWKV__TRY(be->mem->alloc(be, bytes, (void **)&p->grad));
        if (!offload && !p->adam_m) ARWKV__TRY(be->mem->alloc(be, bytes, (void **)&p->adam_m));
        if (!offload && !p->adam_v) ARWKV__TRY(be->mem->alloc(be, bytes, (void **)&p->adam_v));
        p->trainable = 1;
    }
    return ARWKV_OK;
}

ARWKV_PRIVATE arwkv_result arwkv__make_trainable(arwkv_model *m, int stage, int freeze_mlp) {
    return arwkv__make_trainable_offload(m, stage, freeze_mlp, 0, ARWKV_F32);
}

ARWKV_PRIVATE arwkv_result arwkv__zero_grads(arwkv_model *m) {
    for (int i = 0; i < m->n_params; i++)
        if (m->params[i].grad) ARWKV__TRY(m->be->mem->zero(m->be, m->params[i].grad, (size_t)m->params[i].numel * sizeof(float)));
    return ARWKV_OK;
}

#define ARWKV__OFFLOAD_SLICE ((size_t)1 << 22) /* floats per host <-> backend transfer of the offloaded optimizer */

/* The type of the trained matrices' working copy with the optimizer offloaded: bf16 on a GPU (the
   masters are on the host, so the device needs no more), fp32 on the CPU (one memory: narrowing
   would only lose precision), unless the options name one. */
ARWKV_PRIVATE arwkv_dtype arwkv__offload_weight_type(const arwkv_train_options *o, int on_gpu) {
    if (o->offload_weight_type == ARWKV_BF16 || o->offload_weight_type == ARWKV_F32) return o->offload_weight_type;
    return on_gpu ? ARWKV_BF16 : ARWKV_F32;
}

/* ---- The offloaded AdamW: a pipeline of slices ----
   With --offload-optimizer the fp32 masters and moments live on the host. Each trained parameter is
   walked in slices: the gradient slice comes down, the CPU's AdamW (the CPU backend's own op, on the
   backend's host threads) updates master and moments and, for a bf16 working copy, rounds the new
   weights, and they go up. A helper thread updates slice j while this thread moves slice j+1 down and
   slice j-1 up, so the transfers and the arithmetic overlap. The update is elementwise: neither the
   slicing nor the overlap changes a bit. */
typedef struct arwkv__offload_job {
    arwkv_backend *be;
    const arwkv_train_options *o;
    arwkv_param *p;
    size_t off, k;     /* the slice: elements off .. off+k of p */
    float *grad;       /* host staging: the gradient slice */
    uint16_t *bf16;    /* host staging: the rounded weights (bf16 working copy) */
    float lr, wd;
    int step;
} arwkv__offload_job;

typedef struct arwkv__round_ctx {
    const float *src;
    uint16_t *dst;
} arwkv__round_ctx;
ARWKV_PRIVATE void arwkv__round_bf16_range(void *ctx, size_t b, size_t e) {
    arwkv__round_ctx *c = (arwkv__round_ctx *)ctx;
    for (size_t i = b; i < e; i++) c->dst[i] = arwkv_f32_to_bf16(c->src[i]);
}

ARWKV_PRIVATE void *arwkv__offload_update(void *arg) {
    arwkv__offload_job *j = (arwkv__offload_job *)arg;
    const arwkv_train_options *o = j->o;
    (void)arwkv__cpu_adamw(j->be, j->p->master + j->off, j->grad, j->p->adam_m + j->off, j->p->adam_v + j->off, j->k, j->lr, o->beta1,
                           o->beta2, o->eps, j->wd, j->step); /* host memory only: cannot fail */
    if (j->p->dtype != ARWKV_F32) {
        arwkv__round_ctx rc = {j->p->master + j->off, j->bf16};
        arwkv__parallel_range(j->be->pool, j->k, 65536, arwkv__round_bf16_range, &rc);
    }
    return NULL;
}

ARWKV_PRIVATE arwkv_result arwkv__offload_upload(const arwkv__offload_job *j) {
    if (j->p->dtype == ARWKV_F32) return j->be->mem->upload(j->be, (float *)j->p->data + j->off, j->p->master + j->off, j->k * sizeof(float));
    return j->be->mem->upload(j->be, (uint16_t *)j->p->data + j->off, j->bf16, j->k * sizeof(uint16_t));
}

ARWKV_PRIVATE arwkv_result arwkv__offload_download(const arwkv__offload_job *j) {
    return j->be->mem->download(j->be, j->grad, j->p->grad + j->off, j->k * sizeof(float));
}

/* The next slice (from parameter *i, element *off, which advance) into *j; 0 when every offloaded
   parameter is done. */
ARWKV_PRIVATE int arwkv__offload_next(arwkv_model *m, int *i, size_t *off, arwkv__offload_job *j) {
    for (; *i < m->n_params; (*i)++, *off = 0) {
        arwkv_param *p = &m->params[*i];
        if (!p->trainable || !p->master || *off >= (size_t)p->numel) continue;
        j->p = p, j->off = *off;
        j->k = (size_t)p->numel - *off < ARWKV__OFFLOAD_SLICE ? (size_t)p->numel - *off : ARWKV__OFFLOAD_SLICE;
        j->wd = p->decay ? j->o->weight_decay : 0.0f;
        *off += j->k;
        return 1;
    }
    return 0;
}

ARWKV_PRIVATE arwkv_result arwkv__offload_step(arwkv_model *m, const arwkv_train_options *o, int step, float lr) {
    arwkv_backend *be = m->be;
    /* two jobs, each with its own staging: while one slice is updated, the other is in transfer */
    float *grad = (float *)arwkv__malloc(2 * ARWKV__OFFLOAD_SLICE * (sizeof(float) + sizeof(uint16_t)));
    if (!grad) return arwkv__fail(ARWKV_ERR_OUT_OF_MEMORY, "offloaded optimizer: out of host memory");
    uint16_t *bf16 = (uint16_t *)(grad + 2 * ARWKV__OFFLOAD_SLICE);
    arwkv__offload_job job[2], *cur = &job[0], *other = &job[1];
    memset(job, 0, sizeof job);
    for (int s = 0; s < 2; s++) {
        job[s].be = be, job[s].o = o, job[s].lr = lr, job[s].step = step;
        job[s].grad = grad + (size_t)s * ARWKV__OFFLOAD_SLICE, job[s].bf16 = bf16 + (size_t)s * ARWKV__OFFLOAD_SLICE;
    }
    int i = 0, other_pending = 0; /* other holds the slice updated last, its weights not yet up */
    size_t off = 0;
    arwkv_result r = ARWKV_OK;
    int have = arwkv__offload_next(m, &i, &off, cur);
    if (have) r = arwkv__offload_download(cur);
    while (have && r == ARWKV_OK) {
#ifndef ARWKV_NO_THREADS
        pthread_t helper;
        int threaded = pthread_create(&helper, NULL, arwkv__offload_update, cur) == 0;
        if (!threaded) arwkv__offload_update(cur);
#else
        arwkv__offload_update(cur);
#endif
        /* meanwhile: the previous slice's weights up, then the next slice's gradient down into its staging */
        if (other_pending) r = arwkv__offload_upload(other);
        int have_next = r == ARWKV_OK && arwkv__offload_next(m, &i, &off, other);
        if (have_next) r = arwkv__offload_download(other);
#ifndef ARWKV_NO_THREADS
        if (threaded) pthread_join(helper, NULL);
#endif
        arwkv__offload_job *t = cur;
        cur = other, other = t, other_pending = 1, have = have_next;
    }
    if (other_pending && r == ARWKV_OK) r = arwkv__offload_upload(other);
    arwkv__free(grad);
    return r;
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
    arwkv_result r = ARWKV_OK;
    int offloaded = 0;
    for (int i = 0; i < m->n_params && r == ARWKV_OK; i++) {
        arwkv_param *p = &m->params[i];
        if (!p->trainable) continue;
        float wd = p->decay ? o->weight_decay : 0.0f;
        if (scale != 1.0f) r = be->optim->scale(be, p->grad, scale, (size_t)p->numel);
        if (r == ARWKV_OK && !p->master) r = be->optim->adamw(be, (float *)p->data, p->grad, p->adam_m, p->adam_v, (size_t)p->numel, lr,
                                                               o->beta1, o->beta2, o->eps, wd, step);
        offloaded |= p->master != NULL;
    }
    if (r == ARWKV_OK && offloaded) r = arwkv__offload_step(m, o, step, lr);
    return r;
}

/* ---- Data -------------------------------------------------------------------------------------------- */

ARWKV_API void arwkv_dataset_init(arwkv_dataset *d) { memset(d, 0, sizeof *d); }

ARWKV_API void arwkv_dataset_free(arwkv_dataset *d) {
    arwkv__free(d->tokens);
    arwkv__free(d->mask);
    arwkv__free(d->order);
    arwkv__free(d->windows);
    memset(d, 0, sizeof *d);
}

ARWKV_API arwkv_result arwkv_dataset_append(arwkv_dataset *d, const int32_t *ids, const uint8_t *mask, size_t n) {
    if (n == 0) return ARWKV_OK;
    if (mask && !d->mask && d->cap_tokens > 0) { /* the first masked document: earlier ones are all targets */
        d->mask = (uint8_t *)arwkv__malloc(d->cap_tokens);
        if (!d->mask) return arwkv__fail(ARWKV_ERR_OUT_OF_MEMORY, "dataset: out of memory");
        memset(d->mask, 1, d->cap_tokens);
    }
    if (d->n_tokens + n > d->cap_tokens) {
        size_t cap = d->cap_tokens ? d->cap_tokens : 1 << 16;
        while (cap < d->n_tokens + n) cap *= 2;
        int32_t *t = (int32_t *)arwkv__realloc(d->tokens, cap * sizeof(int32_t));
        if (!t) return arwkv__fail(ARWKV_ERR_OUT_OF_MEMORY, "dataset: out of memory at %zu tokens", d->n_tokens);
        d->tokens = t;
        if (mask || d->mask) {
            uint8_t *mk = (uint8_t *)arwkv__realloc(d->mask, cap);
            if (!mk) return arwkv__fail(ARWKV_ERR_OUT_OF_MEMORY, "dataset: out of memory at %zu tokens", d->n_tokens);
            d->mask = mk;
        }
        d->cap_tokens = cap;
    }
    memcpy(d->tokens + d->n_tokens, ids, n * sizeof(int32_t));
    if (mask) memcpy(d->mask + d->n_tokens, mask, n);
    else if (d->mask) memset(d->mask + d->n_tokens, 1, n);
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
    d->n_skipped = 0;
    arwkv__free(d->order);
    arwkv__free(d->windows);
    d->windows = NULL;
    if (d->mask) { /* keep the windows with a target (a window's targets are its tokens 1..seq_len) */
        d->windows = (uint32_t *)arwkv__malloc(d->n_seqs * sizeof(uint32_t) + 1);
        if (!d->windows) return arwkv__fail(ARWKV_ERR_OUT_OF_MEMORY, "dataset: out of memory");
        size_t kept = 0;
        for (size_t w = 0; w < d->n_seqs; w++) {
            const uint8_t *m = d->mask + w * (size_t)seq_len + 1;
            int any = 0;
            for (int t = 0; t < seq_len && !any; t++) any = m[t] != 0;
            if (any) d->windows[kept++] = (uint32_t)w;
        }
        d->n_skipped = d->n_seqs - kept;
        d->n_seqs = kept;
        if (kept == 0)
            return arwkv__fail(ARWKV_ERR_INVALID_ARGUMENT, "dataset: none of its %zu windows of %d tokens holds a target token (an assistant turn)",
                               d->n_skipped, seq_len);
    }
    d->order = (uint32_t *)arwkv__malloc(d->n_seqs * sizeof(uint32_t));
    if (!d->order) return arwkv__fail(ARWKV_ERR_OUT_OF_MEMORY, "dataset: out of memory");
    d->seed = seed;
    d->epoch = 0;
    arwkv__dataset_shuffle(d);
    return ARWKV_OK;
}

ARWKV_API void arwkv_dataset_window(const arwkv_dataset *d, size_t i, int32_t *inputs, int32_t *targets) {
    size_t start = (d->windows ? d->windows[i] : i) * (size_t)d->seq_len;
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
    char options[256]; /* the options a resumed run must share, "lr=0.001 align=l2 ..." (see arwkv__options_text) */
} arwkv__train_state;

/* The options that shape the rest of a run once resumed, as text: two runs resume alike when their
   texts are equal, and the error names the ones that differ. */
ARWKV_PRIVATE void arwkv__options_text(const arwkv_train_options *o, char *buf, size_t cap) {
    static const char *schedules[] = {"cosine", "exponential", "constant"}, *aligns[] = {"l2", "mse", "cosine"};
    /* not steps nor warm-up: a longer run may be resumed, and its default warm-up follows its steps */
    snprintf(buf, cap, "lr=%.9g lr_final=%.9g schedule=%s align=%s temperature=%.9g ce_weight=%.9g kl_weight=%.9g freeze_mlp=%d",
             (double)o->lr, (double)o->lr_final, (unsigned)o->schedule < 3 ? schedules[o->schedule] : "?",
             (unsigned)o->align < 3 ? aligns[o->align] : "?", (double)o->temperature, (double)o->ce_weight, (double)o->kl_weight,
             o->freeze_mlp);
}

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
                const float *mom = k ? p->adam_v : p->adam_m;
                if (p->master) memcpy(host[n], mom, (size_t)p->numel * sizeof(float)); /* offloaded: already on the host */
                else r = student->be->mem->download(student->be, host[n], mom, (size_t)p->numel * sizeof(float));
                snprintf(names[n], 112, "%s.%s", k ? "adam_v" : "adam_m", p->name);
                e[n].name = names[n];
                e[n].dtype = ARWKV_F32;
                e[n].ndim = 1;
                e[n].shape[0] = p->numel;
                e[n].data = host[n];
                n++;
            }
        }
        char v[9][32];
        snprintf(v[0], 32, "%d", s->step);
        snprintf(v[1], 32, "%llu", (unsigned long long)s->epoch);
        snprintf(v[2], 32, "%llu", (unsigned long long)s->pos);
        snprintf(v[3], 32, "%llu", (unsigned long long)s->seed);
        snprintf(v[4], 32, "%016llx", (unsigned long long)s->data_hash);
        snprintf(v[5], 32, "%d", s->stage);
        snprintf(v[6], 32, "%d", s->seq_len);
        snprintf(v[7], 32, "%d", s->batch);
        const char *meta[18] = {"step", v[0], "epoch", v[1], "data_pos", v[2], "seed", v[3], "data_hash", v[4],
                                "stage", v[5], "seq_len", v[6], "batch", v[7], "options", s->options};
        char *path = dir ? arwkv__path_join(dir, "trainer.safetensors") : NULL;
        if (r == ARWKV_OK) r = path ? arwkv_st_write(path, e, n, meta, 9) : arwkv__fail(ARWKV_ERR_OUT_OF_MEMORY, "out of memory");
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

/* ---- Output directories ------------------------------------------------------------------------
   Checked when a run starts rather than at its first save (see arwkv_out_dir_open). Paths are
   compared as files (device and inode) so that links, "..", and trailing slashes do not hide that
   two names are one directory. The lock is a POSIX record lock: the kernel drops it when the
   process ends however it ends, so a killed run never leaves OUT locked. */

struct arwkv_out_dir {
    int lock_fd;
    char note[256];
};

/* 1 if directory `inner` is `outer` or lies anywhere below it (walking up from inner through ".."). */
ARWKV_PRIVATE int arwkv__dir_within(const char *inner, const char *outer) {
#if !defined(_WIN32)
    struct stat so, s, up;
    size_t n = strlen(inner);
    char *p = (char *)arwkv__malloc(n + 3 * 256 + 1);
    if (!p || stat(outer, &so) != 0) {
        arwkv__free(p);
        return 0;
    }
    memcpy(p, inner, n + 1);
    /* a path not made yet lies where its nearest existing ancestor lies */
    while (stat(p, &s) != 0 && n > 0) {
        while (n > 1 && p[n - 1] == '/') p[--n] = 0;
        char *slash = strrchr(p, '/');
        if (!slash) strcpy(p, ".");
        else if (slash == p) p[1] = 0;
        else *slash = 0;
        n = strlen(p);
        if (!slash) break;
    }
    int found = 0;
    for (int depth = 0; depth < 256 && stat(p, &s) == 0; depth++) {
        if (s.st_dev == so.st_dev && s.st_ino == so.st_ino) {
            found = 1;
            break;
        }
        memcpy(p + n, "/..", 4);
        n += 3;
        if (stat(p, &up) == 0 && up.st_dev == s.st_dev && up.st_ino == s.st_ino) break; /* the root is its own parent */
    }
    arwkv__free(p);
    return found;
#else
    return strcmp(inner, outer) == 0;
#endif
}

/* mkdir -p: each missing level of dir, naming the one that cannot be made. */
ARWKV_PRIVATE arwkv_result arwkv__mkdir_parents(const char *dir) {
    char *p = arwkv__strdup(dir);
    if (!p) return arwkv__fail(ARWKV_ERR_OUT_OF_MEMORY, "out of memory");
    arwkv_result r = ARWKV_OK;
    for (char *q = p + 1; *q && r == ARWKV_OK; q++)
        if (*q == '/' && q[-1] != '/') {
            *q = 0;
            if (!arwkv__is_dir(p)) r = arwkv__mkdir(p);
            *q = '/';
        }
    if (r == ARWKV_OK) r = arwkv__mkdir(p);
    arwkv__free(p);
    return r;
}

/* NAME.tmp.PID.N, the partial file of an atomic write (arwkv__write_atomic); its PID, else 0. */
ARWKV_PRIVATE long arwkv__temporary_pid(const char *name) {
    const char *t = strstr(name, ".tmp.");
    if (!t) return 0;
    char *end;
    long pid = strtol(t + 5, &end, 10);
    if (pid <= 0 || *end != '.' || end[1] < '0' || end[1] > '9') return 0;
    strtol(end + 1, &end, 10);
    return *end ? 0 : pid;
}

/* A process that still runs: only known where /proc lists processes; elsewhere the lock on OUT,
   which every writer of OUT holds, already says that no other writer runs. */
ARWKV_PRIVATE int arwkv__process_alive(long pid) {
#if !defined(_WIN32)
    char path[64];
    snprintf(path, sizeof path, "/proc/%ld", pid);
    return pid != (long)getpid() && arwkv__is_dir("/proc/self") && arwkv__is_dir(path);
#else
    (void)pid;
    return 0;
#endif
}

/* Remove the partial files of dead processes in dir; count them. */
ARWKV_PRIVATE int arwkv__remove_stale_temporaries(const char *dir) {
    int removed = 0;
#if !defined(_WIN32)
    DIR *d = opendir(dir);
    if (!d) return 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        long pid = arwkv__temporary_pid(e->d_name);
        if (!pid || arwkv__process_alive(pid)) continue;
        char *f = arwkv__path_join(dir, e->d_name);
        if (f && remove(f) == 0) removed++;
        arwkv__free(f);
    }
    closedir(d);
#else
    (void)dir;
#endif
    return removed;
}

/* Stale temporaries in OUT, OUT/checkpoints and each checkpoint; then the checkpoint directories
   that "latest" does not name: saves that a crash interrupted before they were switched in. */
ARWKV_PRIVATE void arwkv__clean_out_dir(const char *out_dir, char *note, size_t note_cap) {
    int temporaries = arwkv__remove_stale_temporaries(out_dir), unfinished = 0;
#if !defined(_WIN32)
    char *ckdir = arwkv__path_join(out_dir, "checkpoints"), *latest_path = ckdir ? arwkv__path_join(ckdir, "latest") : NULL;
    char *latest = NULL;
    size_t len = 0;
    DIR *d = ckdir ? opendir(ckdir) : NULL;
    if (d) {
        temporaries += arwkv__remove_stale_temporaries(ckdir);
        if (arwkv__file_exists(latest_path) && arwkv__read_file(latest_path, &latest, &len) == ARWKV_OK)
            while (len && (latest[len - 1] == '\n' || latest[len - 1] == ' ')) latest[--len] = 0;
        struct dirent *e;
        while ((e = readdir(d)) != NULL) {
            if (strncmp(e->d_name, "step-", 5) != 0) continue;
            char *sub = arwkv__path_join(ckdir, e->d_name);
            if (sub && arwkv__is_dir(sub)) {
                temporaries += arwkv__remove_stale_temporaries(sub);
                if (!latest || strcmp(latest, e->d_name) != 0) {
                    arwkv__remove_checkpoint_dir(sub);
                    unfinished++;
                }
            }
            arwkv__free(sub);
        }
        closedir(d);
    }
    arwkv__free(latest);
    arwkv__free(latest_path);
    arwkv__free(ckdir);
#endif
    note[0] = 0;
    if (temporaries || unfinished)
        snprintf(note, note_cap, "%s: removed %d partial file(s) and %d unfinished checkpoint(s) left by an interrupted run", out_dir,
                 temporaries, unfinished);
}

ARWKV_API void arwkv_out_dir_close(arwkv_out_dir *o) {
    if (!o) return;
#if !defined(_WIN32)
    if (o->lock_fd >= 0) close(o->lock_fd); /* releases the lock; the file stays (see arwkv__out_dir_lock) */
#endif
    arwkv__free(o);
}

ARWKV_API const char *arwkv_out_dir_note(const arwkv_out_dir *o) { return o ? o->note : ""; }

/* Lock OUT/.arwkv.lock and write our pid into it (which also proves OUT writable). The file is never
   removed: unlinking it would let a waiting opener and a new one lock two different files. */
ARWKV_PRIVATE arwkv_result arwkv__out_dir_lock(const char *dir, int *fd_out) {
    *fd_out = -1;
#if !defined(_WIN32)
    char *path = arwkv__path_join(dir, ".arwkv.lock");
    if (!path) return arwkv__fail(ARWKV_ERR_OUT_OF_MEMORY, "out of memory");
    int fd = open(path, O_RDWR | O_CREAT, 0644);
    if (fd < 0) {
        arwkv_result r = arwkv__fail(ARWKV_ERR_IO, "%s: cannot write in the output directory (%s): %s", dir, path, strerror(errno));
        arwkv__free(path);
        return r;
    }
    struct flock fl;
    memset(&fl, 0, sizeof fl);
    fl.l_type = F_WRLCK;
    fl.l_whence = SEEK_SET;
    if (fcntl(fd, F_SETLK, &fl) != 0) {
        struct flock who = fl;
        long other = fcntl(fd, F_GETLK, &who) == 0 && who.l_type != F_UNLCK ? (long)who.l_pid : 0;
        close(fd);
        arwkv__free(path);
        return other ? arwkv__fail(ARWKV_ERR_IO, "%s: another run (process %ld) is writing in this directory; wait for it to end or choose another",
                                   dir, other)
                     : arwkv__fail(ARWKV_ERR_IO, "%s: cannot lock %s/.arwkv.lock: %s", dir, dir, strerror(errno));
    }
    char line[32];
    int n = snprintf(line, sizeof line, "%20ld\n", (long)getpid()); /* fixed width: no stale digits from an earlier pid */
    if (lseek(fd, 0, SEEK_SET) != 0 || write(fd, line, (size_t)n) != n) {
        arwkv_result r = arwkv__fail(ARWKV_ERR_IO, "%s: cannot write in the output directory (%s): %s", dir, path, strerror(errno));
        close(fd);
        arwkv__free(path);
        return r;
    }
    arwkv__free(path);
    *fd_out = fd;
#else
    (void)dir;
#endif
    return ARWKV_OK;
}

ARWKV_API arwkv_result arwkv_out_dir_open(const char *dir, const char *const *inputs, int n_inputs, arwkv_out_dir **out) {
    *out = NULL;
    if (!dir || !*dir) return arwkv__fail(ARWKV_ERR_INVALID_ARGUMENT, "no output directory given");
    for (int i = 0; i < n_inputs; i++) { /* before creating anything */
        if (!inputs[i] || !arwkv__is_dir(inputs[i])) continue;
        if (arwkv__dir_within(inputs[i], dir))
            return arwkv__fail(ARWKV_ERR_INVALID_ARGUMENT,
                               "%s: the output directory is or contains the model directory %s, whose files it would replace; choose another",
                               dir, inputs[i]);
        if (arwkv__dir_within(dir, inputs[i]))
            return arwkv__fail(ARWKV_ERR_INVALID_ARGUMENT,
                               "%s: the output directory lies inside the model directory %s, which it would change; choose another", dir,
                               inputs[i]);
    }
    ARWKV__TRY(arwkv__mkdir_parents(dir));
    char *config = arwkv__path_join(dir, "config.json");
    if (!config) return arwkv__fail(ARWKV_ERR_OUT_OF_MEMORY, "out of memory");
    if (arwkv__file_exists(config)) { /* a student of an earlier run may be replaced, nothing else */
        arwkv_config c;
        arwkv_result r = arwkv_config_load(config, &c);
        if (r != ARWKV_OK || !arwkv__tmix_family_of(c.arch)) {
            if (r == ARWKV_OK) arwkv__fail(ARWKV_ERR_INVALID_ARGUMENT, "%s: holds a %s model whose files would be replaced; choose another directory",
                                           dir, arwkv_arch_name(c.arch));
            else arwkv__context(ARWKV_ERR_INVALID_ARGUMENT, "%s: holds a config.json that is not a student's, which would be replaced", dir);
            arwkv__free(config);
            return ARWKV_ERR_INVALID_ARGUMENT;
        }
    }
    arwkv__free(config);
    arwkv_out_dir *o = (arwkv_out_dir *)arwkv__calloc(1, sizeof *o);
    if (!o) return arwkv__fail(ARWKV_ERR_OUT_OF_MEMORY, "out of memory");
    arwkv_result r = arwkv__out_dir_lock(dir, &o->lock_fd);
    if (r != ARWKV_OK) {
        arwkv__free(o);
        return r;
    }
    arwkv__clean_out_dir(dir, o->note, sizeof o->note);
    *out = o;
    return ARWKV_OK;
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
        uint64_t step = arwkv__meta_u64(st, "step", &ok);
        s->epoch = arwkv__meta_u64(st, "epoch", &ok);
        s->pos = arwkv__meta_u64(st, "data_pos", &ok);
        s->seed = arwkv__meta_u64(st, "seed", &ok);
        s->data_hash = arwkv__meta_u64(st, "data_hash", &ok);
        uint64_t stage = arwkv__meta_u64(st, "stage", &ok), seq_len = arwkv__meta_u64(st, "seq_len", &ok), batch = arwkv__meta_u64(st, "batch", &ok);
        const char *options = arwkv_st_metadata(st, "options"); /* absent in checkpoints of older versions */
        snprintf(s->options, sizeof s->options, "%s", options ? options : "");
        if (!ok) r = arwkv__fail(ARWKV_ERR_FORMAT, "%s: trainer metadata is incomplete or malformed", path);
        /* ranges first: a crafted step of 2^32 + 1 would otherwise resume at step 1 */
        else if (step > INT_MAX || stage < 1 || stage > 3 || seq_len < 1 || seq_len > INT_MAX || batch < 1 || batch > INT_MAX)
            r = arwkv__fail(ARWKV_ERR_FORMAT, "%s: trainer metadata out of range (step %llu, stage %llu, seq_len %llu, batch %llu)", path,
                            (unsigned long long)step, (unsigned long long)stage, (unsigned long long)seq_len, (unsigned long long)batch);
        s->step = (int)step, s->stage = (int)stage, s->seq_len = (int)seq_len, s->batch = (int)batch;
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
            if (r == ARWKV_OK && p->master) memcpy(k ? p->adam_v : p->adam_m, t->data, t->nbytes); /* offloaded: host memory */
            else if (r == ARWKV_OK) r = student->be->mem->upload(student->be, k ? p->adam_v : p->adam_m, t->data, t->nbytes);
        }
    }
    arwkv_st_close(st);
    arwkv__free(path);
    return r;
}

/* ---- The trainer ---------------------------------------------------------------------------------------- */

#define ARWKV__TRAIN_LOGIT_ROWS 128 /* positions whose logits (teacher and student) are alive at once */
/* On a GPU, 1024: the head's products then run with K = 1024 instead of 128 (its weight gradient is
   read and written once per chunk, its weight converted once per chunk), for 1.2 GB of logits. */
#define ARWKV__TRAIN_LOGIT_ROWS_GPU 1024

struct arwkv_trainer {
    arwkv_model *teacher, *student;
    arwkv_train_options opt;
    arwkv_dataset *train;
    arwkv_teacher *tw; /* teacher workspace (stages 1-2, evaluation) */
    arwkv_rnn *rnn;    /* student workspace */
    int step;          /* optimizer steps done */
    int32_t *inputs, *targets;     /* host [B*T] */
    int32_t *labels;               /* backend [B*T] */
    /* stage 1: one layer's activations at a time; with a value residual (RWKV-7's v_first) layer 0's
       live until its backward, which needs the gradients of the later layers */
    arwkv__tmix tm;
    arwkv__tmix_acts *acts0, *acts;
    arwkv__tmix_work *work;
    float *xn0, *v_first, *dv_first, *o, *dout0, *dout, *rows_loss; /* backend */
    float *rows_host;              /* host [B*T] */
    double stage1_loss;
    arwkv_result hook_error;
    /* stages 2-3 */
    float *lt, *ls;                /* backend [LOGIT_ROWS, V] */
    float *dhidden;                /* backend [B*T, C] */
    float *kl_rows, *ce_rows;      /* backend [logit_rows] */
    int logit_rows;                /* rows of logits per chunk (LOGIT_ROWS, or LOGIT_ROWS_GPU on a GPU) */
};

ARWKV_API void arwkv_trainer_free(arwkv_trainer *tr) {
    if (!tr) return;
    arwkv_backend *be = tr->student->be;
    void *bufs[] = {tr->labels, tr->xn0, tr->v_first, tr->dv_first, tr->o, tr->dout0, tr->dout, tr->rows_loss, tr->lt, tr->ls,
                    tr->dhidden, tr->kl_rows, tr->ce_rows};
    for (size_t i = 0; i < sizeof bufs / sizeof bufs[0]; i++) be->mem->free(be, bufs[i]);
    if (tr->tm.family) {
        tr->tm.family->acts_free(be, tr->acts0);
        tr->tm.family->acts_free(be, tr->acts);
        if (tr->work) tr->tm.family->work_free(be, tr->work);
    }
    arwkv_teacher_free(tr->tw);
    arwkv_rnn_free(tr->rnn);
    arwkv__free(tr->inputs);
    arwkv__free(tr->targets);
    arwkv__free(tr->rows_host);
    arwkv__free(tr);
}

ARWKV_API arwkv_result arwkv_trainer_create(arwkv_model *teacher, arwkv_model *student, const arwkv_train_options *opt,
                                            arwkv_dataset *train, arwkv_trainer **out) {
    *out = NULL;
    if (opt->stage < 1 || opt->stage > 3) return arwkv__fail(ARWKV_ERR_INVALID_ARGUMENT, "stage must be 1, 2 or 3, not %d", opt->stage);
    if (opt->stage < 3 && !teacher) return arwkv__fail(ARWKV_ERR_INVALID_ARGUMENT, "stage %d needs a teacher", opt->stage);
    if (opt->seq_len < 1 || opt->batch < 1 || opt->steps < 1)
        return arwkv__fail(ARWKV_ERR_INVALID_ARGUMENT, "sequence length, batch and steps must be positive (%d, %d, %d)", opt->seq_len,
                           opt->batch, opt->steps);
    if (train && train->seq_len != opt->seq_len)
        return arwkv__fail(ARWKV_ERR_INVALID_ARGUMENT, "the data is packed for sequences of %d tokens, the options say %d", train->seq_len,
                           opt->seq_len);
    if (!arwkv__tmix_family_of(student->cfg.arch))
        return arwkv__fail(ARWKV_ERR_UNSUPPORTED, "training needs an ARWKV-7 or QRWKV6 student; this one is %s", arwkv_arch_name(student->cfg.arch));
    /* Stage 1 aligns layer with layer, so the teacher must be the student's own base. Stage 2 only
       compares next-token distributions: any teacher over the same vocabulary will do, a larger one
       included (knowledge transfer from a larger LLM). */
    const char *tname = teacher && teacher->dir ? teacher->dir : "teacher", *sname = student->dir ? student->dir : "student";
    if (teacher && teacher->be != student->be)
        return arwkv__fail(ARWKV_ERR_INVALID_ARGUMENT, "the teacher %s and the student %s live on different backends", tname, sname);
    if (teacher && teacher->cfg.vocab_size != student->cfg.vocab_size)
        return arwkv__fail(ARWKV_ERR_SHAPE, "the teacher %s has a vocabulary of %d tokens, the student %s one of %d: distillation needs "
                           "the same vocabulary", tname, teacher->cfg.vocab_size, sname, student->cfg.vocab_size);
    if (teacher && opt->stage == 1 && (teacher->cfg.hidden_size != student->cfg.hidden_size || teacher->cfg.num_layers != student->cfg.num_layers))
        return arwkv__fail(ARWKV_ERR_SHAPE, "stage 1 aligns each layer with the teacher's, but the teacher %s (hidden %d, %d layers) is not the "
                           "student %s's base (hidden %d, %d layers); a larger teacher can teach in stage 2", tname, teacher->cfg.hidden_size,
                           teacher->cfg.num_layers, sname, student->cfg.hidden_size, student->cfg.num_layers);
    arwkv_trainer *tr = (arwkv_trainer *)arwkv__calloc(1, sizeof *tr);
    if (!tr) return arwkv__fail(ARWKV_ERR_OUT_OF_MEMORY, "out of memory");
    tr->teacher = teacher, tr->student = student, tr->opt = *opt, tr->train = train;
    arwkv_backend *be = student->be;
    int M = opt->batch * opt->seq_len, C = student->cfg.hidden_size, V = student->cfg.vocab_size;
    size_t MC = (size_t)M * C;
    arwkv_result r = arwkv__make_trainable_offload(student, opt->stage, opt->freeze_mlp, opt->offload_optimizer,
                                                   arwkv__offload_weight_type(opt, be->on_gpu));
    tr->inputs = (int32_t *)arwkv__malloc((size_t)M * sizeof(int32_t));
    tr->targets = (int32_t *)arwkv__malloc((size_t)M * sizeof(int32_t));
    tr->logit_rows = student->be->on_gpu ? ARWKV__TRAIN_LOGIT_ROWS_GPU : ARWKV__TRAIN_LOGIT_ROWS;
    tr->rows_host = (float *)arwkv__malloc((size_t)(M > tr->logit_rows ? M : tr->logit_rows) * sizeof(float));
    if (r == ARWKV_OK && (!tr->inputs || !tr->targets || !tr->rows_host)) r = arwkv__fail(ARWKV_ERR_OUT_OF_MEMORY, "out of memory");
    if (r == ARWKV_OK && teacher) r = arwkv_teacher_create(teacher, &tr->tw);
    if (r == ARWKV_OK) r = arwkv_rnn_create(student, &tr->rnn);
    if (r == ARWKV_OK) r = arwkv__tmix_of(student, &tr->tm);
    const arwkv__tmix_family *tf = tr->tm.family;
    int vr = tf && tf->value_residual;
#define ARWKV__TALLOC(ptr, bytes) \
    if (r == ARWKV_OK) r = be->mem->alloc(be, (bytes), (void **)&(ptr))
    if (opt->stage == 1) { /* arwkv__stage1_hook's buffers; layer 0's own ones with a value residual */
        if (r == ARWKV_OK && vr) r = tf->acts_create(be, &tr->tm, opt->batch, opt->seq_len, &tr->acts0);
        if (r == ARWKV_OK) r = tf->acts_create(be, &tr->tm, opt->batch, opt->seq_len, &tr->acts);
        if (r == ARWKV_OK) r = tf->work_create(be, &tr->tm, opt->batch, opt->seq_len, 1, &tr->work);
        if (vr) {
            ARWKV__TALLOC(tr->xn0, MC * sizeof(float));
            ARWKV__TALLOC(tr->v_first, MC * sizeof(float));
            ARWKV__TALLOC(tr->dv_first, MC * sizeof(float));
        }
        ARWKV__TALLOC(tr->o, MC * sizeof(float));
        if (vr) ARWKV__TALLOC(tr->dout0, MC * sizeof(float));
        ARWKV__TALLOC(tr->dout, MC * sizeof(float));
        ARWKV__TALLOC(tr->rows_loss, (size_t)M * sizeof(float));
    } else {
        ARWKV__TALLOC(tr->labels, (size_t)M * sizeof(int32_t));
        ARWKV__TALLOC(tr->lt, (size_t)tr->logit_rows * V * sizeof(float));
        ARWKV__TALLOC(tr->ls, (size_t)tr->logit_rows * V * sizeof(float));
        ARWKV__TALLOC(tr->dhidden, MC * sizeof(float));
        ARWKV__TALLOC(tr->kl_rows, tr->logit_rows * sizeof(float));
        ARWKV__TALLOC(tr->ce_rows, tr->logit_rows * sizeof(float));
    }
#undef ARWKV__TALLOC
    if (r != ARWKV_OK) {
        arwkv_trainer_free(tr);
        return r;
    }
    *out = tr;
    return ARWKV_OK;
}

ARWKV_API int arwkv_trainer_steps_done(const arwkv_trainer *tr) { return tr->step; }

/* Sum of n per-row losses held in backend memory, in row order (so it does not depend on threads). */
ARWKV_PRIVATE arwkv_result arwkv__sum_rows(arwkv_trainer *tr, const float *rows, int n, double *sum) {
    ARWKV__TRY(tr->student->be->mem->download(tr->student->be, tr->rows_host, rows, (size_t)n * sizeof(float)));
    for (int i = 0; i < n; i++) *sum += tr->rows_host[i];
    return ARWKV_OK;
}

/* Stage 1, called by the teacher after each layer's attention: fit the student's time mix of the
   same layer to it. Layer 0's output is kept for the end (its v_first feeds every later layer, so
   its backward needs their gradients); every other layer does its forward and backward here. */
ARWKV_PRIVATE arwkv_result arwkv__stage1_hook(void *user, int l, const float *x, const float *xn, const float *attn_out, int rows) {
    (void)x;
    arwkv_trainer *tr = (arwkv_trainer *)user;
    arwkv_model *s = tr->student;
    arwkv_backend *be = s->be;
    int B = tr->opt.batch, T = tr->opt.seq_len, C = s->cfg.hidden_size, L = s->cfg.num_layers;
    float scale = 1.0f / ((float)L * (float)rows);
    const arwkv_layer *ly = &s->layers[l];
    const arwkv__tmix_family *tf = tr->tm.family;
    if (l == 0 && tf->value_residual) { /* its backward waits for the v_first gradients of the others */
        ARWKV__TRY(be->mem->copy(be, tr->xn0, xn, (size_t)rows * C * sizeof(float)));
        ARWKV__TRY(tf->forward(be, &tr->tm, ly, 0, B, T, tr->xn0, NULL, NULL, tr->v_first, tr->o, tr->acts0, tr->work));
        ARWKV__TRY(be->loss->align(be, tr->opt.align, tr->o, attn_out, rows, C, scale, tr->rows_loss, tr->dout0));
    } else {
        ARWKV__TRY(tf->forward(be, &tr->tm, ly, l, B, T, xn, NULL, NULL, tr->v_first, tr->o, tr->acts, tr->work));
        ARWKV__TRY(be->loss->align(be, tr->opt.align, tr->o, attn_out, rows, C, scale, tr->rows_loss, tr->dout));
        ARWKV__TRY(tf->backward(be, &tr->tm, ly, l, B, T, xn, tr->v_first, tr->acts, tr->dout, NULL, tr->dv_first, tr->work));
    }
    double sum = 0;
    ARWKV__TRY(arwkv__sum_rows(tr, tr->rows_loss, rows, &sum));
    tr->stage1_loss += sum / rows / L;
    return ARWKV_OK;
}

ARWKV_PRIVATE arwkv_result arwkv__stage1_step(arwkv_trainer *tr, double *loss) {
    arwkv_backend *be = tr->student->be;
    int B = tr->opt.batch, T = tr->opt.seq_len, M = B * T;
    const float *hidden;
    const arwkv__tmix_family *tf = tr->tm.family;
    tr->stage1_loss = 0;
    if (tf->value_residual) ARWKV__TRY(be->mem->zero(be, tr->dv_first, (size_t)M * tr->student->cfg.hidden_size * sizeof(float)));
    ARWKV__TRY(arwkv_teacher_forward(tr->tw, tr->inputs, B, T, arwkv__stage1_hook, tr, &hidden));
    if (tf->value_residual) /* layer 0, now that every later layer has added its share of d v_first */
        ARWKV__TRY(tf->backward(be, &tr->tm, &tr->student->layers[0], 0, B, T, tr->xn0, tr->v_first, tr->acts0, tr->dout0, NULL,
                                tr->dv_first, tr->work));
    *loss = tr->stage1_loss;
    return ARWKV_OK;
}

/* Logits of rows [row0, row0+n) of model m's hidden states into buf. */
ARWKV_PRIVATE arwkv_result arwkv__logits_rows(arwkv_model *m, const float *hidden, int row0, int n, float *buf) {
    return arwkv_model_logits(m, hidden + (size_t)row0 * m->cfg.hidden_size, n, buf);
}

/* The student's forward mode in stages 2-3: every activation kept, or only layer inputs (--recompute). */
ARWKV_PRIVATE arwkv_rnn_mode arwkv__train_rnn_mode(const arwkv_train_options *o) {
    return o->recompute ? ARWKV_RNN_TRAIN_RECOMPUTE : ARWKV_RNN_TRAIN;
}

/* Stages 2 and 3: the loss over the logits, chunk by chunk, with the head's backward; then the
   student's backward from the gradient of its hidden states. */
ARWKV_PRIVATE arwkv_result arwkv__logit_stage_step(arwkv_trainer *tr, double *loss, double *kl_out, double *ce_out) {
    arwkv_model *s = tr->student;
    arwkv_backend *be = s->be;
    int B = tr->opt.batch, T = tr->opt.seq_len, M = B * T, C = s->cfg.hidden_size, V = s->cfg.vocab_size;
    int stage = tr->opt.stage;
    const float *ht = NULL, *hs;
    int use_labels = stage == 3 || tr->opt.ce_weight != 0;
    int n_targets = 0;
    for (int i = 0; i < M; i++) n_targets += tr->targets[i] >= 0;
    if (stage == 3 && n_targets == 0) return arwkv__fail(ARWKV_ERR_INVALID_ARGUMENT, "stage 3: a batch without any target token");
    if (use_labels) ARWKV__TRY(be->mem->upload(be, tr->labels, tr->targets, (size_t)M * sizeof(int32_t)));
    if (stage == 2) ARWKV__TRY(arwkv_teacher_forward(tr->tw, tr->inputs, B, T, NULL, NULL, &ht));
    ARWKV__TRY(arwkv_rnn_forward(tr->rnn, tr->inputs, B, T, NULL, arwkv__train_rnn_mode(&tr->opt), &hs));
    float kl_w = stage == 2 ? tr->opt.kl_weight : 0, ce_w = stage == 3 ? 1.0f : tr->opt.ce_weight;
    /* stage 2 averages over every position, stage 3 over its target tokens */
    float scale = stage == 3 ? 1.0f / (float)n_targets : 1.0f / (float)M;
    double kl = 0, ce = 0;
    for (int row = 0; row < M; row += tr->logit_rows) {
        int n = M - row < tr->logit_rows ? M - row : tr->logit_rows;
        if (stage == 2) ARWKV__TRY(arwkv__logits_rows(tr->teacher, ht, row, n, tr->lt));
        ARWKV__TRY(arwkv__logits_rows(s, hs, row, n, tr->ls));
        ARWKV__TRY(be->loss->logits_loss(be, tr->ls, stage == 2 ? tr->lt : NULL, use_labels ? tr->labels + row : NULL, n, V,
                                         tr->opt.temperature, kl_w, ce_w, scale, stage == 2 ? tr->kl_rows : NULL,
                                         use_labels ? tr->ce_rows : NULL));
        if (stage == 2) ARWKV__TRY(arwkv__sum_rows(tr, tr->kl_rows, n, &kl));
        if (use_labels) {
            ARWKV__TRY(be->mem->download(be, tr->rows_host, tr->ce_rows, (size_t)n * sizeof(float)));
            for (int i = 0; i < n; i++)
                if (tr->targets[row + i] >= 0) ce += tr->rows_host[i];
        }
        /* the head's backward: tr->ls now holds d logits */
        ARWKV__TRY(arwkv__model_logits_backward(s, hs + (size_t)row * C, n, tr->ls, tr->dhidden + (size_t)row * C));
    }
    ARWKV__TRY(arwkv_rnn_backward(tr->rnn, tr->dhidden));
    *kl_out = kl / M;
    *ce_out = n_targets ? ce / n_targets : 0;
    *loss = stage == 2 ? tr->opt.kl_weight * *kl_out + tr->opt.ce_weight * *ce_out : *ce_out;
    return ARWKV_OK;
}

/* A loss that is not finite: say which trainable parameter (values first, then gradients) went bad. */
ARWKV_PRIVATE arwkv_result arwkv__fail_nonfinite(arwkv_model *m, int step, double loss) {
    for (int pass = 0; pass < 2; pass++)
        for (int i = 0; i < m->n_params; i++) {
            arwkv_param *p = &m->params[i];
            if (!p->trainable) continue;
            float ss = 0;
            if (!pass && p->master) /* the values are the host master's: NaN or Inf times 0 is NaN */
                for (int64_t e = 0; e < p->numel; e++) ss += p->master[e] * 0.0f;
            if ((!pass && p->master ? ARWKV_OK : m->be->optim->sumsq(m->be, pass ? p->grad : (const float *)p->data, (size_t)p->numel, &ss)) ==
                    ARWKV_OK &&
                !isfinite(ss))
                return arwkv__fail(ARWKV_ERR_NUMERIC, "step %d: the loss is %g because the %s of '%s' is not finite (NaN or Inf); weights were not updated",
                                   step, loss, pass ? "gradient" : "value", p->name);
        }
    return arwkv__fail(ARWKV_ERR_NUMERIC, "step %d: the loss is not finite (%g); every parameter is finite, so the activations overflowed; "
                       "weights were not updated (try a lower --lr)", step, loss);
}

ARWKV_API arwkv_result arwkv_trainer_step(arwkv_trainer *tr, arwkv_step_stats *st) {
    double t0 = arwkv_seconds();
    memset(st, 0, sizeof *st);
    if (!tr->train) return arwkv__fail(ARWKV_ERR_INVALID_ARGUMENT, "the trainer has no training data");
    int B = tr->opt.batch, T = tr->opt.seq_len;
    for (int b = 0; b < B; b++) arwkv_dataset_next(tr->train, tr->inputs + (size_t)b * T, tr->targets + (size_t)b * T);
    ARWKV__TRY(arwkv__zero_grads(tr->student));
    double loss = 0, kl = 0, ce = 0;
    int step = tr->step + 1;
    arwkv_result r = tr->opt.stage == 1 ? arwkv__stage1_step(tr, &loss) : arwkv__logit_stage_step(tr, &loss, &kl, &ce);
    if (r != ARWKV_OK) return arwkv__context(r, "step %d", step);
    if (!isfinite(loss)) return arwkv__fail_nonfinite(tr->student, step, loss);
    float lr = arwkv_lr_at(&tr->opt, step), gn = 0;
    ARWKV__TRY(arwkv__optimizer_step(tr->student, &tr->opt, step, lr, &gn));
    tr->step = step;
    st->step = step, st->loss = (float)loss, st->kl = (float)kl, st->ce = (float)ce, st->lr = lr, st->grad_norm = gn;
    st->tokens = (int64_t)B * T;
    st->seconds = arwkv_seconds() - t0;
    return ARWKV_OK;
}

ARWKV_API arwkv_result arwkv_trainer_evaluate(arwkv_trainer *tr, const arwkv_dataset *eval, int max_windows, arwkv_eval_stats *out) {
    memset(out, 0, sizeof *out);
    arwkv_model *s = tr->student;
    arwkv_backend *be = s->be;
    int T = eval->seq_len, V = s->cfg.vocab_size;
    if (T <= 0 || eval->n_seqs == 0) return arwkv__fail(ARWKV_ERR_INVALID_ARGUMENT, "evaluation data is empty or not packed");
    size_t n = max_windows > 0 && (size_t)max_windows < eval->n_seqs ? (size_t)max_windows : eval->n_seqs;
    int32_t *in = (int32_t *)arwkv__malloc((size_t)T * sizeof(int32_t)), *tg = (int32_t *)arwkv__malloc((size_t)T * sizeof(int32_t));
    float *lt = NULL, *ls = NULL, *rows = NULL, *rows_b = NULL, *hrow = (float *)arwkv__malloc((size_t)ARWKV__TRAIN_LOGIT_ROWS * sizeof(float));
    int32_t *labels = NULL;
    arwkv_result r = (in && tg && hrow) ? ARWKV_OK : arwkv__fail(ARWKV_ERR_OUT_OF_MEMORY, "out of memory");
    if (r == ARWKV_OK) r = be->mem->alloc(be, (size_t)ARWKV__TRAIN_LOGIT_ROWS * V * sizeof(float), (void **)&ls);
    if (r == ARWKV_OK && tr->teacher) r = be->mem->alloc(be, (size_t)ARWKV__TRAIN_LOGIT_ROWS * V * sizeof(float), (void **)&lt);
    if (r == ARWKV_OK) r = be->mem->alloc(be, ARWKV__TRAIN_LOGIT_ROWS * sizeof(float), (void **)&rows);
    if (r == ARWKV_OK) r = be->mem->alloc(be, ARWKV__TRAIN_LOGIT_ROWS * sizeof(float), (void **)&rows_b);
    if (r == ARWKV_OK) r = be->mem->alloc(be, (size_t)T * sizeof(int32_t), (void **)&labels);
    double snll = 0, tnll = 0, kl = 0;
    int64_t targets = 0, positions = 0;
    /* a separate RNN workspace, so evaluating between steps leaves the training buffers alone */
    arwkv_rnn *rnn = NULL;
    if (r == ARWKV_OK) r = arwkv_rnn_create(s, &rnn);
    for (size_t w = 0; w < n && r == ARWKV_OK; w++) {
        arwkv_dataset_window(eval, w, in, tg);
        const float *ht = NULL, *hs;
        r = be->mem->upload(be, labels, tg, (size_t)T * sizeof(int32_t));
        if (r == ARWKV_OK && tr->teacher) r = arwkv_teacher_forward(tr->tw, in, 1, T, NULL, NULL, &ht);
        if (r == ARWKV_OK) r = arwkv_rnn_forward(rnn, in, 1, T, NULL, 0, &hs);
        for (int row = 0; row < T && r == ARWKV_OK; row += ARWKV__TRAIN_LOGIT_ROWS) {
            int k = T - row < ARWKV__TRAIN_LOGIT_ROWS ? T - row : ARWKV__TRAIN_LOGIT_ROWS;
            if (tr->teacher) r = arwkv__logits_rows(tr->teacher, ht, row, k, lt);
            if (r == ARWKV_OK) r = arwkv__logits_rows(s, hs, row, k, ls);
            /* student: KL to the teacher and its own likelihood; then the teacher's likelihood */
            if (r == ARWKV_OK) r = be->loss->logits_loss(be, ls, lt, labels + row, k, V, ARWKV__MEASURE_TAU, ARWKV__MEASURE_TERM /* KL */,
                                                         ARWKV__MEASURE_TERM /* CE */, ARWKV__MEASURE_GRAD_SCALE, lt ? rows_b : NULL, rows);
            if (r == ARWKV_OK) r = be->mem->download(be, hrow, rows, (size_t)k * sizeof(float));
            for (int i = 0; i < k && r == ARWKV_OK; i++)
                if (tg[row + i] >= 0) snll += hrow[i], targets++;
            if (r == ARWKV_OK && lt) {
                r = be->mem->download(be, hrow, rows_b, (size_t)k * sizeof(float));
                for (int i = 0; i < k && r == ARWKV_OK; i++) kl += hrow[i];
                positions += k;
                if (r == ARWKV_OK) r = be->loss->logits_loss(be, lt, NULL, labels + row, k, V, ARWKV__MEASURE_TAU, ARWKV__MEASURE_NO_TERM /* KL */,
                                                             ARWKV__MEASURE_TERM /* CE */, ARWKV__MEASURE_GRAD_SCALE, NULL, rows);
                if (r == ARWKV_OK) r = be->mem->download(be, hrow, rows, (size_t)k * sizeof(float));
                for (int i = 0; i < k && r == ARWKV_OK; i++)
                    if (tg[row + i] >= 0) tnll += hrow[i];
            }
        }
    }
    arwkv_rnn_free(rnn);
    be->mem->free(be, lt), be->mem->free(be, ls), be->mem->free(be, rows), be->mem->free(be, rows_b), be->mem->free(be, labels);
    arwkv__free(in), arwkv__free(tg), arwkv__free(hrow);
    if (r != ARWKV_OK) return arwkv__context(r, "evaluation");
    out->tokens = targets;
    out->student_nll = targets ? snll / targets : 0;
    out->teacher_nll = targets && tr->teacher ? tnll / targets : 0;
    out->kl = positions ? kl / positions : 0;
    return ARWKV_OK;
}

ARWKV_API arwkv_result arwkv_checkpoint_latest(const char *out_dir, char **dir) { return arwkv__checkpoint_latest(out_dir, dir); }

ARWKV_API arwkv_result arwkv_trainer_save(arwkv_trainer *tr, const char *out_dir, const char *tokenizer_dir) {
    arwkv__train_state s;
    memset(&s, 0, sizeof s);
    s.step = tr->step;
    s.stage = tr->opt.stage, s.seq_len = tr->opt.seq_len, s.batch = tr->opt.batch;
    arwkv__options_text(&tr->opt, s.options, sizeof s.options);
    if (tr->train) s.epoch = tr->train->epoch, s.pos = tr->train->pos, s.seed = tr->train->seed, s.data_hash = arwkv_dataset_hash(tr->train);
    return arwkv__checkpoint_save(tr->student, &s, out_dir, tokenizer_dir);
}

ARWKV_API arwkv_result arwkv_trainer_restore(arwkv_trainer *tr, const char *checkpoint_dir) {
    arwkv__train_state s;
    memset(&s, 0, sizeof s);
    ARWKV__TRY(arwkv__checkpoint_load_state(tr->student, checkpoint_dir, &s));
    if (s.stage != tr->opt.stage || s.seq_len != tr->opt.seq_len || s.batch != tr->opt.batch)
        return arwkv__fail(ARWKV_ERR_INVALID_ARGUMENT, "%s: saved by stage %d with --seq-len %d --batch %d; resume with the same options",
                           checkpoint_dir, s.stage, s.seq_len, s.batch);
    char now[256];
    arwkv__options_text(&tr->opt, now, sizeof now);
    if (s.options[0] && strcmp(s.options, now) != 0 && !tr->opt.resume_with_new_options) {
        /* name each option that differs: the texts are "key=value" words in the same order */
        char diff[512] = "", *a = s.options, *b = now;
        while (*a && *b) {
            size_t la = strcspn(a, " "), lb = strcspn(b, " ");
            if (la != lb || memcmp(a, b, la) != 0)
                snprintf(diff + strlen(diff), sizeof diff - strlen(diff), "%s%.*s (now %.*s)", diff[0] ? ", " : "", (int)la, a, (int)lb, b);
            a += la + (a[la] == ' '), b += lb + (b[lb] == ' ');
        }
        return arwkv__fail(ARWKV_ERR_INVALID_ARGUMENT, "%s: saved with %s; resume with the same options, or accept the new ones (--override)",
                           checkpoint_dir, diff);
    }
    if (tr->train) {
        if (s.data_hash != arwkv_dataset_hash(tr->train) || s.seed != tr->train->seed)
            return arwkv__fail(ARWKV_ERR_INVALID_ARGUMENT, "%s: the training data or its seed differ from the run that saved it; resume with the same --data and --seed",
                               checkpoint_dir);
        if (s.pos > tr->train->n_seqs) return arwkv__fail(ARWKV_ERR_FORMAT, "%s: data position %llu is past the data", checkpoint_dir, (unsigned long long)s.pos);
        tr->train->epoch = s.epoch;
        arwkv__dataset_shuffle(tr->train);
        tr->train->pos = (size_t)s.pos;
    }
    tr->step = s.step;
    return ARWKV_OK;
}

/* ---- The memory plan ----------------------------------------------------------------------------------
   Each size below mirrors the allocation it predicts (named in its comment); tests/test_memory.c
   runs every stage and compares the plan with the allocator's measured peak, so the two cannot
   drift apart unnoticed. Parameters are described by "shadow" models: the parameter list declared
   from the config, with each one's type and whether it would be allocated or mapped, but no data. */

/* arwkv__teacher_reserve */
ARWKV_PRIVATE uint64_t arwkv__teacher_ws_bytes(const arwkv_config *c, int rows, int on_gpu) {
    uint64_t R = (uint64_t)rows, C = (uint64_t)c->hidden_size, Q = (uint64_t)c->num_heads * c->head_dim,
             KV = (uint64_t)c->num_kv_heads * c->head_dim, F = (uint64_t)c->intermediate_size;
    uint64_t chunk = on_gpu ? ARWKV__TEACHER_MLP_ROWS_GPU : ARWKV__TEACHER_MLP_ROWS, mlp = R < chunk ? R : chunk;
    return sizeof(float) * (R * (3 * C + 2 * Q + 2 * KV) + 2 * mlp * F + 2 * R);
}

/* arwkv__rnn_reserve for an arwkv_rnn_mode, and what the student's forward and backward allocate on the way */
ARWKV_PRIVATE uint64_t arwkv__rnn_ws_bytes(const arwkv_model *s, int B, int T, int train) {
    const arwkv_config *c = &s->cfg;
    uint64_t R = (uint64_t)B * T, C = (uint64_t)c->hidden_size, L = (uint64_t)c->num_layers, F = (uint64_t)c->intermediate_size;
    uint64_t keep = train == ARWKV_RNN_TRAIN ? L : 1;
    int N;
    uint64_t H = (uint64_t)arwkv__rnn_heads(s, &N);
    uint64_t floats = (train ? L + 1 : 2) * R * C + 3 * keep * R * C + 2 * keep * R + 3 * R * C + R + 3 * R * F + (uint64_t)B * C +
                      (uint64_t)B * H * N * N + (train ? 3 * R * C : 0);
    uint64_t bytes = R * sizeof(int32_t) + floats * sizeof(float);
    arwkv__tmix tm; /* arwkv__rnn_reserve: kept activations when training, and the shared workspace */
    if (arwkv__tmix_of(s, &tm) != ARWKV_OK) return bytes;
    if (train) bytes += keep * tm.family->acts_bytes(&tm, B, T);
    return bytes + tm.family->work_bytes(&tm, B, T, train);
}

ARWKV_PRIVATE void arwkv__shadow_free(arwkv_model *m) {
    arwkv__free(m->params);
    arwkv__free(m->layers);
    arwkv_st_close(m->st);
    arwkv__free(m->dir);
    memset(m, 0, sizeof *m);
}

/* The parameters of the model in dir as arwkv_model_load would place them on be: p->dtype is the
   type it would have, p->owns_data 1 if it would be allocated, 0 if mapped from the file. */
ARWKV_PRIVATE arwkv_result arwkv__shadow_load(const arwkv_backend *be, const char *dir, arwkv_model *m) {
    memset(m, 0, sizeof *m);
    m->dir = arwkv__strdup(dir);
    if (!m->dir) return arwkv__fail(ARWKV_ERR_OUT_OF_MEMORY, "out of memory");
    if (arwkv__is_gguf_file(dir)) { /* a GGUF teacher: its config from the metadata, every tensor dequantized to fp32 in memory */
        arwkv_gguf *g;
        ARWKV__TRY(arwkv_gguf_open(dir, &g));
        arwkv_result r = arwkv_gguf_config(g, &m->cfg);
        arwkv_gguf_close(g);
        ARWKV__TRY(r);
        ARWKV__TRY(arwkv__declare_params(m));
        for (int i = 0; i < m->n_params; i++) m->params[i].dtype = ARWKV_F32, m->params[i].owns_data = 1;
        return ARWKV_OK;
    }
    ARWKV__TRY(arwkv_config_load(dir, &m->cfg));
    ARWKV__TRY(arwkv_st_open(dir, &m->st));
    if (m->cfg.arch == ARWKV_ARCH_ARWKV7) ARWKV__TRY(arwkv__read_lora_ranks(m));
    ARWKV__TRY(arwkv__declare_params(m));
    for (int i = 0; i < m->n_params; i++) {
        arwkv_param *p = &m->params[i];
        const arwkv_tensor_info *t = arwkv_st_find(m->st, p->name);
        if (!t) return arwkv__fail(ARWKV_ERR_NOT_FOUND, "%s: tensor '%s' is missing from the checkpoint (architecture %s)", dir, p->name,
                                   arwkv_arch_name(m->cfg.arch));
        int is_float = t->dtype == ARWKV_F32 || t->dtype == ARWKV_BF16 || t->dtype == ARWKV_F16;
        p->dtype = p->is_matrix && is_float ? t->dtype : ARWKV_F32; /* arwkv__param_from_checkpoint's rule */
        p->owns_data = !(p->is_matrix && is_float && !be->on_gpu && ((uintptr_t)t->data % arwkv_dtype_size(t->dtype)) == 0);
    }
    return ARWKV_OK;
}

/* A new student as arwkv_student_create would make it: the parameters it inherits from the teacher
   (copies in their type, or the teacher's own with share_teacher) and fp32 new ones. */
ARWKV_PRIVATE arwkv_result arwkv__shadow_student(const arwkv_model *teacher, const arwkv_student_options *so, arwkv_model *s) {
    memset(s, 0, sizeof *s);
    arwkv_student_options opt;
    if (so) opt = *so;
    else arwkv_student_options_default(&opt);
    arwkv__student_shape(&teacher->cfg, &opt, s);
    ARWKV__TRY(arwkv__declare_params(s));
    for (int i = 0; i < s->n_params; i++) {
        arwkv_param *p = &s->params[i], *tp = NULL;
        for (int j = 0; j < teacher->n_params && !tp; j++)
            if (!strcmp(teacher->params[j].name, p->name)) tp = &teacher->params[j];
        int fresh = s->cfg.arch == ARWKV_ARCH_ARWKV7 ? strstr(p->name, ".time_mixer.") != NULL : tp == NULL;
        if (!fresh && !tp) return arwkv__fail(ARWKV_ERR_NOT_FOUND, "teacher has no parameter '%s'", p->name);
        p->dtype = fresh ? ARWKV_F32 : tp->dtype;
        p->owns_data = fresh || !opt.share_teacher ? 1 : -1; /* -1: the teacher's memory, counted there */
    }
    return ARWKV_OK;
}

/* The most a GPU backend's product split along K keeps in partial sums (arwkv_hip.h's
   arwkv__gemm_slices halves its slices until they fit). */
#define ARWKV__GPU_SPLIT_K_MAX ((uint64_t)256 << 20)

ARWKV_PRIVATE uint64_t arwkv__param_bytes(const arwkv_param *p) { return (uint64_t)p->numel * arwkv_dtype_size(p->dtype); }

ARWKV_PRIVATE void arwkv__plan_add_to(arwkv_memory_plan *plan, const char *name, uint64_t bytes, int on_host) {
    if (!bytes || plan->n_items == ARWKV_PLAN_MAX_ITEMS) return;
    arwkv_memory_item *it = &plan->items[plan->n_items++];
    snprintf(it->name, sizeof it->name, "%s", name);
    it->bytes = bytes;
    it->on_host = on_host;
    if (on_host) plan->host_total += bytes;
    else plan->total += bytes;
}
ARWKV_PRIVATE void arwkv__plan_add(arwkv_memory_plan *plan, const char *name, uint64_t bytes) { arwkv__plan_add_to(plan, name, bytes, 0); }

/* The items of one configuration (no available memory, no advice). teacher may be NULL. */
ARWKV_PRIVATE void arwkv__plan_items(int on_gpu, const arwkv_model *teacher, const arwkv_model *student,
                                     const arwkv_train_options *o, int eval_T, arwkv_memory_plan *plan) {
    memset(plan, 0, sizeof *plan);
    int B = o->batch, T = o->seq_len, stage = o->stage;
    uint64_t M = (uint64_t)B * T, C = (uint64_t)student->cfg.hidden_size, V = (uint64_t)student->cfg.vocab_size, MC = M * C;
    uint64_t tw = 0, sw = 0, masters = 0, grads = 0, moments = 0, working = 0, t_host = 0, s_host = 0, slot = 0;
    size_t wsize = arwkv_dtype_size(arwkv__offload_weight_type(o, on_gpu));
    int stream = o->stream_teacher && stage < 3 && teacher, L = teacher ? teacher->cfg.num_layers : 0;
    uint64_t *layer_bytes = stream ? (uint64_t *)arwkv__calloc((size_t)L, sizeof(uint64_t)) : NULL;
    for (int i = 0; teacher && i < teacher->n_params; i++) {
        const arwkv_param *p = &teacher->params[i];
        int l = arwkv__param_layer(p->name);
        if (layer_bytes && l >= 0 && l < L && arwkv__param_streams(teacher, p)) { /* arwkv__host_layers_place's layout */
            uint64_t b = (arwkv__param_bytes(p) + 255) / 256 * 256;
            layer_bytes[l] += b, t_host += b;
            slot = layer_bytes[l] > slot ? layer_bytes[l] : slot;
        } else if (p->owns_data) tw += arwkv__param_bytes(p);
        else plan->mapped += arwkv__param_bytes(p);
    }
    arwkv__free(layer_bytes);
    for (int i = 0; i < student->n_params; i++) {
        const arwkv_param *p = &student->params[i];
        uint64_t n = (uint64_t)p->numel;
        if (arwkv__is_trained(p, stage, o->freeze_mlp)) masters += 4 * n, grads += 4 * n, moments += 8 * n, working += (p->is_matrix ? wsize : 4) * n;
        else if (stream && stage == 1 && p->owns_data > 0 && arwkv__param_streams(student, p)) s_host += (arwkv__param_bytes(p) + 255) / 256 * 256;
        else if (stream && p->owns_data < 0 && strstr(p->name, ".self_attn.")) sw += arwkv__param_bytes(p); /* a QRWKV6 time mix's q/k/v/o: copied */
        else if (p->owns_data > 0) sw += arwkv__param_bytes(p);
        else if (p->owns_data == 0) plan->mapped += arwkv__param_bytes(p); /* -1: shared with the teacher, counted there */
    }
    arwkv__plan_add(plan, "teacher weights", tw);
    arwkv__plan_add(plan, "teacher layer slots", 2 * slot);
    arwkv__plan_add_to(plan, "teacher layers (host)", t_host, 1);
    arwkv__plan_add_to(plan, "student layers (host)", s_host, 1);
    arwkv__plan_add(plan, "student weights (frozen)", sw);
    if (o->offload_optimizer) { /* arwkv__make_trainable and arwkv__optimizer_step with offload */
        arwkv__plan_add(plan, wsize == 2 ? "bf16 weights (trained)" : "fp32 weights (trained)", working);
        arwkv__plan_add(plan, "gradients", grads);
        arwkv__plan_add_to(plan, "fp32 masters (host)", masters, 1);
        arwkv__plan_add_to(plan, "AdamW moments (host)", moments, 1);
        arwkv__plan_add_to(plan, "transfer slices (host)", masters ? 2 * ARWKV__OFFLOAD_SLICE * (sizeof(float) + sizeof(uint16_t)) : 0, 1);
    } else {
        arwkv__plan_add(plan, "fp32 masters (trained)", masters);
        arwkv__plan_add(plan, "gradients", grads);
        arwkv__plan_add(plan, "AdamW moments", moments);
    }
    /* the teacher's workspace grows to the largest batch it runs: training's, or one evaluation sequence */
    int teacher_rows = stage < 3 ? (int)M : 0;
    if (eval_T > teacher_rows) teacher_rows = eval_T;
    if (teacher && teacher_rows) arwkv__plan_add(plan, "teacher activations", arwkv__teacher_ws_bytes(&teacher->cfg, teacher_rows, on_gpu));
    uint64_t acts = 0, logits = 0;
    arwkv__tmix tm;
    if (stage == 1) { /* arwkv_trainer_create: one layer's activations (two with a value residual), the workspace with the
                         backward's temporaries, [M,C] arrays o and dout (and xn0, v_first, dv_first, dout0 with a value residual) */
        if (arwkv__tmix_of(student, &tm) == ARWKV_OK) {
            int vr = tm.family->value_residual;
            acts = (uint64_t)(vr ? 2 : 1) * tm.family->acts_bytes(&tm, B, T) + tm.family->work_bytes(&tm, B, T, 1) +
                   ((vr ? 6 : 2) * MC + M) * sizeof(float);
        }
    } else { /* every layer's activations (or inputs, when recomputing), the labels, the hidden-state gradient */
        acts = arwkv__rnn_ws_bytes(student, B, T, arwkv__train_rnn_mode(o)) + M * sizeof(int32_t);
        uint64_t chunk = on_gpu ? ARWKV__TRAIN_LOGIT_ROWS_GPU : ARWKV__TRAIN_LOGIT_ROWS; /* as arwkv_trainer_create */
        logits = (2 * chunk * V + 2 * chunk + MC) * sizeof(float);
    }
    arwkv__plan_add(plan, "student activations", acts);
    arwkv__plan_add(plan, "logits chunk", logits);
    if (eval_T > 0) /* arwkv_trainer_evaluate: its logits, rows and labels, and a student workspace of one sequence */
        arwkv__plan_add(plan, "evaluation",
                        ((teacher ? 2 : 1) * (uint64_t)ARWKV__TRAIN_LOGIT_ROWS * V + 2 * ARWKV__TRAIN_LOGIT_ROWS) * sizeof(float) +
                            (uint64_t)eval_T * sizeof(int32_t) + arwkv__rnn_ws_bytes(student, 1, eval_T, 0));
    /* a GPU's scratch: the partial sums of a product split along K (at most ARWKV__GPU_SPLIT_K_MAX:
       a 7B stage 1 on an H100 reached 250 MiB with its weight gradients), and an allowance of
       64 MiB and 1/128 of the rest for the reductions' partial sums */
    if (on_gpu) arwkv__plan_add(plan, "GPU workspace", ((uint64_t)64 << 20) + ARWKV__GPU_SPLIT_K_MAX + plan->total / 128);
    plan->need = plan->total + (on_gpu ? 0 : plan->host_total);
}

ARWKV_PRIVATE const char *arwkv__fmt_bytes(uint64_t b, char *buf, size_t n) {
    if (b >= ((uint64_t)1 << 30)) snprintf(buf, n, "%.2f GiB", b / 1073741824.0);
    else snprintf(buf, n, "%.1f MiB", b / 1048576.0);
    return buf;
}

ARWKV_API arwkv_result arwkv_memory_plan_training(arwkv_backend *be, const char *teacher_dir, const char *student_dir,
                                                  const arwkv_student_options *so, const arwkv_train_options *o, int eval_seq_len,
                                                  arwkv_memory_plan *plan) {
    memset(plan, 0, sizeof *plan);
    if (o->stage < 1 || o->stage > 3 || o->batch < 1 || o->seq_len < 1)
        return arwkv__fail(ARWKV_ERR_INVALID_ARGUMENT, "memory plan: stage %d, batch %d, sequence length %d", o->stage, o->batch, o->seq_len);
    if (!teacher_dir && (o->stage < 3 || !student_dir))
        return arwkv__fail(ARWKV_ERR_INVALID_ARGUMENT, "memory plan: stage %d needs a teacher%s", o->stage, o->stage == 3 ? " or a student" : "");
    arwkv_model teacher, student;
    memset(&teacher, 0, sizeof teacher);
    memset(&student, 0, sizeof student);
    arwkv_result r = teacher_dir ? arwkv__shadow_load(be, teacher_dir, &teacher) : ARWKV_OK;
    if (r == ARWKV_OK) r = student_dir ? arwkv__shadow_load(be, student_dir, &student) : arwkv__shadow_student(&teacher, so, &student);
    if (r == ARWKV_OK && !arwkv__tmix_family_of(student.cfg.arch))
        r = arwkv__fail(ARWKV_ERR_UNSUPPORTED, "%s: training needs an ARWKV-7 or QRWKV6 student, this is %s", student_dir,
                        arwkv_arch_name(student.cfg.arch));
    if (r != ARWKV_OK) {
        arwkv__shadow_free(&teacher);
        arwkv__shadow_free(&student);
        return arwkv__context(r, "memory plan");
    }
    const arwkv_model *tm = teacher_dir ? &teacher : NULL;
    arwkv__plan_items(be->on_gpu, tm, &student, o, eval_seq_len, plan);
    uint64_t free_b = 0, total_b = 0;
    if (be->mem_limit) {
        plan->available = be->mem_limit;
        snprintf(plan->available_from, sizeof plan->available_from, "the memory limit");
    } else if (arwkv_backend_free_memory(be, &free_b, &total_b) == ARWKV_OK) {
        plan->available = free_b;
        snprintf(plan->available_from, sizeof plan->available_from, "%s memory of %.60s", be->on_gpu ? "free" : "available", be->name);
    } else {
        arwkv_clear_error();
        plan->available = UINT64_MAX;
        snprintf(plan->available_from, sizeof plan->available_from, "unknown: not checked");
    }
    if (be->on_gpu && plan->host_total && arwkv__host_memory(&free_b, &total_b) == ARWKV_OK) plan->host_available = free_b;
    arwkv_clear_error();
    if (plan->need > plan->available) { /* what would make it fit: each option alone, with its total */
        arwkv__buf adv = {NULL, 0, 0, 0};
        arwkv_train_options alt[6];
        const char *what[6];
        char label[6][48];
        int n_alt = 0;
        if (o->stage >= 2 && !o->freeze_mlp) alt[n_alt] = *o, alt[n_alt].freeze_mlp = 1, what[n_alt++] = "--freeze-mlp";
        if (!o->offload_optimizer) alt[n_alt] = *o, alt[n_alt].offload_optimizer = 1, what[n_alt++] = "--offload-optimizer";
        if (o->stage >= 2 && !o->recompute) alt[n_alt] = *o, alt[n_alt].recompute = 1, what[n_alt++] = "--recompute";
        if (o->stage <= 2 && tm && !o->stream_teacher) alt[n_alt] = *o, alt[n_alt].stream_teacher = 1, what[n_alt++] = "--stream-teacher";
        if (o->batch > 1) {
            alt[n_alt] = *o, alt[n_alt].batch = o->batch / 2;
            snprintf(label[n_alt], sizeof label[n_alt], "--batch %d", alt[n_alt].batch);
            what[n_alt] = label[n_alt], n_alt++;
        }
        if (o->seq_len > 1) {
            alt[n_alt] = *o, alt[n_alt].seq_len = o->seq_len / 2;
            snprintf(label[n_alt], sizeof label[n_alt], "--seq-len %d", alt[n_alt].seq_len);
            what[n_alt] = label[n_alt], n_alt++;
        }
        for (int i = 0; i < n_alt; i++) {
            arwkv_memory_plan p2;
            int ev = eval_seq_len > 0 && alt[i].seq_len != o->seq_len ? alt[i].seq_len : eval_seq_len;
            arwkv__plan_items(be->on_gpu, tm, &student, &alt[i], ev, &p2);
            char b1[32];
            if (p2.need >= plan->need) continue;
            arwkv__buf_printf(&adv, "%s%s (%s, %s)", adv.len ? "; " : "", what[i], arwkv__fmt_bytes(p2.need, b1, sizeof b1),
                              p2.need <= plan->available ? "fits" : "still too much");
        }
        if (adv.data) snprintf(plan->advice, sizeof plan->advice, "%s", adv.data);
        arwkv__buf_free(&adv);
    }
    arwkv__shadow_free(&teacher);
    arwkv__shadow_free(&student);
    return ARWKV_OK;
}

ARWKV_API arwkv_result arwkv_memory_plan_shapes(const arwkv_config *tc, arwkv_dtype teacher_type, const arwkv_student_options *so,
                                                const arwkv_train_options *o, int eval_seq_len, int on_gpu, arwkv_memory_plan *plan) {
    memset(plan, 0, sizeof *plan);
    if (tc->arch != ARWKV_ARCH_QWEN2 || o->batch < 1 || o->seq_len < 1 || o->stage < 1 || o->stage > 3)
        return arwkv__fail(ARWKV_ERR_INVALID_ARGUMENT, "memory plan: a Qwen2 teacher config and a stage, batch and sequence length");
    if (teacher_type != ARWKV_F32 && teacher_type != ARWKV_BF16 && teacher_type != ARWKV_F16)
        return arwkv__fail(ARWKV_ERR_INVALID_ARGUMENT, "memory plan: teacher matrices of type %s", arwkv_dtype_name(teacher_type));
    arwkv_model teacher, student;
    memset(&teacher, 0, sizeof teacher);
    memset(&student, 0, sizeof student);
    teacher.cfg = *tc;
    arwkv_result r = arwkv__declare_params(&teacher);
    for (int i = 0; i < teacher.n_params && r == ARWKV_OK; i++) {
        arwkv_param *p = &teacher.params[i];
        p->dtype = p->is_matrix ? teacher_type : ARWKV_F32;
        p->owns_data = on_gpu || !p->is_matrix;
    }
    if (r == ARWKV_OK) r = arwkv__shadow_student(&teacher, so, &student);
    if (r == ARWKV_OK) arwkv__plan_items(on_gpu, &teacher, &student, o, eval_seq_len, plan);
    arwkv__shadow_free(&teacher);
    arwkv__shadow_free(&student);
    return r;
}

ARWKV_API arwkv_result arwkv_memory_plan_check(const arwkv_memory_plan *plan) {
    char a[32], b[32];
    if (plan->host_available && plan->host_total > plan->host_available) { /* a GPU run's host items: teacher layers, optimizer state */
        arwkv__buf m = {NULL, 0, 0, 0};
        arwkv__buf_printf(&m, "the run needs %s of host memory but the host has %s available (MemAvailable):",
                          arwkv__fmt_bytes(plan->host_total, a, sizeof a), arwkv__fmt_bytes(plan->host_available, b, sizeof b));
        for (int i = 0, k = 0; i < plan->n_items; i++)
            if (plan->items[i].on_host) arwkv__buf_printf(&m, "%s %s %s", k++ ? "," : "", plan->items[i].name, arwkv__fmt_bytes(plan->items[i].bytes, a, sizeof a));
        arwkv__buf_printf(&m, ". Use a host with more memory, or keep the optimizer on the device (without --offload-optimizer) if it fits there");
        arwkv_result r = arwkv__fail(ARWKV_ERR_OUT_OF_MEMORY, "%s", m.data ? m.data : "the run does not fit in host memory");
        arwkv__buf_free(&m);
        return r;
    }
    if (plan->need <= plan->available) return ARWKV_OK;
    /* the three biggest items, largest first */
    int order[ARWKV_PLAN_MAX_ITEMS], n = plan->n_items;
    for (int i = 0; i < n; i++) order[i] = i;
    for (int i = 1; i < n; i++)
        for (int j = i; j > 0 && plan->items[order[j]].bytes > plan->items[order[j - 1]].bytes; j--) {
            int t = order[j];
            order[j] = order[j - 1], order[j - 1] = t;
        }
    arwkv__buf m = {NULL, 0, 0, 0};
    arwkv__buf_printf(&m, "the run needs %s at its peak but %s is available (%s); the biggest parts:", arwkv__fmt_bytes(plan->need, a, sizeof a),
                      arwkv__fmt_bytes(plan->available, b, sizeof b), plan->available_from);
    for (int i = 0; i < 3 && i < n; i++)
        arwkv__buf_printf(&m, "%s %s %s", i ? "," : "", plan->items[order[i]].name, arwkv__fmt_bytes(plan->items[order[i]].bytes, a, sizeof a));
    if (plan->advice[0]) arwkv__buf_printf(&m, ". To make it fit: %s", plan->advice);
    else arwkv__buf_printf(&m, ". None of --freeze-mlp, --offload-optimizer, a smaller --batch or --seq-len helps: use a device with more memory");
    arwkv_result r = arwkv__fail(ARWKV_ERR_OUT_OF_MEMORY, "%s", m.data ? m.data : "the run does not fit in memory");
    arwkv__buf_free(&m);
    return r;
}

/* ---- Data from files ------------------------------------------------------------------------------------ */
#ifndef ARWKV_NO_TOKENIZER

ARWKV_PRIVATE arwkv_result arwkv__dataset_add_tokens(arwkv_dataset *d, arwkv_tokens *t, int32_t eos_id, int masked) {
    if (eos_id >= 0) {
        /* append the separator by hand: it is a target of a text document, not of a conversation */
        if (t->n == t->cap) {
            size_t cap = t->cap ? 2 * t->cap : 64;
            int32_t *ids = (int32_t *)arwkv__realloc(t->ids, cap * sizeof(int32_t));
            if (!ids) return arwkv__fail(ARWKV_ERR_OUT_OF_MEMORY, "out of memory");
            t->ids = ids;
            uint8_t *mk = (uint8_t *)arwkv__realloc(t->mask, cap);
            if (!mk) return arwkv__fail(ARWKV_ERR_OUT_OF_MEMORY, "out of memory");
            t->mask = mk;
            t->cap = cap;
        }
        t->ids[t->n] = eos_id;
        t->mask[t->n] = 0;
        t->n++;
    }
    return arwkv_dataset_append(d, t->ids, masked ? t->mask : NULL, t->n);
}

ARWKV_API arwkv_result arwkv_dataset_add_file(arwkv_dataset *d, const arwkv_tokenizer *tok, const char *path, int32_t eos_id) {
    char *text;
    size_t len;
    ARWKV__TRY(arwkv__read_file(path, &text, &len));
    size_t n = strlen(path);
    int jsonl = n > 6 && strcmp(path + n - 6, ".jsonl") == 0;
    arwkv_tokens t = {NULL, NULL, 0, 0};
    arwkv_result r = ARWKV_OK;
    if (!jsonl) {
        r = arwkv_tokenizer_encode(tok, text, len, 0, &t);
        if (r == ARWKV_OK) r = arwkv__dataset_add_tokens(d, &t, eos_id, 0);
        if (r != ARWKV_OK) r = arwkv__context(r, "%s", path);
    }
    size_t line_no = 0;
    for (size_t pos = 0; jsonl && pos < len && r == ARWKV_OK;) {
        size_t end = pos;
        while (end < len && text[end] != '\n') end++;
        line_no++;
        size_t a = pos, b = end;
        while (a < b && (text[a] == ' ' || text[a] == '\t' || text[a] == '\r')) a++;
        pos = end + 1;
        if (a == b) continue; /* blank line */
        char name[600];
        snprintf(name, sizeof name, "%.500s line %zu", path, line_no);
        arwkv__json j;
        r = arwkv__json_parse(&j, text + a, b - a, name);
        if (r != ARWKV_OK) break;
        uint32_t jt = arwkv__json_get(&j, 0, "text"), jm = arwkv__json_get(&j, 0, "messages");
        t.n = 0;
        if (arwkv__json_type(&j, jt) == ARWKV__JSON_STRING) {
            r = arwkv_tokenizer_encode(tok, arwkv__json_str(&j, jt), arwkv__json_str_len(&j, jt), 0, &t);
            if (r == ARWKV_OK) r = arwkv__dataset_add_tokens(d, &t, eos_id, 0);
        } else if (arwkv__json_type(&j, jm) == ARWKV__JSON_ARRAY) {
            uint32_t count = arwkv__json_count(&j, jm);
            arwkv_chat_message *msgs = (arwkv_chat_message *)arwkv__calloc(count + 1, sizeof *msgs);
            if (!msgs) r = arwkv__fail(ARWKV_ERR_OUT_OF_MEMORY, "out of memory");
            uint32_t k = 0;
            for (uint32_t e = arwkv__json_first(&j, jm); e != ARWKV__JSON_NONE && r == ARWKV_OK; e = arwkv__json_next(&j, e), k++) {
                msgs[k].role = arwkv__json_str(&j, arwkv__json_get(&j, e, "role"));
                msgs[k].content = arwkv__json_str(&j, arwkv__json_get(&j, e, "content"));
                if (!msgs[k].role || !msgs[k].content)
                    r = arwkv__fail(ARWKV_ERR_FORMAT, "%s: message %u needs string \"role\" and \"content\"", name, k);
            }
            if (r == ARWKV_OK) r = arwkv_chat_encode(tok, msgs, (int)count, 0, &t);
            if (r == ARWKV_OK) r = arwkv__dataset_add_tokens(d, &t, eos_id, 1);
            if (r != ARWKV_OK) r = arwkv__context(r, "%s", name);
            arwkv__free(msgs);
        } else {
            r = arwkv__fail(ARWKV_ERR_FORMAT, "%s: expected {\"text\": ...} or {\"messages\": [...]}", name);
        }
        arwkv__json_free(&j);
    }
    arwkv_tokens_free(&t);
    arwkv__free(text);
    return r;
}

#endif /* ARWKV_NO_TOKENIZER */
#endif /* ARWKV_NO_TRAINING */

/* ============================================================================================
   SECTION 9. Generation
   ============================================================================================ */
/* ---- Sampling ------------------------------------------------------------------------------------------- */

ARWKV_API void arwkv_sampler_options_default(arwkv_sampler_options *o) {
    memset(o, 0, sizeof *o);
    o->temperature = 0.7f;
    o->top_k = 40;
    o->top_p = 0.9f;
    o->min_p = 0.0f;
    o->repetition_penalty = 1.0f; /* off, as in transformers and llama.cpp: temperature 0 is then plain greedy */
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
ARWKV_PRIVATE int arwkv__cand_cmp(const void *a, const void *b) {
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

/* ---- Sessions ---------------------------------------------------------------------------------------------- */

struct arwkv_session {
    arwkv_model *m;
    arwkv_teacher *tw;
    arwkv_kv_cache *kv;
    arwkv_rnn *rnn;
    arwkv_rnn_state *state;
};

ARWKV_API void arwkv_session_free(arwkv_session *s) {
    if (!s) return;
    arwkv_teacher_free(s->tw);
    arwkv_kv_cache_free(s->kv);
    arwkv_rnn_free(s->rnn);
    arwkv_rnn_state_free(s->state);
    arwkv__free(s);
}

ARWKV_API arwkv_result arwkv_session_create(arwkv_model *m, int max_tokens, arwkv_session **out) {
    *out = NULL;
    arwkv_session *s = (arwkv_session *)arwkv__calloc(1, sizeof *s);
    if (!s) return arwkv__fail(ARWKV_ERR_OUT_OF_MEMORY, "out of memory");
    s->m = m;
    arwkv_result r;
    if (arwkv_arch_is_teacher(m->cfg.arch)) {
        r = arwkv_teacher_create(m, &s->tw);
        if (r == ARWKV_OK) r = arwkv_kv_cache_create(m, max_tokens, &s->kv);
    } else {
        r = arwkv_rnn_create(m, &s->rnn);
        if (r == ARWKV_OK) r = arwkv_rnn_state_create(m, &s->state);
    }
    if (r != ARWKV_OK) {
        arwkv_session_free(s);
        return r;
    }
    *out = s;
    return ARWKV_OK;
}

ARWKV_API arwkv_result arwkv_session_feed(arwkv_session *s, const int32_t *ids, int n, float *logits_last) {
    if (n <= 0) return ARWKV_OK;
    ARWKV__TRY(s->tw ? arwkv_teacher_step(s->tw, s->kv, ids, n, logits_last, NULL) : arwkv_rnn_step(s->rnn, s->state, ids, n, logits_last, NULL));
    /* a NaN here would otherwise be sampled as token 0 ("!!!!") without a word */
    for (int v = 0; logits_last && v < s->m->cfg.vocab_size; v++)
        if (!isfinite(logits_last[v]))
            return arwkv__fail(ARWKV_ERR_NUMERIC, "%s: the logits at position %lld are not finite (NaN or Inf)", s->m->dir ? s->m->dir : "model",
                               (long long)arwkv_session_tokens(s) - 1);
    return ARWKV_OK;
}

ARWKV_API arwkv_result arwkv_session_reset(arwkv_session *s) {
    if (s->kv) {
        arwkv_kv_cache_reset(s->kv);
        return ARWKV_OK;
    }
    return arwkv_rnn_state_reset(s->state);
}

ARWKV_API int64_t arwkv_session_tokens(const arwkv_session *s) {
    return s->kv ? (int64_t)arwkv_kv_cache_len(s->kv) : arwkv_rnn_state_tokens(s->state);
}

ARWKV_API size_t arwkv_session_memory_bytes(const arwkv_session *s) {
    if (s->kv) { /* the positions in use, not the capacity reserved ahead */
        const arwkv_config *c = &s->m->cfg;
        return (size_t)arwkv_kv_cache_len(s->kv) * (size_t)c->num_layers * 2 * (size_t)c->num_kv_heads * (size_t)c->head_dim * sizeof(float);
    }
    return arwkv_rnn_state_bytes(s->state);
}

ARWKV_API int arwkv_session_is_recurrent(const arwkv_session *s) { return s->state != NULL; }

ARWKV_API arwkv_result arwkv_session_save(arwkv_session *s, const char *path) {
    if (!s->state)
        return arwkv__fail(ARWKV_ERR_UNSUPPORTED, "%s: a %s keeps a KV cache that grows with the conversation, not a state to save; "
                           "saving a conversation is what a student (an RNN) can do", path, arwkv_arch_name(s->m->cfg.arch));
    return arwkv_rnn_state_save(s->state, path);
}

ARWKV_API arwkv_result arwkv_session_load(arwkv_session *s, const char *path) {
    if (!s->state)
        return arwkv__fail(ARWKV_ERR_UNSUPPORTED, "%s: a %s keeps a KV cache, not a recurrent state, so it cannot load one; "
                           "load it with the student that saved it", path, arwkv_arch_name(s->m->cfg.arch));
    return arwkv_rnn_state_load(s->state, path);
}

/* NLL over hidden states [rows] whose targets are labels_host[rows] (-1: none): logits and
   cross-entropy in chunks on the backend. */
ARWKV_PRIVATE arwkv_result arwkv__nll_rows(arwkv_model *m, const float *hidden, const int32_t *labels_host, int pos0, int rows,
                                           float *logits, int32_t *labels, float *ce, float *ce_host, double *sum) {
    arwkv_backend *be = m->be;
    int V = m->cfg.vocab_size, C = m->cfg.hidden_size;
    for (int row = 0; row < rows; row += ARWKV__LOGIT_ROWS) {
        int k = rows - row < ARWKV__LOGIT_ROWS ? rows - row : ARWKV__LOGIT_ROWS;
        ARWKV__TRY(be->mem->upload(be, labels, labels_host + row, (size_t)k * sizeof(int32_t)));
        ARWKV__TRY(arwkv_model_logits(m, hidden + (size_t)row * C, k, logits));
        ARWKV__TRY(be->loss->logits_loss(be, logits, NULL, labels, k, V, ARWKV__MEASURE_TAU, ARWKV__MEASURE_NO_TERM /* KL */,
                                         ARWKV__MEASURE_TERM /* CE */, ARWKV__MEASURE_GRAD_SCALE, NULL, ce));
        ARWKV__TRY(be->mem->download(be, ce_host, ce, (size_t)k * sizeof(float)));
        for (int i = 0; i < k; i++) {
            if (labels_host[row + i] < 0) continue;
            if (!isfinite(ce_host[i])) /* the weights were checked at load: an activation overflowed */
                return arwkv__fail(ARWKV_ERR_NUMERIC, "%s: the logits at position %d are not finite (NaN or Inf)", m->dir ? m->dir : "model",
                                   pos0 + row + i);
            *sum += ce_host[i];
        }
    }
    return ARWKV_OK;
}

ARWKV_API arwkv_result arwkv_model_nll(arwkv_model *m, const int32_t *ids, int n, double *nll) {
    *nll = 0;
    if (n < 2) return arwkv__fail(ARWKV_ERR_INVALID_ARGUMENT, "need at least 2 tokens to measure a likelihood, got %d", n);
    arwkv_backend *be = m->be;
    int V = m->cfg.vocab_size;
    for (int i = 0; i < n; i++)
        if (ids[i] < 0 || ids[i] >= V) return arwkv__fail(ARWKV_ERR_INVALID_ARGUMENT, "token %d at position %d is outside the vocabulary", ids[i], i);
    int32_t *labels_host = (int32_t *)arwkv__malloc((size_t)n * sizeof(int32_t));
    float *ce_host = (float *)arwkv__malloc(ARWKV__LOGIT_ROWS * sizeof(float)), *logits = NULL, *ce = NULL;
    int32_t *labels = NULL;
    arwkv_result r = labels_host && ce_host ? ARWKV_OK : arwkv__fail(ARWKV_ERR_OUT_OF_MEMORY, "out of memory");
    if (r == ARWKV_OK) r = be->mem->alloc(be, (size_t)ARWKV__LOGIT_ROWS * V * sizeof(float), (void **)&logits);
    if (r == ARWKV_OK) r = be->mem->alloc(be, ARWKV__LOGIT_ROWS * sizeof(float), (void **)&ce);
    if (r == ARWKV_OK) r = be->mem->alloc(be, ARWKV__LOGIT_ROWS * sizeof(int32_t), (void **)&labels);
    for (int i = 0; labels_host && i < n; i++) labels_host[i] = i + 1 < n ? ids[i + 1] : -1;
    double sum = 0;
    if (r == ARWKV_OK && arwkv_arch_is_teacher(m->cfg.arch)) { /* the teacher reads the whole sequence at once */
        arwkv_teacher *t = NULL;
        const float *hidden;
        r = arwkv_teacher_create(m, &t);
        if (r == ARWKV_OK) r = arwkv_teacher_forward(t, ids, 1, n, NULL, NULL, &hidden);
        if (r == ARWKV_OK) r = arwkv__nll_rows(m, hidden, labels_host, 0, n, logits, labels, ce, ce_host, &sum);
        arwkv_teacher_free(t);
    } else if (r == ARWKV_OK) { /* a student reads it in pieces, carrying its state */
        arwkv_rnn *rnn = NULL;
        arwkv_rnn_state *st = NULL;
        r = arwkv_rnn_create(m, &rnn);
        if (r == ARWKV_OK) r = arwkv_rnn_state_create(m, &st);
        for (int done = 0; done < n && r == ARWKV_OK; done += 1024) {
            int T = n - done < 1024 ? n - done : 1024;
            const float *hidden;
            r = arwkv_rnn_forward(rnn, ids + done, 1, T, &st, 0, &hidden);
            if (r == ARWKV_OK) r = arwkv__nll_rows(m, hidden, labels_host + done, done, T, logits, labels, ce, ce_host, &sum);
        }
        arwkv_rnn_state_free(st);
        arwkv_rnn_free(rnn);
    }
    be->mem->free(be, logits), be->mem->free(be, ce), be->mem->free(be, labels);
    arwkv__free(labels_host), arwkv__free(ce_host);
    if (r == ARWKV_OK) *nll = sum / (n - 1);
    return r;
}

/* ---- Comparing a model with its reference ------------------------------------------------------------- */

/* The final hidden states of every position of ids[0..n) from a fresh state: the teacher reads all at
   once; a student in pieces of 1024, carrying its state, so *hidden holds the last piece only and
   the caller asks piece by piece (first = 0, 1024, ...). */
typedef struct arwkv__reader {
    arwkv_model *m;
    arwkv_teacher *t;
    arwkv_rnn *rnn;
    arwkv_rnn_state *st;
    const float *hidden;
    int first, rows; /* positions [first, first+rows) are in hidden */
} arwkv__reader;

ARWKV_PRIVATE void arwkv__reader_free(arwkv__reader *r) {
    arwkv_teacher_free(r->t);
    arwkv_rnn_state_free(r->st);
    arwkv_rnn_free(r->rnn);
    memset(r, 0, sizeof *r);
}

/* A Transformer teacher (a KV cache, read all at once) rather than a student (a recurrent state): the one
   place comparison and batched generation ask. */
ARWKV_PRIVATE int arwkv__is_transformer(const arwkv_model *m) { return arwkv_arch_is_teacher(m->cfg.arch); }

/* Make the hidden state of position pos available in r->hidden (row pos - r->first). */
ARWKV_PRIVATE arwkv_result arwkv__reader_seek(arwkv__reader *r, const int32_t *ids, int n, int pos) {
    if (r->hidden && pos >= r->first && pos < r->first + r->rows) return ARWKV_OK;
    if (arwkv__is_transformer(r->m)) {
        if (!r->t) ARWKV__TRY(arwkv_teacher_create(r->m, &r->t));
        ARWKV__TRY(arwkv_teacher_forward(r->t, ids, 1, n, NULL, NULL, &r->hidden));
        r->first = 0, r->rows = n;
        return ARWKV_OK;
    }
    if (!r->rnn) ARWKV__TRY(arwkv_rnn_create(r->m, &r->rnn));
    if (!r->st) ARWKV__TRY(arwkv_rnn_state_create(r->m, &r->st));
    int next = r->hidden ? r->first + r->rows : 0;
    if (pos != next) return arwkv__fail(ARWKV_ERR_INVALID_ARGUMENT, "compare: positions are read in order (%d after %d)", pos, next);
    r->first = next, r->rows = n - next < 1024 ? n - next : 1024;
    return arwkv_rnn_forward(r->rnn, ids + next, 1, r->rows, &r->st, 0, &r->hidden);
}

/* log-softmax normalizer and arg-max (lowest id on ties) of one row, in double */
ARWKV_PRIVATE double arwkv__row_lse(const float *x, int V, int *argmax) {
    int best = 0;
    for (int i = 1; i < V; i++)
        if (x[i] > x[best]) best = i;
    double z = 0;
    for (int i = 0; i < V; i++) z += exp((double)x[i] - x[best]);
    *argmax = best;
    return x[best] + log(z);
}

ARWKV_API arwkv_result arwkv_model_compare(arwkv_model *ref, arwkv_model *m, const int32_t *ids, const uint8_t *mask, int n,
                                           arwkv_compare_stats *acc) {
    if (n < 2) return arwkv__fail(ARWKV_ERR_INVALID_ARGUMENT, "compare: need at least 2 tokens, got %d", n);
    int V = m->cfg.vocab_size;
    if (ref && (ref->cfg.vocab_size != V || ref->be != m->be))
        return arwkv__fail(ARWKV_ERR_INVALID_ARGUMENT, "compare: the reference has a vocabulary of %d, the model %d (or another backend): "
                           "compare a student with the teacher it was made from", ref->cfg.vocab_size, V);
    for (int i = 0; i < n; i++)
        if (ids[i] < 0 || ids[i] >= V) return arwkv__fail(ARWKV_ERR_INVALID_ARGUMENT, "token %d at position %d is outside the vocabulary", ids[i], i);
    arwkv_backend *be = m->be;
    const int R = ARWKV__LOGIT_ROWS, C = m->cfg.hidden_size;
    arwkv__reader rm, rr;
    memset(&rm, 0, sizeof rm), memset(&rr, 0, sizeof rr);
    rm.m = m, rr.m = ref;
    float *dev = NULL, *dev_ref = NULL;
    float *host = (float *)arwkv__malloc((size_t)R * V * sizeof(float)), *host_ref = ref ? (float *)arwkv__malloc((size_t)R * V * sizeof(float)) : NULL;
    arwkv_result r = host && (host_ref || !ref) ? ARWKV_OK : arwkv__fail(ARWKV_ERR_OUT_OF_MEMORY, "compare: out of memory");
    if (r == ARWKV_OK) r = be->mem->alloc(be, (size_t)R * V * sizeof(float), (void **)&dev);
    if (r == ARWKV_OK && ref) r = be->mem->alloc(be, (size_t)R * V * sizeof(float), (void **)&dev_ref);
    /* rows of R positions whose logits live on the host at once; a row of the model's reader never
       straddles two of its pieces (1024 is a multiple of R) */
    for (int row = 0; row < n - 1 && r == ARWKV_OK; row += R) {
        int k = n - 1 - row < R ? n - 1 - row : R, any = 0;
        for (int i = 0; i < k; i++) any |= !mask || mask[row + i + 1];
        if (!any && arwkv__is_transformer(m) && (!ref || arwkv__is_transformer(ref))) continue; /* nothing to score */
        r = arwkv__reader_seek(&rm, ids, n, row);
        if (r == ARWKV_OK && ref) r = arwkv__reader_seek(&rr, ids, n, row);
        if (r == ARWKV_OK && !any) continue; /* a student still had to read these positions */
        if (r == ARWKV_OK) r = arwkv_model_logits(m, rm.hidden + (size_t)(row - rm.first) * C, k, dev);
        if (r == ARWKV_OK) r = be->mem->download(be, host, dev, (size_t)k * V * sizeof(float));
        if (r == ARWKV_OK && ref) r = arwkv_model_logits(ref, rr.hidden + (size_t)(row - rr.first) * ref->cfg.hidden_size, k, dev_ref);
        if (r == ARWKV_OK && ref) r = be->mem->download(be, host_ref, dev_ref, (size_t)k * V * sizeof(float));
        for (int i = 0; i < k && r == ARWKV_OK; i++) {
            int pos = row + i, y = ids[pos + 1], am, am_ref;
            if (mask && !mask[pos + 1]) continue;
            const float *x = host + (size_t)i * V;
            double lse = arwkv__row_lse(x, V, &am);
            if (!isfinite(lse)) r = arwkv__fail(ARWKV_ERR_NUMERIC, "%s: the logits at position %d are not finite (NaN or Inf)", m->dir ? m->dir : "model", pos);
            acc->tokens++;
            acc->nll += lse - x[y];
            if (!ref || r != ARWKV_OK) continue;
            const float *xr = host_ref + (size_t)i * V;
            double lse_ref = arwkv__row_lse(xr, V, &am_ref), kl = 0;
            if (!isfinite(lse_ref)) r = arwkv__fail(ARWKV_ERR_NUMERIC, "%s (the reference): the logits at position %d are not finite (NaN or Inf)",
                                                   ref->dir ? ref->dir : "model", pos);
            for (int v = 0; v < V; v++) { /* sum p_ref (log p_ref - log p) */
                double lp_ref = xr[v] - lse_ref;
                kl += exp(lp_ref) * (lp_ref - (x[v] - lse));
            }
            acc->ref_nll += lse_ref - xr[y];
            acc->kl += kl;
            acc->agree += am == am_ref;
        }
    }
    arwkv__reader_free(&rm), arwkv__reader_free(&rr);
    be->mem->free(be, dev), be->mem->free(be, dev_ref);
    arwkv__free(host), arwkv__free(host_ref);
    return r == ARWKV_OK ? r : arwkv__context(r, "comparing %d tokens", n);
}

/* ---- Batched generation ----------------------------------------------------------------------------- */

/* One decoding step of the teacher for B sequences, one new token each (ids[b]) appended to its own
   cache caches[b] at that cache's length: the layer of arwkv__teacher_layer, step for step (keep the
   two alike), with the projections and the MLP over all B rows at once and the attention per
   sequence. Leaves the final hidden states in t->xn [B, C]. */
ARWKV_PRIVATE arwkv_result arwkv__teacher_decode(arwkv_teacher *t, arwkv_kv_cache **caches, const int32_t *ids, int B) {
    arwkv_backend *be = t->be;
    const arwkv_config *c = &t->m->cfg;
    int C = c->hidden_size, H = c->num_heads, Hkv = c->num_kv_heads, D = c->head_dim, F = c->intermediate_size, KV = Hkv * D;
    int32_t pos_stack[64], *pos = B <= 64 ? pos_stack : (int32_t *)arwkv__malloc((size_t)B * sizeof(int32_t));
    if (!pos) return arwkv__fail(ARWKV_ERR_OUT_OF_MEMORY, "out of memory");
    arwkv_result r = arwkv__teacher_reserve(t, B);
    for (int b = 0; b < B && r == ARWKV_OK; b++) {
        if (caches[b]->len == INT_MAX) r = arwkv__fail(ARWKV_ERR_INVALID_ARGUMENT, "teacher step: position overflow");
        if (r == ARWKV_OK) r = arwkv__kv_cache_reserve(caches[b], caches[b]->len + 1);
        pos[b] = caches[b]->len;
    }
    if (r == ARWKV_OK) r = be->mem->upload(be, t->pos, pos, (size_t)B * sizeof(int32_t));
    if (pos != pos_stack) arwkv__free(pos);
    ARWKV__TRY(r);
    ARWKV__TRY(arwkv__teacher_upload_ids(t, ids, B));
    ARWKV__TRY(be->core->embed_forward(be, t->x, t->ids, B, t->m->embed->data, t->m->embed->dtype, C));
    for (int l = 0; l < c->num_layers; l++) {
        const arwkv_layer *L = &t->m->layers[l];
        ARWKV__TRY(be->core->rmsnorm_forward(be, t->xn, NULL, t->x, L->in_norm->data, L->in_norm->dtype, B, C, c->rms_norm_eps));
        ARWKV__TRY(arwkv__linear_forward(be, t->q, H * D, t->xn, L->q_w, L->q_b, B, 0));
        ARWKV__TRY(arwkv__linear_forward(be, t->k, KV, t->xn, L->k_w, L->k_b, B, 0));
        ARWKV__TRY(arwkv__linear_forward(be, t->v, KV, t->xn, L->v_w, L->v_b, B, 0));
        if (c->qk_norm) { /* Qwen3, as in arwkv__teacher_layer */
            ARWKV__TRY(be->core->rmsnorm_forward(be, t->q, NULL, t->q, L->q_norm->data, L->q_norm->dtype, B * H, D, c->rms_norm_eps));
            ARWKV__TRY(be->core->rmsnorm_forward(be, t->k, NULL, t->k, L->k_norm->data, L->k_norm->dtype, B * Hkv, D, c->rms_norm_eps));
        }
        ARWKV__TRY(be->qwen->rope_forward(be, t->q, B, H, D, (ptrdiff_t)H * D, t->pos, 0, c->rope_theta));
        ARWKV__TRY(be->qwen->rope_forward(be, t->k, B, Hkv, D, KV, t->pos, 0, c->rope_theta));
        for (int b = 0; b < B; b++) { /* the new key and value join the sequence's cache; its query reads the cache */
            arwkv_kv_cache *kc = caches[b];
            ARWKV__TRY(be->mem->copy(be, kc->k[l] + (ptrdiff_t)kc->len * KV, t->k + (ptrdiff_t)b * KV, (size_t)KV * sizeof(float)));
            ARWKV__TRY(be->mem->copy(be, kc->v[l] + (ptrdiff_t)kc->len * KV, t->v + (ptrdiff_t)b * KV, (size_t)KV * sizeof(float)));
            ARWKV__TRY(be->qwen->attention_forward(be, t->att + (ptrdiff_t)b * H * D, t->q + (ptrdiff_t)b * H * D, kc->k[l], kc->v[l], 1, 1, kc->len,
                                                   H, Hkv, D, 0));
        }
        ARWKV__TRY(arwkv__linear_forward(be, t->ao, C, t->att, L->o_w, L->o_b, B, 0));
        ARWKV__TRY(be->core->axpy(be, t->x, 1.0f, t->ao, (size_t)B * C));
        ARWKV__TRY(be->core->rmsnorm_forward(be, t->xn, NULL, t->x, L->post_norm->data, L->post_norm->dtype, B, C, c->rms_norm_eps));
        for (int r0 = 0; r0 < B; r0 += ARWKV__TEACHER_MLP_ROWS) {
            int rows = B - r0 < ARWKV__TEACHER_MLP_ROWS ? B - r0 : ARWKV__TEACHER_MLP_ROWS;
            const float *yn = t->xn + (ptrdiff_t)r0 * C;
            ARWKV__TRY(arwkv__linear_forward(be, t->gate, F, yn, L->mlp_gate, NULL, rows, 0));
            ARWKV__TRY(arwkv__linear_forward(be, t->up, F, yn, L->mlp_up, NULL, rows, 0));
            ARWKV__TRY(be->core->swiglu_forward(be, t->gate, t->gate, t->up, (size_t)rows * F));
            ARWKV__TRY(arwkv__linear_forward(be, t->x + (ptrdiff_t)r0 * C, C, t->gate, L->mlp_down, NULL, rows, 1));
        }
    }
    for (int b = 0; b < B; b++) caches[b]->len++;
    return be->core->rmsnorm_forward(be, t->xn, NULL, t->x, t->m->final_norm->data, t->m->final_norm->dtype, B, C, c->rms_norm_eps);
}

/* A request in flight: its own cache or state, sampler and repetition window. */
typedef struct arwkv__gen_slot {
    int req;                  /* index in the requests; -1: free */
    arwkv_kv_cache *kv;
    arwkv_rnn_state *state;
    arwkv_sampler sampler;
    int32_t next;             /* the token to read next */
} arwkv__gen_slot;

/* Take a token for request q from logits (host, modified): append it, and say if q is finished. */
ARWKV_PRIVATE int arwkv__gen_take(arwkv_gen_request *q, arwkv_sampler *smp, float *logits) {
    int from = q->n_out > ARWKV_GEN_RECENT ? q->n_out - ARWKV_GEN_RECENT : 0;
    int32_t id = arwkv_sample(smp, logits, q->out + from, q->n_out - from);
    q->out[q->n_out++] = id;
    for (int i = 0; i < q->n_stop; i++)
        if (q->stop[i] == id) q->stopped = 1;
    return q->stopped || q->n_out >= q->max_new;
}

ARWKV_API arwkv_result arwkv_generate_batch(arwkv_model *m, arwkv_gen_request *reqs, int n, int max_batch) {
    arwkv_backend *be = m->be;
    int V = m->cfg.vocab_size, C = m->cfg.hidden_size, teacher = arwkv__is_transformer(m);
    if (n < 0) return arwkv__fail(ARWKV_ERR_INVALID_ARGUMENT, "generate: %d requests", n);
    for (int i = 0; i < n; i++) {
        arwkv_gen_request *q = &reqs[i];
        q->n_out = 0, q->stopped = 0;
        if (q->n_prompt < 1 || !q->prompt || q->max_new < 0 || (q->max_new > 0 && !q->out) || q->n_stop < 0 || (q->n_stop > 0 && !q->stop))
            return arwkv__fail(ARWKV_ERR_INVALID_ARGUMENT, "generate: request %d needs a prompt of at least one token, max_new >= 0 and "
                               "an output buffer (prompt %d tokens, max_new %d)", i, q->n_prompt, q->max_new);
    }
    if (max_batch <= 0 || max_batch > n) max_batch = n;
    if (max_batch == 0) return ARWKV_OK;
    arwkv__gen_slot *slots = (arwkv__gen_slot *)arwkv__calloc((size_t)max_batch, sizeof *slots);
    int32_t *ids = (int32_t *)arwkv__malloc((size_t)max_batch * sizeof(int32_t));
    int *live = (int *)arwkv__malloc((size_t)max_batch * sizeof(int));
    void **per = (void **)arwkv__malloc((size_t)max_batch * sizeof(void *)); /* caches or states of the live slots */
    float *logits = (float *)arwkv__malloc((size_t)max_batch * V * sizeof(float)), *dlogits = NULL;
    arwkv_teacher *tw = NULL;
    arwkv_rnn *prefill = NULL, *decode = NULL; /* two workspaces: [1, prompt] and [batch, 1] */
    arwkv_result r = slots && ids && live && per && logits ? ARWKV_OK : arwkv__fail(ARWKV_ERR_OUT_OF_MEMORY, "generate: out of memory");
    for (int i = 0; i < max_batch && slots; i++) slots[i].req = -1;
    if (r == ARWKV_OK && teacher) r = arwkv_teacher_create(m, &tw);
    if (r == ARWKV_OK && !teacher) r = arwkv_rnn_create(m, &prefill);
    if (r == ARWKV_OK && !teacher) r = arwkv_rnn_create(m, &decode);
    for (int i = 0; i < max_batch && r == ARWKV_OK; i++)
        r = teacher ? arwkv_kv_cache_create(m, 0, &slots[i].kv) : arwkv_rnn_state_create(m, &slots[i].state);
    if (r == ARWKV_OK) r = be->mem->alloc(be, (size_t)ARWKV__LOGIT_ROWS * V * sizeof(float), (void **)&dlogits);
    int pending = 0;
    while (r == ARWKV_OK) {
        /* free slots take the next requests: read the prompt, take the first token */
        for (int i = 0; i < max_batch && r == ARWKV_OK; i++) {
            arwkv__gen_slot *sl = &slots[i];
            while (sl->req < 0 && pending < n && r == ARWKV_OK) {
                arwkv_gen_request *q = &reqs[pending];
                int qi = pending++;
                if (q->max_new == 0) continue;
                arwkv_sampler_free(&sl->sampler);
                r = arwkv_sampler_init(&sl->sampler, &q->sampling, V);
                if (r == ARWKV_OK && teacher) {
                    arwkv_kv_cache_reset(sl->kv);
                    r = arwkv_teacher_step(tw, sl->kv, q->prompt, q->n_prompt, logits, NULL);
                } else if (r == ARWKV_OK) {
                    r = arwkv_rnn_state_reset(sl->state);
                    if (r == ARWKV_OK) r = arwkv_rnn_step(prefill, sl->state, q->prompt, q->n_prompt, logits, NULL);
                }
                if (r != ARWKV_OK) r = arwkv__context(r, "generate: request %d", qi);
                else if (!arwkv__gen_take(q, &sl->sampler, logits)) sl->req = qi, sl->next = q->out[q->n_out - 1];
            }
        }
        int B = 0;
        for (int i = 0; i < max_batch; i++)
            if (slots[i].req >= 0) live[B] = i, ids[B] = slots[i].next, per[B] = teacher ? (void *)slots[i].kv : (void *)slots[i].state, B++;
        if (r != ARWKV_OK || B == 0) break;
        /* one step over every live sequence, then the logits of all of them to the host */
        const float *hidden = NULL;
        if (teacher) {
            r = arwkv__teacher_decode(tw, (arwkv_kv_cache **)per, ids, B);
            hidden = tw->xn;
        } else
            r = arwkv_rnn_forward(decode, ids, B, 1, (arwkv_rnn_state **)per, 0, &hidden);
        for (int r0 = 0; r0 < B && r == ARWKV_OK; r0 += ARWKV__LOGIT_ROWS) {
            int rows = B - r0 < ARWKV__LOGIT_ROWS ? B - r0 : ARWKV__LOGIT_ROWS;
            r = arwkv_model_logits(m, hidden + (size_t)r0 * C, rows, dlogits);
            if (r == ARWKV_OK) r = be->mem->download(be, logits + (size_t)r0 * V, dlogits, (size_t)rows * V * sizeof(float));
        }
        for (int b = 0; b < B && r == ARWKV_OK; b++) {
            arwkv__gen_slot *sl = &slots[live[b]];
            arwkv_gen_request *q = &reqs[sl->req];
            if (arwkv__gen_take(q, &sl->sampler, logits + (size_t)b * V)) sl->req = -1;
            else sl->next = q->out[q->n_out - 1];
        }
    }
    for (int i = 0; slots && i < max_batch; i++) {
        arwkv_kv_cache_free(slots[i].kv);
        arwkv_rnn_state_free(slots[i].state);
        arwkv_sampler_free(&slots[i].sampler);
    }
    be->mem->free(be, dlogits);
    arwkv_teacher_free(tw);
    arwkv_rnn_free(prefill), arwkv_rnn_free(decode);
    arwkv__free(slots), arwkv__free(ids), arwkv__free(live), arwkv__free(per), arwkv__free(logits);
    return r;
}

/* ---- Conversations as JSON lines ---------------------------------------------------------------------- */

/* The role and content members of message object e, checked: strings without NUL characters. */
ARWKV_PRIVATE arwkv_result arwkv__chat_message_members(const arwkv__json *j, uint32_t e, const char *where, uint32_t *role, uint32_t *content) {
    *role = arwkv__json_get(j, e, "role"), *content = arwkv__json_get(j, e, "content");
    if (arwkv__json_type(j, *role) != ARWKV__JSON_STRING || arwkv__json_type(j, *content) != ARWKV__JSON_STRING)
        return arwkv__fail(ARWKV_ERR_FORMAT, "%s needs string \"role\" and \"content\"", where);
    if (strlen(arwkv__json_str(j, *content)) != arwkv__json_str_len(j, *content) || strlen(arwkv__json_str(j, *role)) != arwkv__json_str_len(j, *role))
        return arwkv__fail(ARWKV_ERR_FORMAT, "%s contains a NUL character (\\u0000)", where);
    return ARWKV_OK;
}

/* Copy the (checked) role and content strings of a message to *str, NUL-terminated, and point m at them. */
ARWKV_PRIVATE void arwkv__chat_message_copy(const arwkv__json *j, uint32_t role, uint32_t content, arwkv_chat_message *m, char **str) {
    uint32_t f[2] = {role, content};
    for (int i = 0; i < 2; i++) {
        size_t l = arwkv__json_str_len(j, f[i]);
        memcpy(*str, arwkv__json_str(j, f[i]), l);
        (*str)[l] = 0;
        if (i == 0) m->role = *str;
        else m->content = *str;
        *str += l + 1;
    }
}

ARWKV_API arwkv_result arwkv_chat_parse(const char *json, size_t len, const char *name, arwkv_chat_message **msgs, int *n) {
    *msgs = NULL, *n = 0;
    arwkv__json j;
    ARWKV__TRY(arwkv__json_parse(&j, json, len, name));
    uint32_t jm = arwkv__json_get(&j, 0, "messages");
    arwkv_result r = ARWKV_OK;
    size_t bytes = 0, count = 0;
    if (arwkv__json_type(&j, jm) != ARWKV__JSON_ARRAY)
        r = arwkv__fail(ARWKV_ERR_FORMAT, "%s: expected {\"messages\": [{\"role\": ..., \"content\": ...}, ...]}", name);
    for (uint32_t e = r == ARWKV_OK ? arwkv__json_first(&j, jm) : ARWKV__JSON_NONE; e != ARWKV__JSON_NONE && r == ARWKV_OK; e = arwkv__json_next(&j, e), count++) {
        uint32_t role, content;
        char where[600];
        snprintf(where, sizeof where, "%s: message %zu", name, count);
        r = arwkv__chat_message_members(&j, e, where, &role, &content);
        if (r == ARWKV_OK) bytes += arwkv__json_str_len(&j, role) + arwkv__json_str_len(&j, content) + 2;
    }
    if (r == ARWKV_OK && count > INT_MAX / 2) r = arwkv__fail(ARWKV_ERR_FORMAT, "%s: %zu messages", name, count);
    char *block = r == ARWKV_OK ? (char *)arwkv__malloc(count * sizeof(arwkv_chat_message) + bytes + 1) : NULL;
    if (r == ARWKV_OK && !block) r = arwkv__fail(ARWKV_ERR_OUT_OF_MEMORY, "%s: out of memory", name);
    if (r == ARWKV_OK) {
        arwkv_chat_message *m = (arwkv_chat_message *)(void *)block;
        char *str = block + count * sizeof(arwkv_chat_message);
        size_t k = 0;
        for (uint32_t e = arwkv__json_first(&j, jm); e != ARWKV__JSON_NONE; e = arwkv__json_next(&j, e), k++)
            arwkv__chat_message_copy(&j, arwkv__json_get(&j, e, "role"), arwkv__json_get(&j, e, "content"), &m[k], &str);
        *msgs = m, *n = (int)count;
    }
    arwkv__json_free(&j);
    return r;
}

ARWKV_API arwkv_result arwkv_chat_parse_lines(const char *text, size_t len, const char *name, arwkv_chat_message **msgs, int *n) {
    *msgs = NULL, *n = 0;
    /* Pass 0 checks every line and counts the bytes; pass 1 copies into the one allocation. */
    size_t count = 0, bytes = 0;
    char *block = NULL;
    for (int pass = 0; pass < 2; pass++) {
        arwkv_chat_message *m = (arwkv_chat_message *)(void *)block;
        char *str = block ? block + count * sizeof(arwkv_chat_message) : NULL;
        size_t k = 0;
        int line_no = 0;
        for (size_t at = 0; at < len;) {
            const char *line = text + at, *nl = (const char *)memchr(line, '\n', len - at);
            size_t line_len = nl ? (size_t)(nl - line) : len - at;
            at += line_len + (nl ? 1 : 0);
            line_no++;
            size_t first = 0;
            while (first < line_len && (line[first] == ' ' || line[first] == '\t' || line[first] == '\r')) first++;
            if (first == line_len) continue;
            char where[600];
            snprintf(where, sizeof where, "%s: line %d", name, line_no);
            arwkv__json j;
            uint32_t f[2];
            arwkv_result r = arwkv__json_parse(&j, line, line_len, where);
            if (r != ARWKV_OK) {
                arwkv__free(block);
                return r;
            }
            r = arwkv__chat_message_members(&j, 0, where, &f[0], &f[1]);
            if (r == ARWKV_OK && pass == 0) bytes += arwkv__json_str_len(&j, f[0]) + arwkv__json_str_len(&j, f[1]) + 2;
            else if (r == ARWKV_OK) arwkv__chat_message_copy(&j, f[0], f[1], &m[k], &str);
            arwkv__json_free(&j);
            if (r != ARWKV_OK) {
                arwkv__free(block);
                return r;
            }
            if (pass == 0 && ++count > INT_MAX / 2) return arwkv__fail(ARWKV_ERR_FORMAT, "%s: more than %d messages", name, INT_MAX / 2);
            if (pass == 1) k++;
        }
        if (pass == 0 && !(block = (char *)arwkv__malloc(count * sizeof(arwkv_chat_message) + bytes + 1)))
            return arwkv__fail(ARWKV_ERR_OUT_OF_MEMORY, "%s: out of memory", name);
    }
    *msgs = (arwkv_chat_message *)(void *)block, *n = (int)count;
    return ARWKV_OK;
}

/* Length of the UTF-8 character at s[0..n) (1-4), or 0 if the bytes there are not one. */
ARWKV_PRIVATE int arwkv__utf8_len(const unsigned char *s, size_t n) {
    int len = s[0] < 0x80 ? 1 : (s[0] >> 5) == 6 ? 2 : (s[0] >> 4) == 14 ? 3 : (s[0] >> 3) == 30 ? 4 : 0;
    if (!len || (size_t)len > n) return 0;
    for (int i = 1; i < len; i++)
        if ((s[i] & 0xC0) != 0x80) return 0;
    uint32_t cp = len == 1 ? s[0] : len == 2 ? (s[0] & 0x1Fu) : len == 3 ? (s[0] & 0x0Fu) : (s[0] & 0x07u);
    for (int i = 1; i < len; i++) cp = cp << 6 | (s[i] & 0x3Fu);
    static const uint32_t least[5] = {0, 0, 0x80, 0x800, 0x10000}; /* no overlong forms, surrogates or > U+10FFFF */
    if (cp < least[len] || (cp >= 0xD800 && cp <= 0xDFFF) || cp > 0x10FFFF) return 0;
    return len;
}

ARWKV_API arwkv_result arwkv_chat_to_json(const arwkv_chat_message *msgs, int n, char **json) {
    *json = NULL;
    size_t cap = 64;
    for (int i = 0; i < n; i++) cap += 40 + 6 * (strlen(msgs[i].role) + strlen(msgs[i].content)); /* worst case: every byte \u00XX */
    char *out = (char *)arwkv__malloc(cap), *w = out;
    if (!out) return arwkv__fail(ARWKV_ERR_OUT_OF_MEMORY, "out of memory");
    w += sprintf(w, "{\"messages\": [");
    for (int i = 0; i < n; i++) {
        for (int f = 0; f < 2; f++) {
            w += sprintf(w, f ? ", \"content\": \"" : "%s{\"role\": \"", i ? ", " : "");
            const unsigned char *s = (const unsigned char *)(f ? msgs[i].content : msgs[i].role);
            for (size_t len = strlen((const char *)s); len > 0;) {
                int k = arwkv__utf8_len(s, len);
                if (!k) w += sprintf(w, "\xEF\xBF\xBD"), s++, len--; /* U+FFFD */
                else if (*s == '"' || *s == '\\') *w++ = '\\', *w++ = (char)*s++, len--;
                else if (*s == '\n') w += sprintf(w, "\\n"), s++, len--;
                else if (*s == '\t') w += sprintf(w, "\\t"), s++, len--;
                else if (*s < 0x20 || *s == 0x7F) w += sprintf(w, "\\u%04x", *s), s++, len--;
                else memcpy(w, s, (size_t)k), w += k, s += k, len -= (size_t)k;
            }
            *w++ = '"';
        }
        *w++ = '}';
    }
    w += sprintf(w, "]}");
    *json = out;
    return ARWKV_OK;
}

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
