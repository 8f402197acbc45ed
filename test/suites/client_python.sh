#!/usr/bin/env bash
# Python client suite: the package in clients/python (importable as pglocks) against the
# test server, with Debian's interpreter and drivers.
#   - pytest over clients/python/tests: psycopg (3, sync and asyncio) and psycopg2, a Django
#     project with two databases (pglocks.django), SQLAlchemy Connections and Sessions, and
#     locks shared with django-pglocks 2.x's keys
#   - mypy --strict over the package and a typed example of its use (py.typed)
#   - installation as a user would do it without PyPI: a venv on Debian's python3,
#     pip install --no-build-isolation --no-index, then the same tests on the installed copy
#   - clients/python/LICENSE a copy of the repository's LICENSE, byte for byte, and it in the
#     installed distribution, the sdist and the wheel
# Installs what is missing from Debian's packages. Uses the server scripts/test.sh started
# (PGHOST, ...), or starts its own when run alone.
set -euo pipefail
source "$(dirname "$0")/../../scripts/lib.sh"

# Debian's interpreter: the drivers, Django and SQLAlchemy are Debian's packages, not
# whatever a python3 first on PATH (pyenv, say) would find.
PYTHON=/usr/bin/python3
ensure_packages python3 python3-psycopg python3-psycopg2 python3-django python3-sqlalchemy \
    python3-pytest python3-venv python3-pip python3-setuptools python3-wheel python3-mypy

pglocks_suite_database pglocks_client_python
export PGDATABASE=$PGLOCKS_SUITE_DB LC_ALL=C.UTF-8 PYTHONDONTWRITEBYTECODE=1
SRC=$PGLOCKS_ROOT/clients/python
WORK=$(mktemp -d /tmp/pglocks-client-python.XXXXXX)
# pglocks_suite_database's exit trap drops the database (and exits with the suite's status,
# so it must see that status in $?); remove the work directory too.
trap 'rc=$?; rm -rf "$WORK"; (exit $rc); _pglocks_suite_cleanup' EXIT

passed=0
failed=0
failed_steps=()

# A guard against hangs only: the tests take well under a minute.
pytest_checkout() {
    (cd "$SRC" && timeout 600 "$PYTHON" -m pytest -q -p no:cacheprovider tests)
}

typecheck() {
    (cd "$SRC" && "$PYTHON" -m mypy --no-incremental --cache-dir=/dev/null pglocks tests/typing_usage.py)
}

install_in_venv() {
    # A copy of the source: pip builds in the tree it is given, and the checkout stays clean.
    mkdir -p "$WORK/src" &&
        cp -r "$SRC/pyproject.toml" "$SRC/README.md" "$SRC/LICENSE" "$SRC/pglocks" "$WORK/src/" &&
        "$PYTHON" -m venv --system-site-packages "$WORK/venv" &&
        "$WORK/venv/bin/pip" install --quiet --no-build-isolation --no-index "$WORK/src" &&
        rm -rf "$WORK/src"
}

# A real file, not a link (an archive of clients/python alone, or a checkout without
# symlinks, must still carry the licence), and the same bytes as the repository's.
license_is_the_repositorys() {
    [ -f "$SRC/LICENSE" ] && [ ! -L "$SRC/LICENSE" ] ||
        { echo "clients/python/LICENSE is not a regular file" >&2; return 1; }
    cmp "$SRC/LICENSE" "$PGLOCKS_ROOT/LICENSE" ||
        { echo "clients/python/LICENSE differs from the repository's LICENSE" >&2; return 1; }
}

installed_package_is_used() {
    (cd "$WORK" && "$WORK/venv/bin/python" - "$WORK/venv" <<'PY'
import os, sys
import pglocks, pglocks.django
venv = os.path.realpath(sys.argv[1])
where = os.path.realpath(pglocks.__file__)
assert where.startswith(venv + os.sep), where
assert os.path.exists(os.path.join(os.path.dirname(where), "py.typed")), "py.typed is missing"
print("pglocks", pglocks.__version__, "from", os.path.dirname(where))
PY
    )
}

installed_dist_has_the_license() {
    (cd "$WORK" && "$WORK/venv/bin/python" - "$PGLOCKS_ROOT/LICENSE" <<'PY'
import sys
from importlib.metadata import distribution
dist = distribution("pglocks")
files = [f for f in dist.files or [] if f.name == "LICENSE" and ".dist-info" in str(f)]
assert files, "no LICENSE in the installed distribution's files: %r" % (dist.files,)
with open(sys.argv[1], encoding="utf-8") as f:
    assert files[0].read_text(encoding="utf-8") == f.read(), "the installed LICENSE is not the repository's"
print("installed:", files[0])
PY
    )
}

# The sdist and the wheel, built as pip builds them (setuptools' PEP 517 backend, offline).
dists_have_the_license() {
    mkdir -p "$WORK/build-src" "$WORK/dist" &&
        cp -r "$SRC/pyproject.toml" "$SRC/README.md" "$SRC/LICENSE" "$SRC/pglocks" "$WORK/build-src/" &&
        (cd "$WORK/build-src" && OUT="$WORK/dist" "$PYTHON" - "$PGLOCKS_ROOT/LICENSE" <<'PY'
import os, sys, tarfile, zipfile
from setuptools import build_meta
out = os.environ["OUT"]
with open(sys.argv[1], "rb") as f:
    license_text = f.read()
sdist = os.path.join(out, build_meta.build_sdist(out))
wheel = os.path.join(out, build_meta.build_wheel(out))
with tarfile.open(sdist) as t:
    names = [n for n in t.getnames() if n.endswith("/LICENSE")]
    assert names, "no LICENSE in the sdist"
    assert t.extractfile(names[0]).read() == license_text, "the sdist's LICENSE is not the repository's"
with zipfile.ZipFile(wheel) as z:
    names = [n for n in z.namelist() if n.endswith(".dist-info/LICENSE")]
    assert names, "no LICENSE in the wheel"
    assert z.read(names[0]) == license_text, "the wheel's LICENSE is not the repository's"
print("sdist:", os.path.basename(sdist), "wheel:", os.path.basename(wheel), "both with LICENSE")
PY
        ) >"$WORK/build.log" 2>&1 || { cat "$WORK/build.log" >&2; return 1; }
    tail -1 "$WORK/build.log"
}

pytest_installed() {
    cp -r "$SRC/tests" "$WORK/tests" &&
        (cd "$WORK" && PGLOCKS_TEST_INSTALLED=1 timeout 600 "$WORK/venv/bin/python" -m pytest -q \
            -p no:cacheprovider tests)
}

step "clients/python/LICENSE is the repository's" license_is_the_repositorys
step "pytest on the checkout" pytest_checkout
step "mypy --strict" typecheck
step "pip install into a venv, offline" install_in_venv
step "the installed package is imported" installed_package_is_used
step "the installed distribution carries LICENSE" installed_dist_has_the_license
step "the sdist and the wheel carry LICENSE" dists_have_the_license
step "pytest on the installed package" pytest_installed

echo
[ $failed -gt 0 ] && echo "client_python steps that failed: ${failed_steps[*]}"
echo "client_python: $passed of $((passed + failed)) steps ok"
[ $failed -eq 0 ]
