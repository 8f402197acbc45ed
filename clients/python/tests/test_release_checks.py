"""Holds left or freed by mistake: an acquire cut off after the grant, releases of the
wrong scope, savepoints, the extension's schema."""

import pytest

import pglocks
from conftest import holds, rewrite_scalar
from test_lock import wait_until_free


def _slow_after_grant(monkeypatch):
    """The acquire statement goes on (pg_sleep) after the lock is granted, so that a
    statement_timeout fails it with the lock held: a cancel that lands just after the grant."""
    rewrite_scalar(monkeypatch, "acquire", lambda sql: sql + ", pg_catalog.pg_sleep(0.5)")


def _slow_count(monkeypatch):
    """The count of holds before the acquire sleeps 1.5 s first, so that a statement_timeout
    fails it before anything is acquired."""
    rewrite_scalar(monkeypatch, "count", lambda sql: sql.replace(
        "SELECT coalesce(", "SELECT (SELECT 0 FROM pg_catalog.pg_sleep(1.5)) + coalesce(", 1))


@pytest.mark.parametrize("autocommit", [True, False])
@pytest.mark.parametrize("how", ["lock", "acquire"])
def test_acquire_cancelled_after_the_grant_leaves_no_hold(connect, probe, driver, monkeypatch, autocommit, how):
    conn = connect(autocommit=autocommit)
    cur = conn.cursor()
    cur.execute("SET statement_timeout = '100ms'")
    if not autocommit:
        conn.commit()
    _slow_after_grant(monkeypatch)
    with pytest.raises(driver.errors.QueryCanceled):
        if how == "lock":
            with pglocks.lock(conn, "granted-then-cancelled"):
                pytest.fail("the block must not run")
        else:
            pglocks.acquire(conn, "granted-then-cancelled")
    monkeypatch.undo()
    if not autocommit:
        conn.rollback()
    cur.execute("RESET statement_timeout")
    assert holds(conn) == []
    assert probe.free("granted-then-cancelled")


def test_acquire_cancelled_after_the_grant_inside_a_transaction(connect, probe, driver, monkeypatch):
    conn = connect(autocommit=False)
    cur = conn.cursor()
    cur.execute("SET statement_timeout = '100ms'")
    conn.commit()
    cur.execute("SELECT 1")  # the caller's transaction
    _slow_after_grant(monkeypatch)
    with pytest.raises(driver.errors.QueryCanceled):
        with pglocks.lock(conn, "granted-then-cancelled"):
            pytest.fail("the block must not run")
    monkeypatch.undo()
    conn.rollback()
    cur.execute("RESET statement_timeout")
    assert holds(conn) == []
    assert probe.free("granted-then-cancelled")


@pytest.mark.parametrize("autocommit", [True, False])
def test_acquire_failing_otherwise_after_the_grant_leaves_no_hold(connect, probe, driver, monkeypatch, autocommit):
    """Any server error raised after the grant in the acquire statement: a division by zero
    evaluated after the acquire (random() keeps it from being folded)."""
    conn = connect(autocommit=autocommit)
    rewrite_scalar(monkeypatch, "acquire", lambda sql: sql + ", 1 / (pg_catalog.random() * 0)::int")
    with pytest.raises(driver.errors.DivisionByZero):
        with pglocks.lock(conn, "granted-then-failed"):
            pytest.fail("the block must not run")
    with pytest.raises(driver.errors.DivisionByZero):
        pglocks.acquire(conn, "granted-then-failed")
    monkeypatch.undo()
    if not autocommit:
        conn.rollback()
    assert holds(conn) == []
    assert probe.free("granted-then-failed")


