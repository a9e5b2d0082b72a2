"""The blog's web page, a tiny WSGI app served with wsgiref (run from the repo root):

    python -m examples.word_count.app --port 8000

GET /                          the page: the cached word count, the articles, two forms
GET /count                     the cached count as JSON ({"words": null, ...} before the first)
POST /articles                 title=...&body=...   adds an article, then enqueues a recount
POST /articles/<id>/comments   body=...             adds a comment, then enqueues a recount
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import html
import json
import re
import time
from collections.abc import Callable, Iterable
from typing import Any
from urllib.parse import parse_qs
from wsgiref.simple_server import make_server

from examples.word_count import blog
from examples.word_count.jobs import RecountWords

StartResponse = Callable[..., Any]
COMMENTS = re.compile(r"/articles/(\d+)/comments")


def app(environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
    method, path = environ["REQUEST_METHOD"], environ.get("PATH_INFO") or "/"
    with contextlib.closing(blog.connect()) as db:
        if method == "GET" and path == "/":
            return respond(start_response, "200 OK", "text/html", page(db))
        if method == "GET" and path == "/count":
            count = blog.cached_count(blog.redis_client())
            body = dataclasses.asdict(count) if count else {"words": None}
            return respond(start_response, "200 OK", "application/json", json.dumps(body))
        if method == "POST" and path == "/articles":
            form = read_form(environ)
            blog.add_article(db, form.get("title", "Untitled"), form.get("body", ""))
            return content_changed(start_response)
        if method == "POST" and (match := COMMENTS.fullmatch(path)):
            blog.add_comment(db, int(match[1]), read_form(environ).get("body", ""))
            return content_changed(start_response)
    return respond(start_response, "404 Not Found", "text/plain", "not found\n")


def content_changed(start_response: StartResponse) -> Iterable[bytes]:
    # Enqueue after the commit (add_* commit before returning): a worker may take the job
    # within a millisecond, and it must see the new row. The request does not wait for the
    # count; the page shows the previous one until the job has stored the new one.
    RecountWords.perform_async()
    start_response("303 See Other", [("Location", "/"), ("Content-Length", "0")])
    return [b""]


def page(db: Any) -> str:
    count = blog.cached_count(blog.redis_client())
    if count is None:
        summary = "Not counted yet: add an article, and a worker will count the words."
    else:
        when = time.strftime("%H:%M:%S", time.localtime(count.computed_at))
        summary = (f"{count.words} words in {count.articles} articles and {count.comments} "
                   f"comments (counted at {when}).")
    items = []
    for article_id, title, comments in blog.articles(db):
        notes = "".join(f"<li>{html.escape(c)}</li>" for c in comments)
        items.append(
            f"<li><b>{html.escape(title)}</b><ul>{notes}</ul>"
            f"<form method=post action=/articles/{article_id}/comments>"
            f"<input name=body placeholder=comment> <button>Comment</button></form></li>")
    return (f"<!doctype html><title>Word count</title><h1>Word count</h1><p>{summary}</p>"
            f"<form method=post action=/articles><input name=title placeholder=title> "
            f"<input name=body placeholder=text size=60> <button>Add article</button></form>"
            f"<ul>{''.join(items)}</ul>")


def read_form(environ: dict[str, Any]) -> dict[str, str]:
    length = int(environ.get("CONTENT_LENGTH") or 0)
    fields = parse_qs(environ["wsgi.input"].read(length).decode())
    return {name: values[0] for name, values in fields.items()}


def respond(start_response: StartResponse, status: str, kind: str, text: str
            ) -> Iterable[bytes]:
    body = text.encode()
    start_response(status, [("Content-Type", f"{kind}; charset=utf-8"),
                            ("Content-Length", str(len(body)))])
    return [body]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Serve the word_count example's page.")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8000)
    options = parser.parse_args(argv)
    with make_server(options.host, options.port, app) as server:
        print(f"serving on http://{options.host}:{options.port}/ (Ctrl-C stops)", flush=True)
        with contextlib.suppress(KeyboardInterrupt):
            server.serve_forever()


if __name__ == "__main__":
    main()
