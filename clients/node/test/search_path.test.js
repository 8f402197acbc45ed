'use strict';

// The calls name the extension's functions with the schema it is installed in, so that a
// search_path set by fn (a schema per tenant) or by the caller does not break them.

const assert = require('node:assert/strict');
const { test, after } = require('node:test');
const pglocks = require('..');
const { connect, closeAll, held, freeFor } = require('./helpers');

after(closeAll);

test('fn setting search_path to a schema without the extension: withLock still releases', async () => {
  const a = await connect();
  const b = await connect();
  await a.query('CREATE SCHEMA IF NOT EXISTS sp_tenant');
  const got = await pglocks.withLock(a, 'sp:job', async (c) => {
    await c.query('SET search_path TO sp_tenant');
    return 'done';
  });
  assert.equal(got, 'done');
  assert.equal(await freeFor(b, pglocks.key('sp:job')), true);
  // The other calls too, with the search_path still set.
  assert.equal(await pglocks.tryLock(a, 'sp:job'), true);
  assert.equal(await pglocks.release(a, 'sp:job'), true);
  assert.equal(await pglocks.releaseAll(a), 0n);
  await a.query('RESET search_path');
  assert.deepEqual(await held(a), []);
});

test("fn doing SET LOCAL search_path inside the caller's block: both scopes release or end as they should", async () => {
  const a = await connect();
  const b = await connect();
  await a.query('CREATE SCHEMA IF NOT EXISTS sp_tenant');
  await a.query('BEGIN');
  const got = await pglocks.withLock(a, 'sp:block', async (c) => {
    await c.query('SET LOCAL search_path TO sp_tenant');
    return 'done';
  });
  assert.equal(got, 'done');
  assert.equal(await freeFor(b, pglocks.key('sp:block')), true);
  const got2 = await pglocks.withLock(a, 'sp:block2', async (c) => {
    await c.query('SET LOCAL search_path TO sp_tenant');
    await c.query('SELECT 1/0').catch(() => {});
    return 'done';
  }, { scope: 'transaction' }).then(() => null, (e) => e);
  assert.equal(got2.name, 'TransactionAbortedError');
  await a.query('ROLLBACK');
  assert.deepEqual(await held(a), []);
});

test("scope 'transaction', fn ending the transaction and taking the lock again with an = operator of its own on the search_path: lockStillHeld is true", async () => {
  const a = await connect();
  await a.query('CREATE SCHEMA IF NOT EXISTS sp_ops');
  await a.query("CREATE OR REPLACE FUNCTION sp_ops.never(bigint, bigint) RETURNS boolean LANGUAGE sql AS 'SELECT false'");
  await a.query(`DO $$ BEGIN
    CREATE OPERATOR sp_ops.= (LEFTARG = bigint, RIGHTARG = bigint, FUNCTION = sp_ops.never);
  EXCEPTION WHEN duplicate_function THEN NULL; END $$`);
  await a.query('BEGIN');
  const err = await pglocks.withLock(a, 'sp:ops', async (c) => {
    await c.query('SET search_path TO sp_ops, pg_catalog, public');
    await c.query('COMMIT');
    await c.query('BEGIN');
    await pglocks.acquire(c, 'sp:ops', { scope: 'transaction' });
  }, { scope: 'transaction' }).then(() => null, (e) => e);
  assert.ok(err instanceof pglocks.TransactionChangedError, String(err));
  assert.equal(err.lockStillHeld, true);
  await a.query('ROLLBACK');
  await a.query('RESET search_path');
  assert.deepEqual(await held(a), []);
});
