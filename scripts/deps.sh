#!/bin/bash
# Installs every Debian package iserd needs to build, run and test (Debian 12).
# Usage: scripts/deps.sh [--lab]   (--lab adds the QEMU interop lab's packages)
set -euo pipefail
export DEBIAN_FRONTEND=noninteractive
SUDO=
[ "$(id -u)" = 0 ] || SUDO=sudo
PKGS=(build-essential cmake ninja-build pkg-config clang libclang-rt-14-dev
      libisal-dev libconfig-dev libjson-c-dev libssl-dev liburing-dev
      libibverbs-dev librdmacm-dev libcmocka-dev
      libiscsi-bin libiscsi-dev python3)
if [ "${1:-}" = "--lab" ]; then
	PKGS+=(qemu-system-x86 busybox-static cpio kmod open-iscsi rdma-core ibverbs-utils
	       rdmacm-utils ibverbs-providers fio sg3-utils iproute2 e2fsprogs tgt xz-utils)
fi
missing=()
for p in "${PKGS[@]}"; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
	$SUDO apt-get update -qq
	$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
