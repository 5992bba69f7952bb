#!/bin/bash
# iSER initiators side by side in the QEMU lab: our iserinit, libiscsi's iscsi-perf and the kernel's
# ib_iser (open-iscsi -I iser, fio libaio direct=1 on the block device), one after the other in ONE
# guest boot, against the SAME iserd (iser:// portal, RAM LUN) over soft-RoCE (rxe) or soft-iWARP
# (siw). Workloads: 4 KiB random read/write QD32, 128 KiB sequential read/write QD8 (iscsi-perf:
# reads only; libiscsi 1.19 fails larger iSER READs itself). The guest side is
# tests/lab/job-bench-initiators.sh; it prints one line per run, the medians per initiator and the
# ratios iserinit/iscsi-perf and iserinit/kernel. Nothing is asserted.
#
# Usage: bench/initiators_lab.sh [rxe|siw] [SECONDS_PER_RUN] [ROUNDS] > bench/results/initiators-lab-FABRIC-DATE.txt
#   defaults: rxe, 5 s, 2 rounds.
# Env: KEEP=DIR keeps the guest's raw output in DIR; ISERD, ISERINIT (default build/release/...;
#   libiserd.so.0 is taken from beside iserinit); LUN_MB (64); LAB_TIMEOUT (s, 1200), LAB_MEM, LAB_SMP
#   as for tests/lab/vmrun.sh.
# Needs: the lab (tests/lab/setup.sh [--siw]), a release build, fio, jq and libiscsi-bin in the guest.
# TCG is 10-50x slower than hardware and noisy, and the initiators share the guest's vCPUs with the
# target and the soft RDMA device: compare the ratios of one run, not absolute numbers.
set -euo pipefail
FABRIC=${1:-rxe}
SECS=${2:-5}
ROUNDS=${3:-2}
case $FABRIC in rxe | siw) ;; *) echo "usage: $0 [rxe|siw] [SECONDS_PER_RUN] [ROUNDS]" >&2; exit 2 ;; esac
SRC=$(cd "$(dirname "$0")/.." && pwd)
# shellcheck source=../tests/lib/harness.sh
. "$SRC/tests/lib/harness.sh"
ISERD=${ISERD:-$SRC/build/release/iserd}
ISERINIT=${ISERINIT:-$SRC/build/release/iserinit}
for b in "$ISERD" "$ISERINIT"; do [ -x "$b" ] || { echo "bench: no release binary $b" >&2; exit 1; }; done
LIB=$(dirname "$(readlink -f "$ISERINIT")")/libiserd.so.0
[ -e "$LIB" ] || { echo "bench: no $LIB" >&2; exit 1; }
isd_bench_setup "$FABRIC"

OUTD=${KEEP:-$(mktemp -d "${TMPDIR:-/tmp}/iserd-bench-init.XXXXXX")}
mkdir -p "$OUTD/files"
[ -n "${KEEP:-}" ] || trap 'rm -rf "$OUTD"' EXIT
# copies: a rebuild on the host during the run must not change what the guest runs
cp "$ISERD" "$OUTD/files/iserd"
cp "$ISERINIT" "$OUTD/files/iserinit"
cp -L "$LIB" "$OUTD/files/libiserd.so.0"
envs=(-e FABRIC="$FABRIC" -e SECS="$SECS" -e ROUNDS="$ROUNDS" -e ISERD_BIN=/lab/files/iserd
	-e ISERINIT_BIN=/lab/files/iserinit)
[ -z "${LUN_MB:-}" ] || envs+=(-e "LUN_MB=$LUN_MB")

isd_bench_header "bench/initiators_lab.sh $FABRIC $SECS $ROUNDS" \
	"iserd $(stat -c %y "$ISERD" | cut -d. -f1), iserinit $(stat -c %y "$ISERINIT" | cut -d. -f1)"
rc=0
isd_bench_run 1200 job-bench-initiators.sh "${envs[@]}" -f "$OUTD/files/iserd" \
	-f "$OUTD/files/iserinit" -f "$OUTD/files/libiserd.so.0" || rc=$?
[ -z "${KEEP:-}" ] || echo "# raw output kept in $OUTD/vm" >&2
exit $rc
