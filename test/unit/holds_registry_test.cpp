// Unit tests of the holds registry: counting, newest-first release, scopes, subtransaction
// ends, reconciliation with a (simulated) lock manager, and the held() rows.
#include <gtest/gtest.h>

#include <set>

#include "holds_registry.hpp"

using namespace pglocks;

namespace {
// Stands for the lock manager's session locks in these tests.
std::set<std::pair<uint64_t, bool>> g_lm;
std::pair<uint64_t, bool> k(const LockId& id) {
    return {(static_cast<uint64_t>(id.hi) << 32 | id.lo) ^ (static_cast<uint64_t>(id.form) << 60),
            id.shared};
}
bool lm_held(const LockId& id) { return g_lm.count(k(id)) > 0; }
void lm_release(const LockId& id) { g_lm.erase(k(id)); }

uint64_t take(HoldsRegistry& r, const LockId& id, Scope s, uint32_t sub = 1, int64_t t = 0) {
    r.reserve(id, "", false);
    if (r.find_held(id) == nullptr) g_lm.insert(k(id));
    return r.add(id, s, sub, t);
}

class Registry : public ::testing::Test {
protected:
    void SetUp() override { g_lm.clear(); }
    HoldsRegistry r;
    LockId a = LockId::from_bigint(1, false);
    LockId b = LockId::from_bigint(2, false);
};
}  // namespace

TEST_F(Registry, CountsHoldsAndReleasesNewestFirst) {
    EXPECT_NE(take(r, a, Scope::Session), 0u);
    EXPECT_NE(take(r, a, Scope::Transaction), 0u);
    EXPECT_EQ(r.hold_count(), 2u);
    EXPECT_TRUE(r.has_transaction_holds());
    bool empty = true;
    EXPECT_TRUE(r.release_newest(a, &empty));
    EXPECT_FALSE(empty);
    EXPECT_FALSE(r.has_transaction_holds());  // the newest was the transaction hold
    EXPECT_TRUE(r.release_newest(a, &empty));
    EXPECT_TRUE(empty);
    EXPECT_FALSE(r.release_newest(a, &empty));
    EXPECT_EQ(r.find_held(a), nullptr);
}

TEST_F(Registry, SharedAndExclusiveAreDifferentLocks) {
    LockId as = a;
    as.shared = true;
    take(r, a, Scope::Session);
    take(r, as, Scope::Session);
    bool empty = false;
    EXPECT_TRUE(r.release_newest(as, &empty));
    EXPECT_TRUE(empty);
    EXPECT_NE(r.find_held(a), nullptr);
}

TEST_F(Registry, AddWithoutReserveIsRefused) {
    EXPECT_EQ(r.add(a, Scope::Session, 1, 0), 0u);
    EXPECT_EQ(r.hold_count(), 0u);
}

TEST_F(Registry, ReleaseParticularHold) {
    const uint64_t h1 = take(r, a, Scope::Call);
    take(r, a, Scope::Session);
    bool empty = true;
    EXPECT_TRUE(r.release_hold(a, h1, &empty));
    EXPECT_FALSE(empty);
    EXPECT_FALSE(r.release_hold(a, h1, &empty));
    EXPECT_FALSE(r.has_transaction_holds());
}

TEST_F(Registry, TransactionEndKeepsSessionHolds) {
    take(r, a, Scope::Session);
    take(r, a, Scope::Transaction);
    take(r, b, Scope::Transaction);
    take(r, b, Scope::Call);
    r.end_transaction_holds(0, lm_held, lm_release);
    EXPECT_EQ(r.hold_count(), 1u);
    EXPECT_TRUE(lm_held(a));
    EXPECT_FALSE(lm_held(b));  // its last hold went, so did the lock manager's count
    EXPECT_EQ(r.find_held(b), nullptr);
}

TEST_F(Registry, SubtransactionAbortEndsItsHoldsAndItsChildren) {
    take(r, a, Scope::Transaction, 1);
    take(r, b, Scope::Transaction, 3);  // taken in subxact 3
    take(r, a, Scope::Transaction, 4);  // in its child, since committed into 3
    take(r, a, Scope::Session, 4);      // session holds survive any rollback
    r.end_transaction_holds(3, lm_held, lm_release);
    EXPECT_EQ(r.hold_count(), 2u);
    EXPECT_FALSE(lm_held(b));
    EXPECT_TRUE(lm_held(a));
    r.end_transaction_holds(0, lm_held, lm_release);
    EXPECT_EQ(r.hold_count(), 1u);
}

