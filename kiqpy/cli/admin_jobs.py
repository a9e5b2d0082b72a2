"""``kiqpy retry``, ``kill``, ``delete`` and ``clear``: the job sets from the shell, through
:mod:`kiqpy.api.sets` and :class:`kiqpy.api.Queue` (every move is the API's conditional Lua
script, so a job the scheduler or someone else moves meanwhile lands in one place only).

    kiqpy retry JID...              # from the retry or dead set to its queue now
    kiqpy retry --all [--from dead] # every entry of the retry (or dead) set
    kiqpy kill JID...               # from the retry or schedule set to the dead set
    kiqpy delete JID...             # from whichever of retry, dead, schedule holds it
    kiqpy clear retry|dead|schedule|queue NAME

JIDs are all looked up first: if one is in none of the sets searched, the command says which
and exits 1 without changing anything. A job that leaves its set between the lookup and the
change (run by the scheduler, retried by someone else) is reported, and the exit status is 1.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import click
import redis

from kiqpy.cli.admin import confirm, echo_json, json_option, redis_for, yes_option
from kiqpy.cli.target import config_for, redis_options
from kiqpy.config import Config
from kiqpy.errors import PayloadError

SET_NAMES = ("retry", "dead", "schedule")


def _set(name: str, config: Config, client: redis.Redis) -> Any:
    from kiqpy.api import DeadSet, RetrySet, ScheduledSet

    kinds = {"retry": RetrySet, "dead": DeadSet, "schedule": ScheduledSet}
    return kinds[name](config, client)


def _where(names: tuple[str, ...]) -> str:
    sets = [f"{n} set" if n != "schedule" else "schedule" for n in names]
    return sets[0] if len(sets) == 1 else ", ".join(sets[:-1]) + " or " + sets[-1]


def _find(jids: tuple[str, ...], names: tuple[str, ...], config: Config,
          client: redis.Redis) -> list[tuple[str, Any]]:
    """(set name, entry) for each JID, searched in ``names`` in order. An unknown JID is an
    error naming every unknown one, raised before anything changes."""
    sets = [(name, _set(name, config, client)) for name in names]
    found, unknown = [], []
    for jid in dict.fromkeys(jids):
        hit = next(((name, entry) for name, jobs in sets
                    if (entry := jobs.find_job(jid)) is not None), None)
        if hit is None:
            unknown.append(jid)
        else:
            found.append(hit)
    if unknown:
        raise click.ClickException(f"no job with jid {', '.join(unknown)} in the "
                                   f"{_where(names)}; nothing was changed")
    return found


def _apply(verb: str, found: list[tuple[str, Any]], act: Callable[[Any], bool],
           as_json: bool) -> None:
    """Run ``act`` on each entry; print what happened; exit 1 if any entry had left its set
    or could not be moved."""
    done: list[dict[str, Any]] = []
    failed: list[dict[str, Any]] = []
    for name, entry in found:
        try:
            ok, why = act(entry), f"it left the {name} set meanwhile"
        except PayloadError as exc:  # not a job: it can only be deleted
            ok, why = False, str(exc)
        (done if ok else failed).append({"jid": entry.jid, "from": name, **(
            {} if ok else {"error": why})})
    if as_json:
        echo_json({verb: done, "failed": failed})
    else:
        for row in done:
            click.echo(f"{verb} {row['jid']} (from {row['from']})")
        for row in failed:
            click.echo(f"not {verb}: {row['jid']}: {row['error']}", err=True)
    if failed:
        raise SystemExit(1)


def _jids_or_all(command: str, jids: tuple[str, ...], every: bool) -> None:
    if every and jids:
        raise click.UsageError(f"kiqpy {command} takes JIDs or --all, not both")
    if not every and not jids:
        raise click.UsageError(f"kiqpy {command} needs JIDs, or --all")


def _all(action: str, verb: str, name: str, config: Config, client: redis.Redis, yes: bool,
         as_json: bool, move: Callable[[Any], int]) -> None:
    """``--all``: ask, then ``move`` the whole set ``name`` (``action``: retry, kill)."""
    jobs = _set(name, config, client)
    confirm(f"{action} all {jobs.size} jobs of the {_where((name,))}", yes)
    count = move(jobs)
    if as_json:
        echo_json({verb: count, "from": name})
    else:
        click.echo(f"{verb} {count} jobs (from {name})")


@click.command("retry")
@click.argument("jids", nargs=-1, metavar="[JID]...")
@click.option("--all", "every", is_flag=True, help="Every entry of the --from set.")
@click.option("--from", "source", type=click.Choice(("retry", "dead")), default=None,
              help="The set to take from  [default: JIDs are searched in retry, then dead; "
                   "--all takes retry].")
@yes_option
@json_option
@redis_options
def retry(jids: tuple[str, ...], every: bool, source: str | None, yes: bool, as_json: bool,
          redis_url: str | None, namespace: str) -> None:
    """Push jobs of the retry or dead set onto their queues now (the manual retry does not
    count as an attempt). --all asks for confirmation."""
    _jids_or_all("retry", jids, every)
    config = config_for(redis_url, namespace)
    with redis_for(config) as client:
        if every:
            _all("retry", "retried", source or "retry", config, client, yes, as_json,
                 lambda jobs: jobs.retry_all())
            return
        found = _find(jids, (source,) if source else ("retry", "dead"), config, client)
        _apply("retried", found, lambda entry: entry.retry(), as_json)


@click.command("kill")
@click.argument("jids", nargs=-1, metavar="[JID]...")
@click.option("--all", "every", is_flag=True, help="Every entry of the --from set.")
@click.option("--from", "source", type=click.Choice(("retry", "schedule")), default=None,
              help="The set to take from  [default: JIDs are searched in retry, then "
                   "schedule; --all takes retry].")
@yes_option
@json_option
@redis_options
def kill(jids: tuple[str, ...], every: bool, source: str | None, yes: bool, as_json: bool,
         redis_url: str | None, namespace: str) -> None:
    """Move jobs of the retry or schedule set to the dead set (they can be retried from
    there). Asks for confirmation."""
    _jids_or_all("kill", jids, every)
    config = config_for(redis_url, namespace)
    with redis_for(config) as client:
        if every:
            _all("kill", "killed", source or "retry", config, client, yes, as_json,
                 lambda jobs: jobs.kill_all())
            return
        found = _find(jids, (source,) if source else ("retry", "schedule"), config, client)
        confirm(f"move {len(found)} job(s) to the dead set", yes)
        _apply("killed", found, lambda entry: entry.kill(), as_json)


@click.command("delete")
@click.argument("jids", nargs=-1, required=True, metavar="JID...")
@click.option("--from", "source", type=click.Choice(SET_NAMES), default=None,
              help="The set to delete from  [default: search retry, dead and schedule].")
@yes_option
@json_option
@redis_options
def delete(jids: tuple[str, ...], source: str | None, yes: bool, as_json: bool,
           redis_url: str | None, namespace: str) -> None:
    """Delete jobs from the retry, dead or schedule set for good (a waiting or running job:
    kiqpy cancel). Asks for confirmation."""
    config = config_for(redis_url, namespace)
    with redis_for(config) as client:
        found = _find(jids, (source,) if source else SET_NAMES, config, client)
        confirm(f"delete {len(found)} job(s) for good", yes)
        _apply("deleted", found, lambda entry: entry.delete(), as_json)


@click.command("clear")
@click.argument("target", type=click.Choice((*SET_NAMES, "queue")))
@click.argument("name", required=False)
@yes_option
@json_option
@redis_options
def clear(target: str, name: str | None, yes: bool, as_json: bool, redis_url: str | None,
          namespace: str) -> None:
    """Delete every job of the retry, dead or schedule set, or of the queue NAME (a paused
    queue stays paused). Asks for confirmation."""
    from kiqpy.api import Queue

    if (target == "queue") != (name is not None):
        raise click.UsageError("kiqpy clear queue needs the queue's NAME" if name is None
                               else f"kiqpy clear {target} takes no NAME")
    config = config_for(redis_url, namespace)
    with redis_for(config) as client:
        if target == "queue":
            try:
                jobs: Any = Queue(str(name), config, client)
            except ValueError as exc:  # a name Queue() refuses
                raise click.BadParameter(str(exc), param_hint="NAME") from None
            what = f"queue {name}"
        else:
            jobs, what = _set(target, config, client), _where((target,))
        confirm(f"delete all {jobs.size} jobs of the {what}", yes)
        count = jobs.clear()
    if as_json:
        echo_json({"cleared": name if target == "queue" else target, "queue": target == "queue",
                   "deleted": count})
    else:
        click.echo(f"cleared the {what}: {count} jobs deleted")
