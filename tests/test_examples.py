"""examples/: each example runs as its README says, against the test Redis, with a real
``kiqpy`` worker process started with the README's own command line; and every ``kiqpy`` and
``python`` command in the examples' READMEs names files and modules that exist.

The scenario tests take the commands from the READMEs (``readme_command``), so a README that
drifts from the code fails here. Example outputs go to ``tmp_path`` through each example's
environment variable (``WORD_COUNT_DB``, ``DEVICE_SYNC_DIR``, ``MAIL_OUTBOX``,
``MIDDLEWARE_OUT``), never to ``examples/*/var``.
"""

from __future__ import annotations

import itertools
import json
import os
import re
import shlex
import subprocess
import sys
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from kiqpy.cli import commands as cli
from kiqpy.payload import decode
from tests.conftest import queued_jobs, wait_for
from tests.redis_server import free_port
from tests.workers import WorkerProcess, log_events

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "examples"
NAMES = ["sleeper", "word_count", "device_sync", "mail", "middleware", "testing", "periodic",
         "export", "django_app", "flask_app", "fastapi", "batch_import"]
SHELL_BLOCK = re.compile(r"^```sh\n(.*?)^```", re.M | re.DOTALL)
ASSIGNMENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*=")


# -- the READMEs' commands ----------------------------------------------------------------------
def readme(name: str) -> str:
    return (EXAMPLES / name / "README.md").read_text()


def commands(name: str) -> list[list[str]]:
    """The ``kiqpy`` and ``python`` commands of an example's README, as argv lists (comments,
    leading ``VAR=value`` assignments and other commands on the line removed)."""
    found = []
    for block in SHELL_BLOCK.findall(readme(name)):
        for line in block.splitlines():
            for part in line.split(";"):
                argv = shlex.split(part, comments=True)
                while argv and ASSIGNMENT.match(argv[0]):
                    argv.pop(0)
                if argv and argv[0] in ("kiqpy", "python", "flask"):
                    found.append(argv)
    return found


def readme_command(name: str, *prefix: str) -> list[str]:
    """The one README command of ``name`` that starts with ``prefix``."""
    matches = [argv for argv in commands(name) if argv[:len(prefix)] == list(prefix)]
    assert len(matches) == 1, f"{name}/README.md: expected one command starting with " \
                              f"{' '.join(prefix)!r}, found {matches}"
    return matches[0]


