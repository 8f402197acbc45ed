"""The pglocks benchmark driver; bench/run.sh sets up the server and calls it.

Runs every scenario of the benchmark against the server that the libpq environment
variables name, pglocks and its comparison in the same run, alternating them round by
round, and reports medians as a plain-text table on stdout and a Markdown file.

Usage: bench.py [--quick] --out FILE
"""

import argparse
import contextlib
import datetime
import json
import os
import platform
import re
import statistics
import subprocess
import sys
import time

import psycopg2

import handoff
import inserver

HERE = os.path.dirname(os.path.abspath(__file__))
DB = "pglocks_bench"


class Plan:
    def __init__(self, quick):
        self.quick = quick
        # In-server loops: iterations per timed call, and rounds.
        self.pairs_n = 20000 if quick else 100000
        self.hash_n = {"16 B": 20000 if quick else 100000, "1 KB": 10000 if quick else 50000,
                       "1 MB": 20 if quick else 100}
        self.loop_rounds = 3 if quick else 11
        # Round-trip scenarios: seconds per pgbench or hand-off run, and rounds.
        # Short runs and many rounds: other work on the machine then hits both sides alike.
        self.seconds = 1 if quick else 3
        self.rounds = 1 if quick else 5  # scenarios 2 and 3, per run
        self.runs = 1 if quick else 3  # scenarios 2 and 3 are reported run by run
        self.section_rounds = 1 if quick else 5  # scenario 4: nine variants, a 2x target
        self.handoff_rounds = 1 if quick else 5
        # Scenario 5's target row: more rounds of the timed and the core waiter alone, in
        # turn; from one round to the next on a shared machine their medians move by more
        # than the target's 10% (README), so the row's ratio is the median of the rounds'.
        self.handoff_pair_rounds = 0 if quick else 12
        self.handoff_seconds = 1 if quick else 4
        self.scale_rounds = 3 if quick else 5


def log(msg):
    print(f"-- {msg}", file=sys.stderr, flush=True)


def connect(dbname=DB):
    conn = psycopg2.connect(dbname=dbname, application_name="pglocks-bench")
    conn.autocommit = True
    return conn


def scalar(conn, sql, args=()):
    with conn.cursor() as cur:
        cur.execute(sql, args)
        return cur.fetchone()[0]


def rotate(items, r):
    r %= len(items)
    return items[r:] + items[:r]


class Row:
    """One line of the results table."""

    def __init__(self, scenario, measure, ours, theirs, ratio, target=None, note=""):
        self.scenario, self.measure = scenario, measure
        self.ours, self.theirs = ours, theirs
        self.ratio, self.target, self.note = ratio, target, note

    def target_text(self):
        if self.target is None:
            return "-"
        op, value = self.target
        return f"{op} {value:g}"

    def verdict(self):
        if self.target is None or self.ratio is None:
            return "-"
        op, value = self.target
        ok = self.ratio <= value if op == "<=" else self.ratio >= value
        return "met" if ok else "MISSED"

    def ratio_text(self):
        return "-" if self.ratio is None else f"{self.ratio:.2f}"


def us(seconds):
    return f"{seconds * 1e6:.3f} us"


# -- Scenario 1: per-call cost inside the server ---------------------------------------------

INSERVER_CLOCK = "-"


