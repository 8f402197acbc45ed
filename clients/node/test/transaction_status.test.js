'use strict';

// scope 'transaction' and the connection's transaction status: read once the connection is
// ready (not the stale status node-postgres reports right after a failed statement), and
// checked by the server as well, so that a hold never silently ends with its own statement.

const assert = require('node:assert/strict');
const { test, after } = require('node:test');
const pglocks = require('..');
const { connect, closeAll, held } = require('./helpers');

after(closeAll);

// A COMMIT that fails (a deferred unique constraint) ends the block; node-postgres passes the
// error on before the server's ReadyForQuery.
async function failedCommit(client) {
  await client.query('BEGIN');
  await client.query('INSERT INTO ts_deferred VALUES (1), (1)');
  await assert.rejects(client.query('COMMIT'), { code: '23505' });
}

test("right after a failed COMMIT, scope 'transaction' is refused, never taken in autocommit", async () => {
  const a = await connect();
  await a.query('CREATE TEMP TABLE ts_deferred (v int UNIQUE DEFERRABLE INITIALLY DEFERRED)');
  for (let i = 0; i < 20; i++) {
    await failedCommit(a);
    let ran = false;
    await assert.rejects(pglocks.withLock(a, 'ts:f', () => { ran = true; }, { scope: 'transaction' }),
      /needs a transaction block/);
    assert.equal(ran, false);
    await failedCommit(a);
    await assert.rejects(pglocks.acquire(a, 'ts:f2', { scope: 'transaction' }), /needs a transaction block/);
  }
  assert.deepEqual(await held(a), []);
});

test("the server refuses scope 'transaction' outside a block even when the client's status says 'T'", async () => {
  const a = await connect();
  const status = a.getTransactionStatus;
  a.getTransactionStatus = () => 'T';
  try {
    await assert.rejects(pglocks.acquire(a, 'ts:lie', { scope: 'transaction' }), /needs a transaction block/);
    let ran = false;
    await assert.rejects(pglocks.withLock(a, 'ts:lie', () => { ran = true; }, { scope: 'transaction' }),
      /needs a transaction block/);
    assert.equal(ran, false);
  } finally {
    a.getTransactionStatus = status;
  }
  assert.deepEqual(await held(a), []);
});

test("an unknown transaction status is refused", async () => {
  const a = await connect();
  a.getTransactionStatus = () => null;
  await assert.rejects(pglocks.withLock(a, 'ts:null', () => 1), /transaction status is unknown/);
  await assert.rejects(pglocks.acquire(a, 'ts:null', { scope: 'transaction' }), /transaction status is unknown/);
  delete a.getTransactionStatus;
  assert.deepEqual(await held(a), []);
});

test("inside a block scope 'transaction' still works, for acquire and withLock", async () => {
  const a = await connect();
  await a.query('BEGIN');
  assert.equal(await pglocks.acquire(a, 'ts:ok', { scope: 'transaction' }), true);
  assert.equal(await pglocks.withLock(a, 'ts:ok2', async (c) => (await held(c)).length, { scope: 'transaction' }), 2);
  await a.query('COMMIT');
  assert.deepEqual(await held(a), []);
});
