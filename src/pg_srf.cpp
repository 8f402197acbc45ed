// Set-returning functions: see pg_srf.hpp.
#include "pg_srf.hpp"

extern "C" {
#include "utils/lsyscache.h"
}

namespace pglocks {

int begin_srf(FunctionCallInfo fcinfo, Tuplestorestate** store, TupleDesc* desc, int min_columns,
              int max_columns) {
    compat::materialize_result(fcinfo, store, desc);
    const int natts = (*desc)->natts;
    if (natts < min_columns || natts > max_columns)
        ereport(ERROR, (errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
                        errmsg("%s declares %d result columns where the pglocks library "
                               "expects %s",
                               get_func_name(fcinfo->flinfo->fn_oid), natts,
                               min_columns == max_columns
                                   ? psprintf("%d", min_columns)
                                   : psprintf("%d to %d", min_columns, max_columns)),
                        errhint("Run ALTER EXTENSION pglocks UPDATE, or install the library "
                                "that matches the extension's version.")));
    return natts;
}

}  // namespace pglocks
