# shellcheck shell=bash disable=SC2034  # TARGET_* are read by guest.sh
# Lab job (guest side of tests/interop/test_iserinit_iser.sh and test_iserinit_iser_siw.sh):
# libiserd's iSER transport (the iserinit CLI with iser:// URLs) over soft-RoCE (FABRIC=rxe, the
# default) or soft-iWARP (FABRIC=siw) on veth0 against
#   1. iserd's iser:// portal (256 MiB RAM LUN; on siw on port 3261 next to a TCP portal on 3260),
#      plus a second target that requires CHAP (16 MiB) and a third on a 64 MiB file LUN (data
#      buffers from the registered pool, io_uring); against iserd also verify in 16 MiB commands
#      (RAM and file LUN), and iserd killed (-9) under a bench --reconnect and restarted: the
#      library re-logs in over iSER and the run ends with no errors, and
#   2. LIO's ib_isert (ramdisk rd_mcp, 64 MiB) -- on rxe only: on siw LIO's iSER portal shares its
#      TCP portal's port and rdma_listen fails with EADDRINUSE, which the siw run checks instead,
# each: discover, login (negotiated keys), inquiry, readcap, verify --size 64M (pattern write,
# read back, compare), and two short benches (4 KiB random read QD 32, 1 MiB sequential write
# QD 8; TCG is slow, so only a few seconds each); then CHAP and mutual CHAP logins over iSER: the
# right secrets log in, a wrong initiator secret fails with the target's login status in words
# (authentication failure), a wrong target secret for mutual CHAP fails on the initiator's side.
# Env: ISERD_BIN (default /lab/files/iserd), ISERINIT_BIN (default /lab/files/iserinit; libiserd.so
# beside it), ISERD_ARGS, BENCH_TIME (s per bench, default 3), PARTS (which targets: "iserd lio"),
# FABRIC (rxe|siw), ISER_PORT (default 3260 on rxe, 3261 on siw).
. /lab/guest.sh
ISERD_BIN=${ISERD_BIN:-/lab/files/iserd}
ISERINIT_BIN=${ISERINIT_BIN:-/lab/files/iserinit}
export LD_LIBRARY_PATH=$(dirname "$ISERINIT_BIN")${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
BENCH_TIME=${BENCH_TIME:-3}
PARTS=${PARTS:-iserd lio}
IQN_ISERD=iqn.2026-11.org.iserd:lab
IQN_LIO=iqn.2026-11.test:lio
IQN_CHAP=iqn.2026-11.org.iserd:chap   # iserd's CHAP-protected target
IQN_FILE=iqn.2026-11.org.iserd:file   # iserd's file-backed target
INIT_CHAP=iqn.2026-11.test:chapinit   # the initiator name the CHAP logins use
CHAP_USER=labuser CHAP_SECRET=initsecret0123 CHAP_BAD=wrongsecret999
MCHAP_USER=labtarget MCHAP_SECRET=tgtsecret45678 MCHAP_BAD=wrongtgtsec000
FABRIC=${FABRIC:-rxe}
if [ "$FABRIC" = siw ]; then ISER_PORT=${ISER_PORT:-3261}; else ISER_PORT=${ISER_PORT:-3260}; fi
LOG=$OUT/iserd.log

ii() {  # iserinit ARGS...: bounded, output kept
	timeout 120 "$ISERINIT_BIN" "$@"
}
discover_lists() {  # IQN
	ii discover "iser://$LAB_IP:$ISER_PORT" > /tmp/disc.out 2>&1; local rc=$?
	cat /tmp/disc.out
	[ $rc = 0 ] && grep -q "$1" /tmp/disc.out || { echo "discovery over iSER did not list $1"; return 1; }
}
login_keys() {  # URL
	ii login "$1" > /tmp/login.out 2>&1; local rc=$?
	cat /tmp/login.out
	[ $rc = 0 ] || return $rc
	! grep -qiE "digest.*(crc32c|yes)" /tmp/login.out || { echo "digests negotiated over iSER"; return 1; }
}
inquiry() { ii inquiry "$1"; }
readcap() { ii readcap "$1"; }
verify64() { ii verify --size 64M "$1"; }
# 16 MiB per SCSI command: the target splits each into RDMA Reads/Writes at the device's limits
verify16m() { ii verify --size 64M --bs 16M "$1"; }
bench() {  # NAME URL ARGS...
	local name=$1 url=$2; shift 2
	ii bench --time "$BENCH_TIME" "$@" "$url" > $OUT/bench-$name.txt 2>&1; local rc=$?
	cat $OUT/bench-$name.txt
	return $rc
}
lio_iser_start() {
	local tpg=$LIO_CFS/iscsi/$IQN_LIO/tpgt_1
	modprobe ib_isert || return 1
	lio_start $IQN_LIO $((64 << 20)) || return 1
	echo 1 > $tpg/np/$LAB_IP:3260/iser || return 1
	cat $tpg/np/$LAB_IP:3260/iser
}
lio_iser_stop() {
	local np=$LIO_CFS/iscsi/$IQN_LIO/tpgt_1/np/$LAB_IP:3260
	[ -d $np ] && { echo 0 > $np/iser || return 1; }
	lio_stop $IQN_LIO
}
# chap_ok URL ARGS...: login + logout with these credentials must succeed and report CHAP
chap_ok() {
	local url=$1; shift
	ii -i $INIT_CHAP login "$@" "$url" > /tmp/chap.out 2>&1; local rc=$?
	cat /tmp/chap.out
	[ $rc = 0 ] || { echo "login failed (exit $rc)"; return 1; }
	grep -q "Authentication *CHAP" /tmp/chap.out || { echo "the login did not report CHAP"; return 1; }
}
# chap_bad URL PATTERN ARGS...: the login must fail (exit 1, not a hang or crash) with a message
# matching PATTERN (extended regex, case-insensitive)
chap_bad() {
	local url=$1 pat=$2; shift 2
	ii -i $INIT_CHAP login "$@" "$url" > /tmp/chap.out 2>&1; local rc=$?
	cat /tmp/chap.out
	[ $rc = 1 ] || { echo "expected exit status 1, got $rc"; return 1; }
	grep -qiE "$pat" /tmp/chap.out || { echo "no message matching '$pat'"; return 1; }
}
chap_scenario() {  # NAME URL [PATTERN for the login without credentials] [nomutualbad] [PATTERN
	# for the wrong secret]
	local n=$1 url=$2 nocred=${3:-"authentication|authorization|status 0x02"} mbad=${4:-}
	local wrong=${5:-"authentication fail"}
	local c="--chap $CHAP_USER:$CHAP_SECRET" m="--mutual-chap $MCHAP_USER:$MCHAP_SECRET"
	# shellcheck disable=SC2086
	{
	step "$n: CHAP login, right secret, logout" chap_ok "$url" $c
	step "$n: mutual CHAP login, right secrets, logout" chap_ok "$url" $c $m
	step "$n: CHAP login, wrong secret: fails cleanly ('$wrong')" \
		chap_bad "$url" "$wrong" --chap $CHAP_USER:$CHAP_BAD
	step "$n: CHAP login, no credentials: fails with the login status in words" \
		chap_bad "$url" "$nocred"
	[ "$mbad" = nomutualbad ] ||
	step "$n: mutual CHAP, wrong target secret: the initiator refuses the target" \
		chap_bad "$url" "mutual|target.*(authenticat|CHAP)" $c --mutual-chap $MCHAP_USER:$MCHAP_BAD
	}
}
# LIO CHAP: an explicit node ACL for INIT_CHAP with userid/password and the mutual pair, LUN 0
# mapped, authentication=1 on the TPG (demo mode stays on for the initiators without an ACL)
lio_chap_on() {
	local tpg=$LIO_CFS/iscsi/$IQN_LIO/tpgt_1 acl
	acl=$tpg/acls/$INIT_CHAP
	local d
	mkdir -p $acl/lun_0 && ln -s $tpg/lun/lun_0 $acl/lun_0/map || return 1
	# the same credentials in the ACL and in the TPG's demo-mode auth (used for dynamic ACLs);
	# printf: no trailing newline in the values
	for d in $acl/auth $tpg/auth; do
		printf %s $CHAP_USER > $d/userid && printf %s $CHAP_SECRET > $d/password &&
		printf %s $MCHAP_USER > $d/userid_mutual && printf %s $MCHAP_SECRET > $d/password_mutual ||
			return 1
	done
	echo 1 > $tpg/attrib/authentication || return 1
	echo "acl $INIT_CHAP: userid $(cat $acl/auth/userid), userid_mutual $(cat $acl/auth/userid_mutual)," \
		"authenticate_target $(cat $acl/auth/authenticate_target 2>/dev/null); tpg authentication $(cat $tpg/attrib/authentication)"
}
lio_chap_off() {
	local tpg=$LIO_CFS/iscsi/$IQN_LIO/tpgt_1 acl
	acl=$tpg/acls/$INIT_CHAP
	[ -d $acl ] || return 0
	echo 0 > $tpg/attrib/authentication
	printf NULL > $tpg/auth/userid_mutual; printf NULL > $tpg/auth/userid
	rm $acl/lun_0/map && rmdir $acl/lun_0 && rmdir $acl
}
# siw: LIO creates a TCP listener for every np; iSER on the same port must fail with EADDRINUSE
# (iWARP shares the TCP port space), and LIO still serves TCP on it
lio_iser_siw_clash() {
	local tpg=$LIO_CFS/iscsi/$IQN_LIO/tpgt_1 err rc
	modprobe ib_isert || return 1
	lio_start $IQN_LIO $((16 << 20)) || return 1
	err=$( { echo 1 > $tpg/np/$LAB_IP:3260/iser; } 2>&1 ); rc=$?
	echo "echo 1 > np/$LAB_IP:3260/iser: exit $rc: $err"
	dmesg | grep -iE "isert|rdma_listen|iscsi_target" | tail -5
	[ $rc != 0 ] || { echo "LIO's iSER portal came up on siw (expected EADDRINUSE)"; return 1; }
	case $err in *"Address already in use"*) ;; *) echo "the error is not EADDRINUSE"; return 1 ;; esac
	[ "$(cat $tpg/np/$LAB_IP:3260/iser)" = 0 ] || { echo "np/iser reads back 1"; return 1; }
}
# The target dies (kill -9) under a running bench and comes back on the same portal: with
# --reconnect the library re-logs in over iSER and retries what was outstanding, so the run ends
# with errors 0 and reconnects >= 1; then the data path is checked with a verify.
reconnect_iser() {
	local url="iser://$LAB_IP:$ISER_PORT/$IQN_ISERD/0" bp st pid
	# shellcheck disable=SC2086
	iserd_start $OUT/iserd-victim.log $portals --target $IQN_ISERD --lun ram:64M ${ISERD_ARGS:-} ||
		return 1
	timeout 120 "$ISERINIT_BIN" bench --reconnect --rw randwrite --bs 4K --qd 32 --time 20 --json \
		"$url" > $OUT/reconnect.json 2> $OUT/reconnect.err &
	bp=$!
	sleep 6
	pid=$ISERD_PID; ISERD_PID=
	kill -KILL $pid; wait $pid 2>/dev/null
	note "iserd (pid $pid) killed"
	sleep 1
	# shellcheck disable=SC2086
	iserd_start $OUT/iserd-restarted.log $portals --target $IQN_ISERD --lun ram:64M ${ISERD_ARGS:-} ||
		{ kill $bp; return 1; }
	wait $bp; st=$?
	cat $OUT/reconnect.err $OUT/reconnect.json
	[ $st = 0 ] || { echo "bench exit $st"; return 1; }
	python3 -c 'import json,sys; r=json.load(open(sys.argv[1])); print("ios", r["ios"], "errors", r["errors"], "reconnects", r["reconnects"]); sys.exit(0 if r["errors"] == 0 and r["reconnects"] >= 1 and r["ios"] > 0 else 1)' $OUT/reconnect.json ||
		{ echo "expected errors 0, reconnects >= 1"; return 1; }
	ii verify --size 8M "$url"
}
scenario() {  # NAME IQN
	local n=$1 url="iser://$LAB_IP:$ISER_PORT/$2/0"
	step "$n: discovery over iSER lists $2" discover_lists "$2"
	step "$n: login over iSER (RDMAExtensions, no digests), logout" login_keys "$url"
	step "$n: inquiry" inquiry "$url"
	step "$n: readcap" readcap "$url"
	step "$n: verify --size 64M (write pattern, read back, compare)" verify64 "$url"
	step "$n: bench 4K randread QD32 ${BENCH_TIME}s" bench "$n-4k-randread" "$url" --rw randread --bs 4K --qd 32 --size 64M
	step "$n: bench 1M write QD8 ${BENCH_TIME}s" bench "$n-1m-write" "$url" --rw write --bs 1M --qd 8 --size 64M
}

