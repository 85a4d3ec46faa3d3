"""Transfer learning: weight sources, head and in_chans adaptation, the fine-tuning strategies, features."""

import functools
from pathlib import Path

import huggingface_hub.constants
import lightning as L
import numpy as np
import pytest
import timm
import torch
import torchvision.models as tvm
from conftest import _offline, zoo_here
from safetensors.torch import save_file
from timm.models import adapt_input_conv as timm_adapt_input_conv
from torch import nn

import zoo
from zoo.errors import CheckpointError, InputError, ZooError
from zoo.finetune import Finetune, backbone_stages, training_stages
from zoo.weights import adapt_input_conv, load_weights


def test_torchvision_weights_go_into_a_zoo_resnet_with_a_new_head(imagenet_resnet18):
    net = zoo.create_model("resnet18", num_classes=10).eval()
    notes = load_weights(net, "torchvision:IMAGENET1K_V1", "resnet18")
    assert notes == ["new final layer fc (10 classes)"]
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():  # everything but the final layer is torchvision's: the same features
        reference = imagenet_resnet18.avgpool(imagenet_resnet18.layer4(imagenet_resnet18.layer3(
            imagenet_resnet18.layer2(imagenet_resnet18.layer1(imagenet_resnet18.maxpool(imagenet_resnet18.relu(
                imagenet_resnet18.bn1(imagenet_resnet18.conv1(x))))))))).flatten(1)
        assert torch.allclose(net.forward_head(net.forward_features(x), pre_logits=True), reference, atol=1e-5)
    assert net.fc.weight.shape == (10, 512)
    # 1000 classes: the head is kept too, and the net is torchvision's
    same = zoo.create("resnet18", num_classes=1000, image_size=224, weights="torchvision:DEFAULT").net.eval()
    with torch.no_grad():
        assert torch.allclose(same(x), imagenet_resnet18(x), atol=1e-5)


def test_one_channel_from_rgb_weights_is_the_summed_kernel(imagenet_resnet18):
    model = zoo.create("resnet18", num_classes=10, in_chans=1, image_size=224, weights="torchvision:IMAGENET1K_V1")
    assert torch.equal(model.net.conv1.weight, imagenet_resnet18.conv1.weight.sum(1, keepdim=True))
    grey = torch.rand(1, 1, 64, 64)
    with torch.no_grad():  # a grey image through the summed kernel = the same image as RGB through the original
        assert torch.allclose(model.net.conv1(grey), imagenet_resnet18.conv1(grey.expand(-1, 3, -1, -1)), atol=1e-5)


def test_adapt_input_conv_matches_timm_from_rgb_and_works_from_other_channels():
    torch.manual_seed(0)
    rgb = torch.randn(8, 3, 3, 3)
    for n in (1, 2, 3, 4, 7):
        assert torch.allclose(adapt_input_conv(rgb, n), timm_adapt_input_conv(n, rgb), atol=1e-6), n
    grey = torch.randn(8, 1, 3, 3)  # a digits net's first layer into RGB: each channel a third
    assert torch.allclose(adapt_input_conv(grey, 3), grey.expand(-1, 3, -1, -1) / 3)
    image = torch.rand(1, 1, 10, 10)
    assert torch.allclose(nn.functional.conv2d(image.expand(-1, 3, -1, -1), adapt_input_conv(grey, 3)),
                          nn.functional.conv2d(image, grey), atol=1e-5)


def test_mismatched_keys_other_than_the_head_are_listed(imagenet_resnet18):
    with pytest.raises(ZooError, match=r"other shapes \(weights vs net\): conv1.weight \(64, 3, 7, 7\) vs "
                                       r"\(64, 3, 3, 3\).*--model.stem imagenet"):
        zoo.create("resnet18", num_classes=10, image_size=32, weights="torchvision:IMAGENET1K_V1")  # cifar stem
    resnet34 = zoo.create_model("resnet34")  # resnet18's weights: its extra blocks are missing
    with pytest.raises(ZooError, match=r"missing: layer1.2.conv1.weight, .*and \d+ more"):
        load_weights(resnet34, str(_saved(imagenet_resnet18.state_dict())), "resnet34")


