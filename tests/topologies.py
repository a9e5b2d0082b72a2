"""Redis topologies for the tests: a master with a replica watched by three Sentinels, on
private loopback ports in a temporary directory, built from the same ``redis-server`` binary.

    with SentinelTopology() as topo:
        topo.url            # redis+sentinel://127.0.0.1:<s1>,...:<s3>/kiqpy-test/0
        topo.master_port()  # where the Sentinels say the master is now
        topo.failover()     # SENTINEL FAILOVER, waits for the new master
"""

from __future__ import annotations

import os
import shutil
import signal
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
