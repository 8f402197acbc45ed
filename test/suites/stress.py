#!/usr/bin/python3
"""Stress test of pglocks: many sessions, a bounded time, one invariant checker.

Every session loops over a random mix of ways to take a lock (acquire, try, timed acquire,
transaction scope, pglocks_with_lock, the core functions, counted re-acquires, two locks at
once) on a few hot locks, enters a critical section whenever it holds one, and gives the
lock back. Another thread cancels sessions that wait; statement_timeout ends others.

The critical section (stress_cs, in SQL) proves exclusion from inside: on entering, the
holder bumps a non-transactional counter of holders in its mode (sequences are never rolled
back, so every session sees the change at once), then checks that no exclusive holder is
inside beside it and, if it is exclusive, no shared holder either; it checks again after a
short sleep and leaves. A cancellation inside still leaves the counters right. Any breach
bumps stress_violations. A sampler thread also checks pg_locks for two granted exclusive
holders, or a granted exclusive beside a granted shared one.

After every operation a session checks it holds nothing: pglocks_held() is empty and
pg_locks has no advisory lock of its backend. At the end the database has no advisory lock.

Beside them, a terminator takes a lock in a session of its own, lets short-lived sessions
take a first lock and then queue for it, and terminates them while they wait, over pairs of
keys that collide in every per-backend cache pglocks has (the cache of published names and
the cache of key hashes), which is where a waiter's published name used to be lost. At the
end, with every session gone, one session takes as many named locks as the shared name
table has entries and another must see every one of them by name: an entry left behind by
any terminated session would show as a numeric key.
Exits 1 on any violation, unexpected error, leak, or when there was too little contention
for the run to mean anything.

Environment: PGHOST, PGPORT, PGUSER (a superuser); STRESS_SESSIONS (default 36),
STRESS_SECONDS (default 20).
"""
import os
import random
import sys
import threading
import time
from collections import Counter

import psycopg2
import psycopg2.errors

SESSIONS = int(os.environ.get("STRESS_SESSIONS", "36"))
SECONDS = float(os.environ.get("STRESS_SECONDS", "20"))
STATS_LOCK = threading.Lock()
DB = "pglocks_stress"

# Lock identities and the SQL key arguments that name each one. The text key and its
# pglocks_key are the same lock; 4242 is also taken with the core functions.
LOCKS = [
    {"args": ["'stress:a'", "pglocks_key('stress:a')"], "core": "pglocks_key('stress:a')"},
    {"args": ["'stress:b'"], "core": None},
    {"args": ["4242::int8"], "core": "4242"},
    {"args": ["7, 11"], "core": "7, 11"},
]
# Errors an operation may end with by design. Anything else is a failure.
EXPECTED = {
    "57014": "cancelled",        # pg_cancel_backend, statement_timeout
    "40P01": "deadlock",         # two locks taken in either order
    "P0001": "command error",    # the critical section fails on purpose after leaving
}

SETUP = """
CREATE EXTENSION pglocks;
CREATE SEQUENCE stress_violations MINVALUE 0 START 0;
SELECT nextval('stress_violations');
CREATE FUNCTION stress_cs(k int, shared bool, hold_ms float8, fail bool DEFAULT false)
RETURNS int LANGUAGE plpgsql AS $$
DECLARE
    mine text := CASE WHEN shared THEN 's' ELSE 'x' END;
    inside bool := false;
    x int8;
    s int8;
    xo int8;
    so int8;
BEGIN
    BEGIN
        -- One statement each for entering and leaving: no interrupt can come between the
        -- counter and the flag that says whether it was counted.
        inside := nextval(format('stress_%s_in_%s', mine, k)::regclass) IS NOT NULL;
        FOR pass IN 1..2 LOOP
            -- Leaving counters first, entering counters second: holders that come and go
            -- between the reads can only make a count larger, never smaller, so a holder
            -- always counts itself and every overlap still shows.
            xo := pg_sequence_last_value(format('stress_x_out_%s', k)::regclass);
            so := pg_sequence_last_value(format('stress_s_out_%s', k)::regclass);
            x := pg_sequence_last_value(format('stress_x_in_%s', k)::regclass) - xo;
            s := pg_sequence_last_value(format('stress_s_in_%s', k)::regclass) - so;
            IF (shared AND (x <> 0 OR s < 1)) OR (NOT shared AND (x <> 1 OR s <> 0)) THEN
                PERFORM nextval('stress_violations');
                RAISE WARNING 'pglocks stress: exclusion broken on lock % by a % holder: % exclusive and % shared inside',
                    k, mine, x, s;
            END IF;
            IF pass = 1 AND hold_ms > 0 THEN
                PERFORM pg_sleep(hold_ms / 1000.0);
            END IF;
        END LOOP;
        inside := nextval(format('stress_%s_out_%s', mine, k)::regclass) IS NULL;
    EXCEPTION WHEN query_canceled THEN
        IF inside THEN
            PERFORM nextval(format('stress_%s_out_%s', mine, k)::regclass);
        END IF;
        RAISE;
    END;
    IF fail THEN
        RAISE EXCEPTION 'stress: the command fails after its critical section';
    END IF;
    RETURN 1;
END $$;
"""


