"""Real clients of pglocks through pgbouncer in transaction-pooling mode (run by pgbouncer.sh).

Ground truth is the server's own lock table (pg_locks), read over a direct connection that
bypasses the pooler. Each counter comes with a control: the same critical section run without
the lock must lose updates, or the exact count would prove nothing.
"""
import argparse
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import psycopg2

failures = []


def check(ok, what, detail=""):
    print(("ok   " if ok else "FAIL ") + what + (f"  [{detail}]" if detail else ""), flush=True)
    if not ok:
        failures.append(what)
    return ok


def connect(**kw):
    conn = psycopg2.connect(connect_timeout=10, **kw)
    conn.autocommit = True  # transactions are spelled out, as a pooled application would
    return conn


POOLED = {}
DB = {}


def direct():
    # Bypasses the pooler: libpq takes host, port and user from the PG* environment.
    return connect(**DB)


def pooled(pool="two"):
    return connect(**POOLED[pool])


def run(conn, sql, args=None):
    with conn.cursor() as cur:
        cur.execute(sql, args)


def one(conn, sql, args=None):
    with conn.cursor() as cur:
        cur.execute(sql, args)
        return cur.fetchone()


def rows(conn, sql, args=None):
    with conn.cursor() as cur:
        cur.execute(sql, args)
        return cur.fetchall()


def server_holders(mon, key):
    """(pid, granted) of every advisory lock entry of text key `key` in this database."""
    return rows(mon, """
        SELECT l.pid, l.granted FROM pg_locks l, pglocks_key(%s) AS k
        WHERE l.locktype = 'advisory'
          AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())
          AND l.classid::bigint = (k >> 32) & 4294967295
          AND l.objid::bigint = k & 4294967295
          AND l.objsubid = 1
        ORDER BY l.pid""", (key,))


def all_advisory(mon):
    return rows(mon, """
        SELECT pid, classid, objid, granted FROM pg_locks
        WHERE locktype = 'advisory'
          AND database = (SELECT oid FROM pg_database WHERE datname = current_database())""")


def wait_until(pred, what, limit=10.0):
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        if pred():
            return True
        time.sleep(0.01)
    return check(False, what, "timed out waiting")


# (a) transaction scope ---------------------------------------------------------------------

def transaction_scope(mon):
    print("-- transaction-scope holds through the pooler", flush=True)
    key = "pooler:txn"
    a, b = pooled(), pooled()
    run(a, "BEGIN")
    got, a_pid = one(a, "SELECT pglocks_acquire(%s, scope => 'transaction'), pg_backend_pid()", (key,))
    check(got is True, "A takes a transaction-scope hold inside its transaction")
    check(server_holders(mon, key) == [(a_pid, True)],
          "the server shows the lock granted to A's backend", str(server_holders(mon, key)))
    (got,) = one(b, "SELECT pglocks_acquire(%s, wait => false, scope => 'transaction')", (key,))
    check(got is False, "B, through the pooler, cannot take it while A's transaction is open")
    run(b, "BEGIN")
    (got,) = one(b, "SELECT pglocks_acquire(%s, wait => false, scope => 'transaction')", (key,))
    run(b, "COMMIT")
    check(got is False, "nor inside a transaction of its own")
    run(a, "COMMIT")
    check(server_holders(mon, key) == [], "A's commit releases the lock on the server",
          str(server_holders(mon, key)))
    (got,) = one(b, "SELECT pglocks_acquire(%s, wait => false, scope => 'transaction')", (key,))
    check(got is True, "B takes it once A has committed")
    check(all_advisory(mon) == [], "B's statement-long hold ended with its statement",
          str(all_advisory(mon)))

    # A waiter queued behind an open transaction is granted the lock by the commit.
    run(a, "BEGIN")
    one(a, "SELECT pglocks_acquire(%s, scope => 'transaction')", (key,))
    result = {}

    def waiter():
        c = pooled()
        t0 = time.monotonic()
        run(c, "BEGIN")
        result["got"], result["pid"] = one(
            c, "SELECT pglocks_acquire(%s, timeout => '30s', scope => 'transaction'), pg_backend_pid()",
            (key,))
        result["waited"] = time.monotonic() - t0
        result["holders"] = server_holders(mon_for_waiter, key)
        run(c, "COMMIT")
        c.close()

    mon_for_waiter = direct()
    t = threading.Thread(target=waiter)
    t.start()
    wait_until(lambda: any(not g for _, g in server_holders(mon, key)),
               "the waiter queues in the server's lock queue")
    time.sleep(0.3)
    run(a, "COMMIT")
    t.join(60)
    check(result.get("got") is True and result.get("waited", 0) >= 0.3,
          "a waiter through the pooler gets the lock when the holder commits",
          f"got={result.get('got')} waited={result.get('waited', 0):.2f}s")
    check(result.get("holders") == [(result.get("pid"), True)],
          "and then only the waiter's backend holds it", str(result.get("holders")))
    mon_for_waiter.close()
    a.close()
    b.close()
    check(all_advisory(mon) == [], "no advisory lock remains after the commits", str(all_advisory(mon)))


