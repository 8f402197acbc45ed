"""Scenario 5: hand-off of one hot lock between sessions.

Each worker thread has its own connection and loops: take the lock, hold it for HOLD_MS,
release it, stay away for OUTSIDE_MS. OUTSIDE_MS is shorter than the time the other workers
hold the lock in turn, so at every release somebody is already waiting, and the releaser
does not come straight back for it.

The hand-off time runs from the moment the holder's release starts to the moment the next
holder's acquire returns, both read in the server with clock_timestamp() in the same
statement as the lock call (a target list is evaluated in order): that is the time the
lock takes to change hands, without the client's scheduling noise on top. Threads
suffice: the workers spend their time in libpq calls and sleeps, which release the GIL.

Methods:
  pglocks_timed   pglocks_acquire(k, timeout => ...)        waits in the lock queue
  pglocks_plain   pglocks_acquire(k)                        waits in the lock queue
  core_plain      pg_advisory_lock(k)                       waits in the lock queue
  pglocks_slot    pglocks_acquire_slot(k, 1)                a semaphore of one slot: waits in
                  the semaphore's queue, then on its condition variable
  pglocks_detached  CALL pglocks_acquire_detached(k): waits in the lock queue without a
                  snapshot; a CALL returns no time, so the time obtained is the hold's
                  acquired_at from pglocks_held() (read with the precise clock when
                  statistics are on, as they are in the benchmark)
  try_sleep       pg_try_advisory_lock(k), then a 50-150 ms jittered sleep between tries,
                  as Ruby's with_advisory_lock does when given a timeout

Usage: handoff.py METHOD SECONDS   (libpq environment variables name the server)
"""

import json
import random
import sys
import threading
import time

import psycopg2

HOT_KEY = 4242
HOLD_MS = 5.0
OUTSIDE_MS = 10.0
WORKERS = 4
TIMEOUT = "30s"
SLEEP_MIN, SLEEP_MAX = 0.050, 0.150

# (take, release), prepared once per session like pgbench -M prepared, so that parsing and
# planning each call does not load the machine differently for each method. take returns
# (obtained, time obtained), release (time released, _); $2 of the timed take is the timeout.
METHODS = {
    "pglocks_timed": (
        "SELECT pglocks_acquire($1::bigint, timeout => $2::interval), clock_timestamp()",
        "SELECT clock_timestamp(), pglocks_release($1::bigint)"),
    "pglocks_plain": ("SELECT pglocks_acquire($1::bigint), clock_timestamp()",
                      "SELECT clock_timestamp(), pglocks_release($1::bigint)"),
    "pglocks_slot": ("SELECT pglocks_acquire_slot($1::text, 1) IS NOT NULL, clock_timestamp()",
                     "SELECT clock_timestamp(), pglocks_release_slot($1::text, 0)"),
    "pglocks_detached": (
        "SELECT true, max(acquired_at) FROM pglocks_held() WHERE lock_key = $1::bigint",
        "SELECT clock_timestamp(), pglocks_release($1::bigint)"),
    "core_plain": ("SELECT pg_advisory_lock($1::bigint) IS NULL, clock_timestamp()",
                   "SELECT clock_timestamp(), pg_advisory_unlock($1::bigint)"),
    "try_sleep": ("SELECT pg_try_advisory_lock($1::bigint), clock_timestamp()",
                  "SELECT clock_timestamp(), pg_advisory_unlock($1::bigint)"),
}
TAKE = "EXECUTE pglocks_bench_take(%s)"
TAKE_TIMED = "EXECUTE pglocks_bench_take(%s, %s)"
RELEASE = "EXECUTE pglocks_bench_release(%s)"


def percentile(values, p):
    if not values:
        return float("nan")
    s = sorted(values)
    i = min(len(s) - 1, max(0, int(round(p / 100.0 * (len(s) - 1)))))
    return s[i]


def worker(method, deadline_box, dbname, records, failures, ready, go):
    take_sql, release_sql = METHODS[method]
    conn = psycopg2.connect(dbname=dbname, application_name="pglocks-bench-handoff")
    conn.autocommit = True
    cur = conn.cursor()
    # Bounds every call, whatever goes wrong on the server.
    cur.execute("SET statement_timeout = '60s'")
    cur.execute(f"PREPARE pglocks_bench_take AS {take_sql}")
    cur.execute(f"PREPARE pglocks_bench_release AS {release_sql}")
    rng = random.Random()
    ready.release()
    go.wait()
    deadline = deadline_box[0]
    try:
        while time.perf_counter() < deadline:
            if method == "try_sleep":
                while True:
                    cur.execute(TAKE, (HOT_KEY,))
                    got, acquired = cur.fetchone()
                    if got:
                        break
                    if time.perf_counter() >= deadline + 5.0:
                        return
                    time.sleep(rng.uniform(SLEEP_MIN, SLEEP_MAX))
            else:
                if method == "pglocks_timed":
                    cur.execute(TAKE_TIMED, (HOT_KEY, TIMEOUT))
                elif method == "pglocks_detached":
                    cur.execute("CALL pglocks_acquire_detached(%s::bigint)", (HOT_KEY,))
                    cur.execute(TAKE, (HOT_KEY,))
                else:
                    cur.execute(TAKE, (HOT_KEY,))
                got, acquired = cur.fetchone()
                if method == "pglocks_timed" and not got:
                    failures.append(1)
                    continue
            in_window = time.perf_counter() <= deadline
            time.sleep(HOLD_MS / 1000.0)
            cur.execute(RELEASE, (HOT_KEY,))
            released = cur.fetchone()[0]
            records.append((acquired, released, in_window))
            time.sleep(OUTSIDE_MS / 1000.0)
    finally:
        conn.close()


def run(method, seconds, dbname="pglocks_bench"):
    records, failures = [], []
    ready = threading.Semaphore(0)
    go = threading.Event()
    deadline_box = [0.0]
    threads = [threading.Thread(target=worker,
                                args=(method, deadline_box, dbname, records, failures, ready, go))
               for _ in range(WORKERS)]
    for t in threads:
        t.start()
    # The clock starts once every worker is connected, so connecting is not timed.
    for _ in threads:
        ready.acquire(timeout=30)
    start = time.perf_counter()
    deadline_box[0] = start + seconds
    go.set()
    for t in threads:
        t.join(timeout=seconds + 90)

    records.sort()
    gaps = [(records[i + 1][0] - records[i][1]).total_seconds() for i in range(len(records) - 1)]
    return {
        "method": method,
        "acquisitions": len(records),
        "throughput": sum(1 for r in records if r[2]) / seconds,
        "gap_p50_ms": percentile(gaps, 50) * 1000.0,
        "gap_p99_ms": percentile(gaps, 99) * 1000.0,
        "timeouts": len(failures),
    }


if __name__ == "__main__":
    if len(sys.argv) != 3 or sys.argv[1] not in METHODS:
        sys.exit(__doc__)
    print(json.dumps(run(sys.argv[1], float(sys.argv[2]))))
