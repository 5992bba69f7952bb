#!/bin/bash
# Initiators side by side on loopback: our iserinit against libiscsi's iscsi-perf,
# in the same run, against the same iserd (release build, RAM LUN, 127.0.0.1).
# Each round runs every read workload once with each initiator, alternating which
# goes first from round to round; then iserinit's writes alone (iscsi-perf cannot
# write). Initiator and target share the machine's CPUs.
#
# With ISERINIT_B=/path/to/another/iserinit (an earlier build, its libiserd.so beside
# it), every run of ours is also made with that one, next to it in the same round,
# and the summary adds the ratio iserinit/iserinit_B: a before/after comparison.
#
# Usage: bench/initiators_loopback.sh [SECONDS_PER_RUN] [ROUNDS] > bench/results/NAME.txt
# Needs: a release build (cmake --preset release && cmake --build --preset release),
# libiscsi-bin (iscsi-perf; scripts/deps.sh --lab installs it). Prints one line per
# run and then the medians of the IOPS with the ratio iserinit/iscsi-perf. The "cpu"
# column is the initiator process's user+sys CPU time over the run's wall time
# (1.00 = one core). Nothing here is asserted.
set -euo pipefail
SECS=${1:-5}
ROUNDS=${2:-3}
SRC=$(cd "$(dirname "$0")/.." && pwd)
ISERD=${ISERD:-$SRC/build/release/iserd}
ISERINIT=${ISERINIT:-$SRC/build/release/iserinit}
ISERINIT_B=${ISERINIT_B:-}
IQN=iqn.2026-11.org.iserd:bench
PORT=${PORT:-3463}
URL=iscsi://127.0.0.1:$PORT/$IQN/0
W=$(mktemp -d /dev/shm/iserd-initbench.XXXXXX)
PIDS=()
cleanup() {
	for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
	wait 2>/dev/null || true
	rm -rf "$W"
}
trap cleanup EXIT
command -v iscsi-perf >/dev/null || { echo "bench: iscsi-perf missing (scripts/deps.sh --lab)" >&2; exit 1; }
for b in "$ISERD" "$ISERINIT" ${ISERINIT_B:+"$ISERINIT_B"}; do
	[ -x "$b" ] || { echo "bench: no release binary $b" >&2; exit 1; }
done

"$ISERD" -q --portal tcp://127.0.0.1:$PORT --target $IQN --lun ram:1G >"$W/iserd.log" 2>&1 &
PIDS+=($!)
for _ in $(seq 50); do "$ISERINIT" readcap "$URL" >/dev/null 2>&1 && break; sleep 0.1; done

# timed CMD...: runs CMD with stdout to $W/out, prints "CPU" = (user+sys)/wall
timed() {
	local t0 t1 cpu
	t0=$(date +%s.%N)
	cpu=$( { TIMEFORMAT='%U %S'; time "$@" >"$W/out" 2>&1; } 2>&1 | tail -1)
	t1=$(date +%s.%N)
	awk -v c="$cpu" -v a="$t0" -v b="$t1" 'BEGIN { split(c, x, " "); printf "%.2f", (x[1] + x[2]) / (b - a) }'
}
# perf BS_BYTES ARGS...: one iscsi-perf run; prints "IOPS MiB/s cpu"
perf() {
	local bs=$1 cpu iops
	shift
	cpu=$(timed timeout $((SECS + 20)) iscsi-perf -t "$SECS" "$@" "$URL") || true
	iops=$(tr '\r' '\n' <"$W/out" | grep -o 'iops average [0-9]*' | tail -1 | awk '{print $3}')
	awk -v i="${iops:-0}" -v b="$bs" -v c="$cpu" 'BEGIN { printf "%d %.1f %s", i, i * b / 1048576, c }'
}
# ours RW BS_BYTES QD [BINARY]: one iserinit bench run; prints "IOPS MiB/s cpu" (errors
# must be 0)
ours() {
	local cpu bin=${4:-$ISERINIT}
	cpu=$(timed timeout $((SECS + 20)) "$bin" bench --rw "$1" --bs "$2" --qd "$3" \
		--time "$SECS" --json "$URL") || true
	python3 - "$W/out" "$cpu" <<-'EOF'
		import json, sys
		try:
		    j = json.load(open(sys.argv[1]))
		    assert j["errors"] == 0, "errors %d" % j["errors"]
		    print("%d %.1f %s" % (j["iops"], j["mib_s"], sys.argv[2]), end="")
		except Exception as e:
		    print("0 0.0 %s (failed: %s)" % (sys.argv[2], e), end="")
	EOF
}

