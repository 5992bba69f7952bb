#!/bin/bash
# RBD gateways side by side on one one-node Ceph cluster (tests/lib/ceph.sh: a monitor
# and a memstore OSD started here as this user, cephx on): in the same run, on the same
# image,
#   rbd-bench   `rbd bench` (librbd in the client process itself: the ceiling, no iSCSI)
#   iserd       iserd's rbd: store (librbd aio, completions on the reactor's eventfd)
#   tgt         tgtd's rbd backing store (tgt-rbd, bs_rbd.so: librbd behind tgt's
#               I/O threads)
# The two gateways are driven by the same initiator (iserinit bench) over iSCSI/TCP on
# 127.0.0.1, at the same queue depth for the same time; rbd bench gets the same I/O size
# and as many I/Os in flight (--io-threads), and an --io-total sized from the previous
# round's rate so that its run lasts about as long. Cases: 4 KiB random read and write
# QD32, 128 KiB sequential read and write QD8. Each round runs every case on every one
# of the three, the order rotated from round to round.
#
# The image (SIZE, default 1G) is written in full by rbd bench before the runs, so that
# reads read objects that exist. Each gateway opens it with a cephx user of its own
# (client.iserd, client.tgt: "profile rbd"); rbd bench runs as client.admin. tgt finds
# the cluster through --bsopts "conf=...;id=tgt", nothing in /etc/ceph is read or
# written. The three take the image's exclusive lock in turn (one at a time writes).
#
# CPU per I/O is the gateway process's utime+stime (/proc/PID/stat, all its threads:
# librbd's and librados's included) over the run, divided by the I/Os the initiator
# completed; for rbd bench it is the rbd process's own CPU (getrusage of the child),
# i.e. what librbd alone costs a client. The OSD's CPU per I/O is a column of its own.
# Login and logout are inside the run for the gateways.
#
# Usage: bench/rbd.sh [SECONDS_PER_RUN] [ROUNDS] > bench/results/rbd-DATE.txt
# Needs: a release build with the rbd: store (librbd-dev), the ceph packages and tgt,
# tgt-rbd (scripts/deps.sh --lab), python3. Nothing here is asserted.
set -euo pipefail
SECS=${1:-10}
ROUNDS=${2:-3}
SRC=$(cd "$(dirname "$0")/.." && pwd)
ISERD=${ISERD:-$SRC/build/release/iserd}
ISERINIT=${ISERINIT:-$SRC/build/release/iserinit}
SIZE=${SIZE:-1G}
IQN=iqn.2026-11.org.iserd:rbdbench
# iserd, tgt (its management channel on the same number)
PORT=${PORT:-3481}
P_ISERD=$PORT
P_TGT=$((PORT + 1))

# shellcheck source=bench/lib.sh
. "$SRC/bench/lib.sh"
# shellcheck source=tests/lib/ceph.sh
. "$SRC/tests/lib/ceph.sh"
bench_init iserd-rbd
# the gateways first, then the cluster; $W goes last (bench_cleanup)
rbd_cleanup() {
	local p alive
	set +e
	[ -z "$TGT_CTL" ] || tgtadm -C "$TGT_CTL" --op delete --mode system >/dev/null 2>&1
	TGT_CTL=
	for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null; done
	for _ in $(seq 50); do
		alive=0
		for p in "${PIDS[@]}"; do kill -0 "$p" 2>/dev/null && alive=1; done
		[ $alive = 1 ] || break
		sleep 0.1
	done
	# tgtd ignores SIGTERM; still by PID
	for p in "${PIDS[@]}"; do kill -9 "$p" 2>/dev/null; done
	isd_ceph_stop
	bench_cleanup
}
trap rbd_cleanup EXIT
bench_need tgtd tgtadm rbd python3
[ -f /usr/lib/tgt/backing-store/bs_rbd.so ] ||
	{ echo "bench: tgt's rbd backing store is missing (tgt-rbd, scripts/deps.sh --lab)" >&2; exit 1; }
for b in "$ISERD" "$ISERINIT"; do
	[ -x "$b" ] || { echo "bench: no binary $b (release build?)" >&2; exit 1; }
done
case "$("$ISERD" --help 2>&1)" in *rbd:POOL*) ;; *)
	echo "bench: $ISERD was built without the rbd: store (librbd-dev)" >&2; exit 1 ;;
esac
HZ=$(getconf CLK_TCK)

