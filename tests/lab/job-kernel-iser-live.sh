# shellcheck shell=bash
# Lab job (guest side of tests/interop/test_kernel_iser_live.sh): live changes to iserd while the
# Linux kernel's iSER initiator (open-iscsi -I iser + ib_iser) runs I/O, over soft-RoCE (FABRIC=rxe,
# the default) or soft-iWARP (FABRIC=siw) on veth0.
#
# iserd runs from a config file with a control socket: target A (RAM LUN 0, 64 MiB), B (RAM LUN),
# C (RAM LUN, an ACL entry for this initiator with CHAP of its own). The kernel logs in to A and
# to B; fio rewrites A's LUN 0 (random 4-128 KiB writes at QD 16, each pass verified with crc32c)
# and, each time with writes in flight on A, iserctl adds LUN 1 to A, removes B with --force (its
# kernel session is asked to log out), adds this initiator and another one to A's ACL, rotates C's
# CHAP secret, and the file is edited (E added, B absent, the rest as it runs now) and reloaded
# with SIGHUP. Then: every fio pass
# passed, A's session never saw a connection error (the LUN added raised REPORTED LUNS DATA HAS
# CHANGED on it, which the kernel logs and retries), the last pass verifies again at the end; a
# rescan shows A's LUN 1; discovery lists E and not B; E logs in; C refuses the old secret and
# accepts the new one; SIGTERM -> exit 0.
#
# Env: ISERD_BIN (default /lab/files/iserd), ISERCTL_BIN (default /lab/files/iserctl), ISERD_ARGS
# (extra iserd arguments, e.g. -v), FABRIC (rxe|siw), FIO_PASS_S (bound on one fio pass in s,
# default 120), MIN_IO_S (the writer keeps going at least this long, default 40).
# iserd's stderr goes to /lab/out/iserd.log, fio's output to /lab/out/fio-live.txt.
. /lab/guest.sh
PFX=iqn.2026-11.org.iserd:live-
TA=${PFX}a TB=${PFX}b TC=${PFX}c TE=${PFX}e
OTHER_INI=iqn.2026-11.test:live-other
ISERD_BIN=${ISERD_BIN:-/lab/files/iserd}
ISERCTL_BIN=${ISERCTL_BIN:-/lab/files/iserctl}
FABRIC=${FABRIC:-rxe}
ISER_PORT=3260
FIO_PASS_S=${FIO_PASS_S:-120}
MIN_IO_S=${MIN_IO_S:-40}
SECRET_OLD=first-secret-0001
SECRET_NEW=second-secret-002
LOG=$OUT/iserd.log
CDIR=$(mktemp -d /tmp/iserd-live.XXXXXX)
SOCK=$CDIR/iserd.sock
CONF=$CDIR/iserd.conf
INI=''      # this guest's initiator name (/etc/iscsi/initiatorname.iscsi)
DEV_A='' SID_A=''
WPID=''

# iserctl without LeakSanitizer's exit scan, which takes seconds per call under TCG with fio
# running (iserctl's leaks are the integration tests' business; iserd keeps it)
ctl() {
	ASAN_OPTIONS=${ASAN_OPTIONS:+$ASAN_OPTIONS:}detect_leaks=0 \
		timeout 60 "$ISERCTL_BIN" --socket "$SOCK" "$@"
}
# the writer must still be at work after each change: a pass that failed ends it
writer_alive() {
	[ -n "$WPID" ] && kill -0 "$WPID" 2>/dev/null && [ ! -e /tmp/live.failed ] && return 0
	echo "the fio writer on A is no longer running" \
		"(passes: $(cat /tmp/live.passes 2>/dev/null))"
	tail -30 $OUT/fio-live.txt
	return 1
}

