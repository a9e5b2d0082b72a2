"""The application side: job classes and pushing jobs. What a web app or a script loads to
enqueue, and what the worker loads to know the job classes; nothing here starts a thread.

    worker.py     the Worker mixin: perform_async/perform_in/perform_at/set/perform_bulk
    options.py    per-class options: who declares each one, how it is checked
    registry.py   job name -> class (a worker instantiates only registered classes)
    timing.py     when perform_in/perform_at run a job (Sidekiq's rules)
    build.py      job maps: per-push fields, the client middleware chain
    push.py       Client: pushes to Redis; the default client; kiqpy.enqueue
    mode.py       the testing seam: fake/inline modes (kiqpy.testing) plug in here
    execution.py  running perform through the server chain; current_job(); perform_inline
"""
