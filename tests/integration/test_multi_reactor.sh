#!/bin/bash
# iserd with two reactors (--reactors 2) under load: a RAM LUN and a file LUN,
# 8 sessions at once writing and reading back their own regions (isd_rwcheck,
# every byte compared) beside 4 long iscsi-perf sessions reading a third LUN
# (RAM, written by nobody), so that both
# reactors carry connections. Checks through the metrics endpoint and
# `iserctl --json stats` that placement put connections on both reactors (one
# reactor holding them all fails the test) and that READ and WRITE took the
# shared path (shared_commands), runs control calls (session list,
# stats, lun add, the removal of a LUN that two sessions are reading, config
# reload) and a SIGHUP reload during the I/O, then adds a portal whose
# connections may go to reactor 1 only (`--reactors 1`) and checks that three
# sessions there all land on reactor 1, and starts an iserd whose reactor 1
# polls (`--polling-reactors 1`) beside an adaptive reactor 0,
# and ends with SIGTERM during I/O: iserd must exit 0, without a sanitizer
# report. Exit 77 when a tool is missing.
set -u
HERE=$(cd "$(dirname "$0")" && pwd)
. "$HERE/../lib/harness.sh"

isd_require_tools iscsi-perf gcc timeout cmp curl python3
[ -f /usr/include/iscsi/iscsi.h ] || isd_skip "libiscsi-dev not installed"
isd_init

ISERCTL=${ISERCTL:-$(dirname "$ISERD")/iserctl}
[ -x "$ISERCTL" ] || isd_skip "iserctl not built next to $ISERD"

IQN=iqn.2026-12.org.iserd:multi
# the LUN added and removed during the I/O goes to another target: its REPORTED
# LUNS DATA HAS CHANGED unit attention must not reach the sessions under test
IQN2=iqn.2026-12.org.iserd:multi-ctl
INI=iqn.2026-12.org.iserd:multi-ini
WORKERS=8
PERFS=4
RUN_S=${ISD_MULTI_RUN_S:-8}     # how long the verified I/O runs

RW="$ISD_TMP/isd_rwcheck"
if ! gcc -O1 -o "$RW" "$HERE/isd_rwcheck.c" -liscsi >"$ISD_TMP/gcc.log" 2>&1; then
	cat "$ISD_TMP/gcc.log"
	isd_skip "cannot build isd_rwcheck against libiscsi"
fi

IMG="$ISD_TMP/lun1.img"
truncate -s 64M "$IMG"
MPORT=
for try in 1 2 3 4 5 6 7 8; do
	MPORT=$((9300 + RANDOM % 600))
	isd_port_listening "$MPORT" || break
done
# LUN 0 (RAM) and 1 (file) take the verified writes, each worker its own region;
# iscsi-perf reads LUN 2, which nobody writes (random reads over a region others
# write would race with them: a RAM LUN's reads are sent from its memory)
if ! isd_start main --reactors 2 --target "$IQN" --lun ram:64M --lun "file:$IMG" --lun ram:16M \
	--target "$IQN2" --lun ram:4M --metrics-listen "127.0.0.1:$MPORT"; then
	isd_fail "iserd starts with --reactors 2, a RAM LUN and a file LUN"
	isd_finish
fi
PORTAL=iscsi://127.0.0.1:$ISD_PORT
PID=${ISD_PID_OF[main]}
CTL=(timeout 30 "$ISERCTL" --socket "${ISD_CTL_OF[main]}")
# (iserd listens before its reactors start: wait for the line, bounded)
for ((i = 0; i < 100; i++)); do
	grep -q '2 reactors' "${ISD_LOG_OF[main]}" && break
	sleep 0.1
done
grep -q '2 reactors' "${ISD_LOG_OF[main]}" && isd_pass "iserd logs 2 reactors" ||
	isd_fail "iserd does not log '2 reactors'"

