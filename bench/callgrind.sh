#!/usr/bin/env bash
# The instruction counts of bench/README.md: callgrind of a single-user PostgreSQL backend
# running scenario 1's set-based query with 20,000 and with 40,000 rows; the difference per
# row leaves start-up and planning out. Prints one line per case: instructions per row.
#
# Usage: bench/callgrind.sh [case ...]   (cases below; default all; 15 to 30 seconds each)
#   empty    the query without a lock call
#   core     pg_advisory_lock + pg_advisory_unlock, one bigint key
#   on, off  pglocks_acquire + pglocks_release, one bigint key, statistics on or off
#   newcore  the core pair, a new bigint key on every row
#   newon    pglocks' pair, a new key on every row, pglocks_stats full (evictions)
#   newoff   the same, statistics off
#   newbig   the same, statistics on, pglocks.max_stats above the number of keys
# A pair's count is its case's figure minus empty's. And the cost of a lock + unlock pair
# sent as two statements (each a transaction of its own, as pgbench and the clients send
# them), a new bigint key each pair: the difference between 4,000 and 2,000 pairs, per pair.
#   sqlcore     pg_advisory_lock(k); pg_advisory_unlock(k), each parsed and planned
#   sqldefault  pglocks_acquire(k); pglocks_release(k): the other arguments their defaults
#   sqlnamed    pglocks_acquire(k, shared => false, wait => true); pglocks_release(k,
#               shared => false): named arguments, as the clients send them
#   sqlall      every argument given, in order: pglocks_acquire(k, false, true,
#               NULL::interval, 'session', true); pglocks_release(k, false)
#   prepcore, prepon   the core pair and pglocks' (defaults) as prepared statements
#               (PREPARE once, then EXECUTE: planned once, as pgbench -M prepared)
# CALLGRIND_KEEP=1 keeps the profiles (their directory is printed) for callgrind_annotate.
set -euo pipefail
source "$(dirname "$0")/../scripts/lib.sh"
PGLOCKS_PACKAGES+=(valgrind)
pglocks_setup

work=$(mktemp -d /tmp/pglocks-callgrind.XXXXXX)
chmod 755 "$work"
[ "$(id -u)" = 0 ] && chown postgres: "$work"
cleanup() {
    if [ -n "${CALLGRIND_KEEP:-}" ]; then echo "profiles kept in $work"; else rm -rf "$work"; fi
}
trap cleanup EXIT
data=$work/data
as_server_owner initdb -D "$data" -A trust -U postgres -E UTF8 --no-locale --no-sync >/dev/null
cat >>"$data/postgresql.conf" <<EOF
shared_preload_libraries = 'pglocks'
jit = off
fsync = off
max_locks_per_transaction = 512
EOF
echo "CREATE EXTENSION pglocks;" | as_server_owner postgres --single -D "$data" postgres >/dev/null 2>&1

rows() { echo "SELECT count(*) FROM generate_series(1, {n}) g WHERE $1;"; }
PAIR="pglocks_acquire(7::bigint) IS NULL OR pglocks_release(7::bigint)"
NEW="pglocks_acquire(g::bigint) IS NULL OR pglocks_release(g::bigint)"
# 6,000 keys fill pglocks_stats (5,000 rows) before the measured rows, so that they evict.
# (One line: in single-user mode a newline ends a statement.)
FILL="SELECT count(*) FROM generate_series(1, 6000) g WHERE pglocks_acquire(-g::bigint) IS NULL OR pglocks_release(-g::bigint);"
OFF="SET pglocks.track_stats = off;"

