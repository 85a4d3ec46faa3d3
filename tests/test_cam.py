import lightning as L
import numpy as np
import pytest
import torch
from torch import nn

import zoo
from zoo.cam import (
    MANY_PASSES,
    METHODS,
    box_iou,
    compute_cam,
    largest_region_box,
    localization,
    overlay,
    pointing_game,
    save_grid,
)
from zoo.errors import InputError, ZooError


def trained_like(name: str, **kwargs) -> nn.Module:
    """A net with non-trivial BatchNorm statistics, so eval mode matters."""
    torch.manual_seed(0)
    net = zoo.create_model(name, **kwargs)
    net.train()
    with torch.no_grad():
        for _ in range(2):
            net(torch.randn(8, net.in_chans, 32, 32))
    return net


@pytest.mark.parametrize("name", ["resnet18", "densenet121", "googlenet", "resnet20", "wrn28_10"])
def test_cam_equals_gradcam_for_gap_linear_heads(name):
    net = trained_like(name, num_classes=10, image_size=32).eval()
    x = torch.randn(4, 3, 32, 32)
    cam, grad = compute_cam(net, x, method="cam"), compute_cam(net, x, method="gradcam")
    torch.testing.assert_close(cam.maps, grad.maps, rtol=1e-4, atol=1e-4)
    assert torch.equal(cam.targets, grad.targets)


REFERENCE = {"gradcam": "GradCAM", "gradcam++": "GradCAMPlusPlus", "hirescam": "HiResCAM", "xgradcam": "XGradCAM",
             "layercam": "LayerCAM", "gradcamelementwise": "GradCAMElementWise", "eigencam": "EigenCAM",
             "eigengradcam": "EigenGradCAM", "scorecam": "ScoreCAM", "ablationcam": "AblationCAM"}


def reference_maps(net, layer, x, targets, method, reshape=None, transformer=False):
    """pytorch-grad-cam's maps. Its Ablation-CAM runs one ablation a pass on a map that is not ReLU'd (tanh, GELU,
    tokens): in a batch it lowers each further row's channel by 1e7 more, where zoo ablates every row alike."""
    import pytorch_grad_cam
    from pytorch_grad_cam.ablation_layer import AblationLayerVit
    from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget

    options = {}
    if method == "ablationcam":
        with torch.no_grad():
            relu = net.forward_features(x).min() == 0
        options = {"batch_size": 32 if relu else 1, **({"ablation_layer": AblationLayerVit()} if transformer else {})}
    cam = getattr(pytorch_grad_cam, REFERENCE[method])(model=net, target_layers=[layer], reshape_transform=reshape,
                                                       **options)
    return cam(input_tensor=x, targets=[ClassifierOutputTarget(t) for t in targets])


# every convolutional family of the registry, and one timm and one torchvision CNN
CONVOLUTIONAL = [("airbench", 32), ("alexnet_s", 32), ("densenet_bc40_s", 32), ("googlenet_s", 32), ("lenet5", 32),
                 ("resnet20", 32), ("vgg11_bn", 64), ("wrn28_10", 32), ("timm/resnet18", 64),
                 ("tv/mobilenet_v3_small", 64)]


@pytest.mark.parametrize("name, size", CONVOLUTIONAL)
def test_every_method_equals_pytorch_grad_cam(name, size):
    net = trained_like(name, num_classes=10, in_chans=1 if name == "lenet5" else 3, image_size=size).eval()
    layer = net.get_submodule(zoo.model_info(name).cam_layer)  # the module whose output forward_features returns
    torch.manual_seed(1)
    x = torch.randn(2, net.in_chans, size, size)
    targets = compute_cam(net, x).targets.tolist()  # the predicted classes: their maps are rarely all negative
    flat = []
    for method in REFERENCE:
        if method in ("scorecam", "ablationcam") and name in ("wrn28_10", "vgg11_bn", "tv/mobilenet_v3_small"):
            continue  # 512-640 channels: pytorch-grad-cam runs the net per channel, too slow for the suite
        n = 1 if method in ("scorecam", "ablationcam") or name == "wrn28_10" else 2  # one image is enough there
        ours = compute_cam(net, x[:n], targets[:n], method=method).maps
        flat += [method] if ours.std() < 0.05 else []
        np.testing.assert_allclose(ours.numpy(), reference_maps(net, layer, x[:n], targets[:n], method), atol=2e-3,
                                   err_msg=f"{name} {method}")
    assert len(flat) <= 1, flat  # real maps, not flat ones that equal anything flat (tanh's Grad-CAM++ may be)


def _vit_tokens(prefix, side):
    return lambda t: t[:, prefix:].reshape(t.size(0), side, side, t.size(2)).permute(0, 3, 1, 2)


