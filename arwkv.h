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
/* The Qwen tokenizer (Qwen2, Qwen2.5, Qwen3): a Hugging Face tokenizer.json with a byte-level BPE
   model, the NFC normalizer, the Qwen pre-tokenizer (one regex, written here by hand over embedded
   Unicode tables) and added tokens such as <|im_start|>. Encoding gives the same ids as Hugging
   Face `tokenizers` (tokenizer.encode(text).ids) for every valid UTF-8 text; tests/test_tokenizer.c
   checks that on several megabytes of code and prose in many scripts.

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

/* Load a tokenizer.json, or the tokenizer.json inside a model directory. Anything this tokenizer
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

typedef struct arwkv_chat_message {
    const char *role;
    const char *content;
} arwkv_chat_message;

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

/* Byte length of the pre-token at the start of s[0..n), n > 0. */
ARWKV_PRIVATE size_t arwkv__pretoken(const uint8_t *bmp, const unsigned char *s, size_t n) {
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
    if (c0 == ARWKV__NUMBER) return l0;
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
    int32_t byte_id[256];       /* the token of each single byte */
    arwkv__added_token *added;  /* longest first */
    int n_added;
    uint8_t added_first[256];   /* bytes that start an added token */
    int nfc;                    /* the normalizer is NFC (else none) */
    uint8_t *bmp;               /* arwkv__bmp_props */
    size_t max_token_bytes;
};
enum { ARWKV__ID_PRESENT = 1, ARWKV__ID_ADDED = 2, ARWKV__ID_SPECIAL = 4 };

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
        if (!arwkv__tokens_push(out, t->byte_id[s[0]], 0)) w->failed = 1;
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
    for (size_t i = 0; i < n; i++) w->sym[i] = t->byte_id[s[i]];
    k = n <= 64 ? arwkv__bpe_short(t, w, n) : arwkv__bpe_long(t, w, n);
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
        size_t len = arwkv__pretoken(t->bmp, s + i, n - i);
        arwkv__encode_piece(t, w, s + i, len, out);
        i += len;
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

/* The Qwen2 pre-tokenizer regex, as tokenizer.json writes it (the only one implemented). */
#define ARWKV__QWEN_PATTERN                                                                             \
    "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|" \
    "\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+"

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

