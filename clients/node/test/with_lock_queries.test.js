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

test("two overlapping withLock calls on one client inside a block: the second is refused before anything is sent", async () => {
  const a = await connect();
  await a.query('BEGIN');
  await a.query('CREATE TEMP TABLE wq_i (v text)');
  const [first, second] = await Promise.allSettled([
    pglocks.withLock(a, 'wq:a', async (c) => { await sleep(100); await c.query("INSERT INTO wq_i VALUES ('a')"); return 'a'; }),
    pglocks.withLock(a, 'wq:b', async (c) => { await c.query("INSERT INTO wq_i VALUES ('b')"); throw new Error('b failed'); }),
  ]);
  assert.equal(first.value, 'a');
  assert.ok(second.reason instanceof pglocks.OverlappingCallError, String(second.reason));
  assert.equal(second.reason.code, 'PGLOCKS_OVERLAPPING_CALL');
  assert.deepEqual((await a.query('SELECT v FROM wq_i ORDER BY v')).rows.map((r) => r.v), ['a']);
  assert.deepEqual(await held(a), []);
  // A call nested in fn, on the same client, still works, and so does the next call.
  assert.equal(await pglocks.withLock(a, 'wq:outer', (c) => pglocks.withLock(c, 'wq:inner', async (d) => {
    await sleep(20);
    return (await held(d)).length;
  })), 2);
  assert.equal(await pglocks.withLock(a, 'wq:a', () => 'again'), 'again');
  await a.query('ROLLBACK');
  assert.deepEqual(await held(a), []);
});
