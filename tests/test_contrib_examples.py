"""examples/django_app and examples/flask_app run as their READMEs say: every shell command of
the README, run as written from the example's folder (``python`` is this Python; a server gets a
free port), against the test Redis and a database in tmp."""

from __future__ import annotations

import http.cookiejar
import os
import re
import shlex
import subprocess
import sys
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

import pytest

from tests.conftest import wait_for
from tests.redis_server import free_port
from tests.workers import LoggedProcess

ROOT = Path(__file__).resolve().parent.parent
SHELL_BLOCK = re.compile(r"^```sh\n(.*?)^```", re.M | re.DOTALL)
ASSIGNMENT = re.compile(r"^([A-Za-z_][A-Za-z0-9_]*)=(.*)$")

NO_PROXY = urllib.request.ProxyHandler({})  # the servers are local, whatever the env says

pytestmark = pytest.mark.slow


def readme_commands(example: str) -> list[tuple[dict[str, str], list[str]]]:
    """The README's shell commands as (env assignments, argv), in order, without ``cd``."""
    found = []
    text = (ROOT / "examples" / example / "README.md").read_text()
    for block in SHELL_BLOCK.findall(text):
        for line in block.splitlines():
            argv = shlex.split(line, comments=True)
            env = {}
            while argv and ASSIGNMENT.match(argv[0]):
                name, value = ASSIGNMENT.match(argv[0]).groups()  # type: ignore[union-attr]
                env[name] = value
                argv.pop(0)
            if argv and argv[0] != "cd":
                found.append((env, argv))
    return found


class Example:
    """Runs an example's README commands in its folder with the test Redis."""

    def __init__(self, name: str, redis_url: str, env: dict[str, str]) -> None:
        self.folder = ROOT / "examples" / name
        self.commands = readme_commands(name)
        self.env = {**os.environ, "REDIS_URL": redis_url, "PYTHONUNBUFFERED": "1", **env}
        for name in ("KIQPY_REDIS_URL", "DJANGO_SETTINGS_MODULE", "FLASK_APP"):
            self.env.pop(name, None)

    def command(self, *prefix: str) -> tuple[dict[str, str], list[str]]:
        matches = [(env, argv) for env, argv in self.commands if argv[:len(prefix)] == list(prefix)]
        assert len(matches) == 1, f"{self.folder.name}/README.md: one command starting with " \
                                  f"{' '.join(prefix)!r} expected, found {matches}"
        return matches[0]

    def argv(self, argv: list[str]) -> list[str]:
        if argv[0] == "python":
            return [sys.executable, *argv[1:]]
        if argv[0] == "flask":
            return [sys.executable, "-m", "flask", *argv[1:]]
        return argv

    def run(self, *prefix: str) -> str:
        env, argv = self.command(*prefix)
        done = subprocess.run(self.argv(argv), cwd=self.folder, env={**self.env, **env},
                              capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, f"{shlex.join(argv)}:\n{done.stdout}\n{done.stderr}"
        return done.stdout

    def start(self, log: Path, *prefix: str, extra: tuple[str, ...] = (),
              replace: dict[str, str] | None = None) -> LoggedProcess:
        env, argv = self.command(*prefix)
        argv = [(replace or {}).get(arg, arg) for arg in argv]
        return LoggedProcess(self.argv(argv) + list(extra), self.folder, {**self.env, **env},
                             log)


def _get(opener: urllib.request.OpenerDirector, url: str, data: bytes | None = None
         ) -> tuple[int, str, str]:
    try:
        with opener.open(url, data, timeout=10) as answer:
            return answer.status, answer.geturl(), answer.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, url, exc.read().decode()
    except urllib.error.URLError:  # not listening yet
        return 0, url, ""


class NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: object, **kwargs: object) -> None:
        return None


