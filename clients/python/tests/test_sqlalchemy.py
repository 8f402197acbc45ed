"""pglocks.lock and with_lock on a SQLAlchemy Connection and Session."""

import psycopg2
import pytest
import sqlalchemy
from sqlalchemy import Column, Integer, String, text
from sqlalchemy.orm import Session, declarative_base

import pglocks
from conftest import OtherSide, rewrite_scalar, sqlstate
from test_lock import wait_until_free

Base = declarative_base()


class Job(Base):
    __tablename__ = "pglocks_sa_jobs"
    id = Column(Integer, primary_key=True)
    name = Column(String, nullable=False)


@pytest.fixture(params=["legacy", "future"])
def engine(request):
    # The libpq environment names the server: let psycopg2 read it.
    e = sqlalchemy.create_engine(
        "postgresql+psycopg2://", creator=lambda: psycopg2.connect(""), future=request.param == "future"
    )
    Base.metadata.create_all(e)
    with e.begin() as c:
        c.execute(text("DELETE FROM pglocks_sa_jobs"))
    yield e
    e.dispose()


def sa_holds(conn):
    return [tuple(r) for r in conn.execute(text("SELECT key, holds FROM pglocks_held() ORDER BY key"))]


def test_connection(engine, probe):
    with engine.connect() as conn:
        with pglocks.lock(conn, "sa:report") as acquired:
            assert acquired
            assert not probe.free("sa:report")
            assert sa_holds(conn) == [("sa:report", 1)]
        assert probe.free("sa:report")
        with pytest.raises(RuntimeError):
            with pglocks.lock(conn, (5, 6)):
                raise RuntimeError
        assert probe.free((5, 6))
        assert sa_holds(conn) == []


def test_connection_try_and_timeout(engine, probe):
    probe.hold("sa:busy")
    with engine.connect() as conn:
        with pglocks.lock(conn, "sa:busy", wait=False) as acquired:
            assert acquired is False
        with pglocks.lock(conn, "sa:busy", timeout=0.2) as acquired:
            assert acquired is False
        assert pglocks.with_lock(conn, "sa:busy", "SELECT 1", wait=False) is False
    probe.unhold("sa:busy")


def test_connection_in_a_transaction_that_fails(engine, probe):
    with engine.connect() as conn:
        with pytest.raises(sqlalchemy.exc.IntegrityError):
            with conn.begin():
                with pglocks.lock(conn, "sa:tx"):
                    conn.execute(text("INSERT INTO pglocks_sa_jobs (name) VALUES (NULL)"))
        assert probe.free("sa:tx")
        assert sa_holds(conn) == []


def test_transaction_scope_on_a_connection(engine, probe):
    with engine.connect() as conn:
        with conn.begin():
            with pglocks.lock(conn, "sa:t", scope="transaction"):
                assert not probe.free("sa:t")
            assert probe.free("sa:t")
            with pglocks.lock(conn, "sa:t", scope="transaction"):
                pass
        assert probe.free("sa:t")


def test_with_lock_on_a_connection(engine):
    with engine.connect() as conn:
        assert pglocks.with_lock(conn, "sa:w", "INSERT INTO pglocks_sa_jobs (name) VALUES ($1)", ["built"])
        assert conn.execute(text("SELECT name FROM pglocks_sa_jobs")).scalar() == "built"


def test_session(engine, probe):
    with Session(engine) as session:
        with pglocks.lock(session, "sa:job") as acquired:
            assert acquired
            session.add(Job(name="one"))
            session.flush()
            assert not probe.free("sa:job")
        assert probe.free("sa:job")
        session.commit()
    with Session(engine) as session:
        assert session.query(Job).count() == 1


