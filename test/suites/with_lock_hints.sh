#!/usr/bin/env bash
# pglocks_with_lock in autocommit keeps each lock until the statement's transaction ends:
# two statements taking A then B and B then A deadlock, and the error's hint names the
# helper and what to do (test/stress/with_lock_deadlock.py). The full-lock-table hint is in
# the regression suite (sql/with_lock.sql).
#
# Run by scripts/test.sh against its server (PG* exported); run alone, it starts its own.
set -euo pipefail
source "$(dirname "$0")/../../scripts/lib.sh"

pglocks_suite_database pglocks_hints
pglocks_suite_python 120 with_lock_deadlock.py
