// Types of pglocks for Node.js. The client types are structural, so that pg.Client,
// pg.PoolClient and pg.Pool (with @types/pg or without) all fit.

/**
 * A lock's name: a string (the lock of `pglocks_key(name)`), a 64-bit integer as a BigInt or
 * a safe-integer number (the lock of `pg_advisory_lock(key)`), or a pair of 32-bit integers
 * (the lock of `pg_advisory_lock(key1, key2)`).
 */
export type LockKey = string | bigint | number | readonly [number, number];

/** Milliseconds, or a PostgreSQL interval such as `'2s'` or `'1 minute'`. */
export type Timeout = number | string;

/**
 * One connection: a pg.Client or a client taken from a pg.Pool (what the calls check at run
 * time: query, connect, end and on, besides node-postgres' connection or pg-native's native;
 * anything else is refused with UnsupportedClientError). A pg.Pool is not one (it runs each
 * query on whichever connection is free), and a lock belongs to one connection. A client in
 * pipeline mode (pipeline: true) fits the type but is refused at run time.
 */
export interface Connection {
  query(config: { text: string; values?: unknown[]; rowMode?: 'array' }): Promise<{ rows: any[] }>;
  connect(...args: any[]): unknown;
  end(...args: any[]): unknown;
  on(event: any, listener: (...args: any[]) => void): unknown;
  readonly totalCount?: never;
  /**
   * The transaction status node-postgres reports from 8.21.0 on: 'I' idle, 'T' in a
   * transaction block, 'E' in a failed one. withLock and scope 'transaction' read it (a
   * TypeError without it).
   */
  getTransactionStatus?(): string | null;
}

/** A client taken from a pool: it goes back with release(). */
export interface PooledConnection extends Connection {
  release(err?: Error | boolean): void;
}

/** A pg.Pool: withLock takes a client from it for the lock and the function. */
export interface PoolLike {
  readonly totalCount: number;
  connect(): Promise<PooledConnection>;
  query(config: { text: string; values?: unknown[]; rowMode?: 'array' }): Promise<{ rows: any[] }>;
}

/** What withLockCommand runs its one statement on: a connection or a pool. */
export type Queryable = Connection | PoolLike;

export interface AcquireOptions {
  /** A shared lock: any number of sessions hold it together. Default false (exclusive). */
  shared?: boolean;
  /** false: try once. Default true (wait until held, or for the timeout). */
  wait?: boolean;
  /** Wait at most this long (0 tries once). Not together with wait: false. */
  timeout?: Timeout | null;
  /**
   * 'session' (default): held until released or the connection ends. 'transaction': held
   * until the transaction ends; needs a transaction block (BEGIN) on the client.
   */
  scope?: 'session' | 'transaction';
}

export type TryLockOptions = Omit<AcquireOptions, 'wait'>;

export interface ReleaseOptions {
  /** Release a shared hold. Default false. */
  shared?: boolean;
}

export interface WithLockCommandOptions {
  /** Values for $1 ... $n of the command, sent as text[] (cast in the command: $2::int). */
  params?: readonly unknown[];
  shared?: boolean;
  wait?: boolean;
  timeout?: Timeout | null;
}

/** pglocks_key(name) computed locally: first 8 bytes of SHA-256 of the UTF-8, big-endian, signed. */
export function key(name: string): bigint;

/** Takes the lock on this client: true once held; false after wait: false or a timeout. */
export function acquire(client: Connection, key: LockKey, options?: AcquireOptions): Promise<boolean>;

/** Tries once (or waits at most options.timeout): true if taken, false if held elsewhere. */
export function tryLock(client: Connection, key: LockKey, options?: TryLockOptions): Promise<boolean>;

/** Releases one hold of the lock in that mode: false when this session has none. */
export function release(client: Connection, key: LockKey, options?: ReleaseOptions): Promise<boolean>;

/** Releases every hold this session took through pglocks; resolves to how many. */
export function releaseAll(client: Connection): Promise<bigint>;

