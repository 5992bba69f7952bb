# shellcheck shell=bash
# Helpers for lab jobs; sourced inside the guest (vmrun.sh copies this file to /lab/guest.sh).
#
# Results: every check goes through `step NAME CMD...`, which prints "PASS NAME (1.2s)" or
# "FAIL NAME" to the job log and appends the same line to /lab/out/result. After the first FAIL the
# remaining steps are reported as SKIP (cleanup steps, `cleanup NAME CMD...`, always run).
# `lab_finish` appends "RESULT PASS" or "RESULT FAIL" and returns 0 or 1; the host parses that file.

LAB_IP=10.99.0.1                     # the target's address, on veth0
LAB_INITIATOR=iqn.2026-11.test:init  # open-iscsi's InitiatorName
OUT=/lab/out
RESULT=$OUT/result
LAB_FAILED=0

now() { cut -d' ' -f1 /proc/uptime; }
note() { echo "[$(now)] $*"; }

_record() {  # STATUS NAME T0 [detail]
	local line
	line=$(awk -v s="$1" -v n="$2" -v t0="$3" -v t1="$(now)" -v d="${4:-}" \
		'BEGIN { printf "%s %s (%.1fs)%s", s, n, t1 - t0, (d == "" ? "" : " " d) }')
	echo "$line" >> "$RESULT"
	echo "==== $line"
}
step() {  # NAME CMD...
	local name=$1 t0 rc; shift
	if [ $LAB_FAILED = 1 ]; then echo "SKIP $name" >> "$RESULT"; echo "==== SKIP $name"; return 1; fi
	echo "==== $name"
	t0=$(now)
	"$@"; rc=$?
	if [ $rc = 0 ]; then _record PASS "$name" "$t0"; else LAB_FAILED=1; _record FAIL "$name" "$t0" "(exit $rc)"; fi
	return $rc
}
cleanup() {  # NAME CMD...: runs even after a failure; a failure here fails the job too
	local name=$1 t0 rc; shift
	echo "==== $name"
	t0=$(now)
	"$@"; rc=$?
	if [ $rc = 0 ]; then _record PASS "$name" "$t0"; else LAB_FAILED=1; _record FAIL "$name" "$t0" "(exit $rc)"; fi
	return $rc
}
lab_finish() {
	if [ $LAB_FAILED = 0 ] && grep -q '^PASS' "$RESULT" 2>/dev/null; then
		echo "RESULT PASS" >> "$RESULT"; echo "==== RESULT PASS"; return 0
	fi
	echo "RESULT FAIL" >> "$RESULT"; echo "==== RESULT FAIL"; return 1
}

# --- network: lo plus a veth pair; the target listens on veth0 ------------------------------------
lab_net() {
	modprobe veth || return 1
	ip link set lo up
	ip link add veth0 type veth peer name veth1 || return 1
	ip addr add $LAB_IP/24 dev veth0
	ip link set veth0 up && ip link set veth1 up
	ip -br addr
}

# wait_listen ADDR PORT [PID] [SECONDS]: until a TCP listener is on ADDR:PORT (fails early if PID dies)
wait_listen() {
	local i n=$(( ${4:-30} * 5 ))
	for ((i = 0; i < n; i++)); do
		ss -Hltn "src $1 and sport = :$2" 2>/dev/null | grep -q . && return 0
		[ -n "${3:-}" ] && ! kill -0 "$3" 2>/dev/null && { echo "pid $3 exited before listening"; return 1; }
		sleep 0.2
	done
	echo "nothing listens on $1:$2 after ${4:-30} s"; return 1
}

