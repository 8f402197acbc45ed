"""What the lock functions need from a connection, for each kind of connection.

Each adapter runs one statement and returns its single value, and tells the libpq
transaction status of the underlying session (psycopg and psycopg2 number them alike).
"""

from __future__ import annotations

import asyncio
import re
import weakref
from typing import Any, List, Mapping, Optional, Sequence

# libpq's PGTransactionStatusType, as both psycopg (pq.TransactionStatus) and psycopg2
# (extensions.TRANSACTION_STATUS_*) number it.
IDLE, ACTIVE, INTRANS, INERROR, UNKNOWN = range(5)


def _module(obj: object) -> str:
    return type(obj).__module__ or ""


def unwrap(conn: Any) -> Any:
    """Django's ``django.db.connection`` is a ConnectionProxy of the current thread's
    ``connections[alias]``: that connection (looked up now, in the calling thread)."""
    if _module(conn).startswith("django.utils.connection"):
        d = getattr(conn, "__dict__", {})
        if "_connections" in d and "_alias" in d:
            return d["_connections"][d["_alias"]]
    return conn


def kind(conn: object) -> str:
    """What ``conn`` is: 'sqlalchemy', 'django', 'psycopg-async' or 'dbapi' (a psycopg or
    psycopg2 connection); TypeError for anything else."""
    conn = unwrap(conn)
    mod = _module(conn)
    if mod.startswith("sqlalchemy."):
        return "sqlalchemy"
    if mod.startswith("django.db"):
        return "django"
    if mod.startswith("psycopg") and hasattr(conn, "cursor"):
        return "psycopg-async" if "Async" in type(conn).__name__ else "dbapi"
    raise TypeError(
        "pglocks needs a psycopg or psycopg2 connection, a Django connection, or a SQLAlchemy "
        f"Connection or Session, not {type(conn).__module__}.{type(conn).__name__}"
    )


def raw_status(raw: Any) -> int:
    """The transaction status of a psycopg (3) or psycopg2 connection."""
    info = getattr(raw, "info", None)
    if info is not None and hasattr(info, "transaction_status"):
        return int(info.transaction_status)
    return int(raw.get_transaction_status())


def raw_closed(raw: Any) -> bool:
    return raw is None or bool(raw.closed)


def first(row: Any) -> Any:
    """The single value of a row, whatever the row factory (tuples, dicts, named tuples)."""
    if isinstance(row, Mapping):
        return next(iter(row.values()))
    return row[0]


def _scalar(cur: Any, sql: str, params: Sequence[Any]) -> Any:
    cur.execute(sql, tuple(params))
    return first(cur.fetchone())


# The schema of the extension, looked up once per connection (the DBAPI connection, held
# weakly): every pglocks_* call is qualified with it, so that a block's SET search_path
# cannot break the release.
_SCHEMA_SQL = (
    "SELECT (SELECT pg_catalog.quote_ident(n.nspname) FROM pg_catalog.pg_extension e"
    " JOIN pg_catalog.pg_namespace n ON n.oid = e.extnamespace WHERE e.extname = 'pglocks')"
)
_schemas: "weakref.WeakKeyDictionary[Any, str]" = weakref.WeakKeyDictionary()
_CALL = re.compile(r"(?<![\w.\"])(pglocks_[a-z_]+\()")


def _cached_schema(raw: Any) -> Optional[str]:
    try:
        return _schemas.get(raw)
    except TypeError:
        return None


def _remember_schema(raw: Any, schema: Any) -> None:
    if schema is None:
        return  # not installed: the unqualified call fails, and says so
    try:
        _schemas[raw] = str(schema)
    except TypeError:
        pass


def qualify(sql: str, schema: Optional[str]) -> str:
    """``sql`` with each call of a pglocks_* function qualified with the extension's schema."""
    if schema is None:
        return sql
    return _CALL.sub(lambda m: f"{schema}.{m.group(1)}", sql)


def _quiet(fn: Any) -> None:
    """Calls fn(), ignoring its errors: for the last resort of closing a connection."""
    try:
        fn()
    except Exception:
        pass


