"""The blog's data: articles and comments in sqlite, and the cached word count in Redis.

Counting every word of every article and comment is too slow to do on each page view (here it
also sleeps ``WORD_COUNT_SLOWNESS`` seconds, 1 by default, to make the point). So the page reads
the count from Redis, and a job (``jobs.RecountWords``) recounts when the content changes.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import os
import sqlite3
import time
from pathlib import Path

import redis

import kiqpy

DEFAULT_DB = Path(__file__).resolve().parent / "var" / "blog.sqlite3"
CACHE_KEY = "word_count:total"

SCHEMA = """
CREATE TABLE IF NOT EXISTS articles (id INTEGER PRIMARY KEY, title TEXT NOT NULL,
                                     body TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS comments (id INTEGER PRIMARY KEY,
                                     article_id INTEGER NOT NULL REFERENCES articles(id),
                                     body TEXT NOT NULL);
"""


@dataclasses.dataclass(frozen=True)
class Count:
    words: int
    articles: int
    comments: int
    computed_at: float

    @property
    def version(self) -> int:
        """Content only grows in this example, so the number of rows orders the counts."""
        return self.articles + self.comments


# -- sqlite -----------------------------------------------------------------------------------
def connect() -> sqlite3.Connection:
    """The blog database (``$WORD_COUNT_DB``, else ``var/blog.sqlite3`` next to this file)."""
    path = Path(os.environ.get("WORD_COUNT_DB") or DEFAULT_DB)
    path.parent.mkdir(parents=True, exist_ok=True)
    # The page and the worker write from different processes: wait for each other's locks.
    db = sqlite3.connect(path, timeout=10)
    db.executescript(SCHEMA)
    return db


def add_article(db: sqlite3.Connection, title: str, body: str) -> int:
    with db:  # commits
        cursor = db.execute("INSERT INTO articles (title, body) VALUES (?, ?)", (title, body))
    return int(cursor.lastrowid or 0)


def add_comment(db: sqlite3.Connection, article_id: int, body: str) -> int:
    with db:
        cursor = db.execute("INSERT INTO comments (article_id, body) VALUES (?, ?)",
                            (article_id, body))
    return int(cursor.lastrowid or 0)


def articles(db: sqlite3.Connection) -> list[tuple[int, str, list[str]]]:
    """(id, title, comment bodies) of every article, newest first."""
    comments: dict[int, list[str]] = {}
    for article_id, body in db.execute("SELECT article_id, body FROM comments ORDER BY id"):
        comments.setdefault(article_id, []).append(body)
    return [(article_id, title, comments.get(article_id, []))
            for article_id, title in db.execute("SELECT id, title FROM articles ORDER BY id DESC")]


def count_words(db: sqlite3.Connection) -> Count:
    """The slow part: read every text and count its words."""
    time.sleep(float(os.environ.get("WORD_COUNT_SLOWNESS", "1")))
    # One read transaction, so the words and the row counts describe the same content.
    with db:
        db.execute("BEGIN")
        article_bodies = [body for (body,) in db.execute("SELECT body FROM articles")]
        comment_bodies = [body for (body,) in db.execute("SELECT body FROM comments")]
    words = sum(len(text.split()) for text in article_bodies + comment_bodies)
    return Count(words, len(article_bodies), len(comment_bodies), time.time())


# -- the cache in Redis -----------------------------------------------------------------------
@functools.cache
def redis_client() -> redis.Redis:
    """The Redis that kiqpy uses (``REDIS_URL``), shared by the page and the jobs."""
    return redis.Redis.from_url(kiqpy.default_config().redis_url)


def cached_count(client: redis.Redis) -> Count | None:
    raw = client.get(CACHE_KEY)
    return None if raw is None else Count(**json.loads(raw))


def store_count(client: redis.Redis, count: Count) -> bool:
    """Cache ``count`` unless a newer one is there already; returns whether it was stored.

    Jobs can finish out of order (several threads, retries, at-least-once delivery): a job
    that counted before the latest comment must not overwrite the count that includes it."""
    with client.pipeline() as pipe:
        while True:
            try:
                pipe.watch(CACHE_KEY)
                raw = pipe.get(CACHE_KEY)
                if raw is not None and Count(**json.loads(raw)).version > count.version:
                    pipe.unwatch()
                    return False
                pipe.multi()
                pipe.set(CACHE_KEY, json.dumps(dataclasses.asdict(count)))
                pipe.execute()
                return True
            except redis.WatchError:
                continue  # another job stored a count meanwhile: compare again
