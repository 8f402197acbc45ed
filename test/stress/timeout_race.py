#!/usr/bin/env python3
"""Stress test: releases racing timed waits (run by test/suites/timeout_race.sh).

Every round, session H holds a bigint key and session W asks for it with
pglocks_acquire(key, timeout => T), T a few milliseconds. H releases it at a moment
jittered around the instant W's timeout fires, so that the server's grant and the timeout
race. After the round W's answer is checked against the server's lock table (pg_locks,
read by a third session M) and against W's own pglocks_held():

  true   W's pid holds exactly that advisory lock, granted, in the requested mode, and
         pglocks_held() shows exactly one hold of it
  false  W's pid has no advisory lock, granted or awaited, and pglocks_held() is empty

Cancel rounds add a third event at the same instant: pg_cancel_backend(W) from M, or W's
own statement_timeout. A cancelled call must leave nothing held and nothing queued. Half of
them run inside a transaction with scope => 'transaction', where that is exact. In the
session-scope half a cancel can also land just after the call has taken the lock (the
statement fails after pglocks_acquire has returned, as it would after pg_advisory_lock):
that outcome is counted apart and accepted only when the hold is counted in pglocks_held().

W waits with deadlock_timeout = 1ms, so the deadlock check runs in every wait, and half of
the rounds with log_lock_waits = on, which puts a log write between the server seeing the
grant and stopping the lock timer.

The moment of H's release follows a staircase per T: one step later after a true, one
step earlier after a false, so it settles where each outcome is equally likely, the
instant the two race. Exits 1 on any inconsistency.
"""
import argparse
import random
import select
import sys
import time
from collections import Counter

import psycopg2
import psycopg2.errors
import psycopg2.extensions as ext

MASK32 = 0xFFFFFFFF


def wait(conn, limit=30.0):
    deadline = time.monotonic() + limit
    while True:
        state = conn.poll()
        if state == ext.POLL_OK:
            return
        left = deadline - time.monotonic()
        if left <= 0:
            raise TimeoutError("no answer from the server within %.0fs" % limit)
        if state == ext.POLL_READ:
            select.select([conn.fileno()], [], [], left)
        elif state == ext.POLL_WRITE:
            select.select([], [conn.fileno()], [], left)
        else:
            raise psycopg2.OperationalError("bad poll state %r" % state)


class Session:
    """One connection; W's is asynchronous so that its call can be in flight while H and M act."""

    def __init__(self, dsn, name, asynchronous=False):
        self.name = name
        self.asynchronous = asynchronous
        if asynchronous:
            self.conn = psycopg2.connect(dsn, async_=1)
            wait(self.conn)
        else:
            self.conn = psycopg2.connect(dsn)
            self.conn.autocommit = True
        self.cur = self.conn.cursor()
        self.pid = self.query("SELECT pg_backend_pid()")[0][0]

    def send(self, sql, args=None):
        self.cur.execute(sql, args)

    def result(self):
        if self.asynchronous:
            wait(self.conn)
        return self.cur.fetchall() if self.cur.description else None

    def query(self, sql, args=None):
        self.send(sql, args)
        return self.result()


def split_key(k):
    return (k >> 32) & MASK32, k & MASK32


