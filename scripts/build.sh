#!/usr/bin/env bash
# Configures and builds nvbox with warnings as errors.
#   scripts/build.sh [BUILD_DIR] [extra cmake args…]
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
build="${1:-$root/build}"
shift || true
cmake -S "$root" -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DNVBOX_WERROR=ON "$@"
# NVBOX_TARGETS (space-separated) builds only those targets, e.g. unit_tests.
# shellcheck disable=SC2086
cmake --build "$build" -j"$(nproc)" ${NVBOX_TARGETS:+--target $NVBOX_TARGETS}
