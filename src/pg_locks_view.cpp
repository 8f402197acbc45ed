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
#include "funcapi.h"
#include "miscadmin.h"
#include "storage/lock.h"
#include "storage/proc.h"
#include "utils/array.h"
#include "utils/backend_status.h"
#include "utils/builtins.h"
#include "utils/fmgrprotos.h"
#include "utils/timestamp.h"
#include "utils/tuplestore.h"
}

using namespace pglocks;

namespace {

constexpr int kColumns = 11;

const char* application_name_of(int pid) {
    // Rows come grouped by lock, not by backend; one entry of memory still saves most scans.
    static int last_pid = 0;
    static const char* last_name = nullptr;
    static LocalTransactionId last_lxid = InvalidLocalTransactionId;
    if (pid == last_pid && last_lxid == MyProc->lxid) return last_name;
    last_pid = pid;
    last_lxid = MyProc->lxid;
    last_name = nullptr;
    const int n = pgstat_fetch_stat_numbackends();
    for (int i = 1; i <= n; i++) {
#if PG_VERSION_NUM >= 160000
        LocalPgBackendStatus* local = pgstat_get_local_beentry_by_index(i);
#else
        LocalPgBackendStatus* local = pgstat_fetch_stat_local_beentry(i);
#endif
        if (local != nullptr && local->backendStatus.st_procpid == pid) {
            last_name = local->backendStatus.st_appname;
            break;
        }
    }
    return last_name;
}

}  // namespace

PGLOCKS_FUNCTION(pglocks_locks_data) {
    Tuplestorestate* store;
    TupleDesc desc;
    materialize_result(fcinfo, &store, &desc);
    reconcile();

    LockData* data = GetLockStatusData();
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

            int name_len = -1;
            TimestampTz held_since = 0;
            bool have_since = false;
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
            } else if (names_lookup(inst->pid, id, name, &name_len, &held_since)) {
                have_since = granted;
            }

            Datum values[kColumns];
            bool nulls[kColumns];
            memset(nulls, 0, sizeof(nulls));
            values[0] = Int32GetDatum(inst->pid);
            const char* app = application_name_of(inst->pid);
            if (app != nullptr)
                values[1] = CStringGetTextDatum(app);
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
#if PG_VERSION_NUM >= 140000
            values[9] = TimestampTzGetDatum(inst->waitStart);
            nulls[9] = granted || inst->waitStart == 0;
#else
            nulls[9] = true;
#endif
            if (granted)
                nulls[10] = true;
            else
                values[10] = DirectFunctionCall1(pg_blocking_pids, Int32GetDatum(inst->pid));
            tuplestore_putvalues(store, desc, values, nulls);
        }
    }
    return static_cast<Datum>(0);
}
