import functools

import lightning as L
import pytest
import torch
import torch.nn.functional as F

import zoo
from zoo.checkpoint import CheckpointRecord, read_checkpoint
from zoo.errors import CheckpointError, InputError
from zoo.losses import multiclass_hinge_loss


def test_hinge_loss_is_cs231ns_formula():
    scores = torch.tensor([[3.2, 5.1, -1.7], [1.3, 4.9, 2.0], [2.2, 2.5, -3.1]])
    target = torch.tensor([0, 1, 2])
    # the CS231n worked example: losses 2.9, 0 and 12.9 (mean 5.27)
    torch.testing.assert_close(multiclass_hinge_loss(scores, target), torch.tensor((2.9 + 0 + 12.9) / 3))
    # torch's multi_margin_loss is the same sum divided by the number of classes
    s, t = torch.randn(16, 10), torch.randint(0, 10, (16,))
    torch.testing.assert_close(multiclass_hinge_loss(s, t), 10 * F.multi_margin_loss(s, t, p=1, margin=1.0))


@pytest.mark.parametrize("loss, smoothing", [("cross_entropy", 0.0), ("cross_entropy", 0.1), ("hinge", 0.0)])
def test_each_loss_is_used(loss, smoothing):
    model = zoo.create("mlp", in_chans=1, image_size=8, loss=loss, label_smoothing=smoothing)
    s, t = torch.randn(8, 10), torch.randint(0, 10, (8,))
    expected = (multiclass_hinge_loss(s, t) if loss == "hinge"
                else F.cross_entropy(s, t, label_smoothing=smoothing))
    torch.testing.assert_close(model.loss(s, t), expected)


@pytest.mark.parametrize("bad, match", [
    ({"loss": "l2"}, "unknown loss 'l2'; choose one of: cross_entropy, hinge"),
    ({"label_smoothing": 1.5}, "label_smoothing must be in"),
    ({"class_names": ["a", "b"]}, "2 class names given for num_classes=10"),
])
def test_bad_arguments_say_what_to_do(bad, match):
    with pytest.raises(InputError, match=match):
        zoo.create("lenet5", **bad)


def _trainer(tmp_path, **kwargs):
    return L.Trainer(default_root_dir=tmp_path, logger=False, enable_progress_bar=False,
                     enable_model_summary=False, **kwargs)


def test_checkpoint_round_trip_gives_identical_predictions(tmp_path, monkeypatch):
    L.seed_everything(0)
    data = zoo.data.create("digits", batch_size=128)
    model = zoo.create("mlp", num_classes=10, in_chans=1, image_size=32, hidden=[64], dropout=0.1,
                       class_names=data.class_names, optimizer=functools.partial(torch.optim.SGD, lr=0.05))
    trainer = _trainer(tmp_path, max_epochs=1, enable_checkpointing=False)
    trainer.fit(model, data)
    path = tmp_path / "model.ckpt"
    trainer.save_checkpoint(path)

    recorded = read_checkpoint(path)["zoo"]["data"]
    assert recorded["name"] == "digits" and recorded["arguments"]["batch_size"] == 128
    assert recorded["mean"] == data.mean and recorded["class_names"] == data.class_names
    assert isinstance(zoo.data.create(recorded["name"], **recorded["arguments"]), type(data))

    # the typed record every consumer reads: the same facts, the net's arguments apart from the classifier's
    record = CheckpointRecord.read(path)
    assert (record.model, record.num_classes, record.in_chans, record.image_size) == ("mlp", 10, 1, 32)
    # every argument the net was built with, the builder's defaults included (a later default cannot change it)
    assert record.net_arguments == {"hidden": [64], "dropout": 0.1, "activation": "relu"}
    assert record.probe_stage is None
    assert record.data.name == "digits" and record.data.mean == data.mean and record.labels == data.class_names
    assert record.optimizer["class_path"] == "torch.optim.SGD" and record.optimizer["init_args"]["lr"] == 0.05
    assert (record.epoch, record.global_step) == (trainer.current_epoch, trainer.global_step)
    x = next(iter(data.test_dataloader()))[0]
    model.eval()
    assert torch.equal(record.net().eval()(x), model(x))
    reads = []
    monkeypatch.setattr(zoo.checkpoint, "read_checkpoint", lambda p: reads.append(p) or read_checkpoint(p))
    from zoo.features import dataset_features

    name, features = dataset_features(path, splits=("test",))  # the net, its data, its sizes: one read
    assert len(reads) == 1 and name == "digits" and features["test_features"].shape == (360, 64)

    loaded = zoo.ImageClassifier.load_from_checkpoint(path)
    assert type(loaded.net) is type(model.net) and loaded.hparams == model.hparams
    assert loaded.hparams.hidden == [64] and loaded.hparams.class_names == [str(d) for d in range(10)]
    x = next(iter(data.test_dataloader()))[0]
    model.eval(), loaded.eval()
    assert torch.equal(loaded(x), model(x))
    probs = torch.cat(_trainer(tmp_path).predict(loaded, data))
    assert probs.shape == (360, 10)
    torch.testing.assert_close(probs.sum(1), torch.ones(360))


