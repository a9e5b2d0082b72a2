"""Send a welcome mail to each address given (run from the repo root):

    python -m examples.mail.enqueue ann@example.com bob@example.com not-an-address
"""

from __future__ import annotations

import argparse

from examples.mail.jobs import Mailer


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Enqueue welcome mails.")
    parser.add_argument("addresses", nargs="+")
    options = parser.parse_args(argv)
    for address in options.addresses:
        jid = Mailer.perform_async(address, "Welcome!", f"Hello {address}, welcome aboard.")
        print(f"Mailer -> {address} on queue mail, jid {jid}")


if __name__ == "__main__":
    main()
