/* The command-line tools, driven as scripts drive them: their outputs, exit statuses and error
   messages. (Built by `make` before `make test` runs this.) */
#define _DEFAULT_SOURCE /* popen, kill, fork, usleep */
#define ARWKV_IMPLEMENTATION
#include "arwkv.h"
#include "test.h"
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

static const char *ref_prompt = "def fibonacci(n):\n    if n < 2:\n        return n\n    return fibonacci(n - 1) +";

TEST(chat_raw_greedy_matches_transformers) {
    char path[512];
    snprintf(path, sizeof path, "%s/reference/qwen2_code_tiny_reference.safetensors", test_shared_dir());
    arwkv_safetensors *ref;
    if (arwkv_st_open(path, &ref) != ARWKV_OK) SKIP("no reference at %s", path);
    const arwkv_tensor_info *g = arwkv_st_find(ref, "greedy_ids");
    arwkv_tokenizer *tok;
    CHECK_OK(arwkv_tokenizer_load("models/qwen2-code-tiny", &tok));
    /* the reference continuation: greedy_ids after the 24 prompt tokens, up to end of text */
    int32_t ids[64];
    int n = 0;
    for (int64_t i = 24; i < g->numel; i++) {
        int32_t v;
        memcpy(&v, (const char *)g->data + 4 * i, 4);
        if (v == 151643) break;
        ids[n++] = v;
    }
    char want[256];
    size_t wl;
    CHECK_OK(arwkv_tokenizer_decode(tok, ids, (size_t)n, want, sizeof want, &wl));
    FILE *f = fopen("build/test_prompt.txt", "w");
    fputs(ref_prompt, f);
    fclose(f);
    char *out;
    int st = test_run("build/arwkv-chat --model models/qwen2-code-tiny --raw --prompt \"$(cat build/test_prompt.txt)\" -n 48 --temperature 0 2>/dev/null", &out);
    CHECK(st == 0 && strcmp(out, want) == 0, "status %d, continuation '%s', transformers' '%s'", st, out, want);
    free(out);
    /* the smallest example program gives the same continuation */
    st = test_run("build/arwkv-generate models/qwen2-code-tiny \"$(cat build/test_prompt.txt)\" 48 2>/dev/null", &out);
    CHECK(st == 0 && strcmp(out, want) == 0, "arwkv-generate: status %d, continuation '%s', transformers' '%s'", st, out, want);
    free(out);
    arwkv_tokenizer_free(tok);
    arwkv_st_close(ref);
}

/* arwkv-eval's nll on the reference prompt equals the one computed from transformers' logits. */
TEST(eval_matches_transformers_logits) {
    char path[512];
    snprintf(path, sizeof path, "%s/reference/qwen2_code_tiny_reference.safetensors", test_shared_dir());
    arwkv_safetensors *ref;
    if (arwkv_st_open(path, &ref) != ARWKV_OK) SKIP("no reference at %s", path);
    const arwkv_tensor_info *L = arwkv_st_find(ref, "logits"), *I = arwkv_st_find(ref, "input_ids");
    double want = 0;
    for (int t = 0; t + 1 < 24; t++) {
        const float *row = (const float *)L->data + (size_t)t * 151936;
        int32_t next;
        memcpy(&next, (const char *)I->data + 4 * (t + 1), 4);
        double mx = -1e30, z = 0;
        for (int i = 0; i < 151936; i++) mx = fmax(mx, row[i]);
        for (int i = 0; i < 151936; i++) z += exp(row[i] - mx);
        want += -(row[next] - mx - log(z));
    }
    want /= 23;
    FILE *f = fopen("build/test_prompt.txt", "w");
    fputs(ref_prompt, f);
    fclose(f);
    char *out;
    int st = test_run("build/arwkv-eval --model models/qwen2-code-tiny --text build/test_prompt.txt 2>/dev/null", &out);
    int tokens = 0;
    double nll = 0, ppl = 0;
    CHECK(st == 0 && sscanf(out, "tokens %d nll %lf ppl %lf", &tokens, &nll, &ppl) == 3, "output '%s'", out);
    CHECK(tokens == 24 && fabs(nll - want) < 1e-4 * want && fabs(ppl - exp(want)) < 1e-3 * exp(want), "nll %.6f, transformers %.6f", nll, want);
    free(out);
    arwkv_st_close(ref);
}

