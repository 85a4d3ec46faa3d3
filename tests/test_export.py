"""Export and file prediction from a real (briefly) trained checkpoint."""

import csv

import lightning as L
import numpy as np
import pytest
import torch
from PIL import Image

import zoo
from tests.conftest import zoo_here
from zoo.data.files import read_images
from zoo.errors import InputError, ZooError
from zoo.export import FORMATS, export, read_metadata

SUFFIX = {"onnx": "onnx", "torchscript": "pt", "exported-program": "pt2", "safetensors": "safetensors"}


@pytest.fixture
def checkpoint(digits_lenet5):
    """The suite's shared LeNet-5 checkpoint (tests/conftest.py) and its data, set up (its normalization)."""
    data = zoo.data.create("digits")
    data.setup("fit")
    return digits_lenet5, data


@pytest.mark.parametrize("fmt", FORMATS)
def test_each_format_reloads_with_parity_and_metadata(checkpoint, tmp_path, fmt):
    path, data = checkpoint
    out = tmp_path / f"model.{SUFFIX[fmt]}"
    report = export(path, fmt, out)
    assert report.max_abs_diff <= 1e-4 and report.images == 8 and out.is_file()
    meta = read_metadata(out)
    assert meta["model"] == "lenet5" and meta["class_names"] == [str(d) for d in range(10)]
    assert meta["input"]["shape"] == ["N", 1, 32, 32]
    assert meta["input"]["mean"] == pytest.approx(data.mean) and meta["input"]["std"] == pytest.approx(data.std)
    assert meta["model_arguments"] == {"activation": "tanh", "pool": "avg"}
    assert [p.name for p in tmp_path.iterdir()] == [out.name]  # no temporary file left


def test_onnx_runs_other_batch_sizes_in_onnxruntime(checkpoint, tmp_path):
    import onnxruntime

    path, data = checkpoint
    export(path, "onnx", tmp_path / "m.onnx")
    session = onnxruntime.InferenceSession(str(tmp_path / "m.onnx"), providers=["CPUExecutionProvider"])
    x = data.normalized("test")[0][:13]
    model = zoo.ImageClassifier.load_from_checkpoint(path).eval()
    with torch.no_grad():
        expected = model(x).numpy()
    np.testing.assert_allclose(session.run(None, {"images": x.numpy()})[0], expected, atol=1e-4)


def test_failed_parity_writes_nothing(checkpoint, tmp_path, monkeypatch):
    import zoo.export

    monkeypatch.setattr(zoo.export, "TOLERANCE", -1.0)
    with pytest.raises(ZooError, match="gives different outputs.*nothing was written"):
        export(checkpoint[0], "torchscript", tmp_path / "m.pt")
    assert not list(tmp_path.iterdir())


def test_export_errors(checkpoint, tmp_path):
    with pytest.raises(InputError, match="unknown export format 'tflite'"):
        export(checkpoint[0], "tflite", tmp_path / "m")
    with pytest.raises(InputError, match="does not exist; create it"):
        export(checkpoint[0], "onnx", tmp_path / "missing" / "m.onnx")


