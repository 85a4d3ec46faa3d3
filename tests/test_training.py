"""The training recipe: optimizers and weight-decay groups, penalties, schedules, drop-path, precision,
memory layout, torch.compile and DDP."""

import functools
import math
from pathlib import Path

import lightning as L
import pytest
import torch
import yaml
from torch.optim import lr_scheduler as torch_schedulers

import zoo
from tests.conftest import zoo_here
from zoo.errors import InputError
from zoo.optim import Muon, orthogonalized
from zoo.schedules import SHAPES, Schedule


def _trainer(**kwargs) -> L.Trainer:
    options = {"max_epochs": 1, "logger": False, "enable_checkpointing": False, "enable_progress_bar": False,
               "enable_model_summary": False}
    return L.Trainer(**{**options, **kwargs})


def _digits(**kwargs):
    return zoo.data.create("digits", image_size=8, **kwargs)


# -- optimizers and weight decay -----------------------------------------------------------------


def test_weight_decay_skips_biases_and_norm_weights_unless_asked():
    model = zoo.create("resnet20", num_classes=10, optimizer=functools.partial(torch.optim.SGD, lr=0.1,
                                                                               weight_decay=5e-4))
    optimizer = model.configure_optimizers()
    decayed, plain = optimizer.param_groups
    assert decayed["weight_decay"] == 5e-4 and plain["weight_decay"] == 0.0
    assert all(p.ndim == 4 or p.ndim == 2 for p in decayed["params"])  # conv kernels and the linear weight
    assert all(p.ndim == 1 for p in plain["params"])  # BatchNorm weights/biases and the linear bias
    assert len(decayed["params"]) + len(plain["params"]) == len(list(model.parameters()))
    everything = zoo.create("resnet20", num_classes=10, weight_decay_norm_and_bias=True,
                            optimizer=functools.partial(torch.optim.SGD, lr=0.1, weight_decay=5e-4))
    (group,) = everything.configure_optimizers().param_groups
    assert group["weight_decay"] == 5e-4 and len(group["params"]) == len(list(model.parameters()))


OPTIMIZERS = {
    "sgd": functools.partial(torch.optim.SGD, lr=0.1),
    "momentum": functools.partial(torch.optim.SGD, lr=0.05, momentum=0.9),
    "nesterov": functools.partial(torch.optim.SGD, lr=0.05, momentum=0.9, nesterov=True),
    "adagrad": functools.partial(torch.optim.Adagrad, lr=0.05),
    "rmsprop": functools.partial(torch.optim.RMSprop, lr=1e-3),
    "adam": functools.partial(torch.optim.Adam, lr=1e-3),
    "adamw": functools.partial(torch.optim.AdamW, lr=1e-3, weight_decay=0.05),
}


@pytest.mark.parametrize("name", OPTIMIZERS)
def test_each_optimizer_of_the_seeds_learns_digits(name):
    L.seed_everything(0)
    model = zoo.create("mlp", num_classes=10, in_chans=1, image_size=8, optimizer=OPTIMIZERS[name])
    trainer = _trainer(max_epochs=3)
    trainer.fit(model, _digits(augment="none"))
    assert isinstance(trainer.optimizers[0], OPTIMIZERS[name].func)
    assert trainer.callback_metrics["val_acc"] > 0.85  # chance is 0.10


def test_timm_optimizers_come_through_the_same_argument():
    optim = pytest.importorskip("timm.optim")
    L.seed_everything(0)
    model = zoo.create("mlp", num_classes=10, in_chans=1, image_size=8,
                       optimizer=functools.partial(optim.Lamb, lr=1e-2))
    trainer = _trainer(max_epochs=3)
    trainer.fit(model, _digits(augment="none"))
    assert isinstance(trainer.optimizers[0], optim.Lamb) and trainer.callback_metrics["val_acc"] > 0.85