def test_session_that_commits_inside_the_block(engine, probe):
    # The commit gives the session's connection back to the pool; the release still
    # reaches the database session that holds the lock.
    with Session(engine) as session:
        with pglocks.lock(session, "sa:job") as acquired:
            assert acquired
            session.add(Job(name="two"))
            session.commit()
            assert not probe.free("sa:job")
            session.add(Job(name="three"))
            session.commit()
        assert probe.free("sa:job")
    with engine.connect() as conn:
        assert sa_holds(conn) == []
        assert conn.execute(text("SELECT count(*) FROM pglocks_sa_jobs")).scalar() == 2


def test_session_body_fails(engine, probe):
    with Session(engine) as session:
        with pytest.raises(sqlalchemy.exc.IntegrityError):
            with pglocks.lock(session, "sa:job"):
                session.add(Job(name=None))
                session.flush()
        assert probe.free("sa:job")
        session.rollback()
        assert session.query(Job).count() == 0


def test_engine_is_refused(engine):
    with pytest.raises(TypeError, match="Connection or Session"):
        pglocks.acquire(engine, "x")


def test_lock_leaves_the_callers_transaction_to_the_caller(engine, probe):
    with engine.connect() as conn:
        tx = conn.begin()
        with pglocks.lock(conn, "sa:mine"):
            conn.execute(text("INSERT INTO pglocks_sa_jobs (name) VALUES ('undone')"))
        assert probe.free("sa:mine")
        tx.rollback()
        assert conn.execute(text("SELECT count(*) FROM pglocks_sa_jobs")).scalar() == 0
    with engine.connect() as conn:
        with pglocks.lock(conn, "sa:idle"):
            pass
        # no transaction left open by the lock's own statements
        assert pglocks._conn.raw_status(conn.connection.dbapi_connection) == pglocks._conn.IDLE


def test_session_commit_in_the_block_gives_back_a_connection_without_the_lock(engine, probe):
    # The Session's commit gives its connection back to the pool; the lock is on a
    # connection of the block's own, so the next checkout gets a connection holding nothing.
    with Session(engine) as session:
        with pglocks.lock(session, "sa:pooled") as acquired:
            assert acquired
            session.add(Job(name="one"))
            session.commit()
            with engine.connect() as other:
                assert sa_holds(other) == []
            assert not probe.free("sa:pooled")
        assert probe.free("sa:pooled")


def test_session_commit_in_the_block_with_null_pool(probe):
    # With NullPool the Session's commit closes its connection: the lock must survive that.
    e = sqlalchemy.create_engine(
        "postgresql+psycopg2://", creator=lambda: psycopg2.connect(""), poolclass=sqlalchemy.pool.NullPool
    )
    Base.metadata.create_all(e)
    try:
        with Session(e) as session:
            with pglocks.lock(session, "sa:nullpool"):
                session.add(Job(name="null"))
                session.commit()
                assert not probe.free("sa:nullpool")
                session.add(Job(name="pool"))
                session.commit()
                assert not probe.free("sa:nullpool")
            assert probe.free("sa:nullpool")
        with e.connect() as conn:
            conn.execute(text("DELETE FROM pglocks_sa_jobs WHERE name IN ('null', 'pool')"))
            if hasattr(conn, "commit"):
                conn.commit()
    finally:
        e.dispose()


def test_nested_blocks_on_a_session_count_holds_on_one_connection(engine, probe):
    with Session(engine) as session:
        with pglocks.lock(session, "sa:nested"):
            with pglocks.lock(session, "sa:nested", wait=False) as again:
                assert again is True  # the same database session: a second hold, not a wait
            assert not probe.free("sa:nested")
        assert probe.free("sa:nested")
        assert "pglocks.connection" not in session.info  # given back at the end


def test_session_lock_functions_on_a_session_are_refused(engine):
    with Session(engine) as session:
        with pytest.raises(TypeError, match="Session"):
            pglocks.acquire(session, "x")
        with pytest.raises(TypeError, match="Session"):
            pglocks.release(session, "x")