def _saved(state, suffix=".pth", folder=None):
    import tempfile

    path = Path(folder or tempfile.mkdtemp()) / f"weights{suffix}"
    (save_file if suffix == ".safetensors" else torch.save)(state, path)
    return path


def test_state_dict_files_pth_safetensors_and_wrapped(tmp_path):
    torch.manual_seed(0)
    source = zoo.create_model("lenet5", num_classes=10, in_chans=1)
    state = source.state_dict()
    for path in (_saved(state, ".pth", tmp_path), _saved(state, ".safetensors", tmp_path),
                 _saved({"state_dict": {f"module.{k}": v for k, v in state.items()}}, ".pt", tmp_path)):
        net = zoo.create("lenet5", num_classes=10, in_chans=1, weights=str(path)).net
        assert all(torch.equal(a, b) for a, b in zip(net.state_dict().values(), state.values(), strict=True)), path
    evil = tmp_path / "pickled.pth"
    torch.save({"fc.weight": functools.partial(print, "code")}, evil)  # not plain tensors: weights_only refuses
    with pytest.raises(CheckpointError, match="cannot be read safely"):
        zoo.create("lenet5", num_classes=10, in_chans=1, weights=str(evil))
    with pytest.raises(InputError, match="unknown weights 'IMAGENET1K_V1'.*torchvision:WEIGHTS"):
        zoo.create("lenet5", weights="IMAGENET1K_V1")
    with pytest.raises(CheckpointError, match="does not exist"):
        zoo.create("lenet5", weights=str(tmp_path / "missing.pth"))


def test_torchvision_weights_offline_and_not_cached_say_where_to_put_the_file(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "empty"))
    monkeypatch.setattr(torch.hub, "download_url_to_file", _offline)
    with pytest.raises(ZooError, match=r"offline, put the file https://download\.pytorch\.org/models/"
                                       r"resnet18-f37072fd\.pth at .*empty/hub/checkpoints/resnet18-f37072fd\.pth"):
        zoo.create("resnet18", image_size=224, weights="torchvision:IMAGENET1K_V1")
    with pytest.raises(InputError, match="unknown weights 'IMAGENET'.*choose one of: DEFAULT, IMAGENET1K_V1"):
        zoo.create("resnet18", image_size=224, weights="torchvision:IMAGENET")
    with pytest.raises(InputError, match="torchvision has no weights for 'lenet5'"):
        zoo.create("lenet5", weights="torchvision:DEFAULT")


def test_torchvision_weights_for_a_plugin_model_with_one_channel(tmp_path, monkeypatch):
    weights = tvm.MobileNet_V3_Small_Weights.IMAGENET1K_V1
    torch.manual_seed(0)
    pretrained = tvm.mobilenet_v3_small().state_dict()  # stands in for the download, same file name and format
    cache = tmp_path / "hub" / "checkpoints"
    cache.mkdir(parents=True)
    torch.save(pretrained, cache / Path(weights.url).name)
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    net = zoo.create("tv/mobilenet_v3_small", weights="torchvision:IMAGENET1K_V1", num_classes=10, in_chans=1).net
    state = net.state_dict()
    assert torch.equal(state["features.0.0.weight"], pretrained["features.0.0.weight"].sum(1, keepdim=True))
    assert torch.equal(state["features.12.0.weight"], pretrained["features.12.0.weight"])
    assert state["classifier.3.weight"].shape == (10, 1024)


def test_timm_weights_through_timms_loader_fit_zoos_resnet(monkeypatch):
    torch.manual_seed(0)
    stand_in = timm.create_model("resnet18")  # timm's download, stood in for: timm's names are torchvision's
    create = timm.create_model

    def fake_create(name, pretrained=False, **kwargs):
        assert (name, pretrained) == ("resnet18.a1_in1k", True)
        return stand_in

    monkeypatch.setattr(timm, "create_model", fake_create)
    net = zoo.create("resnet18", num_classes=10, image_size=224, weights="timm:resnet18.a1_in1k").net
    assert torch.equal(net.layer4[1].conv2.weight, stand_in.layer4[1].conv2.weight)
    monkeypatch.setattr(timm, "create_model", create)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")  # not in the cache: timm cannot fetch it
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)  # read once, at import: no network wait
    monkeypatch.setenv("HF_HOME", "/nonexistent-hf-home")
    with pytest.raises(ZooError, match="cannot fetch timm's pretrained weights 'resnet18.a1_in1k'.*HF_HOME"):
        zoo.create("resnet18", image_size=224, weights="timm:resnet18.a1_in1k")
    with pytest.raises(InputError, match="say which timm weights"):
        zoo.create("resnet18", weights="timm:")


