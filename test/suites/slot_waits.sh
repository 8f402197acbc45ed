#!/usr/bin/env bash
# Waits for a slot of a counting semaphore: hand-off by every path that frees a slot, a full
# set, timeouts, cancels and arrival order, driven by test/stress/slot_waits.py (the isolation
# tester cannot drive a wait that is not a heavyweight-lock wait).
#
# Run by scripts/test.sh against its server (PG* exported); run alone, it starts its own.
set -euo pipefail
source "$(dirname "$0")/../../scripts/lib.sh"

pglocks_suite_database pglocks_slot_waits
pglocks_suite_python 300 slot_waits.py
