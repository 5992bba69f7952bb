# shellcheck shell=bash
# Lab job (guest side of bench/iser_lab.sh): the kernel iSER initiator (open-iscsi -I iser + ib_iser)
# against three iSER targets in turn, in one guest boot, with fio: iserd (RAM LUN), LIO's ib_isert
# (rd_mcp ramdisk of the same size) and tgt 1.0.85's iSER (rdwr backing store on a tmpfs file: tgt
# has no RAM store). Not a test: it records numbers and never asserts them.
#
# For each round and each target: start it, log in, fill the LUN once (not timed), run fio (libaio,
# direct=1, time based) 4 KiB randread QD32, 4 KiB randwrite QD32, 128 KiB sequential read QD8,
# 128 KiB sequential write QD8, each for SECS seconds, recording IOPS, MiB/s and the guest's CPU busy
# % (all vCPUs, from /proc/stat) over the run; log out, stop the target, next one. Rounds alternate
# the targets (iserd, LIO, tgt, iserd, LIO, tgt, ...) so that drift in the host's load spreads over
# all of them.
#
# With FABRIC=tcp the same runs go over iSCSI/TCP instead: the kernel's iscsi_tcp initiator, iserd's
# TCP portal, LIO's TCP portal and tgt's iscsi driver, on the same veth pair.
#
# Env: FABRIC (rxe|siw|tcp, default rxe), SECS (s per fio run, default 8), ROUNDS (default 2),
# LUN_MB (default 64), TARGETS (default "iserd lio tgt"), ISERD_BIN (default /lab/files/iserd),
# ISERD_STORE (ram, the default, or file: a file of the LUN's size on the guest's tmpfs, like tgt's),
# ONLY (workload names to run, default all four), PERF (workload names to profile: perf record -a at
# 999 Hz on cpu-clock during those runs; perf-FABRIC-rROUND-TARGET-NAME.txt gets the top of the
# profile by command, by command and module, and by symbol; the sampling costs the guest some CPU,
# so the IOPS of a profiled run are not comparable with an unprofiled one),
# MAX_SECTORS (ib_iser max_sectors, default 1024 = 512 KiB: tgt 1.0.85 drops the connection on
# commands over 512 KiB; every fio block here is <= 128 KiB, so it binds nobody).
# Out: /lab/out/bench.txt (one line per run, then medians and ratios), fio-*.json, perf-*.txt,
# iserd.log, tgtd.log, lio-*.txt.
# On siw, LIO's iSER portal cannot listen: it is a child of the TCP portal on the same port, and iWARP
# refuses an RDMA listener on a port a TCP socket holds (EADDRINUSE); the job records the evidence.
. /lab/guest.sh
FABRIC=${FABRIC:-rxe}
SECS=${SECS:-8}
ROUNDS=${ROUNDS:-2}
LUN_MB=${LUN_MB:-64}
TARGETS=${TARGETS:-iserd lio tgt}
ISERD_BIN=${ISERD_BIN:-/lab/files/iserd}
MAX_SECTORS=${MAX_SECTORS:-1024}
ONLY=${ONLY:-}
PERF=${PERF:-}
case $FABRIC in
tcp) IFACE=default XPORT=tcp TGT_LLD=iscsi ISERD_SCHEME=tcp ;;
*) IFACE=iser XPORT=iser TGT_LLD=iser ISERD_SCHEME=iser ;;
esac
ANY_FAILED=0
PORT=3260
TGT_TCP_PORT=3262    # tgt's TCP portal kept off 3260 (on iWARP it would block the iSER listener)
BENCH=$OUT/bench.txt
IQN_ISERD=iqn.2026-11.org.iserd:bench
IQN_LIO=iqn.2026-11.test:lio-bench
IQN_TGT=iqn.2026-11.test:tgt-bench
LUN_BYTES=$((LUN_MB << 20))
# name rw bs iodepth
WORKLOADS=("rand4k-read randread 4k 32" "rand4k-write randwrite 4k 32"
	"seq128k-read read 128k 8" "seq128k-write write 128k 8")
if [ -n "$ONLY" ]; then
	sel=()
	for w in "${WORKLOADS[@]}"; do [[ " $ONLY " == *" ${w%% *} "* ]] && sel+=("$w"); done
	WORKLOADS=("${sel[@]}")
