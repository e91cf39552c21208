/* Memory: the backend's byte accounting and limit, and the memory plan of a training run checked
   against the allocator's measured peak on the bundled teacher, for every stage and both students.
   The plan may only err on the safe side: it must never be below the peak (a run it accepts must
   not run out), and it must be within PLAN_MARGIN of it (a run it refuses must really not fit). */
#define _POSIX_C_SOURCE 200809L /* popen */
#define ARWKV_IMPLEMENTATION
#include "arwkv.h"
#include "test.h"
#include <sys/wait.h>

#define TEACHER "models/qwen2-code-tiny"
#define PLAN_MARGIN 0.01 /* the plan may exceed the measured peak by at most 1% */

static int quick; /* ARWKV_TEST_QUICK (sanitizer builds): one run per stage instead of every variant */

/* ---- accounting ---------------------------------------------------------------------------------- */

TEST(accounting_counts_every_byte) {
    arwkv_backend *be;
    CHECK_OK(arwkv_backend_cpu(1, &be));
    enum { N = 3000 };
    static void *p[N];
    static size_t size[N];
    uint64_t live = 0, peak = 0;
    test_seed(5);
    for (int i = 0; i < N; i++) {
        size[i] = (size_t)(test_uniform() * 5000);
        CHECK_OK(be->mem->alloc(be, size[i], &p[i]));
        live += size[i];
        peak = live > peak ? live : peak;
        if (i % 3 == 2) { /* free an earlier block at random: exercises deletion from the size table */
            int j = (int)(test_uniform() * i);
            if (p[j]) be->mem->free(be, p[j]), live -= size[j], p[j] = NULL;
        }
    }
    arwkv_memory_use u;
    arwkv_backend_memory(be, &u);
    CHECK(u.in_use == live && u.peak == peak, "in use %llu (expected %llu), peak %llu (expected %llu)", (unsigned long long)u.in_use,
          (unsigned long long)live, (unsigned long long)u.peak, (unsigned long long)peak);
    for (int i = N - 1; i >= 0; i--) be->mem->free(be, p[i]);
    arwkv_backend_memory(be, &u);
    CHECK(u.in_use == 0 && u.peak == peak, "everything freed: in use %llu", (unsigned long long)u.in_use);
    arwkv_backend_reset_peak(be);
    arwkv_backend_memory(be, &u);
    CHECK(u.peak == 0, "reset peak");
    arwkv_backend_destroy(be);
}

TEST(memory_limit_refuses_past_it) {
    arwkv_backend *be;
    CHECK_OK(arwkv_backend_cpu(1, &be));
    arwkv_backend_set_memory_limit(be, 1000);
    void *a = NULL, *b = (void *)&a;
    CHECK_OK(be->mem->alloc(be, 600, &a));
    arwkv_result r = be->mem->alloc(be, 600, &b);
    CHECK(r == ARWKV_ERR_OUT_OF_MEMORY && b == NULL, "past the limit: %s", arwkv_result_string(r));
    CHECK(strstr(arwkv_last_error(), "memory limit") != NULL, "the error names the limit: %s", arwkv_last_error());
    arwkv_memory_use u;
    arwkv_backend_memory(be, &u);
    CHECK(u.in_use == 600 && u.peak == 600 && u.limit == 1000, "a refused allocation is not counted (%llu in use)", (unsigned long long)u.in_use);
    be->mem->free(be, a);
    CHECK_OK(be->mem->alloc(be, 1000, &a));
    be->mem->free(be, a);
    uint64_t free_b = 0, total_b = 0;
    CHECK_OK(arwkv_backend_free_memory(be, &free_b, &total_b));
    CHECK(free_b > 0 && free_b <= total_b, "host memory: %llu available of %llu", (unsigned long long)free_b, (unsigned long long)total_b);
    arwkv_backend_destroy(be);
}

/* ---- the plan against the measured peak ------------------------------------------------------------ */

