"""The docs build strictly, and every Python example in them runs."""

import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import ROOT

FASHION_MNIST = Path("/usr/share/datasets/fashion-mnist")
PAGES = sorted((ROOT / "docs").glob("*.md")) + [ROOT / "README.md"]


def python_blocks(page: Path) -> list[str]:
    return re.findall(r"^```python\n(.*?)^```", page.read_text(), re.M | re.S)


@pytest.mark.parametrize("page", [p for p in PAGES if python_blocks(p)], ids=lambda p: p.name)
def test_examples_run(page, tmp_path, monkeypatch):
    """The page's Python blocks, in order, in one namespace (as a reader would paste them)."""
    if any("fashion_mnist" in block for block in python_blocks(page)) and not FASHION_MNIST.is_dir():
        why = "the page's examples read Fashion-MNIST: apt-get install dataset-fashion-mnist"
        pytest.fail(why) if os.environ.get("ZOO_REQUIRE_DATA") == "1" else pytest.skip(why)
    monkeypatch.chdir(tmp_path)
    from zoo.registry import MODELS

    MODELS.discover()  # plugins' models are not the page's to remove afterwards
    before = set(MODELS._entries)
    namespace: dict = {"__name__": f"docs_{page.stem}"}
    try:
        for block in python_blocks(page):
            exec(compile(block, str(page), "exec"), namespace)
    finally:
        for name in set(MODELS._entries) - before:  # models a page registers
            MODELS._entries.pop(name)


def test_mkdocs_build_strict(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "-d", str(tmp_path / "site")],
                          cwd=ROOT, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    api = (tmp_path / "site" / "api" / "index.html").read_text()
    assert "multiclass SVM loss" in api and "built from the net's registry name" in api and "read once" in api


def test_readme_commands_are_what_ci_runs():
    readme = (ROOT / "README.md").read_text()
    commands = re.findall(r"^```bash\n(python3 -m venv .*)\n```", readme, re.M)
    assert len(commands) == 2
    assert commands[0].endswith("zoo fit --config digits")
    ci = (ROOT / ".ci" / "run").read_text()
    assert commands[1] in ci.splitlines()


def test_models_page_table_is_the_registry(capsys):
    from zoo.cli import main

    main(["models", "--markdown"])
    table = capsys.readouterr().out.strip()
    assert table in (ROOT / "docs" / "models.md").read_text()


def test_weights_page_table_is_the_weights_records(capsys):
    """docs/weights.md's table is generated from the weights' records (zoo models --pretrained --markdown)."""
    from zoo.cli import main

    main(["models", "--pretrained", "--markdown"])
    table = capsys.readouterr().out.strip()
    assert table.count("zoo:fashion_mnist") == 8 and table in (ROOT / "docs" / "weights.md").read_text()


def test_readme_links_resolve_where_the_package_description_shows_it():
    """PyPI shows the README as the package's description: every link is absolute, and those into the repository
    name a file that exists here (the project's Homepage URL, blob/main/PATH)."""
    home = re.search(r'^Homepage = "([^"]+)"$', (ROOT / "pyproject.toml").read_text(), re.M).group(1)
    links = re.findall(r"\]\(([^)]+)\)", (ROOT / "README.md").read_text())
    assert links and all(link.startswith("https://") for link in links), links
    for link in links:
        if link.startswith(home):
            assert (ROOT / link.removeprefix(f"{home}/blob/main/")).is_file(), link


CUT = ["--trainer.max_epochs", "1", "--trainer.limit_train_batches", "2", "--trainer.limit_val_batches", "2",
       "--trainer.limit_test_batches", "2"]


def tour_lines() -> list[list[str]]:
    """The README tour's shell lines, as argument lists without the leading ``zoo`` and the comments."""
    block = re.search(r"^## A short tour\n.*?^```bash\n(.*?)^```", (ROOT / "README.md").read_text(), re.M | re.S)
    lines = [shlex.split(line, comments=True) for line in block.group(1).splitlines() if line.strip()]
    assert all(line[0] == "zoo" for line in lines)
    return [line[1:] for line in lines]


def cut(argv: list[str]) -> list[str]:
    """The line on a budget of seconds: one epoch of two batches, one timed step, one seed of one bench entry."""
    if argv[0] == "fit":
        return argv + CUT
    if argv[0] == "test":
        return argv + ["--trainer.limit_test_batches", "2"]
    if argv[:2] == ["bench", "speed"]:
        return argv + ["--batch_size", "1", "--rounds", "1", "--warmup", "0"]
    if argv[0] == "bench":
        return argv + ["--models", "lenet5", "--seeds", "0", "--no_progress", "--set",
                       *(f"{key.removeprefix('--')}={value}" for key, value in zip(CUT[::2], CUT[1::2], strict=True))]
    return argv  # zoo cv re-runs the cut run's config; the others train nothing


