'use strict';

// Clients of another shape than node-postgres' JavaScript one, without a server: pg-native
// (pg/lib/native/client.js) keeps _activeQuery set after a query ended, which is not a query
// still running. A stub of its shape answers like a server.

const assert = require('node:assert/strict');
const { test } = require('node:test');
const { EventEmitter } = require('node:events');
const pglocks = require('..');

function nativeShaped({ withHasActive }) {
  const sent = [];
  const stub = Object.assign(new EventEmitter(), {
    native: {},
    _ending: false,
    _queryable: true,
    _activeQuery: null,
    getTransactionStatus: () => 'I',
    connect: async () => {},
    async end() { this._ending = true; sent.push('END'); },
    async query(q) {
      const text = typeof q === 'string' ? q : q.text;
      sent.push(text);
      this._activeQuery = { text, state: 'end' };
      return { rows: [[text.includes('pg_extension') ? 'public' : true, '0']] };
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
