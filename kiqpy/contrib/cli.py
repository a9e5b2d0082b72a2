"""The ``kiqpy`` command run from a framework's own command line (``manage.py kiqpy``,
``flask kiqpy``), where the application already configured kiqpy."""

from __future__ import annotations

from typing import Any

import click

from kiqpy.config import Config


def defaults(group: click.Group, config: Config) -> dict[str, Any]:
    """click's ``default_map`` for ``group``: every admin command's ``--redis-url`` and
    ``--namespace`` default to ``config``'s (their flags and env vars still win). The worker is
    left out: it starts from the default configuration itself (kiqpy.cli.commands.build_config)."""
    found: dict[str, Any] = {}
    for name, command in group.commands.items():
        if name == "worker":
            continue
        if isinstance(command, click.Group):
            nested = defaults(command, config)
            if nested:
                found[name] = nested
            continue
        params = {param.name for param in command.params}
        own = {}
        if "redis_url" in params:
            own["redis_url"] = config.redis_url
        if "namespace" in params:
            own["namespace"] = config.namespace
        if own:
            found[name] = own
    return found
