"""The ``kiqpy top`` terminal UI (Textual), like Sidekiq 8's ``kiq``: counters, processes,
queues, busy jobs and the retry or dead set, read every second through :mod:`kiqpy.api`.

    counters  Processed, Failed, Busy, Enqueued, Retries, Scheduled, Dead, Latency
    tables    Processes | Queues | Busy | Retries (or Dead)
    keys      Q quiet / S stop the selected process; r retry / k kill the selected entry;
              e switch the entries between the retry and dead sets; q quit

Only imported by ``kiqpy top`` (kiqpy/cli/top.py) once Textual is known to be installed.

:class:`TopApp` owns one Redis client. Its refresh loop is a Textual timer that starts one
reader thread a second (``run_worker(thread=True, exclusive=True)``: a slow or unreachable
Redis never freezes the screen, and reads never pile up); the thread builds a
:class:`Snapshot` and hands it to the UI thread, which alone touches widgets. Actions run in a
thread too, then ask for a refresh. The app exits on ``q``; the client is closed on unmount.
"""

from __future__ import annotations

import contextlib
import time
from dataclasses import dataclass, field
from typing import Any

import redis
from textual import on
from textual.app import App, ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.css.query import NoMatches
from textual.screen import ModalScreen, Screen
from textual.widgets import Button, DataTable, Footer, Label, Static
from textual.worker import get_current_worker

from kiqpy.cli.process import state
from kiqpy.cli.stats import ago, collect
from kiqpy.config import Config
from kiqpy.connection import connect, safe_url
from kiqpy.errors import KiqpyError

# Entries of the retry or dead set shown (the newest first): a screen's worth and some.
ENTRIES_SHOWN = 100
REFRESH_SECONDS = 1.0


@dataclass
class Snapshot:
    """What one refresh read: JSON-ready rows, and the entries (for the actions)."""

    overview: dict[str, Any]
    processes: list[dict[str, Any]]
    queues: list[dict[str, Any]]
    busy: list[dict[str, Any]]
    entries: list[Any] = field(default_factory=list)  # SortedEntry, newest first
    entries_total: int = 0
    process_objects: dict[str, Any] = field(default_factory=dict)  # identity -> Process


def read_snapshot(config: Config, client: redis.Redis, entries_set: str) -> Snapshot:
    """Read everything the screen shows (a few round trips)."""
    from kiqpy.api import DeadSet, ProcessSet, RetrySet, WorkSet

    data = collect(config, client, "overview")
    processes = ProcessSet(config, client, with_work=True)
    pending = processes.pending_signals()
    rows = [{**p.to_dict(), "pending": pending.get(p.identity, [])} for p in processes]
    busy = [{"process": identity, "thread": thread, "queue": work.queue,
             "class": work.job.display_class, "args": work.job.display_args,
             "jid": work.job.jid, "run_at": work.run_at.timestamp() if work.run_at else None}
            for identity, thread, work in WorkSet.of(processes)]
    queues = collect(config, client, "queues")["queues"]
    jobs = (RetrySet if entries_set == "retry" else DeadSet)(config, client)
    page = jobs.page(1, ENTRIES_SHOWN)
    return Snapshot(data["overview"], rows, queues, busy, list(page.entries), page.total,
                    {p.identity: p for p in processes})


class Confirm(ModalScreen[bool]):
    """Yes or no before a destructive action (``y``/``n`` or the buttons; No has the focus,
    so Enter does nothing harmful)."""

    AUTO_FOCUS = "#no"
    BINDINGS = [Binding("y", "answer(True)", "Yes"), Binding("n,escape", "answer(False)", "No")]
    DEFAULT_CSS = """
    Confirm { align: center middle; }
    Confirm > Vertical { width: 70; height: auto; border: thick $error; padding: 1 2;
                         background: $surface; }
    Confirm Label { width: 100%; }
    Confirm Horizontal { height: auto; margin-top: 1; }
    Confirm Button { margin-right: 2; }
    """

    def __init__(self, question: str) -> None:
        super().__init__()
        self.question = question

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Label(self.question, id="question")
            with Horizontal():
                yield Button("Yes (y)", variant="error", id="yes")
                yield Button("No (n)", id="no")

    def action_answer(self, yes: bool) -> None:
        self.dismiss(yes)

    @on(Button.Pressed)
    def pressed(self, event: Button.Pressed) -> None:
        self.dismiss(event.button.id == "yes")