def scenario_inserver(conn, plan, label=""):
    """Scenario 1 (and 7). `label` names another server major in the rows' measure."""
    rows = []
    key16 = "orders:000012345"
    assert len(key16) == 16
    on = f" ({label})" if label else ""

    # The backend's CPU time (schedstat: nanoseconds on a CPU) where this host can read it:
    # on a shared machine, the time other processes hold the CPU stays out of it. Else the
    # wall-clock time the server reads around the loop.
    pid = scalar(conn, "SELECT pg_backend_pid()")
    schedstat = f"/proc/{pid}/schedstat"

    def cpu_seconds():
        try:
            with open(schedstat) as f:
                return int(f.read().split()[0]) / 1e9
        except (OSError, ValueError, IndexError):
            return None

    def measure(sql, args):
        before = cpu_seconds()
        wall = scalar(conn, sql, args)
        after = cpu_seconds()
        return after - before if before is not None and after is not None else wall

    def timed(fn, iterations, arg):
        return measure(f"SELECT {fn}(%s, %s)", (iterations, arg))

    def net_cost(family, n, arg):
        """Median seconds per iteration of bench_<family>_{core,pglocks}, net of _empty."""
        fns = [f"bench_{family}_{side}" for side in ("empty", "core", "pglocks")]
        # The first call of each function plans its expressions; keep that out of the rounds.
        for fn in fns:
            timed(fn, 10, arg)
        core, ours = [], []
        for r in range(plan.loop_rounds):
            t = {fn: timed(fn, n, arg) for fn in rotate(fns, r)}
            core.append((t[fns[1]] - t[fns[0]]) / n)
            ours.append((t[fns[2]] - t[fns[0]]) / n)
        return statistics.median(ours), statistics.median(core)

    def pair_cost(family, n):
        """Median seconds per row of the set-based pair query, core and pglocks, net of empty."""
        sides = ["empty", "core", "pglocks"]
        for side in sides:  # warm-up: plans, caches, the first growth of the lock tables
            scalar(conn, "SELECT bench_time(%s)", (inserver.pair_query(family, side, 1000),))
        core, ours = [], []
        for r in range(plan.loop_rounds):
            t = {side: measure("SELECT bench_time(%s)", (inserver.pair_query(family, side, n),))
                 for side in rotate(sides, r)}
            core.append((t["core"] - t["empty"]) / n)
            ours.append((t["pglocks"] - t["empty"]) / n)
        return statistics.median(ours), statistics.median(core)

    def setting(name, value):
        with conn.cursor() as cur:
            if value is None:
                cur.execute(f"RESET {name}")
            else:
                cur.execute(f"SET {name} = {value}")

    global INSERVER_CLOCK
    clock = INSERVER_CLOCK = ("the backend's CPU time (/proc/PID/schedstat)"
                              if cpu_seconds() is not None else "wall-clock time in the server")
    log(f"scenario 1{on}: timed by {clock}")
    log(f"scenario 1{on}: acquire + release in a set-based query, bigint key, statistics on")
    stats_on = scalar(conn, "SELECT current_setting('pglocks.track_stats') = 'on' AND "
                            "'pglocks' = ANY(string_to_array(current_setting("
                            "'shared_preload_libraries'), ','))")
    ours_on, core_on = pair_cost("bigint", plan.pairs_n)
    rows.append(Row("1 in-server", f"acquire + release, bigint key, statistics "
                    f"{'on' if stats_on else 'OFF (not preloaded)'}{on}",
                    f"pglocks_acquire + pglocks_release: {us(ours_on)}",
                    f"pg_advisory_lock + pg_advisory_unlock: {us(core_on)}", ours_on / core_on,
                    ("<=", 1.25)))
    log(f"scenario 1{on}: the same with pglocks.track_stats = off")
    setting("pglocks.track_stats", "off")
    ours_off, core_off = pair_cost("bigint", plan.pairs_n)
    setting("pglocks.track_stats", None)
    rows.append(Row("1 in-server", f"acquire + release, bigint key, statistics off{on}",
                    f"pglocks_acquire + pglocks_release: {us(ours_off)}",
                    f"pg_advisory_lock + pg_advisory_unlock: {us(core_off)}",
                    ours_off / core_off))
    rows.append(Row("1 in-server", f"statistics on against off, bigint pair{on}; "
                    "ratio = on / off",
                    f"statistics on: {us(ours_on)}", f"statistics off: {us(ours_off)}",
                    ours_on / ours_off))

    log(f"scenario 1{on}: acquire + release, a new 16-byte text key on every row")
    ours, core = pair_cost("text_new", plan.pairs_n)
    rows.append(Row("1 in-server", f"acquire + release, a new 16 B text key each row{on}",
                    f"pglocks_acquire + pglocks_release: {us(ours)}",
                    f"pg_advisory_lock/unlock(hashtextextended): {us(core)}", ours / core,
                    ("<=", 1.3)))
    log(f"scenario 1{on}: acquire + release, the same 16-byte text key on every row")
    ours, core = pair_cost("text_same", plan.pairs_n)
    rows.append(Row("1 in-server", f"acquire + release, the same 16 B text key each row{on}",
                    f"pglocks_acquire + pglocks_release: {us(ours)}",
                    f"pg_advisory_lock/unlock(hashtextextended): {us(core)}", ours / core))

    if not label:
        log("scenario 7: cost of a fencing token")
        ours, plain = pair_cost("token", plan.pairs_n // 4)
        rows.append(Row("7 tokens", "acquire_token + release against acquire + release, "
                        "bigint key; ratio = with token / without",
                        f"pglocks_acquire_token + pglocks_release: {us(ours)} "
                        f"({us(ours - plain)} per token)",
                        f"pglocks_acquire + pglocks_release: {us(plain)}", ours / plain))

    log(f"scenario 1{on}: pglocks_key alone")
    # A non-repeating 1 MB key, so nothing along the way can shortcut it.
    key1m = scalar(conn, "SELECT left(string_agg(md5(g::text), ''), 1048576) "
                         "FROM generate_series(1, 32768) g")
    cases = [("16 B key, the same each call", "hash", key16, plan.hash_n["16 B"]),
             # 'orders:' and nine digits of the loop counter: a new 16-byte key each call.
             ("16 B key, a new one each call", "hash_distinct", "orders:", plan.hash_n["16 B"]),
             ("1 KB key", "hash", "k" * 1024, plan.hash_n["1 KB"]),
             ("1 MB key (throughput)", "hash", key1m, plan.hash_n["1 MB"])]
    if label:  # on the other majors: the key-hash target only
        cases = cases[1:2]
    for what, family, key, n in cases:
        o, c = net_cost(family, n, key)
        if key is key1m:
            mb = len(key) / 1048576.0
            rows.append(Row("1 in-server", f"pglocks_key, {what}",
                            f"pglocks_key: {mb / o:.0f} MB/s",
                            f"hashtextextended: {mb / c:.0f} MB/s",
                            o / c))
        else:
            rows.append(Row("1 in-server", f"pglocks_key, {what}{on}",
                            f"pglocks_key: {us(o)}", f"hashtextextended: {us(c)}", o / c))
        if family == "hash_distinct":
            rows.append(Row("1 in-server", f"pglocks_key, a new 16 B key each call{on}; "
                            "ratio = microseconds per key", f"pglocks_key: {us(o)}", "-",
                            o * 1e6, ("<=", 0.25)))
    return rows


# -- Scenarios 2-4: round trips with pgbench --------------------------------------------------

TPS = re.compile(r"^tps = ([0-9.]+) \(without initial connection time\)", re.M)


# Scenario 4's sessions: a body that writes commits, and with synchronous_commit on both
# sides would wait for the same WAL flush, so that the ratio measured the disk.
SECTION_OPTIONS = "-c synchronous_commit=off"


def pgbench(script, clients, seconds, host=None, options=None):
    cmd = ["pgbench", "-n", "-M", "prepared", "-c", str(clients), "-j", str(min(clients, 2)),
           "-T", str(seconds), "-f", os.path.join(HERE, "pgbench", script)]
    cmd += (["-h", host] if host else []) + [DB]
    env = dict(os.environ)
    if options:
        env["PGOPTIONS"] = (env.get("PGOPTIONS", "") + " " + options).strip()
    # Bounded: pgbench stops itself after -T seconds; the timeout only guards a hang.
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=seconds + 120, env=env)
    m = TPS.search(p.stdout)
    if p.returncode != 0 or not m:
        raise RuntimeError(f"pgbench {script} failed ({p.returncode}):\n{p.stdout}\n{p.stderr}")
    return float(m.group(1))


