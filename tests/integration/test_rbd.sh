#!/bin/bash
# rbd: LUNs on a real one-node Ceph cluster (tests/lib/ceph.sh: mon + memstore
# OSD, cephx, started here as this user): iserd serves an RBD image and a
# snapshot of another; data written through iSCSI (with FUA, and with
# SYNCHRONIZE CACHE) is what `rbd export` gives; UNMAP lowers `rbd du` and
# unmapped blocks read as zeros (LBPRZ), also in part of an object, and the
# Block Limits VPD names the object as the unmap granularity; the
# snapshot LUN reads its data and refuses writes (DATA PROTECT); GET LBA STATUS
# gives the allocation map `rbd diff` gives, walked in several commands; COMPARE AND
# WRITE (librbd's, atomic on the OSD: a match writes, a miscompare names the
# byte) and WRITE SAME (librbd's writesame); `rbd resize` outside iserd
# reaches READ CAPACITY, `iserctl lun resize` grows the image and refuses to
# shrink it; a bad spec, a missing pool or image
# makes iserd exit non-zero with a one-line reason. Skipped (77) without the
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
isd_require_tools gcc cmp python3 timeout iscsi-inq iscsi-readcapacity16
[ -f /usr/include/iscsi/iscsi.h ] || isd_skip "libiscsi-dev not installed"
RW=$ISD_TMP/isd_rwcheck
if ! gcc -O1 -o "$RW" "$HERE/isd_rwcheck.c" -liscsi >"$ISD_TMP/gcc.log" 2>&1; then
	cat "$ISD_TMP/gcc.log"
	echo "FAIL: cannot build isd_rwcheck"
	exit 1
fi
# librados and librbd are not built with the sanitizer: their threads' own
# allocations at exit are not iserd's leaks.
cat >"$ISD_TMP/lsan.supp" <<'EOF'
leak:librados.so
leak:librbd.so
leak:libceph-common.so
EOF
export LSAN_OPTIONS=${LSAN_OPTIONS:+$LSAN_OPTIONS:}suppressions=$ISD_TMP/lsan.supp

ISD_CLEANUP_HOOKS+=(isd_ceph_stop)
isd_ceph_start "$ISD_TMP/ceph"
case $? in
0) isd_pass "one-node Ceph cluster up in ${ISD_CEPH_START_S}s" ;;
77) exit 77 ;;
*) echo "FAIL: the one-node Ceph cluster did not start"; exit 1 ;;
esac

MB=1048576
IQN=iqn.2026-11.org.iserd:rbd
INI=iqn.2026-11.org.iserd:rbd-test
C="conf=$ISD_CEPH_CONF,id=$ISD_CEPH_CLIENT"
POOL=$ISD_CEPH_POOL
RBD=(rbd -c "$ISD_CEPH_CONF" --id admin)

# the snapshot LUN's image: 16 MiB of a known pattern, then snapshot s1, then changed
head -c $((16 * MB)) /dev/urandom >"$ISD_TMP/snap.bin"
isd_check "rbd import" "${RBD[@]}" import "$ISD_TMP/snap.bin" "$POOL/snapsrc"
isd_check "rbd snap create" "${RBD[@]}" snap create "$POOL/snapsrc@s1"
isd_check "rbd create 16M (the ro LUN)" "${RBD[@]}" create --size 16M "$POOL/other"
isd_check "rbd create 256M" "${RBD[@]}" create --size 256M "$POOL/disk1"