def test_optimizers_by_short_name_on_the_command_line(tmp_path):
    done = zoo_here("fit", "--model", "mlp", "--data.image_size", "8", "--trainer.max_epochs", "1",
                   "--model.optimizer", "RMSprop", "--model.optimizer.lr", "0.001",
                   "--model.weight_decay_norm_and_bias", "true", "--trainer.enable_progress_bar", "false", cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-2000:]
    config = (tmp_path / "runs" / "mlp-digits" / "version_0" / "config.yaml").read_text()
    assert "class_path: torch.optim.RMSprop" in config and "weight_decay_norm_and_bias: true" in config



def test_muon_orthogonalizes_the_filters_step_and_is_sgd_for_the_rest():
    """zoo.optim.Muon against references no one here wrote: the SVD's U V^T for the filters' update, and
    torch.optim.SGD (Nesterov, weight decay) for every other parameter, step for step."""
    torch.manual_seed(0)
    grad = torch.randn(32, 8 * 3 * 3)
    u, _, vh = torch.linalg.svd(grad, full_matrices=False)
    singular = torch.linalg.svdvals(orthogonalized(grad, steps=5))
    assert singular.min() > 0.6 and singular.max() < 1.25  # the quintic iteration's band around 1, not exact
    assert torch.nn.functional.cosine_similarity(orthogonalized(grad, 5).flatten(), (u @ vh).flatten(), 0) > 0.98
    halved = orthogonalized(grad, 5, dtype=torch.bfloat16)  # torch.optim.Muon's precision: the same to bf16's 3 digits
    assert halved.dtype == torch.float32 and torch.allclose(halved, orthogonalized(grad, 5), atol=0.02)
    assert not torch.equal(halved, orthogonalized(grad, 5))
    x, y = torch.randn(16, 3, 6, 6), torch.randint(0, 4, (16,))
    mlp = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(108, 16), torch.nn.ReLU(), torch.nn.Linear(16, 4))
    twin = __import__("copy").deepcopy(mlp)  # no filters: Muon is Nesterov SGD, step for step
    muon = Muon(mlp.parameters(), lr=0.1, momentum=0.9, weight_decay=5e-3)
    sgd = torch.optim.SGD(twin.parameters(), lr=0.1, momentum=0.9, nesterov=True, weight_decay=5e-3)
    net = torch.nn.Sequential(torch.nn.Conv2d(3, 8, 3), torch.nn.BatchNorm2d(8), torch.nn.Flatten(),
                              torch.nn.Linear(128, 4))
    filters = Muon([{"params": [net[0].weight, net[3].weight]}, {"params": [net[0].bias, net[3].bias]}],
                   lr=0.1, muon_lr=0.2, weight_decay=5e-3)
    assert [g["muon"] for g in filters.param_groups] == [False, True, False]
    assert filters.param_groups[1]["params"] == [net[0].weight] and filters.param_groups[1]["weight_decay"] == 0
    for _ in range(3):
        before = net[0].weight.detach().clone()
        for model, optimizer in ((mlp, muon), (twin, sgd), (net, filters)):
            optimizer.zero_grad()
            torch.nn.functional.cross_entropy(model(x), y).backward()
            optimizer.step()
        torch.testing.assert_close(mlp.state_dict(), twin.state_dict())
        step = (net[0].weight.detach() - before * 8 ** 0.5 / before.norm()) / 0.2  # after the norm is reset
        singular = torch.linalg.svdvals(step.view(8, -1))
        assert singular.min() > 0.5 and singular.max() < 1.3  # every direction moves about alike
    with pytest.raises(InputError, match="muon_momentum must be in"):
        Muon(net.parameters(), muon_momentum=1.0)
    with pytest.raises(InputError, match="ns_dtype must be float32 or bfloat16"):
        Muon(net.parameters(), ns_dtype="float16")
    saved = filters.state_dict()  # an optimizer state saved before ns_dtype existed resumes, in float32
    for group in saved["param_groups"]:
        del group["ns_dtype"]
    resumed = Muon([{"params": [net[0].weight, net[3].weight]}, {"params": [net[0].bias, net[3].bias]}],
                   lr=0.1, muon_lr=0.2, weight_decay=5e-3)
    resumed.load_state_dict(saved)
    assert {group["ns_dtype"] for group in resumed.param_groups} == {"float32"}
    torch.nn.functional.cross_entropy(net(x), y).backward()
    resumed.step()
    L.seed_everything(0)  # and it trains a convolutional net from zoo's groups (no decay on biases, bias_lr_scale)
    model = zoo.create("lenet5", num_classes=10, in_chans=1, image_size=16, bias_lr_scale=4.0,
                       optimizer=functools.partial(Muon, lr=0.1, muon_lr=0.1))
    trainer = _trainer(max_epochs=3)
    trainer.fit(model, zoo.data.create("digits", image_size=16, augment="none"))
    assert trainer.callback_metrics["val_acc"] > 0.85


