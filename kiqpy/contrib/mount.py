"""Serving the dashboard from a framework's own view: the WSGI environ the dashboard reads,
rebuilt for the path below the mount point, so the pages' links stay under it."""

from __future__ import annotations

import io
from collections.abc import Mapping
from typing import Any


def environ_below(environ: Mapping[str, Any], script_name: str, path_info: str, method: str,
                  body: bytes, scheme: str) -> dict[str, Any]:
    """A copy of ``environ`` (a WSGI environ, or Django's ``request.META``) for the dashboard:
    ``script_name`` is the URL path of the mount point, ``path_info`` the path below it (text,
    as the framework decoded it), ``body`` the request body the framework already read."""
    below = dict(environ)
    below["REQUEST_METHOD"] = method
    below["SCRIPT_NAME"] = script_name.rstrip("/")
    # PEP 3333: PATH_INFO holds the URL's bytes as latin-1; the dashboard decodes it as UTF-8.
    below["PATH_INFO"] = ("/" + path_info.lstrip("/")).encode("utf-8").decode("latin-1")
    below["wsgi.input"] = io.BytesIO(body)
    below["CONTENT_LENGTH"] = str(len(body))
    below["wsgi.url_scheme"] = scheme
    return below
