// Pure C++ (no postgres.h): lock identities, key derivation from a digest, CRC-32,
// and the parsing of the scope and timeout options. Unit-tested on its own.
#pragma once

// The boundary rule, checked by the compiler: pure C++ never sees postgres.h, whose macros
// and longjmp-based errors do not mix with destructors. A .cpp file that talks to the server
// includes this header before any PostgreSQL header.
#ifdef POSTGRES_H
#error "lock_key.hpp is pure C++: include it before postgres.h (see pg_boundary.hpp)"
#endif

#include <cstddef>
#include <cstdint>
#include <string_view>

namespace pglocks {

// The two advisory-lock forms of the server (objsubid 1 and 2 in pg_locks).
enum class KeyForm : uint8_t { Bigint = 1, Pair = 2 };

// One lock of the advisory-lock space of the current database, in one mode.
// hi/lo are LOCKTAG fields 2 and 3, exactly as pg_advisory_lock fills them.
struct LockId {
    uint32_t hi = 0;
    uint32_t lo = 0;
    KeyForm form = KeyForm::Bigint;
    bool shared = false;

    static LockId from_bigint(int64_t key, bool shared) {
        const auto u = static_cast<uint64_t>(key);
        return LockId{static_cast<uint32_t>(u >> 32), static_cast<uint32_t>(u), KeyForm::Bigint,
                      shared};
    }
    static LockId from_pair(int32_t key1, int32_t key2, bool shared) {
        return LockId{static_cast<uint32_t>(key1), static_cast<uint32_t>(key2), KeyForm::Pair,
                      shared};
    }
    int64_t bigint() const { return static_cast<int64_t>((static_cast<uint64_t>(hi) << 32) | lo); }
    int32_t key1() const { return static_cast<int32_t>(hi); }
    int32_t key2() const { return static_cast<int32_t>(lo); }

    bool operator==(const LockId& o) const {
        return hi == o.hi && lo == o.lo && form == o.form && shared == o.shared;
    }
};

struct LockIdHash {
    size_t operator()(const LockId& id) const noexcept {
        uint64_t x = (static_cast<uint64_t>(id.hi) << 32) ^ id.lo;
        x ^= (static_cast<uint64_t>(id.form) << 1) | static_cast<uint64_t>(id.shared);
        // splitmix64 finaliser: keys are often sequential integers.
        x ^= x >> 30;
        x *= 0xbf58476d1ce4e5b9ULL;
        x ^= x >> 27;
        x *= 0x94d049bb133111ebULL;
        x ^= x >> 31;
        return static_cast<size_t>(x);
    }
};

// pglocks_key: the first 8 bytes of the SHA-256 digest, big-endian, two's complement.
int64_t key_from_sha256(const uint8_t digest[32]);

// zlib's CRC-32, incrementally: start with crc32_init(), feed bytes, finish with crc32_final().
uint32_t crc32_init();
uint32_t crc32_update(uint32_t state, const uint8_t* data, size_t len);
uint32_t crc32_final(uint32_t state);
int32_t crc32_signed(std::string_view bytes);

enum class Scope : uint8_t { Session = 0, Transaction = 1, Call = 2 };
constexpr int kScopeCount = 3;

// "session" or "transaction", ASCII case-insensitive; false for anything else.
bool parse_scope(std::string_view text, Scope* out);
const char* scope_name(Scope scope);

// An interval converted to a lock wait. Months count as 30 days, as in the server's
// interval arithmetic.
struct Timeout {
    enum Kind { Negative, Milliseconds, Unlimited } kind;
    int32_t ms;  // meaningful for Milliseconds: 0 means try once
};
// Timeouts too large for the server's millisecond timer (about 24.8 days) wait without limit;
// a positive timeout below one millisecond rounds up to one.
Timeout timeout_from_interval(int32_t months, int32_t days, int64_t micros);

// A small direct-mapped cache of text key -> pglocks_key for short names, because
// applications take the same few lock names again and again and SHA-256 costs far more
// than a lookup. Keys are the name's bytes as the server holds them (one database, one
// encoding per backend).
class KeyCache {
public:
    static constexpr size_t kMaxBytes = 64;
    static constexpr size_t kSlots = 256;
    bool lookup(std::string_view name, int64_t* key) const noexcept {
        return lookup(name, slot(name), key);
    }
    void store(std::string_view name, int64_t key) noexcept { store(name, slot(name), key); }
    // The same with the name's slot computed once for a lookup and the store after a miss.
    static size_t slot(std::string_view name) noexcept;
    bool lookup(std::string_view name, size_t slot, int64_t* key) const noexcept;
    void store(std::string_view name, size_t slot, int64_t key) noexcept;

private:
    struct Slot {
        uint8_t len = 0;
        bool used = false;
        char bytes[kMaxBytes];
        int64_t key = 0;
    };
    Slot slots_[kSlots];
};

}  // namespace pglocks
