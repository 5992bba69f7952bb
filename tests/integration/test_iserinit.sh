#!/bin/bash
# iserinit (libiserd over TCP) against iserd and against tgt on 127.0.0.1:
# every subcommand, read/write round trip, bench with --json, CHAP and mutual
# CHAP with right and wrong secrets, digests, and a target killed mid-bench
# (a clear error without --reconnect; a finished run with --reconnect after the
# target comes back on the same port); options before and after the URL (GNU
# order), CHAP from libiscsi's environment variables, the initiator name from
# an initiatorname.iscsi file.
# shellcheck source=../lib/harness.sh
. "$(dirname "${BASH_SOURCE[0]}")/../lib/harness.sh"

isd_init
isd_require_tools python3 cmp

ISERINIT=${ISERINIT:-}
if [ -z "$ISERINIT" ]; then
	for c in "${ISERD_BUILD:-/nonexistent}/iserinit" "$(dirname "$ISERD")/iserinit"; do
		if [ -x "$c" ]; then ISERINIT=$c; break; fi
	done
fi
[ -n "$ISERINIT" ] && [ -x "$ISERINIT" ] || { echo "FAIL: iserinit not found"; exit 1; }
# The initiator's own leak checks would flag nothing useful on a killed peer.
export ASAN_OPTIONS=${ASAN_OPTIONS}
API_CHECK=$(dirname "$ISERINIT")/iserd_api_check
BENCH_SUMMARY="$ISD_TMP/bench-summary.txt"
: >"$BENCH_SUMMARY"

IQN=iqn.2026-11.org.iserd:target0
# The caller's own settings would change what is tested: no CHAP from the
# environment, no initiator name from this machine's /etc/iscsi.
unset LIBISCSI_CHAP_USERNAME LIBISCSI_CHAP_PASSWORD LIBISCSI_CHAP_TARGET_USERNAME \
	LIBISCSI_CHAP_TARGET_PASSWORD
export ISERINIT_INITIATORNAME_FILE=$ISD_TMP/no-initiatorname.iscsi

# check_json FILE DESC: the bench JSON parses, errors == 0 and some I/O was done.
check_json() {
	local f=$1 desc=$2
	if python3 - "$f" <<'EOF'
import json, sys
with open(sys.argv[1]) as fh:
    r = json.load(fh)
ok = r["errors"] == 0 and r["ios"] > 0 and r["iops"] > 0 and all(
    k in r["lat_us"] for k in ("p50", "p99", "p99.9"))
sys.exit(0 if ok else 1)
EOF
	then
		isd_pass "$desc"
	else
		isd_fail "$desc (bad JSON or errors != 0)"
		sed 's/^/    | /' "$f" | head -n 40
	fi
}

bench_line() {
	python3 - "$1" "$2" >>"$BENCH_SUMMARY" <<'EOF'
import json, sys
r = json.load(open(sys.argv[2]))
print("%-26s %-9s bs=%-7d qd=%-3d %9.0f IOPS %8.1f MiB/s  p50 %7.1f us  p99 %7.1f us  p99.9 %7.1f us  errors %d"
      % (sys.argv[1], r["rw"], r["bs"], r["qd"], r["iops"], r["mib_s"], r["lat_us"]["p50"],
         r["lat_us"]["p99"], r["lat_us"]["p99.9"], r["errors"]))
EOF
}