def txn_counter_round(locked, clients=8, iterations=4):
    """Read-modify-write of a row with a client-side pause; returns (final, expected)."""
    name = "txn-locked" if locked else "txn-unlocked"
    key = "pooler:counter-txn"
    mon = direct()
    run(mon, "INSERT INTO pooler_counter VALUES (%s, 0)", (name,))

    def work(_):
        c = pooled()
        try:
            for _ in range(iterations):
                increment(c)
        finally:
            # A client that fails inside its transaction must not leave the others queued
            # behind its row lock.
            c.close()

    def increment(c):
        run(c, "BEGIN")
        if locked:
            (got,) = one(c, "SELECT pglocks_acquire(%s, timeout => '30s', scope => 'transaction')",
                         (key,))
            if got is not True:
                run(c, "ROLLBACK")
                raise RuntimeError("transaction-scope acquire through the pooler timed out")
        (v,) = one(c, "SELECT v FROM pooler_counter WHERE name = %s", (name,))
        time.sleep(0.005)
        run(c, "UPDATE pooler_counter SET v = %s WHERE name = %s", (v + 1, name))
        run(c, "COMMIT")

    with ThreadPoolExecutor(clients) as ex:
        list(ex.map(work, range(clients)))
    (final,) = one(mon, "SELECT v FROM pooler_counter WHERE name = %s", (name,))
    mon.close()
    return final, clients * iterations


def transaction_scope_counter():
    final, expected = txn_counter_round(locked=False)
    check(final < expected, "control: the same transactions without a lock lose updates",
          f"{final} of {expected}")
    final, expected = txn_counter_round(locked=True)
    check(final == expected,
          "8 pooled clients sharing 2 server connections: a transaction-scope hold keeps "
          "the counter exact", f"{final} of {expected}")


# (b) pglocks_with_lock ---------------------------------------------------------------------

# The counter is a sequence read and set with setval, which is not transactional: its new
# value is visible to the next holder at once, so the lock alone orders the increments. The
# row-counter round below checks the other half: in autocommit the lock is held until the
# statement's commit, so the next holder reads the committed row.
CRITICAL = """DO $cs$
DECLARE x bigint; s timestamptz := clock_timestamp();
BEGIN
  SELECT last_value INTO x FROM pooler_seq;
  PERFORM pg_sleep(0.005);
  PERFORM setval('pooler_seq', x + 1);
  INSERT INTO pooler_runs (tag, started, ended) VALUES ('%s', s, clock_timestamp());
END $cs$"""


