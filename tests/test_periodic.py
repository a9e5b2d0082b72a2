"""Periodic jobs: declaring entries (errors at registration), computing ticks (time zones, DST,
seconds, intervals), and the ticker's guarantees with injected clocks: one job per tick however
many tickers run, catch-up rules, pause, schedule changes and removed entries."""

from __future__ import annotations

import datetime as dt
import threading
from collections.abc import Iterator
from zoneinfo import ZoneInfo

import pytest

import kiqpy
from kiqpy.api import PeriodicSet
from kiqpy.client import periodic as periodic_module
from kiqpy.client.periodic import Schedule
from kiqpy.errors import ConfigurationError, OptionsError
from kiqpy.keys import Keys
from kiqpy.log import get_logger
from kiqpy.payload import decode
from kiqpy.server.outage import Outage
from kiqpy.server.ticker import Ticker


class Report(kiqpy.Worker, name="periodic.Report"):
    def perform(self, *args):
        pass


@pytest.fixture
def registry() -> Iterator[None]:
    """Periodic entries registered by a test are forgotten after it."""
    before = {e.name for e in periodic_module.entries()}
    yield
    for entry in periodic_module.entries():
        if entry.name not in before:
            periodic_module.unregister(entry.name)


def berlin(*args: int, fold: int = 0) -> float:
    return dt.datetime(*args, tzinfo=ZoneInfo("Europe/Berlin"), fold=fold).timestamp()


def walls(schedule: Schedule, start: float, count: int) -> list[str]:
    zone, found, tick = ZoneInfo(schedule.tz), [], start
    for _ in range(count):
        tick = schedule.next_after(tick)
        found.append(dt.datetime.fromtimestamp(tick, zone).strftime("%m-%d %H:%M:%S%z"))
    return found


# -- declaring ---------------------------------------------------------------------------------
@pytest.mark.parametrize(("call", "message"), [
    (lambda: kiqpy.periodic("61 * * * *", Report), "invalid cron expression '61 \\* \\* \\* \\*'"),
    (lambda: kiqpy.periodic("* * *", Report), "expected 5 fields"),
    (lambda: kiqpy.periodic("0 3 * * *", Report, tz="Mars/Olympus"),
     "unknown time zone 'Mars/Olympus'"),
    (lambda: kiqpy.periodic("0 3 * * *", object), "needs a kiqpy.Worker subclass or a job name"),
    (lambda: kiqpy.periodic("0 3 * * *", Report, catch_up="some"), "catch_up must be one of"),
    (lambda: kiqpy.periodic(dt.timedelta(seconds=0.5), Report), "whole seconds"),
])
def test_bad_entries_fail_at_registration_naming_what_is_wrong(registry, call, message):
    with pytest.raises(ConfigurationError, match=message):
        call()


def test_options_are_checked_like_a_push_and_names_are_unique(registry):
    with pytest.raises(OptionsError, match="retry"):
        kiqpy.periodic("0 3 * * *", Report, retry="often")
    kiqpy.periodic("0 3 * * *", Report, name="nightly", queue="low", retry=3)
    with pytest.raises(ConfigurationError, match="two periodic entries are named 'nightly'"):
        kiqpy.periodic("0 4 * * *", Report, name="nightly")


# -- ticks ------------------------------------------------------------------------------------
def test_six_fields_put_seconds_first_and_intervals_align_to_the_epoch():
    every_ten = Schedule("*/10 * * * * *", None)
    assert every_ten.ticks(1_000_000_000, 1_000_000_030) == [
        1_000_000_010, 1_000_000_020, 1_000_000_030]
    assert Schedule(None, 300).ticks(1_000_000_001, 1_000_000_900) == [
        1_000_000_200, 1_000_000_500, 1_000_000_800]


