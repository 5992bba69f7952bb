#!/bin/bash
# How the reactor's idle mode (--reactor-mode: event, poll, adaptive[:US]) changes
# IOPS, CPU per I/O and latency, on one machine, same run, rounds interleaved.
#
#   bench/reactor_modes.sh [SECONDS] [ROUNDS]        (default 6 s, 3 rounds)
#
# iserd serves a 256 MiB RAM LUN (filled first) on 127.0.0.1; iserinit bench
# drives 4 KiB random reads at QD1 and QD32, one session. Per mode and case it
# prints medians over the rounds: IOPS, target CPU µs per I/O (whole-process
# utime+stime from /proc/PID/stat over the run), latency p50/p99 (µs), and the
# target's CPU over 2 s idle after the load (ticks of 10 ms: 0 = asleep,
# 200 = a whole core). ISERD and ISERINIT name the binaries (default
# build/release/). The modes list can be narrowed with MODES="event adaptive".
set -euo pipefail
cd "$(dirname "$0")/.."
. bench/lib.sh

SECS=${1:-6}
ROUNDS=${2:-3}
ISERD=${ISERD:-build/release/iserd}
ISERINIT=${ISERINIT:-build/release/iserinit}
MODES=${MODES:-event adaptive adaptive:10 poll}
PORT=${PORT:-3493}
IQN=iqn.2026-12.org.iserd.bench:modes
bench_init reactor_modes
bench_need python3
for b in "$ISERD" "$ISERINIT"; do [ -x "$b" ] || { echo "bench: $b missing (cmake --build --preset release)" >&2; exit 1; }; done

ticks() { awk '{print $14+$15}' "/proc/$1/stat"; }

one() {   # MODE QD -> "iops cpu_us p50 p99 idle_ticks"
	local mode=$1 qd=$2 pid t0 t1 i0 i1
	iserd_start "$W/iserd.log" "$ISERD" --reactor-mode "$mode" --portal "tcp://127.0.0.1:$PORT" \
		--target "$IQN" --lun ram:256M
	pid=$LAST_PID
	wait_port "$PORT"
	"$ISERINIT" bench --rw write --bs 1M --qd 8 --time 1 "iscsi://127.0.0.1:$PORT/$IQN/0" >/dev/null
	t0=$(ticks "$pid")
	"$ISERINIT" bench --json --rw randread --bs 4K --qd "$qd" --time "$SECS" \
		"iscsi://127.0.0.1:$PORT/$IQN/0" >"$W/out.json"
	t1=$(ticks "$pid")
	sleep 0.5
	i0=$(ticks "$pid"); sleep 2; i1=$(ticks "$pid")
	kill "$pid"; wait "$pid" 2>/dev/null || true
	python3 - "$W/out.json" $((t1 - t0)) "$SECS" $((i1 - i0)) <<'PY'
import json, sys
j = json.load(open(sys.argv[1]))
ticks, secs, idle = int(sys.argv[2]), float(sys.argv[3]), int(sys.argv[4])
iops = j["iops"]
lat = j.get("lat_us", {})
print(f"{iops:.0f} {ticks * 10000 / (iops * secs):.2f} {lat.get('p50', 0):.1f} {lat.get('p99', 0):.1f} {idle}")
PY
}

echo "# bench/reactor_modes.sh $SECS $ROUNDS; $(uname -r); $(nproc) CPUs; $(git rev-parse --short HEAD 2>/dev/null || echo '?')"
echo "# load average at start: $(cut -d' ' -f1-3 /proc/loadavg)"
declare -A R=()
for round in $(seq "$ROUNDS"); do
	for qd in 1 32; do
		for m in $MODES; do
			R["$m/$qd"]+="$(one "$m" "$qd")"$'\n'
			echo "round $round qd$qd $m: $(echo "${R["$m/$qd"]}" | grep . | tail -1)" >&2
		done
	done
done
printf '%-12s %4s %10s %10s %8s %8s %10s\n' mode qd iops cpu_us/io p50_us p99_us idle_ticks
for qd in 1 32; do
	for m in $MODES; do
		col() { echo "${R["$m/$qd"]}" | grep . | awk -v c="$1" '{print $c}' | median; }
		printf '%-12s %4s %10s %10s %8s %8s %10s\n' "$m" "$qd" "$(col 1)" "$(col 2)" "$(col 3)" "$(col 4)" "$(col 5)"
	done
done
