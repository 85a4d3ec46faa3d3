import logging
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
os.environ.setdefault("JSONARGPARSE_DEPRECATION_WARNINGS", "off")  # as the zoo command sets it


@pytest.fixture(autouse=True)
def _quiet_lightning():
    logging.getLogger("lightning").setLevel(logging.WARNING)


ZOO = Path(sys.executable).with_name("zoo")  # the console script pip installed beside this Python


def run_zoo(*args: str, cwd: Path, env: dict | None = None, timeout: int = 300) -> subprocess.CompletedProcess:
    """The real `zoo` command, in a subprocess, as a user runs it (the console script: the working folder is not
    on its sys.path, as it would be with python -m zoo)."""
    return subprocess.run(
        [str(ZOO), *args], cwd=cwd, capture_output=True, text=True, timeout=timeout,
        env={**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})},
    )
