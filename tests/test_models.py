"""The net protocol, checked the same way for every registered model."""

import copy

import pytest
import torch
from torch import nn

import zoo
from zoo.errors import InputError
from zoo.registry import MODELS

NAMES = zoo.list_models(exclude=["*/*", "knn"])  # zoo's nets; plugins: test_plugins.py, knn: test_knn.py


def build(name: str, **kwargs) -> nn.Module:
    torch.manual_seed(0)
    return zoo.create_model(name, **kwargs)


def small(name: str) -> int:
    """The size the checks run at: the model's minimum (at least 8), so big ImageNet nets stay cheap."""
    return max(zoo.model_info(name).min_size, 8)


_BUILT: dict[tuple, nn.Module] = {}  # the nets of one name, built once (a VGG takes 1.5 s to initialise)


def build_small(name: str, in_chans: int | None = None, num_classes: int = 7) -> nn.Module:
    """A fresh copy of `name` at its small size, as ``build`` makes it (seed 0)."""
    key = (name, in_chans or MODELS.get(name).input_size[0], num_classes)
    if key not in _BUILT:
        if any(k[0] != name for k in _BUILT):  # the tests of a name run together (the `name` fixture): keep one name's
            _BUILT.clear()
        _BUILT[key] = build(name, image_size=small(name), in_chans=key[1], num_classes=num_classes)
    return copy.deepcopy(_BUILT[key])


@pytest.fixture(scope="module", params=NAMES)
def name(request) -> str:
    """Every registered net; module-scoped so that pytest runs a net's tests one after another (and builds it once)."""
    return request.param


def default_input(name: str, batch: int = 2, **overrides) -> torch.Tensor:
    c = overrides.get("in_chans", MODELS.get(name).input_size[0])
    return torch.randn(batch, c, small(name), small(name))


def test_forward_at_the_default_input(name):
    """The registered default input (224x224 for the ImageNet nets) with the builder's defaults."""
    net = build(name).eval()
    c, h, w = MODELS.get(name).input_size
    with torch.no_grad():
        assert net(torch.randn(1, c, h, w)).shape == (1, net.num_classes)


def test_forward_features_head_and_pre_logits(name):
    net = build_small(name).eval()
    x = default_input(name)
    feats = net.forward_features(x)
    assert feats.shape[0] == 2 and feats.shape[1] == net.num_features
    assert feats.dim() in (2, 4)
    logits = net.forward_head(feats)
    assert logits.shape == (2, 7) and torch.equal(logits, net(x))
    assert net.forward_head(feats, pre_logits=True).shape == (2, net.pre_logits_features)
    assert net.num_classes == 7


def test_backward_reaches_every_parameter(name):
    net = build_small(name).train()
    net(default_input(name, batch=4)).logsumexp(1).sum().backward()
    missing = [n for n, p in net.named_parameters() if p.requires_grad and (p.grad is None or
                                                                            not p.grad.abs().sum() > 0)]
    assert not missing
    frozen = [n for n, p in net.named_parameters() if not p.requires_grad]
    assert not frozen or MODELS.get(name).family == "airbench"  # by design: its BatchNorm scales stay at 1


def test_reset_classifier_keeps_the_backbone(name):
    net = build_small(name).eval()
    x = default_input(name)
    before = {k: v.clone() for k, v in net.state_dict().items()}
    feats = net.forward_features(x)
    net.reset_classifier(3)
    assert net.num_classes == 3 and net(x).shape == (2, 3)
    assert torch.equal(net.forward_features(x), feats)
    final = net.classifier_name
    changed = {k for k, v in net.state_dict().items() if k not in before or not torch.equal(before[k], v)}
    assert changed == {f"{final}.weight", f"{final}.bias"}
    net.reset_classifier(0)
    assert net(x).shape == (2, net.pre_logits_features)


