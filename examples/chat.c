/* arwkv-chat: talk to a model. Any model arwkv loads works: the Qwen2 teacher (which keeps a KV
   cache that grows with the conversation) or an ARWKV-7 / QRWKV6 student (an RNN: a fixed-size
   state, whatever the length, that can be saved to a file and resumed instantly).

     arwkv-chat --model DIR                          interactive, on a terminal (or lines on stdin)
     arwkv-chat --model DIR --prompt TEXT            one turn with the chat template
     arwkv-chat --model DIR --raw --prompt TEXT      continue TEXT as is (no template)

   The reply goes to standard output; statistics (prefill and decode speed, state or KV-cache
   size) go to standard error. See --help for the sampling options and the commands. */
#define _POSIX_C_SOURCE 200809L /* isatty, sigaction */
#define ARWKV_IMPLEMENTATION
#include "arwkv.h"
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#ifdef ARWKV_GPU
#include "arwkv_hip.h"
#endif

/* ---- Ctrl-C stops the reply being generated (or the message being read), not the program ---- */
static volatile sig_atomic_t interrupted, ever_interrupted; /* the second: --prompt exits 130 after it */
static void on_sigint(int sig) {
    (void)sig;
    interrupted = ever_interrupted = 1;
}

static void usage(FILE *f) {
    fprintf(f,
            "usage: arwkv-chat --model DIR [options]\n"
            "\n"
            "  --model DIR           a Hugging Face model directory (Qwen2 teacher or ARWKV-7 / QRWKV6 student)\n"
            "                        or a GGUF file (llama, qwen2, qwen3; its tokenizer and template too)\n"
            "  --prompt TEXT         answer one message and exit (reply on stdout, statistics on stderr)\n"
            "  --raw                 with --prompt: continue TEXT as plain text, without the chat template\n"
            "  --system TEXT         system prompt (default: the one the model's chat template states, if any)\n"
            "  --chat-template F     chatml or llama3, instead of the model's tokenizer_config.json chat_template\n"
            "  --load FILE           start from a conversation saved with /save (students)\n"
            "  -n, --max-tokens N    at most N new tokens per reply (default 512)\n"
            "  --temperature T       0 = greedy (default 0.7)\n"
            "  --top-k K             (default 40; 0 = off)\n"
            "  --top-p P             (default 0.9; 1 = off)\n"
            "  --min-p P             (default 0 = off)\n"
            "  --repeat-penalty R    on the last 64 tokens (default 1 = off)\n"
            "  --seed S              sampling seed (default 1)\n"
            "  --threads N           CPU threads (default: every CPU it may use)\n"
#ifdef ARWKV_GPU
            "  --gpu                 run on the GPU\n"
#endif
            "\n"
            "Interactive commands: /help /reset /system TEXT /save FILE /load FILE /stats /quit\n"
            "A line ending in '\\' continues on the next line; a line of \"\"\" starts or ends a block.\n"
            "Ctrl-C stops the current reply; Ctrl-D (end of input) or /quit leaves.\n");
}

static void help(void) {
    printf("  /reset        forget the conversation (keeps the system prompt)\n"
           "  /system TEXT  set the system prompt and start over\n"
           "  /save FILE    save the conversation (a student's whole state, a small file)\n"
           "  /load FILE    continue a saved conversation\n"
           "  /stats        tokens in context, memory it takes, speeds\n"
           "  /quit         leave (so does Ctrl-D)\n"
           "  Multi-line input: end a line with '\\', or put the text between two lines of \"\"\".\n");
}

typedef struct chat {
    arwkv_model *m;
    arwkv_tokenizer *tok;
    arwkv_session *sess;
    arwkv_sampler sampler;
    float *logits;
    int V;
    int max_new;
    arwkv_chat_template *tpl;
    int32_t stop, endoftext; /* the tokens that end an answer */
    int begun;               /* the conversation has begun (Llama 3's <|begin_of_text|> is in) */
    int32_t recent[64];
    int n_recent;
    char system[4096];
    int warned_context; /* told once that the context outgrew the trained length */
    /* last reply's figures */
    int prefill_tokens, decode_tokens;
    double prefill_s, decode_s;
} chat;

