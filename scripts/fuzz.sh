#!/usr/bin/env bash
# Runs the libFuzzer targets for a chosen time each (or a number of runs).
#
#   scripts/fuzz.sh [SECONDS | -runs=N] [NAME...]
#
# Builds the fuzz preset (clang, ASan+UBSan, libFuzzer), then runs each named
# target (default: every build/fuzz/tests/fuzz_*; a NAME may omit "fuzz_") on
# a copy of its seed corpus tests/fuzz/corpus/<name>, SECONDS (default 60)
# each, one after the other, and prints executions and executions per second
# per target. A crash, leak, timeout (-timeout, default 25 s per input) or
# out-of-memory stops that target: its artifact (the input that did it) and
# log are kept and the script exits 1 after the others ran.
#
# Env: ISERD_FUZZ_WORK=DIR keeps the work there (default a fresh mktemp dir,
# removed when everything passed); ISERD_FUZZ_JOBS=N runs N libFuzzer jobs
# per target (-jobs/-workers; default 1); tests/fuzz/<name>.dict, when there,
# is the target's dictionary (-dict); ISERD_FUZZ_ARGS adds libFuzzer
# options; ISERD_FUZZ_MERGE=1 merges the new inputs each run found back into
# tests/fuzz/corpus/<name> (-merge=1: only inputs that add coverage) for a
# person to review and commit; ISERD_JOBS=N limits build parallelism.
set -uo pipefail
cd "$(dirname "$0")/.."

limit=(-max_total_time=60)
label="60 s"
if [ $# -gt 0 ]; then
	case "$1" in
	-runs=*) limit=("$1"); label="${1#-runs=} runs"; shift ;;
	[0-9]*) limit=(-max_total_time="$1"); label="$1 s"; shift ;;
	esac
fi
JOBS=()
[ -n "${ISERD_JOBS:-}" ] && JOBS=(-j "$ISERD_JOBS")

cmake --preset fuzz >/dev/null || exit 1
cmake --build --preset fuzz "${JOBS[@]}" || { echo "fuzz.sh: building the fuzz preset FAILED"; exit 1; }

targets=()
if [ $# -gt 0 ]; then
	for n in "$@"; do
		case "$n" in fuzz_*) ;; *) n="fuzz_$n" ;; esac
		[ -x "build/fuzz/tests/$n" ] || { echo "fuzz.sh: no target $n in build/fuzz/tests"; exit 2; }
		targets+=("$n")
	done
else
	for b in build/fuzz/tests/fuzz_*; do
		[ -f "$b" ] && [ -x "$b" ] && targets+=("$(basename "$b")")
	done
fi
[ ${#targets[@]} -gt 0 ] || { echo "fuzz.sh: no fuzz targets"; exit 2; }

work=${ISERD_FUZZ_WORK:-$(mktemp -d "${TMPDIR:-/tmp}/iserd-fuzz.XXXXXX")}
mkdir -p "$work"
njobs=${ISERD_FUZZ_JOBS:-1}
failed=0
summary=()
for name in "${targets[@]}"; do
	corpus="$work/corpus-$name"
	art="$work/artifacts-$name"
	log="$work/$name.log"
	rm -rf "$corpus" "$art"
	mkdir -p "$corpus" "$art"
	[ -d "tests/fuzz/corpus/$name" ] && cp -r "tests/fuzz/corpus/$name/." "$corpus/"
	echo "fuzz.sh: $name for $label on a copy of tests/fuzz/corpus/$name ($njobs job(s))"
	par=()
	[ "$njobs" -gt 1 ] && par=(-jobs="$njobs" -workers="$njobs")
	# a target's dictionary (method and parameter names...), when it has one
	[ -f "tests/fuzz/$name.dict" ] && par+=(-dict="$PWD/tests/fuzz/$name.dict")
	# shellcheck disable=SC2086
	(cd "$work" && "$OLDPWD/build/fuzz/tests/$name" "${limit[@]}" -timeout=25 \
		-rss_limit_mb=2048 -print_final_stats=1 -artifact_prefix="$art/" \
		"${par[@]}" ${ISERD_FUZZ_ARGS:-} "$corpus") >"$log" 2>&1
	rc=$?
	# with -jobs, the statistics are in fuzz-N.log of each job
	execs=0
	rate=0
	for l in "$log" "$work"/fuzz-*.log; do
		[ -f "$l" ] || continue
		e=$(sed -n 's/^stat::number_of_executed_units: *//p' "$l" | tail -n 1)
		r=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$l" | tail -n 1)
		execs=$((execs + ${e:-0}))
		rate=$((rate + ${r:-0}))
	done
	rm -f "$work"/fuzz-*.log
	if [ "$rc" -ne 0 ] || compgen -G "$art/*" >/dev/null; then
		failed=1
		summary+=("$name: FAILED (status $rc) after $execs executions; log $log")
		echo "fuzz.sh: $name FAILED (status $rc); artifacts:"
		for a in "$art"/*; do
			[ -f "$a" ] && echo "  $a: $(od -An -tx1 -N64 "$a" | tr -s ' \n' ' ')"
		done
		grep -m 3 -E "ERROR|SUMMARY|runtime error" "$log" | sed 's/^/  /'
	else
		summary+=("$name: $execs executions, $rate exec/s, no finding")
	fi
	if [ "${ISERD_FUZZ_MERGE:-0}" = 1 ]; then
		mkdir -p "tests/fuzz/corpus/$name"
		"build/fuzz/tests/$name" -merge=1 "tests/fuzz/corpus/$name" "$corpus" \
			>>"$log" 2>&1 || echo "fuzz.sh: merging into tests/fuzz/corpus/$name failed"
	fi
done
echo "fuzz.sh: summary ($label per target)"
for s in "${summary[@]}"; do
	echo "  $s"
done
if [ "$failed" -eq 0 ] && [ -z "${ISERD_FUZZ_WORK:-}" ]; then
	rm -rf "$work"
else
	echo "fuzz.sh: logs, corpora and artifacts in $work"
fi
exit "$failed"
