#!/usr/bin/env bash
# Fencing tokens on clusters of this suite's own (it does not use the server of
# scripts/test.sh): a primary, then a streaming standby made from it with pg_basebackup -R.
#   1. order: concurrent sessions taking tokens on their own keys and on shared ones get
#      distinct tokens, increasing within each session, greater than every token returned
#      before the call was made, and increasing in the order the holders of one exclusive
#      lock held it (a fencing table, as a storage system would keep, refuses none)
#   2. pglocks_token: the current hold's token, NULL after release and for a hold without
#      one; pglocks_acquire_token returns NULL when it does not acquire
#   2b. an unlogged token sequence issues no token (55000), nor in the transaction that makes
#       it logged, and issues again once logged
#   3. crash restart: tokens after a backend is killed with SIGKILL (crash recovery) and
#      after pg_ctl stop -m immediate exceed every token returned before, including tokens
#      of open transactions whose sequence WAL only pglocks itself flushed
#   4. failover: on the standby the function fails (55000, or 25006 with
#      pglocks.allow_on_standby = on); after the standby misses the primary's last
#      sequence WAL and is promoted, its tokens exceed every token of the old primary
#   5. pg_upgrade of the promoted server (timeline 2) into a new cluster, which starts on
#      timeline 1: its tokens exceed every token of the old cluster, and after its own
#      promotion (to timeline 2, below its sequence's part) every token before it, also in
#      a session that drew, then rewrote the sequence and rolled back (a draw in the
#      rewrite's transaction is refused: 55000)
# Prints what each check saw; exits non-zero when one fails.
set -euo pipefail
source "$(dirname "$0")/../../scripts/lib.sh"
pglocks_install_packages
# psycopg2 comes from Debian, so Debian's interpreter, not whichever python3 is first on PATH.
PYTHON=/usr/bin/python3

WORK=$(mktemp -d /tmp/pglocks-tokens.XXXXXX)
chmod 755 "$WORK"
[ "$(id -u)" = 0 ] && chown postgres: "$WORK"
cleanup() {
    local d
    for d in "$WORK"/primary "$WORK"/standby "$WORK"/upgraded; do
        [ -f "$d/postmaster.pid" ] && as_server_owner pg_ctl -D "$d" -m immediate stop >/dev/null 2>&1
    done
    rm -rf "$WORK"
}
trap cleanup EXIT
# Every connection names its server; a server of the caller's environment is never used.
unset PGHOST PGPORT PGUSER PGDATABASE PGSERVICE PGHOSTADDR
export PGLOCKS_TOKENS_WORK=$WORK

cat >"$WORK/tokens.py" <<'PYTHON'
import bisect
import os
import shutil
import signal
import subprocess
import sys
import threading
import time

import psycopg2

WORK = os.environ["PGLOCKS_TOKENS_WORK"]
SEQ_BITS = 48
failures = []


def check(ok, what):
    print(("ok     " if ok else "FAIL   ") + what, flush=True)
    if not ok:
        failures.append(what)


def note(what):
    print("       " + what, flush=True)


def section(title):
    print("\n-- " + title, flush=True)


def show(value):
    return "NULL" if value is None else str(value)


def split(token):
    return "tli %d + %d" % (token >> SEQ_BITS, token & ((1 << SEQ_BITS) - 1))


def as_owner(*cmd):
    # The servers refuse to run as root.
    if os.getuid() == 0:
        cmd = ("runuser", "-u", "postgres", "--") + cmd
    r = subprocess.run(cmd, capture_output=True, text=True)
    if r.returncode != 0:
        raise RuntimeError("%s failed: %s%s" % (" ".join(cmd), r.stdout, r.stderr))
    return r.stdout


def free_port():
    import socket
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


class Node:
    def __init__(self, name):
        self.name = name
        self.port = free_port()
        self.data = os.path.join(WORK, name)
        self.log = os.path.join(WORK, name + ".log")

    def append_conf(self, lines):
        with open(os.path.join(self.data, "postgresql.conf"), "a") as f:
            f.write("\n".join(lines) + "\n")

    def start(self):
        as_owner("pg_ctl", "-D", self.data, "-l", self.log, "-w", "-t", "60", "start")

    def stop(self, mode):
        as_owner("pg_ctl", "-D", self.data, "-m", mode, "-w", "-t", "60", "stop")

    def connect(self, autocommit=True):
        conn = psycopg2.connect(host=WORK, port=self.port, user="postgres", dbname="postgres",
                                options="-c statement_timeout=30s", connect_timeout=10)
        conn.autocommit = autocommit
        return conn

    def q(self, sql, args=None):
        conn = self.connect()
        try:
            cur = conn.cursor()
            cur.execute(sql, args)
            return cur.fetchall() if cur.description else None
        finally:
            conn.close()

    def q1(self, sql, args=None):
        return self.q(sql, args)[0][0]

    def wait_ready(self, timeout=60):
        deadline = time.monotonic() + timeout
        while True:
            try:
                if self.q1("SELECT NOT pg_is_in_recovery() OR %s", (self.name == "standby",)):
                    return
            except psycopg2.Error:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError("%s did not accept connections within %d s" % (self.name, timeout))
            time.sleep(0.1)


