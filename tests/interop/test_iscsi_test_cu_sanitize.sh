#!/bin/bash
# libiscsi's conformance suite iscsi-test-cu against iserd over TCP: Sanitize.Reset on a 32 TiB
# zero: LUN, where a SANITIZE OVERWRITE lasts long enough for the test to reset, abort and log in
# again around it (about 2 minutes). Results are compared with tests/conformance/expected-failures.
exec bash "$(dirname "$0")/../conformance/run_test_cu.sh" sanitize
