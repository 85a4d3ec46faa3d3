"""The class activation map methods, batched, on any zoo net: convolutional nets and vision transformers.

Every method weighs the channels ``A_k`` of one layer's output (by default the last feature map, the output of
``forward_features``) and sums them: ``M = ReLU(sum_k w_k A_k)``, or sums an element-wise product. The map is then
scaled to [0, 1], upsampled bilinearly to the input size and scaled again, the same sequence as pytorch-grad-cam, so
that each method gives pytorch-grad-cam's map on the same net, layer and images (the tests compare them).

Reading the last feature map needs no hook: the features are computed once and only the head is differentiated (or,
for Ablation-CAM, re-run). A named layer is read with a forward hook that is removed on return. Transformer tokens
``[N, T, C]`` are put on their grid ``[N, C, h, w]`` with the class and register tokens dropped (pytorch-grad-cam's
reshape transform); a Swin's ``[N, H, W, C]`` maps are permuted. For a ViT the default layer is the first norm of
the last block: its output still reaches the class token through attention, which the last feature map does not.
"""

import contextlib
import math
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from zoo.errors import InputError, ZooError

#: Every method, in the order pictures and tables show them. Names as pytorch-grad-cam's example script spells them.
METHODS = ("cam", "gradcam", "gradcam++", "hirescam", "xgradcam", "layercam", "gradcamelementwise", "eigencam",
           "eigengradcam", "scorecam", "ablationcam")
#: The methods that run the net again per channel: their cost grows with the layer's channels (``batch_size``).
MANY_PASSES = ("scorecam", "ablationcam")
#: Each method's paper, as docs and ``zoo cam --help`` cite it.
PAPERS = {
    "cam": "Zhou et al. 2016", "gradcam": "Selvaraju et al. 2017", "gradcam++": "Chattopadhyay et al. 2018",
    "hirescam": "Draelos & Carin 2020", "xgradcam": "Fu et al. 2020", "layercam": "Jiang et al. 2021",
    "gradcamelementwise": "pytorch-grad-cam", "eigencam": "Muhammad & Yeasin 2020",
    "eigengradcam": "pytorch-grad-cam", "scorecam": "Wang et al. 2020", "ablationcam": "Desai & Ramaswamy 2020",
}


@dataclass
class CAMResult:
    """Maps ``[N, H, W]`` in [0, 1] at the input size, the class each map explains, and its probability."""

    maps: torch.Tensor
    targets: torch.Tensor
    probs: torch.Tensor


def check_method(method: str) -> None:
    if method not in METHODS:
        raise InputError(f"unknown CAM method {method!r}; choose one of: {', '.join(METHODS)}")


def _net(model: nn.Module) -> nn.Module:
    return getattr(model, "net", model)  # an ImageClassifier or a plain zoo net


@contextlib.contextmanager
def _eval_mode(net: nn.Module) -> Iterator[None]:
    modes = [(m, m.training) for m in net.modules()]
    net.eval()
    try:
        yield
    finally:
        for m, training in modes:
            m.training = training


def _module(net: nn.Module, layer: str) -> nn.Module:
    try:
        return net.get_submodule(layer)
    except AttributeError:
        names = [n for n, _ in net.named_modules() if n]
        raise InputError(f"the model has no layer {layer!r}; layers include: {', '.join(names[-8:])}") from None


@contextlib.contextmanager
def _hooked(module: nn.Module, replace: Callable[[torch.Tensor], torch.Tensor]) -> Iterator[None]:
    """The module's output replaced by ``replace(output)`` while inside; the hook is removed on exit."""
    handle = module.register_forward_hook(lambda _m, _i, output: replace(output))
    try:
        yield
    finally:
        handle.remove()


def _is_gap_linear(net: nn.Module) -> bool:
    """Whether the net ends in CAM's head: global average pooling, then one linear layer. A global max pool
    (airbench's) is not: its logit reads each channel at its strongest position only, so the weighted sum of the
    maps is not the logit's decomposition CAM draws."""
    head = getattr(net, "get_classifier", None)
    if head is None or not isinstance(head(), nn.Linear) or \
            getattr(net, "pre_logits_features", None) != getattr(net, "num_features", None):
        return False
    # the head's modules (GoogLeNet's aux1 and aux2 are None without its auxiliary classifiers)
    heads = [getattr(net, name, None) for name in getattr(net, "head_names", ())]
    pools = [m for head in heads if isinstance(head, nn.Module) for m in head.modules()]
    return not any(isinstance(m, (nn.AdaptiveMaxPool2d, nn.MaxPool2d)) or getattr(m, "pool_type", "avg") != "avg"
                   for m in pools)  # timm's SelectAdaptivePool2d names its pooling


