"""``kiqpy enqueue``: push one job from the shell (through :meth:`kiqpy.Client.push`).

    kiqpy enqueue myapp.jobs.HardWorker '["bob", 5]'            # by name, nothing imported
    kiqpy enqueue HardWorker '["bob", 5]' -r myapp.jobs --in 60  # checked against the registry
    kiqpy enqueue Reports::Daily '[]' --queue ruby --at 2026-12-24T08:00:00+00:00

Without ``-r`` the class name is pushed as given, as Sidekiq's client pushes a class string:
the job may be defined in another codebase (or in Ruby), so nothing is imported or checked.
With ``-r`` the modules are imported as the worker imports them; CLASS must then be a
registered job (its full name, or its class name when that is unique), and the class's
options (queue, retry...) and the application's client middleware apply.
"""

from __future__ import annotations

import datetime as _dt
import difflib
import json
import time
from typing import Any

import click

from kiqpy.cli.admin import echo_json, json_option, redis_for
from kiqpy.cli.require import is_path, require
from kiqpy.cli.target import config_for, redis_options
from kiqpy.config import Config
from kiqpy.errors import ConfigurationError, KiqpyError


@click.command("enqueue")
@click.argument("job_class", metavar="CLASS")
@click.argument("args_json", metavar="[ARGS_JSON]", default="[]")
@click.option("-q", "--queue", default=None,
              help="Queue to push to  [default: the class's queue, else default].")
@click.option("--in", "delay", type=click.FloatRange(min=0), default=None,
              help="Run in this many seconds (pushed to the schedule).")
@click.option("--at", "at", default=None,
              help="Run at this time: ISO 8601 (2026-12-24T08:00:00+00:00; no offset = local "
                   "time) or epoch seconds. A past time pushes at once.")
@click.option("-r", "--require", "requires", multiple=True,
              help="Module or file defining the job classes, as the worker's -r (repeatable); "
                   "CLASS must then be registered.")
@json_option
@redis_options
@click.pass_context
def enqueue(ctx: click.Context, job_class: str, args_json: str, queue: str | None,
            delay: float | None, at: str | None, requires: tuple[str, ...], as_json: bool,
            redis_url: str | None, namespace: str) -> None:
    """Push a job of CLASS with ARGS_JSON (a JSON array, default []) and print its jid."""
    args = _parse_args(args_json)
    if delay is not None and at is not None:
        raise click.UsageError("give --in or --at, not both")
    when = _parse_at(at) if at is not None else None
    if requires:
        config, name, options = _registered(ctx, job_class, requires, redis_url, namespace)
    else:
        try:
            config, name, options = config_for(redis_url, namespace), job_class, {}
        except KiqpyError as exc:  # a bad KIQPY_* value in the environment
            raise click.UsageError(str(exc)) from exc
    queue = queue or str(options.get("queue") or "default")
    if delay is not None:
        when = time.time() + delay
    from kiqpy.client.push import Client

    with redis_for(config) as client:
        item: dict[str, Any] = {"class": name, "args": args, "queue": queue}
        if when is not None:
            item["at"] = when
        jid = Client(config, client).push(item)
    if jid is None:
        raise click.ClickException("a client middleware stopped the push; nothing was enqueued")
    scheduled = when is not None and when > time.time()
    if as_json:
        echo_json({"jid": jid, "class": name, "queue": queue,
                   "at": when if scheduled else None})
    elif scheduled:
        moment = _dt.datetime.fromtimestamp(float(when or 0)).astimezone().isoformat(" ", "seconds")
        click.echo(f"scheduled {name} on {queue} for {moment}: jid {jid}")
    else:
        click.echo(f"enqueued {name} on {queue}: jid {jid}")


def _parse_args(text: str) -> list[Any]:
    try:
        args = json.loads(text)
    except ValueError as exc:
        raise click.BadParameter(f"{text!r} is not JSON ({exc}); give the arguments as a JSON "
                                 f"array, e.g. '[\"bob\", 5]'", param_hint="ARGS_JSON") from None
    if not isinstance(args, list):
        raise click.BadParameter(f"{text!r} is a JSON {type(args).__name__}, not an array; "
                                 f"wrap the arguments in [...]", param_hint="ARGS_JSON")
    return args


def _parse_at(text: str) -> float:
    try:
        return float(text)
    except ValueError:
        pass
    try:
        moment = _dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise click.BadParameter(f"{text!r} is neither an ISO 8601 time "
                                 f"(2026-12-24T08:00:00+00:00) nor epoch seconds",
                                 param_hint="'--at'") from None
    return moment.timestamp()  # a naive time is local, as perform_at takes it


def _registered(ctx: click.Context, job_class: str, requires: tuple[str, ...],
                redis_url: str | None, namespace: str) -> tuple[Config, str, dict[str, Any]]:
    """Import ``requires`` and find CLASS in the registry: the configuration (the default one
    the modules may have set, with the flags given applied), the job's name and options."""
    import kiqpy
    from kiqpy.client.registry import registered

    for target in requires:
        try:
            require(target)
        except Exception as exc:
            raise click.BadParameter(f"cannot import {target!r}: {type(exc).__name__}: {exc}",
                                     param_hint="'-r' / '--require'") from exc
    jobs = registered()
    if job_class in jobs:
        name = job_class
    else:
        short = [n for n, cls in jobs.items() if cls.__name__ == job_class]
        if len(short) > 1:  # several jobs share the class name: prefer the -r modules' own
            mine = [n for n in short if _defined_in(jobs[n], requires)]
            short = mine or short
        if len(short) != 1:
            known = sorted(jobs)
            # Close to a full name or to a class name: suggest the full names.
            names = {**{n: n for n in known}, **{cls.__name__: n for n, cls in jobs.items()}}
            close = list(dict.fromkeys(names[m] for m in difflib.get_close_matches(
                job_class, list(names), 3)))
            why = (f"{len(short)} registered jobs are called that: {', '.join(sorted(short))}; "
                   f"give the full name" if short else
                   f"did you mean {', '.join(close)}?" if close else
                   f"registered: {', '.join(known) or 'none'}")
            raise click.BadParameter(f"no job registered as {job_class!r} by "
                                     f"{', '.join(requires)} ({why})", param_hint="CLASS")
        name = short[0]
    changes: dict[str, Any] = {}
    for param, value in (("redis_url", redis_url), ("namespace", namespace)):
        source = ctx.get_parameter_source(param)
        if value and source not in (None, click.core.ParameterSource.DEFAULT):
            changes[param] = value
    try:
        config = kiqpy.default_config().replace(**changes)
    except ConfigurationError as exc:
        raise click.UsageError(str(exc)) from exc
    return config, name, dict(jobs[name].kiqpy_options_resolved)


def _defined_in(cls: type, requires: tuple[str, ...]) -> bool:
    """True if ``cls`` comes from one of the -r modules (or a module under one)."""
    module = cls.__module__
    return any(module == target or module.startswith(target + ".")
               for target in requires if not is_path(target))
