// Every difference between the PostgreSQL majors pglocks supports (13 to 19), in one place:
// the rest of src/ reads as if there were one PostgreSQL. Version tests (PG_VERSION_NUM)
// belong here and in pg_compat.cpp only.
#pragma once

extern "C" {
#include "postgres.h"

#include "access/tupdesc.h"
#include "access/xlogdefs.h"
#include "fmgr.h"
#include "nodes/pg_list.h"
#include "storage/lock.h"
#include "storage/lockdefs.h"
#include "tcop/utility.h"
#include "utils/hsearch.h"
#include "utils/timestamp.h"
#include "utils/tuplestore.h"
#if PG_VERSION_NUM >= 160000
#include "varatt.h"  // VARDATA_ANY and friends left postgres.h in 16
#endif
#if PG_VERSION_NUM >= 140000
#include "utils/backend_status.h"
#else
#include "pgstat.h"
#endif
}

// The predefined role pg_read_all_stats (a "default role" before 14).
#if PG_VERSION_NUM >= 140000
#define PGLOCKS_ROLE_READ_ALL_STATS ROLE_PG_READ_ALL_STATS
#else
#define PGLOCKS_ROLE_READ_ALL_STATS DEFAULT_ROLE_READ_ALL_STATS
#endif

// The first subtransaction of the current transaction that gave a relation a new file
// (InvalidSubTransactionId: none did); 16 renamed relfilenodes relfilelocators.
#if PG_VERSION_NUM >= 160000
#define PGLOCKS_REL_FIRST_NEW_FILE_SUBID(rel) ((rel)->rd_firstRelfilelocatorSubid)
#else
#define PGLOCKS_REL_FIRST_NEW_FILE_SUBID(rel) ((rel)->rd_firstRelfilenodeSubid)
#endif

// The module's magic block; from 18 on it also names the library and its version.
#if PG_VERSION_NUM >= 180000
#define PGLOCKS_MODULE_MAGIC PG_MODULE_MAGIC_EXT(.name = "pglocks", .version = PGLOCKS_VERSION)
#else
#define PGLOCKS_MODULE_MAGIC PG_MODULE_MAGIC
#endif

// A ProcessUtility_hook's parameters, and the arguments that pass them on (14 added
// readOnlyTree).
#if PG_VERSION_NUM >= 140000
#define PGLOCKS_UTILITY_PARAMS                                                            \
    PlannedStmt *pstmt, const char *query_string, bool read_only_tree,                    \
        ProcessUtilityContext context, ParamListInfo params, QueryEnvironment *query_env, \
        DestReceiver *dest, QueryCompletion *qc
#define PGLOCKS_UTILITY_ARGS \
    pstmt, query_string, read_only_tree, context, params, query_env, dest, qc
#else
#define PGLOCKS_UTILITY_PARAMS                                                   \
    PlannedStmt *pstmt, const char *query_string, ProcessUtilityContext context, \
        ParamListInfo params, QueryEnvironment *query_env, DestReceiver *dest, QueryCompletion *qc
#define PGLOCKS_UTILITY_ARGS pstmt, query_string, context, params, query_env, dest, qc
#endif

struct LOCKTAG;
struct LockInstanceData;

namespace pglocks {
namespace compat {

// This backend's local transaction id (MyProc->lxid; MyProc->vxid.lxid from 17 on).
LocalTransactionId my_local_xid();

// Whether this backend holds the lock in exactly that mode (any owner, any count).
bool lock_held_by_me(const LOCKTAG* tag, LOCKMODE mode);

// LockAcquireExtended for a session-level count, returning the LOCALLOCK (18 added an
// argument, for logging lock failures, that pglocks leaves off).
LockAcquireResult lock_acquire_session(const LOCKTAG* tag, LOCKMODE mode, bool dont_wait,
                                       bool report_memory_error, LOCALLOCK** locallock);

// The timeline WAL is written on now.
TimeLineID wal_insert_timeline();

// The raw parse trees of a command string (the parser's default mode).
List* raw_parse(const char* command);

// Marks a prefix of custom settings as ours (unknown pglocks.* names become errors where
// the server supports it, warnings before 15).
void reserve_settings_prefix(const char* prefix);

// Runs `request` when the server asks extensions for their shared memory and LWLock
// tranches: the shmem_request_hook from 15 on, at once before (from _PG_init). Each part of
// pglocks that needs shared memory registers its own request.
void on_shmem_request(void (*request)());

// A shared-memory hash table of a fixed number of entries (ShmemInitHash; 19 dropped its
// separate initial size).
HTAB* shmem_init_hash(const char* name, long entries, HASHCTL* info, int flags);

// Entry `index` (1-based) of this transaction's snapshot of backend status, or nullptr.
LocalPgBackendStatus* local_backend_status(int index);

// When a waiter began waiting for a lock of the lock table's snapshot; 0 where the server
// does not record it (before 14).
TimestampTz lock_wait_start(const LockInstanceData* lock);

// Whether `pid` is an autovacuum worker (the flag moved from PGXACT to PGPROC in 14). Read
// without ProcArrayLock: a hint, as the lock manager's own test of it is.
bool pid_is_autovacuum(int pid);

// Sets up fcinfo's result of a set-returning function as a tuplestore (materialize mode)
// and returns it with its tuple descriptor.
void materialize_result(FunctionCallInfo fcinfo, Tuplestorestate** store, TupleDesc* desc);

}  // namespace compat
}  // namespace pglocks
