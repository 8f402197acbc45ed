"""pglocks.lock, acquire and release with psycopg (3) and psycopg2, on a real server."""

import threading
import time

import pytest

import pglocks
from pglocks._conn import IDLE, INTRANS
from conftest import DRIVERS, WAITING, Probe, elapsed, holds, tx_status


def test_lock_holds_the_named_lock_and_releases_it(connect, probe):
    conn = connect()
    with pglocks.lock(conn, "orders:42") as acquired:
        assert acquired is True
        assert holds(conn) == [("orders:42", False, "session", 1)]
        assert not probe.free("orders:42")
        # the same lock as the core function on the key computed here
        assert probe.one("SELECT pg_try_advisory_lock(%s)", (pglocks.key("orders:42"),)) is False
    assert holds(conn) == []
    assert probe.free("orders:42")


def test_lock_releases_when_the_block_raises(connect, probe):
    conn = connect()
    with pytest.raises(RuntimeError, match="job failed"):
        with pglocks.lock(conn, "orders:42"):
            assert not probe.free("orders:42")
            raise RuntimeError("job failed")
    assert holds(conn) == []
    assert probe.free("orders:42")


def test_integer_key_is_the_core_bigint_lock(connect, probe):
    conn = connect()
    with pglocks.lock(conn, 42):
        assert probe.one("SELECT pg_try_advisory_lock(42::bigint)") is False
        assert probe.free("42")  # the text key '42' is another lock
        assert holds(conn) == [("42", False, "session", 1)]
    assert probe.one("SELECT pg_try_advisory_lock(42::bigint)") is True


def test_pair_key_is_the_core_pair_lock(connect, probe):
    conn = connect()
    with pglocks.lock(conn, (7, 42)):
        assert probe.one("SELECT pg_try_advisory_lock(7, 42)") is False
        assert probe.one("SELECT pg_try_advisory_lock(7::bigint)") is True
        assert holds(conn) == [("7,42", False, "session", 1)]
    assert probe.one("SELECT pg_try_advisory_lock(7, 42)") is True


def test_wait_false_yields_false_and_runs_the_block(connect, probe):
    conn = connect()
    probe.hold("busy")
    ran = False
    with pglocks.lock(conn, "busy", wait=False) as acquired:
        ran = True
        assert acquired is False
        assert holds(conn) == []
    assert ran
    # nothing released on the way out: the other session still holds it
    assert probe.one("SELECT count(*) FROM pglocks_held()") == 1


def test_wait_false_takes_a_free_lock(connect):
    conn = connect()
    with pglocks.lock(conn, "free", wait=False) as acquired:
        assert acquired is True


def test_required_raises_instead_of_running_the_block(connect, probe):
    conn = connect()
    probe.hold("busy")
    with pytest.raises(pglocks.LockNotAcquired) as info:
        with pglocks.lock(conn, "busy", wait=False, required=True):
            pytest.fail("the block must not run")
    assert info.value.key == "busy"
    assert holds(conn) == []


def test_timeout_waits_then_yields_false(connect, probe):
    conn = connect()
    probe.hold("busy")

    def attempt():
        with pglocks.lock(conn, "busy", timeout=0.3) as acquired:
            return acquired

    acquired, waited = elapsed(attempt)
    assert acquired is False
    assert 0.25 <= waited < 5
    assert holds(conn) == []


def test_timeout_gets_a_lock_released_meanwhile(connect, probe):
    conn = connect()
    probe.hold("handoff")
    threading.Timer(0.2, probe.unhold, ("handoff",)).start()
    with pglocks.lock(conn, "handoff", timeout=10) as acquired:
        assert acquired is True


def test_wait_blocks_until_the_holder_releases(connect, probe):
    conn = connect()
    probe.hold("queue")
    threading.Timer(0.3, probe.unhold, ("queue",)).start()

    def attempt():
        with pglocks.lock(conn, "queue") as acquired:
            return acquired

    acquired, waited = elapsed(attempt)
    assert acquired is True and waited >= 0.25


def test_shared_holders_coexist_and_exclude_an_exclusive_one(connect, probe):
    conn = connect()
    with pglocks.lock(conn, "catalog", shared=True) as acquired:
        assert acquired
        assert holds(conn) == [("catalog", True, "session", 1)]
        assert probe.free("catalog", shared=True)
        assert not probe.free("catalog")
    assert holds(conn) == []
    assert probe.free("catalog")