static arwkv_tokenizer *tok;
static arwkv_dataset data;

typedef struct run_config {
    const char *name;
    int stage, qrwkv6, freeze_mlp, teacher, eval;
    const char *student_dir; /* NULL: a new student made from the teacher */
    int offload;             /* --offload-optimizer: masters and moments leave the backend */
    int share;               /* a new student shares the teacher's tensors instead of copying them */
    int bf16;                /* with offload: the trained matrices' working copy in bf16 */
    int recompute;           /* --recompute: the student keeps only its layer inputs */
    int stream;              /* --stream-teacher: the teacher's layers (and a new student's MLPs) in host memory */
} run_config;

/* Plan the run, then do it (an evaluation, two steps, an evaluation) and compare with the peak,
   which it returns. */
static uint64_t plan_against_peak(const run_config *c) {
    arwkv_backend *be;
    CHECK_OK(arwkv_backend_cpu(2, &be));
    arwkv_student_options so;
    arwkv_student_options_default(&so);
    so.arch = c->qrwkv6 ? ARWKV_ARCH_QRWKV6 : ARWKV_ARCH_ARWKV7;
    so.share_teacher = c->share;
    arwkv_train_options o;
    arwkv_train_options_default(&o, c->stage);
    o.seq_len = 48, o.batch = 2, o.steps = 2, o.lr = 1e-4f, o.freeze_mlp = c->freeze_mlp, o.offload_optimizer = c->offload;
    o.offload_weight_type = c->bf16 ? ARWKV_BF16 : ARWKV_DTYPE_UNKNOWN;
    o.recompute = c->recompute;
    o.stream_teacher = c->stream;
    arwkv_memory_plan plan;
    CHECK_OK(arwkv_memory_plan_training(be, c->teacher ? TEACHER : NULL, c->student_dir, &so, &o, c->eval ? o.seq_len : 0, &plan));
    arwkv_memory_use u;
    arwkv_backend_memory(be, &u);
    CHECK(u.peak == 0, "%s: planning allocated %llu bytes on the backend", c->name, (unsigned long long)u.peak);
    uint64_t sum = 0;
    for (int i = 0; i < plan.n_items; i++) sum += plan.items[i].bytes;
    uint64_t host = 0;
    for (int i = 0; i < plan.n_items; i++) host += plan.items[i].on_host ? plan.items[i].bytes : 0;
    CHECK(sum == plan.total + plan.host_total && host == plan.host_total && plan.total > 0, "%s: the items add up to the totals", c->name);
    CHECK(plan.need == plan.total + plan.host_total && (c->offload || c->stream ? host > 0 : host == 0), "%s: on the CPU both count", c->name);

    arwkv_model *teacher = NULL, *student = NULL;
    arwkv_trainer *tr = NULL;
    if (c->teacher) CHECK_OK(arwkv_model_load_ex(TEACHER, be, c->stream ? ARWKV_LOAD_HOST_LAYERS : 0, &teacher));
    if (c->stream && teacher) { /* host items: the layer blocks, which the backend's accounting does not see */
        uint64_t blocks = 0;
        for (int l = 0; l < teacher->cfg.num_layers; l++) blocks += teacher->host_block_bytes[l];
        uint64_t planned = 0;
        for (int i = 0; i < plan.n_items; i++)
            if (!strcmp(plan.items[i].name, "teacher layers (host)")) planned = plan.items[i].bytes;
        CHECK(planned == blocks && blocks > 0, "%s: the plan's host layers (%llu) are the loaded blocks (%llu)", c->name,
              (unsigned long long)planned, (unsigned long long)blocks);
    }
    if (c->student_dir) CHECK_OK(arwkv_model_load(c->student_dir, be, &student));
    else if (teacher) CHECK_OK(arwkv_student_create(teacher, &so, &student));
    if (c->share && student && teacher) {
        arwkv_param *mine = arwkv_model_param(student, "model.layers.0.mlp.up_proj.weight"),
                    *theirs = arwkv_model_param(teacher, "model.layers.0.mlp.up_proj.weight");
        CHECK(mine && theirs && mine->data == theirs->data && !mine->owns_data, "%s: the MLP is the teacher's own", c->name);
    }
    CHECK_OK(arwkv_dataset_pack(&data, o.seq_len, 1));
    if (student) CHECK_OK(arwkv_trainer_create(teacher, student, &o, &data, &tr));
    if (tr) {
        arwkv_eval_stats ev;
        arwkv_step_stats st;
        if (c->eval) CHECK_OK(arwkv_trainer_evaluate(tr, &data, 1, &ev));
        CHECK_OK(arwkv_trainer_step(tr, &st));
        CHECK_OK(arwkv_trainer_step(tr, &st));
        if (c->eval) CHECK_OK(arwkv_trainer_evaluate(tr, &data, 1, &ev));
    }
    arwkv_backend_memory(be, &u);
    double over = ((double)plan.total - (double)u.peak) / (double)u.peak;
    printf("    %-28s plan %10llu bytes, peak %10llu (plan %+.3f%%), %llu mapped\n", c->name, (unsigned long long)plan.total,
           (unsigned long long)u.peak, 100 * over, (unsigned long long)plan.mapped);
    CHECK(plan.total >= u.peak, "%s: the plan (%llu) is below the peak (%llu)", c->name, (unsigned long long)plan.total,
          (unsigned long long)u.peak);
    CHECK(over <= PLAN_MARGIN, "%s: the plan exceeds the peak by %.2f%%", c->name, 100 * over);
    arwkv_trainer_free(tr);
    arwkv_model_free(student);
    arwkv_model_free(teacher);
    arwkv_memory_use after;
    arwkv_backend_memory(be, &after);
    CHECK(after.in_use == 0, "%s: everything given back (%llu bytes left)", c->name, (unsigned long long)after.in_use);
    arwkv_backend_destroy(be);
    return u.peak;
}

