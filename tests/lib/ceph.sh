# shellcheck shell=bash
# A throw-away one-node Ceph cluster for tests of the rbd: store: one ceph-mon
# and one ceph-osd run as the calling user under a directory of their own (no
# systemd, no kernel module, no root), cephx on, the monitor on a free port of
# 127.0.0.1, the OSD on memstore (its objects live in its memory: nothing to
# format, gone when it stops), every pool of size 1. No ceph-mgr: RBD I/O,
# `rbd du` and `rbd export` only talk to the monitor and the OSD.
# docs/ceph.md walks through the same steps by hand.
#
#   isd_ceph_have                 true when the ceph tools are installed
#   isd_ceph_start DIR            starts the cluster in DIR (created); 0, 77 when
#                                 the ceph packages are missing, 1 on failure (the
#                                 daemons' log tails printed). Sets:
#     ISD_CEPH_CONF                 ceph.conf naming the monitor and the keyrings
#     ISD_CEPH_CLIENT               "iserd": the cephx user iserd connects as
#                                 (client.iserd, caps "profile rbd"; its keyring is
#                                 named in ISD_CEPH_CONF)
#     ISD_CEPH_POOL                 "rbd": a pool initialised for RBD
#     ISD_CEPH_START_S              seconds the start took
#   isd_ceph CMD ARGS...          runs a ceph tool (ceph, rbd, rados) as client.admin
#                                 on this cluster, bounded by 60 s
#   isd_ceph_stop                 stops the daemons it started (by their pids only)
#                                 and leaves DIR to its owner
#
# Only the pids started here are ever signalled.

ISD_CEPH_DIR=
ISD_CEPH_CONF=
ISD_CEPH_CLIENT=iserd
ISD_CEPH_POOL=rbd
ISD_CEPH_START_S=
ISD_CEPH_PIDS=()

isd_ceph_have() {
	local t
	for t in ceph-mon ceph-osd ceph ceph-authtool monmaptool rbd; do
		command -v "$t" >/dev/null 2>&1 || return 1
	done
}

isd_ceph() {
	local tool=$1
	shift
	timeout -k 5 60 "$tool" -c "$ISD_CEPH_CONF" --id admin "$@"
}

# A free TCP port on 127.0.0.1 (bound and released: the monitor takes it next).
isd_ceph_free_port() {
	python3 -c 'import socket
s = socket.socket()
s.bind(("127.0.0.1", 0))
print(s.getsockname()[1])'
}

