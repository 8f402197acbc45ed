"""The asyncio functions on a psycopg AsyncConnection."""

import asyncio
import time

import psycopg
import pytest

import pglocks
from pglocks._conn import IDLE
from conftest import WAITING


def run(coro):
    return asyncio.run(coro)


async def aconnect(autocommit=True):
    return await psycopg.AsyncConnection.connect("", autocommit=autocommit)


async def aholds(conn):
    async with conn.cursor() as cur:
        await cur.execute("SELECT key, holds FROM pglocks_held() ORDER BY key")
        return [tuple(r) for r in await cur.fetchall()]


def test_alock_holds_and_releases(probe):
    async def main():
        conn = await aconnect()
        async with pglocks.alock(conn, "orders:42") as acquired:
            assert acquired is True
            assert not probe.free("orders:42")
            assert await aholds(conn) == [("orders:42", 1)]
        assert await aholds(conn) == []
        await conn.close()

    run(main())
    assert probe.free("orders:42")


def test_alock_releases_when_the_block_raises(probe):
    async def main():
        conn = await aconnect(autocommit=False)
        with pytest.raises(psycopg.errors.DivisionByZero):
            async with pglocks.alock(conn, (1, 2)):
                await conn.execute("SELECT 1/0")
        assert probe.free((1, 2))
        assert conn.info.transaction_status == IDLE
        await conn.close()

    run(main())


def test_alock_try_timeout_and_required(probe):
    probe.hold("busy")

    async def main():
        conn = await aconnect()
        async with pglocks.alock(conn, "busy", wait=False) as acquired:
            assert acquired is False
        async with pglocks.alock(conn, "busy", timeout=0.2) as acquired:
            assert acquired is False
        with pytest.raises(pglocks.LockNotAcquired):
            async with pglocks.alock(conn, "busy", wait=False, required=True):
                pytest.fail("the block must not run")
        assert await aholds(conn) == []
        await conn.close()

    run(main())


def test_waiters_on_one_event_loop_take_turns():
    # Three tasks, each on its own connection, increment a counter under the lock with an
    # await in between: without mutual exclusion they would interleave.
    log = []

    async def worker(i):
        conn = await aconnect()
        async with pglocks.alock(conn, "turns") as acquired:
            assert acquired
            log.append(("in", i))
            await asyncio.sleep(0.1)
            log.append(("out", i))
        await conn.close()

    async def main():
        await asyncio.gather(*(worker(i) for i in range(3)))

    run(main())
    assert [e for e, _ in log] == ["in", "out"] * 3
    assert all(log[2 * k][1] == log[2 * k + 1][1] for k in range(3))


def test_awith_lock_and_functions(probe):
    async def main():
        conn = await aconnect()
        await conn.execute("CREATE TEMP TABLE runs (n int)")
        assert await pglocks.awith_lock(conn, "r", "INSERT INTO runs VALUES ($1::int)", [3]) is True
        probe.hold("r")
        assert await pglocks.awith_lock(conn, "r", "INSERT INTO runs VALUES (4)", wait=False) is False
        probe.unhold("r")
        cur = await conn.execute("SELECT array_agg(n) FROM runs")
        assert (await cur.fetchone())[0] == [3]
        assert await pglocks.aacquire(conn, 9) is True
        assert not probe.free(9)
        assert await pglocks.arelease(conn, 9) is True
        assert await pglocks.arelease(conn, 9) is False
        await conn.close()

    run(main())


def test_sync_functions_refuse_an_async_connection():
    async def main():
        conn = await aconnect()
        with pytest.raises(TypeError, match="async"):
            pglocks.acquire(conn, "x")
        await conn.close()

    run(main())
    with pytest.raises(TypeError):
        pglocks.alock(psycopg.connect(""), "x")


def test_async_connection_whose_rows_are_dicts(probe):
    import psycopg.rows

    async def main():
        conn = await psycopg.AsyncConnection.connect("", autocommit=True, row_factory=psycopg.rows.dict_row)
        async with pglocks.alock(conn, "rows") as acquired:
            assert acquired is True
            assert not probe.free("rows")
        assert await pglocks.awith_lock(conn, "rows", "SELECT 1") is True
        await conn.close()

    run(main())
    assert probe.free("rows")


# --- cancellation -------------------------------------------------------------------------


def waiting(probe):
    return probe.one(WAITING)


