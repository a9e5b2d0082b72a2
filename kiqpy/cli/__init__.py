"""The ``kiqpy`` command: the worker (the default command), ``kiqpy web``, ``kiqpy stats`` and
``kiqpy check``. Signal handlers are installed here and nowhere else in kiqpy.

    commands.py   the click group and the worker command: flags, env, TOML, -r imports
    serve.py      running one worker process or a supervisor of N (-p); signals, pidfile
    health.py     the --health-port endpoint and the ``kiqpy check`` verdict
    stats.py      ``kiqpy stats`` and ``kiqpy check``
    periodic.py   ``kiqpy periodic``: list, pause, unpause, run periodic entries
    queue.py      ``kiqpy queue``: list queues, pause and unpause one
    web.py        ``kiqpy web``: the dashboard served by waitress
"""

from kiqpy.cli.commands import main

__all__ = ["main"]
