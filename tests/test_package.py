"""zoo as a user installs it: the built wheel in a fresh environment, used from a folder outside the checkout.

The environment borrows only the test environment's third-party packages (torch, Lightning, ...): zoo and
its weights plugin come from wheels built here, and an audit hook makes any file of the checkout that the
installed zoo opens an error (a config, a suite, a module: whatever the wheel forgot to ship).
"""

import json
import os
import shutil
import subprocess
import sys
import sysconfig
import venv
from pathlib import Path

import pytest
from conftest import ROOT

GUARD = """
import os, sys

_CHECKOUT = {checkout!r}
_ALLOWED = {allowed!r}
_LOG = {log!r}


def _checkout_file(path):
    path = os.path.realpath(os.fsdecode(path))
    return path.startswith(_CHECKOUT) and not path.startswith(_ALLOWED)


def _refuse_the_checkout(event, args):
    if event == "open" and args and isinstance(args[0], (str, bytes, os.PathLike)) and _checkout_file(args[0]):
        with open(_LOG, "a") as log:
            log.write(os.fsdecode(args[0]) + "\\n")
        raise PermissionError(f"the installed zoo read {{os.fsdecode(args[0])}} from the checkout")


sys.addaudithook(_refuse_the_checkout)
"""


def _wheel(source: Path, out: Path) -> Path:
    done = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "--no-index",
                           "-q", "-w", str(out), str(source)], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    return max(out.glob("*.whl"), key=lambda p: p.stat().st_mtime)


@pytest.fixture(scope="module")
def installed(tmp_path_factory):
    """A fresh venv with zoo's and zoo-weights' wheels, the test environment's packages beside them, the guard on."""
    tmp = tmp_path_factory.mktemp("installed")
    source = tmp / "source"  # build from a copy: the build writes nothing into the checkout
    shutil.copytree(ROOT / "zoo", source / "zoo", ignore=shutil.ignore_patterns("__pycache__"))
    for name in ("pyproject.toml", "README.md", "LICENSE"):
        shutil.copy(ROOT / name, source / name)
    shutil.copytree(ROOT / "plugins" / "zoo-weights", tmp / "zoo-weights",
                    ignore=shutil.ignore_patterns("__pycache__", "*.egg-info", "build"))
    wheels = [_wheel(source, tmp / "dist"), _wheel(tmp / "zoo-weights", tmp / "dist")]

    env_dir = tmp / "venv"
    venv.create(env_dir, with_pip=True)
    python = env_dir / "bin" / "python"
    done = subprocess.run([str(python), "-m", "pip", "install", "-q", "--no-deps", "--no-index", *map(str, wheels)],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    site = Path(subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                               capture_output=True, text=True, check=True).stdout.strip())
    # the test environment's packages (torch, Lightning, ...), as plain paths: its .pth files, among them the
    # editable install of the checkout's zoo and plugins, are not read
    (site / "borrowed.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    log = tmp / "checkout_reads.txt"
    allowed = os.path.realpath(sys.prefix) + os.sep  # CI's venv lies inside the checkout
    (site / "zoo_checkout_guard.py").write_text(GUARD.format(checkout=os.path.realpath(ROOT) + os.sep,
                                                             allowed=allowed, log=str(log)))
    (site / "zzz_checkout_guard.pth").write_text("import zoo_checkout_guard\n")
    work = tmp / "work"
    work.mkdir()
    return env_dir / "bin", work, log


def _run(installed, *command: str, timeout: int = 600) -> subprocess.CompletedProcess:
    bin_dir, work, log = installed
    environment = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    done = subprocess.run([str(bin_dir / command[0]), *command[1:]], cwd=work, capture_output=True, text=True,
                          timeout=timeout, env={**environment, "PYTHONUNBUFFERED": "1"})
    assert not log.is_file(), f"read from the checkout: {log.read_text()}"
    return done


def test_the_installed_package_runs_outside_the_checkout(installed):
    version = _run(installed, "zoo", "--version")
    assert version.returncode == 0 and version.stdout.startswith("zoo 0.1.0"), version.stderr

    where = _run(installed, "python", "-c", "import zoo, zoo_weights; print(zoo.__file__, zoo_weights.__file__)")
    assert where.returncode == 0, where.stderr[-2000:]
    assert all(not Path(p).is_relative_to(ROOT) for p in where.stdout.split()), where.stdout

    fit = _run(installed, "zoo", "fit", "--config", "digits", "--trainer.max_epochs", "1",  # DenseNet-BC-100: cut
               *(f"--trainer.limit_{split}_batches=2" for split in ("train", "val", "test")))
    assert fit.returncode == 0, fit.stderr[-3000:]
    assert "test accuracy:" in fit.stdout
    assert list((installed[1] / "runs").glob("densenet_bc100-digits/version_0/checkpoints/best.ckpt"))

    missing = _run(installed, "zoo", "fit", "--config", "no_such_config")
    assert missing.returncode == 2
    assert "config file 'no_such_config' does not exist" in missing.stderr and "digits" in missing.stderr

    bench = _run(installed, "zoo", "bench", "--suite", "digits", "--models", "linear", "--seeds", "0", "--set",
                 "trainer.max_epochs=1", "--no_progress", "--out", "board")
    assert bench.returncode == 0, bench.stderr[-3000:]
    rows = (installed[1] / "board" / "results.csv").read_text().splitlines()
    assert len(rows) == 2 and ",linear,digits,0," in rows[1] and ",done," in rows[1]


def test_the_installed_package_loads_its_weights_from_python(installed):
    code = """
import json, zoo
model = zoo.create("resnet20", weights="zoo:fashion_mnist")
net = zoo.create_model("resnet20", pretrained=True)
stages = zoo.create_model("resnet20", pretrained=True, features_only=True, out_indices=(1, 2))
print(json.dumps({"stages": stages.feature_info.channels(),
                  "hparams": {k: model.hparams[k] for k in ("num_classes", "in_chans", "image_size")},
                  "class_names": model.hparams["class_names"], "cfg_top1": net.pretrained_cfg["top1"],
                  "net_in_chans": net.in_chans, "pretrained": zoo.list_models(pretrained=True)}))
"""
    done = _run(installed, "python", "-c", code)
    assert done.returncode == 0, done.stderr[-3000:]
    found = json.loads(done.stdout.strip().splitlines()[-1])
    assert found["hparams"] == {"num_classes": 10, "in_chans": 1, "image_size": 28}
    assert found["class_names"][0] == "T-shirt/top" and found["net_in_chans"] == 1 and found["cfg_top1"] > 80
    assert {"lenet5", "mlp", "resnet20"} <= set(found["pretrained"]) and found["stages"] == [32, 64]
