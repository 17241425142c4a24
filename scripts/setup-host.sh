#!/usr/bin/env bash
# Prepares a Debian 12 machine for nvbox, as root: installs the packages in
# scripts/packages.txt (only those missing) and starts libvirtd. Idempotent.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"

if [[ $EUID -ne 0 ]]; then
  echo "setup-host.sh: run as root (it installs packages and starts libvirtd)" >&2
  exit 1
fi

mapfile -t packages < <(grep -v '^\s*#' "$here/packages.txt" | grep -v '^\s*$')
missing=()
for p in "${packages[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed'; then
    missing+=("$p")
  fi
done
if ((${#missing[@]})); then
  echo "setup-host.sh: installing ${#missing[@]} package(s): ${missing[*]}"
  apt-get update -q
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}"
else
  echo "setup-host.sh: all ${#packages[@]} packages present"
fi

bash "$here/libvirtd-up.sh"
