# shellcheck shell=bash
# The host-side test harness: every shell test (tests/integration, tests/interop,
# tests/conformance) and the lab benchmarks (bench/*_lab.sh) source this file.
#
# iserd on loopback (tests/integration, tests/conformance):
#   isd_init                      checks $ISERD, makes $ISD_TMP, installs the EXIT trap
#   isd_require_tools T...        exit 77 (skipped) unless every tool T is on PATH
#   isd_start NAME [ARGS...]      starts "$ISERD --portal tcp://127.0.0.1:PORT ARGS..." on a
#                                 free port, with its own control socket ISD_CTL_OF[NAME] in
#                                 $ISD_TMP; sets ISD_PORT and ISD_PORT_OF[NAME]. With
#                                 ISD_TEST_REACTORS=N set, adds --reactors N (unless ARGS
#                                 name a count themselves): the same tests on N reactors
#   isd_stop NAME                 SIGTERM, expects exit 0 within 10 s and a clean log
#   isd_alive NAME                true while that instance runs
#   isd_check DESC CMD...         runs CMD (bounded by $ISD_CMD_TIMEOUT), records PASS/FAIL
#   isd_check_fails DESC CMD...   same, but CMD must fail
#   isd_pass/isd_fail DESC        record a result by hand
#   isd_finish                    prints totals and exits 0/1
#   ISD_CLEANUP_HOOKS+=(FN)       FN runs at exit, after the iserd instances stop and before
#                                 $ISD_TMP goes (tests/lib/ceph.sh's cluster: isd_ceph_stop)
# Each iserd instance gets its own log; any failure prints the logs at exit.
# Only PIDs started here are ever signalled.
#
# The QEMU lab (tests/lab), host side (tests/interop wrappers, bench/*_lab.sh):
#   isd_lab_init [BINARY...]      finds iserd ($ISERD, else $ISERD_BUILD/iserd, else build/iserd);
#                                 exit 1 if it or a named extra binary is missing
#   isd_lab_need_iser             exit 77 (skipped) unless this iserd offers iser:// portals
#   isd_lab_fabric                FABRIC (ISERD_LAB_FABRIC: rxe, the default, or siw), its name
#                                 ISD_LAB_FABRIC_NAME and the setup arguments ISD_LAB_SETUP_ARGS
#   isd_lab_setup [ARGS...]       tests/lab/setup.sh ARGS; exit 77 when the lab cannot run on this
#                                 machine, 1 when setup fails
#   isd_lab_outdir DIR            empties DIR for the run's files; OUTD=DIR
#   isd_lab_build NAME LIBS...    builds tests/integration/NAME.c for the guest into $OUTD (the
#                                 guest runs host binaries); adds it to ISD_LAB_FILES; 1 on failure
#   isd_lab_run TIMEOUT JOB ARGS...  boots the VM on tests/lab/JOB (ARGS go to vmrun.sh, with
#                                 ISD_LAB_FILES first), bounded by LAB_TIMEOUT or TIMEOUT seconds;
#                                 prints the job's step results and timings; ISD_LAB_RC = exit
#   isd_lab_passed                true when the job exited 0 with RESULT PASS
#   isd_lab_fail FILE:TITLE:LINES...  says why the run failed, prints the tails of those files
#                                 of $OUTD (and the console when the guest never finished), exit 1
# Lab benchmarks (bench/*_lab.sh; results on stdout, progress on stderr):
#   isd_bench_setup FABRIC        tests/lab/setup.sh --quiet for rxe or siw; exits with its status
#   isd_bench_header LINE EXTRA   the "# ..." header: command, host, other guests, source, EXTRA
#   isd_bench_run TIMEOUT JOB ARGS...  boots the VM on tests/lab/JOB into $OUTD/vm, prints the
#                                 guest's bench.txt, its steps and the wall time; returns the status

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
declare -A ISD_CTL_OF=()
ISD_ALL_LOGS=()
ISD_CLEANUP_HOOKS=()

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
	for name in "${ISD_CLEANUP_HOOKS[@]}"; do
		"$name" || true
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
	if [ -n "${ISD_TEST_REACTORS:-}" ] && [[ " $* " != *" --reactors "* ]]; then
		set -- "$@" --reactors "$ISD_TEST_REACTORS"
	fi
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
		isd_log "starting iserd [$name] on 127.0.0.1:$port: $ISERD --portal tcp://127.0.0.1:$port $* --control-socket $ISD_TMP/$name.sock"
		# each instance its own control socket (ISD_CTL_OF[NAME]), never the system's
		"$ISERD" --portal "tcp://127.0.0.1:$port" "$@" --control-socket "$ISD_TMP/$name.sock" \
			>"$log" 2>&1 &
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
				ISD_CTL_OF[$name]=$ISD_TMP/$name.sock
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
	grep -Eq 'ERROR: (AddressSanitizer|LeakSanitizer)|WARNING: ThreadSanitizer|runtime error:|SUMMARY: (Address|Undefined|Leak|Thread)Sanitizer' "$1"
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