class SyncAdapter:
    """A psycopg (3) Connection or a psycopg2 connection."""

    pinned = False  # True when the connection must not be committed by us (an ORM session)
    # True once rollback_aborted() rolled back underneath a framework: what follows goes
    # to the DBAPI connection directly, and its transaction is ours to commit.
    underneath = False
    # A lock block entered inside the caller's transaction sets a savepoint, to roll the
    # block's failed work back to it (frameworks with savepoints of their own say False).
    savepoints = True

    def __init__(self, raw: Any) -> None:
        self.raw = raw

    def scalar(self, sql: str, params: Sequence[Any]) -> Any:
        """Runs one statement, its pglocks_* calls qualified with the extension's schema."""
        if "pglocks_" in sql:
            schema = _cached_schema(self.raw)
            if schema is None:
                schema = self.run_scalar(_SCHEMA_SQL, ())
                _remember_schema(self.raw, schema)
            sql = qualify(sql, schema)
        return self.run_scalar(sql, params)

    def run_scalar(self, sql: str, params: Sequence[Any]) -> Any:
        cur = self.raw.cursor()
        try:
            return _scalar(cur, sql, params)
        finally:
            cur.close()

    def execute(self, sql: str) -> None:
        cur = self.raw.cursor()
        try:
            cur.execute(sql)
        finally:
            cur.close()

    def status(self) -> int:
        return raw_status(self.raw)

    def autocommit(self) -> bool:
        return bool(self.raw.autocommit)

    def closed(self) -> bool:
        return raw_closed(self.raw)

    def commit(self) -> None:
        self.raw.commit()

    def rollback_aborted(self) -> Optional[bool]:
        self.raw.rollback()
        return True

    def discard(self) -> None:
        """Ends the database session (and every lock of it): cancels a statement still
        running, which would keep the server from seeing the hang-up, then closes."""
        if self.closed():
            return
        if raw_status(self.raw) == ACTIVE:
            _quiet(self.raw.cancel)
        _quiet(self.raw.close)

    def gone(self) -> bool:
        """True when the connection is still open but no longer the block's (a SQLAlchemy
        Connection closed in the block gave it back to the pool): it must not be used."""
        return False

    def finish(self, entered: bool = True) -> None:
        """The end of a lock block (``entered``: its body ran): gives back what the adapter
        took for it."""


class DjangoAdapter(SyncAdapter):
    """A Django database connection (``django.db.connections[alias]``).

    The adapter keeps the DBAPI connection the lock was taken on: should the block close
    Django's connection, the release still goes to that one if it is open (a connection
    pool keeps it open), and to nothing if it is closed (its session and locks are gone).
    """

    savepoints = False  # atomic() has its own

    def __init__(self, wrapper: Any) -> None:
        if wrapper.vendor != "postgresql":
            raise TypeError(f"pglocks needs a PostgreSQL database, not {wrapper.vendor} ({wrapper.alias})")
        wrapper.ensure_connection()
        self.wrapper = wrapper
        super().__init__(wrapper.connection)

    def _attached(self) -> bool:
        return self.wrapper.connection is self.raw

    def run_scalar(self, sql: str, params: Sequence[Any]) -> Any:
        if self.wrapper.needs_rollback or not self._attached():
            # Django refuses statements in an atomic block marked for rollback, and a
            # connection it let go of is no longer its own: straight to the DBAPI connection.
            return super().run_scalar(sql, params)
        # Through Django's cursor, so execute wrappers and query logging see the statement.
        with self.wrapper.cursor() as cur:
            return _scalar(cur, sql, params)

    def commit(self) -> None:
        if self.underneath or not self._attached():
            self.raw.commit()
        elif not self.wrapper.in_atomic_block:
            self.wrapper.commit()

    def rollback_aborted(self) -> Optional[bool]:
        """True when the whole transaction was rolled back, False when only to a savepoint."""
        if not self._attached():
            self.raw.rollback()
            return True
        # Django forbids rollback() inside atomic(). Roll back to the savepoint of the
        # innermost atomic block that has one, as that block will on its way out, or else
        # the whole transaction, and tell atomic() that its transaction is gone.
        sids = [sid for sid in getattr(self.wrapper, "savepoint_ids", []) if sid]
        if self.wrapper.in_atomic_block and sids:
            self.execute("ROLLBACK TO SAVEPOINT " + self.wrapper.ops.quote_name(sids[-1]))
            self.wrapper.needs_rollback = True
            return False
        self.raw.rollback()
        if self.wrapper.in_atomic_block:
            self.wrapper.needs_rollback = True
            self.underneath = True
        return True

    def discard(self) -> None:
        if self._attached() and not self.closed():
            if raw_status(self.raw) == ACTIVE:
                _quiet(self.raw.cancel)
            _quiet(self.wrapper.close)
            if not self.closed():  # a pool took it back open: close it for good
                _quiet(self.raw.close)
        else:
            super().discard()


