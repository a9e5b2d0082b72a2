"""Live worker processes (:class:`ProcessSet`) and the jobs they are running (:class:`WorkSet`),
as their heartbeats last wrote them; and the remote commands a process obeys.

    for process in ProcessSet():
        print(process.identity, process.busy, "/", process.concurrency)
        process.quiet()                  # stops fetching within one heartbeat
    for identity, thread, work in WorkSet():
        print(identity, thread, work.queue, work.job.display_class, work.run_at)

Commands are LPUSHed onto ``<identity>-signals``; the process's heartbeat takes them (RPOP) on
its next beat, so they arrive within one ``heartbeat_interval``.
"""

from __future__ import annotations

import datetime as _dt
import json
from collections.abc import Iterator
from typing import Any

import redis

from kiqpy.api.base import ApiObject, text, to_datetime
from kiqpy.api.jobs import JobRecord
from kiqpy.config import Config
from kiqpy.payload import epoch_seconds

# The heartbeat hash as Sidekiq 6.x to 8.x and kiqpy write it; Sidekiq 8.1 keeps concurrency
# here only (no longer in info).
_FIELDS = ("info", "busy", "beat", "quiet", "rss", "rtt_us", "concurrency")
# A command nobody takes (the process died) should not wait for a new process of the same
# name forever; identities carry a nonce, so this is tidiness, not correctness.
SIGNAL_TTL = 60


class Process:
    """One live process: its identity and info (hostname, pid, tag, queues, weights,
    concurrency, started_at, version), and its last heartbeat (busy, beat, is_quiet, rss in
    KiB, rtt_us: the round trip of that heartbeat's pipeline)."""

    def __init__(self, identity: str, values: list[Any], parent: ApiObject) -> None:
        self.identity = identity
        self._parent = parent
        raw = dict(zip(_FIELDS, values, strict=True))
        self.info: dict[str, Any] = _json_map(raw["info"])
        self.busy = _int(raw["busy"])
        self.beat = to_datetime(_float(raw["beat"]))
        self.is_quiet = text(raw["quiet"] or b"") == "true"
        self.rss = _int(raw["rss"])
        self.rtt_us = _int(raw["rtt_us"])
        self._concurrency = raw["concurrency"]

    def __repr__(self) -> str:
        return f"<Process {self.identity} busy={self.busy}/{self.concurrency}>"

    @property
    def hostname(self) -> str:
        return str(self.info.get("hostname", ""))

    @property
    def pid(self) -> int:
        return _int(self.info.get("pid"))

    @property
    def tag(self) -> str:
        return str(self.info.get("tag") or "")

    @property
    def queues(self) -> list[str]:
        if self._capsules():
            # As Sidekiq 8's reader: the capsules, when present, say which queues are read.
            return list(self.weights)
        queues = self.info.get("queues")
        return [str(q) for q in queues] if isinstance(queues, list) else []

    @property
    def weights(self) -> dict[str, int]:
        """Queue name -> weight (0 everywhere for strict order)."""
        capsules = self._capsules()
        weights = [c.get("weights") for c in capsules] if capsules else self.info.get("weights")
        merged: dict[str, int] = {}
        for part in weights if isinstance(weights, list) else [weights]:
            if isinstance(part, dict):
                merged.update({str(k): _int(v) for k, v in part.items()})
        return merged

    def _capsules(self) -> list[dict[str, Any]]:
        """Sidekiq 8's ``capsules`` (name -> concurrency, mode, weights), as a list."""
        capsules = self.info.get("capsules")
        if not isinstance(capsules, dict):
            return []
        return [c for c in capsules.values() if isinstance(c, dict)]

    @property
    def concurrency(self) -> int:
        """Threads: the hash's top-level field (Sidekiq 8.1, kiqpy), else ``info``'s."""
        if self._concurrency is not None:
            return _int(self._concurrency)
        return _int(self.info.get("concurrency"))

    @property
    def async_concurrency(self) -> int:
        """Slots for ``async def perform`` jobs on the process's event loop (kiqpy's own
        field; 0 for a Sidekiq process). Busy counts jobs of both kinds."""
        return _int(self.info.get("async_concurrency"))

    @property
    def started_at(self) -> _dt.datetime | None:
        return to_datetime(_float(self.info.get("started_at")))

    @property
    def version(self) -> str:
        return str(self.info.get("version") or "")

    def to_dict(self) -> dict[str, Any]:
        """Everything above as JSON-ready values (times as epoch seconds)."""
        return {
            "identity": self.identity, "hostname": self.hostname, "pid": self.pid,
            "tag": self.tag, "queues": self.queues, "weights": self.weights,
            "concurrency": self.concurrency, "async_concurrency": self.async_concurrency,
            "busy": self.busy, "quiet": self.is_quiet,
            "started_at": _epoch(self.started_at), "beat": _epoch(self.beat),
            "rss": self.rss, "rtt_us": self.rtt_us, "version": self.version,
        }

    # -- remote commands ---------------------------------------------------------------------
    # Sidekiq's signal names: a Ruby Sidekiq process passes the command to Process.kill (so
    # "quiet" would be "unsupported signal 'SIGquiet'"), and kiqpy's heartbeat takes both
    # kinds (kiqpy/server/heartbeat.py SIGNALS), so these reach every process.
    def quiet(self) -> None:
        """Ask the process to stop fetching new jobs (it finishes those it has)."""
        self._signal("TSTP")

    def stop(self) -> None:
        """Ask the process to shut down as on TERM: finish or requeue its jobs, exit 0."""
        self._signal("TERM")

    def dump_threads(self) -> None:
        """Ask the process to log the stack of every thread (as on TTIN)."""
        self._signal("TTIN")

    def _signal(self, command: str) -> None:
        key = self._parent.keys.signals(self.identity)
        pipe = self._parent.redis.pipeline(transaction=True)
        pipe.lpush(key, command)
        pipe.expire(key, SIGNAL_TTL)
        with self._parent.io():
            pipe.execute()