def connect(dbname):
    conn = psycopg2.connect(dbname=dbname, application_name="pglocks-stress")
    conn.autocommit = True
    return conn


class Failure(Exception):
    pass


class Worker(threading.Thread):
    def __init__(self, n, deadline, stats, problems):
        super().__init__(name=f"worker-{n}", daemon=True)
        self.rng = random.Random(n * 7919 + int(time.time()))
        self.deadline = deadline
        self.stats = stats
        self.problems = problems
        self.conn = connect(DB)
        self.cur = self.conn.cursor()
        self.cur.execute("SELECT pg_backend_pid()")
        self.pid = self.cur.fetchone()[0]
        self.held = []  # (lock index, key argument, shared) of session holds taken and not given back
        self.maybe = None  # the lock of a session-scope acquire whose statement was cancelled
        self.done = threading.Event()
        self.ok_to_close = threading.Event()

    # One statement; returns the first column of the first row.
    def q(self, sql):
        self.cur.execute(sql)
        row = self.cur.fetchone() if self.cur.description else None
        return row[0] if row else None

    # The same statement again after a cancel that was meant for an earlier wait: for the
    # statements that give a lock back, which must not be skipped.
    def q_retry(self, sql):
        for attempt in range(5):
            try:
                return self.q(sql)
            except psycopg2.Error as e:
                if e.pgcode != "57014" or attempt == 4:
                    raise

    # A session-scope acquire. When its statement is cancelled, the lock may still have been
    # granted: a cancel that arrives after the function has returned fails the statement all
    # the same (as with pg_advisory_lock). cleanup() accepts exactly that one hold, and
    # main() bounds how often it may happen.
    def acquire_stmt(self, k, key, shared, sql):
        try:
            return self.q(sql)
        except psycopg2.errors.QueryCanceled:
            self.maybe = (k, key, shared)
            raise

    def count(self, what):
        with STATS_LOCK:
            self.stats[what] += 1

    def problem(self, text):
        with STATS_LOCK:
            self.problems.append(f"{self.name} (pid {self.pid}): {text}")

    def pick(self):
        k = self.rng.randrange(len(LOCKS))
        return k, self.rng.choice(LOCKS[k]["args"]), self.rng.random() < 0.4

    def hold_ms(self):
        return self.rng.choice([0, 0, 0.2, 1, 2, 5])

    def cs(self, k, shared, fail=False):
        self.q(f"SELECT stress_cs({k}, {str(shared).lower()}, {self.hold_ms()}, {str(fail).lower()})")
        self.count("critical sections")

    def release(self, key, shared):
        if self.q_retry(f"SELECT pglocks_release({key}, shared => {str(shared).lower()})") is not True:
            raise Failure(f"pglocks_release({key}, shared => {shared}) found no hold it had")

    def got(self, k, key, shared):
        self.held.append((k, key, shared))

    # --- operations -------------------------------------------------------------------
    def op_acquire(self):
        k, key, shared = self.pick()
        if self.acquire_stmt(k, key, shared, f"SELECT pglocks_acquire({key}, shared => {str(shared).lower()})") is not True:
            raise Failure("a waiting acquire returned false")
        self.got(k, key, shared)
        self.cs(k, shared)

    def op_try(self):
        k, key, shared = self.pick()
        if self.acquire_stmt(k, key, shared, f"SELECT pglocks_acquire({key}, shared => {str(shared).lower()}, wait => false)"):
            self.got(k, key, shared)
            self.cs(k, shared)
        else:
            self.count("tries that failed")

    def op_timed(self):
        k, key, shared = self.pick()
        t = self.rng.choice(["0", "1ms", "5ms", "20ms", "100ms", "1s"])
        if self.acquire_stmt(k, key, shared, f"SELECT pglocks_acquire({key}, shared => {str(shared).lower()}, timeout => '{t}')"):
            self.got(k, key, shared)
            self.cs(k, shared)
        else:
            self.count("timed waits that timed out")

    def op_statement_timeout(self):
        k, key, shared = self.pick()
        self.q("SET statement_timeout = '15ms'")
        try:
            took = self.acquire_stmt(k, key, shared, f"SELECT pglocks_acquire({key}, shared => {str(shared).lower()})")
        finally:
            # A cancel meant for the wait may land here once the acquire has returned.
            self.q_retry("RESET statement_timeout")
        if took is not True:
            raise Failure("a waiting acquire returned false")
        self.got(k, key, shared)
        self.cs(k, shared)

    def op_reentrant(self):
        k, key, shared = self.pick()
        n = self.rng.randint(2, 4)
        for _ in range(n):
            if self.acquire_stmt(k, key, shared, f"SELECT pglocks_acquire({key}, shared => {str(shared).lower()}, timeout => '200ms')"):
                self.got(k, key, shared)
        if any(h[0] == k for h in self.held):
            self.cs(k, shared)
        rows = self.q(f"SELECT coalesce(sum(holds), 0) FROM pglocks_held()")
        if rows != len(self.held):
            raise Failure(f"pglocks_held() counts {rows} holds, the session took {len(self.held)}")

    def op_transaction(self):
        k, key, shared = self.pick()
        self.q("BEGIN")
        try:
            t = self.rng.choice(["NULL", "'50ms'", "'1s'"])
            if self.q(f"SELECT pglocks_acquire({key}, shared => {str(shared).lower()}, "
                      f"timeout => {t}, scope => 'transaction')"):
                self.cs(k, shared)
                if self.rng.random() < 0.3:
                    self.release(key, shared)
                    self.count("transaction holds released early")
                elif self.rng.random() < 0.3:
                    # Rolled back with its savepoint: the hold must go with it.
                    self.q("SAVEPOINT sp")
                    if self.q(f"SELECT pglocks_acquire({key}, shared => {str(shared).lower()}, "
                              f"wait => false, scope => 'transaction')") is not True:
                        raise Failure("a second hold of a held lock was refused")
                    self.q("ROLLBACK TO sp")
                    if self.q("SELECT sum(holds) FROM pglocks_held()") != 1:
                        raise Failure("ROLLBACK TO SAVEPOINT left the savepoint's hold")
            else:
                self.count("timed waits that timed out")
            self.q(self.rng.choice(["COMMIT", "ROLLBACK"]))
        except BaseException:
            self.q("ROLLBACK")
            raise
        if self.q("SELECT count(*) FROM pglocks_held()") != len(self.held):
            raise Failure("a transaction-scope hold outlived its transaction")

    def op_with_lock(self):
        k, key, shared = self.pick()
        fail = self.rng.random() < 0.15
        how = self.rng.choice(["", ", wait => false", ", timeout => '20ms'", ", timeout => '1s'"])
        cmd = f"SELECT stress_cs({k}, {str(shared).lower()}, {self.hold_ms()}, {str(fail).lower()})"
        try:
            ran = self.q(f"SELECT pglocks_with_lock({key}, '{cmd}', shared => {str(shared).lower()}{how})")
        except psycopg2.Error as e:
            if fail and e.pgcode == "P0001":
                self.count("critical sections")
            raise
        if ran:
            if fail:
                raise Failure("pglocks_with_lock returned although its command failed")
            self.count("critical sections")
        else:
            self.count("tries that failed" if "wait" in how else "timed waits that timed out")

    def op_core(self):
        k = self.rng.choice([i for i, l in enumerate(LOCKS) if l["core"]])
        shared = self.rng.random() < 0.4
        sfx = "_shared" if shared else ""
        if self.rng.random() < 0.5:
            # The lock call sits inside the try: a cancel after its grant fails the statement
            # but leaves the lock, which the unlock then gives back (or, if the cancel came
            # first, answers false with a warning).
            try:
                self.q(f"SELECT pg_advisory_lock{sfx}({LOCKS[k]['core']})")
                self.cs(k, shared)
            finally:
                self.q_retry(f"SELECT pg_advisory_unlock{sfx}({LOCKS[k]['core']})")
        else:
            self.q("BEGIN")
            try:
                self.q(f"SELECT pg_advisory_xact_lock{sfx}({LOCKS[k]['core']})")
                self.cs(k, shared)
            finally:
                self.q("COMMIT")

    def op_two_locks(self):
        ks = self.rng.sample(range(len(LOCKS)), 2)
        taken = []
        for k in ks:
            key = LOCKS[k]["args"][0]
            if self.acquire_stmt(k, key, False, f"SELECT pglocks_acquire({key}, timeout => '300ms')"):
                self.got(k, key, False)
                taken.append(k)
            else:
                self.count("timed waits that timed out")
                break
        for k in taken:
            self.cs(k, False)

    def op_behind_the_back(self):
        k, key, shared = self.pick()
        if self.acquire_stmt(k, key, shared, f"SELECT pglocks_acquire({key}, shared => {str(shared).lower()}, timeout => '100ms')"):
            self.got(k, key, shared)
            self.cs(k, shared)
            self.q(self.rng.choice(["SELECT pg_advisory_unlock_all()", "DISCARD ALL"]))
            self.held.clear()
            if self.q("SELECT count(*) FROM pglocks_held()") != 0:
                raise Failure("pglocks_held() lists holds that pg_advisory_unlock_all/DISCARD ALL released")

    OPS = [
        (op_acquire, 14), (op_try, 14), (op_timed, 16), (op_statement_timeout, 6),
        (op_reentrant, 6), (op_transaction, 14), (op_with_lock, 18), (op_core, 6),
        (op_two_locks, 3), (op_behind_the_back, 3),
    ]

    def run(self):
        ops, weights = zip(*self.OPS)
        try:
            while time.time() < self.deadline:
                op = self.rng.choices(ops, weights)[0]
                self.count(op.__name__)
                try:
                    op(self)
                except psycopg2.Error as e:
                    if e.pgcode in EXPECTED:
                        self.count(EXPECTED[e.pgcode])
                    else:
                        self.problem(f"{op.__name__}: unexpected error {e.pgcode}: {e}".strip())
                except Failure as e:
                    self.problem(f"{op.__name__}: {e}")
                self.cleanup(op.__name__)
        except Exception as e:  # the connection itself failed: report, do not hang
            self.problem(f"stopped: {type(e).__name__}: {e}")
        finally:
            self.done.set()
        self.ok_to_close.wait(60)
        self.conn.close()

    # Gives back exactly the session holds this session knows it took, then checks that
    # nothing is left: what a cancelled or failed operation took without saying so is a leak.
    def cleanup(self, opname):
        for _ in range(3):
            try:
                if self.conn.get_transaction_status() != psycopg2.extensions.TRANSACTION_STATUS_IDLE:
                    self.q("ROLLBACK")
                if self.maybe:
                    k, key, shared = self.maybe
                    n = self.q("SELECT coalesce(sum(holds), 0) FROM pglocks_held()")
                    if n == len(self.held) + 1:
                        self.release(key, shared)
                        self.count("acquired as their statement was cancelled")
                    self.maybe = None
                while self.held:
                    k, key, shared = self.held[-1]
                    self.release(key, shared)
                    self.held.pop()
                left = self.q("SELECT (SELECT count(*) FROM pglocks_held()) * 1000 + "
                              "(SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' "
                              " AND pid = pg_backend_pid())")
                if left:
                    self.problem(f"after {opname}: {left // 1000} rows in pglocks_held(), "
                                 f"{left % 1000} advisory locks in pg_locks")
                    self.q("SELECT pglocks_release_all(), pg_advisory_unlock_all()")
                return
            except psycopg2.Error as e:
                # A cancel from the canceller may land here too; try again.
                if e.pgcode != "57014":
                    self.problem(f"cleanup after {opname}: {e.pgcode}: {e}".strip())
                    return
            except Failure as e:
                self.problem(f"cleanup after {opname}: {e}")
                self.held.clear()
                return


