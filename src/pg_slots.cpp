// Counting semaphores: pglocks_acquire_slot(key, slots, wait, timeout, scope) and
// pglocks_release_slot(key, slot).
//
// Slot i of semaphore N is an ordinary exclusive pglocks lock whose key is pglocks_key of
// the UTF-8 bytes of N, a zero byte, and i in decimal; its waiters' queue is the lock of N,
// a zero byte and "queue". No text contains a zero byte, so neither can be the key of a
// plain pglocks_acquire(name).
//
// The lock manager cannot wait for "any of N locks". A call first tries every slot, unless the
// semaphore has a queue (callers waiting for a slot) and the session holds none of its slots: then
// it queues too, behind them, or with wait => false takes none, as a lock request does behind the
// waiters of a lock, so that a slot freed for the head of the queue is not taken from it by a later
// call (a session freeing its slot and asking again at once would otherwise keep it). When no slot
// is free, it queues on the semaphore's queue lock (first come, first served, cancellable, seen by
// the deadlock detector), so waiters take turns in arrival order; the head of the queue tries every
// slot again and sleeps on a condition variable in shared memory, chosen by the queue key among a
// fixed set, beside a count of the callers waiting on it. Every path of pglocks that frees a slot
// broadcasts on it: pglocks_release_slot, pglocks_release_all, the end of a (sub)transaction, and
// backend exit. A slot freed behind pglocks' back (pg_advisory_unlock_all, DISCARD ALL) is
// signalled when the holder's transaction ends, which finds it no longer held; one freed inside a
// transaction that stays open is not: the head also wakes every kSafetyNetMs to look. The
// lock manager's deadlock detector does not see the head's sleep: the head runs a check of
// its own (head_deadlocked).
#include "pg_slots.hpp"

#include "lock_key.hpp"  // pure C++ first: it refuses to follow postgres.h
#include "pg_holds.hpp"
#include "pg_guards.hpp"
#include "pg_names.hpp"
#include "pg_stats.hpp"

extern "C" {
#include "access/xact.h"
#include "miscadmin.h"
#include "pgstat.h"
#include "port/atomics.h"
#include "storage/condition_variable.h"
#include "storage/ipc.h"
#include "storage/lwlock.h"
#include "storage/proc.h"
#include "storage/shmem.h"
#include "utils/builtins.h"
#include "utils/memutils.h"
#include "utils/timestamp.h"
}

#include <algorithm>

