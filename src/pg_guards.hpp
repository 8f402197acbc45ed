// Checks an acquire passes before it touches the lock manager: the pglocks.session_locks
// guard (allow, warn or deny session-scope holds) and reentrant => false.
#pragma once

#include "pg_holds.hpp"

namespace pglocks {

// Raises the guard's errors: 55000 when pglocks.session_locks = deny forbids a session-scope
// acquire, 55006 when reentrant => false and this session already holds the lock; warns
// once per lock under pglocks.session_locks = warn. Raises only PostgreSQL errors.
void check_acquire_guards(const AcquireRequest& req);

// Defines pglocks.session_locks; called once from _PG_init.
void guards_define_settings();

}  // namespace pglocks
