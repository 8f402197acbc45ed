"""pglocks on a two-node Patroni cluster with etcd, through a hard failover and a switchover
(run by patroni.sh, as the owner of the servers).

Every fact is checked against the servers themselves; a violated one ends the run with a
non-zero status. The run prints the failover and switchover times and the fencing tokens
issued before and after each.
"""
import argparse
import base64
import json
import os
import random
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request

import psycopg2

START = time.monotonic()
SEQ_BITS = 48
# Patroni's DCS timing. A leader key lives TTL seconds without its leader's renewal, so a hard
# failover completes in about TTL; loop_wait + 2 * retry_timeout must stay below TTL. Longer
# than the least that works, so that a machine busy with other work (a stalled etcd write, a
# slow Patroni cycle) does not cost the leader its key.
TTL, LOOP_WAIT, RETRY_TIMEOUT = 20, 1, 8
# Limits for the waits on a failover: the old leader's key expires, then a cycle promotes.
FAILOVER_LIMIT = 3 * TTL
# Ports of the cluster: below Linux's ephemeral range (32768-60999), so that no outgoing
# connection of the machine takes one between the check that it is free and its use.
PORT_RANGE = (20000, 30000)
LIBPQ_ENV = ("PGHOST", "PGHOSTADDR", "PGPORT", "PGUSER", "PGDATABASE", "PGSERVICE",
             "PGOPTIONS", "PGTARGETSESSIONATTRS", "PGPASSWORD", "PGPASSFILE")


class Failed(Exception):
    pass


def say(msg):
    print(f"[{time.monotonic() - START:5.1f}s] {msg}", flush=True)


def check(ok, what, detail=""):
    if not ok:
        raise Failed(what + (f" [{detail}]" if detail else ""))
    say("ok: " + what + (f" [{detail}]" if detail else ""))


def wait_for(what, predicate, limit):
    deadline = time.monotonic() + limit
    while True:
        try:
            value = predicate()
        except Exception:  # the thing waited for may not answer yet
            value = None
        if value:
            return value
        if time.monotonic() > deadline:
            raise Failed(f"timed out after {limit}s waiting for {what}")
        time.sleep(0.1)


def port_is_free(port):
    s = socket.socket()
    try:
        s.bind(("127.0.0.1", port))
        return True
    except OSError:
        return False
    finally:
        s.close()


def free_ports(n):
    """n consecutive free loopback ports of PORT_RANGE, from a random start (another run of
    this suite on the machine picks others)."""
    rng = random.SystemRandom()
    for _ in range(200):
        base = rng.randrange(PORT_RANGE[0], PORT_RANGE[1] - n)
        ports = list(range(base, base + n))
        if all(port_is_free(p) for p in ports):
            return ports
    raise Failed(f"no {n} consecutive free ports in {PORT_RANGE[0]}-{PORT_RANGE[1] - 1}")


def split_token(token):
    return token >> SEQ_BITS, token & ((1 << SEQ_BITS) - 1)


def show_token(token):
    tli, seq = split_token(token)
    return f"{token} (timeline {tli}, sequence {seq})"


def wallclock(mono):
    t = time.time() - (time.monotonic() - mono)
    return time.strftime("%H:%M:%S", time.localtime(t)) + f".{int(t * 1000) % 1000:03d}"


