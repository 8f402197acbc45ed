"""What the lock functions need from a connection, for each kind of connection.

Each adapter runs one statement and returns its single value, and tells the libpq
transaction status of the underlying session (psycopg and psycopg2 number them alike).
"""

from __future__ import annotations

from typing import Any, Mapping, Optional, Sequence

# libpq's PGTransactionStatusType, as both psycopg (pq.TransactionStatus) and psycopg2
# (extensions.TRANSACTION_STATUS_*) number it.
IDLE, ACTIVE, INTRANS, INERROR, UNKNOWN = range(5)


def _module(obj: object) -> str:
    return type(obj).__module__ or ""


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


class SyncAdapter:
    """A psycopg (3) Connection or a psycopg2 connection."""

    pinned = False  # True when the connection must not be committed by us (an ORM session)
    # True once rollback_aborted() rolled back underneath a framework: what follows goes
    # to the DBAPI connection directly, and its transaction is ours to commit.
    underneath = False

    def __init__(self, raw: Any) -> None:
        self.raw = raw

    def scalar(self, sql: str, params: Sequence[Any]) -> Any:
        cur = self.raw.cursor()
        try:
            return _scalar(cur, sql, params)
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

    def rollback_aborted(self) -> None:
        self.raw.rollback()


class DjangoAdapter(SyncAdapter):
    """A Django database connection (``django.db.connections[alias]``)."""

    def __init__(self, wrapper: Any) -> None:
        if wrapper.vendor != "postgresql":
            raise TypeError(f"pglocks needs a PostgreSQL database, not {wrapper.vendor} ({wrapper.alias})")
        wrapper.ensure_connection()
        self.wrapper = wrapper
        super().__init__(wrapper.connection)

    def scalar(self, sql: str, params: Sequence[Any]) -> Any:
        if self.wrapper.needs_rollback:
            # Django refuses statements in an atomic block marked for rollback; the release
            # after rollback_aborted() goes to the connection underneath.
            return super().scalar(sql, params)
        # Through Django's cursor, so execute wrappers and query logging see the statement.
        with self.wrapper.cursor() as cur:
            return _scalar(cur, sql, params)

    def closed(self) -> bool:
        # Django drops its connection on close(); a new one would not hold the lock.
        return self.wrapper.connection is not self.raw or raw_closed(self.raw)

    def commit(self) -> None:
        if self.underneath:
            self.raw.commit()
        elif not self.wrapper.in_atomic_block:
            self.wrapper.commit()

    def rollback_aborted(self) -> None:
        # Django forbids rollback() inside atomic(). Roll back to the savepoint of the
        # innermost atomic block that has one, as that block will on its way out, or else
        # the whole transaction, and tell atomic() that its transaction is gone.
        sids = [sid for sid in getattr(self.wrapper, "savepoint_ids", []) if sid]
        if self.wrapper.in_atomic_block and sids:
            cur = self.raw.cursor()
            try:
                cur.execute("ROLLBACK TO SAVEPOINT " + self.wrapper.ops.quote_name(sids[-1]))
            finally:
                cur.close()
            self.wrapper.needs_rollback = True
            return
        self.raw.rollback()
        if self.wrapper.in_atomic_block:
            self.wrapper.needs_rollback = True
            self.underneath = True


def _sa_dbapi(conn: Any) -> Any:
    fairy = conn.connection
    return getattr(fairy, "dbapi_connection", None) or fairy.connection


class SQLAlchemyAdapter(SyncAdapter):
    """A SQLAlchemy Connection, or the connection of a Session.

    The lock belongs to the database session of the DBAPI connection underneath, so the
    adapter keeps that DBAPI connection: a Session that ends its transaction inside the
    block gives its connection back to the pool, and the release must still reach it.
    """

    def __init__(self, conn: Any, pinned: bool) -> None:
        self.conn = conn
        self.pinned = pinned
        super().__init__(_sa_dbapi(conn))

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
        if self.underneath or self.conn.closed or _sa_dbapi(self.conn) is not self.raw:
            return False
        tx = self.conn.get_transaction()
        if tx is not None and not tx.is_active:
            # A transaction that failed: SQLAlchemy has rolled it back and refuses
            # statements until its block ends.
            self.underneath = True
            return False
        return True

    def scalar(self, sql: str, params: Sequence[Any]) -> Any:
        if self._usable():
            return self.conn.exec_driver_sql(sql, tuple(params)).scalar()
        # The Session gave the connection back to the pool, or SQLAlchemy's transaction is
        # rolled back underneath it: use the DBAPI connection directly.
        return super().scalar(sql, params)

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


def sync_adapter(conn: Any) -> SyncAdapter:
    if isinstance(conn, SyncAdapter):
        return conn
    mod = _module(conn)
    if mod.startswith("sqlalchemy."):
        if hasattr(conn, "exec_driver_sql"):
            return SQLAlchemyAdapter(conn, pinned=False)
        if hasattr(conn, "connection") and hasattr(conn, "get_bind"):  # an ORM Session
            return SQLAlchemyAdapter(conn.connection(), pinned=True)
        raise TypeError(f"pglocks needs a SQLAlchemy Connection or Session, not {type(conn).__name__}")
    if mod.startswith("django.db"):
        return DjangoAdapter(conn)
    if mod.startswith("psycopg") and hasattr(conn, "cursor"):
        if "Async" in type(conn).__name__:
            raise TypeError("an AsyncConnection needs the async functions: alock, awith_lock, ...")
        return SyncAdapter(conn)
    raise TypeError(
        "pglocks needs a psycopg or psycopg2 connection, a Django connection, or a SQLAlchemy "
        f"Connection or Session, not {type(conn).__module__}.{type(conn).__name__}"
    )


class AsyncAdapter:
    """A psycopg (3) AsyncConnection."""

    pinned = False

    def __init__(self, raw: Any) -> None:
        if not _module(raw).startswith("psycopg") or "Async" not in type(raw).__name__:
            raise TypeError(f"the async functions need a psycopg AsyncConnection, not {type(raw).__name__}")
        self.raw = raw

    async def scalar(self, sql: str, params: Sequence[Any]) -> Any:
        async with self.raw.cursor() as cur:
            await cur.execute(sql, tuple(params))
            return first(await cur.fetchone())

    def status(self) -> int:
        return raw_status(self.raw)

    def autocommit(self) -> bool:
        return bool(self.raw.autocommit)

    def closed(self) -> bool:
        return raw_closed(self.raw)

    async def commit(self) -> None:
        await self.raw.commit()

    async def rollback_aborted(self) -> None:
        await self.raw.rollback()


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
