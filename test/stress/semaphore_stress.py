#!/usr/bin/env python3
"""Stress test of counting semaphores (run by test/suites/semaphore_stress.sh).

16 sessions share a semaphore of 3 slots for a bounded time. Each loops: take a slot
(waiting without limit, with a timeout, or trying once), then, on a second connection that
is never cancelled, increment a counter in a table and check it is at most 3, hold a few
milliseconds, decrement, and release the slot. A canceller cancels waiting calls at random
(a cancel that lands as the call returns leaves the slot taken, as after pg_advisory_lock:
then the session must hold exactly that slot, and releases it);
a monitor samples pg_locks: never more than 3 slot locks granted, never a slot above 2.
At the end nothing may be held or queued and the counter must be 0. Exits 1 on a violation.
"""
import argparse
import hashlib
import random
import sys
import threading
import time

import psycopg2
import psycopg2.errors

SLOTS = 3
NAME = "stress-sem"


def slot_key(name, slot):
    digest = hashlib.sha256(name.encode() + b"\0" + str(slot).encode()).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


def connect(dsn):
    c = psycopg2.connect(dsn)
    c.autocommit = True
    return c


class Stress:
    def __init__(self, dsn, sessions, seconds, seed):
        self.dsn, self.sessions, self.seconds = dsn, sessions, seconds
        self.rng = random.Random(seed)
        self.stop = threading.Event()
        self.lock = threading.Lock()
        self.failures = []
        self.stats = {"held": 0, "null": 0, "cancelled": 0, "samples": 0, "max_counter": 0,
                      "max_granted": 0, "late_cancels": 0}
        self.waiting = {}  # pid -> True while its call waits (for the canceller)
        keys = [slot_key(NAME, i) for i in range(SLOTS + 2)]
        self.slot_keys = keys[:SLOTS]
        self.beyond = keys[SLOTS:]

    def fail(self, what):
        with self.lock:
            self.failures.append(what)
        print("FAIL " + what, flush=True)
        self.stop.set()

    def count(self, k, n=1):
        with self.lock:
            self.stats[k] += n

    def worker(self, i):
        rng = random.Random(self.rng.random())
        lock_conn, work_conn = connect(self.dsn), connect(self.dsn)
        lc, wc = lock_conn.cursor(), work_conn.cursor()
        lc.execute("SELECT pg_backend_pid()")
        pid = lc.fetchone()[0]
        while not self.stop.is_set():
            kind = rng.choice(["wait", "timeout", "try"])
            sql = {"wait": "SELECT pglocks_acquire_slot(%s, 3)",
                   "timeout": "SELECT pglocks_acquire_slot(%s, 3, timeout => '20ms')",
                   "try": "SELECT pglocks_acquire_slot(%s, 3, wait => false)"}[kind]
            self.waiting[pid] = kind == "wait"
            try:
                lc.execute(sql, (NAME,))
                slot = lc.fetchone()[0]
            except psycopg2.errors.QueryCanceled:
                self.waiting[pid] = False
                self.count("cancelled")
                # A cancel that lands after the call has taken its slot, while the statement
                # ends, fails the statement and leaves the session-scope hold, as it would
                # after pg_advisory_lock: that slot must be held and is released here. A
                # cancel during the wait leaves nothing.
                lc.execute("SELECT key FROM pglocks_held()")
                left = [r[0] for r in lc.fetchall()]
                if len(left) > 1 or (left and not left[0].startswith(NAME + "#")):
                    self.fail(f"session {i}: a cancelled call left {left}")
                if left:
                    self.count("late_cancels")
                    lc.execute("SELECT pglocks_release_slot(%s, %s)", (NAME, int(left[0].split("#")[1])))
                    if not lc.fetchone()[0]:
                        self.fail(f"session {i}: {left[0]} shown but not held")
                continue
            self.waiting[pid] = False
            if slot is None:
                if kind == "wait":
                    self.fail(f"session {i}: a wait without limit returned NULL")
                self.count("null")
                continue
            if not 0 <= slot < SLOTS:
                self.fail(f"session {i}: slot {slot}")
            self.count("held")
            wc.execute("UPDATE sem_counter SET n = n + 1 RETURNING n")
            n = wc.fetchone()[0]
            with self.lock:
                self.stats["max_counter"] = max(self.stats["max_counter"], n)
            if n > SLOTS:
                self.fail(f"session {i}: {n} holders at once")
            time.sleep(rng.random() * 0.004)
            wc.execute("UPDATE sem_counter SET n = n - 1")
            while True:  # a cancel meant for the wait may reach the release instead
                try:
                    lc.execute("SELECT pglocks_release_slot(%s, %s)", (NAME, slot))
                    if not lc.fetchone()[0]:
                        self.fail(f"session {i}: slot {slot} was not held at release")
                    break
                except psycopg2.errors.QueryCanceled:
                    continue
        lock_conn.close()
        work_conn.close()

    def canceller(self):
        conn = connect(self.dsn)
        cur = conn.cursor()
        rng = random.Random(self.rng.random())
        while not self.stop.is_set():
            time.sleep(rng.random() * 0.03)
            pids = [p for p, w in list(self.waiting.items()) if w]
            if pids:
                cur.execute("SELECT pg_cancel_backend(%s)", (rng.choice(pids),))
        conn.close()

    def monitor(self):
        conn = connect(self.dsn)
        cur = conn.cursor()
        q = ("SELECT count(*) FILTER (WHERE key = ANY(%s) AND granted), "
             "count(*) FILTER (WHERE key = ANY(%s)) FROM ("
             "SELECT ((classid::bigint << 32) | objid::bigint) AS key, granted FROM pg_locks "
             "WHERE locktype = 'advisory' AND objsubid = 1) l")
        while not self.stop.is_set():
            cur.execute(q, (self.slot_keys, self.beyond))
            granted, beyond = cur.fetchone()
            self.count("samples")
            with self.lock:
                self.stats["max_granted"] = max(self.stats["max_granted"], granted)
            if granted > SLOTS:
                self.fail(f"pg_locks: {granted} slot locks granted")
            if beyond:
                self.fail("pg_locks: a slot lock beyond the last slot")
            time.sleep(0.002)
        conn.close()

    def run(self):
        setup = connect(self.dsn)
        cur = setup.cursor()
        cur.execute("DROP TABLE IF EXISTS sem_counter; CREATE TABLE sem_counter (n int); "
                    "INSERT INTO sem_counter VALUES (0)")
        threads = [threading.Thread(target=self.worker, args=(i,)) for i in range(self.sessions)]
        threads += [threading.Thread(target=self.canceller), threading.Thread(target=self.monitor)]
        for t in threads:
            t.start()
        self.stop.wait(self.seconds)
        self.stop.set()
        for t in threads:
            t.join(60)
        cur.execute("SELECT n FROM sem_counter")
        if cur.fetchone()[0] != 0:
            self.fail("the counter is not 0 at the end")
        cur.execute("SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND database = "
                    "(SELECT oid FROM pg_database WHERE datname = current_database())")
        if cur.fetchone()[0] != 0:
            self.fail("advisory locks left at the end")
        s = self.stats
        print(f"{self.sessions} sessions, {SLOTS} slots, {self.seconds}s: {s['held']} slots taken, "
              f"{s['null']} NULL (try/timeout), {s['cancelled']} calls cancelled "
              f"({s['late_cancels']} after taking their slot), "
              f"{s['samples']} pg_locks samples; most holders seen {s['max_counter']}, "
              f"most slot locks granted {s['max_granted']}", flush=True)
        if not self.failures and (s["held"] < 100 or s["cancelled"] == 0 or s["max_counter"] != SLOTS):
            self.fail("too little happened to test anything")
        return 1 if self.failures else 0


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--dsn", required=True)
    ap.add_argument("--sessions", type=int, default=16)
    ap.add_argument("--seconds", type=float, default=20)
    ap.add_argument("--seed", type=int, default=int(time.time()))
    a = ap.parse_args()
    print(f"seed {a.seed}", flush=True)
    sys.exit(Stress(a.dsn, a.sessions, a.seconds, a.seed).run())


if __name__ == "__main__":
    main()
