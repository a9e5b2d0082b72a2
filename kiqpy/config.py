"""Configuration: one typed, frozen object handed to every constructor.

In a worker started by the ``kiqpy`` command, each field comes, lowest precedence first, from:

1. the defaults here (``redis_url``, ``namespace`` and ``serializer`` also read ``KIQPY_*`` /
   ``REDIS_URL`` when the default configuration is first built);
2. :func:`configure` called by the ``-r`` modules at import time;
3. the TOML file (``-C``);
4. ``KIQPY_*`` / ``REDIS_URL`` / ``QUEUE`` environment variables;
5. CLI flags.

The CLI passes only the fields that 3 to 5 set (click's ``get_parameter_source`` tells its
defaults from explicit values), applied to the default configuration after the imports, so app
code's values stand where the operator set nothing. In a program, explicit keywords to
:func:`configure` or :class:`Config` win. Library code reads no globals except the one default
configuration used by the Worker mixin, set with :func:`kiqpy.configure`.
"""

from __future__ import annotations

import dataclasses
import os
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from kiqpy.chain import Chain
from kiqpy.connection import (
    CLUSTER_SCHEMES,
    SENTINEL_SCHEMES,
    SentinelAuth,
    parse_cluster_url,
    parse_sentinel_url,
    safe_url,
)
from kiqpy.errors import ConfigurationError
from kiqpy.payload import SERIALIZERS, SIDEKIQ_VERSIONS, now_stamp

DEFAULT_REDIS_URL = "redis://localhost:6379/0"
EVENTS = ("startup", "heartbeat", "beat", "quiet", "shutdown", "exit")
ErrorHandler = Callable[[BaseException, dict[str, Any]], None]
DeathHandler = Callable[[dict[str, Any], BaseException], None]
# defer_push(push, on_commit) -> True when it took ``push`` to call later (or never, on a
# rollback), False to let the client push now. ``on_commit`` is the push's option (None: unset).
PushDeferrer = Callable[[Callable[[], None], "bool | None"], bool]


def env_redis_url(environ: Mapping[str, str] | None = None) -> str:
    """The Redis URL from ``KIQPY_REDIS_URL``, then ``REDIS_URL``, then localhost."""
    env = os.environ if environ is None else environ
    return env.get("KIQPY_REDIS_URL") or env.get("REDIS_URL") or DEFAULT_REDIS_URL


