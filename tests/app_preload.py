"""A -r module for the --preload test: records the pid of every process that imports it."""

import os

import redis

from tests.app_jobs import Record  # noqa: F401  (a job class to register)

redis.Redis.from_url(os.environ["REDIS_URL"]).rpush("test:imported_by", os.getpid())
