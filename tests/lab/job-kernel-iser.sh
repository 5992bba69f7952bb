# shellcheck shell=bash disable=SC2034  # TARGET_* are read by guest.sh
# Lab job (guest side of tests/interop/test_kernel_iser.sh and test_kernel_iser_siw.sh): the Linux
# kernel's iSER initiator (open-iscsi -I iser + ib_iser) against iserd over soft-RoCE (FABRIC=rxe,
# the default) or soft-iWARP (FABRIC=siw) on veth0.
# Env: ISERD_BIN (default /lab/files/iserd), ISERD_ARGS (extra arguments, e.g. -v), FABRIC (rxe|siw),
# ISER_PORT (the iSER portal's port; default 3260 on rxe, 3261 on siw, where a TCP portal
# holds 3260), FIO_RUNTIME (bound on each fio run in s, default 60: the runs are sized to take
# about 10 s under TCG, and a run cut short fails the step), FLAP_S (seconds the link stays down
# in the link-flap step, default 2), FLAP_REQUIRE_RECOVERY (1: the flap step fails unless the session
# comes back, also on rxe). iserd's stderr goes to /lab/out/iserd.log;
# fio's output to /lab/out/fio-*.txt.
. /lab/guest.sh
TARGET_IQN=iqn.2026-11.org.iserd:lab
TARGET_SIZE=$((256 << 20))
ISERD_BIN=${ISERD_BIN:-/lab/files/iserd}
FABRIC=${FABRIC:-rxe}
if [ "$FABRIC" = siw ]; then ISER_PORT=${ISER_PORT:-3261}; else ISER_PORT=${ISER_PORT:-3260}; fi
FIO_RUNTIME=${FIO_RUNTIME:-60}
FLAP_S=${FLAP_S:-2}
FLAP_REQUIRE_RECOVERY=${FLAP_REQUIRE_RECOVERY:-0}
LOG=$OUT/iserd.log

target_start() {
	# shellcheck disable=SC2086
	if [ "$FABRIC" = siw ]; then
		# iWARP: the iSER portal on its own port, next to a TCP portal on 3260
		iserd_start $LOG --portal tcp://$LAB_IP:3260 --portal iser://$LAB_IP:$ISER_PORT \
			--target $TARGET_IQN --lun ram:256M ${ISERD_ARGS:-}
	else
		iserd_start $LOG --portal iser://$LAB_IP:$ISER_PORT --target $TARGET_IQN --lun ram:256M \
			${ISERD_ARGS:-}
	fi
}
target_stop() { iserd_stop; }

