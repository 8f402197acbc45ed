// The SQL-callable lock functions (pg_functions.cpp): what the module sets up for them.
#pragma once

namespace pglocks {

// Registers the transaction callbacks that end the plan uses of pglocks_with_lock calls an
// error ended; called once from _PG_init.
void register_with_lock_callbacks();

}  // namespace pglocks
