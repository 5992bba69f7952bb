#!/bin/bash
# Runs libiscsi's conformance suite iscsi-test-cu (family ALL, --dataloss and
# --allow-sanitize, two initiator names) against iserd on 127.0.0.1 with one LUN
# of the given kind and compares the results with tests/conformance/expected-failures.
# Usage: run_test_cu.sh KIND, KIND one of
#   ram    a 64 MiB RAM LUN
#   file   a 64 MiB file LUN
#   ro     a read-only RAM LUN, suite ReadOnly (the other suites write)
#   phys   a RAM LUN of 512-byte logical, 4096-byte physical blocks
#   mpath  a RAM LUN behind two TCP portals, suite MultipathIO given both URLs
#   sanitize  a 32 TiB zero: LUN, suite Sanitize.Reset (a SANITIZE that lasts)
#   rbd    a 64 MiB RBD image on a one-node Ceph cluster (tests/lib/ceph.sh);
#          skipped without the ceph packages or the rbd: store
# The last three also require every test they skip to be listed, with the reason,
# in tests/conformance/skips.md.
# Env: ISD_TEST_CU_TIMEOUT (seconds, default 900), ISD_TEST_CU_FILTER (-t pattern,
#      default ALL or the kind's suite), ISERD, ISERD_SRC, ISERD_BUILD.
set -u
KIND=${1:-ram}
HERE=$(cd "$(dirname "$0")" && pwd)
. "$HERE/../lib/harness.sh"
. "$HERE/../lib/ceph.sh"

isd_require_tools iscsi-test-cu python3 timeout stdbuf
# iserd logs a line per login and iscsi-test-cu logs in often: keep the dump short.
ISD_LOG_TAIL=${ISD_LOG_TAIL:-20}
isd_init

IQN=iqn.2026-11.org.iserd:test-cu-$KIND
INI1=iqn.2007-10.com.github:sahlberg:libiscsi:iscsi-test
INI2=iqn.2007-10.com.github:sahlberg:libiscsi:iscsi-test-2
LIMIT=${ISD_TEST_CU_TIMEOUT:-900}
SIZE=64M
SUITE=ALL
SKIPS=()        # --skips FILE: every skipped test must be listed there
ARGS=()

case "$KIND" in
ram) LUN="ram:$SIZE" ;;
file)
	truncate -s "$SIZE" "$ISD_TMP/lun.img"
	LUN="file:$ISD_TMP/lun.img"
	;;
ro)
	# read_only has no flag of its own: a config file gives it
	LUN="ram:$SIZE (read-only)"
	cat >"$ISD_TMP/ro.conf" <<EOF
targets = ( { name = "$IQN"; luns = ( { backing = "ram:$SIZE"; read_only = true; } ); } );
EOF
	ARGS=(--config "$ISD_TMP/ro.conf")
	SUITE='ALL.ReadOnly.*'
	SKIPS=(--skips "$HERE/skips.md")
	;;
phys)
	LUN="ram:$SIZE,physical_block_size=4096"
	SKIPS=(--skips "$HERE/skips.md")
	;;
sanitize)
	# Sanitize.Reset needs a SANITIZE OVERWRITE still running 5 s after it was
	# sent (through ABORT TASK, resets and a new login), as on a large disk; a
	# zero: LUN's writes cost only the reactor's work, so a big one takes that
	# long without memory or disk (about 20-60 s). The test then sleeps 60 s in
	# a call that answers no NOP-In: pings off (nop_interval 0), or iserd would
	# drop the connection and every reconnect would meet a new unit attention.
	LUN="zero:${ISD_TEST_CU_ZERO_SIZE:-32T}"
	cat >"$ISD_TMP/sanitize.conf" <<EOF
global = { nop_interval = 0; };
targets = ( { name = "$IQN"; luns = ( { backing = "$LUN"; } ); } );
EOF
	ARGS=(--config "$ISD_TMP/sanitize.conf")
	SUITE='ALL.Sanitize.Reset'
	;;
