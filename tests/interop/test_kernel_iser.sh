#!/bin/bash
# Interop: the Linux kernel's iSER initiator (open-iscsi -I iser + ib_iser) against iserd over
# soft-RoCE (rdma_rxe on a veth pair), or over soft-iWARP (siw) with ISERD_LAB_FABRIC=siw
# (test_kernel_iser_siw.sh).
#
# Boots Debian's kernel in the project's QEMU lab (tests/lab; TCG, no KVM needed) and runs
# tests/lab/job-kernel-iser.sh in it: RLIMIT_MEMLOCK handling (a hard limit too low fails the start
# with a message naming it; a low soft limit is raised); on siw, tcp:3260 + iser:3260 refused with
# a clear message; iserd on iser://10.99.0.1:3260 (rxe) or :3261 next to tcp :3260 (siw) with a
# 256 MiB RAM LUN; libiscsi iscsi-inq over iSER; ib_iser loaded with max_sectors=32768;
# SendTargets discovery over iSER, login, 64 MiB O_DIRECT write + read-back compare, the same in
# 8 MiB commands, one direct I/O of max_hw_sectors_kb each way in a single command, fio 4 KiB
# random and 1 MiB sequential writes at QD 32 with verify=crc32c, mkfs.ext4, file copy, cold
# remount + compare + fsck, the RDMA link (veth0) down for 2 s under a writer and back (the session
# recovers by itself on siw, data identical; on rxe the guest kernel makes no new RDMA CM
# connection after such a flap, so iserd's side is checked: dead connection freed, counters
# zero -- see docs/iser.md "Link flap"), no registration with remote access left and every iserd
# MR counted, an RDMA Write to each of iserd's MRs (tests/integration/isd_stagprobe.c, rkey and
# iova from `rdma res show mr`) refused and the LUN unchanged, logout, iSER and core counters
# back to zero with bytes_copied 0 (zero copy), and SIGTERM -> exit 0.
# Step results come back in a file the guest writes.
#
# Env: ISERD (binary), ISERD_SRC, ISERD_BUILD (set by ctest); ISERD_LAB_DIR (lab cache, default
# /var/tmp/iserd-lab); LAB_TIMEOUT (VM bound, s, default 900); ISERD_LAB_ISERD_ARGS (extra iserd
# arguments, e.g. -v); ISERD_LAB_OUT (where the run's files are kept; default under ISERD_BUILD);
# ISERD_LAB_FABRIC (rxe, the default, or siw); ISERD_LAB_FIO_RUNTIME (bound per fio run, s, default 60);
# ISERD_LAB_KERNEL_SUITE (a Debian suite to take the guest kernel from, e.g. bookworm-backports; see
# tests/lab/setup.sh; use its own ISERD_LAB_DIR); ISERD_LAB_FLAP_REQUIRE_RECOVERY=1 (the link-flap
# step fails unless the session comes back, on rxe too; docs/iser.md "Link flap").
# Exit: 0 pass, 1 fail, 77 only when the lab cannot be set up on this machine.
set -uo pipefail
SRC=${ISERD_SRC:-$(cd "$(dirname "$0")/../.." && pwd)}
ISERD=${ISERD:-${ISERD_BUILD:-$SRC/build}/iserd}
LAB=$SRC/tests/lab
secs() { date +%s.%N; }
dt() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.1f", b - a }'; }

[ -x "$ISERD" ] || { echo "FAIL: no iserd binary at '$ISERD' (set ISERD)"; exit 1; }
if ! "$ISERD" --help 2>&1 | grep -q 'iser://'; then
	echo "SKIP: this iserd build does not offer iser:// portals (see iserd --help)"
	exit 77
fi

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

OUTD=${ISERD_LAB_OUT:-${ISERD_BUILD:-/tmp}/interop-kernel-iser-$FABRIC${ISERD_LAB_KERNEL_SUITE:+-$ISERD_LAB_KERNEL_SUITE}}
rm -rf "$OUTD"; mkdir -p "$OUTD"
echo "== guest run: kernel iSER initiator ($FABRIC) -> iserd (VM bound ${LAB_TIMEOUT:-900}s, files in $OUTD)"
t0=$(secs)
# the RDMA Write probe for the stag_probe step (tests/integration/isd_stagprobe.c)
PROBE=()
if gcc -O1 -o "$OUTD/isd_stagprobe" "$SRC/tests/integration/isd_stagprobe.c" -lrdmacm -libverbs \
	2>"$OUTD/isd_stagprobe.build.log"; then
	PROBE=(-f "$OUTD/isd_stagprobe")
else
	echo "note: isd_stagprobe not built (see $OUTD/isd_stagprobe.build.log); its step fails"
fi
LAB_TIMEOUT=${LAB_TIMEOUT:-900} bash "$LAB/vmrun.sh" -f "$ISERD" "${PROBE[@]}" \
	-e "ISERD_BIN=/lab/files/$(basename "$ISERD")" \
	-e "ISERD_ARGS=${ISERD_LAB_ISERD_ARGS:-}" -e "FABRIC=$FABRIC" \
	-e "FIO_RUNTIME=${ISERD_LAB_FIO_RUNTIME:-60}" \
	-e "FLAP_REQUIRE_RECOVERY=${ISERD_LAB_FLAP_REQUIRE_RECOVERY:-0}" \
	"$LAB/job-kernel-iser.sh" "$OUTD"
vm_rc=$?
t_vm=$(dt "$t0" "$(secs)")

[ -f "$OUTD/result" ] && sed 's/^/  /' "$OUTD/result"
boot=$(cat "$OUTD/boot.s" 2>/dev/null) end=$(cat "$OUTD/end.s" 2>/dev/null)
echo "timings: setup ${t_setup}s, VM ${t_vm}s wall (guest boot ${boot:-?}s, job $([ -n "$end" ] && dt "$boot" "$end" || echo ?)s)"

if [ "$vm_rc" = 0 ] && grep -qx "RESULT PASS" "$OUTD/result" 2>/dev/null; then
	grep -h -E "^  (write|read):|^   (READ|WRITE):" "$OUTD"/fio-*.txt 2>/dev/null | sed 's/^/  fio /'
	echo "PASS: kernel iSER initiator against iserd ($NAME)"
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
show "$OUTD/iserd.log" "iserd log" 200
show "$OUTD/iscsid.log" "iscsid log" 30
show "$OUTD/dmesg.txt" "guest dmesg" 60
[ -f "$OUTD/job.rc" ] || { show "$OUTD/console.log" "guest console" 40; show "$OUTD/qemu.log" "qemu" 20; }
exit 1
