"""Start an import of ``--rows`` rows as one batch (run from the repo root, REDIS_URL set):

    python -m examples.batch_import.enqueue --rows 2000
"""

from __future__ import annotations

import argparse

import kiqpy
from examples.batch_import.jobs import ImportDone, ImportReport, ImportRow


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rows", type=int, default=2000)
    parser.add_argument("--import-id", type=int, default=1234)
    parser.add_argument("--email", default="ann@example.com")
    args = parser.parse_args(argv)
    # Every 100th row has no email: its first attempt fails, its retry succeeds.
    rows = [{"id": n, "email": "" if n % 100 == 0 else f"user{n}@example.com"}
            for n in range(args.rows)]
    batch = kiqpy.Batch(description=f"Import {args.import_id}")
    batch.on("success", ImportDone, {"import_id": args.import_id, "email": args.email})
    batch.on("complete", ImportReport, {"import_id": args.import_id})
    with batch.jobs():
        ImportRow.perform_bulk([[args.import_id, row] for row in rows])
    print(f"batch {batch.bid}: {args.rows} rows")


if __name__ == "__main__":
    main()