# -- penalties -------------------------------------------------------------------------------------


def test_l1_and_l2_penalties_are_the_textbook_sums_over_the_weights():
    model = zoo.create("lenet5", num_classes=10, in_chans=1, l1_penalty=1e-3, l2_penalty=1e-2)
    weights = [p for p in model.net.parameters() if p.ndim > 1]
    expected = sum(1e-3 * w.abs().sum() + 1e-2 * (w * w).sum() for w in weights)
    assert torch.allclose(model.penalty(), expected)
    assert zoo.create("lenet5", num_classes=10, in_chans=1).penalty() is None
    with pytest.raises(InputError, match="l1_penalty must not be negative"):
        zoo.create("lenet5", num_classes=10, in_chans=1, l1_penalty=-1.0)


def test_an_l1_penalty_shrinks_the_weights_and_zeroes_the_useless_ones():
    def fit(l1: float) -> tuple[float, float]:
        L.seed_everything(0)
        model = zoo.create("linear", num_classes=10, in_chans=1, image_size=8, l1_penalty=l1,
                           optimizer=functools.partial(torch.optim.SGD, lr=0.05))
        _trainer(max_epochs=5).fit(model, _digits(augment="none"))
        weight = model.net.fc.weight.detach()
        border = weight.view(10, 8, 8)[:, :, 0]  # the scans' first column: blank in almost every digit
        return weight.abs().sum().item(), border.abs().mean().item()

    (plain_norm, plain_border), (l1_norm, l1_border) = fit(0.0), fit(1e-2)
    assert l1_norm < 0.75 * plain_norm  # measured: 42.8 vs 62.9
    assert l1_border < 0.5 * plain_border  # measured: 0.022 vs 0.058


# -- schedules -------------------------------------------------------------------------------------


def _rates(make, steps: int = 40) -> list[float]:
    parameter = torch.nn.Parameter(torch.zeros(1))
    optimizer = torch.optim.SGD([parameter], lr=0.1)
    scheduler = make(optimizer)
    rates = []
    for _ in range(steps):
        rates.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        scheduler.step()
    return rates


REFERENCES = {  # each shape against PyTorch's own scheduler, or the formula where PyTorch has none
    "constant": (dict(), lambda o: torch_schedulers.LambdaLR(o, lambda t: 1.0)),
    "step": (dict(step_size=7, gamma=0.5), lambda o: torch_schedulers.StepLR(o, 7, 0.5)),
    "multistep": (dict(milestones=[10, 25], gamma=0.3), lambda o: torch_schedulers.MultiStepLR(o, [10, 25], 0.3)),
    "exponential": (dict(k=0.1), lambda o: torch_schedulers.ExponentialLR(o, math.exp(-0.1))),
    "inverse_time": (dict(k=0.2), lambda o: torch_schedulers.LambdaLR(o, lambda t: 1 / (1 + 0.2 * t))),
    "inverse_sqrt": (dict(k=0.2), lambda o: torch_schedulers.LambdaLR(o, lambda t: 1 / math.sqrt(1 + 0.2 * t))),
    "cosine": (dict(total=40), lambda o: torch_schedulers.CosineAnnealingLR(o, 40)),
    "linear": (dict(total=40, final=0.1), lambda o: torch_schedulers.LinearLR(o, 1.0, 0.1, 40)),
    "one_cycle": (dict(total=40), lambda o: torch_schedulers.OneCycleLR(o, 0.1, total_steps=40)),
}


