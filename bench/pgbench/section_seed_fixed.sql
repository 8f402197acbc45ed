\set k random(1, 1000)
SELECT pg_advisory_lock(:k::bigint);
UPDATE bench_counter SET n = n + 1 WHERE id = 1;
SELECT pg_advisory_unlock(:k::bigint);
