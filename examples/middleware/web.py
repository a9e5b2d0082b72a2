"""The "web requests" of the middleware example (run from the repo root):

    python -m examples.middleware.web acme:sales globex:stock

Each ``tenant:report`` argument is one request: the tenant is set for the request, as a web
framework's middleware would set it from the host name or a header, and the handler enqueues
a report without passing the tenant.
"""

from __future__ import annotations

import argparse

from examples.middleware.jobs import BuildReport
from examples.middleware.tenancy import request_context


def handle_request(report: str) -> str | None:
    """A request handler: knows nothing of tenants."""
    return BuildReport.perform_async(report)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Simulate requests that enqueue reports.")
    parser.add_argument("requests", nargs="+", metavar="TENANT:REPORT")
    options = parser.parse_args(argv)
    for request in options.requests:
        tenant, _, report = request.partition(":")
        with request_context(tenant) as request_id:
            jid = handle_request(report or "summary")
        print(f"request {request_id} tenant {tenant}: BuildReport jid {jid}")


if __name__ == "__main__":
    main()