# suite LABEL PORTAL-URL LUN-URL TARGET-URL [extra iserinit args...]
suite() {
	local label=$1 portal=$2 url=$3 turl=$4
	shift 4
	local in="$ISD_TMP/in.bin" out="$ISD_TMP/out.bin" j

	isd_check "$label: discover" "$ISERINIT" discover "$@" "$portal"
	grep -q "${turl##*/}" "$ISD_OUT" || isd_fail "$label: discover lists the target"
	isd_check "$label: login" "$ISERINIT" login "$@" "$turl"
	grep -q "Logged out" "$ISD_OUT" || isd_fail "$label: login reports the logout"
	isd_check "$label: inquiry" "$ISERINIT" inquiry "$@" "$url"
	isd_check "$label: inquiry --vpd 0x80" "$ISERINIT" inquiry --vpd 0x80 "$@" "$url"
	isd_check "$label: readcap" "$ISERINIT" readcap "$@" "$url"
	isd_check "$label: report-luns" "$ISERINIT" report-luns "$@" "$turl"
	isd_check "$label: verify --size 64M" "$ISERINIT" verify --size 64M "$@" "$url"
	head -c 3000000 /dev/urandom >"$in"
	isd_check "$label: write from a file" "$ISERINIT" write -f "$in" --offset 1M "$@" "$url"
	isd_check "$label: read to a file" "$ISERINIT" read -o "$out" --offset 1M --length 3000320 "$@" "$url"
	if cmp -n 3000000 "$in" "$out" >/dev/null 2>&1; then
		isd_pass "$label: read/write round trip (cmp)"
	else
		isd_fail "$label: read/write round trip (cmp)"
	fi
	# stdin/stdout variant
	if head -c 65536 "$in" | timeout 30 "$ISERINIT" write --offset 8M "$@" "$url" &&
	   timeout 30 "$ISERINIT" read --offset 8M --length 64K "$@" "$url" | cmp -s - <(head -c 65536 "$in"); then
		isd_pass "$label: stdin/stdout round trip"
	else
		isd_fail "$label: stdin/stdout round trip"
	fi
	if [ -x "$API_CHECK" ]; then
		isd_check "$label: libiserd API check (async, TMF, NOP, UNMAP, WRITE SAME, sense)" "$API_CHECK" "$url"
	fi
	isd_check_fails "$label: read beyond the end fails" "$ISERINIT" read --offset 16T --length 4K "$@" "$url"
	for j in "randread 4K 32" "randwrite 4K 32" "read 1M 8" "write 1M 8"; do
		local rw bs qd
		read -r rw bs qd <<<"$j"
		if isd_check "$label: bench $rw $bs QD$qd" "$ISERINIT" bench --rw "$rw" --bs "$bs" --qd "$qd" --time 3 --json "$@" "$url"; then
			cp "$ISD_OUT" "$ISD_TMP/bench.json"
			check_json "$ISD_TMP/bench.json" "$label: bench $rw $bs QD$qd JSON, errors == 0"
			bench_line "$label" "$ISD_TMP/bench.json"
		fi
	done
}

# ---- iserd ----
isd_start plain || { isd_fail "start iserd"; isd_finish; }
P=$ISD_PORT
suite "iserd" "iscsi://127.0.0.1:$P" "iscsi://127.0.0.1:$P/$IQN/0" "iscsi://127.0.0.1:$P/$IQN"
isd_check "iserd: digests CRC32C verify" "$ISERINIT" verify --size 8M --header-digest crc32c --data-digest crc32c "iscsi://127.0.0.1:$P/$IQN/0"
isd_check "iserd: digests CRC32C login" "$ISERINIT" login --header-digest crc32c --data-digest crc32c "iscsi://127.0.0.1:$P/$IQN"
grep -q "HeaderDigest *CRC32C" "$ISD_OUT" || isd_fail "iserd: HeaderDigest CRC32C negotiated"
isd_check "iserd: bench with digests" "$ISERINIT" bench --rw randwrite --bs 64K --qd 16 --time 2 --header-digest crc32c --data-digest crc32c "iscsi://127.0.0.1:$P/$IQN/0"
isd_check "iserd: bench --sessions 2" "$ISERINIT" bench --rw randread --bs 4K --qd 16 --time 2 --sessions 2 --json "iscsi://127.0.0.1:$P/$IQN/0"
cp "$ISD_OUT" "$ISD_TMP/bench.json" && check_json "$ISD_TMP/bench.json" "iserd: bench --sessions 2 JSON"
isd_check_fails "iserd: unknown target fails" "$ISERINIT" login "iscsi://127.0.0.1:$P/iqn.2026-11.org.iserd:nosuch"
grep -q "target not found" "$ISD_OUT" || isd_fail "iserd: unknown target reported in words"
isd_check_fails "iserd: bad URL fails" "$ISERINIT" inquiry "iscsi://127.0.0.1:$P/$IQN"
# iser:// to a TCP-only portal (and, on most hosts, no RDMA device): a clear failure that names
# RDMA/iSER (the iSER transport itself is tested in tests/interop/test_iserinit_iser.sh)
isd_check_fails "iserd: iser:// to a TCP portal fails clearly" "$ISERINIT" inquiry "iser://127.0.0.1:$P/$IQN/0"
grep -qiE "rdma|iser" "$ISD_OUT" || isd_fail "iserd: iser:// message"

