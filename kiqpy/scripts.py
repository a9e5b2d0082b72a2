"""The Lua scripts, loaded from ``kiqpy/lua/*.lua`` and registered once per Redis client.

Each script is one atomic operation with its own file and a header documenting KEYS, ARGV and
what it touches. redis-py's ``register_script`` runs them by SHA and reloads them after a Redis
restart (NOSCRIPT).
"""

from __future__ import annotations

import functools
from importlib import resources
from typing import Any

import redis
from redis.commands.core import Script

NAMES = ("push", "fetch", "requeue", "schedule", "reroute", "unlock", "move_to_queue",
         "move_to_dead", "periodic_tick", "renew", "limiter_concurrent", "limiter_release",
         "limiter_renew", "limiter_bucket", "limiter_window", "limiter_leaky", "batch_open",
         "batch_add", "batch_report", "batch_delivered", "workflow_define", "fetch_queue",
         "claim")


@functools.cache
def source(name: str) -> str:
    """The text of ``kiqpy/lua/<name>.lua``."""
    return resources.files("kiqpy").joinpath(f"lua/{name}.lua").read_text(encoding="utf-8")


class Scripts:
    """The registered scripts for one Redis client, as attributes: ``scripts.push(keys, args)``."""

    def __init__(self, client: redis.Redis) -> None:
        self._client = client
        for name in NAMES:
            if resources.files("kiqpy").joinpath(f"lua/{name}.lua").is_file():
                # As bytes: a str would make redis-py ask the client for its encoder, which
                # on Cluster would reach the nodes now rather than at the first call.
                setattr(self, name, client.register_script(source(name).encode()))

    def call(self, script: Script, keys: list[Any], args: list[Any]) -> Any:
        """Run ``script`` by SHA with one plain EVALSHA: the hot paths (push, fetch) skip the
        few microseconds ``Script.__call__`` adds. Loads it again after a Redis restart."""
        command = self._client.execute_command
        try:
            return command("EVALSHA", script.sha, len(keys), *keys, *args)
        except redis.exceptions.NoScriptError:
            script.sha = self._client.script_load(script.script)
            return command("EVALSHA", script.sha, len(keys), *keys, *args)

    push: Script
    fetch: Script
    requeue: Script
    schedule: Script
    reroute: Script
    unlock: Script
    move_to_queue: Script
    move_to_dead: Script
    periodic_tick: Script
    renew: Script
    limiter_concurrent: Script
    limiter_release: Script
    limiter_renew: Script
    limiter_bucket: Script
    limiter_window: Script
    limiter_leaky: Script
    batch_open: Script
    batch_add: Script
    batch_report: Script
    batch_delivered: Script
    workflow_define: Script
    fetch_queue: Script
    claim: Script
