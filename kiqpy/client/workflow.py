"""Workflows: jobs that run when the jobs they depend on have succeeded. Built on batches.

    wf = kiqpy.Workflow("nightly")
    wf.add("extract", Extract, args=[day])
    wf.add("clean", Clean, deps=["extract"])
    wf.add("report", Report, deps=["clean"])
    wf.add("archive", Archive, deps=["extract"])
    wf.run()

    kiqpy.chain(A.s(1), B.s(2), C.s()).run()          # one after the other
    kiqpy.group(A.s(1), B.s(2), then=C.s()).run()     # in parallel, then C

A workflow is a batch (its ``bid``; its callbacks with :meth:`Workflow.on`) whose steps are
stored in the batch's ``steps`` hash, each with the jid it will run under. ``run()`` registers
every step's jid in the batch before pushing anything, so the batch completes only when every
step has run, died or been cancelled. When a step succeeds or dies, ``batch_report.lua``
settles its dependents in the same atomic step: a step whose dependencies all succeeded is put
in the outbox (and pushed once, as a batch callback is); a step with a dependency that died is
cancelled (counted as a failure of the batch), and so are the steps after it, unless it was
added with ``ignore_failure=True``: then it runs once every dependency has ended, however.
Steps with dependents keep their result (``result_ttl``), which the dependents read with
``self.dependency_results()``.
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from typing import Any

from kiqpy.client.batch import CLAIM_MS, DEFAULT_TTL, Batch, report
from kiqpy.client.options import PUSH_ONLY
from kiqpy.client.push import current_client
from kiqpy.client.results import DEFAULT_RESULT_TTL
from kiqpy.errors import ArgumentError, WorkflowError
from kiqpy.payload import check_args, new_jid


class Signature:
    """A job and its arguments, not pushed yet: ``Resize.s(photo_id)`` or
    ``Resize.set(queue="big").s(photo_id)``. Used by :func:`chain`, :func:`group` and
    :meth:`Workflow.add`."""

    __slots__ = ("args", "job_class", "name", "options")

    def __init__(self, job_class: Any, args: Sequence[Any] = (),
                 options: dict[str, Any] | None = None) -> None:
        if isinstance(job_class, str) and job_class:
            self.name, resolved = job_class, {}
        elif isinstance(getattr(job_class, "kiqpy_job_name", None), str):
            self.name, resolved = job_class.kiqpy_job_name, job_class.kiqpy_options_resolved
        else:
            raise ArgumentError(f"a workflow step needs a kiqpy.Worker subclass or a job name, "
                                f"got {job_class!r}")
        self.job_class = job_class
        self.args = list(args)
        check_args(self.args, "json")  # steps are stored as JSON until they are pushed
        # Only what differs from the class's own options travels with the step.
        self.options = {k: v for k, v in (options or {}).items()
                        if k not in PUSH_ONLY and resolved.get(k, _MISSING) != v}

    def __repr__(self) -> str:
        return f"<kiqpy.Signature {self.name}{tuple(self.args)!r}>"


_MISSING = object()


class Workflow:
    """A named graph of jobs (see the module docstring). ``ttl``: seconds its batch is kept
    after its last change (30 days)."""

    def __init__(self, name: str = "", ttl: float = DEFAULT_TTL) -> None:
        if type(name) is not str:
            raise ArgumentError(f"Workflow(name): a str, got {name!r}")
        self.name = name
        self.batch = Batch(description=name or "workflow", ttl=ttl)
        self.batch.workflow = name or "workflow"
        self._steps: dict[str, dict[str, Any]] = {}
        self._ran = False

    @property
    def bid(self) -> str:
        """The bid of the workflow's batch (``kiqpy.api.BatchStatus(bid).steps``)."""
        return self.batch.bid

    def add(self, step: str, job: Any, args: Sequence[Any] = (),
            deps: Sequence[str] = (), ignore_failure: bool = False,
            result_ttl: float = DEFAULT_RESULT_TTL) -> Workflow:
        """Add step ``step`` running ``job`` (a class, a job name or a :class:`Signature`)
        with ``args``, after every step in ``deps``. ``ignore_failure``: run even if a
        dependency died (once all have ended). A duplicate name or a step depending on itself
        fails here; unknown dependencies and cycles fail at :meth:`run`."""
        if self._ran:
            raise WorkflowError(f"workflow {self.name!r} has run; add steps before run()")
        if type(step) is not str or not step:
            raise WorkflowError(f"workflow {self.name!r}: a step name is a non-empty str, got "
                                f"{step!r}")
        if step in self._steps:
            raise WorkflowError(f"workflow {self.name!r}: duplicate step name {step!r}")
        if isinstance(deps, str) or not all(type(d) is str for d in deps):
            raise WorkflowError(f"workflow {self.name!r}, step {step!r}: deps must be a list "
                                f"of step names, got {deps!r}")
        if step in deps:
            raise WorkflowError(f"workflow {self.name!r}: step {step!r} depends on itself")
        signature = job if isinstance(job, Signature) else Signature(job, args)
        if isinstance(job, Signature) and args:
            raise WorkflowError(f"workflow {self.name!r}, step {step!r}: give args in the "
                                f"signature or in add(), not both")
        self._steps[step] = {"name": step, "jid": new_jid(), "class": signature.name,
                             "args": signature.args, "options": signature.options,
                             "deps": list(dict.fromkeys(deps)), "dependents": [],
                             "ignore_failure": bool(ignore_failure),
                             "result_ttl": int(result_ttl)}
        return self

    def on(self, event: str, callback: Any, options: dict[str, Any] | None = None
           ) -> Workflow:
        """A callback on the workflow's batch (see :meth:`kiqpy.Batch.on`)."""
        self.batch.on(event, callback, options)
        return self

    def check(self) -> list[str]:
        """The steps in an order that respects every dependency; :class:`WorkflowError` for
        an unknown dependency or a cycle (naming the steps in it)."""
        for name, step in self._steps.items():
            for dep in step["deps"]:
                if dep not in self._steps:
                    raise WorkflowError(f"workflow {self.name!r}: step {name!r} depends on "
                                        f"unknown step {dep!r}")
        order: list[str] = []
        state: dict[str, int] = {}  # 1: being visited, 2: done

        def visit(name: str, path: list[str]) -> None:
            if state.get(name) == 2:
                return
            if state.get(name) == 1:
                cycle = [*path[path.index(name):], name]
                raise WorkflowError(f"workflow {self.name!r} has a cycle: "
                                    f"{' -> '.join(cycle)}")
            state[name] = 1
            for dep in self._steps[name]["deps"]:
                visit(dep, [*path, name])
            state[name] = 2
            order.append(name)

        for name in self._steps:
            visit(name, [])
        return order

    def run(self) -> Workflow:
        """Check the graph, store it and push the steps without dependencies. Once only."""
        if self._ran:
            raise WorkflowError(f"workflow {self.name!r} has already run (bid {self.bid})")
        if not self._steps:
            raise WorkflowError(f"workflow {self.name!r} has no steps")
        order = self.check()
        for step in self._steps.values():
            step["dependents"] = []
        for name in order:
            for dep in self._steps[name]["deps"]:
                self._steps[dep]["dependents"].append(name)
        for index, name in enumerate(order):  # the order the API and dashboard list them
            step = self._steps[name]
            step["dep_jids"] = {dep: self._steps[dep]["jid"] for dep in step["deps"]}
            step["order"] = index
        client = current_client()
        batch, keys = self.batch, client.keys
        self._ran = True
        # Open (counted), register every jid, store the graph, then close: the close hands
        # out the roots for delivery, like any callback, so a crash leaves them to the sweep.
        client.redis.zadd(keys.batch_outbox, {batch.bid: time.time() + CLAIM_MS / 1000},
                          nx=True)
        batch._open(client, True)
        client.scripts.call(client.scripts.batch_add,
                            [keys.batch(batch.bid), keys.batch(batch.bid, "jids")],
                            [step["jid"] for step in self._steps.values()])
        pairs: list[str] = []
        for name in order:
            pairs += [name, json.dumps(self._steps[name], separators=(",", ":"))]
        client.scripts.call(client.scripts.workflow_define, keys.batch_parts(batch.bid), pairs)
        report(client, batch.bid, "close")
        return self

    def jid(self, step: str) -> str:
        """The jid step ``step`` runs (or will run) under: ``kiqpy.result(wf.jid("report"))``."""
        return str(self._steps[step]["jid"])