# ---- options where people type them: before or after the URL, GNU order ----
U0="iscsi://127.0.0.1:$P/$IQN/0"
isd_check "order: bench URL --time 1 --qd 4 --json" "$ISERINIT" bench "$U0" --time 1 --qd 4 --json
cp "$ISD_OUT" "$ISD_TMP/bench.json" && check_json "$ISD_TMP/bench.json" "order: bench with options after the URL"
isd_check "order: read URL -o FILE --length 4K" "$ISERINIT" read "$U0" -o "$ISD_TMP/order.bin" --length 4K
[ "$(stat -c %s "$ISD_TMP/order.bin" 2>/dev/null)" = 4096 ] || isd_fail "order: read wrote 4096 bytes"
isd_check "order: common options before the subcommand" "$ISERINIT" --timeout 5 -v readcap "$U0"
isd_check "order: options on both sides" "$ISERINIT" -i iqn.2026-12.org.iserd.test:both inquiry --vpd 0x80 "$U0" --timeout 5
isd_check "order: -- ends the options" "$ISERINIT" readcap -- "$U0"
isd_check_fails "order: two URLs are still too many" "$ISERINIT" readcap "$U0" "$U0"
grep -q "too many arguments" "$ISD_OUT" || isd_fail "order: 'too many arguments' said"
isd_check_fails "order: a subcommand's option before it is refused" "$ISERINIT" --qd 4 bench "$U0"
isd_check_fails "order: a bad value before the subcommand is refused" "$ISERINIT" --timeout 0 readcap "$U0"

# ---- the initiator name from open-iscsi's file; -i wins ----
INAME=$ISD_TMP/initiatorname.iscsi
printf '## DO NOT EDIT OR REMOVE THIS FILE!\nInitiatorName=iqn.2026-12.org.iserd.test:fromfile\n' >"$INAME"
isd_check "initiatorname.iscsi: its name is used" env ISERINIT_INITIATORNAME_FILE="$INAME" "$ISERINIT" readcap "$U0"
grep -q "for iqn.2026-12.org.iserd.test:fromfile" "${ISD_LOG_OF[plain]}" ||
	isd_fail "initiatorname.iscsi: iserd saw iqn.2026-12.org.iserd.test:fromfile"
isd_check "initiatorname.iscsi: -i wins" env ISERINIT_INITIATORNAME_FILE="$INAME" "$ISERINIT" readcap "$U0" -i iqn.2026-12.org.iserd.test:option
grep -q "for iqn.2026-12.org.iserd.test:option" "${ISD_LOG_OF[plain]}" ||
	isd_fail "initiatorname.iscsi: iserd saw iqn.2026-12.org.iserd.test:option"
printf 'InitiatorName=\n' >"$INAME.bad"
isd_check_fails "initiatorname.iscsi: an empty name is refused" env ISERINIT_INITIATORNAME_FILE="$INAME.bad" "$ISERINIT" readcap "$U0"
grep -q "empty InitiatorName" "$ISD_OUT" || isd_fail "initiatorname.iscsi: the bad line is named"
isd_expect_alive plain
isd_stop plain

# ---- NOP: the target pings every 0.3 s and drops us after 4 s without an answer ----
# The idle period outlasts the timeout, so an initiator that ignored the pings
# would be dropped; the timeout leaves room for an answer queued behind 16 MiB
# of writes on a loaded machine (1 s did not, under ThreadSanitizer in CI).
printf 'global = { nop_interval = 0.3; nop_timeout = 4.0; };\n' >"$ISD_TMP/nop.conf"
if isd_start nop -c "$ISD_TMP/nop.conf"; then
	if [ -x "$API_CHECK" ]; then
		isd_check "nop: 5 s idle, target pings answered, keepalive" \
			env ISERD_API_VERBOSE=1 ISERD_API_IDLE_MS=5000 "$API_CHECK" "iscsi://127.0.0.1:$ISD_PORT/$IQN/0"
		grep -q "answering the target's NOP-In ping" "$ISD_OUT" || isd_fail "nop: target's NOP-In answered"
		grep -q "keepalive ping answered" "$ISD_OUT" || isd_fail "nop: our keepalive ping answered"
	fi
	isd_stop nop
