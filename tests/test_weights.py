"""zoo's own weights (zoo:TAG): sha256 checked before reading, from a package file or a URL (a local server here)."""

import functools
import http.server
import threading

import pytest
import torch
from safetensors.torch import save_file

import zoo
from zoo.errors import ZooError
from zoo.weights import WEIGHTS, Weights, cache_path, get_weights, register_weights, sha256_of


@pytest.fixture()
def registered():
    """Register weights for the test; take them out of the registry afterwards."""
    added = []

    def add(weights):
        added.append(f"{weights.model}:{weights.tag}")
        return register_weights(weights)

    yield add
    for key in added:
        WEIGHTS._entries.pop(key, None)


@pytest.fixture()
def lenet_file(tmp_path):
    torch.manual_seed(0)
    net = zoo.create_model("lenet5", num_classes=10, in_chans=1)
    path = tmp_path / "lenet5-test.safetensors"
    save_file(net.state_dict(), path)
    return net, path


@pytest.fixture()
def server(tmp_path):
    """An http.server on 127.0.0.1 serving tmp_path/served; stops after the test."""
    folder = tmp_path / "served"
    folder.mkdir()
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(folder))
    handler.log_message = lambda *args: None
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield folder, f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()


def test_package_weights_load_after_their_hash_is_checked(registered, lenet_file):
    net, path = lenet_file
    registered(Weights("lenet5", "test", sha256_of(path), file=str(path), arguments={"in_chans": 1},
                       meta={"dataset": "digits", "top1": 99.0, "mean": [0.3], "std": [0.3]}))
    model = zoo.create("lenet5", num_classes=10, in_chans=1, weights="zoo:test")
    assert all(torch.equal(a, b) for a, b in zip(model.net.state_dict().values(), net.state_dict().values(),
                                                  strict=True))
    assert get_weights("lenet5", "test").normalization == ([0.3], [0.3])
    info = zoo.model_info("lenet5").weights["zoo:test"]
    assert info["dataset"] == "digits" and info["acc@1"] == 99.0
    with pytest.raises(ZooError, match=r"unknown weights 'zoo:nothing' for 'lenet5'; lenet5 has: "
                                       r"(zoo:fashion_mnist, )?zoo:test"):
        zoo.create("lenet5", weights="zoo:nothing")


def test_a_damaged_package_file_is_refused(registered, lenet_file):
    _, path = lenet_file
    registered(Weights("lenet5", "test", "0" * 64, file=str(path)))
    with pytest.raises(ZooError, match=rf"its package's file for zoo:test \(lenet5\) has sha256 {sha256_of(path)}, "
                                       rf"but the weights are registered with sha256 0{{64}}; it was refused"):
        zoo.create("lenet5", num_classes=10, in_chans=1, weights="zoo:test")


