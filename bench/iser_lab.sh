#!/bin/bash
# iSER side by side in the QEMU lab: the Linux kernel's iSER initiator (ib_iser) against iserd, LIO's
# ib_isert and tgt 1.0.85's iSER, one after the other in ONE guest boot, over soft-RoCE (rxe) or
# soft-iWARP (siw), with fio (libaio, direct=1): 4 KiB random read/write QD32 and 128 KiB sequential
# read/write QD8. The guest side is tests/lab/job-bench-iser.sh; it prints one line per fio run, the
# medians per target and the ratios iserd/LIO and iserd/tgt. Nothing is asserted. With "tcp" instead
# of a fabric, the same runs go over iSCSI/TCP: the kernel's iscsi_tcp against iserd's, LIO's and
# tgt's TCP portals on the guest's veth pair.
#
# Usage: bench/iser_lab.sh [rxe|siw|tcp] [SECONDS_PER_RUN] [ROUNDS] > bench/results/iser-FABRIC-DATE.txt
#   defaults: rxe, 8 s, 2 rounds (about 9 minutes of VM under TCG on a 2-core machine).
# Env: KEEP=DIR keeps the guest's raw output (fio JSON, iserd/tgtd logs, dmesg) in DIR;
#   ISERD (default build/release/iserd); LUN_MB (64); TARGETS ("iserd lio tgt"); MAX_SECTORS (ib_iser,
#   1024); ISERD_STORE (ram, default, or file: iserd serves a tmpfs file as tgt does); ONLY (workload names: rand4k-read rand4k-write seq128k-read seq128k-write; default all);
#   PERF (workload names to profile with perf record -a in the guest: KEEP's vm/perf-*.txt); LAB_TIMEOUT (s, 1200), LAB_MEM, LAB_SMP as for tests/lab/vmrun.sh; ISERD_CONF=FILE runs
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
case $FABRIC in rxe | siw | tcp) ;; *) echo "usage: $0 [rxe|siw|tcp] [SECONDS_PER_RUN] [ROUNDS]" >&2; exit 2 ;; esac
SRC=$(cd "$(dirname "$0")/.." && pwd)
# shellcheck source=../tests/lib/harness.sh
. "$SRC/tests/lib/harness.sh"
ISERD=${ISERD:-$SRC/build/release/iserd}
[ -x "$ISERD" ] || { echo "bench: no release iserd at $ISERD" >&2; exit 1; }
for t in fio jq tgtd tgtadm; do
	command -v $t >/dev/null || { echo "bench: $t missing (scripts/deps.sh --lab)" >&2; exit 1; }
done
isd_bench_setup "$FABRIC"

OUTD=${KEEP:-$(mktemp -d "${TMPDIR:-/tmp}/iserd-bench-iser.XXXXXX")}
mkdir -p "$OUTD/files"
[ -n "${KEEP:-}" ] || trap 'rm -rf "$OUTD"' EXIT
# a copy of the binary: a rebuild on the host during the run must not change what the guest runs
cp "$ISERD" "$OUTD/files/iserd"
envs=(-e FABRIC="$FABRIC" -e SECS="$SECS" -e ROUNDS="$ROUNDS" -e ISERD_BIN=/lab/files/iserd)
for v in LUN_MB TARGETS MAX_SECTORS ONLY PERF ISERD_STORE; do
	[ -z "${!v:-}" ] || envs+=(-e "$v=${!v}")
done
if [ -n "${ISERD_CONF:-}" ]; then
	# a config file for iserd (global settings: negotiation, iser_remote_invalidate...)
	cp "$ISERD_CONF" "$OUTD/files/iserd.conf"
	envs+=(-e ISERD_CONF=/lab/files/iserd.conf -f "$OUTD/files/iserd.conf")
fi

isd_bench_header "bench/iser_lab.sh $FABRIC $SECS $ROUNDS" "iserd $(stat -c %y "$ISERD" | cut -d. -f1)"
[ -z "${ISERD_CONF:-}" ] || echo "# iserd -c $ISERD_CONF: $(grep -v '^[[:space:]]*#' "$ISERD_CONF" | tr -s '\n\t' '  ')"
rc=0
isd_bench_run 1200 job-bench-iser.sh "${envs[@]}" -f "$OUTD/files/iserd" || rc=$?
[ -z "${KEEP:-}" ] || echo "# raw output kept in $OUTD/vm" >&2
exit $rc
