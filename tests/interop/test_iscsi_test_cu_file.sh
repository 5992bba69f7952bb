#!/bin/bash
# libiscsi's conformance suite iscsi-test-cu against iserd over TCP, file LUN
# (64 MiB sparse file in a temp dir). Results are compared with
# tests/conformance/expected-failures.
exec bash "$(dirname "$0")/../conformance/run_test_cu.sh" file
