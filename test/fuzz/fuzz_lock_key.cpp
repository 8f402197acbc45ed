// libFuzzer target for src/lock_key.cpp: option parsing, the interval-to-timeout conversion,
// CRC-32 and the lock identities, each checked against an independent reference.
#include <fuzzer/FuzzedDataProvider.h>
#include <zlib.h>

#include <climits>
#include <cstdio>
#include <cstdlib>
#include <string>

#include "lock_key.hpp"

using namespace pglocks;

namespace {

[[noreturn]] void fail(const char* what) {
    std::fprintf(stderr, "fuzz_lock_key: %s\n", what);
    std::abort();
}
#define CHECK(cond)                                \
    do {                                           \
        if (!(cond)) fail("check failed: " #cond); \
    } while (0)

void check_scope(const std::string& s) {
    Scope got = Scope::Call;
    const bool ok = parse_scope(s, &got);
    // Reference: ASCII-only case folding, no trimming, no prefixes.
    std::string folded = s;
    for (char& c : folded)
        if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
    if (folded == "session") {
        CHECK(ok && got == Scope::Session);
    } else if (folded == "transaction") {
        CHECK(ok && got == Scope::Transaction);
    } else {
        CHECK(!ok);
    }
    if (ok) {
        // The name it prints parses back to the same scope.
        Scope again = Scope::Call;
        CHECK(parse_scope(scope_name(got), &again) && again == got);
    }
}

void check_timeout(int32_t months, int32_t days, int64_t micros) {
    const Timeout t = timeout_from_interval(months, days, micros);
    const __int128 total = static_cast<__int128>(months) * 30 * 86400 * 1000000 +
                           static_cast<__int128>(days) * 86400 * 1000000 + micros;
    if (total < 0) {
        CHECK(t.kind == Timeout::Negative);
        return;
    }
    if (t.kind == Timeout::Unlimited) {
        // Only beyond what the server's millisecond timer can arm.
        CHECK(total > static_cast<__int128>(INT_MAX - 1) * 1000);
        return;
    }
    CHECK(t.kind == Timeout::Milliseconds);
    CHECK(t.ms >= 0 && t.ms < INT_MAX);
    // Rounded up to whole milliseconds: never shorter than asked, at most 1 ms longer,
    // and zero only for zero.
    CHECK(static_cast<__int128>(t.ms) * 1000 >= total);
    CHECK(static_cast<__int128>(t.ms) * 1000 - total < 1000);
    CHECK((t.ms == 0) == (total == 0));
}

void check_crc(const std::string& bytes, size_t split) {
    const auto* p = reinterpret_cast<const uint8_t*>(bytes.data());
    const uLong ref = crc32(crc32(0L, Z_NULL, 0), p, static_cast<uInt>(bytes.size()));
    CHECK(crc32_signed(bytes) == static_cast<int32_t>(static_cast<uint32_t>(ref)));
    // Fed in two pieces, as the server feeds a key chunk by chunk.
    split = bytes.empty() ? 0 : split % (bytes.size() + 1);
    uint32_t st = crc32_init();
    st = crc32_update(st, p, split);
    st = crc32_update(st, p + split, bytes.size() - split);
    CHECK(crc32_final(st) == static_cast<uint32_t>(ref));
}

void check_ids(int64_t big, int32_t k1, int32_t k2, bool shared, const uint8_t digest[32]) {
    const LockId b = LockId::from_bigint(big, shared);
    CHECK(b.bigint() == big && b.form == KeyForm::Bigint && b.shared == shared);
    // The LOCKTAG fields of pg_advisory_lock(bigint): high and low 32 bits.
    CHECK(b.hi == static_cast<uint32_t>(static_cast<uint64_t>(big) >> 32));
    CHECK(b.lo == static_cast<uint32_t>(static_cast<uint64_t>(big)));
    const LockId p = LockId::from_pair(k1, k2, shared);
    CHECK(p.key1() == k1 && p.key2() == k2 && p.form == KeyForm::Pair);
    // A pair and a bigint with the same bits are different locks.
    CHECK(!(p == LockId::from_bigint(p.bigint(), shared)));
    LockId other = b;
    other.shared = !shared;
    CHECK(!(other == b));
    CHECK(LockIdHash()(b) == LockIdHash()(LockId::from_bigint(big, shared)));

    uint64_t be = 0;
    for (int i = 0; i < 8; i++) be = be << 8 | digest[i];
    CHECK(key_from_sha256(digest) == static_cast<int64_t>(be));
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    FuzzedDataProvider in(data, size);
    uint8_t digest[32];
    switch (in.ConsumeIntegralInRange<int>(0, 3)) {
        case 0: {
            // Often near the valid words, so case and length variants get explored.
            static const char* const words[] = {
                "session",   "transaction", "Session",  "TRANSACTION",
                "with_lock", "sessio",      "session ", ""};
            std::string s = in.ConsumeBool() ? words[in.ConsumeIntegralInRange<int>(0, 7)]
                                             : in.ConsumeRandomLengthString(32);
            if (!s.empty() && in.ConsumeBool()) {
                size_t at = in.ConsumeIntegralInRange<size_t>(0, s.size() - 1);
                s[at] = static_cast<char>(in.ConsumeIntegral<uint8_t>());
            }
            check_scope(s);
            break;
        }
        case 1: {
            const int32_t months = in.ConsumeIntegral<int32_t>();
            const int32_t days = in.ConsumeIntegral<int32_t>();
            const int64_t micros = in.ConsumeIntegral<int64_t>();
            check_timeout(months, days, micros);
            // Small values too, where rounding matters.
            check_timeout(0, 0, micros % 5000000);
            check_timeout(0, days % 40, micros % 86400000000LL);
            break;
        }
        case 2: {
            const size_t split = in.ConsumeIntegral<size_t>();
            check_crc(in.ConsumeRemainingBytesAsString(), split);
            break;
        }
        default: {
            const int64_t big = in.ConsumeIntegral<int64_t>();
            const int32_t k1 = in.ConsumeIntegral<int32_t>();
            const int32_t k2 = in.ConsumeIntegral<int32_t>();
            const bool shared = in.ConsumeBool();
            for (uint8_t& b : digest) b = in.ConsumeIntegral<uint8_t>();
            check_ids(big, k1, k2, shared, digest);
            break;
        }
    }
    return 0;
}
