// Holds in the server: every lock and mode held through pglocks owns one session-level
// count in the lock manager (see holds_registry.hpp); transaction-bound holds are ended by
// the transaction callbacks registered here.
//
// Waiting: a first non-blocking attempt serves the uncontended case at the cost of a plain
// LockAcquire. Only when the lock is busy does pglocks enter the lock queue, inside an
// internal subtransaction, so that whatever ends the wait (our timeout, the user's
// lock_timeout or statement_timeout, a cancel, a deadlock) is caught, the wait cleaned up
// by the server, and the race where the lock is granted in the very instant the wait ends
// is settled: a lock granted that way is kept and counted when our timeout fired, and given
// back before the error propagates in every other case, so no hold is ever left unknown.
// Pure C++ first: it refuses to follow postgres.h.
#include "holds_registry.hpp"

#include "pg_guards.hpp"
#include "pg_holds.hpp"
#include "pg_names.hpp"
#include "pg_slots.hpp"
#include "pg_stats.hpp"

extern "C" {
#include "access/xact.h"
#include "access/xlog.h"
#include "miscadmin.h"
#include "storage/lock.h"
#include "storage/proc.h"
#include "utils/elog.h"
#include "utils/guc.h"
#include "utils/memutils.h"
#include "utils/resowner.h"
#include "utils/timeout.h"
#include "utils/timestamp.h"
}

#include <time.h>

extern bool pglocks_allow_on_standby;

