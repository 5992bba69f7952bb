#!/bin/bash
# Interop: one Ceph RBD image behind two iserd gateways under the Linux kernel's initiator and
# dm-multipath (multipath-tools), with the optimized gateway killed in the middle of verified I/O.
#
# In the project's QEMU lab (tests/lab; TCG) tests/lab/job-kernel-mpath-rbd.sh starts, in one boot,
# a one-node Ceph cluster (tests/lib/ceph.sh) and, over TCP and then over iSER on soft-RoCE, two
# gateways exporting one image with lock=exclusive as one ALUA LU: one multipath device, two path
# groups (prio 50 and 1). fio writes with crc32c verification while gateway A (the lock owner,
# active/optimized) is killed with SIGKILL; the job, as the cluster manager, runs `iserctl lun
# takeover` on B; fio ends with no error. A restarts (standby: B holds the lock) and its path comes
# back as the prio 1 group; every block written verifies.
#
# Env: ISERD (binary; iserctl is taken from the same directory), ISERD_SRC, ISERD_BUILD (set by
# ctest); ISERD_LAB_DIR (lab cache); LAB_TIMEOUT (VM bound, s, default 900); LAB_MEM (MiB, default
# 4096 here: the memstore OSD); PASSES ("tcp iser"); ISERD_LAB_OUT.
# Exit: 0 pass, 1 fail, 77 only when the lab cannot be set up here, the ceph or multipath-tools
# packages are missing, iserctl is not built, or iserd lacks the rbd: store or iser:// portals.
set -uo pipefail
# shellcheck source=../lib/harness.sh
. "$(dirname "${BASH_SOURCE[0]}")/../lib/harness.sh"
# shellcheck source=../lib/ceph.sh
. "$(dirname "${BASH_SOURCE[0]}")/../lib/ceph.sh"
isd_lab_init
ISERCTL="$(dirname "$ISERD")/iserctl"
[ -x "$ISERCTL" ] || { echo "SKIP: no iserctl next to $ISERD (build the iserctl target)"; exit 77; }
isd_ceph_have || { echo "SKIP: the ceph packages are not installed (scripts/deps.sh --test)"; exit 77; }
for c in multipath multipathd fio; do
	command -v $c >/dev/null || PATH=$PATH:/usr/sbin:/sbin command -v $c >/dev/null ||
		{ echo "SKIP: $c missing (scripts/deps.sh --lab)"; exit 77; }
done
[ -x /lib/systemd/systemd-udevd ] || { echo "SKIP: no systemd-udevd (scripts/deps.sh --test)"; exit 77; }
help=$("$ISERD" --help 2>&1)
grep -q 'rbd:POOL' <<<"$help" || { echo "SKIP: this iserd was built without the rbd: store"; exit 77; }
PASSES=${PASSES:-tcp iser}
case " $PASSES " in *" iser "*) isd_lab_need_iser ;; esac
isd_lab_setup
isd_lab_outdir "${ISERD_LAB_OUT:-${ISERD_BUILD:-/tmp}/interop-kernel-mpath-rbd}"
export LAB_MEM=${LAB_MEM:-4096}
echo "== guest run: Ceph, two gateways, dm-multipath, a gateway killed under fio ($PASSES; VM bound" \
	"${LAB_TIMEOUT:-900}s, files in $OUTD)"
isd_lab_run 900 job-kernel-mpath-rbd.sh -f "$ISERD" -f "$ISERCTL" -f "$ISERD_SRC/tests/lib/ceph.sh" \
	-e "ISERD_BIN=/lab/files/$(basename "$ISERD")" \
	-e "ISERCTL_BIN=/lab/files/$(basename "$ISERCTL")" \
	-e "CEPH_SH=/lab/files/ceph.sh" -e "PASSES=$PASSES"
if isd_lab_passed; then
	echo "PASS: dm-multipath over two gateways of one RBD image: a gateway killed under fio, no" \
		"error, its path back, every write verified ($PASSES)"
	exit 0
fi
isd_lab_fail "log:guest job log:200" "multipathd.log:multipathd log:60" \
	"iserd-A-tcp.log:gateway A log (tcp):30" "iserd-B-tcp.log:gateway B log (tcp):30" \
	"iserd-A-iser.log:gateway A log (iser):30" "iserd-B-iser.log:gateway B log (iser):30" \
	"iscsid.log:iscsid log:30" "dmesg.txt:guest dmesg:80"
