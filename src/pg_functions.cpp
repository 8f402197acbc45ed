// The SQL-callable lock functions: pglocks_acquire, pglocks_release, pglocks_release_all,
// pglocks_with_lock and pglocks_held, in the text, bigint and integer-pair key forms.
// Pure C++ first: it refuses to follow postgres.h.
#include "holds_registry.hpp"

#include "pg_functions.hpp"
#include "pg_holds.hpp"
#include "pg_srf.hpp"

extern "C" {
#include "access/xact.h"
#include "catalog/pg_type.h"
#include "common/hashfn.h"
#include "executor/spi.h"
#include "funcapi.h"
#include "miscadmin.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/plancache.h"
#include "utils/timestamp.h"
#include "utils/tuplestore.h"
}

namespace pglocks {

bool bool_arg(FunctionCallInfo fcinfo, int argno, const char* name) {
    require_not_null(fcinfo, argno, name);
    return PG_GETARG_BOOL(argno);
}

int timeout_arg(FunctionCallInfo fcinfo, int argno, bool wait) {
    if (PG_ARGISNULL(argno)) return -1;
    const Interval* iv = PG_GETARG_INTERVAL_P(argno);
    const Timeout t = timeout_from_interval(iv->month, iv->day, iv->time);
    if (t.kind == Timeout::Negative)
        ereport(ERROR,
                (errcode(ERRCODE_INVALID_PARAMETER_VALUE), errmsg("timeout must not be negative")));
    if (!wait)
        ereport(ERROR, (errcode(ERRCODE_INVALID_PARAMETER_VALUE),
                        errmsg("timeout cannot be combined with wait => false"),
                        errhint("Use wait => false alone to try once, or a timeout to wait "
                                "at most that long.")));
    return t.kind == Timeout::Unlimited ? -1 : t.ms;
}

Scope scope_arg(FunctionCallInfo fcinfo, int argno) {
    require_not_null(fcinfo, argno, "scope");
    const text* t = PG_GETARG_TEXT_PP(argno);
    const std::string_view given(VARDATA_ANY(t), static_cast<size_t>(VARSIZE_ANY_EXHDR(t)));
    // The default, spelled as the install script spells it, on every call of a loop.
    if (given == "session") return Scope::Session;
    Scope scope;
    if (!parse_scope(given, &scope))
        ereport(ERROR, (errcode(ERRCODE_INVALID_PARAMETER_VALUE),
                        errmsg("invalid pglocks scope \"%s\"", text_to_cstring(t)),
                        errhint("Valid scopes are \"session\" and \"transaction\".")));
    return scope;
}

void read_acquire_options(FunctionCallInfo fcinfo, int arg, AcquireRequest* req) {
    req->key.id.shared = bool_arg(fcinfo, arg, "shared");
    req->wait = bool_arg(fcinfo, arg + 1, "wait");
    req->timeout_ms = timeout_arg(fcinfo, arg + 2, req->wait);
    if (!req->wait) req->timeout_ms = 0;
    req->scope = scope_arg(fcinfo, arg + 3);
    // 1.0 and 1.1 declare no reentrant argument: a library newer than the installed SQL
    // keeps their behaviour.
    req->reentrant = PG_NARGS() > arg + 4 ? bool_arg(fcinfo, arg + 4, "reentrant") : true;
}

namespace {

// (key..., shared, wait, timeout, scope)
Datum acquire_call(FunctionCallInfo fcinfo, KeyReader read_key) {
    AcquireRequest req;
    const int arg = read_key(fcinfo, &req.key);
    read_acquire_options(fcinfo, arg, &req);
    return BoolGetDatum(acquire(req) != 0);
}

// (key..., shared)
Datum release_call(FunctionCallInfo fcinfo, KeyReader read_key) {
    KeyArg key;
    const int arg = read_key(fcinfo, &key);
    key.id.shared = bool_arg(fcinfo, arg, "shared");
    return BoolGetDatum(release(key.id));
}

// Plans of recent single-statement commands, so that a job run again and again under
// pglocks_with_lock is planned once per session, like a prepared statement (from its
// second run on). The
// plan cache revalidates them (schema changes, search_path) as it does any saved plan;
// privileges are checked at each execution. Commands of several statements are parsed one
// statement at a time as they run, so a later statement may use what an earlier one made.
//
// A plan runs while the command runs, and the command may itself call pglocks_with_lock with
// other texts: an entry whose plan is running is never evicted. Calls nest strictly, so the
// entries in use form a stack; an error unwinds through SPI without passing back here, so
// the (sub)transaction abort callbacks pop the uses of the calls it ended.
constexpr int kCachedCommands = 16;
struct CachedCommand {
    char* text;
    int nargs;  // parameters $1 … $nargs, all of type argtype
    Oid argtype;
    SPIPlanPtr plan;
    uint64 last_used;
    int in_use;  // running calls of this plan
};
CachedCommand g_commands[kCachedCommands];
uint64 g_command_clock = 0;

// Deeper nesting runs without a cached plan.
constexpr int kMaxPlanUses = 64;
struct PlanUse {
    CachedCommand* command;
    SubTransactionId subxact;
};
PlanUse g_plan_uses[kMaxPlanUses];
int g_plan_use_count = 0;

// Returns the use's place on the stack, or -1 when the stack is full.
int begin_plan_use(CachedCommand* c) {
    if (g_plan_use_count == kMaxPlanUses) return -1;
    g_plan_uses[g_plan_use_count] = PlanUse{c, GetCurrentSubTransactionId()};
    c->in_use++;
    return g_plan_use_count++;
}

void end_plan_use() { g_plan_uses[--g_plan_use_count].command->in_use--; }

// Ends the use at `place` and any left above it by nested calls.
void end_plan_uses_to(int place) {
    while (g_plan_use_count > place) end_plan_use();
}

// Ends the uses of calls that ran in subtransaction `from` or later (all of them for
// InvalidSubTransactionId): their error ended them without returning.
void end_plan_uses_from(SubTransactionId from) {
    while (g_plan_use_count > 0 && g_plan_uses[g_plan_use_count - 1].subxact >= from)
        end_plan_use();
}

// Whether this transaction is a block the client opened with BEGIN or START TRANSACTION, as
// the utility hook saw it. IsTransactionBlock() cannot tell: it is true as well in an
// implicit block (several statements sent in one query string, committed together after
// the last) and in any subtransaction (a PL/pgSQL block with an EXCEPTION clause), whose
// top-level transaction may be an autocommit statement's. Unknown counts as no: a library
// loaded inside a block (without the preload) did not see its BEGIN, and a chained
// transaction (COMMIT AND CHAIN) has none; there the lock is kept until commit, which is
// never less safe.
bool g_explicit_block = false;
ProcessUtility_hook_type g_prev_utility = nullptr;

void utility_hook(PGLOCKS_UTILITY_PARAMS) {
    // Plain data only in this frame: the statement may raise an error through it. The tree
    // is read before the statement runs: a transaction statement may free it.
    const Node* tree = pstmt->utilityStmt;
    bool begins = false;
    if (tree != nullptr && IsA(tree, TransactionStmt)) {
        const auto* stmt = reinterpret_cast<const TransactionStmt*>(tree);
        begins = stmt->kind == TRANS_STMT_BEGIN || stmt->kind == TRANS_STMT_START;
    }
    if (g_prev_utility != nullptr)
        g_prev_utility(PGLOCKS_UTILITY_ARGS);
    else
        standard_ProcessUtility(PGLOCKS_UTILITY_ARGS);
    if (begins && IsTransactionBlock()) g_explicit_block = true;
}

void plan_xact_callback(XactEvent event, void*) {
    if (event == XACT_EVENT_ABORT || event == XACT_EVENT_PARALLEL_ABORT)
        end_plan_uses_from(InvalidSubTransactionId);
    if (event == XACT_EVENT_ABORT || event == XACT_EVENT_COMMIT || event == XACT_EVENT_PREPARE)
        g_explicit_block = false;
}

void plan_subxact_callback(SubXactEvent event, SubTransactionId my_subid, SubTransactionId, void*) {
    if (event == SUBXACT_EVENT_ABORT_SUB) end_plan_uses_from(my_subid);
}

// Whether an executor holds the plan's generic plan: the counts above say it cannot be, and
// this checks it from the plan cache's own reference counts before a plan is freed (a plan
// source holds one reference to its generic plan, each execution one more). It sees generic
// plans only (a command with parameters runs custom plans for its first executions): the
// in_use counts are the guard, this a second look.
bool plan_running(SPIPlanPtr plan) {
    ListCell* lc;
    foreach (lc, SPI_plan_get_plan_sources(plan)) {
        const auto* source = static_cast<const CachedPlanSource*>(lfirst(lc));
        if (source->gplan != nullptr && source->gplan->refcount > 1) return true;
    }
    return false;
}

// Called inside the SPI connection. Returns nullptr for commands that are not cached; else
// the plan, in use until end_plan_uses_to(*use).
SPIPlanPtr command_plan(const char* command, int nargs, Oid argtype, int* use) {
    CachedCommand* victim = nullptr;
    for (CachedCommand& c : g_commands) {
        if (c.text != nullptr && c.nargs == nargs && c.argtype == argtype &&
            strcmp(c.text, command) == 0) {
            *use = begin_plan_use(&c);
            if (*use < 0) return nullptr;
            c.last_used = ++g_command_clock;
            return c.plan;
        }
        if (c.in_use > 0) continue;
        if (victim == nullptr || c.text == nullptr ||
            (victim->text != nullptr && c.last_used < victim->last_used))
            victim = &c;
    }
    if (victim == nullptr || g_plan_use_count == kMaxPlanUses) return nullptr;  // all running
    // Only a text seen before is worth a saved plan: a command that differs on every call
    // (a key spelled into it) is cheaper to run with SPI_execute than to plan, save and
    // evict. Remember recent texts by hash.
    static uint32 seen[64];
    const uint32 h = hash_bytes(reinterpret_cast<const unsigned char*>(command),
                                static_cast<int>(strlen(command)));
    uint32& mark = seen[h % 64];
    if (mark != h) {
        mark = h;
        return nullptr;
    }
    List* statements = compat::raw_parse(command);
    if (list_length(statements) != 1) return nullptr;
    Oid* argtypes = static_cast<Oid*>(palloc(sizeof(Oid) * (nargs > 0 ? nargs : 1)));
    for (int i = 0; i < nargs; i++) argtypes[i] = argtype;
    SPIPlanPtr plan = SPI_prepare(command, nargs, argtypes);
    if (plan == nullptr) return nullptr;          // SPI_execute reports the problem
    if (SPI_keepplan(plan) != 0) return nullptr;  // SPI_execute runs it instead
    if (victim->in_use > 0 || (victim->text != nullptr && plan_running(victim->plan))) {
#if defined(USE_ASSERT_CHECKING) || defined(PGLOCKS_DEBUG)
        if (victim->in_use == 0)
            elog(ERROR, "pglocks_with_lock would free the plan of a command that is running");
#endif
        // Keep the cache as it is (planning runs no volatile function, so no nested call
        // can have taken the victim, and the counts say none runs it).
        SPI_freeplan(plan);
        return nullptr;
    }
    char* text = MemoryContextStrdup(TopMemoryContext, command);
    if (victim->text != nullptr) {
        SPI_freeplan(victim->plan);
        pfree(victim->text);
    }
    *victim = CachedCommand{text, nargs, argtype, plan, ++g_command_clock, 0};
    *use = begin_plan_use(victim);
    return *use < 0 ? nullptr : plan;
}

// The parameters of a command: the elements of a one-dimensional array, each of the
// array's element type, NULL elements as SQL NULLs.
struct CommandParams {
    int count;
    Oid type;
    Datum* values;
    char* nulls;  // SPI's form: 'n' for NULL, ' ' otherwise
};

CommandParams read_params(FunctionCallInfo fcinfo, int argno) {
    CommandParams p{0, InvalidOid, nullptr, nullptr};
    require_not_null(fcinfo, argno, "params");
    ArrayType* arr = PG_GETARG_ARRAYTYPE_P(argno);
    if (ARR_NDIM(arr) > 1)
        ereport(ERROR, (errcode(ERRCODE_INVALID_PARAMETER_VALUE),
                        errmsg("params must be a one-dimensional array")));
    p.type = ARR_ELEMTYPE(arr);
    if (p.type == RECORDOID)
        ereport(ERROR, (errcode(ERRCODE_INVALID_PARAMETER_VALUE),
                        errmsg("params cannot be an array of anonymous records"),
                        errhint("Pass the fields as separate elements, or an array of a named "
                                "composite type.")));
    int16 typlen;
    bool typbyval;
    char typalign;
    get_typlenbyvalalign(p.type, &typlen, &typbyval, &typalign);
    bool* isnull;
    deconstruct_array(arr, p.type, typlen, typbyval, typalign, &p.values, &isnull, &p.count);
    if (p.count > PG_UINT16_MAX)
        ereport(ERROR, (errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
                        errmsg("params has %d elements; a command takes at most %d parameters",
                               p.count, PG_UINT16_MAX)));
    p.nulls = static_cast<char*>(palloc(p.count + 1));
    for (int i = 0; i < p.count; i++) p.nulls[i] = isnull[i] ? 'n' : ' ';
    p.nulls[p.count] = '\0';
    return p;
}

// (key..., command, [params,] shared, wait, timeout)
Datum with_lock_call(FunctionCallInfo fcinfo, KeyReader read_key, bool has_params) {
    AcquireRequest req;
    int arg = read_key(fcinfo, &req.key);
    require_not_null(fcinfo, arg, "command");
    char* command = text_to_cstring(PG_GETARG_TEXT_PP(arg));
    arg++;
    CommandParams params{0, InvalidOid, nullptr, nullptr};
    if (has_params) params = read_params(fcinfo, arg++);
    req.key.id.shared = bool_arg(fcinfo, arg, "shared");
    req.wait = bool_arg(fcinfo, arg + 1, "wait");
    req.timeout_ms = timeout_arg(fcinfo, arg + 2, req.wait);
    if (!req.wait) req.timeout_ms = 0;
    req.scope = Scope::Call;

    const uint64_t hold = acquire(req);
    if (hold == 0) return BoolGetDatum(false);
    // On an error the (sub)transaction aborts and the abort callback ends this call-scope
    // hold before the error reaches anyone who could act on it.
    if (SPI_connect() != SPI_OK_CONNECT)
        ereport(ERROR, (errcode(ERRCODE_INTERNAL_ERROR), errmsg("SPI_connect failed")));
    int use = -1;
    SPIPlanPtr plan = command_plan(command, params.count, params.type, &use);
    int rc;
    if (plan != nullptr) {
        rc = SPI_execute_plan(plan, params.values, params.nulls, false, 0);
        end_plan_uses_to(use);
    } else if (has_params) {
        Oid* types = static_cast<Oid*>(palloc(sizeof(Oid) * (params.count > 0 ? params.count : 1)));
        for (int i = 0; i < params.count; i++) types[i] = params.type;
        rc = SPI_execute_with_args(command, params.count, types, params.values, params.nulls, false,
                                   0);
    } else {
        rc = SPI_execute(command, false, 0);
    }
    if (rc == SPI_ERROR_TRANSACTION)
        ereport(ERROR, (errcode(ERRCODE_INVALID_TRANSACTION_TERMINATION),
                        errmsg("pglocks_with_lock cannot run transaction control commands"),
                        errhint("The command runs inside the caller's transaction. To hold a lock "
                                "until commit, use pglocks_acquire(..., scope => "
                                "'transaction').")));
    if (rc == SPI_ERROR_COPY)
        ereport(ERROR, (errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
                        errmsg("pglocks_with_lock cannot run COPY to or from the client")));
    if (rc < 0)
        ereport(ERROR, (errcode(ERRCODE_INTERNAL_ERROR),
                        errmsg("pglocks_with_lock could not run its command: %s",
                               SPI_result_code_string(rc))));
    SPI_finish();
    // Outside a transaction block the client opened, the transaction commits when the
    // statement (or the query string, or the enclosing autocommit statement of a
    // subtransaction) ends, not before; releasing before that commit would let the next
    // holder read what the command read, not what it wrote. The hold then ends from the
    // commit callback instead, as a lock/work/unlock sequence in autocommit mode would. In a
    // block the client opened, it chose when to commit, and the lock ends with the call, as
    // documented.
    if (g_explicit_block && IsTransactionBlock())
        release_hold(req.key.id, hold);
    else
        note_kept_call_hold();
    return BoolGetDatum(true);
}

}  // namespace
}  // namespace pglocks

