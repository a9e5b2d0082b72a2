"""The client: pushes jobs to Redis.

    perform_async -> options + defaults -> client chain -> encode -> push.lua (SADD queues; LPUSH)
    perform_in/at -> ... -> ZADD schedule <run-at> <payload without "at" and "enqueued_at">
    perform_bulk  -> ... -> one pipeline per batch: push.lua once per queue, one ZADD

Which client a push uses is decided by :func:`current_client`: the default configuration's,
unless a testing mode (:mod:`kiqpy.client.mode`) is in place for the current context. In a
testing mode, pushes through any other :class:`Client` (``kiqpy.default_client()``,
``kiqpy.Client(config)``) land in the mode too, as every client's push does in Sidekiq's
testing modes.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Awaitable, Callable, Iterable, Iterator, Mapping, Sequence
from typing import Any, NamedTuple

import redis

from kiqpy.client import mode
from kiqpy.client.build import JobBuilder, JobClass, current_batch, split_push
from kiqpy.client.registry import lookup
from kiqpy.client.timing import run_at
from kiqpy.config import Config, default_config, on_configure
from kiqpy.connection import close, connect, describe, loop_client, translate_errors
from kiqpy.errors import (
    ArgumentError,
    NotReplicatedError,
    RedisRefusedError,
    RedisUnavailableError,
)
from kiqpy.keys import Keys
from kiqpy.payload import Job, check_args, encode, set_member
from kiqpy.scripts import Scripts


class _Plan(NamedTuple):
    """A push's writes, encoded: payloads per queue (LPUSH via push.lua), scheduled members
    with their run times (ZADD schedule); ``single``: one job now, sent as one EVALSHA."""

    by_queue: dict[str, list[bytes]]
    scheduled: dict[bytes, float]
    single: bool


class _Default:
    """The default client, rebuilt when :func:`kiqpy.configure` replaces the configuration."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.client: Client | None = None


_default = _Default()


def default_client() -> Client:
    """The client for the default configuration, built (and its pool opened) on first use,
    and again after :func:`kiqpy.configure` replaced the configuration. A client is only ever
    paired with the configuration that is the default when it is built."""
    config = default_config()
    client = _default.client
    if client is not None and client.config is config:
        return client
    with _default.lock:
        config = default_config()
        old = _default.client
        if old is not None and old.config is config:
            return old
        client = _default.client = Client(config)
    if old is not None:
        old.close()
    return client


def _forget_default_client() -> None:
    """After :func:`kiqpy.configure`: close the old default client's pool; the next push
    builds a client for the new configuration."""
    with _default.lock:
        old, _default.client = _default.client, None
    if old is not None:
        old.close()


on_configure(_forget_default_client)


def current_client() -> Any:
    """The client pushes go to in this context: a testing mode's, else the default one."""
    client = mode.active()
    return client if client is not None else default_client()


def _name_and_options(job_class: JobClass) -> tuple[str, dict[str, Any]]:
    if isinstance(job_class, str) and job_class:
        try:
            cls = lookup(job_class)
        except LookupError:
            return job_class, {}
        return job_class, dict(cls.kiqpy_options_resolved)
    if isinstance(job_class, type) and isinstance(getattr(job_class, "kiqpy_job_name", None),
                                                  str):
        return job_class.kiqpy_job_name, dict(job_class.kiqpy_options_resolved)
    raise ArgumentError(f"a job class must be a kiqpy.Worker subclass or a job name, "
                        f"got {job_class!r}")


