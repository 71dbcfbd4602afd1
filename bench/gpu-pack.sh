#!/usr/bin/env bash
# Run HERE (the development machine): builds for sm_90 and packs what the GPU machine needs into
# .gpu/ (git-ignored; name it in the device tool's `carry`): the executables, the shared libraries
# that machine lacks (spdlog, fmt, OpenBLAS, Google Benchmark), and the PyTorch peer (never
# committed).
set -euo pipefail
cd "$(dirname "$0")/.."
MNIST_GPU_BUILD_DIR=build-h200 scripts/setup.sh -DCMAKE_CUDA_ARCHITECTURES=90-real -DMNIST_GPU_CUDA=ON
rm -rf .gpu && mkdir -p .gpu/bin .gpu/lib
cp build-h200/mnist_gpu build-h200/tests/mnist_gpu_tests_cpu build-h200/tests/mnist_gpu_tests_gpu .gpu/bin/
[ -f build-h200/bench/mnist_gpu_bench ] && cp build-h200/bench/mnist_gpu_bench .gpu/bin/
cp build-h200/bench/mnist_gpu_micro_gpu .gpu/bin/
# Non-CUDA shared libraries the binaries use (the CUDA runtime and cuBLAS are on the GPU machine).
for bin in .gpu/bin/*; do
  ldd "$bin" | awk '/=> \// {print $3}' | grep -E 'spdlog|fmt|openblas|gfortran|quadmath|libgomp|libpng|libjpeg|benchmark' || true
done | sort -u | while read -r lib; do cp -L "$lib" .gpu/lib/; done
[ -f ../shared/peers/torch_mlp.py ] && cp ../shared/peers/torch_mlp.py .gpu/ || true
git rev-parse HEAD > .gpu/COMMIT
git diff --quiet HEAD -- src kernels include tests bench || echo "dirty" >> .gpu/COMMIT
du -sh .gpu