static int fail(const char *what) {
    fprintf(stderr, "arwkv-chat: %s%s%s\n", what, arwkv_last_error()[0] ? ": " : "", arwkv_last_error());
    return 1;
}

/* Once per conversation: past max_position_embeddings a teacher meets positions it never saw, and
   a student (no hard limit) text longer than anything it learned from. */
static void warn_long_context(chat *c) {
    long long n = (long long)arwkv_session_tokens(c->sess), trained = c->m->cfg.max_position_embeddings;
    if (c->warned_context || trained <= 0 || n <= trained) return;
    c->warned_context = 1;
    fprintf(stderr, "\narwkv-chat: the context (%lld tokens) is now longer than the %lld the model was trained on%s; replies may degrade\n", n,
            trained, arwkv_session_is_recurrent(c->sess) ? " (a student has no hard limit, but it learned from shorter text)" : "");
}

/* Feed tokens, timing them as prefill. In pieces, so that Ctrl-C stops a long message too (a
   pasted megabyte is minutes of prefill): then ARWKV_ERR_INTERRUPTED, with the pieces read kept. */
#define FEED_PIECE 512
static arwkv_result feed(chat *c, const int32_t *ids, size_t n) {
    double t0 = arwkv_seconds();
    arwkv_result r = ARWKV_OK;
    for (size_t done = 0; done < n && r == ARWKV_OK; done += FEED_PIECE) {
        size_t k = n - done < FEED_PIECE ? n - done : FEED_PIECE;
        if (interrupted) r = ARWKV_ERR_INTERRUPTED;
        else r = arwkv_session_feed(c->sess, ids + done, (int)k, c->logits);
        if (r == ARWKV_OK) c->prefill_tokens += (int)k;
    }
    c->prefill_s += arwkv_seconds() - t0;
    warn_long_context(c);
    return r;
}

/* Feed messages as the chat template writes them, continuing the conversation so far. */
static arwkv_result feed_turn(chat *c, const char *role, const char *content, int flags) {
    arwkv_tokens t = {NULL, NULL, 0, 0};
    arwkv_chat_message m = {role, content};
    arwkv_result r = arwkv_chat_template_encode(c->tpl, c->tok, &m, 1, flags | (c->begun ? ARWKV_CHAT_CONTINUE : 0), &t);
    if (r == ARWKV_OK) r = feed(c, t.ids, t.n);
    c->begun = 1;
    arwkv_tokens_free(&t);
    return r;
}

/* After a generated answer: the markup that closes it (the model sampled its end, it did not read it). */
static arwkv_result feed_turn_end(chat *c) {
    arwkv_tokens t = {NULL, NULL, 0, 0};
    const char *end = arwkv_chat_template_turn_end(c->tpl);
    arwkv_result r = arwkv_tokenizer_encode(c->tok, end, strlen(end), ARWKV_TOKENIZE_SPECIAL, &t);
    if (r == ARWKV_OK) r = feed(c, t.ids, t.n);
    arwkv_tokens_free(&t);
    return r;
}

static arwkv_result start_conversation(chat *c) {
    c->n_recent = 0;
    c->begun = 0;
    c->warned_context = 0;
    arwkv_result r = arwkv_session_reset(c->sess);
    if (r != ARWKV_OK || !c->system[0]) return r;
    return feed_turn(c, "system", c->system, 0);
}

/* Sample and print tokens until a stop token, max_new, or Ctrl-C. The logits of the next token are
   in c->logits when this is called. Returns the number of tokens generated (-1 on error). */
