"""kiqpy.contrib.django in a real Django project (tests/django_project, sqlite in tmp):
settings.KIQPY, jobs.py autodiscovery, pushes deferred to the commit and dropped on a rollback
with a real ``manage.py kiqpy`` worker, the dashboard behind Django's login, ``manage.py kiqpy
stats``, and close_old_connections around jobs.

Django is set up once in this process (``djproject.settings``); each test makes settings.KIQPY
point at the test Redis and re-installs it, and the default configuration is reset after.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis

import kiqpy
from kiqpy.api import Stats
from kiqpy.config import Config
from kiqpy.keys import Keys
from tests.conftest import wait_for
from tests.redis_server import free_port
from tests.workers import FAST, LoggedProcess

django = pytest.importorskip("django")

SITE = Path(__file__).resolve().parent / "django_project"
KEYS = Keys("djshop")


@pytest.fixture(scope="module")
def django_db(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """Django set up with tests/django_project's settings and a migrated sqlite file."""
    from django.conf import settings

    db = tmp_path_factory.mktemp("django") / "db.sqlite3"
    if not settings.configured:
        saved = dict(os.environ)
        os.environ["DJANGO_SETTINGS_MODULE"] = "djproject.settings"
        os.environ["DJANGO_DB_PATH"] = str(db)
        sys.path.insert(0, str(SITE))
        try:
            django.setup()
        finally:  # the settings are loaded now; later subprocesses get a clean environment
            os.environ.clear()
            os.environ.update(saved)
    from django.core.management import call_command

    call_command("migrate", run_syncdb=True, verbosity=0)
    # The app's ready() configured kiqpy from the project's settings; the tests install it on
    # the test Redis themselves, and later test modules get the environment's default back.
    kiqpy.configure(Config.from_env())
    yield Path(settings.DATABASES["default"]["NAME"])


@pytest.fixture
def site(django_db: Path, r: redis.Redis, redis_url: str) -> Iterator[Any]:
    """settings.KIQPY on the test Redis, installed as the kiqpy app does on ready."""
    from django.apps import apps
    from django.conf import settings

    saved = settings.KIQPY
    settings.KIQPY = {"redis_url": redis_url, "namespace": "djshop"}
    app = apps.get_app_config("kiqpy")
    app.install()
    yield app
    settings.KIQPY = saved
    kiqpy.configure(Config(redis_url=redis_url))


def manage(django_db: Path, redis_url: str, *args: str) -> tuple[list[str], dict[str, str]]:
    env = {**os.environ, "KIQPY_REDIS_URL": redis_url, "DJANGO_DB_PATH": str(django_db),
           "PYTHONUNBUFFERED": "1"}
    env.pop("REDIS_URL", None)
    env.pop("DJANGO_SETTINGS_MODULE", None)
    return [sys.executable, "manage.py", *args], env


@pytest.fixture(params=[1])
def worker(request: pytest.FixtureRequest, site: Any, django_db: Path, redis_url: str,
           tmp_path: Path) -> Iterator[LoggedProcess]:
    """``python manage.py kiqpy`` (no -r: the app found djshop/jobs.py), with ``-p N`` when
    the test asks for more than one process."""
    count = int(request.param)
    processes = ["-p", str(count)] if count > 1 else []
    argv, env = manage(django_db, redis_url, "kiqpy", "--log-format", "json", "-c", "2",
                       *processes, *FAST)
    with LoggedProcess(argv, SITE, env, tmp_path / "worker.log") as process:
        wait_for(lambda: len(list(kiqpy.api.ProcessSet())) == count
                 or process.process.poll() is not None, timeout=30)
        assert process.process.poll() is None, process.log()
        yield process
        # TERM, so a supervisor stops its children too (a kill would orphan them).
        process.process.terminate()
        process.process.wait(30)


def queued() -> int:
    return int(redis.Redis.from_url(kiqpy.default_config().redis_url).llen(
        KEYS.queue("default")))


# -- transaction-safe pushes ------------------------------------------------------------------
@pytest.mark.slow
def test_push_inside_atomic_waits_for_commit_and_the_worker_finds_the_row(worker: Any) -> None:
    from django.db import transaction
    from djshop.jobs import ShipOrder
    from djshop.models import Order

    # Given a push inside a transaction: the jid comes back, nothing is in Redis yet
    with transaction.atomic():
        order = Order.objects.create(item="book")
        jid = ShipOrder.perform_async(order.pk)
        assert isinstance(jid, str) and len(jid) == 24
        assert queued() == 0
    # When it commits, Then the worker (manage.py kiqpy) runs it and finds the committed row
    wait_for(lambda: Order.objects.get(pk=order.pk).status == "shipped", timeout=20)
    assert Stats().failed == 0


