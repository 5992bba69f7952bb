# shellcheck shell=bash
# Lab job (guest side of tests/interop/test_libiscsi_iser.sh): libiscsi's iSER initiator (its
# tools and the conformance suite iscsi-test-cu over iser:// URLs) against iserd over soft-RoCE
# (FABRIC=rxe, the default) or soft-iWARP (FABRIC=siw) on veth0.
# Env: ISERD_BIN (default /lab/files/iserd), ISERD_ARGS, FABRIC (rxe|siw), ISER_PORT (default 3260
# on rxe, 3261 on siw), ISERD_SRC (the source tree, read over 9p: tests/conformance),
# TEST_CU_FILTER (iscsi-test-cu -t patterns, comma-separated, default ALL), TEST_CU_TIMEOUT (s,
# default 420), TEST_CU_MAX_NOT_RUN (percent, default 30: see compare_test_cu.py --max-not-run);
# for investigations: CU_DIAG="PATTERN..." (each pattern alone under gdb first, diag-*.txt) and
# CU_COMPARE_ADVISORY=1 (the comparison is printed but does not stop the later steps).
# Files: /lab/out/iserd.log, iscsi-test-cu.log, test-cu-compare.txt, client-crash-backtraces.txt,
# perf-*.txt.
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
# whose DataSegmentLength says otherwise; docs/iser.md W7): iserd rightly drops such a connection
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
perf() {  # NAME QD ARGS: 5 s of READs (RDMA Writes from the LUN's registered memory)
	local name=$1 qd=$2 rc; shift 2
	timeout 60 iscsi-perf -i $INI1 -t 5 -m "$qd" "$@" "$URL" > $OUT/perf-$name-$FABRIC.txt 2>&1; rc=$?
	tr '\r' '\n' < $OUT/perf-$name-$FABRIC.txt | grep -E "connected|performing|transfer|average|finished|fail" | tail -5
	[ $rc = 0 ] && grep -q "iops average" $OUT/perf-$name-$FABRIC.txt && ! grep -qi "failed" $OUT/perf-$name-$FABRIC.txt
}
perf_rand4k() { perf rand4k 32 -b 8 -r; }
# 128 KiB at QD 8: libiscsi 1.19 fails larger iSER READs itself (iscsi-perf -b 2048, 1 MiB:
# "failed to send read16 command", then a double free in the client) before anything reaches iserd
perf_seq128k() { perf seq128k 8 -b 256; }
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
# the same in the middle of WRITEs (RDMA Reads in flight): isd_rwcheck (tests/integration, built by
# the host script against libiscsi-dev, -f) writes 48 MiB in 256 KiB WRITEs; without it,
# iscsi-test-cu's Write16 suite is the writer
kill9_writes() {
	local pid what i n loop=
	if [ -x /lab/files/isd_rwcheck ]; then
		head -c 48M /dev/urandom > /tmp/w.bin
		# the write repeats, so that a fast (quiet) machine is still writing when the kill
		# comes; the loop is stopped (no new writer) only at the kill, see below
		: > /tmp/w-kill.txt
		(while /lab/files/isd_rwcheck -i $INI1 -c 262144 -w /tmp/w.bin "$URL" \
			>> /tmp/w-kill.txt 2>&1; do :; done) &
		loop=$!
		what="isd_rwcheck (48 MiB of 256 KiB WRITEs, repeated)"
		sleep 4
		kill -0 $loop 2>/dev/null || { echo "$what: the loop ended"; tail -5 /tmp/w-kill.txt; return 1; }
	else
		(cd /tmp && exec iscsi-test-cu --dataloss -t "ALL.Write16" -i $INI1 -I $INI2 "$URL") > /tmp/w-kill.txt 2>&1 &
		pid=$! what="iscsi-test-cu ALL.Write16"
		sleep 6
		kill -0 $pid 2>/dev/null || { echo "$what ended before the kill"; tail -5 /tmp/w-kill.txt; return 1; }
	fi
	n=$(grep -c "current stats" $LOG); kill -USR1 $ISERD_PID
	for ((i = 0; i < 20; i++)); do [ "$(grep -c "current stats" $LOG)" -gt "$n" ] && break; sleep 0.1; done
	echo "before the kill: $(grep "current stats" $LOG | tail -1 | sed 's/.*current stats //')"
	if [ -n "$loop" ]; then
		# stop the loop, then take the writer it is running; between two writers
		# (a moment) let it start the next one
		for ((i = 0; i < 50; i++)); do
			kill -STOP $loop
			pid=$(awk '{print $1}' /proc/$loop/task/$loop/children 2>/dev/null)
			[ -n "$pid" ] && break
			kill -CONT $loop; sleep 0.05
		done
		[ -n "$pid" ] || { kill -9 $loop; wait $loop 2>/dev/null; echo "$what: no writer running"; tail -5 /tmp/w-kill.txt; return 1; }
	fi
	kill -9 $pid; wait $pid 2>/dev/null
	[ -n "$loop" ] && { kill -9 $loop; wait $loop 2>/dev/null; }
	echo "killed $what (pid $pid) mid-WRITE"
	tail -3 /tmp/w-kill.txt
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
# iscsi-test-cu through tests/conformance/test_cu_resume.sh: a crash of the client (libiscsi 1.19
# dies in some tests over iSER) costs only the test it crashed in, which the comparison counts as a
# failure "client crashed (SIGSEGV)"; the list for iSER is tests/conformance/expected-failures.iser
test_cu() {
	local rc t0=$SECONDS
	# core files of the client's crashes (evidence: cu_cores prints their backtraces)
	ulimit -c unlimited; mkdir -p /tmp/cores; echo "/tmp/cores/core.%e.%p" > /proc/sys/kernel/core_pattern
	[ -f $CONF/test_cu_resume.sh ] || { echo "no $CONF/test_cu_resume.sh (set ISERD_SRC)"; return 1; }
	(cd /tmp && bash $CONF/test_cu_resume.sh $OUT/iscsi-test-cu.log "${TEST_CU_TIMEOUT:-420}" \
		"${TEST_CU_FILTER:-ALL}" -- iscsi-test-cu --dataloss -i $INI1 -I $INI2 "$URL"); rc=$?
	echo "iscsi-test-cu run ended with status $rc after $((SECONDS - t0)) s"
	grep -E "^#### " $OUT/iscsi-test-cu.log
	TEST_CU_TIMED_OUT=
	[ $rc != 124 ] || { TEST_CU_TIMED_OUT=--timed-out; echo "timed out during: $(grep 'Test: ' $OUT/iscsi-test-cu.log | tail -1)"; return 1; }
	[ $rc = 0 ]
}
cu_cores() {  # backtraces of the client's core dumps, into $OUT/client-crash-backtraces.txt
	local c n=0
	for c in /tmp/cores/core.*; do
		[ -f "$c" ] || continue
		n=$((n + 1))
		[ $n -le 6 ] || { rm -f "$c"; continue; }
		{ echo "---- $c"; timeout 60 gdb -q -batch -ex bt "$(command -v iscsi-test-cu)" "$c" 2>&1 |
			grep -E "^#|signal|Program terminated"; } >> $OUT/client-crash-backtraces.txt
		rm -f "$c"
	done
	[ $n = 0 ] || { echo "$n client core dump(s); backtraces of the first 6:"; head -60 $OUT/client-crash-backtraces.txt; }
	return 0
}
test_cu_compare() {
	[ -f $CONF/compare_test_cu.py ] || { echo "no $CONF/compare_test_cu.py (set ISERD_SRC)"; return 1; }
	# shellcheck disable=SC2086
	python3 $CONF/compare_test_cu.py --log $OUT/iscsi-test-cu.log --expected $CONF/expected-failures.iser \
		--kind ram --max-not-run "${TEST_CU_MAX_NOT_RUN:-30}" ${TEST_CU_TIMED_OUT:-} > $OUT/test-cu-compare.txt 2>&1; local rc=$?
	cat $OUT/test-cu-compare.txt
	return $rc
}
# UNMAP of a RAM LUN (LBPRZ=1) then READ of the same blocks must give zeros, round after round:
# the RDMA Write of a READ comes straight from the LUN's pinned memory, which UNMAP zeroes in place.
# Through libiscsi's own API (isd_rwcheck -u), not iscsi-test-cu, whose process corrupts its heap
# over siw (tests/conformance/expected-failures.iser, Unmap.Simple).
unmap_zero() {
	local i
	for i in 1 2 3; do
		timeout 120 /lab/files/isd_rwcheck -i $INI1 -l 4096 -u 256 "$URL" || return 1
	done
}
# libiscsi sets SEND_W_INV_NOT_SUP in its CM header (its ibv_reg_mr keys cannot be invalidated
# remotely), so no response may carry Send with Invalidate
idle() {
	iserd_idle_check $LOG zero-copy || return 1
	local n
	n=$(iserd_stat $LOG remote_invalidations)
	echo "SCSI Responses sent with Invalidate: ${n:-none}"
	[ "$n" = 0 ]
}
# CU_DIAG="PATTERN...": each pattern alone under gdb (backtrace of a client crash) into
# $OUT/diag-PATTERN.txt; for finding where libiscsi dies, not part of the pass/fail verdict
cu_diag() {
	local p
	for p in ${CU_DIAG:-}; do
		echo "---- diag: iscsi-test-cu -t $p under gdb"
		(cd /tmp && timeout -k 5 240 gdb -q -batch -ex run -ex bt -ex "info registers rip" --args \
			iscsi-test-cu --dataloss -V -t "$p" -i $INI1 -I $INI2 "$URL") > "$OUT/diag-$p.txt" 2>&1
		grep -E "Suite:|Test:|SIG|^#[0-9]|passed|FAILED|invalid|free" "$OUT/diag-$p.txt" | tail -40
	done
}

step "soft-$FABRIC up on veth0 $LAB_IP" rdma_fabric_up $FABRIC
step "target started (iser://$LAB_IP:$ISER_PORT, ram:64M)" target_start
step "iscsi-inq over iSER" inq
step "iscsi-inq VPD 0x80 over iSER" inq_vpd
step "iscsi-readcapacity16 over iSER" rc16
step "iscsi-perf 4 KiB random READ, QD 32, 5 s" perf_rand4k
step "iscsi-perf 128 KiB sequential READ, QD 8, 5 s" perf_seq128k
[ -x /lab/files/isd_rwcheck ] && step "UNMAP then READ reads zeros, 3 x 256 rounds (isd_rwcheck -u)" unmap_zero
[ -z "${CU_DIAG:-}" ] || cu_diag
step "iscsi-test-cu over iser:// (${TEST_CU_FILTER:-ALL}, --dataloss)" test_cu
cu_cores
if [ "${CU_COMPARE_ADVISORY:-}" = 1 ]; then test_cu_compare; else
step "iscsi-test-cu results match tests/conformance/expected-failures.iser" test_cu_compare
fi
step "counters back to zero after the suite" idle
step "kill -9 of iscsi-perf mid-I/O" kill9_perf
step "kill -9 of a libiscsi writer mid-WRITE" kill9_writes
step "counters back to zero after the kills" idle
step "20 login/logout cycles" cycles
step "iserd serving, counters back to zero after the cycles" idle
cleanup "target stopped cleanly" iserd_stop
grep -E "warn|err" $LOG | grep -v "info:" | sort | uniq -c | sort -rn | head -20
lab_finish
