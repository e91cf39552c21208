/* arwkv-distill: the example trainer. Distills a Transformer teacher (Qwen2, Llama, Qwen3) into an
   ARWKV-7 or QRWKV6 student:
     stage 1  align each student time mix with its layer's attention output
     stage 2  match the teacher's next-token distribution (KL over the full vocabulary)
     stage 3  fine-tune on chat conversations (cross-entropy on assistant turns)
   Everything is in arwkv.h; this file parses flags, loads data, prints progress and saves. Stage 2
   may use a larger teacher than the student's own base (--teacher BIG --student SMALL) when both
   have the same vocabulary.

   Example:
     arwkv-distill --teacher models/qwen2-code-tiny --out out/s1 --stage 1 --data train.txt \
                   --eval-data eval.txt --seq-len 256 --batch 4 --steps 300 --lr 1e-3 */
#define _POSIX_C_SOURCE 200809L /* isatty, sigaction */
#define ARWKV_IMPLEMENTATION
#include "arwkv.h"
#include <limits.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#ifdef ARWKV_GPU
#include "arwkv_hip.h"
#endif

/* The signal that asked the run to stop (SIGINT, SIGTERM, SIGHUP): the loop saves, then exits with
   128 + its number, as a shell reports a process it killed, so that a script running stage 1 and
   then stage 2 does not carry on with a half-trained student. */
static volatile sig_atomic_t interrupted;
static void on_stop_signal(int sig) { interrupted = sig; }

static void usage(FILE *f) {
    fprintf(f,
            "usage: arwkv-distill --teacher DIR --out DIR --stage 1|2|3 --data PATH... [options]\n"
            "\n"
            "  --teacher DIR        Qwen2, Llama or Qwen3 teacher (Hugging Face directory or GGUF file); in stage 2\n"
            "                       any teacher with the student's vocabulary, e.g. a larger one\n"
            "  --out DIR            where the student and its checkpoints go\n"
            "  --stage N            1 align time mixes, 2 distill logits (KL), 3 chat fine-tuning\n"
            "  --data PATH...       training files: plain text, or JSON lines of {\"text\": ...} or\n"
            "                       {\"messages\": [{\"role\",\"content\"}, ...]} (several paths allowed)\n"
            "  --eval-data PATH...  held-out files for evaluation (default: none)\n"
            "  --student DIR        start from this student (e.g. the output of stage 1)\n"
            "  --init upstream|inherit   a new student's time mix (default upstream)\n"
            "  --arch arwkv7|qrwkv6 a new student's kind: RWKV-7 (default) or RWKV-6 (QRWKV6)\n"
            "  --no-gate            a new student without the output gate\n"
            "  --seq-len T          tokens per sequence (default 512)\n"
            "  --batch B            sequences per step (default 4)\n"
            "  --steps N            optimizer steps (default 100)\n"
            "  --lr LR              peak learning rate (default 1e-3)\n"
            "  --lr-final LR        final learning rate (default lr/10)\n"
            "  --warmup N           warm-up steps (default min(50, steps/10))\n"
            "  --schedule cosine|exponential|constant   (default cosine)\n"
            "  --freeze-mlp         stages 2-3: keep the MLPs frozen\n"
            "  --recompute          stages 2-3: keep only each student layer's input and recompute its\n"
            "                       activations in the backward (less memory, ~1/3 more student work)\n"
            "  --offload-optimizer  fp32 masters and AdamW moments in host memory, updated by the CPU\n"
            "  --stream-teacher     stages 1-2: the teacher's layers stay in host memory and are copied to\n"
            "                       the device one at a time, overlapped with compute (a teacher larger\n"
            "                       than the GPU); in stage 1 the student's MLPs stay there too\n"
            "  --temperature T      stage-2 KL temperature (default 1)\n"
            "  --ce-weight W        stage 2: add W x label cross-entropy (default 0)\n"
            "  --align l2|mse|cosine   stage-1 loss (default l2, upstream's)\n"
            "  --eval-every K       evaluate every K steps (default: at start and end only)\n"
            "  --eval-windows N     evaluation sequences (default 16)\n"
            "  --save-every K       checkpoint every K steps (default: at the end only)\n"
            "  --resume             continue from OUT/checkpoints/latest exactly\n"
            "  --override           with --resume: accept --lr, --schedule, --align... that differ from the checkpoint's\n"
            "  --seed S             data order and new student's init (default 1)\n"
            "  --threads N          CPU threads (default: every CPU it may use)\n"
            "  --log-every K        piped output: a progress line every K steps (default steps/50)\n"
            "  --summary-json FILE  write first/last loss, eval before/after, tokens, seconds\n"
            "                       (every run also writes OUT/log.csv: per-step losses and evaluations,\n"
            "                       for arwkv-plot)\n"
            "  --no-save            save nothing at the end (measurements)\n"
            "  --memory-limit SIZE  plan and run within SIZE bytes of backend memory (suffix K, M, G;\n"
            "                       default: the device's free memory, or the host's available memory)\n"
#ifdef ARWKV_GPU
            "  --gpu                run on the GPU\n"
#endif
    );
}

