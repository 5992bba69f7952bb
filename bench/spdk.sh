#!/bin/bash
# iserd against SPDK's iSCSI target (iscsi_tgt), side by side in one run, each target
# on one pinned core: iserd's RAM LUN against SPDK's malloc bdev, both 512-byte blocks,
# the same initiator (our iserinit bench) pinned to the other core. SPDK is the highest
# userspace anchor there is for iSCSI: one reactor per core that polls without ever
# sleeping, pools for everything. iserd runs one reactor in its default (adaptive) mode.
#
# Cases: 4 KiB random read and write QD32, 128 KiB sequential read and write QD8, then
# 3 s idle with nothing logged in. Each round runs every case on one target, then on the
# other, which goes first swapped from round to round; SPDK runs only for its own cases
# (its poller would take the shared core from iserd). CPU per I/O is the target process's utime+stime
# over the run (/proc/PID/stat, all its threads) divided by the I/Os; for SPDK it is
# about one core's time over the run whatever the load, as its reactor never sleeps, so
# the IOPS column is the comparison and the idle line shows what each costs doing
# nothing.
#
# This project does not build SPDK. Point SPDK_ISCSI_TGT at an iscsi_tgt binary built
# from SPDK's own sources (set LD_LIBRARY_PATH too for a shared-library build); the
# results name the version given in SPDK_VERSION. It runs with hugepages when the machine has
# them free (HugePages_Free in /proc/meminfo, hugetlbfs mounted), else with
# --no-huge (SPDK_MEM MiB of ordinary memory), which the header line says.
#
# Usage: SPDK_ISCSI_TGT=/path/to/iscsi_tgt bench/spdk.sh [SECONDS_PER_RUN] [ROUNDS] \
#            > bench/results/NAME.txt
# Needs: a release build, 2 CPUs or more, python3, taskset. Nothing here is asserted.
set -euo pipefail
SECS=${1:-5}
ROUNDS=${2:-3}
SRC=$(cd "$(dirname "$0")/.." && pwd)
ISERD=${ISERD:-$SRC/build/release/iserd}
ISERINIT=${ISERINIT:-$SRC/build/release/iserinit}
SPDK_ISCSI_TGT=${SPDK_ISCSI_TGT:-}
SPDK_MEM=${SPDK_MEM:-2048}
SPDK_VERSION=${SPDK_VERSION:-unknown version}
SIZE=${SIZE:-1G}
TCPU=${TCPU:-0}           # the targets' core
ICPU=${ICPU:-1}           # the initiator's core
IQN=iqn.2026-11.org.iserd:bench
PORT=${PORT:-3481}
P_ISERD=$PORT
P_SPDK=$((PORT + 1))

# shellcheck source=bench/lib.sh
. "$SRC/bench/lib.sh"
bench_init iserd-spdk
bench_need python3 taskset
for b in "$ISERD" "$ISERINIT"; do
	[ -x "$b" ] || { echo "bench: no binary $b (release build?)" >&2; exit 1; }
done
[ -n "$SPDK_ISCSI_TGT" ] && [ -x "$SPDK_ISCSI_TGT" ] ||
	{ echo "bench: set SPDK_ISCSI_TGT to an SPDK iscsi_tgt binary" >&2; exit 1; }
HZ=$(getconf CLK_TCK)
BYTES=$(numfmt --from=iec "$SIZE")

# --- targets ----------------------------------------------------------------------------
iserd_start "$W/iserd.log" "$ISERD" --portal tcp://127.0.0.1:"$P_ISERD" --target $IQN \
	--lun "ram:$SIZE"
PID_ISERD=$LAST_PID
taskset -a -c -p "$TCPU" "$PID_ISERD" >/dev/null

cat >"$W/spdk.json" <<EOF
{ "subsystems": [
  { "subsystem": "bdev", "config": [
    { "method": "bdev_malloc_create",
      "params": { "name": "Malloc0", "num_blocks": $((BYTES / 512)), "block_size": 512 } } ] },
  { "subsystem": "iscsi", "config": [
    { "method": "iscsi_create_portal_group",
      "params": { "tag": 1, "portals": [ { "host": "127.0.0.1", "port": "$P_SPDK" } ] } },
    { "method": "iscsi_create_initiator_group",
      "params": { "tag": 1, "initiators": [ "ANY" ], "netmasks": [ "127.0.0.1/32" ] } },
    { "method": "iscsi_create_target_node",
      "params": { "name": "$IQN", "alias_name": "spdk",
                  "luns": [ { "bdev_name": "Malloc0", "lun_id": 0 } ],
                  "pg_ig_maps": [ { "pg_tag": 1, "ig_tag": 1 } ],
                  "queue_depth": 64, "disable_chap": true } } ] } ] }
EOF
free_huge=$(awk '/HugePages_Free/ { print $2 }' /proc/meminfo)
hsz=$(awk '/Hugepagesize/ { print $2 }' /proc/meminfo)
if [ "$((free_huge * hsz / 1024))" -ge "$SPDK_MEM" ] && grep -q hugetlbfs /proc/mounts; then
	MEMOPT=(-s "$SPDK_MEM")
	MEMDESC="hugepages ($SPDK_MEM MiB)"