namespace pglocks {

namespace {

// Owned here for the whole backend; see rule 3 in pg_boundary.hpp.
HoldsRegistry g_registry;

// The lock an acquire is working on, so that the entry it reserved is dropped when an
// error ends the acquire (a cancelled wait, a full lock table): otherwise the empty
// entries of failed acquires would pile up. Not while the acquire waits inside its own
// internal subtransaction, whose abort is part of the wait.
// A name published for the wait goes the same way.
LockId g_pending;
bool g_has_pending = false;
bool g_pending_named = false;
bool g_in_wait = false;
// The wait's internal subtransaction: its own abort is part of the wait; the abort of any
// other (an error that escaped the wait's catch, ending an enclosing (sub)transaction) ends
// the wait too, so g_in_wait cannot stay set past it.
SubTransactionId g_wait_subid = InvalidSubTransactionId;

// pglocks_with_lock calls of this transaction that kept their hold past the call (outside a
// transaction block the hold ends with the statement's transaction). A cheap gate: the
// error hint below checks the registry before it speaks.
int g_kept_call_holds = 0;

bool has_call_holds() { return g_kept_call_holds > 0 && g_registry.has_scope(Scope::Call); }

// Error context callback, pushed around lock-manager calls while kept holds exist: where
// they bite (a deadlock, a full lock table), the hint names the helper and what to do.
void kept_holds_hint(void*) {
    const int code = geterrcode();
    if (code != ERRCODE_T_R_DEADLOCK_DETECTED && code != ERRCODE_OUT_OF_MEMORY) return;
    if (!has_call_holds()) return;
    // Said of where the holds are kept, not of IsTransactionBlock(): a block the client
    // opened before the library was loaded, an implicit block and a chained transaction
    // keep them too (g_explicit_block in pg_functions.cpp).
    if (code == ERRCODE_T_R_DEADLOCK_DETECTED)
        errhint(
            "See server log for query details. Unless the transaction was opened with "
            "BEGIN or START TRANSACTION while pglocks was loaded, pglocks_with_lock keeps "
            "every lock it took until the transaction ends, so a statement that calls it "
            "for several locks holds them all: take them in one order "
            "(pglocks_acquire_all), or call pglocks_with_lock inside BEGIN ... COMMIT, "
            "where each lock ends with its call.");
    else
        errhint(
            "You might need to increase max_locks_per_transaction. Unless the "
            "transaction was opened with BEGIN or START TRANSACTION while pglocks was "
            "loaded, pglocks_with_lock keeps every lock it took until the transaction "
            "ends: run a loop over many keys inside BEGIN ... COMMIT, where each lock "
            "ends with its call, or one statement per key.");
}

void drop_pending() {
    if (g_has_pending && !g_in_wait) {
        if (g_pending_named) names_unpublish(g_pending);
        g_registry.drop_if_empty(g_pending);
        g_has_pending = false;
        g_pending_named = false;
    }
}

LOCKMODE mode_of(const LockId& id) { return id.shared ? ShareLock : ExclusiveLock; }

bool held_by_me(const LOCKTAG* tag, LOCKMODE mode) { return compat::lock_held_by_me(tag, mode); }

// pglocks' session count and the core functions' counts of the same lock and mode share one
// LOCALLOCK, so LockHeldByMe cannot tell them apart. The LOCALLOCK holding pglocks' count is
// marked with MarkLockClear (a flag only relation locking uses; the core advisory functions
// never set it), and a LOCALLOCK disappears with its last count: when a core unlock takes
// pglocks' count away and a core lock takes the lock again, that is a new, unmarked
// LOCALLOCK. The LOCALLOCK is read only within the call that returned it, never kept.
//
// Marks the LOCALLOCK of a lock this session holds (a count pglocks just took).
void mark_ours(const LOCKTAG* tag, LOCKMODE mode) {
    LOCALLOCK* locallock = nullptr;
    const LockAcquireResult r = compat::lock_acquire_session(tag, mode, true, false, &locallock);
    if (r == LOCKACQUIRE_NOT_AVAIL) return;
    MarkLockClear(locallock);
    LockRelease(tag, mode, true);  // the probe's count
}

// Whether pglocks' own session count is still there: the marked LOCALLOCK exists, and its
// session owner has our count besides the probe's. Only a lock this session holds is probed,
// so the probe never touches the shared lock table.
bool ours_held(const LOCKTAG* tag, LOCKMODE mode) {
    if (!held_by_me(tag, mode)) return false;
    LOCALLOCK* locallock = nullptr;
    const LockAcquireResult r = compat::lock_acquire_session(tag, mode, true, false, &locallock);
    if (r == LOCKACQUIRE_NOT_AVAIL) return false;
    bool ours = false;
    if (r == LOCKACQUIRE_ALREADY_CLEAR) {
        for (int i = 0; i < locallock->numLockOwners; i++) {
            if (locallock->lockOwners[i].owner == nullptr) {
                ours = locallock->lockOwners[i].nLocks >= 2;
                break;
            }
        }
    }
    LockRelease(tag, mode, true);  // the probe's count
    return ours;
}

bool lm_held(const LockId& id) {
    const LOCKTAG tag = make_tag(id);
    return ours_held(&tag, mode_of(id));
}

void lm_release(const LockId& id) {
    const LOCKTAG tag = make_tag(id);
    LockRelease(&tag, mode_of(id), true);
}

bool lm_try(const LOCKTAG* tag, LOCKMODE mode) {
    LOCALLOCK* locallock = nullptr;
    if (compat::lock_acquire_session(tag, mode, true, true, &locallock) == LOCKACQUIRE_NOT_AVAIL)
        return false;
    MarkLockClear(locallock);
    return true;
}

// Waits in the lock queue. timeout_ms < 0: no limit of ours (the user's lock_timeout still
// applies and raises its error). Returns whether the lock is held.
//
// Our timeout is the lock-timeout timer the server arms in the wait from the LockTimeout
// variable: set for the lock-manager call alone, inside the PG_TRY, and given the user's
// value back first thing on every way out of it (the grant, the catch), so no statement
// ever runs with it (SHOW lock_timeout never disagrees with the variable). Not through
// set_config_option with GUC_ACTION_SAVE: up to PostgreSQL 15 the subtransaction's end then
// walks every setting of the server (AtEOXact_GUC), some 3.5 µs between the grant and the
// caller on this machine, a twentieth of a hand-off (bench/README.md, scenario 5).
//
// When the lock-timeout timer fires in the very instant the lock is granted, the server
// keeps the grant, stops the timer and leaves the timeout's cancel pending: the next
// interrupt check anywhere would raise "canceling statement due to lock timeout" with the
// lock held. The check right after the grant takes that pending cancel here, inside the
// subtransaction, where the catch settles it: kept and counted when it was our timeout,
// given back before the error propagates otherwise.
//
// `stats`: the key of an acquire whose wait pglocks_stats counts (nullptr for pglocks' own
// queues); a wait that ends in an error is counted here, before the error propagates.
bool lm_wait(const LOCKTAG* tag, LOCKMODE mode, int timeout_ms, const KeyArg* stats = nullptr) {
    const TimestampTz wait_start = stats != nullptr && stats_active() ? stats_clock() : 0;
    MemoryContext caller_cxt = CurrentMemoryContext;
    ResourceOwner caller_owner = CurrentResourceOwner;
    const int user_lock_timeout = LockTimeout;
    // Our timeout replaces lock_timeout for this wait unless the user's is strictly shorter,
    // in which case the user's fires first and raises its usual error.
    const bool ours = timeout_ms > 0 && (user_lock_timeout <= 0 || timeout_ms <= user_lock_timeout);
    volatile bool granted = false;
    ErrorData* volatile failure = nullptr;
    // When our timeout and statement_timeout fire together, the server reports one of them
    // (the lock timeout when it was due first); the statement timeout must not be lost in
    // our false. A timer that has fired is no longer active.
    const bool statement_timer = get_timeout_active(STATEMENT_TIMEOUT);

    BeginInternalSubTransaction(nullptr);
    g_in_wait = true;
    g_wait_subid = GetCurrentSubTransactionId();
    MemoryContextSwitchTo(caller_cxt);
    PG_TRY();
    {
        LOCALLOCK* locallock = nullptr;
        if (ours) LockTimeout = timeout_ms;
        (void)compat::lock_acquire_session(tag, mode, false, true, &locallock);
        LockTimeout = user_lock_timeout;
        MarkLockClear(locallock);
        CHECK_FOR_INTERRUPTS();
        ReleaseCurrentSubTransaction();
        granted = true;
    }
    PG_CATCH();
    {
        LockTimeout = user_lock_timeout;
        MemoryContextSwitchTo(caller_cxt);
        failure = CopyErrorData();
        FlushErrorState();
        // Takes us off the wait queue, or records a grant that raced with the error.
        RollbackAndReleaseCurrentSubTransaction();
    }
    PG_END_TRY();
    g_in_wait = false;
    MemoryContextSwitchTo(caller_cxt);
    CurrentResourceOwner = caller_owner;

    if (granted) return true;
    // Until a grant that raced the error is settled (given back, or marked and returned to
    // be recorded): counting may write to the server log, whose interrupt check would
    // otherwise raise a pending cancel here and leave a session lock nobody records. Resumed
    // before every way out (ReThrowError does not reset the holdoff as ereport does).
    HOLD_INTERRUPTS();
    if (wait_start != 0 && !(ours && failure->sqlerrcode == ERRCODE_LOCK_NOT_AVAILABLE &&
                             !(statement_timer && !get_timeout_active(STATEMENT_TIMEOUT))))
        stats_count(*stats, StatsOutcome::Failed, stats_elapsed(wait_start), 0);
    // Nothing of this session held the lock before the wait (the try would have succeeded),
    // so a lock held now was granted to the wait.
    const bool raced = held_by_me(tag, mode);
    if (ours && failure->sqlerrcode == ERRCODE_LOCK_NOT_AVAILABLE) {
        if (statement_timer && !get_timeout_active(STATEMENT_TIMEOUT)) {
            if (raced) LockRelease(tag, mode, true);
            FreeErrorData(failure);
            RESUME_INTERRUPTS();
            ereport(ERROR, (errcode(ERRCODE_QUERY_CANCELED),
                            errmsg("canceling statement due to statement timeout")));
        }
        FreeErrorData(failure);
        if (raced) mark_ours(tag, mode);
        RESUME_INTERRUPTS();
        return raced;
    }
    if (raced) LockRelease(tag, mode, true);
    RESUME_INTERRUPTS();
    ReThrowError(failure);  // the abort ends the pending acquire (drop_pending)
}

// The time a hold was taken, for pglocks_held() and pglocks_locks: the coarse clock (a few
// milliseconds of resolution) is plenty for "how long has this been held", and it costs a
// fraction of a precise reading on every acquire.
// With statistics on, the precise clock: hold times are counted from it.
TimestampTz hold_time() {
    if (stats_active()) return stats_clock();
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME_COARSE, &ts);
    return (static_cast<TimestampTz>(ts.tv_sec) -
            static_cast<TimestampTz>(POSTGRES_EPOCH_JDATE - UNIX_EPOCH_JDATE) * SECS_PER_DAY) *
               USECS_PER_SEC +
           ts.tv_nsec / 1000;
}

uint32_t current_subxact() {
    return IsTransactionState() ? static_cast<uint32_t>(GetCurrentSubTransactionId()) : 0;
}

// Publishes the name of a lock this backend now holds or waits for. When the shared table is
// full, names of locks released behind our back, and names kept for locks this backend no
// longer holds, may be taking room there: dropping those once per transaction makes room
// without putting a scan of the registry on every acquire.
bool publish_name(const AcquireRequest& req, TimestampTz now) {
    static LocalTransactionId last_cleanup = InvalidLocalTransactionId;
    if (!req.key.has_name || !names_available()) return false;
    const LockId& id = req.key.id;
    if (names_publish(id, req.key.name, req.key.name_len, now)) return true;
    if (last_cleanup == compat::my_local_xid()) return false;
    last_cleanup = compat::my_local_xid();
    g_registry.reconcile(lm_held);  // locks lost behind our back: their names become idle
    names_drop_idle();
    return names_publish(id, req.key.name, req.key.name_len, now);
}

// `stats_row`: the statistics row that counted the acquisition (stats_count), 0 for none.
uint64_t record_hold(Entry* entry, const AcquireRequest& req, TimestampTz now, uint32 stats_row) {
    // The owner also marks a hold whose acquisition the statistics counted: only such a hold
    // has its time counted when it ends, whatever track_stats says by then.
    return g_registry.add(entry, req.scope, current_subxact(), now, 0,
                          stats_active() ? GetUserId() : InvalidOid, stats_row);
}

// Makes room in the registry. An allocation failure becomes SQLSTATE 53200 once the catch
// has closed, so callers see only PostgreSQL errors and may run under PG_TRY.
Entry* reserve_room(const KeyArg& key) {
    Entry* entry = nullptr;
    try {
        entry =
            g_registry.reserve(key.id, {key.name, static_cast<size_t>(key.name_len)}, key.has_name);
    } catch (...) {
        entry = nullptr;
    }
    if (entry == nullptr)
        ereport(ERROR,
                (errcode(ERRCODE_OUT_OF_MEMORY), errmsg("out of memory for pglocks' holds")));
    return entry;
}

void xact_callback(XactEvent event, void*) {
    switch (event) {
        case XACT_EVENT_ABORT:
        case XACT_EVENT_PARALLEL_ABORT:
            g_kept_call_holds = 0;
            g_in_wait = false;
            drop_pending();
            g_registry.end_transaction_holds(0, lm_held, lm_release);
            slots_at_abort(InvalidSubTransactionId);
            slots_after_release();
            stats_flush();
            break;
        case XACT_EVENT_COMMIT:
        case XACT_EVENT_PARALLEL_COMMIT:
        case XACT_EVENT_PREPARE:
            g_kept_call_holds = 0;
            g_registry.end_transaction_holds(0, lm_held, lm_release);
            slots_after_release();
            stats_flush();
            break;
        case XACT_EVENT_PRE_PREPARE:
            // Holds released behind pglocks' back (pg_advisory_unlock_all) do not count.
            if (g_registry.has_transaction_holds()) g_registry.reconcile(lm_held);
            if (g_registry.has_transaction_holds())
                ereport(ERROR, (errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
                                errmsg("cannot PREPARE a transaction that holds pglocks "
                                       "transaction-scope locks"),
                                errhint("Release them first: with pglocks_release(), or with "
                                        "pglocks_release_all(), which ends every hold, the "
                                        "session's and those pglocks_with_lock keeps until "
                                        "the commit too.")));
            break;
        default:
            break;
    }
}

void subxact_callback(SubXactEvent event, SubTransactionId my_subid, SubTransactionId, void*) {
    if (event == SUBXACT_EVENT_ABORT_SUB) {
        if (my_subid != g_wait_subid) g_in_wait = false;
        drop_pending();
        g_registry.end_transaction_holds(static_cast<uint32_t>(my_subid), lm_held, lm_release);
        slots_at_abort(my_subid);
        slots_after_release();
        stats_flush();  // ROLLBACK TO SAVEPOINT runs no executor
    }
}

}  // namespace

