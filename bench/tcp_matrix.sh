#!/bin/bash
# iSCSI/TCP targets side by side on loopback, with the CPU each one spends per I/O:
# iserd, tgt (tgtd) and istgt in the same run on the same machine, every run made by
# the same initiator (our iserinit bench). Each target serves a file on tmpfs (iserd's
# io_uring file store, tgt's rdwr backing store, istgt's file extent); iserd's RAM LUN
# is an extra row. Cases: 4 KiB random read and write QD32, 128 KiB sequential read and
# write QD8, 16 sessions x QD8 of 4 KiB random reads, and QD1 4 KiB random reads for
# latency. Each round runs every case on every target, the targets' order rotated from
# round to round.
#
# CPU per I/O is the target process's utime+stime (/proc/PID/stat fields 14 and 15: all
# its threads, those that exited included) over the run, divided by the I/Os the
# initiator completed: the whole process, because the peers spend their CPU in threads
# of their own (tgt's I/O threads, istgt's per-connection and per-LU threads) and a
# per-thread view would miss some of it. Login and logout are inside the run for all.
#
# With ISERD_B=/path/to/another/iserd (an earlier build), that one runs too, on its own
# port with the same LUNs, and the summary adds the ratios iserd/iserd_B (before/after).
#
# Usage: bench/tcp_matrix.sh [SECONDS_PER_RUN] [ROUNDS] > bench/results/NAME.txt
# Needs: a release build (cmake --preset release && cmake --build --preset release),
# tgt and istgt (scripts/deps.sh --lab), python3. Prints one line per run, then the
# medians per target and case and the ratios iserd/best peer. Nothing here is asserted.
set -euo pipefail
SECS=${1:-5}
ROUNDS=${2:-2}
SRC=$(cd "$(dirname "$0")/.." && pwd)
ISERD=${ISERD:-$SRC/build/release/iserd}
ISERINIT=${ISERINIT:-$SRC/build/release/iserinit}
ISERD_B=${ISERD_B:-}
SIZE=${SIZE:-1G}
IQN=iqn.2026-11.org.iserd:bench
# iserd, iserd_B, tgt, istgt: ports PORT .. PORT+3 (tcp_loopback.sh uses 3461-3464)
PORT=${PORT:-3471}
P_ISERD=$PORT
P_ISERD_B=$((PORT + 1))
P_TGT=$((PORT + 2))
P_ISTGT=$((PORT + 3))

# shellcheck source=bench/lib.sh
. "$SRC/bench/lib.sh"
bench_init iserd-matrix
bench_need tgtd tgtadm istgt python3
for b in "$ISERD" "$ISERINIT" ${ISERD_B:+"$ISERD_B"}; do
	[ -x "$b" ] || { echo "bench: no binary $b (release build?)" >&2; exit 1; }
done
HZ=$(getconf CLK_TCK)

# Every LUN is written in full before the runs: reading a hole in tmpfs (or a page of
# iserd's RAM LUN never touched) is not reading a page, and the first write to one
# allocates it; every target should read and write pages that are there.
lun_file() {
	dd if=/dev/zero of="$1" bs=1M count=$(($(numfmt --from=iec "$SIZE") / 1048576)) status=none
}

# --- targets ----------------------------------------------------------------------------
lun_file "$W/iserd.img"
iserd_start "$W/iserd.log" "$ISERD" --portal tcp://127.0.0.1:"$P_ISERD" --target $IQN \
	--lun "file:$W/iserd.img" --lun "ram:$SIZE"
PID_ISERD=$LAST_PID
if [ -n "$ISERD_B" ]; then
	lun_file "$W/iserd_b.img"
	iserd_start "$W/iserd_b.log" "$ISERD_B" --portal tcp://127.0.0.1:"$P_ISERD_B" --target $IQN \
		--lun "file:$W/iserd_b.img" --lun "ram:$SIZE"
	PID_ISERD_B=$LAST_PID
fi
lun_file "$W/tgt.img"
tgt_start "$P_TGT" "$P_TGT" $IQN "$W/tgt.img"
PID_TGT=$LAST_PID

