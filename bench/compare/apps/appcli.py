"""The command line of the Python apps, run in the system's own venv with apps/ on sys.path:

    python -m appcli APP version             one line: the versions that matter
    python -m appcli APP enqueue N single    push N jobs one call at a time
    python -m appcli APP enqueue N bulk      push N jobs through the system's bulk API
    python -m appcli APP worker              run APP.worker() (arq, whose command line has no
                                             way to switch its per-job lines off)

APP is a module name (``rq_app``), imported by name so that its jobs never live in __main__,
which RQ and Huey refuse. ``enqueue`` calls APP.enqueue(N, bulk), which pushes the first job
untimed (connecting, loading scripts) and returns the seconds of the other N-1; this prints
{"seconds": s, "timed": N-1} as JSON on its last line.
"""

from __future__ import annotations

import importlib
import json
import sys


def main() -> None:
    app = importlib.import_module(sys.argv[1])
    command = sys.argv[2]
    if command == "version":
        print(app.version())
    elif command == "enqueue":
        n, mode = int(sys.argv[3]), sys.argv[4]
        seconds = app.enqueue(n, mode == "bulk")
        print(json.dumps({"seconds": seconds, "timed": n - 1}))
    elif command == "worker":
        app.worker()
    else:
        raise SystemExit(f"unknown command {command!r}")


if __name__ == "__main__":
    main()