@dataclass(frozen=True)
class Config:
    """Everything a kiqpy client or worker needs to know. Build with :meth:`from_env` or
    :func:`dataclasses.replace`; never mutated after construction (the middleware chains and
    handler lists it holds are editable on purpose, like Sidekiq's)."""

    redis_url: str = DEFAULT_REDIS_URL
    namespace: str = ""
    serializer: str = "msgpack"
    # The Sidekiq version sharing this Redis, for the JSON wire format: "6" and "7" write
    # timestamps as float epoch seconds ("6" also the busy map as Sidekiq 6 reads it), "8"
    # as int epoch milliseconds. Readers accept every format whatever this says.
    sidekiq_version: str = "8"
    pool_size: int = 0  # 0: concurrency + 5 on a worker, 10 on a client
    socket_timeout: float = 5.0
    # How to authenticate to Sentinels (a redis+sentinel:// URL); the master's own user and
    # password are in the URL. None: the URL's sentinel_* query parameters, if any.
    sentinel_username: str | None = None
    sentinel_password: str | None = field(default=None, repr=False)
    sentinel_tls: bool | None = None
    # Redis Cluster: also implied by a redis+cluster:// URL; with a redis:// URL, that node is
    # where the client starts discovering the cluster. Keys then carry hash tags (keys.py).
    cluster: bool = False
    # Pushes wait until this many replicas have the job (Redis WAIT), so a failover cannot
    # lose a push that returned; NotReplicatedError after push_replicas_timeout seconds.
    push_replicas: int = 0
    push_replicas_timeout: float = 1.0
    # Periodic jobs: the leader's lease; another process takes over within 1.25 x this.
    periodic_lease: float = 20.0
    # Jobs without a timeout option get this one (seconds; None: no timeout, as Sidekiq), and
    # a job still running this long after its timeout gets its process replaced.
    default_timeout: float | None = None
    timeout_grace: float = 10.0
    # Execution metrics per class and minute (off: nothing counted), kept this long (s).
    metrics: bool = True
    metrics_retention: float = 72 * 3600.0
    # -- worker ----------------------------------------------------------------------------
    concurrency: int = 10
    # Async jobs ('async def perform') running at once on the worker's event loop.
    async_concurrency: int = 100
    queues: tuple[tuple[str, int], ...] = (("default", 0),)
    timeout: float = 25.0
    tag: str = ""
    heartbeat_interval: float = 10.0
    process_ttl: float = 60.0
    poll_interval_average: float | None = None  # None: 5 s times the number of processes
    max_retries: int = 25
    dead_max_jobs: int = 10_000
    dead_timeout: float = 180 * 24 * 3600.0
    poison_pill_recoveries: int = 3
    poison_pill_window: float = 72 * 3600.0
    prefetch: int | None = None  # extra jobs held beyond busy threads; None: auto (fetch.py)
    # -- middleware and handlers (shared, editable) ------------------------------------------
    client_middleware: Chain = field(default_factory=Chain, compare=False)
    server_middleware: Chain = field(default_factory=Chain, compare=False)
    error_handlers: list[ErrorHandler] = field(default_factory=list, compare=False)
    death_handlers: list[DeathHandler] = field(default_factory=list, compare=False)
    # Lifecycle events of a worker process (see on()): event name -> handlers, in order.
    event_handlers: dict[str, list[Callable[[], None]]] = field(
        default_factory=lambda: {event: [] for event in EVENTS}, compare=False, repr=False)
    # "Push now or later": a framework integration (kiqpy.contrib.django) sets this so a push
    # made inside a database transaction waits for its commit. None: every push goes out now.
    defer_push: PushDeferrer | None = field(default=None, compare=False, repr=False)

    def __post_init__(self) -> None:
        if type(self.sidekiq_version) is int:  # `sidekiq_version = 6` in a TOML file
            object.__setattr__(self, "sidekiq_version", str(self.sidekiq_version))
        # Caught here rather than at the first push, so configure() refuses a bad URL at once.
        scheme = urlsplit(self.redis_url).scheme
        if scheme not in ("redis", "rediss", "unix", *SENTINEL_SCHEMES, *CLUSTER_SCHEMES):
            raise ConfigurationError(f"bad Redis URL {safe_url(self.redis_url)!r}: it must start "
                                     f"with redis://, rediss://, unix://, redis+sentinel:// or "
                                     f"redis+cluster://")
        parse_sentinel_url(self.redis_url)  # a malformed Sentinel URL fails here, naming why
        if type(self.cluster) is not bool:
            raise ConfigurationError(f"cluster must be true or false, got {self.cluster!r}")
        if self.cluster and scheme not in CLUSTER_SCHEMES:
            if scheme not in ("redis", "rediss"):
                raise ConfigurationError(
                    f"cluster = true needs a redis:// or redis+cluster:// URL, got "
                    f"{safe_url(self.redis_url)!r} (Redis Cluster has no Sentinel or unix socket)")
            # One URL form from here on: connect() and every process started from this
            # configuration then see the cluster in the URL alone.
            object.__setattr__(self, "redis_url", self.redis_url.replace(
                f"{scheme}://", f"{scheme}+cluster://", 1))
        parse_cluster_url(self.redis_url)  # likewise for a malformed Cluster URL
        if self.on_cluster and self.push_replicas:
            raise ConfigurationError(
                "push_replicas is not supported on Redis Cluster: WAIT counts the replicas of "
                "one shard per connection, and a push may span shards; set push_replicas = 0")
        if self.on_cluster and any(ch in self.namespace for ch in "{}"):
            raise ConfigurationError(f"on Redis Cluster the namespace cannot contain braces "
                                     f"(kiqpy puts hash tags in key names), got "
                                     f"{self.namespace!r}")
        self._check_types()
        if self.serializer not in SERIALIZERS:
            raise ConfigurationError(
                f"serializer must be one of {', '.join(SERIALIZERS)}, got {self.serializer!r}"
            )
        if self.sidekiq_version not in SIDEKIQ_VERSIONS:
            raise ConfigurationError(f"sidekiq_version must be one of "
                                     f"{', '.join(SIDEKIQ_VERSIONS)}, got {self.sidekiq_version!r}")
        if self.concurrency < 1:
            raise ConfigurationError(f"concurrency must be at least 1, got {self.concurrency}")
        if self.async_concurrency < 1:
            raise ConfigurationError(f"async_concurrency must be at least 1, got "
                                     f"{self.async_concurrency}")
        if not self.queues:
            raise ConfigurationError("at least one queue is needed")
        for name, weight in self.queues:
            if not name or weight < 0:
                raise ConfigurationError(f"bad queue {name!r} with weight {weight}")
        if self.timeout < 0 or self.heartbeat_interval <= 0 or self.process_ttl <= 0:
            raise ConfigurationError("timeout, heartbeat_interval and process_ttl must be positive")
        if self.periodic_lease <= 0:
            raise ConfigurationError(f"periodic_lease must be positive, got {self.periodic_lease}")
        if self.push_replicas < 0 or self.push_replicas_timeout <= 0:
            raise ConfigurationError("push_replicas must be >= 0 and push_replicas_timeout > 0")
        if self.pool_size < 0:
            raise ConfigurationError(f"pool_size must be positive, got {self.pool_size}")
        if self.defer_push is not None and not callable(self.defer_push):
            raise ConfigurationError(f"defer_push must be a callable, got {self.defer_push!r}")

    def _check_types(self) -> None:
        # Values from a TOML file or code can be of any type; say which one is wrong instead
        # of failing later with "'<' not supported between instances of 'str' and 'int'".
        for name in _INT_FIELDS:
            value = getattr(self, name)
            if type(value) is not int and not (value is None and name in _OPTIONAL):
                raise ConfigurationError(f"{name} must be an int, got {value!r}")
        for name in ("sentinel_username", "sentinel_password"):
            value = getattr(self, name)
            if value is not None and type(value) is not str:
                raise ConfigurationError(f"{name} must be a string, got {type(value).__name__}")
        if self.sentinel_tls is not None and type(self.sentinel_tls) is not bool:
            raise ConfigurationError(f"sentinel_tls must be true or false, got "
                                     f"{self.sentinel_tls!r}")
        for name in _NUMBER_FIELDS:
            value = getattr(self, name)
            if type(value) not in (int, float) and not (value is None and name in _OPTIONAL):
                raise ConfigurationError(f"{name} must be a number of seconds, got {value!r}")

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, **overrides: Any) -> Config:
        """Defaults, then the environment, then ``overrides``."""
        env = os.environ if environ is None else environ
        values: dict[str, Any] = {"redis_url": env_redis_url(env)}
        if env.get("KIQPY_NAMESPACE"):
            values["namespace"] = env["KIQPY_NAMESPACE"]
        if env.get("KIQPY_SERIALIZER"):
            values["serializer"] = env["KIQPY_SERIALIZER"]
        if env.get("KIQPY_SIDEKIQ_VERSION"):
            values["sidekiq_version"] = env["KIQPY_SIDEKIQ_VERSION"]
        for name in ("sentinel_username", "sentinel_password"):
            if env.get(f"KIQPY_{name.upper()}"):
                values[name] = env[f"KIQPY_{name.upper()}"]
        if env.get("KIQPY_SENTINEL_TLS"):
            values["sentinel_tls"] = env["KIQPY_SENTINEL_TLS"].lower() in ("1", "true", "yes")
        if env.get("KIQPY_CLUSTER"):
            values["cluster"] = env["KIQPY_CLUSTER"].lower() in ("1", "true", "yes")
        values.update(overrides)
        return cls(**values)

    def replace(self, **changes: Any) -> Config:
        """A copy with ``changes`` applied (middleware chains and handlers are shared)."""
        return dataclasses.replace(self, **changes)

    def on(self, event: str, handler: Callable[[], None]) -> Callable[[], None]:
        """Call ``handler()`` at a point of a worker process's life, as Sidekiq's
        ``config.on(...)``; returns it, so it also works as a decorator::

            kiqpy.default_config().on("startup", warm_caches)

        ``startup``: once, before any job is fetched (main thread); if it raises, the process
        logs why and exits with status 1 without fetching anything. ``heartbeat``: once, after
        the process registered itself in Redis (main thread). ``beat``: after every heartbeat
        (heartbeat thread). ``quiet``: when the process stops fetching (TSTP, a remote quiet,
        or the start of a shutdown; main thread). ``shutdown``: when it begins to shut down,
        before waiting for running jobs (main thread). ``exit``: after the last job was
        finished or requeued, just before the worker returns (main thread). A handler that
        raises, other than at ``startup``, is logged and the others still run."""
        if event not in EVENTS:
            raise ConfigurationError(f"unknown event {event!r}; events are "
                                     f"{', '.join(EVENTS)}")
        if not callable(handler):
            raise ConfigurationError(f"on({event!r}, ...) needs a callable, got {handler!r}")
        self.event_handlers[event].append(handler)
        return handler

    def now_stamp(self, serializer: str | None = None) -> int | float:
        """Now, as a timestamp field (``created_at``, ``enqueued_at``, ...) of a payload in
        ``serializer`` (default: this configuration's) is written for ``sidekiq_version``."""
        return now_stamp(self.sidekiq_version, serializer or self.serializer)

    @property
    def sentinel_auth(self) -> SentinelAuth:
        """How to authenticate to the Sentinels, for :func:`kiqpy.connection.connect`."""
        return SentinelAuth(self.sentinel_username, self.sentinel_password, self.sentinel_tls)

    @property
    def on_cluster(self) -> bool:
        """True when Redis is a Redis Cluster (``cluster = true`` or a ``redis+cluster://``
        URL): keys then carry hash tags (:class:`kiqpy.keys.Keys`)."""
        return urlsplit(self.redis_url).scheme in CLUSTER_SCHEMES

    @property
    def queue_names(self) -> list[str]:
        return [name for name, _ in self.queues]


