"""The lock context managers and functions, sync and asyncio.

Each operation is written once, as a generator of steps (run this statement, commit, roll
back, ...) that looks at the adapter's state between them; :func:`_run` performs the steps
on a sync connection and :func:`_arun` awaits them on an AsyncConnection.
"""

from __future__ import annotations

import asyncio
import datetime
import decimal
import itertools
import json
import math
from types import TracebackType
from typing import Any, Generator, List, Optional, Sequence, Set, Tuple, Type, TypeVar, Union

from ._conn import (
    ACTIVE,
    IDLE,
    INERROR,
    INTRANS,
    UNKNOWN,
    AsyncAdapter,
    SyncAdapter,
    is_session,
    sqlstate,
    sync_adapter,
)
from ._keys import Key, check_key

Timeout = Union[None, int, float, datetime.timedelta]

SCOPES = ("session", "transaction")

T = TypeVar("T")
#: One step: (adapter method name, arguments...): "scalar" (sql, params), "execute" (sql),
#: "commit", "rollback_aborted", "discard".
Step = Tuple[Any, ...]
Steps = Generator[Step, Any, T]


class PglocksError(Exception):
    """Base class of the errors pglocks raises itself (driver errors pass through unchanged)."""


class ExtensionNotInstalled(PglocksError):
    """The database has no pglocks functions: run CREATE EXTENSION pglocks in it."""


class LockNotAcquired(PglocksError):
    """Raised by ``lock(..., required=True)`` when a try or a timed wait did not get the lock."""

    def __init__(self, key: Key) -> None:
        super().__init__(f"lock {key!r} not acquired")
        self.key = key


class TransactionChanged(PglocksError):
    """The end of a ``scope='transaction'`` block found that the transaction which took the
    lock had ended inside the block (committed or rolled back, another one perhaps begun):
    the hold ended with that transaction, so the block did not hold the lock to its end, and
    nothing was released (another hold of the same lock is left alone)."""

    def __init__(self, key: Key) -> None:
        super().__init__(
            f"lock {key!r} (scope='transaction'): the transaction that took it ended inside the "
            "block, and the hold with it; nothing was released"
        )
        self.key = key


class BlockAborted(PglocksError):
    """A lock block that ended without an exception, although a database error in it had
    aborted the transaction (the block caught the error and went on): the block's work was
    rolled back (to the savepoint taken before the acquire, or the whole transaction) and
    the lock released; this says that the work is gone."""

    def __init__(self, key: Key) -> None:
        super().__init__(
            f"lock {key!r}: a database error in the block aborted the transaction and the block "
            "did not raise it; the block's work was rolled back and the lock released"
        )
        self.key = key


class ReleaseFailed(PglocksError):
    """The release at the end of a lock block failed (the error of the driver is
    ``__cause__``). ``connection_closed`` is True when the connection is closed (lost, or
    closed by pglocks so that the server ends the session and its locks rather than leave
    the lock held); ``block_error`` is the exception the block raised, or None. When the
    block raised an Exception and the connection is closed, the block's error is raised
    instead, with this as its ``__context__`` and a note."""

    def __init__(self, key: Key, connection_closed: bool, block_error: Optional[BaseException]) -> None:
        closed = "; the connection is closed, which ends the session and its locks" if connection_closed else ""
        after = f" (after the block raised {block_error!r})" if block_error is not None else ""
        super().__init__(f"releasing lock {key!r} failed{after}{closed}")
        self.key = key
        self.connection_closed = connection_closed
        self.block_error = block_error


class HoldMismatch(ReleaseFailed):
    """The end of a lock block found the holds of its lock not as the block left them: the
    release (``pglocks_release`` frees the newest hold of the lock, whatever its scope) freed
    a hold of the other scope (``freed_scope``: a session-scope block freed a
    transaction-scope hold taken in the block, or the reverse), or, for a transaction-scope
    block, its own hold was gone (rolled back to a savepoint taken before the block) and
    nothing was released (``freed_scope`` None). Mixing scopes on one lock inside a block is
    unsupported. A session-scope block's connection is closed (its session hold would stay
    held otherwise): ``connection_closed``."""

    def __init__(self, k: Key, scope: str, freed_scope: Optional[str]) -> None:
        super().__init__(k, False, None)
        self.scope = scope
        self.freed_scope = freed_scope
        self._describe()

    def _describe(self) -> None:
        k, scope = self.key, self.scope
        if self.freed_scope is not None:
            what = (
                f"the release freed a {self.freed_scope}-scope hold instead of the block's {scope}-scope "
                f"hold (the newest hold of the lock was of the other scope)"
            )
        else:
            what = "the block's hold was gone (rolled back to a savepoint taken before the block); nothing was released"
        closed = "; the connection is closed, which ends the session and its locks" if self.connection_closed else ""
        after = f" (after the block raised {self.block_error!r})" if self.block_error is not None else ""
        self.args = (
            f"lock {k!r} (scope={scope!r}): {what}{after}{closed}; mixing scopes on one lock inside a block is unsupported",
        )


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


