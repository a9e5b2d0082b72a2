"""The systems, in the order they run: kiqpy first, then Sidekiq."""

from __future__ import annotations

from . import kiqpy, sidekiq
from .base import System

SYSTEMS: list[System] = [module.SYSTEM for module in (kiqpy, sidekiq)]
