"""``kiqpy stats``: the state of a kiqpy system in a terminal (like sidekiqmon), or as JSON.

    kiqpy stats                      # overview, processes and queues as aligned tables
    kiqpy stats queues               # one section: overview | processes | queues | all
    kiqpy stats --json | jq .overview.enqueued

Built on :mod:`kiqpy.api`; reads only (apart from pruning dead processes from ``processes``,
as every reader of the process list does). ``kiqpy.cli.commands`` imports this module to
register the command, so :mod:`kiqpy.api` is imported only when the command runs: the worker
never loads it.
"""

from __future__ import annotations

import datetime as _dt
import json
import sys
import time
from collections.abc import Sequence
from typing import Any

import click
import redis

from kiqpy.config import Config
from kiqpy.connection import close, connect, safe_url, translate_errors
from kiqpy.errors import KiqpyError

SECTIONS = ("overview", "processes", "queues", "all")


def collect(config: Config, client: redis.Redis, section: str = "all") -> dict[str, Any]:
    """The data shown for ``section``: ``overview`` (:meth:`Stats.to_dict`), ``processes``
    (:meth:`Process.to_dict` each) and ``queues`` (name, size, latency, paused), as
    JSON-ready values."""
    from kiqpy.api import ProcessSet, Queue, Stats

    data: dict[str, Any] = {}
    if section in ("overview", "all"):
        data["overview"] = Stats(config, client).to_dict()
    if section in ("processes", "all"):
        data["processes"] = [p.to_dict() for p in ProcessSet(config, client)]
    if section in ("queues", "all"):
        paused = set(Queue.paused_names(config, client))
        queues = Queue.all(config, client)
        # A paused queue no job was pushed to yet is not in the `queues` set: shown anyway.
        queues += [Queue(n, config, client) for n in sorted(paused - {q.name for q in queues})]
        rows = [{**_queue_row(q), "paused": q.name in paused} for q in queues]
        data["queues"] = sorted(rows, key=lambda row: (-(row["size"] or 0), row["name"]))
    return data


def _queue_row(queue: Any) -> dict[str, Any]:
    """One queue's name, size and latency; a key that is not a list (written by something
    else) is reported as a problem rather than ending the command."""
    try:
        return {"name": queue.name, "size": queue.size, "latency": round(queue.latency, 3)}
    except redis.exceptions.ResponseError as exc:
        return {"name": queue.name, "size": None, "latency": None,
                "problem": f"{queue.key} is not a list ({exc})"}


# -- text rendering ----------------------------------------------------------------------------
def table(headers: Sequence[str], rows: Sequence[Sequence[Any]],
          right: Sequence[str] = ()) -> list[str]:
    """Columns padded to their widest cell; numbers, and the columns named in ``right``,
    right-aligned."""
    cells = [[str(c) for c in row] for row in rows]
    widths = [max([len(h), *(len(row[i]) for row in cells)]) for i, h in enumerate(headers)]
    flush_right = [h in right or (bool(rows) and all(isinstance(row[i], (int, float))
                                                     for row in rows))
                   for i, h in enumerate(headers)]

    def line(values: Sequence[str]) -> str:
        parts = [v.rjust(w) if r else v.ljust(w)
                 for v, w, r in zip(values, widths, flush_right, strict=True)]
        return "  ".join(parts).rstrip()

    return [line(list(headers)), *(line(row) for row in cells)]


def ago(epoch: float | None, now: float | None = None) -> str:
    """``epoch`` as a short age: ``12s``, ``5m 3s``, ``2h 10m``, ``3d 4h``."""
    if epoch is None:
        return "-"
    seconds = max(0, int((now or time.time()) - epoch))
    for unit, size, sub, sub_size in (("d", 86400, "h", 3600), ("h", 3600, "m", 60),
                                      ("m", 60, "s", 1)):
        if seconds >= size:
            return f"{seconds // size}{unit} {seconds % size // sub_size}{sub}"
    return f"{seconds}s"


def render_overview(overview: dict[str, Any]) -> list[str]:
    rows = [("Processed", f"{overview['processed']:,}"), ("Failed", f"{overview['failed']:,}"),
            ("Busy", f"{overview['workers_size']:,}"),
            ("Processes", f"{overview['processes_size']:,}"),
            ("Enqueued", f"{overview['enqueued']:,}"), ("Retries", f"{overview['retry_size']:,}"),
            ("Scheduled", f"{overview['scheduled_size']:,}"),
            ("Dead", f"{overview['dead_size']:,}"),
            ("Latency", f"{overview['default_queue_latency']:.2f}s (default queue)")]
    width = max(len(label) for label, _ in rows)
    return ["---- Overview ----", *(f"  {label.rjust(width)}: {value}" for label, value in rows)]


def render_processes(processes: list[dict[str, Any]]) -> list[str]:
    lines = [f"---- Processes ({len(processes)}) ----"]
    if not processes:
        return [*lines, "  (none)"]
    rows = [(p["identity"], p["tag"] or "-", ",".join(p["queues"]), p["busy"],
             p["concurrency"], f"{p['rss'] / 1024:.1f} MB", ago(p["started_at"]),
             ago(p["beat"]), "quiet" if p["quiet"] else "running") for p in processes]
    return lines + table(("IDENTITY", "TAG", "QUEUES", "BUSY", "THREADS", "RSS", "UPTIME",
                          "BEAT", "STATE"), rows, right=("RSS", "UPTIME", "BEAT"))