def test_transaction_scope_on_a_session(engine, probe):
    with Session(engine) as session:
        assert pglocks.acquire(session, "sa:tx-scope", scope="transaction")
        assert not probe.free("sa:tx-scope")
        session.commit()
        assert probe.free("sa:tx-scope")
        with pglocks.lock(session, "sa:tx-scope", scope="transaction"):
            assert not probe.free("sa:tx-scope")
        assert probe.free("sa:tx-scope")
        session.rollback()


def test_session_bound_to_a_connection_uses_it(engine, probe):
    with engine.connect() as conn:
        with Session(bind=conn) as session:
            with pglocks.lock(session, "sa:bound"):
                assert sa_holds(conn) == [("sa:bound", 1)]
                assert not probe.free("sa:bound")
            assert probe.free("sa:bound")
            assert "pglocks.connection" not in session.info


def session_backend(session):
    return session.execute(text("SELECT pg_backend_pid()")).scalar()


def test_session_block_work_runs_on_the_locks_connection(engine, probe):
    # The block's statements through the Session run in the database session that holds
    # the lock: they see the hold, a with_lock on the same lock through the Session counts
    # a second hold instead of waiting, and a commit in the block keeps both together.
    with Session(engine) as session:
        with pglocks.lock(session, "sa:same") as acquired:
            assert acquired
            assert sa_holds(session) == [("sa:same", 1)]
            pid = session_backend(session)
            assert probe.one(
                "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND granted AND pid = %s", (pid,)
            ) == 1
            assert pglocks.with_lock(session, "sa:same", "SELECT 1", wait=False) is True
            session.add(Job(name="same"))
            session.commit()
            assert session_backend(session) == pid  # still the lock's connection after the commit
            assert sa_holds(session) == [("sa:same", 1)]
            assert not probe.free("sa:same")
        assert probe.free("sa:same")
        # after the block, the Session is bound to its engine again
        assert session.get_bind() is engine
    with Session(engine) as session:
        assert session.query(Job).filter_by(name="same").count() == 1


def test_session_block_work_left_for_a_commit_after_the_block(engine, probe):
    with Session(engine) as session:
        with pglocks.lock(session, "sa:later"):
            session.add(Job(name="later"))
            session.flush()
            pid = session_backend(session)
        assert probe.free("sa:later")
        assert session_backend(session) == pid  # the transaction goes on, on that connection
        session.commit()
        assert session.query(Job).filter_by(name="later").count() == 1
    assert probe.free("sa:later")


def test_session_already_in_a_transaction_is_refused(engine, probe):
    # A commit in the block would give the Session's connection back to the pool, the
    # lock still held on it: refused before anything is taken.
    with Session(engine) as session:
        session_backend(session)  # the Session's transaction has its connection
        with pytest.raises(ValueError, match="already has a connection"):
            with pglocks.lock(session, "sa:in-tx"):
                pytest.fail("the block must not run")
        assert probe.free("sa:in-tx")
        assert sa_holds(session) == []
        session.rollback()


def test_session_block_on_a_session_whose_transaction_has_a_connection_is_refused(probe):
    e = sqlalchemy.create_engine("postgresql+psycopg2://", creator=lambda: psycopg2.connect(""), pool_size=1, max_overflow=0)
    try:
        with Session(e) as session:
            session.execute(text("SELECT 1"))  # the transaction has its connection
            with pytest.raises(ValueError, match="already has a connection"):
                with pglocks.lock(session, "sa:in-use"):
                    session.commit()  # would give the connection back with the lock
            assert probe.free("sa:in-use")
            # transaction scope is fine: the hold ends with the transaction
            with pglocks.lock(session, "sa:in-use", scope="transaction"):
                assert not probe.free("sa:in-use")
            session.commit()
        assert probe.free("sa:in-use")
    finally:
        e.dispose()