def test_cli_export_and_predict(checkpoint, tmp_path):
    path, data = checkpoint
    proc = zoo_here("export", "--ckpt_path", str(path), "--format", "exported-program", "--out", "m.pt2", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "parity on 8 images" in proc.stdout and proc.stdout.strip().endswith(": ok")

    folder = tmp_path / "images"
    (folder / "sub").mkdir(parents=True)
    raw = zoo.data.create("digits", image_size=32)
    raw.setup()
    pixels = raw.test_set.images[:3, 0].clamp(0, 1).numpy()
    Image.fromarray((pixels[0] * 255).astype(np.uint8)).save(folder / "a.png")
    Image.fromarray((pixels[1] * 255).astype(np.uint8)).convert("RGB").save(folder / "b.jpg", quality=95)
    Image.fromarray((pixels[2] * 255).astype(np.uint8)).save(folder / "sub" / "c.png")
    (folder / "notes.txt").write_text("not an image")
    proc = zoo_here("predict", "--ckpt_path", str(path), "--images", str(folder), "--topk", "3", "--out", "preds.csv",
                   cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "3 images -> preds.csv; 1 files skipped (not images)" in proc.stdout
    assert "zoo: warning: skipping" in proc.stderr and "notes.txt" in proc.stderr
    rows = list(csv.DictReader(open(tmp_path / "preds.csv")))
    assert [r["file"].rsplit("/", 1)[-1] for r in rows] == ["a.png", "b.jpg", "c.png"]
    assert list(rows[0]) == ["file", "class_1", "prob_1", "class_2", "prob_2", "class_3", "prob_3"]
    for row in rows:
        probs = [float(row[f"prob_{i}"]) for i in (1, 2, 3)]
        assert probs == sorted(probs, reverse=True) and sum(probs) <= 1.0 + 1e-6
    # the CSV holds what the model says about the same files prepared the same way
    model = zoo.ImageClassifier.load_from_checkpoint(path).eval()
    x, _, kept = read_images([folder], 32, 1, data.mean, data.std)
    with torch.no_grad():
        top = model(x).softmax(1).argmax(1).tolist()
    assert [r["class_1"] for r in rows] == [str(t) for t in top]
    assert len(kept) == 3


def test_cli_predicts_a_datasets_split_with_labels_and_accuracy(checkpoint, tmp_path):
    """Without --images, zoo predict scores the test split of the checkpoint's own dataset: one row per image with
    its true label, and the accuracy printed is the model's on those images."""
    path, data = checkpoint
    proc = zoo_here("predict", "--ckpt_path", str(path), "--topk", "2", "--out", "test.csv", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-2000:]
    rows = list(csv.DictReader(open(tmp_path / "test.csv")))
    x, y = data.normalized("test")
    assert list(rows[0]) == ["index", "label", "class_1", "prob_1", "class_2", "prob_2"]
    assert [int(r["index"]) for r in rows] == list(range(len(y))) and len(y) > 300
    assert [r["label"] for r in rows] == [data.class_names[i] for i in y.tolist()]
    model = zoo.ImageClassifier.load_from_checkpoint(path).eval()
    with torch.no_grad():
        top = model(x).argmax(1)
    assert [r["class_1"] for r in rows] == [data.class_names[i] for i in top.tolist()]
    accuracy = 100 * (top == y).float().mean().item()
    assert 50 < accuracy < 100  # two epochs of lenet5: learnt something, not everything
    assert f"{len(y)} test images of digits -> test.csv; top-1 accuracy {accuracy:.2f} %" in proc.stdout
    proc = zoo_here("predict", "--ckpt_path", str(path), "--images", "x.png", "--data", "digits", cwd=tmp_path)
    assert proc.returncode == 2 and "with --images the files are predicted" in proc.stderr
    proc = zoo_here("predict", "--ckpt_path", str(path), "--set", "image_size=16", "--out", "t16.csv", cwd=tmp_path)
    assert proc.returncode == 2 and "the data has image_size=16 but the model takes image_size=32" in proc.stderr
    assert not (tmp_path / "t16.csv").exists()


def test_a_split_of_other_classes_is_refused_not_scored(checkpoint, tmp_path):
    """zoo predict --split printed 'top-1 accuracy 75.00 %' for a 2-class net on 3-class data, and scored class
    names apple/zebra against cat/dog; zoo test refused the same data. Features of any data stay allowed."""
    from tests.test_data import write_folder
    from zoo.features import dataset_features
    from zoo.predict import predict_split

    path, _ = checkpoint
    write_folder(tmp_path / "three", classes=("cat", "dog", "owl"), size=32)
    write_folder(tmp_path / "ten", classes=tuple("abcdefghij"), per_class=2, size=32)
    grey = {"image_size": 32, "in_chans": 1, "test_split": 0.5, "val_split": 0}
    with pytest.raises(InputError, match=r"trained on 10 classes \(0, 1, 2, 3, 4, 5, \.\.\.\) but the data has 3 "
                                         r"classes \(cat, dog, owl\)"):
        predict_split(path, tmp_path / "p.csv", "folder", arguments={"data_dir": str(tmp_path / "three"), **grey})
    with pytest.raises(InputError, match=r"but the data has 10 classes \(a, b, c, d, e, f, \.\.\.\)"):
        predict_split(path, tmp_path / "p.csv", "folder", arguments={"data_dir": str(tmp_path / "ten"), **grey})
    assert not (tmp_path / "p.csv").exists()
    name, features = dataset_features(path, data="folder", arguments={"data_dir": str(tmp_path / "three"), **grey},
                             splits=("test",))
    assert features["test_features"].shape[0] == len(features["test_labels"]) == 12


def test_counts_below_one_and_a_checkpoint_missing_a_tensor_are_one_clear_error(checkpoint, tmp_path, capsys,
                                                                              monkeypatch):
    """--batch_size 0 raised ZeroDivisionError (predict) or ValueError (features), -5 said "no readable images",
    cam --n -3 drew one image; a checkpoint with one tensor missing printed torch's state_dict traceback."""
    from zoo.cam import draw_checkpoint
    from zoo.checkpoint import CheckpointRecord
    from zoo.cli import main
    from zoo.errors import CheckpointError
    from zoo.features import dataset_features
    from zoo.predict import predict_files, predict_split

    path, _ = checkpoint
    Image.fromarray(np.zeros((32, 32), np.uint8)).save(tmp_path / "x.png")
    for batch_size in (0, -5):
        with pytest.raises(InputError, match=f"batch_size must be an integer of 1 or more, got {batch_size}"):
            predict_split(path, tmp_path / "p.csv", batch_size=batch_size)
        with pytest.raises(InputError, match=f"batch_size must be an integer of 1 or more, got {batch_size}"):
            predict_files(path, [tmp_path / "x.png"], tmp_path / "p.csv", batch_size=batch_size)
        with pytest.raises(InputError, match=f"batch_size must be an integer of 1 or more, got {batch_size}"):
            dataset_features(path, splits=("test",), batch_size=batch_size)
    with pytest.raises(InputError, match="n must be an integer of 1 or more, got -3"):
        draw_checkpoint(path, n=-3, out=tmp_path / "cams")
    assert not (tmp_path / "p.csv").exists() and not (tmp_path / "cams" / "gradcam.png").exists()

    damaged = torch.load(path, weights_only=True)
    del damaged["state_dict"]["net.classifier.weight" if "net.classifier.weight" in damaged["state_dict"]
                              else sorted(damaged["state_dict"])[-1]]
    torch.save(damaged, tmp_path / "damaged.ckpt")
    with pytest.raises(CheckpointError, match=r"does not fit its model: it lacks net\.\S+ \(1\)"):
        zoo.ImageClassifier.load_from_checkpoint(tmp_path / "damaged.ckpt")
    with pytest.raises(CheckpointError, match=r"damaged.ckpt' does not fit its model: it lacks \S+ \(1\)"):
        CheckpointRecord.read(tmp_path / "damaged.ckpt").net()
    monkeypatch.chdir(tmp_path)
    for command in (["test", "--ckpt_path", "damaged.ckpt"],
                    ["export", "--ckpt_path", "damaged.ckpt", "--format", "onnx", "--out", "m.onnx"]):
        with pytest.raises(SystemExit) as exit_:
            main(command)
        assert exit_.value.code == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert err[-1].startswith("zoo: error: ") and "does not fit its model: it lacks" in err[-1]
        assert "Traceback" not in "\n".join(err)


def test_file_names_not_utf8_bombs_float_images_and_looping_links(checkpoint, tmp_path, monkeypatch):
    """A name that is not UTF-8 crashed fit (the stats cache key), predict (the CSV) and cam (the title); a
    decompression bomb killed predict with no CSV for the other images; a 32-bit float image in 0..1 decoded to
    black; a link data/all -> . became a class of every image."""
    import os

    from PIL import Image

    from tests.test_data import write_folder
    from zoo.cam import draw_checkpoint
    from zoo.data.files import decoded
    from zoo.predict import predict_files

    path, _ = checkpoint
    folder = tmp_path / "images"
    folder.mkdir()
    for i in range(3):
        Image.fromarray(np.full((32, 32), 60 * i, np.uint8)).save(folder / f"{i}.png")
    odd = os.fsdecode(b"\xff\xfe-latin1.png")
    Image.fromarray(np.full((32, 32), 200, np.uint8)).save(folder / odd)
    Image.fromarray(np.zeros((100, 100), np.uint8)).save(folder / "bomb.png")
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 2_000)  # 100x100 is now over twice the limit: a bomb
    with pytest.warns(UserWarning, match="bomb.png"):
        done, skipped = predict_files(path, [folder], tmp_path / "p.csv")
    rows = list(csv.DictReader(open(tmp_path / "p.csv", encoding="utf-8")))
    assert done == 4 and [p.name for p in skipped] == ["bomb.png"]
    assert sorted(r["file"].rsplit("/", 1)[-1] for r in rows) == ["0.png", "1.png", "2.png", "\\xff\\xfe-latin1.png"]
    (tmp_path / "cams").mkdir()
    picture, n = draw_checkpoint(path, images=[str(folder / odd)], out=tmp_path / "cams")
    assert n == 1 and picture.is_file()
    monkeypatch.undo()

    ramp = np.linspace(0.0, 1.0, 64, dtype=np.float32).reshape(8, 8)
    grey = np.asarray(decoded(Image.fromarray(ramp, "F"), "L"))
    assert grey.min() == 0 and grey.max() == 255 and len(np.unique(grey)) == 64

    pets = tmp_path / "pets"
    write_folder(pets, size=32)
    Image.fromarray(np.full((32, 32, 3), 90, np.uint8)).save(pets / "cat" / odd)
    (pets / "all").symlink_to(".")
    with pytest.warns(UserWarning, match=r"skipping class folder\(s\) .*all: a link to"):
        data = zoo.data.create("folder", data_dir=str(pets), image_size=32, test_split=6, val_split=6)
    data.setup()
    assert data.class_names == ["cat", "dog", "owl"] and len(data.mean) == 3


@pytest.fixture
def small_disk(tmp_path):
    """A real 1 MB file system (tmpfs), mounted for the test: needs root, as in CI's container."""
    import subprocess

    mount = tmp_path / "small"
    mount.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(mount)], capture_output=True,
                          text=True)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a 1 MB tmpfs here: {done.stderr.strip()}")
    yield mount
    subprocess.run(["umount", "-l", str(mount)], check=False)


