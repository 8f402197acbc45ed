# Shared set-up for scripts/demo.sh, scripts/test.sh, the suites and the benchmarks (sourced,
# not run).
#
#   step NAME COMMAND...   one check of a suite that reports every check at its end
#   pglocks_setup          install missing Debian packages, build and install pglocks
#   pglocks_start_server   start a throwaway server in a temporary directory, on its own
#                          socket and port, and export PG* for it; stopped and removed on exit.
#                          With PGHOST set beforehand, the existing server is used instead.
set -euo pipefail

PGLOCKS_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
PGLOCKS_PGVER=${PGLOCKS_PGVER:-15}
PGLOCKS_PACKAGES=(build-essential g++ make libssl-dev clang-"${PGLOCKS_CLANG:-14}" llvm-"${PGLOCKS_CLANG:-14}"
    postgresql-"$PGLOCKS_PGVER" postgresql-server-dev-"$PGLOCKS_PGVER" postgresql-client-"$PGLOCKS_PGVER"
    libgtest-dev pgbouncer python3 python3-psycopg2 libipc-run-perl procps iproute2)

log() { printf '\n== %s\n' "$*" >&2; }

# The step runner of the suites that run a list of checks and report them all at the end
# (client_node, client_python, clients): `step NAME COMMAND [ARGS...]` runs the command,
# logged under the suite's name (its script's), and counts it in the caller's `passed` or
# `failed`; a failed step's name is added to `failed_steps` and reported at once.
step() {
    local name=$1
    shift
    log "$(basename "$0" .sh): $name"
    if "$@"; then
        passed=$((${passed:-0} + 1))
    else
        failed=$((${failed:-0} + 1))
        failed_steps+=("$name")
        echo "FAILED: $name" >&2
    fi
}

as_root() {
    if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi
}