class Cluster:
    def __init__(self, work, bindir):
        self.work = work
        self.bindir = bindir
        self.env = {k: v for k, v in os.environ.items() if k not in LIBPQ_ENV}
        (self.etcd_port, self.etcd_peer, rest1, rest2, pg1, pg2) = free_ports(6)
        self.nodes = {
            "node1": {"rest": rest1, "port": pg1},
            "node2": {"rest": rest2, "port": pg2},
        }
        self.procs = {}
        os.makedirs(os.path.join(work, "pids"), exist_ok=True)

    def spawn(self, name, argv, log):
        out = open(os.path.join(self.work, log), "ab")
        proc = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                env=self.env, start_new_session=True)
        out.close()
        with open(os.path.join(self.work, "pids", name + ".pid"), "w") as f:
            f.write(str(proc.pid))
        self.procs[name] = proc
        return proc

    # etcd, on its own loopback ports and data directory.
    def start_etcd(self):
        url = f"http://127.0.0.1:{self.etcd_port}"
        peer = f"http://127.0.0.1:{self.etcd_peer}"
        # --unsafe-no-fsync (etcd 3.4.23 accepts it, though its --help does not list it): the
        # store is thrown away after the run, and an fsync stalled by other work on the disk
        # would delay the leader's renewals.
        self.spawn("etcd", ["etcd", "--unsafe-no-fsync", "--name", "pglocks", "--data-dir", os.path.join(self.work, "etcd"),
                            "--listen-client-urls", url, "--advertise-client-urls", url,
                            "--listen-peer-urls", peer, "--initial-advertise-peer-urls", peer,
                            "--initial-cluster", f"pglocks={peer}",
                            "--initial-cluster-token", f"pglocks-{os.getpid()}",
                            "--initial-cluster-state", "new"], "etcd.log")
        wait_for("etcd", lambda: json.loads(self.http(url + "/health")[1]).get("health") == "true", 30)
        say(f"etcd {self.version()} listens on 127.0.0.1:{self.etcd_port}")

    def dcs_sync(self):
        """The cluster's sync key in etcd (Patroni's record of the leader and its synchronous
        standby), or None; read through etcd's v3 JSON gateway."""
        key = f"/pglocks-test/pglocks-{os.getpid()}/sync"
        req = urllib.request.Request(f"http://127.0.0.1:{self.etcd_port}/v3/kv/range",
                                     data=json.dumps({"key": base64.b64encode(key.encode()).decode()}).encode(),
                                     method="POST")
        with urllib.request.urlopen(req, timeout=5) as r:
            kvs = json.loads(r.read().decode()).get("kvs", [])
        return json.loads(base64.b64decode(kvs[0]["value"]).decode()) if kvs else None

    def version(self):
        out = subprocess.run(["etcd", "--version"], capture_output=True, text=True).stdout
        return out.split("\n")[0].split()[-1] if out else "?"

    @staticmethod
    def http(url, timeout=2):
        try:
            with urllib.request.urlopen(url, timeout=timeout) as r:
                return r.status, r.read().decode()
        except urllib.error.HTTPError as e:
            return e.code, e.read().decode()

    def config(self, name):
        node = self.nodes[name]
        ndir = os.path.join(self.work, name)
        os.makedirs(ndir, mode=0o700, exist_ok=True)
        # JSON is YAML, which is what Patroni reads.
        conf = {
            "scope": f"pglocks-{os.getpid()}",
            "namespace": "/pglocks-test/",
            "name": name,
            "log": {"level": "INFO"},
            "restapi": {"listen": f"127.0.0.1:{node['rest']}",
                        "connect_address": f"127.0.0.1:{node['rest']}"},
            "etcd3": {"host": f"127.0.0.1:{self.etcd_port}"},
            "bootstrap": {
                "dcs": {"ttl": TTL, "loop_wait": LOOP_WAIT, "retry_timeout": RETRY_TIMEOUT,
                        "maximum_lag_on_failover": 1048576,
                        "postgresql": {"use_pg_rewind": True, "use_slots": True,
                                       "parameters": {"max_connections": 40,
                                                      "wal_keep_size": "128MB"}}},
                "initdb": [{"encoding": "UTF8"}, {"locale": "C"}],
            },
            "postgresql": {
                "listen": f"127.0.0.1:{node['port']}",
                "connect_address": f"127.0.0.1:{node['port']}",
                "data_dir": os.path.join(ndir, "data"),
                "bin_dir": self.bindir,
                "pgpass": os.path.join(ndir, "pgpass"),
                "authentication": {"superuser": {"username": "postgres"},
                                   "replication": {"username": "replicator"},
                                   "rewind": {"username": "postgres"}},
                "parameters": {"shared_preload_libraries": "pglocks",
                               "unix_socket_directories": ndir,
                               # The servers die by SIGKILL, never with the machine: the
                               # kernel keeps what they wrote.
                               "fsync": "off"},
                "pg_hba": ["local all all trust",
                           "host all all 127.0.0.1/32 trust",
                           "host replication all 127.0.0.1/32 trust"],
            },
        }
        path = os.path.join(self.work, name + ".yml")
        with open(path, "w") as f:
            json.dump(conf, f, indent=1)
        node["yml"] = path
        node["data"] = conf["postgresql"]["data_dir"]
        node["log"] = name + ".log"
        return path

    def start_patroni(self, name):
        self.spawn(name, ["patroni", self.config(name)], self.nodes[name]["log"])

    def role(self, name):
        try:
            status, body = self.http(f"http://127.0.0.1:{self.nodes[name]['rest']}/patroni", 3)
        except (OSError, urllib.error.URLError):
            return None
        info = json.loads(body)
        return info.get("role"), info.get("state")

    def postmaster_pid(self, name):
        """The pid of the node's running postmaster. postmaster.pid may be left over from a
        server killed earlier, and its pid taken by another process since: the pid must be a
        postgres process whose working directory is the node's data directory."""
        data = self.nodes[name]["data"]
        with open(os.path.join(data, "postmaster.pid")) as f:
            pid = int(f.readline())
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                argv0 = f.read().split(b"\0")[0].decode(errors="replace")
            cwd = os.readlink(f"/proc/{pid}/cwd")
        except OSError:
            argv0, cwd = "(no such process)", ""
        if os.path.basename(argv0) != "postgres" or cwd != os.path.realpath(data):
            raise Failed(f"{name}: postmaster.pid names pid {pid}, which is not {name}'s postmaster "
                         f"[{argv0} in {cwd}]")
        return pid

    def log_size(self, name):
        try:
            return os.path.getsize(os.path.join(self.work, self.nodes[name]["log"]))
        except OSError:
            return 0

    def log_text(self, name, start=0):
        with open(os.path.join(self.work, self.nodes[name]["log"]), "rb") as f:
            f.seek(start)
            return f.read().decode(errors="replace")

    def connect(self, name, **kw):
        return connect(f"host=127.0.0.1 port={self.nodes[name]['port']} dbname=postgres user=postgres", **kw)

    def multi_dsn(self, order):
        ports = ",".join(str(self.nodes[n]["port"]) for n in order)
        return (f"host=127.0.0.1,127.0.0.1 port={ports} dbname=postgres user=postgres "
                "target_session_attrs=read-write connect_timeout=2")

    def wait_primary_and_replica(self, primary, replica, limit):
        wait_for(f"{primary} to run as primary", lambda: self.role(primary) == ("master", "running")
                 or self.role(primary) == ("primary", "running"), limit)
        wait_for(f"{replica} to run as a streaming replica", lambda: self.streaming(replica), limit)

    def streaming(self, name):
        if self.role(name) not in (("replica", "running"),):
            return False
        conn = self.connect(name)
        try:
            return one(conn, "SELECT status = 'streaming' AND pg_is_in_recovery() FROM pg_stat_wal_receiver")
        finally:
            conn.close()

    def kill_node(self, name):
        """SIGKILL of the node's Patroni and postmaster; returns the time of the kill."""
        postmaster = self.postmaster_pid(name)
        patroni = self.procs[name]
        # Patroni is this process's child and not reaped yet: its pid cannot be anybody else's.
        if patroni.poll() is not None:
            raise Failed(f"{name}: Patroni exited before the kill [status {patroni.returncode}]")
        patroni.send_signal(signal.SIGKILL)
        os.kill(postmaster, signal.SIGKILL)
        t = time.monotonic()
        patroni.wait()
        # Reaped: its pid may be reused, and patroni.sh's cleanup must not find it.
        os.unlink(os.path.join(self.work, "pids", name + ".pid"))
        return t


