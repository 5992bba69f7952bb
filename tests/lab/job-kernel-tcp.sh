# shellcheck shell=bash disable=SC2034  # TARGET_* are read by guest.sh
# Lab job (guest side of tests/interop/test_kernel_tcp.sh): the Linux kernel's iSCSI/TCP initiator
# (open-iscsi + iscsi_tcp) against iserd. The host hands the binary over with vmrun.sh -f; ISERD_BIN is
# its path in the guest (default /lab/files/iserd), ISERD_ARGS adds arguments (e.g. -v).
# iserd's stderr goes to /lab/out/iserd.log.
. /lab/guest.sh
TARGET_IQN=iqn.2026-11.org.iserd:lab
TARGET_SIZE=$((256 << 20))
ISERD_BIN=${ISERD_BIN:-/lab/files/iserd}
ISERD_PID=

target_start() {
	# shellcheck disable=SC2086
	"$ISERD_BIN" --portal tcp://$LAB_IP:3260 --target $TARGET_IQN --lun ram:256M ${ISERD_ARGS:-} \
		> $OUT/iserd.log 2>&1 &
	ISERD_PID=$!
	note "iserd pid $ISERD_PID"
	wait_listen $LAB_IP 3260 $ISERD_PID 30
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

kernel_tcp_scenario