TEST_F(Registry, ReconcileForgetsLocksReleasedBehindItsBack) {
    take(r, a, Scope::Session);
    take(r, a, Scope::Session);
    take(r, b, Scope::Session);
    g_lm.erase(k(a));  // e.g. pg_advisory_unlock
    EXPECT_EQ(r.reconcile(lm_held), 2u);
    EXPECT_EQ(r.find_held(a), nullptr);
    EXPECT_NE(r.find_held(b), nullptr);
    EXPECT_EQ(r.hold_count(), 1u);
}

TEST_F(Registry, ReleaseAllCountsOnlyLiveHolds) {
    take(r, a, Scope::Session);
    take(r, a, Scope::Transaction);
    take(r, b, Scope::Session);
    g_lm.erase(k(b));
    EXPECT_EQ(r.release_all(lm_held, lm_release), 2u);
    EXPECT_TRUE(g_lm.empty());
    EXPECT_EQ(r.hold_count(), 0u);
    EXPECT_FALSE(r.has_transaction_holds());
}

TEST_F(Registry, HeldRowsGroupByScopeOldestFirst) {
    r.reserve(b, "bee", true);
    take(r, b, Scope::Session, 1, 100);
    take(r, a, Scope::Session, 1, 200);
    take(r, b, Scope::Transaction, 1, 300);
    take(r, b, Scope::Session, 1, 400);
    ASSERT_EQ(r.held_row_count(), 3u);
    HeldRow rows[3];
    ASSERT_EQ(r.held_rows(rows, 3), 3u);
    EXPECT_EQ(std::string(rows[0].name, rows[0].name_len), "bee");
    EXPECT_EQ(rows[0].scope, Scope::Session);
    EXPECT_EQ(rows[0].holds, 2);
    EXPECT_EQ(rows[0].acquired_at, 100);
    EXPECT_EQ(rows[1].id, a);
    EXPECT_FALSE(rows[1].has_name);
    EXPECT_EQ(rows[2].scope, Scope::Transaction);
    EXPECT_EQ(rows[2].acquired_at, 300);
    EXPECT_EQ(r.held_rows(rows, 1), 1u);  // never writes past the capacity
}

TEST_F(Registry, FirstNameIsKept) {
    r.reserve(a, "first", true);
    r.reserve(a, "second", true);
    take(r, a, Scope::Session);
    HeldRow row;
    ASSERT_EQ(r.held_rows(&row, 1), 1u);
    EXPECT_EQ(std::string(row.name, row.name_len), "first");
}

TEST_F(Registry, ManyHoldsOfOneLock) {
    for (int i = 0; i < 10000; i++) ASSERT_NE(take(r, a, Scope::Session), 0u);
    EXPECT_EQ(r.hold_count(), 10000u);
    bool empty = false;
    for (int i = 0; i < 9999; i++) ASSERT_TRUE(r.release_newest(a, &empty));
    EXPECT_FALSE(empty);
    EXPECT_TRUE(r.release_newest(a, &empty));
    EXPECT_TRUE(empty);
}

namespace {
std::vector<LockId> g_unpublished;
void note_unpublished(const LockId& id) { g_unpublished.push_back(id); }
}  // namespace

TEST_F(Registry, PublishedEntriesAreUnpublishedOnEveryWayOut) {
    g_unpublished.clear();
    r.set_unpublish_hook(note_unpublished);
    LockId c = LockId::from_bigint(3, false);
    LockId d = LockId::from_bigint(4, false);
    LockId e = LockId::from_bigint(5, false);
    for (const LockId& id : {a, b, c, d, e}) take(r, id, Scope::Session);
    take(r, d, Scope::Transaction);
    for (const LockId& id : {a, b, c, d}) EXPECT_TRUE(r.mark_published(id));
    EXPECT_FALSE(r.mark_published(LockId::from_bigint(99, false)));

    bool empty = false;
    r.release_newest(a, &empty);  // last hold released
    EXPECT_EQ(g_unpublished.size(), 1u);
    g_lm.erase(k(b));  // released behind the registry's back
    r.reconcile(lm_held);
    EXPECT_EQ(g_unpublished.size(), 2u);
    r.end_transaction_holds(0, lm_held, lm_release);  // d keeps its session hold
    EXPECT_EQ(g_unpublished.size(), 2u);
    r.release_all(lm_held, lm_release);  // c and d; e was never published
    ASSERT_EQ(g_unpublished.size(), 4u);
    EXPECT_EQ(g_unpublished[0], a);
    EXPECT_EQ(g_unpublished[1], b);
}

