#!/usr/bin/env bash
# Sanitizer CI, run by .ci/run after the main tests:
#  (a) the whole CPU test suite built with g++ -fsanitize=address,undefined (build-asan/), which
#      must run clean (a leak, an ASan report or any UBSan finding fails the test that shows it);
#  (b) every libFuzzer harness in fuzz/ built with clang (build-fuzz/), each run for $FUZZ_SECONDS
#      (default 60) from a scratch copy of its committed corpus; any crash fails the script.
# Installs clang and libFuzzer's runtime (libclang-rt-14-dev) with apt-get when missing (sudo when
# not root); the project's own packages come from scripts/setup.sh. Environment:
#   FUZZ_SECONDS=N   seconds per harness;  SANITIZERS_SKIP=asan|fuzz   skip one of the two parts.
set -euo pipefail
cd "$(dirname "$0")/.."

fuzz_seconds=${FUZZ_SECONDS:-60}
skip=${SANITIZERS_SKIP:-}
jobs=$(nproc 2>/dev/null || echo 2)

# --- packages -------------------------------------------------------------------------------
packages=(clang libclang-rt-14-dev)
scripts/install-packages.sh "${packages[@]}"

# configure DIR CXX CMAKE_ARGS...: a build directory configured for compiler CXX. One configured
# with another compiler is wiped first: CMake would otherwise drop its cache itself on the change
# and silently lose every -D given with it (the sanitizer flags among them).
configure() {
  local dir=$1 cxx=$2
  shift 2
  local cached
  cached=$(sed -n 's/^CMAKE_CXX_COMPILER:[A-Z]*=//p' "$dir/CMakeCache.txt" 2>/dev/null || true)
  if [ -n "$cached" ] && [ "$(readlink -f "$cached")" != "$(readlink -f "$cxx")" ]; then
    echo "ci-sanitizers: $dir was configured with $cached, not $cxx: reconfiguring from scratch" >&2
    rm -rf "$dir"
  fi
  local fresh=()
  if [ ! -f "$dir/CMakeCache.txt" ]; then
    fresh=(-DCMAKE_CXX_COMPILER="$cxx")
    if command -v ninja >/dev/null 2>&1; then fresh+=(-G Ninja); fi
  fi
  cmake -S . -B "$dir" "${fresh[@]}" "$@" >&2
}

# --- (a) CPU tests under AddressSanitizer + UndefinedBehaviorSanitizer ------------------------
if [ "$skip" != asan ]; then
  san="-fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined"
  configure build-asan "$(command -v g++)" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DMNIST_GPU_CUDA=OFF \
    -DMNIST_GPU_BENCH=OFF -DCMAKE_CXX_FLAGS="$san" -DCMAKE_EXE_LINKER_FLAGS="-fsanitize=address,undefined"
  grep -q -- "-fsanitize=address,undefined" build-asan/CMakeCache.txt ||
    { echo "ci-sanitizers: build-asan is not configured with the sanitizers" >&2; exit 1; }
  cmake --build build-asan --parallel "$jobs" >&2
  echo "ci-sanitizers: CPU tests under ASan+UBSan" >&2
  # Not the Python round trips (label python): they would make a second virtual environment and
  # repeat, through the same C++ code the gtest suite runs here, what the main test run checks.
  ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
    ctest --test-dir build-asan -L cpu -LE python --output-on-failure
fi

# --- (b) libFuzzer harnesses -----------------------------------------------------------------
if [ "$skip" != fuzz ]; then
  clangxx=$(command -v clang++-14 || command -v clang++)
  configure build-fuzz "$clangxx" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DMNIST_GPU_CUDA=OFF \
    -DMNIST_GPU_TESTS=OFF -DMNIST_GPU_BENCH=OFF -DMNIST_GPU_FUZZ=ON
  cmake --build build-fuzz --parallel "$jobs" --target fuzzers >&2

  summary=()
  failed=0
  for corpus in fuzz/corpus/*/; do
    h=$(basename "$corpus")
    work=build-fuzz/fuzz-run/$h
    rm -rf "$work" && mkdir -p "$work/corpus" "$work/artifacts"
    cp -R "$corpus". "$work/corpus/"  # the fuzzer adds to its corpus: never the committed one
    echo "ci-sanitizers: $h for ${fuzz_seconds} s" >&2
    rc=0
    "build-fuzz/fuzz/$h" -max_total_time="$fuzz_seconds" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 \
      -artifact_prefix="$work/artifacts/" "$work/corpus" >"$work/log.txt" 2>&1 || rc=$?
    done_line=$(grep -E '^Done [0-9]+ runs in [0-9]+ second' "$work/log.txt" | tail -1 || true)
    runs=$(sed -E 's/^Done ([0-9]+) runs in ([0-9]+) second.*/\1/' <<<"$done_line")
    secs=$(sed -E 's/^Done ([0-9]+) runs in ([0-9]+) second.*/\2/' <<<"$done_line")
    if [ "$rc" -ne 0 ] || [ -z "$done_line" ]; then
      failed=1
      tail -n 60 "$work/log.txt" >&2
      summary+=("$h: FAILED (exit $rc; log $work/log.txt, reproducer in $work/artifacts/)")
    else
      summary+=("$h: ${runs} executions in ${secs} s, no crash")
    fi
  done
  echo "ci-sanitizers: fuzzing summary"
  printf '  %s\n' "${summary[@]}"
  if ((failed)); then exit 1; fi
fi
echo "ci-sanitizers: clean"
