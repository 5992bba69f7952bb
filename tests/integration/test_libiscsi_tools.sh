#!/bin/bash
# libiscsi's command line tools against iserd on 127.0.0.1: discovery (iscsi-ls),
# INQUIRY and VPD pages (iscsi-inq), READ CAPACITY(16), iscsi-perf, a write/read/
# compare with a small libiscsi program (RAM LUN and file LUN, the file LUN also
# checked against its backing file), CHAP, mutual CHAP and the initiator ACL.
# Exit 77 when a tool is missing.
set -u
HERE=$(cd "$(dirname "$0")" && pwd)
. "$HERE/../lib/harness.sh"

isd_require_tools iscsi-ls iscsi-inq iscsi-readcapacity16 iscsi-perf gcc timeout cmp
[ -f /usr/include/iscsi/iscsi.h ] || isd_skip "libiscsi-dev not installed"
isd_init

INI=iqn.2026-11.org.iserd:test-initiator
OTHER_INI=iqn.2026-11.org.iserd:someone-else
IQN=iqn.2026-11.org.iserd:tools
RAM_SIZE=$((128 * 1024 * 1024))
FILE_SIZE=$((64 * 1024 * 1024))

RW="$ISD_TMP/isd_rwcheck"
if ! gcc -O1 -o "$RW" "$HERE/isd_rwcheck.c" -liscsi >"$ISD_TMP/gcc.log" 2>&1; then
	cat "$ISD_TMP/gcc.log"
	isd_skip "cannot build isd_rwcheck against libiscsi"
fi

# Accepts "(Size:N<unit>)" within one unit of the expected size (libiscsi's iscsi-ls
# computes the size from the last LBA, not the block count, and rounds down).
size_ok() { # $1 = iscsi-ls line, $2 = bytes
	local num unit mult got
	num=$(sed -n 's/.*(Size:\([0-9]*\)\([kMGT]\?\)).*/\1/p' <<<"$1")
	unit=$(sed -n 's/.*(Size:\([0-9]*\)\([kMGT]\?\)).*/\2/p' <<<"$1")
	[ -n "$num" ] || return 1
	case "$unit" in
	k) mult=$((1 << 10)) ;; M) mult=$((1 << 20)) ;; G) mult=$((1 << 30)) ;;
	T) mult=$((1 << 40)) ;; *) mult=1 ;;
	esac
	got=$((num * mult))
	[ "$got" -le "$2" ] && [ "$got" -gt $(($2 - mult - 512)) ]
}

# --- a target with a RAM LUN (0) and a file LUN (1) -------------------------------
IMG="$ISD_TMP/lun1.img"
truncate -s "$FILE_SIZE" "$IMG"
if ! isd_start main --target "$IQN" --lun "ram:$RAM_SIZE" --lun "file:$IMG"; then
	isd_fail "iserd starts with a RAM LUN and a file LUN"
	isd_finish
fi
P=$ISD_PORT
PORTAL=iscsi://127.0.0.1:$P

if isd_check "iscsi-ls discovery" iscsi-ls -i "$INI" "$PORTAL"; then
	if grep -q "^Target:$IQN Portal:127.0.0.1:$P,[0-9]*" "$ISD_OUT"; then
		isd_pass "discovery lists $IQN with portal 127.0.0.1:$P"
	else
		isd_fail "discovery does not list $IQN at 127.0.0.1:$P"
		sed 's/^/    | /' "$ISD_OUT"
	fi