def run_python(argv: list[str], redis_url: str, env: dict[str, str] | None = None
               ) -> subprocess.CompletedProcess[str]:
    """Run a README ``python ...`` command from the repo root, as the README says."""
    assert argv[0] == "python"
    full_env = {**os.environ, "REDIS_URL": redis_url, **(env or {})}
    full_env.pop("KIQPY_REDIS_URL", None)
    done = subprocess.run([sys.executable, *argv[1:]], cwd=ROOT, env=full_env,
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, f"{shlex.join(argv)} failed:\n{done.stdout}\n{done.stderr}"
    return done


def run_kiqpy(argv: list[str], redis_url: str) -> subprocess.CompletedProcess[str]:
    """Run a README ``kiqpy ...`` command that exits by itself (``kiqpy stats``)."""
    assert argv[0] == "kiqpy"
    env = {**os.environ, "REDIS_URL": redis_url}
    env.pop("KIQPY_REDIS_URL", None)
    done = subprocess.run([sys.executable, "-m", "kiqpy.cli", *argv[1:]], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=30)
    assert done.returncode == 0, f"{shlex.join(argv)} failed:\n{done.stdout}\n{done.stderr}"
    return done


def start_worker(argv: list[str], redis_url: str, env: dict[str, str] | None = None
                 ) -> WorkerProcess:
    """A README ``kiqpy ...`` worker command, run by WorkerProcess (JSON logs, fast beats)."""
    assert argv[0] == "kiqpy"
    return WorkerProcess(redis_url, *argv[1:], require=None, env=env)


def events(worker: WorkerProcess, name: str) -> list[dict]:
    return [e for e in log_events(worker) if e.get("event") == name]


def counter(r, name: str) -> int:
    return int(r.get(f"stat:{name}") or 0)


# -- every README exists, and its commands name what exists --------------------------------------
def module_exists(name: str) -> bool:
    path = ROOT / name.replace(".", "/")
    return path.with_suffix(".py").is_file() or (path / "__init__.py").is_file()


def test_every_example_has_a_readme_and_is_listed():
    folders = sorted(p.name for p in EXAMPLES.iterdir()
                     if p.is_dir() and not p.name.startswith((".", "_"))
                     and p.name not in ("var", "deploy"))  # deploy/: service files, not code
    assert folders == sorted(NAMES)
    index, top = (EXAMPLES / "README.md").read_text(), (ROOT / "README.md").read_text()
    for name in NAMES:
        assert (EXAMPLES / name / "README.md").is_file()
        assert (EXAMPLES / name / "__init__.py").is_file()  # importable as examples.<name>
        assert f"]({name}/README.md)" in index
        assert f"](examples/{name}/README.md)" in top


@pytest.mark.parametrize("name", NAMES)
def test_readme_commands_name_existing_files_and_modules(name):
    found = commands(name)
    assert found, f"{name}/README.md has no kiqpy or python command"
    subcommands = set(cli.main.commands)
    # The framework examples (tests/test_contrib_examples.py runs them) work from their folder.
    base = EXAMPLES / name if f"cd examples/{name}" in readme(name) else ROOT
    for argv in found:
        where = f"{name}/README.md: {shlex.join(argv)}"
        args = argv[1:]
        if argv[0] == "flask":
            assert args[0] == "--app" and (base / f"{args[1]}.py").is_file(), where
        elif argv[0] == "kiqpy":
            if args and not args[0].startswith("-"):
                assert args[0] in subcommands, where
            for flag, value in itertools.pairwise(args):
                if flag in ("-r", "--require"):
                    is_path = "/" in value or value.endswith(".py")
                    assert (ROOT / value).is_file() if is_path else module_exists(value), where
                if flag in ("-C", "--config"):
                    assert (ROOT / value).is_file(), where
        elif args[0] == "-m":
            module = args[1]
            if module == "pytest":
                paths = [a for a in args[2:] if not a.startswith("-")]
                assert paths and all((ROOT / p).exists() for p in paths), where
            else:
                assert module_exists(module), where
        else:
            assert (base / args[0]).is_file(), where


# -- sleeper ------------------------------------------------------------------------------------
@pytest.mark.slow
def test_sleeper(r, redis_url):
    # Given three short Sleeper jobs, enqueued with the README's script (0.2 s, not 5 s)
    enqueue = readme_command("sleeper", "python", "-m", "examples.sleeper.enqueue", "--count")
    done = run_python([*enqueue[:3], "--count", "3", "--seconds", "0.2"], redis_url)
    jids = re.findall(r"jid ([0-9a-f]{24})", done.stdout)
    assert len(jids) == 3
    assert [(j["class"], j["args"]) for j in queued_jobs(r)] == [
        ("examples.sleeper.jobs.Sleeper", [0.2])] * 3

    # When the README's worker runs
    with start_worker(readme_command("sleeper", "kiqpy", "-r"), redis_url) as worker:
        wait_for(lambda: len(events(worker, "done")) == 3, message="three jobs done")
        wait_for(lambda: counter(r, "processed") == 3, message="the counters")
        stats = run_kiqpy(readme_command("sleeper", "kiqpy", "stats", "--json"), redis_url)

    # Then each job slept, logging with its jid, and the jobs ran side by side
    log = log_events(worker)
    for jid in jids:
        assert [e["event"] for e in log if e.get("jid") == jid] == [
            "start", "sleeping", "awake", "done"]
    assert all(e["elapsed"] >= 0.2 for e in events(worker, "done"))
    order = [e["event"] for e in log if e.get("event") in ("start", "done")]
    assert order.index("done") > 1, f"the jobs ran one at a time: {order}"
    assert r.llen("queue:default") == 0
    # And `kiqpy stats` (the README's way to watch it) counts them
    overview = json.loads(stats.stdout)["overview"]
    assert (overview["processed"], overview["failed"], overview["enqueued"]) == (3, 0, 0)


# -- word_count ---------------------------------------------------------------------------------
@pytest.fixture
def blog_env(tmp_path: Path) -> dict[str, str]:
    return {"WORD_COUNT_DB": str(tmp_path / "blog.sqlite3"), "WORD_COUNT_SLOWNESS": "0.05"}


@pytest.fixture
def blog_page(redis_url: str, blog_env: dict[str, str]) -> Iterator[str]:
    """The README's page server, on a free port; yields its base URL."""
    argv = readme_command("word_count", "python", "-m", "examples.word_count.app")
    port = free_port()
    argv = [sys.executable, *argv[1:argv.index("--port")], "--port", str(port)]
    env = {**os.environ, "REDIS_URL": redis_url, **blog_env}
    env.pop("KIQPY_REDIS_URL", None)
    server = subprocess.Popen(argv, cwd=ROOT, env=env, stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT, text=True)
    try:
        assert server.stdout is not None
        assert "serving on" in server.stdout.readline()
        yield f"http://127.0.0.1:{port}"
    finally:
        server.terminate()
        server.wait(10)


def get(url: str) -> str:
    with urllib.request.urlopen(url, timeout=10) as response:
        return str(response.read().decode())


def post(url: str, **form: str) -> None:
    data = urllib.parse.urlencode(form).encode()
    with urllib.request.urlopen(url, data=data, timeout=10) as response:
        assert response.status == 200  # after the 303 back to the page


def cached_words(base: str) -> object:
    return json.loads(get(f"{base}/count"))["words"]


@pytest.mark.slow
def test_word_count(r, redis_url, blog_env, blog_page):
    # Given the page, before any content: nothing counted
    assert cached_words(blog_page) is None
    assert "Not counted yet" in get(blog_page)

    with start_worker(readme_command("word_count", "kiqpy", "-r"), redis_url, blog_env) as worker:
        # When an article is added, the request returns and a job recounts in the background
        post(f"{blog_page}/articles", title="Hello", body="kiqpy counts these words")
        wait_for(lambda: cached_words(blog_page) == 4, message="the first count")

        # And when a comment is added, the cached count follows
        post(f"{blog_page}/articles/1/comments", body="two more")
        wait_for(lambda: cached_words(blog_page) == 6, message="the recount")

    # Then the page shows the cached figure, and each change ran one job
    assert "6 words in 1 articles and 1 comments" in get(blog_page)
    recounts = events(worker, "recounted")
    assert [e["words"] for e in recounts] == [4, 6]
    assert all(e["stored"] for e in recounts)


def test_word_count_keeps_the_newest_count_when_jobs_finish_out_of_order(r):
    from examples.word_count.blog import Count, cached_count, store_count

    # Given a count of the content with a comment already cached
    assert store_count(r, Count(words=6, articles=1, comments=1, computed_at=2.0))
    # When a job that counted before the comment finishes late
    assert not store_count(r, Count(words=4, articles=1, comments=0, computed_at=3.0))
    # Then the newer count stays
    assert cached_count(r) == Count(words=6, articles=1, comments=1, computed_at=2.0)


# -- device_sync --------------------------------------------------------------------------------
def toml(path: Path) -> dict:
    if sys.version_info >= (3, 11):
        import tomllib
    else:
        import tomli as tomllib
    return tomllib.loads(path.read_text())


def test_device_sync_worker_listens_to_every_queue_of_the_settings():
    settings = toml(EXAMPLES / "device_sync" / "settings.toml")
    needed = {"default", settings["bulk_data"]["queue"],
              *(source["queue"] for source in settings["sources"].values())}
    assert set(toml(EXAMPLES / "device_sync" / "kiqpy.toml")["kiqpy"]["queues"]) == needed
    flags = readme_command("device_sync", "kiqpy", "-r")
    assert set(flags[flags.index("-q") + 1].split(",")) == needed


@pytest.mark.slow
@pytest.mark.parametrize("form", ["-C", "-r"])
def test_device_sync(r, redis_url, tmp_path, form):
    env = {"DEVICE_SYNC_DIR": str(tmp_path)}
    # Given a sync request: one SourceJob per source, each on its own queue, and a BulkDataJob
    done = run_python(readme_command("device_sync", "python", "-m",
                                     "examples.device_sync.enqueue"), redis_url, env)
    assert re.search(r"SourceJob Product\s+-> queue product", done.stdout)
    assert {q: r.llen(f"queue:{q}") for q in ("default", "product", "customer", "bulk")} == {
        "default": 0, "product": 1, "customer": 1, "bulk": 1}
    queues = run_kiqpy(readme_command("device_sync", "kiqpy", "stats"), redis_url)
    for name in ("product", "customer", "bulk"):
        assert re.search(rf"^{name}\s+1\s", queues.stdout, re.M), queues.stdout

    # When the README's worker runs (with the -C file, or with the same settings as flags)
    with start_worker(readme_command("device_sync", "kiqpy", form), redis_url, env) as worker:
        pings = tmp_path / "pings.log"
        wait_for(lambda: pings.exists() and len(pings.read_text().splitlines()) == 2,
                 message="two pings")
        wait_for(lambda: len(events(worker, "done")) == 5, message="five jobs done")

    # Then each SourceJob stored its records and pinged the user's devices from its end
    lines = [json.loads(line) for line in pings.read_text().splitlines()]
    assert sorted((p["user_id"], p["message"], p["badge"], p["sources"]) for p in lines) == [
        ("alice", "2 Customer records", 2, ["Customer"]),
        ("alice", "3 Product records", 3, ["Product"])]
    product = json.loads((tmp_path / "store/shop/alice/Product.json").read_text())
    assert (product["requested_by"], sorted(product["records"])) == ("phone-1", ["1", "2", "3"])
    # And the bulk data file holds every record of every source
    bulk = [json.loads(line) for line in
            (tmp_path / "bulk/shop-alice.jsonl").read_text().splitlines()]
    assert sorted((row["source"], row["id"]) for row in bulk) == [
        ("Customer", "alice-1"), ("Customer", "alice-2"),
        ("Product", "1"), ("Product", "2"), ("Product", "3")]
    # And every job ran on the queue the settings gave it
    ran = {(e["job_class"].rsplit(".", 1)[1], e["queue"]) for e in events(worker, "done")}
    assert ran == {("SourceJob", "product"), ("SourceJob", "customer"),
                   ("BulkDataJob", "bulk"), ("PingJob", "default")}


# -- mail ---------------------------------------------------------------------------------------
@pytest.mark.slow
def test_mail(r, redis_url, tmp_path):
    outbox = tmp_path / "outbox"
    env = {"MAIL_OUTBOX": str(outbox)}
    worker_argv = readme_command("mail", "kiqpy", "-c")
    assert worker_argv == shlex.split("kiqpy -c 25 -q default,mail -r examples.mail.jobs")

    with start_worker(worker_argv, redis_url, env) as worker:
        # When three mails are enqueued, one to an address that is not one
        done = run_python(readme_command("mail", "python", "-m", "examples.mail.enqueue"),
                          redis_url, env)
        jids = dict(re.findall(r"-> (\S+) on queue mail, jid ([0-9a-f]{24})", done.stdout))
        assert list(jids) == ["ann@example.com", "bob@example.com", "not-an-address"]

        # Then the good ones are refused once (greylisted), retried a second later, and sent
        wait_for(lambda: len(list(outbox.glob("*.eml"))) == 2, message="two mails sent")
        wait_for(lambda: counter(r, "processed") == 5 and counter(r, "failed") == 3,
                 message="the counters")
    overview = run_kiqpy(readme_command("mail", "kiqpy", "stats"), redis_url).stdout
    for figure in ("Processed: 5", "Failed: 3", "Dead: 1", "Retries: 0"):
        assert figure in overview, overview

    log = log_events(worker)
    for address in ("ann@example.com", "bob@example.com"):
        mine = [e for e in log if e.get("jid") == jids[address]]
        assert [e["event"] for e in mine] == ["start", "fail", "start", "sent", "done"]
        assert mine[1]["error_class"] == "TemporaryFailure"
        mail = (outbox / f"{jids[address]}@kiqpy.example.eml").read_text()
        assert f"To: {address}" in mail and "Subject: Welcome!" in mail

    # And the bad address went to the dead set at its first failure, without retries
    [(payload, _)] = r.zrange("dead", 0, -1, withscores=True)
    dead = decode(payload)
    assert (dead["jid"], dead["args"][0]) == (jids["not-an-address"], "not-an-address")
    assert (dead["error_class"], dead["retry_count"]) == ("examples.mail.jobs.BadAddress", 0)
    assert [e["to"] for e in events(worker, "mail not sent")] == ["not-an-address"]


# -- middleware ---------------------------------------------------------------------------------
@pytest.mark.slow
def test_middleware(r, redis_url, tmp_path):
    env = {"MIDDLEWARE_OUT": str(tmp_path)}
    # Given two requests for two tenants, each enqueuing a report
    done = run_python(readme_command("middleware", "python", "-m", "examples.middleware.web"),
                      redis_url, env)
    requests = {tenant: request_id for request_id, tenant in
                re.findall(r"request (\w+) tenant (\w+):", done.stdout)}
    assert list(requests) == ["acme", "globex"]
    # Then the client middleware stamped each job, which has no tenant argument
    stamped = {job["args"][0]: (job["tenant"], job["request_id"]) for job in queued_jobs(r)}
    assert stamped == {"sales": ("acme", requests["acme"]),
                       "stock": ("globex", requests["globex"])}

    # When the worker runs them (BuildReport enqueues an EmailReport)
    reports = tmp_path / "reports.log"
    with start_worker(readme_command("middleware", "kiqpy", "-r"), redis_url, env) as worker:
        wait_for(lambda: reports.exists() and len(reports.read_text().splitlines()) == 4,
                 message="four jobs to record")
        wait_for(lambda: len(events(worker, "timing")) == 4, message="four timing lines")

    # Then every job, the follow-ups too, ran as its request's tenant
    lines = sorted(list(json.loads(line).values()) for line in reports.read_text().splitlines())
    assert lines == sorted([
        ["BuildReport", "sales", "acme", requests["acme"]],
        ["EmailReport", "sales", "acme", requests["acme"]],
        ["BuildReport", "stock", "globex", requests["globex"]],
        ["EmailReport", "stock", "globex", requests["globex"]]])
    # And the server middleware logged each job's time with its tenant
    timings = events(worker, "timing")
    assert sorted((e["job_class"].rsplit(".", 1)[1], e["tenant"]) for e in timings) == [
        ("BuildReport", "acme"), ("BuildReport", "globex"),
        ("EmailReport", "acme"), ("EmailReport", "globex")]
    assert all(e["ms"] >= 0 and e["request_id"] == requests[e["tenant"]] for e in timings)


# -- the examples' own test suites --------------------------------------------------------------
@pytest.mark.slow
@pytest.mark.parametrize("name", ["testing", "middleware"])
def test_example_test_suite_passes(name, redis_url):
    # Run as the README says, in a pytest of its own: the top-level run collects only tests/.
    done = run_python(readme_command(name, "python", "-m", "pytest"), redis_url)
    assert re.search(r"\d+ passed", done.stdout), done.stdout
    assert not re.search(r"failed|error|skipped", done.stdout), done.stdout


# -- periodic -----------------------------------------------------------------------------------
@pytest.mark.slow
def test_periodic(r, redis_url):
    # Given two workers started with the README's command, as on two hosts
    argv = readme_command("periodic", "kiqpy", "-r")
    with start_worker(argv, redis_url) as first, start_worker(argv, redis_url) as second:
        # When two 10-second ticks have passed
        wait_for(lambda: len(events(first, "pinged") + events(second, "pinged")) >= 2,
                 timeout=40, message="two pings")
        # Then each tick ran once, by one of them, and every device was seen
        ticks = [e["tick"] for e in events(first, "pinged") + events(second, "pinged")]
        assert len(ticks) == len(set(ticks)) and all(t % 10 == 0 for t in ticks)
        assert set(r.hkeys("example:devices:last_seen")) == {
            b"router-1", b"sensor-7", b"gateway-2"}
        leaders = [w for w in (first, second) if events(w, "periodic leader")]
        assert len(leaders) == 1
        # And the README's commands show and steer the entries
        steer = [argv for argv in commands("periodic") if argv[:2] == ["kiqpy", "periodic"]]
        listing = run_kiqpy(steer[0], redis_url)
        assert "ping-devices" in listing.stdout and "nightly-cleanup" in listing.stdout
        assert [run_kiqpy(argv, redis_url).stdout.split()[0] for argv in steer[1:]] == [
            "paused", "unpaused", "enqueued"]
        wait_for(lambda: events(first, "cleaned up") or events(second, "cleaned up"),
                 message="the cleanup, enqueued now")


# -- export -------------------------------------------------------------------------------------
@pytest.mark.slow
def test_export(r, redis_url):
    import signal

    out = EXAMPLES / "export" / "var" / "acme.csv"
    out.unlink(missing_ok=True)
    run_python(readme_command("export", "python", "-m", "examples.export.enqueue"), redis_url)
    argv = readme_command("export", "kiqpy", "-r")
    # Given the README's worker stopped half way with Ctrl-C
    with start_worker(argv, redis_url) as first:
        wait_for(lambda: out.exists() and len(out.read_text().splitlines()) >= 300,
                 timeout=30, message="some batches")
        first.signal(signal.SIGINT)
        assert first.wait(30) == 0
    written = len(out.read_text().splitlines())
    assert written < 2000
    # When it is started again, it resumes and completes
    with start_worker(argv, redis_url) as second:
        wait_for(lambda: events(second, "export complete"), timeout=60, message="the rest")
        assert events(second, "export resumed") and not events(second, "export started")
    # Then every user is in the file exactly once
    ids = [int(line.split(",")[0]) for line in out.read_text().splitlines()]
    assert ids == list(range(1, 2001))


# -- fastapi ------------------------------------------------------------------------------------
@pytest.fixture
def feed_server() -> Iterator[str]:
    """A local HTTP server answering every GET with a small feed; yields its base URL."""
    import http.server
    import threading

    class Feed(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            body = b"<rss>" + self.path.encode() + b"</rss>"
            self.send_response(200 if "missing" not in self.path else 404)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Feed)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_fastapi(config, r, redis_url, feed_server):
    from fastapi.testclient import TestClient

    from examples.fastapi.app import app

    url = f"{feed_server}/news.xml"
    with TestClient(app) as client:
        # Given the app, which enqueues with the async client
        answer = client.post("/feeds", params={"url": url})
        assert answer.status_code == 202
        jid = answer.json()["jid"]
        (job,) = queued_jobs(r, "feeds")
        assert (job["jid"], job["class"], job["args"]) == (
            jid, "examples.fastapi.jobs.FetchFeed", [url])
        assert client.get("/feeds", params={"url": url}).json() == {}
        # When the README's worker runs the async job
        with start_worker(readme_command("fastapi", "kiqpy", "-r"), redis_url) as worker:
            wait_for(lambda: client.get("/feeds", params={"url": url}).json(),
                     message="the fetch's result")
            wait_for(lambda: len(events(worker, "done")) == 1, message="the job's done line")
            worker.terminate()
            assert worker.wait(15) == 0
        # Then the app shows what the job recorded, and the worker logged it with its jid
        result = client.get("/feeds", params={"url": url}).json()
    assert result["status"] == "200" and result["jid"] == jid
    assert result["bytes"] == str(len(b"<rss>/news.xml</rss>"))
    assert [e["event"] for e in log_events(worker) if e.get("jid") == jid] == [
        "start", "fetched", "done"]
    assert r.llen("queue:feeds") == 0 and counter(r, "processed") == 1
    assert readme_command("fastapi", "python", "-m", "examples.fastapi.app")


# -- batch_import -------------------------------------------------------------------------------
@pytest.mark.slow
def test_batch_import(r, redis_url, tmp_path):
    out = tmp_path / "outbox.txt"
    env = {"BATCH_IMPORT_OUTBOX": str(out)}
    enqueue = readme_command("batch_import", "python", "-m", "examples.batch_import.enqueue")
    run_python([*enqueue[:3], "--rows", "300"], redis_url, env)
    with start_worker(readme_command("batch_import", "kiqpy", "-r"), redis_url, env) as worker:
        wait_for(lambda: events(worker, "import done"), timeout=60, message="the email")
        assert len(events(worker, "import complete")) == 1
    # One email, after every row (three of which failed once) was imported
    assert out.read_text().splitlines() == ["To: ann@example.com: import 1234 is done, 300 rows"]
    assert r.hlen("example:import:1234") == 300