# case -> setup SQL | query | extra server options
declare -A SETUP QUERY OPTS
SETUP[empty]=""; QUERY[empty]=$(rows "(g IS NULL) OR (g > 0)")
SETUP[core]=""; QUERY[core]=$(rows "pg_advisory_lock(7::bigint) IS NULL OR pg_advisory_unlock(7::bigint)")
SETUP[on]=""; QUERY[on]=$(rows "$PAIR")
SETUP[off]=$OFF; QUERY[off]=$(rows "$PAIR")
SETUP[newcore]=""; QUERY[newcore]=$(rows "pg_advisory_lock(g::bigint) IS NULL OR pg_advisory_unlock(g::bigint)")
SETUP[newon]=$FILL; QUERY[newon]=$(rows "$NEW")
SETUP[newoff]=$OFF; QUERY[newoff]=$(rows "$NEW")
SETUP[newbig]=""; QUERY[newbig]=$(rows "$NEW"); OPTS[newbig]="-c pglocks.max_stats=200000"
# Statement cases: per pair of statements, {i} the pair's key.
declare -A PAIRSQL
PAIRSQL[sqlcore]="SELECT pg_advisory_lock({i}::bigint);
SELECT pg_advisory_unlock({i}::bigint);"
PAIRSQL[sqldefault]="SELECT pglocks_acquire({i}::bigint);
SELECT pglocks_release({i}::bigint);"
PAIRSQL[sqlnamed]="SELECT pglocks_acquire({i}::bigint, shared => false, wait => true);
SELECT pglocks_release({i}::bigint, shared => false);"
PAIRSQL[sqlall]="SELECT pglocks_acquire({i}::bigint, false, true, NULL::interval, 'session', true);
SELECT pglocks_release({i}::bigint, false);"
PAIRSQL[prepcore]="EXECUTE l({i});
EXECUTE u({i});"
PAIRSQL[prepon]="EXECUTE a({i});
EXECUTE r({i});"
PREPARED="PREPARE l(bigint) AS SELECT pg_advisory_lock(\$1);
PREPARE u(bigint) AS SELECT pg_advisory_unlock(\$1);
PREPARE a(bigint) AS SELECT pglocks_acquire(\$1);
PREPARE r(bigint) AS SELECT pglocks_release(\$1);"
ALL=(empty core on off newcore newon newoff newbig sqlcore sqldefault sqlnamed sqlall prepcore prepon)

callgrind_total() { # FILE.sql FILE.out [server options]: the run's instruction count
    local sql=$1 out=$2; shift 2
    as_server_owner valgrind --tool=callgrind --callgrind-out-file="$out" \
        postgres --single -D "$data" "$@" postgres <"$sql" >"${out%.out}.log" 2>&1
    # Single-user mode reports a failed statement and goes on: a count with one is no count.
    if grep -q 'ERROR:' "${out%.out}.log"; then
        echo "a statement failed in $sql:" >&2
        grep -m 3 'ERROR:' "${out%.out}.log" >&2
        return 1
    fi
    callgrind_annotate "$out" 2>/dev/null | awk '/PROGRAM TOTALS/ { gsub(",", "", $1); print $1 }'
}

cases=("$@")
[ ${#cases[@]} = 0 ] && cases=("${ALL[@]}")
for c in "${cases[@]}"; do
    totals=()
    if [ -n "${PAIRSQL[$c]+x}" ]; then
        for n in 2000 4000; do
            { [ "${c#prep}" != "$c" ] && echo "$PREPARED"
              for ((i = 1; i <= n; i++)); do echo "${PAIRSQL[$c]//\{i\}/$i}"; done; } >"$work/$c.$n.sql"
            totals+=("$(callgrind_total "$work/$c.$n.sql" "$work/$c.$n.out")")
        done
        printf '%-10s %7d instructions per pair of statements\n' "$c" $(((totals[1] - totals[0]) / 2000))
        continue
    fi
    [ -n "${QUERY[$c]+x}" ] || { echo "unknown case: $c (cases: ${ALL[*]})" >&2; exit 2; }
    for n in 20000 40000; do
        printf '%s\n%s\n' "${SETUP[$c]}" "${QUERY[$c]//\{n\}/$n}" >"$work/$c.$n.sql"
        # shellcheck disable=SC2086  # OPTS holds separate words
        totals+=("$(callgrind_total "$work/$c.$n.sql" "$work/$c.$n.out" ${OPTS[$c]:-})")
    done
    printf '%-10s %7d instructions per row\n' "$c" $(((totals[1] - totals[0]) / 20000))
done
