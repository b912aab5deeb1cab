"""The commands as a person meets them (typer's runner, no relay running): the help's order,
the version, and each refusal worded, with its exit status and no traceback."""

from __future__ import annotations

import sqlite3
import tempfile
from pathlib import Path

import pytest
from typer.testing import CliRunner

from hubspot_relay import __version__
from hubspot_relay.cli import app, main

runner = CliRunner()


@pytest.fixture(autouse=True)
def no_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for name in (
        "HUBSPOT_RELAY_CONFIG",
        "HUBSPOT_RELAY_URL",
        "HUBSPOT_ACCESS_TOKEN",
        "HUBSPOT_RELAY_QUEUE_URL",
    ):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HUBSPOT_RELAY_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("HUBSPOT_RELAY_PORT", "1")  # nothing answers there


def test_help_lists_the_everyday_commands_first() -> None:
    result = runner.invoke(app, ["--help"])
    names = [line.split()[1] for line in result.output.splitlines() if line.startswith("│ ") and "  " in line]
    commands = [
        n
        for n in names
        if n in {"serve", "status", "replay", "import", "preview", "send", "sandbox", "version"}
    ]
    assert commands == ["serve", "status", "replay", "import", "preview", "send", "sandbox", "version"]


def test_version() -> None:
    assert runner.invoke(app, ["--version"]).output.strip() == f"hubspot-relay {__version__}"
    assert runner.invoke(app, ["version"]).output.strip() == __version__


@pytest.mark.parametrize(
    ("args", "code", "says"),
    [
        (["status"], 1, "no relay answers at http://127.0.0.1:1 and there is no queue at"),
        (["replay"], 1, "no queue at"),
        (["import", "missing.jsonl"], 2, "no file at missing.jsonl"),
        (["status", "--config", "nowhere.toml"], 2, "configuration error"),
    ],
)
def test_refusals(args: list[str], code: int, says: str) -> None:
    result = runner.invoke(app, args)
    assert result.exit_code == code, result.output
    assert says in " ".join(result.output.split())
    assert "Traceback" not in result.output


def test_preview_of_a_file_that_is_not_json(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # (the command sends logs to the runner's stderr, which closes after it: not for other tests)
    monkeypatch.setattr("hubspot_relay.cli.preview.configure_logs", lambda *a: None)
    bad = tmp_path / "m.json"
    bad.write_text("{not json")
    result = runner.invoke(app, ["preview", str(bad)])
    assert result.exit_code == 2
    assert "is not JSON" in result.output


def test_import_names_the_sources_it_knows(tmp_path: Path) -> None:
    lines = tmp_path / "a.jsonl"
    lines.write_text("{}\n")
    result = runner.invoke(app, ["import", str(lines), "--source", "nope"])
    assert result.exit_code == 2
    assert "no source named nope" in result.output


def test_an_unexpected_error_is_one_line_naming_what_failed_and_where_the_details_are(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "queue.sqlite3").write_text("not a database")
    monkeypatch.setenv("HUBSPOT_RELAY_DATA_DIR", str(tmp_path))
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    with pytest.raises(SystemExit) as exit_:
        main(["status"])
    assert exit_.value.code == 1
    said = capsys.readouterr().err
    failure = said[said.index("hubspot-relay status failed") :]
    assert "Traceback" not in said and len(failure.strip().splitlines()) == 1
    assert failure.startswith("hubspot-relay status failed: DatabaseError: file is not a database (in queue/")
    details = Path(failure.split("the details are in ")[1].split(" (run it again")[0])
    assert details.parent == tmp_path and details.stat().st_mode & 0o777 == 0o600
    assert "Traceback (most recent call last)" in details.read_text()
    with pytest.raises(sqlite3.DatabaseError):  # --debug: the traceback, as Python shows it
        main(["--debug", "status"])


def test_health_says_not_ready_when_no_relay_answers() -> None:
    result = runner.invoke(app, ["health"])
    assert result.exit_code == 1 and "not ready: no answer from http://127.0.0.1:1" in result.output


def test_health_says_ready_from_a_relay_s_health(monkeypatch: pytest.MonkeyPatch) -> None:
    import httpx

    answers = {"/health": httpx.Response(200, json={"status": "ok"})}
    monkeypatch.setattr(httpx, "get", lambda url, timeout: answers[httpx.URL(url).path])
    assert runner.invoke(app, ["health"]).output.strip() == "ready"
    answers["/health"] = httpx.Response(503, text='{"status":"degraded","reasons":["disk"]}')
    refused = runner.invoke(app, ["health"])
    assert refused.exit_code == 1 and "answered 503" in refused.output and "disk" in refused.output


def test_the_system_file_is_read_when_it_exists_and_no_other_is_named(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    from hubspot_relay.cli import common

    system = tmp_path / "relay.toml"
    monkeypatch.setattr(common, "SYSTEM_CONFIG_FILE", system)
    assert common.load_config(None).sources[0].name == "default"  # none there: the environment
    system.write_text(
        '[relay]\nport = 9999\n[[accounts]]\nname = "a"\nhub_id = 1\naccess_token = "pat-na1-x"\n'
        '[[sources]]\nname = "site"\nwrite_key = "wk"\naccount = "a"\n'
    )
    assert common.load_config(None).sources[0].name == "site"
    monkeypatch.setenv("HUBSPOT_RELAY_HOST", "0.0.0.0")
    assert common.load_config(None).host == "0.0.0.0"
