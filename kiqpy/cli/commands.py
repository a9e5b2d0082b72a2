"""The ``kiqpy`` command. Signal handlers live here and nowhere else.

    kiqpy -r myapp.jobs -c 25 -q default,mail      # the worker (same as `kiqpy worker ...`)
    kiqpy -q critical:3 -q default:1               # weighted queues
    QUEUE=default,mail REDIS_URL=redis://host/0 kiqpy -r myapp.jobs
"""

from __future__ import annotations

import difflib
import os
import sys
from pathlib import Path
from typing import Any

import click

from kiqpy import log as kiqpy_log
from kiqpy import queues
from kiqpy.cli.require import is_path as _is_path
from kiqpy.cli.require import require
from kiqpy.cli.serve import ProcessOptions
from kiqpy.config import Config, env_redis_url
from kiqpy.errors import ConfigurationError, UnknownJobError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib


def parse_queues(values: tuple[str, ...] | list[str]) -> tuple[tuple[str, int], ...]:
    """``("default,mail", "critical:3")`` -> ``(("default", 0), ("mail", 0), ("critical", 3))``.

    Patterns (``*``, ``mail_*``, ``!low``) are kept for the worker to resolve (kiqpy.queues).
    Raises click.BadParameter for a bad weight, and for Sidekiq's ``critical,2`` habit."""
    try:
        return queues.parse(values)
    except ConfigurationError as exc:
        raise click.BadParameter(str(exc)) from None


def load_config_file(path: str | None) -> dict[str, Any]:
    if not path:
        return {}
    try:
        with open(path, "rb") as handle:
            data = tomllib.load(handle)
    except OSError as exc:
        raise click.BadParameter(f"cannot read {path}: {exc.strerror}",
                                 param_hint="'-C' / '--config'") from exc
    except tomllib.TOMLDecodeError as exc:
        raise click.BadParameter(f"{path} is not valid TOML: {exc}",
                                 param_hint="'-C' / '--config'") from exc
    table = data.get("kiqpy", data)
    if not isinstance(table, dict):
        raise click.BadParameter(f"{path}: 'kiqpy' must be a table", param_hint="'-C' / '--config'")
    return table