def connect(dsn, **kw):
    conn = psycopg2.connect(dsn, **kw)
    conn.autocommit = True
    return conn


def one(conn, sql, args=None):
    with conn.cursor() as cur:
        cur.execute(sql, args)
        if cur.description is None:
            return None
        row = cur.fetchone()
        return row[0] if row is not None and len(row) == 1 else row


def sqlstate_of(conn, sql):
    try:
        one(conn, sql)
    except psycopg2.Error as e:
        return e.pgcode
    return "no error"


def port_of(conn):
    return one(conn, "SELECT inet_server_port()")


class Call(threading.Thread):
    """One statement on its own connection, in a thread: a waiter, or pglocks_with_lock."""

    def __init__(self, dsn, sql, args=None):
        super().__init__(daemon=True)
        self.conn = connect(dsn)
        self.pid = one(self.conn, "SELECT pg_backend_pid()")
        self.sql = sql
        self.args = args
        self.result = None
        self.error = None

    def run(self):
        try:
            self.result = ("returned", one(self.conn, self.sql, self.args))
        except psycopg2.Error as e:
            self.error = e
            self.result = ("error", (e.pgcode or "no SQLSTATE") + ": " + " / ".join(
                line.strip() for line in str(e).strip().split("\n")))


class TokenLoop(threading.Thread):
    """Draws fencing tokens one after another, as fast as a client can, until its connection
    fails; keeps every token it received."""

    def __init__(self, dsn, key):
        super().__init__(daemon=True)
        self.conn = connect(dsn)
        self.key = key
        self.tokens = []
        self.error = None

    def run(self):
        sql = "SELECT pglocks_acquire_token(%s, scope => 'transaction')"
        try:
            with self.conn.cursor() as cur:
                while True:
                    cur.execute(sql, (self.key,))
                    self.tokens.append(cur.fetchone()[0])
        except psycopg2.Error as e:
            self.error = e


