# pglocks_locks and the set-returning functions after pg_stat_clear_snapshot() in the same
# transaction, read by a plain role on a server with many backend slots: the backend-status
# snapshot is then big enough to go back to the system when it is freed, so a pointer kept
# into it crashes the backend (and the postmaster restarts every session).
use strict;
use warnings;

use FindBin;
use lib $FindBin::RealBin;

use PglocksTAP;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

###############################################################################
my $big = pglocks_node('big',
	conf => "max_connections = 2100\nrestart_after_crash = on\nshared_buffers = 16MB\n");
$big->safe_psql('postgres', 'CREATE ROLE plain LOGIN');

###############################################################################
note 'views and set-returning functions after pg_stat_clear_snapshot(), as a plain role';
# A session that lives through the test: a crash of any backend would end it.
my $witness = session($big);

my ($ret, $out, $err) = $big->psql(
	'postgres', q{
SET application_name = 'snapshot-test';
BEGIN;
SELECT pglocks_acquire('snap:a'), pg_advisory_lock(4242);
SELECT count(*) FROM pglocks_locks;
SELECT pg_stat_clear_snapshot();
SELECT string_agg(application_name || '/' || key, ' ' ORDER BY key) FROM pglocks_locks;
SELECT pg_stat_clear_snapshot();
SELECT string_agg(application_name || '/' || key, ' ' ORDER BY key) FROM pglocks_locks_data();
SELECT pg_stat_clear_snapshot();
SELECT string_agg(key || ':' || scope, ' ') FROM pglocks_held();
SELECT pg_stat_clear_snapshot();
SELECT count(*) FROM pglocks_locks;
COMMIT;
},
	extra_params => [ '-U', 'plain', '-v', 'ON_ERROR_STOP=1', '-At' ]);
is($ret, 0, 'a plain role reads the view again after pg_stat_clear_snapshot()') or diag $err;
my @lines = split /\n/, $out;
is($lines[3], 'snapshot-test/4242 snapshot-test/snap:a',
	'pglocks_locks names the holder after the snapshot was cleared')
  or diag $out;
is($lines[5], 'snapshot-test/4242 snapshot-test/snap:a',
	'pglocks_locks_data() too')
  or diag $out;
is($lines[7], 'snap:a:session', 'pglocks_held() too');
is(eval { (run_sql($witness, 'SELECT 1'))[0] } // '', '1', 'no backend crashed: another session lives on');
unlike(slurp_file($big->logfile), qr/terminated by signal/,
	'no process was terminated by a signal');
$big->poll_query_until('postgres', 'SELECT true');

quit_session($witness);
$big->stop;

done_testing();
