"""kiqpy's exceptions: one tree, so callers can catch exactly what they mean.

    KiqpyError
     ├── ConfigurationError (ValueError)   bad configuration or CLI value
     │    └── OptionsError                 a bad or unknown worker option (at class definition)
     ├── ArgumentError (TypeError)         job args that cannot be serialized, raised before any I/O
     ├── PayloadError (ValueError)         bytes in Redis that are not a job payload
     ├── UnknownJobError (LookupError)     a payload names a class this process has not registered
     ├── RedisUnavailableError (ConnectionError)  Redis unreachable (redis-py error chained)
     └── NoJobsError (LookupError)         testing: perform_one() on an empty fake queue

Vendor errors (redis-py) are translated at the boundary with ``raise ... from exc``.
"""

from __future__ import annotations


class KiqpyError(Exception):
    """Base class of every error kiqpy raises on purpose."""


class ConfigurationError(KiqpyError, ValueError):
    """A configuration value (from code, env, a config file or the CLI) is not valid."""


class OptionsError(ConfigurationError):
    """A worker option is unknown or has the wrong type; raised when the class is defined."""


class ArgumentError(KiqpyError, TypeError):
    """Job arguments that msgpack/JSON cannot carry faithfully; raised at push time, before I/O."""


class PayloadError(KiqpyError, ValueError):
    """Bytes taken from Redis that do not decode to a valid job map."""


class UnknownJobError(KiqpyError, LookupError):
    """A payload names a job class that is not registered in this process."""


class RedisUnavailableError(KiqpyError, ConnectionError):
    """Redis could not be reached or did not answer; says which Redis and why."""


class NoJobsError(KiqpyError, LookupError):
    """Testing helpers: there is no fake job to perform."""
