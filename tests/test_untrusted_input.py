"""What a hostile or careless user gives zoo: results files, signals, option values, damaged images, names with
``$`` or control characters, files that shadow shipped names, edited checkpoints, odd config files, a runs folder
in the way, edited caches. Each is one line that says what to do, never a traceback, a lost result or a file
written where it should not be."""

import io
import json
import os
import shutil
import signal
import subprocess
import threading
import time
from pathlib import Path

import lightning as L
import numpy as np
import pytest
import torch
import yaml
from PIL import Image

import zoo
from tests.conftest import ZOO, zoo_here
from zoo import bench
from zoo.checkpoint import CheckpointRecord
from zoo.configs import MAX_BYTES, config_argument, find
from zoo.errors import CheckpointError, InputError, one_line


@pytest.fixture
def lenet5(digits_lenet5):
    """The suite's shared LeNet-5 checkpoint (tests/conftest.py)."""
    return digits_lenet5


def digit_pngs(folder: Path, n: int, name: str = "{i}.png") -> list[Path]:
    """`n` real digit scans as 8x8 grey PNGs."""
    from sklearn.datasets import load_digits

    folder.mkdir(parents=True, exist_ok=True)
    images = load_digits().images[:n]
    paths = []
    for i, image in enumerate(images):
        paths.append(folder / name.format(i=i))
        Image.fromarray((image * 16).clip(0, 255).astype(np.uint8), "L").save(paths[-1])
    return paths


def image_that_fails_to_decode(path: Path) -> Path:
    """A BMP that PIL's verify() accepts and decoding refuses (ValueError: invalid palette size), as fuzzing one
    gives: its header's count of palette colours (at byte 46) changed from 256 to 395."""
    buffer = io.BytesIO()
    Image.fromarray(np.arange(256, dtype=np.uint8).reshape(16, 16)).save(buffer, "BMP")
    data = bytearray(buffer.getvalue())
    data[46:50] = (395).to_bytes(4, "little")
    path.write_bytes(bytes(data))
    with Image.open(path) as image:
        image.verify()  # passes: the scan of a folder keeps it
    return path


def last_error(result: subprocess.CompletedProcess) -> str:
    assert result.returncode == 2 and "Traceback" not in result.stderr, result.stderr[-3000:]
    return result.stderr.strip().splitlines()[-1]


# -- 1. the leaderboard page -----------------------------------------------------------------------


def test_a_results_file_writes_no_script_into_the_page_and_no_file_outside_its_folder(tmp_path):
    out = tmp_path / "a" / "b" / "out"
    evil = 'x"><svg onload=alert(1)>'
    rows = [{"suite": suite, "model": f"lenet5<script>alert({i})</script>", "dataset": dataset, "seed": "0",
             "config": "c", "status": "done", "top1": "90", "param_count": "0.06", "infer_samples_per_sec": "100"}
            for i, (suite, dataset) in enumerate([(evil, evil), ("../../x", "../../x")])]
    bench.append_rows(out / bench.RESULTS, bench.COLUMNS, rows)
    bench.render(out)
    page, md = (out / "index.html").read_text(), (out / "leaderboard.md").read_text()
    assert "<svg" not in page and "<script>alert" not in page and "&lt;svg onload=alert(1)&gt;" in page
    assert "<svg" not in md and "<script>" not in md
    written = sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*") if p.is_file())
    assert all(p.parts[:3] == ("a", "b", "out") for p in written), written  # nothing above --out
    assert len([p for p in written if p.suffix == ".png"]) == 6  # three pictures a section, each its own name


def test_a_suite_name_that_would_name_folders_outside_the_runs_is_refused(tmp_path):
    for name in ("../../x", "/tmp/x", ".hidden", "a/b"):
        suite = tmp_path / "s.yaml"
        suite.write_text(f"name: {json.dumps(name)}\nmodels: [lenet5]\ndatasets: [digits]\n")
        with pytest.raises(InputError, match="the suite's name .* must be letters, digits"):
            bench.load_suite(suite)


# -- 2. SIGTERM --------------------------------------------------------------------------------------


