"""pglocks.django.advisory_lock in a real Django project (tests/djangoproject), with the
uses django-pglocks documents: string, integer and pair ids, shared, wait=False, using."""

import hashlib
import os
import subprocess
import sys
import threading
import time

import psycopg2
import pytest

import pglocks
from conftest import HERE, OtherSide, Probe, elapsed, sqlstate

PROJECT = os.path.join(HERE, "djangoproject")


@pytest.fixture(scope="module", autouse=True)
def django_project(other_database):
    os.environ["PGLOCKS_OTHER_DB"] = other_database
    os.environ["DJANGO_SETTINGS_MODULE"] = "project.settings"
    sys.path.insert(0, PROJECT)
    import django
    from django.core.management import call_command

    django.setup()
    call_command("migrate", verbosity=0)
    call_command("migrate", database="other", verbosity=0)
    yield
    from django.db import connections

    connections.close_all()


@pytest.fixture(autouse=True)
def no_entries():
    from ledger.models import Entry

    for using in ("default", "other"):
        Entry.objects.using(using).all().delete()


@pytest.fixture
def other_probe(other_database):
    p = Probe(f"dbname={other_database}")
    yield p
    p.close()


def advisory_lock(*args, **kwargs):
    from pglocks.django import advisory_lock

    return advisory_lock(*args, **kwargs)


def django_holds(using="default"):
    from django.db import connections

    with connections[using].cursor() as cur:
        cur.execute("SELECT key, shared, holds FROM pglocks_held() ORDER BY key")
        return [tuple(r) for r in cur.fetchall()]


# --- what django-pglocks 2.x sends, computed here from its description -----------------------


def django_pglocks_2x_id(name):
    """django-pglocks 2.x: the first 8 bytes of SHA-256 of the UTF-8 name, big-endian, signed."""
    return int.from_bytes(hashlib.sha256(name.encode("utf-8")).digest()[:8], "big", signed=True)


def django_pglocks_1x_id(name):
    """django-pglocks 1.x: zlib's CRC-32 of the UTF-8 name as a signed 32-bit integer."""
    import zlib

    crc = zlib.crc32(name.encode("utf-8"))
    return crc - (1 << 32) if crc & (1 << 31) else crc


class Legacy:
    """A process on django-pglocks: the core statements it sends for an integer lock id."""

    def __init__(self):
        self.conn = psycopg2.connect("")
        self.conn.autocommit = True

    def lock(self, lock_id):
        self.conn.cursor().execute("SELECT pg_advisory_lock(%s)", (lock_id,))

    def try_lock(self, lock_id, shared=False):
        cur = self.conn.cursor()
        cur.execute(f"SELECT pg_try_advisory_lock{'_shared' if shared else ''}(%s)", (lock_id,))
        got = cur.fetchone()[0]
        if got:
            cur.execute(f"SELECT pg_advisory_unlock{'_shared' if shared else ''}(%s)", (lock_id,))
        return got

    def unlock(self, lock_id):
        cur = self.conn.cursor()
        cur.execute("SELECT pg_advisory_unlock(%s)", (lock_id,))
        return cur.fetchone()[0]

    def close(self):
        self.conn.close()


@pytest.fixture
def legacy():
    p = Legacy()
    yield p
    p.close()


@pytest.mark.parametrize("name", ["some lock", "orders:42", "Grüße", "日本語", ""])
def test_2x_string_lock_and_pglocks_acquire_exclude_each_other(legacy, probe, name):
    lock_id = django_pglocks_2x_id(name)
    # A 2.x process holds advisory_lock(name): pg_advisory_lock(lock_id) on its connection.
    legacy.lock(lock_id)
    assert probe.one("SELECT pglocks_acquire(%s, wait => false)", (name,)) is False
    assert probe.one("SELECT pglocks_acquire(%s, timeout => '100ms')", (name,)) is False
    with advisory_lock(name, wait=False) as acquired:
        assert acquired is False
    # A waiting pglocks_acquire blocks until the 2.x process lets go.
    done = []
    t = threading.Thread(target=lambda: done.append(probe.one("SELECT pglocks_acquire(%s)", (name,))))
    t.start()
    time.sleep(0.3)
    assert done == []
    assert legacy.unlock(lock_id) is True
    t.join(10)
    assert done == [True]
    # ... and the other way round: while pglocks holds it, the 2.x process's try fails.
    assert legacy.try_lock(lock_id) is False
    assert probe.one("SELECT pglocks_release(%s)", (name,)) is True
    with advisory_lock(name) as acquired:
        assert acquired and legacy.try_lock(lock_id) is False
        assert legacy.try_lock(lock_id, shared=True) is False
    assert legacy.try_lock(lock_id) is True