typedef struct args {
    const char *teacher, *out, *student, *summary, *data[256], *eval[256];
    int n_data, n_eval;
    int stage, seq_len, batch, steps, warmup, eval_every, eval_windows, save_every, resume, override, threads, gpu, no_gate, log_every;
    float lr, lr_final, temperature, ce_weight;
    int freeze_mlp, init_inherit, qrwkv6, offload, no_save, recompute, stream;
    arwkv_schedule schedule;
    arwkv_align_kind align;
    uint64_t seed;
    unsigned long long memory_limit; /* bytes, 0: none */
} args;

/* "512M", "1.5G", "1048576": bytes; 0 on anything else. */
static unsigned long long parse_size(const char *v) {
    char *end;
    double x = strtod(v, &end);
    double unit = 1;
    if (*end == 'K' || *end == 'k') unit = 1024.0, end++;
    else if (*end == 'M' || *end == 'm') unit = 1048576.0, end++;
    else if (*end == 'G' || *end == 'g') unit = 1073741824.0, end++;
    if (end == v || *end || !(x > 0) || x * unit > 1e19) return 0;
    return (unsigned long long)(x * unit);
}

static int parse(args *a, int argc, char **argv) {
    memset(a, 0, sizeof *a);
    a->seq_len = 512, a->batch = 4, a->steps = 100, a->lr = 1e-3f, a->lr_final = -1, a->warmup = -1, a->eval_windows = 16;
    a->temperature = 1, a->seed = 1, a->schedule = ARWKV_SCHEDULE_COSINE, a->align = ARWKV_ALIGN_L2;
#define NUMBER(parse)                                                    \
    do {                                                                 \
        if ((parse) != ARWKV_OK) {                                       \
            fprintf(stderr, "arwkv-distill: %s\n", arwkv_last_error()); \
            return 2;                                                    \
        }                                                                \
    } while (0)
    for (int i = 1; i < argc; i++) {
        const char *s = argv[i];
        int has = i + 1 < argc && strncmp(argv[i + 1], "--", 2) != 0;
#define OPT(name) (!strcmp(s, name) && has)
        if (OPT("--teacher")) a->teacher = argv[++i];
        else if (OPT("--out")) a->out = argv[++i];
        else if (OPT("--student")) a->student = argv[++i];
        else if (OPT("--summary-json")) a->summary = argv[++i];
        else if (OPT("--data") || OPT("--eval-data")) {
            int ev = !strcmp(s, "--eval-data");
            while (i + 1 < argc && strncmp(argv[i + 1], "--", 2) != 0) {
                if ((ev ? a->n_eval : a->n_data) == 256) {
                    fprintf(stderr, "arwkv-distill: at most 256 files per option (concatenate them, or use .jsonl)\n");
                    return 2;
                }
                if (ev) a->eval[a->n_eval++] = argv[++i];
                else a->data[a->n_data++] = argv[++i];
            }
        } else if (OPT("--stage")) NUMBER(arwkv_parse_int(s, argv[++i], 1, 3, &a->stage));
        else if (OPT("--seq-len")) NUMBER(arwkv_parse_int(s, argv[++i], 1, 1 << 20, &a->seq_len));
        else if (OPT("--batch")) NUMBER(arwkv_parse_int(s, argv[++i], 1, 1 << 16, &a->batch));
        else if (OPT("--steps")) NUMBER(arwkv_parse_int(s, argv[++i], 1, INT_MAX, &a->steps));
        else if (OPT("--lr")) NUMBER(arwkv_parse_float(s, argv[++i], 1e-12, 10, &a->lr));
        else if (OPT("--lr-final")) NUMBER(arwkv_parse_float(s, argv[++i], 0, 10, &a->lr_final));
        else if (OPT("--warmup")) NUMBER(arwkv_parse_int(s, argv[++i], 0, INT_MAX, &a->warmup));
        else if (OPT("--temperature")) NUMBER(arwkv_parse_float(s, argv[++i], 1e-3, 1e3, &a->temperature));
        else if (OPT("--ce-weight")) NUMBER(arwkv_parse_float(s, argv[++i], 0, 1e3, &a->ce_weight));
        else if (OPT("--eval-every")) NUMBER(arwkv_parse_int(s, argv[++i], 0, INT_MAX, &a->eval_every));
        else if (OPT("--eval-windows")) NUMBER(arwkv_parse_int(s, argv[++i], 1, INT_MAX, &a->eval_windows));
        else if (OPT("--save-every")) NUMBER(arwkv_parse_int(s, argv[++i], 0, INT_MAX, &a->save_every));
        else if (OPT("--log-every")) NUMBER(arwkv_parse_int(s, argv[++i], 0, INT_MAX, &a->log_every));
        else if (OPT("--threads")) NUMBER(arwkv_parse_int(s, argv[++i], 0, 4096, &a->threads));
        else if (OPT("--seed")) NUMBER(arwkv_parse_u64(s, argv[++i], &a->seed));
        else if (OPT("--memory-limit")) {
            const char *v = argv[++i];
            if (!(a->memory_limit = parse_size(v)))
                return fprintf(stderr, "arwkv-distill: --memory-limit takes a size such as 512M or 20G, not '%s'\n", v), 2;
        }
        else if (OPT("--init")) {
            const char *v = argv[++i];
            if (!strcmp(v, "inherit")) a->init_inherit = 1;
            else if (strcmp(v, "upstream")) return fprintf(stderr, "arwkv-distill: --init upstream|inherit, not '%s'\n", v), 2;
        } else if (OPT("--arch")) {
            const char *v = argv[++i];
            if (!strcmp(v, "qrwkv6")) a->qrwkv6 = 1;
            else if (strcmp(v, "arwkv7")) return fprintf(stderr, "arwkv-distill: --arch arwkv7|qrwkv6, not '%s'\n", v), 2;
        } else if (OPT("--schedule")) {
            const char *v = argv[++i];
            if (!strcmp(v, "cosine")) a->schedule = ARWKV_SCHEDULE_COSINE;
            else if (!strcmp(v, "exponential")) a->schedule = ARWKV_SCHEDULE_EXPONENTIAL;
            else if (!strcmp(v, "constant")) a->schedule = ARWKV_SCHEDULE_CONSTANT;
            else return fprintf(stderr, "arwkv-distill: --schedule cosine|exponential|constant, not '%s'\n", v), 2;
        } else if (OPT("--align")) {
            const char *v = argv[++i];
            if (!strcmp(v, "l2")) a->align = ARWKV_ALIGN_L2;
            else if (!strcmp(v, "mse")) a->align = ARWKV_ALIGN_MSE;
            else if (!strcmp(v, "cosine")) a->align = ARWKV_ALIGN_COSINE;
            else return fprintf(stderr, "arwkv-distill: --align l2|mse|cosine, not '%s'\n", v), 2;
        } else if (!strcmp(s, "--freeze-mlp")) a->freeze_mlp = 1;
        else if (!strcmp(s, "--offload-optimizer")) a->offload = 1;
        else if (!strcmp(s, "--recompute")) a->recompute = 1;
        else if (!strcmp(s, "--stream-teacher")) a->stream = 1;
        else if (!strcmp(s, "--no-save")) a->no_save = 1;
        else if (!strcmp(s, "--no-gate")) a->no_gate = 1;
        else if (!strcmp(s, "--resume")) a->resume = 1;
        else if (!strcmp(s, "--override")) a->override = 1;
        else if (!strcmp(s, "--gpu")) a->gpu = 1;
        else if (!strcmp(s, "-h") || !strcmp(s, "--help")) return usage(stdout), 1;
        else return fprintf(stderr, "arwkv-distill: unknown option or missing value: '%s' (see --help)\n", s), 2;
#undef OPT
#undef NUMBER
    }
    if (!a->out || a->stage < 1 || a->stage > 3 || a->n_data == 0 || (a->stage < 3 && !a->teacher) || (a->stage == 3 && !a->teacher && !a->student)) {
        fprintf(stderr, "arwkv-distill: need --out, --stage 1|2|3, --data, and --teacher (stages 1-2) or --student (stage 3)\n");
        return 2;
    }
    if (a->seq_len < 1 || a->batch < 1 || a->steps < 1 || !(a->lr > 0)) {
        fprintf(stderr, "arwkv-distill: --seq-len, --batch, --steps and --lr must be positive\n");
        return 2;
    }
    if (a->stream && (a->stage == 3 || (a->stage == 1 && a->n_eval && a->gpu))) {
        fprintf(stderr, "arwkv-distill: --stream-teacher %s\n", a->stage == 3 ? "streams a teacher's layers: stage 3 has no teacher"
                        : "keeps the stage-1 student's MLPs in host memory, where a GPU cannot run the student: drop --eval-data "
                          "and evaluate the saved student with arwkv-eval");
        return 2;
    }
    if (a->lr_final < 0) a->lr_final = a->lr / 10;
    if (a->warmup < 0) a->warmup = a->steps / 10 < 50 ? a->steps / 10 : 50;
    if (a->log_every <= 0) a->log_every = a->steps / 50 > 1 ? a->steps / 50 : 1;
    return 0;
}

