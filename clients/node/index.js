// pglocks for Node.js: named PostgreSQL advisory locks through node-postgres (pg).
//
// Every call is one SQL statement of the pglocks extension on the connection given; the
// only thing computed here is key(name), the same number as the server's pglocks_key.
'use strict';

const crypto = require('node:crypto');
const net = require('node:net');

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

/**
 * Rejects withLock when it could not release the session hold it took after fn ended: fn
 * (or the caller before it) left the connection in a state where the release cannot run,
 * typically a transaction block that fn's SQL error aborted and that no savepoint of
 * withLock's covers. lockStillHeld says whether the caller's connection still holds the
 * lock (release it, or end the connection; a pool client is closed when given back) or the
 * connection was closed, which ended the hold. cause is fn's error when fn failed, else the
 * release's.
 */
class LockNotReleasedError extends Error {
  constructor(lockKey, {
    lockStillHeld, cause, releaseError, fnFailed, fnRan = true,
  }) {
    const where = lockStillHeld
      ? 'this connection still holds it: release it (release/releaseAll after ROLLBACK) or end the connection'
      : 'the connection was closed, which ended the hold';
    const when = fnRan ? `after the function ${fnFailed ? 'failed' : 'returned'}`
      : `after the statement before the function failed (${cause && cause.message}), so the function did not run`;
    super(`pglocks withLock(): ${showKey(lockKey)} could not be released ${when} `
      + `(${releaseError && releaseError.message}); ${where}`, { cause });
    this.name = 'LockNotReleasedError';
    this.code = 'PGLOCKS_NOT_RELEASED';
    this.key = lockKey;
    this.lockStillHeld = lockStillHeld;
    this.releaseError = releaseError;
  }
}

/**
 * Rejects a call after which the connection is closed: a statement of its own failed on the
 * client side, without the server's answer (node-postgres' query_timeout, a broken socket),
 * the server ended the session (a FATAL error, pg_terminate_backend), or withLock had to
 * abandon a query of fn's that it could not cancel. What the connection held is then
 * unknown, so the connection is closed, which ends every hold of its session. cause is the
 * error that came first (node-postgres', the server's, or fn's).
 */
class ConnectionClosedError extends Error {
  constructor(lockKey, what, cause, why) {
    super(`pglocks ${what}(): ${lockKey === undefined ? 'the call' : showKey(lockKey)} `
      + `${why || 'failed before the server answered'} (${cause && cause.message}); the connection was closed, `
      + 'which ends every lock it held: take a new connection', { cause });
    this.name = 'ConnectionClosedError';
    this.code = 'PGLOCKS_CONNECTION_CLOSED';
    this.key = lockKey === undefined ? null : lockKey;
  }
}

/**
 * Rejects withLock when fn returned but left the caller's transaction block aborted (an SQL
 * error it caught): what fn did was rolled back to withLock's savepoint (scope 'session') or
 * can only be rolled back (scope 'transaction'). code is the SQLSTATE the server answered
 * with (25P02, in_failed_sql_transaction).
 */
class TransactionAbortedError extends Error {
  constructor(lockKey, code, { rolledBack }) {
    super(`pglocks withLock(): the function returned with the transaction block aborted by an SQL error it caught `
      + `(SQLSTATE ${code}); ${rolledBack
        ? `what it did was rolled back to the savepoint taken before it, and ${showKey(lockKey)} released`
        : 'the transaction can only be rolled back'}`);
    this.name = 'TransactionAbortedError';
    this.code = code;
    this.key = lockKey;
  }
}

/**
 * Rejects withLock (scope 'transaction') when fn ended the transaction the hold belonged to
 * (COMMIT, ROLLBACK, or ROLLBACK TO a savepoint taken before withLock): fn's later work was
 * not under the lock. lockStillHeld says whether this session holds the lock now.
 */
class TransactionChangedError extends Error {
  constructor(lockKey, { lockStillHeld, cause }) {
    super(`pglocks withLock(): the function ended the transaction that ${showKey(lockKey)} (scope 'transaction') `
      + `belonged to; ${lockStillHeld ? 'this session still holds the lock' : 'the lock is not held any more'}`,
    cause === undefined ? undefined : { cause });
    this.name = 'TransactionChangedError';
    this.code = 'PGLOCKS_TRANSACTION_CHANGED';
    this.key = lockKey;
    this.lockStillHeld = lockStillHeld;
  }
}

/**
 * Rejects withLock (scope 'session', inside the caller's transaction block) when fn released
 * a savepoint taken before withLock (RELEASE SAVEPOINT), which released withLock's savepoint
 * with it: the lock was released, but withLock could not undo fn's work (when fn failed) nor
 * end its savepoint, and the attempt (SQLSTATE 3B001) left the transaction block aborted: roll
 * it back. Unsupported: fn may release only savepoints it took itself.
 */
class SavepointReleasedError extends Error {
  constructor(lockKey, { cause, savepointError, fnFailed }) {
    super(`pglocks withLock(): the function released a savepoint taken before withLock, and withLock's own with it; `
      + `${showKey(lockKey)} was released, but the transaction block is now aborted`
      + `${fnFailed ? ' and what the function did was not undone' : ''}: roll it back`, { cause });
    this.name = 'SavepointReleasedError';
    this.code = 'PGLOCKS_SAVEPOINT_RELEASED';
    this.key = lockKey;
    this.lockStillHeld = false;
    this.savepointError = savepointError;
  }
}

/**
 * Rejects withLock given a pool when fn returned with a transaction block open on the pool's
 * connection: the block was rolled back (what fn did in it undone) before the connection went
 * back. result is what fn resolved to; cause, when given, the error that came with it.
 */
class TransactionRolledBackError extends Error {
  constructor(lockKey, { result, cause } = {}) {
    super("pglocks withLock(): the function returned with a transaction block open on the pool's "
      + 'connection; it was rolled back before the connection went back to the pool',
    cause === undefined ? undefined : { cause });
    this.name = 'TransactionRolledBackError';
    this.code = 'PGLOCKS_TRANSACTION_ROLLED_BACK';
    this.key = lockKey;
    this.result = result;
  }
}