def test_wait_for_around_a_blocked_alock_leaves_nothing(probe):
    # The caller gives up while alock waits in the server's queue: the wait is cancelled in
    # the server before wait_for returns, and the connection is usable.
    probe.hold("blocked")

    async def main():
        conn = await aconnect()
        with pytest.raises(asyncio.TimeoutError):
            await asyncio.wait_for(blocked_block(conn), 0.3)
        assert waiting(probe) == 0
        assert conn.info.transaction_status == IDLE
        assert await aholds(conn) == []
        await conn.close()

    async def blocked_block(conn):
        async with pglocks.alock(conn, "blocked"):
            pytest.fail("the block must not run")

    run(main())
    assert probe.one("SELECT count(*) FROM pglocks_locks WHERE key = 'blocked'") == 1  # the probe's
    probe.unhold("blocked")
    assert probe.free("blocked")


def test_wait_for_around_aacquire_leaves_nothing(probe):
    probe.hold("a-blocked")

    async def main():
        conn = await aconnect(autocommit=False)
        with pytest.raises(asyncio.TimeoutError):
            await asyncio.wait_for(pglocks.aacquire(conn, "a-blocked"), 0.3)
        assert waiting(probe) == 0
        assert conn.info.transaction_status == IDLE  # the acquire's failed transaction rolled back
        assert await aholds(conn) == []
        await conn.close()

    run(main())
    probe.unhold("a-blocked")


def test_lock_granted_as_the_caller_gives_up_is_released(probe, monkeypatch):
    # The race: the server grants the lock just as the task is cancelled (here the cancel
    # request is held back and the holder lets go instead). The granted lock is released.
    async def grant_instead(self):
        probe.unhold("raced")

    monkeypatch.setattr(pglocks._conn.AsyncAdapter, "cancel_query", grant_instead)
    probe.hold("raced")

    async def main():
        conn = await aconnect()
        with pytest.raises(asyncio.TimeoutError):
            await asyncio.wait_for(blocked_block(conn), 0.3)
        assert await aholds(conn) == []
        await conn.close()

    async def blocked_block(conn):
        async with pglocks.alock(conn, "raced"):
            pytest.fail("the block must not run")

    run(main())
    assert probe.free("raced")


def test_cancelled_in_the_block_releases(probe):
    async def main():
        conn = await aconnect()
        started = asyncio.Event()

        async def block():
            async with pglocks.alock(conn, "in-block"):
                started.set()
                await asyncio.sleep(30)

        task = asyncio.ensure_future(block())
        await started.wait()
        assert not probe.free("in-block")
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert probe.free("in-block")
        assert await aholds(conn) == []  # the connection is usable
        await conn.close()

    run(main())


SLEEPING = (
    "SELECT count(*) FROM pg_stat_activity"
    " WHERE query = 'SELECT pg_sleep(30)' AND state = 'active' AND datname = current_database()"
)


def test_cancelled_in_a_statement_of_the_block_closes_the_connection(probe):
    # psycopg leaves a statement cut off by a cancellation running, and the connection
    # unusable: the lock cannot be released on it, so the statement is cancelled in the
    # server and the connection closed, which ends the session and its lock.
    async def main():
        conn = await aconnect()

        async def block():
            async with pglocks.alock(conn, "mid-statement"):
                await conn.execute("SELECT pg_sleep(30)")

        task = asyncio.ensure_future(block())
        while not probe.one(SLEEPING):
            await asyncio.sleep(0.02)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert conn.closed
        await conn.close()

    run(main())
    for _ in range(200):
        if probe.free("mid-statement"):
            break
        time.sleep(0.05)
    assert probe.free("mid-statement")
    assert probe.one(SLEEPING) == 0


def test_wait_for_around_awith_lock_leaves_nothing_waiting(probe):
    probe.hold("w-blocked")

    async def main():
        conn = await aconnect()
        with pytest.raises(asyncio.TimeoutError):
            await asyncio.wait_for(pglocks.awith_lock(conn, "w-blocked", "SELECT 1"), 0.3)
        assert waiting(probe) == 0
        assert await pglocks.awith_lock(conn, "other", "SELECT 1") is True
        await conn.close()

    run(main())
    probe.unhold("w-blocked")


@pytest.mark.parametrize("cancels", [1, 2])
def test_cancelled_during_the_release_lets_it_finish(probe, monkeypatch, cancels):
    # The release is made slow here; the task is cancelled while it runs (a second
    # cancellation stops the waiting, and the release still finishes by itself).
    scalar = pglocks._conn.AsyncAdapter.scalar
    releasing = asyncio.Event()

    async def slow_scalar(self, sql, params):
        if "pglocks_release" in sql:
            releasing.set()
            await asyncio.sleep(0.3)
        return await scalar(self, sql, params)

    monkeypatch.setattr(pglocks._conn.AsyncAdapter, "scalar", slow_scalar)

    async def main():
        conn = await aconnect()

        async def block():
            async with pglocks.alock(conn, "slow-release"):
                pass

        task = asyncio.ensure_future(block())
        await releasing.wait()
        for _ in range(cancels):
            task.cancel()
            await asyncio.sleep(0.05)
        with pytest.raises(asyncio.CancelledError):
            await task
        for _ in range(100):
            if probe.free("slow-release"):
                break
            await asyncio.sleep(0.02)
        assert probe.free("slow-release")
        assert await aholds(conn) == []
        await conn.close()

    run(main())