TEST(convert_then_chat_and_eval_a_student) {
    char *out;
    system("rm -rf build/test_cli_student");
    int st = test_run("build/arwkv-convert --teacher models/qwen2-code-tiny --out build/test_cli_student --init inherit --seed 3 2>&1", &out);
    CHECK(st == 0 && strstr(out, "RwkvHybridForCausalLM"), "convert: %d %s", st, out);
    free(out);
    st = test_run("build/arwkv-chat --model build/test_cli_student --prompt 'hello' -n 5 --temperature 0 2>build/test_chat_err.txt", &out);
    CHECK(st == 0 && strlen(out) > 0, "chat with a student: %d '%s'", st, out);
    free(out);
    st = test_run("cat build/test_chat_err.txt", &out);
    CHECK(strstr(out, "recurrent state") && strstr(out, "decode"), "statistics on stderr: %s", out);
    free(out);
    st = test_run("build/arwkv-eval --model build/test_cli_student --text tests/compile_c.c --max-tokens 100 2>/dev/null", &out);
    CHECK(st == 0 && strncmp(out, "tokens 100 nll ", 15) == 0, "eval a student: %s", out);
    free(out);
    /* QRWKV6 too */
    system("rm -rf build/test_cli_q6");
    st = test_run("build/arwkv-convert --teacher models/qwen2-code-tiny --out build/test_cli_q6 --arch qrwkv6 2>&1 && "
             "build/arwkv-chat --model build/test_cli_q6 --raw --prompt 'import os' -n 4 --temperature 0 2>/dev/null", &out);
    CHECK(st == 0 && strlen(out) > 0, "QRWKV6 student: %d '%s'", st, out);
    /* greedy arwkv-generate continues as arwkv-chat --raw --temperature 0 with its default options:
       no repetition penalty unless asked for, as in transformers and llama.cpp */
    char *gen;
    int gst = test_run("build/arwkv-generate build/test_cli_q6 'import os' 16 2>/dev/null", &gen);
    free(out);
    st = test_run("build/arwkv-chat --model build/test_cli_q6 --raw --prompt 'import os' -n 16 --temperature 0 2>/dev/null", &out);
    CHECK(gst == 0 && st == 0 && strlen(gen) > 0 && strcmp(gen, out) == 0, "arwkv-generate '%s' (status %d), arwkv-chat '%s'", gen, gst, out);
    free(gen);
    free(out);
}

/* A conversation saved by one process continues in another, token for token. */
TEST(chat_save_then_load_in_a_new_process) {
    char *a, *b;
    system("rm -f build/test_conv.state");
    int st = test_run("printf 'def add(a, b):\\n/save build/test_conv.state\\nreturn what?\\n/quit\\n' | "
                 "build/arwkv-chat --model build/test_cli_student -n 8 --temperature 0 --repeat-penalty 1 2>&1", &a);
    CHECK(st == 0 && strstr(a, "saved to build/test_conv.state"), "first process: %d %s", st, a);
    st = test_run("printf 'return what?\\n' | build/arwkv-chat --model build/test_cli_student --load build/test_conv.state -n 8 --temperature 0 --repeat-penalty 1 2>&1", &b);
    CHECK(st == 0, "second process: %d %s", st, b);
    /* the reply to the second message is the same whether or not the process was restarted */
    const char *a2 = strstr(a, "saved to");
    a2 = a2 ? strchr(a2, '\n') : NULL;
    CHECK(a2 && strncmp(a2 + 1, b, strlen(b)) == 0, "same continuation:\n--- one process:\n%s\n--- restarted:\n%s", a2 ? a2 + 1 : "", b);
    free(a), free(b);
    /* a state from another model is refused, naming the file */
    st = test_run("printf '/load build/test_conv.state\\n/quit\\n' | build/arwkv-chat --model build/test_cli_q6 2>&1", &a);
    CHECK(strstr(a, "build/test_conv.state") && (strstr(a, "another model") || strstr(a, "shape")), "foreign state: %s", a);
    free(a);
    st = test_run("build/arwkv-chat --model models/qwen2-code-tiny --load build/test_conv.state --prompt hi 2>&1", &a);
    CHECK(st != 0 && strstr(a, "KV cache"), "the teacher cannot load a state: %d %s", st, a);
    free(a);
}

