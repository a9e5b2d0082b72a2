"""The job of the word_count example; the worker runs it with
``kiqpy -r examples.word_count.jobs``."""

from __future__ import annotations

import contextlib

import structlog

import kiqpy
from examples.word_count import blog

log = structlog.get_logger("examples.word_count")


class RecountWords(kiqpy.Worker, retry=3):
    """Recounts the words of the whole blog and caches the result. It takes no arguments and
    reads the current content, so running it twice, or late, does no harm."""

    def perform(self) -> None:
        with contextlib.closing(blog.connect()) as db:
            count = blog.count_words(db)
        stored = blog.store_count(blog.redis_client(), count)
        log.info("recounted", words=count.words, articles=count.articles,
                 comments=count.comments, stored=stored)
