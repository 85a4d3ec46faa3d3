"""The `zoo` command end to end, in subprocesses, as a user runs it."""

import re

import pytest
import torch
import yaml

import zoo
from tests.conftest import run_zoo, zoo_here


@pytest.fixture(scope="module")
def fitted(tmp_path_factory):
    """One real `zoo fit` on digits, shared by the tests that read what it left."""
    cwd = tmp_path_factory.mktemp("fit")
    proc = run_zoo("fit", "--model", "lenet5", "--data", "digits", "--trainer.max_epochs", "12", cwd=cwd)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return cwd, proc


def test_fit_trains_tests_and_leaves_a_run_directory(fitted):
    cwd, proc = fitted
    run = cwd / "runs" / "lenet5-digits" / "version_0"
    for name in ("config.yaml", "metrics.csv", "checkpoints/best.ckpt", "checkpoints/last.ckpt"):
        assert (run / name).is_file(), name
    accuracy = float(re.search(r"^test accuracy: ([\d.]+)%", proc.stdout, re.M).group(1))
    assert accuracy > 90.0  # chance is 10 %
    assert re.search(r"^best validation accuracy: [\d.]+%  checkpoint: .*best.ckpt$", proc.stdout, re.M)
    assert f"re-run: zoo fit --config {run.relative_to(cwd) / 'config.yaml'}" in proc.stdout
    # off a terminal, zoo's progress bar prints one line per epoch instead of redrawing a bar into the pipe
    epochs = re.findall(r"^epoch (\d+)/12  [\d.]+ s  train loss [\d.]+ acc [\d.]+ %  val loss [\d.]+ acc [\d.]+ %$",
                        proc.stdout, re.M)
    assert epochs == [str(e) for e in range(1, 13)] and "\r" not in proc.stdout and "it/s" not in proc.stdout

    # the printed test accuracy is the best checkpoint's, recomputed here without the CLI
    model = zoo.ImageClassifier.load_from_checkpoint(run / "checkpoints" / "best.ckpt").eval()
    data = zoo.data.create("digits")
    x, y = data.normalized("test")
    with torch.no_grad():
        mine = (model(x).argmax(1) == y).float().mean().item() * 100
    assert mine == pytest.approx(accuracy, abs=0.01)


def test_test_subcommand_rebuilds_the_model_from_the_checkpoint(fitted):
    cwd, proc = fitted
    best = cwd / "runs" / "lenet5-digits" / "version_0" / "checkpoints" / "best.ckpt"
    again = zoo_here("test", "--ckpt_path", str(best), cwd=cwd)  # no --model: it comes from the checkpoint
    assert again.returncode == 0, again.stderr[-3000:]
    other = zoo_here("fit", "--model", "resnet20", "--ckpt_path", str(best), cwd=cwd)
    assert other.returncode == 2 and other.stderr.strip().splitlines()[-1] == (
        f"zoo: error: the checkpoint {best} holds a lenet5, but --model resnet20 was given; leave --model out (the "
        "checkpoint's model is rebuilt) or give a checkpoint of a resnet20")
    tested = float(re.search(r"^test accuracy: ([\d.]+)%", again.stdout, re.M).group(1))  # as fit prints it
    printed = float(re.search(r"test accuracy: ([\d.]+)%", proc.stdout).group(1))
    assert tested == pytest.approx(printed, abs=0.01)
    assert "test_acc " not in again.stdout and "dirpath has changed" not in again.stderr  # no fractions, no warning
    run = cwd / "runs" / "lenet5-digits"
    assert sorted(p.name for p in run.iterdir()) == ["version_0"]  # no version_1 among the training runs
    assert (run / "version_0" / "test" / "version_0" / "metrics.csv").is_file()  # beside the checkpoint's run


def test_saved_config_reruns_the_same_job(fitted):
    cwd, _ = fitted
    config = cwd / "runs" / "lenet5-digits" / "version_0" / "config.yaml"
    saved = yaml.safe_load(config.read_text())
    assert saved["model"]["class_path"] == "zoo.train.lenet5"
    assert saved["data"]["class_path"] == "zoo.data.digits.DigitsDataModule"
    assert saved["trainer"]["max_epochs"] == 12 and saved["seed_everything"] == 0
    assert saved["trainer"]["logger"]["init_args"]["version"] is None  # the re-run claims a folder of its own
    proc = zoo_here("fit", "--config", str(config), "--trainer.max_epochs", "1", cwd=cwd)
    assert proc.returncode == 0, proc.stderr[-3000:]
    rerun = yaml.safe_load((cwd / "runs" / "lenet5-digits" / "version_1" / "config.yaml").read_text())
    assert rerun["model"] == saved["model"]
    assert rerun["data"]["init_args"] == saved["data"]["init_args"]
    assert _import(rerun["data"]["class_path"]) is _import(saved["data"]["class_path"]) is zoo.data.DigitsDataModule
    assert yaml.safe_load(config.read_text()) == saved  # the first run's folder is left as it was


