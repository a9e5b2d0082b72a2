"""A small Flask app for tests/test_contrib_flask.py: ``create_app()`` (Redis from $REDIS_URL),
a job that needs the app context, and a session login."""

from __future__ import annotations

import functools
import os
from collections.abc import Callable
from typing import Any

import flask
import redis

import kiqpy
from kiqpy.contrib.flask import Kiqpy


class Greet(kiqpy.Worker, name="flask_site.Greet"):
    """Reads current_app's config: fails outside an app context."""

    def perform(self, who: str) -> None:
        app = flask.current_app
        client = redis.Redis.from_url(app.config["KIQPY_REDIS_URL"])
        client.set(f"greeted:{who}", f"{app.config['GREETING']} {who}")


def login_required(view: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(view)
    def wrapped(*args: Any, **kwargs: Any) -> Any:
        if not flask.session.get("user"):
            return flask.redirect(f"/login?next={flask.request.path}")
        return view(*args, **kwargs)

    return wrapped


def create_app(redis_url: str | None = None) -> flask.Flask:
    app = flask.Flask(__name__)
    app.config.update(SECRET_KEY="tests-only", GREETING="hello",
                      KIQPY_REDIS_URL=redis_url or os.environ["REDIS_URL"],
                      KIQPY_NAMESPACE="flaskshop")

    @app.get("/login")
    def login() -> Any:
        flask.session["user"] = "boss"
        return "logged in"

    Kiqpy(app, login_required=login_required)
    return app
