#!/bin/bash
# Prepares iserd's QEMU interop lab: host packages, a Debian kernel tree, the initramfs that boots it
# over the host's root (9p), and optionally soft-iWARP (siw.ko, which Debian does not ship).
#
# Usage: tests/lab/setup.sh [--siw] [--quiet]
#
# ISERD_LAB_KERNEL_SUITE=SUITE (e.g. bookworm-backports) takes the kernel from that suite of
# Debian's archive instead: its current linux-image-amd64, fetched through a private apt state
# under $ISERD_LAB_DIR/apt (the host's apt configuration is not touched). Give such a kernel its own
# ISERD_LAB_DIR. --siw is not supported with it (siw.ko is built from the default kernel's source).
#
# Everything generated lives in ${ISERD_LAB_DIR:-/var/tmp/iserd-lab}; nothing is written into the repo.
# Idempotent: a second run only checks stamps (about a second). Only Debian's archive is used.
# Exit status: 0 ready, 77 the lab cannot be set up on this machine (reason on stderr), 1 error.
set -euo pipefail

HERE=$(cd "$(dirname "$0")" && pwd)
SRC=$(cd "$HERE/../.." && pwd)
LABDIR=${ISERD_LAB_DIR:-/var/tmp/iserd-lab}
WANT_KV=${ISERD_LAB_KV:-6.1.0-56-amd64}
SIW=0 QUIET=0
for a in "$@"; do
	case $a in
	--siw) SIW=1 ;;
	--quiet|-q) QUIET=1 ;;
	-h|--help) sed -n '2,9p' "$0"; exit 0 ;;
	*) echo "setup.sh: unknown argument $a" >&2; exit 1 ;;
	esac
done

say() { [ $QUIET = 1 ] || echo "lab-setup: $*"; }
skip() { echo "lab-setup: SKIP: $*" >&2; exit 77; }
die() { echo "lab-setup: ERROR: $*" >&2; exit 1; }
SUDO=
[ "$(id -u)" = 0 ] || SUDO=sudo
export DEBIAN_FRONTEND=noninteractive

mkdir -p "$LABDIR" 2>/dev/null || skip "cannot create $LABDIR (set ISERD_LAB_DIR)"
# one setup at a time per cache dir (a read-only cache that is already complete still works)
if { exec 9>>"$LABDIR/.lock"; } 2>/dev/null; then flock 9; fi

# --- host packages ------------------------------------------------------------------------------
export PATH=$PATH:/usr/sbin:/sbin
need_cmds() { local c; for c in qemu-system-x86_64 busybox cpio gzip depmod modprobe iscsiadm iscsid mkfs.ext4 dd cmp
	do command -v $c >/dev/null 2>&1 || return 1; done; }
pkg_ok() { dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q "install ok installed"; }
if ! need_cmds || ! pkg_ok busybox-static; then
	command -v apt-get >/dev/null || skip "lab tools missing and no apt-get to install them"
	[ -z "$SUDO" ] || command -v sudo >/dev/null || skip "lab tools missing and not root (no sudo)"
	say "installing packages (scripts/deps.sh --lab)"
	bash "$SRC/scripts/deps.sh" --lab || skip "could not install the lab packages (scripts/deps.sh --lab failed)"
	need_cmds || skip "lab tools still missing after scripts/deps.sh --lab"
	pkg_ok busybox-static || skip "busybox-static is needed for the initramfs"
fi
BUSYBOX=/bin/busybox   # from busybox-static: the initramfs has no libc
[ -x $BUSYBOX ] || skip "need a static busybox in /bin/busybox (package busybox-static)"

# --- disk space ----------------------------------------------------------------------------------
free_mb=$(df -Pm "$LABDIR" | awk 'NR==2{print $4}')
have_kernel=0; [ -f "$LABDIR/kernel/.ok" ] && have_kernel=1
if [ $have_kernel = 0 ] && [ "${free_mb:-0}" -lt 1500 ]; then
	skip "need about 1.5 GiB free in $LABDIR for the kernel (have ${free_mb} MiB)"
