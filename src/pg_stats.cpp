// Statistics by name: a fixed-size partitioned hash table in shared memory, one entry per
// database, role, lock and mode, sized by pglocks.max_stats at server start, in the manner
// of pg_stat_statements.
//
// Counters are updated under the entry's spinlock while the partition LWLock is held shared,
// so the common case (the entry exists) costs one hash lookup and no exclusive lock. A new
// entry takes its partition lock exclusively; when the table is full, the least-used entries
// (usage: acquisitions, decayed at every eviction) are evicted in a batch under every
// partition lock, and the evictions counted. Entries can be evicted at any moment, so no
// backend keeps a pointer to one across calls: every update looks its entry up again.
//
// Hold times are counted when a hold ends, through the holds registry's removal hook, which
// sees every end: a release, release_all, the end of a transaction or subtransaction, holds
// found lost behind pglocks' back (counted when pglocks notices), and at session end the
// holds the lock manager ends (an exit hook). The end of a hold only updates an existing
// entry: a hold whose row was evicted while held is not counted again.
// clang-format off
// Pure C++ first: it refuses to follow postgres.h.
#include "holds_registry.hpp"

#include "pg_stats.hpp"
#include "pg_shmem.hpp"
// clang-format on
#include "pg_holds.hpp"
#include "pg_names.hpp"
#include "pg_srf.hpp"

extern "C" {
#include "access/htup_details.h"
#include "catalog/pg_authid_d.h"
#include "funcapi.h"
#include "mb/pg_wchar.h"
#include "miscadmin.h"
#include "port/atomics.h"
#include "storage/ipc.h"
#include "storage/lwlock.h"
#include "storage/shmem.h"
#include "storage/spin.h"
#include "utils/acl.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/hsearch.h"
#include "utils/timestamp.h"
}

#include <time.h>

#include <algorithm>

