"""pglocks_key computed in Python: pglocks.key of the package in clients/python, which
uses the standard library only (hashlib).

Run as a program it prints "key<TAB>pglocks_key" for each argument, or for the
specification's vectors when given none.
"""

import os
import sys

# The pglocks package of this checkout (clients/python); an application installs it instead
# (pip install ./clients/python).
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "clients", "python"))
from pglocks import key as pglocks_key  # noqa: E402

# The specification's vectors: key -> pglocks_key.
SPEC_VECTORS = [
    ("", -2039914840885289964),
    ("some lock", -5006958056254205714),
    ("orders:42", -8476019149258318077),
    ("Grüße", -559005354142841542),
    ("日本語", 8606672379249086371),
]


def main(argv):
    keys = argv if argv else [k for k, _ in SPEC_VECTORS]
    for key in keys:
        print(f"{key}\t{pglocks_key(key)}")


if __name__ == "__main__":
    main(sys.argv[1:])