# worker I: its own initiator name, LUN I % 2, its own 2 MiB region; round after
# round a new session writes 1 MiB of fresh data (SYNCHRONIZE CACHE after) and
# another reads it back; the round counts only when every byte matches
# (each isd_rwcheck's pid goes to $out.child: libiscsi reconnects to a target that
# went away, so the end of the test stops the one running)
run_rw() { # $1 = out, then isd_rwcheck's arguments
	local out=$1
	shift
	timeout 60 "$RW" "$@" &
	echo $! >"$out.child"
	wait $!
}
worker() {
	local i=$1 stop=$2 out=$3 lun=$(($1 % 2)) n=0 lba=$(($1 * 4096 + 8192)) d
	d="$ISD_TMP/w$i"
	while [ ! -e "$stop" ]; do
		head -c 1048576 /dev/urandom >"$d"
		if ! run_rw "$out" -i "$INI-$i" -l "$lba" -c 131072 -w "$d" -s \
			"$PORTAL/$IQN/$lun" >"$d.log" 2>&1; then
			[ -e "$stop" ] && break
			echo "FAIL write round $n"; cat "$d.log"; return 1
		fi
		if ! run_rw "$out" -i "$INI-$i" -l "$lba" -c 65536 -n 1048576 -r "$d.r" \
			"$PORTAL/$IQN/$lun" >"$d.log" 2>&1 || ! cmp -s "$d" "$d.r"; then
			[ -e "$stop" ] && break
			echo "FAIL read/compare round $n"; cat "$d.log"; return 1
		fi
		n=$((n + 1))
		echo "rounds $n" >"$out.n"
	done
	echo "OK $n"
}

start_load() { # $1 = tag: 4 iscsi-perf sessions of $2 s, 8 workers until $ISD_TMP/stop.$1
	local tag=$1 secs=$2 i
	PERF_PIDS=()
	WORKER_PIDS=()
	for i in $(seq 1 $PERFS); do
		timeout -k 5 $((secs + 60)) iscsi-perf -i "$INI-perf$i" -t "$secs" -b 8 -m 8 -r \
			"$PORTAL/$IQN/2" >"$ISD_TMP/perf.$tag.$i" 2>&1 &
		PERF_PIDS+=($!)
	done
	for i in $(seq 1 $WORKERS); do
		worker "$i" "$ISD_TMP/stop.$tag" "$ISD_TMP/worker.$tag.$i" \
			>"$ISD_TMP/worker.$tag.$i" 2>&1 &
		WORKER_PIDS+=($!)
	done
}

# connections per reactor, from the metrics endpoint: "N0 N1"
reactor_conns_prom() {
	curl -s --max-time 10 "http://127.0.0.1:$MPORT/metrics" |
		sed -n 's/^iserd_reactor_connections{reactor="\([0-9]*\)"} \([0-9]*\)$/\1 \2/p' |
		sort -n | awk '{printf "%s%s", sep, $2; sep=" "}'
}
reactor_conns_ctl() {
	"${CTL[@]}" --json stats | python3 -c '
import json, sys
r = json.load(sys.stdin)["process"]["reactors"]
print(" ".join(str(x["connections"]) for x in sorted(r, key=lambda x: x["reactor"])))'
}

# --- verified I/O on both reactors, control work meanwhile -------------------------
start_load a $((RUN_S + 20))
sleep 2
both=0
for t in $(seq 1 20); do
	p=$(reactor_conns_prom)
	read -r c0 c1 <<<"$p"
	if [ -n "${c1:-}" ] && [ "${c0:-0}" -gt 0 ] && [ "$c1" -gt 0 ]; then
		both=1
		break
	fi
	sleep 0.5
done
if [ "$both" = 1 ]; then
	isd_pass "metrics: both reactors carry connections (reactor 0: $c0, reactor 1: $c1)"
else
	isd_fail "metrics: connections not on both reactors (iserd_reactor_connections: '$p')"
fi
if c=$(reactor_conns_ctl); then
	read -r c0 c1 <<<"$c"
	if [ -n "${c1:-}" ] && [ "${c0:-0}" -gt 0 ] && [ "$c1" -gt 0 ]; then
		isd_pass "iserctl stats: both reactors carry connections ($c)"
	else
		isd_fail "iserctl stats: connections not on both reactors ('$c')"
	fi
else
	isd_fail "iserctl --json stats"
fi

isd_check "iserctl session list during I/O" "${CTL[@]}" session list
isd_check "iserctl stats during I/O" "${CTL[@]}" stats
isd_check "iserctl status during I/O" "${CTL[@]}" status
isd_check "iserctl lun add (LUN 1 of a second target) during I/O" "${CTL[@]}" lun add "$IQN2" 1 ram:8M
isd_check "iserctl lun list shows the new LUN" "${CTL[@]}" lun list "$IQN2" &&
	{ grep -q 'ram:8M' "$ISD_OUT" || isd_fail "lun list lacks the ram:8M LUN 1"; }
# reads on that LUN from two sessions (placed on both reactors, the least
# loaded each time) while it is removed: the last command released on reactor
# 1 hands the LU's free back to reactor 0, where its store was opened
RM_PIDS=()
for i in 1 2; do
	timeout -k 5 30 iscsi-perf -i "$INI-rm$i" -t 20 -b 8 -m 8 -r "$PORTAL/$IQN2/1" \
		>"$ISD_TMP/perf.rm.$i" 2>&1 &
	RM_PIDS+=($!)