# ---- bad specs and missing things: iserd exits non-zero and says what
bad_start() { # DESC EXPECTED-TEXT SPEC
	local out=$ISD_TMP/bad.$RANDOM st
	timeout -k 5 90 "$ISERD" --portal tcp://127.0.0.1:1 --target "$IQN" --lun "$3" \
		--control-socket "$ISD_TMP/bad.sock" >"$out" 2>&1
	st=$?
	if [ "$st" -ne 0 ] && [ "$st" -ne 124 ] && grep -qF -- "$2" "$out"; then
		isd_pass "$1 (exit $st: $(grep -F -- "$2" "$out" | head -n 1 | cut -c1-160))"
	else
		isd_fail "$1 (exit $st, expected '$2')"
		sed 's/^/    | /' "$out" | tail -n 20
	fi
}
bad_start "spec without an image" "needs POOL/IMAGE" "rbd:$POOL"
bad_start "spec with a bad image name" "bad image name" "rbd:$POOL/a b"
bad_start "spec with an unknown option" "unknown or empty option" "rbd:$POOL/disk1,size=1G"
bad_start "spec with a relative conf" "absolute path" "rbd:$POOL/disk1,conf=ceph.conf"
bad_start "missing conf file" "No such file" "rbd:$POOL/disk1,conf=$ISD_TMP/none.conf"
bad_start "missing image" "image $POOL/nosuch: No such file or directory" "rbd:$POOL/nosuch,$C"
bad_start "missing pool" "pool nopool: No such file or directory" "rbd:nopool/disk1,$C"
bad_start "missing snapshot" "image $POOL/snapsrc@s9: No such file or directory" \
	"rbd:$POOL/snapsrc@s9,$C"
bad_start "unknown cephx user" "cannot connect" "rbd:$POOL/disk1,conf=$ISD_CEPH_CONF,id=nobody"
# no monitor answers: the connect gives up within the mount timeout (the conf's
# 3 s here, iserd's 30 s by default) instead of hanging the start
DEADPORT=$(isd_ceph_free_port)
sed -e "s/^mon host = .*/mon host = v2:127.0.0.1:$DEADPORT/" "$ISD_CEPH_CONF" >"$ISD_TMP/dead.conf"
echo "client mount timeout = 3" >>"$ISD_TMP/dead.conf"
t0=$(date +%s)
bad_start "no monitor answers" "cannot connect to the Ceph cluster" \
	"rbd:$POOL/disk1,conf=$ISD_TMP/dead.conf,id=$ISD_CEPH_CLIENT"
dt=$(($(date +%s) - t0))
[ "$dt" -le 15 ] && isd_pass "the connect gave up after ${dt}s" ||
	isd_fail "the connect took ${dt}s (mount timeout 3 s)"

# the same spec in a configuration file: --check parses it and does not connect
cat >"$ISD_TMP/rbd.conf" <<EOF
targets = ( { name = "$IQN"; luns = ( { backing = "rbd:$POOL/disk1,id=$ISD_CEPH_CLIENT,conf=$ISD_CEPH_CONF"; },
                                       { backing = "rbd:$POOL/snapsrc@s1,$C"; } ); } );
EOF
isd_check "--check of a configuration file with rbd: LUNs" "$ISERD" -c "$ISD_TMP/rbd.conf" --check

# ---- the target: LUN 0 the image, LUN 1 a snapshot, LUN 2 an image opened ro
if ! isd_start main --target "$IQN" --lun "rbd:$POOL/disk1,$C" \
	--lun "rbd:$POOL/snapsrc@s1,$C" --lun "rbd:$POOL/other,$C,ro"; then
	isd_fail "iserd starts with rbd: LUNs"
	isd_finish
fi
isd_pass "iserd starts with rbd: LUNs"
P=iscsi://127.0.0.1:$ISD_PORT/$IQN

if isd_check "READ CAPACITY(16) of LUN 0" iscsi-readcapacity16 -i "$INI" "$P/0"; then
	grep -q "Total size:$((256 * MB))" "$ISD_OUT" &&
		isd_pass "LUN 0 is 256 MiB" || { isd_fail "LUN 0 size"; cat "$ISD_OUT"; }
fi
if isd_check "INQUIRY of LUN 0" iscsi-inq -i "$INI" "$P/0"; then
	grep -q "CEPH RBD" "$ISD_OUT" && isd_pass "product id CEPH RBD" ||
		{ isd_fail "product id"; cat "$ISD_OUT"; }
fi
# VPD B2h: LBPU (thin, UNMAP) and LBPRZ (reads zeros)
if isd_check "VPD 0xb2 of LUN 0" iscsi-inq -e 1 -c 178 -i "$INI" "$P/0"; then
	grep -qi "lbpu:1" "$ISD_OUT" && isd_pass "LUN 0 offers UNMAP (LBPU)" ||
		{ isd_fail "LBPU"; cat "$ISD_OUT"; }
