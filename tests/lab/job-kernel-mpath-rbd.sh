# shellcheck shell=bash
# Lab job (guest side of tests/interop/test_kernel_mpath_rbd.sh): one Ceph RBD image behind two
# iserd gateways, under the kernel initiator and dm-multipath (multipathd), with a gateway killed
# in the middle of verified writes.
#
# In one boot: a one-node Ceph cluster (tests/lib/ceph.sh, passed as /lab/files/ceph.sh; memstore
# OSD, cephx) with a 64 MiB image; udevd with only the storage and device-mapper rules (multipathd
# finds paths through udev's database); multipathd with a private /etc/multipath.conf
# (group_by_prio, prio alua, hardware_handler "1 alua", path_checker tur, no_path_retry queue,
# failback immediate). Then, for each transport in PASSES (tcp, then iser on soft-RoCE):
#   - gateways A (port 3260, tpgt and ALUA group 1) and B (3261, group 2) export the image with
#     lock=exclusive as the same LU (serial, NAA); A starts first and owns the lock, B standby;
#   - the kernel logs in through both: one dm device, two path groups, prio 50 (A) and 1 (B);
#   - fio writes 32 MiB of the device at random with crc32c verification (verify_backlog) while A is
#     killed with SIGKILL; the job then plays the cluster manager: once A is seen dead it runs
#     `iserctl lun takeover` on B (iserd never takes a lock over by itself: docs/ceph.md); fio
#     must end with no error, having written everything;
#   - A restarts with the same configuration: B holds the lock, so A comes up standby and its
#     path returns as the prio 1 group, B's the prio 50 one;
#   - fio --verify_only reads and checks every block written;
#   - logout; the dm device goes away; both gateways stop with status 0.
# librbd's cache is off in the gateways' ceph.conf: fio never flushes, and a write acknowledged
# from a write-back cache of a gateway killed with SIGKILL would be lost (docs/ceph.md).
# Env: ISERD_BIN, ISERCTL_BIN (default /lab/files/iserd, /lab/files/iserctl), CEPH_SH (default
# /lab/files/ceph.sh), PASSES ("tcp iser"), IMAGE_SIZE (64M), FIO_SIZE (32M: what fio writes, about
# 40 s under TCG), FIO_RATE (write rate bound, 2m, so that the kill lands mid-run on a faster
# machine too), KILL_AFTER_MB (MiB written through the dm device before A is killed, 4).
. /lab/guest.sh
IQN=iqn.2026-12.org.iserd:mpath
ISERD_BIN=${ISERD_BIN:-/lab/files/iserd}
ISERCTL_BIN=${ISERCTL_BIN:-/lab/files/iserctl}
CEPH_SH=${CEPH_SH:-/lab/files/ceph.sh}
PASSES=${PASSES:-tcp iser}
IMAGE_SIZE=${IMAGE_SIZE:-64M}
FIO_SIZE=${FIO_SIZE:-32M}
FIO_RATE=${FIO_RATE:-2m}
KILL_AFTER_MB=${KILL_AFTER_MB:-4}
NAA=6001405c0ffee0123456789abcdef012
MAP=3$NAA                       # multipath's map name: the WWID (user_friendly_names no)
IMAGE=rbd/mpath
T=''                            # the pass: tcp or iser
PID_A='' PID_B='' DEV_A='' DEV_B='' UDEV_PID='' MPD_PID='' FIO_PID=''

# librados and librbd are not built with the sanitizer: their allocations left at exit are not
# iserd's leaks
cat > /tmp/lsan.supp <<'EOS'
leak:librados.so
leak:librbd.so
leak:libceph-common.so
EOS
export LSAN_OPTIONS=${LSAN_OPTIONS:+$LSAN_OPTIONS:}suppressions=/tmp/lsan.supp

