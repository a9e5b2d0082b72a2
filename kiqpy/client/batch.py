"""Batches: a group of jobs with callbacks that fire once when they have all run.

    batch = kiqpy.Batch(description="Import 1234")
    batch.on("success", ImportDone, {"import_id": 1234})
    with batch.jobs():
        for row in rows:
            ImportRow.perform_async(row)

How it keeps its promises (see docs/architecture.md, "Batches and workflows"):

- Every key of a batch carries the hash tag ``{b-<bid>}`` (``Keys.batch``), so each batch
  script touches one cluster slot. A job's queue lives in another slot, so pushing a job and
  counting it in its batch are two steps, ordered so that a crash between them loses nothing:
  the jids are registered (``batch_add.lua``, once per pushed slice) *before* the push, so a
  job can never report to a batch that does not count it yet. A push that raises takes its
  jids out again; a crash right between the two leaves the batch waiting for a job that was
  never pushed (it never completes, and shows that job as pending).
- The worker reports each outcome of a job that carries a ``bid`` (kiqpy/server/batches.py):
  ``batch_report.lua`` changes the counters, decides in the same step whether ``complete``,
  ``success`` or ``death`` fires, sets that flag and adds an *outbox* entry, so each fires once
  however many workers finish the last jobs together. Delivering an entry (pushing the
  callback jobs, reporting to a parent batch, pushing a ready workflow step) is a separate
  step: the reporter claims the entry for ``CLAIM_MS``, delivers it, then removes it
  (``batch_delivered.lua``). The report happens before the job is acked, so a worker killed
  after the report re-runs the job, whose report hands the entry out again; an entry claimed
  by someone who died is marked in ``Keys.batch_outbox`` and delivered by the scheduler's
  sweep once the claim ends. Callbacks are therefore at least once: twice only if a process
  dies between pushing a callback and removing its entry (a millisecond's window).
- A ``jobs()`` block counts as open in the batch (``open`` in its meta hash) until it ends, so
  the batch cannot complete while jobs are still being added; a block inside a job of the same
  batch is not counted (the running job itself keeps the batch pending, and a block a kill -9
  interrupted could never close).
- A batch created inside a job of another batch is its child: it is registered in the parent
  as the item ``b:<bid>`` before it exists, and reports to the parent when it completes (as a
  failure, if it had failures), succeeds or dies. Its bid derives from the parent job's jid and
  the batch's rank in that job, so a re-run of the job (after a crash) finds the same child.
"""

from __future__ import annotations

import contextlib
import contextvars
import hashlib
import json
import time
from collections.abc import Callable, Iterator
from typing import Any

from kiqpy.client import mode
from kiqpy.client.build import current_batch
from kiqpy.client.execution import current_job
from kiqpy.client.push import Client, current_client
from kiqpy.errors import ArgumentError, WorkflowError
from kiqpy.payload import Job, new_jid, now_ms

#: Callback events, Sidekiq Pro's.
EVENTS = ("complete", "success", "death")

#: Batches expire this long after their last change (after success, nothing changes): 30 days.
DEFAULT_TTL = 30 * 86_400

#: How long a reporter owns an outbox entry it took for delivery (ms); after that, another
#: reporter or the scheduler's sweep delivers it.
CLAIM_MS = 30_000

# (the running job map, batches created so far in this run): the rank gives a child batch a
# bid that a re-run of the same job finds again. The map itself is kept (compared by
# identity), not its id(): a later job's map may reuse a finished one's address.
_children: contextvars.ContextVar[tuple[Job | None, int]] = contextvars.ContextVar(
    "kiqpy_batch_children", default=(None, 0))


def _child_bid(job: Job) -> str:
    """The bid of the ``count``-th batch this run of ``job`` creates: the same when the same
    payload runs again after a crash (orphan recovery), a new one after a failure (its
    ``retry_count`` moved on), as a retried Sidekiq Pro job creates a new child."""
    run, count = _children.get()
    count = count + 1 if run is job else 1
    _children.set((job, count))
    seed = f"{job['jid']}:{job.get('retry_count', '-')}:{count}"
    return hashlib.sha1(seed.encode()).hexdigest()[:24]


