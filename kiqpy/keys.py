"""Every Redis key name kiqpy uses, in one place. No other module formats key strings.

The layout follows Sidekiq's, so dashboards and tools recognise it; docs/architecture.md lists
every key with who writes and reads it. An optional namespace prefixes every key as
``<namespace>:<key>``.

On Redis Cluster (``Keys(namespace, cluster=True)``) every Lua script and MULTI must touch keys of
one hash slot, so names carry hash tags, in two groups:

- the work of one queue, in the slot of ``{<queue>}``: its list ``queue:{<q>}`` and every
  process's in-flight list of it ``<identity>:inflight:{<q>}`` (push, fetch, ack, requeue and
  orphan recovery move jobs between these only), so queues spread over the shards;
- everything else kiqpy shares, in the slot of ``{kiqpy}``: ``{kiqpy}:queues``, the
  ``schedule``/``retry``/``dead`` sets, the ``outbox`` (below), processes and their heartbeat,
  work and signal keys, stats, metrics, periodic state, paused queues. This slot sees
  heartbeats, retries and scheduled moves, not per-job fetches and acks.

Rate limiters (``{<limiter>}``) are tagged in both layouts; unique locks, cancellation marks
and iteration cursors are single keys used alone. The single-node layout is byte-for-byte
Sidekiq's and does not change.

The outbox (Cluster only) is how a job crosses from the ``{kiqpy}`` slot to its queue's slot
(a due scheduled job or retry, "Add to queue" in the dashboard, a periodic tick): one script
moves it into the outbox (same slot, atomic), then it is pushed to its queue and removed from
the outbox. A mover that dies in between leaves it there, and any scheduler pushes outbox
entries older than a minute again: at least once, and exactly once when nobody dies.
"""

from __future__ import annotations

import datetime as _dt


