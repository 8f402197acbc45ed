// Several locks at once: pglocks_acquire_all(keys[], ...) and pglocks_release_all(keys[]).
// The locks are taken in one canonical order — ascending lock key, duplicates once — so
// callers that use it never deadlock one another, and all or nothing: when a try fails, the
// time runs out or an error ends the wait, the locks this call took are released again.
// The timeout covers the whole set. Until every lock is held, the locks taken are call-scope
// holds, which the abort of the (sub)transaction ends when an error ends the call: no error
// path calls the lock manager while the error is in flight.
#include "pg_guards.hpp"
#include "pg_holds.hpp"

extern "C" {
#include "catalog/pg_type.h"
#include "miscadmin.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/lsyscache.h"
#include "utils/timestamp.h"
}

namespace pglocks {
namespace {

int compare_keys(const void* a, const void* b) {
    const int64_t x = static_cast<const KeyArg*>(a)->id.bigint();
    const int64_t y = static_cast<const KeyArg*>(b)->id.bigint();
    return x < y ? -1 : x > y ? 1 : 0;
}

// The array's keys in canonical order without duplicates; *count receives their number.
KeyArg* sorted_keys(FunctionCallInfo fcinfo, bool text_keys, bool shared, int* count) {
    require_not_null(fcinfo, 0, "keys");
    ArrayType* arr = PG_GETARG_ARRAYTYPE_P(0);
    Datum* elems;
    bool* nulls;
    int n;
    if (text_keys)
        deconstruct_array(arr, TEXTOID, -1, false, TYPALIGN_INT, &elems, &nulls, &n);
    else
        deconstruct_array(arr, INT8OID, 8, FLOAT8PASSBYVAL, TYPALIGN_DOUBLE, &elems, &nulls, &n);
    auto* keys = static_cast<KeyArg*>(palloc(sizeof(KeyArg) * (n > 0 ? n : 1)));
    for (int i = 0; i < n; i++) {
        CHECK_FOR_INTERRUPTS();
        if (nulls[i])
            ereport(ERROR, (errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
                            errmsg("argument \"keys\" of %s must not contain nulls",
                                   get_func_name(fcinfo->flinfo->fn_oid))));
        if (text_keys) {
            key_from_text(DatumGetTextPP(elems[i]), &keys[i]);
        } else {
            keys[i] =
                KeyArg{LockId::from_bigint(DatumGetInt64(elems[i]), false), nullptr, 0, false};
        }
        keys[i].id.shared = shared;
    }
    qsort(keys, n, sizeof(KeyArg), compare_keys);
    int m = 0;
    for (int i = 0; i < n; i++)
        if (m == 0 || !(keys[m - 1].id == keys[i].id)) keys[m++] = keys[i];
    *count = m;
    return keys;
}

void release_taken(const KeyArg* keys, const uint64_t* holds, int taken) {
    for (int i = taken - 1; i >= 0; i--) {
        CHECK_FOR_INTERRUPTS();
        release_hold(keys[i].id, holds[i]);
    }
}

// (keys[], shared, wait, timeout, scope)
Datum acquire_all_call(FunctionCallInfo fcinfo, bool text_keys) {
    AcquireRequest opts;
    read_acquire_options(fcinfo, 1, &opts);
    int n;
    KeyArg* keys = sorted_keys(fcinfo, text_keys, opts.key.id.shared, &n);
    auto* holds = static_cast<uint64_t*>(palloc(sizeof(uint64_t) * (n > 0 ? n : 1)));
    const bool timed = opts.wait && opts.timeout_ms > 0;
    const TimestampTz deadline =
        timed ? TimestampTzPlusMilliseconds(GetCurrentTimestamp(), opts.timeout_ms) : 0;

    // The standby guard fires for an empty set too, which takes nothing: on a standby every
    // acquire form fails alike, whatever it is asked to take.
    check_standby();
    // The guards, for the scope the holds end up with, before any lock is taken.
    for (int i = 0; i < n; i++) {
        CHECK_FOR_INTERRUPTS();
        AcquireRequest req = opts;
        req.key = keys[i];
        check_acquire_guards(req);
    }

    int taken = 0;
    for (int i = 0; i < n; i++) {
        CHECK_FOR_INTERRUPTS();
        AcquireRequest req = opts;
        req.key = keys[i];
        req.scope = Scope::Call;
        if (timed) {
            const long left_ms = (deadline - GetCurrentTimestamp() + 999) / 1000;  // round up
            req.timeout_ms = left_ms > 0 ? static_cast<int>(left_ms) : 0;
            // The time ran out between keys: one last try, which is the set's timeout when
            // it finds the lock taken.
            req.deadline_passed = left_ms <= 0;
        }
        const uint64_t hold = acquire(req);
        if (hold == 0) break;
        holds[taken++] = hold;
    }

    if (taken < n) {
        release_taken(keys, holds, taken);
        return BoolGetDatum(false);
    }
    for (int i = 0; i < n; i++) set_hold_scope(keys[i].id, holds[i], opts.scope);
    return BoolGetDatum(true);
}

// (keys[], shared)
Datum release_keys_call(FunctionCallInfo fcinfo, bool text_keys) {
    require_not_null(fcinfo, 1, "shared");
    int n;
    KeyArg* keys = sorted_keys(fcinfo, text_keys, PG_GETARG_BOOL(1), &n);
    int64 released = 0;
    for (int i = 0; i < n; i++) {
        CHECK_FOR_INTERRUPTS();
        if (release(keys[i].id)) released++;
    }
    PG_RETURN_INT64(released);
}

}  // namespace
}  // namespace pglocks

using namespace pglocks;

PGLOCKS_FUNCTION(pglocks_acquire_all_text) { return acquire_all_call(fcinfo, true); }
PGLOCKS_FUNCTION(pglocks_acquire_all_bigint) { return acquire_all_call(fcinfo, false); }
PGLOCKS_FUNCTION(pglocks_release_all_text) { return release_keys_call(fcinfo, true); }
PGLOCKS_FUNCTION(pglocks_release_all_bigint) { return release_keys_call(fcinfo, false); }
