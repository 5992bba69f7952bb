# shellcheck shell=bash
# Lab job (guest side of tests/interop/test_kernel_alua.sh): two iserd gateways export one LU with
# implicit ALUA to the Linux kernel's iSCSI/TCP initiator and its scsi_dh_alua device handler.
# Gateway A (port 3260, tpgt and ALUA group 1) and gateway B (port 3261, group 2) serve the same
# file as LUN 0 of the same target with the same serial and NAA designator; A starts
# active/optimized, B standby. The kernel logs in to both: each path gets the alua handler, the
# access states the gateways report (sysfs access_state), sg_inq sees TPGS 1 and both paths the
# same designator, sg_rtpg reads each gateway's groups; O_DIRECT reads work through A and fail at
# once through B (scsi_dh_alua refuses I/O on a standby path). Then a failover through iserctl: A
# transitioning, then standby, B active/optimized; after a rescan the kernel's states follow and
# the data A wrote reads back through B.
# Env: ISERD_BIN, ISERCTL_BIN (default /lab/files/iserd, /lab/files/iserctl).
. /lab/guest.sh
IQN=iqn.2026-12.org.iserd:alua
ISERD_BIN=${ISERD_BIN:-/lab/files/iserd}
ISERCTL_BIN=${ISERCTL_BIN:-/lab/files/iserctl}
NAA=6001405abcdef0123456789abcdef012
IMG=/tmp/shared.img
PID_A='' PID_B='' DEV_A='' DEV_B=''