def test_url_weights_download_once_and_a_tampered_file_is_never_cached(registered, lenet_file, server, tmp_path,
                                                                       monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    net, path = lenet_file
    folder, url = server
    good = sha256_of(path)
    (folder / "good.safetensors").write_bytes(path.read_bytes())
    tampered = bytearray(path.read_bytes())
    tampered[-1] ^= 1
    (folder / "tampered.safetensors").write_bytes(bytes(tampered))
    ok = registered(Weights("lenet5", "url", good, url=f"{url}/good.safetensors"))
    model = zoo.create("lenet5", num_classes=10, in_chans=1, weights="zoo:url")
    assert torch.equal(model.net.features[0].weight, net.features[0].weight)
    assert cache_path(ok).is_file() and sha256_of(cache_path(ok)) == good
    (folder / "good.safetensors").unlink()  # cached: no second download
    zoo.create("lenet5", num_classes=10, in_chans=1, weights="zoo:url")

    bad = registered(Weights("lenet5", "tampered", good, url=f"{url}/tampered.safetensors"))
    with pytest.raises(ZooError, match=rf"the file downloaded from {url}/tampered.safetensors has sha256 "
                                       rf"{sha256_of(folder / 'tampered.safetensors')}, but zoo:tampered for lenet5 "
                                       rf"is registered with sha256 {good}; it was deleted and nothing was cached"):
        zoo.create("lenet5", num_classes=10, in_chans=1, weights="zoo:tampered")
    assert sorted(p.name for p in cache_path(bad).parent.iterdir()) == [cache_path(ok).name]  # no partial left

    registered(Weights("lenet5", "gone", good, url=f"{url}/missing.safetensors"))
    with pytest.raises(ZooError, match=r"cannot download zoo:gone for lenet5: .*missing.safetensors answered HTTP "
                                       r"404 .*; check the URL .*, or put the file from .* at "):
        zoo.create("lenet5", num_classes=10, in_chans=1, weights="zoo:gone")


def test_a_refused_connection_says_what_to_do(registered, tmp_path, monkeypatch):
    import socket

    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    registered(Weights("lenet5", "offline", "0" * 64, url=f"http://127.0.0.1:{port}/w.safetensors"))
    with pytest.raises(ZooError, match=r"cannot download zoo:offline for lenet5 from http://127.0.0.1:\d+/"
                                       r"w.safetensors \(.*refused.*\); connect to the network and try again"):
        zoo.create("lenet5", num_classes=10, in_chans=1, weights="zoo:offline")


def test_the_data_normalizes_as_given(tmp_path):
    data = zoo.data.create("digits", normalize=([0.5], [0.25]))
    data.setup()
    assert (data.mean, data.std) == ([0.5], [0.25]) and data.hparams["normalize"] == ([0.5], [0.25])
    grey = zoo.data.create("digits", normalize=([0.4, 0.5, 0.6], [0.2, 0.25, 0.3]))  # RGB weights on grey scans
    grey.setup()
    assert grey.mean == pytest.approx([0.5]) and grey.std == pytest.approx([0.25])
    rgb = zoo.data.create("fake", in_chans=3, image_size=8, normalize=([0.5], [0.25]))  # grey weights on RGB
    rgb.setup()
    assert (rgb.mean, rgb.std) == ([0.5] * 3, [0.25] * 3)
    with pytest.raises(ZooError, match="normalize gives 2 means and 2 stds for 3-channel images"):
        zoo.data.create("fake", in_chans=3, image_size=8, normalize=([0.5] * 2, [0.25] * 2)).setup()


@pytest.fixture()
def relu_lenet(registered, tmp_path):
    """Weights of a 4-class LeNet-5 with ReLU for 20x20 grey images: nothing about them is lenet5's default."""
    torch.manual_seed(0)
    net = zoo.create_model("lenet5", num_classes=4, in_chans=1, image_size=20, activation="relu")
    path = tmp_path / "lenet5-relu.safetensors"
    save_file(net.state_dict(), path)
    names = ["ant", "bee", "cat", "dog"]
    registered(Weights("lenet5", "relu", sha256_of(path), file=str(path),
                       arguments={"num_classes": 4, "in_chans": 1, "image_size": 20, "activation": "relu"},
                       meta={"input_size": [1, 20, 20], "mean": [0.25], "std": [0.5], "class_names": names,
                             "top1": 50.0}))
    return net, names


def test_what_the_caller_leaves_unset_comes_from_the_weights(relu_lenet):
    net, names = relu_lenet
    x = torch.randn(2, 1, 20, 20)
    model = zoo.create("lenet5", weights="zoo:relu", channels_last=False).eval()  # the layout of `net`
    assert {k: model.hparams[k] for k in ("num_classes", "in_chans", "image_size", "activation", "class_names")} == {
        "num_classes": 4, "in_chans": 1, "image_size": 20, "activation": "relu", "class_names": names}
    assert torch.equal(model(x), net.eval()(x))  # the same net, ReLU and all
    plain = zoo.create_model("lenet5", weights="zoo:relu").eval()
    assert torch.equal(plain(x), net(x)) and plain.pretrained_cfg["class_names"] == names
    assert plain.pretrained_cfg["mean"] == [0.25] and plain.pretrained_cfg["input_size"] == (1, 20, 20)
    # a value the caller gives is an adaptation asked for: other classes, a new final layer; the rest loaded
    seven = zoo.create("lenet5", weights="zoo:relu", num_classes=7)
    assert seven.net.num_classes == 7 and seven.hparams.class_names is None
    # a new head is not the net the weights' class names and accuracy describe (the docs' idiom
    # pretrained_cfg["class_names"][argmax] would label 7 classes with the weights' names)
    cfg = zoo.create_model("lenet5", weights="zoo:relu", num_classes=7).pretrained_cfg
    assert (cfg["class_names"], cfg["top1"], cfg["adapted"], cfg["num_classes"]) == (None, None, ["num_classes"], 7)
    assert seven.net.pretrained_cfg["class_names"] is None
    assert zoo.create_model("lenet5", weights="zoo:relu").pretrained_cfg["class_names"] == names
    assert torch.equal(seven.net.features[0].weight, net.features[0].weight)


def test_pretrained_means_the_models_zoo_weights(relu_lenet):
    net, _ = relu_lenet
    assert zoo.create_model("lenet5", pretrained=True).pretrained_cfg["weights"] == zoo.weights.list_weights(
        "lenet5")[0].name
    assert "lenet5" in zoo.list_models(pretrained=True) and "vgg16" not in zoo.list_models(pretrained=True)
    assert set(zoo.list_models(pretrained=True)) <= set(zoo.list_models())
    with pytest.raises(ZooError, match="'vgg16' has no pretrained zoo weights; models that have: .*lenet5"):
        zoo.create_model("vgg16", pretrained=True)
    assert zoo.create_model("lenet5").pretrained_cfg["weights"] is None  # untrained: every net has one, as timm's


def test_transforms_are_the_preprocessing_the_weights_expect(relu_lenet):
    from PIL import Image

    preprocess = get_weights("lenet5", "relu").transforms()
    grey = torch.randint(0, 256, (1, 20, 20), dtype=torch.uint8)
    expected = (grey.float() / 255 - 0.25) / 0.5
    assert torch.allclose(preprocess(grey), expected, atol=1e-6)
    rgb = Image.fromarray(torch.randint(0, 256, (40, 30, 3), dtype=torch.uint8).numpy())  # other size, colour
    assert preprocess(rgb).shape == (1, 20, 20)
    batch = torch.rand(5, 1, 20, 20)  # float 0..1, a batch
    assert torch.allclose(preprocess(batch), (batch - 0.25) / 0.5, atol=1e-6)


def test_the_data_normalizes_as_the_weights_expect_unless_told_otherwise(relu_lenet):
    import lightning as L

    model = zoo.create("lenet5", weights="zoo:relu")
    trainer = L.Trainer(logger=False, enable_progress_bar=False, enable_model_summary=False, limit_test_batches=1)
    data = zoo.data.create("fake", num_classes=4, in_chans=1, image_size=20, test_size=8)
    trainer.test(model, data, verbose=False)
    assert (data.mean, data.std) == ([0.25], [0.5]) and data.hparams["normalize"] == ([0.25], [0.5])
    own = zoo.data.create("fake", num_classes=4, in_chans=1, image_size=20, test_size=8, normalize=([0.1], [0.2]))
    trainer.test(model, own, verbose=False)
    assert (own.mean, own.std) == ([0.1], [0.2])


def test_torch_hub_loads_zoo_models_from_a_checkout():
    from conftest import ROOT

    net = torch.hub.load(str(ROOT), "resnet20", source="local", weights="zoo:fashion_mnist")
    assert net.in_chans == 1 and net.pretrained_cfg["weights"] == "zoo:fashion_mnist"
    assert torch.hub.load(str(ROOT), "googlenet_s", source="local", num_classes=3).num_classes == 3
    with pytest.raises(RuntimeError, match="resnt20"):
        torch.hub.load(str(ROOT), "resnt20", source="local")


def test_the_data_follows_the_weights_it_is_made_for(registered, tmp_path):
    """zoo.data.create(name, weights=...) resizes and normalizes as the weights expect (what zoo fit does with
    --model.weights), unless told otherwise; the net built with the same weights takes exactly that input."""
    path = tmp_path / "lenet5-24.safetensors"
    save_file(zoo.create_model("lenet5", num_classes=10, in_chans=1, image_size=24).state_dict(), path)
    weights = registered(Weights("lenet5", "test", sha256_of(path), file=str(path),
                                 arguments={"num_classes": 10, "in_chans": 1, "image_size": 24},
                                 meta={"mean": [0.3], "std": [0.2]}))
    data = zoo.data.create("digits", weights=weights)
    assert data.image_size == 24 and data.normalize == ([0.3], [0.2])  # digits' own: 32 and its pixels' statistics
    data.setup("fit")
    images, _ = next(iter(data.train_dataloader()))
    net = zoo.create_model("lenet5", weights="zoo:test")
    assert tuple(images.shape[1:]) == (1, 24, 24) == (net.in_chans, *2 * [net.pretrained_cfg["image_size"]])
    assert net(images[:2]).shape == (2, 10)
    assert zoo.data.create("digits", weights=weights, image_size=16).image_size == 16  # a choice stays the user's
    unsized = Weights("lenet5", "x", "0" * 64, file="f")  # weights that record no size: the net's own, 32
    assert zoo.data.create("fake", weights=unsized).image_size == 32


def test_zoo_fit_tells_what_is_given_from_what_is_left_to_the_weights(registered, tmp_path):
    """With zoo's weights, what the command line or a config leaves unset is what they were made with (their image
    size, their net's arguments), and what either gives is the user's, the builder's default value included: the
    generated --model.* arguments default to None, the data's image_size too."""
    from conftest import zoo_here

    from zoo.checkpoint import CheckpointRecord
    from zoo.options import data_class_path

    path = tmp_path / "lenet5-24.safetensors"
    made = {"num_classes": 10, "in_chans": 1, "image_size": 24, "activation": "relu", "pool": "max"}
    save_file(zoo.create_model("lenet5", **made).state_dict(), path)
    registered(Weights("lenet5", "test", sha256_of(path), file=str(path), arguments=made))
    short = ["--trainer.max_epochs", "1", "--trainer.limit_train_batches", "1", "--trainer.limit_val_batches", "1",
             "--trainer.limit_test_batches", "1", "--trainer.enable_progress_bar", "false"]

    def built(*args: str) -> CheckpointRecord:
        run = zoo_here("fit", *args, *short, cwd=tmp_path)
        assert run.returncode == 0, run.stderr[-3000:]
        return CheckpointRecord.read(max(tmp_path.glob("runs/lenet5-digits/version_*/checkpoints/best.ckpt"),
                                         key=lambda p: int(p.parent.parent.name.split("_")[1])))

    record = built("--model", "lenet5", "--model.weights", "zoo:test")
    assert record.image_size == 24 and record.net_arguments == {"activation": "relu", "pool": "max"}
    record = built("--model", "lenet5", "--model.weights", "zoo:test", "--model.activation", "tanh")
    assert record.image_size == 24 and record.net_arguments == {"activation": "tanh", "pool": "max"}
    config = tmp_path / "given.yaml"  # a config's values are given too, the builder's default (pool: avg) included
    config.write_text("model:\n  class_path: zoo.train.lenet5\n  init_args:\n    weights: zoo:test\n    pool: avg\n"
                      f"data:\n  class_path: {data_class_path('digits')}\n  init_args:\n    image_size: 32\n")
    record = built("--config", str(config))
    assert record.image_size == 32 and record.net_arguments == {"activation": "relu", "pool": "avg"}
    record = built("--model", "lenet5")  # without weights: the builder's defaults, recorded
    assert record.image_size == 32 and record.net_arguments == {"activation": "tanh", "pool": "avg"}