static int generate(chat *c, FILE *out, int chat_turn) {
    arwkv_stream_decoder *dec;
    if (arwkv_stream_decoder_create(c->tok, &dec) != ARWKV_OK) return -1;
    int n = 0;
    double t0 = arwkv_seconds();
    while (n < c->max_new && !interrupted) {
        int32_t id = arwkv_sample(&c->sampler, c->logits, c->recent, c->n_recent);
        if (id == c->endoftext || (chat_turn && id == c->stop) || (!chat_turn && id == c->m->cfg.eos_token_id)) break;
        if (c->n_recent < 64) c->recent[c->n_recent++] = id;
        else {
            memmove(c->recent, c->recent + 1, 63 * sizeof(int32_t));
            c->recent[63] = id;
        }
        const char *text;
        size_t len;
        if (arwkv_stream_decoder_put(dec, id, &text, &len) == ARWKV_OK && len) {
            fwrite(text, 1, len, out);
            fflush(out);
        }
        n++;
        if (arwkv_session_feed(c->sess, &id, 1, c->logits) != ARWKV_OK) {
            n = -1;
            break;
        }
        warn_long_context(c);
    }
    const char *text;
    size_t len;
    arwkv_stream_decoder_flush(dec, &text, &len);
    if (len) fwrite(text, 1, len, out);
    fflush(out);
    arwkv_stream_decoder_free(dec);
    c->decode_s = arwkv_seconds() - t0;
    c->decode_tokens = n > 0 ? n : 0;
    return n;
}

static void print_stats(chat *c, FILE *f) {
    size_t bytes = arwkv_session_memory_bytes(c->sess);
    fprintf(f, "[prefill %d tokens %.2f s (%.1f tok/s), decode %d tokens %.2f s (%.1f tok/s); context %lld tokens; %s %.2f MiB]\n",
            c->prefill_tokens, c->prefill_s, c->prefill_s > 0 ? c->prefill_tokens / c->prefill_s : 0.0, c->decode_tokens, c->decode_s,
            c->decode_s > 0 ? c->decode_tokens / c->decode_s : 0.0, (long long)arwkv_session_tokens(c->sess),
            arwkv_session_is_recurrent(c->sess) ? "recurrent state" : "KV cache", bytes / 1048576.0);
}

/* One user message: feed it as a turn, generate the reply, close the turn. */
static int answer(chat *c, const char *message, FILE *out) {
    c->prefill_tokens = 0, c->prefill_s = 0;
    interrupted = 0; /* Ctrl-C from here on stops this message's reading or its reply */
    arwkv_result r = feed_turn(c, "user", message, ARWKV_CHAT_GENERATION_PROMPT);
    if (r == ARWKV_ERR_INTERRUPTED) {
        fprintf(out, "[stopped while reading the message: the %d tokens read stay in the conversation (/reset forgets them)]\n",
                c->prefill_tokens);
        interrupted = 0;
        return feed_turn_end(c) == ARWKV_OK ? 0 : fail("closing the turn");
    }
    if (r != ARWKV_OK) return fail("reading the message");
    int n = generate(c, out, 1);
    if (n < 0) return fail("generating");
    if (interrupted) fprintf(out, " [stopped]");
    fputc('\n', out);
    fflush(out);
    /* the model did not read its own <|im_end|> (it was sampled, not fed): close the turn so the
       state holds the conversation exactly as the template writes it */
    double keep_s = c->prefill_s;
    int keep_n = c->prefill_tokens;
    if (feed_turn_end(c) != ARWKV_OK) return fail("closing the turn");
    c->prefill_s = keep_s, c->prefill_tokens = keep_n;
    return 0;
}

/* Read one message from stdin: a line, lines joined by a trailing '\', or a """ block.
   Returns NULL at end of input. *cancelled is set when Ctrl-C interrupted the reading. */