def with_lock_round(locked, clients=12, iterations=3):
    tag = "locked" if locked else "unlocked"
    mon = direct()
    run(mon, "SELECT setval('pooler_seq', 0)")
    body = CRITICAL % tag

    def work(_):
        c = pooled()
        try:
            for _ in range(iterations):
                if locked:
                    (got,) = one(c, "SELECT pglocks_with_lock('pooler:counter', %s, timeout => '30s')",
                                 (body,))
                    if got is not True:
                        raise RuntimeError("pglocks_with_lock through the pooler timed out")
                else:
                    run(c, body)
        finally:
            c.close()

    with ThreadPoolExecutor(clients) as ex:
        list(ex.map(work, range(clients)))
    (final,) = one(mon, "SELECT last_value FROM pooler_seq")
    (overlaps,) = one(mon, """
        SELECT count(*) FROM pooler_runs a JOIN pooler_runs b
          ON a.id < b.id AND a.started < b.ended AND b.started < a.ended
        WHERE a.tag = %s AND b.tag = %s""", (tag, tag))
    mon.close()
    return final, clients * iterations, overlaps


def with_lock(mon):
    print("-- pglocks_with_lock through the pooler", flush=True)
    final, expected, overlaps = with_lock_round(locked=False)
    check(final < expected and overlaps > 0,
          "control: the same critical section without a lock loses increments and overlaps",
          f"{final} of {expected}, {overlaps} overlapping pairs")
    final, expected, overlaps = with_lock_round(locked=True)
    check(final == expected and overlaps == 0,
          "12 pooled clients sharing 2 server connections: pglocks_with_lock runs the critical "
          "sections one at a time", f"{final} of {expected}, {overlaps} overlapping pairs")
    check(all_advisory(mon) == [], "no advisory lock remains after the calls", str(all_advisory(mon)))

    # A table row read and written under the lock, each call in its own (autocommit)
    # transaction: the next holder must see the previous holder's committed row.
    run(mon, "INSERT INTO pooler_counter VALUES ('with_lock_rows', 0)")
    row_body = """DO $rw$
DECLARE x int;
BEGIN
  SELECT v INTO x FROM pooler_counter WHERE name = 'with_lock_rows';
  PERFORM pg_sleep(0.002);
  UPDATE pooler_counter SET v = x + 1 WHERE name = 'with_lock_rows';
END $rw$"""

    def row_work(_):
        c = pooled()
        try:
            for _ in range(5):
                (got,) = one(c, "SELECT pglocks_with_lock('pooler:rows', %s, timeout => '30s')",
                             (row_body,))
                if got is not True:
                    raise RuntimeError("pglocks_with_lock through the pooler timed out")
        finally:
            c.close()

    with ThreadPoolExecutor(8) as ex:
        list(ex.map(row_work, range(8)))
    (rows_final,) = one(mon, "SELECT v FROM pooler_counter WHERE name = 'with_lock_rows'")
    check(rows_final == 40,
          "8 pooled clients, read-modify-write of a row under pglocks_with_lock: no lost update",
          f"{rows_final} of 40")

    key = "pooler:busy"
    busy = {}

    def long_job():
        c = pooled()
        busy["got"] = one(c, "SELECT pglocks_with_lock(%s, 'SELECT pg_sleep(1)')", (key,))[0]
        c.close()

    t = threading.Thread(target=long_job)
    t.start()
    wait_until(lambda: any(g for _, g in server_holders(mon, key)), "the long job holds its lock")
    b = pooled()
    (got,) = one(b, "SELECT pglocks_with_lock(%s, 'INSERT INTO pooler_marks VALUES (1)', wait => false)",
                 (key,))
    check(got is False, "with_lock(wait => false) through the pooler is false while another runs")
    (got,) = one(b, """SELECT pglocks_with_lock(%s, 'INSERT INTO pooler_marks VALUES (2)',
                                              timeout => '50ms')""", (key,))
    check(got is False, "with_lock(timeout => '50ms') is false too")
    check(rows(mon, "SELECT n FROM pooler_marks") == [], "and neither command ran")
    t.join(60)
    check(busy.get("got") is True, "the long job's with_lock returns true")
    (got,) = one(b, "SELECT pglocks_with_lock(%s, 'INSERT INTO pooler_marks VALUES (3)', wait => false)",
                 (key,))
    check(got is True and rows(mon, "SELECT n FROM pooler_marks") == [(3,)],
          "once it has finished, with_lock(wait => false) gets the lock and runs its command")
    b.close()
    check(all_advisory(mon) == [], "no advisory lock remains", str(all_advisory(mon)))


