// Pure C++ key derivation and option parsing; see lock_key.hpp.
#include "lock_key.hpp"

#include <array>
#include <climits>
#include <cstring>

namespace pglocks {

int64_t key_from_sha256(const uint8_t digest[32]) {
    uint64_t v = 0;
    for (int i = 0; i < 8; i++) v = (v << 8) | digest[i];
    return static_cast<int64_t>(v);
}

namespace {
constexpr std::array<uint32_t, 256> make_crc_table() {
    std::array<uint32_t, 256> table{};
    for (uint32_t n = 0; n < 256; n++) {
        uint32_t c = n;
        for (int k = 0; k < 8; k++) c = (c & 1) ? 0xEDB88320U ^ (c >> 1) : c >> 1;
        table[n] = c;
    }
    return table;
}
constexpr std::array<uint32_t, 256> kCrcTable = make_crc_table();
}  // namespace

uint32_t crc32_init() { return 0xFFFFFFFFU; }

uint32_t crc32_update(uint32_t state, const uint8_t* data, size_t len) {
    for (size_t i = 0; i < len; i++) state = kCrcTable[(state ^ data[i]) & 0xFF] ^ (state >> 8);
    return state;
}

uint32_t crc32_final(uint32_t state) { return state ^ 0xFFFFFFFFU; }

int32_t crc32_signed(std::string_view bytes) {
    const uint32_t crc = crc32_final(
        crc32_update(crc32_init(), reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size()));
    return static_cast<int32_t>(crc);
}

namespace {
bool ascii_iequals(std::string_view a, std::string_view b) {
    if (a.size() != b.size()) return false;
    for (size_t i = 0; i < a.size(); i++) {
        char x = a[i], y = b[i];
        if (x >= 'A' && x <= 'Z') x = static_cast<char>(x - 'A' + 'a');
        if (x != y) return false;
    }
    return true;
}
}  // namespace

bool parse_scope(std::string_view text, Scope* out) {
    if (ascii_iequals(text, "session")) {
        *out = Scope::Session;
        return true;
    }
    if (ascii_iequals(text, "transaction")) {
        *out = Scope::Transaction;
        return true;
    }
    return false;
}

const char* scope_name(Scope scope) {
    switch (scope) {
        case Scope::Session:
            return "session";
        case Scope::Transaction:
            return "transaction";
        case Scope::Call:
            return "with_lock";
    }
    return "unknown";
}

Timeout timeout_from_interval(int32_t months, int32_t days, int64_t micros) {
    constexpr __int128 kUsecPerDay = 86400LL * 1000000LL;
    const __int128 total = static_cast<__int128>(months) * 30 * kUsecPerDay +
                           static_cast<__int128>(days) * kUsecPerDay + micros;
    if (total < 0) return Timeout{Timeout::Negative, 0};
    const __int128 ms = (total + 999) / 1000;
    if (ms >= INT_MAX) return Timeout{Timeout::Unlimited, 0};
    return Timeout{Timeout::Milliseconds, static_cast<int32_t>(ms)};
}

size_t KeyCache::slot(std::string_view name) noexcept {
    uint64_t h = 14695981039346656037ULL;  // FNV-1a
    for (char c : name) h = (h ^ static_cast<uint8_t>(c)) * 1099511628211ULL;
    return static_cast<size_t>(h ^ (h >> 32)) % kSlots;
}

bool KeyCache::lookup(std::string_view name, size_t slot, int64_t* key) const noexcept {
    if (name.size() > kMaxBytes) return false;
    const Slot& s = slots_[slot];
    if (!s.used || s.len != name.size() || std::memcmp(s.bytes, name.data(), name.size()) != 0)
        return false;
    *key = s.key;
    return true;
}

void KeyCache::store(std::string_view name, size_t slot, int64_t key) noexcept {
    if (name.size() > kMaxBytes) return;
    Slot& s = slots_[slot];
    s.used = true;
    s.len = static_cast<uint8_t>(name.size());
    std::memcpy(s.bytes, name.data(), name.size());
    s.key = key;
}

}  // namespace pglocks