def compare_pgbench(plan, runs, clients, rounds, options=None):
    """Median tps of each run, a script or (script, host), alternating round by round."""
    results = {run: [] for run in runs}
    for r in range(rounds):
        for run in rotate(list(runs), r):
            script, host = run if isinstance(run, tuple) else (run, None)
            results[run].append(pgbench(script, clients, plan.seconds, host, options))
    return {run: statistics.median(v) for run, v in results.items()}


def tcp_reachable():
    """Whether the server also listens on 127.0.0.1, as the throwaway server does."""
    try:
        psycopg2.connect(host="127.0.0.1", dbname=DB, connect_timeout=5).close()
        return True
    except psycopg2.Error:
        return False


def lock_unlock_rows(plan, scenario, name, clients, what):
    """pglocks against core, lock; unlock as two statements, from bench/pgbench/NAME_*.sql:
    one row per run (each the median of its rounds), so that the spread shows."""
    rows = []
    ours, core = f"{name}_pglocks.sql", f"{name}_core.sql"
    for run in range(plan.runs):
        log(f"scenario {scenario}: lock + unlock on {what}, {clients} clients, "
            f"run {run + 1} of {plan.runs}")
        tps = compare_pgbench(plan, [core, ours], clients, plan.rounds)
        rows.append(Row(f"{scenario} pgbench", f"lock; unlock on {what}, {clients} clients, "
                        f"run {run + 1} of {plan.runs}",
                        f"pglocks: {tps[ours]:.0f} tps",
                        f"core: {tps[core]:.0f} tps", tps[ours] / tps[core], (">=", 0.97)))
    # Random keys make a new pglocks_stats row at almost every pair (and, with the table
    # full, evictions): one more run with statistics off shows what that costs.
    if name == "random":
        log(f"scenario {scenario}: lock + unlock on {what}, statistics off")
        tps = compare_pgbench(plan, [core, ours], clients, plan.rounds,
                              "-c pglocks.track_stats=off")
        rows.append(Row(f"{scenario} pgbench", f"lock; unlock on {what}, {clients} clients, "
                        "pglocks.track_stats = off",
                        f"pglocks: {tps[ours]:.0f} tps",
                        f"core: {tps[core]:.0f} tps", tps[ours] / tps[core]))
    return rows