#define STUDENT_DIR "build/test_memory_student"

/* A saved ARWKV-7 student for the stage-2 and stage-3 runs (as a stage-1 run would leave it). */
static int save_student(void) {
    arwkv_backend *be;
    arwkv_model *t = NULL, *s = NULL;
    int ok = arwkv_backend_cpu(1, &be) == ARWKV_OK && arwkv_model_load(TEACHER, be, &t) == ARWKV_OK &&
             arwkv_student_create(t, NULL, &s) == ARWKV_OK && arwkv_model_save(s, STUDENT_DIR, ARWKV_F32, 0, TEACHER) == ARWKV_OK;
    if (!ok) printf("    cannot make the student: %s\n", arwkv_last_error());
    arwkv_model_free(s);
    arwkv_model_free(t);
    arwkv_backend_destroy(be);
    return ok;
}

TEST(plan_matches_peak_stage1) {
    run_config a = {"stage 1, ARWKV-7", 1, 0, 0, 1, 1, NULL, 0, 0, 0, 0, 0}, b = {"stage 1, QRWKV6", 1, 1, 0, 1, 1, NULL, 0, 0, 0, 0, 0},
               c = {"stage 1, ARWKV-7, no eval", 1, 0, 0, 1, 0, NULL, 0, 0, 0, 0, 0};
    plan_against_peak(&a);
    if (quick) return;
    plan_against_peak(&b);
    plan_against_peak(&c);
    run_config d = {"stage 1, shared with teacher", 1, 0, 0, 1, 1, NULL, 0, 1, 0, 0, 0}, e = {"stage 1, QRWKV6, shared", 1, 1, 0, 1, 0, NULL, 0, 1, 0, 0, 0};
    plan_against_peak(&d);
    plan_against_peak(&e);
}

/* --stream-teacher: the device holds two layer slots instead of the teacher's layers; the plan
   counts the slots against the peak and the layers as host memory. */
