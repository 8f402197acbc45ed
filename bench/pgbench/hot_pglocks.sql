SELECT pglocks_acquire(42::bigint);
SELECT pglocks_release(42::bigint);
