"""The progress of running iterable jobs (:class:`kiqpy.IterableWorker`): iterations done and the
cursor, as their last save wrote them."""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

import redis

from kiqpy.api.base import ApiObject, text
from kiqpy.config import Config


def progress(jids: Iterable[str], config: Config | None = None,
             redis_client: redis.Redis | None = None) -> dict[str, tuple[int, Any]]:
    """jid -> (iterations done, cursor) for the jobs among ``jids`` that saved progress; one
    round trip."""
    api = ApiObject(config, redis_client)
    jids = list(jids)
    if not jids:
        return {}
    with api.io():
        pipe = api.redis.pipeline(transaction=False)
        for jid in jids:
            pipe.hmget(api.keys.iteration(jid), ["done", "cursor"])
        replies = pipe.execute()
    found: dict[str, tuple[int, Any]] = {}
    for jid, (done, cursor) in zip(jids, replies, strict=True):
        if done is None:
            continue
        try:
            found[jid] = (int(done), json.loads(cursor) if cursor is not None else None)
        except ValueError:
            found[jid] = (0, text(cursor or b""))
    return found