else
	isd_fail "start iserd with nop.conf"
fi

# ---- CHAP and mutual CHAP ----
isd_start chap --chap alice:alicesecret12 --mutual-chap target1:targetsecret12 ||
	{ isd_fail "start iserd with CHAP"; isd_finish; }
P=$ISD_PORT
T="127.0.0.1:$P/$IQN"
isd_check "chap: login with the right secret" "$ISERINIT" login "iscsi://alice%alicesecret12@$T"
grep -q "Authentication *CHAP" "$ISD_OUT" || isd_fail "chap: reports CHAP"
isd_check "chap: --chap flag" "$ISERINIT" readcap --chap alice:alicesecret12 "iscsi://$T/0"
isd_check "chap: mutual CHAP with the right secrets" "$ISERINIT" login --mutual-chap target1:targetsecret12 "iscsi://alice%alicesecret12@$T"
grep -q "CHAP (mutual)" "$ISD_OUT" || isd_fail "chap: reports mutual CHAP"
# iserd takes the strongest algorithm of those we offer (8,7,6,5): SHA3-256, not MD5
isd_check "chap: mutual CHAP, verbose" "$ISERINIT" login -v --mutual-chap target1:targetsecret12 "iscsi://alice%alicesecret12@$T"
grep -q "CHAP: the target chose SHA3-256 (CHAP_A=8)" "$ISD_OUT" || { isd_fail "chap: SHA3-256 chosen"; grep CHAP "$ISD_OUT"; }
isd_check "chap: mutual via URL arguments" "$ISERINIT" verify --size 4M "iscsi://alice%alicesecret12@$T/0?target_user=target1&target_password=targetsecret12"
isd_check_fails "chap: wrong secret fails" "$ISERINIT" login "iscsi://alice%wrongsecret99@$T"
grep -q "authentication failure (status 0x0201)" "$ISD_OUT" || { isd_fail "chap: wrong secret reported in words"; cat "$ISD_OUT"; }
isd_check_fails "chap: wrong user fails" "$ISERINIT" login "iscsi://mallory%alicesecret12@$T"
grep -q "authentication failure" "$ISD_OUT" || isd_fail "chap: wrong user reported in words"
isd_check_fails "chap: no credentials fail" "$ISERINIT" login "iscsi://$T"
grep -qi "CHAP\|authentication" "$ISD_OUT" || isd_fail "chap: missing credentials reported in words"
isd_check_fails "chap: wrong mutual secret fails" "$ISERINIT" login --mutual-chap target1:notthesecret1 "iscsi://alice%alicesecret12@$T"
grep -q "mutual CHAP" "$ISD_OUT" || isd_fail "chap: wrong mutual secret reported in words"
isd_check "chap: --chap-algs sha1 is what iserd gets" "$ISERINIT" login -v --chap-algs sha1 "iscsi://alice%alicesecret12@$T"
grep -q "the target chose SHA-1 (CHAP_A=6)" "$ISD_OUT" || isd_fail "chap: SHA-1 chosen when only it is offered"
isd_check_fails "chap: bad --chap-algs refused" "$ISERINIT" login --chap-algs md4 "iscsi://alice%alicesecret12@$T"
isd_check_fails "chap: wrong mutual name fails" "$ISERINIT" login --mutual-chap target9:targetsecret12 "iscsi://alice%alicesecret12@$T"
# libiscsi's environment variables, as iscsi-inq and QEMU users set them
CHAP_ENV=(LIBISCSI_CHAP_USERNAME=alice LIBISCSI_CHAP_PASSWORD=alicesecret12)
isd_check "chap: LIBISCSI_CHAP_USERNAME/PASSWORD" env "${CHAP_ENV[@]}" "$ISERINIT" login "iscsi://$T"
grep -q "Authentication *CHAP" "$ISD_OUT" || isd_fail "chap: CHAP from the environment"
isd_check "chap: mutual from LIBISCSI_CHAP_TARGET_USERNAME/PASSWORD" env "${CHAP_ENV[@]}" \
	LIBISCSI_CHAP_TARGET_USERNAME=target1 LIBISCSI_CHAP_TARGET_PASSWORD=targetsecret12 \
	"$ISERINIT" login "iscsi://$T"
