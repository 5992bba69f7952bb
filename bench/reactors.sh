#!/bin/bash
# iserd with one reactor against iserd with N, side by side in the same run on the same
# machine: the target-bound cases the multi-reactor work is for. Each instance serves a RAM
# LUN (the store costs least there, so the target's own work is what is measured); the
# initiator is our iserinit bench with many sessions, which spreads them over the reactors
# (a connection is placed on the reactor with the fewest at accept).
#
# Cases: 16 sessions x QD8 of 4 KiB random reads and of 4 KiB random writes, 8 sessions
# x QD4 of 128 KiB sequential reads, and one session at QD32 of 4 KiB random reads (which
# one reactor carries whatever N is: the cost of N for a single session). Each round runs
# every case on both instances, their order swapped from round to round.
#
# CPU per I/O is the iserd process's utime+stime over the run (/proc/PID/stat) divided by
# the I/Os completed. On a machine with few cores the initiator competes with the
# reactors for them: the header says how many there are, and the ratio is only the
# target's scaling where the initiator is not the bottleneck (compare its own CPU, shown
# as init_cpu_s, with the run time).
#
# Usage: bench/reactors.sh [SECONDS_PER_RUN] [ROUNDS] [N] > bench/results/NAME.txt
# STORE=file serves a file on tmpfs (/dev/shm, one per instance) instead of the RAM LUN:
# the file store's io_uring path, and its write gate, on N reactors.
# N defaults to the number of CPUs (at least 2). REACTOR_CPUS, when set, pins the N
# instance's reactors (--reactor-cpus) and the one-reactor instance to its first CPU.
#
# One iserinit is one thread: at about 1.5 us of CPU per 4 KiB I/O it saturates its core
# near 600K IOPS, below what a few reactors serve. So on a machine with cores to spare,
# give the initiators cores of their own and several processes: INIT_PROCS=P runs P
# iserinit bench processes at once, the sessions dealt out among them (each at least
# one), their I/Os and rates summed, their p50 and p99 the highest of the P; INIT_CPUS
# (a CPU list) pins process k to its k-th CPU (wrapping). For example, on 16 CPUs:
#   REACTOR_CPUS=0-3 INIT_CPUS=4-15 INIT_PROCS=12 bench/reactors.sh 5 3 4
# The header prints the initiators' CPU use: where it nears INIT_PROCS whole cores (or
# the CPUs they share with iserd), the initiators are the limit, not the reactors.
# Needs a release build (cmake --preset release && cmake --build --preset release),
# python3 and, with a CPU list, taskset. Nothing here is asserted.
set -euo pipefail
SECS=${1:-5}
ROUNDS=${2:-2}
N=${3:-$(nproc)}
[ "$N" -ge 2 ] || N=2
SRC=$(cd "$(dirname "$0")/.." && pwd)
ISERD=${ISERD:-$SRC/build/release/iserd}
ISERINIT=${ISERINIT:-$SRC/build/release/iserinit}
SIZE=${SIZE:-1G}
IQN=iqn.2026-11.org.iserd:bench
PORT=${PORT:-3481}
P1=$PORT
PN=$((PORT + 1))

# shellcheck source=bench/lib.sh
. "$SRC/bench/lib.sh"
bench_init iserd-reactors
bench_need python3
for b in "$ISERD" "$ISERINIT"; do
	[ -x "$b" ] || { echo "bench: no binary $b (release build?)" >&2; exit 1; }
done
HZ=$(getconf CLK_TCK)
INIT_PROCS=${INIT_PROCS:-1}
[ "$INIT_PROCS" -ge 1 ] 2>/dev/null || { echo "bench: INIT_PROCS is a count, not $INIT_PROCS" >&2; exit 1; }

