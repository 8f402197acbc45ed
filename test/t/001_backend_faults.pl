# Faults in backends that hold or wait for pglocks locks: a holder terminated while others
# wait, a holder killed with SIGKILL (the server restarts), errors and cancellations inside
# pglocks_with_lock and inside timed waits, a deadlock, and huge keys that must stay
# cancellable.
use strict;
use warnings;

use FindBin;
use lib $FindBin::RealBin;

use Compress::Zlib ();
use Digest::SHA ();
use POSIX ();
use PglocksTAP;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(time usleep);

my $node = pglocks_node('faults',
	conf => "restart_after_crash = on\nmax_connections = 30\n");

my $obs = sub { $node->safe_psql('postgres', $_[0]) };

# The lock is free: another session gets it at once (and gives it back).
# CPU seconds (user + system) that process $pid has used so far.
sub backend_cpu
{
	my ($pid) = @_;
	open(my $fh, '<', "/proc/$pid/stat") or die "no /proc/$pid/stat: $!";
	my $stat = <$fh>;
	close $fh;
	# The command name in parentheses may hold spaces: count fields after it.
	my @f = split ' ', substr($stat, rindex($stat, ')') + 2);
	return ($f[11] + $f[12]) / POSIX::sysconf(POSIX::_SC_CLK_TCK());
}

sub lock_is_free
{
	my ($key) = @_;
	return $obs->("SELECT pglocks_acquire($key, wait => false) AND pglocks_release($key)");
}

###############################################################################
note 'a holder terminated with pg_terminate_backend while others wait';
{
	my $h = session($node);
	my ($w1, $w2, $w3) = (session($node), session($node), session($node));
	run_sql($h, "SELECT pglocks_acquire('term:a')");
	run_sql($h, 'BEGIN');
	run_sql($h, "SELECT pglocks_acquire('term:b', scope => 'transaction')");

	start_query($w1, "SELECT pglocks_acquire('term:a')");
	wait_for_waiter($node, $w1->{pid});
	start_query($w2, "SELECT pglocks_acquire('term:a', timeout => '60s')");
	wait_for_waiter($node, $w2->{pid});
	start_query($w3, "SELECT pglocks_acquire('term:b', shared => true)");
	wait_for_waiter($node, $w3->{pid});

	is($obs->("SELECT pg_terminate_backend($h->{pid})"), 't', 'holder terminated');
	my ($out, $err) = finish_query($w1, 30);
	is($out, 't', 'the first waiter gets the session-scope lock of the terminated holder');
	($out, $err) = finish_query($w3, 30);
	is($out, 't', 'a shared waiter gets the transaction-scope lock of the terminated holder');
	usleep(200_000);
	ok(!query_done($w2), 'the second waiter still queues behind the first');
	is((run_sql($w1, "SELECT pglocks_release('term:a')"))[0], 't', 'first waiter releases');
	($out, $err) = finish_query($w2, 30);
	is($out, 't', 'the timed waiter gets the lock next');
	is( $obs->("SELECT count(*) FROM pg_locks WHERE pid = $h->{pid}"),
		'0', 'nothing of the terminated backend is left in pg_locks');
	run_sql($_, 'SELECT pglocks_release_all()') for ($w2, $w3);
	quit_session($_) for ($h, $w1, $w2, $w3);
	is(lock_is_free("'term:a'"), 't', 'term:a is free at the end');
	is(lock_is_free("'term:b'"), 't', 'term:b is free at the end');
}

