// pglocks for Node.js: named PostgreSQL advisory locks through node-postgres (pg).
//
// Every call is one SQL statement of the pglocks extension on the connection given; the
// only thing computed here is key(name), the same number as the server's pglocks_key.
'use strict';

const crypto = require('node:crypto');

const INT64_MIN = -(2n ** 63n);
const INT64_MAX = 2n ** 63n - 1n;
const INT32_MIN = -(2 ** 31);
const INT32_MAX = 2 ** 31 - 1;

/**
 * pglocks_key(name) computed locally: the first 8 bytes of SHA-256 over the name's UTF-8
 * bytes, read big-endian as a signed 64-bit integer. A BigInt, since a Number cannot hold
 * every 64-bit key exactly.
 */
function key(name) {
  if (typeof name !== 'string') {
    throw new TypeError(`pglocks key(): the name must be a string, not ${describe(name)}`);
  }
  return crypto.createHash('sha256').update(name, 'utf8').digest().readBigInt64BE(0);
}

/** Thrown by withLock when wait: false or a timeout leaves the lock to somebody else. */
class LockNotAcquiredError extends Error {
  constructor(lockKey, { shared = false, timeout = null } = {}) {
    const how = timeout === null || timeout === undefined
      ? 'without waiting'
      : `within ${typeof timeout === 'number' ? `${timeout} ms` : timeout}`;
    super(`pglocks: ${shared ? 'shared' : 'exclusive'} lock ${showKey(lockKey)} not acquired ${how}: another session holds it`);
    this.name = 'LockNotAcquiredError';
    this.code = 'PGLOCKS_NOT_ACQUIRED';
    this.key = lockKey;
    this.shared = shared;
    this.timeout = timeout === undefined ? null : timeout;
  }
}

function describe(value) {
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'an array';
  return typeof value === 'object' ? 'an object' : `${typeof value} ${String(value)}`;
}

function showKey(k) {
  if (typeof k === 'string') return JSON.stringify(k);
  if (Array.isArray(k)) return `(${k[0]}, ${k[1]})`;
  return String(k);
}

// The SQL arguments of a key, with their casts. An untyped parameter would pick the text
// form of the overloaded functions, so every form says its type.
function keyArgs(k) {
  if (typeof k === 'string') return { sql: ['$1::text'], values: [k] };
  if (typeof k === 'bigint') {
    if (k < INT64_MIN || k > INT64_MAX) throw new RangeError(`pglocks: key ${k} is outside the bigint range`);
    return { sql: ['$1::bigint'], values: [k.toString()] };
  }
  if (typeof k === 'number') {
    if (!Number.isSafeInteger(k)) {
      throw new TypeError(`pglocks: a number key must be a safe integer (use a BigInt beyond 2^53), not ${k}`);
    }
    return { sql: ['$1::bigint'], values: [String(k)] };
  }
  if (Array.isArray(k) && k.length === 2) {
    for (const part of k) {
      if (!Number.isInteger(part) || part < INT32_MIN || part > INT32_MAX) {
        throw new TypeError(`pglocks: a pair key is two 32-bit integers, not ${describe(part)}`);
      }
    }
    return { sql: ['$1::integer', '$2::integer'], values: [String(k[0]), String(k[1])] };
  }
  throw new TypeError(
    `pglocks: a key is a string, a BigInt or integer, or a pair [integer, integer], not ${describe(k)}`);
}

// A timeout is milliseconds (a number) or a PostgreSQL interval ('2s', '1 minute').
function intervalArg(timeout) {
  if (timeout === undefined || timeout === null) return null;
  if (typeof timeout === 'number') {
    if (!Number.isFinite(timeout) || timeout < 0) {
      throw new RangeError(`pglocks: timeout must be a non-negative number of milliseconds, not ${timeout}`);
    }
    return `${timeout} milliseconds`;
  }
  if (typeof timeout === 'string') return timeout;
  throw new TypeError(`pglocks: timeout is milliseconds or an interval string, not ${describe(timeout)}`);
}

function boolArg(name, value, dflt) {
  if (value === undefined) return dflt;
  if (typeof value !== 'boolean') throw new TypeError(`pglocks: ${name} must be true or false, not ${describe(value)}`);
  return value;
}

function scopeArg(scope) {
  if (scope === undefined) return 'session';
  if (scope !== 'session' && scope !== 'transaction') {
    throw new TypeError(`pglocks: scope is 'session' or 'transaction', not ${describe(scope)}`);
  }
  return scope;
}

// A pg.Pool hands each query to whichever connection is free: a lock taken through it is
// held by a connection nobody can name, and released (if at all) on another one.
function isPool(db) {
  return db !== null && typeof db === 'object' && typeof db.totalCount === 'number'
    && typeof db.connect === 'function' && typeof db.release !== 'function';
}

