"""airbench (Jordan 2024): a small VGG-like net built to train fast, its first layer whitening the image patches."""

import torch
import torch.nn.functional as F
from torch import nn

from zoo.errors import InputError
from zoo.models.net import ZooNet
from zoo.registry import register_model

JORDAN2024 = "Jordan 2024, 94% on CIFAR-10 in 3.29 Seconds on a Single GPU (arXiv:2404.00498)"


class PatchWhitening(nn.Module):
    """A frozen k x k convolution whose filters whiten the images' k x k patches.

    :meth:`fit` sets the filters from training images: the eigenvectors of the patches' covariance, each divided
    by the square root of its eigenvalue, and their negatives (``2 * in_chans * k * k`` output channels), so its
    output has uncorrelated channels of unit variance. Until then the filters pick the patch's pixels one each
    (with both signs). The filters are buffers: no optimizer moves them, checkpoints keep them.
    """

    def __init__(self, in_chans: int, kernel_size: int = 2, eps: float = 5e-4) -> None:
        super().__init__()
        self.kernel_size, self.eps = kernel_size, eps
        dims = in_chans * kernel_size * kernel_size
        pixels = torch.eye(dims).view(dims, in_chans, kernel_size, kernel_size)
        self.register_buffer("weight", torch.cat([pixels, -pixels]))
        self.out_chans = 2 * dims

    @torch.no_grad()
    def fit(self, images: torch.Tensor) -> None:
        """Set the filters from `images` ``[N, C, H, W]`` (normalized, as the net sees them in training)."""
        k = self.kernel_size
        patches = images.detach().unfold(2, k, 1).unfold(3, k, 1)  # N, C, H', W', k, k
        patches = patches.permute(0, 2, 3, 1, 4, 5).reshape(-1, self.weight.shape[1] * k * k).double()
        eigenvalues, eigenvectors = torch.linalg.eigh(torch.cov(patches.T))
        filters = eigenvectors.T / (eigenvalues.clamp_min(0) + self.eps).sqrt()[:, None]
        filters = filters.view(-1, *self.weight.shape[1:]).to(self.weight)
        self.weight.copy_(torch.cat([filters, -filters]))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.conv2d(x, self.weight)


class ConvGroup(nn.Sequential):
    """conv 3x3 - max-pool 2 - BN - GELU - conv 3x3 - BN - GELU: airbench's block, halving the map."""

    def __init__(self, in_chans: int, out_chans: int) -> None:
        def norm() -> nn.BatchNorm2d:
            bn = nn.BatchNorm2d(out_chans, eps=1e-12, momentum=0.4)  # the paper's low-momentum statistics
            bn.weight.requires_grad_(False)  # scale fixed at 1: only the bias trains
            return bn

        super().__init__(
            nn.Conv2d(in_chans, out_chans, 3, padding=1, bias=False), nn.MaxPool2d(2), norm(), nn.GELU(),
            nn.Conv2d(out_chans, out_chans, 3, padding=1, bias=False), norm(), nn.GELU(),
        )


class Airbench(ZooNet):
    """whitening 2x2 - GELU - three ConvGroups - global max-pool - linear (no bias), times `logit_scale`.

    As the paper's airbench94: the convolutions start as identities on their first input channels (dirac
    initialisation, the rest He-initialised), the BatchNorm scales are frozen at 1, the logits are scaled by
    1/9 (the paper's learning rates assume it). Call :meth:`data_init` with training images before training
    (zoo's classifier does, with the first batch of a fresh fit) to set the whitening filters; the
    :class:`ZooNet` protocol otherwise.
    """

    head_names = ("pool", "fc")
    classifier_name = "fc"

    def __init__(self, num_classes: int = 10, in_chans: int = 3, widths: tuple[int, ...] = (64, 256, 256),
                 whiten_kernel: int = 2, logit_scale: float = 1 / 9) -> None:
        if len(widths) != 3 or any(not isinstance(w, int) or w < 1 for w in widths):
            raise InputError(f"widths must be three positive integers (one per ConvGroup), got {widths!r}")
        if whiten_kernel < 1:
            raise InputError(f"whiten_kernel must be a positive integer, got {whiten_kernel!r}")
        super().__init__(num_classes, in_chans, min_size=8 + whiten_kernel - 1)
        self.whiten = PatchWhitening(in_chans, whiten_kernel)
        self.act = nn.GELU()
        chans = [self.whiten.out_chans, *widths]
        self.stages = nn.Sequential(*(ConvGroup(a, b) for a, b in zip(chans, chans[1:], strict=False)))
        self.pool = nn.AdaptiveMaxPool2d(1)
        self.num_features = widths[-1]
        self.fc = nn.Linear(widths[-1], num_classes, bias=False)
        self.logit_scale = logit_scale
        for m in self.stages.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, nonlinearity="relu")
                nn.init.dirac_(m.weight[:m.in_channels])

    def data_init(self, images: torch.Tensor) -> None:
        """Whiten from these training images (see :class:`PatchWhitening`)."""
        self.whiten.fit(images)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return self.stages(self.act(self.whiten(x)))

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        x = self.pool(x).flatten(1)
        return x if pre_logits else self.fc(x) * self.logit_scale


@register_model(family="airbench", paper=JORDAN2024, cam_layer="stages")
def airbench(
    num_classes: int = 10,
    in_chans: int = 3,
    image_size: int = 32,
    widths: tuple[int, int, int] = (64, 256, 256),
    whiten_kernel: int = 2,
    logit_scale: float = 1 / 9,
) -> Airbench:
    """airbench94's net, about 1.97M parameters at 32x32x3 (widths 64, 256, 256).

    Args:
        num_classes: number of classes.
        in_chans: image channels.
        image_size: input height and width (any size from 8 + whiten_kernel - 1 up; 32 is CIFAR-10's).
        widths: the channels of the three ConvGroups (``[32, 64, 128]``: about 0.29M parameters, zoo's
            Fashion-MNIST speed record, ``zoo/configs/fashion_mnist_fast.yaml``).
        whiten_kernel: the whitening layer's patch size.
        logit_scale: the factor on the logits (the paper's 1/9; the Fashion-MNIST record, tuned with plain
            learning rates, uses 1).
    """
    return Airbench(num_classes, in_chans, tuple(widths), whiten_kernel, logit_scale)