fi
if isd_check "iscsi-ls -s (discovery + LUN listing)" iscsi-ls -s -i "$INI" "$PORTAL"; then
	l0=$(grep '^Lun:0 ' "$ISD_OUT")
	l1=$(grep '^Lun:1 ' "$ISD_OUT")
	if grep -q 'DIRECT_ACCESS' <<<"$l0" && size_ok "$l0" "$RAM_SIZE"; then
		isd_pass "iscsi-ls shows LUN 0 as a $((RAM_SIZE >> 20)) MiB disk"
	else
		isd_fail "iscsi-ls LUN 0 line wrong: '$l0'"
		sed 's/^/    | /' "$ISD_OUT"
	fi
	if grep -q 'DIRECT_ACCESS' <<<"$l1" && size_ok "$l1" "$FILE_SIZE"; then
		isd_pass "iscsi-ls shows LUN 1 as a $((FILE_SIZE >> 20)) MiB disk"
	else
		isd_fail "iscsi-ls LUN 1 line wrong: '$l1'"
		sed 's/^/    | /' "$ISD_OUT"
	fi
fi

for lun in 0 1; do
	URL=$PORTAL/$IQN/$lun
	if [ "$lun" = 0 ]; then SIZE=$RAM_SIZE; KIND=ram; else SIZE=$FILE_SIZE; KIND=file; fi

	if isd_check "LUN $lun ($KIND): standard INQUIRY" iscsi-inq -i "$INI" "$URL"; then
		for f in 'Peripheral Qualifier:CONNECTED' 'Peripheral Device Type:DIRECT_ACCESS' \
		         'Vendor:' 'Product:' 'Revision:'; do
			grep -q "^$f" "$ISD_OUT" || isd_fail "LUN $lun INQUIRY output lacks '$f'"
		done
	fi
	if isd_check "LUN $lun ($KIND): VPD 0x00 supported pages" iscsi-inq -e 1 -c 0 -i "$INI" "$URL"; then
		for pg in 0x80 0x83 0xb0; do
			if grep -q "^Page:$pg " "$ISD_OUT"; then
				isd_pass "LUN $lun lists VPD page $pg"
			else
				isd_fail "LUN $lun VPD 0x00 does not list page $pg"
				sed 's/^/    | /' "$ISD_OUT"
			fi
		done
	fi
	if isd_check "LUN $lun ($KIND): VPD 0x80 unit serial number" iscsi-inq -e 1 -c 128 -i "$INI" "$URL"; then
		grep -q '^Unit Serial Number:\[.*[^ ].*\]' "$ISD_OUT" ||
			isd_fail "LUN $lun VPD 0x80: no serial number in '$(head -c 200 "$ISD_OUT")'"
	fi
	if isd_check "LUN $lun ($KIND): VPD 0x83 device identification" iscsi-inq -e 1 -c 131 -i "$INI" "$URL"; then
		grep -q 'DEVICE DESIGNATOR #0' "$ISD_OUT" ||
			isd_fail "LUN $lun VPD 0x83: no designator"
		grep -q 'Designator Type:(3) NAA\|Designator Type:(2) EUI-64\|Designator Type:(8) SCSI_NAME' "$ISD_OUT" ||
			isd_fail "LUN $lun VPD 0x83: no NAA, EUI-64 or SCSI name designator (SPC-4 requires one)"
	fi
	if isd_check "LUN $lun ($KIND): VPD 0xb0 block limits" iscsi-inq -e 1 -c 176 -i "$INI" "$URL"; then
		grep -q '^maximum transfer length:' "$ISD_OUT" ||
			isd_fail "LUN $lun VPD 0xb0: unexpected output"
	fi
	if isd_check "LUN $lun ($KIND): READ CAPACITY(16)" iscsi-readcapacity16 -s -i "$INI" "$URL"; then
		got=$(tr -d '[:space:]' <"$ISD_OUT")
		if [ "$got" = "$SIZE" ]; then
			isd_pass "LUN $lun capacity is $SIZE bytes"
		else
			isd_fail "LUN $lun capacity: expected $SIZE bytes, got '$got'"
		fi
	fi
	if isd_check "LUN $lun ($KIND): iscsi-perf sequential read 3 s" iscsi-perf -i "$INI" -t 3 "$URL"; then
		grep -q 'iops average' "$ISD_OUT" || isd_fail "LUN $lun iscsi-perf printed no rate"
		grep -o 'iops average [0-9]* ([0-9]* MB/s)' "$ISD_OUT" | tail -n 1 | sed 's/^/    /'
	fi
	isd_check "LUN $lun ($KIND): iscsi-perf random read 3 s, 64 KiB, 16 deep" \
		iscsi-perf -i "$INI" -t 3 -r -b 128 -m 16 "$URL"

	# Write/read/compare: 3 MiB + 12 KiB written in chunks of 1 MiB + 512 bytes (more
	# than FirstBurstLength and MaxBurstLength: R2T sequences), read back in 64 KiB
	# and in one 4 MiB piece.
	N=$((3 * 1048576 + 12288))
	DATA="$ISD_TMP/data$lun"
	head -c "$N" /dev/urandom >"$DATA"
	if isd_check "LUN $lun ($KIND): write 3 MiB at LBA 2048" \
		"$RW" -i "$INI" -l 2048 -c 1049088 -w "$DATA" -s "$URL"; then
		if isd_check "LUN $lun ($KIND): read back in 64 KiB pieces" \
			"$RW" -i "$INI" -l 2048 -c 65536 -n "$N" -r "$DATA.r1" "$URL"; then
			isd_check "LUN $lun ($KIND): data read back (64 KiB pieces) matches" cmp "$DATA" "$DATA.r1"
		fi
		if isd_check "LUN $lun ($KIND): read back in one 4 MiB command" \
			"$RW" -i "$INI" -l 2048 -c 4194304 -n "$N" -r "$DATA.r2" "$URL"; then
			isd_check "LUN $lun ($KIND): data read back (one command) matches" cmp "$DATA" "$DATA.r2"
		fi
		if [ "$KIND" = file ]; then
			isd_check "LUN 1 (file): backing file holds the data at offset 1 MiB" \
				cmp -n "$N" --ignore-initial=0:$((2048 * 512)) "$DATA" "$IMG"
		fi
	fi
	# The last 64 KiB of the LUN.
	TAIL="$ISD_TMP/tail$lun"
	head -c 65536 /dev/urandom >"$TAIL"
	LAST=$((SIZE / 512 - 128))
	if isd_check "LUN $lun ($KIND): write the last 64 KiB" \
		"$RW" -i "$INI" -l "$LAST" -c 65536 -w "$TAIL" "$URL"; then
		if isd_check "LUN $lun ($KIND): read the last 64 KiB" \
			"$RW" -i "$INI" -l "$LAST" -c 8192 -n 65536 -r "$TAIL.r" "$URL"; then
			isd_check "LUN $lun ($KIND): last 64 KiB match" cmp "$TAIL" "$TAIL.r"
		fi
	fi
	isd_expect_alive main