def wait_until(what, predicate, timeout=30):
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise RuntimeError("timed out waiting until " + what)
        time.sleep(0.1)


def run_threads(target, args_list):
    errors = []

    def wrap(*args):
        try:
            target(*args)
        except Exception as e:  # reported below, so that one session cannot hide another's
            errors.append(repr(e))

    threads = [threading.Thread(target=wrap, args=a) for a in args_list]
    for t in threads:
        t.start()
    for t in threads:
        t.join(90)
    return errors


def token(cur, call, args=()):
    cur.execute("SELECT " + call, args)
    return cur.fetchone()[0]


def take_tokens(node, sessions, calls, prefix):
    """Tokens from concurrent autocommit sessions, each on its own keys."""
    out = []
    conns = [node.connect() for _ in range(sessions)]

    def work(i):
        cur = conns[i].cursor()
        for j in range(calls):
            key = "%s:%d:%d" % (prefix, i, j % 3)
            out.append(token(cur, "pglocks_acquire_token(%s)", (key,)))
            cur.execute("SELECT pglocks_release(%s)", (key,))

    errors = run_threads(work, [(i,) for i in range(sessions)])
    for c in conns:
        c.close()
    check(not errors, "%d sessions took %d tokens%s" % (sessions, len(out),
                                                        ": " + "; ".join(errors) if errors else ""))
    return out