def acquire_forms(key):
    return [
        f"SELECT pglocks_acquire('{key}')",
        f"SELECT pglocks_acquire('{key}', shared => true)",
        f"SELECT pglocks_acquire('{key}', wait => false)",
        f"SELECT pglocks_acquire('{key}', timeout => '1s')",
        f"SELECT pglocks_acquire('{key}', scope => 'transaction')",
        f"SELECT pglocks_acquire('{key}', reentrant => false)",
        "SELECT pglocks_acquire(42::int8)",
        "SELECT pglocks_acquire(4, 2)",
        f"SELECT pglocks_acquire_token('{key}')",
        f"SELECT pglocks_acquire_token('{key}', shared => true, wait => false)",
        "SELECT pglocks_acquire_token(42::int8)",
        "SELECT pglocks_acquire_token(4, 2)",
        f"SELECT pglocks_acquire_all(ARRAY['{key}', '{key}-2'])",
        "SELECT pglocks_acquire_all(ARRAY[42, 43]::int8[])",
        # An empty set takes nothing, and is refused all the same.
        "SELECT pglocks_acquire_all('{}'::text[])",
        "SELECT pglocks_acquire_all('{}'::int8[])",
        f"SELECT pglocks_acquire_slot('{key}-sem', 2)",
        f"CALL pglocks_acquire_detached('{key}')",
        "CALL pglocks_acquire_detached(42::int8)",
        "CALL pglocks_acquire_detached(4, 2)",
        f"SELECT pglocks_with_lock('{key}', 'SELECT 1')",
        "SELECT pglocks_with_lock(42::int8, 'SELECT 1')",
        "SELECT pglocks_with_lock(4, 2, 'SELECT 1')",
    ]


def check_replica_refuses(cluster, name, key):
    conn = cluster.connect(name)
    check(one(conn, "SELECT pg_is_in_recovery()") is True, f"{name} is in recovery")
    forms = acquire_forms(key)
    got = {sql: sqlstate_of(conn, sql) for sql in forms}
    wrong = {sql: code for sql, code in got.items() if code != "55000"}
    check(not wrong, f"the replica {name} refuses {len(forms)} acquire forms with 55000", str(wrong or ""))
    held = one(conn, "SELECT count(*) FROM pglocks_held()")
    advisory = one(conn, "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory'")
    check(held == 0 and advisory == 0, f"nothing is held on the replica {name} after the refusals",
          f"held {held}, advisory locks {advisory}")
    conn.close()


def connection_is_lost(conn):
    try:
        one(conn, "SELECT count(*) FROM pglocks_held()")
    except (psycopg2.OperationalError, psycopg2.InterfaceError) as e:
        return " / ".join(line.strip() for line in str(e).strip().split("\n")) or type(e).__name__
    return None


class Holders:
    """Sessions that hold locks on the primary, one waiter queued behind them, and one
    pglocks_with_lock call in progress; all reached through the multi-host string."""

    def __init__(self, dsn, tag, primary_port):
        self.tag = tag
        self.keys = [f"{tag}:orders:1", f"{tag}:orders:2", f"{tag}:catalog", f"{tag}:report"]
        self.h1 = connect(dsn)
        self.h2 = connect(dsn)
        check(port_of(self.h1) == primary_port and port_of(self.h2) == primary_port
              and one(self.h1, "SELECT pg_is_in_recovery()") is False,
              f"{tag}: the multi-host string (target_session_attrs=read-write) reaches the primary, "
              f"port {primary_port}")
        check(one(self.h1, f"SELECT pglocks_acquire('{self.keys[0]}')") is True
              and one(self.h2, f"SELECT pglocks_acquire('{self.keys[2]}', shared => true)") is True,
              f"{tag}: holders take {self.keys[0]} and {self.keys[2]} (shared) on the primary")
        self.token = one(self.h2, f"SELECT pglocks_acquire_token('{self.keys[1]}')")
        check(self.token is not None, f"{tag}: a holder takes {self.keys[1]} with token {show_token(self.token)}")
        self.waiter = Call(dsn, f"SELECT pglocks_acquire('{self.keys[0]}')")
        self.waiter.start()
        # The command writes a row, then sleeps: it is in progress at the failover.
        command = (f"WITH w AS (INSERT INTO ha_log VALUES ('{tag}') RETURNING 1) "
                   "SELECT pg_sleep(60) FROM w")
        self.with_lock = Call(dsn, "SELECT pglocks_with_lock(%s, %s)", (self.keys[3], command))
        self.with_lock.start()
        probe = connect(dsn)
        wait_for("the waiter to queue and pglocks_with_lock to hold", lambda: one(
            probe, "SELECT count(*) FROM pglocks_locks WHERE key = %s AND NOT granted AND pid = %s",
            (self.keys[0], self.waiter.pid)) == 1 and one(
            probe, "SELECT count(*) FROM pglocks_locks WHERE key = %s AND granted AND pid = %s",
            (self.keys[3], self.with_lock.pid)) == 1 and one(
            probe, "SELECT backend_xid IS NOT NULL AND wait_event = 'PgSleep' FROM pg_stat_activity "
            "WHERE pid = %s", (self.with_lock.pid,)), 10)
        rows = one(probe, "SELECT count(*) FROM pglocks_locks WHERE key = ANY(%s)", (self.keys,))
        check(rows == 5, f"{tag}: pglocks_locks on the primary shows the four holds and the waiter",
              f"{rows} rows")
        probe.close()

    def check_gone(self):
        lost = [connection_is_lost(c) for c in (self.h1, self.h2)]
        check(all(lost), f"{self.tag}: the holders lost their connections to the old primary", lost[0])
        for call, name in ((self.waiter, "the waiter"), (self.with_lock, "pglocks_with_lock")):
            call.join(30)
            check(not call.is_alive() and call.result is not None and call.result[0] == "error",
                  f"{self.tag}: {name} on the old primary gets an error, not a lock", call.result)

    def check_fresh_primary(self, conn, name):
        locks = one(conn, "SELECT count(*) FROM pglocks_locks WHERE key = ANY(%s)", (self.keys,))
        stats = one(conn, "SELECT count(*) FROM pglocks_stats WHERE key = ANY(%s)", (self.keys,))
        rows = one(conn, "SELECT count(*) FROM ha_log WHERE tag = %s", (self.tag,))
        check(rows == 0, f"{self.tag}: the write of the interrupted pglocks_with_lock command is not on "
              f"the new primary {name}", f"{rows} rows")
        check(locks == 0 and stats == 0,
              f"{self.tag}: pglocks_locks and pglocks_stats on the new primary {name} have no row for "
              "the old holds", f"locks {locks}, stats {stats}")

    def retake(self, dsn, primary_port, tokens_before):
        a = connect(dsn)
        b = connect(dsn)
        check(port_of(a) == primary_port, f"{self.tag}: clients reconnect to the new primary, port {primary_port}")
        check(one(a, f"SELECT pglocks_acquire('{self.keys[0]}', wait => false)") is True
              and one(a, f"SELECT pglocks_acquire('{self.keys[2]}', wait => false)") is True
              and one(b, f"SELECT pglocks_with_lock('{self.keys[3]}', 'SELECT 1')") is True,
              f"{self.tag}: the reconnected clients get the locks the old holders had")
        token = one(b, f"SELECT pglocks_acquire_token('{self.keys[1]}', wait => false)")
        check(token is not None and token > max(tokens_before),
              f"{self.tag}: the new holder of {self.keys[1]} gets a token above every earlier one",
              f"{show_token(token)} > {show_token(max(tokens_before))}")
        stats = one(a, "SELECT sum(acquisitions) FROM pglocks_stats WHERE key = ANY(%s)", (self.keys,))
        check(stats == 4, f"{self.tag}: pglocks_stats on the new primary counts the new holds only",
              f"{stats} acquisitions")
        a.close()
        b.close()
        return token