done

# HeaderDigest=CRC32C forced by the initiator (libiscsi does no data digests).
head -c 1048576 /dev/urandom >"$ISD_TMP/hd"
if isd_check "HeaderDigest=CRC32C: write 1 MiB to LUN 0" \
	"$RW" -i "$INI" -l 16384 -c 262144 -w "$ISD_TMP/hd" "$PORTAL/$IQN/0?header_digest=crc32c"; then
	isd_check "HeaderDigest=CRC32C: read back 1 MiB" \
		"$RW" -i "$INI" -l 16384 -c 65536 -n 1048576 -r "$ISD_TMP/hd.r" \
		"$PORTAL/$IQN/0?header_digest=crc32c" &&
		isd_check "HeaderDigest=CRC32C: data matches" cmp "$ISD_TMP/hd" "$ISD_TMP/hd.r"
fi

# Two sessions at once: iscsi-perf on LUN 0 while writing and reading LUN 1.
timeout -k 5 60 iscsi-perf -i "$INI-2" -t 4 -r "$PORTAL/$IQN/0" >"$ISD_TMP/perf-bg.log" 2>&1 &
PERF_PID=$!
head -c 1048576 /dev/urandom >"$ISD_TMP/conc"
if isd_check "concurrent sessions: write 1 MiB to LUN 1 while iscsi-perf runs on LUN 0" \
	"$RW" -i "$INI" -l 8192 -c 131072 -w "$ISD_TMP/conc" "$PORTAL/$IQN/1"; then
	isd_check "concurrent sessions: read back 1 MiB from LUN 1" \
		"$RW" -i "$INI" -l 8192 -c 1048576 -n 1048576 -r "$ISD_TMP/conc.r" "$PORTAL/$IQN/1" &&
		isd_check "concurrent sessions: data matches" cmp "$ISD_TMP/conc" "$ISD_TMP/conc.r"