void check_standby() {
    if (!pglocks_allow_on_standby && RecoveryInProgress())
        ereport(ERROR,
                (errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
                 errmsg("cannot take a pglocks lock on a server in recovery"),
                 errdetail("Advisory locks taken on a standby do not exclude sessions on the "
                           "primary."),
                 errhint("Take the lock on the primary, or set pglocks.allow_on_standby = on "
                         "to coordinate sessions of this standby only.")));
}

namespace {
uint64_t acquire_hinted(const AcquireRequest& req);
}

uint64_t acquire(const AcquireRequest& req) {
    check_standby();
    if (!req.guards_checked) check_acquire_guards(req);

    // Plain data only in this frame: the callback is popped on the way out, and an error
    // unwinds to a PG_TRY that restores error_context_stack.
    ErrorContextCallback hint_cb;
    const bool hint = g_kept_call_holds > 0;
    if (hint) {
        hint_cb.callback = kept_holds_hint;
        hint_cb.arg = nullptr;
        hint_cb.previous = error_context_stack;
        error_context_stack = &hint_cb;
    }
    const uint64_t hold_id = acquire_hinted(req);
    if (hint) error_context_stack = hint_cb.previous;
    return hold_id;
}

namespace {

uint64_t acquire_hinted(const AcquireRequest& req) {
    const LockId& id = req.key.id;
    // Room first (one lookup serves both paths): once the lock manager has granted the
    // lock, recording it cannot fail.
    g_pending = id;
    g_has_pending = true;
    Entry* entry = reserve_room(req.key);
    if (!entry->holds.empty()) {
        if (lm_held(id)) {
            // Another hold of a lock we already have: counted here, no lock-manager call.
            g_has_pending = false;
            const TimestampTz now = hold_time();
            const uint32 row = stats_count(req.key, StatsOutcome::Acquired, -1, now);
            return record_hold(entry, req, now, row);
        }
        g_registry.reconcile(lm_held);  // released behind our back: the entry goes
        entry = reserve_room(req.key);
    }
    const LOCKTAG tag = make_tag(id);
    const LOCKMODE mode = mode_of(id);
    bool got = lm_try(&tag, mode);
    int64 wait_us = -1;
    TimestampTz waited_until = 0;
    if (!got && req.wait && req.timeout_ms != 0) {
        // Name the lock we queue for, so that pglocks_locks shows what we wait on.
        const bool named = publish_name(req, hold_time());
        g_pending_named = named;
        const TimestampTz wait_start = stats_active() ? stats_clock() : 0;
        got = lm_wait(&tag, mode, req.timeout_ms, &req.key);
        if (wait_start != 0) {
            waited_until = stats_clock();  // also the hold's start: one reading for both
            wait_us = stats_elapsed(wait_start, waited_until);
        }
        g_pending_named = false;
        if (!got && named) names_unpublish(id);
    }
    g_has_pending = false;
    if (!got) {
        g_registry.drop_if_empty(id);
        if (wait_us >= 0 || req.count_failure)
            stats_count(req.key,
                        wait_us >= 0 || req.deadline_passed ? StatsOutcome::TimedOut
                                                            : StatsOutcome::FailedTry,
                        wait_us, 0);
        return 0;
    }
    // Granted: no interrupt until the hold is recorded (counting may write to the server
    // log, whose interrupt check would raise a pending cancel with the lock unrecorded).
    HOLD_INTERRUPTS();
    const TimestampTz now = waited_until != 0 ? waited_until : hold_time();
    const uint32 row = stats_count(req.key, StatsOutcome::Acquired, wait_us, now);
    const uint64_t hold_id = record_hold(entry, req, now, row);
    if (hold_id == 0) {
        LockRelease(&tag, mode, true);
        g_registry.drop_if_empty(id);
        RESUME_INTERRUPTS();
        ereport(ERROR, (errcode(ERRCODE_INTERNAL_ERROR),
                        errmsg("pglocks could not record a hold it had reserved room for")));
    }
    RESUME_INTERRUPTS();
    if (publish_name(req, now)) g_registry.mark_published(id);
    return hold_id;
}

}  // namespace

