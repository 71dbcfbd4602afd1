#!/usr/bin/env bash
# Run HERE (the development machine): builds for sm_90 and packs what the GPU machine needs into
# .gpu/ (git-ignored; name it in the device tool's `carry`): the executables, the shared libraries
# that machine lacks (all but the C runtime's and CUDA's), and the peers torch_mlp.py and
# jax_mlp.py from ../shared/peers (never committed). Then: bash bench/gpu-check.sh "$OUT" there.
set -euo pipefail
cd "$(dirname "$0")/.."
MNIST_GPU_BUILD_DIR=build-h200 scripts/setup.sh -DCMAKE_CUDA_ARCHITECTURES=90-real -DMNIST_GPU_CUDA=ON
rm -rf .gpu && mkdir -p .gpu/bin .gpu/lib .gpu/peers
# The CPU tests stay here: CI runs them, and the GPU machine's minutes are for the GPU.
cp build-h200/mnist_gpu build-h200/tests/mnist_gpu_tests_gpu build-h200/bench/mnist_gpu_micro_gpu .gpu/bin/
# Every shared library the binaries use but the C runtime and the CUDA toolkit's (those are on the
# GPU machine): spdlog, fmt, OpenBLAS, libpng, libjpeg, protobuf, onnx_proto, Google Benchmark ...
for bin in .gpu/bin/*; do
  ldd "$bin" | awk '/=> \// {print $3}' | grep -vE '^/usr/local/cuda|/(libc|libm|libdl|libpthread|librt|libstdc\+\+|libgcc_s)\.so' || true
done | sort -u | while read -r lib; do cp -L "$lib" .gpu/lib/; done
missing=$(LD_LIBRARY_PATH=.gpu/lib ldd .gpu/bin/mnist_gpu | grep 'not found' || true)
[ -z "$missing" ] || { echo "gpu-pack: unresolved libraries: $missing" >&2; exit 1; }
for peer in torch_mlp.py jax_mlp.py; do
  if [ -f ../shared/peers/$peer ]; then cp ../shared/peers/$peer .gpu/peers/; else echo "gpu-pack: ../shared/peers/$peer missing: the side by side will say MISSING" >&2; fi
done
git rev-parse HEAD > .gpu/COMMIT
git diff --quiet HEAD -- src kernels include tests bench || echo "dirty" >> .gpu/COMMIT
du -sh .gpu
size=$(du -sbL .gpu | cut -f1)
((size < 64 * 1024 * 1024)) || { echo "gpu-pack: .gpu is $size bytes, over the 64 MiB a device call carries" >&2; exit 1; }
