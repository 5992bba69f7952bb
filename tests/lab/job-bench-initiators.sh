# shellcheck shell=bash disable=SC2034  # LAB_FAILED is read by guest.sh
# Lab job (guest side of bench/initiators_lab.sh): three iSER initiators, one after the other, in
# ONE guest boot, against the SAME iserd (iser:// portal, RAM LUN): our iserinit (iser:// URL),
# libiscsi's iscsi-perf (iser:// URL; reads only) and the kernel's ib_iser (open-iscsi -I iser) with
# fio (libaio, direct=1) on the block device. Workloads: 4 KiB random read/write QD32 and 128 KiB
# sequential read/write QD8 (128 KiB: libiscsi 1.19 fails larger iSER READs itself). Writes: iserinit
# and the kernel only. Each round runs the initiators in a rotated order so that drift in the host's
# load spreads over all three. Not a test: it records numbers and never asserts them.
#
# Env: FABRIC (rxe|siw, default rxe), SECS (s per run, default 5), ROUNDS (default 2), LUN_MB (64),
# ISERD_BIN (/lab/files/iserd), ISERINIT_BIN (/lab/files/iserinit, libiserd.so.0 beside it).
# Out: /lab/out/bench.txt (one line per run, then medians and ratios), fio-*.json, ii-*.json,
# perf-*.txt, iserd.log.
. /lab/guest.sh
FABRIC=${FABRIC:-rxe}
SECS=${SECS:-5}
ROUNDS=${ROUNDS:-2}
LUN_MB=${LUN_MB:-64}
ISERD_BIN=${ISERD_BIN:-/lab/files/iserd}
ISERINIT_BIN=${ISERINIT_BIN:-/lab/files/iserinit}
LD_LIBRARY_PATH=$(dirname "$ISERINIT_BIN")${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
export LD_LIBRARY_PATH
PORT=3260
IQN=iqn.2026-11.org.iserd:bench
URL=iser://$LAB_IP:$PORT/$IQN/0
BENCH=$OUT/bench.txt
# name rw bs_bytes qd
WORKLOADS=("rand4k-read randread 4096 32" "rand4k-write randwrite 4096 32"
	"seq128k-read read 131072 8" "seq128k-write write 131072 8")

log() { echo "$*" | tee -a $BENCH; }
cpu_snap() { awk '/^cpu /{print $2+$3+$4+$7+$8+$9, $2+$3+$4+$5+$6+$7+$8+$9}' /proc/stat; }
cpu_pct() { echo "$1 $2" | awk '{db=$3-$1; dt=$4-$2; if (dt>0) printf "%.1f", 100*db/dt; else print "nan"}'; }
# line ROUND INITIATOR NAME IOPS BS CPU [ERR]
line() {
	awk -v r=$1 -v t=$2 -v n=$3 -v i=$4 -v b=$5 -v c="$6" -v e="${7:-}" \
		'BEGIN { printf "run  %d %-10s %-14s %9.0f IOPS %8.2f MiB/s  cpu %5s%%%s\n", r, t, n, i, i * b / 1048576, c,
		(e == "" ? "" : "  ERROR " e) }' | tee -a $BENCH
}

# --- iserinit ------------------------------------------------------------------------------------
run_iserinit() {  # ROUND
	local r=$1 w name rw bs qd j c0 c1 iops err
	for w in "${WORKLOADS[@]}"; do
		read -r name rw bs qd <<< "$w"
		j=$OUT/ii-r$r-$name.json
		c0=$(cpu_snap)
		timeout $((SECS + 60)) "$ISERINIT_BIN" bench --rw $rw --bs $bs --qd $qd --time $SECS --json "$URL" \
			> $j 2> $OUT/ii-r$r-$name.err
		c1=$(cpu_snap)
		iops=$(jq -r .iops $j 2>/dev/null); err=$(jq -r .errors $j 2>/dev/null)
		[ -n "$iops" ] && [ "$iops" != null ] || { iops=0 err="no result: $(tail -1 $OUT/ii-r$r-$name.err)"; }
		[ "$err" = 0 ] && err=
		line $r iserinit $name $iops $bs "$(cpu_pct "$c0" "$c1")" "$err"
	done
}
# --- iscsi-perf (reads only) ---------------------------------------------------------------------
run_perf() {  # ROUND
	local r=$1 w name rw bs qd f c0 c1 iops rnd
	for w in "${WORKLOADS[@]}"; do
		read -r name rw bs qd <<< "$w"
		case $rw in randread) rnd=-r ;; read) rnd= ;; *) continue ;; esac
		f=$OUT/perf-r$r-$name.txt
		c0=$(cpu_snap)
		# shellcheck disable=SC2086
		timeout $((SECS + 60)) iscsi-perf -i iqn.2026-11.test:libiscsi-bench -t $SECS -m $qd -b $((bs / 512)) $rnd \
			"$URL" > $f 2>&1
		c1=$(cpu_snap)
		iops=$(tr '\r' '\n' < $f | grep -o 'iops average [0-9]*' | tail -1 | awk '{print $3}')
		line $r iscsi-perf $name ${iops:-0} $bs "$(cpu_pct "$c0" "$c1")" "$([ -n "$iops" ] || echo no result)"
	done
}
# --- kernel ib_iser + fio ------------------------------------------------------------------------
DEV=
klogin() {
	iscsiadm -m node -o new -T $IQN -p $LAB_IP:$PORT -I iser > /dev/null || return 1
	timeout 90 iscsiadm -m node -T $IQN -p $LAB_IP:$PORT -I iser --login || return 1
	iscsiadm -m session -P 1 2>/dev/null | grep -q "Iface Transport: iser" || { echo "not over iser"; return 1; }
	local i s d
	DEV=
	for ((i = 0; i < 100; i++)); do
		for s in /sys/class/iscsi_session/session*; do
			[ "$(cat $s/targetname 2>/dev/null)" = "$IQN" ] || continue
			for d in $s/device/target*/*:*:*:*/block/*; do [ -e "$d" ] && DEV=${d##*/}; done
		done
		[ -n "$DEV" ] && [ -b /dev/$DEV ] && break
		sleep 0.2
	done
	[ -n "$DEV" ] || { echo "no block device"; return 1; }
	echo none > /sys/block/$DEV/queue/scheduler 2>/dev/null
	echo "/dev/$DEV: max_sectors_kb $(cat /sys/block/$DEV/queue/max_sectors_kb), queue_depth $(cat /sys/block/$DEV/device/queue_depth)"
}
klogout() {
	timeout 60 iscsiadm -m node -T $IQN -p $LAB_IP:$PORT -I iser --logout > /dev/null || return 1
	iscsiadm -m node -o delete -T $IQN -p $LAB_IP:$PORT -I iser > /dev/null 2>&1
	true
}
run_kernel() {  # ROUND
	local r=$1 w name rw bs qd j c0 c1 iops err dir
	step "r$r kernel: login over iser" klogin || { LAB_FAILED=0; log "# r$r kernel: login failed"; return 0; }
	for w in "${WORKLOADS[@]}"; do
		read -r name rw bs qd <<< "$w"
		j=$OUT/fio-r$r-$name.json
		c0=$(cpu_snap)
		timeout $((SECS + 120)) fio --name=$name --filename=/dev/$DEV --direct=1 --ioengine=libaio \
			--rw=$rw --bs=$bs --iodepth=$qd --numjobs=1 --time_based --runtime=$SECS --randrepeat=0 \
			--norandommap --output-format=json --output=$j > /dev/null 2>&1
		c1=$(cpu_snap)
		case $rw in *read) dir="read" ;; *) dir="write" ;; esac
		iops=$(jq -r ".jobs[0].$dir.iops" $j 2>/dev/null); err=$(jq -r ".jobs[0].error" $j 2>/dev/null)
		[ -n "$iops" ] && [ "$iops" != null ] || { iops=0 err=nofio; }
		[ "$err" = 0 ] && err=
		line $r kernel $name $iops $bs "$(cpu_pct "$c0" "$c1")" "$err"
	done
	step "r$r kernel: logout" klogout || LAB_FAILED=0
}

