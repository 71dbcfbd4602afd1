#!/usr/bin/env bash
# The whole GPU session in ONE device call (a machine left idle for 30 s goes back, and a fresh
# start costs 1-2 of the session's 15 minutes): HERE `bash bench/gpu-pack.sh`, then the device
# tool's run with carry [".gpu"] and timeout_s 600:
#   bash bench/gpu-session.sh "$OUT" [BUDGET_S]
# Three parts, each within its share of BUDGET_S (default 560), in work folders under /tmp:
#   1. bench/gpu-check.sh's correctness part (GPU tests, memcheck, verify at each precision, the
#      main commands, start-up, resume after SIGKILL, out of memory): 40%;
#   2. bench/gpu-recipes.sh (the deformations' cost, the recipes of issue 15): 36%;
#   3. bench/gpu-check.sh's speed part (bench per precision, the side by side with PyTorch and
#      JAX, the micro-benchmarks): the rest.
# Then it packs them into what a device call brings back (at most 8 files of 16 MiB):
# OUT/summary.md (the three tables), OUT/session.tgz (every log, metrics file, report and JSON;
# checkpoints and models left out). Unpack the archive into bench/results/<date>-h200-<commit>/
# and commit it with the summary.
set -uo pipefail
cd "$(dirname "$0")/.."
OUT_DIR=${1:?usage: gpu-session.sh OUT_DIR [BUDGET_S]}
BUDGET=${2:-560}
T0=$SECONDS
WORK=$(mktemp -d /tmp/mnist-gpu-session.XXXXXX)
mkdir -p "$OUT_DIR" "$WORK/check" "$WORK/recipes" "$WORK/speed"
pack() {
  { local part
    for part in check recipes speed; do
      cat "$WORK/$part/summary.md" 2>/dev/null || echo "# $part: no summary (it did not run or finish)"
      echo
    done
    echo "- session: bench/gpu-session.sh, $((SECONDS - T0)) s of its $BUDGET s budget"
  } >"$OUT_DIR/summary.md"
  tar -czf "$OUT_DIR/session.tgz" -C "$WORK" --exclude='*.ckpt' --exclude='*.model' --exclude='*.tmp.*' .
  # Over a device call's 16 MiB a file: drop the largest logs (memcheck's) first, then the reports' images.
  if (($(stat -c %s "$OUT_DIR/session.tgz") > 15 * 1024 * 1024)); then
    tar -czf "$OUT_DIR/session.tgz" -C "$WORK" --exclude='*.ckpt' --exclude='*.model' --exclude='*.tmp.*' \
      --exclude='memcheck.log' --exclude='*.png' .
    echo "- session.tgz: memcheck.log and the reports' PNG images left out (over 15 MiB)" >>"$OUT_DIR/summary.md"
  fi
  cat "$OUT_DIR/summary.md"
}
trap pack EXIT
share() { python3 -c "print(int($BUDGET * $1))"; }
# Packed after each part too, so that a call cut short still brings back what finished.
bash bench/gpu-check.sh "$WORK/check" "$(share 0.40)" correctness >"$WORK/check/console.log" 2>&1
check_rc=$?
pack >/dev/null
bash bench/gpu-recipes.sh "$WORK/recipes" "$(share 0.36)" >"$WORK/recipes/console.log" 2>&1
recipes_rc=$?
pack >/dev/null
bash bench/gpu-check.sh "$WORK/speed" $((BUDGET - (SECONDS - T0) - 10)) speed >"$WORK/speed/console.log" 2>&1
speed_rc=$?
exit $((check_rc || recipes_rc || speed_rc))