/* The parts of tokenizer.json other than the model: each must be what the Qwen tokenizers use. */
ARWKV_PRIVATE arwkv_result arwkv__tok_check_pipeline(const arwkv__json *j, const char *name, int *nfc) {
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

    uint32_t pre = arwkv__json_get(j, 0, "pre_tokenizer"), list = arwkv__json_get(j, pre, "pretokenizers");
    type = arwkv__json_get_str(j, pre, "type");
    if (!type || strcmp(type, "Sequence") != 0 || arwkv__json_count(j, list) != 2)
        return arwkv__fail(ARWKV_ERR_UNSUPPORTED,
                           "%s: pre_tokenizer.type \"%s\" is not supported (only Qwen's Sequence of Split and ByteLevel)", name,
                           type ? type : "?");
    uint32_t split = arwkv__json_first(j, list), bytes = arwkv__json_next(j, split);
    type = arwkv__json_get_str(j, split, "type");
    const char *pattern = arwkv__json_get_str(j, arwkv__json_get(j, split, "pattern"), "Regex");
    const char *behavior = arwkv__json_get_str(j, split, "behavior");
    if (!type || strcmp(type, "Split") != 0)
        return arwkv__fail(ARWKV_ERR_UNSUPPORTED, "%s: pre_tokenizer.pretokenizers[0].type \"%s\" is not supported (only Split)",
                           name, type ? type : "?");
    if (!pattern || strcmp(pattern, ARWKV__QWEN_PATTERN) != 0)
        return arwkv__fail(ARWKV_ERR_UNSUPPORTED,
                           "%s: pre_tokenizer.pretokenizers[0].pattern.Regex is not the Qwen2 regex, the only one implemented", name);
    if (!behavior || strcmp(behavior, "Isolated") != 0 || !arwkv__json_off(j, split, "invert"))
        return arwkv__fail(ARWKV_ERR_UNSUPPORTED,
                           "%s: pre_tokenizer.pretokenizers[0]: only behavior \"Isolated\" with invert false is supported", name);
    type = arwkv__json_get_str(j, bytes, "type");
    if (!type || strcmp(type, "ByteLevel") != 0)
        return arwkv__fail(ARWKV_ERR_UNSUPPORTED, "%s: pre_tokenizer.pretokenizers[1].type \"%s\" is not supported (only ByteLevel)",
                           name, type ? type : "?");
    if (!arwkv__json_off(j, bytes, "add_prefix_space") || !arwkv__json_off(j, bytes, "use_regex"))
        return arwkv__fail(ARWKV_ERR_UNSUPPORTED,
                           "%s: pre_tokenizer.pretokenizers[1]: ByteLevel with add_prefix_space or use_regex is not supported", name);

    type = arwkv__json_get_str(j, arwkv__json_get(j, 0, "decoder"), "type");
    if (!type || strcmp(type, "ByteLevel") != 0)
        return arwkv__fail(ARWKV_ERR_UNSUPPORTED, "%s: decoder.type \"%s\" is not supported (only ByteLevel)", name,
                           type ? type : "?");
    uint32_t post = arwkv__json_get(j, 0, "post_processor");
    if (post != ARWKV__JSON_NONE && arwkv__json_type(j, post) != ARWKV__JSON_NULL) {
        type = arwkv__json_get_str(j, post, "type");
        if (!type || strcmp(type, "ByteLevel") != 0) /* ByteLevel only adjusts offsets, which we do not report */
            return arwkv__fail(ARWKV_ERR_UNSUPPORTED,
                               "%s: post_processor.type \"%s\" is not supported (only ByteLevel or none: it would add tokens)", name,
                               type ? type : "?");
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
    ARWKV__TRY(arwkv__tok_check_pipeline(j, name, &t->nfc));
    uint32_t vocab = arwkv__json_get(j, model, "vocab"), merges = arwkv__json_get(j, model, "merges");
    uint32_t added = arwkv__json_get(j, 0, "added_tokens");
    if (added != ARWKV__JSON_NONE && arwkv__json_type(j, added) != ARWKV__JSON_ARRAY && arwkv__json_type(j, added) != ARWKV__JSON_NULL)
        return arwkv__fail(ARWKV_ERR_FORMAT, "%s: added_tokens must be an array", name);

    /* ids: 1 + the largest */
    int64_t n_ids = 0;
    size_t name_bytes = 0, added_bytes = 0;
    uint32_t i = 0;
    for (uint32_t c = arwkv__json_first(j, vocab); c != ARWKV__JSON_NONE; c = arwkv__json_next(j, c), i++) {
        int32_t id = arwkv__json_id(j, c);
        if (id < 0)
            return arwkv__fail(ARWKV_ERR_FORMAT, "%s: model.vocab[\"%.100s\"] is not a token id (a non-negative integer)", name,
                               arwkv__json_key(j, c));
        if (id >= n_ids) n_ids = (int64_t)id + 1;
        name_bytes += arwkv__json_key_len(j, c);
    }
    i = 0;
    for (uint32_t c = arwkv__json_first(j, added); c != ARWKV__JSON_NONE; c = arwkv__json_next(j, c), i++) {
        int32_t id = arwkv__json_id(j, arwkv__json_get(j, c, "id"));
        const char *content = arwkv__json_get_str(j, c, "content");
        if (id < 0) return arwkv__fail(ARWKV_ERR_FORMAT, "%s: added_tokens[%u].id is not a token id", name, i);
        if (!content || !*content) return arwkv__fail(ARWKV_ERR_FORMAT, "%s: added_tokens[%u].content must be a non-empty string", name, i);
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
        if (t->byte_id[b] < 0)
            return arwkv__fail(ARWKV_ERR_FORMAT,
                               "%s: model.vocab has no token for the byte 0x%02x (\"%.*s\"); a byte-level BPE needs all 256", name, b,
                               arwkv__utf8_encode(cp, spelling), spelling);
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

ARWKV_API arwkv_result arwkv_tokenizer_load(const char *path, arwkv_tokenizer **out) {
    *out = NULL;
    char *file = arwkv__is_dir(path) ? arwkv__path_join(path, "tokenizer.json") : arwkv__strdup(path);
    if (!file) return arwkv__fail(ARWKV_ERR_OUT_OF_MEMORY, "out of memory");
    char *text;
    size_t len;
    arwkv_result r = arwkv__read_file(file, &text, &len);
    if (r == ARWKV_OK) {
        r = arwkv_tokenizer_parse(text, len, file, out);
        arwkv__free(text);
    }
    arwkv__free(file);
    return r;
}

/* ---- Chat template ------------------------------------------------------------------------------
   One walk over the conversation produces the rendered text as a sequence of parts; rendering
   concatenates them, encoding encodes each on its own with its mask. */
enum { ARWKV__CHAT_MARKUP, ARWKV__CHAT_CONTENT, ARWKV__CHAT_ANSWER, ARWKV__CHAT_ANSWER_END };

typedef arwkv_result (*arwkv__chat_part_fn)(void *ctx, const char *text, int kind);

ARWKV_PRIVATE arwkv_result arwkv__chat_walk(const arwkv_chat_message *msgs, int n, int flags, arwkv__chat_part_fn part,
                                            void *ctx) {
    if (n < 0 || (n > 0 && !msgs)) return arwkv__fail(ARWKV_ERR_INVALID_ARGUMENT, "chat: no messages array");
    for (int i = 0; i < n; i++) {
        const char *role = msgs[i].role;
        if (!role || !msgs[i].content) return arwkv__fail(ARWKV_ERR_INVALID_ARGUMENT, "chat: messages[%d] has a NULL role or content", i);
        if (strcmp(role, "system") && strcmp(role, "user") && strcmp(role, "assistant") && strcmp(role, "tool"))
            return arwkv__fail(ARWKV_ERR_INVALID_ARGUMENT,
                               "chat: messages[%d].role \"%.40s\" is not one of system, user, assistant, tool", i, role);
    }
    if (n == 0 || strcmp(msgs[0].role, "system") != 0)
        ARWKV__TRY(part(ctx, "<|im_start|>system\n" ARWKV_CHAT_DEFAULT_SYSTEM "<|im_end|>\n", ARWKV__CHAT_MARKUP));
    for (int i = 0; i < n; i++) {
        const char *role = msgs[i].role;
        if (strcmp(role, "assistant") == 0) {
            ARWKV__TRY(part(ctx, "<|im_start|>assistant\n", ARWKV__CHAT_MARKUP));
            ARWKV__TRY(part(ctx, msgs[i].content, ARWKV__CHAT_ANSWER));
            ARWKV__TRY(part(ctx, "<|im_end|>", ARWKV__CHAT_ANSWER_END));
            ARWKV__TRY(part(ctx, "\n", ARWKV__CHAT_MARKUP));
        } else if (strcmp(role, "tool") == 0) { /* tool results: inside one user turn */
            if (i == 0 || strcmp(msgs[i - 1].role, "tool") != 0) ARWKV__TRY(part(ctx, "<|im_start|>user", ARWKV__CHAT_MARKUP));
            ARWKV__TRY(part(ctx, "\n<tool_response>\n", ARWKV__CHAT_MARKUP));
            ARWKV__TRY(part(ctx, msgs[i].content, ARWKV__CHAT_CONTENT));
            ARWKV__TRY(part(ctx, "\n</tool_response>", ARWKV__CHAT_MARKUP));
            if (i == n - 1 || strcmp(msgs[i + 1].role, "tool") != 0) ARWKV__TRY(part(ctx, "<|im_end|>\n", ARWKV__CHAT_MARKUP));
        } else {
            ARWKV__TRY(part(ctx, "<|im_start|>", ARWKV__CHAT_MARKUP));
            ARWKV__TRY(part(ctx, role, ARWKV__CHAT_MARKUP));
            ARWKV__TRY(part(ctx, "\n", ARWKV__CHAT_MARKUP));
            ARWKV__TRY(part(ctx, msgs[i].content, ARWKV__CHAT_CONTENT));
            ARWKV__TRY(part(ctx, "<|im_end|>\n", ARWKV__CHAT_MARKUP));
        }
    }
    if (flags & ARWKV_CHAT_GENERATION_PROMPT) ARWKV__TRY(part(ctx, "<|im_start|>assistant\n", ARWKV__CHAT_MARKUP));
    return ARWKV_OK;
}

typedef struct arwkv__chat_text {
    char *buf;
    size_t cap, len;
} arwkv__chat_text;

ARWKV_PRIVATE arwkv_result arwkv__chat_render_part(void *ctx, const char *text, int kind) {
    arwkv__chat_text *c = (arwkv__chat_text *)ctx;
    size_t n = strlen(text);
    (void)kind;
    if (c->len < c->cap) memcpy(c->buf + c->len, text, n < c->cap - c->len ? n : c->cap - c->len);
    c->len += n;
    return ARWKV_OK;
}

ARWKV_API arwkv_result arwkv_chat_render(const arwkv_chat_message *msgs, int n, int flags, char *buf, size_t cap,
                                         size_t *len) {
    arwkv__chat_text c;
    c.buf = buf;
    c.cap = buf ? cap : 0;
    c.len = 0;
    if (len) *len = 0;
    ARWKV__TRY(arwkv__chat_walk(msgs, n, flags, arwkv__chat_render_part, &c));
    if (c.cap > 0) buf[c.len < c.cap ? c.len : c.cap - 1] = 0;
    if (len) *len = c.len;
    return ARWKV_OK;
}

typedef struct arwkv__chat_ids {
    const arwkv_tokenizer *tok;
    int flags;
    arwkv_tokens *out;
} arwkv__chat_ids;

ARWKV_PRIVATE arwkv_result arwkv__chat_encode_part(void *ctx, const char *text, int kind) {
    arwkv__chat_ids *c = (arwkv__chat_ids *)ctx;
    size_t n0 = c->out->n;
    /* the template's markup is trusted: its <|im_start|> and <|im_end|> must become tokens */
    int flags = kind == ARWKV__CHAT_MARKUP || kind == ARWKV__CHAT_ANSWER_END ? ARWKV_TOKENIZE_SPECIAL : c->flags;
    ARWKV__TRY(arwkv_tokenizer_encode(c->tok, text, strlen(text), flags, c->out));
    if (kind == ARWKV__CHAT_ANSWER || kind == ARWKV__CHAT_ANSWER_END)
        for (size_t i = n0; i < c->out->n; i++) c->out->mask[i] = 1;
    return ARWKV_OK;
}

ARWKV_API arwkv_result arwkv_chat_encode(const arwkv_tokenizer *tok, const arwkv_chat_message *msgs, int n, int flags,
                                         arwkv_tokens *out) {
    if (!tok || !out) return arwkv__fail(ARWKV_ERR_INVALID_ARGUMENT, "arwkv_chat_encode: NULL argument");
    static const char *const markers[2] = {"<|im_start|>", "<|im_end|>"};
    for (int i = 0; i < 2; i++) {
        int32_t id = arwkv_tokenizer_token_id(tok, markers[i]);
        if (id < 0 || !(tok->id_flags[id] & ARWKV__ID_ADDED))
            return arwkv__fail(ARWKV_ERR_UNSUPPORTED, "arwkv_chat_encode: the tokenizer has no added token %s; ChatML needs it",
                               markers[i]);
    }
    arwkv__chat_ids c;
    c.tok = tok;
    c.flags = flags & ARWKV_TOKENIZE_SPECIAL;
    c.out = out;
    size_t n0 = out->n;
    arwkv_result r = arwkv__chat_walk(msgs, n, flags, arwkv__chat_encode_part, &c);
    if (r != ARWKV_OK) out->n = n0;
    return r;
}

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