# istgt: everything it reads and writes in $W; no CHAP, no unit-control portal; 64
# sessions and a queue of 64 so that neither the 16-session case nor QD32 waits on them.
# The iSCSI keys are its example's (they are also its defaults).
lun_file "$W/istgt.img"
cat >"$W/istgt-auth.conf" <<EOF
[AuthGroup1]
  Comment "unused: no CHAP in this benchmark"
EOF
cat >"$W/istgt.conf" <<EOF
[Global]
  NodeBase "iqn.2026-11.org.iserd"
  PidFile $W/istgt.pid
  AuthFile $W/istgt-auth.conf
  MediaDirectory $W
  Timeout 30
  NopInInterval 20
  DiscoveryAuthMethod None
  MaxSessions 64
  MaxConnections 4
  MaxR2T 32
  MaxOutstandingR2T 16
  DefaultTime2Wait 2
  DefaultTime2Retain 60
  FirstBurstLength 262144
  MaxBurstLength 1048576
  MaxRecvDataSegmentLength 262144
  InitialR2T Yes
  ImmediateData Yes
  DataPDUInOrder Yes
  DataSequenceInOrder Yes
  ErrorRecoveryLevel 0
[UnitControl]
  AuthMethod None
[PortalGroup1]
  Portal DA1 127.0.0.1:$P_ISTGT
[InitiatorGroup1]
  InitiatorName "ALL"
  Netmask 127.0.0.1
[LogicalUnit1]
  TargetName $IQN
  Mapping PortalGroup1 InitiatorGroup1
  AuthMethod None
  UseDigest Auto
  UnitType Disk
  QueueDepth 64
  LUN0 Storage $W/istgt.img $(($(numfmt --from=iec "$SIZE") / 1048576))MB
EOF
istgt -c "$W/istgt.conf" -D >"$W/istgt.log" 2>&1 &
PID_ISTGT=$!
PIDS+=("$PID_ISTGT")

# name|pid|url, in the order of the first round
TARGETS=("iserd-file|$PID_ISERD|iscsi://127.0.0.1:$P_ISERD/$IQN/0"
	"iserd-ram|$PID_ISERD|iscsi://127.0.0.1:$P_ISERD/$IQN/1")
if [ -n "$ISERD_B" ]; then
	TARGETS+=("iserd_B-file|$PID_ISERD_B|iscsi://127.0.0.1:$P_ISERD_B/$IQN/0"
		"iserd_B-ram|$PID_ISERD_B|iscsi://127.0.0.1:$P_ISERD_B/$IQN/1")
fi
TARGETS+=("tgt-file|$PID_TGT|iscsi://127.0.0.1:$P_TGT/$IQN/1"
	"istgt-file|$PID_ISTGT|iscsi://127.0.0.1:$P_ISTGT/$IQN/0")
