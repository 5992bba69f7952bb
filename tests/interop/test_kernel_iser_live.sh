#!/bin/bash
# Interop: live changes under the Linux kernel's iSER initiator (open-iscsi -I iser + ib_iser),
# over soft-RoCE (rdma_rxe on a veth pair; ISERD_LAB_FABRIC=siw for soft-iWARP).
#
# Proves, with the kernel's I/O running over iSER, that a LUN added, a target removed, an ACL
# changed, a CHAP secret rotated and a SIGHUP reload leave the running session without an error
# and its data intact, and that new logins see the new state. In the project's QEMU lab (tests/lab;
# TCG) tests/lab/job-kernel-iser-live.sh runs iserd from a config file with a control socket
# (targets A, B, C), logs the kernel in to A and B, and runs fio passes on A's LUN 0 (random
# 4-128 KiB writes at QD 16, each pass verified with crc32c). With writes in flight on A each
# time, iserctl does `lun add A 1`, `target remove B --force` (the kernel's session to B is asked
# to log out: iserd frees it without a timeout; iscsid then retries logins to the gone target
# until it is logged out, after which iscsiadm lists it no more), `acl add A` (this initiator and
# another; an initiator outside the list is refused), `acl chap C` (rotation), and the file is
# edited (E added, B absent) and reloaded with SIGHUP ("reloaded: targets +1 -0 ~0 (2 untouched)":
# the file matched what ran). Then: every fio pass exit 0 and verified; A's session the same, with
# no connection error (the REPORTED LUNS DATA HAS CHANGED that the LUN add raised on it was
# retried by the kernel, unseen by fio); the last pass verified again at the end; a rescan shows
# A's LUN 1 as a new 16 MiB disk; discovery lists E and not B; a login to E works; C refuses the
# old secret and accepts the new one; iserd's counters back to zero after logout; SIGTERM -> exit
# 0, no sanitizer report. Step results come back in a file the guest writes.
#
# Env: ISERD (binary; iserctl is taken from the same directory), ISERD_SRC, ISERD_BUILD (set by
# ctest); ISERD_LAB_DIR (lab cache, default /var/tmp/iserd-lab); LAB_TIMEOUT (VM bound, s, default
# 600); ISERD_LAB_ISERD_ARGS (extra iserd arguments, e.g. -v); ISERD_LAB_OUT (where the run's files
# are kept; default under ISERD_BUILD); ISERD_LAB_FABRIC (rxe, the default, or siw);
# ISERD_LAB_MIN_IO_S (the fio writer runs at least this long, s, default 40).
# Exit: 0 pass, 1 fail, 77 only when the lab cannot be set up here or iserctl is not built.
set -uo pipefail
# shellcheck source=../lib/harness.sh
. "$(dirname "${BASH_SOURCE[0]}")/../lib/harness.sh"
isd_lab_init
ISERCTL="$(dirname "$ISERD")/iserctl"
[ -x "$ISERCTL" ] || { echo "SKIP: no iserctl next to $ISERD (build the iserctl target)"; exit 77; }
isd_lab_need_iser
isd_lab_fabric
isd_lab_setup "${ISD_LAB_SETUP_ARGS[@]}"
isd_lab_outdir "${ISERD_LAB_OUT:-${ISERD_BUILD:-/tmp}/interop-kernel-iser-live-$FABRIC}"
echo "== guest run: live changes under the kernel iSER initiator ($FABRIC) (VM bound" \
	"${LAB_TIMEOUT:-600}s, files in $OUTD)"
isd_lab_run 600 job-kernel-iser-live.sh -f "$ISERD" -f "$ISERCTL" \
	-e "ISERD_BIN=/lab/files/$(basename "$ISERD")" \
	-e "ISERCTL_BIN=/lab/files/$(basename "$ISERCTL")" \
	-e "ISERD_ARGS=${ISERD_LAB_ISERD_ARGS:-}" -e "FABRIC=$FABRIC" \
	-e "MIN_IO_S=${ISERD_LAB_MIN_IO_S:-40}"
if isd_lab_passed; then
	grep -E "^fio: .* passes" "$OUTD/log" | sed 's/^/  /'
	echo "PASS: live changes under the kernel iSER initiator ($ISD_LAB_FABRIC_NAME)"
	exit 0
fi
isd_lab_fail "log:guest job log:150" "iserd.log:iserd log:120" "iscsid.log:iscsid log:30" \
	"fio-live.txt:fio:40" "dmesg.txt:guest dmesg:60"
