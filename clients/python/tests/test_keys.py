import zlib

import pytest

import pglocks
from conftest import VECTORS


@pytest.mark.parametrize("name,expected", VECTORS)
def test_key_matches_the_vectors(name, expected):
    assert pglocks.key(name) == expected


@pytest.mark.parametrize(
    "name", [n for n, _ in VECTORS] + ["x", "\U0001F512 lock", "e\u0301", "-1", "k" * 200, "42"]
)
def test_key_matches_the_server(probe, name):
    assert pglocks.key(name) == probe.one("SELECT pglocks_key(%s)", (name,))


@pytest.mark.parametrize("name", ["x", "nightly-report", "orders:42", "Grüße", "日本語", "", "123456789"])
def test_crc32_key_matches_the_server(probe, name):
    assert pglocks.crc32_key(name) == probe.one("SELECT pglocks_crc32(%s)", (name,))


def test_crc32_key_is_signed_crc32():
    assert zlib.crc32(b"123456789") == 0xCBF43926
    assert pglocks.crc32_key("123456789") == 0xCBF43926 - (1 << 32)
    # both signs occur among the names above
    assert pglocks.crc32_key("x") < 0 < pglocks.crc32_key("orders:42")


def test_key_takes_only_text():
    with pytest.raises(TypeError):
        pglocks.key(42)
    with pytest.raises(TypeError):
        pglocks.key(b"bytes")


@pytest.mark.parametrize(
    "bad,error",
    [
        (True, TypeError),
        (1.5, TypeError),
        (b"x", TypeError),
        ((1, 2, 3), TypeError),
        (("a", 1), TypeError),
        (1 << 63, ValueError),
        (-(1 << 63) - 1, ValueError),
        ((1 << 31, 0), ValueError),
    ],
)
def test_bad_keys_are_refused_before_any_round_trip(connect, bad, error):
    conn = connect()
    with pytest.raises(error):
        pglocks.acquire(conn, bad)
    with pytest.raises(error):
        pglocks.lock(conn, bad)


def test_extreme_keys_are_accepted(connect, probe):
    conn = connect()
    for k in [(1 << 63) - 1, -(1 << 63), ((1 << 31) - 1, -(1 << 31))]:
        with pglocks.lock(conn, k) as acquired:
            assert acquired
            assert not probe.free(k)
