# shellcheck shell=bash disable=SC2034  # TARGET_* are read by guest.sh
# Lab job (guest side of tests/interop/test_kernel_xcopy.sh): EXTENDED COPY through the Linux
# kernel's iSCSI/TCP initiator. iserd serves two targets, S with two 320 MiB RAM LUNs and D with
# one; the kernel logs in to both. 256 MiB of random data are written to S's LUN 0 (O_DIRECT),
# then sg_xcopy (sg3-utils) copies them twice with EXTENDED COPY: to S's LUN 1 (within a target)
# and to D's LUN 0 (between targets of the same iserd). Each copy is read back O_DIRECT and
# compared with the source; the bytes that crossed the wire (lo: initiator and target share the
# guest) during each copy must be under 4 MiB, while the write of the source put 256 MiB there
# (the 256 MiB moved inside iserd), and the LUNs' xcopy_bytes (iserctl stats) must have grown
# by 256 MiB each time.
# Env: ISERD_BIN, ISERCTL_BIN (default /lab/files/iserd, /lab/files/iserctl), ISERD_ARGS.
. /lab/guest.sh
TARGET_IQN=iqn.2026-12.org.iserd:xcopy-s
DST_IQN=iqn.2026-12.org.iserd:xcopy-d
ISERD_BIN=${ISERD_BIN:-/lab/files/iserd}
ISERCTL_BIN=${ISERCTL_BIN:-/lab/files/iserctl}
SOCK=/run/iserd-xcopy.sock
MIB=256
BLOCKS=$((MIB * 2048))
DEV_S0='' DEV_S1='' DEV_D0=''

ctl() {
	ASAN_OPTIONS=${ASAN_OPTIONS:+$ASAN_OPTIONS:}detect_leaks=0 \
		timeout 60 "$ISERCTL_BIN" --socket "$SOCK" "$@"
}
start() {
	# shellcheck disable=SC2086
	iserd_start $OUT/iserd.log --control-socket $SOCK --portal tcp://$LAB_IP:3260 \
		--target $TARGET_IQN --lun ram:320M --lun ram:320M \
		--target $DST_IQN --lun ram:320M ${ISERD_ARGS:-}
}
# sg_xcopy talks SG_IO to the SCSI generic node of each block device
sg_up() {
	modprobe sg || return 1
	ls /sys/class/scsi_generic
}
# sg_of sdX: the SCSI generic node of a disk (made when the guest's /dev lacks it)
sg_of() {
	local g n
	g=$(ls /sys/block/$1/device/scsi_generic/ 2>/dev/null | head -1)
	[ -n "$g" ] || { echo "no sg node for $1" >&2; return 1; }
	n=$(cat /sys/class/scsi_generic/$g/dev)
	[ -c /dev/$g ] || mknod /dev/$g c "${n%%:*}" "${n##*:}" || return 1
	echo /dev/$g
}
devices() {
	DEV_S0=$(k_dev $TARGET_IQN 0) && DEV_S1=$(k_dev $TARGET_IQN 1) &&
		DEV_D0=$(k_dev $DST_IQN 0) || return 1
	echo "S/0 $DEV_S0, S/1 $DEV_S1, D/0 $DEV_D0"
}
fill_source() {
	local n0 n1
	head -c $((MIB << 20)) /dev/urandom > /tmp/src.bin || return 1
	n0=$(wire_bytes)
	dd if=/tmp/src.bin of=/dev/$DEV_S0 bs=1M oflag=direct status=none || return 1
	n1=$(wire_bytes)
	# the counter sees the iSCSI traffic: the write itself crossed it
	echo "write: $((n1 - n0)) bytes on lo"
	[ $((n1 - n0)) -ge $((MIB << 20)) ] || { echo "lo did not carry the write"; return 1; }
	sha256sum < /tmp/src.bin | cut -d' ' -f1 > /tmp/src.sum
	rm -f /tmp/src.bin
	cat /tmp/src.sum
}
# bytes on the wire: initiator and target share the guest, so iSCSI to $LAB_IP runs over lo
wire_bytes() {
	echo $(($(cat /sys/class/net/lo/statistics/rx_bytes) + $(cat /sys/class/net/lo/statistics/tx_bytes)))
}
# xcopy_bytes IQN LUN: that LUN's xcopy_bytes from iserctl's stats
xcopy_bytes() {
	ctl --json stats | python3 -c '
import json, sys
d = json.load(sys.stdin)
for t in d["targets"]:
    if t["name"] == sys.argv[1]:
        for l in t["luns"]:
            if l["lun"] == int(sys.argv[2]):
                print(l["io"]["xcopy_bytes"] if "xcopy_bytes" in l["io"] else l["xcopy_bytes"])
' "$1" "$2"
}
# copy SRC DST DST_IQN DST_LUN: sg_xcopy, then wire bytes, counter and data checked
copy() {
	local src=$1 dst=$2 x0 x1 n0 n1 t0 t1 sum
	x0=$(xcopy_bytes "$3" "$4") || return 1
	n0=$(wire_bytes)
	t0=$(now)
	timeout 600 sg_xcopy if="$(sg_of $src)" of="$(sg_of $dst)" bs=512 count=$BLOCKS verbose=1 ||
		return 1
	t1=$(now)
	n1=$(wire_bytes)
	x1=$(xcopy_bytes "$3" "$4") || return 1
	echo "sg_xcopy $MIB MiB in $(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.1f", b - a }') s; $((n1 - n0)) bytes on lo; xcopy_bytes +$((x1 - x0))"
	[ $((n1 - n0)) -lt $((4 << 20)) ] || { echo "the copy crossed the wire"; return 1; }
	[ $((x1 - x0)) = $((MIB << 20)) ] || { echo "xcopy_bytes did not grow by $MIB MiB"; return 1; }
	sum=$(dd if=/dev/$dst bs=1M count=$MIB iflag=direct status=none | sha256sum | cut -d' ' -f1)
	echo "destination sha256 $sum"
	[ "$sum" = "$(cat /tmp/src.sum)" ] || { echo "data differs"; return 1; }
}

step "network up (veth0 $LAB_IP)" lab_net
step "iserd started (targets S: 2 LUNs, D: 1 LUN)" start
step "sg loaded" sg_up
step "iscsid started" iscsid_start
step "discovery lists S" k_discover "$TARGET_IQN"
step "login S" k_login "$TARGET_IQN"
step "login D" k_login "$DST_IQN"
step "block devices of S/0, S/1, D/0" devices
step "$MIB MiB random data written to S/0 (O_DIRECT)" fill_source
step "sg_xcopy S/0 -> S/1: data verified, nothing over the wire" copy "$DEV_S0" "$DEV_S1" "$TARGET_IQN" 1
step "sg_xcopy S/0 -> D/0 (another target): data verified, nothing over the wire" copy "$DEV_S0" "$DEV_D0" "$DST_IQN" 0
step "logout S" k_logout "$TARGET_IQN"
step "logout D" k_logout "$DST_IQN"
cleanup "target stopped cleanly" iserd_stop
iscsid_stop
lab_finish
