'use strict';

// withLock and the other calls when something goes wrong around the lock: an SQL error of
// fn inside the caller's transaction block, a hold that cannot be released, and a statement
// that fails on the client side (node-postgres' query_timeout) before the server answers.

const assert = require('node:assert/strict');
const { test, after } = require('node:test');
const pglocks = require('..');
const { LockNotReleasedError, ConnectionClosedError, TransactionAbortedError, UnsupportedClientError } = pglocks;
const {
  connect, pool, closeAll, one, held, freeFor, backendGone, advisoryLocksOf,
} = require('./helpers');

after(closeAll);

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

async function rowsOf(client, table) {
  const { rows } = await client.query({ text: `SELECT v FROM ${table} ORDER BY v`, rowMode: 'array' });
  return rows.map((r) => r[0]);
}

test("inside the caller's BEGIN, an SQL error in fn is rolled back to a savepoint and the lock released", async () => {
  const a = await connect();
  const b = await connect();
  const k = 'wlf:savepoint';
  await a.query('BEGIN');
  await a.query('CREATE TEMP TABLE wlf_sp (v int) ON COMMIT DROP');
  await a.query('INSERT INTO wlf_sp VALUES (1)');
  // fn's own error, unchanged; what fn wrote is undone, the caller's transaction goes on.
  await assert.rejects(pglocks.withLock(a, k, async (c) => {
    await c.query('INSERT INTO wlf_sp VALUES (2)');
    await c.query('SELECT 1/0');
  }), { code: '22012' });
  assert.equal(a.getTransactionStatus(), 'T');
  assert.deepEqual(await held(a), []);
  assert.equal(await freeFor(b, pglocks.key(k)), true);
  assert.deepEqual(await rowsOf(a, 'wlf_sp'), [1]);
  // A JavaScript error of fn after its writes undoes them too.
  await assert.rejects(pglocks.withLock(a, k, async (c) => {
    await c.query('INSERT INTO wlf_sp VALUES (3)');
    throw new Error('job failed');
  }), /job failed/);
  assert.deepEqual(await rowsOf(a, 'wlf_sp'), [1]);
  assert.deepEqual(await held(a), []);
  // Success keeps fn's work and leaves no savepoint behind (RELEASE of the caller's own
  // savepoint finds it, not one of withLock's).
  await a.query('SAVEPOINT caller');
  assert.equal(await pglocks.withLock(a, k, async (c) => {
    assert.equal(await freeFor(b, pglocks.key(k)), false);
    await c.query('INSERT INTO wlf_sp VALUES (4)');
    // Nested: the inner failure is rolled back to the inner savepoint only.
    await assert.rejects(pglocks.withLock(c, 'wlf:inner', async () => {
      await c.query('INSERT INTO wlf_sp VALUES (5)');
      await c.query('SELECT 1/0');
    }), { code: '22012' });
    return 'done';
  }), 'done');
  await a.query('RELEASE SAVEPOINT caller');
  // Each call took its mark off the transaction when it ended (the marks of calls that ended
  // do not pile up in a long transaction).
  assert.equal(await one(a, "SELECT current_setting('pglocks_node.savepoints', true)"), '');
  await a.query('ROLLBACK');
  await a.query('BEGIN');
  await a.query('CREATE TEMP TABLE wlf_sp (v int) ON COMMIT DROP');
  await pglocks.withLock(a, k, (c) => c.query('INSERT INTO wlf_sp VALUES (4)'));
  assert.deepEqual(await rowsOf(a, 'wlf_sp'), [4]);
  await a.query('COMMIT');
  assert.deepEqual(await held(a), []);
  assert.equal(await freeFor(b, pglocks.key(k)), true);
});

// The status node-postgres reports is the last ReadyForQuery's: right after fn's failed
// query it may still say 'T', so withLock waits for the connection to be ready before it reads it.
test('fn that returns after catching an SQL error in the block: rolled back, released, TransactionAbortedError', async () => {
  const a = await connect();
  const b = await connect();
  const k = 'wlf:caught';
  await a.query('BEGIN');
  await a.query('CREATE TEMP TABLE wlf_caught (v int) ON COMMIT DROP');
  await assert.rejects(pglocks.withLock(a, k, async (c) => {
    await c.query('INSERT INTO wlf_caught VALUES (1)');
    await c.query('SELECT 1/0').catch(() => {});
    return 'looks fine';
  }), (e) => e instanceof TransactionAbortedError && e.code === '25P02' && e.key === k);
  assert.equal(a.getTransactionStatus(), 'T');
  assert.deepEqual(await rowsOf(a, 'wlf_caught'), []);
  assert.deepEqual(await held(a), []);
  assert.equal(await freeFor(b, pglocks.key(k)), true);
  await a.query('ROLLBACK');
});

