"""The systems, in the order they run."""

from __future__ import annotations

from . import kiqpy
from .base import System

SYSTEMS: list[System] = [module.SYSTEM for module in (kiqpy,)]
