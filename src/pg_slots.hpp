// Counting semaphores (pg_slots.cpp): what the rest of pglocks calls.
#pragma once

#include <cstdint>

namespace pglocks {

// From _PG_init while shared_preload_libraries is processed: the condition variables that
// slot waiters sleep on.
void slots_init_preload();

// Called after holds were released in bulk (pglocks_release_all, the end of a transaction or
// subtransaction): wakes the waiters of every semaphore whose slot this session freed.
void slots_after_release();

// Called when a transaction (subxact 0, InvalidSubTransactionId) or a subtransaction aborts:
// ends a slot wait that the error interrupted (its queue lock and the queue's published name).
void slots_at_abort(uint32_t subxact);

}  // namespace pglocks
