"""Checked by mypy --strict in the client_python suite (not run): what the package's types
promise an application."""

from typing import Optional

import psycopg

import pglocks
from pglocks.django import advisory_lock


def sync_usage(conn: psycopg.Connection[tuple[object, ...]]) -> bool:
    with pglocks.lock(conn, "orders:42", timeout=2.5) as acquired:
        flag: bool = acquired
    k: int = pglocks.key("orders:42")
    crc: int = pglocks.crc32_key("orders:42")
    ran: bool = pglocks.with_lock(conn, (1, 2), "SELECT $1::int", [k, crc])
    return flag and ran and pglocks.acquire(conn, 42) and pglocks.release(conn, 42)


async def async_usage(conn: psycopg.AsyncConnection[tuple[object, ...]]) -> bool:
    async with pglocks.alock(conn, "orders:42", wait=False) as acquired:
        flag: bool = acquired
    return flag and await pglocks.awith_lock(conn, "x", "SELECT 1") and await pglocks.aacquire(conn, "x")


def django_usage() -> None:
    with advisory_lock("some lock", shared=True, using="other", timeout=1) as acquired:
        flag: bool = acquired
        assert flag


def errors(conn: psycopg.Connection[tuple[object, ...]]) -> pglocks.Key:
    try:
        with pglocks.lock(conn, "x", wait=False, required=True):
            return "x"
    except pglocks.LockNotAcquired as exc:
        return exc.key


@advisory_lock("nightly report", wait=False)
def decorated(n: int) -> int:
    return n


def decorated_usage() -> int:
    return decorated(1)


def block_end_errors(conn: psycopg.Connection[tuple[object, ...]]) -> bool:
    try:
        with pglocks.lock(conn, "x", scope="transaction"):
            pass
    except pglocks.ReleaseFailed as exc:
        closed: bool = exc.connection_closed
        cause: Optional[BaseException] = exc.block_error
        return closed and cause is None
    except (pglocks.TransactionChanged, pglocks.BlockAborted) as exc:
        return exc.key == "x"
    return True
