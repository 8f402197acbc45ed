// Pure C++ (no postgres.h): the per-backend registry of the holds taken through pglocks.
//
// Model: for every lock and mode that has at least one pglocks hold, the registry owns
// exactly one session-level count in the server's lock manager. Further holds of the same
// lock and mode are counted here only. This makes a release behind pglocks' back
// (pg_advisory_unlock, pg_advisory_unlock_all, DISCARD ALL) visible: the lock manager then
// no longer holds the lock, and the caller drops the stale entry (see reconcile()).
//
// The registry never calls the server. Callers pass plain function pointers where a
// decision needs the lock manager, so no frame here ever holds an object that a
// PostgreSQL error could skip the destructor of.
#pragma once

// The boundary rule, checked by the compiler: pure C++ never sees postgres.h, whose macros
// and longjmp-based errors do not mix with destructors. A .cpp file that talks to the server
// includes this header before any PostgreSQL header.
#ifdef POSTGRES_H
#error "holds_registry.hpp is pure C++: include it before postgres.h (see pg_boundary.hpp)"
#endif

#include <cstdint>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "lock_key.hpp"

namespace pglocks {

struct Hold {
    uint64_t id;
    Scope scope;
    uint32_t subxact;        // subtransaction that took it (transaction and call scopes)
    int64_t acquired_at;     // server timestamp, microseconds
    int64_t token;           // fencing token, 0 when the hold has none
    uint32_t owner = 0;      // the role that took it, for the statistics of its end
    uint32_t stats_row = 0;  // the statistics row that counted its acquisition, 0: none
};

struct Entry {
    std::string name;  // the text key as given (clipped by the caller); empty for numeric keys
    bool has_name = false;
    bool published = false;   // the name is in the shared-memory registry of names
    std::vector<Hold> holds;  // oldest first
};

// One row of pglocks_held(): holds of one lock, mode and scope.
struct HeldRow {
    LockId id;
    const char* name;  // points into the registry; valid until the registry changes
    size_t name_len;
    bool has_name;
    Scope scope;
    int32_t holds;
    int64_t acquired_at;  // the oldest hold of the group
    uint64_t first_id;    // for a stable order: oldest hold first
};

class HoldsRegistry {
public:
    HoldsRegistry() = default;
    // A copy has the same holds (spare nodes are not copied); tests use it to look ahead.
    HoldsRegistry(const HoldsRegistry& other)
        : entries_(other.entries_),
          unpublish_(other.unpublish_),
          next_hold_id_(other.next_hold_id_),
          hold_count_(other.hold_count_),
          transaction_holds_(other.transaction_holds_),
          parked_id_(other.parked_id_),
          has_parked_(other.has_parked_) {}  // parked_buckets_ 0: parked_it_ is not ours
    HoldsRegistry& operator=(const HoldsRegistry&) = delete;

    using LockPredicate = bool (*)(const LockId&);
    using LockAction = void (*)(const LockId&);
    using HoldVisitor = void (*)(const LockId&, const Hold&);

    // Called for every hold that ends, whatever ends it (a release, the end of its
    // transaction, release_all, a loss found by reconcile()), before it is forgotten.
    void set_removed_hook(HoldVisitor hook) noexcept { removed_ = hook; }
    // Calls `visit` for every hold (at session end, for the holds the lock manager ends).
    void visit_holds(HoldVisitor visit) const noexcept;

    // Called for every entry that goes away while published (so its shared name can go).
    void set_unpublish_hook(LockAction hook) noexcept { unpublish_ = hook; }
    // Marks the entry of `id` as published; false if it has no holds.
    bool mark_published(const LockId& id) noexcept;
    // Calls the unpublish hook for every published entry and marks it unpublished (at exit).
    void unpublish_all() noexcept;
    // The entry of `id` even when it has no holds (for names), or nullptr. An entry without
    // holds is room reserved by an acquire in progress, or the entry of the lock released
    // last, kept for its next acquire (without a name, unpublished).
    const Entry* find(const LockId& id) const noexcept;

    // The entry of a lock with at least one hold, or nullptr.
    Entry* find_held(const LockId& id) noexcept;

    // Makes room for one more hold of `id`, creating an empty entry if needed, so that
    // add() cannot fail afterwards. Throws std::bad_alloc. The entry stays where it is
    // until it is erased (map nodes never move), so callers may keep the pointer across a
    // lock wait: the entry returned is never the kept one (the entry of the lock released
    // last, which the next release may erase and any reserve() may take and re-key), and an
    // entry without holds that reserve() returned is erased only by drop_if_empty(). Between
    // reserve() and add(), release or reserve no other lock.
    Entry* reserve(const LockId& id, std::string_view name, bool has_name);