def render_queues(queues: list[dict[str, Any]]) -> list[str]:
    lines = [f"---- Queues ({len(queues)}) ----"]
    if not queues:
        return [*lines, "  (none)"]
    rows = [(q["name"], "?" if q["size"] is None else q["size"],
             q.get("problem") or f"{q['latency']:.2f}") for q in queues]
    if not any(q.get("paused") for q in queues):
        return lines + table(("NAME", "SIZE", "LATENCY"), rows, right=("SIZE", "LATENCY"))
    marked = [(*row, "paused" if q.get("paused") else "")
              for row, q in zip(rows, queues, strict=True)]
    return lines + table(("NAME", "SIZE", "LATENCY", "PAUSED"), marked,
                         right=("SIZE", "LATENCY"))


def render(data: dict[str, Any], header: str) -> str:
    """The text report for what :func:`collect` returned."""
    blocks = [[header]]
    if "overview" in data:
        blocks.append(render_overview(data["overview"]))
    if "processes" in data:
        blocks.append(render_processes(data["processes"]))
    if "queues" in data:
        blocks.append(render_queues(data["queues"]))
    return "\n\n".join("\n".join(block) for block in blocks)


def _header(config: Config, client: redis.Redis) -> str:
    from kiqpy.version import __version__

    info = client.info("server")
    now = _dt.datetime.now().astimezone().strftime("%Y-%m-%d %H:%M:%S %Z")
    namespace = f" namespace {config.namespace!r}" if config.namespace else ""
    return (f"kiqpy {__version__} / Redis {info.get('redis_version', '?')} at "
            f"{safe_url(config.redis_url)}"
            f"{namespace}, {now}")


# -- the command ---------------------------------------------------------------------------------
@click.command("stats")
@click.argument("section", type=click.Choice(SECTIONS), default="all")
@click.option("--json", "as_json", is_flag=True, help="Print JSON (for scripts) instead of text.")
@click.option("--redis-url", envvar=["KIQPY_REDIS_URL", "REDIS_URL"],
              help="Redis to read [env: KIQPY_REDIS_URL, REDIS_URL; default localhost].")
@click.option("--namespace", default="", envvar="KIQPY_NAMESPACE", help="Key prefix.")
def stats(section: str, as_json: bool, redis_url: str | None, namespace: str) -> None:
    """Show counters, live processes and queues (SECTION: overview, processes, queues, all)."""
    try:
        overrides: dict[str, Any] = {"namespace": namespace}
        if redis_url:
            overrides["redis_url"] = redis_url
        config = Config.from_env(**overrides)
        client = connect(config.redis_url, 2, config.socket_timeout, config.sentinel_auth)
        try:
            data = collect(config, client, section)
            if as_json:
                click.echo(json.dumps(data, indent=2, sort_keys=True))
            else:
                with translate_errors(client):
                    header = _header(config, client)
                click.echo(render(data, header))
        finally:
            close(client)
    except KiqpyError as exc:
        raise click.ClickException(str(exc)) from exc


@click.command("check")
@click.option("-q", "--queue", "queues", multiple=True,
              envvar=["KIQPY_QUEUES", "QUEUES", "QUEUE"],
              help="Queues that must have a live process, as the worker's -q takes them "
                   "(names, weights, patterns such as '*' or 'mail_*').")
@click.option("--redis-url", envvar=["KIQPY_REDIS_URL", "REDIS_URL"],
              help="Redis to check [env: KIQPY_REDIS_URL, REDIS_URL; default localhost].")
@click.option("--namespace", default="", envvar="KIQPY_NAMESPACE", help="Key prefix.")
def check(queues: tuple[str, ...], redis_url: str | None, namespace: str) -> None:
    """Exit 0 when Redis answers and a live, non-quiet kiqpy process serves every given queue
    (any process when none is given); exit 1 otherwise. For scripts and container probes."""
    from kiqpy.cli.health import check_cluster
    from kiqpy.connection import REDIS_DOWN
    from kiqpy.errors import ConfigurationError
    from kiqpy.keys import Keys
    from kiqpy.queues import parse as parse_queues

    overrides: dict[str, Any] = {"namespace": namespace}
    if redis_url:
        overrides["redis_url"] = redis_url
    config = Config.from_env(**overrides)
    try:
        parse_queues(queues)
    except ConfigurationError as exc:
        raise click.BadParameter(str(exc), param_hint="'-q' / '--queue'") from None
    client = connect(config.redis_url, 1, config.socket_timeout, config.sentinel_auth)
    try:
        # As the health port: a process whose heartbeat is two beats late counts as gone.
        ok, reason = check_cluster(client, Keys(config.namespace, config.on_cluster), queues,
                                   max_age=2 * config.heartbeat_interval + 5)
    except REDIS_DOWN as exc:
        ok, reason = False, f"cannot reach Redis at {safe_url(config.redis_url)}: {exc}"
    finally:
        close(client)
    click.echo(("ok: " if ok else "not ok: ") + reason)
    sys.exit(0 if ok else 1)
