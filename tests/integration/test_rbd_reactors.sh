#!/bin/bash
# The rbd: store with several reactors, on a one-node Ceph cluster
# (tests/lib/ceph.sh): unit_bstore_test_rbd's test_reactors opens an image on
# reactor 0 of a group and drives it from reactors 1 and 2 (writes with and
# without FUA, reads checked, flushes, COMPARE AND WRITE, the allocation
# map); librbd's completions all reach reactor 0, and every callback must run
# on the reactor that submitted its request. The tsan preset runs this with
# its ThreadSanitizer build. Skipped (77) without the ceph packages or
# without the rbd: store in this build.
# shellcheck source=../lib/harness.sh
. "$(dirname "${BASH_SOURCE[0]}")/../lib/harness.sh"
# shellcheck source=../lib/ceph.sh
. "$(dirname "${BASH_SOURCE[0]}")/../lib/ceph.sh"

isd_init
isd_ceph_have || isd_skip "the ceph packages are not installed (scripts/deps.sh --test)"
grep -q 'rbd:POOL' <<<"$("$ISERD" --help 2>&1)" ||
	isd_skip "this iserd was built without the rbd: store (ISERD_RBD, librbd-dev)"
T=${ISERD_BUILD:-$(dirname "$ISERD")}/tests/unit_bstore_test_rbd
[ -x "$T" ] || isd_skip "unit_bstore_test_rbd is not built beside $ISERD"
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

isd_check "rbd create" timeout 60 rbd -c "$ISD_CEPH_CONF" --id admin create --size 64M "$ISD_CEPH_POOL/reactors"
export ISD_TEST_RBD_SPEC="rbd:$ISD_CEPH_POOL/reactors,conf=$ISD_CEPH_CONF,id=$ISD_CEPH_CLIENT"
if timeout -k 5 300 "$T" >"$ISD_TMP/unit.log" 2>&1 && ! grep -q SKIPPED "$ISD_TMP/unit.log"; then
	isd_pass "callbacks on their submitters' reactors: $(grep -c '^reactor' "$ISD_TMP/unit.log") reactors"
	grep '^reactor' "$ISD_TMP/unit.log"
else
	cat "$ISD_TMP/unit.log"
	isd_fail "test_reactors on $ISD_TEST_RBD_SPEC"
fi
isd_finish
