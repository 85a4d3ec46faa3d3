"""DataModules on files written here in the real on-disk formats, presets, the fast path, folds, zoo data and zoo cv."""

import gzip
import json
import pickle
import struct
from pathlib import Path

import lightning as L
import numpy as np
import pytest
import torch
from PIL import Image
from torchvision.transforms import v2

import zoo
from tests.conftest import zoo_here
from zoo.data.augment import (
    PRESETS,
    BatchAugment,
    alternating_flips,
    flip_key,
    random_crop,
    random_erasing,
    sample_transform,
)
from zoo.errors import InputError, ZooError

# -- files in the real formats -------------------------------------------------------------------


def write_idx(folder, prefix: str, images: np.ndarray, labels: np.ndarray) -> None:
    """MNIST's idx files, gzipped as published (magic 2051 images, 2049 labels, big-endian sizes)."""
    folder.mkdir(parents=True, exist_ok=True)
    n, h, w = images.shape
    with gzip.open(folder / f"{prefix}-images-idx3-ubyte.gz", "wb") as f:
        f.write(struct.pack(">IIII", 2051, n, h, w) + images.astype(np.uint8).tobytes())
    with gzip.open(folder / f"{prefix}-labels-idx1-ubyte.gz", "wb") as f:
        f.write(struct.pack(">II", 2049, n) + labels.astype(np.uint8).tobytes())


def fake_mnist(root, name="MNIST", n_train=200, n_test=50):
    rng = np.random.default_rng(0)
    train = rng.integers(0, 256, (n_train, 28, 28)), np.arange(n_train) % 10
    test = rng.integers(0, 256, (n_test, 28, 28)), np.arange(n_test) % 10
    write_idx(root / name / "raw", "train", *train)
    write_idx(root / name / "raw", "t10k", *test)
    return train, test


def write_cifar(root, hundred: bool = False, per_batch: int = 30, n_test: int = 40):
    """CIFAR's python pickles: dicts with 'data' (N x 3072 uint8, channel-major) and the label lists."""
    rng = np.random.default_rng(1)
    classes = 100 if hundred else 10
    folder = root / ("cifar-100-python" if hundred else "cifar-10-batches-py")
    folder.mkdir(parents=True)
    key = "fine_labels" if hundred else "labels"
    names = ["train"] if hundred else [f"data_batch_{i}" for i in range(1, 6)]
    written = {}
    for name, n in [(b, per_batch * (5 if hundred else 1)) for b in names] + [("test" if hundred else "test_batch",
                                                                                n_test)]:
        data = rng.integers(0, 256, (n, 3072), dtype=np.uint8)
        labels = list(rng.permutation(np.arange(n) % classes))
        with open(folder / name, "wb") as f:
            pickle.dump({"data": data, key: labels}, f)
        written[name] = data, labels
    meta = {"fine_label_names": zoo.data.CIFAR100DataModule.class_names} if hundred else \
        {"label_names": zoo.data.CIFAR10DataModule.class_names}
    with open(folder / ("meta" if hundred else "batches.meta"), "wb") as f:
        pickle.dump(meta, f)
    return written


def write_folder(root, classes=("cat", "dog", "owl"), per_class=8, size=40):
    rng = np.random.default_rng(2)
    for c in classes:
        (root / c).mkdir(parents=True)
        for i in range(per_class):
            pixels = rng.integers(0, 256, (size, size + 8, 3), dtype=np.uint8)
            if i % 2:
                Image.fromarray(pixels).save(root / c / f"{i}.png")
            else:
                Image.fromarray(pixels).save(root / c / f"{i}.jpg", quality=95)


def test_mnist_from_gzipped_idx_files(tmp_path):
    (train_x, train_y), (test_x, test_y) = fake_mnist(tmp_path)
    dm = zoo.data.create("mnist", data_dir=str(tmp_path), download=False, val_split=20)
    dm.setup()
    assert (dm.num_classes, dm.in_chans, dm.image_size) == (10, 1, 28)
    assert (len(dm.train_set), len(dm.val_set), len(dm.test_set)) == (180, 20, 50)
    assert dm.test_set.images.dtype == torch.uint8
    assert torch.equal(dm.test_set.images[:, 0], torch.as_tensor(test_x, dtype=torch.uint8))  # untouched, in order
    assert torch.equal(dm.test_set.labels, torch.as_tensor(test_y))
    pool = {bytes(x) for x in train_x.astype(np.uint8)}
    train = {bytes(x[0].numpy()) for x in dm.train_set.images}
    val = {bytes(x[0].numpy()) for x in dm.val_set.images}
    assert train | val == pool and not train & val  # the val split comes out of the training images
    assert np.bincount(dm.val_set.labels.numpy()).tolist() == [2] * 10  # stratified
    fashion = fake_mnist(tmp_path, "FashionMNIST")
    dm = zoo.data.create("fashion_mnist", data_dir=str(tmp_path), download=False, val_split=0.1, image_size=32)
    dm.setup()
    assert dm.train_set.images.shape[1:] == (1, 32, 32) and dm.class_names[9] == "Ankle boot"
    assert len(dm.val_set) == 20 and fashion