function needClient(db, what) {
  if (isPool(db)) {
    throw new TypeError(`pglocks ${what}(): a lock belongs to one connection; take a client from the pool `
      + '(const client = await pool.connect()) and call it on that client');
  }
  if (db === null || typeof db !== 'object' || typeof db.query !== 'function') {
    throw new TypeError(`pglocks ${what}(): the first argument must be a pg.Client or a client of a pg.Pool`);
  }
}

// A transaction-scope hold taken outside a transaction block ends with its own statement:
// the caller would go on believing it holds the lock. pg reports the connection's
// transaction status ('I' idle, 'T' in a block, 'E' in a failed block) since 8.x.
function needTransactionBlock(client, what) {
  const status = typeof client.getTransactionStatus === 'function' ? client.getTransactionStatus() : null;
  if (status === 'I') {
    throw new Error(`pglocks ${what}(): scope 'transaction' needs a transaction block on this client `
      + "(BEGIN first); outside one the hold would end with the acquiring statement");
  }
}

async function scalar(client, text, values) {
  const result = await client.query({ text, values, rowMode: 'array' });
  return result.rows[0][0];
}

async function acquireOn(client, lockKey, { shared, wait, timeout, scope }, what) {
  const k = keyArgs(lockKey);
  const n = k.values.length;
  const sharedArg = boolArg('shared', shared, false);
  const waitArg = boolArg('wait', wait, true);
  const timeoutArg = intervalArg(timeout);
  const scopeName = scopeArg(scope);
  if (!waitArg && timeoutArg !== null) {
    throw new TypeError(`pglocks ${what}(): give either wait: false (try once) or a timeout, not both`);
  }
  if (scopeName === 'transaction') needTransactionBlock(client, what);
  const text = `SELECT pglocks_acquire(${k.sql.join(', ')}, shared => $${n + 1}::boolean, `
    + `wait => $${n + 2}::boolean, timeout => $${n + 3}::interval, scope => $${n + 4}::text)`;
  return scalar(client, text, [...k.values, sharedArg, waitArg, timeoutArg, scopeName]);
}

async function releaseOn(client, lockKey, shared) {
  const k = keyArgs(lockKey);
  const text = `SELECT pglocks_release(${k.sql.join(', ')}, shared => $${k.values.length + 1}::boolean)`;
  return scalar(client, text, [...k.values, shared]);
}

/**
 * Takes the lock on this client's session: true once held. With wait: false it tries
 * once, with a timeout it waits at most that long; both resolve to false when another
 * session keeps the lock. Each true needs a release().
 */
async function acquire(client, lockKey, options = {}) {
  needClient(client, 'acquire');
  return acquireOn(client, lockKey, options, 'acquire');
}

/**
 * acquire() without waiting (or, given a timeout, waiting at most that long): true if
 * taken, false if another session holds the lock.
 */
async function tryLock(client, lockKey, options = {}) {
  needClient(client, 'tryLock');
  const { timeout } = options;
  const wait = timeout !== undefined && timeout !== null;
  return acquireOn(client, lockKey, { ...options, wait }, 'tryLock');
}

/** Releases one hold of the lock in that mode: true, or false when this session has none. */
async function release(client, lockKey, options = {}) {
  needClient(client, 'release');
  return releaseOn(client, lockKey, boolArg('shared', options.shared, false));
}

/** Releases every hold this session took through pglocks; resolves to how many. */
async function releaseAll(client) {
  needClient(client, 'releaseAll');
  return BigInt(await scalar(client, 'SELECT pglocks_release_all()', []));
}

function isAbortedTransaction(err) {
  return err !== null && typeof err === 'object' && err.code === '25P02';
}

// Runs fn under the lock on one client. Resolves to { value } or rejects; `kept` tells the
// caller that a session hold could not be released (the connection is then unsafe to reuse).
async function withLockOn(client, lockKey, fn, options, state) {
  const shared = boolArg('shared', options.shared, false);
  const scope = scopeArg(options.scope);
  const acquired = await acquireOn(client, lockKey, { ...options, shared, scope }, 'withLock');
  if (!acquired) {
    throw new LockNotAcquiredError(lockKey, { shared, timeout: options.wait === false ? null : options.timeout });
  }
  let result;
  try {
    result = await fn(client);
  } catch (err) {
    if (scope === 'session') {
      try {
        await releaseOn(client, lockKey, shared);
      } catch (releaseErr) {
        // fn's error is the one the caller gets; the hold it leaves is reported aside.
        state.kept = true;
        process.emitWarning(
          `pglocks withLock(): ${showKey(lockKey)} is still held by this session: its release failed `
          + `(${releaseErr.message}) after the function failed. Inside a transaction block use `
          + "scope: 'transaction', whose hold ends with the transaction.",
          { code: 'PGLOCKS_NOT_RELEASED' });
      }
    }
    throw err;
  }
  if (scope === 'session') {
    try {
      await releaseOn(client, lockKey, shared);
    } catch (releaseErr) {
      state.kept = true;
      throw releaseErr;
    }
  }
  return result;
}