def test_count_before_the_acquire_failing_inside_a_transaction_rolls_back_to_the_savepoint(connect, probe, driver, monkeypatch):
    """A cancel that fails the count before the acquire, inside the caller's transaction:
    nothing is acquired, and the transaction goes on, as after a failed acquire."""
    conn = connect(autocommit=False)
    cur = conn.cursor()
    cur.execute("SET statement_timeout = '300ms'")
    conn.commit()
    cur.execute("CREATE TEMP TABLE count_fails (v int)")
    cur.execute("INSERT INTO count_fails VALUES (1)")
    _slow_count(monkeypatch)
    with pytest.raises(driver.errors.QueryCanceled):
        pglocks.acquire(conn, "count-cancelled")
    monkeypatch.undo()
    cur.execute("SELECT count(*) FROM count_fails")
    assert cur.fetchone()[0] == 1
    assert holds(conn) == []
    assert probe.free("count-cancelled")
    conn.rollback()


def test_count_before_the_acquire_failing_in_the_transaction_it_began_rolls_it_back(connect, probe, driver, monkeypatch):
    """Not in autocommit mode, outside a transaction: the count begins one; a cancel that
    fails it leaves no aborted transaction behind."""
    conn = connect(autocommit=False)
    cur = conn.cursor()
    cur.execute("SET statement_timeout = '300ms'")
    conn.commit()
    _slow_count(monkeypatch)
    with pytest.raises(driver.errors.QueryCanceled):
        pglocks.acquire(conn, "count-cancelled-own")
    monkeypatch.undo()
    cur.execute("SELECT 1")  # the connection takes statements: no aborted transaction
    assert cur.fetchone()[0] == 1
    assert holds(conn) == []
    assert probe.free("count-cancelled-own")
    conn.rollback()


def test_session_block_does_not_free_a_transaction_hold_of_its_body(connect, probe):
    import psycopg

    conn = psycopg.connect("")
    try:
        with pytest.raises(pglocks.HoldMismatch) as info:
            with conn.transaction():
                with pglocks.lock(conn, "mixed"):
                    assert pglocks.acquire(conn, "mixed", scope="transaction")
        assert info.value.freed_scope == "transaction"
        assert info.value.connection_closed is True
        assert isinstance(info.value, pglocks.ReleaseFailed)
        assert "transaction-scope hold" in str(info.value)
        assert conn.closed
        assert wait_until_free(probe, "mixed")
    finally:
        conn.close()


def test_transaction_block_does_not_free_a_session_hold_of_its_body(connect, probe):
    conn = connect(autocommit=False)
    cur = conn.cursor()
    cur.execute("SELECT 1")
    with pytest.raises(pglocks.HoldMismatch) as info:
        with pglocks.lock(conn, "mixed", scope="transaction"):
            assert pglocks.acquire(conn, "mixed")  # a session hold meant to outlive the block
    assert info.value.freed_scope == "session"
    assert info.value.connection_closed is False
    conn.rollback()
    assert holds(conn) == []


def test_inner_transaction_block_rolled_back_past_does_not_free_the_outer_hold(probe):
    import psycopg

    conn = psycopg.connect("")
    try:
        with conn.transaction():
            with pglocks.lock(conn, "k", scope="transaction"):
                conn.execute("SAVEPOINT s")
                with pytest.raises(pglocks.HoldMismatch) as info:
                    with pglocks.lock(conn, "k", scope="transaction"):
                        conn.execute("ROLLBACK TO SAVEPOINT s")  # ends the inner hold
                assert info.value.freed_scope is None
                # the outer block still holds the lock
                assert holds(conn) == [("k", False, "transaction", 1)]
                assert not probe.free("k")
        assert probe.free("k")
    finally:
        conn.close()


def test_same_scope_nesting_still_releases_one_hold_each(connect, probe):
    conn = connect(autocommit=False)
    cur = conn.cursor()
    cur.execute("SELECT 1")
    with pglocks.lock(conn, "n", scope="transaction"):
        with pglocks.lock(conn, "n", scope="transaction"):
            assert holds(conn) == [("n", False, "transaction", 2)]
        assert holds(conn) == [("n", False, "transaction", 1)]
        with pglocks.lock(conn, "n"):
            pass  # the newest hold is the block's own: fine
        assert holds(conn) == [("n", False, "transaction", 1)]
    assert holds(conn) == []
    conn.commit()


