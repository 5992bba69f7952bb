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
ISERD=${ISERD:-$SRC/build/release/iserd}
ISERINIT=${ISERINIT:-$SRC/build/release/iserinit}
for b in "$ISERD" "$ISERINIT"; do [ -x "$b" ] || { echo "bench: no release binary $b" >&2; exit 1; }; done
LIB=$(dirname "$(readlink -f "$ISERINIT")")/libiserd.so.0
[ -e "$LIB" ] || { echo "bench: no $LIB" >&2; exit 1; }

setup_args=(--quiet)
[ "$FABRIC" = siw ] && setup_args+=(--siw)
rc=0
bash "$SRC/tests/lab/setup.sh" "${setup_args[@]}" >&2 || rc=$?
[ $rc = 0 ] || { echo "bench: lab setup failed (exit $rc)" >&2; exit $rc; }

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

echo "# bench/initiators_lab.sh $FABRIC $SECS $ROUNDS, $(date -u '+%F %H:%M') UTC"
echo "# host: $(nproc) CPUs, $(uname -r), load average $(cut -d' ' -f1-3 /proc/loadavg) at start;" \
	"qemu TCG, ${LAB_SMP:-2} vCPUs, ${LAB_MEM:-2048} MiB"
echo "# other qemu-system processes on the host at start: $(pgrep -c -x qemu-system-x86 || true)"
echo "# source: $(git -C "$SRC" describe --always --dirty 2>/dev/null || echo unknown)," \
	"iserd $(stat -c %y "$ISERD" | cut -d. -f1), iserinit $(stat -c %y "$ISERINIT" | cut -d. -f1)"
t0=$(date +%s)
rc=0
LAB_TIMEOUT=${LAB_TIMEOUT:-1200} bash "$SRC/tests/lab/vmrun.sh" "${envs[@]}" -f "$OUTD/files/iserd" \
	-f "$OUTD/files/iserinit" -f "$OUTD/files/libiserd.so.0" \
	"$SRC/tests/lab/job-bench-initiators.sh" "$OUTD/vm" >&2 || rc=$?
t1=$(date +%s)
if [ -f "$OUTD/vm/bench.txt" ]; then
	cat "$OUTD/vm/bench.txt"
else
	echo "# no results from the guest"
fi
echo "# steps (PASS/FAIL with guest seconds):"
sed 's/^/#   /' "$OUTD/vm/result" 2>/dev/null || true
echo "# VM wall $((t1 - t0)) s, exit $rc, host load average $(cut -d' ' -f1-3 /proc/loadavg) at end"
[ -z "${KEEP:-}" ] || echo "# raw output kept in $OUTD/vm" >&2
exit $rc
