# pglocks on a hot standby made with pg_basebackup -R and streaming from its primary:
# acquiring fails with 55000 and a hint (a standby's locks do not exclude the primary's
# sessions) unless pglocks.allow_on_standby is on; the key functions and the read-only
# functions work; with it on, semaphores and detached waits work there and a fencing token
# is refused (25006: its sequence cannot advance during recovery); after promotion the
# guard no longer applies.
use strict;
use warnings;

use FindBin;
use lib $FindBin::RealBin;

use PglocksTAP;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

my $primary = pglocks_node('primary', init => { allows_streaming => 1 });
$primary->backup('base', backup_options => ['-R']);
my $standby = PostgreSQL::Test::Cluster->new('standby');
$standby->init_from_backup($primary, 'base');
ok(-f $standby->data_dir . '/standby.signal', 'pg_basebackup -R made a standby');
$standby->start;

# Something new on the primary must arrive, so the standby really streams.
$primary->safe_psql('postgres', 'CREATE TABLE streamed AS SELECT 1 AS x');
# (-R does not name the standby, so wait for the table rather than with wait_for_catchup.)
ok($standby->poll_query_until('postgres',
		"SELECT count(*) = 1 FROM pg_class WHERE relname = 'streamed'"),
	'the standby replays what the primary writes');
is($standby->safe_psql('postgres', 'SELECT pg_is_in_recovery(), x FROM streamed'),
	't|1', 'the standby is in recovery and streams from the primary');
is($standby->safe_psql('postgres',
		"SELECT status FROM pg_stat_wal_receiver"), 'streaming', 'wal receiver streams');

my $s = session($standby);
my $hint = qr/HINT:\s+Take the lock on the primary, or set pglocks\.allow_on_standby = on/;

is((run_sql($s, 'SHOW pglocks.allow_on_standby'))[0], 'off', 'the guard is on by default');

my @calls = (
	"pglocks_acquire('sb')",
	"pglocks_acquire('sb', shared => true)",
	"pglocks_acquire('sb', wait => false)",
	"pglocks_acquire('sb', timeout => '1s')",
	"pglocks_acquire('sb', scope => 'transaction')",
	'pglocks_acquire(42::int8)',
	'pglocks_acquire(4, 2)',
	"pglocks_acquire_all(ARRAY['sb', 'sb2'])",
	"pglocks_acquire_all('{}'::text[])",
	"pglocks_acquire_all('{}'::int8[])",
	"pglocks_with_lock('sb', 'SELECT 1')",
	"pglocks_with_lock(42::int8, 'SELECT 1')",
	"pglocks_with_lock(4, 2, 'SELECT 1')",
	q{pglocks_with_lock('sb', 'SELECT $1', ARRAY[1])},
	"pglocks_acquire_slot('sb', 2)",
	"pglocks_acquire_slot('sb', 2, wait => false)",
	"pglocks_acquire_token('sb')",
	"CALL pglocks_acquire_detached('sb')",
	"CALL pglocks_acquire_detached(4, 2, timeout => '1s')");
for my $call (@calls)
{
	my ($out, $err) = run_sql($s, $call =~ /^CALL/ ? $call : "SELECT $call");
	is(sqlstate($err), '55000', "standby: $call fails with 55000");
	like($err, $hint, "standby: $call gives the hint");
	like($err, qr/DETAIL:\s+Advisory locks taken on a standby do not exclude sessions on the primary/,
		"standby: $call says why");
}
assert_clean($s, 'standby, guard on');

is((run_sql($s, "SELECT pglocks_key('orders:42'), pglocks_crc32('orders:42')"))[0],
	$primary->safe_psql('postgres', "SELECT pglocks_key('orders:42'), pglocks_crc32('orders:42')"),
	'pglocks_key and pglocks_crc32 work on the standby, with the primary\'s values');
is((run_sql($s, "SELECT pglocks_key('orders:42')"))[0], '-8476019149258318077',
	'pglocks_key on the standby gives the specified value');
