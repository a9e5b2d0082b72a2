"""What the sync server does when a device asks for data (run from the repo root):

    python -m examples.device_sync.enqueue --app shop --user alice --client phone-1

Enqueues a SourceJob per source of ``settings.toml`` (each on its source's queue) and a
BulkDataJob for all of them.
"""

from __future__ import annotations

import argparse

from examples.device_sync import settings
from examples.device_sync.jobs import enqueue_bulk_data, enqueue_source


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Enqueue a device sync.")
    parser.add_argument("--app", default="shop")
    parser.add_argument("--user", default="alice")
    parser.add_argument("--client", default="phone-1", help="the device's client id")
    parser.add_argument("--brand", help="only this brand's products")
    options = parser.parse_args(argv)
    for source in settings.sources():
        params = {"brand": options.brand} if options.brand and source == "Product" else None
        jid = enqueue_source(source, options.app, options.user, options.client, params)
        print(f"SourceJob {source:<9} -> queue {settings.queue_for(source):<9} jid {jid}")
    jid = enqueue_bulk_data(options.app, options.user, settings.sources())
    print(f"BulkDataJob {'':<7} -> queue {settings.bulk_queue():<9} jid {jid}")


if __name__ == "__main__":
    main()