# iserd run with CAP_IPC_LOCK and CAP_SYS_RESOURCE dropped, so that RLIMIT_MEMLOCK binds (root has
# both): prints iserd's output, returns its exit status (or 0 once it is ready; then stopped)
_iserd_capless() {  # ULIMIT_ARGS...
	local log=/tmp/iserd-memlock.log rc i pid
	setpriv --inh-caps=-ipc_lock,-sys_resource --bounding-set=-ipc_lock,-sys_resource -- \
		bash -c "ulimit $* && exec $ISERD_BIN --portal iser://$LAB_IP:$ISER_PORT --target $TARGET_IQN --lun ram:64M" \
		> $log 2>&1 &
	pid=$!
	for ((i = 0; i < 150; i++)); do
		grep -q "info: ready" $log && break
		kill -0 $pid 2>/dev/null || break
		sleep 0.2
	done
	if grep -q "info: ready" $log; then
		kill -TERM $pid; wait $pid; rc=0
	else
		wait $pid; rc=$?; [ $rc = 0 ] && rc=99
	fi
	cat $log
	return $rc
}
memlock_low_hard() {  # hard limit 64 KiB: must fail, naming RLIMIT_MEMLOCK
	local rc
	_iserd_capless -l 64 > /tmp/memlock.out; rc=$?
	cat /tmp/memlock.out
	[ $rc != 0 ] || { echo "iserd started although 64 MiB cannot be pinned"; return 1; }
	grep -q "RLIMIT_MEMLOCK" /tmp/memlock.out || { echo "the error does not name RLIMIT_MEMLOCK"; return 1; }
}
memlock_low_soft() {  # soft limit 64 KiB, hard unlimited: iserd raises the soft limit itself
	_iserd_capless -S -l 64
}
# iWARP: an iSER portal on a port a TCP portal holds. One iserd refuses tcp:3260 + iser:3260 as a
# duplicate portal; a second iserd's iser:3260 next to the running target's tcp:3260 reaches
# rdma_listen, which fails with EADDRINUSE: a clear message and exit != 0
portclash() {
	local rc
	timeout 60 "$ISERD_BIN" --portal tcp://$LAB_IP:3260 --portal iser://$LAB_IP:3260 \
		--target $TARGET_IQN --lun ram:16M > /tmp/clash1.log 2>&1; rc=$?
	cat /tmp/clash1.log
	[ $rc != 0 ] && [ $rc != 124 ] || { echo "iserd did not refuse tcp+iser on 3260 (exit $rc)"; return 1; }
	timeout 60 "$ISERD_BIN" --portal iser://$LAB_IP:3260 --target $TARGET_IQN --lun ram:16M \
		> /tmp/clash2.log 2>&1; rc=$?
	cat /tmp/clash2.log
	[ $rc != 0 ] && [ $rc != 124 ] || { echo "iser:3260 next to tcp:3260 did not fail (exit $rc)"; return 1; }
	grep -q "port in use" /tmp/clash2.log || { echo "no 'port in use' message"; return 1; }
}
iser_mod() {
	# without max_sectors the kernel sends at most 512 KiB per command (shared lab README)
	modprobe ib_iser max_sectors=32768 || return 1
	echo "ib_iser max_sectors=$(cat /sys/module/ib_iser/parameters/max_sectors)"
	[ "$(cat /sys/module/ib_iser/parameters/max_sectors)" = 32768 ]
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
	cmp /tmp/pattern /tmp/readback2 && echo "64 MiB in 8 MiB direct commands identical"
}
# one direct write and one direct read of max_hw_sectors_kb, each a single SCSI command
# (/sys/block/DEV/stat counts the requests), compared
_dio_maxhw() {
	local q=/sys/block/$DEV/queue kb w0 r0 w1 r1
	kb=$(cat $q/max_hw_sectors_kb)
	echo "max_hw_sectors_kb $kb (max_sectors_kb was $(cat $q/max_sectors_kb))"
	[ "$kb" -ge 1020 ] || { echo "ib_iser max_sectors=32768 did not take effect"; return 1; }
	echo "$kb" > $q/max_sectors_kb || return 1
	dd if=/dev/urandom of=/tmp/maxhw bs=1K count=$kb status=none || return 1
	read -r r0 _ _ _ w0 _ < /sys/block/$DEV/stat
	timeout 60 dd if=/tmp/maxhw of=/dev/$DEV bs=${kb}K count=1 seek=1 oflag=direct status=none || return 1
	timeout 60 dd if=/dev/$DEV of=/tmp/maxhw.back bs=${kb}K count=1 skip=1 iflag=direct status=none || return 1
	read -r r1 _ _ _ w1 _ < /sys/block/$DEV/stat
	echo "requests: $((w1 - w0)) write, $((r1 - r0)) read"
	cmp /tmp/maxhw /tmp/maxhw.back || return 1
	[ $((w1 - w0)) = 1 ] && [ $((r1 - r0)) = 1 ] || { echo "the I/O was split"; return 1; }
	echo "${kb} KiB in one command each way, identical"
}
_fio() {  # NAME SIZE fio-args...: writes SIZE at queue depth 32, then reads all of it back and
	# checks every block's crc32c; fails on any error or when the verify pass did not cover it all
	local name=$1 size=$2 rc w r; shift 2
	timeout 300 fio --name=$name --filename=/dev/$DEV --direct=1 --ioengine=libaio --iodepth=32 \
		--size=$size --runtime=$FIO_RUNTIME --verify=crc32c --do_verify=1 --verify_fatal=1 \
		--exitall_on_error=1 "$@" > $OUT/fio-$name.txt 2>&1; rc=$?
	cat $OUT/fio-$name.txt
	[ $rc = 0 ] || return $rc
	grep -q "err= 0" $OUT/fio-$name.txt || { echo "fio reported errors"; return 1; }
	# io= of the group lines: the WRITE phase and the verifying READ phase must match SIZE
	w=$(sed -n 's/^ *WRITE:.* io=\([^ ]*\) .*/\1/p' $OUT/fio-$name.txt)
	r=$(sed -n 's/^ *READ:.* io=\([^ ]*\) .*/\1/p' $OUT/fio-$name.txt)
	echo "written $w, verified $r"
	[ "$w" = "${size%M}.0MiB" ] && [ "$r" = "${size%M}.0MiB" ] ||
		{ echo "fio did not write and verify all $size (FIO_RUNTIME $FIO_RUNTIME s too short?)"; return 1; }
}
fio_rand4k() { _fio rand4k-$FABRIC 32M --rw=randwrite --bs=4k --randrepeat=0; }
fio_seq1m() { _fio seq1m-$FABRIC 64M --rw=write --bs=1M; }
idle() { iserd_idle_check $LOG zero-copy; }
# Send with Invalidate: ib_iser (always_register=Y, its default) leaves SEND_W_INV_NOT_SUP clear in
# its CM header, so iserd ends each read and each write that solicited data with a Send with
# Invalidate of the command's STag. The kernel checks every invalidated key against the task's
# registration and drops the connection on a wrong or unexpected one ("Bogus remote
# invalidation", "unexpected remote invalidation", "failed to get task"): after the I/O above
# there must be many such responses and none of those messages.
remote_inv() {
	local n
	n=$(iserd_stat $LOG remote_invalidations)
	echo "SCSI Responses sent with Invalidate so far: ${n:-none}"
	[ -n "$n" ] && [ "$n" -gt 1000 ] || { echo "expected remote invalidation of the STags"; return 1; }
	if dmesg | grep -iE "remote invalidation|failed to get task"; then
		echo "ib_iser complained about an invalidation"; return 1
	fi
	[ "$(cat /sys/module/ib_iser/parameters/always_register)" = Y ] || return 1
	echo "ib_iser always_register=Y; no invalidation error in dmesg"
}
# No standing remote access to iserd's memory: with the I/O above done, no registration with
# remote access is alive ("remote_mrs":0). On siw each WRITE that iserd fetched by RDMA Read had a
# sink registration of its own (remote_mrs_total grows), dropped when its Reads completed; on rxe
# there is none at all. Every MR the kernel holds for iserd (`rdma res show mr`) is one iserd
# counts ("mrs"), so none escapes the counters.
remote_mrs() {
	local st live total mrs kern
	st=$(iserd_stats $LOG)
	live=$(echo "$st" | sed -n 's/.*"remote_mrs":\([0-9]*\).*/\1/p')
	total=$(echo "$st" | sed -n 's/.*"remote_mrs_total":\([0-9]*\).*/\1/p')
	mrs=$(echo "$st" | sed -n 's/.*"mrs":\([0-9]*\).*/\1/p')
	kern=$(rdma res show mr 2>/dev/null | grep -c "pid $ISERD_PID ")
	echo "remote MRs live ${live:-?}, made ${total:-?}; iserd's MRs: counted ${mrs:-?}, kernel $kern"
	rdma res show mr 2>/dev/null | grep "pid $ISERD_PID " | head -20
	[ "$live" = 0 ] || { echo "a registration with remote access outlived its command"; return 1; }
	[ "$kern" = "$mrs" ] || { echo "the kernel holds MRs iserd does not count"; return 1; }
	if [ "$FABRIC" = siw ]; then
		[ -n "$total" ] && [ "$total" -gt 0 ] ||
			{ echo "iWARP: expected per-command sink registrations"; return 1; }
	else
		[ "$total" = 0 ] || { echo "RoCE: no registration may have remote access"; return 1; }
	fi
}
# A peer that knows a STag and an address of iserd's memory cannot write there (guest.sh
# iserd_stag_probe); the LUN's last block, read back through the kernel initiator, is unchanged.
stag_probe() { iserd_stag_probe $ISER_PORT $TARGET_SIZE $DEV; }
# The RDMA link goes down under the kernel initiator mid-I/O (veth0 under rxe0/siw0, for FLAP_S
# seconds) and comes back, while a writer rewrites the same 32 MiB in 64 KiB direct commands.
# Required: if the connection survived, the writer went on without an error. If the flap broke
# it (usual on rxe, whose sends fail while the port is down), iserd notices the dead connection
# (NOP-In unanswered or a failed completion) and frees it, and the session recovers: either the
# kernel initiator re-logs in by itself (session reinstatement at iserd) and the writer goes on
# without an error, or its I/O fails after recovery_tmo; then, if libiscsi's userspace initiator
# reaches iserd over iSER, the kernel session must come back by logout + login. On rxe, Debian
# 6.1 makes no new RDMA CM connection at all after such a flap (libiscsi, and ib_iser to LIO too:
# docs/iser.md), so there iserd's side is checked: connection freed, counters zero, iserd
# answering. Whenever I/O can run again, the data is rewritten and must read back identical.
_writer() {  # loops until /tmp/flap.stop exists; pass count in /tmp/flap.passes, errors in .err
	local n=0
	while [ ! -e /tmp/flap.stop ]; do
		timeout 300 dd if=/tmp/flap of=/dev/$DEV bs=64K oflag=direct conv=fsync status=none ||
			{ echo "pass $n failed" >> /tmp/flap.err; return 1; }
		n=$((n + 1)); echo $n > /tmp/flap.passes
	done
}
linkflap() {
	local s n0 n1 e0 e1 f0 f1 wp p0 i st passes
	for s in /sys/class/iscsi_session/session*; do echo 40 > $s/recovery_tmo; done
	dd if=/dev/urandom of=/tmp/flap bs=1M count=32 status=none || return 1
	rm -f /tmp/flap.stop /tmp/flap.err; echo 0 > /tmp/flap.passes
	n0=$(grep -c "normal session TSIH" $LOG); e0=$(dmesg | grep -c "detected conn error")
	f0=$(grep -c "connection freed" $LOG)
	_writer & wp=$!
	sleep 3
	note "link down (veth0, ${FLAP_S}s)"; ip link set veth0 down; sleep "$FLAP_S"
	ip link set veth0 up; note "link up"
	p0=$(cat /tmp/flap.passes)
	for ((i = 0; i < 90; i++)); do
		[ "$(cat /tmp/flap.passes)" -ge $((p0 + 2)) ] && break
		kill -0 $wp 2>/dev/null || break
		sleep 1
	done
	touch /tmp/flap.stop; wait $wp; st=$?; passes=$(cat /tmp/flap.passes)
	e1=$(dmesg | grep -c "detected conn error"); n1=$(grep -c "normal session TSIH" $LOG)
	for ((i = 0; i < 60; i++)); do
		f1=$(grep -c "connection freed" $LOG); [ "$f1" -gt "$f0" ] && break; sleep 1
	done
	echo "writer: $passes passes ($p0 when the link came back), exit $st; initiator conn errors" \
		"$((e1 - e0)); at iserd: connections freed $((f1 - f0)), new logins $((n1 - n0))"
	if [ $((e1 - e0)) = 0 ]; then
		# the RC transport rode out the flap (no WR failed while the port was down): the
		# writer must simply have gone on (seen on rxe when the flap fell between commands)
		echo "RECOVERY: the connection survived the flap"
		[ $st = 0 ] && [ "$passes" -ge $((p0 + 2)) ] || { cat /tmp/flap.err; return 1; }
	else
		[ "$f1" -gt "$f0" ] || { echo "iserd did not free the dead connection"; return 1; }
		grep -E "did not answer a NOP-In|work completion error|reinstates session" $LOG | tail -3
		if [ $st = 0 ] && [ "$passes" -ge $((p0 + 2)) ] && [ "$n1" -gt "$n0" ]; then
			echo "RECOVERY: the kernel initiator re-logged in by itself; the writer saw no error"
		else
			echo "RECOVERY: the kernel initiator did not re-log in by itself; its I/O failed" \
				"after recovery_tmo ($(cat /tmp/flap.err 2>/dev/null))"
			if libiscsi_inq > /tmp/flap.inq 2>&1; then
				echo "libiscsi over iSER reaches iserd after the flap"
				timeout 60 iscsiadm -m node -T "$TARGET_IQN" -p $LAB_IP:$ISER_PORT -I iser --logout
				ki_login || return 1
				_check_dev || return 1
				echo "RECOVERY: the kernel session is back after logout + login"
			else
				cat /tmp/flap.inq
				[ "$FABRIC" = rxe ] || { echo "iserd unreachable after the flap"; return 1; }
				[ "$FLAP_REQUIRE_RECOVERY" = 1 ] &&
					{ echo "no recovery, and FLAP_REQUIRE_RECOVERY=1 (kernel $(uname -r))"; return 1; }
				# Debian 6.1's rxe: after a flap that broke a connection, no new RDMA CM
				# connection gets through (libiscsi here; ib_iser to LIO too: docs/iser.md).
				# What iserd owes is checked instead: the dead connection freed, every
				# counter back to zero, iserd answering.
				echo "KNOWN (rxe, guest kernel): no new RDMA CM connection after the flap," \
					"from any initiator; checking iserd's side only"
				timeout 60 iscsiadm -m node -T "$TARGET_IQN" -p $LAB_IP:$ISER_PORT -I iser --logout
				iserd_idle_check $LOG zero-copy || return 1
				FLAP_FABRIC_DEAD=1
				return 0
			fi
		fi
	fi
	timeout 120 dd if=/tmp/flap of=/dev/$DEV bs=1M oflag=direct conv=fsync status=none || return 1
	timeout 120 dd if=/dev/$DEV of=/tmp/flap.back bs=1M count=32 iflag=direct status=none || return 1
	cmp /tmp/flap /tmp/flap.back && echo "32 MiB identical after the flap"
}