def chain(*signatures: Signature, name: str = "chain") -> Workflow:
    """Run the jobs one after the other, each once the previous one succeeded; a job that dies
    cancels the rest. Returns the workflow; call ``.run()``."""
    flow = Workflow(name)
    previous: list[str] = []
    for index, signature in enumerate(_signatures(signatures, "chain")):
        step = f"{index + 1}.{signature.name.rsplit('.', 1)[-1]}"
        flow.add(step, signature, deps=previous)
        previous = [step]
    return flow


def group(*signatures: Signature, then: Signature | None = None, name: str = "group"
          ) -> Workflow:
    """Run the jobs in parallel and, with ``then``, one more job once they all succeeded.
    Returns the workflow; call ``.run()``."""
    flow = Workflow(name)
    steps = []
    for index, signature in enumerate(_signatures(signatures, "group")):
        step = f"{index + 1}.{signature.name.rsplit('.', 1)[-1]}"
        flow.add(step, signature)
        steps.append(step)
    if then is not None:
        flow.add("then", _signatures([then], "group(then=...)")[0], deps=steps)
    return flow


def _signatures(items: Sequence[Any], where: str) -> list[Signature]:
    if not items:
        raise WorkflowError(f"{where} needs at least one job signature (Job.s(...))")
    for item in items:
        if not isinstance(item, Signature):
            raise WorkflowError(f"{where} takes job signatures such as Job.s(1, 2), got "
                                f"{item!r}")
    return list(items)
