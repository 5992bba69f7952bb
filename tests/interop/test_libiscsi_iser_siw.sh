#!/bin/bash
# Interop: libiscsi's iSER initiator against iserd over soft-iWARP (siw on a veth pair):
# test_libiscsi_iser.sh with ISERD_LAB_FABRIC=siw (iSER portal on 3261).
ISERD_LAB_FABRIC=siw exec bash "$(dirname "$0")/test_libiscsi_iser.sh"