###############################################################################
note 'errors and cancellations inside pglocks_with_lock and timed waits';
{
	my $s = session($node);
	my $w = session($node);
	my $h = session($node);
	# A hold taken before every error below: no error may take it away.
	run_sql($s, "SELECT pglocks_acquire('keep')");
	my @keep = ('keep:x:1');

	my ($out, $err) = run_sql($s, "SELECT pglocks_with_lock('wl', 'SELECT 1/0')");
	is(sqlstate($err), '22012', 'with_lock: the command error propagates');
	assert_clean($s, 'with_lock after a command error', @keep);
	is(lock_is_free("'wl'"), 't', 'with_lock after a command error: lock free');

	run_sql($s, "SET statement_timeout = '300ms'");
	my $t0 = time;
	($out, $err) = run_sql($s, "SELECT pglocks_with_lock('wl', 'SELECT pg_sleep(20)')");
	is(sqlstate($err), '57014', 'with_lock: statement_timeout during the command');
	cmp_ok(time - $t0, '<', 10, 'with_lock: the timeout ended the command');
	run_sql($s, 'RESET statement_timeout');
	assert_clean($s, 'with_lock after statement_timeout', @keep);
	is(lock_is_free("'wl'"), 't', 'with_lock after statement_timeout: lock free');

	start_query($s, "SELECT pglocks_with_lock('wl', 'SELECT pg_sleep(60)')");
	wait_until($node,
		"SELECT count(*) = 1 FROM pg_stat_activity WHERE pid = $s->{pid} AND wait_event = 'PgSleep'",
		'with_lock: the command runs');
	start_query($w, "SELECT pglocks_acquire('wl', timeout => '60s')");
	wait_for_waiter($node, $w->{pid});
	is($obs->("SELECT pg_cancel_backend($s->{pid})"), 't', 'cancel the command');
	($out, $err) = finish_query($s, 30);
	is(sqlstate($err), '57014', 'with_lock: pg_cancel_backend during the command');
	my ($wout, $werr, $waited) = finish_query($w, 30);
	is($wout, 't', 'the waiter gets the lock once the cancelled command is gone');
	run_sql($w, "SELECT pglocks_release('wl')");
	assert_clean($s, 'with_lock after pg_cancel_backend', @keep);

	($out, $err) = run_sql($s, q{DO $$ BEGIN
		PERFORM pglocks_with_lock('wl', 'SELECT 1/0');
	EXCEPTION WHEN division_by_zero THEN RAISE NOTICE 'caught';
	END $$});
	like($err, qr/caught/, 'with_lock: the error is caught by PL/pgSQL');
	unlike($err, qr/ERROR/, 'with_lock: nothing else failed');
	assert_clean($s, 'with_lock after a caught error', @keep);
	is(lock_is_free("'wl'"), 't', 'with_lock after a caught error: lock free');

	# Timed waits, with the lock held elsewhere.
	run_sql($h, "SELECT pglocks_acquire('tw')");

	start_query($s, "SELECT pglocks_acquire('tw', timeout => '10s')");
	wait_for_waiter($node, $s->{pid});
	$t0 = time;
	$obs->("SELECT pg_cancel_backend($s->{pid})");
	($out, $err) = finish_query($s, 30);
	is(sqlstate($err), '57014', 'timed wait: pg_cancel_backend');
	cmp_ok(time - $t0, '<', 5, 'timed wait: the cancel ended the wait at once');
	assert_clean($s, 'timed wait after pg_cancel_backend', @keep);

	start_query($s, "SELECT pglocks_with_lock('tw', 'SELECT 1', timeout => '10s')");
	wait_for_waiter($node, $s->{pid});
	$obs->("SELECT pg_cancel_backend($s->{pid})");
	($out, $err) = finish_query($s, 30);
	is(sqlstate($err), '57014', 'with_lock timed wait: pg_cancel_backend');
	assert_clean($s, 'with_lock timed wait after pg_cancel_backend', @keep);

	run_sql($s, 'BEGIN');
	run_sql($s, "SELECT pglocks_acquire('keep-xact', scope => 'transaction')");
	run_sql($s, 'SAVEPOINT a');
	start_query($s,
		"SELECT pglocks_acquire('tw', timeout => '10s', scope => 'transaction')");
	wait_for_waiter($node, $s->{pid});
	$obs->("SELECT pg_cancel_backend($s->{pid})");
	($out, $err) = finish_query($s, 30);
	is(sqlstate($err), '57014', 'transaction-scope timed wait: pg_cancel_backend');
	run_sql($s, 'ROLLBACK TO a');
	assert_clean($s, 'transaction-scope timed wait, rolled back to the savepoint',
		@keep, 'keep-xact:x:1');
	run_sql($s, 'COMMIT');
	assert_clean($s, 'transaction-scope timed wait, after commit', @keep);

	run_sql($s, "SET statement_timeout = '300ms'");
	($out, $err) = run_sql($s, "SELECT pglocks_acquire('tw', timeout => '10s')");
	is(sqlstate($err), '57014', 'timed wait: statement_timeout shorter than the timeout');
	run_sql($s, 'RESET statement_timeout');
	assert_clean($s, 'timed wait after statement_timeout', @keep);

	run_sql($s, "SET lock_timeout = '300ms'");
	($out, $err) = run_sql($s, "SELECT pglocks_acquire('tw', timeout => '10s')");
	is(sqlstate($err), '55P03', 'timed wait: a shorter lock_timeout raises its own error');
	assert_clean($s, 'timed wait after lock_timeout', @keep);
	run_sql($s, "SET lock_timeout = '10s'");
	($out, $err) = run_sql($s, "SELECT pglocks_acquire('tw', timeout => '300ms')");
	is($out, 'f', 'timed wait: our shorter timeout returns false under a longer lock_timeout');
	is($err, '', 'timed wait: no error for our own timeout');
	run_sql($s, 'RESET lock_timeout');
	assert_clean($s, 'timed wait after its timeout', @keep);

	# A deadlock while both wait with a timeout: the victim errors, its session hold stays
	# (session locks outlive errors), and once it gives that up the other waiter gets it.
	run_sql($s, "SELECT pglocks_acquire('dl:1')");
	run_sql($w, "SELECT pglocks_acquire('dl:2')");
	start_query($s, "SELECT pglocks_acquire('dl:2', timeout => '30s')");
	wait_for_waiter($node, $s->{pid});
	start_query($w, "SELECT pglocks_acquire('dl:1', timeout => '30s')");
	$t0 = time;
	until (query_done($s) || query_done($w))
	{
		die 'no deadlock detected' if time - $t0 > 30;
		usleep(10_000);
	}
	my ($victim, $winner, $victim_key) =
	  query_done($s) ? ($s, $w, 'dl:1') : ($w, $s, 'dl:2');
	($out, $err) = finish_query($victim, 5);
	is(sqlstate($err), '40P01', 'deadlock: the victim fails with 40P01');
	assert_clean($victim, 'deadlock victim', "$victim_key:x:1", $victim == $s ? @keep : ());
	run_sql($victim, "SELECT pglocks_release('$victim_key')");
	($out, $err) = finish_query($winner, 30);
	is($out, 't', 'deadlock: the other waiter gets its lock once the victim lets go');
	run_sql($winner, 'SELECT pglocks_release_all()');
	run_sql($h, 'SELECT pglocks_release_all()');
	is((run_sql($s, 'SELECT pglocks_release_all()'))[0], $victim == $s ? '1' : '2',
		'release_all releases what is left');
	assert_clean($s, 'after release_all');
	is($obs->("SELECT count(*) FROM pg_locks WHERE locktype = 'advisory'"),
		'0', 'no advisory lock left');
	quit_session($_) for ($s, $w, $h);
}

