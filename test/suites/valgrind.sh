#!/usr/bin/env bash
# The regression and isolation suites against a server under valgrind's memcheck; fails on
# any memcheck error in pglocks' frames (see scripts/valgrind.sh). About three minutes on
# two cores, with its own server.
set -euo pipefail
exec bash "$(dirname "$0")/../../scripts/valgrind.sh"