echo "# initiators on 127.0.0.1 against one iserd (ram:1G LUN, 512 B blocks), ${SECS}s per run, $ROUNDS rounds, $(nproc) CPUs, $(date -u +%FT%TZ)"
echo "# $(uname -r); iserd $("$ISERD" --version 2>&1 | head -1); iscsi-perf from libiscsi-bin $(dpkg-query -W -f '${Version}' libiscsi-bin 2>/dev/null || echo '?')"
echo "# columns: IOPS MiB/s cpu(initiator user+sys / wall)"
READS="rand4k_qd32:randread:4096:32:-r:8 seq64k_qd8:read:65536:8::128 seq1m_qd8:read:1048576:8::2048"
WRITES="rand4k_qd32:randwrite:4096:32 seq64k_qd8:write:65536:8 seq1m_qd8:write:1048576:8"
declare -A RES
for r in $(seq "$ROUNDS"); do
	for wl in $READS; do
		IFS=: read -r name rw bs qd rnd blocks <<<"$wl"
		# the B build takes the first slot in even rounds: the first run of a round
		# after the previous workload is the slowest, whoever it is
		if [ -n "$ISERINIT_B" ] && [ $((r % 2)) -eq 0 ]; then
			c=$(ours "$rw" "$bs" "$qd" "$ISERINIT_B")
		fi
		# shellcheck disable=SC2086
		if [ $((r % 2)) -eq 1 ]; then
			a=$(ours "$rw" "$bs" "$qd")
			b=$(perf "$bs" $rnd -b "$blocks" -m "$qd")
			order="iserinit first"
		else
			b=$(perf "$bs" $rnd -b "$blocks" -m "$qd")
			a=$(ours "$rw" "$bs" "$qd")
			order="iscsi-perf first"
		fi
		echo "round $r $name read: iserinit $a | iscsi-perf $b  ($order)"
		RES["$name ours"]+="${a%% *} "
		RES["$name perf"]+="${b%% *} "
		if [ -n "$ISERINIT_B" ]; then
			[ $((r % 2)) -eq 0 ] || c=$(ours "$rw" "$bs" "$qd" "$ISERINIT_B")
			echo "round $r $name read: iserinit_B $c"
			RES["$name B"]+="${c%% *} "
		fi
	done
	for wl in $WRITES; do
		IFS=: read -r name rw bs qd <<<"$wl"
		if [ -n "$ISERINIT_B" ] && [ $((r % 2)) -eq 0 ]; then
			c=$(ours "$rw" "$bs" "$qd" "$ISERINIT_B")
			a=$(ours "$rw" "$bs" "$qd")
		else
			a=$(ours "$rw" "$bs" "$qd")
			[ -z "$ISERINIT_B" ] || c=$(ours "$rw" "$bs" "$qd" "$ISERINIT_B")
		fi
		echo "round $r $name write: iserinit $a"
		RES["$name write"]+="${a%% *} "
		if [ -n "$ISERINIT_B" ]; then
			echo "round $r $name write: iserinit_B $c"
			RES["$name writeB"]+="${c%% *} "
		fi
	done
done
median() { tr ' ' '\n' | grep -v '^$' | sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
echo "# medians (IOPS, MiB/s) and ratio iserinit/iscsi-perf of the median IOPS"
for wl in $READS; do
	IFS=: read -r name rw bs _ <<<"$wl"
	i=$(echo "${RES["$name ours"]}" | median)
	p=$(echo "${RES["$name perf"]}" | median)
	awk -v n="$name" -v i="$i" -v p="$p" -v b="$bs" 'BEGIN {
		printf "%-12s read   iserinit %7d (%7.1f MiB/s)  iscsi-perf %7d (%7.1f MiB/s)  ratio %.2f\n",
		n, i, i * b / 1048576, p, p * b / 1048576, (p > 0 ? i / p : 0) }'
done
for wl in $WRITES; do
	IFS=: read -r name rw bs _ <<<"$wl"
	i=$(echo "${RES["$name write"]}" | median)
	awk -v n="$name" -v i="$i" -v b="$bs" 'BEGIN {
		printf "%-12s write  iserinit %7d (%7.1f MiB/s)  iscsi-perf  (cannot write)\n", n, i, i * b / 1048576 }'
done
if [ -n "$ISERINIT_B" ]; then
	echo "# iserinit against iserinit_B ($ISERINIT_B): medians of IOPS, ratio iserinit/iserinit_B"
	for wl in $READS $WRITES; do
		IFS=: read -r name rw _ <<<"$wl"
		case $rw in *read) k="$name ours"; kb="$name B";; *) k="$name write"; kb="$name writeB";; esac
		i=$(echo "${RES["$k"]}" | median)
		j=$(echo "${RES["$kb"]}" | median)
		awk -v n="$name" -v rw="$rw" -v i="$i" -v j="$j" 'BEGIN {
			printf "%-12s %-9s iserinit %7d  iserinit_B %7d  ratio %.2f\n", n, rw, i, j, (j > 0 ? i / j : 0) }'
	done
fi