def _savepoint_depth(conn):
    """How deep the current subtransaction is: a write gives each level its own xid."""
    cur = conn.cursor()
    cur.execute("CREATE TEMP TABLE IF NOT EXISTS pglocks_sp (i int)")
    cur.execute("INSERT INTO pglocks_sp VALUES (1)")
    cur.execute(
        "SELECT count(*) FROM pg_locks WHERE pid = pg_backend_pid() AND locktype = 'transactionid'"
    )
    return cur.fetchone()[0]


@pytest.mark.parametrize("scope", ["session", "transaction"])
def test_blocks_in_a_loop_leave_no_savepoints(connect, scope):
    conn = connect(autocommit=False)
    base = _savepoint_depth(conn)
    for i in range(20):
        with pglocks.lock(conn, f"loop:{i}", scope=scope):
            conn.cursor().execute("INSERT INTO pglocks_sp VALUES (2)")
    for i in range(5):
        pglocks.acquire(conn, f"fn:{i}")
    with pglocks.lock(conn, "nested"):
        with pglocks.lock(conn, "nested", wait=False) as got:
            assert got
    assert _savepoint_depth(conn) == base
    conn.rollback()
    for i in range(5):
        pglocks.release(conn, f"fn:{i}")


def test_body_that_destroyed_the_savepoint_keeps_the_transaction(connect, probe):
    conn = connect(autocommit=False)
    cur = conn.cursor()
    cur.execute("CREATE TEMP TABLE IF NOT EXISTS pglocks_sp (i int)")
    cur.execute("SAVEPOINT outer_sp")
    with pglocks.lock(conn, "destroyed"):
        cur.execute("RELEASE SAVEPOINT outer_sp")  # and the block's, taken after it
        cur.execute("INSERT INTO pglocks_sp VALUES (3)")
    assert probe.free("destroyed")
    cur.execute("SELECT count(*) FROM pglocks_sp WHERE i = 3")  # the transaction goes on
    assert cur.fetchone()[0] == 1
    conn.rollback()


def test_aacquire_in_a_transaction_leaves_no_savepoint():
    import asyncio

    import psycopg

    depth = (
        "SELECT count(*) FROM pg_locks WHERE pid = pg_backend_pid() AND locktype = 'transactionid'"
    )

    async def main():
        ac = await psycopg.AsyncConnection.connect("")
        try:
            async with ac.transaction():
                await ac.execute("CREATE TEMP TABLE pglocks_asp (i int)")
                base = await (await ac.execute(depth)).fetchone()
                for i in range(3):
                    assert await pglocks.aacquire(ac, f"a{i}")
                await ac.execute("INSERT INTO pglocks_asp VALUES (1)")
                assert await (await ac.execute(depth)).fetchone() == base
                for i in range(3):
                    assert await pglocks.arelease(ac, f"a{i}")
        finally:
            await ac.close()

    asyncio.run(main())


@pytest.mark.parametrize("scope", ["session", "transaction"])
def test_block_that_changes_search_path_still_releases(connect, probe, scope):
    conn = connect(autocommit=scope == "session")
    cur = conn.cursor()
    if scope == "transaction":
        cur.execute("SELECT 1")
    with pglocks.lock(conn, "search-path", scope=scope):
        cur.execute("SET search_path = pg_catalog")  # the extension's schema is not on it
    assert probe.free("search-path")
    cur.execute("SET search_path = pg_catalog")
    assert pglocks.acquire(conn, "search-path")
    assert pglocks.release(conn, "search-path")
    if scope == "transaction":
        conn.rollback()
    cur.execute("RESET search_path")


def test_async_block_that_changes_search_path_still_releases(probe):
    import asyncio

    import psycopg

    async def main():
        ac = await psycopg.AsyncConnection.connect("", autocommit=True)
        try:
            async with pglocks.alock(ac, "search-path"):
                await ac.execute("SET search_path = pg_catalog")
            assert probe.free("search-path")
        finally:
            await ac.close()

    asyncio.run(main())
