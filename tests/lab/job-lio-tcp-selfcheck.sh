# shellcheck shell=bash disable=SC2034  # TARGET_* are read by guest.sh
# Lab job: the same kernel iSCSI/TCP scenario as job-kernel-tcp.sh, but against the guest kernel's
# own LIO target (configfs, 256 MiB rd_mcp ramdisk). It checks the harness, not iserd: if this fails,
# the lab is broken. Not run by ctest; run it by hand:
#   tests/lab/setup.sh && tests/lab/vmrun.sh tests/lab/job-lio-tcp-selfcheck.sh /tmp/lio-out
. /lab/guest.sh
TARGET_IQN=iqn.2026-11.org.iserd:lab
TARGET_SIZE=$((256 << 20))
target_start() { lio_start $TARGET_IQN $TARGET_SIZE; }
target_stop() { lio_stop $TARGET_IQN; }
kernel_tcp_scenario
