"""bifurcation(): two backward passes at λ = a and λ = b; the monitor's bifurcating kinks predict it."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from kinkgrad._bifurcation import bifurcation
from kinkgrad.data import load_dataset


def _quantized_mlp(dtype: torch.dtype, grid: int, dropout: float = 0.0) -> nn.Module:
    """A small MLP whose weights are multiples of 1/grid: with inputs k/16, pre-activations are
    exactly representable sums, so some of them are exactly 0 in every dtype."""
    torch.manual_seed(0)
    model = nn.Sequential(
        nn.Flatten(),
        nn.Linear(64, 16),
        nn.ReLU(),
        nn.Dropout(dropout),
        nn.Linear(16, 16),
        nn.ReLU(),
        nn.Linear(16, 10),
    ).to(dtype)
    with torch.no_grad():
        for p in model.parameters():
            p.copy_((p * grid).round() / grid)
    return model


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_zero_bifurcating_kinks_iff_identical_gradients(dtype: torch.dtype) -> None:
    data = load_dataset("digits", dtype=dtype, train_size=192)
    model = _quantized_mlp(dtype, grid=64, dropout=0.25)
    outcomes = {(True, True): 0, (False, False): 0, (True, False): 0, (False, True): 0}
    for start in range(0, 192, 8):
        x, y = data.x_train[start : start + 8], data.y_train[start : start + 8]
        result = bifurcation(
            lambda x=x, y=y: F.cross_entropy(model(x).float(), y), model.parameters(), model=model
        )
        outcomes[(result.bifurcating_kinks > 0, result.differs)] += 1
        assert (result.difference_norm > 0) == result.differs
        assert result.bifurcating_kinks <= result.exact_kinks
        assert {r.site for r in result.sites} <= {"2", "5"}
    assert outcomes[(True, False)] == 0 and outcomes[(False, True)] == 0, outcomes
    assert outcomes[(True, True)] >= 2 and outcomes[(False, False)] >= 2, outcomes  # both directions seen


def test_dropout_masks_are_the_same_in_both_passes() -> None:
    torch.manual_seed(1)
    model = nn.Sequential(nn.Linear(5, 32), nn.ReLU(), nn.Dropout(0.5), nn.Linear(32, 1)).double()
    x = torch.randn(16, 5, dtype=torch.float64)
    before = torch.get_rng_state()
    result = bifurcation(lambda: model(x).square().mean(), model.parameters())
    assert not result.differs and result.difference_norm == 0.0 and result.exact_kinks == 0
    torch.set_rng_state(before)
    model(x)  # the RNG is left as after one pass
    after_one = torch.get_rng_state()
    torch.set_rng_state(before)
    bifurcation(lambda: model(x).square().mean(), model.parameters())
    assert torch.equal(torch.get_rng_state(), after_one)


def test_difference_is_the_kink_slope_times_the_upstream_gradient() -> None:
    w = torch.tensor([1.0, -1.0], requires_grad=True)
    x = torch.tensor([[1.0, 1.0], [2.0, 1.0], [3.0, 3.0]])  # rows 0 and 2 sit at the kink
    upstream = torch.tensor([2.5, 1.0, 0.0])  # row 2's kink gets no cotangent: not bifurcating

    def loss() -> Tensor:
        return (torch.relu(x @ w) * upstream).sum()

    result = bifurcation(loss, [w], a=0.25, b=0.75)
    # g_b - g_a = (0.75 - 0.25) * 2.5 * x[0]
    assert result.difference_norm == pytest.approx(0.5 * 2.5 * 2**0.5)
    assert (result.exact_kinks, result.bifurcating_kinks, result.differs) == (2, 1, True)
    assert w.grad is None  # .grad untouched


def test_no_kink_means_no_bifurcation_and_bad_closures_raise() -> None:
    w = torch.tensor([0.3, -0.2], requires_grad=True)
    result = bifurcation(lambda: torch.relu(torch.tensor([[1.0, 2.0]]) @ w).sum(), [w])
    assert not result.differs and result.bifurcating_kinks == 0 and result.sites[0].exact_kinks == 0
    with pytest.raises(TypeError, match="one-element tensor"):
        bifurcation(lambda: torch.relu(w), [w])
    with pytest.raises(ValueError, match="empty"):
        bifurcation(lambda: w.sum(), [])
