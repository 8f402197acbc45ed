'use strict';

// Clients of another shape than node-postgres' JavaScript one, without a server: pg-native
// (pg/lib/native/client.js) keeps _activeQuery set after a query ended, which is not a query
// still running. A stub of its shape answers like a server.

const assert = require('node:assert/strict');
const { test } = require('node:test');
const { EventEmitter } = require('node:events');
const pglocks = require('..');

// The rows a server would answer each statement of pglocks' with (a lock always free).
function answer(text) {
  if (text.includes('pg_extension')) return [['public']];
  if (text.startsWith('SELECT v OR c')) return [[true, true, null, '0']];
  const mark = /set_config\('pglocks_node.savepoints', .*'(pglocks_[0-9a-f]{8}_\d+)'\), true\)/.exec(text);
  if (mark) return [[mark[1]]];
  if (text.includes('.pglocks_release(')) return [[true, '0']];
  if (text.includes('.pglocks_acquire(')) return [[true]];
  if (text.includes('.pglocks_held()')) return [['0']];
  return [];
}

function nativeShaped({ withHasActive, status = 'I' }) {
  const sent = [];
  const stub = Object.assign(new EventEmitter(), {
    native: {},
    _ending: false,
    _queryable: true,
    _activeQuery: null,
    getTransactionStatus: () => status,
    connect: async () => {},
    async end() { this._ending = true; sent.push('END'); },
    async query(q) {
      const text = typeof q === 'string' ? q : q.text;
      sent.push(text);
      this._activeQuery = { text, state: 'end' };
      // pg-native sends a query with a values array (even an empty one) as a prepared
      // statement, which holds one statement only.
      if (typeof q === 'object' && Array.isArray(q.values) && text.includes(';')) {
        throw Object.assign(new Error('cannot insert multiple commands into a prepared statement'),
          { severity: 'ERROR', code: '42601' });
      }
      return { rows: answer(text) };
    },
  });
  if (withHasActive) {
    stub._hasActiveQuery = function hasActive() {
      return Boolean(this._activeQuery) && this._activeQuery.state !== 'error' && this._activeQuery.state !== 'end';
    };
  }
  return { stub, sent };
}

for (const withHasActive of [true, false]) {
  test(`pg-native's shape${withHasActive ? '' : ' without _hasActiveQuery'}: a query that ended is not taken for one still running when fn fails`, async () => {
    const { stub, sent } = nativeShaped({ withHasActive });
    await assert.rejects(pglocks.withLock(stub, 'cs:n', async (c) => {
      await c.query('SELECT 1');
      throw new Error('validation failed');
    }), /validation failed/);
    assert.ok(!sent.includes('END'), 'the connection was not closed');
    assert.ok(sent.some((t) => t.includes('pglocks_release')), 'the lock was released');
  });
}

test("pg-native's shape inside a transaction block: one statement per query, the calls work", async () => {
  const { stub, sent } = nativeShaped({ withHasActive: true, status: 'T' });
  assert.equal(await pglocks.acquire(stub, 'cs:block'), true);
  assert.equal(await pglocks.tryLock(stub, 'cs:block', { timeout: 100 }), true);
  assert.equal(await pglocks.withLock(stub, 'cs:block', async (c) => { await c.query('SELECT 1'); return 'done'; }), 'done');
  await assert.rejects(pglocks.withLock(stub, 'cs:block', async () => { throw new Error('fn failed'); }), /fn failed/);
  assert.ok(!sent.includes('END'), 'the connection was not closed');
  assert.ok(sent.some((t) => t.startsWith('SAVEPOINT ')), sent.join('\n'));
  assert.ok(sent.some((t) => t.startsWith('DECLARE ')), sent.join('\n'));
  assert.ok(sent.some((t) => t.startsWith('ROLLBACK TO SAVEPOINT ')), sent.join('\n'));
});
