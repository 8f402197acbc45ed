#!/usr/bin/env bash
# The Node.js package (clients/node) against the test server, in a database of its own:
#   - its version is the extension's default_version
#   - its TypeScript declarations compile against node-postgres' types (tsc)
#   - its tests, with node's own test runner (node --test), through the real pg driver
#   - what `npm pack` would ship (with the LICENSE, the same as the repository's), and an
#     application that installs it with `npm install <directory>`, and pg at the lowest version
#     its peer dependency allows, and uses it from CommonJS and from an ES module
# Installs node and npm from Debian if missing; pg, typescript and @types/pg come from the
# npm registry, at the versions of clients/node/package-lock.json.
#
# Run by scripts/test.sh against its server (PG* exported); run alone, it starts its own.
set -euo pipefail
source "$(dirname "$0")/../../scripts/lib.sh"
PACKAGE=$PGLOCKS_ROOT/clients/node

wanted=()
command -v node >/dev/null || wanted+=(nodejs)
command -v npm >/dev/null || wanted+=(npm)
ensure_packages "${wanted[@]}"

pglocks_suite_database pglocks_client_node
export PGDATABASE=$PGLOCKS_SUITE_DB
export LC_ALL=C.UTF-8

# The package is built in a copy, so that a run leaves no node_modules in the tree.
WORK=$(mktemp -d /tmp/pglocks-client-node.XXXXXX)
cleanup() {
    local rc=$?
    rm -rf "$WORK"
    (exit $rc)
    _pglocks_suite_cleanup
}
trap cleanup EXIT

passed=0
failed=0
failed_steps=()

npm_quiet() { npm --no-audit --no-fund --loglevel=error "$@"; }

install_package() {
    mkdir -p "$WORK/pkg" &&
        cp -r "$PACKAGE/." "$WORK/pkg/" &&
        rm -rf "$WORK/pkg/node_modules" &&
        (cd "$WORK/pkg" && npm_quiet ci)
}

version_matches_control() {
    local control package
    control=$(sed -n "s/^default_version *= *'\([^']*\)'.*/\1/p" "$PGLOCKS_ROOT/pglocks.control")
    package=$(node -p "require('$WORK/pkg/package.json').version")
    echo "default_version $control, package version $package"
    [ -n "$control" ] && [ "$package" = "$control.0" ]
}

typecheck() { (cd "$WORK/pkg" && npm_quiet run typecheck); }

# One test file at a time: the timing tests measure waits, and the default runs files in
# parallel on a machine the other suites keep busy. A test that hangs (a wait that never
# ends) fails after a minute.
unit_tests() { (cd "$WORK/pkg" && timeout 600 npm test); }

# What the tarball holds: the code, the declarations, the README, the LICENSE (a copy of the
# repository's, byte for byte) and package.json; no tests, no lock file, no node_modules.
packed_files() {
    local files
    files=$(cd "$WORK/pkg" && npm pack --dry-run --json 2>/dev/null |
        node -e 'let s="";process.stdin.on("data",d=>s+=d).on("end",()=>console.log(JSON.parse(s)[0].files.map(f=>f.path).sort().join(" ")))')
    echo "packed: $files"
    [ "$files" = "LICENSE README.md index.d.ts index.js package.json" ] || return 1
    cmp "$PACKAGE/LICENSE" "$PGLOCKS_ROOT/LICENSE" || { echo "clients/node/LICENSE is not the repository's LICENSE"; return 1; }
}

# pg at the floor of the peer dependency (^8.21.0: 8.21.0), the oldest an application may
# bring: withLock reads the transaction status it reports (getTransactionStatus, new in
# 8.21.0), inside a transaction block and out.
application() {
    local app=$WORK/app floor
    floor=$(node -p "require('$WORK/pkg/package.json').peerDependencies.pg.replace(/^\\^/, '')")
    echo "pg $floor, the peer dependency's floor"
    mkdir -p "$app" &&
        (cd "$app" && npm init -y >/dev/null && npm_quiet install "pg@$floor" "$WORK/pkg") &&
        [ "$(node -p "require('$app/node_modules/pg/package.json').version")" = "$floor" ] &&
        cat >"$app/main.cjs" <<'JS' &&
const { Client } = require('pg');
const { key, withLock, LockNotAcquiredError } = require('pglocks');
(async () => {
  const client = new Client();
  await client.connect();
  try {
    if (key('orders:42') !== -8476019149258318077n) throw new Error('wrong key');
    const got = await withLock(client, 'orders:42', async (c) => (await c.query('SELECT pglocks_key($1) AS k', ['orders:42'])).rows[0].k);
    if (got !== '-8476019149258318077') throw new Error(`server key ${got}`);
    // Inside a transaction block: an SQL error of fn is rolled back to withLock's savepoint,
    // the lock released, and the transaction goes on.
    await client.query('BEGIN');
    const err = await withLock(client, 'orders:42', (c) => c.query('SELECT 1/0')).catch((e) => e);
    if (err.code !== '22012') throw new Error(`withLock in a transaction: ${err}`);
    const left = (await client.query('SELECT count(*)::int AS n FROM pglocks_held()')).rows[0].n;
    if (left !== 0) throw new Error(`${left} holds left after withLock in a transaction`);
    await client.query('COMMIT');
    if (typeof LockNotAcquiredError !== 'function') throw new Error('no LockNotAcquiredError');
    console.log('CommonJS application: ok');
  } finally {
    await client.end();
  }
})().catch((err) => { console.error(err); process.exitCode = 1; });
JS
        cat >"$app/main.mjs" <<'JS' &&
import pg from 'pg';
import { key, tryLock, release } from 'pglocks';
const client = new pg.Client();
await client.connect();
try {
  if (key('日本語') !== 8606672379249086371n) throw new Error('wrong key');
  if (!(await tryLock(client, '日本語'))) throw new Error('not taken');
  if (!(await release(client, '日本語'))) throw new Error('not released');
  console.log('ES module application: ok');
} finally {
  await client.end();
}
JS
        (cd "$app" && node main.cjs && node main.mjs)
}

step "npm ci" install_package
step "version is default_version" version_matches_control
step "typescript declarations" typecheck
step "node --test" unit_tests
step "packed files" packed_files
step "an application installs and uses it" application

echo
[ $failed -gt 0 ] && echo "client_node steps that failed: ${failed_steps[*]}"
echo "client_node: $passed of $((passed + failed)) steps ok"
[ $failed -eq 0 ]