def sampler(stop, problems, stats):
    """Checks the server's lock table for conflicting granted modes."""
    conn = connect(DB)
    cur = conn.cursor()
    while not stop.is_set():
        cur.execute("""
            SELECT classid, objid, objsubid,
                   count(*) FILTER (WHERE mode = 'ExclusiveLock'),
                   count(*) FILTER (WHERE mode = 'ShareLock')
            FROM pg_locks
            WHERE locktype = 'advisory' AND granted
              AND database = (SELECT oid FROM pg_database WHERE datname = current_database())
            GROUP BY 1, 2, 3""")
        for classid, objid, sub, x, s in cur.fetchall():
            if x > 1 or (x and s):
                problems.append(f"pg_locks: lock {classid}/{objid}/{sub} granted to "
                                f"{x} exclusive and {s} shared holders")
        stats["pg_locks samples"] += 1
        time.sleep(0.02)
    conn.close()


def canceller(stop, pids, stats):
    """Cancels, now and then, a session that waits for an advisory lock."""
    conn = connect(DB)
    cur = conn.cursor()
    rng = random.Random(1)
    while not stop.is_set():
        cur.execute("""
            SELECT pg_cancel_backend(pid) FROM pg_locks
            WHERE locktype = 'advisory' AND NOT granted AND pid = ANY(%s)
            ORDER BY random() LIMIT 1""", (pids,))
        if cur.fetchone():
            stats["cancels sent"] += 1
        time.sleep(rng.uniform(0.02, 0.1))
    conn.close()


