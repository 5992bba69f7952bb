#!/bin/bash
# Interop: the Linux kernel's iSER initiator against iserd over soft-iWARP (siw on a veth pair):
# test_kernel_iser.sh with ISERD_LAB_FABRIC=siw (siw.ko is built by tests/lab/setup.sh --siw; the
# iSER portal is on 3261 next to a TCP portal on 3260, and both on 3260 must be refused clearly).
ISERD_LAB_FABRIC=siw exec bash "$(dirname "$0")/test_kernel_iser.sh"
