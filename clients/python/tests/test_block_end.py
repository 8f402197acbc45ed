"""How a lock block ends when its body changed the transaction or the connection under it:
transaction-scope holds checked against the transaction that took them, aborted
transactions rolled back to the block's savepoint, failed acquires inside a transaction,
releases that fail, and one lock object entered again inside its own block."""

import asyncio
import time

import psycopg
import pytest

import pglocks
from pglocks._conn import IDLE, INTRANS
from conftest import DRIVERS, holds, tx_status
from test_lock import wait_until_free


def pid_of(conn):
    cur = conn.cursor()
    cur.execute("SELECT pg_backend_pid()")
    pid = cur.fetchone()[0]
    cur.close()
    return pid


def advisory_locks_of(probe, pid):
    """The advisory locks the server's lock table shows for a backend, granted or not."""
    return probe.one("SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND pid = %s", (pid,))


def wait_until_gone(probe, pid):
    for _ in range(200):
        if not probe.one("SELECT count(*) FROM pg_stat_activity WHERE pid = %s", (pid,)):
            return True
        time.sleep(0.05)
    return False


# --- 1. scope='transaction': the transaction that took the lock ---------------------------


def test_transaction_scope_body_commits_and_begins_another(connect, probe):
    # The block's transaction ends in the body and another begins: the hold ended with the
    # first one. The end of the block must not release another hold of the same lock (here
    # a session hold taken before), and says that the block lost its lock.
    conn = connect(autocommit=False)
    assert pglocks.acquire(conn, "tx-changed")  # a session hold, committed at once
    cur = conn.cursor()
    with pytest.raises(pglocks.TransactionChanged) as info:
        with pglocks.lock(conn, "tx-changed", scope="transaction") as acquired:
            assert acquired
            assert holds(conn) == [("tx-changed", False, "session", 1), ("tx-changed", False, "transaction", 1)]
            conn.commit()
            cur.execute("SELECT 1")  # a new transaction
            assert tx_status(conn) == INTRANS
    assert info.value.key == "tx-changed"
    assert holds(conn) == [("tx-changed", False, "session", 1)]  # the session hold is still there
    assert not probe.free("tx-changed")
    conn.rollback()
    assert pglocks.release(conn, "tx-changed")
    assert probe.free("tx-changed")


@pytest.mark.parametrize("end", ["commit", "rollback"])
def test_transaction_scope_body_ends_the_transaction(connect, probe, end):
    conn = connect(autocommit=False)
    with pytest.raises(pglocks.TransactionChanged):
        with pglocks.lock(conn, "tx-ended", scope="transaction"):
            getattr(conn, end)()
    assert tx_status(conn) == IDLE
    assert probe.free("tx-ended")


def test_transaction_scope_new_transaction_holding_the_same_lock(connect, probe):
    # The new transaction takes the lock again, in transaction scope: that hold is not the
    # block's either.
    conn = connect(autocommit=False)
    with pytest.raises(pglocks.TransactionChanged):
        with pglocks.lock(conn, "tx-again", scope="transaction"):
            conn.commit()
            assert pglocks.acquire(conn, "tx-again", scope="transaction")
    assert holds(conn) == [("tx-again", False, "transaction", 1)]
    conn.rollback()
    assert probe.free("tx-again")


def test_transaction_scope_error_of_the_body_wins(connect, probe):
    conn = connect(autocommit=False)
    with pytest.raises(KeyError) as info:
        with pglocks.lock(conn, "tx-error", scope="transaction"):
            conn.commit()
            raise KeyError("body")
    if hasattr(info.value, "add_note"):  # Python 3.11: the block's error says what happened to the lock
        assert "transaction that took it ended" in " ".join(info.value.__notes__)
    assert probe.free("tx-error")


def test_transaction_scope_same_transaction_releases(connect, probe):
    conn = connect(autocommit=False)
    cur = conn.cursor()
    with pglocks.lock(conn, "tx-same", scope="transaction"):
        cur.execute("CREATE TEMP TABLE x (i int)")
        cur.execute("INSERT INTO x VALUES (1)")  # a transaction id assigned in the block
        assert not probe.free("tx-same")
    assert probe.free("tx-same")
    assert tx_status(conn) == INTRANS
    conn.commit()


# --- 2. an aborted transaction, and a failed acquire, inside the caller's transaction -------


def test_error_swallowed_in_the_block_raises_block_aborted(connect, probe, driver):
    conn = connect(autocommit=False)
    cur = conn.cursor()
    cur.execute("CREATE TEMP TABLE w (x int)")
    conn.commit()
    cur.execute("INSERT INTO w VALUES (1)")
    with pytest.raises(pglocks.BlockAborted) as info:
        with pglocks.lock(conn, "swallowed"):
            cur.execute("INSERT INTO w VALUES (2)")
            try:
                cur.execute("SELECT 1/0")
            except driver.errors.DivisionByZero:
                pass  # the transaction stays aborted
    assert info.value.key == "swallowed"
    assert probe.free("swallowed")
    assert tx_status(conn) == INTRANS  # rolled back to the block's savepoint: the transaction goes on
    cur.execute("SELECT array_agg(x) FROM w")
    assert cur.fetchone()[0] == [1]
    conn.commit()


