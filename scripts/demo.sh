#!/usr/bin/env bash
# nvbox's main job, from a fresh Debian 12 machine: install and start what is
# needed, build everything, check this host with `nvbox doctor`, build the OSR
# router image (a no-op when its inputs are unchanged) and push it to the
# local libvirtd, where routers boot from it.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
nvbox="$root/build/bin/nvbox"
bash "$root/scripts/setup-host.sh"
bash "$root/scripts/build.sh" "$root/build"
echo
"$nvbox" doctor "$@"
echo
"$nvbox" image build
echo
"$nvbox" image push osr
