// Shared-memory registry of lock names, keyed by database, backend and lock: a fixed-size
// partitioned hash table sized by pglocks.max_named_locks at server start. Publishing takes
// one partition LWLock; when the table is full the name is not recorded and the lock is
// shown by its numeric key, so the acquire path never fails because of it.
//
// The table lives in the memory it requested at start: every entry is allocated then
// (HASH_FIXED_SIZE; a partitioned table borrows from its other freelists rather than take
// the server's spare shared memory, which the lock table needs), and a count keeps inserts
// within that number. Every entry a backend publishes is removed when it exits.
// Pure C++ first: it refuses to follow postgres.h.
#include "holds_registry.hpp"

#include "pg_holds.hpp"
#include "pg_names.hpp"
#include "pg_shmem.hpp"

extern "C" {
#include "mb/pg_wchar.h"
#include "miscadmin.h"
#include "port/atomics.h"
#include "storage/ipc.h"
#include "storage/lwlock.h"
#include "storage/proc.h"
#include "storage/shmem.h"
#include "utils/guc.h"
#include "utils/hsearch.h"
}

namespace pglocks {
namespace {

constexpr int kPartitions = 16;
constexpr const char* kTranche = "pglocks_names";

struct NameKey {
    Oid db;
    int32 pid;
    uint32 hi;
    uint32 lo;
    uint16 form;
    uint16 shared;
};

struct NameEntry {
    NameKey key;
    pg_atomic_uint64 since;  // written by the owner without the partition lock
    Oid role;                // the role the session logged in as: who may read the name
    int32 len;
    char name[kSharedNameBytes];
};

struct NamesShared {
    pg_atomic_uint32 count;
    // Bumped when a publish finds the table full: every backend then drops the names it
    // kept for locks it no longer holds (see LocalName).
    pg_atomic_uint32 pressure;
};

// Names of this backend's recent locks stay published after the lock is released, so that
// taking the same name again costs one atomic store instead of a partition lock, an insert
// and a delete. Only the owner ever removes its entries, so the pointer stays valid.
// Direct-mapped and small: a handful of stale names per backend at most, and those go when
// a backend that kept them finds the table has run short (at its next name). A backend
// that stays idle never looks, so the names kept by all backends together are bounded to
// half the table (keep_limit()): the other half is always there for names in use. A kept
// entry's time is 0: the view shows no hold time for it (the lock may be held again, by
// the core functions).
constexpr int kLocalNames = 16;  // test/unit/lock_key_test.cpp has keys colliding here
struct LocalName {
    LockId id;
    NameEntry* entry;  // nullptr: slot free
    bool in_use;       // a hold or a wait of this backend names it now
};
LocalName g_local[kLocalNames];
uint32 g_seen_pressure = 0;

int g_max_named_locks = 4096;
bool g_share_names = true;
bool g_preloaded = false;
NamesShared* g_shared = nullptr;
HTAB* g_table = nullptr;
LWLockPadded* g_locks = nullptr;
bool g_exit_hook_set = false;
// Entries of this backend in the shared table, so that the exit hook knows when the names
// it tracks (g_local, the holds registry) were not all of them.
uint32 g_published = 0;

shmem_startup_hook_type g_prev_startup = nullptr;

Size shmem_size() {
    return partitioned_table_shmem_size(g_max_named_locks, sizeof(NameEntry), sizeof(NamesShared));
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
        static_cast<NamesShared*>(ShmemInitStruct("pglocks names", sizeof(NamesShared), &found));
    if (!found) {
        pg_atomic_init_u32(&g_shared->count, 0);
        pg_atomic_init_u32(&g_shared->pressure, 0);
    }
    HASHCTL info;
    memset(&info, 0, sizeof(info));
    info.keysize = sizeof(NameKey);
    info.entrysize = sizeof(NameEntry);
    info.num_partitions = kPartitions;
    const long size = g_max_named_locks > 0 ? g_max_named_locks : 1;
    g_table = compat::shmem_init_hash("pglocks names table", size, &info,
                                      HASH_ELEM | HASH_BLOBS | HASH_PARTITION | HASH_FIXED_SIZE);
    g_locks = GetNamedLWLockTranche(kTranche);
    LWLockRelease(AddinShmemInitLock);
}

NameKey make_key(int pid, const LockId& id) {
    NameKey k;
    memset(&k, 0, sizeof(k));  // padding is part of the hashed bytes
    k.db = MyDatabaseId;
    k.pid = pid;
    k.hi = id.hi;
    k.lo = id.lo;
    k.form = static_cast<uint16>(id.form);
    k.shared = id.shared ? 1 : 0;
    return k;
}

// A name's key, its hash and the partition lock that guards it.
struct Place {
    NameKey key;
    uint32 hash;
    LWLock* lock;
};

Place locate(int pid, const LockId& id) {
    Place s;
    s.key = make_key(pid, id);
    s.hash = get_hash_value(g_table, &s.key);
    s.lock = &g_locks[s.hash % kPartitions].lock;
    return s;
}

void remove_shared(const LockId& id);

void unpublish_hook(const LockId& id) { names_unpublish(id); }

// Removes every entry of this backend by a scan of the whole table, under all partition
// locks: the exit hook's fallback for names no local record points at (a name published for
// a wait whose cache slot was taken, when the wait ends with the backend).
void remove_all_of_backend() {
    for (int i = 0; i < kPartitions; i++) LWLockAcquire(&g_locks[i].lock, LW_EXCLUSIVE);
    HASH_SEQ_STATUS scan;
    hash_seq_init(&scan, g_table);
    uint32 removed = 0;
    while (auto* e = static_cast<NameEntry*>(hash_seq_search(&scan))) {
        if (e->key.pid != MyProcPid || e->key.db != MyDatabaseId) continue;
        // Removing the entry just returned is allowed during a scan.
        hash_search(g_table, &e->key, HASH_REMOVE, nullptr);
        removed++;
    }
    for (int i = kPartitions - 1; i >= 0; i--) LWLockRelease(&g_locks[i].lock);
    pg_atomic_fetch_sub_u32(&g_shared->count, removed);
    g_published = 0;
}

void unpublish_at_exit(int, Datum) {
    // The holds themselves go with the lock manager's own cleanup; only names stay behind.
    const_cast<HoldsRegistry&>(registry()).unpublish_all();
    for (LocalName& l : g_local) {
        if (l.entry != nullptr) remove_shared(l.id);
        l.entry = nullptr;
    }
    if (g_published > 0) remove_all_of_backend();
}

void remove_shared(const LockId& id) {
    const Place at = locate(MyProcPid, id);
    LWLockAcquire(at.lock, LW_EXCLUSIVE);
    bool found = false;
    hash_search_with_hash_value(g_table, &at.key, at.hash, HASH_REMOVE, &found);
    LWLockRelease(at.lock);
    if (found) {
        pg_atomic_fetch_sub_u32(&g_shared->count, 1);
        g_published--;
    }
}

LocalName& local_slot(const LockId& id) { return g_local[LockIdHash()(id) % kLocalNames]; }

// How many names of locks no longer used a backend keeps: its share of half the table.
int keep_limit() {
    static int limit = -1;
    if (limit < 0)
        limit = std::min(kLocalNames, g_max_named_locks / (2 * std::max(MaxBackends, 1)));
    return limit;
}

// Drops the kept names of locks this backend no longer uses.
void drop_idle_names() {
    for (LocalName& l : g_local) {
        if (l.entry != nullptr && !l.in_use) {
            remove_shared(l.id);
            l.entry = nullptr;
        }
    }
}

// Slots of g_local naming a lock this backend no longer uses.
int kept_idle() {
    int n = 0;
    for (const LocalName& l : g_local) n += l.entry != nullptr && !l.in_use;
    return n;
}

void follow_pressure() {
    const uint32 pressure = pg_atomic_read_u32(&g_shared->pressure);
    if (pressure != g_seen_pressure) {
        g_seen_pressure = pressure;
        drop_idle_names();
    }
}

}  // namespace

namespace {

// Turning pglocks.share_names off withdraws the names this backend has published, kept
// ones and those of locks it holds: other sessions then see all of its locks by number.
// Runs where any setting changes, abort included (after the LWLocks are released), and
// never while this backend waits for a lock or holds a partition lock; it takes those
// locks one at a time and cannot fail. In the exit hook's order: the holds' names by key,
// then the kept ones, and a scan of the whole table only for a name neither reached.
void assign_share_names(bool newval, void*) {
    if (newval || !g_share_names || !names_available() || MyProc == nullptr) return;
    if (g_published == 0) return;
    // The new value, which the settings machinery stores on return: names_unpublish
    // keeps no name once it is off.
    g_share_names = false;
    const_cast<HoldsRegistry&>(registry()).unpublish_all();
    for (LocalName& l : g_local) {
        if (l.entry != nullptr) remove_shared(l.id);
        l.entry = nullptr;
    }
    if (g_published > 0) remove_all_of_backend();
}

}  // namespace

void names_define_settings() {
    DefineCustomBoolVariable(
        "pglocks.share_names", "Shows the names of this session's locks to other sessions.",
        "When off, other sessions see this session's locks in pglocks_locks by their numeric "
        "key. Needs pglocks in shared_preload_libraries to have any effect.",
        &g_share_names, true, PGC_USERSET, 0, nullptr, assign_share_names, nullptr);
    // A server-start setting can only be defined while the server starts.
    if (!process_shared_preload_libraries_in_progress) return;
    DefineCustomIntVariable(
        "pglocks.max_named_locks", "Number of lock names kept in shared memory for pglocks_locks.",
        "Only used when pglocks is in shared_preload_libraries. When full, further locks are "
        "shown by their numeric key.",
        &g_max_named_locks, 4096, 0, 1 << 24, PGC_POSTMASTER, 0, nullptr, nullptr, nullptr);
}

void names_init_preload() {
    if (!process_shared_preload_libraries_in_progress) return;
    g_preloaded = true;
    compat::on_shmem_request(request_shmem);
    g_prev_startup = shmem_startup_hook;
    shmem_startup_hook = shmem_startup;
    const_cast<HoldsRegistry&>(registry()).set_unpublish_hook(unpublish_hook);
}

bool names_available() { return g_preloaded && g_table != nullptr && g_max_named_locks > 0; }

bool names_publish(const LockId& id, const char* name, int len, TimestampTz since) {
    if (!names_available() || !g_share_names) return false;
    if (!g_exit_hook_set) {
        // After the transaction's abort at exit (LWLockReleaseAll), before ProcKill: no
        // partition lock can still be held by this backend when the hook takes them.
        on_shmem_exit(unpublish_at_exit, 0);
        g_exit_hook_set = true;
    }
    follow_pressure();
    LocalName& slot = local_slot(id);
    if (slot.entry != nullptr && slot.id == id) {
        pg_atomic_write_u64(&slot.entry->since, static_cast<uint64>(since));
        slot.in_use = true;
        return true;
    }
    const Place at = locate(MyProcPid, id);
    LWLockAcquire(at.lock, LW_EXCLUSIVE);
    bool found = false;
    auto* e = static_cast<NameEntry*>(
        hash_search_with_hash_value(g_table, &at.key, at.hash, HASH_FIND, &found));
    if (e == nullptr) {
        // The count keeps inserts within the entries allocated at start, so that an insert
        // never finds every freelist empty (HASH_FIXED_SIZE: it would fail, not grow).
        if (pg_atomic_fetch_add_u32(&g_shared->count, 1) >=
            static_cast<uint32>(g_max_named_locks)) {
            pg_atomic_fetch_sub_u32(&g_shared->count, 1);
            pg_atomic_fetch_add_u32(&g_shared->pressure, 1);
        } else {
            e = static_cast<NameEntry*>(
                hash_search_with_hash_value(g_table, &at.key, at.hash, HASH_ENTER_NULL, &found));
            if (e == nullptr) pg_atomic_fetch_sub_u32(&g_shared->count, 1);
        }
    }
    if (e != nullptr) {
        const int n = len <= kSharedNameBytes ? len : pg_mbcliplen(name, len, kSharedNameBytes);
        memcpy(e->name, name, n);
        e->len = n;
        // As pg_stat_activity's usename: the role the session logged in as, which no SET
        // SESSION AUTHORIZATION or SET ROLE changes.
        e->role = GetAuthenticatedUserId();
        if (!found) {
            pg_atomic_init_u64(&e->since, 0);
            g_published++;
        }
        pg_atomic_write_u64(&e->since, static_cast<uint64>(since));
    }
    LWLockRelease(at.lock);
    if (e == nullptr) return false;
    // Keep it for next time, unless the slot names a lock in use.
    if (slot.entry == nullptr || !slot.in_use) {
        if (slot.entry != nullptr) remove_shared(slot.id);
        slot = LocalName{id, e, true};
    }
    return true;
}

void names_unpublish(const LockId& id) {
    if (!names_available()) return;
    LocalName& slot = local_slot(id);
    if (slot.entry != nullptr && slot.id == id) {
        if (!slot.in_use) return;
        if (g_share_names && kept_idle() < keep_limit()) {  // see assign_share_names
            // Kept published; dropped under pressure or at exit.
            pg_atomic_write_u64(&slot.entry->since, 0);
            slot.in_use = false;
            follow_pressure();
            return;
        }
        slot.entry = nullptr;
    }
    remove_shared(id);
}

void names_drop_idle() {
    if (names_available()) drop_idle_names();
}

bool names_lookup(int pid, const LockId& id, char* name, int* len, TimestampTz* since, Oid* role) {
    if (!names_available()) return false;
    const Place at = locate(pid, id);
    LWLockAcquire(at.lock, LW_SHARED);
    bool found = false;
    auto* e = static_cast<NameEntry*>(
        hash_search_with_hash_value(g_table, &at.key, at.hash, HASH_FIND, &found));
    if (e != nullptr) {
        memcpy(name, e->name, e->len);
        *len = e->len;
        *role = e->role;
        *since = static_cast<TimestampTz>(pg_atomic_read_u64(&e->since));
    }
    LWLockRelease(at.lock);
    return e != nullptr;
}

}  // namespace pglocks
