#!/usr/bin/env bash
# Run THERE (the GPU machine), from the repository root, after bench/gpu-pack.sh HERE; normally
# through bench/gpu-session.sh, which runs it and then bench/gpu-recipes.sh in ONE device call and
# packs their folders into the few files a device call brings back:
#   bash bench/gpu-check.sh WORK_DIR [BUDGET_S]
# Everything it writes goes under WORK_DIR (dozens of files: a device call's $OUT brings back only
# 8, so pack them), ready to commit as bench/results/<date>-<gpu>-<commit>/check/: summary.md
# (commit, GPU, date, the test counts as "N passed, N failed", a row per check), summary.json, and
# the logs and JSON of every figure. Most important first, each step under its own `timeout`, and
# the whole within BUDGET_S seconds (default 410); a step with no time left is MISSING. A GPU row passes only when the GPU really ran it:
# without a GPU every GPU row says FAIL or MISSING.
#   1. GPU tests (a skip is a failure), compute-sanitizer memcheck over them and over three short
#      cuBLASLt trainings at odd widths (one with autotune on), racecheck and synccheck over the kernel
#      that uses shared memory (the bias gradient);
#   2. `verify` (cuBLAS, fp32), then `verify --gemm cublaslt` at fp32 and `verify --precision P`
#      for tf32 and bf16 (the cuBLASLt path: never run on a GPU before); the default `train` and
#      the main command (--batch 256 --hidden 512,256), each with --target 0.98, and the main
#      command on cuBLASLt at each precision; the main command's start-up: its wall time, 3 runs,
#      with --timings;
#   3. a CUDA run killed with SIGKILL mid-epoch and resumed ends within the GPU-vs-CPU step
#      tolerance of an uninterrupted one; an absurd width ends in the out-of-memory message;
#   4. the time to 98% test accuracy at the settings that reach it in the fewest epochs (Adam,
#      cosine over 3-4 epochs; cuBLAS fp32, cuBLASLt tf32 and bf16); then side by side on this GPU
#      (bench/side_by_side.py): PyTorch with the whole step in one CUDA
#      graph (its fastest; eager was 13x slower than mnist_gpu on the last record), JAX (default
#      TF32 matmuls, and --precision highest), batch 256 (2 alternating runs, 5 epochs) then 1024
#      and 64 (1 run, 3 epochs), time to 98%. The
#      peers' start-up (about 10 s for PyTorch, 20-40 s for JAX's compilation) makes all of it
#      longer than one call: what its share of the budget does not reach is MISSING. JAX's
#      persistent compilation cache is on, so a repeated JAX run loads its compiled epoch instead
#      of compiling it again (shorter wall time and time to 98% for JAX, the same samples/s);
#   5. `mnist_gpu bench --device cuda`, the same on cuBLASLt at fp32, tf32 and bf16 (resident
#      data, graph on, batches 64, 256, 1024, 4096), then the micro-benchmarks.
set -uo pipefail
cd "$(dirname "$0")/.."
OUT_DIR=${1:-${OUT:-/tmp/gpu-check}}
BUDGET=${2:-410}
PART=${3:-all}  # all | correctness (steps 1-3) | speed (steps 4-5)
mkdir -p "$OUT_DIR"
T0=$SECONDS
. bench/gpu-lib.sh

{ nvidia-smi; nvcc --version; echo "commit: $(cat .gpu/COMMIT 2>/dev/null || echo unknown)"; } >"$OUT_DIR/machine.txt" 2>&1

want() { [[ $PART == all || $PART == "$1" ]]; }
# train_row NAME FILE_STEM FLAGS...: one `train --device cuda --target 0.98`, its row detailing the
# test accuracy, the time to 98% and the GPU step's figures.
train_row() {
  local name=$1 stem=$2; shift 2
  timed 60 "$BIN/mnist_gpu" train --device cuda --target 0.98 --metrics "$OUT_DIR/$stem.jsonl" "$@" >"$OUT_DIR/$stem.log" 2>&1
  ok=0; ((rc == 0)) && ok=1
  row "$name" "$(verdict $ok)" "$(detail "$OUT_DIR/$stem.log" 'test:|time to|gpu step')" $secs
}
test_counts="not run (part: $PART)"

if want correctness; then
# 1. GPU tests, memcheck, racecheck and synccheck
timed 90 "$BIN/mnist_gpu_tests_gpu" --gtest_output="xml:$OUT_DIR/tests_gpu.xml" >"$OUT_DIR/tests_gpu.log" 2>&1
ok=0; ((rc == 0)) && gtest_ran "$OUT_DIR/tests_gpu.log" && ok=1
test_counts=$(gtest_counts "$OUT_DIR/tests_gpu.xml")
row "GPU tests (a skip is a failure)" "$(verdict $ok)" "$test_counts" $secs
timed 100 compute-sanitizer --tool memcheck --error-exitcode 99 "$BIN/mnist_gpu_tests_gpu" \
  --gtest_filter='-*ThreeEpochs*:GpuLtStep.EveryPrecision*' >"$OUT_DIR/memcheck.log" 2>&1