# --- open-iscsi (kernel initiator) ---------------------------------------------------------------
# A private /etc/iscsi (tmpfs) so that node records on the host's disk never leak in, and short
# recovery timeouts so that a dead target shows up as an I/O error within seconds, not minutes.
ISCSID_PID=
iscsid_start() {
	modprobe iscsi_tcp && modprobe sd_mod || return 1
	mount -t tmpfs tmpfs /etc/iscsi || return 1
	mkdir -p /var/lib/iscsi /run/lock/iscsi
	echo "InitiatorName=$LAB_INITIATOR" > /etc/iscsi/initiatorname.iscsi
	cat > /etc/iscsi/iscsid.conf <<-EOC
		iscsid.startup = /bin/true
		node.startup = manual
		node.session.timeo.replacement_timeout = 20
		node.conn[0].timeo.login_timeout = 15
		node.conn[0].timeo.logout_timeout = 15
		node.conn[0].timeo.noop_out_interval = 5
		node.conn[0].timeo.noop_out_timeout = 10
		node.session.err_timeo.abort_timeout = 15
		node.session.err_timeo.lu_reset_timeout = 20
		node.session.err_timeo.tgt_reset_timeout = 20
		node.session.initial_login_retry_max = 2
		node.session.scan = auto
	EOC
	# shellcheck disable=SC2086  # ISCSID_ARGS: extra iscsid options (e.g. -d 4 for debug logs)
	setsid iscsid -f ${ISCSID_ARGS:-} > $OUT/iscsid.log 2>&1 &
	ISCSID_PID=$!
	local i
	for i in $(seq 50); do
		ss -xl 2>/dev/null | grep -q ISCSIADM_ABSTRACT_NAMESPACE && { note "iscsid listening"; return 0; }
		kill -0 $ISCSID_PID 2>/dev/null || { cat $OUT/iscsid.log; return 1; }
		sleep 0.2
	done
	return 0   # iscsiadm retries the connection itself
}
iscsid_stop() {
	[ -n "$ISCSID_PID" ] || return 0
	kill $ISCSID_PID 2>/dev/null; wait $ISCSID_PID 2>/dev/null; ISCSID_PID=
	return 0
}