def transformer_layer(net: nn.Module) -> str | None:
    """The layer a transformer's maps are read from: the first norm of its last block (``blocks.11.norm1`` in timm's
    ViT, ``encoder.layers.encoder_layer_11.ln_1`` in torchvision's), pytorch-grad-cam's advice for ViTs."""
    names = [n for n, m in net.named_modules() if n.rsplit(".", 1)[-1] in ("norm1", "ln_1")
             and isinstance(m, nn.LayerNorm)]
    return names[-1] if names else None


@dataclass(frozen=True)
class Layout:
    """How one layer's output lies: ``nchw`` (a CNN), ``nhwc`` (a Swin) or ``tokens`` (a ViT: ``prefix`` class or
    register tokens first, then a ``side`` x ``side`` grid of patches)."""

    kind: str
    prefix: int = 0
    side: int = 0

    @classmethod
    def of(cls, net: nn.Module, output: torch.Tensor) -> "Layout":
        if output.dim() == 4:
            return cls("nhwc" if getattr(net, "output_fmt", "NCHW") == "NHWC" else "nchw")
        if output.dim() == 3:
            count = output.shape[1]
            prefix = getattr(net, "num_prefix_tokens", None)
            prefix = count - math.isqrt(count) ** 2 if prefix is None else int(prefix)
            side = math.isqrt(count - prefix)
            if side * side == count - prefix:
                return cls("tokens", prefix, side)
        raise ZooError(f"{type(net).__name__} has no spatial feature map (its features are {list(output.shape)}); "
                       f"class activation maps need a convolutional net or a vision transformer's patch tokens")

    def grid(self, output: torch.Tensor) -> torch.Tensor:
        """The output as ``[N, K, h, w]``."""
        if self.kind == "nhwc":
            return output.permute(0, 3, 1, 2)
        if self.kind == "tokens":
            patches = output[:, self.prefix:]
            return patches.reshape(len(output), self.side, self.side, -1).permute(0, 3, 1, 2)
        return output

    def ablate(self, output: torch.Tensor, channels: torch.Tensor, values: torch.Tensor) -> torch.Tensor:
        """Each row with its channel ``channels[i]`` set to ``values[i]`` (every position, class tokens too)."""
        out = output.clone()
        rows = torch.arange(len(out))
        if self.kind == "nchw":
            out[rows, channels] = values[:, None, None]
        else:  # the channel is the last dimension
            out.movedim(-1, 1)[rows, channels] = values[:, None] if out.dim() == 3 else values[:, None, None]
        return out


def _normalize(maps: torch.Tensor) -> torch.Tensor:
    flat = maps.flatten(1)
    flat = flat - flat.min(dim=1, keepdim=True).values
    return (flat / (flat.max(dim=1, keepdim=True).values + 1e-7)).view_as(maps)


def _projection(activations: torch.Tensor) -> torch.Tensor:
    """Each map's projection on its first principal component (EigenCAM), with NumPy's SVD as pytorch-grad-cam
    takes it: the component's sign is the SVD's, so the same routine gives the same map (the reduced SVD gives the
    same first component as pytorch-grad-cam's full one, without the C x C matrix it does not use)."""
    from concurrent.futures import ThreadPoolExecutor

    from threadpoolctl import threadpool_limits

    batch = activations.detach().cpu().float().numpy().copy()
    batch[np.isnan(batch)] = 0
    n, c = batch.shape[:2]
    flat = batch.reshape(n, c, -1).transpose(0, 2, 1)  # [N, positions, channels]
    flat = flat - flat.mean(axis=1, keepdims=True)
    # one BLAS thread: these matrices are small, and BLAS's threads would fight torch's, still spinning after the
    # forward pass, for the same cores (measured: 3x slower on 2 cores with them). Instead the batch is split
    # between torch's number of threads, each a stacked call (NumPy lets go of the GIL in it: 64 maps of 49 x 64,
    # 23 -> 12 ms on 2 cores); the reduced SVD's first component is the full one's, without the C x C matrix.
    parts = np.array_split(flat, max(1, min(torch.get_num_threads(), n)))
    with threadpool_limits(limits=1, user_api="blas"), ThreadPoolExecutor(len(parts)) as pool:
        vt = np.concatenate(list(pool.map(lambda part: np.linalg.svd(part, full_matrices=False)[2], parts)))
    out = np.einsum("npc,nc->np", flat, vt[:, 0]).reshape(batch.shape[0], *batch.shape[2:])
    return torch.from_numpy(np.float32(out)).to(activations.device)