# What identifies the current transaction of the session: its start (microseconds since the
# epoch, computed the same way each time) and its transaction id once it has one. The
# backend's next transaction starts later; a subtransaction shares both.
_TX_START = "(extract(epoch FROM pg_catalog.transaction_timestamp()) * 1000000)::bigint"
_TX_XID = "pg_catalog.txid_current_if_assigned()"


def transaction_acquire_sql(k: Key, shared: bool, wait: bool, secs: Optional[float]) -> Tuple[str, List[Any]]:
    """A transaction-scope acquire that returns, when granted, the transaction's identity and
    this session's transaction-scope holds of the lock after the grant ('start,xid,holds'),
    and NULL when not granted."""
    sql, params = acquire_sql(k, shared, wait, secs, "transaction")
    sql = sql[len("SELECT ") :]
    where, where_params = _held_where(k, shared, "transaction")
    holds = f"(SELECT coalesce(sum(h.holds), 0)::bigint FROM pglocks_held() h WHERE {where})"
    return (
        f"SELECT CASE WHEN {sql} THEN {_TX_START}::text || ',' || coalesce({_TX_XID}::text, '')"
        f" || ',' || {holds}::text END",
        params + where_params,
    )


def _parse_tx(value: str) -> Tuple[Tuple[int, Optional[int]], int]:
    start, xid, holds = str(value).split(",")
    return (int(start), (int(xid) if xid else None)), int(holds)


def _held_where(k: Key, shared: bool, scope: str) -> Tuple[str, List[Any]]:
    """The rows of ``pglocks_held() h`` of this lock, mode and scope (a text key's lock is
    the bigint ``pglocks_key(text)``; a pair has no ``lock_key``, its ``key`` is 'a,b')."""
    if isinstance(k, str):
        params: List[Any] = [k]
        cond = "h.lock_key = pglocks_key(%s::text)"
    elif isinstance(k, int):
        cond, params = "h.lock_key = (%s)::bigint", [k]
    else:
        cond, params = "h.lock_key IS NULL AND h.key = %s::text", [f"{k[0]},{k[1]}"]
    return f"{cond} AND h.shared = %s::boolean AND h.scope = %s::text", params + [bool(shared), scope]


def _key_where(k: Key, shared: bool) -> Tuple[str, List[Any]]:
    """:func:`_held_where` without the scope: the rows of both scopes."""
    where, params = _held_where(k, shared, "session")
    return where[: where.rindex(" AND h.scope")], params[:-1]


def checked_release_sql(k: Key, shared: bool, scope: str, tx: Optional[Tuple[int, Optional[int]]] = None, min_tx_holds: int = 0) -> Tuple[str, List[Any]]:
    """The release at the end of a block, with this session's holds of the lock and mode
    counted per scope before and after it in the same statement: one text,
    'session before,transaction before,released (1/0),session after,transaction after'.
    The release runs only if there is a hold of the block's scope (for a transaction-scope
    block: in the transaction that took the lock, at least ``min_tx_holds`` of them, the
    count right after the block's acquire), else ``released`` is empty; for a
    transaction-scope block, session before is empty when the transaction is another."""
    ks, key_params = _key_sql(k)
    where, where_params = _key_where(k, shared)
    counts = (
        "coalesce(sum(h.holds) FILTER (WHERE h.scope = 'session'), 0)::bigint AS {0}s,"
        " coalesce(sum(h.holds) FILTER (WHERE h.scope = 'transaction'), 0)::bigint AS {0}t"
        " FROM pglocks_held() h WHERE "
    )
    params: List[Any] = list(where_params)
    if scope == "transaction":
        assert tx is not None
        start, xid = tx
        same_tx = f"{_TX_START} = %s::bigint AND (%s::bigint IS NULL OR {_TX_XID} = %s::bigint)"
        before = f"SELECT CASE WHEN {same_tx} THEN 1 END AS same_tx, " + counts.format("b_")
        params = [start, xid, xid] + params
        guard = "b.same_tx IS NOT NULL AND b.b_t > 0 AND b.b_t >= %s::bigint"
        guard_params: List[Any] = [min_tx_holds]
    else:
        before = "SELECT 1 AS same_tx, " + counts.format("b_")
        guard, guard_params = "b.b_s > 0", []
    sql = (
        f"SELECT concat(CASE WHEN b.same_tx IS NOT NULL THEN b.b_s END, ',', b.b_t, ',',"
        f" x.released::integer, ',', x.a_s, ',', x.a_t)"
        f" FROM ({before}{where}) b CROSS JOIN LATERAL (SELECT r.released, a.a_s, a.a_t FROM"
        f" (SELECT CASE WHEN {guard} THEN pglocks_release({ks}, shared => %s::boolean) END AS released OFFSET 0) r"
        f" CROSS JOIN LATERAL (SELECT {counts.format('a_')}{where}"
        f" AND r.released IS NOT DISTINCT FROM r.released) a) x"
    )
    params += guard_params + key_params + [bool(shared)] + where_params
    return sql, params