fi

log() { echo "$*" | tee -a $BENCH; }
cpu_snap() { awk '/^cpu /{print $2+$3+$4+$7+$8+$9, $2+$3+$4+$5+$6+$7+$8+$9}' /proc/stat; }
cpu_pct() { echo "$1 $2" | awk '{db=$3-$1; dt=$4-$2; if (dt>0) printf "%.1f", 100*db/dt; else print "nan"}'; }

# --- targets: T_start / T_stop, IQN_T, LUN number of the block device -------------------------------
iserd_up() {
	local lun=ram:${LUN_MB}M
	ulimit -l unlimited
	if [ "${ISERD_STORE:-ram}" = file ]; then
		truncate -s $LUN_BYTES /tmp/iserd.img || return 1
		lun=file:/tmp/iserd.img
	fi
	# shellcheck disable=SC2086
	iserd_start $OUT/iserd.log ${ISERD_CONF:+-c $ISERD_CONF} --portal $ISERD_SCHEME://$LAB_IP:$PORT \
		--target $IQN_ISERD --lun $lun
}
iserd_down() { iserd_stop; rm -f /tmp/iserd.img; }

lio_loaded=0
lio_up() {
	local T=$LIO_CFS/iscsi/$IQN_LIO/tpgt_1 rd=$LIO_CFS/core/rd_mcp_0/bench a np
	if [ $lio_loaded = 0 ]; then
		mkdir -p /etc/target/pr /etc/target/alua
		modprobe target_core_mod && modprobe iscsi_target_mod || return 1
		[ $XPORT = tcp ] || modprobe ib_isert || return 1
		mountpoint -q /sys/kernel/config || mount -t configfs configfs /sys/kernel/config
		lio_loaded=1
	fi
	mkdir -p $rd && echo "rd_pages=$((LUN_BYTES / 4096))" > $rd/control && echo 1 > $rd/enable || return 1
	mkdir -p $T/lun/lun_0 && ln -s $rd $T/lun/lun_0/x || return 1
	np=$T/np/$LAB_IP:$PORT
	mkdir $np || return 1
	if [ $XPORT = iser ] && ! echo 1 > $np/iser 2> /tmp/lio-iser.err; then
		echo "LIO: echo 1 > np/$LAB_IP:$PORT/iser failed: $(cat /tmp/lio-iser.err)"
		dmesg | grep -iE "isert|iscsi_target|rdma" | tail -5
		return 1
	fi
	for a in generate_node_acls=1 demo_mode_write_protect=0 authentication=0 cache_dynamic_acls=1; do
		echo ${a#*=} > $T/attrib/${a%=*} || return 1
	done
	echo 1 > $T/enable
}
lio_down() {
	local T=$LIO_CFS/iscsi/$IQN_LIO/tpgt_1 rd=$LIO_CFS/core/rd_mcp_0/bench np=$LIO_CFS/iscsi/$IQN_LIO/tpgt_1/np/$LAB_IP:$PORT
	[ -d $T ] || return 0
	echo 0 > $T/enable
	[ -d $np ] && { [ "$(cat $np/iser 2>/dev/null)" = 1 ] && echo 0 > $np/iser; rmdir $np; }
	rm -f $T/lun/lun_0/x; rmdir $T/lun/lun_0 && rmdir $T && rmdir $LIO_CFS/iscsi/$IQN_LIO &&
		rmdir $rd && rmdir ${rd%/*}
}

TGTD_PID=
tgt_up() {
	ulimit -l unlimited
	truncate -s $LUN_BYTES /tmp/tgt.img || return 1
	if [ $XPORT = tcp ]; then
		setsid tgtd -f --iscsi portal=$LAB_IP:$PORT >> $OUT/tgtd.log 2>&1 &
	else
		setsid tgtd -f --iscsi portal=$LAB_IP:$TGT_TCP_PORT --iser pool_sz_mb=128 >> $OUT/tgtd.log 2>&1 &
	fi
	TGTD_PID=$!
	local i
	for i in $(seq 40); do tgtadm --op show --mode system >/dev/null 2>&1 && break; sleep 0.5; done
	tgtadm --lld $TGT_LLD --op new --mode target --tid 1 -T $IQN_TGT || return 1
	tgtadm --lld $TGT_LLD --op new --mode logicalunit --tid 1 --lun 1 --bstype rdwr -b /tmp/tgt.img || return 1
	# tgt 1.0.85's login wants an address ACL and an initiator-name ACL
	tgtadm --lld $TGT_LLD --op bind --mode target --tid 1 -I ALL || return 1
	tgtadm --lld $TGT_LLD --op bind --mode target --tid 1 -Q $LAB_INITIATOR || return 1
}
tgt_down() {
	[ -n "$TGTD_PID" ] || return 0
	tgtadm --lld $TGT_LLD --op delete --mode target --tid 1 --force >/dev/null 2>&1
	tgtadm --op delete --mode system >/dev/null 2>&1   # tgtd ignores SIGTERM
	local i
	for i in $(seq 25); do kill -0 $TGTD_PID 2>/dev/null || break; sleep 0.2; done
	kill -0 $TGTD_PID 2>/dev/null && { echo "tgtd still running, SIGKILL"; kill -KILL $TGTD_PID; }
	wait $TGTD_PID 2>/dev/null; TGTD_PID=
	rm -f /tmp/tgt.img
}
iqn_of() { case $1 in iserd) echo $IQN_ISERD ;; lio) echo $IQN_LIO ;; tgt) echo $IQN_TGT ;; esac; }

# --- initiator ---------------------------------------------------------------------------------------
DEV=
login() {  # IQN: node record by hand (no discovery, the same for all three), login over $XPORT
	iscsiadm -m node -o new -T $1 -p $LAB_IP:$PORT -I $IFACE > /dev/null || return 1
	timeout 90 iscsiadm -m node -T $1 -p $LAB_IP:$PORT -I $IFACE --login || return 1
	iscsiadm -m session -P 1 2>/dev/null | grep -q "Iface Transport: $XPORT" || { echo "not over $XPORT"; return 1; }
	local i s d
	DEV=
	for ((i = 0; i < 100; i++)); do
		for s in /sys/class/iscsi_session/session*; do
			[ "$(cat $s/targetname 2>/dev/null)" = "$1" ] || continue
			for d in $s/device/target*/*:*:*:*/block/*; do
				[ -e "$d" ] && DEV=${d##*/}
			done
		done
		[ -n "$DEV" ] && [ -b /dev/$DEV ] && break
		sleep 0.2
	done
	[ -n "$DEV" ] || { echo "no block device"; return 1; }
	echo none > /sys/block/$DEV/queue/scheduler 2>/dev/null
	echo "/dev/$DEV: $(login_info)"
}
logout() {
	timeout 60 iscsiadm -m node -T $1 -p $LAB_IP:$PORT -I $IFACE --logout > /dev/null || return 1
	iscsiadm -m node -o delete -T $1 -p $LAB_IP:$PORT -I $IFACE > /dev/null 2>&1
	! iscsiadm -m session 2>/dev/null | grep -q " $1\$" || { echo "session still there"; return 1; }
}
fill() {  # every block written once, so reads hit allocated memory on every target
	timeout 300 fio --name=fill --filename=/dev/$DEV --direct=1 --ioengine=libaio --rw=write --bs=1M \
		--iodepth=8 --size=$LUN_BYTES > $OUT/fio-fill-$1.txt 2>&1 ||
		{ cat $OUT/fio-fill-$1.txt; return 1; }
	grep -E "WRITE:" $OUT/fio-fill-$1.txt
}

# run_fio ROUND TARGET NAME RW BS QD: one time-based fio run; logs "round target workload iops mibs cpu"
run_fio() {
	local r=$1 t=$2 name=$3 rw=$4 bs=$5 qd=$6 j c0 c1 iops bw err dir pf
	j=$OUT/fio-$FABRIC-r$r-$t-$name.json
	pf=$OUT/perf-$FABRIC-r$r-$t-$name
	[[ " $PERF " != *" $name "* ]] || perf_start $pf
	hw_snap > /tmp/hw0
	c0=$(cpu_snap)
	timeout $((SECS + 120)) fio --name=$name --filename=/dev/$DEV --direct=1 --ioengine=libaio \
		--rw=$rw --bs=$bs --iodepth=$qd --numjobs=1 --time_based --runtime=$SECS --randrepeat=0 \
		--norandommap --output-format=json --output=$j > /dev/null 2>&1
	c1=$(cpu_snap)
	hw_snap > /tmp/hw1
	[ -z "$PERF_PID" ] || perf_stop $pf
	case $rw in *read) dir="read" ;; *) dir="write" ;; esac
	iops=$(jq -r ".jobs[0].$dir.iops" $j 2>/dev/null)
	bw=$(jq -r ".jobs[0].$dir.bw" $j 2>/dev/null)   # KiB/s
	err=$(jq -r ".jobs[0].error" $j 2>/dev/null)
	[ -n "$iops" ] && [ "$iops" != null ] || { iops=0 bw=0 err=nofio; }
	awk -v r=$r -v t=$t -v n=$name -v i=$iops -v b=$bw -v c="$(cpu_pct "$c0" "$c1")" -v e=$err \
		'BEGIN { printf "run  %d %-6s %-14s %9.0f IOPS %8.2f MiB/s  cpu %5s%%%s\n", r, t, n, i, b / 1024, c,
		(e == "0" ? "" : "  ERROR " e) }' | tee -a $BENCH
	hw_delta $r $t $name "$iops"
}
# Counters around a run: the soft RDMA device's own (packets, retries, RNR NAKs, sequence errors),
# the guest's context switches and interrupts, and its softirqs by kind. hw_delta logs those that
# moved, as count/per-I/O: a target that makes the fabric or the scheduler work harder shows it.
hw_snap() {
	local f
	for f in /sys/class/infiniband/*/ports/1/hw_counters/*; do
		[ -r "$f" ] && echo "${f##*/} $(cat $f)"
	done 2>/dev/null
	awk '$1 == "ctxt" || $1 == "intr" { print $1, $2 }' /proc/stat
	awk 'NR > 1 { s = 0; for (i = 2; i <= NF; i++) s += $i; sub(":", "", $1); print "softirq_" tolower($1), s }' /proc/softirqs
}
hw_delta() {  # ROUND TARGET NAME IOPS
	awk -v r=$1 -v t=$2 -v n=$3 -v ios="$(awk -v i=$4 -v s=$SECS 'BEGIN { print i * s }')" '
		NR == FNR { a[$1] = $2; next }
		$2 - a[$1] > 0 { p = p sprintf(" %s=%d/%.3g", $1, $2 - a[$1], ios > 0 ? ($2 - a[$1]) / ios : 0) }
		END { printf "hw   %d %-6s %-14s count/per I/O:%s\n", r, t, n, p }' /tmp/hw0 /tmp/hw1 | tee -a $BENCH
}

