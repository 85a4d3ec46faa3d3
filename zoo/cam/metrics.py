"""How far a class activation map can be trusted: localization against true boxes, and faithfulness to the model.

- Localization: the pointing game (the map's peak inside the object's box) and the box IoU (largest region above 20 %
  of the peak, the CAM paper's rule).
- Deletion and insertion (Petsiuk et al. 2018, RISE): the target's probability while the pixels are removed (set to
  0 in the normalized image, the dataset's mean) or inserted into a blurred copy, most relevant first; the area
  under each curve. A faithful map makes deletion fall fast (low AUC) and insertion rise fast (high AUC).
- ROAD (Rong et al. 2022): the change of the target's probability when a share of the pixels is replaced by noisy
  linear imputation from their neighbours (no out-of-distribution holes), most relevant first (MoRF: should fall) or
  least relevant first (LeRF: should stay), averaged over 10-90 %; combined = (LeRF - MoRF) / 2, higher is better.
  Equal to pytorch-grad-cam's ROAD metrics with its softmax target (the tests compare them).
- Sanity (Adebayo et al. 2018): the rank correlation between the maps of the trained net and of the same net with
  every weight randomized. A method that explains the model must change with it: near 0 passes, near 1 fails.

Every metric runs its forward passes batched, with a progress bar on long work.
"""

import copy
import time
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from torch import nn

from zoo.cam.methods import METHODS, _chunks, _eval_mode, _net, check_method, compute_cam
from zoo.errors import InputError, ZooError

#: The ROAD percentiles pytorch-grad-cam averages over.
ROAD_PERCENTILES = (10, 20, 30, 40, 50, 60, 70, 80, 90)
#: The faithfulness scores, in table order, and which way is better.
FAITHFULNESS = {"deletion": "lower", "insertion": "higher", "road_morf": "lower", "road_lerf": "higher",
                "road": "higher", "sanity": "lower"}


# -- localization ------------------------------------------------------------------------------


def pointing_game(maps: torch.Tensor, boxes: torch.Tensor) -> torch.Tensor:
    """Per image, whether the map's peak lies inside the box ``(x0, y0, x1, y1)`` (x1, y1 exclusive)."""
    n, h, w = maps.shape
    peak = maps.flatten(1).argmax(1)
    y, x = peak // w, peak % w
    b = boxes.to(maps.device)
    return (x >= b[:, 0]) & (x < b[:, 2]) & (y >= b[:, 1]) & (y < b[:, 3])


def largest_region_box(cam: torch.Tensor, threshold: float = 0.2) -> torch.Tensor:
    """The box around the largest connected region above `threshold` x the map's maximum (the CAM paper's rule)."""
    from scipy import ndimage

    values = cam.detach().cpu().numpy()
    labels, count = ndimage.label(values >= threshold * values.max())
    if count == 0:
        return torch.zeros(4, dtype=torch.long)
    sizes = ndimage.sum(np.ones_like(values), labels, index=range(1, count + 1))
    ys, xs = np.nonzero(labels == 1 + int(np.argmax(sizes)))
    return torch.tensor([xs.min(), ys.min(), xs.max() + 1, ys.max() + 1])


