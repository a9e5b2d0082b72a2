"""``python manage.py kiqpy [COMMAND] [OPTIONS]``: the ``kiqpy`` command with Django set up.

manage.py has run ``django.setup()`` before this module is loaded, so settings.KIQPY is the
default configuration and every installed app's ``jobs`` module is imported: the worker needs
no ``-r``. The admin commands (``stats``, ``web``, ...) take settings.KIQPY's Redis URL and
namespace as their defaults; their flags and the ``KIQPY_*`` variables still win.

    python manage.py kiqpy -c 5 -q critical,2 -q default    # the worker (the default)
    python manage.py kiqpy web --port 9292
    python manage.py kiqpy stats --json
"""

from __future__ import annotations

import argparse
import os
from typing import Any

from django.core.management.base import BaseCommand

import kiqpy
from kiqpy.cli import main
from kiqpy.contrib.cli import defaults


class Command(BaseCommand):
    help = ("Run kiqpy with this project's settings: the worker (default), web, stats... "
            "`manage.py kiqpy --help` lists them.")

    def run_from_argv(self, argv: list[str]) -> None:
        # click parses the arguments, not Django's argparse: they are kiqpy's own flags.
        prog = f"{os.path.basename(argv[0])} {argv[1]}"
        main.main(args=argv[2:], prog_name=prog, default_map=defaults(main, kiqpy.default_config()))

    def add_arguments(self, parser: Any) -> None:
        # call_command's arguments are kiqpy's, flags included: argparse keeps them as they are.
        parser.add_argument("args", nargs=argparse.REMAINDER, help="kiqpy's command and flags")

    def handle(self, *args: str, **options: Any) -> None:
        # call_command("kiqpy", "stats", "--json"): click without exiting the process.
        main.main(args=list(args), prog_name="manage.py kiqpy",
                  default_map=defaults(main, kiqpy.default_config()), standalone_mode=False)

