#!/bin/bash
# systemd-analyze verify on iserd.service as CMake generates it from
# packaging/iserd.service.in (this copy's ExecStart names the iserd just
# built). Documentation=man: pages are looked up in the source tree's docs/.
# Usage: test_systemd_verify.sh UNIT-FILE
set -uo pipefail
unit=${1:?usage: test_systemd_verify.sh UNIT-FILE}
src=$(cd "$(dirname "$0")/../.." && pwd)
command -v systemd-analyze >/dev/null 2>&1 || { echo "SKIP: systemd-analyze not found"; exit 77; }
command -v man >/dev/null 2>&1 || { echo "SKIP: man not found"; exit 77; }

tmp=$(mktemp -d "${TMPDIR:-/tmp}/iserd-unit.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
mkdir -p "$tmp/man/man8"
man_opt=()
for page in $(sed -n 's/^Documentation=//p' "$unit"); do
	case "$page" in
	man:*)
		p=${page#man:}
		name=${p%%(*}
		sect=${p#*(}
		sect=${sect%)}
		if [ -f "$src/docs/$name.$sect" ]; then
			mkdir -p "$tmp/man/man$sect"
			cp "$src/docs/$name.$sect" "$tmp/man/man$sect/"
		else
			echo "note: docs/$name.$sect is not in the tree yet: man pages not checked"
			man_opt=(--man=no)
		fi
		;;
	esac
done
cp "$unit" "$tmp/iserd.service"
out=$(cd "$tmp" &&
	MANPATH="$tmp/man" systemd-analyze verify "${man_opt[@]}" "$tmp/iserd.service" 2>&1)
rc=$?
# verify also reports on system units it loads (network-online.target, ...):
# only what concerns iserd.service counts, and its exit status.
mine=$(grep -i 'iserd' <<<"$out")
[ -n "$out" ] && sed 's/^/  | /' <<<"$out"
if [ "$rc" -ne 0 ] || [ -n "$mine" ]; then
	echo "FAIL: systemd-analyze verify iserd.service (status $rc)"
	exit 1
fi
grep -q '^Type=notify$' "$unit" || { echo "FAIL: not Type=notify"; exit 1; }
grep -q '^LimitMEMLOCK=infinity$' "$unit" || { echo "FAIL: LimitMEMLOCK"; exit 1; }
if grep -Eq '^(PrivateDevices=yes|DeviceAllow=|ProtectClock=yes)' "$unit"; then
	echo "FAIL: a device policy would hide /dev/infiniband"
	exit 1
fi
echo "PASS: systemd-analyze verify iserd.service"