namespace pglocks {
namespace {

constexpr int kPartitions = 16;
constexpr const char* kTranche = "pglocks_stats";
// As pg_stat_statements: a batch of at least this many, or this share of the entries.
constexpr int kEvictMin = 10;
constexpr double kEvictShare = 0.05;
constexpr double kUsageDecay = 0.99;

struct StatsKey {
    Oid db;
    Oid user;
    uint32 hi;
    uint32 lo;
    uint16 form;
    uint16 shared;
};

struct Counters {
    int64 acquisitions;
    int64 waits;
    int64 failed_tries;
    int64 timeouts;
    int64 errors;
    double total_wait_ms;
    double max_wait_ms;
    double total_hold_ms;
    double max_hold_ms;
    TimestampTz last_acquired;
    double usage;
};

struct StatsEntry {
    StatsKey key;
    slock_t mutex;
    Counters c;
    int32 name_len;  // -1: no name known
    char name[kSharedNameBytes];
};

struct StatsShared {
    slock_t mutex;  // dealloc and stats_reset
    int64 dealloc;
    TimestampTz stats_reset;
    pg_atomic_uint32 count;
};

int g_max_stats = 5000;
bool g_track = true;
bool g_preloaded = false;
StatsShared* g_shared = nullptr;
HTAB* g_table = nullptr;
LWLockPadded* g_locks = nullptr;
bool g_exit_hook_set = false;
shmem_startup_hook_type g_prev_startup = nullptr;

Size shmem_size() {
    return partitioned_table_shmem_size(g_max_stats, sizeof(StatsEntry), sizeof(StatsShared));
}

void request_shmem() {
    RequestAddinShmemSpace(shmem_size());
    RequestNamedLWLockTranche(kTranche, kPartitions);
}

void shmem_startup() {
    if (g_prev_startup) g_prev_startup();
    LWLockAcquire(AddinShmemInitLock, LW_EXCLUSIVE);
    bool found = false;
    g_shared =
        static_cast<StatsShared*>(ShmemInitStruct("pglocks stats", sizeof(StatsShared), &found));
    if (!found) {
        SpinLockInit(&g_shared->mutex);
        g_shared->dealloc = 0;
        g_shared->stats_reset = GetCurrentTimestamp();
        pg_atomic_init_u32(&g_shared->count, 0);
    }
    HASHCTL info;
    memset(&info, 0, sizeof(info));
    info.keysize = sizeof(StatsKey);
    info.entrysize = sizeof(StatsEntry);
    info.num_partitions = kPartitions;
    g_table = compat::shmem_init_hash("pglocks stats table", g_max_stats, &info,
                                      HASH_ELEM | HASH_BLOBS | HASH_PARTITION | HASH_FIXED_SIZE);
    g_locks = GetNamedLWLockTranche(kTranche);
    LWLockRelease(AddinShmemInitLock);
}

StatsKey make_key(Oid user, const LockId& id) {
    StatsKey k;
    memset(&k, 0, sizeof(k));  // padding is part of the hashed bytes
    k.db = MyDatabaseId;
    k.user = user;
    k.hi = id.hi;
    k.lo = id.lo;
    k.form = static_cast<uint16>(id.form);
    k.shared = id.shared ? 1 : 0;
    return k;
}

void hold_ended(const LockId& id, const Hold& h);

void count_holds_at_exit(int, Datum) {
    // After the transaction's abort at exit, whose callbacks ended the transaction-bound
    // holds; what is left are session holds, which the lock manager ends with the backend.
    if (g_table != nullptr) registry().visit_holds(hold_ended);
}

void ensure_exit_hook() {
    if (g_exit_hook_set) return;
    on_shmem_exit(count_holds_at_exit, 0);
    g_exit_hook_set = true;
}

// Evicts the least-used entries (at least kEvictMin, or kEvictShare of them), decaying the
// usage of those that stay, as pg_stat_statements does. Takes every partition lock.
void evict() {
    for (int i = 0; i < kPartitions; i++) LWLockAcquire(&g_locks[i].lock, LW_EXCLUSIVE);
    const uint32 n = pg_atomic_read_u32(&g_shared->count);
    if (n >= static_cast<uint32>(g_max_stats)) {
        // Without memory for the list nothing is evicted, and the new entry is not recorded:
        // counting never fails an acquire.
        auto** all = static_cast<StatsEntry**>(
            palloc_extended(sizeof(StatsEntry*) * (n + 1), MCXT_ALLOC_NO_OOM));
        if (all == nullptr) {
            for (int i = kPartitions - 1; i >= 0; i--) LWLockRelease(&g_locks[i].lock);
            return;
        }
        int count = 0;
        HASH_SEQ_STATUS scan;
        hash_seq_init(&scan, g_table);
        while (auto* e = static_cast<StatsEntry*>(hash_seq_search(&scan))) {
            if (count <= static_cast<int>(n)) all[count++] = e;
            e->c.usage *= kUsageDecay;  // every writer of usage holds a partition lock
        }
        int victims = static_cast<int>(count * kEvictShare);
        if (victims < kEvictMin) victims = kEvictMin;
        if (victims > count) victims = count;
        // The least-used first, in linear time (a full sort of the table cost a new key
        // several microseconds); plain pointers, a comparison that cannot fail.
        if (victims < count)
            std::nth_element(
                all, all + victims, all + count,
                [](const StatsEntry* a, const StatsEntry* b) { return a->c.usage < b->c.usage; });
        for (int i = 0; i < victims; i++) hash_search(g_table, &all[i]->key, HASH_REMOVE, nullptr);
        pg_atomic_fetch_sub_u32(&g_shared->count, victims);
        pfree(all);
        SpinLockAcquire(&g_shared->mutex);
        g_shared->dealloc += 1;
        SpinLockRelease(&g_shared->mutex);
    }
    for (int i = kPartitions - 1; i >= 0; i--) LWLockRelease(&g_locks[i].lock);
}

void apply(StatsEntry* e, StatsOutcome outcome, int64 wait_us, TimestampTz at) {
    SpinLockAcquire(&e->mutex);
    Counters& c = e->c;
    const double wait_ms = wait_us >= 0 ? static_cast<double>(wait_us) / 1000.0 : 0.0;
    if (wait_us >= 0) {
        c.total_wait_ms += wait_ms;
        if (wait_ms > c.max_wait_ms) c.max_wait_ms = wait_ms;
    }
    switch (outcome) {
        case StatsOutcome::Acquired:
            c.acquisitions++;
            if (wait_us >= 0) c.waits++;
            c.last_acquired = at;
            break;
        case StatsOutcome::FailedTry:
            c.failed_tries++;
            break;
        case StatsOutcome::TimedOut:
            c.timeouts++;
            break;
        case StatsOutcome::Failed:
            c.errors++;
            break;
    }
    c.usage += 1.0;
    SpinLockRelease(&e->mutex);
}

// Called by the holds registry inside its noexcept functions: raises no error (an LWLock, a
// lookup, a spinlock), and only updates a row that exists.
void hold_ended(const LockId& id, const Hold& h) {
    if (g_table == nullptr || h.owner == InvalidOid) return;  // not counted when taken
    const StatsKey key = make_key(h.owner, id);
    const uint32 hash = get_hash_value(g_table, &key);
    LWLock* lock = &g_locks[hash % kPartitions].lock;
    double held_ms = static_cast<double>(stats_clock() - h.acquired_at) / 1000.0;
    if (held_ms < 0) held_ms = 0;  // the clock went back
    LWLockAcquire(lock, LW_SHARED);
    auto* e = static_cast<StatsEntry*>(
        hash_search_with_hash_value(g_table, &key, hash, HASH_FIND, nullptr));
    if (e != nullptr) {
        SpinLockAcquire(&e->mutex);
        e->c.total_hold_ms += held_ms;
        if (held_ms > e->c.max_hold_ms) e->c.max_hold_ms = held_ms;
        SpinLockRelease(&e->mutex);
    }
    LWLockRelease(lock);
}

void require_stats() {
    if (g_table == nullptr)
        ereport(ERROR, (errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
                        errmsg("pglocks statistics are not available"),
                        errdetail("pglocks_stats needs pglocks in shared_preload_libraries."),
                        errhint("Add pglocks to shared_preload_libraries and restart the "
                                "server.")));
}

}  // namespace

void stats_define_settings() {
    DefineCustomBoolVariable("pglocks.track_stats",
                             "Records statistics of pglocks locks in pglocks_stats.",
                             "Only used when pglocks is in shared_preload_libraries.", &g_track,
                             true, PGC_SUSET, 0, nullptr, nullptr, nullptr);
    if (!process_shared_preload_libraries_in_progress) return;
    DefineCustomIntVariable("pglocks.max_stats",
                            "Number of rows pglocks_stats keeps in shared memory.",
                            "When full, the least-used rows are evicted.", &g_max_stats, 5000, 100,
                            1 << 20, PGC_POSTMASTER, 0, nullptr, nullptr, nullptr);
}

void stats_init_preload() {
    if (!process_shared_preload_libraries_in_progress) return;
    g_preloaded = true;
    compat::on_shmem_request(request_shmem);
    g_prev_startup = shmem_startup_hook;
    shmem_startup_hook = shmem_startup;
    const_cast<HoldsRegistry&>(registry()).set_removed_hook(hold_ended);
}

bool stats_active() { return g_track && g_table != nullptr; }

TimestampTz stats_clock() {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (static_cast<TimestampTz>(ts.tv_sec) -
            static_cast<TimestampTz>(POSTGRES_EPOCH_JDATE - UNIX_EPOCH_JDATE) * SECS_PER_DAY) *
               USECS_PER_SEC +
           ts.tv_nsec / 1000;
}

void stats_count(const KeyArg& arg, StatsOutcome outcome, int64 wait_us, TimestampTz at) {
    if (!stats_active()) return;
    ensure_exit_hook();
    const StatsKey key = make_key(GetUserId(), arg.id);
    const uint32 hash = get_hash_value(g_table, &key);
    LWLock* lock = &g_locks[hash % kPartitions].lock;
    LWLockAcquire(lock, LW_SHARED);
    auto* e = static_cast<StatsEntry*>(
        hash_search_with_hash_value(g_table, &key, hash, HASH_FIND, nullptr));
    if (e != nullptr) {
        apply(e, outcome, wait_us, at);
        LWLockRelease(lock);
        return;
    }
    LWLockRelease(lock);
    // A new entry. Two attempts: the batch evicted makes room unless other backends fill it
    // first, in which case this outcome is not recorded (it never fails the acquire).
    for (int attempt = 0; attempt < 2 && e == nullptr; attempt++) {
        if (pg_atomic_read_u32(&g_shared->count) >= static_cast<uint32>(g_max_stats)) evict();
        LWLockAcquire(lock, LW_EXCLUSIVE);
        bool found = false;
        if (pg_atomic_fetch_add_u32(&g_shared->count, 1) < static_cast<uint32>(g_max_stats)) {
            // One lookup finds the entry another backend entered meanwhile, or enters it.
            e = static_cast<StatsEntry*>(
                hash_search_with_hash_value(g_table, &key, hash, HASH_ENTER_NULL, &found));
            if (e == nullptr || found) pg_atomic_fetch_sub_u32(&g_shared->count, 1);
            if (e != nullptr && !found) {
                SpinLockInit(&e->mutex);
                memset(&e->c, 0, sizeof(e->c));
                e->name_len = -1;
                if (arg.has_name) {
                    const int n = arg.name_len <= kSharedNameBytes
                                      ? arg.name_len
                                      : pg_mbcliplen(arg.name, arg.name_len, kSharedNameBytes);
                    memcpy(e->name, arg.name, n);
                    e->name_len = n;
                }
            }
        } else {
            pg_atomic_fetch_sub_u32(&g_shared->count, 1);
            e = static_cast<StatsEntry*>(
                hash_search_with_hash_value(g_table, &key, hash, HASH_FIND, nullptr));
        }
        if (e != nullptr) apply(e, outcome, wait_us, at);
        LWLockRelease(lock);
    }
}

}  // namespace pglocks