def scenario_roundtrips(plan):
    rows = (lock_unlock_rows(plan, 2, "random", 2, "random bigint keys (uncontended)") +
            lock_unlock_rows(plan, 3, "hot", 16, "one hot key"))

    # One client: the claim is about round trips, so this measures the latency of one
    # critical section; more clients on a small machine would measure CPU saturation.
    # The body updates one row: either the same text every call (a job run again and again)
    # or a text that names the locked row (a new text for each key). Applications mostly
    # reach their server over TCP, where a round trip costs more than on a Unix socket.
    # The body names its row through params ($1, the text the same every call: planned
    # once), or by spelling the key into the text (a new text, parsed and planned each call),
    # or does not name it (the same text every call). The seed's pattern is the same three
    # prepared statements in every case. Over TCP, the params body only.
    log("scenario 4: critical section with a one-row UPDATE, 1 client, "
        "synchronous_commit = off")
    transports = [("Unix socket", None)]
    if tcp_reachable():
        transports.append(("TCP 127.0.0.1", "127.0.0.1"))
    bodies = [("_params", "", "body names the row through params", (">=", 2.0)),
              ("", "", "body names the row in its text", None),
              ("_fixed", "_fixed", "same body each call", (">=", 2.0))]
    variants = [(t, b) for t in transports for b in bodies if t[1] is None or b[0] == "_params"]
    runs = []
    for (_, host), (wl_suffix, seed_suffix, _, _) in variants:
        for script in (f"section_with_lock{wl_suffix}.sql", f"section_seed{seed_suffix}.sql"):
            if (script, host) not in runs:
                runs.append((script, host))
    runs.append(("section_xact.sql", None))
    tps = compare_pgbench(plan, runs, 1, plan.section_rounds, SECTION_OPTIONS)
    for (transport, host), (wl_suffix, seed_suffix, body, target) in variants:
        wl = tps[(f"section_with_lock{wl_suffix}.sql", host)]
        seed = tps[(f"section_seed{seed_suffix}.sql", host)]
        rows.append(Row("4 critical section", f"with_lock (1 round trip) vs lock; body; "
                        f"unlock (3); {body}, {transport}, synchronous_commit = off",
                        f"pglocks_with_lock: {wl:.0f} tps", f"seed pattern: {seed:.0f} tps",
                        wl / seed, target))
    wl, xact = tps[("section_with_lock_params.sql", None)], tps[("section_xact.sql", None)]
    rows.append(Row("4 critical section", "with_lock (params) vs BEGIN; acquire (transaction "
                    "scope); body; COMMIT (4); Unix socket, synchronous_commit = off",
                    f"pglocks_with_lock: {wl:.0f} tps", f"transaction scope: {xact:.0f} tps",
                    wl / xact))
    return rows


# -- Scenario 5: hand-off on a hot key --------------------------------------------------------

