'use strict';

// What withLock and the other calls do with the connection itself: a session the server
// ended, cancel requests aimed at the connection's own server and only at a statement that
// still runs, a query of fn's left running when fn fails, the pool's connection given back
// clean, and a transaction fn ended under withLock.

const assert = require('node:assert/strict');
const net = require('node:net');
const { test, after } = require('node:test');
const pglocks = require('..');
const { ConnectionClosedError, TransactionChangedError } = pglocks;
const {
  connect, pool, closeAll, one, held, freeFor, waitUntilWaiting, backendGone, advisoryLocksOf,
} = require('./helpers');

after(closeAll);

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
// A connection the server may close under the test: its 'error' event is expected.
const quiet = (client) => { client.on('error', () => {}); return client; };

test('a session the server ends while an acquire waits: ConnectionClosedError, from the connection', async () => {
  const a = await connect();
  const b = quiet(await connect());
  const observer = await connect();
  const k = 'wlc:terminated';
  assert.equal(await pglocks.acquire(a, k), true);
  const pending = pglocks.acquire(b, k).then(() => assert.fail('resolved'), (e) => e);
  await waitUntilWaiting(observer, b);
  assert.equal(await one(observer, 'SELECT pg_terminate_backend($1)', [b.processID]), true);
  const err = await pending;
  assert.ok(err instanceof ConnectionClosedError, String(err));
  assert.equal(err.cause.code, '57P01');
  assert.equal(err.key, k);
  assert.equal(await pglocks.release(a, k), true);
});

test('a cancel request goes to the server the socket is connected to, not to the host of the config', async () => {
  const a = await connect();
  const observer = await connect();
  const k = 'wlc:peer';
  assert.equal(await pglocks.acquire(a, k), true);
  const b = await connect({ host: '127.0.0.1', query_timeout: 300 });
  const pid = b.processID;
  // As when a name resolves to several servers: the config names another one than the peer.
  b.host = '127.0.0.2';
  b.port = 1;
  await assert.rejects(pglocks.acquire(b, k), ConnectionClosedError);
  // The waiting acquire was cancelled: its backend is gone while a still holds the lock.
  assert.ok(await backendGone(observer, pid, 3000), 'the backend of the timed-out acquire still waits');
  assert.deepEqual(await advisoryLocksOf(observer, pid), []);
  assert.equal(await pglocks.release(a, k), true);
});

test('a timed-out acquire that never reached the server sends no cancel request: a query of the application is not cancelled', async () => {
  const b = quiet(await connect({ query_timeout: 300 }));
  // The application's own query runs; the acquire queued behind it times out in the client.
  const other = b.query({ text: 'SELECT pg_sleep(1.5)', query_timeout: 10000 }).then(() => null, (e) => e);
  await assert.rejects(pglocks.acquire(b, 'wlc:queued'), ConnectionClosedError);
  const otherError = await other;
  assert.notEqual(otherError && otherError.code, '57014', 'a cancel request hit the application\'s query');
});

test('fn that fails while its query runs: the query is cancelled, the lock released, the connection kept', async () => {
  const a = await connect();
  const b = await connect();
  const k = 'wlc:abandon';
  for (const host of [undefined, '127.0.0.1']) {
    const c = await connect(host ? { host } : {});
    let sleeping;
    const started = Date.now();
    await assert.rejects(pglocks.withLock(c, k, () => {
      sleeping = c.query('SELECT pg_sleep(30)').then(() => null, (e) => e);
      throw new Error('job failed');
    }), /job failed/);
    assert.ok(Date.now() - started < 10000, `withLock waited ${Date.now() - started} ms for fn's query`);
    assert.equal((await sleeping).code, '57014');
    assert.equal(await freeFor(b, pglocks.key(k)), true);
    assert.equal(await one(c, 'SELECT 1'), 1);
    assert.deepEqual(await held(c), []);
  }
  // Inside the caller's block: rolled back to the savepoint, the block goes on.
  await a.query('BEGIN');
  await assert.rejects(pglocks.withLock(a, k, (c) => {
    c.query('SELECT pg_sleep(30)').catch(() => {});
    throw new Error('job failed');
  }), /job failed/);
  assert.equal(await one(a, 'SELECT 1'), 1);
  assert.equal(a.getTransactionStatus(), 'T');
  await a.query('COMMIT');
  assert.equal(await freeFor(b, pglocks.key(k)), true);
});

test('fn that fails while its query runs on a connection no cancel can be aimed at: closed, ConnectionClosedError', async () => {
  const b = await connect();
  const observer = await connect();
  const k = 'wlc:abandon-closed';
  // A stream the application supplies: pglocks cannot know where a cancel request would go.
  class AppSocket extends net.Socket {}
  const c = quiet(await connect({ stream: new AppSocket() }));
  const pid = c.processID;
  // Closed, the connection ends its session once the server sees it gone: while a statement
  // runs, at the latest when it ends, or at this interval.
  await c.query("SET client_connection_check_interval = '100ms'");
  const started = Date.now();
  const err = await pglocks.withLock(c, k, () => {
    c.query('SELECT pg_sleep(30)').catch(() => {});
    throw new Error('job failed');
  }).then(() => assert.fail('resolved'), (e) => e);
  assert.ok(Date.now() - started < 10000, `withLock waited ${Date.now() - started} ms for fn's query`);
  assert.ok(err instanceof ConnectionClosedError, String(err));
  assert.equal(err.cause.message, 'job failed');
  assert.ok(await backendGone(observer, pid), 'the connection was not closed');
  assert.equal(await freeFor(b, pglocks.key(k)), true);
});

