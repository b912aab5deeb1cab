"""docs/architecture.md holds what can be generated from the code, as the code has it."""

from __future__ import annotations

from pathlib import Path

from hubspot_relay.delivery.settlement import ANSWERS, VERDICTS, verdicts_markdown

DOC = Path(__file__).resolve().parents[2] / "docs" / "architecture.md"


def test_the_verdict_table_in_the_docs_is_the_codes() -> None:
    shown = "\n".join(line.strip() for line in DOC.read_text().splitlines())
    assert verdicts_markdown() in shown


def test_every_kind_has_a_verdict_and_words() -> None:
    from hubspot_relay.hubspot.errors import Kind

    assert set(VERDICTS) == set(Kind) == set(ANSWERS)