ulimit -l unlimited
step "soft-$FABRIC up on veth0 $LAB_IP" rdma_fabric_up $FABRIC
# on iWARP the iSER portal needs a port no TCP listener holds: TCP on 3260, iSER on 3261
portals="--portal iser://$LAB_IP:$ISER_PORT"
[ "$FABRIC" = siw ] && portals="--portal tcp://$LAB_IP:3260 $portals"
for p in $PARTS; do
	case $p in
	iserd)
		# shellcheck disable=SC2086
		step "iserd started ($portals)" iserd_start $LOG $portals \
			--target $IQN_ISERD --lun ram:256M \
			--target $IQN_CHAP --lun ram:16M --chap $CHAP_USER:$CHAP_SECRET \
			--mutual-chap $MCHAP_USER:$MCHAP_SECRET \
			--target $IQN_FILE --lun file:/tmp/iserd-file.img,size=64M ${ISERD_ARGS:-}
		scenario iserd $IQN_ISERD
		step "iserd: verify --size 64M --bs 16M (16 MiB commands, RAM LUN)" \
			verify16m "iser://$LAB_IP:$ISER_PORT/$IQN_ISERD/0"
		step "iserd: verify --size 64M --bs 16M (16 MiB commands, file LUN)" \
			verify16m "iser://$LAB_IP:$ISER_PORT/$IQN_FILE/0"
		step "iserd: verify --size 8M in 4 KiB commands (file LUN)" \
			ii verify --size 8M --bs 4K "iser://$LAB_IP:$ISER_PORT/$IQN_FILE/0"
		chap_scenario iserd "iser://$LAB_IP:$ISER_PORT/$IQN_CHAP/0"
		step "iserd: iSER and core counters back to zero" iserd_idle_check $LOG
		cleanup "iserd stopped cleanly" iserd_stop
		step "iserd: kill -9 mid-bench, restart: bench --reconnect re-logs in over iSER, errors 0" \
			reconnect_iser
		cleanup "iserd (restarted) stopped cleanly" iserd_stop
		;;
	lio)
		if [ "$FABRIC" = siw ]; then
			step "LIO on siw: iSER portal on its TCP portal's port fails with EADDRINUSE" lio_iser_siw_clash
			cleanup "LIO stopped" lio_stop $IQN_LIO
			continue
		fi
		step "LIO ib_isert ramdisk target on iser://$LAB_IP:3260" lio_iser_start
		scenario lio $IQN_LIO
		step "LIO: CHAP node ACL for $INIT_CHAP (userid/password + mutual), authentication=1" lio_chap_on
		# LIO answers AuthMethod=None against a CHAP ACL by closing the connection ("Proposer's
		# value list None contains no valid values" in dmesg); over iSER the initiator may see
		# the disconnect before (or instead of) a login response, so either message is clean
		# Not run against LIO: the wrong-target-secret case (iserinit drops the connection after
		# LIO's CHAP_R) passes, but LIO (Debian 6.1 kernel) then keeps a reference on the node ACL:
		# rmdir of the ACL blocks in core_tpg_del_initiator_node_acl (hung task > 120 s), so LIO
		# cannot be torn down. Checked against iserd above.
		# LIO sends its 0x0201 reject and disconnects at once; over rxe the DISCONNECTED event
		# sometimes reaches iserinit before the reject's receive completion (2 runs in 4), and
		# then the disconnect is what it reports: accepted here, still a clean exit 1
		chap_scenario lio "iser://$LAB_IP:3260/$IQN_LIO/0" \
			"authentication|authorization|status 0x02|closed the iSER connection" nomutualbad \
			"authentication fail|closed the iSER connection"
		cleanup "LIO CHAP ACL removed" lio_chap_off
		cleanup "LIO stopped" lio_iser_stop
		;;
	esac
done
dmesg | grep -iE "iser|rxe|siw" | tail -20
lab_finish