def test_connection_closed_in_the_block_is_invalidated_not_used(probe):
    e = sqlalchemy.create_engine(
        "postgresql+psycopg2://", creator=lambda: psycopg2.connect(""), pool_size=1, max_overflow=0, future=True
    )
    try:
        c = e.connect()
        with pytest.raises(pglocks.ReleaseFailed) as info:
            with pglocks.lock(c, "sa:closed"):
                c.close()  # back to the pool, the lock held
        assert info.value.connection_closed is True
        assert wait_until_free(probe, "sa:closed")
        with e.connect() as other:  # the pool replaced the invalidated connection
            assert sa_holds(other) == []
    finally:
        e.dispose()


def test_connection_closed_in_the_block_no_release_on_another_checkout(probe):
    e = sqlalchemy.create_engine(
        "postgresql+psycopg2://", creator=lambda: psycopg2.connect(""), pool_size=1, max_overflow=0, future=True
    )
    try:
        c = e.connect()
        other = None
        with pytest.raises(pglocks.ReleaseFailed):
            with pglocks.lock(c, "sa:closed"):
                c.close()
                other = e.connect()  # the same DBAPI connection, with the lock
                other.exec_driver_sql("SELECT 1")  # its transaction
        # pglocks sent nothing on other's connection: it was invalidated (closed) instead
        assert other.connection.dbapi_connection is None or other.connection.dbapi_connection.closed
        assert wait_until_free(probe, "sa:closed")
    finally:
        e.dispose()


def test_deadlock_in_a_transaction_keeps_the_connection(engine, probe):
    """A deadlock cannot follow a grant: the acquire's error is raised as it is and the
    connection, whose transaction the caller rolls back, stays usable (not invalidated)."""
    other = None
    try:
        with engine.connect() as conn:
            assert pglocks.acquire(conn, "sa:d1")
            # The other side holds sa:d2 and waits for sa:d1 first; the SQLAlchemy side then
            # asks for sa:d2 and, checking after a second, finds the deadlock.
            other = OtherSide(probe, "sa:d2", "sa:d1")
            other.wait_for()
            with pytest.raises(sqlalchemy.exc.OperationalError) as info:
                with conn.begin():
                    conn.exec_driver_sql("SET LOCAL deadlock_timeout = '1s'")
                    with pglocks.lock(conn, "sa:d2"):
                        pytest.fail("the block must not run")
            assert sqlstate(info.value.orig) == "40P01"  # deadlock_detected
            assert conn.invalidated is False
            assert pglocks.release(conn, "sa:d1")  # lets the other side go on
            other.finish()
            assert sa_holds(conn) == []
    finally:
        if other is not None:
            other.close()


@pytest.mark.parametrize("setting", ["SET lock_timeout = '200ms'", "SET pglocks.session_locks = deny"])
def test_error_before_the_grant_in_a_transaction_keeps_the_connection(engine, probe, setting):
    """A lock_timeout (the wait ends without the lock) and a refusal of pglocks' own come
    before any grant: the transaction is the caller's to roll back, the connection stays."""
    probe.hold("sa:busy-tx")
    try:
        with engine.connect() as conn:
            with pytest.raises(sqlalchemy.exc.DBAPIError) as info:
                with conn.begin():
                    conn.execute(text(setting))  # in the transaction, which it begins
                    with pglocks.lock(conn, "sa:busy-tx"):
                        pytest.fail("the block must not run")
            assert info.value.orig.pgcode in ("55P03", "55000")
            assert conn.invalidated is False
            assert sa_holds(conn) == []
    finally:
        probe.unhold("sa:busy-tx")