TEST(plan_matches_peak_stream_teacher) {
    run_config a = {"stage 1, --stream-teacher", 1, 0, 0, 1, 0, NULL, 0, 1, 0, 0, 1},
               q = {"stage 1, QRWKV6, --stream-teacher", 1, 1, 0, 1, 0, NULL, 0, 1, 0, 0, 1},
               b = {"stage 2, --stream-teacher", 2, 0, 1, 1, 1, STUDENT_DIR, 0, 0, 0, 0, 1};
    plan_against_peak(&a);
    if (quick) return;
    plan_against_peak(&q);
    plan_against_peak(&b);
}

TEST(plan_matches_peak_stage2) {
    run_config a = {"stage 2, saved ARWKV-7", 2, 0, 0, 1, 1, STUDENT_DIR, 0, 0, 0, 0, 0}, b = {"stage 2, --freeze-mlp", 2, 0, 1, 1, 1, STUDENT_DIR, 0, 0, 0, 0, 0},
               c = {"stage 2, new QRWKV6", 2, 1, 0, 1, 1, NULL, 0, 0, 0, 0, 0}, d = {"stage 2, new ARWKV-7, no eval", 2, 0, 0, 1, 0, NULL, 0, 0, 0, 0, 0},
               e = {"stage 2, --offload-optimizer", 2, 0, 0, 1, 1, STUDENT_DIR, 1, 0, 0, 0, 0},
               f = {"stage 2, shared, --freeze-mlp", 2, 0, 1, 1, 1, NULL, 0, 1, 0, 0, 0},
               g = {"stage 2, offload, bf16 weights", 2, 0, 0, 1, 1, STUDENT_DIR, 1, 0, 1, 0, 0};
    plan_against_peak(&g);
    if (quick) return;
    plan_against_peak(&f);
    plan_against_peak(&e);
    plan_against_peak(&a);
    plan_against_peak(&b);
    plan_against_peak(&c);
    plan_against_peak(&d);
}

/* Recomputation keeps one layer's activations instead of every layer's: the plan follows the
   allocator, and both fall well below the run that keeps them all. */
TEST(plan_matches_peak_recompute) {
    run_config a = {"stage 2, --recompute", 2, 0, 0, 1, 1, STUDENT_DIR, 0, 0, 0, 1, 0},
               b = {"stage 2, QRWKV6, --recompute", 2, 1, 0, 1, 0, NULL, 0, 0, 0, 1, 0};
    uint64_t with = plan_against_peak(&a), without = plan_against_peak(&(run_config){"stage 2, saved ARWKV-7", 2, 0, 0, 1, 1, STUDENT_DIR, 0, 0, 0, 0, 0});
    CHECK(with > 0 && without > with, "recomputation lowers the peak: %llu bytes against %llu", (unsigned long long)with,
          (unsigned long long)without);
    if (quick) return;
    plan_against_peak(&b);
}

TEST(plan_matches_peak_stage3) {
    run_config a = {"stage 3, no teacher", 3, 0, 0, 0, 1, STUDENT_DIR, 0, 0, 0, 0, 0}, b = {"stage 3, teacher for eval", 3, 0, 0, 1, 1, STUDENT_DIR, 0, 0, 0, 0, 0};
    plan_against_peak(&a);
    plan_against_peak(&b);
}

/* ---- refusing ---------------------------------------------------------------------------------------- */

