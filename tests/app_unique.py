"""Job classes for worker tests of the bundled middleware, loaded with ``-r tests.app_unique``.
Like a user's jobs module, it installs the middleware when imported. Each job records what it
did in Redis under keys prefixed ``test:``."""

from __future__ import annotations

import kiqpy
import kiqpy_middleware.expiry
import kiqpy_middleware.unique
from tests.app_jobs import r

kiqpy_middleware.unique.install()
kiqpy_middleware.expiry.install()


class UniqueRecord(kiqpy.Worker, name="UniqueRecord", unique_for=60):
    """Appends its args (as repr) to the list ``test:unique_ran``."""

    def perform(self, *args):
        r().rpush("test:unique_ran", repr(args))


class ExpiringRecord(kiqpy.Worker, name="ExpiringRecord", expires_in=0.05):
    """Appends its args (as repr) to the list ``test:expiring_ran``; expires 50 ms after its
    push."""

    def perform(self, *args):
        r().rpush("test:expiring_ran", repr(args))
