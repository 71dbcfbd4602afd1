# Sourced by the GPU scripts (gpu-check.sh, gpu-recipes.sh), THERE, from the repository root, with
# OUT_DIR, BUDGET and T0 set: the environment of the packed binaries (.gpu/, bench/gpu-pack.sh) and
# the helpers that time each step against the budget and collect one summary row per check.
export LD_LIBRARY_PATH="$PWD/.gpu/lib:/usr/local/cuda/lib64:/usr/local/cuda/lib:${LD_LIBRARY_PATH:-}"
export MNIST_GPU_TEST_DATA="$PWD/data/mnist" MNIST_GPU_TEST_EXE="$PWD/.gpu/bin/mnist_gpu" MNIST_GPU_DATA="$PWD/data/mnist"
export PYTHONUNBUFFERED=1 PATH="/usr/local/cuda/bin:$PATH" MNIST_GPU_NO_BROWSER=1 MNIST_GPU_RECIPES="$PWD/recipes"
export XLA_PYTHON_CLIENT_PREALLOCATE=false JAX_COMPILATION_CACHE_DIR=/tmp/mnist-gpu-jax-cache
BIN=.gpu/bin
PEERS=.gpu/peers
[ -d .gpu/bin ] && ln -sfn "$PWD/data" .gpu/data  # resolve_data_dir's <exe>/../data/mnist
rows=()
json_rows=()
started=1

# row NAME RESULT DETAIL SECONDS
row() {
  local d=$3
  ((started)) || d="not started: no time left of the budget"
  rows+=("$(printf '| %s | %s | %s | %s |' "$1" "$2" "$d" "$4")")
  json_rows+=("$(python3 -c 'import json,sys; print(json.dumps(dict(check=sys.argv[1], result=sys.argv[2], detail=sys.argv[3], seconds=float(sys.argv[4]))))' "$1" "$2" "$d" "$4")")
}
left() { echo $((BUDGET - (SECONDS - T0))); }
# timed LIMIT CMD...: runs CMD under `timeout` with at most LIMIT seconds (less when the budget is
# nearly spent); sets rc (124: timed out; 200: not started, no time left), secs and started.
timed() {
  local limit=$1; shift
  local l; l=$(left)
  ((limit > l)) && limit=$l
  started=0
  if ((limit < 5)); then rc=200; secs=0; return; fi
  started=1
  local t=$SECONDS
  timeout --kill-after=5 "$limit" "$@"
  rc=$?
  ((rc == 137)) && rc=124
  secs=$((SECONDS - t))
}
verdict() {  # verdict OK_CONDITION(0/1): pass, FAIL, TIMEOUT or MISSING from rc
  if ((rc == 200)); then echo MISSING; elif ((rc == 124)); then echo TIMEOUT; elif (($1)); then echo pass; else echo FAIL; fi
}
# gtest_counts XML: "N passed, N failed, N skipped" from a GoogleTest XML report.
gtest_counts() {
  python3 - "$1" <<'PY' 2>/dev/null || echo "no report"
import sys, xml.etree.ElementTree as E
cases = E.parse(sys.argv[1]).getroot().iter("testcase")
p = f = s = 0
for c in cases:
    if c.find("failure") is not None: f += 1
    elif c.find("skipped") is not None or c.get("result") == "skipped": s += 1
    else: p += 1
print(f"{p} passed, {f} failed, {s} skipped")
PY
}
# detail LOG REGEX: the log's lines that match (their timestamps cut), else its last line.
detail() {
  local d
  d=$(grep -hE "$2" "$1" 2>/dev/null | sed -E 's/^\[[0-9:]+\] //' | tr '\n' ' ')
  [ -n "$d" ] || d=$(tail -n 1 "$1" 2>/dev/null | sed -E 's/^\[[0-9:]+\] //')
  echo "${d:0:300}"
}
# The GPU really ran a gtest binary: it passed, nothing skipped, at least one test ran.
gtest_ran() { grep -qE '^\[  PASSED  \] [1-9]' "$1" && ! grep -q '^\[  SKIPPED \]' "$1"; }

# write_summary TITLE SCRIPT [EXTRA_LINE...]: OUT_DIR/summary.md (the rows as a table) and
# summary.json; prints the table; returns 1 when any row is not a pass.
write_summary() {
  local title=$1 script=$2; shift 2
  {
    echo "# $title, $(date -u '+%Y-%m-%d %H:%M UTC')"
    echo
    echo "- commit: $(head -n 1 .gpu/COMMIT 2>/dev/null || echo unknown)$(grep -q dirty .gpu/COMMIT 2>/dev/null && echo ' (with uncommitted changes)')"
    echo "- GPU: $(nvidia-smi --query-gpu=name,driver_version --format=csv,noheader 2>/dev/null | head -n 1 | grep . || echo 'no GPU (nvidia-smi found none)')"
    local line
    for line in "$@"; do echo "- $line"; done
    echo "- script: $script, $((SECONDS - T0)) s of its $BUDGET s budget"
    echo
    echo "| check | result | detail | s |"
    echo "|---|---|---|---:|"
    printf '%s\n' "${rows[@]}"
  } >"$OUT_DIR/summary.md"
  printf '%s\n' "${json_rows[@]}" | python3 -c 'import json,sys; json.dump([json.loads(l) for l in sys.stdin], open(sys.argv[1], "w"), indent=1)' "$OUT_DIR/summary.json"
  cat "$OUT_DIR/summary.md"
  ! grep -qE '^\| [^|]+ \| (FAIL|TIMEOUT|MISSING) \|' "$OUT_DIR/summary.md"
}
