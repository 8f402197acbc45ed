// Pure C++ (no postgres.h): SHA-256 through OpenSSL's libcrypto, one context per process
// reused for every key. PostgreSQL's pg_cryptohash (on OpenSSL 3) looks the algorithm up
// again on every call, which costs several times the digest of a short key.
#pragma once

// The boundary rule, checked by the compiler: pure C++ never sees postgres.h, whose macros
// and longjmp-based errors do not mix with destructors. A .cpp file that talks to the server
// includes this header before any PostgreSQL header.
#ifdef POSTGRES_H
#error "sha256.hpp is pure C++: include it before postgres.h (see pg_boundary.hpp)"
#endif

#include <cstddef>
#include <cstdint>

namespace pglocks {

// One digest at a time per process (a backend hashes one key at a time). begin() starts a
// new digest whatever state an earlier one was left in (an error between begin and finish
// only abandons it). Every call returns false when libcrypto fails, never throws.
namespace sha256 {
bool begin() noexcept;
bool update(const uint8_t* data, size_t len) noexcept;
bool finish(uint8_t digest[32]) noexcept;
// The whole digest of one buffer.
bool digest(const uint8_t* data, size_t len, uint8_t out[32]) noexcept;
// The libcrypto this process runs with, e.g. "OpenSSL 3.0.19 27 Jan 2026".
const char* library_version() noexcept;
// Empties OpenSSL's error queue after a failed call.
void clear_errors() noexcept;
// Whether this build digests through EVP (a libcrypto without the deprecated SHA256_*
// functions) rather than SHA256_Init/Update/Final.
bool uses_evp() noexcept;
}  // namespace sha256

}  // namespace pglocks
