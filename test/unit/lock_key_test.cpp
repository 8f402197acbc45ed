// Unit tests of the pure key code. Expected digests and CRCs were computed with Python's
// hashlib and zlib, independently of this implementation.
#include <gtest/gtest.h>

#include <climits>
#include <memory>
#include <string>

#include "lock_key.hpp"

using namespace pglocks;

namespace {
std::array<uint8_t, 32> digest_from_hex(const std::string& hex) {
    std::array<uint8_t, 32> d{};
    for (size_t i = 0; i < 32; i++)
        d[i] = static_cast<uint8_t>(std::stoul(hex.substr(2 * i, 2), nullptr, 16));
    return d;
}
}  // namespace

TEST(KeyFromSha256, SpecVectors) {
    // sha256('') and sha256('日本語'), full digests from hashlib.
    auto empty =
        digest_from_hex("e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
    EXPECT_EQ(key_from_sha256(empty.data()), -2039914840885289964LL);
    auto nihongo =
        digest_from_hex("77710aedc74ecfa33685e33a6c7df5cc83004da1bdcef7fb280f5c2b2e97e0a5");
    EXPECT_EQ(key_from_sha256(nihongo.data()), 8606672379249086371LL);
}

TEST(KeyFromSha256, BigEndianTwosComplement) {
    std::array<uint8_t, 32> d{};
    d[7] = 1;
    EXPECT_EQ(key_from_sha256(d.data()), 1);
    d = {};
    d[0] = 0x80;
    EXPECT_EQ(key_from_sha256(d.data()), LLONG_MIN);
    d.fill(0xff);
    EXPECT_EQ(key_from_sha256(d.data()), -1);
    d = {};
    d[8] = 0xff;  // bytes past the eighth never matter
    EXPECT_EQ(key_from_sha256(d.data()), 0);
}

TEST(Crc32, MatchesZlib) {
    EXPECT_EQ(crc32_signed(""), 0);
    EXPECT_EQ(crc32_signed("some lock"), -205618829);
    EXPECT_EQ(crc32_signed("orders:42"), 218055877);
    EXPECT_EQ(crc32_signed("Grüße"), -70029199);
    EXPECT_EQ(crc32_signed("日本語"), -1475652891);
    EXPECT_EQ(crc32_signed("123456789"), static_cast<int32_t>(0xCBF43926U));
}

TEST(Crc32, IncrementalEqualsOneShot) {
    const std::string s = "the quick brown fox jumps over the lazy dog";
    uint32_t st = crc32_init();
    for (char c : s) st = crc32_update(st, reinterpret_cast<const uint8_t*>(&c), 1);
    EXPECT_EQ(static_cast<int32_t>(crc32_final(st)), crc32_signed(s));
}

TEST(Scope, Parse) {
    Scope s;
    EXPECT_TRUE(parse_scope("session", &s));
    EXPECT_EQ(s, Scope::Session);
    EXPECT_TRUE(parse_scope("TRANSACTION", &s));
    EXPECT_EQ(s, Scope::Transaction);
    EXPECT_FALSE(parse_scope("xact", &s));
    EXPECT_FALSE(parse_scope("", &s));
    EXPECT_FALSE(parse_scope("session ", &s));
    EXPECT_FALSE(parse_scope("with_lock", &s));  // internal only
    EXPECT_STREQ(scope_name(Scope::Call), "with_lock");
}

TEST(Timeout, FromInterval) {
    auto t = timeout_from_interval(0, 0, 2000000);
    EXPECT_EQ(t.kind, Timeout::Milliseconds);
    EXPECT_EQ(t.ms, 2000);
    t = timeout_from_interval(0, 0, 0);
    EXPECT_EQ(t.kind, Timeout::Milliseconds);
    EXPECT_EQ(t.ms, 0);
    t = timeout_from_interval(0, 0, 1);  // rounds up: a positive timeout never becomes a try
    EXPECT_EQ(t.ms, 1);
    t = timeout_from_interval(0, 1, -3600000000LL);  // '1 day -1 hour'
    EXPECT_EQ(t.ms, 23 * 3600 * 1000);
    EXPECT_EQ(timeout_from_interval(0, 1, -90000000000LL).kind, Timeout::Negative);
    EXPECT_EQ(timeout_from_interval(0, 0, -1).kind, Timeout::Negative);
    EXPECT_EQ(timeout_from_interval(1, 0, 0).kind, Timeout::Unlimited);  // 30 days > INT_MAX ms
    EXPECT_EQ(timeout_from_interval(0, 24, 0).ms, 24 * 86400 * 1000);
    EXPECT_EQ(timeout_from_interval(INT_MAX, INT_MAX, LLONG_MAX).kind, Timeout::Unlimited);
    EXPECT_EQ(timeout_from_interval(INT_MIN, INT_MIN, LLONG_MIN).kind, Timeout::Negative);
}

TEST(LockId, FieldsMatchCoreAdvisoryLocks) {
    // pg_advisory_lock(bigint) puts the high half in field 2 and the low half in field 3.
    auto id = LockId::from_bigint(-2, false);
    EXPECT_EQ(id.hi, 0xFFFFFFFFU);
    EXPECT_EQ(id.lo, 0xFFFFFFFEU);
    EXPECT_EQ(id.bigint(), -2);
    auto pair = LockId::from_pair(-1, 7, true);
    EXPECT_EQ(pair.key1(), -1);
    EXPECT_EQ(pair.key2(), 7);
    EXPECT_FALSE(pair == LockId::from_pair(-1, 7, false));
    EXPECT_FALSE(LockId::from_bigint(5, false) == LockId::from_pair(0, 5, false));
}

TEST(KeyCache, HitsOnlyForTheSameBytes) {
    auto cache = std::make_unique<KeyCache>();
    int64_t key = 0;
    EXPECT_FALSE(cache->lookup("job", &key));
    cache->store("job", 42);
    ASSERT_TRUE(cache->lookup("job", &key));
    EXPECT_EQ(key, 42);
    EXPECT_FALSE(cache->lookup("jo", &key));
    EXPECT_FALSE(cache->lookup(std::string_view("job\0", 4), &key));
    cache->store("", 7);  // the empty name is a key like any other
    ASSERT_TRUE(cache->lookup("", &key));
    EXPECT_EQ(key, 7);
    const std::string long_name(KeyCache::kMaxBytes + 1, 'x');
    cache->store(long_name, 9);  // too long to cache: never stored
    EXPECT_FALSE(cache->lookup(long_name, &key));
    // Colliding names replace each other; a lookup never returns another name's key.
    for (int i = 0; i < 10000; i++) cache->store("name-" + std::to_string(i), i);
    for (int i = 0; i < 10000; i++) {
        if (cache->lookup("name-" + std::to_string(i), &key)) {
            EXPECT_EQ(key, i);
        }
    }
}

// The keys the tests of terminated waiters use (test/t/006_name_table.pl, the stress and
// valgrind suites) must keep colliding in every per-backend cache, or those tests would
// stop testing the collision: the slot of pg_names.cpp's cache of published names
// (LockIdHash modulo its 16 slots) and the slot of KeyCache.
TEST(CacheCollisions, KeysOfTheTerminatedWaiterTests) {
    constexpr size_t kLocalNames = 16;  // g_local in src/pg_names.cpp
    const auto local_slot = [](int64_t key) {
        return LockIdHash()(LockId::from_bigint(key, false)) % kLocalNames;
    };
    // pglocks_key('A'), pglocks_key('B11'), pglocks_key('collide-a'), pglocks_key('collide-b752')
    const int64_t a = 6168500820899059065LL, b11 = -4000924426815012653LL;
    const int64_t ca = 5385071701497589275LL, cb = 7554912647580355911LL;
    EXPECT_EQ(local_slot(a), local_slot(b11));
    EXPECT_EQ(local_slot(ca), local_slot(cb));

    auto cache = std::make_unique<KeyCache>();
    int64_t key = 0;
    cache->store("collide-a", ca);
    cache->store("collide-b752", cb);
    EXPECT_FALSE(cache->lookup("collide-a", &key)) << "collide-a and collide-b752 share a slot";
    ASSERT_TRUE(cache->lookup("collide-b752", &key));
    EXPECT_EQ(key, cb);
}
