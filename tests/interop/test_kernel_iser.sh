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
# shellcheck source=../lib/harness.sh
. "$(dirname "${BASH_SOURCE[0]}")/../lib/harness.sh"
isd_lab_init
isd_lab_need_iser
isd_lab_fabric
isd_lab_setup "${ISD_LAB_SETUP_ARGS[@]}"
isd_lab_outdir "${ISERD_LAB_OUT:-${ISERD_BUILD:-/tmp}/interop-kernel-iser-$FABRIC${ISERD_LAB_KERNEL_SUITE:+-$ISERD_LAB_KERNEL_SUITE}}"
echo "== guest run: kernel iSER initiator ($FABRIC) -> iserd (VM bound ${LAB_TIMEOUT:-900}s, files in $OUTD)"
# the RDMA Write probe for the stag_probe step (tests/integration/isd_stagprobe.c)
isd_lab_build isd_stagprobe -lrdmacm -libverbs ||
	echo "note: isd_stagprobe not built (see $OUTD/isd_stagprobe.build.log); its step fails"
isd_lab_run 900 job-kernel-iser.sh -f "$ISERD" -e "ISERD_BIN=/lab/files/$(basename "$ISERD")" \
	-e "ISERD_ARGS=${ISERD_LAB_ISERD_ARGS:-}" -e "FABRIC=$FABRIC" \
	-e "FIO_RUNTIME=${ISERD_LAB_FIO_RUNTIME:-60}" \
	-e "FLAP_REQUIRE_RECOVERY=${ISERD_LAB_FLAP_REQUIRE_RECOVERY:-0}"
if isd_lab_passed; then
	grep -h -E "^  (write|read):|^   (READ|WRITE):" "$OUTD"/fio-*.txt 2>/dev/null | sed 's/^/  fio /'
	echo "PASS: kernel iSER initiator against iserd ($ISD_LAB_FABRIC_NAME)"
	exit 0
fi
isd_lab_fail "log:guest job log:150" "iserd.log:iserd log:200" "iscsid.log:iscsid log:30" \
	"dmesg.txt:guest dmesg:60"