using namespace pglocks;

namespace {
// pglocks_stats() columns, in the order the SQL declares them.
enum StatsColumn {
    kDbid,
    kUserid,
    kKey,
    kLockKey,
    kShared,
    kAcquisitions,
    kWaits,
    kFailedTries,
    kTimeouts,
    kErrors,
    kTotalWait,
    kMaxWait,
    kTotalHold,
    kMaxHold,
    kLastAcquired,
    kStatsColumns
};
}  // namespace

PGLOCKS_FUNCTION(pglocks_stats_data) {
    require_stats();
    Tuplestorestate* store;
    TupleDesc desc;
    begin_srf(fcinfo, &store, &desc, kStatsColumns, kStatsColumns);
    const Oid me = GetUserId();
    const bool read_all = has_privs_of_role(me, PGLOCKS_ROLE_READ_ALL_STATS);
    // The scan holds every partition lock shared, as pg_stat_statements holds its lock:
    // interrupts wait until it ends, and the table is bounded by pglocks.max_stats.
    for (int i = 0; i < kPartitions; i++) LWLockAcquire(&g_locks[i].lock, LW_SHARED);
    HASH_SEQ_STATUS scan;
    hash_seq_init(&scan, g_table);
    while (auto* e = static_cast<StatsEntry*>(hash_seq_search(&scan))) {
        Counters c;
        SpinLockAcquire(&e->mutex);
        c = e->c;
        SpinLockRelease(&e->mutex);
        const LockId id{e->key.hi, e->key.lo, static_cast<KeyForm>(e->key.form),
                        e->key.shared != 0};
        Datum values[kStatsColumns];
        bool nulls[kStatsColumns];
        memset(nulls, 0, sizeof(nulls));
        values[kDbid] = ObjectIdGetDatum(e->key.db);
        values[kUserid] = ObjectIdGetDatum(e->key.user);
        if (e->name_len >= 0 && (read_all || e->key.user == me))
            values[kKey] = PointerGetDatum(cstring_to_text_with_len(e->name, e->name_len));
        else if (id.form == KeyForm::Bigint)
            values[kKey] = CStringGetTextDatum(psprintf(INT64_FORMAT, id.bigint()));
        else
            values[kKey] = CStringGetTextDatum(psprintf("%d,%d", id.key1(), id.key2()));
        if (id.form == KeyForm::Bigint)
            values[kLockKey] = Int64GetDatum(id.bigint());
        else
            nulls[kLockKey] = true;
        values[kShared] = BoolGetDatum(id.shared);
        values[kAcquisitions] = Int64GetDatum(c.acquisitions);
        values[kWaits] = Int64GetDatum(c.waits);
        values[kFailedTries] = Int64GetDatum(c.failed_tries);
        values[kTimeouts] = Int64GetDatum(c.timeouts);
        values[kErrors] = Int64GetDatum(c.errors);
        values[kTotalWait] = Float8GetDatum(c.total_wait_ms);
        values[kMaxWait] = Float8GetDatum(c.max_wait_ms);
        values[kTotalHold] = Float8GetDatum(c.total_hold_ms);
        values[kMaxHold] = Float8GetDatum(c.max_hold_ms);
        values[kLastAcquired] = TimestampTzGetDatum(c.last_acquired);
        nulls[kLastAcquired] = c.acquisitions == 0;
        tuplestore_putvalues(store, desc, values, nulls);
    }
    for (int i = kPartitions - 1; i >= 0; i--) LWLockRelease(&g_locks[i].lock);
    return static_cast<Datum>(0);
}