class Client:
    """Pushes jobs to the Redis of ``config`` (the default configuration when omitted)."""

    def __init__(self, config: Config | None = None, redis_client: redis.Redis | None = None
                 ) -> None:
        self.config = config or default_config()
        self.redis = redis_client or connect(
            self.config.redis_url, self.config.pool_size or 10, self.config.socket_timeout,
            self.config.sentinel_auth)
        self.keys = Keys(self.config.namespace, self.config.on_cluster)
        self.scripts = Scripts(self.redis)
        self.builder = JobBuilder(self.config, self.redis)

    def close(self) -> None:
        """Close the connection pool."""
        close(self.redis)

    # -- the mixin's entry points ------------------------------------------------------------
    def enqueue(self, job_class: JobClass, args: Sequence[Any], options: dict[str, Any],
                at: float | None = None, fields: dict[str, Any] | None = None) -> str | None:
        """Push one job; returns its jid, or None when client middleware stopped it.
        ``fields``: custom job fields, as :func:`split_push` returns them."""
        builder, store = self._destination()
        batch = current_batch.get()
        if batch is not None:  # inside `with batch.jobs():`
            fields, store = batch.joining(self, fields, store)
        job = builder.build(job_class, args, options, at, fields=fields)
        if job is None:
            return None
        if not self._deferred(store, [[job]], options):
            store([job])
        return str(job["jid"])

    def enqueue_bulk(self, job_class: JobClass, arg_lists: Iterable[Sequence[Any]],
                     options: dict[str, Any], at: float | list[float | None] | None = None,
                     batch_size: int = 1000, fields: dict[str, Any] | None = None
                     ) -> list[str | None]:
        """Push one job per arg list in batches; returns jids in order (None where stopped).
        ``at``: one run time for every job, or a list with one per arg list (None: now).

        Every arg list is checked before the first batch is stored, so a bad item fails the
        whole call instead of leaving the batches before it enqueued."""
        items, times = self._bulk_items(arg_lists, at, batch_size, fields)
        builder, store = self._destination()
        batch = current_batch.get()
        if batch is not None:  # inside `with batch.jobs():` (one registration per slice)
            fields, store = batch.joining(self, fields, store)
        jids: list[str | None] = []
        batches: list[list[Job]] = []
        for start in range(0, len(items), batch_size):
            built = self._build_batch(builder, job_class, items, times, options, fields, start,
                                      min(start + batch_size, len(items)))
            jids += [None if job is None else job["jid"] for job in built]
            batches.append([job for job in built if job is not None])
        if not self._deferred(store, batches, options):
            for jobs in batches:
                store(jobs)
        return jids

    def _bulk_items(self, arg_lists: Iterable[Sequence[Any]],
                    at: float | list[float | None] | None, batch_size: int,
                    fields: dict[str, Any] | None) -> tuple[list[list[Any]], list[Any]]:
        """Every bulk arg list checked (errors name the item), and one run time per item."""
        if type(batch_size) is not int or batch_size < 1:
            raise ArgumentError(f"batch_size must be an int of at least 1, got {batch_size!r}")
        items = [_bulk_item(index, args, self.config.serializer)
                 for index, args in enumerate(arg_lists)]
        if fields and "jid" in fields and len(items) > 1:
            # As Sidekiq's push_bulk: a jid names one job.
            raise ArgumentError(f"a jid names one job; got {len(items)} arg lists")
        times = at if isinstance(at, list) else [at] * len(items)
        if len(times) != len(items):
            raise ArgumentError(f"'at' has {len(times)} times for {len(items)} arg lists; give "
                                f"one time per job, or a single time for all")
        return items, times

    @staticmethod
    def _build_batch(builder: JobBuilder, job_class: JobClass, items: list[list[Any]],
                     times: list[Any], options: dict[str, Any], fields: dict[str, Any] | None,
                     start: int, stop: int) -> list[Job | None]:
        return [builder.build(job_class, items[index], options, times[index], checked=True,
                              fields=fields) for index in range(start, stop)]

    def _deferred(self, store: Callable[[list[Job]], None], batches: list[list[Job]],
                  options: Mapping[str, Any]) -> bool:
        """Hand the push to ``config.defer_push`` (push now or at the transaction's commit);
        True when it took it. Testing modes never defer: a test that pushes inside a
        transaction (Django's TestCase runs each test in one) sees its jobs at once. Nor do
        pushes inside a batch's ``jobs()`` block (see the README's Batches section)."""
        defer = self.config.defer_push
        if defer is None or mode.active() is not None:
            return False
        if current_batch.get() is not None:
            # A batch's jobs go out now: its jobs() block reports its close when it ends, and
            # a batch closed before its deferred jobs were added would complete empty.
            return False

        def push() -> None:
            for jobs in batches:
                store(jobs)

        return bool(defer(push, options.get("on_commit")))

    def _destination(self) -> tuple[JobBuilder, Callable[[list[Job]], None]]:
        """Where this client's pushes go: its Redis, unless a testing mode is active in this
        context. As Sidekiq's ``Testing.fake!``/``inline!`` patch every client's raw push, every
        Client's pushes then land in the mode (its fake list, or run inline), whichever client
        was used: ``kiqpy.default_client()``, ``kiqpy.Client(config)``... The job is still
        built by this client's configuration and client chain, with no Redis (``redis`` is
        None for middleware, as in any testing mode), so a test touches no real Redis."""
        active = mode.active()
        if active is None or active is self:
            return self.builder, self._store
        return JobBuilder(self.config), active._store

    # -- Sidekiq-style item API --------------------------------------------------------------
    def push(self, item: Mapping[str, Any]) -> str | None:
        """Push a Sidekiq-style item, as ``Sidekiq::Client.push`` does::

            client.push({"class": "OtherApp::Job", "args": [1, 2], "queue": "x",
                         "at": time.time() + 60, "jid": my_jid, "tenant": "acme"})

        ``class`` (a job class or a name, so jobs of other codebases work) and ``args`` (a
        list); ``at`` (epoch seconds or datetime) schedules. Option keys (``queue``,
        ``retry``...) are checked like a class's. ``jid`` is used when it is a non-empty str.
        Any other key is a custom field stored in the job as given, if msgpack/JSON-native
        (``enqueued_at`` is dropped: kiqpy sets it when the job reaches its queue).
        Returns the jid, or None when client middleware stopped the push."""
        job_class, args, options, at, fields = self._split(item)
        if isinstance(at, list):
            raise ArgumentError("push: 'at' is one time here; a list of times is for push_bulk")
        return self.enqueue(job_class, args, options, at, fields)

    def push_bulk(self, item: Mapping[str, Any], batch_size: int = 1000) -> list[str | None]:
        """Like :meth:`push` with ``args`` a list of arg lists (and no ``jid``, which names
        one job). ``at`` is one time for all, or a list of times (epoch seconds, datetime or
        None for now), one per arg list, as in Sidekiq's push_bulk."""
        job_class, args, options, at, fields = self._split(item)
        return self.enqueue_bulk(job_class, args, options, at, batch_size, fields)

    def _split(self, item: Mapping[str, Any]
               ) -> tuple[JobClass, Any, dict[str, Any], Any, dict[str, Any]]:
        item = dict(item)
        job_class = item.pop("class", None)
        if not job_class:
            raise ArgumentError("a job item needs a 'class' (a job class or its name)")
        args = item.pop("args", [])
        if type(args) is not list:
            raise ArgumentError(f"a job item's 'args' must be a list, got {type(args).__name__}")
        at = item.pop("at", None)
        name, options = _name_and_options(job_class)
        # Options are checked like a class's (Client.push used to copy them unchecked, so
        # {"queue": ""} wrote to the key "queue:"); the rest are custom fields.
        pushed, fields = split_push(item, f"push({name!r})", self.config.serializer)
        options.update(pushed)
        when: Any
        if isinstance(at, (list, tuple)):  # push_bulk: one time per job, as Sidekiq's
            when = [None if one is None else run_at(at=one) for one in at]
        else:
            when = None if at is None else run_at(at=at)
        return job_class, args, options, when, fields

    # -- storage -----------------------------------------------------------------------------
    def _plan(self, jobs: list[Job]) -> _Plan:
        """What a push writes, encoded (shared by :meth:`_store` and :meth:`_astore`, which
        differ only in the round trip): one job pushed now alone is one push.lua call;
        otherwise push.lua per queue and one ZADD, in one pipeline."""
        serializer = self.config.serializer
        if len(jobs) == 1 and "at" not in jobs[0] and not self.config.push_replicas:
            job = jobs[0]
            job["enqueued_at"] = self.config.now_stamp()
            return _Plan({job["queue"]: [encode(job, serializer)]}, {}, single=True)
        by_queue: dict[str, list[bytes]] = {}
        scheduled: dict[bytes, float] = {}
        enqueued_at = self.config.now_stamp()
        for job in jobs:
            if "at" in job:
                # As Sidekiq: the score is the run time, and the poller stamps enqueued_at when
                # it moves the job to its queue, so the member holds neither.
                scheduled[encode(set_member(job), serializer)] = job["at"]
            else:
                job["enqueued_at"] = enqueued_at
                by_queue.setdefault(job["queue"], []).append(encode(job, serializer))
        return _Plan(by_queue, scheduled, single=False)

    def _store(self, jobs: list[Job]) -> None:
        """Write encoded jobs: queued ones via push.lua per queue, scheduled ones by ZADD;
        with ``push_replicas``, then WAIT for that many replicas on the same connection."""
        if not jobs:
            return
        if self.keys.cluster:
            self._store_cluster(jobs)
            return
        plan, keys = self._plan(jobs), self.keys
        replicas = self.config.push_replicas
        if plan.single:
            ((queue, payloads),) = plan.by_queue.items()
            with _pushing(self.redis):
                self.scripts.call(self.scripts.push, [keys.queues, keys.queue(queue)],
                                  [queue, *payloads])
            return
        with _pushing(self.redis):
            pipe = self.redis.pipeline(transaction=False)
            for queue, payloads in plan.by_queue.items():
                self.scripts.push(keys=[keys.queues, keys.queue(queue)], args=[queue, *payloads],
                                  client=pipe)
            if plan.scheduled:
                pipe.zadd(keys.schedule, plan.scheduled)
            if replicas:
                # WAIT counts the replicas that have every write of its own connection so
                # far: a pipeline is one connection, so it covers exactly this push.
                pipe.execute_command("WAIT", replicas,
                                     int(self.config.push_replicas_timeout * 1000))
            acked = pipe.execute()[-1]
        self._check_replicas(acked)

    def _check_replicas(self, acked: Any) -> None:
        replicas = self.config.push_replicas
        if replicas and acked < replicas:
            raise NotReplicatedError(
                f"Redis at {describe(self.redis)} stored the push, but only {acked} of "
                f"{replicas} replica(s) acknowledged it within "
                f"{self.config.push_replicas_timeout} s; a failover could lose it")

    def _store_cluster(self, jobs: list[Job]) -> None:
        """:meth:`_store` on Redis Cluster: the `queues` set (slot `{kiqpy}`) and each queue
        (slot `{<queue>}`) are written by separate commands, the name first, so a job is
        never in a queue that workers listening by pattern cannot find. A bulk push is one
        pipeline: redis-py sends each node its commands."""
        plan, keys = self._plan(jobs), self.keys  # push_replicas is refused on Cluster
        by_queue, scheduled = plan.by_queue, plan.scheduled
        with _pushing(self.redis):
            if by_queue:
                self.redis.sadd(keys.queues, *by_queue)
            if len(by_queue) == 1 and not scheduled:
                [(queue, payloads)] = by_queue.items()
                self.scripts.call(self.scripts.push, [keys.queue(queue)], [queue, *payloads])
                return
            pipe = self.redis.pipeline(transaction=False)
            for queue, payloads in by_queue.items():
                self.scripts.push(keys=[keys.queue(queue)], args=[queue, *payloads],
                                  client=pipe)
            if scheduled:
                pipe.zadd(keys.schedule, scheduled)
            pipe.execute()

    # -- the async client ----------------------------------------------------------------------
    # For code on an event loop: the same build, checks, client chain and errors as the sync
    # methods; only the round trip differs (redis.asyncio, one client per loop). With client
    # middleware, the build runs in a worker thread (asyncio.to_thread), so a middleware's
    # blocking I/O (kiqpy_middleware.unique's SET NX, say) never holds the loop; middleware get
    # this client's sync ``redis``, as for the sync methods.
    async def aenqueue(self, job_class: JobClass, args: Sequence[Any], options: dict[str, Any],
                       at: float | None = None, fields: dict[str, Any] | None = None
                       ) -> str | None:
        """:meth:`enqueue` for code on an event loop."""
        if current_batch.get() is not None:
            # Inside `with batch.jobs():` the jids join the batch before the push: the sync
            # path does both, in a thread (which carries the batch's context over).
            return await asyncio.to_thread(self.enqueue, job_class, args, options, at, fields)
        builder, store = self._adestination()
        if self.config.client_middleware:
            job = await asyncio.to_thread(builder.build, job_class, args, options, at,
                                          fields=fields)
        else:
            job = builder.build(job_class, args, options, at, fields=fields)
        if job is None:
            return None
        await store([job])
        return str(job["jid"])

    async def aenqueue_bulk(self, job_class: JobClass, arg_lists: Iterable[Sequence[Any]],
                            options: dict[str, Any],
                            at: float | list[float | None] | None = None,
                            batch_size: int = 1000, fields: dict[str, Any] | None = None
                            ) -> list[str | None]:
        """:meth:`enqueue_bulk` for code on an event loop."""
        if current_batch.get() is not None:  # joining a batch: as in aenqueue
            return await asyncio.to_thread(self.enqueue_bulk, job_class, arg_lists, options,
                                           at, batch_size, fields)
        items, times = self._bulk_items(arg_lists, at, batch_size, fields)
        builder, store = self._adestination()
        jids: list[str | None] = []
        for start in range(0, len(items), batch_size):
            stop = min(start + batch_size, len(items))
            if self.config.client_middleware:
                built = await asyncio.to_thread(self._build_batch, builder, job_class, items,
                                                times, options, fields, start, stop)
            else:
                built = self._build_batch(builder, job_class, items, times, options, fields,
                                          start, stop)
            jids += [None if job is None else job["jid"] for job in built]
            await store([job for job in built if job is not None])
        return jids

    async def apush(self, item: Mapping[str, Any]) -> str | None:
        """:meth:`push` for code on an event loop."""
        job_class, args, options, at, fields = self._split(item)
        if isinstance(at, list):
            raise ArgumentError("push: 'at' is one time here; a list of times is for push_bulk")
        return await self.aenqueue(job_class, args, options, at, fields)

    async def apush_bulk(self, item: Mapping[str, Any], batch_size: int = 1000
                         ) -> list[str | None]:
        """:meth:`push_bulk` for code on an event loop."""
        job_class, args, options, at, fields = self._split(item)
        return await self.aenqueue_bulk(job_class, args, options, at, batch_size, fields)

    def _adestination(self) -> tuple[JobBuilder, Callable[[list[Job]], Awaitable[None]]]:
        """:meth:`_destination` for the async methods: a testing mode's ``_astore``."""
        active = mode.active()
        if active is None or active is self:
            return self.builder, self._astore
        return JobBuilder(self.config), active._astore

    async def _astore(self, jobs: list[Job]) -> None:
        """:meth:`_store` on redis.asyncio: the same plan and the same push.lua, sent by
        EVALSHA (loaded on NOSCRIPT, as redis-py's scripts do)."""
        if not jobs:
            return
        if self.keys.cluster:  # the queues set and each queue are apart: the sync path, off
            await asyncio.to_thread(self._store_cluster, jobs)  # the loop
            return
        plan, keys = self._plan(jobs), self.keys
        conn = loop_client(self.config.redis_url, self.config.socket_timeout,
                           self.config.sentinel_auth)
        push = self.scripts.push
        replicas = self.config.push_replicas
        with _pushing(conn):
            for attempt in (1, 2):
                try:
                    if plan.single:
                        ((queue, payloads),) = plan.by_queue.items()
                        await _batcher(conn).evalsha(
                            push.sha, [keys.queues, keys.queue(queue), queue, *payloads])
                        return
                    pipe = conn.pipeline(transaction=False)
                    for queue, payloads in plan.by_queue.items():
                        pipe.evalsha(push.sha, 2, keys.queues, keys.queue(queue), queue,
                                     *payloads)
                    if plan.scheduled:
                        pipe.zadd(keys.schedule, plan.scheduled)
                    if replicas:
                        pipe.execute_command("WAIT", replicas,
                                             int(self.config.push_replicas_timeout * 1000))
                    acked = (await pipe.execute())[-1]
                    break
                except redis.exceptions.NoScriptError:
                    # A restarted or flushed Redis: load it and send the push again (a
                    # NOSCRIPT push.lua wrote nothing; a ZADD sent twice is the same set).
                    if attempt == 2:
                        raise
                    await conn.script_load(push.script)
        self._check_replicas(acked)

