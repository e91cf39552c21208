# arwkv - build everything into build/ with a C compiler and libc (libm, pthreads).
#
#   make               tools, examples and tests
#   make test          build and run the whole test suite; ends with "N passed, M failed"
#   make test-asan     the same tests under AddressSanitizer + UndefinedBehaviorSanitizer
#   make fuzz          libFuzzer targets for the parsers, a bounded run (FUZZ_SECONDS each)
#   make bench         build/arwkv-bench
#   make gpu           GPU builds with nvcc: build/gpu/test_gpu and build/gpu/arwkv-* (see below)
#   make gpu-hip       the same with hipcc for AMD (build/hip/)
#
# Options: CC=clang, ARCH= (drop -march=native), WERROR=1 (warnings fail the build, as in CI),
# B=DIR (build directory). The CPU kernels follow ARCH: -march=native picks AVX-512 or AVX2 where the
# CPU has them; CI also runs `make B=build/avx2 ARCH="-mavx2 -mfma" test` and `make B=build/scalar
# ARCH= test` (portable C), so each path stays tested on any machine.

CC      ?= cc
CXX     ?= c++
ARCH    ?= -march=native
OPT     ?= -O2
WARN    := -Wall -Wextra -Wshadow -Wno-unused-function
ifeq ($(WERROR),1)
WARN    += -Werror
endif
CFLAGS  := -std=c11 $(OPT) $(ARCH) $(WARN) -g
CXXFLAGS:= -std=c++17 $(OPT) $(ARCH) $(WARN) -g
LDLIBS  := -lm -lpthread
B       := build
HDR     := arwkv.h

