// Set-returning functions in materialize mode, on every supported server version.
#include "pg_srf.hpp"

extern "C" {
#include "funcapi.h"
#include "miscadmin.h"
#include "utils/memutils.h"
}

namespace pglocks {

void materialize_result(FunctionCallInfo fcinfo, Tuplestorestate** store, TupleDesc* desc) {
#if PG_VERSION_NUM >= 150000
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

}  // namespace pglocks