# -- the strategies ------------------------------------------------------------------------------------------


def _state(net: nn.Module) -> list[tuple[bool, bool]]:
    """(requires_grad of every parameter, training mode of every BatchNorm) per stage, and for the final layer."""
    stages, final = training_stages(net)
    return [(all(p.requires_grad for m in s for p in m.parameters()),
             all(b.training for m in s for b in m.modules() if isinstance(b, nn.BatchNorm2d))) for s in stages] + \
        [(all(p.requires_grad for p in final.parameters()), True)]


def test_stages_cut_where_the_feature_map_shrinks():
    resnet = zoo.create_model("resnet18")
    assert [[type(m).__name__ for m in s] for s in backbone_stages(resnet)] == [
        ["Conv2d", "BatchNorm2d", "ReLU"], ["MaxPool2d", "Sequential"], ["Sequential"], ["Sequential"], ["Sequential"]]
    assert backbone_stages(resnet)[2] == [resnet.layer2]
    assert len(backbone_stages(zoo.create_model("vgg11_bn"))) == 5  # one per block between max-pools
    lenet = zoo.create_model("lenet5")
    stages, final = training_stages(lenet)  # two convolution stages, the hidden fully connected layers, the last
    assert len(stages) == 3 and stages[-1] == [lenet.classifier] and final is lenet.classifier[-1]
    # every parameter is in exactly one group
    for name in ("resnet18", "vgg11_bn", "googlenet", "densenet_bc100", "mlp", "lenet5"):
        net = zoo.create_model(name)
        groups = Finetune("full").param_groups(net)
        ids = [id(p) for params, _ in groups for p in params]
        assert sorted(ids) == sorted(id(p) for p in net.parameters()), name


@pytest.mark.parametrize("strategy, epoch, expected", [
    ("linear_probe", 0, [False] * 5), ("linear_probe", 9, [False] * 5),
    ("full", 0, [True] * 5),
    ("freeze_then_unfreeze", 2, [False] * 5), ("freeze_then_unfreeze", 3, [True] * 5),
    ("gradual", 0, [False] * 5), ("gradual", 1, [False] * 4 + [True]), ("gradual", 4, [False] * 3 + [True] * 2),
    ("gradual", 9, [False, False] + [True] * 3),
])
def test_each_strategy_freezes_exactly_what_it_says(strategy, epoch, expected):
    net = zoo.create_model("resnet18", num_classes=3).train()
    Finetune(strategy, unfreeze_epoch=3, milestones=[1, 4, 6]).apply(net, epoch)
    state = _state(net)
    assert [grad for grad, _ in state[:-1]] == expected
    assert [bn for _, bn in state[:-1]] == expected  # frozen stages keep BatchNorm in eval mode
    assert state[-1] == (True, True)  # the final layer always trains


def _trainer(**kwargs) -> L.Trainer:
    return L.Trainer(logger=False, enable_progress_bar=False, enable_model_summary=False, num_sanity_val_steps=0,
                     **{"max_epochs": 3, "enable_checkpointing": False, **kwargs})


class Record(L.Callback):
    """What trains, and at which learning rate, at the start of each epoch (after Finetune's own hook)."""

    def __init__(self) -> None:
        self.epochs: list[dict] = []

    def on_train_epoch_start(self, trainer, pl_module):
        optimizer = trainer.optimizers[0]
        self.epochs.append({
            "trains": [p.requires_grad for p in pl_module.net.parameters()],
            "lrs": [(g["lr"], g["lr_scale"]) for g in optimizer.param_groups],
            "groups": len(optimizer.param_groups),
        })