TOOLS    := $(patsubst tools/%.c,$(B)/arwkv-%,$(wildcard tools/*.c))
EXAMPLES := $(patsubst examples/%.c,$(B)/arwkv-%,$(wildcard examples/*.c))
TEST_SRC := $(wildcard tests/test_*.c)
TESTS    := $(patsubst tests/%.c,$(B)/%,$(TEST_SRC))
COMPILE_CHECKS := $(B)/compile_c_gcc $(B)/compile_c_clang $(B)/compile_cpp $(B)/compile_static $(B)/compile_public_api \
                  $(B)/compile_no_tokenizer $(B)/compile_no_training $(B)/compile_no_tokenizer_no_training
# the GPU kernels (arwkv_hip.h) run by a CPU emulator, as NVIDIA (warp 32) and as AMD (wave 64)
GPU_EMU_TESTS  := $(B)/test_gpu_emu32 $(B)/test_gpu_emu64

.DEFAULT_GOAL := all
.PHONY: all test test-asan fuzz bench clean compile-checks demo gpu gpu-hip gpu-test distill-smollm2

# The README's first command: distill the bundled teacher on this CPU (4 minutes on 2 cores).
demo: $(B)/arwkv-distill
	@B=$(B) sh tools/demo.sh

bench: $(B)/arwkv-bench
	$(B)/arwkv-bench

# The real recipe: SmolLM2-135M-Instruct into ARWKV-7 and QRWKV6 students on one GPU (bench/distill-smollm2.sh
# says the steps, the knobs and the hyper-parameters; SMOKE=1 runs the same pipeline on this CPU at toy sizes).
distill-smollm2:
	bash bench/distill-smollm2.sh all
all: $(TOOLS) $(EXAMPLES) $(TESTS) $(GPU_EMU_TESTS) $(COMPILE_CHECKS)

$(B):
	@mkdir -p $(B)

$(B)/arwkv-%: tools/%.c $(HDR) | $(B)
	$(CC) $(CFLAGS) -I. -o $@ $< $(LDLIBS)
$(B)/arwkv-%: examples/%.c $(HDR) | $(B)
	$(CC) $(CFLAGS) -I. -o $@ $< $(LDLIBS)
$(B)/arwkv-bench: tools/bench.c $(wildcard tools/bench/*.h) $(HDR) | $(B)
	$(CC) $(CFLAGS) -I. -Itools -o $@ $< $(LDLIBS)

$(B)/test_%: tests/test_%.c tests/test.h tests/gguf_write.h $(HDR) | $(B)
	$(CC) $(CFLAGS) -I. -Itests -o $@ $< $(LDLIBS)

# The header compiles as C11 with gcc and clang, as C++17, and with ARWKV_STATIC.
$(B)/compile_c_gcc: tests/compile_c.c $(HDR) | $(B)
	gcc -std=c11 -pedantic $(OPT) $(ARCH) $(WARN) -I. -o $@ $< $(LDLIBS)
$(B)/compile_c_clang: tests/compile_c.c $(HDR) | $(B)
	clang -std=c11 -pedantic $(OPT) $(ARCH) $(WARN) -I. -o $@ $< $(LDLIBS)
$(B)/compile_cpp: tests/compile_cpp.cpp $(HDR) | $(B)
	$(CXX) $(CXXFLAGS) -I. -o $@ $< $(LDLIBS)
$(B)/compile_static: tests/compile_static.c $(HDR) | $(B)
	$(CC) $(CFLAGS) -I. -o $@ $< $(LDLIBS)

# The optional switches leave parts out (the header's BUILD OPTIONS); one file built with each, -O0: the
# check is that the rest compiles warning-free and runs, not how fast.
OPTION_FLAGS := -std=c11 -pedantic -O0 $(ARCH) $(WARN)
$(B)/compile_no_tokenizer: tests/compile_options.c $(HDR) | $(B)
	$(CC) $(OPTION_FLAGS) -DARWKV_NO_TOKENIZER -I. -o $@ $< $(LDLIBS)
$(B)/compile_no_training: tests/compile_options.c $(HDR) | $(B)
	$(CC) $(OPTION_FLAGS) -DARWKV_NO_TRAINING -I. -o $@ $< $(LDLIBS)
$(B)/compile_no_tokenizer_no_training: tests/compile_options.c $(HDR) | $(B)
	$(CC) $(OPTION_FLAGS) -DARWKV_NO_TOKENIZER -DARWKV_NO_TRAINING -I. -o $@ $< $(LDLIBS)

# Each example and tool uses only the public API: its source with the `#define ARWKV_IMPLEMENTATION`
# line taken out is compiled against the declarations alone and linked with one unit that holds the
# implementation (tests/public_api_impl.c), as a user's program of several files is. A private name
# (arwkv__*, ARWKV__*) fails the compile or the link. The benchmark is left out: it times the
# private kernels one by one. -O0: the check is about names, not code.
PUBLIC_SRC  := $(filter-out tools/bench.c,$(wildcard tools/*.c examples/*.c))
PUBLIC_BINS := $(patsubst %.c,$(B)/public/%,$(PUBLIC_SRC))
PUBLIC_FLAGS := -std=c11 -O0 $(ARCH) $(WARN) -Werror=implicit-function-declaration
$(B)/public/impl.o: tests/public_api_impl.c $(HDR) | $(B)
	@mkdir -p $(B)/public
	$(CC) $(PUBLIC_FLAGS) -I. -c -o $@ $<
$(B)/public/%: %.c $(HDR) $(B)/public/impl.o
	@mkdir -p $(dir $@)
	sed '/^#define ARWKV_IMPLEMENTATION$$/d' $< > $@.c
	$(CC) $(PUBLIC_FLAGS) -I. -o $@ $@.c $(B)/public/impl.o $(LDLIBS)
$(B)/compile_public_api: $(PUBLIC_BINS)
	@printf '#!/bin/sh\n' > $@
	@for p in $(PUBLIC_BINS); do printf 'echo "PASS public_api %s"\n' "$${p#$(B)/public/}" >> $@; done
	@chmod +x $@

compile-checks: $(COMPILE_CHECKS)

test: $(TESTS) $(GPU_EMU_TESTS) $(COMPILE_CHECKS) $(TOOLS) $(EXAMPLES)
	@ARWKV_TEST_BUILD=$(B) sh tests/run.sh $(B) $(TESTS) $(GPU_EMU_TESTS) $(COMPILE_CHECKS)

# Sanitizer build: separate directory, same sources.
ASAN_FLAGS := -std=c11 -O1 -g -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined $(ARCH) $(WARN)
ASAN_TESTS := $(patsubst tests/%.c,$(B)/asan/%,$(TEST_SRC))
$(B)/asan/test_%: tests/test_%.c tests/test.h tests/gguf_write.h $(HDR)
	@mkdir -p $(B)/asan
	$(CC) $(ASAN_FLAGS) -I. -Itests -o $@ $< $(LDLIBS)
test-asan: $(ASAN_TESTS)
	@ARWKV_TEST_QUICK=1 ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=print_stacktrace=1 sh tests/run.sh $(B)/asan $(ASAN_TESTS)

# Fuzzing: clang's libFuzzer. Seeds are generated by the test suite into build/fuzz-seeds.
FUZZ_CC      ?= clang
FUZZ_SECONDS ?= 30
FUZZ_SRC     := $(wildcard tests/fuzz_*.c)
FUZZERS      := $(patsubst tests/%.c,$(B)/fuzz/%,$(FUZZ_SRC))
$(B)/fuzz/fuzz_%: tests/fuzz_%.c $(HDR)
	@mkdir -p $(B)/fuzz
	$(FUZZ_CC) -std=c11 -O1 -g -fsanitize=fuzzer,address,undefined -I. -o $@ $< $(LDLIBS)
fuzz: $(FUZZERS)
	@sh tests/fuzz.sh $(B) $(FUZZ_SECONDS) $(FUZZERS)

# ---- GPU builds (arwkv_hip.h) ------------------------------------------------------------------------
# A GPU program is the same .c file compiled as C++ by nvcc or hipcc with ARWKV_GPU and
# ARWKV_HIP_IMPLEMENTATION defined: its `#ifdef ARWKV_GPU #include "arwkv_hip.h"` then brings the GPU
# backend's implementation, and it may call arwkv_backend_gpu() (tools/gpu-info.c, tools/eval.c).
# GPU_PROGRAMS lists the tools and examples built that way. No GPU is needed to build; test_gpu needs
# one to run (make gpu-test). Without a GPU, `make test` runs the same tests on a CPU emulator of the
# kernels (test_gpu_emu32/64 above).
# bench/gpu-run.sh builds, tests and times on a GPU machine and writes bench/results/gpu-test-*.txt.
NVCC         ?= nvcc
# sm_90a: Hopper's own instructions (wgmma), which the matrix product uses on H100/H200; a plain
# target (GPU_ARCH=sm_90, sm_80, ...) builds the portable mma.sync path only.
GPU_ARCH     ?= sm_90a
comma        := ,
GPU_ARCH_FLAGS := $(if $(filter %a,$(GPU_ARCH)),-gencode=arch=compute_$(patsubst sm_%,%,$(GPU_ARCH))$(comma)code=$(GPU_ARCH),-arch=$(GPU_ARCH))
HIPCC        ?= hipcc
HIP_ARCH     ?= gfx942
GPU_PROGRAMS ?= gpu-info inspect eval chat distill answer
GPU_HDR      := $(HDR) arwkv_hip.h
NVCCFLAGS    := -std=c++17 $(OPT) $(GPU_ARCH_FLAGS) -Xcompiler -Wall,-Wextra,-Wshadow,-Wno-unused-function $(if $(ARCH),-Xcompiler $(ARCH))
HIPFLAGS     := -x hip -std=c++17 $(OPT) --offload-arch=$(HIP_ARCH) $(WARN)
ifeq ($(WERROR),1)
NVCCFLAGS    += -Xcompiler -Werror
endif

GPU_EMU_SRC  := tests/gpu/test_gpu_emu.cpp tests/gpu/test_gpu.cu tests/gpu/emu.h tests/test.h $(GPU_HDR)
$(B)/test_gpu_emu32: $(GPU_EMU_SRC) | $(B)
	$(CXX) $(CXXFLAGS) -Wno-unknown-pragmas -DARWKV_EMU_WARP=32 -I. -Itests -o $@ $< $(LDLIBS)
$(B)/test_gpu_emu64: $(GPU_EMU_SRC) | $(B)
	$(CXX) $(CXXFLAGS) -Wno-unknown-pragmas -DARWKV_EMU_WARP=64 -I. -Itests -o $@ $< $(LDLIBS)

gpu: $(B)/gpu/test_gpu $(patsubst %,$(B)/gpu/arwkv-%,$(GPU_PROGRAMS)) $(B)/gpu/arwkv-bench
$(B)/gpu/arwkv-bench $(B)/hip/arwkv-bench: $(wildcard tools/bench/*.h)
gpu-test: $(B)/gpu/test_gpu
	$(B)/gpu/test_gpu
$(B)/gpu/test_gpu: tests/gpu/test_gpu.cu tests/test.h $(GPU_HDR)
	@mkdir -p $(B)/gpu
	$(NVCC) $(NVCCFLAGS) -I. -Itests -o $@ $<
$(B)/gpu/arwkv-%: tools/%.c $(GPU_HDR)
	@mkdir -p $(B)/gpu
	$(NVCC) $(NVCCFLAGS) -DARWKV_GPU -DARWKV_HIP_IMPLEMENTATION -I. -o $@ -x cu $<
$(B)/gpu/arwkv-%: examples/%.c $(GPU_HDR)
	@mkdir -p $(B)/gpu
	$(NVCC) $(NVCCFLAGS) -DARWKV_GPU -DARWKV_HIP_IMPLEMENTATION -I. -o $@ -x cu $<

gpu-hip: $(B)/hip/test_gpu $(patsubst %,$(B)/hip/arwkv-%,$(GPU_PROGRAMS)) $(B)/hip/arwkv-bench
$(B)/hip/test_gpu: tests/gpu/test_gpu.cu tests/test.h $(GPU_HDR)
	@mkdir -p $(B)/hip
	$(HIPCC) $(HIPFLAGS) -I. -Itests -o $@ $<
$(B)/hip/arwkv-%: tools/%.c $(GPU_HDR)
	@mkdir -p $(B)/hip
	$(HIPCC) $(HIPFLAGS) -DARWKV_GPU -DARWKV_HIP_IMPLEMENTATION -I. -o $@ $<
$(B)/hip/arwkv-%: examples/%.c $(GPU_HDR)
	@mkdir -p $(B)/hip
	$(HIPCC) $(HIPFLAGS) -DARWKV_GPU -DARWKV_HIP_IMPLEMENTATION -I. -o $@ $<

clean:
	rm -rf $(B)
