// CALL pglocks_acquire_detached(key, shared, timeout, INOUT acquired): a session hold taken
// while the backend holds no snapshot and no transaction id.
//
// A lock wait inside a statement keeps that statement's snapshot: while it lasts, VACUUM
// anywhere in the cluster keeps every row deleted after it began, and CREATE INDEX
// CONCURRENTLY run by the lock's holder waits for the waiter's snapshot, a deadlock. The
// procedure, called on its own (a non-atomic CALL), commits the CALL's transaction first and
// waits in a fresh one that takes no snapshot and writes nothing: the lock manager needs
// neither. The hold is a session hold, as pglocks_acquire's default.
#include "pg_guards.hpp"
#include "pg_holds.hpp"

extern "C" {
#include "access/htup_details.h"
#include "access/xact.h"
#include "executor/spi.h"
#include "funcapi.h"
#include "nodes/parsenodes.h"
}

namespace pglocks {
namespace {

// (key..., shared, timeout, INOUT acquired, reentrant): reentrant comes after acquired so
// that positional calls CALL pglocks_acquire_detached(key, shared, timeout, NULL) keep
// working.
Datum acquire_detached_call(FunctionCallInfo fcinfo, KeyReader read_key) {
    AcquireRequest req;
    const int arg = read_key(fcinfo, &req.key);
    req.key.id.shared = bool_arg(fcinfo, arg, "shared");
    req.wait = true;
    req.timeout_ms = timeout_arg(fcinfo, arg + 1, true);
    req.scope = Scope::Session;
    req.reentrant = PG_NARGS() > arg + 3 ? bool_arg(fcinfo, arg + 3, "reentrant") : true;

    // Statements sent in a pipeline (extended protocol, no Sync between them) share one
    // implicit transaction, which the commit would end with theirs: refused as
    // PreventInTransactionBlock refuses it, once a statement before the CALL has run in it
    // (from PostgreSQL 18 on, the CALL is then atomic too).
#ifdef XACT_FLAGS_PIPELINING
    if (MyXactFlags & XACT_FLAGS_PIPELINING)
        ereport(ERROR, (errcode(ERRCODE_ACTIVE_SQL_TRANSACTION),
                        errmsg("pglocks_acquire_detached cannot be executed within a pipeline"),
                        errdetail("It commits the transaction of its CALL, which the statements "
                                  "sent before it in the pipeline share."),
                        errhint("Send a Sync before the CALL (end the pipeline), or use "
                                "pglocks_acquire() inside the transaction.")));
#endif

    // A CALL is atomic inside a transaction block, from a function, or when the procedure
    // has SET clauses or SECURITY DEFINER; inside a subtransaction (a PL/pgSQL block with an
    // EXCEPTION clause) no commit is possible either.
    auto* call = reinterpret_cast<CallContext*>(fcinfo->context);
    if (call == nullptr || !IsA(call, CallContext) || call->atomic || IsSubTransaction())
        ereport(ERROR, (errcode(ERRCODE_ACTIVE_SQL_TRANSACTION),
                        errmsg("pglocks_acquire_detached cannot run inside a transaction block"),
                        errdetail("It commits the transaction of its CALL so that its wait "
                                  "holds no snapshot, which is possible only in a CALL that "
                                  "may commit: not in BEGIN ... COMMIT, a function, or a "
                                  "PL/pgSQL block with an EXCEPTION clause."),
                        errhint("CALL it on its own, outside BEGIN ... COMMIT and outside "
                                "functions; inside a transaction use pglocks_acquire().")));

    // A standby and pglocks.session_locks = deny refuse the lock whatever is held: checked
    // before the commit, so that the refusal leaves the caller's work uncommitted, rolled
    // back with the error. reentrant => false is checked after it, by the acquire: the
    // commit ends the transaction-scope holds the caller's block may have taken before.
    check_standby();
    AcquireRequest before_commit = req;
    before_commit.reentrant = true;
    check_acquire_guards(before_commit);

    // The result's descriptor first (catalog access), in the CALL's memory, which outlives
    // the commit: once the lock is held, nothing may fail before the caller learns of it.
    TupleDesc desc;
    if (get_call_result_type(fcinfo, nullptr, &desc) != TYPEFUNC_COMPOSITE || desc->natts != 1)
        ereport(ERROR, (errcode(ERRCODE_INTERNAL_ERROR),
                        errmsg("pglocks_acquire_detached must have one INOUT parameter")));
    desc = BlessTupleDesc(desc);

    // End the CALL's transaction, with its snapshot; the next one starts without any.
    // (Current releases start it in SPI_commit and make SPI_start_transaction a no-op;
    // older minor releases need the latter.)
    if (SPI_connect_ext(SPI_OPT_NONATOMIC) != SPI_OK_CONNECT)
        ereport(ERROR, (errcode(ERRCODE_INTERNAL_ERROR), errmsg("SPI_connect failed")));
    SPI_commit();
    SPI_start_transaction();
    SPI_finish();

    const bool acquired = acquire(req) != 0;

    Datum values[1] = {BoolGetDatum(acquired)};
    bool nulls[1] = {false};
    return HeapTupleGetDatum(heap_form_tuple(desc, values, nulls));
}

}  // namespace
}  // namespace pglocks

using namespace pglocks;

PGLOCKS_FUNCTION(pglocks_acquire_detached_text) {
    return acquire_detached_call(fcinfo, read_text_key);
}
PGLOCKS_FUNCTION(pglocks_acquire_detached_bigint) {
    return acquire_detached_call(fcinfo, read_bigint_key);
}
PGLOCKS_FUNCTION(pglocks_acquire_detached_pair) {
    return acquire_detached_call(fcinfo, read_pair_key);
}
