#!/bin/bash
# What a 4 KiB I/O costs the kernel's TCP over loopback, target by target: each target
# alone on one pinned core (CPU 0), iserinit bench on the other (CPU 1), 4 KiB random
# reads and writes at QD32 on a RAM LUN; per I/O, the target's user and system CPU and
# the TCP segments sent (both directions: `nstat`'s TcpOutSegs, loopback counts each
# side's), and the pure ACKs taken in. The segment counts hardly move with the host's
# load, unlike the rates: they show how each target batches on the wire.
#
# Targets: iserd (this tree's release build, or ISERD), ISERD_B (a second iserd build,
# for an A/B), and SPDK's iscsi_tgt when SPDK_ISCSI_TGT names one (malloc bdev, as in
# bench/spdk.sh). Each round runs every target, in turn.
#
# Usage: [ISERD_B=...] [SPDK_ISCSI_TGT=... LD_LIBRARY_PATH=...] bench/tcp_segments.sh \
#            [SECONDS] [ROUNDS] > bench/results/NAME.txt
# Needs: a release build, 2 CPUs, nstat (iproute2), taskset, python3. The machine's TCP
# counters are global: run nothing else meanwhile. Nothing here is asserted.
set -euo pipefail
SECS=${1:-5}
ROUNDS=${2:-2}
SRC=$(cd "$(dirname "$0")/.." && pwd)
ISERD=${ISERD:-$SRC/build/release/iserd}
ISERINIT=${ISERINIT:-$SRC/build/release/iserinit}
ISERD_B=${ISERD_B:-}
SPDK_ISCSI_TGT=${SPDK_ISCSI_TGT:-}
IQN=iqn.2026-11.org.iserd:segments
PORT=${PORT:-3491}

# shellcheck source=bench/lib.sh
. "$SRC/bench/lib.sh"
bench_init iserd-segments
bench_need nstat taskset python3
for b in "$ISERD" "$ISERINIT"; do
	[ -x "$b" ] || { echo "bench: no binary $b (release build?)" >&2; exit 1; }
done
HZ=$(getconf CLK_TCK)
URL=iscsi://127.0.0.1:$PORT/$IQN/0

cat >"$W/spdk.json" <<EOF
{ "subsystems": [
  { "subsystem": "bdev", "config": [
    { "method": "bdev_malloc_create",
      "params": { "name": "Malloc0", "num_blocks": 131072, "block_size": 512 } } ] },
  { "subsystem": "iscsi", "config": [
    { "method": "iscsi_create_portal_group",
      "params": { "tag": 1, "portals": [ { "host": "127.0.0.1", "port": "$PORT" } ] } },
    { "method": "iscsi_create_initiator_group",
      "params": { "tag": 1, "initiators": [ "ANY" ], "netmasks": [ "127.0.0.1/32" ] } },
    { "method": "iscsi_create_target_node",
      "params": { "name": "$IQN", "alias_name": "spdk",
                  "luns": [ { "bdev_name": "Malloc0", "lun_id": 0 } ],
                  "pg_ig_maps": [ { "pg_tag": 1, "ig_tag": 1 } ],
                  "queue_depth": 64, "disable_chap": true } } ] } ] }
EOF

# up NAME: starts that target on CPU 0 (its PID in TPID), waits for it, writes its LUN
up() {
	case $1 in
	iserd | iserd_b)
		local bin=$ISERD
		[ "$1" = iserd ] || bin=$ISERD_B
		iserd_start "$W/$1.log" "$bin" --portal "tcp://127.0.0.1:$PORT" --target $IQN \
			--lun ram:64M
		taskset -a -c -p 0 "$LAST_PID" >/dev/null
		;;
	spdk)
		taskset -c 0 "$SPDK_ISCSI_TGT" -m 0x1 --no-huge -s 1024 -r "$W/spdk.sock" \
			--json "$W/spdk.json" >>"$W/spdk.log" 2>&1 &
		LAST_PID=$!
		PIDS+=("$LAST_PID")
		;;
	esac
	TPID=$LAST_PID
	for _ in $(seq 100); do
		"$ISERINIT" readcap "$URL" >/dev/null 2>&1 && break
		sleep 0.1
	done
	head -c 64M /dev/zero | "$ISERINIT" write "$URL" >/dev/null
}

down() {
	kill "$TPID" 2>/dev/null || true
	for _ in $(seq 100); do kill -0 "$TPID" 2>/dev/null || break; sleep 0.1; done
	kill -9 "$TPID" 2>/dev/null || true
	wait "$TPID" 2>/dev/null || true
	local keep=() p
	for p in "${PIDS[@]}"; do [ "$p" = "$TPID" ] || keep+=("$p"); done
	PIDS=("${keep[@]}")
}

ticks() { awk '{ print $14, $15 }' "/proc/$1/stat"; }

TARGETS=(iserd)
[ -z "$ISERD_B" ] || TARGETS+=(iserd_b)
[ -z "$SPDK_ISCSI_TGT" ] || TARGETS+=(spdk)
echo "# 4 KiB random, QD32, RAM LUN / malloc bdev of 64 MiB on 127.0.0.1; each target on CPU 0, iserinit bench on CPU 1; ${SECS}s per run, $ROUNDS rounds, $(date -u +%FT%TZ)"
echo "# $(uname -r); $(grep -m1 'model name' /proc/cpuinfo | sed 's/.*: //')"
echo "# iserd: $ISERD${ISERD_B:+; iserd_b: $ISERD_B}${SPDK_ISCSI_TGT:+; spdk: $SPDK_ISCSI_TGT}"
echo "# per I/O: user and sys = the target process's CPU (µs); segs = TcpOutSegs, both directions; pureacks = TcpExtTCPPureAcks"
for r in $(seq "$ROUNDS"); do
	for t in "${TARGETS[@]}"; do
		up "$t"
		for rw in randread randwrite; do
			nstat -n >/dev/null
			read -r u0 s0 < <(ticks "$TPID")
			taskset -c 1 "$ISERINIT" bench --rw "$rw" --bs 4K --qd 32 --time "$SECS" --json \
				"$URL" >"$W/out" 2>"$W/err" || true
			read -r u1 s1 < <(ticks "$TPID")
			nstat -z >"$W/nstat"
			python3 - "$W/out" "$W/nstat" "$r" "$t" "$rw" "$u0" "$s0" "$u1" "$s1" "$HZ" <<-'EOF'
				import json, sys
				out, ns, r, t, rw = sys.argv[1:6]
				u0, s0, u1, s1, hz = map(int, sys.argv[6:11])
				try:
				    j = json.load(open(out))
				    ios = j["ios"]
				    assert ios > 0 and j["errors"] == 0
				except Exception as e:
				    print("round %s %-8s %-9s FAILED: %s" % (r, t, rw, e))
				    sys.exit(0)
				v = {}
				for line in open(ns):
				    f = line.split()
				    if len(f) >= 2 and f[1].isdigit():
				        v[f[0]] = int(f[1])
				print("round %s %-8s %-9s IOPS %7.0f  user %.2f  sys %.2f  segs %.3f  pureacks %.3f" % (
				    r, t, rw, j["iops"], (u1 - u0) / hz * 1e6 / ios, (s1 - s0) / hz * 1e6 / ios,
				    v.get("TcpOutSegs", 0) / ios, v.get("TcpExtTCPPureAcks", 0) / ios))
			EOF
		done
		down
	done
done