def test_string_id(probe):
    with advisory_lock("some lock") as acquired:
        assert acquired is True
        assert django_holds() == [("some lock", False, 1)]
        assert not probe.free("some lock")
        assert probe.one("SELECT pg_try_advisory_lock(%s)", (pglocks.key("some lock"),)) is False
    assert django_holds() == []
    assert probe.free("some lock")


def test_integer_id(legacy):
    with advisory_lock(42) as acquired:
        assert acquired
        assert legacy.try_lock(42) is False
    assert legacy.try_lock(42) is True


def test_pair_id(probe):
    with advisory_lock((3, 4)) as acquired:
        assert acquired
        assert probe.one("SELECT pg_try_advisory_lock(3, 4)") is False
        assert django_holds() == [("3,4", False, 1)]
    assert probe.one("SELECT pg_try_advisory_lock(3, 4)") is True


def test_shared(probe):
    with advisory_lock("catalog", shared=True) as acquired:
        assert acquired
        with advisory_lock("catalog", shared=True) as again:
            assert again and django_holds() == [("catalog", True, 2)]
        assert probe.free("catalog", shared=True)
        assert not probe.free("catalog")
    assert django_holds() == []
    assert probe.free("catalog")


def test_wait_false(probe):
    probe.hold("busy")
    ran = False
    with advisory_lock("busy", wait=False) as acquired:
        ran = True
        assert acquired is False
    assert ran
    assert probe.one("SELECT holds FROM pglocks_held() WHERE key = 'busy'") == 1
    probe.unhold("busy")
    with advisory_lock("busy", wait=False) as acquired:
        assert acquired is True
        assert not probe.free("busy")
    assert probe.free("busy")


def test_positional_arguments_as_in_django_pglocks(probe, other_probe):
    # advisory_lock(lock_id, shared, wait, using), all positional, as django-pglocks allowed.
    with advisory_lock("pos", True, False, "other") as acquired:
        assert acquired
        assert other_probe.free("pos", shared=True) and not other_probe.free("pos")
        assert probe.free("pos")


def test_using(probe, other_probe):
    from ledger.models import Entry

    with advisory_lock("account:7", using="other") as acquired:
        assert acquired
        Entry.objects.using("other").create(account="7", amount=1)
        # advisory locks belong to a database: held in 'other', free in 'default'
        assert not other_probe.free("account:7")
        assert probe.free("account:7")
        assert django_holds("other") == [("account:7", False, 1)]
        assert django_holds("default") == []
    assert other_probe.free("account:7")
    assert Entry.objects.using("other").filter(account="7").count() == 1


def test_released_when_the_block_raises(probe):
    with pytest.raises(KeyError):
        with advisory_lock("boom"):
            raise KeyError("boom")
    assert django_holds() == []
    assert probe.free("boom")


def test_database_error_inside_atomic(probe):
    from django.db import IntegrityError, transaction

    from ledger.models import Entry

    with pytest.raises(IntegrityError):
        with transaction.atomic():
            Entry.objects.create(account="atomic", amount=1)
            with advisory_lock("account:atomic"):
                Entry.objects.create(account=None, amount=2)  # NOT NULL violation
    assert probe.free("account:atomic")
    assert Entry.objects.filter(account="atomic").count() == 0
    # the connection is usable afterwards
    assert django_holds() == []


def test_lock_inside_atomic_with_savepoints(probe):
    from django.db import IntegrityError, transaction

    from ledger.models import Entry

    with transaction.atomic():
        Entry.objects.create(account="outer", amount=1)
        with pytest.raises(IntegrityError):
            with transaction.atomic():
                with advisory_lock("account:outer"):
                    Entry.objects.create(account=None, amount=2)
        assert probe.free("account:outer")
        # rolled back to the inner block's savepoint, as Django does: the outer work stays
        Entry.objects.create(account="outer", amount=3)
    assert sorted(Entry.objects.filter(account="outer").values_list("amount", flat=True)) == [1, 3]