# --- cancellation at any point ---------------------------------------------------------------


def own_advisory_locks(probe, pid):
    """What the server's lock table shows for a backend: its advisory locks, granted or awaited."""
    return probe.one("SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND pid = %s", (pid,))


@pytest.mark.parametrize("mode", ["autocommit", "outside-autocommit", "in-transaction", "aacquire"])
def test_cancelled_at_random_points_leaves_nothing_held(probe, mode):
    # Rounds in which a task takes the lock (sometimes after a wait, the lock busy in another
    # session and let go at a random moment) and is cancelled at a random moment: in the
    # wait, at the grant, in the block, during the release. After each round nothing of the
    # task's session may be held or waiting, seen from another session.
    import random

    rng = random.Random(20261202 + len(mode))
    rounds = 45

    async def main():
        conn = await aconnect(autocommit=mode != "outside-autocommit")
        holder = await aconnect()
        leaks = []

        async def body():
            if mode == "aacquire":
                if await pglocks.aacquire(conn, "rnd"):
                    try:
                        await asyncio.sleep(rng.uniform(0, 0.004))
                    finally:
                        await pglocks.arelease(conn, "rnd")
            elif mode == "in-transaction":
                async with conn.transaction():
                    async with pglocks.alock(conn, "rnd"):
                        await asyncio.sleep(rng.uniform(0, 0.004))
            else:
                async with pglocks.alock(conn, "rnd"):
                    await asyncio.sleep(rng.uniform(0, 0.004))

        async def let_go(delay):
            await asyncio.sleep(delay)
            await pglocks.arelease(holder, "rnd")

        for i in range(rounds):
            if conn.closed:
                conn = await aconnect(autocommit=mode != "outside-autocommit")
            pid = conn.info.backend_pid
            busy = rng.random() < 0.6
            releaser = None
            if busy:
                assert await pglocks.aacquire(holder, "rnd")
                releaser = asyncio.ensure_future(let_go(rng.uniform(0, 0.008)))
            task = asyncio.ensure_future(body())
            await asyncio.sleep(rng.uniform(0, 0.012))
            task.cancel()
            if rng.random() < 0.3:  # a second cancellation, as asyncio.timeout() in a TaskGroup may send
                await asyncio.sleep(rng.uniform(0, 0.002))
                task.cancel()
            broken = False
            await asyncio.wait({task}, timeout=15)
            if not task.done():
                leaks.append((i, "the cancelled task did not end"))
                break
            try:
                await task
            except asyncio.CancelledError:
                pass
            except psycopg.OperationalError:
                # psycopg's own BEGIN or ROLLBACK of conn.transaction(), cut off by the
                # cancellation in an earlier round, left the connection busy: not pglocks'.
                broken = mode == "in-transaction"
                if not broken:
                    raise
            if releaser is not None:
                await releaser
            if own_advisory_locks(probe, pid):
                leaks.append((i, own_advisory_locks(probe, pid)))
            if broken or conn.info.transaction_status != IDLE:
                await conn.close()
            elif leaks and leaks[-1][0] == i:
                await conn.execute("SELECT pg_advisory_unlock_all()")
        for c in (conn, holder):
            await asyncio.wait({asyncio.ensure_future(c.close())}, timeout=5)
        return leaks

    # In a thread of its own, so that a hang (a clean-up left running on the connection)
    # fails the test instead of stopping the suite.
    import threading

    outcome = []
    runner = threading.Thread(target=lambda: outcome.append(run(main())), daemon=True)
    runner.start()
    runner.join(90)
    assert not runner.is_alive(), "the rounds did not end"
    assert outcome == [[]]
    assert probe.free("rnd")


def test_missing_extension_async(probe):
    name = probe.one("SELECT current_database()") + "_noext_async"
    cur = probe.conn.cursor()
    cur.execute(f'DROP DATABASE IF EXISTS "{name}"')
    cur.execute(f'CREATE DATABASE "{name}"')

    async def main():
        conn = await psycopg.AsyncConnection.connect(dbname=name, autocommit=True)
        with pytest.raises(pglocks.ExtensionNotInstalled):
            async with pglocks.alock(conn, "x"):
                pass
        with pytest.raises(pglocks.ExtensionNotInstalled):
            await pglocks.aacquire(conn, "x")
        await conn.close()

    try:
        run(main())
    finally:
        cur.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