# Installs those of the given Debian packages that are missing.
ensure_packages() {
    local missing=() p
    for p in "$@"; do
        [ "$(dpkg-query -W -f='${Status}' "$p" 2>/dev/null)" = "install ok installed" ] || missing+=("$p")
    done
    [ ${#missing[@]} -eq 0 ] && return 0
    log "installing with apt-get: ${missing[*]}"
    # Another apt or dpkg at work on the machine is waited for, not taken for a failure.
    as_root apt-get -o DPkg::Lock::Timeout=600 update -qq
    as_root env DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=600 install -y -qq \
        --no-install-recommends "${missing[@]}" >/dev/null
}

pglocks_install_packages() {
    ensure_packages "${PGLOCKS_PACKAGES[@]}"
    # Debian starts a cluster on port 5432 when it installs the server; we never use it.
    # PGLOCKS_BINDIR points at another installation of the server (a relocated copy, say).
    export PGLOCKS_BINDIR=${PGLOCKS_BINDIR:-/usr/lib/postgresql/$PGLOCKS_PGVER/bin}
    export PATH="$PGLOCKS_BINDIR:$PATH"
    export PG_CONFIG=${PG_CONFIG:-$PGLOCKS_BINDIR/pg_config}
}

pglocks_build_install() {
    log "building and installing pglocks"
    make -C "$PGLOCKS_ROOT" -s PG_CONFIG="$PG_CONFIG" >/dev/null
    as_root make -C "$PGLOCKS_ROOT" -s PG_CONFIG="$PG_CONFIG" install >/dev/null
}

pglocks_setup() {
    pglocks_install_packages
    pglocks_build_install
}

# Runs a command as the owner of the throwaway server (the server refuses to run as root).
as_server_owner() {
    if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}

free_port() {
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

# For suites that start small servers of their own (for settings of the server's start):
# each lives in a folder of its own, made by the first initdb and pg_ctl on PATH, and is
# reached over its Unix socket in that folder only.
# pglocks_own_start DIR [postgresql.conf lines...]
pglocks_own_start() {
    local dir=$1 l
    shift
    mkdir -p "$dir"
    [ "$(id -u)" = 0 ] && chown postgres: "$dir"
    as_server_owner initdb -D "$dir/data" -A trust -U postgres --no-sync >/dev/null
    { echo "port = $(free_port)"; echo "listen_addresses = ''"; echo "unix_socket_directories = '$dir'"
      echo "fsync = off"; for l in "$@"; do echo "$l"; done; } >>"$dir/data/postgresql.conf"
    as_server_owner pg_ctl -D "$dir/data" -l "$dir/log" -w start >/dev/null
}
pglocks_own_stop() { as_server_owner pg_ctl -D "$1/data" -m fast stop >/dev/null 2>&1 || true; }
# pglocks_own_use DIR: libpq's variables name that server, whose log a failure shows.
pglocks_own_use() {
    PGLOCKS_OWN_CURRENT=$1
    export PGHOST=$1 PGPORT PGUSER=postgres PGDATABASE=postgres
    PGPORT=$(sed -n 's/^port = //p' "$1/data/postgresql.conf")
}
# suite_fail MESSAGE: ends the suite, failed, with the tail of the log of the server in use
# (a suite's exit usually removes it).
suite_fail() {
    echo "FAIL: $*" >&2
    local log=${PGLOCKS_OWN_CURRENT:+$PGLOCKS_OWN_CURRENT/log}
    if [ -n "$log" ] && [ -f "$log" ]; then
        echo "--- tail of $log" >&2
        tail -n 20 "$log" >&2
    fi
    exit 1
}
# suite_check WHAT EXPECTED ACTUAL
suite_check() {
    if [ "$2" != "$3" ]; then suite_fail "$1: expected [$2], got [$3]"; fi
    echo "ok: $1"
}

pglocks_stop_server() {
    if [ -n "${PGLOCKS_TMP:-}" ] && [ -d "$PGLOCKS_TMP" ]; then
        as_server_owner pg_ctl -D "$PGLOCKS_TMP/data" -m immediate stop >/dev/null 2>&1 || true
        rm -rf "$PGLOCKS_TMP"
    fi
}

# pglocks_start_server [extra postgresql.conf lines...]
pglocks_start_server() {
    if [ -n "${PGHOST:-}" ] && [ -z "${PGLOCKS_TMP:-}" ]; then
        log "using the existing server at PGHOST=$PGHOST PGPORT=${PGPORT:-5432}"
        PGLOCKS_EXISTING=1
        return 0
    fi
    PGLOCKS_EXISTING=0
    PGLOCKS_TMP=$(mktemp -d /tmp/pglocks.XXXXXX)
    chmod 755 "$PGLOCKS_TMP"
    [ "$(id -u)" = 0 ] && chown postgres: "$PGLOCKS_TMP"
    trap pglocks_stop_server EXIT
    local port
    port=$(free_port)
    log "starting a throwaway PostgreSQL $PGLOCKS_PGVER in $PGLOCKS_TMP on port $port"
    as_server_owner initdb -D "$PGLOCKS_TMP/data" -A trust -U postgres -E UTF8 --no-locale \
        --no-sync >/dev/null
    {
        echo "port = $port"
        echo "listen_addresses = '127.0.0.1'"
        echo "unix_socket_directories = '$PGLOCKS_TMP'"
        echo "fsync = off"
        echo "max_connections = 60"
        echo "shared_preload_libraries = 'pglocks'"
        # Small enough that the stress suite can fill the shared name table at its end and
        # see that no terminated session left an entry behind (see stress.py).
        echo "pglocks.max_named_locks = 1024"
        local line
        for line in "$@"; do echo "$line"; done
    } >>"$PGLOCKS_TMP/data/postgresql.conf"
    as_server_owner pg_ctl -D "$PGLOCKS_TMP/data" -l "$PGLOCKS_TMP/server.log" -w -t 60 start >/dev/null
    export PGHOST="$PGLOCKS_TMP" PGPORT="$port" PGUSER=postgres PGDATABASE=postgres
}

# For the suites that drive a server from Python (test/stress/*.py). Run by scripts/test.sh,
# they use its server (PG* exported); run alone, they start their own.
#   pglocks_suite_database DB        a database of the suite's own, with the extension,
#                                    dropped (with its sessions) when the suite exits
#   pglocks_suite_python LIMIT SCRIPT [ARGS...]
#                                    runs test/stress/SCRIPT --dsn dbname=DB ARGS... with
#                                    Debian's python3 (python3-psycopg2 is installed for it),
#                                    killed after LIMIT seconds (a guard against hangs only)
pglocks_suite_database() {
    PGLOCKS_SUITE_DB=$1
    if [ -z "${PGHOST:-}" ]; then
        pglocks_setup
        pglocks_start_server
    fi
    ensure_packages python3 python3-psycopg2 postgresql-client-"$PGLOCKS_PGVER"
    export PATH="${PGLOCKS_BINDIR:-/usr/lib/postgresql/$PGLOCKS_PGVER/bin}:$PATH"
    trap _pglocks_suite_cleanup EXIT
    trap 'exit 130' INT TERM
    psql -X -q -v ON_ERROR_STOP=1 -d postgres -c "SET client_min_messages = warning" \
        -c "DROP DATABASE IF EXISTS $PGLOCKS_SUITE_DB WITH (FORCE)" \
        -c "CREATE DATABASE $PGLOCKS_SUITE_DB"
    psql -X -q -v ON_ERROR_STOP=1 -d "$PGLOCKS_SUITE_DB" -c "CREATE EXTENSION pglocks"
}

_pglocks_suite_cleanup() {
    local rc=$?
    psql -X -q -d postgres -c "DROP DATABASE IF EXISTS $PGLOCKS_SUITE_DB WITH (FORCE)" \
        >/dev/null 2>&1 || true
    pglocks_stop_server
    exit $rc
}

pglocks_suite_python() {
    local limit=$1 script=$2
    shift 2
    timeout "$limit" /usr/bin/python3 "$PGLOCKS_ROOT/test/stress/$script" \
        --dsn "dbname=$PGLOCKS_SUITE_DB" "$@"
}
