"""The middleware chain: an ordered, editable list of middleware wrapped around a step.

A middleware is a class (instantiated with the args given to :meth:`Chain.add`) or any callable.
It receives the step's arguments plus ``next``, and calls ``next()`` to continue::

    class StampTenant:                         # client middleware
        def __call__(self, worker, job, queue, redis, next):
            job["tenant"] = current_tenant()
            return next()                      # return None instead to stop the push

    class Timing:                              # server middleware
        def __call__(self, worker, job, queue, next):
            start = time.monotonic()
            try:
                return next()
            finally:
                log.info("took", s=time.monotonic() - start)

A method named ``call`` works as well as ``__call__``. An empty chain costs one ``if``.

Threads: a middleware class is instantiated once per chain, when the chain first runs, and that
one instance is shared by every thread running the chain: all the processor threads of a worker
(``-c``) for the server chain, every thread that pushes for the client chain. Unlike Sidekiq,
which builds a new instance per job, ``self`` is not per job. Keep per-job state in locals of
the call (the stack of the around-style call), in the job map, or in a ContextVar; never on
``self``, and not in dicts keyed by job id. Whatever ``self`` holds (clients, settings,
counters) must be safe to use from several threads at once::

    class Timing:                              # WRONG: another thread's job overwrites start
        def __call__(self, worker, job, queue, next):
            self.start = time.monotonic()
            try:
                return next()
            finally:
                log.info("took", s=time.monotonic() - self.start)

    class Timing:                              # right: per-job state in a local
        def __call__(self, worker, job, queue, next):
            start = time.monotonic()
            try:
                return next()
            finally:
                log.info("took", s=time.monotonic() - start)
"""

from __future__ import annotations

import functools
import inspect
import threading
from collections.abc import Callable, Iterator
from typing import Any

Middleware = Any  # a class, or a callable taking (*step_args, next)


class _Entry:
    __slots__ = ("args", "kind", "kwargs")

    def __init__(self, kind: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
        if (args or kwargs) and not isinstance(kind, type):
            # They would be silently dropped: only a class is instantiated.
            raise TypeError(f"only a middleware class takes constructor args; {kind!r} is not "
                            f"a class")
        if _is_async(kind):
            # Its call would return a coroutine nobody awaits: next() would never run and the
            # job would count as skipped (or the push as stopped) without a word.
            raise TypeError(f"{kind!r} is an async middleware ('async def'); middleware are "
                            f"plain callables (they work around async jobs and the async "
                            f"client too)")
        self.kind, self.args, self.kwargs = kind, args, kwargs

    def build(self) -> Callable[..., Any]:
        """The callable to run: a class is instantiated (once per chain: the instance is
        shared by every thread); an object (or a new instance) with a ``call`` method runs
        that, anything else is called as is."""
        middleware = self.kind
        if isinstance(middleware, type):
            middleware = middleware(*self.args, **self.kwargs)
        call: Callable[..., Any] = getattr(middleware, "call", middleware)
        return call


def _is_async(kind: Any) -> bool:
    """Whether a middleware (class or callable) is called as ``async def``."""
    if isinstance(kind, type):  # its instances are called: their call or __call__
        call = getattr(kind, "call", None) or kind.__call__
    else:
        call = getattr(kind, "call", None) or kind
        if callable(call) and not inspect.isroutine(call) and not isinstance(
                call, functools.partial):
            call = type(call).__call__  # an object with __call__
    return inspect.iscoroutinefunction(call)


class Chain:
    """An ordered list of middleware. Supports add, prepend, insert_before, insert_after,
    remove, contains (``in``), clear and iteration in order."""

    def __init__(self) -> None:
        self._entries: list[_Entry] = []
        self._built: list[Callable[..., Any]] | None = None
        self._building = threading.Lock()  # so each class is instantiated once

    # -- editing -----------------------------------------------------------------------------
    def add(self, middleware: Middleware, *args: Any, **kwargs: Any) -> None:
        """Append ``middleware`` (moved to the end if already present)."""
        entry = _Entry(middleware, args, kwargs)
        self.remove(middleware)
        self._entries.append(entry)
        self._built = None

    def prepend(self, middleware: Middleware, *args: Any, **kwargs: Any) -> None:
        """Put ``middleware`` first (moved if already present)."""
        entry = _Entry(middleware, args, kwargs)
        self.remove(middleware)
        self._entries.insert(0, entry)
        self._built = None

    def insert_before(self, old: Middleware, new: Middleware, *args: Any, **kwargs: Any) -> None:
        """Put ``new`` just before ``old`` (at the start when ``old`` is absent)."""
        entry = _Entry(new, args, kwargs)
        self.remove(new)
        index = self._index(old)
        self._entries.insert(max(index, 0), entry)
        self._built = None

    def insert_after(self, old: Middleware, new: Middleware, *args: Any, **kwargs: Any) -> None:
        """Put ``new`` just after ``old`` (at the end when ``old`` is absent)."""
        entry = _Entry(new, args, kwargs)
        self.remove(new)
        index = self._index(old)
        position = len(self._entries) if index < 0 else index + 1
        self._entries.insert(position, entry)
        self._built = None

    def remove(self, middleware: Middleware) -> None:
        """Remove ``middleware`` if present."""
        self._entries = [e for e in self._entries if e.kind is not middleware]
        self._built = None

    def clear(self) -> None:
        """Remove every middleware."""
        self._entries.clear()
        self._built = None

    def contains(self, middleware: Middleware) -> bool:
        """Whether ``middleware`` is in the chain."""
        return self._index(middleware) >= 0

    __contains__ = contains

    def __iter__(self) -> Iterator[Middleware]:
        return iter([e.kind for e in self._entries])

    def __len__(self) -> int:
        return len(self._entries)

    def __bool__(self) -> bool:
        return bool(self._entries)

    def copy(self) -> Chain:
        """A new chain with the same entries (instances are built afresh)."""
        other = Chain()
        other._entries = list(self._entries)
        return other

    def _index(self, middleware: Middleware) -> int:
        for index, entry in enumerate(self._entries):
            if entry.kind is middleware:
                return index
        return -1

    # -- running -----------------------------------------------------------------------------
    def instances(self) -> list[Callable[..., Any]]:
        """The middleware callables, classes instantiated once and reused by every thread
        that runs this chain (see the module docstring: no per-job state on ``self``)."""
        built = self._built
        if built is None:
            with self._building:  # threads running the chain for the first time at once
                built = self._built
                if built is None:
                    built = self._built = [entry.build() for entry in self._entries]
        return built

    def invoke(self, step: Callable[[], Any], *args: Any) -> Any:
        """Run ``step`` inside every middleware, first-added outermost; return its result."""
        middlewares = self.instances()
        if not middlewares:
            return step()
        return _call(middlewares, 0, step, args)


def _call(middlewares: list[Callable[..., Any]], index: int, step: Callable[[], Any],
          args: tuple[Any, ...]) -> Any:
    if index == len(middlewares):
        return step()
    return middlewares[index](*args, lambda: _call(middlewares, index + 1, step, args))