def _chunks(total: int, batch_size: int, desc: str) -> Iterator[torch.Tensor]:
    from tqdm import tqdm

    for start in tqdm(range(0, total, batch_size), desc=desc, leave=False, disable=None, unit="batch"):
        yield torch.arange(start, min(start + batch_size, total))


class _Reader:
    """One layer's output for a batch, as a leaf that requires grad, and a way to run the net from it again."""

    def __init__(self, net: nn.Module, x: torch.Tensor, layer: str | None, need_grad: bool) -> None:
        self.net, self.x = net, x
        self.module = None if layer is None else _module(net, layer)
        if self.module is None:
            with torch.no_grad():
                features = net.forward_features(x)
            self.raw = features.detach().requires_grad_(need_grad)
            self.logits = net.forward_head(self.raw)
        else:
            store: dict[str, torch.Tensor] = {}

            def keep(output: torch.Tensor) -> torch.Tensor:
                store["raw"] = output.detach().requires_grad_(need_grad)
                return store["raw"]

            with _hooked(self.module, keep), torch.set_grad_enabled(need_grad):
                self.logits = net(x)
            self.raw = store["raw"]
        self.layout = Layout.of(net, self.raw)

    def scores_from(self, rows: torch.Tensor, raw: torch.Tensor) -> torch.Tensor:
        """Logits of images ``x[rows]`` with the layer's output replaced by ``raw``."""
        if self.module is None:
            return self.net.forward_head(raw)
        with _hooked(self.module, lambda _output: raw):
            return self.net(self.x[rows])


def compute_cam(
    model: nn.Module,
    images: torch.Tensor,
    targets: Sequence[int] | torch.Tensor | None = None,
    method: str = "gradcam",
    layer: str | None = None,
    batch_size: int = 32,
) -> CAMResult:
    """Class activation maps for a batch, one target class per image (default: the predicted class).

    Args:
        model: an :class:`zoo.ImageClassifier` or a zoo net (anything with ``forward_features`` and
            ``forward_head``): a CNN, or a vision transformer (timm's or torchvision's ViT, a Swin).
        images: normalized images ``[N, C, H, W]``, as the model takes them.
        targets: the class to explain per image; None for each image's predicted class.
        method: one of :data:`METHODS`.
        layer: a module name to read instead of the default (e.g. ``"layer3"``); default: the output of
            ``forward_features`` (the registry's CAM layer), or for a ViT the first norm of its last block.
        batch_size: images per extra forward pass of Score-CAM and Ablation-CAM (one pass per channel and image).
    """
    check_method(method)
    if batch_size < 1:
        raise InputError(f"batch_size must be at least 1, got {batch_size}")
    net = _net(model)
    with torch.inference_mode(False), _eval_mode(net):
        x = images.clone()  # a normal tensor, even if the batch was made under inference_mode
        if hasattr(net, "check_input"):
            net.check_input(x)
        if layer is None and _token_features(net, x):
            layer = transformer_layer(net)
            if layer is None:
                raise ZooError(f"{type(net).__name__}'s features are tokens and no block's first norm was found: "
                               f"name the layer to read (layer=...)")
        if method == "cam" and (layer is not None or not _is_gap_linear(net)):
            raise ZooError(
                f"plain CAM needs a head of global average pooling and one linear layer, reading the last feature "
                f"map; {type(net).__name__}{f' at {layer!r}' if layer else ''} does not have one: use "
                f"method='gradcam'")
        with torch.enable_grad():
            reader = _Reader(net, x, layer, need_grad=method not in ("cam", "eigencam", *MANY_PASSES))
        logits = reader.logits.detach()
        probs = logits.softmax(1)
        if targets is None:
            targets = probs.argmax(1)
        targets = torch.as_tensor(targets, device=logits.device).long().view(-1)
        if targets.numel() != len(x):
            raise InputError(f"{targets.numel()} targets given for {len(x)} images; give one class per image")
        maps = _maps(method, net, reader, targets, batch_size)
        maps = F.interpolate(_normalize(torch.relu(maps))[:, None], size=images.shape[-2:], mode="bilinear",
                             align_corners=False)[:, 0]
    return CAMResult(_normalize(maps), targets, probs.gather(1, targets[:, None])[:, 0])


def _token_features(net: nn.Module, x: torch.Tensor) -> bool:
    """Whether the net's last features are tokens ``[N, T, C]`` (a ViT), told from one image."""
    if not hasattr(net, "num_prefix_tokens") and "VisionTransformer" not in type(net).__name__:
        return False
    with torch.no_grad():
        return net.forward_features(x[:1]).dim() == 3