# (c) session holds -------------------------------------------------------------------------

def session_holds(mon):
    print("-- session holds behind a transaction pooler (what not to do)", flush=True)
    key = "pooler:session"

    # Pool of one server connection: every client runs on the same backend.
    a = pooled("one")
    got, a_pid = one(a, "SELECT pglocks_acquire(%s), pg_backend_pid()", (key,))
    check(got is True, "client A takes a session hold through a one-connection pool")
    a.close()
    check(server_holders(mon, key) == [(a_pid, True)],
          "client A has disconnected, and the server connection still holds the lock",
          str(server_holders(mon, key)))
    (got,) = one(mon, "SELECT pglocks_acquire(%s, wait => false)", (key,))
    check(got is False, "so nobody else can take it, although its owner is gone")
    b = pooled("one")
    (b_pid,) = one(b, "SELECT pg_backend_pid()")
    held = rows(b, "SELECT key, scope, holds FROM pglocks_held()")
    check(b_pid == a_pid and held == [(key, "session", 1)],
          "client B, next on that server connection, holds A's lock without asking for it",
          f"pid {b_pid} vs {a_pid}, held {held}")
    (got,) = one(b, "SELECT pglocks_acquire(%s, wait => false)", (key,))
    (holds,) = one(b, "SELECT holds FROM pglocks_held() WHERE key = %s", (key,))
    check(got is True and holds == 2,
          "B's own acquire of that key does not wait: it counts a second hold of A's lock",
          f"acquired={got}, holds={holds}")
    (got,) = one(b, "SELECT pglocks_release(%s) AND pglocks_release(%s)", (key, key))
    check(got is True, "and B can release a lock it never took")
    check(server_holders(mon, key) == [], "after which the lock is free", str(server_holders(mon, key)))

    # The same pool with a transaction-scope hold: nothing passes to the next client.
    a = pooled("one")
    run(a, "BEGIN")
    one(a, "SELECT pglocks_acquire(%s, scope => 'transaction')", (key,))
    run(a, "COMMIT")
    a.close()
    b = pooled("one")
    held = rows(b, "SELECT key FROM pglocks_held()")
    check(held == [] and server_holders(mon, key) == [],
          "a transaction-scope hold on the same pool does not pass to the next client", str(held))
    b.close()

    # Pool of two: A's next transaction may run on the other backend, and its release misses.
    key = "pooler:lost"
    a = pooled()
    got, p1 = one(a, "SELECT pglocks_acquire(%s), pg_backend_pid()", (key,))
    check(got is True, "client A takes a session hold through a two-connection pool")
    # Pin the backend that holds A's lock under another client's open transaction. Idle
    # server connections are handed out most recently used first, but a second client
    # covers the case where the first one got the other backend.
    openers = []
    pinned = None
    for _ in range(2):
        c = pooled()
        run(c, "BEGIN")
        (pid,) = one(c, "SELECT pg_backend_pid()")
        openers.append(c)
        if pid == p1:
            pinned = c
            break
    check(pinned is not None, "another client's transaction now runs on A's backend")
    for c in openers:
        if c is not pinned:
            run(c, "COMMIT")
    got, p2 = one(a, "SELECT pglocks_release(%s), pg_backend_pid()", (key,))
    check(got is False and p2 != p1,
          "A's release lands on the other backend and releases nothing", f"released={got} on pid {p2}")
    check(server_holders(mon, key) == [(p1, True)],
          "the lock stays held by a backend A no longer talks to", str(server_holders(mon, key)))
    if pinned is not None:
        held = rows(pinned, "SELECT key, holds FROM pglocks_held()")
        check(held == [(key, 1)], "the client whose transaction is on that backend holds it",
              str(held))
        one(pinned, "SELECT pglocks_release_all()")
        run(pinned, "COMMIT")
    for c in openers + [a]:
        c.close()
    check(all_advisory(mon) == [], "no advisory lock remains", str(all_advisory(mon)))


# (d) a pooled role under pglocks.session_locks = deny ---------------------------------------

