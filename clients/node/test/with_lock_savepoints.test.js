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
