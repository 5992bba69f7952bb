#!/bin/bash
# Runs one iscsi-test-cu test (or a FAMILY.SUITE.TEST pattern) N times against one
# iserd on 127.0.0.1, each run a fresh iscsi-test-cu, and counts the runs whose
# CUnit summary has no failure: for races that show only now and then (e.g.
# ALL.iSCSITMF.AbortTaskSimpleAsync). The log of each failed run is kept.
# Usage: repeat_test_cu.sh TEST N [ram|file]
#   e.g. repeat_test_cu.sh ALL.iSCSITMF.AbortTaskSimpleAsync 200
# Env: ISD_REPEAT_LOAD=1 runs a CPU burner per core beside it (a loaded machine is
#      where timing races show); ISERD, ISERD_SRC, ISERD_BUILD as for run_test_cu.sh.
# Passes (one harness PASS) only when every run passed.
set -u
TEST=${1:?usage: $0 TEST N [ram|file]}
N=${2:?usage: $0 TEST N [ram|file]}
KIND=${3:-ram}
HERE=$(cd "$(dirname "$0")" && pwd)
. "$HERE/../lib/harness.sh"

isd_require_tools iscsi-test-cu timeout
ISD_LOG_TAIL=${ISD_LOG_TAIL:-20}
isd_init

IQN=iqn.2026-11.org.iserd:repeat-$KIND
INI1=iqn.2007-10.com.github:sahlberg:libiscsi:iscsi-test
INI2=iqn.2007-10.com.github:sahlberg:libiscsi:iscsi-test-2
case "$KIND" in
ram) LUN="ram:64M" ;;
file)
	truncate -s 64M "$ISD_TMP/lun.img"
	LUN="file:$ISD_TMP/lun.img"
	;;
*) echo "usage: $0 TEST N [ram|file]" >&2; exit 2 ;;
esac

if ! isd_start rep --target "$IQN" --lun "$LUN"; then
	isd_fail "iserd starts with --lun $LUN"
	isd_finish
fi
URL="iscsi://127.0.0.1:$ISD_PORT/$IQN/0"

BURNERS=()
if [ -n "${ISD_REPEAT_LOAD:-}" ]; then
	for _ in $(seq "$(nproc)"); do
		(while :; do :; done) &
		BURNERS+=($!)
	done
fi

pass=0 fail=0
for i in $(seq "$N"); do
	log="$ISD_TMP/run-$i.log"
	(cd "$ISD_TMP" && timeout -k 5 120 iscsi-test-cu --dataloss --allow-sanitize -t "$TEST" \
		-i "$INI1" -I "$INI2" "$URL" >"$log" 2>&1)
	# CUnit: "tests  <total>  <ran>  <passed>  <failed>  <inactive>"
	if awk '$1 == "tests" && $5 == 0 && $3 > 0 { ok = 1 } END { exit !ok }' "$log"; then
		pass=$((pass + 1))
		rm -f "$log"
	else
		fail=$((fail + 1))
		isd_log "run $i failed: $(grep -m1 -E 'FAILED|Assert|failed' "$log")"
	fi
done
for b in "${BURNERS[@]}"; do
	kill "$b" 2>/dev/null
	wait "$b" 2>/dev/null
done
isd_log "$TEST: $pass of $N runs passed, $fail failed (logs of failed runs: $ISD_TMP/run-*.log)"
if [ "$fail" -eq 0 ]; then
	isd_pass "$TEST passed $N times out of $N"
else
	isd_fail "$TEST failed $fail times out of $N"
fi
isd_expect_alive rep
isd_stop rep
isd_finish
