#!/usr/bin/env bash
# make_venv.sh DIR REQUIREMENTS: the Python environment of tests/python/roundtrip.py. A virtual
# environment in DIR from Debian's /usr/bin/python3 with --system-site-packages (so that Debian's
# python3-torch, python3-numpy and python3-onnx are importable) plus the pip-installed
# REQUIREMENTS. Kept between runs: a stamp holding the requirements' digest says it is complete,
# so a rerun costs one import check. Any failure exits non-zero (the test fixture then fails).
set -euo pipefail
dir=$1
req=$2
py=/usr/bin/python3  # Debian's interpreter: a python3 earlier on PATH (pyenv) lacks the python3-* packages
digest=$(sha256sum "$req" | cut -d' ' -f1)
check='import numpy, torch, onnx, onnx.checker, onnxruntime, safetensors.torch; print("pyenv: torch", torch.__version__, "numpy", numpy.__version__, "onnx", onnx.__version__, "onnxruntime", onnxruntime.__version__)'
# A complete environment is reused; the quick import check (no torch) catches a damaged one.
if [ -f "$dir/stamp" ] && [ "$(cat "$dir/stamp")" = "$digest" ] &&
   "$dir/bin/python" -c 'import onnxruntime, safetensors'; then
  echo "pyenv: $dir is ready"
  exit 0
fi
rm -rf "$dir"
start=$(date +%s)
"$py" -m venv --system-site-packages "$dir"
"$dir/bin/python" -m pip install --quiet --disable-pip-version-check -r "$req"
"$dir/bin/python" -c "$check"
echo "$digest" >"$dir/stamp"
echo "pyenv: made $dir in $(($(date +%s) - start)) s"
