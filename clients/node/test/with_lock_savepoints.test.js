'use strict';

// withLock's savepoint (scope 'session', inside the caller's block) when fn releases a
// savepoint the caller took before withLock: the lock is released all the same, and the
// error says what happened.

const assert = require('node:assert/strict');
const { test, after } = require('node:test');
const pglocks = require('..');
const { SavepointReleasedError } = pglocks;
const { connect, closeAll, held, freeFor } = require('./helpers');

after(closeAll);

async function markOf(client) {
  const { rows } = await client.query("SELECT coalesce(current_setting('pglocks_node.savepoints', true), '') AS m");
  return rows[0].m;
}

test('fn releasing an enclosing savepoint and returning: the lock is released, SavepointReleasedError', async () => {
  const a = await connect();
  const b = await connect();
  await a.query('BEGIN');
  await a.query('SAVEPOINT caller');
  const err = await pglocks.withLock(a, 'wsp:ok', async (c) => {
    await c.query('RELEASE SAVEPOINT caller');
    return 'ok';
  }).then(() => null, (e) => e);
  assert.ok(err instanceof SavepointReleasedError, String(err));
  assert.equal(err.code, 'PGLOCKS_SAVEPOINT_RELEASED');
  assert.equal(err.lockStillHeld, false);
  assert.equal(err.savepointError.code, '3B001');
  assert.equal(await freeFor(b, pglocks.key('wsp:ok')), true);
  await a.query('ROLLBACK');
  assert.deepEqual(await held(a), []);
});

test('fn releasing an enclosing savepoint and failing: the lock is released before withLock touches its savepoint', async () => {
  const a = await connect();
  const b = await connect();
  await a.query('BEGIN');
  await a.query('SAVEPOINT caller');
  const failure = new Error('job failed');
  const err = await pglocks.withLock(a, 'wsp:fail', async (c) => {
    await c.query('RELEASE SAVEPOINT caller');
    throw failure;
  }).then(() => null, (e) => e);
  assert.ok(err instanceof SavepointReleasedError, String(err));
  assert.equal(err.cause, failure);
  assert.equal(err.lockStillHeld, false);
  // Free for others before the caller's ROLLBACK: not held to the end of the transaction.
  assert.equal(await freeFor(b, pglocks.key('wsp:fail')), true);
  await a.query('ROLLBACK');
  assert.deepEqual(await held(a), []);
});

test("a nested withLock on the same lock with scope 'transaction': the outer session hold is not silently left behind", async () => {
  const a = await connect();
  await a.query('BEGIN');
  const err = await pglocks.withLock(a, 'wsp:nested', async (c) => pglocks.withLock(c, 'wsp:nested', async () => 'inner',
    { scope: 'transaction' })).then(() => null, (e) => e);
  assert.ok(err instanceof pglocks.LockNotReleasedError, String(err));
  assert.equal(err.lockStillHeld, true);
  assert.match(err.message, /nested call on the same lock with another scope/);
  // What the session holds is what the error says: the session hold is still there.
  assert.deepEqual((await held(a)).map((h) => h[2]), ['session']);
  // The savepoint and the cursor were ended all the same, and the mark set back.
  assert.equal(a.getTransactionStatus(), 'T');
  assert.deepEqual((await a.query('SELECT name FROM pg_cursors')).rows, []);
  assert.equal(await markOf(a), '');
  await a.query('COMMIT');
  assert.equal(await pglocks.release(a, 'wsp:nested'), true);
  assert.deepEqual(await held(a), []);
});

test("withLock releasing its session hold with a transaction-scope hold of another mode or lock: resolves", async () => {
  const a = await connect();
  await a.query('BEGIN');
  const got = await pglocks.withLock(a, 'wsp:other', async (c) => {
    await pglocks.acquire(c, 'wsp:other', { scope: 'transaction', shared: true });
    await pglocks.acquire(c, 'wsp:other2', { scope: 'transaction' });
    return 'ok';
  });
  assert.equal(got, 'ok');
  assert.deepEqual((await held(a)).map((h) => h[2]), ['transaction', 'transaction']);
  await a.query('COMMIT');
  assert.deepEqual(await held(a), []);
});