using namespace pglocks;

namespace pglocks {
void register_with_lock_callbacks() {
    RegisterXactCallback(plan_xact_callback, nullptr);
    RegisterSubXactCallback(plan_subxact_callback, nullptr);
    g_prev_utility = ProcessUtility_hook;
    ProcessUtility_hook = utility_hook;
}
}  // namespace pglocks

PGLOCKS_FUNCTION(pglocks_acquire_text) { return acquire_call(fcinfo, read_text_key); }
PGLOCKS_FUNCTION(pglocks_acquire_bigint) { return acquire_call(fcinfo, read_bigint_key); }
PGLOCKS_FUNCTION(pglocks_acquire_pair) { return acquire_call(fcinfo, read_pair_key); }

PGLOCKS_FUNCTION(pglocks_release_text) { return release_call(fcinfo, read_text_key); }
PGLOCKS_FUNCTION(pglocks_release_bigint) { return release_call(fcinfo, read_bigint_key); }
PGLOCKS_FUNCTION(pglocks_release_pair) { return release_call(fcinfo, read_pair_key); }

PGLOCKS_FUNCTION(pglocks_with_lock_text) { return with_lock_call(fcinfo, read_text_key, false); }
PGLOCKS_FUNCTION(pglocks_with_lock_bigint) {
    return with_lock_call(fcinfo, read_bigint_key, false);
}
PGLOCKS_FUNCTION(pglocks_with_lock_pair) { return with_lock_call(fcinfo, read_pair_key, false); }
PGLOCKS_FUNCTION(pglocks_with_lock_params_text) {
    return with_lock_call(fcinfo, read_text_key, true);
}
PGLOCKS_FUNCTION(pglocks_with_lock_params_bigint) {
    return with_lock_call(fcinfo, read_bigint_key, true);
}
PGLOCKS_FUNCTION(pglocks_with_lock_params_pair) {
    return with_lock_call(fcinfo, read_pair_key, true);
}

