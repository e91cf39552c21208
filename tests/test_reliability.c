/* What a careless or hostile user can do to the binaries (issue 13): each test reproduces one way a
   run used to hang, lose work, answer wrongly in silence or damage files, and checks the precise
   error, exit status and files now. Driven as scripts drive the binaries (built by `make` before
   `make test` runs this). */
#define _DEFAULT_SOURCE /* popen, kill, fork, usleep */
#define ARWKV_IMPLEMENTATION
#include "arwkv.h"
#include "test.h"
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#define TEACHER "models/qwen2-code-tiny"

/* Start a command in the background (its own process, so that signals reach it alone). */
static pid_t start(const char *cmd) {
    pid_t pid = fork();
    if (pid == 0) {
        execl("/bin/sh", "sh", "-c", cmd, (char *)NULL);
        _exit(127);
    }
    return pid;
}

/* Wait until file `path` contains `text` (at most 60 s). */
static int wait_for(const char *path, const char *text) {
    char cmd[300];
    snprintf(cmd, sizeof cmd, "cat %s 2>/dev/null", path);
    for (int i = 0; i < 600; i++) {
        char *log;
        test_run(cmd, &log);
        int found = strstr(log, text) != NULL;
        free(log);
        if (found) return 1;
        usleep(100000);
    }
    return 0;
}

