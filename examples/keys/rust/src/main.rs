//! pglocks_key computed in Rust with the sha2 crate.
//!
//! Prints "key<TAB>pglocks_key" for each argument, or for the specification's
//! vectors when given none.

use sha2::{Digest, Sha256};

const SPEC_VECTORS: [&str; 5] = ["", "some lock", "orders:42", "Grüße", "日本語"];

/// The bigint lock that pglocks_acquire(key) takes. A Rust str is always UTF-8.
fn pglocks_key(key: &str) -> i64 {
    let digest = Sha256::digest(key.as_bytes());
    i64::from_be_bytes(digest[..8].try_into().expect("SHA-256 has 32 bytes"))
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let keys: Vec<&str> = if args.is_empty() {
        SPEC_VECTORS.to_vec()
    } else {
        args.iter().map(String::as_str).collect()
    };
    for key in keys {
        println!("{}\t{}", key, pglocks_key(key));
    }
}