# k_discover IQN: SendTargets discovery against $LAB_IP; the list must name IQN
k_discover() {
	timeout 60 iscsiadm -m discovery -t sendtargets -p $LAB_IP > /tmp/discovery.out 2>&1
	local rc=$?
	cat /tmp/discovery.out
	[ $rc = 0 ] || return $rc
	grep -q "^$LAB_IP:3260,[0-9]* $1\$" /tmp/discovery.out || { echo "discovery did not list $1"; return 1; }
}
k_login() {  # IQN (default iface: iscsi_tcp)
	timeout 90 iscsiadm -m node -T "$1" -p $LAB_IP:3260 -I default --login
}
k_logout() {  # IQN: logs out and checks that the session is gone
	timeout 60 iscsiadm -m node -T "$1" -p $LAB_IP:3260 --logout || return 1
	! iscsiadm -m session 2>/dev/null | grep -q " $1\$" || { echo "session still there"; return 1; }
}
# k_dev IQN [LUN]: prints the block device (sdX) of IQN's LUN (default 0), waiting for the SCSI scan
k_dev() {
	local i s d
	for ((i = 0; i < 100; i++)); do
		for s in /sys/class/iscsi_session/session*; do
			[ "$(cat $s/targetname 2>/dev/null)" = "$1" ] || continue
			for d in $s/device/target*/*:*:*:${2:-0}/block/*; do
				[ -e "$d" ] && [ -b /dev/${d##*/} ] && { echo ${d##*/}; return 0; }
			done
		done
		sleep 0.2
	done
	return 1
}

# --- LIO, the guest kernel's own target (reference peer for harness self-checks) ------------------
LIO_CFS=/sys/kernel/config/target
# lio_start IQN SIZE_BYTES [ADDR [PORT]]: LUN 0 on an rd_mcp ramdisk, one portal, demo mode (no ACLs)
lio_start() {
	local iqn=$1 size=$2 addr=${3:-$LAB_IP} port=${4:-3260} a
	local tpg=$LIO_CFS/iscsi/$iqn/tpgt_1 rd=$LIO_CFS/core/rd_mcp_0/lab
	mkdir -p /etc/target   # LIO's db_root (PR/ALUA state); the guest root is a writable overlay
	modprobe target_core_mod && modprobe iscsi_target_mod || return 1
	mountpoint -q /sys/kernel/config || mount -t configfs configfs /sys/kernel/config
	mkdir -p $rd && echo "rd_pages=$((size / 4096))" > $rd/control && echo 1 > $rd/enable || return 1
	mkdir -p $tpg/lun/lun_0 && ln -s $rd $tpg/lun/lun_0/lab && mkdir $tpg/np/$addr:$port || return 1
	for a in generate_node_acls=1 demo_mode_write_protect=0 authentication=0 cache_dynamic_acls=1; do
		echo ${a#*=} > $tpg/attrib/${a%=*} || return 1
	done
	echo 1 > $tpg/enable || return 1
	wait_listen $addr $port "" 10
}
# lio_stop IQN [ADDR [PORT]]: tears lio_start's configuration down; every step must succeed
lio_stop() {
	local iqn=$1 addr=${2:-$LAB_IP} port=${3:-3260}
	local tpg=$LIO_CFS/iscsi/$iqn/tpgt_1 rd=$LIO_CFS/core/rd_mcp_0/lab
	[ -d $tpg ] || return 0
	echo 0 > $tpg/enable && rmdir $tpg/np/$addr:$port &&
	rm $tpg/lun/lun_0/lab && rmdir $tpg/lun/lun_0 && rmdir $tpg && rmdir $LIO_CFS/iscsi/$iqn &&
	rmdir $rd && rmdir ${rd%/*}
}

# --- the kernel iSCSI/TCP initiator scenario ------------------------------------------------------
# Expects from the job: target_start, target_stop (each returning 0 on success), TARGET_IQN,
# TARGET_SIZE (bytes). Exercises discovery, login, 64 MiB of direct I/O verified byte for byte,
# ext4 created, written, remounted from a cold cache and checked, logout, then stops the target.
DEV='' MNT=/mnt/lab
_check_dev() {
	DEV=$(k_dev "$TARGET_IQN") || { echo "no block device for $TARGET_IQN"; return 1; }
	local bytes=$(( $(cat /sys/block/$DEV/size) * 512 ))
	echo "device /dev/$DEV: $bytes bytes, $(cat /sys/block/$DEV/device/vendor 2>/dev/null)" \
		"$(cat /sys/block/$DEV/device/model 2>/dev/null), max_sectors_kb $(cat /sys/block/$DEV/queue/max_sectors_kb)"
	[ "$bytes" = "$TARGET_SIZE" ] || { echo "expected $TARGET_SIZE bytes"; return 1; }
}
_dio_write() {
	dd if=/dev/urandom of=/tmp/pattern bs=1M count=64 status=none || return 1
	timeout 300 dd if=/tmp/pattern of=/dev/$DEV bs=1M count=64 oflag=direct conv=fsync
}
_dio_read() {
	timeout 300 dd if=/dev/$DEV of=/tmp/readback bs=1M count=64 iflag=direct || return 1
	cmp /tmp/pattern /tmp/readback && echo "64 MiB read back identical"
}
_mkfs() { timeout 300 mkfs.ext4 -F -q /dev/$DEV; }
_fs_write() {
	mkdir -p $MNT
	dd if=/dev/urandom of=/tmp/file.bin bs=1M count=8 status=none || return 1
	timeout 60 mount /dev/$DEV $MNT || return 1
	cp /tmp/file.bin $MNT/file.bin && timeout 120 sync || { umount $MNT; return 1; }
	timeout 120 umount $MNT
}
_fs_verify() {
	# drop every cached block of the device so the remount reads from the target
	blockdev --flushbufs /dev/$DEV; echo 3 > /proc/sys/vm/drop_caches
	timeout 60 mount -o ro /dev/$DEV $MNT || return 1
	cmp /tmp/file.bin $MNT/file.bin && echo "file identical after remount" || { umount $MNT; return 1; }
	timeout 120 umount $MNT || return 1
	timeout 120 fsck.ext4 -fn /dev/$DEV
}
_teardown() {  # after a failure: release whatever is still held so the target can be stopped
	mountpoint -q $MNT && umount -l $MNT
	iscsiadm -m session >/dev/null 2>&1 && timeout 60 iscsiadm -m node --logoutall=all
	true
}
# --- reservations that fence, through the kernel initiator (SPC-5 PREEMPT AND ABORT) ---------------
# pr_fence TRANSPORT PORT: initiator A is the session the scenario logged in ($DEV); B is a second
# session to TARGET_IQN under another initiator name (open-iscsi iface "fenceb", same transport).
# A registers key 0xa, takes a Write Exclusive reservation and keeps rewriting the LUN's last
# 8 MiB with 'A' bytes (O_DIRECT, in a loop); while those writes are under way B registers 0xb,
# PREEMPTs AND ABORTs A into Exclusive Access and writes 'B' bytes there. A's writer must then
# fail (RESERVATION CONFLICT, or its aborted commands timed out), and the region must read back
# as B's, right away and again after A has given up, so no write of A landed after B's GOOD.
# A's command timeout is 5 s meanwhile, so the kernel's error handling of the commands aborted
# under it does not take the default 30 s. B clears the reservation and logs out.
PRF_IQN_B=iqn.2026-11.test:fence-b
_prf_dev() {  # IQN INITIATOR: block device of the session of INITIATOR to IQN, LUN 0
	local i s d
	for ((i = 0; i < 100; i++)); do
		for s in /sys/class/iscsi_session/session*; do
			[ "$(cat $s/targetname 2>/dev/null)" = "$1" ] || continue
			[ "$(cat $s/initiatorname 2>/dev/null)" = "$2" ] || continue
			for d in $s/device/target*/*:*:*:0/block/*; do
				[ -e "$d" ] && [ -b /dev/${d##*/} ] && { echo ${d##*/}; return 0; }
			done
		done
		sleep 0.2
	done
	return 1
}
_prf_b_logout() {
	local port=$1
	timeout 60 iscsiadm -m node -T "$TARGET_IQN" -p $LAB_IP:$port -I fenceb --logout >/dev/null 2>&1
	iscsiadm -m node -T "$TARGET_IQN" -p $LAB_IP:$port -I fenceb -o delete >/dev/null 2>&1
	iscsiadm -m iface -I fenceb -o delete >/dev/null 2>&1
	true
}
pr_fence() {
	local transport=$1 port=$2 A=$DEV B wpid i rc off=$(( (TARGET_SIZE >> 20) - 8 ))
	local tmo_a
	iscsiadm -m iface -I fenceb -o new >/dev/null &&
	iscsiadm -m iface -I fenceb -o update -n iface.transport_name -v "$transport" >/dev/null &&
	iscsiadm -m iface -I fenceb -o update -n iface.initiatorname -v $PRF_IQN_B >/dev/null &&
	iscsiadm -m node -T "$TARGET_IQN" -p $LAB_IP:$port -I fenceb -o new >/dev/null ||
		{ echo "could not set up iface fenceb"; _prf_b_logout $port; return 1; }
	timeout 90 iscsiadm -m node -T "$TARGET_IQN" -p $LAB_IP:$port -I fenceb --login ||
		{ _prf_b_logout $port; return 1; }
	B=$(_prf_dev "$TARGET_IQN" $PRF_IQN_B) || { echo "no block device for B"; _prf_b_logout $port; return 1; }
	echo "A: /dev/$A ($LAB_INITIATOR), B: /dev/$B ($PRF_IQN_B), region: MiB $off..$((off + 8))"
	[ "$A" != "$B" ] || { echo "A and B are the same device"; _prf_b_logout $port; return 1; }
	head -c 8M /dev/zero | tr '\0' A > /tmp/prf.a
	head -c 8M /dev/zero | tr '\0' B > /tmp/prf.b
	tmo_a=$(cat /sys/block/$A/device/timeout)
	echo 5 > /sys/block/$A/device/timeout
	rc=1
	while :; do
		sg_persist -n --out --register --param-sark=0xa /dev/$A || break
		sg_persist -n --out --reserve --param-rk=0xa --prout-type=1 /dev/$A || break
		rm -f /tmp/prf.passes
		( n=0
		  while timeout 150 dd if=/tmp/prf.a of=/dev/$A bs=1M count=8 seek=$off oflag=direct \
			status=none 2>/tmp/prf.err; do n=$((n + 1)); done
		  echo $n > /tmp/prf.passes ) &
		wpid=$!
		sleep 2
		kill -0 $wpid 2>/dev/null || { echo "A's writer stopped before the preempt"; cat /tmp/prf.err; break; }
		sg_persist -n --out --register --param-sark=0xb /dev/$B || break
		sg_persist -n --out --preempt-abort --param-rk=0xb --param-sark=0xa --prout-type=3 /dev/$B ||
			break
		note "B: PREEMPT AND ABORT of A's key, Exclusive Access: GOOD"
		timeout 120 dd if=/tmp/prf.b of=/dev/$B bs=1M count=8 seek=$off oflag=direct \
			conv=fsync status=none || { echo "B could not write"; break; }
		timeout 60 dd if=/dev/$B of=/tmp/prf.r bs=1M count=8 skip=$off iflag=direct status=none &&
			cmp -s /tmp/prf.b /tmp/prf.r || { echo "B does not read its own data back"; break; }
		for ((i = 0; i < 900; i++)); do kill -0 $wpid 2>/dev/null || break; sleep 0.2; done
		if kill -0 $wpid 2>/dev/null; then
			echo "A's writer still writing 180 s after the preempt"; break
		fi
		wait $wpid
		note "A's writer gave up after $(cat /tmp/prf.passes) full passes: $(head -c 200 /tmp/prf.err)"
		if timeout 150 dd if=/tmp/prf.a of=/dev/$A bs=1M count=1 seek=$off oflag=direct status=none \
			2>/dev/null; then
			echo "A can still write"; break
		fi
		sleep 1
		timeout 60 dd if=/dev/$B of=/tmp/prf.r bs=1M count=8 skip=$off iflag=direct status=none ||
			{ echo "B could not read"; break; }
		cmp /tmp/prf.b /tmp/prf.r || { echo "A's data reached the LUN after B's GOOD"; break; }
		echo "the region holds B's data only"
		sg_persist -n --out --clear --param-rk=0xb /dev/$B || break
		rc=0
		break
	done
	[ -n "${wpid:-}" ] && kill $wpid 2>/dev/null && wait $wpid 2>/dev/null
	[ $rc = 0 ] || sg_persist -n --out --clear --param-rk=0xb /dev/$B >/dev/null 2>&1
	echo "$tmo_a" > /sys/block/$A/device/timeout
	_prf_b_logout $port
	return $rc
}

kernel_tcp_scenario() {
	step "network up (veth0 $LAB_IP)" lab_net
	step "target started" target_start
	step "iscsid started" iscsid_start
	step "discovery lists $TARGET_IQN" k_discover "$TARGET_IQN"
	step "login (iscsi_tcp)" k_login "$TARGET_IQN"
	step "block device found, size $TARGET_SIZE" _check_dev
	step "write 64 MiB, O_DIRECT" _dio_write
	step "read 64 MiB back, O_DIRECT, compare" _dio_read
	step "mkfs.ext4" _mkfs
	step "mount, copy 8 MiB file, sync, umount" _fs_write
	step "remount, compare file, umount, fsck" _fs_verify
	step "PREEMPT AND ABORT from a second initiator fences the first's writes" pr_fence tcp 3260
	step "logout" k_logout "$TARGET_IQN"
	[ $LAB_FAILED = 0 ] || _teardown
	cleanup "target stopped cleanly" target_stop
	iscsid_stop
	lab_finish
}

# --- RDMA fabrics and iserd over iSER (job-kernel-iser.sh, job-libiscsi-iser.sh) -------------------
# rdma_fabric_up rxe|siw: veth pair plus soft-RoCE (rxe0) or soft-iWARP (siw0) on veth0
rdma_fabric_up() {
	lab_net || return 1
	modprobe rdma_ucm
	case ${1:-rxe} in
	rxe) modprobe rdma_rxe && rdma link add rxe0 type rxe netdev veth0 || return 1 ;;
	siw) modprobe siw && rdma link add siw0 type siw netdev veth0 || return 1 ;;
	*) echo "unknown fabric $1"; return 1 ;;
	esac
	rdma link show
	ls /sys/class/infiniband
}
# iserd_start LOG ARGS...: runs $ISERD_BIN ARGS in the background (ISERD_PID), waits for "ready"
ISERD_PID=
iserd_start() {
	local log=$1 i; shift
	"$ISERD_BIN" "$@" > "$log" 2>&1 &
	ISERD_PID=$!
	note "iserd pid $ISERD_PID: $*"
	# an rdma_cm listener on RoCE holds no TCP socket: wait for the log line instead
	for ((i = 0; i < 300; i++)); do
		grep -q "info: ready" "$log" && { cat "$log"; return 0; }
		kill -0 $ISERD_PID 2>/dev/null || { cat "$log"; wait $ISERD_PID; echo "iserd exited ($?)"; ISERD_PID=; return 1; }
		sleep 0.2
	done
	cat "$log"; return 1
}
# iserd_stag_probe PORT LUN_BYTES [DEV [NEXT_BYTES]]: no peer can RDMA Write into iserd's memory.
# - rxe gives an MR an rkey only when it allows remote access (rkey 0x0 otherwise): every MR the
#   kernel lists for iserd (`rdma res show mr`, as root) must show rkey 0x0.
# - The RAM LUN of LUN_BYTES: its MR covers its whole mmap, found by size in /proc/PID/maps, so
#   its STag (siw's STag serves as both keys) and address are known. The
#   verbs client /lab/files/isd_stagprobe (tests/integration/isd_stagprobe.c) connects to the iSER
#   portal on PORT without logging in and RDMA Writes "ISDPROBE" to the LUN's last 8 bytes: the
#   Write must be refused (a completion error, or on iWARP the connection terminated). With DEV
#   (the LUN through an initiator) its last 4 KiB block is zeroed before and read back after: the
#   bytes must not be there. NEXT_BYTES: a RAM LUN created after it, whose mmap the kernel merged
#   below it (mappings grow down): the LUN is then the top LUN_BYTES of that mapping.
iserd_stag_probe() {
	local port=$1 lunlen=$2 dev=${3:-} next=${4:-0} mrs key range s e va='' rc
	local lunblk=$(($2 / 4096 - 1))
	[ -x /lab/files/isd_stagprobe ] || { echo "isd_stagprobe was not built"; return 1; }
	mrs=$(rdma res show mr 2>/dev/null | grep "pid $ISERD_PID ")
	echo "$mrs"
	[ -n "$mrs" ] || { echo "the kernel lists no MR of iserd"; return 1; }
	if [ "$FABRIC" = rxe ]; then
		if echo "$mrs" | grep -v " rkey 0x0 "; then echo "^ MRs with a remote key"; return 1; fi
		echo "no MR of iserd has a remote key (rkey 0x0 on every one)"
	fi
	# the STag to aim at: the LUN MR's key (siw's STag is both keys; rxe's rkey would be 0)
	key=$(echo "$mrs" | sed -n "s/.* lkey \(0x[0-9a-f]*\) mrlen $lunlen .*/\1/p" | head -1)
	while read -r range _; do
		s=$((0x${range%-*})) e=$((0x${range#*-}))
		[ $((e - s)) = $((lunlen + next)) ] && va=$((e - lunlen))
	done < /proc/$ISERD_PID/maps
	[ -n "$key" ] && [ -n "$va" ] || { echo "no MR or mapping of $lunlen bytes (the LUN)"; return 1; }
	echo "the LUN: STag $key, memory at $(printf '0x%x' $va)"
	if [ -n "$dev" ]; then
		dd if=/dev/zero of=/dev/$dev bs=4K count=1 seek=$lunblk oflag=direct status=none || return 1
	fi
	timeout 120 /lab/files/isd_stagprobe $LAB_IP $port $key $(printf '0x%x' $((va + lunlen - 8)))
	rc=$?
	[ $rc = 2 ] || { echo "the RDMA Write to the LUN was not refused (exit $rc)"; return 1; }
	[ -n "$dev" ] || return 0
	dd if=/dev/$dev of=/tmp/lunblk bs=4K count=1 skip=$lunblk iflag=direct status=none || return 1
	if grep -q ISDPROBE /tmp/lunblk; then echo "the probe's bytes landed in the LUN"; return 1; fi
	echo "the LUN's last block is unchanged"
}
# iserd_stop: SIGTERM; iserd must exit with status 0 within 30 s
iserd_stop() {
	[ -n "$ISERD_PID" ] || return 0
	local pid=$ISERD_PID i rc; ISERD_PID=
	if ! kill -0 $pid 2>/dev/null; then
		wait $pid; echo "iserd had already exited (status $?)"; return 1
	fi
	kill -TERM $pid
	for ((i = 0; i < 150; i++)); do kill -0 $pid 2>/dev/null || break; sleep 0.2; done
	if kill -0 $pid 2>/dev/null; then
		echo "iserd still running 30 s after SIGTERM"; kill -KILL $pid; wait $pid; return 1
	fi
	wait $pid; rc=$?
	echo "iserd exited with status $rc"
	[ $rc = 0 ]
}
# iserd_stats LOG: SIGUSR1 to iserd, then prints the JSON of the stats line it logs
iserd_stats() {
	local log=$1 i n
	n=$(grep -c "current stats" "$log")
	kill -USR1 "$ISERD_PID"
	for ((i = 0; i < 50; i++)); do [ "$(grep -c "current stats" "$log")" -gt "$n" ] && break; sleep 0.1; done
	grep "current stats" "$log" | tail -1 | sed 's/.*current stats //'
}
# iserd_stat LOG NAME: one number from those stats ("remote_invalidations", "bytes_copied"...)
iserd_stat() {
	iserd_stats "$1" | sed -n "s/.*\"$2\":\([0-9]*\).*/\1/p"
}
# iserd_idle_check LOG: every iSER connection freed and iserd's counters back to zero: the last
# "live iSER resources" line (logged as each connection is freed) shows no connection, QP, CQ,
# connection MR, data buffer or transfer job left, and SIGUSR1's stats show no session,
# connection or task. Waits up to 20 s for connections still draining. With "zero-copy" as its
# second argument (a target whose LUNs are all RAM), the stats must also show "bytes_copied":0:
# no payload byte went through a staging or bounce buffer (immediate data stored into the LU's
# memory counts as "bytes_placed").
iserd_idle_check() {
	local log=$1 zc=${2:-} i n line zero="conns 0 qps 0 cqs 0 conn_mrs 0 bufs 0 jobs 0 remote_mrs 0 "
	kill -0 "$ISERD_PID" 2>/dev/null || { echo "iserd is not running"; return 1; }
	for ((i = 0; i < 100; i++)); do
		line=$(grep "live iSER resources" "$log" | tail -1)
		case $line in *"$zero"*) break ;; esac
		sleep 0.2
	done
	echo "iSER: ${line#*live iSER resources: }"
	case $line in *"$zero"*) ;; *) echo "iSER resources not back to zero"; return 1 ;; esac
	line=$(iserd_stats "$log")
	echo "core: $line"
	case $line in *'"sessions":0,"connections":0,"tasks":0,'*) ;;
	*) echo "core counters not back to zero"; return 1 ;; esac
	if [ "$zc" = zero-copy ]; then
		case $line in *'"bytes_copied":0,'*) echo "zero copy: bytes_copied 0" ;;
		*) echo "RAM LUNs only, yet payload was copied (bytes_copied not 0)"; return 1 ;; esac
	fi
}
