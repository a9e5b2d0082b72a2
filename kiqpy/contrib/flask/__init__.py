"""kiqpy in a Flask app (``pip install 'kiqpy[flask]'``)::

    from flask import Flask
    from kiqpy.contrib.flask import Kiqpy

    app = Flask(__name__)
    app.config["KIQPY_REDIS_URL"] = "redis://localhost:6379/0"
    app.config["KIQPY_NAMESPACE"] = "shop"
    Kiqpy(app, login_required=login_required)     # or kiqpy_ext.init_app(app) in a factory

- Configuration: ``app.config["KIQPY_<FIELD>"]`` for each :class:`kiqpy.Config` field
  (``KIQPY_REDIS_URL``, ``KIQPY_CONCURRENCY``, ``KIQPY_QUEUES``...) becomes kiqpy's default
  configuration; an unknown ``KIQPY_`` key is an error naming it.
- Jobs run inside ``app.app_context()`` (a server middleware), so ``current_app``,
  extensions and ``g`` work in ``perform``.
- The dashboard is a blueprint at ``KIQPY_DASHBOARD_PREFIX`` (default ``/kiqpy``; None: not
  mounted), behind ``login_required`` when given (any decorator that wraps a view, as
  Flask-Login's ``login_required``). CSRF is the dashboard's own (a token in the
  ``kiqpy_csrf`` cookie repeated in every form, and no cross-site POSTs); with Flask-WTF's
  ``CSRFProtect``, exempt the blueprint: ``csrf.exempt(app.blueprints["kiqpy"])``.
- ``flask kiqpy ...`` is the ``kiqpy`` command (worker, web, stats...) with the app loaded.

One Flask app per process configures kiqpy: ``init_app`` on a second app replaces the first.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from typing import Any

import click
import flask

import kiqpy
from kiqpy import queues
from kiqpy.config import Config
from kiqpy.contrib.cli import defaults
from kiqpy.contrib.mount import environ_below
from kiqpy.errors import ConfigurationError

__all__ = ["AppContext", "Kiqpy"]

_CODE_FIELDS = frozenset({"client_middleware", "server_middleware", "error_handlers",
                          "death_handlers", "event_handlers", "defer_push"})
_FIELDS = {f"KIQPY_{f.name.upper()}": f.name for f in dataclasses.fields(Config)
           if f.name not in _CODE_FIELDS}
_OWN_KEYS = frozenset({"KIQPY_DASHBOARD_PREFIX"})
DEFAULT_PREFIX = "/kiqpy"


class AppContext:
    """Server middleware: each job runs inside the Flask app's application context."""

    def __init__(self, app: flask.Flask) -> None:
        self.app = app

    def __call__(self, worker: Any, job: dict[str, Any], queue: str,
                 next: Callable[[], Any]) -> Any:
        with self.app.app_context():
            return next()


class Kiqpy:
    """The Flask extension; ``Kiqpy(app)`` or ``Kiqpy()`` then :meth:`init_app`."""

    def __init__(self, app: flask.Flask | None = None, *,
                 login_required: Callable[[Callable[..., Any]], Callable[..., Any]] | None = None
                 ) -> None:
        self.login_required = login_required
        self.config: Config | None = None
        if app is not None:
            self.init_app(app)

    def init_app(self, app: flask.Flask) -> Config:
        """Configure kiqpy from ``app.config``, run jobs in ``app``'s context, mount the
        dashboard, add ``flask kiqpy``. Returns the configuration."""
        config = kiqpy.configure(**config_fields(app.config))
        chain = config.server_middleware
        if AppContext in chain:
            chain.remove(AppContext)
        chain.add(AppContext, app)
        self.config = config
        prefix = app.config.get("KIQPY_DASHBOARD_PREFIX", DEFAULT_PREFIX)
        if prefix:
            app.register_blueprint(self._blueprint(config, str(prefix)))
        app.cli.add_command(_command(config))
        app.extensions["kiqpy"] = self
        return config

    def _blueprint(self, config: Config, prefix: str) -> flask.Blueprint:
        from kiqpy.web import create_app

        dashboard = create_app(config)
        mount = "/" + prefix.strip("/")

        def page(subpath: str = "") -> flask.Response:
            request = flask.request
            script = request.script_root.rstrip("/") + mount
            environ = environ_below(request.environ, script, subpath, request.method,
                                    request.get_data(cache=True), request.scheme)
            answer = dashboard.serve(environ)
            headers = [(k, v) for k, v in answer.headers if k.lower() != "content-length"]
            return flask.Response(answer.body, answer.status, headers)

        view = self.login_required(page) if self.login_required else page
        blueprint = flask.Blueprint("kiqpy", __name__, url_prefix=mount)
        methods = ["GET", "HEAD", "POST"]
        blueprint.add_url_rule("/", "dashboard", view, methods=methods,
                               defaults={"subpath": ""}, strict_slashes=False)
        blueprint.add_url_rule("/<path:subpath>", "page", view, methods=methods)
        return blueprint


def config_fields(app_config: Mapping[str, Any]) -> dict[str, Any]:
    """The :class:`kiqpy.Config` fields set in ``app.config`` (``KIQPY_<FIELD>``)."""
    fields: dict[str, Any] = {}
    for key, value in app_config.items():
        if not isinstance(key, str) or not key.startswith("KIQPY_") or key in _OWN_KEYS:
            continue
        name = _FIELDS.get(key)
        if name is None:
            raise ConfigurationError(
                f"app.config[{key!r}] is not a kiqpy setting; kiqpy takes "
                f"{', '.join(sorted(_FIELDS))} and KIQPY_DASHBOARD_PREFIX")
        fields[name] = _queues(value) if name == "queues" else value
    return fields


def _queues(value: Any) -> tuple[tuple[str, int], ...]:
    return queues.from_setting(value, "app.config['KIQPY_QUEUES']")


def _command(config: Config) -> click.Command:
    """``flask kiqpy ...``: kiqpy's own command line, with the app loaded and configured."""

    @click.command("kiqpy", add_help_option=False,
                   context_settings={"ignore_unknown_options": True, "allow_extra_args": True})
    @click.pass_context
    def command(ctx: click.Context) -> None:
        """Run kiqpy (the worker by default; web, stats...) for this app."""
        from kiqpy.cli import main

        main.main(args=ctx.args, prog_name=f"{ctx.parent.info_name if ctx.parent else 'flask'}"
                                           f" kiqpy", default_map=defaults(main, config))

    return command