def test_sigterm_during_a_fit_exits_143_and_says_how_to_resume(tmp_path):
    """A scheduler's SIGTERM (or `zoo fit && zoo export`) must not take a stopped fit for a finished one."""
    child = subprocess.Popen([str(ZOO), "fit", "--trainer.max_epochs", "100000", "--trainer.enable_progress_bar",
                              "false"], cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                             env={**os.environ, "PYTHONUNBUFFERED": "1"})
    last = tmp_path / "runs" / "lenet5-digits" / "version_0" / "checkpoints" / "last.ckpt"
    deadline = time.monotonic() + 120
    while not last.is_file() and time.monotonic() < deadline and child.poll() is None:
        time.sleep(0.2)
    child.send_signal(signal.SIGTERM)
    out, err = child.communicate(timeout=120)
    assert child.returncode == 143, err[-3000:]
    assert err.strip().splitlines()[-1] == (
        f"zoo: error: the fit was stopped by SIGTERM before it ended; its last checkpoint is {last}: resume it "
        f"with zoo fit --config {last.parent.parent / 'config.yaml'} --ckpt_path last")
    assert "test accuracy" not in out
    CheckpointRecord.read(last)  # whole


# -- 3 and 11. option values and search bounds ----------------------------------------------------------


@pytest.mark.parametrize("args, message", [
    (["--model.optimizer.lr", "abc"], "--model.optimizer.lr: expected one of [float, torch.Tensor], got abc"),
    (["--model.optimizer.lr", "nan"], "--model.optimizer.lr: expected one of [float, torch.Tensor], got nan"),
    (["--model.optimizer.lr", "1e-3x"], "--model.optimizer.lr: expected one of [float, torch.Tensor], got 1e-3x"),
    (["--model.optimizer", "SGD", "--model.optimizer.lr", "inf"],
     "--model.optimizer.lr: expected one of [float, torch.Tensor], got inf"),
    (["--model.optimizer.weight_decay", "nan"], "--model.optimizer.weight_decay: Expected a float. Got value: nan"),
])
def test_a_bad_optimizer_value_is_one_line(tmp_path, args, message):
    assert last_error(zoo_here("fit", *args, cwd=tmp_path)) == f"zoo: error: {message}; see: zoo fit --help"


def test_a_bad_value_in_a_search_grid_fails_its_trial_only(tmp_path):
    from zoo.search import parse_grid, run_search

    rows = run_search(["--trainer.max_epochs", "1"], parse_grid(["model.optimizer.lr=abc,nan"]), [], 1, 0,
                      tmp_path / "search")
    assert [r["status"].split(":")[0] for r in rows] == ["failed", "failed"]
    assert "--model.optimizer.lr: expected one of" in rows[0]["status"]


@pytest.mark.parametrize("spec", ["uniform:nan:1", "uniform:0:inf", "loguniform:1e-5:inf", "int:-inf:3",
                                  "uniform:0:1e400"])
def test_random_search_bounds_must_be_finite(spec):
    from zoo.search import parse_random

    with pytest.raises(InputError, match="two finite numbers LOW:HIGH"):
        parse_random([f"model.optimizer.lr={spec}"])


# -- 4. images that fail to decode --------------------------------------------------------------------


