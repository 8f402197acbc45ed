'use strict';

// What the calls do with the connection itself: a session the server ended, cancel requests
// aimed at the connection's own server and only at a statement that still runs.

const assert = require('node:assert/strict');
const { test, after } = require('node:test');
const pglocks = require('..');
const { ConnectionClosedError } = pglocks;
const {
  connect, closeAll, one, waitUntilWaiting, backendGone, advisoryLocksOf,
} = require('./helpers');

after(closeAll);

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
// A connection the server may close under the test: its 'error' event is expected.
const quiet = (client) => { client.on('error', () => {}); return client; };

test('a session the server ends while an acquire waits: ConnectionClosedError, from the connection', async () => {
  const a = await connect();
  const b = quiet(await connect());
  const observer = await connect();
  const k = 'wlc:terminated';
  assert.equal(await pglocks.acquire(a, k), true);
  const pending = pglocks.acquire(b, k).then(() => assert.fail('resolved'), (e) => e);
  await waitUntilWaiting(observer, b);
  assert.equal(await one(observer, 'SELECT pg_terminate_backend($1)', [b.processID]), true);
  const err = await pending;
  assert.ok(err instanceof ConnectionClosedError, String(err));
  assert.equal(err.cause.code, '57P01');
  assert.equal(err.key, k);
  assert.equal(await pglocks.release(a, k), true);
});

test('a cancel request goes to the server the socket is connected to, not to the host of the config', async () => {
  const a = await connect();
  const observer = await connect();
  const k = 'wlc:peer';
  assert.equal(await pglocks.acquire(a, k), true);
  const b = await connect({ host: '127.0.0.1', query_timeout: 300 });
  const pid = b.processID;
  // As when a name resolves to several servers: the config names another one than the peer.
  b.host = '127.0.0.2';
  b.port = 1;
  await assert.rejects(pglocks.acquire(b, k), ConnectionClosedError);
  // The waiting acquire was cancelled: its backend is gone while a still holds the lock.
  assert.ok(await backendGone(observer, pid, 3000), 'the backend of the timed-out acquire still waits');
  assert.deepEqual(await advisoryLocksOf(observer, pid), []);
  assert.equal(await pglocks.release(a, k), true);
});

test('a timed-out acquire that never reached the server sends no cancel request: a query of the application is not cancelled', async () => {
  const b = quiet(await connect({ query_timeout: 300 }));
  // The application's own query runs; the acquire queued behind it times out in the client.
  const other = b.query({ text: 'SELECT pg_sleep(1.5)', query_timeout: 10000 }).then(() => null, (e) => e);
  await assert.rejects(pglocks.acquire(b, 'wlc:queued'), ConnectionClosedError);
  const otherError = await other;
  assert.notEqual(otherError && otherError.code, '57014', 'a cancel request hit the application\'s query');
});