def _checksums_of_the_stand_in(folder, monkeypatch) -> None:
    """CIFAR-10's published md5s, as torchvision lists them, replaced by those of the files written here: zoo checks
    them as it would check the download's."""
    import hashlib

    from torchvision.datasets import CIFAR10

    def md5(name: str) -> str:
        return hashlib.md5((folder / name).read_bytes()).hexdigest()

    for key in ("train_list", "test_list"):
        monkeypatch.setattr(CIFAR10, key, [[name, md5(name)] for name, _ in getattr(CIFAR10, key)])
    monkeypatch.setattr(CIFAR10, "meta", {**CIFAR10.meta, "md5": md5(CIFAR10.meta["filename"])})


def test_the_readme_tour_runs_top_to_bottom_as_written(tmp_path, monkeypatch, capsys, imagenet_resnet18):
    """Each line of the README's tour, in order, in one fresh folder, as a reader pastes them (in process, each cut
    to a budget of seconds). The only things put there first are what the lines say the reader brings or the
    network gives: ``./pets`` (a folder of images per class), CIFAR-10 in ./data (files in its format, with their
    checksums) and torchvision's resnet18 file."""
    if not FASHION_MNIST.is_dir():
        why = "the tour reads Fashion-MNIST: apt-get install dataset-fashion-mnist"
        pytest.fail(why) if os.environ.get("ZOO_REQUIRE_DATA") == "1" else pytest.skip(why)
    import logging
    import warnings

    from tests.test_data import write_cifar, write_folder
    from zoo.cli import main

    monkeypatch.chdir(tmp_path)
    filters = list(warnings.filters)
    write_folder(tmp_path / "pets", per_class=12)
    write_cifar(tmp_path / "data", per_batch=1020)  # CIFAR-10 holds out 5,000 training images for validation
    _checksums_of_the_stand_in(tmp_path / "data" / "cifar-10-batches-py", monkeypatch)
    for argv in tour_lines():
        try:
            main(cut(argv))
        except SystemExit as exc:
            assert exc.code in (0, None), f"zoo {' '.join(argv)} exited {exc.code}: {capsys.readouterr().err[-2000:]}"
        out = capsys.readouterr().out
        if argv[0] in ("fit", "test"):
            assert "test accuracy: " in out, f"zoo {' '.join(argv)} printed no test accuracy"
    runs = tmp_path / "runs"
    assert sorted(p.name for p in (runs / "lenet5-digits").iterdir()) == ["version_0", "version_1"]  # the re-run
    assert (runs / "lenet5-digits" / "version_0" / "test" / "version_0" / "metrics.csv").is_file()
    assert [p.name for p in (runs / "resnet20-fashion_mnist").iterdir()] == ["test"]  # weights tested, not trained
    for path in ("cams/gradcam.png", "preds.csv", "lenet5.onnx", "grid.png", "runs/bench/digits/leaderboard.md",
                 "runs/bench/speed.csv", "runs/resnet18-folder/version_0/checkpoints/best.ckpt"):
        assert (tmp_path / path).is_file(), path
    (session,) = (runs / "cv").iterdir()
    assert sorted(p.name for p in (session / "lenet5-digits").iterdir()) == [f"fold{k}" for k in range(5)]
    # what zoo silences during a command stays silenced for that command only
    assert warnings.filters == filters and not logging.getLogger("lightning.pytorch").filters


def test_the_cam_pages_table_is_the_committed_result():
    """docs/cam.md's localization figures are benchmarks/cam_localization.py's output, which trains as the page's
    command does (its table once said 66 % where that command gives 80.56 %)."""
    result = (ROOT / "benchmarks" / "results" / "cam_localization.md").read_text()
    rows = [line for line in result.splitlines() if line.startswith("| ")]
    page = (ROOT / "docs" / "cam.md").read_text()
    assert len(rows) == 27 and all(row in page for row in rows)  # training, pointing game, box IoU (7 models each),
    # the floor
    assert "| resnet20 | 5 | 0.790 |" in result  # zoo fit --model resnet20 --data cluttered_digits, 5 epochs, Xeon