/**
 * Runs fn under the lock and releases it however fn ends; resolves to fn's result. Rejects
 * with LockNotAcquiredError, without running fn, when wait: false or the timeout leaves the
 * lock to another session. With scope 'transaction' the hold lasts until the transaction ends.
 *
 * Inside the caller's transaction block fn runs after a savepoint of its own: when fn fails, its
 * work is rolled back to it and the lock released, and the transaction goes on. When fn returns
 * after catching an SQL error of the block, the same happens and the promise rejects with
 * TransactionAbortedError. With scope 'transaction', fn that ends the lock's transaction
 * rejects with TransactionChangedError. A hold that cannot be released all the same rejects
 * with LockNotReleasedError; a statement that fails before the server answers (pg's
 * query_timeout), a session the server ends, or a query of fn's that cannot be cancelled when
 * fn fails closes the connection and rejects with ConnectionClosedError. Given a pool, the
 * connection goes back outside any transaction block (one fn left open is rolled back; fn's
 * success then rejects with TransactionRolledBackError), and is closed instead when it still
 * holds a lock taken through pglocks (other advisory locks are released). fn that releases a savepoint taken before withLock rejects with
 * SavepointReleasedError; a call overlapping another on the same client inside a block,
 * without being nested (awaited) in its fn, rejects with OverlappingCallError. The client is
 * fn's while withLock runs: using it from outside fn meanwhile is not supported (a query
 * running when fn fails is cancelled as fn's). pg's pipeline mode is refused
 * (UnsupportedClientError).
 */
export function withLock<C extends PooledConnection = PooledConnection, T = unknown>(
  pool: PoolLike, key: LockKey, fn: (client: C) => T | PromiseLike<T>,
  options?: Omit<AcquireOptions, 'scope'> & { scope?: 'session' }): Promise<T>;
export function withLock<C extends Connection, T>(
  client: C, key: LockKey, fn: (client: C) => T | PromiseLike<T>, options?: AcquireOptions): Promise<T>;

/**
 * Runs an SQL command under the lock in the server (pglocks_with_lock), in one round trip:
 * true when it ran, false when the lock was not obtained.
 */
export function withLockCommand(
  client: Queryable, key: LockKey, command: string, options?: WithLockCommandOptions): Promise<boolean>;

/** The lock was not obtained: another session holds it (wait: false, or the timeout ran out). */
export class LockNotAcquiredError extends Error {
  constructor(key: LockKey, options?: { shared?: boolean; timeout?: Timeout | null });
  readonly name: 'LockNotAcquiredError';
  readonly code: 'PGLOCKS_NOT_ACQUIRED';
  readonly key: LockKey;
  readonly shared: boolean;
  /** The timeout that ran out; null for a try (wait: false). */
  readonly timeout: Timeout | null;
}

/**
 * withLock could not release the session hold after fn: the connection still holds the lock
 * (lockStillHeld; release it after ROLLBACK, or end the connection; a pool client is closed
 * when it is given back), or the connection was closed, which ended the hold.
 */
export class LockNotReleasedError extends Error {
  constructor(key: LockKey, options: {
    lockStillHeld: boolean; cause?: unknown; releaseError?: unknown; fnFailed?: boolean; fnRan?: boolean;
  });
  readonly name: 'LockNotReleasedError';
  readonly code: 'PGLOCKS_NOT_RELEASED';
  readonly key: LockKey;
  /** true: this connection still holds the lock; false: the connection was closed. */
  readonly lockStillHeld: boolean;
  /**
   * fn's error when fn failed; the error of the statement before fn when fn did not run (the
   * savepoint); else the release's error.
   */
  readonly cause: unknown;
  /** Why the release did not run (25P02 in an aborted transaction block, say). */
  readonly releaseError: unknown;
}

/**
 * The connection is closed, and with it every hold of its session: a pglocks statement failed
 * on the client side before the server answered (pg's query_timeout, a broken connection; the
 * statement is cancelled where a cancel request can be aimed at the connection's server), the
 * server ended the session (a FATAL error such as pg_terminate_backend's 57P01), withLock
 * abandoned a query of fn's it could not cancel, or a failed session-scope acquire could not
 * count the session's holds again to release one it may have left. Take a new connection.
 */
export class ConnectionClosedError extends Error {
  constructor(key: LockKey | undefined, what: string, cause?: unknown, why?: string);
  readonly name: 'ConnectionClosedError';
  readonly code: 'PGLOCKS_CONNECTION_CLOSED';
  /** The lock of the call; null for releaseAll. */
  readonly key: LockKey | null;
  /** The error that came first: node-postgres', the server's, or fn's. */
  readonly cause: unknown;
  /** After a failed acquire: the error of the recount (or of the ROLLBACK TO before it). */
  cleanupError?: unknown;
}

