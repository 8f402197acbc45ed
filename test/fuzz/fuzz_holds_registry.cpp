// libFuzzer target for src/holds_registry.cpp. The input is a sequence of session events:
// pglocks calls (acquire in both scopes, release, release_all, with_lock), the core
// functions (pg_advisory_lock/unlock/unlock_all), transaction control (BEGIN, SAVEPOINT,
// RELEASE, ROLLBACK TO, COMMIT, ROLLBACK) and errors. They drive the registry the way the
// server side drives it, against a simulated lock manager, and after every event the
// registry is checked against a plain model of what the session holds:
//  - it never gives back a lock-manager count it does not have, and owns exactly one count
//    for every lock and mode with holds, none for any other;
//  - releases find exactly the holds the model has, newest first, leaving the holds of
//    pglocks_with_lock calls to their call;
//  - transaction-bound holds end with their transaction or subtransaction;
//  - pglocks_held() rows (after reconciling with the lock manager) are the model's rows.
#include <fuzzer/FuzzedDataProvider.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <string>
#include <unordered_map>
#include <vector>

#include "holds_registry.hpp"

using namespace pglocks;

namespace {

[[noreturn]] void fail(const char* what) {
    std::fprintf(stderr, "fuzz_holds_registry: %s\n", what);
    std::abort();
}
#define CHECK(cond)                                \
    do {                                           \
        if (!(cond)) fail("check failed: " #cond); \
    } while (0)

// The simulated lock manager: session-lock counts of this backend, and how many of them
// the core functions took (the rest is pglocks').
std::unordered_map<LockId, int, LockIdHash> g_lm;
std::unordered_map<LockId, int, LockIdHash> g_core;

bool lm_held(const LockId& id) {
    auto it = g_lm.find(id);
    return it != g_lm.end() && it->second > 0;
}
void lm_release(const LockId& id) {
    // The server would warn "you don't own a lock": pglocks released what it did not have.
    CHECK(lm_held(id));
    g_lm[id]--;
}

// A few locks, so that events collide: bigint and pair forms, both modes.
LockId lock_of(int n) {
    const bool shared = n & 1;
    switch ((n >> 1) % 4) {
        case 0:
            return LockId::from_bigint(1, shared);
        case 1:
            return LockId::from_bigint(-1, shared);
        case 2:
            return LockId::from_pair(0, 1, shared);  // same bits as bigint 1, other lock
        default:
            return LockId::from_bigint(INT64_MIN, shared);
    }
}
constexpr int kLocks = 8;
std::string name_of(const LockId& id) {
    return "k" + std::to_string(id.hi) + "." + std::to_string(id.lo) + "." +
           std::to_string(static_cast<int>(id.form));
}

struct MHold {
    uint64_t id;  // as the registry numbered it
    LockId lock;
    Scope scope;
    int depth;  // transaction nesting level that owns it (transaction-bound scopes)
    int64_t at;
    bool named;
};

bool bound(Scope s) { return s != Scope::Session; }

struct Session {
    HoldsRegistry reg;
    std::vector<MHold> model;  // in hold-id order
    bool in_block = false;
    std::vector<uint32_t> subs;  // subtransaction ids of the open levels, outermost first
    uint32_t next_sub = 1;
    int64_t clock = 0;

    uint32_t current_sub() const { return subs.empty() ? 1 : subs.back(); }
    int depth() const { return subs.empty() ? 1 : static_cast<int>(subs.size()); }

    bool model_has(const LockId& id) const {
        return std::any_of(model.begin(), model.end(),
                           [&](const MHold& h) { return h.lock == id; });
    }
    void model_drop_lock(const LockId& id) {
        model.erase(std::remove_if(model.begin(), model.end(),
                                   [&](const MHold& h) { return h.lock == id; }),
                    model.end());
    }

    // A statement outside a transaction block runs in a transaction of its own.
    void start_statement() {
        if (!in_block) {
            subs = {1};
            next_sub = 2;
        }
    }
    void end_statement() {
        if (!in_block) {
            end_transaction();
            subs.clear();
        }
    }
    void end_transaction() {
        reg.end_transaction_holds(0, lm_held, lm_release);
        model.erase(std::remove_if(model.begin(), model.end(),
                                   [](const MHold& h) { return bound(h.scope); }),
                    model.end());
    }
    // An error: the innermost subtransaction aborts when a savepoint catches it, else the
    // whole transaction.
    void error(bool caught) {
        if (caught && subs.size() > 1) {
            abort_to(static_cast<int>(subs.size()));
            subs.push_back(next_sub++);
            return;
        }
        end_transaction();
        in_block = false;
        subs.clear();
    }
    // ROLLBACK TO: aborts levels depth()..target, innermost first, like the server.
    void abort_to(int target) {
        while (static_cast<int>(subs.size()) >= target) {
            reg.end_transaction_holds(subs.back(), lm_held, lm_release);
            const int d = static_cast<int>(subs.size());
            model.erase(
                std::remove_if(model.begin(), model.end(),
                               [&](const MHold& h) { return bound(h.scope) && h.depth >= d; }),
                model.end());
            subs.pop_back();
        }
    }

    // pglocks_acquire as the server side does it. avail: whether other sessions let us
    // have the lock; err: the lock manager raises an error (lock table full, cancel).
    // Returns the hold id or 0.
    uint64_t acquire(const LockId& id, Scope scope, bool named, bool avail, bool err) {
        const std::string name = named ? name_of(id) : std::string();
        if (reg.find_held(id) != nullptr) {
            if (lm_held(id)) {
                reg.reserve(id, name, named);
                return record(id, scope, named);
            }
            reg.reconcile(lm_held);
        }
        reg.reserve(id, name, named);
        // A lock this backend holds already (through the core functions) is granted at
        // once; any grant adds one count, which is pglocks' from now on.
        const bool got = lm_held(id) || (!err && avail);
        if (!got && err) return UINT64_MAX;  // the error skips the rest
        if (!got) {
            reg.drop_if_empty(id);
            return 0;
        }
        g_lm[id]++;
        return record(id, scope, named);
    }
    uint64_t record(const LockId& id, Scope scope, bool named) {
        const uint64_t h = reg.add(id, scope, current_sub(), ++clock);
        CHECK(h != 0);
        CHECK(model.empty() || h > model.back().id);
        model.push_back(MHold{h, id, scope, depth(), clock, named});
        return h;
    }

    // As pg_holds.cpp: one lookup, and pglocks_with_lock holds are left to their call.
    bool release(const LockId& id) {
        bool now_empty = false;
        const int released = reg.release_newest_checked(id, lm_held, &now_empty);
        if (released < 0) {
            reg.reconcile(lm_held);
            return false;
        }
        if (released > 0 && now_empty) lm_release(id);
        return released > 0;
    }

    // The model's side of a release: the newest hold of the lock outside with_lock calls.
    bool model_release(const LockId& id) {
        auto it = std::find_if(model.rbegin(), model.rend(), [&](const MHold& h) {
            return h.lock == id && h.scope != Scope::Call;
        });
        if (it == model.rend()) return false;
        model.erase(std::next(it).base());
        return true;
    }

    bool release_hold(const LockId& id, uint64_t hold) {
        bool now_empty = false;
        if (!reg.release_hold(id, hold, &now_empty)) return false;
        if (now_empty && lm_held(id)) lm_release(id);
        return true;
    }
};

void check_rows(Session& s, FuzzedDataProvider& in) {
    // pglocks_held() reconciles first; do it on a copy so the run itself stays lazy.
    HoldsRegistry copy = s.reg;
    copy.reconcile(lm_held);
    CHECK(copy.hold_count() == s.model.size());
    const bool any_bound =
        std::any_of(s.model.begin(), s.model.end(), [](const MHold& h) { return bound(h.scope); });
    CHECK(copy.has_transaction_holds() == any_bound);

    // The model's rows: one per lock, mode and scope, in the order of their oldest hold.
    struct Row {
        LockId id;
        Scope scope;
        int32_t holds;
        int64_t at;
        uint64_t first;
        bool named;
    };
    std::vector<Row> want;
    for (const MHold& h : s.model) {
        auto it = std::find_if(want.begin(), want.end(),
                               [&](const Row& r) { return r.id == h.lock && r.scope == h.scope; });
        if (it == want.end())
            want.push_back(Row{h.lock, h.scope, 1, h.at, h.id, h.named});
        else {
            it->holds++;
            it->named |= h.named;
        }
    }
    const size_t n = copy.held_row_count();
    CHECK(n == want.size());
    std::vector<HeldRow> rows(n + 1);
    CHECK(copy.held_rows(rows.data(), n) == n);
    for (size_t i = 0; i < n; i++) {
        const HeldRow& r = rows[i];
        CHECK(r.id == want[i].id && r.scope == want[i].scope);
        CHECK(r.holds == want[i].holds && r.acquired_at == want[i].at);
        CHECK(r.first_id == want[i].first);
        // A name, once given for a lock, stays while the lock has holds; it is the name
        // that lock was given (the server passes the text key that hashes to it).
        if (want[i].named) CHECK(r.has_name);
        if (r.has_name) CHECK(std::string(r.name, r.name_len) == name_of(r.id));
    }
#ifdef PGLOCKS_FUZZ_SHORT_ROWS
    // Fewer rows than there are, as the header allows: the oldest ones, each complete.
    // Off by default: held_rows() then returns rows in map order with partial counts, and
    // the server never asks for fewer rows than held_row_count().
    if (n > 1 && in.ConsumeBool()) {
        const size_t cap = in.ConsumeIntegralInRange<size_t>(0, n - 1);
        CHECK(copy.held_rows(rows.data(), cap) == cap);
        for (size_t i = 0; i < cap; i++)
            CHECK(rows[i].id == want[i].id && rows[i].scope == want[i].scope &&
                  rows[i].holds == want[i].holds);
    }
#else
    (void)in;
#endif
}

void check_lock_manager(const Session& s) {
    for (const auto& [id, count] : g_lm) {
        const int core = g_core.count(id) ? g_core.at(id) : 0;
        CHECK(count == core + (s.model_has(id) ? 1 : 0));
    }
    for (const MHold& h : s.model) CHECK(lm_held(h.lock));
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    FuzzedDataProvider in(data, size);
    g_lm.clear();
    g_core.clear();
    Session s;
    int steps = 0;
    while (in.remaining_bytes() > 0 && steps++ < 400) {
        const LockId id = lock_of(in.ConsumeIntegralInRange<int>(0, kLocks - 1));
        switch (in.ConsumeIntegralInRange<int>(0, 13)) {
            case 0:
            case 1:
            case 2: {  // pglocks_acquire
                const Scope scope = in.ConsumeBool() ? Scope::Session : Scope::Transaction;
                const bool named = in.ConsumeBool();
                const bool avail = in.ConsumeIntegralInRange<int>(0, 3) != 0;
                const bool err = in.ConsumeIntegralInRange<int>(0, 7) == 0;
                const bool caught = in.ConsumeBool();
                s.start_statement();
                const uint64_t h = s.acquire(id, scope, named, avail, err);
                if (h == UINT64_MAX) {
                    s.error(caught);
                    break;
                }
                s.end_statement();
                break;
            }
            case 3:
            case 4: {  // pglocks_release: the newest hold of this lock and mode, any scope
                s.start_statement();
                const bool got = s.release(id);
                CHECK(got == s.model_release(id));
                s.end_statement();
                break;
            }
            case 5: {  // pglocks_release_all
                s.start_statement();
                const uint64_t n = s.reg.release_all(lm_held, lm_release);
                CHECK(n == s.model.size());
                s.model.clear();
                s.end_statement();
                break;
            }
            case 6: {  // pglocks_with_lock: a call-scope hold, a command, its release
                s.start_statement();
                const bool avail = in.ConsumeIntegralInRange<int>(0, 3) != 0;
                const uint64_t h = s.acquire(id, Scope::Call, in.ConsumeBool(), avail, false);
                if (h == 0) {
                    s.end_statement();
                    break;
                }
                // What the command does with pglocks while it runs.
                const LockId other = lock_of(in.ConsumeIntegralInRange<int>(0, kLocks - 1));
                switch (in.ConsumeIntegralInRange<int>(0, 4)) {
                    case 0: {  // pglocks_release on the same lock: never the call's own hold
                        const bool got = s.release(id);
                        CHECK(got == s.model_release(id));
                        break;
                    }
                    case 1:
                        CHECK(s.reg.release_all(lm_held, lm_release) == s.model.size());
                        s.model.clear();
                        break;
                    case 2: {
                        const uint64_t h2 = s.acquire(other, Scope::Session, true, true, false);
                        CHECK(h2 != 0 && h2 != UINT64_MAX);
                        break;
                    }
                    case 3: {  // the command fails
                        s.error(in.ConsumeBool());
                        goto checks;
                    }
                    default:
                        break;
                }
                {
                    const bool model_had = std::any_of(s.model.begin(), s.model.end(),
                                                       [&](const MHold& m) { return m.id == h; });
                    CHECK(s.release_hold(id, h) == model_had);
                    s.model.erase(std::remove_if(s.model.begin(), s.model.end(),
                                                 [&](const MHold& m) { return m.id == h; }),
                                  s.model.end());
                }
                s.end_statement();
                break;
            }
            case 7: {  // pg_advisory_lock: never on a lock pglocks lost but has not yet noticed
                // (the count would then be pglocks' and the core's at once: ambiguous).
                if (s.reg.find_held(id) != nullptr && !s.model_has(id)) break;
                g_lm[id]++;
                g_core[id]++;
                break;
            }
            case 8: {  // pg_advisory_unlock: the core's own count first, else pglocks'
                if (!lm_held(id)) break;
                g_lm[id]--;
                if (g_core[id] > 0)
                    g_core[id]--;
                else
                    s.model_drop_lock(id);
                break;
            }
            case 9: {  // pg_advisory_unlock_all (or DISCARD ALL outside a block)
                g_lm.clear();
                g_core.clear();
                s.model.clear();
                break;
            }
            case 10: {  // BEGIN / SAVEPOINT
                if (!s.in_block) {
                    s.in_block = true;
                    s.subs = {1};
                    s.next_sub = 2;
                } else {
                    s.subs.push_back(s.next_sub++);
                }
                break;
            }
            case 11: {  // RELEASE SAVEPOINT: its holds now belong to the level above
                if (!s.in_block || s.subs.size() < 2) break;
                const int d = static_cast<int>(s.subs.size());
                for (MHold& h : s.model)
                    if (bound(h.scope) && h.depth == d) h.depth = d - 1;
                s.subs.pop_back();
                break;
            }
            case 12: {  // ROLLBACK TO SAVEPOINT
                if (!s.in_block || s.subs.size() < 2) break;
                const int target =
                    in.ConsumeIntegralInRange<int>(2, static_cast<int>(s.subs.size()));
                s.abort_to(target);
                s.subs.push_back(s.next_sub++);
                break;
            }
            default: {  // COMMIT / ROLLBACK, or pglocks_held() outside a block
                if (s.in_block) {
                    s.end_transaction();
                    s.in_block = false;
                    s.subs.clear();
                } else {
                    s.reg.reconcile(lm_held);
                }
                break;
            }
        }
    checks:
        check_lock_manager(s);
        check_rows(s, in);
    }
    // The session ends: everything pglocks holds goes, and with it its lock-manager counts.
    s.reg.release_all(lm_held, lm_release);
    for (const auto& [id, count] : g_lm) CHECK(count == (g_core.count(id) ? g_core.at(id) : 0));
    return 0;
}
