# The shared lock table fills up: every acquire that needs a new lock fails with 53200 and
# the server's hint, and afterwards pglocks_held(), pglocks_release_all() and pg_locks
# agree exactly, in session and transaction scope, with savepoints, with pglocks_with_lock
# and when the core functions filled the table.
use strict;
use warnings;

use FindBin;
use lib $FindBin::RealBin;

use PglocksTAP;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

# A lock table of a few hundred entries (plus the slack of shared memory).
my $node = pglocks_node('full',
	conf => "max_locks_per_transaction = 10\nmax_connections = 8\n"
	  . "max_worker_processes = 2\nautovacuum = off\n");

# PostgreSQL 17 quotes the setting's name in the hint.
my $hint = qr/HINT:\s+You might need to increase "?max_locks_per_transaction"?/;
my $obs = sub { $node->safe_psql('postgres', $_[0]) };

my $s = session($node);
my $o = session($node);
run_sql($o, 'CREATE SEQUENCE ran');

# Fills the lock table from $sess with one statement; returns how many of its acquires
# would have gone on for far longer than any lock table holds.
sub fill
{
	my ($sess, $what, $expr) = @_;
	my ($out, $err) = run_sql($sess,
		"SELECT count(*) FROM (SELECT $expr FROM generate_series(1000, 1000000) g) s");
	is(sqlstate($err), '53200', "$what: the lock table fills up with 53200");
	like($err, $hint, "$what: with the server's hint");
	return;
}

sub agree
{
	my ($sess, $what) = @_;
	my ($out, $err) = run_sql($sess, held_vs_locks());
	is($out, 'ok', "$what: pglocks_held() and pg_locks agree");
	is($err, '', "$what: no error");
	return;
}

sub holds
{
	my ($sess) = @_;
	return (run_sql($sess, 'SELECT coalesce(sum(holds), 0) FROM pglocks_held()'))[0];
}

###############################################################################
note 'session scope';
run_sql($s, "SELECT pglocks_acquire('full:text'), pglocks_acquire('full:text'), "
	  . "pglocks_acquire(7, 8, shared => true), pglocks_acquire(-5, shared => true)");
fill($s, 'session scope', 'pglocks_acquire(g::int8)');
agree($s, 'session scope, table full');
my $n = holds($s);
note "the lock table took $n holds of one session";
cmp_ok($n, '>', 100, 'the fill took many locks');

# While the table is full, another session fails cleanly too.
my ($out, $err) = run_sql($o, "SELECT pglocks_acquire('full:other')");
is(sqlstate($err), '53200', 'another session: 53200 on a full table');
like($err, $hint, "another session: with the server's hint");
agree($o, 'another session after 53200');
is(holds($o), '0', 'another session holds nothing');

($out, $err) = run_sql($o, "SELECT pglocks_with_lock('full:other', 'SELECT nextval(''ran'')')");
is(sqlstate($err), '53200', 'with_lock on a full table: 53200');
agree($o, 'with_lock after 53200');

# A lock that exists (held by $s) still needs a lock-table entry for a second backend.
($out, $err) = run_sql($o, "SELECT pglocks_acquire(1000::int8, timeout => '200ms')");
ok($out eq 'f' || sqlstate($err) eq '53200',
	'a timed wait for a held lock on a full table fails or times out');
agree($o, 'timed wait on a full table');

($out, $err) = run_sql($s, 'SELECT pglocks_release_all()');
is($out, $n, 'release_all releases exactly the holds pglocks_held() counted');
agree($s, 'after release_all');
is($obs->("SELECT count(*) FROM pg_locks WHERE locktype = 'advisory'"), '0',
	'the lock table has no advisory lock left');
# Read only now: on a full table even this query may find no room for its locks.
is((run_sql($o, 'SELECT is_called FROM ran'))[0], 'f', 'with_lock: the command did not run');
is((run_sql($o, "SELECT pglocks_acquire('full:other'), pglocks_release('full:other')"))[0],
	't|t', 'the other session can lock again');

###############################################################################
note 'transaction scope';
run_sql($s, "SELECT pglocks_acquire('full:s1'), pglocks_acquire('full:s1')");
run_sql($s, 'BEGIN');
run_sql($s, "SELECT pglocks_acquire('full:t1', scope => 'transaction')");
fill($s, 'transaction scope', "pglocks_acquire(g::int8, scope => 'transaction')");
run_sql($s, 'ROLLBACK');
agree($s, 'transaction scope, after rollback');
is(holds($s), '2', 'transaction scope: only the session holds are left');