# perf_start BASE / perf_stop BASE: a system-wide profile of exactly the fio run. perf record starts
# with its events disabled and is enabled through its control fifo: under TCG its start-up (reading
# every process's maps) takes seconds of CPU that must neither be sampled nor overlap the run.
# perf_stop writes BASE.txt: samples by command, by command and module, by symbol.
PERF_PID=
perf_start() {
	rm -f /tmp/perf-ctl /tmp/perf-ack && mkfifo /tmp/perf-ctl /tmp/perf-ack || return 1
	perf record -a -g -e cpu-clock -F 999 -D -1 --control fifo:/tmp/perf-ctl,/tmp/perf-ack -o $1.data \
		-- sleep 100000 > $1.log 2>&1 &
	PERF_PID=$!
	exec 8<> /tmp/perf-ctl 9<> /tmp/perf-ack
	local a=
	echo enable >&8 && read -r -t 120 a <&9 && [ "$a" = ack ] ||
		{ echo "perf record did not start" | tee -a $1.log; kill -INT $PERF_PID; wait $PERF_PID; PERF_PID=; }
}
perf_stop() {
	local a
	echo disable >&8; read -r -t 60 a <&9
	kill -INT $PERF_PID; wait $PERF_PID; PERF_PID=
	exec 8>&- 9>&-
	{
		echo "# $(basename $1): perf record -a -g -e cpu-clock -F 999 over the fio run; % of all samples (idle included)"
		echo "# by command"
		perf report -i $1.data --stdio --no-children -g none --sort comm --percent-limit 0.5 2>/dev/null | grep -v '^#\|^$'
		echo "# by command and module"
		perf report -i $1.data --stdio --no-children -g none --sort comm,dso --percent-limit 0.5 2>/dev/null | grep -v '^#\|^$'
		echo "# by symbol (self)"
		perf report -i $1.data --stdio --no-children -g none --sort comm,dso,sym --percent-limit 0.3 2>/dev/null | grep -v '^#\|^$'
		echo "# the userspace targets' own code (self)"
		perf report -i $1.data --stdio --no-children -g none --comms iserd,tgtd --sort comm,dso,sym --percent-limit 0.05 2>/dev/null |
			grep -v '^#\|^$\|\[k\]'
		echo "# by symbol with its callees (children), every command together"
		perf report -i $1.data --stdio --children -g none --sort sym --percent-limit 1.5 2>/dev/null | grep -v '^#\|^$'
		echo "# by command and symbol with callees"
		perf report -i $1.data --stdio --children -g none --sort comm,sym --percent-limit 1.5 2>/dev/null | grep -v '^#\|^$'
	} > $1.txt 2>&1
	rm -f $1.data
}