# write_conf start|reload: the file iserd starts from, and the one it reloads: at the reload it
# holds what the control socket changed (A's LUN 1 and ACL, C's new secret) so that A and C are
# left as they run, B is absent and E is new
write_conf() {
	local a_luns='{ number = 0; backing = "ram:64M"; }' a_acl='' b='' e='' secret=$SECRET_OLD
	if [ "$1" = start ]; then
		b="{ name = \"$TB\"; luns = ( { number = 0; backing = \"ram:16M\"; } ); },"
	else
		a_luns="$a_luns, { number = 1; backing = \"ram:16M\"; }"
		a_acl="acl = ( \"$INI\", \"$OTHER_INI\" );"
		e=", { name = \"$TE\"; luns = ( { number = 0; backing = \"ram:16M\"; } ); }"
		secret=$SECRET_NEW
	fi
	cat > $CONF.tmp <<-EOC
		global = {
			control_socket = "$SOCK";
			logout_timeout = 10;
		};
		portals = ( "iser://$LAB_IP:$ISER_PORT" );
		targets = (
			{ name = "$TA"; luns = ( $a_luns ); $a_acl },
			$b
			{ name = "$TC"; luns = ( { number = 0; backing = "ram:16M"; } );
			  acl = ( { initiator = "$INI";
				    chap = { user = "cu"; secret = "$secret"; }; } ); }$e
		);
	EOC
	chmod 600 $CONF.tmp && mv $CONF.tmp $CONF
}

