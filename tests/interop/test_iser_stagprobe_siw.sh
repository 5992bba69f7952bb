#!/bin/bash
# Interop: test_iser_stagprobe.sh over soft-iWARP (siw; iSER portal on 3261).
ISERD_LAB_FABRIC=siw exec bash "$(dirname "$0")/test_iser_stagprobe.sh"
