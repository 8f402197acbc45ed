\set k random(1, 1000000)
SELECT pg_advisory_lock(:k::bigint);
SELECT pg_advisory_unlock(:k::bigint);
