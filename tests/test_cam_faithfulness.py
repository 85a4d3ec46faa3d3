"""Whether a map can be trusted: deletion and insertion, ROAD against pytorch-grad-cam's, the randomization check."""

import numpy as np
import pytest
import torch
from torch import nn

import zoo
from tests.test_cam import trained_like
from zoo.cam import (
    compute_cam,
    deletion_insertion,
    evaluate_faithfulness,
    randomized,
    rank_correlation,
    road,
    save_methods,
)


def test_road_equals_pytorch_grad_cams_with_the_softmax_target():
    from pytorch_grad_cam.metrics.road import ROADCombined, ROADLeastRelevantFirstAverage, ROADMostRelevantFirstAverage
    from pytorch_grad_cam.utils.model_targets import ClassifierOutputSoftmaxTarget

    net = trained_like("resnet20", num_classes=10).eval()
    torch.manual_seed(1)
    x = torch.randn(3, 3, 32, 32)
    result = compute_cam(net, x, method="gradcam")
    targets = [ClassifierOutputSoftmaxTarget(int(t)) for t in result.targets]
    torch.manual_seed(7)
    ours = road(net, x, result.maps, result.targets, seed=None)  # the same generator as the reference draws from
    torch.manual_seed(7)
    lerf = ROADLeastRelevantFirstAverage()(x, result.maps.numpy(), targets, net)
    morf = ROADMostRelevantFirstAverage()(x, result.maps.numpy(), targets, net)
    torch.manual_seed(7)
    combined = ROADCombined()(x, result.maps.numpy(), targets, net)
    np.testing.assert_allclose(ours["road_lerf"].numpy(), lerf, atol=1e-5)
    np.testing.assert_allclose(ours["road_morf"].numpy(), morf, atol=1e-5)
    np.testing.assert_allclose(ours["road"].numpy(), combined, atol=1e-5)
    assert not np.allclose(morf, 0)  # imputing pixels changed the probabilities: the comparison is not vacuous
    state = torch.random.get_rng_state()
    road(net, x, result.maps, result.targets)  # a fixed seed by default, and the global generator left alone
    assert torch.equal(state, torch.random.get_rng_state())


class TopLeftCorner(nn.Module):
    """Class 1 only while all 16 pixels of an 8x8 image's top-left quarter are 1: the evidence a map should find."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        evidence = 100 * (x[:, 0, :4, :4].sum((1, 2)) - 15.5)
        return torch.stack([torch.zeros_like(evidence), evidence], 1)


def test_deletion_and_insertion_on_a_model_whose_answer_is_known():
    x = torch.zeros(1, 1, 8, 8)
    x[0, 0, :4, :4] = 1  # blurred, the corner falls below the evidence: insertion starts from class 0
    right = torch.zeros(1, 8, 8)
    right[0, :4, :4] = 1
    wrong = 1 - right
    target = torch.tensor([1])
    good = deletion_insertion(TopLeftCorner(), x, right, target, steps=4)
    bad = deletion_insertion(TopLeftCorner(), x, wrong, target, steps=4)
    # 16 pixels a step: the right map deletes the corner in the first step (curve 1, 0, 0, 0, 0) and inserts it there
    # (0, 1, 1, 1, 1); the wrong one at the last step. RISE's trapezoid area: 0.5/4 and 3.5/4.
    assert good["deletion"].item() == pytest.approx(0.125, abs=1e-6)
    assert good["insertion"].item() == pytest.approx(0.875, abs=1e-6)
    assert bad["deletion"].item() == pytest.approx(0.875, abs=1e-6)
    assert bad["insertion"].item() == pytest.approx(0.125, abs=1e-6)


def test_rank_correlation_is_spearmans():
    from scipy.stats import spearmanr

    torch.manual_seed(0)
    a = torch.randint(0, 4, (5, 6, 6)).float()  # many ties, as ReLU'd maps have
    b = a + torch.randn(5, 6, 6)
    expected = [spearmanr(a[i].flatten(), b[i].flatten()).statistic for i in range(5)]
    np.testing.assert_allclose(rank_correlation(a, b).numpy(), expected, atol=1e-6)
    assert rank_correlation(a, -a).tolist() == pytest.approx([-1.0] * 5)
    assert rank_correlation(torch.zeros(1, 3, 3), a[:1, :3, :3]).tolist() == [0.0]  # a flat map: no order


def test_randomized_leaves_the_net_and_draws_every_weight_again():
    net = trained_like("resnet20", num_classes=10).eval()
    before = {k: v.clone() for k, v in net.state_dict().items()}
    copy = randomized(net, seed=3)
    assert all(torch.equal(before[k], v) for k, v in net.state_dict().items())
    layers = [f"{n}.weight" for n, m in net.named_modules() if isinstance(m, (nn.Conv2d, nn.Linear))]
    assert len(layers) == 20 and all(not torch.equal(copy.state_dict()[k], before[k]) for k in layers)
    assert torch.equal(copy.bn1.running_mean, torch.zeros_like(copy.bn1.running_mean))
    assert all(torch.equal(v, randomized(net, seed=3).state_dict()[k]) for k, v in copy.state_dict().items())


@pytest.fixture(scope="module")
def fashion():
    """zoo's LeNet-5 weights for Fashion-MNIST (shipped by zoo-weights), on 48 real test images."""
    model = zoo.create("lenet5", weights="zoo:fashion_mnist").eval()
    data = zoo.data.create("fashion_mnist", image_size=model.hparams.image_size)
    return model, *data.normalized("test", 48)