def test_unfreezing_happens_at_the_stated_epoch_with_the_stated_lr_ratio():
    L.seed_everything(0)
    model = zoo.create("resnet20", num_classes=10, in_chans=1, image_size=16,
                       optimizer=functools.partial(torch.optim.SGD, lr=0.1, momentum=0.9))
    bn = model.net.bn1
    record = Record()
    finetune = Finetune("freeze_then_unfreeze", unfreeze_epoch=2, backbone_lr_ratio=0.1, lr_decay=0.5)
    _trainer(callbacks=[finetune, record], limit_train_batches=2, limit_val_batches=1).fit(
        model, zoo.data.create("digits", image_size=16, batch_size=32))
    first, _, unfrozen = record.epochs
    assert sum(first["trains"]) == 2 and all(unfrozen["trains"])  # fc weight and bias, then everything
    assert first["groups"] == unfrozen["groups"]  # unfreezing adds no parameter group
    scales = sorted({scale for _, scale in unfrozen["lrs"]})
    assert scales == pytest.approx([0.025, 0.05, 0.1, 1.0])  # three stages, each half the one above, head 1
    assert all(lr == pytest.approx(0.1 * scale) for lr, scale in unfrozen["lrs"])
    assert bn.training  # thawed BatchNorm trains again
    again = Record()  # the same module fit again without Finetune: one stage, the optimizer's own rate
    _trainer(callbacks=[again], max_epochs=1, limit_train_batches=1, limit_val_batches=0).fit(
        model, zoo.data.create("digits", image_size=16, batch_size=32))
    assert again.epochs[0]["lrs"] == [(0.1, 1.0), (0.1, 1.0)]  # decayed weights, then biases and norms


def test_linear_probe_keeps_batchnorm_statistics_and_backbone_weights():
    L.seed_everything(0)
    model = zoo.create("resnet20", num_classes=10, in_chans=1, image_size=16)
    before = {k: v.clone() for k, v in model.net.state_dict().items()}
    _trainer(callbacks=[Finetune("linear_probe")], max_epochs=2, limit_train_batches=3, limit_val_batches=1).fit(
        model, zoo.data.create("digits", image_size=16, batch_size=32))
    after = model.net.state_dict()
    changed = sorted(k for k in before if not torch.equal(before[k], after[k]))
    assert changed == ["fc.bias", "fc.weight"]  # running means and variances included: nothing else moved


def test_a_resumed_gradual_fit_ends_with_the_weights_of_an_uninterrupted_one(tmp_path):
    def fit(epochs, ckpt_path=None, folder=tmp_path / "a"):
        L.seed_everything(0)
        model = zoo.create("resnet20", num_classes=10, in_chans=1, image_size=16,
                           optimizer=functools.partial(torch.optim.SGD, lr=0.05, momentum=0.9))
        checkpoint = L.pytorch.callbacks.ModelCheckpoint(folder, save_last=True)
        trainer = _trainer(max_epochs=epochs, callbacks=[Finetune("gradual", milestones=[1, 2, 3]), checkpoint],
                           enable_checkpointing=True, limit_train_batches=3, limit_val_batches=1)
        trainer.fit(model, zoo.data.create("digits", image_size=16, batch_size=32), ckpt_path=ckpt_path)
        return model, trainer

    straight, _ = fit(4, folder=tmp_path / "straight")
    fit(2, folder=tmp_path / "first")
    resumed, trainer = fit(4, ckpt_path=tmp_path / "first" / "last.ckpt", folder=tmp_path / "second")
    for (name, a), b in zip(straight.net.state_dict().items(), resumed.net.state_dict().values(), strict=True):
        assert torch.equal(a, b), name
    assert len(trainer.optimizers[0].param_groups) == 8  # 3 stages + head, each decayed and not


class SaveWeights(L.Callback):
    """Each process writes its net's weights at the end (to compare the DDP processes)."""

    def __init__(self, folder: str) -> None:
        self.folder = folder

    def on_train_end(self, trainer, pl_module):
        torch.save(pl_module.net.state_dict(), Path(self.folder) / f"rank{trainer.global_rank}.pt")


