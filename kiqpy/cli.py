"""The ``kiqpy`` command. Signal handlers live here and nowhere else.

    kiqpy -r myapp.jobs -c 25 -q default,mail      # the worker (same as `kiqpy worker ...`)
    kiqpy -q critical:3 -q default:1               # weighted queues
    QUEUE=default,mail REDIS_URL=redis://host/0 kiqpy -r myapp.jobs
"""

from __future__ import annotations

import difflib
import importlib
import importlib.util
import os
import signal
import sys
from pathlib import Path
from typing import Any

import click

from kiqpy import log as kiqpy_log
from kiqpy.config import Config, env_redis_url
from kiqpy.errors import ConfigurationError

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib  # type: ignore[no-redef]


def parse_queues(values: tuple[str, ...] | list[str]) -> tuple[tuple[str, int], ...]:
    """``("default,mail", "critical:3")`` -> ``(("default", 0), ("mail", 0), ("critical", 3))``.

    Raises click.BadParameter for a bad weight, and for Sidekiq's ``critical,2`` habit."""
    tokens = [t.strip() for value in values for t in str(value).split(",")]
    result: list[tuple[str, int]] = []
    for index, token in enumerate(tokens):
        if not token:
            raise click.BadParameter("empty queue name")
        if token.isdigit():
            before = tokens[index - 1].partition(":")[0] if index else "queue"
            raise click.BadParameter(
                f"{token!r} is not a queue name; for a weight write {before}:{token}")
        name, sep, weight = token.partition(":")
        if not name:
            raise click.BadParameter(f"{token!r} has no queue name")
        if sep:
            if not weight.isdigit() or int(weight) < 1:
                raise click.BadParameter(
                    f"bad weight in {token!r}: a weight is a whole number of at least 1")
            result.append((name, int(weight)))
        else:
            result.append((name, 0))
    if any(w for _, w in result):
        # Once any queue has a weight, queues without one count as weight 1.
        result = [(n, w or 1) for n, w in result]
    return tuple(result)


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


def require(target: str) -> None:
    """Import a module name (``myapp.jobs``) or a file path (``./jobs.py``)."""
    if target.endswith(".py") or os.sep in target:
        path = Path(target).resolve()
        if path.is_dir():
            path = path / "__init__.py"
        sys.path.insert(0, str(path.parent if path.name != "__init__.py" else path.parent.parent))
        name = path.stem if path.name != "__init__.py" else path.parent.name
        spec = importlib.util.spec_from_file_location(name, path)
        if spec is None or spec.loader is None:
            raise ImportError(f"cannot import {target}")
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
    else:
        if "" not in sys.path and os.getcwd() not in sys.path:
            sys.path.insert(0, os.getcwd())
        importlib.import_module(target)


