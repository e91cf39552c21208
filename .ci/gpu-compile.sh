#!/usr/bin/env bash
# CI, no GPU needed: compile arwkv_hip.h for both of its targets and check that the device code
# uses the matrix units.
#   AMD MI300X (gfx942): clang-19 with Debian 12's ROCm 5.2 headers and device libraries. Those
#     libraries stop at gfx940, so the gfx942 ISA-version file is made from the gfx940 one (its
#     version constant 9400 becomes 9402). A compile and ISA check only: the 5.2 runtime cannot drive
#     an MI300X; the real build there is `make gpu-hip` with ROCm 6 or later.
#   NVIDIA H100 (sm_90): `make gpu` with nvcc, plus the PTX; then test_gpu.cu for sm_90a (Hopper's
#     wgmma path), its PTX (wgmma, tensor copies) and, where cuobjdump is installed, its SASS (HGMMA). nvcc is expected on the CI machine
#     (/usr/local/cuda/bin/nvcc): its absence fails this step unless ARWKV_CI_NO_NVCC=1 says it is
#     known to be missing (then the sm_90 half is skipped with a message).
# Any compile error, a gfx942 assembly without MFMA instructions, a PTX without mma.sync or an sm_90a
# build without wgmma fails.
# Running the kernels needs a GPU: build/gpu/test_gpu (results kept in bench/results/).
set -euo pipefail
cd "$(dirname "$0")/.."
export DEBIAN_FRONTEND=noninteractive
SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi

pkgs="clang-19 lld-19 clang-tools-19 libamdhip64-dev rocm-device-libs llvm-15"
missing=""
for p in $pkgs; do dpkg -s "$p" >/dev/null 2>&1 || missing="$missing $p"; done
if [ -n "$missing" ]; then
    echo "gpu-compile: installing$missing"
    $SUDO apt-get update -qq
    $SUDO apt-get install -y -qq --no-install-recommends $missing
fi

out=build/gpu-ci
mkdir -p "$out"
fail() { echo "gpu-compile: FAILED: $*"; exit 1; }

