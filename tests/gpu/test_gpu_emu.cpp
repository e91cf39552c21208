/* test_gpu on the CPU: the same tests, with arwkv_hip.h's kernels run by the emulator in emu.h
   (built twice by `make test`: warp 32 with mma.sync, wave 64 with MFMA). It checks the kernels'
   logic (indexing, barriers, reductions, matrix-core fragment layouts) where there is no GPU;
   speed and the hardware's own arithmetic need the real thing (build/gpu/test_gpu). */
#include "emu.h"
#include "test_gpu.cu"