class _Batcher:
    """Single pushes made at the same time on one event loop (100 tasks each awaiting
    ``aperform_async``) share round trips: each call queues its ``EVALSHA`` and the first one
    starts a task that sends everything queued in one pipeline (no MULTI: every push is still
    its own atomic push.lua call), and again for what queued meanwhile. Each caller gets its
    own reply or error (``raise_on_error=False``), so a NOSCRIPT or a refusal is handled by
    the caller as for a lone call. redis.asyncio spends most of a lone command's time in
    Python; sharing the pipeline makes concurrent pushes several times faster. A push made
    while none is in flight is sent at once, on its own."""

    def __init__(self, conn: Any) -> None:
        self.conn = conn
        self.pending: list[tuple[str, list[Any], asyncio.Future[Any]]] = []
        self.sending = False
        self.task: asyncio.Task[None] | None = None

    async def evalsha(self, sha: str, keys_and_args: list[Any]) -> Any:
        """``EVALSHA sha 2 *keys_and_args`` (two keys, as push.lua takes): sent at once when no
        push is in flight, else queued for the next shared pipeline."""
        if not self.sending:
            self.sending = True
            try:
                return await self.conn.evalsha(sha, 2, *keys_and_args)
            finally:
                self._next()
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self.pending.append((sha, keys_and_args, future))
        return await future

    def _next(self) -> None:
        """A round trip ended: send what queued meanwhile, or say nothing is in flight."""
        if self.pending:
            # Kept: the loop holds only a weak reference to a task.
            self.task = asyncio.get_running_loop().create_task(self._send())
        else:
            self.sending = False

    async def _send(self) -> None:
        batch, self.pending = self.pending, []
        try:
            pipe = self.conn.pipeline(transaction=False)
            for sha, keys_and_args, _ in batch:
                pipe.evalsha(sha, 2, *keys_and_args)
            try:
                replies = await pipe.execute(raise_on_error=False)
            except Exception as exc:  # the connection: every push of the batch failed
                replies = [exc] * len(batch)
            for (_, _, future), reply in zip(batch, replies, strict=True):
                if future.done():  # its caller was cancelled
                    continue
                if isinstance(reply, Exception):
                    future.set_exception(reply)
                else:
                    future.set_result(reply)
        finally:
            for _, _, future in batch:  # only if this task itself was cancelled
                if not future.done():
                    future.set_exception(RedisUnavailableError("the push was interrupted"))
            self._next()