TEST(plan_refuses_with_advice) {
    arwkv_backend *be;
    CHECK_OK(arwkv_backend_cpu(1, &be));
    arwkv_train_options o;
    arwkv_train_options_default(&o, 2);
    o.seq_len = 64, o.batch = 4;
    arwkv_memory_plan plan;
    CHECK_OK(arwkv_memory_plan_training(be, TEACHER, STUDENT_DIR, NULL, &o, 0, &plan));
    CHECK_OK(arwkv_memory_plan_check(&plan));
    /* one byte too few */
    arwkv_backend_set_memory_limit(be, plan.total - 1);
    arwkv_memory_plan tight;
    CHECK_OK(arwkv_memory_plan_training(be, TEACHER, STUDENT_DIR, NULL, &o, 0, &tight));
    CHECK(tight.need == plan.total && tight.available == plan.total - 1, "the limit is what is available");
    arwkv_result r = arwkv_memory_plan_check(&tight);
    const char *e = arwkv_last_error();
    CHECK(r == ARWKV_ERR_OUT_OF_MEMORY, "refused: %s", arwkv_result_string(r));
    CHECK(strstr(e, "memory limit") && strstr(e, "biggest parts") && strstr(e, "AdamW moments"), "names the need and the parts: %s", e);
    CHECK(strstr(e, "--freeze-mlp (") && strstr(e, "--batch 2 (") && strstr(e, "--seq-len 32 (") && strstr(e, "fits"),
          "names the options that fit: %s", e);
    arwkv_memory_use u;
    arwkv_backend_memory(be, &u);
    CHECK(u.peak == 0, "nothing allocated (%llu bytes)", (unsigned long long)u.peak);
    /* a run made anyway stops at the limit with an error, never past it */
    arwkv_model *t = NULL, *s = NULL;
    arwkv_trainer *tr = NULL;
    arwkv_step_stats st;
    CHECK_OK(arwkv_dataset_pack(&data, o.seq_len, 1));
    r = arwkv_model_load(TEACHER, be, &t);
    if (r == ARWKV_OK) r = arwkv_model_load(STUDENT_DIR, be, &s);
    if (r == ARWKV_OK) r = arwkv_trainer_create(t, s, &o, &data, &tr);
    if (r == ARWKV_OK) r = arwkv_trainer_step(tr, &st);
    CHECK(r == ARWKV_ERR_OUT_OF_MEMORY && strstr(arwkv_last_error(), "memory limit"), "stopped at the limit: %s", arwkv_last_error());
    arwkv_backend_memory(be, &u);
    CHECK(u.peak <= plan.total - 1, "never past the limit (peak %llu)", (unsigned long long)u.peak);
    arwkv_trainer_free(tr);
    arwkv_model_free(s);
    arwkv_model_free(t);
    /* nothing helps when even the weights do not fit */
    arwkv_backend_set_memory_limit(be, 1024);
    CHECK_OK(arwkv_memory_plan_training(be, TEACHER, STUDENT_DIR, NULL, &o, 0, &tight));
    CHECK(arwkv_memory_plan_check(&tight) == ARWKV_ERR_OUT_OF_MEMORY && strstr(arwkv_last_error(), "still too much"),
          "options that do not fit say so: %s", arwkv_last_error());
    arwkv_backend_destroy(be);
}

/* ---- the offloaded optimizer ------------------------------------------------------------------------- */

/* n steps of a stage-2 run on the bundled teacher's student (the embedding, 19M floats, takes several
   transfer slices); losses into loss[]. out_dir != NULL: a checkpoint after step save_at. */
static void offload_run(arwkv_backend *be, arwkv_model *teacher, arwkv_model *s, int offload, int first, int n, float *loss,
                        const char *resume_from, const char *out_dir, int save_at, arwkv_dtype wtype, float lr) {
    arwkv_train_options o;
    arwkv_train_options_default(&o, 2);
    o.seq_len = 32, o.batch = 1, o.steps = 8, o.lr = lr, o.warmup_steps = 2, o.offload_optimizer = offload;
    o.offload_weight_type = wtype;
    (void)be;
    CHECK_OK(arwkv_dataset_pack(&data, o.seq_len, 3));
    arwkv_trainer *tr = NULL;
    CHECK_OK(arwkv_trainer_create(teacher, s, &o, &data, &tr));
    if (!tr) return;
    if (resume_from) CHECK_OK(arwkv_trainer_restore(tr, resume_from));
    CHECK(arwkv_trainer_steps_done(tr) == first, "starts after step %d", first);
    for (int i = first; i < first + n; i++) {
        arwkv_step_stats st;
        CHECK_OK(arwkv_trainer_step(tr, &st));
        loss[i] = st.loss;
        if (out_dir && i + 1 == save_at) CHECK_OK(arwkv_trainer_save(tr, out_dir, NULL));
    }
    arwkv_trainer_free(tr);
}