def held_count_sql(k: Key, shared: bool) -> Tuple[str, List[Any]]:
    """How many session-scope holds of the lock this session has."""
    where, params = _held_where(k, shared, "session")
    return f"SELECT coalesce(sum(h.holds), 0)::bigint FROM pglocks_held() h WHERE {where}", params


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
        args.append([param_text(v) for v in params])
    stmt += ", shared => %s::boolean, wait => %s::boolean"
    args += [bool(shared), bool(wait)]
    if secs is not None:
        stmt += ", timeout => make_interval(secs => %s::double precision)"
        args.append(secs)
    return stmt + ")", args


def param_text(v: Any) -> Optional[str]:
    """The text a ``with_lock`` parameter is sent as, the same as the Node client's:
    None as NULL; str as it is; bool as true/false; int, float (NaN, Infinity) and Decimal
    as numbers; bytes as bytea's hex form (``\\x0aff``); dates and times in ISO 8601; dict,
    list and tuple as JSON. Anything else is a TypeError."""
    if v is None:
        return None
    if isinstance(v, str):
        return v
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int):
        return str(int(v))
    if isinstance(v, float):
        if math.isnan(v):
            return "NaN"
        if math.isinf(v):
            return "Infinity" if v > 0 else "-Infinity"
        return repr(v)
    if isinstance(v, decimal.Decimal):
        return str(v)
    if isinstance(v, (bytes, bytearray, memoryview)):
        return "\\x" + bytes(v).hex()
    if isinstance(v, (datetime.date, datetime.time)):  # datetime is a date
        return v.isoformat()
    if isinstance(v, (dict, list, tuple)):
        # JSON.stringify's form: no spaces, no escapes beyond JSON's own; NaN is no JSON.
        return json.dumps(v, separators=(",", ":"), ensure_ascii=False, allow_nan=False)
    raise TypeError(
        f"a with_lock parameter is None, str, bool, int, float, Decimal, bytes, a date or time, "
        f"or a dict or list (as JSON), not {type(v).__name__}"
    )


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


# --- the steps, written once ---------------------------------------------------------------

_savepoint_numbers = itertools.count(1)


class _Hold:
    """What a lock block knows of its hold between the acquire and the release."""

    def __init__(self) -> None:
        self.granted = False  # the acquire statement returned true
        self.savepoint: Optional[str] = None  # set before the acquire, inside the caller's transaction
        # scope='transaction': the identity of the transaction that took the lock
        self.tx: Optional[Tuple[int, Optional[int]]] = None
        self.tx_holds = 0  # and its transaction-scope holds of the lock right after the grant


# The errors of an acquire statement that come before any grant, after which nothing is
# recounted: a deadlock or a lock_timeout (the server gives back a lock granted to a wait that
# failed, and nothing else in the statement waits), a transaction already aborted, pglocks'
# refusals before it asks the lock manager (a bad argument, a standby or session_locks =
# deny, reentrant => false), and errors of class 42 (no such function, no privilege), which
# come before the statement runs.
_BEFORE_GRANT = frozenset({"40P01", "55P03", "25P02", "22023", "55000", "55006"})


def _before_grant(code: str) -> bool:
    return code in _BEFORE_GRANT or code.startswith("42")