fi
if wait "$PERF_PID"; then
	isd_pass "concurrent sessions: iscsi-perf on LUN 0 finished"
else
	isd_fail "concurrent sessions: iscsi-perf on LUN 0 failed"
	sed 's/^/    | /' "$ISD_TMP/perf-bg.log" | tail -n 20
fi
isd_stop main

# --- defaults: no --target gives iqn.2026-11.org.iserd:target0 with a 1 GiB RAM LUN --
if isd_start defaults; then
	if isd_check "defaults: discovery" iscsi-ls -s -i "$INI" "iscsi://127.0.0.1:$ISD_PORT"; then
		l0=$(grep '^Lun:0 ' "$ISD_OUT")
		if grep -q '^Target:iqn.2026-11.org.iserd:target0 ' "$ISD_OUT" && size_ok "$l0" $((1 << 30)); then
			isd_pass "defaults: target0 with a 1 GiB LUN 0"
		else
			isd_fail "defaults: expected iqn.2026-11.org.iserd:target0 with a 1024M LUN 0"
			sed 's/^/    | /' "$ISD_OUT"
		fi
	fi
	isd_stop defaults
else
	isd_fail "iserd starts with default settings"
fi

# --- CHAP -------------------------------------------------------------------------
CIQN=iqn.2026-11.org.iserd:chap
if isd_start chap --target "$CIQN" --lun ram:16M --chap chapuser:chapsecret1234; then
	H=127.0.0.1:$ISD_PORT
	isd_check "CHAP: right secret logs in" iscsi-inq -i "$INI" "iscsi://chapuser%chapsecret1234@$H/$CIQN/0"
	if isd_check_fails "CHAP: wrong secret is refused" \
		iscsi-inq -i "$INI" "iscsi://chapuser%wrongsecret999@$H/$CIQN/0"; then
		if grep -q 'Authentication failure' "$ISD_OUT"; then
			isd_pass "CHAP: refusal is an authentication failure (login status 0x0201)"
		else
			isd_fail "CHAP: refusal is not 'Authentication failure' (0x0201): $(tr '\n' ' ' <"$ISD_OUT" | head -c 300)"
		fi
	fi
	isd_check_fails "CHAP: wrong user name is refused" \
		iscsi-inq -i "$INI" "iscsi://otheruser%chapsecret1234@$H/$CIQN/0"
	isd_check_fails "CHAP: no credentials are refused" iscsi-inq -i "$INI" "iscsi://$H/$CIQN/0"
	isd_expect_alive chap
	isd_stop chap
else
	isd_fail "iserd starts with --chap"
fi

