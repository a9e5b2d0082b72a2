"""``kiqpy web``: the dashboard (:mod:`kiqpy.web`) served standalone by waitress.

    kiqpy web                                       # http://127.0.0.1:9292
    kiqpy web --port 8080 --redis-url redis://10.0.0.5/0
    KIQPY_WEB_AUTH=admin:s3cret kiqpy web --host 0.0.0.0

``kiqpy.cli.commands`` imports this module to register the command; the dashboard and waitress (the
``web`` extra) are imported only when the command runs, so the worker never loads them.
"""

from __future__ import annotations

import ipaddress
import logging
from typing import Any

import click

from kiqpy.config import Config
from kiqpy.connection import safe_url
from kiqpy.errors import KiqpyError

MISSING_EXTRA = "the dashboard needs the web extra: pip install 'kiqpy[web]'"


@click.command("web")
@click.option("--host", default="127.0.0.1", show_default=True, envvar="KIQPY_WEB_HOST",
              help="Address to listen on; anything but loopback exposes the dashboard "
                   "[env: KIQPY_WEB_HOST].")
@click.option("--port", type=click.IntRange(0, 65535), default=9292, show_default=True,
              envvar="KIQPY_WEB_PORT", help="Port to listen on [env: KIQPY_WEB_PORT].")
@click.option("--redis-url", envvar=["KIQPY_REDIS_URL", "REDIS_URL"],
              help="Redis to show [env: KIQPY_REDIS_URL, REDIS_URL; default localhost].")
@click.option("--namespace", default="", envvar="KIQPY_NAMESPACE", help="Key prefix.")
@click.option("--basic-auth", envvar="KIQPY_WEB_AUTH", metavar="USER:PASS",
              help="Require HTTP basic auth [env: KIQPY_WEB_AUTH].")
@click.option("--prefix", default="", help="Serve under this path, e.g. /kiqpy.")
@click.option("--threads", type=click.IntRange(1, 64), default=4, show_default=True,
              help="Request threads.")
@click.option("--trust-proxy", is_flag=True, envvar="KIQPY_WEB_TRUST_PROXY",
              help="Behind a TLS-terminating proxy: believe its X-Forwarded-Proto, so the "
                   "session cookie is Secure over HTTPS [env: KIQPY_WEB_TRUST_PROXY].")
def web(host: str, port: int, redis_url: str | None, namespace: str, basic_auth: str | None,
        prefix: str, threads: int, trust_proxy: bool) -> None:
    """Serve the web dashboard."""
    try:
        import waitress

        from kiqpy.web import create_app
    except ModuleNotFoundError as exc:
        raise click.ClickException(MISSING_EXTRA) from exc
    overrides: dict[str, Any] = {"namespace": namespace}
    if redis_url:
        overrides["redis_url"] = redis_url
    try:
        config = Config.from_env(**overrides)
        app = create_app(config, prefix=prefix, basic_auth=basic_auth or None,
                         trust_proxy=trust_proxy)
    except KiqpyError as exc:
        raise click.ClickException(str(exc)) from exc
    # Errors in pages (logged by kiqpy.web) and waitress's own warnings, with a time.
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(name)s %(levelname)s "
                                                      "%(message)s")
    host = _plain_host(host)
    if not _loopback(host) and not basic_auth:
        click.echo(f"warning: listening on {host} without --basic-auth: anyone who can reach "
                   f"this port can change your jobs", err=True)
    shown = f"[{host}]" if ":" in host else host
    click.echo(f"kiqpy web: http://{shown}:{port}{app.prefix}/ showing "
               f"{safe_url(config.redis_url)} (Ctrl-C stops)", err=True)
    try:
        waitress.serve(app, host=host, port=port, threads=threads, ident="kiqpy",
                       _quiet=True)
    except OSError as exc:  # the address is in use, or not one of this machine's
        raise click.ClickException(f"cannot listen on {shown}:{port}: {exc}") from exc


def _plain_host(host: str) -> str:
    """``host`` as a socket can bind it: an IPv4-mapped IPv6 address (``::ffff:127.0.0.1``)
    becomes its IPv4 address (an IPv6 socket may not bind one), brackets are dropped."""
    bare = host[1:-1] if host.startswith("[") and host.endswith("]") else host
    try:
        address = ipaddress.ip_address(bare)
    except ValueError:
        return host
    mapped = getattr(address, "ipv4_mapped", None)
    return str(mapped) if mapped is not None else bare


def _loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
