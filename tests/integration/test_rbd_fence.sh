#!/bin/bash
# Fencing with rbd: lock=exclusive on a real one-node Ceph cluster
# (tests/lib/ceph.sh): two gateways export one image as one ALUA LU; the one
# holding the image's exclusive lock is active/optimized, the other standby;
# gateway A is frozen (SIGSTOP) with writes in flight, B takes the lock over
# (lun.takeover: A's client is blocklisted), writes, and A is woken: none of
# A's stale writes reach the image (rbd export), A's client is in `ceph osd
# blocklist ls`, A's LU is unavailable and its writes fail
# (tests/integration/rbd_fence.py has the steps). Also: lock=exclusive on an
# image without the exclusive-lock feature is refused at start. Skipped (77)
# without the ceph packages or without the rbd: store in this build.
# shellcheck source=../lib/harness.sh
. "$(dirname "${BASH_SOURCE[0]}")/../lib/harness.sh"
# shellcheck source=../lib/ceph.sh
. "$(dirname "${BASH_SOURCE[0]}")/../lib/ceph.sh"

isd_init
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
isd_ceph_have || isd_skip "the ceph packages are not installed (scripts/deps.sh --test)"
grep -q 'rbd:POOL' <<<"$("$ISERD" --help 2>&1)" ||
	isd_skip "this iserd was built without the rbd: store (ISERD_RBD, librbd-dev)"
isd_require_tools python3 timeout
# librados and librbd are not built with the sanitizer: their threads' own
# allocations at exit are not iserd's leaks.
cat >"$ISD_TMP/lsan.supp" <<'EOS'
leak:librados.so
leak:librbd.so
leak:libceph-common.so
EOS
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

# an image without the exclusive-lock feature cannot be locked: refused at start
isd_check "rbd create (layering only)" "${RBD[@]}" create --size 16M \
	--image-feature layering "$POOL/nolock"
out=$ISD_TMP/nolock.out
timeout -k 5 90 "$ISERD" --portal tcp://127.0.0.1:0 --target iqn.2026-11.org.iserd:nolock \
	--lun "rbd:$POOL/nolock,conf=$ISD_CEPH_CONF,id=$ISD_CEPH_CLIENT,lock=exclusive" \
	--control-socket "$ISD_TMP/nolock.sock" >"$out" 2>&1
st=$?
if [ "$st" -ne 0 ] && [ "$st" -ne 124 ] && grep -q "exclusive-lock feature" "$out"; then
	isd_pass "lock=exclusive without the exclusive-lock feature is refused (exit $st)"
else
	isd_fail "lock=exclusive on an image without the feature (exit $st)"
	sed 's/^/    | /' "$out" | tail -n 20
fi

isd_check "rbd create 64M (exclusive-lock by default)" "${RBD[@]}" create --size 64M \
	"$POOL/shared"
export ISERD
mkdir -p "$ISD_TMP/fence"
if CEPH_CONF=$ISD_CEPH_CONF CEPH_CLIENT=$ISD_CEPH_CLIENT RBD_IMAGE=$POOL/shared \
	TMPDIR_FENCE=$ISD_TMP/fence timeout -k 10 600 python3 "$HERE/rbd_fence.py"; then
	isd_pass "fencing: a frozen gateway's writes never reach the image"
else
	isd_fail "fencing (rbd_fence.py)"
fi
isd_finish
