'use strict';

// What withLock leaves on a connection that goes back to a pool, or on to the caller: no hold
// of its own when fn failed with another connection's error, or when the statement before fn
// failed; a pool connection still holding an advisory lock is closed, not given back.

const assert = require('node:assert/strict');
const { test, after } = require('node:test');
const { Client } = require('pg');
const pglocks = require('..');
const { ConnectionClosedError, LockNotReleasedError } = pglocks;
const {
  connect, pool, closeAll, held, freeFor,
} = require('./helpers');

after(closeAll);

// fn fails with a ConnectionClosedError of a connection of its own (node-postgres'
// query_timeout while it waits for a lock another session holds).
async function foreignConnectionClosed(holderKey) {
  const other = new Client({ query_timeout: 200 });
  other.on('error', () => {});
  await other.connect();
  try {
    await pglocks.acquire(other, holderKey);
  } finally {
    await other.end().catch(() => {});
  }
}

test("a ConnectionClosedError of another connection in fn still releases this client's lock", async () => {
  const holder = await connect();
  const a = await connect();
  const b = await connect();
  await pglocks.acquire(holder, 'wgb:other');
  const err = await pglocks.withLock(a, 'wgb:outer', () => foreignConnectionClosed('wgb:other')).then(() => null, (e) => e);
  assert.ok(err instanceof ConnectionClosedError);
  assert.equal(a.getTransactionStatus(), 'I');
  assert.deepEqual(await held(a), []);
  assert.equal(await freeFor(b, pglocks.key('wgb:outer')), true);
  await pglocks.release(holder, 'wgb:other');
});

test("with a pool, another connection's ConnectionClosedError in fn gives the connection back without the lock", async () => {
  const holder = await connect();
  const b = await connect();
  const p = pool({ max: 1 });
  await pglocks.acquire(holder, 'wgb:other2');
  const err = await pglocks.withLock(p, 'wgb:outer2', () => foreignConnectionClosed('wgb:other2')).then(() => null, (e) => e);
  assert.ok(err instanceof ConnectionClosedError);
  assert.equal(await freeFor(b, pglocks.key('wgb:outer2')), true);
  const c = await p.connect();
  try {
    assert.deepEqual(await held(c), []);
  } finally {
    c.release();
  }
  await pglocks.release(holder, 'wgb:other2');
});

test('a pool connection on which fn kept an advisory lock of its own goes back with every advisory lock released, and the check reads no pg_locks', async () => {
  const b = await connect();
  const p = pool({ max: 1 });
  let pid;
  const sent = [];
  // fn takes a lock of its own and keeps it: the connection must not go back with it.
  const got = await pglocks.withLock(p, 'wgb:kept-outer', async (c) => {
    pid = c.processID;
    await c.query('SELECT pg_advisory_lock(4242)');
    const query = c.query;
    c.query = function recorded(config, ...rest) {
      sent.push(typeof config === 'string' ? config : config.text);
      return query.call(this, config, ...rest);
    };
    return 'done';
  });
  assert.equal(got, 'done');
  assert.equal(await freeFor(b, 4242n), true);
  assert.equal(sent.some((t) => /pg_locks/.test(t)), false, sent.join('\n'));
  const c = await p.connect();
  try {
    assert.equal(c.processID, pid, 'given back, not closed');
    delete c.query;
  } finally {
    c.release();
  }
});

test('a pool connection that still holds a lock taken through pglocks after withLock is closed, not given back', async () => {
  const b = await connect();
  const p = pool({ max: 1 });
  let pid;
  const got = await pglocks.withLock(p, 'wgb:kept-pglocks', async (c) => {
    pid = c.processID;
    await pglocks.acquire(c, 'wgb:kept-inner');
    return 'done';
  });
  assert.equal(got, 'done');
  assert.equal(p.totalCount, 0);
  assert.equal(await freeFor(b, pglocks.key('wgb:kept-inner')), true);
  const c = await p.connect();
  try {
    assert.notEqual(c.processID, pid);
  } finally {
    c.release();
  }
});

test('when the statement before fn fails, a lock that cannot be released rejects with LockNotReleasedError and the pool client is closed on give-back', async () => {
  const p = pool({ max: 1 });
  const b = await connect();
  const c = await p.connect();
  const pid = c.processID;
  const query = c.query;
  // The statement before fn (the mark and the cursor) releases withLock's savepoint instead,
  // then fails with a server error (as a statement_timeout would): no savepoint to roll back to.
  c.query = function failingSavepoint(q, ...rest) {
    const m = q && typeof q.text === 'string' && /DECLARE (pglocks_\w+) NO SCROLL CURSOR/.exec(q.text);
    if (m) {
      return query.call(this, { ...q, text: `RELEASE SAVEPOINT ${m[1]}; SELECT 1/0` }, ...rest);
    }
    return query.call(this, q, ...rest);
  };
  let ran = false;
  try {
    await c.query('BEGIN');
    const err = await pglocks.withLock(c, 'wgb:mark', () => { ran = true; }).then(() => null, (e) => e);
    assert.equal(ran, false);
    assert.ok(err instanceof LockNotReleasedError, String(err));
    assert.equal(err.lockStillHeld, true);
    assert.equal(err.cause.code, '22012');
    await c.query('ROLLBACK');
  } finally {
    c.query = query;
    c.release();
  }
  assert.equal(await freeFor(b, pglocks.key('wgb:mark')), true);
  const d = await p.connect();
  try {
    assert.notEqual(d.processID, pid);
  } finally {
    d.release();
  }
});
