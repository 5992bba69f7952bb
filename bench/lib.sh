# shellcheck shell=bash
# Helpers shared by the loopback benchmarks (bench/tcp_loopback.sh, bench/tcp_matrix.sh).
# Sourced, not run. The caller sets `set -euo pipefail` and calls bench_init first.
#
#   bench_init NAME        a temp dir $W on /dev/shm (mktemp), an empty PIDS list and an EXIT
#                          trap that stops every PID in it (never by name) and removes $W
#   bench_need CMD...      exits with a hint when a command is missing
#   iserd_start LOG BIN ARGS...
#                          starts an iserd in the background (its control socket off when the
#                          build has the flag); its PID goes to PIDS and to $LAST_PID
#   tgt_start PORT CTLPORT IQN FILE
#                          tgtd in the foreground on 127.0.0.1:PORT, its management channel on
#                          CTLPORT (not the default one, which another tgtd may own), one
#                          target IQN with LUN 1 an rdwr backing store on FILE
#   wait_port PORT         until something listens on 127.0.0.1:PORT (at most 5 s)
#   median                 the median of the numbers on stdin (any whitespace between them;
#                          the mean of the two middle ones for an even count; "-" for none)

bench_init() {
	W=$(mktemp -d "/dev/shm/$1.XXXXXX")
	PIDS=()
	TGT_CTL=
	trap bench_cleanup EXIT
}

bench_cleanup() {
	local p alive
	# tgtd ignores SIGTERM: ask ours (its own management port) to exit, then make sure by PID
	[ -z "$TGT_CTL" ] || tgtadm -C "$TGT_CTL" --op delete --mode system >/dev/null 2>&1 || true
	for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
	# up to 5 s to exit on their own (istgt takes a few), then SIGKILL, still by PID
	for _ in $(seq 50); do
		alive=0
		for p in "${PIDS[@]}"; do kill -0 "$p" 2>/dev/null && alive=1; done
		[ $alive = 1 ] || break
		sleep 0.1
	done
	for p in "${PIDS[@]}"; do kill -9 "$p" 2>/dev/null || true; done
	wait 2>/dev/null || true
	rm -rf "$W"
}

bench_need() {
	local t
	for t in "$@"; do
		command -v "$t" >/dev/null || { echo "bench: $t missing (scripts/deps.sh --lab)" >&2; exit 1; }
	done
}

iserd_start() {
	local log=$1 bin=$2 sock=()
	shift 2
	# earlier builds have no --control-socket; later ones would all try the same default path
	case "$("$bin" --help 2>&1)" in *--control-socket*) sock=(--control-socket none) ;; esac
	"$bin" -q "${sock[@]}" "$@" >"$log" 2>&1 &
	LAST_PID=$!
	PIDS+=("$LAST_PID")
}

tgt_start() {
	local port=$1 ctl=$2 iqn=$3 file=$4
	tgtd -f -C "$ctl" --iscsi portal=127.0.0.1:"$port" >"$W/tgtd.log" 2>&1 &
	LAST_PID=$!
	PIDS+=("$LAST_PID")
	TGT_CTL=$ctl
	for _ in $(seq 50); do tgtadm -C "$ctl" --op show --mode system >/dev/null 2>&1 && break; sleep 0.1; done
	tgtadm -C "$ctl" --lld iscsi --op new --mode target --tid 1 -T "$iqn"
	tgtadm -C "$ctl" --lld iscsi --op new --mode logicalunit --tid 1 --lun 1 --bstype rdwr -b "$file"
	tgtadm -C "$ctl" --lld iscsi --op bind --mode target --tid 1 -I ALL
}

wait_port() {
	for _ in $(seq 50); do
		(exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0
		sleep 0.1
	done
	echo "bench: nothing listens on 127.0.0.1:$1" >&2
	return 1
}

median() {
	tr -s ' \t' '\n' | grep -v '^$' | sort -g | awk '{ a[NR] = $1 }
		END {
			if (NR == 0) print "-"
			else if (NR % 2) print a[(NR + 1) / 2]
			else print (a[NR / 2] + a[NR / 2 + 1]) / 2
		}'
}
