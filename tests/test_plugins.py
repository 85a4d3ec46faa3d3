"""The two plugins under plugins/ (installed by the README's test command): zoo-timm and zoo-torchvision."""

import lightning as L
import pytest
import timm
import torch
import torchvision.models as tvm

import zoo
from tests.conftest import run_zoo, zoo_here
from zoo.cam import compute_cam
from zoo.errors import InputError
from zoo.registry import MODELS

# one conv model from each plugin, small enough to train a step on 2 CPU cores
CONV = {"timm/resnet18": "layer4", "tv/mobilenet_v3_small": "features"}
FIRST_CONV = {"timm/resnet18": "conv1.weight", "tv/mobilenet_v3_small": "features.0.0.weight"}
CLASSIFIER = {"timm/resnet18": "fc", "tv/mobilenet_v3_small": "classifier.3"}


def test_discovery_registers_every_timm_model_and_the_torchvision_ones_core_lacks():
    assert len(zoo.list_models("timm/*")) == len(timm.list_models()) > 1000
    tv = {n.removeprefix("tv/") for n in zoo.list_models("tv/*")}
    core = set(zoo.list_models(exclude="*/*"))
    assert {"efficientnet_b0", "mobilenet_v3_small", "convnext_tiny", "regnet_y_400mf", "vit_b_16", "swin_t"} <= tv
    assert not tv & core  # resnet18, vgg16, densenet121, ... stay zoo's own
    assert tv | core | {"squeezenet1_0", "squeezenet1_1"} >= set(tvm.list_models(module=tvm))
    assert MODELS.get("timm/resnet18").family == "timm/resnet"
    assert MODELS.get("tv/efficientnet_b0").family == "tv/efficientnet"


@pytest.mark.parametrize("name, reference", [
    ("timm/resnet18", lambda: timm.create_model("resnet18", num_classes=10)),
    ("tv/mobilenet_v3_small", lambda: tvm.mobilenet_v3_small(num_classes=10)),
    ("tv/regnet_x_400mf", lambda: tvm.regnet_x_400mf(num_classes=10)),
])
def test_the_net_is_the_librarys_own_with_its_names_and_outputs(name, reference):
    torch.manual_seed(0)
    theirs = reference().eval()
    ours = zoo.create_model(name, num_classes=10).eval()
    ours.load_state_dict(theirs.state_dict(), strict=True)  # same parameter names
    assert isinstance(ours, type(theirs))
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        torch.testing.assert_close(ours(x), theirs(x))
        features = ours.forward_features(x)
        torch.testing.assert_close(ours.forward_head(features), theirs(x))
    assert features.dim() == 4 and features.shape[1] == ours.num_features


@pytest.mark.parametrize("name", [*CONV, "tv/vit_b_32", "timm/vit_tiny_patch16_224"])
def test_protocol_head_split_and_reset_classifier(name):
    net = zoo.create_model(name, num_classes=5, image_size=224)
    head = {id(p) for m in net.head_modules() for p in m.parameters()}
    backbone = {id(p) for m in net.backbone_modules() for p in m.parameters()}
    assert head and backbone and not head & backbone
    direct = {id(p) for p in net.parameters(recurse=False)}  # a ViT's class token: part of the backbone
    assert head | backbone | direct == {id(p) for p in net.parameters()}
    assert {id(p) for p in net.get_classifier().parameters()} <= head
    net.reset_classifier(3)
    assert net(torch.randn(1, 3, 224, 224)).shape == (1, 3)
    assert net.forward_head(net.forward_features(torch.randn(1, 3, 224, 224)), pre_logits=True).dim() == 2


@pytest.mark.parametrize("name", CONV)
def test_one_training_step_on_digits(name):
    torch.manual_seed(0)
    data = zoo.data.create("digits", batch_size=32)
    model = zoo.create(name, num_classes=10, in_chans=1, image_size=data.image_size)
    first, last = (dict(model.net.named_parameters())[k] for k in (FIRST_CONV[name], f"{CLASSIFIER[name]}.weight"))
    before = first.detach().clone(), last.detach().clone()
    trainer = L.Trainer(max_steps=1, limit_val_batches=0, logger=False, enable_checkpointing=False,
                        enable_progress_bar=False, enable_model_summary=False)
    trainer.fit(model, data)
    assert not torch.equal(before[0], first) and not torch.equal(before[1], last)  # both ends learned
    assert torch.isfinite(trainer.callback_metrics["train_loss_epoch"])


@pytest.mark.parametrize("name, layer", CONV.items())
def test_cam_layer_metadata_and_gradcam_match_pytorch_grad_cam(name, layer):
    import pytorch_grad_cam
    from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget

    assert zoo.model_info(name).cam_layer == layer
    torch.manual_seed(0)
    net = zoo.create_model(name, num_classes=10, image_size=64).eval()
    x = torch.randn(2, 3, 64, 64)
    ours = compute_cam(net, x, [3, 7], method="gradcam").maps
    with pytorch_grad_cam.GradCAM(model=net, target_layers=[net.get_submodule(layer)]) as cam:
        theirs = torch.from_numpy(cam(x, targets=[ClassifierOutputTarget(3), ClassifierOutputTarget(7)]))
    torch.testing.assert_close(ours, theirs, rtol=1e-3, atol=1e-3)