# ------------------------------------------------------------------------------------------
def test_order(node):
    section("order across sessions")
    sessions, phases, calls = 6, 3, 60
    node.q("CREATE TABLE fence (key text PRIMARY KEY, max_token bigint NOT NULL)")
    node.q("INSERT INTO fence VALUES ('order:common', 0)")
    conns = [node.connect() for _ in range(sessions)]
    barrier = threading.Barrier(sessions, timeout=60)
    records = []  # (session, phase, start, end, token)
    refused = []

    def work(i):
        cur = conns[i].cursor()
        for phase in range(phases):
            barrier.wait()
            for j in range(calls):
                kind = j % 5
                t0 = time.monotonic()
                if kind in (0, 1):
                    # Everyone queues for this one, so its holders' order is the lock's.
                    tok = token(cur, "pglocks_acquire_token('order:common')")
                    t1 = time.monotonic()
                    # What a storage system does with a holder's write: refuse tokens
                    # lower than the highest it has accepted.
                    cur.execute("UPDATE fence SET max_token = %s "
                                "WHERE key = 'order:common' AND max_token < %s "
                                "RETURNING max_token", (tok, tok))
                    if cur.rowcount != 1:
                        refused.append(tok)
                    cur.execute("SELECT pglocks_release('order:common')")
                elif kind == 2:
                    key = "order:%d:%d" % (i, j % 4)
                    tok = token(cur, "pglocks_acquire_token(%s)", (key,))
                    t1 = time.monotonic()
                    cur.execute("SELECT pglocks_release(%s)", (key,))
                elif kind == 3:
                    tok = token(cur, "pglocks_acquire_token(%s::int8, shared => true)",
                                (9000 + j % 2,))
                    t1 = time.monotonic()
                    cur.execute("SELECT pglocks_release(%s::int8, shared => true)", (9000 + j % 2,))
                else:
                    tok = token(cur, "pglocks_acquire_token(%s, %s, timeout => '10s')", (7, i))
                    t1 = time.monotonic()
                    cur.execute("SELECT pglocks_release(%s, %s)", (7, i))
                records.append((i, phase, t0, t1, tok))
            barrier.wait()

    t_start = time.monotonic()
    errors = run_threads(work, [(i,) for i in range(sessions)])
    elapsed = time.monotonic() - t_start
    for c in conns:
        c.close()
    check(not errors, "%d sessions x %d phases x %d calls ran in %.1f s%s"
          % (sessions, phases, calls, elapsed, ": " + "; ".join(errors[:3]) if errors else ""))
    tokens = [r[4] for r in records]
    check(len(records) == sessions * phases * calls and None not in tokens,
          "every call returned a token (%d of %d)" % (len(records) - tokens.count(None),
                                                      sessions * phases * calls))
    tokens = [t for t in tokens if t is not None]
    if not tokens:
        return 0
    check(len(set(tokens)) == len(tokens),
          "tokens are distinct: %d tokens, %d distinct, from %s to %s"
          % (len(tokens), len(set(tokens)), split(min(tokens)), split(max(tokens))))
    check(all(t >> SEQ_BITS == 1 for t in tokens), "tokens carry timeline 1 above bit 48")

    bad_sessions = []
    for i in range(sessions):
        mine = [r[4] for r in records if r[0] == i and r[4] is not None]  # in call order
        if any(b <= a for a, b in zip(mine, mine[1:])):
            bad_sessions.append(i)
    check(not bad_sessions, "each session's tokens strictly increase (sessions out of order: %s)"
          % (bad_sessions or "none"))

    # Real-time order: a call that started after another returned got a greater token.
    done = sorted((r for r in records if r[4] is not None), key=lambda r: r[3])
    ends = [r[3] for r in done]
    prefix_max, m = [], 0
    for r in done:
        m = max(m, r[4])
        prefix_max.append(m)
    pairs, violations = 0, []
    for r in records:
        if r[4] is None:
            continue
        k = bisect.bisect_left(ends, r[2])
        if k > 0:
            pairs += 1
            if prefix_max[k - 1] >= r[4]:
                violations.append((r[4], prefix_max[k - 1]))
    check(not violations, "a call started after others returned got a token above all of theirs "
          "(%d calls checked, %d not%s)" % (pairs, len(violations),
                                            ", e.g. %d after %d" % violations[0] if violations else ""))

    phase_ok = True
    for p in range(1, phases):
        prev = [r[4] for r in records if r[1] == p - 1 and r[4] is not None]
        cur_ = [r[4] for r in records if r[1] == p and r[4] is not None]
        ok = min(cur_) > max(prev)
        phase_ok &= ok
        note("phase %d: %s .. %s; phase %d: %s .. %s" % (p - 1, split(min(prev)), split(max(prev)),
                                                        p, split(min(cur_)), split(max(cur_))))
    check(phase_ok, "every token of a phase exceeds every token of the phase before")

    common = sessions * phases * (2 * calls // 5)
    check(not refused, "holders of 'order:common' got tokens in the order they held it: "
          "the fencing table refused %d of %d holders%s"
          % (len(refused), common, " (tokens %s)" % refused[:5] if refused else ""))
    test_queue_jump(node)
    return max(tokens)


def test_queue_jump(node):
    # A session that holds a lock shared and asks for it exclusive goes ahead of the waiters
    # its shared hold blocks (the lock manager's rule against needless deadlocks): it holds
    # the lock before a waiter that asked earlier, so its token must still be the lower.
    a, b = node.connect(), node.connect()
    ca, cb = a.cursor(), b.cursor()
    cb.execute("SELECT pglocks_acquire('order:jump', shared => true)")
    got = {}

    def waiter():
        got["a"] = token(ca, "pglocks_acquire_token('order:jump', timeout => '20s')")

    t = threading.Thread(target=waiter)
    t.start()
    wait_until("A waits for 'order:jump'", lambda: node.q1(
        "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted AND pid = %s",
        (a.get_backend_pid(),)) == 1, 10)
    tb = token(cb, "pglocks_acquire_token('order:jump', timeout => '5s')")
    cb.execute("SELECT pglocks_release('order:jump'), pglocks_release('order:jump', shared => true)")
    t.join(30)
    ta = got.get("a")
    ca.execute("SELECT pglocks_release('order:jump')")
    check(tb is not None and ta is not None and ta > tb,
          "A waited for 'order:jump' behind B's shared hold, B took it exclusive ahead of A and "
          "released it, then A held it: B's token %s, A's %s (A's must be greater)" % (tb, ta))
    a.close()
    b.close()


# ------------------------------------------------------------------------------------------
def test_token_function(node):
    section("pglocks_token and NULL when not acquired")
    a, b = node.connect(), node.connect()
    ca, cb = a.cursor(), b.cursor()

    t1 = token(ca, "pglocks_acquire_token('pt:k')")
    check(t1 is not None, "A acquires 'pt:k': token %s" % t1)
    seen = token(ca, "pglocks_token('pt:k')")
    check(seen == t1, "A: pglocks_token('pt:k') = %s (the hold's token %s)" % (seen, t1))
    nb = token(cb, "pglocks_acquire_token('pt:k', wait => false)")
    check(nb is None, "B: pglocks_acquire_token('pt:k', wait => false) against A = %s (want NULL)" % show(nb))
    nb = token(cb, "pglocks_acquire_token('pt:k', timeout => '100 ms')")
    check(nb is None, "B: pglocks_acquire_token('pt:k', timeout => '100 ms') against A = %s (want NULL)" % show(nb))
    seen = token(cb, "pglocks_token('pt:k')")
    check(seen is None, "B, which holds nothing: pglocks_token('pt:k') = %s (want NULL)" % show(seen))
    held = token(cb, "count(*) FROM pglocks_held()")
    check(held == 0, "B holds nothing after the failed attempts (%d holds)" % held)

    t2 = token(ca, "pglocks_acquire_token('pt:k')")
    seen = token(ca, "pglocks_token('pt:k')")
    check(t2 is not None and t2 > t1 and seen == t2,
          "A again (re-entrant): token %s > %s; pglocks_token = %s (the newer hold's)" % (t2, t1, seen))
    ca.execute("SELECT pglocks_release('pt:k')")
    seen = token(ca, "pglocks_token('pt:k')")
    check(seen == t1, "A released the newer hold: pglocks_token = %s (the remaining hold's %s)" % (seen, t1))
    released = token(ca, "pglocks_release('pt:k')")
    seen = token(ca, "pglocks_token('pt:k')")
    check(released is True and seen is None, "A released the last hold: pglocks_token = %s (want NULL)" % show(seen))

    t3 = token(cb, "pglocks_acquire_token('pt:k', wait => false)")
    check(t3 is not None and t3 > t2,
          "B acquires once A released: token %s > A's %s and the failed attempts'" % (t3, t2))
    cb.execute("SELECT pglocks_release('pt:k')")

    ca.execute("SELECT pglocks_acquire('pt:plain')")
    seen = token(ca, "pglocks_token('pt:plain')")
    check(seen is None, "a hold taken with pglocks_acquire has no token: pglocks_token = %s" % show(seen))
    ca.execute("SELECT pglocks_release('pt:plain')")

    s1 = token(ca, "pglocks_acquire_token('pt:s', shared => true)")
    s2 = token(cb, "pglocks_acquire_token('pt:s', shared => true)")
    ex = token(ca, "pglocks_token('pt:s')")
    sh = token(ca, "pglocks_token('pt:s', shared => true)")
    check(s1 is not None and s2 is not None and s2 > s1 and ex is None and sh == s1,
          "shared: A %s, B %s; A's pglocks_token exclusive = %s (want NULL), shared = %s" % (s1, s2, show(ex), sh))
    ca.execute("SELECT pglocks_release('pt:s', shared => true)")
    cb.execute("SELECT pglocks_release('pt:s', shared => true)")

    tb = token(ca, "pglocks_acquire_token(424242::int8)")
    tp = token(ca, "pglocks_acquire_token(42, 4242)")
    sb = token(ca, "pglocks_token(424242::int8)")
    sp = token(ca, "pglocks_token(42, 4242)")
    check(tb is not None and tp is not None and tp > tb and sb == tb and sp == tp,
          "bigint and pair keys: tokens %s, %s; pglocks_token %s, %s" % (tb, tp, sb, sp))
    ca.execute("SELECT pglocks_release(424242::int8), pglocks_release(42, 4242)")
    seen = token(ca, "pglocks_token(424242::int8) IS NULL AND pglocks_token(42, 4242) IS NULL")
    check(seen is True, "and NULL after release")

    a.autocommit = False
    tt = token(ca, "pglocks_acquire_token('pt:x', scope => 'transaction')")
    inside = token(ca, "pglocks_token('pt:x')")
    a.commit()
    a.autocommit = True
    after = token(ca, "pglocks_token('pt:x')")
    check(tt is not None and inside == tt and after is None,
          "transaction scope: token %s, pglocks_token in the transaction %s, after COMMIT %s (want NULL)"
          % (tt, inside, show(after)))
    a.close()
    b.close()


# ------------------------------------------------------------------------------------------
def test_unlogged(node, prev_max):
    section("an unlogged token sequence")
    if node.q1("SELECT current_setting('server_version_num')::int") < 150000:
        note("skipped: sequences can be unlogged from PostgreSQL 15 on")
        return prev_max
    # An unlogged sequence starts again after a crash and is not replicated: no token.
    node.q("ALTER SEQUENCE pglocks_token_seq SET UNLOGGED")
    before = node.q1("SELECT last_value FROM pglocks_token_seq")
    conn = node.connect()
    cur = conn.cursor()
    try:
        cur.execute("SELECT pglocks_acquire_token('unlogged')")
        code, message = None, "a token was issued: %s" % cur.fetchone()[0]
    except psycopg2.Error as e:
        code, message = e.pgcode, (e.pgerror or "").strip().splitlines()[0]
    # The same session: what the failed call left behind is still there to see.
    cur.execute("SELECT (SELECT count(*) FROM pglocks_held()), "
                "(SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' "
                "AND pid = pg_backend_pid()), "
                "(SELECT last_value FROM pglocks_token_seq)")
    held, locks, after = cur.fetchone()
    check(code == "55000" and held == 0 and locks == 0 and after == before,
          "pglocks_token_seq SET UNLOGGED: %s (%s, want 55000); the session holds %d "
          "(pglocks_held) and %d (pg_locks); the sequence at %d, was %d"
          % (code, message, held, locks, after, before))
    # Made logged in a transaction: no token in it either, as a rollback would bring back
    # the unlogged file (and a draw in a transaction that made it logged and unlogged again
    # would issue the values of a file the rollback takes away).
    tx = node.connect(autocommit=False)
    try:
        txc = tx.cursor()
        txc.execute("ALTER SEQUENCE pglocks_token_seq SET LOGGED")
        txc.execute("SELECT pglocks_acquire_token('unlogged')")
        message = "a token was issued: %s" % txc.fetchone()[0]
    except psycopg2.Error as e:
        message = "%s %s" % (e.pgcode, (e.pgerror or "").strip().splitlines()[0])
    finally:
        tx.close()
    check(message.startswith("55000") and "created or rewrote" in message,
          "in the transaction that made it logged: %s" % message)
    node.q("ALTER SEQUENCE pglocks_token_seq SET LOGGED")
    cur.execute("SELECT pglocks_acquire_token('unlogged'), pglocks_release_all()")
    again = cur.fetchone()[0]
    conn.close()
    check(again is not None and again > prev_max,
          "SET LOGGED again: token %s, above every token before (%s)" % (again, prev_max))
    return again


# ------------------------------------------------------------------------------------------
def test_crash(node, how, prev_max):
    section("crash restart: " + how)
    node.q("CREATE SEQUENCE IF NOT EXISTS control_seq")
    opened = [node.connect(autocommit=False) for _ in range(3)]  # each in one open transaction
    plain = [node.connect() for _ in range(3)]
    for c in plain:
        # A commit of theirs would flush the WAL of everybody's tokens; the extension's own
        # flush is what is under test.
        c.cursor().execute("SET synchronous_commit = off")
    returned = []
    stop = threading.Event()

    def work(conn, tag):
        cur = conn.cursor()
        k = 0
        while not stop.is_set():
            key = "crash:%s:%d" % (tag, k % 3)
            returned.append(token(cur, "pglocks_acquire_token(%s)", (key,)))
            cur.execute("SELECT pglocks_release(%s)", (key,))
            k += 1

    threads_args = [(c, "open%d" % i) for i, c in enumerate(opened)] + \
                   [(c, "plain%d" % i) for i, c in enumerate(plain)]
    timer = threading.Timer(0.5, stop.set)
    timer.start()
    errors = run_threads(work, threads_args)
    check(not errors, "6 sessions, 3 of them in open transactions, took %d tokens%s"
          % (len(returned), ": " + "; ".join(errors[:3]) if errors else ""))

    # After a checkpoint the next nextval writes a fresh sequence record; nothing commits
    # from here on, so only pglocks_acquire_token's flush can make that record durable.
    node.q("CHECKPOINT")
    last_open = []
    for c in opened:
        t = token(c.cursor(), "pglocks_acquire_token('crash:last')")
        c.cursor().execute("SELECT pglocks_release('crash:last')")
        last_open.append(t)
    returned += last_open
    control = node.connect(autocommit=False)
    control_max = token(control.cursor(), "max(nextval('control_seq')) FROM generate_series(1, 5)")
    open_xacts = node.q1("SELECT count(*) FROM pg_stat_activity WHERE state = 'idle in transaction'")
    before = max(returned + [prev_max])
    newest = max(t for t in returned if t is not None)
    note("before the crash: %d tokens returned, the highest %d (%s); %d transactions open, "
         "the last tokens (%s) taken in them after a checkpoint"
         % (len(returned), before, split(before), open_xacts, ", ".join(map(str, last_open))))
    check(newest > prev_max, "the tokens continue above the earlier parts' highest %d" % prev_max)

    if how == "SIGKILL of a backend":
        victim = opened[0].get_backend_pid()
        os.kill(victim, signal.SIGKILL)
        note("killed backend %d with SIGKILL" % victim)
        survivor = plain[0].cursor()

        def survivor_gone():
            try:
                survivor.execute("SELECT 1")
                return False
            except psycopg2.Error:
                return True

        # The postmaster ends every other backend before it recovers.
        wait_until("the postmaster reset the other backends", survivor_gone, 20)
        check(True, "the postmaster ended the other sessions (crash recovery)")
    else:
        node.stop("immediate")
        note("pg_ctl stop -m immediate, then start")
        node.start()
    t0 = time.monotonic()
    node.wait_ready()
    note("accepting connections again after %.1f s" % (time.monotonic() - t0))
    for c in opened + plain + [control]:
        c.close()
    with open(node.log) as f:
        log = f.read()
    if how == "SIGKILL of a backend":
        check("terminated by signal 9" in log and "all server processes terminated; reinitializing" in log,
              "the server log shows the crash and the reinitialization")

    after = take_tokens(node, 4, 25, "after")
    low = min(after) if after else 0
    check(bool(after) and low > before,
          "after the restart every token exceeds every token returned before: lowest %d (%s) > %d (%s)"
          % (low, split(low), before, split(before)))
    control_after = node.q1("SELECT nextval('control_seq')")
    note("sequence not flushed by anybody: %d before the crash, %d after (%s)"
         % (control_max, control_after,
            "values given out in the open transaction came back, so the crash lost unflushed WAL"
            if control_after <= control_max else "no value came back this time"))
    return max(after + [before])


# ------------------------------------------------------------------------------------------
def test_failover(primary, prev_max):
    section("failover to a physical standby")
    standby = Node("standby")
    as_owner("pg_basebackup", "-h", WORK, "-p", str(primary.port), "-U", "postgres",
             "-D", standby.data, "-R", "-X", "stream", "-c", "fast")
    standby.append_conf(["port = %d" % standby.port])
    standby.start()
    standby.wait_ready()

    replayed = take_tokens(primary, 2, 20, "replayed")
    lsn = primary.q1("SELECT pg_current_wal_lsn()::text")
    wait_until("the standby replayed " + lsn,
               lambda: standby.q1("SELECT pg_last_wal_replay_lsn() >= %s::pg_lsn", (lsn,)), 30)
    streaming = standby.q1("SELECT count(*) FROM pg_stat_wal_receiver WHERE status = 'streaming'")
    check(standby.q1("SELECT pg_is_in_recovery()") and streaming == 1,
          "the standby streams and replayed up to %s (tokens up to %d)" % (lsn, max(replayed)))

    conn = standby.connect()
    cur = conn.cursor()
    for setting, want_code, want_text in (
            ("off", "55000", "cannot take a pglocks lock on a server in recovery"),
            ("on", "25006", "cannot issue pglocks fencing tokens during recovery")):
        cur.execute("SET pglocks.allow_on_standby = " + setting)
        try:
            got = token(cur, "pglocks_acquire_token('sb')")
            code, text = None, "returned %s" % got
        except psycopg2.Error as e:
            code, text = e.pgcode, (e.pgerror or "").strip().splitlines()[0]
        check(code == want_code and want_text in text,
              "standby, pglocks.allow_on_standby = %s: pglocks_acquire_token fails with %s "
              "(want %s '%s'): %s" % (setting, code, want_code, want_text, text))
    seen = token(cur, "pglocks_token('sb')")
    check(seen is None, "standby: pglocks_token('sb') = %s (want NULL)" % show(seen))
    conn.close()

    # Pointing the standby at a socket directory without a server, and ending the
    # walsender, leaves it unable to receive what the primary writes next.
    standby.q("ALTER SYSTEM SET primary_conninfo = %s",
              ("host=%s/nowhere port=1 user=postgres" % WORK,))
    standby.q("SELECT pg_reload_conf()")

    def cut():
        primary.q("SELECT pg_terminate_backend(pid) FROM pg_stat_replication")
        time.sleep(0.3)
        return (primary.q1("SELECT count(*) FROM pg_stat_replication") == 0 and
                standby.q1("SELECT count(*) FROM pg_stat_wal_receiver WHERE status = 'streaming'") == 0)

    wait_until("replication is cut", cut, 30)
    standby_lsn = standby.q1("SELECT pg_last_wal_replay_lsn()::text")
    check(True, "replication cut; the standby replayed up to %s" % standby_lsn)

    missed = take_tokens(primary, 3, 40, "missed")
    opened = primary.connect(autocommit=False)
    missed.append(token(opened.cursor(), "pglocks_acquire_token('missed:open')"))
    old_max = max(missed + [prev_max])
    primary_lsn = primary.q1("SELECT pg_current_wal_lsn()::text")
    time.sleep(0.5)
    still = standby.q1("SELECT pg_last_wal_replay_lsn()::text")
    behind = standby.q1("SELECT %s::pg_lsn < %s::pg_lsn", (still, primary_lsn))
    check(behind, "the standby missed them: replayed %s, the primary is at %s" % (still, primary_lsn))
    note("old primary's highest token %d (%s)" % (old_max, split(old_max)))
    opened.close()
    primary.stop("fast")
    as_owner("pg_ctl", "-D", standby.data, "-w", "-t", "60", "promote")
    wait_until("the standby is promoted", lambda: not standby.q1("SELECT pg_is_in_recovery()"), 30)
    tli = int(standby.q1("SELECT substr(pg_walfile_name(pg_current_wal_lsn()), 1, 8)"), 16)
    note("the standby is promoted, timeline %d" % tli)

    after = take_tokens(standby, 3, 20, "promoted")
    low = min(after) if after else 0
    check(bool(after) and low > old_max,
          "every token of the promoted server exceeds the old primary's: lowest %d (%s) > %d (%s)"
          % (low, split(low), old_max, split(old_max)))
    check(bool(after) and (low & ((1 << SEQ_BITS) - 1)) <= (old_max & ((1 << SEQ_BITS) - 1)),
          "the promoted server's sequence is behind the old primary's (%d <= %d), so the "
          "timeline is what keeps its tokens above"
          % (low & ((1 << SEQ_BITS) - 1), old_max & ((1 << SEQ_BITS) - 1)))
    return standby


def test_upgrade(promoted):
    """pg_upgrade starts the new cluster on timeline 1, whatever the old one was on; the
    sequence, which pg_upgrade keeps, carries the timeline part, so tokens go on from the old
    cluster's instead of going back to timeline 1's."""
    section("pg_upgrade of the promoted server")
    old_tli = int(promoted.q1("SELECT timeline_id FROM pg_control_checkpoint()"))
    last = promoted.q1("SELECT pglocks_acquire_token('before-upgrade')")
    note("last token before the upgrade %d (%s), timeline %d" % (last, split(last), old_tli))
    check(old_tli >= 2, "the promoted server is on a timeline above 1 (%d)" % old_tli)
    promoted.stop("fast")
    new = Node("upgraded")
    as_owner("initdb", "-D", new.data, "-A", "trust", "-U", "postgres", "-E", "UTF8",
             "--no-locale", "--no-sync")
    new.append_conf(["port = %d" % new.port, "unix_socket_directories = '%s'" % WORK,
                     "shared_preload_libraries = 'pglocks'", "max_connections = 40"])
    bindir = os.path.dirname(shutil.which("pg_ctl"))
    cmd = ("pg_upgrade", "-b", bindir, "-B", bindir, "-d", promoted.data, "-D", new.data,
           "-p", str(free_port()), "-P", str(free_port()), "-U", "postgres", "--link")
    if os.getuid() == 0:
        cmd = ("runuser", "-u", "postgres", "--") + cmd
    # pg_upgrade writes its logs and sockets in its working directory.
    r = subprocess.run(cmd, capture_output=True, text=True, cwd=WORK)
    if r.returncode != 0:
        raise RuntimeError("pg_upgrade failed: %s%s" % (r.stdout[-2000:], r.stderr[-2000:]))
    new.start()
    new.wait_ready()
    new_tli = int(new.q1("SELECT timeline_id FROM pg_control_checkpoint()"))
    after = take_tokens(new, 3, 20, "upgraded")
    low = min(after) if after else 0
    check(new_tli == 1, "the upgraded cluster starts on timeline 1 (%d)" % new_tli)
    check(bool(after) and low > last,
          "every token after the upgrade exceeds every token before it: lowest %d (%s) > %d (%s)"
          % (low, split(low), last, split(last)))
    # Its sequence's part (2) is above its timeline (1). A promotion must still move the
    # sequence (a standby may have missed its last records): one above the part it had,
    # whatever the new timeline's number. Promoted in place: a standby of itself.
    high = max(after)
    promote_in_place(new)
    tli = int(new.q1("SELECT substr(pg_walfile_name(pg_current_wal_lsn()), 1, 8)"), 16)
    # A session draws (the first draw on this timeline: it moves the sequence one part up
    # and remembers that the sequence changed on this timeline), then rewrites the sequence
    # (INCREMENT BY 1 writes a new file) and rolls back. A draw in the rewrite's transaction
    # is refused (55000): the rollback puts back the older file, and the tokens drawn from
    # the new one would be issued again (the regression suite tests the refusal on every
    # major, and the undos by savepoint). The session's next draw goes on from its first.
    conn = new.connect(autocommit=False)
    try:
        cur = conn.cursor()
        cur.execute("SELECT pglocks_acquire_token('before-the-rewrite')")
        first_draw = cur.fetchone()[0]
        conn.commit()
        cur.execute("ALTER SEQUENCE pglocks_token_seq INCREMENT BY 1")
        try:
            cur.execute("SELECT pglocks_acquire_token('rewrite-rolled-back')")
            refused = "no error: token %d" % cur.fetchone()[0]
        except psycopg2.Error as e:
            refused = "%s %s" % (e.pgcode, (e.pgerror or "").strip().splitlines()[0])
        conn.rollback()
        conn.autocommit = True
        cur.execute("SELECT pglocks_acquire_token('after-the-rollback')")
        next_draw = cur.fetchone()[0]
    finally:
        conn.close()
    check(first_draw > high and first_draw >> SEQ_BITS == (high >> SEQ_BITS) + 1,
          "the first draw after the promotion moves the sequence one part higher: %d (%s) > "
          "%d (%s)" % (first_draw, split(first_draw), high, split(high)))
    check(refused.startswith("55000") and "created or rewrote" in refused,
          "a draw in the transaction that rewrote the sequence is refused: %s" % refused)
    check(next_draw > first_draw and next_draw >> SEQ_BITS == first_draw >> SEQ_BITS,
          "after a rolled-back rewrite of the sequence, the session's next draw goes on from "
          "its first: %d (%s) > %d (%s)" % (next_draw, split(next_draw), first_draw,
                                            split(first_draw)))
    again = take_tokens(new, 3, 20, "promoted after upgrade")
    low = min(again) if again else 0
    check(tli == 2 and bool(again) and low > high and low >> SEQ_BITS == (high >> SEQ_BITS) + 1,
          "promoted after the upgrade (timeline %d): every token exceeds the ones before, one part "
          "higher: lowest %d (%s) > %d (%s)" % (tli, low, split(low), high, split(high)))
    new.stop("fast")


# An in-place promotion: the server restarted as a standby of nothing, then promoted.
def promote_in_place(node):
    node.stop("fast")
    as_owner("touch", os.path.join(node.data, "standby.signal"))
    node.start()
    as_owner("pg_ctl", "-D", node.data, "-w", "-t", "60", "promote")
    wait_until("the server is promoted", lambda: not node.q1("SELECT pg_is_in_recovery()"), 30)


# ------------------------------------------------------------------------------------------
def main():
    t_all = time.monotonic()
    primary = Node("primary")
    as_owner("initdb", "-D", primary.data, "-A", "trust", "-U", "postgres", "-E", "UTF8",
             "--no-locale", "--no-sync")
    primary.append_conf([
        "port = %d" % primary.port,
        "listen_addresses = '127.0.0.1'",
        "unix_socket_directories = '%s'" % WORK,
        "shared_preload_libraries = 'pglocks'",
        "max_connections = 40",
        "wal_level = replica",
        "max_wal_senders = 4",
        "jit = off",
        # WAL the crash parts leave unflushed must stay unflushed until the crash: no
        # background commit and no WAL writer cycle may flush it for them.
        "autovacuum = off",
        "wal_writer_delay = '10s'",
        "checkpoint_timeout = '1h'",
        "restart_after_crash = on",
    ])
    primary.start()
    primary.q("CREATE EXTENSION pglocks")
    note("primary on port %d, pglocks %s" % (primary.port,
                                             primary.q1("SELECT extversion FROM pg_extension "
                                                        "WHERE extname = 'pglocks'")))
    timings = []
    t = time.monotonic()
    high = test_order(primary)
    timings.append(("order", time.monotonic() - t))
    t = time.monotonic()
    test_token_function(primary)
    high = max(high, primary.q1("SELECT pglocks_acquire_token('probe')"))
    high = test_unlogged(primary, high)
    timings.append(("pglocks_token", time.monotonic() - t))
    t = time.monotonic()
    high = test_crash(primary, "SIGKILL of a backend", high)
    timings.append(("crash: SIGKILL", time.monotonic() - t))
    t = time.monotonic()
    high = test_crash(primary, "pg_ctl stop -m immediate", high)
    timings.append(("crash: immediate", time.monotonic() - t))
    t = time.monotonic()
    promoted = test_failover(primary, high)
    timings.append(("failover", time.monotonic() - t))
    t = time.monotonic()
    test_upgrade(promoted)
    timings.append(("pg_upgrade", time.monotonic() - t))

    print("\ntimings: " + ", ".join("%s %.1f s" % x for x in timings)
          + "; total %.1f s" % (time.monotonic() - t_all))
    if failures:
        print("\n%d check(s) failed:" % len(failures))
        for f in failures:
            print("  - " + f)
        return 1
    print("all checks passed")
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except Exception as e:
        print("FAIL   aborted: %r" % e, flush=True)
        if failures:
            print("earlier failures: " + "; ".join(failures))
        sys.exit(1)
PYTHON

status=0
timeout -k 5 180 "$PYTHON" "$WORK/tokens.py" || status=$?
if [ $status -ne 0 ]; then
    for log in "$WORK"/*.log; do
        [ -f "$log" ] && { echo "--- tail of $log"; tail -20 "$log"; }
    done
fi
exit $status