def test_checkpoint_errors_are_clear(tmp_path):
    with pytest.raises(CheckpointError, match="'.*missing.ckpt' does not exist"):
        zoo.ImageClassifier.load_from_checkpoint(tmp_path / "missing.ckpt")
    with pytest.raises(CheckpointError, match="is a directory"):
        zoo.ImageClassifier.load_from_checkpoint(tmp_path)
    (tmp_path / "garbage.ckpt").write_bytes(b"not a checkpoint at all")
    with pytest.raises(CheckpointError, match="cannot be read: it is truncated, corrupt or not a PyTorch checkpoint"):
        zoo.ImageClassifier.load_from_checkpoint(tmp_path / "garbage.ckpt")
    torch.save({"state_dict": {}}, tmp_path / "other.ckpt")
    with pytest.raises(CheckpointError, match="was not written by zoo"):
        zoo.ImageClassifier.load_from_checkpoint(tmp_path / "other.ckpt")
    torch.save({"state_dict": {}, "hyper_parameters": {"model": "mlp"}, "zoo": {}}, tmp_path / "edited.ckpt")
    with pytest.raises(CheckpointError, match="does not name its model and sizes"):
        zoo.ImageClassifier.load_from_checkpoint(tmp_path / "edited.ckpt")


def test_data_that_does_not_fit_the_model_stops_before_training(tmp_path):
    model = zoo.create("lenet5", num_classes=5, in_chans=1)
    with pytest.raises(InputError, match="the data has num_classes=10 but the model takes num_classes=5"):
        _trainer(tmp_path, max_epochs=1).fit(model, zoo.data.create("digits"))


def test_lenet5_learns_digits(tmp_path):
    """A short real training run, far above the 10 % of chance."""
    L.seed_everything(0)
    data = zoo.data.create("digits")
    model = zoo.create("lenet5", num_classes=10, in_chans=1)
    trainer = _trainer(tmp_path, max_epochs=8, enable_checkpointing=False)
    trainer.fit(model, data)
    assert trainer.test(model, data, verbose=False)[0]["test_acc"] > 0.9


def test_nan_loss_stops_at_once_naming_the_step(tmp_path):
    from zoo.errors import TrainingError

    L.seed_everything(0)
    model = zoo.create("mlp", num_classes=10, in_chans=1, optimizer=functools.partial(torch.optim.SGD, lr=1e12))
    trainer = _trainer(tmp_path, max_epochs=3, enable_checkpointing=False)
    with pytest.raises(TrainingError, match=r"the training loss became (nan|inf) at step (\d+) \(epoch 0\); lower"):
        trainer.fit(model, zoo.data.create("digits"))
    assert trainer.global_step < 20  # stopped within the first epoch (20 batches), not at its end


