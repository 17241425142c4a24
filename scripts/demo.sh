#!/usr/bin/env bash
# nvbox's main job, from a fresh Debian 12 machine: install and start what is
# needed, build everything, check this host with `nvbox doctor`, build the OSR
# router image (a no-op when its inputs are unchanged), then deploy the CMP
# demo overlay examples/cmp.yaml on the local host (five router VMs, a source
# and a sink endpoint), run a real TCP transfer through the stripe and over
# each path alone, print the goodputs and the re-sequencing counters, play the
# file's link events (a path fails and comes back) while a stream runs and show
# how the stripe failed over, and tear the overlay down again.
#   scripts/demo.sh [--keep]    --keep leaves the overlay up (nvbox destroy cmp)
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
nvbox="$root/build/bin/nvbox"
keep=0
[[ ${1:-} == --keep ]] && keep=1
bash "$root/scripts/setup-host.sh"
bash "$root/scripts/build.sh" "$root/build"
echo
"$nvbox" doctor
echo
"$nvbox" image build
echo
if [[ $keep -eq 0 ]]; then
  trap '"$nvbox" destroy "$root/examples/cmp.yaml"' EXIT
fi
"$nvbox" deploy "$root/examples/cmp.yaml"
"$nvbox" inspect cmp --no-live
echo
"$nvbox" transfer cmp --from src --to sink --bytes 4M --compare
echo
"$nvbox" run "$root/examples/cmp.yaml" --tail 6 --plot "$root/build/cmp-run.png"
echo
"$nvbox" graph cmp -o "$root/build/cmp.svg"
