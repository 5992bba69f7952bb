#!/bin/bash
# dev: on a real block device (a loop device over a file this test makes),
# served over TCP to iserinit: direct I/O (O_DIRECT) by default. The data an
# initiator writes is on the device (the loop's backing file has it) and reads
# back the same; a whole load of aligned READs and WRITEs, immediate data
# included, goes without a bounce copy (direct_io_bounces stays 0); a LUN of
# 512-byte blocks on a 4 KiB-sector device is refused at start and at
# `iserctl lun add`, with the reason, and served with --block-size 4096 or
# ,buffered.
# shellcheck source=../lib/harness.sh
. "$(dirname "${BASH_SOURCE[0]}")/../lib/harness.sh"

isd_init
isd_require_tools losetup cmp python3
[ "$(id -u)" = 0 ] || isd_skip "loop devices need root"
[ -e /dev/loop-control ] || isd_skip "no /dev/loop-control (loop driver)"

ISERINIT=${ISERINIT:-$(dirname "$ISERD")/iserinit}
ISERCTL=${ISERCTL:-$(dirname "$ISERD")/iserctl}
[ -x "$ISERINIT" ] && [ -x "$ISERCTL" ] || { echo "FAIL: iserinit/iserctl not found"; exit 1; }
IQN=iqn.2026-11.org.iserd:target0
unset LIBISCSI_CHAP_USERNAME LIBISCSI_CHAP_PASSWORD LIBISCSI_CHAP_TARGET_USERNAME \
	LIBISCSI_CHAP_TARGET_PASSWORD
export ISERINIT_INITIATORNAME_FILE=$ISD_TMP/no-initiatorname.iscsi

LOOPS=()
detach_loops() {
	local d
	for d in "${LOOPS[@]}"; do
		losetup -d "$d" 2>/dev/null
	done
}
ISD_CLEANUP_HOOKS+=(detach_loops)

# new_loop FILE SIZE SECTOR: prints the device
new_loop() {
	truncate -s "$2" "$1" || return 1
	losetup --find --show --sector-size "$3" "$1"
}

# stat_of NAME KEY: a number from `iserctl --json stats`, wherever it sits
stat_of() {
	"$ISERCTL" --socket "${ISD_CTL_OF[$1]}" --json stats | python3 -c '
import json, sys
def find(o, k):
    if isinstance(o, dict):
        if k in o:
            return o[k]
        for v in o.values():
            r = find(v, k)
            if r is not None:
                return r
    elif isinstance(o, list):
        for v in o:
            r = find(v, k)
            if r is not None:
                return r
    return None
v = find(json.load(sys.stdin), sys.argv[1])
print(v if v is not None else "missing")' "$2"
}

# ---- 512-byte sectors: direct I/O, data on the device ----
IMG=$ISD_TMP/disk512.img
DEV=$(new_loop "$IMG" 64M 512) || { isd_fail "losetup (512-byte sectors)"; isd_finish; }
LOOPS+=("$DEV")
isd_start d512 --lun "dev:$DEV" || { isd_fail "start iserd on dev:$DEV"; isd_finish; }
grep -q "dev:$DEV" "${ISD_LOG_OF[d512]}" || isd_fail "the log names the device"
U="iscsi://127.0.0.1:${ISD_PORT}/$IQN/0"
isd_check "dev: verify --size 32M" "$ISERINIT" verify --size 32M "$U"
head -c 3000000 /dev/urandom >"$ISD_TMP/in.bin"
isd_check "dev: write 3000000 bytes at 1M" "$ISERINIT" write -f "$ISD_TMP/in.bin" --offset 1M "$U"
isd_check "dev: read them back" "$ISERINIT" read -o "$ISD_TMP/out.bin" --offset 1M --length 3000320 "$U"
if cmp -n 3000000 "$ISD_TMP/in.bin" "$ISD_TMP/out.bin" >/dev/null 2>&1; then
	isd_pass "dev: read back what was written"
else
	isd_fail "dev: read back what was written"
fi
# what iserd wrote is on the device: the loop's backing file has it
if cmp -n 3000000 "$ISD_TMP/in.bin" <(tail -c +$((1048576 + 1)) "$IMG") >/dev/null 2>&1; then
	isd_pass "dev: the data is on the device"
else
	isd_fail "dev: the data is on the device"
fi
b0=$(stat_of d512 direct_io_bounces)
for j in "randwrite 4K 16" "randread 4K 16" "write 128K 4" "read 128K 4"; do
	read -r rw bs qd <<<"$j"
	isd_check "dev: bench $rw $bs QD$qd" "$ISERINIT" bench --rw "$rw" --bs "$bs" --qd "$qd" --time 2 "$U"
done
b1=$(stat_of d512 direct_io_bounces)
if [ "$b0" = 0 ] && [ "$b1" = 0 ]; then
	isd_pass "dev: reads and writes (immediate data too) moved without a bounce copy"
else
	isd_fail "dev: direct_io_bounces $b0 -> $b1 (want 0)"
fi
isd_stop d512

# ---- 4 KiB sectors ----
IMG4=$ISD_TMP/disk4k.img
DEV4=$(new_loop "$IMG4" 16M 4096) || { isd_fail "losetup (4 KiB sectors)"; isd_finish; }
LOOPS+=("$DEV4")
isd_check_fails "4Kn: a LUN of 512-byte blocks is refused" \
	timeout 30 "$ISERD" --portal tcp://127.0.0.1:0 --lun "dev:$DEV4" --control-socket none
grep -q "4096-byte blocks" "$ISD_OUT" && grep -q "buffered" "$ISD_OUT" ||
	isd_fail "4Kn: the refusal says why and what to do"
isd_start d4k --lun "dev:$DEV4,buffered" || { isd_fail "start iserd on dev:$DEV4,buffered"; isd_finish; }
U4="iscsi://127.0.0.1:${ISD_PORT}/$IQN"
isd_check "4Kn ,buffered: verify 512-byte blocks" "$ISERINIT" verify --size 4M "$U4/0"
isd_check_fails "4Kn: lun add of 512-byte blocks is refused" \
	"$ISERCTL" --socket "${ISD_CTL_OF[d4k]}" lun add "$IQN" 1 "dev:$DEV4"
grep -q "4096-byte blocks" "$ISD_OUT" || isd_fail "4Kn: lun add says why"
isd_check "4Kn: lun add --block-size 4096" \
	"$ISERCTL" --socket "${ISD_CTL_OF[d4k]}" lun add "$IQN" 1 "dev:$DEV4" --block-size 4096
isd_check "4Kn direct: readcap" "$ISERINIT" readcap "$U4/1"
grep -q "4096" "$ISD_OUT" || isd_fail "4Kn direct: 4096-byte blocks reported"
isd_check "4Kn direct: verify" "$ISERINIT" verify --size 4M "$U4/1"
isd_stop d4k

isd_finish