def test_initial_loss_check(tmp_path, recwarn):
    L.seed_everything(0)
    sane = zoo.create("lenet5", num_classes=10, in_chans=1)
    _trainer(tmp_path, max_epochs=1, limit_train_batches=2, limit_val_batches=0, enable_checkpointing=False).fit(
        sane, zoo.data.create("digits"))
    assert not [w for w in recwarn if "initial loss" in str(w.message)]

    loud = zoo.create("lenet5", num_classes=10, in_chans=1)
    with torch.no_grad():
        loud.net.get_classifier().weight.mul_(300.0)  # scores far too large: a bad init scale
    with pytest.warns(UserWarning, match=r"the initial loss [\d.]+ is far from ln\(10\) = 2\.303"):
        _trainer(tmp_path, max_epochs=1, limit_train_batches=2, limit_val_batches=0, enable_checkpointing=False).fit(
            loud, zoo.data.create("digits"))

    # label smoothing keeps the level of random scores at ln(C); the hinge loss has C - 1
    for smoothed in (zoo.create("lenet5", num_classes=10, in_chans=1, label_smoothing=0.1),
                     zoo.create("lenet5", num_classes=10, in_chans=1, loss="hinge")):
        smoothed.net.load_state_dict(loud.net.state_dict())
        formula = r"ln\(10\) = 2\.303" if smoothed.hparams.loss == "cross_entropy" else r"10 - 1 = 9\.000"
        with pytest.warns(UserWarning, match=rf"the initial loss [\d.]+ is far from {formula}"):
            _trainer(tmp_path, max_epochs=1, limit_train_batches=1, limit_val_batches=0,
                     enable_checkpointing=False).fit(smoothed, zoo.data.create("digits"))

    # a net that starts from pretrained weights may rightly start far below chance: not checked
    torch.save(loud.net.state_dict(), tmp_path / "loud.pth")
    recwarn.clear()
    pretrained = zoo.create("lenet5", num_classes=10, in_chans=1, weights=str(tmp_path / "loud.pth"))
    _trainer(tmp_path, max_epochs=1, limit_train_batches=1, limit_val_batches=0, enable_checkpointing=False).fit(
        pretrained, zoo.data.create("digits"))
    assert not [w for w in recwarn if "initial loss" in str(w.message)]


def test_grad_norm_logging(tmp_path):
    from lightning.pytorch.loggers import CSVLogger

    model = zoo.create("lenet5", num_classes=10, in_chans=1, log_grad_norm=True)
    trainer = L.Trainer(max_epochs=1, limit_train_batches=3, limit_val_batches=0, log_every_n_steps=1,
                        logger=CSVLogger(tmp_path), enable_progress_bar=False, enable_checkpointing=False)
    trainer.fit(model, zoo.data.create("digits"))
    import csv

    rows = [r for r in csv.DictReader(open(trainer.logger.log_dir + "/metrics.csv")) if r.get("grad_norm")]
    assert len(rows) == 3 and all(float(r["grad_norm"]) > 0 for r in rows)


def test_a_finite_but_exploding_loss_stops_too(tmp_path):
    """The docs' example: LeNet-5 at lr 1e12 kept a finite loss (1.6e31) and finished with exit 0."""
    from zoo.errors import TrainingError

    L.seed_everything(0)
    model = zoo.create("lenet5", num_classes=10, in_chans=1, optimizer=functools.partial(torch.optim.SGD, lr=1e12))
    trainer = _trainer(tmp_path, max_epochs=3, enable_checkpointing=False)
    with pytest.raises(TrainingError, match=r"the training loss (diverged: \S+ at step \d+ \(epoch \d\), above 10 "
                                            r"times its first value \(2.3\d*\) for 10 steps|became (nan|inf))"):
        trainer.fit(model, zoo.data.create("digits"))
    assert trainer.global_step < 40


