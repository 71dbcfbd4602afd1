#!/usr/bin/env bash
# Run THERE (the GPU machine), from the repository root, after bench/gpu-pack.sh here:
#   bash bench/gpu-check.sh [OUT_DIR]
# 1. prints nvidia-smi and nvcc --version; 2. runs every test, GPU tests included (a skipped GPU
# test is a failure here); 3. compute-sanitizer memcheck over the GPU tests; 4. `verify`, the
# default training run on the GPU, and the PyTorch peer on the same GPU (eager and compiled) at
# the same settings, and the micro-benchmarks of every op (bench/micro_gpu.cpp); 5. a summary
# table last. Full logs go to OUT_DIR.
set -uo pipefail
cd "$(dirname "$0")/.."
OUT_DIR=${1:-${OUT:-/tmp/gpu-check}}
mkdir -p "$OUT_DIR"
export LD_LIBRARY_PATH="$PWD/.gpu/lib:/usr/local/cuda/lib64:/usr/local/cuda/lib:${LD_LIBRARY_PATH:-}"
export MNIST_GPU_TEST_DATA="$PWD/data/mnist" MNIST_GPU_TEST_EXE="$PWD/.gpu/bin/mnist_gpu" MNIST_GPU_DATA="$PWD/data/mnist"
export PYTHONUNBUFFERED=1 PATH="/usr/local/cuda/bin:$PATH"
ln -sfn "$PWD/data" .gpu/data  # resolve_data_dir's <exe>/../data/mnist
BIN=.gpu/bin
declare -a rows
row() { rows+=("$(printf '| %-34s | %-8s | %s |' "$1" "$2" "$3")"); }
ok() { [ "$1" = 0 ] && echo ok || echo "FAIL($1)"; }
# Median samples/s over the epochs of a JSON-lines file (skipping the first epoch when there are more).
median() {
  python3 - "$1" "$2" <<'PY' 2>/dev/null || echo "n/a"
import json, statistics, sys
lines = [json.loads(l) for l in open(sys.argv[1]) if l.strip().startswith("{")]
epochs = [l for l in lines if "epoch" in l]
epochs = epochs[1:] if len(epochs) > 1 else epochs
last = lines[-1]
print(round(statistics.median(e["samples_per_s"] for e in epochs)), sys.argv[2], last.get(sys.argv[2]))
PY
}

{ nvidia-smi; nvcc --version; echo "commit: $(cat .gpu/COMMIT)"; } 2>&1 | tee "$OUT_DIR/machine.txt"

"$BIN/mnist_gpu_tests_cpu" --gtest_output="xml:$OUT_DIR/tests_cpu.xml" >"$OUT_DIR/tests_cpu.log" 2>&1
rc=$?; row "CPU tests" "$([ $rc = 0 ] && echo pass || echo FAIL)" "$(grep -E '^\[  (PASSED|FAILED)' "$OUT_DIR/tests_cpu.log" | tr '\n' ' ')"
"$BIN/mnist_gpu_tests_gpu" --gtest_output="xml:$OUT_DIR/tests_gpu.xml" >"$OUT_DIR/tests_gpu.log" 2>&1
rc=$?
skipped=$(grep -c '^\[  SKIPPED \]' "$OUT_DIR/tests_gpu.log" || true)
status=pass; { [ $rc != 0 ] || [ "$skipped" != 0 ]; } && status=FAIL
row "GPU tests (skip = failure)" "$status" "$(grep -E '^\[  (PASSED|FAILED)' "$OUT_DIR/tests_gpu.log" | tr '\n' ' ') skipped-lines: $skipped"

compute-sanitizer --tool memcheck --error-exitcode 99 "$BIN/mnist_gpu_tests_gpu" \
  --gtest_filter='-*ThreeEpochs*' >"$OUT_DIR/memcheck.log" 2>&1
rc=$?; row "memcheck over GPU tests" "$([ $rc = 0 ] && echo clean || echo FAIL)" "$(tail -n 1 "$OUT_DIR/memcheck.log")"
# No kernel uses shared memory yet, so racecheck has nothing to check; run it on the loss
# kernels anyway (warp shuffles) when they gain shared memory.

"$BIN/mnist_gpu" verify >"$OUT_DIR/verify.log" 2>&1
rc=$?; row "mnist_gpu verify" "$([ $rc = 0 ] && echo pass || echo FAIL)" "$(tail -n 1 "$OUT_DIR/verify.log" | cut -c1-150)"

"$BIN/mnist_gpu" train --device cuda --metrics "$OUT_DIR/train_default.jsonl" >"$OUT_DIR/train_default.log" 2>&1
rc=$?; row "train (defaults, cuda)" "$([ $rc = 0 ] && echo ok || echo FAIL)" "$(grep -E 'test:' "$OUT_DIR/train_default.log" | cut -c12-)"

# Side by side at batch 256, 784-512-256-10, sgd momentum 0.9 lr 0.05, 10 epochs, no validation
# hold-out (the peer trains on all 60000).
same="--batch 256 --hidden 512,256 --lr 0.05 --epochs 10"
"$BIN/mnist_gpu" train --device cuda $same --optimizer momentum --schedule constant --val 0 \
  --metrics "$OUT_DIR/ours_b256.jsonl" >"$OUT_DIR/ours_b256.log" 2>&1
row "ours cuda b256 (samples/s, median epoch)" "$(ok $?)" "$(median "$OUT_DIR/ours_b256.jsonl" test_acc)"
if [ -f .gpu/torch_mlp.py ]; then
  for mode in eager compile; do
    flag=""; [ $mode = compile ] && flag="--compile"
    python3 .gpu/torch_mlp.py --data data/mnist --device cuda $same --optimizer sgd $flag >"$OUT_DIR/torch_$mode.jsonl" 2>"$OUT_DIR/torch_$mode.err"
    row "torch $mode b256 (samples/s, median epoch)" "$(ok $?)" "$(median "$OUT_DIR/torch_$mode.jsonl" best_test_acc)"
  done
fi

"$BIN/mnist_gpu" bench --samples 16384 --json "$OUT_DIR/bench.json" >"$OUT_DIR/bench.md" 2>"$OUT_DIR/bench.log"
row "bench (GPU vs CPU, batch 32..4096)" "$(ok $?)" "table in bench.md"

# Micro-benchmarks: every kernel and cuBLAS product at the model's shapes, each checked against its
# CPU twin before it is timed. The binary exits 1 when any benchmark ended in an error (a mismatch,
# a CUDA failure, no usable GPU); the error lines are counted as well, in case it could not say so.
"$BIN/mnist_gpu_micro_gpu" --benchmark_min_time=0.05 --benchmark_out="$OUT_DIR/micro_gpu.json" \
  --benchmark_out_format=json >"$OUT_DIR/micro_gpu.log" 2>&1
rc=$?
errors=$(grep -c 'ERROR OCCURRED' "$OUT_DIR/micro_gpu.log" || true)
python3 bench/micro_table.py "$OUT_DIR/micro_gpu.json" >"$OUT_DIR/micro_gpu.md" 2>/dev/null
status=pass; { [ $rc != 0 ] || [ "$errors" != 0 ]; } && status=FAIL
row "micro-benchmarks (ops vs CPU twins)" "$status" "exit $rc, $errors benchmark errors; table in micro_gpu.md"

{
  echo "| check | result | detail |"
  echo "|---|---|---|"
  printf '%s\n' "${rows[@]}"
} | tee "$OUT_DIR/summary.md"