def test_a_full_disk_is_one_line_and_leaves_nothing_half_written(checkpoint, small_disk, monkeypatch, capsys):
    """fit printed an 80-line traceback ('unexpected pos ...'), TorchScript export aborted the process (rc 134)
    and left its temporary, predict printed a raw OSError: [Errno 28]."""
    from zoo.cli import main
    from zoo.errors import DiskFullError
    from zoo.predict import predict_split

    path, _ = checkpoint
    for fmt in ("torchscript", "exported-program"):
        with pytest.raises(DiskFullError, match=r"no space left on the disk to write .*MB are needed"):
            export(path, fmt, small_disk / f"m.{SUFFIX[fmt]}")
    filler = small_disk / "filler"
    filler.write_bytes(bytes(1024 * 1024 - 8 * 1024))  # two 4 KB pages left
    with pytest.raises(DiskFullError, match=r"no space left on the disk to write .*p\.csv; free some space"):
        predict_split(path, small_disk / "p.csv")
    assert [p.name for p in small_disk.iterdir()] == ["filler"]  # no temporary, no half CSV

    monkeypatch.chdir(small_disk)
    with pytest.raises(SystemExit) as exit_:
        main(["fit", "--data.image_size", "16", "--trainer.max_epochs", "1", "--trainer.enable_progress_bar", "false"])
    err = capsys.readouterr().err.strip().splitlines()
    assert exit_.value.code == 2 and err[-1].startswith("zoo: error: no space left on the disk to write ")
    assert "Traceback" not in "\n".join(err)
    assert not [p for p in small_disk.rglob("*.tmp")]