# ---------------------------------------------------------------- the QEMU lab, host side

ISD_LAB=$ISERD_SRC/tests/lab
ISD_LAB_FILES=()
ISD_LAB_RC=
ISD_LAB_T_SETUP=?

isd_secs() { date +%s.%N; }
isd_dt() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.1f", b - a }'; }

isd_lab_init() {
	local b
	ISERD=${ISERD:-${ISERD_BUILD:-$ISERD_SRC/build}/iserd}
	[ -x "$ISERD" ] || { echo "FAIL: no iserd binary at '$ISERD' (set ISERD)"; exit 1; }
	for b in "$@"; do
		[ -x "$b" ] || { echo "FAIL: no binary at '$b'"; exit 1; }
	done
}

isd_lab_need_iser() {
	# the whole text first: grep -q stops reading at its match, and under
	# pipefail the SIGPIPE iserd then gets would read as "not offered"
	local help
	help=$("$ISERD" --help 2>&1)
	if ! grep -q 'iser://' <<<"$help"; then
		echo "SKIP: this iserd build does not offer iser:// portals (see iserd --help)"
		exit 77
	fi
}

isd_lab_fabric() {
	FABRIC=${ISERD_LAB_FABRIC:-rxe}
	case $FABRIC in
	rxe) ISD_LAB_SETUP_ARGS=() ISD_LAB_FABRIC_NAME="soft-RoCE" ;;
	siw) ISD_LAB_SETUP_ARGS=(--siw) ISD_LAB_FABRIC_NAME="soft-iWARP" ;;
	*) echo "FAIL: ISERD_LAB_FABRIC must be rxe or siw"; exit 1 ;;
	esac
}

isd_lab_setup() {
	local t0 rc
	echo "== lab setup"
	t0=$(isd_secs)
	bash "$ISD_LAB/setup.sh" "$@"
	rc=$?
	ISD_LAB_T_SETUP=$(isd_dt "$t0" "$(isd_secs)")
	case $rc in
	0) echo "lab setup done in ${ISD_LAB_T_SETUP}s" ;;
	77) echo "SKIP: the QEMU lab cannot be set up on this machine (reason above)"; exit 77 ;;
	*) echo "FAIL: lab setup failed (exit $rc)"; exit 1 ;;
	esac
}

isd_lab_outdir() {
	OUTD=$1
	rm -rf "$OUTD"
	mkdir -p "$OUTD"
}

isd_lab_build() {
	local name=$1
	shift
	# with ASan and UBSan, so a crash in the tool or a library under it (libiscsi's iSER transport)
	# leaves a stack in the job log instead of a bare "Segmentation fault"
	gcc -O1 -g -fno-omit-frame-pointer -fsanitize=address,undefined -o "$OUTD/$name" \
		"$ISERD_SRC/tests/integration/$name.c" "$ISERD_SRC/tests/lab/guest_tool_sanitize.c" "$@" \
		2>"$OUTD/$name.build.log" || return 1
	ISD_LAB_FILES+=(-f "$OUTD/$name")
}