def _maps(method: str, net: nn.Module, reader: _Reader, targets: torch.Tensor, batch_size: int) -> torch.Tensor:
    """The map of each image before ReLU, scaling and upsampling: ``[N, h, w]``."""
    a = reader.layout.grid(reader.raw.detach())
    if method == "cam":
        return (net.get_classifier().weight.detach()[targets][:, :, None, None] * a).sum(1)
    if method == "eigencam":
        return _projection(a)
    if method == "scorecam":
        return (_scorecam_weights(net, reader, a, targets, batch_size)[:, :, None, None] * a).sum(1)
    if method == "ablationcam":
        return (_ablation_weights(reader, targets, batch_size)[:, :, None, None] * a).sum(1)
    # images are independent in eval mode, so one backward pass gives every image's gradient
    score = reader.logits.gather(1, targets[:, None]).sum()
    g = reader.layout.grid(torch.autograd.grad(score, reader.raw)[0])
    if method == "gradcam":
        weights = g.mean(dim=(2, 3))
    elif method == "gradcam++":
        g2 = g ** 2
        alpha = g2 / (2 * g2 + a.sum(dim=(2, 3), keepdim=True) * g2 * g + 1e-6)  # eq. 19, exponential score
        weights = (torch.relu(g) * torch.where(g != 0, alpha, torch.zeros_like(alpha))).sum(dim=(2, 3))
    elif method == "xgradcam":
        weights = (g * a / (a.sum(dim=(2, 3), keepdim=True) + 1e-7)).sum(dim=(2, 3))
    elif method == "hirescam":
        return (g * a).sum(1)
    elif method == "gradcamelementwise":
        return torch.relu(g * a).sum(1)
    elif method == "layercam":
        return (torch.relu(g) * a).sum(1)
    else:  # eigengradcam
        return _projection(g * a)
    return (weights[:, :, None, None] * a).sum(1)


def _scorecam_weights(net: nn.Module, reader: _Reader, a: torch.Tensor, targets: torch.Tensor,
                      batch_size: int) -> torch.Tensor:
    """Score-CAM: the softmax over channels of the target's logit for the image masked by each channel's map
    (upsampled with aligned corners and scaled to [0, 1], as pytorch-grad-cam does), every (image, channel) pair
    batched."""
    n, k = a.shape[:2]
    x = reader.x
    with torch.no_grad():
        # A map of zeros (a dead ReLU channel: common in trained nets) masks the image to zeros: one pass scores all
        dead = (a.flatten(2).abs().amax(2) == 0).flatten()
        scores = net(torch.zeros_like(x[:1]))[0, targets].repeat_interleave(k)
        live = torch.nonzero(~dead)[:, 0]
        for chunk in _chunks(len(live), batch_size, "scorecam"):
            rows = live[chunk]
            image, channel = rows // k, rows % k
            up = F.interpolate(a[image, channel][:, None], size=x.shape[-2:], mode="bilinear", align_corners=True)
            flat = up.flatten(1)
            low, high = flat.min(1).values[:, None, None, None], flat.max(1).values[:, None, None, None]
            masked = x[image] * (up - low) / (high - low + 1e-8)
            scores[rows] = net(masked).gather(1, targets[image][:, None])[:, 0]
    return scores.view(n, k).softmax(1)


def _ablation_weights(reader: _Reader, targets: torch.Tensor, batch_size: int) -> torch.Tensor:
    """Ablation-CAM: each channel's share of the target's logit, ``(s - s_k) / s`` with ``s_k`` the logit when
    channel k is ablated: set to 0 in a ReLU'd map, else to the map's minimum minus 1e7, pytorch-grad-cam's values.
    From the last feature map only the head runs again."""
    raw = reader.raw.detach()
    layout = reader.layout
    n, k = len(raw), layout.grid(raw).shape[1]
    original = reader.logits.detach().gather(1, targets[:, None])[:, 0]
    lowest = raw.flatten(1).min(1).values
    value = torch.where(lowest == 0, torch.zeros_like(lowest), lowest - 1e7)
    ablated = torch.empty(n * k, device=raw.device)
    with torch.no_grad():
        for rows in _chunks(n * k, batch_size, "ablationcam"):
            image, channel = rows // k, rows % k
            logits = reader.scores_from(image, layout.ablate(raw[image], channel, value[image]))
            ablated[rows] = logits.gather(1, targets[image][:, None])[:, 0]
    return (original[:, None] - ablated.view(n, k)) / original[:, None]

