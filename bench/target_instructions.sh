#!/bin/bash
# Instructions the target executes per I/O, counted by valgrind's callgrind, for
# one iserd or two side by side (before/after). Instruction counts do not depend
# on what else the machine is doing, so this compares two builds where the
# loopback timings (bench/tcp_loopback.sh) swing by 2x on a shared machine.
#
# Each build serves a 64 MiB RAM LUN on 127.0.0.1 under callgrind; iserinit
# bench runs a short and a long load (--time T1 and T2) of one workload, and
# the target's instructions per I/O are (instructions(T2) - instructions(T1)) /
# (ios(T2) - ios(T1)): start-up, login and shutdown cancel out. Workloads:
# randread and randwrite, 4 KiB at QD 8, one session over TCP.
#
# Usage: bench/target_instructions.sh ISERD [ISERD_B] > bench/results/NAME.txt
# Needs valgrind and a release build of iserinit (build/release/iserinit, or
# $ISERINIT). Prints one line per run and the per-I/O figures. Nothing asserted.
set -uo pipefail
cd "$(dirname "$0")/.."

A=${1:?usage: bench/target_instructions.sh ISERD [ISERD_B]}
B=${2:-}
ISERINIT=${ISERINIT:-build/release/iserinit}
T1=${T1:-4}
T2=${T2:-12}
IQN=iqn.2026-11.org.iserd:callgrind
command -v valgrind >/dev/null || { echo "valgrind not installed" >&2; exit 1; }
[ -x "$ISERINIT" ] || { echo "no $ISERINIT (cmake --preset release && cmake --build --preset release)" >&2; exit 1; }
tmp=$(mktemp -d /tmp/iserd-callgrind.XXXXXX)
trap 'rm -rf "$tmp"' EXIT

# one measurement: prints "INSTRUCTIONS IOS"
measure() { # $1 = iserd, $2 = workload, $3 = seconds
	local port out pid ios ir i
	port=$((5600 + RANDOM % 300))
	out="$tmp/cg.out"
	rm -f "$out"
	local ctl=()
	# (builds before the control socket have no such flag)
	grep -q -- --control-socket <<<"$("$1" --help 2>&1)" && ctl=(--control-socket none)
	valgrind --tool=callgrind --callgrind-out-file="$out" "$1" \
		--portal "tcp://127.0.0.1:$port" --target "$IQN" --lun ram:64M \
		"${ctl[@]}" -q >"$tmp/iserd.log" 2>&1 &
	pid=$!
	for i in $(seq 1 300); do
		(exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && break
		sleep 0.2
	done
	ios=$("$ISERINIT" bench --rw "$2" --bs 4K --qd 8 --time "$3" --json \
		-i iqn.2026-11.org.iserd:cg "iscsi://127.0.0.1:$port/$IQN/0" 2>>"$tmp/bench.err" |
		python3 -c 'import json,sys; print(json.load(sys.stdin)["ios"])')
	kill -TERM "$pid"
	wait "$pid"
	ir=$(sed -n 's/^totals: *\([0-9]*\).*/\1/p' "$out")
	[ -n "$ir" ] || ir=$(sed -n 's/^summary: *\([0-9]*\).*/\1/p' "$out")
	echo "$ir $ios"
}

echo "# target instructions per I/O (callgrind), $(date +%F), $(nproc) CPUs, $(uname -r)"
echo "# command: bench/target_instructions.sh $*  (T1=$T1 T2=$T2; 4K QD8, 1 session, ram:64M)"
declare -A PER
for w in randread randwrite; do
	for name in A B; do
		bin=$A
		[ "$name" = B ] && bin=$B
		[ -n "$bin" ] || continue
		read -r i1 n1 < <(measure "$bin" "$w" "$T1")
		read -r i2 n2 < <(measure "$bin" "$w" "$T2")
		echo "$w $name ($bin): T1 ${i1} instr ${n1} ios; T2 ${i2} instr ${n2} ios"
		if [ -n "$i1" ] && [ -n "$i2" ] && [ "${n2:-0}" -gt "${n1:-0}" ]; then
			PER[$w.$name]=$(((i2 - i1) / (n2 - n1)))
		fi
	done
done
echo "# per I/O"
for w in randread randwrite; do
	line="$w  iserd ${PER[$w.A]:-?} instr/IO"
	if [ -n "$B" ]; then
		line+="  iserd_B ${PER[$w.B]:-?} instr/IO"
		if [ -n "${PER[$w.A]:-}" ] && [ -n "${PER[$w.B]:-}" ]; then
			line+="  ratio $(python3 -c "print('%.3f' % (${PER[$w.A]} / ${PER[$w.B]}))")"
		fi
	fi
	echo "$line"
done
