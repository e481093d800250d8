"""Every docstring example in kinkgrad runs and prints what it shows (``torch`` in scope, as in the docs)."""

from __future__ import annotations

import doctest
import importlib
import pkgutil
from pathlib import Path

import pytest
import torch

import kinkgrad

MODULES = sorted(
    m.name for m in pkgutil.walk_packages(kinkgrad.__path__, "kinkgrad.") if not m.name.endswith("__main__")
)


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples_run(name: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)  # (examples that write files use temporary folders; in case one does not)
    module = importlib.import_module(name)
    result = doctest.testmod(
        module,
        extraglobs={"torch": torch},
        optionflags=doctest.NORMALIZE_WHITESPACE | doctest.ELLIPSIS,
        report=False,
    )
    assert result.failed == 0, f"{result.failed} of {result.attempted} examples in {name} failed"


def test_the_modules_are_found() -> None:
    assert {"kinkgrad.ops", "kinkgrad._policy", "kinkgrad._monitor", "kinkgrad._certified"} <= set(MODULES)