PGLOCKS_FUNCTION(pglocks_stats_reset) {
    require_stats();
    for (int i = 0; i < kPartitions; i++) LWLockAcquire(&g_locks[i].lock, LW_EXCLUSIVE);
    HASH_SEQ_STATUS scan;
    hash_seq_init(&scan, g_table);
    uint32 removed = 0;
    while (auto* e = static_cast<StatsEntry*>(hash_seq_search(&scan))) {
        hash_search(g_table, &e->key, HASH_REMOVE, nullptr);
        removed++;
    }
    pg_atomic_fetch_sub_u32(&g_shared->count, removed);
    SpinLockAcquire(&g_shared->mutex);
    g_shared->dealloc = 0;
    g_shared->stats_reset = GetCurrentTimestamp();
    SpinLockRelease(&g_shared->mutex);
    for (int i = kPartitions - 1; i >= 0; i--) LWLockRelease(&g_locks[i].lock);
    PG_RETURN_VOID();
}

PGLOCKS_FUNCTION(pglocks_stats_info) {
    require_stats();
    TupleDesc desc;
    if (get_call_result_type(fcinfo, nullptr, &desc) != TYPEFUNC_COMPOSITE)
        ereport(ERROR, (errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
                        errmsg("function returning record called in context that cannot "
                               "accept type record")));
    enum { kDealloc, kStatsReset, kInfoColumns };
    if (desc->natts != kInfoColumns)
        ereport(ERROR, (errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
                        errmsg("pglocks_stats_info declares %d result columns where the "
                               "pglocks library expects %d",
                               desc->natts, kInfoColumns),
                        errhint("Run ALTER EXTENSION pglocks UPDATE, or install the library "
                                "that matches the extension's version.")));
    Datum values[kInfoColumns];
    bool nulls[kInfoColumns] = {false, false};
    SpinLockAcquire(&g_shared->mutex);
    values[kDealloc] = Int64GetDatum(g_shared->dealloc);
    values[kStatsReset] = TimestampTzGetDatum(g_shared->stats_reset);
    SpinLockRelease(&g_shared->mutex);
    return HeapTupleGetDatum(heap_form_tuple(BlessTupleDesc(desc), values, nulls));
}