done
sleep 2
isd_check "iserctl lun remove (that LUN) during I/O on it" "${CTL[@]}" lun remove "$IQN2" 1
sleep 1
# their commands now fail (LOGICAL UNIT NOT SUPPORTED): end them, they are ours
kill -TERM "${RM_PIDS[@]}" 2>/dev/null
for p in "${RM_PIDS[@]}"; do
	wait "$p" 2>/dev/null
done
isd_expect_alive main
isd_check "iserctl config reload during I/O" "${CTL[@]}" config reload
kill -HUP "$PID"
isd_check "iserctl stats --prometheus during I/O" "${CTL[@]}" stats --prometheus
for i in 1 2 3 4 5 6 7 8 9 10; do
	grep -q 'SIGHUP: reloading' "${ISD_LOG_OF[main]}" && break
	sleep 0.2
done
grep -q 'SIGHUP: reloading' "${ISD_LOG_OF[main]}" && isd_pass "SIGHUP reload during I/O" ||
	isd_fail "iserd did not log the SIGHUP reload"
for i in $(seq 1 $((RUN_S * 2))); do
	curl -s --max-time 10 -o /dev/null "http://127.0.0.1:$MPORT/metrics" || break
	"${CTL[@]}" session list >/dev/null 2>&1 || break
	sleep 0.5
done
isd_expect_alive main

touch "$ISD_TMP/stop.a"
bad=0
for i in $(seq 1 $WORKERS); do
	wait "${WORKER_PIDS[$((i - 1))]}"
	r=$(tail -n 1 "$ISD_TMP/worker.a.$i")
	case "$r" in
	"OK 0") isd_fail "worker $i finished no round"; bad=1 ;;
	OK*) ;;
	*) isd_fail "worker $i: $(head -c 400 "$ISD_TMP/worker.a.$i")"; bad=1 ;;
	esac