static char *read_message(int tty, int *cancelled) {
    size_t cap = 4096, len = 0;
    char *buf = (char *)malloc(cap), line[8192];
    int block = 0, more = 1;
    *cancelled = 0;
    if (tty) {
        printf("> ");
        fflush(stdout);
    }
    while (more) {
        errno = 0;
        if (!fgets(line, sizeof line, stdin)) {
            if (errno == EINTR || interrupted) {
                clearerr(stdin);
                *cancelled = 1;
                interrupted = 0;
                free(buf);
                return NULL;
            }
            if (len > 0) break; /* end of input after some text: send it */
            free(buf);
            return NULL;
        }
        size_t n = strlen(line);
        int had_newline = n && line[n - 1] == '\n';
        if (had_newline) line[--n] = 0;
        if (n && line[n - 1] == '\r') line[--n] = 0;
        if (!strcmp(line, "\"\"\"")) {
            block = !block;
            more = block;
            continue;
        }
        int cont = !block && n && line[n - 1] == '\\';
        if (cont) line[--n] = 0;
        if (len + n + 2 > cap) {
            while (len + n + 2 > cap) cap *= 2;
            buf = (char *)realloc(buf, cap);
        }
        if (len) buf[len++] = '\n';
        memcpy(buf + len, line, n);
        len += n;
        buf[len] = 0;
        more = block || cont || !had_newline; /* a line longer than the buffer continues too */
        if (tty && more) {
            printf(". ");
            fflush(stdout);
        }
    }
    buf[len] = 0;
    return buf;
}

static int interactive(chat *c) {
    int tty = isatty(0);
    if (tty)
        printf("arwkv-chat: %s (%s). /help for commands, Ctrl-D to leave.\n", arwkv_arch_is_teacher(c->m->cfg.arch) ? "teacher" : "student",
               arwkv_arch_name(c->m->cfg.arch));
    for (;;) {
        int cancelled;
        char *msg = read_message(tty, &cancelled);
        if (!msg && cancelled) {
            printf("\n(Ctrl-C cancels the line or stops a reply; Ctrl-D or /quit leaves)\n");
            continue;
        }
        if (!msg) break;
        char *s = msg;
        while (*s == ' ' || *s == '\t') s++;
        if (!*s) {
            free(msg);
            continue;
        }
        if (*s == '/') {
            char *arg = strchr(s, ' ');
            if (arg) {
                *arg++ = 0;
                while (*arg == ' ') arg++;
            }
            if (!strcmp(s, "/quit") || !strcmp(s, "/exit")) {
                free(msg);
                break;
            } else if (!strcmp(s, "/help")) {
                help();
            } else if (!strcmp(s, "/reset")) {
                if (start_conversation(c) != ARWKV_OK) fail("reset");
                else printf("[conversation reset]\n");
            } else if (!strcmp(s, "/system")) {
                snprintf(c->system, sizeof c->system, "%s", arg ? arg : "");
                if (start_conversation(c) != ARWKV_OK) fail("system prompt");
                else printf("[system prompt set; conversation reset]\n");
            } else if (!strcmp(s, "/save") || !strcmp(s, "/load")) {
                if (!arg || !*arg) printf("usage: %s FILE\n", s);
                else if (!strcmp(s, "/save") && arwkv_session_save(c->sess, arg) != ARWKV_OK) fprintf(stderr, "arwkv-chat: %s\n", arwkv_last_error());
                else if (!strcmp(s, "/load") && arwkv_session_load(c->sess, arg) != ARWKV_OK) fprintf(stderr, "arwkv-chat: %s\n", arwkv_last_error());
                else {
                    c->begun = arwkv_session_tokens(c->sess) > 0;
                    printf("[%s %s: %lld tokens of conversation, %.2f MiB]\n", !strcmp(s, "/save") ? "saved to" : "loaded from", arg,
                           (long long)arwkv_session_tokens(c->sess), arwkv_session_memory_bytes(c->sess) / 1048576.0);
                }
            } else if (!strcmp(s, "/stats")) {
                print_stats(c, stdout);
            } else {
                printf("unknown command %s (try /help)\n", s);
            }
            fflush(stdout);
            free(msg);
            continue;
        }
        if (answer(c, s, stdout) != 0) {
            free(msg);
            return 1;
        }
        free(msg);
    }
    if (tty) printf("\n");
    return 0;
}

