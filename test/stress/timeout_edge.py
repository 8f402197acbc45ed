#!/usr/bin/env python3
"""Stress test: pglocks' own timeout firing at the instant of the grant (run by
test/suites/timeout_race.sh after timeout_race.py).

One session H loops, server-side, pglocks_acquire('R') / pg_sleep(0-3 ms) /
pglocks_release('R'). Eight sessions W loop, server-side, timed acquires of the same lock
with a 1 ms timeout and lock_timeout = 0: pglocks_acquire, pglocks_acquire_all,
pglocks_acquire_token and (inside a transaction block, where it releases at once)
pglocks_with_lock, releasing whatever they got; two more sessions call
pglocks_acquire_detached the same way, one CALL per round trip (a procedure that ends its
transaction cannot run inside a function's loop). Each round trip runs many rounds, so the
run reaches hundreds of thousands of timed waits, and the pglocks timeout meets the grant
again and again.

Every call must answer true or false. Any error (in particular 55P03, "canceling statement
due to lock timeout", raised after the lock was granted) fails the run, and so does a hold
left behind: after each batch W must have no advisory lock in pg_locks and no row in
pglocks_held(). Exits 1 on any inconsistency.
"""
import argparse
import sys
import threading
import time

import psycopg2

SETUP = r"""
CREATE OR REPLACE FUNCTION pg_temp.edge_holder(deadline timestamptz) RETURNS bigint
LANGUAGE plpgsql AS $$
DECLARE n bigint := 0;
BEGIN
  WHILE clock_timestamp() < deadline LOOP
    PERFORM pglocks_acquire('R');
    PERFORM pg_sleep(random() * 0.003);
    PERFORM pglocks_release('R');
    n := n + 1;
  END LOOP;
  RETURN n;
END $$;
CREATE OR REPLACE FUNCTION pg_temp.edge_waiter(rounds int, kind int) RETURNS int
LANGUAGE plpgsql AS $$
DECLARE got int := 0; ok boolean;
BEGIN
  FOR i IN 1..rounds LOOP
    IF kind = 0 THEN
      ok := pglocks_acquire('R', timeout => '1ms');
    ELSIF kind = 1 THEN
      ok := pglocks_acquire_all(ARRAY['R'], timeout => '1ms');
    ELSIF kind = 2 THEN
      ok := pglocks_acquire_token('R', timeout => '1ms') IS NOT NULL;
    ELSE
      ok := pglocks_with_lock('R', 'SELECT 1', timeout => '1ms');
    END IF;
    IF ok THEN
      got := got + 1;
      IF kind <> 3 THEN PERFORM pglocks_release('R'); END IF;
    END IF;
  END LOOP;
  RETURN got;
END $$;
"""


DETACHED = 4  # the kind of the waiters that CALL pglocks_acquire_detached
DETACHED_BATCH = 200


