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


def _offline(*args, **kwargs):
    raise OSError("no network")


@pytest.fixture
def imagenet_resnet18(tmp_path, monkeypatch):
    """torchvision's resnet18 weights file, in the cache where torchvision:IMAGENET1K_V1 reads it.

    A seeded random torchvision resnet18 stands in for the download: the same file name, format and keys.
    """
    import torch
    import torchvision.models as tvm

    torch.manual_seed(0)
    reference = tvm.resnet18().eval()
    cache = tmp_path / "hub" / "checkpoints"
    cache.mkdir(parents=True)
    torch.save(reference.state_dict(), cache / Path(tvm.ResNet18_Weights.IMAGENET1K_V1.url).name)
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    monkeypatch.setattr(torch.hub, "download_url_to_file", _offline)
    return reference