def _acquire_steps(
    a: Any,
    k: Key,
    shared: bool,
    wait: bool,
    secs: Optional[float],
    scope: str,
    hold: _Hold,
    block: bool,
    recount: bool = False,
) -> Steps[bool]:
    """The acquire. With ``recount`` (sync and asyncio alike), a session-scope acquire counts
    this session's holds of the lock first: a cancel or ``statement_timeout`` (57014), or any
    other server error but those that come before any grant (``_BEFORE_GRANT``), that lands
    after the grant, before the statement ends, fails the statement with the lock held, and
    the count afterwards finds that hold and gives it back (or, should that fail, the
    connection is closed)."""
    _transaction_scope_check(a, scope)
    before = a.status()
    ours = before == IDLE and not a.autocommit() and not a.pinned  # the transaction it begins
    recount = recount and scope == "session"
    if a.savepoints and (
        (block and (before == INTRANS or (scope == "transaction" and ours))) or (recount and before == INTRANS)
    ):
        # Inside the caller's transaction (or, for a transaction-scope block, the one its
        # first statement begins): a savepoint, so that a failed acquire or an error in the
        # block can be rolled back to it (psycopg refuses rollback() inside conn.transaction()),
        # and, for a transaction-scope hold, so that the rollback releases the hold with it.
        name = f"pglocks_{next(_savepoint_numbers)}"
        yield ("execute", "SAVEPOINT " + name)
        hold.savepoint = name
    holds_before: Optional[int] = None
    if recount:
        count_sql, count_params = held_count_sql(k, shared)
        try:
            holds_before = int((yield ("scalar", count_sql, count_params)))
        except Exception as exc:
            if hold.savepoint is not None and not a.closed() and a.status() == INERROR:
                # Nothing was acquired (a cancel that hit the count): back to the savepoint,
                # and the caller's transaction goes on, as after a failed acquire.
                try:
                    yield from _back_to_savepoint_steps(hold.savepoint)
                    hold.savepoint = None
                except Exception as rollback_error:
                    _note(exc, f"pglocks: rolling back the failed count failed too: {rollback_error!r}")
            elif ours and not a.closed() and a.status() == INERROR:
                # The failed count was the only statement of the transaction it began.
                try:
                    yield ("rollback_aborted",)
                except Exception as rollback_error:
                    _note(exc, f"pglocks: rolling back the failed count failed too: {rollback_error!r}")
            if _not_installed(exc):
                raise _extension_error(exc) from exc
            raise
    if scope == "transaction":
        sql, params = transaction_acquire_sql(k, shared, wait, secs)
    else:
        sql, params = acquire_sql(k, shared, wait, secs, scope)
    try:
        value = yield ("scalar", sql, params)
    except Exception as exc:
        if not a.closed() and a.status() == INERROR:
            # The failed acquire aborted the transaction: give the caller a usable one.
            try:
                if ours:
                    yield ("rollback_aborted",)  # the failed transaction was only the acquire's
                elif hold.savepoint is not None:
                    yield from _back_to_savepoint_steps(hold.savepoint)
                    hold.savepoint = None
            except Exception as rollback_error:
                _note(exc, f"pglocks: rolling back the failed acquire failed too: {rollback_error!r}")
        code = sqlstate(exc)
        # Recounted (or else the connection closed) after any server error but those that
        # come before any grant: after those an aborted transaction of the caller's is left
        # to the caller, whose connection stays.
        if holds_before is not None and code is not None and not _before_grant(code):
            yield from _leftover_steps(a, k, shared, holds_before, ours)
        if _not_installed(exc):
            raise _extension_error(exc) from exc
        raise
    if scope == "transaction":
        got = value is not None
        if got:
            hold.tx, hold.tx_holds = _parse_tx(value)
    else:
        got = bool(value)
    hold.granted = got
    if hold.savepoint is not None and (not block or not got):
        # Nothing to roll back to later (a function's acquire, a block without the lock):
        # the savepoint is released at once, so that acquires in a loop nest nothing.
        yield ("execute", "RELEASE SAVEPOINT " + hold.savepoint)
        hold.savepoint = None
    if scope == "session" and ours:
        yield ("commit",)
    return got


def _back_to_savepoint_steps(name: str) -> Steps[None]:
    """Back to the savepoint ``name``, which then ends: the transaction goes on as it was
    when the savepoint was taken."""
    yield ("execute", "ROLLBACK TO SAVEPOINT " + name)
    yield ("execute", "RELEASE SAVEPOINT " + name)


def _leftover_steps(a: Any, k: Key, shared: bool, holds_before: int, ours: bool) -> Steps[None]:
    """After an acquire failed in the server: releases the holds of the lock beyond those
    the session had before the acquire. Should that be impossible (the transaction still
    aborted, an error), the connection is closed: the session ends, and its locks."""
    if a.closed():
        return
    try:
        if a.status() != INERROR:
            count_sql, count_params = held_count_sql(k, shared)
            extra = int((yield ("scalar", count_sql, count_params))) - holds_before
            sql, params = release_sql(k, shared)
            for _ in range(extra):
                yield ("scalar", sql, params)
            if ours and a.status() == INTRANS:
                yield ("commit",)
            return
    except Exception:
        pass
    try:
        yield ("discard",)
    except Exception:
        pass