def _import(path: str):
    import importlib

    module, name = path.rsplit(".", 1)
    return getattr(importlib.import_module(module), name)


def test_print_config_shows_net_arguments_and_links(tmp_path):
    proc = zoo_here("fit", "--model", "mlp", "--model.hidden", "[32]", "--model.dropout", "0.2",
                   "--data", "digits", "--data.image_size", "16", "--print_config", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    config = yaml.safe_load(proc.stdout)
    model = config["model"]
    assert model["class_path"] == "zoo.train.mlp"
    assert model["init_args"]["hidden"] == [32] and model["init_args"]["dropout"] == 0.2
    assert "num_classes" not in model["init_args"]  # linked from the data, never typed twice
    assert config["data"]["init_args"]["image_size"] == 16
    assert not (tmp_path / "runs").exists()


def test_a_chosen_class_keeps_its_own_defaults(tmp_path):
    """The default model and data must not lend their arguments to the ones a user picks."""
    proc = zoo_here("fit", "--model", "mlp", "--data", "cluttered_digits", "--print_config", cwd=tmp_path)
    config = yaml.safe_load(proc.stdout)
    assert config["model"]["init_args"]["activation"] is None  # unset: mlp builds its own relu, not lenet5's tanh
    assert config["data"]["init_args"]["augment"] == "none"  # digits' default is crop


def test_model_help_lists_the_nets_own_arguments(tmp_path):
    proc = zoo_here("fit", "--model.help", "mlp", cwd=tmp_path)
    assert proc.returncode == 0
    assert "--model.hidden" in proc.stdout and "widths of the hidden layers" in proc.stdout
    # the generated arguments default to None (unset); the help says what the net is built with then
    assert "(unset: [256, 128], or what zoo's weights were made with)" in " ".join(proc.stdout.split())
    assert "--model.loss" in proc.stdout


@pytest.mark.parametrize("args, message", [
    (["fit", "--model", "resnt18"], "unknown model 'resnt18'; did you mean 'resnet18'? see: zoo models"),
    (["fit", "--model", "qqq"], "unknown model 'qqq'; see: zoo models"),
    (["fit", "--model", "lenet"], "unknown model 'lenet'; did you mean 'lenet5'? see: zoo models"),
    (["fit", "--data", "digts"], "unknown dataset 'digts'; did you mean 'digits'? see: zoo data list"),
    (["test", "--ckpt_path", "missing.ckpt"], "checkpoint 'missing.ckpt' does not exist"),
    (["test", "--ckpt_path", "corrupt.ckpt"], "checkpoint 'corrupt.ckpt' cannot be read"),
    (["fit", "--data.image_size", "8"], "model 'lenet5' needs inputs of at least 16x16 pixels, got image_size=8"),
    (["info", "lenet"], "unknown model 'lenet'; did you mean 'lenet5'?"),
    (["fit", "--data", "mnist", "--data.download", "false", "--data.data_dir", "nowhere"],
     "no copy of MNIST in nowhere/MNIST/raw, nowhere, and download=False; get one: (1) download=True"),
    (["frobnicate"], "unknown command 'frobnicate'"),
    (["fit", "--model.num_classes", "5"], "--model.num_classes 5 contradicts the data, which gives num_classes=10"),
    (["fit", "--model.in_chans=3"], "--model.in_chans 3 contradicts the data, which gives in_chans=1"),
    (["data", "show", "mnist", "--set", "data_dir=nowhere", "--set", "download=false"],  # repeated --set adds up
     "no copy of MNIST in nowhere/MNIST/raw, nowhere, and download=False"),
    # numbers (issue 38 part 6): each was a traceback, a 40 GB allocation or a config.yaml left behind
    (["fit", "--data.image_size", "100000"], "image_size must be an integer from 1 to 1024 (pixels a side), "
                                             "got 100000"),
    (["fit", "--trainer.max_epochs", "-5"], "`max_epochs` must be a non-negative integer or -1"),
    (["fit", "--model.optimizer.lr", "-1"], "the optimizer refuses its arguments: Invalid learning rate: -1"),
    (["fit", "--data.num_workers", "-1"], "num_workers must be an integer of 0 or more, got -1"),
    (["fit", "--config", "laughs.yaml"], "config file 'laughs.yaml' expands to more than 100,000 values through its "
                                         "YAML aliases"),
])
def test_bad_input_is_one_clear_line(tmp_path, monkeypatch, capsys, args, message):
    from zoo.cli import main

    (tmp_path / "corrupt.ckpt").write_bytes(b"\x80\x02 half a checkpoint")
    laughs = ["a: &a [lol, lol, lol, lol, lol, lol, lol, lol, lol, lol]"]  # "billion laughs": 10**9 values
    laughs += [f"{b}: &{b} [{', '.join(['*' + a] * 10)}]" for a, b in zip("abcdefgh", "bcdefghi", strict=True)]
    (tmp_path / "laughs.yaml").write_text("\n".join(laughs) + "\n")
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SystemExit) as exit_:
        main(args)
    assert exit_.value.code == 2
    assert capsys.readouterr().err.strip().splitlines()[-1].startswith(f"zoo: error: {message}")
    assert not (tmp_path / "runs").exists()  # stopped before anything was written


