"""The optimizer registry: every kinkgrad optimizer once, with sample configurations and a test problem.

Shared contract tests in ``test_optim_contract.py`` loop over ``CASES``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor
from torch.optim import Optimizer

from kinkgrad import prox as P
from kinkgrad.optim import ProxAdam, ProxSGD, Subgradient

# The classes torch.load(weights_only=True) must be told about to read a state_dict holding them.
SAFE_GLOBALS: list[Any] = [P.L1, P.L0, P.ElasticNet, P.GroupL1, P.NonNegative, P.Box, P.L2Ball]


@dataclass(frozen=True)
class OptimCase:
    """An optimizer class with one configuration and what the shared tests may expect of it."""

    id: str
    cls: type[Optimizer]
    kwargs: Mapping[str, Any] = field(default_factory=dict)
    stateful: bool = True  # every stepped parameter gets a state entry
    couples_groups: bool = False  # a group's step depends on the other groups (Polyak's |g| is global)

    def make(self, params: list[Tensor], **overrides: Any) -> Optimizer:
        return self.cls(params, **{**self.kwargs, **overrides})

    def mirrored(self) -> dict[str, Any]:
        """The options for maximising -f that mirror minimising f (an optimal value changes sign)."""
        kwargs = dict(self.kwargs)
        if kwargs.get("f_min") is not None:
            kwargs["f_min"] = -kwargs["f_min"]
        return kwargs


CASES = [
    OptimCase("subgradient-constant", Subgradient, {"lr": 0.05}),
    OptimCase(
        "subgradient-diminishing-averaged",
        Subgradient,
        {"lr": 0.2, "schedule": "diminishing", "average": True},
    ),
    OptimCase(
        "subgradient-sqrt-box", Subgradient, {"lr": 0.2, "schedule": "sqrt", "projection": P.Box(-0.5, 0.5)}
    ),
    OptimCase(
        "subgradient-polyak-ball",
        Subgradient,
        {"lr": 1.0, "schedule": "polyak", "f_min": 0.0, "projection": P.L2Ball(2.0, dim=0)},
        couples_groups=True,
    ),
    OptimCase("proxsgd-none", ProxSGD, {"lr": 0.05}, stateful=False),
    OptimCase("proxsgd-l1", ProxSGD, {"lr": 0.05, "prox": P.L1(0.1)}, stateful=False),
    OptimCase("proxsgd-momentum-group", ProxSGD, {"lr": 0.05, "momentum": 0.9, "prox": P.GroupL1(0.1)}),
    OptimCase(
        "proxsgd-nesterov-elastic",
        ProxSGD,
        {"lr": 0.05, "momentum": 0.5, "nesterov": True, "prox": P.ElasticNet(0.05, 0.1)},
    ),
    OptimCase(
        "proxsgd-dampening-l0", ProxSGD, {"lr": 0.05, "momentum": 0.9, "dampening": 0.5, "prox": P.L0(1e-3)}
    ),
    OptimCase("proxsgd-nonneg", ProxSGD, {"lr": 0.05, "prox": P.NonNegative()}, stateful=False),
    OptimCase("proxadam-none", ProxAdam, {"lr": 0.01}),
    OptimCase("proxadam-l1", ProxAdam, {"lr": 0.01, "prox": P.L1(0.05)}),
    OptimCase("proxadam-group", ProxAdam, {"lr": 0.01, "betas": (0.8, 0.99), "prox": P.GroupL1(0.05, dim=0)}),
    OptimCase("proxadam-ball", ProxAdam, {"lr": 0.01, "prox": P.L2Ball(1.0, dim=0)}),
]
IDS = [c.id for c in CASES]
# Constructor options that are optimizer-wide attributes rather than param-group defaults.
OPTIMIZER_WIDE = frozenset({"track_best", "average"})
CLASSES: list[type[Any]] = [Subgradient, ProxSGD, ProxAdam]


def make_problem(
    dtype: torch.dtype = torch.float64, seed: int = 0
) -> tuple[list[Tensor], Callable[[], Tensor]]:
    """Three parameters (a weight, a bias, a vector) and a nonsmooth loss >= 0 of them."""
    g = torch.Generator().manual_seed(seed)
    weight = torch.nn.Parameter(torch.randn(4, 3, generator=g, dtype=dtype))
    bias = torch.nn.Parameter(torch.randn(4, generator=g, dtype=dtype))
    vec = torch.nn.Parameter(torch.randn(5, generator=g, dtype=dtype))
    x = torch.randn(8, 3, generator=g, dtype=dtype)
    y = torch.randn(8, 4, generator=g, dtype=dtype)
    c = torch.randn(5, generator=g, dtype=dtype)

    def loss_fn() -> Tensor:
        fit = (x @ weight.T + bias - y).abs().mean()
        return fit + torch.relu(vec - c).sum() + 0.5 * (vec + c).square().sum() + bias.abs().max()

    return [weight, bias, vec], loss_fn


def closure_for(opt: Optimizer, loss_fn: Callable[[], Tensor], sign: float = 1.0) -> Callable[[], float]:
    def closure() -> float:
        opt.zero_grad()
        loss = sign * loss_fn()
        loss.backward()
        return loss.detach()  # type: ignore[return-value]

    return closure
