"""The data API: what is in Redis, and the changes a dashboard or a script makes to it.

    from kiqpy.api import Stats, Queue, RetrySet, DeadSet, ProcessSet, WorkSet

    Stats().enqueued                          # counters and sizes, read in two round trips
    Queue("mail").latency                     # seconds since its oldest job was queued
    RetrySet().find_job(jid).retry()          # to its queue now; not counted as an attempt
    DeadSet().page(1, 25)                     # Page(entries, total, number, size)
    for process in ProcessSet(): process.quiet()

Every class takes an optional ``config`` (default: :func:`kiqpy.default_config`) and an
optional ``redis_client`` (share one between objects to share its pool); key names come from
:class:`kiqpy.keys.Keys` for the configuration's namespace. Payloads that are not jobs show up
as records whose ``error`` says why, never as exceptions, so they can be seen and deleted.
Redis being unreachable raises :class:`kiqpy.RedisUnavailableError`.

The worker never imports this module. The code lives in ``kiqpy/api_*.py``, one concern each:

    api_base       ApiObject (config, redis, keys), Page
    api_jobs       JobRecord
    api_queues     Queue
    api_sets       SortedEntry, JobSet, ScheduledSet, RetrySet, DeadSet
    api_processes  Process, ProcessSet, Work, WorkSet
    api_stats      Stats, History
"""

from kiqpy.api_base import ApiObject, Page
from kiqpy.api_jobs import JobRecord
from kiqpy.api_processes import Process, ProcessSet, Work, WorkSet
from kiqpy.api_queues import Queue
from kiqpy.api_sets import DeadSet, JobSet, RetrySet, ScheduledSet, SortedEntry
from kiqpy.api_stats import History, Stats

__all__ = [
    "ApiObject",
    "DeadSet",
    "History",
    "JobRecord",
    "JobSet",
    "Page",
    "Process",
    "ProcessSet",
    "Queue",
    "RetrySet",
    "ScheduledSet",
    "SortedEntry",
    "Stats",
    "Work",
    "WorkSet",
]
