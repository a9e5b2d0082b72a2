"""Periodic entries as the worker cluster runs them: each entry's schedule, job and options (as
the ticker's leader published them), its last enqueued tick and job, its next tick, whether it
is paused; and pausing, unpausing and enqueueing one now.

    from kiqpy.api import PeriodicSet

    for entry in PeriodicSet():
        print(entry.name, entry.schedule, entry.next_tick, entry.paused)
    PeriodicSet().find("feeds").pause()
"""

from __future__ import annotations

import datetime as _dt
import json
from collections.abc import Iterator
from typing import Any

import redis

from kiqpy.api.base import ApiObject, text
from kiqpy.client.periodic import Schedule
from kiqpy.client.push import Client
from kiqpy.config import Config
from kiqpy.errors import ConfigurationError


class PeriodicEntry(ApiObject):
    """One published periodic entry and its state."""

    def __init__(self, definition: dict[str, Any], state: dict[str, str], config: Config,
                 redis_client: redis.Redis) -> None:
        super().__init__(config, redis_client)
        self.definition = definition
        self.name: str = definition["name"]
        self.schedule: str = definition.get("schedule", "")
        self.tz: str = definition.get("tz", "UTC")
        self.klass: str = definition.get("class", "")
        self.args: list[Any] = definition.get("args", [])
        self.options: dict[str, Any] = definition.get("options", {})
        self.queue: str = self.options.get("queue", "default")
        self.catch_up: str = definition.get("catch_up", "last")
        self.paused = "paused" in state
        self.jid = state.get("jid")
        last = state.get("last")
        self.last_tick = _time(float(last)) if last is not None and _is_number(last) else None

    def __repr__(self) -> str:
        return f"<PeriodicEntry {self.name!r} {self.schedule!r}>"

    @property
    def next_tick(self) -> _dt.datetime | None:
        """The next tick after now (None if the definition cannot be read)."""
        try:
            schedule = Schedule(self.definition.get("cron"), self.definition.get("interval"),
                                self.tz)
            now = _dt.datetime.now(_dt.timezone.utc).timestamp()
            return _time(schedule.next_after(now))
        except (ConfigurationError, TypeError, ValueError):
            return None

    def pause(self) -> None:
        """Skip this entry's ticks until :meth:`unpause` (skipped ticks are not caught up)."""
        with self.io():
            self.redis.hset(self.keys.periodic(self.name), "paused", "1")
        self.paused = True

    def unpause(self) -> None:
        with self.io():
            self.redis.hdel(self.keys.periodic(self.name), "paused")
        self.paused = False

    def enqueue_now(self) -> str | None:
        """Push this entry's job now, outside its schedule (its next tick still runs)."""
        client = Client(self.config, self.redis)
        now = int(_dt.datetime.now(_dt.timezone.utc).timestamp())
        return client.push({"class": self.klass, "args": list(self.args), **self.options,
                            "periodic": self.name, "periodic_tick": now})


class PeriodicSet(ApiObject):
    """Every periodic entry the ticker's leader last published, by name."""

    def __iter__(self) -> Iterator[PeriodicEntry]:
        return iter(self.entries())

    def __len__(self) -> int:
        with self.io():
            return int(self.redis.hlen(self.keys.periodic_entries))

    def entries(self) -> list[PeriodicEntry]:
        with self.io():
            raw = self.redis.hgetall(self.keys.periodic_entries)
            names = sorted(text(name) for name in raw)
            pipe = self.redis.pipeline(transaction=False)
            for name in names:
                pipe.hgetall(self.keys.periodic(name))
            states = pipe.execute()
        found = []
        for name, state in zip(names, states, strict=True):
            definition = _definition(name, raw.get(name.encode(), raw.get(name)))
            found.append(PeriodicEntry(definition, {text(k): text(v) for k, v in state.items()},
                                       self.config, self.redis))
        return found

    def find(self, name: str) -> PeriodicEntry | None:
        return next((entry for entry in self.entries() if entry.name == name), None)

    @property
    def leader(self) -> str | None:
        """The identity of the process that ticks now, if any."""
        with self.io():
            value = self.redis.get(self.keys.periodic_leader)
        return text(value) if value is not None else None


def _definition(name: str, raw: Any) -> dict[str, Any]:
    try:
        value = json.loads(raw)
        if isinstance(value, dict):
            return {**value, "name": name}
    except (TypeError, ValueError):
        pass
    return {"name": name, "schedule": "(unreadable definition)"}


def _is_number(value: str | None) -> bool:
    try:
        return value is not None and float(value) == float(value)
    except ValueError:
        return False


def _time(epoch: float) -> _dt.datetime:
    return _dt.datetime.fromtimestamp(epoch, _dt.timezone.utc)
