// pglocks from Node.js with the pg driver.
//
// Connects with the usual libpq environment (PGHOST, PGPORT, PGUSER, PGDATABASE),
// creates the extension if it is missing, and shows: a lock taken and released,
// a withAdvisoryLock helper on top of pglocks, work run under pglocks_with_lock,
// tries that fail while another connection holds the lock, and pglocks_key
// computed locally. Exits 1 if anything is not as the specification says.
'use strict';

const assert = require('node:assert');
const { Client } = require('pg');
const { pglocksKey, SPEC_VECTORS } = require('./pglocks_key');

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

// Parameters reach the server untyped, and an untyped parameter picks the text form of an
// overloaded function: a number key must say ::bigint, or it becomes the text key '42'.
async function withAdvisoryLock(client, key, work, { shared = false, wait = true } = {}) {
  const k = typeof key === 'string' ? '$1' : '$1::bigint';
  const acquired = await one(client, `SELECT pglocks_acquire(${k}, shared => $2, wait => $3)`, [key, shared, wait]);
  try {
    return await work(acquired);
  } finally {
    if (acquired) await one(client, `SELECT pglocks_release(${k}, shared => $2)`, [key, shared]);
  }
}

async function held(client) {
  const { rows } = await client.query('SELECT key, holds FROM pglocks_held() ORDER BY key');
  return rows.map((r) => [r.key, r.holds]);
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
      check(`local pglocks_key(${JSON.stringify(key)})`, pglocksKey(key), expected);
      // bigint arrives as a decimal string: exact, where a Number would round.
      check(`server pglocks_key(${JSON.stringify(key)})`, BigInt(await one(app, 'SELECT pglocks_key($1)', [key])), expected);
    }

    console.log('a lock taken by one connection, tried by another:');
    check("app takes 'orders:42'", await one(app, 'SELECT pglocks_acquire($1)', ['orders:42']), true);
    check("other tries 'orders:42'", await one(other, 'SELECT pglocks_acquire($1, wait => false)', ['orders:42']), false);
    // The key computed here names the very lock the server took for the text key.
    check('other tries pg_try_advisory_lock(local key)',
      await one(other, 'SELECT pg_try_advisory_lock($1::bigint)', [pglocksKey('orders:42').toString()]), false);
    check("app's holds", await held(app), [['orders:42', 1]]);
    check("app releases 'orders:42'", await one(app, 'SELECT pglocks_release($1)', ['orders:42']), true);
    check('other tries again', await one(other, 'SELECT pglocks_acquire($1, wait => false)', ['orders:42']), true);
    check('other releases', await one(other, 'SELECT pglocks_release($1)', ['orders:42']), true);

    console.log('the withAdvisoryLock helper:');
    await withAdvisoryLock(app, 'orders:42', async (acquired) => {
      check('acquired', acquired, true);
      check("other's try inside the block", await one(other, 'SELECT pglocks_acquire($1, wait => false)', ['orders:42']), false);
    });
    check("app's holds after the block", await held(app), []);
    await assert.rejects(withAdvisoryLock(app, 42, async () => {
      check("app's holds inside a bigint-key block", await held(app), [['42', 1]]);
      throw new Error('the job failed');
    }), /the job failed/);
    check("app's holds after a block that threw", await held(app), []);

    console.log('work under pglocks_with_lock (lock, command and release in one round trip):');
    await app.query('CREATE TEMP TABLE report_runs (note text)');
    const runs = 'SELECT count(*)::int FROM report_runs';
    const work = "INSERT INTO report_runs VALUES ('built')";
    check("with_lock('nightly-report', work)", await one(app, 'SELECT pglocks_with_lock($1, $2)', ['nightly-report', work]), true);
    check('rows written by the work', await one(app, runs), 1);
    check("app's holds after with_lock", await held(app), []);

    check("other takes 'nightly-report'", await one(other, 'SELECT pglocks_acquire($1)', ['nightly-report']), true);
    check('with_lock(wait => false) while other holds it',
      await one(app, 'SELECT pglocks_with_lock($1, $2, wait => false)', ['nightly-report', work]), false);
    check('rows written (the work did not run)', await one(app, runs), 1);
    const started = process.hrtime.bigint();
    check("with_lock(timeout => '300ms') while other holds it",
      await one(app, "SELECT pglocks_with_lock($1, $2, timeout => '300ms')", ['nightly-report', work]), false);
    const waitedMs = Number(process.hrtime.bigint() - started) / 1e6;
    check('waited for the timeout', waitedMs >= 250 && waitedMs < 5000, true);
    check('rows written (the work did not run)', await one(app, runs), 1);
    check('other releases', await one(other, 'SELECT pglocks_release($1)', ['nightly-report']), true);

    let code = 'no error';
    try {
      await app.query("SELECT pglocks_with_lock('nightly-report', 'SELECT 1/0')");
    } catch (err) {
      code = err.code;
    }
    check('a failing command raises division_by_zero', code, '22012');
    check("app's holds after the failure", await held(app), []);
    check('other takes it after the failure', await one(other, 'SELECT pglocks_acquire($1, wait => false)', ['nightly-report']), true);
    check('other releases', await one(other, 'SELECT pglocks_release($1)', ['nightly-report']), true);
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
