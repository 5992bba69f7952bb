#!/bin/bash
# libiscsi's conformance suite iscsi-test-cu against iserd over TCP, RAM LUN.
# Results are compared with tests/conformance/expected-failures.
exec bash "$(dirname "$0")/../conformance/run_test_cu.sh" ram
