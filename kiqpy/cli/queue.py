"""``kiqpy queue``: list the queues, and pause or unpause one (through :class:`kiqpy.api.Queue`).

    kiqpy queue                      # a table: name, size, latency, paused
    kiqpy queue list --json
    kiqpy queue pause mail           # every worker stops taking mail's jobs within 2 s
    kiqpy queue unpause mail
"""

from __future__ import annotations

import json
from typing import Any

import click

from kiqpy.cli.stats import table
from kiqpy.cli.target import config_for, redis_options
from kiqpy.config import Config
from kiqpy.errors import KiqpyError

ACTIONS = ("list", "pause", "unpause")


@click.command("queue")
@click.argument("action", type=click.Choice(ACTIONS), default="list")
@click.argument("name", required=False)
@click.option("--json", "as_json", is_flag=True, help="Print JSON (for scripts) instead of text.")
@redis_options
def queue(action: str, name: str | None, as_json: bool, redis_url: str | None,
          namespace: str) -> None:
    """List queues (with their paused state), or pause or unpause the queue called NAME.
    A paused queue keeps its jobs and takes new ones; workers take none until it is
    unpaused (jobs already running finish)."""
    from kiqpy.api import Queue

    if action != "list" and not name:
        raise click.UsageError(f"kiqpy queue {action} needs the queue's NAME")
    try:
        config = config_for(redis_url, namespace)
        if action == "list":
            _list(Queue, config, as_json)
        elif action == "pause":
            changed = Queue(str(name), config).pause()
            click.echo(f"paused {name}" + ("" if changed else " (it was already paused)"))
        else:
            changed = Queue(str(name), config).unpause()
            click.echo(f"unpaused {name}" + ("" if changed else " (it was not paused)"))
    except ValueError as exc:  # a queue name Queue() refuses
        raise click.BadParameter(str(exc), param_hint="NAME") from None
    except KiqpyError as exc:
        raise click.ClickException(str(exc)) from exc


def _list(queue_class: Any, config: Config, as_json: bool) -> None:
    listing = queue_class.listing(1, 10_000, config=config)
    rows = [{"name": row.queue.name, "size": row.size, "latency": round(row.latency, 3),
             "paused": row.paused, "problem": row.problem} for row in listing.rows]
    known = {row["name"] for row in rows}
    # A paused queue no job was pushed to yet is not in the `queues` set: list it anyway.
    rows += [{"name": n, "size": 0, "latency": 0.0, "paused": True, "problem": None}
             for n in queue_class.paused_names(config) if n not in known]
    rows.sort(key=lambda row: row["name"])
    if as_json:
        click.echo(json.dumps(rows, indent=2))
        return
    lines = table(["NAME", "SIZE", "LATENCY", "PAUSED"],
                  [[r["name"], "?" if r["problem"] else r["size"],
                    r["problem"] or f"{r['latency']:.2f}", "paused" if r["paused"] else ""]
                   for r in rows], right=("SIZE", "LATENCY"))
    click.echo("\n".join(lines) if rows else "no queues")