###############################################################################
note 'huge keys: hashed correctly, cancellable';
{
	my $n = 300_000_000;
	my $big = 'x' x $n;
	my $want_key = unpack('q>', substr(Digest::SHA::sha256($big), 0, 8));
	my $want_crc = unpack('l', pack('L', Compress::Zlib::crc32($big)));
	undef $big;

	my $s = session($node);
	my ($out, $err) = run_sql($s, "SELECT pglocks_key(repeat('x', $n))", 120);
	is($out, $want_key, 'pglocks_key of a 300 MB key completes and is right');
	($out, $err) = run_sql($s, "SELECT pglocks_crc32(repeat('x', $n))", 120);
	is($out, $want_crc, 'pglocks_crc32 of a 300 MB key completes and is right');
	is((run_sql($s, "SELECT pglocks_acquire(repeat('x', $n))", 120))[0],
		't', 'a 300 MB text key can be locked');
	is((run_sql($s, "SELECT pglocks_acquire($want_key)"))[0], 't', 'and pglocks_key of it');
	($out, $err) = run_sql($s, "SELECT key = repeat('x', 1024), lock_key, holds FROM pglocks_held()");
	is($out, "t|$want_key|2",
		'both are holds of one lock, shown with the name clipped to 1024 bytes');
	is((run_sql($s, 'SELECT pglocks_release_all()'))[0], '2', 'released');

	# A cancel that is already pending when the hash starts must end it: proves the hashing
	# loop checks for interrupts. setval() runs only if the hash returned.
	run_sql($s, 'CREATE SEQUENCE IF NOT EXISTS huge_done');
	for my $fn ('pglocks_key', 'pglocks_crc32', 'pglocks_acquire')
	{
		run_sql($s, "SELECT setval('huge_done', 1)");
		($out, $err) = run_sql($s, qq{
			WITH k AS MATERIALIZED (SELECT repeat('x', $n) AS k)
			SELECT setval('huge_done', 2 + ($fn(CASE WHEN pg_cancel_backend(pg_backend_pid())
			                                     THEN k END) IS NULL)::int)
			FROM k}, 120);
		is(sqlstate($err), '57014', "$fn: a pending cancel stops the hashing of a huge key");
		is((run_sql($s, 'SELECT last_value FROM huge_done'))[0], '1',
			"$fn: the hashing did not run to its end");
	}
	assert_clean($s, 'after cancelled huge keys');

	# A cancel from another session while the same 300 MB key is hashed over and over:
	# it must land within a fraction of one hash, not at the end of one. Measured in the
	# backend's own CPU time (from /proc), which a loaded machine does not stretch as it
	# stretches the wall clock: the CPU the backend spends after the cancel was sent, against
	# the CPU of one whole hash.
	my $c = session($node);
	for my $fn ('pglocks_crc32', 'pglocks_key')
	{
		my $cpu0 = backend_cpu($c->{pid});
		($out, $err) = run_sql($c, "SELECT $fn(repeat('x', $n)) IS NOT NULL", 120);
		is($out, 't', "$fn: one hash of the huge key");
		my $one = backend_cpu($c->{pid}) - $cpu0;
		note "$fn: one hash of 300 MB takes ${one}s of CPU";
		my @lat;
		for my $try (1 .. 3)
		{
			start_query($c, qq{DO \$\$ DECLARE k text := repeat('x', $n); r int8;
				BEGIN RAISE NOTICE 'hashing';
				  FOR i IN 1..200 LOOP r := $fn(k); END LOOP; END \$\$});
			my $start = time;
			until ($c->{stderr} =~ /hashing/)
			{
				die 'no hashing' if time - $start > 120;
				query_done($c);
				usleep(10_000);
			}
			# Somewhere inside one of the hashes, a different place each try.
			usleep(int((0.2 + rand(0.6)) * $one * 1e6));
			$obs->("SELECT pg_cancel_backend($c->{pid})");
			my $sent = backend_cpu($c->{pid});
			($out, $err) = finish_query($c, 60);
			push @lat, backend_cpu($c->{pid}) - $sent;
			is(sqlstate($err), '57014', "$fn: cancelled from another session");
		}
		my ($max) = sort { $b <=> $a } @lat;
		note sprintf('%s: CPU after the cancel %s s', $fn, join(' ', map { sprintf '%.3f', $_ } @lat));
		# Uncancellable hashing would end only with the hash: on average half of one, and
		# under a quarter of one in all three tries only once in 64 runs.
		cmp_ok($max, '<', 0.05 + $one / 4, "$fn: the cancel lands inside the hash");
	}
	quit_session($_) for ($s, $c);
}