def test_backbone_and_head_split_covers_every_parameter_once(name):
    net = build_small(name)
    ids = [id(p) for m in net.backbone_modules() + net.head_modules() for p in m.parameters()]
    assert sorted(ids) == sorted(id(p) for p in net.parameters())
    head_params = {id(p) for m in net.head_modules() for p in m.parameters()}
    assert {id(p) for p in net.get_classifier().parameters()} <= head_params


@pytest.mark.parametrize("in_chans", [1, 3])
def test_any_in_chans(name, in_chans):
    net = build_small(name, in_chans=in_chans).eval()
    assert net(default_input(name, in_chans=in_chans)).shape == (2, 7)
    with pytest.raises(InputError, match=f"takes images of shape \\[N, {in_chans}, H, W\\]"):
        net(default_input(name, in_chans=in_chans + 1))


def test_eval_is_deterministic_and_batch_independent(name):
    net = build_small(name).eval()
    x = default_input(name, batch=4)
    with torch.no_grad():
        full = net(x)
        assert torch.equal(full, net(x))
        # CPU kernels differ by batch size; float32 rounding in a deep net stays well inside 1e-3 of the scale
        scale = full.abs().max().item()
        torch.testing.assert_close(torch.cat([net(x[:1]), net(x[1:])]), full, rtol=1e-3, atol=1e-3 * scale)


def test_torch_export_gives_the_same_outputs(name):
    net = build_small(name).eval()
    x = default_input(name)
    program = torch.export.export(net, (x,))
    torch.testing.assert_close(program.module()(x), net(x))


def test_too_small_input_names_the_minimum():
    net = build("lenet5")
    assert net(torch.randn(1, 1, 16, 16)).shape == (1, 10)
    with pytest.raises(InputError, match="needs inputs of at least 16x16 pixels, got 12x12"):
        net(torch.randn(1, 1, 12, 12))


@pytest.mark.parametrize("name", ["linear", "mlp"])
def test_pixel_nets_name_the_size_they_were_built_for(name):
    net = build(name, in_chans=1, image_size=8)
    assert net(torch.randn(2, 1, 8, 8)).shape == (2, 10)
    with pytest.raises(InputError, match="was built for 8x8 images.*got 32x32; create it with image_size=32"):
        net(torch.randn(2, 1, 32, 32))


def test_linear_is_exactly_wx_plus_b():
    net = build("linear", in_chans=1, image_size=8, num_classes=10)
    x = torch.randn(5, 1, 8, 8)
    torch.testing.assert_close(net(x), x.flatten(1) @ net.fc.weight.T + net.fc.bias)


def test_mlp_layers_follow_the_arguments():
    net = build("mlp", in_chans=1, image_size=8, hidden=[32, 16], activation="tanh", dropout=0.5)
    linears = [m for m in net.modules() if isinstance(m, nn.Linear)]
    assert [(m.in_features, m.out_features) for m in linears] == [(64, 32), (32, 16), (16, 10)]
    assert sum(isinstance(m, nn.Tanh) for m in net.modules()) == 2
    assert sum(isinstance(m, nn.Dropout) for m in net.modules()) == 2
    assert build("mlp", in_chans=1, image_size=8, hidden=[]).num_features == 64


def test_lenet5_layout_matches_the_paper():
    net = build("lenet5")
    shapes = [tuple(p.shape) for p in net.parameters()]
    assert shapes == [(6, 1, 5, 5), (6,), (16, 6, 5, 5), (16,), (120, 400), (120,), (84, 120), (84,), (10, 84), (10,)]
    assert sum(p.numel() for p in net.parameters()) == 61_706
    assert net.forward_features(torch.zeros(1, 1, 32, 32)).shape == (1, 16, 5, 5)


@pytest.mark.parametrize("bad", [{"activation": "swishy"}, {"pool": "median"}, {"num_classes": 0}, {"in_chans": -1}])
def test_bad_options_name_the_valid_ones(bad):
    with pytest.raises(InputError):
        zoo.create_model("lenet5", **bad)


