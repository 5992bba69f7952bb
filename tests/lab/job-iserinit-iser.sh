# shellcheck shell=bash disable=SC2034  # TARGET_* are read by guest.sh
# Lab job (guest side of tests/interop/test_iserinit_iser.sh): libiserd's iSER transport (the
# iserinit CLI with iser:// URLs) over soft-RoCE (rdma_rxe on veth0) against
#   1. iserd's iser:// portal (256 MiB RAM LUN), and
#   2. LIO's ib_isert (ramdisk rd_mcp, 64 MiB),
# each: discover, login (negotiated keys), inquiry, readcap, verify --size 64M (pattern write,
# read back, compare), and two short benches (4 KiB random read QD 32, 1 MiB sequential write
# QD 8; TCG is slow, so only a few seconds each).
# Env: ISERD_BIN (default /lab/files/iserd), ISERINIT_BIN (default /lab/files/iserinit; libiserd.so
# beside it), ISERD_ARGS, BENCH_TIME (s per bench, default 3), PARTS (which targets: "iserd lio").
. /lab/guest.sh
ISERD_BIN=${ISERD_BIN:-/lab/files/iserd}
ISERINIT_BIN=${ISERINIT_BIN:-/lab/files/iserinit}
export LD_LIBRARY_PATH=$(dirname "$ISERINIT_BIN")${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
BENCH_TIME=${BENCH_TIME:-3}
PARTS=${PARTS:-iserd lio}
IQN_ISERD=iqn.2026-11.org.iserd:lab
IQN_LIO=iqn.2026-11.test:lio
LOG=$OUT/iserd.log

ii() {  # iserinit ARGS...: bounded, output kept
	timeout 120 "$ISERINIT_BIN" "$@"
}
discover_lists() {  # IQN
	ii discover "iser://$LAB_IP:3260" > /tmp/disc.out 2>&1; local rc=$?
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
scenario() {  # NAME IQN
	local n=$1 url="iser://$LAB_IP:3260/$2/0"
	step "$n: discovery over iSER lists $2" discover_lists "$2"
	step "$n: login over iSER (RDMAExtensions, no digests), logout" login_keys "$url"
	step "$n: inquiry" inquiry "$url"
	step "$n: readcap" readcap "$url"
	step "$n: verify --size 64M (write pattern, read back, compare)" verify64 "$url"
	step "$n: bench 4K randread QD32 ${BENCH_TIME}s" bench "$n-4k-randread" "$url" --rw randread --bs 4K --qd 32 --size 64M
	step "$n: bench 1M write QD8 ${BENCH_TIME}s" bench "$n-1m-write" "$url" --rw write --bs 1M --qd 8 --size 64M
}

ulimit -l unlimited
step "soft-RoCE up on veth0 $LAB_IP" rdma_fabric_up rxe
for p in $PARTS; do
	case $p in
	iserd)
		# shellcheck disable=SC2086
		step "iserd started (iser://$LAB_IP:3260)" iserd_start $LOG --portal iser://$LAB_IP:3260 \
			--target $IQN_ISERD --lun ram:256M ${ISERD_ARGS:-}
		scenario iserd $IQN_ISERD
		step "iserd: iSER and core counters back to zero" iserd_idle_check $LOG
		cleanup "iserd stopped cleanly" iserd_stop
		;;
	lio)
		step "LIO ib_isert ramdisk target on iser://$LAB_IP:3260" lio_iser_start
		scenario lio $IQN_LIO
		cleanup "LIO stopped" lio_iser_stop
		;;
	esac
done
dmesg | grep -iE "iser|rxe" | tail -20
lab_finish
