// SHA-256 through OpenSSL's libcrypto; see sha256.hpp.
//
// Measured on a short key (16 bytes, one block), per digest: the SHA256_Init/Update/Final
// functions about 70 ns, EVP with a digest fetched once and a reused context about 160 ns
// (EVP_DigestInit_ex2 alone runs some 550 instructions), pg_cryptohash on OpenSSL 3 about
// 900 ns. OpenSSL 3 marks the SHA256_* functions deprecated in favour of EVP but builds and
// maintains them by default (they share the provider's block function); a libcrypto built
// without them (no-deprecated) gets the EVP path.
#define OPENSSL_SUPPRESS_DEPRECATED  // SHA256_Init and friends, deliberately
#include "sha256.hpp"

#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/opensslv.h>
#include <openssl/sha.h>

#if OPENSSL_VERSION_NUMBER < 0x10100000L
#error "pglocks needs OpenSSL 1.1.0 or later"
#endif

#if OPENSSL_VERSION_NUMBER >= 0x30000000L && defined(OPENSSL_NO_DEPRECATED_3_0)
#define PGLOCKS_SHA256_EVP 1
#endif

namespace pglocks {
namespace sha256 {

#ifndef PGLOCKS_SHA256_EVP

namespace {
SHA256_CTX g_ctx;
}  // namespace

bool begin() noexcept { return SHA256_Init(&g_ctx) == 1; }

bool update(const uint8_t* data, size_t len) noexcept {
    return SHA256_Update(&g_ctx, data, len) == 1;
}

bool finish(uint8_t digest[32]) noexcept { return SHA256_Final(digest, &g_ctx) == 1; }

#else

namespace {
// Owned for the life of the process and never freed: a backend keeps hashing keys until it
// exits, and the operating system takes the memory back then.
EVP_MD* g_md = nullptr;
EVP_MD_CTX* g_ctx = nullptr;

bool ready() noexcept {
    if (g_ctx != nullptr) return true;
    // An explicit fetch: EVP_sha256() would make every init look the algorithm up again.
    EVP_MD* md = EVP_MD_fetch(nullptr, "SHA256", nullptr);
    if (md == nullptr) return false;
    EVP_MD_CTX* ctx = EVP_MD_CTX_new();
    if (ctx == nullptr) {
        EVP_MD_free(md);
        return false;
    }
    g_md = md;
    g_ctx = ctx;
    return true;
}
}  // namespace

bool begin() noexcept { return ready() && EVP_DigestInit_ex2(g_ctx, g_md, nullptr) == 1; }

bool update(const uint8_t* data, size_t len) noexcept {
    return EVP_DigestUpdate(g_ctx, data, len) == 1;
}

bool finish(uint8_t digest[32]) noexcept {
    unsigned int len = 0;
    return EVP_DigestFinal_ex(g_ctx, digest, &len) == 1 && len == 32;
}

#endif

bool digest(const uint8_t* data, size_t len, uint8_t out[32]) noexcept {
    return begin() && update(data, len) && finish(out);
}

const char* library_version() noexcept { return OpenSSL_version(OPENSSL_VERSION); }

// A failure leaves entries in OpenSSL's per-thread error queue, which the server's own use of
// OpenSSL (SSL connections) may share: they must not be left for it to find.
void clear_errors() noexcept { ERR_clear_error(); }

bool uses_evp() noexcept {
#ifdef PGLOCKS_SHA256_EVP
    return true;
#else
    return false;
#endif
}

}  // namespace sha256
}  // namespace pglocks