###############################################################################
note 'a backend holding locks is killed with SIGKILL; the server restarts';
{
	my $k = session($node);
	my $w = session($node);
	run_sql($k, "SELECT pglocks_acquire('kill:a'), pglocks_acquire('kill:a'), "
		  . "pglocks_acquire(7, 8, shared => true)");
	run_sql($k, 'BEGIN');
	run_sql($k, "SELECT pglocks_acquire('kill:b', scope => 'transaction')");
	start_query($w, "SELECT pglocks_acquire('kill:a', timeout => '60s')");
	wait_for_waiter($node, $w->{pid});

	my $log_offset = -s $node->logfile;
	kill 'KILL', $k->{pid};
	ok($node->poll_query_until('postgres', 'SELECT 1', '1'),
		'the server accepts connections again after the crash');
	my $log = slurp_file($node->logfile, $log_offset);
	like($log, qr/\(PID $k->{pid}\) was terminated by signal 9/, 'the kill was seen');
	like($log, qr/all server processes terminated; reinitializing/, 'the server restarted');

	my ($out, $err) = finish_query($w, 30);
	like($err, qr/57P02|server closed the connection|terminating connection/,
		'the waiter was disconnected by the restart');
	quit_session($_) for ($k, $w);

	is($obs->("SELECT count(*) FROM pg_locks WHERE locktype = 'advisory'"),
		'0', 'no advisory lock survived the crash');
	my $s = session($node);
	($out, $err) = run_sql($s,
		    "SELECT pglocks_acquire('kill:a', wait => false), "
		  . "pglocks_acquire('kill:b', timeout => '1s'), "
		  . "pglocks_acquire(7, 8, wait => false), "
		  . "(SELECT sum(holds) FROM pglocks_held())");
	is($out, 't|t|t|3', 'pglocks works after the restart and every lock is free');
	assert_clean($s, 'after the restart', 'kill:a:x:1', 'kill:b:x:1', '7,8:x:1');
	is((run_sql($s, 'SELECT pglocks_release_all()'))[0], '3', 'release_all after the restart');
	quit_session($s);
}

$node->stop;
done_testing();
