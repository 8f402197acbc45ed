// Connections for the tests: the libpq environment (PGHOST, PGPORT, PGUSER, PGDATABASE)
// names a database with the pglocks extension.
'use strict';

const { Client, Pool } = require('pg');

const open = [];

async function connect(options = {}) {
  const client = new Client(options);
  await client.connect();
  open.push(client);
  return client;
}

function pool(options = {}) {
  const p = new Pool(options);
  open.push(p);
  return p;
}

async function closeAll() {
  while (open.length > 0) await open.pop().end();
}

async function one(client, text, values = []) {
  const { rows } = await client.query({ text, values, rowMode: 'array' });
  return rows[0][0];
}

// This session's holds as [key, shared, scope, holds], in a stable order.
async function held(client) {
  const { rows } = await client.query(
    'SELECT key, shared, scope, holds FROM pglocks_held() ORDER BY key, shared, scope');
  return rows.map((r) => [r.key, r.shared, r.scope, r.holds]);
}

// Whether another session could take the bigint lock k (exclusive or shared) right now.
async function freeFor(other, k, { shared = false } = {}) {
  const fn = shared ? 'pg_try_advisory_lock_shared' : 'pg_try_advisory_lock';
  const unlock = shared ? 'pg_advisory_unlock_shared' : 'pg_advisory_unlock';
  const got = await one(other, `SELECT ${fn}($1::bigint)`, [k.toString()]);
  if (got) await one(other, `SELECT ${unlock}($1::bigint)`, [k.toString()]);
  return got;
}

// The backend of this client is waiting for a lock (seen from another session).
async function waitUntilWaiting(observer, client, ms = 5000) {
  const pid = client.processID;
  const deadline = Date.now() + ms;
  while (Date.now() < deadline) {
    if (await one(observer, "SELECT wait_event_type = 'Lock' FROM pg_stat_activity WHERE pid = $1", [pid])) return;
    await new Promise((r) => setTimeout(r, 10));
  }
  throw new Error(`backend ${pid} did not start waiting for a lock`);
}

// Waits until the backend of pid has ended (seen from another session); false if it is
// still there after ms.
async function backendGone(observer, pid, ms = 10000) {
  const deadline = Date.now() + ms;
  while (Date.now() < deadline) {
    if (!(await one(observer, 'SELECT count(*) > 0 FROM pg_stat_activity WHERE pid = $1', [pid]))) return true;
    await new Promise((r) => setTimeout(r, 20));
  }
  return false;
}

// The locks pid holds (granted) or waits for, as 'granted'/'waiting' per advisory lock.
async function advisoryLocksOf(observer, pid) {
  const { rows } = await observer.query(
    "SELECT granted FROM pg_locks WHERE locktype = 'advisory' AND pid = $1", [pid]);
  return rows.map((r) => (r.granted ? 'granted' : 'waiting'));
}

module.exports = {
  connect, pool, closeAll, one, held, freeFor, waitUntilWaiting, backendGone, advisoryLocksOf,
};
