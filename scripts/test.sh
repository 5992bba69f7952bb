#!/bin/bash
# The whole test suite, as CI runs it:
#   1. Debian packages: build, test toolchain and the QEMU lab's (scripts/deps.sh --test --lab);
#   2. the asan preset (AddressSanitizer + UBSan) is configured and built;
#   3. when clang is there, a bounded fuzz smoke: the fuzz preset is built and each
#      libFuzzer target runs for $ISERD_FUZZ_SECONDS (default 30) s on a copy of its
#      corpus tests/fuzz/corpus/<name>; a crash fails this script (after ctest);
#   4. the tsan preset (ThreadSanitizer) is built and its unit and integration tests run,
#      each iserd on 2 reactors (ISD_TEST_REACTORS, default 2 here): the threads TSan is
#      for (the hostile tests bound iserd's RSS, which TSan's shadow memory inflates);
#   5. the hostile tests and iscsi-test-cu on a RAM and a file LUN under ASan once more, each iserd
#      on 2 reactors (the limits and counters hold, and the SCSI semantics are the same,
#      when a peer's connections land on different threads), and the kernel's ib_iser against
#      iserd on 2 reactors in the QEMU lab (its second initiator's session lands on reactor 1);
#   6. LAST, ctest, so that its summary line is the final output.
# Exit status: ctest's, or 1 when ctest passed but the fuzz smoke found a crash, the
# ThreadSanitizer run or the hostile run on 2 reactors failed.
# Env: ISERD_SKIP_DEPS=1 skips step 1, ISERD_SKIP_FUZZ=1 step 3, ISERD_SKIP_TSAN=1 step 4,
# ISERD_SKIP_REACTORS=1 step 5; ISERD_JOBS=N limits
# build parallelism; extra arguments go to ctest (e.g. -L unit, -R malformed).
set -uo pipefail
cd "$(dirname "$0")/.."

die() {
	echo "test.sh: $*" >&2
	exit 1
}

if [ "${ISERD_SKIP_DEPS:-0}" != 1 ]; then
	scripts/deps.sh --test --lab || die "scripts/deps.sh --test --lab failed"
fi

JOBS=()
[ -n "${ISERD_JOBS:-}" ] && JOBS=(-j "$ISERD_JOBS")

cmake --preset asan || die "cmake --preset asan failed"
cmake --build --preset asan "${JOBS[@]}" || die "cmake --build --preset asan failed"

fuzz_failed=0
if [ "${ISERD_SKIP_FUZZ:-0}" != 1 ] && command -v clang >/dev/null 2>&1; then
	secs=${ISERD_FUZZ_SECONDS:-30}
	if cmake --preset fuzz && cmake --build --preset fuzz "${JOBS[@]}"; then
		work=$(mktemp -d "${TMPDIR:-/tmp}/iserd-fuzz.XXXXXX")
		n=0
		shopt -s nullglob
		for bin in build/fuzz/tests/fuzz_*; do
			[ -f "$bin" ] && [ -x "$bin" ] || continue
			name=$(basename "$bin")
			n=$((n + 1))
			corpus="$work/corpus-$name"
			mkdir -p "$corpus" "$work/artifacts-$name"
			if [ -d "tests/fuzz/corpus/$name" ]; then
				cp -r "tests/fuzz/corpus/$name/." "$corpus/"
			fi
			dict=()
			[ -f "tests/fuzz/$name.dict" ] && dict=(-dict="$PWD/tests/fuzz/$name.dict")
			echo "fuzz smoke: $name for ${secs}s on a copy of tests/fuzz/corpus/$name"
			# -timeout: one input running longer than 25 s counts as a hang.
			timeout -k 10 $((secs + 120)) "$bin" -max_total_time="$secs" -timeout=25 \
				-rss_limit_mb=2048 -print_final_stats=1 "${dict[@]}" \
				-artifact_prefix="$work/artifacts-$name/" "$corpus" >"$work/$name.log" 2>&1
			rc=$?
			if [ "$rc" -ne 0 ]; then
				fuzz_failed=1
				echo "fuzz smoke: $name FAILED (status $rc); crashing inputs:"
				ls -l "$work/artifacts-$name/" 2>/dev/null
				for a in "$work/artifacts-$name"/*; do
					echo "  $a: $(od -An -tx1 -N64 "$a" | tr -s ' \n' ' ')"
				done
				tail -n 60 "$work/$name.log"
			else
				grep -E '^stat::number_of_executed_units|^#[0-9]+.*DONE' "$work/$name.log" |
					tail -n 2 | sed "s/^/fuzz smoke: $name: /"
			fi
		done
		shopt -u nullglob
		[ "$n" -gt 0 ] || echo "fuzz smoke: no fuzz targets in build/fuzz/tests; nothing to run"
		if [ "$fuzz_failed" -eq 0 ]; then
			rm -rf "$work"
		else
			echo "fuzz smoke: logs and artifacts kept in $work"
		fi
	else
		fuzz_failed=1
		echo "fuzz smoke: building the fuzz preset FAILED"
	fi
	[ "$fuzz_failed" -eq 0 ] || echo "fuzz smoke FAILED; running ctest anyway, then exiting non-zero"
else
	echo "fuzz smoke: skipped (clang not found or ISERD_SKIP_FUZZ=1)"
fi

tsan_failed=0
if [ "${ISERD_SKIP_TSAN:-0}" != 1 ]; then
	if cmake --preset tsan && cmake --build --preset tsan "${JOBS[@]}"; then
		echo "tsan: unit and integration tests under ThreadSanitizer, iserd on ${ISD_TEST_REACTORS:-2} reactors"
		ISD_TEST_REACTORS=${ISD_TEST_REACTORS:-2} \
			ctest --preset tsan -L 'unit|integration' --no-label-summary -j2 || tsan_failed=1
	else
		tsan_failed=1
		echo "tsan: building the tsan preset FAILED"
	fi
	[ "$tsan_failed" -eq 0 ] || echo "tsan FAILED; running ctest anyway, then exiting non-zero"
fi

reactors_failed=0
if [ "${ISERD_SKIP_REACTORS:-0}" != 1 ]; then
	echo "reactors: the hostile tests and iscsi-test-cu (RAM and file LUN) again, iserd on 2 reactors"
	ISD_TEST_REACTORS=2 ctest --preset asan -R '^hostile_|^interop_test_iscsi_test_cu_(ram|file)$' \
		--output-on-failure --no-label-summary -j2 || reactors_failed=1
	echo "reactors: the kernel's ib_iser over soft-RoCE (QEMU lab), iserd on 2 reactors"
	ISERD_LAB_ISERD_ARGS="--reactors 2" ctest --preset asan -R '^interop_test_kernel_iser$' \
		--output-on-failure --no-label-summary || reactors_failed=1
	[ "$reactors_failed" -eq 0 ] ||
		echo "the run on 2 reactors FAILED; running ctest anyway, then exiting non-zero"
fi

ctest --preset asan --output-on-failure --no-label-summary "$@"
rc=$?
if [ "$rc" -eq 0 ] && { [ "$fuzz_failed" -ne 0 ] || [ "$tsan_failed" -ne 0 ] ||
	[ "$reactors_failed" -ne 0 ]; }; then
	rc=1
fi
exit "$rc"
