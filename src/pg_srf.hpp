// Set-returning functions in materialize mode, on every supported server version.
#pragma once

#include "pg_boundary.hpp"

extern "C" {
#include "access/tupdesc.h"
#include "utils/tuplestore.h"
}

namespace pglocks {

// Sets up fcinfo's result as a tuplestore (InitMaterializedSRF on PostgreSQL 15 and later)
// and returns it with its tuple descriptor.
void materialize_result(FunctionCallInfo fcinfo, Tuplestorestate** store, TupleDesc* desc);

}  // namespace pglocks
