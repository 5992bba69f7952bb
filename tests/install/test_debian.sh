#!/bin/bash
# Builds the Debian binary packages from debian/ on a copy of the tree
# (dpkg-buildpackage -b -us -uc), checks each .deb holds what it should
# (dpkg -c), and runs lintian on them: an error, or a warning that
# debian/*.lintian-overrides does not explain, fails the test.
# Takes a few minutes (a release build). Exit 77 when dpkg-buildpackage,
# debhelper or a build dependency is missing.
# Env: ISERD_SRC (the tree), ISERD_DEB_KEEP=DIR keeps the .debs there.
set -uo pipefail
src=${ISERD_SRC:-$(cd "$(dirname "$0")/../.." && pwd)}
for t in dpkg-buildpackage dh dpkg-checkbuilddeps; do
	command -v "$t" >/dev/null 2>&1 || { echo "SKIP: $t not found"; exit 77; }
done
if ! (cd "$src" && dpkg-checkbuilddeps) 2>"${TMPDIR:-/tmp}/iserd-bdeps.$$"; then
	echo "SKIP: $(cat "${TMPDIR:-/tmp}/iserd-bdeps.$$")"
	rm -f "${TMPDIR:-/tmp}/iserd-bdeps.$$"
	exit 77
fi
rm -f "${TMPDIR:-/tmp}/iserd-bdeps.$$"

tmp=$(mktemp -d "${TMPDIR:-/tmp}/iserd-deb.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
mkdir -p "$tmp/iserd"
# the tree as git sees it (tracked and new files, not build/ nor ignored ones)
if git -C "$src" rev-parse --git-dir >/dev/null 2>&1; then
	(cd "$src" && git ls-files -z --cached --others --exclude-standard |
		xargs -0 -I{} sh -c '[ -e "$1" ] && printf "%s\0" "$1"' _ {} |
		tar --null -T - -cf -) | tar -xf - -C "$tmp/iserd"
else
	tar -C "$src" --exclude=./build --exclude=./.git -cf - . | tar -xf - -C "$tmp/iserd"
fi

fails=0
pass() { echo "PASS: $*"; }
fail() {
	echo "FAIL: $*"
	fails=$((fails + 1))
}

jobs=${ISERD_JOBS:-2}
echo "dpkg-buildpackage -b -us -uc (parallel=$jobs) in $tmp/iserd"
if ! (cd "$tmp/iserd" && DEB_BUILD_OPTIONS="parallel=$jobs nocheck" \
	dpkg-buildpackage -b -us -uc) >"$tmp/build.log" 2>&1; then
	tail -n 60 "$tmp/build.log"
	echo "FAIL: dpkg-buildpackage -b"
	exit 1
fi
pass "dpkg-buildpackage -b -us -uc"
grep -E '^dpkg-gensymbols: warning|^dh_missing|^dh_install: warning' "$tmp/build.log" |
	sed 's/^/  | /'

arch=$(dpkg --print-architecture)
ma=$(dpkg-architecture -qDEB_HOST_MULTIARCH)
ver=$(cd "$tmp/iserd" && dpkg-parsechangelog -S Version)
# has PACKAGE PATH...: the .deb contains each path (regex on dpkg -c's names)
has() {
	local pkg=$1 deb
	shift
	deb=$tmp/${pkg}_${ver}_${arch}.deb
	if [ ! -f "$deb" ]; then
		fail "$pkg: no ${pkg}_${ver}_${arch}.deb"
		return
	fi
	dpkg -c "$deb" | awk '{print $6}' | sed 's#^\./#/#' >"$tmp/$pkg.list"
	local p ok=1
	for p in "$@"; do
		grep -Eq "^$p\$" "$tmp/$pkg.list" || { fail "$pkg: no $p"; ok=0; }
	done
	[ "$ok" = 1 ] && pass "$pkg: ${*}"
}
has iserd /usr/sbin/iserd /lib/systemd/system/iserd.service /usr/share/man/man8/iserd.8.gz \
	/usr/share/doc/iserd/examples/iserd.conf.example /usr/share/doc/iserd/copyright
has iserd /usr/sbin/iserctl
has iserd /usr/share/man/man8/iserctl.8.gz
has iserinit /usr/bin/iserinit /usr/share/man/man1/iserinit.1.gz
has libiserd0 "/usr/lib/$ma/libiserd.so.0" "/usr/lib/$ma/libiserd.so.0\\..*"
has libiserd-dev /usr/include/iserd/iserd.h "/usr/lib/$ma/libiserd.so" "/usr/lib/$ma/libiserd.a" \
	"/usr/lib/$ma/pkgconfig/libiserd.pc" "/usr/lib/$ma/cmake/iserd/iserdConfig.cmake" \
	"/usr/lib/$ma/cmake/iserd/iserdConfigVersion.cmake" \
	"/usr/lib/$ma/cmake/iserd/iserdTargets.cmake"
# the service is enabled by the maintainer scripts (dh_installsystemd)
if dpkg-deb -e "$tmp/iserd_${ver}_${arch}.deb" "$tmp/ctl" 2>/dev/null &&
	grep -q 'deb-systemd-helper.*enable.*iserd.service\|iserd.service' "$tmp/ctl/postinst"; then
	pass "iserd: postinst enables iserd.service"
else
	fail "iserd: postinst does not handle iserd.service"
fi
# the library's dependencies reach the packages (shlibs)
if dpkg-deb -f "$tmp/iserinit_${ver}_${arch}.deb" Depends | grep -q 'libiserd0'; then
	pass "iserinit depends on libiserd0"
else
	fail "iserinit does not depend on libiserd0"
fi

if command -v lintian >/dev/null 2>&1; then
	changes=$(ls "$tmp"/iserd_*.changes)
	# --fail-on error,warning: overridden tags do not count
	if lintian --fail-on error,warning --display-info --show-overrides "$changes" \
		>"$tmp/lintian.log" 2>&1; then
		pass "lintian: no error, no warning that is not overridden"
	else
		fail "lintian"
	fi
	sed 's/^/  | /' "$tmp/lintian.log"
else
	echo "note: lintian not installed: packages not checked"
fi

if [ -n "${ISERD_DEB_KEEP:-}" ]; then
	mkdir -p "$ISERD_DEB_KEEP"
	cp "$tmp"/*.deb "$ISERD_DEB_KEEP"/
fi
if [ "$fails" -ne 0 ]; then
	echo "$fails check(s) FAILED"
	exit 1
fi
echo "all package checks passed"