test("fn taking a transaction-scope hold of the same lock and failing: rolled back to the savepoint before the release, so withLock's hold is released", async () => {
  const a = await connect();
  const b = await connect();
  await a.query('CREATE TEMP TABLE wsp_t (x int)');
  await a.query('BEGIN');
  const failure = new Error('boom');
  const err = await pglocks.withLock(a, 'wsp:txfail', async (c) => {
    await c.query('INSERT INTO wsp_t VALUES (1)');
    await pglocks.acquire(c, 'wsp:txfail', { scope: 'transaction' });
    throw failure;
  }).then(() => null, (e) => e);
  assert.equal(err, failure);
  assert.equal(a.getTransactionStatus(), 'T');
  assert.equal((await a.query('SELECT count(*)::int AS n FROM wsp_t')).rows[0].n, 0);
  assert.deepEqual(await held(a), []);
  assert.equal(await freeFor(b, pglocks.key('wsp:txfail')), true);
  assert.deepEqual((await a.query('SELECT name FROM pg_cursors')).rows, []);
  assert.equal(await markOf(a), '');
  await a.query('COMMIT');
});

test('fn leaving the block aborted: the cursor of the call is closed after the rollback to its savepoint', async () => {
  const a = await connect();
  await a.query('BEGIN');
  const caught = await pglocks.withLock(a, 'wsp:abort', async (c) => {
    await c.query('SELECT 1/0').catch(() => {});
  }).then(() => null, (e) => e);
  assert.ok(caught instanceof pglocks.TransactionAbortedError, String(caught));
  const thrown = await pglocks.withLock(a, 'wsp:abort', async (c) => {
    await c.query('SELECT 1/0');
  }).then(() => null, (e) => e);
  assert.equal(thrown.code, '22012');
  assert.equal(a.getTransactionStatus(), 'T');
  assert.deepEqual((await a.query('SELECT name FROM pg_cursors')).rows, []);
  assert.equal(await markOf(a), '');
  assert.deepEqual(await held(a), []);
  await a.query('COMMIT');
});

test('the statement that sets the mark failing (a cursor of the same name): fn does not run, the lock is released and the block goes on', async () => {
  const a = await connect();
  const b = await connect();
  await a.query('BEGIN');
  // The next call's name: the token of a scope 'transaction' acquire is the name before it
  // (the savepoint taken before the next call's acquire, which is the call's own).
  await pglocks.acquire(a, 'wsp:probe', { scope: 'transaction' });
  const token = (await a.query("SELECT current_setting('pglocks_node.block') AS t")).rows[0].t;
  const m = /^(pglocks_[0-9a-f]{8}_)(\d+)$/.exec(token);
  await a.query(`DECLARE ${m[1]}${Number(m[2]) + 1} CURSOR FOR SELECT 1`);
  let ran = false;
  const err = await pglocks.withLock(a, 'wsp:markfails', async () => { ran = true; }).then(() => null, (e) => e);
  assert.equal(ran, false);
  assert.equal(err && err.code, '42P03', String(err));
  assert.equal(a.getTransactionStatus(), 'T');
  assert.equal(await freeFor(b, pglocks.key('wsp:markfails')), true);
  assert.deepEqual((await held(a)).map((h) => h[0]), ['wsp:probe']);
  assert.equal(await markOf(a), '');
  await a.query('ROLLBACK');
});

test("scope 'transaction': when closing the cursor fails after fn failed, fn's error is the one rejected with, the CLOSE's attached", async () => {
  const a = await connect();
  await a.query('BEGIN');
  const failure = new Error('fn failed');
  const query = a.query;
  // The CLOSE of withLock's cursor names another cursor: the server refuses it (34000).
  a.query = function closeOther(config, ...rest) {
    if (config && typeof config.text === 'string' && config.text.startsWith('CLOSE ')) {
      return query.call(this, { ...config, text: 'CLOSE wsp_no_such_cursor' }, ...rest);
    }
    return query.call(this, config, ...rest);
  };
  let err;
  try {
    err = await pglocks.withLock(a, 'wsp:close', async () => { throw failure; }, { scope: 'transaction' })
      .then(() => null, (e) => e);
  } finally {
    a.query = query;
  }
  assert.equal(err, failure);
  assert.equal(err.closeError && err.closeError.code, '34000');
  await a.query('ROLLBACK');
  assert.deepEqual(await held(a), []);
});
