'use strict';

const assert = require('node:assert/strict');
const { test, after } = require('node:test');
const pglocks = require('..');
const { LockNotAcquiredError } = pglocks;
const { connect, pool, closeAll, one, held, freeFor, waitUntilWaiting } = require('./helpers');

after(closeAll);

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

test('withLock holds the lock while fn runs, passes the client, resolves to its result', async () => {
  const a = await connect();
  const b = await connect();
  const k = 'wl:return';
  const result = await pglocks.withLock(a, k, async (client) => {
    assert.equal(client, a);
    assert.deepEqual(await held(a), [[k, false, 'session', 1]]);
    assert.equal(await freeFor(b, pglocks.key(k)), false);
    return 'done';
  });
  assert.equal(result, 'done');
  assert.deepEqual(await held(a), []);
  assert.equal(await freeFor(b, pglocks.key(k)), true);
  // A function that is not async is fine too.
  assert.equal(await pglocks.withLock(a, k, () => 7), 7);
  assert.deepEqual(await held(a), []);
});

test('withLock releases when fn throws, rejects, or throws before its first await', async () => {
  const a = await connect();
  const b = await connect();
  const k = 'wl:errors';
  class JobFailed extends Error {}
  const failures = [
    async () => { await one(a, 'SELECT 1'); throw new JobFailed('async throw'); },
    () => Promise.reject(new JobFailed('rejected promise')),
    () => { throw new JobFailed('synchronous throw'); },
  ];
  for (const fn of failures) {
    // The caller gets fn's own error, unchanged.
    await assert.rejects(pglocks.withLock(a, k, fn), JobFailed);
    assert.deepEqual(await held(a), []);
    assert.equal(await freeFor(b, pglocks.key(k)), true);
  }
  // An SQL error in fn (autocommit) is fn's error too, and the lock is released.
  await assert.rejects(pglocks.withLock(a, k, (c) => c.query('SELECT 1/0')), { code: '22012' });
  assert.deepEqual(await held(a), []);
  assert.equal(await freeFor(b, pglocks.key(k)), true);
});

test('withLock excludes another client: its withLock waits until the first ends', async () => {
  const a = await connect();
  const b = await connect();
  const observer = await connect();
  const k = 'wl:exclusion';
  const events = [];
  let releaseA;
  const aInside = new Promise((resolve) => {
    releaseA = pglocks.withLock(a, k, async () => {
      events.push('a in');
      resolve();
      await sleep(300);
      events.push('a out');
    });
  });
  await aInside;
  const bDone = pglocks.withLock(b, k, async () => {
    events.push('b in');
  });
  await waitUntilWaiting(observer, b);
  assert.deepEqual(events, ['a in']);
  await releaseA;
  await bDone;
  assert.deepEqual(events, ['a in', 'a out', 'b in']);
});

test('wait: false rejects with LockNotAcquiredError at once, without running fn', async () => {
  const a = await connect();
  const b = await connect();
  const k = 'wl:try';
  assert.equal(await pglocks.acquire(a, k), true);
  let ran = false;
  const started = Date.now();
  const err = await pglocks.withLock(b, k, () => { ran = true; }, { wait: false }).then(
    () => assert.fail('resolved'), (e) => e);
  assert.ok(err instanceof LockNotAcquiredError);
  assert.equal(err.code, 'PGLOCKS_NOT_ACQUIRED');
  assert.equal(err.key, k);
  assert.equal(err.timeout, null);
  assert.ok(Date.now() - started < 2000);
  assert.equal(ran, false);
  assert.deepEqual(await held(b), []);
  assert.equal(await pglocks.release(a, k), true);
  assert.equal(await pglocks.withLock(b, k, () => 'ran', { wait: false }), 'ran');
});

test('a timeout waits that long in the queue, then rejects with LockNotAcquiredError', async () => {
  const a = await connect();
  const b = await connect();
  const k = 'wl:timeout';
  assert.equal(await pglocks.acquire(a, k), true);
  for (const timeout of [300, '300ms']) {
    let ran = false;
    const started = Date.now();
    await assert.rejects(pglocks.withLock(b, k, () => { ran = true; }, { timeout }),
      (e) => e instanceof LockNotAcquiredError && e.timeout === timeout);
    const waited = Date.now() - started;
    assert.ok(waited >= 250 && waited < 5000, `waited ${waited} ms`);
    assert.equal(ran, false);
    assert.deepEqual(await held(b), []);
  }
  // A lock released during the wait is taken.
  const bDone = pglocks.withLock(b, k, () => 'got it', { timeout: 10000 });
  await sleep(200);
  assert.equal(await pglocks.release(a, k), true);
  assert.equal(await bDone, 'got it');
  assert.deepEqual(await held(b), []);
});

test('shared holders coexist; exclusive and shared exclude each other', async () => {
  const a = await connect();
  const b = await connect();
  const c = await connect();
  const k = 'wl:shared';
  await pglocks.withLock(a, k, async () => {
    await pglocks.withLock(b, k, async () => {
      assert.deepEqual(await held(b), [[k, true, 'session', 1]]);
      await assert.rejects(pglocks.withLock(c, k, () => {}, { wait: false }), LockNotAcquiredError);
      assert.equal(await pglocks.tryLock(c, k, { shared: true }), true);
      assert.equal(await pglocks.release(c, k, { shared: true }), true);
    }, { shared: true, wait: false });
  }, { shared: true });
  assert.deepEqual(await held(a), []);
  assert.deepEqual(await held(b), []);

  await pglocks.withLock(a, k, async () => {
    await assert.rejects(pglocks.withLock(b, k, () => {}, { shared: true, wait: false }),
      (e) => e instanceof LockNotAcquiredError && e.shared === true);
  });
  assert.equal(await pglocks.tryLock(b, k, { shared: true }), true);
  assert.equal(await pglocks.release(b, k, { shared: true }), true);
});

