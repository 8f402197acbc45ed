// Set-returning functions: the result tuplestore, and the number of columns the installed
// SQL declares. A library newer than the extension's SQL objects (before ALTER EXTENSION
// UPDATE) fills the columns the installed version declares and no more.
#pragma once

#include "pg_boundary.hpp"

namespace pglocks {

// Sets up the result (materialize mode) and checks that the SQL declares between
// min_columns and max_columns columns; returns the number it declares. Rows are filled for
// max_columns and stored with the returned descriptor, which reads only its own columns.
int begin_srf(FunctionCallInfo fcinfo, Tuplestorestate** store, TupleDesc* desc, int min_columns,
              int max_columns);

}  // namespace pglocks