TEST(errors_a_person_can_act_on) {
    char *out;
    int st = test_run("build/arwkv-chat --model /nonexistent/model --prompt hi 2>&1", &out);
    CHECK(st != 0 && strstr(out, "/nonexistent/model"), "missing model: %d %s", st, out);
    free(out);
    system("rm -rf build/test_notok && mkdir -p build/test_notok && cp models/qwen2-code-tiny/config.json models/qwen2-code-tiny/*.safetensors* build/test_notok/");
    st = test_run("build/arwkv-chat --model build/test_notok --prompt hi 2>&1", &out);
    CHECK(st != 0 && strstr(out, "tokenizer") && strstr(out, "build/test_notok"), "missing tokenizer: %d %s", st, out);
    free(out);
    system("rm -rf build/test_llama && mkdir -p build/test_llama && sed 's/Qwen2ForCausalLM/GPT2LMHeadModel/' models/qwen2-code-tiny/config.json > build/test_llama/config.json");
    st = test_run("build/arwkv-chat --model build/test_llama --prompt hi 2>&1", &out);
    CHECK(st != 0 && strstr(out, "GPT2LMHeadModel") && strstr(out, "supported"), "unsupported architecture: %d %s", st, out);
    free(out);
    st = test_run("build/arwkv-eval --model models/qwen2-code-tiny --text /nonexistent.txt 2>&1", &out);
    CHECK(st != 0 && strstr(out, "/nonexistent.txt"), "missing text: %d %s", st, out);
    free(out);
    st = test_run("build/arwkv-distill --teacher models/qwen2-code-tiny --out build/x --stage 1 --data /nonexistent.py 2>&1", &out);
    CHECK(st != 0 && strstr(out, "/nonexistent.py"), "missing data: %d %s", st, out);
    free(out);
    st = test_run("build/arwkv-inspect tests/test.h 2>&1", &out);
    CHECK(st != 0 && strstr(out, "tests/test.h"), "inspect a bad file: %d %s", st, out);
    free(out);
}

/* --stream-teacher changes where the teacher's layers live, not what is computed: a stage-1 run
   saves the same student, byte for byte, and logs the same losses; stage 3 (no teacher) refuses it. */
TEST(distill_stream_teacher_changes_nothing) {
    const char *base = "build/arwkv-distill --teacher models/qwen2-code-tiny --stage 1 --data tests/test_cli.c --seq-len 32 --batch 2 "
                       "--steps 3 --threads 2 --seed 4";
    char cmd[1024];
    char *out = NULL;
    system("rm -rf build/test_stream_a build/test_stream_b");
    snprintf(cmd, sizeof cmd, "%s --out build/test_stream_a 2>&1", base);
    int a = test_run(cmd, &out);
    free(out);
    snprintf(cmd, sizeof cmd, "%s --out build/test_stream_b --stream-teacher 2>&1", base);
    int b = test_run(cmd, &out);
    CHECK(a == 0 && b == 0 && strstr(out, "teacher layers (host)"), "both runs finish, the streamed plan shows host layers: %d %d %s", a, b, out);
    free(out);
    int same = test_run("cmp build/test_stream_a/model.safetensors build/test_stream_b/model.safetensors 2>&1 && "
                        "cut -d, -f1-6 build/test_stream_a/log.csv > build/test_stream_a.csv && "
                        "cut -d, -f1-6 build/test_stream_b/log.csv > build/test_stream_b.csv && cmp build/test_stream_a.csv build/test_stream_b.csv 2>&1", &out);
    CHECK(same == 0, "streamed and resident runs save the same student and log the same losses and gradient norms: %s", out);
    free(out);
    int st = test_run("build/arwkv-distill --student build/test_stream_a --out build/test_stream_c --stage 3 --data tests/test_cli.c "
                      "--stream-teacher 2>&1", &out);
    CHECK(st == 2 && strstr(out, "--stream-teacher") && strstr(out, "stage 3"), "stage 3 refuses --stream-teacher: %d %s", st, out);
    free(out);
}