@pytest.mark.slow
@pytest.mark.parametrize("worker", [2], indirect=True)
def test_forked_workers_run_pushes_of_many_transactions(worker: Any) -> None:
    """manage.py kiqpy -p 2: each forked child opens its own database connection."""
    from django.db import transaction
    from djshop.jobs import ShipOrder
    from djshop.models import Order

    ids = []
    for n in range(6):
        with transaction.atomic():
            order = Order.objects.create(item=f"box-{n}")
            ShipOrder.perform_async(order.pk)
            ids.append(order.pk)
    wait_for(lambda: Order.objects.filter(pk__in=ids, status="shipped").count() == 6,
             timeout=30)
    assert Stats().failed == 0


@pytest.mark.slow
def test_rollback_drops_the_push(worker: Any) -> None:
    from django.db import transaction
    from djshop.jobs import ShipOrder
    from djshop.models import Order

    with pytest.raises(RuntimeError), transaction.atomic():
        lost = Order.objects.create(item="lost")
        ShipOrder.perform_async(lost.pk)
        raise RuntimeError("rolled back")
    assert queued() == 0
    # A committed push after it runs; the rolled-back one never did (no failure, one job).
    with transaction.atomic():
        kept = Order.objects.create(item="kept")
        ShipOrder.perform_async(kept.pk)
    wait_for(lambda: Order.objects.get(pk=kept.pk).status == "shipped", timeout=20)
    wait_for(lambda: Stats().processed == 1)
    assert Stats().failed == 0 and queued() == 0
    assert not Order.objects.filter(item="lost").exists()


def test_on_commit_false_pushes_at_once_and_outside_a_transaction_nothing_waits(site: Any
                                                                                ) -> None:
    from django.db import transaction
    from djshop.jobs import ShipOrder

    with transaction.atomic():
        ShipOrder.set(on_commit=False).perform_async(1)
        assert queued() == 1
    ShipOrder.perform_async(2)
    assert queued() == 2
    # bulk pushes are deferred as a whole, every jid returned at once
    with transaction.atomic():
        jids = ShipOrder.perform_bulk([[3], [4]])
        assert len(jids) == 2 and all(jids) and queued() == 2
    assert queued() == 4


def test_transactional_off_defers_only_pushes_that_ask(site: Any) -> None:
    from django.conf import settings
    from django.db import transaction
    from djshop.jobs import ShipOrder

    settings.KIQPY = {**settings.KIQPY, "transactional": False}
    site.install()
    with transaction.atomic():
        ShipOrder.perform_async(1)
        kiqpy.enqueue("djshop.jobs.ShipOrder", 2, on_commit=True)
        assert queued() == 1
    assert queued() == 2


def test_on_commit_is_checked_as_an_option(site: Any) -> None:
    from djshop.jobs import ShipOrder

    with pytest.raises(kiqpy.OptionsError, match="on_commit"):
        ShipOrder.set(on_commit="yes")
    # and it never travels in the payload
    ShipOrder.set(on_commit=False).perform_async(1)
    raw = redis.Redis.from_url(kiqpy.default_config().redis_url).lrange(
        KEYS.queue("default"), 0, -1)
    assert b"on_commit" not in raw[0]


def test_bad_settings_name_the_key(site: Any) -> None:
    from django.conf import settings
    from django.core.exceptions import ImproperlyConfigured

    for bad, words in [({"redis_urll": "redis://x"}, "unknown key 'redis_urll'"),
                       ({"transactional": "yes"}, "transactional"),
                       ({"server_middleware": []}, "set it in code"),
                       ({"redis_url": "http://x"}, "settings.KIQPY: bad Redis URL")]:
        settings.KIQPY = bad
        with pytest.raises(ImproperlyConfigured, match=words):
            site.install()


# -- the dashboard in the URLconf ---------------------------------------------------------------
def _user(name: str, staff: bool = False, perm: str | None = None) -> Any:
    from django.contrib.auth.models import Permission, User

    user, _ = User.objects.get_or_create(username=name, defaults={"is_staff": staff})
    if perm:
        app_label, codename = perm.split(".")
        user.user_permissions.add(Permission.objects.get(content_type__app_label=app_label,
                                                         codename=codename))
    return user


def test_dashboard_needs_a_staff_login(site: Any) -> None:
    from django.test import Client

    client = Client(enforce_csrf_checks=True)
    page = client.get("/kiqpy/")
    assert page.status_code == 302
    assert page["Location"] == "/accounts/login/?next=/kiqpy/"
    client.force_login(_user("clerk"))
    assert client.get("/kiqpy/queues").status_code == 403
    client.force_login(_user("boss", staff=True))
    page = client.get("/kiqpy/queues")
    assert page.status_code == 200, page.content[:500]
    assert b'href="/kiqpy/busy"' in page.content
    assert page["Content-Security-Policy"].startswith("default-src 'none'")