def test_session_block_whose_acquire_is_cancelled_gives_its_connection_back(probe, monkeypatch):
    """A session-scope block on a Session checks out a connection of its own; when the acquire
    fails (a statement_timeout after the grant), the connection goes back to the pool and
    no hold is left."""
    e = sqlalchemy.create_engine(
        "postgresql+psycopg2://", creator=lambda: psycopg2.connect("", options="-c statement_timeout=300"),
        pool_size=2, max_overflow=0, future=True,
    )
    try:
        with e.connect() as warm:  # the first connection's own queries, before the timeout matters
            warm.execute(text("SELECT 1"))
        with Session(e) as session:
            rewrite_scalar(monkeypatch, "acquire", lambda sql: sql + ", pg_catalog.pg_sleep(1.5)")
            with pytest.raises(sqlalchemy.exc.OperationalError) as info:
                with pglocks.lock(session, "sa:cancelled-session"):
                    pytest.fail("the block must not run")
            monkeypatch.undo()
            assert info.value.orig.pgcode == "57014"
            assert e.pool.checkedout() == 0  # given back at the block's end, not the Session's
            assert session.get_bind() is e
            assert session.execute(text("SELECT 1")).scalar() == 1
        assert e.pool.checkedout() == 0
        assert probe.free("sa:cancelled-session")
    finally:
        e.dispose()


def test_session_block_whose_body_fails_leaves_the_session_transaction_to_the_session(engine, probe):
    """An SQL error in the body of a session-scope block on a Session inside session.begin():
    the lock is released, and the Session's transaction on the block's connection is the
    Session's to roll back, without a warning."""
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error", sqlalchemy.exc.SAWarning)
        with Session(engine) as session:
            with pytest.raises(sqlalchemy.exc.DataError):
                with session.begin():
                    with pglocks.lock(session, "sa:body-error"):
                        session.execute(text("SELECT 1/0"))
            assert probe.free("sa:body-error")
            assert engine.pool.checkedout() == 0  # given back when the Session's transaction ended
            assert session.execute(text("SELECT 1")).scalar() == 1
            session.rollback()


def test_session_block_in_autocommit_gives_its_connection_back(probe):
    """With an AUTOCOMMIT engine, the block's connection has a transaction of SQLAlchemy's
    that the Session does not hold: it goes back to the pool at the block's end."""
    e = sqlalchemy.create_engine(
        "postgresql+psycopg2://", creator=lambda: psycopg2.connect(""), isolation_level="AUTOCOMMIT",
        pool_size=2, max_overflow=0, pool_timeout=2, future=True,
    )
    try:
        with Session(e) as session:
            for _ in range(3):  # more blocks than the pool has connections
                with pglocks.lock(session, "sa:autocommit") as acquired:
                    assert acquired
                    assert not probe.free("sa:autocommit")
                assert probe.free("sa:autocommit")
                assert e.pool.checkedout() == 0
            with pglocks.lock(session, "sa:autocommit"):
                assert session.execute(text("SELECT 1")).scalar() == 1
            session.commit()
            assert e.pool.checkedout() == 0
    finally:
        e.dispose()


def test_session_block_work_kept_for_the_commit_after_it_scoped_and_with_options(engine, probe):
    """The block's work stays in the Session's transaction, to be committed after the block,
    on a scoped_session and when the body's first use of the Session is a connection with
    execution options (a copy of the block's Connection on a legacy engine)."""
    from sqlalchemy.orm import scoped_session, sessionmaker

    factory = scoped_session(sessionmaker(bind=engine))
    try:
        session = factory
        with pglocks.lock(session, "sa:kept-scoped"):
            session.add(Job(name="scoped"))
            session.flush()
        session.commit()
        assert engine.pool.checkedout() == 0
    finally:
        factory.remove()
    # What the block listened for was its own Session's, not every Session of the factory.
    fresh = factory.session_factory()
    try:
        assert list(fresh.dispatch.after_transaction_end) == []
    finally:
        fresh.close()
    with Session(engine) as session:
        with pglocks.lock(session, "sa:kept-options"):
            c = session.connection(execution_options={"isolation_level": "REPEATABLE READ"})
            c.execute(text("INSERT INTO pglocks_sa_jobs (name) VALUES ('options')"))
        session.commit()
        assert engine.pool.checkedout() == 0
    with engine.connect() as conn:
        names = sorted(r[0] for r in conn.execute(text("SELECT name FROM pglocks_sa_jobs")))
    assert names == ["options", "scoped"]
    assert probe.free("sa:kept-scoped") and probe.free("sa:kept-options")
