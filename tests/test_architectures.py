"""The classic families against references no one here wrote: torchvision's nets and the papers' tables."""

import pytest
import torch
import torchvision
from torch import nn

import zoo
from zoo.errors import InputError

TORCHVISION = ["alexnet", "googlenet", "resnet18", "resnet34", "resnet50", "resnet101", "resnet152",
               "wide_resnet50_2", "resnext50_32x4d", "densenet121", "densenet161", "densenet169", "densenet201",
               *[f"vgg{d}{bn}" for d in (11, 13, 16, 19) for bn in ("", "_bn")]]

PUBLISHED = {  # torchvision's documented parameter counts
    "resnet18": 11_689_512, "resnet50": 25_557_032, "vgg16": 138_357_544,
    "densenet121": 7_978_856, "googlenet": 6_624_904, "alexnet": 61_100_840,
}

PAPER_MILLIONS = {  # as printed in He et al. 2016 Table 6, Huang et al. 2017 Table 2, Zagoruyko & Komodakis 2016,
    # Jordan 2024 (airbench94)
    "airbench": "1.97",
    "resnet20": "0.27", "resnet32": "0.46", "resnet44": "0.66", "resnet56": "0.85", "resnet110": "1.7",
    "densenet40": "1.0", "densenet_bc100": "0.8", "wrn28_10": "36.5",
}


def torchvision_net(name: str) -> nn.Module:
    kwargs = {"aux_logits": False, "init_weights": True} if name == "googlenet" else {}
    return getattr(torchvision.models, name)(weights=None, **kwargs)


def params(net: nn.Module) -> int:
    return sum(p.numel() for p in net.parameters())


@pytest.mark.parametrize("name", TORCHVISION)
def test_torchvision_weights_load_strictly_and_give_the_same_outputs(name):
    torch.manual_seed(0)
    reference = torchvision_net(name).eval()
    ours = zoo.create_model(name, stem="imagenet").eval()
    ours.load_state_dict(reference.state_dict(), strict=True)
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        torch.testing.assert_close(ours(x), reference(x), rtol=1e-5, atol=1e-5)
    assert params(ours) == params(reference) == zoo.model_info(name).params


def test_torchvisions_weights_are_listed_for_exactly_the_nets_they_load_into():
    listed = [n for n in zoo.list_models(exclude="*/*") if any(w.startswith("torchvision:")
                                                              for w in zoo.model_info(n).weights)]
    assert sorted(listed) == sorted(TORCHVISION)
    v1 = zoo.model_info("resnet50").weights["torchvision:IMAGENET1K_V1"]  # torchvision's documented figures
    assert (v1["acc@1"], v1["acc@5"], v1["params"]) == (76.13, 92.862, 25_557_032)
    assert zoo.model_info("resnet50").weights["torchvision:IMAGENET1K_V2"]["acc@1"] == 80.858


@pytest.mark.parametrize("name, count", PUBLISHED.items())
def test_published_parameter_counts(name, count):
    assert zoo.model_info(name).params == count


@pytest.mark.parametrize("name, millions", PAPER_MILLIONS.items())
def test_cifar_nets_have_the_papers_parameter_counts(name, millions):
    digits = len(millions.split(".")[1])  # the precision the paper prints
    assert f"{zoo.model_info(name).params / 1e6:.{digits}f}" == millions


def test_macs_match_the_published_figures():
    # torchvision's documented GFLOPS (multiply-adds) at 224x224
    for name, gmacs in {"resnet18": 1.81, "resnet50": 4.09, "vgg16": 15.47, "alexnet": 0.71, "googlenet": 1.50,
                        "densenet121": 2.83}.items():
        assert round(zoo.model_info(name).macs / 1e9, 2) == gmacs, name


