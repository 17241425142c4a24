#!/usr/bin/env bash
# Starts virtlogd and libvirtd on a machine without systemd-managed libvirt,
# the way these build machines need it (see docs/install.md): QEMU runs as
# root without a security driver. Does nothing when libvirtd already answers.
set -euo pipefail

answers() { virsh -q -c qemu:///system version >/dev/null 2>&1; }

if answers; then
  echo "libvirtd-up.sh: libvirtd answers at qemu:///system"
  exit 0
fi

getent group libvirt-qemu >/dev/null || groupadd -r libvirt-qemu
getent passwd libvirt-qemu >/dev/null ||
  useradd -r -g libvirt-qemu -d /var/lib/libvirt -s /usr/sbin/nologin libvirt-qemu

conf=/etc/libvirt/qemu.conf
mkdir -p /etc/libvirt /var/log/libvirt /var/run/libvirt /var/lib/libvirt /var/cache/libvirt
touch "$conf"
set_conf() { # key value
  if grep -qE "^\s*$1\s*=" "$conf"; then
    sed -i -E "s|^\s*$1\s*=.*|$1 = \"$2\"|" "$conf"
  else
    printf '%s = "%s"\n' "$1" "$2" >>"$conf"
  fi
}
set_conf user root
set_conf group root
set_conf security_driver none

pgrep -x virtlogd >/dev/null || virtlogd -d
if ! pgrep -x libvirtd >/dev/null; then
  libvirtd -d
fi
for _ in $(seq 1 60); do
  if answers; then
    echo "libvirtd-up.sh: libvirtd started"
    exit 0
  fi
  sleep 0.5
done
echo "libvirtd-up.sh: libvirtd does not answer at qemu:///system after 30 s" >&2
echo "libvirtd-up.sh: see /var/log/libvirt/libvirtd.log" >&2
exit 1
