// pglocks_locks_data(), behind the pglocks_locks view: every advisory lock of the current
// database, granted or awaited, from every session, with the text key where it is known
// (this session's own registry; other sessions' through the shared name registry), the
// holder's application_name, since when it is held or awaited, and who blocks a waiter.
//
// It reads the server's lock table and backend status directly, never through views that
// would take heavyweight locks on shared catalogs: it must keep working when the lock
// table is full, which is exactly when somebody wants to look.
// Pure C++ first: it refuses to follow postgres.h.
#include "holds_registry.hpp"

#include "pg_holds.hpp"
#include "pg_names.hpp"
#include "pg_srf.hpp"

extern "C" {
#include "catalog/pg_authid_d.h"
#include "funcapi.h"
#include "miscadmin.h"
#include "storage/lock.h"
#include "storage/proc.h"
#include "utils/acl.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/fmgrprotos.h"
#include "utils/timestamp.h"
#include "utils/tuplestore.h"
}

using namespace pglocks;

namespace {

constexpr int kColumns = 11;

// What the view needs of one backend, copied out of the backend-status snapshot: that
// snapshot belongs to the statistics subsystem, which frees it whenever the transaction's
// statistics are cleared (pg_stat_clear_snapshot()), so no pointer into it outlives this call.
struct BackendInfo {
    int pid;
    const char* application_name;  // palloc'd copy; nullptr when empty
};

struct Backends {
    BackendInfo* items;  // sorted by pid
    int count;
    int8 read_all_stats;  // -1: not looked up yet
    Oid last_role;        // the last role decided on, and whether its names are visible
    bool last_visible;
};

int compare_pid(const void* a, const void* b) {
    const int x = static_cast<const BackendInfo*>(a)->pid;
    const int y = static_cast<const BackendInfo*>(b)->pid;
    return x < y ? -1 : x > y ? 1 : 0;
}

// One pass over the snapshot per call, rather than one scan per row.
Backends collect_backends() {
    Backends b;
    const int n = pgstat_fetch_stat_numbackends();
    b.items = static_cast<BackendInfo*>(palloc(sizeof(BackendInfo) * (n > 0 ? n : 1)));
    b.count = 0;
    b.read_all_stats = -1;
    b.last_role = InvalidOid;
    b.last_visible = false;
    for (int i = 1; i <= n; i++) {
        LocalPgBackendStatus* local = compat::local_backend_status(i);
        if (local == nullptr || local->backendStatus.st_procpid <= 0) continue;
        const PgBackendStatus& st = local->backendStatus;
        BackendInfo& info = b.items[b.count++];
        info.pid = st.st_procpid;
        info.application_name =
            st.st_appname != nullptr && st.st_appname[0] != '\0' ? pstrdup(st.st_appname) : nullptr;
    }
    qsort(b.items, b.count, sizeof(BackendInfo), compare_pid);
    return b;
}

BackendInfo* find_backend(const Backends& b, int pid) {
    BackendInfo key;
    key.pid = pid;
    return static_cast<BackendInfo*>(
        bsearch(&key, b.items, b.count, sizeof(BackendInfo), compare_pid));
}

// A session's lock names are shown as pg_stat_activity shows its queries: to roles with the
// privileges of the session's user, and to members of pg_read_all_stats. The role is the
// one the name table recorded with the name, not the backend-status snapshot's: that
// snapshot stays as it was until the transaction ends, while the locks are read anew on
// every call, so a session started since (or a pid used again) would be judged by what the
// snapshot has for that pid. The server caches role memberships, and the usual cases (one's
// own sessions) need no lookup at all.
bool may_read_all_stats(Backends* b) {
    if (b->read_all_stats < 0)
        b->read_all_stats = has_privs_of_role(GetUserId(), PGLOCKS_ROLE_READ_ALL_STATS) ? 1 : 0;
    return b->read_all_stats == 1;
}

bool names_visible(Backends* b, Oid role) {
    if (role != b->last_role || !OidIsValid(role)) {
        const Oid me = GetUserId();
        b->last_visible = role == me || (OidIsValid(role) && has_privs_of_role(me, role)) ||
                          may_read_all_stats(b);
        b->last_role = role;
    }
    return b->last_visible;
}

}  // namespace

