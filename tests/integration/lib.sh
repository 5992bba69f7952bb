# shellcheck shell=bash
# Integration tests share the helpers of tests/interop/lib_iserd.sh.
# shellcheck source=../interop/lib_iserd.sh
. "$(dirname "${BASH_SOURCE[0]}")/../interop/lib_iserd.sh"