def test_a_skipped_wall_time_runs_once_at_the_first_time_after_it():
    # 2026-03-29: Berlin jumps from 02:00 to 03:00; 02:30 does not exist that day
    schedule = Schedule("30 2 * * *", None, "Europe/Berlin")
    assert walls(schedule, berlin(2026, 3, 27, 12), 3) == [
        "03-28 02:30:00+0100", "03-29 03:00:00+0200", "03-30 02:30:00+0200"]


def test_a_repeated_wall_time_runs_once_but_wildcard_hours_follow_real_time():
    # 2026-10-25: Berlin goes from 03:00 back to 02:00; 02:30 happens twice
    fixed = Schedule("30 2 * * *", None, "Europe/Berlin")
    assert walls(fixed, berlin(2026, 10, 23, 12), 3) == [
        "10-24 02:30:00+0200", "10-25 02:30:00+0200", "10-26 02:30:00+0100"]
    hourly = Schedule("30 * * * *", None, "Europe/Berlin")
    assert walls(hourly, berlin(2026, 10, 25, 1, 45), 3) == [
        "10-25 02:30:00+0200", "10-25 02:30:00+0100", "10-25 03:30:00+0100"]


def test_ticks_in_a_time_zone_are_its_wall_times():
    schedule = Schedule("0 9 * * 1-5", None, "America/New_York")
    start = dt.datetime(2026, 12, 4, 12, tzinfo=dt.timezone.utc).timestamp()  # a Friday
    assert walls(schedule, start, 2) == ["12-04 09:00:00-0500", "12-07 09:00:00-0500"]


# -- the ticker ---------------------------------------------------------------------------------
class Clock:
    """A settable clock, optionally skewed, for tickers in one test."""

    def __init__(self, now: float, skew: float = 0.0) -> None:
        self.now, self.skew = now, skew

    def __call__(self) -> float:
        return self.now + self.skew


def ticker(config, r, identity: str, clock: Clock) -> Ticker:
    log = get_logger()
    return Ticker(config, r, Keys(config.namespace), identity, Outage("redis", log), log,
                  threading.Event(), clock=clock)


def queued_ticks(r, queue: str = "default") -> list[int]:
    return sorted(decode(raw)["periodic_tick"] for raw in r.lrange(f"queue:{queue}", 0, -1))


def test_three_tickers_with_skewed_clocks_enqueue_each_tick_once(config, r, registry):
    # Given a per-second entry and three tickers whose clocks disagree by seconds
    kiqpy.periodic("* * * * * *", Report, name="every-second")
    start = 1_900_000_000.0
    clocks = [Clock(start), Clock(start, skew=2.0), Clock(start, skew=-3.0)]
    tickers = [ticker(config, r, f"host:{n}:x", clock) for n, clock in enumerate(clocks)]
    # ...that all believe they lead (as in a partition)
    for t in tickers:
        t.leading, t._renewed = True, float("inf")
    # When each of them ticks every half second for 20 seconds
    for step in range(41):
        for clock, t in zip(clocks, tickers, strict=True):
            clock.now = start + step / 2
            t.step()
    # Then every tick from the first to the latest any clock reached is queued exactly once
    ticks = queued_ticks(r)
    assert ticks == list(range(ticks[0], ticks[-1] + 1))
    assert ticks[-1] == int(start + 20 + 2)  # the clock that runs ahead got there first


def test_a_new_leader_catches_up_by_the_entrys_rule(config, r, registry):
    kiqpy.periodic(dt.timedelta(minutes=1), Report, name="last")
    kiqpy.periodic(dt.timedelta(minutes=1), Report, name="all", catch_up="all", queue="all")
    kiqpy.periodic(dt.timedelta(minutes=1), Report, name="none", catch_up="none", queue="none")
    clock = Clock(1_900_000_000.0)
    first = ticker(config, r, "host:1:a", clock)
    first.step()  # leads, and starts every entry at now
    # When it dies and the next leader comes 5 minutes later
    clock.now += 300
    r.delete("kiqpy:periodic-leader")
    second = ticker(config, r, "host:2:b", clock)
    second.step()
    # Then "last" runs the newest missed tick, "all" each one, "none" none of them
    assert len(queued_ticks(r, "default")) == 1
    assert len(queued_ticks(r, "all")) == 5
    assert queued_ticks(r, "none") == []
    # And nothing is enqueued twice when the first one comes back and ticks again
    first.leading, first._renewed = True, float("inf")
    first.step()
    assert len(queued_ticks(r, "default")) + len(queued_ticks(r, "all")) == 6


