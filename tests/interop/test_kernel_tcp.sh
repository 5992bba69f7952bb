#!/bin/bash
# Interop: the Linux kernel's iSCSI/TCP initiator (open-iscsi + iscsi_tcp) against iserd.
#
# Boots Debian's kernel in the project's QEMU lab (tests/lab; TCG, no KVM needed) and runs
# tests/lab/job-kernel-tcp.sh in it: iserd on 10.99.0.1:3260 with a 256 MiB RAM LUN; SendTargets
# discovery, login, 64 MiB O_DIRECT write + read-back compare, mkfs.ext4, file copy, cold remount +
# compare + fsck, logout, and SIGTERM -> exit 0. Step results come back in a file the guest writes.
#
# Env: ISERD (binary), ISERD_SRC, ISERD_BUILD (set by ctest); ISERD_LAB_DIR (lab cache, default
# /var/tmp/iserd-lab); LAB_TIMEOUT (VM bound, s, default 900); ISERD_LAB_ISERD_ARGS (extra iserd
# arguments, e.g. -v); ISERD_LAB_OUT (where the run's files are kept; default under ISERD_BUILD).
# Exit: 0 pass, 1 fail, 77 only when the lab cannot be set up on this machine.
set -uo pipefail
# shellcheck source=../lib/harness.sh
. "$(dirname "${BASH_SOURCE[0]}")/../lib/harness.sh"
isd_lab_init
isd_lab_setup
isd_lab_outdir "${ISERD_LAB_OUT:-${ISERD_BUILD:-/tmp}/interop-kernel-tcp}"
echo "== guest run: kernel iSCSI/TCP initiator -> iserd (VM bound ${LAB_TIMEOUT:-900}s, files in $OUTD)"
isd_lab_run 900 job-kernel-tcp.sh -f "$ISERD" -e "ISERD_BIN=/lab/files/$(basename "$ISERD")" \
	-e "ISERD_ARGS=${ISERD_LAB_ISERD_ARGS:-}"
if isd_lab_passed; then
	echo "PASS: kernel iSCSI/TCP initiator against iserd"
	exit 0
fi
isd_lab_fail "log:guest job log:150" "iserd.log:iserd log:200" "iscsid.log:iscsid log:30" \
	"dmesg.txt:guest dmesg:60"
