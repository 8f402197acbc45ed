'use strict';

// RESET ALL inside fn resets withLock's transaction mark with every other setting; withLock
// still tells it from fn ending the transaction, or rolling back past withLock.

const assert = require('node:assert/strict');
const { test, after } = require('node:test');
const pglocks = require('..');
const { TransactionChangedError } = pglocks;
const {
  connect, closeAll, held, freeFor, one,
} = require('./helpers');

after(closeAll);

test("scope 'transaction': RESET ALL in fn is not taken for the end of the transaction", async () => {
  const a = await connect();
  const b = await connect();
  await a.query('BEGIN');
  const got = await pglocks.withLock(a, 'wr:x', async (c) => {
    await c.query('RESET ALL');
    return 'ok';
  }, { scope: 'transaction' });
  assert.equal(got, 'ok');
  assert.equal(await freeFor(b, pglocks.key('wr:x')), false, 'held to the end of the transaction');
  // Nested: the outer call finds its mark again after the inner fn's RESET ALL.
  assert.equal(await pglocks.withLock(a, 'wr:outer', () => pglocks.withLock(a, 'wr:inner', (c) => c.query('RESET ALL')
    .then(() => 'in'), { scope: 'transaction' }), { scope: 'transaction' }), 'in');
  assert.equal(await one(a, "SELECT count(*)::int FROM pg_cursors WHERE name LIKE 'pglocks%'"), 0);
  await a.query('COMMIT');
  assert.equal(await freeFor(b, pglocks.key('wr:x')), true);
});

test("scope 'session': fn that writes, does RESET ALL and fails has its work rolled back", async () => {
  const a = await connect();
  const b = await connect();
  await a.query('BEGIN');
  await a.query('CREATE TEMP TABLE wr_e (v int) ON COMMIT DROP');
  await assert.rejects(pglocks.withLock(a, 'wr:s', async (c) => {
    await c.query('INSERT INTO wr_e VALUES (1)');
    await c.query('RESET ALL');
    throw new Error('job failed');
  }), /job failed/);
  assert.equal(await one(a, 'SELECT count(*)::int FROM wr_e'), 0);
  assert.equal(await freeFor(b, pglocks.key('wr:s')), true);
  assert.equal(await pglocks.withLock(a, 'wr:s', async (c) => { await c.query('RESET ALL'); return 'ok'; }), 'ok');
  assert.equal(await one(a, "SELECT count(*)::int FROM pg_cursors WHERE name LIKE 'pglocks%'"), 0);
  assert.equal(a.getTransactionStatus(), 'T');
  await a.query('COMMIT');
  assert.deepEqual(await held(a), []);
});

test("ROLLBACK TO a savepoint taken before withLock is still the end of the lock's transaction", async () => {
  const a = await connect();
  await a.query('BEGIN');
  await a.query('SAVEPOINT before');
  await assert.rejects(pglocks.withLock(a, 'wr:rb', async (c) => {
    await c.query('RESET ALL');
    await c.query('ROLLBACK TO SAVEPOINT before');
  }, { scope: 'transaction' }), (e) => e instanceof TransactionChangedError && e.lockStillHeld === false);
  await a.query('ROLLBACK');
});
