"""The example's job: it reads the app's config through current_app, which works because
kiqpy.contrib.flask runs every job inside the app context."""

from pathlib import Path

from flask import current_app

import kiqpy


class SendWelcome(kiqpy.Worker, queue="default"):
    def perform(self, name: str) -> None:
        outbox = Path(current_app.config["OUTBOX"])
        outbox.parent.mkdir(parents=True, exist_ok=True)
        with outbox.open("a") as mail:
            mail.write(f"{current_app.config['WELCOME']}, {name}!\n")
