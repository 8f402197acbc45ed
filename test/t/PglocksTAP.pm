# Helpers shared by the TAP tests in test/t: clusters with pglocks loaded, background
# sessions that can be left waiting, and the check that pglocks' bookkeeping agrees with
# the server's lock table.
package PglocksTAP;

use strict;
use warnings;

use Exporter 'import';
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(time usleep);

our @EXPORT = qw(pglocks_node session start_query query_done finish_query sqlstate
  run_sql wait_for_waiter wait_until assert_clean held_vs_locks quit_session);

# A cluster with pglocks in shared_preload_libraries and the extension created in postgres.
# %opt: init => {...} (passed to init), conf => "extra postgresql.conf lines".
sub pglocks_node
{
	my ($name, %opt) = @_;
	my $node = PostgreSQL::Test::Cluster->new($name);
	$node->init(%{ $opt{init} // {} });
	$node->append_conf('postgresql.conf',
		"shared_preload_libraries = 'pglocks'\njit = off\n" . ($opt{conf} // ''));
	$node->start;
	$node->safe_psql('postgres', 'CREATE EXTENSION pglocks');
	return $node;
}

# A long-lived psql session that keeps going after errors and prints SQLSTATEs, so a test
# can tell a cancellation (57014) from any other error. $s->{pid} is its backend.
# %opt: user => role to log in as.
sub session
{
	my ($node, $db, %opt) = @_;
	my $s = $node->background_psql(
		$db // 'postgres',
		on_error_stop => 0,
		extra_params => [ defined $opt{user} ? ('-U', $opt{user}) : () ]);
	$s->set_query_timer_restart;
	$s->query_safe('\set VERBOSITY verbose');
	$s->{pid} = $s->query_safe('SELECT pg_backend_pid()');
	$s->{node} = $node;
	$s->{pending} = undef;
	return $s;
}

# Sends a query without waiting for it; finish_query() collects its result. The banner
# is printed by psql only after the query returns, which is how completion is detected.
my $banner_seq = 0;

sub start_query
{
	my ($s, $sql) = @_;
	die "a query is already pending" if defined $s->{pending};
	$banner_seq++;
	my $banner = "pglocks_tap_done_$banner_seq";
	$s->{pending} = $banner;
	$s->{stdout} = '';
	$s->{stderr} = '';
	$s->{stdin} .= "$sql\n;\n\\echo '$banner'\n\\warn '$banner'\n";
	$s->{run}->pump_nb;
	return;
}

sub _banner_seen
{
	my ($s) = @_;
	my $b = $s->{pending};
	return $s->{stdout} =~ /\Q$b\E\r?\n/ && $s->{stderr} =~ /\Q$b\E\r?\n/;
}

sub query_done
{
	my ($s) = @_;
	eval { $s->{run}->pump_nb; };
	return _banner_seen($s);
}

# Waits at most $timeout seconds for the pending query; returns (stdout, stderr, seconds
# waited). Dies when the query does not finish: a hang is a failure, not a slow pass.
sub finish_query
{
	my ($s, $timeout) = @_;
	$timeout //= 60;
	die "no query pending" unless defined $s->{pending};
	my $start = time;
	until (_banner_seen($s))
	{
		die "query still running after ${timeout}s: $s->{stderr}"
		  if time - $start > $timeout;
		# psql exits when its connection is gone; what it printed is the answer.
		last unless $s->{run}->pumpable;
		eval { $s->{run}->pump_nb; };
		usleep(5_000) unless _banner_seen($s);
	}
	my $b = $s->{pending};
	my ($out, $err) = ($s->{stdout}, $s->{stderr});
	$out =~ s/\r?\n?\Q$b\E\r?\n//;
	$err =~ s/\r?\n?\Q$b\E\r?\n//;
	chomp $out;
	$s->{stdout} = '';
	$s->{stderr} = '';
	$s->{pending} = undef;
	return ($out, $err, time - $start);
}

# Runs $sql in the session and returns (stdout, stderr).
sub run_sql
{
	my ($s, $sql, $timeout) = @_;
	start_query($s, $sql);
	my ($out, $err) = finish_query($s, $timeout);
	return ($out, $err);
}

# The SQLSTATE of the first error in psql's verbose output, or '' when there is none.
sub sqlstate
{
	my ($err) = @_;
	return $err =~ /ERROR:\s+([0-9A-Z]{5}):/ ? $1 : '';
}

sub wait_until
{
	my ($node, $query, $what) = @_;
	ok($node->poll_query_until('postgres', $query), $what)
	  or BAIL_OUT("gave up waiting: $what");
	return;
}

# Waits until backend $pid waits in the lock queue for an advisory lock.
sub wait_for_waiter
{
	my ($node, $pid, $db) = @_;
	ok( $node->poll_query_until(
			$db // 'postgres',
			"SELECT count(*) > 0 FROM pg_catalog.pg_locks "
			  . "WHERE pid = $pid AND locktype = 'advisory' AND NOT granted"),
		"backend $pid waits for an advisory lock")
	  or BAIL_OUT("backend $pid never waited");
	return;
}

# One query, run by the session itself, that returns "ok" when the locks and modes that
# pglocks_held() lists are exactly the advisory locks pg_locks shows for this backend
# (held and awaited), and otherwise the two lists.
sub held_vs_locks
{
	return q{
WITH held AS (
    SELECT DISTINCT coalesce(lock_key::text, key) || CASE WHEN shared THEN ':s' ELSE ':x' END AS k
    FROM pglocks_held()),
server AS (
    SELECT CASE objsubid
             WHEN 1 THEN ((classid::int8 << 32) | objid::int8)::text
             ELSE (CASE WHEN classid::int8 >= 2147483648 THEN classid::int8 - 4294967296
                        ELSE classid::int8 END)::text || ',' ||
                  (CASE WHEN objid::int8 >= 2147483648 THEN objid::int8 - 4294967296
                        ELSE objid::int8 END)::text
           END || CASE WHEN mode = 'ShareLock' THEN ':s' ELSE ':x' END
           || CASE WHEN granted THEN '' ELSE ':waiting' END AS k
    FROM pg_catalog.pg_locks
    WHERE locktype = 'advisory' AND pid = pg_catalog.pg_backend_pid())
SELECT CASE WHEN (SELECT array_agg(k ORDER BY k) FROM held)
                 IS NOT DISTINCT FROM (SELECT array_agg(k ORDER BY k) FROM server)
            THEN 'ok'
            ELSE 'held=' || coalesce((SELECT string_agg(k, ' ' ORDER BY k) FROM held), '')
                 || ' server=' || coalesce((SELECT string_agg(k, ' ' ORDER BY k) FROM server), '')
       END};
}

# After an error or a cancellation in session $s: its bookkeeping agrees with the server,
# it holds exactly @expected (text keys as pglocks_held() shows them, e.g. "keep:x:1"
# for key, mode and holds), nothing of it is queued, and the error left the session usable.
sub assert_clean
{
	my ($s, $what, @expected) = @_;
	my ($agree, $err) = run_sql($s, held_vs_locks());
	is($agree, 'ok', "$what: pglocks_held() and pg_locks agree");
	is($err, '', "$what: the session is usable");
	my ($held) = run_sql($s,
		    "SELECT coalesce(string_agg(key || CASE WHEN shared THEN ':s' ELSE ':x' END "
		  . "|| ':' || holds, ' '), '') FROM pglocks_held()");
	is(join(' ', sort split / /, $held), join(' ', sort @expected),
		"$what: holds left are exactly the expected ones");
	my $queued = $s->{node}->safe_psql('postgres',
		"SELECT count(*) FROM pg_locks WHERE pid = $s->{pid} AND NOT granted");
	is($queued, '0', "$what: nothing queued");
	return;
}

sub quit_session
{
	my ($s) = @_;
	eval { $s->{run}->pumpable ? $s->quit : $s->{run}->finish; };
	return;
}

1;
