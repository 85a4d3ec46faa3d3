"""Habits a user brings from timm, torchvision and Lightning: each does what it does there, or is one line saying
what to do instead; never something else in silence."""

import pytest

import zoo
from tests.conftest import zoo_here
from zoo.errors import InputError, UnknownNameError, ZooError


def last_error(result) -> str:
    assert result.returncode == 2 and "Traceback" not in result.stderr, result.stderr[-3000:]
    return result.stderr.strip().splitlines()[-1]


@pytest.mark.parametrize("args, message", [
    (["--optimizer", "SGD"], "--optimizer is LightningCLI's and would replace zoo's optimizer setup (its parameter "
     "groups: no weight decay on biases and norms, fine-tuning's rates, bias_lr_scale); give --model.optimizer SGD "
     "instead"),
    (["--lr_scheduler", "StepLR", "--lr_scheduler.step_size", "3"],
     "--lr_scheduler is LightningCLI's and would replace zoo's optimizer setup (its parameter groups: no weight decay "
     "on biases and norms, fine-tuning's rates, bias_lr_scale); give --model.lr_scheduler StepLR instead"),
])
def test_lightnings_optimizer_options_are_refused_for_zoos(tmp_path, args, message):
    """LightningCLI's --optimizer replaced configure_optimizers: 1 parameter group instead of zoo's 8."""
    result = zoo_here("fit", "--trainer.max_epochs", "1", *args, cwd=tmp_path)
    assert last_error(result) == f"zoo: error: {message}"
    assert not (tmp_path / "runs").exists()


@pytest.mark.parametrize("args, message", [
    (["--trainer.max_epoch", "3"], "unknown option --trainer.max_epoch; did you mean --trainer.max_epochs?"),
    (["--trainer.max_ep", "3"], "unknown option --trainer.max_ep; did you mean --trainer.max_epochs?"),
    (["--modle", "mlp"], "unknown option --modle; did you mean --model?"),
    (["--seed", "1"], "unknown option --seed; did you mean --seed_everything?"),
])
def test_a_misspelt_or_shortened_option_is_an_error_never_a_guess(tmp_path, args, message):
    """argparse's allow_abbrev took --trainer.max_epoch for --trainer.max_epochs."""
    assert last_error(zoo_here("fit", *args, cwd=tmp_path)) == f"zoo: error: {message} see: zoo fit --help"


def test_a_shortened_option_from_python_is_an_error_too(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(InputError, match="unknown option --trainer.max_epoch; did you mean --trainer.max_epochs?"):
        zoo.fit("lenet5", "digits", {"trainer.max_epoch": 1})


def test_a_model_option_before_its_model_says_so(tmp_path):
    assert last_error(zoo_here("fit", "--model.hiden", "64", "--model", "mlp", cwd=tmp_path)) == (
        "zoo: error: --model.hiden comes before --model mlp: give --model first (did you mean --model.hidden?); see: "
        "zoo fit --help")


def test_a_misspelt_datamodule_argument_from_python_suggests_the_right_one():
    with pytest.raises(InputError, match=r"dataset 'digits' has no argument 'batchsize'; did you mean 'batch_size'\? "
                                         r"it takes: image_size, .*\(see: zoo data list\)"):
        zoo.data.create("digits", batchsize=32)
    with pytest.raises(InputError, match="model 'lenet5' has no argument 'num_clases'; did you mean 'num_classes'?"):
        zoo.create("lenet5", num_clases=3)


def test_a_plugin_name_without_its_plugin_says_what_to_install(monkeypatch):
    from zoo.registry import MODELS

    monkeypatch.setattr(type(MODELS), "plugins", lambda self: [])
    with pytest.raises(UnknownNameError, match=r"unknown model 'timm/resnet1': timm/ names come from the plugin "
                                               r"zoo-timm, which is not installed; install it: pip install -e "
                                               r"plugins/zoo-timm"):
        MODELS.get("timm/resnet1")


def test_pretrained_on_a_timm_net_asks_timm_for_its_own_weights(monkeypatch):
    """Not "has no pretrained zoo weights": timm's own, which offline is one line saying how to get them."""
    import huggingface_hub.constants

    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)  # no 40 s of retries here
    from zoo.weights import pretrained_source

    assert (pretrained_source("timm/resnet18"), pretrained_source("tv/efficientnet_b0")) == (
        "timm:", "torchvision:DEFAULT")
    with pytest.raises(ZooError, match="cannot fetch timm's pretrained weights 'resnet18' .*HF_HUB_OFFLINE"):
        zoo.create_model("timm/resnet18", pretrained=True)


