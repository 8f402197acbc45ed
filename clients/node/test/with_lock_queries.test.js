'use strict';

// When fn fails while a query runs on the client, withLock cancels it: the client is fn's
// while withLock runs. Overlapping calls on one client inside a block are refused.

const assert = require('node:assert/strict');
const { test, after } = require('node:test');
const pglocks = require('..');
const { connect, closeAll, held } = require('./helpers');

after(closeAll);

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

test("the client's query() is left as it is while fn runs, and a query sent through a reference bound before is cancelled when fn fails", async () => {
  const a = await connect();
  const boundQuery = a.query.bind(a);
  let own;
  let slow;
  const started = Date.now();
  await assert.rejects(pglocks.withLock(a, 'wq:bound', async () => {
    own = Object.prototype.hasOwnProperty.call(a, 'query');
    slow = boundQuery({ text: 'SELECT pg_sleep(30)', query_timeout: 200 }).then(() => 'ok', (e) => e);
    await slow;
    throw new Error('timed out');
  }), /timed out/);
  assert.equal(own, false, 'no wrapper over query() while fn runs');
  assert.ok(Date.now() - started < 10000, 'the query was cancelled, not waited for');
  assert.deepEqual(await held(a), []);
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

test('inside a block, a call whose fn ends while a later call not nested in it runs waits for it, ends in order and is refused with OverlappingCallError', async () => {
  const a = await connect();
  await a.query('BEGIN');
  await a.query('CREATE TEMP TABLE wq_o (v text)');
  const first = pglocks.withLock(a, 'wq:first', async (c) => {
    await sleep(60);
    await c.query("INSERT INTO wq_o VALUES ('first')");
    return 'first';
  });
  await sleep(20);
  // Started outside the first call's fn while that fn runs: not refused at start.
  const second = pglocks.withLock(a, 'wq:second', async (c) => {
    await sleep(200);
    await c.query("INSERT INTO wq_o VALUES ('second')");
    return 'second';
  });
  const [r1, r2] = await Promise.allSettled([first, second]);
  assert.ok(r1.reason instanceof pglocks.OverlappingCallError, String(r1.reason));
  assert.equal(r1.reason.result, 'first');
  assert.equal(r2.value, 'second');
  assert.equal(a.getTransactionStatus(), 'T');
  assert.deepEqual((await a.query('SELECT v FROM wq_o ORDER BY v')).rows.map((r) => r.v), ['first', 'second']);
  assert.deepEqual(await held(a), []);
  assert.deepEqual((await a.query('SELECT name FROM pg_cursors')).rows, []);
  await a.query('ROLLBACK');
});
