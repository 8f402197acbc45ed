"""pglocks_key computed in Python with the standard library only.

Run as a program it prints "key<TAB>pglocks_key" for each argument, or for the
specification's vectors when given none.
"""

import hashlib
import sys

# The specification's vectors: key -> pglocks_key.
SPEC_VECTORS = [
    ("", -2039914840885289964),
    ("some lock", -5006958056254205714),
    ("orders:42", -8476019149258318077),
    ("Grüße", -559005354142841542),
    ("日本語", 8606672379249086371),
]


def pglocks_key(key: str) -> int:
    """The bigint lock that pglocks_acquire(key) takes, as pg_advisory_lock(pglocks_key(key))."""
    digest = hashlib.sha256(key.encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


def main(argv):
    keys = argv if argv else [k for k, _ in SPEC_VECTORS]
    for key in keys:
        print(f"{key}\t{pglocks_key(key)}")


if __name__ == "__main__":
    main(sys.argv[1:])