ok=0; ((rc == 0)) && gtest_ran "$OUT_DIR/memcheck.log" && ok=1
row "memcheck over the GPU tests" "$(verdict $ok)" "$(detail "$OUT_DIR/memcheck.log" 'ERROR SUMMARY')" $secs
# The fused epilogues and the autotuner where odd widths leave operands 4 or 8 bytes aligned, in
# real training on cuBLASLt under memcheck: 784-30-10 (sigmoid, l2: its output bias 8 bytes) and
# 150-50-100 (its second bias 8 bytes) on the heuristic's choice; 33,35 (its third weights and
# biases 4 bytes) with autotune on and a fresh tune cache. 500 images: 3 full batches of 128 and
# a partial one, then the test set.
memcheck_odd_widths() {
  local run
  for run in "--hidden 30 --activation sigmoid --loss l2 --autotune off" "--hidden 150,50,100 --autotune off" \
    "--hidden 33,35 --autotune on"; do
    XDG_CACHE_HOME=$OUT_DIR/memcheck-cache compute-sanitizer --tool memcheck --error-exitcode 99 "$BIN/mnist_gpu" \
      train --device cuda $run --gemm cublaslt --batch 128 --epochs 1 --limit 500 --val 0 || return 1
  done
}
timed 60 bash -c "$(declare -f memcheck_odd_widths); BIN=$BIN OUT_DIR=$OUT_DIR memcheck_odd_widths" \
  >"$OUT_DIR/memcheck_odd.log" 2>&1
ok=0; ((rc == 0)) && ok=1
row "memcheck: train --gemm cublaslt at odd widths (autotune on for one)" "$(verdict $ok)" \
  "$(detail "$OUT_DIR/memcheck_odd.log" 'ERROR SUMMARY|error')" $secs
for tool in racecheck synccheck; do
  timed 60 compute-sanitizer --tool $tool --error-exitcode 99 "$BIN/mnist_gpu_tests_gpu" \
    --gtest_filter='GpuOps.BiasGrad*' >"$OUT_DIR/$tool.log" 2>&1
  ok=0; ((rc == 0)) && gtest_ran "$OUT_DIR/$tool.log" && ok=1
  row "$tool (bias gradient, shared memory)" "$(verdict $ok)" "$(detail "$OUT_DIR/$tool.log" 'ERROR SUMMARY')" $secs
done

# 2. verify, the default run and the main command
timed 60 "$BIN/mnist_gpu" verify >"$OUT_DIR/verify.log" 2>&1
ok=0; ((rc == 0)) && ok=1
row "mnist_gpu verify" "$(verdict $ok)" "$(detail "$OUT_DIR/verify.log" '^.{11}verify:')" $secs
# The cuBLASLt path: fp32 (the fused epilogues alone), then each tensor-core precision.
for v in "fp32 --gemm cublaslt" "tf32" "bf16"; do
  set -- $v
  timed 45 "$BIN/mnist_gpu" verify --precision "$@" >"$OUT_DIR/verify_lt_$1.log" 2>&1
  ok=0; ((rc == 0)) && ok=1
  row "mnist_gpu verify --precision $v" "$(verdict $ok)" "$(detail "$OUT_DIR/verify_lt_$1.log" '^.{11}verify:')" $secs
done
train_row "train (defaults), --target 0.98" train_default
train_row "train --batch 256 --hidden 512,256, --target 0.98" train_main --batch 256 --hidden 512,256
for p in fp32 tf32 bf16; do
  train_row "train --batch 256 --hidden 512,256 --gemm cublaslt --precision $p, --target 0.98" train_lt_$p \
    --batch 256 --hidden 512,256 --gemm cublaslt --precision $p
done
# Start-up (issue 14: under 0.8 s from process start to the test accuracy): the wall time of the
# main command, exec to exit, 3 runs, each with --timings (the phases: exec to main, start-up,
# backend setup, data, training, evaluation, outputs). A fresh tune cache folder: the first run
# tunes the GEMMs and writes it, the next two read it. A measurement, not a threshold.
startup_check() {
  local cache=$OUT_DIR/startup-cache walls=() i t0 t1
  rm -rf "$cache"
  for i in 1 2 3; do
    t0=$(date +%s.%N)
    XDG_CACHE_HOME=$cache "$BIN/mnist_gpu" train --device cuda --batch 256 --hidden 512,256 --timings \
      >"$OUT_DIR/startup_$i.log" 2>&1 || { echo "run $i failed: $(tail -n 1 "$OUT_DIR/startup_$i.log")"; return 1; }
    t1=$(date +%s.%N)
    walls+=("$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.3f", b - a }')")
    grep -q 'timings:' "$OUT_DIR/startup_$i.log" || { echo "run $i logged no timings line"; return 1; }
  done
  echo "wall ${walls[*]} s (run 1 with an empty tune cache); run 3: $(grep -h 'timings:' "$OUT_DIR/startup_3.log" |
    sed -E 's/^\[[0-9:]+\] timings: //')"
}
timed 30 bash -c "$(declare -f startup_check); BIN=$BIN OUT_DIR=$OUT_DIR startup_check" >"$OUT_DIR/startup.log" 2>&1
ok=0; ((rc == 0)) && ok=1
row "start-up: train --batch 256 --hidden 512,256 --timings, wall time x3" "$(verdict $ok)" \
  "$(tail -n 1 "$OUT_DIR/startup.log" | cut -c1-600)" $secs

