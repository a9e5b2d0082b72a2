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

The worker never imports this package (an import contract in pyproject.toml keeps it so). One
module per concern:

    base       ApiObject (config, redis, keys), Page
    jobs       JobRecord
    queues     Queue, QueueListing, QueueRow
    sets       SortedEntry, JobSet, ScheduledSet, RetrySet, DeadSet, Search
    processes  Process, ProcessSet, Work, WorkSet
    limiters   Limiters, LimiterInfo (the kiqpy.limiter limiters used in the last day)
    periodic   PeriodicSet, PeriodicEntry (periodic jobs: schedule, last tick, pause)
    metrics    Metrics, ClassMetrics, mark_deploy (execution metrics per class and minute)
    batches    BatchStatus, BatchSet, BatchFailure, WorkflowStep (batches and workflows)
    stats      Stats, History, Problem

``decompress_backtrace`` unpacks a job's ``error_backtrace`` into its lines.
"""

from kiqpy.api.base import ApiObject, Page
from kiqpy.api.batches import BatchFailure, BatchSet, BatchStatus, WorkflowStep
from kiqpy.api.cancel import Cancellation, cancel, cancellations
from kiqpy.api.iteration import progress as iteration_progress
from kiqpy.api.jobs import JobRecord
from kiqpy.api.limiters import LimiterInfo, Limiters
from kiqpy.api.metrics import ClassMetrics, DeployMark, Metrics, mark_deploy
from kiqpy.api.periodic import PeriodicEntry, PeriodicSet
from kiqpy.api.processes import Process, ProcessSet, Work, WorkSet
from kiqpy.api.queues import Queue, QueueListing, QueueRow
from kiqpy.api.sets import DeadSet, JobSet, RetrySet, ScheduledSet, Search, SortedEntry
from kiqpy.api.stats import History, Problem, Stats
from kiqpy.failures import decompress_backtrace

__all__ = [
    "ApiObject",
    "BatchFailure",
    "BatchSet",
    "BatchStatus",
    "Cancellation",
    "ClassMetrics",
    "DeadSet",
    "DeployMark",
    "History",
    "JobRecord",
    "JobSet",
    "LimiterInfo",
    "Limiters",
    "Metrics",
    "Page",
    "PeriodicEntry",
    "PeriodicSet",
    "Problem",
    "Process",
    "ProcessSet",
    "Queue",
    "QueueListing",
    "QueueRow",
    "RetrySet",
    "ScheduledSet",
    "Search",
    "SortedEntry",
    "Stats",
    "Work",
    "WorkSet",
    "WorkflowStep",
    "cancel",
    "cancellations",
    "decompress_backtrace",
    "iteration_progress",
    "mark_deploy",
]
