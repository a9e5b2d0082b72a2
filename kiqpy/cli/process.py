"""``kiqpy process``: the live worker processes, and the commands a process obeys (through
:class:`kiqpy.api.ProcessSet`).

    kiqpy process list [--json]      # identity, tag, queues, busy, memory, uptime, state
    kiqpy process quiet ID           # stop fetching; running jobs finish
    kiqpy process stop ID            # shut down as on TERM (asks first)
    kiqpy process dump ID            # log every thread's stack, as on TTIN

ID is a process identity (``host:pid:nonce``, as listed) or any unique prefix of one, such as
``host:pid``; ``--all`` sends the command to every live process. A command is taken by the
process at its next heartbeat (within ``--heartbeat-interval``, 10 s by default).
"""

from __future__ import annotations

from typing import Any

import click

from kiqpy.cli.admin import confirm, echo_json, json_option, redis_for, yes_option
from kiqpy.cli.stats import ago, table
from kiqpy.cli.target import config_for, redis_options

ACTIONS = ("list", "quiet", "stop", "dump")
# What each command asks of a process, as the sentence after "asked <identity> to".
_ASKED = {"quiet": "quiet (stop fetching new jobs)", "stop": "stop (finish or requeue its "
          "jobs, then exit)", "dump": "log the stack of every thread"}


def find_process(processes: Any, wanted: str) -> Any:
    """The live process whose identity is ``wanted`` or starts with it (unique), else a
    ClickException listing the live identities."""
    exact = processes.find(wanted)
    if exact is not None:
        return exact
    matches = [p for p in processes if p.identity.startswith(wanted)]
    if len(matches) == 1:
        return matches[0]
    live = ", ".join(p.identity for p in processes) or "none"
    if matches:
        raise click.ClickException(f"{wanted!r} matches {len(matches)} processes; give more of "
                                   f"the identity (live: {live})")
    raise click.ClickException(f"no live process {wanted!r} (live: {live})")


@click.command("process")
@click.argument("action", type=click.Choice(ACTIONS), default="list")
@click.argument("identity", metavar="[ID]", required=False)
@click.option("--all", "every", is_flag=True, help="quiet, stop or dump every live process.")
@yes_option
@json_option
@redis_options
def process(action: str, identity: str | None, every: bool, yes: bool, as_json: bool,
            redis_url: str | None, namespace: str) -> None:
    """List live processes, or quiet, stop or dump (log thread stacks of) the process ID.
    stop asks for confirmation."""
    from kiqpy.api import ProcessSet

    if action == "list" and (identity or every):
        raise click.UsageError("kiqpy process list takes no ID")
    if action != "list" and bool(identity) == every:
        raise click.UsageError(f"kiqpy process {action} needs a process ID, or --all")
    config = config_for(redis_url, namespace)
    with redis_for(config) as client:
        processes = ProcessSet(config, client)
        if action == "list":
            _list(processes, as_json)
            return
        targets = list(processes) if every else [find_process(processes, str(identity))]
        if action == "stop":
            confirm(f"stop {len(targets)} process(es): "
                    f"{', '.join(p.identity for p in targets) or 'none live'}", yes)
        for target in targets:
            {"quiet": target.quiet, "stop": target.stop, "dump": target.dump_threads}[action]()
    if as_json:
        echo_json({"action": action, "processes": [p.identity for p in targets]})
        return
    if not targets:
        click.echo("no live processes")
    for target in targets:
        click.echo(f"asked {target.identity} to {_ASKED[action]}; it acts at its next "
                   f"heartbeat")


def _list(processes: Any, as_json: bool) -> None:
    pending = processes.pending_signals()
    rows = [{**p.to_dict(), "pending": pending.get(p.identity, [])} for p in processes]
    if as_json:
        echo_json(rows)
        return
    if not rows:
        click.echo("no live processes")
        return
    click.echo("\n".join(table(
        ("IDENTITY", "TAG", "QUEUES", "BUSY", "THREADS", "RSS", "UPTIME", "BEAT", "STATE"),
        [(r["identity"], r["tag"] or "-", ",".join(r["queues"]), r["busy"], r["concurrency"],
          f"{r['rss'] / 1024:.1f} MB", ago(r["started_at"]), ago(r["beat"]), state(r))
         for r in rows], right=("RSS", "UPTIME", "BEAT"))))


def state(row: dict[str, Any]) -> str:
    """``running``, ``quiet``, or what was asked and not yet taken (``stop requested``)."""
    asked = [c for c in ("stop", "quiet") if c in row["pending"]]
    if asked:
        return f"{asked[0]} requested"
    return "quiet" if row["quiet"] else "running"
