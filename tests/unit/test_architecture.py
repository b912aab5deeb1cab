"""docs/architecture.md holds what can be generated from the code, as the code has it."""

from __future__ import annotations

from pathlib import Path

from hubspot_relay.hubspot.verdicts import ANSWERS, VERDICTS, readings_markdown, verdicts_markdown

DOC = Path(__file__).resolve().parents[2] / "docs" / "architecture.md"


def test_the_verdict_table_in_the_docs_is_the_codes() -> None:
    shown = "\n".join(line.strip() for line in DOC.read_text().splitlines())
    assert verdicts_markdown() in shown


def test_every_kind_has_a_verdict_and_words() -> None:
    from hubspot_relay.hubspot.errors import Kind

    assert set(VERDICTS) == set(Kind) == set(ANSWERS)


def test_the_stage_table_in_the_docs_is_the_codes() -> None:
    from hubspot_relay.delivery.stages import stages_markdown

    shown = "\n".join(line.strip() for line in DOC.read_text().splitlines())
    assert stages_markdown() in shown + "\n"


def test_the_readings_in_the_docs_are_the_codes() -> None:
    shown = "\n".join(line.strip() for line in DOC.read_text().splitlines())
    assert readings_markdown() in shown


SRC = DOC.parents[1] / "src" / "hubspot_relay"
# Where HubSpot's answers may be judged: the classifier and the one table of what they mean.
JUDGES = {SRC / "hubspot" / "errors.py", SRC / "hubspot" / "verdicts.py"}


def test_only_the_verdict_module_and_the_classifier_judge_hubspots_answers() -> None:
    """No other module names a `Kind` or tests a HubSpot error's status or kind: it asks
    `hubspot/verdicts.py` (the sandbox, which plays HubSpot, is not the relay)."""
    import re

    judging = re.compile(r"\bKind\.|\b(e|error|exc|err)\.kind\b|\b(e|error|exc)\.status\s*(==|!=|<|>|in\b)")
    found = []
    for path in sorted(SRC.rglob("*.py")):
        if path in JUDGES or "sandbox" in path.parts:
            continue
        for number, line in enumerate(path.read_text().splitlines(), start=1):
            if judging.search(line):
                found.append(f"{path.relative_to(SRC)}:{number}: {line.strip()}")
    assert found == []
