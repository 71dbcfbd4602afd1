#!/usr/bin/env bash
# One-step set-up: installs the Debian packages mnist_gpu needs (only those missing; nothing when
# all are present), then configures and builds into ./build (or $MNIST_GPU_BUILD_DIR).
#   scripts/setup.sh [--tests] [--list | CMAKE_ARGS...]
# By default only what building and training need; --tests adds what only the tests need (a
# browser, Python with PyTorch and ONNX: several hundred MB). --list prints the packages it would
# make sure of and stops. Other arguments go to CMake's configure step, e.g.
# scripts/setup.sh -DMNIST_GPU_CUDA=OFF
set -euo pipefail
cd "$(dirname "$0")/.."
tests=0
if [ "${1:-}" = --tests ]; then tests=1; shift; fi

packages=(build-essential cmake ninja-build pkg-config zlib1g-dev libspdlog-dev libfmt-dev
          libcli11-dev nlohmann-json3-dev libopenblas-dev libgtest-dev libgmock-dev
          libbenchmark-dev libpng-dev libjpeg-dev libonnx-dev libprotobuf-dev)
# For the tests only: the round trips of `export`/`import` (tests/python/roundtrip.py) run in a
# virtual environment made from Debian's python3 with its PyTorch, NumPy and ONNX (the test's
# fixture pip-installs onnxruntime and safetensors into it, under the build folder).
test_packages=(python3-venv python3-torch python3-numpy python3-onnx)
# The report test opens `train --report`'s page in Debian's headless chromium (with a font for its
# text). MNIST_GPU_NO_BROWSER=1 leaves them out; that test is then skipped.
browser_packages=(chromium fonts-dejavu-core)
if ((tests)); then
  packages+=("${test_packages[@]}")
  if [ "${MNIST_GPU_NO_BROWSER:-}" != 1 ]; then packages+=("${browser_packages[@]}"); fi
fi
if [ "${1:-}" = --list ]; then printf '%s\n' "${packages[@]}"; exit 0; fi
scripts/install-packages.sh "${packages[@]}"

# CUDA: the toolkit's usual home, so that nvcc is found without PATH changes.
if ! command -v nvcc >/dev/null 2>&1 && [ -x /usr/local/cuda/bin/nvcc ]; then
  export PATH=/usr/local/cuda/bin:$PATH
fi

build=${MNIST_GPU_BUILD_DIR:-build}
jobs=$(nproc 2>/dev/null || echo 2)
generator=()
if [ ! -f "$build/CMakeCache.txt" ] && command -v ninja >/dev/null 2>&1; then generator=(-G Ninja); fi
cmake -S . -B "$build" "${generator[@]}" -DCMAKE_BUILD_TYPE=Release "$@" >&2
cmake --build "$build" --parallel "$jobs" >&2
