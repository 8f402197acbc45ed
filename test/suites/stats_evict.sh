#!/usr/bin/env bash
# pglocks_stats on servers of its own: eviction of the least-used rows with a small
# pglocks.max_stats, counted in pglocks_stats_info, exact room after a reset, exact totals of
# rows that stay through constant eviction; with a table of 2,000 rows, batches chosen from
# part of the table and the decay of rows not read; the same batches at the default size of
# 5,000 rows; and the error without the preload.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
source "$here/../../scripts/lib.sh"
# Debian's interpreter, which has python3-psycopg2.
PY=/usr/bin/python3
ensure_packages python3 python3-psycopg2

fail() { suite_fail "$@"; }
check() { suite_check "$@"; }

root=$(mktemp -d /tmp/pglocks-stats.XXXXXX); chmod 755 "$root"
trap 'for d in small mid default plain; do pglocks_own_stop "$root/$d"; done; rm -rf "$root"' EXIT

q() { psql -X -q -At -v ON_ERROR_STOP=1 "$@"; }
# take PREFIX A B [N]: takes and releases, once each, the locks PREFIX || i for i from A to B
# (PREFIX || i % N with N: the N locks in turn), in one statement.
take() {
    local key="'$1' || i"; [ -n "${4:-}" ] && key="'$1' || i % $4"
    q -c "SELECT count(*) FROM generate_series($2, $3) i WHERE pglocks_acquire($key) AND pglocks_release($key)" >/dev/null
}
# rows_stay_beside_new WHAT PREFIX N USES NEW MIN_BATCHES: after a reset, N rows taken USES
# times each, then NEW new rows ('new:1' ...): at least MIN_BATCHES evictions, and every one
# of the N rows stays with its count.
rows_stay_beside_new() {
    local what=$1 prefix=$2 n=$3 uses=$4 new=$5 min=$6 dealloc
    q -c "SELECT pglocks_stats_reset()" >/dev/null
    take "$prefix" 0 $((n * uses - 1)) "$n"
    take "new:" 1 "$new"
    dealloc=$(q -c "SELECT dealloc FROM pglocks_stats_info")
    [ "$dealloc" -ge "$min" ] || fail "dealloc $dealloc: $new new rows beside $n evict in at least $min batches"
    check "$what all stay through $dealloc batches" "$n" "$(q -c "SELECT count(*) FROM pglocks_stats WHERE key LIKE '$prefix%' AND acquisitions = $uses")"
}
# After a reset, exactly pglocks.max_stats (100) new rows fit without an eviction, and the
# next one evicts one batch (10): room reserved and never given back, or rows lost count,
# would show here.
fill_exact() { # what came before
    q -c "SELECT pglocks_stats_reset()" >/dev/null
    take "fill:" 1 100
    check "after $1, a reset and 100 new locks: 100 rows, no eviction" "100|0" "$(q -c "SELECT (SELECT count(*) FROM pglocks_stats), dealloc FROM pglocks_stats_info")"
    q -c "SELECT pglocks_acquire('fill:101') AND pglocks_release('fill:101')" >/dev/null
    check "after $1, the 101st row evicts one batch" "91|1" "$(q -c "SELECT (SELECT count(*) FROM pglocks_stats), dealloc FROM pglocks_stats_info")"
    # The table has been full: the next eviction starts half a batch (5) early, when a new
    # row's reservation makes 95, and leaves the rows of the 10 least used gone.
    take "fill:" 102 104
    check "after $1, 94 rows do not evict yet" "94|1" "$(q -c "SELECT (SELECT count(*) FROM pglocks_stats), dealloc FROM pglocks_stats_info")"
    q -c "SELECT pglocks_acquire('fill:105') AND pglocks_release('fill:105')" >/dev/null
    check "after $1, the 95th row evicts a batch early" "85|2|1" "$(q -c "SELECT (SELECT count(*) FROM pglocks_stats), dealloc, (SELECT count(*) FROM pglocks_stats WHERE key = 'fill:105') FROM pglocks_stats_info")"
}