def _sa_dbapi(conn: Any) -> Any:
    fairy = conn.connection
    return getattr(fairy, "dbapi_connection", None) or fairy.connection


class SQLAlchemyAdapter(SyncAdapter):
    """A SQLAlchemy Connection, or the connection of a Session.

    The adapter keeps the DBAPI connection underneath, where the lock lives. With
    ``owned``, the Connection was checked out for one lock block (a Session's session-scope
    block) and is closed by :meth:`finish`.
    """

    savepoints = False  # SQLAlchemy's transactions are rolled back underneath, as below

    def __init__(self, conn: Any, pinned: bool, owner: Any = None) -> None:
        self.conn = conn
        self.pinned = pinned
        self.owner = owner  # the Session whose block checked conn out, or None
        super().__init__(_sa_dbapi(conn))
        # The pool's record of the DBAPI connection: invalidated (closed, replaced at the
        # pool's next checkout) should the Connection give it back with the lock held.
        self.record = getattr(conn.connection, "_connection_record", None)

    def gone(self) -> bool:
        if raw_closed(self.raw):
            return False  # closed: the database session has ended, and its locks with it
        if self.conn.closed or getattr(self.conn, "invalidated", False):
            return True
        try:
            return _sa_dbapi(self.conn) is not self.raw
        except Exception:
            return True

    def rollback_aborted(self) -> None:
        # SQLAlchemy refuses statements in a transaction that failed until its block ends;
        # the rollback and the release go to the DBAPI connection underneath.
        self.raw.rollback()
        self.underneath = True

    def status(self) -> int:
        status = raw_status(self.raw)
        if status == IDLE and self._usable() and self.conn.in_transaction():
            # SQLAlchemy's transaction has begun, its BEGIN not yet sent: it is the caller's.
            return INTRANS
        return status

    def _usable(self) -> bool:
        if self.underneath or self.conn.closed or getattr(self.conn, "invalidated", False):
            return False
        if _sa_dbapi(self.conn) is not self.raw:
            return False
        tx = self.conn.get_transaction()
        if tx is not None and not tx.is_active:
            # A transaction that failed: SQLAlchemy has rolled it back and refuses
            # statements until its block ends.
            self.underneath = True
            return False
        return True

    def run_scalar(self, sql: str, params: Sequence[Any]) -> Any:
        if self._usable():
            return self.conn.exec_driver_sql(sql, tuple(params)).scalar()
        # SQLAlchemy's transaction is rolled back underneath it: use the DBAPI connection
        # directly.
        return super().run_scalar(sql, params)

    def commit(self) -> None:
        if self.underneath:
            self.raw.commit()
            return
        if self.pinned:
            return
        if not self.conn.closed and self.conn.in_transaction() and hasattr(self.conn, "commit"):
            self.conn.commit()  # a 2.0-style connection that began a transaction for us
        else:
            self.raw.commit()  # a transaction SQLAlchemy does not know about

    def discard(self) -> None:
        if self.gone():
            # The DBAPI connection is the pool's now (perhaps another checkout's): never run
            # a statement on it; invalidate its record, which closes it.
            record = self.record
            if record is not None and getattr(record, "dbapi_connection", None) is self.raw:
                _quiet(record.invalidate)
            _quiet(self.raw.close)
            return
        if not self.conn.closed and not getattr(self.conn, "invalidated", False):
            if raw_status(self.raw) == ACTIVE:
                _quiet(self.raw.cancel)
            _quiet(self.conn.invalidate)  # closes the DBAPI connection; the pool forgets it
        super().discard()

    def finish(self, entered: bool = True) -> None:
        if self.owner is None:
            return
        session, self.owner = self.owner, None
        entry: List[Any] = session.info.get(_SESSION_KEY) or [None, 0, None]
        if entry[0] is not self.conn:
            _quiet(self.conn.close)
            return
        entry[1] -= 1
        if entry[1] > 0:
            return
        session.info.pop(_SESSION_KEY, None)
        session.bind = entry[2]  # the Session's own bind again, for what follows the block
        usable = entered and not self.conn.closed and not getattr(self.conn, "invalidated", False)
        holds = _session_transaction_holds(session, self.conn, self.raw) if usable else False
        if holds is None:
            holds = self.conn.in_transaction()  # cannot tell: left to the Session's transaction
        if holds:
            # The block's work is still in the Session's transaction on this connection (to
            # be committed after the block): the connection goes back when that ends. A
            # transaction the Session does not hold (pglocks' own, as when the block never
            # ran or in AUTOCOMMIT, or one begun on the Connection itself) it would never
            # end: the connection goes back now.
            _close_after_transaction(session, self.conn)
        else:
            _quiet(self.conn.close)