def test_fit_without_checkpointing_tests_the_last_weights(tmp_path, monkeypatch, capsys):
    """Lightning refuses enable_checkpointing=False beside a ModelCheckpoint; zoo leaves its own out."""
    from zoo.cli import main

    monkeypatch.chdir(tmp_path)
    main(["fit", "--model", "linear", "--data.image_size", "8", "--trainer.max_epochs", "1",
          "--trainer.enable_progress_bar", "false", "--trainer.enable_checkpointing", "false"])
    out = capsys.readouterr().out
    assert re.search(r"^test accuracy: [\d.]+%", out, re.M) and "checkpoint:" not in out
    assert (tmp_path / "runs").is_dir() and not list(tmp_path.rglob("*.ckpt"))


def test_bad_input_from_the_shell_has_no_traceback(tmp_path):
    proc = zoo_here("fit", "--model", "lenet", cwd=tmp_path)
    assert proc.returncode == 2
    assert proc.stderr.strip() == "zoo: error: unknown model 'lenet'; did you mean 'lenet5'? see: zoo models"


def test_models_and_info(tmp_path, capsys):
    from zoo.cli import main

    proc = run_zoo("models", cwd=tmp_path)  # the real command once; the rest in this process (no import each time)
    assert proc.returncode == 0
    lines = proc.stdout.splitlines()
    assert lines[0].split() == ["model", "family", "params", "MACs", "input", "min", "paper"]
    assert {line.split()[0] for line in lines[2:] if line and not line.startswith("plugins")} == set(
        zoo.list_models(exclude="*/*"))
    assert re.search(r"^lenet5\s+lenet\s+61\.71K\s+416\.52K\s+1x32x32\s+16\s+LeCun", proc.stdout, re.M)
    main(["models", "l*", "--exclude", "lin*"])
    assert [line.split()[0] for line in capsys.readouterr().out.splitlines()[2:]] == ["lenet5"]
    main(["info", "lenet5"])
    out = capsys.readouterr().out
    assert re.search(r"^params\s+61,706$", out, re.M)
    assert re.search(r"^--model.activation\s+'tanh'$", out, re.M)


def test_overview_help(tmp_path):
    proc = run_zoo("--help", cwd=tmp_path)
    assert proc.returncode == 0
    for command in ("fit", "validate", "test", "predict", "models", "info"):
        assert re.search(rf"^\s+{command}\s", proc.stdout, re.M)


def test_version_and_a_reader_that_stops_early(tmp_path, capsys):
    """``zoo --version``/``-V`` as every command-line tool has it; ``zoo models | head -1`` ends without a
    BrokenPipeError traceback (exit 141, as a tool ended by a closed pipe)."""
    import subprocess

    from tests.conftest import ZOO
    from zoo.cli import main

    for flag in ("--version", "-V"):
        main([flag])
        assert capsys.readouterr().out.startswith(f"zoo {zoo.__version__} (lightning-zoo; Python ")
    done = subprocess.run(f"'{ZOO}' models | head -1", shell=True, cwd=tmp_path, capture_output=True, text=True,
                          timeout=120)
    assert done.stdout.split() == ["model", "family", "params", "MACs", "input", "min", "paper"]
    assert done.stderr == ""  # no traceback