def test_pause_skips_ticks_and_unpause_does_not_replay_them(config, r, registry):
    kiqpy.periodic("* * * * * *", Report, name="pausable")
    clock = Clock(1_900_000_000.0)
    t = ticker(config, r, "host:1:a", clock)
    t.step()
    [entry] = PeriodicSet(config, r)
    entry.pause()
    for _ in range(3):
        clock.now += 1
        t.step()
    assert queued_ticks(r) == []
    PeriodicSet(config, r).find("pausable").unpause()
    clock.now += 1
    t.step()
    assert queued_ticks(r) == [int(clock.now)]
    jid = PeriodicSet(config, r).find("pausable").enqueue_now()
    assert jid and len(queued_ticks(r)) == 2


def test_a_changed_schedule_starts_afresh_and_a_removed_entry_is_unpublished(config, r, registry):
    entry = kiqpy.periodic(dt.timedelta(minutes=1), Report, name="changing")
    clock = Clock(1_900_000_000.0)
    ticker(config, r, "host:1:a", clock).step()
    # When a deploy changes the schedule and, an hour later, a new leader runs it
    periodic_module.unregister(entry.name)
    kiqpy.periodic(dt.timedelta(minutes=7), Report, name="changing")
    kiqpy.periodic("0 3 * * *", Report, name="newcomer")
    clock.now += 3600
    r.delete("kiqpy:periodic-leader")
    ticker(config, r, "host:2:b", clock).step()
    # Then no tick of the old (or new) schedule from before the change is enqueued
    assert queued_ticks(r) == []
    published = {e.name: e for e in PeriodicSet(config, r)}
    assert published["changing"].schedule == "every 420 s"
    # And an entry the leader no longer has disappears from what is published
    periodic_module.unregister("newcomer")
    r.delete("kiqpy:periodic-leader")
    ticker(config, r, "host:3:c", clock).step()
    assert "newcomer" not in {e.name for e in PeriodicSet(config, r)}
    assert PeriodicSet(config, r).leader == "host:3:c"


# -- seen and steered: the dashboard, the CLI, the -C file ----------------------------------------
def published(config, r, *entries_args) -> Ticker:
    """Register entries, and have a ticker lead once, so they are published."""
    for args, kwargs in entries_args:
        kiqpy.periodic(*args, **kwargs)
    t = ticker(config, r, "host:1:leader", Clock(1_900_000_000.0))
    t.step()
    return t


def test_the_periodic_page_shows_entries_and_steers_them(config, r, registry):
    from tests.web_helpers import client_for, text

    published(config, r, (("*/5 * * * *", Report), {"name": "feeds", "args": ["all"],
                                                   "queue": "low", "tz": "Europe/Berlin"}))
    web = client_for(config)
    page = text(web.get("/periodic"))
    assert "feeds" in page and "*/5 * * * *" in page and "Europe/Berlin" in page
    assert "periodic.Report" in page and "host:1:leader" in page
    # Pause, unpause and enqueue now are POSTs with the CSRF token, as every action
    assert web.post("/periodic", {"op": "pause", "name": "feeds"}).status_code == 303
    assert PeriodicSet(config, r).find("feeds").paused
    assert "paused" in text(web.get("/periodic"))
    assert web.post("/periodic", {"op": "unpause", "name": "feeds"}).status_code == 303
    assert not PeriodicSet(config, r).find("feeds").paused
    assert web.post("/periodic", {"op": "run", "name": "feeds"}).status_code == 303
    [job] = [decode(raw) for raw in r.lrange("queue:low", 0, -1)]
    assert (job["class"], job["args"], job["periodic"]) == ("periodic.Report", ["all"], "feeds")
    assert web.post("/periodic", {"op": "run", "name": "nope"}).status_code == 404
    assert web.post("/periodic", {"op": "pause", "name": "feeds"}, token=None).status_code == 403