/**
 * The first argument is not a pg.Client or a client taken from a pg.Pool (or, for the calls
 * that take one connection, it is a pg.Pool); thrown before anything is sent. A TypeError.
 */
export class UnsupportedClientError extends TypeError {
  constructor(message: string);
  readonly name: 'UnsupportedClientError';
  readonly code: 'PGLOCKS_UNSUPPORTED_CLIENT';
}

/**
 * fn returned, but left the caller's transaction block aborted (an SQL error it caught): its
 * work was rolled back to withLock's savepoint and the lock released (scope 'session'), or the
 * transaction can only roll back (scope 'transaction').
 */
export class TransactionAbortedError extends Error {
  constructor(key: LockKey, code: string, options: { rolledBack: boolean });
  readonly name: 'TransactionAbortedError';
  /** The SQLSTATE the server answered with ('25P02', in_failed_sql_transaction). */
  readonly code: string;
  readonly key: LockKey;
}

/**
 * scope 'transaction': fn ended the transaction the hold belonged to (COMMIT, ROLLBACK, or
 * ROLLBACK TO a savepoint taken before withLock), so what it did afterwards was not under the
 * lock. RESET ALL in fn is not taken for it.
 */
export class TransactionChangedError extends Error {
  constructor(key: LockKey, options: { lockStillHeld: boolean; cause?: unknown });
  readonly name: 'TransactionChangedError';
  readonly code: 'PGLOCKS_TRANSACTION_CHANGED';
  readonly key: LockKey;
  /** Whether this session holds the lock now (fn took it again, say). */
  readonly lockStillHeld: boolean;
  /** fn's error, when fn failed. */
  readonly cause: unknown;
}

/**
 * scope 'session' inside the caller's transaction block: fn released a savepoint taken before
 * withLock (RELEASE SAVEPOINT), and withLock's own with it, which is not supported. The lock
 * was released; withLock's attempt to end its savepoint (SQLSTATE 3B001) left the block
 * aborted, and fn's work was not undone when fn failed: roll the transaction back.
 */
export class SavepointReleasedError extends Error {
  constructor(key: LockKey, options: { cause?: unknown; savepointError?: unknown; fnFailed?: boolean });
  readonly name: 'SavepointReleasedError';
  readonly code: 'PGLOCKS_SAVEPOINT_RELEASED';
  readonly key: LockKey;
  /** Always false: the lock was released before withLock's savepoint was touched. */
  readonly lockStillHeld: false;
  /** fn's error when fn failed, else the server's 3B001. */
  readonly cause: unknown;
  /** The server's error (3B001, invalid_savepoint_specification). */
  readonly savepointError: unknown;
}

/**
 * withLock given a pool: fn returned with a transaction block open on the pool's connection,
 * which was rolled back (fn's work in it undone) before the connection went back.
 */
export class TransactionRolledBackError extends Error {
  constructor(key: LockKey, options?: { result?: unknown; cause?: unknown });
  readonly name: 'TransactionRolledBackError';
  readonly code: 'PGLOCKS_TRANSACTION_ROLLED_BACK';
  readonly key: LockKey;
  /** What fn resolved to. */
  readonly result: unknown;
  /** The error that came with it, if any. */
  readonly cause?: unknown;
}

/**
 * withLock inside a transaction block overlapping another withLock call on the same client
 * without nesting in its fn: refused before the lock is taken when a call that started
 * earlier has not entered its fn yet or is ending; or, when fn ends while a call that started
 * later is still in progress, after waiting for it and releasing the lock and the savepoint
 * in order (result: what fn resolved to; cause: fn's error). Nest the calls (await withLock
 * in fn) or wait for one to end.
 */
export class OverlappingCallError extends Error {
  constructor(key: LockKey, options?: { cause?: unknown; result?: unknown });
  readonly name: 'OverlappingCallError';
  readonly code: 'PGLOCKS_OVERLAPPING_CALL';
  readonly key: LockKey;
  readonly result: unknown;
}