int main(int argc, char **argv) {
    const char *model_dir = NULL, *prompt = NULL, *system_prompt = NULL, *load = NULL, *template_name = NULL;
    int raw = 0, threads = 0, gpu = 0, max_new = 512;
    arwkv_sampler_options so;
    arwkv_sampler_options_default(&so);
#define NUMBER(parse)                                                 \
    do {                                                              \
        if ((parse) != ARWKV_OK) {                                    \
            fprintf(stderr, "arwkv-chat: %s\n", arwkv_last_error()); \
            return 2;                                                 \
        }                                                             \
    } while (0)
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        int has = i + 1 < argc;
        if (!strcmp(a, "--model") && has) model_dir = argv[++i];
        else if (!strcmp(a, "--prompt") && has) prompt = argv[++i];
        else if (!strcmp(a, "--raw")) raw = 1;
        else if (!strcmp(a, "--system") && has) system_prompt = argv[++i];
        else if (!strcmp(a, "--chat-template") && has) template_name = argv[++i];
        else if (!strcmp(a, "--load") && has) load = argv[++i];
        else if ((!strcmp(a, "-n") || !strcmp(a, "--max-tokens")) && has) NUMBER(arwkv_parse_int(a, argv[++i], 1, INT_MAX, &max_new));
        else if (!strcmp(a, "--temperature") && has) NUMBER(arwkv_parse_float(a, argv[++i], 0, 100, &so.temperature));
        else if (!strcmp(a, "--top-k") && has) NUMBER(arwkv_parse_int(a, argv[++i], 0, INT_MAX, &so.top_k));
        else if (!strcmp(a, "--top-p") && has) NUMBER(arwkv_parse_float(a, argv[++i], 1e-6, 1, &so.top_p));
        else if (!strcmp(a, "--min-p") && has) NUMBER(arwkv_parse_float(a, argv[++i], 0, 1, &so.min_p));
        else if (!strcmp(a, "--repeat-penalty") && has) NUMBER(arwkv_parse_float(a, argv[++i], 1e-3, 1e3, &so.repetition_penalty));
        else if (!strcmp(a, "--seed") && has) NUMBER(arwkv_parse_u64(a, argv[++i], &so.seed));
        else if (!strcmp(a, "--threads") && has) NUMBER(arwkv_parse_int(a, argv[++i], 0, 4096, &threads));
        else if (!strcmp(a, "--gpu")) gpu = 1;
        else if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            usage(stdout);
            return 0;
        } else {
            fprintf(stderr, "arwkv-chat: unknown or incomplete option '%s' (see --help)\n", a);
            return 2;
        }
    }
    if (!model_dir) {
        usage(stderr);
        return 2;
    }
    if (raw && !prompt) {
        fprintf(stderr, "arwkv-chat: --raw needs --prompt TEXT\n");
        return 2;
    }
    if (max_new < 1) {
        fprintf(stderr, "arwkv-chat: --max-tokens must be at least 1\n");
        return 2;
    }
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_sigint; /* no SA_RESTART: a blocked read returns so the prompt can recover */
    sigaction(SIGINT, &sa, NULL);

    chat c;
    memset(&c, 0, sizeof c);
    c.max_new = max_new;
    arwkv_backend *be = NULL;
#ifdef ARWKV_GPU
    if (gpu ? arwkv_backend_gpu(0, &be) != ARWKV_OK : arwkv_backend_cpu(threads, &be) != ARWKV_OK) return fail("starting the backend");
#else
    if (gpu) {
        fprintf(stderr, "arwkv-chat: this build has no GPU support (build it with make gpu)\n");
        return 2;
    }
    if (arwkv_backend_cpu(threads, &be) != ARWKV_OK) return fail("starting the backend");
