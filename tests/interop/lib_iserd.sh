# shellcheck shell=bash
# Shared helpers for the shell tests under tests/integration and tests/interop.
# Source it, then:
#   isd_init                      checks $ISERD, makes $ISD_TMP, installs the EXIT trap
#   isd_require_tools T...        exit 77 (skipped) unless every tool T is on PATH
#   isd_start NAME [ARGS...]      starts "$ISERD --portal tcp://127.0.0.1:PORT ARGS..." on a
#                                 free port; sets ISD_PORT and ISD_PORT_OF[NAME]
#   isd_stop NAME                 SIGTERM, expects exit 0 within 10 s and a clean log
#   isd_alive NAME                true while that instance runs
#   isd_check DESC CMD...         runs CMD (bounded by $ISD_CMD_TIMEOUT), records PASS/FAIL
#   isd_check_fails DESC CMD...   same, but CMD must fail
#   isd_pass/isd_fail DESC        record a result by hand
#   isd_finish                    prints totals and exits 0/1
# Each iserd instance gets its own log; any failure prints the logs at exit.
# Only PIDs started here are ever signalled.

set -u

ISERD=${ISERD:-}
ISERD_SRC=${ISERD_SRC:-$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)}
ISERD_BUILD=${ISERD_BUILD:-}
ISD_CMD_TIMEOUT=${ISD_CMD_TIMEOUT:-60}
ISD_TMP=
ISD_PORT=
ISD_NPASS=0
ISD_NFAIL=0
ISD_FAILED_NAMES=()
declare -A ISD_PID_OF=()
declare -A ISD_PORT_OF=()
declare -A ISD_LOG_OF=()
ISD_ALL_LOGS=()

export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=0:print_summary=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
export LSAN_OPTIONS=${LSAN_OPTIONS:-}

isd_log() { printf '[%s] %s\n' "$(date +%H:%M:%S)" "$*"; }

isd_skip() {
	echo "SKIP: $*"
	exit 77
}

isd_require_tools() {
	local t
	for t in "$@"; do
		command -v "$t" >/dev/null 2>&1 || isd_skip "$t not installed"
	done
}

isd_init() {
	if [ -z "$ISERD" ]; then
		local c
		for c in "${ISERD_BUILD:-/nonexistent}/iserd" "$ISERD_SRC/build/asan/iserd" \
		         "$ISERD_SRC/build/debug/iserd"; do
			if [ -x "$c" ]; then ISERD=$c; break; fi
		done
	fi
	if [ -z "$ISERD" ] || [ ! -x "$ISERD" ]; then
		echo "FAIL: iserd binary not found (ISERD='${ISERD}')" >&2
		exit 1
	fi
	ISD_TMP=$(mktemp -d "${TMPDIR:-/tmp}/iserd-test.XXXXXX")
	trap isd_cleanup EXIT
	trap 'exit 130' INT
	trap 'exit 143' TERM
}

# Prints the tail ($ISD_LOG_TAIL lines, default 200) of every iserd log, once
# (called on failure).
ISD_LOGS_DUMPED=0
isd_dump_logs() {
	local l n=${ISD_LOG_TAIL:-200}
	[ "$ISD_LOGS_DUMPED" = 0 ] || return 0
	ISD_LOGS_DUMPED=1
	for l in "${ISD_ALL_LOGS[@]}"; do
		[ -f "$l" ] || continue
		echo "----- iserd log: $(basename "$l") (last $n lines) -----"
		tail -n "$n" "$l"
		echo "----- end of log -----"
	done
}

isd_cleanup() {
	local rc=$? name
	trap - EXIT
	for name in "${!ISD_PID_OF[@]}"; do
		isd_stop "$name" || true
	done
	if [ "$ISD_NFAIL" -gt 0 ] && [ "$rc" -eq 0 ]; then
		rc=1
	fi
	if [ "$rc" -ne 0 ] && [ "$rc" -ne 77 ]; then
		isd_dump_logs
	fi
	if [ -n "$ISD_TMP" ] && [ -d "$ISD_TMP" ]; then
		if [ "$rc" -ne 0 ] && [ "$rc" -ne 77 ] && [ -n "${ISD_KEEP_TMP:-}" ]; then
			echo "keeping $ISD_TMP"
		else
			rm -rf "$ISD_TMP"
		fi
	fi
	exit "$rc"
}

