// Key derivation in the server: pglocks_key(), pglocks_crc32() and the key arguments of
// every lock function. Hashing streams the key in chunks, converting to UTF-8 per chunk
// when the database encoding is not UTF-8, so a huge key is hashed without a full copy
// and the call stays cancellable.
// Pure C++ first: it refuses to follow postgres.h.
#include "sha256.hpp"

#include "pg_keys.hpp"

extern "C" {
#include "mb/pg_wchar.h"
#include "miscadmin.h"
#include "utils/builtins.h"
#include "utils/lsyscache.h"
}

namespace pglocks {

bool is_ascii(const char* s, int len) {
    for (int i = 0; i < len; i++)
        if (static_cast<unsigned char>(s[i]) & 0x80) return false;
    return true;
}

namespace {

constexpr int kChunkBytes = 1 << 20;

using ChunkFn = void (*)(void* state, const uint8_t* data, size_t len);

// Feeds the UTF-8 form of the text to fn, chunk by chunk.
void for_each_utf8_chunk(const text* t, ChunkFn fn, void* state) {
    const char* data = VARDATA_ANY(t);
    const int len = VARSIZE_ANY_EXHDR(t);
    const int enc = GetDatabaseEncoding();
    // SQL_ASCII has no known encoding: its bytes are hashed as they are.
    const bool as_is = enc == PG_UTF8 || enc == PG_SQL_ASCII;
    if (len == 0) {
        fn(state, reinterpret_cast<const uint8_t*>(data), 0);
        return;
    }
    int off = 0;
    while (off < len) {
        CHECK_FOR_INTERRUPTS();
        int n = len - off < kChunkBytes ? len - off : kChunkBytes;
        const char* chunk = data + off;
        if (as_is || is_ascii(chunk, n)) {
            fn(state, reinterpret_cast<const uint8_t*>(chunk), n);
        } else {
            // Cut at a character boundary; a character is never split between chunks.
            n = pg_mbcliplen(chunk, len - off, n);
            if (n <= 0) n = pg_mblen(chunk);
            char* utf8 = pg_server_to_any(chunk, n, PG_UTF8);
            const size_t ulen = utf8 == chunk ? static_cast<size_t>(n) : strlen(utf8);
            fn(state, reinterpret_cast<const uint8_t*>(utf8), ulen);
            if (utf8 != chunk) pfree(utf8);
        }
        off += n;
    }
}

[[noreturn]] void sha256_failed() {
    sha256::clear_errors();
    ereport(ERROR, (errcode(ERRCODE_INTERNAL_ERROR),
                    errmsg("could not compute the SHA-256 digest of a pglocks key"),
                    errdetail("libcrypto (%s) failed.", sha256::library_version())));
    pg_unreachable();
}

void sha_chunk(void*, const uint8_t* data, size_t len) {
    if (!sha256::update(data, len)) sha256_failed();
}

void crc_chunk(void* state, const uint8_t* data, size_t len) {
    auto* crc = static_cast<uint32_t*>(state);
    *crc = crc32_update(*crc, data, len);
}

}  // namespace

namespace {
KeyCache g_key_cache;  // see lock_key.hpp
}  // namespace

int64_t text_key(const text* t) {
    const std::string_view bytes(VARDATA_ANY(t), VARSIZE_ANY_EXHDR(t));
    if (bytes.size() > KeyCache::kMaxBytes) return text_key_uncached(t);
    const size_t slot = KeyCache::slot(bytes);
    int64_t cached;
    if (g_key_cache.lookup(bytes, slot, &cached)) return cached;
    const int64_t key = text_key_uncached(t);
    g_key_cache.store(bytes, slot, key);
    return key;
}

int64_t text_key_uncached(const text* t) {
    uint8_t digest[32];
    if (!sha256::begin()) sha256_failed();
    for_each_utf8_chunk(t, sha_chunk, nullptr);
    if (!sha256::finish(digest)) sha256_failed();
    return key_from_sha256(digest);
}

int64_t text_key_suffixed(const text* t, const char* suffix, size_t suffix_len) {
    uint8_t digest[32];
    if (!sha256::begin()) sha256_failed();
    for_each_utf8_chunk(t, sha_chunk, nullptr);
    sha_chunk(nullptr, reinterpret_cast<const uint8_t*>(suffix), suffix_len);
    if (!sha256::finish(digest)) sha256_failed();
    return key_from_sha256(digest);
}

int32_t text_crc32(const text* t) {
    uint32_t crc = crc32_init();
    for_each_utf8_chunk(t, crc_chunk, &crc);
    return static_cast<int32_t>(crc32_final(crc));
}

void require_not_null(FunctionCallInfo fcinfo, int argno, const char* name) {
    if (PG_ARGISNULL(argno))
        ereport(ERROR, (errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
                        errmsg("argument \"%s\" of %s must not be null", name,
                               get_func_name(fcinfo->flinfo->fn_oid))));
}

int read_text_key(FunctionCallInfo fcinfo, KeyArg* out) {
    require_not_null(fcinfo, 0, "key");
    key_from_text(PG_GETARG_TEXT_PP(0), out);
    return 1;
}

void key_from_text(const text* t, KeyArg* out) {
    out->id = LockId::from_bigint(text_key(t), false);
    const char* data = VARDATA_ANY(t);
    const int len = VARSIZE_ANY_EXHDR(t);
    out->name = data;
    out->name_len = len <= kMaxNameBytes ? len : pg_mbcliplen(data, len, kMaxNameBytes);
    out->has_name = true;
}

int read_bigint_key(FunctionCallInfo fcinfo, KeyArg* out) {
    require_not_null(fcinfo, 0, "key");
    out->id = LockId::from_bigint(PG_GETARG_INT64(0), false);
    out->name = nullptr;
    out->name_len = 0;
    out->has_name = false;
    return 1;
}

int read_pair_key(FunctionCallInfo fcinfo, KeyArg* out) {
    require_not_null(fcinfo, 0, "key1");
    require_not_null(fcinfo, 1, "key2");
    out->id = LockId::from_pair(PG_GETARG_INT32(0), PG_GETARG_INT32(1), false);
    out->name = nullptr;
    out->name_len = 0;
    out->has_name = false;
    return 2;
}

}  // namespace pglocks

PGLOCKS_FUNCTION(pglocks_key) { return Int64GetDatum(pglocks::text_key(PG_GETARG_TEXT_PP(0))); }

PGLOCKS_FUNCTION(pglocks_crc32) { return Int32GetDatum(pglocks::text_crc32(PG_GETARG_TEXT_PP(0))); }
