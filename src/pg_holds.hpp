// Taking and releasing pglocks holds: the lock manager calls (try, wait, timed wait) and the
// bookkeeping of the holds registry, kept in step with each other and with the end of
// transactions and subtransactions.
#pragma once

#include "pg_keys.hpp"

namespace pglocks {

struct AcquireRequest {
    KeyArg key;
    bool wait;
    // Milliseconds the wait may last; -1 waits without limit, 0 tries once.
    int timeout_ms;
    Scope scope;
    // false: an error when this session already holds the lock (pg_guards.hpp).
    bool reentrant = true;
    // false: a try that finds the lock taken is not a failed try in pglocks_stats (the
    // probes of a semaphore's slots, which go on to the next slot).
    bool count_failure = true;
    // true: the caller's deadline has passed and this is its last try (pglocks_acquire_all
    // between keys): a lock found taken is a timeout in pglocks_stats, not a failed try.
    bool deadline_passed = false;
    // true: the caller checked the guards already, for what it takes as a whole (a semaphore).
    bool guards_checked = false;
};

// A boolean argument that must not be NULL (22004 naming it).
bool bool_arg(FunctionCallInfo fcinfo, int argno, const char* name);
// The timeout argument: NULL waits without limit (-1), else milliseconds, 0 = try once;
// negative, or given with wait => false, is 22023.
int timeout_arg(FunctionCallInfo fcinfo, int argno, bool wait);

// The scope argument: "session" or "transaction" (22023 otherwise, 22004 when NULL).
Scope scope_arg(FunctionCallInfo fcinfo, int argno);

// Reads (shared, wait, timeout, scope[, reentrant]) starting at argument `arg`, with their
// checks; reentrant is read when the installed SQL declares it (1.2 on).
void read_acquire_options(FunctionCallInfo fcinfo, int arg, AcquireRequest* req);

// 55000 on a server in recovery unless pglocks.allow_on_standby is on: acquire() and
// lock_internal() check it, and so does every acquire form that may take no lock at all.
void check_standby();

// Returns the new hold's id, or 0 when the lock was not obtained. Raises only PostgreSQL
// errors (never a C++ exception), so it may run under PG_TRY.
uint64_t acquire(const AcquireRequest& req);

// Releases the newest hold of the lock and mode; false when this session has none.
bool release(const LockId& id);

// Releases one particular hold (used by pglocks_with_lock); false if it is already gone.
bool release_hold(const LockId& id, uint64_t hold_id);

// Gives a hold taken in the call scope its own scope once the call can no longer fail. Until
// then an error ends it through the abort of the (sub)transaction, so no error path has to
// call the lock manager while the error is in flight.
void set_hold_scope(const LockId& id, uint64_t hold_id, Scope scope);

// Notes that a pglocks_with_lock call outside a transaction block keeps its hold until the
// statement's transaction ends; a deadlock or a full lock table meanwhile gets a hint that
// says so.
void note_kept_call_hold();

// Records the fencing token of a hold taken by acquire().
void set_hold_token(const LockId& id, uint64_t hold_id, int64_t token);

// The token of the newest hold of `id` that has one, or 0.
int64_t newest_token(const LockId& id);

// Releases every hold; returns how many.
uint64_t release_all();

// Whether this session holds the lock of `id` (in its mode) in the lock manager.
bool holds_lock(const LockId& id);

// The lock manager's tag of a pglocks lock in this database.
LOCKTAG make_tag(const LockId& id);

// A session lock outside the holds registry, for pglocks' own queues: tries, then waits at
// most timeout_ms (-1: no limit of ours; the user's lock_timeout still applies). Returns
// whether it is held. Cancels, deadlocks and lock_timeout raise their usual errors with the
// lock not held.
bool lock_internal(const LockId& id, int timeout_ms);
void unlock_internal(const LockId& id);

// Drops holds of locks that the lock manager no longer holds for this session.
void reconcile();

class HoldsRegistry;
const HoldsRegistry& registry();

// Registers the transaction callbacks; called once from _PG_init.
void register_hold_callbacks();

}  // namespace pglocks
