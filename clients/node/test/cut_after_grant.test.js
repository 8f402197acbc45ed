'use strict';

// A session-scope acquire whose statement fails after the server granted the lock (a cancel
// or statement_timeout, 57014; a lock_timeout of a later wait, 55P03; any other error)
// rejects, and leaves no hold behind.
// The statements are made to go on after the grant by adding to them on their way to the
// server (a pg_sleep, or a wait for another lock): the timeouts are the server's own.

const assert = require('node:assert/strict');
const { test, after } = require('node:test');
const pglocks = require('..');
const {
  connect, pool, closeAll, one, held, freeFor, backendGone,
} = require('./helpers');

after(closeAll);

// Rewrites the text of the statements the client sends (the values array is kept, which
// pglocks uses to tell its statement from others); returns the undo.
function rewrite(client, change) {
  const original = client.query;
  client.query = function query(config, ...rest) {
    if (typeof config === 'string') return original.call(this, change(config), ...rest);
    if (config !== null && typeof config === 'object' && typeof config.text === 'string') {
      const text = change(config.text);
      if (text !== config.text) return original.call(this, { ...config, text }, ...rest);
    }
    return original.call(this, config, ...rest);
  };
  return () => { delete client.query; };
}

const isAcquire = (text) => text.includes('.pglocks_acquire(') && !text.includes('pglocks_held');

// The acquire statement sleeps once the lock is granted: a statement_timeout shorter than the
// sleep fails it with the lock held.
function sleepAfterGrant(client) {
  return rewrite(client, (text) => (isAcquire(text) ? `${text}, pg_catalog.pg_sleep(1.5)` : text));
}

async function withStatementTimeout(client) {
  await client.query("SET statement_timeout = '300ms'");
}

// After a call that failed inside a block on client a: the block goes on, a holds nothing,
// the lock k is free for client b; then the block commits.
async function blockGoesOnWithoutHold(a, b, k) {
  assert.equal(a.getTransactionStatus(), 'T');
  assert.deepEqual(await held(a), []);
  assert.equal(await freeFor(b, pglocks.key(k)), true);
  await a.query('COMMIT');
}

test('acquire cut off after the grant by statement_timeout: rejects with 57014, no hold left', async () => {
  const a = await connect();
  const b = await connect();
  const k = 'cut:acquire';
  await withStatementTimeout(a);
  const undo = sleepAfterGrant(a);
  await assert.rejects(pglocks.acquire(a, k), { code: '57014' });
  undo();
  assert.deepEqual(await held(a), []);
  assert.equal(await freeFor(b, pglocks.key(k)), true);
  assert.equal(a.getTransactionStatus(), 'I');
});

test('tryLock with a timeout, bigint and pair keys, cut off after the grant: no hold left', async () => {
  const a = await connect();
  const b = await connect();
  await withStatementTimeout(a);
  const undo = sleepAfterGrant(a);
  await assert.rejects(pglocks.tryLock(a, 'cut:try', { timeout: 1000 }), { code: '57014' });
  await assert.rejects(pglocks.tryLock(a, 4242n), { code: '57014' });
  await assert.rejects(pglocks.acquire(a, [7, -8]), { code: '57014' });
  undo();
  assert.deepEqual(await held(a), []);
  assert.equal(await freeFor(b, pglocks.key('cut:try')), true);
  assert.equal(await freeFor(b, 4242n), true);
  assert.equal(await one(b, 'SELECT pg_try_advisory_lock(7, -8) AND pg_advisory_unlock(7, -8)'), true);
});

test('the holds the session had before the cut-off acquire stay, in either mode', async () => {
  const a = await connect();
  const b = await connect();
  const k = 'cut:before';
  assert.equal(await pglocks.acquire(a, k), true);
  assert.equal(await pglocks.acquire(a, k), true);
  await withStatementTimeout(a);
  const undo = sleepAfterGrant(a);
  await assert.rejects(pglocks.acquire(a, k), { code: '57014' });
  await assert.rejects(pglocks.acquire(a, k, { shared: true }), { code: '57014' });
  undo();
  assert.deepEqual(await held(a), [[k, false, 'session', 2]]);
  assert.equal(await pglocks.release(a, k), true);
  assert.equal(await pglocks.release(a, k), true);
  assert.equal(await freeFor(b, pglocks.key(k)), true);
});

test('a lock_timeout (55P03) of a later wait in the statement, after the grant: no hold left', async () => {
  const a = await connect();
  const b = await connect();
  const k = 'cut:lock-timeout';
  // After the grant the statement waits for a lock b holds, until lock_timeout.
  await b.query('SELECT pg_advisory_lock(99, 99)');
  await a.query("SET lock_timeout = '200ms'");
  const undo = rewrite(a, (text) => (isAcquire(text) ? `${text}, pg_catalog.pg_advisory_lock(99, 99)` : text));
  await assert.rejects(pglocks.acquire(a, k), { code: '55P03' });
  undo();
  assert.deepEqual(await held(a), []);
  assert.equal(await freeFor(b, pglocks.key(k)), true);
  assert.equal(await one(b, 'SELECT pg_advisory_unlock(99, 99)'), true);
});

