#!/bin/bash
# Interop: libiserd's iSER transport (iserinit with iser:// URLs) over soft-RoCE (rdma_rxe on a
# veth pair in the project's QEMU lab, tests/lab) against iserd's iser:// portal (256 MiB RAM LUN)
# and against LIO's ib_isert (64 MiB ramdisk). For each target: SendTargets discovery over iSER,
# login (RDMAExtensions, no digests) + logout, inquiry, readcap, verify --size 64M (pattern
# written, read back, compared), bench 4 KiB randread QD 32 and 1 MiB write QD 8 (short: TCG);
# then CHAP and mutual CHAP logins over iSER against a CHAP-protected iserd target and against LIO
# (node ACL with userid/password and userid_mutual/password_mutual, authentication=1): right
# secrets log in, a wrong secret or none fails with the login status in words, a wrong target
# secret is refused by the initiator; for iserd also its iSER and core counters back to zero and
# a clean SIGTERM exit. With ISERD_LAB_FABRIC=siw (test_iserinit_iser_siw.sh) the same list runs
# over soft-iWARP against iserd (iser:// on 3261 next to tcp:// on 3260), and LIO's iSER portal is
# checked to fail with EADDRINUSE (iWARP shares the TCP port space; LIO always holds TCP there).
# The guest side is tests/lab/job-iserinit-iser.sh.
#
# Env: ISERD, ISERINIT (binaries; default ISERD_BUILD/iserd, ISERD_BUILD/iserinit, with
# libiserd.so beside iserinit); ISERD_SRC, ISERD_BUILD (set by ctest); ISERD_LAB_DIR (lab cache);
# LAB_TIMEOUT (VM bound, s, default 900); ISERD_LAB_OUT (run files; default under ISERD_BUILD);
# ISERD_LAB_PARTS ("iserd lio", the default, or one of them); ISERD_LAB_BENCH_TIME (s, default 3);
# ISERD_LAB_FABRIC (rxe, the default, or siw).
# Exit: 0 pass, 1 fail, 77 only when the lab cannot be set up on this machine.
set -uo pipefail
SRC=${ISERD_SRC:-$(cd "$(dirname "$0")/../.." && pwd)}
BUILD=${ISERD_BUILD:-$SRC/build}
ISERD=${ISERD:-$BUILD/iserd}
ISERINIT=${ISERINIT:-$(dirname "$ISERD")/iserinit}
LAB=$SRC/tests/lab
secs() { date +%s.%N; }
dt() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.1f", b - a }'; }

[ -x "$ISERD" ] || { echo "FAIL: no iserd binary at '$ISERD' (set ISERD)"; exit 1; }
[ -x "$ISERINIT" ] || { echo "FAIL: no iserinit binary at '$ISERINIT' (set ISERINIT)"; exit 1; }

FABRIC=${ISERD_LAB_FABRIC:-rxe}
case $FABRIC in
rxe) SETUP_ARGS=() NAME="soft-RoCE" ;;
siw) SETUP_ARGS=(--siw) NAME="soft-iWARP" ;;
*) echo "FAIL: ISERD_LAB_FABRIC must be rxe or siw"; exit 1 ;;
esac

echo "== lab setup"
t0=$(secs)
bash "$LAB/setup.sh" "${SETUP_ARGS[@]}"
rc=$?
t_setup=$(dt "$t0" "$(secs)")
case $rc in
0) echo "lab setup done in ${t_setup}s" ;;
77) echo "SKIP: the QEMU lab cannot be set up on this machine (reason above)"; exit 77 ;;
*) echo "FAIL: lab setup failed (exit $rc)"; exit 1 ;;
esac

OUTD=${ISERD_LAB_OUT:-$BUILD/interop-iserinit-iser$([ "$FABRIC" = siw ] && echo -siw)}
rm -rf "$OUTD"; mkdir -p "$OUTD"
# The guest sees the host's root read-only over 9p: the binaries run in place (iserinit finds
# libiserd.so through its build RPATH or LD_LIBRARY_PATH set by the job).
ISERD_ABS=$(readlink -f "$ISERD") ISERINIT_ABS=$(readlink -f "$ISERINIT")
echo "== guest run: iserinit (iSER) -> ${ISERD_LAB_PARTS:-iserd lio} over $NAME (VM bound ${LAB_TIMEOUT:-900}s, files in $OUTD)"
t0=$(secs)
LAB_TIMEOUT=${LAB_TIMEOUT:-900} bash "$LAB/vmrun.sh" -e "ISERD_BIN=$ISERD_ABS" -e "ISERINIT_BIN=$ISERINIT_ABS" \
	-e "PARTS=${ISERD_LAB_PARTS:-iserd lio}" -e "BENCH_TIME=${ISERD_LAB_BENCH_TIME:-3}" \
	-e "ISERD_ARGS=${ISERD_LAB_ISERD_ARGS:-}" -e "FABRIC=$FABRIC" \
	"$LAB/job-iserinit-iser.sh" "$OUTD"
vm_rc=$?
t_vm=$(dt "$t0" "$(secs)")

[ -f "$OUTD/result" ] && sed 's/^/  /' "$OUTD/result"
boot=$(cat "$OUTD/boot.s" 2>/dev/null) end=$(cat "$OUTD/end.s" 2>/dev/null)
echo "timings: setup ${t_setup}s, VM ${t_vm}s wall (guest boot ${boot:-?}s, job $([ -n "$end" ] && dt "$boot" "$end" || echo ?)s)"

if [ "$vm_rc" = 0 ] && grep -qx "RESULT PASS" "$OUTD/result" 2>/dev/null; then
	for f in "$OUTD"/bench-*.txt; do
		[ -f "$f" ] && echo "  $(basename "$f" .txt): $(grep -E "IOPS" "$f" | head -1 | sed 's/^ *//')"
	done
	echo "PASS: iserinit over iSER against ${ISERD_LAB_PARTS:-iserd lio} ($NAME)"
	exit 0
fi

case $vm_rc in
124) echo "FAIL: the VM ran past ${LAB_TIMEOUT:-900}s" ;;
125) echo "FAIL: the guest never ran the job to its end" ;;
*) echo "FAIL: job exit status $vm_rc" ;;
esac
show() {  # FILE TITLE LINES
	[ -s "$1" ] || return 0
	echo "---- $2 (last $3 lines of $1)"; tail -n "$3" "$1"
}
show "$OUTD/log" "guest job log" 150
show "$OUTD/iserd.log" "iserd log" 100
show "$OUTD/dmesg.txt" "guest dmesg" 60
[ -f "$OUTD/job.rc" ] || { show "$OUTD/console.log" "guest console" 40; show "$OUTD/qemu.log" "qemu" 20; }
exit 1