def test_dashboard_post_uses_kiqpy_csrf_not_djangos(site: Any) -> None:
    from django.test import Client
    from djshop.jobs import ShipOrder

    ShipOrder.perform_async(1)
    client = Client(enforce_csrf_checks=True)
    client.force_login(_user("boss", staff=True))
    client.get("/kiqpy/queues")
    token = client.cookies["kiqpy_csrf"].value
    assert client.cookies["kiqpy_csrf"]["path"] == "/kiqpy"
    # Without kiqpy's token the POST is refused; with it, the queue is cleared.
    form = "application/x-www-form-urlencoded"
    refused = client.post("/kiqpy/queues/default", "op=clear", content_type=form,
                          headers={"Sec-Fetch-Site": "same-origin"})
    assert refused.status_code == 403 and queued() == 1
    done = client.post("/kiqpy/queues/default", f"op=clear&csrf={token}", content_type=form,
                       headers={"Sec-Fetch-Site": "same-origin"})
    assert done.status_code == 303 and done["Location"].startswith("/kiqpy/queues")
    assert queued() == 0


def test_dashboard_access_by_permission_or_callable(site: Any) -> None:
    from django.conf import settings
    from django.test import Client

    settings.KIQPY = {**settings.KIQPY, "dashboard_access": "djshop.view_order"}
    site.install()
    client = Client()
    client.force_login(_user("viewer", perm="djshop.view_order"))
    assert client.get("/kiqpy/").status_code == 200
    client.force_login(_user("boss", staff=True))
    assert client.get("/kiqpy/").status_code == 403
    settings.KIQPY = {**settings.KIQPY, "dashboard_access": lambda request: True}
    site.install()
    assert Client().get("/kiqpy/health").status_code == 200


# -- manage.py kiqpy ----------------------------------------------------------------------------
@pytest.mark.slow
def test_manage_py_kiqpy_stats_reads_settings(site: Any, django_db: Path, redis_url: str) -> None:
    from djshop.jobs import ShipOrder

    ShipOrder.perform_async(7)
    argv, env = manage(django_db, redis_url, "kiqpy", "stats", "--json")
    done = subprocess.run(argv, cwd=SITE, env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    data = json.loads(done.stdout)
    # The namespace came from settings.KIQPY, not from a flag.
    assert [(q["name"], q["size"]) for q in data["queues"]] == [("default", 1)]


@pytest.mark.slow
def test_manage_py_kiqpy_web_shows_the_settings_namespace(site: Any, django_db: Path,
                                                        redis_url: str, tmp_path: Path) -> None:
    import urllib.request

    port = free_port()
    argv, env = manage(django_db, redis_url, "kiqpy", "web", "--port", str(port))
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))

    def page() -> str:
        try:
            with opener.open(f"http://127.0.0.1:{port}/queues", timeout=2) as answer:
                return str(answer.read().decode())
        except OSError:
            return ""

    with LoggedProcess(argv, SITE, env, tmp_path / "web.log") as web:
        wait_for(lambda: page() or web.process.poll() is not None, timeout=30, interval=0.1)
        assert web.process.poll() is None, web.log()
        assert "djshop" in page()


def test_call_command_kiqpy_stats(site: Any, capsys: pytest.CaptureFixture[str]) -> None:
    from django.core.management import call_command
    from djshop.jobs import ShipOrder

    ShipOrder.perform_async(1)
    call_command("kiqpy", "stats", "--json")
    data = json.loads(capsys.readouterr().out)
    assert [(q["name"], q["size"]) for q in data["queues"]] == [("default", 1)]


@pytest.mark.slow
def test_manage_py_kiqpy_help_lists_kiqpys_commands(django_db: Path, redis_url: str) -> None:
    argv, env = manage(django_db, redis_url, "kiqpy", "--help")
    done = subprocess.run(argv, cwd=SITE, env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert "Usage: manage.py kiqpy" in done.stdout
    for command in ("worker", "web", "stats"):
        assert f"  {command} " in done.stdout, done.stdout


def test_close_old_connections_around_each_job(site: Any) -> None:
    from django.db import connection
    from djshop.models import Order

    from kiqpy.contrib.django.middleware import CloseOldConnections

    assert CloseOldConnections in kiqpy.default_config().server_middleware
    Order.objects.count()
    assert connection.connection is not None
    # CONN_MAX_AGE is 0 here, so the connection a job used is closed when it finishes.
    CloseOldConnections()(None, {}, "default", lambda: Order.objects.count())
    assert connection.connection is None
