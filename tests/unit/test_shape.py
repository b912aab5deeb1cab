"""The codebase's shape, measured from the code by `scripts/shape.py`: modules under 600 lines,
functions under 80, no import cycle, delivery composed, the planner and the edges kept apart from
the backends, the client over a transport, no reference to a missing file."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def problems() -> list[str]:
    spec = importlib.util.spec_from_file_location("shape", ROOT / "scripts" / "shape.py")
    assert spec is not None and spec.loader is not None
    shape = importlib.util.module_from_spec(spec)
    sys.modules["shape"] = shape
    spec.loader.exec_module(shape)
    return list(shape.measure().problems)


@pytest.mark.parametrize(
    "rule",
    [
        "module ",
        "function ",
        "import cycle",
        "Delivery has base classes",
        "the planner imports",
        "names backend classes",
        "HubSpotClient does not take a transport",
        "cites",
    ],
)
def test_rule_holds(problems: list[str], rule: str) -> None:
    assert [p for p in problems if rule in p] == []


def test_a_long_function_is_seen(tmp_path: Path, problems: list[str]) -> None:
    """The measure is not blind: a function of 81 lines is reported, one of 80 is not."""
    shape = sys.modules["shape"]
    body = "\n".join(f"    x{i} = {i}" for i in range(79))
    (tmp_path / "m.py").write_text(f"def short():\n{body}\n\n\ndef long():\n{body}\n    x = 0\n")
    assert shape.long_functions(tmp_path / "m.py") == [("long", 81)]