fi

# --- kernel ----------------------------------------------------------------------------------------
apt_download() {  # PKG...: into the current directory; refreshes the lists once if needed
	apt-get download "$@" >/dev/null 2>&1 && return 0
	$SUDO apt-get update -qq >/dev/null 2>&1 || true
	apt-get download "$@" >/dev/null 2>&1
}
SUITE=${ISERD_LAB_KERNEL_SUITE:-}
if [ -n "$SUITE" ] && [ $SIW = 1 ]; then
	die "--siw with ISERD_LAB_KERNEL_SUITE is not supported"
fi
if [ $have_kernel = 0 ] && [ -n "$SUITE" ]; then
	A=$LABDIR/apt
	rm -rf "$A" "$LABDIR/dl" "$LABDIR/kernel"; mkdir -p "$A/lists/partial" "$A/cache" "$LABDIR/dl"
	echo "deb http://deb.debian.org/debian $SUITE main" > "$A/sources.list"
	aopt=(-o Dir::Etc::SourceList="$A/sources.list" -o Dir::Etc::SourceParts=/dev/null
		-o Dir::State::Lists="$A/lists" -o Dir::Cache="$A/cache" -o APT::Sandbox::User=root)
	say "reading the package lists of $SUITE"
	apt-get "${aopt[@]}" update -qq >/dev/null 2>&1 || skip "cannot read $SUITE from the Debian archive"
	cur=$(apt-cache "${aopt[@]}" depends linux-image-amd64 2>/dev/null |
		awk '/Depends: linux-image-[0-9]/{print $2; exit}')
	[ -n "$cur" ] || skip "cannot resolve linux-image-amd64 in $SUITE"
	KV=${cur#linux-image-}
	say "downloading $cur from $SUITE"
	(cd "$LABDIR/dl" && apt-get "${aopt[@]}" download "$cur" >/dev/null 2>&1) ||
		skip "cannot download $cur from $SUITE"
	dpkg-deb -x "$LABDIR/dl"/linux-image-"$KV"_*.deb "$LABDIR/kernel.new"
	rm -rf "$LABDIR/dl" "$A"
	[ -f "$LABDIR/kernel.new/boot/vmlinuz-$KV" ] || die "no vmlinuz-$KV in the package"
	mv "$LABDIR/kernel.new" "$LABDIR/kernel"
	/sbin/depmod -b "$LABDIR/kernel" "$KV"
	echo "$KV" > "$LABDIR/kernel/.ok"
	have_kernel=1
fi
if [ $have_kernel = 0 ]; then
	KV=$WANT_KV
	rm -rf "$LABDIR/dl" "$LABDIR/kernel"; mkdir -p "$LABDIR/dl"
	cd "$LABDIR/dl"
	say "downloading linux-image-$KV from the Debian archive"
	if ! apt_download "linux-image-$KV"; then
		# The archive keeps only the current ABI; unless a version was pinned explicitly, follow it.
		[ -z "${ISERD_LAB_KV:-}" ] || skip "cannot download linux-image-$KV (apt-get download failed)"
		cur=$(apt-cache depends linux-image-amd64 2>/dev/null | awk '/Depends: linux-image-[0-9]/{print $2; exit}')
		[ -n "$cur" ] || skip "cannot download linux-image-$KV and cannot resolve linux-image-amd64"
		KV=${cur#linux-image-}
		say "linux-image-$WANT_KV is gone from the archive; using $cur"
		apt_download "$cur" || skip "cannot download $cur (apt-get download failed)"
	fi
	dpkg-deb -x linux-image-"$KV"_*.deb "$LABDIR/kernel.new"
	rm -f linux-image-"$KV"_*.deb
	[ -f "$LABDIR/kernel.new/boot/vmlinuz-$KV" ] || die "no vmlinuz-$KV in the package"
	mv "$LABDIR/kernel.new" "$LABDIR/kernel"
	/sbin/depmod -b "$LABDIR/kernel" "$KV"
	echo "$KV" > "$LABDIR/kernel/.ok"
	cd /; rm -rf "$LABDIR/dl"
fi
KV=$(cat "$LABDIR/kernel/.ok")
KROOT=$LABDIR/kernel
say "kernel $KV ready in $KROOT"

# --- soft-iWARP (optional) --------------------------------------------------------------------------
# Debian's kernel config leaves CONFIG_RDMA_SIW unset; build the module out of tree from Debian's own
# source of the same kernel, and install it in the lab kernel's module tree (extra/) so modprobe finds it.
SIWKO=$KROOT/lib/modules/$KV/extra/siw.ko
if [ $SIW = 1 ] && [ ! -f "$SIWKO" ]; then
	srcpkg=linux-source-${KV%%.0-*}     # 6.1.0-56-amd64 -> linux-source-6.1
	if ! pkg_ok "linux-headers-$KV" || ! command -v xz >/dev/null || ! command -v make >/dev/null; then
		say "installing linux-headers-$KV for the siw build"
		pkgs=("linux-headers-$KV" xz-utils make gcc)
		inst() { $SUDO apt-get install -y -qq --no-install-recommends "${pkgs[@]}" >/dev/null 2>&1; }
		inst || { $SUDO apt-get update -qq >/dev/null 2>&1; inst; } || skip "cannot install ${pkgs[*]}"
	fi
	W=$(mktemp -d "$LABDIR/siw.XXXXXX")
	trap 'rm -rf "$W"' EXIT
	cd "$W"
	say "downloading $srcpkg and building siw.ko"
	apt_download "$srcpkg" || skip "cannot download $srcpkg"
	dpkg-deb --fsys-tarfile "$srcpkg"_*.deb | tar -x --wildcards './usr/src/linux-source-*.tar.xz'
	tar -xJf usr/src/linux-source-*.tar.xz --wildcards '*/drivers/infiniband/sw/siw'
	d=$(echo "$W"/linux-source-*/drivers/infiniband/sw/siw)
	make -s -C "/usr/src/linux-headers-$KV" M="$d" CONFIG_RDMA_SIW=m modules > "$W/build.log" 2>&1 \
		|| { cat "$W/build.log" >&2; die "siw.ko build failed"; }
	vm=$(modinfo -F vermagic "$d/siw.ko" | awk '{print $1}')
	[ "$vm" = "$KV" ] || die "siw.ko vermagic '$vm' does not match $KV"
	mkdir -p "$(dirname "$SIWKO")"
	cp "$d/siw.ko" "$SIWKO.new" && mv "$SIWKO.new" "$SIWKO"
	/sbin/depmod -b "$KROOT" "$KV"
	cd /; rm -rf "$W"; trap - EXIT
	say "siw.ko built: $SIWKO"
fi

# --- initramfs ---------------------------------------------------------------------------------------
# Rebuilt when mkinitrd.sh, the kernel or busybox change.
stamp=$( (cat "$HERE/mkinitrd.sh"; echo "$KV"; md5sum "$BUSYBOX") | md5sum | cut -d' ' -f1)
if [ ! -f "$LABDIR/initrd.cpio.gz" ] || [ "$(cat "$LABDIR/initrd.stamp" 2>/dev/null)" != "$stamp" ]; then
	say "building the initramfs"
	bash "$HERE/mkinitrd.sh" "$KROOT" "$KV" "$BUSYBOX" "$LABDIR/initrd.cpio.gz.new"
	mv "$LABDIR/initrd.cpio.gz.new" "$LABDIR/initrd.cpio.gz"
	echo "$stamp" > "$LABDIR/initrd.stamp"
fi
say "ready: $LABDIR (kernel $KV$([ -f "$SIWKO" ] && echo ", siw"))"