def test_minimum_sizes_come_from_the_nets():
    assert zoo.model_info("timm/resnet18").min_size == 32  # stride of timm's last feature map
    assert zoo.model_info("tv/inception_v3").min_size == 75  # torchvision's weights metadata
    # a net of a fixed input size has no smaller form: the registry reports its defaults' size
    assert zoo.model_info("tv/vit_b_32").min_size == zoo.model_info("timm/vit_tiny_patch16_224").min_size == 224
    with pytest.raises(InputError, match="at least 32x32"):
        zoo.create_model("timm/resnet18")(torch.randn(1, 3, 16, 16))
    vit = zoo.create_model("tv/vit_b_32", num_classes=2, image_size=64)  # built for the size it is given
    assert vit(torch.randn(1, 3, 64, 64)).shape == (1, 2)
    with pytest.raises(InputError, match="torchvision's maxvit_t cannot be built for image_size=64: .*divisible"):
        zoo.create_model("tv/maxvit_t", image_size=64)


def test_info_shows_torchvision_weights_metadata(tmp_path, capsys):
    proc = zoo_here("info", "tv/efficientnet_b0", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "pretrained weights:" in proc.stdout
    listed = proc.stdout.split("pretrained weights:")[1].splitlines()
    column = listed[1].split().index("IMAGENET1K_V1")  # a column a weight, a row a figure
    shown = {line.split()[0]: line.split()[1 + column] for line in listed[3:] if line.strip()}
    meta = tvm.EfficientNet_B0_Weights.IMAGENET1K_V1.meta
    assert [shown["acc@1"], shown["acc@5"], shown["params"]] == [str(meta["_metrics"]["ImageNet-1K"]["acc@1"]),
                                                               str(meta["_metrics"]["ImageNet-1K"]["acc@5"]),
                                                               f"{meta['num_params']:,}"]
    from zoo.cli import main

    main(["models"])  # in this process: the real command ran above
    out = capsys.readouterr().out
    assert "timm/" not in out.split("plugins installed")[0]  # the default table is zoo's own
    assert "plugins installed: timm, tv; list their models with e.g. zoo models 'timm/*'" in out
    main(["models", "tv/efficientnet_b[01]"])
    assert [line.split()[0] for line in capsys.readouterr().out.splitlines()[2:]] == ["tv/efficientnet_b0",
                                                                                      "tv/efficientnet_b1"]


def test_zoo_fit_trains_a_timm_model_and_reloads_it(tmp_path):
    limits = ["--trainer.max_epochs", "1", "--trainer.limit_train_batches", "2", "--trainer.limit_val_batches", "2",
              "--trainer.limit_test_batches", "2"]
    proc = zoo_here("fit", "--model", "timm/resnet18", "--model.drop_rate", "0.1", *limits, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "test accuracy:" in proc.stdout
    run = tmp_path / "runs" / "timm_resnet18-digits" / "version_0"
    assert "class_path: zoo.train.timm_resnet18" in (run / "config.yaml").read_text()
    proc = zoo_here("test", "--ckpt_path", str(run / "checkpoints" / "best.ckpt"), "--trainer.limit_test_batches", "2",
                   cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    proc = zoo_here("fit", "--config", str(run / "config.yaml"), *limits, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr


def test_the_docs_20_line_plugin_installs_lists_and_trains(tmp_path):
    """docs/plugins.md's module and entry point, as an installed distribution, through the real zoo command."""
    import re

    from tests.conftest import ROOT

    page = (ROOT / "docs" / "plugins.md").read_text()
    module = re.findall(r"^```python\n(\"\"\"zoo_tiny.*?)^```", page, re.M | re.S)[0]
    assert len(module.strip().splitlines()) <= 24  # the page promises about 20 lines
    site = tmp_path / "site"
    dist = site / "zoo_tiny-0.1.0.dist-info"
    dist.mkdir(parents=True)
    (site / "zoo_tiny.py").write_text(module)
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: zoo-tiny\nVersion: 0.1.0\n")
    (dist / "entry_points.txt").write_text("[zoo.models]\ntiny = zoo_tiny\n")
    env = {"PYTHONPATH": str(site)}
    proc = run_zoo("models", "tiny/*", cwd=tmp_path, env=env)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines()[2].split()[:2] == ["tiny/cnn3", "tiny"]
    proc = run_zoo("fit", "--model", "tiny/cnn3", "--model.width", "8", "--trainer.max_epochs", "1",
                   "--trainer.limit_train_batches", "2", "--trainer.limit_val_batches", "2",
                   "--trainer.limit_test_batches", "2", cwd=tmp_path, env=env)
    assert proc.returncode == 0, proc.stderr
    assert "test accuracy:" in proc.stdout


@pytest.mark.parametrize("name", ["tv/mobilenet_v3_small", "timm/resnet18"])
def test_plugin_nets_pickle_into_a_new_process(name):
    """Plugin nets are instances of importable classes: torch.save(model), spawn-based DDP and
    multiprocessing work (a class made at run time with no importable name did not pickle)."""
    import pickle
    import subprocess
    import sys

    net = zoo.create_model(name, num_classes=5, image_size=64).eval()
    x = torch.randn(2, 3, 64, 64)
    code = ("import pickle, sys, torch\nnet, x = pickle.loads(sys.stdin.buffer.read())\n"
            "sys.stdout.buffer.write(pickle.dumps(net(x).detach()))")
    done = subprocess.run([sys.executable, "-c", code], input=pickle.dumps((net, x)), capture_output=True)
    assert done.returncode == 0, done.stderr.decode()[-2000:]
    with torch.no_grad():
        assert torch.equal(pickle.loads(done.stdout), net(x))
