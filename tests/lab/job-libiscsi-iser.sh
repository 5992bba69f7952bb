# shellcheck shell=bash
# Lab job (guest side of tests/interop/test_libiscsi_iser.sh): libiscsi's iSER initiator (its
# tools and the conformance suite iscsi-test-cu over iser:// URLs) against iserd over soft-RoCE
# (FABRIC=rxe, the default) or soft-iWARP (FABRIC=siw) on veth0.
# Env: ISERD_BIN (default /lab/files/iserd), ISERD_ARGS, FABRIC (rxe|siw), ISER_PORT (default 3260
# on rxe, 3261 on siw), ISERD_SRC (the source tree, read over 9p: tests/conformance),
# TEST_CU_FILTER (iscsi-test-cu -t, default ALL), TEST_CU_TIMEOUT (s, default 420).
# Files: /lab/out/iserd.log, iscsi-test-cu.log, test-cu-compare.txt, perf-*.txt.
. /lab/guest.sh
IQN=iqn.2026-11.org.iserd:test-cu-ram
INI1=iqn.2007-10.com.github:sahlberg:libiscsi:iscsi-test
INI2=iqn.2007-10.com.github:sahlberg:libiscsi:iscsi-test-2
ISERD_BIN=${ISERD_BIN:-/lab/files/iserd}
FABRIC=${FABRIC:-rxe}
if [ "$FABRIC" = siw ]; then ISER_PORT=${ISER_PORT:-3261}; else ISER_PORT=${ISER_PORT:-3260}; fi
CONF=${ISERD_SRC:-/nonexistent}/tests/conformance
LOG=$OUT/iserd.log
URL=iser://$LAB_IP:$ISER_PORT/$IQN/0