def test_stem_follows_the_image_size_unless_set():
    assert zoo.create_model("resnet18", image_size=32).conv1.kernel_size == (3, 3)
    assert isinstance(zoo.create_model("resnet18", image_size=32).maxpool, nn.Identity)
    assert zoo.create_model("resnet18", image_size=64).conv1.kernel_size == (7, 7)
    assert zoo.create_model("resnet18", image_size=32, stem="imagenet").conv1.kernel_size == (7, 7)
    assert zoo.create_model("densenet121", image_size=28).features.conv0.kernel_size == (3, 3)
    assert zoo.create_model("googlenet", image_size=32).conv1.conv.kernel_size == (3, 3)
    assert zoo.create_model("alexnet", image_size=32).features[0].kernel_size == (3, 3)
    assert zoo.create_model("vgg11", image_size=28).features[2].ceil_mode
    with pytest.raises(InputError, match="unknown stem 'tiny'; choose one of: imagenet, cifar"):
        zoo.create_model("resnet18", stem="tiny")


FAMILY_REPRESENTATIVES = ["alexnet", "vgg11_bn", "googlenet", "resnet18", "resnet20", "densenet121", "densenet40",
                          "wrn28_10", "alexnet_s", "vgg16_bn_s", "googlenet_s", "densenet_bc40_s"]


@pytest.mark.parametrize("name", FAMILY_REPRESENTATIVES)
@pytest.mark.parametrize("size", [28, 32])
def test_small_inputs_train(name, size):
    torch.manual_seed(0)
    net = zoo.create_model(name, num_classes=10, in_chans=1, image_size=size)
    x, y = torch.randn(4, 1, size, size), torch.randint(0, 10, (4,))
    optimizer = torch.optim.SGD(net.parameters(), lr=0.01)
    before = [p.detach().clone() for p in net.parameters()]
    nn.functional.cross_entropy(net(x), y).backward()
    optimizer.step()
    assert net.forward_features(x).shape[-1] >= 1
    assert sum(not torch.equal(b, p) for b, p in zip(before, net.parameters(), strict=True)) == len(before)


@pytest.mark.parametrize("name", zoo.list_models(exclude="*/*"))
def test_registered_minimum_is_the_nets_own_and_smaller_inputs_are_refused(name):
    entry = zoo.model_info(name)  # the registry's figure, read from catalog.json
    net = zoo.create_model(name, image_size=max(entry.min_size, 8)).eval()
    assert net.min_size == entry.min_size or entry.family in ("linear", "mlp")
    c = entry.input_size[0]
    with torch.no_grad():
        net(torch.randn(1, c, max(entry.min_size, 8), max(entry.min_size, 8)))
    if entry.min_size > 1:
        with pytest.raises(InputError, match=f"needs inputs of at least {net.min_size}x{net.min_size} pixels"):
            net(torch.randn(1, c, net.min_size - 1, net.min_size - 1))


def test_imagenet_stem_minimum_is_named():
    with pytest.raises(InputError, match="needs inputs of at least 63x63 pixels, got 32x32"):
        zoo.create_model("alexnet", stem="imagenet")(torch.randn(1, 3, 32, 32))


@pytest.mark.parametrize("init, std", [("normal", 0.01), ("xavier", (6 / (64 * 9 + 64 * 9)) ** 0.5 / 3 ** 0.5),
                                       ("he", (2 / (64 * 9)) ** 0.5)])
def test_init_schemes(init, std):
    torch.manual_seed(0)
    net = zoo.create_model("resnet18", init=init)
    weight = net.layer1[0].conv2.weight  # 64 -> 64, 3x3: fan_in = fan_out = 576
    assert weight.std().item() == pytest.approx(std, rel=0.05)
    assert torch.all(net.bn1.weight == 1) and torch.all(net.bn1.bias == 0)


def test_paper_default_inits():
    defaults = {n: zoo.model_info(n).arguments.get("init") for n in zoo.list_models(exclude="*/*")}
    assert defaults["alexnet"] == "normal" and defaults["vgg16"] == "xavier"
    assert {defaults[n] for n in zoo.list_models(["resnet*", "densenet*", "wrn*"])} == {"he"}
    with pytest.raises(InputError, match="unknown init 'lecun'; choose one of: he, xavier, normal"):
        zoo.create_model("vgg11", init="lecun")


