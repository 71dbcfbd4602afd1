#!/usr/bin/env bash
# Run THERE (the GPU machine), from the repository root, after bench/gpu-pack.sh here:
#   bash bench/gpu-check.sh [OUT_DIR] [check|perf|all]
# Each part fits one device call (10 minutes). check: nvidia-smi and nvcc --version; every test, GPU
# tests included (a skipped GPU test is a failure here); compute-sanitizer memcheck over the GPU
# tests; `verify`; the default training run on the GPU (with time to 98%) and short runs of the
# other data path and without the CUDA graph. perf: side by side with the PyTorch peer on the same
# GPU (eager and torch.compile, batch 256, 3 alternating runs, time to 98%; other batch sizes
# eager), `mnist_gpu bench` (GPU variants vs CPU), and the micro-benchmarks of every op
# (bench/micro_gpu.cpp). A summary table last. Full logs go to OUT_DIR.
set -uo pipefail
cd "$(dirname "$0")/.."
OUT_DIR=${1:-${OUT:-/tmp/gpu-check}}
PART=${2:-all}
case "$PART" in check|perf|all) ;; *) echo "gpu-check: part must be check, perf or all, not '$PART'" >&2; exit 2 ;; esac
mkdir -p "$OUT_DIR"
export LD_LIBRARY_PATH="$PWD/.gpu/lib:/usr/local/cuda/lib64:/usr/local/cuda/lib:${LD_LIBRARY_PATH:-}"
export MNIST_GPU_TEST_DATA="$PWD/data/mnist" MNIST_GPU_TEST_EXE="$PWD/.gpu/bin/mnist_gpu" MNIST_GPU_DATA="$PWD/data/mnist"
export PYTHONUNBUFFERED=1 PATH="/usr/local/cuda/bin:$PATH"
# No chromium on the GPU machine: the report's browser check runs in CI and here, not there.
export MNIST_GPU_NO_BROWSER=1
ln -sfn "$PWD/data" .gpu/data  # resolve_data_dir's <exe>/../data/mnist
BIN=.gpu/bin
declare -a rows
row() { rows+=("$(printf '| %-34s | %-8s | %s |' "$1" "$2" "$3")"); }
ok() { [ "$1" = 0 ] && echo ok || echo "FAIL($1)"; }

{ nvidia-smi; nvcc --version; echo "commit: $(cat .gpu/COMMIT)"; } 2>&1 | tee "$OUT_DIR/machine.txt"

if [ "$PART" != perf ]; then
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
# The bias gradient reduces through shared memory: racecheck and synccheck over its tests.
for tool in racecheck synccheck; do
  compute-sanitizer --tool $tool --error-exitcode 99 "$BIN/mnist_gpu_tests_gpu" --gtest_filter='GpuOps.BiasGrad*' \
    >"$OUT_DIR/$tool.log" 2>&1
  rc=$?; row "$tool (bias gradient)" "$([ $rc = 0 ] && echo clean || echo FAIL)" "$(tail -n 1 "$OUT_DIR/$tool.log")"
done

"$BIN/mnist_gpu" verify >"$OUT_DIR/verify.log" 2>&1
rc=$?; row "mnist_gpu verify" "$([ $rc = 0 ] && echo pass || echo FAIL)" "$(tail -n 1 "$OUT_DIR/verify.log" | cut -c1-150)"

"$BIN/mnist_gpu" train --device cuda --target 0.98 --metrics "$OUT_DIR/train_default.jsonl" >"$OUT_DIR/train_default.log" 2>&1
rc=$?; row "train (defaults, cuda)" "$([ $rc = 0 ] && echo ok || echo FAIL)" "$(grep -E 'test:|time to|gpu step|memory' "$OUT_DIR/train_default.log" | cut -c12- | tr '\n' ' ')"
for variant in "--data-path resident" "--cuda-graph off"; do
  name=$(echo "$variant" | tr -d ' -')
  "$BIN/mnist_gpu" train --device cuda --epochs 2 $variant --metrics "$OUT_DIR/train_$name.jsonl" >"$OUT_DIR/train_$name.log" 2>&1
  rc=$?; row "train 2 epochs $variant" "$(ok $rc)" "$(grep -E 'test:|gpu step' "$OUT_DIR/train_$name.log" | cut -c12- | tr '\n' ' ')"
done

fi

if [ "$PART" != check ]; then
# Side by side (bench/side_by_side.py): 784-512-256-10, SGD momentum 0.9 lr 0.05, constant rate,
# all 60000 training images, batches streamed from pinned memory on both sides; the peer eager
# and under torch.compile; 3 alternating runs; training time to 98% test accuracy.
sbs="python3 bench/side_by_side.py --exe $BIN/mnist_gpu --peer .gpu/torch_mlp.py --python python3 --device cuda"
if [ -f .gpu/torch_mlp.py ]; then
  $sbs --batches 256 --reps 3 --epochs 10 --peer-variants eager,compile --json "$OUT_DIR/sbs_b256.json" \
    >"$OUT_DIR/sbs_b256.md" 2>"$OUT_DIR/sbs_b256.log"
  row "side by side b256 (eager, compile)" "$(ok $?)" "table in sbs_b256.md: $(grep -E '^\| 256 ' "$OUT_DIR/sbs_b256.md")"
  $sbs --batches 64,1024,4096 --reps 1 --epochs 3 --peer-variants eager --json "$OUT_DIR/sbs_other.json" \
    >"$OUT_DIR/sbs_other.md" 2>"$OUT_DIR/sbs_other.log"
  row "side by side b64/1024/4096 (eager)" "$(ok $?)" "table in sbs_other.md"
else
  row "side by side" "MISSING" ".gpu/torch_mlp.py was not packed"
fi

"$BIN/mnist_gpu" bench --samples 16384 --json "$OUT_DIR/bench.json" >"$OUT_DIR/bench.md" 2>"$OUT_DIR/bench.log"
row "bench (GPU variants vs CPU, batch 32..4096)" "$(ok $?)" "table in bench.md"

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

fi

{
  echo "| check | result | detail |"
  echo "|---|---|---|"
  printf '%s\n' "${rows[@]}"
} | tee "$OUT_DIR/summary.md"
