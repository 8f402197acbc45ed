"""The lock context managers and functions, sync and asyncio."""

from __future__ import annotations

import datetime
from types import TracebackType
from typing import Any, List, Optional, Sequence, Tuple, Type, Union

from ._conn import IDLE, INERROR, INTRANS, AsyncAdapter, SyncAdapter, sqlstate, sync_adapter
from ._keys import Key, check_key

Timeout = Union[None, int, float, datetime.timedelta]

SCOPES = ("session", "transaction")


class PglocksError(Exception):
    """Base class of the errors pglocks raises itself (driver errors pass through unchanged)."""


class ExtensionNotInstalled(PglocksError):
    """The database has no pglocks functions: run CREATE EXTENSION pglocks in it."""


class LockNotAcquired(PglocksError):
    """Raised by ``lock(..., required=True)`` when a try or a timed wait did not get the lock."""

    def __init__(self, key: Key) -> None:
        super().__init__(f"lock {key!r} not acquired")
        self.key = key


# --- statements --------------------------------------------------------------------------


def _key_sql(k: Key) -> Tuple[str, List[Any]]:
    if isinstance(k, str):
        return "%s::text", [k]
    if isinstance(k, int):
        return "(%s)::bigint", [k]
    return "(%s)::integer, (%s)::integer", [k[0], k[1]]


def _seconds(timeout: Timeout) -> Optional[float]:
    if timeout is None:
        return None
    if isinstance(timeout, datetime.timedelta):
        secs = timeout.total_seconds()
    elif isinstance(timeout, bool) or not isinstance(timeout, (int, float)):
        raise TypeError("timeout is a number of seconds or a datetime.timedelta")
    else:
        secs = float(timeout)
    if secs < 0 or secs != secs:
        raise ValueError(f"timeout must not be negative: {timeout!r}")
    return secs


def _options(wait: bool, timeout: Timeout, scope: str) -> Optional[float]:
    if scope not in SCOPES:
        raise ValueError(f"scope must be 'session' or 'transaction', not {scope!r}")
    secs = _seconds(timeout)
    if secs is not None and not wait:
        raise ValueError("timeout with wait=False: a try does not wait (use timeout=0 to try once)")
    return secs


def acquire_sql(k: Key, shared: bool, wait: bool, secs: Optional[float], scope: str) -> Tuple[str, List[Any]]:
    ks, params = _key_sql(k)
    sql = f"SELECT pglocks_acquire({ks}, shared => %s::boolean, wait => %s::boolean"
    params += [bool(shared), bool(wait)]
    if secs is not None:
        sql += ", timeout => make_interval(secs => %s::double precision)"
        params.append(secs)
    if scope != "session":
        sql += ", scope => %s::text"
        params.append(scope)
    return sql + ")", params


def release_sql(k: Key, shared: bool) -> Tuple[str, List[Any]]:
    ks, params = _key_sql(k)
    return f"SELECT pglocks_release({ks}, shared => %s::boolean)", params + [bool(shared)]


def with_lock_sql(
    k: Key, sql: str, params: Optional[Sequence[Any]], shared: bool, wait: bool, secs: Optional[float]
) -> Tuple[str, List[Any]]:
    if not isinstance(sql, str):
        raise TypeError("the command is a str of SQL")
    ks, args = _key_sql(k)
    stmt = f"SELECT pglocks_with_lock({ks}, %s::text"
    args.append(sql)
    if params is not None:
        if isinstance(params, (str, bytes)) or not isinstance(params, Sequence):
            raise TypeError("params is a sequence of values for $1 ... $n")
        # One text[]: every value arrives as text (None as NULL); cast in the command ($2::int).
        stmt += ", %s::text[]"
        args.append([None if v is None else _text(v) for v in params])
    stmt += ", shared => %s::boolean, wait => %s::boolean"
    args += [bool(shared), bool(wait)]
    if secs is not None:
        stmt += ", timeout => make_interval(secs => %s::double precision)"
        args.append(secs)
    return stmt + ")", args


def _text(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (datetime.date, datetime.time)):
        return v.isoformat()
    return str(v)


def _not_installed(exc: BaseException) -> bool:
    # 42883 undefined_function, for one of ours: the extension is missing from the database.
    return sqlstate(exc) == "42883" and "pglocks_" in str(exc)


def _extension_error(exc: BaseException) -> ExtensionNotInstalled:
    return ExtensionNotInstalled(
        "the pglocks functions are not in this database (or not on its search_path): "
        "CREATE EXTENSION pglocks"
    )


def _transaction_scope_check(a: Any, scope: str) -> None:
    if scope == "transaction" and a.autocommit() and a.status() == IDLE:
        raise ValueError(
            "scope='transaction' on a connection in autocommit mode outside a transaction: "
            "the hold would end with the acquiring statement; open a transaction first"
        )


