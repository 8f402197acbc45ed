"""Extension re-created under load: holders, waiters and terminations across DROP EXTENSION /
CREATE EXTENSION in one database.

Each round: a holder takes a text lock whose key collides with the waiter's in every
per-backend cache pglocks has ('collide-a' / 'collide-b752', and 'A' / 'B11'), a numeric
shared lock and a fencing token; a waiter queues for the holder's lock; an owner drops and
creates the extension while both are there; then the waiter is terminated or gets the lock.
Checked every round:
  - the holder's pglocks_held() agrees with pg_locks after the re-creation (its holds are
    the lock manager's, not the extension's objects), and pglocks_release_all() releases
    exactly them;
  - every token is greater than every token drawn before it in the database, across
    re-creations;
  - a waiter that is not terminated gets the lock once the holder releases;
and at the end no advisory lock and no published lock name is left.
Exits non-zero on any failure."""
import argparse
import random
import sys
import threading
import time

import psycopg2

failures = []


def check(ok, what):
    if not ok:
        failures.append(what)
        print("FAIL   " + what, flush=True)


def connect(dsn):
    c = psycopg2.connect(dsn)
    c.autocommit = True
    return c


def one(conn, sql, args=None):
    with conn.cursor() as cur:
        cur.execute(sql, args)
        return cur.fetchone()[0] if cur.description else None


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--dsn", required=True)
    ap.add_argument("--rounds", type=int, default=40)
    ap.add_argument("--seed", type=int, default=None)
    a = ap.parse_args()
    seed = a.seed if a.seed is not None else random.randrange(1 << 30)
    rng = random.Random(seed)
    print(f"recreate: {a.rounds} rounds, seed {seed}", flush=True)

    owner = connect(a.dsn)
    one(owner, "CREATE EXTENSION IF NOT EXISTS pglocks")
    last_token = 0
    pairs = [("collide-a", "collide-b752"), ("A", "B11")]
    terminated = granted = 0
    for r in range(a.rounds):
        held_key, wait_other = pairs[r % 2]
        holder = connect(a.dsn)
        hpid = one(holder, "SELECT pg_backend_pid()")
        # A name that shares the waiter's cache slot, held by the waiter first.
        waiter = connect(a.dsn)
        wpid = one(waiter, "SELECT pg_backend_pid()")
        one(waiter, "SELECT pglocks_acquire(%s)", (wait_other,))
        one(holder, "SELECT pglocks_acquire(%s)", (held_key,))
        one(holder, "SELECT pglocks_acquire(%s::bigint, shared => true)", (1000 + r,))
        token = one(holder, "SELECT pglocks_acquire_token('recreate:token')")
        check(token > last_token, f"round {r}: token {token} after {last_token}")
        last_token = token

        result = {}

        def wait():
            try:
                result["got"] = one(waiter, "SELECT pglocks_acquire(%s)", (held_key,))
            except psycopg2.Error as e:
                result["error"] = e.pgcode or str(e)

        t = threading.Thread(target=wait)
        t.start()
        deadline = time.time() + 10
        while time.time() < deadline and not one(
                owner, "SELECT count(*) > 0 FROM pg_locks WHERE pid = %s AND NOT granted", (wpid,)):
            time.sleep(0.005)

        one(owner, "DROP EXTENSION pglocks")
        one(owner, "CREATE EXTENSION pglocks")

        agree = one(holder, """
            SELECT (SELECT count(*) FROM pglocks_held())
                 = (SELECT count(*) FROM pg_locks
                    WHERE locktype = 'advisory' AND pid = pg_backend_pid() AND granted)""")
        check(agree, f"round {r}: pglocks_held() and pg_locks agree after re-creation")
        keys = one(holder, "SELECT string_agg(key, ',' ORDER BY key) FROM pglocks_held()")
        check(keys == ",".join(sorted([str(1000 + r), held_key, "recreate:token"])),
              f"round {r}: the holder's keys after re-creation: {keys}")

        if rng.random() < 0.5:
            one(owner, "SELECT pg_terminate_backend(%s)", (wpid,))
            t.join(10)
            terminated += 1
            check("error" in result, f"round {r}: the terminated waiter got an error")
        released = one(holder, "SELECT pglocks_release_all()")
        check(released == 3, f"round {r}: release_all released {released}, not 3")
        t.join(10)
        if "error" not in result:
            granted += 1
            check(result.get("got") is True, f"round {r}: the waiter got the lock: {result}")
        holder.close()
        try:
            waiter.close()
        except psycopg2.Error:
            pass
        # Sessions gone: wait until their backends have exited.
        deadline = time.time() + 10
        while time.time() < deadline and one(
                owner, "SELECT count(*) FROM pg_stat_activity WHERE pid IN (%s, %s)", (hpid, wpid)):
            time.sleep(0.01)

    left = one(owner, """SELECT count(*) FROM pg_locks WHERE locktype = 'advisory'
                          AND database = (SELECT oid FROM pg_database
                                          WHERE datname = current_database())""")
    check(left == 0, f"advisory locks left at the end: {left}")
    # Names: a new session that holds names sees no foreign rows in pglocks_locks.
    rows = one(owner, "SELECT count(*) FROM pglocks_locks WHERE pid <> pg_backend_pid()")
    check(rows == 0, f"rows of other sessions left in pglocks_locks: {rows}")
    print(f"recreate: {a.rounds} rounds, {terminated} waiters terminated, {granted} granted, "
          f"{len(failures)} failures", flush=True)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