# 1. A table of 100 rows (the minimum). One lock taken often, then 300 locks taken once:
#    the often-used row stays, the table never holds more than 100 rows, evictions are
#    counted, and every row of the last batch of new keys is there.
pglocks_own_start "$root/small" "shared_preload_libraries = 'pglocks'" "pglocks.max_stats = 100"
pglocks_own_use "$root/small"
# scripts/matrix.sh runs this suite on another major (initdb and pg_ctl of that major first
# on PATH) and says which; otherwise they are the system's (PGLOCKS_PGVER).
major=$(q -c "SELECT current_setting('server_version_num')::int / 10000")
check "the servers are PostgreSQL ${PGLOCKS_EXPECT_MAJOR:-$PGLOCKS_PGVER}" "${PGLOCKS_EXPECT_MAJOR:-$PGLOCKS_PGVER}" "$major"
q -c "CREATE EXTENSION pglocks"
check "pglocks.max_stats is the server's" 100 "$(q -c "SHOW pglocks.max_stats")"
q -c "SELECT count(*) FILTER (WHERE pglocks_acquire('hot') AND pglocks_release('hot')) FROM generate_series(1, 50)" >/dev/null
for i in $(seq 1 300); do echo "SELECT pglocks_acquire('ev:$i'), pglocks_release('ev:$i');"; done | q >/dev/null
rows=$(q -c "SELECT count(*) FROM pglocks_stats")
[ "$rows" -le 100 ] || fail "pglocks_stats has $rows rows, more than pglocks.max_stats"
# A full table evicts a batch of 10; once it has been full, the next eviction starts at 95
# rows: 85 is the fewest it can hold.
[ "$rows" -ge 85 ] || fail "pglocks_stats has $rows rows: evicted more than a batch"
echo "ok: $rows rows within pglocks.max_stats"
dealloc=$(q -c "SELECT dealloc FROM pglocks_stats_info")
[ "$dealloc" -ge 20 ] || fail "dealloc $dealloc: 300 new rows in a table of 100 evict in at least 20 batches"
echo "ok: $dealloc evictions counted"
check "the often-used row stays" "hot|50|t" "$(q -c "SELECT key, acquisitions, total_hold_time > 0 FROM pglocks_stats WHERE key = 'hot'")"
check "the newest row is there" "1" "$(q -c "SELECT acquisitions FROM pglocks_stats WHERE key = 'ev:300'")"
check "the oldest once-used row is gone" "0" "$(q -c "SELECT count(*) FROM pglocks_stats WHERE key = 'ev:1'")"
# A hold whose row is evicted while it is held ends without recreating the row.
q -c "SELECT pglocks_acquire('held-through'), pg_sleep(0.05)" \
  -c "SELECT count(*) FROM (SELECT pglocks_acquire('evict:' || i) AND pglocks_release('evict:' || i) FROM generate_series(1, 300) i) s" \
  -c "SELECT pglocks_release('held-through')" >/dev/null
check "an evicted row is not recreated by the end of a hold" "0" "$(q -c "SELECT count(*) FROM pglocks_stats WHERE key = 'held-through'")"
# A hold whose row is evicted while it is held, and a second hold of the same lock that makes
# the row anew: the new row counts the second hold only, its acquisition and its time.
out=$(q -c "SELECT pglocks_acquire('held-across'), pg_sleep(0.02)" \
  -c "SELECT count(*) FROM (SELECT pglocks_acquire('evict2:' || i) AND pglocks_release('evict2:' || i) FROM generate_series(1, 300) i) s" \
  -c "SELECT count(*) FROM pglocks_stats WHERE key = 'held-across'" \
  -c "SELECT pglocks_acquire('held-across') AND pglocks_release('held-across') AND pglocks_release('held-across')" \
  -c "SELECT acquisitions, total_hold_time = max_hold_time FROM pglocks_stats WHERE key = 'held-across'" | tr '\n' ' ')
