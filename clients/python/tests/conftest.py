"""Fixtures for the pglocks package tests: real connections to a server with pglocks.

The server and database come from the libpq environment (PGHOST, PGPORT, PGUSER,
PGDATABASE); the database must have the extension. A second database, for Django's
``using``, is created next to it and dropped at the end.
"""

import os
import sys
import time

import psycopg
import psycopg2
import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
# The package under test: this checkout's, unless PGLOCKS_TEST_INSTALLED says to use the
# installed one (the suite checks an installed copy that way).
if not os.environ.get("PGLOCKS_TEST_INSTALLED"):
    sys.path.insert(0, os.path.dirname(HERE))

import pglocks  # noqa: E402

DRIVERS = {"psycopg": psycopg, "psycopg2": psycopg2}

# The specification's vectors: key -> pglocks_key.
VECTORS = [
    ("", -2039914840885289964),
    ("some lock", -5006958056254205714),
    ("orders:42", -8476019149258318077),
    ("Grüße", -559005354142841542),
    ("日本語", 8606672379249086371),
]


# Sessions of this database waiting for an advisory lock (pglocks' locks are advisory locks).
WAITING = (
    "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted"
    " AND database = (SELECT oid FROM pg_database WHERE datname = current_database())"
)


class Probe:
    """Another session, on its own connection, that looks at the locks from outside."""

    def __init__(self, dsn=""):
        self.conn = psycopg2.connect(dsn)
        self.conn.autocommit = True

    def one(self, sql, args=()):
        cur = self.conn.cursor()
        cur.execute(sql, args)
        return cur.fetchone()[0]

    def free(self, key, shared=False):
        """True when this session could take the lock (taken and given back at once)."""
        if isinstance(key, tuple):
            got = self.one("SELECT pglocks_acquire(%s, %s, shared => %s, wait => false)", (*key, shared))
            if got:
                self.one("SELECT pglocks_release(%s, %s, shared => %s)", (*key, shared))
        else:
            cast = "text" if isinstance(key, str) else "bigint"
            got = self.one(f"SELECT pglocks_acquire((%s)::{cast}, shared => %s, wait => false)", (key, shared))
            if got:
                self.one(f"SELECT pglocks_release((%s)::{cast}, shared => %s)", (key, shared))
        return got

    def hold(self, key, shared=False):
        cast = "text" if isinstance(key, str) else "bigint"
        assert self.one(f"SELECT pglocks_acquire((%s)::{cast}, shared => %s)", (key, shared))

    def unhold(self, key, shared=False):
        cast = "text" if isinstance(key, str) else "bigint"
        assert self.one(f"SELECT pglocks_release((%s)::{cast}, shared => %s)", (key, shared))

    def close(self):
        self.conn.close()


@pytest.fixture
def probe():
    p = Probe()
    yield p
    p.one("SELECT pg_advisory_unlock_all()")
    p.close()


@pytest.fixture(params=["psycopg", "psycopg2"])
def driver(request):
    return DRIVERS[request.param]


@pytest.fixture
def connect(driver):
    """connect(autocommit=True): a new connection of the driver under test, closed at the end."""
    opened = []

    def _connect(autocommit=True):
        c = driver.connect("")
        c.autocommit = autocommit
        opened.append(c)
        return c

    yield _connect
    for c in opened:
        c.close()


def holds(conn):
    """This connection's holds as (key, shared, scope, holds), from pglocks_held()."""
    cur = conn.cursor()
    cur.execute("SELECT key, shared, scope, holds FROM pglocks_held() ORDER BY key, shared")
    rows = [tuple(r) for r in cur.fetchall()]
    cur.close()
    return rows


def rewrite_scalar(monkeypatch, statement, change):
    """Rewrites one kind of statement the synchronous adapter sends (``statement``:
    "acquire", the acquire itself, or "count", the count of holds before and after it)
    through ``change(sql)``, until ``monkeypatch.undo()``."""
    from pglocks._conn import SyncAdapter

    scalar = SyncAdapter.scalar

    def rewritten(self, sql, params):
        counts, acquires = "pglocks_held" in sql, "pglocks_acquire(" in sql
        if (statement == "acquire" and acquires and not counts) or (statement == "count" and counts and not acquires):
            sql = change(sql)
        return scalar(self, sql, params)

    monkeypatch.setattr(SyncAdapter, "scalar", rewritten)


def wait_until_waiting(probe, pid, timeout=30):
    """True once the backend ``pid`` waits for an advisory lock: the server's lock table shows
    its request, not granted (False after ``timeout`` seconds)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if probe.one(
            "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted AND pid = %s", (pid,)
        ):
            return True
        time.sleep(0.02)
    return False


class OtherSide:
    """The other side of a deadlock: a psycopg2 connection that holds ``mine``, then, once
    ``wait_for`` is called, waits in a thread for ``theirs`` until that wait shows in the
    server's lock table. It checks for a deadlock only after a minute, so the side that asks
    second (and checks after deadlock_timeout) is the one that finds it. ``finish`` expects
    its wait to have been granted without error and gives back both locks; ``close`` ends a
    wait still going (a failed test) and closes the connection."""

    def __init__(self, probe, mine, theirs):
        import threading

        self.probe, self.mine, self.theirs = probe, mine, theirs
        self.conn = psycopg2.connect("")
        self.conn.autocommit = True
        cur = self.conn.cursor()
        cur.execute("SET deadlock_timeout = '60s'")
        cur.execute("SELECT pg_backend_pid()")
        self.pid = cur.fetchone()[0]
        self.errors = []
        self.thread = threading.Thread(target=self._wait)
        assert pglocks.acquire(self.conn, mine)

    def _wait(self):
        try:
            with pglocks.lock(self.conn, self.theirs):
                pass
        except Exception as exc:  # not expected: the other side is not the victim
            self.errors.append(exc)

    def wait_for(self):
        self.thread.start()
        assert wait_until_waiting(self.probe, self.pid)

    def finish(self):
        self.thread.join(30)
        assert not self.thread.is_alive() and self.errors == []
        assert pglocks.release(self.conn, self.mine)

    def close(self):
        if self.thread.is_alive():
            self.conn.cancel()
            self.thread.join(30)
        self.conn.close()


def sqlstate(exc):
    """The SQLSTATE of a driver's error: psycopg2's pgcode, psycopg's sqlstate."""
    return getattr(exc, "pgcode", None) or getattr(exc, "sqlstate", None)


def tx_status(conn):
    return pglocks._conn.raw_status(conn)


def elapsed(fn):
    started = time.monotonic()
    result = fn()
    return result, time.monotonic() - started


@pytest.fixture(scope="session")
def other_database():
    """A second database with pglocks, for Django's second alias; dropped at the end."""
    admin = psycopg2.connect("")
    admin.autocommit = True
    cur = admin.cursor()
    cur.execute("SELECT current_database()")
    name = cur.fetchone()[0] + "_other"
    cur.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    cur.execute(f'CREATE DATABASE "{name}"')
    c = psycopg2.connect(dbname=name)
    c.autocommit = True
    c.cursor().execute("CREATE EXTENSION pglocks")
    c.close()
    yield name
    cur.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    admin.close()