def test_predict_errors(checkpoint, tmp_path):
    from zoo.predict import predict_files

    (tmp_path / "only.txt").write_text("text")
    with pytest.raises(InputError, match="no readable images"):
        predict_files(checkpoint[0], [tmp_path], tmp_path / "p.csv")
    assert not (tmp_path / "p.csv").exists()
    with pytest.raises(InputError, match="--topk must be between 1 and the 10 classes, got 11"):
        predict_files(checkpoint[0], [tmp_path], tmp_path / "p.csv", topk=11)


def test_predict_csv_cells_are_never_formulas_and_topk_fits_the_classes(checkpoint, tmp_path):
    """A class folder named =HYPERLINK(...) is written as text; a 2-class model predicts with the default topk."""
    from zoo.predict import predict_files
    from zoo.spreadsheet import safe_cell

    assert [safe_cell(v) for v in ["=1+1", "+x", "-x", "@SUM(A1)", "\tx", "\rx", "-0.5", "+3", "ok", 2]] == [
        "'=1+1", "'+x", "'-x", "'@SUM(A1)", "'\tx", "'\rx", "-0.5", "+3", "ok", 2]
    path, data = checkpoint
    saved = torch.load(path, weights_only=True)
    names = ['=HYPERLINK("http:x")', "@cmd", "-x", *[str(d) for d in range(3, 10)]]
    saved["hyper_parameters"]["class_names"] = names
    torch.save(saved, tmp_path / "named.ckpt")
    image = tmp_path / "images" / "a.png"
    image.parent.mkdir()
    Image.fromarray(np.zeros((8, 8), dtype=np.uint8)).save(image)
    predict_files(tmp_path / "named.ckpt", [image.parent], tmp_path / "p.csv", topk=10)
    cells = next(csv.reader(open(tmp_path / "p.csv")))  # the header
    row = list(csv.reader(open(tmp_path / "p.csv")))[1]
    assert len(cells) == 21 and {'\'=HYPERLINK("http:x")', "'@cmd", "'-x"} <= set(row[1::2])
    assert not any(cell.startswith(("=", "+", "@")) for cell in row)

    saved["hyper_parameters"]["num_classes"] = 2  # a 2-class model
    model = zoo.create("lenet5", num_classes=2, in_chans=1)
    saved["state_dict"] = {f"net.{k}": v for k, v in model.net.state_dict().items()}
    saved["hyper_parameters"]["class_names"] = ["cat", "dog"]
    torch.save(saved, tmp_path / "two.ckpt")
    done, _ = predict_files(tmp_path / "two.ckpt", [image.parent], tmp_path / "two.csv")
    assert done == 1 and next(csv.reader(open(tmp_path / "two.csv"))) == ["file", "class_1", "prob_1", "class_2",
                                                                          "prob_2"]


