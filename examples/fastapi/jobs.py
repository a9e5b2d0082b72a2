"""The job of the fastapi example: an ``async def perform``, run on the worker's event loop.
The worker imports it with ``-r examples.fastapi.jobs``:

    kiqpy -r examples.fastapi.jobs -q feeds
"""

from __future__ import annotations

import time

import httpx
import structlog

import kiqpy

log = structlog.get_logger("examples.fastapi")


def result_key(url: str) -> str:
    """Where a fetch's result is kept (a hash: status, bytes, fetched_at, jid)."""
    return f"example:feed:{url}"


class FetchFeed(kiqpy.Worker, queue="feeds", retry=3, timeout=30):
    """Fetches a feed and records what came back. While it waits on the network the loop runs
    other fetches: one worker process keeps up to ``--async-concurrency`` (100) of them in
    flight, beside its ``-c`` threads. An HTTP error fails the job, which is retried."""

    async def perform(self, url: str) -> None:
        async with httpx.AsyncClient(timeout=10) as client:
            response = await client.get(url)
            response.raise_for_status()
        log.info("fetched", url=url, status=response.status_code, size=len(response.content))
        await kiqpy.aredis().hset(result_key(url), mapping={
            "status": response.status_code, "bytes": len(response.content),
            "fetched_at": time.time(), "jid": self.jid or ""})