class Batch:
    """A group of jobs with callbacks. ``Batch()`` starts a new one (created in Redis when its
    first ``jobs()`` block opens); ``Batch(bid)`` is an existing one, to add jobs to it.

    ``description``: shown by the API and the dashboard. ``ttl``: seconds the batch's keys
    are kept after its last change (30 days)."""

    def __init__(self, bid: str | None = None, description: str = "",
                 ttl: float = DEFAULT_TTL) -> None:
        if bid is not None and (type(bid) is not str or not bid):
            raise ArgumentError(f"Batch(bid): a bid is a non-empty str, got {bid!r}")
        if type(description) is not str:
            raise ArgumentError(f"Batch(description=...) must be a str, got {description!r}")
        if type(ttl) not in (int, float) or not ttl >= 1:
            raise ArgumentError(f"Batch(ttl=...) must be seconds >= 1, got {ttl!r}")
        self._new = bid is None
        job = current_job()
        self.parent_bid: str | None = None
        if bid is None and job is not None and isinstance(job.get("bid"), str):
            self.parent_bid = job["bid"]
            bid = _child_bid(job)
        self.bid: str = bid if bid is not None else new_jid()
        self.description = description
        self.ttl = int(ttl)
        self.callbacks: dict[str, list[list[Any]]] = {}
        self._created = False
        self.workflow = ""

    def __repr__(self) -> str:
        return f"<kiqpy.Batch {self.bid}>"

    def on(self, event: str, callback: Any, options: dict[str, Any] | None = None) -> Batch:
        """Push a job of class ``callback`` (a kiqpy.Worker subclass or a job name) once when
        ``event`` happens: "complete" (every job ran at least once), "success" (every job
        succeeded, retries included) or "death" (the first job went to the dead set). The
        job's ``perform(status, options)`` gets a dict (bid, event, total, pending, failures,
        description, parent_bid) and ``options``. Set callbacks before the first ``jobs()``
        block (or again before a later one: the last set wins)."""
        if event not in EVENTS:
            raise WorkflowError(f"Batch.on: unknown event {event!r}; events are "
                                f"{', '.join(EVENTS)}")
        if isinstance(callback, str) and callback:
            name = callback
        elif isinstance(getattr(callback, "kiqpy_job_name", None), str) and \
                callback.kiqpy_job_name:
            name = callback.kiqpy_job_name
        else:
            raise ArgumentError(f"Batch.on({event!r}, ...): the callback must be a "
                                f"kiqpy.Worker subclass or a job name, got {callback!r}")
        options = dict(options or {})
        try:
            json.dumps(options)
        except (TypeError, ValueError) as exc:
            raise ArgumentError(f"Batch.on({event!r}, ...): options must be JSON-native: "
                                f"{exc}") from None
        self.callbacks.setdefault(event, []).append([name, options])
        return self

    @contextlib.contextmanager
    def jobs(self) -> Iterator[Batch]:
        """Pushes inside the block (perform_async, perform_in, perform_bulk, enqueue...) join
        the batch. The batch cannot complete before the block ends. In a testing mode the
        jobs only get the ``bid`` field (no Redis, no callbacks)."""
        if mode.active() is not None:
            token = current_batch.set(self)
            try:
                yield self
            finally:
                current_batch.reset(token)
            return
        client = current_client()
        job = current_job()
        counted = job is None or job.get("bid") != self.bid
        self._open(client, counted)
        token = current_batch.set(self)
        try:
            yield self
        finally:
            current_batch.reset(token)
            if counted:
                # Marked first: if this process dies before it delivered what closing fires,
                # the scheduler's sweep finds the batch.
                client.redis.zadd(client.keys.batch_outbox,
                                  {self.bid: time.time() + CLAIM_MS / 1000}, nx=True)
                report(client, self.bid, "close")

    def _open(self, client: Client, counted: bool) -> None:
        keys = client.keys
        if self._new and not self._created:
            if self.parent_bid is not None and not client.redis.exists(keys.batch(self.bid)):
                # Counted in the parent before it exists, so the parent cannot complete first
                # (not again when a re-run finds it: the parent may have counted it done).
                client.scripts.call(client.scripts.batch_add,
                                    [keys.batch(self.parent_bid), keys.batch(self.parent_bid,
                                                                             "jids")],
                                    [f"b:{self.bid}"])
            created = client.scripts.call(
                client.scripts.batch_open, keys.batch_parts(self.bid),
                [1, now_ms(), self.description, json.dumps(self.callbacks),
                 self.parent_bid or "", self.ttl, int(counted), self.workflow])
            if created == 1:
                client.redis.zadd(keys.batch_index, {self.bid: time.time()})
            self._created = True
            return
        found = client.scripts.call(
            client.scripts.batch_open, keys.batch_parts(self.bid),
            [0, now_ms(), "", json.dumps(self.callbacks) if self.callbacks else "", "",
             self.ttl, int(counted), ""])
        if found == -1:
            raise WorkflowError(f"batch {self.bid} does not exist (never created, or expired "
                                f"after its ttl)")

    # -- called by Client.enqueue / enqueue_bulk inside the block ----------------------------
    def joining(self, client: Client, fields: dict[str, Any] | None,
                store: Callable[[list[Job]], None]
                ) -> tuple[dict[str, Any], Callable[[list[Job]], None]]:
        """The push's fields with this batch's ``bid``, and a store that registers the jobs
        in the batch before storing them (not in a testing mode, which has no Redis)."""
        fields = {**fields, "bid": self.bid} if fields else {"bid": self.bid}
        if mode.active() is not None:
            return fields, store
        return fields, lambda jobs: self._register_and_store(client, jobs, store)

    def _register_and_store(self, client: Client, jobs: list[Job],
                            store: Callable[[list[Job]], None]) -> None:
        if not jobs:
            return
        keys = [client.keys.batch(self.bid), client.keys.batch(self.bid, "jids")]
        jids = [job["jid"] for job in jobs]
        if client.scripts.call(client.scripts.batch_add, keys, jids) == -1:
            raise WorkflowError(f"batch {self.bid} does not exist (expired?); jobs not pushed")
        try:
            store(jobs)
        except BaseException:
            with contextlib.suppress(Exception):  # best effort: the push error matters more
                client.scripts.call(client.scripts.batch_add, keys, ["-", *jids])
            raise


