#!/bin/bash
# Boots the lab guest (Debian's kernel under QEMU, the host's root over 9p) and runs one job in it.
#
# Usage: vmrun.sh [-e VAR=VALUE]... [-f FILE]... JOB.sh OUTDIR
#   JOB.sh  runs as root in the guest with bash; its stdout+stderr land in OUTDIR/log.
#   -e      exported into the job's environment;  -f  copied to /lab/files/ in the guest.
#   OUTDIR  receives whatever the job writes under /lab/out, plus log, job.rc, dmesg.txt, console.log.
# The job can source /lab/guest.sh (tests/lab/guest.sh) for helpers.
# Environment: ISERD_LAB_DIR (cache from setup.sh), LAB_TIMEOUT (s, default 900), LAB_MEM (MiB, 2048),
#   LAB_SMP (2), LAB_ACCEL (tcg, the default: software emulation | kvm: opt-in, where nested KVM
#   really works; on the development VMs /dev/kvm exists but QEMU aborts or the guest hangs).
# Exit status: the job's, 124 when the VM or the job timed out (the job gets LAB_TIMEOUT - 60 s, so a hung
# job still leaves its results), 125 when the guest never reported.
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
LABDIR=${ISERD_LAB_DIR:-/var/tmp/iserd-lab}
ENVS=() FILES=()
while [ $# -gt 0 ]; do
	case $1 in
	-e) ENVS+=("$2"); shift 2 ;;
	-f) FILES+=("$2"); shift 2 ;;
	-*) echo "vmrun.sh: unknown option $1" >&2; exit 2 ;;
	*) break ;;
	esac
done
[ $# = 2 ] || { sed -n '4,13p' "$0" >&2; exit 2; }
JOB=$1 OUTD=$2
[ -f "$LABDIR/kernel/.ok" ] && [ -f "$LABDIR/initrd.cpio.gz" ] || { echo "vmrun.sh: run tests/lab/setup.sh first" >&2; exit 2; }
KV=$(cat "$LABDIR/kernel/.ok")

R=$(mktemp -d "${TMPDIR:-/tmp}/iserd-labrun.XXXXXX")
trap 'rm -rf "$R"' EXIT
mkdir -p "$R/out" "$R/files"
cp "$JOB" "$R/job"
cp "$HERE/guest-init.sh" "$R/init2.sh"
cp "$HERE/guest.sh" "$R/guest.sh"
for f in "${FILES[@]}"; do cp "$f" "$R/files/"; done
T=${LAB_TIMEOUT:-900}
echo "LAB_JOB_TIMEOUT=$(( T > 120 ? T - 60 : T / 2 ))" > "$R/env"
for e in "${ENVS[@]}"; do printf '%s=%q\n' "${e%%=*}" "${e#*=}" >> "$R/env"; done
# A checkout or build under /tmp is invisible in the guest (its /tmp is a fresh tmpfs):
# name their top-level directories so guest-init.sh binds them back at the same paths.
binds=
for p in "$(cd "$HERE/../.." && pwd -P)" "${ISERD_BUILD:-}" "${ISERD_SRC:-}" "${ISERD:-}"; do
	case $p in
	/tmp/?*) top=${p#/tmp/}; top=${top%%/*}
		case " $binds " in *" $top "*) ;; *) binds="$binds $top" ;; esac ;;
	esac
done
[ -n "$binds" ] && printf 'LAB_BIND_TMP=%q\n' "${binds# }" >> "$R/env"

# shellcheck disable=SC2054  # commas belong to the option values
case ${LAB_ACCEL:-tcg} in
kvm) ACCEL=(-accel kvm -cpu host) ;;
tcg) ACCEL=(-accel tcg,thread=multi -cpu max) ;;
*) echo "vmrun.sh: LAB_ACCEL must be tcg or kvm" >&2; exit 2 ;;
esac

rc=0
timeout -k 10 "$T" qemu-system-x86_64 "${ACCEL[@]}" -m "${LAB_MEM:-2048}" -smp "${LAB_SMP:-2}" \
	-nodefaults -display none -no-reboot -serial "file:$R/console.log" \
	-kernel "$LABDIR/kernel/boot/vmlinuz-$KV" -initrd "$LABDIR/initrd.cpio.gz" \
	-append "console=ttyS0 quiet panic=-1 net.ifnames=0 lab.mods=$LABDIR/kernel/lib/modules" \
	-fsdev local,id=root,path=/,security_model=none,readonly=on,multidevs=remap \
	-device virtio-9p-pci,fsdev=root,mount_tag=hostroot \
	-fsdev local,id=lab,path="$R",security_model=none \
	-device virtio-9p-pci,fsdev=lab,mount_tag=lab \
	> "$R/qemu.log" 2>&1 || rc=$?
mkdir -p "$OUTD"
cp -r "$R/out/." "$OUTD/"
cp "$R/console.log" "$R/qemu.log" "$OUTD/" 2>/dev/null || true
if [ ! -f "$OUTD/job.rc" ]; then
	[ "$rc" = 124 ] || [ "$rc" = 137 ] && { echo "vmrun.sh: the VM ran past $T s" >&2; exit 124; }
	echo "vmrun.sh: the guest never reported (qemu exit $rc; see $OUTD/console.log)" >&2; exit 125
fi
jrc=$(cat "$OUTD/job.rc")
[ "$jrc" = 124 ] || [ "$jrc" = 137 ] && echo "vmrun.sh: the job ran past its limit of $((T > 120 ? T - 60 : T / 2)) s" >&2
exit "$jrc"