ctl() {  # A|B ARGS...
	local sock=/run/iserd-mp-$1.sock; shift
	ASAN_OPTIONS=${ASAN_OPTIONS:+$ASAN_OPTIONS:}detect_leaks=0 \
		timeout 60 "$ISERCTL_BIN" --socket "$sock" "$@"
}
lun_field() {  # A|B FIELD: one field of lun.show
	ctl "$1" --json lun show $IQN 0 2>/dev/null |
		python3 -c 'import json, sys; print(json.load(sys.stdin).get(sys.argv[1], ""))' "$2"
}
# lun_is A|B STATE LOCK [SECONDS]: until lun.show says that ALUA state and lock
lun_is() {
	local i s l
	for ((i = 0; i < ${4:-30} * 5; i++)); do
		s=$(lun_field "$1" alua_state) l=$(lun_field "$1" lock)
		[ "$s" = "$2" ] && [ "$l" = "$3" ] && { echo "gateway $1: $s, lock $l"; return 0; }
		sleep 0.2
	done
	echo "gateway $1: '$s', lock '$l'; expected $2, lock $3"; return 1
}

# --- once per boot ------------------------------------------------------------------------------
net_up() {
	case " $PASSES " in
	*" iser "*) rdma_fabric_up rxe ;;
	*) lab_net ;;
	esac
}
modules() {
	modprobe -a dm_multipath dm_service_time scsi_dh_alua sg || return 1
	case " $PASSES " in *" iser "*) modprobe ib_iser || return 1 ;; esac
}
ceph_up() {
	# shellcheck source=../lib/ceph.sh
	. "$CEPH_SH" || return 1
	isd_ceph_start /tmp/ceph || return 1
	echo "one-node Ceph cluster up in ${ISD_CEPH_START_S}s"
	printf '[client]\nrbd cache = false\n' >> "$ISD_CEPH_CONF"
	isd_ceph rbd create --size "$IMAGE_SIZE" $IMAGE || return 1
	isd_ceph rbd info $IMAGE | grep -E 'size|features'
}
# udevd with only the rules multipath needs: without udev's database multipathd sees no path
# (it enumerates initialized devices only), and the device-mapper rules answer libdevmapper's
# udev cookies. The host's other rules stay hidden (they would load modules, run daemons).
udev_up() {
	local r
	mkdir -p /tmp/udev-rules
	for r in 50-udev-default 55-dm 55-scsi-sg3_id 56-dm-mpath 60-multipath 60-persistent-storage \
		95-dm-notify; do
		cp /lib/udev/rules.d/$r.rules /tmp/udev-rules/ || return 1
	done
	mount -t tmpfs tmpfs /lib/udev/rules.d && cp /tmp/udev-rules/* /lib/udev/rules.d/ || return 1
	mount -t tmpfs tmpfs /etc/udev/rules.d || return 1
	setsid /lib/systemd/systemd-udevd > $OUT/udevd.log 2>&1 &
	UDEV_PID=$!
	sleep 1
	kill -0 $UDEV_PID || { cat $OUT/udevd.log; return 1; }
	udevadm trigger --subsystem-match=block --action=add
	timeout 60 udevadm settle
}
MPCONF='defaults {
	user_friendly_names no
	find_multipaths off
	polling_interval 1
}
blacklist {
	device {
		vendor ".*"
		product ".*"
	}
}
blacklist_exceptions {
	device {
		vendor "ISERD"
		product ".*"
	}
}
devices {
	device {
		vendor "ISERD"
		product ".*"
		path_grouping_policy group_by_prio
		prio alua
		hardware_handler "1 alua"
		path_checker tur
		path_selector "service-time 0"
		no_path_retry queue
		failback immediate
	}
}'
multipathd_up() {
	mkdir -p /etc/multipath
	echo "$MPCONF" > /etc/multipath.conf
	cp /etc/multipath.conf $OUT/multipath.conf
	setsid multipathd -d -s -v3 > $OUT/multipathd.log 2>&1 &
	MPD_PID=$!
	local i
	for ((i = 0; i < 50; i++)); do
		multipathd show daemon 2>/dev/null | grep -q "^pid" && { multipathd show daemon; return 0; }
		kill -0 $MPD_PID 2>/dev/null || { tail -20 $OUT/multipathd.log; return 1; }
		sleep 0.2
	done
	echo "multipathd does not answer"; return 1
}

# --- one pass -----------------------------------------------------------------------------------
conf() {  # GATEWAY PORT GROUP PEER
	cat > /tmp/mp-$1.conf <<-EOC
		global = { control_socket = "/run/iserd-mp-$1.sock"; };
		portals = ( { url = "$T://$LAB_IP:$2"; tpgt = $3; } );
		targets = ( { name = "$IQN"; tpgt = $3; alua_group = $3; alua_peers = [ $4 ];
		  alua_peer_state = "standby";
		  luns = ( { number = 0;
		             backing = "rbd:$IMAGE,conf=$ISD_CEPH_CONF,id=$ISD_CEPH_CLIENT,lock=exclusive";
		             serial = "MPRBD0"; naa = "$NAA"; } ); } );
	EOC
}
gw_start() {  # A|B LOGNAME
	iserd_start $OUT/iserd-$2.log -c /tmp/mp-$1.conf > /dev/null || { cat $OUT/iserd-$2.log; return 1; }
	if [ $1 = A ]; then PID_A=$ISERD_PID; else PID_B=$ISERD_PID; fi
	note "gateway $1: pid $ISERD_PID"
}
gateways() {
	conf A 3260 1 2 && conf B 3261 2 1 || return 1
	gw_start A A-$T && lun_is A active/optimized owner 10 || return 1
	gw_start B B-$T && lun_is B standby other 10
}
iface() { if [ $T = iser ]; then echo iser; else echo default; fi; }
login() {  # PORT
	timeout 60 iscsiadm -m discovery -t sendtargets -p $LAB_IP:$1 -I "$(iface)" || return 1
	# a dead gateway's path fails within 5 s instead of the lab's 20: multipath takes it from there
	iscsiadm -m node -T $IQN -p $LAB_IP:$1 -I "$(iface)" -o update \
		-n node.session.timeo.replacement_timeout -v 5 || return 1
	timeout 90 iscsiadm -m node -T $IQN -p $LAB_IP:$1 -I "$(iface)" --login
}
# dev_of PORT: the sdX of LUN 0 of the session that came through PORT
dev_of() {
	local i s d
	for ((i = 0; i < 100; i++)); do
		for s in /sys/class/iscsi_session/session*; do
			[ "$(cat $s/device/connection*/iscsi_connection/*/persistent_port 2>/dev/null)" = "$1" ] ||
				continue
			for d in $s/device/target*/*:*:*:0/block/*; do
				[ -e "$d" ] && [ -b /dev/${d##*/} ] && { echo ${d##*/}; return 0; }
			done
		done
		sleep 0.2
	done
	return 1
}
logins() {
	login 3260 && login 3261 || return 1
	DEV_A=$(dev_of 3260) && DEV_B=$(dev_of 3261) || { echo "no block device for a path"; return 1; }
	iscsiadm -m session -P 1 | grep -E "Target:|Current Portal|Iface Transport" | head -6
	echo "A: $DEV_A ($(cat /sys/block/$DEV_A/size) sectors), B: $DEV_B ($(cat /sys/block/$DEV_B/size) sectors)"
	[ "$(iscsiadm -m session -P 1 | grep -c "Iface Transport: $( [ $T = iser ] && echo iser || echo tcp)")" = 2 ] ||
		{ echo "the sessions do not both run over $T"; return 1; }
}
# mp_groups: "PRIO:sdX ..." of the map's path groups, in the kernel's order
mp_groups() {
	multipathd show topology 2>/dev/null | awk '
		/policy=/ { match($0, /prio=[0-9]+/); p = substr($0, RSTART + 5, RLENGTH - 5) }
		/ sd[a-z]+ / { for (i = 1; i <= NF; i++) if ($i ~ /^sd[a-z]+$/) printf "%s%s:%s", s, p, $i; s = " " }'
}
# want_groups REGEX [SECONDS]: until the one multipath device's groups ("PRIO:sdX PRIO:sdX", the
# kernel's order) match REGEX
want_groups() {
	local i got maps
	for ((i = 0; i < ${2:-30} * 2; i++)); do
		got=$(mp_groups)
		maps=$(dmsetup ls --target multipath 2>/dev/null | grep -c .)
		[[ $got =~ ^$1$ ]] && [ "$maps" = 1 ] && break
		sleep 0.5
	done
	multipathd show topology
	multipathd show paths format "%d %t %T %p %s"
	[ "$maps" = 1 ] || { echo "$maps multipath devices, expected 1"; dmsetup ls; return 1; }
	[[ $got =~ ^$1$ ]] || { echo "path groups '$got', expected '$1'"; return 1; }
	echo "one multipath device, path groups (prio:path) $got"
}
groups_initial() { want_groups "50:$DEV_A 1:$DEV_B" 60; }
dm_writes_mb() {  # MiB written through the dm device so far
	local d
	d=$(basename "$(readlink -f /dev/mapper/$MAP)")
	awk '{ printf "%d", $7 / 2048 }' /sys/block/$d/stat
}
fio_args() {  # the job, the same for the writing and the verifying run
	echo --name=mp-$T --filename=/dev/mapper/$MAP --direct=1 --ioengine=libaio --iodepth=8 \
		--rw=randwrite --bs=16k --size=$FIO_SIZE --randseed=4242 --verify=crc32c \
		--verify_fatal=1 --exitall_on_error=1
}
# the cluster manager: notices A is gone (its pid, then its control socket), takes over on B
manager_takeover() {
	local t0=$1
	wait $PID_A 2>/dev/null
	note "gateway A (pid $PID_A) is dead"
	PID_A=''
	! ctl A lun show $IQN 0 > /dev/null 2>&1 || { echo "A's control socket still answers"; return 1; }
	ctl B lun takeover $IQN 0 || return 1
	lun_is B active/optimized owner 60 || return 1
	note "B owns the lock and is active/optimized $(awk -v a="$t0" -v b="$(now)" 'BEGIN { printf "%.1f", b - a }')s after the kill"
}
fio_failover() {
	local i rc t0 w r mb
	# shellcheck disable=SC2046
	timeout 600 fio $(fio_args) --verify_backlog=256 --rate=,$FIO_RATE \
		> $OUT/fio-$T.txt 2>&1 &
	FIO_PID=$!
	for ((i = 0; i < 600; i++)); do
		mb=$(dm_writes_mb)
		[ "${mb:-0}" -ge "$KILL_AFTER_MB" ] && break
		kill -0 $FIO_PID 2>/dev/null || break
		sleep 0.2
	done
	kill -0 $FIO_PID 2>/dev/null || { echo "fio ended before the kill"; cat $OUT/fio-$T.txt; return 1; }
	t0=$(now)
	note "${mb} MiB written through $MAP: kill -9 gateway A (pid $PID_A)"
	kill -KILL $PID_A || return 1
	manager_takeover "$t0"; rc=$?
	if [ $rc = 0 ]; then
		# B's path in the prio 50 group: a failed path keeps the priority multipathd last read
		# (A's 50: group_by_prio may then put both paths in one group until A is back)
		want_groups "(.* )?50:$DEV_B( .*)?" 60 || rc=1
	fi
	note "written so far: $(dm_writes_mb) MiB; waiting for fio"
	wait $FIO_PID; i=$?
	FIO_PID=''
	cat $OUT/fio-$T.txt
	[ $rc = 0 ] || return $rc
	[ $i = 0 ] || { echo "fio exit $i"; return 1; }
	grep -q "err= 0" $OUT/fio-$T.txt || { echo "fio reported errors"; return 1; }
	w=$(sed -n 's/^ *WRITE:.* io=\([^ ]*\) .*/\1/p' $OUT/fio-$T.txt)
	r=$(sed -n 's/^ *READ:.* io=\([^ ]*\) .*/\1/p' $OUT/fio-$T.txt)
	echo "fio: written $w, verified along the way $r, no error"
	[ "$w" = "${FIO_SIZE%M}.0MiB" ] || { echo "fio did not write all $FIO_SIZE"; return 1; }
}
restart_a() {
	local i
	gw_start A A-$T-restarted || return 1
	lun_is A standby other 30 || return 1
	# iscsid logs in again by itself; the checker finds the path, prio 1 (standby: ghost)
	want_groups "50:$DEV_B 1:$DEV_A" 90 || return 1
	# the prioritizer may see the standby state before the checker's next TEST UNIT READY does
	for ((i = 0; i < 60; i++)); do
		multipathd show paths format "%d %t %T" | grep -q "^$DEV_A  *active  *ghost" && break
		sleep 0.5
	done
	multipathd show paths format "%d %t %T"
	multipathd show paths format "%d %t %T" | grep -q "^$DEV_A  *active  *ghost" ||
		{ echo "A's path is not an active ghost (standby) path"; return 1; }
}
fio_verify() {
	local r rb0 rb1 ra0 ra1
	read -r rb0 _ < /sys/block/$DEV_B/stat; read -r ra0 _ < /sys/block/$DEV_A/stat
	# shellcheck disable=SC2046
	timeout 300 fio $(fio_args) --verify_only > $OUT/fio-$T-verify.txt 2>&1 ||
		{ cat $OUT/fio-$T-verify.txt; return 1; }
	cat $OUT/fio-$T-verify.txt
	read -r rb1 _ < /sys/block/$DEV_B/stat; read -r ra1 _ < /sys/block/$DEV_A/stat
	grep -q "err= 0" $OUT/fio-$T-verify.txt || { echo "fio reported errors"; return 1; }
	r=$(sed -n 's/^ *READ:.* io=\([^ ]*\) .*/\1/p' $OUT/fio-$T-verify.txt)
	echo "verified $r: reads through B $((rb1 - rb0)), through A $((ra1 - ra0))"
	[ "$r" = "${FIO_SIZE%M}.0MiB" ] || { echo "fio did not verify all $FIO_SIZE"; return 1; }
	[ $((rb1 - rb0)) -gt 0 ] || { echo "no read went through B"; return 1; }
}
logout_pass() {
	local i
	multipathd disablequeueing maps > /dev/null
	timeout 60 iscsiadm -m node -T $IQN --logout || return 1
	iscsiadm -m node -T $IQN -o delete
	for ((i = 0; i < 60; i++)); do
		dmsetup ls --target multipath 2>/dev/null | grep -q "^$MAP" || break
		sleep 0.5
	done
	# multipathd removes the map with its last path; flush it if it did not
	if dmsetup ls --target multipath 2>/dev/null | grep -q "^$MAP"; then
		multipath -f $MAP || { echo "the multipath device is still there"; return 1; }
	fi
	multipathd enablequeueing maps > /dev/null 2>&1
	echo "sessions and the multipath device gone"
}
stop_both() {
	local rc=0
	[ -n "$FIO_PID" ] && { kill $FIO_PID; wait $FIO_PID; FIO_PID=''; }
	ISERD_PID=$PID_A; iserd_stop || rc=1
	ISERD_PID=$PID_B; iserd_stop || rc=1
	PID_A='' PID_B=''
	return $rc
}
run_pass() {
	T=$1
	step "$T: gateways started: A (group 1) owns the lock, active/optimized; B (group 2) standby" \
		gateways
	step "$T: login through A and B" logins
	step "$T: one multipath device, path groups prio 50 (A) and 1 (B)" groups_initial
	step "$T: fio randwrite+verify; A killed -9 mid-run, takeover on B; no error in fio" fio_failover
	step "$T: A restarted: standby, its path back as the prio 1 group" restart_a
	step "$T: every block written verifies (fio --verify_only, through B)" fio_verify
	step "$T: logout, the multipath device gone" logout_pass
	cleanup "$T: gateways stopped cleanly" stop_both
}
final_teardown() {  # after a failure: release what still holds the gateways or the cluster
	[ -n "$FIO_PID" ] && kill $FIO_PID 2>/dev/null
	multipathd disablequeueing maps > /dev/null 2>&1
	iscsiadm -m session > /dev/null 2>&1 && timeout 60 iscsiadm -m node --logoutall=all
	[ -n "$PID_A$PID_B" ] && { kill -KILL $PID_A $PID_B 2>/dev/null; wait; }
	true
}

step "network up (veth0 $LAB_IP$(case " $PASSES " in *" iser "*) echo ", rxe0" ;; esac))" net_up
step "dm_multipath, scsi_dh_alua, sg$(case " $PASSES " in *" iser "*) echo ", ib_iser" ;; esac) loaded" modules
step "one-node Ceph cluster up, image $IMAGE ($IMAGE_SIZE) created" ceph_up
step "udevd (storage and dm rules only)" udev_up
step "multipathd started (group_by_prio, prio alua, hardware_handler 1 alua)" multipathd_up
step "iscsid started" iscsid_start
for p in $PASSES; do run_pass "$p"; done
[ $LAB_FAILED = 0 ] || final_teardown
iscsid_stop
[ -n "$MPD_PID" ] && { kill $MPD_PID; wait $MPD_PID 2>/dev/null; }
[ -n "$UDEV_PID" ] && { kill $UDEV_PID; wait $UDEV_PID 2>/dev/null; }
declare -F isd_ceph_stop > /dev/null && isd_ceph_stop
cp -r /tmp/ceph/log $OUT/ceph-log 2>/dev/null
lab_finish