else
	MEMOPT=(--no-huge -s "$SPDK_MEM")
	MEMDESC="--no-huge ($SPDK_MEM MiB of ordinary memory)"
fi
# SPDK's reactor polls its core whether or not there is work, so it cannot share the
# target core with iserd: it runs only while its own cases run (started for them and
# stopped after, its LUN written in full each time); iserd stays up and idle meanwhile.
spdk_up() {
	# its RPC socket in $W, so that another SPDK's default socket is left alone
	taskset -c "$TCPU" "$SPDK_ISCSI_TGT" -m 0x1 "${MEMOPT[@]}" -r "$W/spdk.sock" \
		--json "$W/spdk.json" >>"$W/spdk.log" 2>&1 &
	PID_SPDK=$!
	PIDS+=("$PID_SPDK")
	ready spdk "$URL_SPDK"
}

spdk_down() {
	kill "$PID_SPDK"
	for _ in $(seq 100); do kill -0 "$PID_SPDK" 2>/dev/null || break; sleep 0.1; done
	kill -9 "$PID_SPDK" 2>/dev/null || true
	wait "$PID_SPDK" 2>/dev/null || true
	# gone: the exit trap must not signal whatever gets its PID next
	local keep=() p
	for p in "${PIDS[@]}"; do [ "$p" = "$PID_SPDK" ] || keep+=("$p"); done
	PIDS=("${keep[@]}")
}