@pytest.mark.parametrize("shape", SHAPES)
def test_each_schedule_equals_the_reference(shape):
    options, reference = REFERENCES[shape]
    ours = _rates(lambda o: Schedule(o, shape, **options))
    assert ours == pytest.approx(_rates(reference), rel=1e-6, abs=1e-12)


@pytest.mark.parametrize("shape", [s for s in SHAPES if s != "one_cycle"])
def test_warmup_rises_linearly_then_follows_the_shape_from_its_start(shape):
    options = {**REFERENCES[shape][0], "total": 45}
    warm = _rates(lambda o: Schedule(o, shape, warmup=5, **options), 45)
    assert warm[:5] == pytest.approx([0.1 * (t + 1) / 6 for t in range(5)])
    if shape != "multistep":  # multistep's milestones count from the start of the run
        after = {**options, "total": 40}  # the decay spans total - warmup
        assert warm[5:] == pytest.approx(_rates(lambda o: Schedule(o, shape, **after), 40))


def test_schedules_say_what_is_wrong():
    optimizer = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=0.1)
    with pytest.raises(InputError, match="unknown schedule shape 'cosin'; choose one of"):
        Schedule(optimizer, "cosin")
    scheduler = Schedule(optimizer, "cosine")
    optimizer.step()
    with pytest.raises(InputError, match="the cosine schedule needs the run's length: set total="):
        scheduler.step()
    with pytest.raises(InputError, match="warmup=10 leaves nothing of total=10"):
        Schedule(optimizer, "linear", warmup=10, total=10).step()


@pytest.mark.parametrize("interval", ["epoch", "step"])
def test_the_classifier_gives_a_schedule_the_run_length_and_steps_it_per_interval(interval):
    model = zoo.create("mlp", num_classes=10, in_chans=1, image_size=8,
                       optimizer=functools.partial(torch.optim.SGD, lr=0.1),
                       lr_scheduler=functools.partial(Schedule, shape="linear", final=0.5, interval=interval))
    trainer = _trainer(max_epochs=4)
    trainer.fit(model, _digits(batch_size=128))  # 1,257 training images: 10 batches an epoch
    scheduler = trainer.lr_scheduler_configs[0].scheduler
    assert scheduler.total == (40 if interval == "step" else 4)
    assert trainer.lr_scheduler_configs[0].interval == interval
    assert trainer.optimizers[0].param_groups[0]["lr"] == pytest.approx(0.05)  # the end of the line


def test_schedule_on_the_command_line(tmp_path):
    done = zoo_here("fit", "--model", "mlp", "--data.image_size", "8", "--trainer.max_epochs", "2",
                   "--model.optimizer", "SGD", "--model.optimizer.lr", "0.1", "--model.lr_scheduler",
                   "zoo.schedules.Schedule", "--model.lr_scheduler.shape", "step", "--model.lr_scheduler.step_size",
                   "1", "--model.lr_scheduler.gamma", "0.5", "--trainer.callbacks+=LearningRateMonitor",
                   "--trainer.enable_progress_bar", "false", cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-2000:]
    import csv

    with open(tmp_path / "runs" / "mlp-digits" / "version_0" / "metrics.csv") as f:
        rates = [float(r["lr-SGD/pg1"]) for r in csv.DictReader(f) if r.get("lr-SGD/pg1")]  # pg2: no decay
    assert rates[0] == 0.1 and rates[-1] == 0.05


def test_the_docs_picture_of_the_schedules_is_drawn_by_the_code(tmp_path):
    from zoo.schedules import plot

    path = plot(tmp_path / "schedules.png")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


# -- drop-path and dropout -------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["resnet20", "resnet18", "resnet50", "wrn28_10"])
def test_drop_path_grows_linearly_with_depth_and_only_acts_in_training(name):
    from torchvision.ops import StochasticDepth

    plain = zoo.create_model(name, num_classes=10, image_size=32)
    net = zoo.create_model(name, num_classes=10, image_size=32, drop_path_rate=0.2)
    assert net.state_dict().keys() == plain.state_dict().keys()  # no new weights: torchvision's names still load
    rates = [m.p for m in net.modules() if isinstance(m, StochasticDepth)]
    blocks = len(rates) + 1  # the first block never drops
    assert rates == pytest.approx([0.2 * i / (blocks - 1) for i in range(1, blocks)])
    x = torch.randn(8, 3, 32, 32)
    net.eval()
    assert torch.equal(net(x), net(x))
    torch.manual_seed(0)
    net.train()
    assert not torch.equal(net(x), net(x))


