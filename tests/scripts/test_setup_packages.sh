#!/usr/bin/env bash
# scripts/setup.sh installs for training alone what building and training need, and only with
# --tests what the tests need: chromium and the Python stack are left out of the default list.
set -euo pipefail
cd "$(dirname "$0")/../.."
plain=$(scripts/setup.sh --list)
with_tests=$(scripts/setup.sh --tests --list)
fail=0
for p in cmake libopenblas-dev libpng-dev libjpeg-dev libonnx-dev; do
  grep -qx "$p" <<<"$plain" || { echo "FAIL: $p missing from the default list"; fail=1; }
done
for p in chromium python3-torch python3-venv python3-onnx; do
  if grep -qx "$p" <<<"$plain"; then echo "FAIL: $p (tests only) in the default list"; fail=1; fi
  if [ "$p" != chromium ] || [ "${MNIST_GPU_NO_BROWSER:-}" != 1 ]; then
    grep -qx "$p" <<<"$with_tests" || { echo "FAIL: $p missing from --tests"; fail=1; }
  fi
done
((fail == 0)) && echo "setup.sh: the default list has no test-only package; --tests adds them"
exit $fail
