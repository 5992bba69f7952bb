#!/bin/bash
# Interop: EXTENDED COPY through the Linux kernel's iSCSI/TCP initiator (open-iscsi + iscsi_tcp)
# and sg3-utils' sg_xcopy.
#
# In the project's QEMU lab (tests/lab; TCG) tests/lab/job-kernel-xcopy.sh runs iserd with two
# targets (S: two RAM LUNs, D: one), logs the kernel in to both, writes 256 MiB of random data to
# S's LUN 0 and copies them with sg_xcopy to S's LUN 1 and to D's LUN 0. Each copy must read back
# identical (sha256, O_DIRECT), move under 4 MiB over the guest's lo (initiator and target share
# the guest; lo carried the 256 MiB source write, so the counter is shown to see the traffic) and
# add 256 MiB to the destination LUN's xcopy_bytes in `iserctl stats`. Then logout and SIGTERM ->
# exit 0.
#
# Env: ISERD (binary; iserctl is taken from the same directory), ISERD_SRC, ISERD_BUILD (set by
# ctest); ISERD_LAB_DIR (lab cache); LAB_TIMEOUT (VM bound, s, default 900); LAB_MEM (guest MiB,
# default 3072 here: three 320 MiB RAM LUNs); ISERD_LAB_ISERD_ARGS; ISERD_LAB_OUT.
# Exit: 0 pass, 1 fail, 77 only when the lab cannot be set up here or iserctl is not built.
set -uo pipefail
# shellcheck source=../lib/harness.sh
. "$(dirname "${BASH_SOURCE[0]}")/../lib/harness.sh"
isd_lab_init
ISERCTL="$(dirname "$ISERD")/iserctl"
[ -x "$ISERCTL" ] || { echo "SKIP: no iserctl next to $ISERD (build the iserctl target)"; exit 77; }
command -v sg_xcopy >/dev/null || { echo "SKIP: sg_xcopy missing (scripts/deps.sh --lab)"; exit 77; }
export LAB_MEM=${LAB_MEM:-3072}
isd_lab_setup
isd_lab_outdir "${ISERD_LAB_OUT:-${ISERD_BUILD:-/tmp}/interop-kernel-xcopy}"
echo "== guest run: sg_xcopy through the kernel iSCSI/TCP initiator (VM bound" \
	"${LAB_TIMEOUT:-900}s, files in $OUTD)"
isd_lab_run 900 job-kernel-xcopy.sh -f "$ISERD" -f "$ISERCTL" \
	-e "ISERD_BIN=/lab/files/$(basename "$ISERD")" \
	-e "ISERCTL_BIN=/lab/files/$(basename "$ISERCTL")" \
	-e "ISERD_ARGS=${ISERD_LAB_ISERD_ARGS:-}"
if isd_lab_passed; then
	grep -E "^sg_xcopy " "$OUTD/log" | sed 's/^/  /'
	echo "PASS: EXTENDED COPY through the kernel initiator (sg_xcopy)"
	exit 0
fi
isd_lab_fail "log:guest job log:150" "iserd.log:iserd log:120" "iscsid.log:iscsid log:30" \
	"dmesg.txt:guest dmesg:60"
