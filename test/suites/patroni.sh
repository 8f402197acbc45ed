#!/usr/bin/env bash
# pglocks on a high-availability cluster: etcd and two Patroni nodes from Debian's packages,
# on loopback ports of their own (20000-29999, below the ephemeral range), with pglocks preloaded, pg_rewind on and trust
# authentication on loopback. Clients reach the primary through a multi-host connection
# string (target_session_attrs=read-write). Checked through a hard failover (SIGKILL of the
# primary's Patroni and postmaster) and a planned switchover (patronictl switchover): the
# replica refuses every acquire form with 55000 (23 calls, an empty pglocks_acquire_all too); the old primary's holders lose their
# connections and locks, its waiter gets an error; clients reconnect to the new primary and
# get the locks; pglocks_locks and pglocks_stats there start without the old holds; every
# fencing token issued after the failover exceeds every one issued before, up to the kill;
# the old primary rejoins as a replica (pg_rewind) that refuses every acquire form too; in
# synchronous_mode, after the new primary dies too, the old one is not promoted: watched for
# twice Patroni's ttl, it logs that it is not the healthiest node. Prints the failover and
# switchover times and the tokens before and after. The steps are in patroni_cluster.py.
#
#   test/suites/patroni.sh                                   the checks above
#   test/suites/patroni.sh --double-failure [--synchronous]  by hand: node1 dies, node2 is
#       promoted and issues tokens, node2 dies, node1 comes back alone; with asynchronous
#       replication Patroni promotes node1 to node2's timeline number and it issues node2's
#       tokens again, so this fails (see the README's High availability section)
#
# Needs pglocks installed into the server of PGLOCKS_BINDIR (scripts/test.sh does that; run
# alone, this script builds and installs it). Does not use the test server.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
source "$here/../../scripts/lib.sh"

if [ -z "${PGHOST:-}" ]; then
    pglocks_setup
else
    pglocks_install_packages
fi

etcd_was_installed=0
if dpkg-query -W -f='${Status}' etcd-server 2>/dev/null | grep "install ok installed" >/dev/null; then
    etcd_was_installed=1
fi
ensure_packages patroni etcd-server python3 python3-psycopg2 postgresql-client-"$PGLOCKS_PGVER"

# Debian enables the packages' services and starts them on install. Patroni's needs
# /etc/patroni/config.yml and does not start without it; etcd's starts on the default ports.
# The cluster here has an etcd of its own, and an etcd service this suite brought in is
# stopped and disabled again, whether or not it is seen running (under systemd, or the init
# script where there is no systemd).
if [ "$etcd_was_installed" = 0 ]; then
    log "stopping and disabling the etcd service that installing etcd-server enabled"
    if [ -d /run/systemd/system ]; then
        as_root systemctl disable --now etcd.service >/dev/null 2>&1 ||
            log "warning: systemctl disable --now etcd.service failed"
    else
        if [ -x /etc/init.d/etcd ]; then
            as_root /etc/init.d/etcd stop >/dev/null 2>&1 || true  # fails when it is not running
        fi
        as_root update-rc.d etcd disable >/dev/null 2>&1 ||
            log "warning: update-rc.d etcd disable failed"
    fi
fi

work=$(mktemp -d /tmp/pglocks-patroni.XXXXXX)
chmod 755 "$work"
# Patroni, etcd and the servers run as the servers' owner.
[ "$(id -u)" = 0 ] && chown postgres: "$work"

cleanup() {
    local rc=$?
    local f pid d
    cd /
    # Patroni first (it would restart its server), then the servers, then etcd.
    for f in "$work"/pids/node*.pid "$work"/pids/etcd.pid; do
        [ -s "$f" ] || continue
        pid=$(cat "$f")
        # Only a process of this cluster: its command line names the work directory (Patroni's
        # configuration file, etcd's data directory). A pid file may outlive its process.
        if tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -F "$work/" >/dev/null; then
            kill -9 "$pid" 2>/dev/null || true
        fi
    done
    for d in "$work"/node*/data; do
        [ -s "$d/postmaster.pid" ] || continue
        pid=$(head -n 1 "$d/postmaster.pid")
        # A postmaster of this cluster (the file may be left from one killed earlier).
        if [ -n "$pid" ] && [ "$(readlink "/proc/$pid/cwd" 2>/dev/null)" = "$d" ]; then
            kill -9 "$pid" 2>/dev/null || true
        fi
    done
    # Then whatever still runs in the cluster's directories: the driver, and backends of a
    # killed postmaster (they leave by themselves once they notice, a stopped one never does).
    for _ in $(seq 50); do
        local left=0
        for p in /proc/[0-9]*; do
            case "$(readlink "$p/cwd" 2>/dev/null)" in "$work" | "$work"/*) left=1; kill -9 "${p#/proc/}" 2>/dev/null || true ;; esac
        done
        [ $left = 0 ] && break
        sleep 0.1
    done
    if [ $rc -ne 0 ]; then
        for f in "$work"/*.log; do
            [ -s "$f" ] || continue
            echo "--- $(basename "$f") (tail)" >&2
            tail -n 25 "$f" >&2
        done
        for f in "$work"/node*/data/log/*; do
            [ -s "$f" ] || continue
            echo "--- $f (tail)" >&2
            tail -n 15 "$f" >&2
        done
    fi
    rm -rf "$work"
    exit $rc
}
trap cleanup EXIT
trap 'exit 130' INT TERM

log "a Patroni cluster on $PGLOCKS_BINDIR, in $work"
# The driver runs from the work directory: the owner of the servers may not be able to read
# the checkout (under /root, say).
cp "$here/patroni_cluster.py" "$work/"
cd "$work"
as_server_owner env -u PGHOST -u PGPORT -u PGUSER -u PGDATABASE \
    timeout 900 /usr/bin/python3 "$work/patroni_cluster.py" --work "$work" --bindir "$PGLOCKS_BINDIR" "$@"