test('inside a transaction block: the block goes on as it was before the call, no hold left', async () => {
  const a = await connect();
  const b = await connect();
  const k = 'cut:block';
  await a.query('BEGIN');
  await a.query('CREATE TEMP TABLE cut_block (v int)');
  await a.query('INSERT INTO cut_block VALUES (1)');
  await withStatementTimeout(a);
  const undo = sleepAfterGrant(a);
  await assert.rejects(pglocks.acquire(a, k), { code: '57014' });
  await assert.rejects(pglocks.tryLock(a, k), { code: '57014' });
  undo();
  assert.equal(await one(a, 'SELECT count(*)::int FROM cut_block'), 1);
  await blockGoesOnWithoutHold(a, b, k);
  // The calls that succeed release their savepoint as well: none is left to roll back to.
  await a.query('RESET statement_timeout');
  await a.query('BEGIN');
  const { sent, undo: stop } = counting(a);
  for (let i = 0; i < 1000; i++) {
    assert.equal(await pglocks.acquire(a, k), true);
    assert.equal(await pglocks.release(a, k), true);
  }
  stop();
  const names = sent.map((t) => /^SAVEPOINT (\w+);/.exec(t)).filter((m) => m !== null).map((m) => m[1]);
  assert.equal(names.length, 1000);
  await assert.rejects(a.query(`ROLLBACK TO SAVEPOINT ${names[999]}`), { code: '3B001' });
  await a.query('ROLLBACK');
});

test('inside a block, the release of the savepoint before the acquire cut off: no hold left', async () => {
  const a = await connect();
  const b = await connect();
  const k = 'cut:guard';
  await a.query('BEGIN');
  await withStatementTimeout(a);
  // The statement after a granted acquire inside a block releases the savepoint taken before
  // it; a statement_timeout that fails that statement first leaves the lock held.
  const undo = rewrite(a, (text) => (/^RELEASE SAVEPOINT pglocks_\w+$/.test(text)
    ? `SELECT pg_catalog.pg_sleep(1.5); ${text}` : text));
  await assert.rejects(pglocks.acquire(a, k), { code: '57014' });
  undo();
  await blockGoesOnWithoutHold(a, b, k);
});

test('when the hold cannot be counted again (the savepoint is gone), the connection is closed, which ends it', async () => {
  const a = await connect();
  const b = await connect();
  const k = 'cut:closed';
  const pid = a.processID;
  await a.query('BEGIN');
  await withStatementTimeout(a);
  // The savepoint is released, then the statement fails: the block is aborted, no savepoint
  // to roll back to, and the session holds the lock.
  const undo = rewrite(a, (text) => (/^RELEASE SAVEPOINT pglocks_\w+$/.test(text)
    ? `${text}; SELECT pg_catalog.pg_sleep(1.5)` : text));
  const err = await pglocks.acquire(a, k).then(() => null, (e) => e);
  undo();
  assert.ok(err instanceof pglocks.ConnectionClosedError, String(err));
  assert.equal(err.cause.code, '57014');
  assert.equal(err.cleanupError.code, '3B001');
  assert.equal(a._ending, true, 'the connection is closed');
  assert.equal(await backendGone(b, pid), true);
  assert.equal(await freeFor(b, pglocks.key(k)), true);
});

test('withLock cut off after the grant, outside and inside a block: fn does not run, no hold left', async () => {
  const a = await connect();
  const b = await connect();
  const k = 'cut:with-lock';
  await withStatementTimeout(a);
  const undo = sleepAfterGrant(a);
  await assert.rejects(pglocks.withLock(a, k, () => assert.fail('fn ran')), { code: '57014' });
  await a.query('BEGIN');
  await assert.rejects(pglocks.withLock(a, k, () => assert.fail('fn ran')), { code: '57014' });
  undo();
  await blockGoesOnWithoutHold(a, b, k);
});