# 3. SIGKILL mid-epoch and resume; out of memory
resume_check() {
  local d=$OUT_DIR/resume
  mkdir -p "$d"
  local run=(train --device cuda --hidden 4096,4096 --batch 32 --optimizer momentum --lr 0.01 --schedule constant
             --epochs 3 --val 0 --seed 7)
  "$BIN/mnist_gpu" "${run[@]}" --save "$d/clean.model" --metrics "$d/clean.jsonl" >"$d/clean.log" 2>&1 ||
    { echo "the uninterrupted run failed"; return 1; }
  local half
  half=$(python3 -c 'import json,sys; L=[json.loads(l) for l in open(sys.argv[1]) if "\"epoch\"" in l]; print(round(L[1]["epoch_s"] / 2, 3))' "$d/clean.jsonl") ||
    { echo "no epoch times in clean.jsonl"; return 1; }
  "$BIN/mnist_gpu" "${run[@]}" --checkpoint "$d/run.ckpt" --save "$d/resumed.model" --metrics "$d/resumed.jsonl" \
    >"$d/killed.log" 2>&1 &
  local pid=$! waited=0
  while [ ! -f "$d/run.ckpt" ] && kill -0 $pid 2>/dev/null && ((waited < 600)); do sleep 0.1; waited=$((waited + 1)); done
  sleep "$half"  # half an epoch past the first checkpoint: mid-epoch 2
  if ! kill -KILL $pid 2>/dev/null; then wait $pid; echo "the run ended before the kill (no checkpoint?)"; return 1; fi
  wait $pid 2>/dev/null
  [ -f "$d/run.ckpt" ] || { echo "killed before any checkpoint"; return 1; }
  "$BIN/mnist_gpu" train --device cuda --resume "$d/run.ckpt" --save "$d/resumed.model" --metrics "$d/resumed.jsonl" \
    >"$d/resumed.log" 2>&1 || { echo "the resumed run failed"; return 1; }
  echo "killed mid-epoch 2 ($(grep -h 'resuming' "$d/resumed.log" | cut -c12-)); $(python3 bench/compare_models.py \
    "$d/clean.model" "$d/resumed.model" --atol 1e-5 --rtol 1e-3 --json "$d/compare.json")"
  python3 -c 'import json,sys; sys.exit(0 if json.load(open(sys.argv[1]))["within_tolerance"] else 1)' "$d/compare.json"
}
timed 90 bash -c "$(declare -f resume_check); BIN=$BIN OUT_DIR=$OUT_DIR resume_check" >"$OUT_DIR/resume.log" 2>&1
ok=0; ((rc == 0)) && ok=1
row "SIGKILL mid-epoch, resume vs uninterrupted (step tolerance)" "$(verdict $ok)" "$(tail -n 1 "$OUT_DIR/resume.log" | cut -c1-300)" $secs
timed 60 "$BIN/mnist_gpu" train --device cuda --hidden 65536,65536,65536,65536 --batch 65536 --epochs 1 >"$OUT_DIR/oom.log" 2>&1
ok=0; ((rc != 0 && rc != 124 && rc != 200)) && grep -qE 'out of GPU memory: asked for [0-9]+ bytes, [0-9]+ of [0-9]+ bytes free' "$OUT_DIR/oom.log" && ok=1
((rc != 200 && rc != 124)) && rc=0  # the command is meant to fail: judge by its message
row "absurd width: out-of-memory message" "$(verdict $ok)" "$(detail "$OUT_DIR/oom.log" 'error')" $secs

fi