fi
# VPD B0h: OPTIMAL UNMAP GRANULARITY is the 4 MiB object (8192 blocks), aligned at LBA 0
if isd_check "VPD 0xb0 of LUN 0" iscsi-inq -e 1 -c 176 -i "$INI" "$P/0"; then
	grep -q "^optimal unmap granularity:8192$" "$ISD_OUT" && grep -q "^ugavalid:1$" "$ISD_OUT" &&
		grep -q "^unmap granularity alignment:0$" "$ISD_OUT" &&
		isd_pass "unmap granularity: one object (8192 blocks of 512), aligned at 0" ||
		{ isd_fail "unmap granularity"; cat "$ISD_OUT"; }
fi

# ---- data: 8 MiB with FUA at 4 MiB (objects 1 and 2), 3 MiB + SYNC CACHE at 100 MiB + 512
head -c $((8 * MB)) /dev/urandom >"$ISD_TMP/a.bin"
head -c $((3 * MB)) /dev/urandom >"$ISD_TMP/b.bin"
isd_check "write 8 MiB with FUA at 4 MiB" "$RW" -i "$INI" -F -l 8192 -c $MB -w "$ISD_TMP/a.bin" "$P/0"
isd_check "write 3 MiB + SYNCHRONIZE CACHE at 100 MiB + 512" \
	"$RW" -i "$INI" -s -l $((200 * 1024 + 1)) -c $((512 * 1024)) -w "$ISD_TMP/b.bin" "$P/0"
isd_check "read back 8 MiB" "$RW" -i "$INI" -l 8192 -n $((8 * MB)) -r "$ISD_TMP/a.out" "$P/0" &&
	isd_check "read back equals what was written" cmp "$ISD_TMP/a.bin" "$ISD_TMP/a.out"
python3 - "$ISD_TMP" <<'EOF'
import sys
d = sys.argv[1]
img = bytearray(256 << 20)
a = open(d + "/a.bin", "rb").read()
b = open(d + "/b.bin", "rb").read()
img[4 << 20:(4 << 20) + len(a)] = a
o = (100 << 20) + 512
img[o:o + len(b)] = b
open(d + "/expected.img", "wb").write(img)
EOF
isd_check "rbd export" "${RBD[@]}" export "$POOL/disk1" "$ISD_TMP/export.img" &&
	isd_check "rbd export equals the data written through iserd" \
		cmp "$ISD_TMP/expected.img" "$ISD_TMP/export.img"

# ---- UNMAP: rbd du goes down by the two whole objects; they read as zeros
du_used() {
	timeout 60 "${RBD[@]}" du --format json "$POOL/disk1" |
		python3 -c 'import json, sys; print(json.load(sys.stdin)["images"][0]["used_size"])'
}
used0=$(du_used)
isd_check "UNMAP 8 MiB at 4 MiB" "$RW" -i "$INI" -l 8192 -U 16384 "$P/0"
used1=$(du_used)
if [ -n "$used0" ] && [ -n "$used1" ] && [ "$used1" -le $((used0 - 8 * MB)) ]; then
	isd_pass "rbd du used went from $used0 to $used1 bytes"
else
	isd_fail "rbd du did not go down by 8 MiB ($used0 -> $used1)"
fi
head -c $((8 * MB)) /dev/zero >"$ISD_TMP/zero.bin"
isd_check "read the unmapped range" "$RW" -i "$INI" -l 8192 -n $((8 * MB)) -r "$ISD_TMP/z.out" "$P/0" &&
	isd_check "the unmapped range reads as zeros" cmp "$ISD_TMP/zero.bin" "$ISD_TMP/z.out"
# parts of an object, block by block: each unmapped block reads zeros at once
isd_check "UNMAP in part of an object reads zeros (32 rounds)" \
	"$RW" -i "$INI" -l 300001 -u 32 "$P/0"

