#!/bin/bash
# libiscsi's conformance suite iscsi-test-cu against iserd over TCP: read-only RAM LUN, suite ReadOnly.
# Results are compared with tests/conformance/expected-failures; every skip must be
# listed in tests/conformance/skips.md.
exec bash "$(dirname "$0")/../conformance/run_test_cu.sh" ro
