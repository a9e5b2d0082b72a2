"""README.md's "Data API" example runs as written, against a private Redis and a real worker,
and does what its comments say (see tests/test_docs.py for the marker convention)."""

from __future__ import annotations

import inspect
import re
import runpy

import pytest

import kiqpy.api
from tests.conftest import queued_jobs, wait_for
from tests.test_docs import block, section
from tests.workers import WorkerProcess, identity_of

pytestmark = pytest.mark.slow


def test_data_api_example_runs_and_does_what_it_says(config, r, redis_url, tmp_path, capsys):
    # Given a live worker busy with one job (on a queue of its own, so that it takes none of
    # the example's jobs)
    kiqpy.enqueue("Sleepy", "api", 30, queue="busy")
    with WorkerProcess(redis_url, "-q", "busy") as worker:
        identity = identity_of(worker)
        wait_for(lambda: r.get("test:started:api") and r.hget(identity, "busy") == b"1",
                 message="the worker to be busy")

        # When the README's example runs as written
        path = tmp_path / "data_api.py"
        path.write_text(block("data-api"))
        runpy.run_path(str(path))
        printed = capsys.readouterr().out

        # Then the process and its running job were listed, and the process was asked to dump
        # its threads and to go quiet: it does both at its next beat
        assert identity in printed
        assert f"{identity} kiqpy.processor-" in printed and " busy Sleepy " in printed
        worker.wait_for_log('"thread dump"')
        wait_for(lambda: r.hget(identity, "quiet") == b"true", message="the worker to go quiet")
        worker.kill9()

    # And the jobs ended where the comments say: one of the two mail jobs deleted, the
    # scheduled one rescheduled, killed, then retried from the dead set onto its queue
    assert [j["args"] for j in queued_jobs(r, "mail")] == [["ann", 1]]
    assert [j["args"] for j in queued_jobs(r, "default")] == [["eve", 2]]
    assert r.zcard("schedule") == r.zcard("dead") == r.zcard("retry") == 0
    assert "Queue mail" not in printed and "mail 2 " in printed


def test_data_api_reference_names_only_what_kiqpy_api_has():
    # Every `Name` in the first column of the Data API table is exported by kiqpy.api, and
    # every attribute or method named in its "reads" and "changes" columns exists on it.
    rows = [row.split("|")[1:-1] for row in section("Data API").splitlines()
            if row.startswith("| `")]
    assert len(rows) >= 8
    for first, _what, *columns in rows:
        names = re.findall(r"`([A-Z]\w+)", first)
        assert names and all(n in kiqpy.api.__all__ for n in names), first
        cls = getattr(kiqpy.api, names[0])
        for column in columns:
            # `Work` has ...: the names after it are Work's
            for part, owner in zip(column.split("`Work` has"), (cls, kiqpy.api.Work),
                                   strict=False):
                for attr in re.findall(r"`(\w+)(?:\(|`)", part):
                    if attr[0].isupper() or (cls is kiqpy.api.WorkSet and attr in
                                             ("identity", "thread")):
                        continue  # a class named in passing, or a member of WorkSet's tuples
                    assert hasattr(owner, attr) or attr in _instance_attributes(owner), (
                        f"{owner.__name__}: README names {attr!r}, which it lacks")


def _instance_attributes(cls: type) -> set[str]:
    """Attributes assigned as ``self.name = ...`` (or ``self.a, self.b = ...``) in cls and its
    kiqpy bases."""
    found: set[str] = set()
    for klass in cls.__mro__:
        if klass.__module__.startswith("kiqpy"):
            for line in inspect.getsource(klass).splitlines():
                target = line.split(" = ", 1)[0] if " = " in line else ""
                found |= set(re.findall(r"self\.(\w+)", target))
    return found
