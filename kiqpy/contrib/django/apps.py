"""The Django app: add ``"kiqpy.contrib.django"`` to INSTALLED_APPS."""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING

from django.apps import AppConfig
from django.core.exceptions import ImproperlyConfigured
from django.db import connections
from django.utils.module_loading import autodiscover_modules

import kiqpy
from kiqpy.contrib.django import settings as kiqpy_settings
from kiqpy.contrib.django.middleware import CloseOldConnections
from kiqpy.contrib.django.transaction import on_commit_deferrer
from kiqpy.errors import ConfigurationError

if TYPE_CHECKING:
    from kiqpy.web.app import Dashboard


class KiqpyConfig(AppConfig):
    """On ready: settings.KIQPY becomes the default configuration (with the on-commit push
    hook and :class:`CloseOldConnections` in its server chain), then each installed app's
    ``jobs`` module is imported, so ``manage.py kiqpy`` needs no ``-r``."""

    name = "kiqpy.contrib.django"
    label = "kiqpy"
    verbose_name = "kiqpy"
    default = True

    def ready(self) -> None:
        self._lock = threading.Lock()
        self._dashboard: Dashboard | None = None
        self.install()
        if self.settings.autodiscover:
            autodiscover_modules("jobs")

    def install(self) -> kiqpy.Config:
        """Read settings.KIQPY and make it kiqpy's default configuration (called on ready;
        call again after changing the settings, as tests do)."""
        self.settings = kiqpy_settings.read()
        defer = on_commit_deferrer(self.settings.transactional, self.settings.database)
        try:
            config = kiqpy.configure(**self.settings.config, defer_push=defer)
        except ConfigurationError as exc:
            raise ImproperlyConfigured(f"settings.KIQPY: {exc}") from exc
        if CloseOldConnections not in config.server_middleware:
            config.server_middleware.add(CloseOldConnections)
        if close_inherited_connections not in config.event_handlers["startup"]:
            config.on("startup", close_inherited_connections)
        return config

    def dashboard(self) -> Dashboard:
        """The dashboard for the current default configuration (built once per
        configuration)."""
        config = kiqpy.default_config()
        with self._lock:
            if self._dashboard is None or self._dashboard.config is not config:
                from kiqpy.web import create_app

                self._dashboard = create_app(config)
            return self._dashboard


def close_inherited_connections() -> None:
    """A worker process's ``startup``: a child forked by ``-p N`` must not share the parent's
    database sockets, so it closes what it inherited and opens its own on first use."""
    connections.close_all()
