"""Muon (Jordan et al. 2024) for convolution filters, Nesterov SGD for the rest, as one optimizer.

airbench's fastest CIFAR-10 recipe steps its convolution filters with Muon: each filter's Nesterov momentum is
replaced by the nearest orthogonal matrix (a few Newton-Schulz iterations on the filter flattened to
``[out, in * k * k]``), so every direction of the update moves by the same amount, and the filter is rescaled to
a fixed norm each step (the BatchNorm after it makes the net blind to the scale). Every other parameter (the
linear head, biases, normalization) takes plain Nesterov SGD.

Written here because :class:`torch.optim.Muon` takes 2-D parameters only (it refuses a convolution's 4-D filters)
and because ``--model.optimizer`` takes one optimizer, where airbench runs two; what it takes from torch's is the
Newton-Schulz coefficients (Keller Jordan's) and the name.
"""

from collections.abc import Callable, Iterable
from typing import Any, Literal

import torch

from zoo.errors import InputError

NS_COEFFICIENTS = (3.4445, -4.7750, 2.0315)  # torch.optim.Muon's and airbench's quintic iteration


def orthogonalized(update: torch.Tensor, steps: int = 3, eps: float = 1e-7,
                   dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """The matrix `update` ``[m, n]`` with its singular values pushed towards 1 (roughly U V^T of its SVD) by
    `steps` Newton-Schulz iterations, computed in `dtype` (torch.optim.Muon and airbench: bfloat16)."""
    a, b, c = NS_COEFFICIENTS
    x = update.to(dtype)
    x = x / (x.norm() + eps)
    tall = x.shape[0] > x.shape[1]
    if tall:
        x = x.T
    for _ in range(steps):
        gram = x @ x.T
        x = a * x + (b * gram + c * gram @ gram) @ x
    return (x.T if tall else x).to(update.dtype)


class Muon(torch.optim.Optimizer):
    """Muon for convolution filters (parameters of 3 or more dimensions), Nesterov SGD for every other parameter.

    Each parameter group is split in two: its filters at `muon_lr` with `muon_momentum` and no weight decay (the
    filter's norm is reset to ``sqrt(out_channels)`` before each step, airbench's normalization, so decay has
    nothing to do), its other parameters at `lr` with `momentum` and the group's weight decay. A learning-rate
    scheduler scales both alike. zoo's parameter groups (no decay on biases, ``bias_lr_scale``, fine-tuning's
    stages) are kept: ``--model.optimizer zoo.optim.Muon``.

    Args:
        params: parameters, or parameter groups.
        lr: the SGD part's learning rate.
        muon_lr: the filters' learning rate (airbench: 0.24).
        momentum: the SGD part's momentum.
        muon_momentum: the filters' momentum (airbench: 0.6).
        nesterov: Nesterov momentum, for both parts.
        weight_decay: the SGD part's L2 penalty (a group's own ``weight_decay`` wins).
        ns_steps: Newton-Schulz iterations per filter update (airbench: 3).
        ns_dtype: what the iterations compute in: ``float32`` (exact enough on any hardware), or ``bfloat16``,
            as torch.optim.Muon and airbench do, where the hardware multiplies bfloat16 matrices natively (a
            GPU, or an Intel CPU with AMX: 3.3x faster on a 384-filter layer of 3x3x384, measured on 2 Xeon
            cores); on a CPU without, bfloat16 is emulated and slower. On small filters float32 is the faster
            choice: DenseNet-BC-40's 39 filters (16 to 80 outputs) take 12.6 ms a step in float32, 24 in bfloat16.
    """

    def __init__(self, params: Iterable[torch.Tensor] | Iterable[dict[str, Any]], lr: float = 0.1,
                 muon_lr: float = 0.24, momentum: float = 0.9, muon_momentum: float = 0.6, nesterov: bool = True,
                 weight_decay: float = 0.0, ns_steps: int = 3,
                 ns_dtype: Literal["float32", "bfloat16"] = "float32") -> None:
        for name, value in (("lr", lr), ("muon_lr", muon_lr)):
            if value <= 0:
                raise InputError(f"{name} must be positive, got {value!r}")
        for name, value in (("momentum", momentum), ("muon_momentum", muon_momentum)):
            if not 0 <= value < 1:
                raise InputError(f"{name} must be in [0, 1), got {value!r}")
        if ns_steps < 1:
            raise InputError(f"ns_steps must be a positive integer, got {ns_steps!r}")
        if ns_dtype not in ("float32", "bfloat16"):
            raise InputError(f"ns_dtype must be float32 or bfloat16, got {ns_dtype!r}")
        groups = list(params)
        if groups and not isinstance(groups[0], dict):
            groups = [{"params": groups}]
        split = []
        for group in groups:
            tensors = list(group["params"])
            filters = [p for p in tensors if p.ndim >= 3]
            others = [p for p in tensors if p.ndim < 3]
            if others:
                split.append({**group, "params": others, "muon": False})
            if filters:
                split.append({**group, "params": filters, "muon": True, "lr": muon_lr, "momentum": muon_momentum,
                              "weight_decay": 0.0})
        defaults = {"lr": lr, "momentum": momentum, "nesterov": nesterov, "weight_decay": weight_decay,
                    "ns_steps": ns_steps, "ns_dtype": ns_dtype, "muon": False}
        super().__init__(split, defaults)

    def __setstate__(self, state: dict[str, Any]) -> None:
        """torch's ``load_state_dict`` ends here with the saved groups: those saved before ``ns_dtype`` existed resume
        in float32, the iterations' dtype then (torch's own optimizers default their later options the same way)."""
        super().__setstate__(state)
        for group in self.param_groups:
            group.setdefault("ns_dtype", "float32")

    @torch.no_grad()
    def step(self, closure: Callable[[], float] | None = None) -> float | None:  # type: ignore[override]
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            momentum, decay = group["momentum"], group["weight_decay"]
            for p in group["params"]:
                if p.grad is None:
                    continue
                grad = p.grad.add(p, alpha=decay) if decay else p.grad
                state = self.state[p]
                if "momentum_buffer" not in state:
                    state["momentum_buffer"] = grad.clone()
                else:
                    state["momentum_buffer"].mul_(momentum).add_(grad)
                buffer = state["momentum_buffer"]
                update = grad.add(buffer, alpha=momentum) if group["nesterov"] else buffer
                if group["muon"]:
                    p.mul_(len(p) ** 0.5 / p.norm().clamp_min(1e-12))
                    update = orthogonalized(update.reshape(len(p), -1), group["ns_steps"],
                                            dtype=getattr(torch, group["ns_dtype"])).view_as(p)
                p.add_(update, alpha=-group["lr"])
        return loss