def test_deadlock_inside_atomic_keeps_the_connection(probe):
    """A deadlock ends the wait without the lock (it cannot follow a grant): inside atomic the
    driver's error goes up as Django wraps it, atomic rolls back, and the connection stays,
    with the lock it held before."""
    from django.db import OperationalError, connection, transaction

    other = None
    try:
        with advisory_lock("dj:d1") as acquired:
            assert acquired
            # The other side holds dj:d2 and waits for dj:d1 first; Django's side then asks
            # for dj:d2 and, checking after a second, finds the deadlock.
            other = OtherSide(probe, "dj:d2", "dj:d1")
            other.wait_for()
            with pytest.raises(OperationalError) as info:
                with transaction.atomic():
                    with connection.cursor() as c:
                        c.execute("SET LOCAL deadlock_timeout = '1s'")
                    with advisory_lock("dj:d2"):
                        pytest.fail("the block must not run")
            assert sqlstate(info.value.__cause__) == "40P01"  # deadlock_detected
            # The same connection, usable, still holding only what it held before.
            assert django_holds() == [("dj:d1", False, 1)]
        other.finish()
        assert django_holds() == []
    finally:
        if other is not None:
            other.close()


def test_timeout(probe):
    probe.hold("slow")

    def attempt():
        with advisory_lock("slow", timeout=0.3) as acquired:
            return acquired

    acquired, waited = elapsed(attempt)
    assert acquired is False and 0.25 <= waited < 5


def test_crc32_keys_of_1x(legacy):
    from django.test import override_settings

    lock_id = django_pglocks_1x_id("orders:42")
    with advisory_lock("orders:42", string_keys="crc32") as acquired:
        assert acquired
        assert legacy.try_lock(lock_id) is False
        assert legacy.try_lock(django_pglocks_2x_id("orders:42")) is True
        assert django_holds() == [(str(lock_id), False, 1)]
    with override_settings(PGLOCKS_STRING_KEYS="crc32"):
        with advisory_lock("x"):
            assert legacy.try_lock(django_pglocks_1x_id("x")) is False
    assert legacy.try_lock(lock_id) is True
    with pytest.raises(ValueError):
        advisory_lock("x", string_keys="md5")


def test_management_command_in_another_process(probe):
    from ledger.models import Entry

    env = dict(os.environ, PYTHONPATH=os.pathsep.join([os.path.dirname(os.path.dirname(pglocks.__file__)), PROJECT]))

    def post(*args):
        r = subprocess.run(
            [sys.executable, os.path.join(PROJECT, "manage.py"), "post_entry", *args],
            env=env, capture_output=True, text=True, timeout=60,
        )
        assert r.returncode == 0, r.stderr
        return r.stdout.strip()

    with advisory_lock("account:cmd") as acquired:
        assert acquired
        assert post("cmd", "5") == "busy"
        assert post("cmd", "5", "--timeout", "0.2") == "busy"
    assert post("cmd", "5") == "posted"
    assert Entry.objects.filter(account="cmd").count() == 1
    probe.hold("account:cmd")
    threading.Timer(0.5, probe.unhold, ("account:cmd",)).start()
    assert post("cmd", "6", "--timeout", "20") == "posted"
    assert Entry.objects.filter(account="cmd").count() == 2


# --- a decorator, bad ids, and closing the connection in the block -------------------------


def test_as_a_decorator(probe):
    from pglocks.django import advisory_lock as real_advisory_lock

    calls = []

    @real_advisory_lock("decorated")
    def job(n):
        calls.append(n)
        assert not probe.free("decorated")
        assert django_holds() == [("decorated", False, 1)]
        return n * 2

    assert job(21) == 42
    assert probe.free("decorated")
    assert job(1) == 2 and calls == [21, 1]

    @real_advisory_lock("decorated", wait=False)
    def fails():
        raise KeyError("x")

    with pytest.raises(KeyError):
        fails()
    assert django_holds() == []


def test_decorated_function_called_from_another_thread():
    # The connection is looked up at each call, in the calling thread: Django's connections
    # are per thread, and the decorator is made once, at import time.
    from django.db import connections

    from pglocks.django import advisory_lock as real_advisory_lock

    @real_advisory_lock("threaded")
    def job():
        return django_holds()

    assert job() == [("threaded", False, 1)]
    results, errors = [], []

    def other():
        try:
            results.append(job())
        except Exception as exc:  # reported below
            errors.append(exc)
        finally:
            connections.close_all()

    t = threading.Thread(target=other)
    t.start()
    t.join(30)
    assert errors == [] and results == [[("threaded", False, 1)]]


def test_one_object_entered_twice():
    from pglocks.django import advisory_lock as real_advisory_lock

    cm = real_advisory_lock("twice")
    with cm as first:
        with cm as second:
            assert first and second and django_holds() == [("twice", False, 2)]
        assert django_holds() == [("twice", False, 1)]
    assert django_holds() == []