bench_target() {  # ROUND TARGET
	local r=$1 t=$2 iqn w
	iqn=$(iqn_of $t)
	if [ "$FABRIC" = siw ] && [ $t = lio ]; then
		[ $r = 1 ] || return 0
		note "LIO on siw: expecting the iSER portal to be refused"
		lio_up > $OUT/lio-siw.txt 2>&1; cat $OUT/lio-siw.txt
		log "# LIO ib_isert on siw: $(grep -m1 'failed' $OUT/lio-siw.txt || echo 'no error?')"
		dmesg | grep -iE "isert|rdma_bind|rdma_listen|-98|EADDRINUSE" | tail -3 | sed 's/^/#   dmesg: /' | tee -a $BENCH
		lio_down
		return 0
	fi
	note "round $r: $t"
	step "r$r $t: start" ${t}_up || { ${t}_down; LAB_FAILED=0; ANY_FAILED=1; log "# r$r $t: did not start"; return 0; }
	if step "r$r $t: login over $XPORT" login $iqn; then
		[ $r = 1 ] && log "# $t: $(login_info)"
		step "r$r $t: fill ${LUN_MB} MiB (not timed)" fill r$r-$t
		for w in "${WORKLOADS[@]}"; do
			# shellcheck disable=SC2086
			run_fio $r $t $w
		done
		step "r$r $t: logout" logout $iqn
	fi
	[ $LAB_FAILED = 0 ] || _teardown
	cleanup "r$r $t: stop" ${t}_down
	[ $LAB_FAILED = 0 ] || ANY_FAILED=1
	LAB_FAILED=0   # one target's failure must not skip the others; the log keeps the FAIL lines
}
login_info() {
	echo "$(( $(cat /sys/block/$DEV/size) / 2048 )) MiB, $(cat /sys/block/$DEV/device/vendor | xargs)" \
		"$(cat /sys/block/$DEV/device/model | xargs), max_sectors_kb $(cat /sys/block/$DEV/queue/max_sectors_kb)," \
		"queue_depth $(cat /sys/block/$DEV/device/queue_depth), scheduler $(cat /sys/block/$DEV/queue/scheduler)"
}

