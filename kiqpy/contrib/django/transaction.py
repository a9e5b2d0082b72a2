"""Transaction-safe pushes, as Sidekiq's ``transactional_push!``: a push made inside
``transaction.atomic()`` goes to Redis in ``transaction.on_commit``, so the worker never
looks for a row that is not committed yet, and a rolled-back transaction pushes nothing. The
jid is returned at once either way.

The trade-off, as in Sidekiq: a process that dies between the commit and the push loses that
push (the row is committed, the job never existed). Outside a transaction nothing changes.
"""

from __future__ import annotations

from collections.abc import Callable

from django.db import transaction

from kiqpy.config import PushDeferrer


def on_commit_deferrer(transactional: bool, using: str) -> PushDeferrer:
    """The :attr:`kiqpy.Config.defer_push` hook: defer when the push's ``on_commit`` option
    says so, or, unset, when ``transactional``; and only inside an atomic block of ``using``."""

    def defer(push: Callable[[], None], on_commit: bool | None) -> bool:
        wanted = transactional if on_commit is None else on_commit
        if not wanted or not transaction.get_connection(using).in_atomic_block:
            return False
        transaction.on_commit(push, using=using)
        return True

    return defer