# Pairs of keys that share a slot of the per-backend cache of published names, the second
# pair also one of the cache of key hashes (test/unit/lock_key_test.cpp checks both).
COLLIDING = [("A", "B11"), ("collide-a", "collide-b752")]


def terminator(stop, problems, stats):
    """Terminates sessions while they wait for a lock whose key collides with one they hold."""
    admin = connect(DB)
    acur = admin.cursor()
    holder = connect(DB)
    hcur = holder.cursor()
    rng = random.Random(2)
    while not stop.is_set():
        first, second = rng.choice(COLLIDING)
        shared = rng.random() < 0.3
        hcur.execute(f"SELECT pglocks_acquire('{second}')")
        victim = connect(DB)
        vcur = victim.cursor()
        vcur.execute("SELECT pg_backend_pid()")
        vpid = vcur.fetchone()[0]
        vcur.execute(f"SELECT pglocks_acquire('{first}', shared => {str(shared).lower()})")
        outcome = []

        def wait_in_queue():
            try:
                vcur.execute(f"SELECT pglocks_acquire('{second}', shared => {str(shared).lower()})")
                outcome.append("returned")
            except psycopg2.Error as e:
                outcome.append(e.pgcode or "connection lost")

        t = threading.Thread(target=wait_in_queue, daemon=True)
        t.start()
        for _ in range(500):
            acur.execute("SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' "
                         "AND NOT granted AND pid = %s", (vpid,))
            if acur.fetchone()[0]:
                break
            time.sleep(0.01)
        else:
            problems.append(f"terminator: session {vpid} never queued for {second}")
        acur.execute("SELECT pg_terminate_backend(%s)", (vpid,))
        t.join(30)
        if outcome == ["returned"]:
            problems.append(f"terminator: session {vpid} got {second} while it was held")
        try:
            victim.close()
        except psycopg2.Error:
            pass
        hcur.execute(f"SELECT pglocks_release('{second}')")
        stats["waiters terminated"] += 1
        time.sleep(rng.uniform(0.01, 0.05))
    holder.close()
    admin.close()