def test_drop_path_rate_is_checked():
    with pytest.raises(InputError, match=r"drop_path_rate must be in \[0, 1\), got 1.5"):
        zoo.create_model("resnet20", drop_path_rate=1.5)


# -- precision, memory layout, compile -------------------------------------------------------------


def test_bf16_mixed_precision_trains_on_cpu_as_well_as_fp32():
    seen = []

    class Spy(L.Callback):
        def on_train_batch_end(self, trainer, module, outputs, batch, batch_idx):
            with trainer.precision_plugin.forward_context():
                seen.append(module(batch[0]).dtype)

    accuracy = {}
    for precision in ("32-true", "bf16-mixed"):
        L.seed_everything(0)
        model = zoo.create("lenet5", num_classes=10, in_chans=1, image_size=16,
                           optimizer=functools.partial(torch.optim.SGD, lr=0.05, momentum=0.9))
        trainer = _trainer(max_epochs=4, precision=precision, callbacks=[Spy()])
        trainer.fit(model, zoo.data.create("digits", image_size=16))
        accuracy[precision] = float(trainer.callback_metrics["val_acc"])
    assert seen.count(torch.float32) == seen.count(torch.bfloat16) > 0
    assert accuracy["bf16-mixed"] > 0.75 and abs(accuracy["bf16-mixed"] - accuracy["32-true"]) < 0.05


def test_bf16_where_native_reads_the_cpus_flags_and_follows_them(tmp_path, monkeypatch):
    """zoo.precision.BF16WhereNative: bf16-mixed (autocast) where /proc/cpuinfo lists amx_bf16, float32 (no
    autocast) where it does not; the speed record's config names it, and --trainer.precision replaces it."""
    from zoo import precision

    flags = "processor\t: 0\nflags\t\t: fpu sse avx512_bf16 {}\n"
    (tmp_path / "amx").write_text(flags.format("amx_tile amx_bf16"))
    (tmp_path / "zen4").write_text(flags.format("avx512_vnni"))  # AVX-512 BF16 alone: not counted
    assert precision.cpu_multiplies_bf16(str(tmp_path / "amx"))
    assert not precision.cpu_multiplies_bf16(str(tmp_path / "zen4"))
    assert not precision.cpu_multiplies_bf16(str(tmp_path / "missing"))
    x, net = torch.randn(2, 3), torch.nn.Linear(3, 2)
    for native, dtype in ((True, torch.bfloat16), (False, torch.float32)):
        monkeypatch.setattr(precision, "cpu_multiplies_bf16", lambda native=native: native)
        plugin = precision.BF16WhereNative()
        with plugin.forward_context():
            assert net(x).dtype == dtype
        assert plugin.precision == ("bf16-mixed" if native else "32-true")
    monkeypatch.setattr(precision, "cpu_multiplies_bf16", lambda: True)
    plugin = precision.BF16WhereNative()  # on an AMX CPU, a model on another device trains in float32
    assert plugin.precision == "bf16-mixed"
    plugin.connect(torch.nn.Linear(3, 2, device="meta"), [], [])
    with plugin.forward_context():
        assert plugin.precision == "32-true" and not torch.is_autocast_enabled("cpu")
    record = Path(zoo.__file__).parent / "configs" / "fashion_mnist_fast.yaml"
    assert yaml.safe_load(record.read_text())["trainer"]["plugins"] == [{"class_path": "zoo.precision.BF16WhereNative"}]
    options = {"trainer.limit_train_batches": 1, "trainer.limit_test_batches": 1, "trainer.max_epochs": 1,
               "trainer.enable_checkpointing": False, "trainer.logger": False, "data.batch_size": 32,
               "data.train_size": 32, "data.test_size": 32, "data.image_size": 28, "data.in_chans": 1}
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(precision, "cpu_multiplies_bf16", lambda: False)  # a CPU without AMX
    for given, expected in (({}, "32-true"), ({"trainer.precision": "bf16-mixed"}, "bf16-mixed")):
        result = zoo.fit(data="fake", config=record, options={**options, **given})
        assert result.trainer.precision == expected  # Lightning refuses a plugin and a precision: zoo drops it
        assert isinstance(result.trainer.precision_plugin, precision.BF16WhereNative) == (not given)