# cpu_list LIST: the CPUs of "0,2-3" one per line
cpu_list() {
	local part a b
	for part in ${1//,/ }; do
		if [[ $part =~ ^([0-9]+)-([0-9]+)$ ]]; then
			a=${BASH_REMATCH[1]} b=${BASH_REMATCH[2]}
			seq "$a" "$b"
		elif [[ $part =~ ^[0-9]+$ ]]; then
			echo "$part"
		else
			echo "bench: bad CPU list $1" >&2
			exit 1
		fi
	done
}
ICPUS=()
if [ -n "${INIT_CPUS:-}" ]; then
	bench_need taskset
	mapfile -t ICPUS < <(cpu_list "$INIT_CPUS")
	[ ${#ICPUS[@]} -gt 0 ] || { echo "bench: INIT_CPUS lists no CPU" >&2; exit 1; }
fi
ONE_CPU=
if [ -n "${REACTOR_CPUS:-}" ]; then
	ONE_CPU=$(cpu_list "$REACTOR_CPUS" | head -n 1)
	[ -n "$ONE_CPU" ] || { echo "bench: REACTOR_CPUS lists no CPU" >&2; exit 1; }
fi

STORE=${STORE:-ram}
case $STORE in
ram) LUN1="ram:$SIZE" LUNN="ram:$SIZE" ;;
file)
	truncate -s "$SIZE" "$W/lun-1.img" "$W/lun-n.img"
	LUN1="file:$W/lun-1.img" LUNN="file:$W/lun-n.img"
	;;
*) echo "bench: STORE is ram or file, not $STORE" >&2; exit 1 ;;
esac
iserd_start "$W/iserd-1.log" "$ISERD" --reactors 1 ${ONE_CPU:+--reactor-cpus "$ONE_CPU"} --portal tcp://127.0.0.1:"$P1" \
	--target $IQN --lun "$LUN1"
PID1=$LAST_PID
iserd_start "$W/iserd-n.log" "$ISERD" --reactors "$N" ${REACTOR_CPUS:+--reactor-cpus "$REACTOR_CPUS"} \
	--portal tcp://127.0.0.1:"$PN" --target $IQN --lun "$LUNN"
PIDN=$LAST_PID

TARGETS=("reactors=1|$PID1|iscsi://127.0.0.1:$P1/$IQN/0"
	"reactors=$N|$PIDN|iscsi://127.0.0.1:$PN/$IQN/0")
