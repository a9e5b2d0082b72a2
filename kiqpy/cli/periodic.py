"""``kiqpy periodic``: the periodic entries the workers run, and pausing, unpausing and running
one now (through :class:`kiqpy.api.PeriodicSet`).

    kiqpy periodic                   # a table: name, schedule, class, last and next tick
    kiqpy periodic list --json
    kiqpy periodic pause feeds       # skip its ticks until unpaused
    kiqpy periodic unpause feeds
    kiqpy periodic run feeds         # enqueue its job now
"""

from __future__ import annotations

import json
from typing import Any

import click

from kiqpy.cli.stats import table
from kiqpy.cli.target import config_for, redis_options
from kiqpy.errors import KiqpyError

ACTIONS = ("list", "pause", "unpause", "run")


@click.command("periodic")
@click.argument("action", type=click.Choice(ACTIONS), default="list")
@click.argument("name", required=False)
@click.option("--json", "as_json", is_flag=True, help="Print JSON (for scripts) instead of text.")
@redis_options
def periodic(action: str, name: str | None, as_json: bool, redis_url: str | None,
             namespace: str) -> None:
    """List periodic entries, or pause, unpause or run (enqueue now) the one called NAME."""
    from kiqpy.api import PeriodicSet

    if action != "list" and not name:
        raise click.UsageError(f"kiqpy periodic {action} needs the entry's NAME")
    try:
        entries = PeriodicSet(config_for(redis_url, namespace))
        if action == "list":
            _list(entries, as_json)
            return
        entry = entries.find(str(name))
        if entry is None:
            known = ", ".join(e.name for e in entries) or "none"
            raise click.ClickException(f"no periodic entry named {name!r} (known: {known})")
        if action == "pause":
            entry.pause()
            click.echo(f"paused {entry.name}")
        elif action == "unpause":
            entry.unpause()
            click.echo(f"unpaused {entry.name}")
        else:
            click.echo(f"enqueued {entry.name}: jid {entry.enqueue_now()}")
    except KiqpyError as exc:
        raise click.ClickException(str(exc)) from exc


def _list(entries: Any, as_json: bool) -> None:
    rows = [{"name": e.name, "schedule": e.schedule, "tz": e.tz, "class": e.klass,
             "args": e.args, "queue": e.queue, "catch_up": e.catch_up, "paused": e.paused,
             "last_tick": e.last_tick.isoformat() if e.last_tick else None, "jid": e.jid,
             "next_tick": e.next_tick.isoformat() if e.next_tick else None}
            for e in entries]
    if as_json:
        click.echo(json.dumps({"leader": entries.leader, "entries": rows}, indent=2))
        return
    click.echo(f"leader: {entries.leader or '(none)'}")
    lines = table(["NAME", "SCHEDULE", "TZ", "CLASS", "QUEUE", "LAST", "NEXT", "PAUSED"],
                  [[r["name"], r["schedule"], r["tz"], r["class"], r["queue"],
                    r["last_tick"] or "-", r["next_tick"] or "-", "yes" if r["paused"] else ""]
                   for r in rows])
    click.echo("\n".join(lines) if rows else "no periodic entries (none published yet)")