class ProcessSet(ApiObject):
    """The live processes, read when built (``refresh()`` reads again), sorted by identity.

    Members of ``processes`` whose heartbeat hash has expired are dead: they are left out and,
    with ``prune`` (the default), removed from the set. Their in-flight jobs are not touched
    here: orphan recovery finds them through ``kiqpy:inflight-owners``, which this never edits.
    """

    def __init__(self, config: Config | None = None, redis_client: redis.Redis | None = None,
                 prune: bool = True, with_work: bool = False) -> None:
        super().__init__(config, redis_client)
        self.prune, self.with_work = prune, with_work
        self.processes: list[Process] = []
        self.work: dict[str, dict[Any, Any]] = {}
        self.refresh()

    def refresh(self) -> None:
        """Read the processes again (and, ``with_work``, their running jobs in the same
        transaction: a heartbeat writes both at once, so :meth:`WorkSet.of` then agrees with
        each process's ``busy``)."""
        with self.io():
            identities = sorted(text(m) for m in self.redis.smembers(self.keys.processes))
            pipe = self.redis.pipeline(transaction=self.with_work)
            for identity in identities:
                pipe.hmget(self.keys.process(identity), list(_FIELDS))
                if self.with_work:
                    # Sidekiq 7/8 and kiqpy write `:work`, Sidekiq 6 (and kiqpy set to
                    # sidekiq_version 6) `:workers`.
                    pipe.hgetall(self.keys.work(identity))
                    pipe.hgetall(self.keys.workers(identity))
            results = pipe.execute()
            step = 3 if self.with_work else 1
            rows = dict(zip(identities, results[::step], strict=True))
            if self.with_work:
                self.work = {identity: {**work, **workers} for identity, work, workers
                             in zip(identities, results[1::3], results[2::3], strict=True)}
            dead = [identity for identity, values in rows.items() if values[0] is None]
            if dead and self.prune:
                self.redis.srem(self.keys.processes, *dead)
        self.processes = [Process(identity, values, self)
                          for identity, values in rows.items() if values[0] is not None]

    def __iter__(self) -> Iterator[Process]:
        return iter(self.processes)

    def __len__(self) -> int:
        return len(self.processes)

    @property
    def size(self) -> int:
        return len(self.processes)

    def find(self, identity: str) -> Process | None:
        """The live process with this identity, or None."""
        return next((p for p in self.processes if p.identity == identity), None)

    @property
    def total_concurrency(self) -> int:
        return sum(p.concurrency for p in self.processes)

    @property
    def total_rss(self) -> int:
        """Resident memory of all processes, KiB."""
        return sum(p.rss for p in self.processes)

    @property
    def total_busy(self) -> int:
        return sum(p.busy for p in self.processes)

    def pending_signals(self) -> dict[str, list[str]]:
        """Identity -> the commands (``quiet``, ``stop``, ``dump``) sent to it that it has
        not taken yet (a process takes them at its next heartbeat), in one round trip. Lets a
        page say "quiet requested" at once instead of "running" for up to one beat."""
        pipe = self.redis.pipeline(transaction=False)
        for process in self.processes:
            pipe.lrange(self.keys.signals(process.identity), 0, 9)
        with self.io():
            replies = pipe.execute(raise_on_error=False)
        # Sidekiq's names (what Process.quiet/stop/dump_threads send) read as kiqpy's.
        names = {"TSTP": "quiet", "TERM": "stop", "TTIN": "dump"}
        return {p.identity: [names.get(text(c), text(c)) for c in reply]
                if isinstance(reply, list) else []
                for p, reply in zip(self.processes, replies, strict=True)}

    def quiet_all(self) -> int:
        """:meth:`Process.quiet` every process; returns how many were asked."""
        for process in self.processes:
            process.quiet()
        return len(self.processes)

    def stop_all(self) -> int:
        """:meth:`Process.stop` every process; returns how many were asked."""
        for process in self.processes:
            process.stop()
        return len(self.processes)