test('fn that ends the transaction itself: the lock is released all the same', async () => {
  const a = await connect();
  const b = await connect();
  const k = 'wlf:commit-inside';
  for (const end of ['COMMIT', 'ROLLBACK']) {
    await a.query('BEGIN');
    await pglocks.withLock(a, k, (c) => c.query(end));
    assert.equal(a.getTransactionStatus(), 'I', end);
    assert.deepEqual(await held(a), [], end);
    assert.equal(await freeFor(b, pglocks.key(k)), true, end);
  }
});

test('a hold that cannot be released rejects with LockNotReleasedError (lockStillHeld)', async () => {
  const a = await connect();
  const b = await connect();
  const k = 'wlf:kept';
  // fn opens a transaction block itself and leaves it aborted: no savepoint of withLock's
  // covers it, the release cannot run, the session keeps the lock.
  const err = await pglocks.withLock(a, k, async (c) => {
    await c.query('BEGIN');
    await c.query('SELECT 1/0');
  }).then(() => assert.fail('resolved'), (e) => e);
  assert.ok(err instanceof LockNotReleasedError);
  assert.equal(err.code, 'PGLOCKS_NOT_RELEASED');
  assert.equal(err.lockStillHeld, true);
  assert.equal(err.key, k);
  assert.equal(err.cause.code, '22012');
  assert.equal(err.releaseError.code, '25P02');
  assert.match(err.message, /wlf:kept.*still holds it/);
  await a.query('ROLLBACK');
  assert.deepEqual(await held(a), [[k, false, 'session', 1]]);
  assert.equal(await freeFor(b, pglocks.key(k)), false);
  assert.equal(await pglocks.release(a, k), true);
  // fn that returns with the block aborted: the rejection's cause is the release's error.
  const err2 = await pglocks.withLock(a, k, async (c) => {
    await c.query('BEGIN');
    await c.query('SELECT 1/0').catch(() => {});
  }).then(() => assert.fail('resolved'), (e) => e);
  assert.ok(err2 instanceof LockNotReleasedError);
  assert.equal(err2.lockStillHeld, true);
  assert.equal(err2.cause.code, '25P02');
  await a.query('ROLLBACK');
  assert.equal(await pglocks.release(a, k), true);
});

test('a pool client that kept a hold is closed when given back, not reused with the lock', async () => {
  const p = pool({ max: 1 });
  const b = await connect();
  const k = 'wlf:pool-kept';
  const client = await p.connect();
  const pid = client.processID;
  const err = await pglocks.withLock(client, k, async (c) => {
    await c.query('BEGIN');
    await c.query('SELECT 1/0');
  }).then(() => assert.fail('resolved'), (e) => e);
  assert.ok(err instanceof LockNotReleasedError);
  assert.equal(err.lockStillHeld, true);
  assert.equal(await freeFor(b, pglocks.key(k)), false);
  client.release();   // the caller's ordinary release
  assert.ok(await backendGone(b, pid), 'the connection that kept the lock was closed');
  assert.equal(await freeFor(b, pglocks.key(k)), true);
  const next = await p.connect();
  assert.notEqual(next.processID, pid);
  assert.deepEqual(await held(next), []);
  next.release();

  // withLock given the pool closes that connection itself before it rejects.
  const err2 = await pglocks.withLock(p, k, async (c) => {
    await c.query('BEGIN');
    await c.query('SELECT 1/0');
  }).then(() => assert.fail('resolved'), (e) => e);
  assert.ok(err2 instanceof LockNotReleasedError);
  assert.equal(err2.lockStillHeld, false);
  assert.match(err2.message, /connection was closed/);
  assert.equal(err2.cause.code, '22012');
  assert.equal(p.totalCount, 0);
  assert.equal(await freeFor(b, pglocks.key(k)), true);
});

