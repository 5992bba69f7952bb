#!/bin/bash
# Interop: libiscsi's iSER initiator (iser:// URLs) against iserd over soft-RoCE (rdma_rxe on a veth
# pair), or over soft-iWARP with ISERD_LAB_FABRIC=siw (test_libiscsi_iser_siw.sh).
#
# Boots Debian's kernel in the project's QEMU lab (tests/lab; TCG, no KVM needed) and runs
# tests/lab/job-libiscsi-iser.sh in it: iserd on iser://10.99.0.1:3260 (rxe; :3261 on siw) with a
# 64 MiB RAM LUN and initial_r2t = true, immediate_data = false (libiscsi 1.19 sends unsolicited
# Data-Out and immediate data over iSER without their payload); iscsi-inq (standard and VPD),
# iscsi-readcapacity16 (iscsi-ls takes only iscsi:// URLs), iscsi-perf 4 KiB random READs at QD 32
# and 128 KiB sequential READs at QD 8; UNMAP then READ of the same blocks reads zeros (3 x 256
# rounds through libiscsi's API: tests/integration/isd_rwcheck.c -u); iscsi-test-cu over iser:// (the suites in CU_SUBSET,
# --dataloss) through tests/conformance/test_cu_resume.sh, which survives crashes of the client,
# compared with tests/conformance/expected-failures.iser; kill -9 of iscsi-perf mid-READ and of a
# libiscsi writer (tests/integration/isd_rwcheck.c, built here) mid-WRITE; 20 login/logout cycles;
# after each part iSER resources (connections, QPs, CQs, connection MRs, data buffers, transfer
# jobs) and the core's sessions/connections/tasks (SIGUSR1) back to zero; SIGTERM -> 0.
#
# Env: ISERD (binary), ISERD_SRC, ISERD_BUILD (set by ctest); ISERD_LAB_DIR (lab cache);
# LAB_TIMEOUT (VM bound, s, default 480); ISERD_LAB_ISERD_ARGS (extra iserd arguments);
# ISERD_LAB_OUT (where the run's files are kept); ISERD_LAB_FABRIC (rxe|siw);
# ISD_TEST_CU_FILTER (iscsi-test-cu -t patterns, comma-separated; default $CU_SUBSET below, which fits
# the CI budget; ALL runs everything but takes well over 8 minutes under TCG, see docs/iser.md);
# ISD_TEST_CU_TIMEOUT (s, default 240);
# ISD_TEST_CU_MAX_NOT_RUN (percent of the suite's tests allowed to stay unrun because the client
# crashed three times at their suite's start-up, default 30);
# ISERD_LAB_INITIAL_R2T (yes, the default: iserd runs with initial_r2t = true, because libiscsi
# sends unsolicited Data-Out over iSER without payload; no: iserd's default negotiation).
# Exit: 0 pass, 1 fail, 77 only when the lab cannot be set up on this machine.
set -uo pipefail
SRC=${ISERD_SRC:-$(cd "$(dirname "$0")/../.." && pwd)}
ISERD=${ISERD:-${ISERD_BUILD:-$SRC/build}/iserd}
LAB=$SRC/tests/lab
secs() { date +%s.%N; }
dt() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.1f", b - a }'; }

[ -x "$ISERD" ] || { echo "FAIL: no iserd binary at '$ISERD' (set ISERD)"; exit 1; }
if ! "$ISERD" --help 2>&1 | grep -q 'iser://'; then
	echo "SKIP: this iserd build does not offer iser:// portals (see iserd --help)"
	exit 77
fi
FABRIC=${ISERD_LAB_FABRIC:-rxe}
# iscsi-test-cu suites of the default run: the iSER data paths (READs as RDMA Writes, WRITEs as RDMA
# Reads, both in one command), sense data, residuals, task management. Each iscsi-test-cu start costs
# seconds under TCG (logins, probing), and the whole ALL family does not fit the time budget.
CU_SUBSET=ALL.Inquiry,ALL.ModeSense6,ALL.Read16,ALL.Write16,ALL.Unmap,ALL.GetLBAStatus
case $FABRIC in
rxe) SETUP_ARGS=() NAME="soft-RoCE" ;;
siw) SETUP_ARGS=(--siw) NAME="soft-iWARP" ;;
*) echo "FAIL: ISERD_LAB_FABRIC must be rxe or siw"; exit 1 ;;
esac