static void fmt_time(double s, char *buf, size_t n) {
    if (s < 0 || s > 1e7) snprintf(buf, n, "--");
    else if (s < 60) snprintf(buf, n, "%.0fs", s);
    else if (s < 3600) snprintf(buf, n, "%dm%02ds", (int)s / 60, (int)s % 60);
    else snprintf(buf, n, "%dh%02dm", (int)s / 3600, ((int)s % 3600) / 60);
}

static void print_eval(const char *when, const arwkv_eval_stats *e, int has_teacher) {
    if (has_teacher)
        printf("eval %-6s student ppl %9.3f  teacher ppl %7.3f  KL %.4f  (%lld tokens)\n", when, exp(e->student_nll), exp(e->teacher_nll),
               e->kl, (long long)e->tokens);
    else
        printf("eval %-6s student ppl %9.3f  (%lld tokens)\n", when, exp(e->student_nll), (long long)e->tokens);
    fflush(stdout);
}

/* Stage 2 with a teacher other than the student's base compares their distributions token by token,
   which means nothing unless id i is the same token in both: the same number of ids, and each id
   the same bytes and the same special status. */
static arwkv_result same_vocabulary(const arwkv_tokenizer *t, const char *tdir, const arwkv_tokenizer *s, const char *sdir) {
    int32_t n = arwkv_tokenizer_vocab_size(t);
    if (n != arwkv_tokenizer_vocab_size(s)) {
        fprintf(stderr, "arwkv-distill: the teacher %s has a tokenizer of %d ids, the student %s one of %d: distillation needs the same vocabulary\n",
                tdir, (int)n, sdir, (int)arwkv_tokenizer_vocab_size(s));
        return ARWKV_ERR_SHAPE;
    }
    for (int32_t id = 0; id < n; id++) {
        size_t lt = 0, ls = 0;
        const char *bt = arwkv_tokenizer_token_bytes(t, id, &lt), *bs = arwkv_tokenizer_token_bytes(s, id, &ls);
        if ((bt == NULL) != (bs == NULL) || lt != ls || (lt && memcmp(bt, bs, lt) != 0) ||
            arwkv_tokenizer_is_special(t, id) != arwkv_tokenizer_is_special(s, id)) {
            fprintf(stderr, "arwkv-distill: the teacher %s and the student %s have different vocabularies: token %d is \"%.*s\" in one and "
                    "\"%.*s\" in the other\n", tdir, sdir, (int)id, bt ? (int)lt : 0, bt ? bt : "", bs ? (int)ls : 0, bs ? bs : "");
            return ARWKV_ERR_SHAPE;
        }
    }
    return ARWKV_OK;
}

