#!/bin/bash
# Interop: libiserd's iSER transport (iserinit with iser:// URLs) over soft-iWARP (siw on a veth
# pair): test_iserinit_iser.sh with ISERD_LAB_FABRIC=siw (siw.ko is built by tests/lab/setup.sh
# --siw). Against iserd on iser://10.99.0.1:3261 (a TCP portal holds 3260): discovery, login,
# inquiry, readcap, verify --size 64M, benches, CHAP and mutual CHAP (right and wrong secrets),
# counters back to zero. Against LIO: its iSER portal must fail with EADDRINUSE on siw (LIO keeps a
# TCP listener on the same port, and iWARP shares the TCP port space), recorded as a step.
ISERD_LAB_FABRIC=siw exec bash "$(dirname "$0")/test_iserinit_iser.sh"