def test_kiqpy_periodic_lists_pauses_and_runs_entries(config, r, redis_url, registry):
    import json

    from click.testing import CliRunner

    from kiqpy.cli import main

    published(config, r, (("0 3 * * *", Report), {"name": "nightly"}))
    runner = CliRunner()
    listing = runner.invoke(main, ["periodic", "--redis-url", redis_url])
    assert listing.exit_code == 0, listing.output
    assert "nightly" in listing.output and "0 3 * * *" in listing.output
    assert runner.invoke(main, ["periodic", "pause", "nightly", "--redis-url",
                                redis_url]).output == "paused nightly\n"
    data = json.loads(runner.invoke(main, ["periodic", "list", "--json", "--redis-url",
                                           redis_url]).output)
    assert data["leader"] == "host:1:leader" and data["entries"][0]["paused"] is True
    ran = runner.invoke(main, ["periodic", "run", "nightly", "--redis-url", redis_url])
    assert ran.exit_code == 0 and ran.output.startswith("enqueued nightly: jid ")
    missing = runner.invoke(main, ["periodic", "pause", "other", "--redis-url", redis_url])
    assert missing.exit_code == 1 and "no periodic entry named 'other' (known: nightly)" in (
        missing.output)
    assert runner.invoke(main, ["periodic", "pause"]).exit_code == 2


def test_the_config_file_declares_periodic_entries(tmp_path, registry):
    from kiqpy.cli import commands

    path = tmp_path / "kiqpy.toml"
    path.write_text('[kiqpy]\nconcurrency = 2\n\n[[kiqpy.periodic]]\ncron = "0 * * * *"\n'
                    'class = "periodic.Report"\nargs = [1]\ntz = "UTC"\nqueue = "low"\n')
    [spec] = commands._file_periodic(str(path))
    commands.register_periodic(spec)
    [entry] = [e for e in periodic_module.entries() if e.job == "periodic.Report"]
    assert (entry.schedule.expression, entry.args, entry.options) == (
        "0 * * * *", [1], {"queue": "low"})
    # A bad schedule is a usage error naming the table; an unknown class fails by name
    path.write_text('[[kiqpy.periodic]]\ncron = "0 25 * * *"\nclass = "periodic.Report"\n')
    with pytest.raises(Exception, match=r"invalid cron expression"):
        commands._file_periodic(str(path))
    with pytest.raises(kiqpy.UnknownJobError, match=r"No\.Such"):
        commands.register_periodic({"cron": "0 * * * *", "class": "No.Such", "source": "x"})


def test_a_tick_missed_while_redis_was_down_runs_once_when_it_is_back(registry):
    import redis as redis_py

    from kiqpy.config import Config
    from tests.redis_server import RedisServer

    server = RedisServer(persistence=True).start()
    try:
        config = Config(redis_url=server.url, socket_timeout=1.0)
        client = redis_py.Redis.from_url(server.url)
        kiqpy.periodic(dt.timedelta(minutes=1), Report, name="minutely")
        clock = Clock(1_900_000_000.0)
        t = ticker(config, redis_py.Redis.from_url(server.url, socket_timeout=1), "h:1:a",
                   clock)
        t.step()
        # When Redis is down across two ticks
        server.stop()
        clock.now += 150
        with pytest.raises(redis_py.ConnectionError):
            t.step()
        server.start()
        # Then, once it is back, the newest missed tick runs ("last"), once
        t.step()
        t.step()
        missed = Schedule(None, 60).ticks(1_900_000_000, clock.now)
        assert len(missed) == 3 and queued_ticks(client) == [missed[-1]]
    finally:
        server.cleanup()