_INT_FIELDS = ("concurrency", "async_concurrency", "pool_size", "max_retries", "dead_max_jobs",
               "poison_pill_recoveries", "prefetch", "push_replicas")
_NUMBER_FIELDS = ("socket_timeout", "timeout", "heartbeat_interval", "process_ttl",
                  "poll_interval_average", "dead_timeout", "poison_pill_window",
                  "push_replicas_timeout", "periodic_lease", "metrics_retention",
                  "default_timeout", "timeout_grace")
_OPTIONAL = frozenset({"socket_timeout", "poll_interval_average", "prefetch",
                       "default_timeout"})


class _Default:
    """The one default configuration, and what to call when :func:`configure` replaces it (the
    client side drops its default client then; see :func:`on_configure`)."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.config: Config | None = None
        self.hooks: list[Callable[[], None]] = []


_default = _Default()


def default_config() -> Config:
    """The default configuration (from the environment until :func:`configure` is called)."""
    config = _default.config
    if config is None:
        with _default.lock:
            if _default.config is None:
                _default.config = Config.from_env()
            config = _default.config
    return config


def configure(config: Config | None = None, **changes: Any) -> Config:
    """Set the default configuration used by ``perform_async`` and friends.

    >>> kiqpy.configure(redis_url="redis://cache:6379/2", namespace="myapp")  # doctest: +SKIP

    Pass a whole :class:`Config` (which brings its own middleware chains and handlers), or
    keywords applied to the current default (its chains and handlers carry over). The default
    client is replaced (the old one's pool is closed). Returns the new default.
    """
    with _default.lock:
        base = config if config is not None else (_default.config or Config.from_env())
        new = base.replace(**changes) if changes else base
        _default.config = new
    for hook in list(_default.hooks):
        hook()
    return new


def on_configure(hook: Callable[[], None]) -> None:
    """Call ``hook()`` after every :func:`configure`. The default client registers one, so
    that this module, below the client side, never imports it."""
    _default.hooks.append(hook)