def draw_after(dsn, key, n):
    conn = connect(dsn)
    tokens = [one(conn, "SELECT pglocks_acquire_token(%s, scope => 'transaction')", (key,)) for _ in range(n)]
    conn.close()
    return tokens


def wait_read_write(cluster, dsn, name, limit):
    def ready():
        conn = connect(dsn)
        try:
            return port_of(conn) == cluster.nodes[name]["port"]
        finally:
            conn.close()
    wait_for(f"{name} to accept writes", ready, limit)
    return time.monotonic()


REFUSALS = ("following a different leader because i am not the healthiest node",
            "demoting self because i am not the healthiest node")


def former_primary_alone(cluster, dsn, issued, expect_promotion, observe=2 * TTL):
    """node2, the primary, which issued the tokens `issued`, is killed; node1, a primary before
    it that never followed its timeline, is started again alone. Returns whether Patroni
    promoted node1; if it did, node1's tokens must exceed node2's. Watches for `observe`
    seconds after the kill (node2's leader key expires within TTL of it); a node1 that was
    not promoted must have said so in its log: Patroni raced for the free leader key and
    declined it."""
    killed = cluster.kill_node("node2")
    say(f"node2 killed (SIGKILL) at {wallclock(killed)} after issuing tokens up to "
        f"{show_token(max(issued))}; node1 starts again, alone, and is watched for {observe} s")
    log_start = cluster.log_size("node1")
    cluster.start_patroni("node1")
    promoted = None
    while time.monotonic() < killed + observe and promoted is None:
        try:
            conn = connect(dsn)
            if port_of(conn) == cluster.nodes["node1"]["port"]:
                promoted = time.monotonic()
            conn.close()
        except psycopg2.Error:
            time.sleep(0.2)
    if promoted is None:
        wait_for("node1 to run as a replica", lambda: cluster.role("node1") == ("replica", "running"), 30)
        status, body = cluster.http(f"http://127.0.0.1:{cluster.nodes['node1']['rest']}/cluster")
        roles = {m["name"]: m["role"] for m in json.loads(body).get("members", [])}
        check("leader" not in roles.values() and "master" not in roles.values(),
              "node2's leader key has expired: the cluster has no leader", str(roles))
        conn = cluster.connect("node1")
        in_recovery = one(conn, "SELECT pg_is_in_recovery()")
        conn.close()
        # Patroni logs this at each cycle in which the leader key is free and it will not
        # take it (ha.py, process_unhealthy_cluster).
        refusals = [line for line in cluster.log_text("node1", log_start).split("\n")
                    if any(r in line for r in REFUSALS)]
        check(not expect_promotion and in_recovery is True and len(refusals) > 0,
              f"Patroni does not promote node1, which missed node2's timeline, and says why "
              f"({time.monotonic() - killed:.0f} s after the kill, {len(refusals)} refusals logged)",
              refusals[-1].strip() if refusals else "no refusal in node1's log")
        # Patroni logs that refusal for every reason a node is not the healthiest; the reason
        # here must be synchronous_mode: the sync key names node2 as the leader and node1 as no
        # synchronous standby of it, and node1 never found itself too far behind.
        sync = cluster.dcs_sync()
        lagging = [line for line in cluster.log_text("node1", log_start).split("\n")
                   if "exceeds maximum replication lag" in line]
        check(sync is not None and sync.get("leader") == "node2"
              and "node1" not in str(sync.get("sync_standby") or "").split(",") and not lagging,
              "the refusal is synchronous_mode's: the sync key names node2 the leader and node1 no "
              "synchronous standby of it, and node1 logged no replication lag",
              f"sync key {sync}; {len(lagging)} lag lines")
        return False
    tokens = draw_after(dsn, "fence", 10)
    say(f"node1 promoted {promoted - killed:.1f} s after node2's kill; its first token {show_token(tokens[0])}")
    check(min(tokens) > max(issued), "every token of the promoted node1 exceeds every token node2 issued",
          f"first of node1 {show_token(tokens[0])}, last of node2 {show_token(max(issued))}, "
          f"{len(set(tokens) & set(issued))} of node1's first {len(tokens)} tokens issued by node2 before")
    return True