def _recover_steps(a: Any, hold: _Hold) -> Steps[str]:
    """An aborted transaction accepts nothing but a rollback: to the block's savepoint if it
    has one ('savepoint': the same transaction goes on; 'lost' when the savepoint is gone,
    as the block ended that transaction and began another, and nothing was done), else the
    whole transaction ('whole': it could only be rolled back) or, for Django, to the
    savepoint of the innermost atomic block ('other')."""
    if hold.savepoint is not None:
        try:
            yield ("execute", "ROLLBACK TO SAVEPOINT " + hold.savepoint)
            return "savepoint"
        except Exception:
            if a.closed():
                raise
        return "lost"
    whole = yield ("rollback_aborted",)
    return "other" if whole is False else "whole"


def _release_steps(a: Any, k: Key, shared: bool) -> Steps[bool]:
    """``release()``: releases one hold; in an aborted transaction, the driver's error says so."""
    if a.closed():
        return False  # the session has ended, and its locks with it
    status = a.status()
    sql, params = release_sql(k, shared)
    try:
        released = bool((yield ("scalar", sql, params)))
    except Exception:
        if a.closed():
            return False
        raise
    if status == IDLE and not a.autocommit() and (a.underneath or not a.pinned):
        yield ("commit",)
    return released


def _block_release_steps(a: Any, k: Key, shared: bool, scope: str, hold: _Hold) -> Steps[Optional[PglocksError]]:
    """:func:`_block_release_inner_steps`, then the block's savepoint released, so that blocks
    in a loop do not nest subtransactions. The body may have destroyed it (rolled back or
    released a savepoint taken before the block, ended the transaction): a savepoint of
    this step's own, rolled back to, keeps that failure from aborting the transaction."""
    problem = yield from _block_release_inner_steps(a, k, shared, scope, hold)
    if hold.savepoint is not None and not a.closed() and a.status() == INTRANS:
        name, hold.savepoint = hold.savepoint, None
        guard = name + "_end"
        yield ("execute", "SAVEPOINT " + guard)
        try:
            yield ("execute", "RELEASE SAVEPOINT " + name)  # and the guard, taken after it
        except Exception:
            if a.closed():
                raise
            yield from _back_to_savepoint_steps(guard)
    return problem


def _block_release_inner_steps(a: Any, k: Key, shared: bool, scope: str, hold: _Hold) -> Steps[Optional[PglocksError]]:
    """The release at the end of a lock block. An aborted transaction is rolled back first
    (see :func:`_recover_steps`). Returns what to raise if the block itself raised nothing
    (:class:`BlockAborted`, :class:`TransactionChanged`), or None; raises the error of a
    release that failed."""
    if a.closed():
        return None  # closed in the block: the session has ended, and its locks with it
    if a.gone():
        if scope == "transaction":
            return TransactionChanged(k)  # given back to the pool, its transaction rolled back
        raise RuntimeError(
            "pglocks: the block's SQLAlchemy Connection was closed in the block, its DBAPI "
            "connection given back to the pool with the lock held; it is invalidated, not used"
        )
    status = a.status()
    if status in (ACTIVE, UNKNOWN):
        # A statement interrupted mid-flight: the connection cannot take another one.
        raise RuntimeError("pglocks: the connection is in the middle of a statement")
    problem: Optional[PglocksError] = None
    if status == INERROR:
        problem = BlockAborted(k)
        how = yield from _recover_steps(a, hold)
        if scope == "transaction":
            if how == "lost":
                return TransactionChanged(k)
            if how in ("savepoint", "whole"):
                return problem  # the hold was taken after the savepoint: rolled back with it
        elif how == "lost":
            yield ("rollback_aborted",)
        status = a.status()
    if scope == "transaction" and (status != INTRANS or hold.tx is None):
        return TransactionChanged(k)  # the transaction ended in the block, and the hold with it
    sql, params = checked_release_sql(k, shared, scope, hold.tx, hold.tx_holds)
    row = str((yield ("scalar", sql, params))).split(",")
    s_before, t_before, released, s_after, t_after = (int(v) if v else None for v in row)
    if scope == "transaction":
        if s_before is None:
            return TransactionChanged(k)  # another transaction: its holds are not the block's
        if released is None and t_before:
            # Fewer transaction-scope holds than right after the block's acquire: the block's
            # (rolled back with a savepoint taken before the block); the ones left are not its.
            raise HoldMismatch(k, scope, None)
    if released is not None:
        own, other = (s_before, t_before) if scope == "session" else (t_before, s_before)
        own_after, other_after = (s_after, t_after) if scope == "session" else (t_after, s_after)
        if own is None or not (own_after == own - 1 and other_after == other):
            raise HoldMismatch(k, scope, "transaction" if scope == "session" else "session")
    if scope == "session" and status == IDLE and not a.autocommit() and (a.underneath or not a.pinned):
        yield ("commit",)
    return problem


