'use strict';

// When fn fails, withLock cancels only a query fn sent through the client while it ran: a
// query the application sent on the same client meanwhile is waited for, not cancelled.

const assert = require('node:assert/strict');
const { test, after } = require('node:test');
const pglocks = require('..');
const { connect, closeAll, held } = require('./helpers');

after(closeAll);

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

test("fn failing while the application's own query runs on the client: that query is not cancelled", async () => {
  const a = await connect();
  const job = pglocks.withLock(a, 'wq:other', async () => {
    await sleep(100);
    throw new Error('validation failed');
  });
  await sleep(30);
  const report = a.query('SELECT pg_sleep(0.5) AS report').then(() => 'ok', (e) => e);
  await assert.rejects(job, /validation failed/);
  assert.equal(await report, 'ok');
  assert.deepEqual(await held(a), []);
  assert.equal(Object.prototype.hasOwnProperty.call(a, 'query'), false, 'the client keeps its own query()');
});

test('fn failing while a query it sent runs: that query is still cancelled', async () => {
  const a = await connect();
  let slow;
  const started = Date.now();
  await assert.rejects(pglocks.withLock(a, 'wq:mine', async (c) => {
    slow = c.query('SELECT pg_sleep(30)').then(() => 'ok', (e) => e);
    await sleep(50);
    throw new Error('job failed');
  }), /job failed/);
  assert.equal((await slow).code, '57014');
  assert.ok(Date.now() - started < 10000);
  assert.deepEqual(await held(a), []);
  assert.equal(Object.prototype.hasOwnProperty.call(a, 'query'), false);
});
