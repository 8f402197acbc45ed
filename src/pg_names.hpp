// The shared-memory registry of lock names: lets pglocks_locks show the text key of other
// sessions' locks. Present only when pglocks is in shared_preload_libraries.
#pragma once

#include "lock_key.hpp"  // pure C++ first: it refuses to follow postgres.h
#include "pg_boundary.hpp"

extern "C" {
#include "datatype/timestamp.h"
}

namespace pglocks {

// Longest name kept in shared memory, in bytes (clipped on a character boundary).
constexpr int kSharedNameBytes = 128;

// From _PG_init while shared_preload_libraries is processed.
void names_init_preload();
void names_define_settings();

bool names_available();
// Records this backend's hold of (or wait for) `id` under `name`, or updates its time when
// already recorded. Never errors: when the registry is full the name is simply not
// recorded. Returns whether it is recorded.
bool names_publish(const LockId& id, const char* name, int len, TimestampTz since);
void names_unpublish(const LockId& id);
// Drops names this backend keeps published for locks it no longer uses.
void names_drop_idle();

// Looks up the name of `pid`'s hold of `id` in this database, with the role that session
// logged in as (*role).
bool names_lookup(int pid, const LockId& id, char* name, int* len, TimestampTz* since, Oid* role);

}  // namespace pglocks