def scenario_handoff(plan):
    log("scenario 5: hand-off on a hot key "
        f"({handoff.WORKERS} sessions, {handoff.HOLD_MS:g} ms hold, "
        f"{handoff.OUTSIDE_MS:g} ms away)")
    methods = ["pglocks_timed", "core_plain", "pglocks_plain", "try_sleep", "pglocks_slot",
               "pglocks_detached"]
    runs = {m: [] for m in methods}
    for r in range(plan.handoff_rounds):
        for m in rotate(methods, r):
            res = handoff.run(m, plan.handoff_seconds, DB)
            if res["acquisitions"] < 2:
                raise RuntimeError(f"hand-off {m}: too few acquisitions: {res}")
            runs[m].append(res)

    for r in range(plan.handoff_pair_rounds):
        for m in rotate(["pglocks_timed", "core_plain"], r):
            res = handoff.run(m, plan.handoff_seconds, DB)
            if res["acquisitions"] < 2:
                raise RuntimeError(f"hand-off {m}: too few acquisitions: {res}")
            runs[m].append(res)
    # Each round's timed waiter against the core waiter of the same round, run next to it.
    pair_ratios = [t["gap_p50_ms"] / c["gap_p50_ms"]
                   for t, c in zip(runs["pglocks_timed"], runs["core_plain"])]

    def med(m, field):
        return statistics.median(x[field] for x in runs[m])

    timed, plain, pplain, trys, slot, detached = (
        {f: med(m, f) for f in ("gap_p50_ms", "gap_p99_ms", "throughput")}
        for m in methods)
    timeouts = sum(x["timeouts"] for x in runs["pglocks_timed"])

    def fig(d):
        return (f"p50 {d['gap_p50_ms']:.3f} ms, p99 {d['gap_p99_ms']:.3f} ms, "
                f"{d['throughput']:.0f} holds/s")

    note = f" ({timeouts} timed out)" if timeouts else ""
    return [
        Row("5 hand-off", "timed vs plain waiter: release to next holder, p50; "
            f"ratio = median of {len(pair_ratios)} rounds' ratios "
            f"({min(pair_ratios):.2f} to {max(pair_ratios):.2f})",
            f"pglocks_acquire(timeout): {fig(timed)}{note}", f"pg_advisory_lock: {fig(plain)}",
            statistics.median(pair_ratios), ("<=", 1.10)),
        Row("5 hand-off", "timed vs plain waiter: throughput",
            f"pglocks_acquire(timeout): {timed['throughput']:.0f} holds/s",
            f"pg_advisory_lock: {plain['throughput']:.0f} holds/s",
            timed["throughput"] / plain["throughput"]),
        Row("5 hand-off", "plain waiter, pglocks vs core: release to next holder, p50",
            f"pglocks_acquire: {fig(pplain)}", f"pg_advisory_lock: {fig(plain)}",
            pplain["gap_p50_ms"] / plain["gap_p50_ms"]),
        Row("5 hand-off", "timed waiter vs try-and-sleep (50-150 ms), p50; "
            "ratio = times faster",
            f"pglocks_acquire(timeout): {fig(timed)}", f"try-and-sleep: {fig(trys)}",
            trys["gap_p50_ms"] / timed["gap_p50_ms"], (">=", 5.0)),
        Row("5 hand-off", "semaphore slot vs plain lock: release to next holder, p50 "
            "(p99 in the figures)",
            f"pglocks_acquire_slot(k, 1): {fig(slot)}", f"pg_advisory_lock: {fig(plain)}",
            slot["gap_p50_ms"] / plain["gap_p50_ms"]),
        Row("5 hand-off", "detached wait vs plain lock: release to next holder, p50 "
            "(p99 in the figures)",
            f"CALL pglocks_acquire_detached(k): {fig(detached)}",
            f"pg_advisory_lock: {fig(plain)}",
            detached["gap_p50_ms"] / plain["gap_p50_ms"]),
    ]


# -- Scenario 6: many holds in one session ----------------------------------------------------