static int same_weights(arwkv_model *a, arwkv_model *b) {
    int same = 1;
    for (int i = 0; i < a->n_params; i++) {
        arwkv_param *p = &a->params[i], *q = arwkv_model_param(b, p->name);
        same &= q && q->dtype == p->dtype && memcmp(p->data, q->data, (size_t)p->numel * arwkv_dtype_size(p->dtype)) == 0;
    }
    return same;
}

/* On the CPU the offloaded update is the same AdamW op on the same numbers: every loss and every
   weight must agree to the last bit with the run that keeps the optimizer on the backend. */
TEST(offload_matches_on_backend_bit_for_bit) {
    arwkv_backend *be;
    CHECK_OK(arwkv_backend_cpu(2, &be));
    arwkv_model *t = NULL, *a = NULL, *b = NULL;
    CHECK_OK(arwkv_model_load(TEACHER, be, &t));
    CHECK_OK(arwkv_model_load(STUDENT_DIR, be, &a));
    CHECK_OK(arwkv_model_load(STUDENT_DIR, be, &b));
    float la[8], lb[8];
    if (t && a && b) {
        offload_run(be, t, a, 0, 0, 4, la, NULL, NULL, 0, ARWKV_DTYPE_UNKNOWN, 1e-3f);
        arwkv_memory_use on;
        arwkv_backend_memory(be, &on);
        offload_run(be, t, b, 1, 0, 4, lb, NULL, NULL, 0, ARWKV_DTYPE_UNKNOWN, 1e-3f);
        CHECK(memcmp(la, lb, 4 * sizeof(float)) == 0, "losses %.9g %.9g %.9g %.9g vs %.9g %.9g %.9g %.9g", la[0], la[1], la[2], la[3], lb[0], lb[1],
              lb[2], lb[3]);
        CHECK(la[3] != la[0], "the run learns something (%g -> %g)", la[0], la[3]);
        CHECK(same_weights(a, b), "weights identical after 4 steps");
        int where = 1;
        for (int i = 0; i < b->n_params; i++) where &= b->params[i].master != NULL && a->params[i].master == NULL;
        CHECK(where, "masters on the host only in the offloaded run");
    }
    arwkv_model_free(a), arwkv_model_free(b), arwkv_model_free(t);
    arwkv_backend_destroy(be);
}

/* Stop after 2 offloaded steps, resume from the files (offloaded again, and on the backend): the same
   losses and weights as 5 unbroken steps. */