def _note(exc: Optional[BaseException], text: str) -> None:
    if exc is not None and hasattr(exc, "add_note"):
        exc.add_note(text)


# --- sync ---------------------------------------------------------------------------------


def acquire(
    conn: Any,
    key: Key,
    shared: bool = False,
    wait: bool = True,
    timeout: Timeout = None,
    scope: str = "session",
) -> bool:
    """``pglocks_acquire``: True when the lock is held, False when a try or a timed wait failed.

    Each True needs its own :func:`release` (or the end of the session, or of the transaction
    for ``scope='transaction'``). On a connection outside a transaction and not in autocommit
    mode, a session-scope acquire is committed at once, so it leaves no transaction open.
    """
    k = check_key(key)
    secs = _options(wait, timeout, scope)
    a = sync_adapter(conn)
    _transaction_scope_check(a, scope)
    before = a.status()
    sql, params = acquire_sql(k, shared, wait, secs, scope)
    ours = before == IDLE and not a.autocommit() and not a.pinned  # the transaction it begins
    try:
        got = bool(a.scalar(sql, params))
    except Exception as exc:
        if ours and not a.closed() and a.status() == INERROR:
            a.rollback_aborted()  # the failed transaction was only the acquire's
        if _not_installed(exc):
            raise _extension_error(exc) from exc
        raise
    if scope == "session" and ours:
        a.commit()
    return got


def release(conn: Any, key: Key, shared: bool = False) -> bool:
    """``pglocks_release``: releases one hold of the lock; False when this session holds none."""
    k = check_key(key)
    return _release(sync_adapter(conn), k, shared, "session", recover=False)


def _release(a: SyncAdapter, k: Key, shared: bool, scope: str, recover: bool = True) -> bool:
    """Releases one hold. With ``recover`` (the end of a lock block), an aborted transaction
    is rolled back first; without it (``release()``), the driver's error says it is aborted."""
    if a.closed():
        return False  # the session has ended, and its locks with it
    status = a.status()
    if scope == "transaction" and status != INTRANS:
        return False  # the transaction has ended (committed or failed), and the hold with it
    if status == INERROR and recover:
        # An aborted transaction accepts nothing but ROLLBACK: roll back, then release.
        a.rollback_aborted()
        status = a.status()
    sql, params = release_sql(k, shared)
    try:
        released = bool(a.scalar(sql, params))
    except Exception:
        if a.closed():
            return False
        raise
    if status == IDLE and not a.autocommit() and (a.underneath or not a.pinned):
        a.commit()
    return released


class lock:
    """``with lock(conn, key, shared=False, wait=True, timeout=None, scope='session') as acquired:``

    Takes the lock with ``pglocks_acquire``, runs the block, and releases the lock with
    ``pglocks_release`` however the block ends. ``acquired`` is True when the lock is held.
    With ``wait=False`` or a ``timeout``, the block runs even when the lock was not obtained
    and ``acquired`` is False (as django-pglocks does); with ``required=True`` such a failure
    raises :class:`LockNotAcquired` instead and the block does not run.

    ``conn`` is a psycopg (3) or psycopg2 connection, a Django connection, or a SQLAlchemy
    Connection or Session.
    """

    def __init__(
        self,
        conn: Any,
        key: Key,
        shared: bool = False,
        wait: bool = True,
        timeout: Timeout = None,
        scope: str = "session",
        *,
        required: bool = False,
    ) -> None:
        self.key = check_key(key)
        self.shared = bool(shared)
        self.wait = bool(wait)
        self.scope = scope
        self.required = required
        self._timeout = timeout
        _options(wait, timeout, scope)
        self._conn = conn
        self._adapter: Optional[SyncAdapter] = None
        self.acquired = False

    def __enter__(self) -> bool:
        self._adapter = sync_adapter(self._conn)
        self.acquired = acquire(self._adapter, self.key, self.shared, self.wait, self._timeout, self.scope)
        if not self.acquired and self.required:
            raise LockNotAcquired(self.key)
        return self.acquired

    def __exit__(
        self,
        exc_type: Optional[Type[BaseException]],
        exc: Optional[BaseException],
        tb: Optional[TracebackType],
    ) -> None:
        if not self.acquired or self._adapter is None:
            return
        self.acquired = False
        try:
            _release(self._adapter, self.key, self.shared, self.scope)
        except Exception as release_error:
            if exc is None:
                raise
            # The block's own error matters more; the release's goes with it as a note.
            _note(exc, f"pglocks: releasing {self.key!r} failed too: {release_error!r}")


