"""zoo.fit: the library call behind ``zoo fit`` (fit, test the best checkpoint, return the result)."""

import pytest
import yaml

import zoo
from zoo.checkpoint import read_checkpoint


def test_fit_from_python_trains_tests_and_leaves_a_rerunnable_run(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    result = zoo.fit("lenet5", "digits", {"trainer.max_epochs": 3, "trainer.enable_progress_bar": False,
                                          "model.optimizer.lr": 0.003})
    assert not result.interrupted and result.epochs == 3
    assert result.test_acc is not None and result.test_acc > 0.8  # real digits; chance is 10 %
    # one unit per name: *_acc are fractions as Lightning logs them, *_top1 the same in percent
    assert result.test_acc == result.test_metrics["test_acc"] == pytest.approx(result.test_top1 / 100)
    assert 0 < result.best_val_acc <= 1 and result.best_val_top1 == pytest.approx(100 * result.best_val_acc)
    assert set(result.test_metrics) >= {"test_acc", "test_acc5", "test_loss"}
    assert result.checkpoint.resolve() == (tmp_path / "runs/lenet5-digits/version_0/checkpoints/best.ckpt").resolve()
    assert result.checkpoint.is_file()
    config = yaml.safe_load((result.log_dir / "config.yaml").read_text())
    assert config["model"]["class_path"] == "zoo.train.lenet5"
    assert config["model"]["init_args"]["optimizer"]["init_args"]["lr"] == 0.003
    assert config["trainer"]["max_epochs"] == 3


def test_fit_takes_command_line_arguments_and_a_config(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    config = tmp_path / "base.yaml"
    config.write_text("trainer:\n  max_epochs: 1\n  enable_progress_bar: false\n")
    result = zoo.fit("mlp", "digits", ["--model.hidden", "[32]"], config=config)
    saved = yaml.safe_load((result.log_dir / "config.yaml").read_text())
    assert saved["model"]["init_args"]["hidden"] == [32] and saved["trainer"]["max_epochs"] == 1
    assert result.epochs == 1 and result.test_acc > 0.3


def test_configs_saved_before_zoo_train_still_name_their_classes():
    """Runs saved by earlier versions say ``class_path: zoo.cli.lenet5`` and ``zoo.cli.RunLogger``."""
    import zoo.cli
    import zoo.train

    assert zoo.cli.lenet5 is zoo.train.lenet5 and zoo.cli.RunLogger is zoo.train.RunLogger


def test_zoos_trainer_profiles_nothing_unless_asked_and_keeps_lightnings_checkpoint_key(tmp_path, monkeypatch):
    """The default profiler is a shared no-op (Lightning's pass-through one costs a generator context per hook and
    callback); ``--trainer.profiler simple`` still profiles. zoo's checkpoint keeps Lightning's ``state_key`` (its
    state in checkpoints is filed under it), cached, and follows its settings when they change."""
    from lightning.pytorch.callbacks import ModelCheckpoint
    from lightning.pytorch.profilers import SimpleProfiler

    from zoo.callbacks import Checkpoint, NoProfiler
    from zoo.train import run_lightning

    monkeypatch.chdir(tmp_path)
    short = ["fit", "--trainer.max_epochs", "1", "--trainer.limit_train_batches", "2", "--trainer.limit_val_batches",
             "2", "--trainer.limit_test_batches", "2", "--trainer.enable_progress_bar", "false"]
    cli = run_lightning(short)
    assert type(cli.trainer.profiler) is NoProfiler
    with cli.trainer.profiler.profile("a"), cli.trainer.profiler.profile("b"):  # nested, as Lightning's hooks are
        pass
    checkpoint = cli.trainer.checkpoint_callback
    assert isinstance(checkpoint, Checkpoint)
    assert checkpoint.state_key == ModelCheckpoint.state_key.fget(checkpoint)
    assert checkpoint.state_key in read_checkpoint(cli.result.checkpoint)["callbacks"]
    checkpoint.monitor = "val_loss"
    assert "val_loss" in checkpoint.state_key and checkpoint.state_key == ModelCheckpoint.state_key.fget(checkpoint)
    profiled = run_lightning([*short, "--trainer.profiler", "simple"])
    assert isinstance(profiled.trainer.profiler, SimpleProfiler)