@pytest.mark.parametrize("name, size, side", [("timm/vit_tiny_patch16_224", 32, 2), ("tv/vit_b_32", 64, 2),
                                              ("timm/swin_tiny_patch4_window7_224", 64, 2)])
def test_transformers_equal_pytorch_grad_cam_with_its_reshape_transform(name, size, side):
    """Tokens on their grid with the class token dropped (ViT), a Swin's NHWC maps permuted; the layer found."""
    from zoo.cam import transformer_layer

    torch.manual_seed(0)
    net = zoo.create_model(name, num_classes=10, image_size=size).eval()
    with torch.no_grad():
        net.get_classifier().weight.normal_()  # torchvision's ViT starts with a head of zeros: every map flat
    x, targets = torch.randn(2, 3, size, size), [3, 1]
    if "swin" in name:
        assert transformer_layer(net) is not None and compute_cam(net, x).maps.shape == (2, size, size)
        layer, reshape = net.norm, (lambda t: t.permute(0, 3, 1, 2))  # its last map, as forward_features gives it
    else:
        expected = {"timm": "blocks.11.norm1", "tv": "encoder.layers.encoder_layer_11.ln_1"}[name.split("/")[0]]
        assert transformer_layer(net) == expected
        layer, reshape = net.get_submodule(expected), _vit_tokens(1, side)
    for method in REFERENCE:
        if method in ("scorecam", "ablationcam") and name != "timm/vit_tiny_patch16_224":
            continue  # 768 channels, a full pass of the reference each
        n = 1 if method in ("scorecam", "ablationcam") else 2
        ours = compute_cam(net, x[:n], targets[:n], method=method).maps
        assert ours.std() > 0.05, (name, method)
        np.testing.assert_allclose(ours.numpy(), reference_maps(net, layer, x[:n], targets[:n], method, reshape,
                                                                transformer=True), atol=2e-3,
                                   err_msg=f"{name} {method}")


def test_many_pass_methods_do_not_depend_on_the_batch_size():
    net = trained_like("resnet20", num_classes=10)
    x = torch.randn(3, 3, 32, 32)
    for method in ("scorecam", "ablationcam"):
        torch.testing.assert_close(compute_cam(net, x, method=method, batch_size=7).maps,
                                   compute_cam(net, x, method=method, batch_size=500).maps, rtol=1e-4, atol=1e-4)
    with pytest.raises(InputError, match="batch_size must be at least 1"):
        compute_cam(net, x, method="scorecam", batch_size=0)


@pytest.mark.parametrize("name", ["lenet5", "alexnet", "vgg11_bn", "resnet20"])
def test_a_batch_equals_the_images_one_by_one(name):
    net = trained_like(name, num_classes=10, in_chans=1 if name == "lenet5" else 3, image_size=32)
    x = torch.randn(3, net.in_chans, 32, 32)
    batch = compute_cam(net, x, method="gradcam")
    single = torch.cat([compute_cam(net, x[i:i + 1], method="gradcam").maps for i in range(3)])
    torch.testing.assert_close(batch.maps, single, rtol=1e-4, atol=1e-4)
    assert batch.maps.shape == (3, 32, 32) and batch.maps.min() >= 0 and batch.maps.max() <= 1


def test_leaves_no_hooks_grads_or_mode_changes():
    net = trained_like("resnet18", num_classes=10, image_size=32)
    net.train()
    net.layer1.eval()
    net.fc.weight.requires_grad_(False)
    modes = {n: m.training for n, m in net.named_modules()}
    state = {k: v.clone() for k, v in net.state_dict().items()}
    for method in METHODS:
        compute_cam(net, torch.randn(1 if method in MANY_PASSES else 2, 3, 32, 32), method=method)
    compute_cam(net, torch.randn(2, 3, 32, 32), layer="layer3")
    compute_cam(net, torch.randn(1, 3, 32, 32), method="ablationcam", layer="layer4")  # a hook replaces its output
    assert {n: m.training for n, m in net.named_modules()} == modes
    assert all(p.grad is None for p in net.parameters())
    assert not net.fc.weight.requires_grad and net.conv1.weight.requires_grad
    assert not any(m._forward_hooks or m._backward_hooks for m in net.modules())
    assert all(torch.equal(state[k], v) for k, v in net.state_dict().items())  # BN statistics untouched


def test_targets_default_to_the_prediction_and_can_be_chosen():
    net = trained_like("resnet20", num_classes=10)
    x = torch.randn(4, 3, 32, 32)
    result = compute_cam(net, x)
    with torch.no_grad():
        probs = net.eval()(x).softmax(1)
    assert torch.equal(result.targets, probs.argmax(1))
    torch.testing.assert_close(result.probs, probs.max(1).values)
    chosen = compute_cam(net, x, targets=[0, 1, 2, 3])
    assert chosen.targets.tolist() == [0, 1, 2, 3] and not torch.equal(chosen.maps, result.maps)