class Keys:
    """Key names for one namespace. Cheap to build; attributes are precomputed strings."""

    __slots__ = (
        "batch_index",
        "batch_outbox",
        "cancellations",
        "cluster",
        "dead",
        "global_prefix",
        "inflight_owners",
        "limiter_prefix",
        "metrics_deploys",
        "outbox",
        "paused_queues",
        "periodic_entries",
        "periodic_leader",
        "prefix",
        "processes",
        "queue_prefix",
        "queues",
        "recovery_lock",
        "retry",
        "schedule",
    )

    def __init__(self, namespace: str = "", cluster: bool = False) -> None:
        self.prefix = f"{namespace}:" if namespace else ""
        self.cluster = cluster
        # Keys shared by all queues: on Cluster, all in the slot of {kiqpy} (see above).
        self.global_prefix = p = f"{self.prefix}{{kiqpy}}:" if cluster else self.prefix
        self.outbox = f"{p}kiqpy:outbox"
        self.queues = f"{p}queues"
        self.queue_prefix = f"{self.prefix}queue:"
        self.schedule = f"{p}schedule"
        self.retry = f"{p}retry"
        self.dead = f"{p}dead"
        self.processes = f"{p}processes"
        # Identities that may still own in-flight lists; kept apart from `processes` so that a
        # dashboard pruning dead processes can never orphan their jobs.
        self.inflight_owners = f"{p}kiqpy:inflight-owners"
        self.recovery_lock = f"{p}kiqpy:recovery-lock"
        # Periodic jobs: the definitions the ticker's leader publishes (name -> JSON), and the
        # leader's lease (its identity, with a TTL).
        # Cancelled jobs of the last day: JSON {jid, class, queue, where} scored by the time.
        self.cancellations = f"{p}kiqpy:cancellations"
        # Deploy marks for the metrics: a sorted set of JSON labels scored by their time.
        self.metrics_deploys = f"{p}kiqpy:metrics:deploys"
        self.periodic_entries = f"{p}kiqpy:periodic"
        self.periodic_leader = f"{p}kiqpy:periodic-leader"
        # Names of paused queues: workers skip them (fetch.lua reads it on every fetch).
        self.paused_queues = f"{p}kiqpy:paused-queues"
        # Rate limiters: every key of one limiter shares the hash tag {<name>}, so each of its
        # scripts touches one Redis Cluster slot (kiqpy/limiter.py).
        self.limiter_prefix = f"{self.prefix}kiqpy:limiter:"
        # Batches (kiqpy/client/batch.py): every bid with its creation time, for BatchSet and
        # the dashboard; and bids whose callback outbox may need the scheduler's sweep (scored
        # by when to look). Each is one key used alone (its own slot on Cluster), written apart
        # from a batch's keys.
        self.batch_index = f"{self.prefix}kiqpy:batches"
        self.batch_outbox = f"{self.prefix}kiqpy:batch-outbox"

    def queue(self, name: str) -> str:
        """The list holding jobs of queue ``name`` (on Cluster ``queue:{<name>}``)."""
        if self.cluster:
            return f"{self.queue_prefix}{{{name}}}"
        return f"{self.queue_prefix}{name}"

    def queue_name(self, key: str) -> str:
        """The queue name of a key made by :meth:`queue`."""
        name = key[len(self.queue_prefix) :]
        if self.cluster and name.startswith("{") and name.endswith("}"):
            return name[1:-1]
        return name

    def process(self, identity: str) -> str:
        """The heartbeat hash of a worker process."""
        return f"{self.global_prefix}{identity}"

    def work(self, identity: str) -> str:
        """The hash of jobs a process is running right now."""
        return f"{self.global_prefix}{identity}:work"

    def workers(self, identity: str) -> str:
        """Sidekiq 6's name for :meth:`work` (``Config.sidekiq_version = "6"`` writes here)."""
        return f"{self.global_prefix}{identity}:workers"

    def signals(self, identity: str) -> str:
        """The list of remote commands (TSTP, TERM, TTIN; or quiet, stop, dump) for a process."""
        return f"{self.global_prefix}{identity}-signals"

    def inflight(self, identity: str, queue: str) -> str:
        """Jobs of ``queue`` that process ``identity`` has taken and not finished (on Cluster
        in the queue's slot: ``<identity>:inflight:{<queue>}``)."""
        if self.cluster:
            return f"{self.prefix}{identity}:inflight:{{{queue}}}"
        return f"{self.prefix}{identity}:inflight:{queue}"

    def periodic(self, name: str) -> str:
        """The state hash of one periodic entry: ``last`` tick enqueued (epoch seconds),
        ``jid`` of its job, ``signature`` of its schedule, ``paused``."""
        return f"{self.global_prefix}kiqpy:periodic:{name}"

    def cancelled(self, jid: str) -> str:
        """Set while a job is cancelled (a day): a running job sees it as ``self.cancelled``,
        and the worker neither retries nor kills it when it stops."""
        return f"{self.prefix}kiqpy:cancelled:{jid}"

    def iteration(self, jid: str) -> str:
        """An iterable job's progress: ``cursor`` (JSON) and ``done`` (iterations so far)."""
        return f"{self.prefix}kiqpy:iteration:{jid}"

    def limiter(self, name: str, part: str) -> str:
        """One key of the limiter ``name``: ``slots`` (concurrent: a sorted set of holders
        scored by lease expiry, ms), ``bucket`` (a hash: interval index and count), ``window``
        (a sorted set of calls scored by time, ms), ``leaky`` (the next free time, ms) or
        ``meta`` (a hash: kind, size, interval, calls, over, wait_ms). The name sits in a hash
        tag, so all of a limiter's keys are in one cluster slot."""
        return f"{self.limiter_prefix}{{{name}}}:{part}"

    def limiter_name(self, key: str) -> str:
        """The limiter name of a key made by :meth:`limiter`."""
        return key[len(self.limiter_prefix) + 1 : key.rindex("}")]

    def limiter_pattern(self, part: str) -> str:
        """A SCAN ``MATCH`` pattern for the ``part`` key of every limiter."""
        return _glob_escape(self.limiter_prefix) + "\\{*\\}:" + _glob_escape(part)

    def batch(self, bid: str, part: str = "") -> str:
        """One key of batch ``bid``: ``""`` the meta hash (description, created_at, total,
        open, parent, ttl, callbacks, complete/success/death times), ``jids`` (the set of
        items not yet succeeded), ``failed`` (jid -> failure JSON), ``dead`` (jids that
        died), ``outbox`` and ``claims`` (callbacks and reports to deliver, and who is
        delivering them), ``steps`` and ``state`` (a workflow's graph and each step's state).
        The bid sits in the hash tag ``{b-<bid>}``, so every batch script touches one slot."""
        tail = f":{part}" if part else ""
        return f"{self.prefix}kiqpy:batch:{{b-{bid}}}{tail}"

    def batch_parts(self, bid: str) -> list[str]:
        """Every key of batch ``bid``, in the order the batch scripts take them as KEYS."""
        return [self.batch(bid, part) for part in BATCH_PARTS]

    def result(self, jid: str) -> str:
        """The stored return value of job ``jid`` (a one-element list, so a reader can block
        on it with BLMOVE without taking it); tagged ``{<jid>}``."""
        return f"{self.prefix}kiqpy:result:{{{jid}}}"

    def metrics(self, minute: int) -> str:
        """The execution metrics of one minute (epoch seconds // 60): a hash of
        ``<class>|p``, ``|f``, ``|ms`` and ``|h<bucket>`` counts (kiqpy/server/metrics.py)."""
        return f"{self.global_prefix}kiqpy:metrics:{minute}"

    def stat(self, name: str, day: _dt.date | None = None) -> str:
        """A counter: ``stat:processed`` or, with ``day``, ``stat:processed:2026-11-23``."""
        if day is None:
            return f"{self.global_prefix}stat:{name}"
        return f"{self.global_prefix}stat:{name}:{day.isoformat()}"

    def unique(self, digest: str) -> str:
        """The unique-jobs lock for one (class, queue, args) digest; its value is the jid of
        the job holding it (``kiqpy_middleware.unique``)."""
        return f"{self.prefix}unique:{digest}"

    def scan_pattern(self, substring: str = "") -> str:
        """A SCAN ``MATCH`` pattern for every key of this namespace (of the whole database
        without one) whose name after the prefix contains ``substring`` (matched literally)."""
        tail = f"*{_glob_escape(substring)}*" if substring else "*"
        return _glob_escape(self.prefix) + tail

    def owns(self, key: str | bytes) -> bool:
        """True for a key of this namespace (every key, without a namespace)."""
        if isinstance(key, bytes):
            return key.startswith(self.prefix.encode())
        return key.startswith(self.prefix)

    def unprefixed(self, key: str) -> str:
        """``key`` without this namespace's prefix (for display)."""
        return key[len(self.prefix) :] if self.prefix and key.startswith(self.prefix) else key


#: The parts of a batch's keys (:meth:`Keys.batch`), in the order its scripts take them.
BATCH_PARTS = ("", "jids", "failed", "dead", "outbox", "claims", "steps", "state")


def _glob_escape(text: str) -> str:
    return "".join("\\" + ch if ch in "*?[]\\" else ch for ch in text)