# -- reporting and delivery -----------------------------------------------------------------
def report(client: Client, bid: str, kind: str, item: str = "", info: str = "",
           step: str = "", more: list[str] | None = None) -> list[Any] | None:
    """Run ``batch_report.lua`` for one event and deliver the outbox entries it hands us.
    ``more``: further (item, step) pairs, flattened, of the same kind. Returns the script's
    reply, or None when the batch does not exist (expired)."""
    items = [item, step] if item else []
    reply: list[Any] = client.scripts.call(client.scripts.batch_report,
                                           client.keys.batch_parts(bid),
                                           [kind, info, CLAIM_MS, *items, *(more or ())])
    if reply[0] == -1:
        return None
    deliver(client, bid, reply)
    return reply


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def deliver(client: Client, bid: str, reply: list[Any]) -> int:
    """Deliver the entries a ``batch_report.lua`` reply handed us; returns how many. Entries
    held by another reporter get the batch marked for the scheduler's sweep."""
    total, pending, failures = int(reply[1]), int(reply[2]), int(reply[3])
    description, callbacks, parent = _text(reply[4]), _text(reply[5]), _text(reply[6])
    size = int(reply[7])
    # Pushed in a fixed order (complete before success when both fire together); the jobs
    # themselves may still run in any order, on several threads.
    claimed = sorted((_text(reply[i]), _text(reply[i + 1])) for i in range(8, len(reply), 2))
    delivered = 0
    if claimed:
        token = current_batch.set(None)  # callback and step jobs never join a batch by accident
        try:
            for field, value in claimed:
                kind, _, name = field.partition(":")
                if kind == "cb":
                    status = {"bid": bid, "event": name, "total": total, "pending": pending,
                              "failures": failures, "description": description,
                              "parent_bid": parent or None}
                    for rank, (cls, options) in enumerate(
                            (json.loads(callbacks) if callbacks else {}).get(name, [])):
                        # on_commit=False: it is marked delivered below, so it must be in
                        # Redis now, not at a transaction's commit (Django).
                        client.push({"class": cls, "args": [status, options],
                                     "jid": _callback_jid(bid, name, rank),
                                     "batch_callback": name, "on_commit": False})
                elif kind == "up" and parent:
                    up = {"success": "success", "complete": "failure", "death": "death"}[name]
                    info = json.dumps({"class": "kiqpy.Batch", "error_class": "BatchFailed",
                                       "error_message": f"child batch {bid}: {failures} "
                                                        f"failure(s)"})
                    report(client, parent, up, f"b:{bid}", info)
                elif kind == "step":
                    _push_step(client, bid, json.loads(value))
                client.scripts.call(client.scripts.batch_delivered,
                                    [client.keys.batch(bid, "outbox"),
                                     client.keys.batch(bid, "claims")], [field])
                delivered += 1
        finally:
            current_batch.reset(token)
            if size > delivered:  # held by others, or a delivery failed: the sweep's turn
                client.redis.zadd(client.keys.batch_outbox,
                                  {bid: time.time() + CLAIM_MS / 1000}, nx=True)
    elif size:
        client.redis.zadd(client.keys.batch_outbox, {bid: time.time() + CLAIM_MS / 1000},
                          nx=True)
    return delivered


def _callback_jid(bid: str, event: str, rank: int) -> str:
    """The same jid for the same callback every time, so a repeated delivery is visible."""
    return hashlib.sha1(f"{bid}:{event}:{rank}".encode()).hexdigest()[:24]


def _push_step(client: Client, bid: str, step: dict[str, Any]) -> None:
    item: dict[str, Any] = {"class": step["class"], "args": step["args"], **step["options"],
                            "jid": step["jid"], "bid": bid, "wf_step": step["name"],
                            "on_commit": False}  # marked delivered once pushed: push now
    if step["dep_jids"]:
        item["wf_deps"] = step["dep_jids"]
    if step["dependents"] and "result_ttl" not in item and not item.get("store_result"):
        item["result_ttl"] = step["result_ttl"]  # its dependents may read its result
    client.push(item)
