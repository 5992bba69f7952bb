#!/bin/bash
# libiscsi's conformance suite iscsi-test-cu against iserd over TCP: one RAM LUN behind two TCP portals, MultipathIO tests given both paths.
# Results are compared with tests/conformance/expected-failures; every skip must be
# listed in tests/conformance/skips.md.
exec bash "$(dirname "$0")/../conformance/run_test_cu.sh" mpath
