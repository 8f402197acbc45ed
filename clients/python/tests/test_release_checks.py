"""Holds left or freed by mistake: an acquire cut off after the grant, releases of the
wrong scope, savepoints, the extension's schema."""

import pytest

import pglocks
from pglocks._conn import SyncAdapter
from conftest import holds


def _slow_after_grant(monkeypatch):
    """The acquire statement goes on (pg_sleep) after the lock is granted, so that a
    statement_timeout fails it with the lock held: a cancel that lands just after the grant."""
    scalar = SyncAdapter.scalar

    def slow(self, sql, params):
        if "pglocks_acquire(" in sql and "pglocks_held" not in sql:
            sql = sql + ", pg_catalog.pg_sleep(0.5)"
        return scalar(self, sql, params)

    monkeypatch.setattr(SyncAdapter, "scalar", slow)


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
