// The module: PG_MODULE_MAGIC, the pglocks.* settings and the transaction callbacks.
#include "pg_functions.hpp"
#include "pg_guards.hpp"
#include "pg_holds.hpp"
#include "pg_names.hpp"
#include "pg_slots.hpp"
#include "pg_stats.hpp"

extern "C" {
#include "miscadmin.h"
#include "utils/guc.h"

PGLOCKS_MODULE_MAGIC;

void _PG_init(void);
}

bool pglocks_allow_on_standby = false;

extern "C" void _PG_init(void) {
    DefineCustomBoolVariable(
        "pglocks.allow_on_standby", "Allows pglocks locks to be taken on a hot standby.",
        "Locks taken on a standby exclude only sessions of that standby, never those of the "
        "primary.",
        &pglocks_allow_on_standby, false, PGC_USERSET, 0, nullptr, nullptr, nullptr);
    pglocks::names_define_settings();
    pglocks::guards_define_settings();
    pglocks::stats_define_settings();
    // Only when preloaded, as the server-start settings are defined only then: a server
    // that does not preload pglocks but names them in postgresql.conf would otherwise warn
    // in every session that loads the library, and drop them.
    if (process_shared_preload_libraries_in_progress)
        pglocks::compat::reserve_settings_prefix("pglocks");
    pglocks::register_hold_callbacks();
    pglocks::register_with_lock_callbacks();
    pglocks::names_init_preload();
    pglocks::slots_init_preload();
    pglocks::stats_init_preload();
}
