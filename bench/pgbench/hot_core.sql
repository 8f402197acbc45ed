SELECT pg_advisory_lock(42::bigint);
SELECT pg_advisory_unlock(42::bigint);