bool release(const LockId& id) {
    bool now_empty = false;
    const int released = g_registry.release_newest_checked(id, lm_held, &now_empty);
    if (released < 0) {
        g_registry.reconcile(lm_held);
        return false;
    }
    if (released > 0 && now_empty) {
        lm_release(id);
        slots_after_release();  // the lock may be a slot, released by its documented key
    }
    return released > 0;
}

bool release_hold(const LockId& id, uint64_t hold_id) {
    bool now_empty = false;
    if (!g_registry.release_hold(id, hold_id, &now_empty)) return false;
    if (now_empty && lm_held(id)) {
        lm_release(id);
        slots_after_release();
    }
    return true;
}

uint64_t release_all() {
    const uint64_t n = g_registry.release_all(lm_held, lm_release);
    slots_after_release();
    return n;
}

bool holds_lock(const LockId& id) { return lm_held(id); }

bool lock_internal(const LockId& id, int timeout_ms) {
    check_standby();
    const LOCKTAG tag = make_tag(id);
    const LOCKMODE mode = mode_of(id);
    if (lm_try(&tag, mode)) return true;
    if (timeout_ms == 0) return false;
    return lm_wait(&tag, mode, timeout_ms);
}

void unlock_internal(const LockId& id) { lm_release(id); }

void reconcile() { g_registry.reconcile(lm_held); }

const HoldsRegistry& registry() { return g_registry; }

void note_kept_call_hold() { g_kept_call_holds++; }

void set_hold_scope(const LockId& id, uint64_t hold_id, Scope scope) {
    g_registry.set_scope(id, hold_id, scope);
}

void set_hold_token(const LockId& id, uint64_t hold_id, int64_t token) {
    g_registry.set_token(id, hold_id, token);
}

int64_t newest_token(const LockId& id) {
    reconcile();
    return g_registry.newest_token(id);
}

void register_hold_callbacks() {
    RegisterXactCallback(xact_callback, nullptr);
    RegisterSubXactCallback(subxact_callback, nullptr);
}

LOCKTAG make_tag(const LockId& id) {
    LOCKTAG tag;
    SET_LOCKTAG_ADVISORY(tag, MyDatabaseId, id.hi, id.lo, static_cast<uint16>(id.form));
    return tag;
}

}  // namespace pglocks
