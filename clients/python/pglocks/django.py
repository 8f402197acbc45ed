"""django-pglocks' ``advisory_lock`` on pglocks, a drop-in replacement.

    from pglocks.django import advisory_lock      # was: from django_pglocks import advisory_lock

    with advisory_lock("some lock") as acquired:
        ...

    @advisory_lock("nightly report")              # or as a decorator: the lock around each call
    def build_report(): ...

The arguments and the behaviour are django-pglocks': ``lock_id`` is a string, an integer
or a pair of integers (a bad one raises ValueError); ``shared``, ``wait`` and ``using``
mean what they meant there; the lock is a session lock released when the block exits,
normally or by an exception; with ``wait=False`` the block always runs and ``acquired``
says whether the lock was obtained. A string names the lock ``pglocks_key(string)``, as
django-pglocks 2.x does, so both libraries and ``pglocks_acquire(string)`` take the same
lock. django-pglocks 1.x named a string lock by its CRC-32: ``string_keys="crc32"`` (or
the setting ``PGLOCKS_STRING_KEYS = "crc32"``) takes those locks, to share them with
processes still on 1.x.

Added: ``timeout`` (seconds or a timedelta): wait at most that long in the server's queue,
then run the block with ``acquired`` False.

The database connection of ``using`` is looked up on entry into the block (or into each
call of a decorated function), not when ``advisory_lock(...)`` is called: a decorator made
at import time uses the connection of the thread that calls the function. Each call has
state of its own, so one decorated function may run in several threads at once. An
``async def`` function cannot be decorated (TypeError): the lock would be released as
soon as the coroutine is created.
"""

from __future__ import annotations

import copy
import inspect
import threading
from contextlib import ContextDecorator
from types import TracebackType
from typing import Any, Callable, List, Optional, Type, TypeVar

from django.conf import settings
from django.db import DEFAULT_DB_ALIAS, connections

from ._core import Timeout, _options, lock
from ._keys import Key, check_key, crc32_key

STRING_KEYS = ("sha256", "crc32")

F = TypeVar("F", bound=Callable[..., Any])

__all__ = ["AdvisoryLock", "advisory_lock", "lock_key"]


def _lock_id(lock_id: Any) -> Key:
    """django-pglocks' lock ids: ValueError for anything else, as django-pglocks raises."""
    try:
        return check_key(lock_id)
    except TypeError as exc:
        raise ValueError(f"Cannot use {lock_id!r} as a lock id: {exc}") from exc


def _string_keys(string_keys: Optional[str]) -> str:
    if string_keys is None:
        string_keys = getattr(settings, "PGLOCKS_STRING_KEYS", "sha256")
    if string_keys not in STRING_KEYS:
        raise ValueError(f"string_keys must be 'sha256' (django-pglocks 2.x) or 'crc32' (1.x), not {string_keys!r}")
    return string_keys


def lock_key(lock_id: Key, string_keys: Optional[str] = None) -> Key:
    """The key pglocks takes for ``lock_id``: a string as it is (hashed to ``pglocks_key``
    by the server), or as its 1.x CRC-32 bigint with ``string_keys="crc32"``."""
    lock_id = _lock_id(lock_id)
    if isinstance(lock_id, str) and _string_keys(string_keys) == "crc32":
        return crc32_key(lock_id)
    return lock_id


class AdvisoryLock(ContextDecorator):
    """What :func:`advisory_lock` returns: a context manager whose value is True when the
    lock is held, and a decorator that holds the lock around each call of the function."""

    def __init__(
        self,
        lock_id: Key,
        shared: bool = False,
        wait: bool = True,
        using: Optional[str] = None,
        timeout: Timeout = None,
        string_keys: Optional[str] = None,
    ) -> None:
        self.lock_id = _lock_id(lock_id)
        if string_keys is not None:
            _string_keys(string_keys)
        _options(wait, timeout, "session")
        self.shared = shared
        self.wait = wait
        self.using = using
        self.timeout = timeout
        self.string_keys = string_keys
        # One entry per entry into the block, for nested entries of one object; per thread,
        # since a shared object (a module's advisory_lock(...)) may be entered by several
        # threads at once, each on its own thread's connection.
        self._local = threading.local()

    @property
    def _entered(self) -> List[lock]:
        entered: Optional[List[lock]] = getattr(self._local, "entered", None)
        if entered is None:
            entered = []
            self._local.entered = entered
        return entered

    def __call__(self, func: F) -> F:
        # A coroutine function would return its coroutine at once, the lock released before
        # the coroutine runs; and the lock belongs to the thread's connection, which the
        # awaits of a coroutine do not keep to themselves.
        if inspect.iscoroutinefunction(func) or inspect.isasyncgenfunction(func):
            raise TypeError(
                f"advisory_lock cannot decorate the async function {getattr(func, '__qualname__', func)!r}: "
                "the lock would be released before its body runs; use pglocks.alock on a psycopg "
                "AsyncConnection inside it, or decorate a sync function (sync_to_async)"
            )
        return super().__call__(func)

    def _recreate_cm(self) -> "AdvisoryLock":
        # Each call of a decorated function gets an object of its own (threads, recursion).
        fresh = copy.copy(self)
        fresh._local = threading.local()
        return fresh

    def __enter__(self) -> bool:
        connection = connections[self.using or DEFAULT_DB_ALIAS]
        key = lock_key(self.lock_id, self.string_keys)
        cm = lock(connection, key, shared=self.shared, wait=self.wait, timeout=self.timeout)
        acquired = cm.__enter__()
        self._entered.append(cm)
        return acquired

    def __exit__(
        self,
        exc_type: Optional[Type[BaseException]],
        exc: Optional[BaseException],
        tb: Optional[TracebackType],
    ) -> None:
        self._entered.pop().__exit__(exc_type, exc, tb)


def advisory_lock(
    lock_id: Key,
    shared: bool = False,
    wait: bool = True,
    using: Optional[str] = None,
    *,
    timeout: Timeout = None,
    string_keys: Optional[str] = None,
) -> AdvisoryLock:
    """``with advisory_lock(lock_id, shared=False, wait=True, using=None) as acquired:``,
    or ``@advisory_lock(...)`` on a function.

    See the module's documentation. The value is True when the lock is held and False when
    ``wait=False`` or the ``timeout`` did not obtain it. A bad ``lock_id`` raises ValueError.
    """
    return AdvisoryLock(lock_id, shared, wait, using, timeout, string_keys)