def test_channels_last_keeps_the_outputs_and_trains():
    L.seed_everything(0)
    model = zoo.create("resnet20", num_classes=10, in_chans=1, image_size=16, channels_last=True)
    assert model.net.conv1.weight.is_contiguous(memory_format=torch.channels_last)
    plain = zoo.create("resnet20", num_classes=10, in_chans=1, image_size=16, channels_last=False)
    assert plain.net.conv1.weight.is_contiguous() and not plain.channels_last
    plain.load_state_dict(model.state_dict())
    x = torch.randn(4, 1, 16, 16)
    assert torch.allclose(model.eval()(x), plain.eval()(x), atol=1e-5)
    model.train()
    trainer = _trainer(max_epochs=1, limit_train_batches=5, limit_val_batches=1)
    trainer.fit(model, zoo.data.create("digits", image_size=16))
    assert model.net.conv1.weight.is_contiguous(memory_format=torch.channels_last)


def test_the_layout_left_unchosen_is_channels_last_for_convolutions_on_a_machine_without_a_gpu(monkeypatch):
    """benchmarks/layout.py measured channels-last faster on the CPU for most nets; on a GPU machine the layout
    stays the default, and a chosen one is kept either way."""
    kinds = {"resnet20": True, "lenet5": True, "mlp": False, "linear": False}  # a net without convolutions: no use
    for name, convolutional in kinds.items():
        model = zoo.create(name, num_classes=10, in_chans=1, image_size=16)
        assert model.channels_last is convolutional, name
    assert zoo.create("resnet20", num_classes=10, image_size=16).net.conv1.weight.is_contiguous(
        memory_format=torch.channels_last)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert not zoo.create("resnet20", num_classes=10, in_chans=1, image_size=16).channels_last
    assert zoo.create("resnet20", num_classes=10, in_chans=1, image_size=16, channels_last=True).channels_last


def test_a_compiled_model_trains_on_cpu_and_saves_the_nets_own_names(tmp_path):
    L.seed_everything(0)
    model = zoo.create("mlp", num_classes=10, in_chans=1, image_size=8, compile=True,
                       optimizer=functools.partial(torch.optim.Adam, lr=3e-3))
    trainer = _trainer(max_epochs=3, default_root_dir=tmp_path)
    trainer.fit(model, _digits(augment="none"))
    assert trainer.callback_metrics["val_acc"] > 0.85
    assert all(key.startswith(("net.", "train_", "val_", "test_")) for key in model.state_dict())
    trainer.save_checkpoint(tmp_path / "compiled.ckpt")
    again = zoo.ImageClassifier.load_from_checkpoint(tmp_path / "compiled.ckpt")
    x = torch.randn(3, 1, 8, 8)
    assert torch.allclose(again.eval()(x), model.eval()(x), atol=1e-5)


# -- several processes -----------------------------------------------------------------------------


