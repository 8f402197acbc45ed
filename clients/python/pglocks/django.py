"""django-pglocks' ``advisory_lock`` on pglocks, a drop-in replacement.

    from pglocks.django import advisory_lock      # was: from django_pglocks import advisory_lock

    with advisory_lock("some lock") as acquired:
        ...

The arguments and the behaviour are django-pglocks': ``lock_id`` is a string, an integer
or a pair of integers; ``shared``, ``wait`` and ``using`` mean what they meant there; the
lock is a session lock released when the block exits, normally or by an exception; with
``wait=False`` the block always runs and ``acquired`` says whether the lock was obtained.
A string names the lock ``pglocks_key(string)``, as django-pglocks 2.x does, so both
libraries and ``pglocks_acquire(string)`` take the same lock. django-pglocks 1.x named a
string lock by its CRC-32: ``string_keys="crc32"`` (or the setting
``PGLOCKS_STRING_KEYS = "crc32"``) takes those locks, to share them with processes still
on 1.x.

Added: ``timeout`` (seconds or a timedelta): wait at most that long in the server's queue,
then run the block with ``acquired`` False.
"""

from __future__ import annotations

from typing import Optional

from django.conf import settings
from django.db import DEFAULT_DB_ALIAS, connections

from ._core import Timeout, lock
from ._keys import Key, check_key, crc32_key

STRING_KEYS = ("sha256", "crc32")

__all__ = ["advisory_lock", "lock_key"]


def lock_key(lock_id: Key, string_keys: Optional[str] = None) -> Key:
    """The key pglocks takes for ``lock_id``: a string as it is (hashed to ``pglocks_key``
    by the server), or as its 1.x CRC-32 bigint with ``string_keys="crc32"``."""
    lock_id = check_key(lock_id)
    if string_keys is None:
        string_keys = getattr(settings, "PGLOCKS_STRING_KEYS", "sha256")
    if string_keys not in STRING_KEYS:
        raise ValueError(f"string_keys must be 'sha256' (django-pglocks 2.x) or 'crc32' (1.x), not {string_keys!r}")
    if isinstance(lock_id, str) and string_keys == "crc32":
        return crc32_key(lock_id)
    return lock_id


def advisory_lock(
    lock_id: Key,
    shared: bool = False,
    wait: bool = True,
    using: Optional[str] = None,
    *,
    timeout: Timeout = None,
    string_keys: Optional[str] = None,
) -> lock:
    """``with advisory_lock(lock_id, shared=False, wait=True, using=None) as acquired:``

    See the module's documentation. Returns a context manager whose value is True when the
    lock is held and False when ``wait=False`` or the ``timeout`` did not obtain it.
    """
    connection = connections[using or DEFAULT_DB_ALIAS]
    return lock(connection, lock_key(lock_id, string_keys), shared=shared, wait=wait, timeout=timeout)