class Waiter(threading.Thread):
    def __init__(self, dsn, kind, deadline, batch):
        super().__init__(daemon=True)
        self.dsn, self.kind, self.deadline, self.batch = dsn, kind, deadline, batch
        self.calls = 0
        self.granted = 0
        self.failures = []

    def run(self):
        try:
            self.loop()
        except Exception as e:  # noqa: BLE001 - reported as a failure of the run
            self.failures.append(f"waiter {self.kind}: {type(e).__name__}: {e}")

    def loop(self):
        conn = psycopg2.connect(self.dsn)
        conn.autocommit = True
        cur = conn.cursor()
        cur.execute("SET lock_timeout = 0")
        cur.execute("SET deadlock_timeout = '1ms'")
        cur.execute(SETUP)
        cur.execute("SELECT pg_backend_pid()")
        pid = cur.fetchone()[0]
        # pglocks_with_lock releases at the end of the call only in a transaction block.
        in_block = self.kind == 3
        while time.monotonic() < self.deadline and len(self.failures) < 5:
            error = None
            try:
                if self.kind == DETACHED:
                    self.calls += self.detached_batch(cur)
                else:
                    if in_block:
                        cur.execute("BEGIN")
                    cur.execute("SELECT pg_temp.edge_waiter(%s, %s)", (self.batch, self.kind))
                    self.granted += cur.fetchone()[0]
                    if in_block:
                        cur.execute("COMMIT")
                    self.calls += self.batch
            except psycopg2.Error as e:
                error = e
                if in_block:
                    cur.execute("ROLLBACK")
            cur.execute("SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND pid = %s",
                        (pid,))
            left = cur.fetchone()[0]
            cur.execute("SELECT count(*) FROM pglocks_held()")
            held = cur.fetchone()[0]
            if error is not None:
                self.failures.append(
                    f"waiter {self.kind}: error {error.pgcode}: {str(error).strip()}; "
                    f"afterwards {left} advisory lock(s), {held} pglocks_held() row(s)")
            elif left or held:
                self.failures.append(f"waiter {self.kind}: {left} advisory lock(s), "
                                     f"{held} pglocks_held() row(s) after its batch")
            if left or held:
                cur.execute("SELECT pglocks_release_all()")
                cur.execute("SELECT pg_advisory_unlock_all()")
        conn.close()

    def detached_batch(self, cur):
        """Timed detached waits, one per round trip; returns how many were made."""
        n = 0
        for _ in range(DETACHED_BATCH):
            cur.execute("CALL pglocks_acquire_detached('R', timeout => '1ms')")
            n += 1
            if cur.fetchone()[0]:
                self.granted += 1
                cur.execute("SELECT pglocks_release('R')")
            if time.monotonic() >= self.deadline:
                break
        return n


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--dsn", default="", help="libpq connection string (default: PG* environment)")
    ap.add_argument("--seconds", type=float, default=20.0)
    ap.add_argument("--waiters", type=int, default=8)
    ap.add_argument("--batch", type=int, default=2000)
    ap.add_argument("--detached", type=int, default=2)
    args = ap.parse_args()

    deadline = time.monotonic() + args.seconds
    holder_result = []

    def run_holder():
        try:
            conn = psycopg2.connect(args.dsn)
            conn.autocommit = True
            cur = conn.cursor()
            cur.execute(SETUP)
            # One statement for the whole run; its deadline is the server's clock.
            cur.execute("SELECT pg_temp.edge_holder(clock_timestamp() + %s * interval '1 s')",
                        (args.seconds,))
            holder_result.append(cur.fetchone()[0])
            conn.close()
        except Exception as e:  # noqa: BLE001
            holder_result.append(f"holder: {type(e).__name__}: {e}")

    holder = threading.Thread(target=run_holder, daemon=True)
    holder.start()
    waiters = [Waiter(args.dsn, i % 4, deadline, args.batch) for i in range(args.waiters)]
    waiters += [Waiter(args.dsn, DETACHED, deadline, args.batch) for _ in range(args.detached)]
    for w in waiters:
        w.start()
    for w in waiters:
        w.join(args.seconds * 3 + 60)
    holder.join(60)
    failures = [f for w in waiters for f in w.failures]
    if not holder_result or isinstance(holder_result[0], str):
        failures.append(holder_result[0] if holder_result else "holder: no answer")
    calls = sum(w.calls for w in waiters)
    granted = sum(w.granted for w in waiters)
    print(f"{calls} timed acquires in about {args.seconds:.0f}s by {len(waiters)} sessions, "
          f"{granted} granted")
    if granted == 0 or granted == calls:
        failures.append(f"the waits did not race the holder ({granted} of {calls} granted)")
    d_calls = sum(w.calls for w in waiters if w.kind == DETACHED)
    d_granted = sum(w.granted for w in waiters if w.kind == DETACHED)
    print(f"of them {d_calls} detached waits, {d_granted} granted")
    if args.detached and (d_granted == 0 or d_granted == d_calls):
        failures.append(f"the detached waits did not race the holder ({d_granted} of {d_calls} granted)")
    if failures:
        print(f"\n{len(failures)} inconsistenc{'y' if len(failures) == 1 else 'ies'}:")
        for f in failures[:20]:
            print("  " + f)
        sys.exit(1)
    print("no inconsistency")


if __name__ == "__main__":
    main()