def test_predictions_use_the_checkpoints_test_time_augmentation(checkpoint, tmp_path):
    """A model tested with flips (tta) predicts files with flips too: the CSV's probabilities are the mean of
    each image's and its mirror's scores, as in its test, not the plain forward pass."""
    from zoo.predict import predict_files

    path, data = checkpoint
    saved = torch.load(path, weights_only=True)
    saved["hyper_parameters"]["tta"] = "flip"
    torch.save(saved, tmp_path / "flip.ckpt")
    (tmp_path / "images").mkdir()
    pixels = np.zeros((8, 8), dtype=np.uint8)
    pixels[1:7, 1:3] = 255  # a bar on the left: not its own mirror image
    Image.fromarray(pixels).save(tmp_path / "images" / "bar.png")
    predict_files(tmp_path / "flip.ckpt", [tmp_path / "images"], tmp_path / "p.csv", topk=1)
    prob = float(next(csv.DictReader(open(tmp_path / "p.csv")))["prob_1"])
    model = zoo.ImageClassifier.load_from_checkpoint(path).eval()
    x, _, _ = read_images([tmp_path / "images"], 32, 1, data.mean, data.std)
    with torch.no_grad():
        plain, flipped = model(x).softmax(1)[0], ((model(x) + model(x.flip(-1))) / 2).softmax(1)[0]
    assert prob == pytest.approx(flipped.max().item(), abs=1e-5)
    assert abs(plain.max().item() - flipped.max().item()) > 1e-3  # the two differ: the test can tell them apart


