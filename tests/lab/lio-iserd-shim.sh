#!/bin/bash
# A stand-in for iserd inside the lab guest, backed by LIO: understands the subset of iserd's command
# line the lab jobs use (one --portal tcp://ADDR[:PORT], one --target IQN, one --lun ram:SIZE), stays
# in the foreground and exits 0 on SIGTERM after tearing LIO down. It lets the host side of the
# interop tests be checked end to end without iserd:
#   ISERD=tests/lab/lio-iserd-shim.sh bash tests/interop/test_kernel_tcp.sh
set -u
. /lab/guest.sh || exit 1
addr=127.0.0.1 port=3260 iqn=iqn.2026-11.org.iserd:target0 size=$((1 << 30))
while [ $# -gt 0 ]; do
	case $1 in
	--portal) p=${2#tcp://}; addr=${p%%:*}; [ "$p" = "$addr" ] || port=${p##*:}; shift 2 ;;
	--target) iqn=$2; shift 2 ;;
	--lun) l=${2#ram:}; n=${l%[KMGkmg]}
		case $l in *[Kk]) size=$((n << 10)) ;; *[Mm]) size=$((n << 20)) ;; *[Gg]) size=$((n << 30)) ;; *) size=$n ;; esac
		shift 2 ;;
	--version) echo "lio-iserd-shim (LIO stand-in for iserd)"; exit 0 ;;
	-v) shift ;;
	*) echo "lio-iserd-shim: unsupported argument $1" >&2; exit 2 ;;
	esac
done
echo "lio-iserd-shim: LIO target $iqn, $size bytes, portal $addr:$port" >&2
lio_start "$iqn" "$size" "$addr" "$port" >&2 || { echo "lio-iserd-shim: LIO set-up failed" >&2; exit 1; }
trap 'echo "lio-iserd-shim: SIGTERM" >&2; lio_stop "$iqn" "$addr" "$port"; exit $?' TERM
while :; do sleep 1 & wait $!; done
