#!/bin/bash
# Runs iscsi-test-cu so that a crash of the tool itself (the client, not the target) loses only the
# test it crashed in: the filter runs as one invocation; when iscsi-test-cu dies from a signal, the
# log gets a marker line
#     #### CLIENT CRASH: signal 11 (SIGSEGV) in ALL.Suite.Test
# and the run goes on after that test: the rest of the crashed suite test by test, the suites after
# it suite by suite (a suite that crashes again is split the same way). compare_test_cu.py turns a
# marked test into a failure "client crashed (SIGSEGV)" and adds up the CUnit summaries of all
# invocations. A crash outside any test (after CUnit's run summary, at exit; or between two tests,
# in a suite's clean-up or set-up) gets an "at exit"/"between tests"/"before the first test"
# marker: no result is lost (the rest is rerun), and the comparison counts these apart. A crash
# before the first test (start-up: iscsi-test-cu's probing, a suite's set-up logins) is retried twice
# with the same pattern; a family is then split into suites, and a suite (or test) whose start-up
# still crashes is recorded as "not run" with the names of its tests.
#
# Usage: test_cu_resume.sh LOG LIMIT_S FILTER -- iscsi-test-cu ARGS... (ARGS without -t)
# FILTER is FAMILY[.SUITE[.TEST]] (default ALL), or several of them separated by commas. Exit: 0 when every invocation ended on its own
# (test failures are for the comparison to judge), 124 when LIMIT_S ran out (the log then ends inside
# the test that was running), 2 on usage errors. Works on the host and in the lab guest.
set -u
[ $# -ge 5 ] && [ "$4" = "--" ] || { echo "usage: $0 LOG LIMIT_S FILTER -- iscsi-test-cu ARGS..." >&2; exit 2; }
LOG=$1 LIMIT=$2 FILTER=${3:-ALL}
shift 4
CMD=("$@")
START=$SECONDS
: > "$LOG"

# every test the filter covers, in iscsi-test-cu's order (FAMILY.SUITE.TEST)
# (no process substitution: the lab guest has no /dev/fd; test names hold no blanks or globs)
IFS=, read -r -a FILTERS <<< "$FILTER"
# shellcheck disable=SC2207
ALL_TESTS=($("${CMD[0]}" -l 2>/dev/null | awk -F. 'NF == 3' | while read -r t; do
	for f in "${FILTERS[@]}"; do
		# shellcheck disable=SC2053
		[[ $t == $f || $t == $f.* || $t == $f.*.* ]] && { echo "$t"; break; }
	done
done))
[ ${#ALL_TESTS[@]} -gt 0 ] || { echo "test_cu_resume: no test matches '$FILTER' (iscsi-test-cu -l)" >&2; exit 2; }

covered() {  # PATTERN: the tests PATTERN covers (FAMILY, FAMILY.SUITE or FAMILY.SUITE.TEST)
	local t
	for t in "${ALL_TESTS[@]}"; do
		# shellcheck disable=SC2053
		case $1 in
		*.*.*) [[ $t == $1 ]] && echo "$t" ;;
		*.*) [[ ${t%.*} == $1 ]] && echo "$t" ;;
		*) [[ ${t%%.*} == $1 ]] && echo "$t" ;;
		esac
	done
}

