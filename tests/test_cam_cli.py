"""Localization measured end to end: train on cluttered digits with CAMLogger, then `zoo cam`."""

import csv
import re

import numpy as np
import pytest
import torch
from PIL import Image
from sklearn.datasets import load_digits

import zoo
from tests.conftest import zoo_here
from zoo.data.digits import digits_split


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    cwd = tmp_path_factory.mktemp("cam")
    proc = zoo_here("fit", "--model", "resnet20", "--data", "cluttered_digits", "--data.copies", "1",
                   "--data.canvas_size", "40", "--trainer.max_epochs", "3",  # 40 px, 1 copy: a fifth of the default's
                   "--trainer.callbacks+=zoo.cam.CAMLogger", "--trainer.callbacks.every_n_epochs", "1", cwd=cwd)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return cwd, cwd / "runs" / "resnet20-cluttered_digits" / "version_0"


def test_cam_logger_draws_every_epoch(trained):
    _, run = trained
    pictures = sorted(p.name for p in (run / "cams").iterdir())
    assert pictures == ["epoch_000.png", "epoch_001.png", "epoch_002.png"]
    assert Image.open(run / "cams" / "epoch_002.png").size[0] > 500


def test_gradcam_points_at_the_digit(trained):
    cwd, run = trained
    proc = zoo_here("cam", "--ckpt_path", str(run / "checkpoints" / "best.ckpt"), "--evaluate", "32", "--method",
                    "gradcam", "--n", "16", "--out", "out", cwd=cwd)
    assert proc.returncode == 0, proc.stderr[-3000:]
    lines = proc.stdout.splitlines()
    assert lines[0] == "gradcam maps of 16 images -> out/gradcam.png"  # the picture first: the scores take longer
    table = lines[next(i for i, line in enumerate(lines) if line.startswith("method")):]
    header, row = table[0].split(), next(line.split() for line in table if line.startswith("gradcam "))
    scores = dict(zip(header[1:], map(float, row[1:]), strict=True))
    assert scores["pointing_game"] >= 0.9  # the goal; chance (a random pixel in the 24-px box) is 36 %
    assert scores["deletion"] < scores["insertion"] and -1 <= scores["sanity"] <= 1
    assert "scores of 32 test images" in proc.stdout
    rows = list(csv.DictReader(open(cwd / "out" / "scores.csv")))
    assert [r["method"] for r in rows] == ["gradcam"] and rows[0]["model"] == "resnet20"
    assert float(rows[0]["pointing_game"]) == scores["pointing_game"] and "road_morf" in rows[0]
    assert (cwd / "out" / "gradcam.png").is_file()
    again = zoo_here("cam", "--ckpt_path", str(run / "checkpoints" / "best.ckpt"), "--n", "4", "--out", "out", cwd=cwd)
    assert again.returncode == 2 and "exists; give --overwrite to replace it" in again.stderr  # as zoo export does


def test_every_method_side_by_side_from_the_command(trained):
    cwd, run = trained
    proc = zoo_here("cam", "--ckpt_path", str(run / "checkpoints" / "best.ckpt"), "--method", "all", "--n", "3",
                    "--out", "every", cwd=cwd)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "all maps of 3 images -> every/all.png" in proc.stdout
    width, height = Image.open(cwd / "every" / "all.png").size
    assert width > 2 * height  # 12 columns (the image and 11 methods), 3 rows


def test_the_library_draws_and_scores_what_the_command_does(trained, tmp_path, monkeypatch):
    """`zoo cam` is one library call each: zoo.cam.draw_checkpoint and zoo.cam.evaluate_checkpoint."""
    from zoo.cam import draw_checkpoint, evaluate_checkpoint

    cwd, run = trained
    best = run / "checkpoints" / "best.ckpt"
    loads = []
    zoo.cam._model.cache_clear()
    load = zoo.ImageClassifier.load_from_checkpoint
    monkeypatch.setattr(zoo.ImageClassifier, "load_from_checkpoint",
                        lambda *a, **k: (loads.append(a), load(*a, **k))[1])
    path, n = draw_checkpoint(best, split="val", n=5, method="cam", out=tmp_path)
    assert (path, n) == (tmp_path / "cam.png", 5) and Image.open(path).size[0] > 300
    scores, csv_path, n = evaluate_checkpoint(best, n=24, methods=["cam", "gradcam"], out=tmp_path)
    assert len(loads) == 1  # as `zoo cam --evaluate` does both: one load of the checkpoint (and of its data)
    assert n == 24 and csv_path == tmp_path / "scores.csv"
    assert scores["gradcam"]["pointing_game"] >= 0.9
    for key in ("pointing_game", "box_iou"):  # the identity for a GAP + linear head
        assert scores["cam"][key] == scores["gradcam"][key]
    for key in ("deletion", "insertion"):  # maps equal to 1e-4 may order near-ties apart: a pixel here and there
        assert scores["cam"][key] == pytest.approx(scores["gradcam"][key], abs=2e-3)
    with pytest.raises(zoo.ZooError, match="scores.csv' exists; give --overwrite"):  # as export and predict
        evaluate_checkpoint(best, data="digits", out=tmp_path)  # before the data is read
    refused = "the data has image_size=32 but the model takes image_size=40; .* --set image_size=40"
    with pytest.raises(zoo.ZooError, match=refused):
        evaluate_checkpoint(best, data="digits", out=tmp_path, overwrite=True)  # before any net sees the data
    no_boxes, _, _ = evaluate_checkpoint(best, data="digits", n=8, methods=["gradcam"], out=tmp_path,
                                         arguments={"image_size": 40}, overwrite=True)
    assert "pointing_game" not in no_boxes["gradcam"] and "deletion" in no_boxes["gradcam"]  # faithfulness only


