#!/bin/bash
# Installs the Debian 12 packages iserd needs, in three sets:
#   scripts/deps.sh            building and running: compiler, CMake, Ninja,
#                              pkg-config, the -dev libraries (libsystemd-dev
#                              for sd_notify), the verbs providers (iSER);
#                              what scripts/run.sh uses
#   scripts/deps.sh --test     and the test toolchain: clang (fuzzing), cmocka,
#                              libiscsi's tools, promtool, systemd-analyze and
#                              man (the unit file test), debhelper and lintian
#                              (the Debian package test), a one-node Ceph
#                              (ceph-mon, ceph-osd, ceph-common, librbd-dev: the
#                              rbd store and its test, docs/ceph.md); what
#                              scripts/test.sh uses
#   scripts/deps.sh --lab      and the QEMU interop lab's packages (implies --test;
#                              multipath-tools for the dm-multipath job)
#                              and the peer targets of bench/ (tgt, its rbd
#                              backing store tgt-rbd, istgt)
# Packages already installed are left alone; nothing is installed when all are.
set -euo pipefail
export DEBIAN_FRONTEND=noninteractive
SUDO=
[ "$(id -u)" = 0 ] || SUDO=sudo

test_set=0
lab_set=0
for a in "$@"; do
	case "$a" in
	--test) test_set=1 ;;
	--lab) test_set=1; lab_set=1 ;;
	*) echo "usage: scripts/deps.sh [--test] [--lab]" >&2; exit 2 ;;
	esac
done

PKGS=(build-essential cmake ninja-build pkg-config
      libisal-dev libconfig-dev libjson-c-dev libssl-dev liburing-dev
      libibverbs-dev librdmacm-dev libsystemd-dev ibverbs-providers)
if [ "$test_set" = 1 ]; then
	PKGS+=(clang libclang-rt-14-dev libcmocka-dev libiscsi-bin libiscsi-dev python3
	       prometheus systemd man-db debhelper dpkg-dev lintian
	       ceph-mon ceph-osd ceph-common librbd-dev)
fi
if [ "$lab_set" = 1 ]; then
	PKGS+=(qemu-system-x86 busybox-static cpio kmod open-iscsi rdma-core ibverbs-utils
	       rdmacm-utils fio sg3-utils iproute2 e2fsprogs tgt tgt-rbd istgt xz-utils
	       multipath-tools)
fi
missing=()
for p in "${PKGS[@]}"; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
	$SUDO apt-get update -qq
	$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
