#!/bin/bash
# `cmake --install` of the build tree into a temporary prefix, then what a
# user of the installed tree does:
#   - every file the install promises is there (daemon, iserctl,
#     iserinit, man pages, example config, unit file, library, header,
#     libiserd.pc, the CMake package);
#   - libiserd.pc is relative to its own place (no build-time prefix in it);
#   - a small program compiles and links with `pkg-config --cflags --libs
#     libiserd` and runs;
#   - a CMake project with find_package(iserd) links iserd::iserd and
#     iserd::iserd_static and runs;
#   - the installed iserinit and iserd run (--version).
# Env (from ctest): ISERD_SRC, ISERD_BUILD, ISERD_SANITIZE (ON: the consumers
# are built with the same sanitizers as the library), CC.
set -uo pipefail
src=${ISERD_SRC:?}
build=${ISERD_BUILD:?}
CC=${CC:-cc}
for t in cmake pkg-config "$CC"; do
	command -v "$t" >/dev/null 2>&1 || { echo "SKIP: $t not found"; exit 77; }
done

tmp=$(mktemp -d "${TMPDIR:-/tmp}/iserd-install.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
prefix=$tmp/prefix
fails=0
pass() { echo "PASS: $*"; }
fail() {
	echo "FAIL: $*"
	fails=$((fails + 1))
}

san=()
[ "${ISERD_SANITIZE:-OFF}" = ON ] && san=(-fsanitize=address,undefined)
# the consumers' leak checks would only see the test programs
export ASAN_OPTIONS=detect_leaks=0

if ! cmake --install "$build" --prefix "$prefix" >"$tmp/install.log" 2>&1; then
	cat "$tmp/install.log"
	echo "FAIL: cmake --install"
	exit 1
fi
pass "cmake --install --prefix $prefix"

libdir=$(sed -n 's/^CMAKE_INSTALL_LIBDIR:[A-Z]*=//p' "$build/CMakeCache.txt")
libdir=${libdir:-lib}
want=(sbin/iserd bin/iserinit "$libdir/libiserd.so.0" "$libdir/libiserd.so" "$libdir/libiserd.a"
      include/iserd/iserd.h "$libdir/pkgconfig/libiserd.pc"
      "$libdir/cmake/iserd/iserdConfig.cmake" "$libdir/cmake/iserd/iserdConfigVersion.cmake"
      "$libdir/cmake/iserd/iserdTargets.cmake" lib/systemd/system/iserd.service
      share/man/man8/iserd.8 share/man/man1/iserinit.1
      share/doc/iserd/examples/iserd.conf.example)
want+=(sbin/iserctl)
want+=(share/man/man8/iserctl.8)
missing=0
for f in "${want[@]}"; do
	[ -e "$prefix/$f" ] || { fail "installed: $f missing"; missing=1; }
done
[ "$missing" -eq 0 ] && pass "installed: ${#want[@]} files"

pc=$prefix/$libdir/pkgconfig/libiserd.pc
if grep -q '^prefix=${pcfiledir}/' "$pc" && ! grep -q "$build\|/usr/local" "$pc"; then
	pass "libiserd.pc: prefix relative to the .pc file"
else
	fail "libiserd.pc: prefix is not relative"
	cat "$pc"
fi
unit=$prefix/lib/systemd/system/iserd.service
if grep -q '^ExecStart=/.*/sbin/iserd -c /.*/iserd/iserd.conf$' "$unit"; then
	pass "iserd.service: ExecStart names the installed daemon"
else
	fail "iserd.service: ExecStart"
	grep ExecStart "$unit"
fi

# the consumer: the public API, no network
cat >"$tmp/consumer.c" <<'C'
#include <stdio.h>
#include <string.h>
#include <iserd/iserd.h>

int
main(int argc, char **argv)
{
	struct iserd_url u;
	char err[256];

	if (iserd_url_parse_full("iscsi://127.0.0.1:3261/iqn.2026-11.org.iserd:t/3", &u, err,
				 sizeof(err)) < 0 || u.lun != 3 || u.port != 3261) {
		fprintf(stderr, "url: %s\n", err);
		return 1;
	}
	if (argc > 1 && strcmp(argv[1], iserd_version()) != 0) {
		fprintf(stderr, "version %s, expected %s\n", iserd_version(), argv[1]);
		return 1;
	}
	printf("libiserd %s\n", iserd_version());
	return 0;
}
C

export PKG_CONFIG_PATH=$prefix/$libdir/pkgconfig
version=$(pkg-config --modversion libiserd)
flags=$(pkg-config --cflags --libs libiserd)
inc=$(pkg-config --variable=includedir libiserd)
lib=$(pkg-config --variable=libdir libiserd)
if [ "$(realpath -m "$inc")" = "$prefix/include" ] &&
	[ "$(realpath -m "$lib")" = "$prefix/$libdir" ]; then
	pass "pkg-config --cflags --libs libiserd: $flags"
else
	fail "pkg-config flags do not point into $prefix: $flags"
fi
# shellcheck disable=SC2086
if "$CC" "${san[@]}" -o "$tmp/consumer_pc" "$tmp/consumer.c" $flags 2>"$tmp/cc.log" &&
	LD_LIBRARY_PATH=$prefix/$libdir "$tmp/consumer_pc" "$version"; then
	pass "a program built with pkg-config links and runs"
else
	cat "$tmp/cc.log"
	fail "a program built with pkg-config"
fi

mkdir -p "$tmp/cmakeproj"
cp "$tmp/consumer.c" "$tmp/cmakeproj/"
cat >"$tmp/cmakeproj/CMakeLists.txt" <<CM
cmake_minimum_required(VERSION 3.16)
project(consumer C)
find_package(iserd $version REQUIRED)
add_executable(consumer_shared consumer.c)
target_link_libraries(consumer_shared PRIVATE iserd::iserd)
add_executable(consumer_static consumer.c)
target_link_libraries(consumer_static PRIVATE iserd::iserd_static)
CM
gen=()
command -v ninja >/dev/null 2>&1 && gen=(-G Ninja)
if cmake -S "$tmp/cmakeproj" -B "$tmp/cmakebuild" "${gen[@]}" -DCMAKE_PREFIX_PATH="$prefix" \
	-DCMAKE_C_COMPILER="$CC" -DCMAKE_C_FLAGS="${san[*]}" >"$tmp/cm.log" 2>&1 &&
	cmake --build "$tmp/cmakebuild" -j 2 >>"$tmp/cm.log" 2>&1; then
	pass "find_package(iserd $version): iserd::iserd and iserd::iserd_static link"
	if "$tmp/cmakebuild/consumer_shared" "$version" && "$tmp/cmakebuild/consumer_static" "$version"
	then
		pass "the find_package consumers run"
	else
		fail "the find_package consumers run"
	fi
	if ldd "$tmp/cmakebuild/consumer_static" | grep -q libiserd; then
		fail "consumer_static needs libiserd.so"
	fi
else
	cat "$tmp/cm.log"
	fail "find_package(iserd)"
fi
# a version it does not offer is refused (0.x: same minor only)
sed -i "s/find_package(iserd $version REQUIRED)/find_package(iserd 9.0 REQUIRED)/" \
	"$tmp/cmakeproj/CMakeLists.txt"
if cmake -S "$tmp/cmakeproj" -B "$tmp/cmakebuild2" "${gen[@]}" -DCMAKE_PREFIX_PATH="$prefix" \
	>/dev/null 2>&1; then
	fail "find_package(iserd 9.0) accepted $version"
else
	pass "find_package(iserd 9.0) refuses $version"
fi

if "$prefix/bin/iserinit" --version | grep -q "$version" &&
	"$prefix/sbin/iserd" --version | grep -q "$version"; then
	pass "installed iserinit and iserd run"
else
	fail "installed iserinit/iserd --version"
fi

if [ "$fails" -ne 0 ]; then
	echo "$fails check(s) FAILED"
	exit 1
fi
echo "all install checks passed"
