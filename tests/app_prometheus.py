"""A worker app with kiqpy_middleware.prometheus installed (and the job classes)."""

from __future__ import annotations

import kiqpy_middleware.prometheus
from tests import app_jobs  # noqa: F401  (the job classes)

kiqpy_middleware.prometheus.install()
