"""kiqpy.config: the frozen Config, the environment, and the default configuration."""

from __future__ import annotations

import dataclasses
import threading

import pytest

import kiqpy
import kiqpy.client.push
import kiqpy.config
from kiqpy.config import DEFAULT_REDIS_URL, Config, env_redis_url
from kiqpy.errors import ConfigurationError
from tests.conftest import queued_jobs, wait_for


@pytest.fixture
def fresh_default(monkeypatch):
    """No default configuration or client yet (as in a new process); restored afterwards."""
    monkeypatch.setattr(kiqpy.config._default, "config", None)
    monkeypatch.setattr(kiqpy.client.push._default, "client", None)
    for name in ("KIQPY_REDIS_URL", "REDIS_URL", "KIQPY_NAMESPACE", "KIQPY_SERIALIZER"):
        monkeypatch.delenv(name, raising=False)
    return monkeypatch


# -- the environment ----------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("environ", "url"),
    [
        ({"KIQPY_REDIS_URL": "redis://kiqpy:1/0", "REDIS_URL": "redis://generic:2/0"},
         "redis://kiqpy:1/0"),
        ({"REDIS_URL": "redis://generic:2/0"}, "redis://generic:2/0"),
        ({"KIQPY_REDIS_URL": "", "REDIS_URL": "redis://generic:2/0"}, "redis://generic:2/0"),
        ({}, "redis://localhost:6379/0"),
    ],
)
def test_redis_url_precedence_kiqpy_then_generic_then_localhost(environ, url):
    assert env_redis_url(environ) == url
    assert Config.from_env(environ).redis_url == url


def test_from_env_reads_namespace_and_serializer_and_overrides_win():
    environ = {"KIQPY_NAMESPACE": "app", "KIQPY_SERIALIZER": "json"}
    config = Config.from_env(environ)
    assert (config.namespace, config.serializer) == ("app", "json")
    config = Config.from_env(environ, namespace="other", redis_url="redis://x:1/0")
    assert (config.namespace, config.redis_url) == ("other", "redis://x:1/0")


def test_the_default_configuration_comes_from_the_process_environment(fresh_default):
    fresh_default.setenv("REDIS_URL", "redis://from-env:6380/3")
    fresh_default.setenv("KIQPY_NAMESPACE", "envns")
    config = kiqpy.default_config()
    assert (config.redis_url, config.namespace) == ("redis://from-env:6380/3", "envns")
    assert kiqpy.default_config() is config
    assert kiqpy.default_client().config is config


def test_defaults():
    config = Config()
    assert config.redis_url == DEFAULT_REDIS_URL == "redis://localhost:6379/0"
    assert (config.namespace, config.serializer, config.concurrency) == ("", "msgpack", 10)
    assert config.queue_names == ["default"]


# -- validation ---------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"serializer": "yaml"}, "serializer must be one of msgpack, json, got 'yaml'"),
        ({"concurrency": 0}, "concurrency must be at least 1, got 0"),
        ({"concurrency": "5"}, "concurrency must be an int, got '5'"),
        ({"concurrency": True}, "concurrency must be an int, got True"),
        ({"pool_size": -1}, "pool_size must be positive, got -1"),
        ({"timeout": "25"}, "timeout must be a number of seconds, got '25'"),
        ({"queues": ()}, "at least one queue is needed"),
        ({"queues": (("mail", -1),)}, "bad queue 'mail' with weight -1"),
        ({"heartbeat_interval": 0}, "timeout, heartbeat_interval and process_ttl must be positive"),
        ({"redis_url": "http://:pw@host/0"},
         "bad Redis URL 'http://:***@host/0': it must start with redis://, rediss://, unix://, "
         "redis+sentinel:// or redis+cluster://"),
        ({"redis_url": "localhost:6379"},
         "bad Redis URL 'localhost:6379': it must start with redis://, rediss://, unix://, "
         "redis+sentinel:// or redis+cluster://"),
        ({"push_replicas": -1}, "push_replicas must be >= 0 and push_replicas_timeout > 0"),
        ({"sentinel_password": 123}, "sentinel_password must be a string, got int"),
    ],
)
def test_bad_values_are_refused_with_a_clear_message(changes, message):
    with pytest.raises(ConfigurationError) as info:
        Config(**changes)
    assert str(info.value) == message