@pytest.mark.parametrize("name, last_bn", [("resnet18", "bn2"), ("resnet50", "bn3"), ("resnet20", "bn2")])
def test_zero_init_residual_starts_each_branch_at_zero(name, last_bn):
    net = zoo.create_model(name, zero_init_residual=True)
    blocks = [m for m in net.modules() if hasattr(m, last_bn) and hasattr(m, "conv1")]
    assert blocks and all(torch.all(getattr(b, last_bn).weight == 0) for b in blocks)
    assert not torch.all(zoo.create_model(name).layer1[0].bn2.weight == 0)


def test_googlenet_auxiliary_classifiers_only_in_training():
    model = zoo.create("googlenet", num_classes=10, image_size=32, aux_logits=True)
    x = torch.randn(4, 3, 32, 32)
    model.train()
    logits, aux1, aux2 = model(x)
    assert logits.shape == aux1.shape == aux2.shape == (4, 10)
    model.eval()
    assert model(x).shape == (4, 10)
    model.net.reset_classifier(5)
    model.train()
    assert [o.shape[1] for o in model(x)] == [5, 5, 5]


def test_googlenet_aux_loss_is_exact_without_dropout():
    torch.manual_seed(0)
    model = zoo.create("googlenet", num_classes=10, image_size=32, aux_logits=True, dropout=0.0)
    for aux in (model.net.aux1, model.net.aux2):
        aux.dropout.p = 0.0
    model.log = lambda *a, **k: None  # outside a Trainer
    x, y = torch.randn(4, 3, 32, 32), torch.randint(0, 10, (4,))
    model.eval()  # BatchNorm in eval on both sides, auxiliary heads forced on
    model.net.training = True
    logits, aux1, aux2 = model.net(x)
    ce = nn.functional.cross_entropy
    expected = ce(logits, y) + 0.3 * (ce(aux1, y) + ce(aux2, y))
    step = model.training_step((x, y), 0)
    torch.testing.assert_close(step["loss"], expected)
    torch.testing.assert_close(step["head_loss"], ce(logits, y))  # what the initial-loss check reads


def test_memory_efficient_densenet_computes_the_same():
    torch.manual_seed(0)
    plain = zoo.create_model("densenet_bc100", image_size=32)
    efficient = zoo.create_model("densenet_bc100", image_size=32, memory_efficient=True)
    efficient.load_state_dict(plain.state_dict())
    x = torch.randn(2, 3, 32, 32)
    plain(x).sum().backward()
    efficient(x).sum().backward()
    for (name, p), q in zip(plain.named_parameters(), efficient.parameters(), strict=True):
        torch.testing.assert_close(p.grad, q.grad, rtol=1e-4, atol=1e-5, msg=name)


def test_densenet40_has_no_bottleneck_or_compression():
    net = zoo.create_model("densenet40")
    assert not hasattr(net.features.denseblock1.denselayer1, "conv1")
    t = net.features.transition1.conv
    assert t.in_channels == t.out_channels == 16 + 12 * 12


def test_airbench_whitening_makes_real_patches_uncorrelated_with_unit_variance():
    """After fit on real scans (scikit-learn's digits), the whitening layer's first half of channels has the
    identity covariance over the patches; its second half is the same, negated; before, channels are pixels."""
    from zoo.models.airbench import PatchWhitening

    images = zoo.data.create("digits", image_size=16, val_split=0).normalized("train")[0][:500]
    layer = PatchWhitening(in_chans=1, kernel_size=2)
    before = layer(images)
    torch.testing.assert_close(before[:, :4], torch.stack([images[:, 0, i:i + 15, j:j + 15] for i in (0, 1)
                                                           for j in (0, 1)], dim=1))
    layer.fit(images)
    out = layer(images)
    half = out[:, :4].permute(1, 0, 2, 3).reshape(4, -1)
    covariance = torch.cov(half.double())
    off_diagonal = covariance - torch.diag(covariance.diag())
    assert off_diagonal.abs().max() < 1e-3  # uncorrelated
    # unit variance, but for eps=5e-4 added to each eigenvalue: the faintest direction (about 0.01) is a little below
    assert 0.9 < covariance.diag().min() and covariance.diag().max() < 1.001
    torch.testing.assert_close(out[:, 4:], -out[:, :4])
    assert not any(p.requires_grad for p in layer.parameters())  # frozen: buffers only