static void resume_offloaded(arwkv_dtype wtype) {
    arwkv_backend *be;
    CHECK_OK(arwkv_backend_cpu(2, &be));
    arwkv_model *t = NULL, *a = NULL;
    CHECK_OK(arwkv_model_load(TEACHER, be, &t));
    CHECK_OK(arwkv_model_load(STUDENT_DIR, be, &a));
    system("rm -rf build/test_memory_ckpt");
    float straight[8], resumed[8];
    if (t && a) offload_run(be, t, a, 1, 0, 5, straight, NULL, "build/test_memory_ckpt", 2, wtype, 1e-3f);
    char *dir = NULL;
    CHECK_OK(arwkv_checkpoint_latest("build/test_memory_ckpt", &dir));
    /* resumed offloaded again (the same run), and with the optimizer on the backend (fp32 weights:
       the same run only with fp32 working copies) */
    for (int offload = 1; offload >= (wtype == ARWKV_BF16 ? 1 : 0) && dir && t; offload--) {
        arwkv_model *b = NULL;
        CHECK_OK(arwkv_model_load(dir, be, &b));
        if (!b) break;
        memset(resumed, 0, sizeof resumed);
        offload_run(be, t, b, offload, 2, 3, resumed, dir, NULL, 0, wtype, 1e-3f);
        const char *how = offload ? (wtype == ARWKV_BF16 ? "offloaded, bf16 weights" : "offloaded") : "on the backend";
        CHECK(memcmp(straight + 2, resumed + 2, 3 * sizeof(float)) == 0, "resumed %s: losses %.9g %.9g %.9g vs %.9g %.9g %.9g", how,
              straight[2], straight[3], straight[4], resumed[2], resumed[3], resumed[4]);
        CHECK(same_weights(a, b), "resumed %s: final weights identical", how);
        int masters = 1;
        for (int i = 0; i < a->n_params; i++) {
            arwkv_param *p = &a->params[i], *q = arwkv_model_param(b, p->name);
            if (p->master && q && q->master) masters &= memcmp(p->master, q->master, (size_t)p->numel * sizeof(float)) == 0;
        }
        CHECK(masters, "resumed %s: fp32 masters identical", how);
        arwkv_model_free(b);
    }
    arwkv_free(dir);
    arwkv_model_free(a), arwkv_model_free(t);
    arwkv_backend_destroy(be);
}

TEST(offload_resume_is_exact) {
    resume_offloaded(ARWKV_DTYPE_UNKNOWN);
    resume_offloaded(ARWKV_BF16);
}

/* A bf16 working copy (a GPU's default) trains on rounded weights. Compared with fp32 training that
   starts from the same weights rounded to bf16: the first step (same forward) gives the same loss to
   the last bit; later steps differ by the rounding of each update in the working copy (the master
   keeps it). An Adam update is about lr per element, the size of a bf16 rounding step of these
   weights, so on this tiny freshly initialized student the later losses move by up to ~10% (measured
   0.2-11% across batches): the check is 20%, which a misread working copy (bf16 taken as fp32, or
   stale weights) breaks by orders of magnitude. The matrices on the backend are bf16, the vectors
   fp32, and each working copy is its host master rounded. */
TEST(offload_bf16_weights_stay_close) {
    arwkv_backend *be;
    CHECK_OK(arwkv_backend_cpu(2, &be));
    arwkv_model *t = NULL, *a = NULL, *b = NULL;
    CHECK_OK(arwkv_model_load(TEACHER, be, &t));
    CHECK_OK(arwkv_model_load(STUDENT_DIR, be, &a));
    CHECK_OK(arwkv_model_load(STUDENT_DIR, be, &b));
    float la[8], lb[8];
    if (t && a && b) {
        for (int i = 0; i < a->n_params; i++) { /* a: fp32, from the bf16-rounded weights */
            arwkv_param *p = &a->params[i];
            float *h = (float *)malloc((size_t)p->numel * sizeof(float));
            if (!h || !p->is_matrix) {
                free(h);
                continue;
            }
            CHECK_OK(arwkv_param_read(a, p, h, p->numel));
            for (int64_t e = 0; e < p->numel; e++) h[e] = arwkv_bf16_to_f32(arwkv_f32_to_bf16(h[e]));
            CHECK_OK(arwkv_param_write(a, p, h, p->numel));
            free(h);
        }
        offload_run(be, t, a, 0, 0, 4, la, NULL, NULL, 0, ARWKV_DTYPE_UNKNOWN, 1e-4f);
        offload_run(be, t, b, 1, 0, 4, lb, NULL, NULL, 0, ARWKV_BF16, 1e-4f);
        double worst = 0;
        for (int i = 0; i < 4; i++) worst = fmax(worst, fabs((double)la[i] - lb[i]) / fabs((double)la[i]));
        printf("    losses fp32 %.6f %.6f %.6f %.6f, bf16 weights %.6f %.6f %.6f %.6f (worst %.2e)\n", la[0], la[1], la[2], la[3], lb[0], lb[1], lb[2],
               lb[3], worst);
        CHECK(la[0] == lb[0], "the first step is the same forward: %.9g vs %.9g", la[0], lb[0]);
        CHECK(worst < 0.2, "losses within 20%% (worst %.3g)", worst);
        arwkv_param *k = arwkv_model_param(b, "model.layers.1.self_attn.time_mixer.key.weight"),
                    *x = arwkv_model_param(b, "model.layers.1.self_attn.time_mixer.x_k");
        CHECK(k && k->dtype == ARWKV_BF16 && k->master && x && x->dtype == ARWKV_F32 && x->master, "bf16 matrices, fp32 vectors, host masters");
        if (k && k->master && k->dtype == ARWKV_BF16) {
            int rounded = 1;
            for (int64_t e = 0; e < k->numel; e++) rounded &= ((const uint16_t *)k->data)[e] == arwkv_f32_to_bf16(k->master[e]);
            CHECK(rounded, "the working copy is the master rounded to bf16");
        }
    }
    arwkv_model_free(a), arwkv_model_free(b), arwkv_model_free(t);
    arwkv_backend_destroy(be);
}