isd_lab_run() {
	local timeout=$1 job=$2 t0 t_vm boot end
	shift 2
	ISD_LAB_TIMEOUT=${LAB_TIMEOUT:-$timeout}
	t0=$(isd_secs)
	LAB_TIMEOUT=$ISD_LAB_TIMEOUT bash "$ISD_LAB/vmrun.sh" "${ISD_LAB_FILES[@]}" "$@" \
		"$ISD_LAB/$job" "$OUTD"
	ISD_LAB_RC=$?
	t_vm=$(isd_dt "$t0" "$(isd_secs)")
	[ -f "$OUTD/result" ] && sed 's/^/  /' "$OUTD/result"
	boot=$(cat "$OUTD/boot.s" 2>/dev/null) end=$(cat "$OUTD/end.s" 2>/dev/null)
	echo "timings: setup ${ISD_LAB_T_SETUP}s, VM ${t_vm}s wall (guest boot ${boot:-?}s," \
		"job $([ -n "$end" ] && isd_dt "$boot" "$end" || echo ?)s)"
	return 0
}

isd_lab_passed() {
	[ "$ISD_LAB_RC" = 0 ] && grep -qx "RESULT PASS" "$OUTD/result" 2>/dev/null || return 1
	# a sanitizer report from a guest tool fails the run even when the step went on to pass
	# (a report on a second thread can lose the race with the tool's exit status)
	if grep -qE "ERROR: AddressSanitizer|runtime error:" "$OUTD/log" 2>/dev/null; then
		echo "FAIL: a sanitizer report in the guest job log:"
		grep -E -A3 "ERROR: AddressSanitizer|runtime error:" "$OUTD/log" | head -n 20
		return 1
	fi
}

isd_lab_show() {  # FILE TITLE LINES
	[ -s "$1" ] || return 0
	echo "---- $2 (last $3 lines of $1)"
	tail -n "$3" "$1"
}

isd_lab_fail() {
	local spec f rest title lines
	case $ISD_LAB_RC in
	124) echo "FAIL: the VM ran past ${ISD_LAB_TIMEOUT}s" ;;
	125) echo "FAIL: the guest never ran the job to its end" ;;
	*) echo "FAIL: job exit status $ISD_LAB_RC" ;;
	esac
	for spec in "$@"; do
		f=${spec%%:*} rest=${spec#*:}
		title=${rest%%:*} lines=${rest##*:}
		isd_lab_show "$OUTD/$f" "$title" "$lines"
	done
	if [ ! -f "$OUTD/job.rc" ]; then
		isd_lab_show "$OUTD/console.log" "guest console" 40
		isd_lab_show "$OUTD/qemu.log" "qemu" 20
	fi
	exit 1
}

# ---------------------------------------------------------------- lab benchmarks

isd_bench_setup() {
	local args=(--quiet) rc=0
	[ "$1" = siw ] && args+=(--siw)
	bash "$ISD_LAB/setup.sh" "${args[@]}" >&2 || rc=$?
	[ $rc = 0 ] || { echo "bench: lab setup failed (exit $rc)" >&2; exit $rc; }
}

isd_bench_header() {
	echo "# $1, $(date -u '+%F %H:%M') UTC"
	echo "# host: $(nproc) CPUs, $(uname -r), load average $(cut -d' ' -f1-3 /proc/loadavg) at start;" \
		"qemu TCG, ${LAB_SMP:-2} vCPUs, ${LAB_MEM:-2048} MiB"
	# other QEMU guests on the host share its cores and skew the absolute numbers: say so
	echo "# other qemu-system processes on the host at start: $(pgrep -c -x qemu-system-x86 || true)"
	echo "# source: $(git -C "$ISERD_SRC" describe --always --dirty 2>/dev/null || echo unknown), $2"
}

isd_bench_run() {
	local timeout=$1 job=$2 t0 t1 rc=0
	shift 2
	t0=$(date +%s)
	LAB_TIMEOUT=${LAB_TIMEOUT:-$timeout} bash "$ISD_LAB/vmrun.sh" "$@" "$ISD_LAB/$job" "$OUTD/vm" >&2 ||
		rc=$?
	t1=$(date +%s)
	if [ -f "$OUTD/vm/bench.txt" ]; then
		cat "$OUTD/vm/bench.txt"
	else
		echo "# no results from the guest"
	fi
	echo "# steps (PASS/FAIL with guest seconds):"
	sed 's/^/#   /' "$OUTD/vm/result" 2>/dev/null || true
	echo "# VM wall $((t1 - t0)) s, exit $rc, host load average $(cut -d' ' -f1-3 /proc/loadavg) at end"
	return $rc
}
