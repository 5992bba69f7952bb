#!/bin/bash
# Persistent reservations across two gateways of one RBD image, on a one-node
# Ceph cluster (tests/lib/ceph.sh): rbd_pr_check.py drives two iserd
# processes (registrations on both paths, a reservation through one enforced
# on the other, PREEMPT AND ABORT through the other fencing a WRITE in flight
# on the first, READ KEYS and READ RESERVATION the same on both), then `rbd
# export` shows that the fenced WRITE never landed; eight initiators registering
# at once through both gateways lose no registration. Skipped (77) without the
# ceph packages or without the rbd: store in this build.
# shellcheck source=../lib/harness.sh
. "$(dirname "${BASH_SOURCE[0]}")/../lib/harness.sh"
# shellcheck source=../lib/ceph.sh
. "$(dirname "${BASH_SOURCE[0]}")/../lib/ceph.sh"

isd_init
HERE=$(dirname "${BASH_SOURCE[0]}")
isd_ceph_have || isd_skip "the ceph packages are not installed (scripts/deps.sh --test)"
grep -q 'rbd:POOL' <<<"$("$ISERD" --help 2>&1)" ||
	isd_skip "this iserd was built without the rbd: store (ISERD_RBD, librbd-dev)"
isd_require_tools python3 cmp dd
# librados and librbd are not built with the sanitizer (see test_rbd.sh)
cat >"$ISD_TMP/lsan.supp" <<'SUPP'
leak:librados.so
leak:librbd.so
leak:libceph-common.so
SUPP
export LSAN_OPTIONS=${LSAN_OPTIONS:+$LSAN_OPTIONS:}suppressions=$ISD_TMP/lsan.supp

ISD_CLEANUP_HOOKS+=(isd_ceph_stop)
isd_ceph_start "$ISD_TMP/ceph"
case $? in
0) isd_pass "one-node Ceph cluster up in ${ISD_CEPH_START_S}s" ;;
77) exit 77 ;;
*) echo "FAIL: the one-node Ceph cluster did not start"; exit 1 ;;
esac

POOL=$ISD_CEPH_POOL
RBD=(rbd -c "$ISD_CEPH_CONF" --id admin)
LBA=2048
isd_check "rbd create 64M" "${RBD[@]}" create --size 64M "$POOL/prdisk"
SPEC="rbd:$POOL/prdisk,conf=$ISD_CEPH_CONF,id=$ISD_CEPH_CLIENT"
if python3 "$HERE/rbd_pr_check.py" "$SPEC" "$ISD_TMP/expected.bin" "$LBA"; then
	isd_pass "two gateways agree on the reservations and fence each other"
else
	isd_fail "two-gateway persistent reservations"
fi
if [ -f "$ISD_TMP/expected.bin" ]; then
	isd_check "rbd export" "${RBD[@]}" export "$POOL/prdisk" "$ISD_TMP/export.bin"
	dd if="$ISD_TMP/export.bin" of="$ISD_TMP/blocks.bin" bs=512 skip=$LBA \
		count=$(($(stat -c %s "$ISD_TMP/expected.bin") / 512)) status=none
	isd_check "the image holds the blocks from before the preempt (the fenced WRITE never landed)" \
		cmp "$ISD_TMP/expected.bin" "$ISD_TMP/blocks.bin"
fi
isd_check "the state object exists" rados -c "$ISD_CEPH_CONF" --id admin -p "$POOL" stat prdisk.iserd-pr
isd_finish
