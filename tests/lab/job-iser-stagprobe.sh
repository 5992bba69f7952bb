# Lab job (guest side of tests/interop/test_iser_stagprobe.sh): no peer can RDMA Write into
# iserd's memory. iserd with a 64 MiB RAM LUN (and a read-only 16 MiB one) on soft-RoCE
# (FABRIC=rxe) or soft-iWARP (FABRIC=siw);
# libiscsi writes and reads through it over iSER (so that pool slabs exist and, on iWARP, WRITEs
# fetched by RDMA Read had their per-command sink registrations); then (iserd_stag_probe in
# guest.sh) on rxe no MR of iserd may have a remote key, and a peer that knows the LUN's STag and
# address RDMA Writes to it: refused; no registration with remote access is left; an initiator
# that stops posting receives (tests/integration/isd_iserflood.c) is dropped, not waited for.
# Env: ISERD_BIN (default /lab/files/iserd), FABRIC (rxe|siw). iserd's log: /lab/out/iserd.log.
. /lab/guest.sh
TARGET_IQN=iqn.2026-11.org.iserd:probe
ISERD_BIN=${ISERD_BIN:-/lab/files/iserd}
FABRIC=${FABRIC:-rxe}
if [ "$FABRIC" = siw ]; then ISER_PORT=3261; else ISER_PORT=3260; fi
LOG=$OUT/iserd.log
URL=iser://$LAB_IP:$ISER_PORT/$TARGET_IQN/0

# libiscsi needs InitialR2T=Yes and no immediate data over iSER (job-libiscsi-iser.sh): every
# WRITE's data is fetched by RDMA Read. No NOP-In pings: the iSER layer alone must notice a peer
# that takes no Sends.
target_start() {
	cat > /tmp/iserd.conf <<-CONF
	global = { initial_r2t = true; immediate_data = false; nop_interval = 0; };
	portals = ( "iser://$LAB_IP:$ISER_PORT" );
	targets = ( { name = "$TARGET_IQN";
	    luns = ( { number = 0; backing = "ram:64M"; },
	             { number = 1; backing = "ram:16M"; read_only = true; },
	             { number = 2; backing = "file:/tmp/chaos-lun.img,size=16M"; } ); } );
	CONF
	iserd_start $LOG -c /tmp/iserd.conf
}
# 1 MiB written in WRITEs of 256 KiB (what libiscsi over iSER takes) and read back; 1 MiB read
# from the read-only RAM LUN 1, registered without write access (RDMA Writes from it work), and a
# WRITE to it refused
io() {
	dd if=/dev/urandom of=/tmp/w bs=1M count=1 status=none || return 1
	timeout 120 /lab/files/isd_rwcheck -i iqn.2026-11.test:probe -l 2048 -c 262144 -w /tmp/w \
		-r /tmp/r "$URL" || return 1
	cmp /tmp/w /tmp/r && echo "1 MiB written and read back over iSER" || return 1
	timeout 120 /lab/files/isd_rwcheck -i iqn.2026-11.test:probe -l 0 -r /tmp/ro -n 1048576 \
		"${URL%/0}/1" || return 1
	cmp -n 1048576 /tmp/ro /dev/zero && echo "1 MiB read from the read-only LUN" || return 1
	if timeout 120 /lab/files/isd_rwcheck -i iqn.2026-11.test:probe -l 0 -c 262144 -w /tmp/w \
		"${URL%/0}/1"; then
		echo "a WRITE to the read-only LUN succeeded"; return 1
	fi
	echo "a WRITE to the read-only LUN was refused"
}
remote_mrs_zero() {
	local st
	st=$(iserd_stats $LOG)
	echo "$st"
	case $st in *'"remote_mrs":0,'*) ;; *) echo "a registration with remote access is live"; return 1 ;; esac
}
# then the LUN's last 4 KiB (where the probe aimed) read back through libiscsi
probe() {
	local rc
	iserd_stag_probe $ISER_PORT $((64 << 20)) '' $((16 << 20)); rc=$?
	timeout 120 /lab/files/isd_rwcheck -i iqn.2026-11.test:probe -l $(((64 << 20) / 512 - 8)) \
		-r /tmp/lastblk -n 4096 "$URL" || return 1
	if grep -q ISDPROBE /tmp/lastblk; then
		echo "the probe's bytes landed in the LUN (read back over iSER)"; return 1
	fi
	echo "the LUN's last block does not hold the probe's bytes"
	return $rc
}