def test_a_config_by_name_or_path_and_a_missing_one(tmp_path, monkeypatch, capsys):
    """A shipped config's name reads the shipped file, with a one-line warning when the folder has a file of that
    name; zoo's display of warnings lasts the command, not the process."""
    import warnings

    from zoo.cli import main
    from zoo.configs import FOLDER

    monkeypatch.chdir(tmp_path)
    (tmp_path / "digits").write_text("not read\n")
    shown = warnings.showwarning
    with pytest.raises(SystemExit):  # --print_config prints and exits
        main(["fit", "--config", "digits", "--print_config"])
    assert warnings.showwarning is shown
    captured = capsys.readouterr()
    assert [line for line in captured.err.splitlines() if "digits" in line] == [
        f"zoo: warning: config 'digits' is zoo's shipped config ({FOLDER / 'digits.yaml'}); the file 'digits' in this "
        "folder is not read (give ./digits for it)"]
    shipped = yaml.safe_load(captured.out)
    assert shipped["model"]["class_path"].endswith("densenet_bc100") and shipped["trainer"]["max_epochs"] == 20
    (tmp_path / "mine.yaml").write_text("trainer:\n  max_epochs: 3\n")
    with pytest.raises(SystemExit):
        main(["fit", "-c", "mine.yaml", "--print_config"])
    assert yaml.safe_load(capsys.readouterr().out)["trainer"]["max_epochs"] == 3
    for given in ("nosuch.yaml", "nosuch"):
        with pytest.raises(SystemExit) as exit_:
            main(["fit", "--config", given])
        assert exit_.value.code == 2
        assert capsys.readouterr().err.strip() == (
            f"zoo: error: config file '{given}' does not exist; give the path of a YAML file, or the name of a "
            "shipped config: digits, fashion_mnist, fashion_mnist_fast")


def test_a_plugin_style_name_with_a_slash_trains_from_the_cli(tmp_path, monkeypatch, capsys):
    """Plugins register names like timm/resnet18; the CLI maps them to importable class paths."""
    from torch import nn

    from zoo.cli import main
    from zoo.registry import MODELS

    def builder(num_classes: int = 10, in_chans: int = 1, image_size: int = 8) -> nn.Module:
        return nn.Sequential(nn.Flatten(), nn.Linear(in_chans * image_size ** 2, num_classes))

    zoo.register_model(builder, name="tst/net", family="test", input_size=(1, 8, 8))
    monkeypatch.chdir(tmp_path)
    try:
        main(["fit", "--model", "tst/net", "--data.image_size", "8", "--trainer.max_epochs", "1",
              "--trainer.enable_progress_bar", "false"])
    finally:
        MODELS._entries.pop("tst/net")
    assert re.search(r"^test accuracy: [\d.]+%", capsys.readouterr().out, re.M)
    run = tmp_path / "runs" / "tst_net-digits" / "version_0"
    assert yaml.safe_load((run / "config.yaml").read_text())["model"]["class_path"] == "zoo.train.tst_net"
    from zoo.checkpoint import read_checkpoint

    assert read_checkpoint(run / "checkpoints" / "best.ckpt")["hyper_parameters"]["model"] == "tst/net"


@pytest.mark.parametrize("args, message", [
    (["fit", "--model", "mlp", "--model.hiden", "64"],
     "zoo: error: --model.hiden is not an option of mlp; did you mean --model.hidden? see: zoo fit --help"),
    (["fit", "--data.batchsize", "3"], "zoo: error: --data.batchsize is not an option of DigitsDataModule; did you "
                                       "mean --data.batch_size? see: zoo fit --help"),
    (["fit", "--trainer.max_epohcs", "3"],
     "zoo: error: unknown option --trainer.max_epohcs; did you mean --trainer.max_epochs? see: zoo fit --help"),
    (["fit", "--trainer.max_epochs", "abc"],
     "zoo: error: --trainer.max_epochs: expected one of [int, NoneType], got abc; see: zoo fit --help"),
    (["fit", "--model", "mlp", "--model.hidden", "x"],
     "zoo: error: --model.hidden: expected one of [list[int], NoneType], got x; see: zoo fit --help"),
    (["fit", "--trainer.logger", "WandbLogger"],
     "zoo: error: WandbLogger needs the package wandb>=0.12.10: pip install 'wandb>=0.12.10'"),
])
def test_option_typos_and_missing_packages_are_one_line(tmp_path, monkeypatch, capsys, args, message):
    """Not 79 lines of usage or a 96-line traceback: the option, the closest valid one, where to look."""
    from zoo.cli import main

    monkeypatch.chdir(tmp_path)
    with pytest.raises(SystemExit) as exit_:
        main(args)
    err = capsys.readouterr().err.strip().splitlines()
    assert exit_.value.code == 2 and err[-1] == message and "usage:" not in "\n".join(err), err


def test_tensorboard_logger_works_after_the_readme_install(tmp_path):
    result = zoo_here("fit", "--trainer.logger", "TensorBoardLogger", "--trainer.max_epochs", "1", cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-2000:]
    run = tmp_path / "runs" / "lenet5-digits" / "version_0"
    assert list(run.glob("events.out.tfevents.*")) and (run / "checkpoints" / "best.ckpt").is_file()