def test_error_swallowed_in_a_psycopg_transaction_block(probe):
    conn = DRIVERS["psycopg"].connect("", autocommit=True)
    try:
        with conn.transaction():
            with pytest.raises(pglocks.BlockAborted):
                with pglocks.lock(conn, "swallowed-tx"):
                    try:
                        conn.execute("SELECT 1/0")
                    except psycopg.errors.DivisionByZero:
                        pass
            assert probe.free("swallowed-tx")
            assert conn.execute("SELECT 1").fetchone()[0] == 1  # the transaction is usable
    finally:
        conn.close()


@pytest.mark.parametrize("autocommit", [True, False])
def test_transaction_scope_body_aborts_the_transaction(probe, autocommit):
    # The hold was taken after the block's savepoint: rolling back to it releases the hold,
    # and the caller's transaction goes on.
    conn = DRIVERS["psycopg"].connect("", autocommit=autocommit)
    try:
        with conn.transaction():
            conn.execute("CREATE TEMP TABLE before_block (x int)")
            with pytest.raises(psycopg.errors.DivisionByZero):
                with pglocks.lock(conn, "tx-aborted", scope="transaction"):
                    conn.execute("SELECT 1/0")
            assert probe.free("tx-aborted")
            assert conn.execute("SELECT count(*) FROM before_block").fetchone()[0] == 0
    finally:
        conn.close()


def test_transaction_scope_body_aborts_psycopg2(connect, probe, driver):
    conn = connect(autocommit=False)
    cur = conn.cursor()
    with pytest.raises(driver.errors.DivisionByZero):
        with pglocks.lock(conn, "tx-aborted2", scope="transaction"):
            cur.execute("SELECT 1/0")
    assert probe.free("tx-aborted2")
    cur.execute("SELECT 1")  # usable
    conn.commit()


@pytest.mark.parametrize("scope", ["session", "transaction"])
def test_failed_acquire_rolls_back_to_the_savepoint(connect, probe, driver, scope):
    # lock_timeout (55P03) ends the wait with an error inside the caller's transaction: the
    # transaction is rolled back to the block's savepoint, and the caller's work stays.
    conn = connect(autocommit=False)
    cur = conn.cursor()
    cur.execute("CREATE TEMP TABLE kept (x int)")
    cur.execute("INSERT INTO kept VALUES (1)")
    cur.execute("SET LOCAL lock_timeout = '100ms'")
    probe.hold("contended")
    with pytest.raises(driver.errors.LockNotAvailable):
        with pglocks.lock(conn, "contended", scope=scope):
            pytest.fail("the block must not run")
    assert tx_status(conn) == INTRANS
    cur.execute("SELECT count(*) FROM kept")
    assert cur.fetchone()[0] == 1
    conn.commit()
    assert holds(conn) == []
    probe.unhold("contended")


def test_failed_acquire_in_a_psycopg_transaction_block(probe):
    conn = DRIVERS["psycopg"].connect("", autocommit=True)
    probe.hold("contended-tx")
    try:
        with conn.transaction():
            conn.execute("SET LOCAL statement_timeout = '100ms'")
            with pytest.raises(psycopg.errors.QueryCanceled):
                with pglocks.lock(conn, "contended-tx"):
                    pytest.fail("the block must not run")
            assert conn.execute("SELECT 1").fetchone()[0] == 1
    finally:
        conn.close()
        probe.unhold("contended-tx")


# --- 3. a release that fails -----------------------------------------------------------------


def test_connection_lost_in_the_block_raises_release_failed(connect, probe, driver):
    conn = connect()
    pid = pid_of(conn)
    with pytest.raises(pglocks.ReleaseFailed) as info:
        with pglocks.lock(conn, "lost"):
            assert advisory_locks_of(probe, pid) == 1
            probe.one("SELECT pg_terminate_backend(%s)", (pid,))
            assert wait_until_gone(probe, pid)
    assert info.value.connection_closed is True
    assert info.value.block_error is None
    assert info.value.key == "lost"
    assert isinstance(info.value.__cause__, driver.OperationalError)
    assert isinstance(info.value, pglocks.PglocksError)
    assert advisory_locks_of(probe, pid) == 0
    assert probe.free("lost")


