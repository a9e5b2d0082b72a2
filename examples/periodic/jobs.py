"""Periodic jobs: a ping of every device each 10 seconds, and a nightly cleanup at 03:00 in
the devices' own time zone. Every worker that loads this module knows the schedule; one of
them (the leader) enqueues each tick, once.

    kiqpy -r examples.periodic.jobs -q default,maintenance
"""

from __future__ import annotations

import time

import kiqpy
from kiqpy.log import get_logger

DEVICES = ["router-1", "sensor-7", "gateway-2"]


class PingDevices(kiqpy.Worker, queue="default", retry=0):
    """Ping each device and record when it last answered (a stale ping is worthless, so no
    retries: the next tick comes in 10 seconds anyway)."""

    def perform(self, devices: list[str]) -> None:
        job = kiqpy.current_job() or {}
        with kiqpy.redis() as conn:
            for device in devices:
                conn.hset("example:devices:last_seen", device, int(time.time()))
        get_logger().info("pinged", devices=len(devices), tick=job.get("periodic_tick"))


class NightlyCleanup(kiqpy.Worker, queue="maintenance"):
    """Drop the readings of devices not seen for a week."""

    def perform(self) -> None:
        week_ago = time.time() - 7 * 24 * 3600
        with kiqpy.redis() as conn:
            seen = conn.hgetall("example:devices:last_seen")
            stale = [d for d, at in seen.items() if int(at) < week_ago]
            if stale:
                conn.hdel("example:devices:last_seen", *stale)
        get_logger().info("cleaned up", stale=len(stale))


kiqpy.periodic("*/10 * * * * *", PingDevices, args=[DEVICES], name="ping-devices")
kiqpy.periodic("0 3 * * *", NightlyCleanup, tz="Europe/Berlin", name="nightly-cleanup")
