import json
import subprocess
import sys
import textwrap
import zipfile
from pathlib import Path

import pytest
import torch
from torch import nn

import zoo
from zoo.errors import UnknownNameError, ZooError
from zoo.registry import MODELS


def test_create_returns_a_lightning_module_with_the_net():
    import lightning as L

    model = zoo.create("lenet5", num_classes=10, in_chans=1)
    assert isinstance(model, L.LightningModule)
    assert isinstance(model, zoo.ImageClassifier)
    assert model(torch.randn(2, 1, 32, 32)).shape == (2, 10)


def test_create_model_returns_the_plain_net():
    net = zoo.create_model("mlp", num_classes=7)
    assert isinstance(net, nn.Module) and not isinstance(net, zoo.ImageClassifier)
    assert net(torch.randn(3, 3, 32, 32)).shape == (3, 7)


def test_list_models_patterns_and_family():
    assert zoo.list_models("l*") == ["lenet5", "linear"]
    assert zoo.list_models(["mlp", "lin*"]) == ["linear", "mlp"]
    assert zoo.list_models("*", exclude="l*") == [n for n in zoo.list_models() if not n.startswith("l")]
    assert zoo.list_models(family="lenet") == ["lenet5"]
    assert zoo.list_models("nothing*") == []


def test_model_info_measures_params_and_macs():
    info = zoo.model_info("lenet5")
    assert (info.name, info.family, info.input_size, info.min_size) == ("lenet5", "lenet", (1, 32, 32), 16)
    assert "LeCun" in info.paper
    assert info.params == sum(p.numel() for p in zoo.create_model("lenet5").parameters()) == 61_706
    # C1 28*28*6*25 + C3 10*10*16*150 + C5 400*120 + F6 120*84 + out 84*10
    assert info.macs == 117_600 + 240_000 + 48_000 + 10_080 + 840
    assert info.arguments["activation"] == "tanh"


def test_the_catalog_is_what_the_live_registry_measures():
    """zoo/catalog.json, which ``zoo models``, ``zoo info`` and ``zoo data list`` read so as to answer without
    importing PyTorch, is the registry measured now: adding or changing a model or dataset of zoo's rewrites it."""
    from zoo.catalog import _described_info, catalog, live_catalog, measure_info

    live, stored = json.loads(json.dumps(live_catalog())), catalog()
    if live["torchvision"] != stored["torchvision"]:  # another torchvision's weights are read live (test below)
        live, stored = _without_torchvision(live), _without_torchvision(stored)
    assert stored == live, "zoo/catalog.json is stale; run: python -c 'import zoo.catalog as c; c.write_catalog()'"
    assert {"resnet18", "lenet5", "airbench", "knn"} <= set(live["models"]) and "fashion_mnist" in live["datasets"]
    for name in live["models"]:  # read back: the same values of the same types, arguments in the builder's order
        described, measured = _described_info(name), measure_info(name)
        assert described == measured and list(described.arguments) == list(measured.arguments)
    assert zoo.model_info("resnet18").weights["torchvision:IMAGENET1K_V1"]["acc@1"] == 69.758


def _without_torchvision(catalog: dict) -> dict:
    models = {name: {**record, "weights": {k: v for k, v in record["weights"].items()
                                           if not k.startswith("torchvision:")}}
              for name, record in catalog["models"].items()}
    return {**catalog, "models": models, "torchvision": None}


def test_torchvisions_weights_of_another_version_are_read_live(monkeypatch):
    """catalog.json read torchvision's weights from one torchvision; with another installed, the models that list
    them are measured (torchvision's own metadata), the others still read."""
    import zoo.catalog as catalog

    original = catalog._described_info

    def described(name: str) -> zoo.ModelInfo:
        assert name != "resnet18", "read from the catalog, written with another torchvision"
        return original(name)

    monkeypatch.setattr(catalog, "_torchvision_version", lambda: "0.0.1")
    monkeypatch.setattr(catalog, "_described_info", described)
    assert "resnet18" in catalog.catalog()["torchvision_models"] and "resnet20" not in catalog.catalog()[
        "torchvision_models"]
    assert zoo.model_info("resnet18").weights["torchvision:IMAGENET1K_V1"]["acc@1"] == 69.758
    assert zoo.model_info("resnet20").params == 269_722  # read (He et al. count 0.27M)


def test_a_name_registered_before_zoos_own_is_measured_not_read(monkeypatch):
    """The catalog describes zoo's own entries only: a name of another (here registered while zoo's own are not
    loaded) is measured, and the listing holds both."""
    from zoo.catalog import catalog
    from zoo.registry import Registry

    fresh = Registry("model", "zoo models", builtin="zoo.models", catalog="models")
    fresh._entries["resnet18"] = object()  # someone's own resnet18, registered before zoo's
    assert not fresh.is_described("resnet18") and fresh.is_described("lenet5")
    assert set(fresh.names()) == set(catalog()["models"]) and not fresh._builtin_loaded


def test_unknown_name_suggests_the_closest():
    with pytest.raises(UnknownNameError, match=r"unknown model 'lenet'; did you mean 'lenet5'\? see: zoo models"):
        zoo.create_model("lenet")
    with pytest.raises(ZooError, match="unknown model 'qqq'; see: zoo models"):
        zoo.create("qqq")
    with pytest.raises(ZooError, match="unknown model 'vgg'; did you mean 'vgg11' or 'vgg11_bn' or 'vgg13'\\?"):
        zoo.create_model("vgg")


def test_unknown_builder_argument_names_the_valid_ones():
    with pytest.raises(ZooError, match="model 'mlp' has no argument 'hiden'.*hidden"):
        zoo.create_model("mlp", hiden=[3])


