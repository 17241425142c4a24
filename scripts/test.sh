#!/usr/bin/env bash
# The whole test suite, from a fresh Debian 12 machine (as root):
#   1. install packages and start libvirtd (setup-host.sh)
#   2. build with warnings as errors; run every ctest label:
#      unit, integration, vm (real QEMU guests under TCG), bench
#   3. rebuild with ASan+UBSan and run the unit tests again
#   4. check formatting (.clang-format) and run each fuzz target briefly
# Ends with one line "test.sh: N passed, M failed".
# Benchmarks print their figures (ctest --verbose) and write build/bench/*.csv.
set -uo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
log="$(mktemp)"
fuzzlogs="$(mktemp -d)"
trap 'rm -rf "$log" "$fuzzlogs"' EXIT

passed=0
failed=0
step() { echo; echo "=== $* ($(date -u +%H:%M:%S))"; }
count_ctest() { # adds ctest's "N tests failed out of M" to the totals
  local line
  line="$(grep -E '[0-9]+ tests failed out of [0-9]+' "$log" | tail -1)"
  if [[ -z $line ]]; then
    failed=$((failed + 1))
    return
  fi
  local f t
  f="$(sed -E 's/.* ([0-9]+) tests failed out of ([0-9]+).*/\1/' <<<"$line")"
  t="$(sed -E 's/.* ([0-9]+) tests failed out of ([0-9]+).*/\2/' <<<"$line")"
  passed=$((passed + t - f))
  failed=$((failed + f))
}
check() { # name, command…: one pass or fail
  local name="$1"
  shift
  if "$@"; then passed=$((passed + 1)); else
    echo "test.sh: $name FAILED"
    failed=$((failed + 1))
  fi
}

step "setting up the host"
bash scripts/setup-host.sh || { echo "test.sh: 0 passed, 1 failed"; exit 1; }

step "building (warnings are errors)"
bash scripts/build.sh build || { echo "test.sh: 0 passed, 1 failed"; exit 1; }

step "ctest: unit, integration, vm"
ctest --test-dir build -LE bench -j2 --output-on-failure 2>&1 | tee "$log"
count_ctest

step "ctest: bench (figures and CSV in build/bench/)"
# CI sizes (NVBOX_BENCH_QUICK=1): overlay_bench deploys chains of 4 and 8
# routers, not 16 (six of its twelve minutes), aggregation_bench leaves out
# three rows. The full sizes: ctest --test-dir build -L bench --verbose
NVBOX_BENCH_QUICK=1 ctest --test-dir build -L bench --verbose 2>&1 | tee "$log"
count_ctest

step "ASan+UBSan build, unit tests"
# Only what the unit tests need: the sanitizers slow every compile down.
if NVBOX_TARGETS=unit_tests bash scripts/build.sh build-asan -DCMAKE_BUILD_TYPE=Debug \
  -DNVBOX_SANITIZE=ON; then
  ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=print_stacktrace=1 \
    ctest --test-dir build-asan -L unit -j2 --output-on-failure 2>&1 | tee "$log"
  count_ctest
else
  failed=$((failed + 1))
fi

step "formatting"
check clang-format bash -c 'git ls-files "*.cpp" "*.hpp" | xargs clang-format --dry-run -Werror'

step "fuzzing (20 s per target)"
if [[ -d tests/fuzz ]] && ls tests/fuzz/*_fuzz.cpp >/dev/null 2>&1; then
  if CC=clang CXX=clang++ cmake -S . -B build-fuzz -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo \
    -DNVBOX_FUZZ=ON -DNVBOX_BUILD_TESTS=OFF >/dev/null && cmake --build build-fuzz --target fuzzers -j"$(nproc)" >/dev/null; then
    # One target per core at a time (libFuzzer runs on one thread).
    for src in tests/fuzz/*_fuzz.cpp; do
      target="$(basename "$src" .cpp)"
      (build-fuzz/bin/"$target" -max_total_time=20 -print_final_stats=1 >"$fuzzlogs/$target.log" 2>&1
        echo $? >"$fuzzlogs/$target.rc") &
      while (($(jobs -rp | wc -l) >= $(nproc))); do wait -n; done
    done
    wait
    for src in tests/fuzz/*_fuzz.cpp; do
      target="$(basename "$src" .cpp)"
      # Only the summary: libFuzzer logs every new coverage point.
      echo "--- $target"
      tail -n 12 "$fuzzlogs/$target.log"
      check "$target" test "$(cat "$fuzzlogs/$target.rc")" = 0
    done
  else
    echo "test.sh: fuzz build FAILED"
    failed=$((failed + 1))
  fi
fi

echo
echo "test.sh: $passed passed, $failed failed"
[[ $failed -eq 0 ]]