class Work:
    """One running job: the ``process`` identity, the ``thread`` running it, its ``queue``,
    when it started (``run_at``), the job map (``payload``) and the same as a
    :class:`JobRecord` (``job``)."""

    def __init__(self, process: str, thread: str, raw: bytes) -> None:
        self.process, self.thread = process, thread
        data = _json_map(raw)
        self.queue = str(data.get("queue") or "")
        # Whole seconds from Sidekiq, float seconds from kiqpy (ms accepted, too).
        self.run_at = to_datetime(epoch_seconds(data.get("run_at")))
        payload = data.get("payload")
        if isinstance(payload, str):
            # Sidekiq stores the job as it came from the queue: a JSON string.
            payload = _json_map(payload.encode())
        self.payload: dict[str, Any] = payload if isinstance(payload, dict) else {}
        self.job = JobRecord(json.dumps(payload).encode(), self.queue or None)

    def __repr__(self) -> str:
        return f"<Work {self.process} {self.thread} {self.job.display_class}>"


class WorkSet(ApiObject):
    """Every job running right now, as ``(process identity, thread name, Work)``, read when
    built (``refresh()`` reads again). Only live processes count."""

    def __init__(self, config: Config | None = None,
                 redis_client: redis.Redis | None = None, read: bool = True) -> None:
        super().__init__(config, redis_client)
        self.entries: list[tuple[str, str, Work]] = []
        if read:
            self.refresh()

    @classmethod
    def of(cls, processes: ProcessSet) -> WorkSet:
        """The running jobs read with ``processes`` (built with ``with_work=True``), in the
        same transaction, so they agree with each process's ``busy`` count. No I/O."""
        if not processes.with_work:
            raise ValueError("WorkSet.of needs a ProcessSet(with_work=True)")
        work = cls(processes.config, processes.redis, read=False)
        work.entries = [(p.identity, text(t), Work(p.identity, text(t), raw))
                        for p in processes
                        for t, raw in sorted(processes.work.get(p.identity, {}).items())]
        return work

    def refresh(self) -> None:
        """Read the running jobs again (with the live processes, in one transaction)."""
        processes = ProcessSet(self.config, self.redis, prune=False, with_work=True)
        self.entries = WorkSet.of(processes).entries

    def __iter__(self) -> Iterator[tuple[str, str, Work]]:
        return iter(self.entries)

    def __len__(self) -> int:
        return len(self.entries)

    @property
    def size(self) -> int:
        return len(self.entries)

    def find(self, jid: str) -> Work | None:
        """The running job with this jid, or None."""
        return next((w for _, _, w in self.entries if w.job.jid == jid), None)


def _json_map(raw: Any) -> dict[str, Any]:
    try:
        value = json.loads(raw) if raw else {}
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}


def _int(value: Any) -> int:
    try:
        return int(value) if value is not None else 0
    except (TypeError, ValueError):
        return 0


def _float(value: Any) -> float | None:
    try:
        return float(value) if value is not None else None
    except (TypeError, ValueError):
        return None


def _epoch(moment: _dt.datetime | None) -> float | None:
    return None if moment is None else moment.timestamp()