# ready NAME URL: until the target answers, then every block written once (both map
# their memory on first touch)
ready() {
	local ok=0
	for _ in $(seq 100); do
		"$ISERINIT" readcap "$2" >/dev/null 2>&1 && { ok=1; break; }
		sleep 0.2
	done
	[ $ok = 1 ] || { echo "bench: $1 ($2) does not answer; logs:" >&2; tail -n 5 "$W"/*.log >&2; exit 1; }
	head -c "$BYTES" /dev/zero | "$ISERINIT" write "$2" >/dev/null
}

URL_ISERD=iscsi://127.0.0.1:$P_ISERD/$IQN/0
URL_SPDK=iscsi://127.0.0.1:$P_SPDK/$IQN/0
ready iserd "$URL_ISERD"

cpu_ticks() {
	local s
	s=$(cat "/proc/$1/stat" 2>/dev/null) || { echo -1; return; }
	echo "${s##*) }" | awk '{ print $12 + $13 }'
}

# --- runs -------------------------------------------------------------------------------
CASES="rand4k_read_qd32:randread:4096:32 rand4k_write_qd32:randwrite:4096:32
	seq128k_read_qd8:read:131072:8 seq128k_write_qd8:write:131072:8"
RES=$W/results.tsv
: >"$RES"

run() {
	local r=$1 c=$2 rw=$3 bs=$4 qd=$5 name=$6 pid=$7 url=$8 t0 t1 i0 i1
	t0=$(cpu_ticks "$pid")
	# this shell's reaped children's time (fields 16, 17) before and after: the iserinit
	i0=$(awk '{ print $16 + $17 }' /proc/$$/stat)
	timeout $((SECS + 60)) taskset -c "$ICPU" "$ISERINIT" bench --rw "$rw" --bs "$bs" \
		--qd "$qd" --time "$SECS" --json "$url" >"$W/out" 2>"$W/err" || true
	t1=$(cpu_ticks "$pid")
	i1=$(awk '{ print $16 + $17 }' /proc/$$/stat)
	python3 - "$W/out" "$W/err" "$r" "$c" "$name" "$t0" "$t1" "$HZ" "$RES" "$i0" "$i1" <<-'EOF'
		import json, sys
		out, err, r, c, name, t0, t1, hz, res, i0, i1 = sys.argv[1:]
		t0, t1, hz, i0, i1 = int(t0), int(t1), int(hz), int(i0), int(i1)
		head = "round %s %-18s %-6s" % (r, c, name)
		try:
		    j = json.load(open(out))
		    assert t0 >= 0 and t1 >= 0, "the target process is gone"
		    assert j["errors"] == 0, "%d errors (%s)" % (j["errors"], j.get("error", "?"))
		    assert j["ios"] > 0, "no I/O"
		    cpu_s = (t1 - t0) / hz
		    cpu = cpu_s * 1e6 / j["ios"]
		    icpu = (i1 - i0) / hz * 1e6 / j["ios"]
		    lat = j["lat_us"]
		    print("%s IOPS %8.0f  MiB/s %7.1f  cpu_us/io %6.2f  init_us/io %6.2f  p50 %7.1f  "
		          "p99 %7.1f  (%d I/Os, target cpu %.2f s)" % (head, j["iops"], j["mib_s"],
		          cpu, icpu, lat["p50"], lat["p99"], j["ios"], cpu_s))
		    with open(res, "a") as f:
		        f.write("%s\t%s\t%f\t%f\t%f\t%f\n" % (c, name, j["iops"], j["mib_s"], cpu,
		                icpu))
		except Exception as e:
		    msg = open(err).read().strip().splitlines()
		    print("%s FAILED: %s %s" % (head, e, msg[-1] if msg else ""))
	EOF
}

# idle ROUND NAME PID: the target's CPU over 3 s with no session
idle() {
	local t0 t1
	t0=$(cpu_ticks "$3")
	sleep 3
	t1=$(cpu_ticks "$3")
	echo "round $1 idle_3s             $(printf '%-6s' "$2") cpu $(awk -v a="$t0" -v b="$t1" -v hz="$HZ" \
		'BEGIN { printf "%.2f s of 3 s (%.0f%% of a core)", (b - a) / hz, (b - a) / hz / 3 * 100 }')"
	printf 'idle\t%s\t0\t0\t%f\t0\n' "$2" "$(awk -v a="$t0" -v b="$t1" -v hz="$HZ" \
		'BEGIN { print (b - a) / hz / 3 * 100 }')" >>"$RES"
}

echo "# iserd and SPDK iscsi_tgt on 127.0.0.1, each on CPU $TCPU, iserinit bench on CPU $ICPU; ${SECS}s per run, $ROUNDS rounds, $(nproc) CPUs, $(date -u +%FT%TZ), load average $(cut -d' ' -f1-3 /proc/loadavg)"
echo "# $(uname -r); $(grep -m1 'model name' /proc/cpuinfo | sed 's/.*: //')"
if [ "$ISERD" = "$SRC/build/release/iserd" ]; then
	from="source $(git -C "$SRC" describe --always --dirty 2>/dev/null || echo '?')"
else
	from="a build given in ISERD"
fi
echo "# iserd $("$ISERD" --version 2>&1 | head -1) ($ISERD), $from; one reactor, default mode"
echo "# SPDK iscsi_tgt, $SPDK_VERSION ($SPDK_ISCSI_TGT), -m 0x1, $MEMDESC; its iSCSI defaults (MaxQueueDepth 64, ImmediateData, FirstBurstLength 8192)"
echo "# LUNs: $SIZE, 512-byte blocks: iserd ram:, SPDK malloc bdev; both written in full before the runs"
echo "# cpu_us/io: target process utime+stime over the run (1/$HZ s ticks) / I/Os completed;"
echo "# init_us/io (init@ in the summary): the same for the iserinit (the shared initiator: a target that batches its responses makes it cheaper)"
# cases NAME ROUND: every case on one target
cases() {
	local c rw bs qd pid url
	if [ "$1" = iserd ]; then pid=$PID_ISERD url=$URL_ISERD; else pid=$PID_SPDK url=$URL_SPDK; fi
	for cs in $CASES; do
		IFS=: read -r c rw bs qd <<<"$cs"
		run "$2" "$c" "$rw" "$bs" "$qd" "$1" "$pid" "$url"
	done
	idle "$2" "$1" "$pid"
}

for r in $(seq "$ROUNDS"); do
	if [ $((r % 2)) = 1 ]; then
		cases iserd "$r"
		spdk_up; cases spdk "$r"; spdk_down
	else
		spdk_up; cases spdk "$r"; spdk_down
		cases iserd "$r"
	fi
done
echo "# end $(date -u +%FT%TZ), load average $(cut -d' ' -f1-3 /proc/loadavg)"

# --- summary ----------------------------------------------------------------------------
python3 - "$RES" "$CASES" <<-'EOF'
	import statistics, sys
	res, cases = sys.argv[1:3]
	cases = [c.split(":")[0] for c in cases.split()]
	rows = {}
	for line in open(res):
	    c, t, *v = line.split("\t")
	    rows.setdefault((c, t), []).append([float(x) for x in v])
	def med(c, t, k):
	    v = rows.get((c, t))
	    return statistics.median(x[k] for x in v) if v else None
	def f(x, fmt):
	    return fmt % x if x is not None else "-"
	print("# medians; ratio = iserd / SPDK (IOPS above 1: iserd faster; cpu below 1: iserd less)")
	print("%-18s %10s %10s %10s %10s %7s %7s %10s %10s" % ("case", "iserd IOPS",
	      "SPDK IOPS", "iserd cpu", "SPDK cpu", "IOPS", "cpu", "init@iserd", "init@SPDK"))
	for c in cases:
	    a, b = med(c, "iserd", 0), med(c, "spdk", 0)
	    ca, cb = med(c, "iserd", 2), med(c, "spdk", 2)
	    ia, ib = med(c, "iserd", 3), med(c, "spdk", 3)
	    print("%-18s %10s %10s %10s %10s %7s %7s %10s %10s" % (c, f(a, "%.0f"), f(b, "%.0f"),
	          f(ca, "%.2f"), f(cb, "%.2f"), f(a / b if a and b else None, "%.2f"),
	          f(ca / cb if ca and cb else None, "%.2f"), f(ia, "%.2f"), f(ib, "%.2f")))
	print("%-18s idle CPU, %% of a core: iserd %s, SPDK %s" % ("idle_3s",
	      f(med("idle", "iserd", 2), "%.1f"), f(med("idle", "spdk", 2), "%.1f")))
EOF