echo "== gfx942: device libraries"
bc=/usr/lib/x86_64-linux-gnu/amdgcn/bitcode
lib="$out/bitcode"
mkdir -p "$lib"
for f in "$bc"/*.bc; do ln -sf "$f" "$lib/"; done
/usr/lib/llvm-15/bin/llvm-dis "$bc/oclc_isa_version_940.bc" -o - | sed 's/i32 9400/i32 9402/' \
    | /usr/lib/llvm-15/bin/llvm-as -o "$lib/oclc_isa_version_942.bc"

# The host half is built for x86-64-v4 (AVX-512), not -march=native: nothing here runs it, the CPU
# kernels' AVX-512 path is then compiled by clang-19 on every CI machine, and clang-19's own
# -march=native fails -Werror on some Xeons (it turns on avx10.1-256 and warns it became 512).
hipc="clang++-19 -x hip --rocm-path=/usr --rocm-device-lib-path=$lib --offload-arch=gfx942 -std=c++17 -O2
      -Xarch_host -march=x86-64-v4 -Wall -Wextra -Wshadow -Wno-unused-function -Werror -I. -Itests"
echo "== gfx942: tests/gpu/test_gpu.cu, linked against libamdhip64"
$hipc tests/gpu/test_gpu.cu -o "$out/test_gpu_gfx942" -lamdhip64
echo "== gfx942: the GPU programs (make's GPU_PROGRAMS)"
for prog in $(make -s -f Makefile --eval 'print-gpu-programs: ; @echo $(GPU_PROGRAMS)' print-gpu-programs); do
    src=tools/$prog.c
    [ -f "$src" ] || src=examples/$prog.c
    $hipc -DARWKV_GPU -DARWKV_HIP_IMPLEMENTATION -c "$src" -o "$out/${prog}_gfx942.o"
done
echo "== gfx942: device assembly"
$hipc --cuda-device-only -S tests/gpu/test_gpu.cu -o "$out/test_gpu_gfx942.s"
grep -q 'amdgcn-amd-amdhsa--gfx942' "$out/test_gpu_gfx942.s" || fail "the device code is not for gfx942"
n=$(grep -c 'v_mfma_f32_16x16x16_bf16' "$out/test_gpu_gfx942.s" || true)
[ "$n" -gt 0 ] || fail "no v_mfma_f32_16x16x16_bf16 in the gfx942 assembly: the matrix product lost its MFMA path"
grep -q '\.wavefront_size: *64' "$out/test_gpu_gfx942.s" || fail "the gfx942 kernels are not wave64"
echo "gfx942: $n MFMA instructions, wave64"

nvcc=${NVCC:-}
if [ -z "$nvcc" ]; then
    if command -v nvcc >/dev/null 2>&1; then nvcc=nvcc
    elif [ -x /usr/local/cuda/bin/nvcc ]; then nvcc=/usr/local/cuda/bin/nvcc
    fi
fi
if [ -z "$nvcc" ]; then
    if [ "${ARWKV_CI_NO_NVCC:-0}" = 1 ]; then
        echo "gpu-compile: nvcc not found and ARWKV_CI_NO_NVCC=1: the sm_90 half is SKIPPED"
        echo "gpu-compile: gfx942 passed"
        exit 0
    fi
    fail "nvcc not found (PATH, /usr/local/cuda/bin); install the CUDA toolkit, or set ARWKV_CI_NO_NVCC=1 to skip the sm_90 half"
fi
echo "== sm_90: make gpu ($nvcc)"
make gpu WERROR=1 NVCC="$nvcc" GPU_ARCH=sm_90
echo "== sm_90: PTX"
"$nvcc" -std=c++17 -O2 -arch=sm_90 -I. -Itests -ptx tests/gpu/test_gpu.cu -o "$out/test_gpu_sm90.ptx"
n=$(grep -c 'mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32' "$out/test_gpu_sm90.ptx" || true)
[ "$n" -gt 0 ] || fail "no mma.sync.m16n8k16 bf16 in the sm_90 PTX: the matrix product lost its tensor-core path"
echo "sm_90: $n mma.sync instructions"
echo "== sm_90a: tests/gpu/test_gpu.cu with Hopper's wgmma path (ptxas included)"
"$nvcc" -std=c++17 -O2 -gencode=arch=compute_90a,code=sm_90a -Xcompiler -Wall,-Wextra,-Wshadow,-Wno-unused-function,-Werror \
    -Xptxas -warn-spills,-Werror -I. -Itests tests/gpu/test_gpu.cu -o "$out/test_gpu_sm90a"
"$nvcc" -std=c++17 -O2 -arch=compute_90a -I. -Itests -ptx tests/gpu/test_gpu.cu -o "$out/test_gpu_sm90a.ptx"
n=$(grep -c 'wgmma.mma_async.sync.aligned.m64n256k16.f32.bf16.bf16' "$out/test_gpu_sm90a.ptx" || true)
[ "$n" -gt 0 ] || fail "no wgmma.mma_async m64n256k16 bf16 in the sm_90a PTX: the matrix product lost its Hopper path"
grep -q 'cp.async.bulk.tensor.2d' "$out/test_gpu_sm90a.ptx" || fail "no tensor copies (cp.async.bulk.tensor) in the sm_90a PTX"
echo "sm_90a: $n wgmma instructions in the PTX"
cuobjdump=$(command -v cuobjdump || true)
[ -z "$cuobjdump" ] && [ -x "$(dirname "$(command -v "$nvcc")")/cuobjdump" ] && cuobjdump="$(dirname "$(command -v "$nvcc")")/cuobjdump"
if [ -n "$cuobjdump" ]; then
    n=$("$cuobjdump" --dump-sass "$out/test_gpu_sm90a" | grep -c HGMMA || true)
    [ "$n" -gt 0 ] || fail "no HGMMA in the sm_90a SASS: the wgmma path did not reach the machine code"
    echo "sm_90a: $n HGMMA instructions in the SASS"
else
    echo "gpu-compile: cuobjdump not found: the sm_90a SASS check (HGMMA) is SKIPPED; the PTX check above passed"
fi
echo "gpu-compile: all passed"