def scale_sizes(conn):
    """1,000 and 10,000 holds, or fewer when the server's lock table cannot take them."""
    mlpt = int(scalar(conn, "SELECT current_setting('max_locks_per_transaction')"))
    maxconn = int(scalar(conn, "SELECT current_setting('max_connections')"))
    room = mlpt * maxconn // 2
    big = 10000 if room >= 10000 else max(1000, room // 1000 * 1000)
    small = big // 10 if big >= 10000 else min(1000, big // 2)
    return small, big


def scenario_scale(plan):
    with contextlib.closing(connect()) as probe:
        small, big = scale_sizes(probe)
    log(f"scenario 6: {small} and {big} holds in one session")
    res = {}
    for r in range(plan.scale_rounds):
        for n in (small, big):
            for fn in rotate(["bench_scale_core", "bench_scale_pglocks"], r):
                # A fresh session each time: the server's local lock table never shrinks.
                conn = connect()
                try:
                    with conn.cursor() as cur:
                        cur.execute(f"SELECT * FROM {fn}(%s)", (n,))
                        take, listed_s, release, listed, released = cur.fetchone()
                finally:
                    conn.close()
                if listed != n or released != n:
                    raise RuntimeError(f"{fn}({n}): listed {listed}, released {released}")
                res.setdefault((fn, n), []).append((take, listed_s, release))

    def med(fn, n, i):
        return statistics.median(x[i] for x in res[(fn, n)])

    rows = []
    names = [("take", 0, "pglocks_acquire", "pg_advisory_lock"),
             ("list", 1, "pglocks_held()", "pg_locks of this pid"),
             ("release all", 2, "pglocks_release_all()", "pg_advisory_unlock_all()")]
    for n in (small, big):
        for what, i, ours_name, core_name in names:
            o, c = med("bench_scale_pglocks", n, i), med("bench_scale_core", n, i)
            rows.append(Row("6 scale", f"{what}, {n} holds: time per hold",
                            f"{ours_name}: {us(o / n)} ({o * 1000:.1f} ms)",
                            f"{core_name}: {us(c / n)} ({c * 1000:.1f} ms)", o / c))
    for what, i, ours_name, _ in names[1:]:
        per_small = med("bench_scale_pglocks", small, i) / small
        per_big = med("bench_scale_pglocks", big, i) / big
        # Linear cost keeps the time per hold flat; a quadratic one would multiply it by
        # big / small. The bound leaves room for caches, which the core functions show too.
        rows.append(Row("6 scale",
                        f"{ours_name} linear; ratio = time per hold at {big} / at {small}",
                        f"{us(per_big)} per hold", f"{us(per_small)} per hold",
                        per_big / per_small, ("<=", 2.0)))
    total = med("bench_scale_pglocks", big, 1) + med("bench_scale_pglocks", big, 2)
    rows.append(Row("6 scale", f"pglocks_held() + pglocks_release_all(), {big} holds; "
                    "ratio = seconds", f"{total:.4f} s", "-", total,
                    ("<=", 0.25)))
    return rows


# -- Report -----------------------------------------------------------------------------------

def git_version():
    try:
        p = subprocess.run(["git", "-C", HERE, "describe", "--always", "--dirty"],
                           capture_output=True, text=True, timeout=10)
        return p.stdout.strip() or "unknown"
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def machine(conn):
    cpu = "unknown"
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    return {
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "cpus": f"{os.cpu_count()} (nproc)",
        "cpu model": cpu,
        "kernel": f"{platform.system()} {platform.release()}",
        "postgresql": scalar(conn, "SELECT version()"),
        "pglocks": scalar(conn, "SELECT extversion FROM pg_extension WHERE extname = 'pglocks'")
        + f" (source {git_version()})",
        "settings": ", ".join(
            f"{name}={scalar(conn, 'SELECT current_setting(%s)', (name,))}"
            for name in ("shared_preload_libraries", "max_locks_per_transaction", "fsync", "jit")),
    }


LEGEND = ("ratio: the pglocks figure over the comparison's, unless the measure says otherwise; "
          "for times lower is better, for throughput higher.")
HEADERS = ["scenario", "measure", "pglocks", "comparison", "ratio", "target", "result"]


def cells(row):
    return [row.scenario, row.measure, row.ours, row.theirs, row.ratio_text(),
            row.target_text(), row.verdict()]


def text_table(rows):
    table = [HEADERS] + [cells(r) for r in rows]
    widths = [max(len(line[i]) for line in table) for i in range(len(HEADERS))]
    out = []
    for k, line in enumerate(table):
        out.append("  ".join(c.ljust(w) for c, w in zip(line, widths)).rstrip())
        if k == 0:
            out.append("  ".join("-" * w for w in widths))
    return "\n".join(out)


def markdown(rows, info, plan, elapsed):
    esc = lambda s: s.replace("|", "\\|")
    out = ["# pglocks benchmark results", "",
           "Written by `bench/run.sh`" + (" --quick" if plan.quick else "") +
           "; see bench/README.md for what each scenario measures. Ratios are the headline: "
           "both sides ran in the same run, alternating, and each figure is the median of "
           "its rounds. Absolute figures belong to this machine:", ""]
    out += [f"- {k}: {v}" for k, v in info.items()]
    out += [f"- rounds: {plan.loop_rounds} (in-server loops), {plan.runs} runs of "
            f"{plan.rounds} (scenarios 2 and 3), {plan.section_rounds} (scenario 4), "
            f"{plan.seconds} s each; "
            f"{plan.handoff_rounds} (hand-off, {plan.handoff_seconds} s each; "
            f"{plan.handoff_rounds + plan.handoff_pair_rounds} of the timed and core waiters), "
            f"{plan.scale_rounds} (scale); whole run {elapsed:.0f} s", ""]
    out += [LEGEND, ""]
    out.append("| " + " | ".join(HEADERS) + " |")
    out.append("|" + "---|" * len(HEADERS))
    for r in rows:
        out.append("| " + " | ".join(esc(c) for c in cells(r)) + " |")
    missed = [r for r in rows if r.verdict() == "MISSED"]
    out += ["", f"Targets met: {sum(r.verdict() == 'met' for r in rows)}, "
            f"missed: {len(missed)}."]
    return "\n".join(out) + "\n"


def prepare_database():
    with contextlib.closing(connect("postgres")) as admin:
        with admin.cursor() as cur:
            cur.execute(f"DROP DATABASE IF EXISTS {DB} WITH (FORCE)")
            cur.execute(f"CREATE DATABASE {DB}")
    conn = connect()
    with conn.cursor() as cur:
        cur.execute("CREATE EXTENSION pglocks")
        cur.execute(inserver.install_sql())
        cur.execute("VACUUM ANALYZE bench_counter")
    return conn


def drop_database():
    with contextlib.closing(connect("postgres")) as admin:
        with admin.cursor() as cur:
            cur.execute(f"DROP DATABASE IF EXISTS {DB} WITH (FORCE)")


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="about a second per scenario")
    ap.add_argument("--out", help="Markdown file to write")
    ap.add_argument("--inserver-only", metavar="LABEL",
                    help="run scenario 1 only, naming the server LABEL in the rows, and write "
                         "the rows as JSON to --json (another major of the test matrix)")
    ap.add_argument("--json", help="with --inserver-only: the file the rows go to")
    ap.add_argument("--extra-rows", action="append", default=[],
                    help="JSON rows of --inserver-only runs to add after scenario 1")
    args = ap.parse_args()
    plan = Plan(args.quick)
    started = time.monotonic()
    load_start = os.getloadavg()
    if args.inserver_only:
        conn = prepare_database()
        try:
            version = scalar(conn, "SELECT current_setting('server_version')")
            rows = scenario_inserver(conn, plan, f"{args.inserver_only} {version}")
        finally:
            conn.close()
            drop_database()
        with open(args.json, "w") as f:
            json.dump([r.__dict__ for r in rows], f)
        print(text_table(rows))
        return
    if not args.out:
        ap.error("--out is required")
    extra = []
    for path in args.extra_rows:
        with open(path) as f:
            for d in json.load(f):
                row = Row(d["scenario"], d["measure"], d["ours"], d["theirs"], d["ratio"])
                row.target, row.note = (tuple(d["target"]) if d["target"] else None), d["note"]
                extra.append(row)
    conn = prepare_database()
    try:
        info = machine(conn)
        rows = scenario_inserver(conn, plan)
        info["in-server timings (scenarios 1, 7)"] = INSERVER_CLOCK
        rows += extra
        conn.close()
        rows += scenario_roundtrips(plan)
        rows += scenario_handoff(plan)
        rows += scenario_scale(plan)
    finally:
        if not conn.closed:
            conn.close()
        drop_database()
    elapsed = time.monotonic() - started
    # Other work on the machine shows here; the alternation keeps it out of the ratios.
    load_end = os.getloadavg()
    info["load average (1, 5, 15 min) at start / at end"] = (
        " ".join(f"{x:.2f}" for x in load_start) + " / " + " ".join(f"{x:.2f}" for x in load_end))

    print()
    for k, v in info.items():
        print(f"{k}: {v}")
    print()
    print(LEGEND)
    print(text_table(rows))
    missed = [r for r in rows if r.verdict() == "MISSED"]
    print(f"\nTargets met: {sum(r.verdict() == 'met' for r in rows)}, missed: {len(missed)}")
    for r in missed:
        print(f"  missed: {r.scenario}: {r.measure}")
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    with open(args.out, "w") as f:
        f.write(markdown(rows, info, plan, elapsed))
    print(f"\nMarkdown table written to {args.out} ({elapsed:.0f} s)")


if __name__ == "__main__":
    main()