done
[ "$bad" = 0 ] && isd_pass "$WORKERS sessions at a time wrote and read back their data, every byte matching ($(cat "$ISD_TMP"/worker.a.*.n | awk '{s += $2} END {print s}') rounds)"
# READ and WRITE on the RAM LUNs took the shared path (not the device's monitor)
shared=$("${CTL[@]}" --json stats | python3 -c '
import json, sys
t = [t for t in json.load(sys.stdin)["targets"] if t["name"] == sys.argv[1]]
print(t[0].get("shared_commands", 0) if t else -1)' "$IQN")
if [ "${shared:-0}" -gt 0 ] 2>/dev/null; then
	isd_pass "stats: $shared READs and WRITEs took the shared path"
else
	isd_fail "stats: shared_commands '$shared' (expected > 0 on 2 reactors)"
fi
for i in $(seq 1 $PERFS); do
	if wait "${PERF_PIDS[$((i - 1))]}"; then
		isd_pass "iscsi-perf session $i finished"
	else
		isd_fail "iscsi-perf session $i failed: $(tail -n 3 "$ISD_TMP/perf.a.$i")"
	fi
done

# --- placement by portal: a portal whose connections all go to reactor 1 ------------
PPORT=
for try in 1 2 3 4 5 6 7 8; do
	PPORT=$((9900 + RANDOM % 600))
	[ "$PPORT" != "$MPORT" ] && ! isd_port_listening "$PPORT" && break
done
isd_check "iserctl portal add --reactors 1" "${CTL[@]}" portal add "tcp://127.0.0.1:$PPORT" \
	--reactors 1
if "${CTL[@]}" --json portal list | python3 -c '
import json, sys
p = [p for p in json.load(sys.stdin) if p["url"].endswith(":" + sys.argv[1])]
sys.exit(0 if p and p[0].get("reactors") == "1" else 1)' "$PPORT"; then
	isd_pass "portal list shows the portal's reactors"
else
	isd_fail "portal list does not show reactors \"1\" for the new portal"
fi
if "${CTL[@]}" portal add "tcp://127.0.0.1:$((PPORT + 1))" --reactors 0-2 >"$ISD_TMP/badplace" 2>&1; then
	isd_fail "portal add --reactors 0-2 accepted with 2 reactors"
elif grep -q 'reactor 2 does not run' "$ISD_TMP/badplace"; then
	isd_pass "portal add --reactors 0-2 refused: reactor 2 does not run"
else
	isd_fail "portal add --reactors 0-2: unexpected answer: $(head -c 300 "$ISD_TMP/badplace")"
fi
# the load's connections are gone before counting (freed on their reactors)
for t in $(seq 1 50); do
	[ "$(reactor_conns_prom)" = "0 0" ] && break
	sleep 0.2
done
PL_PIDS=()
for i in 1 2 3; do
	timeout -k 5 40 iscsi-perf -i "$INI-place$i" -t 6 -b 8 -m 4 -r \
		"iscsi://127.0.0.1:$PPORT/$IQN/2" >"$ISD_TMP/perf.place.$i" 2>&1 &
	PL_PIDS+=($!)
done
placed=
for t in $(seq 1 40); do
	p=$(reactor_conns_prom)
	read -r c0 c1 <<<"$p"
	if [ "${c1:-0}" -ge 3 ] 2>/dev/null; then
		placed=$p
		break
	fi
	sleep 0.2
done
if [ -n "$placed" ] && [ "$c0" = 0 ]; then
	isd_pass "3 sessions on the portal all went to reactor 1 (per reactor: $placed)"
else
	isd_fail "placement by portal: per reactor '$p' (expected 0 on reactor 0, 3 on reactor 1)"
fi
for i in 1 2 3; do
	if wait "${PL_PIDS[$((i - 1))]}"; then
		isd_pass "iscsi-perf session $i on the reactor-1 portal finished"
	else
		isd_fail "iscsi-perf on the reactor-1 portal failed: $(tail -n 3 "$ISD_TMP/perf.place.$i")"
	fi
done

# --- SIGTERM during I/O: exit 0, clean log -------------------------------------------
start_load b 30
sleep 3
reactor_conns_prom >"$ISD_TMP/conns.b"
isd_stop main
touch "$ISD_TMP/stop.b"
# libiscsi reconnects to a target that went away: end our iscsi-perf runs (their
# timeout wrappers pass the signal on)
kill -TERM "${PERF_PIDS[@]}" 2>/dev/null
for f in "$ISD_TMP"/worker.b.*.child; do
	[ -f "$f" ] || continue
	p=$(cat "$f")
	# only while it is still one of ours (the timeout wrapping isd_rwcheck)
	grep -qa isd_rwcheck "/proc/$p/cmdline" 2>/dev/null && kill -TERM "$p" 2>/dev/null
done
for p in "${WORKER_PIDS[@]}" "${PERF_PIDS[@]}"; do
	wait "$p" 2>/dev/null
done
if grep -q 'all connections closed' "${ISD_LOG_OF[main]}"; then
	isd_pass "shutdown closed every connection of both reactors"
else
	isd_fail "shutdown did not close every connection in time"
fi

# --- a polling reactor beside an adaptive one -----------------------------------------
# reactor 1 polls (never sleeps) whatever reactor_mode says; reactor 0 keeps the
# default and sleeps when idle. Briefly: a polling reactor holds its core.
if isd_start poll --reactors 2 --polling-reactors 1 --target "$IQN" --lun ram:4M; then
	PCTL=(timeout 30 "$ISERCTL" --socket "${ISD_CTL_OF[poll]}")
	modes() {
		"${PCTL[@]}" --json stats | python3 -c '
import json, sys
r = sorted(json.load(sys.stdin)["process"]["reactors"], key=lambda x: x["reactor"])
print(" ".join("%s:%d:%d" % (x.get("mode", "?"), x["turns"], x["sleeps"]) for x in r))'
	}
	m1=$(modes)
	sleep 1
	m2=$(modes)
	read -r a0 a1 <<<"$m1"
	read -r b0 b1 <<<"$m2"
	IFS=: read -r mode0 _ _ <<<"$b0"
	IFS=: read -r mode1 t1a s1a <<<"$a1"
	IFS=: read -r _ t1b s1b <<<"$b1"
	if [ "$mode0" = adaptive ] && [ "$mode1" = poll ] && [ "${s1a:-x}" = 0 ] &&
		[ "${s1b:-x}" = 0 ] && [ "${t1b:-0}" -gt "${t1a:-0}" ]; then
		isd_pass "--polling-reactors 1: reactor 1 polls (turns $t1a -> $t1b, no sleep), reactor 0 adaptive"
	else
		isd_fail "--polling-reactors 1: stats '$m1' then '$m2' (want adaptive, then poll without sleeps)"
	fi
	isd_stop poll
else
	isd_fail "iserd starts with --reactors 2 --polling-reactors 1"
fi
if "$ISERD" --check --reactors 2 --polling-reactors 2 >"$ISD_TMP/pollbad" 2>&1; then
	isd_fail "--polling-reactors 2 accepted with 2 reactors"
elif grep -q 'reactor 2 does not run' "$ISD_TMP/pollbad"; then
	isd_pass "--polling-reactors 2 refused with 2 reactors: reactor 2 does not run"
else
	isd_fail "--polling-reactors 2: unexpected answer: $(head -c 300 "$ISD_TMP/pollbad")"
fi
isd_finish
