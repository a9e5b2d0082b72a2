"""Enqueue an export (run from the repo root, with REDIS_URL set):

    python -m examples.export.enqueue acme
"""

from __future__ import annotations

import sys

from examples.export.jobs import ExportUsers


def main(argv: list[str] | None = None) -> None:
    account = (argv if argv is not None else sys.argv[1:] or ["acme"])[0]
    print(f"enqueued ExportUsers({account!r}) jid {ExportUsers.perform_async(account)}")


if __name__ == "__main__":
    main()