def start_cluster(cluster, synchronous):
    cluster.start_etcd()
    # node1 starts first and bootstraps the cluster; node2 makes itself a replica of it.
    cluster.start_patroni("node1")
    wait_for("node1 to bootstrap", lambda: cluster.role("node1") in (("master", "running"), ("primary", "running")), 60)
    cluster.start_patroni("node2")
    cluster.wait_primary_and_replica("node1", "node2", 60)
    conn = cluster.connect("node1")
    one(conn, "CREATE EXTENSION pglocks")
    one(conn, "CREATE TABLE ha_log (tag text)")
    version = one(conn, "SELECT extversion FROM pg_extension WHERE extname = 'pglocks'")
    say(f"cluster up: node1 primary on port {cluster.nodes['node1']['port']}, node2 replica on port "
        f"{cluster.nodes['node2']['port']}, pglocks {version}, {one(conn, 'SELECT version()').split(',')[0]}")
    check(one(conn, "SHOW shared_preload_libraries") == "pglocks", "pglocks is preloaded by Patroni's configuration")
    if not synchronous:
        check(one(conn, "SELECT string_agg(sync_state, ',') FROM pg_stat_replication") == "async",
              "node2 replicates asynchronously")
    conn.close()
    rest = {(n, path): cluster.http(f"http://127.0.0.1:{cluster.nodes[n]['rest']}/{path}")[0]
            for n in ("node1", "node2") for path in ("primary", "replica")}
    check(rest == {("node1", "primary"): 200, ("node1", "replica"): 503,
                   ("node2", "primary"): 503, ("node2", "replica"): 200},
          "Patroni's REST API answers GET /primary with 200 on the primary only, GET /replica on the replica only",
          str(rest))
    replica = cluster.connect("node2")
    wait_for("the extension on the replica", lambda: one(
        replica, "SELECT count(*) FROM pg_extension WHERE extname = 'pglocks'") == 1, 20)
    replica.close()
    if synchronous:
        set_synchronous_mode(cluster, "node1")

    # The replica comes first in the string: libpq skips it for the read-write primary.
    dsn = cluster.multi_dsn(["node2", "node1"])
    say(f"clients connect with: {dsn}")
    return dsn


def set_synchronous_mode(cluster, primary_name):
    replica_name = "node2" if primary_name == "node1" else "node1"
    out = subprocess.run(["patronictl", "-c", cluster.nodes[primary_name]["yml"], "edit-config", "--force",
                          "--quiet", "--set", "synchronous_mode=true"],
                         capture_output=True, text=True, env=cluster.env, timeout=60)
    check(out.returncode == 0, "patronictl edit-config sets synchronous_mode", (out.stdout + out.stderr).strip())
    primary = cluster.connect(primary_name)
    wait_for(f"{replica_name} to become a synchronous standby", lambda: one(
        primary, "SELECT string_agg(sync_state, ',') FROM pg_stat_replication") == "sync", 30)
    check(True, f"{replica_name} replicates synchronously",
          "synchronous_standby_names = " + one(primary, "SHOW synchronous_standby_names"))
    primary.close()


