# The shared statistics table behind pglocks_stats: filled to pglocks.max_stats and beyond by
# several sessions at once, it evicts instead of growing, takes no spare shared memory, and
# keeps at most pglocks.max_stats rows.
use strict;
use warnings;

use FindBin;
use lib $FindBin::RealBin;

use PglocksTAP;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

my $node = pglocks_node('stats', conf => "pglocks.max_stats = 100\n");
my $free_sql = 'SELECT size FROM pg_shmem_allocations WHERE name IS NULL';
my $anon_sql = q{SELECT size FROM pg_shmem_allocations WHERE name = '<anonymous>'};
my ($free0, $anon0) = ($node->safe_psql('postgres', $free_sql), $node->safe_psql('postgres', $anon_sql));

my $one = session($node);
run_sql($one, q{SELECT count(pglocks_acquire('fill:' || g) AND pglocks_release('fill:' || g))
	FROM generate_series(1, 100) g});
is($node->safe_psql('postgres', 'SELECT count(*) || \'/\' || (SELECT dealloc FROM pglocks_stats_info) FROM pglocks_stats'),
	'100/0', 'a full table: 100 rows, no eviction yet');
is($node->safe_psql('postgres', $free_sql), $free0, 'free shared memory unchanged with the table full');

my @sessions = map { session($node) } 1 .. 4;
for my $i (0 .. 3)
{
	start_query($sessions[$i],
		"SELECT count(pglocks_acquire('more:$i:' || g) AND pglocks_release('more:$i:' || g)) "
		  . 'FROM generate_series(1, 500) g');
}
for my $i (0 .. 3)
{
	finish_query($sessions[$i]);
}
my ($rows, $dealloc) = split /\|/,
  $node->safe_psql('postgres', 'SELECT count(*), (SELECT dealloc FROM pglocks_stats_info) FROM pglocks_stats');
ok($rows <= 100, "at most pglocks.max_stats rows after 2,000 new keys from four sessions ($rows)");
ok($dealloc >= 100, "evictions counted ($dealloc batches)");
is($node->safe_psql('postgres', $free_sql), $free0, 'free shared memory unchanged after evictions');
is($node->safe_psql('postgres', $anon_sql), $anon0, 'no anonymous allocation either');
is($node->safe_psql('postgres',
		q{SELECT count(*) FROM pglocks_stats WHERE acquisitions <> 1 OR key !~ '^(fill|more):'}),
	'0', 'every row is whole: one acquisition of a key of this test');

quit_session($_) for ($one, @sessions);
$node->stop;
done_testing();