iser_mod() { modprobe ib_iser; }
read_ini() {
	INI=$(sed -n 's/^InitiatorName=//p' /etc/iscsi/initiatorname.iscsi)
	echo "initiator name: $INI"
	[ -n "$INI" ]
}
target_start() {
	write_conf start || return 1
	cat $CONF
	# shellcheck disable=SC2086
	iserd_start $LOG -c $CONF ${ISERD_ARGS:-} || return 1
	[ -S "$SOCK" ] || { echo "no control socket at $SOCK"; return 1; }
	ctl status
}
# discover_has "IQN..." "IQN...": SendTargets over iSER lists the first set and none of the second
discover_has() {
	local t
	timeout 60 iscsiadm -m discovery -t sendtargets -p $LAB_IP:$ISER_PORT -I iser \
		> /tmp/disc.out 2>&1
	local rc=$?
	cat /tmp/disc.out
	[ $rc = 0 ] || return $rc
	for t in $1; do
		grep -q "^$LAB_IP:$ISER_PORT,[0-9]* $t\$" /tmp/disc.out ||
			{ echo "$t not listed"; return 1; }
	done
	for t in $2; do
		! grep -q " $t\$" /tmp/disc.out || { echo "$t listed"; return 1; }
	done
}
sess_login() {  # IQN
	timeout 90 iscsiadm -m node -T "$1" -p $LAB_IP:$ISER_PORT -I iser --login || return 1
	_sess_of "$1" > /dev/null || { echo "no session to $1"; return 1; }
	iscsiadm -m session 2>/dev/null | grep -qE "^iser: .* $1( |\$)" ||
		{ iscsiadm -m session; echo "the session to $1 does not run over iser"; return 1; }
}
sess_logout() {  # IQN
	timeout 60 iscsiadm -m node -T "$1" -p $LAB_IP:$ISER_PORT -I iser --logout || return 1
	! _sess_of "$1" > /dev/null || { echo "session to $1 still there"; return 1; }
}
_sess_of() {  # IQN: prints the session's sysfs name (sessionN)
	local s
	for s in /sys/class/iscsi_session/session*; do
		[ "$(cat $s/targetname 2>/dev/null)" = "$1" ] && { echo ${s##*/}; return 0; }
	done
	return 1
}
# lun_dev IQN LUN [TRIES]: the block device of that LUN of IQN's session
lun_dev() {
	local i s d
	for ((i = 0; i < ${3:-100}; i++)); do
		for s in /sys/class/iscsi_session/session*; do
			[ "$(cat $s/targetname 2>/dev/null)" = "$1" ] || continue
			for d in $s/device/target*/*:*:*:$2/block/*; do
				[ -e "$d" ] && [ -b /dev/${d##*/} ] && { echo ${d##*/}; return 0; }
			done
		done
		sleep 0.2
	done
	return 1
}
dev_size_is() {  # DEV BYTES
	local b=$(( $(cat /sys/block/$1/size) * 512 ))
	echo "/dev/$1: $b bytes"
	[ "$b" = "$2" ] || { echo "expected $2 bytes"; return 1; }
}
a_login() {
	sess_login $TA || return 1
	DEV_A=$(lun_dev $TA 0) || { echo "no block device for A"; return 1; }
	SID_A=$(_sess_of $TA)
	echo "A: /dev/$DEV_A ($SID_A)"
	dev_size_is $DEV_A $((64 << 20))
}
b_login() {
	local d
	sess_login $TB || return 1
	d=$(lun_dev $TB 0) || { echo "no block device for B"; return 1; }
	dev_size_is $d $((16 << 20))
}
c_auth() {  # SECRET: CHAP credentials for C's node record
	local n
	for n in "authmethod CHAP" "username cu" "password $1"; do
		iscsiadm -m node -T $TC -p $LAB_IP:$ISER_PORT -I iser -o update \
			-n node.session.auth.${n%% *} -v "${n#* }" || return 1
	done
}
c_login_ok() {  # SECRET
	c_auth "$1" || return 1
	sess_login $TC || return 1
	lun_dev $TC 0 > /dev/null || { echo "no block device for C"; return 1; }
	sess_logout $TC
}
c_login_refused() {  # SECRET
	local rc
	c_auth "$1" || return 1
	timeout 90 iscsiadm -m node -T $TC -p $LAB_IP:$ISER_PORT -I iser --login; rc=$?
	if [ $rc = 0 ] || _sess_of $TC > /dev/null; then
		echo "C accepted the old secret"; sess_logout $TC; return 1
	fi
	echo "refused (iscsiadm exit $rc)"
	grep "CHAP verification for $INI" $LOG | tail -1
}

# --- the writer: fio passes on A's LUN 0 until /tmp/live.stop exists (and MIN_IO_S passed) ---
# Pass N writes 32 MiB at random in 4-128 KiB direct writes, QD 16, random seed N, then reads it
# all back checking each block's crc32c (verify_fatal): any error or failed check ends the writer.
_fio_pass() {  # N [fio args]
	local n=$1; shift
	timeout $FIO_PASS_S fio --name=live$n --filename=/dev/$DEV_A --direct=1 --ioengine=libaio \
		--iodepth=16 --rw=randwrite --bsrange=4k-128k --size=32M --randseed=$n \
		--verify=crc32c --verify_fatal=1 --exitall_on_error=1 --verify_state_save=0 "$@"
}
_writer() {
	local n=0 t0 rc
	t0=$(now)
	while :; do
		n=$((n + 1))
		echo "=== pass $n at $(now)" >> $OUT/fio-live.txt
		_fio_pass $n --do_verify=1 >> $OUT/fio-live.txt 2>&1; rc=$?
		if [ $rc != 0 ] || ! sed -n "/^=== pass $n at/,\$p" $OUT/fio-live.txt | grep -q "err= 0"
		then
			echo "pass $n: fio exit $rc" > /tmp/live.failed; return 1
		fi
		echo $n > /tmp/live.passes
		[ -e /tmp/live.stop ] && awk -v a="$t0" -v b="$(now)" -v m="$MIN_IO_S" \
			'BEGIN { exit !(b - a >= m) }' && break
	done
	awk -v a="$t0" -v b="$(now)" 'BEGIN { printf "%.0f\n", b - a }' > /tmp/live.secs
}
writer_start() {
	rm -f /tmp/live.stop /tmp/live.failed /tmp/live.passes $OUT/fio-live.txt
	_writer & WPID=$!
	sleep 3
	writer_alive && note "fio writer on /dev/$DEV_A running (pid $WPID)"
}
writer_end() {
	local st passes
	touch /tmp/live.stop
	wait $WPID; st=$?; WPID=''
	passes=$(cat /tmp/live.passes 2>/dev/null)
	grep -E "^=== pass|^ *(READ|WRITE):" $OUT/fio-live.txt | tail -12
	echo "fio: $passes passes in $(cat /tmp/live.secs 2>/dev/null)s, writer exit $st" \
		"$(cat /tmp/live.failed 2>/dev/null)"
	[ $st = 0 ] && [ -n "$passes" ] && [ "$passes" -ge 2 ]
}

# --- the changes, each made while A has writes in flight ---
# in_flight: waits until the writer has writes under way on A (in a pass's write phase, not in
# its verify phase nor between two passes)
in_flight() {
	local i w
	for ((i = 0; i < 600; i++)); do
		read -r _ w < /sys/block/$DEV_A/inflight
		[ "$w" -gt 0 ] && { note "A: $w writes in flight"; return 0; }
		sleep 0.1
	done
	echo "no write in flight on A for 60 s"; return 1
}
lun_add() {
	in_flight || return 1
	ctl lun add $TA 1 ram:16M || return 1
	grep "target $TA: LUN 1 added" $LOG || return 1
	writer_alive
}
b_remove() {
	local i st
	if ctl target remove $TB; then
		echo "remove without --force succeeded with a session"; return 1
	fi
	in_flight || return 1
	ctl target remove $TB --force || return 1
	for ((i = 0; i < 100; i++)); do
		grep -q "target $TB: last session gone, freed" $LOG && break
		sleep 0.2
	done
	grep -E "target $TB|did not log out" $LOG
	grep -q "target $TB: last session gone, freed" $LOG ||
		{ echo "B's session is still at iserd after 20 s"; return 1; }
	if grep -q "did not log out in time" $LOG; then
		echo "the kernel did not log out when asked: iserd closed it"; return 1
	fi
	grep "Target requests logout" $OUT/iscsid.log | tail -1
	# iscsid answers the Async "logout requested" with a Logout, then treats the session as one
	# to recover (no user asked for the logout): it tries to log in to B again, which iserd
	# refuses (target not found). Ending that recovery is the administrator's logout.
	if st=$(_sess_of $TB); then
		echo "open-iscsi keeps $st to B for recovery" \
			"($(cat /sys/class/iscsi_session/$st/state 2>/dev/null)); logging it out"
		timeout 60 iscsiadm -m node -T $TB -p $LAB_IP:$ISER_PORT -I iser --logout
	fi
	for ((i = 0; i < 50; i++)); do _sess_of $TB > /dev/null || break; sleep 0.2; done
	iscsiadm -m session
	! _sess_of $TB > /dev/null || { echo "iscsiadm -m session still lists B"; return 1; }
	writer_alive
}
acl_change() {
	in_flight || return 1
	ctl acl add $TA "$INI" && ctl acl add $TA $OTHER_INI || return 1
	grep "target $TA: .* allowed" $LOG
	# a new login from an initiator not on the list is refused (libiscsi over iSER)
	if timeout 60 iscsi-inq -i iqn.2026-11.test:live-not-listed \
		"iser://$LAB_IP:$ISER_PORT/$TA/0" > /tmp/inq.out 2>&1; then
		cat /tmp/inq.out; echo "an initiator outside A's ACL logged in"; return 1
	fi
	echo "an initiator outside A's ACL is refused"
	writer_alive
}
chap_rotate() {
	in_flight || return 1
	NEWSECRET=$SECRET_NEW ctl acl chap $TC "$INI" --chap cu:env:NEWSECRET || return 1
	grep "target $TC: credentials of $INI" $LOG
	writer_alive
}
reload() {
	local i n0 line
	n0=$(grep -c "reloaded:" $LOG)
	write_conf reload || return 1
	in_flight || return 1
	kill -HUP $ISERD_PID
	for ((i = 0; i < 100; i++)); do
		[ "$(grep -c "reloaded:" $LOG)" -gt "$n0" ] && break
		grep -q "reload failed" $LOG && break
		sleep 0.2
	done
	line=$(grep -E "reloaded:|reload failed" $LOG | tail -1)
	echo "$line"
	# the file holds what runs for A and C: only E is new
	case $line in *"reloaded: targets +1 -0 ~0 (2 untouched), LUNs +0 -0 ~0"*) ;;
	*) echo "expected the reload to add E and leave A and C untouched"; return 1 ;; esac
	ctl target list
	writer_alive
}
# A's session: the same kernel session throughout (no reconnect, no error on the connection).
# The LUN added raised REPORTED LUNS DATA HAS CHANGED on it, which the kernel logs and retries.
a_untouched() {
	local e ua
	e=$(dmesg | grep -c "connection${SID_A#session}:0: detected conn error")
	ua=$(dmesg | grep "LUN assignments on this target have changed")
	echo "A: $(_sess_of $TA) (was $SID_A)," \
		"state $(cat /sys/class/iscsi_session/$SID_A/state), connection errors in dmesg: $e"
	echo "${ua:-no LUN-change unit attention logged}"
	[ -n "$ua" ] || { echo "expected REPORTED LUNS DATA HAS CHANGED on A's session"; return 1; }
	[ "$(_sess_of $TA)" = "$SID_A" ] && [ "$e" = 0 ] &&
		[ "$(cat /sys/class/iscsi_session/$SID_A/state)" = LOGGED_IN ]
}
rescan() {
	local d
	timeout 60 iscsiadm -m session --rescan || return 1
	d=$(lun_dev $TA 1 150) ||
		{ echo "A's LUN 1 did not appear"; ls /sys/class/scsi_device; return 1; }
	echo "A's LUN 1: /dev/$d"
	dev_size_is $d $((16 << 20)) || return 1
	dd if=/dev/urandom of=/tmp/l1 bs=1M count=4 status=none || return 1
	timeout 60 dd if=/tmp/l1 of=/dev/$d bs=1M oflag=direct conv=fsync status=none || return 1
	timeout 60 dd if=/dev/$d of=/tmp/l1.back bs=1M count=4 iflag=direct status=none || return 1
	cmp /tmp/l1 /tmp/l1.back && echo "4 MiB written to LUN 1 and read back identical"
}
e_login() {
	local d
	sess_login $TE || return 1
	d=$(lun_dev $TE 0) || { echo "no block device for E"; return 1; }
	dev_size_is $d $((16 << 20)) || return 1
	timeout 60 dd if=/dev/$d of=/dev/null bs=1M count=16 iflag=direct status=none || return 1
	sess_logout $TE
}
# the last pass's data, read back once more after every change (fio verify_only of pass N)
a_verify() {
	local n
	n=$(cat /tmp/live.passes)
	_fio_pass "$n" --verify_only > $OUT/fio-live-verify.txt 2>&1 ||
		{ cat $OUT/fio-live-verify.txt; return 1; }
	grep -E "err=|READ:" $OUT/fio-live-verify.txt
	grep -q "err= 0" $OUT/fio-live-verify.txt &&
		echo "pass $n's 32 MiB verify (crc32c) at the end"
}
stop_clean() {
	iserd_stop || return 1
	if grep -E "AddressSanitizer|LeakSanitizer|runtime error" $LOG; then
		echo "sanitizer report in iserd's log"; return 1
	fi
}
teardown() {
	# the writer stops after its pass (each bounded by FIO_PASS_S)
	[ -n "$WPID" ] && { touch /tmp/live.stop; wait $WPID 2>/dev/null; }
	_teardown
}

