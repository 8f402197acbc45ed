#!/usr/bin/env python3
"""Moving from CRC-32 lock libraries to pglocks, one job at a time.

django-pglocks and Ruby's with_advisory_lock name a string lock by its CRC-32.
A job moved to pglocks keeps excluding the jobs still on the old library as long as
it names the lock with pglocks_crc32. This program derives the old libraries' keys
from their published algorithms (with zlib, not with the server), takes each lock
exactly as the old library would, with the core pg_advisory_* functions, and checks
that pglocks sees the same lock from another connection, and the other way round.
Connects with the libpq environment (PGHOST, ...). Exits 1 on any difference.
"""

import os
import sys
import zlib

import psycopg2

# The pglocks package of this checkout (clients/python); an application installs it instead
# (pip install ./clients/python).
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "clients", "python"))
import pglocks  # noqa: E402

failures = []


def check(what, got, want):
    ok = got == want
    print(f"  {'ok  ' if ok else 'FAIL'} {what}: {got!r}" + ("" if ok else f" (expected {want!r})"))
    if not ok:
        failures.append(what)


def one(cur, sql, args=()):
    cur.execute(sql, args)
    return cur.fetchone()[0]


def django_pglocks_id(name):
    """django-pglocks 1.x: the CRC-32 of the UTF-8 bytes as a signed 32-bit integer, a bigint lock."""
    return pglocks.crc32_key(name)


def with_advisory_lock_keys(name):
    """with_advisory_lock: the CRC-32 cut to 31 bits, and the prefix (0 when unset), an integer pair."""
    return zlib.crc32(name.encode("utf-8")) & 0x7FFFFFFF, 0


NAMES = ["x", "nightly-report", "orders:42", "Grüße", "日本語", "", "123456789"]


def main():
    # CRC-32 has one standard check value: the CRC of the ASCII digits 1 to 9.
    check("zlib.crc32(b'123456789')", zlib.crc32(b"123456789"), 0xCBF43926)
    # Both signs must occur, or a sign error in either side could go unseen.
    check("names cover both signs", sorted({django_pglocks_id(n) < 0 for n in NAMES}), [False, True])

    old = psycopg2.connect("")  # a process still on the old library
    new = psycopg2.connect("")  # a process moved to pglocks
    old.autocommit = new.autocommit = True
    ocur, ncur = old.cursor(), new.cursor()
    ncur.execute("CREATE EXTENSION IF NOT EXISTS pglocks")

    print("keys:")
    for name in NAMES:
        check(f"pglocks_crc32({name!r}) = django-pglocks id",
              one(ncur, "SELECT pglocks_crc32(%s)", (name,)), django_pglocks_id(name))
        check(f"(pglocks_crc32({name!r}) & 2147483647, 0) = with_advisory_lock keys",
              (one(ncur, "SELECT pglocks_crc32(%s) & 2147483647", (name,)), 0), with_advisory_lock_keys(name))

    # One name whose lock id is positive and one whose id is negative.
    for name in ["orders:42", "x"]:
        lock_id = django_pglocks_id(name)
        k1, k2 = with_advisory_lock_keys(name)
        print(f"django-pglocks and pglocks on {name!r} (lock id {lock_id}):")
        # The statements django-pglocks sends for advisory_lock(name) and its exit.
        ocur.execute("SELECT pg_advisory_lock(%d)" % lock_id)
        check("pglocks try while the old library holds it",
              one(ncur, "SELECT pglocks_acquire(pglocks_crc32(%s)::bigint, wait => false)", (name,)), False)
        check("pglocks_with_lock try while the old library holds it",
              one(ncur, "SELECT pglocks_with_lock(pglocks_crc32(%s)::bigint, 'SELECT 1', wait => false)",
                  (name,)), False)
        # A text key is hashed with SHA-256: another lock, which the old library does not see.
        check("pglocks text key (SHA-256) is another lock",
              one(ncur, "SELECT pglocks_acquire(%s, wait => false)", (name,)), True)
        check("release it", one(ncur, "SELECT pglocks_release(%s)", (name,)), True)
        check("old library releases", one(ocur, "SELECT pg_advisory_unlock(%d)" % lock_id), True)
        check("pglocks takes it", one(ncur, "SELECT pglocks_acquire(pglocks_crc32(%s)::bigint)", (name,)), True)
        # advisory_lock(name, wait=False) and advisory_lock(name, shared=True, wait=False).
        check("old library's try while pglocks holds it",
              one(ocur, "SELECT pg_try_advisory_lock(%d)" % lock_id), False)
        check("old library's shared try while pglocks holds it",
              one(ocur, "SELECT pg_try_advisory_lock_shared(%d)" % lock_id), False)
        check("pglocks releases", one(ncur, "SELECT pglocks_release(pglocks_crc32(%s)::bigint)", (name,)), True)
        check("shared: old library", one(ocur, "SELECT pg_try_advisory_lock_shared(%d)" % lock_id), True)
        check("shared: pglocks alongside",
              one(ncur, "SELECT pglocks_acquire(pglocks_crc32(%s)::bigint, shared => true, wait => false)",
                  (name,)), True)
        check("exclusive pglocks try against both shared holders",
              one(ncur, "SELECT pglocks_acquire(pglocks_crc32(%s)::bigint, wait => false)", (name,)), False)
        check("pglocks releases its shared hold",
              one(ncur, "SELECT pglocks_release(pglocks_crc32(%s)::bigint, shared => true)", (name,)), True)
        check("old library releases its shared hold",
              one(ocur, "SELECT pg_advisory_unlock_shared(%d)" % lock_id), True)

        print(f"with_advisory_lock and pglocks on {name!r} (keys {k1}, {k2}):")
        # The statements with_advisory_lock sends: it tries, and polls while it waits.
        check("old library takes it", one(ocur, "SELECT pg_try_advisory_lock(%d,%d)" % (k1, k2)), True)
        check("pglocks try while the old library holds it",
              one(ncur, "SELECT pglocks_acquire(pglocks_crc32(%s) & 2147483647, 0, wait => false)", (name,)),
              False)
        # The pair (k1, 0) and the bigint k1 are different locks in PostgreSQL.
        check("the bigint form is another lock",
              one(ncur, "SELECT pglocks_acquire(pglocks_crc32(%s) & 2147483647, wait => false)", (name,)), True)
        check("release it", one(ncur, "SELECT pglocks_release(pglocks_crc32(%s) & 2147483647)", (name,)), True)
        check("old library releases", one(ocur, "SELECT pg_advisory_unlock(%d,%d)" % (k1, k2)), True)
        check("pglocks takes it",
              one(ncur, "SELECT pglocks_acquire(pglocks_crc32(%s) & 2147483647, 0)", (name,)), True)
        check("old library's try while pglocks holds it",
              one(ocur, "SELECT pg_try_advisory_lock(%d,%d)" % (k1, k2)), False)
        check("pglocks releases",
              one(ncur, "SELECT pglocks_release(pglocks_crc32(%s) & 2147483647, 0)", (name,)), True)
        check("old library takes it after", one(ocur, "SELECT pg_try_advisory_lock(%d,%d)" % (k1, k2)), True)
        check("old library releases", one(ocur, "SELECT pg_advisory_unlock(%d,%d)" % (k1, k2)), True)

    check("locks left by either side",
          one(ncur, "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' "
                    "AND database = (SELECT oid FROM pg_database WHERE datname = current_database())"), 0)
    old.close()
    new.close()
    if failures:
        print(f"{len(failures)} check(s) failed", file=sys.stderr)
        return 1
    print("all checks passed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
