#!/bin/bash
# iSER side by side in the QEMU lab: the Linux kernel's iSER initiator (ib_iser) against iserd, LIO's
# ib_isert and tgt 1.0.85's iSER, one after the other in ONE guest boot, over soft-RoCE (rxe) or
# soft-iWARP (siw), with fio (libaio, direct=1): 4 KiB random read/write QD32 and 128 KiB sequential
# read/write QD8. The guest side is tests/lab/job-bench-iser.sh; it prints one line per fio run, the
# medians per target and the ratios iserd/LIO and iserd/tgt. Nothing is asserted.
#
# Usage: bench/iser_lab.sh [rxe|siw] [SECONDS_PER_RUN] [ROUNDS] > bench/results/iser-FABRIC-DATE.txt
#   defaults: rxe, 8 s, 2 rounds (about 9 minutes of VM under TCG on a 2-core machine).
# Env: KEEP=DIR keeps the guest's raw output (fio JSON, iserd/tgtd logs, dmesg) in DIR;
#   ISERD (default build/release/iserd); LUN_MB (64); TARGETS ("iserd lio tgt"); MAX_SECTORS (ib_iser,
#   1024); LAB_TIMEOUT (s, 1200), LAB_MEM, LAB_SMP as for tests/lab/vmrun.sh; ISERD_CONF=FILE runs
#   iserd with -c FILE besides its flags (e.g. global = { immediate_data = false; };).
# Needs: the lab (tests/lab/setup.sh [--siw]: run here; exit 77 when it cannot be set up), a release
# build (cmake --preset release && cmake --build --preset release), fio, jq, tgt.
#
# Notes: the targets share the guest's 2 vCPUs with the initiator and the soft RDMA device; the "cpu"
# column is the guest's busy % over all vCPUs during a run (everything together). tgt has no RAM
# store: it serves a file on the guest's tmpfs. On siw LIO's iSER portal cannot listen (it shares its
# TCP portal's port, which iWARP refuses: EADDRINUSE); the output shows that line instead of numbers.
# TCG is 10-50x slower than hardware and noisy: compare the ratios of one run, not absolute numbers.
set -euo pipefail
FABRIC=${1:-rxe}
SECS=${2:-8}
ROUNDS=${3:-2}
case $FABRIC in rxe | siw) ;; *) echo "usage: $0 [rxe|siw] [SECONDS_PER_RUN] [ROUNDS]" >&2; exit 2 ;; esac
SRC=$(cd "$(dirname "$0")/.." && pwd)
ISERD=${ISERD:-$SRC/build/release/iserd}
[ -x "$ISERD" ] || { echo "bench: no release iserd at $ISERD" >&2; exit 1; }
for t in fio jq tgtd tgtadm; do
	command -v $t >/dev/null || { echo "bench: $t missing (scripts/deps.sh --lab)" >&2; exit 1; }
done

setup_args=(--quiet)
[ "$FABRIC" = siw ] && setup_args+=(--siw)
rc=0
bash "$SRC/tests/lab/setup.sh" "${setup_args[@]}" >&2 || rc=$?
[ $rc = 0 ] || { echo "bench: lab setup failed (exit $rc)" >&2; exit $rc; }

OUTD=${KEEP:-$(mktemp -d "${TMPDIR:-/tmp}/iserd-bench-iser.XXXXXX")}
mkdir -p "$OUTD"
[ -n "${KEEP:-}" ] || trap 'rm -rf "$OUTD"' EXIT
# a copy of the binary: a rebuild on the host during the run must not change what the guest runs
cp "$ISERD" "$OUTD/iserd.bin"
envs=(-e FABRIC="$FABRIC" -e SECS="$SECS" -e ROUNDS="$ROUNDS" -e ISERD_BIN=/lab/files/iserd)
for v in LUN_MB TARGETS MAX_SECTORS; do
	[ -z "${!v:-}" ] || envs+=(-e "$v=${!v}")
done
mkdir -p "$OUTD/files" && mv "$OUTD/iserd.bin" "$OUTD/files/iserd"
if [ -n "${ISERD_CONF:-}" ]; then
	# a config file for iserd (global settings: negotiation, iser_remote_invalidate...)
	cp "$ISERD_CONF" "$OUTD/files/iserd.conf"
	envs+=(-e ISERD_CONF=/lab/files/iserd.conf -f "$OUTD/files/iserd.conf")
fi

echo "# bench/iser_lab.sh $FABRIC $SECS $ROUNDS, $(date -u '+%F %H:%M') UTC"
echo "# host: $(nproc) CPUs, $(uname -r), load average $(cut -d' ' -f1-3 /proc/loadavg) at start;" \
	"qemu TCG, ${LAB_SMP:-2} vCPUs, ${LAB_MEM:-2048} MiB"
# other QEMU guests on the host share its cores and skew the absolute numbers: say so
echo "# other qemu-system processes on the host at start: $(pgrep -c -x qemu-system-x86 || true)"
echo "# source: $(git -C "$SRC" describe --always --dirty 2>/dev/null || echo unknown)," \
	"iserd $(stat -c %y "$ISERD" | cut -d. -f1)"
[ -z "${ISERD_CONF:-}" ] || echo "# iserd -c $ISERD_CONF: $(grep -v '^[[:space:]]*#' "$ISERD_CONF" | tr -s '\n\t' '  ')"
t0=$(date +%s)
rc=0
LAB_TIMEOUT=${LAB_TIMEOUT:-1200} bash "$SRC/tests/lab/vmrun.sh" "${envs[@]}" -f "$OUTD/files/iserd" \
	"$SRC/tests/lab/job-bench-iser.sh" "$OUTD/vm" >&2 || rc=$?
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
