#!/bin/bash
# iSCSI/TCP on loopback, side by side: iserd against tgt (tgtd) in the same run on
# the same machine, with libiscsi's iscsi-perf as the initiator. Both targets serve
# the same kind of LUN: a file on tmpfs (tgt's rdwr backing store; iserd's io_uring
# file store), and iserd also its RAM LUN. Reads only (iscsi-perf reads).
#
# With ISERD_B=/path/to/another/iserd (an earlier build), that one runs too, on its own
# port with the same LUNs, and each round measures it next to the others: the summary
# adds the ratio iserd/iserd_B, a before/after comparison in the same run.
#
# Usage: bench/tcp_loopback.sh [SECONDS_PER_RUN] [ROUNDS] > bench/results/NAME.txt
# Needs: a release build (cmake --preset release && cmake --build --preset release),
# libiscsi-bin and tgt (scripts/deps.sh --lab installs both). Prints one line per run
# and a summary of medians with the iserd/tgt ratio. Nothing here is asserted.
set -euo pipefail
SECS=${1:-5}
ROUNDS=${2:-3}
SRC=$(cd "$(dirname "$0")/.." && pwd)
ISERD=${ISERD:-$SRC/build/release/iserd}
ISERD_B=${ISERD_B:-}
IQN=iqn.2026-11.org.iserd:bench
# shellcheck source=bench/lib.sh
. "$SRC/bench/lib.sh"
bench_init iserd-bench
bench_need iscsi-perf tgtd tgtadm
[ -x "$ISERD" ] || { echo "bench: no release iserd at $ISERD" >&2; exit 1; }
[ -z "$ISERD_B" ] || [ -x "$ISERD_B" ] || { echo "bench: no iserd at $ISERD_B" >&2; exit 1; }

truncate -s 1G "$W/tgt.img"
truncate -s 1G "$W/iserd.img"
P_ISERD=3461
P_TGT=3462
P_ISERD_B=3464
iserd_start "$W/iserd.log" "$ISERD" --portal tcp://127.0.0.1:$P_ISERD --target $IQN \
	--lun "file:$W/iserd.img" --lun ram:1G
if [ -n "$ISERD_B" ]; then
	truncate -s 1G "$W/iserd_b.img"
	iserd_start "$W/iserd_b.log" "$ISERD_B" --portal tcp://127.0.0.1:$P_ISERD_B --target $IQN \
		--lun "file:$W/iserd_b.img" --lun ram:1G
fi
tgt_start $P_TGT $P_TGT $IQN "$W/tgt.img"
sleep 1

# run NAME URL ARGS...: prints "NAME IOPS MBps" from iscsi-perf's average line
run() {
	local name=$1 url=$2
	shift 2
	local out
	out=$(timeout $((SECS + 20)) iscsi-perf -t "$SECS" "$@" "$url" 2>&1 | tr '\r' '\n' |
		grep -o 'iops average [0-9]* ([0-9]* MB/s)' | tail -1)
	echo "$name $(echo "$out" | awk '{print $3, substr($4, 2)}')"
}

echo "# iscsi-perf on 127.0.0.1, ${SECS}s per run, $ROUNDS rounds, $(nproc) CPUs, $(date -u +%F)"
echo "# $(uname -r); iserd $("$ISERD" --version 2>&1 | head -1); $(tgtd --version 2>&1 | head -1 || true)"
declare -A RES
for r in $(seq "$ROUNDS"); do
	for wl in "rand4k_qd32:-r -b 8 -m 32" "seq64k_qd8:-b 128 -m 8"; do
		name=${wl%%:*}
		args=${wl#*:}
		# shellcheck disable=SC2086
		a=$(run "$name iserd-file" "iscsi://127.0.0.1:$P_ISERD/$IQN/0" $args)
		b=$(run "$name tgt-file" "iscsi://127.0.0.1:$P_TGT/$IQN/1" $args)
		c=$(run "$name iserd-ram" "iscsi://127.0.0.1:$P_ISERD/$IQN/1" $args)
		echo "round $r: $a | $b | $c"
		RES["$name iserd-file"]+="$(echo "$a" | awk '{print $3}') "
		RES["$name tgt-file"]+="$(echo "$b" | awk '{print $3}') "
		RES["$name iserd-ram"]+="$(echo "$c" | awk '{print $3}') "
		if [ -n "$ISERD_B" ]; then
			# shellcheck disable=SC2086
			d=$(run "$name iserd_B-file" "iscsi://127.0.0.1:$P_ISERD_B/$IQN/0" $args)
			# shellcheck disable=SC2086
			e=$(run "$name iserd_B-ram" "iscsi://127.0.0.1:$P_ISERD_B/$IQN/1" $args)
			echo "round $r: $d | $e"
			RES["$name iserd_B-file"]+="$(echo "$d" | awk '{print $3}') "
			RES["$name iserd_B-ram"]+="$(echo "$e" | awk '{print $3}') "
		fi
	done
done
echo "# medians (IOPS) and ratios"
for name in rand4k_qd32 seq64k_qd8; do
	i=$(echo "${RES["$name iserd-file"]}" | median)
	t=$(echo "${RES["$name tgt-file"]}" | median)
	m=$(echo "${RES["$name iserd-ram"]}" | median)
	awk -v n="$name" -v i="$i" -v t="$t" -v m="$m" 'BEGIN {
		printf "%-12s iserd-file %8d  tgt-file %8d  ratio iserd/tgt %.2f  iserd-ram %8d\n",
		n, i, t, (t > 0 ? i / t : 0), m }'
done
if [ -n "$ISERD_B" ]; then
	echo "# iserd against iserd_B ($ISERD_B): medians of IOPS, ratio iserd/iserd_B"
	for name in rand4k_qd32 seq64k_qd8; do
		for lun in file ram; do
			i=$(echo "${RES["$name iserd-$lun"]}" | median)
			j=$(echo "${RES["$name iserd_B-$lun"]}" | median)
			awk -v n="$name" -v l="$lun" -v i="$i" -v j="$j" 'BEGIN {
				printf "%-12s %-4s iserd %8d  iserd_B %8d  ratio %.2f\n", n, l, i, j, (j > 0 ? i / j : 0) }'
		done
	done
fi
