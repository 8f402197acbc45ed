// Statistics by name: a fixed-size partitioned hash table in shared memory, one entry per
// database, role, lock and mode, sized by pglocks.max_stats at server start, in the manner
// of pg_stat_statements.
//
// Counters are updated under the entry's spinlock while the partition LWLock is held shared,
// so the common case (the entry exists) costs one hash lookup and no exclusive lock. A new
// entry takes its partition lock exclusively. Every partition keeps a list of its entries,
// so that whatever scans the table (eviction, the view, a reset) holds one partition lock at
// a time, briefly: an acquire whose entry exists never waits for a scan. One that needs a new
// entry while the table is full waits for the eviction that makes room (or for one running).
// Once the table has been full since the last reset (the `churning` flag), evictions start
// half a batch before it is full again, by a backend that finds the maintenance lock free
// (it does not wait for it), so that while one backend evicts the others go on taking new
// keys in the room still free instead of sleeping on that lock.
//
// When the table is full, the least-used entries (usage: acquisitions, decayed at every
// eviction) are evicted in a batch, in two phases under the maintenance lock, which
// serializes evictions and resets and is always taken before a partition lock: the first
// reads partitions under their shared lock and picks the batch among the entries read, the
// second takes each partition with victims exclusively just long enough to remove them. A
// table of up to 1,000 entries is read whole; a larger one in part, partitions in turn,
// four batches' worth and at least 1,000 entries, and whole when the batch would take a
// row whose usage, decayed, is above one acquisition's worth (see evict()). The decay is counted,
// not applied: every eviction begins a new epoch, and an entry keeps its usage as of the epoch it
// was last counted in, packed with that epoch in one atomic word, brought forward by the decay of
// the epochs since whenever it is read. So the decay reaches the entries an eviction does not read,
// and where 64-bit reads are atomic (PG_HAVE_8BYTE_SINGLE_COPY_ATOMICITY: x86-64, 64-bit
// ARM) the scan only reads: no spinlock, no cache line taken from a backend that counts
// there (elsewhere pg_atomic_read_u64 is an atomic exchange, or takes a spinlock).
// Only evictions and resets remove entries, both under the maintenance lock through all
// their phases, so a victim noted in the first phase is still there, the same entry, in the
// second. Entries can be evicted at any moment, so no backend keeps a pointer to one across
// calls: every update looks its entry up again.
//
// A new entry first reserves its room in a shared count, so the table never holds more
// than pglocks.max_stats and, while the reservation lasts, some element of the table is
// free. dynahash does not promise to find it: a partitioned table keeps its free elements
// in several lists and looks through them one at a time, and an element freed meanwhile in
// a list already looked at (an eviction or a reset in another partition) is missed while
// the one it could have found is taken. So a failed insertion is tried again, and then,
// should it fail again, under the maintenance lock held shared: with no removal running,
// free elements only go, each to a reservation of its own, and the one ours keeps free is
// found.
//
// Hold times are counted when a hold ends, through the holds registry's removal hook, which
// sees every end: a release, release_all, the end of a transaction or subtransaction, holds
// found lost behind pglocks' back (counted when pglocks notices), and at session end the
// holds the lock manager ends (an exit hook). The end of a hold only updates the entry that
// counted its acquisition (the hold keeps that entry's serial): a hold whose row was evicted
// or reset while held adds its time nowhere, neither bringing the row back nor to a row made
// anew under the same key since, whose acquisitions it is not part of. The time is added to
// the row by the end of the executor run that ended the hold (or of the transaction) at the
// latest, or sooner in the same lookup as the session's next count of that row (see
// PendingHolds).
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
#include "catalog/pg_database.h"
#include "executor/executor.h"
#include "funcapi.h"
#include "lib/ilist.h"
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
#include "utils/memutils.h"
#include "utils/syscache.h"
#include "utils/timestamp.h"
}

#include <time.h>

#include <algorithm>
#include <limits>

