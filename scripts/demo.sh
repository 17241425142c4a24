#!/usr/bin/env bash
# nvbox's main job, from a fresh Debian 12 machine: install and start what is
# needed, build everything, and check this host with `nvbox doctor`.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
bash "$root/scripts/setup-host.sh"
bash "$root/scripts/build.sh" "$root/build"
echo
exec "$root/build/bin/nvbox" doctor "$@"