#endif
    int status = 1;
    if (arwkv_model_load(model_dir, be, &c.m) != ARWKV_OK) {
        fail("loading the model (a model is a directory with config.json and safetensors files)");
        goto done;
    }
    if (arwkv_tokenizer_load(model_dir, &c.tok) != ARWKV_OK) {
        fail("loading the tokenizer (copy tokenizer.json from the teacher into the model directory)");
        goto done;
    }
    c.V = c.m->cfg.vocab_size;
    c.logits = (float *)malloc(sizeof(float) * (size_t)c.V);
    c.endoftext = arwkv_tokenizer_token_id(c.tok, "<|endoftext|>");
    if (!raw) { /* the chat template: the model's, or the one named */
        if ((template_name ? arwkv_chat_template_named(template_name, &c.tpl) : arwkv_chat_template_load(model_dir, &c.tpl)) != ARWKV_OK) {
            fail("the chat template (or use --raw)");
            goto done;
        }
        c.stop = arwkv_tokenizer_token_id(c.tok, arwkv_chat_template_stop(c.tpl));
        arwkv_tokens probe = {NULL, NULL, 0, 0};
        arwkv_chat_message hi = {"user", "hi"};
        arwkv_result r = arwkv_chat_template_encode(c.tpl, c.tok, &hi, 1, 0, &probe); /* the template's tokens are there */
        arwkv_tokens_free(&probe);
        if (r != ARWKV_OK) {
            fail(model_dir);
            goto done;
        }
        if (!system_prompt) system_prompt = arwkv_chat_template_default_system(c.tpl);
    }
    if (!c.logits || arwkv_sampler_init(&c.sampler, &so, c.V) != ARWKV_OK || arwkv_session_create(c.m, 0, &c.sess) != ARWKV_OK) {
        fail("setting up");
        goto done;
    }
    snprintf(c.system, sizeof c.system, "%s", system_prompt ? system_prompt : "");
    if (raw) { /* continue the text as it is */
        arwkv_tokens t = {NULL, NULL, 0, 0};
        arwkv_result r = arwkv_tokenizer_encode(c.tok, prompt, strlen(prompt), 0, &t);
        size_t n_prompt = t.n;
        if (r == ARWKV_OK && n_prompt > 0) r = feed(&c, t.ids, n_prompt);
        arwkv_tokens_free(&t);
        if (r == ARWKV_ERR_INTERRUPTED) {
            fprintf(stderr, "arwkv-chat: stopped while reading the prompt (%d of %zu tokens read)\n", c.prefill_tokens, n_prompt);
            status = 130;
            goto done;
        }
        if (r != ARWKV_OK || n_prompt == 0) {
            fail(n_prompt == 0 ? "the prompt is empty" : "reading the prompt");
            goto done;
        }
        if (generate(&c, stdout, 0) < 0) {
            fail("generating");
            goto done;
        }
        print_stats(&c, stderr);
        status = ever_interrupted ? 130 : 0; /* Ctrl-C: as a shell reports it */
        goto done;
    }
    if (load) {
        if (arwkv_session_load(c.sess, load) != ARWKV_OK) {
            fail("loading the conversation");
            goto done;
        }
        c.begun = arwkv_session_tokens(c.sess) > 0;
    } else if (start_conversation(&c) != ARWKV_OK) {
        fail("reading the system prompt");
        goto done;
    }
    if (prompt) {
        status = answer(&c, prompt, stdout);
        if (status == 0) print_stats(&c, stderr);
        if (status == 0 && ever_interrupted) status = 130; /* Ctrl-C: as a shell reports it */
    } else {
        status = interactive(&c);
    }
done:
    arwkv_sampler_free(&c.sampler);
    arwkv_session_free(c.sess);
    arwkv_chat_template_free(c.tpl);
    arwkv_tokenizer_free(c.tok);
    arwkv_model_free(c.m);
    free(c.logits);
    arwkv_backend_destroy(be);
    return status;
}