signame() { kill -l "$1" 2>/dev/null || echo "?"; }
CRASHES=0 INVOCATIONS=0
declare -A TRIES  # start-up crashes per pattern
QUEUE=("${FILTERS[@]}")
while [ ${#QUEUE[@]} -gt 0 ]; do
	pat=${QUEUE[0]}
	QUEUE=("${QUEUE[@]:1}")
	left=$((LIMIT - (SECONDS - START)))
	if [ $left -le 0 ]; then
		echo "#### TIME LIMIT: ${LIMIT}s spent before $pat" >> "$LOG"
		exit 124
	fi
	chunk=$(mktemp)
	INVOCATIONS=$((INVOCATIONS + 1))
	# unbuffered: CUnit prints "  Test: NAME ..." without a newline before the test runs, and a
	# line-buffered stdout would lose the name of the test that crashes
	timeout -k 10 "$left" stdbuf -o0 -e0 "${CMD[@]}" -t "$pat" > "$chunk" 2>&1
	rc=$?
	cat "$chunk" >> "$LOG"
	[ -z "$(tail -c 1 "$chunk")" ] || echo >> "$LOG"  # a crash mid-line: markers start a line
	if [ $rc = 124 ] || [ $rc = 137 ]; then
		rm -f "$chunk"; exit 124
	fi
	if [ $rc -le 128 ] || [ $rc -ge 160 ]; then
		rm -f "$chunk"; continue
	fi
	# died from a signal: where?
	sig=$((rc - 128)) SIG="SIG$(signame $((rc - 128)))"
	fam=${pat%%.*}
	CRASHES=$((CRASHES + 1))
	if grep -q "^Tests completed with return value" "$chunk"; then
		# after CUnit's summary: libiscsi's clean-up at exit, every result is in; nothing to rerun
		echo "#### CLIENT CRASH: signal $sig ($SIG) at exit of -t $pat, after its run summary" >> "$LOG"
		echo "test_cu_resume: iscsi-test-cu -t $pat died with signal $sig ($SIG) at exit, after its summary" >&2
		rm -f "$chunk"; continue
	fi
	suite=$(awk '/^Suite: /{s=$2} END{print s}' "$chunk")
	# the test that was running: the last "Test:" line, unless a result followed it
	last=$(awk '/^Suite: /{s=$2; t=""} /^  Test: /{t=$2; done=0} /(passed|FAILED)[[:space:]]*$/{done=1}
		END{if (!done) print t}' "$chunk")
	after=$(awk '/^  Test: /{t=$2} END{print t}' "$chunk")
	rm -f "$chunk"
	if [ -n "$last" ]; then
		crashed=$fam.$suite.$last
		echo "#### CLIENT CRASH: signal $sig ($SIG) in $crashed" >> "$LOG"
	elif [ -n "$after" ]; then
		crashed=  # between tests (a suite's clean-up or set-up): no result lost, run the rest
		echo "#### CLIENT CRASH: signal $sig ($SIG) between tests of -t $pat, after $fam.$suite.$after had finished" >> "$LOG"
	elif [ "${TRIES[$pat]:-0}" -lt 2 ]; then
		# before any test (iscsi-test-cu's start-up logins and probing): no test ran, try again
		TRIES[$pat]=$((${TRIES[$pat]:-0} + 1))
		echo "#### CLIENT CRASH: signal $sig ($SIG) before the first test of -t $pat (start-up; trying again)" >> "$LOG"
		echo "test_cu_resume: iscsi-test-cu -t $pat died with signal $sig ($SIG) before its first test; again" >&2
		QUEUE=("$pat" "${QUEUE[@]}")
		continue
	elif [ "${pat#*.}" = "$pat" ]; then
		crashed=  # before the first test of a family: run it suite by suite
		echo "#### CLIENT CRASH: signal $sig ($SIG) before the first test of -t $pat" >> "$LOG"
	else
		# a suite (or test) whose start-up crashed the client three times: its tests never ran
		# shellcheck disable=SC2046
		echo "#### CLIENT CRASH: signal $sig ($SIG) at start-up of -t $pat, 3 times; not run:" \
			$(covered "$pat") >> "$LOG"
		echo "test_cu_resume: iscsi-test-cu -t $pat: start-up crashed 3 times ($SIG); its tests did not run" >&2
		continue
	fi
	echo "test_cu_resume: iscsi-test-cu -t $pat died with signal $sig ($SIG) in ${crashed:-no test}" >&2
	# what PATTERN covered after the crashed test: same suite test by test, later suites one by one
	from=$crashed
	[ -z "$crashed" ] && [ -n "$after" ] && from=$fam.$suite.$after
	# shellcheck disable=SC2207
	rest=($(covered "$pat" | awk -v c="$from" 'c == "" || seen; $0 == c {seen = 1}'))
	[ -z "$crashed" ] && [ "$pat" != "${pat#*.*.}" ] && rest=()
	next=() prev_suite=
	for t in "${rest[@]}"; do
		s=${t%.*}
		if [ -n "$from" ] && [ "$s" = "${from%.*}" ] || [ "${pat#*.}" != "$pat" ]; then
			next+=("$t")  # the crashed suite, or a suite-level pattern: test by test
		elif [ "$s" != "$prev_suite" ]; then
			next+=("$s")
		fi
		prev_suite=$s
	done
	QUEUE=("${next[@]}" "${QUEUE[@]}")
done
echo "#### RUN END: $INVOCATIONS invocation(s) of iscsi-test-cu, $CRASHES client crash(es), $((SECONDS - START)) s" >> "$LOG"
exit 0