class Race:
    def __init__(self, dsn, seed):
        self.rng = random.Random(seed)
        self.h = Session(dsn, "H")
        self.w = Session(dsn, "W", asynchronous=True)
        self.m = Session(dsn, "M")
        # Widens the instant in which W's timer can fire after the grant (see the top).
        self.w.query("SET deadlock_timeout = '1ms'")
        self.log_lock_waits = False
        self.outcomes = Counter()
        self.failures = []
        self.late_cancels = 0
        self.unchecked = 0  # rounds whose pglocks_held() check a late cancel cut short
        self.in_txn = False
        self.txn_cut_short = False
        self.raced_grants = 0  # true after waiting at least T: granted at the timeout's edge
        self.delay = {}  # T (ms) -> seconds from sending W's call to sending H's release

    def fail(self, rnd, what):
        msg = f"round {rnd['n']} ({rnd['mode']}, T={rnd['t_ms']}ms, scope={rnd['scope']}, " \
              f"shared={rnd['shared']}, log_lock_waits={rnd['log_lock_waits']}, key={rnd['key']}, " \
              f"result={rnd['result']}): {what}"
        print("FAIL " + msg, flush=True)
        self.failures.append(msg)

    def w_checked(self, sql, args=None, tries=5):
        """Runs a read-only or idempotent statement on W, absorbing a cancel meant for the
        round that reached W only after its call had returned. Inside a transaction such a
        cancel aborts it: then the statement is not run and the result is None."""
        for _ in range(tries):
            try:
                return self.w.query(sql, args)
            except psycopg2.errors.QueryCanceled:
                self.late_cancels += 1
                if self.in_txn:
                    self.w.query("ROLLBACK")
                    self.in_txn = False
                    self.txn_cut_short = True
                    return None
        raise RuntimeError("W keeps being cancelled")

    def w_advisory(self):
        return self.m.query("""
            SELECT classid::bigint, objid::bigint, objsubid::int, mode, granted FROM pg_locks
            WHERE locktype = 'advisory' AND pid = %s ORDER BY granted""", (self.w.pid,))

    def h_state_clean(self, rnd):
        left = self.m.query("SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND pid = %s",
                            (self.h.pid,))[0][0]
        held = self.h.query("SELECT count(*) FROM pglocks_held()")[0][0]
        if left or held:
            self.fail(rnd, f"H still has {left} advisory lock(s), {held} pglocks_held row(s) "
                           f"after its release")

    def spin_until(self, t):
        while time.perf_counter() < t:
            pass

    def round(self, n, mode):
        rng = self.rng
        t_ms = rng.choice((2, 3, 5, 8))
        key = rng.getrandbits(64) - (1 << 63)
        shared = rng.random() < 0.25
        scope = "session"
        if mode != "timeout" and rng.random() < 0.5:
            scope = "transaction"
        rnd = dict(n=n, mode=mode, t_ms=t_ms, key=key, shared=shared, scope=scope, result=None,
                   log_lock_waits=None)
        d = self.delay.setdefault(t_ms, t_ms / 1000.0 + 0.0003)
        release_at = max(0.0, d + rng.uniform(-0.0006, 0.0006))

        log_lock_waits = rng.random() < 0.5
        if log_lock_waits != self.log_lock_waits:
            self.w.query("SET log_lock_waits = " + ("on" if log_lock_waits else "off"))
            self.log_lock_waits = log_lock_waits
        rnd["log_lock_waits"] = log_lock_waits

        if self.h.query("SELECT pglocks_acquire(%s::bigint)", (key,))[0][0] is not True:
            self.fail(rnd, "H could not take a free lock")
            return

        stmt_timeout = None
        wait_timeout = f"{t_ms} ms"
        if scope == "transaction":
            self.w.query("BEGIN")
        if mode == "statement_timeout":
            stmt_timeout = t_ms
            # Either the statement's timer alone races the release, or both timers do.
            if rng.random() < 0.5:
                wait_timeout = "10 s"
            # LOCAL inside a transaction, so that a rollback cannot leave the timer set.
            self.w.query(("SET LOCAL" if scope == "transaction" else "SET") + " statement_timeout = %s",
                         (stmt_timeout,))

        t0 = time.perf_counter()
        self.w.send("SELECT pglocks_acquire(%s::bigint, shared => %s, timeout => %s::interval, "
                    "scope => %s)", (key, shared, wait_timeout, scope))
        cancel_at = None
        if mode == "pg_cancel_backend":
            cancel_at = max(0.0, d + rng.uniform(-0.0008, 0.0008))
        events = sorted([(release_at, "release")] + ([(cancel_at, "cancel")] if cancel_at is not None else []))
        for at, what in events:
            self.spin_until(t0 + at)
            if what == "release":
                if self.h.query("SELECT pglocks_release(%s::bigint)", (key,))[0][0] is not True:
                    self.fail(rnd, "H's release returned false")
            else:
                self.m.query("SELECT pg_cancel_backend(%s)", (self.w.pid,))

        error = None
        try:
            result = self.w.result()[0][0]
        except psycopg2.errors.QueryCanceled as e:
            result, error = "cancel", e
        except psycopg2.Error as e:
            result, error = "error", e
        elapsed = time.perf_counter() - t0
        rnd["result"] = result

        if mode == "timeout":
            # The staircase: aim the release at the instant W's timeout fires.
            step = 0.0001
            if result is True:
                self.delay[t_ms] = d + step
            elif result is False:
                self.delay[t_ms] = max(0.0, d - step)

        # What the server says W has now, before W runs anything else. An aborted
        # transaction has already released its transaction-scope holds.
        want_held = (split_key(key)[0], split_key(key)[1], 1,
                     "ShareLock" if shared else "ExclusiveLock", True)
        server = self.w_advisory()
        self.in_txn = scope == "transaction"
        self.txn_cut_short = False
        if self.in_txn and error is not None:
            self.w.query("ROLLBACK")
            self.in_txn = False
        if stmt_timeout is not None and (scope == "session" or self.in_txn):
            self.w_checked(("SET LOCAL" if self.in_txn else "SET") + " statement_timeout = 0")
        self.w_checked("SELECT 1")  # absorbs a cancel that arrived after the call returned
        held = self.w_checked("SELECT key, lock_key, shared, scope, holds FROM pglocks_held()")
        want_row = [(str(key), key, shared, scope, 1)]
        if self.txn_cut_short:
            # A late cancel aborted the transaction before the check: the hold went with
            # it, and only the server's side was checked.
            held = want_row if result is True else []
            self.unchecked += 1

        if result is True:
            outcome = "true"
            if elapsed * 1000 >= t_ms and wait_timeout != "10 s":
                self.raced_grants += 1
            if server != [want_held]:
                self.fail(rnd, f"returned true but pg_locks shows {server} for W")
            if held != want_row:
                self.fail(rnd, f"returned true but pglocks_held() is {held}")
        elif result is False:
            outcome = "false"
            if mode == "statement_timeout" and wait_timeout == "10 s":
                self.fail(rnd, "returned false with a 10 s timeout")
            if server:
                self.fail(rnd, f"returned false but pg_locks shows {server} for W")
            if held:
                self.fail(rnd, f"returned false but pglocks_held() is {held}")
        elif result == "cancel" and mode != "timeout":
            if not server and not held:
                outcome = "cancel"
            elif scope == "session" and server == [want_held] and held == want_row:
                # The statement failed after pglocks_acquire returned true; the hold is known.
                outcome = "cancel after grant"
            else:
                outcome = "cancel"
                self.fail(rnd, f"cancelled ({error.pgcode}) but pg_locks shows {server}, "
                               f"pglocks_held() {held}")
        else:
            outcome = "error"
            self.fail(rnd, f"unexpected error {getattr(error, 'pgcode', None)}: "
                           f"{str(error).strip()}; pg_locks shows {server}, pglocks_held() {held}")
        if any(not g for *_, g in server):
            self.fail(rnd, f"W is still queued: {server}")
        self.outcomes[(mode, outcome)] += 1

        # Back to a clean state, and check that the hold goes with its release.
        if self.in_txn:
            self.w.query("COMMIT")
            self.in_txn = False
        else:
            self.w_checked("SELECT pglocks_release_all()")
        after_server = self.w_advisory()
        after_held = self.w_checked("SELECT count(*) FROM pglocks_held()")[0][0]
        if after_server or after_held:
            self.fail(rnd, f"after its release W still has {after_server}, {after_held} held row(s)")
        self.h_state_clean(rnd)

    def run(self, seconds, max_rounds):
        modes = ["timeout"] * 6 + ["pg_cancel_backend"] * 2 + ["statement_timeout"] * 2
        deadline = time.monotonic() + seconds
        n = 0
        while time.monotonic() < deadline and n < max_rounds and len(self.failures) < 20:
            n += 1
            self.round(n, self.rng.choice(modes))
        return n


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--dsn", default="", help="libpq connection string (default: PG* environment)")
    ap.add_argument("--seconds", type=float, default=20.0)
    ap.add_argument("--max-rounds", type=int, default=100000)
    ap.add_argument("--seed", type=int, default=None)
    args = ap.parse_args()
    seed = args.seed if args.seed is not None else random.randrange(1 << 30)
    print(f"seed {seed} (rerun with --seed {seed})", flush=True)

    race = Race(args.dsn, seed)
    rounds = race.run(args.seconds, args.max_rounds)

    print(f"\n{rounds} rounds in about {args.seconds:.0f}s")
    print(f"{'mode':<20} {'true':>6} {'false':>6} {'cancel':>7} {'cancel after grant':>19} {'error':>6}")
    for mode in ("timeout", "pg_cancel_backend", "statement_timeout"):
        c = {o: race.outcomes[(mode, o)] for o in ("true", "false", "cancel", "cancel after grant", "error")}
        print(f"{mode:<20} {c['true']:>6} {c['false']:>6} {c['cancel']:>7} {c['cancel after grant']:>19} "
              f"{c['error']:>6}")
    print(f"true after waiting at least T (grant at the timeout's edge): {race.raced_grants}")
    print(f"cancels that reached W only after its call had returned: {race.late_cancels} "
          f"({race.unchecked} of them aborted the transaction before pglocks_held() was read)")
    print("release moment the staircase settled on, per T: " +
          ", ".join(f"{t} ms -> {d * 1000:.2f} ms" for t, d in sorted(race.delay.items())))

    timeout_true = race.outcomes[("timeout", "true")]
    timeout_false = race.outcomes[("timeout", "false")]
    if timeout_true == 0 or timeout_false == 0:
        # Without both outcomes the releases never met the timeouts: nothing was tested.
        race.failures.append(f"the releases did not race the timeouts "
                             f"({timeout_true} true, {timeout_false} false)")
    if race.failures:
        print(f"\n{len(race.failures)} inconsistenc{'y' if len(race.failures) == 1 else 'ies'}:")
        for f in race.failures[:20]:
            print("  " + f)
        sys.exit(1)
    print("no inconsistency")


if __name__ == "__main__":
    main()