class TopApp(App[None]):
    """``kiqpy top``: the live view of one Redis (``config``).

    Its loop is Textual's: a timer starts one reader thread per ``refresh_seconds`` (the
    newest cancels an older one still running), which hands a Snapshot back to the UI thread;
    actions run in threads too. It owns its Redis client and closes it on unmount; it exits
    on ``q``."""

    TITLE = "kiqpy top"
    BINDINGS = [
        Binding("q", "quit", "Quit"),
        Binding("Q", "quiet", "Quiet process"),
        Binding("S", "stop", "Stop process"),
        Binding("r", "retry", "Retry entry"),
        Binding("k", "kill", "Kill entry"),
        Binding("e", "switch_entries", "Retries/Dead"),
    ]
    DEFAULT_CSS = """
    #counters { height: 1; padding: 0 1; background: $boost; }
    #status { height: 1; padding: 0 1; color: $text-muted; }
    .title { height: 1; padding: 0 1; text-style: bold; }
    .section { height: 1fr; }
    #entries-section { height: 2fr; }
    #queues-section { width: 1fr; }
    #busy-section { width: 2fr; }
    DataTable { height: 1fr; }
    """

    def __init__(self, config: Config, redis_client: redis.Redis | None = None,
                 refresh_seconds: float = REFRESH_SECONDS) -> None:
        super().__init__()
        self.config = config
        self.client = redis_client or connect(config.redis_url, 2, config.socket_timeout,
                                              config.sentinel_auth)
        self.refresh_seconds = refresh_seconds
        self.entries_set = "retry"
        self.snapshot: Snapshot | None = None
        self.refreshes = 0  # snapshots shown so far (tests wait on it)

    # -- layout ------------------------------------------------------------------------------
    def compose(self) -> ComposeResult:
        yield Static(f"kiqpy top: {safe_url(self.config.redis_url)}"
                     + (f" namespace {self.config.namespace!r}" if self.config.namespace
                        else ""), classes="title")
        yield Static("reading...", id="counters")
        with Vertical(classes="section"):
            yield Static("Processes", classes="title")
            yield _table("processes", "IDENTITY", "TAG", "QUEUES", "BUSY", "RSS", "UPTIME",
                         "BEAT", "STATE")
        with Horizontal(classes="section"):
            with Vertical(id="queues-section"):
                yield Static("Queues", classes="title")
                yield _table("queues", "NAME", "SIZE", "LATENCY", "PAUSED")
            with Vertical(id="busy-section"):
                yield Static("Busy", classes="title")
                yield _table("busy", "PROCESS", "THREAD", "QUEUE", "CLASS", "ARGS", "STARTED")
        with Vertical(classes="section", id="entries-section"):
            yield Static("Retries", classes="title", id="entries-title")
            yield _table("entries", "WHEN", "CLASS", "ARGS", "QUEUE", "ERROR", "JID")
        yield Static("", id="status")
        yield Footer()

    def on_mount(self) -> None:
        self.refresh_now()
        self.set_interval(self.refresh_seconds, self.refresh_now)

    def on_unmount(self) -> None:
        self.client.connection_pool.disconnect()

    # -- reading -----------------------------------------------------------------------------
    def refresh_now(self) -> None:
        """Start a read in a thread (a read still running is cancelled: the newest wins)."""
        self.run_worker(self._read, thread=True, exclusive=True, group="read")

    def _read(self) -> None:
        try:
            snapshot = read_snapshot(self.config, self.client, self.entries_set)
        except (KiqpyError, redis.RedisError) as exc:
            self.call_from_thread(self._failed, f"cannot read Redis: {exc}")
            return
        if not get_current_worker().is_cancelled:  # a newer read started: it wins
            self.call_from_thread(self.show, snapshot)

    def show(self, snapshot: Snapshot) -> None:
        """Put a snapshot on screen, keeping each table's selected row where it can."""
        try:
            self._show(snapshot)
        except NoMatches:  # the app is closing: its widgets are gone
            return

    def _show(self, snapshot: Snapshot) -> None:
        self.snapshot = snapshot
        o = snapshot.overview
        self._main.query_one("#counters", Static).update(
            f"Processed {o['processed']:,}  Failed {o['failed']:,}  "
            f"Busy {o['workers_size']:,}/{sum(p['concurrency'] for p in snapshot.processes):,}  "
            f"Processes {o['processes_size']:,}  Enqueued {o['enqueued']:,}  "
            f"Retries {o['retry_size']:,}  Scheduled {o['scheduled_size']:,}  "
            f"Dead {o['dead_size']:,}  Latency {o['default_queue_latency']:.2f}s")
        _fill(self._table("processes"), [
            (p["identity"], (p["identity"], p["tag"] or "-", ",".join(p["queues"]),
                             f"{p['busy']}/{p['concurrency']}", f"{p['rss'] / 1024:.1f} MB",
                             ago(p["started_at"]), ago(p["beat"]), state(p)))
            for p in snapshot.processes])
        _fill(self._table("queues"), [
            (q["name"], (q["name"], "?" if q["size"] is None else str(q["size"]),
                         q.get("problem") or f"{q['latency']:.2f}",
                         "paused" if q.get("paused") else ""))
            for q in snapshot.queues])
        _fill(self._table("busy"), [
            (f"{b['process']}/{b['thread']}", (b["process"], b["thread"], b["queue"],
                                               b["class"], _short(b["args"]), ago(b["run_at"])))
            for b in snapshot.busy])
        now = time.time()
        _fill(self._table("entries"), [
            (_entry_key(e), (_when(e.score, now), e.display_class, _short(e.display_args),
                             e.queue or "?", _short(e.error_message or e.error or ""),
                             e.jid or "?"))
            for e in snapshot.entries])
        name = "Retries" if self.entries_set == "retry" else "Dead"
        shown = len(snapshot.entries)
        self._main.query_one("#entries-title", Static).update(
            f"{name} ({shown} of {snapshot.entries_total})" if shown < snapshot.entries_total
            else f"{name} ({shown})")
        self.refreshes += 1
        self._status("")

    # -- actions -----------------------------------------------------------------------------
    def action_switch_entries(self) -> None:
        self.entries_set = "dead" if self.entries_set == "retry" else "retry"
        self.refresh_now()

    def action_quiet(self) -> None:
        process = self._selected_process()
        if process is not None:
            self._act(lambda: (process.quiet(), f"asked {process.identity} to quiet")[1])

    def action_stop(self) -> None:
        process = self._selected_process()
        if process is None:
            return

        def answered(yes: bool | None) -> None:
            if yes:
                self._act(lambda: (process.stop(), f"asked {process.identity} to stop")[1])

        self.push_screen(Confirm(f"Stop {process.identity}? It finishes or requeues its "
                                 f"jobs and exits."), answered)

    def action_retry(self) -> None:
        entry = self._selected_entry()
        if entry is not None:
            self._act(lambda: _moved(entry.retry(), "retried", entry))

    def action_kill(self) -> None:
        entry = self._selected_entry()
        if entry is None:
            return
        if self.entries_set == "dead":
            self.notify("already dead (r retries it)", severity="warning")
            return

        def answered(yes: bool | None) -> None:
            if yes:
                self._act(lambda: _moved(entry.kill(), "killed", entry))

        self.push_screen(Confirm(f"Kill {entry.display_class} {entry.jid}? It moves to the "
                                 f"dead set."), answered)

    def _act(self, do: Any) -> None:
        """Run ``do`` (returns the message to show) in a thread, then refresh."""

        def run() -> None:
            try:
                message, severity = do(), "information"
            except (KiqpyError, redis.RedisError) as exc:
                message, severity = str(exc), "error"
            self.call_from_thread(self._done, message, severity)

        self.run_worker(run, thread=True, group="act")

    def _failed(self, message: str) -> None:
        with contextlib.suppress(NoMatches):  # the app is closing
            self._status(message)

    def _done(self, message: str, severity: str) -> None:
        with contextlib.suppress(NoMatches):  # the app is closing
            self._status(message)
        self.notify(message, severity=severity)  # type: ignore[arg-type]
        self.refresh_now()

    # -- helpers -----------------------------------------------------------------------------
    @property
    def _main(self) -> Screen[Any]:
        """The screen with the tables, also while a Confirm is on top of it (a refresh may
        land then)."""
        return self.screen_stack[0]

    def _table(self, name: str) -> DataTable[str]:
        return self._main.query_one(f"#{name}", DataTable)

    def _status(self, text: str) -> None:
        self._main.query_one("#status", Static).update(text)

    def _selected_key(self, name: str) -> str | None:
        table = self._table(name)
        if not table.row_count:
            self.notify(f"no {name} to act on", severity="warning")
            return None
        return table.coordinate_to_cell_key(table.cursor_coordinate).row_key.value

    def _selected_process(self) -> Any:
        """The selected row's Process, as last read (its commands go through its client)."""
        key = self._selected_key("processes")
        processes = self.snapshot.process_objects if self.snapshot else {}
        return processes.get(key) if key is not None else None

    def _selected_entry(self) -> Any:
        key = self._selected_key("entries")
        entries = self.snapshot.entries if self.snapshot else []
        return next((e for e in entries if _entry_key(e) == key), None)


