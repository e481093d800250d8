"""The kink atlas: what the installed PyTorch (and JAX, when importable) returns at every registered
kink, measured at run time, beside the Clarke set and beside what a kinkgrad policy returns.

Nothing but the Clarke sets is written down: every derivative in the table is computed when the atlas
is drawn, so a PyTorch upgrade that changes a choice shows up here.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import torch
from torch import Tensor

from kinkgrad._policy import active_policy, kink_policy
from kinkgrad._registry import OPS, Probe


@dataclass(frozen=True)
class AtlasRow:
    """One kink: the op, the point, and the derivative each system returns there.

    ``torch``, ``kinkgrad`` and ``jax`` are the gradients of the sum of the op's outputs with respect
    to its floating-point inputs, formatted as numbers (``jax`` is ``None`` where JAX was not asked or
    has no counterpart).
    """

    op: str
    point: str
    torch: str
    clarke: str
    kinkgrad: str
    jax: str | None = None


def _format(grads: Sequence[Tensor]) -> str:
    values = [float(v) for g in grads for v in g.detach().reshape(-1)]
    text = ", ".join(f"{v:.4g}" for v in values)
    return text if len(values) == 1 else f"({text})"


def _measure(probe: Probe, dtype: torch.dtype) -> list[Tensor]:
    leaves = [t.requires_grad_(t.is_floating_point()) for t in probe.make(dtype)]
    out = probe.call(*leaves)
    y = out if isinstance(out, Tensor) else out.values
    wrt = [t for t in leaves if t.is_floating_point()]
    grads = torch.autograd.grad(y.sum(), wrt, allow_unused=True)
    return [torch.zeros_like(w) if g is None else g for w, g in zip(wrt, grads)]


def atlas(
    policy: kink_policy | None = None, *, dtype: torch.dtype = torch.float64, jax: bool | None = None
) -> list[AtlasRow]:
    """Measure every registered kink.

    Args:
        policy: the policy for the ``kinkgrad`` column; ``None`` uses the active one (or, with none
            active, PyTorch's own choices).
        dtype: floating dtype of the probe inputs.
        jax: measure JAX too; ``None`` means "if it is importable".

    Returns:
        One :class:`AtlasRow` per probe point, in registry order.

    Example:
        >>> rows = atlas(kink_policy(default=0.5))
        >>> relu = next(r for r in rows if r.op == "relu")
        >>> relu.torch, relu.clarke, relu.kinkgrad
        ('0', '[0, 1]', '0.5')
    """
    chosen = policy if policy is not None else active_policy()
    jax_grad = _jax_measurer() if jax in (None, True) else None
    if jax is True and jax_grad is None:
        raise ImportError("jax=True but JAX is not importable; install it with `pip install jax`")
    rows = []
    for spec in OPS.values():
        for index, probe in enumerate(spec.probes):
            with kink_policy():  # an empty policy: PyTorch's own choices even inside an active one
                plain = _measure(probe, dtype)
            if chosen is None:
                ours = plain
            else:
                with chosen:
                    ours = _measure(probe, dtype)
            measured_jax = jax_grad(spec.name, index, probe, dtype) if jax_grad is not None else None
            clarke = probe.clarke or spec.clarke
            rows.append(AtlasRow(spec.name, probe.point, _format(plain), clarke, _format(ours), measured_jax))
    return rows


# JAX counterparts of some probes, keyed by (op, probe index): a function of (jax, jnp) returning f.
_JAX: dict[tuple[str, int], Callable[[Any, Any], Callable[..., Any]]] = {
    ("relu", 0): lambda jax, jnp: jax.nn.relu,
    ("leaky_relu", 0): lambda jax, jnp: lambda x: jax.nn.leaky_relu(x, 0.1),
    ("relu6", 0): lambda jax, jnp: jax.nn.relu6,
    ("relu6", 1): lambda jax, jnp: jax.nn.relu6,
    ("hardtanh", 0): lambda jax, jnp: jax.nn.hard_tanh,
    ("hardtanh", 1): lambda jax, jnp: jax.nn.hard_tanh,
    ("clamp", 0): lambda jax, jnp: lambda x: jnp.clip(x, 0.0),
    ("clamp", 1): lambda jax, jnp: lambda x: jnp.clip(x, 0.0, 1.0),
    ("abs", 0): lambda jax, jnp: jnp.abs,
    ("elu", 0): lambda jax, jnp: lambda x: jax.nn.elu(x, 2.0),
    ("maximum", 0): lambda jax, jnp: jnp.maximum,
    ("minimum", 0): lambda jax, jnp: jnp.minimum,
    ("max", 0): lambda jax, jnp: jnp.max,
    ("amax", 0): lambda jax, jnp: jnp.max,
    ("sort", 0): lambda jax, jnp: jnp.sort,
    ("median", 0): lambda jax, jnp: jnp.median,
    ("vector_norm", 0): lambda jax, jnp: jnp.linalg.norm,
}


def _jax_measurer() -> Callable[[str, int, Probe, torch.dtype], str | None] | None:
    try:
        import jax
        import jax.numpy as jnp
    except ImportError:
        return None
    jax.config.update("jax_enable_x64", True)

    def measure(op: str, index: int, probe: Probe, dtype: torch.dtype) -> str | None:
        build = _JAX.get((op, index))
        if build is None:
            return None
        f = build(jax, jnp)
        inputs = [jnp.asarray(t.numpy()) for t in probe.make(torch.float64)]
        grads = jax.grad(lambda *xs: jnp.sum(f(*xs)), argnums=tuple(range(len(inputs))))(*inputs)
        return _format([torch.as_tensor(jax.device_get(g).copy()) for g in grads])

    return measure


COLUMNS = ("op", "point", "torch", "clarke", "kinkgrad", "jax")


def render(rows: Sequence[AtlasRow], fmt: str = "table") -> str:
    """Render atlas rows as ``"table"`` (aligned text), ``"csv"``, ``"json"`` or ``"markdown"``."""
    columns = [c for c in COLUMNS if c != "jax" or any(r.jax is not None for r in rows)]
    records = [{c: ("" if getattr(r, c) is None else str(getattr(r, c))) for c in columns} for r in rows]
    if fmt == "json":
        return json.dumps([asdict(r) for r in rows], indent=2, ensure_ascii=False)
    if fmt == "csv":
        buffer = io.StringIO()
        writer = csv.DictWriter(buffer, fieldnames=columns, lineterminator="\n")
        writer.writeheader()
        writer.writerows(records)
        return buffer.getvalue()
    if fmt == "markdown":
        lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
        lines += ["| " + " | ".join(rec[c] for c in columns) + " |" for rec in records]
        return "\n".join(lines)
    if fmt == "table":
        widths = {c: max(len(c), *(len(rec[c]) for rec in records)) for c in columns}
        header = "  ".join(c.ljust(widths[c]) for c in columns)
        lines = [header, "  ".join("-" * widths[c] for c in columns)]
        lines += ["  ".join(rec[c].ljust(widths[c]) for c in columns).rstrip() for rec in records]
        return "\n".join(lines)
    raise ValueError(f"format must be one of 'table', 'csv', 'json', 'markdown', got {fmt!r}")
