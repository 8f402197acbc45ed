#!/usr/bin/env bash
# Fault, lock-table, standby and security tests: the TAP tests in test/t/*.pl, run with
# prove and PostgreSQL's own Perl test framework (Debian ships it with the server's
# development package). Each test starts the clusters it needs, so this suite does not
# use the server of scripts/test.sh.
#
# Usage: test/suites/faults.sh [test/t/NNN_name.pl ...]     (default: all of test/t)
set -euo pipefail
source "$(dirname "$0")/../../scripts/lib.sh"

PGLOCKS_PACKAGES+=(libipc-run-perl)
pglocks_install_packages

pgxs_dir=$(cd "$(dirname "$("$PG_CONFIG" --pgxs)")/../.." && pwd)
perl_lib=$pgxs_dir/src/test/perl
if [ ! -f "$perl_lib/PostgreSQL/Test/Cluster.pm" ]; then
    echo "PostgreSQL's TAP framework is missing from $perl_lib" >&2
    exit 1
fi

tests=("$@")
[ ${#tests[@]} -gt 0 ] || tests=("$PGLOCKS_ROOT"/test/t/*.pl)

# The clusters refuse to run as root: the tests run as the server's owner in a directory
# of their own, from a copy of test/t that owner can read.
work=$(mktemp -d /tmp/pglocks-tap.XXXXXX)
cleanup() { rm -rf "$work"; }
trap cleanup EXIT
cp -r "$PGLOCKS_ROOT/test/t" "$work/t"
copies=()
for t in "${tests[@]}"; do copies+=("t/$(basename "$t")"); done
[ "$(id -u)" = 0 ] && chown -R postgres: "$work"

status=0
(
    cd "$work"
    as_server_owner env -i PATH="$PATH" HOME="$work" LANG=C.UTF-8 \
        PG_REGRESS="$pgxs_dir/src/test/regress/pg_regress" TESTDIR="$work" \
        PG_TEST_TIMEOUT_DEFAULT="${PG_TEST_TIMEOUT_DEFAULT:-120}" \
        prove -v --timer -I "$perl_lib" -I "$work/t" "${copies[@]}"
) || status=$?

if [ $status -ne 0 ]; then
    # The server logs say why a cluster misbehaved; show their ends.
    for f in "$work"/tmp_check/log/*.log; do
        [ -e "$f" ] || continue
        echo "--- tail of $(basename "$f")"
        tail -n 40 "$f"
    done
fi
exit $status