isd_ceph_tails() {
	local f
	for f in "$ISD_CEPH_DIR"/log/*.log "$ISD_CEPH_DIR"/*.out; do
		[ -s "$f" ] || continue
		echo "----- $(basename "$f") (last 30 lines) -----"
		tail -n 30 "$f"
	done
}

# isd_ceph_fail MESSAGE: says what failed, prints the daemons' logs, stops them.
isd_ceph_fail() {
	echo "isd_ceph_start: $*" >&2
	isd_ceph_tails >&2
	isd_ceph_stop
	return 1
}

isd_ceph_start() {
	local dir=$1 t0 port fsid osd_uuid i n
	if ! isd_ceph_have; then
		echo "SKIP: the ceph packages are not installed (scripts/deps.sh --test)"
		return 77
	fi
	t0=$(date +%s.%N)
	mkdir -p "$dir" || return 1
	ISD_CEPH_DIR=$(cd "$dir" && pwd)
	mkdir -p "$ISD_CEPH_DIR"/{mon,osd0,log,run} || return 1
	ISD_CEPH_CONF=$ISD_CEPH_DIR/ceph.conf
	fsid=$(cat /proc/sys/kernel/random/uuid)
	osd_uuid=$(cat /proc/sys/kernel/random/uuid)
	port=$(isd_ceph_free_port) || return 1
	# Every path is under DIR so that nothing reads or writes /etc/ceph or
	# /var/lib/ceph; the OSD's timeouts are short so that a dead daemon is
	# noticed within the test's own bounds.
	cat >"$ISD_CEPH_CONF" <<EOF
[global]
fsid = $fsid
mon host = v2:127.0.0.1:$port
public addr = 127.0.0.1
ms bind ipv6 = false
auth cluster required = cephx
auth service required = cephx
auth client required = cephx
auth allow insecure global id reclaim = false
keyring = $ISD_CEPH_DIR/\$name.keyring
run dir = $ISD_CEPH_DIR/run
admin socket = $ISD_CEPH_DIR/run/\$name.asok
log file = $ISD_CEPH_DIR/log/\$name.log
pid file = $ISD_CEPH_DIR/run/\$name.pid
crash dir = $ISD_CEPH_DIR/crash
mon data = $ISD_CEPH_DIR/mon
mon allow pool size one = true
mon allow pool delete = true
mon warn on pool no redundancy = false
osd pool default size = 1
osd pool default min size = 1
osd pool default pg autoscale mode = off
osd crush chooseleaf type = 0
osd data = $ISD_CEPH_DIR/osd0
osd objectstore = memstore
memstore device bytes = 2147483648
osd max object name len = 256
osd max object namespace len = 64
client mount timeout = 30
rados mon op timeout = 30
rados osd op timeout = 30
EOF
	# Keys: the monitor's own, client.admin (everything), client.iserd (what
	# an RBD client needs, no more), osd.0's, all known to the monitor from its
	# mkfs, so that nothing has to be added once it runs.
	ceph-authtool --create-keyring "$ISD_CEPH_DIR/mon.a.keyring" --gen-key -n mon. \
		--cap mon 'allow *' >/dev/null || return 1
	ceph-authtool --create-keyring "$ISD_CEPH_DIR/client.admin.keyring" --gen-key \
		-n client.admin --cap mon 'allow *' --cap osd 'allow *' --cap mgr 'allow *' \
		>/dev/null || return 1
	ceph-authtool --create-keyring "$ISD_CEPH_DIR/client.$ISD_CEPH_CLIENT.keyring" \
		--gen-key -n "client.$ISD_CEPH_CLIENT" --cap mon 'profile rbd' \
		--cap osd "profile rbd pool=$ISD_CEPH_POOL" >/dev/null || return 1
	ceph-authtool --create-keyring "$ISD_CEPH_DIR/osd.0.keyring" --gen-key -n osd.0 \
		--cap mon 'allow profile osd' --cap mgr 'allow profile osd' --cap osd 'allow *' \
		>/dev/null || return 1
	cp "$ISD_CEPH_DIR/mon.a.keyring" "$ISD_CEPH_DIR/mon.keyring" || return 1
	for n in client.admin "client.$ISD_CEPH_CLIENT" osd.0; do
		ceph-authtool "$ISD_CEPH_DIR/mon.keyring" --import-keyring \
			"$ISD_CEPH_DIR/$n.keyring" >/dev/null || return 1
	done
	monmaptool --create --fsid "$fsid" --addv a "[v2:127.0.0.1:$port]" \
		"$ISD_CEPH_DIR/monmap" >/dev/null || return 1
	ceph-mon -c "$ISD_CEPH_CONF" --mkfs -i a --monmap "$ISD_CEPH_DIR/monmap" \
		--keyring "$ISD_CEPH_DIR/mon.keyring" >"$ISD_CEPH_DIR/mon-mkfs.out" 2>&1 ||
		{ isd_ceph_fail "ceph-mon --mkfs failed"; return 1; }
	# -f: in the foreground of its own background job, so that $! is its pid.
	ceph-mon -c "$ISD_CEPH_CONF" -f -i a >"$ISD_CEPH_DIR/mon.out" 2>&1 &
	ISD_CEPH_PIDS+=($!)
	# The OSD: its id from the monitor (this also waits for the monitor to
	# answer), then a memstore mkfs (its key is already known), then the daemon.
	for i in $(seq 1 30); do
		if isd_ceph ceph --connect-timeout 5 osd new "$osd_uuid" \
			>"$ISD_CEPH_DIR/osd-new.out" 2>&1; then
			break
		fi
		kill -0 "${ISD_CEPH_PIDS[0]}" 2>/dev/null ||
			{ isd_ceph_fail "ceph-mon exited"; return 1; }
		sleep 0.5
	done
	[ "$(cat "$ISD_CEPH_DIR/osd-new.out")" = 0 ] ||
		{ isd_ceph_fail "ceph osd new did not give osd.0: $(head -c 200 "$ISD_CEPH_DIR/osd-new.out")"; return 1; }
	ceph-osd -c "$ISD_CEPH_CONF" -i 0 --mkfs --no-mon-config --osd-uuid "$osd_uuid" \
		>"$ISD_CEPH_DIR/osd-mkfs.out" 2>&1 ||
		{ isd_ceph_fail "ceph-osd --mkfs failed"; return 1; }
	ceph-osd -c "$ISD_CEPH_CONF" -f -i 0 >"$ISD_CEPH_DIR/osd.out" 2>&1 &
	ISD_CEPH_PIDS+=($!)
	for i in $(seq 1 60); do
		if isd_ceph ceph osd dump 2>/dev/null | grep -q '^osd\.0 up'; then
			break
		fi
		kill -0 "${ISD_CEPH_PIDS[1]}" 2>/dev/null ||
			{ isd_ceph_fail "ceph-osd exited"; return 1; }
		sleep 0.5
	done
	isd_ceph ceph osd dump 2>/dev/null | grep -q '^osd\.0 up' ||
		{ isd_ceph_fail "osd.0 did not come up within 30 s"; return 1; }
	isd_ceph ceph osd pool create "$ISD_CEPH_POOL" 8 8 >/dev/null 2>&1 ||
		{ isd_ceph_fail "ceph osd pool create $ISD_CEPH_POOL failed"; return 1; }
	isd_ceph rbd pool init "$ISD_CEPH_POOL" >"$ISD_CEPH_DIR/pool-init.out" 2>&1 ||
		{ isd_ceph_fail "rbd pool init failed: $(head -c 200 "$ISD_CEPH_DIR/pool-init.out")"; return 1; }
	ISD_CEPH_START_S=$(awk -v a="$t0" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }')
	return 0
}

isd_ceph_stop() {
	local pid i
	# The OSD first (it would wait for the monitor otherwise), then the monitor.
	for ((i = ${#ISD_CEPH_PIDS[@]} - 1; i >= 0; i--)); do
		pid=${ISD_CEPH_PIDS[i]}
		kill -TERM "$pid" 2>/dev/null || continue
		for _ in $(seq 1 50); do
			kill -0 "$pid" 2>/dev/null || break
			sleep 0.1
		done
		kill -KILL "$pid" 2>/dev/null
		wait "$pid" 2>/dev/null
	done
	ISD_CEPH_PIDS=()
}
