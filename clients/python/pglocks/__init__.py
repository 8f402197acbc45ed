"""Named PostgreSQL advisory locks through the pglocks extension.

    import pglocks

    with pglocks.lock(conn, "nightly-report") as acquired:
        ...                                   # held here, released however the block ends

    pglocks.with_lock(conn, "nightly-report", "CALL build_report()")   # one round trip
    pglocks.key("nightly-report")             # the bigint lock, computed here

``conn`` is a psycopg (3) or psycopg2 connection, a Django connection or a SQLAlchemy
Connection or Session; ``alock``, ``awith_lock``, ``aacquire`` and ``arelease`` take a psycopg
AsyncConnection. Django users: ``pglocks.django.advisory_lock``, django-pglocks' drop-in.
"""

from ._core import (
    BlockAborted,
    ExtensionNotInstalled,
    HoldMismatch,
    LockNotAcquired,
    PglocksError,
    ReleaseFailed,
    TransactionChanged,
    aacquire,
    acquire,
    alock,
    arelease,
    awith_lock,
    lock,
    release,
    with_lock,
)
from ._keys import Key, crc32_key, key

__version__ = "1.2.0"

__all__ = [
    "BlockAborted",
    "ExtensionNotInstalled",
    "HoldMismatch",
    "Key",
    "LockNotAcquired",
    "PglocksError",
    "ReleaseFailed",
    "TransactionChanged",
    "aacquire",
    "acquire",
    "alock",
    "arelease",
    "awith_lock",
    "crc32_key",
    "key",
    "lock",
    "release",
    "with_lock",
]
