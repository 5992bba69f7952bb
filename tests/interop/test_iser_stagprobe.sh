#!/bin/bash
# Interop: no peer can RDMA Write into iserd's memory, over soft-RoCE (rxe), or soft-iWARP with
# ISERD_LAB_FABRIC=siw (test_iser_stagprobe_siw.sh). Boots the QEMU lab (tests/lab) and runs
# tests/lab/job-iser-stagprobe.sh: iserd with a RAM LUN, a 1 MiB WRITE and READ through libiscsi
# over iSER (tests/integration/isd_rwcheck.c), no registration with remote access left
# ("remote_mrs":0), then tests/integration/isd_stagprobe.c connects to the iSER portal without
# logging in and RDMA Writes to every MR the kernel lists for iserd (rkey and iova from `rdma res
# show mr`): each Write must be refused; then tests/integration/isd_iserflood.c logs in, stops
# posting receives and keeps pinging: iserd must drop the connection (finite RNR retry) and free
# it; then chaos over iSER (tests/integration/isd_chaoswriter.c): login cycles ending every way,
# writers on a RAM and a file LUN killed with SIGKILL mid-I/O and restarted, every acknowledged
# write verified afterwards, counters and fds back where they were.
# Env: ISERD, ISERD_SRC, ISERD_BUILD (set by ctest); ISERD_LAB_DIR; LAB_TIMEOUT (VM bound, s,
# default 900); ISERD_LAB_OUT; ISERD_LAB_FABRIC (rxe, the default, or siw);
# ISERD_LAB_CHAOS_CYCLES (login cycles, default 100), ISERD_LAB_CHAOS_KILLS (writer kills,
# default 20): larger for a long run (bench/ has none of this: it is a correctness run).
# Exit: 0 pass, 1 fail, 77 only when the lab cannot be set up on this machine.
set -uo pipefail
# shellcheck source=../lib/harness.sh
. "$(dirname "${BASH_SOURCE[0]}")/../lib/harness.sh"
isd_lab_init
isd_lab_need_iser
isd_lab_fabric
isd_lab_setup "${ISD_LAB_SETUP_ARGS[@]}"
isd_lab_outdir "${ISERD_LAB_OUT:-${ISERD_BUILD:-/tmp}/interop-iser-stagprobe-$FABRIC}"
ISD_LAB_FILES=(-f "$ISERD")
isd_lab_build isd_stagprobe -lrdmacm -libverbs &&
	isd_lab_build isd_iserflood -lrdmacm -libverbs &&
	isd_lab_build isd_rwcheck -liscsi &&
	isd_lab_build isd_chaoswriter -liscsi || { echo "FAIL: cannot build the guest's tools (logs in $OUTD)"; exit 1; }
echo "== guest run: RDMA Writes to iserd's STags ($FABRIC) (files in $OUTD)"
isd_lab_run 900 job-iser-stagprobe.sh -e "ISERD_BIN=/lab/files/$(basename "$ISERD")" -e "FABRIC=$FABRIC" \
	-e "CHAOS_CYCLES=${ISERD_LAB_CHAOS_CYCLES:-100}" -e "CHAOS_KILLS=${ISERD_LAB_CHAOS_KILLS:-20}"
if isd_lab_passed; then
	grep -E "refused|probed|login cycles|killed with SIGKILL|blocks checked|fds:" "$OUTD/log" |
		sed 's/^/  /'
	echo "PASS: no RDMA Write from a peer lands in iserd's memory; chaos leaves nothing behind ($FABRIC)"
	exit 0
fi
isd_lab_fail "log:guest job log:80" "iserd.log:iserd log:40"
