#!/bin/bash
# Interop: no peer can RDMA Write into iserd's memory, over soft-RoCE (rxe), or soft-iWARP with
# ISERD_LAB_FABRIC=siw (test_iser_stagprobe_siw.sh). Boots the QEMU lab (tests/lab) and runs
# tests/lab/job-iser-stagprobe.sh: iserd with a RAM LUN, a 1 MiB WRITE and READ through libiscsi
# over iSER (tests/integration/isd_rwcheck.c), no registration with remote access left
# ("remote_mrs":0), then tests/integration/isd_stagprobe.c connects to the iSER portal without
# logging in and RDMA Writes to every MR the kernel lists for iserd (rkey and iova from `rdma res
# show mr`): each Write must be refused; then tests/integration/isd_iserflood.c logs in, stops
# posting receives and keeps pinging: iserd must drop the connection (finite RNR retry) and free
# it; then chaos over iSER (tests/integration/isd_chaoswriter.c): login cycles ending every way,
# writers on a RAM and a file LUN killed with SIGKILL mid-I/O and restarted, every acknowledged
# write verified afterwards, counters and fds back where they were.
# Env: ISERD, ISERD_SRC, ISERD_BUILD (set by ctest); ISERD_LAB_DIR; LAB_TIMEOUT (VM bound, s,
# default 900); ISERD_LAB_OUT; ISERD_LAB_FABRIC (rxe, the default, or siw);
# ISERD_LAB_CHAOS_CYCLES (login cycles, default 100), ISERD_LAB_CHAOS_KILLS (writer kills,
# default 20): larger for a long run (bench/ has none of this: it is a correctness run).
# Exit: 0 pass, 1 fail, 77 only when the lab cannot be set up on this machine.
set -uo pipefail
SRC=${ISERD_SRC:-$(cd "$(dirname "$0")/../.." && pwd)}
ISERD=${ISERD:-${ISERD_BUILD:-$SRC/build}/iserd}
LAB=$SRC/tests/lab

[ -x "$ISERD" ] || { echo "FAIL: no iserd binary at '$ISERD' (set ISERD)"; exit 1; }
if ! "$ISERD" --help 2>&1 | grep -q 'iser://'; then
	echo "SKIP: this iserd build does not offer iser:// portals (see iserd --help)"
	exit 77
fi
FABRIC=${ISERD_LAB_FABRIC:-rxe}
case $FABRIC in
rxe) SETUP_ARGS=() ;;
siw) SETUP_ARGS=(--siw) ;;
*) echo "FAIL: ISERD_LAB_FABRIC must be rxe or siw"; exit 1 ;;
esac
bash "$LAB/setup.sh" "${SETUP_ARGS[@]}"
case $? in
0) ;;
77) echo "SKIP: the QEMU lab cannot be set up on this machine (reason above)"; exit 77 ;;
*) echo "FAIL: lab setup failed"; exit 1 ;;
esac

OUTD=${ISERD_LAB_OUT:-${ISERD_BUILD:-/tmp}/interop-iser-stagprobe-$FABRIC}
rm -rf "$OUTD"; mkdir -p "$OUTD"
FILES=(-f "$ISERD")
for h in isd_stagprobe:"-lrdmacm -libverbs" isd_iserflood:"-lrdmacm -libverbs" isd_rwcheck:-liscsi \
	isd_chaoswriter:-liscsi; do
	# shellcheck disable=SC2086
	gcc -O1 -o "$OUTD/${h%%:*}" "$SRC/tests/integration/${h%%:*}.c" ${h#*:} \
		2>"$OUTD/${h%%:*}.build.log" || { echo "FAIL: cannot build ${h%%:*}"; exit 1; }
	FILES+=(-f "$OUTD/${h%%:*}")
done
echo "== guest run: RDMA Writes to iserd's STags ($FABRIC) (files in $OUTD)"
LAB_TIMEOUT=${LAB_TIMEOUT:-900} bash "$LAB/vmrun.sh" "${FILES[@]}" \
	-e "ISERD_BIN=/lab/files/$(basename "$ISERD")" -e "FABRIC=$FABRIC" \
	-e "CHAOS_CYCLES=${ISERD_LAB_CHAOS_CYCLES:-100}" -e "CHAOS_KILLS=${ISERD_LAB_CHAOS_KILLS:-20}" \
	"$LAB/job-iser-stagprobe.sh" "$OUTD"
vm_rc=$?
[ -f "$OUTD/result" ] && sed 's/^/  /' "$OUTD/result"
if [ "$vm_rc" = 0 ] && grep -qx "RESULT PASS" "$OUTD/result" 2>/dev/null; then
	grep -E "refused|probed|login cycles|killed with SIGKILL|blocks checked|fds:" "$OUTD/log" |
		sed 's/^/  /'
	echo "PASS: no RDMA Write from a peer lands in iserd's memory; chaos leaves nothing behind ($FABRIC)"
	exit 0
fi
echo "FAIL: job exit status $vm_rc"
[ -s "$OUTD/log" ] && { echo "---- guest job log (last 80 lines)"; tail -n 80 "$OUTD/log"; }
[ -s "$OUTD/iserd.log" ] && { echo "---- iserd log (last 40 lines)"; tail -n 40 "$OUTD/iserd.log"; }
exit 1