summary() {
	local t w name med m
	declare -A M
	log "# medians over $ROUNDS round(s): IOPS, MiB/s, guest CPU busy %, that CPU per I/O (all vCPUs: initiator, fabric and target)"
	for w in "${WORKLOADS[@]}"; do
		name=${w%% *}
		for t in $TARGETS; do
			med=$(awk -v t=$t -v n=$name '$1 == "run" && $3 == t && $4 == n && $0 !~ /ERROR/ { print $5, $7, $10 }' $BENCH |
				awk '{ i[NR] = $1; b[NR] = $2; c[NR] = $3 + 0 }
				function med(a, n,   k, j, x) { for (k = 2; k <= n; k++) { x = a[k]; for (j = k - 1; j > 0 && a[j] > x; j--) a[j + 1] = a[j]; a[j + 1] = x }
					return n % 2 ? a[(n + 1) / 2] : (a[n / 2] + a[n / 2 + 1]) / 2 }
				END { if (NR) printf "%.0f %.2f %.1f", med(i, NR), med(b, NR), med(c, NR) }')
			M[$t,$name]=$med
		done
		m=""
		for t in $TARGETS; do
			[ -n "${M[$t,$name]}" ] && m+=$(awk -v t=$t -v s="${M[$t,$name]}" -v n=$(nproc) 'BEGIN { split(s, a, " ");
				printf "  %-5s %7d IOPS %7.2f MiB/s cpu %5.1f%% %5.0f us/IO", t, a[1], a[2], a[3],
					(a[1] > 0 ? a[3] / 100 * n * 1e6 / a[1] : 0) }') ||
				m+=$(printf "  %-5s %45s" $t "n/a")
		done
		log "med  $(printf %-14s $name)$m"
	done
	log "# ratios of the median IOPS (same block size, so MiB/s ratios are the same)"
	for w in "${WORKLOADS[@]}"; do
		name=${w%% *}
		awk -v n=$name -v i="${M[iserd,$name]}" -v l="${M[lio,$name]}" -v g="${M[tgt,$name]}" 'BEGIN {
			split(i, a, " "); split(l, b, " "); split(g, c, " ");
			printf "ratio %-14s iserd/LIO %s   iserd/tgt %s\n", n,
				(b[1] > 0 && a[1] > 0 ? sprintf("%.2f", a[1] / b[1]) : "n/a "),
				(c[1] > 0 && a[1] > 0 ? sprintf("%.2f", a[1] / c[1]) : "n/a ") }' | tee -a $BENCH
	done
}

