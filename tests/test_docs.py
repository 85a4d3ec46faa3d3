"""The docs build strictly, and every Python example in them runs."""

import os
import re
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
    assert "multiclass SVM loss" in api and "Rebuild the net from its registry name" in api


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


def test_readme_links_resolve_where_the_package_description_shows_it():
    """PyPI shows the README as the package's description: every link is absolute, and those into the repository
    name a file that exists here (the project's Homepage URL, blob/main/PATH)."""
    home = re.search(r'^Homepage = "([^"]+)"$', (ROOT / "pyproject.toml").read_text(), re.M).group(1)
    links = re.findall(r"\]\(([^)]+)\)", (ROOT / "README.md").read_text())
    assert links and all(link.startswith("https://") for link in links), links
    for link in links:
        if link.startswith(home):
            assert (ROOT / link.removeprefix(f"{home}/blob/main/")).is_file(), link