step "soft-$FABRIC up on veth0 $LAB_IP" rdma_fabric_up $FABRIC
ulimit -l unlimited
step "ib_iser loaded" iser_mod
step "iscsid started" iscsid_start
step "initiator name read" read_ini
step "iserd started from a config file with a control socket" target_start
step "discovery over iSER lists A, B, C" discover_has "$TA $TB $TC" ""
step "C: login with the first CHAP secret works" c_login_ok $SECRET_OLD
step "login to A (iser), 64 MiB LUN 0" a_login
step "login to B (iser)" b_login
step "fio writer on A started (32 MiB passes, 4-128 KiB random, QD 16, crc32c)" writer_start
step "iserctl lun add A 1 ram:16M (writes in flight)" lun_add
step "iserctl target remove B --force: its kernel session logged out (writes in flight)" b_remove
step "iserctl acl add A: this initiator and another (writes in flight)" acl_change
step "iserctl acl chap C: secret rotated (writes in flight)" chap_rotate
step "config file edited (E added, B absent), SIGHUP: reloaded (writes in flight)" reload
step "fio writer ends: every pass exit 0, no error, verified" writer_end
step "A's session untouched: same session, no connection error, LUN-change UA absorbed" a_untouched
step "rescan: A's LUN 1 is a new 16 MiB disk, I/O on it" rescan
step "discovery over iSER lists A, C, E and not B" discover_has "$TA $TC $TE" "$TB"
step "new login to E (iser)" e_login
step "C: the old CHAP secret is refused" c_login_refused $SECRET_OLD
step "C: the new CHAP secret works" c_login_ok $SECRET_NEW
step "A's data verifies at the end" a_verify
step "logout A" sess_logout $TA
step "iserd serving, iSER and core counters back to zero" iserd_idle_check $LOG zero-copy
[ $LAB_FAILED = 0 ] || teardown
cleanup "SIGTERM: iserd exits 0, no sanitizer report" stop_clean
iscsid_stop
dmesg | grep -iE "iser|rxe|siw|sd " | tail -20
lab_finish