/**
 * Runs fn(client) while holding the lock and releases it however fn ends (returns,
 * throws, rejects); resolves to what fn resolves to, rejects with what fn throws.
 *
 * When the lock is not obtained (wait: false, or the timeout ran out) fn does not run and
 * the promise rejects with LockNotAcquiredError.
 *
 * scope: 'transaction' needs a transaction block on the client (BEGIN first); the hold then
 * lasts until that transaction commits or rolls back, so the next holder sees what fn wrote.
 *
 * Given a pg.Pool, it takes a client from the pool for the lock and fn, and gives it back
 * at the end (closing it instead if a hold could not be released).
 */
async function withLock(db, lockKey, fn, options = {}) {
  if (typeof fn !== 'function') throw new TypeError('pglocks withLock(): the third argument must be a function');
  if (options === null || typeof options !== 'object') throw new TypeError('pglocks withLock(): options must be an object');
  if (isPool(db)) {
    if (options.scope === 'transaction') {
      throw new TypeError("pglocks withLock(): scope 'transaction' needs a transaction block, which a pool "
        + 'connection taken here has not; take a client, BEGIN, and call withLock on that client');
    }
    keyArgs(lockKey);
    const client = await db.connect();
    const state = { kept: false };
    try {
      return await withLockOn(client, lockKey, fn, options, state);
    } finally {
      // A connection that may still hold the lock is closed, which releases it.
      client.release(state.kept ? new Error('pglocks: closing a connection that kept a lock') : undefined);
    }
  }
  needClient(db, 'withLock');
  return withLockOn(db, lockKey, fn, options, { kept: false });
}

/**
 * Runs an SQL command under the lock in the server, through pglocks_with_lock: lock, command
 * and release in one round trip, the lock released however the command ends. Resolves to
 * true when the command ran, false when the lock was not obtained (wait: false or timeout);
 * an error of the command rejects. params bind $1 ... $n of the command; they are sent as
 * text[], so cast in the command where another type is meant ($2::int).
 */
async function withLockCommand(db, lockKey, command, options = {}) {
  if (typeof command !== 'string') throw new TypeError('pglocks withLockCommand(): the command must be a string');
  if (db === null || typeof db !== 'object' || typeof db.query !== 'function') {
    throw new TypeError('pglocks withLockCommand(): the first argument must be a pg.Client, a pool client or a pg.Pool');
  }
  const k = keyArgs(lockKey);
  const shared = boolArg('shared', options.shared, false);
  const wait = boolArg('wait', options.wait, true);
  const timeout = intervalArg(options.timeout);
  if (!wait && timeout !== null) {
    throw new TypeError('pglocks withLockCommand(): give either wait: false (try once) or a timeout, not both');
  }
  const values = [...k.values, command];
  let paramsSql = '';
  if (options.params !== undefined) {
    if (!Array.isArray(options.params)) throw new TypeError('pglocks withLockCommand(): params must be an array');
    values.push(options.params.map((v) => (v === null || v === undefined ? null : paramText(v))));
    paramsSql = `, $${values.length}::text[]`;
  }
  const n = values.length;
  const text = `SELECT pglocks_with_lock(${k.sql.join(', ')}, $${k.values.length + 1}::text${paramsSql}, `
    + `shared => $${n + 1}::boolean, wait => $${n + 2}::boolean, timeout => $${n + 3}::interval)`;
  // One statement: a pool may run it on any connection, since nothing outlives it.
  const result = await db.query({ text, values: [...values, shared, wait, timeout], rowMode: 'array' });
  return result.rows[0][0];
}

function paramText(v) {
  if (typeof v === 'string') return v;
  if (typeof v === 'number' || typeof v === 'bigint' || typeof v === 'boolean') return String(v);
  if (v instanceof Date) return v.toISOString();
  if (Buffer.isBuffer(v)) return `\\x${v.toString('hex')}`;
  return JSON.stringify(v);
}

module.exports = {
  key,
  acquire,
  tryLock,
  release,
  releaseAll,
  withLock,
  withLockCommand,
  LockNotAcquiredError,
};
