#!/usr/bin/env bash
# Packaging suite: the release paper trail and both packages, as a user gets them.
#
#   versions    META.json is valid PGXN metadata (meta-spec 1.0.0) whose versions are
#               pglocks.control's default_version as a semantic version (1.2 is 1.2.0), and
#               whose provides.pglocks.file is what provides that version (the control file);
#               CHANGELOG.md, debian/changelog and the install scripts agree with it; the
#               scripts of released versions (1.0, 1.0 to 1.1) are as released;
#               debian/control is what pg_buildext generates from debian/control.in
#   make dist   the PGXN archive holds exactly what git holds, in pglocks-VERSION/, with
#               the control file, META.json and the install scripts, and no build or test
#               output; PGXN's client (pgxn install) builds and installs it; the Debian
#               upstream tarball (pglocks_UPSTREAM.orig.tar.gz) holds what git holds but
#               debian/
#   Debian      the source package and postgresql-MAJOR-pglocks built with dpkg-buildpackage
#               (source and binary) from the unpacked archive and the upstream tarball (never
#               inside the working tree), for the system's PostgreSQL (PGLOCKS_PGVER, 15),
#               with the build-time tests (pg_buildext installcheck against the built tree);
#               the source package unpacks (dpkg-source -x) into the tree it was built from;
#               the binary package's contents are the library, its LLVM bitcode when the
#               server has JIT, the control file, the install scripts and documentation,
#               nothing else, it depends on the packages of the libraries it links, and
#               lintian finds nothing to report in either package; installed with dpkg -i
#               into /usr/lib/postgresql/MAJOR, the regression and isolation suites run
#               against it by autopkgtest (debian/tests: pg_buildext installcheck on a
#               throwaway cluster); then purged
#
# pgxn install and the package replace what `make install` put into the PostgreSQL
# installations (PG_CONFIG's, and the system's).
# Whatever happens, the suite purges the package, puts back the files it replaced, runs
# `make install` of the working tree's build again into PG_CONFIG's installation (each step
# of that restore runs even when one before it failed, and a failed one fails the suite),
# and checks that the test server (PGHOST) creates the extension from it, so the suites
# after it are unaffected.
# It refuses to run while postgresql-MAJOR-pglocks is installed.
#
# The archive is made from the working tree's tracked files (`git stash create`, or HEAD
# when nothing is modified); untracked files are not in it. Needs root for dpkg.
# Run by scripts/test.sh against its server (PG* exported); run alone, it starts its own.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
source "$here/../../scripts/lib.sh"
cd "$PGLOCKS_ROOT"

if [ -z "${PGHOST:-}" ]; then
    pglocks_setup
    pglocks_start_server
else
    pglocks_install_packages
fi
# postgresql-all is the build dependency of the build-time tests (debian/control.in).
ensure_packages git unzip dpkg-dev debhelper postgresql-server-dev-all postgresql-all pgxnclient \
    autopkgtest lintian python3 binutils

major=$PGLOCKS_PGVER
pkg=postgresql-$major-pglocks
sys_pg_config=/usr/lib/postgresql/$major/bin/pg_config
sys_libdir=$("$sys_pg_config" --pkglibdir)
started=$(date +%s)
jobs=$(nproc) # for the two builds of the archive

failures=0
fail() {
    echo "FAIL: $*" >&2
    failures=$((failures + 1))
}
ok() { echo "ok: $* [$(($(date +%s) - started)) s]"; }

work=$(mktemp -d /tmp/pglocks-packaging.XXXXXX)
# The build-time tests' server runs as postgres and reads the built tree in here.
chmod 755 "$work"
installed=0
backup=
restored=0