namespace pglocks {
namespace {

constexpr int kPartitions = 16;
constexpr const char* kTranche = "pglocks_stats";
// As pg_stat_statements: a batch of at least this many, or this share of the entries.
constexpr int kEvictMin = 10;
constexpr double kEvictShare = 0.05;
constexpr double kUsageDecay = 0.99;
// The fewest rows an eviction reads, and how many batches' worth it reads at least: a table
// of up to kSampleMin rows is read whole, a larger one in part, partitions in turn (see
// evict()).
constexpr int kSampleMin = 1000;
constexpr int kSampleBatches = 4;
// Insertions tried again in place when dynahash misses the reserved element.
constexpr int kInsertRetries = 2;

// kUsageDecay to the powers 2^0 .. 2^(kDecayBits - 1); a decay of 2^kDecayBits epochs and
// more is taken as 0 (0.99^16384 is below 1e-71).
constexpr int kDecayBits = 14;
struct DecayPowers {
    double p[kDecayBits];
};
constexpr DecayPowers make_decay_powers() {
    DecayPowers d{};
    double x = kUsageDecay;
    for (int i = 0; i < kDecayBits; i++) {
        d.p[i] = x;
        x *= x;
    }
    return d;
}
constexpr DecayPowers kDecayPowers = make_decay_powers();

// kUsageDecay to the power `epochs`, in at most kDecayBits multiplications.
double decay_over(uint32 epochs) {
    if (epochs >= (1u << kDecayBits)) return 0.0;
    double f = 1.0;
    for (int i = 0; epochs != 0; i++, epochs >>= 1)
        if (epochs & 1) f *= kDecayPowers.p[i];
    return f;
}

// An entry's usage word: the usage (a float: a ranking, whose counts stop growing past 2^24,
// which decays from there) in the high half, the epoch it is as of in the low half, so that
// a reader without the entry's spinlock reads both at once.
uint64 pack_usage(double usage, uint32 epoch) {
    const float u = static_cast<float>(usage);
    uint32 bits;
    memcpy(&bits, &u, sizeof(bits));
    return (static_cast<uint64>(bits) << 32) | epoch;
}

// The usage a word stands for at epoch `now`, decayed by the epochs since its own.
double usage_at(uint64 word, uint32 now) {
    const uint32 bits = static_cast<uint32>(word >> 32);
    float u;
    memcpy(&u, &bits, sizeof(u));
    return static_cast<double>(u) * decay_over(now - static_cast<uint32>(word));
}

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
};

struct StatsEntry {
    StatsKey key;
    dlist_node node;  // in its partition's list (partition lock)
    uint32 hash;      // of the key, kept so that removals need not hash it again
    uint32 serial;    // this entry's own number, never 0: a row recreated has another
    // The usage and the epoch it is as of (see pack_usage()): written under the spinlock,
    // read by eviction without it.
    pg_atomic_uint64 usage;
    slock_t mutex;  // the counters and the name
    Counters c;
    int32 name_len;  // -1: no name known
    char name[kSharedNameBytes];
};

struct StatsPartition {
    dlist_head entries;  // under the partition lock
    int32 count;
};

struct StatsShared {
    slock_t mutex;  // dealloc and stats_reset
    int64 dealloc;
    TimestampTz stats_reset;
    // Entries plus room reserved for entries about to be made; new rows reserve before they
    // enter, so the table never holds more than pglocks.max_stats.
    pg_atomic_uint32 count;
    pg_atomic_uint32 next_serial;
    // 1 once the table has been full since the last reset (or the server's start): from
    // then on evictions start a little before it is full again (early_mark()).
    pg_atomic_uint32 churning;
    // The number of evictions begun since the server's start (modulo 2^32): the epoch of
    // the usages (see pack_usage()).
    pg_atomic_uint32 epoch;
    int32 scan_next;  // where in kReadOrder the next eviction begins (maintenance lock)
    StatsPartition part[kPartitions];
};

// The entry of a list node, and the list's first node and end (ilist.h's iteration macros
// are C only).
StatsEntry* entry_of(dlist_node* n) {
    return reinterpret_cast<StatsEntry*>(reinterpret_cast<char*>(n) - offsetof(StatsEntry, node));
}
dlist_node* first_node(dlist_head* h) { return h->head.next; }
dlist_node* end_node(dlist_head* h) { return &h->head; }

// What eviction's first phase notes of an entry. The pointer stays valid into the second
// phase: only evictions and resets remove entries, both under the maintenance lock, which
// the evicting backend holds throughout.
struct Candidate {
    StatsEntry* entry;
    uint32 serial;  // checked in the second phase (an assertion)
    int partition;
    double usage;
};

int g_max_stats = 5000;
bool g_track = true;
bool g_preloaded = false;
StatsShared* g_shared = nullptr;
HTAB* g_table = nullptr;
LWLockPadded* g_locks = nullptr;
bool g_exit_hook_set = false;
shmem_startup_hook_type g_prev_startup = nullptr;
ExecutorEnd_hook_type g_prev_executor_end = nullptr;

Size shmem_size() {
    return partitioned_table_shmem_size(g_max_stats, sizeof(StatsEntry), sizeof(StatsShared));
}

// The tranche's locks: one per partition, then the maintenance lock (eviction and reset),
// which is always taken before a partition lock, never after.
constexpr int kMaintenanceLock = kPartitions;

void request_shmem() {
    RequestAddinShmemSpace(shmem_size());
    RequestNamedLWLockTranche(kTranche, kPartitions + 1);
}

LWLock* partition_lock(int p) { return &g_locks[p].lock; }
LWLock* maintenance_lock() { return &g_locks[kMaintenanceLock].lock; }
int partition_of(uint32 hash) { return static_cast<int>(hash % kPartitions); }

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
        pg_atomic_init_u32(&g_shared->next_serial, 1);
        pg_atomic_init_u32(&g_shared->churning, 0);
        pg_atomic_init_u32(&g_shared->epoch, 0);
        g_shared->scan_next = 0;
        for (StatsPartition& part : g_shared->part) {
            dlist_init(&part.entries);
            part.count = 0;
        }
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

// The hash of the last key hashed: a release usually ends the hold of the key its acquire
// just counted, whose hash it then need not compute again.
StatsKey g_last_key;
uint32 g_last_hash = 0;
bool g_has_last = false;

uint32 key_hash(const StatsKey& key) {
    if (g_has_last && memcmp(&key, &g_last_key, sizeof(key)) == 0) return g_last_hash;
    g_last_hash = get_hash_value(g_table, &key);
    g_last_key = key;
    g_has_last = true;
    return g_last_hash;
}

// The time of ended holds not yet added to their row: the holds of one row (key and serial)
// that ended since the row was last updated by this backend. A release in a loop within one
// executor run (a set-based query) is followed by the next acquire of the same lock, which
// then adds this in the same lookup and spinlock as its own count; anything else adds it on
// its own first (flush_pending()): the end of a hold of another row, the session's own read
// of the view, the end of an executor run (each SQL statement, each statement of PL/pgSQL
// that is not a simple expression; a portal run in several fetches, at its close), the
// abort of a subtransaction, and the end of the transaction at the latest. A reset in
// another session before the time is added drops it with the row, as it drops the
// acquisition that the hold's time belongs to.
struct PendingHolds {
    bool any = false;
    StatsKey key;
    uint32 hash;
    uint32 serial;
    double total_ms;
    double max_ms;
};
PendingHolds g_pending_holds;

// Adds the pending hold times to an entry, under its spinlock, if it is still the row that
// counted those holds (same serial); the caller holds the entry's partition lock.
void add_pending_locked(StatsEntry* e) {
    if (e->serial == g_pending_holds.serial) {
        e->c.total_hold_ms += g_pending_holds.total_ms;
        if (g_pending_holds.max_ms > e->c.max_hold_ms) e->c.max_hold_ms = g_pending_holds.max_ms;
    }
    g_pending_holds.any = false;
}

// Adds the pending hold times on their own. Only hold_ended() makes them pending, and only
// with the table present.
void flush_pending() {
    if (!g_pending_holds.any) return;
    LWLock* lock = partition_lock(partition_of(g_pending_holds.hash));
    LWLockAcquire(lock, LW_SHARED);
    auto* e = static_cast<StatsEntry*>(hash_search_with_hash_value(
        g_table, &g_pending_holds.key, g_pending_holds.hash, HASH_FIND, nullptr));
    if (e != nullptr) {
        SpinLockAcquire(&e->mutex);
        add_pending_locked(e);
        SpinLockRelease(&e->mutex);
    }
    g_pending_holds.any = false;
    LWLockRelease(lock);
}

// The end of every executor run: the statement's ended holds reach their rows.
void executor_end(QueryDesc* query) {
    if (g_prev_executor_end != nullptr)
        g_prev_executor_end(query);
    else
        standard_ExecutorEnd(query);
    flush_pending();
}

void count_holds_at_exit(int, Datum) {
    // After the transaction's abort at exit, whose callbacks ended the transaction-bound
    // holds; what is left are session holds, which the lock manager ends with the backend.
    if (g_table != nullptr) registry().visit_holds(hold_ended);
    flush_pending();
}

void ensure_exit_hook() {
    if (g_exit_hook_set) return;
    on_shmem_exit(count_holds_at_exit, 0);
    g_exit_hook_set = true;
}

// Removes an entry; the caller holds its partition lock exclusively.
void remove_entry(int p, StatsEntry* e, uint32 hash) {
    Assert(LWLockHeldByMeInMode(maintenance_lock(), LW_EXCLUSIVE));
    dlist_delete(&e->node);
    g_shared->part[p].count--;
    hash_search_with_hash_value(g_table, &e->key, hash, HASH_REMOVE, nullptr);
}

// One more entry fits: reserves its room in the count.
bool reserve_room() {
    if (pg_atomic_fetch_add_u32(&g_shared->count, 1) < static_cast<uint32>(g_max_stats))
        return true;
    pg_atomic_fetch_sub_u32(&g_shared->count, 1);
    return false;
}

// The order in which evictions read partitions: four apart, so that the places a batch read
// from four partitions frees fall in dynahash free lists spread over the table (an element
// goes back to the free list of its hash; a new entry whose own list is empty looks through
// the lists after it, one spinlock each, for one that is not).
constexpr int kReadOrder[kPartitions] = {0, 4, 8, 12, 1, 5, 9, 13, 2, 6, 10, 14, 3, 7, 11, 15};

// The highest usage, decayed, of a row evicted as the least used of part of the table: one
// acquisition's worth; a batch that would take a row above it reads the whole table.
constexpr double kPartUsageMax = 1.0;

// Eviction's first phase in one partition: notes its entries with their usage at epoch `now`
// after the `count` already noted; returns the new count.
int note_partition(int p, uint32 now, Candidate* notes, int count) {
    LWLockAcquire(partition_lock(p), LW_SHARED);
    dlist_head* list = &g_shared->part[p].entries;
    for (dlist_node* n = first_node(list); n != end_node(list); n = n->next) {
        StatsEntry* e = entry_of(n);
        const double usage = usage_at(pg_atomic_read_u64(&e->usage), now);
        if (count < g_max_stats) notes[count++] = Candidate{e, e->serial, p, usage};
    }
    LWLockRelease(partition_lock(p));
    return count;
}

// The `batch` least used of the `count` notes first, in linear time; plain data, comparisons
// that cannot fail. Returns the highest usage among them.
double choose(Candidate* notes, int count, int batch) {
    if (batch < count)
        std::nth_element(notes, notes + batch, notes + count,
                         [](const Candidate& a, const Candidate& b) { return a.usage < b.usage; });
    double highest = 0;
    for (int i = 0; i < batch; i++) highest = std::max(highest, notes[i].usage);
    return highest;
}

// Evicts a batch of the least-used entries (kEvictShare of them, at least kEvictMin), the
// usage of those that stay decayed (a new epoch), as pg_stat_statements does, in two phases
// (see the file comment). Reading the whole table for every batch costs more than the rest
// of a new row when keys are seen once (each entry read is a cache miss), so the first phase
// reads a table of up to kSampleMin entries whole, and a larger one partition by partition
// (kReadOrder, from where the eviction before stopped) until it has read kSampleBatches
// batches' worth and at least kSampleMin: with the default 5,000 rows, four partitions, about
// 1,250 rows, for a batch of about 250. The batch is the least used of those when none of
// its rows has a usage above kPartUsageMax; otherwise the rest of the table is read and the
// batch is the least used of all, as when every eviction read it all. The caller holds
// the maintenance lock and no partition lock; `notes` has room for pglocks.max_stats
// candidates. Returns how many entries it removed.
int evict(Candidate* notes) {
    // Phase 1: one partition at a time, shared. The decay: a new epoch, which every usage
    // is read as of (a count made meanwhile in an earlier epoch is decayed with the rest).
    const uint32 now = pg_atomic_add_fetch_u32(&g_shared->epoch, 1);
    // The batch's size, of the entries in the table and the room reserved for entries being
    // made.
    int victims = static_cast<int>(pg_atomic_read_u32(&g_shared->count) * kEvictShare);
    if (victims < kEvictMin) victims = kEvictMin;
    const int sample = std::max(kSampleMin, kSampleBatches * victims);
    const int first = g_shared->scan_next;
    int count = 0;
    int read = 0;
    // Reads the next partitions in turn until `wanted` entries are noted or none is left.
    // (Plain data: a PostgreSQL error may pass this frame.)
    const auto read_until = [&](int wanted) {
        while (read < kPartitions && count < wanted)
            count = note_partition(kReadOrder[(first + read++) % kPartitions], now, notes, count);
    };
    read_until(sample);
    int batch = std::min(victims, count);
    if (choose(notes, count, batch) > kPartUsageMax && read < kPartitions) {
        read_until(std::numeric_limits<int>::max());  // the rest of the table
        batch = std::min(victims, count);
        (void)choose(notes, count, batch);
    }
    g_shared->scan_next = (first + read) % kPartitions;
    if (batch == 0) return 0;
    std::sort(notes, notes + batch,
              [](const Candidate& a, const Candidate& b) { return a.partition < b.partition; });
    // Phase 2: each partition with victims, exclusively, once. A victim is removed even if
    // it was used since phase 1 (sparing it could leave no room for the row that asked for
    // it). Only this backend removes entries now (the maintenance lock), so every victim is
    // still there, the same entry, where phase 1 saw it: no lookup is needed to find it.
    int removed = 0;
    for (int i = 0; i < batch;) {
        const int p = notes[i].partition;
        LWLockAcquire(partition_lock(p), LW_EXCLUSIVE);
        for (; i < batch && notes[i].partition == p; i++) {
            StatsEntry* e = notes[i].entry;
            // Always true under the maintenance lock; checked all the same, as it costs
            // nothing, so that a remover added outside that lock could not make this free an
            // element twice (a reused element has a new serial).
            Assert(e->serial == notes[i].serial);
            if (e->serial != notes[i].serial) continue;
            remove_entry(p, e, e->hash);
            removed++;
        }
        LWLockRelease(partition_lock(p));
    }
    return removed;
}

// Evicts one batch and counts it; the caller holds the maintenance lock and no partition
// lock. Returns how many entries it removed; `no_memory` is set when the notes of eviction
// could not be allocated (an allocation that cannot fail: without memory nothing is evicted).
int evict_batch(bool* no_memory) {
    auto* notes = static_cast<Candidate*>(MemoryContextAllocExtended(
        TopMemoryContext, sizeof(Candidate) * g_max_stats, MCXT_ALLOC_NO_OOM | MCXT_ALLOC_HUGE));
    *no_memory = notes == nullptr;
    if (notes == nullptr) return 0;
    const int removed = evict(notes);
    pfree(notes);
    if (removed > 0) {
        SpinLockAcquire(&g_shared->mutex);
        g_shared->dealloc += 1;
        SpinLockRelease(&g_shared->mutex);
    }
    return removed;
}

// The count at which a table that has been full since the last reset starts its next
// eviction: half a batch before it is full. Room made then is made by a backend that finds
// no eviction running (it does not wait for the maintenance lock), while other backends go
// on taking the half batch still free; once the table is full again, a backend that needs
// a row waits for the eviction that makes room, as before. Without this, every backend that
// takes a new key while one evicts would sleep on the maintenance lock until the eviction
// ends, and with keys seen once (a million random keys) that is every few hundred calls.
uint32 early_mark() {
    int batch = static_cast<int>(g_max_stats * kEvictShare);
    if (batch < kEvictMin) batch = kEvictMin;
    return static_cast<uint32>(g_max_stats - (batch + 1) / 2);
}

// Whether an early eviction is due now: the table has filled before and, with the room
// reserved so far, has reached the early mark.
bool early_eviction_due() {
    return pg_atomic_read_u32(&g_shared->churning) != 0 &&
           pg_atomic_read_u32(&g_shared->count) >= early_mark();
}

// Room for a new entry: reserved in the count, by an eviction when the table is full (and
// early, past early_mark(), when no other backend is evicting). Only
// the backend that evicts allocates the notes of eviction, under the maintenance lock (an
// allocation that cannot fail: without memory there is no room, and the outcome is reported
// in the server log instead of counted: counting never fails an acquire).
bool make_room() {
    if (reserve_room()) {
        // Room reserved. Past the early mark of a table that has filled before, an eviction
        // now, by whoever finds none running.
        if (early_eviction_due() && LWLockConditionalAcquire(maintenance_lock(), LW_EXCLUSIVE)) {
            bool no_memory = false;
            // Another backend may have evicted meanwhile, or a reset emptied the table.
            if (early_eviction_due()) {
                const int removed = evict_batch(&no_memory);
                if (removed > 0) pg_atomic_fetch_sub_u32(&g_shared->count, removed);
            }
            LWLockRelease(maintenance_lock());
            // Once per backend: the early path runs again for every new row until one
            // eviction succeeds, and the full table's path logs its own failures.
            static bool logged = false;
            if (no_memory && !logged) {
                logged = true;
                elog(LOG, "pglocks_stats: no memory to evict rows early");
            }
        }
        return true;
    }
    LWLockAcquire(maintenance_lock(), LW_EXCLUSIVE);
    // Another backend may have evicted while this one waited for the lock.
    bool room = reserve_room();
    bool no_memory = false;
    if (!room) {
        pg_atomic_write_u32(&g_shared->churning, 1);
        const int removed = evict_batch(&no_memory);
        if (removed > 0) {
            // One of the freed places is this backend's reservation.
            if (removed > 1) pg_atomic_fetch_sub_u32(&g_shared->count, removed - 1);
            room = true;
        }
    }
    LWLockRelease(maintenance_lock());
    if (no_memory) elog(LOG, "pglocks_stats: no memory to evict rows, an outcome was not counted");
    return room;
}

// The bytes of a name that fit in an entry, cut at a character boundary.
int name_bytes(const KeyArg& arg) {
    return arg.name_len <= kSharedNameBytes
               ? arg.name_len
               : pg_mbcliplen(arg.name, arg.name_len, kSharedNameBytes);
}

// Counts an outcome in an entry; the caller holds its partition lock. A row first made by a
// numeric key gets the name when the lock is taken by name (the first name seen stays).
// `merge`: the pending hold times are of this entry's key, added under the same spinlock.
void apply(StatsEntry* e, const KeyArg& arg, StatsOutcome outcome, int64 wait_us, TimestampTz at,
           bool merge = false) {
    // name_len only goes from -1 to a length, under the spinlock: a stale read just looks
    // again below.
    const int new_name = arg.has_name && e->name_len < 0 ? name_bytes(arg) : -1;
    SpinLockAcquire(&e->mutex);
    if (new_name >= 0 && e->name_len < 0) {
        memcpy(e->name, arg.name, new_name);
        e->name_len = new_name;
    }
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
    const uint32 now = pg_atomic_read_u32(&g_shared->epoch);
    const double usage = usage_at(pg_atomic_read_u64(&e->usage), now) + 1.0;
    pg_atomic_write_u64(&e->usage, pack_usage(usage, now));
    if (merge) add_pending_locked(e);
    SpinLockRelease(&e->mutex);
}

// Called by the holds registry inside its noexcept functions: raises no error (an LWLock, a
// lookup, a spinlock), and only updates the row that counted the hold's acquisition: a row
// made anew under the same key after an eviction or a reset (another serial) gets nothing,
// as its acquisitions do not include this hold.
void hold_ended(const LockId& id, const Hold& h) {
    if (g_table == nullptr || h.owner == InvalidOid || h.stats_row == 0) return;
    const StatsKey key = make_key(h.owner, id);
    const double held_ms = static_cast<double>(stats_elapsed(h.acquired_at)) / 1000.0;
    if (g_pending_holds.any && (g_pending_holds.serial != h.stats_row ||
                                memcmp(&g_pending_holds.key, &key, sizeof(key)) != 0))
        flush_pending();
    if (!g_pending_holds.any) {
        g_pending_holds.any = true;
        g_pending_holds.key = key;
        g_pending_holds.hash = key_hash(key);
        g_pending_holds.serial = h.stats_row;
        g_pending_holds.total_ms = 0;
        g_pending_holds.max_ms = 0;
    }
    g_pending_holds.total_ms += held_ms;
    if (held_ms > g_pending_holds.max_ms) g_pending_holds.max_ms = held_ms;
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
    g_prev_executor_end = ExecutorEnd_hook;
    ExecutorEnd_hook = executor_end;
    const_cast<HoldsRegistry&>(registry()).set_removed_hook(hold_ended);
}

bool stats_active() { return g_track && g_table != nullptr; }

void stats_flush() { flush_pending(); }

TimestampTz stats_clock() {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (static_cast<TimestampTz>(ts.tv_sec) -
            static_cast<TimestampTz>(POSTGRES_EPOCH_JDATE - UNIX_EPOCH_JDATE) * SECS_PER_DAY) *
               USECS_PER_SEC +
           ts.tv_nsec / 1000;
}

// A wall clock stepped back during a wait would make it negative, which stats_count reads as
// "no wait": the wait would go uncounted and a timeout be counted as a failed try.
int64 stats_elapsed(TimestampTz start, TimestampTz end) { return end > start ? end - start : 0; }

int64 stats_elapsed(TimestampTz start) { return stats_elapsed(start, stats_clock()); }

namespace {
uint32 count_held_off(const KeyArg& arg, StatsOutcome outcome, int64 wait_us, TimestampTz at) {
    ensure_exit_hook();
    const StatsKey key = make_key(GetUserId(), arg.id);
    const uint32 hash = key_hash(key);
    LWLock* lock = partition_lock(partition_of(hash));
    LWLockAcquire(lock, LW_SHARED);
    auto* e = static_cast<StatsEntry*>(
        hash_search_with_hash_value(g_table, &key, hash, HASH_FIND, nullptr));
    if (e != nullptr) {
        apply(e, arg, outcome, wait_us, at,
              g_pending_holds.any && memcmp(&g_pending_holds.key, &key, sizeof(key)) == 0);
        const uint32 row = e->serial;
        LWLockRelease(lock);
        return outcome == StatsOutcome::Acquired ? row : 0;
    }
    LWLockRelease(lock);
    // A new entry, in reserved room; when there is none even after an eviction, the outcome
    // is recorded only if another backend made the entry meanwhile.
    const bool room = make_room();
    LWLockAcquire(lock, room ? LW_EXCLUSIVE : LW_SHARED);
    bool found = false;
    e = static_cast<StatsEntry*>(hash_search_with_hash_value(
        g_table, &key, hash, room ? HASH_ENTER_NULL : HASH_FIND, &found));
    // The reserved element was missed while removals in other partitions freed elements
    // (see the file comment): again, and then with removals held off.
    for (int attempt = 0; room && e == nullptr && attempt < kInsertRetries; attempt++)
        e = static_cast<StatsEntry*>(
            hash_search_with_hash_value(g_table, &key, hash, HASH_ENTER_NULL, &found));
    if (room && e == nullptr) {
        LWLockRelease(lock);
        LWLockAcquire(maintenance_lock(), LW_SHARED);
        LWLockAcquire(lock, LW_EXCLUSIVE);
        e = static_cast<StatsEntry*>(
            hash_search_with_hash_value(g_table, &key, hash, HASH_ENTER_NULL, &found));
        LWLockRelease(maintenance_lock());
        // The reservation keeps an element free and nothing removed one: never happens.
        Assert(e != nullptr);
        if (e == nullptr)
            elog(LOG,
                 "pglocks_stats: no free row although one was reserved, an outcome was "
                 "not counted");
    }
    if (room && (e == nullptr || found)) pg_atomic_fetch_sub_u32(&g_shared->count, 1);
    if (room && e != nullptr && !found) {
        uint32 serial;
        do {
            serial = pg_atomic_fetch_add_u32(&g_shared->next_serial, 1);
        } while (serial == 0);
        e->serial = serial;
        e->hash = hash;
        SpinLockInit(&e->mutex);
        memset(&e->c, 0, sizeof(e->c));
        pg_atomic_init_u64(&e->usage, pack_usage(0.0, pg_atomic_read_u32(&g_shared->epoch)));
        e->name_len = -1;
        if (arg.has_name) {
            const int n = name_bytes(arg);
            memcpy(e->name, arg.name, n);
            e->name_len = n;
        }
        const int p = partition_of(hash);
        dlist_push_tail(&g_shared->part[p].entries, &e->node);
        g_shared->part[p].count++;
    }
    uint32 row = 0;
    if (e != nullptr) {
        apply(e, arg, outcome, wait_us, at);
        row = e->serial;
    }
    LWLockRelease(lock);
    return outcome == StatsOutcome::Acquired ? row : 0;
}
}  // namespace

// Interrupts are held off throughout: the server log messages of a failed eviction end with
// an interrupt check, which would raise a pending cancel from a count its callers make with
// a lock granted and not yet recorded, or while they re-raise another error.
uint32 stats_count(const KeyArg& arg, StatsOutcome outcome, int64 wait_us, TimestampTz at) {
    if (!stats_active()) return 0;
    HOLD_INTERRUPTS();
    const uint32 row = count_held_off(arg, outcome, wait_us, at);
    RESUME_INTERRUPTS();
    return row;
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

// A row of pglocks_stats as copied out of shared memory.
struct RowCopy {
    StatsKey key;
    Counters c;
    int32 name_len;
    char name[kSharedNameBytes];
};

void put_row(Tuplestorestate* store, TupleDesc desc, const RowCopy& r, bool show_name) {
    const LockId id{r.key.hi, r.key.lo, static_cast<KeyForm>(r.key.form), r.key.shared != 0};
    Datum values[kStatsColumns];
    bool nulls[kStatsColumns];
    memset(nulls, 0, sizeof(nulls));
    values[kDbid] = ObjectIdGetDatum(r.key.db);
    values[kUserid] = ObjectIdGetDatum(r.key.user);
    if (r.name_len >= 0 && show_name)
        values[kKey] = PointerGetDatum(cstring_to_text_with_len(r.name, r.name_len));
    else if (id.form == KeyForm::Bigint)
        values[kKey] = CStringGetTextDatum(psprintf(INT64_FORMAT, id.bigint()));
    else
        values[kKey] = CStringGetTextDatum(psprintf("%d,%d", id.key1(), id.key2()));
    if (id.form == KeyForm::Bigint)
        values[kLockKey] = Int64GetDatum(id.bigint());
    else
        nulls[kLockKey] = true;
    const Counters& c = r.c;
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

// A name is stored as its database's bytes. Shown in another database it must be text of
// this one's encoding: it is shown when both databases have the same encoding, or when it
// is plain ASCII (the same bytes in every server encoding); otherwise the row shows the
// key's numeric form, as for a name the reader may not see. The encoding of the previous
// row's database is kept for the next row (rows come in partition order, so rows of one
// database are often but not always adjacent; a syscache hit is cheap). A database dropped
// since has none, so only ASCII names of its rows show; should its OID be reused by a new
// database, its old rows are judged by the new one's encoding.
struct DbEncoding {
    Oid db = InvalidOid;
    int encoding = -1;
};

bool name_readable_here(const RowCopy& r, DbEncoding* last) {
    if (r.key.db == MyDatabaseId || r.name_len <= 0) return true;
    if (last->db != r.key.db) {
        last->db = r.key.db;
        last->encoding = -1;
        HeapTuple tup = SearchSysCache1(DATABASEOID, ObjectIdGetDatum(r.key.db));
        if (HeapTupleIsValid(tup)) {
            last->encoding = reinterpret_cast<Form_pg_database>(GETSTRUCT(tup))->encoding;
            ReleaseSysCache(tup);
        }
    }
    return last->encoding == GetDatabaseEncoding() || is_ascii(r.name, r.name_len);
}
}  // namespace

PGLOCKS_FUNCTION(pglocks_stats_data) {
    require_stats();
    flush_pending();  // this backend's own ended holds, before it reads
    Tuplestorestate* store;
    TupleDesc desc;
    begin_srf(fcinfo, &store, &desc, kStatsColumns, kStatsColumns);
    const Oid me = GetUserId();
    const bool read_all = has_privs_of_role(me, PGLOCKS_ROLE_READ_ALL_STATS);
    // One partition at a time: its entries are copied out under its shared lock, which is
    // all an acquire in that partition may wait for, and become rows after it is released
    // (the tuplestore may write to disk). The rows of one partition are copied together; the
    // view as a whole is not one instant.
    RowCopy* rows = nullptr;
    int room = 0;
    DbEncoding last_db;
    for (int p = 0; p < kPartitions; p++) {
        CHECK_FOR_INTERRUPTS();
        int n;
        for (;;) {
            LWLockAcquire(partition_lock(p), LW_SHARED);
            n = g_shared->part[p].count;
            if (n <= room) break;
            LWLockRelease(partition_lock(p));
            // No lock held while allocating; more than now, as the partition may grow.
            const int want = n + n / 4 + 16;
            const Size bytes = sizeof(RowCopy) * static_cast<Size>(want);
            rows = static_cast<RowCopy*>(rows == nullptr
                                             ? MemoryContextAllocHuge(CurrentMemoryContext, bytes)
                                             : repalloc_huge(rows, bytes));
            room = want;
        }
        int i = 0;
        dlist_head* list = &g_shared->part[p].entries;
        for (dlist_node* node = first_node(list); node != end_node(list) && i < n;
             node = node->next) {
            StatsEntry* e = entry_of(node);
            RowCopy& r = rows[i++];
            r.key = e->key;
            SpinLockAcquire(&e->mutex);
            r.c = e->c;
            r.name_len = e->name_len;
            if (e->name_len > 0) memcpy(r.name, e->name, e->name_len);
            SpinLockRelease(&e->mutex);
        }
        LWLockRelease(partition_lock(p));
        for (int j = 0; j < i; j++) {
            CHECK_FOR_INTERRUPTS();
            put_row(store, desc, rows[j],
                    (read_all || rows[j].key.user == me) && name_readable_here(rows[j], &last_db));
        }
    }
    if (rows != nullptr) pfree(rows);
    return static_cast<Datum>(0);
}

PGLOCKS_FUNCTION(pglocks_stats_reset) {
    require_stats();
    const TimestampTz now = GetCurrentTimestamp();
    // Under the maintenance lock (no eviction in between), one partition at a time.
    LWLockAcquire(maintenance_lock(), LW_EXCLUSIVE);
    for (int p = 0; p < kPartitions; p++) {
        LWLockAcquire(partition_lock(p), LW_EXCLUSIVE);
        uint32 removed = 0;
        dlist_head* list = &g_shared->part[p].entries;
        while (first_node(list) != end_node(list)) {
            StatsEntry* e = entry_of(first_node(list));
            remove_entry(p, e, e->hash);
            removed++;
        }
        LWLockRelease(partition_lock(p));
        pg_atomic_fetch_sub_u32(&g_shared->count, removed);
    }
    SpinLockAcquire(&g_shared->mutex);
    g_shared->dealloc = 0;
    g_shared->stats_reset = now;
    SpinLockRelease(&g_shared->mutex);
    pg_atomic_write_u32(&g_shared->churning, 0);
    LWLockRelease(maintenance_lock());
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