check "a row made anew after an eviction counts only the hold it counted" "t| 300 0 t 1|t " "$out"
q -c "SELECT pglocks_stats_reset()" >/dev/null
check "reset empties the table and the eviction count" "0|0" "$(q -c "SELECT (SELECT count(*) FROM pglocks_stats), dealloc FROM pglocks_stats_info")"
# Concurrent sessions filling the table: evictions under contention leave it consistent.
pids=()
for s in 1 2 3 4; do take "c$s:" 1 2000 & pids+=($!); done
for p in "${pids[@]}"; do wait "$p" || fail "a session filling the table failed"; done
rows=$(q -c "SELECT count(*) FROM pglocks_stats")
[ "$rows" -le 100 ] || fail "after concurrent inserts pglocks_stats has $rows rows"
echo "ok: concurrent evictions keep $rows rows"
fill_exact "concurrent evictions"
# Rows in use while they are evicted. 20 warm rows, taken 50 times each, then used over and
# over by two sessions while two others fill the table with 600 new locks (each held while
# the next is taken) and a fifth reads the view. About 60 batches decay a warm row's usage
# to 50 x 0.99^60, about 27, far above a new row's 1: the warm rows are never among the
# least used, so their counts come out exact whatever the interleaving; every row stays
# consistent, with hold times only where acquisitions were counted.
q -c "SELECT pglocks_stats_reset()" >/dev/null
warm() { q -c "SELECT count(*) FROM generate_series(0, 20 * $1 - 1) i WHERE pglocks_acquire('warm:' || i % 20) AND pglocks_release('warm:' || i % 20)"; }
check "warm-up" 1000 "$(warm 50)"
pids=()
for s in 1 2; do warm 100 >"$root/warm$s" & pids+=($!); done
for s in 1 2; do
    q -c "SELECT count(*) FROM generate_series(1, 300) i WHERE pglocks_acquire('churn$s:' || i) AND (i = 1 OR pglocks_release('churn$s:' || (i - 1)))" >/dev/null & pids+=($!)
done
q -c "DO \$\$ BEGIN FOR i IN 1 .. 200 LOOP PERFORM count(*) FROM pglocks_stats; END LOOP; END \$\$" & pids+=($!)
for p in "${pids[@]}"; do wait "$p" || fail "a session of the eviction under use failed"; done
check "both warm sessions did every round" "2000 2000" "$(cat "$root/warm1" "$root/warm2" | tr '\n' ' ' | sed 's/ $//')"
check "warm rows keep exact counts through the evictions" "20" "$(q -c "SELECT count(*) FROM pglocks_stats WHERE key LIKE 'warm:%' AND acquisitions = 250 AND total_hold_time > 0")"
dealloc=$(q -c "SELECT dealloc FROM pglocks_stats_info")
[ "$dealloc" -ge 40 ] || fail "dealloc $dealloc: 600 new rows in a table of 100 evict in at least 40 batches"
rows=$(q -c "SELECT count(*) FROM pglocks_stats")
[ "$rows" -le 100 ] || fail "pglocks_stats has $rows rows"
check "every row consistent" "0" "$(q -c "SELECT count(*) FROM pglocks_stats WHERE waits > acquisitions OR max_hold_time > total_hold_time OR (acquisitions = 0 AND total_hold_time > 0)")"
echo "ok: $dealloc batches evicted while rows were in use, $rows rows"
fill_exact "evictions of rows in use"
# Exact totals through constant eviction: sessions hammer ten hot locks, in both modes, while
# half of their calls take new locks; the hot rows are never evicted and must equal what the
# clients did (test/stress/stats_stress.py --evict).
timeout 300 "$PY" "$here/../stress/stats_stress.py" --dsn "dbname=postgres" --evict \
    --sessions 8 --seconds "${PGLOCKS_STRESS_SECONDS:-8}" || fail "exact totals through eviction"
