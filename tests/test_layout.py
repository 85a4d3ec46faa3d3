"""The import boundaries of DESIGN.md: imports run one way (cli > train/bench/search > classifier and
friends > models/data > registry/errors), no module imports the command line, and there are no cycles.

Read from the source (every ``import``, function-level ones included), so a lazy import that would
close a cycle at run time is caught too.
"""

import ast
from pathlib import Path

import pytest

import zoo

ROOT = Path(zoo.__file__).parent
LAYERS = [  # lowest first: a module may import its own layer and the ones below, never above
    {"zoo.errors", "zoo.version", "zoo.atomic", "zoo.spreadsheet", "zoo.results", "zoo.registry", "zoo.losses",
     "zoo.optim", "zoo.configs", "zoo.runfolder", "zoo.figures", "zoo.log", "zoo.pretrained", "zoo.catalog"},
    {"zoo.models", "zoo.data", "zoo.weights", "zoo.checkpoint", "zoo.callbacks", "zoo.schedules",
     "zoo.precision"},
    {"zoo.classifier", "zoo.finetune", "zoo.cam", "zoo.features", "zoo.export", "zoo.predict", "zoo.runs"},
    {"zoo.options", "zoo.train", "zoo.bench", "zoo.search"},
    {"zoo.cli", "zoo.__main__"},
]


def module_name(path: Path) -> str:
    parts = ["zoo", *path.relative_to(ROOT).with_suffix("").parts]
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {module_name(p): p for p in ROOT.rglob("*.py")}


def imports(name: str) -> set[str]:
    """The zoo modules `name` imports, anywhere in its source."""
    path, found = MODULES[name], set()
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parent = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(parent + ([base] if base else []))
            # from zoo import data: the module zoo.data; from zoo.data import create: zoo.data
            targets = [f"{base}.{a.name}" if f"{base}.{a.name}" in MODULES else base for a in node.names]
        else:
            continue
        found |= {t for t in targets if t in MODULES and t != name}
    return found


GRAPH = {name: imports(name) for name in MODULES}


def layer(name: str) -> int:
    return next(i for i, members in enumerate(LAYERS) if any(name == m or name.startswith(m + ".") for m in members))


def test_every_module_has_a_layer():
    assert [n for n in MODULES if n != "zoo" and not any(n == m or n.startswith(m + ".")
                                                         for members in LAYERS for m in members)] == []


@pytest.mark.parametrize("name", sorted(n for n in MODULES if n != "zoo"))
def test_imports_run_one_way(name):
    upward = sorted(t for t in GRAPH[name] if t != "zoo" and layer(t) > layer(name))
    assert upward == [], f"{name} (layer {layer(name)}) imports modules of higher layers: {upward}"
    assert "zoo" not in GRAPH[name], f"{name} imports the package zoo itself; import the module that defines it"


def test_no_module_imports_the_command_line():
    assert sorted(n for n, targets in GRAPH.items() if "zoo.cli" in targets) == ["zoo.__main__"]


def test_no_import_cycles():
    cycles, state = [], {}

    def visit(name: str, path: list[str]) -> None:
        state[name] = "open"
        for target in sorted(GRAPH[name]):
            if state.get(target) == "open":
                cycles.append(path[path.index(target):] + [target])
            elif target not in state:
                visit(target, [*path, target])
        state[name] = "done"

    for name in sorted(GRAPH):
        if name not in state:
            visit(name, [name])
    assert cycles == []


def test_the_checker_sees_lazy_imports():
    """The graph holds function-level imports too (bench's fit is imported inside a function)."""
    assert "zoo.train" in GRAPH["zoo.bench.measure"] and "zoo.checkpoint" in GRAPH["zoo.models.knn"]


def loaded_after(code: str) -> set[str]:
    """The top-level packages a fresh interpreter has loaded after running `code`."""
    import subprocess
    import sys

    done = subprocess.run([sys.executable, "-c", f"{code}\nimport sys\nprint(' '.join(sys.modules))"],
                          capture_output=True, text=True, check=True)
    return {name.split(".")[0] for name in done.stdout.split()}


def test_import_zoo_loads_nothing_heavy():
    """``import zoo`` and the ``zoo`` command's module stay light, so ``zoo --help`` answers at once."""
    assert not loaded_after("import zoo, zoo.cli") & {"torch", "lightning", "torchvision", "numpy", "timm"}


def test_listing_and_describing_load_no_pytorch():
    """``zoo models``, ``zoo info NAME``, ``zoo data list`` read zoo's catalog and answer in a fraction of a second:
    no PyTorch, Lightning or NumPy is imported (a model of a plugin still is, when named)."""
    code = ("import zoo.cli\nfor argv in (['models'], ['models', '--family', 'vgg'], ['info', 'resnet18'], "
            "['data', 'list'], ['models', '--pretrained']):\n    zoo.cli.main(argv)")
    assert not loaded_after(code) & {"torch", "lightning", "torchvision", "numpy"}


def test_a_plain_net_needs_no_lightning():
    """``zoo.create_model`` is PyTorch only: the nets are usable (and exportable) without Lightning."""
    loaded = loaded_after("import zoo\nzoo.create_model('resnet20')")
    assert "torch" in loaded and "lightning" not in loaded and "pytorch_lightning" not in loaded


def test_zoos_own_names_do_not_load_the_plugins():
    """Looking up zoo's own models leaves timm (seconds to import) unloaded; a plugin name loads it."""
    code = "import zoo\nzoo.model_info('resnet20'); zoo.list_models(exclude='*/*'); zoo.create_model('lenet5')"
    assert "timm" not in loaded_after(code)
    assert "timm" in loaded_after("import zoo\nzoo.model_info('timm/resnet18')")
    # every `from zoo.train import ...` asks the module for __path__: not a model name, no plugin loads
    assert "timm" not in loaded_after("from zoo.train import fit, lenet5")