step "soft-$FABRIC up on veth0 $LAB_IP" rdma_fabric_up $FABRIC
step "RLIMIT_MEMLOCK hard 64 KiB (no CAP_IPC_LOCK): start fails naming the limit" memlock_low_hard
step "RLIMIT_MEMLOCK soft 64 KiB, hard unlimited: iserd raises it and starts" memlock_low_soft
ulimit -l unlimited
step "target started (iser://$LAB_IP:$ISER_PORT)" target_start
[ "$FABRIC" = siw ] && step "iWARP: iser:3260 next to tcp:3260 refused with a clear message" portclash
step "libiscsi iscsi-inq over iSER" libiscsi_inq
step "ib_iser loaded with max_sectors=32768" iser_mod
step "iscsid started" iscsid_start
step "discovery over iSER lists $TARGET_IQN" ki_discover
step "login (iser)" ki_login
step "block device found, size $TARGET_SIZE" _check_dev
step "write 64 MiB, O_DIRECT" _dio_write
step "read 64 MiB back, O_DIRECT, compare" _dio_read
step "64 MiB again in 8 MiB direct commands, compare" _dio_big
step "one direct I/O of max_hw_sectors_kb each way, compare" _dio_maxhw
step "fio 4 KiB random write 32 MiB, QD 32, verify=crc32c" fio_rand4k
step "fio 1 MiB sequential write 64 MiB, QD 32, verify=crc32c" fio_seq1m
step "responses carry Send with Invalidate of the STags; ib_iser accepts every one" remote_inv
step "no registration with remote access left; every iserd MR counted" remote_mrs
step "no remote key on rxe; an RDMA Write to the LUN's STag is refused, LUN unchanged" stag_probe
step "mkfs.ext4" _mkfs
step "mount, copy 8 MiB file, sync, umount" _fs_write
step "remount, compare file, umount, fsck" _fs_verify
step "PREEMPT AND ABORT from a second initiator fences the first's writes" pr_fence iser $ISER_PORT
step "RDMA link down ${FLAP_S}s mid-I/O and up: the session recovers, data identical" linkflap
# after a flap that left rxe unable to connect, linkflap has logged out already
ki_logout_once() { [ "${FLAP_FABRIC_DEAD:-0}" = 1 ] && { echo "logged out in the flap step"; return 0; }; ki_logout; }
step "logout" ki_logout_once
step "iserd serving, iSER and core counters back to zero" idle
[ $LAB_FAILED = 0 ] || _teardown
cleanup "target stopped cleanly" target_stop
iscsid_stop
dmesg | grep -iE "iser|rxe|siw" | tail -20
lab_finish