PGLOCKS_FUNCTION(pglocks_locks_data) {
    Tuplestorestate* store;
    TupleDesc desc;
    begin_srf(fcinfo, &store, &desc, kColumns, kColumns);
    reconcile();

    LockData* data = GetLockStatusData();
    Backends backends = collect_backends();
    char name[kMaxNameBytes > kSharedNameBytes ? kMaxNameBytes : kSharedNameBytes];
    for (int i = 0; i < data->nelements; i++) {
        const LockInstanceData* inst = &data->locks[i];
        const LOCKTAG& tag = inst->locktag;
        if (tag.locktag_type != LOCKTAG_ADVISORY || tag.locktag_field1 != MyDatabaseId) continue;
        if (tag.locktag_field4 != 1 && tag.locktag_field4 != 2) continue;
        CHECK_FOR_INTERRUPTS();
        const KeyForm form = tag.locktag_field4 == 1 ? KeyForm::Bigint : KeyForm::Pair;

        for (const LOCKMODE mode : {ShareLock, ExclusiveLock}) {
            const bool granted = (inst->holdMask & LOCKBIT_ON(mode)) != 0;
            const bool waiting = inst->waitLockMode == mode;
            if (!granted && !waiting) continue;
            const LockId id{tag.locktag_field2, tag.locktag_field3, form, mode == ShareLock};
            BackendInfo* backend = find_backend(backends, inst->pid);

            int name_len = -1;
            TimestampTz held_since = 0;
            bool have_since = false;
            bool in_table = false;  // another session's name table entry was found
            if (granted && inst->pid == MyProcPid) {
                const Entry* e = registry().find(id);
                if (e != nullptr && !e->holds.empty()) {
                    held_since = e->holds.front().acquired_at;
                    have_since = true;
                    if (e->has_name) {
                        name_len = static_cast<int>(e->name.size());
                        memcpy(name, e->name.data(), name_len);
                    }
                }
            } else if (Oid role = InvalidOid;
                       names_lookup(inst->pid, id, name, &name_len, &held_since, &role)) {
                // 0: a name kept after pglocks' hold ended; the lock, if held, is held again.
                in_table = true;
                have_since = granted && held_since != 0;
                if (!names_visible(&backends, role)) name_len = -1;
            }

            Datum values[kColumns];
            bool nulls[kColumns];
            memset(nulls, 0, sizeof(nulls));
            values[0] = Int32GetDatum(inst->pid);
            if (backend != nullptr && backend->application_name != nullptr)
                values[1] = CStringGetTextDatum(backend->application_name);
            else
                nulls[1] = true;
            if (name_len >= 0)
                values[2] = PointerGetDatum(cstring_to_text_with_len(name, name_len));
            else if (form == KeyForm::Bigint)
                values[2] = CStringGetTextDatum(psprintf(INT64_FORMAT, id.bigint()));
            else
                values[2] = CStringGetTextDatum(psprintf("%d,%d", id.key1(), id.key2()));
            if (form == KeyForm::Bigint) {
                values[3] = Int64GetDatum(id.bigint());
                nulls[4] = nulls[5] = true;
            } else {
                nulls[3] = true;
                values[4] = Int32GetDatum(id.key1());
                values[5] = Int32GetDatum(id.key2());
            }
            values[6] = BoolGetDatum(id.shared);
            values[7] = BoolGetDatum(granted);
            values[8] = TimestampTzGetDatum(held_since);
            nulls[8] = !(granted && have_since);
            TimestampTz wait_start = compat::lock_wait_start(inst);
            // Servers before 14 do not record when a wait began; a pglocks waiter's
            // published name does.
            if (!granted && wait_start == 0 && in_table) wait_start = held_since;
            values[9] = TimestampTzGetDatum(wait_start);
            nulls[9] = granted || wait_start == 0;
            if (granted)
                nulls[10] = true;
            else
                values[10] = DirectFunctionCall1(pg_blocking_pids, Int32GetDatum(inst->pid));
            tuplestore_putvalues(store, desc, values, nulls);
        }
    }
    return static_cast<Datum>(0);
}
