// pglocks from Node.js with the pg driver and the pglocks package (clients/node).
//
// Connects with the usual libpq environment (PGHOST, PGPORT, PGUSER, PGDATABASE),
// creates the extension if it is missing, and shows: a lock taken and released, tries
// that fail while another connection holds the lock, withLock (released when the work
// ends, however it ends), work run under pglocks_with_lock, and pglocks_key computed
// locally. Exits 1 if anything is not as the specification says.
'use strict';

const assert = require('node:assert');
const { Client } = require('pg');
const pglocks = require('pglocks');

// The specification's vectors: key -> pglocks_key.
const SPEC_VECTORS = [
  ['', -2039914840885289964n],
  ['some lock', -5006958056254205714n],
  ['orders:42', -8476019149258318077n],
  ['Grüße', -559005354142841542n],
  ['日本語', 8606672379249086371n],
];

let failures = 0;

function check(what, got, want) {
  let ok = true;
  try {
    assert.deepStrictEqual(got, want);
  } catch {
    ok = false;
    failures += 1;
  }
  const show = (v) => (typeof v === 'bigint' ? `${v}n` : JSON.stringify(v));
  console.log(`  ${ok ? 'ok  ' : 'FAIL'} ${what}: ${show(got)}${ok ? '' : ` (expected ${show(want)})`}`);
}

async function one(client, sql, params = []) {
  const { rows } = await client.query({ text: sql, values: params, rowMode: 'array' });
  return rows[0][0];
}

async function held(client) {
  const { rows } = await client.query('SELECT key, holds FROM pglocks_held() ORDER BY key');
  return rows.map((r) => [r.key, r.holds]);
}

// What a promise ended with: its value, or the name of the error it rejected with.
async function outcome(promise) {
  try {
    return { value: await promise };
  } catch (err) {
    return { error: err.name === 'error' ? err.code : err.name };
  }
}

async function main() {
  const app = new Client();
  const other = new Client();
  await app.connect();
  await other.connect();
  try {
    await app.query('CREATE EXTENSION IF NOT EXISTS pglocks');

    console.log('pglocks_key computed here and by the server:');
    for (const [key, expected] of SPEC_VECTORS) {
      check(`key(${JSON.stringify(key)})`, pglocks.key(key), expected);
      // bigint arrives as a decimal string: exact, where a Number would round.
      check(`server pglocks_key(${JSON.stringify(key)})`, BigInt(await one(app, 'SELECT pglocks_key($1)', [key])), expected);
    }

    console.log('a lock taken by one connection, tried by another:');
    check("app takes 'orders:42'", await pglocks.acquire(app, 'orders:42'), true);
    check("other tries 'orders:42'", await pglocks.tryLock(other, 'orders:42'), false);
    // The key computed here names the very lock the server took for the text key.
    check('other tries pg_try_advisory_lock(key)',
      await one(other, 'SELECT pg_try_advisory_lock($1::bigint)', [pglocks.key('orders:42').toString()]), false);
    check("app's holds", await held(app), [['orders:42', 1]]);
    check("app releases 'orders:42'", await pglocks.release(app, 'orders:42'), true);
    check('other tries again', await pglocks.tryLock(other, 'orders:42'), true);
    check('other releases', await pglocks.release(other, 'orders:42'), true);

    console.log('withLock: the lock is held while the work runs, released however it ends:');
    const result = await pglocks.withLock(app, 'orders:42', async () => {
      check("other's try inside the work", await pglocks.tryLock(other, 'orders:42'), false);
      return 'shipped';
    });
    check('what the work returned', result, 'shipped');
    check("app's holds after the work", await held(app), []);
    check('work that throws: its error', await outcome(pglocks.withLock(app, 42n, async () => {
      check("app's holds inside a bigint-key lock", await held(app), [['42', 1]]);
      throw new RangeError('the job failed');
    })), { error: 'RangeError' });
    check("app's holds after work that threw", await held(app), []);
    check("other takes 'orders:42'", await pglocks.acquire(other, 'orders:42'), true);
    check('withLock(wait: false) while other holds it',
      await outcome(pglocks.withLock(app, 'orders:42', () => 'ran', { wait: false })), { error: 'LockNotAcquiredError' });
    check('withLock(timeout: 300) while other holds it',
      await outcome(pglocks.withLock(app, 'orders:42', () => 'ran', { timeout: 300 })), { error: 'LockNotAcquiredError' });
    check('other releases', await pglocks.release(other, 'orders:42'), true);

    console.log('work under pglocks_with_lock (lock, command and release in one round trip):');
    await app.query('CREATE TEMP TABLE report_runs (note text)');
    const runs = 'SELECT count(*)::int FROM report_runs';
    const work = 'INSERT INTO report_runs VALUES ($1)';
    check("withLockCommand('nightly-report', work)",
      await pglocks.withLockCommand(app, 'nightly-report', work, { params: ['built'] }), true);
    check('rows written by the work', await one(app, runs), 1);
    check("app's holds after withLockCommand", await held(app), []);

    check("other takes 'nightly-report'", await pglocks.acquire(other, 'nightly-report'), true);
    check('withLockCommand(wait: false) while other holds it',
      await pglocks.withLockCommand(app, 'nightly-report', work, { params: ['built'], wait: false }), false);
    check('rows written (the work did not run)', await one(app, runs), 1);
    const started = process.hrtime.bigint();
    check("withLockCommand(timeout: '300ms') while other holds it",
      await pglocks.withLockCommand(app, 'nightly-report', work, { params: ['built'], timeout: '300ms' }), false);
    const waitedMs = Number(process.hrtime.bigint() - started) / 1e6;
    check('waited for the timeout', waitedMs >= 250 && waitedMs < 5000, true);
    check('rows written (the work did not run)', await one(app, runs), 1);
    check('other releases', await pglocks.release(other, 'nightly-report'), true);

    check('a failing command raises division_by_zero',
      await outcome(pglocks.withLockCommand(app, 'nightly-report', 'SELECT 1/0')), { error: '22012' });
    check("app's holds after the failure", await held(app), []);
    check('other takes it after the failure', await pglocks.tryLock(other, 'nightly-report'), true);
    check('other releases', await pglocks.release(other, 'nightly-report'), true);
  } finally {
    await app.end();
    await other.end();
  }
  if (failures > 0) {
    console.error(`${failures} check(s) failed`);
    process.exitCode = 1;
  } else {
    console.log('all checks passed');
  }
}

main().catch((err) => {
  console.error(err);
  process.exitCode = 1;
});