echo "== lab setup"
t0=$(secs)
bash "$LAB/setup.sh" "${SETUP_ARGS[@]}"
rc=$?
t_setup=$(dt "$t0" "$(secs)")
case $rc in
0) echo "lab setup done in ${t_setup}s" ;;
77) echo "SKIP: the QEMU lab cannot be set up on this machine (reason above)"; exit 77 ;;
*) echo "FAIL: lab setup failed (exit $rc)"; exit 1 ;;
esac

OUTD=${ISERD_LAB_OUT:-${ISERD_BUILD:-/tmp}/interop-libiscsi-iser-$FABRIC}
rm -rf "$OUTD"; mkdir -p "$OUTD"
# the WRITE load for the kill -9 step: tests/integration/isd_rwcheck.c against libiscsi-dev (the
# guest runs the host's binaries); without a compiler the job falls back to iscsi-test-cu
FILES=(-f "$ISERD")
if gcc -O1 -o "$OUTD/isd_rwcheck" "$SRC/tests/integration/isd_rwcheck.c" -liscsi 2>"$OUTD/isd_rwcheck.build.log"; then
	FILES+=(-f "$OUTD/isd_rwcheck")
else
	echo "note: isd_rwcheck not built (see $OUTD/isd_rwcheck.build.log); iscsi-test-cu is the WRITE load"
fi
echo "== guest run: libiscsi iSER initiator ($FABRIC) -> iserd (VM bound ${LAB_TIMEOUT:-480}s, files in $OUTD)"
t0=$(secs)
LAB_TIMEOUT=${LAB_TIMEOUT:-480} bash "$LAB/vmrun.sh" "${FILES[@]}" -e "ISERD_BIN=/lab/files/$(basename "$ISERD")" \
	-e "ISERD_ARGS=${ISERD_LAB_ISERD_ARGS:-}" -e "FABRIC=$FABRIC" -e "ISERD_SRC=$SRC" \
	-e "TEST_CU_FILTER=${ISD_TEST_CU_FILTER:-$CU_SUBSET}" -e "TEST_CU_TIMEOUT=${ISD_TEST_CU_TIMEOUT:-240}" \
	-e "INITIAL_R2T=${ISERD_LAB_INITIAL_R2T:-yes}" -e "TEST_CU_MAX_NOT_RUN=${ISD_TEST_CU_MAX_NOT_RUN:-30}" \
	"$LAB/job-libiscsi-iser.sh" "$OUTD"
vm_rc=$?
t_vm=$(dt "$t0" "$(secs)")

[ -f "$OUTD/result" ] && sed 's/^/  /' "$OUTD/result"
boot=$(cat "$OUTD/boot.s" 2>/dev/null) end=$(cat "$OUTD/end.s" 2>/dev/null)
echo "timings: setup ${t_setup}s, VM ${t_vm}s wall (guest boot ${boot:-?}s, job $([ -n "$end" ] && dt "$boot" "$end" || echo ?)s)"

if [ "$vm_rc" = 0 ] && grep -qx "RESULT PASS" "$OUTD/result" 2>/dev/null; then
	for f in "$OUTD"/perf-*.txt; do
		[ -f "$f" ] && echo "  $(basename "$f" .txt): $(tr '\r' '\n' < "$f" | grep 'iops average' | tail -1 | sed 's/  */ /g')"
	done
	grep -E "^TOTALS|^XFAIL|^XPASS|^NOT RUN|^CLIENT CRASHES" "$OUTD/test-cu-compare.txt" 2>/dev/null | sed 's/^/  /'
	echo "PASS: libiscsi iSER initiator against iserd ($NAME)"
	exit 0
fi

case $vm_rc in
124) echo "FAIL: the VM ran past ${LAB_TIMEOUT:-480}s" ;;
125) echo "FAIL: the guest never ran the job to its end" ;;
*) echo "FAIL: job exit status $vm_rc" ;;
esac
show() {  # FILE TITLE LINES
	[ -s "$1" ] || return 0
	echo "---- $2 (last $3 lines of $1)"; tail -n "$3" "$1"
}
show "$OUTD/log" "guest job log" 150
show "$OUTD/test-cu-compare.txt" "iscsi-test-cu comparison" 60
show "$OUTD/client-crash-backtraces.txt" "backtraces of client crashes" 60
show "$OUTD/iserd.log" "iserd log" 100
show "$OUTD/dmesg.txt" "guest dmesg" 40
[ -f "$OUTD/job.rc" ] || { show "$OUTD/console.log" "guest console" 40; show "$OUTD/qemu.log" "qemu" 20; }
exit 1