grep -q "CHAP (mutual)" "$ISD_OUT" || isd_fail "chap: mutual CHAP from the environment"
isd_check_fails "chap: a wrong LIBISCSI_CHAP_TARGET_PASSWORD fails" env "${CHAP_ENV[@]}" \
	LIBISCSI_CHAP_TARGET_USERNAME=target1 LIBISCSI_CHAP_TARGET_PASSWORD=notthesecret1 \
	"$ISERINIT" login "iscsi://$T"
isd_check "chap: --chap wins over the environment" env LIBISCSI_CHAP_USERNAME=alice \
	LIBISCSI_CHAP_PASSWORD=wrongsecret99 "$ISERINIT" readcap "iscsi://$T/0" --chap alice:alicesecret12
isd_check "chap: the URL's credentials win over the environment" env LIBISCSI_CHAP_USERNAME=alice \
	LIBISCSI_CHAP_PASSWORD=wrongsecret99 "$ISERINIT" login "iscsi://alice%alicesecret12@$T"
isd_check_fails "chap: LIBISCSI_CHAP_USERNAME without the password" env LIBISCSI_CHAP_USERNAME=alice \
	"$ISERINIT" login "iscsi://$T"
grep -q "LIBISCSI_CHAP_USERNAME is set but LIBISCSI_CHAP_PASSWORD is not" "$ISD_OUT" ||
	isd_fail "chap: the missing variable is named"
isd_expect_alive chap
isd_stop chap

# ---- target killed mid-bench ----
# Starts iserd on a given port (isd_start picks its own), tracked like isd_start's.
start_on_port() {
	local name=$1 port=$2 log="$ISD_TMP/iserd-$1.log" pid i
	ISD_ALL_LOGS+=("$log")
	"$ISERD" --portal "tcp://127.0.0.1:$port" >"$log" 2>&1 &
	pid=$!
	for i in $(seq 1 200); do
		kill -0 "$pid" 2>/dev/null || return 1
		if isd_port_listening "$port"; then
			ISD_PID_OF[$name]=$pid
			ISD_PORT_OF[$name]=$port
			ISD_LOG_OF[$name]=$log
			return 0
		fi
		sleep 0.1
	done
	return 1
}
kill_hard() {
	local pid=${ISD_PID_OF[$1]}
	unset "ISD_PID_OF[$1]"
	kill -KILL "$pid" 2>/dev/null
	wait "$pid" 2>/dev/null
}

isd_start victim || { isd_fail "start iserd (victim)"; isd_finish; }
P=$ISD_PORT
U="iscsi://127.0.0.1:$P/$IQN/0"
timeout 60 "$ISERINIT" bench --rw randwrite --bs 4K --qd 32 --time 10 "$U" >"$ISD_TMP/kill1.out" 2>"$ISD_TMP/kill1.err" &
BP=$!
sleep 2
kill_hard victim
wait "$BP"
st=$?
if [ "$st" -ne 0 ] && [ "$st" -ne 124 ] && grep -Eq "connection to 127.0.0.1:$P lost|closed the connection" "$ISD_TMP/kill1.err"; then
	isd_pass "kill mid-bench: clear error ($(grep -m1 'iserinit' "$ISD_TMP/kill1.err"))"
else
	isd_fail "kill mid-bench: expected a clear error, status $st"
	sed 's/^/    | /' "$ISD_TMP/kill1.err" | head -n 20
fi