PGLOCKS_FUNCTION(pglocks_release_all) { return Int64GetDatum(static_cast<int64>(release_all())); }

// pglocks_held()'s columns, as the install scripts declare them.
enum HeldColumn {
    kHeldKey,
    kHeldLockKey,
    kHeldShared,
    kHeldScope,
    kHeldHolds,
    kHeldAcquiredAt,
    kHeldColumns_1_0  // 1.0 and 1.1
};

PGLOCKS_FUNCTION(pglocks_held) {
    Tuplestorestate* store;
    TupleDesc desc;
    begin_srf(fcinfo, &store, &desc, kHeldColumns_1_0, kHeldColumns_1_0);

    reconcile();
    const HoldsRegistry& reg = registry();
    const size_t capacity = reg.held_row_count();
    auto* rows = static_cast<HeldRow*>(palloc(sizeof(HeldRow) * (capacity > 0 ? capacity : 1)));
    const size_t n = reg.held_rows(rows, capacity);

    for (size_t i = 0; i < n; i++) {
        CHECK_FOR_INTERRUPTS();
        const HeldRow& r = rows[i];
        Datum values[kHeldColumns_1_0];
        bool nulls[kHeldColumns_1_0] = {};
        if (r.has_name)
            values[kHeldKey] =
                PointerGetDatum(cstring_to_text_with_len(r.name, static_cast<int>(r.name_len)));
        else if (r.id.form == KeyForm::Bigint)
            values[kHeldKey] = CStringGetTextDatum(psprintf(INT64_FORMAT, r.id.bigint()));
        else
            values[kHeldKey] = CStringGetTextDatum(psprintf("%d,%d", r.id.key1(), r.id.key2()));
        if (r.id.form == KeyForm::Bigint)
            values[kHeldLockKey] = Int64GetDatum(r.id.bigint());
        else
            nulls[kHeldLockKey] = true;
        values[kHeldShared] = BoolGetDatum(r.id.shared);
        values[kHeldScope] = CStringGetTextDatum(scope_name(r.scope));
        values[kHeldHolds] = Int32GetDatum(r.holds);
        values[kHeldAcquiredAt] = TimestampTzGetDatum(static_cast<TimestampTz>(r.acquired_at));
        tuplestore_putvalues(store, desc, values, nulls);
    }
    return static_cast<Datum>(0);
}
