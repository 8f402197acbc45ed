#!/usr/bin/env python3
"""Concurrency test of pglocks_stats (run by test/suites/stats_stress.sh).

32 sessions hammer 1,000 keys for a bounded time, half of the calls on ten hot keys: each
loops over an acquire (waiting without limit, with a short timeout, or trying once; shared
or exclusive) and a release, holding at most one lock at a time (so no deadlock). Each
session counts what it did per key and mode. At the end the rows of pglocks_stats must
equal those counts exactly: acquisitions, failed tries and timeouts; no errors; waits at
most the acquisitions and at least one wait on a hot key; a hold time in every row with
acquisitions; and no eviction. Exits 1 on a difference.

With --evict (against a server with a small pglocks.max_stats), half of the calls take a
new lock each instead, so the table is always full and rows are evicted all the time, while
the hot keys, warmed up first and used far more than any new row, are never among the least
used: their rows must still equal the clients' counts exactly, and evictions must have run.
"""
import argparse
import collections
import random
import sys
import threading
import time

import psycopg2

KEYS = 1000
HOT = 10


def connect(dsn):
    c = psycopg2.connect(dsn)
    c.autocommit = True
    return c


def worker(dsn, seconds, seed, counts, errors, evict):
    rng = random.Random(seed)
    mine = collections.Counter()
    fresh = 0
    try:
        conn = connect(dsn)
        cur = conn.cursor()
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            if rng.random() < 0.5:
                key = "sk:%d" % rng.randrange(HOT)
            elif evict:
                # A lock never taken before: a new row, which makes the table evict.
                fresh += 1
                cur.execute("SELECT pglocks_acquire(%s) AND pglocks_release(%s)",
                            ("sn:%d:%d" % (seed, fresh),) * 2)
                if not cur.fetchone()[0]:
                    errors.append("a new lock was not taken and released")
                continue
            else:
                key = "sk:%d" % rng.randrange(KEYS)
            shared = rng.random() < 0.3
            how = rng.choice(("wait", "timeout", "try"))
            if how == "wait":
                cur.execute("SELECT pglocks_acquire(%s, shared => %s)", (key, shared))
            elif how == "timeout":
                cur.execute("SELECT pglocks_acquire(%s, shared => %s, timeout => '2ms')",
                            (key, shared))
            else:
                cur.execute("SELECT pglocks_acquire(%s, shared => %s, wait => false)",
                            (key, shared))
            got = cur.fetchone()[0]
            if got:
                mine[(key, shared, "acquisitions")] += 1
                if rng.random() < 0.1:
                    cur.execute("SELECT pglocks_release_all()")
                else:
                    cur.execute("SELECT pglocks_release(%s, shared => %s)", (key, shared))
                    if not cur.fetchone()[0]:
                        errors.append("release of %s returned false" % key)
            elif how == "timeout":
                mine[(key, shared, "timeouts")] += 1
            else:
                mine[(key, shared, "failed_tries")] += 1
        conn.close()
    except Exception as e:  # reported, and the run fails
        errors.append("session %d: %r" % (seed, e))
    counts.append(mine)  # one append per thread; list.append is atomic


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--dsn", required=True)
    ap.add_argument("--seconds", type=float, default=20)
    ap.add_argument("--sessions", type=int, default=32)
    ap.add_argument("--evict", action="store_true",
                    help="half of the calls take new locks: rows are evicted all the time")
    args = ap.parse_args()

    admin = connect(args.dsn)
    acur = admin.cursor()
    acur.execute("SELECT pglocks_stats_reset()")
    counts, errors = [], []
    if args.evict:
        # Warm-up: the hot rows start far above a new row's usage.
        warm = collections.Counter()
        for k in range(HOT):
            for shared in (False, True):
                acur.execute("SELECT count(*) FROM generate_series(1, 200) WHERE "
                             "pglocks_acquire(%s, shared => %s) AND "
                             "pglocks_release(%s, shared => %s)", ("sk:%d" % k, shared) * 2)
                warm[("sk:%d" % k, shared, "acquisitions")] += acur.fetchone()[0]
        counts.append(warm)
    threads = [threading.Thread(target=worker,
                                args=(args.dsn, args.seconds, i, counts, errors, args.evict))
               for i in range(args.sessions)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if errors:
        print("\n".join(errors[:20]))
        return 1
    expected = collections.Counter()
    for c in counts:
        expected.update(c)

    acur.execute("""SELECT key, shared, acquisitions, failed_tries, timeouts, errors, waits,
                           total_hold_time, max_hold_time
                    FROM pglocks_stats
                    WHERE dbid = (SELECT oid FROM pg_database WHERE datname = current_database())
                      AND key LIKE 'sk:%'""")
    got = collections.Counter()
    failures = []
    total_waits = 0
    for key, shared, acq, failed, timeouts, errs, waits, total_hold, max_hold in acur.fetchall():
        got[(key, shared, "acquisitions")] += acq
        got[(key, shared, "failed_tries")] += failed
        got[(key, shared, "timeouts")] += timeouts
        total_waits += waits
        if errs != 0:
            failures.append("%s shared=%s: %d errors" % (key, shared, errs))
        if waits > acq:
            failures.append("%s shared=%s: %d waits > %d acquisitions" % (key, shared, waits, acq))
        if acq > 0 and not (total_hold > 0 and 0 < max_hold <= total_hold):
            failures.append("%s shared=%s: hold times %r %r" % (key, shared, total_hold, max_hold))
    got = +got
    expected = +expected
    for k in sorted(set(got) | set(expected)):
        if got[k] != expected[k]:
            failures.append("%s shared=%s %s: pglocks_stats %d, clients %d"
                            % (k[0], k[1], k[2], got[k], expected[k]))
    acur.execute("SELECT dealloc FROM pglocks_stats_info")
    dealloc = acur.fetchone()[0]
    if args.evict and dealloc == 0:
        failures.append("no eviction: the test did not evict")
    elif not args.evict and dealloc != 0:
        failures.append("%d evictions" % dealloc)
    if total_waits == 0:
        failures.append("no acquire ever waited: the test did not contend")
    totals = collections.Counter()
    for (_, _, what), n in expected.items():
        totals[what] += n
    print("sessions %d, %.0f s: %d acquisitions (%d waited), %d failed tries, %d timeouts, "
          "%d rows, %d evictions" % (args.sessions, args.seconds, totals["acquisitions"],
                                     total_waits, totals["failed_tries"], totals["timeouts"],
                                     len({(k, s) for (k, s, _) in expected}), dealloc))
    if failures:
        print("FAIL:\n" + "\n".join(failures[:30]))
        return 1
    print("ok: pglocks_stats equals what the clients did")
    return 0


if __name__ == "__main__":
    sys.exit(main())
