# The shared name table behind pglocks_locks:
#  - filled to its limit and beyond, it takes no spare shared memory, and names that do not
#    fit are shown by their numeric key;
#  - waiters terminated in the lock queue leave no name behind, also when their keys
#    collide in every per-backend cache pglocks has;
#  - names kept by idle sessions leave room for names in use, and a kept name shows no
#    hold time.
use strict;
use warnings;

use FindBin;
use lib $FindBin::RealBin;

use PglocksTAP;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

###############################################################################
my $big = pglocks_node('names', conf => "pglocks.max_named_locks = 64\n");

###############################################################################
note 'the shared name table stays within the memory it requested at start';
my $free_sql = 'SELECT size FROM pg_shmem_allocations WHERE name IS NULL';
my $anon_sql = q{SELECT size FROM pg_shmem_allocations WHERE name = '<anonymous>'};
my ($free0, $anon0) = ($big->safe_psql('postgres', $free_sql), $big->safe_psql('postgres', $anon_sql));
my $holder = session($big);
run_sql($holder, q{SELECT count(pglocks_acquire('fill:' || g)) FROM generate_series(1, 60) g});
my $named = q{SELECT count(*) FILTER (WHERE key !~ '^-?[0-9]+$') || '/' || count(*)
	FROM pglocks_locks WHERE pid = %d};
is($big->safe_psql('postgres', sprintf($named, $holder->{pid})), '60/60',
	'60 names of 64 are published');
is($big->safe_psql('postgres', $free_sql), $free0, 'free shared memory unchanged after 60 names');
run_sql($holder, q{SELECT count(pglocks_acquire('fill:' || g)) FROM generate_series(61, 100) g});
is($big->safe_psql('postgres', sprintf($named, $holder->{pid})), '64/100',
	'the table full: 64 names, the other 36 locks by numeric key');
is($big->safe_psql('postgres', $free_sql), $free0,
	'free shared memory unchanged with the table full');
is($big->safe_psql('postgres', $anon_sql), $anon0, 'no anonymous allocation either');
# Emptied and filled again, by other sessions whose names hash elsewhere.
quit_session($holder);
$big->poll_query_until('postgres', 'SELECT count(*) = 0 FROM pglocks_locks');
my @fillers = map { session($big) } 1 .. 4;
for my $i (0 .. 3)
{
	run_sql($fillers[$i],
		"SELECT count(pglocks_acquire('refill:$i:' || g)) FROM generate_series(1, 20) g");
}
is($big->safe_psql('postgres',
		q{SELECT count(*) FILTER (WHERE key !~ '^-?[0-9]+$') || '/' || count(*) FROM pglocks_locks}),
	'64/80', 'filled again by four sessions: 64 names, 16 numeric keys');
is($big->safe_psql('postgres', $free_sql), $free0, 'free shared memory still unchanged');
quit_session($_) for @fillers;

###############################################################################
note 'names kept by idle sessions after their locks ended leave room for names in use';
# Each session keeps a few names of locks it released, for the next acquire of the same
# name; a session that stays idle never gives them back. Together they are bounded to half
# the table, so four idle sessions that took and released 40 names each (16 kept each would
# fill the 64 entries) leave room for another session's 30 names.
$big->poll_query_until('postgres', 'SELECT count(*) = 0 FROM pglocks_locks');
my @idle = map { session($big) } 1 .. 4;
for my $i (0 .. 3)
{
	run_sql($idle[$i], "SELECT count(pglocks_acquire('idle:$i:' || g)) FROM generate_series(1, 40) g");
	run_sql($idle[$i], 'SELECT pglocks_release_all()');
}
my $busy = session($big);
run_sql($busy, q{SELECT count(pglocks_acquire('busy:' || g)) FROM generate_series(1, 30) g});
is($big->safe_psql('postgres', sprintf($named, $busy->{pid})), '30/30',
	'four idle sessions that kept names: all 30 names of a busy session are shown');
quit_session($_) for @idle, $busy;

$big->stop;

###############################################################################
note 'a kept name shows no hold time for a lock taken again by the core functions';
my $kept = pglocks_node('kept');
my $b = session($kept);
run_sql($b, q{SELECT pglocks_acquire('job'), pglocks_release('job'),
	pg_advisory_lock(pglocks_key('job'))});
is($kept->safe_psql('postgres',
		"SELECT key || ' ' || (held_since IS NULL) FROM pglocks_locks WHERE pid = $b->{pid}"),
	'job true', 'the name is shown, the hold time is not (pglocks does not know it)');
run_sql($b, q{SELECT pg_advisory_unlock_all(), pglocks_acquire('job')});
is($kept->safe_psql('postgres',
		"SELECT key || ' ' || (held_since IS NOT NULL) FROM pglocks_locks WHERE pid = $b->{pid}"),
	'job true', 'taken again by pglocks: name and hold time');
quit_session($b);
$kept->stop;

###############################################################################
note 'terminated waiters leave no name behind';
my $small = pglocks_node('small', conf => "pglocks.max_named_locks = 4\n");
my $look = sub {
	$small->safe_psql('postgres',
		    q{SELECT count(*) FILTER (WHERE key !~ '^-?[0-9]+$') || '/' || count(*) }
		  . q{FROM pglocks_locks WHERE pid <> pg_backend_pid()});
};
# 'A' and 'B11' share a slot of the per-backend cache of published names (g_local);
# 'collide-a' and 'collide-b752' share one there and one in the cache of key hashes
# (KeyCache). test/unit/lock_key_test.cpp checks both collisions.
for my $pair ([ 'A', 'B11' ], [ 'collide-a', 'collide-b752' ])
{
	my ($first, $second) = @$pair;
	for my $round (1 .. 3)
	{
		my $h = session($small);
		my $v = session($small);
		run_sql($h, "SELECT pglocks_acquire('$second')");
		run_sql($v, "SELECT pglocks_acquire('$first')");
		start_query($v, "SELECT pglocks_acquire('$second')");
		wait_for_waiter($small, $v->{pid});
		is($look->(), '3/3', "$first/$second round $round: the holder's and the waiter's names are shown");
		$small->safe_psql('postgres', "SELECT pg_terminate_backend($v->{pid})");
		$small->poll_query_until('postgres',
			"SELECT count(*) = 0 FROM pg_stat_activity WHERE pid = $v->{pid}");
		quit_session($v);
		quit_session($h);
		$small->poll_query_until('postgres',
			"SELECT count(*) = 0 FROM pg_stat_activity WHERE backend_type = 'client backend' "
			  . 'AND pid <> pg_backend_pid()');
	}
	my $p = session($small);
	run_sql($p, q{SELECT pglocks_acquire('p' || g) FROM generate_series(1, 4) g});
	is($look->(), '4/4', "after waiters on $first/$second were terminated, all four entries are free");
	quit_session($p);
}
$small->stop;
done_testing();
