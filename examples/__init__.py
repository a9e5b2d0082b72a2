"""kiqpy's examples, importable from the repo root as ``examples.<name>.jobs`` so that the code
that enqueues a job and the worker (``kiqpy -r examples.<name>.jobs``) agree on its name
(``module.QualName``). See ``examples/README.md``."""
