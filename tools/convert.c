/* arwkv-convert: make a student from a teacher.

     arwkv-convert --teacher DIR --out DIR [--arch arwkv7|qrwkv6] [--init upstream|inherit]
                   [--no-gate] [--group-norm] [--seed S]

   The teacher is a Qwen2, Llama or Qwen3 ForCausalLM directory. The student is the teacher with every
   self-attention replaced by a time mix: RWKV-7 (ARWKV,
   RwkvHybridForCausalLM, the default) or RWKV-6 (QRWKV6, RWKV6Qwen2ForCausalLM). Embeddings, norms,
   MLPs and head are copied; the time mix starts from upstream's init rule (or, with --init inherit,
   takes its r/k/v/o from the attention's q/k/v/o). The directory written is a Hugging Face model
   with the teacher's tokenizer files, ready for arwkv-distill, arwkv-eval and arwkv-chat. */
#define ARWKV_IMPLEMENTATION
#include "arwkv.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void usage(FILE *f) {
    fprintf(f, "usage: arwkv-convert --teacher DIR --out DIR [--arch arwkv7|qrwkv6] [--init upstream|inherit]\n"
               "                     [--no-gate] [--group-norm] [--seed S]\n"
               "  --teacher is a Hugging Face directory or a GGUF file; the student is a directory\n");
}

int main(int argc, char **argv) {
    const char *teacher_dir = NULL, *out = NULL;
    arwkv_student_options o;
    arwkv_student_options_default(&o);
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        int has = i + 1 < argc;
        if (!strcmp(a, "--teacher") && has) teacher_dir = argv[++i];
        else if (!strcmp(a, "--out") && has) out = argv[++i];
        else if (!strcmp(a, "--seed") && has) {
            if (arwkv_parse_u64(a, argv[++i], &o.seed) != ARWKV_OK) return fprintf(stderr, "arwkv-convert: %s\n", arwkv_last_error()), 2;
        }
        else if (!strcmp(a, "--no-gate")) o.gate = 0;
        else if (!strcmp(a, "--group-norm")) o.group_norm = 1;
        else if (!strcmp(a, "--init") && has) {
            const char *v = argv[++i];
            if (!strcmp(v, "upstream")) o.init = ARWKV_INIT_UPSTREAM;
            else if (!strcmp(v, "inherit")) o.init = ARWKV_INIT_INHERIT;
            else {
                fprintf(stderr, "arwkv-convert: --init must be upstream or inherit, not '%s'\n", v);
                return 2;
            }
        } else if (!strcmp(a, "--arch") && has) {
            const char *v = argv[++i];
            if (!strcmp(v, "arwkv7")) o.arch = ARWKV_ARCH_ARWKV7;
            else if (!strcmp(v, "qrwkv6")) o.arch = ARWKV_ARCH_QRWKV6;
            else {
                fprintf(stderr, "arwkv-convert: --arch must be arwkv7 or qrwkv6, not '%s'\n", v);
                return 2;
            }
        } else if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            usage(stdout);
            return 0;
        } else {
            fprintf(stderr, "arwkv-convert: unknown or incomplete option '%s'\n", a);
            usage(stderr);
            return 2;
        }
    }
    if (!teacher_dir || !out) {
        usage(stderr);
        return 2;
    }
    arwkv_backend *be = NULL;
    arwkv_model *t = NULL, *s = NULL;
    arwkv_out_dir *od = NULL;
    const char *inputs[1] = {teacher_dir};
    arwkv_result r = arwkv_out_dir_open(out, inputs, 1, &od); /* never write into the teacher */
    if (r == ARWKV_OK && *arwkv_out_dir_note(od)) printf("%s\n", arwkv_out_dir_note(od));
    if (r == ARWKV_OK) r = arwkv_backend_cpu(0, &be);
    if (r == ARWKV_OK) r = arwkv_model_load(teacher_dir, be, &t);
    if (r == ARWKV_OK) r = arwkv_student_create(t, &o, &s);
    if (r == ARWKV_OK) r = arwkv_model_save(s, out, ARWKV_DTYPE_UNKNOWN, 0, teacher_dir);
    if (r == ARWKV_OK)
        printf("%s: %s student of %s (%s, %lld parameters, init %s%s)\n", out, arwkv_arch_name(s->cfg.arch), teacher_dir,
               arwkv_arch_name(t->cfg.arch), (long long)arwkv_model_numel(s), o.init == ARWKV_INIT_INHERIT ? "inherit" : "upstream",
               s->cfg.arch == ARWKV_ARCH_ARWKV7 ? (s->cfg.wkv_has_gate ? ", gate" : ", no gate") : "");
    else
        fprintf(stderr, "arwkv-convert: %s\n", arwkv_last_error());
    arwkv_model_free(s);
    arwkv_model_free(t);
    arwkv_backend_destroy(be);
    arwkv_out_dir_close(od);
    return r == ARWKV_OK ? 0 : 1;
}