def test_airbench_starts_from_identities_with_frozen_norm_scales():
    net = zoo.create_model("airbench", in_chans=1, image_size=28, widths=(32, 64, 128))
    second_conv = net.stages[0][4]
    assert torch.equal(second_conv.weight, nn.init.dirac_(torch.empty_like(second_conv.weight)))
    first_conv = net.stages[1][0]  # 32 -> 64: identity on the first 32 filters, He-initialised after
    assert torch.equal(first_conv.weight[:32], nn.init.dirac_(torch.empty(32, 32, 3, 3)))
    assert first_conv.weight[32:].abs().sum() > 0
    frozen = [n for n, p in net.named_parameters() if not p.requires_grad]
    assert frozen and all(n.endswith("weight") and isinstance(net.get_submodule(n.rsplit(".", 1)[0]),
                                                              nn.BatchNorm2d) for n in frozen)


def test_small_forms_keep_their_familys_structure():
    """The `_s` forms: the layers that define each family, at the sizes their docs give, on 28x28 images."""
    x = torch.randn(2, 1, 28, 28)
    alexnet = zoo.create_model("alexnet_s")
    convs = [m for m in alexnet.features if isinstance(m, nn.Conv2d)]
    assert [c.out_channels for c in convs] == [32, 96, 192, 128, 128]
    assert sum(isinstance(m, nn.MaxPool2d) for m in alexnet.features) == 3
    assert [m.out_features for m in alexnet.classifier if isinstance(m, nn.Linear)] == [1024, 1024, 10]
    assert not any(isinstance(m, nn.BatchNorm2d) for m in alexnet.modules())
    assert alexnet.forward_features(x).shape == (2, 128, 4, 4)

    vgg = zoo.create_model("vgg16_bn_s")
    convs = [m for m in vgg.features if isinstance(m, nn.Conv2d)]
    assert len(convs) == 13 and {c.kernel_size for c in convs} == {(3, 3)}
    assert [c.out_channels for c in convs] == [16, 16, 32, 32, 64, 64, 64, 128, 128, 128, 128, 128, 128]
    assert sum(isinstance(m, nn.BatchNorm2d) for m in vgg.features) == 13
    assert vgg.forward_features(x).shape == (2, 128, 1, 1)
    assert isinstance(vgg.get_submodule("features.42"), nn.ReLU)  # CAM reads the last ReLU: 2x2 at 28 px, not 1x1

    googlenet = zoo.create_model("googlenet_s")
    modules = [m for n, m in googlenet.named_children() if n.startswith("inception")]
    assert len(modules) == 9
    branch3 = modules[0].branch3  # the paper's 1x1 reduction, then 5x5
    assert [b.conv.kernel_size for b in branch3] == [(1, 1), (5, 5)]
    assert [m.out_chans for m in modules] == [64, 120, 128, 128, 128, 132, 208, 208, 256]  # Table 1 / 4
    assert googlenet.forward_features(x).shape == (2, 256, 4, 4)

    densenet = zoo.create_model("densenet_bc40_s")
    layers = [m for m in densenet.modules() if type(m).__name__ == "DenseLayer"]
    assert len(layers) == 18 and {m.conv2.out_channels for m in layers} == {16}  # 3 x 6 bottleneck layers, k = 16
    assert densenet.forward_features(x).shape == (2, 176, 3, 3)
    assert zoo.model_info("densenet_bc40_s").params < zoo.model_info("densenet_bc100").params / 2