def test_works_inside_lightning_inference_mode(tmp_path):
    """Lightning runs test steps under inference_mode, where pytorch-grad-cam fails."""
    maps = []

    class WithCAM(zoo.ImageClassifier):
        def test_step(self, batch, batch_idx):
            maps.append(compute_cam(self, batch[0][:4]).maps)

    model = WithCAM("lenet5", num_classes=10, in_chans=1)
    trainer = L.Trainer(logger=False, enable_progress_bar=False, enable_model_summary=False, limit_test_batches=1,
                        default_root_dir=tmp_path)
    trainer.test(model, zoo.data.create("digits"), verbose=False)
    assert len(maps) == 1 and maps[0].shape == (4, 32, 32) and torch.isfinite(maps[0]).all()


def test_named_layer_override():
    net = trained_like("resnet18", num_classes=10, image_size=32)
    x = torch.randn(2, 3, 32, 32)
    last = compute_cam(net, x, layer="layer4").maps
    torch.testing.assert_close(last, compute_cam(net, x).maps, rtol=1e-4, atol=1e-4)
    earlier = compute_cam(net, x, layer="layer2").maps
    assert earlier.shape == last.shape and not torch.allclose(earlier, last)
    with pytest.raises(InputError, match="the model has no layer 'layer9'"):
        compute_cam(net, x, layer="layer9")


@pytest.mark.parametrize("name", ["lenet5", "vgg11", "alexnet", "airbench"])
def test_plain_cam_needs_a_gap_linear_head(name):
    """airbench's head is one linear layer after a global max pool: not CAM's average (its logit reads each channel
    at its strongest position only)."""
    net = zoo.create_model(name, in_chans=1 if name == "lenet5" else 3, image_size=32)
    with pytest.raises(ZooError, match="plain CAM needs a head of global average pooling.*use method='gradcam'"):
        compute_cam(net, torch.randn(1, net.in_chans, 32, 32), method="cam")


def test_bad_inputs():
    net = zoo.create_model("resnet20")
    unknown = r"unknown CAM method 'gradcam\+'; choose one of: cam, gradcam, gradcam\+\+, hirescam"
    with pytest.raises(InputError, match=unknown):
        compute_cam(net, torch.randn(1, 3, 32, 32), method="gradcam+")
    with pytest.raises(InputError, match="2 targets given for 1 images"):
        compute_cam(net, torch.randn(1, 3, 32, 32), targets=[1, 2])
    with pytest.raises(ZooError, match="no spatial feature map"):
        compute_cam(zoo.create_model("mlp"), torch.randn(1, 3, 32, 32))


def test_pointing_game_and_boxes_on_known_maps():
    maps = torch.zeros(3, 10, 10)
    maps[0, 2, 3] = 1.0   # peak at x=3, y=2: inside box 0
    maps[1, 8, 8] = 1.0   # outside box 1
    maps[2, 5, 5] = 1.0   # on box 2's exclusive edge: outside
    boxes = torch.tensor([[2, 1, 5, 4], [0, 0, 4, 4], [0, 0, 5, 5]])
    assert pointing_game(maps, boxes).tolist() == [True, False, False]

    cam = torch.zeros(10, 12)
    cam[1:4, 2:6] = 1.0     # the larger region, 3x4
    cam[7:9, 9:11] = 0.5    # a smaller one
    cam[5, 0] = 0.1         # below 20 % of the maximum
    assert largest_region_box(cam).tolist() == [2, 1, 6, 4]
    assert box_iou(torch.tensor([[0, 0, 2, 2], [0, 0, 2, 2]]), torch.tensor([[0, 0, 2, 2], [1, 0, 3, 2]])).tolist() \
        == pytest.approx([1.0, 1 / 3])
    both = localization(maps[:2], boxes[:2])
    assert both["pointing_game"] == 0.5


def test_overlay_and_grid(tmp_path):
    image = torch.zeros(1, 8, 8)
    cam = torch.zeros(8, 8)
    cam[0, 0] = 1.0
    picture = overlay(image, cam, alpha=1.0)
    assert picture.shape == (8, 8, 3)
    assert picture[0, 0].tolist() == pytest.approx([0.5, 0.0, 0.0], abs=0.01)  # jet's top is dark red
    save_grid(torch.rand(3, 3, 16, 16), torch.rand(3, 16, 16), ["a", "b", "c"], str(tmp_path / "grid.png"),
              boxes=torch.tensor([[1, 1, 5, 5]] * 3))
    from PIL import Image

    assert Image.open(tmp_path / "grid.png").size[0] > 100
    assert not list(tmp_path.glob("*.tmp*"))
