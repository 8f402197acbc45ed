"""SQL of the in-server scenarios (1 and 6), installed in the benchmark's own database.

The acquire + release pairs run in a set-based query, as SPEC §6 measures them:
SELECT count(*) FROM generate_series(1, n) g WHERE <lock> IS NULL OR <unlock>, timed in the
server by bench_time() (clock_timestamp() around an EXECUTE), minus the same query with an
expression of the same shape and no lock call (PAIRS below).

Each timing function returns elapsed seconds measured with clock_timestamp().

The per-call loops use PL/pgSQL simple expressions (x := f(...)), which skip the executor
and so leave little besides the function calls themselves. Every expression that calls a
volatile function makes PL/pgSQL take a snapshot, so the empty loop for the lock pairs
calls random() twice: subtracting it removes the loop, the expression machinery and the
snapshots, and leaves the lock functions. The key-hash loops call immutable functions
only, so their empty loop is an immutable O(1) expression.
"""

LOOP = """
CREATE FUNCTION {name}(n integer, arg {argtype}) RETURNS float8
LANGUAGE plpgsql AS $$
DECLARE t0 timestamptz; x {vartype};
BEGIN
    t0 := clock_timestamp();
    FOR i IN 1..n LOOP
        {body}
    END LOOP;
    RETURN extract(epoch FROM clock_timestamp() - t0);
END $$;
"""

EMPTY_PAIR = "x := random() IS NULL; x := random() > 2;"
# A new 16-byte key each iteration: arg is 'orders:', the loop counter gives nine digits.
NEW_KEY = "arg || lpad(i::text, 9, '0')"

# name: (argument type, variable type, loop body). Each family has _empty, _core and
# _pglocks, timed alternately.
LOOPS = {
    "bench_pairs_bigint_empty": ("bigint", "boolean", EMPTY_PAIR),
    "bench_pairs_bigint_core": (
        "bigint", "boolean", "x := pg_advisory_lock(arg) IS NULL; x := pg_advisory_unlock(arg);"),
    "bench_pairs_bigint_pglocks": (
        "bigint", "boolean", "x := pglocks_acquire(arg) IS NULL; x := pglocks_release(arg);"),
    "bench_pairs_text_empty": ("text", "boolean", EMPTY_PAIR),
    "bench_pairs_text_core": (
        "text", "boolean", "x := pg_advisory_lock(hashtextextended(arg, 0)) IS NULL; "
                           "x := pg_advisory_unlock(hashtextextended(arg, 0));"),
    "bench_pairs_text_pglocks": (
        "text", "boolean", "x := pglocks_acquire(arg) IS NULL; x := pglocks_release(arg);"),
    # Scenario 1 again with pglocks.share_names off for the pglocks side: the name is not
    # published in shared memory, as on a server without the preload.
    "bench_pairs_unshared_empty": ("text", "boolean", EMPTY_PAIR),
    "bench_pairs_unshared_core": (
        "text", "boolean", "x := pg_advisory_lock(hashtextextended(arg, 0)) IS NULL; "
                           "x := pg_advisory_unlock(hashtextextended(arg, 0));"),
    "bench_pairs_unshared_pglocks": (
        "text", "boolean", "x := pglocks_acquire(arg) IS NULL; x := pglocks_release(arg);"),
    # Scenario 7: a fencing token on top of a plain acquire + release.
    "bench_pairs_token_empty": ("bigint", "boolean", EMPTY_PAIR),
    "bench_pairs_token_core": (
        "bigint", "boolean", "x := pglocks_acquire(arg) IS NULL; x := pglocks_release(arg);"),
    "bench_pairs_token_pglocks": (
        "bigint", "boolean", "x := pglocks_acquire_token(arg) IS NULL; x := pglocks_release(arg);"),
    "bench_hash_empty": ("text", "bigint", "x := octet_length(arg);"),
    "bench_hash_core": ("text", "bigint", "x := hashtextextended(arg, 0);"),
    "bench_hash_pglocks": ("text", "bigint", "x := pglocks_key(arg);"),
    "bench_hash_distinct_empty": ("text", "bigint", f"x := octet_length({NEW_KEY});"),
    "bench_hash_distinct_core": ("text", "bigint", f"x := hashtextextended({NEW_KEY}, 0);"),
    "bench_hash_distinct_pglocks": ("text", "bigint", f"x := pglocks_key({NEW_KEY});"),
}

