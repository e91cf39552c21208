/* Teacher against student at long context: the teacher keeps a KV cache that grows with every token
   (and attends over all of it), a student keeps a fixed recurrent state. For each context length
   this reads that many tokens (prefill), then generates a few (decode), and reports the speeds and
   the memory the conversation takes.

     arwkv-bench context [MAX_CONTEXT [THREADS]]     (default 32768) */

static int bench_context_run(arwkv_model *m, int ctx, int n_decode, double *prefill_tps, double *decode_tps, size_t *bytes) {
    arwkv_session *s;
    if (arwkv_session_create(m, 0, &s) != ARWKV_OK) return -1;
    int32_t *ids = (int32_t *)malloc(sizeof(int32_t) * (size_t)ctx);
    float *logits = (float *)malloc(sizeof(float) * (size_t)m->cfg.vocab_size);
    uint64_t x = 12345;
    for (int i = 0; i < ctx; i++) {
        x ^= x << 13, x ^= x >> 7, x ^= x << 17;
        ids[i] = (int32_t)(x % 50000); /* token ids as ordinary text uses them */
    }
    int rc = 0;
    double t0 = bench_now();
    /* the teacher's prefill is one pass over the whole context; a student reads it in pieces */
    if (arwkv_session_feed(s, ids, ctx, logits) != ARWKV_OK) rc = -1;
    *prefill_tps = ctx / (bench_now() - t0);
    t0 = bench_now();
    for (int i = 0; i < n_decode && rc == 0; i++) {
        int32_t next = ids[i];
        if (arwkv_session_feed(s, &next, 1, logits) != ARWKV_OK) rc = -1;
    }
    *decode_tps = n_decode / (bench_now() - t0);
    *bytes = arwkv_session_memory_bytes(s);
    free(ids);
    free(logits);
    arwkv_session_free(s);
    return rc;
}

static int bench_context(int argc, char **argv) {
    int max_ctx = bench_int_arg(argc, argv, 1, "MAX_CONTEXT", 32768), threads = bench_int_arg(argc, argv, 2, "THREADS", 0);
    arwkv_backend *be;
    arwkv_model *teacher = NULL, *student = NULL;
    if (arwkv_backend_cpu(threads, &be) != ARWKV_OK || arwkv_model_load("models/qwen2-code-tiny", be, &teacher) != ARWKV_OK ||
        arwkv_student_create(teacher, NULL, &student) != ARWKV_OK) {
        fprintf(stderr, "bench context: %s\n", arwkv_last_error());
        return 1;
    }
    printf("  models/qwen2-code-tiny (teacher, Qwen2) vs a student made from it (ARWKV-7); %s\n", arwkv_backend_name(be));
    printf("  %-8s %7s | %14s %13s %12s %10s\n", "model", "context", "prefill tok/s", "decode tok/s", "memory", "bytes/token");
    int lengths[3] = {1024, 8192, 32768};
    int status = 0;
    for (int k = 0; k < 3; k++) {
        int ctx = lengths[k];
        if (ctx > max_ctx) break;
        for (int which = 0; which < 2; which++) {
            arwkv_model *m = which ? student : teacher;
            double pf, dc;
            size_t bytes;
            if (bench_context_run(m, ctx, 16, &pf, &dc, &bytes) != 0) {
                fprintf(stderr, "bench context: %s\n", arwkv_last_error());
                status = 1;
                continue;
            }
            printf("  %-8s %7d | %14.0f %13.1f %9.2f MiB %10.0f\n", which ? "student" : "teacher", ctx, pf, dc, bytes / 1048576.0,
                   (double)bytes / ctx);
            fflush(stdout);
        }
    }
    printf("  (memory: the teacher's KV cache in use, which grows by layers x 2 x kv_heads x head_dim floats per token;\n"
           "   the student's recurrent state, the same at any length)\n");
    arwkv_model_free(student);
    arwkv_model_free(teacher);
    arwkv_backend_destroy(be);
    return status;
}
