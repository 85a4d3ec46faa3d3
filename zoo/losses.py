"""The losses zoo trains with beside cross-entropy: the multiclass SVM (hinge) loss and the L1/L2 penalties."""

from collections.abc import Iterable

import torch


def multiclass_hinge_loss(scores: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """The multiclass SVM loss ``L_i = sum_{j != y_i} max(0, s_j - s_{y_i} + 1)``, batch mean.

    Unlike :func:`torch.nn.functional.multi_margin_loss` it is not divided by the number of classes.
    """
    correct = scores.gather(1, target[:, None])
    margins = (scores - correct + 1.0).clamp_min(0.0)
    margins = margins.scatter(1, target[:, None], 0.0)
    return margins.sum(dim=1).mean()


def weight_penalty(weights: Iterable[torch.Tensor], l1: float = 0.0, l2: float = 0.0) -> torch.Tensor | None:
    """``l1 * sum |W| + l2 * sum W^2`` over `weights` (with both, the elastic net); None when both are 0."""
    if not (l1 or l2):
        return None
    return sum(l1 * w.abs().sum() + l2 * w.square().sum() for w in weights)


__all__ = ["multiclass_hinge_loss", "weight_penalty"]
