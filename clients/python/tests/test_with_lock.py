"""pglocks.with_lock: lock, command and release in one round trip."""

import datetime
import decimal

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


# --- how parameters are sent: as text, the same as the Node client -------------------------

UTC = datetime.timezone.utc


@pytest.mark.parametrize(
    "value,text",
    [
        ("O'Brien", "O'Brien"),
        ("", ""),
        (True, "true"),
        (False, "false"),
        (42, "42"),
        (-(1 << 63), "-9223372036854775808"),
        (1.5, "1.5"),
        (float("nan"), "NaN"),
        (float("inf"), "Infinity"),
        (float("-inf"), "-Infinity"),
        (decimal.Decimal("12.340"), "12.340"),
        (b"\x00\xffA", "\\x00ff41"),
        (bytearray(b"\x01\x02"), "\\x0102"),
        (memoryview(b"\x10"), "\\x10"),
        (b"", "\\x"),
        (datetime.date(2024, 2, 29), "2024-02-29"),
        (datetime.datetime(2024, 2, 29, 13, 5, 7, tzinfo=UTC), "2024-02-29T13:05:07+00:00"),
        (datetime.datetime(2024, 2, 29, 13, 5, 7, 250000), "2024-02-29T13:05:07.250000"),
        (datetime.time(13, 5), "13:05:00"),
        ({"a": [1, "é", None, True]}, '{"a":[1,"é",null,true]}'),
        ([1, 2], "[1,2]"),
        ((1, "x"), '[1,"x"]'),
        (None, None),
    ],
)
def test_parameter_text(runs, value, text):
    conn, _ = runs
    assert pglocks._core.param_text(value) == text
    cur = conn.cursor()
    cur.execute("CREATE TEMP TABLE IF NOT EXISTS texts (t text)")
    cur.execute("DELETE FROM texts")
    assert pglocks.with_lock(conn, "p", "INSERT INTO texts VALUES ($1)", [value])
    cur.execute("SELECT t FROM texts")
    assert cur.fetchone()[0] == text


def test_parameters_cast_back_in_the_command(runs):
    conn, _ = runs
    cur = conn.cursor()
    cur.execute(
        "CREATE TEMP TABLE typed (b bytea, j jsonb, f float8, n numeric, d date, ts timestamptz, ok boolean, i bigint)"
    )
    values = [
        b"\x00\xffA",
        {"k": [1, 2.5, "é"]},
        float("-inf"),
        decimal.Decimal("12.340"),
        datetime.date(2024, 2, 29),
        datetime.datetime(2024, 2, 29, 13, 5, 7, tzinfo=UTC),
        False,
        -(1 << 63),
    ]
    assert pglocks.with_lock(
        conn, "p",
        "INSERT INTO typed VALUES ($1::bytea, $2::jsonb, $3::float8, $4::numeric, $5::date, $6::timestamptz, $7::boolean, $8::bigint)",
        values,
    )
    cur.execute("SELECT b, j, f, n, d, ts, ok, i FROM typed")
    row = list(cur.fetchone())
    row[0] = bytes(row[0])
    assert row == values


@pytest.mark.parametrize("value", [object(), {1, 2}, complex(1, 2), datetime.timedelta(1), frozenset()])
def test_other_parameter_types_are_refused(runs, probe, value):
    conn, count = runs
    with pytest.raises(TypeError, match="with_lock parameter"):
        pglocks.with_lock(conn, "p", "INSERT INTO runs VALUES ($1, 1)", [value])
    assert count() == 0


def test_a_value_json_cannot_hold_is_refused(runs):
    conn, _ = runs
    with pytest.raises(TypeError):
        pglocks.with_lock(conn, "p", "SELECT $1", [{"when": datetime.date(2024, 1, 1)}])
    with pytest.raises(ValueError):
        pglocks.with_lock(conn, "p", "SELECT $1", [[float("nan")]])