if want speed; then
# Issue 14's "98% test accuracy after <= 0.1 s of training at the best setting": the settings that
# reached 98% in the fewest epochs on the CPU, every seed of three (bench/results/
# 2026-12-01-cpu-time-to-98/: Adam with a cosine schedule over 3 or 4 epochs, all 60000 images),
# on cuBLAS at fp32 and on cuBLASLt at tf32 and bf16. The figure is the time to 98% (training
# time, the first epoch's graph capture included); a measurement, not a threshold.
t98=(--hidden 512,256 --optimizer adam --schedule cosine --val 0)
train_row "time to 98%: --batch 512 --lr 0.005 --epochs 4, adam, cosine" t98_b512_fp32 "${t98[@]}" --batch 512 --lr 0.005 --epochs 4
train_row "time to 98%: --batch 256 --lr 0.003 --epochs 3, adam, cosine" t98_b256_fp32 "${t98[@]}" --batch 256 --lr 0.003 --epochs 3
for p in tf32 bf16; do
  train_row "time to 98%: --batch 512 --lr 0.005 --epochs 4, adam, cosine, --gemm cublaslt --precision $p" t98_b512_$p \
    "${t98[@]}" --batch 512 --lr 0.005 --epochs 4 --gemm cublaslt --precision $p
done

# 5. mnist_gpu bench on cuBLASLt at each precision (resident data, graph on): the figures issue 14 asks for.
for p in fp32 tf32 bf16; do
  timed 20 "$BIN/mnist_gpu" bench --device cuda --gemm cublaslt --precision $p --data-path resident --cuda-graph on \
    --batches 64,256,1024,4096 --samples 16384 --json "$OUT_DIR/bench_lt_$p.json" >"$OUT_DIR/bench_lt_$p.md" \
    2>"$OUT_DIR/bench_lt_$p.log"
  ok=0; ((rc == 0)) && ok=1
  row "bench --device cuda --gemm cublaslt --precision $p (resident, graph)" "$(verdict $ok)" \
    "$( ((ok)) && echo "table in bench_lt_$p.md" || detail "$OUT_DIR/bench_lt_$p.log" 'error')" $secs
done

# 4. Side by side: leaves 75 s for the micro-benchmarks and bench; no peer run starts in the last 50 s of its share.
share=$(($(left) - 75))
if [ -f "$PEERS/torch_mlp.py" ] && [ -f "$PEERS/jax_mlp.py" ]; then
  timed $share python3 bench/side_by_side.py --exe "$BIN/mnist_gpu" --device cuda --python python3 \
    --peer "$PEERS/torch_mlp.py" --jax-peer "$PEERS/jax_mlp.py" --peer-variants graph,jax,jax+highest \
    --batches 256:2:5,1024:1:3,64:1:3 --run-timeout 90 --deadline-s $((share - 50)) \
    --json "$OUT_DIR/sbs.json" >"$OUT_DIR/sbs.md" 2>"$OUT_DIR/sbs.log"
  sbs_rc=$rc
  ok=0; ((rc == 0)) && ok=1
  ((rc == 3)) && rc=200  # ran out of its share: some runs missing
  row "side by side: PyTorch whole-step CUDA graph, JAX TF32 and FP32" "$(verdict $ok)" \
    "exit $sbs_rc; $(grep -c ': error' "$OUT_DIR/sbs.log") failed, $(grep -c ': deadline' "$OUT_DIR/sbs.log") missing runs; table in sbs.md" $secs
else
  rc=200; started=1; row "side by side" "$(verdict 0)" "the peers were not packed ($PEERS)" 0
fi

# Every kernel and cuBLAS product at the model's shapes, checked against its CPU twin before it is
# timed; exits 1 when any benchmark ended in an error (a mismatch, a CUDA failure, no GPU).
timed 40 "$BIN/mnist_gpu_micro_gpu" --benchmark_min_time=0.02 --benchmark_out="$OUT_DIR/micro_gpu.json" \
  --benchmark_out_format=json >"$OUT_DIR/micro_gpu.log" 2>&1
errors=$(grep -c 'ERROR OCCURRED' "$OUT_DIR/micro_gpu.log")
ok=0; ((rc == 0 && errors == 0)) && grep -q 'BM_' "$OUT_DIR/micro_gpu.log" && ok=1
python3 bench/micro_table.py "$OUT_DIR/micro_gpu.json" >"$OUT_DIR/micro_gpu.md" 2>/dev/null
row "micro-benchmarks (ops vs CPU twins)" "$(verdict $ok)" "exit $rc, $errors benchmark errors; table in micro_gpu.md" $secs


# The cuBLAS path across batch sizes and variants (measured on the last record): last.
timed 30 "$BIN/mnist_gpu" bench --device cuda --samples 16384 --json "$OUT_DIR/bench.json" >"$OUT_DIR/bench.md" 2>"$OUT_DIR/bench.log"
ok=0; ((rc == 0)) && ok=1
row "bench --device cuda (variants x batch 32..4096)" "$(verdict $ok)" "$( ((ok)) && echo 'table in bench.md' || detail "$OUT_DIR/bench.log" 'error')" $secs
fi

write_summary "GPU check ($PART)" bench/gpu-check.sh "GPU tests: $test_counts"
