"""The kiqpy dashboard: a WSGI application showing and steering queues, jobs and workers.

Needs the ``web`` extra (``pip install 'kiqpy[web]'``: Jinja2 for the pages, waitress for
``kiqpy web``). Standalone::

    kiqpy web                                   # http://127.0.0.1:9292, default Redis
    kiqpy web --port 8080 --redis-url redis://10.0.0.5/0 --basic-auth admin:s3cret

In your own server, ``create_app()`` returns a plain WSGI callable::

    from kiqpy.web import create_app
    dashboard = create_app()                    # the default configuration's Redis
    # any WSGI server: waitress.serve(dashboard, host="127.0.0.1", port=9292)

Mounted in an ASGI app (Starlette, FastAPI, Django's ASGI), natively: ``create_asgi_app()``
takes the same arguments and runs the views in a thread so the event loop never waits on
Redis::

    from kiqpy.web import create_asgi_app
    app.mount("/kiqpy", create_asgi_app())

In a Django or Flask project, ``kiqpy.contrib.django`` and ``kiqpy.contrib.flask`` mount it
behind the project's own login. Behind a server that passes full paths to a plain WSGI app,
give ``prefix="/kiqpy"``.

Security: every change is a POST carrying a per-session token (cookie plus form field) and is
refused when the browser says it comes from another site; pages send a strict
Content-Security-Policy and may not be framed. There is no login of its own beyond optional
HTTP basic auth (``basic_auth="user:pass"``): when mounted, protect it the way the host app
protects its admin pages. ``GET /health`` answers without auth (for load balancers), and says
no more than whether Redis answers.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from kiqpy.errors import ConfigurationError

if TYPE_CHECKING:
    from kiqpy.config import Config
    from kiqpy.web.app import Dashboard
    from kiqpy.web.asgi import AsgiDashboard

__all__ = ["create_app", "create_asgi_app"]


def create_app(config: Config | None = None, *, prefix: str = "",
               basic_auth: str | tuple[str, str] | None = None,
               trust_proxy: bool = False, metrics: bool = False) -> Dashboard:
    """The dashboard as a WSGI application.

    ``config``: the :class:`kiqpy.Config` whose Redis and namespace to show (default:
    :func:`kiqpy.default_config`). ``prefix``: the path the app answers under when the server
    passes full paths (not needed when a dispatcher sets SCRIPT_NAME). ``basic_auth``:
    ``"user:pass"`` or a pair, to require HTTP basic auth. ``trust_proxy``: believe
    ``X-Forwarded-Proto: https`` from a TLS-terminating proxy in front (the session cookie
    then gets ``Secure``); leave it off when clients can reach the app directly.
    ``metrics``: also answer Prometheus scrapes at ``/metrics`` (the cluster's numbers from
    Redis; needs ``kiqpy[prometheus]``): a request that does not ask for HTML gets the
    exposition text, a browser still gets the Metrics page. Off by default: anyone who can
    reach the app (and pass its basic auth) could read them.

    Example: ``create_app(kiqpy.Config(redis_url="redis://10.0.0.5/0"), prefix="/kiqpy")``.
    """
    try:
        from kiqpy.web.app import Dashboard
    except ModuleNotFoundError as exc:
        if exc.name not in ("jinja2", "markupsafe"):
            raise
        raise ConfigurationError("the dashboard needs Jinja2: pip install 'kiqpy[web]'") from exc
    return Dashboard(config, prefix, basic_auth, trust_proxy, metrics)


def create_asgi_app(config: Config | None = None, *, prefix: str = "",
                    basic_auth: str | tuple[str, str] | None = None,
                    trust_proxy: bool = False, metrics: bool = False) -> AsgiDashboard:
    """The dashboard as a native ASGI application, for Starlette, FastAPI or any ASGI
    server; the arguments are :func:`create_app`'s. Mount it where it is served::

        app.mount("/kiqpy", create_asgi_app())              # FastAPI, Starlette
        # uvicorn 'kiqpy_asgi:app' with app = create_asgi_app() serves it alone

    The views' Redis calls run in a thread (``asyncio.to_thread``), never on the event loop.
    """
    dashboard = create_app(config, prefix=prefix, basic_auth=basic_auth,
                           trust_proxy=trust_proxy, metrics=metrics)  # says if Jinja2 is missing
    from kiqpy.web.asgi import AsgiDashboard

    return AsgiDashboard(dashboard)