@pytest.mark.parametrize("hundred", [False, True])
def test_cifar_from_python_pickles(tmp_path, hundred):
    written = write_cifar(tmp_path, hundred, per_batch=60)  # 300 training images: 3 per CIFAR-100 class
    name = "cifar100" if hundred else "cifar10"
    with pytest.raises(ZooError, match=r"is not the published file \(md5 .*, published .*\); delete it and download "
                                       r"again, or give verify=False"):
        zoo.data.create(name, data_dir=str(tmp_path), download=False).setup()  # files made here: not published
    dm = zoo.data.create(name, data_dir=str(tmp_path), download=False, val_split=100, verify=False)
    dm.setup()
    data, labels = written["test" if hundred else "test_batch"]
    assert torch.equal(dm.test_set.images, torch.as_tensor(data).view(-1, 3, 32, 32))
    assert dm.test_set.labels.tolist() == labels
    assert len(dm.train_set) + len(dm.val_set) == 300 and len(dm.val_set) == 100
    assert dm.num_classes == (100 if hundred else 10) and len(dm.mean) == 3
    expected = torch.cat([torch.as_tensor(d).view(-1, 3, 32, 32) for d, _ in written.values()][:-1]).double() / 255
    pool_mean = expected.mean(dim=(0, 2, 3))
    assert np.allclose(dm.mean, pool_mean.tolist(), atol=0.02)  # statistics of the (training) images


def test_missing_files_offline_say_what_to_put_where(tmp_path, monkeypatch):
    import torchvision.datasets.utils as utils

    def offline(*args, **kwargs):
        raise OSError("no network")

    monkeypatch.setattr(utils, "urlopen", offline, raising=False)
    monkeypatch.setattr("zoo.data.cifar.download_and_extract_archive", offline)
    with pytest.raises(ZooError, match=r"CIFAR10 is not in .*cifar-10-batches-py and it could not be downloaded "
                                       r"\(OSError: no network\); put data_batch_1, .*batches.meta there"):
        zoo.data.create("cifar10", data_dir=str(tmp_path)).setup()
    with pytest.raises(ZooError, match=r"no copy of MNIST in .*MNIST/raw, .*, and download=False; get one: "
                                       r"\(1\) download=True .*; or \(2\) put the four published files "
                                       r"\(train-images-idx3-ubyte.gz, "):
        zoo.data.create("mnist", data_dir=str(tmp_path), download=False).setup()


def test_a_failed_download_leaves_nothing_behind(tmp_path, monkeypatch):
    def half_download(url, download_root, filename, md5):  # the connection drops after part of the archive
        Path(download_root).mkdir(parents=True, exist_ok=True)
        (Path(download_root) / filename).write_bytes(b"the first bytes of an archive")
        raise OSError("connection reset")

    monkeypatch.setattr("zoo.data.cifar.download_and_extract_archive", half_download)
    with pytest.raises(ZooError, match=r"could not be downloaded \(OSError: connection reset\)"):
        zoo.data.create("cifar10", data_dir=str(tmp_path / "data" / "cifar")).setup()
    assert list(tmp_path.iterdir()) == []  # no empty ./data, no half archive
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "notes.txt").write_text("the user's")
    with pytest.raises(ZooError, match="connection reset"):
        zoo.data.create("cifar100", data_dir=str(mine)).setup()
    assert [p.name for p in mine.iterdir()] == ["notes.txt"]  # what was there stays; only the download's file goes


