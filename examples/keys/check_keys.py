#!/usr/bin/env python3
"""Checks a program that computes pglocks_key against the specification and the server.

    check_keys.py NAME -- COMMAND [ARG...]

COMMAND is run twice. Without arguments it must print "key<TAB>pglocks_key" for the
specification's vectors, in the specification's order, with the specification's values.
With more keys as arguments it must print, for each, the value the server's pglocks_key
gives. Connects with the libpq environment (PGHOST, ...); the database must have pglocks.
Exits 1 on any difference.
"""

import hashlib
import subprocess
import sys

import psycopg2

# Copied from the specification, section 2.
SPEC_VECTORS = [
    ("", -2039914840885289964),
    ("some lock", -5006958056254205714),
    ("orders:42", -8476019149258318077),
    ("Grüße", -559005354142841542),
    ("日本語", 8606672379249086371),
]

# Keys where implementations tend to go wrong: digits (a text key, not a number),
# a leading dash (mistaken for an option), composed and decomposed é (no Unicode
# normalisation may happen), a character outside the BMP (a surrogate pair in UTF-16
# languages), spaces at the ends, quotes, and a key longer than one hash block.
EXTRA_KEYS = [
    "x",
    "42",
    "-1",
    "\u00e9",
    "e\u0301",
    "\U0001f512 lock",
    "  padded  ",
    "O'Reilly \"quoted\"",
    "ключ:" + "k" * 5000,
]


def run(command, keys):
    result = subprocess.run(command + keys, stdout=subprocess.PIPE, check=True)
    lines = result.stdout.decode("utf-8").split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    return [tuple(line.rsplit("\t", 1)) for line in lines]


def main(argv):
    if len(argv) < 3 or argv[1] != "--":
        print(__doc__, file=sys.stderr)
        return 2
    name, command = argv[0], argv[2:]
    failures = 0

    def expect(what, got, want):
        nonlocal failures
        if got != want:
            failures += 1
            print(f"FAIL {name}: {what}: got {got!r}, expected {want!r}", file=sys.stderr)

    conn = psycopg2.connect("")
    cur = conn.cursor()

    def server_key(key):
        cur.execute("SELECT pglocks_key(%s)", (key,))
        return cur.fetchone()[0]

    printed = run(command, [])
    expect("vectors printed", [k for k, *_ in printed], [k for k, _ in SPEC_VECTORS])
    for (key, want), line in zip(SPEC_VECTORS, printed):
        got = int(line[1]) if len(line) == 2 else None
        expect(f"pglocks_key({key!r}) against the specification", got, want)
        expect(f"pglocks_key({key!r}) against the server", got, server_key(key))

    printed = run(command, EXTRA_KEYS)
    expect("keys echoed", [k for k, *_ in printed], EXTRA_KEYS)
    for key, line in zip(EXTRA_KEYS, printed):
        got = int(line[1]) if len(line) == 2 else None
        local = int.from_bytes(hashlib.sha256(key.encode("utf-8")).digest()[:8], "big", signed=True)
        expect(f"pglocks_key({key[:20]!r}) against Python's hashlib", got, local)
        expect(f"pglocks_key({key[:20]!r}) against the server", got, server_key(key))

    conn.close()
    count = len(SPEC_VECTORS) + len(EXTRA_KEYS)
    if failures:
        print(f"{name}: {failures} difference(s)", file=sys.stderr)
        return 1
    print(f"{name}: {count} keys agree with the specification and the server")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