fill_exact "the exact-totals run"
# The usage decays at every batch: a row taken twice stays through the 20 or so batches of
# 300 new rows (2 x 0.99^20, about 1.6, above a new row's 1) and goes once it is below the
# least-used new row's (about 0.99^9: a new row lives through nine or ten batches), after
# about 80 batches; 2,000 new rows make about 190 (without the decay it would stay).
q -c "SELECT pglocks_stats_reset()" >/dev/null
q -c "SELECT pglocks_acquire('twice') AND pglocks_release('twice') AND pglocks_acquire('twice') AND pglocks_release('twice')" >/dev/null
take "decay:" 1 300
check "a row taken twice stays through about 20 batches of new rows" "2" "$(q -c "SELECT acquisitions FROM pglocks_stats WHERE key = 'twice'")"
take "decay:" 301 2000
check "decayed through about 190 batches, it is evicted" "0" "$(q -c "SELECT count(*) FROM pglocks_stats WHERE key = 'twice'")"
pglocks_own_stop "$root/small"

# 1b. A table of 2,000 rows: a batch is 100 (5%; 97 for an early one), chosen among the rows
#     an eviction reads, partitions in turn until it has read 1,000, or among all of them when
#     that batch would take a row used more than once. The batch is 5% of the whole table,
#     the rows evicted are the least used, the decay reaches the rows of partitions not read,
#     and concurrent evictions keep the count.
pglocks_own_start "$root/mid" "shared_preload_libraries = 'pglocks'" "pglocks.max_stats = 2000"
pglocks_own_use "$root/mid"
q -c "CREATE EXTENSION pglocks"
take "mid:" 1 2000
check "2,000 new locks fill the table without an eviction" "2000|0" "$(q -c "SELECT (SELECT count(*) FROM pglocks_stats), dealloc FROM pglocks_stats_info")"
q -c "SELECT pglocks_acquire('mid:2001') AND pglocks_release('mid:2001')" >/dev/null
check "the 2,001st evicts a batch of 5% of the table, not of the rows read" "1901|1|1" "$(q -c "SELECT (SELECT count(*) FROM pglocks_stats), dealloc, (SELECT count(*) FROM pglocks_stats WHERE key = 'mid:2001') FROM pglocks_stats_info")"
# 100 warm rows (5 acquisitions each) among once-used ones: every batch is once-used rows.
rows_stay_beside_new "warm rows, batches chosen from part of the table," "warm:" 100 5 5000 30
check "the newest row is there" "1" "$(q -c "SELECT acquisitions FROM pglocks_stats WHERE key = 'new:5000'")"
# 4,000 more new rows, from four sessions at once: about 40 batches more, which leave a warm
# row's usage at 5 x 0.99^75 or so, about 2.4 (after some 180 it would be below the least
# used new row's, about 0.82).
pids=()
for s in 1 2 3 4; do take "m$s:" 1 1000 & pids+=($!); done
for p in "${pids[@]}"; do wait "$p" || fail "a session taking new rows failed"; done
rows=$(q -c "SELECT count(*) FROM pglocks_stats")
[ "$rows" -le 2000 ] && [ "$rows" -ge 1850 ] || fail "after concurrent evictions pglocks_stats has $rows rows (1,850 to 2,000)"
check "warm rows stay through concurrent evictions" "100" "$(q -c "SELECT count(*) FROM pglocks_stats WHERE key LIKE 'warm:%' AND acquisitions = 5")"
q -c "SELECT pglocks_stats_reset()" >/dev/null
take "mid:" 1 2000
check "after concurrent evictions and a reset, 2,000 rows fit again without an eviction" "2000|0" "$(q -c "SELECT (SELECT count(*) FROM pglocks_stats), dealloc FROM pglocks_stats_info")"
# 1,850 rows in regular use (3 acquisitions each): when the table is full, 150 once-used rows
# are left, and about 100 when an early eviction starts; the part of the table an eviction
# reads first holds about half of them, fewer than a batch, so every batch reads the whole
# table and takes only once-used rows (3 x 0.99^k stays above 1 through more than 100
# batches; these 3,000 new rows make about 30). Choosing among the first part read only
# would take some 50 rows in regular use every batch.
rows_stay_beside_new "rows in regular use" "reg:" 1850 3 3000 25
# The decay of rows in the partitions an eviction does not read: a row taken twice, then
# 15,000 new rows (about 135 batches: 2 x 0.99^135 is about 0.52, below the least used new
# row's, about 0.82, which it reaches near the 90th), whose batches each read about half of
# the table. Decayed only when read, it would have decayed in about half of the batches
# (2 x 0.99^67, about 1.02) and stayed.
q -c "SELECT pglocks_stats_reset()" >/dev/null
q -c "SELECT pglocks_acquire('twice') AND pglocks_release('twice') AND pglocks_acquire('twice') AND pglocks_release('twice')" >/dev/null
take "decay:" 1 15000
check "a row taken twice is evicted once decayed, read or not" "0" "$(q -c "SELECT count(*) FROM pglocks_stats WHERE key = 'twice'")"
pglocks_own_stop "$root/mid"