def with_lock(
    conn: Any,
    key: Key,
    sql: str,
    params: Optional[Sequence[Any]] = None,
    shared: bool = False,
    wait: bool = True,
    timeout: Timeout = None,
) -> bool:
    """``pglocks_with_lock``: take the lock, run ``sql``, release, in one round trip.

    Returns False when the lock was not obtained (``wait=False`` or the timeout): the command
    did not run. An error in the command propagates as the driver's error, the lock released.
    ``params`` binds ``$1 ... $n`` in the command (server 1.2): each value is sent as text
    (``None`` as NULL), so cast in the command where the type matters (``$2::int``).
    """
    k = check_key(key)
    secs = _options(wait, timeout, "session")
    a = sync_adapter(conn)
    stmt, args = with_lock_sql(k, sql, params, shared, wait, secs)
    try:
        return bool(a.scalar(stmt, args))
    except Exception as exc:
        if _not_installed(exc):
            raise _extension_error(exc) from exc
        raise


# --- asyncio (psycopg 3 AsyncConnection) ----------------------------------------------------


async def aacquire(
    conn: Any,
    key: Key,
    shared: bool = False,
    wait: bool = True,
    timeout: Timeout = None,
    scope: str = "session",
) -> bool:
    """:func:`acquire` on a psycopg AsyncConnection."""
    k = check_key(key)
    secs = _options(wait, timeout, scope)
    a = conn if isinstance(conn, AsyncAdapter) else AsyncAdapter(conn)
    _transaction_scope_check(a, scope)
    before = a.status()
    sql, params = acquire_sql(k, shared, wait, secs, scope)
    ours = before == IDLE and not a.autocommit()
    try:
        got = bool(await a.scalar(sql, params))
    except Exception as exc:
        if ours and not a.closed() and a.status() == INERROR:
            await a.rollback_aborted()
        if _not_installed(exc):
            raise _extension_error(exc) from exc
        raise
    if scope == "session" and ours:
        await a.commit()
    return got


async def arelease(conn: Any, key: Key, shared: bool = False) -> bool:
    """:func:`release` on a psycopg AsyncConnection."""
    k = check_key(key)
    a = conn if isinstance(conn, AsyncAdapter) else AsyncAdapter(conn)
    return await _arelease(a, k, shared, "session", recover=False)


async def _arelease(a: AsyncAdapter, k: Key, shared: bool, scope: str, recover: bool = True) -> bool:
    if a.closed():
        return False
    status = a.status()
    if scope == "transaction" and status != INTRANS:
        return False
    if status == INERROR and recover:
        await a.rollback_aborted()
        status = a.status()
    sql, params = release_sql(k, shared)
    try:
        released = bool(await a.scalar(sql, params))
    except Exception:
        if a.closed():
            return False
        raise
    if status == IDLE and not a.autocommit():
        await a.commit()
    return released


class alock:
    """``async with alock(aconn, key, ...) as acquired:``, :class:`lock` for a psycopg AsyncConnection."""

    def __init__(
        self,
        conn: Any,
        key: Key,
        shared: bool = False,
        wait: bool = True,
        timeout: Timeout = None,
        scope: str = "session",
        *,
        required: bool = False,
    ) -> None:
        self.key = check_key(key)
        self.shared = bool(shared)
        self.wait = bool(wait)
        self.scope = scope
        self.required = required
        self._timeout = timeout
        _options(wait, timeout, scope)
        self._adapter = AsyncAdapter(conn)
        self.acquired = False

    async def __aenter__(self) -> bool:
        self.acquired = await aacquire(self._adapter, self.key, self.shared, self.wait, self._timeout, self.scope)
        if not self.acquired and self.required:
            raise LockNotAcquired(self.key)
        return self.acquired

    async def __aexit__(
        self,
        exc_type: Optional[Type[BaseException]],
        exc: Optional[BaseException],
        tb: Optional[TracebackType],
    ) -> None:
        if not self.acquired:
            return
        self.acquired = False
        try:
            await _arelease(self._adapter, self.key, self.shared, self.scope)
        except Exception as release_error:
            if exc is None:
                raise
            _note(exc, f"pglocks: releasing {self.key!r} failed too: {release_error!r}")


async def awith_lock(
    conn: Any,
    key: Key,
    sql: str,
    params: Optional[Sequence[Any]] = None,
    shared: bool = False,
    wait: bool = True,
    timeout: Timeout = None,
) -> bool:
    """:func:`with_lock` on a psycopg AsyncConnection."""
    k = check_key(key)
    secs = _options(wait, timeout, "session")
    a = AsyncAdapter(conn)
    stmt, args = with_lock_sql(k, sql, params, shared, wait, secs)
    try:
        return bool(await a.scalar(stmt, args))
    except Exception as exc:
        if _not_installed(exc):
            raise _extension_error(exc) from exc
        raise
