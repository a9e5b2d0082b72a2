"""Redis topologies for the tests: a master with a replica watched by three Sentinels, on
private loopback ports in a temporary directory, built from the same ``redis-server`` binary.

    with SentinelTopology() as topo:
        topo.url            # redis+sentinel://127.0.0.1:<s1>,...:<s3>/kiqpy-test/0
        topo.master_port()  # where the Sentinels say the master is now
        topo.failover()     # SENTINEL FAILOVER, waits for the new master
"""

from __future__ import annotations

import os
import random
import shutil
import signal
import socket
import subprocess
import tempfile
import time

import redis

from tests.redis_server import RedisServer, free_port

SERVICE = "kiqpy-test"


class SentinelTopology:
    """A master, one replica and three Sentinels (quorum 2) that fail over within seconds."""

    def __init__(self, down_after_ms: int = 1000) -> None:
        self.dir = tempfile.mkdtemp(prefix="kiqpy-sentinel-")
        self.down_after_ms = down_after_ms
        self.master = RedisServer()
        self.replica = RedisServer()
        self.sentinel_ports = [free_port() for _ in range(3)]
        self.sentinels: list[subprocess.Popen[bytes]] = []

    @property
    def url(self) -> str:
        hosts = ",".join(f"127.0.0.1:{port}" for port in self.sentinel_ports)
        return f"redis+sentinel://{hosts}/{SERVICE}/0"

    def start(self) -> SentinelTopology:
        self.master.start()
        self.replica.start()
        self.servers = {self.master.port: self.master, self.replica.port: self.replica}
        replica = redis.Redis(port=self.replica.port)
        replica.replicaof("127.0.0.1", self.master.port)
        self._wait(lambda: replica.info("replication").get("master_link_status") == "up",
                   "the replica to sync")
        replica.close()
        for port in self.sentinel_ports:
            conf = os.path.join(self.dir, f"sentinel-{port}.conf")
            with open(conf, "w") as out:
                out.write(
                    f"port {port}\nbind 127.0.0.1\ndir {self.dir}\n"
                    f"sentinel monitor {SERVICE} 127.0.0.1 {self.master.port} 2\n"
                    f"sentinel down-after-milliseconds {SERVICE} {self.down_after_ms}\n"
                    f"sentinel failover-timeout {SERVICE} 5000\n"
                    f"sentinel parallel-syncs {SERVICE} 1\n")
            self.sentinels.append(subprocess.Popen(
                [shutil.which("redis-server") or "redis-server", conf, "--sentinel",
                 "--loglevel", "warning"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        self._wait(lambda: all(self._knows_replica(port) for port in self.sentinel_ports),
                   "every Sentinel to see the master and its replica")
        return self

    def __enter__(self) -> SentinelTopology:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.cleanup()

    def _knows_replica(self, port: int) -> bool:
        try:
            client = redis.Redis(port=port, socket_timeout=1)
            try:
                master = client.sentinel_master(SERVICE)
                return bool(master.get("num-slaves")) and int(master.get("num-other-sentinels",
                                                                         0)) >= 2
            finally:
                client.close()
        except redis.RedisError:
            return False

    def master_port(self) -> int:
        """The master's port as the first Sentinel that answers reports it."""
        for port in self.sentinel_ports:
            try:
                client = redis.Redis(port=port, socket_timeout=1)
                try:
                    _, master = client.sentinel_get_master_addr_by_name(SERVICE)
                    return int(master)
                finally:
                    client.close()
            except redis.RedisError:
                continue
        raise RuntimeError("no Sentinel answers")

    def master_client(self) -> redis.Redis:
        return redis.Redis(port=self.master_port())

    def failover(self, kill: bool = False, timeout: float = 30.0) -> int:
        """Make the replica the master: SENTINEL FAILOVER, or kill -9 of the master. Returns
        the new master's port once every Sentinel reports it and it accepts writes."""
        old = self.master_port()
        if kill:
            process = self.servers[old].process
            assert process is not None
            os.kill(process.pid, signal.SIGKILL)
            process.wait()
        else:
            redis.Redis(port=self.sentinel_ports[0]).sentinel_failover(SERVICE)

        def switched() -> bool:
            ports = set()
            for port in self.sentinel_ports:
                try:
                    _, master = redis.Redis(port=port, socket_timeout=1) \
                        .sentinel_get_master_addr_by_name(SERVICE)
                    ports.add(int(master))
                except redis.RedisError:
                    return False
            if len(ports) != 1 or old in ports:
                return False
            role = redis.Redis(port=ports.pop(), socket_timeout=1).info("replication")["role"]
            return bool(role == "master")

        self._wait(switched, "the failover", timeout)
        return self.master_port()

    def restart_as_replica(self, port: int) -> None:
        """Start the (killed) server on ``port`` again, empty, as a replica of the master;
        waits until it has synced, so WAIT 1 can succeed again."""
        server = self.servers[port]
        server.stop()
        master = self.master_port()
        server.start(extra=["--replicaof", "127.0.0.1", str(master)])
        replica = redis.Redis(port=port)

        def synced() -> bool:
            info = replica.info("replication")
            if info.get("role") == "master":  # a Sentinel's view lagging: point it again
                replica.replicaof("127.0.0.1", self.master_port())
            return info.get("master_link_status") == "up"

        self._wait(synced, "the restarted replica to sync", timeout=90)
        replica.close()

    def _wait(self, predicate, what: str, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while not predicate():
            if time.monotonic() > deadline:
                raise RuntimeError(f"timed out waiting for {what}")
            time.sleep(0.05)

    def cleanup(self) -> None:
        for process in self.sentinels:
            if process.poll() is None:
                process.terminate()
                try:
                    process.wait(10)
                except subprocess.TimeoutExpired:
                    process.kill()
        self.master.cleanup()
        self.replica.cleanup()
        shutil.rmtree(self.dir, ignore_errors=True)


class ClusterTopology:
    """Three Redis Cluster masters (no replicas) on loopback ports, slots spread evenly by
    ``redis-cli --cluster create``.

        with ClusterTopology() as topo:
            topo.url        # redis+cluster://127.0.0.1:<p1>,127.0.0.1:<p2>,127.0.0.1:<p3>
            topo.ports      # the masters' ports
    """

    def __init__(self, masters: int = 3) -> None:
        self.servers = [RedisServer(port=_cluster_port()) for _ in range(masters)]

    @property
    def ports(self) -> list[int]:
        return [server.port for server in self.servers]

    @property
    def url(self) -> str:
        return "redis+cluster://" + ",".join(f"127.0.0.1:{port}" for port in self.ports)

    def start(self) -> ClusterTopology:
        for server in self.servers:
            # Each node keeps its own nodes.conf in its own directory.
            server.start(extra=["--cluster-enabled", "yes", "--cluster-node-timeout", "5000",
                                "--cluster-config-file", os.path.join(server.dir, "nodes.conf")])
        cli = shutil.which("redis-cli") or "redis-cli"
        subprocess.run([cli, "--cluster", "create",
                        *(f"127.0.0.1:{port}" for port in self.ports),
                        "--cluster-replicas", "0", "--cluster-yes"],
                       check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                       timeout=60)

        def ready() -> bool:
            for port in self.ports:
                client = redis.Redis(port=port, socket_timeout=1)
                try:
                    info = client.execute_command("CLUSTER", "INFO").decode()
                    if "cluster_state:ok" not in info:
                        return False
                finally:
                    client.close()
            return True

        deadline = time.monotonic() + 60
        while not ready():
            if time.monotonic() > deadline:
                raise RuntimeError("timed out waiting for the cluster to be ok")
            time.sleep(0.05)
        return self

    def flushall(self) -> None:
        for port in self.ports:
            client = redis.Redis(port=port)
            client.flushall()
            client.close()

    def __enter__(self) -> ClusterTopology:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.cleanup()

    def cleanup(self) -> None:
        for server in self.servers:
            server.cleanup()


def _cluster_port() -> int:
    """A free port that a cluster node can use: at most 55535, since the node also listens on
    its port + 10000 (the cluster bus), which must be free too."""
    for _ in range(200):
        port = random.randint(20000, 45000)
        if all(_free(p) for p in (port, port + 10000)):
            return port
    raise RuntimeError("no free port pair for a cluster node")


def _free(port: int) -> bool:
    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True
