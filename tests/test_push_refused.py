"""A push Redis refuses raises kiqpy.RedisRefusedError: in kiqpy's tree, still a redis-py
ResponseError, naming the (password-free) Redis URL and Redis's reason. (Out of memory is in
tests/test_redis_oom.py.)"""

from __future__ import annotations

from urllib.parse import urlsplit

import pytest
import redis

import kiqpy
from kiqpy.config import Config


class Mail(kiqpy.Worker, queue="mail"):
    def perform(self, to):
        pass


def test_a_key_of_another_type_is_a_refusal_naming_the_redis(config, r):
    r.set("queue:mail", "not a list")
    with pytest.raises(kiqpy.RedisRefusedError, match="WRONGTYPE") as refused:
        Mail.perform_async("bob")
    assert str(refused.value).startswith(f"Redis at {config.redis_url} refused the push: ")
    assert isinstance(refused.value.__cause__, redis.exceptions.ResponseError)
    with pytest.raises(redis.exceptions.ResponseError, match="WRONGTYPE"):  # as before
        kiqpy.default_client().push_bulk({"class": Mail, "args": [["a"], ["b"]]})
    assert r.get("queue:mail") == b"not a list"


def test_a_read_only_replica_is_a_refusal(config, r):
    r.execute_command("REPLICAOF", "127.0.0.1", "1")  # a master that is not there
    try:
        with pytest.raises(kiqpy.RedisRefusedError, match="read only") as refused:
            Mail.perform_async("bob")
        assert isinstance(refused.value, kiqpy.KiqpyError)
    finally:
        r.execute_command("REPLICAOF", "NO", "ONE")


def test_the_message_never_shows_the_password(config, r):
    r.acl_setuser("pusher", enabled=True, passwords=["+s3cret"], keys=["*"], channels=["*"],
                  commands=["+@all"])
    parts = urlsplit(config.redis_url)
    client = kiqpy.Client(Config(redis_url=f"redis://pusher:s3cret@{parts.netloc}/0"))
    try:
        r.set("queue:mail", "not a list")
        with pytest.raises(kiqpy.RedisRefusedError) as refused:
            client.push({"class": Mail, "args": ["bob"]})
        assert "s3cret" not in str(refused.value)
        assert f"redis://pusher:***@{parts.netloc}/0" in str(refused.value)
    finally:
        client.close()
        r.acl_deluser("pusher")