for t in "${TARGETS[@]}"; do
	IFS='|' read -r name pid url <<<"$t"
	ok=0
	for _ in $(seq 50); do
		"$ISERINIT" readcap "$url" >/dev/null 2>&1 && { ok=1; break; }
		sleep 0.1
	done
	[ $ok = 1 ] || { echo "bench: $name ($url) does not answer; logs:" >&2; tail -n 5 "$W"/*.log >&2; exit 1; }
	# iserd's RAM LUN maps its memory on first touch: write it once, as the files were
	case $name in
	*-ram) head -c "$(numfmt --from=iec "$SIZE")" /dev/zero | "$ISERINIT" write "$url" >/dev/null ;;
	esac
done

# cpu_ticks PID: utime+stime of the whole process, in clock ticks (-1 once it is gone)
cpu_ticks() {
	local s
	s=$(cat "/proc/$1/stat" 2>/dev/null) || { echo -1; return; }
	# the fields after "comm)": state is field 3, so utime (14) and stime (15) are $12, $13
	echo "${s##*) }" | awk '{ print $12 + $13 }'
}

# --- runs -------------------------------------------------------------------------------
# name:rw:bs:qd:sessions
CASES="rand4k_read_qd32:randread:4096:32:1 rand4k_write_qd32:randwrite:4096:32:1
	seq128k_read_qd8:read:131072:8:1 seq128k_write_qd8:write:131072:8:1
	rand4k_read_16x8:randread:4096:8:16 lat4k_read_qd1:randread:4096:1:1"
RES=$W/results.tsv
: >"$RES"

# run ROUND CASE RW BS QD SESSIONS TARGET PID URL: one iserinit bench run; prints its line
# and appends "case target iops mib_s cpu_us_per_io p50 p99" to $RES when it succeeded
run() {
	local r=$1 c=$2 rw=$3 bs=$4 qd=$5 ns=$6 name=$7 pid=$8 url=$9 t0 t1
	t0=$(cpu_ticks "$pid")
	timeout $((SECS + 60)) "$ISERINIT" bench --rw "$rw" --bs "$bs" --qd "$qd" --sessions "$ns" \
		--time "$SECS" --json "$url" >"$W/out" 2>"$W/err" || true
	t1=$(cpu_ticks "$pid")
	python3 - "$W/out" "$W/err" "$r" "$c" "$name" "$t0" "$t1" "$HZ" "$RES" <<-'EOF'
		import json, sys
		out, err, r, c, name, t0, t1, hz, res = sys.argv[1:]
		t0, t1, hz = int(t0), int(t1), int(hz)
		head = "round %s %-18s %-12s" % (r, c, name)
		try:
		    j = json.load(open(out))
		    assert t0 >= 0 and t1 >= 0, "the target process is gone"
		    assert j["errors"] == 0, "%d errors (%s)" % (j["errors"], j.get("error", "?"))
		    assert j["ios"] > 0, "no I/O"
		    cpu_s = (t1 - t0) / hz
		    cpu = cpu_s * 1e6 / j["ios"]
		    lat = j["lat_us"]
		    print("%s IOPS %8.0f  MiB/s %7.1f  cpu_us/io %6.2f  p50 %7.1f  p99 %7.1f  "
		          "(%d I/Os, target cpu %.2f s)" % (head, j["iops"], j["mib_s"], cpu,
		          lat["p50"], lat["p99"], j["ios"], cpu_s))
		    with open(res, "a") as f:
		        f.write("%s\t%s\t%f\t%f\t%f\t%f\t%f\n" % (c, name, j["iops"], j["mib_s"], cpu,
		                lat["p50"], lat["p99"]))
		except Exception as e:
		    msg = open(err).read().strip().splitlines()
		    print("%s FAILED: %s %s" % (head, e, msg[-1] if msg else ""))
	EOF
}

echo "# iserinit bench on 127.0.0.1, ${SECS}s per run, $ROUNDS rounds, $(nproc) CPUs, $(date -u +%FT%TZ), load average $(cut -d' ' -f1-3 /proc/loadavg)"
echo "# $(uname -r); $(grep -m1 'model name' /proc/cpuinfo | sed 's/.*: //')"
echo "# iserd $("$ISERD" --version 2>&1 | head -1) ($ISERD)${ISERD_B:+; iserd_B $("$ISERD_B" --version 2>&1 | head -1) ($ISERD_B)}"
echo "# tgt $(tgtd --version 2>&1 | head -1 || true); istgt $(dpkg-query -W -f '${Version}' istgt 2>/dev/null || echo '?'); initiator $("$ISERINIT" --version 2>&1 | head -1)"
echo "# LUNs: $SIZE files on tmpfs (iserd file store, tgt rdwr, istgt file extent) and iserd-ram, iserd's RAM LUN; all written in full before the runs"
echo "# cpu_us/io: target process utime+stime over the run (1/$HZ s ticks) / I/Os completed; p50/p99: iserinit's latency, us"
n=${#TARGETS[@]}
for r in $(seq "$ROUNDS"); do
	for cs in $CASES; do
		IFS=: read -r c rw bs qd ns <<<"$cs"
		for i in $(seq 0 $((n - 1))); do
			IFS='|' read -r name pid url <<<"${TARGETS[$(((i + r - 1) % n))]}"
			run "$r" "$c" "$rw" "$bs" "$qd" "$ns" "$name" "$pid" "$url"
		done
	done
done
echo "# end $(date -u +%FT%TZ), load average $(cut -d' ' -f1-3 /proc/loadavg)"

# --- summary ----------------------------------------------------------------------------
python3 - "$RES" "$CASES" "$ISERD_B" "${TARGETS[@]}" <<-'EOF'
	import statistics, sys
	res, cases, has_b = sys.argv[1:4]
	targets = [t.split("|")[0] for t in sys.argv[4:]]
	cases = [c.split(":")[0] for c in cases.split()]
	rows = {}
	for line in open(res):
	    c, t, *v = line.split("\t")
	    rows.setdefault((c, t), []).append([float(x) for x in v])
	def med(c, t, k):
	    v = rows.get((c, t))
	    return statistics.median(x[k] for x in v) if v else None
	IOPS, MIBS, CPU, P50, P99 = range(5)
	def f(x, fmt):
	    return fmt % x if x is not None else "-"
	print("# medians per case and target (failed runs left out; n = runs that count)")
	print("%-18s %-12s %9s %8s %10s %8s %8s %2s" %
	      ("case", "target", "IOPS", "MiB/s", "cpu_us/io", "p50_us", "p99_us", "n"))
	for c in cases:
	    for t in targets:
	        print("%-18s %-12s %9s %8s %10s %8s %8s %2d" % (c, t, f(med(c, t, IOPS), "%.0f"),
	              f(med(c, t, MIBS), "%.1f"), f(med(c, t, CPU), "%.2f"), f(med(c, t, P50), "%.1f"),
	              f(med(c, t, P99), "%.1f"), len(rows.get((c, t), []))))
	def ratio(a, b):
	    return "%.2f" % (a / b) if a is not None and b else "-"
	peers = [t for t in targets if not t.startswith("iserd")]
	print("# ratios of the medians, iserd / best peer (%s): IOPS against the peer with the most"
	      " (above 1: iserd faster), cpu_us/io against the one with the least (below 1: iserd"
	      " spends less CPU per I/O); latency case also p50 and p99 against the one with the"
	      " lowest p50 (below 1: iserd faster)" % ", ".join(peers))
	print("%-18s %-5s %7s %-13s %9s %-13s %7s %7s" %
	      ("case", "lun", "IOPS", "(peer)", "cpu/io", "(peer)", "p50", "p99"))
	for c in cases:
	    got = [p for p in peers if med(c, p, IOPS) is not None]
	    bi = max(got, key=lambda p: med(c, p, IOPS)) if got else None
	    bc = min(got, key=lambda p: med(c, p, CPU)) if got else None
	    bl = min(got, key=lambda p: med(c, p, P50)) if got else None
	    for lun in ("file", "ram"):
	        t = "iserd-" + lun
	        lat = ("", "")
	        if c.startswith("lat"):
	            lat = (ratio(med(c, t, P50), med(c, bl, P50) if bl else None),
	                   ratio(med(c, t, P99), med(c, bl, P99) if bl else None))
	        print("%-18s %-5s %7s %-13s %9s %-13s %7s %7s" % (c, lun,
	              ratio(med(c, t, IOPS), med(c, bi, IOPS) if bi else None), "(%s)" % bi,
	              ratio(med(c, t, CPU), med(c, bc, CPU) if bc else None), "(%s)" % bc, *lat))
	if has_b:
	    print("# iserd / iserd_B (%s): ratios of the medians" % has_b)
	    print("%-18s %-5s %7s %9s %7s %7s" % ("case", "lun", "IOPS", "cpu/io", "p50", "p99"))
	    for c in cases:
	        for lun in ("file", "ram"):
	            a, b = "iserd-" + lun, "iserd_B-" + lun
	            print("%-18s %-5s %7s %9s %7s %7s" % (c, lun, ratio(med(c, a, IOPS), med(c, b, IOPS)),
	                  ratio(med(c, a, CPU), med(c, b, CPU)), ratio(med(c, a, P50), med(c, b, P50)),
	                  ratio(med(c, a, P99), med(c, b, P99))))
EOF