def _table(name: str, *columns: str) -> DataTable[str]:
    table: DataTable[str] = DataTable(id=name, cursor_type="row", zebra_stripes=True)
    table.add_columns(*columns)
    return table


def _fill(table: DataTable[str], rows: list[tuple[str, tuple[str, ...]]]) -> None:
    """Replace the rows, keeping the cursor on the same key (or the same position)."""
    selected = None
    if table.row_count:
        selected = table.coordinate_to_cell_key(table.cursor_coordinate).row_key.value
    position = table.cursor_row
    table.clear()
    seen: set[str] = set()
    for key, cells in rows:
        if key in seen:  # two rows can never share a key
            continue
        seen.add(key)
        table.add_row(*cells, key=key)
    if not table.row_count:
        return
    keys = [key for key, _ in rows]
    row = keys.index(selected) if selected in keys else min(position, table.row_count - 1)
    table.move_cursor(row=row, scroll=False)


def _entry_key(entry: Any) -> str:
    return f"{entry.score!r}/{entry.jid}/{hash(entry.value)}"


def _moved(done: bool, verb: str, entry: Any) -> str:
    if done:
        return f"{verb} {entry.display_class} {entry.jid}"
    return f"{entry.jid} had already left the set"


def _short(value: Any, width: int = 40) -> str:
    text = str(value)
    return text if len(text) <= width else text[:width - 1] + "…"


def _when(score: float, now: float) -> str:
    """``in 5m 3s`` (due later: retry, schedule) or ``2h 10m ago`` (died: dead)."""
    span = ago(now - abs(score - now), now)
    return f"in {span}" if score > now else f"{span} ago"