/** Thrown when the connection given is not a pg.Client or a client of a pg.Pool. */
class UnsupportedClientError extends TypeError {
  constructor(message) {
    super(message);
    this.name = 'UnsupportedClientError';
    this.code = 'PGLOCKS_UNSUPPORTED_CLIENT';
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

// A pg.Client (node-postgres' JavaScript client, or pg-native's) or a client taken from a
// pg.Pool: one connection, which pglocks can query, watch and, when it must, close.
function isClient(db) {
  return db !== null && typeof db === 'object' && typeof db.query === 'function'
    && typeof db.connect === 'function' && typeof db.end === 'function' && typeof db.on === 'function'
    && ('connection' in db || 'native' in db);
}

function needClient(db, what) {
  if (isPool(db)) {
    throw new UnsupportedClientError(`pglocks ${what}(): a lock belongs to one connection; take a client from the pool `
      + '(const client = await pool.connect()) and call it on that client');
  }
  if (!isClient(db)) {
    throw new UnsupportedClientError(`pglocks ${what}(): the first argument must be a pg.Client or a client of a pg.Pool, `
      + `not ${describe(db)}`);
  }
  // Pipeline mode sends a query before the one ahead has been answered: the transaction
  // status, the active query and the order of the calls' statements are no longer what
  // they read.
  if (db.pipeline === true) {
    throw new UnsupportedClientError(`pglocks ${what}(): node-postgres' pipeline mode (pipeline: true) is not supported; `
      + 'use a client without it');
  }
}

// The connection's transaction status as of its last statement: 'I' idle, 'T' in a
// transaction block, 'E' in a failed block. node-postgres reports it from 8.21.0 on (the
// peer dependency's floor).
function transactionStatus(client, what) {
  if (typeof client.getTransactionStatus !== 'function') {
    throw new TypeError(`pglocks ${what}(): the client has no getTransactionStatus(): pg 8.21.0 or later is needed`);
  }
  return client.getTransactionStatus();
}

// The connection's transaction status now. Right after a failed statement node-postgres has
// passed the error on before the server's ReadyForQuery, and still reports the status of the
// statement before (a failed COMMIT reads 'T'): the status is read only once the connection
// is ready, after an empty query when it is not. Anything but 'I', 'T' or 'E' is refused.
async function currentStatus(client, lockKey, what) {
  if (client.readyForQuery !== true && (await settle(client)) === null) {
    throw new ConnectionClosedError(lockKey, what, new Error('the connection did not answer'),
      'found the connection closed or not answering');
  }
  const status = transactionStatus(client, what);
  if (status !== 'I' && status !== 'T' && status !== 'E') {
    throw new Error(`pglocks ${what}(): the connection's transaction status is unknown (${status})`);
  }
  return status;
}

function notInBlockError(what) {
  return new Error(`pglocks ${what}(): scope 'transaction' needs a transaction block on this client `
    + '(BEGIN first); outside one the hold would end with the acquiring statement');
}

// A transaction-scope hold taken outside a transaction block ends with its own statement:
// the caller would go on believing it holds the lock.
async function needTransactionBlock(client, lockKey, what) {
  if ((await currentStatus(client, lockKey, what)) === 'I') throw notInBlockError(what);
}

// An error the server sent (node-postgres' DatabaseError: a severity and an SQLSTATE): the
// statement ended there and the connection goes on. Anything else (query_timeout, a broken
// socket) came before the server's answer.
function isServerError(err) {
  return err !== null && typeof err === 'object' && typeof err.severity === 'string'
    && typeof err.code === 'string' && /^[0-9A-Z]{5}$/.test(err.code);
}

// Whether the connection is closed or closing, as the connection itself says: its socket is
// destroyed, or node-postgres has seen it end, break or be ended (its _ending, _ended and
// _queryable, which pg-pool reads too). Not a flag of pglocks': a connection the application
// ended, or the server closed, counts as well.
function isClosed(client) {
  if (client._ending === true || client._ended === true || client._queryable === false) return true;
  const stream = client.connection && client.connection.stream;
  return Boolean(stream && stream.destroyed);
}

// The query node-postgres is running on the connection (sent, not answered), through its
// internal accessor (_getActiveQuery; pg-native's _hasActiveQuery, since pg-native keeps
// _activeQuery set after the query ended; else _activeQuery, unless its state says it
// ended); undefined when this client has none of them (another version), so that a caller
// can tell "none" from "cannot know".
function activeQuery(client) {
  if (typeof client._getActiveQuery === 'function') return client._getActiveQuery() || null;
  if (typeof client._hasActiveQuery === 'function') return client._hasActiveQuery() ? client._activeQuery || null : null;
  if ('_activeQuery' in client) {
    const q = client._activeQuery;
    return q && q.state !== 'end' && q.state !== 'error' ? q : null;
  }
  return undefined;
}

// Where a cancel request for this connection can go: the very peer its socket is connected
// to (a host name may resolve to several servers, and a config to several hosts), over TCP,
// or the Unix socket node-postgres connected to. null where it cannot be aimed safely: TLS
// (the request would go in clear, or be refused), a stream the application supplied, or a
// client without node-postgres' socket (pg-native); the caller closes the connection instead.
function cancelTarget(client) {
  const con = client.connection;
  const stream = con && con.stream;
  if (!stream || con.ssl || client.ssl || stream.encrypted) return null;
  if (Object.getPrototypeOf(stream) !== net.Socket.prototype) return null;
  if (typeof stream.remoteAddress === 'string' && Number.isInteger(stream.remotePort)) {
    return { port: stream.remotePort, host: stream.remoteAddress };
  }
  if (typeof client.host === 'string' && client.host.startsWith('/') && !stream.destroyed) {
    return { path: `${client.host}/.s.PGSQL.${client.port}` };
  }
  return null;
}

// Sends the protocol's CancelRequest for the connection's backend, on a connection of its
// own, as libpq's PQcancel does; stillActive() is asked again once that connection is up,
// just before the request goes, so that a query that ended meanwhile is not followed by a
// cancel that could hit the next one. Resolves to whether the request was sent.
function sendCancel(client, target, stillActive) {
  return new Promise((resolve) => {
    const pid = client.processID;
    const secret = client.secretKey;
    if (!Number.isInteger(pid) || !Number.isInteger(secret)) {
      resolve(false);
      return;
    }
    let socket;
    let sent = false;
    let timer = null;
    const done = () => {
      if (timer !== null) clearTimeout(timer);
      timer = null;
      if (socket) socket.destroy();
      resolve(sent);
    };
    try {
      socket = target.path ? net.connect(target.path) : net.connect(target.port, target.host);
    } catch (err) {
      done();
      return;
    }
    // A server that does not answer does not hold the caller back for long.
    timer = setTimeout(done, 5000);
    timer.unref();
    socket.on('error', done);
    socket.on('connect', () => {
      if (!stillActive()) {
        done();
        return;
      }
      const request = Buffer.alloc(16);
      request.writeInt32BE(16, 0);
      request.writeInt32BE(80877102, 4); // the CancelRequest code
      request.writeInt32BE(pid, 8);
      request.writeUInt32BE(secret >>> 0, 12);
      socket.end(request);
      sent = true;
    });
    socket.on('close', done);
  });
}

// Ends a connection whose locks are unknown, and waits until it is closed: the server ends
// the session, and every hold of it, when it sees the connection gone. A statement still
// running there (an acquire in the lock queue, which would not notice the closed socket
// until it is granted) is cancelled as well, if it is the one stillActive() names and a
// cancel can be aimed at the connection's server: the connection is ended first, so no later
// query can start on it for the cancel to hit. A connection closed or closing already (by
// pglocks, the application or the server) is left as it is.
async function closeConnection(client, stillActive = () => false) {
  if (isClosed(client)) return;
  const target = stillActive() ? cancelTarget(client) : null;
  const ending = client.end().catch(() => {});
  await Promise.all([ending, target ? sendCancel(client, target, () => true) : null]);
}

// Waits until the connection is back to ReadyForQuery after whatever was sent before (a
// failed statement's error reaches the caller before the server's ReadyForQuery), with an
// empty query, and resolves to the transaction status it reports then: 'I', 'T' or 'E' ('?'
// from a pg without getTransactionStatus), or null when the connection ended or did not
// answer (then it is closed).
async function settle(client) {
  if (isClosed(client)) return null;
  try {
    await client.query('');
  } catch (err) {
    if (!isServerError(err) || isClosed(client)) {
      await closeConnection(client);
      return null;
    }
  }
  if (isClosed(client)) return null;
  return typeof client.getTransactionStatus === 'function' ? client.getTransactionStatus() : '?';
}

// Runs one statement of pglocks. The server's errors reject as they are, once the connection
// is back to ReadyForQuery, unless the session ended with them (a FATAL error): then, and when
// the statement failed without the server's answer (query_timeout, a broken socket), the
// connection is closed (the statement cancelled if still running) and the call rejects with
// ConnectionClosedError.
async function runStatement(client, text, values, lockKey, what) {
  // The values array is the one node-postgres' Query keeps: it tells this statement apart
  // from any other while it runs.
  const config = { text, values: values || [], rowMode: 'array' };
  try {
    return await client.query(config);
  } catch (err) {
    if (isServerError(err) && (await settle(client)) !== null) throw err;
    await closeConnection(client, () => {
      const q = activeQuery(client);
      return q !== undefined && q !== null && q.values === config.values;
    });
    throw new ConnectionClosedError(lockKey, what, err, isServerError(err) ? 'ended the session' : undefined);
  }
}

// The schema the pglocks extension is installed in, quoted, looked up once per connection:
// every call names its functions with it, so that a search_path fn sets (schema-per-tenant
// applications) does not keep withLock from releasing.
const extensionSchemas = new WeakMap();

async function extensionSchema(client, lockKey, what) {
  let schema = extensionSchemas.get(client);
  if (schema === undefined) {
    const { rows } = await runStatement(client, 'SELECT pg_catalog.quote_ident(n.nspname) '
      + 'FROM pg_catalog.pg_extension e JOIN pg_catalog.pg_namespace n ON n.oid OPERATOR(pg_catalog.=) e.extnamespace '
      + "WHERE e.extname OPERATOR(pg_catalog.=) 'pglocks'", [], lockKey, what);
    if (rows.length === 0) {
      throw new Error(`pglocks ${what}(): the pglocks extension is not installed in this database (CREATE EXTENSION pglocks)`);
    }
    schema = rows[0][0];
    extensionSchemas.set(client, schema);
  }
  return schema;
}

// The result of the i-th statement of a query string that holds several (the simple
// protocol); a client that answers with one result only gives that one.
function nthResult(result, i) {
  return Array.isArray(result) ? result[i] : result;
}

async function lockStatement(client, text, values, lockKey, what) {
  const result = await runStatement(client, text, values, lockKey, what);
  return result.rows[0][0];
}

// The session's session-scope holds of the lock in that mode (pglocks_held()), as one
// statement of literals only (a key is sent as the bigint it names, or a pair of integers),
// so that it can share a query string with a SAVEPOINT.
function sessionHoldsSql(schema, lockKey, shared) {
  const { value } = heldFilter(lockKey, 1);
  const which = Array.isArray(lockKey) ? `lock_key IS NULL AND key OPERATOR(pg_catalog.=) '${value}'`
    : `lock_key OPERATOR(pg_catalog.=) '${value}'::bigint`;
  return `SELECT coalesce(pg_catalog.sum(holds), 0)::bigint FROM ${schema}.pglocks_held() WHERE ${which} `
    + `AND shared OPERATOR(pg_catalog.=) ${shared ? 'true' : 'false'} AND scope OPERATOR(pg_catalog.=) 'session'`;
}

async function acquireOn(client, lockKey, { shared, wait, timeout, scope }, what, how = {}) {
  const k = keyArgs(lockKey);
  const n = k.values.length;
  const sharedArg = boolArg('shared', shared, false);
  const waitArg = boolArg('wait', wait, true);
  const timeoutArg = intervalArg(timeout);
  const scopeName = scopeArg(scope);
  if (!waitArg && timeoutArg !== null) {
    throw new TypeError(`pglocks ${what}(): give either wait: false (try once) or a timeout, not both`);
  }
  const values = [...k.values, sharedArg, waitArg, timeoutArg, scopeName];
  const schema = await extensionSchema(client, lockKey, what);
  const call = `${schema}.pglocks_acquire(${k.sql.join(', ')}, shared => $${n + 1}::boolean, `
    + `wait => $${n + 2}::boolean, timeout => $${n + 3}::interval, scope => $${n + 4}::text)`;
  if (scopeName !== 'transaction') {
    if (how.recount === false || typeof client.getTransactionStatus !== 'function') {
      return lockStatement(client, `SELECT ${call}`, values, lockKey, what);
    }
    return acquireCounted(client, lockKey, sharedArg, schema, `SELECT ${call}`, values, what, how);
  }
  return inTurn(client, async () => {
    await needTransactionBlock(client, lockKey, what);
    // The server has the last word: a setting set LOCAL by one statement is still there for
    // the next only inside a transaction block (outside one, each statement is a transaction
    // of its own), so the acquire runs only when the token it reads is the one just set.
    const token = NAME_PREFIX + (++nameSeq);
    await runStatement(client, `SELECT pg_catalog.set_config('${BLOCK_TOKEN}', '${token}', true)`, [], lockKey, what);
    const got = await lockStatement(client, `SELECT CASE WHEN pg_catalog.current_setting('${BLOCK_TOKEN}', true) `
      + `OPERATOR(pg_catalog.=) '${token}' THEN ${call} END`, values, lockKey, what);
    if (got === null) throw notInBlockError(what);
    return got;
  });
}

// Statements that go as one query string (the simple protocol runs them in turn, and stops
// at the first that fails), resolving to their results. pg-native sends a query with values,
// even none, as a prepared statement, which takes one statement only: there they go one at a
// time, which is the same inside a transaction block, where these are used.
async function runStatements(client, statements, lockKey, what) {
  if (!('native' in client)) {
    const result = await runStatement(client, statements.join('; '), [], lockKey, what);
    return Array.isArray(result) ? result : [result];
  }
  const results = [];
  for (const statement of statements) results.push(await runStatement(client, statement, [], lockKey, what));
  return results;
}

// Back to the savepoint name, which then ends (one round trip; one per statement on pg-native).
function backToSavepoint(client, name, lockKey, what) {
  return runStatements(client, [`ROLLBACK TO SAVEPOINT ${name}`, `RELEASE SAVEPOINT ${name}`], lockKey, what);
}

// The calls of a client take turns: a counted acquire from its count to the release of its
// savepoint (withLock's until its mark is set behind it), a release, releaseAll and a scope
// 'transaction' acquire for their statements. Two counted acquires at once inside a block
// would nest their savepoints, and the release of one would take the other's with it; a
// release or a transaction-scope hold landing between a counted acquire's count and its
// recount would be counted as the acquire's. No turn is held while fn runs, so the calls fn
// makes (nested in withLock) take theirs.
const turnTails = new WeakMap();

function enterTurn(client) {
  const before = turnTails.get(client) || Promise.resolve();
  let leave;
  const mine = new Promise((resolve) => { leave = resolve; });
  const tail = before.then(() => mine);
  turnTails.set(client, tail);
  return {
    ready: before,
    leave: () => {
      leave();
      if (turnTails.get(client) === tail) turnTails.delete(client);
    },
  };
}

// Runs body in the client's turn (see enterTurn).
async function inTurn(client, body) {
  const turn = enterTurn(client);
  try {
    await turn.ready;
    return await body();
  } finally {
    turn.leave();
  }
}

// A session-scope acquire. A cancel or statement_timeout (57014), or any other error that
// fails the acquire statement after the server granted the lock, before the statement ended,
// leaves the lock held: the caller would be told the acquire failed
// while the session keeps a hold nobody releases. So the session's session-scope holds of the
// lock in that mode are counted first (inside a transaction block after a savepoint of the
// call's own, in the same query string, so that the block can be rolled back to it and counted
// again after the failed acquire aborted it), and after a failure the hold beyond that count
// is released. Inside a block the savepoint is released once the acquire has run, or, for
// withLock (how.keepGuard) when the lock was taken, left in how.guard as withLock's own
// savepoint; how.leave() then ends the call's turn (see enterTurn). In an aborted block the
// acquire can only fail (25P02), so it is sent alone.
async function acquireCounted(client, lockKey, shared, schema, text, values, what, how) {
  const turn = enterTurn(client);
  let kept = false;
  try {
    await turn.ready;
    const got = await acquireCountedTurn(client, lockKey, shared, schema, text, values, what, how);
    kept = how.guard !== undefined;
    if (kept) how.leave = turn.leave;
    return got;
  } finally {
    if (!kept) turn.leave();
  }
}

async function acquireCountedTurn(client, lockKey, shared, schema, text, values, what, how) {
  const status = await currentStatus(client, lockKey, what);
  if (status === 'E') return lockStatement(client, text, values, lockKey, what);
  const guard = status === 'T' ? NAME_PREFIX + (++nameSeq) : null;
  let counted;
  try {
    counted = await runStatements(client, [...(guard === null ? [] : [`SAVEPOINT ${guard}`]),
      sessionHoldsSql(schema, lockKey, shared)], lockKey, what);
  } catch (err) {
    // Nothing was acquired. Back to the savepoint when it was taken (a cancel that hit the
    // count); one that failed itself leaves the block aborted, as any failed statement does.
    if (guard !== null && !(err instanceof ConnectionClosedError) && isServerError(err)) {
      await backToSavepoint(client, guard, lockKey, what).catch(() => {});
      if (isClosed(client)) throw new ConnectionClosedError(lockKey, what, err, 'lost its connection');
    }
    throw err;
  }
  const before = BigInt(counted[counted.length - 1].rows[0][0]);
  let got;
  try {
    got = await lockStatement(client, text, values, lockKey, what);
  } catch (err) {
    if (err instanceof ConnectionClosedError || !isServerError(err)) throw err;
    throw await afterFailedAcquire(client, lockKey, shared, schema, before, guard, err, what);
  }
  if (guard !== null) {
    if (how.keepGuard && got) {
      how.guard = guard;
    } else {
      try {
        await runStatement(client, `RELEASE SAVEPOINT ${guard}`, [], lockKey, what);
      } catch (err) {
        // The caller hears of a failure: no hold of this acquire may stay.
        if (err instanceof ConnectionClosedError || !isServerError(err)) throw err;
        throw await afterFailedAcquire(client, lockKey, shared, schema, before, guard, err, what);
      }
    }
  }
  return got;
}

// After a session-scope acquire statement failed with a server error (or the release of the
// savepoint before it did): inside a block, a ROLLBACK TO that savepoint (the caller's block
// goes on, as it was before the call); then the session's holds of the lock are counted again
// and the one beyond the count before the acquire released (one acquire takes one hold at
// most). The hold the acquire took is the session's newest hold of the lock (a ROLLBACK TO the
// savepoint ended every transaction-scope hold taken after it), which is the one
// pglocks_release() frees. When that cannot be done (the ROLLBACK TO or the release fails), the
// connection is closed: the session ends, and every hold of it. Resolves to the error to
// reject with: the acquire's, or a ConnectionClosedError (its cause the acquire's error, with
// the clean-up's as cleanupError).
async function afterFailedAcquire(client, lockKey, shared, schema, before, guard, err, what) {
  try {
    if (guard !== null) {
      await backToSavepoint(client, guard, lockKey, what);
    }
    const k = keyArgs(lockKey);
    const n = k.values.length;
    await runStatement(client, `SELECT ${schema}.pglocks_release(${k.sql.join(', ')}, shared => $${n + 1}::boolean) `
      + `FROM (${sessionHoldsSql(schema, lockKey, shared)}) AS c(holds) `
      + `WHERE c.holds OPERATOR(pg_catalog.>) $${n + 2}::bigint`, [...k.values, shared, before.toString()], lockKey, what);
    return err;
  } catch (cleanupError) {
    await closeConnection(client);
    const closed = new ConnectionClosedError(lockKey, what, err,
      'failed, and whether it left a hold could not be counted again');
    closed.cleanupError = cleanupError;
    return closed;
  }
}

async function releaseOn(client, lockKey, shared, what) {
  const k = keyArgs(lockKey);
  const schema = await extensionSchema(client, lockKey, what);
  const text = `SELECT ${schema}.pglocks_release(${k.sql.join(', ')}, shared => $${k.values.length + 1}::boolean)`;
  return lockStatement(client, text, [...k.values, shared], lockKey, what);
}

// A condition on pglocks_held()'s rows for the lock, with the value of its parameter $n.
function heldFilter(lockKey, n) {
  if (Array.isArray(lockKey)) {
    return { sql: `lock_key IS NULL AND key OPERATOR(pg_catalog.=) $${n}::text`, value: `${lockKey[0]},${lockKey[1]}` };
  }
  const k = typeof lockKey === 'string' ? key(lockKey) : BigInt(lockKey);
  return { sql: `lock_key OPERATOR(pg_catalog.=) $${n}::bigint`, value: k.toString() };
}

// withLock's release of its session hold. The server releases the newest hold of the lock
// in that mode whatever its scope: when fn left a transaction-scope hold of the same lock
// (a nested withLock or acquire with scope 'transaction'), that one may be released instead.
// The transaction-scope holds are counted before (in the release's statement, whose FROM is
// read before its select list) and, when there were some, after: one fewer means withLock's
// session hold is still there, and the call rejects.
async function releaseSessionHold(client, lockKey, shared) {
  const k = keyArgs(lockKey);
  const n = k.values.length;
  const schema = await extensionSchema(client, lockKey, 'withLock');
  const count = (sharedParam, keyParam) => `SELECT coalesce(pg_catalog.sum(holds), 0)::bigint FROM ${schema}.pglocks_held() `
    + `WHERE ${heldFilter(lockKey, keyParam).sql} AND shared OPERATOR(pg_catalog.=) $${sharedParam}::boolean `
    + "AND scope OPERATOR(pg_catalog.=) 'transaction'";
  const keyValue = heldFilter(lockKey, 1).value;
  const { rows } = await runStatement(client, `SELECT ${schema}.pglocks_release(${k.sql.join(', ')}, `
    + `shared => $${n + 1}::boolean), b.n FROM (${count(n + 1, n + 2)}) AS b(n)`, [...k.values, shared, keyValue],
  lockKey, 'withLock');
  const before = BigInt(rows[0][1]);
  if (before === 0n) return;
  const after = BigInt((await runStatement(client, count(1, 2), [shared, keyValue], lockKey, 'withLock')).rows[0][0]);
  if (after < before) {
    throw new Error('the release freed a transaction-scope hold of the same lock taken inside the function '
      + "(the newest hold), not withLock's session hold: a nested call on the same lock with another scope is not supported");
  }
}

/**
 * Takes the lock on this client's session: true once held. With wait: false it tries
 * once, with a timeout it waits at most that long; both resolve to false when another
 * session keeps the lock. Each true needs a release(). A rejection leaves no hold: a
 * session-scope acquire counts the session's holds of the lock first, and releases the one
 * a cancel or timeout that failed the statement after the grant left (inside a block, the
 * block is rolled back to a savepoint taken before the acquire, and goes on).
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
  const shared = boolArg('shared', options.shared, false);
  keyArgs(lockKey);
  return inTurn(client, () => releaseOn(client, lockKey, shared, 'release'));
}

/** Releases every hold this session took through pglocks; resolves to how many. */
async function releaseAll(client) {
  needClient(client, 'releaseAll');
  return inTurn(client, async () => {
    const schema = await extensionSchema(client, undefined, 'releaseAll');
    return BigInt(await lockStatement(client, `SELECT ${schema}.pglocks_release_all()`, [], undefined, 'releaseAll'));
  });
}

// Inside the caller's transaction block withLock marks the transaction as its own: a
// setting of its own, set LOCAL (so it ends with the transaction, and a ROLLBACK TO a savepoint
// taken before it undoes it), lists the names of the withLock calls running in it, each name
// unique in this process. Read when fn ends, it tells whether this is still the transaction
// the lock was taken in; the same name is the savepoint of a session-scope call.
const MARKER = 'pglocks_node.savepoints';
// Set LOCAL just before a scope 'transaction' acquire, which runs only if it is still there.
const BLOCK_TOKEN = 'pglocks_node.block';
const NAME_PREFIX = `pglocks_${crypto.randomBytes(4).toString('hex')}_`;
let nameSeq = 0;

// The marker's value before this call added its name, as a literal to set it back to; null
// when it holds anything but names of this module (then it is left as it is).
function markerLiteral(marker, name) {
  const prev = marker.endsWith(name) ? marker.slice(0, -name.length).trimEnd() : null;
  return prev !== null && /^[A-Za-z0-9_ ]*$/.test(prev) ? `'${prev}'` : null;
}

// Whether this session holds the lock (any scope) according to pglocks_held(); false when
// that cannot be asked (an aborted block).
async function heldNow(client, lockKey, shared) {
  const filter = heldFilter(lockKey, 1);
  try {
    const schema = await extensionSchema(client, lockKey, 'withLock');
    const { rows } = await client.query({
      text: `SELECT pg_catalog.count(*) OPERATOR(pg_catalog.>) 0 FROM ${schema}.pglocks_held() WHERE ${filter.sql} `
        + 'AND shared OPERATOR(pg_catalog.=) $2::boolean',
      values: [filter.value, shared],
      rowMode: 'array',
    });
    return rows[0][0] === true;
  } catch (err) {
    return false;
  }
}

// A pool client whose hold could not be released must not go back to the pool with it:
// its next release() (the caller's, however called) gives it back with an error, which
// makes the pool close it.
function closeOnRelease(client, err) {
  if (typeof client.release !== 'function' || client.pglocksCloseOnRelease) return;
  const giveBack = client.release;
  client.pglocksCloseOnRelease = true;
  client.release = function releaseAndClose(e) {
    client.release = giveBack;
    delete client.pglocksCloseOnRelease;
    return giveBack.call(this, e || err);
  };
}

// fn failed while a query still runs on the connection (its promise rejected on the client
// side, by query_timeout, or fn threw without waiting for it): withLock cannot go on behind
// it, so it cancels that query and waits until the connection is ready again. The query is
// taken to be fn's: the client is fn's while withLock runs, and a query the application sends
// on it from outside fn meanwhile (unsupported) is cancelled as well. When
// the query cannot be cancelled (no cancel target: TLS, a stream of the application's), the
// connection is closed instead, which ends the holds, and withLock rejects with
// ConnectionClosedError. Without node-postgres' active-query accessor (pg-native) nothing is
// known to run, and the release waits behind whatever does.
async function abandonFnQuery(client, lockKey, fnError) {
  const running = activeQuery(client);
  if (running === null || running === undefined) return;
  const stillActive = () => activeQuery(client) === running;
  const target = cancelTarget(client);
  if (target && ((await sendCancel(client, target, stillActive)) || !stillActive())) {
    if ((await settle(client)) !== null) return;
  }
  await closeConnection(client, stillActive);
  throw new ConnectionClosedError(lockKey, 'withLock', fnError,
    'was abandoned while a query of the function ran that could not be cancelled');
}

// The hold withLock took could not be released: a refusal of the server (an aborted block
// that no savepoint of withLock's covers) leaves it to the session. A connection withLock
// took from a pool is closed, a pool client of the caller's is closed when given back.
// Resolves to the error to reject with: the ConnectionClosedError when the release itself
// lost the connection, else a LockNotReleasedError.
async function notReleased(client, lockKey, state, { cause, releaseError, fnFailed, fnRan }) {
  if (releaseError instanceof ConnectionClosedError) return releaseError;
  if (state.owned) await closeConnection(client);
  const lockStillHeld = !isClosed(client);
  const failure = new LockNotReleasedError(lockKey, {
    lockStillHeld, cause, releaseError, fnFailed, fnRan,
  });
  if (lockStillHeld) closeOnRelease(client, failure);
  return failure;
}

// The withLock calls in progress on each client, in the order they started: a stack, since
// inside a transaction block their savepoints and marks nest. A call whose fn runs ('fn') may
// have calls nested in fn above it; one that has not entered fn yet or is ending may not.
const callsInProgress = new WeakMap();

/**
 * Rejects withLock inside a transaction block when its call overlaps another withLock call
 * on the same client without being nested in its fn: before anything is sent, when a call
 * that started earlier has not entered its fn yet or is ending; or, when a call's fn ends
 * while a call that started after it (outside fn, or not awaited by fn) is still in
 * progress, once those have ended and this call has released its lock and ended its
 * savepoint in order (cause: fn's error, result: what fn resolved to). Overlapping calls on
 * one client are not supported there; nest them (await withLock in fn) or wait for one to end.
 */
class OverlappingCallError extends Error {
  constructor(lockKey, { cause, result } = {}) {
    super(`pglocks withLock(): ${showKey(lockKey)}: another withLock call on this client is in progress inside `
      + 'the same transaction block, and this one does not nest with it; overlapping calls on one '
      + 'client are not supported there: nest them (await withLock inside the function) or wait for one to end',
    cause === undefined ? undefined : { cause });
    this.name = 'OverlappingCallError';
    this.code = 'PGLOCKS_OVERLAPPING_CALL';
    this.key = lockKey;
    this.result = result;
  }
}

function needNoOverlap(client, ctx) {
  const calls = callsInProgress.get(client) || [];
  for (const call of calls) {
    if (call === ctx) return;
    if (call.state !== 'fn') throw new OverlappingCallError(ctx.lockKey);
  }
}

// Waits until every call that started on the client after ctx has ended; true when there
// was one (ctx was not the innermost call when its fn ended).
async function waitForInnerCalls(client, ctx) {
  let waited = false;
  for (;;) {
    const calls = callsInProgress.get(client) || [];
    const i = calls.indexOf(ctx);
    if (i < 0 || i === calls.length - 1) return waited;
    waited = true;
    await calls[calls.length - 1].done;
  }
}

// Runs fn under the lock on one client. Resolves to fn's result or rejects. state.owned: the
// client was taken from a pool by withLock, which closes it rather than give it back holding
// a lock.
async function withLockOn(client, lockKey, fn, options, state) {
  needClient(client, 'withLock');
  const ctx = { lockKey, state: 'starting', overlapped: false };
  ctx.done = new Promise((resolve) => { ctx.finish = resolve; });
  let calls = callsInProgress.get(client);
  if (calls === undefined) {
    calls = [];
    callsInProgress.set(client, calls);
  }
  calls.push(ctx);
  let result;
  try {
    result = await withLockBody(client, lockKey, fn, options, { ...state, ctx });
  } catch (err) {
    // fn's own error (or none) after a call that overlapped: the overlap is what is reported.
    if (ctx.overlapped && (!ctx.fnFailed || err === ctx.fnError)) {
      throw new OverlappingCallError(lockKey, { cause: err });
    }
    throw err;
  } finally {
    calls.splice(calls.indexOf(ctx), 1);
    if (calls.length === 0 && callsInProgress.get(client) === calls) callsInProgress.delete(client);
    ctx.finish();
  }
  if (ctx.overlapped) throw new OverlappingCallError(lockKey, { result });
  return result;
}

async function withLockBody(client, lockKey, fn, options, state) {
  const shared = boolArg('shared', options.shared, false);
  const scope = scopeArg(options.scope);
  // Read before anything is sent: inside a transaction block, fn runs in a transaction
  // marked as withLock's, and (scope 'session') after a savepoint, so that an SQL error of fn
  // (which aborts the block) can be rolled back to it and the release run.
  const inBlock = (await currentStatus(client, lockKey, 'withLock')) !== 'I';
  if (inBlock) needNoOverlap(client, state.ctx);
  // A client withLock took from a pool itself is not counted before the acquire: its
  // give-back check closes a connection still holding a lock taken through pglocks.
  const how = { recount: !state.owned, keepGuard: true };
  const acquired = await acquireOn(client, lockKey, { ...options, shared, scope }, 'withLock', how);
  // Inside a block, the savepoint taken before a counted acquire, which is the call's own: a
  // ROLLBACK TO it undoes fn's work (a session hold outlives it), and the call keeps the
  // client's turn (see enterTurn) until the mark is set behind it.
  const guard = how.guard === undefined ? null : how.guard;
  let name = null;
  let restore = null;
  try {
    if (!acquired) {
      throw new LockNotAcquiredError(lockKey, { shared, timeout: options.wait === false ? null : options.timeout });
    }
    if (inBlock) {
      name = guard === null ? NAME_PREFIX + (++nameSeq) : guard;
      // One round trip (the simple protocol runs them all): with scope 'session' the savepoint
      // taken before the acquire, or else one taken first, so that when the mark or the cursor
      // fails, a ROLLBACK TO it lets the release run; a ROLLBACK TO it later takes the mark and
      // the cursor with it. The cursor (of the same name) tells a mark that fn reset (RESET
      // ALL) from one that went with the transaction or with a ROLLBACK TO a savepoint taken
      // before withLock: those close it, RESET ALL does not.
      const takeSavepoint = scope === 'session' && guard === null;
      try {
        const results = await runStatements(client, [
          ...(takeSavepoint ? [`SAVEPOINT ${name}`] : []),
          `SELECT pg_catalog.set_config('${MARKER}', `
            + `pg_catalog.concat_ws(' ', nullif(pg_catalog.current_setting('${MARKER}', true), ''), '${name}'), true)`,
          `DECLARE ${name} NO SCROLL CURSOR FOR SELECT`,
        ], lockKey, 'withLock');
        restore = markerLiteral(results[takeSavepoint ? 1 : 0].rows[0][0], name);
      } catch (err) {
        if (scope === 'session' && !(err instanceof ConnectionClosedError)) {
          try {
            // Fails (3B001) when the savepoint itself was not taken: the release then fails too.
            await backToSavepoint(client, name, lockKey, 'withLock')
              .catch((e) => { if (e instanceof ConnectionClosedError) throw e; });
            await releaseOn(client, lockKey, shared, 'withLock');
          } catch (releaseError) {
            throw await notReleased(client, lockKey, state, {
              cause: err, releaseError, fnFailed: false, fnRan: false,
            });
          }
        }
        throw err;
      }
    } else if (guard !== null) {
      // The block ended between the two reads of the status (a query sent from outside).
      await runStatement(client, `RELEASE SAVEPOINT ${guard}`, [], lockKey, 'withLock').catch(() => {});
    }
  } finally {
    if (how.leave) how.leave();
  }

  let fnFailed = false;
  let fnError;
  let result;
  state.ctx.state = 'fn';
  try {
    result = await fn(client);
  } catch (err) {
    fnFailed = true;
    fnError = err;
  }
  state.ctx.state = 'ending';
  state.ctx.fnFailed = fnFailed;
  state.ctx.fnError = fnError;
  // Inside a block, a call that started after this one and is still in progress has its
  // savepoint above this one's: it ends first.
  if (inBlock && (await waitForInnerCalls(client, state.ctx))) state.ctx.overlapped = true;
  // Every hold went with the connection, when the error is about this one: fn may have used
  // another connection, whose ConnectionClosedError says nothing of this one's holds.
  if (fnError instanceof ConnectionClosedError && isClosed(client)) throw fnError;
  if (fnFailed) {
    await abandonFnQuery(client, lockKey, fnError);
    await settle(client);
  }
  if (isClosed(client)) {
    // fn (or the server) ended the connection, and every hold with it.
    await closeConnection(client);
    throw new ConnectionClosedError(lockKey, 'withLock', fnFailed ? fnError : undefined,
      'lost its connection while the function ran');
  }

  // Inside a transaction block: still the transaction of the lock ('same'; its mark there,
  // or reset by fn while its cursor is still open), another one or none ('changed': fn ended
  // it, or rolled back to a savepoint taken before withLock), or an aborted block ('aborted').
  let where = 'same';
  let abortCode = null;
  let cursorOpen = false;
  let txHoldsNow = 0n;
  if (inBlock) {
    const restoreSql = restore === null ? 'NULL'
      : `CASE WHEN v OR c THEN pg_catalog.set_config('${MARKER}', ${restore}, true) END`;
    try {
      // Scope 'session': the transaction-scope holds of the same lock and mode this session
      // has (fn's, when it failed, are rolled back before the release, see below).
      let txHolds = 'NULL';
      let values = [];
      if (scope === 'session') {
        const schema = await extensionSchema(client, lockKey, 'withLock');
        const filter = heldFilter(lockKey, 2);
        txHolds = `(SELECT coalesce(pg_catalog.sum(holds), 0)::bigint FROM ${schema}.pglocks_held() `
          + `WHERE ${filter.sql} AND shared OPERATOR(pg_catalog.=) $1::boolean `
          + "AND scope OPERATOR(pg_catalog.=) 'transaction')";
        values = [shared, filter.value];
      }
      const read = await runStatement(client, `SELECT v OR c, c, ${scope === 'transaction' ? restoreSql : 'NULL'}, ${txHolds} FROM `
        + `(SELECT pg_catalog.strpos(pg_catalog.concat(' ', pg_catalog.current_setting('${MARKER}', true), ' '), ' ${name} ') `
        + 'OPERATOR(pg_catalog.>) 0 AS v, '
        + `EXISTS (SELECT FROM pg_catalog.pg_cursors WHERE name OPERATOR(pg_catalog.=) '${name}') AS c) AS m`,
      values, lockKey, 'withLock');
      txHoldsNow = read.rows[0][3] === null ? 0n : BigInt(read.rows[0][3]);
      where = read.rows[0][0] ? 'same' : 'changed';
      cursorOpen = read.rows[0][1] === true;
    } catch (err) {
      if (!isServerError(err) || err.code !== '25P02') throw err;
      where = 'aborted';
      abortCode = err.code;
    }
  }

  if (scope === 'transaction') {
    if (cursorOpen) {
      try {
        await runStatement(client, `CLOSE ${name}`, [], lockKey, 'withLock');
      } catch (err) {
        // fn's error stays the one to reject with; the CLOSE's goes with it.
        if (!fnFailed) throw err;
        attachCloseError(fnError, err);
      }
    }
    if (where === 'changed') {
      throw new TransactionChangedError(lockKey, {
        lockStillHeld: await heldNow(client, lockKey, shared), cause: fnFailed ? fnError : undefined,
      });
    }
    if (fnFailed) throw fnError;
    if (where === 'aborted') throw new TransactionAbortedError(lockKey, abortCode, { rolledBack: false });
    return result;
  }

  const ownSavepoint = inBlock && where !== 'changed';
  // fn's work is rolled back to the savepoint before the release when the block is aborted
  // (only a ROLLBACK TO lets the release run), and when fn failed while this session has
  // transaction-scope holds of the same lock and mode: the server releases the newest hold,
  // which may be one fn took; the ROLLBACK TO undoes fn's. Otherwise the lock is released
  // first, while the block surely lets it, and the savepoint dealt with after.
  const rollbackFirst = ownSavepoint && (where === 'aborted' || (fnFailed && txHoldsNow > 0n));
  let rolledBackTo = false;
  // RELEASE SAVEPOINT (after ROLLBACK TO when fn failed and that has not run yet), the mark
  // set back and the cursor closed (a ROLLBACK TO the savepoint takes both with it): one
  // statement, after the release.
  const endSavepoint = () => {
    const rollback = fnFailed && !rolledBackTo;
    return [
      ...(rollback ? [`ROLLBACK TO SAVEPOINT ${name}`] : []),
      `RELEASE SAVEPOINT ${name}`,
      ...(restore === null ? [] : [`SELECT pg_catalog.set_config('${MARKER}', ${restore}, true)`]),
      ...(cursorOpen && !rollback ? [`CLOSE ${name}`] : []),
    ];
  };
  try {
    if (rollbackFirst) {
      // Fails (3B001) when fn began a transaction of its own after ending the caller's, or
      // released a savepoint taken before withLock; the release below then says whether the
      // block lets it run.
      await runStatement(client, `ROLLBACK TO SAVEPOINT ${name}`, [], lockKey, 'withLock').then(() => {
        rolledBackTo = true;
        // The cursor, declared after the savepoint, went with it.
        cursorOpen = false;
      }, (err) => {
        if (err instanceof ConnectionClosedError) throw err;
      });
    }
    await releaseSessionHold(client, lockKey, shared);
  } catch (err) {
    // Refused: the savepoint is still ended (fn's work undone when it failed) and the cursor
    // closed, when the block lets them.
    if (ownSavepoint && !(err instanceof ConnectionClosedError) && !isClosed(client)
      && transactionStatus(client, 'withLock') === 'T') {
      await runStatements(client, endSavepoint(), lockKey, 'withLock').catch(() => {});
    }
    throw await notReleased(client, lockKey, state, {
      cause: fnFailed ? fnError : err, releaseError: err, fnFailed, fnRan: true,
    });
  }
  // The lock is released before the savepoint, which keeps fn's work in the transaction
  // (undone first when fn failed).
  if (ownSavepoint) {
    try {
      await runStatements(client, endSavepoint(), lockKey, 'withLock');
    } catch (err) {
      // The savepoint is gone though the transaction is the same: fn released a savepoint
      // taken before withLock, which released withLock's with it.
      if (isServerError(err) && err.code === '3B001') {
        throw new SavepointReleasedError(lockKey, { cause: fnFailed ? fnError : err, savepointError: err, fnFailed });
      }
      throw err;
    }
  }
  if (fnFailed) throw fnError;
  if (where === 'aborted') throw new TransactionAbortedError(lockKey, abortCode, { rolledBack: true });
  return result;
}

// Puts the error of withLock's CLOSE of its cursor on fn's error (closeError), when that is
// an object that takes it.
function attachCloseError(fnError, closeError) {
  if (fnError === null || (typeof fnError !== 'object' && typeof fnError !== 'function')) return;
  try {
    Object.defineProperty(fnError, 'closeError', {
      value: closeError, configurable: true, writable: true, enumerable: false,
    });
  } catch (e) {
    // A frozen or sealed error keeps what it has.
  }
}

// Gives a client withLock took from a pool back to it: never inside a transaction block fn
// left open (rolled back; true when that happened), never closed or in doubt (given back with
// an error, which makes the pool drop it).
async function giveBack(client, failed) {
  let err = null;
  let rolledBack = false;
  // After withLock's own release succeeded, the status is that statement's, and current.
  const status = failed || isClosed(client) ? await settle(client) : transactionStatus(client, 'withLock');
  if (status === 'T' || status === 'E') {
    try {
      await client.query('ROLLBACK');
      rolledBack = true;
    } catch (e) {
      err = e;
    }
    if (!err && transactionStatus(client, 'withLock') !== 'I') err = new Error('pglocks: the transaction block did not end');
  }
  if (!err && isClosed(client)) err = new Error('pglocks: the connection was closed');
  if (!err) {
    // The last check: no advisory lock of this session's goes back to the pool with the
    // connection. A hold pglocks knows of (withLock's or one fn took through pglocks), read
    // from pglocks_held(), closes the connection; then every advisory lock of the session
    // (one fn took with pg_advisory_lock, say) is released with pg_advisory_unlock_all(). Both
    // read this session's own lock table only: nothing of the lock manager's shared state is
    // scanned (pg_locks would take every partition lock), and the application holds nothing
    // on a connection withLock took from the pool itself.
    try {
      const schema = await extensionSchema(client, undefined, 'withLock');
      const results = await client.query({
        text: `SELECT EXISTS (SELECT FROM ${schema}.pglocks_held()); SELECT pg_catalog.pg_advisory_unlock_all()`,
        rowMode: 'array',
      });
      if (nthResult(results, 0).rows[0][0] !== false) err = new Error('pglocks: the connection still holds locks taken through pglocks');
    } catch (e) {
      err = e;
    }
  }
  if (err) await closeConnection(client);
  client.release(err || undefined);
  return rolledBack;
}

/**
 * Runs fn(client) while holding the lock and releases it however fn ends (returns,
 * throws, rejects); resolves to what fn resolves to, rejects with what fn throws.
 *
 * When the lock is not obtained (wait: false, or the timeout ran out) fn does not run and
 * the promise rejects with LockNotAcquiredError.
 *
 * Inside the caller's transaction block (scope 'session'), fn runs after a savepoint of its
 * own (a name unique to the call): when fn fails, what it did is rolled back to the savepoint
 * and the lock released, and the caller's transaction goes on; when fn returns with the block
 * aborted, the same, and the promise rejects with TransactionAbortedError. The lock is
 * released before the savepoint. When the hold cannot be released all the same, the promise
 * rejects with LockNotReleasedError (lockStillHeld: the connection keeps the lock).
 *
 * scope: 'transaction' needs a transaction block on the client (BEGIN first); the hold then
 * lasts until that transaction commits or rolls back, so the next holder sees what fn wrote.
 * When fn ends that transaction itself, the promise rejects with TransactionChangedError.
 *
 * A statement of its own that fails before the server answers (pg's query_timeout), or a
 * session the server ends, closes the connection: ConnectionClosedError. So does a query of
 * fn's still running when fn fails, if it cannot be cancelled.
 *
 * Given a pg.Pool, it takes a client from the pool for the lock and fn, and gives it back
 * at the end: outside any transaction block (one fn left open is rolled back, and a
 * successful fn then rejects with TransactionRolledBackError), and closed instead when its
 * hold could not be released, its state is in doubt, or it still holds a lock taken through pglocks (every other advisory lock of the session is released).
 *
 * Not supported, and refused where it can be told: fn releasing a savepoint taken before
 * withLock (SavepointReleasedError), calls overlapping on one client inside a block without
 * nesting (OverlappingCallError), a nested call on the same lock with another scope
 * (LockNotReleasedError), node-postgres' pipeline mode (UnsupportedClientError), and the
 * client used outside fn while withLock runs.
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
    let result;
    try {
      result = await withLockOn(client, lockKey, fn, options, { owned: true });
    } catch (err) {
      await giveBack(client, true);
      throw err;
    }
    if (await giveBack(client, false)) throw new TransactionRolledBackError(lockKey, { result });
    return result;
  }
  needClient(db, 'withLock');
  return withLockOn(db, lockKey, fn, options, { owned: false });
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
  if (!isPool(db) && !isClient(db)) {
    throw new UnsupportedClientError('pglocks withLockCommand(): the first argument must be a pg.Client, a pool client or a pg.Pool');
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
  LockNotReleasedError,
  ConnectionClosedError,
  TransactionAbortedError,
  TransactionChangedError,
  SavepointReleasedError,
  TransactionRolledBackError,
  OverlappingCallError,
  UnsupportedClientError,
};