// node-postgres' query_timeout rejects the query in the client while the server goes on
// waiting in the lock queue; left alone, the server would grant the lock later to a
// session that the caller goes on using.
test('an acquire that fails on the client side closes the connection: nothing is granted later', async () => {
  const a = await connect();
  const observer = await connect();
  const k = 'wlf:client-timeout';
  assert.equal(await pglocks.acquire(a, k), true);
  const calls = [
    ['acquire', (c) => pglocks.acquire(c, k)],
    ['tryLock', (c) => pglocks.tryLock(c, k, { timeout: '1 minute' })],
    ['withLock', (c) => pglocks.withLock(c, k, () => assert.fail('fn ran'))],
  ];
  for (const [what, call] of calls) {
    const b = await connect({ query_timeout: 500 });
    const pid = b.processID;
    const err = await call(b).then(() => assert.fail(`${what} resolved`), (e) => e);
    // Nothing held, nothing waiting: the backend is gone while a still holds the lock.
    assert.ok(await backendGone(observer, pid), `${what}: the backend of the timed-out acquire is still there`);
    assert.deepEqual(await advisoryLocksOf(observer, pid), []);
    await assert.rejects(b.query('SELECT 1'));
    assert.equal(err.code, 'PGLOCKS_CONNECTION_CLOSED', `${what}: ${err}`);
    assert.ok(err instanceof ConnectionClosedError);
    assert.equal(err.key, k);
    assert.match(err.cause.message, /timeout/i);
    assert.match(err.message, new RegExp(`pglocks ${what}\\(\\).*connection was closed`));
  }
  // Released by a, the lock is free: no session of the timed-out acquires takes it.
  assert.equal(await pglocks.release(a, k), true);
  await sleep(100);
  assert.equal(await freeFor(observer, pglocks.key(k)), true);
});

test('withLock on a pool: an acquire timed out in the client closes that connection', async () => {
  const a = await connect();
  const observer = await connect();
  const k = 'wlf:pool-timeout';
  // Over TCP this time (the other tests use the server's Unix socket), the cancel request too.
  const p = pool({ max: 1, query_timeout: 500, host: '127.0.0.1' });
  assert.equal(await pglocks.acquire(a, k), true);
  const pids = [];
  p.on('connect', (c) => pids.push(c.processID));
  await assert.rejects(pglocks.withLock(p, k, () => assert.fail('fn ran')), ConnectionClosedError);
  assert.equal(p.totalCount, 0);
  assert.equal(pids.length, 1);
  assert.ok(await backendGone(observer, pids[0]), 'the backend of the timed-out acquire is still there');
  assert.equal(await pglocks.release(a, k), true);
  await sleep(100);
  assert.equal(await freeFor(observer, pglocks.key(k)), true);
  // The pool opens a new connection for the next call, and it works.
  assert.equal(await pglocks.withLock(p, k, () => 'ok'), 'ok');
  assert.equal(await freeFor(observer, pglocks.key(k)), true);
});

test('a waiting acquire answered by the server (its timeout) keeps the connection', async () => {
  const a = await connect();
  const b = await connect();
  const k = 'wlf:server-answer';
  assert.equal(await pglocks.acquire(a, k), true);
  // The server's own errors are the server's: lock_timeout ends the wait with 55P03.
  await b.query("SET lock_timeout = '200ms'");
  await assert.rejects(pglocks.acquire(b, k), { code: '55P03' });
  assert.equal(await one(b, 'SELECT 1'), 1);
  assert.equal(await pglocks.tryLock(b, k, { timeout: 100 }), false);
  assert.equal(await one(b, 'SELECT 1'), 1);
  assert.equal(await pglocks.release(a, k), true);
});

test('a client without getTransactionStatus (pg before 8.21.0) is refused by withLock before anything is sent', async () => {
  const old = await connect();
  const b = await connect();
  const k = 'wlf:old-pg';
  old.getTransactionStatus = undefined;
  await assert.rejects(pglocks.withLock(old, k, () => assert.fail('fn ran')), (e) => e instanceof TypeError
    && /pg 8\.21\.0 or later/.test(e.message));
  await assert.rejects(pglocks.acquire(old, k, { scope: 'transaction' }), TypeError);
  assert.equal(await freeFor(b, pglocks.key(k)), true);
  // The calls that need no transaction status work with it.
  assert.equal(await pglocks.tryLock(old, k), true);
  assert.equal(await pglocks.release(old, k), true);
});

test('anything but a pg.Client or a pool client is refused with UnsupportedClientError, before anything is sent', async () => {
  const a = await connect();
  const b = await connect();
  const k = 'wlf:unsupported';
  const sent = [];
  const wrapper = { query: (q) => { sent.push(q); return a.query(q); } };
  for (const db of [wrapper, null, 'postgres://x', {}]) {
    for (const call of [() => pglocks.acquire(db, k), () => pglocks.tryLock(db, k), () => pglocks.release(db, k),
      () => pglocks.releaseAll(db), () => pglocks.withLock(db, k, () => assert.fail('fn ran')),
      () => pglocks.withLockCommand(db, k, 'SELECT 1')]) {
      const err = await call().then(() => assert.fail('resolved'), (e) => e);
      assert.ok(err instanceof UnsupportedClientError, String(err));
      assert.ok(err instanceof TypeError);
      assert.equal(err.name, 'UnsupportedClientError');
    }
  }
  await assert.rejects(pglocks.tryLock(pool(), k), UnsupportedClientError);
  assert.deepEqual(sent, []);
  assert.equal(await freeFor(b, pglocks.key(k)), true);
});