TEST_F(Registry, ReconcileKeepsRoomReservedByAnAcquireInProgress) {
    take(r, b, Scope::Session);
    g_lm.erase(k(b));
    r.reserve(a, "waiting-for", true);  // acquire of `a` waiting in the lock queue
    EXPECT_EQ(r.reconcile(lm_held), 1u);
    EXPECT_NE(r.add(a, Scope::Session, 1, 0), 0u);  // the grant can still be recorded
}

TEST_F(Registry, ReleaseNewestLeavesWithLockHoldsToTheirCall) {
    take(r, a, Scope::Session);
    const uint64_t call = take(r, a, Scope::Call);
    bool empty = true;
    EXPECT_TRUE(r.release_newest(a, &empty));  // the session hold, not the newer call hold
    EXPECT_FALSE(empty);
    EXPECT_FALSE(r.release_newest(a, &empty));
    EXPECT_TRUE(r.release_hold(a, call, &empty));
    EXPECT_TRUE(empty);
}

TEST_F(Registry, RecycledEntriesStartClean) {
    r.set_unpublish_hook(nullptr);
    r.reserve(a, "old-name", true);
    take(r, a, Scope::Transaction);
    r.mark_published(a);
    bool empty = false;
    ASSERT_TRUE(r.release_newest(a, &empty));
    ASSERT_TRUE(empty);
    take(r, b, Scope::Session);  // reuses a's node
    HeldRow row;
    ASSERT_EQ(r.held_rows(&row, 1), 1u);
    EXPECT_EQ(row.id, b);
    EXPECT_FALSE(row.has_name);
    EXPECT_EQ(row.holds, 1);
    EXPECT_FALSE(r.has_transaction_holds());
    EXPECT_FALSE(r.find(b)->published);
}

TEST_F(Registry, SetScopeMovesAHoldOutOfTheTransaction) {
    const uint64_t h = take(r, a, Scope::Call, 2);
    EXPECT_TRUE(r.has_transaction_holds());
    EXPECT_TRUE(r.set_scope(a, h, Scope::Session));
    EXPECT_FALSE(r.has_transaction_holds());
    r.end_transaction_holds(0, lm_held, lm_release);  // a session hold survives the end
    EXPECT_EQ(r.hold_count(), 1u);
    EXPECT_TRUE(r.set_scope(a, h, Scope::Transaction));
    EXPECT_TRUE(r.has_transaction_holds());
    EXPECT_FALSE(r.set_scope(b, h, Scope::Session));
    EXPECT_FALSE(r.set_scope(a, h + 1, Scope::Session));
    r.end_transaction_holds(2, lm_held, lm_release);  // taken in subxact 2: it ends
    EXPECT_EQ(r.hold_count(), 0u);
    EXPECT_FALSE(lm_held(a));
}

namespace {
std::vector<uint64_t> g_ended;
void note_end(const LockId&, const Hold& h) { g_ended.push_back(h.id); }
}  // namespace