def test_lock_on_django_db_connection_proxy(probe):
    # django.db.connection is a ConnectionProxy of connections["default"]
    from django.db import connection

    with pglocks.lock(connection, "proxy") as acquired:
        assert acquired
        assert django_holds() == [("proxy", False, 1)]
        assert not probe.free("proxy")
    assert probe.free("proxy")
    assert pglocks.acquire(connection, "proxy")
    assert pglocks.release(connection, "proxy")
    assert pglocks.with_lock(connection, "proxy", "SELECT 1") is True


def test_one_object_used_in_with_by_two_threads(probe):
    # A module-level advisory_lock(...) object entered by two threads at once: each thread's
    # exit releases its own entry, on its own thread's connection.
    from django.db import connections

    from pglocks.django import advisory_lock as real_advisory_lock

    job = real_advisory_lock("shared-object", shared=True)
    a_in, a_out = threading.Event(), threading.Event()
    seen, errors = [], []

    def thread_a():
        try:
            with job:
                a_in.set()
                assert b_in.wait(10)
            a_out.set()
        except Exception as exc:  # reported below
            errors.append(exc)
        finally:
            connections.close_all()

    b_in = threading.Event()

    def thread_b():
        try:
            assert a_in.wait(10)
            with job:
                b_in.set()
                assert a_out.wait(10)
                seen.append(django_holds())  # still held by B, after A left
            seen.append(django_holds())
        except Exception as exc:  # reported below
            errors.append(exc)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=thread_a), threading.Thread(target=thread_b)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert errors == []
    assert seen == [[("shared-object", True, 1)], []]
    assert probe.free("shared-object")


@pytest.mark.parametrize(
    "lock_id",
    [1.5, None, True, b"bytes", (1, 2, 3), (1,), ("a", "b"), (1, 1 << 31), (-(1 << 31) - 1, 0), 1 << 63, [1, "x"], {1: 2}],
)
def test_bad_lock_ids_raise_value_error(lock_id):
    from pglocks.django import advisory_lock as real_advisory_lock

    with pytest.raises(ValueError):
        with real_advisory_lock(lock_id):
            pytest.fail("the block must not run")
    assert django_holds() == []


def test_connection_closed_in_the_block(probe):
    from django.db import connection

    with advisory_lock("closed-in-block") as acquired:
        assert acquired
        connection.close()
    for _ in range(200):
        if probe.free("closed-in-block"):
            break
        time.sleep(0.05)
    assert probe.free("closed-in-block")
    assert django_holds() == []  # Django connects again


def test_connection_closed_in_the_block_into_a_pool(probe, monkeypatch):
    # With a connection pool (Django 5.1), close() gives the DBAPI connection back to the
    # pool open, with the lock. As a pool does, this close() keeps the connection open: the
    # release must still reach it.
    from django.db import connection

    pool = []

    def into_the_pool():
        pool.append(connection.connection)

    monkeypatch.setattr(connection, "_close", into_the_pool)
    try:
        with advisory_lock("pooled") as acquired:
            assert acquired
            connection.close()
            assert connection.connection is None and not pool[0].closed
            assert not probe.free("pooled")
        assert probe.free("pooled")
        cur = pool[0].cursor()
        cur.execute("SELECT count(*) FROM pglocks_held()")
        assert cur.fetchone()[0] == 0
    finally:
        for raw in pool:
            raw.close()


def test_decorated_function_called_from_many_threads_at_once(probe):
    # One decorator object, called by several threads at the same moment: each call has its
    # own entry and its own thread's connection; the calls exclude one another, each
    # releases its own hold, and nothing is left held.
    from django.db import connections

    from pglocks.django import advisory_lock as real_advisory_lock

    inside = []
    overlaps = []
    start = threading.Barrier(4)

    @real_advisory_lock("many-threads")
    def job(n):
        inside.append(n)
        if len(inside) > 1:
            overlaps.append(list(inside))
        held = django_holds()
        time.sleep(0.05)
        inside.remove(n)
        return held

    results, errors = [], []

    def worker(n):
        try:
            start.wait(10)
            for _ in range(3):
                results.append(job(n))
        except BaseException as exc:  # reported below
            errors.append(exc)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not any(t.is_alive() for t in threads)
    assert errors == []
    assert overlaps == []
    assert results == [[("many-threads", False, 1)]] * 12
    assert probe.free("many-threads")


def test_decorating_an_async_function_is_refused():
    from pglocks.django import advisory_lock as real_advisory_lock

    with pytest.raises(TypeError, match="async function"):

        @real_advisory_lock("async")
        async def job():
            pass

    with pytest.raises(TypeError, match="async function"):

        @real_advisory_lock("async-gen")
        async def agen():
            yield 1

    assert django_holds() == []
