#!/bin/bash
# libiscsi's conformance suite iscsi-test-cu against iserd over TCP: RAM LUN of 512-byte logical and 4096-byte physical blocks.
# Results are compared with tests/conformance/expected-failures; every skip must be
# listed in tests/conformance/skips.md.
exec bash "$(dirname "$0")/../conformance/run_test_cu.sh" phys