/* Ctrl-C during training saves a checkpoint and exits cleanly; --resume finishes the run. */
TEST(distill_interrupt_and_resume) {
    system("rm -rf build/test_distill build/test_distill.log"); /* a stale log would look like progress */
    static char cmd_buf[1024];
    const char *cmd = test_binaries_of_this_build(
        "exec build/arwkv-distill --teacher models/qwen2-code-tiny --out build/test_distill --stage 1 --data tests/test_cli.c "
        "arwkv.h --seq-len 64 --batch 2 --steps 400 --lr 1e-3 --threads 1 --log-every 1 > build/test_distill.log 2>&1",
        cmd_buf, sizeof cmd_buf);
    pid_t pid = fork();
    if (pid == 0) {
        execl("/bin/sh", "sh", "-c", cmd, (char *)NULL);
        _exit(127);
    }
    /* wait until a few steps are done, then interrupt */
    for (int i = 0; i < 600; i++) {
        char *log;
        test_run("cat build/test_distill.log", &log);
        int steps = strstr(log, "  3/400") != NULL;
        free(log);
        if (steps) break;
        usleep(100000);
    }
    kill(pid, SIGINT);
    int status;
    waitpid(pid, &status, 0);
    char *log;
    test_run("cat build/test_distill.log", &log);
    size_t ll = strlen(log);
    CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 130 && strstr(log, "interrupted at step"), "after Ctrl-C (exit 130, as a shell reports it), the log ends: %s",
          ll > 400 ? log + ll - 400 : log);
    free(log);
    CHECK(test_file_exists("build/test_distill/checkpoints/latest"), "checkpoint written");
    char *out;
    int st = test_run("build/arwkv-distill --teacher models/qwen2-code-tiny --out build/test_distill --stage 1 --data tests/test_cli.c arwkv.h "
                 "--seq-len 64 --batch 2 --steps 6 --lr 1e-3 --resume --summary-json build/test_distill.json 2>&1", &out);
    /* the interrupted run may already be past step 6: resuming then does no step but still finishes */
    CHECK(st == 0 && strstr(out, "resuming from"), "resume: %d %.400s", st, out);
    free(out);
    st = test_run("cat build/test_distill.json", &out);
    CHECK(strstr(out, "\"stage\": 1") && strstr(out, "\"interrupted\": false"), "summary: %s", out);
    free(out);
    st = test_run("build/arwkv-distill --teacher models/qwen2-code-tiny --out build/test_distill --stage 1 --data tests/test_cli.c "
             "--seq-len 64 --batch 2 --steps 6 --resume 2>&1", &out);
    CHECK(st != 0 && strstr(out, "--data"), "resume with other data refused: %d %s", st, out);
    free(out);
}

int main(void) {
    RUN(chat_raw_greedy_matches_transformers);
    RUN(eval_matches_transformers_logits);
    RUN(convert_then_chat_and_eval_a_student);
    RUN(chat_save_then_load_in_a_new_process);
    RUN(errors_a_person_can_act_on);
    RUN(distill_stream_teacher_changes_nothing);
    RUN(distill_interrupt_and_resume);
    return test_summary("cli");
}
