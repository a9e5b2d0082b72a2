"""Periodic jobs: a device ping every 10 seconds and a nightly cleanup."""
