"""Ruby Sidekiq from Debian's ruby-sidekiq at its defaults: ``sidekiq -c 10 -r ./sidekiq_job.rb``,
on the hiredis driver when Debian's ruby-hiredis is installed (apps/sidekiq_job.rb)."""

from __future__ import annotations

from .base import APPS, System

SYSTEM = System(
    name="sidekiq",
    defaults="sidekiq -c 10, defaults otherwise; INCR through Sidekiq.redis; "
             "logs off = logger level WARN",
    worker=lambda logs, url: ["sidekiq", "-c", "10", "-r", "./sidekiq_job.rb"],
    app=["ruby", str(APPS / "sidekiq_job.rb")],
    has_bulk=True,
)