def test_unfreezing_under_ddp_keeps_the_processes_in_step(tmp_path):
    L.seed_everything(0)
    model = zoo.create("resnet20", num_classes=10, in_chans=1, image_size=16,
                       optimizer=functools.partial(torch.optim.SGD, lr=0.05, momentum=0.9))
    initial = {k: v.clone() for k, v in model.net.state_dict().items()}
    trainer = _trainer(max_epochs=2, accelerator="cpu", devices=2, strategy="ddp_spawn", limit_train_batches=3,
                       limit_val_batches=1, callbacks=[Finetune("freeze_then_unfreeze", unfreeze_epoch=1),
                                                       SaveWeights(str(tmp_path))])
    trainer.fit(model, zoo.data.create("digits", image_size=16, batch_size=16))
    ranks = [torch.load(tmp_path / f"rank{r}.pt", weights_only=True) for r in (0, 1)]
    for key in initial:  # the processes saw different images, yet hold the same (all-reduced) weights
        assert torch.equal(ranks[0][key], ranks[1][key]), key
    assert not torch.equal(ranks[0]["layer1.0.conv1.weight"], initial["layer1.0.conv1.weight"])  # thawed, trained


def test_finetune_rejects_bad_options():
    with pytest.raises(InputError, match="unknown fine-tuning strategy 'probe'; choose one of: linear_probe"):
        Finetune("probe")
    with pytest.raises(InputError, match="milestones must be increasing"):
        Finetune("gradual", milestones=[5, 2])
    with pytest.raises(InputError, match="lr_decay must be in"):
        Finetune("full", lr_decay=1.5)


# -- the command line ----------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def digits04(tmp_path_factory) -> Path:
    """A lenet5 trained on digits 0-4 with the zoo command (a few epochs)."""
    folder = tmp_path_factory.mktemp("digits04")
    proc = zoo_here("fit", "--data.classes", "[0,1,2,3,4]", "--trainer.max_epochs", "4",
                   "--trainer.enable_progress_bar", "false", cwd=folder)
    assert proc.returncode == 0, proc.stderr
    return folder / "runs/lenet5-digits/version_0/checkpoints/best.ckpt"


