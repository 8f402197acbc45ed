'use strict';

const assert = require('node:assert/strict');
const { test, after } = require('node:test');
const pglocks = require('..');
const { connect, closeAll, one, freeFor } = require('./helpers');

after(closeAll);

// The specification's test vectors, key -> pglocks_key.
const VECTORS = [
  ['', -2039914840885289964n],
  ['some lock', -5006958056254205714n],
  ['orders:42', -8476019149258318077n],
  ['Grüße', -559005354142841542n],
  ['日本語', 8606672379249086371n],
];

// Keys where implementations go wrong: digits, composed and decomposed accents, a
// character outside the Basic Multilingual Plane (a surrogate pair in a JavaScript
// string), a lone surrogate, spaces, and a key longer than one hash block.
const EXTRA = ['42', '-1', '\u00e9', 'e\u0301', '\u{1F512} lock', '  padded  ', "O'Reilly", `ключ:${'k'.repeat(5000)}`];

test('key() gives the specification vectors', () => {
  for (const [name, want] of VECTORS) assert.equal(pglocks.key(name), want, JSON.stringify(name));
});

test("key() equals the server's pglocks_key", async () => {
  const client = await connect();
  for (const name of [...VECTORS.map(([n]) => n), ...EXTRA]) {
    // A bigint column arrives as a decimal string: exact.
    const server = BigInt(await one(client, 'SELECT pglocks_key($1)', [name]));
    assert.equal(pglocks.key(name), server, JSON.stringify(name.slice(0, 40)));
  }
});

test('key() refuses what is not a string', () => {
  for (const bad of [42, 42n, null, undefined, Buffer.from('x'), ['a']]) {
    assert.throws(() => pglocks.key(bad), TypeError);
  }
});

test('a string key is the bigint lock key(name): pglocks and the core functions exclude each other', async () => {
  const a = await connect();
  const b = await connect();
  const name = 'keys:text';
  assert.equal(await pglocks.tryLock(a, name), true);
  assert.equal(await freeFor(b, pglocks.key(name)), false);
  assert.equal(await pglocks.release(a, name), true);
  assert.equal(await freeFor(b, pglocks.key(name)), true);
});

test('a BigInt or number key is the lock of pg_advisory_lock(key), not the text key', async () => {
  const a = await connect();
  const b = await connect();
  for (const k of [-8476019149258318077n, 9007199254740993n, 42, -7]) {
    assert.equal(await pglocks.tryLock(a, k), true, String(k));
    assert.equal(await freeFor(b, BigInt(k)), false, String(k));
    // The text key with the same digits is another lock.
    assert.equal(await pglocks.tryLock(b, String(k)), true, String(k));
    assert.equal(await pglocks.release(b, String(k)), true);
    assert.equal(await pglocks.release(a, k), true);
    assert.equal(await freeFor(b, BigInt(k)), true, String(k));
  }
});

test('a pair key is the lock of pg_advisory_lock(a, b)', async () => {
  const a = await connect();
  const b = await connect();
  assert.equal(await pglocks.tryLock(a, [7, -2147483648]), true);
  assert.equal(await one(b, 'SELECT pg_try_advisory_lock(7, -2147483648)'), false);
  assert.equal(await one(b, 'SELECT pglocks_acquire(7, -2147483648, wait => false)'), false);
  assert.equal(await pglocks.release(a, [7, -2147483648]), true);
  assert.equal(await one(b, 'SELECT pg_try_advisory_lock(7, -2147483648)'), true);
  assert.equal(await one(b, 'SELECT pg_advisory_unlock(7, -2147483648)'), true);
});

test('keys that name no lock are refused before anything is sent', async () => {
  const a = await connect();
  for (const bad of [1.5, 2 ** 53, NaN, 2n ** 63n, -(2n ** 63n) - 1n, [1], [1, 2, 3], [1, 2 ** 31], [1.5, 2], null, {}, true]) {
    await assert.rejects(pglocks.tryLock(a, bad), (err) => err instanceof TypeError || err instanceof RangeError,
      String(bad));
  }
  // The extremes of each form are keys.
  for (const k of [2n ** 63n - 1n, -(2n ** 63n), Number.MAX_SAFE_INTEGER, [2147483647, -2147483648]]) {
    assert.equal(await pglocks.tryLock(a, k), true, String(k));
    assert.equal(await pglocks.release(a, k), true, String(k));
  }
});
