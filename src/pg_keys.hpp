// Turning SQL key arguments into lock identities: the text hash (SHA-256 of the UTF-8
// bytes, through OpenSSL's libcrypto, sha256.hpp), the CRC-32 key, and the display name.
#pragma once

#include "lock_key.hpp"  // pure C++ first: it refuses to follow postgres.h
#include "pg_boundary.hpp"

namespace pglocks {

// Longest text key pglocks remembers for pglocks_held() and pglocks_locks, in bytes.
constexpr int kMaxNameBytes = 1024;

// A key argument resolved to a lock: the lock identity (in exclusive mode; the caller sets
// `shared`) and, for text keys, the name as given, clipped to kMaxNameBytes.
struct KeyArg {
    LockId id;
    const char* name;
    int name_len;
    bool has_name;
};

int64_t text_key(const text* t);           // through a small cache of short names
int64_t text_key_uncached(const text* t);  // always hashes
int32_t text_crc32(const text* t);
// Whether the bytes are plain ASCII (the same in every server encoding).
bool is_ascii(const char* s, int len);
// The key of the name's UTF-8 bytes followed by `suffix` (which may hold a zero byte, which
// no text has: such a key never equals a plain text key but by a SHA-256 collision).
int64_t text_key_suffixed(const text* t, const char* suffix, size_t suffix_len);

// The lock and display name of a text key (exclusive mode; the caller sets `shared`).
void key_from_text(const text* t, KeyArg* out);

// Reads the key argument(s) starting at argument 0; errors with 22004 on NULL.
// Returns the index of the first argument after the key.
using KeyReader = int (*)(FunctionCallInfo fcinfo, KeyArg* out);
int read_text_key(FunctionCallInfo fcinfo, KeyArg* out);
int read_bigint_key(FunctionCallInfo fcinfo, KeyArg* out);
int read_pair_key(FunctionCallInfo fcinfo, KeyArg* out);

// Errors with SQLSTATE 22004 naming the argument when it is NULL.
void require_not_null(FunctionCallInfo fcinfo, int argno, const char* name);

}  // namespace pglocks
