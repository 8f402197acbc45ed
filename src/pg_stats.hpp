// Statistics by name (pglocks_stats): cumulative counts and times per database, role, lock
// and mode, in shared memory. Present only when pglocks is in shared_preload_libraries.
#pragma once

#include "lock_key.hpp"  // pure C++ first: it refuses to follow postgres.h
#include "pg_keys.hpp"

namespace pglocks {

// From _PG_init.
void stats_define_settings();
void stats_init_preload();

// Whether acquires and releases are being recorded now (preloaded, table present,
// pglocks.track_stats on).
bool stats_active();

enum class StatsOutcome { Acquired, FailedTry, TimedOut, Failed };

// Records one acquire attempt's outcome. wait_us < 0: it did not wait. `at` is the time of
// the grant (last_acquired). Never raises an error, nor a pending cancel: when there is no
// room, nothing is recorded. Returns, for an acquisition, the number of the row that counted
// it, which the hold keeps (Hold::stats_row): its time goes to that row only, never to a row
// made anew after an eviction or a reset. 0 when nothing was recorded.
uint32 stats_count(const KeyArg& key, StatsOutcome outcome, int64 wait_us, TimestampTz at);

// The precise clock, as a timestamp (microseconds).
TimestampTz stats_clock();
// Microseconds from `start` (a stats_clock() reading) to now, or to `end`; 0 when the clock
// went back.
int64 stats_elapsed(TimestampTz start);
int64 stats_elapsed(TimestampTz start, TimestampTz end);

// Adds the times of ended holds that this backend has not yet added to their rows (a
// release leaves them for the next count of the same row). Called at the end of every
// transaction and of every aborted subtransaction, after their holds have ended; raises no
// error.
void stats_flush();

}  // namespace pglocks