def test_cli_fine_tunes_a_checkpoint_with_one_flag(digits04, tmp_path):
    proc = zoo_here("fit", "--data.classes", "[5,6,7,8,9]", "--data.train_per_class", "10", "--model.weights",
                   str(digits04), "--model.reset_head", "true", "--finetune", "freeze_then_unfreeze",
                   "--finetune.unfreeze_epoch", "1", "--trainer.max_epochs", "2", "--trainer.enable_progress_bar",
                   "false", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "new final layer classifier.4 (5 classes)" in proc.stderr
    assert "freeze_then_unfreeze, epoch 0: 2 of 10 parameter tensors train" in proc.stderr
    assert "freeze_then_unfreeze, epoch 1: 10 of 10 parameter tensors train" in proc.stderr
    assert "test accuracy:" in proc.stdout
    config = (tmp_path / "runs/lenet5-digits/version_0/config.yaml").read_text()
    assert "strategy: freeze_then_unfreeze" in config and "weights: " in config  # the re-run fine-tunes again
    bad = zoo_here("fit", "--finetune", "probe", cwd=tmp_path)
    assert bad.returncode != 0 and "linear_probe" in bad.stderr


def test_features_command_writes_embeddings_for_a_linear_probe(digits04, tmp_path):
    from sklearn.linear_model import LogisticRegression

    out = tmp_path / "features.npz"
    proc = zoo_here("features", "--ckpt_path", str(digits04), "--set", "classes=[5,6,7,8,9]", "--out", str(out),
                   cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    f = np.load(out)
    assert f["train_features"].shape == (536, 84) and f["test_features"].shape == (180, 84)
    assert list(f["class_names"]) == ["5", "6", "7", "8", "9"] and str(f["model"]) == "lenet5"
    probe = LogisticRegression(max_iter=2000).fit(f["train_features"], f["train_labels"])
    assert probe.score(f["test_features"], f["test_labels"]) > 0.6  # the 0-4 features carry over to 5-9 (chance: 0.2)
    model = zoo.ImageClassifier.load_from_checkpoint(digits04).eval()
    data = zoo.data.create("digits", classes=[5, 6, 7, 8, 9])
    data.setup()
    x, _ = data.normalized("test")
    with torch.no_grad():
        expected = model.net.forward_head(model.net.forward_features(x[:4]), pre_logits=True)
    assert np.allclose(f["test_features"][:4], expected.numpy(), atol=1e-5)
    from zoo.features import dataset_features

    # LeNet-5's fixed-size layers would fail deep in torch: the data is checked against the net first
    with pytest.raises(zoo.ZooError, match=r"image_size=16 but the model takes image_size=32; .* --set image_size=32"):
        dataset_features(digits04, arguments={"image_size": 16})


def test_adapt_input_conv_keeps_the_response_exactly_when_its_docstring_says():
    """Alike channels give the same response for 1 and multiples of 3 channels (from RGB), not for 2 or 4."""
    from zoo.weights import adapt_input_conv

    torch.manual_seed(0)
    weight = torch.randn(8, 3, 3, 3)
    grey = torch.rand(1, 1, 10, 10)
    reference = torch.nn.functional.conv2d(grey.expand(1, 3, 10, 10), weight)
    for channels, same in ((1, True), (3, True), (6, True), (9, True), (2, False), (4, False)):
        response = torch.nn.functional.conv2d(grey.expand(1, channels, 10, 10), adapt_input_conv(weight, channels))
        assert torch.allclose(response, reference, atol=1e-5) == same, channels


# -- probing an earlier stage -------------------------------------------------------------------------------


def test_a_stage_probe_reads_exactly_that_stages_output_and_trains_only_its_layer():
    from zoo.models.net import StageProbe, stage_probe

    resnet = zoo.create_model("resnet20", num_classes=5, in_chans=1).eval()
    x = torch.randn(3, 1, 28, 28)
    probe = stage_probe(resnet, 2, image_size=28)
    assert isinstance(probe, StageProbe) and probe.stage_names == ["conv1", "bn1", "relu", "layer1", "layer2"]
    with torch.no_grad():
        stage2 = resnet.layer2(resnet.layer1(resnet.relu(resnet.bn1(resnet.conv1(x)))))  # [3, 32, 14, 14]
        assert torch.equal(probe.forward_features(x), stage2)
        assert probe.num_features == 32 * 11 * 11  # the finest grid with at most 4,096 values
        expected = probe.fc(torch.nn.functional.adaptive_avg_pool2d(stage2, 11).flatten(1))
        assert torch.allclose(probe(x), expected)
    assert stage_probe(resnet, 3, image_size=28) is resnet  # the last stage is what the net's own head reads
    stages, final = training_stages(probe)
    assert final is probe.fc and [len(s) for s in stages] == [4, 1]  # (conv1, bn1, relu, layer1), (layer2)
    Finetune("linear_probe").apply(probe.train(), epoch=0)
    assert [n for n, p in probe.named_parameters() if p.requires_grad] == ["fc.weight", "fc.bias"]
    Finetune("full").apply(probe, epoch=0)  # layer3 and the net's own fc never run: they stay frozen
    frozen = {n.split(".")[1] for n, p in probe.named_parameters() if not p.requires_grad}
    assert frozen == {"layer3", "fc"}
    with pytest.raises(zoo.ZooError, match=r"no stage 4; its stages, bottom to top: 1 \(conv1, bn1, relu, layer1\); "
                                           r"2 \(layer2\); 3 \(layer3\)"):
        stage_probe(resnet, 4, image_size=28)


def test_a_probe_of_an_earlier_stage_fits_reloads_and_embeds(tmp_path):
    from zoo.checkpoint import CheckpointRecord
    from zoo.features import dataset_features
    from zoo.models.net import StageProbe

    source = zoo.create("lenet5", num_classes=5, in_chans=1)
    trainer = L.Trainer(max_epochs=1, logger=False, enable_progress_bar=False, enable_checkpointing=False)
    trainer.fit(source, zoo.data.create("digits", classes=[0, 1, 2, 3, 4]))
    trainer.save_checkpoint(tmp_path / "source.ckpt")
    model = zoo.create("lenet5", num_classes=5, in_chans=1, weights=str(tmp_path / "source.ckpt"), reset_head=True,
                       probe_stage=2)
    conv = model.net.net.features[3].weight.detach().clone()
    trainer = L.Trainer(max_epochs=2, logger=False, enable_progress_bar=False, callbacks=[Finetune("linear_probe")],
                        default_root_dir=tmp_path)
    data = zoo.data.create("digits", classes=[5, 6, 7, 8, 9], train_per_class=10, batch_size=10)
    trainer.fit(model, data)
    assert torch.equal(model.net.net.features[3].weight, conv)  # the pretrained convolutions stayed as they were
    assert torch.equal(conv, source.net.features[3].weight)
    ckpt = trainer.checkpoint_callback.best_model_path
    again = zoo.ImageClassifier.load_from_checkpoint(ckpt)
    assert isinstance(again.net, StageProbe) and again.hparams.probe_stage == 2
    assert torch.equal(again.net.fc.weight, model.net.fc.weight)
    net = CheckpointRecord.read(ckpt).net().eval()
    x = torch.randn(4, 1, 32, 32)
    assert torch.allclose(net(x), model.eval()(x))
    _, features = dataset_features(tmp_path / "source.ckpt", splits=("val",), stage=1)
    assert features["val_features"].shape == (180, 6 * 26 * 26)  # C1's 6 maps of 28x28, pooled to 26x26
    record = CheckpointRecord.read(tmp_path / "source.ckpt")  # zoo features --stage 1 is timm's stage 0, pooled
    x, _ = record.datamodule(None, None, same_classes=False)[1].normalized("val")
    with torch.no_grad():
        (first,) = record.net().eval().forward_intermediates(x, indices=[0], intermediates_only=True)
    pooled = torch.nn.functional.adaptive_avg_pool2d(first, 26).flatten(1).numpy()
    assert np.allclose(features["val_features"], pooled, atol=1e-5)
    with pytest.raises(zoo.ZooError, match="no stage 4"):
        dataset_features(tmp_path / "source.ckpt", splits=("val",), stage=4)


def test_the_committed_transfer_table_and_its_page_come_from_the_measured_rows():
    """benchmarks/results/transfer/table.md is what benchmarks/transfer_table.py renders from results.csv (every
    cell, 3 seeds each), and docs/transfer.md shows those rows as they are."""
    import importlib.util

    from conftest import ROOT

    from zoo.results import read_rows

    spec = importlib.util.spec_from_file_location("transfer_table", ROOT / "benchmarks" / "transfer_table.py")
    table = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(table)
    folder = ROOT / "benchmarks" / "results" / "transfer"
    rows = read_rows(folder / "results.csv")
    counts = {key: len(accs) for key, accs in table.summary(rows).items()}
    for model in ("lenet5", "resnet20"):
        assert all(counts.get((model, t, a, s)) == 3 for t, a in table.CELLS for s in table.STRATEGIES), model
    rendered = table.markdown(rows, ["lenet5", "resnet20"])
    assert (folder / "table.md").read_text() == rendered
    page = (ROOT / "docs" / "transfer.md").read_text()
    assert [line for line in rendered.splitlines() if line.startswith("| ") and line not in page] == []


@pytest.mark.parametrize(("model", "size"), [("lenet5", 32), ("alexnet", 64), ("vgg11_bn", 32), ("googlenet", 32),
                                             ("resnet18", 32), ("resnet20", 32), ("densenet121", 32), ("wrn28_10", 32)])
def test_every_family_with_stages_can_be_probed_at_each_earlier_stage(model, size):
    """The probe's early stop gives the stage's output exactly as a whole forward pass computes it."""
    from zoo.models.net import stage_probe

    net = zoo.create_model(model, num_classes=3, image_size=size).eval()
    x = torch.randn(2, net.in_chans, size, size)
    stages = training_stages(net)[0]
    assert len(stages) >= 2
    for stage in range(1, len(stages)):
        probe = stage_probe(net, stage, size)
        seen: dict = {}
        handle = stages[stage - 1][-1].register_forward_hook(lambda m, i, out, seen=seen: seen.setdefault("out", out))
        with torch.no_grad():
            net.forward_features(x)
            handle.remove()
            assert torch.equal(probe.forward_features(x), seen["out"]), stage
            assert probe(x).shape == (2, 3) and 0 < probe.num_features <= 4096