def test_nested_blocks_count_holds(connect, probe):
    conn = connect()
    with pglocks.lock(conn, "n"):
        with pglocks.lock(conn, "n"):
            assert holds(conn) == [("n", False, "session", 2)]
        assert holds(conn) == [("n", False, "session", 1)]
        assert not probe.free("n")
    assert probe.free("n")


def test_value_of_the_context_manager(connect):
    conn = connect()
    cm = pglocks.lock(conn, "v")
    with cm as acquired:
        assert cm.acquired is acquired is True
    assert cm.acquired is False


# --- transactions -------------------------------------------------------------------------


def test_no_transaction_left_open_outside_autocommit(connect, probe):
    # A connection not in autocommit mode: the acquire and the release are committed, so the
    # block neither starts the caller's transaction nor leaves one idle.
    conn = connect(autocommit=False)
    with pglocks.lock(conn, "tx") as acquired:
        assert acquired
        assert tx_status(conn) == IDLE
        assert not probe.free("tx")
    assert tx_status(conn) == IDLE
    assert probe.free("tx")


def test_release_inside_the_callers_transaction_leaves_it_open(connect, probe):
    conn = connect(autocommit=False)
    cur = conn.cursor()
    cur.execute("CREATE TEMP TABLE t (x int)")
    with pglocks.lock(conn, "tx"):
        cur.execute("INSERT INTO t VALUES (1)")
    # the caller's transaction is still open and still its own to commit
    assert tx_status(conn) == INTRANS
    assert probe.free("tx")
    conn.commit()
    cur.execute("SELECT count(*) FROM t")
    assert cur.fetchone()[0] == 1


def test_lock_released_when_the_body_aborts_the_transaction(connect, probe, driver):
    conn = connect(autocommit=False)
    cur = conn.cursor()
    with pytest.raises(driver.errors.DivisionByZero):
        with pglocks.lock(conn, "aborted"):
            cur.execute("SELECT 1/0")
    # The aborted transaction could only be rolled back: it is, and the lock is released.
    assert probe.free("aborted")
    assert holds(conn) == []


def test_transaction_scope_ends_with_the_transaction(connect, probe):
    conn = connect(autocommit=False)
    with pglocks.lock(conn, "t-scope", scope="transaction") as acquired:
        assert acquired
        assert holds(conn) == [("t-scope", False, "transaction", 1)]
        assert not probe.free("t-scope")
    # released early at the end of the block, inside the still open transaction
    assert tx_status(conn) == INTRANS
    assert probe.free("t-scope")
    conn.commit()


def test_transaction_scope_commit_inside_the_block(connect, probe):
    conn = connect(autocommit=False)
    with pytest.raises(pglocks.TransactionChanged):
        with pglocks.lock(conn, "t-scope", scope="transaction"):
            conn.commit()  # ends the hold
            assert probe.free("t-scope")
    assert tx_status(conn) == IDLE


def test_transaction_scope_in_a_psycopg_transaction_block(probe):
    conn = DRIVERS["psycopg"].connect("", autocommit=True)
    try:
        with conn.transaction():
            with pglocks.lock(conn, "t-scope", scope="transaction"):
                assert not probe.free("t-scope")
            assert probe.free("t-scope")
        with pytest.raises(ZeroDivisionError):
            with conn.transaction():
                with pglocks.lock(conn, "t-scope", scope="transaction"):
                    1 / 0
        assert probe.free("t-scope")
    finally:
        conn.close()


def test_transaction_scope_refused_in_autocommit_outside_a_transaction(connect):
    conn = connect(autocommit=True)
    with pytest.raises(ValueError, match="transaction"):
        with pglocks.lock(conn, "t", scope="transaction"):
            pass
    assert holds(conn) == []


def test_closing_the_connection_in_the_block(connect, probe):
    conn = connect()
    with pglocks.lock(conn, "gone"):
        conn.close()
    # the server ends the session (and its locks) a moment after the client hangs up
    for _ in range(100):
        if probe.free("gone"):
            break
        time.sleep(0.05)
    assert probe.free("gone")


def test_released_behind_our_back(connect, probe):
    conn = connect()
    with pglocks.lock(conn, "discarded"):
        cur = conn.cursor()
        cur.execute("SELECT pg_advisory_unlock_all()")
    assert probe.free("discarded")