run_sql($s, 'BEGIN');
run_sql($s, "SELECT pglocks_acquire('full:t2', scope => 'transaction')");
run_sql($s, 'SAVEPOINT a');
fill($s, 'transaction scope in a savepoint',
	"pglocks_acquire(g::int8, shared => g % 2 = 0, scope => 'transaction')");
run_sql($s, 'ROLLBACK TO a');
agree($s, 'rolled back to the savepoint');
is(holds($s), '3', 'the holds taken before the savepoint are left');
run_sql($s, 'COMMIT');
agree($s, 'after commit');
is(holds($s), '2', 'after commit only the session holds are left');

# Session holds taken in a transaction that fails outlive it, as the core's do.
run_sql($s, 'BEGIN');
fill($s, 'session scope in a transaction', 'pglocks_acquire(g::int8)');
run_sql($s, 'ROLLBACK');
agree($s, 'session scope, after the rollback');
$n = holds($s);
cmp_ok($n, '>', 100, 'session holds outlive the failed transaction');

# On a full table, taking a lock already held needs no new entry; it may be counted.
($out, $err) = run_sql($s, "SELECT pglocks_with_lock('full:s1', 'SELECT 1')");
ok($out eq 't' || sqlstate($err) eq '53200', 'with_lock on a held lock, full table');
agree($s, 'with_lock on a held lock');
is(holds($s), $n, 'with_lock left no hold');
is((run_sql($s, 'SELECT pglocks_release_all()'))[0], $n, 'release_all after the rollback');
agree($s, 'empty again');

###############################################################################
note 'the core functions fill the table';
($out, $err) = run_sql($o,
	'SELECT count(*) FROM (SELECT pg_advisory_lock(g) FROM generate_series(1, 1000000) g) s');
is(sqlstate($err), '53200', 'pg_advisory_lock fills the table');
($out, $err) = run_sql($s, "SELECT pglocks_acquire('full:after-core')");
is(sqlstate($err), '53200', 'pglocks: 53200 on a table the core functions filled');
($out, $err) = run_sql($s, "SELECT pglocks_acquire('full:after-core', shared => true, "
	  . "scope => 'transaction')");
is(sqlstate($err), '53200', 'pglocks transaction scope: 53200 too');
# The other calls that take a lock need an entry as well: a semaphore slot (its queue lock,
# then the slot), waiting or timed; a token; a detached wait; a set. Each fails with 53200
# and the hint and leaves nothing held and nothing queued.
my @calls = (
	"SELECT pglocks_acquire_slot('full:sem', 2)",
	"SELECT pglocks_acquire_slot('full:sem', 2, timeout => '1s')",
	"SELECT pglocks_acquire_token('full:tok')",
	"CALL pglocks_acquire_detached('full:det', timeout => '1s')",
	"SELECT pglocks_acquire_all(ARRAY['full:x', 'full:y'])");
for my $call (@calls)
{
	($out, $err) = run_sql($s, $call);
	is(sqlstate($err), '53200', "$call: 53200 on a full table");
	like($err, $hint, "$call: with the server's hint");
	agree($s, "after $call");
}
is(holds($s), '0', 'pglocks holds nothing');
my $s_pid = (run_sql($s, 'SELECT pg_backend_pid()'))[0];
# (read by the session that filled the table: a new one could not start)
is((run_sql($o, "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND pid = $s_pid"))[0],
	'0', 'no lock of the session in pg_locks, granted or queued');
run_sql($o, 'SELECT pg_advisory_unlock_all()');
is((run_sql($s, "SELECT pglocks_acquire('full:after-core'), pglocks_release_all()"))[0],
	't|1', 'pglocks works once the core locks are gone');
is((run_sql($s, "SELECT pglocks_acquire_slot('full:sem', 2), "
	  . "pglocks_acquire_token('full:tok') IS NOT NULL, pglocks_release_all()"))[0],
	'0|t|2', 'a slot and a token once the core locks are gone');
($out, $err) = run_sql($s, "CALL pglocks_acquire_detached('full:det')");
is($err, '', 'a detached wait once the core locks are gone');
is((run_sql($s, 'SELECT pglocks_release_all()'))[0], '1', 'its hold released');
agree($s, 'at the end');
is($obs->("SELECT count(*) FROM pg_locks WHERE locktype = 'advisory'"), '0',
	'no advisory lock left');

quit_session($_) for ($s, $o);
$node->stop;
done_testing();
