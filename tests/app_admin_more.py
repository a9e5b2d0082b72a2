"""A second module with a job class called ``Report`` (tests/test_cli_admin.py: a class name
two -r modules share must be given in full)."""

from __future__ import annotations

import kiqpy


class Report(kiqpy.Worker):
    def perform(self, *args):
        pass