# Puts the system back as the other suites expect it: no package, the files it replaced,
# and `make install` of the working tree's build. Runs at exit whatever happened. Every step
# runs even when one before it failed (a failed purge still leaves the files to put back
# and the working tree's build to install); any failure is reported and makes it return 1.
restore() {
    [ "$restored" = 1 ] && return 0
    restored=1
    local rc=0
    if [ "$installed" = 1 ] || dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep installed >/dev/null; then
        if as_root dpkg --purge "$pkg" >"$work/purge.log" 2>&1; then
            installed=0
        else
            cat "$work/purge.log" >&2
            echo "restore: dpkg --purge $pkg failed" >&2
            rc=1
        fi
    fi
    if [ -n "$backup" ] && ! as_root tar -C / -xf "$backup"; then
        echo "restore: putting back the files the package replaced failed" >&2
        rc=1
    fi
    if ! pglocks_build_install; then
        echo "restore: make install of the working tree failed" >&2
        rc=1
    fi
    return $rc
}

cleanup() {
    local rc=$?
    restore || rc=1
    rm -rf "$work"
    pglocks_stop_server
    exit $rc
}
trap cleanup EXIT
trap 'exit 130' INT TERM

if dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep 'install ok installed' >/dev/null; then
    restored=1 # not ours to remove or replace
    echo "$pkg is installed already; remove it first (dpkg --purge $pkg)" >&2
    exit 1
fi

# Make variables of the working tree's Makefile.
make_var() {
    printf 'include Makefile\nprint-var:\n\t@echo $(%s)\n' "$1" |
        make -s --no-print-directory -f - print-var PG_CONFIG="$PG_CONFIG"
}

# ---------------------------------------------------------------------------------------
log "packaging: versions"
version=$(sed -n "s/^default_version = '\(.*\)'$/\1/p" pglocks.control)
[ -n "$version" ] || { echo "no default_version in pglocks.control" >&2; exit 1; }
semver=$version
[[ $semver =~ ^[0-9]+\.[0-9]+$ ]] && semver=$semver.0
echo "default_version $version, PGXN version $semver"

if /usr/bin/python3 - "$version" "$semver" <<'EOF'; then ok "META.json"; else fail "META.json"; fi
import json, os, re, sys
version, semver = sys.argv[1:]
def default_version(control):
    with open(control, encoding="utf-8") as f:
        for line in f:
            m = re.match(r"^default_version\s*=\s*'([^']*)'", line)
            if m:
                return m.group(1)
    return None
try:
    with open("META.json", encoding="utf-8") as f:
        meta = json.load(f)
except ValueError as e:
    sys.exit(f"META.json is not valid JSON: {e}")
errors = []
def need(cond, what):
    if not cond:
        errors.append(what)
SEMVER = re.compile(r"^(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)(-[0-9A-Za-z.-]+)?$")
for field in ("name", "abstract", "version", "maintainer", "license", "provides", "meta-spec"):
    need(field in meta, f"mandatory field {field} missing")
need(meta.get("name") == "pglocks", "name is not pglocks")
need(meta.get("meta-spec", {}).get("version") == "1.0.0", "meta-spec version is not 1.0.0")
need(meta.get("version") == semver, f"version {meta.get('version')!r} is not {semver!r}")
need(SEMVER.match(str(meta.get("version"))), "version is not a semantic version")
need(meta.get("license") == "postgresql", "license is not postgresql")
ext = meta.get("provides", {}).get("pglocks")
need(isinstance(ext, dict), "provides has no pglocks")
if isinstance(ext, dict):
    need(ext.get("version") == semver, f"provides.pglocks.version {ext.get('version')!r} is not {semver!r}")
    for key in ("file", "docfile"):
        need(os.path.isfile(str(ext.get(key))), f"provides.pglocks.{key} {ext.get(key)!r} is not a file")
    # The file that provides the extension at this version: the control file whose
    # default_version it is (an install script of that very version would do too; an older
    # one, which installs another version, would not).
    provider = str(ext.get("file"))
    if provider.endswith(".control"):
        need(os.path.isfile(provider) and default_version(provider) == version,
             f"provides.pglocks.file {provider!r} is not a control file with default_version {version!r}")
    else:
        need(provider == f"sql/pglocks--{version}.sql",
             f"provides.pglocks.file {provider!r} is neither the control file nor the {version} install script")