def test_folder_with_one_root_split_by_fractions_and_corrupt_files_skipped(tmp_path):
    write_folder(tmp_path / "pets")
    (tmp_path / "pets" / "cat" / "notes.txt").write_text("not an image")
    (tmp_path / "pets" / "dog" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n truncated")
    with pytest.warns(UserWarning, match=r"skipping 2 file\(s\) .*not readable images: .*notes.txt"):
        dm = zoo.data.create("folder", data_dir=str(tmp_path / "pets"), image_size=32, test_split=6, val_split=6,
                             num_workers=0)
    assert dm.class_names == ["cat", "dog", "owl"] and dm.num_classes == 3
    dm.setup()
    assert (len(dm.train_set), len(dm.val_set), len(dm.test_set)) == (12, 6, 6)
    x, y = next(iter(dm.val_dataloader()))
    assert x.dtype == torch.uint8 and x.shape == (6, 3, 32, 32) and sorted(y.tolist()) == [0, 0, 1, 1, 2, 2]
    cache = tmp_path / "pets" / ".zoo-stats.json"
    stats = json.loads(cache.read_text())
    (key,) = stats
    assert stats[key]["mean"] == dm.mean
    stats[key]["mean"] = [0.1, 0.2, 0.3]  # a value only the cache can give
    cache.write_text(json.dumps(stats))
    with pytest.warns(UserWarning, match="skipping 2 file"):
        again = zoo.data.create("folder", data_dir=str(tmp_path / "pets"), image_size=32, test_split=6, val_split=6)
    again.setup()
    assert again.mean == [0.1, 0.2, 0.3]
    with pytest.raises(InputError, match=r"2 file\(s\) .* are not readable images"):
        zoo.data.create("folder", data_dir=str(tmp_path / "pets"), strict=True)


def test_folder_with_train_val_test_folders_trains(tmp_path):
    for split in ("train", "val", "test"):
        write_folder(tmp_path / split, per_class=4 if split != "train" else 10, size=24)
    dm = zoo.data.create("folder", data_dir=str(tmp_path), image_size=24, batch_size=8, num_workers=0)
    dm.setup()
    assert (len(dm.train_set), len(dm.val_set), len(dm.test_set)) == (30, 12, 12)
    model = zoo.create("lenet5", num_classes=3, in_chans=3, image_size=24)
    trainer = L.Trainer(max_epochs=1, logger=False, enable_checkpointing=False, enable_progress_bar=False)
    trainer.fit(model, dm)
    hits = trainer.callback_metrics["val_acc"].item() * 12  # the val/ folder's 12 images, each counted once
    assert hits == pytest.approx(round(hits), abs=1e-4) and trainer.global_step == 4  # 30 images, batches of 8


@pytest.mark.parametrize("layout, message", [
    ({}, "needs at least two class folders"),
    ({"only": 3}, "needs at least two class folders with images, found \\['only'\\]"),
    ({"a": 3, "b": 0}, "class folder\\(s\\) b in .* have no images"),
])
def test_folder_bad_layouts_are_clear_errors(tmp_path, layout, message):
    root = tmp_path / "imgs"
    root.mkdir()
    for name, n in layout.items():
        (root / name).mkdir()
        for i in range(n):
            Image.new("RGB", (8, 8)).save(root / name / f"{i}.png")
    with pytest.raises(InputError, match=message):
        zoo.data.create("folder", data_dir=str(root))
    with pytest.raises(InputError, match="does not exist"):
        zoo.data.create("folder", data_dir=str(tmp_path / "nowhere"))


# -- splits and folds ----------------------------------------------------------------------------


def test_fake_data_splits_are_deterministic_and_disjoint():
    a = zoo.data.create("fake", train_size=300, val_split=0.2, image_size=8)
    b = zoo.data.create("fake", train_size=300, val_split=0.2, image_size=8)
    c = zoo.data.create("fake", train_size=300, val_split=0.2, image_size=8, split_seed=1)
    for dm in (a, b, c):
        dm.setup()
    assert torch.equal(a.val_set.images, b.val_set.images) and not torch.equal(a.val_set.images, c.val_set.images)
    assert (len(a.train_set), len(a.val_set)) == (240, 60)
    train = {bytes(x.numpy()) for x in a.train_set.images}
    assert not train & {bytes(x.numpy()) for x in a.val_set.images}


def test_folds_partition_the_training_images():
    seen = []
    for fold in range(4):
        dm = zoo.data.create("fake", train_size=200, image_size=8, folds=4, fold=fold)
        dm.setup()
        assert len(dm.val_set) == 50 and len(dm.train_set) == 150
        assert np.bincount(dm.val_set.labels.numpy()).tolist() == [5] * 10
        seen.append({bytes(x.numpy()) for x in dm.val_set.images})
    assert len(set.union(*seen)) == 200  # every image validates exactly once
    with pytest.raises(InputError, match="fold must be in 0..3"):
        zoo.data.create("fake", folds=4, fold=4).setup()


def test_under_ddp_each_test_image_is_in_exactly_one_ranks_share():
    """Lightning's DistributedSampler would pad 201 images to 2 x 101, counting one of them twice."""
    from types import SimpleNamespace

    dm = zoo.data.create("fake", test_size=201, image_size=8, batch_size=32)
    dm.setup("test")
    shares = []
    for rank in (0, 1):
        dm.trainer = SimpleNamespace(world_size=2, global_rank=rank)
        shares.append([int(i) for batch in dm.test_dataloader().batch_sampler for i in batch])
    assert sorted(shares[0] + shares[1]) == list(range(201)) and [len(s) for s in shares] == [101, 100]
    dm.trainer = SimpleNamespace(world_size=1, global_rank=0)
    assert len(dm.test_dataloader().dataset) == 201 and dm.test_dataloader().sampler.__class__.__name__ == (
        "SequentialSampler")


# -- presets -------------------------------------------------------------------------------------


@pytest.mark.parametrize("preset", PRESETS)
@pytest.mark.parametrize("size", [32, 96])
def test_each_preset_keeps_shape_and_dtype_and_changes_pixels(preset, size):
    from zoo.data.base import collate

    torch.manual_seed(0)
    dm = zoo.data.create("fake", image_size=size, train_size=64, val_split=0, augment=preset, batch_size=64)
    dm.setup()
    x, y = collate(dm.train_set.__getitems__(list(range(64))))  # what the loader hands out, in order
    assert x.dtype == torch.uint8 and x.shape == (64, 3, size, size)
    out, target = dm.batch_augment(x, y, train=True)
    assert out.dtype == torch.float32 and out.shape == x.shape and torch.equal(target, y)
    plain = dm.batch_augment.normalize(dm.train_set.images)
    if preset == "none":
        assert torch.equal(out, plain)
    else:
        changed = (out - plain).abs().flatten(1).amax(1) > 1e-3
        assert changed.float().mean() > 0.4  # most images differ (a flip or policy may leave a few as they were)


def test_erasing_color_jitter_mixup_cutmix():
    torch.manual_seed(0)
    x = torch.ones(256, 3, 16, 16)
    erased = random_erasing(x, p=0.5)
    hit = (erased == 0).flatten(1).any(1)
    assert 0.35 < hit.float().mean() < 0.65  # about half the images
    area = (erased[hit] == 0).float().mean(dim=(1, 2, 3))
    assert area.min() >= 0.01 and area.max() <= 0.40  # 2-33 % of the image, up to whole-pixel rounding at 16x16
    jitter = sample_transform("none", 32, color_jitter=0.4)
    image = torch.randint(0, 256, (3, 32, 32), dtype=torch.uint8)
    assert jitter(image).dtype == torch.uint8 and not torch.equal(jitter(image), image)
    for kwargs in ({"mixup": 0.2}, {"cutmix": 1.0}, {"mixup": 0.2, "cutmix": 1.0}):
        augment = BatchAugment([0.5] * 3, [0.25] * 3, num_classes=10, **kwargs)
        images = torch.randint(0, 256, (32, 3, 16, 16), dtype=torch.uint8)
        out, soft = augment(images, torch.arange(32) % 10, train=True)
        assert soft.shape == (32, 10)
        torch.testing.assert_close(soft.sum(1), torch.ones(32))
        assert (soft > 0).sum(1).max() == 2  # two classes mixed
    with pytest.raises(InputError, match="erasing is a probability"):
        zoo.data.create("fake", erasing=2.0)


def test_mixup_trains_with_soft_targets():
    torch.manual_seed(0)
    dm = zoo.data.create("digits", mixup=0.4, cutmix=1.0)
    model = zoo.create("lenet5", num_classes=10, in_chans=1)
    trainer = L.Trainer(max_steps=3, limit_val_batches=1, logger=False, enable_checkpointing=False,
                        enable_progress_bar=False)
    trainer.fit(model, dm)
    assert torch.isfinite(trainer.callback_metrics["train_loss_epoch"])
    hinge = zoo.create("lenet5", num_classes=10, in_chans=1, loss="hinge")
    with pytest.raises(InputError, match="hinge loss needs class labels"):
        hinge.loss(torch.zeros(2, 10), torch.full((2, 10), 0.1))


def test_fast_path_agrees_in_distribution_with_the_per_sample_path():
    """The batch crop+flip against torchvision's RandomCrop(padding=4) + RandomHorizontalFlip, image by image."""
    torch.manual_seed(0)
    n, size = 8000, 16
    x = torch.zeros(n, 1, size, size, dtype=torch.uint8)
    x[:, 0, 5, 3] = 255  # one bright pixel off-centre: where it lands is the offset (and the flip)
    fast = random_crop(x, 4, flip=True)
    per_sample = v2.Compose([v2.RandomCrop(size, padding=4), v2.RandomHorizontalFlip()])
    slow = torch.stack([per_sample(image) for image in x])
    assert fast.dtype == slow.dtype == torch.uint8 and fast.shape == slow.shape
    # the mean image: the same brightness overall (the pixel is cropped away equally often) ...
    assert abs(fast.float().mean() - slow.float().mean()) < 0.03 * slow.float().mean()
    # ... and, per pixel row and column, the same distribution of where the pixel lands
    for axis in (0, 1):  # summed over columns: rows; summed over rows: columns
        a = fast.float().mean(0)[0].sum(1 - axis)
        b = slow.float().mean(0)[0].sum(1 - axis)
        assert (a / a.sum() - b / b.sum()).abs().max() < 0.02, axis
    visible = fast.flatten(1).amax(1) > 0
    mirrored = fast[visible, 0].flatten(1).argmax(1) % size > 7
    assert 0.45 < mirrored.float().mean() < 0.55


def test_normalization_only_and_no_augmentation_outside_training():
    dm = zoo.data.create("fake", image_size=8, train_size=100, erasing=1.0, mixup=1.0)
    dm.setup()
    dm.trainer = L.Trainer(logger=False, enable_progress_bar=False)
    batch = dm.val_set.images, dm.val_set.labels
    dm.trainer.validating = True
    x, y = dm.on_after_batch_transfer(batch, 0)
    torch.testing.assert_close(x, (batch[0].float() / 255 - torch.tensor(dm.mean).view(1, 3, 1, 1))
                               / torch.tensor(dm.std).view(1, 3, 1, 1))
    assert torch.equal(y, batch[1])


# -- the commands ---------------------------------------------------------------------------------


def test_zoo_data_show_and_list(tmp_path, capsys):
    from zoo.cli import main

    proc = zoo_here("data", "show", "digits", "--augment", "crop", "--set", "mixup=0.4", "--n", "8",
                   "--out", "grid.png", cwd=tmp_path)  # the real command once; the rest in this process
    assert proc.returncode == 0, proc.stderr
    image = Image.open(tmp_path / "grid.png")
    assert image.size[0] > 800 and len(np.unique(np.asarray(image.convert("L")))) > 50  # a real picture
    main(["data", "list"])
    listed = capsys.readouterr().out.splitlines()[2:]
    assert {"digits", "mnist", "fashion_mnist", "cifar10", "cifar100", "folder", "fake"} <= {
        line.split()[0] for line in listed}
    assert all(line.rstrip().endswith((".", ")")) for line in listed), listed  # whole sentences, none cut
    with pytest.raises(SystemExit) as exit_:
        main(["data", "show", "digits", "--set", "nonsense"])
    assert exit_.value.code == 2 and "zoo: error: --set takes KEY=VALUE pairs" in capsys.readouterr().err


def test_zoo_cv_prints_each_fold_and_mean_std(tmp_path):
    proc = zoo_here("cv", "--folds", "3", "--model", "linear", "--data.augment", "none", "--trainer.max_epochs", "2",
                   cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    folds = [line for line in lines if line[:1] in "012" and "runs/" in line]
    assert len(folds) == 3
    summary = next(line for line in lines if line.startswith("mean +- std"))
    accs = [float(line.split()[1]) for line in folds]
    assert f"{np.mean(accs):.2f} +- {np.std(accs, ddof=1):.2f}" in summary
    assert min(accs) > 80  # a linear classifier on held-out digits folds
    assert not (tmp_path / "runs" / "linear-digits").exists()  # not mixed with normal runs
    (session,) = (tmp_path / "runs" / "cv").iterdir()
    assert sorted(p.name for p in (session / "linear-digits").iterdir()) == ["fold0", "fold1", "fold2"]
    announced = [line for line in lines if line.startswith("zoo cv: ")]  # printed "fold 1 of 3" for fold0
    assert announced == [f"zoo cv: fold{k} of fold0-fold2 (--data.fold {k})" for k in range(3)]



# -- Fashion-MNIST and MNIST found where they lie, read from the .gz files directly ----------------


def test_idx_files_side_by_side_are_found_and_read_without_unpacking(tmp_path, monkeypatch):
    (train_x, train_y), (test_x, test_y) = fake_mnist(tmp_path, name="flat", n_train=100, n_test=30)
    flat = tmp_path / "flat" / "raw"
    before = sorted(p.name for p in flat.iterdir())
    flat.chmod(0o555)  # read-only, as a system package's folder is
    try:
        dm = zoo.data.create("fashion_mnist", data_dir=str(flat), download=False, val_split=10)
        dm.setup()
    finally:
        flat.chmod(0o755)
    assert sorted(p.name for p in flat.iterdir()) == before  # nothing unpacked beside the files
    assert torch.equal(dm.test_set.images[:, 0], torch.as_tensor(test_x, dtype=torch.uint8))
    assert torch.equal(dm.test_set.labels, torch.as_tensor(test_y))
    assert len(dm.train_set) + len(dm.val_set) == 100


def test_torchvision_layout_comes_before_the_flat_files_and_the_system_copy(tmp_path, monkeypatch):
    fake_mnist(tmp_path, "FashionMNIST", n_train=40, n_test=20)  # data_dir/FashionMNIST/raw
    write_idx(tmp_path, "train", np.zeros((60, 28, 28)), np.arange(60) % 10)  # data_dir itself
    write_idx(tmp_path, "t10k", np.zeros((10, 28, 28)), np.arange(10) % 10)
    system = tmp_path / "system"
    write_idx(system, "train", np.zeros((80, 28, 28)), np.arange(80) % 10)
    write_idx(system, "t10k", np.zeros((10, 28, 28)), np.arange(10) % 10)
    monkeypatch.setattr(zoo.data.FashionMNISTDataModule, "system_dir", str(system))

    def test_count(data_dir):
        dm = zoo.data.create("fashion_mnist", data_dir=str(data_dir), download=False, val_split=0)
        dm.setup()
        return len(dm.train_set)

    assert test_count(tmp_path) == 40
    (tmp_path / "FashionMNIST" / "raw" / "t10k-labels-idx1-ubyte.gz").unlink()  # an incomplete copy is skipped
    assert test_count(tmp_path) == 60
    assert test_count(tmp_path / "empty") == 80  # the system copy last


def test_no_copy_anywhere_names_the_three_ways_to_get_one(tmp_path, monkeypatch):
    monkeypatch.setattr(zoo.data.FashionMNISTDataModule, "system_dir", str(tmp_path / "not-installed"))
    with pytest.raises(ZooError) as error:
        zoo.data.create("fashion_mnist", data_dir=str(tmp_path), download=False)
    message = str(error.value)
    assert message.startswith(f"no copy of Fashion-MNIST in {tmp_path}/FashionMNIST/raw, {tmp_path}, "
                              f"{tmp_path}/not-installed, and download=False; get one: ")
    assert "(1) apt-get install dataset-fashion-mnist" in message
    assert "(2) download=True (--data.download true) with a network" in message
    assert "(3) put the four published files (train-images-idx3-ubyte.gz, train-labels-idx1-ubyte.gz, " \
           "t10k-images-idx3-ubyte.gz, t10k-labels-idx1-ubyte.gz) in data_dir" in message


def _truncate(path):
    path.write_bytes(path.read_bytes()[: len(path.read_bytes()) // 2])


def _wrong_magic(path):
    raw = gzip.decompress(path.read_bytes())
    path.write_bytes(gzip.compress(struct.pack(">I", 2049) + raw[4:]))


def _short_data(path):
    raw = gzip.decompress(path.read_bytes())
    path.write_bytes(gzip.compress(raw[:-28]))


def _not_gzip(path):
    path.write_bytes(b"<html>404 Not Found</html>")


@pytest.mark.parametrize("damage, message", [
    (_truncate, r"train-images-idx3-ubyte.gz cannot be read \(EOFError: .*\); the file is truncated or corrupt"),
    (_wrong_magic, r"train-images-idx3-ubyte.gz is not an idx file of images: magic number 2049, expected 2051"),
    (_short_data, r"train-images-idx3-ubyte.gz holds 78372 bytes of data, but its header announces "
                  r"100 x 28 x 28 = 78400; the file is truncated or corrupt"),
    (_not_gzip, r"train-images-idx3-ubyte.gz cannot be read \(BadGzipFile: .*\)"),
])
def test_a_damaged_idx_file_is_an_error_naming_it(tmp_path, damage, message):
    fake_mnist(tmp_path, n_train=100, n_test=20)
    damage(tmp_path / "MNIST" / "raw" / "train-images-idx3-ubyte.gz")
    dm = zoo.data.create("mnist", data_dir=str(tmp_path), download=False)
    with pytest.raises(ZooError, match=message):
        dm.setup()
    assert dm.train_set is None and dm.test_set is None  # nothing half-loaded


def test_images_and_labels_from_different_copies_are_refused(tmp_path):
    fake_mnist(tmp_path, n_train=100, n_test=20)
    write_idx(tmp_path / "other", "t10k", np.zeros((30, 28, 28)), np.arange(30) % 10)
    (tmp_path / "other" / "t10k-labels-idx1-ubyte.gz").replace(tmp_path / "MNIST" / "raw" / "t10k-labels-idx1-ubyte.gz")
    with pytest.raises(ZooError, match=r"t10k-images-idx3-ubyte.gz holds 20 images but .*t10k-labels-idx1-ubyte.gz "
                                       r"holds 30 labels"):
        zoo.data.create("mnist", data_dir=str(tmp_path), download=False).setup()


class _RunsCode:
    """What an attacker pickles: unpickling calls os.mkdir (harmless here, visible afterwards)."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        import os

        return os.mkdir, (self.marker,)


@pytest.mark.parametrize("verify", [True, False])
def test_a_planted_cifar_pickle_runs_no_code(tmp_path, verify):
    write_cifar(tmp_path)
    marker = tmp_path / "code-ran"
    planted = tmp_path / "cifar-10-batches-py" / "data_batch_1"
    with open(planted, "wb") as f:
        pickle.dump({"data": _RunsCode(marker), "labels": [0]}, f)
    dm = zoo.data.create("cifar10", data_dir=str(tmp_path), download=False, verify=verify)
    expected = r"data_batch_1 is not the published file" if verify else \
        r"data_batch_1 is not a CIFAR file: it asks for posix.mkdir, which no CIFAR file holds"
    with pytest.raises(ZooError, match=expected):
        dm.setup()
    assert not marker.exists() and dm.train_set is None


def test_a_cifar_batch_of_the_wrong_shape_is_named(tmp_path):
    write_cifar(tmp_path)
    with open(tmp_path / "cifar-10-batches-py" / "data_batch_2", "wb") as f:
        pickle.dump({"data": np.zeros((5, 100), dtype=np.uint8), "labels": [0] * 5}, f)
    with pytest.raises(ZooError, match=r"data_batch_2 is not a CIFAR10 batch \(a dict with 'data', N x 3072 uint8"):
        zoo.data.create("cifar10", data_dir=str(tmp_path), download=False, verify=False).setup()


def test_a_16_bit_png_is_scaled_by_its_bit_depth_not_clipped(tmp_path):
    """PIL's convert clipped 16-bit samples at 255 (73.6 % of a real scan's pixels became white)."""
    from zoo.data.files import read_images

    raw = zoo.data.create("digits", image_size=32)
    raw.setup()
    scan = (raw.test_set.images[0, 0].clamp(0, 1).numpy() * 255).round().astype(np.uint16)
    Image.fromarray(scan.astype(np.uint8)).save(tmp_path / "eight.png")
    Image.fromarray(scan * 257).save(tmp_path / "sixteen.png")
    assert Image.open(tmp_path / "sixteen.png").mode in ("I;16", "I")  # really 16-bit on disk
    _, eight, _ = read_images([tmp_path / "eight.png"], 32, 1, 0.0, 1.0)
    _, sixteen, _ = read_images([tmp_path / "sixteen.png"], 32, 1, 0.0, 1.0)
    assert (sixteen - eight).abs().max() <= 1 / 255 and eight.mean() < 0.6
    folder = tmp_path / "folder"
    for label in ("a", "b"):
        (folder / label).mkdir(parents=True)
        for i in range(3):
            Image.fromarray(scan * 257).save(folder / label / f"{i}.png")
    data = zoo.data.create("folder", data_dir=str(folder), image_size=32, in_chans=1, val_split=0, test_split=0.34,
                           augment="none")
    data.setup()
    image = data.test_set[0][0]
    assert torch.equal(image[0], torch.as_tensor(scan, dtype=torch.uint8))


def test_an_epoch_without_a_training_batch_is_refused_before_training(tmp_path):
    """--data.batch_size 5000 --data.drop_last true on digits ran 0 steps and reported a test accuracy."""
    data = zoo.data.create("digits", batch_size=5000, drop_last=True)
    model = zoo.create("lenet5", num_classes=10, in_chans=1)
    trainer = L.Trainer(max_epochs=1, logger=False, enable_checkpointing=False, enable_progress_bar=False,
                        default_root_dir=tmp_path)
    with pytest.raises(ZooError, match=r"an epoch would have no training batch: 1257 training images and "
                                       r"batch_size=5000 with drop_last=True; lower --data.batch_size \(to 1257 at "
                                       r"most\) or set --data.drop_last false"):
        trainer.fit(model, data)
    assert trainer.global_step == 0


def test_mnist_like_data_keeps_the_chosen_classes_relabelled_in_order(tmp_path):
    (train_x, train_y), (test_x, test_y) = fake_mnist(tmp_path, "FashionMNIST")
    dm = zoo.data.create("fashion_mnist", data_dir=str(tmp_path), download=False, val_split=10, classes=[7, 2])
    assert (dm.num_classes, dm.class_names) == (2, ["Sneaker", "Pullover"])  # known before setup, for the model
    dm.setup()
    assert len(dm.train_set) + len(dm.val_set) == 40 and len(dm.test_set) == 10
    want = {bytes(x): 0 for x in test_x[test_y == 7].astype(np.uint8)} | \
        {bytes(x): 1 for x in test_x[test_y == 2].astype(np.uint8)}
    got = {bytes(x[0].numpy()): int(y) for x, y in zip(dm.test_set.images, dm.test_set.labels, strict=True)}
    assert got == want  # the Sneakers are class 0, the Pullovers class 1
    assert dm.hparams["classes"] == [7, 2]  # a checkpoint makes the same data again
    with pytest.raises(zoo.ZooError, match=r"distinct class numbers 0-9, got \[2, 2\]"):
        zoo.data.create("fashion_mnist", data_dir=str(tmp_path), download=False, classes=[2, 2])


def test_alternating_flips_mirror_each_image_in_every_other_epoch():
    """airbench's alternating flip: per image, a coin of its own in the first epoch (about half mirrored), then
    the other side each epoch; the same coins for the same images in any batch, new ones for a new key."""
    torch.manual_seed(0)
    x = torch.randint(0, 256, (4000, 1, 12, 12), dtype=torch.uint8)
    augment = BatchAugment([0.5], [0.25], flip=True, alternate_flips=True)
    first = alternating_flips(x, 0, flip_key(144))
    assert 0.45 < first.float().mean() < 0.55
    key = flip_key(144)
    coins = [alternating_flips(x, epoch, key) for epoch in range(3)]
    assert torch.equal(coins[1], ~coins[0]) and torch.equal(coins[2], coins[0])
    order = torch.randperm(4000)[:500]  # any batch of the images: each draws its own coin
    assert torch.equal(alternating_flips(x[order], 0, key), coins[0][order])
    assert torch.equal(alternating_flips(x.float() / 255, 0, key), coins[0])  # 0..1 float images alike
    out = [augment(x, torch.zeros(4000), train=True, epoch=epoch)[0] for epoch in (0, 1)]
    mirrored = [torch.isclose(o, augment.normalize(x).flip(-1)).flatten(1).all(1) for o in out]
    assert not (mirrored[0] & mirrored[1]).any() and (mirrored[0] | mirrored[1]).all()  # each side once in 2 epochs
    with pytest.raises(InputError, match="alternate_flips needs augment 'standard'"):
        zoo.data.create("fake", augment="crop", alternate_flips=True)
    dm = zoo.data.create("fake", image_size=64, alternate_flips=True)
    dm.setup("fit")
    with pytest.raises(InputError, match="below 64 pixels"):
        assert dm.batch_augment is None


def test_a_resumed_fit_mirrors_each_image_as_the_uninterrupted_one(tmp_path):
    """The alternating flips' key is drawn once and kept in the checkpoint (the DataModule's state), so a fit resumed
    from it gives each image the coin it had; a fresh fit with another seed draws another key."""
    options = {"trainer.max_epochs": 1, "trainer.limit_train_batches": 2, "trainer.limit_val_batches": 1,
               "trainer.limit_test_batches": 1, "trainer.enable_progress_bar": False, "data.alternate_flips": True,
               "data.image_size": 16, "trainer.logger.init_args.save_dir": str(tmp_path)}
    first = zoo.fit("lenet5", "fake", options)
    key = first.datamodule.flip_key
    assert key is not None and key.shape == (3 * 16 * 16,)
    saved = torch.load(first.checkpoint.with_name("last.ckpt"), weights_only=True)
    assert torch.equal(saved[type(first.datamodule).__qualname__]["flip_key"], key)
    resumed = zoo.fit("lenet5", "fake", {**options, "trainer.max_epochs": 2,
                                          "ckpt_path": str(first.checkpoint.with_name("last.ckpt"))})
    assert torch.equal(resumed.datamodule.flip_key, key)
    other = zoo.fit("lenet5", "fake", {**options, "seed_everything": 1})
    assert not torch.equal(other.datamodule.flip_key, key)
