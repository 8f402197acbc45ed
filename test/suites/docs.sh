#!/usr/bin/env bash
# Docs suite: every ```sql example of README.md and docs/*.md runs as written, each in a
# fresh database with CREATE EXTENSION pglocks, through psql with ON_ERROR_STOP; a second
# session where the example says so (an HTML comment before the block, see
# docs_check.py and the README's Contributing section); an error only where the example
# announces it, and then that error must happen; a one-line SELECT commented with its
# result (true, false, NULL or a number) must return it. The pglocks_key snippets of
# docs/clients.md run in each language that has a toolchain here, against the test
# vectors. Prints file:line for every block and exits non-zero on any failure.
#
# Run by scripts/test.sh against its server (PG* exported); run alone, it starts its own.
# Arguments, if any, are the Markdown files to check (default: README.md docs/*.md).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
source "$here/../../scripts/lib.sh"

if [ -z "${PGHOST:-}" ]; then
    pglocks_setup
    pglocks_start_server
else
    pglocks_install_packages
fi

# The examples and snippets hold non-ASCII keys.
export LC_ALL=C.UTF-8 PYTHONIOENCODING=utf-8
# Debian's interpreter, as the other suites use.
/usr/bin/python3 "$here/docs_check.py" "$@"
