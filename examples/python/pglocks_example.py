#!/usr/bin/env python3
"""pglocks from Python with psycopg2 and the pglocks package (clients/python).

Connects with the usual libpq environment (PGHOST, PGPORT, PGUSER, PGDATABASE),
creates the extension if it is missing, and shows: a lock taken and released,
the package's `with pglocks.lock(...)` context manager (django-pglocks' `with
advisory_lock(...)` on pglocks), work run under pglocks_with_lock, tries that fail
while another connection holds the lock, and pglocks_key computed locally. Exits 1
if anything is not as the specification says.
"""

import os
import sys
import time

import psycopg2

# The pglocks package of this checkout (clients/python); an application installs it instead
# (pip install ./clients/python).
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "clients", "python"))
import pglocks  # noqa: E402

from pglocks_key import SPEC_VECTORS  # noqa: E402

failures = []


def check(what, got, want):
    ok = got == want
    print(f"  {'ok  ' if ok else 'FAIL'} {what}: {got!r}" + ("" if ok else f" (expected {want!r})"))
    if not ok:
        failures.append(what)


def one(cur, sql, args=()):
    cur.execute(sql, args)
    return cur.fetchone()[0]


def held(cur):
    cur.execute("SELECT key, holds FROM pglocks_held() ORDER BY key")
    return cur.fetchall()


def main():
    # Autocommit, as a session lock is meant to be used: a statement that fails inside an
    # open transaction would otherwise leave the release in finally unable to run.
    app = psycopg2.connect("")
    app.autocommit = True
    other = psycopg2.connect("")
    other.autocommit = True
    cur, ocur = app.cursor(), other.cursor()

    cur.execute("CREATE EXTENSION IF NOT EXISTS pglocks")

    print("pglocks_key computed here and by the server:")
    for key, expected in SPEC_VECTORS:
        check(f"local pglocks.key({key!r})", pglocks.key(key), expected)
        check(f"server pglocks_key({key!r})", one(cur, "SELECT pglocks_key(%s)", (key,)), expected)

    print("a lock taken by one connection, tried by another:")
    check("app takes 'orders:42'", one(cur, "SELECT pglocks_acquire('orders:42')"), True)
    check("other tries 'orders:42'", one(ocur, "SELECT pglocks_acquire('orders:42', wait => false)"), False)
    # The key computed here names the very lock the server took for the text key.
    check("other tries pg_try_advisory_lock(local key)",
          one(ocur, "SELECT pg_try_advisory_lock(%s)", (pglocks.key("orders:42"),)), False)
    check("app's holds", held(cur), [("orders:42", 1)])
    check("app releases 'orders:42'", one(cur, "SELECT pglocks_release('orders:42')"), True)
    check("other tries again", one(ocur, "SELECT pglocks_acquire('orders:42', wait => false)"), True)
    check("other releases", one(ocur, "SELECT pglocks_release('orders:42')"), True)

    print("the context manager:")
    with pglocks.lock(app, "orders:42") as acquired:
        check("acquired", acquired, True)
        check("other's try inside the block",
              one(ocur, "SELECT pglocks_acquire('orders:42', wait => false)"), False)
    check("app's holds after the block", held(cur), [])
    try:
        with pglocks.lock(app, (7, 42)):
            check("app's holds inside a pair-key block", held(cur), [("7,42", 1)])
            raise RuntimeError("the job failed")
    except RuntimeError:
        pass
    check("app's holds after a block that raised", held(cur), [])

    check("other takes 'orders:42'", one(ocur, "SELECT pglocks_acquire('orders:42')"), True)
    with pglocks.lock(app, "orders:42", wait=False) as acquired:
        # As in django-pglocks, the body runs either way; the flag says whether it may work.
        check("acquired with wait=False while other holds it", acquired, False)
    check("other releases", one(ocur, "SELECT pglocks_release('orders:42')"), True)

    print("work under pglocks_with_lock (lock, command and release in one round trip):")
    cur.execute("CREATE TEMP TABLE report_runs (note text)")
    runs = "SELECT count(*) FROM report_runs"
    work = "INSERT INTO report_runs VALUES ('built')"
    check("with_lock('nightly-report', work)", pglocks.with_lock(app, "nightly-report", work), True)
    check("rows written by the work", one(cur, runs), 1)
    check("app's holds after with_lock", held(cur), [])

    check("other takes 'nightly-report'", one(ocur, "SELECT pglocks_acquire('nightly-report')"), True)
    check("with_lock(wait=False) while other holds it",
          pglocks.with_lock(app, "nightly-report", work, wait=False), False)
    check("rows written (the work did not run)", one(cur, runs), 1)
    started = time.monotonic()
    check("with_lock(timeout=0.3) while other holds it",
          pglocks.with_lock(app, "nightly-report", work, timeout=0.3), False)
    waited = time.monotonic() - started
    check("waited for the timeout", 0.25 <= waited < 5, True)
    check("rows written (the work did not run)", one(cur, runs), 1)
    check("other releases", one(ocur, "SELECT pglocks_release('nightly-report')"), True)

    try:
        pglocks.with_lock(app, "nightly-report", "SELECT 1/0")
        check("a failing command raises", "no error", "division_by_zero")
    except psycopg2.errors.DivisionByZero:
        check("a failing command raises", "division_by_zero", "division_by_zero")
    check("app's holds after the failure", held(cur), [])
    check("other takes it after the failure",
          one(ocur, "SELECT pglocks_acquire('nightly-report', wait => false)"), True)
    check("other releases", one(ocur, "SELECT pglocks_release('nightly-report')"), True)

    app.close()
    other.close()
    if failures:
        print(f"{len(failures)} check(s) failed", file=sys.stderr)
        return 1
    print("all checks passed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