# True when something listens on 127.0.0.1:$1.
isd_port_listening() {
	local port=$1
	if command -v ss >/dev/null 2>&1; then
		ss -Hltn "sport = :$port" 2>/dev/null | grep -q .
	else
		(exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null
	fi
}

isd_alive() {
	local pid=${ISD_PID_OF[$1]:-}
	[ -n "$pid" ] && kill -0 "$pid" 2>/dev/null
}

# isd_start NAME [iserd args...]: the portal is added here.
isd_start() {
	local name=$1
	shift
	local try port pid log i
	if [ -n "${ISD_PID_OF[$name]:-}" ]; then
		echo "isd_start: instance $name already running" >&2
		return 1
	fi
	for try in 1 2 3 4 5 6 7 8; do
		port=$((3300 + RANDOM % 700))
		if isd_port_listening "$port"; then
			continue
		fi
		log="$ISD_TMP/iserd-$name-$try.log"
		ISD_ALL_LOGS+=("$log")
		isd_log "starting iserd [$name] on 127.0.0.1:$port: $ISERD --portal tcp://127.0.0.1:$port $*"
		"$ISERD" --portal "tcp://127.0.0.1:$port" "$@" >"$log" 2>&1 &
		pid=$!
		# Bounded wait (20 s; an ASan build starting a 1G RAM LUN can be slow).
		for i in $(seq 1 200); do
			if ! kill -0 "$pid" 2>/dev/null; then
				break
			fi
			if isd_port_listening "$port"; then
				ISD_PID_OF[$name]=$pid
				ISD_PORT_OF[$name]=$port
				ISD_LOG_OF[$name]=$log
				ISD_PORT=$port
				return 0
			fi
			sleep 0.1
		done
		if kill -0 "$pid" 2>/dev/null; then
			echo "isd_start: iserd [$name] pid $pid did not listen on $port within 20 s" >&2
			kill -KILL "$pid" 2>/dev/null
			wait "$pid" 2>/dev/null
			tail -n 50 "$log" >&2
			return 1
		fi
		wait "$pid" 2>/dev/null
		local st=$?
		if grep -qi 'in use' "$log"; then
			isd_log "port $port busy, retrying"
			continue
		fi
		echo "isd_start: iserd [$name] exited with status $st before listening:" >&2
		tail -n 50 "$log" >&2
		return 1
	done
	echo "isd_start: no free port found" >&2
	return 1
}

# Greps a log for sanitizer reports.
isd_log_has_sanitizer_report() {
	grep -Eq 'ERROR: (AddressSanitizer|LeakSanitizer)|runtime error:|SUMMARY: (Address|Undefined|Leak)Sanitizer' "$1"
}

# isd_stop NAME: SIGTERM; must exit 0 within 10 s without sanitizer reports.
isd_stop() {
	local name=$1
	local pid=${ISD_PID_OF[$name]:-} log=${ISD_LOG_OF[$name]:-} i st
	[ -n "$pid" ] || return 0
	unset "ISD_PID_OF[$name]"
	if ! kill -0 "$pid" 2>/dev/null; then
		wait "$pid" 2>/dev/null
		st=$?
		isd_fail "iserd [$name] had already exited (status $st) before SIGTERM"
		return 1
	fi
	kill -TERM "$pid" 2>/dev/null
	for i in $(seq 1 100); do
		kill -0 "$pid" 2>/dev/null || break
		sleep 0.1
	done
	if kill -0 "$pid" 2>/dev/null; then
		kill -KILL "$pid" 2>/dev/null
		wait "$pid" 2>/dev/null
		isd_fail "iserd [$name] did not exit within 10 s of SIGTERM"
		return 1
	fi
	wait "$pid" 2>/dev/null
	st=$?
	if [ "$st" -ne 0 ]; then
		isd_fail "iserd [$name] exited with status $st after SIGTERM"
		return 1
	fi
	if [ -n "$log" ] && isd_log_has_sanitizer_report "$log"; then
		isd_fail "iserd [$name] log has a sanitizer report"
		return 1
	fi
	isd_pass "iserd [$name] stopped cleanly on SIGTERM"
	return 0
}

isd_pass() {
	ISD_NPASS=$((ISD_NPASS + 1))
	echo "PASS: $*"
}

isd_fail() {
	ISD_NFAIL=$((ISD_NFAIL + 1))
	ISD_FAILED_NAMES+=("$*")
	echo "FAIL: $*"
}

# isd_run_bounded OUTFILE CMD...: runs CMD with a timeout, output to OUTFILE.
isd_run_bounded() {
	local out=$1
	shift
	timeout -k 5 "$ISD_CMD_TIMEOUT" "$@" >"$out" 2>&1
}

# isd_check DESC CMD...: CMD must succeed. Output is kept in $ISD_OUT.
isd_check() {
	local desc=$1
	shift
	local st
	ISD_OUT="$ISD_TMP/out.$RANDOM"
	isd_run_bounded "$ISD_OUT" "$@"
	st=$?
	if [ "$st" -eq 0 ]; then
		isd_pass "$desc"
		return 0
	fi
	isd_fail "$desc (status $st: $*)"
	sed 's/^/    | /' "$ISD_OUT" | tail -n 40
	return 1
}

# isd_check_fails DESC CMD...: CMD must fail (not time out).
isd_check_fails() {
	local desc=$1
	shift
	local st
	ISD_OUT="$ISD_TMP/out.$RANDOM"
	isd_run_bounded "$ISD_OUT" "$@"
	st=$?
	if [ "$st" -eq 0 ]; then
		isd_fail "$desc (expected failure, but it succeeded: $*)"
		sed 's/^/    | /' "$ISD_OUT" | tail -n 40
		return 1
	fi
	if [ "$st" -eq 124 ] || [ "$st" -eq 137 ]; then
		isd_fail "$desc (timed out instead of failing: $*)"
		return 1
	fi
	isd_pass "$desc"
	return 0
}

# isd_expect_alive NAME: records a failure if the instance died.
isd_expect_alive() {
	if isd_alive "$1"; then
		return 0
	fi
	isd_fail "iserd [$1] is no longer running"
	return 1
}

isd_finish() {
	local name
	# Stop what still runs first, so that its exit is checked and the logs are
	# printed before the totals, which stay the last lines.
	for name in "${!ISD_PID_OF[@]}"; do
		isd_stop "$name"
	done
	[ "$ISD_NFAIL" -eq 0 ] || isd_dump_logs
	echo "==== $(basename "$0"): $ISD_NPASS passed, $ISD_NFAIL failed"
	local f
	for f in "${ISD_FAILED_NAMES[@]}"; do
		echo "  failed: $f"
	done
	[ "$ISD_NFAIL" -eq 0 ] && exit 0
	exit 1
}