rbd)
	isd_ceph_have || isd_skip "the ceph packages are not installed (scripts/deps.sh --test)"
	grep -q 'rbd:POOL' <<<"$("$ISERD" --help 2>&1)" || isd_skip "this iserd has no rbd: store"
	# librados and librbd are not built with the sanitizer: their own
	# allocations at exit are not iserd's leaks
	printf 'leak:librados.so\nleak:librbd.so\nleak:libceph-common.so\n' >"$ISD_TMP/lsan.supp"
	export LSAN_OPTIONS=${LSAN_OPTIONS:+$LSAN_OPTIONS:}suppressions=$ISD_TMP/lsan.supp
	ISD_CLEANUP_HOOKS+=(isd_ceph_stop)
	isd_ceph_start "$ISD_TMP/ceph"
	case $? in
	0) isd_log "one-node Ceph cluster up in ${ISD_CEPH_START_S}s" ;;
	77) exit 77 ;;
	*) echo "FAIL: the one-node Ceph cluster did not start"; exit 1 ;;
	esac
	timeout 60 rbd -c "$ISD_CEPH_CONF" --id admin create --size "$SIZE" "$ISD_CEPH_POOL/cu" ||
		{ echo "FAIL: rbd create"; exit 1; }
	LUN="rbd:$ISD_CEPH_POOL/cu,conf=$ISD_CEPH_CONF,id=$ISD_CEPH_CLIENT"
	;;
mpath)
	LUN="ram:$SIZE"
	# the second portal: a port nothing listens on (the harness picks the first)
	for _ in $(seq 1 20); do
		PORT2=$((4000 + RANDOM % 700))
		isd_port_listening "$PORT2" || break
	done
	ARGS=(--portal "tcp://127.0.0.1:$PORT2")
	SUITE='ALL.MultipathIO.*'
	SKIPS=(--skips "$HERE/skips.md")
	;;
*) echo "usage: $0 ram|file|ro|phys|mpath|sanitize|rbd" >&2; exit 2 ;;
esac
FILTER=${ISD_TEST_CU_FILTER:-$SUITE}
if [ "$KIND" != ro ] && [ "$KIND" != sanitize ]; then
	ARGS+=(--target "$IQN" --lun "$LUN")
fi

if ! isd_start cu "${ARGS[@]}"; then
	isd_fail "iserd starts with --lun $LUN"
	isd_finish
fi
URL="iscsi://127.0.0.1:$ISD_PORT/$IQN/0"
URLS=("$URL")
if [ "$KIND" = mpath ]; then
	# iscsi-test-cu takes one URL per path (up to 4); its MultipathIO tests need two
	URLS+=("iscsi://127.0.0.1:$PORT2/$IQN/0")
fi
LOG="$ISD_TMP/iscsi-test-cu.log"
isd_log "iscsi-test-cu -t $FILTER --dataloss --allow-sanitize ${URLS[*]} (limit ${LIMIT}s)"
start=$(date +%s)
(cd "$ISD_TMP" && timeout -k 10 "$LIMIT" stdbuf -oL -eL iscsi-test-cu --dataloss --allow-sanitize -t "$FILTER" \
	-i "$INI1" -I "$INI2" "${URLS[@]}" >"$LOG" 2>&1)
rc=$?
isd_log "iscsi-test-cu exited with status $rc after $(($(date +%s) - start)) s"

TO=()
if [ "$rc" -eq 124 ] || [ "$rc" -eq 137 ]; then
	TO=(--timed-out)
	running=$(awk '/^Suite: /{s=$2} /^  Test: /{t=$2} END{print s "." t}' "$LOG")
	isd_fail "iscsi-test-cu did not finish within ${LIMIT}s; last test started: ALL.$running"
	echo "---- last 40 lines of the iscsi-test-cu output ----"
	tail -n 40 "$LOG"
elif [ "$rc" -gt 128 ] && [ "$rc" -lt 160 ]; then
	isd_fail "iscsi-test-cu died with signal $((rc - 128))"
	tail -n 40 "$LOG"
fi
isd_expect_alive cu

if python3 "$HERE/compare_test_cu.py" --log "$LOG" --expected "$HERE/expected-failures" \
	--kind "$KIND" "${TO[@]}" "${SKIPS[@]}"; then
	isd_pass "iscsi-test-cu results ($KIND) match tests/conformance/expected-failures${SKIPS:+ and skips.md}"
else
	isd_fail "iscsi-test-cu results ($KIND) do not match tests/conformance/expected-failures${SKIPS:+ and skips.md}"
	if [ -n "${ISD_TEST_CU_SHOW_LOG:-}" ]; then
		cat "$LOG"
	fi
fi
isd_stop cu
isd_finish
