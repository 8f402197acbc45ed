#!/usr/bin/env bash
# The extension dropped and created again while sessions hold, wait and are terminated, with
# keys that collide in pglocks' per-backend caches (test/stress/recreate.py says what it
# checks). Uses the server of scripts/test.sh, or starts its own when run alone.
set -euo pipefail
source "$(dirname "$0")/../../scripts/lib.sh"

pglocks_suite_database pglocks_recreate
args=(--rounds "${PGLOCKS_RECREATE_ROUNDS:-40}")
[ -n "${PGLOCKS_RECREATE_SEED:-}" ] && args+=(--seed "$PGLOCKS_RECREATE_SEED")
pglocks_suite_python 300 recreate.py "${args[@]}"
