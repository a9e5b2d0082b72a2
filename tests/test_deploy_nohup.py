"""examples/deploy/nohup.sh: a worker that cannot start says why in kiqpy.stderr.log, instead
of failing silently (its stderr used to go to /dev/null)."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

from tests.conftest import wait_for

SCRIPT = Path(__file__).resolve().parent.parent / "examples" / "deploy" / "nohup.sh"


def test_nohup_script_keeps_startup_errors(tmp_path, redis_url):
    # Given the script in a directory of its own, and a bad queue list (a usage error)
    script = tmp_path / "nohup.sh"
    shutil.copy(SCRIPT, script)
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}",
           "REDIS_URL": redis_url, "QUEUE": "critical,2", "APP": "tests.app_jobs"}
    env.pop("KIQPY_REDIS_URL", None)

    # When it starts the worker, which refuses the flag and exits at once
    done = subprocess.run(["sh", str(script)], cwd=tmp_path, env=env, capture_output=True,
                          text=True, timeout=30)
    assert done.returncode == 0, done.stderr
    pid = int(re.search(r"pid (\d+)", done.stdout)[1])  # type: ignore[index]
    wait_for(lambda: not Path(f"/proc/{pid}").exists() or
             Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0] == "Z",
             timeout=20, message="the worker to exit")

    # Then the reason is in kiqpy.stderr.log, where the script's comment says to look
    errors = tmp_path / "kiqpy.stderr.log"
    assert "kiqpy.stderr.log" in done.stdout
    assert "Error:" in errors.read_text() and "critical:2" in errors.read_text()