@pytest.mark.parametrize("name", [n for n in zoo.list_models(exclude="*/*") if zoo.model_info(n).cam_layer])
def test_a_hook_on_the_registered_cam_layer_sees_exactly_forward_features(name):
    """What pytorch-grad-cam or `--layer` from `zoo info` hooks is the map zoo's own CAM reads."""
    torch.manual_seed(0)
    size = max(16, zoo.model_info(name).min_size)
    net = zoo.create_model(name, num_classes=10, image_size=size).eval()
    seen = []
    layer = net.get_submodule(zoo.model_info(name).cam_layer)
    handle = layer.register_forward_hook(lambda module, inputs, output: seen.append(output.detach().clone()))
    with torch.no_grad():
        features = net.forward_features(torch.randn(1, net.in_chans, size, size))
    handle.remove()
    assert torch.equal(seen[-1], features)


class _ForwardFeatures(nn.Module):
    """What torchvision's feature extractor traces: the net's forward_features (its forward checks the input's shape
    in Python, which symbolic tracing cannot follow)."""

    def __init__(self, net: nn.Module) -> None:
        super().__init__()
        self.net = net

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net.forward_features(x)


def test_every_stage_is_torchvisions_feature_extractor_at_the_stage_module(name):
    """feature_info and forward_intermediates (timm's), against torchvision's create_feature_extractor (FX) reading
    the same modules; the linear map and the MLP, which read the pixels at once, have no stages and say so."""
    from torchvision.models.feature_extraction import create_feature_extractor

    net = build_small(name).eval()
    x = default_input(name)
    if MODELS.get(name).family in ("linear", "mlp"):
        with pytest.raises(InputError, match="has no stages of feature maps"):
            net.forward_intermediates(x)
        return
    info = net.feature_info
    assert len(info) >= 2 and info.reduction() == sorted(info.reduction()) and len(set(info.module_name())) == len(info)
    with torch.no_grad():
        final, maps = net.forward_intermediates(x)
        extractor = create_feature_extractor(_ForwardFeatures(net), {f"net.{m}": m for m in info.module_name()}).eval()
        net.eval()  # the extractor's tracing leaves the net in training mode
        reference = extractor(x)
        assert torch.equal(final, net.forward_features(x))
        last = net.forward_intermediates(x, indices=1, stop_early=True, intermediates_only=True)
    for found, item in zip(maps, info, strict=True):
        assert torch.equal(found, reference[item["module"]]) and found.shape[1] == item["num_chs"]
    assert len(last) == 1 and torch.equal(last[0], maps[-1])


def test_features_only_as_in_timm():
    """create_model(name, features_only=True, out_indices=...): a list of maps, at the strides feature_info says;
    zoo's weights load into it; zoo features --stage probes the same maps."""
    from zoo.models.net import stage_probe

    backbone = zoo.create_model("resnet18", features_only=True, out_indices=(1, -1)).eval()
    assert backbone.feature_info.channels() == [64, 512] and backbone.feature_info.reduction() == [4, 32]
    maps = backbone(torch.randn(2, 3, 64, 64))
    assert [tuple(m.shape) for m in maps] == [(2, 64, 16, 16), (2, 512, 2, 2)]
    trained = zoo.create_model("resnet20", weights="zoo:fashion_mnist", features_only=True)
    plain = zoo.create_model("resnet20", weights="zoo:fashion_mnist").eval()
    assert trained.feature_info.channels() == [16, 32, 64] and trained.feature_info.reduction() == [1, 2, 4]
    x = torch.randn(3, 1, 28, 28)
    with torch.no_grad():
        stages = trained.eval()(x)
        for stage in (1, 2):
            assert torch.equal(stage_probe(plain, stage, 28).forward_features(x), stages[stage - 1])
        assert torch.equal(stages[-1], plain.forward_features(x))
    with pytest.raises(InputError, match="indices \\(0, 3\\): the net has 3 stages"):
        zoo.create_model("resnet20", features_only=True, out_indices=(0, 3))
    with pytest.raises(InputError, match="out_indices chooses the stages of features_only=True"):
        zoo.create_model("resnet20", out_indices=(0,))
