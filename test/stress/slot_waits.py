#!/usr/bin/env python3
"""Waits for a slot of a counting semaphore (run by test/suites/slot_waits.sh).

The isolation tester cannot drive these: it moves on from a step only when the step ends or
waits for a heavyweight lock, and the head of a semaphore's queue sleeps on a condition
variable instead. Each scenario here starts calls on asynchronous connections and checks,
after it, the call's answer and the server's lock table:

  hand-off     a waiter gets the slot when it is freed by pglocks_release_slot,
               pglocks_release_all, the commit or rollback of a transaction-scope slot, the
               holder's disconnection or termination, and pg_advisory_unlock_all or DISCARD
               ALL once the holder's transaction ends (all signalled: well within the 500 ms
               of the periodic look); pg_advisory_unlock_all inside a transaction that stays
               open is found by the periodic look
  full set     with three slots held, the waiter gets exactly the one freed
  timeout      NULL after the timeout, nothing held, nothing queued
  cancel       of the head of the queue, of a waiter queued behind it; lock_timeout and
               statement_timeout: their errors, nothing held or queued, the others served
  view         pglocks_locks shows the head holding name#queue, the waiters behind it
               waiting for it
  deadlock     one through the head's sleep (the holders of the slots wait for a lock of
               the head's, directly or through others) ends the head's wait with 40P01
               after deadlock_timeout, with a timeout or without, and when the cycle
               closes during the sleep; a holder waiting for a lock the head holds in a
               mode that does not conflict, and that a session waiting for nothing holds
               in one that does, is no deadlock
  order        waiters are served in the order they arrived, and a call made while they
               wait (by the session that freed the slot, say) does not take a slot ahead
               of them, unless its session holds a slot of the semaphore

Exits 1 on the first failure, printing it.
"""
import argparse
import select
import sys
import time

import psycopg2
import psycopg2.errors
import psycopg2.extensions as ext

SIGNALLED = 0.35  # a signalled hand-off must be well below the 500 ms periodic look


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


class Session:
    def __init__(self, dsn):
        self.conn = psycopg2.connect(dsn, async_=1)
        wait(self.conn)
        self.cur = self.conn.cursor()
        self.pid = self.q("SELECT pg_backend_pid()")

    def start(self, sql):
        self.sent = time.monotonic()
        self.cur.execute(sql)

    def done(self):
        return self.conn.poll() == ext.POLL_OK

    def finish(self, limit=30.0):
        """The call's single value, or the exception it raised; and when it ended."""
        try:
            wait(self.conn, limit)
            value = self.cur.fetchone()[0] if self.cur.description else None
        except psycopg2.Error as e:
            value = e
        return value, time.monotonic()

    def q(self, sql):
        self.start(sql)
        value, _ = self.finish()
        if isinstance(value, Exception):
            raise value
        return value

    def close(self):
        self.conn.close()


