"""The knn model against scikit-learn's KNeighborsClassifier, and through Lightning and the CLI."""

import lightning as L
import numpy as np
import pytest
import torch
from sklearn.neighbors import KNeighborsClassifier

import zoo
from tests.conftest import zoo_here
from zoo.errors import InputError
from zoo.models.knn import KNN


def digits(image_size: int = 8):
    dm = zoo.data.create("digits", image_size=image_size)
    train, test = dm.normalized("train"), dm.normalized("test")
    return dm, train, test


@pytest.mark.parametrize("k", [1, 3, 4, 7])
@pytest.mark.parametrize("metric", ["l2", "l1"])
def test_predictions_equal_scikit_learn(k, metric):
    _, (x, y), (xt, _) = digits(8)
    net = KNN(10, 1, k=k, metric=metric, chunk=100)  # several chunks of queries
    for start in range(0, len(x), 64):  # memorized batch by batch, as in training
        net.memorize(x[start:start + 64], y[start:start + 64])
    ours = net(xt).argmax(1).numpy()
    sk = KNeighborsClassifier(k, p=2 if metric == "l2" else 1, algorithm="brute")
    theirs = sk.fit(x.flatten(1).numpy(), y.numpy()).predict(xt.flatten(1).numpy())
    # where the k-th and (k+1)-th neighbours are equally far (up to rounding), scikit-learn's pick follows numpy's
    # argpartition (unspecified); zoo takes the one memorized first. Everywhere else: identical.
    d = torch.cdist(xt.flatten(1).double(), x.flatten(1).double(), p=2.0 if metric == "l2" else 1.0).sort(1).values
    boundary_tie = ((d[:, k - 1] - d[:, k]).abs() < 1e-4).numpy()  # equal up to float32 rounding
    assert np.array_equal(ours[~boundary_tie], theirs[~boundary_tie])
    assert (ours != theirs).sum() <= 0.01 * len(ours)
    if k == 4:  # an even k makes vote ties: both pick the smallest label
        votes = torch.exp(net(xt)).mul(k).round()
        assert (votes.max(1).values == 2).sum() > 0


def test_ties_are_broken_as_documented():
    net = KNN(3, 1, k=2)
    x = torch.tensor([[0.0], [2.0], [-2.0], [5.0]]).view(4, 1, 1, 1)
    net.memorize(x, torch.tensor([2, 1, 0, 0]))
    query = torch.zeros(1, 1, 1, 1)
    # nearest: the sample at 0 (class 2), then 2.0 and -2.0 at equal distance: the earlier one (class 1)
    # wins the place; votes 1 and 1: the smaller label (1) wins
    assert net(query).argmax(1).item() == 1
    assert torch.allclose(net(query).exp(), torch.tensor([[0.0, 0.5, 0.5]]), atol=1e-6)


def test_fit_memorizes_once_without_augmentation_and_checkpoints_reload(tmp_path):
    dm = zoo.data.create("digits", image_size=8)  # augment "crop" by default: knn must see the images as they are
    model = zoo.create("knn", num_classes=10, in_chans=1, image_size=8, k=1)
    trainer = L.Trainer(max_epochs=60, default_root_dir=tmp_path, enable_progress_bar=False, logger=False)
    trainer.fit(model, dm)
    assert trainer.current_epoch == 1  # one pass, then it stops
    (x, _), (xt, _) = dm.normalized("train"), dm.normalized("test")
    assert model.net.memory.shape == (1257, 64)
    assert torch.equal(model.net.memory.sort(0).values, x.flatten(1).sort(0).values)  # unshifted images
    path = trainer.checkpoint_callback.best_model_path
    again = zoo.ImageClassifier.load_from_checkpoint(path).eval()
    assert torch.equal(again.net.labels.sort().values, model.net.labels.sort().values)
    with torch.no_grad():
        assert torch.equal(again(xt).argmax(1), model(xt).argmax(1))
    accuracy = trainer.test(again, dm, verbose=False)[0]["test_acc"]
    assert accuracy > 0.96