def test_register_by_decorator_and_reject_a_taken_name():
    @zoo.register_model(family="mine", paper="a test", input_size=(1, 8, 8))
    def _tiny_test_net(num_classes: int = 3, in_chans: int = 1, image_size: int = 8) -> nn.Module:
        return nn.Sequential(nn.Flatten(), nn.Linear(in_chans * image_size * image_size, num_classes))

    try:
        assert "_tiny_test_net" in zoo.list_models(family="mine")
        assert zoo.model_info("_tiny_test_net").params == 64 * 3 + 3
        model = zoo.create("_tiny_test_net", num_classes=3, in_chans=1, image_size=8)
        assert model(torch.zeros(2, 1, 8, 8)).shape == (2, 3)
        with pytest.raises(ZooError, match="model name '_tiny_test_net' is already registered"):
            zoo.register_model(_tiny_test_net, name="_tiny_test_net", family="mine")
    finally:
        MODELS._entries.pop("_tiny_test_net")


@pytest.mark.parametrize("name", zoo.list_models(exclude="*/*"))
def test_every_variant_is_an_explicit_function_with_one_source_for_its_input(name):
    """grep finds `def resnet18(`; the registered input size is the builder's own default in_chans and image_size."""
    import importlib
    import inspect

    builder = MODELS.get(name).builder
    assert getattr(importlib.import_module(builder.__module__), name) is builder  # importable from its family's file
    assert f"def {name}(" in inspect.getsource(builder)
    defaults = {p.name: p.default for p in inspect.signature(builder).parameters.values()}
    assert MODELS.get(name).input_size == (defaults["in_chans"], defaults["image_size"], defaults["image_size"])
    assert {"num_classes", "in_chans", "image_size"} <= set(zoo.model_info(name).arguments)


def test_a_variant_takes_and_documents_its_familys_arguments():
    from zoo.models.resnet import BasicBlock, imagenet_resnet, resnet18

    assert list(zoo.model_info("resnet18").arguments) == ["num_classes", "in_chans", "image_size", "stem", "init",
                                                         "zero_init_residual", "drop_path_rate"]
    assert "drop_path_rate: stochastic depth" in resnet18.__doc__ and resnet18.__doc__.startswith("ResNet-18")
    with pytest.raises(ZooError, match="model 'resnet18' has no argument 'groups'"):  # the architecture is fixed
        zoo.create_model("resnet18", groups=2)
    a = resnet18(num_classes=7, image_size=32)
    b = imagenet_resnet(BasicBlock, [2, 2, 2, 2], num_classes=7, image_size=32)
    assert {k: v.shape for k, v in a.state_dict().items()} == {k: v.shape for k, v in b.state_dict().items()}


def _wheel(tmp_path: Path) -> Path:
    """A real wheel of a tiny plugin distribution with two `zoo.models` entry points."""
    module = textwrap.dedent('''
        from torch import nn
        import zoo

        @zoo.register_model(family="plugin-test", paper="decorated in a plugin", input_size=(1, 8, 8))
        def decorated_plugin_net(num_classes=10, in_chans=1, image_size=8):
            return nn.Sequential(nn.Flatten(), nn.Linear(in_chans * image_size ** 2, num_classes))

        def plain_plugin_net(num_classes=10, in_chans=1, image_size=8):
            return nn.Sequential(nn.Flatten(), nn.Linear(in_chans * image_size ** 2, num_classes))
    ''')
    dist = "zoo_plugin_test-0.1.dist-info"
    files = {
        "zoo_plugin_test.py": module,
        f"{dist}/METADATA": "Metadata-Version: 2.1\nName: zoo-plugin-test\nVersion: 0.1\n",
        f"{dist}/WHEEL": "Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\nTag: py3-none-any\n",
        f"{dist}/entry_points.txt": "[zoo.models]\nplugin_module = zoo_plugin_test\n"
                                    "plain_plugin_net = zoo_plugin_test:plain_plugin_net\n",
    }
    files[f"{dist}/RECORD"] = "".join(f"{name},,\n" for name in [*files, f"{dist}/RECORD"])
    path = tmp_path / "zoo_plugin_test-0.1-py3-none-any.whl"
    with zipfile.ZipFile(path, "w") as wheel:
        for name, text in files.items():
            wheel.writestr(name, text)
    return path


def test_entry_point_plugin_is_discovered_on_first_use(tmp_path):
    target = tmp_path / "site"
    subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-index",
                    "--target", str(target), str(_wheel(tmp_path))], check=True)
    script = textwrap.dedent('''
        import torch, zoo
        names = zoo.list_models("*plugin*")
        print(names)
        print(zoo.model_info("decorated_plugin_net").family, zoo.model_info("plain_plugin_net").family)
        print(tuple(zoo.create_model("plain_plugin_net", num_classes=4)(torch.zeros(2, 1, 8, 8)).shape))
    ''')
    import os

    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(target), os.environ.get("PYTHONPATH", "")])}
    proc = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines() == ["['decorated_plugin_net', 'plain_plugin_net']", "plugin-test plugin", "(2, 4)"]


def test_a_broken_plugin_warns_and_zoo_still_works(tmp_path):
    dist = tmp_path / "broken-0.1.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: broken\nVersion: 0.1\n")
    (dist / "entry_points.txt").write_text("[zoo.models]\nbroken = no_such_module_anywhere\n")
    import os

    env = {**os.environ, "PYTHONPATH": str(tmp_path)}
    proc = subprocess.run([sys.executable, "-c", "import zoo; print(zoo.list_models('lenet*'))"],
                          env=env, capture_output=True, text=True, check=True)
    assert proc.stdout.strip() == "['lenet5']"
    assert "zoo plugin 'broken' (no_such_module_anywhere) could not be loaded" in proc.stderr