def test_block_error_wins_over_a_release_failed_on_a_closed_connection(connect, probe, driver):
    # The connection is closed: nothing can be held; the block's own error is what the
    # caller catches, the ReleaseFailed its __context__ and a note.
    conn = connect()
    pid = pid_of(conn)
    body = RuntimeError("body")
    with pytest.raises(RuntimeError) as info:
        with pglocks.lock(conn, "lost-body"):
            probe.one("SELECT pg_terminate_backend(%s)", (pid,))
            assert wait_until_gone(probe, pid)
            raise body
    assert info.value is body
    failed = body.__context__
    assert isinstance(failed, pglocks.ReleaseFailed)
    assert failed.block_error is body
    assert failed.connection_closed is True
    assert isinstance(failed.__cause__, driver.OperationalError)
    assert any("releasing lock 'lost-body' failed" in n for n in body.__notes__)
    assert advisory_locks_of(probe, pid) == 0


def test_block_error_wins_when_the_block_left_a_statement_running(probe):
    # A stream abandoned by the block's error leaves the connection mid-statement: it is
    # closed (which ends the session and its locks), and the block's error goes on.
    conn = DRIVERS["psycopg"].connect("", autocommit=True)
    try:
        with pytest.raises(ValueError, match="bad row") as info:
            with pglocks.lock(conn, "mid-flight"):
                rows = conn.cursor().stream("SELECT generate_series(1, 1000000)")  # kept open
                for row in rows:
                    if row[0] == 10:
                        raise ValueError("bad row")
        assert isinstance(info.value.__context__, pglocks.ReleaseFailed)
        assert conn.closed
        assert wait_until_free(probe, "mid-flight")
    finally:
        conn.close()


def test_release_impossible_closes_the_connection_and_raises(probe):
    # The block ends the transaction of conn.transaction() behind its back and fails in
    # another: the savepoint is gone, and psycopg refuses rollback() there. Rather than leave
    # the lock held, the connection is closed, and the server ends the session's locks.
    conn = DRIVERS["psycopg"].connect("", autocommit=True)
    pid = pid_of(conn)
    try:
        with pytest.raises(psycopg.errors.DivisionByZero) as info:
            with conn.transaction():
                with pglocks.lock(conn, "stuck-release"):
                    conn.execute("ROLLBACK")
                    conn.execute("BEGIN")
                    conn.execute("SELECT 1/0")
        # the block's error goes on (the connection closed, nothing can be held), the
        # release's failure in its context chain
        failed = info.value.__context__
        while failed is not None and not isinstance(failed, pglocks.ReleaseFailed):
            failed = failed.__context__
        assert failed is not None
        assert isinstance(failed.block_error, psycopg.errors.DivisionByZero)
        assert failed.connection_closed is True and conn.closed
        assert failed.__cause__ is not None
        assert wait_until_gone(probe, pid)
        assert advisory_locks_of(probe, pid) == 0
        assert probe.free("stuck-release")
    finally:
        conn.close()


def test_async_connection_lost_raises_release_failed(probe):
    async def main():
        conn = await psycopg.AsyncConnection.connect("", autocommit=True)
        pid = conn.info.backend_pid
        with pytest.raises(pglocks.ReleaseFailed) as info:
            async with pglocks.alock(conn, "a-lost"):
                probe.one("SELECT pg_terminate_backend(%s)", (pid,))
                assert wait_until_gone(probe, pid)
        assert info.value.connection_closed is True
        assert isinstance(info.value.__cause__, psycopg.OperationalError)
        await conn.close()
        return pid

    pid = asyncio.run(main())
    assert advisory_locks_of(probe, pid) == 0


# --- 6. one lock object entered inside its own block -------------------------------------


def test_same_lock_object_nested(connect, probe):
    conn = connect()
    cm = pglocks.lock(conn, "reused")
    with cm as first:
        with cm as second:
            assert first is second is True
            assert holds(conn) == [("reused", False, "session", 2)]
        assert cm.acquired is True
        assert holds(conn) == [("reused", False, "session", 1)]
        assert not probe.free("reused")
    assert cm.acquired is False
    assert holds(conn) == []
    assert probe.free("reused")
    with cm:  # and again afterwards
        assert holds(conn) == [("reused", False, "session", 1)]
    assert holds(conn) == []


def test_same_lock_object_nested_with_an_error_inside(connect, probe):
    conn = connect()
    cm = pglocks.lock(conn, "reused-error")
    with pytest.raises(KeyError):
        with cm:
            with cm:
                raise KeyError("inner")
    assert holds(conn) == []
    assert probe.free("reused-error")


def test_same_alock_object_nested(probe):
    async def main():
        conn = await psycopg.AsyncConnection.connect("", autocommit=True)
        cm = pglocks.alock(conn, "a-reused")
        async with cm as first:
            async with cm as second:
                assert first and second
                assert not probe.free("a-reused")
            assert not probe.free("a-reused")
        cur = await conn.execute("SELECT count(*) FROM pglocks_held()")
        assert (await cur.fetchone())[0] == 0
        assert probe.free("a-reused")
        await conn.close()

    asyncio.run(main())
