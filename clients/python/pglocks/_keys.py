"""Lock keys computed on the client, with the standard library only."""

from __future__ import annotations

import hashlib
import zlib
from typing import Tuple, Union

#: A lock key: a name (text), a 64-bit integer, or a pair of 32-bit integers.
Key = Union[str, int, Tuple[int, int]]

_INT64 = (-(1 << 63), (1 << 63) - 1)
_INT32 = (-(1 << 31), (1 << 31) - 1)


def key(name: str) -> int:
    """The bigint lock that ``pglocks_acquire(name)`` takes: ``pglocks_key(name)``.

    The first 8 bytes of the SHA-256 digest of the name's UTF-8 bytes, read big-endian
    as a signed 64-bit integer. The same number from every language and server.
    """
    if not isinstance(name, str):
        raise TypeError(f"a lock name is a str, not {type(name).__name__}")
    digest = hashlib.sha256(name.encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


def crc32_key(name: str) -> int:
    """The bigint lock that django-pglocks 1.x took for a string: ``pglocks_crc32(name)``.

    zlib's CRC-32 of the UTF-8 bytes as a signed 32-bit integer, used as a bigint lock
    (``pg_advisory_lock(crc)``), as django-pglocks 1.x did.
    """
    if not isinstance(name, str):
        raise TypeError(f"a lock name is a str, not {type(name).__name__}")
    crc = zlib.crc32(name.encode("utf-8"))
    return crc - (1 << 32) if crc & (1 << 31) else crc


def check_key(k: object) -> Key:
    """Returns the key as a str, an int or a tuple of two ints, or raises TypeError/ValueError."""
    if isinstance(k, str):
        return k
    if isinstance(k, bool):
        raise TypeError("a lock key is a str, an int or a pair of ints, not a bool")
    if isinstance(k, int):
        if not _INT64[0] <= k <= _INT64[1]:
            raise ValueError(f"an integer lock key must fit in 64 bits (bigint): {k}")
        return k
    if isinstance(k, (tuple, list)) and len(k) == 2:
        a, b = k
        for part in (a, b):
            if isinstance(part, bool) or not isinstance(part, int):
                raise TypeError("a pair key is two ints")
            if not _INT32[0] <= part <= _INT32[1]:
                raise ValueError(f"each int of a pair key must fit in 32 bits (integer): {part}")
        return (a, b)
    raise TypeError(f"a lock key is a str, an int or a pair of ints, not {type(k).__name__}")