# --reconnect: the target comes back on the same port; the run finishes cleanly.
start_on_port victim2 "$P" || { isd_fail "start iserd (victim2)"; isd_finish; }
timeout 60 "$ISERINIT" bench --reconnect --rw randwrite --bs 4K --qd 32 --time 8 --json "$U" >"$ISD_TMP/kill2.json" 2>"$ISD_TMP/kill2.err" &
BP=$!
sleep 2
kill_hard victim2
sleep 1
start_on_port victim3 "$P" || isd_fail "restart iserd on port $P"
wait "$BP"
st=$?
if [ "$st" -eq 0 ] && python3 -c 'import json,sys; r=json.load(open(sys.argv[1])); sys.exit(0 if r["errors"]==0 and r["reconnects"]>=1 and r["ios"]>0 else 1)' "$ISD_TMP/kill2.json"; then
	isd_pass "kill mid-bench with --reconnect: re-logged in, commands retried, errors 0"
else
	isd_fail "kill mid-bench with --reconnect (status $st)"
	sed 's/^/    | /' "$ISD_TMP/kill2.err" "$ISD_TMP/kill2.json" | head -n 40
fi
isd_check "after reconnect: verify" "$ISERINIT" verify --size 8M "$U"

# --reconnect=fail: the commands outstanding at the loss fail with a clear
# status, the session comes back, and the run goes on.
timeout 60 "$ISERINIT" bench --reconnect=fail --rw randwrite --bs 4K --qd 32 --time 6 --json "$U" >"$ISD_TMP/kill3.json" 2>"$ISD_TMP/kill3.err" &
BP=$!
sleep 2
kill_hard victim3
sleep 1
start_on_port victim4 "$P" || isd_fail "restart iserd on port $P (2)"
wait "$BP"
st=$?
if [ "$st" -eq 1 ] && grep -q "connection to 127.0.0.1:$P lost" "$ISD_TMP/kill3.err" &&
   python3 -c 'import json,sys; r=json.load(open(sys.argv[1])); sys.exit(0 if 1 <= r["errors"] <= 40 and r["reconnects"] >= 1 and r["ios"] > 0 else 1)' "$ISD_TMP/kill3.json"; then
	isd_pass "kill mid-bench with --reconnect=fail: outstanding commands failed clearly, run went on"
else
	isd_fail "kill mid-bench with --reconnect=fail (status $st)"
	sed 's/^/    | /' "$ISD_TMP/kill3.err" "$ISD_TMP/kill3.json" | head -n 40
fi
isd_stop victim4

