# Security review, as tests (docs/security.md explains each point):
#  - every function is SECURITY INVOKER, every argument and result type is a pg_catalog type;
#  - a plain role can use every function and view of the extension;
#  - pglocks_with_lock runs its command as the caller: it grants nothing the caller lacks;
#  - a plain role cannot release another role's locks;
#  - lock names in pglocks_locks are shown only to roles with the privileges of the
#    holder's role and to members of pg_read_all_stats;
#  - the extension is trusted: a database owner without superuser installs it;
#  - the install script resolves nothing through search_path, even when installed into a
#    schema that an untrusted role owns and has filled with look-alike objects.
use strict;
use warnings;

use FindBin;
use lib $FindBin::RealBin;

use PglocksTAP;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

my $node = pglocks_node('security', conf => "track_functions = 'all'\n");
my $su = sub { $node->safe_psql($_[1] // 'postgres', $_[0]) };

$su->(q{
	CREATE ROLE alice LOGIN;
	CREATE ROLE bob LOGIN;
	CREATE ROLE mallory LOGIN;
	CREATE ROLE dbowner LOGIN;
	CREATE DATABASE sec;
	CREATE DATABASE owned OWNER dbowner;
});
$su->(q{
	CREATE EXTENSION pglocks;
	CREATE TABLE secret (x int);
	INSERT INTO secret VALUES (42);
	REVOKE ALL ON secret FROM PUBLIC;
	CREATE SCHEMA alice AUTHORIZATION alice;
}, 'sec');

my $ext_members = q{
	SELECT d.classid, d.objid FROM pg_depend d
	WHERE d.refclassid = 'pg_extension'::regclass AND d.deptype = 'e'
	  AND d.refobjid = (SELECT oid FROM pg_extension WHERE extname = 'pglocks')};
my $ext_functions = "SELECT objid::regprocedure AS f FROM ($ext_members) m "
  . "WHERE classid = 'pg_proc'::regclass";

###############################################################################
note 'catalog: invoker rights, pg_catalog types, control file';
cmp_ok($su->("SELECT count(*) FROM ($ext_functions) f", 'sec'), '>=', 14,
	'the extension has its functions');
is($su->("SELECT coalesce(string_agg(f::text, ', '), '') FROM ($ext_functions) f "
		  . 'JOIN pg_proc p ON p.oid = f::oid WHERE p.prosecdef', 'sec'),
	'', 'no function is SECURITY DEFINER');
is($su->("SELECT coalesce(string_agg(f::text, ', '), '') FROM ($ext_functions) f "
		  . 'JOIN pg_proc p ON p.oid = f::oid WHERE p.proconfig IS NOT NULL', 'sec'),
	'', 'no function changes settings (SET clauses) for its call');
is( $su->(
		"SELECT coalesce(string_agg(DISTINCT t::regtype::text, ', '), '') FROM ($ext_functions) f "
		  . 'JOIN pg_proc p ON p.oid = f::oid, '
		  . 'unnest(coalesce(p.proallargtypes, p.proargtypes::oid[]) || p.prorettype) t '
		  . "WHERE (SELECT typnamespace FROM pg_type WHERE oid = t) <> 'pg_catalog'::regnamespace",
		'sec'),
	'',
	'every argument and result type is a pg_catalog type');
is($su->("SELECT superuser, trusted, relocatable FROM pg_available_extension_versions "
		  . "WHERE name = 'pglocks' AND version = '1.0'"),
	't|t|f', 'control file: trusted, superuser, not relocatable');

###############################################################################
note 'a plain role uses every function and view';
$su->('SELECT pg_stat_reset()', 'sec');
my @views = split /\n/, $su->("SELECT objid::regclass FROM ($ext_members) m "
	  . "WHERE classid = 'pg_class'::regclass "
	  . "AND (SELECT relkind FROM pg_class WHERE oid = objid) = 'v'", 'sec');
# One call or more for every function, by signature; a function without one fails the
# test, so a new function gets its plain-role check when it is added.
my %sample = (
	'pglocks_key(text)' => q{SELECT pglocks_key('a')},
	'pglocks_crc32(text)' => q{SELECT pglocks_crc32('a')},
	'pglocks_acquire(text,boolean,boolean,interval,text,boolean)' =>
	  q{SELECT pglocks_acquire('sec:a', timeout => '1s', scope => 'transaction')},
	'pglocks_acquire(bigint,boolean,boolean,interval,text,boolean)' =>
	  q{SELECT pglocks_acquire(1::int8, shared => true)},
	'pglocks_acquire(integer,integer,boolean,boolean,interval,text,boolean)' =>
	  q{SELECT pglocks_acquire(1, 2, wait => false, reentrant => false)},
	'pglocks_held()' => q{SELECT count(*) FROM pglocks_held()},
	'pglocks_release(text,boolean)' => q{SELECT pglocks_release('sec:a')},
	'pglocks_release(bigint,boolean)' => q{SELECT pglocks_release(1::int8, shared => true)},
	'pglocks_release(integer,integer,boolean)' => q{SELECT pglocks_release(1, 2)},
	'pglocks_release_all()' => q{SELECT pglocks_acquire('sec:b'), pglocks_release_all()},
	'pglocks_with_lock(text,text,boolean,boolean,interval)' =>
	  q{SELECT pglocks_with_lock('sec:c', 'SELECT 1')},
	'pglocks_with_lock(bigint,text,boolean,boolean,interval)' =>
	  q{SELECT pglocks_with_lock(3::int8, 'SELECT 1', shared => true)},
	'pglocks_with_lock(integer,integer,text,boolean,boolean,interval)' =>
	  q{SELECT pglocks_with_lock(3, 4, 'SELECT 1', wait => false)},
	'pglocks_locks_data()' => q{SELECT count(*) >= 0 FROM pglocks_locks_data()},
	'pglocks_acquire_token(text,boolean,boolean,interval,text,boolean)' =>
	  q{SELECT pglocks_acquire_token('sec:t') > 0, pglocks_release('sec:t')},
	'pglocks_acquire_token(bigint,boolean,boolean,interval,text,boolean)' =>
	  q{SELECT pglocks_acquire_token(5::int8) > 0, pglocks_release(5::int8)},
	'pglocks_acquire_token(integer,integer,boolean,boolean,interval,text,boolean)' =>
	  q{SELECT pglocks_acquire_token(5, 6, reentrant => false) > 0, pglocks_release(5, 6)},
	'pglocks_token(text,boolean)' => q{SELECT pglocks_token('sec:none') IS NULL},
	'pglocks_token(bigint,boolean)' => q{SELECT pglocks_token(7::int8) IS NULL},
	'pglocks_token(integer,integer,boolean)' => q{SELECT pglocks_token(7, 8) IS NULL},
	'pglocks_acquire_all(text[],boolean,boolean,interval,text,boolean)' =>
	  q{SELECT pglocks_acquire_all(ARRAY['sec:1', 'sec:2'])},
	'pglocks_release_all(text[],boolean)' =>
	  q{SELECT pglocks_release_all(ARRAY['sec:1', 'sec:2'])},
	'pglocks_acquire_all(bigint[],boolean,boolean,interval,text,boolean)' =>
	  q{SELECT pglocks_acquire_all(ARRAY[11, 12]::int8[], shared => true)},
	'pglocks_release_all(bigint[],boolean)' =>
	  q{SELECT pglocks_release_all(ARRAY[11, 12]::int8[], shared => true)},
	'pglocks_acquire_slot(text,integer,boolean,interval,text)' =>
	  q{SELECT pglocks_acquire_slot('sec:sem', 2, timeout => '1s') = 0},
	'pglocks_release_slot(text,integer)' =>
	  q{SELECT pglocks_release_slot('sec:sem', 0)},
	'pglocks_with_lock(text,text,anyarray,boolean,boolean,interval)' =>
	  q{SELECT pglocks_with_lock('sec:p', 'SELECT $1', ARRAY[1])},
	'pglocks_with_lock(bigint,text,anyarray,boolean,boolean,interval)' =>
	  q{SELECT pglocks_with_lock(15::int8, 'SELECT $1 || $2', ARRAY['a', 'b'], shared => true)},
	'pglocks_with_lock(integer,integer,text,anyarray,boolean,boolean,interval)' =>
	  q{SELECT pglocks_with_lock(15, 16, 'SELECT $1', ARRAY[true], wait => false)},
	'pglocks_acquire_detached(text,boolean,interval,boolean,boolean)' =>
	  q{CALL pglocks_acquire_detached('sec:d', reentrant => false); SELECT pglocks_release('sec:d')},
	'pglocks_acquire_detached(bigint,boolean,interval,boolean,boolean)' =>
	  q{CALL pglocks_acquire_detached(13::int8, shared => true); SELECT pglocks_release(13::int8, true)},
	'pglocks_acquire_detached(integer,integer,boolean,interval,boolean,boolean)' =>
	  q{CALL pglocks_acquire_detached(13, 14, timeout => '1s'); SELECT pglocks_release(13, 14)},
	'pglocks_stats()' => q{SELECT count(*) >= 0 FROM pglocks_stats()},
	'pglocks_stats_info()' => q{SELECT dealloc >= 0 FROM pglocks_stats_info()},
	# Revoked from PUBLIC, as pg_stat_statements_reset(): granted for this call (below).
	'pglocks_stats_reset()' => q{SELECT pglocks_stats_reset()},
);
my @functions = split /\n/, $su->("SELECT f FROM ($ext_functions) e ORDER BY f::oid", 'sec');
my @missing = grep { !exists $sample{$_} } @functions;
is("@missing", '', 'every function has a plain-role call in this test');
my $calls = '';
for my $f (@functions)
{
	$calls .= "$sample{$f};\n" if exists $sample{$f};
}
$calls .= "SET pglocks.allow_on_standby = on;\n";
$calls .= "SELECT count(*) >= 0 FROM $_;\n" for @views;
$calls .= "SELECT count(*) FROM pglocks_held();\n";
{
	my (undef, undef, $e) = $node->psql('sec', 'SELECT pglocks_stats_reset()',
		extra_params => [ '-U', 'alice', '-v', 'VERBOSITY=verbose' ]);
	is(sqlstate($e), '42501', 'pglocks_stats_reset() needs a grant');
}
$su->('GRANT EXECUTE ON FUNCTION pglocks_stats_reset() TO alice', 'sec');
my ($ret, $out, $err) = $node->psql('sec', $calls,
	extra_params => [ '-U', 'alice', '-v', 'ON_ERROR_STOP=1' ]);
$su->('REVOKE EXECUTE ON FUNCTION pglocks_stats_reset() FROM alice', 'sec');
is($ret, 0, 'a plain role calls every function and reads every view');
is($err, '', 'without any error');
note "views of the extension: @views";
# A session's function statistics reach the shared statistics as it exits.
ok( $node->poll_query_until(
		'sec',
		"SELECT count(*) = 0 FROM ($ext_functions) f "
		  . 'WHERE NOT EXISTS (SELECT 1 FROM pg_stat_user_functions s '
		  . 'WHERE s.funcid = f::oid AND s.calls > 0)'),
	'the calls above covered every function of the extension')
  or diag $su->("SELECT string_agg(f::text, ', ') FROM ($ext_functions) f "
	  . 'WHERE NOT EXISTS (SELECT 1 FROM pg_stat_user_functions s WHERE s.funcid = f::oid)', 'sec');

# Sequences of the extension (fencing tokens) move only through its functions.
for my $seq (split /\n/, $su->("SELECT objid::regclass FROM ($ext_members) m "
		  . "WHERE classid = 'pg_class'::regclass "
		  . "AND (SELECT relkind FROM pg_class WHERE oid = objid) = 'S'", 'sec'))
{
	for my $call ("SELECT setval('$seq', 1)", "SELECT nextval('$seq')")
	{
		my (undef, undef, $e) = $node->psql('sec', $call,
			extra_params => [ '-U', 'alice', '-v', 'VERBOSITY=verbose' ]);
		is(sqlstate($e), '42501', "a plain role cannot $call");
	}
}

###############################################################################
note 'pglocks_with_lock runs its command as the caller';
my ($o, $e);
my $al = session($node, 'sec', user => 'alice');
# A superuser backend for alice to try to terminate.
my $su_session = session($node, 'sec');
for my $case (
	[ 'read a table it may not read', 'SELECT * FROM secret' ],
	[ 'write a table it may not write', 'INSERT INTO secret VALUES (1)' ],
	[ 'switch to a role it is not a member of', 'SET ROLE postgres' ],
	[ 'create a role', 'CREATE ROLE eve SUPERUSER' ],
	[ 'make itself superuser', 'ALTER ROLE alice SUPERUSER' ],
	[ 'become another session user', 'SET SESSION AUTHORIZATION postgres' ],
	[ 'change a superuser-only setting', q{SET log_statement = 'none'} ],
	[ 'read a server file', q{SELECT pg_read_file('postgresql.conf')} ],
	[ 'write a server file', q{COPY (SELECT 1) TO '/tmp/pglocks-security-test'} ],
	[ 'terminate a superuser backend',
		q{SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = 'postgres'} ])
{
	my ($what, $cmd) = @$case;
	(my $q = $cmd) =~ s/'/''/g;
	($o, $e) = run_sql($al, "SELECT pglocks_with_lock('sec:wl', '$q')");
	is(sqlstate($e), '42501', "with_lock cannot $what (42501)");
	is($o, '', "with_lock: $what returned nothing");
}
assert_clean($al, 'alice after the refused commands');
is($su->('SELECT count(*) FROM secret', 'sec'), '1', 'the secret table is unchanged');
is($su->("SELECT count(*) FROM pg_roles WHERE rolname = 'eve'"), '0', 'no role was created');
ok(!-e '/tmp/pglocks-security-test', 'no file was written');

run_sql($al, 'CREATE TABLE alice.seen (cur name, ses name)');
($o, $e) = run_sql($al,
	"SELECT pglocks_with_lock('sec:wl', 'INSERT INTO alice.seen SELECT current_user, session_user')");
is($o, 't', 'with_lock runs a command the caller may run');
is((run_sql($al, 'SELECT cur, ses FROM alice.seen'))[0], 'alice|alice',
	'the command ran as the calling role');

# Inside a SECURITY DEFINER function the caller is the definer, as for any SQL it runs.
$su->(q{
	CREATE FUNCTION count_secret() RETURNS bigint SECURITY DEFINER
	SET search_path = pg_catalog, public LANGUAGE plpgsql AS $$
	BEGIN
		PERFORM public.pglocks_with_lock('sec:def',
			'CREATE TEMP TABLE c AS SELECT count(*) AS n FROM public.secret');
		RETURN (SELECT n FROM c);
	END $$;
	REVOKE ALL ON FUNCTION count_secret() FROM PUBLIC;
	GRANT EXECUTE ON FUNCTION count_secret() TO alice;
}, 'sec');
is((run_sql($al, 'SELECT count_secret()'))[0], '1',
	'in a SECURITY DEFINER function the command runs with the definer\'s rights');

###############################################################################
note 'one role cannot release another role\'s locks';
my $bo = session($node, 'sec', user => 'bob');
run_sql($bo, "SELECT pglocks_acquire('sec:bob'), pglocks_acquire(9::int8), pglocks_acquire(9, 9)");
is( (run_sql($al,
			"SELECT pglocks_release('sec:bob'), pglocks_release(9::int8), pglocks_release(9, 9), "
			  . 'pglocks_release_all()'))[0],
	'f|f|f|0',
	'alice releases none of bob\'s locks');
assert_clean($bo, 'bob after alice tried', 'sec:bob:x:1', '9:x:1', '9,9:x:1');
is((run_sql($al, "SELECT pglocks_acquire('sec:bob', wait => false)"))[0], 'f',
	'bob\'s lock still excludes alice');
run_sql($bo, 'SELECT pglocks_release_all()');
is($node->safe_psql('postgres', "SELECT count(*) FROM pg_stat_activity WHERE pid = $su_session->{pid}"),
	'1', 'the superuser session alice tried to terminate is still there');
quit_session($_) for ($al, $bo, $su_session);

###############################################################################
note 'lock names are private to the holder\'s role, as queries in pg_stat_activity';
# carol may read all statistics; dave is a member of alice. Names are business data: only
# roles with the privileges of the holding session's role, and members of
# pg_read_all_stats, see them; everyone else sees the numeric key, as in pg_locks.
$su->(q{
	CREATE ROLE carol LOGIN;
	GRANT pg_read_all_stats TO carol;
	CREATE ROLE dave LOGIN;
	GRANT alice TO dave;
});
my $owner = session($node, 'sec', user => 'alice');
run_sql($owner, "SELECT pglocks_acquire('customer:acme-renewal')");
my $waiter = session($node, 'sec', user => 'alice');
start_query($waiter, "SELECT pglocks_acquire('customer:acme-renewal', shared => true)");
wait_for_waiter($node, $waiter->{pid}, 'sec');
my $numeric = $su->("SELECT pglocks_key('customer:acme-renewal')", 'sec');
my $seen_by = sub {
	my ($user, $pre) = @_;
	my ($r, $o, $e) = $node->psql('sec',
		($pre // '')
		  . 'SELECT string_agg(key || CASE WHEN granted THEN \'+\' ELSE \'?\' END, \' \' ORDER BY granted) '
		  . "FROM pglocks_locks WHERE pid IN ($owner->{pid}, $waiter->{pid})",
		extra_params => [ '-U', $user ]);
	is($e, '', "$user reads pglocks_locks");
	return $o;
};
my $named = 'customer:acme-renewal? customer:acme-renewal+';
is($seen_by->('bob'), "$numeric? $numeric+", 'another plain role sees the numeric key only');
is( $node->safe_psql('sec',
		"SELECT waiting_since IS NOT NULL FROM pglocks_locks WHERE pid = $waiter->{pid} AND NOT granted",
		extra_params => [ '-U', 'bob' ]),
	't',
	'and when the waiter began to wait (which PostgreSQL 13 records only with the name)');
is($seen_by->('alice'), $named, 'another session of the same role sees the names');
is($seen_by->('dave'), $named, 'a member of the holder\'s role sees the names');
is($seen_by->('carol'), $named, 'a member of pg_read_all_stats sees the names');
is($seen_by->('postgres'), $named, 'a superuser sees the names');
is($seen_by->('postgres', 'SET ROLE bob; '), "$numeric? $numeric+",
	'what counts is the current role, as in pg_stat_activity');
is( (run_sql($owner,
			"SELECT key FROM pglocks_locks WHERE pid = pg_backend_pid()"))[0],
	'customer:acme-renewal', 'the holding session sees its own name');
run_sql($owner, 'SELECT pglocks_release_all()');
is((finish_query($waiter))[0], 't', 'the waiter gets the lock');
# pglocks.share_names = off still keeps a session's names from everyone else.
run_sql($owner, 'SET pglocks.share_names = off');
run_sql($owner, "SELECT pglocks_acquire('customer:acme-renewal', shared => true)");
run_sql($waiter, 'SELECT pglocks_release_all()');
is($seen_by->('carol'), "$numeric+", 'pglocks.share_names = off hides the name even from pg_read_all_stats');
is($seen_by->('alice'), "$numeric+", 'and from the same role');
run_sql($owner, 'SELECT pglocks_release_all()');
# Turned off, it withdraws the names already shown: of a lock held, and of one released
# whose name the session kept for its next acquire, here taken again with the core function.
run_sql($owner, 'RESET pglocks.share_names');
run_sql($owner, "SELECT pglocks_acquire('customer:held'), pglocks_acquire('customer:kept'), "
	  . "pglocks_release('customer:kept'), pg_advisory_lock(pglocks_key('customer:kept'))");
my $shown = sub {
	return $node->safe_psql('sec',
		'SELECT string_agg(key, \' \' ORDER BY key COLLATE "C") FROM pglocks_locks '
		  . "WHERE pid = $owner->{pid}");
};
is($shown->(), 'customer:held customer:kept', 'both names shown while pglocks.share_names is on');
run_sql($owner, 'SET pglocks.share_names = off');
my $held_num = $su->("SELECT pglocks_key('customer:held')", 'sec');
my $kept_num = $su->("SELECT pglocks_key('customer:kept')", 'sec');
is($shown->(), join(' ', sort ($held_num, $kept_num)),
	'pglocks.share_names = off withdraws the name of a held lock and a kept one');
run_sql($owner, "SELECT pg_advisory_unlock_all(), pglocks_acquire('customer:kept'), "
	  . "pglocks_release('customer:kept'), pg_advisory_lock(pglocks_key('customer:kept'))");
is($shown->(), $kept_num, 'a lock taken and released while it is off leaves no name behind');
run_sql($owner, 'SET pglocks.share_names = on');
run_sql($owner, "SELECT pg_advisory_unlock_all(), pglocks_acquire('customer:held')");
is($shown->(), 'customer:held', 'turned on again, the next acquire shows its name');
run_sql($owner, 'SELECT pglocks_release_all()');
quit_session($_) for ($owner, $waiter);

# Who may read a name is decided by the role that published it, not by the backend-status
# snapshot, which stays as it was until the reader's transaction ends: a session started
# after the snapshot is not in it.
my $viewer = session($node, 'sec', user => 'alice');
run_sql($viewer, 'BEGIN');
run_sql($viewer, 'SELECT count(*) FROM pglocks_locks');
my $late = session($node, 'sec', user => 'alice');
run_sql($late, "SELECT pglocks_acquire('customer:late')");
is( (run_sql($viewer, "SELECT key FROM pglocks_locks WHERE pid = $late->{pid}"))[0],
	'customer:late',
	'a plain role sees the name of its own session started after its transaction\'s snapshot');
my $other = session($node, 'sec', user => 'bob');
run_sql($other, "SELECT pglocks_acquire('customer:late-bob')");
is( (run_sql($viewer, "SELECT key FROM pglocks_locks WHERE pid = $other->{pid}"))[0],
	$su->("SELECT pglocks_key('customer:late-bob')", 'sec'),
	'and not the name of another role\'s session started after it');
run_sql($viewer, 'COMMIT');
# The role a session logged in as, as pg_stat_activity's usename: a superuser session that
# became alice with SET SESSION AUTHORIZATION keeps its names from alice's sessions, also
# a name it kept from before and takes again.
my $became = session($node, 'sec');
run_sql($became, "SELECT pglocks_acquire('customer:su'), pglocks_release('customer:su')");
run_sql($became, 'SET SESSION AUTHORIZATION alice');
run_sql($became, "SELECT pglocks_acquire('customer:su'), pglocks_acquire('customer:su2')");
is( (run_sql($late,
			"SELECT string_agg(key, ' ' ORDER BY key COLLATE \"C\") FROM pglocks_locks WHERE pid = $became->{pid}"))[0],
	join(' ', sort map { $su->("SELECT pglocks_key('$_')", 'sec') } qw(customer:su customer:su2)),
	'a superuser session after SET SESSION AUTHORIZATION alice: alice sees its locks by number');
is( $node->safe_psql('sec',
		"SELECT string_agg(key, ' ' ORDER BY key COLLATE \"C\") FROM pglocks_locks WHERE pid = $became->{pid}"),
	'customer:su customer:su2', 'a superuser sees them by name');
quit_session($_) for ($viewer, $late, $other, $became);

###############################################################################
note 'trusted: a database owner installs it without being superuser';
($ret, $out, $err) = $node->psql('owned', 'CREATE EXTENSION pglocks',
	extra_params => [ '-U', 'alice', '-v', 'VERBOSITY=verbose' ]);
like($err, qr/42501/, 'a role without CREATE on the database cannot install it');
($ret, $out, $err) = $node->psql('owned',
	"CREATE EXTENSION pglocks; SELECT pglocks_acquire('owned') AND pglocks_release('owned');",
	extra_params => [ '-U', 'dbowner' ]);
is($ret, 0, 'the database owner installs it');
is($out, 't', 'and uses it');
is($su->("SELECT extowner::regrole FROM pg_extension WHERE extname = 'pglocks'", 'owned'),
	'dbowner', 'the extension belongs to the database owner');
is( $su->(
		"SELECT DISTINCT p.proowner::regrole FROM ($ext_functions) f JOIN pg_proc p ON p.oid = f::oid",
		'owned'),
	'postgres',
	'its functions belong to the bootstrap superuser, so the owner cannot redefine them');
for my $seq (split /\n/, $su->("SELECT objid::regclass FROM ($ext_members) m "
		  . "WHERE classid = 'pg_class'::regclass "
		  . "AND (SELECT relkind FROM pg_class WHERE oid = objid) = 'S'", 'owned'))
{
	(undef, undef, $err) = $node->psql('owned', "SELECT setval('$seq', 1)",
		extra_params => [ '-U', 'dbowner', '-v', 'VERBOSITY=verbose' ]);
	is(sqlstate($err), '42501', "the installing owner cannot move $seq back");
}
($ret, $out, $err) = $node->psql('owned', 'DROP EXTENSION pglocks', extra_params => [ '-U', 'dbowner' ]);
is($ret, 0, 'the database owner can drop it again');

###############################################################################
note 'the install script resolves nothing through search_path';
# mallory owns a schema and fills it with look-alikes of what an install script might
# name without a schema: types, functions and operators that pg_catalog has only through
# an implicit cast. Each trap, if ever run, bumps a sequence.
$su->(q{
	CREATE DATABASE trap;
}, 'postgres');
$su->(q{
	CREATE SCHEMA evil AUTHORIZATION mallory;
	GRANT USAGE ON SCHEMA evil TO PUBLIC;
}, 'trap');
($ret, $out, $err) = $node->psql('trap', q{
	SET search_path = evil;
	CREATE SEQUENCE evil.sprung;
	GRANT USAGE, SELECT, UPDATE ON SEQUENCE evil.sprung TO PUBLIC;
	CREATE DOMAIN evil.text AS pg_catalog.varchar;
	CREATE DOMAIN evil.bool AS pg_catalog.int4;
	CREATE DOMAIN evil.int8 AS pg_catalog.numeric;
	CREATE DOMAIN evil.int4 AS pg_catalog.numeric;
	CREATE DOMAIN evil.interval AS pg_catalog.text;
	CREATE DOMAIN evil.timestamptz AS pg_catalog.text;
	DO $do$
	DECLARE
		t1 text; t2 text; op text; fn text; n int := 0;
		types text[] := ARRAY['int2','int4','int8','oid','text','varchar','name','bool',
		                      'char','bpchar','regclass','regnamespace','regproc','xid',
		                      'timestamptz','interval','numeric','float8'];
	BEGIN
		FOREACH t1 IN ARRAY types LOOP
			FOREACH t2 IN ARRAY types LOOP
				n := n + 1;
				fn := 'trap_' || n;
				EXECUTE format($f$CREATE FUNCTION evil.%I(pg_catalog.%I, pg_catalog.%I)
					RETURNS pg_catalog.bool LANGUAGE plpgsql AS
					$b$BEGIN PERFORM pg_catalog.nextval('evil.sprung'); RETURN true; END$b$$f$,
					fn, t1, t2);
				FOREACH op IN ARRAY ARRAY['=','<>','<','>','<=','>=','~~','@>','&&'] LOOP
					EXECUTE format('CREATE OPERATOR evil.%s (LEFTARG = pg_catalog.%I, '
						'RIGHTARG = pg_catalog.%I, FUNCTION = evil.%I)', op, t1, t2, fn);
				END LOOP;
			END LOOP;
			EXECUTE format($f$CREATE FUNCTION evil.%I(pg_catalog.%I)
				RETURNS pg_catalog.text LANGUAGE plpgsql AS
				$b$BEGIN PERFORM pg_catalog.nextval('evil.sprung'); RETURN ''; END$b$$f$,
				'trap_' || t1, t1);
			FOREACH fn IN ARRAY ARRAY['lower','upper','concat','format','to_char','length','md5','abs',
			                          'hashtext','hashtextextended','pg_backend_pid'] LOOP
				EXECUTE format($f$CREATE FUNCTION evil.%I(pg_catalog.%I)
					RETURNS pg_catalog.text LANGUAGE plpgsql AS
					$b$BEGIN PERFORM pg_catalog.nextval('evil.sprung'); RETURN ''; END$b$$f$,
					fn, t1);
			END LOOP;
		END LOOP;
	END $do$;
}, extra_params => [ '-U', 'mallory', '-v', 'ON_ERROR_STOP=1' ]);
is($ret, 0, 'the look-alikes are in place') or diag $err;

# Installed into mallory's schema itself (what the docs warn against), with her schema first
# in the superuser's search_path: the worst case for an unqualified name.
($ret, $out, $err) = $node->psql('trap',
	'SET search_path = evil, public; CREATE EXTENSION pglocks SCHEMA evil; '
	  . "SELECT evil.pglocks_acquire('t') AND evil.pglocks_release('t'); "
	  . 'SELECT count(*) FROM evil.pglocks_held();');
is($ret, 0, 'installs into a schema full of look-alikes');
is($err, '', 'without errors');
is( $su->(
		"SELECT count(*) FROM ($ext_members) m JOIN pg_depend d "
		  . 'ON d.classid = m.classid AND d.objid = m.objid '
		  . "WHERE d.refobjid IN (SELECT oid FROM pg_proc WHERE proowner = 'mallory'::regrole "
		  . "UNION ALL SELECT oid FROM pg_operator WHERE oprowner = 'mallory'::regrole "
		  . "UNION ALL SELECT oid FROM pg_type WHERE typowner = 'mallory'::regrole)",
		'trap'),
	'0',
	'no object of the extension depends on a look-alike');
is( $su->(
		"SELECT count(*) FROM ($ext_members) m JOIN pg_rewrite r ON r.ev_class = m.objid "
		  . "AND m.classid = 'pg_class'::regclass JOIN pg_depend d "
		  . "ON d.classid = 'pg_rewrite'::regclass AND d.objid = r.oid "
		  . "WHERE d.refobjid IN (SELECT oid FROM pg_proc WHERE proowner = 'mallory'::regrole "
		  . "UNION ALL SELECT oid FROM pg_operator WHERE oprowner = 'mallory'::regrole "
		  . "UNION ALL SELECT oid FROM pg_type WHERE typowner = 'mallory'::regrole)",
		'trap'),
	'0',
	'no view of the extension uses a look-alike');
is( $su->(
		"SELECT count(*) FROM ($ext_functions) f JOIN pg_proc p ON p.oid = f::oid, "
		  . 'unnest(coalesce(p.proallargtypes, p.proargtypes::oid[]) || p.prorettype) t '
		  . "WHERE (SELECT typnamespace FROM pg_type WHERE oid = t) <> 'pg_catalog'::regnamespace",
		'trap'),
	'0',
	'every type of every function is still the pg_catalog one');
($ret, $out, $err) = $node->psql('trap',
	join('', 'SELECT 1;', map { "SELECT count(*) >= 0 FROM evil.$_;\n" } @views));
is($ret, 0, 'the views of the extension work there');
is($su->('SELECT is_called FROM evil.sprung', 'trap'), 'f', 'no look-alike ever ran');

$node->stop;
done_testing();