_SESSION_KEY = "pglocks.connection"


_DONE_KEY = "pglocks.closed_listeners"


def _real_session(session: Any) -> Any:
    """The Session itself: a scoped_session's for this thread (a scoped_session does not
    proxy get_transaction, and a listener on it would go to its factory's class, for every
    Session of every thread)."""
    if hasattr(session, "get_transaction"):
        return session
    registry = getattr(session, "registry", None)
    if callable(registry):
        try:
            return registry()
        except Exception:
            return session
    return session


def _close_after_transaction(session: Any, conn: Any) -> None:
    from sqlalchemy import event

    def after_transaction_end(sess: Any, transaction: Any) -> None:
        # At the end of the Session's root transaction, whatever the Connection says: a
        # transaction still open on it then is not the Session's (it did not begin it, as in
        # AUTOCOMMIT), and nothing else would end it.
        if conn.closed or transaction.parent is None:
            _quiet(conn.close)
            # Removed at the Session's next lock block: not while SQLAlchemy iterates them.
            done: List[Any] = session.info.setdefault(_DONE_KEY, [])
            if after_transaction_end not in done:
                done.append(after_transaction_end)

    event.listen(session, "after_transaction_end", after_transaction_end)


def _forget_done_listeners(session: Any) -> None:
    done = session.info.pop(_DONE_KEY, None)
    if done:
        from sqlalchemy import event

        for fn in done:
            _quiet(lambda: event.remove(session, "after_transaction_end", fn))


def _session_transaction_holds(session: Any, conn: Any, raw: Any) -> Optional[bool]:
    """True when the Session's transaction has checked out (and will end) this Connection,
    or a copy of it on the same DBAPI connection ``raw`` (a legacy Connection with execution
    options is a copy); None when that cannot be told (no get_transaction)."""
    if not hasattr(session, "get_transaction"):
        return None
    held = getattr(session.get_transaction(), "_connections", None) or {}
    for v in held.values():
        if not isinstance(v, tuple) or len(v) == 0:
            continue
        if v[0] is conn:
            return True
        if v[0].closed or getattr(v[0], "invalidated", False):
            continue  # asking a closed or invalidated Connection for its DBAPI one reconnects it
        try:
            if _sa_dbapi(v[0]) is raw:
                return True
        except Exception:
            continue
    return False


def _session_connection_in_use(session: Any) -> bool:
    """True when the Session's transaction has already checked out a connection."""
    tx = session.get_transaction() if hasattr(session, "get_transaction") else None
    return tx is not None and bool(getattr(tx, "_connections", None))


def _session_block_adapter(session: Any) -> SQLAlchemyAdapter:
    """The adapter of a Session's session-scope lock block. The lock must be on the database
    session where the block's work runs, and must not go back to the pool with a connection
    the Session gives back at a commit: the block checks a Connection out of the Session's
    engine and binds the Session to it for the block (a Session bound to a Connection never
    gives it back), so the block's statements and its commits run on the lock's connection.
    Nested blocks on the same Session share it. A Session bound to a Connection already
    uses that one; a Session whose transaction already has a connection keeps it (the lock
    is taken on it: a commit in the block would give it back to the pool with the lock).
    A scoped_session's block is its Session's for this thread."""
    session = _real_session(session)
    _forget_done_listeners(session)
    entry: Optional[List[Any]] = session.info.get(_SESSION_KEY)
    if entry is not None:
        if not entry[0].closed and not getattr(entry[0], "invalidated", False):
            entry[1] += 1
            return SQLAlchemyAdapter(entry[0], pinned=False, owner=session)
        session.info.pop(_SESSION_KEY, None)  # closed by an outer block's failed release
        session.bind = entry[2]
    bind = session.get_bind()
    if hasattr(bind, "exec_driver_sql"):
        # The caller's Connection, never given back to the pool by the Session.
        return SQLAlchemyAdapter(session.connection(), pinned=True)
    if _session_connection_in_use(session):
        raise ValueError(
            "a session-scope lock block on a SQLAlchemy Session whose transaction already has a "
            "connection: a commit or rollback in the block would give that connection back to "
            "the pool with the lock held; commit or roll back before the block, bind the Session "
            "to a Connection, or use scope='transaction'"
        )
    conn = bind.connect()
    session.info[_SESSION_KEY] = [conn, 1, session.bind]
    session.bind = conn
    return SQLAlchemyAdapter(conn, pinned=False, owner=session)


