# shellcheck shell=bash disable=SC2034  # TARGET_* are read by guest.sh
# Lab job (guest side of tests/interop/test_kernel_iser.sh): the Linux kernel's iSER initiator
# (open-iscsi -I iser + ib_iser) and libiscsi's iSER initiator against iserd over soft-RoCE
# (rdma_rxe on veth0). The host hands the binary over with vmrun.sh -f; ISERD_BIN is its path in
# the guest (default /lab/files/iserd), ISERD_ARGS adds arguments (e.g. -v, -d iser).
# ISER_PORT (default 3260): the iSER portal's port. iserd's stderr goes to /lab/out/iserd.log.
. /lab/guest.sh
TARGET_IQN=iqn.2026-11.org.iserd:lab
TARGET_SIZE=$((256 << 20))
ISERD_BIN=${ISERD_BIN:-/lab/files/iserd}
ISER_PORT=${ISER_PORT:-3260}
ISERD_PID=

rxe_up() {
	lab_net || return 1
	modprobe rdma_rxe || return 1
	rdma link add rxe0 type rxe netdev veth0 || return 1
	rdma link show
	ls /sys/class/infiniband
}
target_start() {
	ulimit -l unlimited
	# shellcheck disable=SC2086
	"$ISERD_BIN" --portal iser://$LAB_IP:$ISER_PORT --target $TARGET_IQN --lun ram:256M \
		${ISERD_ARGS:-} > $OUT/iserd.log 2>&1 &
	ISERD_PID=$!
	note "iserd pid $ISERD_PID"
	# an rdma_cm listener on RoCE holds no TCP socket: wait for the log line instead
	local i
	for ((i = 0; i < 150; i++)); do
		grep -q "listening" $OUT/iserd.log && { cat $OUT/iserd.log; return 0; }
		kill -0 $ISERD_PID 2>/dev/null || { cat $OUT/iserd.log; echo "iserd exited"; return 1; }
		sleep 0.2
	done
	cat $OUT/iserd.log; return 1
}
target_stop() {  # SIGTERM; iserd must exit with status 0 within 30 s
	[ -n "$ISERD_PID" ] || return 0
	if ! kill -0 $ISERD_PID 2>/dev/null; then
		wait $ISERD_PID; echo "iserd had already exited (status $?)"; return 1
	fi
	kill -TERM $ISERD_PID
	local i
	for ((i = 0; i < 150; i++)); do kill -0 $ISERD_PID 2>/dev/null || break; sleep 0.2; done
	if kill -0 $ISERD_PID 2>/dev/null; then
		echo "iserd still running 30 s after SIGTERM"; kill -KILL $ISERD_PID; wait $ISERD_PID; return 1
	fi
	wait $ISERD_PID; local rc=$?
	echo "iserd exited with status $rc"
	[ $rc = 0 ]
}
iser_mod() {
	# without max_sectors the kernel sends at most 512 KiB per command (shared lab README)
	modprobe ib_iser max_sectors=32768 || modprobe ib_iser || return 1
	echo "ib_iser max_sectors=$(cat /sys/module/ib_iser/parameters/max_sectors 2>/dev/null)"
}
libiscsi_inq() {
	timeout 60 iscsi-inq -i iqn.2026-11.test:libiscsi "iser://$LAB_IP:$ISER_PORT/$TARGET_IQN/0"
}
ki_discover() {
	timeout 60 iscsiadm -m discovery -t sendtargets -p $LAB_IP:$ISER_PORT -I iser > /tmp/discovery.out 2>&1
	local rc=$?
	cat /tmp/discovery.out
	[ $rc = 0 ] || return $rc
	grep -q "^$LAB_IP:$ISER_PORT,[0-9]* $TARGET_IQN\$" /tmp/discovery.out ||
		{ echo "discovery did not list $TARGET_IQN"; return 1; }
}
ki_login() {
	timeout 90 iscsiadm -m node -T "$TARGET_IQN" -p $LAB_IP:$ISER_PORT -I iser --login || return 1
	iscsiadm -m session -P 1 2>/dev/null | grep -E "Iface Transport|Target:" | head -4
	iscsiadm -m session -P 1 2>/dev/null | grep -q "Iface Transport: iser" ||
		{ echo "the session does not run over iser"; return 1; }
}
ki_logout() {
	timeout 60 iscsiadm -m node -T "$TARGET_IQN" -p $LAB_IP:$ISER_PORT -I iser --logout || return 1
	! iscsiadm -m session 2>/dev/null | grep -q " $TARGET_IQN\$" || { echo "session still there"; return 1; }
}
_dio_big() {  # 8 MiB commands (split by max_sectors_kb), both directions
	timeout 300 dd if=/tmp/pattern of=/dev/$DEV bs=8M count=8 oflag=direct conv=fsync || return 1
	timeout 300 dd if=/dev/$DEV of=/tmp/readback2 bs=8M count=8 iflag=direct || return 1
	cmp /tmp/pattern /tmp/readback2 && echo "64 MiB in 8 MiB commands identical"
}

step "soft-RoCE up (rxe0 on veth0 $LAB_IP)" rxe_up
step "target started (iser://$LAB_IP:$ISER_PORT)" target_start
step "libiscsi iscsi-inq over iSER" libiscsi_inq
step "ib_iser loaded" iser_mod
step "iscsid started" iscsid_start
step "discovery over iSER lists $TARGET_IQN" ki_discover
step "login (iser)" ki_login
step "block device found, size $TARGET_SIZE" _check_dev
step "write 64 MiB, O_DIRECT" _dio_write
step "read 64 MiB back, O_DIRECT, compare" _dio_read
step "64 MiB again in 8 MiB direct commands, compare" _dio_big
step "mkfs.ext4" _mkfs
step "mount, copy 8 MiB file, sync, umount" _fs_write
step "remount, compare file, umount, fsck" _fs_verify
step "logout" ki_logout
[ $LAB_FAILED = 0 ] || _teardown
cleanup "target stopped cleanly" target_stop
iscsid_stop
dmesg | grep -iE "iser|rxe" | tail -20
lab_finish