def _batcher(conn: Any) -> _Batcher:
    """The batcher of a ``redis.asyncio`` client (one per client, so one per loop)."""
    batcher: _Batcher | None = getattr(conn, "_kiqpy_batcher", None)
    if batcher is None:
        batcher = conn._kiqpy_batcher = _Batcher(conn)
    return batcher


@contextlib.contextmanager
def _pushing(client: Any) -> Iterator[None]:
    """Redis errors of a push in kiqpy's tree: unreachable is :class:`RedisUnavailableError`;
    a refusal (OOM, READONLY, WRONGTYPE...) is :class:`RedisRefusedError`, still a redis-py
    ``ResponseError`` for code that catches that."""
    with translate_errors(client):
        try:
            yield
        except redis.exceptions.ResponseError as exc:
            raise RedisRefusedError(
                f"Redis at {describe(client)} refused the push: {exc}") from exc


def _bulk_item(index: int, args: Any, serializer: str) -> list[Any]:
    """One perform_bulk arg list as a checked list; errors name the item."""
    if not isinstance(args, (list, tuple)):
        raise ArgumentError(f"perform_bulk item {index}: each item must be a list of args, "
                            f"got {type(args).__name__}")
    args = list(args)
    try:
        check_args(args, serializer)
    except ArgumentError as exc:
        raise ArgumentError(f"perform_bulk item {index}: {exc}") from None
    return args


