// Counting semaphores (pg_slots.cpp): what the rest of pglocks calls.
#pragma once

namespace pglocks {

// From _PG_init while shared_preload_libraries is processed: the condition variables that
// slot waiters sleep on.
void slots_init_preload();

// Called after holds were released in bulk (pglocks_release_all, the end of a transaction or
// subtransaction): wakes the waiters of every semaphore whose slot this session freed.
void slots_after_release();

}  // namespace pglocks
