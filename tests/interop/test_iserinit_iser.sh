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
# shellcheck source=../lib/harness.sh
. "$(dirname "${BASH_SOURCE[0]}")/../lib/harness.sh"
ISERINIT=${ISERINIT:-$(dirname "${ISERD:-${ISERD_BUILD:-$ISERD_SRC/build}/iserd}")/iserinit}
isd_lab_init "$ISERINIT"
isd_lab_fabric
isd_lab_setup "${ISD_LAB_SETUP_ARGS[@]}"
isd_lab_outdir "${ISERD_LAB_OUT:-${ISERD_BUILD:-$ISERD_SRC/build}/interop-iserinit-iser$([ "$FABRIC" = siw ] && echo -siw)}"
# The guest sees the host's root read-only over 9p: the binaries run in place (iserinit finds
# libiserd.so through its build RPATH or LD_LIBRARY_PATH set by the job).
ISERD_ABS=$(readlink -f "$ISERD") ISERINIT_ABS=$(readlink -f "$ISERINIT")
echo "== guest run: iserinit (iSER) -> ${ISERD_LAB_PARTS:-iserd lio} over $ISD_LAB_FABRIC_NAME (VM bound ${LAB_TIMEOUT:-900}s, files in $OUTD)"
isd_lab_run 900 job-iserinit-iser.sh -e "ISERD_BIN=$ISERD_ABS" -e "ISERINIT_BIN=$ISERINIT_ABS" \
	-e "PARTS=${ISERD_LAB_PARTS:-iserd lio}" -e "BENCH_TIME=${ISERD_LAB_BENCH_TIME:-3}" \
	-e "ISERD_ARGS=${ISERD_LAB_ISERD_ARGS:-}" -e "FABRIC=$FABRIC"
if isd_lab_passed; then
	for f in "$OUTD"/bench-*.txt; do
		[ -f "$f" ] && echo "  $(basename "$f" .txt): $(grep -E "IOPS" "$f" | head -1 | sed 's/^ *//')"
	done
	echo "PASS: iserinit over iSER against ${ISERD_LAB_PARTS:-iserd lio} ($ISD_LAB_FABRIC_NAME)"
	exit 0
fi
isd_lab_fail "log:guest job log:150" "iserd.log:iserd log:100" "dmesg.txt:guest dmesg:60"
