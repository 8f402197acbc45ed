'use strict';

const assert = require('node:assert/strict');
const { test, after } = require('node:test');
const pglocks = require('..');
const { connect, closeAll, held, waitUntilWaiting } = require('./helpers');

after(closeAll);

test('tryLock is false while another client holds the lock, true once it is free', async () => {
  const a = await connect();
  const b = await connect();
  const k = 'try:basic';
  assert.equal(await pglocks.tryLock(a, k), true);
  const started = Date.now();
  assert.equal(await pglocks.tryLock(b, k), false);
  assert.ok(Date.now() - started < 2000);
  assert.deepEqual(await held(b), []);
  // The holder itself may take it again: holds are counted.
  assert.equal(await pglocks.tryLock(a, k), true);
  assert.deepEqual(await held(a), [[k, false, 'session', 2]]);
  assert.equal(await pglocks.release(a, k), true);
  assert.equal(await pglocks.tryLock(b, k), false);
  assert.equal(await pglocks.release(a, k), true);
  assert.equal(await pglocks.tryLock(b, k), true);
  assert.equal(await pglocks.release(b, k), true);
  // Releasing what is not held is false, not an error.
  assert.equal(await pglocks.release(b, k), false);
});

test('tryLock with a timeout waits at most that long', async () => {
  const a = await connect();
  const b = await connect();
  const k = 'try:timeout';
  assert.equal(await pglocks.acquire(a, k), true);
  const started = Date.now();
  assert.equal(await pglocks.tryLock(b, k, { timeout: 250 }), false);
  const waited = Date.now() - started;
  assert.ok(waited >= 200 && waited < 5000, `waited ${waited} ms`);
  assert.equal(await pglocks.acquire(b, k, { timeout: 0 }), false);
  assert.equal(await pglocks.acquire(b, k, { wait: false }), false);
  assert.deepEqual(await held(b), []);
  assert.equal(await pglocks.release(a, k), true);
});

test('acquire waits for the lock without a limit', async () => {
  const a = await connect();
  const b = await connect();
  const observer = await connect();
  const k = 'try:wait';
  assert.equal(await pglocks.acquire(a, k), true);
  const waiting = pglocks.acquire(b, k);
  await waitUntilWaiting(observer, b);
  assert.equal(await pglocks.release(a, k), true);
  assert.equal(await waiting, true);
  assert.deepEqual(await held(b), [[k, false, 'session', 1]]);
  assert.equal(await pglocks.release(b, k), true);
});

test('shared tries: shared holders coexist, exclusive and shared exclude each other', async () => {
  const a = await connect();
  const b = await connect();
  const k = 'try:shared';
  assert.equal(await pglocks.tryLock(a, k, { shared: true }), true);
  assert.equal(await pglocks.tryLock(b, k, { shared: true }), true);
  assert.equal(await pglocks.tryLock(b, k), false);
  // A shared hold is released as shared.
  assert.equal(await pglocks.release(a, k), false);
  assert.equal(await pglocks.release(a, k, { shared: true }), true);
  assert.equal(await pglocks.release(b, k, { shared: true }), true);
  assert.equal(await pglocks.tryLock(a, k), true);
  assert.equal(await pglocks.tryLock(b, k, { shared: true }), false);
  assert.equal(await pglocks.release(a, k), true);
});

test("tryLock with scope 'transaction' ends with the transaction", async () => {
  const a = await connect();
  const b = await connect();
  const k = 'try:xact';
  await a.query('BEGIN');
  assert.equal(await pglocks.tryLock(a, k, { scope: 'transaction' }), true);
  assert.equal(await pglocks.tryLock(b, k), false);
  await a.query('COMMIT');
  assert.deepEqual(await held(a), []);
  assert.equal(await pglocks.tryLock(b, k), true);
  assert.equal(await pglocks.release(b, k), true);
});

test('releaseAll releases every hold of the session and counts them', async () => {
  const a = await connect();
  const b = await connect();
  assert.equal(await pglocks.acquire(a, 'try:all-1'), true);
  assert.equal(await pglocks.acquire(a, 'try:all-1'), true);
  assert.equal(await pglocks.acquire(a, 42n, { shared: true }), true);
  assert.equal(await pglocks.acquire(a, [1, 2]), true);
  assert.equal(await pglocks.releaseAll(a), 4n);
  assert.deepEqual(await held(a), []);
  assert.equal(await pglocks.tryLock(b, 'try:all-1'), true);
  assert.equal(await pglocks.releaseAll(b), 1n);
});