def box_iou(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """IoU of boxes ``[N, 4]`` against boxes ``[N, 4]``, pairwise by row (x1, y1 exclusive)."""
    import torchvision

    return torchvision.ops.box_iou(a.float(), b.float()).diagonal()


def localization(maps: torch.Tensor, boxes: torch.Tensor, threshold: float = 0.2) -> dict[str, float]:
    """Pointing-game accuracy and mean box IoU (largest region above `threshold` of the maximum)."""
    predicted = torch.stack([largest_region_box(m, threshold) for m in maps])
    return {
        "pointing_game": pointing_game(maps, boxes).float().mean().item(),
        "box_iou": box_iou(predicted, boxes.cpu()).mean().item(),
    }


# -- faithfulness ------------------------------------------------------------------------------


def _probabilities(net: nn.Module, inputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    return net(inputs).softmax(1).gather(1, targets[:, None])[:, 0]


def _order(maps: torch.Tensor) -> torch.Tensor:
    """Each pixel's rank by relevance, 0 the most relevant: ``[N, H*W]``."""
    flat = maps.flatten(1)
    order = flat.argsort(dim=1, descending=True, stable=True)
    return torch.empty_like(order).scatter_(1, order, torch.arange(flat.shape[1]).expand_as(order).contiguous())


def _auc(curve: torch.Tensor) -> torch.Tensor:
    """The trapezoid area under curves ``[N, steps + 1]`` sampled evenly on [0, 1] (RISE's formula)."""
    return (curve.sum(1) - curve[:, 0] / 2 - curve[:, -1] / 2) / (curve.shape[1] - 1)


def deletion_insertion(model: nn.Module, images: torch.Tensor, maps: torch.Tensor, targets: torch.Tensor,
                       steps: int = 32, batch_size: int = 256) -> dict[str, torch.Tensor]:
    """Per image, the deletion and insertion AUC of its map (Petsiuk et al. 2018).

    In `steps` equal steps the most relevant pixels go first: deletion sets them to 0 (in the normalized image: the
    dataset's mean), insertion copies them into the image blurred by a Gaussian (11 pixels, sigma 5, RISE's kernel).
    The target's softmax probability is read at each of the ``steps + 1`` points; each curve's area is its score.
    """
    from torchvision.transforms.functional import gaussian_blur

    net = _net(model)
    n, c, h, w = images.shape
    rank = _order(maps.to(images.device)).view(n, 1, h, w)
    per_step = -(-(h * w) // steps)
    kernel = min(11, 2 * min(h, w) - 1)  # reflected padding needs a kernel narrower than twice the image
    blurred = gaussian_blur(images, kernel_size=[kernel, kernel], sigma=[5.0, 5.0])
    curves = {"deletion": torch.empty(n * (steps + 1)), "insertion": torch.empty(n * (steps + 1))}
    targets = torch.as_tensor(targets, device=images.device).long()
    with torch.inference_mode(False), torch.no_grad(), _eval_mode(net):
        for rows in _chunks(n * (steps + 1), batch_size, "deletion, insertion"):
            image, step = rows // (steps + 1), rows % (steps + 1)
            gone = rank[image] < (step * per_step)[:, None, None, None]  # the pixels removed so far
            x = images[image]
            curves["deletion"][rows] = _probabilities(net, torch.where(gone, 0.0, x), targets[image]).cpu()
            curves["insertion"][rows] = _probabilities(net, torch.where(gone, x, blurred[image]), targets[image]).cpu()
    return {name: _auc(curve.view(n, steps + 1)) for name, curve in curves.items()}


_NEIGHBOURS = ((1, 1, 1 / 12), (0, 1, 1 / 6), (-1, 1, 1 / 12), (1, -1, 1 / 12), (0, -1, 1 / 6), (-1, -1, 1 / 12),
               (1, 0, 1 / 6), (-1, 0, 1 / 6))


def impute(image: torch.Tensor, keep: torch.Tensor, noise: float = 0.01) -> torch.Tensor:
    """ROAD's noisy linear imputation: each pixel where `keep` is 0 becomes the weighted mean of its 8 neighbours
    (1/6 beside, 1/12 diagonal), solved for all missing pixels at once, plus Gaussian noise of std `noise` (drawn
    from torch's global generator, in pytorch-grad-cam's order). ``image [C, H, W]``, ``keep [H, W]``."""
    from scipy.sparse import coo_matrix
    from scipy.sparse.linalg import spsolve

    c, h, w = image.shape
    kept = keep.reshape(-1).cpu().numpy() > 0.5
    missing = np.flatnonzero(~kept)
    if len(missing) == 0:
        return image.clone()
    flat = image.reshape(c, -1).cpu().numpy().astype(np.float64)
    index = np.full(h * w, -1)
    index[missing] = np.arange(len(missing))
    y, x = missing // w, missing % w
    rows, cols, values = [np.arange(len(missing))], [np.arange(len(missing))], []
    diagonal = np.ones(len(missing))
    b = np.zeros((len(missing), c))
    for dy, dx, weight in _NEIGHBOURS:
        ny, nx = y + dy, x + dx
        inside = (ny >= 0) & (nx >= 0) & (ny < h) & (nx < w)
        diagonal[~inside] -= weight
        at = np.flatnonzero(inside)
        neighbour = ny[at] * w + nx[at]
        known = kept[neighbour]
        b[at[known]] -= weight * flat[:, neighbour[known]].T
        rows.append(at[~known])
        cols.append(index[neighbour[~known]])
        values.append(np.full((~known).sum(), weight))
    values.insert(0, -diagonal)
    a = coo_matrix((np.concatenate(values), (np.concatenate(rows), np.concatenate(cols))),
                   shape=(len(missing), len(missing))).tocsc()
    solved = torch.tensor(spsolve(a, b), dtype=torch.float).reshape(len(missing), c).t()
    out = image.reshape(c, -1).clone()
    out[:, torch.from_numpy(missing)] = solved.to(out.device) + noise * torch.randn_like(solved).to(out.device)
    return out.view_as(image)


def road(model: nn.Module, images: torch.Tensor, maps: torch.Tensor, targets: torch.Tensor,
         percentiles: Sequence[int] = ROAD_PERCENTILES, batch_size: int = 256, seed: int | None = 0
         ) -> dict[str, torch.Tensor]:
    """Per image, ROAD's most-relevant-first and least-relevant-first scores and their combination (Rong et al.
    2022), as pytorch-grad-cam's ``ROADMostRelevantFirstAverage``, ``ROADLeastRelevantFirstAverage`` and
    ``ROADCombined`` compute them with ``ClassifierOutputSoftmaxTarget``: the change of the target's probability
    when the pixels at or above (MoRF) or below (LeRF) each percentile of the map are imputed, averaged.
    `seed` fixes the imputation's noise without touching torch's global generator (None: use it as it is)."""
    net = _net(model)
    targets = torch.as_tensor(targets, device=images.device).long()
    maps = maps.detach().cpu()
    inputs = []
    with torch.random.fork_rng(enabled=seed is not None):
        if seed is not None:
            torch.manual_seed(seed)
        for flip in (True, False):  # LeRF then MoRF: pytorch-grad-cam's order, for the same noise
            for p in percentiles:
                for image, cam in zip(images, maps, strict=True):
                    cam = 1 - cam if flip else cam
                    threshold = np.percentile(cam.numpy(), p)
                    inputs.append(impute(image.cpu(), (cam < threshold).float()))
    inputs = torch.stack(inputs).to(images.device)
    n, count = len(images), len(percentiles)
    with torch.inference_mode(False), torch.no_grad(), _eval_mode(net):
        before = _probabilities(net, images, targets)
        after = torch.cat([_probabilities(net, inputs[rows], targets[rows % n]) for rows in
                           _chunks(len(inputs), batch_size, "road")]).view(2, count, n)
    change = (after - before).mean(1)
    return {"road_lerf": change[0].cpu(), "road_morf": change[1].cpu(), "road": ((change[0] - change[1]) / 2).cpu()}


def randomized(model: nn.Module, seed: int = 0) -> nn.Module:
    """A copy of the net with every weight drawn again from its initializer (and BatchNorm's statistics reset):
    the model-randomization test's second net (Adebayo et al. 2018)."""
    net = copy.deepcopy(_net(model))
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        for module in net.modules():
            if hasattr(module, "reset_parameters"):
                module.reset_parameters()
    return net


def rank_correlation(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Spearman's rank correlation of each pair of maps ``[N, H, W]`` (ties get their average rank; a constant map
    correlates 0 with anything)."""
    from scipy.stats import rankdata

    ra = torch.from_numpy(rankdata(a.flatten(1).cpu().numpy(), axis=1))
    rb = torch.from_numpy(rankdata(b.flatten(1).cpu().numpy(), axis=1))
    ra, rb = ra - ra.mean(1, keepdim=True), rb - rb.mean(1, keepdim=True)
    norm = ra.norm(dim=1) * rb.norm(dim=1)
    return torch.where(norm > 0, (ra * rb).sum(1) / norm.clamp_min(1e-12), torch.zeros_like(norm)).float()


def _maps(model: nn.Module, x: torch.Tensor, targets: torch.Tensor, method: str, layer: str | None,
          batch_size: int) -> torch.Tensor:
    return torch.cat([compute_cam(model, x[i:i + batch_size], targets[i:i + batch_size], method, layer,
                                  batch_size).maps for i in range(0, len(x), batch_size)])


def evaluate_faithfulness(model: nn.Module, images: torch.Tensor, targets: Sequence[int] | torch.Tensor,
                          methods: Sequence[str] = METHODS, layer: str | None = None, batch_size: int = 64,
                          steps: int = 32, boxes: torch.Tensor | None = None, seed: int = 0
                          ) -> dict[str, dict[str, float] | None]:
    """Every method's mean scores on `images` (normalized, as the model takes them), explaining `targets` (usually
    the true classes): deletion, insertion, ROAD (MoRF, LeRF, combined), the randomization sanity check, seconds
    per image for the maps alone, and with `boxes` the pointing game and box IoU.

    A method that does not apply to the net (plain CAM on a head that is not GAP + linear) scores None.
    """
    from tqdm import tqdm

    for method in methods:
        check_method(method)
    targets = torch.as_tensor(targets).long()
    if len(targets) != len(images):
        raise InputError(f"{len(targets)} targets given for {len(images)} images; give one class per image")
    random_net = randomized(model, seed)
    scores: dict[str, dict[str, float] | None] = {}
    for method in tqdm(methods, desc="methods", leave=False, disable=None):
        try:
            start = time.perf_counter()
            maps = _maps(model, images, targets, method, layer, batch_size)
            seconds = (time.perf_counter() - start) / len(images)
        except ZooError:
            scores[method] = None
            continue
        result: dict[str, Any] = {**deletion_insertion(model, images, maps, targets, steps),
                                  **road(model, images, maps, targets, seed=seed),
                                  "sanity": rank_correlation(maps, _maps(random_net, images, targets, method, layer,
                                                                         batch_size))}
        result = {name: float(values.float().mean()) for name, values in result.items()}
        result["seconds_per_image"] = seconds
        if boxes is not None:
            result.update(localization(maps, boxes))
        scores[method] = result
    return scores