static int exit_status(pid_t pid) {
    int status;
    waitpid(pid, &status, 0);
    return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

/* A long stage-1 run on OUT (it never gets to the end in these tests). */
static pid_t start_long_run(const char *out, const char *log) {
    char cmd[600];
    snprintf(cmd, sizeof cmd, "rm -rf %s %s", out, log); /* here, not in the child: wait_for must not see an old log */
    system(cmd);
    snprintf(cmd, sizeof cmd,
             "exec build/arwkv-distill --teacher " TEACHER " --out %s --stage 1 --data tests/test_cli.c --seq-len 32 "
             "--batch 1 --steps 9999 --threads 1 --log-every 1 > %s 2>&1",
             out, log);
    return start(cmd);
}

/* Issue 13 item 9: every binary parses its numbers strictly and names the option (atoi made
   --seq-len 1e3 into 1 and 99999999999 into 1215752191). */
TEST(numeric_options_are_strict) {
    static const struct {
        const char *cmd, *want;
    } cases[] = {
        {"build/arwkv-distill --teacher " TEACHER " --out build/x --stage 1 --data tests/test.h --seq-len 1e3", "--seq-len: '1e3' is not a whole"},
        {"build/arwkv-distill --teacher " TEACHER " --out build/x --stage 1 --data tests/test.h --seq-len 99999999999",
         "--seq-len: 99999999999 is out of range"},
        {"build/arwkv-distill --teacher " TEACHER " --out build/x --stage 1 --data tests/test.h --lr nan", "--lr: 'nan' is not a finite"},
        {"build/arwkv-distill --teacher " TEACHER " --out build/x --stage 4 --data tests/test.h", "--stage: 4 is out of range"},
        {"build/arwkv-chat --model " TEACHER " --prompt hi --temperature nan", "--temperature: 'nan' is not a finite"},
        {"build/arwkv-chat --model " TEACHER " --prompt hi -n 1e3", "-n: '1e3' is not a whole number"},
        {"build/arwkv-chat --model " TEACHER " --prompt hi --seed -1", "--seed: '-1'"},
        {"build/arwkv-eval --model " TEACHER " --text tests/test.h --max-tokens 10x", "--max-tokens: '10x'"},
        {"build/arwkv-convert --teacher " TEACHER " --out build/x --seed 1.5", "--seed: '1.5'"},
        {"build/arwkv-generate " TEACHER " hi 1e3", "N: '1e3'"},
        {"build/arwkv-bench qrwkv6 1e3", "T: '1e3' is not a whole number"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        char cmd[512], *out;
        snprintf(cmd, sizeof cmd, "%s 2>&1", cases[i].cmd);
        int st = test_run(cmd, &out);
        CHECK(st == 2 && strstr(out, cases[i].want), "%s: status %d, '%s' (want '%s')", cases[i].cmd, st, out, cases[i].want);
        free(out);
    }
}

/* Item 2: --out that is, contains or lies inside the teacher's directory is refused before anything
   is written, and the teacher is left exactly as it was. */
TEST(out_dir_never_overwrites_the_teacher) {
    system("rm -rf build/rel_teacher build/rel_copy && cp -r " TEACHER " build/rel_teacher && cp -r " TEACHER " build/rel_copy");
    static const struct {
        const char *cmd, *want;
    } cases[] = {
        {"build/arwkv-convert --teacher build/rel_teacher --out build/rel_teacher", "is or contains the model directory build/rel_teacher"},
        {"build/arwkv-convert --teacher build/rel_teacher --out build/rel_teacher/../rel_teacher/", "is or contains the model directory"},
        {"build/arwkv-convert --teacher build/rel_teacher --out build", "is or contains the model directory build/rel_teacher"},
        {"build/arwkv-convert --teacher build/rel_teacher --out build/rel_teacher/student/s1", "lies inside the model directory build/rel_teacher"},
        {"build/arwkv-distill --teacher build/rel_teacher --out build/rel_teacher --stage 1 --data tests/test.h --steps 2",
         "is or contains the model directory build/rel_teacher"},
        {"build/arwkv-convert --teacher build/rel_teacher --out build/rel_copy", "holds a Qwen2ForCausalLM model"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        char cmd[512], *out;
        snprintf(cmd, sizeof cmd, "%s 2>&1", cases[i].cmd);
        int st = test_run(cmd, &out);
        CHECK(st == 1 && strstr(out, cases[i].want), "%s: status %d, '%s' (want '%s')", cases[i].cmd, st, out, cases[i].want);
        free(out);
    }
    /* byte for byte what it was, and nothing added */
    int st = test_run("diff -r " TEACHER " build/rel_teacher && diff -r " TEACHER " build/rel_copy", NULL);
    CHECK(st == 0, "the teacher directories changed");
}

/* Item 3: an output directory that cannot be written fails at once, naming the path, not after
   the training. */
TEST(unwritable_out_fails_before_training) {
    char *out;
    double t0 = arwkv_seconds();
    int st = test_run("build/arwkv-distill --teacher " TEACHER " --out tests/test.h/x --stage 1 --data tests/test.h --seq-len 64 --batch 1 "
                 "--steps 20 2>&1", &out);
    CHECK(st == 1 && strstr(out, "tests/test.h") && strstr(out, "--out") && !strstr(out, "step "), "status %d: %s", st, out);
    CHECK(arwkv_seconds() - t0 < 10, "it took %.1f s to fail", arwkv_seconds() - t0);
    free(out);
}

/* Item 3: a periodic save that fails (here OUT/checkpoints is a file; a full disk alike) does not
   end the run: it says so, naming the path, trains on and still saves the student. */
TEST(failed_periodic_save_keeps_training) {
    system("rm -rf build/rel_full && mkdir -p build/rel_full && echo x > build/rel_full/checkpoints");
    char *out;
    int st = test_run("build/arwkv-distill --teacher " TEACHER " --out build/rel_full --stage 1 --data tests/test_cli.c --seq-len 32 --batch 1 "
                 "--steps 3 --save-every 1 --log-every 1 --threads 1 2>&1", &out);
    const char *first = strstr(out, "saving a checkpoint at step 1 failed, training goes on");
    CHECK(first && strstr(first, "build/rel_full/checkpoints") && strstr(out, "saving a checkpoint at step 2 failed"), "warnings: %s", out);
    CHECK(strstr(out, "step 3/3") && strstr(out, "student saved to build/rel_full"), "trained to the end: %s", out);
    CHECK(st == 1, "the final checkpoint failed too, so the exit status is 1, not %d", st);
    CHECK(test_file_exists("build/rel_full/model.safetensors"), "the student was saved");
    free(out);
}

/* Items 4, 7, 11: a second run on the same OUT is refused naming the first; SIGHUP and SIGTERM
   save a checkpoint and exit 128 + the signal, as shells report it. */
TEST(lock_and_stop_signals) {
    static const struct {
        int sig, status;
    } sigs[] = {{SIGHUP, 129}, {SIGTERM, 143}};
    for (int k = 0; k < 2; k++) {
        pid_t pid = start_long_run("build/rel_run", "build/rel_run.log");
        CHECK(wait_for("build/rel_run.log", " 3/9999"), "the run did not start: see build/rel_run.log");
        char *out, want[64];
        if (k == 0) {
            int st = test_run("build/arwkv-distill --teacher " TEACHER " --out build/rel_run --stage 1 --data tests/test.h --steps 2 2>&1", &out);
            snprintf(want, sizeof want, "another run (process %ld)", (long)pid);
            CHECK(st == 1 && strstr(out, want), "second run: %d %s (want '%s')", st, out, want);
            free(out);
        }
        kill(pid, sigs[k].sig);
        int st = exit_status(pid);
        test_run("cat build/rel_run.log", &out);
        CHECK(st == sigs[k].status && strstr(out, "interrupted at step"), "signal %d: status %d (want %d): %.300s", sigs[k].sig, st,
              sigs[k].status, out + (strlen(out) > 300 ? strlen(out) - 300 : 0));
        free(out);
        CHECK(test_file_exists("build/rel_run/checkpoints/latest"), "signal %d: no checkpoint", sigs[k].sig);
    }
    /* once the first run is gone, the lock is free */
    char *out;
    int st = test_run("build/arwkv-distill --teacher " TEACHER " --out build/rel_run --stage 1 --data tests/test_cli.c --seq-len 32 --batch 1 "
                 "--steps 1 --threads 1 2>&1", &out);
    CHECK(st == 0, "after the first run: %d %s", st, out);
    free(out);
}

/* Item 4: a closed stdout (| head) does not kill the run with SIGPIPE: it trains and saves. */
TEST(closed_stdout_does_not_kill_training) {
    char *out;
    system("rm -rf build/rel_pipe build/rel_pipe.status");
    test_run("(build/arwkv-distill --teacher " TEACHER " --out build/rel_pipe --stage 1 --data tests/test_cli.c --seq-len 32 --batch 1 "
        "--steps 4 --log-every 1 --threads 1 2>/dev/null; echo $? > build/rel_pipe.status) | head -1",
        &out);
    free(out);
    test_run("cat build/rel_pipe.status", &out);
    CHECK(atoi(out) == 0, "exit status %s", out);
    free(out);
    CHECK(test_file_exists("build/rel_pipe/model.safetensors"), "the student was saved");
}

/* Item 10: partial files left by kill -9 during a save (NAME.tmp.PID.N of a process that no longer
   runs) and the unfinished checkpoint holding them are removed at the next start; files a person
   put there stay. */
TEST(stale_temporaries_are_removed) {
    system("rm -rf build/rel_stale && mkdir -p build/rel_stale/checkpoints/step-00000099 build/rel_stale/checkpoints/step-00000098 && "
           "cd build/rel_stale && touch model.safetensors.tmp.2147483646.0 notes.txt checkpoints/step-00000099/config.json "
           "checkpoints/step-00000099/model.safetensors.tmp.2147483646.3 checkpoints/step-00000098/model.safetensors "
           "checkpoints/step-00000098/mine.txt");
    char *out;
    int st = test_run("build/arwkv-convert --teacher " TEACHER " --out build/rel_stale 2>&1", &out);
    CHECK(st == 0 && strstr(out, "removed 2 partial file(s) and 2 unfinished checkpoint(s)"), "%d %s", st, out);
    free(out);
    st = test_run("cd build/rel_stale && find . -name '*.tmp.*' -o -name 'step-00000099' -o -name model.safetensors -path '*98*'", &out);
    CHECK(st == 0 && out[0] == 0, "left behind: %s", out);
    free(out);
    CHECK(test_file_exists("build/rel_stale/notes.txt") && test_file_exists("build/rel_stale/checkpoints/step-00000098/mine.txt"),
          "a person's files were removed");
    CHECK(test_file_exists("build/rel_stale/model.safetensors"), "the student was written");
}

/* Item 5: stage 3 on valid chat data whose user turn is longer than --seq-len trains (the windows
   without a target are skipped and counted) instead of stopping at "a batch without any target". */
TEST(stage3_long_user_turn) {
    FILE *f = fopen("build/rel_chat.jsonl", "w");
    fprintf(f, "{\"messages\": [{\"role\": \"user\", \"content\": \"");
    for (int i = 0; i < 200; i++) fprintf(f, "word%d ", i);
    fprintf(f, "\"}, {\"role\": \"assistant\", \"content\": \"ok fine\"}]}\n");
    fprintf(f, "{\"messages\": [{\"role\": \"user\", \"content\": \"hi\"}, {\"role\": \"assistant\", \"content\": \"hello\"}]}\n");
    fclose(f);
    char *out;
    system("rm -rf build/rel_s3");
    int st = test_run("build/arwkv-distill --teacher " TEACHER " --out build/rel_s3 --stage 3 --data build/rel_chat.jsonl --seq-len 16 --batch 2 "
                 "--steps 4 --log-every 1 --threads 1 2>&1", &out);
    CHECK(st == 0 && strstr(out, "sequences without any target token") && strstr(out, "are skipped") && strstr(out, "step 4/4"),
          "status %d: %s", st, out);
    free(out);
}

/* Copy the teacher to dir and set the first n elements of one of its tensors to value (in its dtype). */
static int teacher_with(const char *dir, const char *tensor, float value, int n) {
    char cmd[512];
    snprintf(cmd, sizeof cmd, "rm -rf %s && cp -r " TEACHER " %s", dir, dir);
    if (system(cmd) != 0) return 0;
    arwkv_safetensors *st;
    if (arwkv_st_open(dir, &st) != ARWKV_OK) return 0;
    const arwkv_tensor_info *t = arwkv_st_find(st, tensor);
    char path[512];
    snprintf(path, sizeof path, "%s", t ? arwkv_st_file_name(st, t->file) : ""); /* the shard's path */
    long offset = t ? (long)t->offset : -1;
    arwkv_dtype dtype = t ? t->dtype : ARWKV_DTYPE_UNKNOWN;
    arwkv_st_close(st);
    FILE *f = offset >= 0 ? fopen(path, "r+b") : NULL;
    if (!f) return 0;
    uint16_t h = dtype == ARWKV_BF16 ? arwkv_f32_to_bf16(value) : arwkv_f32_to_f16(value);
    int ok = fseek(f, offset, SEEK_SET) == 0;
    for (int i = 0; i < n && ok; i++) ok = (dtype == ARWKV_F32 ? fwrite(&value, 4, 1, f) : fwrite(&h, 2, 1, f)) == 1;
    return fclose(f) == 0 && ok;
}

/* Item 8: NaN or Inf in the weights is found at load and named (eval, chat and distillation alike;
   stage 1 used to blame the student's gradient); a bad rms_norm_eps is a config error; logits that
   overflow in a model with finite weights are reported with their position, not printed as "nan". */
TEST(non_finite_numbers_are_reported) {
    CHECK(teacher_with("build/rel_nan", "model.norm.weight", NAN, 1), "cannot make the broken teacher");
    static const char *cmds[] = {
        "build/arwkv-eval --model build/rel_nan --text tests/test.h --max-tokens 50",
        "build/arwkv-chat --model build/rel_nan --raw --prompt hi -n 4 --temperature 0",
        "build/arwkv-generate build/rel_nan hi 4",
        "build/arwkv-distill --teacher build/rel_nan --out build/rel_nan_out --stage 1 --data tests/test.h --seq-len 32 --batch 1 --steps 2",
    };
    for (size_t i = 0; i < sizeof cmds / sizeof *cmds; i++) {
        char cmd[512], *out;
        snprintf(cmd, sizeof cmd, "%s 2>&1", cmds[i]);
        int st = test_run(cmd, &out);
        CHECK(st == 1 && strstr(out, "tensor 'model.norm.weight' holds a non-finite value (NaN or Inf) at element 0"), "%s: %d %s", cmds[i], st, out);
        free(out);
    }
    /* finite weights whose products overflow: the position is named */
    CHECK(teacher_with("build/rel_inf", "model.norm.weight", 3e38f, 128), "cannot make the overflowing teacher");
    char *out;
    int st = test_run("build/arwkv-eval --model build/rel_inf --text tests/test.h --max-tokens 50 2>&1", &out);
    CHECK(st == 1 && strstr(out, "the logits at position 0 are not finite"), "eval: %d %s", st, out);
    free(out);
    st = test_run("build/arwkv-chat --model build/rel_inf --raw --prompt hi -n 4 --temperature 0 2>&1", &out);
    CHECK(st == 1 && strstr(out, "are not finite"), "chat: %d %s", st, out);
    free(out);
    system("rm -rf build/rel_eps && cp -r " TEACHER " build/rel_eps && sed -i 's/\"rms_norm_eps\": 1e-06/\"rms_norm_eps\": -1/' build/rel_eps/config.json");
    st = test_run("build/arwkv-eval --model build/rel_eps --text tests/test.h 2>&1", &out);
    CHECK(st == 1 && strstr(out, "rms_norm_eps -1 must be a small positive number") && strstr(out, "build/rel_eps"), "eps: %d %s", st, out);
    free(out);
}

/* The minor items: a directory or a FIFO where a file belongs, a config whose layer count is not the
   checkpoint's; each a precise error and never a hang. */
TEST(wrong_kinds_of_files) {
    char *out;
    int st = test_run("build/arwkv-distill --teacher " TEACHER " --out build/rel_dirdata --stage 1 --data tests --steps 2 2>&1", &out);
    CHECK(st == 1 && strstr(out, "tests: is a directory, not a file"), "--data DIR: %d %s", st, out);
    free(out);
    st = test_run("build/arwkv-eval --model " TEACHER " --text tests 2>&1", &out);
    CHECK(st == 1 && strstr(out, "tests") && strstr(out, "directory"), "--text DIR: %d %s", st, out);
    free(out);
    system("rm -rf build/rel_fifo && mkdir build/rel_fifo && cp " TEACHER "/*.safetensors* " TEACHER "/tokenizer.json build/rel_fifo/ && "
           "mkfifo build/rel_fifo/config.json");
    st = test_run("timeout 20 build/arwkv-eval --model build/rel_fifo --text tests/test.h 2>&1", &out);
    CHECK(st == 1 && strstr(out, "build/rel_fifo/config.json: not a regular file"), "FIFO config: %d %s", st, out);
    free(out);
    static const struct {
        const char *layers, *want;
    } cases[] = {{"2000000000", "num_hidden_layers 2000000000, the checkpoint holds 8 layers"},
                 {"6", "num_hidden_layers 6, the checkpoint holds 8 layers"}};
    for (int i = 0; i < 2; i++) {
        char cmd[512];
        snprintf(cmd, sizeof cmd,
                 "rm -rf build/rel_layers && cp -r " TEACHER " build/rel_layers && sed -i 's/\"num_hidden_layers\": 8/\"num_hidden_layers\": %s/' "
                 "build/rel_layers/config.json && build/arwkv-eval --model build/rel_layers --text tests/test.h 2>&1",
                 cases[i].layers);
        st = test_run(cmd, &out);
        CHECK(st == 1 && strstr(out, cases[i].want), "%s layers: %d %s", cases[i].layers, st, out);
        free(out);
    }
}

/* Item 12: Ctrl-C stops a long prefill (it used to be ignored: generation reset the flag), in a
   conversation and with --raw --prompt; past the trained length the context is warned about once. */
TEST(chat_prefill_interrupt_and_long_context) {
    FILE *f = fopen("build/rel_long.txt", "w");
    for (int i = 0; i < 4000; i++) fprintf(f, "def f(x): return x + %d ", i);
    fprintf(f, "\n");
    fclose(f);
    static const struct {
        const char *cmd, *want;
        int status;
    } cases[] = {
        {"exec build/arwkv-chat --model " TEACHER " -n 4 --temperature 0 < build/rel_long.txt > build/rel_chat.log 2>&1",
         "[stopped while reading the message", 0},
        {"exec build/arwkv-chat --model " TEACHER " --raw --prompt \"$(cat build/rel_long.txt)\" -n 4 --temperature 0 > build/rel_chat.log 2>&1",
         "stopped while reading the prompt", 130},
    };
    for (int k = 0; k < 2; k++) {
        system("rm -f build/rel_chat.log");
        pid_t pid = start(cases[k].cmd);
        usleep(2500000); /* well into the prefill of ~60000 tokens (minutes) */
        double t0 = arwkv_seconds();
        kill(pid, SIGINT);
        int st = exit_status(pid);
        char *out;
        test_run("cat build/rel_chat.log", &out);
        CHECK(st == cases[k].status && strstr(out, cases[k].want), "case %d: status %d: %.300s", k, st, out);
        CHECK(arwkv_seconds() - t0 < 20, "case %d: %.1f s after Ctrl-C", k, arwkv_seconds() - t0);
        free(out);
    }
    /* a teacher whose config says it was trained on 64 positions, given 100 tokens and more */
    system("rm -rf build/rel_short && cp -r " TEACHER " build/rel_short && "
           "sed -i 's/\"max_position_embeddings\": 4096/\"max_position_embeddings\": 64/' build/rel_short/config.json");
    char *out;
    int st = test_run("build/arwkv-chat --model build/rel_short --raw --prompt \"$(head -c 400 build/rel_long.txt)\" -n 40 --temperature 0 2>&1 >/dev/null", &out);
    const char *w = strstr(out, "is now longer than the 64 the model was trained on");
    CHECK(st == 0 && w && !strstr(w + 1, "is now longer"), "one warning: %d %s", st, out);
    free(out);
}

/* Minor item: --resume with another --lr or --align is refused, naming them, unless --override. */
TEST(resume_with_other_options) {
    const char *base = "build/arwkv-distill --teacher " TEACHER " --out build/rel_resume --stage 1 --data tests/test_cli.c --seq-len 32 "
                       "--batch 1 --threads 1 ";
    char cmd[600], *out;
    system("rm -rf build/rel_resume");
    snprintf(cmd, sizeof cmd, "%s --steps 2 2>&1", base);
    int st = test_run(cmd, &out);
    CHECK(st == 0, "first run: %d %s", st, out);
    free(out);
    snprintf(cmd, sizeof cmd, "%s --steps 3 --resume --lr 2e-3 --align mse 2>&1", base);
    st = test_run(cmd, &out);
    CHECK(st == 1 && strstr(out, "saved with lr=0.001") && strstr(out, "(now lr=0.002") && strstr(out, "align=l2 (now align=mse)") &&
              strstr(out, "--override"),
          "changed options: %d %s", st, out);
    free(out);
    snprintf(cmd, sizeof cmd, "%s --steps 3 --resume --lr 2e-3 --align mse --override 2>&1", base);
    st = test_run(cmd, &out);
    CHECK(st == 0 && strstr(out, "resuming from") && strstr(out, "step 3/3"), "--override: %d %s", st, out);
    free(out);
}

int main(void) {
    RUN(numeric_options_are_strict);
    RUN(out_dir_never_overwrites_the_teacher);
    RUN(unwritable_out_fails_before_training);
    RUN(failed_periodic_save_keeps_training);
    RUN(lock_and_stop_signals);
    RUN(closed_stdout_does_not_kill_training);
    RUN(stale_temporaries_are_removed);
    RUN(stage3_long_user_turn);
    RUN(non_finite_numbers_are_reported);
    RUN(wrong_kinds_of_files);
    RUN(chat_prefill_interrupt_and_long_context);
    RUN(resume_with_other_options);
    return test_summary("reliability");
}