namespace pglocks {
namespace {

constexpr int kMaxSlots = 1024;
constexpr int kConditionVariables = 64;
constexpr long kSafetyNetMs = 500;
// The longest interval between two deadlock checks of a head's sleep.
constexpr long kDeadlockCheckMaxMs = 10000;

struct SlotsShared {
    ConditionVariable cv[kConditionVariables];
    // The calls in wait_for_slot of the semaphores of each condition variable.
    pg_atomic_uint32 waiting[kConditionVariables];
};

SlotsShared* g_shared = nullptr;
shmem_startup_hook_type g_prev_startup = nullptr;

void request_shmem() { RequestAddinShmemSpace(CACHELINEALIGN(sizeof(SlotsShared))); }

void shmem_startup() {
    if (g_prev_startup) g_prev_startup();
    LWLockAcquire(AddinShmemInitLock, LW_EXCLUSIVE);
    bool found = false;
    g_shared = static_cast<SlotsShared*>(
        ShmemInitStruct("pglocks slot waits", sizeof(SlotsShared), &found));
    if (!found) {
        for (ConditionVariable& cv : g_shared->cv) ConditionVariableInit(&cv);
        for (pg_atomic_uint32& n : g_shared->waiting) pg_atomic_init_u32(&n, 0);
    }
    LWLockRelease(AddinShmemInitLock);
}

// The slot locks this session took, so that whatever frees them wakes their waiters.
// Plain data in TopMemoryContext: it is used from transaction callbacks and at exit.
struct TakenSlot {
    LockId id;
    int cv;
};
TakenSlot* g_taken = nullptr;
int g_taken_count = 0;
int g_taken_room = 0;
bool g_exit_hook_set = false;

// Room for one more taken slot, made before a slot is taken: once the lock manager has
// granted a slot, remembering it cannot fail.
void reserve_taken_room() {
    if (g_taken_count == g_taken_room) {
        const int room = g_taken_room == 0 ? 8 : g_taken_room * 2;
        const Size bytes = sizeof(TakenSlot) * room;
        g_taken =
            static_cast<TakenSlot*>(g_taken == nullptr ? MemoryContextAlloc(TopMemoryContext, bytes)
                                                       : repalloc(g_taken, bytes));
        g_taken_room = room;
    }
}

void remember_slot(const LockId& id, int cv) {
    for (int i = 0; i < g_taken_count; i++)
        if (g_taken[i].id == id) return;
    g_taken[g_taken_count++] = TakenSlot{id, cv};  // room reserved by reserve_taken_room()
}

void wake(int cv) {
    if (g_shared != nullptr) ConditionVariableBroadcast(&g_shared->cv[cv]);
}

// Wakes the waiters of slots no longer held, and forgets them.
void wake_freed() {
    int i = 0;
    while (i < g_taken_count) {
        if (holds_lock(g_taken[i].id)) {
            i++;
            continue;
        }
        wake(g_taken[i].cv);
        g_taken[i] = g_taken[--g_taken_count];
    }
}

// At exit, after the transaction's abort and the release of every advisory lock
// (ShutdownPostgres), before ProcKill: the slots are free, their waiters are woken.
void wake_at_exit(int, Datum) {
    for (int i = 0; i < g_taken_count; i++) wake(g_taken[i].cv);
    g_taken_count = 0;
}

// The slot wait in progress, for the abort callbacks: an error ends it without returning.
struct SlotWait {
    bool active;
    SubTransactionId subxact;  // the (sub)transaction the call runs in
    LockId queue;
    int cv;
    bool counted;  // counted in waiting[cv]
    bool queued;   // holds the queue lock
    bool named;    // published the queue's name
};
SlotWait g_wait = {false, InvalidSubTransactionId, LockId{}, 0, false, false, false};

void end_wait() {
    const SlotWait ending = g_wait;
    g_wait = SlotWait{false, InvalidSubTransactionId, LockId{}, 0, false, false, false};
    if (ending.counted) pg_atomic_fetch_sub_u32(&g_shared->waiting[ending.cv], 1);
    if (ending.queued) unlock_internal(ending.queue);
    if (ending.named) names_unpublish(ending.queue);
}

struct Semaphore {
    const text* name;
    const char* display;  // the name as shown, clipped
    int display_len;
    int slots;
    LockId queue;
    int cv;
    int64* keys;  // slot keys, computed on first use
};

LockId slot_lock(Semaphore* s, int slot) {
    if (s->keys[slot] == 0) {
        char suffix[16];
        suffix[0] = '\0';
        const int n = snprintf(suffix + 1, sizeof(suffix) - 1, "%d", slot);
        // 0 marks "not computed": a key of 0 would just be computed again each time.
        s->keys[slot] = text_key_suffixed(s->name, suffix, 1 + n);
    }
    return LockId::from_bigint(s->keys[slot], false);
}

void init_semaphore(Semaphore* s, const text* name, int slots) {
    s->name = name;
    KeyArg key;
    key_from_text(name, &key);
    s->display = key.name;
    s->display_len = key.name_len;
    s->slots = slots;
    static const char kQueue[] = "\0queue";
    s->queue = LockId::from_bigint(text_key_suffixed(name, kQueue, sizeof(kQueue) - 1), false);
    s->cv = static_cast<int>(static_cast<uint64>(s->queue.bigint()) % kConditionVariables);
    s->keys = static_cast<int64*>(palloc0(sizeof(int64) * slots));
}

// Tries each slot this session does not hold yet, in order; the slot taken, or -1.
int try_slots(Semaphore* s, Scope scope) {
    for (int i = 0; i < s->slots; i++) {
        CHECK_FOR_INTERRUPTS();
        AcquireRequest req;
        req.key.id = slot_lock(s, i);
        if (holds_lock(req.key.id)) continue;
        char* display = psprintf("%.*s#%d", s->display_len, s->display, i);
        req.key.name = display;
        req.key.name_len = static_cast<int>(strlen(display));
        req.key.has_name = true;
        req.wait = false;
        req.timeout_ms = 0;
        req.scope = scope;
        req.count_failure = false;
        req.guards_checked = true;  // once for the semaphore, by the caller
        reserve_taken_room();
        const bool got = acquire(req) != 0;
        pfree(display);
        if (got) {
            remember_slot(req.key.id, s->cv);
            return i;
        }
    }
    return -1;
}

// How many of the semaphore's slots this session holds, counting up to `enough`.
int slots_held(Semaphore* s, int enough) {
    int held = 0;
    for (int i = 0; i < s->slots && held < enough; i++) {
        CHECK_FOR_INTERRUPTS();
        if (holds_lock(slot_lock(s, i))) held++;
    }
    return held;
}

// Whether a call queues behind callers already waiting for a slot rather than try the slots:
// when the semaphore has a queue (a caller in wait_for_slot, as the head, which holds the
// queue lock, or behind it; the count is shared by the semaphores of one condition variable,
// the queue lock tells) and this session holds none of its slots. A session that holds one
// may hold what the head waits for (with the same slots, when none is free; a head that
// passed fewer slots waits for its lower ones): it takes a free slot ahead of the queue, as
// the lock manager lets a request ahead of waiters its lock already conflicts with.
bool queue_first(Semaphore* s) {
    if (g_shared == nullptr || pg_atomic_read_u32(&g_shared->waiting[s->cv]) == 0) return false;
    if (slots_held(s, 1) > 0) return false;
    if (!lock_internal(s->queue, 0)) return true;
    unlock_internal(s->queue);
    return false;
}

// The deadlock check of the head's sleep, which the lock manager's detector cannot see (the
// head waits on a condition variable, not in the lock queue). The head waits for any slot;
// it waits for ever when every slot is held, by other sessions, each of which waits in the
// lock manager, directly or through others, for a lock the head holds. From the lock table
// read as pg_locks reads it (GetLockStatusData: the shared table under every partition lock
// at once): the sessions that wait, each blocked by the holders of its lock whose modes
// conflict with the mode it asks for, and from the head outwards the sessions whose wait
// depends on it. Parallel workers count as their leader. Not followed, so that such a
// cycle is missed, never made up: waits blocked only by their place in a lock's queue
// (behind a waiter whose request conflicts); locks held through the fast path, read apart
// from the shared table and not in its picture (a lock that blocks a waiter is never
// there: a conflicting request moves it to the shared table first); autovacuum workers,
// which the lock manager cancels when they block a waiter for deadlock_timeout.
int compare_tags(const void* a, const void* b) {
    return memcmp(&static_cast<const LockInstanceData*>(a)->locktag,
                  &static_cast<const LockInstanceData*>(b)->locktag, sizeof(LOCKTAG));
}

int compare_ints(const void* a, const void* b) {
    const int x = *static_cast<const int*>(a), y = *static_cast<const int*>(b);
    return x < y ? -1 : x > y ? 1 : 0;
}

int lock_group(const LockInstanceData& l) { return l.leaderPid != 0 ? l.leaderPid : l.pid; }

bool same_tag(const LockInstanceData& l, const LOCKTAG& tag) {
    return memcmp(&l.locktag, &tag, sizeof(LOCKTAG)) == 0;
}

// The first of the instances of `tag` in the sorted array, or n when it has none.
int first_of(const LockInstanceData* locks, int n, const LOCKTAG& tag) {
    int lo = 0, hi = n;
    while (lo < hi) {
        const int mid = lo + (hi - lo) / 2;
        if (memcmp(&locks[mid].locktag, &tag, sizeof(LOCKTAG)) < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo < n && same_tag(locks[lo], tag) ? lo : n;
}

// Returns a slot holder (a pid) when the head is in a deadlock, 0 when it is not. Plain
// data only in this frame: it checks for interrupts.
int head_deadlocked(Semaphore* s) {
    LockData* data = GetLockStatusData();
    const int n = data->nelements;
    LockInstanceData* locks = data->locks;
    qsort(locks, n, sizeof(LockInstanceData), compare_tags);
    // The lock groups, sorted, and each instance's place among them.
    int* groups = static_cast<int*>(palloc(sizeof(int) * (n + 1)));
    for (int i = 0; i < n; i++) groups[i] = lock_group(locks[i]);
    groups[n] = MyProcPid;
    qsort(groups, n + 1, sizeof(int), compare_ints);
    int ngroups = 0;
    for (int i = 0; i <= n; i++)
        if (ngroups == 0 || groups[ngroups - 1] != groups[i]) groups[ngroups++] = groups[i];
    auto group_of = [groups, ngroups](int pid) {
        const void* at = bsearch(&pid, groups, ngroups, sizeof(int), compare_ints);
        return static_cast<int>(static_cast<const int*>(at) - groups);
    };
    int* group_at = static_cast<int*>(palloc(sizeof(int) * (n > 0 ? n : 1)));
    for (int i = 0; i < n; i++) group_at[i] = group_of(lock_group(locks[i]));
    // The groups whose wait depends on the head, the head's first; grown until no wait
    // depends on them any more (each round adds a group, or is the last).
    bool* stuck = static_cast<bool*>(palloc0(sizeof(bool) * ngroups));
    stuck[group_of(MyProcPid)] = true;
    for (bool grew = true; grew;) {
        CHECK_FOR_INTERRUPTS();
        grew = false;
        for (int i = 0; i < n; i++) {
            const LockInstanceData& w = locks[i];
            if (w.waitLockMode == NoLock || w.pid == 0 || stuck[group_at[i]]) continue;
            const LOCKMASK conflicts =
                GetLockTagsMethodTable(&w.locktag)->conflictTab[w.waitLockMode];
            for (int j = first_of(locks, n, w.locktag); j < n && same_tag(locks[j], w.locktag);
                 j++) {
                const LockInstanceData& h = locks[j];
                if (h.fastpath || group_at[j] == group_at[i] || (h.holdMask & conflicts) == 0 ||
                    !stuck[group_at[j]])
                    continue;
                if (compat::pid_is_autovacuum(w.pid)) break;
                stuck[group_at[i]] = true;
                grew = true;
                break;
            }
        }
    }
    // A deadlock when every slot is held, by the head or by a group in the set, and some
    // by another session (the head holding them all is refused before any wait).
    const int head = group_of(MyProcPid);
    int other_holder = 0;
    bool all_stuck = true;
    for (int i = 0; i < s->slots && all_stuck; i++) {
        const LOCKTAG tag = make_tag(slot_lock(s, i));
        bool held = false;
        for (int j = first_of(locks, n, tag); j < n && same_tag(locks[j], tag); j++) {
            const LockInstanceData& h = locks[j];
            if (h.holdMask == 0) continue;  // a waiter only; any mode held keeps the slot
            held = true;
            if (group_at[j] == head) continue;
            if (!stuck[group_at[j]]) all_stuck = false;
            if (other_holder == 0) other_holder = h.pid;
        }
        if (!held) all_stuck = false;
    }
    pfree(stuck);
    pfree(group_at);
    pfree(groups);
    pfree(locks);
    pfree(data);
    return all_stuck ? other_holder : 0;
}

long ms_until(TimestampTz deadline) {
    const TimestampTz now = GetCurrentTimestamp();
    if (now >= deadline) return 0;
    return static_cast<long>((deadline - now + 999) / 1000);
}

// The wait of a call that found no free slot; see the file comment. Returns the slot, or -1
// when timeout_ms passed. Errors (cancel, statement_timeout, lock_timeout, deadlock) leave
// the queue lock released and no condition-variable sleep prepared.
int wait_for_slot(Semaphore* s, Scope scope, int timeout_ms) {
    const TimestampTz start = GetCurrentTimestamp();
    const bool limited = timeout_ms > 0;
    const TimestampTz deadline = limited ? TimestampTzPlusMilliseconds(start, timeout_ms) : 0;
    // The user's lock_timeout applies to the whole wait, as to one lock wait.
    const int user_lock_timeout = LockTimeout;
    const bool lock_timeout_first =
        user_lock_timeout > 0 && (!limited || user_lock_timeout < timeout_ms);
    const TimestampTz lock_deadline =
        lock_timeout_first ? TimestampTzPlusMilliseconds(start, user_lock_timeout) : 0;
    ConditionVariable* cv = &g_shared->cv[s->cv];
    char* queue_name = psprintf("%.*s#queue", s->display_len, s->display);
    int slot = -1;
    // The first deadlock check after deadlock_timeout of sleep, as the lock manager's; then
    // at growing intervals (a cycle can close later, when a slot holder starts to wait for a
    // lock of the head's, and that wait's own check does not see the head's sleep).
    long check_interval_ms = DeadlockTimeout > 0 ? DeadlockTimeout : 1000;
    TimestampTz next_check = 0;

    // The queue lock and name are ended on the way out, or by the abort callbacks when an
    // error (cancel, statement_timeout, lock_timeout, deadlock) ends the wait: never here
    // while the error is in flight. The abort also cancels a prepared sleep.
    g_wait = SlotWait{true, GetCurrentSubTransactionId(), s->queue, s->cv, false, false, false};
    pg_atomic_fetch_add_u32(&g_shared->waiting[s->cv], 1);
    g_wait.counted = true;
    g_wait.named = names_publish(s->queue, queue_name, static_cast<int>(strlen(queue_name)), start);
    g_wait.queued = lock_internal(s->queue, limited ? static_cast<int>(ms_until(deadline)) : -1);
    if (g_wait.queued) {
        next_check = TimestampTzPlusMilliseconds(GetCurrentTimestamp(), check_interval_ms);
        for (;;) {
            // Prepared before looking, so that a slot freed after the look wakes us.
            ConditionVariablePrepareToSleep(cv);
            slot = try_slots(s, scope);
            if (slot >= 0) break;
            if (ms_until(next_check) == 0) {
                const int holder = head_deadlocked(s);
                if (holder != 0)
                    ereport(ERROR,
                            (errcode(ERRCODE_T_R_DEADLOCK_DETECTED), errmsg("deadlock detected"),
                             errdetail("Process %d waits for a slot of semaphore \"%.*s\"; "
                                       "the processes that hold its slots (process %d among "
                                       "them) wait, directly or through others, for locks "
                                       "process %d holds.",
                                       MyProcPid, s->display_len, s->display, holder, MyProcPid),
                             errhint("Release the semaphore's slots before waiting for other "
                                     "locks, or take locks in one order.")));
                check_interval_ms = std::min<long>(
                    check_interval_ms * 2, std::max<long>(kDeadlockCheckMaxMs, DeadlockTimeout));
                next_check = TimestampTzPlusMilliseconds(GetCurrentTimestamp(), check_interval_ms);
            }
            long sleep_ms = std::min(kSafetyNetMs, ms_until(next_check));
            if (limited) {
                const long left = ms_until(deadline);
                if (left == 0) break;
                if (left < sleep_ms) sleep_ms = left;
            }
            if (lock_timeout_first) {
                const long left = ms_until(lock_deadline);
                if (left == 0)
                    ereport(ERROR, (errcode(ERRCODE_LOCK_NOT_AVAILABLE),
                                    errmsg("canceling statement due to lock timeout")));
                if (left < sleep_ms) sleep_ms = left;
            }
            (void)ConditionVariableTimedSleep(cv, sleep_ms, PG_WAIT_EXTENSION);
        }
        ConditionVariableCancelSleep();
    }
    end_wait();
    pfree(queue_name);
    return slot;
}

// wait_for_slot, counted in pglocks_stats: a slot after a wait, a timeout, or an error that
// ended the wait. The error is counted once it is caught and copied, no longer in flight
// (counting takes LWLocks and may evict), and raised again; the abort still ends the wait.
int wait_for_waiting_slot(Semaphore* s, Scope scope, int timeout_ms, const KeyArg& row) {
    if (!stats_active()) return wait_for_slot(s, scope, timeout_ms);
    const TimestampTz start = stats_clock();
    MemoryContext cxt = CurrentMemoryContext;
    volatile int slot = -1;
    ErrorData* volatile failure = nullptr;
    // A block of one statement, which clang-format would join to one line.
    // clang-format off
    PG_TRY();
    {
        slot = wait_for_slot(s, scope, timeout_ms);
    }
    PG_CATCH();
    // clang-format on
    {
        MemoryContextSwitchTo(cxt);
        failure = CopyErrorData();
        FlushErrorState();
    }
    PG_END_TRY();
    if (failure != nullptr) {
        stats_count(row, StatsOutcome::Failed, stats_elapsed(start), 0);
        ReThrowError(failure);
    }
    const TimestampTz end = stats_clock();
    stats_count(row, slot >= 0 ? StatsOutcome::Acquired : StatsOutcome::TimedOut,
                stats_elapsed(start, end), end);
    return slot;
}

int slots_arg(FunctionCallInfo fcinfo, int argno) {
    require_not_null(fcinfo, argno, "slots");
    const int32 slots = PG_GETARG_INT32(argno);
    if (slots <= 0 || slots > kMaxSlots)
        ereport(ERROR, (errcode(ERRCODE_INVALID_PARAMETER_VALUE),
                        errmsg("slots must be between 1 and %d", kMaxSlots),
                        errdetail("slots was %d.", slots)));
    return slots;
}

// (key text, slots, wait, timeout, scope)
Datum acquire_slot_call(FunctionCallInfo fcinfo) {
    require_not_null(fcinfo, 0, "key");
    const text* name = PG_GETARG_TEXT_PP(0);
    const int slots = slots_arg(fcinfo, 1);
    const bool wait = bool_arg(fcinfo, 2, "wait");
    int timeout_ms = timeout_arg(fcinfo, 3, wait);
    if (!wait) timeout_ms = 0;
    const Scope scope = scope_arg(fcinfo, 4);

    Semaphore s;
    init_semaphore(&s, name, slots);
    // The guards once, for the semaphore as a whole (not for every slot tried).
    AcquireRequest whole;
    key_from_text(name, &whole.key);
    whole.wait = wait;
    whole.timeout_ms = timeout_ms;
    whole.scope = scope;
    check_acquire_guards(whole);
    if (!g_exit_hook_set) {
        // Registered before any slot is taken: registering cannot fail after a grant.
        on_shmem_exit(wake_at_exit, 0);
        g_exit_hook_set = true;
    }
    // pglocks_stats counts the calls in the semaphore's own row (the slots' rows count each
    // slot's holds; see the README): the queue lock's key, which no acquire counts in a row
    // of its own, under the semaphore's name.
    KeyArg row = whole.key;
    row.id = s.queue;
    // Behind the callers already waiting, if any: the slot a release freed is the head's.
    int slot = queue_first(&s) ? -1 : try_slots(&s, scope);
    if (slot >= 0)
        stats_count(row, StatsOutcome::Acquired, -1, stats_clock());
    else if (timeout_ms == 0)
        stats_count(row, StatsOutcome::FailedTry, -1, 0);
    if (slot < 0 && timeout_ms != 0) {
        if (slots_held(&s, s.slots) == s.slots)
            ereport(ERROR, (errcode(ERRCODE_T_R_DEADLOCK_DETECTED),
                            errmsg("this session holds every slot of semaphore \"%.*s\"",
                                   s.display_len, s.display),
                            errdetail("Waiting for a slot would wait for this session itself.")));
        if (g_shared == nullptr)
            ereport(ERROR, (errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
                            errmsg("waiting for a slot of semaphore \"%.*s\" needs pglocks in "
                                   "shared_preload_libraries",
                                   s.display_len, s.display),
                            errdetail("All %d slots are taken.", slots),
                            errhint("Add pglocks to shared_preload_libraries and restart, or call "
                                    "pglocks_acquire_slot with wait => false.")));
        slot = wait_for_waiting_slot(&s, scope, timeout_ms, row);
    }
    pfree(s.keys);
    if (slot < 0) PG_RETURN_NULL();
    PG_RETURN_INT32(slot);
}

// (key text, slot)
Datum release_slot_call(FunctionCallInfo fcinfo) {
    require_not_null(fcinfo, 0, "key");
    require_not_null(fcinfo, 1, "slot");
    const text* name = PG_GETARG_TEXT_PP(0);
    const int32 slot = PG_GETARG_INT32(1);
    if (slot < 0 || slot >= kMaxSlots)
        ereport(ERROR, (errcode(ERRCODE_INVALID_PARAMETER_VALUE),
                        errmsg("slot must be between 0 and %d", kMaxSlots - 1),
                        errdetail("slot was %d.", slot)));
    Semaphore s;
    init_semaphore(&s, name, slot + 1);
    const LockId id = slot_lock(&s, slot);
    pfree(s.keys);
    const bool released = release(id);
    if (released && !holds_lock(id)) wake(s.cv);
    wake_freed();
    return BoolGetDatum(released);
}

}  // namespace

void slots_init_preload() {
    if (!process_shared_preload_libraries_in_progress) return;
    compat::on_shmem_request(request_shmem);
    g_prev_startup = shmem_startup_hook;
    shmem_startup_hook = shmem_startup;
}

void slots_after_release() {
    if (g_taken_count > 0) wake_freed();
}

void slots_at_abort(uint32_t subxact) {
    // A subtransaction that began inside the wait (a lock wait's own) is not the wait's.
    if (g_wait.active && (subxact == InvalidSubTransactionId || subxact <= g_wait.subxact))
        end_wait();
}

}  // namespace pglocks

using namespace pglocks;

PGLOCKS_FUNCTION(pglocks_acquire_slot) { return acquire_slot_call(fcinfo); }
PGLOCKS_FUNCTION(pglocks_release_slot) { return release_slot_call(fcinfo); }
