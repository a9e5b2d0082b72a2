"""The example Flask app: `flask --app app ...` from examples/flask_app."""

import functools
import os
from pathlib import Path

import click
from flask import Flask, redirect, request, session
from jobs import SendWelcome

from kiqpy.contrib.flask import Kiqpy

HERE = Path(__file__).resolve().parent


def login_required(view):
    """A stand-in for Flask-Login's decorator: the dashboard is behind it."""

    @functools.wraps(view)
    def wrapped(*args, **kwargs):
        if "user" not in session:
            return redirect(f"/login?next={request.path}")
        return view(*args, **kwargs)

    return wrapped


def create_app():
    app = Flask(__name__)
    app.config.update(
        SECRET_KEY=os.environ.get("FLASK_SECRET_KEY", "example-only-not-secret"),
        OUTBOX=os.environ.get("FLASK_APP_OUTBOX", str(HERE / "var" / "outbox.txt")),
        WELCOME="Welcome aboard",
        KIQPY_REDIS_URL=os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0"),
        KIQPY_NAMESPACE="flask-example",
    )
    Kiqpy(app, login_required=login_required)  # the dashboard at /kiqpy, `flask kiqpy`

    @app.post("/signup")
    def signup():
        jid = SendWelcome.perform_async(request.form["name"])
        return {"jid": jid}

    @app.get("/login")
    def login():  # a demo login: real apps use their own
        session["user"] = "demo"
        return redirect(request.args.get("next", "/kiqpy/"))

    @app.cli.command("signup")
    @click.argument("names", nargs=-1, required=True)
    def signup_command(names):
        """Sign users up from the shell: one SendWelcome job each."""
        for name in names:
            click.echo(f"{name}: job {SendWelcome.perform_async(name)}")

    return app
