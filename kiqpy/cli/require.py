"""``-r``/``--require``: importing the modules or files that define job classes (the worker,
``kiqpy enqueue``)."""

from __future__ import annotations

import importlib
import importlib.util
import os
import sys
from pathlib import Path


def require(target: str) -> None:
    """Import a module name (``myapp.jobs``) or a file path (``./jobs.py``).

    A file under the working directory is imported by its dotted name (``myapp/jobs.py`` as
    ``myapp.jobs``), so its job classes get the names the application pushes them under
    (``myapp.jobs.HardWorker``); a file elsewhere is imported under its own stem."""
    if is_path(target):
        path = Path(target).resolve()
        if path.is_dir():
            path = path / "__init__.py"
        if not path.is_file():
            raise FileNotFoundError(f"no such file: {path}")
        dotted = dotted_name(path, Path.cwd())
        if dotted is not None:
            if os.getcwd() not in sys.path:
                sys.path.insert(0, os.getcwd())
            module = importlib.import_module(dotted)
            found = getattr(module, "__file__", None)
            if found is None or Path(found).resolve() != path:
                raise ImportError(f"{target} imports as {dotted!r}, but that name is another "
                                  f"module ({found or 'built in'}); rename the file")
            return
        sys.path.insert(0, str(path.parent if path.name != "__init__.py" else path.parent.parent))
        name = path.stem if path.name != "__init__.py" else path.parent.name
        spec = importlib.util.spec_from_file_location(name, path)
        if spec is None or spec.loader is None:
            raise ImportError(f"cannot import {target}")
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
    else:
        if "" not in sys.path and os.getcwd() not in sys.path:
            sys.path.insert(0, os.getcwd())
        importlib.import_module(target)


def is_path(target: str) -> bool:
    """A -r value that names a file or folder (``./jobs.py``, ``app/``), not a module."""
    return target.endswith(".py") or os.sep in target


def dotted_name(path: Path, root: Path) -> str | None:
    """``root/a/b.py`` -> ``a.b`` (``root/a/__init__.py`` -> ``a``); None if ``path`` is not
    under ``root`` or a part is not a valid module name."""
    try:
        parts = list(path.relative_to(root.resolve()).with_suffix("").parts)
    except ValueError:
        return None
    if parts and parts[-1] == "__init__":
        parts.pop()
    if not parts or not all(part.isidentifier() for part in parts):
        return None
    return ".".join(parts)
