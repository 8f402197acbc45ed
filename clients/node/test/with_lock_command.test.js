'use strict';

const assert = require('node:assert/strict');
const { test, before, after } = require('node:test');
const pglocks = require('..');
const { connect, pool, closeAll, one, held } = require('./helpers');

let setup;
before(async () => {
  setup = await connect();
  await setup.query('DROP TABLE IF EXISTS node_runs');
  await setup.query('CREATE TABLE node_runs (note text, n int)');
});
after(async () => {
  await setup.query('DROP TABLE IF EXISTS node_runs');
  await closeAll();
});

const count = (c) => one(c, 'SELECT count(*)::int FROM node_runs');

test('withLockCommand runs the command under the lock and releases it', async () => {
  const a = await connect();
  assert.equal(await pglocks.withLockCommand(a, 'cmd:basic', "INSERT INTO node_runs VALUES ('plain', 0)"), true);
  assert.equal(await count(a), 1);
  assert.deepEqual(await held(a), []);
  // Every key form.
  assert.equal(await pglocks.withLockCommand(a, 42n, "INSERT INTO node_runs VALUES ('bigint', 0)"), true);
  assert.equal(await pglocks.withLockCommand(a, [3, 4], "INSERT INTO node_runs VALUES ('pair', 0)"), true);
  assert.equal(await count(a), 3);
});

test('withLockCommand is false, and the command does not run, while another session holds the lock', async () => {
  const a = await connect();
  const b = await connect();
  const k = 'cmd:busy';
  const before = await count(a);
  assert.equal(await pglocks.acquire(b, k), true);
  assert.equal(await pglocks.withLockCommand(a, k, "INSERT INTO node_runs VALUES ('busy', 0)", { wait: false }), false);
  const started = Date.now();
  assert.equal(await pglocks.withLockCommand(a, k, "INSERT INTO node_runs VALUES ('busy', 0)", { timeout: 250 }), false);
  assert.ok(Date.now() - started >= 200);
  assert.equal(await count(a), before);
  assert.equal(await pglocks.release(b, k), true);
});

test('withLockCommand binds params as text', async () => {
  const a = await connect();
  const note = "O'Brien; DROP TABLE node_runs; --";
  assert.equal(await pglocks.withLockCommand(a, 'cmd:params',
    'INSERT INTO node_runs VALUES ($1, $2::int)', { params: [note, 17] }), true);
  assert.equal(await one(a, 'SELECT n FROM node_runs WHERE note = $1', [note]), 17);
  assert.equal(await pglocks.withLockCommand(a, 'cmd:params',
    'INSERT INTO node_runs VALUES ($1, $2::int)', { params: [null, null] }), true);
  assert.equal(await one(a, 'SELECT count(*)::int FROM node_runs WHERE note IS NULL AND n IS NULL'), 1);
});

test("a failing command rejects with the server's error, and the lock is released", async () => {
  const a = await connect();
  const b = await connect();
  await assert.rejects(pglocks.withLockCommand(a, 'cmd:fail', 'SELECT 1/0'), { code: '22012' });
  assert.deepEqual(await held(a), []);
  assert.equal(await pglocks.tryLock(b, 'cmd:fail'), true);
  assert.equal(await pglocks.release(b, 'cmd:fail'), true);
});

test('withLockCommand works through a pg.Pool: one statement', async () => {
  const p = pool();
  assert.equal(await pglocks.withLockCommand(p, 'cmd:pool', "INSERT INTO node_runs VALUES ('pool', 0)"), true);
  assert.equal(await one(p, "SELECT count(*)::int FROM node_runs WHERE note = 'pool'"), 1);
});
