#!/usr/bin/env bash
# Client suite: the programs in examples/ run against the test server through each
# language's ordinary driver or toolchain, in a database of their own.
#   - the Python (psycopg2, with the package in clients/python) and Node.js (pg, with the
#     package in clients/node) examples
#   - the CRC-32 migration check against django-pglocks' and with_advisory_lock's keys
#   - pglocks_key computed in Python (the package's pglocks.key), Node.js, Go, Java, Ruby
#     and Rust, compared with the specification's vectors and with the server
# Installs what is missing from Debian's packages (and pg from the npm registry).
# Expects PGHOST/PGPORT/PGUSER to name a server with pglocks installed (scripts/test.sh).
set -euo pipefail
source "$(dirname "$0")/../../scripts/lib.sh"
EXAMPLES=$PGLOCKS_ROOT/examples

# The key programs print non-ASCII keys and take them as arguments: every runtime must
# agree that bytes are UTF-8, whatever locale the machine was left with.
export LC_ALL=C.UTF-8 PYTHONIOENCODING=utf-8
# The Python examples import the package from clients/python: leave no __pycache__ there.
export PYTHONDONTWRITEBYTECODE=1
# psycopg2 comes from Debian, so Debian's interpreter, not whichever python3 is first on PATH.
PYTHON=/usr/bin/python3

wanted=()
want_package() { wanted+=("$1"); }
# A toolchain already on PATH (a newer one, say) is used as it is.
want_command() { command -v "$1" >/dev/null || want_package "$2"; }

want_package python3
want_package python3-psycopg2
want_command node nodejs
want_command npm npm
want_command javac default-jdk-headless
want_command go golang-go
want_command ruby ruby
want_command cargo cargo
# Rust's standard library has no SHA-256: the example uses sha2, built from Debian's crates.
want_package librust-sha2-dev
ensure_packages "${wanted[@]}"

WORK=$(mktemp -d /tmp/pglocks-clients.XXXXXX)
export PGDATABASE=pglocks_clients_$$
cleanup() {
    dropdb --if-exists "$PGDATABASE" >/dev/null 2>&1 || true
    rm -rf "$WORK"
}
trap cleanup EXIT
createdb "$PGDATABASE"
# The examples create the extension themselves; the key checker expects it already there.
psql -X -q -v ON_ERROR_STOP=1 -c 'CREATE EXTENSION IF NOT EXISTS pglocks' >/dev/null

passed=0
failed=0
failed_steps=()

check_keys() { "$PYTHON" "$EXAMPLES/keys/check_keys.py" "$@"; }

# Builds run in $WORK so that a run leaves no node_modules, target/ or Cargo.lock behind.
# The Node.js example depends on the package in clients/node by a relative path: both are
# copied, in the checkout's layout.
NODE_EXAMPLE=$WORK/examples/node
node_setup() {
    mkdir -p "$NODE_EXAMPLE" "$WORK/clients/node" &&
        cp "$EXAMPLES"/node/{.npmrc,package.json,package-lock.json,example.js,pglocks_key.js} "$NODE_EXAMPLE/" &&
        cp "$PGLOCKS_ROOT"/clients/node/{package.json,index.js,index.d.ts,README.md,LICENSE} "$WORK/clients/node/" &&
        (cd "$NODE_EXAMPLE" && npm ci --no-audit --no-fund --loglevel=error)
}

go_build() {
    # The example has no dependencies: nothing may be fetched, nor a newer toolchain.
    (cd "$EXAMPLES/keys/go" && GOTOOLCHAIN=local GOPROXY=off \
        GOCACHE="$WORK/go-cache" GOPATH="$WORK/go" go build -o "$WORK/pglocks-key-go" .)
}

java_build() {
    javac -Xlint:all -Werror -d "$WORK/java" "$EXAMPLES/keys/java/PglocksKey.java"
}

rust_build() {
    # crates.io is out of reach; Debian's packaged crates stand in for it.
    mkdir -p "$WORK/rust" &&
        cp -r "$EXAMPLES/keys/rust/Cargo.toml" "$EXAMPLES/keys/rust/src" "$WORK/rust/" &&
        (cd "$WORK/rust" && cargo build --release --offline --quiet \
        --config 'source.crates-io.replace-with="debian"' \
        --config 'source.debian.directory="/usr/share/cargo/registry"')
}

# A plausible wrong implementation (the digest read little-endian) must be rejected,
# or the key checks below prove nothing.
checker_rejects_wrong_keys() {
    ! check_keys little-endian -- "$PYTHON" -c '
import hashlib, sys
keys = sys.argv[1:] or ["", "some lock", "orders:42", "Grüße", "日本語"]
for k in keys:
    print(k, int.from_bytes(hashlib.sha256(k.encode()).digest()[:8], "little", signed=True), sep="\t")
' 2>/dev/null
}

step "python example" "$PYTHON" "$EXAMPLES/python/pglocks_example.py"
step "crc32 migration" "$PYTHON" "$EXAMPLES/python/crc32_migration.py"
step "node install" node_setup
step "node example" node "$NODE_EXAMPLE/example.js"

step "key checker rejects a wrong implementation" checker_rejects_wrong_keys
step "keys: python (pglocks.key)" check_keys python -- "$PYTHON" "$EXAMPLES/python/pglocks_key.py"
step "keys: node" check_keys node -- node "$NODE_EXAMPLE/pglocks_key.js"
step "keys: go build" go_build
step "keys: go" check_keys go -- "$WORK/pglocks-key-go"
step "keys: java build" java_build
step "keys: java" check_keys java -- java -cp "$WORK/java" PglocksKey
step "keys: ruby" check_keys ruby -- ruby "$EXAMPLES/keys/ruby/pglocks_key.rb"
step "keys: rust build" rust_build
step "keys: rust" check_keys rust -- "$WORK/rust/target/release/pglocks-key"

echo
[ $failed -gt 0 ] && echo "client steps that failed: ${failed_steps[*]}"
echo "clients: $passed of $((passed + failed)) steps ok"
[ $failed -eq 0 ]