# libiscsi 1.19 sends unsolicited Data-Out PDUs over iSER without their payload (a 76-byte Send
# whose DataSegmentLength says otherwise; iser-facts §4.2.6): iserd rightly drops such a connection
# ("malformed receive ... lengths do not add up"); the same was seen for a COMPARE AND WRITE with
# immediate data. tgt hides it by forcing InitialR2T=Yes and ImmediateData=No for iSER; iserd does
# the same when told (initial_r2t = true, immediate_data = false). INITIAL_R2T=no runs iserd's
# default negotiation and shows the failure.
target_start() {
	local conf=()
	ulimit -l unlimited
	if [ "${INITIAL_R2T:-yes}" = yes ]; then
		printf 'global = {\n\tinitial_r2t = true;\n\timmediate_data = false;\n};\n' > /tmp/iserd.conf
		conf=(-c /tmp/iserd.conf)
	fi
	# shellcheck disable=SC2086
	iserd_start $LOG "${conf[@]}" --portal iser://$LAB_IP:$ISER_PORT --target $IQN --lun ram:64M \
		${ISERD_ARGS:-}
}
inq() { timeout 60 iscsi-inq -i $INI1 "$URL"; }
inq_vpd() { timeout 60 iscsi-inq -i $INI1 -e 1 -c 0x80 "$URL"; }
rc16() {
	timeout 60 iscsi-readcapacity16 -i $INI1 "$URL" > /tmp/rc16.out; local rc=$?
	cat /tmp/rc16.out
	[ $rc = 0 ] && grep -q "^LOGICAL BLOCK LENGTH IN BYTES:512" /tmp/rc16.out &&
		grep -q "^RETURNED LOGICAL BLOCK ADDRESS:131071" /tmp/rc16.out
}
perf() {  # NAME ARGS: 5 s of READs at QD 32 (RDMA Writes from the LUN's registered memory)
	local name=$1 rc; shift
	timeout 60 iscsi-perf -i $INI1 -t 5 -m 32 "$@" "$URL" > $OUT/perf-$name-$FABRIC.txt 2>&1; rc=$?
	tr '\r' '\n' < $OUT/perf-$name-$FABRIC.txt | grep -E "connected|performing|transfer|average|finished|fail" | tail -5
	[ $rc = 0 ] && grep -q "iops average" $OUT/perf-$name-$FABRIC.txt && ! grep -qi "failed" $OUT/perf-$name-$FABRIC.txt
}
perf_rand4k() { perf rand4k -b 8 -r; }
# 128 KiB: libiscsi 1.19 fails larger iSER READs itself ("failed to send read16 command", then a
# double free in the client) before anything reaches the target
perf_seq128k() { perf seq128k -b 256; }
# kill -9 of an initiator in the middle of its I/O; iserd must tear the connection down and serve on
kill9_perf() {
	local pid
	iscsi-perf -i $INI1 -m 32 -b 256 -t 60 "$URL" > /tmp/perf-kill.txt 2>&1 &
	pid=$!
	sleep 4
	tr '\r' '\n' < /tmp/perf-kill.txt | grep -q "lba" || { echo "iscsi-perf was not doing I/O"; kill -9 $pid; wait $pid; return 1; }
	kill -9 $pid; wait $pid 2>/dev/null
	echo "killed iscsi-perf (pid $pid) mid-READ"
	sleep 1
	inq > /dev/null && echo "iserd still serves"
}
kill9_writes() {  # the same in the middle of iscsi-test-cu's WRITE tests (RDMA Reads in flight)
	local pid
	(cd /tmp && exec iscsi-test-cu --dataloss -t "ALL.Write16" -i $INI1 -I $INI2 "$URL") > /tmp/cu-kill.txt 2>&1 &
	pid=$!
	sleep 6
	kill -0 $pid 2>/dev/null || { echo "iscsi-test-cu ended before the kill"; tail -5 /tmp/cu-kill.txt; return 1; }
	grep -q "Test: " /tmp/cu-kill.txt || { echo "no test was running"; return 1; }
	kill -9 $pid; wait $pid 2>/dev/null
	echo "killed iscsi-test-cu (pid $pid) during: $(grep 'Test: ' /tmp/cu-kill.txt | tail -1)"
	sleep 1
	inq > /dev/null && echo "iserd still serves"
}
cycles() {  # 20 logins and logouts
	local i
	for ((i = 1; i <= 20; i++)); do
		timeout 60 iscsi-readcapacity16 -i $INI1 "$URL" > /dev/null || { echo "cycle $i failed"; return 1; }
	done
	echo "20 login/READ CAPACITY/logout cycles"
}
test_cu() {
	local rc t0=$SECONDS
	(cd /tmp && timeout -k 10 "${TEST_CU_TIMEOUT:-420}" stdbuf -oL -eL iscsi-test-cu --dataloss \
		-t "${TEST_CU_FILTER:-ALL}" -i $INI1 -I $INI2 "$URL") > $OUT/iscsi-test-cu.log 2>&1; rc=$?
	echo "iscsi-test-cu exited with status $rc after $((SECONDS - t0)) s"
	grep -E "Run Summary|suites|tests|asserts" $OUT/iscsi-test-cu.log | tail -4
	[ $rc != 124 ] && [ $rc != 137 ] || { echo "timed out during: $(grep 'Test: ' $OUT/iscsi-test-cu.log | tail -1)"; return 1; }
	# like run_test_cu.sh: test failures are judged by the comparison, a crash is a failure here
	[ $rc -le 128 ] || [ $rc -ge 160 ] ||
		{ echo "iscsi-test-cu died with signal $((rc - 128)) after: $(grep 'Test: ' $OUT/iscsi-test-cu.log | tail -1)"; return 1; }
	return 0
}
test_cu_compare() {
	[ -f $CONF/compare_test_cu.py ] || { echo "no $CONF/compare_test_cu.py (set ISERD_SRC)"; return 1; }
	python3 $CONF/compare_test_cu.py --log $OUT/iscsi-test-cu.log --expected $CONF/expected-failures \
		--kind ram > $OUT/test-cu-compare.txt 2>&1; local rc=$?
	cat $OUT/test-cu-compare.txt
	return $rc
}
idle() { iserd_idle_check $LOG; }

step "soft-$FABRIC up on veth0 $LAB_IP" rdma_fabric_up $FABRIC
step "target started (iser://$LAB_IP:$ISER_PORT, ram:64M)" target_start
step "iscsi-inq over iSER" inq
step "iscsi-inq VPD 0x80 over iSER" inq_vpd
step "iscsi-readcapacity16 over iSER" rc16
step "iscsi-perf 4 KiB random READ, QD 32, 5 s" perf_rand4k
step "iscsi-perf 128 KiB sequential READ, QD 32, 5 s" perf_seq128k
step "iscsi-test-cu over iser:// (${TEST_CU_FILTER:-ALL}, --dataloss)" test_cu
step "iscsi-test-cu results match tests/conformance/expected-failures" test_cu_compare
step "counters back to zero after the suite" idle
step "kill -9 of iscsi-perf mid-I/O" kill9_perf
step "kill -9 of iscsi-test-cu mid-WRITE" kill9_writes
step "counters back to zero after the kills" idle
step "20 login/logout cycles" cycles
step "iserd serving, counters back to zero after the cycles" idle
cleanup "target stopped cleanly" iserd_stop
grep -E "warn|err" $LOG | grep -v "info:" | sort | uniq -c | sort -rn | head -20
lab_finish
