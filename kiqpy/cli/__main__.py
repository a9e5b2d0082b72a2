"""``python -m kiqpy.cli``: the same as the ``kiqpy`` command."""

from kiqpy.cli import main

main()