def _is_session(conn: Any) -> bool:
    return hasattr(conn, "connection") and hasattr(conn, "get_bind") and not hasattr(conn, "exec_driver_sql")


def sync_adapter(conn: Any, block_scope: Optional[str] = None) -> SyncAdapter:
    """The adapter of a sync connection. ``block_scope`` is the scope of a lock block (None
    for the functions acquire() and release(), and for with_lock())."""
    if isinstance(conn, SyncAdapter):
        return conn
    conn = unwrap(conn)
    k = kind(conn)
    if k == "sqlalchemy":
        if hasattr(conn, "exec_driver_sql"):
            return SQLAlchemyAdapter(conn, pinned=False)
        if _is_session(conn):  # an ORM Session
            if block_scope == "session":
                return _session_block_adapter(conn)
            return SQLAlchemyAdapter(conn.connection(), pinned=True)
        raise TypeError(f"pglocks needs a SQLAlchemy Connection or Session, not {type(conn).__name__}")
    if k == "django":
        return DjangoAdapter(conn)
    if k == "psycopg-async":
        raise TypeError("an AsyncConnection needs the async functions: alock, awith_lock, ...")
    return SyncAdapter(conn)


def is_session(conn: Any) -> bool:
    """True for a SQLAlchemy ORM Session."""
    return not isinstance(conn, SyncAdapter) and kind(conn) == "sqlalchemy" and _is_session(conn)


class AsyncAdapter:
    """A psycopg (3) AsyncConnection."""

    pinned = False
    underneath = False
    savepoints = True

    def __init__(self, raw: Any) -> None:
        if isinstance(raw, AsyncAdapter):
            raw = raw.connection()
        try:
            k = kind(raw)
        except TypeError:
            k = ""
        if k != "psycopg-async":
            raise TypeError(f"the async functions need a psycopg AsyncConnection, not {type(raw).__name__}")
        self.raw: Any = raw

    def connection(self) -> Any:
        return self.raw

    async def scalar(self, sql: str, params: Sequence[Any]) -> Any:
        if "pglocks_" in sql:
            schema = _cached_schema(self.raw)
            if schema is None:
                schema = await self.run_scalar(_SCHEMA_SQL, ())
                _remember_schema(self.raw, schema)
            sql = qualify(sql, schema)
        return await self.run_scalar(sql, params)

    async def run_scalar(self, sql: str, params: Sequence[Any]) -> Any:
        async with self.raw.cursor() as cur:
            await cur.execute(sql, tuple(params))
            return first(await cur.fetchone())

    async def execute(self, sql: str) -> None:
        async with self.raw.cursor() as cur:
            await cur.execute(sql)

    def status(self) -> int:
        return raw_status(self.raw)

    def autocommit(self) -> bool:
        return bool(self.raw.autocommit)

    def gone(self) -> bool:
        return False

    def closed(self) -> bool:
        return raw_closed(self.raw)

    async def commit(self) -> None:
        await self.raw.commit()

    async def rollback_aborted(self) -> None:
        await self.raw.rollback()

    async def cancel_query(self) -> None:
        """Asks the server to cancel the statement running on the connection, if any."""
        if self.closed():
            return
        safe = getattr(self.raw, "cancel_safe", None)  # psycopg 3.2
        try:
            if safe is not None:
                await safe()
            else:
                await asyncio.get_running_loop().run_in_executor(None, self.raw.cancel)
        except Exception:
            pass

    async def discard(self) -> None:
        if self.closed():
            return
        if raw_status(self.raw) == ACTIVE:
            await self.cancel_query()
        try:
            await self.raw.close()
        except Exception:
            pass


def sqlstate(exc: Optional[BaseException]) -> Optional[str]:
    """The SQLSTATE of a driver error, through Django's and SQLAlchemy's wrappers."""
    seen = 0
    while exc is not None and seen < 5:
        code = getattr(exc, "sqlstate", None) or getattr(exc, "pgcode", None)
        if code:
            return str(code)
        exc = getattr(exc, "orig", None) or exc.__cause__
        seen += 1
    return None