/* ---- OUT/log.csv: one row per step and per evaluation, for arwkv-plot -------------------------------
   Columns: stage,step,kind,loss,lr,grad_norm,tokens,student_ppl,teacher_ppl,kl
   kind "train" fills loss..tokens (tokens: trained so far in this stage, across resumes); kind "eval"
   fills the held-out columns (teacher_ppl and kl empty without a teacher). A row is flushed as soon
   as it is written. A resumed run first drops the rows after its checkpoint's step (the steps it is
   about to redo), so the log of an interrupted and resumed run equals the log of one whole run. */
#define LOG_HEADER "stage,step,kind,loss,lr,grad_norm,tokens,student_ppl,teacher_ppl,kl\n"

static FILE *log_open(const char *out_dir, int resume_step, long long *tokens) {
    char path[4096], tmp[4200];
    snprintf(path, sizeof path, "%s/log.csv", out_dir);
    *tokens = 0;
    if (resume_step >= 0) { /* keep the header and the rows up to the checkpoint, through a temporary file */
        FILE *in = fopen(path, "r");
        snprintf(tmp, sizeof tmp, "%s.tmp", path);
        FILE *keep = in ? fopen(tmp, "w") : NULL;
        if (in && keep) {
            char line[1024];
            fputs(LOG_HEADER, keep);
            while (fgets(line, sizeof line, in)) {
                int stage, step;
                char kind[16];
                long long tok = 0;
                if (sscanf(line, "%d,%d,%15[a-z]", &stage, &step, kind) != 3 || step > resume_step) continue;
                if (!strcmp(kind, "train") && sscanf(line, "%*d,%*d,%*[a-z],%*[^,],%*[^,],%*[^,],%lld", &tok) == 1) *tokens = tok;
                fputs(line, keep);
            }
            fclose(in);
            if (fclose(keep) == 0 && rename(tmp, path) == 0) return fopen(path, "a");
        } else if (in) fclose(in);
    }
    FILE *f = fopen(path, "w");
    if (f) fputs(LOG_HEADER, f), fflush(f);
    return f;
}