test("scope 'transaction': held until the transaction ends, not released by fn's end", async () => {
  const a = await connect();
  const b = await connect();
  const k = 'wl:xact';
  for (const end of ['COMMIT', 'ROLLBACK']) {
    await a.query('BEGIN');
    await pglocks.withLock(a, k, async () => {
      await a.query('SELECT 1');
    }, { scope: 'transaction' });
    assert.deepEqual(await held(a), [[k, false, 'transaction', 1]]);
    assert.equal(await freeFor(b, pglocks.key(k)), false);
    await a.query(end);
    assert.deepEqual(await held(a), [], end);
    assert.equal(await freeFor(b, pglocks.key(k)), true, end);
  }
  // An SQL error in fn aborts the transaction, which ends the hold (as it ends the server's
  // own transaction locks); fn's error reaches the caller, and nothing is reported.
  const warnings = [];
  const onWarning = (w) => warnings.push(w);
  process.on('warning', onWarning);
  try {
    await a.query('BEGIN');
    await assert.rejects(pglocks.withLock(a, k, (c) => c.query('SELECT 1/0'), { scope: 'transaction' }),
      { code: '22012' });
    await a.query('ROLLBACK');
    assert.deepEqual(await held(a), []);
    assert.equal(await freeFor(b, pglocks.key(k)), true);
    await new Promise((r) => setImmediate(r));
    assert.deepEqual(warnings, []);
  } finally {
    process.off('warning', onWarning);
  }
});

test("scope 'transaction' outside a transaction block is refused before anything is taken", async () => {
  const a = await connect();
  let ran = false;
  await assert.rejects(pglocks.withLock(a, 'wl:xact-outside', () => { ran = true; }, { scope: 'transaction' }),
    /needs a transaction block/);
  await assert.rejects(pglocks.tryLock(a, 'wl:xact-outside', { scope: 'transaction' }), /needs a transaction block/);
  assert.equal(ran, false);
  await assert.rejects(pglocks.withLock(pool(), 'wl:xact-outside', () => {}, { scope: 'transaction' }), TypeError);
});

test('withLock on a pg.Pool runs fn on one client of the pool and gives it back', async () => {
  const p = pool({ max: 2 });
  const b = await connect();
  const k = 'wl:pool';
  const result = await pglocks.withLock(p, k, async (client) => {
    assert.equal(typeof client.release, 'function');
    assert.deepEqual(await held(client), [[k, false, 'session', 1]]);
    assert.equal(await freeFor(b, pglocks.key(k)), false);
    return client.processID;
  });
  assert.equal(await freeFor(b, pglocks.key(k)), true);
  assert.equal(p.totalCount, 1);
  assert.equal(p.idleCount, 1);
  // The connection went back to the pool holding nothing.
  const again = await p.connect();
  assert.equal(again.processID, result);
  assert.deepEqual(await held(again), []);
  again.release();
  await assert.rejects(pglocks.withLock(p, k, () => { throw new Error('boom'); }), /boom/);
  assert.equal(await freeFor(b, pglocks.key(k)), true);
  assert.equal(p.idleCount, 1);
});

test('acquire, tryLock and release refuse a pg.Pool', async () => {
  const p = pool();
  for (const call of [() => pglocks.acquire(p, 'x'), () => pglocks.tryLock(p, 'x'), () => pglocks.release(p, 'x'),
    () => pglocks.releaseAll(p)]) {
    await assert.rejects(call(), /take a client from the pool/);
  }
  assert.equal(p.totalCount, 0);
});

test('withLock on a client taken from a pool (PoolClient)', async () => {
  const p = pool();
  const b = await connect();
  const k = 'wl:poolclient';
  const client = await p.connect();
  try {
    await pglocks.withLock(client, k, async () => {
      assert.equal(await freeFor(b, pglocks.key(k)), false);
    });
    assert.deepEqual(await held(client), []);
  } finally {
    client.release();
  }
});

test('options are checked', async () => {
  const a = await connect();
  await assert.rejects(pglocks.withLock(a, 'wl:opts', () => {}, { wait: false, timeout: 10 }), TypeError);
  await assert.rejects(pglocks.withLock(a, 'wl:opts', () => {}, { timeout: -1 }), RangeError);
  await assert.rejects(pglocks.withLock(a, 'wl:opts', () => {}, { scope: 'statement' }), TypeError);
  await assert.rejects(pglocks.withLock(a, 'wl:opts', () => {}, { shared: 'yes' }), TypeError);
  await assert.rejects(pglocks.withLock(a, 'wl:opts', 'not a function'), TypeError);
  // An interval the server refuses is the server's error.
  await assert.rejects(pglocks.withLock(a, 'wl:opts', () => {}, { timeout: '-1s' }), { code: '22023' });
  assert.deepEqual(await held(a), []);
});
