#!/usr/bin/env python3
"""pglocks_with_lock outside a transaction block keeps each lock until the statement's
transaction ends (run by test/suites/with_lock_hints.sh).

Two statements call it for A then B and for B then A. A gate held by a third session makes
both hold their first lock before either asks for its second, so they deadlock; b has the
shorter deadlock_timeout and gets the error (40P01), whose hint must name
pglocks_with_lock and the way out. The same calls inside transaction blocks, where each lock
ends with its call, must not deadlock. Exits 1 on any failure.
"""
import argparse
import sys
import threading

import psycopg2

BODY = """DO $$ BEGIN
  PERFORM pglocks_with_lock('{first}', 'SELECT 1');
  PERFORM pglocks_with_lock('gate', 'SELECT 1', shared => true);
  PERFORM pglocks_with_lock('{second}', 'SELECT 1');
END $$"""


def connect(dsn):
    conn = psycopg2.connect(dsn)
    conn.autocommit = True
    return conn


def run(dsn, in_block):
    gate = connect(dsn)
    gate.cursor().execute("SELECT pglocks_acquire('gate')")
    results = {}

    def session(name, first, second, deadlock_timeout):
        conn = connect(dsn)
        cur = conn.cursor()
        cur.execute("SET deadlock_timeout = %s", (deadlock_timeout,))
        try:
            if in_block:
                cur.execute("BEGIN")
            cur.execute(BODY.format(first=first, second=second))
            if in_block:
                cur.execute("COMMIT")
            results[name] = ("ok", None)
        except psycopg2.Error as e:
            results[name] = (e.pgcode, e.diag.message_hint)
        conn.close()

    threads = [threading.Thread(target=session, args=("a", "A", "B", "5s")),
               threading.Thread(target=session, args=("b", "B", "A", "100ms"))]
    for t in threads:
        t.start()
    # Both statements hold their first lock and wait at the gate.
    cur = gate.cursor()
    for _ in range(200):
        cur.execute("SELECT count(*) FROM pglocks_locks WHERE key = 'gate' AND NOT granted")
        if cur.fetchone()[0] == 2:
            break
        threading.Event().wait(0.05)
    cur.execute("SELECT pglocks_release('gate')")
    for t in threads:
        t.join(60)
    gate.close()
    return results


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--dsn", default="")
    args = ap.parse_args()
    failures = []

    r = run(args.dsn, in_block=False)
    print(f"autocommit: {r}")
    code, hint = r.get("b", (None, None))
    if r.get("a", (None,))[0] != "ok" or code != "40P01":
        failures.append(f"autocommit: expected a to finish and b to deadlock, got {r}")
    elif not hint or "pglocks_with_lock" not in hint or "BEGIN ... COMMIT" not in hint:
        failures.append(f"autocommit: the deadlock's hint does not name the helper: {hint!r}")

    r = run(args.dsn, in_block=True)
    print(f"transaction blocks: {r}")
    if r.get("a", (None,))[0] != "ok" or r.get("b", (None,))[0] != "ok":
        failures.append(f"transaction blocks: expected no deadlock, got {r}")

    for f in failures:
        print("FAIL: " + f)
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()