# ---- GET LBA STATUS: the image's allocation map, as `rbd diff` gives it (extents of
# data from the beginning, rounded out to blocks); walked to the end of the LUN with
# room for 255 descriptors a command, then for 2 (more commands, each from where
# the last answer ended); the snapshot LUN's map is its snapshot's
lbas_check() { # LUN IMAGE[@SNAP] ALLOC
	isd_check "GET LBA STATUS walk of LUN $1 (allocation length $3)" \
		"$RW" -i "$INI" -G "$3" "$P/$1" || return
	cp "$ISD_OUT" "$ISD_TMP/lbas.$1.$3"
	if ! timeout 60 "${RBD[@]}" diff --format json "$POOL/$2" >"$ISD_TMP/diff.json" \
		2>"$ISD_TMP/diff.err"; then
		isd_fail "rbd diff $2"
		cat "$ISD_TMP/diff.err"
		return
	fi
	if python3 - "$ISD_TMP/lbas.$1.$3" "$ISD_TMP/diff.json" >"$ISD_TMP/lbas.cmp" <<'EOF3'; then
import json, sys
got, cmds = [], 0
for line in open(sys.argv[1]):
    w = line.split()
    if w[0] == "lbas":
        lba, n, st = int(w[1]), int(w[2]), int(w[3])
        if got and got[-1][2] == st and got[-1][0] + got[-1][1] == lba:
            got[-1][1] += n
        else:
            got.append([lba, n, st])
    elif w[0] == "lbas-commands":
        cmds = int(w[1])
total = got[-1][0] + got[-1][1]
mapped = [False] * total
for e in json.load(open(sys.argv[2])):
    if e["exists"] in (True, "true"):
        for b in range(e["offset"] // 512, -(-(e["offset"] + e["length"]) // 512)):
            mapped[b] = True
want = []
for b, m in enumerate(mapped):
    st = 0 if m else 1
    if want and want[-1][2] == st:
        want[-1][1] += 1
    else:
        want.append([b, 1, st])
if got != want:
    print("GET LBA STATUS:", got[:20])
    print("rbd diff:      ", want[:20])
    sys.exit(1)
print(f"{len(got)} extents, {sum(g[1] for g in got if g[2] == 0)} blocks mapped, {cmds} commands")
EOF3
		isd_pass "LUN $1's GET LBA STATUS (allocation length $3) is rbd diff's map: $(tail -n 1 "$ISD_TMP/lbas.cmp")"
	else
		isd_fail "LUN $1's GET LBA STATUS (allocation length $3) differs from rbd diff"
		cat "$ISD_TMP/lbas.cmp"
	fi
}
lbas_check 0 disk1 4088
lbas_check 0 disk1 40
lbas_check 1 snapsrc@s1 4088
grep -q "^lbas [0-9]* [0-9]* 1$" "$ISD_TMP/lbas.0.4088" &&
	isd_pass "LUN 0 has deallocated extents (the UNMAPs)" || isd_fail "no deallocated extent on LUN 0"
n=$(awk '$1 == "lbas-commands" { print $2 }' "$ISD_TMP/lbas.0.40")
[ "${n:-0}" -gt 2 ] && isd_pass "with room for 2 descriptors the walk took $n commands" ||
	isd_fail "with room for 2 descriptors the walk took ${n:-no} commands"

# ---- COMPARE AND WRITE and WRITE SAME, done by librbd
# one block: librbd's (one sector); two blocks across an object boundary (4 MiB =
# LBA 8192): iserd's own read, compare and write
isd_check "COMPARE AND WRITE (1 block, librbd): match, miscompare at byte 300" \
	"$RW" -i "$INI" -l 4000 -C 1 "$P/0"
isd_check "COMPARE AND WRITE (2 blocks across two objects, iserd's)" \
	"$RW" -i "$INI" -l 8191 -C 2 "$P/0"
isd_check "WRITE SAME(16) of 3000 blocks" "$RW" -i "$INI" -l 50001 -W 3000 "$P/0"
isd_check "rbd export after CAW and WRITE SAME" "${RBD[@]}" export "$POOL/disk1" "$ISD_TMP/export2.img" &&
python3 - "$ISD_TMP/export2.img" <<'EOF2' && isd_pass "the image holds the CAW and WRITE SAME data" || isd_fail "the image does not hold the CAW and WRITE SAME data"
import sys
f = open(sys.argv[1], "rb")
def at(lba, n):
    f.seek(lba * 512)
    return f.read(n)
assert at(4000, 512) == b"B" * 512
assert at(8191, 1024) == b"B" * 1024
pat = bytes((i * 7 + 3) & 0xff for i in range(512))
assert at(50001, 3000 * 512) == pat * 3000
EOF2

# ---- the snapshot LUN: its data, no writes
isd_check "read the snapshot LUN" "$RW" -i "$INI" -n $((16 * MB)) -r "$ISD_TMP/snap.out" "$P/1" &&
	isd_check "the snapshot LUN reads the snapshot's data" cmp "$ISD_TMP/snap.bin" "$ISD_TMP/snap.out"
head -c $MB /dev/urandom >"$ISD_TMP/c.bin"
if isd_check_fails "a write to the snapshot LUN fails" "$RW" -i "$INI" -w "$ISD_TMP/c.bin" "$P/1"; then
	grep -qi "DATA.PROTECT" "$ISD_OUT" && isd_pass "with DATA PROTECT" ||
		{ isd_fail "the refusal is not DATA PROTECT"; cat "$ISD_OUT"; }
fi
isd_check_fails "a write to the ro LUN fails" "$RW" -i "$INI" -w "$ISD_TMP/c.bin" "$P/2"

# ---- resized outside: READ CAPACITY follows (the first command may report the UA)
isd_check "rbd resize 256M -> 512M" "${RBD[@]}" resize --size 512M "$POOL/disk1"
ok=0
for i in $(seq 1 40); do
	if iscsi-readcapacity16 -i "$INI" "$P/0" 2>&1 | grep -q "Total size:$((512 * MB))"; then
		ok=1
		break
	fi
	sleep 0.25
done
[ "$ok" = 1 ] && isd_pass "READ CAPACITY(16) shows 512 MiB after rbd resize" ||
	isd_fail "READ CAPACITY(16) did not follow rbd resize"
grep -q "the store is now $((512 * MB)) bytes" "${ISD_LOG_OF[main]}" &&
	isd_pass "the log says the LUN grew" || isd_fail "no log line for the resize"
isd_check "write past the old end" "$RW" -i "$INI" -l $((300 * 2048)) -c $MB -w "$ISD_TMP/c.bin" "$P/0"
# through the control socket: grows the image itself, refuses to shrink it
CTL=(timeout 60 "$(dirname "$ISERD")/iserctl" --socket "${ISD_CTL_OF[main]}")
isd_check "iserctl lun resize to 768M" "${CTL[@]}" lun resize "$IQN" 0 768M
isd_check "rbd info after lun resize" "${RBD[@]}" info --format json "$POOL/disk1"
python3 -c 'import json, sys; sys.exit(0 if json.load(open(sys.argv[1]))["size"] == 768 << 20 else 1)' \
	"$ISD_OUT" && isd_pass "the image is 768 MiB" || isd_fail "the image did not grow"
isd_check_fails "iserctl lun resize to 128M (a shrink) fails" "${CTL[@]}" lun resize "$IQN" 0 128M
grep -q "only grows" "$ISD_OUT" && isd_pass "and says why" || { isd_fail "no reason"; cat "$ISD_OUT"; }
# a LUN added and removed while iserd runs: opened and closed from the control socket
isd_check "iserctl lun add 3 (rbd)" "${CTL[@]}" lun add "$IQN" 3 "rbd:$POOL/snapsrc,$C"
isd_check "read the added LUN" "$RW" -i "$INI" -n $((16 * MB)) -r "$ISD_TMP/added.out" "$P/3" &&
	isd_check "the added LUN reads the image" cmp "$ISD_TMP/snap.bin" "$ISD_TMP/added.out"
isd_check "iserctl lun remove 3" "${CTL[@]}" lun remove "$IQN" 3
# one GET LBA STATUS scans at most 256 objects (1 GiB here): an empty 3 GiB image
# takes three commands, whatever room the allocation length leaves
isd_check "rbd create 3G (empty)" "${RBD[@]}" create --size 3G "$POOL/big"
isd_check "iserctl lun add 4 (3 GiB)" "${CTL[@]}" lun add "$IQN" 4 "rbd:$POOL/big,$C"
if isd_check "GET LBA STATUS walk of the 3 GiB LUN" "$RW" -i "$INI" -G 4088 "$P/4"; then
	[ "$(awk '$1 == "lbas-commands" { print $2 }' "$ISD_OUT")" = 3 ] &&
		[ "$(grep -c '^lbas .* 1$' "$ISD_OUT")" = 3 ] &&
		isd_pass "three commands of 1 GiB deallocated each" ||
		{ isd_fail "the scan of one command is not bounded to 1 GiB"; cat "$ISD_OUT"; }
fi
isd_check "iserctl lun remove 4" "${CTL[@]}" lun remove "$IQN" 4
grep -q "allocation map: 3 scans of $((3 * 1024 * MB)) bytes" "${ISD_LOG_OF[main]}" &&
	isd_pass "the log counts the scans when the LUN goes" || isd_fail "no log line counting the scans"
isd_check_fails "iserctl lun add of a missing image fails" "${CTL[@]}" lun add "$IQN" 3 \
	"rbd:$POOL/nosuch,$C"
grep -q "image $POOL/nosuch: No such file or directory" "$ISD_OUT" && isd_pass "and says why" ||
	{ isd_fail "no reason"; cat "$ISD_OUT"; }

# ---- librbd's cache off: writes go from iserd's buffers to the messenger without a
# copy (rbd_disable_zero_copy_writes false, which iserd sets: librbd's log would say
# "disabling zero-copy writes" otherwise); the data is what rbd export gives
{
	cat "$ISD_CEPH_CONF"
	printf '[client]\nrbd cache = false\ndebug rbd = 5/5\nlog file = %s\n' "$ISD_TMP/nocache.log"
} >"$ISD_TMP/nocache.conf"
isd_check "rbd create 16M (no cache)" "${RBD[@]}" create --size 16M "$POOL/nocache"
isd_check "iserctl lun add 5 (rbd cache off)" "${CTL[@]}" lun add "$IQN" 5 \
	"rbd:$POOL/nocache,conf=$ISD_TMP/nocache.conf,id=$ISD_CEPH_CLIENT"
head -c $((8 * MB)) /dev/urandom >"$ISD_TMP/nc.bin"
isd_check "write 8 MiB (FUA) to the uncached LUN" "$RW" -i "$INI" -F -l 2048 -c $MB \
	-w "$ISD_TMP/nc.bin" "$P/5"
isd_check "WRITE SAME on the uncached LUN" "$RW" -i "$INI" -l 20000 -W 100 "$P/5"
isd_check "read back 8 MiB" "$RW" -i "$INI" -l 2048 -n $((8 * MB)) -r "$ISD_TMP/nc.out" "$P/5" &&
	isd_check "read back equals what was written" cmp "$ISD_TMP/nc.bin" "$ISD_TMP/nc.out"
isd_check "iserctl lun remove 5" "${CTL[@]}" lun remove "$IQN" 5
isd_check "rbd export of the uncached image" "${RBD[@]}" export "$POOL/nocache" "$ISD_TMP/nc.img" &&
	isd_check "rbd export holds the data" cmp -i $((1 * MB)):0 -n $((8 * MB)) "$ISD_TMP/nc.img" "$ISD_TMP/nc.bin"
if [ -s "$ISD_TMP/nocache.log" ]; then
	! grep -q "disabling zero-copy writes" "$ISD_TMP/nocache.log" &&
		isd_pass "librbd did not disable zero-copy writes" ||
		isd_fail "librbd disabled zero-copy writes (rbd_disable_zero_copy_writes not set?)"
else
	isd_fail "no librbd log for the uncached LUN"
fi

isd_expect_alive main
isd_finish
