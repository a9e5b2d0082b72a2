"""The package as users get it: a wheel built from this repo, installed in a throwaway venv.

Checks what an editable install cannot show: that ``kiqpy/lua/*.lua`` ship in the wheel, that
``middleware/`` installs as ``kiqpy_middleware`` (never as a top-level ``middleware`` that would
shadow an application's own), and that nothing depends on the source tree being on sys.path.
Slow (a wheel build and a pip install of the dependencies from the package index, ~10 s):
``make test PYTEST_ARGS='-m "not slow"'`` leaves it out.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parent.parent
EDITABLE_PYTHON = REPO / ".venv" / "bin" / "python"

# Run by the installed interpreter, from a directory outside the repo: where did things come from?
PROBE = """
import importlib.metadata, importlib.util, json, sysconfig
from importlib import resources
import kiqpy, kiqpy_middleware
spec = importlib.util.find_spec("middleware")
print(json.dumps({
    "kiqpy": kiqpy.__file__,
    "kiqpy_middleware": kiqpy_middleware.__file__,
    "purelib": sysconfig.get_paths()["purelib"],
    "push_lua": resources.files("kiqpy").joinpath("lua", "push.lua").is_file(),
    "web_files": [resources.files("kiqpy.web").joinpath(*p.split("/")).is_file()
                  for p in ("templates/layout.html", "static/app.js", "static/app.css")],
    "middleware": None if spec is None else str(spec.origin),
    "version": kiqpy.__version__,
    "dist_version": importlib.metadata.version("kiqpy"),
}))
"""


def run(command: list[str | Path], cwd: Path | None = None) -> str:
    # Only the variables a user would have: no PYTHONPATH pointing back into the repo.
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTHON")}
    done = subprocess.run([str(part) for part in command], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, f"{command} failed:\n{done.stdout}\n{done.stderr}"
    return done.stdout


def probe(python: Path, cwd: Path) -> dict[str, object]:
    # -I: no PYTHONPATH, no user site, no current directory on sys.path.
    result: dict[str, object] = json.loads(run([python, "-I", "-c", PROBE], cwd=cwd))
    return result


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A wheel built from a copy of the repo (so concurrent builds never share build/)."""
    source = tmp_path_factory.mktemp("source") / "kiqpy"
    shutil.copytree(REPO, source, ignore=shutil.ignore_patterns(
        ".git", ".venv", "build", "dist", "*.egg-info", "__pycache__", "*_cache", ".hypothesis",
        "test-output", ".demo-redis"))
    dist = tmp_path_factory.mktemp("dist")
    run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--quiet",
         "--disable-pip-version-check", "--wheel-dir", dist, source])
    (built,) = dist.glob("kiqpy-*.whl")
    return built


@pytest.fixture(scope="module")
def venv_python(wheel: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh venv holding the wheel and its dependencies (from the package index)."""
    venv = tmp_path_factory.mktemp("venv")
    run([sys.executable, "-m", "venv", "--without-pip", venv])
    python = venv / "bin" / "python"
    # This interpreter's pip installs into the new venv; faster than bootstrapping pip there.
    run([sys.executable, "-m", "pip", "--python", python, "install", "--quiet",
         "--disable-pip-version-check", "--no-input", wheel])
    return python


def test_wheel_holds_the_packages_and_the_lua_scripts(wheel: Path) -> None:
    names = set(zipfile.ZipFile(wheel).namelist())
    assert "kiqpy/lua/push.lua" in names
    assert "kiqpy/py.typed" in names
    assert "kiqpy_middleware/__init__.py" in names
    # The dashboard: its package, every template and every static file
    web = REPO / "kiqpy" / "web"
    for path in [*web.glob("*.py"), *web.glob("templates/*.html"), *web.glob("static/*")]:
        assert path.relative_to(REPO).as_posix() in names, path
    assert "kiqpy/web/templates/layout.html" in names and "kiqpy/web/static/app.js" in names
    # The framework integrations, down to the Django management command
    contrib = REPO / "kiqpy" / "contrib"
    for path in contrib.rglob("*.py"):
        assert path.relative_to(REPO).as_posix() in names, path
    assert "kiqpy/contrib/django/management/commands/kiqpy.py" in names
    assert not [name for name in names if name.startswith("middleware/")]
    assert not [name for name in names if name.startswith("tests/")]


def test_wheel_installs_and_imports_outside_the_source_tree(venv_python: Path,
                                                            tmp_path: Path) -> None:
    # When the installed packages are imported from a directory that is not the repo
    found = probe(venv_python, tmp_path)

    # Then they come from the venv's site-packages, Lua scripts included
    site = Path(str(found["purelib"])).resolve()
    assert Path(str(found["kiqpy"])).resolve().is_relative_to(site)
    assert Path(str(found["kiqpy_middleware"])).resolve().is_relative_to(site)
    assert found["push_lua"] is True
    assert found["web_files"] == [True, True, True]
    assert found["version"] == found["dist_version"]
    # And `import middleware` stays free for the application's own module
    assert found["middleware"] is None


@pytest.mark.skipif(not EDITABLE_PYTHON.exists(), reason="no .venv (run `make install`)")
def test_editable_install_imports_kiqpy_middleware_outside_the_repo(tmp_path: Path) -> None:
    found = probe(EDITABLE_PYTHON, tmp_path)

    assert Path(str(found["kiqpy"])).resolve() == REPO / "kiqpy" / "__init__.py"
    assert Path(str(found["kiqpy_middleware"])).resolve() == REPO / "middleware" / "__init__.py"
    assert found["push_lua"] is True
    assert found["middleware"] is None


def test_framework_extras_install_only_their_framework() -> None:
    """kiqpy[django] and kiqpy[flask] bring their framework (and Jinja2 for the dashboard),
    nothing of the other; `dev` has everything the contrib tests use."""
    try:
        import tomllib
    except ModuleNotFoundError:  # Python 3.10
        import tomli as tomllib
    extras = tomllib.loads((REPO / "pyproject.toml").read_text())["project"][
        "optional-dependencies"]
    names = {extra: {spec.split(">")[0].split("[")[0].lower() for spec in specs}
             for extra, specs in extras.items()}
    assert names["django"] == {"django", "jinja2"}
    assert names["flask"] == {"flask"}  # Flask brings Jinja2
    assert {"django", "flask", "starlette", "uvicorn", "httpx"} <= names["dev"]