def enqueue(name: JobClass, *args: Any, **options: Any) -> str | None:
    """Enqueue a job by class or by name, for jobs defined in another codebase::

        kiqpy.enqueue("OtherApp::Job", 1, 2, queue="x", tenant="acme")

    Options are checked like a class's; ``at`` (epoch or datetime) or ``delay`` (seconds)
    schedule it; other keywords are custom job fields, as with :meth:`Client.push`."""
    client = current_client()
    base, when, fields = _enqueue_parts("enqueue", name, options, client)
    jid: str | None = client.enqueue(name, args, base, when, fields)
    return jid


async def aenqueue(name: JobClass, *args: Any, **options: Any) -> str | None:
    """:func:`enqueue` for code on an event loop (redis.asyncio; never blocks the loop)::

        await kiqpy.aenqueue("OtherApp::Job", 1, 2, queue="x")"""
    client = current_client()
    base, when, fields = _enqueue_parts("aenqueue", name, options, client)
    jid: str | None = await client.aenqueue(name, args, base, when, fields)
    return jid


def _enqueue_parts(caller: str, name: JobClass, options: dict[str, Any], client: Client
                   ) -> tuple[dict[str, Any], float | None, dict[str, Any]]:
    """(options, run time, custom fields) of an :func:`enqueue`/:func:`aenqueue` call."""
    at, delay = options.pop("at", None), options.pop("delay", None)
    if at is not None and delay is not None:
        raise ArgumentError(f"{caller}() takes delay or at, not both")
    job_name, base = _name_and_options(name)
    pushed, fields = split_push(options, f"{caller}({job_name!r})", client.config.serializer)
    base.update(pushed)
    when = run_at(delay=delay) if delay is not None else (None if at is None else run_at(at=at))
    return base, when, fields