def test_no_logger_keeps_the_run_folder_layout(tmp_path):
    """--trainer.logger false wrote checkpoints/ and config.yaml into the current folder."""
    result = zoo_here("fit", "--trainer.logger", "false", "--trainer.max_epochs", "1", cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-2000:]
    run = tmp_path / "runs" / "lenet5-digits" / "version_0"
    assert (run / "checkpoints" / "best.ckpt").is_file() and (run / "config.yaml").is_file()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["runs"]
    assert result.stdout.strip().splitlines()[-1] == "re-run: zoo fit --config runs/lenet5-digits/version_0/config.yaml"


def test_old_flag_spellings_are_gone(tmp_path, monkeypatch, capsys):
    """0.1.0 took the old spellings (--batch-size, --img-size, --data-arg, ...) with a warning that they would go in
    the next release: they are argparse's error now."""
    from zoo.cli import main

    monkeypatch.chdir(tmp_path)
    with pytest.raises(SystemExit) as exit_:
        main(["predict", "--ckpt_path", "missing.ckpt", "--batch-size", "4"])
    assert exit_.value.code == 2 and "unrecognized arguments: --batch-size 4" in capsys.readouterr().err


def test_progress_bar_redraws_by_time_and_shows_short_metrics(monkeypatch):
    """At most 10 redraws a second (Lightning's bar redrew every batch), the last batch always; two metrics."""
    from zoo.callbacks import ProgressBar

    bar = ProgressBar(refresh_seconds=0.1)
    bar.terminal = True
    clock = iter([0.0, 0.05, 0.09, 0.12, 0.13, 0.2])
    monkeypatch.setattr("zoo.callbacks.time.monotonic", lambda: next(clock))
    assert [bar._should_update(n, 100) for n in (1, 2, 3, 4, 5, 100)] == [True, False, False, True, False, True]

    class Trainer:
        progress_bar_metrics = {"train_loss_step": 1.23456, "train_acc": 0.5, "val_loss": 0.3, "val_acc": 0.91234}
        loggers = []

    shown = bar.get_metrics(Trainer(), None)
    assert shown == {"loss": "1.235", "val_acc": "91.23%"}


def test_epochs_are_counted_from_one_and_the_stop_line_follows_the_last_epoch(tmp_path, capsys):
    """The terminal bar read ``Epoch 2`` on the last of 3 epochs while the printed lines said ``epoch 3/3``, and
    Lightning's ```Trainer.fit` stopped`` line came before the last epoch's line (on the bar's, in a terminal)."""
    import logging
    import sys

    import lightning as L

    from zoo.callbacks import ProgressBar

    bar = ProgressBar()
    bar.terminal = True  # drawn as in a terminal, into the captured stdout
    handler = logging.StreamHandler(sys.stdout)  # Lightning's lines beside the printed ones, in their order
    logger = logging.getLogger("lightning.pytorch")
    logger.addHandler(handler)
    level, logger.level = logger.level, logging.INFO

    def fit(epochs: int) -> str:
        L.Trainer(max_epochs=epochs, limit_train_batches=2, limit_val_batches=1, callbacks=[bar], logger=False,
                  enable_checkpointing=False, enable_model_summary=False, default_root_dir=tmp_path).fit(
            zoo.create("linear", num_classes=10, in_chans=1, image_size=8), zoo.data.create("digits", image_size=8))
        return capsys.readouterr().out

    try:
        drawn = fit(3)
        bar.terminal = False  # and as the lines printed into a pipe
        printed = fit(2)
    finally:
        logger.removeHandler(handler)
        logger.level = level
    assert "epoch 3/3: 100%" in drawn and "Epoch " not in drawn  # the bar's label (on stdout, as Lightning's)
    assert printed.count("`Trainer.fit` stopped: `max_epochs=") == 1  # held back, then let through
    assert "epoch 3/3" not in printed and printed.count("epoch 2/2 ") == 1
    assert printed.index("epoch 2/2 ") < printed.index("`Trainer.fit` stopped: `max_epochs=2`")
    assert logging.getLogger("lightning.pytorch.utilities.rank_zero").filters == []  # nothing left behind


def test_the_commands_choices_are_the_librarys():
    """cli.py lists them itself so that `zoo cam --help` needs no torch; they must not drift apart."""
    from zoo import cam, cli, export

    assert cli.CAM_METHODS == cam.METHODS and cli.EXPORT_FORMATS == export.FORMATS
