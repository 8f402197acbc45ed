# CALL pglocks_acquire_detached inside a pipeline (extended-protocol statements sent without
# a Sync between them, which share one implicit transaction) is refused with 25001, as a
# transaction block is: its commit would commit the statements sent before it, which the
# client expects to succeed or fail together. Driven by pgbench's \startpipeline (the
# system's pgbench when the server's installation has none: pipelining is the client's).
use strict;
use warnings;

use FindBin;
use lib $FindBin::RealBin;

use File::Spec;
use IPC::Run;
use PglocksTAP;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

my $node = pglocks_node('pipeline');
$node->safe_psql('postgres', 'CREATE TABLE pipelined (step text)');

my ($pgbench) = grep { -x $_ } (
	(map { File::Spec->catfile($_, 'pgbench') } split(/:/, $ENV{PATH})),
	'/usr/lib/postgresql/15/bin/pgbench');
plan skip_all => 'no pgbench' unless defined $pgbench;

# Runs one pgbench transaction of the script; returns (wait status, stderr).
sub run_script
{
	my ($name, $script) = @_;
	my $file = "$PostgreSQL::Test::Utils::tmp_check/$name.sql";
	open(my $fh, '>', $file) or die "cannot write $file: $!";
	print $fh $script;
	close $fh;
	my ($out, $err) = ('', '');
	IPC::Run::run(
		[
			$pgbench, '-n', '-M', 'extended', '-t', '1', '-f', $file,
			'-h', $node->host, '-p', $node->port, 'postgres'
		],
		'>', \$out, '2>', \$err);
	return ($?, $err);
}

sub rows { return $node->safe_psql('postgres', 'SELECT count(*) FROM pipelined'); }

sub advisory_locks
{
	return $node->safe_psql('postgres',
		"SELECT count(*) FROM pg_locks WHERE locktype = 'advisory'");
}

# The harness itself: the same statements, each with its Sync, run and commit.
my ($status, $err) = run_script('synced', <<'EOS');
INSERT INTO pipelined VALUES ('synced');
CALL pglocks_acquire_detached('pipelined');
SELECT pglocks_release('pipelined');
EOS
is($status, 0, 'without a pipeline, the INSERT and the CALL run') or diag $err;
is(rows(), 1, 'without a pipeline, the INSERT is committed');

# In a pipeline, after another statement: refused, and the INSERT rolls back with it.
($status, $err) = run_script('pipelined', <<'EOS');
\startpipeline
INSERT INTO pipelined VALUES ('pipelined');
CALL pglocks_acquire_detached('pipelined');
\endpipeline
EOS
isnt($status, 0, 'in a pipeline, the CALL fails');
like(
	$err,
	qr/pglocks_acquire_detached cannot be executed within a pipeline/,
	'with its own message (also from PostgreSQL 18 on, where the CALL is atomic there too)')
  or diag $err;
is(rows(), 1, 'the INSERT sent before it in the pipeline is not committed');
is(advisory_locks(), 0, 'no lock is left held or queued');

# The CALL first in a pipeline: nothing before it to commit; it runs, and so do the
# statements after it (in the transaction it starts).
($status, $err) = run_script('first', <<'EOS');
\startpipeline
CALL pglocks_acquire_detached('pipelined');
INSERT INTO pipelined VALUES ('after');
\endpipeline
EOS
is($status, 0, 'first in a pipeline, the CALL runs') or diag $err;
is(rows(), 2, 'and the statement after it commits');

$node->stop;

done_testing();
