#!/bin/sh
# Stage 2 of the lab guest's boot: PID 1 after the initramfs switched root to the host's root
# (read-only, under a tmpfs overlay). Gives the job a minimal system, runs /lab/job with bash, and records the
# outcome in /lab/out (shared with the host): log (the job's stdout+stderr), job.rc, dmesg.txt,
# and the guest uptime when the job started and ended (boot.s, end.s).
export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin HOME=/root TERM=dumb LANG=C.UTF-8
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
mkdir -p /dev/pts /dev/shm
mount -t devpts devpts /dev/pts
mount -t tmpfs tmpfs /dev/shm
# The host's /tmp is hidden by the guest's own below; keep a view of it so a checkout or build
# that lives there (LAB_BIND_TMP, set by vmrun.sh) can be bound back at the same path.
mkdir -p /mnt/hosttmp && mount --bind /tmp /mnt/hosttmp
for d in /tmp /run /var/tmp; do mount -t tmpfs -o mode=1777 tmpfs $d; done
mkdir -p /run/lock
modprobe configfs 2>/dev/null; mount -t configfs configfs /sys/kernel/config 2>/dev/null
hostname lab
# shellcheck disable=SC3045  # dash has ulimit -l
ulimit -l unlimited 2>/dev/null   # RDMA (siw) pins registered memory
cut -d' ' -f1 /proc/uptime > /lab/out/boot.s
set -a
[ -f /lab/env ] && . /lab/env
set +a
for p in ${LAB_BIND_TMP:-}; do
	mkdir -p "/tmp/$p" && mount --bind "/mnt/hosttmp/$p" "/tmp/$p"
done
cd /lab/out || exit 1
# the kernel log streams to the host as it happens, so it survives a VM timeout
stdbuf -oL dmesg -w > /lab/out/dmesg.txt 2>&1 &
dmesg_pid=$!
# the job's own bound, below the VM's (vmrun.sh sets it), so a hung job still leaves its results
timeout -k 10 "${LAB_JOB_TIMEOUT:-840}" bash /lab/job > /lab/out/log 2>&1 < /dev/null
echo $? > /lab/out/job.rc
cut -d' ' -f1 /proc/uptime > /lab/out/end.s
sleep 0.2
kill $dmesg_pid 2>/dev/null
sync
echo o > /proc/sysrq-trigger   # power off (as PID 1, merely exiting would panic the kernel)
sleep 30