: > $BENCH
step "soft-$FABRIC up on veth0 $LAB_IP" rdma_fabric_up $FABRIC || { lab_finish; exit 1; }
ulimit -l unlimited
step "ib_iser max_sectors=1024" modprobe ib_iser max_sectors=1024
step "iscsid started" iscsid_start
log "# guest: $(nproc) vCPUs, $(uname -r), $FABRIC on veth0, iserd ram:${LUN_MB}M at $URL, ${SECS}s per run, $ROUNDS rounds"
log "# iscsi-perf: libiscsi $(dpkg-query -W -f '${Version}' libiscsi-bin 2>/dev/null); fio $(fio --version)"
step "iserd start" iserd_start $OUT/iserd.log --portal iser://$LAB_IP:$PORT --target $IQN --lun ram:${LUN_MB}M ||
	{ log "# iserd did not start"; lab_finish; exit 1; }
# fill the LUN once through the kernel (dd, not timed)
if step "fill: kernel login" klogin; then
	step "fill ${LUN_MB} MiB with dd (not timed)" dd if=/dev/zero of=/dev/$DEV bs=1M count=$LUN_MB oflag=direct
	step "fill: logout" klogout
fi
LAB_FAILED=0
ORDERS=("iserinit perf kernel" "perf kernel iserinit" "kernel iserinit perf")
for ((r = 1; r <= ROUNDS; r++)); do
	order=${ORDERS[$(((r - 1) % 3))]}
	note "round $r: $order"
	for i in $order; do run_$i $r; done
done

# --- medians and ratios ----------------------------------------------------------------------------
{
	echo "# medians of IOPS (MiB/s) per initiator; ratios of the median IOPS"
	awk '/^run / && !/ERROR/ { k = $3 " " $4; v[k] = v[k] " " $5; }
	function med(s,   a, n, i, j, t) { n = split(s, a, " "); for (i = 1; i <= n; i++) for (j = i + 1; j <= n; j++)
		if (a[j] + 0 < a[i] + 0) { t = a[i]; a[i] = a[j]; a[j] = t }
		return n == 0 ? 0 : (n % 2 ? a[(n + 1) / 2] : (a[n / 2] + a[n / 2 + 1]) / 2) }
	END { split("rand4k-read rand4k-write seq128k-read seq128k-write", W, " ")
		for (w = 1; w <= 4; w++) { n = W[w]; ii = med(v["iserinit " n]); pp = med(v["iscsi-perf " n]); kk = med(v["kernel " n])
			b = (n ~ /4k/ ? 4096 : 131072)
			printf "%-14s iserinit %7.0f (%6.2f)  iscsi-perf %7s  kernel %7.0f (%6.2f)  iserinit/iscsi-perf %s  iserinit/kernel %s\n",
				n, ii, ii * b / 1048576, (pp > 0 ? sprintf("%.0f", pp) : "-"), kk, kk * b / 1048576,
				(pp > 0 ? sprintf("%.2f", ii / pp) : "-"), (kk > 0 ? sprintf("%.2f", ii / kk) : "-") } }' $BENCH
} > $BENCH.sum
cat $BENCH.sum >> $BENCH
cleanup "iserd stop" iserd_stop
iscsid_stop
dmesg | grep -iE "iser|rxe|siw" | tail -20 > $OUT/dmesg-tail.txt
lab_finish