# 1c. The default table of 5,000 rows: a batch is 250 (5%; 243 for an early one), chosen
#     among the rows of four partitions (about 1,250) when none of them is used more than
#     once, else among all.
pglocks_own_start "$root/default" "shared_preload_libraries = 'pglocks'"
pglocks_own_use "$root/default"
q -c "CREATE EXTENSION pglocks"
check "pglocks.max_stats is 5000 by default" 5000 "$(q -c "SHOW pglocks.max_stats")"
take "def:" 1 5000
check "5,000 new locks fill the table without an eviction" "5000|0" "$(q -c "SELECT (SELECT count(*) FROM pglocks_stats), dealloc FROM pglocks_stats_info")"
q -c "SELECT pglocks_acquire('def:5001') AND pglocks_release('def:5001')" >/dev/null
check "the 5,001st evicts a batch of 5% of the table" "4751|1|1" "$(q -c "SELECT (SELECT count(*) FROM pglocks_stats), dealloc, (SELECT count(*) FROM pglocks_stats WHERE key = 'def:5001') FROM pglocks_stats_info")"
# 250 warm rows (5 acquisitions each) among 12,500 new ones, about 30 batches: each from
# part of the table.
rows_stay_beside_new "warm rows of 5,000" "warm:" 250 5 12500 25
# 4,500 rows in regular use (3 acquisitions each): about 375 once-used rows are left when an
# early eviction starts (at 4,875), some 100 of them in the four partitions read first,
# fewer than a batch of 243: each batch reads the whole table and takes only once-used rows.
rows_stay_beside_new "rows in regular use of 5,000" "reg:" 4500 3 7500 25
pglocks_own_stop "$root/default"

# 2. Without the preload: locks work, statistics raise 55000 with a hint.
pglocks_own_start "$root/plain"
pglocks_own_use "$root/plain"
q -c "CREATE EXTENSION pglocks"
check "locks work without the preload" "t" "$(q -c "SELECT pglocks_acquire('x') AND pglocks_release('x')")"
for f in "SELECT * FROM pglocks_stats" "SELECT * FROM pglocks_stats_info" "SELECT pglocks_stats_reset()"; do
    out=$(psql -X -q -At -v VERBOSITY=verbose -c "$f" 2>&1 || true)
    # A here-string, not echo | grep -q: grep quitting early would fail echo's pipe.
    grep -q "ERROR:  55000: pglocks statistics are not available" <<<"$out" || fail "$f without the preload: $out"
    grep -q "HINT:  Add pglocks to shared_preload_libraries" <<<"$out" || fail "$f: no hint: $out"
done
echo "ok: without the preload, 55000 with a hint"
echo "stats_evict: all checks passed"