pg = meta.get("prereqs", {}).get("runtime", {}).get("requires", {}).get("PostgreSQL")
need(pg == "13.0.0", f"runtime PostgreSQL prerequisite {pg!r} is not 13.0.0")
need(meta.get("resources"), "no resources")
tags = meta.get("tags")
need(isinstance(tags, list) and tags and all(isinstance(t, str) and 0 < len(t) < 256 for t in tags),
     "tags are not a list of short strings")
need(meta.get("release_status") in ("stable", "testing", "unstable"), "release_status")
for e in errors:
    print("META.json:", e, file=sys.stderr)
sys.exit(1 if errors else 0)
EOF

# Every version that has an install or upgrade script has a CHANGELOG.md section, the
# newest first, and the newest is default_version.
script_versions=$(ls sql/pglocks--*.sql | sed -n 's/.*--\([0-9.]*\)\.sql$/\1/p' | sort -uV)
changelog_versions=$(sed -n 's/^## \([0-9][0-9.]*\)\( .*\)\?$/\1/p' CHANGELOG.md)
if [ "$(head -1 <<<"$changelog_versions")" = "$version" ] &&
    [ "$(sort -V <<<"$script_versions")" = "$(sort -V <<<"$changelog_versions")" ]; then
    ok "CHANGELOG.md has $(echo $changelog_versions), newest $version"
else
    fail "CHANGELOG.md sections ($(echo $changelog_versions)) are not the versions of sql/ ($(echo $script_versions)) newest first"
fi
[ "$(make_var PGLOCKS_VERSION)" = "$version" ] || fail "the Makefile's PGLOCKS_VERSION is not $version"

# The scripts of released versions stay as released (what they create is what databases
# that ran them have): a change goes into a new upgrade script. Their SHA-256 as released,
# 1.0 in e8a15cd, 1.0 to 1.1 in 90eed3f, 1.1 to 1.2 in 1dc677f (1.2, 2026-12-01).
while read -r sum file; do
    if [ "$(sha256sum "$file" | cut -d' ' -f1)" = "$sum" ]; then
        ok "$file is as released"
    else
        fail "$file is not as released: an installation that ran it has other objects; change them in a new upgrade script"
    fi
done <<'SUMS'
082fbf1eb046c034fbb547f041fa0c76705e99c06b8ead2bfe3a4cfbf334f761 sql/pglocks--1.0.sql
a10fc5603b9f7290a848161d5e5eae0bf6c9ccb6306edccc28d4f994b4b3d58b sql/pglocks--1.0--1.1.sql
0c00aa6b9dbd2a3d2b8672b674dcf6bf988beb4643881ce5cfc4b73f651e1bc1 sql/pglocks--1.1--1.2.sql
SUMS

deb_version=$(dpkg-parsechangelog -l debian/changelog -S Version)
if [ "${deb_version%-*}" = "$version" ]; then
    ok "debian/changelog $deb_version"
else
    fail "debian/changelog's upstream version ${deb_version%-*} is not $version"
fi
grep -q '^PostgreSQL License$' LICENSE && grep -q 'the pglocks authors' LICENSE ||
    fail "LICENSE is not the PostgreSQL License of the pglocks authors"
grep -q '^License: PostgreSQL$' debian/copyright || fail "debian/copyright does not name the PostgreSQL License"

# ---------------------------------------------------------------------------------------
log "packaging: make dist"
git rev-parse --is-inside-work-tree >/dev/null 2>&1 || {
    echo "not a git checkout: make dist archives what git holds" >&2
    exit 1
}
ref=$(git -c user.name=pglocks -c user.email=pglocks@localhost stash create)
[ -n "$ref" ] || ref=HEAD
make -s dist PG_CONFIG="$PG_CONFIG" DIST_REF="$ref" DIST_DIR="$work/dist" >/dev/null
archive=$work/dist/pglocks-$semver.zip
[ -f "$archive" ] || { echo "make dist made no $archive: $(ls "$work/dist")" >&2; exit 1; }
unzip -Z1 "$archive" | grep -v '/$' | sort >"$work/archive.list"
git ls-tree -r --name-only "$ref" | sed "s|^|pglocks-$semver/|" | sort >"$work/git.list"
if cmp -s "$work/archive.list" "$work/git.list"; then
    ok "$(basename "$archive"): $(wc -l <"$work/archive.list") files, exactly what git holds"