    // Records a hold in an entry returned by reserve(). Returns the hold's id, or 0 when no
    // room was reserved (a caller bug, reported instead of crashing).
    uint64_t add(Entry* entry, Scope scope, uint32_t subxact, int64_t now, int64_t token = 0,
                 uint32_t owner = 0, uint32_t stats_row = 0) noexcept;
    uint64_t add(const LockId& id, Scope scope, uint32_t subxact, int64_t now, int64_t token = 0,
                 uint32_t owner = 0, uint32_t stats_row = 0) noexcept;

    // One lookup for a release: 1 when the newest releasable hold of `id` was released
    // (*now_empty: it was the last hold), 0 when there is none, -1 when still_held() says
    // the lock manager lost the lock behind our back (nothing changed; reconcile()).
    int release_newest_checked(const LockId& id, LockPredicate still_held,
                               bool* now_empty) noexcept;

    // Changes the scope of one hold; false if the hold is gone. Multi-step acquires take their
    // holds in the call scope, which an abort ends, and give them their own scope once
    // every step has succeeded.
    bool set_scope(const LockId& id, uint64_t hold_id, Scope scope) noexcept;

    // Sets the token of one hold; false if the hold is gone.
    bool set_token(const LockId& id, uint64_t hold_id, int64_t token) noexcept;

    // The token of the newest hold of `id` that has one, or 0.
    int64_t newest_token(const LockId& id) const noexcept;

    // Removes an entry left empty by a failed or abandoned acquire.
    void drop_if_empty(const LockId& id) noexcept;

    // Releases the newest hold of `id` other than those of pglocks_with_lock calls (which
    // their call releases). Returns false when there is none. *now_empty tells
    // whether that was the last one (the caller then releases the lock manager's count).
    bool release_newest(const LockId& id, bool* now_empty) noexcept;

    // Releases one particular hold. Same results as release_newest().
    bool release_hold(const LockId& id, uint64_t hold_id, bool* now_empty) noexcept;

    // Forgets every entry with holds for which still_held() is false: the lock manager lost
    // it. Entries without holds (room reserved by an acquire in progress) stay.
    // Returns how many holds were forgotten.
    uint64_t reconcile(LockPredicate still_held) noexcept;

    // Releases every hold. For each lock whose count goes, calls release_lock() if
    // still_held() says the lock manager still has it. Returns the number of holds released
    // (holds of locks the lock manager had already lost are not counted).
    uint64_t release_all(LockPredicate still_held, LockAction release_lock) noexcept;

    // Ends transaction-bound holds (transaction and call scopes) taken in subtransaction
    // `from_subxact` or later: all of them at the end of a transaction (pass 0), those of an
    // aborted subtransaction and its children otherwise. Subtransaction ids grow with time
    // and an open subtransaction's later ids all belong to its children, so the comparison
    // needs no bookkeeping at subtransaction commit.
    void end_transaction_holds(uint32_t from_subxact, LockPredicate still_held,
                               LockAction release_lock) noexcept;

    // Whether any hold has this scope (a scan: for error paths).
    bool has_scope(Scope scope) const noexcept;

    bool has_transaction_holds() const noexcept { return transaction_holds_ > 0; }
    uint64_t hold_count() const noexcept { return hold_count_; }

    // Number of rows held_rows() writes.
    size_t held_row_count() const noexcept;
    // Writes the rows, oldest first; `capacity` must be at least held_row_count() (with
    // less, it stops there and the rows written may be any of them, partly counted).
    // Returns the number written.
    size_t held_rows(HeldRow* rows, size_t capacity) const noexcept;

private:
    using Map = std::unordered_map<LockId, Entry, LockIdHash>;
    void note_removed(const LockId& id, const Hold& h) noexcept;
    Map::iterator erase(Map::iterator it) noexcept;
    // The entry a release left without holds: it stays in the map, without its name and
    // unpublished, so that the next acquire of the same lock finds it instead of inserting
    // a node (and its release does not remove one). One entry at most is kept so: the one
    // kept before goes now. An acquire of another lock takes the kept entry's node.
    void park(Map::iterator it) noexcept;
    // The kept entry (has_parked_ must be true: it is in the map).
    Map::iterator parked() noexcept;

    // Erased map nodes are kept for reuse, with the capacity of their vector and string, so
    // that a lock taken and released again and again allocates nothing.
    static constexpr size_t kSpareNodes = 64;
    std::vector<Map::node_type> spare_;

    Map entries_;
    LockAction unpublish_ = nullptr;
    HoldVisitor removed_ = nullptr;
    uint64_t next_hold_id_ = 1;
    uint64_t hold_count_ = 0;
    uint64_t transaction_holds_ = 0;
    LockId parked_id_{};  // the entry park() kept, when has_parked_
    bool has_parked_ = false;
    // Its iterator, valid while the map has not rehashed since (the bucket count then).
    Map::iterator parked_it_{};
    size_t parked_buckets_ = 0;
};

}  // namespace pglocks
