"""kiqpy's version, in a module of its own so that any part of kiqpy can read it without
importing the public package (which imports the client side)."""

__version__ = "0.1.0"