def test_a_trained_nets_maps_are_faithful_and_fail_with_its_weights_randomized(fashion):
    model, x, y = fashion
    scores = evaluate_faithfulness(model, x, y, ["cam", "gradcam", "ablationcam"])
    assert scores["cam"] is None  # LeNet-5's head is not GAP + linear
    for method in ("gradcam", "ablationcam"):
        s = scores[method]
        assert s["deletion"] < s["insertion"]  # removing what the map names hurts, inserting it helps
        assert s["road_morf"] < s["road_lerf"] and s["road"] > 0
        assert abs(s["sanity"]) < 0.5  # the maps of a randomized LeNet-5 are other maps
        assert s["seconds_per_image"] > 0


def test_every_method_side_by_side(fashion, tmp_path):
    from PIL import Image

    model, x, y = fashion
    maps = {m: compute_cam(model, x[:3], method=m).maps for m in ("gradcam", "eigencam")} | {"cam": None}
    save_methods(x[:3] * 0.5 + 0.5, maps, ["a", "b", "c"], str(tmp_path / "all.png"))
    width, height = Image.open(tmp_path / "all.png").size
    assert width > height > 200  # 3 rows of 4 cells


def _board():
    import importlib.util

    from tests.conftest import ROOT

    spec = importlib.util.spec_from_file_location("cam_board", ROOT / "benchmarks" / "cam_board.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module, ROOT / "benchmarks" / "results" / "cam"


def test_the_committed_cam_leaderboard_is_what_its_script_renders():
    import json

    board, folder = _board()
    committed = json.loads((folder / "fashion_mnist.json").read_text())
    assert (folder / "fashion_mnist.md").read_text() == board.markdown(committed)
    assert (folder / "index.html").read_text() == board.page(committed)
    models = {row["model"]: row for row in committed["models"]}
    assert set(models) == set(board.weighted_models())  # every family with zoo:fashion_mnist weights
    spatial = [row for row in models.values() if row["spatial"]]
    assert len(spatial) >= 6 and not models["mlp"]["spatial"]  # its features are a vector; linear reads the pixels
    for row in spatial:
        scored = [m for m, s in row["scores"].items() if s is not None]
        assert len(scored) >= 9 and (folder / f"{row['model']}.png").is_file()
        for s in row["scores"].values():
            if s is not None:
                assert 0 <= s["deletion"] <= 1 and 0 <= s["insertion"] <= 1 and -1 <= s["sanity"] <= 1


def test_the_cam_leaderboard_page_in_headless_chromium(tmp_path):
    """The committed page in a real browser: a row per model and method, every picture loads, a screenshot."""
    from tests.test_bench import CHROMIUM_FLAGS, _chromium

    browser_path = _chromium()
    if browser_path is None:
        pytest.skip("no chromium here (.ci/run installs Debian's chromium and sets ZOO_REQUIRE_BROWSER)")
    playwright = pytest.importorskip("playwright.sync_api")
    import json

    board, folder = _board()
    committed = json.loads((folder / "fashion_mnist.json").read_text())
    expected = sum(len(row["scores"]) if row["spatial"] else 1 for row in committed["models"])
    with playwright.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=browser_path, args=CHROMIUM_FLAGS)
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        page.goto((folder / "index.html").as_uri())
        assert page.locator("table#scores tbody tr").count() == expected
        assert page.locator("table#scores th").all_inner_texts()[:3] == ["model", "method", "deletion\nlower is better"]
        widths = page.eval_on_selector_all("img", "els => els.map(e => e.naturalWidth)")
        assert len(widths) == sum(row["spatial"] for row in committed["models"]) and min(widths) > 500
        page.screenshot(path=str(tmp_path / "cam_board.png"), full_page=True)
        browser.close()
    assert (tmp_path / "cam_board.png").stat().st_size > 20000
