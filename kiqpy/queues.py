"""Which queues a worker listens to: names, weights, and Resque-style patterns.

    -q default,mail            strict order: all of default before any of mail
    -q critical:3,default:1    weighted random order, as Sidekiq
    -q '*'                     every queue in the `queues` set, re-read while running
    -q 'critical,*'            critical first, then every other queue
    -q 'mail_*'                globs (fnmatch)
    -q '*,!low'                everything but low

A plain name is listened to even before any job was pushed to it; a pattern matches the queues
Redis knows (the `queues` set), alphabetically, and picks up new ones without a restart.
"""

from __future__ import annotations

import fnmatch
import random
from collections.abc import Iterable, Sequence

from kiqpy.errors import ConfigurationError

GLOB_CHARS = frozenset("*?[")


def is_pattern(name: str) -> bool:
    return name.startswith("!") or any(c in GLOB_CHARS for c in name)


def parse(tokens: Iterable[str]) -> tuple[tuple[str, int], ...]:
    """``["default,mail", "critical:3"]`` -> ``(("default", 0), ("mail", 0), ("critical", 3))``.

    Raises :class:`ConfigurationError` with a message fit for a usage error."""
    parts = [t.strip() for token in tokens for t in str(token).split(",")]
    result: list[tuple[str, int]] = []
    for index, part in enumerate(parts):
        if not part:
            raise ConfigurationError("empty queue name")
        if part.isdigit():
            before = parts[index - 1].partition(":")[0] if index else "queue"
            raise ConfigurationError(
                f"{part!r} is not a queue name; for a weight write {before}:{part}")
        name, sep, weight = part.partition(":")
        if not name or name == "!":
            raise ConfigurationError(f"{part!r} has no queue name")
        if sep and (not weight.isdigit() or int(weight) < 1):
            raise ConfigurationError(
                f"bad weight in {part!r}: a weight is a whole number of at least 1")
        if name.startswith("!") and sep:
            raise ConfigurationError(f"{part!r}: an exclusion takes no weight")
        if name.count("[") != name.count("]"):
            raise ConfigurationError(f"{part!r}: unbalanced [ ] in the pattern")
        result.append((name, int(weight) if sep else 0))
    if result and all(name.startswith("!") for name, _ in result):
        raise ConfigurationError("exclusions need something to exclude from, e.g. '*,!low'")
    if any(w for _, w in result):
        # Once any queue has a weight, queues without one count as weight 1.
        result = [(n, w or (0 if n.startswith("!") else 1)) for n, w in result]
    return tuple(result)


def from_setting(value: object, where: str) -> tuple[tuple[str, int], ...]:
    """A framework setting's queues: ``["critical", "default"]`` or
    ``[("critical", 3), ("default", 1)]``; ``where`` names the setting in the error."""
    if isinstance(value, str) or not isinstance(value, (list, tuple)):
        raise ConfigurationError(f"{where} must be a list of queue names or (name, weight) "
                                 f"pairs, got {value!r}")
    queues = []
    for item in value:
        if isinstance(item, str):
            queues.append((item, 0))
        elif (isinstance(item, (list, tuple)) and len(item) == 2 and isinstance(item[0], str)
              and type(item[1]) is int):
            queues.append((item[0], item[1]))
        else:
            raise ConfigurationError(f"{where}: {item!r} is neither a queue name nor a "
                                     f"(name, weight) pair")
    return tuple(queues)


def dynamic(spec: Sequence[tuple[str, int]]) -> bool:
    """Whether ``spec`` has patterns, so the known queues must be re-read while running."""
    return any(is_pattern(name) for name, _ in spec)


def resolve(spec: Sequence[tuple[str, int]], known: Iterable[str]) -> tuple[tuple[str, int], ...]:
    """The concrete (queue, weight) list for ``spec`` given the queues Redis knows."""
    known_sorted = sorted(set(known))
    excluded = [name[1:] for name, _ in spec if name.startswith("!")]
    chosen: dict[str, int] = {}
    for name, weight in spec:
        if name.startswith("!"):
            continue
        matches = ([q for q in known_sorted if fnmatch.fnmatchcase(q, name)]
                   if is_pattern(name) else [name])
        for queue in matches:
            if queue not in chosen and not any(fnmatch.fnmatchcase(queue, ex) for ex in excluded):
                chosen[queue] = weight
    return tuple(chosen.items())


class QueueOrder:
    """The order in which to try queues on each fetch, as Sidekiq does it: no weights -> strict
    order; equal weights -> random order; otherwise a random order biased by weight."""

    def __init__(self, queues: Sequence[tuple[str, int]]) -> None:
        self.names = [name for name, _ in queues]
        self.weights = weights = [weight for _, weight in queues]
        if not any(weights):
            self.mode = "strict"
        elif len(set(weights)) == 1:
            self.mode = "random"
        else:
            self.mode = "weighted"
        self._expanded = [name for name, weight in queues for _ in range(max(weight, 1))]

    def order(self) -> list[str]:
        if self.mode == "strict":
            return self.names
        if self.mode == "random":
            return random.sample(self.names, len(self.names))
        # A shuffled list holding each name `weight` times, first occurrences kept: a queue of
        # weight 3 comes first three times as often as one of weight 1.
        expanded = random.sample(self._expanded, len(self._expanded))
        return list(dict.fromkeys(expanded))