test("withLock on a pool never gives a connection back inside fn's transaction block", async () => {
  const p = pool({ max: 1 });
  const b = await connect();
  const k = 'wlc:pool-block';
  await b.query('CREATE TABLE IF NOT EXISTS wlc_pool (v int)');
  await b.query('TRUNCATE wlc_pool');
  let pid;
  const err = await pglocks.withLock(p, k, async (c) => {
    pid = c.processID;
    await c.query('BEGIN');
    await c.query('INSERT INTO wlc_pool VALUES (1)');
    return 'forgot to commit';
  }).then(() => assert.fail('resolved'), (e) => e);
  assert.equal(err.code, 'PGLOCKS_TRANSACTION_ROLLED_BACK');
  assert.ok(err instanceof pglocks.TransactionRolledBackError);
  assert.equal(err.result, 'forgot to commit');
  assert.equal(err.key, k);
  // fn that throws with its block open: its error, the block rolled back.
  await assert.rejects(pglocks.withLock(p, k, async (c) => {
    await c.query('BEGIN');
    await c.query('INSERT INTO wlc_pool VALUES (2)');
    throw new Error('job failed');
  }), /job failed/);
  const again = await p.connect();
  try {
    assert.equal(again.processID, pid);
    assert.equal(again.getTransactionStatus(), 'I');
    assert.deepEqual(await held(again), []);
  } finally {
    again.release();
  }
  assert.equal(await one(b, 'SELECT count(*)::int FROM wlc_pool'), 0);
  assert.equal(await freeFor(b, pglocks.key(k)), true);
  await b.query('DROP TABLE wlc_pool');
});

test("scope 'transaction': fn that ends the lock's transaction rejects with TransactionChangedError", async () => {
  const a = await connect();
  const b = await connect();
  const k = 'wlc:xact-changed';
  for (const end of ['COMMIT', 'ROLLBACK']) {
    await a.query('BEGIN');
    const err = await pglocks.withLock(a, k, async (c) => {
      await c.query(end);
      await c.query('BEGIN');
      return 'done';
    }, { scope: 'transaction' }).then(() => assert.fail('resolved'), (e) => e);
    assert.ok(err instanceof TransactionChangedError, String(err));
    assert.equal(err.lockStillHeld, false);
    assert.equal(err.key, k);
    assert.equal(await freeFor(b, pglocks.key(k)), true);
    await a.query('ROLLBACK');
  }
  // Rolled back to a savepoint taken before withLock: the hold went with it.
  await a.query('BEGIN');
  await a.query('SAVEPOINT before');
  await assert.rejects(pglocks.withLock(a, k, (c) => c.query('ROLLBACK TO SAVEPOINT before'), { scope: 'transaction' }),
    (e) => e instanceof TransactionChangedError && e.lockStillHeld === false);
  // Taken again by fn in the new transaction: still held.
  await assert.rejects(pglocks.withLock(a, k, async (c) => {
    await c.query('COMMIT');
    await c.query('BEGIN');
    await pglocks.acquire(c, k, { scope: 'transaction' });
  }, { scope: 'transaction' }), (e) => e instanceof TransactionChangedError && e.lockStillHeld === true);
  await a.query('ROLLBACK');
  // Nested calls in one transaction each find their own mark.
  await a.query('BEGIN');
  assert.equal(await pglocks.withLock(a, k, () => pglocks.withLock(a, 'wlc:inner', () => 'in', { scope: 'transaction' }),
    { scope: 'transaction' }), 'in');
  assert.equal(await one(a, "SELECT current_setting('pglocks_node.savepoints', true)"), '');
  await a.query('COMMIT');
});

test("scope 'session': fn that commits and begins another block leaves that block working", async () => {
  const a = await connect();
  const b = await connect();
  const k = 'wlc:session-changed';
  await a.query('BEGIN');
  assert.equal(await pglocks.withLock(a, k, async (c) => {
    await c.query('COMMIT');
    await c.query('BEGIN');
    return 'done';
  }), 'done');
  assert.equal(a.getTransactionStatus(), 'T');
  assert.equal(await one(a, 'SELECT 1'), 1);
  assert.equal(await freeFor(b, pglocks.key(k)), true);
  await a.query('COMMIT');
  // Nested session calls use savepoints of their own: the outer one's failure rolls back to
  // its own, past the inner one's, and the block goes on.
  await a.query('BEGIN');
  await a.query('CREATE TEMP TABLE wlc_nested (v int) ON COMMIT DROP');
  await assert.rejects(pglocks.withLock(a, k, async (c) => {
    await pglocks.withLock(c, 'wlc:inner', () => c.query('INSERT INTO wlc_nested VALUES (1)'));
    await c.query('INSERT INTO wlc_nested VALUES (2)');
    throw new Error('outer failed');
  }), /outer failed/);
  assert.equal(await one(a, 'SELECT count(*)::int FROM wlc_nested'), 0);
  assert.deepEqual(await held(a), []);
  await a.query('COMMIT');
});
