"""Iterable jobs: long jobs made of many small steps that resume where they stopped.

    class ExportUsers(kiqpy.IterableWorker, queue="exports"):
        def build_enumerator(self, account_id, *, cursor):
            return kiqpy.iteration.range_enumerator(0, count_users(account_id), cursor=cursor)

        def each_iteration(self, user_index, account_id):
            export_one(account_id, user_index)

        def on_complete(self, account_id):
            notify(account_id)

``build_enumerator`` yields ``(item, cursor)`` pairs, starting after ``cursor`` (None on the
first run); a cursor is any JSON value. The cursor of the last finished iteration is saved in
Redis under the job's jid (``kiqpy:iteration:<jid>``), at most every ``save_every`` seconds
(1 s) and always when the job stops. So:

- on shutdown (TERM) the job stops after the current iteration, is pushed back to its queue
  and resumes from that cursor in the next worker: no iteration runs twice;
- after a kill -9 it resumes from the last save: at most the iterations of the last
  ``save_every`` seconds run again;
- a failing iteration follows the job's retry rules, and the retry resumes after the last
  finished iteration, not from the start;
- after ``max_iteration_runtime`` seconds (class attribute; None: no limit) the job pushes
  itself back to its queue and ends, so one job cannot hold a thread for hours;
- ``self.cancelled`` (``kiqpy.api.cancel``) stops it at the next iteration (``on_cancel``).

Callbacks, all optional, called with the job's args: ``on_start`` (first run), ``on_resume``
(a later run), ``on_stop`` (stopping for a shutdown or the runtime limit), ``on_complete``
(once, when the enumerator is exhausted), ``on_cancel``.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any

from kiqpy.client.execution import current_job, stopping
from kiqpy.client.push import default_client
from kiqpy.client.worker import Worker
from kiqpy.config import default_config
from kiqpy.connection import thread_client
from kiqpy.errors import Interrupted
from kiqpy.keys import Keys

KEEP_SECONDS = 30 * 24 * 3600  # a saved cursor of a job that never comes back expires


class IterableWorker(Worker):
    """A job class whose ``perform`` iterates ``build_enumerator`` (see the module's text)."""

    kiqpy_abstract = True  # a base to subclass, not a job: not registered

    #: Seconds between cursor saves (the window re-run after a kill -9).
    save_every: float = 1.0
    #: Seconds after which the job re-enqueues itself and ends (None: no limit).
    max_iteration_runtime: float | None = None

    def build_enumerator(self, *args: Any, cursor: Any) -> Iterable[tuple[Any, Any]]:
        raise NotImplementedError(f"{type(self).__qualname__} must define build_enumerator()")

    def each_iteration(self, item: Any, *args: Any) -> None:
        raise NotImplementedError(f"{type(self).__qualname__} must define each_iteration()")

    def on_start(self, *args: Any) -> None: ...
    def on_resume(self, *args: Any) -> None: ...
    def on_stop(self, *args: Any) -> None: ...
    def on_complete(self, *args: Any) -> None: ...
    def on_cancel(self, *args: Any) -> None: ...

    def perform(self, *args: Any) -> None:
        progress = _Progress(self.jid or "")
        cursor, done = progress.load()
        (self.on_start if done is None else self.on_resume)(*args)
        done = done or 0
        started = last_save = time.monotonic()
        try:
            for item, next_cursor in self.build_enumerator(*args, cursor=cursor):
                if self.cancelled:
                    progress.clear()
                    self.on_cancel(*args)
                    return
                if stopping():
                    progress.save(cursor, done)
                    self.on_stop(*args)
                    raise Interrupted(f"stopped after {done} iterations for the shutdown")
                limit = self.max_iteration_runtime
                if limit is not None and time.monotonic() - started >= limit:
                    progress.save(cursor, done)
                    self.on_stop(*args)
                    _push_again()
                    return
                self.each_iteration(item, *args)
                cursor, done = next_cursor, done + 1
                if time.monotonic() - last_save >= self.save_every:
                    progress.save(cursor, done)
                    last_save = time.monotonic()
        except Interrupted:
            raise
        except BaseException:
            progress.save(cursor, done)  # the retry resumes after the last finished one
            raise
        progress.clear()
        self.on_complete(*args)


class _Progress:
    """The saved cursor of one job, in the Redis of the default configuration."""

    def __init__(self, jid: str) -> None:
        config = default_config()
        self.redis = thread_client(config.redis_url, config.socket_timeout,
                                   config.sentinel_auth)
        self.key = Keys(config.namespace, config.on_cluster).iteration(jid)

    def load(self) -> tuple[Any, int | None]:
        raw = self.redis.hmget(self.key, ["cursor", "done"])
        if raw[1] is None:
            return None, None
        return json.loads(raw[0]) if raw[0] is not None else None, int(raw[1])

    def save(self, cursor: Any, done: int) -> None:
        pipe = self.redis.pipeline(transaction=False)
        pipe.hset(self.key, mapping={"cursor": json.dumps(cursor), "done": done})
        pipe.expire(self.key, KEEP_SECONDS)
        pipe.execute()

    def clear(self) -> None:
        self.redis.delete(self.key)


def _push_again() -> None:
    """Push the running job again, same jid (its saved cursor), to its queue: the worker then
    acks this run. A crash between the two leaves two copies, which resume from the same
    cursor."""
    job = current_job()
    assert job is not None
    item = {k: v for k, v in job.items() if k not in ("enqueued_at",)}
    default_client().push(item)


# -- enumerators ---------------------------------------------------------------------------------
def range_enumerator(start: int, stop: int, *, cursor: int | None = None
                     ) -> Iterator[tuple[int, int]]:
    """``(n, n)`` for n from ``start`` (or after ``cursor``) up to ``stop`` (excluded)."""
    first = start if cursor is None else cursor + 1
    return ((n, n) for n in range(first, stop))


def list_enumerator(items: Sequence[Any], *, cursor: int | None = None
                    ) -> Iterator[tuple[Any, int]]:
    """``(item, index)`` for the items after the one at ``cursor``."""
    first = 0 if cursor is None else cursor + 1
    return ((items[i], i) for i in range(first, len(items)))


def batch_enumerator(items: Sequence[Any], size: int, *, cursor: int | None = None
                     ) -> Iterator[tuple[list[Any], int]]:
    """``(batch, index of its first item)`` for batches of ``size`` items after ``cursor``."""
    first = 0 if cursor is None else cursor + size
    return ((list(items[i:i + size]), i) for i in range(first, len(items), size))


def keyset_enumerator(fetch_page: Callable[[Any], Sequence[Any]], key: Callable[[Any], Any],
                      *, cursor: Any = None) -> Iterator[tuple[Any, Any]]:
    """Keyset pagination: ``fetch_page(after)`` returns the next rows after key ``after``
    (None: from the start), in key order, an empty page at the end; ``key(row)`` is a row's
    JSON-able key, which becomes the cursor. For example, with a database::

        keyset_enumerator(lambda after: db.users(id_greater_than=after or 0, limit=100),
                          key=lambda user: user.id, cursor=cursor)
    """
    after = cursor
    while True:
        page = fetch_page(after)
        if not page:
            return
        for row in page:
            after = key(row)
            yield row, after
