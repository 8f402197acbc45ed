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