// pglocks_stats counts hold times through this hook: every way a hold ends reports it once,
// with its owner, and visit_holds() reports the holds still there (at session end).
TEST_F(Registry, EveryEndOfAHoldIsReportedOnce) {
    g_ended.clear();
    r.set_removed_hook(note_end);
    const LockId c = LockId::from_bigint(3, false);
    const LockId d = LockId::from_bigint(4, false);
    const uint64_t h1 = take(r, a, Scope::Session);
    const uint64_t h2 = take(r, a, Scope::Session);
    const uint64_t h3 = take(r, b, Scope::Transaction, 2);
    const uint64_t h4 = take(r, c, Scope::Session);
    const uint64_t h5 = take(r, d, Scope::Session);
    r.reserve(d, "", false);
    EXPECT_NE(r.add(d, Scope::Session, 1, 0, 0, 77), 0u);
    bool empty = false;
    EXPECT_EQ(r.release_newest_checked(a, lm_held, &empty), 1);  // h2
    EXPECT_TRUE(r.release_hold(a, h1, &empty));                  // h1
    r.end_transaction_holds(2, lm_held, lm_release);             // h3
    g_lm.erase(k(c));
    EXPECT_EQ(r.reconcile(lm_held), 1u);  // h4, lost behind our back
    EXPECT_EQ(g_ended, (std::vector<uint64_t>{h2, h1, h3, h4}));
    std::vector<uint32_t> owners;
    static std::vector<uint32_t>* seen;
    seen = &owners;
    r.visit_holds([](const LockId&, const Hold& h) { seen->push_back(h.owner); });
    EXPECT_EQ(owners, (std::vector<uint32_t>{0, 77}));
    g_ended.clear();
    EXPECT_EQ(r.release_all(lm_held, lm_release), 2u);
    EXPECT_EQ(g_ended.size(), 2u);
    EXPECT_EQ(g_ended[0], h5);
}

TEST_F(Registry, TheLastReleasedEntryIsKeptCleanForItsNextAcquire) {
    g_unpublished.clear();
    r.set_unpublish_hook(note_unpublished);
    r.reserve(a, "a-name", true);
    g_lm.insert(k(a));
    ASSERT_NE(r.add(a, Scope::Session, 1, 0), 0u);
    ASSERT_TRUE(r.mark_published(a));
    bool empty = false;
    ASSERT_EQ(r.release_newest_checked(a, lm_held, &empty), 1);
    ASSERT_TRUE(empty);
    EXPECT_EQ(g_unpublished.size(), 1u);  // unpublished when its last hold went
    const Entry* kept = r.find(a);
    ASSERT_NE(kept, nullptr);
    EXPECT_TRUE(kept->holds.empty());
    EXPECT_FALSE(kept->has_name);
    EXPECT_FALSE(kept->published);
    EXPECT_EQ(r.find_held(a), nullptr);
    EXPECT_EQ(r.held_row_count(), 0u);
    EXPECT_EQ(r.reconcile(lm_held), 0u);
    // The next acquire, by number this time, gets the same entry and no name from before.
    Entry* again = r.reserve(a, "", false);
    EXPECT_EQ(again, kept);
    ASSERT_NE(r.add(a, Scope::Session, 1, 0), 0u);
    HeldRow row;
    ASSERT_EQ(r.held_rows(&row, 1), 1u);
    EXPECT_FALSE(row.has_name);
    r.release_all(lm_held, lm_release);
    EXPECT_EQ(g_unpublished.size(), 1u);  // not published again, so not unpublished again
    EXPECT_EQ(r.find(a), nullptr);
}

TEST_F(Registry, OnlyOneReleasedEntryIsKept) {
    LockId c = LockId::from_bigint(3, false);
    bool empty = false;
    take(r, a, Scope::Session);
    ASSERT_TRUE(r.release_newest(a, &empty));
    EXPECT_NE(r.find(a), nullptr);
    take(r, b, Scope::Session);
    ASSERT_TRUE(r.release_newest(b, &empty));
    EXPECT_EQ(r.find(a), nullptr);  // b's release let a's entry go
    EXPECT_NE(r.find(b), nullptr);
    // A failed acquire drops the kept entry it had taken back; the next release keeps its own.
    r.reserve(b, "", false);
    r.drop_if_empty(b);
    EXPECT_EQ(r.find(b), nullptr);
    take(r, c, Scope::Session);
    ASSERT_TRUE(r.release_newest(c, &empty));
    EXPECT_NE(r.find(c), nullptr);
    // An acquire of a kept entry makes it an ordinary one: another release does not drop it.
    take(r, c, Scope::Session);
    take(r, a, Scope::Session);
    ASSERT_TRUE(r.release_newest(a, &empty));
    ASSERT_NE(r.find_held(c), nullptr);
    EXPECT_EQ(r.hold_count(), 1u);
}
