#!/bin/bash
# Installs what building and running iserd needs (Debian 12; scripts/deps.sh
# without --test: no test tools), builds the release preset and runs
# iserd in the foreground. Without arguments it serves one 1 GiB RAM LUN as
# iqn.2026-11.org.iserd:target0 on 127.0.0.1:3260; any arguments are passed
# to iserd (see `iserd --help`), e.g.:
#   scripts/run.sh --portal tcp://0.0.0.0:3260 --lun ram:4G
#   scripts/run.sh -c docs/iserd.conf.example
# Set ISERD_SKIP_DEPS=1 to skip the package check. Stop with Ctrl-C.
set -euo pipefail
cd "$(dirname "$0")/.."

if [ "${ISERD_SKIP_DEPS:-0}" != 1 ]; then
	scripts/deps.sh
fi
cmake --preset release >/dev/null
cmake --build --preset release
exec build/release/iserd "$@"