# --- the cluster and the image ----------------------------------------------------------
rc=0
isd_ceph_start "$W/ceph" >&2 || rc=$?
[ $rc = 0 ] || { echo "bench: the one-node Ceph cluster did not start ($rc)" >&2; exit 1; }
CONF=$ISD_CEPH_CONF
POOL=$ISD_CEPH_POOL
IMG=$POOL/bench
PID_OSD=${ISD_CEPH_PIDS[1]}
isd_ceph ceph auth get-or-create client.tgt mon 'profile rbd' osd "profile rbd pool=$POOL" \
	-o "$W/ceph/client.tgt.keyring" >/dev/null
isd_ceph rbd create --size "$SIZE" "$IMG"
isd_ceph rbd bench --io-type write --io-size 4M --io-threads 4 --io-pattern seq \
	--io-total "$SIZE" "$IMG" >"$W/fill.out" 2>&1 ||
	{ echo "bench: filling the image failed:" >&2; tail -n 5 "$W/fill.out" >&2; exit 1; }

# --- gateways ---------------------------------------------------------------------------
iserd_start "$W/iserd.log" "$ISERD" --portal tcp://127.0.0.1:"$P_ISERD" --target $IQN \
	--lun "rbd:$IMG,conf=$CONF,id=$ISD_CEPH_CLIENT"
PID_ISERD=$LAST_PID

tgtd -f -C "$P_TGT" --iscsi portal=127.0.0.1:"$P_TGT" >"$W/tgtd.log" 2>&1 &
PID_TGT=$!
PIDS+=("$PID_TGT")
TGT_CTL=$P_TGT
for _ in $(seq 50); do tgtadm -C "$P_TGT" --op show --mode system >/dev/null 2>&1 && break; sleep 0.1; done
tgtadm -C "$P_TGT" --lld iscsi --op new --mode target --tid 1 -T $IQN
tgtadm -C "$P_TGT" --lld iscsi --op new --mode logicalunit --tid 1 --lun 1 --bstype rbd \
	--backing-store "$IMG" --bsopts "conf=$CONF;id=tgt" ||
	{ echo "bench: tgt cannot open $IMG; tgtd.log:" >&2; tail -n 20 "$W/tgtd.log" >&2; exit 1; }
tgtadm -C "$P_TGT" --lld iscsi --op bind --mode target --tid 1 -I ALL

# name|pid|url ("-" for rbd bench), in the order of the first round
TARGETS=("rbd-bench|-|-" "iserd|$PID_ISERD|iscsi://127.0.0.1:$P_ISERD/$IQN/0"
	"tgt|$PID_TGT|iscsi://127.0.0.1:$P_TGT/$IQN/1")
