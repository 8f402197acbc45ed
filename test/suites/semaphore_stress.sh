#!/usr/bin/env bash
# Stress of counting semaphores: 16 sessions, 3 slots, about 20 seconds, waits cancelled at
# random; at most 3 holders at every moment (test/stress/semaphore_stress.py).
#
# Run by scripts/test.sh against its server (PG* exported); run alone, it starts its own.
set -euo pipefail
source "$(dirname "$0")/../../scripts/lib.sh"

pglocks_suite_database pglocks_semaphore_stress
seconds=${PGLOCKS_STRESS_SECONDS:-20}
pglocks_suite_python $((seconds * 3 + 60)) semaphore_stress.py --seconds "$seconds"