test('withLock inside a block, the statement after the acquire (mark, cursor) cut off: the lock is released', async () => {
  const a = await connect();
  const b = await connect();
  const k = 'cut:with-lock-mark';
  await a.query('BEGIN');
  await withStatementTimeout(a);
  // The statement that sets withLock's mark behind the acquire's savepoint fails before it:
  // back to that savepoint, and the release runs.
  const undo = rewrite(a, (text) => (/^SELECT pg_catalog.set_config\('pglocks_node.savepoints'/.test(text)
    ? `SELECT pg_catalog.pg_sleep(1.5); ${text}` : text));
  await assert.rejects(pglocks.withLock(a, k, () => assert.fail('fn ran')), { code: '57014' });
  undo();
  await blockGoesOnWithoutHold(a, b, k);
});

test('any other error of the acquire statement after the grant: no hold left, the block goes on', async () => {
  const a = await connect();
  const b = await connect();
  const k = 'cut:other-error';
  // A division by zero evaluated after the acquire (random() keeps it from being folded).
  const undo = rewrite(a, (text) => (isAcquire(text) ? `${text}, 1 / (pg_catalog.random() * 0)::int` : text));
  await assert.rejects(pglocks.acquire(a, k), { code: '22012' });
  await a.query('BEGIN');
  await assert.rejects(pglocks.tryLock(a, k), { code: '22012' });
  await assert.rejects(pglocks.withLock(a, k, () => assert.fail('fn ran')), { code: '22012' });
  undo();
  assert.equal(a.getTransactionStatus(), 'T');
  assert.deepEqual(await held(a), []);
  await a.query('COMMIT');
  assert.deepEqual(await held(a), []);
  assert.equal(await freeFor(b, pglocks.key(k)), true);
});

test('calls on one client at once inside a block (not awaited in turn): each gets its lock, savepoints stay apart', async () => {
  const a = await connect();
  const b = await connect();
  await a.query('BEGIN');
  // A withLock last: a call sent while its fn runs, from outside fn, is not supported.
  const results = await Promise.allSettled([
    pglocks.acquire(a, 'cut:together-1'),
    pglocks.tryLock(a, 'cut:together-2'),
    pglocks.acquire(a, 'cut:together-1', { shared: true }),
    pglocks.withLock(a, 'cut:together-3', async (c) => (await c.query('SELECT 3 AS v')).rows[0].v),
  ]);
  assert.deepEqual(results.map((r) => (r.status === 'fulfilled' ? r.value : String(r.reason))), [true, true, true, 3]);
  assert.equal(a.getTransactionStatus(), 'T');
  assert.deepEqual(await held(a), [
    ['cut:together-1', false, 'session', 1], ['cut:together-1', true, 'session', 1], ['cut:together-2', false, 'session', 1]]);
  await a.query('COMMIT');
  assert.equal(await pglocks.releaseAll(a), 3n);
  assert.equal(await freeFor(b, pglocks.key('cut:together-3')), true);
});

test('a release sent while a counted acquire runs waits for its turn: the recount is not misled', async () => {
  const a = await connect();
  const b = await connect();
  const k = 'cut:release-between';
  assert.equal(await pglocks.acquire(a, k), true);
  await withStatementTimeout(a);
  // The release is called once the acquire's count is on its way, and is not awaited: without
  // turns its statement would run between the count and the acquire, and the recount would
  // take the acquire's hold for the one the release freed.
  let releasing = null;
  const undo = rewrite(a, (text) => {
    if (releasing === null && text.includes('.pglocks_held()') && !text.includes('pglocks_release')) {
      releasing = pglocks.release(a, k).then((v) => ({ v }), (e) => ({ e }));
    }
    return isAcquire(text) ? `${text}, pg_catalog.pg_sleep(1.5)` : text;
  });
  const acquired = await pglocks.acquire(a, k).then((v) => ({ v }), (e) => ({ e }));
  const released = await releasing;
  undo();
  assert.equal(acquired.e && acquired.e.code, '57014', String(acquired.e));
  assert.equal(released.v, true, String(released.e));
  assert.deepEqual(await held(a), []);
  assert.equal(await freeFor(b, pglocks.key(k)), true);
});

test('calls nested in withLock inside a block take their turns while fn runs: withLock holds none then', async () => {
  const a = await connect();
  await a.query('BEGIN');
  const got = await pglocks.withLock(a, 'cut:outer', async (c) => {
    const inner = await pglocks.withLock(c, 'cut:inner', async (d) => {
      assert.equal(await pglocks.acquire(d, 'cut:nested'), true);
      assert.equal(await pglocks.acquire(d, 'cut:nested-tx', { scope: 'transaction' }), true);
      assert.equal(await pglocks.release(d, 'cut:nested'), true);
      return 'inner';
    });
    return `outer+${inner}`;
  });
  assert.equal(got, 'outer+inner');
  assert.deepEqual(await held(a), [['cut:nested-tx', false, 'transaction', 1]]);
  await a.query('COMMIT');
  assert.deepEqual(await held(a), []);
});

// The statements each call sends (README, "Round trips"), counted on the client.
function counting(client) {
  const sent = [];
  const undo = rewrite(client, (text) => { sent.push(text); return text; });
  return { sent, undo };
}

test('round trips of each call, as the README gives them', async () => {
  const a = await connect();
  const k = 'cut:round-trips';
  assert.equal(await pglocks.tryLock(a, k), true); // the schema is looked up once
  assert.equal(await pglocks.release(a, k), true);
  const cases = [
    ['acquire outside a block', 2, () => pglocks.acquire(a, k), () => pglocks.release(a, k)],
    ['withLock on a client outside a block', 3, () => pglocks.withLock(a, k, () => 1)],
    ['acquire inside a block', 3, () => pglocks.acquire(a, k), () => pglocks.release(a, k), true],
    ["withLock inside a block, scope 'session'", 6, () => pglocks.withLock(a, k, () => 1), null, true],
    ["withLock inside a block, scope 'transaction'", 5, () => pglocks.withLock(a, k, () => 1, { scope: 'transaction' }), null, true],
    ["acquire with scope 'transaction'", 2, () => pglocks.acquire(a, k, { scope: 'transaction' }), null, true],
  ];
  for (const [what, expected, call, cleanup, inBlock] of cases) {
    if (inBlock) await a.query('BEGIN');
    const { sent, undo } = counting(a);
    await call();
    undo();
    assert.equal(sent.length, expected, `${what}: ${sent.join(' | ')}`);
    if (cleanup) await cleanup();
    if (inBlock) await a.query('COMMIT');
  }
  assert.deepEqual(await held(a), []);

  // On a pool: the client withLock takes is not counted before the acquire.
  const p = pool({ max: 1 });
  const sent = [];
  p.on('connect', (c) => rewrite(c, (text) => { sent.push(text); return text; }));
  await pglocks.withLock(p, k, () => 1);
  sent.length = 0;
  await pglocks.withLock(p, k, () => 1);
  assert.equal(sent.length, 3, sent.join(' | '));
});

// Cancels at random (pg_cancel_backend from a third session) while an acquire waits for a
// lock another session is releasing at about the same moment: whatever a round's call
// answered, the session's holds are what it said. A call that rejects leaves no hold; one
// that resolves to true leaves exactly one. A connection pglocks closed (the hold could not
// be counted again) must not hold the lock either.
test('random cancels racing the grant: a rejected acquire never leaves a hold, a granted one exactly one', async () => {
  const b = await connect();
  const c = await connect();
  const k = 'cut:random';
  const lockKey = pglocks.key(k).toString();
  let a = await connect();
  const outcomes = {
    granted: 0, rejected: 0, closed: 0, aborted: 0,
  };
  const rounds = 3000;
  for (let i = 0; i < rounds; i++) {
    const inBlock = i % 2 === 1;
    if (inBlock) await a.query('BEGIN');
    await b.query('SELECT pg_advisory_lock($1::bigint)', [lockKey]);
    const pid = a.processID;
    const acquiring = pglocks.acquire(a, k).then((v) => ({ v }), (e) => ({ e }));
    const delay = (ms) => new Promise((r) => setTimeout(r, ms));
    await Promise.all([
      delay(Math.random() * 3).then(() => b.query('SELECT pg_advisory_unlock($1::bigint)', [lockKey])),
      delay(Math.random() * 3).then(() => c.query('SELECT pg_cancel_backend($1)', [pid])),
    ]);
    const result = await acquiring;
    if (a._ending) {
      outcomes.closed += 1;
      assert.ok(result.e instanceof pglocks.ConnectionClosedError, `round ${i}: ${result.e}`);
      assert.equal(await backendGone(c, pid), true);
      a = await connect();
      continue;
    }
    if (inBlock && a.getTransactionStatus() === 'E') {
      // The cancel hit the savepoint the call takes before anything else: the block is
      // aborted, as by any failed statement, and nothing was acquired. Session holds outlive
      // the ROLLBACK.
      assert.ok(result.e, `round ${i}: an aborted block after a successful call`);
      outcomes.aborted += 1;
      await a.query('ROLLBACK');
    } else if (inBlock) {
      assert.equal(a.getTransactionStatus(), 'T', `round ${i}: the block goes on`);
    }
    const holds = await held(a);
    if (result.e) {
      assert.equal(result.e.code, '57014', `round ${i}: ${result.e}`);
      outcomes.rejected += 1;
      assert.deepEqual(holds, [], `round ${i}: rejected, yet held`);
    } else {
      assert.equal(result.v, true);
      outcomes.granted += 1;
      assert.deepEqual(holds, [[k, false, 'session', 1]], `round ${i}`);
      assert.equal(await pglocks.release(a, k), true);
    }
    if (inBlock && a.getTransactionStatus() === 'T') await a.query('COMMIT');
  }
  // Both outcomes happened, or the race was not run.
  assert.ok(outcomes.granted > 0 && outcomes.rejected > 0, JSON.stringify(outcomes));
  console.log(`random cancels: ${JSON.stringify(outcomes)}`);
});