def test_zoos_notes_are_logged_for_a_program_and_shown_by_the_command(tmp_path, capsys, caplog):
    """``zoo.create(weights=...)`` printed "zoo: loaded ..." into every program that called it."""
    import logging

    with caplog.at_level(logging.INFO, logger="zoo"):
        zoo.create("lenet5", weights="zoo:fashion_mnist")
    assert capsys.readouterr() == ("", "")  # a program that configures no logging sees nothing
    assert "loaded zoo:fashion_mnist" in caplog.messages
    result = zoo_here("fit", "--model", "lenet5", "--model.weights", "zoo:fashion_mnist", "--trainer.max_epochs", "1",
                      "--trainer.limit_train_batches", "2", cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "zoo: loaded zoo:fashion_mnist" in result.stderr and "zoo: normalizing as zoo:fashion_mnist" in result.stderr
    assert "will override existing callbacks" not in result.stderr  # the test after the fit: one normalization


def test_the_overfit_recipe_and_cross_validation_say_each_thing_once(tmp_path):
    result = zoo_here("fit", "--model", "lenet5", "--data.augment", "none", "--trainer.overfit_batches", "1",
                      "--trainer.max_epochs", "2", cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "shuffling" not in result.stderr and "logging interval" not in result.stderr
    result = zoo_here("cv", "--folds", "2", "--trainer.max_epochs", "1", "--trainer.limit_train_batches", "2",
                      cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stderr.count("GPU available") == 1 and result.stderr.count("Total params") == 1
    assert result.stdout.count("test accuracy") == 2  # each fold still reports


def test_zoo_fit_help_fits_a_screen_or_two_and_help_all_has_every_option(tmp_path):
    """763 lines (50 KB) of mostly Trainer options, a raw group heading and a sentence cut at "The main advantage is:";
    --data listed no dataset."""
    short = zoo_here("fit", "--help", cwd=tmp_path)
    assert short.returncode == 0, short.stderr[-2000:]
    lines = short.stdout.splitlines()
    assert len(lines) < 120 and lines[0].startswith("usage: zoo fit [--config CONFIG] [--model NAME] [--data NAME]")
    text = short.stdout
    for wanted in ("--model NAME", "resnet20", "--model.weights SOURCE", "fashion_mnist, folder, mnist",
                   "--finetune.strategy", "--trainer.precision", "--ckpt_path", "zoo fit --help_all"):
        assert wanted in text, wanted
    assert "--trainer.max_epochs MAX_EPOCHS" in text and "(default: 60)" in text  # zoo's default, not Lightning's
    for unwanted in ("known subclasses", "(<class", "main advantage", "--trainer.model_registry", "--optimizer CONFIG"):
        assert unwanted not in text, unwanted
    everything = zoo_here("fit", "--help_all", cwd=tmp_path).stdout
    assert len(everything.splitlines()) > 500 and "--trainer.model_registry" in everything
    assert "(<class" not in everything and "main advantage" not in everything
    assert "LightningCLI's --optimizer, which zoo refuses: give --model.optimizer:" in everything


def test_the_leaderboards_labels_overlap_no_label_and_no_marker(tmp_path):
    """The converged board's throughput plot wrote googlenet_s, densenet_bc40_s and alexnet_s over each other."""
    import shutil

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from tests.conftest import ROOT
    from zoo import bench
    from zoo.bench.report import _label_offsets

    board = bench.leaderboard(bench.read_rows(ROOT / "benchmarks" / "results" / "fashion_mnist" / bench.RESULTS))
    for column in ("infer_samples_per_sec", "param_count"):
        shown = [e for e in board if (e[column] or 0) > 0]
        fig, ax = plt.subplots(figsize=(8, 5.5))
        ax.errorbar([e[column] for e in shown], [e["top1"] for e in shown], fmt="o")
        ax.set_xscale("log")
        ax.margins(x=0.12, y=0.08)
        fig.tight_layout()
        points = [(e[column], e["top1"]) for e in shown]
        offsets = _label_offsets(ax, points, [e["model"] for e in shown])
        texts = [ax.annotate(e["model"], p, textcoords="offset points", xytext=(dx, dy), fontsize=9, va="bottom")
                 for e, p, (dx, dy, _) in zip(shown, points, offsets, strict=True)]
        fig.canvas.draw()
        boxes = [t.get_window_extent() for t in texts]
        markers = [ax.transData.transform(p) for p in points]
        for i, a in enumerate(boxes):
            assert not any(a.overlaps(b) for b in boxes[i + 1:]), (column, shown[i]["model"])
            assert not any(a.contains(x, y) for x, y in markers), (column, shown[i]["model"])
        plt.close(fig)
    for name in (bench.RESULTS, bench.CURVES, bench.REFERENCES):
        shutil.copy(ROOT / "benchmarks" / "results" / "fashion_mnist" / name, tmp_path / name)
    bench.render(tmp_path)
    assert '<p class="notes">Published: vgg16_bn_s: VGG16, 26M parameters;' in (tmp_path / "index.html").read_text()


def test_zoo_models_fits_a_terminal(tmp_path):
    result = zoo_here("models", cwd=tmp_path)
    assert result.returncode == 0 and max(map(len, result.stdout.splitlines())) <= 120
    assert "Krizhevsky et al. 2012" in result.stdout and "ImageNet Classification" not in result.stdout
    assert "ImageNet Classification with Deep Convolutional" in zoo_here("info", "alexnet", cwd=tmp_path).stdout
