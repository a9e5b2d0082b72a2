"""A ``-r`` module that ends the process while it is being imported, as an application whose
import crashes the interpreter would: with ``-p N`` each child imports it after the fork and
dies young, every time (tests/test_supervisor_more.py, restart backoff)."""

import os

os._exit(3)