def test_django_app_runs_as_its_readme_says(redis_url: str, r: object, tmp_path: Path) -> None:
    example = Example("django_app", redis_url, {"DJANGO_APP_DB": str(tmp_path / "db.sqlite3")})
    assert [argv[:3] for _, argv in example.commands] == [
        ["python", "manage.py", "migrate"], ["python", "manage.py", "kiqpy"],
        ["python", "manage.py", "place_order"], ["python", "manage.py", "orders"],
        ["python", "manage.py", "kiqpy"], ["python", "manage.py", "createsuperuser"],
        ["python", "manage.py", "runserver"]]
    example.run("python", "manage.py", "migrate")
    # The worker, as the README starts it: no -r, orders/jobs.py is found by the app.
    with example.start(tmp_path / "worker.log", "python", "manage.py", "kiqpy", "-c") as worker:
        placed = example.run("python", "manage.py", "place_order")
        assert re.fullmatch(r"order 1 placed; job [0-9a-f]{24} pushed at the commit\n", placed)
        wait_for(lambda: example.run("python", "manage.py", "orders") == "1 book confirmed\n"
                 or worker.process.poll() is not None, timeout=60, interval=0.3)
        assert worker.process.poll() is None, worker.log()
        assert example.run("python", "manage.py", "orders") == "1 book confirmed\n"
    stats = example.run("python", "manage.py", "kiqpy", "stats")
    assert "namespace 'shop'" in stats and "processed" in stats.lower()
    example.run("python", "manage.py", "createsuperuser")

    port = free_port()
    with example.start(tmp_path / "web.log", "python", "manage.py", "runserver",
                       extra=("--noreload",),
                       replace={"127.0.0.1:8000": f"127.0.0.1:{port}"}) as server:
        base = f"http://127.0.0.1:{port}"
        plain = urllib.request.build_opener(NoRedirect, NO_PROXY)
        wait_for(lambda: _get(plain, base + "/kiqpy/")[0] in (302, 200)
                 or server.process.poll() is not None, timeout=60, interval=0.2)
        assert server.process.poll() is None, server.log()
        # Not logged in: Django's login page, as the README says.
        try:
            plain.open(base + "/kiqpy/", timeout=10)
            raise AssertionError("expected a redirect")
        except urllib.error.HTTPError as exc:
            assert exc.code == 302
            assert exc.headers["Location"] == "/admin/login/?next=/kiqpy/"
        # Log in through the admin's form (Django's CSRF), then the dashboard opens.
        jar = http.cookiejar.CookieJar()
        browser = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(jar), NO_PROXY)
        status, _, page = _get(browser, base + "/admin/login/?next=/kiqpy/")
        assert status == 200
        token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page)
        assert token, page[:500]
        password = example.command("python", "manage.py", "createsuperuser")[0][
            "DJANGO_SUPERUSER_PASSWORD"]
        form = urllib.parse.urlencode({"csrfmiddlewaretoken": token.group(1),
                                       "username": "admin", "password": password,
                                       "next": "/kiqpy/"}).encode()
        status, url, page = _get(browser, base + "/admin/login/?next=/kiqpy/", form)
        assert status == 200 and url == base + "/kiqpy/", (status, url, page[:300])
        assert 'href="/kiqpy/queues"' in page


def test_flask_app_runs_as_its_readme_says(redis_url: str, r: object, tmp_path: Path) -> None:
    outbox = tmp_path / "outbox.txt"
    example = Example("flask_app", redis_url, {"FLASK_APP_OUTBOX": str(outbox)})
    assert [argv[:4] for _, argv in example.commands] == [
        ["flask", "--app", "app", "kiqpy"], ["flask", "--app", "app", "signup"],
        ["flask", "--app", "app", "kiqpy"], ["flask", "--app", "app", "run"]]
    with example.start(tmp_path / "worker.log", "flask", "--app", "app", "kiqpy", "-c") as worker:
        signed = example.run("flask", "--app", "app", "signup")
        assert re.fullmatch(r"ann: job [0-9a-f]{24}\nbob: job [0-9a-f]{24}\n", signed), signed
        wait_for(lambda: (outbox.exists() and len(outbox.read_text().splitlines()) == 2)
                 or worker.process.poll() is not None, timeout=30)
        assert worker.process.poll() is None, worker.log()
        assert sorted(outbox.read_text().splitlines()) == ["Welcome aboard, ann!",
                                                           "Welcome aboard, bob!"]
    stats = example.run("flask", "--app", "app", "kiqpy", "stats")
    assert "namespace 'flask-example'" in stats

    port = free_port()
    with example.start(tmp_path / "web.log", "flask", "--app", "app", "run",
                       replace={"5000": str(port)}) as server:
        base = f"http://127.0.0.1:{port}"
        plain = urllib.request.build_opener(NoRedirect, NO_PROXY)
        wait_for(lambda: _get(plain, base + "/kiqpy/")[0] != 0
                 or server.process.poll() is not None, timeout=30, interval=0.2)
        assert server.process.poll() is None, server.log()
        assert _get(plain, base + "/kiqpy/")[0] == 302
        browser = urllib.request.build_opener(
            urllib.request.HTTPCookieProcessor(http.cookiejar.CookieJar()), NO_PROXY)
        status, url, page = _get(browser, base + "/kiqpy/")
        assert status == 200 and url == base + "/kiqpy/", (status, url)
        assert "flask-example" in page and 'href="/kiqpy/queues"' in page
