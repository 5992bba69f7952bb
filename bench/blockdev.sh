#!/bin/bash
# Block devices over iSCSI/TCP on loopback, side by side in one run: iserd's dev: store
# with direct I/O (its default) and with ,buffered, against tgt's rdwr store buffered
# (its default) and with bsoflags=direct. Each target serves its own loop device, over
# its own file on the root file system (not tmpfs), the loop itself set to direct I/O so
# that it behaves as a disk: what a target does not cache goes to the machine's disk.
# The initiator is iserinit bench for all. Cases: 4 KiB random read and write QD32,
# 128 KiB sequential read and write QD8; each round runs every case on every target,
# the order rotated from round to round.
#
# What to read from it: direct I/O keeps no copy of the data in the page cache and makes
# none on the way, so its CPU per I/O is the one to compare; the buffered stores can be
# faster where the page cache holds the data (reads of a LUN that fits in memory, writes
# that the cache absorbs before a flush) and slower where it does not.
#
# CPU per I/O is the target process's utime+stime (all threads, exited ones included)
# over the run divided by the I/Os completed; the kernel's loop and block work done in
# interrupt or worker context is not in it, for either target.
#
# Usage: bench/blockdev.sh [SECONDS_PER_RUN] [ROUNDS] > bench/results/NAME.txt
# Needs: root (losetup), a release build, tgt (scripts/deps.sh --lab), python3, and
# 4 x SIZE (default 1G) free under DIR (default /var/tmp). Nothing here is asserted.
set -euo pipefail
SECS=${1:-5}
ROUNDS=${2:-2}
SRC=$(cd "$(dirname "$0")/.." && pwd)
ISERD=${ISERD:-$SRC/build/release/iserd}
ISERINIT=${ISERINIT:-$SRC/build/release/iserinit}
SIZE=${SIZE:-1G}
DIR=${DIR:-/var/tmp}
IQN=iqn.2026-11.org.iserd:bench
PORT=${PORT:-3481}
P_ISERD=$PORT
P_TGT=$((PORT + 2))

# shellcheck source=bench/lib.sh
. "$SRC/bench/lib.sh"
bench_init iserd-blockdev
bench_need tgtd tgtadm losetup python3
[ "$(id -u)" = 0 ] || { echo "bench: losetup needs root" >&2; exit 1; }
for b in "$ISERD" "$ISERINIT"; do
	[ -x "$b" ] || { echo "bench: no binary $b (release build?)" >&2; exit 1; }
done
HZ=$(getconf CLK_TCK)
D=$(mktemp -d "$DIR/iserd-blockdev.XXXXXX")
LOOPS=()
cleanup_loops() {
	local d
	for d in "${LOOPS[@]}"; do losetup -d "$d" 2>/dev/null || true; done
	rm -rf "$D"
}
# bench_cleanup stops the targets first (by PID), then the devices can go
trap 'bench_cleanup; cleanup_loops' EXIT

# new_dev VAR NAME: VAR names a new loop device with direct I/O over a file written in full
new_dev() {
	dd if=/dev/zero of="$D/$2.img" bs=1M count=$(($(numfmt --from=iec "$SIZE") / 1048576)) \
		oflag=direct status=none
	local dev
	dev=$(losetup --find --show --direct-io=on --sector-size 512 "$D/$2.img")
	LOOPS+=("$dev")
	printf -v "$1" '%s' "$dev"
}
new_dev DEV_ID iserd-direct
new_dev DEV_IB iserd-buffered
new_dev DEV_TB tgt-buffered
new_dev DEV_TD tgt-direct

iserd_start "$W/iserd.log" "$ISERD" --portal tcp://127.0.0.1:"$P_ISERD" --target $IQN \
	--lun "dev:$DEV_ID" --lun "dev:$DEV_IB,buffered"
PID_ISERD=$LAST_PID
tgt_start "$P_TGT" "$P_TGT" $IQN "$DEV_TB"
PID_TGT=$LAST_PID
tgtadm -C "$P_TGT" --lld iscsi --op new --mode logicalunit --tid 1 --lun 2 --bstype rdwr \
	-b "$DEV_TD" --bsoflags direct

TARGETS=("iserd-direct|$PID_ISERD|iscsi://127.0.0.1:$P_ISERD/$IQN/0"
	"iserd-buffered|$PID_ISERD|iscsi://127.0.0.1:$P_ISERD/$IQN/1"
	"tgt-buffered|$PID_TGT|iscsi://127.0.0.1:$P_TGT/$IQN/1"
	"tgt-direct|$PID_TGT|iscsi://127.0.0.1:$P_TGT/$IQN/2")