static void log_train(FILE *f, int stage, const arwkv_step_stats *st, long long tokens) {
    if (!f) return;
    fprintf(f, "%d,%d,train,%.6g,%.6g,%.6g,%lld,,,\n", stage, st->step, st->loss, st->lr, st->grad_norm, tokens);
    fflush(f);
}

static void log_eval(FILE *f, int stage, int step, const arwkv_eval_stats *e, int has_teacher) {
    if (!f) return;
    if (has_teacher) fprintf(f, "%d,%d,eval,,,,,%.6g,%.6g,%.6g\n", stage, step, exp(e->student_nll), exp(e->teacher_nll), e->kl);
    else fprintf(f, "%d,%d,eval,,,,,%.6g,,\n", stage, step, exp(e->student_nll));
    fflush(f);
}

/* One line per item of the memory plan, then the total against what is available. */
static void print_plan(const arwkv_memory_plan *p, int stage, int batch, int seq_len, const arwkv_backend *be) {
    printf("memory plan: stage %d, %d x %d tokens, %s\n", stage, batch, seq_len, arwkv_backend_name(be));
    for (int i = 0; i < p->n_items; i++) printf("  %-26s %10.1f MiB\n", p->items[i].name, p->items[i].bytes / 1048576.0);
    if (p->host_total && be->on_gpu) printf("  %-26s %10.1f MiB on the host (of %.1f MiB available), %.1f MiB on the device\n", "total",
                                            p->host_total / 1048576.0, p->host_available / 1048576.0, p->total / 1048576.0);
    if (p->available == UINT64_MAX) printf("  %-26s %10.1f MiB (available memory unknown: not checked)\n", "needed", p->need / 1048576.0);
    else printf("  %-26s %10.1f MiB of %.1f MiB (%s)\n", "needed", p->need / 1048576.0, p->available / 1048576.0, p->available_from);
    if (p->mapped) printf("  %-26s %10.1f MiB (read through the page cache, not counted)\n", "mapped from disk", p->mapped / 1048576.0);
    fflush(stdout);
}

static arwkv_result load_files(arwkv_dataset *d, const arwkv_tokenizer *tok, const char **paths, int n, int32_t eos) {
    arwkv_dataset_init(d);
    arwkv_result r = ARWKV_OK;
    for (int i = 0; i < n && r == ARWKV_OK; i++) r = arwkv_dataset_add_file(d, tok, paths[i], eos);
    return r;
}

int main(int argc, char **argv) {
    args a;
    int pr = parse(&a, argc, argv);
    if (pr) return pr == 1 ? 0 : pr;
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_stop_signal;
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGHUP, &sa, NULL); /* the terminal went away: save as for Ctrl-C */
    sa.sa_handler = SIG_IGN;
    sigaction(SIGPIPE, &sa, NULL); /* a closed stdout (| head) only loses progress lines, not the run */
    int tty = isatty(1);

    arwkv_backend *be = NULL;
    arwkv_model *teacher = NULL, *student = NULL;
    arwkv_tokenizer *tok = NULL, *student_tok = NULL;
    arwkv_trainer *tr = NULL;
    arwkv_out_dir *od = NULL;
    const char *inputs[2] = {a.teacher, a.student};
    arwkv_dataset train, eval;
    arwkv_dataset_init(&train);
    arwkv_dataset_init(&eval);
    char *ckpt = NULL;
    int status = 1;
    double t_start = arwkv_seconds(), t0, t_train, loss_avg = 0;
    arwkv_result r;
    /* everything the cleanup at `done` may see is declared before the first jump to it (C++ builds) */
    const char *tok_dir = a.teacher ? a.teacher : a.student;
    int32_t eos = -1;
    arwkv_train_options o;
    arwkv_student_options so;
    arwkv_memory_plan plan;
    arwkv_memory_use mem_use;
    int64_t n_train = 0, tokens = 0;
    arwkv_eval_stats ev_before, ev_after;
    memset(&ev_before, 0, sizeof ev_before);
    memset(&ev_after, 0, sizeof ev_after);
    int has_eval = a.n_eval > 0, start_step = 0, done_here = 0, checkpoint_failed = 0;
    float first_loss = NAN, last_loss = NAN;
    double secs;
    FILE *log = NULL;
    long long log_tokens = 0;