else
    fail "the archive is not what git holds:"
    diff "$work/git.list" "$work/archive.list" | head -20 >&2 || true
fi
unzip -Z1 "$archive" | grep -v "^pglocks-$semver/" && fail "entries outside pglocks-$semver/"
# make -f from another directory archives the Makefile's checkout, into a DIST_DIR relative
# to where make runs.
mkdir -p "$work/elsewhere"
(cd "$work/elsewhere" && make -s -f "$PGLOCKS_ROOT/Makefile" dist PG_CONFIG="$PG_CONFIG" \
    DIST_REF="$ref" DIST_DIR=out >/dev/null)
if [ -f "$work/elsewhere/out/pglocks-$semver.zip" ] &&
    unzip -Z1 "$work/elsewhere/out/pglocks-$semver.zip" | grep -v '/$' | sort | cmp -s - "$work/archive.list"; then
    ok "make -f .../Makefile dist from another directory: the same files"
else
    fail "make -f .../Makefile dist from another directory did not archive the checkout: $(ls -R "$work/elsewhere" | head -5)"
fi
# The Debian upstream tarball: what dpkg-source looks for next to the unpacked tree, named for
# the upstream part of debian/changelog's version; git's files but debian/, in one directory.
upstream=${deb_version%-*}
upstream=${upstream#*:}
orig=$work/dist/pglocks_$upstream.orig.tar.gz
if [ -f "$orig" ]; then
    tar -tzf "$orig" | grep -v '/$' | sort >"$work/orig.list"
    git ls-tree -r --name-only "$ref" | grep -v '^debian/' | sed "s|^|pglocks-$upstream/|" | sort >"$work/git-orig.list"
    if cmp -s "$work/orig.list" "$work/git-orig.list"; then
        ok "$(basename "$orig"): $(wc -l <"$work/orig.list") files, what git holds but debian/"
    else
        fail "$(basename "$orig") is not what git holds but debian/:"
        diff "$work/git-orig.list" "$work/orig.list" | head -20 >&2 || true
    fi
else
    fail "make dist made no $(basename "$orig"): $(ls "$work/dist")"
fi
for f in pglocks.control META.json LICENSE CHANGELOG.md README.md Makefile $(make_var DATA); do
    grep -qx "pglocks-$semver/$f" "$work/archive.list" || fail "the archive has no $f"
done
junk='\.(o|so|bc|a|d|deb|zip)$|/(results|output_iso|tmp_check|tmp_check_iso|log|dist|__pycache__|node_modules)/|/regression\.(diffs|out)$|/src/build_flags$|/run_unit_tests(_evp)?$|/debian/postgresql-[0-9]+-pglocks/'
if grep -E "$junk" "$work/archive.list"; then
    fail "build or test output in the archive (above)"
else
    ok "no build or test output in the archive"
fi

# ---------------------------------------------------------------------------------------
log "packaging: pgxn install of the archive into $PG_CONFIG's PostgreSQL"
# PGXN's client builds and installs an archive as it would one downloaded from PGXN.
pkglibdir=$("$PG_CONFIG" --pkglibdir)
extdir=$("$PG_CONFIG" --sharedir)/extension
touch "$work/stamp"
sleep 1
if as_root env MAKEFLAGS="-j$jobs" pgxn install --make make --pg_config "$PG_CONFIG" "$archive" \
    >"$work/pgxn.log" 2>&1; then
    missing=0
    [ "$pkglibdir/pglocks.so" -nt "$work/stamp" ] || { fail "pgxn install left $pkglibdir/pglocks.so as it was"; missing=1; }
    for f in pglocks.control $(make_var DATA); do
        unzip -p "$archive" "pglocks-$semver/$f" | cmp -s - "$extdir/$(basename "$f")" ||
            { fail "$extdir/$(basename "$f") is not the archive's"; missing=1; }
    done
    [ $missing = 0 ] && ok "pgxn install built and installed the library, control file and scripts"
else
    tail -30 "$work/pgxn.log" >&2
    fail "pgxn install of the archive failed"
fi

# ---------------------------------------------------------------------------------------
log "packaging: dpkg-buildpackage (source and binary) for PostgreSQL $major, from the unpacked archive"
mkdir "$work/build"
unzip -q "$archive" -d "$work/build"
src=$work/build/pglocks-$semver
# dpkg-source takes the upstream tarball from the directory above the tree.
[ -f "$orig" ] && cp "$orig" "$work/build/"
# The committed debian/control is what pg_buildext makes of control.in for 15 (the major
# Debian 12 supports); for another major the build regenerates it.
if (cd "$src" && PG_SUPPORTED_VERSIONS=15 PG_UPDATECONTROL=no pg_buildext checkcontrol) >"$work/checkcontrol.log" 2>&1; then
    ok "debian/control is up to date with debian/control.in"
else
    fail "debian/control is not what pg_buildext generates:"
    cat "$work/checkcontrol.log" >&2
fi
# A full build, as a buildd makes one: the source package, then the binary one, whose build
# runs the regression and isolation suites against the built tree (dh_pgxs_test: pg_buildext
# installcheck on a throwaway cluster) as DEB_BUILD_OPTIONS without nocheck asks.
if ! (cd "$src" && env -u DEB_BUILD_OPTIONS -u DEB_BUILD_PROFILES -u PGHOST -u PGPORT -u PGUSER \
    -u PGDATABASE PG_SUPPORTED_VERSIONS=$major PG_UPDATECONTROL=yes MAKEFLAGS="-j$jobs" \
    dpkg-buildpackage -us -uc) >"$work/build.log" 2>&1; then
    tail -60 "$work/build.log" >&2
    echo "dpkg-buildpackage failed" >&2
    exit 1
fi
deb=$(ls "$work/build/${pkg}_${deb_version}_"*.deb)
ok "built $(basename "$deb") in the unpacked archive"
# The build-time tests: both suites, against this major, passed (a failure fails the build).
build_passed=$(grep -cE '^ *All [0-9]+ tests passed\. *$' "$work/build.log" || true)
if grep "^### PostgreSQL $major installcheck ###" "$work/build.log" >/dev/null && [ "$build_passed" = 2 ]; then
    ok "build-time tests on $major: $(grep -E '^ *All [0-9]+ tests passed' "$work/build.log" | xargs)"
else
    fail "the build did not run both suites on $major (dh_pgxs_test):"
    sed -n '/dh_pgxs_test/,$p' "$work/build.log" | head -40 >&2
fi
# The source package: the upstream tarball as it is, and debian/ beside it; unpacked, it is
# the archive it was built from (quilt's .pc/ aside).
dsc=$work/build/pglocks_$deb_version.dsc
mkdir "$work/fresh"
unzip -q "$archive" -d "$work/fresh"
if [ -f "$dsc" ] && grep -E " pglocks_$upstream\.orig\.tar\.gz\$" "$dsc" >/dev/null &&
    (cd "$work" && dpkg-source --no-check -x "$dsc" "$work/unpacked" >"$work/unpack.log" 2>&1) &&
    diff -r -x .pc "$work/fresh/pglocks-$semver" "$work/unpacked" >"$work/unpack.diff" 2>&1; then
    ok "source package $(basename "$dsc"): $(basename "$orig") and the Debian changes unpack into the tree"
else
    fail "the source package is missing or does not unpack into the tree it was built from:"
    cat "$work/unpack.log" "$work/unpack.diff" 2>/dev/null | head -30 >&2
fi
# pg_buildext hands the packager's flags to PGXS as COPT; the C++ objects get them too.
prefix_map="-ffile-prefix-map=$src=."
cxx_lines=$(grep -c '^g++ .* -c -o src/.*\.o src/.*\.cpp' "$work/build.log" || true)
cxx_flagged=$(grep '^g++ .* -c -o src/.*\.o src/.*\.cpp' "$work/build.log" | grep -c -- "$prefix_map" || true)
objs=$(make_var OBJS | wc -w)
if [ "$cxx_lines" = "$objs" ] && [ "$cxx_flagged" = "$objs" ]; then
    ok "all $objs C++ objects compiled by g++ with dpkg-buildflags' flags"
else
    fail "$cxx_lines of $objs objects compiled by g++, $cxx_flagged with $prefix_map"
fi

# ---------------------------------------------------------------------------------------
log "packaging: contents of $(basename "$deb")"
dpkg-deb -c "$deb" | awk '{print $6}' | sed 's|^\./|/|' | grep -v '/$' | sort >"$work/deb.list"
cat "$work/deb.list"
with_llvm=$(PG_CONFIG=$sys_pg_config make_var with_llvm)
lib=/usr/lib/postgresql/$major/lib
share=/usr/share/postgresql/$major/extension
doc=/usr/share/doc/$pkg
allowed="^($lib/pglocks\.so|$share/pglocks\.control|$share/pglocks--[0-9.]+(--[0-9.]+)?\.sql"
allowed+="|$doc/(copyright|changelog\.gz|changelog\.Debian\.gz|README\.md\.gz|docs/[a-z_]+\.md\.gz)"
[ "$with_llvm" = yes ] && allowed+="|$lib/bitcode/pglocks\.index\.bc|$lib/bitcode/pglocks/src/[a-z0-9_]+\.bc"
allowed+=")$"
if grep -vE "$allowed" "$work/deb.list"; then
    fail "files in the package that do not belong there (above; with_llvm=$with_llvm)"
else
    ok "nothing in the package but the library, control file, scripts and documentation (with_llvm=$with_llvm)"
fi
expected=("$lib/pglocks.so" "$share/pglocks.control" "$doc/copyright" "$doc/changelog.gz"
    "$doc/README.md.gz")
for f in $(make_var DATA); do expected+=("$share/$(basename "$f")"); done
if [ "$with_llvm" = yes ]; then
    expected+=("$lib/bitcode/pglocks.index.bc")
    for o in $(make_var OBJS); do expected+=("$lib/bitcode/pglocks/${o%.o}.bc"); done
fi
for f in "${expected[@]}"; do
    grep -qx "$f" "$work/deb.list" || fail "the package has no $f"
done
[ "$(grep -c '\.sql$' "$work/deb.list")" = "$(make_var DATA | wc -w)" ] ||
    fail "the package's install scripts are not the Makefile's DATA"
depends=$(dpkg-deb -f "$deb" Depends)
echo "Depends: $depends"
# The library links libstdc++ and OpenSSL's libcrypto (libcrypto.so.3, in libssl3 on
# Debian 12): the package depends on both, through dh_shlibdeps.
dpkg-deb --fsys-tarfile "$deb" | tar -xO ".$lib/pglocks.so" >"$work/packaged.so"
needed=$(readelf -d "$work/packaged.so" | sed -n 's/.*(NEEDED).*\[\(.*\)\]$/\1/p' | xargs)
echo "NEEDED: $needed"
[[ " $needed " == *" libcrypto.so.3 "* && " $needed " == *" libstdc++.so.6 "* ]] ||
    fail "the library does not link libcrypto.so.3 and libstdc++.so.6"
[[ $depends == *"postgresql-$major"* && $depends == *libstdc++6* && $depends == *libssl3* ]] ||
    fail "the package does not depend on postgresql-$major, libstdc++6 and libssl3"
dpkg-deb --fsys-tarfile "$deb" | tar -xO ".$share/pglocks.control" | cmp -s - pglocks.control ||
    fail "the package's pglocks.control is not the working tree's"
# Debian's package checker; an upload that closes no bug report is what a package built
# outside Debian is.
if lintian --fail-on error,warning --suppress-tags initial-upload-closes-no-bugs \
    "$work/build/pglocks_${deb_version}_"*.changes >"$work/lintian.log" 2>&1; then
    ok "lintian: nothing to report"
else
    fail "lintian:"
    cat "$work/lintian.log" >&2
fi

# ---------------------------------------------------------------------------------------
log "packaging: dpkg -i into /usr/lib/postgresql/$major, regression suites against it"
# The files of `make install` that the package replaces, put back after the purge.
while read -r f; do
    [ -e "$f" ] && echo "${f#/}"
done <"$work/deb.list" >"$work/replaced.list"
if [ -s "$work/replaced.list" ]; then
    backup=$work/replaced.tar
    as_root tar -C / -cf "$backup" -T "$work/replaced.list"
fi
echo "$(wc -l <"$work/replaced.list") installed files saved"
installed=1
as_root dpkg -i "$deb" >"$work/install.log" 2>&1 || {
    cat "$work/install.log" >&2
    exit 1
}
if [ "$(dpkg-query -S "$sys_libdir/pglocks.so" | cut -d: -f1)" = "$pkg" ] &&
    as_root dpkg --verify "$pkg" >"$work/verify.log" 2>&1 && [ ! -s "$work/verify.log" ]; then
    ok "$pkg installed; $sys_libdir/pglocks.so and the other files are the package's"
else
    fail "the installed files are not the package's"
    cat "$work/verify.log" >&2
fi

# autopkgtest runs the tests of debian/tests/control (pg_buildext installcheck) against the
# installed package, with this machine as the testbed (null). Their cluster is one of their
# own, so it loads the package's files (the test server keeps the library it loaded at its
# start).
if as_root env -u PGHOST -u PGPORT -u PGUSER -u PGDATABASE \
    autopkgtest "$deb" "$src/" -- null >"$work/autopkgtest.log" 2>&1; then
    passed=$(grep -cE '^ *All [0-9]+ tests passed\. *$' "$work/autopkgtest.log" || true)
    if grep -qE '^installcheck +PASS' "$work/autopkgtest.log" &&
        grep -q "^### PostgreSQL $major installcheck ###" "$work/autopkgtest.log" && [ "$passed" = 2 ]; then
        ok "autopkgtest installcheck on $major: $(grep -E '^ *All [0-9]+ tests passed' "$work/autopkgtest.log" | xargs)"
    else
        fail "autopkgtest did not run both suites on $major:"
        cat "$work/autopkgtest.log" >&2
    fi
else
    fail "autopkgtest failed:"
    tail -150 "$work/autopkgtest.log" >&2
fi
[ "$(dpkg-query -W -f='${Version}' "$pkg" 2>/dev/null)" = "$deb_version" ] ||
    fail "$pkg $deb_version is no longer installed after autopkgtest"

as_root dpkg --purge "$pkg" >"$work/purge.log" 2>&1 || { cat "$work/purge.log" >&2; exit 1; }
installed=0
if dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep installed >/dev/null || [ -e "$sys_libdir/pglocks.so" ]; then
    fail "$pkg or its library is still there after dpkg --purge"
else
    ok "$pkg purged"
fi

# ---------------------------------------------------------------------------------------
log "packaging: the working tree's installation restored"
restore || fail "restoring the installation (above)"
for f in pglocks.so; do cmp -s "$f" "$pkglibdir/$f" || fail "$pkglibdir/$f is not the working tree's"; done
for f in pglocks.control $(make_var DATA); do
    cmp -s "$f" "$extdir/$(basename "$f")" || fail "$extdir/$(basename "$f") is not the working tree's"
done
while read -r f; do
    [ -e "/$f" ] || fail "/$f, there before the package, is gone"
done <"$work/replaced.list"
db=pglocks_packaging
psql -X -q -v ON_ERROR_STOP=1 -d postgres -c "SET client_min_messages = warning" \
    -c "DROP DATABASE IF EXISTS $db" -c "CREATE DATABASE $db"
got=$(psql -X -q -At -v ON_ERROR_STOP=1 -d "$db" -c "CREATE EXTENSION pglocks" \
    -c "SELECT extversion || ' ' || pglocks_key('some lock') FROM pg_extension WHERE extname = 'pglocks'")
psql -X -q -d postgres -c "DROP DATABASE $db" >/dev/null
if [ "$got" = "$version -5006958056254205714" ]; then
    ok "the test server creates pglocks $version from the restored installation"
else
    fail "after the restore, CREATE EXTENSION gave '$got'"
fi

echo
echo "packaging suite: $failures failure(s), $(($(date +%s) - started)) s"
[ "$failures" -eq 0 ]