@pytest.mark.parametrize("name", ["lenet5", "mlp", "resnet20", "resnet18", "densenet_bc100", "knn"])
def test_create_without_sizes_builds_the_net_create_model_builds(name):
    """zoo.create and zoo.create_model agree: the classes, channels and input size not given are the net's own."""
    with torch.device("meta"):
        model, net = zoo.create(name), zoo.create_model(name)
    shapes = {k: v.shape for k, v in net.state_dict().items()}
    assert {k.removeprefix("net."): v.shape for k, v in model.state_dict().items()} == shapes
    info = zoo.model_info(name)
    assert (model.hparams.in_chans, model.hparams.image_size) == (info.input_size[0], info.input_size[1])
    assert model.hparams.num_classes == (1000 if info.input_size[1] == 224 else 10)


def test_tta_averages_the_mirrored_and_shifted_views():
    torch.manual_seed(0)
    model = zoo.create("airbench", num_classes=10, in_chans=1, image_size=12, widths=(4, 8, 8)).eval()
    x = torch.randn(3, 1, 12, 12)
    with torch.no_grad():
        plain = model.net(x)
        model.tta = "flip"
        torch.testing.assert_close(model.evaluate(x), (plain + model.net(x.flip(-1))) / 2)
        model.tta = "flip_shift"
        padded = F.pad(x, (1, 1, 1, 1), mode="reflect")
        views = [x, padded[..., :12, :12], padded[..., 2:, 2:]]
        mirrored = [(model.net(v) + model.net(v.flip(-1))) / 2 for v in views]
        torch.testing.assert_close(model.evaluate(x), mirrored[0] / 2 + (mirrored[1] + mirrored[2]) / 4)
        assert not torch.allclose(model.evaluate(x), plain)
        torch.testing.assert_close(model.predict_step(x, 0), model.evaluate(x).softmax(dim=1))
    with pytest.raises(InputError, match="unknown tta 'rotate'; choose one of: none, flip, flip_shift"):
        zoo.create("lenet5", tta="rotate")


def test_bias_lr_scale_sets_the_rate_of_the_parameters_that_do_not_decay():
    model = zoo.create("airbench", in_chans=1, image_size=28, bias_lr_scale=16.0,
                       optimizer=functools.partial(torch.optim.SGD, lr=0.2, weight_decay=5e-4))
    groups = model.configure_optimizers().param_groups
    weights, biases = groups
    assert weights["lr"] == 0.2 and weights["weight_decay"] == 5e-4 and all(p.ndim > 1 for p in weights["params"])
    assert biases["lr"] == pytest.approx(3.2) and biases["weight_decay"] == 0.0
    assert {id(p) for p in biases["params"]} == {id(m.bias) for m in model.net.modules()
                                                  if isinstance(m, torch.nn.BatchNorm2d)}
    with pytest.raises(InputError, match="bias_lr_scale must be positive"):
        zoo.create("lenet5", bias_lr_scale=0)


def test_a_fresh_fit_whitens_from_its_first_batch_a_resumed_one_keeps_its_filters(tmp_path):
    data = zoo.data.create("digits", image_size=16, batch_size=256, val_split=0)

    def airbench_seeing(seen):
        model = zoo.create("airbench", num_classes=10, in_chans=1, image_size=16, widths=(8, 8, 8))
        fit = model.net.whiten.fit
        model.net.whiten.fit = lambda images: (seen.append(images.clone()), fit(images))
        return model

    seen = []
    model = airbench_seeing(seen)
    pixels = model.net.whiten.weight.clone()
    trainer = _trainer(tmp_path, max_epochs=1, limit_train_batches=2, enable_checkpointing=False)
    trainer.fit(model, data)
    assert len(seen) == 1 and len(seen[0]) == 256  # the first batch, once
    assert abs(float(seen[0].mean())) < 0.2 and float(seen[0].std()) == pytest.approx(1.0, abs=0.2)  # normalized
    assert not torch.equal(model.net.whiten.weight, pixels)
    path = tmp_path / "one.ckpt"
    trainer.save_checkpoint(path)

    resumed_seen = []
    resumed = airbench_seeing(resumed_seen)
    _trainer(tmp_path, max_epochs=2, limit_train_batches=2, enable_checkpointing=False).fit(resumed, data,
                                                                                            ckpt_path=path)
    assert resumed_seen == [] and torch.equal(resumed.net.whiten.weight, model.net.whiten.weight)