static int run(const char *cmd, char *out, size_t cap) {
    FILE *f = popen(cmd, "r");
    if (!f) return -1;
    size_t n = fread(out, 1, cap - 1, f);
    out[n] = 0;
    int st = pclose(f);
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

TEST(distill_prints_plan_and_refuses) {
    if (!test_file_exists("build/arwkv-distill")) SKIP("build/arwkv-distill is not built");
    static char out[16384];
    system("rm -rf build/test_memory_out");
    int st = run("build/arwkv-distill --teacher " TEACHER " --out build/test_memory_out --stage 2 --student " STUDENT_DIR
                 " --data tests/test_memory.c --seq-len 64 --batch 4 --steps 1 --memory-limit 100M 2>&1",
                 out, sizeof out);
    CHECK(st != 0, "non-zero exit (%d)", st);
    CHECK(strstr(out, "memory plan: stage 2, 4 x 64 tokens") && strstr(out, "AdamW moments") && strstr(out, "of 100.0 MiB (the memory limit)"),
          "the plan is printed: %s", out);
    CHECK(strstr(out, "arwkv-distill: memory: the run needs") && strstr(out, "To make it fit: --freeze-mlp"), "the refusal: %s", out);
    CHECK(!strstr(out, "step 1/1") && !test_file_exists("build/test_memory_out/checkpoints"), "nothing ran");
    st = run("build/arwkv-distill --teacher " TEACHER " --out build/test_memory_out --stage 2 --data x --memory-limit 12Q 2>&1", out, sizeof out);
    CHECK(st == 2 && strstr(out, "--memory-limit takes a size"), "a bad size: %d %s", st, out);
}

int main(void) {
    quick = getenv("ARWKV_TEST_QUICK") && *getenv("ARWKV_TEST_QUICK") == '1';
    RUN(accounting_counts_every_byte);
    RUN(memory_limit_refuses_past_it);
    arwkv_dataset_init(&data);
    if (arwkv_tokenizer_load(TEACHER, &tok) != ARWKV_OK || arwkv_dataset_add_file(&data, tok, "tests/test_memory.c", 0) != ARWKV_OK ||
        !save_student()) {
        printf("FAIL setup: %s\n", arwkv_last_error());
        return 1;
    }
    RUN(plan_matches_peak_stage1);
    RUN(plan_matches_peak_stage2);
    RUN(plan_matches_peak_stream_teacher);
    RUN(plan_matches_peak_recompute);
    RUN(plan_matches_peak_stage3);
    RUN(plan_refuses_with_advice);
    RUN(offload_matches_on_backend_bit_for_bit);
    RUN(offload_resume_is_exact);
    RUN(offload_bf16_weights_stay_close);
    RUN(distill_prints_plan_and_refuses);
    arwkv_dataset_free(&data);
    arwkv_tokenizer_free(tok);
    return test_summary("memory");
}