# --- mutual CHAP (libiscsi takes the target's credentials from the environment) ---
MIQN=iqn.2026-11.org.iserd:mutual
if isd_start mutual --target "$MIQN" --lun ram:16M --chap chapuser:chapsecret1234 \
	--mutual-chap tgtuser:tgtsecret5678; then
	H=127.0.0.1:$ISD_PORT
	isd_check "mutual CHAP: right secrets log in" \
		env LIBISCSI_CHAP_TARGET_USERNAME=tgtuser LIBISCSI_CHAP_TARGET_PASSWORD=tgtsecret5678 \
		iscsi-inq -i "$INI" "iscsi://chapuser%chapsecret1234@$H/$MIQN/0"
	if isd_check_fails "mutual CHAP: initiator expecting another target secret refuses the login" \
		env LIBISCSI_CHAP_TARGET_USERNAME=tgtuser LIBISCSI_CHAP_TARGET_PASSWORD=notthesecret0 \
		iscsi-inq -i "$INI" "iscsi://chapuser%chapsecret1234@$H/$MIQN/0"; then
		if grep -q 'Invalid CHAP_R response from the target' "$ISD_OUT"; then
			isd_pass "mutual CHAP: libiscsi refused the target's CHAP_R (target answered the challenge)"
		else
			isd_fail "mutual CHAP: failed for another reason: $(tr '\n' ' ' <"$ISD_OUT" | head -c 300)"
		fi
	fi
	if isd_check_fails "mutual CHAP: a different target user name is refused by the initiator" \
		env LIBISCSI_CHAP_TARGET_USERNAME=otheruser LIBISCSI_CHAP_TARGET_PASSWORD=tgtsecret5678 \
		iscsi-inq -i "$INI" "iscsi://chapuser%chapsecret1234@$H/$MIQN/0"; then
		grep -q 'Wrong CHAP targetname' "$ISD_OUT" ||
			isd_fail "mutual CHAP: expected 'Wrong CHAP targetname': $(tr '\n' ' ' <"$ISD_OUT" | head -c 300)"
	fi
	isd_check_fails "mutual CHAP: wrong initiator secret is refused" \
		env LIBISCSI_CHAP_TARGET_USERNAME=tgtuser LIBISCSI_CHAP_TARGET_PASSWORD=tgtsecret5678 \
		iscsi-inq -i "$INI" "iscsi://chapuser%wrongsecret999@$H/$MIQN/0"
	isd_check "mutual CHAP: one-way CHAP still accepted" \
		iscsi-inq -i "$INI" "iscsi://chapuser%chapsecret1234@$H/$MIQN/0"
	isd_expect_alive mutual
	isd_stop mutual
else
	isd_fail "iserd starts with --mutual-chap"
fi

# --- ACL --------------------------------------------------------------------------
AIQN=iqn.2026-11.org.iserd:acl
OIQN=iqn.2026-11.org.iserd:open
if isd_start acl --target "$AIQN" --lun ram:16M --allow "$OTHER_INI" \
	--target "$OIQN" --lun ram:16M --allow "$INI"; then
	H=127.0.0.1:$ISD_PORT
	if isd_check_fails "ACL: initiator not in --allow is refused" \
		iscsi-inq -i "$INI" "iscsi://$H/$AIQN/0"; then
		if grep -q 'Authorization failure' "$ISD_OUT"; then
			isd_pass "ACL: refusal is an authorization failure (login status 0x0202)"
		else
			isd_fail "ACL: refusal is not 'Authorization failure' (0x0202): $(tr '\n' ' ' <"$ISD_OUT" | head -c 300)"
		fi
	fi
	isd_check "ACL: the allowed initiator logs in" iscsi-inq -i "$OTHER_INI" "iscsi://$H/$AIQN/0"
	isd_check "ACL: second target allows $INI" iscsi-inq -i "$INI" "iscsi://$H/$OIQN/0"
	isd_check_fails "ACL: second target refuses $OTHER_INI" iscsi-inq -i "$OTHER_INI" "iscsi://$H/$OIQN/0"
	if isd_check "ACL: discovery with two targets" iscsi-ls -i "$INI" "iscsi://$H"; then
		grep -q "^Target:$OIQN " "$ISD_OUT" && isd_pass "ACL: discovery lists the allowed target" ||
			isd_fail "ACL: discovery does not list $OIQN for $INI"
		if grep -q "^Target:$AIQN " "$ISD_OUT"; then
			echo "    note: discovery also lists $AIQN to $INI, which may not log in to it"
		fi
	fi
	isd_expect_alive acl
	isd_stop acl
else
	isd_fail "iserd starts with two targets and --allow"
fi

isd_finish
