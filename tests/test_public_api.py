"""The curated public surface: ``kiqpy.__all__`` is exactly what the package offers."""

from __future__ import annotations

import importlib.metadata
import inspect
import types

import kiqpy
import kiqpy.testing

# The intended public names. Adding one to kiqpy/__init__.py means adding it here, on purpose.
INTENDED = {
    "ArgumentError", "Chain", "Client", "Config", "ConfigurationError", "Interrupted",
    "IterableWorker", "JobTimeout",
    "KiqpyError",
    "NoJobsError", "NotReplicatedError", "OptionsError", "PayloadError", "PoisonPill",
    "RedisRefusedError", "RedisUnavailableError", "UnknownJobError",
    "Worker", "__version__", "configure", "current_job", "declare_option", "default_client",
    "default_config", "embed", "enqueue", "limiter", "periodic", "redis", "registered",
    "aredis", "aenqueue",
    # issue 17: batches, workflows, results
    "Batch", "JobFailed", "ResultError", "Signature", "Workflow", "WorkflowError", "chain",
    "group", "result",
}


def public_names(module: types.ModuleType) -> set[str]:
    """Names a user can reach on ``module``: not private, not a submodule."""
    return {name for name in dir(module)
            if not name.startswith("_") and (not inspect.ismodule(getattr(module, name))
                                             or name in INTENDED)}


def test_all_lists_exactly_the_intended_names_without_duplicates():
    assert sorted(kiqpy.__all__) == sorted(INTENDED)
    assert len(kiqpy.__all__) == len(set(kiqpy.__all__))


def test_every_name_in_all_exists():
    missing = [name for name in kiqpy.__all__ if not hasattr(kiqpy, name)]
    assert missing == []


def test_nothing_public_is_missing_from_all():
    assert public_names(kiqpy) == set(kiqpy.__all__) - {"__version__"}


def test_star_import_gives_exactly_all():
    namespace: dict[str, object] = {}
    exec("from kiqpy import *", namespace)
    assert set(namespace) - {"__builtins__"} == set(kiqpy.__all__)


def test_version_matches_the_installed_distribution():
    assert kiqpy.__version__ == importlib.metadata.version("kiqpy")


def test_every_public_class_and_function_has_a_docstring():
    undocumented = [name for name in kiqpy.__all__
                    if callable(getattr(kiqpy, name)) and not inspect.getdoc(getattr(kiqpy, name))]
    assert undocumented == []


def test_the_exception_tree_is_as_documented():
    errors = {
        kiqpy.ConfigurationError: ValueError, kiqpy.OptionsError: kiqpy.ConfigurationError,
        kiqpy.ArgumentError: TypeError, kiqpy.PayloadError: ValueError,
        kiqpy.UnknownJobError: LookupError, kiqpy.RedisUnavailableError: ConnectionError,
        kiqpy.NoJobsError: LookupError, kiqpy.NotReplicatedError: kiqpy.RedisUnavailableError,
        kiqpy.limiter.OverLimit: kiqpy.KiqpyError,
    }
    for error, also in errors.items():
        assert issubclass(error, kiqpy.KiqpyError), error
        assert issubclass(error, also), error


def test_the_testing_module_offers_the_documented_helpers():
    for name in ("fake", "inline", "jobs_for", "clear_all", "drain_all", "FakeClient",
                 "InlineClient"):
        assert hasattr(kiqpy.testing, name), name