# ---- tgt ----
if command -v tgtd >/dev/null 2>&1 && command -v tgtadm >/dev/null 2>&1; then
	TP=
	for try in 1 2 3 4 5 6 7 8; do
		port=$((4100 + RANDOM % 800))
		isd_port_listening "$port" || { TP=$port; break; }
	done
	TIQN=iqn.2026-11.org.iserd.test:tgt
	truncate -s 256M "$ISD_TMP/tgt.img"
	tgtd -f --iscsi "portal=127.0.0.1:$TP" --control-port "$TP" >"$ISD_TMP/tgtd.log" 2>&1 &
	TGTD_PID=$!
	ok=0
	for i in $(seq 1 100); do
		if isd_port_listening "$TP"; then ok=1; break; fi
		kill -0 "$TGTD_PID" 2>/dev/null || break
		sleep 0.1
	done
	stop_tgtd() {
		tgtadm -C "$TP" --op delete --mode system >/dev/null 2>&1
		for i in $(seq 1 20); do kill -0 "$TGTD_PID" 2>/dev/null || break; sleep 0.1; done
		kill -KILL "$TGTD_PID" 2>/dev/null
		wait "$TGTD_PID" 2>/dev/null
	}
	if [ "$ok" = 1 ] &&
	   tgtadm -C "$TP" --lld iscsi --op new --mode target --tid 1 -T "$TIQN" &&
	   tgtadm -C "$TP" --lld iscsi --op new --mode logicalunit --tid 1 --lun 1 -b "$ISD_TMP/tgt.img" &&
	   tgtadm -C "$TP" --lld iscsi --op bind --mode target --tid 1 -I ALL; then
		isd_pass "tgtd started on 127.0.0.1:$TP"
		suite "tgt" "iscsi://127.0.0.1:$TP" "iscsi://127.0.0.1:$TP/$TIQN/1" "iscsi://127.0.0.1:$TP/$TIQN"
		isd_check "tgt: digests if offered (crc32c,none)" "$ISERINIT" verify --size 8M --header-digest crc32c,none --data-digest crc32c,none "iscsi://127.0.0.1:$TP/$TIQN/1"
		# Other negotiated values: several R2Ts outstanding per command, no
		# immediate data, small PDUs (many Data-Out per R2T), unsolicited data.
		for kv in MaxOutstandingR2T=4 ImmediateData=No MaxRecvDataSegmentLength=4096 \
			  MaxBurstLength=65536 FirstBurstLength=16384 InitialR2T=No; do
			tgtadm -C "$TP" --lld iscsi --op update --mode target --tid 1 -n "${kv%%=*}" -v "${kv#*=}"
		done
		isd_check "tgt: login with MaxOutstandingR2T=4, ImmediateData=No" "$ISERINIT" login "iscsi://127.0.0.1:$TP/$TIQN"
		grep -q "MaxOutstandingR2T *4" "$ISD_OUT" && grep -q "ImmediateData *No" "$ISD_OUT" ||
			isd_fail "tgt: negotiated MaxOutstandingR2T=4 and ImmediateData=No"
		isd_check "tgt: verify with 4 R2Ts, 4 KiB PDUs" "$ISERINIT" verify --size 16M "iscsi://127.0.0.1:$TP/$TIQN/1"
		isd_check "tgt: 1M writes with 4 R2Ts" "$ISERINIT" bench --rw write --bs 1M --qd 8 --time 2 --json "iscsi://127.0.0.1:$TP/$TIQN/1"
		cp "$ISD_OUT" "$ISD_TMP/bench.json" && check_json "$ISD_TMP/bench.json" "tgt: 1M writes with 4 R2Ts, errors == 0"
		tgtadm -C "$TP" --lld iscsi --op update --mode target --tid 1 -n ImmediateData -v Yes
		isd_check "tgt: verify with immediate + unsolicited data in 4 KiB PDUs" "$ISERINIT" verify --size 16M --bs 64K "iscsi://127.0.0.1:$TP/$TIQN/1"
		isd_check "tgt: API check with these values" "$API_CHECK" "iscsi://127.0.0.1:$TP/$TIQN/1"
		# CHAP against tgt: incoming account bound to the target
		tgtadm -C "$TP" --lld iscsi --op new --mode account --user bob --password bobsecret1234 &&
		tgtadm -C "$TP" --lld iscsi --op bind --mode account --tid 1 --user bob &&
		tgtadm -C "$TP" --lld iscsi --op new --mode account --user tgtmutual --password tgtmutual1234 &&
		tgtadm -C "$TP" --lld iscsi --op bind --mode account --tid 1 --user tgtmutual --outgoing
		# tgt numbers SHA-1 as CHAP_A 7 (RFC 7143 has SHA-256 there): MD5 only for it
		isd_check "tgt: CHAP + mutual CHAP login" "$ISERINIT" login --chap-algs md5 --mutual-chap tgtmutual:tgtmutual1234 "iscsi://bob%bobsecret1234@127.0.0.1:$TP/$TIQN"
		isd_check_fails "tgt: wrong CHAP secret fails" "$ISERINIT" login --chap-algs md5 "iscsi://bob%wrongsecret12@127.0.0.1:$TP/$TIQN"
		grep -q "authentication failure" "$ISD_OUT" || isd_fail "tgt: wrong secret reported in words"
		isd_check_fails "tgt: wrong mutual secret fails" "$ISERINIT" login --chap-algs md5 --mutual-chap tgtmutual:wrongwrong123 "iscsi://bob%bobsecret1234@127.0.0.1:$TP/$TIQN"
	else
		isd_fail "tgtd setup on 127.0.0.1:$TP"
		tail -n 20 "$ISD_TMP/tgtd.log"
	fi
	stop_tgtd
else
	echo "SKIP: tgtd not installed; the tgt part is skipped"
fi

echo "---- bench results (this machine, this run) ----"
cat "$BENCH_SUMMARY"
isd_finish