class DefaultGroup(click.Group):
    """A group that runs ``worker`` when the first argument is not a command name."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        if not args or (args[0] not in self.commands
                        and args[0] not in ("--help", "-h", "--version", "-V")):
            args = ["worker", *args]
        return super().parse_args(ctx, args)


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
@click.option("-q", "--queue", "queues", multiple=True, envvar=["KIQPY_QUEUES", "QUEUES", "QUEUE"],
              help="Queues, comma separated or repeated; name:weight for weighted order.")
@click.option("-t", "--timeout", type=click.FloatRange(min=0), default=25.0, show_default=True,
              envvar="KIQPY_TIMEOUT", help="Seconds to let running jobs finish on shutdown.")
@click.option("-g", "--tag", default="", envvar="KIQPY_TAG", help="A tag shown for this process.")
@click.option("-C", "--config", "config_file", envvar="KIQPY_CONFIG",
              help="A TOML config file (keys as the long options, in a [kiqpy] table or at top).")
@click.option("--redis-url", envvar=["KIQPY_REDIS_URL", "REDIS_URL"],
              help="Redis to use [default: redis://localhost:6379/0].")
@click.option("--namespace", default="", envvar="KIQPY_NAMESPACE", help="Prefix for every key.")
@click.option("--serializer", type=click.Choice(["msgpack", "json"]), default="msgpack",
              envvar="KIQPY_SERIALIZER", help="Encoding of jobs this process writes.")
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
@click.option("--log-format", type=click.Choice(["auto", "console", "json"], case_sensitive=False),
              default="auto",
              envvar="KIQPY_LOG_FORMAT", help="Console on a TTY, JSON otherwise.")
@click.option("--log-level", type=click.Choice(kiqpy_log.LEVELS, case_sensitive=False),
              default="info",
              envvar="KIQPY_LOG_LEVEL", help="`warning` silences the per-job lines.")
@click.option("-v", "--verbose", is_flag=True, envvar="KIQPY_VERBOSE", help="Debug logging.")
@click.version_option(None, "-V", "--version", package_name="kiqpy", message="kiqpy %(version)s")
@click.pass_context
def worker(ctx: click.Context, **opts: Any) -> None:
    """Run jobs: kiqpy worker -r myapp.jobs -c 25 -q default,mail"""
    settings = _settings(ctx, opts)
    log_format, log_level = settings.pop("log_format"), settings.pop("log_level")
    kiqpy_log.setup(log_format, "debug" if settings.pop("verbose") else log_level)
    for target in settings.pop("requires"):
        try:
            require(target)
        except Exception as exc:
            click.echo(f"kiqpy: cannot import {target!r}: {type(exc).__name__}: {exc}", err=True)
            sys.exit(1)
    from kiqpy.worker import registered

    if not registered():
        kiqpy_log.get_logger().warning(
            "no job classes registered; pass the module that defines them with -r")
    config = build_config(settings)
    import kiqpy

    kiqpy.configure(config)
    sys.exit(serve(config))


def build_config(settings: dict[str, Any]) -> Config:
    """The default configuration with ``settings`` applied. Starting from the default (rather
    than a fresh Config) keeps the middleware and handlers that ``-r`` modules added to it
    at import time."""
    import kiqpy

    try:
        return kiqpy.default_config().replace(**settings)
    except ConfigurationError as exc:
        raise click.UsageError(str(exc)) from exc


def serve(config: Config) -> int:
    """Run a worker process with signal handlers until it stops; returns the exit code."""
    from kiqpy.launcher import Launcher

    try:
        launcher = Launcher(config)
    except ConfigurationError as exc:  # a bad Redis URL, for one
        raise click.UsageError(str(exc)) from exc
    _install_signals(launcher)
    return launcher.run()


# Keys a -C file may use beyond the option names (dashes or underscores both work).
_FILE_ALIASES = {"queue": "queues", "require": "requires"}


def _file_settings(ctx: click.Context, path: str | None) -> dict[str, Any]:
    """The -C file's values, checked and converted by the same click types as the flags, so
    ``concurrency = 0`` or a misspelt key is a usage error rather than a traceback."""
    raw = load_config_file(path)
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


def _file_key(param: click.Option) -> str:
    longs = [o for o in param.opts if o.startswith("--")]
    return longs[0][2:] if longs else str(param.name)


def _settings(ctx: click.Context, opts: dict[str, Any]) -> dict[str, Any]:
    """Merge flags and env vars (highest), the -C file, then defaults: Config keywords plus
    the CLI's own requires, verbose, log_format and log_level."""
    file_values = _file_settings(ctx, opts.pop("config_file"))
    merged: dict[str, Any] = {}
    for key, value in opts.items():
        if _source_is_default(ctx, key) and key in file_values:
            value = file_values[key]
        merged[key] = value
    try:
        merged["queues"] = parse_queues(merged["queues"] or ("default",))
    except click.BadParameter as exc:
        exc.param_hint = "'-q' / '--queue'"
        raise
    merged["redis_url"] = merged["redis_url"] or env_redis_url()
    merged["poll_interval_average"] = merged.pop("poll_interval")
    return merged


def _install_signals(launcher: Any) -> None:
    """TERM/INT: graceful stop (a second one exits at once). TSTP: quiet. TTIN: thread dump."""
    state = {"stopping": False}

    def stop(signum: int, frame: Any) -> None:
        if state["stopping"]:
            # Jobs still in-flight stay there; orphan recovery brings them back.
            os._exit(1)
        state["stopping"] = True
        launcher.stop()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    signal.signal(signal.SIGTSTP, lambda s, f: launcher.quiet())
    signal.signal(signal.SIGTTIN, lambda s, f: launcher.command("dump"))


from kiqpy.monitor import stats  # noqa: E402
from kiqpy.web_command import web  # noqa: E402

main.add_command(stats)
main.add_command(web)

if __name__ == "__main__":
    main()