def check_no_names_left(problems, stats, other_pid):
    """With no session left, every entry of the shared name table must be free again.
    other_pid: the one other session that stays, which never publishes a name."""
    admin = connect(DB)
    acur = admin.cursor()
    for _ in range(500):
        acur.execute("SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'client backend' "
                     "AND pid <> pg_backend_pid() AND pid <> %s", (other_pid,))
        if acur.fetchone()[0] == 0:
            break
        time.sleep(0.02)
    else:
        stats["name table check"] = "skipped: other sessions are connected"
        admin.close()
        return
    acur.execute("SELECT current_setting('pglocks.max_named_locks', true)::int, "
                 "current_setting('max_locks_per_transaction')::int * "
                 "(current_setting('max_connections')::int + "
                 " current_setting('max_prepared_transactions')::int)")
    entries, lock_slots = acur.fetchone()
    if entries is None or entries == 0 or entries > lock_slots // 2:
        stats["name table check"] = f"skipped: {entries} entries, {lock_slots} lock slots"
        admin.close()
        return
    filler = connect(DB)
    fcur = filler.cursor()
    fcur.execute("SELECT pg_backend_pid()")
    fpid = fcur.fetchone()[0]
    fcur.execute(f"SELECT count(pglocks_acquire('stress-fill:' || g)) FROM generate_series(1, {entries}) g")
    acur.execute("SELECT count(*) FILTER (WHERE key LIKE 'stress-fill:%%'), count(*) "
                 "FROM pglocks_locks WHERE pid = %s", (fpid,))
    named, total = acur.fetchone()
    if named != entries:
        problems.append(f"shared name table: {named} of {total} names fit in its {entries} "
                        f"entries with no other session left: {entries - named} entries leaked")
    stats["name table check"] = f"{named} of {entries} entries free at the end"
    filler.close()
    admin.close()