def test_cam_on_image_files_skips_what_is_not_an_image(trained, tmp_path):
    cwd, run = trained
    data = zoo.data.create("cluttered_digits")
    data.setup()
    x = data.test_set.images[:3]
    folder = tmp_path / "images"
    folder.mkdir()
    for i, image in enumerate(x):
        Image.fromarray((image[0].clamp(0, 1).numpy() * 255).astype(np.uint8)).save(folder / f"digit{i}.png")
    (folder / "broken.png").write_bytes(b"not a png")
    proc = zoo_here("cam", "--ckpt_path", str(run / "checkpoints" / "best.ckpt"), "--images", str(folder),
                   "--method", "gradcam++", "--evaluate", "16", "--out", str(tmp_path / "out"), cwd=cwd)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "skipping" in proc.stderr and "broken.png" in proc.stderr
    assert "gradcam++ maps of 3 images" in proc.stdout
    # --evaluate scores the checkpoint's dataset (the files have no boxes), the files are drawn
    assert "scores of 16 test images" in proc.stdout and (tmp_path / "out" / "scores.csv").is_file()
    assert (tmp_path / "out" / "gradcam++.png").is_file()


def test_test_subcommand_uses_the_checkpoints_own_data(trained):
    cwd, run = trained
    proc = zoo_here("test", "--ckpt_path", str(run / "checkpoints" / "best.ckpt"), cwd=cwd)  # no --model, no --data
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert re.search(r"^test accuracy: \d+\.\d\d%", proc.stdout, re.M)
    proc = zoo_here("test", "--ckpt_path", str(run / "checkpoints" / "best.ckpt"), "--data", "digits", cwd=cwd)
    assert proc.returncode == 2
    assert ("the data has image_size=32 but the model takes image_size=40; use data that matches the checkpoint"
            in proc.stderr)


def test_cam_errors(trained):
    cwd, run = trained
    best = str(run / "checkpoints" / "best.ckpt")
    proc = zoo_here("cam", "--ckpt_path", best, "--method", "scorecm", cwd=cwd)
    assert proc.returncode == 2 and "invalid choice: 'scorecm'" in proc.stderr
    proc = zoo_here("cam", "--ckpt_path", best, "--evaluate", "-3", cwd=cwd)
    assert proc.returncode == 2 and "--evaluate's N must be positive" in proc.stderr
    proc = zoo_here("cam", "--ckpt_path", best, "--images", "nowhere", cwd=cwd)
    assert proc.returncode == 2 and "'nowhere' is neither a file nor a directory" in proc.stderr


def test_zoo_cam_draws_and_scores_a_vision_transformers_checkpoint(tmp_path):
    """A ViT trained by `zoo fit` (two batches: the maps' shapes and the scores' plumbing are what is tested) is
    drawn and scored by `zoo cam` as a CNN is: its tokens on their grid, the layer found, CAM refused (no pooled
    map before its head), the other methods scored."""
    pytest.importorskip("timm")
    fit = zoo_here("fit", "--model", "timm/vit_tiny_patch16_224", "--data", "digits", "--data.image_size", "32",
                   "--trainer.max_epochs", "1", "--trainer.limit_train_batches", "2", "--trainer.limit_val_batches",
                   "2", "--trainer.limit_test_batches", "2", cwd=tmp_path)
    assert fit.returncode == 0, fit.stderr[-3000:]
    best = str(next(tmp_path.glob("runs/*/version_0/checkpoints/best.ckpt")))
    proc = zoo_here("cam", "--ckpt_path", best, "--method", "all", "--n", "2", "--out", "maps", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert (tmp_path / "maps" / "all.png").is_file()
    proc = zoo_here("cam", "--ckpt_path", best, "--evaluate", "8", "--method", "hirescam", "--out", "scores",
                    cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    row = next(csv.DictReader(open(tmp_path / "scores" / "scores.csv")))
    assert row["method"] == "hirescam" and 0 <= float(row["deletion"]) <= 1 and -1 <= float(row["sanity"]) <= 1
    proc = zoo_here("cam", "--ckpt_path", best, "--method", "cam", "--n", "2", "--out", "plain", cwd=tmp_path)
    assert proc.returncode == 2 and "cam" in proc.stderr, proc.stderr[-2000:]


def test_cluttered_digits_are_the_digits_split_placed_in_their_boxes():
    data = zoo.data.create("cluttered_digits", copies=2, clutter=0)
    data.setup()
    train, val, test = digits_split()
    labels = torch.as_tensor(load_digits().target)
    for name, idx in (("train", train), ("val", val), ("test", test)):
        assert torch.equal(getattr(data, f"{name}_set").labels, labels[idx].repeat(2))
    x = data.test_set.images
    boxes = data.boxes["test"]
    assert (boxes[:, 2] - boxes[:, 0]).max() <= 24 and boxes.min() >= 0 and boxes.max() <= 64
    for image, (x0, y0, x1, y1) in zip(x[:50, 0], boxes[:50].tolist(), strict=True):
        inside = image[y0:y1, x0:x1].sum()
        assert inside > 0.99 * image.sum()  # without clutter all the ink is in the box
    again = zoo.data.create("cluttered_digits", copies=2, clutter=0)
    again.setup()
    assert torch.equal(again.test_set.images, data.test_set.images)
    other = zoo.data.create("cluttered_digits", copies=2, clutter=0, seed=1)
    other.setup()
    assert not torch.equal(other.boxes["test"], boxes)