def double_failure(cluster, synchronous):
    """By hand (patroni.sh --double-failure [--synchronous]): node1 is killed, node2 promoted
    and issues tokens, node2 is killed, node1 comes back alone."""
    dsn = start_cluster(cluster, synchronous)
    loop = TokenLoop(dsn, "fence")
    loop.start()
    wait_for("tokens to flow", lambda: len(loop.tokens) >= 500, 20)
    killed = cluster.kill_node("node1")
    loop.join(10)
    say(f"node1 killed at {wallclock(killed)}; its last token {show_token(loop.tokens[-1])}")
    wait_read_write(cluster, dsn, "node2", FAILOVER_LIMIT)
    issued = draw_after(dsn, "fence", 5000)
    say(f"node2 promoted; it issued tokens {show_token(issued[0])} to {show_token(issued[-1])}")
    former_primary_alone(cluster, dsn, issued, expect_promotion=not synchronous)
    say("patroni: all checks passed")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--work", required=True)
    ap.add_argument("--bindir", required=True)
    ap.add_argument("--double-failure", action="store_true")
    ap.add_argument("--synchronous", action="store_true")
    args = ap.parse_args()

    cluster = Cluster(args.work, args.bindir)
    if args.double_failure:
        return double_failure(cluster, args.synchronous)
    dsn = start_cluster(cluster, False)

    # 1. Locks and tokens on the primary; the replica refuses every acquire form.
    holders = Holders(dsn, "failover", cluster.nodes["node1"]["port"])
    check_replica_refuses(cluster, "node2", "failover:orders:1")

    # 2. Hard failover, tokens drawn right up to the kill. The primary's WAL sender is
    #    stopped first (SIGSTOP), as when the network to the replica fails, so the tokens of
    #    the last moment are certainly not on the replica when it is promoted.
    loop = TokenLoop(dsn, "fence")
    loop.start()
    wait_for("tokens to flow", lambda: len(loop.tokens) >= 200, 20)
    old = cluster.connect("node1")
    sender = one(old, "SELECT pid FROM pg_stat_replication")
    os.kill(sender, signal.SIGSTOP)
    stopped_at = len(loop.tokens)
    before_stop = loop.tokens[-1]
    wait_for("tokens drawn with the WAL sender stopped", lambda: len(loop.tokens) >= stopped_at + 1000, 20)
    old.close()
    killed = cluster.kill_node("node1")
    os.kill(sender, signal.SIGKILL)  # an orphan now; a crashed machine would take it too
    loop.join(10)
    check(not loop.is_alive() and isinstance(loop.error, psycopg2.OperationalError),
          "the token loop's connection to the old primary fails at the kill",
          str(loop.error).strip().split("\n")[0])
    before = loop.tokens
    say(f"hard failover: node1's Patroni and postmaster killed (SIGKILL) at {wallclock(killed)}, "
        f"after {len(before)} tokens, {len(before) - stopped_at} of them drawn after the WAL sender stopped")
    check(before == sorted(before) and len(set(before)) == len(before), "tokens on the old primary increase")
    holders.check_gone()

    promoted = wait_read_write(cluster, dsn, "node2", FAILOVER_LIMIT)
    failover_time = promoted - killed
    new = cluster.connect("node2")
    holders.check_fresh_primary(new, "node2")
    total_stats = one(new, "SELECT count(*) FROM pglocks_stats")
    total_locks = one(new, "SELECT count(*) FROM pglocks_locks")
    check(total_stats == 0 and total_locks == 0, "pglocks_stats and pglocks_locks on node2 start empty",
          f"stats {total_stats}, locks {total_locks}")
    new.close()
    after = draw_after(dsn, "fence", 200)
    check(after == sorted(after), "tokens on the new primary increase")
    check(min(after) > max(before),
          f"every token after the failover ({len(after)}) exceeds every token before it ({len(before)})",
          f"first after {after[0]} > last before {before[-1]}")
    _, seq_last = split_token(before[-1])
    _, seq_first = split_token(after[0])
    check(seq_first <= seq_last,
          "the promoted replica had not received the last tokens' sequence records: its sequence went "
          "back, and the timeline alone keeps tokens increasing", f"sequence {seq_last} -> {seq_first}")
    holders.retake(dsn, cluster.nodes["node2"]["port"], before + after)
    say(f"FAILOVER: node2 accepted writes {failover_time:.1f} s after the kill")
    say(f"  last token before the WAL sender stopped: {show_token(before_stop)}")
    say(f"  last token before the kill:  {show_token(before[-1])}")
    say(f"  first token after failover: {show_token(after[0])}")

    # The old primary comes back, rewinds, and follows node2.
    cluster.start_patroni("node1")
    cluster.wait_primary_and_replica("node2", "node1", 90)
    rewound = "running pg_rewind from" in cluster.log_text("node1")
    check(rewound, "node1 rejoins as a replica of node2 with pg_rewind")
    check_replica_refuses(cluster, "node1", "failover:orders:1")

    # 3. Planned switchover back to node1.
    holders = Holders(dsn, "switchover", cluster.nodes["node2"]["port"])
    loop = TokenLoop(dsn, "fence")
    loop.start()
    wait_for("tokens to flow", lambda: len(loop.tokens) >= 200, 20)
    started = time.monotonic()
    out = subprocess.run(["patronictl", "-c", cluster.nodes["node2"]["yml"], "switchover",
                          "--leader", "node2", "--candidate", "node1", "--force"],
                         capture_output=True, text=True, env=cluster.env, timeout=60)
    check(out.returncode == 0, "patronictl switchover from node2 to node1 succeeds",
          (out.stdout + out.stderr).strip().split("\n")[-1])
    loop.join(30)
    check(not loop.is_alive() and isinstance(loop.error, psycopg2.Error),
          "the token loop's connection to the old primary ends at the switchover",
          str(loop.error).strip().split("\n")[0])
    before_sw = loop.tokens
    holders.check_gone()
    switched = wait_read_write(cluster, dsn, "node1", 60)
    new = cluster.connect("node1")
    holders.check_fresh_primary(new, "node1")
    new.close()
    after_sw = draw_after(dsn, "fence", 200)
    check(min(after_sw) > max(before_sw) and min(after_sw) > max(after),
          f"every token after the switchover ({len(after_sw)}) exceeds every token before it ({len(before_sw)})",
          f"first after {after_sw[0]} > last before {before_sw[-1]}")
    holders.retake(dsn, cluster.nodes["node1"]["port"], before_sw + after_sw)
    cluster.wait_primary_and_replica("node1", "node2", 90)
    rewound = "running pg_rewind from" in cluster.log_text("node2")
    say(f"node2 rejoins as a replica of node1 ({'with' if rewound else 'without'} pg_rewind)")
    check_replica_refuses(cluster, "node2", "switchover:orders:1")
    say(f"SWITCHOVER: node1 accepted writes {switched - started:.1f} s after patronictl switchover started")
    say(f"  last token before the switchover: {show_token(before_sw[-1])}")
    say(f"  first token after the switchover: {show_token(after_sw[0])}")

    # 4. synchronous_mode: Patroni makes node2 a synchronous standby; then a hard failover
    #    with tokens drawn up to the kill, as in 2 but with the WAL sender running.
    set_synchronous_mode(cluster, "node1")
    loop = TokenLoop(dsn, "fence")
    loop.start()
    wait_for("tokens to flow", lambda: len(loop.tokens) >= 1000, 30)
    killed = cluster.kill_node("node1")
    loop.join(10)
    check(not loop.is_alive() and isinstance(loop.error, psycopg2.OperationalError),
          "synchronous_mode: the token loop's connection to the old primary fails at the kill")
    before_sync = loop.tokens
    promoted = wait_read_write(cluster, dsn, "node2", FAILOVER_LIMIT)
    after_sync = draw_after(dsn, "fence", 200)
    check(min(after_sync) > max(before_sync) and min(after_sync) > max(after_sw),
          f"synchronous_mode: every token after the failover ({len(after_sync)}) exceeds every token "
          f"before it ({len(before_sync)})", f"first after {after_sync[0]} > last before {before_sync[-1]}")
    _, seq_last = split_token(before_sync[-1])
    _, seq_first = split_token(after_sync[0])
    check(seq_first > seq_last,
          "synchronous_mode: the promoted standby's sequence is past every token handed out by the "
          "one session drawing them, each in an autocommit statement", f"sequence {seq_last} -> {seq_first}")
    say(f"FAILOVER in synchronous_mode: node2 accepted writes {promoted - killed:.1f} s after the kill "
        f"at {wallclock(killed)}")
    say(f"  last token before the kill:  {show_token(before_sync[-1])}")
    say(f"  first token after failover: {show_token(after_sync[0])}")

    # 5. Then node2 dies too, and node1, which never followed node2's timeline, comes back
    #    alone. Promoted, it would take timeline 3 again and issue node2's tokens a second
    #    time; in synchronous_mode Patroni promotes only node2's synchronous standby, which
    #    node1 never became.
    former_primary_alone(cluster, dsn, after_sync + draw_after(dsn, "fence", 2000), expect_promotion=False)
    say("patroni: all checks passed")


if __name__ == "__main__":
    try:
        main()
    except Failed as e:
        say(f"FAIL: {e}")
        sys.exit(1)