def test_outputs_are_never_overwritten_silently_and_bad_paths_are_one_error(checkpoint, tmp_path):
    from zoo.atomic import output_folder
    from zoo.predict import predict_files

    path, _ = checkpoint
    mine = tmp_path / "model.pt"
    mine.write_text("a user's file")
    with pytest.raises(InputError, match=r"--out '.*model.pt' exists; give --overwrite to replace it"):
        export(path, "torchscript", mine)
    assert mine.read_text() == "a user's file"
    assert export(path, "torchscript", mine, overwrite=True).max_abs_diff <= 1e-4
    with pytest.raises(InputError, match=r"x.onnx' does not end in .pt or .pth or .ts, as this format's files do"):
        export(path, "torchscript", tmp_path / "x.onnx")
    with pytest.raises(InputError, match=r"is a folder; give a file name in it, e.g. '.*out.onnx'"):
        export(path, "onnx", tmp_path)
    (tmp_path / "file.txt").write_text("x")
    images = tmp_path / "images"
    images.mkdir()
    Image.fromarray(np.zeros((8, 8), dtype=np.uint8)).save(images / "a.png")
    for out, message in ((tmp_path / "nowhere" / "p.csv", r"the folder '.*nowhere' does not exist; create it"),
                         (tmp_path / "file.txt" / "p.csv", r"'.*file.txt' is a file, not a folder"),
                         (tmp_path, r"is a folder; give a file name in it, e.g. '.*out.csv'")):
        with pytest.raises(InputError, match=message):
            predict_files(path, [images], out)
    with pytest.raises(InputError, match=r"--out '.*file.txt' is a file; give a folder \(it is made if missing\)"):
        output_folder(tmp_path / "file.txt")
    assert output_folder(tmp_path / "cams" / "deep").is_dir()


def test_knn_is_refused_except_as_safetensors_and_parity_checks_another_batch_size(tmp_path):
    """kNN's TorchScript said 'parity ok' yet worked at batch 8 only; onnx and torch.export failed with raw errors."""
    L.seed_everything(0)
    data = zoo.data.create("digits", image_size=8)
    model = zoo.create("knn", num_classes=10, in_chans=1, image_size=8)
    trainer = L.Trainer(max_epochs=1, logger=False, enable_checkpointing=False, enable_progress_bar=False,
                        enable_model_summary=False, default_root_dir=tmp_path)
    trainer.fit(model, data)
    trainer.save_checkpoint(tmp_path / "knn.ckpt")
    for fmt in ("onnx", "torchscript", "exported-program"):
        with pytest.raises(InputError, match=f"a kNN cannot be exported as {fmt}: .*Export its memory with --format "
                                             "safetensors"):
            export(tmp_path / "knn.ckpt", fmt, tmp_path / f"knn{SUFFIX[fmt] and '.' + SUFFIX[fmt]}")
    report = export(tmp_path / "knn.ckpt", "safetensors", tmp_path / "knn.safetensors")
    assert report.max_abs_diff == 0.0