def _exit_steps(a: Any, k: Key, shared: bool, scope: str, hold: _Hold, exc: Optional[BaseException]) -> Steps[None]:
    """The end of a lock block: release; should that fail with the session lock still held,
    end the session (close the connection) rather than leave the lock behind, and raise
    :class:`ReleaseFailed`."""
    try:
        problem = yield from _block_release_steps(a, k, shared, scope, hold)
    except BaseException as release_error:
        closed = a.closed()
        if scope == "session" and not closed:
            try:
                yield ("discard",)
            except Exception:
                pass
            closed = a.closed()
        if not isinstance(release_error, Exception):
            raise  # an interrupt of the release (Ctrl-C, a cancellation) goes on
        if exc is not None and not isinstance(exc, Exception):
            # The block's interrupt goes on, with the release's error as a note.
            closed_text = " (the connection was closed)" if closed else ""
            _note(exc, f"pglocks: releasing {k!r} failed too{closed_text}: {release_error!r}")
            return
        failure: ReleaseFailed
        if isinstance(release_error, HoldMismatch):
            release_error.connection_closed = closed
            release_error.block_error = exc
            release_error._describe()
            failure = release_error
        else:
            failure = ReleaseFailed(k, closed, exc)
            failure.__cause__ = release_error
        if exc is not None and closed:
            # The block raised, and the connection is closed: nothing of the session can be
            # held any more. The block's own error goes on (what the caller catches), the
            # release's failure as a note and as its __context__.
            _note(exc, f"pglocks: {failure}")
            if exc.__context__ is None:
                exc.__context__ = failure
            return
        raise failure
    if problem is not None:
        if exc is None:
            raise problem
        if isinstance(problem, TransactionChanged):
            _note(exc, f"pglocks: {problem}")


def _granted_steps(a: Any, k: Key, shared: bool, scope: str, hold: _Hold, exc: BaseException) -> Steps[None]:
    """An acquire that did not complete after the grant (its commit failed, the caller was
    cancelled): give the hold back."""
    if hold.granted:
        yield from _exit_steps(a, k, shared, scope, hold, exc)


def _abandon_steps(a: Any, k: Key, shared: bool, scope: str, hold: _Hold, exc: BaseException) -> Steps[None]:
    """:func:`_granted_steps`, and more: an acquire interrupted mid-flight (KeyboardInterrupt)
    leaves the outcome unknown, as the server may have granted the lock: end the session."""
    if hold.granted:
        yield from _exit_steps(a, k, shared, scope, hold, exc)
    elif not isinstance(exc, Exception) and not a.closed():
        yield ("discard",)


def _with_lock_steps(a: Any, stmt: str, args: List[Any]) -> Steps[bool]:
    try:
        return bool((yield ("scalar", stmt, args)))
    except Exception as exc:
        if _not_installed(exc):
            raise _extension_error(exc) from exc
        raise


def _run(a: SyncAdapter, steps: Steps[T]) -> T:
    """Performs the steps on a sync connection; a step's error goes back into the steps."""
    result: Any = None
    error: Optional[BaseException] = None
    while True:
        try:
            step = steps.throw(error) if error is not None else steps.send(result)
        except StopIteration as stop:
            return stop.value  # type: ignore[no-any-return]
        result, error = None, None
        try:
            result = getattr(a, step[0])(*step[1:])
        except BaseException as exc:  # the steps decide; what they do not catch goes on up
            error = exc


async def _arun(a: AsyncAdapter, steps: Steps[T]) -> T:
    """:func:`_run` on an AsyncConnection."""
    result: Any = None
    error: Optional[BaseException] = None
    while True:
        try:
            step = steps.throw(error) if error is not None else steps.send(result)
        except StopIteration as stop:
            return stop.value  # type: ignore[no-any-return]
        result, error = None, None
        try:
            result = await getattr(a, step[0])(*step[1:])
        except BaseException as exc:
            error = exc


# --- sync ---------------------------------------------------------------------------------


def _no_session_lock_on_a_session(conn: Any, scope: str) -> None:
    if scope == "session" and is_session(conn):
        raise TypeError(
            "acquire()/release() of a session lock on a SQLAlchemy Session: the lock would stay "
            "on a connection the Session gives back to its pool; use a lock block "
            "(pglocks.lock(session, ...)), scope='transaction', or a Connection"
        )