is((run_sql($s,
	"SELECT pglocks_release('sb'), pglocks_release(1, 2), pglocks_release_all(), count(*) FROM pglocks_held()"))[0],
	'f|f|0|0', 'release and introspection work on the standby, holding nothing');

run_sql($s, 'SET pglocks.allow_on_standby = on');
my ($out, $err) = run_sql($s,
	    "SELECT pglocks_acquire('sb'), pglocks_acquire('sb', shared => true, wait => false), "
	  . "pglocks_acquire(42::int8, timeout => '1s'), pglocks_acquire(4, 2)");
is($out, 't|t|t|t', 'allow_on_standby = on: acquire works on the standby');
is($err, '', 'no error');
is((run_sql($s, "SELECT pglocks_acquire_all('{}'::text[])"))[0], 't',
	'allow_on_standby = on: an empty acquire_all takes nothing and returns true');
assert_clean($s, 'standby, guard off', 'sb:x:1', 'sb:s:1', '42:x:1', '4,2:x:1');

# The locks exclude other sessions of the standby, and only those.
my $t = session($standby);
run_sql($t, 'SET pglocks.allow_on_standby = on');
is((run_sql($t, "SELECT pglocks_acquire('sb', wait => false)"))[0], 'f',
	'another standby session is excluded');
is($primary->safe_psql('postgres',
		"SELECT pglocks_acquire('sb', wait => false) AND pglocks_release('sb')"),
	't', 'a session of the primary is not excluded (why the guard exists)');

($out, $err) = run_sql($s, "SELECT pglocks_with_lock('sb2', 'SELECT count(*) FROM streamed')");
is($out, 't', 'with_lock works on the standby with the guard off');
run_sql($s, 'BEGIN');
($out, $err) = run_sql($s, "SELECT pglocks_acquire('sb3', scope => 'transaction')");
is($out, 't', 'transaction scope in a read-only transaction of the standby');
run_sql($s, 'COMMIT');
is((run_sql($s, 'SELECT pglocks_release_all()'))[0], '4', 'release_all on the standby');
assert_clean($s, 'standby, released');

# With the guard off, a semaphore's slots and a detached wait work there too; a fencing
# token cannot be issued during recovery (its sequence cannot advance): 25006.
is((run_sql($s, "SELECT pglocks_acquire_slot('sbsem', 2), pglocks_acquire_slot('sbsem', 2), "
	  . "pglocks_acquire_slot('sbsem', 2, wait => false) IS NULL"))[0],
	'0|1|t', 'allow_on_standby = on: slots of a semaphore on the standby');
is((run_sql($t, "SELECT pglocks_acquire_slot('sbsem', 2, timeout => '100ms') IS NULL"))[0],
	't', 'another standby session finds the semaphore full');
($out, $err) = run_sql($s, "CALL pglocks_acquire_detached('sbdet')");
is($err, '', 'allow_on_standby = on: a detached wait on the standby');
($out, $err) = run_sql($s, "SELECT pglocks_acquire_token('sbtok')");
is(sqlstate($err), '25006', 'no token during recovery: 25006');
is((run_sql($s, 'SELECT pglocks_release_all()'))[0], '3', 'release_all: the slots and the detached hold');
assert_clean($s, 'standby, slots and detached released');

# The setting is the session's own: others still get the guard.
run_sql($t, 'RESET pglocks.allow_on_standby');
($out, $err) = run_sql($t, "SELECT pglocks_acquire('sb')");
is(sqlstate($err), '55000', 'a session without the setting still gets the guard');
quit_session($_) for ($s, $t);

# Once promoted, the server is a primary and the guard no longer applies.
$standby->promote;
$standby->poll_query_until('postgres', 'SELECT NOT pg_is_in_recovery()');
is($standby->safe_psql('postgres', "SELECT pglocks_acquire('sb') AND pglocks_release('sb')"),
	't', 'after promotion acquire works without the setting');

$standby->stop;
$primary->stop;
done_testing();