for t in "${TARGETS[@]:1}"; do
	IFS='|' read -r name pid url <<<"$t"
	ok=0
	for _ in $(seq 100); do
		"$ISERINIT" readcap "$url" >/dev/null 2>&1 && { ok=1; break; }
		sleep 0.1
	done
	[ $ok = 1 ] || { echo "bench: $name ($url) does not answer; logs:" >&2; tail -n 5 "$W"/*.log >&2; exit 1; }
done

# cpu_ticks PID: utime+stime of the whole process, in clock ticks (-1 once it is gone)
cpu_ticks() {
	local s
	s=$(cat "/proc/$1/stat" 2>/dev/null) || { echo -1; return; }
	echo "${s##*) }" | awk '{ print $12 + $13 }'
}

# --- runs -------------------------------------------------------------------------------
# name:rbd-bench type:rbd-bench pattern:iserinit rw:bs:qd
CASES="rand4k_read_qd32:read:rand:randread:4096:32 rand4k_write_qd32:write:rand:randwrite:4096:32
	seq128k_read_qd8:read:seq:read:131072:8 seq128k_write_qd8:write:seq:write:131072:8"
RES=$W/results.tsv
: >"$RES"
declare -A LAST_IOPS

# run ROUND CASE TYPE PATTERN RW BS QD TARGET PID URL: one run; prints its line and appends
# "case target iops mib_s cpu_us_per_io osd_cpu_us_per_io p50 p99" to $RES when it succeeded
run() {
	local r=$1 c=$2 type=$3 pat=$4 rw=$5 bs=$6 qd=$7 name=$8 pid=$9 url=${10} t0 t1 o0 o1 total v
	o0=$(cpu_ticks "$PID_OSD")
	if [ "$name" = rbd-bench ]; then
		# as many I/Os as the last round's rate gives in SECS (first round: a guess), whole
		# multiples of the I/O size; rbd bench prints its own rate
		total=$(python3 -c "import sys; i, s, bs = float(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]); print(max(int(i * s), 2000) * bs)" \
			"${LAST_IOPS[$c]:-$((bs == 4096 ? 10000 : 2000))}" "$SECS" "$bs")
		t0=0
		timeout $((SECS * 6 + 60)) python3 -c 'import resource, subprocess, sys
r = subprocess.run(sys.argv[2:], stdout=open(sys.argv[1], "w"), stderr=subprocess.STDOUT)
u = resource.getrusage(resource.RUSAGE_CHILDREN)
print("%d %.6f" % (r.returncode, u.ru_utime + u.ru_stime))' "$W/out" \
			rbd -c "$CONF" --id admin bench --io-type "$type" --io-size "$bs" \
			--io-threads "$qd" --io-pattern "$pat" --io-total "$total" "$IMG" >"$W/err" 2>&1 || true
		t1=$(awk '{ print $2 }' "$W/err")
	else
		t0=$(cpu_ticks "$pid")
		timeout $((SECS + 60)) "$ISERINIT" bench --rw "$rw" --bs "$bs" --qd "$qd" \
			--time "$SECS" --json "$url" >"$W/out" 2>"$W/err" || true
		t1=$(cpu_ticks "$pid")
	fi
	o1=$(cpu_ticks "$PID_OSD")
	python3 - "$W/out" "$W/err" "$r" "$c" "$name" "$t0" "$t1" "$HZ" "$RES" "$o0" "$o1" "$bs" <<-'EOF'
		import json, re, sys
		out, err, r, c, name, t0, t1, hz, res, o0, o1, bs = sys.argv[1:]
		hz, bs = int(hz), int(bs)
		head = "round %s %-18s %-10s" % (r, c, name)
		try:
		    if name == "rbd-bench":
		        rc, cpu_s = open(err).read().split()
		        assert rc == "0", "rbd bench exit status %s: %s" % (rc, open(out).read().strip().splitlines()[-1:])
		        cpu_s = float(cpu_s)
		        m = re.findall(r"elapsed:\s*([\d.]+)\s+ops:\s*(\d+)\s+ops/sec:\s*([\d.]+)", open(out).read())
		        assert m, "no summary line from rbd bench"
		        el, ios, iops = float(m[-1][0]), int(m[-1][1]), float(m[-1][2])
		        j = {"ios": ios, "iops": iops, "mib_s": iops * bs / 1048576,
		             "lat_us": {"p50": float("nan"), "p99": float("nan")}}
		        extra = "%.0f s, rbd cpu %.2f s" % (el, cpu_s)
		    else:
		        t0, t1 = int(t0), int(t1)
		        j = json.load(open(out))
		        assert t0 >= 0 and t1 >= 0, "the gateway process is gone"
		        assert j["errors"] == 0, "%d errors (%s)" % (j["errors"], j.get("error", "?"))
		        assert j["ios"] > 0, "no I/O"
		        cpu_s = (t1 - t0) / hz
		        extra = "gateway cpu %.2f s" % cpu_s
		    cpu = cpu_s * 1e6 / j["ios"]
		    osd = (int(o1) - int(o0)) / hz * 1e6 / j["ios"]
		    lat = j["lat_us"]
		    print("%s IOPS %8.0f  MiB/s %7.1f  cpu_us/io %7.2f  osd_us/io %7.2f  p50 %7.1f  p99 %8.1f  "
		          "(%d I/Os, %s)" % (head, j["iops"], j["mib_s"], cpu, osd, lat["p50"], lat["p99"],
		          j["ios"], extra))
		    with open(res, "a") as f:
		        f.write("%s\t%s\t%f\t%f\t%f\t%f\t%f\t%f\n" % (c, name, j["iops"], j["mib_s"], cpu, osd,
		                lat["p50"], lat["p99"]))
		except Exception as e:
		    msg = open(err).read().strip().splitlines()
		    print("%s FAILED: %s %s" % (head, e, msg[-1] if msg else ""))
	EOF
	if [ "$name" = rbd-bench ]; then
		v=$(awk -v c="$c" -F'\t' '$1 == c && $2 == "rbd-bench" { v = $3 } END { print v }' "$RES")
		[ -z "$v" ] || LAST_IOPS[$c]=$v
	fi
}

echo "# bench/rbd.sh $SECS $ROUNDS: one-node Ceph $(ceph --version 2>/dev/null | awk '{ print $3 }') (mon + memstore OSD, 127.0.0.1), image $IMG of $SIZE written in full first"
echo "# ${SECS}s per run, $ROUNDS rounds, $(nproc) CPUs, $(date -u +%FT%TZ), load average $(cut -d' ' -f1-3 /proc/loadavg)"
echo "# $(uname -r); $(grep -m1 'model name' /proc/cpuinfo | sed 's/.*: //')"
echo "# iserd $("$ISERD" --version 2>&1 | head -1) ($ISERD, --lun rbd:$IMG,conf=...,id=$ISD_CEPH_CLIENT)"
echo "# tgt $(dpkg-query -W -f '${Version}' tgt-rbd 2>/dev/null || echo '?') (tgtd, --bstype rbd --bsopts conf=...;id=tgt); initiator $("$ISERINIT" --version 2>&1 | head -1)"
echo "# rbd bench: same --io-size, --io-threads = QD, --io-total = its last round's rate x ${SECS}s (round 0, a warm-up not counted, sizes round 1)"
echo "# cpu_us/io: gateway process utime+stime over the run (rbd bench: the rbd process's) / I/Os;"
echo "# osd_us/io: ceph-osd's utime+stime over the run / I/Os; p50/p99: iserinit's latency, us (rbd bench: none)"
# round 0: rbd bench alone, not counted, to size its --io-total for round 1
RES_ALL=$RES
RES=$W/warmup.tsv
for cs in $CASES; do
	IFS=: read -r c type pat rw bs qd <<<"$cs"
	run 0 "$c" "$type" "$pat" "$rw" "$bs" "$qd" rbd-bench - - >"$W/warmup.out"
	sed 's/^/# warm-up: /' "$W/warmup.out"
done
RES=$RES_ALL
n=${#TARGETS[@]}
for r in $(seq "$ROUNDS"); do
	for cs in $CASES; do
		IFS=: read -r c type pat rw bs qd <<<"$cs"
		for i in $(seq 0 $((n - 1))); do
			IFS='|' read -r name pid url <<<"${TARGETS[$(((i + r - 1) % n))]}"
			run "$r" "$c" "$type" "$pat" "$rw" "$bs" "$qd" "$name" "$pid" "$url"
		done
	done
done
echo "# end $(date -u +%FT%TZ), load average $(cut -d' ' -f1-3 /proc/loadavg)"

# --- summary ----------------------------------------------------------------------------
python3 - "$RES" "$CASES" <<-'EOF'
	import statistics, sys
	res, cases = sys.argv[1:3]
	targets = ["rbd-bench", "iserd", "tgt"]
	cases = [c.split(":")[0] for c in cases.split()]
	rows = {}
	for line in open(res):
	    c, t, *v = line.split("\t")
	    rows.setdefault((c, t), []).append([float(x) for x in v])
	def med(c, t, k):
	    v = rows.get((c, t))
	    return statistics.median(x[k] for x in v) if v else None
	IOPS, MIBS, CPU, OSD, P50, P99 = range(6)
	def f(x, fmt):
	    return fmt % x if x is not None and x == x else "-"
	print("# medians per case (failed runs left out; n = runs that count)")
	print("%-18s %-10s %9s %8s %10s %10s %8s %9s %2s" %
	      ("case", "who", "IOPS", "MiB/s", "cpu_us/io", "osd_us/io", "p50_us", "p99_us", "n"))
	for c in cases:
	    for t in targets:
	        print("%-18s %-10s %9s %8s %10s %10s %8s %9s %2d" % (c, t, f(med(c, t, IOPS), "%.0f"),
	              f(med(c, t, MIBS), "%.1f"), f(med(c, t, CPU), "%.2f"), f(med(c, t, OSD), "%.2f"),
	              f(med(c, t, P50), "%.1f"), f(med(c, t, P99), "%.1f"), len(rows.get((c, t), []))))
	def ratio(a, b):
	    return "%.2f" % (a / b) if a is not None and b else "-"
	print("# ratios of the medians: IOPS above 1 = iserd faster (iserd/rbd-bench: the share of the"
	      " ceiling iserd reaches); cpu/io below 1 = iserd spends less CPU per I/O than tgt"
	      " (iserd/rbd-bench: the gateway's whole cost over librbd's own in a client)")
	print("%-18s %11s %11s %14s %14s" % ("case", "IOPS/tgt", "cpu/io/tgt", "IOPS/rbdbench",
	      "cpu/io/rbdbench"))
	for c in cases:
	    print("%-18s %11s %11s %14s %14s" % (c, ratio(med(c, "iserd", IOPS), med(c, "tgt", IOPS)),
	          ratio(med(c, "iserd", CPU), med(c, "tgt", CPU)),
	          ratio(med(c, "iserd", IOPS), med(c, "rbd-bench", IOPS)),
	          ratio(med(c, "iserd", CPU), med(c, "rbd-bench", CPU))))
EOF