def _acquire(a: SyncAdapter, k: Key, shared: bool, wait: bool, secs: Optional[float], scope: str, block: bool) -> Tuple[bool, _Hold]:
    hold = _Hold()
    try:
        return _run(a, _acquire_steps(a, k, shared, wait, secs, scope, hold, block, recount=True)), hold
    except BaseException as exc:
        _run(a, _abandon_steps(a, k, shared, scope, hold, exc))
        raise


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
    An acquire interrupted mid-statement (KeyboardInterrupt) closes the connection: the
    server may have granted the lock.
    """
    k = check_key(key)
    secs = _options(wait, timeout, scope)
    _no_session_lock_on_a_session(conn, scope)
    a = sync_adapter(conn)
    return _acquire(a, k, shared, wait, secs, scope, False)[0]


def release(conn: Any, key: Key, shared: bool = False) -> bool:
    """``pglocks_release``: releases one hold of the lock; False when this session holds none."""
    k = check_key(key)
    _no_session_lock_on_a_session(conn, "session")
    a = sync_adapter(conn)
    return _run(a, _release_steps(a, k, shared))


class lock:
    """``with lock(conn, key, shared=False, wait=True, timeout=None, scope='session') as acquired:``

    Takes the lock with ``pglocks_acquire``, runs the block, and releases the lock with
    ``pglocks_release`` however the block ends. ``acquired`` is True when the lock is held.
    With ``wait=False`` or a ``timeout``, the block runs even when the lock was not obtained
    and ``acquired`` is False (as django-pglocks does); with ``required=True`` such a failure
    raises :class:`LockNotAcquired` instead and the block does not run.

    ``conn`` is a psycopg (3) or psycopg2 connection, a Django connection, or a SQLAlchemy
    Connection or Session (a session lock on a Session is taken on a connection of its own,
    checked out of the Session's engine for the block).

    Inside the caller's transaction (and for every transaction-scope block), a savepoint is
    set before the acquire; a failed acquire, and a database error in the block, are rolled
    back to it (a block that caught such an error raises :class:`BlockAborted` once the
    lock is released). A release that fails raises :class:`ReleaseFailed`, having closed
    the connection (which ends the database session and its locks) if it was still open. A
    transaction-scope block whose transaction ended inside it raises
    :class:`TransactionChanged` and releases nothing. The object may be entered again inside
    its own block: each entry has its own hold.
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
        self._secs = _options(wait, timeout, scope)
        self._conn = conn
        # One entry per entry into the block, innermost last: the same object may be entered
        # again inside its own block (each entry takes and releases its own hold).
        self._entries: List[Tuple[SyncAdapter, _Hold, bool]] = []
        self.acquired = False

    def __enter__(self) -> bool:
        a = sync_adapter(self._conn, block_scope=self.scope)
        try:
            acquired, hold = _acquire(a, self.key, self.shared, self.wait, self._secs, self.scope, True)
            if not acquired and self.required:
                raise LockNotAcquired(self.key)
        except BaseException:
            a.finish(entered=False)
            raise
        self._entries.append((a, hold, acquired))
        self.acquired = acquired
        return acquired

    def __exit__(
        self,
        exc_type: Optional[Type[BaseException]],
        exc: Optional[BaseException],
        tb: Optional[TracebackType],
    ) -> None:
        if not self._entries:
            return
        a, hold, acquired = self._entries.pop()
        self.acquired = self._entries[-1][2] if self._entries else False
        try:
            if acquired:
                _run(a, _exit_steps(a, self.key, self.shared, self.scope, hold, exc))
        finally:
            a.finish()


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
    (see :func:`param_text`; ``None`` as NULL), so cast in the command where the type
    matters (``$2::int``).
    """
    k = check_key(key)
    secs = _options(wait, timeout, "session")
    stmt, args = with_lock_sql(k, sql, params, shared, wait, secs)
    a = sync_adapter(conn)
    return _run(a, _with_lock_steps(a, stmt, args))


# --- asyncio (psycopg 3 AsyncConnection) ----------------------------------------------------

# Tasks that must run to their end although nobody awaits them any more.
_tasks: Set["asyncio.Task[Any]"] = set()


def _forget(task: "asyncio.Task[Any]") -> None:
    _tasks.discard(task)
    if not task.cancelled():
        task.exception()  # retrieved: its error went to whoever awaited it, if anyone did


def _spawn(coro: Any) -> "asyncio.Task[Any]":
    task: "asyncio.Task[Any]" = asyncio.ensure_future(coro)
    _tasks.add(task)
    task.add_done_callback(_forget)
    return task


async def _after_cancel(a: AsyncAdapter, task: "asyncio.Task[Any]", then: Optional[Steps[None]], cancel: bool) -> None:
    if not task.done():
        if cancel:
            await a.cancel_query()  # a wait in the server's queue ends now, not when granted
        try:
            await task
        except BaseException:
            pass
    if then is not None:
        await _arun(a, then)


async def _shielded(a: AsyncAdapter, steps: Steps[T], then: Optional[Steps[None]] = None, cancel: bool = True) -> T:
    """Runs the steps in a task of their own, which a cancellation of the caller does not cut
    in the middle of a statement. On cancellation, the statement under way is cancelled in
    the server (with ``cancel``; a release is let finish), its end awaited, then ``then`` run
    (a release when the lock was granted meanwhile), and the cancellation raised. Further
    cancellations meanwhile do not cut the clean-up short: when the caller sees its
    CancelledError, nothing of the lock is held and the connection is free."""
    task = _spawn(_arun(a, steps))
    try:
        return await asyncio.shield(task)
    except asyncio.CancelledError:
        cleanup = _spawn(_after_cancel(a, task, then, cancel))
        while not cleanup.done():
            try:
                await asyncio.shield(cleanup)
            except asyncio.CancelledError:
                continue  # raised once, below, when the clean-up is done
            except BaseException:
                break
        raise


async def _aacquire(a: AsyncAdapter, k: Key, shared: bool, wait: bool, secs: Optional[float], scope: str, block: bool) -> Tuple[bool, _Hold]:
    hold = _Hold()
    steps = _acquire_steps(a, k, shared, wait, secs, scope, hold, block, recount=True)
    cancelled = asyncio.CancelledError()
    try:
        return await _shielded(a, steps, _granted_steps(a, k, shared, scope, hold, cancelled)), hold
    except Exception as exc:
        await _arun(a, _granted_steps(a, k, shared, scope, hold, exc))
        raise


async def aacquire(
    conn: Any,
    key: Key,
    shared: bool = False,
    wait: bool = True,
    timeout: Timeout = None,
    scope: str = "session",
) -> bool:
    """:func:`acquire` on a psycopg AsyncConnection. Cancelled (``asyncio.wait_for``, ...)
    while it waits, it cancels the wait in the server and releases a lock granted meanwhile."""
    k = check_key(key)
    secs = _options(wait, timeout, scope)
    a = AsyncAdapter(conn)
    return (await _aacquire(a, k, shared, wait, secs, scope, False))[0]


async def arelease(conn: Any, key: Key, shared: bool = False) -> bool:
    """:func:`release` on a psycopg AsyncConnection."""
    k = check_key(key)
    a = AsyncAdapter(conn)
    return await _shielded(a, _release_steps(a, k, shared), cancel=False)


class alock:
    """``async with alock(aconn, key, ...) as acquired:``, :class:`lock` for a psycopg AsyncConnection.

    A cancellation of the task while it waits for the lock cancels the wait in the server
    (and releases the lock if it was granted meanwhile); a cancellation in the block or during
    the release lets the release finish (a statement of the block cut off mid-flight leaves
    the connection unusable: it is closed, which ends the session and its locks).
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
        self._secs = _options(wait, timeout, scope)
        self._adapter = AsyncAdapter(conn)
        self._entries: List[Tuple[_Hold, bool]] = []  # one per entry, innermost last (see lock)
        self.acquired = False

    async def __aenter__(self) -> bool:
        a = self._adapter
        acquired, hold = await _aacquire(a, self.key, self.shared, self.wait, self._secs, self.scope, True)
        if not acquired and self.required:
            raise LockNotAcquired(self.key)
        self._entries.append((hold, acquired))
        self.acquired = acquired
        return acquired

    async def __aexit__(
        self,
        exc_type: Optional[Type[BaseException]],
        exc: Optional[BaseException],
        tb: Optional[TracebackType],
    ) -> None:
        if not self._entries:
            return
        hold, acquired = self._entries.pop()
        self.acquired = self._entries[-1][1] if self._entries else False
        if not acquired:
            return
        a = self._adapter
        await _shielded(a, _exit_steps(a, self.key, self.shared, self.scope, hold, exc), cancel=False)


async def awith_lock(
    conn: Any,
    key: Key,
    sql: str,
    params: Optional[Sequence[Any]] = None,
    shared: bool = False,
    wait: bool = True,
    timeout: Timeout = None,
) -> bool:
    """:func:`with_lock` on a psycopg AsyncConnection. Cancelled, it cancels the statement
    in the server (the server releases the lock however the statement ends)."""
    k = check_key(key)
    secs = _options(wait, timeout, "session")
    stmt, args = with_lock_sql(k, sql, params, shared, wait, secs)
    a = AsyncAdapter(conn)
    return await _shielded(a, _with_lock_steps(a, stmt, args))
