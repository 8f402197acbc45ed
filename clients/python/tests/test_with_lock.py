"""pglocks.with_lock: lock, command and release in one round trip."""

import datetime

import pytest

import pglocks
from conftest import elapsed, holds


@pytest.fixture
def runs(connect):
    conn = connect()
    cur = conn.cursor()
    cur.execute("CREATE TEMP TABLE runs (note text, n int)")

    def count():
        cur.execute("SELECT count(*) FROM runs")
        return cur.fetchone()[0]

    return conn, count


def test_runs_the_command_under_the_lock(runs):
    conn, count = runs
    assert pglocks.with_lock(conn, "report", "INSERT INTO runs VALUES ('built', 1)") is True
    assert count() == 1
    assert holds(conn) == []


@pytest.mark.parametrize("key", ["report", 42, (7, 42)])
def test_does_not_run_while_another_session_holds_it(runs, probe, key):
    conn, count = runs
    if isinstance(key, tuple):
        assert probe.one("SELECT pg_try_advisory_lock(%s, %s)", key)
    elif isinstance(key, int):
        assert probe.one("SELECT pg_try_advisory_lock(%s::bigint)", (key,))
    else:
        probe.hold(key)
    assert pglocks.with_lock(conn, key, "INSERT INTO runs VALUES ('x', 1)", wait=False) is False
    ran, waited = elapsed(lambda: pglocks.with_lock(conn, key, "INSERT INTO runs VALUES ('x', 1)", timeout=0.3))
    assert ran is False and 0.25 <= waited < 5
    ran = pglocks.with_lock(conn, key, "INSERT INTO runs VALUES ('x', 1)", timeout=datetime.timedelta(0))
    assert ran is False
    assert count() == 0


def test_parameters(runs):
    conn, count = runs
    assert pglocks.with_lock(
        conn, "report", "INSERT INTO runs VALUES ($1, $2::int)", ["O'Brien; DROP TABLE runs; --", 5]
    )
    assert pglocks.with_lock(conn, "report", "INSERT INTO runs VALUES ($1, $2::int)", [None, None])
    cur = conn.cursor()
    cur.execute("SELECT note, n FROM runs ORDER BY n NULLS LAST")
    assert [tuple(r) for r in cur.fetchall()] == [("O'Brien; DROP TABLE runs; --", 5), (None, None)]


def test_error_in_the_command_propagates_and_releases(runs, probe, driver):
    conn, count = runs
    with pytest.raises(driver.errors.DivisionByZero):
        pglocks.with_lock(conn, "report", "SELECT 1/0")
    assert holds(conn) == []
    assert probe.free("report")


def test_shared(runs, probe):
    conn, count = runs
    probe.hold("report", shared=True)
    assert pglocks.with_lock(conn, "report", "INSERT INTO runs VALUES ('r', 1)", shared=True, wait=False)
    assert not pglocks.with_lock(conn, "report", "INSERT INTO runs VALUES ('w', 2)", wait=False)
    assert count() == 1


def test_bad_arguments(runs):
    conn, _ = runs
    with pytest.raises(TypeError):
        pglocks.with_lock(conn, "report", "SELECT $1", "not a list")
    with pytest.raises(ValueError):
        pglocks.with_lock(conn, "report", "SELECT 1", wait=False, timeout=1)