def test_a_bad_serializer_in_the_environment_is_refused():
    with pytest.raises(ConfigurationError, match=r"serializer must be one of msgpack, json"):
        Config.from_env({"KIQPY_SERIALIZER": "pickle"})


def test_config_is_frozen_and_replace_shares_middleware_chains():
    config = Config()
    with pytest.raises(dataclasses.FrozenInstanceError):
        config.namespace = "x"  # type: ignore[misc]
    other = config.replace(namespace="x")
    assert other.namespace == "x" and config.namespace == ""
    assert other.client_middleware is config.client_middleware
    assert other.server_middleware is config.server_middleware
    assert other.error_handlers is config.error_handlers


def test_optional_numbers_may_be_none():
    config = Config(socket_timeout=None, poll_interval_average=None)
    assert config.poll_interval_average is None


# -- configure() --------------------------------------------------------------------------------
def test_configure_keeps_middleware_chains_and_replaces_the_client(config, r):
    # Given middleware on the default configuration and a client that has talked to Redis
    def stamp(job_class, job, queue, redis, next):
        job["stamped"] = True
        return next()

    config.client_middleware.add(stamp)
    config.error_handlers.append(print)
    old_client = kiqpy.default_client()
    old_client.redis.ping()
    connections = len(r.client_list())
    # When the namespace is changed with configure()
    new = kiqpy.configure(namespace="moved")
    # Then the old client's connection is closed
    wait_for(lambda: len(r.client_list()) < connections, message="the old pool to close")
    # And the chains and handlers carried over, and a new client pushes to the new namespace
    assert kiqpy.default_config() is new
    assert stamp in new.client_middleware and new.error_handlers == [print]
    assert kiqpy.default_client() is not old_client
    assert kiqpy.default_client().config is new
    kiqpy.enqueue("Other::Job", 1)
    [key] = [k for k in r.keys("*") if b"queue:" in k]
    assert key == b"moved:queue:default"
    assert queued_jobs(r, namespace="moved")[0]["stamped"] is True


def test_configure_with_a_whole_config_brings_its_own_chains(config):
    config.client_middleware.add(print)
    replacement = Config(redis_url=config.redis_url)
    assert kiqpy.configure(replacement) is replacement
    assert print not in kiqpy.default_config().client_middleware


def test_configure_with_keywords_starts_from_the_environment_when_nothing_is_set(fresh_default):
    fresh_default.setenv("KIQPY_NAMESPACE", "envns")
    config = kiqpy.configure(serializer="json")
    assert (config.namespace, config.serializer) == ("envns", "json")


def test_configure_refuses_bad_values_and_keeps_the_old_default(config):
    with pytest.raises(ConfigurationError):
        kiqpy.configure(concurrency=0)
    assert kiqpy.default_config() is config


def test_default_client_never_pairs_a_new_config_with_an_old_client(fresh_default):
    # Given another thread that calls configure() just as default_client() takes the lock
    real_lock = kiqpy.client.push._default.lock
    armed = [True]

    class RacingLock:
        def __enter__(self):
            if armed[0] and threading.current_thread() is threading.main_thread():
                armed[0] = False
                racer = threading.Thread(target=kiqpy.configure, kwargs={"namespace": "new"})
                racer.start()
                racer.join(5)
            return real_lock.__enter__()

        def __exit__(self, *exc):
            return real_lock.__exit__(*exc)

    kiqpy.configure(namespace="old")
    fresh_default.setattr(kiqpy.client.push._default, "lock", RacingLock())
    # When the default client is first built
    client = kiqpy.default_client()
    # Then it belongs to the configuration that is the default now
    assert client.config is kiqpy.default_config()
    assert client.config.namespace == "new"