def test_an_image_that_passes_verify_but_fails_to_decode_is_skipped_with_its_name(tmp_path, lenet5):
    from zoo.data.files import read_images
    from zoo.data.folder import ImageFiles, scan

    good = digit_pngs(tmp_path / "scans", 3)
    image_that_fails_to_decode(tmp_path / "scans" / "fuzzed.bmp")
    with pytest.warns(UserWarning, match=r"skipping '.*fuzzed.bmp' is not a readable image \(ValueError: invalid "
                                         r"palette size\)"):
        _, _, kept = read_images([tmp_path / "scans"], 8, 1, [0.5], [0.5])
    assert sorted(kept) == sorted(good)
    root = tmp_path / "classes"
    for c in ("a", "b"):
        digit_pngs(root / c, 2)
    image_that_fails_to_decode(root / "a" / "fuzzed.bmp")
    files, _ = scan(root, strict=False)
    assert root / "a" / "fuzzed.bmp" in files  # verify() passed: only decoding finds it
    dataset = ImageFiles(files, torch.arange(len(files)), lambda image: np.asarray(image), in_chans=1)
    with pytest.warns(UserWarning, match="fuzzed.bmp.*invalid palette size"):
        _, label = dataset[files.index(root / "a" / "fuzzed.bmp")]
    assert files[int(label)] != root / "a" / "fuzzed.bmp"  # the next image instead
    result = zoo_here("predict", "--ckpt_path", str(lenet5), "--images", str(tmp_path / "scans"), "--out",
                      str(tmp_path / "p.csv"), cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "3 images" in result.stdout and "fuzzed.bmp" in result.stderr


# -- 5 and 6. pictures: `$` in names, --n, grids a person can look at ---------------------------------------


def test_dollar_signs_in_file_and_class_names_are_drawn_and_n_is_honoured(tmp_path, lenet5):
    digit_pngs(tmp_path / "scans", 12, name="cost_${i}^$.png")
    result = zoo_here("cam", "--ckpt_path", str(lenet5), "--images", str(tmp_path / "scans"), "--n", "4",
                      "--out", str(tmp_path / "cams"), cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "gradcam maps of 4 images" in result.stdout
    width, height = Image.open(tmp_path / "cams" / "gradcam.png").size
    assert width > 3 * height  # one row of 4, not the 12 files in two rows of 8
    root = tmp_path / "classes"
    for c in ("a$x^$b", "c"):
        digit_pngs(root / c, 4)
    result = zoo_here("data", "show", "folder", "--set", f"data_dir={root}", "image_size=16", "num_workers=0",
                      "val_split=2", "test_split=2",
                      "--augment", "none", "--n", "6", "--out", str(tmp_path / "grid.png"), cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    assert (tmp_path / "grid.png").stat().st_size > 1000


def test_a_grid_holds_what_a_person_can_look_at(tmp_path, lenet5):
    result = zoo_here("data", "show", "fashion_mnist", "--n", "3000", "--out", str(tmp_path / "g.png"), cwd=tmp_path)
    assert last_error(result) == ("zoo: error: n=3000 images are more than one picture shows (256 at most, a 16 x 16 "
                                  "grid); give --n 256 or fewer")
    result = zoo_here("cam", "--ckpt_path", str(lenet5), "--n", "300", "--out", str(tmp_path / "c"), cwd=tmp_path)
    assert "more than one picture shows" in last_error(result)
    x, y = zoo.data.create("digits").normalized("test", 5)
    assert len(x) == len(y) == 5


# -- 7. names that a file in the working folder shadows --------------------------------------------------


def test_a_shipped_name_is_the_shipped_file_whatever_the_working_folder_holds(tmp_path, monkeypatch):
    from zoo.configs import FOLDER

    monkeypatch.chdir(tmp_path)
    (tmp_path / "digits").write_text("trainer: {max_epochs: 1}\n")
    with pytest.warns(UserWarning, match=r"config 'digits' is zoo's shipped config .*the file 'digits' in this "
                                         r"folder is not read \(give ./digits for it\)"):
        assert find("digits") == FOLDER / "digits.yaml"
    assert find("./digits") == Path("./digits")  # a path is a path
    (tmp_path / "digits").unlink()
    (tmp_path / "digits").mkdir()
    with pytest.warns(UserWarning, match="the folder 'digits' in this folder is not read"):
        assert find("digits") == FOLDER / "digits.yaml"
    with pytest.warns(UserWarning, match="suite 'digits' is zoo's shipped suite"):
        assert bench.suite_file("digits") == bench.SUITES / "digits.yaml"


def test_a_model_name_in_a_config_is_never_read_as_a_file_of_that_name(tmp_path):
    (tmp_path / "cfg.yaml").write_text("model: lenet5\ndata: zoo.data.digits.DigitsDataModule\n"
                                       "trainer: {max_epochs: 1}\n")
    (tmp_path / "lenet5").write_text("class_path: zoo.train.mlp\ninit_args: {hidden: [7]}\n")
    assert last_error(zoo_here("fit", "--config", "cfg.yaml", cwd=tmp_path)) == (
        "zoo: error: the config gives model: lenet5, and this folder has a file named 'lenet5', which the config "
        "parser would read in place of the registered model; rename or move that file, or run from another folder")
    assert not (tmp_path / "runs").exists()
    (tmp_path / "lenet5").unlink()
    (tmp_path / "cfg.yaml").write_text("model: lenet5\ntrainer: {max_epochs: 1}\n")
    assert last_error(zoo_here("fit", "--config", "cfg.yaml", cwd=tmp_path)) == (
        "zoo: error: no data given: the config names none; add --data NAME (see: zoo data list) or a data: section "
        "to the config")


# -- 8. edited checkpoints ---------------------------------------------------------------------------


@pytest.mark.parametrize("edit, message", [
    (lambda c: c.update(zoo="zoo"), "its 'zoo' entry is a str, not a mapping"),
    (lambda c: c.update(hyper_parameters=[1, 2]), "its 'hyper_parameters' entry is a list, not a mapping"),
    (lambda c: c.update(state_dict=[1]), "its 'state_dict' entry is a list, not a mapping"),
    (lambda c: c["hyper_parameters"].update(image_size=100000), "its image_size is 100000, not an integer from 1 to"),
    (lambda c: c["hyper_parameters"].update(num_classes="10"), "its num_classes is '10', not an integer"),
    (lambda c: c["hyper_parameters"].update(class_names="abc"), "its class_names are not 10 names"),
    (lambda c: c["state_dict"].update(extra="x"), "its state_dict holds values other than named tensors"),
])
def test_an_edited_checkpoint_is_one_line_from_every_command(tmp_path, lenet5, edit, message):
    contents = torch.load(lenet5, weights_only=True)
    edit(contents)
    edited = tmp_path / "edited.ckpt"
    torch.save(contents, edited)
    with pytest.raises(CheckpointError, match=f"is damaged or was edited: {message}"):
        CheckpointRecord.read(edited)
    digit_pngs(tmp_path / "scans", 2)
    for args in (["predict", "--ckpt_path", str(edited), "--images", "scans", "--out", "p.csv"],
                 ["test", "--ckpt_path", str(edited)],
                 ["fit", "--model.weights", str(edited), "--trainer.max_epochs", "1"]):
        assert "is damaged or was edited" in last_error(zoo_here(*args, cwd=tmp_path)), args


# -- 9. big or odd config files ----------------------------------------------------------------------


def test_big_binary_and_odd_config_files_are_one_line(tmp_path):
    big = tmp_path / "big.yaml"
    big.write_text("a: 1\n" * (MAX_BYTES // 5 + 1))
    binary = tmp_path / "binary.yaml"
    binary.write_bytes(b"trainer:\n  max_epochs: 1 # \xff\n")
    for value, message in ((str(big), "is larger than 1,000,000 bytes"),
                           (str(binary), r"is not UTF-8 text \(byte 0xff at offset 27\)"),
                           ("/dev/zero", "is not a file"),
                           (str(tmp_path), "is a folder")):
        with pytest.raises(InputError, match=message):
            config_argument(value)
    assert "is not UTF-8 text" in last_error(zoo_here("fit", "--config", str(binary), cwd=tmp_path))
    suite = tmp_path / "suite.yaml"
    suite.write_bytes(b"name: s\nmodels: [lenet5]\ndatasets: [digits] # \xff\n")
    with pytest.raises(InputError, match="is not UTF-8 text"):
        bench.load_suite(suite)


def test_a_config_from_a_pipe_is_read(tmp_path):
    """``zoo fit --config <(...)``: the shell gives a pipe's path, which can be read once."""
    pipe = tmp_path / "pipe"
    os.mkfifo(pipe)
    writer = threading.Thread(target=lambda: pipe.write_text("trainer:\n  max_epochs: 3\n"))
    writer.start()
    text = config_argument(str(pipe))
    writer.join(timeout=10)
    assert yaml.safe_load(text) == {"trainer": {"max_epochs": 3}}


# -- 10. the runs folder -----------------------------------------------------------------------------


def test_a_runs_folder_in_the_way_is_one_line(tmp_path):
    (tmp_path / "runs").write_text("")
    assert last_error(zoo_here("fit", "--trainer.max_epochs", "1", cwd=tmp_path)) == (
        "zoo: error: cannot make the folder runs/lenet5-digits: runs is a file, not a folder; move that out of the "
        "way, or write somewhere else (zoo fit: --trainer.logger.init_args.save_dir DIR; zoo bench: --runs DIR, "
        "--out DIR)")
    (tmp_path / "runs").unlink()
    (tmp_path / "runs").symlink_to(tmp_path / "gone")
    assert "runs is a link to" in last_error(zoo_here("fit", "--trainer.max_epochs", "1", cwd=tmp_path))


class DeleteInTheFirstEpoch(L.Callback):
    """Deletes the run folder under the fit, as a user's ``rm -rf runs/...`` in another terminal does."""

    def on_train_batch_end(self, trainer: L.Trainer, *args: object) -> None:
        if trainer.global_step == 2:  # in the first epoch, before anything is logged or checkpointed
            shutil.rmtree(trainer.log_dir)


def test_a_run_folder_deleted_during_the_fit_is_one_line(tmp_path, monkeypatch):
    from zoo.errors import TrainingError
    from zoo.runfolder import held

    monkeypatch.chdir(tmp_path)
    with pytest.raises(TrainingError, match=r"the run folder .*version_0 was deleted while the fit was writing into "
                                            r"it; nothing of this run is left to resume: start the fit again"):
        zoo.fit("lenet5", "digits", ["--trainer.max_epochs", "3", "--trainer.enable_progress_bar", "false",
                                     "--trainer.callbacks+", f"{__name__}.DeleteInTheFirstEpoch"])
    assert held() == []  # and its lock let go without a traceback


# -- 12. the cached statistics -----------------------------------------------------------------------


@pytest.mark.parametrize("entry", [{"mean": "abc", "std": [0.2]}, {"mean": [0.5], "std": [0.0]},
                                   {"mean": [float("nan")], "std": [0.2]}, {"mean": [0.5]}, "x",
                                   {"mean": [0.5, 0.5], "std": [0.2, 0.2]}])
def test_edited_cached_statistics_are_computed_again(tmp_path, entry):
    root = tmp_path / "classes"
    for c in ("a", "b"):
        digit_pngs(root / c, 4)
    options = {"data_dir": str(root), "image_size": 8, "in_chans": 1, "num_workers": 0, "test_split": 2,
               "val_split": 2}
    first = zoo.data.create("folder", **options)
    first.setup()
    cache = root / ".zoo-stats.json"
    (key,) = json.loads(cache.read_text())
    cache.write_text(json.dumps({key: entry}))
    again = zoo.data.create("folder", **options)
    again.setup()
    assert (again.mean, again.std) == (first.mean, first.std) and again.std[0] > 0


# -- 13. class names that hold line breaks or terminal escapes ----------------------------------------------


def test_names_with_line_breaks_or_escape_sequences_print_as_one_line(tmp_path):
    root = tmp_path / "classes"
    for c in ("a\nb", "c\x1b[2Jd"):
        digit_pngs(root / c, 2)
    (root / "e\x1b]0;owned\x07").mkdir()  # an empty class: the error names it
    result = zoo_here("fit", "--data", "folder", "--data.data_dir", str(root), "--trainer.max_epochs", "1",
                      cwd=tmp_path)
    line = last_error(result)
    assert "\x1b" not in result.stderr and "\x07" not in result.stderr
    assert "e\\x1b]0;owned\\x07" in line and line.startswith("zoo: error: class folder(s)")
    assert one_line("a\nb\x1b[2J\u202e é") == "a\\nb\\x1b[2J\\u202e é"
