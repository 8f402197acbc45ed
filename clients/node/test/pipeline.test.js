'use strict';

// node-postgres' pipeline mode is refused: the calls read the connection's state between
// statements, which a pipelined connection does not keep in step.

const assert = require('node:assert/strict');
const { test, after } = require('node:test');
const pglocks = require('..');
const { UnsupportedClientError } = pglocks;
const { connect, pool, closeAll, held } = require('./helpers');

after(closeAll);

test('a pipelined client is refused with UnsupportedClientError, before anything is sent', async () => {
  const a = await connect({ pipeline: true });
  let ran = false;
  await assert.rejects(pglocks.withLock(a, 'pl:k', () => { ran = true; }), UnsupportedClientError);
  assert.equal(ran, false);
  await assert.rejects(pglocks.acquire(a, 'pl:k'), UnsupportedClientError);
  await assert.rejects(pglocks.tryLock(a, 'pl:k'), UnsupportedClientError);
  await assert.rejects(pglocks.release(a, 'pl:k'), UnsupportedClientError);
  await assert.rejects(pglocks.releaseAll(a), UnsupportedClientError);
  const b = await connect();
  assert.deepEqual(await held(b), []);
});

test("withLock on a pool of pipelined clients is refused, and the connection goes back without a lock", async () => {
  const p = pool({ pipeline: true, max: 1 });
  let ran = false;
  await assert.rejects(pglocks.withLock(p, 'pl:pool', () => { ran = true; }), UnsupportedClientError);
  assert.equal(ran, false);
});