#ifdef ARWKV_GPU
    r = a.gpu ? arwkv_backend_gpu(0, &be) : arwkv_backend_cpu(a.threads, &be);
#else
    if (a.gpu) {
        fprintf(stderr, "arwkv-distill: this build has no GPU support (build it with make gpu)\n");
        return 2;
    }
    r = arwkv_backend_cpu(a.threads, &be);
#endif
#define STEP(call, what)                                                        \
    do {                                                                        \
        if (r == ARWKV_OK && (r = (call)) != ARWKV_OK) {                        \
            fprintf(stderr, "arwkv-distill: %s: %s\n", what, arwkv_last_error()); \
            goto done;                                                          \
        }                                                                       \
    } while (0)
    if (r != ARWKV_OK) {
        fprintf(stderr, "arwkv-distill: backend: %s\n", arwkv_last_error());
        goto done;
    }
    /* --out is checked (writable, not a model we read, not in use) and locked before any work */
    STEP(arwkv_out_dir_open(a.out, inputs, 2, &od), "--out");
    if (*arwkv_out_dir_note(od)) printf("%s\n", arwkv_out_dir_note(od));
    arwkv_student_options_default(&so);
    so.init = a.init_inherit ? ARWKV_INIT_INHERIT : ARWKV_INIT_UPSTREAM;
    so.gate = !a.no_gate;
    so.seed = a.seed;
    so.arch = a.qrwkv6 ? ARWKV_ARCH_QRWKV6 : ARWKV_ARCH_ARWKV7;
    so.share_teacher = 1; /* the teacher outlives the student here: no second copy of its MLPs and embeddings */
    arwkv_train_options_default(&o, a.stage);
    o.seq_len = a.seq_len, o.batch = a.batch, o.steps = a.steps, o.lr = a.lr, o.lr_final = a.lr_final, o.warmup_steps = a.warmup;
    o.schedule = a.schedule, o.align = a.align, o.temperature = a.temperature, o.ce_weight = a.ce_weight, o.freeze_mlp = a.freeze_mlp;
    o.seed = a.seed;
    o.offload_optimizer = a.offload;
    o.recompute = a.recompute;
    o.stream_teacher = a.stream;
    o.resume_with_new_options = a.override;
    if (a.resume) STEP(arwkv_checkpoint_latest(a.out, &ckpt), "finding the checkpoint to resume");
    /* the memory plan, before anything is allocated: refuse now rather than run out mid-run */
    if (a.memory_limit) arwkv_backend_set_memory_limit(be, a.memory_limit);
    STEP(arwkv_memory_plan_training(be, a.stage == 3 && !a.teacher ? NULL : a.teacher, ckpt ? ckpt : a.student, &so, &o,
                                    a.n_eval ? a.seq_len : 0, &plan),
         "planning memory");
    print_plan(&plan, a.stage, a.batch, a.seq_len, be);
    STEP(arwkv_memory_plan_check(&plan), "memory");
    if (a.teacher) STEP(arwkv_model_load_ex(a.teacher, be, a.stream ? ARWKV_LOAD_HOST_LAYERS : 0, &teacher), "loading the teacher");
    STEP(arwkv_tokenizer_load(tok_dir, &tok), "loading the tokenizer");
    if (ckpt) {
        STEP(arwkv_model_load_ex(ckpt, be, a.stage == 1 && a.stream ? ARWKV_LOAD_HOST_LAYERS : 0, &student), "loading the checkpoint");
        printf("resuming from %s\n", ckpt);
    } else if (a.student) {
        STEP(arwkv_model_load(a.student, be, &student), "loading the student");
        /* the student's own tokenizer, when it has one, must be the teacher's (ids read as the same tokens) */
        if (r == ARWKV_OK && a.teacher && arwkv_tokenizer_load(a.student, &student_tok) == ARWKV_OK &&
            (r = same_vocabulary(tok, a.teacher, student_tok, a.student)) != ARWKV_OK)
            goto done;
        arwkv_clear_error();
    } else {
        STEP(arwkv_student_create(teacher, &so, &student), "creating the student");
    }
    eos = arwkv_tokenizer_token_id(tok, "<|endoftext|>");
    t0 = arwkv_seconds();
    STEP(load_files(&train, tok, a.data, a.n_data, eos), "reading --data");
    STEP(arwkv_dataset_pack(&train, a.seq_len, a.seed), "packing --data");
    if (a.n_eval) {
        STEP(load_files(&eval, tok, a.eval, a.n_eval, eos), "reading --eval-data");
        STEP(arwkv_dataset_pack(&eval, a.seq_len, a.seed), "packing --eval-data");
    }
    printf("data: %zu training tokens (%zu sequences of %d) in %d file(s), %zu held-out tokens; tokenized in %.1f s\n", train.n_tokens,
           train.n_seqs, a.seq_len, a.n_data, eval.n_tokens, arwkv_seconds() - t0);
    if (train.n_skipped)
        printf("data: %zu sequences without any target token (inside user turns longer than --seq-len) are skipped\n", train.n_skipped);

    STEP(arwkv_trainer_create(a.stage == 3 && !teacher ? NULL : teacher, student, &o, &train, &tr), "setting up training");
    if (ckpt) STEP(arwkv_trainer_restore(tr, ckpt), "restoring the checkpoint");
    for (int i = 0; i < student->n_params; i++) n_train += student->params[i].trainable ? student->params[i].numel : 0;
    printf("stage %d: %s student, %lld of %lld parameters trained, %d steps of %d x %d tokens, lr %g -> %g, %s\n", a.stage,
           arwkv_arch_name(student->cfg.arch), (long long)n_train, (long long)arwkv_model_numel(student), a.steps, a.batch, a.seq_len,
           (double)a.lr, (double)a.lr_final, arwkv_backend_name(be));
    fflush(stdout);
    mkdir(a.out, 0777); /* may exist; a failure shows when the log or a checkpoint cannot be written */
    log = log_open(a.out, ckpt ? arwkv_trainer_steps_done(tr) : -1, &log_tokens);
    if (!log) fprintf(stderr, "arwkv-distill: cannot write %s/log.csv (training goes on without it)\n", a.out);

    if (has_eval && !ckpt) {
        STEP(arwkv_trainer_evaluate(tr, &eval, a.eval_windows, &ev_before), "evaluating");
        print_eval("before", &ev_before, teacher != NULL && a.stage < 3);
        log_eval(log, a.stage, 0, &ev_before, teacher != NULL && a.stage < 3);
    }
    t_train = arwkv_seconds();
    start_step = arwkv_trainer_steps_done(tr);
    while (arwkv_trainer_steps_done(tr) < a.steps && !interrupted) {
        arwkv_step_stats st;
        r = arwkv_trainer_step(tr, &st);
        if (r != ARWKV_OK) {
            fprintf(stderr, "%sarwkv-distill: %s\n", tty ? "\n" : "", arwkv_last_error());
            if (r == ARWKV_ERR_NUMERIC) {
                char *good = NULL;
                if (arwkv_checkpoint_latest(a.out, &good) == ARWKV_OK) fprintf(stderr, "the last good checkpoint is %s\n", good);
                else fprintf(stderr, "no checkpoint was written before this step\n");
                arwkv_free(good);
            }
            goto done;
        }
        if (isnan(first_loss)) first_loss = st.loss;
        last_loss = st.loss;
        tokens += st.tokens;
        log_tokens += st.tokens;
        log_train(log, a.stage, &st, log_tokens);
        done_here++;
        loss_avg = done_here == 1 ? st.loss : 0.9 * loss_avg + 0.1 * st.loss;
        double el = arwkv_seconds() - t_train, eta = el / done_here * (a.steps - st.step);
        char els[32], etas[32];
        fmt_time(el, els, sizeof els);
        fmt_time(eta, etas, sizeof etas);
        if (tty || st.step % a.log_every == 0 || st.step == a.steps || st.step == start_step + 1) {
            printf("%sstep %*d/%d  loss %.4f (avg %.4f)  lr %.2e  |g| %.3f  %6.0f tok/s  %s elapsed  ETA %s%s", tty ? "\r\033[K" : "",
                   (int)floor(log10(a.steps)) + 1, st.step, a.steps, st.loss, loss_avg, st.lr, st.grad_norm, tokens / el, els, etas,
                   tty ? "" : "\n");
            fflush(stdout);
        }
        if (a.eval_every > 0 && st.step % a.eval_every == 0 && st.step < a.steps && has_eval) {
            arwkv_eval_stats e;
            if (tty) printf("\n");
            STEP(arwkv_trainer_evaluate(tr, &eval, a.eval_windows, &e), "evaluating");
            char when[16];
            snprintf(when, sizeof when, "@%d", st.step);
            print_eval(when, &e, teacher != NULL && a.stage < 3);
            log_eval(log, a.stage, st.step, &e, teacher != NULL && a.stage < 3);
        }
        if (a.save_every > 0 && st.step % a.save_every == 0 && st.step < a.steps && arwkv_trainer_save(tr, a.out, tok_dir) != ARWKV_OK)
            /* a full disk need not cost the run: the next save point tries again */
            fprintf(stderr, "%sarwkv-distill: saving a checkpoint at step %d failed, training goes on and the next save tries again: %s\n",
                    tty ? "\n" : "", st.step, arwkv_last_error());
    }
    if (tty) printf("\n");
    if (interrupted) printf("interrupted at step %d: saving a checkpoint (continue with --resume)\n", arwkv_trainer_steps_done(tr));
    if (!a.no_save && arwkv_trainer_save(tr, a.out, tok_dir) != ARWKV_OK) { /* the student itself may still fit: try it */
        fprintf(stderr, "arwkv-distill: saving the checkpoint: %s\n", arwkv_last_error());
        checkpoint_failed = 1;
        if (interrupted) goto done;
    }
    if (!interrupted) {
        if (!a.no_save) STEP(arwkv_model_save(student, a.out, ARWKV_DTYPE_UNKNOWN, 0, tok_dir), "saving the student");
        if (!a.no_save) printf("student saved to %s\n", a.out);
        if (has_eval) {
            STEP(arwkv_trainer_evaluate(tr, &eval, a.eval_windows, &ev_after), "evaluating");
            print_eval("after", &ev_after, teacher != NULL && a.stage < 3);
            log_eval(log, a.stage, arwkv_trainer_steps_done(tr), &ev_after, teacher != NULL && a.stage < 3);
        }
    }
    secs = arwkv_seconds() - t_start;
    printf("%d steps, %lld tokens, %.1f s (%.0f tokens/s of training)\n", done_here, (long long)tokens, secs,
           tokens / (arwkv_seconds() - t_train));
    arwkv_backend_memory(be, &mem_use);
    printf("memory: peak %.1f MiB allocated (planned %.1f MiB)\n", mem_use.peak / 1048576.0, plan.total / 1048576.0);
    if (a.summary) {
        FILE *f = fopen(a.summary, "w");
        if (!f) fprintf(stderr, "arwkv-distill: cannot write %s\n", a.summary);
        else {
            fprintf(f, "{\n  \"stage\": %d,\n  \"steps\": %d,\n  \"first_loss\": %.6f,\n  \"last_loss\": %.6f,\n", a.stage,
                    arwkv_trainer_steps_done(tr), first_loss, last_loss);
            if (has_eval) {
                fprintf(f, "  \"eval_before\": {\"student_ppl\": %.6f, \"teacher_ppl\": %.6f, \"kl\": %.6f, \"tokens\": %lld},\n",
                        exp(ev_before.student_nll), exp(ev_before.teacher_nll), ev_before.kl, (long long)ev_before.tokens);
                fprintf(f, "  \"eval_after\": {\"student_ppl\": %.6f, \"teacher_ppl\": %.6f, \"kl\": %.6f, \"tokens\": %lld},\n",
                        exp(ev_after.student_nll), exp(ev_after.teacher_nll), ev_after.kl, (long long)ev_after.tokens);
            }
            fprintf(f, "  \"tokens\": %lld,\n  \"seconds\": %.3f,\n  \"interrupted\": %s\n}\n", (long long)tokens, secs, interrupted ? "true" : "false");
            fclose(f);
        }
    }
    status = checkpoint_failed ? 1 : interrupted ? 128 + interrupted : 0;
done:
#undef STEP
    arwkv_out_dir_close(od);
    if (log) fclose(log);
    arwkv_free(ckpt);
    arwkv_trainer_free(tr);
    arwkv_dataset_free(&train);
    arwkv_dataset_free(&eval);
    arwkv_tokenizer_free(tok);
    arwkv_tokenizer_free(student_tok);
    arwkv_model_free(student);
    arwkv_model_free(teacher);
    arwkv_backend_destroy(be);
    return status;
}