def main():
    admin = connect("postgres")
    acur = admin.cursor()
    acur.execute(f"DROP DATABASE IF EXISTS {DB}")
    acur.execute(f"CREATE DATABASE {DB}")
    setup = connect(DB)
    scur = setup.cursor()
    scur.execute(SETUP)
    for k in range(len(LOCKS)):
        for name in ("x_in", "x_out", "s_in", "s_out"):
            scur.execute(f"CREATE SEQUENCE stress_{name}_{k} MINVALUE 0 START 0; "
                         f"SELECT nextval('stress_{name}_{k}')")

    stats = Counter()
    problems = []
    deadline = time.time() + SECONDS
    workers = [Worker(n, deadline, stats, problems) for n in range(SESSIONS)]
    stop = threading.Event()
    helpers = [threading.Thread(target=sampler, args=(stop, problems, stats), daemon=True),
               threading.Thread(target=canceller, args=(stop, [w.pid for w in workers], stats),
                                daemon=True),
               threading.Thread(target=terminator, args=(stop, problems, stats), daemon=True)]
    started = time.time()
    for t in helpers + workers:
        t.start()
    for w in workers:
        if not w.done.wait(SECONDS + 120):
            problems.append(f"{w.name} (pid {w.pid}) still runs long after the deadline: a hang")
    stop.set()
    for t in helpers:
        t.join(30)
    elapsed = time.time() - started

    # Every session is still connected: the database must have no advisory lock at all.
    scur.execute("SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND database = "
                 "(SELECT oid FROM pg_database WHERE datname = current_database())")
    left = scur.fetchone()[0]
    if left:
        problems.append(f"{left} advisory locks left in the database at the end")
    for w in workers:
        w.ok_to_close.set()
    for w in workers:
        w.join(30)

    scur.execute("SELECT last_value FROM stress_violations")
    violations = scur.fetchone()[0]
    if violations:
        problems.append(f"{violations} exclusion violations seen inside critical sections")
    for k in range(len(LOCKS)):
        scur.execute(f"SELECT (SELECT last_value FROM stress_x_in_{k}) - (SELECT last_value FROM stress_x_out_{k}),"
                     f"       (SELECT last_value FROM stress_s_in_{k}) - (SELECT last_value FROM stress_s_out_{k}),"
                     f"       (SELECT last_value FROM stress_x_in_{k}), (SELECT last_value FROM stress_s_in_{k})")
        x, s, xin, sin = scur.fetchone()
        stats[f"lock {k}: exclusive / shared entries"] = f"{xin} / {sin}"
        if x or s:
            problems.append(f"lock {k}: {x} exclusive and {s} shared holders never left")

    late = stats["acquired as their statement was cancelled"]
    if late > max(3, stats["cancelled"] // 100):
        problems.append(f"{late} session-scope acquires kept their lock although their "
                        f"statement was cancelled, of {stats['cancelled']} cancellations: more "
                        "than a cancel arriving after the grant explains")

    # A run without contention proves nothing.
    need = {"critical sections": 500, "tries that failed": 10, "timed waits that timed out": 10,
            "cancelled": 5, "waiters terminated": 10}
    for what, n in need.items():
        if stats[what] < n:
            problems.append(f"too little contention: {stats[what]} {what}, wanted {n}+")

    setup.close()
    acur.execute("SELECT pg_backend_pid()")
    check_no_names_left(problems, stats, acur.fetchone()[0])
    acur.execute(f"DROP DATABASE {DB}")
    admin.close()

    print(f"{SESSIONS} sessions for {elapsed:.1f} s")
    width = max(len(k) for k in stats)
    for k in sorted(stats):
        print(f"  {k:<{width}}  {stats[k]}")
    if problems:
        print(f"\n{len(problems)} problems:")
        for p in problems[:50]:
            print("  " + p)
        return 1
    print("no violation, no leak, no unexpected error")
    return 0


if __name__ == "__main__":
    sys.exit(main())
