// SHA-256 through libcrypto (sha256.hpp): the specification's key vectors, the published
// digests of FIPS 180-2, and a digest fed in pieces equal to the one-shot digest. The unit
// suite runs these tests twice: in run_unit_tests with the SHA256_* functions, and in
// run_unit_tests_evp built as against a libcrypto without them (the EVP branch).
#include <gtest/gtest.h>
#include <openssl/evp.h>
#include <openssl/opensslv.h>

#include <string>

#include "lock_key.hpp"
#include "sha256.hpp"

using namespace pglocks;

namespace {
std::string hex(const uint8_t* d) {
    static const char* digits = "0123456789abcdef";
    std::string s;
    for (int i = 0; i < 32; i++) {
        s += digits[d[i] >> 4];
        s += digits[d[i] & 15];
    }
    return s;
}

int64_t key_of(const std::string& s) {
    uint8_t d[32];
    EXPECT_TRUE(sha256::digest(reinterpret_cast<const uint8_t*>(s.data()), s.size(), d));
    return key_from_sha256(d);
}
}  // namespace

// Which branch of sha256.cpp this binary was built with: the one its OpenSSL headers select
// (EVP where OpenSSL 3's headers hide the deprecated SHA256_* functions, whether by
// OPENSSL_NO_DEPRECATED or by a build of OpenSSL without them). The EVP binary must not
// quietly test the SHA256_* functions again: with headers that do not select EVP (OpenSSL
// 1.1, which deprecates nothing here) it says it has nothing to test.
#if OPENSSL_VERSION_NUMBER >= 0x30000000L && defined(OPENSSL_NO_DEPRECATED_3_0)
constexpr bool kHeadersSelectEvp = true;
#else
constexpr bool kHeadersSelectEvp = false;
#endif

TEST(Sha256, BuiltWithTheBranchTheHeadersSelect) {
    EXPECT_EQ(sha256::uses_evp(), kHeadersSelectEvp);
}

#ifdef PGLOCKS_EXPECT_SHA256_EVP
TEST(Sha256, EvpBinaryTestsTheEvpBranch) {
    if (!kHeadersSelectEvp)
        GTEST_SKIP() << "this OpenSSL's headers keep SHA256_*: no EVP branch to test";
    EXPECT_TRUE(sha256::uses_evp());
}
#endif

TEST(Sha256, Fips180Vectors) {
    uint8_t d[32];
    ASSERT_TRUE(sha256::digest(reinterpret_cast<const uint8_t*>("abc"), 3, d));
    EXPECT_EQ(hex(d), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    const std::string two = "abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq";
    ASSERT_TRUE(sha256::digest(reinterpret_cast<const uint8_t*>(two.data()), two.size(), d));
    EXPECT_EQ(hex(d), "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1");
}

TEST(Sha256, SpecKeyVectors) {
    EXPECT_EQ(key_of(""), -2039914840885289964LL);
    EXPECT_EQ(key_of("some lock"), -5006958056254205714LL);
    EXPECT_EQ(key_of("orders:42"), -8476019149258318077LL);
    EXPECT_EQ(key_of("Gr\xc3\xbc\xc3\x9f"
                     "e"),
              -559005354142841542LL);
    EXPECT_EQ(key_of("\xe6\x97\xa5\xe6\x9c\xac\xe8\xaa\x9e"), 8606672379249086371LL);
}

TEST(Sha256, PiecesEqualOneShot) {
    std::string big;
    for (int i = 0; i < 100000; i++) big += static_cast<char>('a' + i % 26);
    uint8_t whole[32], pieces[32];
    ASSERT_TRUE(sha256::digest(reinterpret_cast<const uint8_t*>(big.data()), big.size(), whole));
    ASSERT_TRUE(sha256::begin());
    for (size_t off = 0; off < big.size(); off += 777) {
        const size_t n = big.size() - off < 777 ? big.size() - off : 777;
        ASSERT_TRUE(sha256::update(reinterpret_cast<const uint8_t*>(big.data()) + off, n));
    }
    ASSERT_TRUE(sha256::finish(pieces));
    EXPECT_EQ(hex(whole), hex(pieces));
}

TEST(Sha256, AbandonedDigestDoesNotLeakIntoTheNext) {
    // An error between begin and finish (a cancelled huge key) abandons a digest.
    ASSERT_TRUE(sha256::begin());
    ASSERT_TRUE(sha256::update(reinterpret_cast<const uint8_t*>("garbage"), 7));
    EXPECT_EQ(key_of("some lock"), -5006958056254205714LL);
}
