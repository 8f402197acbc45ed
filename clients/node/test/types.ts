// Compiled by `npm run typecheck` (tsc, nothing emitted): the declarations fit node-postgres'
// own types (@types/pg) as applications use them. Lines marked @ts-expect-error must fail.
import { Client, Pool, PoolClient } from 'pg';
import pglocks = require('..');
import {
  key, withLock, tryLock, acquire, release, releaseAll, withLockCommand, LockNotAcquiredError, LockNotReleasedError,
  ConnectionClosedError, UnsupportedClientError, TransactionAbortedError, TransactionChangedError,
  SavepointReleasedError, TransactionRolledBackError, OverlappingCallError,
} from '..';

async function uses(client: Client, pool: Pool, poolClient: PoolClient): Promise<void> {
  const k: bigint = key('orders:42');
  const n: number = await withLock(client, 'orders:42', async (c: Client) => {
    await c.query('SELECT 1');
    return 1;
  }, { shared: true, timeout: 2000, scope: 'session' });
  const s: string = await withLock(poolClient, k, (c: PoolClient) => 'x', { wait: false });
  const fromPool: boolean = await withLock(pool, [1, 2], async (c) => {
    c.release; // the pool's client type reaches fn
    return true;
  });
  const ident: string = await withLock(pool, 'x', (c: PoolClient) => c.escapeIdentifier('x'));
  const got: boolean = await tryLock(client, 42, { timeout: '5s' });
  await acquire(poolClient, 'x', { scope: 'transaction' });
  const released: boolean = await release(client, 'x', { shared: true });
  const count: bigint = await releaseAll(client);
  const ran: boolean = await withLockCommand(pool, 'x', 'UPDATE t SET n = $1::int', { params: [1], timeout: 100 });
  await pglocks.withLock(client, 'y', () => undefined);

  try {
    await withLock(client, 'x', () => 0, { wait: false });
  } catch (err) {
    if (err instanceof LockNotAcquiredError) {
      const code: 'PGLOCKS_NOT_ACQUIRED' = err.code;
      const which: pglocks.LockKey = err.key;
      const t: number | string | null = err.timeout;
    }
    if (err instanceof LockNotReleasedError) {
      const code: 'PGLOCKS_NOT_RELEASED' = err.code;
      const still: boolean = err.lockStillHeld;
      const fnError: unknown = err.cause;
    }
    if (err instanceof TransactionAbortedError) {
      const sqlstate: string = err.code;
      const which: pglocks.LockKey = err.key;
    }
    if (err instanceof TransactionChangedError) {
      const code: 'PGLOCKS_TRANSACTION_CHANGED' = err.code;
      const still: boolean = err.lockStillHeld;
    }
    if (err instanceof UnsupportedClientError) {
      const code: 'PGLOCKS_UNSUPPORTED_CLIENT' = err.code;
      const asTypeError: TypeError = err;
    }
    if (err instanceof SavepointReleasedError) {
      const code: 'PGLOCKS_SAVEPOINT_RELEASED' = err.code;
      const still: false = err.lockStillHeld;
      const sqlError: unknown = err.savepointError;
    }
    if (err instanceof TransactionRolledBackError) {
      const code: 'PGLOCKS_TRANSACTION_ROLLED_BACK' = err.code;
      const result: unknown = err.result;
      const cause: unknown = err.cause;
    }
    if (err instanceof OverlappingCallError) {
      const code: 'PGLOCKS_OVERLAPPING_CALL' = err.code;
    }
    if (err instanceof ConnectionClosedError) {
      const code: 'PGLOCKS_CONNECTION_CLOSED' = err.code;
      const which: pglocks.LockKey | null = err.key;
    }
  }

  // @ts-expect-error a key is a string, a number, a bigint or a pair
  await tryLock(client, { id: 1 });
  // @ts-expect-error a pair has two elements
  await tryLock(client, [1, 2, 3]);
  // @ts-expect-error scope is 'session' or 'transaction'
  await acquire(client, 'x', { scope: 'statement' });
  // @ts-expect-error tryLock does not wait
  await tryLock(client, 'x', { wait: true });
  // @ts-expect-error a transaction-scope lock cannot be taken on a pool
  await withLock(pool, 'x', () => 0, { scope: 'transaction' });
  // @ts-expect-error a lock needs one connection, not a pool
  await tryLock(pool, 'x');
  // @ts-expect-error anything with a query() is not a connection: the call would throw UnsupportedClientError
  await acquire({ query: async () => ({ rows: [] }) }, 'x');
  // @ts-expect-error nor for withLock
  await withLock({ query: async () => ({ rows: [] }) }, 'x', () => 0);
  // @ts-expect-error nor for withLockCommand
  await withLockCommand({ query: async () => ({ rows: [] }) }, 'x', 'SELECT 1');
  // @ts-expect-error key() takes a name
  key(42);
  void [n, s, ident, fromPool, got, released, count, ran];
}
void uses;
