"""Bundled, optional middleware for kiqpy (import name: ``kiqpy_middleware``).

Each module depends only on kiqpy's public API, declares the worker options it understands when
it is imported, and has an ``install(config=None)`` that adds its client and server middleware
to a configuration's chains (the default configuration when None):

- :mod:`kiqpy_middleware.unique`: unique jobs (options ``unique_for``, ``unique_until``), like
  Sidekiq Enterprise's; a duplicate push within the window returns None instead of a jid.
- :mod:`kiqpy_middleware.expiry`: job expiry (option ``expires_in``), like Sidekiq Pro's; a
  job not started in time is skipped.
- :mod:`kiqpy_middleware.opentelemetry`: a PRODUCER span per push and a CONSUMER span per run,
  one trace across the push and the worker (extra ``kiqpy[opentelemetry]``).
- :mod:`kiqpy_middleware.sentry`: every job failure reported to Sentry once, with the job's
  class, jid, queue and retry count (extra ``kiqpy[sentry]``).

Use them where jobs are pushed and in the worker, from a module it loads with ``-r``::

    # myapp/jobs.py
    import kiqpy
    import kiqpy_middleware.expiry
    import kiqpy_middleware.unique

    kiqpy_middleware.unique.install()
    kiqpy_middleware.expiry.install()

    class SyncAddress(kiqpy.Worker, unique_for=600, expires_in=3600):
        def perform(self, user_id): ...

Install ``unique`` before ``expiry``, as above: its server middleware then sits outside the
expiry check, so an expired (skipped) unique job releases its lock.
"""