APP_ROLE = "pglocks_pooled_app"


def denied_role(mon):
    print("-- a role with pglocks.session_locks = deny behind the pooler", flush=True)
    key = "pooler:guarded"
    # pgbouncer keeps one pool per database and user: the role's server connections are
    # opened as that role, so the server applies its ALTER ROLE settings to each of them,
    # whichever client of the role gets one.
    # (Calling a pglocks function first loads the library, which defines the setting.)
    show = "SELECT pglocks_key('x') IS NOT NULL, current_setting('pglocks.session_locks')"
    app = pooled("app")
    (_, setting) = one(app, show)
    check(setting == "deny", "the role's server connection starts with its role setting",
          setting)
    other = pooled()
    (_, theirs) = one(other, show)
    other.close()
    check(theirs == "allow", "other roles' server connections keep the default", theirs)

    err = None
    try:
        one(app, "SELECT pglocks_acquire(%s)", (key,))
    except psycopg2.Error as e:
        err = e
    hint = err.diag.message_hint if err is not None else ""
    check(err is not None and err.pgcode == "55000",
          "a session-scope acquire through the pooler is an error",
          f"{err.pgcode}: {err.diag.message_primary}" if err is not None else "no error")
    check(hint is not None and "scope => 'transaction'" in hint and "pglocks_with_lock" in hint,
          "its hint names transaction scope and pglocks_with_lock", str(hint))
    for sql in ("SELECT pglocks_acquire_token(%s)", "SELECT pglocks_acquire_all(ARRAY[%s])",
                "CALL pglocks_acquire_detached(%s)"):
        code = None
        try:
            one(app, sql, (key,))
        except psycopg2.Error as e:
            code = e.pgcode
        check(code == "55000", f"so is {sql.split('(')[0].split()[-1]}", str(code))
    check(server_holders(mon, key) == [], "and no lock stays on a server connection",
          str(server_holders(mon, key)))
    app.close()
    nxt = pooled("app")
    held = rows(nxt, "SELECT key FROM pglocks_held()")
    check(held == [], "the role's next client inherits nothing", str(held))

    # What the role is meant to do instead works as before.
    run(nxt, "BEGIN")
    got, pid = one(nxt, "SELECT pglocks_acquire(%s, scope => 'transaction'), pg_backend_pid()",
                   (key,))
    check(got is True and server_holders(mon, key) == [(pid, True)],
          "a transaction-scope acquire through the pooler takes the lock")
    run(nxt, "COMMIT")
    check(server_holders(mon, key) == [], "and the commit releases it",
          str(server_holders(mon, key)))
    (got,) = one(nxt, "SELECT pglocks_with_lock(%s, 'SELECT 1')", (key,))
    check(got is True and server_holders(mon, key) == [], "pglocks_with_lock works too")
    nxt.close()
    check(all_advisory(mon) == [], "no advisory lock remains", str(all_advisory(mon)))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--dbname", required=True)
    args = ap.parse_args()
    base = dict(host="127.0.0.1", port=args.port, user="postgres")
    POOLED["two"] = dict(base, dbname=args.dbname)
    POOLED["one"] = dict(base, dbname=args.dbname + "_one")
    POOLED["app"] = dict(base, dbname=args.dbname + "_one", user=APP_ROLE)

    DB["dbname"] = args.dbname
    mon = direct()
    run(mon, """
        CREATE TABLE pooler_counter (name text PRIMARY KEY, v int NOT NULL);
        CREATE SEQUENCE pooler_seq MINVALUE 0;
        CREATE TABLE pooler_runs (id serial PRIMARY KEY, tag text, started timestamptz,
                                  ended timestamptz);
        CREATE TABLE pooler_marks (n int)""")

    transaction_scope(mon)
    transaction_scope_counter()
    with_lock(mon)
    session_holds(mon)
    denied_role(mon)
    mon.close()

    if failures:
        print(f"{len(failures)} check(s) failed", flush=True)
        sys.exit(1)
    print("all pooler checks passed", flush=True)


if __name__ == "__main__":
    main()