for t in "${TARGETS[@]}"; do
	IFS='|' read -r name pid url <<<"$t"
	ok=0
	for _ in $(seq 50); do
		"$ISERINIT" readcap "$url" >/dev/null 2>&1 && { ok=1; break; }
		sleep 0.1
	done
	[ $ok = 1 ] || { echo "bench: $name ($url) does not answer" >&2; tail -n 5 "$W"/*.log >&2; exit 1; }
done

cpu_ticks() {
	local s
	s=$(cat "/proc/$1/stat" 2>/dev/null) || { echo -1; return; }
	echo "${s##*) }" | awk '{ print $12 + $13 }'
}

CASES="rand4k_read_qd32:randread:4096:32 rand4k_write_qd32:randwrite:4096:32
	seq128k_read_qd8:read:131072:8 seq128k_write_qd8:write:131072:8"
RES=$W/results.tsv
: >"$RES"

run() {
	local r=$1 c=$2 rw=$3 bs=$4 qd=$5 name=$6 pid=$7 url=$8 t0 t1
	t0=$(cpu_ticks "$pid")
	timeout $((SECS + 60)) "$ISERINIT" bench --rw "$rw" --bs "$bs" --qd "$qd" \
		--time "$SECS" --json "$url" >"$W/out" 2>"$W/err" || true
	t1=$(cpu_ticks "$pid")
	python3 - "$W/out" "$W/err" "$r" "$c" "$name" "$t0" "$t1" "$HZ" "$RES" <<-'EOF'
		import json, sys
		out, err, r, c, name, t0, t1, hz, res = sys.argv[1:]
		t0, t1, hz = int(t0), int(t1), int(hz)
		head = "round %s %-18s %-15s" % (r, c, name)
		try:
		    j = json.load(open(out))
		    assert t0 >= 0 and t1 >= 0, "the target process is gone"
		    assert j["errors"] == 0, "%d errors" % j["errors"]
		    assert j["ios"] > 0, "no I/O"
		    cpu_s = (t1 - t0) / hz
		    cpu = cpu_s * 1e6 / j["ios"]
		    print("%s IOPS %8.0f  MiB/s %7.1f  cpu_us/io %6.2f  p50 %8.1f  p99 %8.1f" %
		          (head, j["iops"], j["mib_s"], cpu, j["lat_us"]["p50"], j["lat_us"]["p99"]))
		    with open(res, "a") as f:
		        f.write("%s\t%s\t%f\t%f\t%f\n" % (c, name, j["iops"], j["mib_s"], cpu))
		except Exception as e:
		    msg = open(err).read().strip().splitlines()
		    print("%s FAILED: %s %s" % (head, e, msg[-1] if msg else ""))
	EOF
}

echo "# iserinit bench on 127.0.0.1, ${SECS}s per run, $ROUNDS rounds, $(nproc) CPUs, $(date -u +%FT%TZ)"
echo "# $(uname -r); iserd $("$ISERD" --version 2>&1 | head -1); tgt $(tgtd --version 2>&1 | head -1 || true)"
echo "# LUNs: $SIZE loop devices (--direct-io=on, 512-byte sectors) over files in $DIR ($(df -T "$DIR" | awk 'NR == 2 { print $2 }')), written in full first"
echo "# cpu_us/io: target process utime+stime over the run / I/Os completed"
n=${#TARGETS[@]}
for r in $(seq "$ROUNDS"); do
	for cs in $CASES; do
		IFS=: read -r c rw bs qd <<<"$cs"
		for i in $(seq 0 $((n - 1))); do
			IFS='|' read -r name pid url <<<"${TARGETS[$(((i + r - 1) % n))]}"
			run "$r" "$c" "$rw" "$bs" "$qd" "$name" "$pid" "$url"
		done
	done
done
echo "# end $(date -u +%FT%TZ)"

python3 - "$RES" "$CASES" "${TARGETS[@]}" <<-'EOF'
	import statistics, sys
	res, cases = sys.argv[1:3]
	targets = [t.split("|")[0] for t in sys.argv[3:]]
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
	def ratio(a, b):
	    return "%.2f" % (a / b) if a is not None and b else "-"
	print("# medians")
	print("%-18s %-15s %9s %8s %10s" % ("case", "target", "IOPS", "MiB/s", "cpu_us/io"))
	for c in cases:
	    for t in targets:
	        print("%-18s %-15s %9s %8s %10s" % (c, t, f(med(c, t, 0), "%.0f"),
	              f(med(c, t, 1), "%.1f"), f(med(c, t, 2), "%.2f")))
	print("# ratios of the medians: iserd-direct / each (IOPS above 1: iserd-direct faster;"
	      " cpu_us/io below 1: iserd-direct spends less)")
	print("%-18s %-15s %7s %9s" % ("case", "against", "IOPS", "cpu/io"))
	for c in cases:
	    for t in targets[1:]:
	        print("%-18s %-15s %7s %9s" % (c, t, ratio(med(c, "iserd-direct", 0), med(c, t, 0)),
	              ratio(med(c, "iserd-direct", 2), med(c, t, 2))))
EOF
