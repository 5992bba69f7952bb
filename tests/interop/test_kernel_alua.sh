#!/bin/bash
# Interop: ALUA through the Linux kernel's iSCSI/TCP initiator (open-iscsi + iscsi_tcp) and its
# scsi_dh_alua device handler, with sg3-utils' sg_inq, sg_vpd and sg_rtpg.
#
# In the project's QEMU lab (tests/lab; TCG) tests/lab/job-kernel-alua.sh runs two iserd gateways
# exporting one file as the same LU (same serial and NAA designator) from target port groups 1
# (active/optimized) and 2 (standby). The kernel logs in through both: both paths get the alua
# handler with the states the gateways report, sg_inq sees TPGS 1 and the same designator, sg_rtpg
# each gateway's groups; reads go through A and are refused through B. A failover through iserctl
# (A transitioning then standby, B active/optimized) is followed by the kernel, and data written
# through A reads back through B. Then logout and SIGTERM -> exit 0 for both.
#
# Env: ISERD (binary; iserctl is taken from the same directory), ISERD_SRC, ISERD_BUILD (set by
# ctest); ISERD_LAB_DIR (lab cache); LAB_TIMEOUT (VM bound, s, default 600); ISERD_LAB_OUT.
# Exit: 0 pass, 1 fail, 77 only when the lab cannot be set up here or iserctl is not built.
set -uo pipefail
# shellcheck source=../lib/harness.sh
. "$(dirname "${BASH_SOURCE[0]}")/../lib/harness.sh"
isd_lab_init
ISERCTL="$(dirname "$ISERD")/iserctl"
[ -x "$ISERCTL" ] || { echo "SKIP: no iserctl next to $ISERD (build the iserctl target)"; exit 77; }
command -v sg_rtpg >/dev/null || { echo "SKIP: sg_rtpg missing (scripts/deps.sh --lab)"; exit 77; }
isd_lab_setup
isd_lab_outdir "${ISERD_LAB_OUT:-${ISERD_BUILD:-/tmp}/interop-kernel-alua}"
echo "== guest run: two gateways, one LU, through the kernel initiator and scsi_dh_alua (VM bound" \
	"${LAB_TIMEOUT:-600}s, files in $OUTD)"
isd_lab_run 600 job-kernel-alua.sh -f "$ISERD" -f "$ISERCTL" \
	-e "ISERD_BIN=/lab/files/$(basename "$ISERD")" \
	-e "ISERCTL_BIN=/lab/files/$(basename "$ISERCTL")"
if isd_lab_passed; then
	echo "PASS: two gateways, one LU: scsi_dh_alua follows the states and the failover"
	exit 0
fi
isd_lab_fail "log:guest job log:200" "iserd-a.log:gateway A log:60" "iserd-b.log:gateway B log:60" \
	"iscsid.log:iscsid log:30" "dmesg.txt:guest dmesg:80"
