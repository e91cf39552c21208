/* Benchmarks of this area; included by tools/bench.c. */
static int bench_train(int argc, char **argv) {
    (void)argc;
    (void)argv;
    printf("  (not written yet)\n");
    return 0;
}
