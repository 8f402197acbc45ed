// Implementations of pg_compat.hpp: each PostgreSQL version difference, once.
#include "pg_compat.hpp"

extern "C" {
#include "access/xlog.h"
#include "funcapi.h"
#include "miscadmin.h"
#include "parser/parser.h"
#include "storage/ipc.h"
#include "storage/lock.h"
#include "storage/proc.h"
#include "storage/procarray.h"
#include "storage/shmem.h"
#include "utils/guc.h"
#include "utils/memutils.h"
}

namespace pglocks {
namespace compat {

LocalTransactionId my_local_xid() {
#if PG_VERSION_NUM >= 170000
    return MyProc->vxid.lxid;
#else
    return MyProc->lxid;
#endif
}

bool lock_held_by_me(const LOCKTAG* tag, LOCKMODE mode) {
#if PG_VERSION_NUM >= 170000
    return LockHeldByMe(tag, mode, false);
#else
    return LockHeldByMe(tag, mode);
#endif
}

LockAcquireResult lock_acquire_session(const LOCKTAG* tag, LOCKMODE mode, bool dont_wait,
                                       bool report_memory_error, LOCALLOCK** locallock) {
#if PG_VERSION_NUM >= 180000
    return LockAcquireExtended(tag, mode, true, dont_wait, report_memory_error, locallock, false);
#else
    return LockAcquireExtended(tag, mode, true, dont_wait, report_memory_error, locallock);
#endif
}

TimeLineID wal_insert_timeline() {
#if PG_VERSION_NUM >= 150000
    return GetWALInsertionTimeLine();
#else
    return ThisTimeLineID;
#endif
}

List* raw_parse(const char* command) {
#if PG_VERSION_NUM >= 140000
    return raw_parser(command, RAW_PARSE_DEFAULT);
#else
    return raw_parser(command);
#endif
}

void reserve_settings_prefix(const char* prefix) {
#if PG_VERSION_NUM >= 150000
    MarkGUCPrefixReserved(prefix);
#else
    EmitWarningsOnPlaceholders(prefix);
#endif
}

#if PG_VERSION_NUM >= 150000
namespace {
shmem_request_hook_type g_prev_request = nullptr;
constexpr int kMaxRequests = 4;
void (*g_requests[kMaxRequests])() = {};
int g_request_count = 0;
void shmem_request() {
    if (g_prev_request) g_prev_request();
    for (int i = 0; i < g_request_count; i++) g_requests[i]();
}
}  // namespace
#endif

void on_shmem_request(void (*request)()) {
#if PG_VERSION_NUM >= 150000
    if (g_request_count == kMaxRequests) elog(ERROR, "pglocks: too many shared memory requests");
    g_requests[g_request_count++] = request;
    if (g_request_count == 1) {
        g_prev_request = shmem_request_hook;
        shmem_request_hook = shmem_request;
    }
#else
    request();
#endif
}

HTAB* shmem_init_hash(const char* name, long entries, HASHCTL* info, int flags) {
#if PG_VERSION_NUM >= 190000
    return ShmemInitHash(name, entries, info, flags);
#else
    return ShmemInitHash(name, entries, entries, info, flags);
#endif
}

LocalPgBackendStatus* local_backend_status(int index) {
#if PG_VERSION_NUM >= 160000
    return pgstat_get_local_beentry_by_index(index);
#else
    return pgstat_fetch_stat_local_beentry(index);
#endif
}

TimestampTz lock_wait_start(const LockInstanceData* lock) {
#if PG_VERSION_NUM >= 140000
    return lock->waitStart;
#else
    return 0;
#endif
}

bool pid_is_autovacuum(int pid) {
    PGPROC* proc = BackendPidGetProc(pid);
    if (proc == nullptr) return false;
#if PG_VERSION_NUM >= 140000
    return (proc->statusFlags & PROC_IS_AUTOVACUUM) != 0;
#else
    return (ProcGlobal->allPgXact[proc->pgprocno].vacuumFlags & PROC_IS_AUTOVACUUM) != 0;
#endif
}

// InitMaterializedSRF is in 16, and in 15 only from a minor release on (15.0 named it
// differently): 15 and older set the result up by hand, which works on every minor.
void materialize_result(FunctionCallInfo fcinfo, Tuplestorestate** store, TupleDesc* desc) {
#if PG_VERSION_NUM >= 160000
    InitMaterializedSRF(fcinfo, 0);
    auto* rsinfo = reinterpret_cast<ReturnSetInfo*>(fcinfo->resultinfo);
    *store = rsinfo->setResult;
    *desc = rsinfo->setDesc;
#else
    auto* rsinfo = reinterpret_cast<ReturnSetInfo*>(fcinfo->resultinfo);
    if (rsinfo == nullptr || !IsA(rsinfo, ReturnSetInfo) ||
        (rsinfo->allowedModes & SFRM_Materialize) == 0)
        ereport(ERROR, (errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
                        errmsg("materialize mode required, but it is not allowed in this "
                               "context")));
    TupleDesc d;
    if (get_call_result_type(fcinfo, nullptr, &d) != TYPEFUNC_COMPOSITE)
        ereport(ERROR, (errcode(ERRCODE_INTERNAL_ERROR), errmsg("return type must be a row type")));
    MemoryContext old = MemoryContextSwitchTo(rsinfo->econtext->ecxt_per_query_memory);
    *desc = CreateTupleDescCopy(d);
    *store = tuplestore_begin_heap(true, false, work_mem);
    MemoryContextSwitchTo(old);
    rsinfo->returnMode = SFRM_Materialize;
    rsinfo->setResult = *store;
    rsinfo->setDesc = *desc;
#endif
}

}  // namespace compat
}  // namespace pglocks
