#!/usr/bin/env bash
# Stress: 36 sessions for about 20 seconds mixing every way of taking a pglocks lock, with
# cancellations, timeouts and errors, and an invariant checker inside the critical section
# and on pg_locks (see stress.py). Exits non-zero on any violation, leak or unexpected error.
#
# Run by scripts/test.sh against its server (PG* exported); run alone, it starts its own.
# STRESS_SESSIONS and STRESS_SECONDS change the load.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
source "$here/../../scripts/lib.sh"

if [ -z "${PGHOST:-}" ]; then
    pglocks_setup
    pglocks_start_server "max_connections = 80"
else
    pglocks_install_packages
fi

# Debian's interpreter, which python3-psycopg2 is installed for.
/usr/bin/python3 "$here/stress.py"