class DefaultGroup(click.Group):
    """A group that runs ``worker`` when the first argument is not a command name, and whose
    help shows the worker's options too (the command people run most)."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        if not args or (args[0] not in self.commands
                        and args[0] not in ("--help", "-h", "--version", "-V")):
            args = ["worker", *args]
        return super().parse_args(ctx, args)

    def format_help(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        super().format_help(ctx, formatter)
        worker = self.commands["worker"]
        with click.Context(worker, info_name="worker", parent=ctx) as sub:
            rows = [row for param in worker.get_params(sub)
                    if (row := param.get_help_record(sub)) is not None]
        with formatter.section("Worker options (kiqpy [OPTIONS] is kiqpy worker [OPTIONS])"):
            formatter.write_dl(rows)


@click.group(cls=DefaultGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(None, "-V", "--version", package_name="kiqpy", message="kiqpy %(version)s")
def main() -> None:
    """kiqpy: Sidekiq for Python. Without a command, runs the worker."""


def _source_is_default(ctx: click.Context, name: str) -> bool:
    source = ctx.get_parameter_source(name)
    return source in (None, click.core.ParameterSource.DEFAULT)


@main.command()
@click.option("-r", "--require", "requires", multiple=True, envvar="KIQPY_REQUIRE",
              help="Module or file with job classes to import (repeatable).")
@click.option("-c", "--concurrency", type=click.IntRange(min=1), default=10, show_default=True,
              envvar="KIQPY_CONCURRENCY", help="Processor threads.")
@click.option("--async-concurrency", type=click.IntRange(min=1), default=100, show_default=True,
              envvar="KIQPY_ASYNC_CONCURRENCY",
              help="Async jobs ('async def perform') running at once on the event loop.")
@click.option("-q", "--queue", "queues", multiple=True, envvar=["KIQPY_QUEUES", "QUEUES", "QUEUE"],
              help="Queues, comma separated or repeated; name:weight for weighted order.")
@click.option("-t", "--timeout", type=click.FloatRange(min=0), default=25.0, show_default=True,
              envvar="KIQPY_TIMEOUT", help="Seconds to let running jobs finish on shutdown.")
@click.option("-g", "--tag", default="", envvar="KIQPY_TAG", help="A tag shown for this process.")
@click.option("-C", "--config", "config_file", envvar="KIQPY_CONFIG",
              help="A TOML config file (keys as the long options, in a [kiqpy] table or at top).")
@click.option("--redis-url", envvar=["KIQPY_REDIS_URL", "REDIS_URL"],
              help="Redis to use [default: redis://localhost:6379/0].")
@click.option("--sentinel-username", default=None, envvar="KIQPY_SENTINEL_USERNAME",
              help="ACL user for the Sentinels of a redis+sentinel:// URL.")
@click.option("--sentinel-password", default=None, envvar="KIQPY_SENTINEL_PASSWORD",
              help="Password for the Sentinels (the master's goes in the URL).")
@click.option("--sentinel-tls/--no-sentinel-tls", default=None, envvar="KIQPY_SENTINEL_TLS",
              help="TLS to the Sentinels.")
@click.option("--cluster/--no-cluster", default=False, envvar="KIQPY_CLUSTER",
              help="Redis is a Redis Cluster (implied by a redis+cluster:// URL).")
@click.option("--namespace", default="", envvar="KIQPY_NAMESPACE", help="Prefix for every key.")
@click.option("--serializer", type=click.Choice(["msgpack", "json"]), default="msgpack",
              envvar="KIQPY_SERIALIZER", help="Encoding of jobs this process writes.")
@click.option("--sidekiq-version", type=click.Choice(["6", "7", "8"]), default="8",
              envvar="KIQPY_SIDEKIQ_VERSION",
              help="JSON wire format of the Ruby Sidekiq sharing this Redis.  [default: 8]")
@click.option("--prefetch", type=click.IntRange(min=0), default=None, envvar="KIQPY_PREFETCH",
              help="Jobs to hold beyond the busy threads (faster for tiny jobs).")
@click.option("--poll-interval", type=click.FloatRange(min=0.01), default=None,
              envvar="KIQPY_POLL_INTERVAL",
              help="Average seconds between schedule polls [default: 5 x processes].")
@click.option("--heartbeat-interval", type=click.FloatRange(min=0.05), default=10.0,
              envvar="KIQPY_HEARTBEAT_INTERVAL", help="Seconds between heartbeats.")
@click.option("--process-ttl", type=click.FloatRange(min=0.1), default=60.0,
              envvar="KIQPY_PROCESS_TTL",
              help="Seconds without a heartbeat after which a process counts as dead.")
@click.option("--default-timeout", type=click.FloatRange(min=0, min_open=True), default=None,
              envvar="KIQPY_DEFAULT_TIMEOUT",
              help="Seconds a job without a timeout option may run [default: no limit].")
@click.option("--metrics/--no-metrics", default=True, envvar="KIQPY_METRICS",
              help="Count executions per job class for the Metrics page.  [default: on]")
@click.option("--log-format", type=click.Choice(["auto", "console", "json"], case_sensitive=False),
              default="auto",
              envvar="KIQPY_LOG_FORMAT", help="Console on a TTY, JSON otherwise.")
@click.option("--log-level", type=click.Choice(kiqpy_log.LEVELS, case_sensitive=False),
              default="info",
              envvar="KIQPY_LOG_LEVEL", help="`warning` silences the per-job lines.")
@click.option("--log-flush", type=click.FloatRange(0, 10), default=kiqpy_log.FLUSH_SECONDS,
              envvar="KIQPY_LOG_FLUSH",
              help="Seconds JSON info lines may wait to be written together; 0 writes each "
                   "at once.  [default: 0.05]")
@click.option("-v", "--verbose", is_flag=True, envvar="KIQPY_VERBOSE", help="Debug logging.")
@click.option("--logfile", envvar="KIQPY_LOGFILE",
              help="Append logs to this file instead of stderr; SIGUSR1 reopens it.")
@click.option("-p", "--processes", default="1", envvar=["KIQPY_PROCESSES", "COUNT"],
              callback=lambda ctx, param, value: _processes(value),
              help="Worker processes under one supervisor; 'auto' = one per core.  [default: 1]")
@click.option("--max-memory", type=click.FloatRange(min=1), default=None,
              envvar="KIQPY_MAX_MEMORY",
              help="MB of RSS after which a worker process is quieted and replaced.")
@click.option("--max-jobs", type=click.IntRange(min=1), default=None, envvar="KIQPY_MAX_JOBS",
              help="Jobs after which a worker process is replaced.")
@click.option("--preload", is_flag=True, envvar="KIQPY_PRELOAD",
              help="Import -r modules once in the supervisor, before forking.")
@click.option("--pidfile", envvar="KIQPY_PIDFILE", help="Write the (supervisor's) pid here.")
@click.option("--health-port", type=click.IntRange(0, 65535), default=None,
              envvar="KIQPY_HEALTH_PORT",
              help="Serve GET /health: 200 while heartbeats are fresh and Redis answers, else 503.")
@click.option("--health-host", default="127.0.0.1", show_default=True,
              envvar="KIQPY_HEALTH_HOST", help="Address for --health-port.")
@click.version_option(None, "-V", "--version", package_name="kiqpy", message="kiqpy %(version)s")
@click.pass_context
def worker(ctx: click.Context, **opts: Any) -> None:
    """Run jobs: kiqpy worker -r myapp.jobs -c 25 -q default,mail"""
    periodic = _file_periodic(opts.get("config_file"))
    settings = _settings(ctx, opts)
    log_format, log_level = settings.pop("log_format"), settings.pop("log_level")
    kiqpy_log.setup(log_format, "debug" if settings.pop("verbose") else log_level,
                    logfile=settings.pop("logfile"), flush_seconds=settings.pop("log_flush"))
    options = ProcessOptions(**{k: settings.pop(k) for k in _PROCESS_KEYS})
    requires = settings.pop("requires")
    for target in requires:
        if _is_path(target) and not Path(target).exists():
            # A usage error now, before any fork, rather than "No module named ..." later.
            raise click.BadParameter(f"{target}: no such file or folder (in {os.getcwd()})",
                                     param_hint="'-r' / '--require'")
    build_config(settings)  # a bad value is a usage error now, not in a forked child later
    sys.exit(serve(AppLoader(requires, settings, periodic), options))


_PROCESS_KEYS = ("processes", "max_memory", "max_jobs", "preload", "pidfile", "health_port",
                 "health_host")


def _processes(value: str | int) -> int:
    """``-p``: a whole number of at least 1, or ``auto`` (one per core)."""
    if str(value).strip().lower() == "auto":
        return os.cpu_count() or 1
    try:
        count = int(value)
    except ValueError:
        raise click.BadParameter(f"{value!r} is not a number of processes or 'auto'") from None
    if count < 1:
        raise click.BadParameter(f"{count} is not a number of processes (at least 1)")
    return count


class AppLoader:
    """Imports the -r modules and builds the configuration, once (in the supervisor with
    --preload, else in each worker process after the fork)."""

    def __init__(self, requires: list[str], settings: dict[str, Any],
                 periodic: list[dict[str, Any]] | None = None) -> None:
        self.requires, self.settings = requires, settings
        self.periodic = periodic or []
        self.config: Config | None = None

    def __call__(self) -> Config:
        if self.config is None:
            for target in self.requires:
                try:
                    require(target)
                except Exception as exc:
                    # The log (which may be the --logfile of a daemon whose stderr is lost)
                    # gets the traceback, rendered as one (multi-line in the console format);
                    # stderr gets the one-line reason too. A missing file needs no traceback.
                    missing = isinstance(exc, FileNotFoundError)
                    kiqpy_log.get_logger().error("cannot import", target=target,
                                                 error=f"{type(exc).__name__}: {exc}",
                                                 exc_info=None if missing else exc)
                    click.echo(f"kiqpy: cannot import {target!r}: {type(exc).__name__}: {exc}",
                               err=True)
                    sys.exit(1)
            for spec in self.periodic:
                try:
                    register_periodic(spec)
                except (ConfigurationError, UnknownJobError) as exc:
                    kiqpy_log.get_logger().error("bad periodic entry", where=spec["source"],
                                                 error=str(exc))
                    click.echo(f"kiqpy: {spec['source']}: {exc}", err=True)
                    sys.exit(1)
            from kiqpy.client.registry import registered

            if not registered():
                kiqpy_log.get_logger().warning(
                    "no job classes registered; pass the module that defines them with -r")
            import kiqpy

            self.config = kiqpy.configure(build_config(self.settings))
        return self.config

    def base(self) -> Config:
        """The configuration from the flags alone, without importing anything."""
        return build_config(self.settings)


def register_periodic(spec: dict[str, Any]) -> None:
    """One ``[[kiqpy.periodic]]`` table of the -C file: ``cron`` (or ``every``, seconds),
    ``class`` (a registered job name), and optionally ``args``, ``name``, ``tz``,
    ``catch_up`` and push options (``queue``, ``retry``...)."""
    import kiqpy
    from kiqpy.client.registry import lookup

    entry = {k: v for k, v in spec.items() if k != "source"}
    schedule = entry.pop("cron", None) or entry.pop("every", None)
    if schedule is None:
        raise ConfigurationError("a periodic entry needs cron = \"...\" or every = seconds")
    job = entry.pop("class", None)
    if not isinstance(job, str):
        raise ConfigurationError("a periodic entry needs class = \"<registered job name>\"")
    lookup(job)  # a class that is not a kiqpy job of this app is an error now
    kiqpy.periodic(schedule, job, **entry)


def build_config(settings: dict[str, Any]) -> Config:
    """The default configuration with ``settings`` (the file, env vars and flags) applied.
    Starting from the default (rather than a fresh Config) keeps what ``-r`` modules set on
    it at import time: middleware, handlers, and values from ``kiqpy.configure(...)`` that
    the file, env and flags leave alone."""
    import kiqpy

    try:
        return kiqpy.default_config().replace(**settings)
    except ConfigurationError as exc:
        raise click.UsageError(str(exc)) from exc


def serve(load_app: AppLoader, options: ProcessOptions) -> int:
    """Run the worker process(es) (kiqpy.cli.serve); returns the exit code."""
    from kiqpy.cli import serve as serving

    try:
        return serving.run(load_app, options)
    except ConfigurationError as exc:  # a bad Redis URL, for one
        raise click.UsageError(str(exc)) from exc


# Keys a -C file may use beyond the option names (dashes or underscores both work).
_FILE_ALIASES = {"queue": "queues", "require": "requires"}


def _file_settings(ctx: click.Context, path: str | None) -> dict[str, Any]:
    """The -C file's values, checked and converted by the same click types as the flags, so
    ``concurrency = 0`` or a misspelt key is a usage error rather than a traceback."""
    raw = dict(load_config_file(path))
    raw.pop("periodic", None)  # read by _file_periodic
    params = {p.name: p for p in ctx.command.params
              if isinstance(p, click.Option) and p.name and p.name != "config_file"}
    values: dict[str, Any] = {}
    for key, value in raw.items():
        name = key.replace("-", "_")
        name = _FILE_ALIASES.get(name, name)
        param = params.get(name)
        if param is None:
            known = sorted(_file_key(p) for p in params.values())
            close = difflib.get_close_matches(key.replace("_", "-"), known, 1)
            hint = f"did you mean {close[0]!r}?" if close else f"known keys: {', '.join(known)}"
            raise click.BadParameter(f"unknown key {key!r} in {path}; {hint}",
                                     param_hint="'-C' / '--config'")
        if param.multiple:
            items = value if isinstance(value, list) else [value]
            # A queue may also be written as a [name, weight] pair.
            value = [f"{v[0]}:{v[1]}" if isinstance(v, list) and len(v) == 2 else v
                     for v in items]
        try:
            values[name] = param.type_cast_value(ctx, value)
        except click.BadParameter as exc:
            raise click.BadParameter(exc.message, param_hint=f"{key!r} in {path}") from exc
    return values


def _file_periodic(path: str | None) -> list[dict[str, Any]]:
    """The -C file's ``[[kiqpy.periodic]]`` tables, each with its place in the file, their
    schedules checked (the classes are checked once the -r modules are imported)."""
    raw = load_config_file(path).get("periodic", [])
    if not isinstance(raw, list) or not all(isinstance(e, dict) for e in raw):
        raise click.BadParameter(f"{path}: 'periodic' must be an array of tables "
                                 f"([[kiqpy.periodic]])", param_hint="'-C' / '--config'")
    specs = [{**entry, "source": f"[[kiqpy.periodic]] #{n} in {path}"}
             for n, entry in enumerate(raw, 1)]
    for spec in specs:
        _check_schedule(spec)
    return specs


def _check_schedule(entry: dict[str, Any]) -> None:
    """A periodic entry's schedule and time zone, checked before any fork (the class can only
    be checked once the -r modules are imported)."""
    from kiqpy.client.periodic import Schedule

    if isinstance(entry.get("cron"), str):
        try:
            Schedule(entry["cron"], None, str(entry.get("tz", "UTC")))
        except ConfigurationError as exc:
            raise click.BadParameter(str(exc), param_hint=entry["source"]) from exc


def _file_key(param: click.Option) -> str:
    longs = [o for o in param.opts if o.startswith("--")]
    return longs[0][2:] if longs else str(param.name)


# Flags that are not Config fields: the CLI always needs a value for them.
_CLI_KEYS = frozenset({"requires", "verbose", "log_format", "log_level", "logfile", "log_flush",
                       *_PROCESS_KEYS})


def _settings(ctx: click.Context, opts: dict[str, Any]) -> dict[str, Any]:
    """Config keywords plus the CLI's own requires, verbose, log_format and log_level.

    Precedence, lowest first: built-in defaults < ``kiqpy.configure()`` in the ``-r`` modules
    < the ``-C`` file < environment variables < flags (click ranks the last two). A Config
    field that is left at its click default is omitted, so the value app code configured
    (applied by :func:`build_config` after the imports) stands rather than being reset."""
    file_values = _file_settings(ctx, opts.pop("config_file"))
    merged: dict[str, Any] = {}
    for key, value in opts.items():
        if _source_is_default(ctx, key):
            if key in file_values:
                value = file_values[key]
            elif key not in _CLI_KEYS:
                continue
        merged[key] = value
    if "queues" in merged:
        try:
            merged["queues"] = parse_queues(merged["queues"] or ("default",))
        except click.BadParameter as exc:
            exc.param_hint = "'-q' / '--queue'"
            raise
    if "redis_url" in merged:
        merged["redis_url"] = merged["redis_url"] or env_redis_url()
    if "poll_interval" in merged:
        merged["poll_interval_average"] = merged.pop("poll_interval")
    return merged


from kiqpy.cli.admin_jobs import clear, delete, kill, retry  # noqa: E402
from kiqpy.cli.cancel import cancel  # noqa: E402
from kiqpy.cli.enqueue import enqueue  # noqa: E402
from kiqpy.cli.periodic import periodic  # noqa: E402
from kiqpy.cli.process import process  # noqa: E402
from kiqpy.cli.queue import queue  # noqa: E402
from kiqpy.cli.stats import check, stats  # noqa: E402
from kiqpy.cli.top import top  # noqa: E402
from kiqpy.cli.web import web  # noqa: E402

main.add_command(stats)
main.add_command(check)
main.add_command(web)
main.add_command(periodic)
main.add_command(cancel)
main.add_command(queue)
main.add_command(enqueue)
main.add_command(retry)
main.add_command(kill)
main.add_command(delete)
main.add_command(clear)
main.add_command(process)
main.add_command(top)
