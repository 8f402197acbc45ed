// The acquire guards: pglocks.session_locks and reentrant => false.
//
// A session hold outlives its transaction. Behind a transaction-mode pooler it stays on the
// server connection and passes to the next client that gets it; pglocks.session_locks lets a
// role or a database refuse such holds (deny) or flag them (warn), while transaction scope
// and pglocks_with_lock go on as before. reentrant => false turns a second acquire of a lock
// the session already holds, by any means and in any mode, into an error: two callers that
// share a connection would otherwise both think they hold the lock alone.
#include "pg_guards.hpp"

extern "C" {
#include "miscadmin.h"
#include "storage/lock.h"
#include "utils/elog.h"
#include "utils/guc.h"
#include "utils/hsearch.h"
#include "utils/memutils.h"
}

namespace pglocks {
namespace {

enum SessionLocks { kSessionLocksAllow, kSessionLocksWarn, kSessionLocksDeny };

const struct config_enum_entry kSessionLocksOptions[] = {
    {"allow", kSessionLocksAllow, false},
    {"warn", kSessionLocksWarn, false},
    {"deny", kSessionLocksDeny, false},
    {nullptr, 0, false},
};

int g_session_locks = kSessionLocksAllow;

// The locks this backend has warned about under warn, whatever the mode: the warning is
// about the lock, once per session. A dynahash in TopMemoryContext, created on first use.
// A long-lived pooled connection may see an unbounded number of keys: past kMaxWarned the
// set starts over, so memory stays bounded at the cost of a repeated warning.
constexpr long kMaxWarned = 10000;
struct WarnedKey {
    uint32 hi;
    uint32 lo;
    uint32 form;
};
HTAB* g_warned = nullptr;

WarnedKey warned_key(const LockId& id) {
    WarnedKey k;
    memset(&k, 0, sizeof k);  // hashed as bytes (HASH_BLOBS)
    k.hi = id.hi;
    k.lo = id.lo;
    k.form = static_cast<uint32>(id.form);
    return k;
}

// Whether this is the first warning about the lock in this session (and remembers it).
bool first_warning(const LockId& id) {
    if (g_warned != nullptr && hash_get_num_entries(g_warned) >= kMaxWarned) {
        hash_destroy(g_warned);
        g_warned = nullptr;
    }
    if (g_warned == nullptr) {
        HASHCTL ctl;
        memset(&ctl, 0, sizeof ctl);
        ctl.keysize = sizeof(WarnedKey);
        ctl.entrysize = sizeof(WarnedKey);
        ctl.hcxt = TopMemoryContext;
        g_warned = hash_create("pglocks session-lock warnings", 64, &ctl,
                               HASH_ELEM | HASH_BLOBS | HASH_CONTEXT);
    }
    const WarnedKey k = warned_key(id);
    bool found = false;
    (void)hash_search(g_warned, &k, HASH_ENTER, &found);
    return !found;
}

// The lock as the user named it: the text key as given, else its numeric form, the way
// pglocks_held() shows it. palloc'd.
char* lock_display_name(const KeyArg& key) {
    if (key.has_name) return pnstrdup(key.name, key.name_len);
    if (key.id.form == KeyForm::Pair) return psprintf("%d,%d", key.id.key1(), key.id.key2());
    return psprintf(INT64_FORMAT, static_cast<int64>(key.id.bigint()));
}

// Whether this session holds the lock in either mode: through pglocks (every pglocks hold
// owns a count in the lock manager) or through the core functions, session or transaction
// level alike.
bool held_in_any_mode(const LockId& id) {
    const LOCKTAG tag = make_tag(id);
    return compat::lock_held_by_me(&tag, ExclusiveLock) || compat::lock_held_by_me(&tag, ShareLock);
}

constexpr const char* kSessionLocksHint =
    "Take the lock with scope => 'transaction', or run the work inside pglocks_with_lock(), "
    "so that it is released before the connection goes back to the pool.";

}  // namespace

void check_acquire_guards(const AcquireRequest& req) {
    const bool session = req.scope == Scope::Session;
    if (req.reentrant && !(session && g_session_locks != kSessionLocksAllow)) return;

    if (session && g_session_locks == kSessionLocksDeny)
        ereport(ERROR,
                (errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
                 errmsg("session-scope lock \"%s\" is not allowed", lock_display_name(req.key)),
                 errdetail("pglocks.session_locks is \"deny\" for this session: a session "
                           "lock outlives its transaction and stays on the connection."),
                 errhint("%s", kSessionLocksHint)));

    if (!req.reentrant && held_in_any_mode(req.key.id))
        ereport(ERROR,
                (errcode(ERRCODE_OBJECT_IN_USE),
                 errmsg("lock \"%s\" is already held by this session", lock_display_name(req.key)),
                 errdetail("The acquire asked for reentrant => false."),
                 errhint("Another caller on this connection holds the lock. Release it "
                         "first, or pass reentrant => true to take one more hold.")));

    if (session && g_session_locks == kSessionLocksWarn && first_warning(req.key.id))
        ereport(WARNING, (errmsg("session-scope lock \"%s\" outlives its transaction",
                                 lock_display_name(req.key)),
                          errdetail("pglocks.session_locks is \"warn\"; this lock is reported once "
                                    "per session."),
                          errhint("%s", kSessionLocksHint)));
}

void guards_define_settings() {
    DefineCustomEnumVariable(
        "pglocks.session_locks", "Allows, reports or refuses session-scope pglocks locks.",
        "allow takes them; warn takes them with a WARNING, once per lock and session; deny "
        "raises an error. Transaction scope and pglocks_with_lock are never affected.",
        &g_session_locks, kSessionLocksAllow, kSessionLocksOptions, PGC_USERSET, 0, nullptr,
        nullptr, nullptr);
}

}  // namespace pglocks
