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
# shellcheck source=../lib/harness.sh
. "$(dirname "${BASH_SOURCE[0]}")/../lib/harness.sh"
isd_lab_init
isd_lab_need_iser
isd_lab_fabric
# iscsi-test-cu suites of the default run: the iSER data paths (READs as RDMA Writes, WRITEs as RDMA
# Reads, both in one command), sense data, residuals, task management. Each iscsi-test-cu start costs
# seconds under TCG (logins, probing), and the whole ALL family does not fit the time budget.
CU_SUBSET=ALL.Inquiry,ALL.ModeSense6,ALL.Read16,ALL.Write16,ALL.Unmap,ALL.GetLBAStatus
isd_lab_setup "${ISD_LAB_SETUP_ARGS[@]}"
isd_lab_outdir "${ISERD_LAB_OUT:-${ISERD_BUILD:-/tmp}/interop-libiscsi-iser-$FABRIC}"
# the WRITE load for the kill -9 step: tests/integration/isd_rwcheck.c against libiscsi-dev (the
# guest runs the host's binaries); without a compiler the job falls back to iscsi-test-cu
ISD_LAB_FILES=(-f "$ISERD")
isd_lab_build isd_rwcheck -liscsi ||
	echo "note: isd_rwcheck not built (see $OUTD/isd_rwcheck.build.log); iscsi-test-cu is the WRITE load"
echo "== guest run: libiscsi iSER initiator ($FABRIC) -> iserd (VM bound ${LAB_TIMEOUT:-480}s, files in $OUTD)"
isd_lab_run 480 job-libiscsi-iser.sh -e "ISERD_BIN=/lab/files/$(basename "$ISERD")" \
	-e "ISERD_ARGS=${ISERD_LAB_ISERD_ARGS:-}" -e "FABRIC=$FABRIC" -e "ISERD_SRC=$ISERD_SRC" \
	-e "TEST_CU_FILTER=${ISD_TEST_CU_FILTER:-$CU_SUBSET}" -e "TEST_CU_TIMEOUT=${ISD_TEST_CU_TIMEOUT:-240}" \
	-e "INITIAL_R2T=${ISERD_LAB_INITIAL_R2T:-yes}" -e "TEST_CU_MAX_NOT_RUN=${ISD_TEST_CU_MAX_NOT_RUN:-30}"
if isd_lab_passed; then
	for f in "$OUTD"/perf-*.txt; do
		[ -f "$f" ] && echo "  $(basename "$f" .txt): $(tr '\r' '\n' < "$f" | grep 'iops average' | tail -1 | sed 's/  */ /g')"
	done
	grep -E "^TOTALS|^XFAIL|^XPASS|^NOT RUN|^CLIENT CRASHES" "$OUTD/test-cu-compare.txt" 2>/dev/null | sed 's/^/  /'
	echo "PASS: libiscsi iSER initiator against iserd ($ISD_LAB_FABRIC_NAME)"
	exit 0
fi
isd_lab_fail "log:guest job log:150" "test-cu-compare.txt:iscsi-test-cu comparison:60" \
	"client-crash-backtraces.txt:backtraces of client crashes:60" "iserd.log:iserd log:100" \
	"dmesg.txt:guest dmesg:40"