def _ddp_fit(devices: int) -> tuple[dict[str, float], zoo.ImageClassifier]:
    L.seed_everything(0)
    model = zoo.create("lenet5", num_classes=10, in_chans=1, image_size=16,
                       optimizer=functools.partial(torch.optim.SGD, lr=0.05, momentum=0.9))
    strategy = "ddp_spawn" if devices > 1 else "auto"
    trainer = _trainer(max_epochs=4, accelerator="cpu", devices=devices, strategy=strategy)
    # the same global batch: 2 processes x 32 images = 1 process x 64
    trainer.fit(model, zoo.data.create("digits", image_size=16, batch_size=64 // devices, augment="none"))
    return {k: float(v) for k, v in trainer.callback_metrics.items()}, model


def test_ddp_on_two_cpu_processes_matches_one_process_and_logs_synced_metrics():
    single, _ = _ddp_fit(1)
    ddp, model = _ddp_fit(2)
    # the same global batch and seed; the processes see the data in another order (DistributedSampler),
    # so the runs agree within a tolerance, not to the bit
    assert abs(ddp["val_acc"] - single["val_acc"]) < 0.03
    assert abs(ddp["val_loss"] - single["val_loss"]) < 0.1
    # the logged val_acc is over all 180 validation images (synced), not one process's half
    data = zoo.data.create("digits", image_size=16, augment="none")
    results = _trainer().validate(model, data, verbose=False)
    assert ddp["val_acc"] == pytest.approx(results[0]["val_acc"], abs=1e-6)
    assert ddp["val_loss"] == pytest.approx(results[0]["val_loss"], abs=1e-5)


def test_the_epochs_training_loss_and_accuracy_are_over_every_training_image():
    from torchmetrics.functional.classification import multiclass_accuracy

    L.seed_everything(0)  # lr 0: the weights stay as they are, so the epoch's figures can be recomputed at once
    model = zoo.create("lenet5", num_classes=10, in_chans=1, image_size=16,
                       optimizer=functools.partial(torch.optim.SGD, lr=0.0))
    data = zoo.data.create("digits", image_size=16, augment="none", batch_size=100)  # 1,257: a last batch of 57
    trainer = _trainer(max_epochs=1)
    trainer.fit(model, data)
    x, y = data.normalized("train")
    with torch.no_grad():
        scores = model.eval()(x)
    metrics = trainer.callback_metrics
    assert float(metrics["train_loss_epoch"]) == pytest.approx(torch.nn.functional.cross_entropy(scores, y).item(),
                                                               rel=1e-5)
    assert float(metrics["train_acc"]) == pytest.approx(multiclass_accuracy(scores, y, 10, average="micro").item())
    assert float(metrics["train_acc5"]) == pytest.approx(
        multiclass_accuracy(scores, y, 10, top_k=5, average="micro").item())


def test_a_whole_number_of_batches_is_a_count_and_1_0_is_all_of_them(tmp_path, monkeypatch):
    """``--trainer.limit_train_batches 1`` is one batch, as ``Trainer(limit_train_batches=1)`` takes it, from the
    command line, zoo.fit's options and a config file alike; ``1.0`` is every batch (jsonargparse alone read "1" as
    1.0: Lightning's annotation reads Union[float, int, None] here)."""
    monkeypatch.chdir(tmp_path)
    short = ["--trainer.max_epochs", "1", "--trainer.limit_val_batches", "1", "--trainer.limit_test_batches", "1",
             "--trainer.enable_progress_bar", "false"]
    one = zoo.fit("lenet5", "digits", [*short, "--trainer.limit_train_batches", "1"])
    assert one.trainer.global_step == 1 and one.trainer.num_val_batches == [1]
    options = {"trainer.max_epochs": 1, "trainer.limit_train_batches": 1, "trainer.limit_val_batches": 1}
    assert zoo.fit("lenet5", "digits", options).trainer.global_step == 1  # Python's 1
    every = zoo.fit("lenet5", "digits", [*short, "--trainer.limit_train_batches", "1.0"])
    assert every.trainer.global_step == every.trainer.num_training_batches > 1
    config = tmp_path / "short.yaml"
    config.write_text("trainer:\n  limit_train_batches: 1\n  limit_val_batches: 1.0\n")
    from_file = zoo.fit("lenet5", "digits", ["--trainer.max_epochs", "1", "--trainer.enable_progress_bar", "false"],
                        config=config)
    assert from_file.trainer.global_step == 1 and from_file.trainer.num_val_batches[0] > 1
    again = zoo.fit(config=from_file.log_dir / "config.yaml", options=["--trainer.enable_progress_bar", "false"])
    assert again.trainer.global_step == 1  # the run's own config.yaml re-runs it as it ran