# --- errors -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "kwargs,error",
    [
        ({"timeout": -1}, ValueError),
        ({"wait": False, "timeout": 1}, ValueError),
        ({"scope": "statement"}, ValueError),
        ({"timeout": "2s"}, TypeError),
    ],
)
def test_bad_options_are_refused(connect, kwargs, error):
    conn = connect()
    with pytest.raises(error):
        pglocks.lock(conn, "k", **kwargs)
    assert holds(conn) == []


def test_deadlock_is_the_drivers_error_and_leaves_nothing_held(connect, driver):
    a, b = connect(), connect()
    assert pglocks.acquire(a, "d1") and pglocks.acquire(b, "d2")
    errors, got = [], []

    def take(conn, mine, theirs, delay):
        time.sleep(delay)
        try:
            with pglocks.lock(conn, theirs) as acquired:
                got.append(acquired)
        except Exception as exc:
            errors.append(exc)
        # the loser gives its own lock back, so that the other one goes on
        pglocks.release(conn, mine)

    threads = [threading.Thread(target=take, args=(a, "d1", "d2", 0)),
               threading.Thread(target=take, args=(b, "d2", "d1", 0.3))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert not any(t.is_alive() for t in threads)
    assert got == [True]
    assert len(errors) == 1 and isinstance(errors[0], driver.errors.DeadlockDetected)
    assert holds(a) == [] and holds(b) == []


def test_missing_extension(probe, driver):
    name = probe.one("SELECT current_database()") + "_noext"
    probe.one("SELECT 1")
    cur = probe.conn.cursor()
    cur.execute(f'DROP DATABASE IF EXISTS "{name}"')
    cur.execute(f'CREATE DATABASE "{name}"')
    try:
        conn = driver.connect(dbname=name)
        conn.autocommit = True
        with pytest.raises(pglocks.ExtensionNotInstalled, match="CREATE EXTENSION pglocks"):
            with pglocks.lock(conn, "x"):
                pass
        with pytest.raises(pglocks.ExtensionNotInstalled):
            pglocks.with_lock(conn, "x", "SELECT 1")
        conn.close()
    finally:
        cur.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def test_acquire_and_release_functions(connect, probe):
    conn = connect()
    assert pglocks.acquire(conn, "f") is True
    assert pglocks.acquire(conn, "f") is True
    assert pglocks.release(conn, "f") is True
    assert not probe.free("f")
    assert pglocks.release(conn, "f") is True
    assert pglocks.release(conn, "f") is False
    assert probe.free("f")


def test_unsupported_connection_types():
    with pytest.raises(TypeError):
        pglocks.acquire(object(), "x")
    with pytest.raises(TypeError):
        with pglocks.lock("dbname=x", "x"):
            pass


def test_statement_timeout_cancels_the_wait_and_leaves_nothing(connect, probe, driver):
    conn = connect()
    probe.hold("stuck")
    cur = conn.cursor()
    cur.execute("SET statement_timeout = '200ms'")
    with pytest.raises(driver.errors.QueryCanceled):
        with pglocks.lock(conn, "stuck"):
            pytest.fail("the block must not run")
    cur.execute("RESET statement_timeout")
    assert holds(conn) == []
    probe.unhold("stuck")
    assert probe.one("SELECT count(*) FROM pglocks_locks WHERE key = 'stuck'") == 0


def test_connections_whose_rows_are_dicts(probe):
    import psycopg
    import psycopg.rows
    import psycopg2.extras

    for conn in (
        psycopg.connect("", autocommit=True, row_factory=psycopg.rows.dict_row),
        psycopg.connect("", autocommit=True, row_factory=psycopg.rows.namedtuple_row),
        psycopg2.connect("", cursor_factory=psycopg2.extras.RealDictCursor),
        psycopg2.connect("", cursor_factory=psycopg2.extras.DictCursor),
    ):
        conn.autocommit = True
        try:
            with pglocks.lock(conn, "rows") as acquired:
                assert acquired is True
                assert not probe.free("rows")
            assert probe.free("rows")
            assert pglocks.with_lock(conn, "rows", "SELECT 1") is True
        finally:
            conn.close()


def test_failed_acquire_outside_autocommit_leaves_no_failed_transaction(connect, probe, driver):
    conn = connect(autocommit=False)
    cur = conn.cursor()
    cur.execute("SET statement_timeout = '200ms'")
    conn.commit()
    probe.hold("stuck")
    with pytest.raises(driver.errors.QueryCanceled):
        with pglocks.lock(conn, "stuck"):
            pytest.fail("the block must not run")
    # the transaction that failed was the acquire's own: rolled back, the connection usable
    assert tx_status(conn) == IDLE
    probe.unhold("stuck")
    with pglocks.lock(conn, "stuck") as acquired:
        assert acquired


def test_release_does_not_roll_back_the_callers_failed_transaction(connect, probe, driver):
    conn = connect(autocommit=False)
    assert pglocks.acquire(conn, "mine")
    cur = conn.cursor()
    with pytest.raises(driver.errors.DivisionByZero):
        cur.execute("SELECT 1/0")
    with pytest.raises(driver.errors.InFailedSqlTransaction):
        pglocks.release(conn, "mine")
    conn.rollback()
    assert not probe.free("mine")
    assert pglocks.release(conn, "mine") is True
    assert probe.free("mine")


# --- savepoints, and what cannot be released ---------------------------------------------


def test_sql_error_in_a_psycopg_transaction_block_releases(probe):
    # psycopg refuses rollback() inside conn.transaction(): the block's savepoint is rolled
    # back to instead, and the lock released.
    conn = DRIVERS["psycopg"].connect("", autocommit=True)
    try:
        with pytest.raises(DRIVERS["psycopg"].errors.DivisionByZero):
            with conn.transaction():
                with pglocks.lock(conn, "tx-block"):
                    assert not probe.free("tx-block")
                    conn.execute("SELECT 1/0")
        assert probe.free("tx-block")
        assert holds(conn) == []
    finally:
        conn.close()


def test_error_in_the_block_rolls_back_to_the_blocks_savepoint(connect, probe, driver):
    # Work of the caller's transaction before the block stays; the block's is undone.
    conn = connect(autocommit=False)
    cur = conn.cursor()
    cur.execute("CREATE TEMP TABLE sp (x int)")
    conn.commit()
    cur.execute("INSERT INTO sp VALUES (1)")
    with pytest.raises(driver.errors.DivisionByZero):
        with pglocks.lock(conn, "sp"):
            cur.execute("INSERT INTO sp VALUES (2)")
            cur.execute("SELECT 1/0")
    assert probe.free("sp")
    assert tx_status(conn) == INTRANS
    cur.execute("INSERT INTO sp VALUES (3)")
    conn.commit()
    cur.execute("SELECT array_agg(x ORDER BY x) FROM sp")
    assert cur.fetchone()[0] == [1, 3]


def wait_until_free(probe, key):
    # the server ends a session (and its locks) a moment after the client hangs up
    for _ in range(200):
        if probe.free(key):
            return True
        time.sleep(0.05)
    return False


# --- KeyboardInterrupt --------------------------------------------------------------------


def waiting(probe):
    return probe.one(WAITING)


def test_keyboard_interrupt_during_the_acquire_leaves_nothing(connect, probe):
    # Ctrl-C while the acquire waits: psycopg cancels the statement, psycopg2 finishes it
    # (the lock granted) before Python sees the signal. Either way the outcome of the
    # statement is unknown to the caller: nothing may stay held or queued.
    import os
    import signal

    conn = connect()
    probe.hold("ki")
    watcher = Probe()

    def interrupt():
        for _ in range(400):
            if watcher.one(WAITING):
                break
            time.sleep(0.02)
        os.kill(os.getpid(), signal.SIGINT)
        time.sleep(0.3)
        watcher.one("SELECT 1")
        probe.unhold("ki")

    t = threading.Thread(target=interrupt)
    t.start()
    try:
        with pytest.raises(KeyboardInterrupt):
            with pglocks.lock(conn, "ki"):
                pytest.fail("the block must not run")
    finally:
        t.join(30)
        watcher.close()
    assert wait_until_free(probe, "ki")
    assert waiting(probe) == 0


def test_keyboard_interrupt_in_the_block_releases(connect, probe):
    conn = connect()
    with pytest.raises(KeyboardInterrupt):
        with pglocks.lock(conn, "ki-block"):
            raise KeyboardInterrupt
    assert probe.free("ki-block")
    assert holds(conn) == []