ctl() {  # A|B ARGS...
	local sock=/run/iserd-alua-$1.sock; shift
	ASAN_OPTIONS=${ASAN_OPTIONS:+$ASAN_OPTIONS:}detect_leaks=0 \
		timeout 60 "$ISERCTL_BIN" --socket "$sock" "$@"
}
conf() {  # GATEWAY PORT GROUP PEER STATE
	cat > /tmp/alua-$1.conf <<-EOC
		global = { control_socket = "/run/iserd-alua-$1.sock"; };
		portals = ( { url = "tcp://$LAB_IP:$2"; tpgt = $3; } );
		targets = ( { name = "$IQN"; tpgt = $3; alua_group = $3; alua_peers = [ $4 ];
		  alua_peer_state = "standby";
		  luns = ( { number = 0; backing = "file:$IMG"; serial = "ALUA0";
		             naa = "$NAA"; alua_state = "$5"; } ); } );
	EOC
}
start() {
	truncate -s 64M $IMG || return 1
	conf A 3260 1 2 active/optimized && conf B 3261 2 1 standby || return 1
	iserd_start $OUT/iserd-a.log -c /tmp/alua-A.conf || return 1
	PID_A=$ISERD_PID
	iserd_start $OUT/iserd-b.log -c /tmp/alua-B.conf || return 1
	PID_B=$ISERD_PID
}
login() {  # PORT
	timeout 60 iscsiadm -m discovery -t sendtargets -p $LAB_IP:$1 || return 1
	timeout 90 iscsiadm -m node -T $IQN -p $LAB_IP:$1 -I default --login
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
devices() {
	DEV_A=$(dev_of 3260) && DEV_B=$(dev_of 3261) || return 1
	echo "A: $DEV_A, B: $DEV_B"
}
sg_of() {
	local g n
	g=$(ls /sys/block/$1/device/scsi_generic/ 2>/dev/null | head -1)
	[ -n "$g" ] || { echo "no sg node for $1" >&2; return 1; }
	n=$(cat /sys/class/scsi_generic/$g/dev)
	[ -c /dev/$g ] || mknod /dev/$g c "${n%%:*}" "${n##*:}" || return 1
	echo /dev/$g
}
# states SDX WANT [SECONDS]: until the kernel's access_state of SDX is WANT
state_is() {
	local i s
	for ((i = 0; i < ${3:-20} * 5; i++)); do
		s=$(cat /sys/block/$1/device/access_state 2>/dev/null)
		[ "$s" = "$2" ] && { echo "$1: $s (handler $(cat /sys/block/$1/device/dh_state))"; return 0; }
		sleep 0.2
	done
	echo "$1: access_state '$s', expected '$2'"; return 1
}
handlers() {
	local d
	for d in $DEV_A $DEV_B; do
		[ "$(cat /sys/block/$d/device/dh_state)" = alua ] ||
			{ echo "$d: handler '$(cat /sys/block/$d/device/dh_state)'"; return 1; }
	done
	state_is $DEV_A active/optimized && state_is $DEV_B standby
}
identity() {
	local a b
	sg_inq "$(sg_of $DEV_A)" | tee /tmp/inq-a | grep -E "TPGS=1" || { cat /tmp/inq-a; return 1; }
	a=$(sg_vpd -p di "$(sg_of $DEV_A)") && b=$(sg_vpd -p di "$(sg_of $DEV_B)") || return 1
	echo "$a"
	echo "$a" | grep -qi "0x$NAA" || { echo "A's NAA is not $NAA"; return 1; }
	echo "$b" | grep -qi "0x$NAA" || { echo "B's NAA is not $NAA"; echo "$b"; return 1; }
	echo "$a" | grep -q "Target port group: 0x1\$" || { echo "A's group is not 1"; return 1; }
	echo "$b" | grep -q "Target port group: 0x2\$" || { echo "B's group is not 2"; echo "$b"; return 1; }
}
# rtpg SDX "GROUP:STATE ..." : sg_rtpg -d lists those groups with those states, as it names them
# ("active/non optimized": write active/non_optimized)
rtpg() {
	local out g st
	out=$(sg_rtpg -d "$(sg_of $1)") || { echo "$out"; return 1; }
	echo "$out"
	for g in $2; do
		st=${g#*:}
		echo "$out" | grep -A1 -E "target port group id : 0x0*${g%%:*} " |
			grep -q "(${st//_/ })" || { echo "group ${g%%:*} is not ${st//_/ }"; return 1; }
	done
}
read_ok() { dd if=/dev/$1 of=/dev/null bs=4K count=16 iflag=direct status=none; }
# read_fails SDX: no block comes back: the handler refuses the I/O (a standby port answers READ
# CAPACITY, so sd sizes the disk; before that it was 0 sectors)
read_fails() {
	rm -f /tmp/got
	dd if=/dev/$1 of=/tmp/got bs=4K count=1 iflag=direct status=none
	echo "dd exit $?, $(stat -c %s /tmp/got 2>/dev/null || echo 0) bytes;" \
		"$1 is $(cat /sys/block/$1/size) sectors"
	[ "$(stat -c %s /tmp/got 2>/dev/null || echo 0)" = 0 ] || { echo "a read through $1 worked"; return 1; }
}
write_a() {
	head -c 65536 /dev/urandom > /tmp/pat || return 1
	dd if=/tmp/pat of=/dev/$DEV_A bs=64K count=1 oflag=direct status=none
}
failover() {
	ctl A lun alua $IQN 0 transitioning || return 1
	ctl A lun alua $IQN 0 standby || return 1
	ctl B lun alua $IQN 0 active/optimized || return 1
	ctl B lun show $IQN 0
	# the kernel learns it on the next command of each path (unit attention 2Ah/06h) or on a
	# rescan; a standby path sends no I/O, so rescan both
	echo 1 > /sys/block/$DEV_A/device/rescan
	echo 1 > /sys/block/$DEV_B/device/rescan
	state_is $DEV_B active/optimized 30 && state_is $DEV_A standby 30
}
read_back_b() {
	dd if=/dev/$DEV_B of=/tmp/back bs=64K count=1 iflag=direct status=none || return 1
	cmp /tmp/pat /tmp/back && echo "the data written through A reads back through B"
}
logout_all() {
	timeout 60 iscsiadm -m node -T $IQN --logout
}
stop_both() {
	local rc=0
	ISERD_PID=$PID_A; iserd_stop || rc=1
	ISERD_PID=$PID_B; iserd_stop || rc=1
	return $rc
}

step "network up (veth0 $LAB_IP)" lab_net
step "scsi_dh_alua and sg loaded" modprobe -a scsi_dh_alua sg
step "gateways started (A: group 1, active/optimized; B: group 2, standby)" start
step "iscsid started" iscsid_start
step "login through A" login 3260
step "login through B" login 3261
step "block devices of both paths" devices
step "alua handler on both, access states active/optimized and standby" handlers
step "sg_inq TPGS=1, same NAA designator, own target port groups" identity
step "sg_rtpg through A: 1 active/optimized, 2 standby" rtpg "$DEV_A" "1:active/optimized 2:standby"
step "sg_rtpg through B: 2 standby, 1 active/optimized" rtpg "$DEV_B" "2:standby 1:active/optimized"
step "reads through A" read_ok "$DEV_A"
step "reads through B refused (standby)" read_fails "$DEV_B"
step "64 KiB written through A" write_a
step "failover by iserctl: the kernel sees B active/optimized, A standby" failover
step "sg_rtpg through B after failover" rtpg "$DEV_B" "2:active/optimized 1:standby"
step "the data reads back through B" read_back_b
step "reads through A refused (standby)" read_fails "$DEV_A"
step "logout" logout_all
cleanup "gateways stopped cleanly" stop_both
iscsid_stop
lab_finish
