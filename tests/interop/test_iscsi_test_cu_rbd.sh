#!/bin/bash
# libiscsi's conformance suite iscsi-test-cu against iserd over TCP, RBD LUN
# (a 64 MiB image on a one-node Ceph cluster, tests/lib/ceph.sh). Results are compared with
# tests/conformance/expected-failures.
exec bash "$(dirname "$0")/../conformance/run_test_cu.sh" rbd