for t in "${TARGETS[@]}"; do
	IFS='|' read -r name pid url <<<"$t"
	ok=0
	for _ in $(seq 50); do
		"$ISERINIT" readcap "$url" >/dev/null 2>&1 && { ok=1; break; }
		sleep 0.1
	done
	[ $ok = 1 ] || { echo "bench: $name ($url) does not answer; logs:" >&2; tail -n 5 "$W"/*.log >&2; exit 1; }
	# the RAM LUN maps its memory on first touch, a tmpfs file its pages: every
	# page is there before the runs
	head -c "$(numfmt --from=iec "$SIZE")" /dev/zero | "$ISERINIT" write "$url" >/dev/null
done

# cpu_ticks PID: utime+stime of the whole process, in clock ticks (-1 once it is gone)
cpu_ticks() {
	local s
	s=$(cat "/proc/$1/stat" 2>/dev/null) || { echo -1; return; }
	echo "${s##*) }" | awk '{ print $12 + $13 }'
}

# name:rw:bs:qd:sessions
CASES="rand4k_read_16x8:randread:4096:8:16 rand4k_write_16x8:randwrite:4096:8:16
	seq128k_read_8x4:read:131072:4:8 rand4k_read_1x32:randread:4096:32:1"
RES=$W/results.tsv
: >"$RES"

run() {
	local r=$1 c=$2 rw=$3 bs=$4 qd=$5 ns=$6 name=$7 pid=$8 url=$9 t0 t1 i0 i1 k n procs
	procs=$INIT_PROCS
	[ "$procs" -le "$ns" ] || procs=$ns
	t0=$(cpu_ticks "$pid")
	i0=$(awk '{ print $16 + $17 }' /proc/$$/stat)
	local ipids=()
	for k in $(seq 0 $((procs - 1))); do
		# sessions dealt out: the first ns % procs processes take one more
		n=$((ns / procs + (k < ns % procs ? 1 : 0)))
		local pin=()
		[ ${#ICPUS[@]} -eq 0 ] || pin=(taskset -c "${ICPUS[$((k % ${#ICPUS[@]}))]}")
		timeout $((SECS + 60)) "${pin[@]}" "$ISERINIT" bench --rw "$rw" --bs "$bs" --qd "$qd" \
			--sessions "$n" --time "$SECS" --json "$url" >"$W/out.$k" 2>"$W/err.$k" &
		ipids+=($!)
	done
	for k in "${ipids[@]}"; do wait "$k" || true; done
	t1=$(cpu_ticks "$pid")
	# this shell's reaped children's time (fields 16, 17): the iserinits that just ran
	i1=$(awk '{ print $16 + $17 }' /proc/$$/stat)
	python3 - "$W" "$procs" "$r" "$c" "$name" "$t0" "$t1" "$HZ" "$RES" "$i0" "$i1" <<-'EOF'
		import json, sys
		w, procs, r, c, name, t0, t1, hz, res, i0, i1 = sys.argv[1:]
		procs, t0, t1, hz, i0, i1 = int(procs), int(t0), int(t1), int(hz), int(i0), int(i1)
		head = "round %s %-18s %-11s" % (r, c, name)
		try:
		    js = []
		    for k in range(procs):
		        try:
		            js.append(json.load(open("%s/out.%d" % (w, k))))
		        except ValueError:
		            msg = open("%s/err.%d" % (w, k)).read().strip().splitlines()
		            raise AssertionError("initiator %d: %s" % (k, msg[-1] if msg else "no output"))
		    assert t0 >= 0 and t1 >= 0, "the target process is gone"
		    errs = sum(j["errors"] for j in js)
		    assert errs == 0, "%d errors (%s)" % (errs, js[0].get("error", "?"))
		    ios = sum(j["ios"] for j in js)
		    assert ios > 0, "no I/O"
		    iops = sum(j["iops"] for j in js)
		    mib_s = sum(j["mib_s"] for j in js)
		    p50 = max(j["lat_us"]["p50"] for j in js)
		    p99 = max(j["lat_us"]["p99"] for j in js)
		    cpu_s = (t1 - t0) / hz
		    cpu = cpu_s * 1e6 / ios
		    init_s = (i1 - i0) / hz
		    print("%s IOPS %8.0f  MiB/s %7.1f  cpu_us/io %6.2f  p50 %7.1f  p99 %7.1f  "
		          "(target cpu %.2f s, init_cpu_s %.2f in %d process%s)" % (head, iops, mib_s,
		          cpu, p50, p99, cpu_s, init_s, procs, "" if procs == 1 else "es"))
		    with open(res, "a") as f:
		        f.write("%s\t%s\t%f\t%f\t%f\t%f\t%f\n" % (c, name, iops, mib_s, cpu, p50, p99))
		except Exception as e:
		    print("%s FAILED: %s" % (head, e))
	EOF
}

echo "# iserinit bench on 127.0.0.1, ${SECS}s per run, $ROUNDS rounds, $(nproc) CPUs, reactors 1 vs $N${REACTOR_CPUS:+ (pinned to $REACTOR_CPUS)}, $(date -u +%FT%TZ), load average $(cut -d' ' -f1-3 /proc/loadavg)"
echo "# $(uname -r); $(grep -m1 'model name' /proc/cpuinfo | sed 's/.*: //')"
echo "# iserd $("$ISERD" --version 2>&1 | head -1) ($ISERD); $STORE LUN of $SIZE, written in full first"
echo "# initiators: $INIT_PROCS iserinit process(es) at most${INIT_CPUS:+, pinned to $INIT_CPUS}; the one-reactor instance ${ONE_CPU:+pinned to CPU $ONE_CPU}${ONE_CPU:-unpinned}"
echo "# cpu_us/io: iserd process utime+stime over the run / I/Os completed; init_cpu_s: the iserinits' CPU over the run, all together"
for r in $(seq "$ROUNDS"); do
	for cs in $CASES; do
		IFS=: read -r c rw bs qd ns <<<"$cs"
		for i in 0 1; do
			IFS='|' read -r name pid url <<<"${TARGETS[$(((i + r - 1) % 2))]}"
			run "$r" "$c" "$rw" "$bs" "$qd" "$ns" "$name" "$pid" "$url"
		done
	done
done
echo "# end $(date -u +%FT%TZ), load average $(cut -d' ' -f1-3 /proc/loadavg)"

python3 - "$RES" "$CASES" "reactors=1" "reactors=$N" <<-'EOF'
	import statistics, sys
	res, cases, one, many = sys.argv[1:]
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
	def ratio(a, b):
	    return "%.2f" % (a / b) if a is not None and b else "-"
	print("# medians (n = runs that count), and %s / %s" % (many, one))
	print("%-18s %-11s %9s %8s %10s %8s %8s %2s" %
	      ("case", "iserd", "IOPS", "MiB/s", "cpu_us/io", "p50_us", "p99_us", "n"))
	for c in cases:
	    for t in (one, many):
	        print("%-18s %-11s %9s %8s %10s %8s %8s %2d" % (c, t, f(med(c, t, IOPS), "%.0f"),
	              f(med(c, t, MIBS), "%.1f"), f(med(c, t, CPU), "%.2f"), f(med(c, t, P50), "%.1f"),
	              f(med(c, t, P99), "%.1f"), len(rows.get((c, t), []))))
	    print("%-18s %-11s %9s %8s %10s" % (c, "ratio", ratio(med(c, many, IOPS), med(c, one, IOPS)),
	          "", ratio(med(c, many, CPU), med(c, one, CPU))))
EOF