: > $BENCH
if [ $XPORT = tcp ]; then
	log "# kernel iscsi_tcp -> iSCSI/TCP targets over veth, fio $(fio --version), libaio direct=1, ${SECS}s per run, $ROUNDS round(s)"
else
	log "# kernel ib_iser (max_sectors=$MAX_SECTORS) -> iSER targets over $FABRIC, fio $(fio --version), libaio direct=1, ${SECS}s per run, $ROUNDS round(s)"
fi
log "# guest: $(uname -r), $(nproc) vCPUs, $(awk '/MemTotal/{printf "%d MiB", $2/1024}' /proc/meminfo); LUN ${LUN_MB} MiB: iserd $([ "${ISERD_STORE:-ram}" = file ] && echo "file: on tmpfs" || echo ram:), LIO rd_mcp, tgt rdwr on a tmpfs file (tgt has no RAM store)"
log "# iserd: $($ISERD_BIN --version 2>&1 | head -1); tgt: $(tgtd --version 2>&1 | head -1); LIO: in-kernel $([ $XPORT = tcp ] && echo iscsi_target_mod || echo ib_isert) ($(uname -r))"
log "# cpu = guest CPU busy % over all vCPUs during the run (initiator, fabric and target together)"
if [ $XPORT = tcp ]; then
	step "veth0 $LAB_IP" lab_net || { lab_finish; exit 1; }
	step "iscsi_tcp" modprobe iscsi_tcp
else
	step "soft-$FABRIC up on veth0 $LAB_IP" rdma_fabric_up $FABRIC || { lab_finish; exit 1; }
	step "ib_iser max_sectors=$MAX_SECTORS" modprobe ib_iser max_sectors=$MAX_SECTORS
fi
ulimit -l unlimited
[ -z "$PERF" ] || log "# perf: $(perf --version 2>&1), profiling: $PERF (those runs' IOPS carry the sampling's cost)"
step "iscsid started" iscsid_start
log "# columns: run ROUND TARGET WORKLOAD IOPS MiB/s cpu%"
for ((r = 1; r <= ROUNDS; r++)); do
	for t in $TARGETS; do bench_target $r $t; done
done
summary
iscsid_stop
LAB_FAILED=$ANY_FAILED
dmesg | grep -iE "iser|isert|rxe|siw" | tail -20 > $OUT/dmesg-tail.txt
lab_finish
