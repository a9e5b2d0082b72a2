"""The testing seam: the mode (fake or inline, from :mod:`kiqpy.testing`) that pushes in the
current context land in, instead of Redis.

The client looks the mode up here on every push; :mod:`kiqpy.testing` puts one in place for a
``with`` block. Nothing on the client side imports the testing module, and a mode applies to
its own context only (other threads and other tests keep pushing for real).
"""

from __future__ import annotations

import contextlib
import contextvars
from collections.abc import Iterator, MutableSequence
from typing import TYPE_CHECKING, Any, Protocol

from kiqpy.errors import KiqpyError

if TYPE_CHECKING:
    from kiqpy.chain import Chain
    from kiqpy.config import Config
    from kiqpy.payload import Job


class Mode(Protocol):
    """What a testing mode offers the client side."""

    config: Config
    #: The chain jobs run through in this mode (fake drain, inline pushes, perform_inline).
    server_middleware: Chain
    #: True for fake mode (jobs are kept), False for inline mode (jobs run at once).
    keeps_jobs: bool

    def _store(self, jobs: list[Job]) -> None:
        """Take pushed jobs (built by the pushing client's configuration and chain)."""

    async def _astore(self, jobs: list[Job]) -> None:
        """The same, for the async client (inline mode awaits async jobs here)."""

    async def adrain(self, job_class: Any) -> int:
        """Fake mode: :meth:`drain` on an event loop (async jobs are awaited)."""

    async def aperform_one(self, job_class: Any) -> Any:
        """Fake mode: :meth:`perform_one` on an event loop."""

    def jobs_of(self, job_class: Any) -> MutableSequence[Job]:
        """Fake mode: a live view of one class's (or job name's) jobs."""

    def perform_one(self, job_class: Any) -> Any:
        """Fake mode: run the oldest job of ``job_class``."""

    def drain(self, job_class: Any) -> int:
        """Fake mode: run ``job_class``'s jobs until none is left; how many ran."""


_active: contextvars.ContextVar[Mode | None] = contextvars.ContextVar("kiqpy_mode",
                                                                      default=None)


def active() -> Mode | None:
    """The testing mode in place in this context, or None (pushes go to Redis)."""
    return _active.get()


def fake_mode() -> Mode:
    """The fake mode in place, or a :class:`KiqpyError` saying how to enter one."""
    mode = _active.get()
    if mode is None or not mode.keeps_jobs:
        raise KiqpyError("not in fake mode: use `with kiqpy.testing.fake():` or the "
                         "kiqpy_fake fixture")
    return mode


@contextlib.contextmanager
def activated(mode: Mode) -> Iterator[Mode]:
    """Pushes in this block (in this context) land in ``mode``."""
    token = _active.set(mode)
    try:
        yield mode
    finally:
        _active.reset(token)
