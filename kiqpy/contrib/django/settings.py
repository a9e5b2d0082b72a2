"""``settings.KIQPY``: a dict of :class:`kiqpy.Config` fields plus the Django-only keys below,
checked when the app is ready so a typo fails at start-up, naming the key.

- ``transactional`` (default True): inside ``transaction.atomic()``, pushes wait for the
  commit (and are dropped on a rollback).
- ``dashboard_access``: who may open the dashboard: None (default: active staff users), a
  permission name (``"shop.view_jobs"``), or a callable taking the request and returning a
  bool.
- ``autodiscover`` (default True): import the ``jobs`` module of every installed app.
- ``database`` (default ``"default"``): the database alias whose transactions pushes follow.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.db import DEFAULT_DB_ALIAS

from kiqpy import queues
from kiqpy.config import Config
from kiqpy.errors import ConfigurationError

# Config fields that hold code (chains, handlers, hooks): set them in code, not in settings.
_CODE_FIELDS = frozenset({"client_middleware", "server_middleware", "error_handlers",
                          "death_handlers", "event_handlers", "defer_push"})
_CONFIG_FIELDS = frozenset(f.name for f in dataclasses.fields(Config)) - _CODE_FIELDS

Access = Callable[[Any], bool]


@dataclass(frozen=True)
class DjangoSettings:
    """settings.KIQPY, split into the Config fields and the Django-only keys."""

    config: dict[str, Any]
    transactional: bool = True
    dashboard_access: str | Access | None = None
    autodiscover: bool = True
    database: str = DEFAULT_DB_ALIAS


def read() -> DjangoSettings:
    """settings.KIQPY (absent: the defaults), checked."""
    raw = getattr(settings, "KIQPY", {})
    if not isinstance(raw, dict):
        raise ImproperlyConfigured(f"settings.KIQPY must be a dict, got {type(raw).__name__}")
    values = dict(raw)
    extra: dict[str, Any] = {}
    for key in ("transactional", "autodiscover"):
        if key in values:
            extra[key] = values.pop(key)
            if type(extra[key]) is not bool:
                raise ImproperlyConfigured(f"settings.KIQPY[{key!r}] must be True or False, "
                                           f"got {extra[key]!r}")
    if "dashboard_access" in values:
        access = values.pop("dashboard_access")
        if access is not None and not isinstance(access, str) and not callable(access):
            raise ImproperlyConfigured(
                f"settings.KIQPY['dashboard_access'] must be None (staff), a permission name "
                f"or a callable taking the request, got {access!r}")
        extra["dashboard_access"] = access
    if "database" in values:
        database = values.pop("database")
        if database not in settings.DATABASES:
            raise ImproperlyConfigured(f"settings.KIQPY['database'] = {database!r} is not in "
                                       f"settings.DATABASES")
        extra["database"] = database
    for key in values:
        if key in _CODE_FIELDS:
            raise ImproperlyConfigured(
                f"settings.KIQPY[{key!r}]: set it in code (kiqpy.default_config().{key}), "
                f"for example in an app's ready()")
        if key not in _CONFIG_FIELDS:
            raise ImproperlyConfigured(
                f"settings.KIQPY has an unknown key {key!r}; it takes kiqpy.Config fields "
                f"({', '.join(sorted(_CONFIG_FIELDS))}) and transactional, dashboard_access, "
                f"autodiscover, database")
    if "queues" in values:
        values["queues"] = _queues(values["queues"])
    return DjangoSettings(config=values, **extra)


def _queues(value: Any) -> tuple[tuple[str, int], ...]:
    try:
        return queues.from_setting(value, "settings.KIQPY['queues']")
    except ConfigurationError as exc:
        raise ImproperlyConfigured(str(exc)) from None