def test_features_from_a_checkpoint(tmp_path):
    dm = zoo.data.create("digits")
    lenet = zoo.create("lenet5", num_classes=10, in_chans=1)
    trainer = L.Trainer(max_epochs=3, default_root_dir=tmp_path, enable_progress_bar=False, logger=False)
    trainer.fit(lenet, dm)
    path = trainer.checkpoint_callback.best_model_path
    model = zoo.create("knn", num_classes=10, in_chans=1, image_size=32, k=5, features=path)
    trainer = L.Trainer(max_epochs=5, default_root_dir=tmp_path / "knn", enable_progress_bar=False, logger=False)
    trainer.fit(model, dm)
    assert model.net.memory.shape == (1257, 84)  # LeNet's pre-logits vector (F6)
    assert not any(p.requires_grad for p in model.parameters())
    assert trainer.test(model, dm, verbose=False)[0]["test_acc"] > 0.8


def test_bad_arguments():
    with pytest.raises(InputError, match="k must be a positive integer"):
        zoo.create_model("knn", k=0)
    with pytest.raises(InputError, match="unknown metric 'cosine'"):
        zoo.create_model("knn", metric="cosine")
    with pytest.raises(InputError, match="turn mixup and cutmix off"):
        zoo.create_model("knn").memorize(torch.zeros(2, 3, 4, 4), torch.full((2, 10), 0.1))
    assert zoo.create_model("knn")(torch.zeros(2, 3, 32, 32)).shape == (2, 10)  # nothing memorized: uniform


def test_zoo_fit_knn_reports_test_accuracy_after_one_pass(tmp_path):
    proc = zoo_here("fit", "--model", "knn", "--data", "digits", "--data.image_size", "8", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    accuracy = float(proc.stdout.split("test accuracy: ")[1].split("%")[0])
    _, (x, y), (xt, yt) = digits(8)
    sk = KNeighborsClassifier(1, algorithm="brute").fit(x.flatten(1).numpy(), y.numpy())
    assert accuracy == pytest.approx(100 * sk.score(xt.flatten(1).numpy(), yt.numpy()), abs=0.01)
    assert "Epoch 1" not in proc.stdout and "returned `None`" not in proc.stderr


def test_knn_has_its_own_module_which_changes_no_warning_filter_and_warns_nothing(tmp_path):
    """Before, creating a kNN added three process-wide warning filters (hiding those warnings for every later
    fit) and zoo's DataModules asked the model whether it memorizes. Now kNN's own module gives Lightning
    none of those three warnings to give, and it memorizes from plain DataLoaders too, batch by batch."""
    import warnings

    from zoo.classifier import KNNClassifier

    before = list(warnings.filters)
    model = zoo.create("knn", num_classes=10, in_chans=1, image_size=8)
    assert isinstance(model, KNNClassifier) and warnings.filters == before
    _, (x, y), (xt, yt) = digits(8)
    loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(x, y), batch_size=100)
    val = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(xt, yt), batch_size=100)
    trainer = L.Trainer(max_epochs=5, default_root_dir=tmp_path, enable_progress_bar=False, logger=False,
                        enable_checkpointing=False, enable_model_summary=False)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        trainer.fit(model, loader, val)
    said = " ".join(str(w.message) for w in caught)
    for hidden in ("configure_optimizers` returned `None`", "`training_step` returned `None`",
                   "module(s) in eval mode at the start of training"):  # what the filters hid before
        assert hidden not in said
    assert trainer.current_epoch == 1 and model.net.memory.shape == (1257, 64)
    sk = KNeighborsClassifier(1, algorithm="brute").fit(x.flatten(1).numpy(), y.numpy())
    with torch.no_grad():
        assert np.mean(model(xt).argmax(1).numpy() == yt.numpy()) == pytest.approx(
            sk.score(xt.flatten(1).numpy(), yt.numpy()))
    assert issubclass(zoo.train.knn, KNNClassifier)  # the CLI's class for --model knn