class Scenarios:
    def __init__(self, dsn):
        self.dsn = dsn
        self.m = Session(dsn)
        self.count = 0

    def fail(self, what):
        print("FAIL " + what, flush=True)
        sys.exit(1)

    def ok(self, what):
        self.count += 1
        print("ok: " + what, flush=True)

    def locks_of(self, s):
        return self.m.q(f"SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND pid = {s.pid}")

    def held(self, s):
        return s.q("SELECT count(*) FROM pglocks_held()")

    def until_waiting(self, s, queued=False):
        """Waits until s's call is in its wait: sleeping on the condition variable (the head),
        or, with queued, waiting for the queue lock."""
        for _ in range(500):
            if queued:
                n = self.m.q(f"SELECT count(*) FROM pg_locks WHERE pid = {s.pid} AND NOT granted")
            else:
                n = self.m.q(f"SELECT count(*) FROM pg_stat_activity WHERE pid = {s.pid} "
                             "AND wait_event_type = 'Extension'")
            if n:
                return
            if s.done():
                self.fail("a call ended when it should wait: %r" % (s.finish()[0],))
            time.sleep(0.01)
        self.fail("session %d never began to wait" % s.pid)

    def handoff(self, how, free, signalled=True, tx=False):
        h, w = Session(self.dsn), Session(self.dsn)
        if tx:
            h.q("BEGIN")
            h.q("SELECT pglocks_acquire_slot('hand', 1, scope => 'transaction')")
        else:
            h.q("SELECT pglocks_acquire_slot('hand', 1)")
        w.start("SELECT pglocks_acquire_slot('hand', 1)")
        self.until_waiting(w)
        t0 = time.monotonic()
        free(h)
        slot, t1 = w.finish()
        if slot != 0:
            self.fail(f"hand-off by {how}: got {slot!r}")
        if signalled and t1 - t0 > SIGNALLED:
            self.fail(f"hand-off by {how} took {t1 - t0:.3f}s: not signalled")
        self.ok(f"hand-off by {how} in {(t1 - t0) * 1000:.1f} ms")
        w.close()
        if not h.conn.closed:
            h.close()

    def run(self):
        self.handoff("pglocks_release_slot", lambda h: h.q("SELECT pglocks_release_slot('hand', 0)"))
        self.handoff("pglocks_release_all", lambda h: h.q("SELECT pglocks_release_all()"))
        # pglocks_release of the slot's documented key, inside a transaction that stays open.
        slot_key = ("(('x' || left(encode(sha256(convert_to('hand', 'UTF8') || '\\x00'::bytea"
                    " || convert_to('0', 'UTF8')), 'hex'), 16))::bit(64)::bigint)")
        self.handoff("pglocks_release of the slot's key in an open transaction",
                     lambda h: (h.q("BEGIN"), h.q(f"SELECT pglocks_release({slot_key})")))
        self.handoff("commit", lambda h: h.q("COMMIT"), tx=True)
        self.handoff("rollback", lambda h: h.q("ROLLBACK"), tx=True)
        self.handoff("disconnection", lambda h: h.close())
        self.handoff("pg_terminate_backend",
                     lambda h: self.m.q(f"SELECT pg_terminate_backend({h.pid})"))
        # Freed behind pglocks' back: seen at the end of the holder's transaction.
        self.handoff("pg_advisory_unlock_all (at the end of its transaction)",
                     lambda h: h.q("SELECT pg_advisory_unlock_all()"))
        self.handoff("DISCARD ALL", lambda h: h.q("DISCARD ALL"))
        # Freed by another session's transaction that never held it: nothing signals it
        # (pg_advisory_unlock_all in a transaction block that is still open); the periodic
        # look finds it.
        self.handoff("pg_advisory_unlock_all in an open transaction (periodic look)",
                     lambda h: (h.q("BEGIN"), h.q("SELECT pg_advisory_unlock_all()")),
                     signalled=False)
        # pglocks_stats counts every call in the semaphore's own row (its name, the key of
        # its queue lock, exclusive): the ten holders' at once, the ten waiters' as waits
        # that ended with a slot.
        row = self.m.q("SELECT coalesce((SELECT acquisitions || ' acquisitions, ' || waits || "
                       "' waits, ' || timeouts || ' timeouts, ' || errors || ' errors' "
                       "FROM pglocks_stats WHERE key = 'hand' AND NOT shared "
                       "AND lock_key <> pglocks_key('hand') AND dbid = "
                       "(SELECT oid FROM pg_database WHERE datname = current_database())), "
                       "'no row')")
        if row != "20 acquisitions, 10 waits, 0 timeouts, 0 errors":
            self.fail(f"pglocks_stats of the hand-offs: {row!r}")
        self.ok("pglocks_stats: " + row + " in the semaphore's row")

        # A full set of three: the waiter gets exactly the slot freed.
        hs = [Session(self.dsn) for _ in range(3)]
        got = sorted(s.q("SELECT pglocks_acquire_slot('three', 3)") for s in hs)
        if got != [0, 1, 2]:
            self.fail(f"three holders got {got}")
        w = Session(self.dsn)
        if w.q("SELECT pglocks_acquire_slot('three', 3, wait => false)") is not None:
            self.fail("a try on a full set got a slot")
        w.start("SELECT pglocks_acquire_slot('three', 3)")
        self.until_waiting(w)
        holder_of_1 = [s for s in hs if s.q("SELECT count(*) FROM pglocks_held() WHERE key = 'three#1'")][0]
        holder_of_1.q("SELECT pglocks_release_slot('three', 1)")
        slot, _ = w.finish()
        if slot != 1:
            self.fail(f"full set: the waiter got {slot!r}, not the freed slot 1")
        self.ok("full set: the waiter gets the slot freed")
        for s in hs + [w]:
            s.close()

        # Timeout: NULL, nothing held, nothing queued.
        h, w = Session(self.dsn), Session(self.dsn)
        h.q("SELECT pglocks_acquire_slot('t', 1)")
        w.start("SELECT pglocks_acquire_slot('t', 1, timeout => '200ms')")
        slot, t1 = w.finish()
        took = t1 - w.sent
        if slot is not None or took < 0.19:
            self.fail(f"timeout: got {slot!r} after {took:.3f}s")
        if self.locks_of(w) or self.held(w):
            self.fail("timeout: the waiter kept a lock")
        self.ok(f"timeout: NULL after {took * 1000:.0f} ms, nothing left")

        # lock_timeout and statement_timeout end the head's wait with their errors.
        for setting, err in (("lock_timeout", psycopg2.errors.LockNotAvailable),
                             ("statement_timeout", psycopg2.errors.QueryCanceled)):
            w.q(f"SET {setting} = '150ms'")
            w.start("SELECT pglocks_acquire_slot('t', 1)")
            res, _ = w.finish()
            w.q(f"RESET {setting}")
            if not isinstance(res, err):
                self.fail(f"{setting}: got {res!r}")
            if self.locks_of(w) or self.held(w):
                self.fail(f"{setting}: the waiter kept a lock")
            self.ok(f"{setting}: {res.pgcode}, nothing left")

        # Cancel the head; then one queued behind a head; the others keep their places.
        w1, w2 = Session(self.dsn), Session(self.dsn)
        w1.start("SELECT pglocks_acquire_slot('t', 1)")
        self.until_waiting(w1)
        w2.start("SELECT pglocks_acquire_slot('t', 1)")
        self.until_waiting(w2, queued=True)
        self.m.q(f"SELECT pg_cancel_backend({w1.pid})")
        res, _ = w1.finish()
        if not isinstance(res, psycopg2.errors.QueryCanceled):
            self.fail(f"cancel of the head: got {res!r}")
        if self.locks_of(w1) or self.held(w1):
            self.fail("cancel of the head: it kept a lock")
        self.until_waiting(w2)  # w2 is the head now
        self.ok("cancel of the head: 57014, nothing left, the next waiter takes its place")
        w1.start("SELECT pglocks_acquire_slot('t', 1)")
        self.until_waiting(w1, queued=True)
        self.m.q(f"SELECT pg_cancel_backend({w1.pid})")
        res, _ = w1.finish()
        if not isinstance(res, psycopg2.errors.QueryCanceled):
            self.fail(f"cancel of a queued waiter: got {res!r}")
        if self.locks_of(w1) or self.held(w1):
            self.fail("cancel of a queued waiter: it kept a lock")
        h.q("SELECT pglocks_release_slot('t', 0)")
        slot, _ = w2.finish()
        if slot != 0:
            self.fail(f"after the cancels the head got {slot!r}")
        self.ok("cancel of a queued waiter: 57014, nothing left; the head is served")
        for s in (h, w, w1, w2):
            s.close()

        # pglocks_locks by name: the holder's slot, the head holding the queue lock, a
        # waiter behind it waiting for that lock and blocked by the head.
        h, w1, w2 = Session(self.dsn), Session(self.dsn), Session(self.dsn)
        h.q("SELECT pglocks_acquire_slot('view', 1)")
        w1.start("SELECT pglocks_acquire_slot('view', 1)")
        self.until_waiting(w1)
        w2.start("SELECT pglocks_acquire_slot('view', 1)")
        self.until_waiting(w2, queued=True)
        rows = self.m.q(
            "SELECT string_agg(CASE pid WHEN %d THEN 'h' WHEN %d THEN 'w1' WHEN %d THEN 'w2' END"
            " || ' ' || key || ' ' || CASE WHEN granted THEN 'held'"
            " ELSE 'waiting, blocked by ' || CASE WHEN blocked_by = ARRAY[%d] THEN 'w1' ELSE"
            " blocked_by::text END END, '; ' ORDER BY key, granted DESC)"
            " FROM pglocks_locks WHERE key LIKE 'view#%%'" % (h.pid, w1.pid, w2.pid, w1.pid))
        want = "h view#0 held; w1 view#queue held; w2 view#queue waiting, blocked by w1"
        if rows != want:
            self.fail(f"pglocks_locks: {rows!r}, not {want!r}")
        self.ok("pglocks_locks: " + rows)
        h.q("SELECT pglocks_release_slot('view', 0)")
        if w1.finish()[0] != 0:
            self.fail("pglocks_locks: the head did not get the slot")
        w1.q("SELECT pglocks_release_slot('view', 0)")
        if w2.finish()[0] != 0:
            self.fail("pglocks_locks: the waiter behind did not get the slot")
        for s in (h, w1, w2):
            s.close()

        # A deadlock through the head's sleep: the head holds a lock that the slot's holder
        # then waits for. The lock manager's detector does not see the head's sleep; the
        # head's own check does, after deadlock_timeout (1 s here): 40P01 for the head, well
        # before its timeout, and without one; then the holder's wait, which no deadlock
        # error ended, is granted once the head gives that lock back (a session lock: the
        # error does not end it).
        for timeout in (", timeout => '5s'", ""):
            h, w = Session(self.dsn), Session(self.dsn)
            w.q("SET deadlock_timeout = '1s'")
            h.q("SELECT pglocks_acquire_slot('dl', 1)")
            w.q("SELECT pglocks_acquire('dl:x')")
            w.start(f"SELECT pglocks_acquire_slot('dl', 1{timeout})")
            self.until_waiting(w)
            h.start("SELECT pglocks_acquire('dl:x')")
            self.until_waiting(h, queued=True)
            res, t1 = w.finish()
            took = t1 - w.sent
            if not isinstance(res, psycopg2.errors.DeadlockDetected) or took > 4.5:
                self.fail(f"deadlock{timeout}: the head got {res!r} after {took:.3f}s")
            if "semaphore \"dl\"" not in str(res):
                self.fail(f"deadlock{timeout}: the error does not name the semaphore: {res}")
            if h.done():
                self.fail(f"deadlock{timeout}: the holder's wait ended: {h.finish()[0]!r}")
            if w.q("SELECT string_agg(key, ',') FROM pglocks_held()") != "dl:x":
                self.fail(f"deadlock{timeout}: the head does not hold just its other lock")
            if self.m.q(f"SELECT count(*) FROM pg_locks WHERE pid = {w.pid} AND NOT granted"):
                self.fail(f"deadlock{timeout}: the head still waits for something")
            w.q("SELECT pglocks_release('dl:x')")
            got, _ = h.finish()
            if got is not True:
                self.fail(f"deadlock{timeout}: the holder got {got!r}")
            self.ok(f"a deadlock through the head's sleep{timeout or ', no timeout'}: 40P01 "
                    f"after {took:.1f} s, then the holder's lock")
            for x in (h, w):
                x.close()

        # A cycle that closes after the head's first check (the holder asks for the head's
        # lock 1.5 s into the sleep) is found by a later one (at 3 s), still 40P01.
        h, w = Session(self.dsn), Session(self.dsn)
        w.q("SET deadlock_timeout = '1s'")
        h.q("SELECT pglocks_acquire_slot('dl', 1)")
        w.q("SELECT pglocks_acquire('dl:x')")
        w.start("SELECT pglocks_acquire_slot('dl', 1)")
        self.until_waiting(w)
        time.sleep(1.5)
        if w.done():
            self.fail(f"late cycle: the head's wait ended before the cycle: {w.finish()[0]!r}")
        h.start("SELECT pglocks_acquire('dl:x')")
        res, t1 = w.finish()
        took = t1 - w.sent
        if not isinstance(res, psycopg2.errors.DeadlockDetected) or took > 12:
            self.fail(f"late cycle: the head got {res!r} after {took:.3f}s")
        w.q("SELECT pglocks_release('dl:x')")
        if h.finish()[0] is not True:
            self.fail("late cycle: the holder did not get the head's lock")
        self.ok(f"a cycle that closes during the head's sleep: 40P01 after {took:.1f} s")
        for x in (h, w):
            x.close()

        # Every slot's holder queued behind the head, each asking for a second slot of two:
        # the head, then the next head (holding one slot, the other's holder queued behind
        # it) get 40P01; the last, head in turn, is no deadlock (the other slot's holder
        # waits for nothing): it sleeps on past its checks and gets the slot given up.
        h1, h2, w = Session(self.dsn), Session(self.dsn), Session(self.dsn)
        for x in (h1, h2, w):
            x.q("SET deadlock_timeout = '1s'")
        h1.q("SELECT pglocks_acquire_slot('dl2', 2)")
        h2.q("SELECT pglocks_acquire_slot('dl2', 2)")
        w.start("SELECT pglocks_acquire_slot('dl2', 2)")
        self.until_waiting(w)
        h1.start("SELECT pglocks_acquire_slot('dl2', 2)")
        self.until_waiting(h1, queued=True)
        h2.start("SELECT pglocks_acquire_slot('dl2', 2)")
        self.until_waiting(h2, queued=True)
        res, _ = w.finish()
        if not isinstance(res, psycopg2.errors.DeadlockDetected):
            self.fail(f"holders queued behind the head: the head got {res!r}")
        first, _ = h1.finish()
        if not isinstance(first, psycopg2.errors.DeadlockDetected):
            self.fail(f"holders queued behind the head: the next head got {first!r}")
        time.sleep(2.5)
        if h2.done():
            self.fail(f"holders queued behind the head: the last ended: {h2.finish()[0]!r}")
        h1.q("SELECT pglocks_release_all()")
        if h2.finish()[0] != 0:
            self.fail("holders queued behind the head: the last did not get slot 0")
        self.ok("slot holders queued behind the head: 40P01 for the head and the next, "
                "then the slot given up")
        for x in (h1, h2, w):
            x.close()

        # No deadlock: the holder waits for a table lock that a third session, which waits
        # for nothing, holds in a conflicting mode, and that the head holds in a mode that
        # does not conflict. The head sleeps on past several checks, and gets the slot
        # once the third session lets the holder go on.
        self.m.q("CREATE TABLE IF NOT EXISTS nd_t ()")
        h, w, z = Session(self.dsn), Session(self.dsn), Session(self.dsn)
        w.q("SET deadlock_timeout = '1s'")
        h.q("SELECT pglocks_acquire_slot('nd', 1)")
        z.q("BEGIN")
        z.q("LOCK TABLE nd_t IN SHARE MODE")
        w.q("BEGIN")
        w.q("LOCK TABLE nd_t IN ACCESS SHARE MODE")
        w.start("SELECT pglocks_acquire_slot('nd', 1)")
        self.until_waiting(w)
        h.start("BEGIN; LOCK TABLE nd_t IN ROW EXCLUSIVE MODE; "
                "SELECT pglocks_release_slot('nd', 0); COMMIT")
        self.until_waiting(h, queued=True)
        time.sleep(3.5)
        if w.done():
            self.fail(f"no deadlock: the head's wait ended: {w.finish()[0]!r}")
        z.q("COMMIT")
        res, _ = h.finish()
        if isinstance(res, Exception):
            self.fail(f"no deadlock: the holder got {res!r}")
        if w.finish()[0] != 0:
            self.fail("no deadlock: the head did not get the slot")
        w.q("COMMIT")
        self.ok("a holder waiting for a table lock another session holds (the head's mode "
                "does not conflict): no deadlock through 3.5 s of checks, then the slot")
        for x in (h, w, z):
            x.close()

        # Arrival order, several times.
        for rnd in range(3):
            h = Session(self.dsn)
            h.q("SELECT pglocks_acquire_slot('o', 1)")
            ws = [Session(self.dsn) for _ in range(4)]
            for i, s in enumerate(ws):
                s.start("SELECT pglocks_acquire_slot('o', 1)")
                self.until_waiting(s, queued=i > 0)
            order = []
            h.q("SELECT pglocks_release_slot('o', 0)")
            pending = list(ws)
            while pending:
                time.sleep(0.05)
                ready = [s for s in pending if s.done()]
                if len(ready) != 1:
                    self.fail(f"order: {len(ready)} waiters served at once")
                s = ready[0]
                slot, _ = s.finish()
                if slot != 0:
                    self.fail(f"order: got {slot!r}")
                order.append(ws.index(s))
                pending.remove(s)
                s.q("SELECT pglocks_release_slot('o', 0)")
            if order != [0, 1, 2, 3]:
                self.fail(f"order: served {order}, arrived 0 1 2 3")
            for s in ws + [h]:
                s.close()
        self.ok("waiters served in arrival order (3 rounds of 4)")

        # A slot freed while a caller waits is the waiter's: the session that freed it and
        # asks again at once, in the same statement, does not take it back; with a try it
        # gets NULL, with a wait it queues behind the waiter and gets the slot once the
        # waiter frees it.
        h, w = Session(self.dsn), Session(self.dsn)
        h.q("SELECT pglocks_acquire_slot('j', 1)")
        w.start("SELECT pglocks_acquire_slot('j', 1, timeout => '30s')")
        self.until_waiting(w)
        again = h.q("SELECT pglocks_release_slot('j', 0)::text || '/' || "
                    "coalesce(pglocks_acquire_slot('j', 1, wait => false)::text, 'NULL')")
        slot, _ = w.finish()
        if again != "true/NULL" or slot != 0:
            self.fail(f"no jumping the queue, try: the freeing session got {again!r}, the waiter {slot!r}")
        # Now w holds the slot; h waits as the head, a third caller behind it.
        h.start("SELECT pglocks_acquire_slot('j', 1, timeout => '30s')")
        self.until_waiting(h)
        x = Session(self.dsn)
        x.start("SELECT pglocks_acquire_slot('j', 1, timeout => '30s')")
        self.until_waiting(x, queued=True)
        w.start("SELECT pglocks_release_slot('j', 0)::text || '/' || "
                "coalesce(pglocks_acquire_slot('j', 1, timeout => '30s')::text, 'NULL')")
        slot, _ = h.finish()
        if slot != 0:
            self.fail(f"no jumping the queue, wait: the head got {slot!r}")
        time.sleep(0.2)
        if w.done() or x.done():
            self.fail("no jumping the queue, wait: a later caller ended while the head holds the slot")
        h.q("SELECT pglocks_release_slot('j', 0)")
        slot, _ = x.finish()
        if slot != 0:
            self.fail(f"no jumping the queue, wait: the second in the queue got {slot!r}")
        time.sleep(0.2)
        if w.done():
            self.fail("no jumping the queue, wait: the freeing session got ahead of the queue")
        x.q("SELECT pglocks_release_slot('j', 0)")
        again, _ = w.finish()
        if again != "true/0":
            self.fail(f"no jumping the queue, wait: the freeing session got {again!r}")
        w.q("SELECT pglocks_release_slot('j', 0)")
        for s in (h, w, x):
            s.close()
        self.ok("a slot freed while callers wait goes to them, not to a later call "
                "(a try gets NULL, a wait queues behind them)")

        # A session that holds a slot is not queued behind a waiter, which may wait for that
        # very slot (here one that passed fewer slots and can use slot 0 only): it takes a
        # free slot at once, with a try and with a wait.
        a, hd = Session(self.dsn), Session(self.dsn)
        a.q("SELECT pglocks_acquire_slot('e', 3)")
        hd.start("SELECT pglocks_acquire_slot('e', 1, timeout => '30s')")
        self.until_waiting(hd)
        tried = a.q("SELECT pglocks_acquire_slot('e', 3, wait => false)")
        a.start("SELECT pglocks_acquire_slot('e', 3, timeout => '5s')")
        waited, _ = a.finish()
        if tried != 1 or waited != 2 or hd.done():
            self.fail(f"a holder ahead of the queue: a try got {tried!r}, a wait {waited!r} "
                      f"(want 1 and 2, the head still waiting: {not hd.done()})")
        a.q("SELECT pglocks_release_slot('e', 0)")
        slot, _ = hd.finish()
        if slot != 0:
            self.fail(f"a holder ahead of the queue: the head got {slot!r} once slot 0 was freed")
        a.q("SELECT pglocks_release_all()")
        hd.q("SELECT pglocks_release_all()")
        for s in (a, hd):
            s.close()
        self.ok("a session holding a slot takes a free one ahead of the queue "
                "(the head may wait for its slot)")
        print(f"{self.count} scenarios passed")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--dsn", required=True)
    Scenarios(ap.parse_args().dsn).run()


if __name__ == "__main__":
    main()