# bench_time(query): seconds one execution of the query takes, read in the server.
TIME_QUERY = """
CREATE FUNCTION bench_time(query text) RETURNS float8
LANGUAGE plpgsql AS $$
DECLARE t0 timestamptz;
BEGIN
    t0 := clock_timestamp();
    EXECUTE query;
    RETURN extract(epoch FROM clock_timestamp() - t0);
END $$;
"""

# Set-based pairs: family -> (row source, {side: WHERE expression}). The row source gives g
# and, for text keys, k (a new 16-byte key per row: 'orders:' and nine digits of g). Each
# family has empty (the same shape without a lock call), core and pglocks.
NEW_KEY_ROWS = ("(SELECT g, 'orders:' || lpad(g::text, 9, '0') AS k "
                "FROM generate_series(1, {n}) g) s")
PAIRS = {
    "bigint": ("generate_series(1, {n}) g", {
        "empty": "(g IS NULL) OR (g > 0)",
        "core": "pg_advisory_lock(7::bigint) IS NULL OR pg_advisory_unlock(7::bigint)",
        "pglocks": "pglocks_acquire(7::bigint) IS NULL OR pglocks_release(7::bigint)"}),
    "text_same": ("generate_series(1, {n}) g", {
        "empty": "(g IS NULL) OR (g > 0)",
        "core": "pg_advisory_lock(hashtextextended('orders:000012345', 0)) IS NULL "
                "OR pg_advisory_unlock(hashtextextended('orders:000012345', 0))",
        "pglocks": "pglocks_acquire('orders:000012345') IS NULL "
                   "OR pglocks_release('orders:000012345')"}),
    "text_new": (NEW_KEY_ROWS, {
        "empty": "(k IS NULL) OR (k > '')",
        "core": "pg_advisory_lock(hashtextextended(k, 0)) IS NULL "
                "OR pg_advisory_unlock(hashtextextended(k, 0))",
        "pglocks": "pglocks_acquire(k) IS NULL OR pglocks_release(k)"}),
    "token": ("generate_series(1, {n}) g", {
        "empty": "(g IS NULL) OR (g > 0)",
        "core": "pglocks_acquire(11::bigint) IS NULL OR pglocks_release(11::bigint)",
        "pglocks": "pglocks_acquire_token(11::bigint) IS NULL OR pglocks_release(11::bigint)"}),
}


def pair_query(family, side, n):
    rows, exprs = PAIRS[family]
    return f"SELECT count(*) FROM {rows.format(n=n)} WHERE {exprs[side]}"


# Scenario 6: n holds of n distinct locks, then introspection and release of all of them.
# Run on a fresh connection each time: the server's local lock table keeps its size once
# grown.
SCALE = """
CREATE FUNCTION {name}(n integer,
    OUT take float8, OUT list float8, OUT release float8, OUT listed bigint, OUT released bigint)
LANGUAGE plpgsql AS $$
DECLARE t0 timestamptz; t1 timestamptz; t2 timestamptz; t3 timestamptz;
BEGIN
    t0 := clock_timestamp();
    PERFORM {take} FROM generate_series(1, n) g;
    t1 := clock_timestamp();
    SELECT count(*) INTO listed FROM {list};
    t2 := clock_timestamp();
    {release}
    t3 := clock_timestamp();
    take := extract(epoch FROM t1 - t0);
    list := extract(epoch FROM t2 - t1);
    release := extract(epoch FROM t3 - t2);
END $$;
"""

SCALES = {
    "bench_scale_pglocks": dict(take="pglocks_acquire(g::bigint)", list="pglocks_held()",
                                release="released := pglocks_release_all();"),
    "bench_scale_core": dict(take="pg_advisory_lock(g::bigint)",
                             list="pg_catalog.pg_locks WHERE locktype = 'advisory' "
                                  "AND pid = pg_backend_pid()",
                             release="PERFORM pg_advisory_unlock_all(); released := listed;"),
}

# Scenario 4: the short body of the critical section updates one row.
TABLES = """
CREATE TABLE bench_counter (id integer PRIMARY KEY, n bigint NOT NULL DEFAULT 0);
INSERT INTO bench_counter (id) SELECT g FROM generate_series(1, 1000) g;
"""


def install_sql():
    parts = [TIME_QUERY]
    parts += [LOOP.format(name=name, argtype=a, vartype=v, body=b)
              for name, (a, v, b) in LOOPS.items() if not name.startswith("bench_pairs_")]
    parts += [SCALE.format(name=name, **stmts) for name, stmts in SCALES.items()]
    parts.append(TABLES)
    return "\n".join(parts)