# An initiator that logs in, then posts no more receives (tests/integration/isd_iserflood.c):
# - rnr: it asks for rnr_retry_count 7 ("retry for ever": the IB CM gives iserd's QP the count
#   the initiator's REQ names), sends 8 NOP-Out pings and waits. On rxe the NOP-Ins iserd answers
#   with get RNR NAKs for ever: with NOP-In pings off (nop_interval = 0) the connection used to
#   stay stalled; now iserd notices that its send queue made no progress for 15-30 s
#   (ISD_ISER_TX_STALL_MS), drops and frees it. (On siw a Send without a receive ends the
#   connection at once.)
# - flood: it keeps pinging. The NOP-Ins iserd cannot send queue up to the soft limit (512), then
#   iserd stops reposting receives (tx_queue_holds), so the flood runs dry and the connection
#   ends; before, the queue grew for as long as the initiator went on. (On siw, again, the first
#   Send without a receive ends the connection.)
_flood() {  # COUNT
	local rc f0 i
	[ -x /lab/files/isd_iserflood ] || { echo "isd_iserflood was not built"; return 1; }
	f0=$(grep -c "connection freed" $LOG)
	timeout 180 /lab/files/isd_iserflood $LAB_IP $ISER_PORT $TARGET_IQN 60 $1; rc=$?
	grep -E "work completion error|control PDUs|none completed" $LOG | tail -3
	[ $rc = 2 ] || { echo "the connection stayed up (exit $rc)"; return 1; }
	# its teardown may still be draining
	for ((i = 0; i < 150; i++)); do
		[ "$(grep -c "connection freed" $LOG)" -gt "$f0" ] && break
		sleep 0.2
	done
	iserd_idle_check $LOG
}
rnr() {
	_flood 8 || return 1
	[ "$FABRIC" = siw ] && return 0
	[ "$(iserd_stat $LOG tx_stall_drops)" -ge 1 ] || { echo "iserd did not notice the stall"; return 1; }
}
flood() {
	_flood 0 || return 1
	[ "$FABRIC" = siw ] && return 0         # the first Send without a receive ended it
	[ "$(iserd_stat $LOG tx_queue_holds)" -ge 1 ] || { echo "no receive was held back"; return 1; }
}

# Chaos over iSER (tests/integration/isd_chaoswriter.c, libiscsi): CHAOS_CYCLES logins that end in
# turn with a Logout, a dropped connection, and a dropped connection with a WRITE in flight; then
# writers rewriting stamped blocks at QD 8, one on the RAM LUN 0 (LBAs 16384..20479, clear of what
# the other steps write) and one on the file LUN 2, killed with SIGKILL CHAOS_KILLS times in all,
# each time at a random moment after it had writes acknowledged, and restarted (generations go
# on). Then every block of both ranges is checked against the writers' logs: none holds anything
# but its writer's block of a generation issued for it, none an older generation than the last
# one acknowledged (no acknowledged write lost). iSER and core counters back to zero, iserd's fds
# back to where they were.
CHAOS_CYCLES=${CHAOS_CYCLES:-100}
CHAOS_KILLS=${CHAOS_KILLS:-20}
_acks() { local n; n=$(grep -c '^A' "$1" 2>/dev/null); echo "${n:-0}"; }
chaos() {
	local fds0 fds i k w first p n0 url
	[ -x /lab/files/isd_chaoswriter ] || { echo "isd_chaoswriter was not built"; return 1; }
	fds0=$(ls /proc/$ISERD_PID/fd | wc -l)
	timeout $((CHAOS_CYCLES * 3 + 60)) /lab/files/isd_chaoswriter cycles "$URL" $CHAOS_CYCLES || return 1
	rm -f /tmp/chaos.* && : > /tmp/chaos.err
	for ((i = 0; i < CHAOS_KILLS; i++)); do
		w=$(((i % 2) * 2)) first=$((w == 0 ? 16384 : 0)) url=${URL%/0}/$w
		n0=$(_acks /tmp/chaos.$w)
		/lab/files/isd_chaoswriter write "$url" $w $first 4096 8 /tmp/chaos.$w 2>>/tmp/chaos.err &
		p=$!
		for ((k = 0; k < 600; k++)); do
			[ "$(_acks /tmp/chaos.$w)" -gt "$n0" ] && break
			kill -0 $p 2>/dev/null || break
			sleep 0.1
		done
		sleep 0.$((RANDOM % 10))
		if ! kill -0 $p 2>/dev/null; then
			wait $p; echo "writer on LUN $w exited by itself (status $?)"; cat /tmp/chaos.err; return 1
		fi
		kill -9 $p; wait $p 2>/dev/null
	done
	echo "$CHAOS_KILLS writers killed with SIGKILL mid-I/O;" \
		"acknowledged writes: LUN 0 $(_acks /tmp/chaos.0), LUN 2 $(_acks /tmp/chaos.2)"
	if ! timeout 300 /lab/files/isd_chaoswriter check "$URL" 0 16384 4096 /tmp/chaos.0 ||
		! timeout 300 /lab/files/isd_chaoswriter check "${URL%/0}/2" 2 0 4096 /tmp/chaos.2; then
		cp /tmp/chaos.* $OUT/ 2>/dev/null   # the writers' logs, for a post-mortem
		return 1
	fi
	iserd_idle_check $LOG || return 1
	for ((k = 0; k < 50; k++)); do
		fds=$(ls /proc/$ISERD_PID/fd | wc -l)
		[ "$fds" -le "$fds0" ] && break
		sleep 0.2
	done
	echo "iserd fds: $fds0 before, $fds after"
	[ "$fds" -le "$fds0" ] || { echo "iserd holds more fds than before"; return 1; }
}

step "soft-$FABRIC up on veth0 $LAB_IP" rdma_fabric_up $FABRIC
ulimit -l unlimited
step "target started (iser://$LAB_IP:$ISER_PORT)" target_start
step "WRITE and READ through libiscsi over iSER; READ from a read-only LUN" io
step "no remote key on rxe; an RDMA Write to the LUN's STag is refused" probe
step "an initiator that stops posting receives is dropped (send queue stall), connection freed" rnr
step "an initiator that floods pings without receives meets backpressure, connection freed" flood
step "chaos: $CHAOS_CYCLES login cycles, $CHAOS_KILLS writers killed mid-I/O, no acknowledged write lost" chaos
step "no registration with remote access left" remote_mrs_zero
cleanup "target stopped cleanly" iserd_stop
lab_finish
